//! Durable history over the wire: resume after a disconnect, idempotent
//! sends, paging, and acknowledged messages surviving `kill -9`.

use std::time::Duration;

use common::{ChatMessage, ServerMsg, SessionResponse};

use crate::support::{
    Client, TestServer, connect_at, no_rate_limit, sign_in_at, start_hearth, temp_dir,
};

/// Sends `n` messages as `client` and waits for all their acks.
async fn send_acked(client: &mut Client, room: &str, prefix: &str, n: usize) -> Vec<u64> {
    for i in 0..n {
        client
            .say(room, &format!("{prefix} {i}"), &format!("{prefix}-{i}"))
            .await;
    }
    let mut seqs = Vec::new();
    while seqs.len() < n {
        if let ServerMsg::Ack { seq, .. } = client.recv().await {
            seqs.push(seq);
        }
    }
    seqs
}

/// Reads messages until `joined` for `room`; returns them and the `joined`.
async fn replay_until_joined(client: &mut Client, room: &str) -> (Vec<ChatMessage>, ServerMsg) {
    let mut messages = Vec::new();
    loop {
        match client.recv().await {
            ServerMsg::Message(m) => messages.push(m),
            joined @ ServerMsg::Joined { .. } => return (messages, joined),
            ServerMsg::UserJoined { .. } | ServerMsg::UserLeft { .. } => {}
            other => panic!("unexpected while joining {room}: {other:?}"),
        }
    }
}

fn seqs(messages: &[ChatMessage]) -> Vec<u64> {
    messages.iter().map(|m| m.seq).collect()
}

#[tokio::test]
async fn a_rejoin_with_since_gets_exactly_what_was_missed_then_live() {
    let server = TestServer::start_with(no_rate_limit).await;
    let mut alice = server.client("alice").await;
    alice.join("general").await;
    let bob_session = server.sign_in("bob").await;
    let mut bob = server.connect(&bob_session).await;
    bob.join("general").await;
    send_acked(&mut alice, "general", "before", 5).await;
    let mut last_seen = 0;
    while last_seen < 5 {
        if let ServerMsg::Message(m) = bob.recv().await {
            last_seen = m.seq;
        }
    }
    drop(bob);

    // 37 messages while Bob is away.
    send_acked(&mut alice, "general", "missed", 37).await;

    let mut bob = server.connect(&bob_session).await;
    bob.send_json(serde_json::json!({"type":"join","room":"general","since":last_seen}))
        .await;
    // Meanwhile the room keeps going: these must come after the replay.
    let live = tokio::spawn(async move {
        send_acked(&mut alice, "general", "live", 3).await;
        alice
    });
    let (replayed, joined) = replay_until_joined(&mut bob, "general").await;
    assert_eq!(
        seqs(&replayed),
        (6..=42).collect::<Vec<_>>(),
        "exactly the 37 missed, in order"
    );
    assert!(replayed.iter().all(|m| m.content.starts_with("missed")));
    match joined {
        ServerMsg::Joined {
            recovered,
            last_seq,
            ..
        } => {
            assert!(recovered);
            assert_eq!(last_seq, 42);
        }
        other => panic!("{other:?}"),
    }
    let _alice = live.await.unwrap();
    let mut after = Vec::new();
    while after.len() < 3 {
        if let ServerMsg::Message(m) = bob.recv().await {
            after.push(m.seq);
        }
    }
    assert_eq!(
        after,
        [43, 44, 45],
        "live messages follow, no gap, no duplicate"
    );
}

#[tokio::test]
async fn missing_more_than_the_limit_gets_the_newest_page_and_recovered_false() {
    let server = TestServer::start_with(|c| {
        no_rate_limit(c);
        c.resume_limit = 10;
        c.history_page = 5;
    })
    .await;
    let mut alice = server.client("alice").await;
    alice.join("general").await;
    send_acked(&mut alice, "general", "m", 15).await;

    let mut bob = server.client("bob").await;
    bob.send_json(serde_json::json!({"type":"join","room":"general","since":2}))
        .await;
    let (replayed, joined) = replay_until_joined(&mut bob, "general").await;
    assert_eq!(seqs(&replayed), [11, 12, 13, 14, 15]);
    assert!(matches!(
        joined,
        ServerMsg::Joined {
            recovered: false,
            last_seq: 15,
            ..
        }
    ));

    // Within the limit it is complete.
    let mut carol = server.client("carol").await;
    carol
        .send_json(serde_json::json!({"type":"join","room":"general","since":6}))
        .await;
    let (replayed, joined) = replay_until_joined(&mut carol, "general").await;
    assert_eq!(seqs(&replayed), (7..=15).collect::<Vec<_>>());
    assert!(matches!(
        joined,
        ServerMsg::Joined {
            recovered: true,
            ..
        }
    ));

    // A client claiming more than exists (the server's history was reset)
    // is told it did not recover.
    let mut dave = server.client("dave").await;
    dave.send_json(serde_json::json!({"type":"join","room":"general","since":99}))
        .await;
    let (replayed, joined) = replay_until_joined(&mut dave, "general").await;
    assert_eq!(seqs(&replayed), [11, 12, 13, 14, 15]);
    assert!(matches!(
        joined,
        ServerMsg::Joined {
            recovered: false,
            ..
        }
    ));
}

#[tokio::test]
async fn a_fresh_join_gets_the_last_fifty() {
    let server = TestServer::start_with(no_rate_limit).await;
    let mut alice = server.client("alice").await;
    alice.join("general").await;
    send_acked(&mut alice, "general", "m", 60).await;
    let mut bob = server.client("bob").await;
    bob.send_json(serde_json::json!({"type":"join","room":"general","since":null}))
        .await;
    let (replayed, joined) = replay_until_joined(&mut bob, "general").await;
    assert_eq!(seqs(&replayed), (11..=60).collect::<Vec<_>>());
    assert!(matches!(
        joined,
        ServerMsg::Joined {
            recovered: true,
            last_seq: 60,
            ..
        }
    ));
}

#[tokio::test]
async fn a_repeated_client_id_is_acked_with_the_same_seq_and_stored_once() {
    let server = TestServer::start().await;
    let mut alice = server.client("alice").await;
    let mut bob = server.client("bob").await;
    alice.join("general").await;
    bob.join("general").await;
    alice.recv().await; // bob joined

    alice.say("general", "only once", "dup-1").await;
    assert!(matches!(alice.recv().await, ServerMsg::Message(m) if m.seq == 1));
    assert!(matches!(alice.recv().await, ServerMsg::Ack { seq: 1, .. }));
    // The client retries (it never saw the ack, say).
    alice.say("general", "only once", "dup-1").await;
    assert_eq!(
        alice.recv().await,
        ServerMsg::Ack {
            room: "general".into(),
            client_id: "dup-1".into(),
            seq: 1
        }
    );
    assert!(matches!(bob.recv().await, ServerMsg::Message(m) if m.seq == 1));
    bob.expect_silence(Duration::from_millis(300)).await;

    let history = history(&server, &server.sign_in("carol").await, "general", "").await;
    assert_eq!(seqs(&history), [1]);
}

async fn history(
    server: &TestServer,
    session: &SessionResponse,
    room: &str,
    query: &str,
) -> Vec<ChatMessage> {
    let response = reqwest::Client::new()
        .get(server.url(&format!("/api/rooms/{room}/messages{query}")))
        .bearer_auth(&session.token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

#[tokio::test]
async fn history_pages_require_a_token_and_go_backwards() {
    let server = TestServer::start_with(no_rate_limit).await;
    let mut alice = server.client("alice").await;
    alice.join("general").await;
    send_acked(&mut alice, "general", "m", 30).await;
    let session = server.sign_in("reader").await;

    assert_eq!(
        seqs(&history(&server, &session, "general", "?limit=10").await),
        (21..=30).collect::<Vec<_>>()
    );
    assert_eq!(
        seqs(&history(&server, &session, "general", "?before=21&limit=10").await),
        (11..=20).collect::<Vec<_>>()
    );
    assert_eq!(
        seqs(&history(&server, &session, "general", "?before=3").await),
        [1, 2]
    );

    let http = reqwest::Client::new();
    for (path, token, status) in [
        ("/api/rooms/general/messages", None, 401),
        ("/api/rooms/nowhere/messages", Some(&session.token), 404),
        (
            "/api/rooms/general/messages?before=minus",
            Some(&session.token),
            400,
        ),
        ("/api/rooms/not%20valid/messages", Some(&session.token), 400),
    ] {
        let mut request = http.get(server.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        assert_eq!(request.send().await.unwrap().status(), status, "{path}");
    }
}

/// The real binary, killed with SIGKILL in the middle of a burst: every
/// message that was acknowledged is in the history afterwards, exactly once
/// and in seq order, and seq carries on from there.
#[tokio::test]
async fn acknowledged_messages_survive_kill_9() {
    const BURST: usize = 400;
    let dir = temp_dir();
    let data = dir.join("data");
    let args = [
        "--allow-guests",
        "--auth-per-ip-per-minute",
        "1000000",
        "--send-rate",
        "100000",
        "--send-burst",
        "100000",
        "--data-dir",
        data.to_str().unwrap(),
        "--static-dir",
        dir.to_str().unwrap(),
    ];
    let log = dir.join("hearth.log");
    let (mut server, addr) = start_hearth(args, "127.0.0.1:0", "kill-9", &log, "info").await;
    let base = format!("http://{addr}");
    let session = sign_in_at(&addr, "alice").await;
    let mut client = connect_at(&addr, &session).await;
    client.join("general").await;

    use futures_util::{SinkExt, StreamExt};
    let (mut sink, mut stream) = client.ws.split();
    let sender = tokio::spawn(async move {
        for i in 0..BURST {
            let frame = serde_json::json!({"type":"send","room":"general","content":format!("m{i}"),"client_id":format!("c{i}")});
            if sink
                .send(tokio_tungstenite::tungstenite::Message::text(
                    frame.to_string(),
                ))
                .await
                .is_err()
            {
                break;
            }
        }
    });
    // Collect acks; pull the plug a little way into the burst.
    let mut acked = Vec::new();
    while let Some(Ok(frame)) = stream.next().await {
        if let tokio_tungstenite::tungstenite::Message::Text(text) = frame
            && let Ok(ServerMsg::Ack { client_id, seq, .. }) = serde_json::from_str(&text)
        {
            acked.push((client_id, seq));
            if acked.len() == 60 {
                server.start_kill().unwrap();
            }
        }
    }
    let _ = server.wait().await;
    sender.abort();
    assert!(acked.len() >= 60, "acks before the kill: {}", acked.len());
    assert!(acked.len() < BURST, "the kill landed mid-burst");

    // Back where its clients know it.
    let (_server, _) = start_hearth(args, &addr, "kill-9", &log, "info").await;
    let mut stored: Vec<ChatMessage> = Vec::new();
    let mut before = u64::MAX;
    loop {
        let page: Vec<ChatMessage> = reqwest::Client::new()
            .get(format!(
                "{base}/api/rooms/general/messages?limit=200&before={before}"
            ))
            .bearer_auth(&session.token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let Some(first) = page.first() else { break };
        before = first.seq;
        stored.splice(0..0, page);
    }
    let stored_seqs = seqs(&stored);
    assert_eq!(
        stored_seqs,
        (1..=stored.len() as u64).collect::<Vec<_>>(),
        "contiguous, in order"
    );
    for (client_id, seq) in &acked {
        let copies: Vec<_> = stored
            .iter()
            .filter(|m| &m.client_id == client_id)
            .collect();
        assert_eq!(copies.len(), 1, "{client_id} is stored exactly once");
        assert_eq!(copies[0].seq, *seq, "{client_id} kept the acked seq");
    }

    // Seq carries on after the restart.
    let mut client = connect_at(&addr, &session).await;
    client
        .send_json(serde_json::json!({"type":"join","room":"general","since":stored.len()}))
        .await;
    let (_, joined) = replay_until_joined(&mut client, "general").await;
    assert!(matches!(
        joined,
        ServerMsg::Joined {
            recovered: true,
            ..
        }
    ));
    client.say("general", "after the crash", "after").await;
    let next = stored.len() as u64 + 1;
    assert!(matches!(client.recv().await, ServerMsg::Message(m) if m.seq == next));
    let _ = std::fs::remove_dir_all(dir);
}
