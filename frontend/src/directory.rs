//! The rooms this user may see (`GET /api/rooms`), for the sidebar's
//! "Other rooms", the room header and direct conversations: listed at
//! start, every ten seconds, and at once when something says it changed
//! (an invitation, a removal, a new direct conversation, a room joined or
//! left on another device). The user's own rooms (those they are a member
//! of) are followed: they are theirs on every device, with what is unread
//! in them, whichever browser they joined them in.

use common::{Notify, RoomSummary, Visibility};
use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::api;
use crate::chat::Chat;

/// How often the list is fetched when nothing says it changed.
const POLL_MS: u32 = 10_000;

/// A room of the user's as the list says it: name, unread, mentions, and
/// what of it notifies them.
type Listed = (String, u32, u32, Option<Notify>);

#[derive(Clone, Copy)]
pub struct Directory {
    pub list: RwSignal<Vec<RoomSummary>>,
    token: StoredValue<String>,
}

impl Directory {
    /// Lists the rooms now, then keeps the list fresh for as long as the
    /// chat screen is mounted. Every public room of the user's and every
    /// direct conversation listed is followed (`follow`), so its messages
    /// reach them at once, with a badge, without opening it; so is every
    /// private room they joined (not one they are only invited to: that
    /// waits under "Invitations" to be joined or declined).
    pub fn start(chat: RwSignal<Chat>, token: String, follow: Callback<String>) -> Directory {
        let directory = Directory {
            list: RwSignal::new(Vec::new()),
            token: StoredValue::new(token),
        };
        Effect::new(move |_| {
            // Rooms joined and direct conversations, not invitations.
            let mine: Vec<Listed> = directory.list.with(|d| {
                d.iter()
                    .filter(|r| match r.visibility {
                        Visibility::Public | Visibility::Private => {
                            r.role.is_some() && r.invited_by.is_none()
                        }
                        Visibility::Direct => true,
                    })
                    .map(|r| (r.name.clone(), r.unread, r.mentions, r.notify))
                    .collect()
            });
            // Rooms already joined on this connection know their counts:
            // the usual poll finds nothing to do and changes nothing (unless
            // what notifies was chosen on another device).
            let pending: Vec<Listed> = chat.with_untracked(|c| {
                mine.into_iter()
                    .filter(|(room, _, _, notify)| {
                        c.rooms
                            .get(room)
                            .is_none_or(|r| !r.live || (notify.is_some() && *notify != r.notify))
                    })
                    .collect()
            });
            if pending.is_empty() {
                return;
            }
            for (room, ..) in &pending {
                follow.run(room.clone());
            }
            chat.update(|c| {
                for (room, unread, mentions, notify) in &pending {
                    c.listed(room, *unread, *mentions, *notify);
                }
            });
        });
        directory.refresh();
        // Invited, removed, or written to in a new direct conversation:
        // list again now, not at the next poll.
        Effect::new(move |seen: Option<u32>| {
            let now = chat.with(|c| c.rooms_changed);
            if seen.is_some_and(|seen| seen != now) {
                directory.refresh();
            }
            now
        });
        // A notice (removed from a room, refused a private one) changes
        // what this user may see. Once per notice: this runs on every
        // change of the chat, and a notice can stay on screen for long.
        Effect::new(move |shown: Option<Option<String>>| {
            let notice = chat.with(|c| c.notice.clone());
            if notice.is_some() && shown.as_ref() != Some(&notice) {
                directory.refresh();
            }
            notice
        });
        let poll = gloo_timers::callback::Interval::new(POLL_MS, move || directory.refresh());
        let _poll = StoredValue::new_local(poll);
        directory
    }

    pub fn refresh(self) {
        let token = self.token.get_value();
        spawn_local(async move {
            if let Ok(list) = api::rooms(&token).await {
                self.list.set(list);
            }
        });
    }

    /// Whether `room` is a private room (tracked).
    pub fn is_private(self, room: &str) -> bool {
        self.list.with(|d| {
            d.iter()
                .any(|r| r.name == room && r.visibility == Visibility::Private)
        })
    }

    /// "Message" on a member: the direct conversation with them, made or
    /// found by the server, is listed and handed to `open`.
    pub fn on_direct(self, chat: RwSignal<Chat>, open: Callback<String>) -> Callback<String> {
        Callback::new(move |username: String| {
            let token = self.token.get_value();
            spawn_local(async move {
                match api::start_direct(&token, &username).await {
                    Ok(summary) => {
                        let name = summary.name.clone();
                        self.list.update(|d| {
                            d.retain(|r| r.name != name);
                            d.push(summary);
                        });
                        open.run(name);
                    }
                    Err(why) => chat.update(|c| {
                        c.notice = Some(format!("Could not start the conversation: {why}"));
                    }),
                }
            });
        })
    }
}
