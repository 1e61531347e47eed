use std::time::Duration;

use common::{ErrorCode, ServerMsg};

use crate::support::{Ended, TestServer, no_rate_limit};

#[tokio::test]
async fn a_message_is_broadcast_with_seq_then_acked() {
    let server = TestServer::start().await;
    let mut alice = server.client("alice").await;
    let mut bob = server.client("bob").await;
    alice.join("general").await;
    bob.join("general").await;
    alice.recv().await; // bob joined

    for (i, text) in ["hello", "how are you?", "<img src=x onerror=alert(1)>"]
        .iter()
        .enumerate()
    {
        let client_id = format!("c-{i}");
        alice.say("general", text, &client_id).await;
        let expected_seq = i as u64 + 1;
        for (who, client) in [("alice", &mut alice), ("bob", &mut bob)] {
            match client.recv().await {
                ServerMsg::Message(m) => {
                    assert_eq!(m.seq, expected_seq, "{who}");
                    assert_eq!(m.content, *text, "{who}");
                    assert_eq!(m.client_id, client_id);
                    assert_eq!(m.user.name, "alice");
                    assert!(!m.id.is_empty() && m.ts > 0);
                }
                other => panic!("{who}: {other:?}"),
            }
        }
        // The sender's ack comes after its own copy of the message.
        assert_eq!(
            alice.recv().await,
            ServerMsg::Ack {
                room: "general".into(),
                client_id,
                seq: expected_seq
            }
        );
    }
    // Joining again is harmless: just `joined`, no replay of old messages.
    alice
        .send_json(serde_json::json!({"type":"join","room":"general","since":null}))
        .await;
    assert!(
        matches!(alice.recv().await, ServerMsg::Joined { last_seq: 3, .. }),
        "joined comes next, with nothing replayed before it"
    );
    // A later joiner learns the room's position.
    let mut carol = server.client("carol").await;
    match carol.join("general").await {
        ServerMsg::Joined { last_seq, .. } => assert_eq!(last_seq, 3),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn bad_requests_get_errors_and_the_connection_stays_open() {
    let server = TestServer::start().await;
    let mut alice = server.client("alice").await;
    alice.join("general").await;

    let cases: Vec<(serde_json::Value, ErrorCode, Option<&str>)> = vec![
        (
            serde_json::json!({"type":"send","room":"general","content":"   ","client_id":"empty"}),
            ErrorCode::InvalidContent,
            Some("empty"),
        ),
        (
            serde_json::json!({"type":"send","room":"general","content":"x".repeat(4097),"client_id":"long"}),
            ErrorCode::InvalidContent,
            Some("long"),
        ),
        (
            serde_json::json!({"type":"send","room":"elsewhere","content":"hi","client_id":"nj"}),
            ErrorCode::NotJoined,
            Some("nj"),
        ),
        (
            serde_json::json!({"type":"send","room":"general","content":"hi","client_id":""}),
            ErrorCode::InvalidClientId,
            Some(""),
        ),
        (
            serde_json::json!({"type":"join","room":"no spaces!"}),
            ErrorCode::InvalidRoom,
            Some("no spaces!"),
        ),
        (
            serde_json::json!({"type":"leave","room":"elsewhere"}),
            ErrorCode::NotJoined,
            Some("elsewhere"),
        ),
        (
            serde_json::json!({"type":"dance"}),
            ErrorCode::UnknownType,
            None,
        ),
        (
            serde_json::json!({"type":"send"}),
            ErrorCode::BadFrame,
            None,
        ),
    ];
    for (frame, code, reference) in cases {
        alice.send_json(frame.clone()).await;
        match alice.recv().await {
            ServerMsg::Error {
                code: got,
                reference: got_ref,
                message,
            } => {
                assert_eq!(got, code, "{frame}");
                assert_eq!(got_ref.as_deref(), reference, "{frame}");
                assert!(!message.is_empty());
            }
            other => panic!("{frame}: {other:?}"),
        }
    }
    alice.send_raw("{this is not json").await;
    assert!(matches!(
        alice.recv().await,
        ServerMsg::Error {
            code: ErrorCode::BadFrame,
            ..
        }
    ));
    // Still connected and working: 9 errors is within the default budget.
    alice.say("general", "still here", "ok-1").await;
    assert!(matches!(alice.recv().await, ServerMsg::Message(m) if m.content == "still here"));
    assert!(matches!(alice.recv().await, ServerMsg::Ack { seq: 1, .. }));
}

#[tokio::test]
async fn repeated_errors_close_the_connection_with_4008() {
    let server = TestServer::start_with(|c| c.error_budget = 3).await;
    let mut alice = server.client("alice").await;
    for _ in 0..10 {
        alice.send_raw("garbage").await;
    }
    assert_eq!(alice.ended().await, Ended::Closed(common::close::POLICY));
}

#[tokio::test]
async fn every_member_sees_every_message_in_seq_order() {
    const SENDERS: usize = 4;
    const EACH: usize = 30;
    let server = TestServer::start_with(no_rate_limit).await;
    let mut clients = Vec::new();
    for i in 0..SENDERS {
        let mut client = server.client(&format!("user{i}")).await;
        client.join("busy").await;
        clients.push(client);
    }
    // Everyone sends at once; each client reads its own stream concurrently.
    let tasks: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(i, mut client)| {
            tokio::spawn(async move {
                for n in 0..EACH {
                    client
                        .say("busy", &format!("{i}:{n}"), &format!("{i}-{n}"))
                        .await;
                }
                let mut seqs = Vec::new();
                let mut acks = 0;
                while seqs.len() < SENDERS * EACH || acks < EACH {
                    match client.recv().await {
                        ServerMsg::Message(m) => seqs.push(m.seq),
                        ServerMsg::Ack { .. } => acks += 1,
                        ServerMsg::UserJoined { .. } => {}
                        other => panic!("{other:?}"),
                    }
                }
                seqs
            })
        })
        .collect();
    let expected: Vec<u64> = (1..=(SENDERS * EACH) as u64).collect();
    for task in tasks {
        assert_eq!(task.await.unwrap(), expected);
    }
}

#[tokio::test]
async fn messages_only_reach_the_room_they_were_sent_to() {
    let server = TestServer::start().await;
    let mut alice = server.client("alice").await;
    let mut bob = server.client("bob").await;
    alice.join("one").await;
    alice.join("two").await;
    bob.join("two").await;
    alice.recv().await; // bob joined "two"
    alice.say("one", "only for one", "c1").await;
    assert!(matches!(alice.recv().await, ServerMsg::Message(m) if m.room == "one" && m.seq == 1));
    bob.expect_silence(Duration::from_millis(200)).await;
}

/// A client that pipelines its sends (no waiting for acks) gets them stored
/// in the order sent, sharing the store's transactions, and every member
/// sees them in that order; a bad one among them is refused on its own.
#[tokio::test]
async fn pipelined_sends_keep_their_order_and_share_commits() {
    use std::sync::atomic::Ordering;
    let server = TestServer::start_with(no_rate_limit).await;
    let mut alice = server.client("alice").await;
    let mut bob = server.client("bob").await;
    alice.join("pipe").await;
    bob.join("pipe").await;
    const SENDS: u64 = 100;
    for i in 0..SENDS {
        alice
            .send_json(serde_json::json!({"type":"send","room":"pipe","content":format!("m{i}"),"client_id":format!("c{i}")}))
            .await;
        if i == 50 {
            // Not joined: refused alone, the rest go on.
            alice
                .send_json(serde_json::json!({"type":"send","room":"elsewhere","content":"x","client_id":"bad"}))
                .await;
        }
    }
    let mut acked = Vec::new();
    let mut refused = Vec::new();
    while acked.len() < SENDS as usize {
        match alice.recv().await {
            ServerMsg::Ack { client_id, seq, .. } => acked.push((client_id, seq)),
            ServerMsg::Error { reference, .. } => refused.push(reference),
            _ => {}
        }
    }
    let expected: Vec<(String, u64)> = (0..SENDS).map(|i| (format!("c{i}"), i + 1)).collect();
    assert_eq!(
        acked, expected,
        "acked in the order sent, seqs in that order"
    );
    assert_eq!(refused, [Some("bad".to_string())]);
    let mut seen = Vec::new();
    while seen.len() < SENDS as usize {
        if let ServerMsg::Message(m) = bob.recv().await {
            seen.push((m.client_id, m.seq));
        }
    }
    assert_eq!(seen, expected);
    let stats = server.server.as_ref().unwrap().state().hub.commit_stats();
    let (messages, commits) = (
        stats.messages.load(Ordering::Relaxed),
        stats.commits.load(Ordering::Relaxed),
    );
    println!("{messages} pipelined sends stored in {commits} transactions");
    assert!(commits < messages, "pipelined sends shared no transaction");
}

/// Text that shows other than it reads is refused with `invalid_content`:
/// direction overrides (a link that reads backwards) and messages of
/// nothing but invisible characters. So are names that would read as
/// somebody else: reserved usernames, and display names that start with
/// `@`.
#[tokio::test]
async fn text_and_names_that_would_lie_are_refused() {
    let server = TestServer::start().await;
    let mut client = server.client("honest").await;
    client.join("r").await;
    for (i, content) in [
        "see https://bank.example/\u{202E}gpj.exe",
        "\u{200B}\u{200B}\u{200B}",
        "a \u{2066}isolated\u{2069}",
    ]
    .into_iter()
    .enumerate()
    {
        client.say("r", content, &format!("c{i}")).await;
        let refused = client
            .recv_where(|m| matches!(m, ServerMsg::Error { .. }))
            .await;
        assert!(
            matches!(
                refused,
                ServerMsg::Error {
                    code: ErrorCode::InvalidContent,
                    ..
                }
            ),
            "{content:?}: {refused:?}"
        );
    }
    let sign_up = |username: &str, display_name: &str| {
        let body = serde_json::json!({
            "username": username,
            "password": crate::support::PASSWORD,
            "display_name": display_name,
        });
        let url = server.url("/api/accounts");
        async move {
            let response = reqwest::Client::new()
                .post(url)
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            let body: serde_json::Value = response.json().await.unwrap();
            (
                status,
                body["error"].as_str().unwrap_or_default().to_owned(),
            )
        }
    };
    assert_eq!(
        sign_up("admin", "Admin").await,
        (400, "invalid_username".into())
    );
    assert_eq!(
        sign_up("Sys.Tem", "System").await,
        (400, "invalid_username".into())
    );
    assert_eq!(
        sign_up("mallory", "@alice").await,
        (400, "invalid_name".into())
    );
    assert_eq!(sign_up("mallory", "Mallory").await.0, 201);
}
