//! One message in the list: who and when, the quote it answers, its text
//! (formatted, see `rich_text.rs`), its state (sending,
//! failed, edited, deleted), and what the reader can do with it (reply,
//! edit, delete, retry). Editing happens in place.

use leptos::prelude::*;

use crate::chat::{Chat, Line, LineStatus};
use crate::composer::format_shortcut;
use crate::emoji_picker::EmojiPicker;
use crate::links;
use crate::marks::clock;
use crate::reading::{self, Decor};
use crate::{markup, rich_text};

/// What the reader can do to a line; each is offered only if given.
#[derive(Clone, Copy, Default)]
pub struct LineActions {
    /// Send a failed message again, by client_id.
    pub retry: Option<Callback<String>>,
    /// Answer message `seq`.
    pub reply: Option<Callback<u64>>,
    /// Change the text of own message `seq`.
    pub edit: Option<Callback<(u64, String)>>,
    /// Delete message `seq` (own, or anyone's for a moderator).
    pub delete: Option<Callback<u64>>,
    /// Show the message a reply quotes.
    pub quote: Option<Callback<u64>>,
    /// React to message `seq` with an emoji (true), or take it back.
    pub react: Option<Callback<(u64, String, bool)>>,
}

/// The longest quote shown above a reply, in characters.
const QUOTE_CHARS: usize = 80;

#[component]
pub fn MessageLine(
    line: Line,
    decor: Decor,
    #[prop(into)] chat: Signal<Chat>,
    room: String,
    /// The seq of the line being edited, if any (one at a time).
    editing: RwSignal<Option<u64>>,
    actions: LineActions,
) -> impl IntoView {
    if line.topic {
        return topic_line(&line).into_any();
    }
    let own = chat.with_untracked(|c| c.me.as_ref().is_some_and(|me| me.id == line.user.id));
    let handle = reading::handle(&line.user);
    let who = format!("{} · {handle}", line.user.name);
    let avatar = (!decor.continued).then(|| {
        view! {
            <span class=format!("avatar {}", reading::avatar_class(&line.user.id)) aria-hidden="true" title=who.clone()>
                {reading::initials(&line.user.name)}
            </span>
        }
    });
    // On a phone there is no hover: a tap on the name shows the @username
    // in place.
    // Always shown where the name could be taken for someone else's.
    let shown_id = RwSignal::new(decor.handle_shown);
    let short = handle.clone();
    let (iso, full) = timestamps(line.ts);
    // A grouped line shows no time; it is there on hover.
    let hover = decor.continued.then(|| full.clone());
    let (status_text, status_class) = match (&line.status, &line.changing) {
        (LineStatus::Pending, _) => ("sending…".to_owned(), "pending"),
        (LineStatus::Failed(why), _) => (format!("not sent: {why}"), "failed"),
        (LineStatus::Sent, Some(_)) => ("saving…".to_owned(), "pending"),
        (LineStatus::Sent, None) => (String::new(), ""),
    };
    let failed = matches!(line.status, LineStatus::Failed(_));
    let key = line.key.clone();
    let retry = actions.retry.filter(|_| failed).map(|on_retry| {
        view! {
            <button class="retry" type="button" on:click=move |_| on_retry.run(key.clone())>"Retry"</button>
        }
    });
    let grouped = if decor.continued { "cont" } else { "" };
    // The focus is in this line: its buttons are Tab stops (elsewhere the
    // whole history is one, see `MessageList`).
    let inside = RwSignal::new(false);
    let stop = Signal::derive(move || if inside.get() { "0" } else { "-1" });
    let element = NodeRef::<leptos::html::Div>::new();
    let quote = line
        .reply_to
        .map(|target| quote_view(chat, room.clone(), target, actions.quote, stop));
    // The emoji picker of this line is open.
    let picking = RwSignal::new(false);
    let me = chat.with_untracked(|c| c.me.as_ref().map(|u| u.id.clone()).unwrap_or_default());
    let reactions = line
        .seq
        .filter(|_| !line.deleted)
        .map(|seq| reactions_view(&line, seq, &me, picking, actions.react, stop));
    let stored = line
        .seq
        .filter(|_| line.status == LineStatus::Sent && !line.deleted);
    let menu = stored.map(|seq| {
        let moderator = {
            let room = room.clone();
            move || chat.with(|c| c.rooms.get(&room).is_some_and(|r| r.moderator))
        };
        let react = actions.react.map(|_| {
            view! {
                <button type="button" aria-expanded=move || picking.get().to_string()
                    on:click=move |_| picking.update(|p| *p = !*p)>"React"</button>
            }
        });
        let reply = actions.reply.map(|on_reply| {
            view! { <button type="button" on:click=move |_| on_reply.run(seq)>"Reply"</button> }
        });
        let edit = actions.edit.filter(|_| own).map(|_| {
            view! { <button type="button" on:click=move |_| editing.set(Some(seq))>"Edit"</button> }
        });
        let delete = actions.delete.map(|on_delete| {
            view! {
                <Show when=move || own || moderator()>
                    <button type="button" on:click=move |_| {
                        let sure = window()
                            .confirm_with_message("Delete this message? Everyone will see that a message was deleted.")
                            .unwrap_or(false);
                        if sure {
                            on_delete.run(seq);
                        }
                    }>"Delete"</button>
                </Show>
            }
        });
        view! {
            <div class="actions" role="group" aria-label=format!("Message from {}", line.user.name)>
                {react}{reply}{edit}{delete}
            </div>
        }
    });
    let my_username = chat.with_untracked(|c| c.me.as_ref().and_then(|me| me.username.clone()));
    let body = {
        let text = line.content.clone();
        let formatted = line.formatted.clone();
        let files = line.files.clone();
        let (deleted, edited) = (line.deleted, line.edited);
        let on_edit = actions.edit;
        move || {
            match (line.seq, on_edit) {
            (Some(seq), Some(on_edit)) if editing.get() == Some(seq) => {
                edit_form(seq, text.clone(), editing, on_edit).into_any()
            }
            _ if deleted => view! {
                <div class="content deleted"><em>"This message was deleted."</em></div>
            }
            .into_any(),
            _ => view! {
                {(!text.is_empty() || files.is_empty()).then(|| view! {
                    <div class="content">
                        {rich_text::content(&text, formatted.as_deref(), my_username.as_deref(), stop)}
                        {edited.then(|| view! { <span class="edited">" (edited)"</span> })}
                    </div>
                })}
                {(!files.is_empty()).then(|| view! {
                    <crate::file_view::MessageFiles files=files.clone() stop />
                })}
            }
            .into_any(),
        }
        }
    };
    view! {
        <div class=format!("line {} {grouped} {status_class}", if own { "own" } else { "other" })
            data-seq=line.seq.map(|s| s.to_string()) title=hover
            // A tap selects the message (focus), which shows its actions
            // on a touch screen, where nothing hovers.
            tabindex="-1"
            // Escape closes the emoji picker without a choice (and only
            // that: search results, if open, wait for the next Escape).
            on:keydown=move |ev: leptos::ev::KeyboardEvent| {
                if ev.key() == "Escape" && picking.get_untracked() {
                    ev.stop_propagation();
                    picking.set(false);
                }
            }
            node_ref=element
            on:focusin=move |_| inside.set(true)
            on:focusout=move |_| {
                // Where the focus went is known once it got there.
                request_animation_frame(move || {
                    let within = element
                        .get_untracked()
                        .zip(document().active_element())
                        .is_some_and(|(line, active)| line.contains(Some(&active)));
                    let _ = inside.try_set(within);
                });
            }>
            <div class="meta">
                {avatar}
                <button type="button" class="author" title=who.clone()
                    aria-label=who.clone() tabindex=stop
                    on:click=move |_| shown_id.update(|s| *s = !*s)>
                    {line.user.name.clone()}
                    <Show when=move || shown_id.get()>
                        <span class="short-id">" · " {short.clone()}</span>
                    </Show>
                </button>
                {line.user.is_bot().then(|| view! { <span class="tag">"bot"</span> })}
                {match line.seq {
                    // The time is the message's link (`/rooms/{room}/{seq}`):
                    // to copy, or to follow back to it in place.
                    Some(seq) => view! {
                        <a class="permalink" href=links::path(&room, Some(seq)) tabindex=stop
                            aria-label=format!("Link to this message, {full}")>
                            <time datetime=iso title=full.clone()>{clock(line.ts)}</time>
                        </a>
                    }.into_any(),
                    None => view! { <time datetime=iso title=full>{clock(line.ts)}</time> }.into_any(),
                }}
                <span class="state">{status_text}</span>
                {retry}
            </div>
            {quote}
            {body}
            {reactions}
            {menu}
        </div>
    }
    .into_any()
}

/// "Alice set the topic to “…”" (or cleared it): a line of the log, not
/// a message, with when it happened.
fn topic_line(line: &Line) -> impl IntoView + use<> {
    let (iso, full) = timestamps(line.ts);
    let what = if line.content.is_empty() {
        " cleared the topic".to_owned()
    } else {
        format!(" set the topic to “{}”", line.content)
    };
    view! {
        <div class="line topic-change" data-seq=line.seq.map(|s| s.to_string()) title=full>
            <strong>{line.user.name.clone()}</strong>
            {what}
            " · "
            <time datetime=iso>{clock(line.ts)}</time>
        </div>
    }
}

/// The reactions under a message, each a toggle ("👍 2", pressed if one is
/// yours, naming who on hover and to screen readers), and the picker.
fn reactions_view(
    line: &Line,
    seq: u64,
    me: &str,
    picking: RwSignal<bool>,
    on_react: Option<Callback<(u64, String, bool)>>,
    stop: Signal<&'static str>,
) -> impl IntoView + use<> {
    let toggle = move |emoji: String, on: bool| {
        picking.set(false);
        if let Some(on_react) = on_react {
            on_react.run((seq, emoji, on));
        }
    };
    let chips = line
        .reactions
        .iter()
        .map(|r| {
            let mine = r.users.iter().any(|u| u.id == me);
            let names: Vec<&str> = r.users.iter().map(|u| u.name.as_str()).collect();
            let names = names.join(", ");
            let label = format!("{} {}, by {names}", r.emoji, r.users.len());
            let emoji = r.emoji.clone();
            view! {
                <button type="button" class="chip" aria-pressed=mine.to_string() title=names tabindex=stop
                    aria-label=label on:click=move |_| toggle(emoji.clone(), !mine)>
                    {r.emoji.clone()} " " <span class="n">{r.users.len()}</span>
                </button>
            }
        })
        .collect_view();
    // Every emoji this person reacted with here: picking one again takes
    // it back.
    let mine: Vec<String> = line
        .reactions
        .iter()
        .filter(|r| r.users.iter().any(|u| u.id == me))
        .map(|r| r.emoji.clone())
        .collect();
    let more = RwSignal::new(false);
    let from_picker = {
        let mine = mine.clone();
        Callback::new(move |emoji: String| {
            more.set(false);
            let on = !mine.contains(&emoji);
            toggle(emoji, on);
        })
    };
    view! {
        <div class="reactions">
            {chips}
            <Show when=move || picking.get()>
                <div class="picker" role="group" aria-label="React with">
                    {common::validate::REACTIONS
                        .iter()
                        .map(|emoji| {
                            let on = !mine.iter().any(|m| m == emoji);
                            view! {
                                <button type="button" aria-label=format!("React with {emoji}")
                                    on:click=move |_| toggle((*emoji).to_owned(), on)>{*emoji}</button>
                            }
                        })
                        .collect_view()}
                    <button type="button" class="more-emoji" aria-label="More emoji" title="More emoji"
                        aria-expanded=move || more.get().to_string()
                        on:click=move |_| more.update(|m| *m = !*m)>"+"</button>
                </div>
                <Show when=move || more.get()>
                    <EmojiPicker on_pick=from_picker on_close=Callback::new(move |()| more.set(false)) />
                </Show>
            </Show>
        </div>
    }
}

/// "↪ Alice: the first words…" above a reply; a button that shows the
/// quoted message (loading older history if it is not on screen).
fn quote_view(
    chat: Signal<Chat>,
    room: String,
    target: u64,
    on_quote: Option<Callback<u64>>,
    stop: Signal<&'static str>,
) -> impl IntoView {
    let described = Memo::new(move |_| {
        chat.with(|c| match c.quoted(&room, target) {
            Some(l) if l.deleted => (l.user.name.clone(), "a deleted message".to_owned()),
            Some(l) => (
                l.user.name.clone(),
                snippet(&markup::summary(
                    &l.content,
                    l.formatted.as_deref(),
                    &l.files,
                )),
            ),
            None => (String::new(), "an earlier message".to_owned()),
        })
    });
    view! {
        <button type="button" class="quote" title="Show the message this answers" tabindex=stop
            on:click=move |_| {
                if let Some(on_quote) = on_quote {
                    on_quote.run(target);
                }
            }>
            <span class="quote-who"><span class="visually-hidden">"In reply to "</span>
                <span aria-hidden="true">"↪ "</span>{move || described.get().0}</span>
            <span class="quote-text">{move || described.get().1}</span>
        </button>
    }
}

/// The first line of `text` (plain text: `markup::summary`), shortened
/// to `QUOTE_CHARS`.
pub fn snippet(text: &str) -> String {
    let first = text.lines().next().unwrap_or_default();
    if first.chars().count() > QUOTE_CHARS || text.lines().nth(1).is_some() {
        let short: String = first.chars().take(QUOTE_CHARS).collect();
        format!("{}…", short.trim_end())
    } else {
        first.to_owned()
    }
}

/// Editing a message in place: Enter saves, Shift+Enter starts a new line,
/// Escape cancels, Ctrl/Cmd+B, I, E format as in the message box.
fn edit_form(
    seq: u64,
    original: String,
    editing: RwSignal<Option<u64>>,
    on_edit: Callback<(u64, String)>,
) -> impl IntoView {
    let text = RwSignal::new(original.clone());
    let area = NodeRef::<leptos::html::Textarea>::new();
    Effect::new(move |_| {
        if let Some(el) = area.get() {
            let _ = el.focus();
        }
    });
    let save = move || {
        let value = text.get_untracked();
        editing.set(None);
        if value != original && common::validate::content(&value).is_ok() {
            on_edit.run((seq, value));
        }
    };
    let save_on_submit = save.clone();
    view! {
        <form class="edit" on:submit=move |ev| { ev.prevent_default(); save_on_submit(); }>
            <textarea node_ref=area aria-label="Edit message" rows="2"
                prop:value=move || text.get()
                on:input=move |ev| text.set(event_target_value(&ev))
                on:keydown=move |ev: leptos::ev::KeyboardEvent| {
                    if let Some(el) = area.get_untracked()
                        && let Some(value) = format_shortcut(&ev, &el)
                    {
                        text.set(value);
                    } else if ev.key() == "Enter" && !ev.shift_key() && !ev.is_composing() {
                        ev.prevent_default();
                        save();
                    } else if ev.key() == "Escape" {
                        ev.stop_propagation();
                        editing.set(None);
                    }
                }></textarea>
            <div class="edit-buttons">
                <button type="submit">"Save"</button>
                <button type="button" class="link" on:click=move |_| editing.set(None)>"Cancel"</button>
            </div>
        </form>
    }
}

/// `datetime` (ISO 8601) and a full local date and time, for `<time>`.
fn timestamps(ts_ms: i64) -> (String, String) {
    let date = js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(ts_ms as f64));
    let iso = date.to_iso_string().as_string().unwrap_or_default();
    let full = date
        .to_locale_string("en-GB", &wasm_bindgen::JsValue::UNDEFINED)
        .as_string()
        .unwrap_or_default();
    (iso, full)
}
