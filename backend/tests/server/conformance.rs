//! The protocol's edges: what a client that breaks the rules of WebSocket
//! or HTTP gets back, with the documented code, and that the server is
//! fine for everyone else afterwards.

use common::ApiError;
use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

use crate::support::{Ended, TestServer};

#[tokio::test]
async fn a_text_frame_that_is_not_utf8_closes_with_1007() {
    let server = TestServer::start().await;
    let mut client = server.client("garbled").await;
    let garbled = Frame::message(vec![b'{', 0xff, 0xfe, b'}'], OpCode::Data(Data::Text), true);
    client.ws.send(Message::Frame(garbled)).await.unwrap();
    assert_eq!(client.ended().await, Ended::Closed(1007));
    // Everyone else is fine.
    let mut bystander = server.client("bystander").await;
    bystander.join("r").await;
}

/// Control frames are answered by the session itself, through the same
/// ordered queue as everything else (the server writes frames straight into
/// the socket, so tungstenite's own answers are not used).
#[tokio::test]
async fn a_ping_gets_its_pong_and_a_close_gets_a_close() {
    use futures_util::StreamExt;
    let server = TestServer::start().await;
    let mut client = server.client("pinger").await;
    client
        .ws
        .send(Message::Ping(b"are you there?".to_vec().into()))
        .await
        .unwrap();
    let pong = loop {
        let next = tokio::time::timeout(std::time::Duration::from_secs(5), client.ws.next());
        match next.await.expect("a pong in time").unwrap().unwrap() {
            Message::Pong(payload) => break payload,
            _ => continue,
        }
    };
    assert_eq!(&pong[..], b"are you there?");
    // The connection is fine afterwards.
    client.join("r").await;
    client
        .ws
        .send(Message::Close(Some(
            tokio_tungstenite::tungstenite::protocol::CloseFrame {
                code: tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode::Normal,
                reason: "bye".into(),
            },
        )))
        .await
        .unwrap();
    assert_eq!(client.ended().await, crate::support::Ended::Closed(1000));
}

#[tokio::test]
async fn malformed_upgrades_get_json_errors() {
    let server = TestServer::start().await;
    let token = server.sign_in("alice").await.token;
    let http = reqwest::Client::new();
    let upgrade = |url: String| {
        http.get(url)
            .header("connection", "upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-version", "13")
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
    };
    let twice = upgrade(server.url("/ws?ticket=a&ticket=b"))
        .send()
        .await
        .unwrap();
    assert_eq!(twice.status(), 400);
    let body: ApiError = twice.json().await.unwrap();
    assert_eq!(body.error.as_str(), "invalid_query");

    // A plain GET with a good token: not a WebSocket request.
    let plain = http
        .get(server.url("/ws"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert!(plain.status().is_client_error(), "{}", plain.status());
    let body: ApiError = plain.json().await.unwrap();
    assert_eq!(body.error.as_str(), "not_a_websocket_upgrade");

    // An upgrade in a WebSocket version we do not speak.
    let old = http
        .get(server.url("/ws"))
        .bearer_auth(&token)
        .header("connection", "keep-alive, Upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "8")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .send()
        .await
        .unwrap();
    assert_eq!(old.status(), 426);
    assert_eq!(old.headers()["sec-websocket-version"], "13");
    let body: ApiError = old.json().await.unwrap();
    assert_eq!(body.error.as_str(), "not_a_websocket_upgrade");
    assert!(body.message.contains("13"), "{}", body.message);
}

/// The data dir and everything in it are the server's own: messages and
/// sessions are not for other local users. An existing wider dir is
/// left as the operator made it (with a warning in the log).
#[tokio::test]
async fn the_data_dir_and_its_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let server = TestServer::start().await;
    let data = server.dir.join("data");
    let mut client = server.client("private").await;
    client.join("r").await;
    client.say("r", "secret plans", "c1").await;
    client
        .recv_where(|m| matches!(m, common::ServerMsg::Ack { .. }))
        .await;
    assert_eq!(mode(&data), 0o700, "data dir");
    for file in ["hearth.db", "hearth.db-wal", "hearth.db-shm"] {
        assert_eq!(mode(&data.join(file)), 0o600, "{file}");
    }

    let shared = crate::support::temp_dir().join("shared");
    std::fs::create_dir_all(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o755)).unwrap();
    let dir = shared.clone();
    let _server = TestServer::start_with(|c| c.data_dir = dir).await;
    assert_eq!(
        mode(&shared),
        0o755,
        "not changed behind the operator's back"
    );
    assert_eq!(mode(&shared.join("hearth.db")), 0o600);
}
