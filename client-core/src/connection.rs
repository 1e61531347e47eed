//! The client's connection policy as a pure state machine.
//!
//! `Connection::handle(event) -> Vec<Effect>`: no sockets, timers or clocks in
//! here. A driver performs the effects and feeds back what happened as
//! events: the browser's (`client-web/src/driver.rs`, gloo-net and browser
//! timers; the app and the JavaScript package) and the native client's
//! (`client/src/driver.rs`, tokio and tokio-tungstenite) are two drivers of
//! this one policy. Randomness for jitter is passed in, so tests are
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
//! - Back at once when the network is: a wake-up (the browser is online
//!   again, the tab became visible or focused, the person pressed "Retry
//!   now") while waiting makes the next attempt come after a short jitter
//!   instead of the rest of the backoff. Still one attempt, and never
//!   sooner than `min_gap_ms` after the previous attempt began (a gate
//!   timer, not a clock): a storm of wake-ups costs at most one attempt a
//!   second.
//! - After (re)connecting, re-join every room, from the last seq seen.
//! - `account_changed` (renamed on some device) drops the connection and
//!   makes a new one after a short jitter: the server names a connection's
//!   messages by the account as it was when it connected.
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
//!
//! Over 500 lines: the whole reconnect, backoff, watchdog, resume and
//! outbox policy is one state machine, kept together so its transitions
//! read together; its tests are `tests/connection.rs` and
//! `tests/connection_props.rs`.

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
    /// Least time between the start of one attempt and a wake-up's.
    pub min_gap_ms: u32,
    /// A wake-up's attempt comes after a random delay up to this, so that
    /// everyone whose network came back at once does not arrive at once.
    pub wake_jitter_ms: u32,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            base_delay_ms: 1_000,
            max_delay_ms: 30_000,
            watchdog_grace_ms: 10_000,
            default_heartbeat_ms: 25_000,
            stable_ms: 5_000,
            min_gap_ms: 1_000,
            wake_jitter_ms: 500,
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
    /// A reason to try again now: the browser is online again, the tab
    /// became visible or got focus, or the person pressed "Retry now".
    Wake,
    /// `min_gap_ms` have passed since the last attempt began.
    GateTimerFired,
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
    /// Fire `GateTimerFired` after `ms`, replacing any earlier one.
    StartGateTimer {
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
    /// `min_gap_ms` have passed since the last attempt began (or none
    /// began yet): a wake-up may bring the next one forward.
    gate_open: bool,
    /// A wake-up came while the gate was shut: act on it when it opens.
    woken: bool,
    /// The next attempt was brought forward already; more wake-ups wait
    /// for it.
    woken_attempt: bool,
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
            gate_open: true,
            woken: false,
            woken_attempt: false,
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

    /// Joined on the current socket (its `joined` has arrived).
    pub fn is_joined(&self, room: &str) -> bool {
        self.rooms.get(room).is_some_and(|r| r.joined)
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
            Event::Wake => {
                if self.gate_open {
                    self.wake(&mut fx, random);
                } else {
                    self.woken = true;
                }
            }
            Event::GateTimerFired => {
                self.gate_open = true;
                if std::mem::take(&mut self.woken) {
                    self.wake(&mut fx, random);
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
            // Renamed: a new connection carries the new name. Dropped and
            // made again soon (jittered, resumed), as after a lost link
            // that a wake-up brought forward.
            ServerMsg::AccountChanged { .. } => {
                fx.push(Effect::Disconnect);
                self.lost(None, fx, random);
                if self.gate_open {
                    self.wake(fx, random);
                } else {
                    self.woken = true;
                }
                return;
            }
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
            // Removed from the room by a moderator, left on another
            // device, refused entry to a private one, or refused a join (a
            // new room over the creation quota, a full server): it is not
            // ours to re-join on reconnect, and what was queued for it will
            // not be sent.
            ServerMsg::Left { room, .. }
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
        self.gate_open = false;
        self.woken = false;
        self.woken_attempt = false;
        fx.push(Effect::Connect);
        // Also bounds a connect that hangs.
        self.arm_watchdog(fx);
        fx.push(Effect::StartGateTimer {
            ms: self.policy.min_gap_ms,
        });
    }

    /// Brings the next attempt forward to a short jittered delay, once, if
    /// waiting for one.
    fn wake(&mut self, fx: &mut Vec<Effect>, random: &mut dyn FnMut() -> f64) {
        let Phase::Waiting { attempt, delay_ms } = self.phase else {
            return;
        };
        if self.woken_attempt {
            return;
        }
        let jitter = (f64::from(self.policy.wake_jitter_ms) * random().clamp(0.0, 1.0)) as u32;
        if jitter >= delay_ms {
            return;
        }
        self.woken_attempt = true;
        self.phase = Phase::Waiting {
            attempt,
            delay_ms: jitter,
        };
        fx.push(Effect::StartRetryTimer { ms: jitter });
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
