//! Property tests of the connection machine over random event sequences,
//! fed the way the driver would feed them (events of a socket only while it
//! is the current one). Whatever happens:
//! - there is never more than one socket;
//! - every retry delay is within the backoff bounds for its attempt;
//! - no message is lost from the outbox: each one sent is acked, refused,
//!   given up on (reported), dropped with its room, or still queued;
//! - no message is sent again after its ack;
//! - a wake-up (online, visible, focus, "Retry now") brings an attempt
//!   forward only by a jitter of at most `wake_jitter_ms`, and never before
//!   the gate of the previous attempt (`min_gap_ms`) has opened.

use std::collections::{BTreeMap, BTreeSet};

use client_core::connection::{Connection, Effect, Event, MAX_STORE_ATTEMPTS, Phase, Policy, Post};
use common::{ClientMsg, ErrorCode, ServerMsg, User};
use proptest::prelude::*;

const ROOMS: [&str; 3] = ["a", "b", "c"];

#[derive(Debug, Clone)]
enum Action {
    Start,
    Opened,
    Closed(Option<u16>),
    Welcome,
    Joined(usize),
    /// Ack the n-th message in flight on this socket.
    Ack(usize),
    Internal(usize),
    Refuse(usize),
    Watchdog,
    RetryTimer,
    ResendTimer,
    StableTimer,
    PaceTimer,
    Wake,
    GateTimer,
    Join(usize),
    Leave(usize),
    Send(usize),
    Stop,
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        1 => Just(Action::Start),
        3 => Just(Action::Opened),
        2 => prop_oneof![Just(None), Just(Some(1000)), Just(Some(1001)), Just(Some(1006)), Just(Some(4009))]
            .prop_map(Action::Closed),
        2 => Just(Action::Welcome),
        3 => (0..ROOMS.len()).prop_map(Action::Joined),
        4 => (0..8usize).prop_map(Action::Ack),
        2 => (0..8usize).prop_map(Action::Internal),
        1 => (0..8usize).prop_map(Action::Refuse),
        1 => Just(Action::Watchdog),
        2 => Just(Action::RetryTimer),
        2 => Just(Action::ResendTimer),
        1 => Just(Action::StableTimer),
        3 => Just(Action::PaceTimer),
        2 => Just(Action::Wake),
        2 => Just(Action::GateTimer),
        2 => (0..ROOMS.len()).prop_map(Action::Join),
        1 => (0..ROOMS.len()).prop_map(Action::Leave),
        4 => (0..ROOMS.len()).prop_map(Action::Send),
        1 => Just(Action::Stop),
    ]
}

/// What the test knows, as the driver and the server would.
#[derive(Default)]
struct World {
    /// A socket exists (Connect performed, not yet closed or dropped).
    socket: bool,
    /// ... and its `open` event was delivered.
    opened: bool,
    /// client_id -> room, for every message the person sent.
    written: BTreeMap<String, String>,
    /// Sent on the current socket, not answered yet, in order.
    in_flight: Vec<String>,
    acked: BTreeSet<String>,
    refused: BTreeSet<String>,
    given_up: BTreeSet<String>,
    /// Messages dropped because their room was left.
    left: BTreeSet<String>,
    next_id: u32,
    /// Some attempt was made.
    attempted: bool,
    /// A gate timer is running (`StartGateTimer`, not fired yet).
    gate_pending: bool,
    /// The gate of the latest attempt has opened.
    gate_fired: bool,
}

fn nominal(policy: &Policy, failures: u32) -> u64 {
    let exponent = failures.saturating_sub(1).min(20);
    (u64::from(policy.base_delay_ms) << exponent).min(u64::from(policy.max_delay_ms))
}

fn user() -> User {
    User {
        id: "u".into(),
        name: "u".into(),
        username: None,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn the_machine_keeps_its_promises(
        actions in prop::collection::vec(action(), 1..120),
        randoms in prop::collection::vec(0.0f64..1.0, 120),
    ) {
        let policy = Policy::default();
        let mut machine = Connection::new(policy);
        let mut world = World::default();
        let mut r = randoms.into_iter().cycle();
        let mut random = move || r.next().unwrap();

        for action in actions {
            let phase = machine.phase();
            let waking = matches!(action, Action::Wake | Action::GateTimer);
            let event = match action {
                Action::Start => Event::Start,
                // Socket events only come for a socket that exists.
                Action::Opened if world.socket && !world.opened => {
                    world.opened = true;
                    Event::Opened
                }
                Action::Closed(code) if world.socket => {
                    world.socket = false;
                    world.opened = false;
                    world.in_flight.clear();
                    Event::Closed { code }
                }
                // The server's first frame, once per socket.
                Action::Welcome if world.socket && world.opened && phase != Phase::Open => Event::Received(ServerMsg::Welcome {
                    user: user(),
                    heartbeat_ms: 25_000,
                    protocol: common::PROTOCOL_VERSION,
                    send_limit: common::SendLimit::default(),
                }),
                Action::Joined(room) if world.socket && phase == Phase::Open => Event::Received(ServerMsg::Joined {
                    room: ROOMS[room].into(),
                    members: vec![],
                    last_seq: 0,
                    recovered: true,
                    read_seq: 0,
                    unread: 0,
                    mentions: 0,
                    topic: String::new(),
                    moderator: false,
                }),
                Action::Ack(n) | Action::Internal(n) | Action::Refuse(n)
                    if world.socket && phase == Phase::Open && !world.in_flight.is_empty() =>
                {
                    let id = world.in_flight.remove(n % world.in_flight.len());
                    let room = world.written[&id].clone();
                    match action {
                        Action::Ack(_) => {
                            world.acked.insert(id.clone());
                            Event::Received(ServerMsg::Ack { room, client_id: id, seq: 1 })
                        }
                        Action::Internal(_) => Event::Received(ServerMsg::Error {
                            code: ErrorCode::Internal,
                            message: "store".into(),
                            reference: Some(id),
                        }),
                        _ => {
                            world.refused.insert(id.clone());
                            Event::Received(ServerMsg::Error {
                                code: ErrorCode::InvalidContent,
                                message: "no".into(),
                                reference: Some(id),
                            })
                        }
                    }
                }
                Action::Watchdog => Event::WatchdogExpired,
                Action::RetryTimer => Event::RetryTimerFired,
                Action::ResendTimer => Event::ResendTimerFired,
                Action::StableTimer => Event::StableTimerFired,
                Action::PaceTimer => Event::PaceTimerFired,
                Action::Wake => Event::Wake,
                Action::GateTimer => {
                    if !world.gate_pending {
                        continue;
                    }
                    world.gate_pending = false;
                    world.gate_fired = true;
                    Event::GateTimerFired
                }
                Action::Join(room) => Event::Join { room: ROOMS[room].into() },
                Action::Leave(room) => {
                    let room = ROOMS[room];
                    for out in machine.outbox().iter().filter(|o| o.room == room) {
                        world.left.insert(out.client_id.clone());
                    }
                    Event::Leave { room: room.into() }
                }
                Action::Send(room) => {
                    world.next_id += 1;
                    let id = format!("c{}", world.next_id);
                    world.written.insert(id.clone(), ROOMS[room].into());
                    Event::Send { room: ROOMS[room].into(), client_id: id, post: Post::text("hi") }
                }
                Action::Stop => Event::Stop,
                _ => continue,
            };
            let effects = machine.handle(event, &mut random);
            for effect in effects {
                match effect {
                    Effect::StartGateTimer { ms } => {
                        prop_assert_eq!(ms, policy.min_gap_ms);
                        world.gate_pending = true;
                        world.gate_fired = false;
                    }
                    Effect::StartRetryTimer { ms } if waking => {
                        prop_assert!(ms <= policy.wake_jitter_ms, "a wake-up's delay {}", ms);
                        prop_assert!(
                            !world.attempted || world.gate_fired,
                            "an attempt brought forward before the gate opened"
                        );
                    }
                    Effect::Connect => {
                        // The driver drops any old socket first; the machine
                        // must not ask for a second while one is live.
                        prop_assert!(!world.socket, "a second socket while one is live");
                        world.attempted = true;
                        world.socket = true;
                        world.opened = false;
                        world.in_flight.clear();
                    }
                    Effect::Disconnect => {
                        world.socket = false;
                        world.opened = false;
                        world.in_flight.clear();
                    }
                    Effect::StartRetryTimer { ms } => {
                        let Phase::Waiting { attempt, delay_ms } = machine.phase() else {
                            panic!("a retry timer outside Waiting");
                        };
                        prop_assert_eq!(ms, delay_ms);
                        let n = nominal(&policy, attempt - 1);
                        prop_assert!(u64::from(ms) >= n / 2, "{} below the bound for attempt {}", ms, attempt);
                        prop_assert!(u64::from(ms) <= (n * 3 / 2).min(u64::from(policy.max_delay_ms)));
                    }
                    Effect::SendFrame(ClientMsg::Send { client_id, .. }) => {
                        prop_assert!(world.socket, "a frame with no socket");
                        prop_assert!(!world.acked.contains(&client_id), "{} sent again after its ack", client_id);
                        prop_assert!(!world.in_flight.contains(&client_id), "{} sent twice on one socket", client_id);
                        world.in_flight.push(client_id);
                    }
                    Effect::SendFailed { client_id } => {
                        world.given_up.insert(client_id);
                    }
                    _ => {}
                }
            }
            // Nothing is lost: every message written is accounted for.
            let queued: BTreeSet<String> = machine.outbox().iter().map(|o| o.client_id.clone()).collect();
            for id in world.written.keys() {
                let settled = world.acked.contains(id) || world.refused.contains(id)
                    || world.given_up.contains(id) || world.left.contains(id);
                prop_assert!(settled || queued.contains(id), "{} was lost", id);
                prop_assert!(!(world.acked.contains(id) && queued.contains(id)), "{} acked but still queued", id);
            }
        }
    }
}

#[test]
fn a_message_the_store_keeps_refusing_is_given_up_after_the_limit() {
    let mut machine = Connection::new(Policy::default());
    let mut mid = || 0.5;
    machine.handle(Event::Start, &mut mid);
    machine.handle(Event::Opened, &mut mid);
    machine.handle(
        Event::Received(ServerMsg::Welcome {
            user: user(),
            heartbeat_ms: 25_000,
            protocol: common::PROTOCOL_VERSION,
            send_limit: common::SendLimit::default(),
        }),
        &mut mid,
    );
    machine.handle(Event::Join { room: "r".into() }, &mut mid);
    machine.handle(
        Event::Received(ServerMsg::Joined {
            room: "r".into(),
            members: vec![],
            last_seq: 0,
            recovered: true,
            read_seq: 0,
            unread: 0,
            mentions: 0,
            topic: String::new(),
            moderator: false,
        }),
        &mut mid,
    );
    let fx = machine.handle(
        Event::Send {
            room: "r".into(),
            post: Post::text("hi"),
            client_id: "c1".into(),
        },
        &mut mid,
    );
    let sends = |fx: &[Effect]| {
        fx.iter()
            .filter(|e| matches!(e, Effect::SendFrame(ClientMsg::Send { .. })))
            .count()
    };
    assert_eq!(sends(&fx), 1, "sent at once: {fx:?}");
    let internal = || {
        Event::Received(ServerMsg::Error {
            code: ErrorCode::Internal,
            message: "disk full".into(),
            reference: Some("c1".into()),
        })
    };
    let mut delays = Vec::new();
    for attempt in 1..MAX_STORE_ATTEMPTS {
        let fx = machine.handle(internal(), &mut mid);
        let delay = fx.iter().find_map(|e| match e {
            Effect::StartResendTimer { ms } => Some(*ms),
            _ => None,
        });
        delays.push(delay.expect("a resend is scheduled"));
        assert_eq!(machine.outbox().len(), 1, "still queued after {attempt}");
        let fx = machine.handle(Event::ResendTimerFired, &mut mid);
        assert!(
            fx.iter().any(
                |e| matches!(e, Effect::SendFrame(ClientMsg::Send { client_id, .. }) if client_id == "c1")
            ),
            "re-sent: {fx:?}"
        );
    }
    assert_eq!(delays, [1_000, 2_000], "backoff between attempts");
    let fx = machine.handle(internal(), &mut mid);
    assert!(fx.contains(&Effect::SendFailed {
        client_id: "c1".into()
    }));
    assert!(machine.outbox().is_empty());
    // Retry (the same client_id) queues it again and sends it.
    let fx = machine.handle(
        Event::Send {
            room: "r".into(),
            post: Post::text("hi"),
            client_id: "c1".into(),
        },
        &mut mid,
    );
    assert_eq!(sends(&fx), 1);
    assert_eq!(machine.outbox().len(), 1);
}
