//! The native client (`hearth-client`) against the real `hearth` binary:
//! killed with -9 and restarted mid-conversation, a dead and a slamming
//! port, a revoked session. Its policy is `client_core`'s, tested alone in
//! `client-core/tests/`; these test the driver that connects it to real
//! sockets and timers.

use std::time::Duration;

use common::{ChatMessage, User};
use hearth_client::{
    Client, Error, Event, Options, Phase, Policy, Post, Server, ServerMsg, Session,
};

use crate::support::{PASSWORD, WAIT, start_hearth, temp_dir, unused_port};

/// Quick retries, so a restart is caught up with in well under a second.
fn quick() -> Options {
    Options {
        policy: Policy {
            base_delay_ms: 100,
            max_delay_ms: 500,
            stable_ms: 500,
            min_gap_ms: 100,
            wake_jitter_ms: 50,
            ..Policy::default()
        },
        ..Options::default()
    }
}

fn node_args(dir: &std::path::Path) -> Vec<String> {
    [
        "--auth-per-ip-per-minute",
        "1000000",
        "--data-dir",
        dir.join("data").to_str().unwrap(),
        "--static-dir",
        dir.to_str().unwrap(),
    ]
    .map(str::to_owned)
    .to_vec()
}

/// The next event `want` picks, within `WAIT`.
async fn next_where<T>(
    events: &mut hearth_client::Events,
    mut want: impl FnMut(Event) -> Option<T>,
) -> T {
    tokio::time::timeout(WAIT, async {
        loop {
            let event = events.next().await.expect("the client is running");
            if let Some(found) = want(event) {
                return found;
            }
        }
    })
    .await
    .expect("the event came in time")
}

#[tokio::test]
async fn the_rust_client_loses_nothing_and_repeats_nothing_across_kill_9() {
    let dir = temp_dir();
    let args = node_args(&dir);
    let log = dir.join("hearth.log");
    let (mut node, addr) = start_hearth(&args, "127.0.0.1:0", "client-kill", &log, "info").await;
    let server = Server::new(&format!("http://{addr}")).unwrap();
    let alice = server.sign_up("alice", PASSWORD, "Alice").await.unwrap();
    let bob = server.sign_up("bob", PASSWORD, "Bob").await.unwrap();
    let alice_client = Client::connect_with(&alice, quick());
    let bob_client = Client::connect_with(&bob, quick());
    let mut seen_by_bob = bob_client.events();
    bob_client.join("general").await.unwrap();
    alice_client.join("general").await.unwrap();

    let mut receipts = Vec::new();
    for i in 0..10 {
        let post = Post::text(format!("m{i}"));
        receipts.push(alice_client.submit("general", post).await.unwrap());
    }
    let first = receipts.pop().unwrap().stored().await.unwrap();
    // Ten more on their way when the server dies (some stored and not
    // acknowledged, some not sent: the outbox does not know which), and
    // ten typed while it is down.
    for i in 10..20 {
        let post = Post::text(format!("m{i}"));
        receipts.push(alice_client.submit("general", post).await.unwrap());
    }
    node.start_kill().unwrap();
    node.wait().await.unwrap();
    for i in 20..30 {
        let post = Post::text(format!("m{i}"));
        receipts.push(alice_client.submit("general", post).await.unwrap());
    }
    let (_node, _) = start_hearth(&args, &addr, "client-kill", &log, "info").await;

    let mut seqs = vec![first];
    for receipt in receipts {
        let stored = tokio::time::timeout(WAIT, receipt.stored()).await;
        seqs.push(stored.expect("stored after the restart").unwrap());
    }
    seqs.sort_unstable();
    seqs.dedup();
    assert_eq!(seqs.len(), 30, "every post has a seq of its own");

    // Stored once each, in the order typed.
    let stored = alice.history("general", None, 100).await.unwrap();
    let said: Vec<&str> = stored.iter().map(|m| m.content.as_str()).collect();
    let typed: Vec<String> = (0..30).map(|i| format!("m{i}")).collect();
    assert_eq!(said, typed, "the room's log");

    // Bob's client saw each once, in order: live before the kill, the rest
    // replayed when it resumed.
    let mut heard = Vec::new();
    while heard.len() < 30 {
        let m = next_where(&mut seen_by_bob, |event| match event {
            Event::Server(ServerMsg::Message(m)) => Some(m),
            _ => None,
        })
        .await;
        heard.push(m.content);
    }
    assert_eq!(heard, typed, "what Bob's client delivered");
    let more = tokio::time::timeout(Duration::from_millis(300), async {
        next_where(&mut seen_by_bob, |event| match event {
            Event::Server(ServerMsg::Message(m)) => Some(m),
            _ => None,
        })
        .await
    })
    .await;
    assert!(more.is_err(), "delivered twice: {more:?}");
    assert_eq!(alice_client.phase(), Phase::Open);
}

/// The `(attempt, delay_ms)` of each wait for a retry, the first `n`.
async fn waits(session: &Session, policy: Policy, n: usize) -> Vec<(u32, u32)> {
    let client = Client::connect_with(
        session,
        Options {
            policy,
            ..Options::default()
        },
    );
    let mut events = client.events();
    let mut waits = Vec::new();
    while waits.len() < n {
        let wait = next_where(&mut events, |event| match event {
            Event::Phase(Phase::Waiting { attempt, delay_ms }) => Some((attempt, delay_ms)),
            _ => None,
        })
        .await;
        waits.push(wait);
    }
    client.close().await;
    waits
}

fn nobody(server: Server) -> Session {
    Session {
        server,
        token: "no-session".into(),
        user: User {
            id: "nobody".into(),
            name: "nobody".into(),
            username: None,
        },
    }
}

/// Each delay is the policy's for its attempt: base·2^(n-1), capped, ±50 %.
fn assert_backs_off(waits: &[(u32, u32)], policy: &Policy) {
    for (i, &(attempt, delay)) in waits.iter().enumerate() {
        let failures = i as u32 + 1;
        assert_eq!(attempt, failures + 1, "attempts count up: {waits:?}");
        let nominal = (policy.base_delay_ms << (failures - 1)).min(policy.max_delay_ms);
        let low = nominal / 2;
        let high = (nominal + nominal / 2).min(policy.max_delay_ms);
        assert!(
            (low..=high).contains(&delay),
            "retry {failures} after {delay} ms, not within {low}..={high}: {waits:?}"
        );
    }
}

#[tokio::test]
async fn a_dead_port_is_retried_with_growing_jittered_delays() {
    let policy = Policy {
        base_delay_ms: 20,
        max_delay_ms: 160,
        ..Policy::default()
    };
    let server = Server::new(&format!("http://127.0.0.1:{}", unused_port())).unwrap();
    let waits = waits(&nobody(server), policy, 6).await;
    assert_backs_off(&waits, &policy);
}

#[tokio::test]
async fn a_port_that_accepts_and_hangs_up_is_backed_off_like_a_dead_one() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let count = accepted.clone();
    let slammer = tokio::spawn(async move {
        loop {
            let (socket, _) = listener.accept().await.unwrap();
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            drop(socket);
        }
    });
    let policy = Policy {
        base_delay_ms: 20,
        max_delay_ms: 160,
        ..Policy::default()
    };
    let server = Server::new(&format!("http://{addr}")).unwrap();
    let waits = waits(&nobody(server), policy, 6).await;
    assert_backs_off(&waits, &policy);
    // One connection per attempt: no retry loop hides under the policy.
    let connections = accepted.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        (6..=7).contains(&connections),
        "{connections} connections for 6 failed attempts"
    );
    slammer.abort();
}

#[tokio::test]
async fn a_revoked_session_stops_the_client_which_says_why() {
    let dir = temp_dir();
    let log = dir.join("hearth.log");
    let (_node, addr) = start_hearth(node_args(&dir), "127.0.0.1:0", "revoke", &log, "info").await;
    let server = Server::new(&format!("http://{addr}")).unwrap();
    let alice = server.sign_up("alice", PASSWORD, "Alice").await.unwrap();
    let client = Client::connect_with(&alice, quick());
    let mut events = client.events();
    client.join("general").await.unwrap();

    alice.sign_out().await.unwrap();
    let reason = next_where(&mut events, |event| match event {
        Event::SignedOut(reason) => Some(reason),
        _ => None,
    })
    .await;
    assert!(!reason.is_empty());
    assert_eq!(client.phase(), Phase::SignedOut);
    let refused = client.send("general", "after signing out").await;
    assert!(matches!(refused, Err(Error::SignedOut(_))), "{refused:?}");
    // It stays stopped: no attempt in several of the policy's longest waits.
    let again = tokio::time::timeout(Duration::from_millis(1_500), async {
        next_where(&mut events, |event| match event {
            Event::Phase(phase) if phase != Phase::SignedOut => Some(phase),
            _ => None,
        })
        .await
    })
    .await;
    assert!(again.is_err(), "a signed-out client tried again: {again:?}");

    // A client started with the dead token is told at its first attempt,
    // with the server's reason.
    let stale = Client::connect_with(&alice, quick());
    let mut events = stale.events();
    let reason = next_where(&mut events, |event| match event {
        Event::SignedOut(reason) => Some(reason),
        _ => None,
    })
    .await;
    assert!(reason.contains("session"), "{reason}");
    let history: Result<Vec<ChatMessage>, Error> = alice.history("general", None, 1).await;
    assert!(matches!(history, Err(Error::SignedOut(_))), "{history:?}");
}

/// `kill -SIG pid` on the server process.
fn signal(node: &tokio::process::Child, name: &str) {
    let pid = node.id().expect("the server runs").to_string();
    let status = std::process::Command::new("kill")
        .args([&format!("-{name}"), &pid])
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test]
async fn a_server_that_stalls_is_noticed_by_the_watchdog_and_resumed_after() {
    let dir = temp_dir();
    let mut args = node_args(&dir);
    args.extend(["--heartbeat-ms".to_owned(), "300".to_owned()]);
    let log = dir.join("hearth.log");
    let (node, addr) = start_hearth(&args, "127.0.0.1:0", "client-stall", &log, "info").await;
    let server = Server::new(&format!("http://{addr}")).unwrap();
    let alice = server.sign_up("alice", PASSWORD, "Alice").await.unwrap();
    let mut options = quick();
    options.policy.watchdog_grace_ms = 300;
    options.policy.default_heartbeat_ms = 300;
    let client = Client::connect_with(&alice, options);
    let mut events = client.events();
    client.join("general").await.unwrap();
    client.send("general", "before").await.unwrap();

    // SIGSTOP: the socket stays open and the kernel still accepts new
    // connections, but nothing answers: no ping, no handshake, no ack.
    signal(&node, "STOP");
    let stalled = tokio::time::Instant::now();
    let receipt = client
        .submit("general", Post::text("typed while it hangs"))
        .await
        .unwrap();
    next_where(&mut events, |event| match event {
        Event::Phase(Phase::Waiting { .. }) => Some(()),
        _ => None,
    })
    .await;
    let noticed = stalled.elapsed();
    // Attempts while it hangs time out too (the handshake never finishes),
    // and are retried.
    next_where(&mut events, |event| match event {
        Event::Phase(Phase::Waiting { attempt, .. }) if attempt >= 3 => Some(()),
        _ => None,
    })
    .await;
    signal(&node, "CONT");

    let seq = tokio::time::timeout(WAIT, receipt.stored())
        .await
        .expect("stored once the server answers again")
        .unwrap();
    let stored = alice.history("general", None, 10).await.unwrap();
    let said: Vec<&str> = stored.iter().map(|m| m.content.as_str()).collect();
    assert_eq!(said, ["before", "typed while it hangs"], "once each");
    assert_eq!(stored[1].seq, seq);
    assert_eq!(client.phase(), Phase::Open);
    eprintln!("the stall was noticed after {noticed:?}");
}

#[tokio::test]
async fn a_full_outbox_refuses_more_posts_and_keeps_what_it_holds() {
    let server = Server::new(&format!("http://127.0.0.1:{}", unused_port())).unwrap();
    let client = Client::connect_with(
        &nobody(server),
        Options {
            max_outbox: 3,
            ..quick()
        },
    );
    let mut receipts = Vec::new();
    for i in 0..3 {
        let post = Post::text(format!("m{i}"));
        receipts.push(client.submit("general", post).await.unwrap());
    }
    let refused = client.submit("general", Post::text("one too many")).await;
    assert!(matches!(refused, Err(Error::OutboxFull(3))), "{refused:?}");
    // Still refused: nothing was taken out to make room.
    let again = client.submit("general", Post::text("still too many")).await;
    assert!(matches!(again, Err(Error::OutboxFull(3))), "{again:?}");
    client.close().await;
}
