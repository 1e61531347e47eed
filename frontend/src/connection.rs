//! The client's connection policy as a pure state machine.
//!
//! `Connection::handle(event) -> Vec<Effect>`: no sockets, timers or clocks in
//! here. The browser driver (`driver.rs`) performs the effects and feeds back
//! what happened as events. Randomness for jitter is passed in, so tests are
//! deterministic.
//!
//! The policy:
//! - Reconnect with exponential backoff and ±50% jitter: about 1 s, then 2 s,
//!   4 s … capped at 30 s.
//! - A socket that opens is not yet a connection: the phase becomes `Open`
//!   only when the server's `welcome` arrives, and the attempt counter resets
//!   only once the connection has then stayed up for `stable_ms`. So a port
//!   that accepts and closes at once, or a server (or proxy) that welcomes
//!   and drops, is backed off like a dead port, never retried in a loop.
//! - A close with 4001 (token invalid) stops and asks for sign-in. A close the
//!   user asked for stays closed. Any other close, or an unclean drop,
//!   reconnects.
//! - Watchdog: if no frame arrives within `heartbeat_ms` + 10 s, the link is
//!   dead even if the browser has not noticed. Drop it and reconnect.
//! - After (re)connecting, re-join every room, from the last seq seen.
//! - Sends go to an outbox and stay there until acked. After a reconnect they
//!   are re-sent with their original `client_id`, once their room is joined.
//! - Sends are paced to the rate the server announces in `welcome` (a
//!   token bucket refilled by a timer, a little slower than the server's),
//!   so a burst of quick sends is never refused with `rate_limited` and
//!   stays in order. A `rate_limited` answer anyway puts the message back
//!   in the queue and empties the bucket.
//! - A send answered `internal` (the server could not store it) is re-sent
//!   after a backoff delay, at most `MAX_STORE_ATTEMPTS` times in all; then
//!   it leaves the outbox and is reported as failed (`Effect::SendFailed`),
//!   for the person to retry. Any other refusal fails it at once.

use std::collections::BTreeMap;

use common::close::{self, CloseAdvice};
use common::{ClientMsg, ServerMsg};

/// Timing policy. `Default` is the production policy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Policy {
    pub base_delay_ms: u32,
    pub max_delay_ms: u32,
    /// Added to the server's heartbeat interval to get the watchdog timeout.
    pub watchdog_grace_ms: u32,
    /// Watchdog before `welcome` says the real heartbeat interval.
    pub default_heartbeat_ms: u32,
    /// How long a welcomed connection must stay up before the attempt
    /// counter resets.
    pub stable_ms: u32,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            base_delay_ms: 1_000,
            max_delay_ms: 30_000,
            watchdog_grace_ms: 10_000,
            default_heartbeat_ms: 25_000,
            stable_ms: 5_000,
        }
    }
}

/// How many times one message is offered to a server that answers
/// `internal` before the client gives up on it.
pub const MAX_STORE_ATTEMPTS: u32 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Not started yet.
    Idle,
    /// Opening a socket, or waiting for `welcome` on it.
    Connecting { attempt: u32 },
    /// The server welcomed us: rooms can be joined and messages sent.
    Open,
    /// Waiting `delay_ms` before reconnect attempt number `attempt`.
    Waiting { attempt: u32, delay_ms: u32 },
    /// The server rejected the token: sign in again.
    SignedOut,
    /// The user closed the connection.
    Stopped,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Start connecting (after sign-in, or on page load with a token).
    Start,
    /// The socket opened (the browser's `open` event, nothing less).
    Opened,
    /// The socket closed. `None` if it failed without a close code.
    Closed {
        code: Option<u16>,
    },
    /// A frame arrived from the server.
    Received(ServerMsg),
    WatchdogExpired,
    RetryTimerFired,
    /// Time to re-send the messages the server could not store.
    ResendTimerFired,
    /// The connection has been up for `stable_ms`.
    StableTimerFired,
    /// Room for one more send (`StartPaceTimer`).
    PaceTimerFired,
    /// The user pressed "retry now".
    RetryNow,
    /// The user signed out or closed the app.
    Stop,
    /// The user wants to be in this room.
    Join {
        room: String,
    },
    Leave {
        room: String,
    },
    /// The user sent a message, or changed something (`Post`).
    Send {
        room: String,
        client_id: String,
        post: Post,
    },
    Typing {
        room: String,
    },
    /// The user has seen `room` up to `seq`.
    Read {
        room: String,
        seq: u64,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Open a new socket (dropping any old one).
    Connect,
    /// Close the current socket; its close event will be ignored.
    Disconnect,
    SendFrame(ClientMsg),
    StartRetryTimer {
        ms: u32,
    },
    CancelRetryTimer,
    /// (Re)arm the watchdog to fire after `ms` without a frame.
    ArmWatchdog {
        ms: u32,
    },
    CancelWatchdog,
    /// The token is no good: show sign-in.
    RequireSignIn,
    /// Fire `PaceTimerFired` after `ms`.
    StartPaceTimer {
        ms: u32,
    },
    /// Fire `StableTimerFired` after `ms`, replacing any earlier one.
    StartStableTimer {
        ms: u32,
    },
    /// Re-send messages that got `internal` after `ms` (`ResendTimerFired`).
    StartResendTimer {
        ms: u32,
    },
    /// This message left the outbox unsent: the server could not store it
    /// after `MAX_STORE_ATTEMPTS` tries.
    SendFailed {
        client_id: String,
    },
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct RoomCursor {
    /// The newest seq seen in this room, to resume from.
    last_seq: Option<u64>,
    /// Joined on the current socket.
    joined: bool,
}

/// What the user adds to a room's log (`common::Post`): each waits in the
/// outbox, is sent in order and re-sent with its `client_id` until acked.
pub use common::Post;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub room: String,
    pub client_id: String,
    pub post: Post,
    /// Sent on the current socket (reset on reconnect).
    sent: bool,
    /// How many times the server answered `internal` for it.
    store_failures: u32,
}

#[derive(Debug, Clone)]
pub struct Connection {
    policy: Policy,
    phase: Phase,
    /// Consecutive failed attempts since the last stable connection.
    failures: u32,
    /// The current socket has opened (its `welcome` may still be due).
    socket_open: bool,
    pace: Pace,
    heartbeat_ms: u32,
    rooms: BTreeMap<String, RoomCursor>,
    outbox: Vec<Outgoing>,
}

impl Connection {
    pub fn new(policy: Policy) -> Self {
        Connection {
            heartbeat_ms: policy.default_heartbeat_ms,
            policy,
            phase: Phase::Idle,
            failures: 0,
            socket_open: false,
            pace: Pace::new(common::SendLimit::default()),
            rooms: BTreeMap::new(),
            outbox: Vec::new(),
        }
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Messages not yet acknowledged by the server.
    pub fn outbox(&self) -> &[Outgoing] {
        &self.outbox
    }

    pub fn rooms(&self) -> impl Iterator<Item = &str> {
        self.rooms.keys().map(String::as_str)
    }

    /// The newest seq seen in `room`.
    pub fn last_seq(&self, room: &str) -> Option<u64> {
        self.rooms.get(room).and_then(|r| r.last_seq)
    }

    /// Advances the machine. `random` returns a number in [0, 1) for jitter.
    pub fn handle(&mut self, event: Event, random: &mut dyn FnMut() -> f64) -> Vec<Effect> {
        let mut fx = Vec::new();
        match event {
            Event::Start => match self.phase {
                Phase::Idle | Phase::Stopped | Phase::SignedOut => {
                    self.failures = 0;
                    self.connect(&mut fx);
                }
                _ => {}
            },
            Event::Opened => {
                if let Phase::Connecting { .. } = self.phase
                    && !self.socket_open
                {
                    // Still "connecting" until the server says welcome; the
                    // watchdog bounds a server that never does.
                    self.socket_open = true;
                    self.arm_watchdog(&mut fx);
                }
            }
            Event::PaceTimerFired => {
                self.pace.timer_running = false;
                self.pace.tokens = (self.pace.tokens + 1).min(self.pace.burst);
                if self.phase == Phase::Open {
                    self.flush_unsent(None, &mut fx);
                }
                self.pace.keep_refilling(&mut fx);
            }
            Event::StableTimerFired => {
                if self.phase == Phase::Open {
                    self.failures = 0;
                }
            }
            Event::Closed { code } => {
                if matches!(self.phase, Phase::Connecting { .. } | Phase::Open) {
                    self.lost(code, &mut fx, random);
                }
            }
            Event::WatchdogExpired => {
                if matches!(self.phase, Phase::Connecting { .. } | Phase::Open) {
                    fx.push(Effect::Disconnect);
                    self.lost(None, &mut fx, random);
                }
            }
            Event::RetryTimerFired => {
                if let Phase::Waiting { .. } = self.phase {
                    self.connect(&mut fx);
                }
            }
            Event::ResendTimerFired => {
                if self.phase == Phase::Open {
                    self.flush_unsent(None, &mut fx);
                }
            }
            Event::RetryNow => {
                if let Phase::Waiting { .. } = self.phase {
                    fx.push(Effect::CancelRetryTimer);
                    self.connect(&mut fx);
                }
            }
            Event::Stop => {
                if !matches!(self.phase, Phase::Stopped) {
                    self.phase = Phase::Stopped;
                    fx.extend([
                        Effect::CancelRetryTimer,
                        Effect::CancelWatchdog,
                        Effect::Disconnect,
                    ]);
                }
            }
            Event::Received(msg) => self.received(msg, &mut fx, random),
            Event::Join { room } => {
                let cursor = self.rooms.entry(room.clone()).or_default();
                if self.phase == Phase::Open && !cursor.joined {
                    fx.push(Effect::SendFrame(ClientMsg::Join {
                        room,
                        since: cursor.last_seq,
                    }));
                }
            }
            Event::Leave { room } => {
                if self.rooms.remove(&room).is_some() {
                    self.outbox.retain(|o| o.room != room);
                    if self.phase == Phase::Open {
                        fx.push(Effect::SendFrame(ClientMsg::Leave { room }));
                    }
                }
            }
            Event::Send {
                room,
                client_id,
                post,
            } => {
                // The same client_id again (the person pressed Retry) replaces
                // any queued copy: one message, one place in the outbox.
                self.outbox.retain(|o| o.client_id != client_id);
                self.outbox.push(Outgoing {
                    room,
                    client_id,
                    post,
                    sent: false,
                    store_failures: 0,
                });
                // Behind anything still waiting for its turn.
                if self.phase == Phase::Open {
                    self.flush_unsent(None, &mut fx);
                }
            }
            Event::Read { room, seq } => {
                // Not queued either: the next one after a reconnect will do.
                if self.phase == Phase::Open && self.rooms.get(&room).is_some_and(|r| r.joined) {
                    fx.push(Effect::SendFrame(ClientMsg::Read { room, seq }));
                }
            }
            Event::Typing { room } => {
                // Typing is ephemeral: never queued.
                if self.phase == Phase::Open && self.rooms.get(&room).is_some_and(|r| r.joined) {
                    fx.push(Effect::SendFrame(ClientMsg::Typing { room }));
                }
            }
        }
        fx
    }

    fn received(&mut self, msg: ServerMsg, fx: &mut Vec<Effect>, random: &mut dyn FnMut() -> f64) {
        match (&msg, self.phase) {
            (ServerMsg::Welcome { .. }, Phase::Connecting { .. }) if self.socket_open => {}
            (_, Phase::Open) => {}
            _ => return,
        }
        match msg {
            ServerMsg::Welcome {
                heartbeat_ms,
                send_limit,
                ..
            } => {
                self.heartbeat_ms = heartbeat_ms.min(u64::from(u32::MAX / 2)) as u32;
                self.phase = Phase::Open;
                // A new connection starts with a full bucket on the server.
                let running = self.pace.timer_running;
                self.pace = Pace::new(send_limit);
                self.pace.timer_running = running;
                fx.push(Effect::StartStableTimer {
                    ms: self.policy.stable_ms,
                });
                for (room, cursor) in &mut self.rooms {
                    cursor.joined = false;
                    fx.push(Effect::SendFrame(ClientMsg::Join {
                        room: room.clone(),
                        since: cursor.last_seq,
                    }));
                }
            }
            ServerMsg::Ping => fx.push(Effect::SendFrame(ClientMsg::Pong)),
            ServerMsg::Joined { room, last_seq, .. } => {
                if let Some(cursor) = self.rooms.get_mut(&room) {
                    cursor.joined = true;
                    cursor.last_seq = Some(cursor.last_seq.unwrap_or(0).max(last_seq));
                    // Now the room accepts sends: flush its queued messages, in order.
                    self.flush_unsent(Some(&room), fx);
                }
            }
            ServerMsg::Message(m) | ServerMsg::Event(m) => {
                if let Some(cursor) = self.rooms.get_mut(&m.room) {
                    cursor.last_seq = Some(cursor.last_seq.unwrap_or(0).max(m.seq));
                }
            }
            ServerMsg::Ack { client_id, .. } => {
                self.outbox.retain(|o| o.client_id != client_id);
            }
            // Removed from the room by a moderator, refused entry to a
            // private one, or refused a join (a new room over the creation
            // quota, a full server): it is not ours to re-join on
            // reconnect, and what was queued for it will not be sent.
            ServerMsg::Left {
                room,
                reason: Some(_),
            }
            | ServerMsg::Error {
                reference: Some(room),
                code: common::ErrorCode::Forbidden,
                ..
            } if self.rooms.remove(&room).is_some() => {
                self.fail_queued_for(&room, fx);
            }
            ServerMsg::Error {
                reference: Some(room),
                code: common::ErrorCode::RateLimited | common::ErrorCode::RoomLimit,
                ..
            } if self.rooms.get(&room).is_some_and(|c| !c.joined) => {
                self.rooms.remove(&room);
                self.fail_queued_for(&room, fx);
            }
            ServerMsg::Error {
                reference: Some(_),
                code: common::ErrorCode::RoomLimit,
                ..
            } => {}
            // `internal` may succeed later: try again after a while, a
            // bounded number of times.
            ServerMsg::Error {
                reference: Some(reference),
                code: common::ErrorCode::Internal,
                ..
            } => {
                if let Some(at) = self.outbox.iter().position(|o| o.client_id == reference) {
                    let out = &mut self.outbox[at];
                    out.store_failures += 1;
                    out.sent = false;
                    if out.store_failures >= MAX_STORE_ATTEMPTS {
                        let out = self.outbox.remove(at);
                        fx.push(Effect::SendFailed {
                            client_id: out.client_id,
                        });
                    } else {
                        // Jittered: when a store recovers, its clients do not
                        // all come back in the same instant.
                        fx.push(Effect::StartResendTimer {
                            ms: backoff_delay(&self.policy, out.store_failures, random()),
                        });
                    }
                }
            }
            // Too fast after all (our timers and the network do not run on
            // the server's clock): back in the queue, in its place, and
            // wait for the bucket to refill.
            ServerMsg::Error {
                reference: Some(reference),
                code: common::ErrorCode::RateLimited,
                ..
            } => {
                if let Some(out) = self.outbox.iter_mut().find(|o| o.client_id == reference) {
                    out.sent = false;
                    self.pace.tokens = 0;
                    self.pace.keep_refilling(fx);
                }
            }
            // A refused message will not succeed by resending it as is.
            ServerMsg::Error {
                reference: Some(reference),
                ..
            } => {
                self.outbox.retain(|o| o.client_id != reference);
            }
            _ => {}
        }
        // Any frame proves the link is alive.
        self.arm_watchdog(fx);
    }

    /// What was queued for a room we are no longer in fails.
    fn fail_queued_for(&mut self, room: &str, fx: &mut Vec<Effect>) {
        let (gone, kept) = std::mem::take(&mut self.outbox)
            .into_iter()
            .partition(|o| o.room == room);
        self.outbox = kept;
        for out in gone {
            fx.push(Effect::SendFailed {
                client_id: out.client_id,
            });
        }
    }

    /// Sends the queued, unsent messages of joined rooms (of `only` if
    /// given), in the order they were written, as far as the pace allows.
    fn flush_unsent(&mut self, only: Option<&str>, fx: &mut Vec<Effect>) {
        for out in &mut self.outbox {
            let joined = self.rooms.get(&out.room).is_some_and(|r| r.joined);
            if !out.sent && joined && only.is_none_or(|room| room == out.room) {
                if self.pace.tokens == 0 {
                    // Nothing overtakes a message waiting for its turn.
                    break;
                }
                self.pace.tokens -= 1;
                out.sent = true;
                fx.push(Effect::SendFrame(send_frame(out)));
            }
        }
        self.pace.keep_refilling(fx);
    }

    fn connect(&mut self, fx: &mut Vec<Effect>) {
        self.phase = Phase::Connecting {
            attempt: self.failures + 1,
        };
        self.socket_open = false;
        fx.push(Effect::Connect);
        // Also bounds a connect that hangs.
        self.arm_watchdog(fx);
    }

    fn lost(&mut self, code: Option<u16>, fx: &mut Vec<Effect>, random: &mut dyn FnMut() -> f64) {
        fx.push(Effect::CancelWatchdog);
        self.socket_open = false;
        for cursor in self.rooms.values_mut() {
            cursor.joined = false;
        }
        for out in &mut self.outbox {
            out.sent = false;
        }
        if code.map(close::advice) == Some(CloseAdvice::SignIn) {
            self.phase = Phase::SignedOut;
            fx.push(Effect::RequireSignIn);
            return;
        }
        self.failures += 1;
        let delay_ms = backoff_delay(&self.policy, self.failures, random());
        self.phase = Phase::Waiting {
            attempt: self.failures + 1,
            delay_ms,
        };
        fx.push(Effect::StartRetryTimer { ms: delay_ms });
    }

    fn arm_watchdog(&self, fx: &mut Vec<Effect>) {
        fx.push(Effect::ArmWatchdog {
            ms: self
                .heartbeat_ms
                .saturating_add(self.policy.watchdog_grace_ms),
        });
    }
}

/// The client's side of the server's send limit: a token bucket without a
/// clock, refilled one token per timer tick while it is not full.
#[derive(Debug, Clone)]
struct Pace {
    tokens: u32,
    burst: u32,
    refill_ms: u32,
    timer_running: bool,
}

impl Pace {
    fn new(limit: common::SendLimit) -> Pace {
        let burst = limit.burst.max(1);
        Pace {
            tokens: burst,
            burst,
            // 10% slower than the server refills: timers run late, frames
            // bunch up on the way, and a refusal costs more than a pause.
            refill_ms: limit.refill_ms.max(1).saturating_add(limit.refill_ms / 10),
            timer_running: false,
        }
    }

    fn keep_refilling(&mut self, fx: &mut Vec<Effect>) {
        if self.tokens < self.burst && !self.timer_running {
            self.timer_running = true;
            fx.push(Effect::StartPaceTimer { ms: self.refill_ms });
        }
    }
}

fn send_frame(out: &Outgoing) -> ClientMsg {
    out.post
        .clone()
        .into_msg(out.room.clone(), out.client_id.clone())
}

/// The delay before retry number `failures` (1 for the first): base·2^(n-1),
/// capped, then jittered by ±50% and capped again. `random` is in [0, 1).
pub fn backoff_delay(policy: &Policy, failures: u32, random: f64) -> u32 {
    let exponent = failures.saturating_sub(1).min(20);
    let nominal = (u64::from(policy.base_delay_ms) << exponent).min(u64::from(policy.max_delay_ms));
    let jittered = nominal as f64 * (0.5 + random.clamp(0.0, 1.0));
    (jittered as u64).min(u64::from(policy.max_delay_ms)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::{ChatMessage, User};

    fn mid() -> impl FnMut() -> f64 {
        || 0.5
    }

    fn welcome() -> Event {
        Event::Received(ServerMsg::Welcome {
            user: User {
                id: "me".into(),
                name: "me".into(),
                username: None,
            },
            heartbeat_ms: 25_000,
            protocol: common::PROTOCOL_VERSION,
            send_limit: common::SendLimit::default(),
        })
    }

    /// Started, socket open, welcomed.
    fn open_machine() -> Connection {
        let mut c = Connection::new(Policy::default());
        c.handle(Event::Start, &mut mid());
        c.handle(Event::Opened, &mut mid());
        c.handle(welcome(), &mut mid());
        c
    }

    fn frames(fx: &[Effect]) -> Vec<ClientMsg> {
        fx.iter()
            .filter_map(|e| match e {
                Effect::SendFrame(m) => Some(m.clone()),
                _ => None,
            })
            .collect()
    }

    fn retry_delay(fx: &[Effect]) -> Option<u32> {
        fx.iter().find_map(|e| match e {
            Effect::StartRetryTimer { ms } => Some(*ms),
            _ => None,
        })
    }

    fn joined(room: &str, last_seq: u64) -> Event {
        Event::Received(ServerMsg::Joined {
            room: room.into(),
            members: vec![],
            last_seq,
            recovered: true,
            read_seq: 0,
            unread: 0,
            mentions: 0,
            topic: String::new(),
            moderator: false,
        })
    }

    fn message(room: &str, seq: u64) -> Event {
        Event::Received(ServerMsg::Message(ChatMessage {
            room: room.into(),
            seq,
            id: format!("m{seq}"),
            user: User {
                id: "u".into(),
                name: "n".into(),
                username: None,
            },
            content: "x".into(),
            ts: 0,
            client_id: format!("c{seq}"),
            ..ChatMessage::default()
        }))
    }

    /// Removed by a moderator, or refused a private room: the room is
    /// forgotten (no re-join on reconnect) and what waited for it fails.
    #[test]
    fn a_room_we_were_removed_from_is_not_rejoined() {
        for refusal in [
            ServerMsg::Left {
                room: "team".into(),
                reason: Some("removed".into()),
            },
            ServerMsg::Error {
                code: common::ErrorCode::Forbidden,
                message: "private".into(),
                reference: Some("team".into()),
            },
        ] {
            let mut c = open_machine();
            c.handle(
                Event::Join {
                    room: "team".into(),
                },
                &mut mid(),
            );
            c.handle(
                Event::Join {
                    room: "lobby".into(),
                },
                &mut mid(),
            );
            c.handle(send("team", "t1"), &mut mid());
            let fx = c.handle(Event::Received(refusal.clone()), &mut mid());
            assert!(
                fx.iter()
                    .any(|e| matches!(e, Effect::SendFailed { client_id } if client_id == "t1")),
                "{refusal:?}: {fx:?}"
            );
            c.handle(Event::Closed { code: None }, &mut mid());
            c.handle(Event::RetryTimerFired, &mut mid());
            c.handle(Event::Opened, &mut mid());
            let fx = c.handle(welcome(), &mut mid());
            let rejoined: Vec<String> = frames(&fx)
                .into_iter()
                .filter_map(|f| match f {
                    ClientMsg::Join { room, .. } => Some(room),
                    _ => None,
                })
                .collect();
            assert_eq!(rejoined, ["lobby"], "{refusal:?}");
        }
    }

    #[test]
    fn backoff_doubles_from_one_second_and_caps_at_thirty() {
        let p = Policy::default();
        let nominal: Vec<u32> = (1..=8).map(|n| backoff_delay(&p, n, 0.5)).collect();
        assert_eq!(
            nominal,
            [1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]
        );
        // Huge attempt counts neither overflow nor exceed the cap.
        assert_eq!(backoff_delay(&p, u32::MAX, 0.99), 30000);
    }

    #[test]
    fn jitter_stays_within_fifty_percent_and_the_cap() {
        let p = Policy::default();
        for n in 1..=10 {
            let nominal = backoff_delay(&p, n, 0.5);
            let low = backoff_delay(&p, n, 0.0);
            let high = backoff_delay(&p, n, 0.999_999);
            assert_eq!(low, nominal / 2, "attempt {n}");
            assert!(high <= (nominal * 3 / 2).min(30_000), "attempt {n}: {high}");
            assert!(high > nominal || nominal == 30_000, "attempt {n}");
        }
    }

    fn send(room: &str, id: &str) -> Event {
        Event::Send {
            room: room.into(),
            client_id: id.into(),
            post: Post::text("x"),
        }
    }

    fn sent_ids(fx: &[Effect]) -> Vec<String> {
        frames(fx)
            .into_iter()
            .filter_map(|f| match f {
                ClientMsg::Send { client_id, .. } => Some(client_id),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn sends_are_paced_to_the_announced_limit_and_keep_their_order() {
        let mut c = Connection::new(Policy::default());
        c.handle(Event::Start, &mut mid());
        c.handle(Event::Opened, &mut mid());
        c.handle(
            Event::Received(ServerMsg::Welcome {
                user: User {
                    id: "me".into(),
                    name: "me".into(),
                    username: None,
                },
                heartbeat_ms: 25_000,
                protocol: common::PROTOCOL_VERSION,
                send_limit: common::SendLimit {
                    burst: 3,
                    refill_ms: 100,
                },
            }),
            &mut mid(),
        );
        c.handle(Event::Join { room: "r".into() }, &mut mid());
        c.handle(joined("r", 0), &mut mid());
        let mut out = Vec::new();
        let mut timers = Vec::new();
        for i in 1..=6 {
            let fx = c.handle(send("r", &format!("c{i}")), &mut mid());
            out.extend(sent_ids(&fx));
            timers.extend(fx.iter().filter_map(|e| match e {
                Effect::StartPaceTimer { ms } => Some(*ms),
                _ => None,
            }));
        }
        assert_eq!(out, ["c1", "c2", "c3"], "the burst goes at once");
        assert_eq!(
            timers,
            [110],
            "one refill timer, 10% slower than the server"
        );
        // Each tick lets exactly one more through, oldest first.
        for want in ["c4", "c5", "c6"] {
            let fx = c.handle(Event::PaceTimerFired, &mut mid());
            assert_eq!(sent_ids(&fx), [want]);
            assert!(fx.contains(&Effect::StartPaceTimer { ms: 110 }));
        }
        // A refusal anyway: back in line, and nothing more until a refill.
        c.handle(
            Event::Received(ServerMsg::Error {
                code: common::ErrorCode::RateLimited,
                message: "too fast".into(),
                reference: Some("c5".into()),
            }),
            &mut mid(),
        );
        assert_eq!(c.outbox().len(), 6, "nothing dropped");
        assert!(sent_ids(&c.handle(send("r", "c7"), &mut mid())).is_empty());
        let fx = c.handle(Event::PaceTimerFired, &mut mid());
        assert_eq!(sent_ids(&fx), ["c5"], "the refused one goes first");
    }

    #[test]
    fn an_open_socket_is_not_a_connection_until_welcome_and_stability() {
        let mut c = Connection::new(Policy::default());
        c.handle(Event::Start, &mut mid());
        let mut delays = Vec::new();
        // A port that accepts and closes at once: opened, then closed.
        for _ in 0..3 {
            c.handle(Event::Opened, &mut mid());
            assert!(
                matches!(c.phase(), Phase::Connecting { .. }),
                "not Open on a bare open"
            );
            let fx = c.handle(Event::Closed { code: None }, &mut mid());
            delays.push(retry_delay(&fx).unwrap());
            c.handle(Event::RetryTimerFired, &mut mid());
        }
        // A server that welcomes and drops at once.
        for _ in 0..2 {
            c.handle(Event::Opened, &mut mid());
            let fx = c.handle(welcome(), &mut mid());
            assert_eq!(c.phase(), Phase::Open);
            assert!(fx.contains(&Effect::StartStableTimer { ms: 5_000 }));
            let fx = c.handle(Event::Closed { code: Some(1000) }, &mut mid());
            delays.push(retry_delay(&fx).unwrap());
            c.handle(Event::RetryTimerFired, &mut mid());
        }
        assert_eq!(
            delays,
            [1000, 2000, 4000, 8000, 16000],
            "backed off every time"
        );
        // Frames other than welcome before welcome are ignored.
        c.handle(Event::Opened, &mut mid());
        assert!(c.handle(joined("r", 1), &mut mid()).is_empty());
    }

    #[test]
    fn failures_back_off_and_a_stable_connection_resets_the_count() {
        let mut c = Connection::new(Policy::default());
        assert_eq!(c.handle(Event::Start, &mut mid())[0], Effect::Connect);
        let mut delays = Vec::new();
        for _ in 0..4 {
            let fx = c.handle(Event::Closed { code: None }, &mut mid());
            delays.push(retry_delay(&fx).unwrap());
            assert!(matches!(c.phase(), Phase::Waiting { .. }));
            assert!(
                c.handle(Event::RetryTimerFired, &mut mid())
                    .contains(&Effect::Connect)
            );
        }
        assert_eq!(delays, [1000, 2000, 4000, 8000]);
        assert_eq!(c.phase(), Phase::Connecting { attempt: 5 });
        c.handle(Event::Opened, &mut mid());
        c.handle(welcome(), &mut mid());
        assert_eq!(c.phase(), Phase::Open);
        // A stale stability timer before this connection's is harmless; the
        // one after welcome resets the count.
        c.handle(Event::StableTimerFired, &mut mid());
        let fx = c.handle(Event::Closed { code: Some(1001) }, &mut mid());
        assert_eq!(
            retry_delay(&fx),
            Some(1000),
            "reset after a stable connection"
        );
        assert_eq!(
            c.phase(),
            Phase::Waiting {
                attempt: 2,
                delay_ms: 1000
            }
        );
    }

    #[test]
    fn close_codes_decide_between_reconnect_and_sign_in() {
        for code in [
            Some(1001),
            Some(1006),
            Some(1009),
            Some(4008),
            Some(4009),
            Some(4010),
            None,
        ] {
            let mut c = open_machine();
            let fx = c.handle(Event::Closed { code }, &mut mid());
            assert!(retry_delay(&fx).is_some(), "{code:?} reconnects");
        }
        let mut c = open_machine();
        let fx = c.handle(Event::Closed { code: Some(4001) }, &mut mid());
        assert_eq!(c.phase(), Phase::SignedOut);
        assert!(fx.contains(&Effect::RequireSignIn));
        assert!(retry_delay(&fx).is_none());
        // A retry timer from before cannot revive it.
        assert!(c.handle(Event::RetryTimerFired, &mut mid()).is_empty());
    }

    #[test]
    fn a_close_the_user_asked_for_stays_closed() {
        let mut c = open_machine();
        let fx = c.handle(Event::Stop, &mut mid());
        assert!(fx.contains(&Effect::Disconnect));
        assert_eq!(c.phase(), Phase::Stopped);
        assert!(
            c.handle(Event::Closed { code: Some(1000) }, &mut mid())
                .is_empty()
        );
        assert!(c.handle(Event::RetryTimerFired, &mut mid()).is_empty());
        assert_eq!(c.phase(), Phase::Stopped);
    }

    #[test]
    fn retry_now_skips_the_wait() {
        let mut c = open_machine();
        c.handle(Event::Closed { code: None }, &mut mid());
        let fx = c.handle(Event::RetryNow, &mut mid());
        assert_eq!(fx[..2], [Effect::CancelRetryTimer, Effect::Connect]);
        // Only meaningful while waiting.
        assert!(c.handle(Event::RetryNow, &mut mid()).is_empty());
    }

    #[test]
    fn the_watchdog_follows_the_heartbeat_and_declares_the_link_dead() {
        let mut c = Connection::new(Policy::default());
        let fx = c.handle(Event::Start, &mut mid());
        assert!(
            fx.contains(&Effect::ArmWatchdog { ms: 35_000 }),
            "bounds the connect too"
        );
        c.handle(Event::Opened, &mut mid());
        let fx = c.handle(
            Event::Received(ServerMsg::Welcome {
                user: User {
                    id: "u".into(),
                    name: "n".into(),
                    username: None,
                },
                heartbeat_ms: 5_000,
                protocol: 1,
                send_limit: common::SendLimit::default(),
            }),
            &mut mid(),
        );
        assert!(fx.contains(&Effect::ArmWatchdog { ms: 15_000 }));
        // Pings are answered and re-arm the watchdog.
        let fx = c.handle(Event::Received(ServerMsg::Ping), &mut mid());
        assert_eq!(
            fx,
            [
                Effect::SendFrame(ClientMsg::Pong),
                Effect::ArmWatchdog { ms: 15_000 }
            ]
        );
        let fx = c.handle(Event::WatchdogExpired, &mut mid());
        assert_eq!(fx[0], Effect::Disconnect);
        assert!(retry_delay(&fx).is_some());
        // The dropped socket's late close event changes nothing.
        assert!(
            c.handle(Event::Closed { code: Some(1006) }, &mut mid())
                .is_empty()
        );
    }

    #[test]
    fn reconnecting_rejoins_every_room_from_the_last_seq_seen() {
        let mut c = open_machine();
        for room in ["a", "b"] {
            let fx = c.handle(Event::Join { room: room.into() }, &mut mid());
            assert_eq!(
                frames(&fx),
                [ClientMsg::Join {
                    room: room.into(),
                    since: None
                }]
            );
        }
        c.handle(joined("a", 3), &mut mid());
        c.handle(joined("b", 0), &mut mid());
        c.handle(message("a", 4), &mut mid());
        c.handle(message("a", 5), &mut mid());
        c.handle(Event::Closed { code: Some(1001) }, &mut mid());
        c.handle(Event::RetryTimerFired, &mut mid());
        c.handle(Event::Opened, &mut mid());
        let fx = c.handle(welcome(), &mut mid());
        assert_eq!(
            frames(&fx),
            [
                ClientMsg::Join {
                    room: "a".into(),
                    since: Some(5)
                },
                ClientMsg::Join {
                    room: "b".into(),
                    since: Some(0)
                },
            ]
        );
        // A room left is not re-joined.
        c.handle(Event::Leave { room: "b".into() }, &mut mid());
        assert_eq!(c.rooms().collect::<Vec<_>>(), ["a"]);
    }

    #[test]
    fn the_outbox_holds_messages_until_acked_and_resends_them_once_joined() {
        let mut c = open_machine();
        c.handle(Event::Join { room: "a".into() }, &mut mid());
        c.handle(joined("a", 0), &mut mid());
        let send = |id: &str| Event::Send {
            room: "a".into(),
            client_id: id.into(),
            post: Post::text(format!("text {id}")),
        };
        let fx = c.handle(send("c1"), &mut mid());
        assert_eq!(frames(&fx).len(), 1, "sent at once while connected");
        c.handle(Event::Closed { code: None }, &mut mid());
        // Typed while disconnected: queued, not sent.
        assert!(frames(&c.handle(send("c2"), &mut mid())).is_empty());
        assert!(frames(&c.handle(Event::Typing { room: "a".into() }, &mut mid())).is_empty());
        assert_eq!(c.outbox().len(), 2);

        c.handle(Event::RetryTimerFired, &mut mid());
        c.handle(Event::Opened, &mut mid());
        let fx = c.handle(welcome(), &mut mid());
        assert!(
            frames(&fx)
                .iter()
                .all(|f| matches!(f, ClientMsg::Join { .. })),
            "nothing is sent before the room is joined again"
        );
        let fx = c.handle(joined("a", 0), &mut mid());
        let resent: Vec<String> = frames(&fx)
            .into_iter()
            .map(|f| match f {
                ClientMsg::Send { client_id, .. } => client_id,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(resent, ["c1", "c2"], "original ids, original order");
        c.handle(
            Event::Received(ServerMsg::Ack {
                room: "a".into(),
                client_id: "c1".into(),
                seq: 1,
            }),
            &mut mid(),
        );
        assert_eq!(c.outbox().len(), 1);
        assert_eq!(c.outbox()[0].client_id, "c2");
        // Joining again on the same socket does not send c2 twice.
        assert!(frames(&c.handle(joined("a", 1), &mut mid())).is_empty());
    }

    /// An edit, a delete or a topic typed while offline waits in the
    /// outbox with the messages, in order, and goes out as its own frame
    /// once the room is joined again; an event counts for the resume point.
    #[test]
    fn changes_wait_in_the_outbox_like_messages() {
        let mut c = open_machine();
        c.handle(Event::Join { room: "a".into() }, &mut mid());
        c.handle(joined("a", 4), &mut mid());
        c.handle(Event::Closed { code: None }, &mut mid());
        let posts = [
            Post::Message {
                content: "yes".into(),
                reply_to: Some(2),
            },
            Post::Edit {
                target: 3,
                content: "fixed".into(),
            },
            Post::Delete { target: 4 },
            Post::Topic {
                topic: "Plans".into(),
            },
        ];
        for (i, post) in posts.into_iter().enumerate() {
            let fx = c.handle(
                Event::Send {
                    room: "a".into(),
                    client_id: format!("p{i}"),
                    post,
                },
                &mut mid(),
            );
            assert!(frames(&fx).is_empty(), "offline: queued");
        }
        c.handle(Event::RetryTimerFired, &mut mid());
        c.handle(Event::Opened, &mut mid());
        c.handle(welcome(), &mut mid());
        let fx = c.handle(joined("a", 4), &mut mid());
        assert_eq!(
            frames(&fx),
            [
                ClientMsg::Send {
                    room: "a".into(),
                    content: "yes".into(),
                    client_id: "p0".into(),
                    reply_to: Some(2)
                },
                ClientMsg::Edit {
                    room: "a".into(),
                    target: 3,
                    content: "fixed".into(),
                    client_id: "p1".into()
                },
                ClientMsg::Delete {
                    room: "a".into(),
                    target: 4,
                    client_id: "p2".into()
                },
                ClientMsg::SetTopic {
                    room: "a".into(),
                    topic: "Plans".into(),
                    client_id: "p3".into()
                },
            ]
        );
        // A change heard live moves the resume point like a message.
        c.handle(
            Event::Received(ServerMsg::Event(ChatMessage {
                room: "a".into(),
                seq: 5,
                kind: common::EntryKind::Edit,
                target: Some(3),
                ..ChatMessage::default()
            })),
            &mut mid(),
        );
        assert_eq!(c.last_seq("a"), Some(5));
    }
}
