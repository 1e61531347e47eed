//! Rooms cost memory only while someone is in them: an empty room is
//! unloaded and loaded again on demand, one user cannot create rooms
//! without end, and a node holds a bounded number of rooms.

use std::time::Duration;

use common::{ErrorCode, ServerMsg};

use crate::support::{TestServer, no_rate_limit};

fn error_code(msg: &ServerMsg) -> Option<ErrorCode> {
    match msg {
        ServerMsg::Error { code, .. } => Some(*code),
        _ => None,
    }
}

#[tokio::test]
async fn an_empty_room_is_unloaded_and_comes_back_intact() {
    let server = TestServer::start_with(|c| c.room_unload_secs = 1).await;
    let hub = server.server.as_ref().unwrap().state().hub.clone();
    let mut alice = server.client("alice").await;
    alice.join("attic").await;
    alice.say("attic", "before", "a1").await;
    alice
        .recv_where(|m| matches!(m, ServerMsg::Ack { .. }))
        .await;
    assert_eq!(hub.loaded_rooms(), 1);
    alice
        .send_json(serde_json::json!({"type":"leave","room":"attic"}))
        .await;
    alice
        .recv_where(|m| matches!(m, ServerMsg::Left { .. }))
        .await;
    let mut waited = Duration::ZERO;
    while hub.loaded_rooms() > 0 && waited < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        waited += Duration::from_millis(100);
    }
    assert_eq!(hub.loaded_rooms(), 0, "unloaded once empty");

    // Loaded again on the next join: history and seq continue.
    let mut bob = server.client("bob").await;
    bob.send_json(serde_json::json!({"type":"join","room":"attic","since":0}))
        .await;
    match bob.recv_where(|m| matches!(m, ServerMsg::Message(_))).await {
        ServerMsg::Message(m) => assert_eq!((m.seq, m.content.as_str()), (1, "before")),
        _ => unreachable!(),
    }
    bob.recv_where(|m| matches!(m, ServerMsg::Joined { .. }))
        .await;
    bob.say("attic", "after", "b1").await;
    match bob.recv_where(|m| matches!(m, ServerMsg::Ack { .. })).await {
        ServerMsg::Ack { seq, .. } => assert_eq!(seq, 2),
        _ => unreachable!(),
    }
    assert_eq!(hub.loaded_rooms(), 1);
}

/// 300 rooms created and abandoned: every one is unloaded.
#[tokio::test]
async fn abandoned_rooms_do_not_stay_in_memory() {
    let server = TestServer::start_with(|c| {
        c.room_unload_secs = 1;
        c.max_rooms = 1_000;
        no_rate_limit(c);
    })
    .await;
    let hub = server.server.as_ref().unwrap().state().hub.clone();
    let mut vandal = server.client("vandal").await;
    for i in 0..300 {
        vandal.join(&format!("junk-{i}")).await;
    }
    assert_eq!(hub.loaded_rooms(), 300);
    drop(vandal);
    let mut waited = Duration::ZERO;
    while hub.loaded_rooms() > 0 && waited < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        waited += Duration::from_millis(100);
    }
    assert_eq!(hub.loaded_rooms(), 0);
}

#[tokio::test]
async fn one_user_creates_a_bounded_number_of_rooms() {
    let server = TestServer::start_with(|c| c.rooms_per_user_per_hour = 3).await;
    let mut host = server.client("host").await;
    host.join("lobby").await;
    let mut vandal = server.client("vandal").await;
    for room in ["v1", "v2", "v3"] {
        vandal.join(room).await;
    }
    vandal
        .send_json(serde_json::json!({"type":"join","room":"v4","since":null}))
        .await;
    assert_eq!(
        error_code(&vandal.recv().await),
        Some(ErrorCode::RateLimited),
        "a 4th new room within the hour"
    );
    // Existing rooms stay open to them, and to everyone else.
    vandal.join("lobby").await;
    let mut bystander = server.client("bystander").await;
    bystander.join("v4").await;
    // The HTTP API counts against the same quota.
    let (status, body) = server
        .call(
            reqwest::Method::POST,
            "/api/rooms",
            Some(&server.sign_in("vandal2").await.token),
            Some(serde_json::json!({"name": "fresh"})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
}

#[tokio::test]
async fn a_full_node_refuses_new_rooms_but_not_loaded_ones() {
    let server = TestServer::start_with(|c| c.max_loaded_rooms = 2).await;
    let mut alice = server.client("alice").await;
    alice.join("a").await;
    alice.join("b").await;
    let mut bob = server.client("bob").await;
    bob.send_json(serde_json::json!({"type":"join","room":"c","since":null}))
        .await;
    assert_eq!(error_code(&bob.recv().await), Some(ErrorCode::RoomLimit));
    bob.join("a").await;
}

/// Sign-ups are cheap, so a per-user quota alone multiplies with accounts:
/// rooms created from one address are capped too, whoever creates them,
/// and another address is not affected.
#[tokio::test]
async fn one_address_creates_a_bounded_number_of_rooms() {
    let server = crate::support::TestServer::start_with(|c| {
        c.rooms_per_user_per_hour = 3;
        c.rooms_per_ip_per_hour = 5;
        c.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    })
    .await;
    let create = |token: String, name: String, from: &'static str| {
        let url = server.url("/api/rooms");
        async move {
            reqwest::Client::new()
                .post(url)
                .bearer_auth(token)
                .header("x-forwarded-for", from)
                .json(&serde_json::json!({"name": name, "visibility": "public"}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    let mut statuses = Vec::new();
    for user in 0..3 {
        let session = server.sign_in(&format!("maker{user}")).await;
        for room in 0..2 {
            statuses.push(
                create(
                    session.token.clone(),
                    format!("r{user}x{room}"),
                    "198.51.100.7",
                )
                .await,
            );
        }
    }
    assert_eq!(
        statuses,
        [201, 201, 201, 201, 201, 429],
        "the 6th room from one address"
    );
    let elsewhere = server.sign_in("elsewhere").await;
    assert_eq!(
        create(elsewhere.token, "mine".into(), "192.0.2.9").await,
        201
    );
}
