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

    // The slow client starts reading again once it has been dropped (the
    // fast one sees it leave). It should find the backlog, then a 4009 close.
    let (dropped_tx, dropped_rx) = tokio::sync::oneshot::channel::<()>();
    let slow_end = tokio::spawn(async move {
        let _ = dropped_rx.await;
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
