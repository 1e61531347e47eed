//! The application: the chat screen, once signed in (the sign-in page is
//! the server's, `backend/src/http/signin/`): the driver wired to the
//! UI's signals, and the screen's areas laid out. Each area keeps its state
//! and actions beside it: `sidebar` and `directory` (the rooms),
//! `conversation` and `room_header` (the room on screen), `composer`,
//! `members`, `search`.

use std::rc::Rc;

use common::{ServerMsg, SessionResponse};
use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::components::Router;

use crate::chat::Chat;
use crate::connection::{Event, Phase, Policy};
use crate::conversation::{Conversation, reveal};
use crate::directory::Directory;
use crate::drafts::Drafts;
use crate::driver::{Driver, Listener, page_endpoint};
use crate::members::Members;
use crate::notify;
use crate::profile::Profile;
use crate::room_header::RoomHeader;
use crate::routing;
use crate::search::{SearchResultsPanel, Searching};
use crate::sidebar::RoomSidebar;
use crate::view::{Banner, Composer, MessageList, Status, TypingLine};
use crate::{api, storage};

const DEFAULT_ROOM: &str = "general";

#[component]
pub fn App() -> impl IntoView {
    let session = RwSignal::new(storage::load());
    // A WebSocket ticket that came with the session (from the sign-in
    // page's handoff), for the first connection.
    let ticket = StoredValue::new(None::<String>);
    if session.with_untracked(Option::is_some) {
        // Signed in: the server is to go on serving this browser the app
        // (a session kept from before the server drew the sign-in page
        // has no cookie yet).
        storage::set_signed_in(true);
    } else {
        // Just signed in on the server's page: the session waits there.
        spawn_local(async move {
            match api::handoff().await {
                Some(handoff) => {
                    let signed_in = SessionResponse {
                        token: handoff.token,
                        user: handoff.user,
                    };
                    storage::save(&signed_in);
                    ticket.set_value(Some(handoff.ws_ticket.ticket));
                    session.set(Some(signed_in));
                }
                None => leave_for_sign_in(None),
            }
        });
    }
    // The router keeps the address (`/rooms/{room}`, see `routing.rs`);
    // the sign-in page leads back to it.
    view! {
        <Router>
            {move || match session.get() {
                None => view! {
                    <main class="signin"><p class="muted" role="status">"Signing in…"</p></main>
                }.into_any(),
                // One-time: the ticket is taken by the first screen.
                Some(s) => view! { <ChatScreen session=s first_ticket=ticket.try_update_value(Option::take).flatten()
                    on_signed_out=Callback::new(move |why: Option<&'static str>| {
                    storage::clear();
                    leave_for_sign_in(why);
                }) /> }.into_any(),
            }}
        </Router>
    }
}

/// To the server's sign-in page (`/signin`, which leads back to this
/// page's address once signed in). `notice` names why, for the page to say
/// (`backend/src/http/signin/`). The cookie says signed out first, so the
/// server serves this browser the page from now on.
fn leave_for_sign_in(notice: Option<&str>) {
    storage::set_signed_in(false);
    let Some(window) = web_sys::window() else {
        return;
    };
    let location = window.location();
    // A route (`/rooms/general`) is where to come back to; a file's name
    // (`/index.html`) is the app, and the home page is that.
    let path = location
        .pathname()
        .ok()
        .filter(|path| !path.contains('.'))
        .unwrap_or_else(|| "/".into());
    let mut target = format!(
        "/signin?next={}",
        String::from(js_sys::encode_uri_component(&path))
    );
    if let Some(notice) = notice {
        target.push_str("&notice=");
        target.push_str(notice);
    }
    let _ = location.replace(&target);
}

/// Feeds driver callbacks into the UI's signals.
struct UiListener {
    chat: RwSignal<Chat>,
    status: RwSignal<Status>,
    signed_out: Callback<Option<&'static str>>,
    token: String,
}

impl Listener for UiListener {
    fn on_message(&self, msg: &ServerMsg) {
        let now = js_sys::Date::now();
        match msg {
            ServerMsg::Message(m) => notify::mention(self.chat, m),
            ServerMsg::AccountChanged { user } => storage::save_user(user),
            _ => {}
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
            self.signed_out.run(Some("session-ended"));
        }
    }
}

#[component]
fn ChatScreen(
    session: SessionResponse,
    /// A WebSocket ticket that came with the session, for the first
    /// connection (if it has expired, that attempt fails like any other
    /// and the next asks for a ticket).
    first_ticket: Option<String>,
    on_signed_out: Callback<Option<&'static str>>,
) -> impl IntoView {
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
    if let Some(ticket) = first_ticket {
        driver.with_value(|d| d.use_ticket(ticket));
    }
    let dispatch = Callback::new(move |event: Event| driver.with_value(|d| d.dispatch(event)));
    on_cleanup(move || {
        let _ = driver.try_with_value(|d| d.dispatch(Event::Stop));
    });
    // Back at once when the network is: online again, the tab shown or
    // focused (the machine keeps it to one attempt a second).
    for event in ["online", "visibilitychange", "focus"] {
        let handle = window_event_listener_untyped(event, move |_| {
            if !document().hidden() {
                dispatch.run(Event::Wake);
            }
        });
        on_cleanup(move || handle.remove());
    }

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

    let open_room = Callback::new(move |room: String| {
        // The room being left was read as far as it was on screen: told
        // now, or a switch within the second the report waits for would
        // leave it unread on every device.
        if !document().hidden()
            && let Some(Some((left, seq))) = chat.try_update(Chat::to_report)
        {
            dispatch.run(Event::Read { room: left, seq });
        }
        chat.update(|c| c.open_room(&room));
        storage::save_current(&room);
        storage::save_rooms(&chat.with_untracked(|c| c.rooms.keys().cloned().collect::<Vec<_>>()));
        dispatch.run(Event::Join { room });
    });
    // Leaving is for every device: the server forgets the membership and
    // tells the others (`left`, `rooms_changed`).
    let leave_token = session.token.clone();
    let my_id = session.user.id.clone();
    let leave_room = Callback::new(move |room: String| {
        let (token, me) = (leave_token.clone(), my_id.clone());
        spawn_local(async move {
            if let Err(why) = api::remove(&token, &room, &me).await {
                chat.update(|c| {
                    c.notice = Some(format!("Could not leave #{room}: {}", why.message))
                });
                return;
            }
            dispatch.run(Event::Leave { room: room.clone() });
            chat.update(|c| {
                c.rooms.remove(&room);
                c.current = c.rooms.keys().next().cloned();
            });
            storage::save_rooms(
                &chat.with_untracked(|c| c.rooms.keys().cloned().collect::<Vec<_>>()),
            );
        });
    });
    let mut rooms = storage::load_rooms();
    if rooms.is_empty() {
        rooms.push(DEFAULT_ROOM.to_owned());
    }
    // Back to the room that was on screen: it is opened last. The room
    // the address names, if any, is opened last of all.
    if let Some(current) = storage::load_current()
        && let Some(at) = rooms.iter().position(|r| *r == current)
    {
        let room = rooms.remove(at);
        rooms.insert(0, room);
    }
    if let Some(linked) = routing::linked() {
        if linked.seq.is_some() {
            // A link to a message beats the place kept from before.
            storage::save_place(&linked.room, None);
        }
        rooms.retain(|r| *r != linked.room);
        rooms.insert(0, linked.room);
    }
    dispatch.run(Event::Start);
    for room in rooms.iter().rev() {
        open_room.run(room.clone());
    }
    routing::follow(chat, open_room, session.token.clone());

    // The tab says how much is unread: "(3) Hearth".
    Effect::new(move |_| notify::title(chat.with(Chat::total_unread)));
    on_cleanup(|| notify::title(0));

    let conversation = Conversation::new(chat, dispatch, session.token.clone());
    // Files are fetched and uploaded with the session's token.
    provide_context(crate::file_view::FileToken(session.token.clone()));
    conversation.report_reading();
    let current = conversation.room;
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
    let sign_out_token = session.token.clone();
    let sign_out = move |_| {
        dispatch.run(Event::Stop);
        storage::save_rooms(&[]);
        // Ends the session on the server (every tab and device using this
        // token is signed out); the page forgets it either way.
        // Left once the server has answered: leaving the page first would
        // cancel the request.
        let token = sign_out_token.clone();
        spawn_local(async move {
            let _ = api::sign_out(&token).await;
            on_signed_out.run(None);
        });
    };

    // A search, shown over the conversation until closed; a result opens
    // its room at the message.
    let searching = Searching::new(session.token.clone());
    let found = searching.found;
    let reveal_token = session.token.clone();
    let on_result = Callback::new(move |(room, seq): (String, u64)| {
        found.set(None);
        open_room.run(room.clone());
        spawn_local(reveal(chat, reveal_token.clone(), room, seq));
    });
    // A direct conversation the server lists is joined without being
    // shown: its messages count at once.
    let follow = Callback::new(move |room: String| {
        if chat.with_untracked(|c| !c.rooms.contains_key(&room)) {
            chat.update(|c| {
                c.follow(&room);
            });
            dispatch.run(Event::Join { room });
        }
    });
    let directory = Directory::start(chat, session.token.clone(), follow);
    // Drafts follow the account: each listing brings what other devices
    // typed (see `drafts.rs`).
    let drafts = Drafts::new(session.token.clone());
    Effect::new(move |_| {
        directory.list.with(|listed| {
            let on_screen = chat.with_untracked(|c| c.current.clone());
            drafts.adopt(listed, on_screen.as_deref());
        });
    });
    let on_direct = directory.on_direct(chat, open_room);

    // At phone width the rooms are a drawer, and the members a panel, each
    // behind a button in the bar above the room (CSS shows those buttons
    // only on narrow screens).
    let drawer = RwSignal::new(false);
    let account_open = RwSignal::new(false);
    let profile_token = session.token.clone();
    let members_open = RwSignal::new(false);
    let close_panels = move || {
        drawer.set(false);
        members_open.set(false);
    };
    let open_from_drawer = Callback::new(move |room: String| {
        close_panels();
        open_room.run(room);
    });
    let on_search = searching.on_search();
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
                // Escape closes what is open over the conversation: the
                // drawer, the members panel, search results.
                if ev.key() == "Escape" {
                    close_panels();
                    found.set(None);
                }
            }>
            // The first Tab stop: past the sidebar and the history, to
            // the message box (where there is one). `external`: the
            // browser follows it (and moves the focus), not the router.
            <Show when=move || !current.get().is_empty()>
                <a class="skip-link" href="#composer" rel="external">"Skip to the message box"</a>
            </Show>
            <RoomSidebar chat directory=directory.list on_open=open_from_drawer me=session.user.clone()
                token=session.token.clone() on_sign_out=sign_out
                on_account=Callback::new(move |()| { close_panels(); account_open.set(true); })
                on_search=Callback::new(move |query| { close_panels(); on_search.run(query); }) />
            <div class="scrim" aria-hidden="true" on:click=move |_| close_panels()></div>
            <Show when=move || account_open.get()>
                <Profile chat token=profile_token.clone() open=account_open dispatch on_signed_out />
            </Show>
            <main class="room">
                <Banner status now_ms on_retry=Callback::new(move |()| dispatch.run(Event::Wake)) />
                // Below the banner, so search results never hide the
                // connection's state.
                <div class="room-main">
                    <Show when=move || found.with(Option::is_some)>
                        <SearchResultsPanel found on_open=on_result on_more=searching.on_more() />
                    </Show>
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
                        <RoomHeader conversation directory on_leave=leave_room />
                        <div class="room-body">
                            <div class="conversation">
                                <MessageList chat room=current on_top=conversation.load_older()
                                    actions=conversation.actions() editing=conversation.editing
                                    on_jump=conversation.jump_to_new() />
                                <TypingLine chat room=current />
                                <Composer room=current on_send=conversation.on_send()
                                    on_typing=conversation.on_typing() replying=conversation.reply_label()
                                    on_cancel_reply=Callback::new(move |()| conversation.replying.set(None))
                                    members=mentionable on_edit_last=conversation.on_edit_last()
                                    on_draft=drafts.on_typed() incoming=drafts.incoming />
                            </div>
                            <div class="side" id="members" class:stale=move || status.get().phase != Phase::Open>
                                <Members chat room=current token=session.token.clone() me=session.user.clone() on_direct />
                            </div>
                        </div>
                    </Show>
                </div>
            </main>
        </div>
    }
}

pub fn mount() {
    console_error_panic_hook::set_once();
    leptos::mount::mount_to_body(App);
}
