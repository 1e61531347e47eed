//! The application: sign-in, then the chat screen wired to the driver.
//!
//! Over 500 lines: the chat screen is still one component; splitting it by
//! area (sidebar, conversation, composer, members, search) with their
//! state beside them is open (issue 24).

use std::rc::Rc;

use common::{RoomSummary, ServerMsg, SessionResponse, Visibility};
use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::chat::{Chat, TypingThrottle};
use crate::connection::{Event, Phase, Policy, Post};
use crate::directs;
use crate::driver::{Driver, Listener, page_endpoint};
use crate::marks::room_sign;
use crate::members::Members;
use crate::message_line::{LineActions, snippet};
use crate::notify;
use crate::search::{Found, SearchResultsPanel};
use crate::sidebar::RoomSidebar;
use crate::signin::SignIn;
use crate::topic::RoomTopic;
use crate::view::{Banner, Composer, MessageList, Status, TypingLine};
use crate::{api, search, storage};

const DEFAULT_ROOM: &str = "general";

#[component]
pub fn App() -> impl IntoView {
    let session = RwSignal::new(storage::load());
    let notice = RwSignal::new(None::<String>);
    view! {
        {move || match session.get() {
            None => view! { <SignIn session notice /> }.into_any(),
            Some(s) => view! { <ChatScreen session=s on_signed_out=Callback::new(move |why: Option<String>| {
                storage::clear();
                notice.set(why);
                session.set(None);
            }) /> }.into_any(),
        }}
    }
}

/// Feeds driver callbacks into the UI's signals.
struct UiListener {
    chat: RwSignal<Chat>,
    status: RwSignal<Status>,
    signed_out: Callback<Option<String>>,
    token: String,
}

impl Listener for UiListener {
    fn on_message(&self, msg: &ServerMsg) {
        let now = js_sys::Date::now();
        if let ServerMsg::Message(m) = msg {
            notify::mention(self.chat, m);
        }
        let Some(Some(gap)) = self.chat.try_update(|c| c.apply(msg, now)) else {
            return;
        };
        // A jump in seq: fetch what is missing before showing later messages.
        let (chat, token) = (self.chat, self.token.clone());
        spawn_local(async move {
            let limit = u32::try_from(gap.before - gap.after - 1)
                .unwrap_or(u32::MAX)
                .min(200);
            let fetched = api::history(&token, &gap.room, Some(gap.before), limit)
                .await
                .unwrap_or_default();
            let fetched: Vec<_> = fetched.into_iter().filter(|m| m.seq > gap.after).collect();
            chat.update(|c| c.fill(&gap.room, &fetched));
        });
    }

    fn on_send_failed(&self, client_id: &str) {
        self.chat.update(|c| c.give_up(client_id));
    }

    fn on_phase(&self, phase: Phase, since_ms: f64) {
        self.status.set(Status { phase, since_ms });
        if phase != Phase::Open {
            self.chat.update(Chat::set_offline);
        }
        if phase == Phase::SignedOut {
            self.signed_out.run(Some(
                "Your session has ended (signed out on another device, password changed, or expired). \
                 Please sign in again."
                    .to_owned(),
            ));
        }
    }
}

#[component]
fn ChatScreen(session: SessionResponse, on_signed_out: Callback<Option<String>>) -> impl IntoView {
    let chat = RwSignal::new(Chat::new(session.user.clone()));
    let status = RwSignal::new(Status {
        phase: Phase::Idle,
        since_ms: js_sys::Date::now(),
    });
    let now_ms = RwSignal::new(js_sys::Date::now());
    let listener = Rc::new(UiListener {
        chat,
        status,
        signed_out: on_signed_out,
        token: session.token.clone(),
    });
    let driver = StoredValue::new_local(Driver::with_endpoint(
        page_endpoint(&session.token),
        Policy::default(),
        listener,
    ));
    let dispatch = move |event: Event| driver.with_value(|d| d.dispatch(event));

    // One clock tick a second: countdown, and typing indicators expiring.
    let ticker = gloo_timers::callback::Interval::new(1_000, move || {
        let now = js_sys::Date::now();
        now_ms.set(now);
        if chat.with_untracked(|c| c.rooms.values().any(|r| !r.typing.is_empty())) {
            chat.update(|c| {
                c.expire_typing(now);
            });
        }
    });
    let _ticker = StoredValue::new_local(ticker);

    let open_room = move |room: String| {
        chat.update(|c| c.open_room(&room));
        storage::save_current(&room);
        storage::save_rooms(&chat.with_untracked(|c| c.rooms.keys().cloned().collect::<Vec<_>>()));
        dispatch(Event::Join { room });
    };
    let mut rooms = storage::load_rooms();
    if rooms.is_empty() {
        rooms.push(DEFAULT_ROOM.to_owned());
    }
    // Back to the room that was on screen: it is opened last.
    if let Some(current) = storage::load_current()
        && let Some(at) = rooms.iter().position(|r| *r == current)
    {
        let room = rooms.remove(at);
        rooms.insert(0, room);
    }
    dispatch(Event::Start);
    for room in rooms.iter().rev() {
        open_room(room.clone());
    }

    // A memo, not a derived signal: what depends on the room on screen (the
    // members panel fetches its roles) must not rerun on every change of the
    // chat, only when another room is on screen.
    let current = Memo::new(move |_| chat.with(|c| c.current.clone().unwrap_or_default()));
    // The tab says how much is unread: "(3) Hearth".
    Effect::new(move |_| notify::title(chat.with(Chat::total_unread)));
    on_cleanup(|| notify::title(0));

    // The room on screen is read up to its newest message: tell the server
    // (stored per user, so every tab and a reload agree), at most once a
    // second, and not while the page is hidden.
    let report = StoredValue::new_local(None::<gloo_timers::callback::Timeout>);
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
                dispatch(Event::Read { room, seq });
            }
        });
        report.set_value(Some(timer));
    });
    let typing = StoredValue::new(TypingThrottle::default());
    let on_typing = Callback::new(move |()| {
        let now = js_sys::Date::now();
        if typing.try_update_value(|t| t.keystroke(now)) == Some(true) {
            dispatch(Event::Typing {
                room: current.get_untracked(),
            });
        }
    });
    // The message the next one answers, in the room on screen.
    let replying = RwSignal::new(None::<u64>);
    Effect::new(move |_| {
        current.track();
        replying.set(None);
    });
    let reply_label = Signal::derive(move || {
        let seq = replying.get()?;
        let room = current.get();
        Some(chat.with(|c| match c.quoted(&room, seq) {
            Some(line) => format!("Replying to {}: {}", line.user.name, snippet(&line.content)),
            None => "Replying to an earlier message".to_owned(),
        }))
    });
    // Who can be @mentioned here: the room's members with a username.
    let my_id = session.user.id.clone();
    let mentionable = Signal::derive(move || {
        let room = current.get();
        chat.with(|c| {
            c.rooms
                .get(&room)
                .map(|r| {
                    r.members
                        .values()
                        .filter(|u| u.id != my_id && u.username.is_some())
                        .cloned()
                        .collect()
                })
                .unwrap_or_default()
        })
    });
    let on_send = Callback::new(move |content: String| {
        let room = current.get_untracked();
        let client_id = new_client_id();
        let reply_to = replying.get_untracked();
        replying.set(None);
        chat.update(|c| c.queue_local(&room, &content, reply_to, &client_id, js_sys::Date::now()));
        typing.update_value(TypingThrottle::sent);
        dispatch(Event::Send {
            room,
            client_id,
            post: Post::Message { content, reply_to },
        });
    });
    let on_retry = Callback::new(move |client_id: String| {
        if let Some((room, content, reply_to)) = chat.try_update(|c| c.retry(&client_id)).flatten()
        {
            dispatch(Event::Send {
                room,
                client_id,
                post: Post::Message { content, reply_to },
            });
        }
    });
    let on_edit = Callback::new(move |(target, content): (u64, String)| {
        let room = current.get_untracked();
        let client_id = new_client_id();
        chat.update(|c| c.edit_local(&room, target, &content, &client_id));
        dispatch(Event::Send {
            room,
            client_id,
            post: Post::Edit { target, content },
        });
    });
    let on_delete = Callback::new(move |target: u64| {
        let room = current.get_untracked();
        let client_id = new_client_id();
        chat.update(|c| c.delete_local(&room, target, &client_id));
        dispatch(Event::Send {
            room,
            client_id,
            post: Post::Delete { target },
        });
    });
    let on_react = Callback::new(move |(target, emoji, on): (u64, String, bool)| {
        dispatch(Event::Send {
            room: current.get_untracked(),
            client_id: new_client_id(),
            post: Post::React { target, emoji, on },
        });
    });
    let on_topic = Callback::new(move |topic: String| {
        dispatch(Event::Send {
            room: current.get_untracked(),
            client_id: new_client_id(),
            post: Post::Topic { topic },
        });
    });
    let sign_out_token = session.token.clone();
    let sign_out = move |_| {
        dispatch(Event::Stop);
        storage::save_rooms(&[]);
        // Ends the session on the server (every tab and device using this
        // token is signed out); the page forgets it either way.
        let token = sign_out_token.clone();
        spawn_local(async move {
            let _ = api::sign_out(&token).await;
        });
        on_signed_out.run(None);
    };
    on_cleanup(move || {
        let _ = driver.try_with_value(|d| d.dispatch(Event::Stop));
    });

    let history_token = session.token.clone();
    let loading_older = StoredValue::new(false);
    let load_older = Callback::new(move |()| {
        let room = current.get_untracked();
        if loading_older.get_value() {
            return;
        }
        loading_older.set_value(true);
        let token = history_token.clone();
        spawn_local(async move {
            older_page(chat, &token, &room, 50).await;
            loading_older.set_value(false);
        });
    });
    // A click on a reply's quote shows the message it answers, paging in
    // older history until it is there (or there is no more).
    let quote_token = session.token.clone();
    let on_quote = Callback::new(move |seq: u64| {
        let room = current.get_untracked();
        spawn_local(reveal(chat, quote_token.clone(), room, seq));
    });
    // A search, shown over the conversation until closed.
    let found = RwSignal::new(None::<Found>);
    let search_token = session.token.clone();
    let on_search = Callback::new(move |query: String| {
        search::run(found, search_token.clone(), query, false);
    });
    let more_token = session.token.clone();
    let on_more = Callback::new(move |()| {
        let query = found.with_untracked(|f| f.as_ref().map(|f| f.query.clone()));
        if let Some(query) = query {
            search::run(found, more_token.clone(), query, true);
        }
    });
    let reveal_token = session.token.clone();
    let on_result = Callback::new(move |(room, seq): (String, u64)| {
        found.set(None);
        open_room(room.clone());
        spawn_local(reveal(chat, reveal_token.clone(), room, seq));
    });
    let actions = LineActions {
        retry: Some(on_retry),
        reply: Some(Callback::new(move |seq| replying.set(Some(seq)))),
        edit: Some(on_edit),
        delete: Some(on_delete),
        quote: Some(on_quote),
        react: Some(on_react),
    };

    let token = session.token.clone();
    let directory = RwSignal::new(Vec::<RoomSummary>::new());
    let refresh = move || {
        let token = token.clone();
        spawn_local(async move {
            if let Ok(list) = api::rooms(&token).await {
                directory.set(list);
            }
        });
    };
    refresh();
    // A notice (removed from a room, refused a private one) changes what
    // this user may see: list the rooms again now, not at the next poll.
    // Invited, or written to in a new direct conversation: list again now.
    let refresh_on_change = refresh.clone();
    Effect::new(move |seen: Option<u32>| {
        let now = chat.with(|c| c.rooms_changed);
        if seen.is_some_and(|seen| seen != now) {
            refresh_on_change();
        }
        now
    });
    // Once per notice: this runs on every change of the chat, and a notice
    // can stay on screen for a long time.
    let refresh_on_notice = refresh.clone();
    Effect::new(move |shown: Option<Option<String>>| {
        let notice = chat.with(|c| c.notice.clone());
        if notice.is_some() && shown.as_ref() != Some(&notice) {
            refresh_on_notice();
        }
        notice
    });
    // "Message" on a member: the direct conversation with them, made or
    // found by the server, opens.
    let dm_token = session.token.clone();
    let on_direct = Callback::new(move |username: String| {
        let token = dm_token.clone();
        spawn_local(async move {
            match api::start_direct(&token, &username).await {
                Ok(summary) => {
                    let name = summary.name.clone();
                    directory.update(|d| {
                        d.retain(|r| r.name != name);
                        d.push(summary);
                    });
                    open_room(name);
                }
                Err(why) => chat.update(|c| {
                    c.notice = Some(format!("Could not start the conversation: {why}"));
                }),
            }
        });
    });
    let poll = gloo_timers::callback::Interval::new(10_000, refresh);
    let _poll = StoredValue::new_local(poll);
    let current_private = move || {
        let room = current.get();
        directory.with(|d| {
            d.iter()
                .any(|r| r.name == room && r.visibility == Visibility::Private)
        })
    };

    // At phone width the rooms are a drawer, and the members a panel, each
    // behind a button in the bar above the room (CSS shows those buttons
    // only on narrow screens).
    let drawer = RwSignal::new(false);
    let members_open = RwSignal::new(false);
    let close_panels = move || {
        drawer.set(false);
        members_open.set(false);
    };
    let open_from_drawer = Callback::new(move |room: String| {
        close_panels();
        open_room(room);
    });
    let here = move || {
        chat.with(|c| {
            c.current
                .as_ref()
                .and_then(|r| c.rooms.get(r))
                .map_or(0, |r| r.members.len())
        })
    };
    view! {
        <div class="app" class:drawer-open=drawer class:members-open=members_open
            on:keydown=move |ev: leptos::ev::KeyboardEvent| {
                if ev.key() == "Escape" {
                    close_panels();
                }
            }>
            <RoomSidebar chat directory on_open=open_from_drawer me=session.user.clone()
                token=session.token.clone() on_sign_out=sign_out
                on_search=Callback::new(move |query| { close_panels(); on_search.run(query); }) />
            <div class="scrim" aria-hidden="true" on:click=move |_| close_panels()></div>
            <main class="room">
                <Show when=move || found.with(Option::is_some)>
                    <SearchResultsPanel found on_open=on_result on_more />
                </Show>
                <Banner status now_ms on_retry=Callback::new(move |()| dispatch(Event::RetryNow)) />
                <Show when=move || chat.with(|c| c.notice.is_some())>
                    <div class="notice-bar" role="status">
                        <span>{move || chat.with(|c| c.notice.clone().unwrap_or_default())}</span>
                        <button type="button" class="link" on:click=move |_| chat.update(|c| c.notice = None)>"Dismiss"</button>
                    </div>
                </Show>
                <div class="phone-bar">
                    <button type="button" class="link" aria-controls="sidebar"
                        aria-expanded=move || drawer.get().to_string()
                        on:click=move |_| { members_open.set(false); drawer.update(|d| *d = !*d); }>"☰ Rooms"</button>
                    <Show when=move || !current.get().is_empty()>
                        <button type="button" class="link" aria-controls="members"
                            aria-expanded=move || members_open.get().to_string()
                            on:click=move |_| { drawer.set(false); members_open.update(|m| *m = !*m); }>
                            {move || format!("{} here", here())}
                        </button>
                    </Show>
                </div>
                <Show when=move || !current.get().is_empty() fallback=|| view! {
                    <div class="empty">
                        <h1>"You are not in any room"</h1>
                        <p>"Join one with the box on the left, or pick one of the other rooms."</p>
                    </div>
                }>
                <header class="room-header">
                    <div class="room-title">
                        <h1>{move || {
                            let room = current.get();
                            if directs::is_direct(&room) {
                                let who = directory.with(|d| directs::other(d, &room)).map_or_else(
                                    || "Conversation".to_owned(),
                                    |u| format!("{} · {}", u.name, crate::reading::handle(&u)),
                                );
                                view! { <span aria-hidden="true">"@ "</span>{who} }.into_any()
                            } else {
                                view! { {room_sign(current_private())}{room} }.into_any()
                            }
                        }}</h1>
                        <Show when=move || !directs::is_direct(&current.get())>
                            <RoomTopic chat room=current on_set=on_topic />
                        </Show>
                    </div>
                    <button type="button" class="link leave" on:click=move |_| {
                        let room = current.get_untracked();
                        dispatch(Event::Leave { room: room.clone() });
                        chat.update(|c| { c.rooms.remove(&room); c.current = c.rooms.keys().next().cloned(); });
                        storage::save_rooms(&chat.with_untracked(|c| c.rooms.keys().cloned().collect::<Vec<_>>()));
                    }>"Leave room"</button>
                </header>
                    <div class="room-body">
                        <div class="conversation">
                            <MessageList chat room=current on_top=load_older actions />
                            <TypingLine chat room=current />
                            <Composer room=current on_send on_typing replying=reply_label
                                on_cancel_reply=Callback::new(move |()| replying.set(None))
                                members=mentionable />
                        </div>
                        <div class="side" id="members" class:stale=move || status.get().phase != Phase::Open>
                            <Members chat room=current token=session.token.clone() me=session.user.clone() on_direct />
                        </div>
                    </div>
                </Show>
            </main>
        </div>
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
async fn reveal(chat: RwSignal<Chat>, token: String, room: String, seq: u64) {
    for _ in 0..100 {
        if chat.with_untracked(|c| c.rooms.get(&room).is_some_and(|r| r.live)) {
            break;
        }
        gloo_timers::future::TimeoutFuture::new(100).await;
    }
    while !chat.with_untracked(|c| c.has_line(&room, seq))
        && older_page(chat, &token, &room, 100).await
    {}
    show_message(seq);
}

/// Scrolls message `seq` into view and highlights it for a moment.
fn show_message(seq: u64) {
    let selector = format!(".messages [data-seq=\"{seq}\"]");
    request_animation_frame(move || {
        let Some(el) = document().query_selector(&selector).ok().flatten() else {
            return;
        };
        el.scroll_into_view();
        let _ = el.class_list().add_1("flash");
        gloo_timers::callback::Timeout::new(1_600, move || {
            let _ = el.class_list().remove_1("flash");
        })
        .forget();
    });
}

/// A unique id for a message, chosen before sending so retries can't duplicate it.
fn new_client_id() -> String {
    let mut bytes = [0u8; 12];
    if let Some(crypto) = web_sys::window().and_then(|w| w.crypto().ok()) {
        let _ = crypto.get_random_values_with_u8_array(&mut bytes);
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn mount() {
    console_error_panic_hook::set_once();
    leptos::mount::mount_to_body(App);
}
