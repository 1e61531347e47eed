//! The address bar and the room on screen follow each other, through
//! leptos_router: opening a room pushes `/rooms/{room}`, so Back and
//! Forward move between the rooms visited; an address (typed, a link,
//! Back or Forward) opens its room, and its message if it names one,
//! paging in history as far as it is (see `links.rs` for the paths).

use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::NavigateOptions;
use leptos_router::hooks::{use_location, use_navigate};

use crate::chat::Chat;
use crate::conversation::reveal;
use crate::links::{self, Target};

/// What the address names when the chat screen opens: it is opened last,
/// so it is the room on screen.
pub fn linked() -> Option<Target> {
    links::parse(&use_location().pathname.get_untracked())
}

/// Keeps the address and the room on screen in step, for as long as the
/// chat screen is mounted. Call it after the first rooms are opened.
pub fn follow(chat: RwSignal<Chat>, open_room: Callback<String>, token: String) {
    let location = use_location();
    // The address this page set last: its echo is not a request to open
    // anything (the person may have moved on since it was pushed).
    let pushed = StoredValue::new(None::<String>);
    // The address → the room (and the message it names).
    Effect::new(move |_| {
        let path = location.pathname.get();
        if pushed.with_value(|p| p.as_deref() == Some(path.as_str())) {
            // Seen once; the same address later (Forward) is a request.
            pushed.set_value(None);
            return;
        }
        let Some(Target { room, seq }) = links::parse(&path) else {
            return;
        };
        if chat.with_untracked(|c| c.current.as_deref() != Some(room.as_str())) {
            open_room.run(room.clone());
        }
        if let Some(seq) = seq {
            spawn_local(reveal(chat, token.clone(), room, seq));
        }
    });
    // The room on screen → the address. From an address naming no room
    // (`/`), the room's replaces it: Back does not lead to a blank one.
    let navigate = use_navigate();
    let current = Memo::new(move |_| chat.with(|c| c.current.clone()));
    Effect::new(move |_| {
        let here = links::parse(&location.pathname.get_untracked());
        let (to, replace) = match current.get() {
            Some(room) if here.as_ref().is_some_and(|t| t.room == room) => return,
            Some(room) => (links::path(&room, None), here.is_none()),
            // No room left: a reload must not join the last one again.
            None if here.is_some() => ("/".to_owned(), true),
            None => return,
        };
        pushed.set_value(Some(to.clone()));
        let options = NavigateOptions {
            replace,
            scroll: false,
            ..NavigateOptions::default()
        };
        navigate(&to, options);
    });
}
