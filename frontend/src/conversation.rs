//! The room on screen: what a person does in it (send, reply, edit,
//! delete, react, set the topic, page in older history, follow a quote)
//! and what the page does for them (report how far they have read, say
//! they are typing). `Conversation` holds its state; the chat screen
//! passes its callbacks to the message list and the composer.

use common::Notify;
use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::api;
use crate::chat::{Chat, TypingThrottle};
use crate::connection::{Event, Post};
use crate::message_line::{LineActions, snippet};

/// The room on screen, and what is being answered in it.
#[derive(Clone, Copy)]
pub struct Conversation {
    pub chat: RwSignal<Chat>,
    /// The room's name ("" when no room is open).
    pub room: Memo<String>,
    /// The message the next one answers.
    pub replying: RwSignal<Option<u64>>,
    /// The message being edited (one at a time).
    pub editing: RwSignal<Option<u64>>,
    dispatch: Callback<Event>,
    token: StoredValue<String>,
    typing: StoredValue<TypingThrottle>,
    loading_older: StoredValue<bool>,
}

impl Conversation {
    pub fn new(chat: RwSignal<Chat>, dispatch: Callback<Event>, token: String) -> Self {
        // A memo, not a derived signal: what depends on the room on screen
        // (the members panel fetches its roles) must not rerun on every
        // change of the chat, only when another room is on screen.
        let room = Memo::new(move |_| chat.with(|c| c.current.clone().unwrap_or_default()));
        let replying = RwSignal::new(None::<u64>);
        // A reply is to a message of the room on screen.
        Effect::new(move |_| {
            room.track();
            replying.set(None);
        });
        Conversation {
            chat,
            room,
            replying,
            editing: RwSignal::new(None),
            dispatch,
            token: StoredValue::new(token),
            typing: StoredValue::new(TypingThrottle::default()),
            loading_older: StoredValue::new(false),
        }
    }

    fn send(&self, post: Post, client_id: String) {
        self.dispatch.run(Event::Send {
            room: self.room.get_untracked(),
            client_id,
            post,
        });
    }

    /// Sends a message with its files, uploaded already (answering
    /// `replying`, if set), shown at once as pending.
    pub fn on_send(self) -> Callback<(String, Vec<common::FileInfo>)> {
        Callback::new(move |(content, files): (String, Vec<common::FileInfo>)| {
            let room = self.room.get_untracked();
            let client_id = new_client_id();
            let reply_to = self.replying.get_untracked();
            self.replying.set(None);
            let ids = files.iter().map(|f| f.id.clone()).collect();
            self.chat.update(|c| {
                let now = js_sys::Date::now();
                c.queue_local_with_files(&room, &content, reply_to, files, &client_id, now)
            });
            self.typing.update_value(TypingThrottle::sent);
            let post = Post::Message {
                content,
                reply_to,
                files: ids,
            };
            self.send(post, client_id);
        })
    }

    /// A keystroke in the composer: "typing", at most every few seconds.
    pub fn on_typing(self) -> Callback<()> {
        Callback::new(move |()| {
            let now = js_sys::Date::now();
            if self.typing.try_update_value(|t| t.keystroke(now)) == Some(true) {
                self.dispatch.run(Event::Typing {
                    room: self.room.get_untracked(),
                });
            }
        })
    }

    /// Up arrow in an empty composer: edit this user's last message.
    pub fn on_edit_last(self) -> Callback<()> {
        Callback::new(move |()| {
            let room = self.room.get_untracked();
            if let Some(seq) = self.chat.with_untracked(|c| c.last_own_message(&room)) {
                self.editing.set(Some(seq));
            }
        })
    }

    /// "Replying to Ann: …" above the composer.
    pub fn reply_label(self) -> Signal<Option<String>> {
        Signal::derive(move || {
            let seq = self.replying.get()?;
            let room = self.room.get();
            Some(self.chat.with(|c| match c.quoted(&room, seq) {
                Some(line) => format!(
                    "Replying to {}: {}",
                    line.user.name,
                    snippet(&crate::markup::summary(
                        &line.content,
                        line.formatted.as_deref(),
                        &line.files
                    ))
                ),
                None => "Replying to an earlier message".to_owned(),
            }))
        })
    }

    pub fn on_topic(self) -> Callback<String> {
        Callback::new(move |topic: String| self.send(Post::Topic { topic }, new_client_id()))
    }

    /// This user chooses what of the room on screen notifies them: shown
    /// at once, kept on the server for their other devices. If the server
    /// refuses, the choice goes back to what it was and a notice says why.
    pub fn on_notify(self) -> Callback<Notify> {
        Callback::new(move |notify: Notify| {
            let room = self.room.get_untracked();
            let before = self.chat.with_untracked(|c| c.notify(&room));
            self.chat.update(|c| c.set_notify(&room, notify));
            let token = self.token.get_value();
            let chat = self.chat;
            spawn_local(async move {
                if let Err(failure) = api::set_notify(&token, &room, notify).await {
                    chat.update(|c| {
                        c.set_notify(&room, before);
                        c.notice = Some(format!(
                            "Notifications for #{room} are unchanged: {}",
                            failure.message
                        ));
                    });
                }
            });
        })
    }

    /// What can be done to a line of the conversation.
    pub fn actions(self) -> LineActions {
        let chat = self.chat;
        LineActions {
            retry: Some(Callback::new(move |client_id: String| {
                if let Some((room, post)) = chat.try_update(|c| c.retry(&client_id)).flatten() {
                    self.dispatch.run(Event::Send {
                        room,
                        client_id,
                        post,
                    });
                }
            })),
            reply: Some(Callback::new(move |seq| self.replying.set(Some(seq)))),
            edit: Some(Callback::new(move |(target, content): (u64, String)| {
                let client_id = new_client_id();
                let room = self.room.get_untracked();
                chat.update(|c| c.edit_local(&room, target, &content, &client_id));
                self.send(Post::Edit { target, content }, client_id);
            })),
            delete: Some(Callback::new(move |target: u64| {
                let client_id = new_client_id();
                let room = self.room.get_untracked();
                chat.update(|c| c.delete_local(&room, target, &client_id));
                self.send(Post::Delete { target }, client_id);
            })),
            // A click on a reply's quote shows the message it answers,
            // paging in older history until it is there.
            quote: Some(Callback::new(move |seq: u64| {
                let room = self.room.get_untracked();
                spawn_local(reveal(chat, self.token.get_value(), room, seq));
            })),
            react: Some(Callback::new(
                move |(target, emoji, on): (u64, String, bool)| {
                    self.send(Post::React { target, emoji, on }, new_client_id());
                },
            )),
        }
    }

    /// Scrolled to the top: the page before the oldest line, once at a time.
    pub fn load_older(self) -> Callback<()> {
        Callback::new(move |()| {
            if self.loading_older.get_value() {
                return;
            }
            self.loading_older.set_value(true);
            let (room, token) = (self.room.get_untracked(), self.token.get_value());
            spawn_local(async move {
                older_page(self.chat, &token, &room, 50).await;
                self.loading_older.set_value(false);
            });
        })
    }

    /// "Jump to first unread": pages in history back to the "New"
    /// divider (at most 20 pages of 100); the list shows it once drawn.
    pub fn jump_to_new(self) -> Callback<()> {
        Callback::new(move |()| {
            let (room, token) = (self.room.get_untracked(), self.token.get_value());
            let chat = self.chat;
            spawn_local(async move {
                for _ in 0..20 {
                    let missing = chat.with_untracked(|c| {
                        c.first_new(&room).is_none()
                            && c.rooms.get(&room).is_some_and(|r| r.new_after.is_some())
                    });
                    if !missing || !older_page(chat, &token, &room, 100).await {
                        break;
                    }
                }
            });
        })
    }

    /// The room on screen is read up to its newest message: tell the
    /// server (stored per user, so every tab and a reload agree), at most
    /// once a second, and not while the page is hidden.
    pub fn report_reading(self) {
        let report = StoredValue::new_local(None::<gloo_timers::callback::Timeout>);
        let chat = self.chat;
        Effect::new(move |_| {
            let behind = chat.with(|c| {
                let room = c.current.as_ref()?;
                let state = c.rooms.get(room)?;
                Some(state.last_seq > state.read_seq)
            });
            if behind != Some(true) || report.with_value(Option::is_some) {
                return;
            }
            let timer = gloo_timers::callback::Timeout::new(1_000, move || {
                report.set_value(None);
                if document().hidden() {
                    return;
                }
                if let Some((room, seq)) = chat.try_update(Chat::to_report).flatten() {
                    self.dispatch.run(Event::Read { room, seq });
                }
            });
            report.set_value(Some(timer));
        });
    }
}

/// Loads the page of `room` before the oldest entry seen. False if there
/// was nothing older, or it could not be loaded.
async fn older_page(chat: RwSignal<Chat>, token: &str, room: &str, limit: u32) -> bool {
    let (Some(before), true) = chat.with_untracked(|c| {
        (
            c.oldest_seq(room),
            c.rooms.get(room).is_some_and(|r| r.older_available),
        )
    }) else {
        return false;
    };
    match api::history(token, room, Some(before), limit).await {
        Ok(older) if !older.is_empty() => {
            chat.update(|c| c.prepend(room, &older));
            true
        }
        _ => false,
    }
}

/// Shows message `seq` of `room` (opened already): once the room is
/// joined, pages in older history until the message is there (or there is
/// no more), then scrolls to it.
pub async fn reveal(chat: RwSignal<Chat>, token: String, room: String, seq: u64) {
    for _ in 0..100 {
        if chat.with_untracked(|c| c.rooms.get(&room).is_some_and(|r| r.live)) {
            break;
        }
        gloo_timers::future::TimeoutFuture::new(100).await;
    }
    while !chat.with_untracked(|c| c.has_line(&room, seq))
        && older_page(chat, &token, &room, 100).await
    {}
    // The list scrolls to it (and stops following the newest).
    chat.update(|c| c.bring_into_view(room, seq));
}

/// A unique id for a message, chosen before sending so retries can't
/// duplicate it.
fn new_client_id() -> String {
    let mut bytes = [0u8; 12];
    if let Some(crypto) = web_sys::window().and_then(|w| w.crypto().ok()) {
        let _ = crypto.get_random_values_with_u8_array(&mut bytes);
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
