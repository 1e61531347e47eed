//! Read positions live on the server, per user and room: a new tab, a
//! reload or another device learns from `joined` how far the user has read
//! and how many messages of other people follow; the user's other tabs hear
//! of a new position at once. Checked on both stores.

use common::{ServerMsg, SessionResponse};

use crate::faults_support::OwnPostgres;
use crate::support::{Client, TestServer};

async fn join(client: &mut Client, room: &str) -> (u64, u32) {
    match client.join(room).await {
        ServerMsg::Joined {
            read_seq, unread, ..
        } => (read_seq, unread),
        _ => unreachable!(),
    }
}

async fn acked(client: &mut Client, room: &str, content: &str) {
    client.say(room, content, content).await;
    client
        .recv_where(|m| matches!(m, ServerMsg::Ack { client_id, .. } if client_id == content))
        .await;
}

async fn check(server: &TestServer) {
    let alice: SessionResponse = server.sign_in("alice").await;
    let mut bob = server.client("bob").await;
    bob.join("r").await;
    let mut tab1 = server.connect(&alice).await;
    assert_eq!(join(&mut tab1, "r").await, (0, 0), "nothing to read yet");
    for i in 1..=5 {
        acked(&mut bob, "r", &format!("b{i}")).await;
    }
    acked(&mut tab1, "r", "mine").await; // seq 6, not unread for alice

    let mut tab2 = server.connect(&alice).await;
    assert_eq!(
        join(&mut tab2, "r").await,
        (0, 5),
        "bob's five, not her own"
    );

    tab1.send_json(serde_json::json!({"type":"read","room":"r","seq":3}))
        .await;
    // Her other tab hears of it at once.
    let read = tab2
        .recv_where(|m| matches!(m, ServerMsg::Read { .. }))
        .await;
    assert_eq!(
        read,
        ServerMsg::Read {
            room: "r".into(),
            seq: 3
        }
    );
    let mut tab3 = server.connect(&alice).await;
    assert_eq!(join(&mut tab3, "r").await, (3, 2));

    // A late report of an older position changes nothing.
    tab2.send_json(serde_json::json!({"type":"read","room":"r","seq":1}))
        .await;
    // Beyond the newest message is the newest message.
    tab1.send_json(serde_json::json!({"type":"read","room":"r","seq":1000}))
        .await;
    tab3.recv_where(|m| matches!(m, ServerMsg::Read { seq: 6, .. }))
        .await;
    let mut tab4 = server.connect(&alice).await;
    assert_eq!(join(&mut tab4, "r").await, (6, 0));
}

#[tokio::test]
async fn read_positions_are_kept_per_user_on_sqlite_and_postgres() {
    let server = TestServer::start().await;
    check(&server).await;
    let pg = OwnPostgres::start();
    let url = pg.url();
    let server = TestServer::start_with(|c| c.database_url = Some(url.clone())).await;
    check(&server).await;
}

#[tokio::test]
async fn reading_a_room_you_are_not_in_is_refused() {
    let server = TestServer::start().await;
    let mut client = server.client("nosy").await;
    client
        .send_json(serde_json::json!({"type":"read","room":"elsewhere","seq":1}))
        .await;
    match client.recv().await {
        ServerMsg::Error { code, .. } => assert_eq!(code, common::ErrorCode::NotJoined),
        other => panic!("expected not_joined, got {other:?}"),
    }
}

/// What the store holds of `user`'s position in `room`.
async fn stored(store: &dyn backend::store::Store, user: &str, room: &str) -> u64 {
    store.join_state(user, None, room).await.unwrap().read_seq
}

#[tokio::test]
async fn read_positions_are_written_together_soon_and_at_shutdown() {
    let mut server = TestServer::start().await;
    let store = server.server.as_ref().unwrap().state().hub.store().clone();
    let mut bob = server.client("bob").await;
    bob.join("r").await;
    for i in 1..=3 {
        acked(&mut bob, "r", &format!("b{i}")).await;
    }
    // Many readers at once: one transaction writes them all, within a
    // flush (`hub/read_marks.rs`), with no join asking for them.
    let mut readers = Vec::new();
    for i in 0..20 {
        let mut reader = server.client(&format!("reader{i}")).await;
        reader.join("r").await;
        reader
            .send_json(serde_json::json!({"type":"read","room":"r","seq":2}))
            .await;
        readers.push(reader);
    }
    let ids: Vec<String> = readers.iter().map(|r| r.user.id.clone()).collect();
    let mut written = 0;
    for _ in 0..40 {
        written = 0;
        for id in &ids {
            written += usize::from(stored(&*store, id, "r").await == 2);
        }
        if written == ids.len() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(written, ids.len(), "every reader's position is stored");

    // The last ones are written when the server stops, not lost: a read
    // the server has taken (her other tab heard of it) and then it stops.
    let carol = server.sign_in("carol").await;
    let mut tab1 = server.connect(&carol).await;
    let mut tab2 = server.connect(&carol).await;
    tab1.join("r").await;
    tab2.join("r").await;
    tab1.send_json(serde_json::json!({"type":"read","room":"r","seq":3}))
        .await;
    tab2.recv_where(|m| matches!(m, ServerMsg::Read { seq: 3, .. }))
        .await;
    server.server.take().unwrap().shutdown().await.unwrap();
    let id = &carol.user.id;
    assert_eq!(stored(&*store, id, "r").await, 3, "written at shutdown");
}
