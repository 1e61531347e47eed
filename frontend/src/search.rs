//! Searching messages: the box in the sidebar, and the results, which take
//! the place of the conversation until closed. A result opens its room at
//! the message (paging older history in if it is not loaded).

use common::{ChatMessage, SearchResults};
use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::api;
use crate::marks::clock;
use crate::reading;

/// What is being searched for and what was found so far.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Found {
    pub query: String,
    pub messages: Vec<ChatMessage>,
    pub next: Option<String>,
    pub loading: bool,
    pub error: Option<String>,
}

/// Runs a search (or loads its next page) into `found`.
pub fn run(found: RwSignal<Option<Found>>, token: String, query: String, more: bool) {
    let before = more
        .then(|| found.with_untracked(|f| f.as_ref().and_then(|f| f.next.clone())))
        .flatten();
    if more && before.is_none() {
        return;
    }
    found.update(|f| {
        let keep = more.then(|| f.take()).flatten().unwrap_or_default();
        *f = Some(Found {
            query: query.clone(),
            loading: true,
            error: None,
            ..keep
        });
    });
    spawn_local(async move {
        let answer = api::search(&token, &query, before.as_deref()).await;
        found.update(|f| {
            let Some(f) = f.as_mut().filter(|f| f.query == query) else {
                return; // another search started meanwhile
            };
            f.loading = false;
            match answer {
                Ok(SearchResults { messages, next }) => {
                    f.messages.extend(messages);
                    f.next = next;
                }
                Err(why) => f.error = Some(why),
            }
        });
    });
}

/// The search box, in the sidebar.
#[component]
pub fn SearchBox(on_search: Callback<String>) -> impl IntoView {
    let text = RwSignal::new(String::new());
    view! {
        <form class="search" role="search" on:submit=move |ev| {
            ev.prevent_default();
            let query = text.get_untracked();
            if !common::search::words(&query).is_empty() {
                on_search.run(query);
            }
        }>
            <input type="search" placeholder="Search messages" aria-label="Search messages"
                prop:value=move || text.get()
                on:input=move |ev| text.set(event_target_value(&ev)) />
        </form>
    }
}

/// The results, newest first; each opens its room at the message.
#[component]
pub fn SearchResultsPanel(
    found: RwSignal<Option<Found>>,
    /// Open `(room, seq)`.
    on_open: Callback<(String, u64)>,
    on_more: Callback<()>,
) -> impl IntoView {
    let close = move |_| found.set(None);
    let heading = move || {
        found.with(|f| {
            f.as_ref()
                .map(|f| format!("Results for “{}”", f.query))
                .unwrap_or_default()
        })
    };
    let results = move || {
        found.with(|f| {
            let Some(f) = f else { return Vec::new() };
            let words = common::search::words(&f.query);
            f.messages
                .iter()
                .map(|m| {
                    let (room, seq) = (m.room.clone(), m.seq);
                    // The text as read, without its formatting syntax.
                    let plain =
                        crate::markup::summary(&m.content, m.formatted.as_deref(), &m.files);
                    let marked = reading::highlight(&plain, &words)
                        .into_iter()
                        .map(|(run, hit)| {
                            if hit {
                                view! { <mark>{run.to_owned()}</mark> }.into_any()
                            } else {
                                run.to_owned().into_any()
                            }
                        })
                        .collect_view();
                    view! {
                        <li>
                            <button type="button" class="result"
                                on:click=move |_| on_open.run((room.clone(), seq))>
                                <span class="where">
                                    {format!("#{} · {} · ", m.room, m.user.name)}
                                    <time>{clock(m.ts)}</time>
                                </span>
                                <span class="text">{marked}</span>
                            </button>
                        </li>
                    }
                })
                .collect::<Vec<_>>()
        })
    };
    let status = move || {
        found.with(|f| match f {
            Some(f) if f.loading => "Searching…".to_owned(),
            Some(f) if f.error.is_some() => {
                format!("The search failed: {}", f.error.clone().unwrap_or_default())
            }
            Some(f) if f.messages.is_empty() => "Nothing found.".to_owned(),
            Some(f) => format!(
                "{}{} found",
                f.messages.len(),
                if f.next.is_some() { "+" } else { "" }
            ),
            None => String::new(),
        })
    };
    let more = move || found.with(|f| f.as_ref().is_some_and(|f| f.next.is_some() && !f.loading));
    view! {
        <section class="search-results" aria-label="Search results" data-testid="search-results">
            <header>
                <h2>{heading}</h2>
                <button type="button" class="link" on:click=close>"Close"</button>
            </header>
            <p class="muted" role="status">{status}</p>
            <ul>{results}</ul>
            <Show when=more>
                <button type="button" class="link more" on:click=move |_| on_more.run(())>"More results"</button>
            </Show>
        </section>
    }
}

/// A search of this screen: what was found, and how to ask.
#[derive(Clone, Copy)]
pub struct Searching {
    pub found: RwSignal<Option<Found>>,
    token: StoredValue<String>,
}

impl Searching {
    pub fn new(token: String) -> Self {
        Searching {
            found: RwSignal::new(None),
            token: StoredValue::new(token),
        }
    }

    pub fn on_search(self) -> Callback<String> {
        Callback::new(move |query: String| run(self.found, self.token.get_value(), query, false))
    }

    /// The next page of the same search.
    pub fn on_more(self) -> Callback<()> {
        Callback::new(move |()| {
            let query = self
                .found
                .with_untracked(|f| f.as_ref().map(|f| f.query.clone()));
            if let Some(query) = query {
                run(self.found, self.token.get_value(), query, true);
            }
        })
    }
}
