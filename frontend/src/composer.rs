//! The message box of the room on screen: a draft per room (kept across
//! reloads), Enter to send, growing with its text,
//! a byte counter near the limit, the message being answered,
//! `@username` completion from the room's members, an emoji picker,
//! Ctrl/Cmd+B, I, E for bold, italic and code, and files attached by the
//! button, a paste or a drop anywhere on the page (see `attachments.rs`).

use common::User;
use leptos::prelude::*;

use leptos::task::spawn_local;

use crate::attachments::{self, State, Tray};
use crate::emoji_picker::{self, EmojiPicker};
use crate::{emoji, reading, uploading};

/// Show the byte counter once a message is this close to the limit.
const COUNTER_FROM_BYTES: usize = common::validate::MAX_CONTENT_BYTES - 512;

/// The message box of the current room. Each room keeps its own draft, and
/// switching rooms puts the cursor back in the box. Near the 4096-byte
/// limit a counter appears; over it, a message says by how much.
#[component]
pub fn Composer(
    #[prop(into)] room: Signal<String>,
    /// The text and the files (uploaded) of a message to send.
    on_send: Callback<(String, Vec<common::FileInfo>)>,
    on_typing: Callback<()>,
    /// "Replying to Alice: …" while the next message answers one.
    #[prop(optional, into)]
    replying: Option<Signal<Option<String>>>,
    #[prop(optional)] on_cancel_reply: Option<Callback<()>>,
    /// The room's members, to complete `@username` from.
    #[prop(optional, into)]
    members: Option<Signal<Vec<User>>>,
    /// Up arrow in the empty box: edit the last message sent.
    #[prop(optional)]
    on_edit_last: Option<Callback<()>>,
    /// `(room, text)` as typed, to keep the draft for the account.
    #[prop(optional)]
    on_draft: Option<Callback<(String, String)>>,
    /// A draft from another device, `(room, text)`: put in the box if it
    /// is for the room on screen and the box is empty.
    #[prop(optional, into)]
    incoming: Option<Signal<Option<(String, String)>>>,
) -> impl IntoView {
    use common::validate::MAX_CONTENT_BYTES;
    // Each room's draft is kept as it is typed: here, and in `storage`
    // (per account and room) when signed in, so it survives a reload.
    let drafts = StoredValue::new(std::collections::HashMap::<String, String>::new());
    let draft_of = move |room: &str| {
        drafts
            .with_value(|d| d.get(room).cloned())
            .unwrap_or_else(|| crate::storage::load_draft(room))
    };
    let text = RwSignal::new(draft_of(&room.get_untracked()));
    let shown = StoredValue::new(room.get_untracked());
    let area = NodeRef::<leptos::html::Textarea>::new();
    Effect::new(move |_| {
        let now = room.get();
        if now == shown.get_value() {
            return;
        }
        text.set(draft_of(&now));
        shown.set_value(now);
        if let Some(el) = area.get_untracked() {
            let _ = el.focus();
        }
    });
    let keep_draft = move || {
        let (room, value) = (shown.get_value(), text.get_untracked());
        crate::storage::save_draft(&room, &value);
        if let Some(on_draft) = on_draft {
            on_draft.run((room.clone(), value.clone()));
        }
        drafts.update_value(|d| {
            d.insert(room, value);
        });
    };
    if let Some(incoming) = incoming {
        Effect::new(move |_| {
            let Some((room, draft)) = incoming.get() else {
                return;
            };
            if room == shown.get_value() && text.with_untracked(String::is_empty) {
                text.set(draft.clone());
                drafts.update_value(|d| {
                    d.insert(room, draft);
                });
            }
        });
    }
    // The files of the next message: they upload as soon as they are
    // chosen, to the room on screen (a room switch keeps them for it).
    let tray = RwSignal::new(Tray::default());
    let tray_room = StoredValue::new(String::new());
    let picker = NodeRef::<leptos::html::Input>::new();
    let upload_notice = RwSignal::new(None::<String>);
    let files_of = StoredValue::new_local(std::collections::HashMap::<u32, web_sys::File>::new());
    let token = StoredValue::new(
        use_context::<crate::file_view::FileToken>()
            .map(|t| t.0)
            .unwrap_or_default(),
    );
    let start_upload = move |key: u32, file: web_sys::File| {
        let token = token.get_value();
        uploading::start(
            key,
            &token,
            &tray_room.get_value(),
            &file,
            move |sent| {
                let _ = tray.try_update(|t| t.progress(key, sent));
            },
            move |result| {
                let _ = tray.try_update(|t| match result {
                    Ok(info) => t.done(key, info),
                    Err(why) => t.failed(key, why),
                });
            },
        );
    };
    let attach = move |list: Vec<web_sys::File>| {
        if list.is_empty() {
            return;
        }
        let now = room.get_untracked();
        if tray.with_untracked(|t| t.items.is_empty()) {
            tray_room.set_value(now);
        } else if tray_room.get_value() != now {
            upload_notice.set(Some(format!(
                "Send or remove the files for #{} first.",
                tray_room.get_value()
            )));
            return;
        }
        upload_notice.set(None);
        for file in list {
            match tray.try_update(|t| t.add(&file.name(), file.size() as u64)) {
                Some(Ok(key)) => {
                    files_of.update_value(|f| {
                        f.insert(key, file.clone());
                    });
                    start_upload(key, file);
                }
                Some(Err(why)) => {
                    upload_notice.set(Some(why));
                    break;
                }
                None => break,
            }
        }
    };
    let remove = move |key: u32| {
        uploading::cancel(key);
        tray.update(|t| {
            t.remove(key);
        });
        files_of.update_value(|f| {
            f.remove(&key);
        });
    };
    let retry = move |key: u32| {
        if tray.try_update(|t| t.retry(key)) == Some(true)
            && let Some(file) = files_of.with_value(|f| f.get(&key).cloned())
        {
            start_upload(key, file);
        }
    };
    // Files dropped anywhere on the page, or pasted into the box.
    let dragging = RwSignal::new(false);
    let over = window_event_listener(leptos::ev::dragover, move |ev| {
        if carries_files(&ev) {
            ev.prevent_default();
            dragging.set(true);
        }
    });
    let left = window_event_listener(leptos::ev::dragleave, move |ev| {
        if ev.related_target().is_none() {
            dragging.set(false);
        }
    });
    let dropped = window_event_listener(leptos::ev::drop, move |ev| {
        dragging.set(false);
        if carries_files(&ev) {
            ev.prevent_default();
            attach(
                ev.data_transfer()
                    .map(|d| files(d.files()))
                    .unwrap_or_default(),
            );
        }
    });
    on_cleanup(move || {
        over.remove();
        left.remove();
        dropped.remove();
    });
    // Not while a file is uploading or failed (retry or remove it).
    let waiting = move || tray.with(|t| t.uploading() || t.has_failed());
    let send = move || {
        let value = text.get_untracked();
        let Some(files) = tray.with_untracked(Tray::ready) else {
            return;
        };
        let blank = value.trim().is_empty();
        if (blank && !files.is_empty()) || common::validate::content(&value).is_ok() {
            on_send.run((if blank { String::new() } else { value }, files));
            text.set(String::new());
            tray.update(Tray::clear);
            files_of.update_value(std::collections::HashMap::clear);
            keep_draft();
        }
    };
    let tray_view = move || {
        let items = tray.with(|t| t.items.clone());
        (!items.is_empty()).then(|| {
            view! {
                <ul class="attachments" aria-label="Files to send">
                    {items.into_iter().map(|a| {
                        let key = a.key;
                        let percent = a.percent();
                        let size = attachments::human_size(a.size);
                        let (status, failed, retryable) = match &a.state {
                            State::Uploading { .. } => (format!("Uploading, {percent}%"), false, false),
                            State::Done(_) => (size, false, false),
                            State::Failed { why, retry } => (format!("Failed: {why}"), true, *retry),
                        };
                        let uploading = matches!(a.state, State::Uploading { .. });
                        let name = a.name.clone();
                        view! {
                            <li class="attachment" class:failed=failed>
                                <span class="file-name">{a.name.clone()}</span>
                                <span class="muted" aria-live="polite">{status}</span>
                                {uploading.then(|| view! {
                                    <progress max="100" value=percent.to_string()
                                        aria-label=format!("Uploading {name}")></progress>
                                })}
                                {retryable.then(|| view! {
                                    <button type="button" class="link" on:click=move |_| retry(key)>"Retry"</button>
                                })}
                                <button type="button" class="link"
                                    aria-label=format!("{} {}", if uploading { "Cancel" } else { "Remove" }, a.name)
                                    on:click=move |_| remove(key)>
                                    {if uploading { "Cancel" } else { "Remove" }}
                                </button>
                            </li>
                        }
                    }).collect_view()}
                </ul>
            }
        })
    };
    // Signed in, or a reload: the cursor starts in the box where there
    // is a keyboard to type with (not on a phone, where focusing would
    // cover half the screen with one), unless something else has it.
    request_animation_frame(move || {
        let wide = window()
            .match_media("(min-width: 701px)")
            .ok()
            .flatten()
            .is_some_and(|m| m.matches());
        let elsewhere = document()
            .active_element()
            .is_some_and(|el| el.tag_name() != "BODY");
        if wide
            && !elsewhere
            && let Some(el) = area.get_untracked()
        {
            let _ = el.focus();
        }
    });
    // Choosing a message to answer puts the cursor in the box.
    Effect::new(move |_| {
        if replying.is_some_and(|r| r.get().is_some())
            && let Some(el) = area.get_untracked()
        {
            let _ = el.focus();
        }
    });
    let cancel_reply = move || {
        if let Some(cancel) = on_cancel_reply {
            cancel.run(());
        }
    };
    let reply_bar = move || {
        replying.and_then(|r| r.get()).map(|label| {
            view! {
                <div class="replying" role="status">
                    <span>{label}</span>
                    <button type="button" class="link" aria-label="Cancel the reply"
                        on:click=move |_| cancel_reply()>"Cancel"</button>
                </div>
            }
        })
    };
    // `@` completion: who matches what is typed after the `@` at the cursor;
    // `:shortcode` completion: which emoji (the list loads on first use).
    let suggestions = RwSignal::new(Vec::<Suggestion>::new());
    let chosen = RwSignal::new(0usize);
    let typing_at = StoredValue::new(None::<(usize, usize)>);
    let emoji_loaded = RwSignal::new(0u32);
    let suggest = move || {
        let Some(el) = area.get_untracked() else {
            return;
        };
        let value = text.get_untracked();
        let cursor = byte_offset(&value, el.selection_start().ok().flatten().unwrap_or(0));
        let people = reading::mention_at(&value, cursor).and_then(|(at, typed)| {
            let typed = typed.to_ascii_lowercase();
            let list: Vec<Suggestion> = members?.with_untracked(|all| {
                all.iter()
                    .filter(|u| {
                        u.username.as_deref().is_some_and(|n| n.starts_with(&typed))
                            || u.name.to_lowercase().starts_with(&typed)
                    })
                    .filter(|u| u.username.is_some())
                    .take(6)
                    .cloned()
                    .map(Suggestion::Person)
                    .collect()
            });
            (!list.is_empty()).then_some((at, cursor, list))
        });
        let found = people.or_else(|| {
            let (at, typed) = emoji::shortcode_at(&value, cursor)?;
            let Some(groups) = emoji_picker::cached() else {
                // Asked again once the list is here.
                spawn_local(async move {
                    if emoji_picker::load().await.is_ok() {
                        let _ = emoji_loaded.try_update(|n| *n += 1);
                    }
                });
                return None;
            };
            let list: Vec<Suggestion> = emoji::by_shortcode(&groups, typed, 6)
                .into_iter()
                .map(|(e, code)| Suggestion::Emoji {
                    emoji: e.emoji.clone(),
                    code: code.to_owned(),
                })
                .collect();
            (!list.is_empty()).then_some((at, cursor, list))
        });
        match found {
            Some((at, cursor, list)) => {
                typing_at.set_value(Some((at, cursor)));
                if chosen.get_untracked() >= list.len() {
                    chosen.set(0);
                }
                suggestions.set(list);
            }
            None => {
                typing_at.set_value(None);
                suggestions.set(Vec::new());
            }
        }
    };
    // The emoji list arrived while a shortcode was being typed: suggest.
    Effect::new(move |first: Option<()>| {
        emoji_loaded.track();
        if first.is_some() {
            suggest();
        }
    });
    let complete = move |picked: &Suggestion| {
        let Some((at, cursor)) = typing_at.get_value() else {
            return;
        };
        let value = text.get_untracked();
        let (value, after) = match picked {
            Suggestion::Person(user) => {
                let Some(username) = user.username.as_deref() else {
                    return;
                };
                reading::complete_mention(&value, at, cursor, username)
            }
            Suggestion::Emoji { emoji, .. } => {
                let done = format!(
                    "{}{emoji}{}",
                    &value[..at],
                    &value[cursor.min(value.len())..]
                );
                (done, at + emoji.len())
            }
        };
        let caret = value[..after].encode_utf16().count() as u32;
        text.set(value);
        keep_draft();
        suggestions.set(Vec::new());
        typing_at.set_value(None);
        if let Some(el) = area.get_untracked() {
            request_animation_frame(move || {
                let _ = el.focus();
                let _ = el.set_selection_range(caret, caret);
            });
        }
    };
    // The emoji picker, for the box: what is picked goes in at the cursor.
    let emoji_open = RwSignal::new(false);
    let insert_emoji = Callback::new(move |emoji: String| {
        emoji_open.set(false);
        let Some(el) = area.get_untracked() else {
            return;
        };
        let value = text.get_untracked();
        let start = byte_offset(
            &value,
            el.selection_start().ok().flatten().unwrap_or(u32::MAX),
        );
        let end = byte_offset(
            &value,
            el.selection_end().ok().flatten().unwrap_or(u32::MAX),
        )
        .max(start);
        let value = format!("{}{emoji}{}", &value[..start], &value[end..]);
        let caret = value[..start + emoji.len()].encode_utf16().count() as u32;
        text.set(value);
        keep_draft();
        request_animation_frame(move || {
            let _ = el.focus();
            let _ = el.set_selection_range(caret, caret);
        });
    });
    let suggestion_list = move || {
        let list = suggestions.get();
        (!list.is_empty()).then(|| {
            view! {
                <ul class="mentions-list" id="mention-list" role="listbox" aria-label="Suggestions">
                    {list
                        .into_iter()
                        .enumerate()
                        .map(|(i, suggestion)| {
                            let shown = match &suggestion {
                                Suggestion::Person(user) => {
                                    let handle = reading::handle(user);
                                    view! { <strong>{user.name.clone()}</strong> " " <span class="muted">{handle}</span> }.into_any()
                                }
                                Suggestion::Emoji { emoji, code } => {
                                    view! { <span class="emoji">{emoji.clone()}</span> " " <span class="muted">{format!(":{code}:")}</span> }.into_any()
                                }
                            };
                            view! {
                                <li role="option" id=format!("mention-{i}")
                                    aria-selected=move || (chosen.get() == i).to_string()
                                    on:mousedown=move |ev| { ev.prevent_default(); complete(&suggestion); }>
                                    {shown}
                                </li>
                            }
                        })
                        .collect_view()}
                </ul>
            }
        })
    };
    let bytes = move || text.with(String::len);
    let too_long = move || bytes() > MAX_CONTENT_BYTES;
    let counter = move || {
        let n = bytes();
        if n > MAX_CONTENT_BYTES {
            format!(
                "{} bytes too long: a message holds at most {MAX_CONTENT_BYTES} bytes",
                n - MAX_CONTENT_BYTES
            )
        } else {
            format!("{n} / {MAX_CONTENT_BYTES} bytes")
        }
    };
    view! {
        <form class="composer" class:dragging=move || dragging.get()
            on:submit=move |ev| { ev.prevent_default(); send(); }>
            {reply_bar}
            {suggestion_list}
            {tray_view}
            {move || upload_notice.get().map(|why| view! { <p class="form-error" role="alert">{why}</p> })}
            // Opened by the button beside it (a hidden file input still
            // opens its chooser when clicked from script).
            <input type="file" multiple=true node_ref=picker hidden=true
                on:change=move |_| {
                    if let Some(input) = picker.get_untracked() {
                        attach(files(input.files()));
                        input.set_value("");
                    }
                } />

            <textarea
                node_ref=area
                id="composer"
                rows="1"
                placeholder="Write a message…"
                title="Enter sends, Shift+Enter starts a new line; Ctrl+B bold, Ctrl+I italic, Ctrl+E code"
                aria-label="Message"
                aria-describedby="composer-counter"
                prop:value=move || text.get()
                aria-autocomplete="list"
                aria-controls=move || (!suggestions.with(Vec::is_empty)).then_some("mention-list")
                aria-activedescendant=move || {
                    (!suggestions.with(Vec::is_empty)).then(|| format!("mention-{}", chosen.get()))
                }
                on:input=move |ev| {
                    text.set(event_target_value(&ev));
                    keep_draft();
                    on_typing.run(());
                    suggest();
                }
                on:click=move |_| suggest()
                on:paste=move |ev: leptos::ev::ClipboardEvent| {
                    let pasted = ev.clipboard_data().map(|d| files(d.files())).unwrap_or_default();
                    if !pasted.is_empty() {
                        ev.prevent_default();
                        attach(pasted);
                    }
                }
                on:keydown=move |ev: leptos::ev::KeyboardEvent| {
                    let open = suggestions.with_untracked(|s| s.len());
                    if open > 0 && !ev.is_composing() {
                        match ev.key().as_str() {
                            "ArrowDown" => {
                                ev.prevent_default();
                                chosen.update(|c| *c = (*c + 1) % open);
                                return;
                            }
                            "ArrowUp" => {
                                ev.prevent_default();
                                chosen.update(|c| *c = (*c + open - 1) % open);
                                return;
                            }
                            "Enter" | "Tab" => {
                                ev.prevent_default();
                                let picked = suggestions.with_untracked(|s| s[chosen.get_untracked().min(open - 1)].clone());
                                complete(&picked);
                                return;
                            }
                            "Escape" => {
                                ev.stop_propagation();
                                suggestions.set(Vec::new());
                                return;
                            }
                            _ => {}
                        }
                    }
                    if let Some(el) = area.get_untracked()
                        && let Some(value) = format_shortcut(&ev, &el)
                    {
                        text.set(value);
                        keep_draft();
                        return;
                    }
                    if ev.key() == "ArrowUp"
                        && text.with_untracked(String::is_empty)
                        && let Some(edit_last) = on_edit_last
                    {
                        ev.prevent_default();
                        edit_last.run(());
                        return;
                    }
                    if ev.key() == "Enter" && !ev.shift_key() && !ev.is_composing() {
                        ev.prevent_default();
                        send();
                    } else if ev.key() == "Escape" && replying.is_some_and(|r| r.get_untracked().is_some()) {
                        cancel_reply();
                    }
                }
            ></textarea>
            <button type="button" class="attach-button" aria-label="Attach files" title="Attach files"
                on:click=move |_| {
                    if let Some(input) = picker.get_untracked() {
                        input.click();
                    }
                }>"📎"</button>
            <div class="composer-emoji">
                <button type="button" class="emoji-button" aria-label="Insert an emoji" title="Insert an emoji"
                    aria-expanded=move || emoji_open.get().to_string()
                    on:click=move |_| emoji_open.update(|o| *o = !*o)>"☺"</button>
                <Show when=move || emoji_open.get()>
                    <EmojiPicker on_pick=insert_emoji on_close=Callback::new(move |()| emoji_open.set(false)) />
                </Show>
            </div>
            <button type="submit" disabled=move || too_long() || waiting()>"Send"</button>
            <p id="composer-counter" class="counter" class:over=too_long aria-live="polite">
                {move || (bytes() > COUNTER_FROM_BYTES).then(counter)}
            </p>
        </form>
    }
}

/// Ctrl/Cmd+B, I, E: bold, italic or code around the selection of `el`
/// (again: undone), for the message box and the edit box. The new text,
/// already in `el` with the same words selected, if the key was one.
pub fn format_shortcut(
    ev: &leptos::ev::KeyboardEvent,
    el: &web_sys::HtmlTextAreaElement,
) -> Option<String> {
    if !(ev.ctrl_key() || ev.meta_key()) || ev.alt_key() || ev.shift_key() {
        return None;
    }
    let marker = match ev.key().to_ascii_lowercase().as_str() {
        "b" => "**",
        "i" => "_",
        "e" => "`",
        _ => return None,
    };
    ev.prevent_default();
    let start = el.selection_start().ok().flatten().unwrap_or(0);
    let end = el.selection_end().ok().flatten().unwrap_or(start);
    let (value, start, end) = crate::markup::toggle_wrap(&el.value(), start, end, marker);
    el.set_value(&value);
    let _ = el.set_selection_range(start, end);
    Some(value)
}

/// The files of a file list (a picker's, a drop's, a paste's).
fn files(list: Option<web_sys::FileList>) -> Vec<web_sys::File> {
    let Some(list) = list else {
        return Vec::new();
    };
    (0..list.length()).filter_map(|i| list.get(i)).collect()
}

/// Whether a drag carries files (not text or a link being moved).
fn carries_files(ev: &web_sys::DragEvent) -> bool {
    ev.data_transfer().is_some_and(|d| {
        d.types()
            .iter()
            .any(|t| t.as_string().as_deref() == Some("Files"))
    })
}

/// What the list over the box offers for what is being typed.
#[derive(Clone)]
enum Suggestion {
    /// `@username`
    Person(User),
    /// `:shortcode`
    Emoji { emoji: String, code: String },
}

/// The byte offset in `text` of a position counted in UTF-16 units (what
/// the DOM's selection reports).
fn byte_offset(text: &str, utf16: u32) -> usize {
    let mut units = 0u32;
    for (at, c) in text.char_indices() {
        if units >= utf16 {
            return at;
        }
        units += c.len_utf16() as u32;
    }
    text.len()
}
