//! The emoji picker: search, Unicode's groups, recently used, skin tones.
//! Its data (~25 KB) is fetched from the server the first time a picker
//! opens on the page (`GET /api/emoji`), not with the app.

use std::cell::RefCell;
use std::sync::Arc;

use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::emoji::{self, Group, TONES};
use crate::{api, storage};

/// Search results shown at most.
const FOUND: usize = 60;
/// "Recently used" as a tab: before the groups.
const RECENT_TAB: usize = usize::MAX;

thread_local! {
    /// The catalog, once loaded: the same for every picker of the page.
    static CATALOG: RefCell<Option<Arc<Vec<Group>>>> = const { RefCell::new(None) };
}

/// The catalog if this page has it already.
pub fn cached() -> Option<Arc<Vec<Group>>> {
    CATALOG.with(|c| c.borrow().clone())
}

/// The catalog, fetched once (`GET /api/emoji`) and kept for the page.
pub async fn load() -> Result<Arc<Vec<Group>>, api::Failure> {
    if let Some(groups) = cached() {
        return Ok(groups);
    }
    let groups = Arc::new(api::emoji_catalog().await?);
    CATALOG.with(|c| *c.borrow_mut() = Some(groups.clone()));
    Ok(groups)
}

/// Lets a person choose an emoji; `on_pick` gets it (in their skin tone).
/// Escape, or `on_close`, closes it.
#[component]
pub fn EmojiPicker(on_pick: Callback<String>, on_close: Callback<()>) -> impl IntoView {
    let catalog = RwSignal::new(cached());
    let failed = RwSignal::new(None::<String>);
    if catalog.get_untracked().is_none() {
        spawn_local(async move {
            match load().await {
                // The picker may be closed by now.
                Ok(groups) => {
                    let _ = catalog.try_set(Some(groups));
                }
                Err(failure) => {
                    let _ = failed.try_set(Some(failure.text()));
                }
            }
        });
    }
    let query = RwSignal::new(String::new());
    let recent = RwSignal::new(storage::load_recent_emoji());
    let tab = RwSignal::new(if recent.with_untracked(Vec::is_empty) {
        0
    } else {
        RECENT_TAB
    });
    let tone = RwSignal::new(storage::load_tone());
    let pick = move |chosen: String| {
        recent.update(|r| emoji::remember(r, &chosen));
        recent.with_untracked(|r| storage::save_recent_emoji(r));
        on_pick.run(chosen);
    };
    // What the grid shows: (emoji as sent, its name).
    let shown = move || -> Vec<(String, String)> {
        let Some(groups) = catalog.get() else {
            return Vec::new();
        };
        let tone = tone.get();
        let q = query.get();
        if !q.trim().is_empty() {
            return emoji::search(&groups, &q, FOUND)
                .into_iter()
                .map(|e| (emoji::with_tone(e, tone), e.name.clone()))
                .collect();
        }
        match tab.get() {
            RECENT_TAB => recent.with(|r| {
                r.iter()
                    .map(|e| {
                        (
                            e.clone(),
                            emoji::name_of(&groups, e).unwrap_or_default().to_owned(),
                        )
                    })
                    .collect()
            }),
            at => groups
                .get(at)
                .map(|g| {
                    g.emoji
                        .iter()
                        .map(|e| (emoji::with_tone(e, tone), e.name.clone()))
                        .collect()
                })
                .unwrap_or_default(),
        }
    };
    let tabs = move || {
        let groups = catalog.get()?;
        let mut tabs: Vec<(usize, String, String)> = Vec::new();
        if recent.with(|r| !r.is_empty()) {
            tabs.push((RECENT_TAB, "🕘".to_owned(), "Recently used".to_owned()));
        }
        for (at, group) in groups.iter().enumerate() {
            let icon = group
                .emoji
                .first()
                .map(|e| e.emoji.clone())
                .unwrap_or_default();
            tabs.push((at, icon, group.name.clone()));
        }
        Some(tabs)
    };
    view! {
        <div class="emoji-picker" role="dialog" aria-label="Choose an emoji"
            on:keydown=move |ev: leptos::ev::KeyboardEvent| {
                if ev.key() == "Escape" {
                    ev.stop_propagation();
                    on_close.run(());
                }
            }>
            <div class="emoji-top">
                <input type="search" class="emoji-search" placeholder="Search emoji" aria-label="Search emoji"
                    autocomplete="off" autofocus
                    prop:value=move || query.get()
                    on:input=move |ev| query.set(event_target_value(&ev)) />
                <div class="tones" role="radiogroup" aria-label="Skin tone">
                    {std::iter::once((None, "default"))
                        .chain(TONES.iter().map(|(c, name)| (Some(*c), *name)))
                        .map(|(choice, name)| {
                            let sample = match choice {
                                Some(c) => format!("✋{c}"),
                                None => "✋".to_owned(),
                            };
                            view! {
                                <button type="button" role="radio" class="tone"
                                    aria-checked=move || (tone.get() == choice).to_string()
                                    aria-label=format!("Skin tone: {name}") title=name
                                    on:click=move |_| { tone.set(choice); storage::save_tone(choice); }>
                                    {sample}
                                </button>
                            }
                        })
                        .collect_view()}
                </div>
            </div>
            <div class="emoji-tabs" role="tablist" aria-label="Emoji groups">
                {move || tabs().map(|tabs| tabs.into_iter().map(|(at, icon, name)| view! {
                    <button type="button" role="tab" aria-selected=move || (query.with(|q| q.trim().is_empty()) && tab.get() == at).to_string()
                        aria-label=name.clone() title=name
                        on:click=move |_| { query.set(String::new()); tab.set(at); }>{icon}</button>
                }).collect_view())}
            </div>
            <div class="emoji-grid" role="group" aria-label="Emoji">
                {move || match (catalog.with(Option::is_some), failed.get()) {
                    (false, Some(why)) => view! { <p class="error">{why}</p> }.into_any(),
                    (false, None) => view! { <p class="muted small">"Loading emoji…"</p> }.into_any(),
                    (true, _) => {
                        let list = shown();
                        if list.is_empty() {
                            view! { <p class="muted small">"No emoji found"</p> }.into_any()
                        } else {
                            list.into_iter().map(|(e, name)| {
                                let sent = e.clone();
                                view! {
                                    <button type="button" class="emoji" aria-label=name.clone() title=name
                                        on:click=move |_| pick(sent.clone())>{e}</button>
                                }
                            }).collect_view().into_any()
                        }
                    }
                }}
            </div>
        </div>
    }
}
