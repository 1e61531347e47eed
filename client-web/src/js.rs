//! The JavaScript API (`--features js`): what the npm package exports
//! (`scripts/js-package` builds it). The same machine and driver as the
//! browser app; this module only turns its callbacks into promises and
//! event handlers.
//!
//! ```js
//! import init, { Client } from "./hearth_client.js";
//! await init();
//! const client = await Client.signIn("", "alice", password); // "": this page's server
//! const room = await client.join("general");
//! room.on("message", (m) => console.log(m.user.name, m.content));
//! const seq = await room.send("hi"); // once stored
//! ```

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::{Rc, Weak};

use client_core::connection::{Event, Phase, Policy, Post};
use common::{ErrorCode, ServerMsg};
use js_sys::{Function, Promise};
use wasm_bindgen::prelude::*;

use crate::driver::{Driver, Endpoint, Listener, page_endpoint};

#[wasm_bindgen(typescript_custom_section)]
const TYPES: &str = r#"
/** A person, as the server shows them. */
export interface User { id: string; name: string; username?: string }
/** A file of a message. */
export interface FileInfo { id: string; name: string; size: number; mime: string; width?: number; height?: number }
/** A reaction and who reacted. */
export interface Reaction { emoji: string; users: User[] }
/**
 * A message, or a change to one (`kind`: an edit, a delete, a reaction, a
 * topic), with its seq in the room's log. docs/protocol.md says every field.
 */
export interface ChatMessage {
  room: string; seq: number; id: string; user: User; content: string; ts: number;
  client_id: string; kind?: "message" | "edit" | "delete" | "topic" | "react" | "unreact";
  target?: number; reply_to?: number; edited?: number; deleted?: boolean;
  reactions?: Reaction[]; files?: FileInfo[]; formatted?: unknown[];
}
/** What the server said of a room on joining it. */
export interface Joined {
  type: "joined"; room: string; members: User[]; last_seq: number; recovered: boolean;
  read_seq: number; unread: number; mentions?: number; topic?: string; moderator?: boolean;
}
/** Every frame the server sends (docs/protocol.md). */
export type ServerMsg =
  | { type: "welcome"; user: User; heartbeat_ms: number; protocol: number; send_limit: { burst: number; refill_ms: number } }
  | Joined
  | { type: "left"; room: string; reason?: string }
  | ({ type: "message" } & ChatMessage)
  | ({ type: "event" } & ChatMessage)
  | { type: "ack"; room: string; client_id: string; seq: number }
  | { type: "read"; room: string; seq: number }
  | { type: "user_joined"; room: string; user: User }
  | { type: "user_left"; room: string; user: User }
  | { type: "typing"; room: string; user: User }
  | { type: "ping" }
  | { type: "error"; code: string; message: string; ref?: string }
  | { type: "rooms_changed" }
  | { type: "account_changed"; user: User };
/** Where the connection is: "connecting", "open", "waiting" (to retry), "signed_out", "stopped". */
export type Phase = "idle" | "connecting" | "open" | "waiting" | "signed_out" | "stopped";
/**
 * A client's events: "frame" (every server frame), "phase", "signed_out"
 * (the reason; the client stopped).
 */
export type ClientEvent = "frame" | "phase" | "signed_out";
/**
 * A room's events: "message" (a ChatMessage, once each, also across
 * reconnects), "change" (an edit, delete, reaction or topic, a ChatMessage),
 * "typing" (a User), "joined" / "left" (a User: presence).
 */
export type RoomEvent = "message" | "change" | "typing" | "joined" | "left";
"#;

/// A connection to a Hearth server, kept up by itself: reconnect with
/// backoff and jitter, resume, and an outbox that stores each post once.
#[wasm_bindgen]
pub struct Client {
    shared: Rc<Shared>,
}

/// A room joined through a `Client`.
#[wasm_bindgen]
pub struct Room {
    shared: Rc<Shared>,
    name: String,
    joined: JsValue,
}

/// A handler, for one room's events or (no room) the client's.
struct Handler {
    room: Option<String>,
    event: String,
    function: Function,
}

/// A promise's two ends.
type Settle = (Function, Function);

struct Shared {
    me: Weak<Shared>,
    token: String,
    driver: RefCell<Option<Driver>>,
    handlers: RefCell<Vec<Handler>>,
    /// Posts awaiting their ack, by `client_id`.
    sends: RefCell<HashMap<String, Settle>>,
    /// Joins awaiting their `joined`, by room.
    joins: RefCell<HashMap<String, Vec<Settle>>>,
    /// The newest seq delivered per room: nothing is delivered twice.
    seen: RefCell<HashMap<String, u64>>,
    /// What `joined` said of each room joined on the current socket.
    joined: RefCell<HashMap<String, JsValue>>,
}

#[wasm_bindgen]
impl Client {
    /// Signs in with a password and connects. `server` is `https://host`,
    /// or `""` for the server this page came from.
    #[wasm_bindgen(js_name = signIn, unchecked_return_type = "Promise<Client>")]
    pub fn sign_in(server: String, username: String, password: String) -> Promise {
        wasm_bindgen_futures::future_to_promise(async move {
            let request = common::SessionRequest::Password { username, password };
            let body = serde_json::to_string(&request).expect("a request serializes");
            let response = gloo_net::http::Request::post(&format!("{server}/api/session"))
                .header("Content-Type", "application/json")
                .body(body)
                .map_err(|err| JsError::new(&err.to_string()))?
                .send()
                .await
                .map_err(|err| JsError::new(&format!("the server cannot be reached: {err}")))?;
            let text = response.text().await.unwrap_or_default();
            if !response.ok() {
                let message = serde_json::from_str::<common::ApiError>(&text).map_or_else(
                    |_| format!("the server answered {}", response.status()),
                    |e| e.message,
                );
                return Err(JsError::new(&message).into());
            }
            let session: common::SessionResponse =
                serde_json::from_str(&text).map_err(|err| JsError::new(&err.to_string()))?;
            Ok(Client::connect(server, session.token).into())
        })
    }

    /// Connects with a session token (from `signIn`, kept from before).
    pub fn connect(server: String, token: String) -> Client {
        let shared = Rc::new_cyclic(|me| Shared {
            me: me.clone(),
            token: token.clone(),
            driver: RefCell::new(None),
            handlers: RefCell::new(Vec::new()),
            sends: RefCell::new(HashMap::new()),
            joins: RefCell::new(HashMap::new()),
            seen: RefCell::new(HashMap::new()),
            joined: RefCell::new(HashMap::new()),
        });
        let endpoint = if server.is_empty() {
            page_endpoint(&token)
        } else {
            let base = server.trim_end_matches('/').to_owned();
            Endpoint::Ticketed {
                ws_base: format!("{}/ws", base.replacen("http", "ws", 1)),
                api_base: base,
                token,
            }
        };
        let driver = Driver::with_endpoint(endpoint, Policy::default(), shared.clone());
        *shared.driver.borrow_mut() = Some(driver.clone());
        driver.dispatch(Event::Start);
        Client { shared }
    }

    /// The session token, to keep (as a password) and `connect` with later.
    #[wasm_bindgen(getter)]
    pub fn token(&self) -> String {
        self.shared.token.clone()
    }

    #[wasm_bindgen(getter, unchecked_return_type = "Phase")]
    pub fn phase(&self) -> String {
        phase_name(self.shared.driver().phase()).into()
    }

    /// Calls `handler` on each of the client's `event`s.
    pub fn on(
        &self,
        #[wasm_bindgen(unchecked_param_type = "ClientEvent")] event: String,
        #[wasm_bindgen(unchecked_param_type = "(payload: any) => void")] handler: Function,
    ) {
        self.shared.handlers.borrow_mut().push(Handler {
            room: None,
            event,
            function: handler,
        });
    }

    /// Joins `room` (creating it if it is new and public), and stays in it
    /// across reconnects.
    #[wasm_bindgen(unchecked_return_type = "Promise<Room>")]
    pub fn join(&self, room: String) -> Promise {
        let (promise, (resolve, reject)) = pending();
        let joined = self.shared.joined.borrow().get(&room).cloned();
        if let Some(joined) = joined {
            // Joined already: the machine sends nothing, the answer is known.
            let _ = resolve.call1(&JsValue::NULL, &self.shared.room(&room, joined));
            return promise;
        }
        let waiting = (resolve, reject);
        self.shared
            .joins
            .borrow_mut()
            .entry(room.clone())
            .or_default()
            .push(waiting);
        self.shared.driver().dispatch(Event::Join { room });
        promise
    }

    /// Closes the connection and stops.
    pub fn close(&self) {
        self.shared.driver().dispatch(Event::Stop);
    }
}

#[wasm_bindgen]
impl Room {
    #[wasm_bindgen(getter)]
    pub fn name(&self) -> String {
        self.name.clone()
    }

    /// What the server said on joining: members, last seq, unread, topic.
    #[wasm_bindgen(getter, unchecked_return_type = "Joined")]
    pub fn info(&self) -> JsValue {
        self.joined.clone()
    }

    /// Calls `handler` on each of this room's `event`s.
    pub fn on(
        &self,
        #[wasm_bindgen(unchecked_param_type = "RoomEvent")] event: String,
        #[wasm_bindgen(unchecked_param_type = "(payload: any) => void")] handler: Function,
    ) {
        self.shared.handlers.borrow_mut().push(Handler {
            room: Some(self.name.clone()),
            event,
            function: handler,
        });
    }

    /// Sends a message; resolves to its seq once the server has stored it.
    #[wasm_bindgen(unchecked_return_type = "Promise<number>")]
    pub fn send(&self, text: String) -> Promise {
        self.post(Post::text(text))
    }

    /// Changes the text of your message `target`.
    #[wasm_bindgen(unchecked_return_type = "Promise<number>")]
    pub fn edit(&self, target: f64, text: String) -> Promise {
        self.post(Post::Edit {
            target: target as u64,
            content: text,
        })
    }

    /// Deletes message `target`.
    #[wasm_bindgen(unchecked_return_type = "Promise<number>")]
    pub fn delete(&self, target: f64) -> Promise {
        self.post(Post::Delete {
            target: target as u64,
        })
    }

    /// Reacts to message `target` with `emoji` (`on`), or takes it back.
    #[wasm_bindgen(unchecked_return_type = "Promise<number>")]
    pub fn react(&self, target: f64, emoji: String, on: bool) -> Promise {
        self.post(Post::React {
            target: target as u64,
            emoji,
            on,
        })
    }

    /// "I am typing here" (at most one every 2 s is worth sending).
    pub fn typing(&self) {
        let room = self.name.clone();
        self.shared.driver().dispatch(Event::Typing { room });
    }

    /// "I have read this room up to `seq`."
    pub fn read(&self, seq: f64) {
        let room = self.name.clone();
        let seq = seq as u64;
        self.shared.driver().dispatch(Event::Read { room, seq });
    }

    pub fn leave(&self) {
        let room = self.name.clone();
        self.shared
            .handlers
            .borrow_mut()
            .retain(|h| h.room.as_deref() != Some(&room));
        self.shared.driver().dispatch(Event::Leave { room });
    }
}

impl Room {
    fn post(&self, post: Post) -> Promise {
        let client_id = new_client_id();
        let (promise, ends) = pending();
        self.shared
            .sends
            .borrow_mut()
            .insert(client_id.clone(), ends);
        self.shared.driver().dispatch(Event::Send {
            room: self.name.clone(),
            client_id,
            post,
        });
        promise
    }
}

/// A promise, and the functions that settle it.
fn pending() -> (Promise, Settle) {
    let mut ends = None;
    let promise = Promise::new(&mut |resolve, reject| ends = Some((resolve, reject)));
    (promise, ends.expect("the executor runs at once"))
}

impl Shared {
    fn driver(&self) -> Driver {
        self.driver.borrow().clone().expect("set on creation")
    }

    /// A `Room` handle, as a JS value.
    fn room(&self, name: &str, joined: JsValue) -> JsValue {
        let shared = self.me.upgrade().expect("alive while it is called");
        Room {
            shared,
            name: name.to_owned(),
            joined,
        }
        .into()
    }

    /// Calls the handlers of `event` (of `room`'s, or the client's).
    fn emit(&self, room: Option<&str>, event: &str, payload: &JsValue) {
        let functions: Vec<Function> = self
            .handlers
            .borrow()
            .iter()
            .filter(|h| h.event == event && h.room.as_deref() == room)
            .map(|h| h.function.clone())
            .collect();
        // Called after the borrow: a handler may add handlers or post.
        for function in functions {
            let _ = function.call1(&JsValue::NULL, payload);
        }
    }

    fn reject_all(&self, reason: &str) {
        let error: JsValue = JsError::new(reason).into();
        for (_, (_, reject)) in self.sends.borrow_mut().drain() {
            let _ = reject.call1(&JsValue::NULL, &error);
        }
        for (_, pending) in self.joins.borrow_mut().drain() {
            for (_, reject) in pending {
                let _ = reject.call1(&JsValue::NULL, &error);
            }
        }
    }
}

impl Listener for Shared {
    /// Every message comes through `on_frame`: the driver only tells
    /// this of messages that did not arrive as a frame, which it never
    /// sends here (nothing dispatches `Received` but the driver itself).
    fn on_message(&self, msg: &ServerMsg) {
        self.on_frame(msg, "null");
    }

    /// The frame's own JSON, parsed by the browser, is what handlers get:
    /// a message is the frame itself (its fields and a `type`).
    fn on_frame(&self, msg: &ServerMsg, text: &str) {
        let value = js_sys::JSON::parse(text).unwrap_or(JsValue::NULL);
        match msg {
            ServerMsg::Ack { client_id, seq, .. } => {
                if let Some((resolve, _)) = self.sends.borrow_mut().remove(client_id) {
                    let _ = resolve.call1(&JsValue::NULL, &JsValue::from(*seq as f64));
                }
            }
            ServerMsg::Joined { room, .. } => {
                self.joined.borrow_mut().insert(room.clone(), value.clone());
                let waiting = self.joins.borrow_mut().remove(room).unwrap_or_default();
                for (resolve, _) in waiting {
                    let _ = resolve.call1(&JsValue::NULL, &self.room(room, value.clone()));
                }
            }
            ServerMsg::Left { room, .. } => {
                self.joined.borrow_mut().remove(room);
            }
            ServerMsg::Error {
                code,
                message,
                reference: Some(reference),
            } => {
                let error: JsValue = JsError::new(&format!("{message} ({code:?})")).into();
                // `internal` and `rate_limited` stay in the outbox.
                if !matches!(code, ErrorCode::Internal | ErrorCode::RateLimited)
                    && let Some((_, reject)) = self.sends.borrow_mut().remove(reference)
                {
                    let _ = reject.call1(&JsValue::NULL, &error);
                }
                for (_, reject) in self
                    .joins
                    .borrow_mut()
                    .remove(reference)
                    .unwrap_or_default()
                {
                    let _ = reject.call1(&JsValue::NULL, &error);
                }
            }
            ServerMsg::Message(m) | ServerMsg::Event(m) => {
                let fresh = {
                    let mut seen = self.seen.borrow_mut();
                    let last = seen.entry(m.room.clone()).or_default();
                    let fresh = m.seq > *last;
                    *last = (*last).max(m.seq);
                    fresh
                };
                if fresh {
                    let event = if matches!(msg, ServerMsg::Message(_)) {
                        "message"
                    } else {
                        "change"
                    };
                    self.emit(Some(&m.room), event, &value);
                }
            }
            ServerMsg::Typing { room, .. } => self.emit(Some(room), "typing", &user_of(&value)),
            ServerMsg::UserJoined { room, .. } => {
                self.emit(Some(room), "joined", &user_of(&value));
            }
            ServerMsg::UserLeft { room, .. } => self.emit(Some(room), "left", &user_of(&value)),
            _ => {}
        }
        if !matches!(msg, ServerMsg::Ping) {
            self.emit(None, "frame", &value);
        }
    }

    fn on_phase(&self, phase: Phase, _phase_started_ms: f64) {
        if phase != Phase::Open {
            self.joined.borrow_mut().clear();
        }
        self.emit(None, "phase", &JsValue::from_str(phase_name(phase)));
        if phase == Phase::SignedOut {
            let reason = "the session ended: sign in again";
            self.reject_all(reason);
            self.emit(None, "signed_out", &JsValue::from_str(reason));
        }
    }

    fn on_send_failed(&self, client_id: &str) {
        if let Some((_, reject)) = self.sends.borrow_mut().remove(client_id) {
            let error: JsValue =
                JsError::new("not sent: the server could not store it, or the room was left")
                    .into();
            let _ = reject.call1(&JsValue::NULL, &error);
        }
    }
}

fn phase_name(phase: Phase) -> &'static str {
    match phase {
        Phase::Idle => "idle",
        Phase::Connecting { .. } => "connecting",
        Phase::Open => "open",
        Phase::Waiting { .. } => "waiting",
        Phase::SignedOut => "signed_out",
        Phase::Stopped => "stopped",
    }
}

/// A frame's `user`.
fn user_of(frame: &JsValue) -> JsValue {
    js_sys::Reflect::get(frame, &JsValue::from_str("user")).unwrap_or(JsValue::NULL)
}

/// A fresh `client_id`: 128 random bits, as hex.
fn new_client_id() -> String {
    let mut bytes = [0u8; 16];
    let crypto = web_sys::window().and_then(|w| w.crypto().ok());
    match crypto.map(|c| c.get_random_values_with_u8_array(&mut bytes)) {
        Some(Ok(_)) => {}
        _ => {
            for byte in &mut bytes {
                *byte = (js_sys::Math::random() * 256.0) as u8;
            }
        }
    }
    const HEX: &[u8; 16] = b"0123456789abcdef";
    bytes
        .iter()
        .flat_map(|b| [HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]])
        .map(char::from)
        .collect()
}
