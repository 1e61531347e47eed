//! The browser driver: performs the connection machine's effects with a real
//! WebSocket (gloo-net) and timers (gloo-timers), and feeds what happens back
//! in as events. It holds no policy: every decision is in
//! `client_core::connection`.

use std::cell::RefCell;
use std::rc::Rc;

use common::{ClientMsg, ServerMsg};
use futures_channel::mpsc;
use futures_util::{SinkExt, StreamExt};
use gloo_net::websocket::futures::WebSocket;
use gloo_net::websocket::{Message, State, WebSocketError};
use gloo_timers::callback::Timeout;
use wasm_bindgen_futures::spawn_local;

use client_core::connection::{Connection, Effect, Event, Phase, Policy};

/// Told about every server message and every phase change.
pub trait Listener {
    fn on_message(&self, msg: &ServerMsg);
    /// A message as it came, with the JSON text of its frame (for a
    /// listener that hands the frame on as it is, rather than serializing
    /// the message again).
    fn on_frame(&self, msg: &ServerMsg, _text: &str) {
        self.on_message(msg);
    }
    fn on_phase(&self, phase: Phase, phase_started_ms: f64);
    /// The client gave up on this message (see `Effect::SendFailed`).
    fn on_send_failed(&self, client_id: &str);
}

#[derive(Clone)]
pub struct Driver {
    inner: Rc<RefCell<Inner>>,
}

/// Where a socket connects, and how it authenticates.
#[derive(Debug, Clone)]
pub enum Endpoint {
    /// This exact URL (tests, and servers of other origins).
    Url(String),
    /// `ws_base` (the page's own `/ws`), with a one-time ticket fetched
    /// for every attempt from `POST {api_base}/api/ws-ticket` (`api_base`
    /// is empty for the page's own origin): the token never goes in a URL.
    Ticketed {
        api_base: String,
        ws_base: String,
        token: String,
    },
}

struct Inner {
    machine: Connection,
    endpoint: Endpoint,
    listener: Rc<dyn Listener>,
    /// Bumped for every socket, so events of an old socket are ignored.
    generation: u64,
    /// Sockets that reached the OPEN state.
    opened: u32,
    outgoing: Option<mpsc::UnboundedSender<String>>,
    retry_timer: Option<Timeout>,
    resend_timer: Option<Timeout>,
    stable_timer: Option<Timeout>,
    gate_timer: Option<Timeout>,
    pace_timer: Option<Timeout>,
    watchdog: Option<Timeout>,
    /// A ticket the page already has (with its session): the first
    /// connection uses it instead of asking for one.
    first_ticket: Option<String>,
}

impl Driver {
    /// `url` is the full WebSocket URL (see `Endpoint::Url`).
    pub fn new(url: String, policy: Policy, listener: Rc<dyn Listener>) -> Driver {
        Driver::with_endpoint(Endpoint::Url(url), policy, listener)
    }

    pub fn with_endpoint(endpoint: Endpoint, policy: Policy, listener: Rc<dyn Listener>) -> Driver {
        Driver {
            inner: Rc::new(RefCell::new(Inner {
                machine: Connection::new(policy),
                endpoint,
                listener,
                generation: 0,
                opened: 0,
                outgoing: None,
                retry_timer: None,
                resend_timer: None,
                stable_timer: None,
                gate_timer: None,
                pace_timer: None,
                watchdog: None,
                first_ticket: None,
            })),
        }
    }

    /// The next connection opens with this ticket (one the page got with
    /// its session) rather than asking for one: a round trip saved.
    pub fn use_ticket(&self, ticket: String) {
        self.inner.borrow_mut().first_ticket = Some(ticket);
    }

    pub fn phase(&self) -> Phase {
        self.inner.borrow().machine.phase()
    }

    /// How many sockets reached the browser's OPEN state (for diagnostics,
    /// and for the test that a failed socket is never reported as open).
    pub fn sockets_opened(&self) -> u32 {
        self.inner.borrow().opened
    }

    /// Feeds one event to the machine and carries out its effects.
    pub fn dispatch(&self, event: Event) {
        self.dispatch_frame(event, None);
    }

    /// `dispatch`, with the text of the frame a `Received` came in.
    fn dispatch_frame(&self, event: Event, text: Option<&str>) {
        let notify_message = match &event {
            Event::Received(msg) => Some(msg.clone()),
            _ => None,
        };
        let (effects, phase_changed, listener) = {
            let mut inner = self.inner.borrow_mut();
            let before = inner.machine.phase();
            let effects = inner.machine.handle(event, &mut || js_sys::Math::random());
            let after = inner.machine.phase();
            (
                effects,
                (before != after).then_some(after),
                inner.listener.clone(),
            )
        };
        for effect in effects {
            self.perform(effect);
        }
        // Listeners run after the borrow ends: they may dispatch again.
        if let Some(msg) = notify_message {
            match text {
                Some(text) => listener.on_frame(&msg, text),
                None => listener.on_message(&msg),
            }
        }
        if let Some(phase) = phase_changed {
            listener.on_phase(phase, js_sys::Date::now());
        }
    }

    fn perform(&self, effect: Effect) {
        match effect {
            Effect::Connect => self.connect(),
            Effect::Disconnect => {
                let mut inner = self.inner.borrow_mut();
                inner.generation += 1;
                // Dropping the sender ends the socket task, which closes it.
                inner.outgoing = None;
            }
            Effect::SendFrame(msg) => self.send(&msg),
            Effect::StartRetryTimer { ms } => {
                let me = self.clone();
                let timer = Timeout::new(ms, move || me.dispatch(Event::RetryTimerFired));
                self.inner.borrow_mut().retry_timer = Some(timer);
            }
            Effect::CancelRetryTimer => {
                self.inner.borrow_mut().retry_timer = None;
            }
            Effect::ArmWatchdog { ms } => {
                let me = self.clone();
                let timer = Timeout::new(ms, move || me.dispatch(Event::WatchdogExpired));
                self.inner.borrow_mut().watchdog = Some(timer);
            }
            Effect::CancelWatchdog => {
                self.inner.borrow_mut().watchdog = None;
            }
            Effect::RequireSignIn => {}
            Effect::StartPaceTimer { ms } => {
                let me = self.clone();
                let timer = Timeout::new(ms, move || me.dispatch(Event::PaceTimerFired));
                self.inner.borrow_mut().pace_timer = Some(timer);
            }
            Effect::StartStableTimer { ms } => {
                let me = self.clone();
                let timer = Timeout::new(ms, move || me.dispatch(Event::StableTimerFired));
                self.inner.borrow_mut().stable_timer = Some(timer);
            }
            Effect::StartGateTimer { ms } => {
                let me = self.clone();
                let timer = Timeout::new(ms, move || me.dispatch(Event::GateTimerFired));
                self.inner.borrow_mut().gate_timer = Some(timer);
            }
            Effect::StartResendTimer { ms } => {
                let me = self.clone();
                let timer = Timeout::new(ms, move || me.dispatch(Event::ResendTimerFired));
                self.inner.borrow_mut().resend_timer = Some(timer);
            }
            Effect::SendFailed { client_id } => {
                let listener = self.inner.borrow().listener.clone();
                listener.on_send_failed(&client_id);
            }
        }
    }

    fn send(&self, msg: &ClientMsg) {
        let inner = self.inner.borrow();
        if let Some(tx) = &inner.outgoing {
            let text = serde_json::to_string(msg).expect("client messages serialize");
            let _ = tx.unbounded_send(text);
        }
    }

    fn connect(&self) {
        let (generation, endpoint, ticket) = {
            let mut inner = self.inner.borrow_mut();
            inner.generation += 1;
            inner.outgoing = None;
            (
                inner.generation,
                inner.endpoint.clone(),
                inner.first_ticket.take(),
            )
        };
        match (endpoint, ticket) {
            (Endpoint::Url(url), _) => self.open(generation, &url),
            (Endpoint::Ticketed { ws_base, .. }, Some(ticket)) => {
                self.open(generation, &format!("{ws_base}?ticket={ticket}"));
            }
            (
                Endpoint::Ticketed {
                    api_base,
                    ws_base,
                    token,
                },
                None,
            ) => {
                let me = self.clone();
                spawn_local(async move {
                    match crate::ticket::ws_ticket(&api_base, &token).await {
                        Ok(ticket) if me.is_current(generation) => {
                            me.open(generation, &format!("{ws_base}?ticket={ticket}"));
                        }
                        Ok(_) => {}
                        // The token itself is refused: as if closed with 4001.
                        Err(crate::ticket::TicketError::SignIn) => me.dispatch_for(
                            generation,
                            Event::Closed {
                                code: Some(common::close::TOKEN_INVALID),
                            },
                        ),
                        Err(crate::ticket::TicketError::Unavailable) => {
                            me.dispatch_for(generation, Event::Closed { code: None });
                        }
                    }
                });
            }
        }
    }

    /// Opens the socket of attempt `generation`.
    fn open(&self, generation: u64, url: &str) {
        let socket = match WebSocket::open(url) {
            Ok(socket) => socket,
            Err(_) => {
                let me = self.clone();
                // Report asynchronously, like a real failure would arrive.
                spawn_local(
                    async move { me.dispatch_for(generation, Event::Closed { code: None }) },
                );
                return;
            }
        };
        let (tx, mut rx) = mpsc::unbounded::<String>();
        self.inner.borrow_mut().outgoing = Some(tx);
        let me = self.clone();
        spawn_local(async move {
            let mut socket = socket;
            // gloo's sink becomes "ready" as soon as the socket leaves the
            // CONNECTING state: when it opens, but also when it fails. Only
            // the OPEN state is an open socket; a failed one reports its
            // close through the stream, like any other close.
            let _ = futures_util::future::poll_fn(|cx| socket.poll_ready_unpin(cx)).await;
            let opened = matches!(socket.state(), State::Open);
            let (mut sink, mut stream) = socket.split();
            if opened && me.is_current(generation) {
                me.inner.borrow_mut().opened += 1;
                me.dispatch_for(generation, Event::Opened);
            }
            pump(&mut sink, &mut stream, &mut rx, &me, generation).await;
        });
    }

    fn is_current(&self, generation: u64) -> bool {
        self.inner.borrow().generation == generation
    }

    fn dispatch_for(&self, generation: u64, event: Event) {
        if self.is_current(generation) {
            self.dispatch(event);
        }
    }
}

/// Pumps one socket until it closes or the driver drops it: outgoing frames
/// from `rx` to the socket, incoming frames to the machine.
async fn pump(
    sink: &mut futures_util::stream::SplitSink<WebSocket, Message>,
    stream: &mut futures_util::stream::SplitStream<WebSocket>,
    rx: &mut mpsc::UnboundedReceiver<String>,
    driver: &Driver,
    generation: u64,
) {
    use futures_util::future::{Either, select};
    loop {
        match select(stream.next(), rx.next()).await {
            Either::Left((incoming, _)) => match incoming {
                Some(Ok(Message::Text(text))) => {
                    if let Ok(msg) = serde_json::from_str::<ServerMsg>(&text)
                        && driver.is_current(generation)
                    {
                        driver.dispatch_frame(Event::Received(msg), Some(&text));
                    }
                }
                Some(Ok(Message::Bytes(_))) => {}
                Some(Err(WebSocketError::ConnectionClose(event))) => {
                    let code = (event.was_clean || event.code != 1006).then_some(event.code);
                    return driver.dispatch_for(generation, Event::Closed { code });
                }
                Some(Err(_)) => {}
                None => return driver.dispatch_for(generation, Event::Closed { code: None }),
            },
            Either::Right((outgoing, _)) => match outgoing {
                Some(text) => {
                    if sink.send(Message::Text(text)).await.is_err() {
                        return driver.dispatch_for(generation, Event::Closed { code: None });
                    }
                }
                // The driver dropped this socket (watchdog, stop, reconnect).
                None => return,
            },
        }
    }
}

/// This page's `/ws`, authenticated with a fresh ticket for every attempt.
pub fn page_endpoint(token: &str) -> Endpoint {
    Endpoint::Ticketed {
        api_base: String::new(),
        ws_base: socket_base(),
        token: token.to_owned(),
    }
}

/// `ws(s)://<this page's host>/ws`.
fn socket_base() -> String {
    let location = web_sys::window().expect("a window").location();
    let scheme = if location.protocol().ok().as_deref() == Some("https:") {
        "wss"
    } else {
        "ws"
    };
    let host = location.host().unwrap_or_default();
    format!("{scheme}://{host}/ws")
}
