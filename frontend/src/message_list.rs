//! The messages of one room, and where the list scrolls: following the
//! newest, keeping each room's place (and, across a reload, the reading
//! place), paging older history in at the top, the "New" divider and
//! "Jump to first unread", and bringing a linked message into view. The
//! decisions are pure (`scrolling.rs`, `place.rs`, `Chat::first_new`);
//! this measures and scrolls.

use std::collections::HashMap;

use leptos::prelude::*;
use wasm_bindgen::JsCast;

use crate::chat::Chat;
use crate::message_line::{LineActions, MessageLine};
use crate::place::{self, Anchor};
use crate::reading;
use crate::scrolling::{self, Change, Place, Scroll};
use crate::storage;

/// The messages of one room. Content is always rendered as text.
/// Scrolling to the top calls `on_top` (to load older messages); the view
/// keeps its place when they are added above.
#[component]
pub fn MessageList(
    #[prop(into)] chat: Signal<Chat>,
    #[prop(into)] room: Signal<String>,
    #[prop(optional)] on_top: Option<Callback<()>>,
    /// What the reader can do to a line (retry, reply, edit, delete).
    #[prop(optional)]
    actions: LineActions,
    /// The line being edited, if any (the composer's Up arrow sets it).
    #[prop(optional)]
    editing: Option<RwSignal<Option<u64>>>,
    /// "Jump to first unread": loads history back to it if needed, then
    /// shows it (see `Conversation::jump_to_new`).
    #[prop(optional)]
    on_jump: Option<Callback<()>>,
) -> impl IntoView {
    let editing = editing.unwrap_or_else(|| RwSignal::new(None::<u64>));
    let lines = move || {
        let room = room.get();
        chat.with(|c| {
            c.rooms
                .get(&room)
                .map(|r| r.lines.clone())
                .unwrap_or_default()
        })
    };
    // Lines with their separators and grouping (see `reading.rs`), and
    // whether the "New" divider goes before it (see `place.rs`).
    let decorated = move || {
        let lines = lines();
        let decor = reading::decorate(&lines, local_offset_min());
        let first_new = chat.with(|c| c.first_new(&room.get()));
        lines
            .into_iter()
            .zip(decor)
            .map(|(line, decor)| {
                let new_here = first_new.is_some() && line.seq == first_new;
                (line, decor, new_here)
            })
            .collect::<Vec<_>>()
    };
    let list = NodeRef::<leptos::html::Div>::new();
    // Following the newest messages, unless the reader scrolled up.
    let pinned = StoredValue::new(true);
    // Each room's place, kept as the reader scrolls (see `scrolling.rs`).
    let places = StoredValue::new(HashMap::<String, Place>::new());
    // What was drawn last: the room, and the key of its last line.
    let drawn = StoredValue::new((String::new(), None::<String>));
    let unseen = RwSignal::new(0u32);
    // The "New" divider is above the view (or not loaded yet): offer to
    // jump to it.
    let new_above = RwSignal::new(false);
    // After a reload: the place kept in storage, restored once the room's
    // history is in (see `place.rs`).
    let restoring = StoredValue::new(None::<(String, Anchor)>);
    // Pages of history asked for it, and the floor when last asked.
    let restore_pages = StoredValue::new((0u32, 0u64));
    // "Jump to first unread" is paging history in: show the divider once
    // it is drawn.
    let jumping = StoredValue::new(false);
    // The last request to show a message that was carried out.
    let shown = StoredValue::new(None::<u32>);
    // The scroll height before older messages were requested, to keep the
    // reader's place when they arrive above.
    let anchor = StoredValue::new(None::<i32>);
    // The reading place is written to storage once scrolling pauses, not
    // on every scroll event; a new scroll replaces (cancels) the timer.
    let place_save = StoredValue::new_local(None::<gloo_timers::callback::Timeout>);
    let mine = move |line: &crate::chat::Line| {
        chat.with_untracked(|c| c.me.as_ref().is_some_and(|me| me.id == line.user.id))
    };
    Effect::new(move |_| {
        let lines = lines();
        let room_now = room.get();
        let Some(el) = list.get() else { return };
        if let Some(old_height) = anchor.get_value() {
            request_animation_frame(move || {
                if el.scroll_height() != old_height {
                    anchor.set_value(None);
                    el.set_scroll_top(el.scroll_height() - old_height);
                }
            });
            return;
        }
        let (drawn_room, drawn_last) = drawn.get_value();
        let switched =
            (drawn_room != room_now).then(|| places.with_value(|p| p.get(&room_now).copied()));
        // Lines after the last one drawn are new at the end.
        let new_at_end: &[crate::chat::Line] = match &drawn_last {
            _ if switched.is_some() => &[],
            Some(key) => match lines.iter().rposition(|l| &l.key == key) {
                Some(at) => &lines[at + 1..],
                None => &[],
            },
            None => &lines,
        };
        let change = Change {
            switched,
            others_added: new_at_end.iter().filter(|l| !mine(l)).count() as u32,
            own_added: new_at_end.iter().any(mine),
        };
        if switched == Some(None) {
            // Not seen in this page's life: perhaps before a reload.
            restoring.set_value(storage::load_place(&room_now).map(|a| (room_now.clone(), a)));
            restore_pages.set_value((0, 0));
        }
        let live = chat.with_untracked(|c| c.rooms.get(&room_now).is_some_and(|r| r.live));
        drawn.set_value((room_now.clone(), lines.last().map(|l| l.key.clone())));
        if switched.is_some() {
            jumping.set_value(false);
        }
        let (scroll, count) =
            scrolling::after_change(change, pinned.get_value(), unseen.get_untracked());
        unseen.set(count);
        // A message to show (a link, a search result, a quote): scrolled
        // to and highlighted once drawn, and no longer following the
        // newest.
        if let Some((seq, number)) = chat.with_untracked(|c| {
            c.shown
                .as_ref()
                .filter(|(r, ..)| *r == room_now)
                .map(|(_, seq, number)| (*seq, *number))
        }) && shown.get_value() != Some(number)
        {
            shown.set_value(Some(number));
            pinned.set_value(false);
            let list_now = el.clone();
            request_animation_frame(move || {
                if let Some(line) = line_element(&list_now, seq) {
                    flash(line);
                }
            });
            return;
        }
        if jumping.get_value() && chat.with_untracked(|c| c.first_new(&room_now).is_some()) {
            jumping.set_value(false);
            pinned.set_value(false);
            let list_now = el.clone();
            request_animation_frame(move || {
                if let Some(divider) = divider_in(&list_now) {
                    divider.scroll_into_view_with_bool(true);
                }
            });
            return;
        }
        let (list_now, room_drawn) = (el.clone(), room_now.clone());
        request_animation_frame(move || new_above.set(new_is_above(&list_now, chat, &room_drawn)));
        if live && let Some((_, anchor)) = restoring.get_value().filter(|(r, _)| *r == room_now) {
            // The history is in (replayed before `joined`): back to the
            // place once its message is here, paging in older history
            // for it (a page a draw, a few at most); else, as for a new
            // visit.
            let (floor, older) = chat.with_untracked(|c| {
                c.rooms
                    .get(&room_now)
                    .map_or((0, false), |r| (r.floor, r.older_available))
            });
            match line_element(&el, anchor.seq) {
                Some(line) => {
                    restoring.set_value(None);
                    pinned.set_value(false);
                    request_animation_frame(move || {
                        let top = line.get_bounding_client_rect().top()
                            - el.get_bounding_client_rect().top();
                        el.set_scroll_top(el.scroll_top() + top as i32 - anchor.offset);
                    });
                    return;
                }
                None if older && anchor.seq < floor && restore_pages.get_value().0 < 10 => {
                    // One page at a time: asked again once the last one
                    // came (the floor moved). Drawn as usual meanwhile.
                    if restore_pages.get_value().1 != floor {
                        restore_pages.update_value(|(pages, asked)| {
                            *pages += 1;
                            *asked = floor;
                        });
                        if let Some(on_top) = on_top {
                            on_top.run(());
                        }
                    }
                }
                None => restoring.set_value(None),
            }
        }
        match scroll {
            Scroll::Bottom => {
                pinned.set_value(true);
                request_animation_frame(move || el.set_scroll_top(el.scroll_height()));
            }
            Scroll::To(top) => {
                pinned.set_value(false);
                request_animation_frame(move || el.set_scroll_top(top));
            }
            Scroll::Stay => {}
        }
    });
    let on_scroll = move |_| {
        if let Some(el) = list.get() {
            let from_bottom = el.scroll_height() - el.scroll_top() - el.client_height();
            let at_bottom = from_bottom < 40;
            pinned.set_value(at_bottom);
            if at_bottom {
                unseen.set(0);
            }
            let place = Place {
                scroll_top: el.scroll_top(),
                pinned: at_bottom,
            };
            let room_now = room.get_untracked();
            // Kept across a reload, unless following the newest.
            let save = {
                let (el, room_then) = (el.clone(), room_now.clone());
                move || {
                    if room.get_untracked() == room_then {
                        let reading_at = if at_bottom { None } else { anchor_in(&el) };
                        storage::save_place(&room_then, reading_at);
                    }
                }
            };
            place_save.set_value(Some(gloo_timers::callback::Timeout::new(
                PLACE_SAVE_AFTER_MS,
                save,
            )));
            new_above.set(new_is_above(&el, chat, &room_now));
            places.update_value(|p| {
                p.insert(room_now, place);
            });
            // At the top, with older history to page in: keep the place
            // while it is added above. (Not without: the place would be
            // kept for a page that never comes, and the list would stop
            // following new messages.)
            let older = chat.with_untracked(|c| {
                c.rooms
                    .get(&room.get_untracked())
                    .is_some_and(|r| r.older_available)
            });
            if el.scroll_top() == 0
                && older
                && let Some(on_top) = on_top
            {
                anchor.set_value(Some(el.scroll_height()));
                on_top.run(());
            }
        }
    };
    // The view shrinking (a phone's on-screen keyboard opening) must not
    // hide the newest message from a reader who was following it.
    let resize = window_event_listener(leptos::ev::resize, move |_| {
        if pinned.get_value()
            && let Some(el) = list.get_untracked()
        {
            request_animation_frame(move || el.set_scroll_top(el.scroll_height()));
        }
    });
    on_cleanup(move || resize.remove());
    let to_newest = move |_| {
        unseen.set(0);
        pinned.set_value(true);
        if let Some(el) = list.get() {
            el.set_scroll_top(el.scroll_height());
        }
    };
    // Up and Down move the focus from message to message (from the list
    // itself, Up starts at the newest); a focused message shows its
    // actions, the next Tab stop. One stop for the whole history instead
    // of four per message.
    let move_between_lines = move |ev: leptos::ev::KeyboardEvent| {
        let up = match ev.key().as_str() {
            "ArrowUp" => true,
            "ArrowDown" => false,
            _ => return,
        };
        // Not while typing (an edit in place).
        let typing = ev
            .target()
            .and_then(|t| t.dyn_into::<web_sys::Element>().ok())
            .is_some_and(|t| matches!(t.tag_name().as_str(), "TEXTAREA" | "INPUT"));
        if typing {
            return;
        }
        let Some(el) = list.get_untracked() else {
            return;
        };
        let Ok(lines) = el.query_selector_all(":scope > .line:not(.topic-change)") else {
            return;
        };
        let lines: Vec<web_sys::HtmlElement> = (0..lines.length())
            .filter_map(|i| lines.item(i))
            .filter_map(|node| node.dyn_into::<web_sys::HtmlElement>().ok())
            .collect();
        if lines.is_empty() {
            return;
        }
        let active = document().active_element();
        // The message the focus is in (on it, or on one of its buttons).
        let at = active.and_then(|a| {
            lines
                .iter()
                .position(|line| line.contains(Some(a.unchecked_ref::<web_sys::Node>())))
        });
        let next = match (at, up) {
            (None, _) => lines.len() - 1,
            (Some(0), true) => 0,
            (Some(i), true) => i - 1,
            (Some(i), false) => (i + 1).min(lines.len() - 1),
        };
        ev.prevent_default();
        let _ = lines[next].focus();
    };
    let older = move || {
        let room = room.get();
        chat.with(|c| c.rooms.get(&room).is_some_and(|r| r.older_available))
    };
    // A room with nothing in it yet says what it is, not a blank pane.
    let empty = move || {
        let room = room.get();
        chat.with(|c| {
            c.rooms
                .get(&room)
                .is_some_and(|r| r.live && r.lines.is_empty() && !r.older_available)
        })
    };
    let intro = move || {
        let room = room.get();
        if crate::chat::is_direct(&room) {
            view! {
                <h2>"The start of your conversation"</h2>
                <p>"Only the two of you can read it."</p>
            }
            .into_any()
        } else {
            view! {
                <h2>"This is the start of #" {room}</h2>
                <p>"Say hello. What is said here is kept: whoever joins later can read it."</p>
            }
            .into_any()
        }
    };
    view! {
        <div class="messages-wrap">
        <Show when=move || new_above.get() && on_jump.is_some()>
            <button type="button" class="jump-new" on:click=move |_| {
                // Reading back: new messages must not pull the view down.
                pinned.set_value(false);
                match list.get_untracked().and_then(|el| divider_in(&el)) {
                    Some(divider) => divider.scroll_into_view_with_bool(true),
                    // Further back than loaded: paged in, then shown
                    // (see the effect above).
                    None => {
                        jumping.set_value(true);
                        if let Some(jump) = on_jump {
                            jump.run(());
                        }
                    }
                }
            }>"Jump to first unread ↑"</button>
        </Show>
        <Show when=move || { unseen.get() > 0 }>
            <button type="button" class="new-below" on:click=to_newest>
                {move || scrolling::unseen_label(unseen.get())}
            </button>
        </Show>
        <div class="messages" node_ref=list on:scroll=on_scroll on:keydown=move_between_lines
            data-testid="messages" role="log" aria-live="polite"
            aria-label="Messages: arrow keys move between them, Tab to a message's actions" tabindex="0">
            <Show when=older>
                <p class="notice">"Scroll up for older messages"</p>
            </Show>
            <Show when=empty>
                <div class="intro">{intro}</div>
            </Show>
            <For
                each=decorated
                key=|(line, decor, new_here)| {
                    (line.key.clone(), line.seq, line.status.clone(), *decor, line.revision, *new_here)
                }
                children=move |(line, decor, new_here)| {
                    let separator = decor.new_day.map(|day| view! {
                        <div class="day" role="separator"><span>{day_label(day)}</span></div>
                    });
                    let divider = new_here.then(|| view! {
                        <div class="new-divider" role="separator" aria-label="New messages"><span>"New"</span></div>
                    });
                    view! {
                        {separator}
                        {divider}
                        <MessageLine line decor chat room=room.get_untracked() editing actions />
                    }
                }
            />
        </div>
        </div>
    }
}

/// Scrolls a message line into view and highlights it for a moment.
fn flash(line: web_sys::Element) {
    line.scroll_into_view();
    let _ = line.class_list().add_1("flash");
    gloo_timers::callback::Timeout::new(1_600, move || {
        let _ = line.class_list().remove_1("flash");
    })
    .forget();
}

/// The "New" divider of the list, if it is drawn.
fn divider_in(list: &web_sys::HtmlDivElement) -> Option<web_sys::Element> {
    list.query_selector(":scope > .new-divider").ok().flatten()
}

/// The message line of `seq` in the list, if it is drawn.
fn line_element(list: &web_sys::HtmlDivElement, seq: u64) -> Option<web_sys::Element> {
    list.query_selector(&format!(":scope > .line[data-seq=\"{seq}\"]"))
        .ok()
        .flatten()
}

/// The reading place of the list as it is scrolled now.
/// How long scrolling must pause before the reading place is kept.
const PLACE_SAVE_AFTER_MS: u32 = 250;

fn anchor_in(list: &web_sys::HtmlDivElement) -> Option<Anchor> {
    let top = list.get_bounding_client_rect().top();
    let lines = list.query_selector_all(":scope > .line[data-seq]").ok()?;
    let measured = (0..lines.length()).filter_map(|i| {
        let line = lines.item(i)?.dyn_into::<web_sys::Element>().ok()?;
        let seq = line.get_attribute("data-seq")?.parse().ok()?;
        let rect = line.get_bounding_client_rect();
        Some((seq, (rect.top() - top) as i32, (rect.bottom() - top) as i32))
    });
    place::anchor_of(measured)
}

/// Whether the "New" divider of `room` is above the view, or further back
/// than the history loaded (its room has a first unread that is not here).
fn new_is_above(list: &web_sys::HtmlDivElement, chat: Signal<Chat>, room: &str) -> bool {
    let Some((new_after, floor, older)) = chat.with_untracked(|c| {
        c.rooms
            .get(room)
            .and_then(|r| Some((r.new_after?, r.floor, r.older_available)))
    }) else {
        return false;
    };
    match divider_in(list) {
        Some(divider) => {
            divider.get_bounding_client_rect().bottom() < list.get_bounding_client_rect().top()
        }
        None => older && floor > new_after + 1,
    }
}

/// Minutes east of UTC in this browser's time zone, now.
fn local_offset_min() -> i32 {
    -(js_sys::Date::new_0().get_timezone_offset() as i32)
}

/// "Today", "Yesterday", or "Sunday, 29 November 2026".
fn day_label(day: i64) -> String {
    const WEEKDAYS: [&str; 7] = [
        "Sunday",
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
        "Saturday",
    ];
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    let offset = local_offset_min();
    let today = reading::local_day(js_sys::Date::now() as i64, offset);
    match today - day {
        0 => return "Today".to_owned(),
        1 => return "Yesterday".to_owned(),
        _ => {}
    }
    // Noon local time on that day, as a Date.
    let noon = day * 86_400_000 + 12 * 3_600_000 - i64::from(offset) * 60_000;
    let date = js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(noon as f64));
    format!(
        "{}, {} {} {}",
        WEEKDAYS[date.get_day() as usize % 7],
        date.get_date(),
        MONTHS[date.get_month() as usize % 12],
        date.get_full_year()
    )
}
