//! Drafts on every device. What is typed in a room is kept in this
//! browser at once (`storage`) and, a moment after typing stops, on the
//! server for the account (`PUT /api/rooms/{room}/draft`); an emptied box
//! (sent, or cleared) at once. Another device takes a room's draft from its
//! room list, where its own box for that room is empty.

use std::collections::HashMap;

use common::RoomSummary;
use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::{api, storage};

/// How long typing must pause before the draft goes to the server.
const SAVE_AFTER_MS: u32 = 1_500;
/// A room this page saved a draft for this recently is left alone by the
/// room list: the list may not say it yet.
const OWN_FOR_MS: f64 = 10_000.0;

#[derive(Clone, Copy)]
pub struct Drafts {
    /// A draft from another device for the room on screen, for its box.
    pub incoming: RwSignal<Option<(String, String)>>,
    /// Each room's save waiting for typing to pause.
    waiting: StoredValue<HashMap<String, gloo_timers::callback::Timeout>, LocalStorage>,
    /// When this page last saved each room's draft.
    saved_at: StoredValue<HashMap<String, f64>>,
    /// Rooms with a save on its way to the server, each with the text to
    /// save once it lands (the newest typed meanwhile): one request per
    /// room at a time, so an older draft never lands after a newer one
    /// (a save racing the emptied box of a sent message).
    in_flight: StoredValue<HashMap<String, Option<String>>>,
    token: StoredValue<String>,
}

impl Drafts {
    pub fn new(token: String) -> Drafts {
        Drafts {
            incoming: RwSignal::new(None),
            waiting: StoredValue::new_local(HashMap::new()),
            saved_at: StoredValue::new(HashMap::new()),
            in_flight: StoredValue::new(HashMap::new()),
            token: StoredValue::new(token),
        }
    }

    /// For the composer: `(room, text)` as typed.
    pub fn on_typed(self) -> Callback<(String, String)> {
        Callback::new(move |(room, text): (String, String)| {
            self.saved_at.update_value(|s| {
                s.insert(room.clone(), js_sys::Date::now());
            });
            let emptied = text.is_empty();
            let save = {
                let room = room.clone();
                move || self.save(room, text)
            };
            if emptied {
                self.waiting.update_value(|w| {
                    w.remove(&room);
                });
                return save();
            }
            let timer = gloo_timers::callback::Timeout::new(SAVE_AFTER_MS, save);
            // Replacing a room's timer cancels the save it was waiting for.
            self.waiting.update_value(|w| {
                w.insert(room, timer);
            });
        })
    }

    /// Sends `text` as `room`'s draft, after the save on its way if there
    /// is one (which then sends only the newest text typed meanwhile).
    fn save(self, room: String, text: String) {
        let busy = self
            .in_flight
            .try_update_value(|flying| match flying.get_mut(&room) {
                Some(next) => {
                    *next = Some(text.clone());
                    true
                }
                None => {
                    flying.insert(room.clone(), None);
                    false
                }
            });
        if busy != Some(false) {
            return;
        }
        let token = self.token.get_value();
        spawn_local(async move {
            let mut text = text;
            loop {
                // Best effort: this browser has it either way.
                let _ = api::save_draft(&token, &room, &text).await;
                let next = self
                    .in_flight
                    .try_update_value(|flying| match flying.get_mut(&room) {
                        Some(next @ Some(_)) => next.take(),
                        _ => {
                            flying.remove(&room);
                            None
                        }
                    })
                    .flatten();
                match next {
                    Some(newer) => text = newer,
                    None => break,
                }
            }
        });
    }

    /// The room list says what is drafted on the account's devices: taken
    /// where this browser has nothing typed for the room.
    pub fn adopt(self, listed: &[RoomSummary], on_screen: Option<&str>) {
        let now = js_sys::Date::now();
        for summary in listed {
            let Some(text) = &summary.draft else { continue };
            let recent = self
                .saved_at
                .with_value(|s| s.get(&summary.name).is_some_and(|t| now - t < OWN_FOR_MS));
            if recent || !storage::load_draft(&summary.name).is_empty() {
                continue;
            }
            storage::save_draft(&summary.name, text);
            if on_screen == Some(summary.name.as_str()) {
                self.incoming
                    .set(Some((summary.name.clone(), text.clone())));
            }
        }
    }
}
