use std::time::Duration;

use common::ServerMsg;

use crate::support::{Ended, TestServer};

#[tokio::test]
async fn the_server_pings_and_a_silent_client_is_closed_with_4010() {
    let server = TestServer::start_with(|c| {
        c.heartbeat_ms = 100;
        // Generous, so a busy test machine never delays the watcher's pongs
        // past it; the silent client is closed either way.
        c.pong_timeout_ms = 700;
    })
    .await;
    let mut watcher = server.client("watcher").await;
    watcher.join("general").await;
    let mut silent = server.client("silent").await;
    silent.join("general").await;
    // welcome says how often to expect pings.
    let session = server.sign_in("checker").await;
    let request = crate::support::ws_request(server.addr, &session.token);
    let (mut raw, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    use futures_util::StreamExt;
    let welcome = raw.next().await.unwrap().unwrap().into_text().unwrap();
    let welcome: ServerMsg = serde_json::from_str(&welcome).unwrap();
    assert!(matches!(
        welcome,
        ServerMsg::Welcome {
            heartbeat_ms: 100,
            ..
        }
    ));
    // The send limit is announced, so clients can pace themselves: the
    // default 20/s with a burst of 40.
    let ServerMsg::Welcome { send_limit, .. } = welcome else {
        unreachable!()
    };
    assert_eq!(
        send_limit,
        common::SendLimit {
            burst: 40,
            refill_ms: 50
        }
    );
    drop(raw);

    // The watcher answers pings and stays connected well past the timeout.
    let keep_alive = tokio::spawn(async move {
        let deadline = tokio::time::Instant::now() + Duration::from_millis(2000);
        let mut pings = 0;
        let mut left = Vec::new();
        while tokio::time::Instant::now() < deadline {
            match tokio::time::timeout_at(deadline, watcher.recv_where(|_| true)).await {
                Ok(ServerMsg::Ping) => {
                    pings += 1;
                    watcher.send_json(serde_json::json!({"type":"pong"})).await;
                }
                Ok(ServerMsg::UserLeft { user, .. }) => left.push(user.name),
                Ok(_) => {}
                Err(_) => break,
            }
        }
        (pings, left)
    });
    // The silent one reads (so it is not a slow consumer) but never answers.
    assert_eq!(
        silent.ended().await,
        Ended::Closed(common::close::HEARTBEAT_TIMEOUT)
    );
    let (pings, left) = keep_alive.await.unwrap();
    assert!(pings >= 5, "pings: {pings}");
    assert!(
        left.contains(&"silent".to_owned()),
        "presence removed: {left:?}"
    );
}

#[tokio::test]
async fn a_connection_is_closed_with_4001_when_its_session_expires() {
    let server = TestServer::start_with(|c| c.session_ttl_secs = 1).await;
    let mut alice = server.client("alice").await;
    assert_eq!(
        alice.ended().await,
        Ended::Closed(common::close::TOKEN_INVALID)
    );
}
