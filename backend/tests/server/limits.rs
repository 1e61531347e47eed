use futures_util::StreamExt;
use std::time::Duration;

use common::{ErrorCode, ServerMsg};

use crate::support::{Ended, TestServer, no_rate_limit};

#[tokio::test]
async fn a_frame_over_the_limit_closes_with_1009() {
    let server = TestServer::start().await;
    let mut alice = server.client("alice").await;
    alice.join("general").await;
    let huge = format!(
        r#"{{"type":"send","room":"general","content":"{}","client_id":"x"}}"#,
        "a".repeat(70 * 1024)
    );
    alice.send_raw(&huge).await;
    assert_eq!(alice.ended().await, Ended::Closed(common::close::TOO_BIG));
    // The server is fine.
    let mut bob = server.client("bob").await;
    bob.join("general").await;
}

#[tokio::test]
async fn sends_past_the_rate_limit_are_refused_with_rate_limited() {
    let server = TestServer::start_with(|c| {
        c.send_rate = 1.0;
        c.send_burst = 5;
    })
    .await;
    let mut alice = server.client("alice").await;
    alice.join("general").await;
    for i in 0..12 {
        alice.say("general", "spam", &format!("c{i}")).await;
    }
    let (mut acked, mut limited) = (Vec::new(), Vec::new());
    while acked.len() + limited.len() < 12 {
        match alice.recv().await {
            ServerMsg::Ack { client_id, .. } => acked.push(client_id),
            ServerMsg::Error {
                code: ErrorCode::RateLimited,
                reference,
                ..
            } => limited.push(reference.unwrap()),
            ServerMsg::Message(_) => {}
            other => panic!("{other:?}"),
        }
    }
    // The burst goes through (a sixth token may refill while sending).
    assert!((5..=6).contains(&acked.len()), "{acked:?}");
    assert_eq!(acked[..5], ["c0", "c1", "c2", "c3", "c4"]);
    assert_eq!(limited.len(), 12 - acked.len());
    // Rate limiting is not abuse: the connection stays open.
    alice.expect_silence(Duration::from_millis(100)).await;
}

#[tokio::test]
async fn joins_past_the_room_limit_are_refused() {
    let server = TestServer::start_with(|c| c.max_rooms = 3).await;
    let mut alice = server.client("alice").await;
    for room in ["a", "b", "c"] {
        alice.join(room).await;
    }
    alice
        .send_json(serde_json::json!({"type":"join","room":"d"}))
        .await;
    match alice.recv().await {
        ServerMsg::Error {
            code, reference, ..
        } => {
            assert_eq!(code, ErrorCode::TooManyRooms);
            assert_eq!(reference.as_deref(), Some("d"));
        }
        other => panic!("{other:?}"),
    }
    // Re-joining a room already joined is still fine, and leaving makes space.
    alice.join("a").await;
    alice
        .send_json(serde_json::json!({"type":"leave","room":"a"}))
        .await;
    assert_eq!(
        alice.recv().await,
        ServerMsg::Left {
            room: "a".into(),
            reason: None
        }
    );
    alice.join("d").await;
}

/// A client that stops reading is closed with 4009 once its queue fills,
/// while another member keeps receiving everything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_consumer_is_dropped_and_others_keep_up() {
    // 3200 x 4 KB is more than the socket buffers (the slow client's is
    // pinned small) plus a 64-frame queue can hold.
    const MESSAGES: usize = 3200; // 200 batches
    const BATCH: usize = 16;
    let server = TestServer::start_with(|c| {
        c.outbound_queue = 64;
        no_rate_limit(c);
    })
    .await;
    let mut slow = server.client_with_small_buffer("slow").await;
    let mut fast = server.client("fast").await;
    let mut sender = server.client("sender").await;
    slow.join("firehose").await;
    fast.join("firehose").await;
    sender.join("firehose").await;
    fast.recv().await; // sender joined

    // The slow client starts reading again 7 s after it has been dropped
    // (the fast one sees it leave): longer than the server once waited to
    // write the close frame. It should find the backlog, then a 4009
    // close, never a bare drop (1006) it cannot act on.
    let (dropped_tx, dropped_rx) = tokio::sync::oneshot::channel::<()>();
    let slow_end = tokio::spawn(async move {
        let _ = dropped_rx.await;
        tokio::time::sleep(Duration::from_secs(7)).await;
        slow.ended().await
    });
    let reader = tokio::spawn(async move {
        let mut seen = Vec::with_capacity(MESSAGES);
        let mut left = Vec::new();
        let mut dropped_tx = Some(dropped_tx);
        while seen.len() < MESSAGES || left.is_empty() {
            match fast.recv().await {
                ServerMsg::Message(m) => seen.push(m.seq),
                ServerMsg::UserLeft { user, .. } => {
                    left.push(user.name);
                    dropped_tx.take().map(|tx| tx.send(()));
                }
                other => panic!("{other:?}"),
            }
        }
        (seen, left)
    });
    // The sender paces itself by its acks, as a real client would, so only
    // the client that stopped reading can fall behind.
    let content = "x".repeat(4000);
    assert_eq!(MESSAGES % BATCH, 0);
    for batch in 0..MESSAGES / BATCH {
        for i in 0..BATCH {
            let id = format!("m{}", batch * BATCH + i);
            sender.say("firehose", &content, &id).await;
        }
        let mut acks = 0;
        while acks < BATCH {
            if let ServerMsg::Ack { .. } = sender.recv().await {
                acks += 1;
            }
        }
    }
    let (seen, left) = reader.await.unwrap();
    assert_eq!(seen, (1..=MESSAGES as u64).collect::<Vec<_>>());
    assert_eq!(left, ["slow"], "the slow client's presence is removed");
    assert_eq!(
        slow_end.await.unwrap(),
        Ended::Closed(common::close::SLOW_CONSUMER)
    );
}

/// Read amplification: a `join(since=0)` / `leave` loop asks for the whole
/// history again and again. Each connection may be sent at most its replay
/// budget (here 100 KB/s, burst 200 KB); past it a join waits, then is
/// refused with `rate_limited`. A bystander in the room keeps chatting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_leave_loop_gets_no_more_than_its_replay_budget() {
    const RATE: usize = 100_000;
    let server = TestServer::start_with(|c| {
        c.replay_bytes_per_sec = RATE as u32;
        no_rate_limit(c);
    })
    .await;
    let mut feeder = server.client("feeder").await;
    feeder.join("big").await;
    let content = "h".repeat(4000);
    for i in 0..100 {
        feeder.say("big", &content, &format!("f{i}")).await;
        feeder
            .recv_where(|m| matches!(m, ServerMsg::Ack { .. }))
            .await;
    }
    let mut bystander = server.client("bystander").await;
    bystander.join("big").await;

    let mut attacker = server.client("attacker").await;
    let started = std::time::Instant::now();
    let mut received = 0usize;
    let mut refused = 0;
    let mut joins = 0;
    while started.elapsed() < Duration::from_secs(8) {
        attacker
            .send_json(serde_json::json!({"type":"join","room":"big","since":0}))
            .await;
        loop {
            let frame = tokio::time::timeout(Duration::from_secs(10), attacker.ws.next())
                .await
                .expect("an answer to every join")
                .unwrap()
                .unwrap();
            received += frame.len();
            match serde_json::from_str::<ServerMsg>(frame.to_text().unwrap()).unwrap() {
                ServerMsg::Joined { .. } => {
                    joins += 1;
                    break;
                }
                ServerMsg::Error {
                    code: ErrorCode::RateLimited,
                    ..
                } => {
                    refused += 1;
                    break;
                }
                _ => {}
            }
        }
        attacker
            .send_json(serde_json::json!({"type":"leave","room":"big"}))
            .await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    // The burst, the rate for the time it ran, and one replay of slack.
    let allowed = 2 * RATE + (RATE as f64 * elapsed) as usize + 420_000;
    println!(
        "attacker: {joins} joins, {refused} refused, {received} bytes in {elapsed:.1} s \
         (budget {allowed}; each join replays ~410 KB)"
    );
    assert!(received <= allowed, "{received} > {allowed}");
    assert!(refused > 0 || joins <= 4, "the loop was slowed or refused");
    // The bystander never noticed.
    bystander.say("big", "still fine", "b1").await;
    bystander
        .recv_where(|m| matches!(m, ServerMsg::Ack { .. }))
        .await;
}

/// A client that saves its draft in a loop (a script, or a broken timer)
/// writes to the store at most its API quota a minute: past it, `429
/// rate_limited`, and the draft it last saved is the one kept. Another
/// person, on the same address, saves theirs and chats meanwhile.
#[tokio::test]
async fn a_draft_flood_stops_at_the_api_quota_and_costs_nobody_else() {
    let server = TestServer::start_with(|c| {
        c.api_per_token_per_minute = 60;
        c.api_per_ip_per_minute = 1_000;
    })
    .await;
    let flooder = server.sign_up("flooder").await;
    let bystander = server.sign_up("bystander").await;
    server.connect(&flooder).await.join("lobby").await;
    let mut chatting = server.connect(&bystander).await;
    chatting.join("lobby").await;
    let draft = |n: u32| Some(serde_json::json!({"text": format!("draft {n}")}));
    let mut statuses = Vec::new();
    let mut last_saved = None;
    for n in 0..200 {
        let (status, body) = server
            .call(
                reqwest::Method::PUT,
                "/api/rooms/lobby/draft",
                Some(&flooder.token),
                draft(n),
            )
            .await;
        match status {
            204 => last_saved = Some(format!("draft {n}")),
            429 => assert_eq!(body["error"], "rate_limited", "{body}"),
            other => panic!("{other}: {body}"),
        }
        statuses.push(status);
    }
    let saved = statuses.iter().filter(|s| **s == 204).count();
    // The quota, less the requests before the flood (sign-up, …), plus at
    // most a refill or two while it ran.
    assert!((50..=62).contains(&saved), "{saved} saved: {statuses:?}");
    // Read back once the quota lets the flooder ask (a second or so).
    let listed = loop {
        let (status, body) = server
            .call(
                reqwest::Method::GET,
                "/api/rooms",
                Some(&flooder.token),
                None,
            )
            .await;
        if status == 200 {
            break body;
        }
        assert_eq!(status, 429, "{body}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let listed: Vec<common::RoomSummary> = serde_json::from_value(listed).unwrap();
    let kept = listed
        .iter()
        .find(|r| r.name == "lobby")
        .unwrap()
        .draft
        .clone();
    assert_eq!(kept, last_saved, "the last one saved is kept");

    // The bystander, behind the same address, is unaffected.
    let (status, body) = server
        .call(
            reqwest::Method::PUT,
            "/api/rooms/lobby/draft",
            Some(&bystander.token),
            draft(0),
        )
        .await;
    assert_eq!(status, 204, "{body}");
    chatting.say("lobby", "still here", "s1").await;
    chatting
        .recv_where(|m| matches!(m, ServerMsg::Ack { client_id, .. } if client_id == "s1"))
        .await;
}
