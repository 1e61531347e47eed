//! `connection.rs` through its public API, natively (`cargo test -p client-core`).

use client_core::connection::*;
use common::{ChatMessage, ClientMsg, ServerMsg, User};

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

/// The gate timer a connect starts, and the retry timer in effects.
fn retry_ms(fx: &[Effect]) -> Option<u32> {
    fx.iter().find_map(|e| match e {
        Effect::StartRetryTimer { ms } => Some(*ms),
        _ => None,
    })
}

#[test]
fn a_wake_up_brings_the_next_attempt_forward_once_after_a_jitter() {
    let mut c = open_machine();
    // A few failures: the backoff is long now.
    for _ in 0..5 {
        c.handle(Event::Closed { code: None }, &mut mid());
        c.handle(Event::GateTimerFired, &mut mid());
        c.handle(Event::RetryTimerFired, &mut mid());
    }
    let fx = c.handle(Event::Closed { code: None }, &mut mid());
    let backoff = retry_ms(&fx).unwrap();
    assert!(backoff > 10_000, "{backoff}");
    c.handle(Event::GateTimerFired, &mut mid());
    // Online again: the attempt comes after a jitter of at most
    // `wake_jitter_ms`, not after the rest of the backoff.
    let fx = c.handle(Event::Wake, &mut || 0.5);
    assert_eq!(retry_ms(&fx), Some(250));
    assert!(matches!(c.phase(), Phase::Waiting { delay_ms: 250, .. }));
    // More wake-ups (focus, visible, "Retry now") wait for that attempt.
    assert!(c.handle(Event::Wake, &mut mid()).is_empty());
    let fx = c.handle(Event::RetryTimerFired, &mut mid());
    assert!(fx.contains(&Effect::Connect));
    assert!(fx.contains(&Effect::StartGateTimer { ms: 1_000 }));
    // Only meaningful while waiting.
    assert!(c.handle(Event::Wake, &mut mid()).is_empty());
}

#[test]
fn a_storm_of_wake_ups_costs_at_most_one_attempt_a_second() {
    let mut c = open_machine();
    c.handle(Event::Closed { code: None }, &mut mid());
    let fx = c.handle(Event::RetryTimerFired, &mut mid());
    assert!(fx.contains(&Effect::Connect));
    // The attempt fails at once; wake-ups pour in before a second passed.
    c.handle(Event::Closed { code: None }, &mut mid());
    for _ in 0..100 {
        let fx = c.handle(Event::Wake, &mut mid());
        assert!(retry_ms(&fx).is_none() && !fx.contains(&Effect::Connect));
    }
    // The gate opens: one attempt is brought forward, for all of them.
    let fx = c.handle(Event::GateTimerFired, &mut || 0.0);
    assert_eq!(retry_ms(&fx), Some(0));
    assert!(c.handle(Event::Wake, &mut mid()).is_empty());
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
        // With a file: resent with the same file ids, so the server
        // takes it as the same message (and the same files).
        Post::Message {
            content: "yes".into(),
            reply_to: Some(2),
            files: vec!["f1".into()],
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
                reply_to: Some(2),
                files: vec!["f1".into()],
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

#[test]
fn a_room_left_on_another_device_is_not_joined_again() {
    let mut c = open_machine();
    c.handle(Event::Join { room: "r".into() }, &mut mid());
    c.handle(
        Event::Received(ServerMsg::Left {
            room: "r".into(),
            reason: None,
        }),
        &mut mid(),
    );
    assert_eq!(c.rooms().count(), 0);
    // After a reconnect, nothing to re-join.
    c.handle(Event::Closed { code: None }, &mut mid());
    c.handle(Event::GateTimerFired, &mut mid());
    c.handle(Event::RetryTimerFired, &mut mid());
    c.handle(Event::Opened, &mut mid());
    let fx = c.handle(welcome(), &mut mid());
    assert!(
        !fx.iter()
            .any(|e| matches!(e, Effect::SendFrame(ClientMsg::Join { .. }))),
        "{fx:?}"
    );
}

#[test]
fn a_rename_reconnects_soon_and_resumes_what_was_unsent() {
    let mut c = open_machine();
    c.handle(Event::GateTimerFired, &mut mid());
    c.handle(Event::Join { room: "r".into() }, &mut mid());
    c.handle(joined("r", 4), &mut mid());
    c.handle(
        Event::Send {
            room: "r".into(),
            client_id: "c1".into(),
            post: Post::text("hi"),
        },
        &mut mid(),
    );
    let renamed = Event::Received(ServerMsg::AccountChanged {
        user: User {
            id: "me".into(),
            name: "new me".into(),
            username: None,
        },
    });
    let fx = c.handle(renamed.clone(), &mut || 0.5);
    assert!(fx.contains(&Effect::Disconnect), "{fx:?}");
    // A short jitter, not a backoff (the later timer replaces the first).
    let last_retry = fx.iter().rev().find_map(|e| match e {
        Effect::StartRetryTimer { ms } => Some(*ms),
        _ => None,
    });
    assert_eq!(last_retry, Some(250), "{fx:?}");
    assert!(matches!(c.phase(), Phase::Waiting { delay_ms: 250, .. }));
    let fx = c.handle(Event::RetryTimerFired, &mut mid());
    assert!(fx.contains(&Effect::Connect));
    c.handle(Event::Opened, &mut mid());
    let fx = c.handle(welcome(), &mut mid());
    assert_eq!(
        frames(&fx),
        [ClientMsg::Join {
            room: "r".into(),
            since: Some(4)
        }]
    );
    let fx = c.handle(joined("r", 4), &mut mid());
    assert!(
        matches!(&frames(&fx)[..], [ClientMsg::Send { client_id, .. }] if client_id == "c1"),
        "the unacked message again, same client_id: {fx:?}"
    );
    // Told again less than a second after connecting: the gate holds the
    // next attempt to one a second.
    let fx = c.handle(renamed, &mut || 0.0);
    assert!(fx.contains(&Effect::Disconnect));
    assert!(
        matches!(c.phase(), Phase::Waiting { delay_ms, .. } if delay_ms >= 500),
        "{fx:?}"
    );
    // The gate opens: the attempt it held comes soon after.
    let fx = c.handle(Event::GateTimerFired, &mut || 0.0);
    assert_eq!(retry_ms(&fx), Some(0));
}
