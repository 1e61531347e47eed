use common::{ApiError, RoomSummary, SessionResponse};
use serde_json::json;

use crate::support::{TestServer, get_json};

#[tokio::test]
async fn sign_in_returns_a_token_that_opens_a_websocket() {
    let server = TestServer::start().await;
    let session = server.sign_in("  alice ").await;
    assert_eq!(session.user.name, "alice", "the name is trimmed");
    assert!(!session.user.id.is_empty());
    assert!(session.token.starts_with("hth_"), "an opaque session token");
    assert!(session.user.is_guest(), "a name-only sign-in is a guest");
    let client = server.connect(&session).await;
    assert_eq!(client.user, session.user);
}

#[tokio::test]
async fn bad_names_and_bodies_get_400_with_a_json_error() {
    let server = TestServer::start().await;
    let http = reqwest::Client::new();
    for (body, code) in [
        (json!({"name": ""}).to_string(), "invalid_name"),
        (json!({"name": "   "}).to_string(), "invalid_name"),
        (json!({"name": "x".repeat(33)}).to_string(), "invalid_name"),
        (json!({"nom": "alice"}).to_string(), "invalid_body"),
        ("{not json".to_owned(), "invalid_body"),
    ] {
        let response = http
            .post(server.url("/api/session"))
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{body}");
        let error: ApiError = response.json().await.unwrap();
        assert_eq!(error.error.as_str(), code, "{body}");
        assert!(!error.message.is_empty());
    }
    // 32 characters is the limit, not 32 bytes.
    let ok = http
        .post(server.url("/api/session"))
        .json(&json!({"name": "é".repeat(32)}))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let _: SessionResponse = ok.json().await.unwrap();
}

#[tokio::test]
async fn the_websocket_refuses_missing_and_bad_tokens_with_401() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let server = TestServer::start_with(|c| c.session_ttl_secs = 0).await;
    let expired = server.sign_in("alice").await.token;
    let no_token = format!("ws://{}/ws", server.addr)
        .into_client_request()
        .unwrap();
    for (request, code) in [
        (no_token, "missing_token"),
        (
            crate::support::ws_request(server.addr, "nonsense"),
            "invalid_token",
        ),
        (
            crate::support::ws_request(server.addr, &expired),
            "invalid_token",
        ),
    ] {
        match tokio_tungstenite::connect_async(request).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), 401, "{code}");
                let body: ApiError =
                    serde_json::from_slice(response.body().as_deref().unwrap()).unwrap();
                assert_eq!(body.error.as_str(), code);
            }
            other => panic!("expected a 401 ({code}), got {other:?}"),
        }
    }
    // A token in the URL is refused outright, even a good one: URLs end up
    // in logs and browser history.
    let live = server.sign_in("bob").await.token;
    let url = format!("ws://{}/ws?token={live}", server.addr);
    match tokio_tungstenite::connect_async(&url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 400);
            let body: ApiError =
                serde_json::from_slice(response.body().as_deref().unwrap()).unwrap();
            assert_eq!(body.error.as_str(), "token_in_url");
        }
        other => panic!("expected a 400, got {other:?}"),
    }
}

/// Cross-site WebSocket hijacking: a page on another site, in the browser
/// of someone signed in, tries to connect with their token.
#[tokio::test]
async fn a_foreign_origin_is_refused_and_our_own_is_not() {
    let server = TestServer::start_with(|c| {
        c.allowed_origins = vec!["https://chat.example.com".into()];
    })
    .await;
    let session = server.sign_in("victim").await;
    let with_origin = |origin: &str| {
        let mut request = crate::support::ws_request(server.addr, &session.token);
        request
            .headers_mut()
            .insert("origin", origin.parse().unwrap());
        request
    };
    match tokio_tungstenite::connect_async(with_origin("https://evil.example")).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 403);
            let body: ApiError =
                serde_json::from_slice(response.body().as_deref().unwrap()).unwrap();
            assert_eq!(body.error.as_str(), "forbidden_origin");
        }
        other => panic!("expected a 403, got {other:?}"),
    }
    // The server's own pages, an allowed origin, and non-browser clients
    // (no Origin at all) connect.
    let own = format!("http://{}", server.addr);
    for origin in [own.as_str(), "https://chat.example.com"] {
        let (mut ws, _) = tokio_tungstenite::connect_async(with_origin(origin))
            .await
            .unwrap_or_else(|e| panic!("{origin}: {e}"));
        use futures_util::StreamExt;
        let welcome = ws.next().await.unwrap().unwrap();
        assert!(welcome.to_text().unwrap().contains("welcome"), "{origin}");
    }
    server.connect(&session).await;
}

#[tokio::test]
async fn a_token_of_another_server_is_refused() {
    let one = TestServer::start().await;
    let other = TestServer::start().await;
    let session = one.sign_in("alice").await;
    let request = crate::support::ws_request(other.addr, &session.token);
    let err = tokio_tungstenite::connect_async(request).await.unwrap_err();
    assert!(
        matches!(&err, tokio_tungstenite::tungstenite::Error::Http(r) if r.status() == 401),
        "{err:?}"
    );
}

#[tokio::test]
async fn rooms_are_listed_with_member_counts_for_signed_in_users() {
    let server = TestServer::start().await;
    let mut alice = server.client("alice").await;
    let mut bob = server.client("bob").await;
    alice.join("general").await;
    bob.join("general").await;
    alice.join("random").await;

    let http = reqwest::Client::new();
    let anonymous = http.get(server.url("/api/rooms")).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);

    let token = server.sign_in("carol").await.token;
    let rooms: Vec<RoomSummary> = get_json(&server.url("/api/rooms"), &token).await;
    assert_eq!(
        rooms,
        vec![
            RoomSummary {
                name: "general".into(),
                members: 2,
                visibility: common::Visibility::Public,
                role: None,
                ..RoomSummary::default()
            },
            RoomSummary {
                name: "random".into(),
                members: 1,
                visibility: common::Visibility::Public,
                role: None,
                ..RoomSummary::default()
            },
        ]
    );
}

#[tokio::test]
async fn abandoned_rooms_drop_out_of_the_list_occupied_ones_stay() {
    let server = TestServer::start_with(|c| c.room_list_idle_secs = 1).await;
    let mut alice = server.client("alice").await;
    alice.join("busy").await;
    alice.join("quiet").await;
    alice.say("quiet", "hello?", "q1").await;
    alice
        .send_json(serde_json::json!({"type":"leave","room":"quiet"}))
        .await;
    alice
        .recv_where(|m| matches!(m, common::ServerMsg::Left { .. }))
        .await;
    let token = server.sign_in("carol").await.token;
    let list = || async {
        let rooms: Vec<RoomSummary> = get_json(&server.url("/api/rooms"), &token).await;
        rooms.into_iter().map(|r| r.name).collect::<Vec<_>>()
    };
    assert_eq!(list().await, ["busy", "quiet"], "recent activity: listed");
    tokio::time::sleep(std::time::Duration::from_millis(1_300)).await;
    assert_eq!(
        list().await,
        ["busy"],
        "nobody there, nothing new: not listed"
    );
}

#[tokio::test]
async fn health_static_files_and_spa_fallback() {
    let server = TestServer::start().await;
    let http = reqwest::Client::new();
    let health: serde_json::Value = http
        .get(server.url("/healthz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");

    for path in ["/", "/rooms/general"] {
        // Signed in (the cookie says so): the app; else the sign-in page
        // (`signin_page.rs`).
        let page = http
            .get(server.url(path))
            .header("cookie", "hearth=in")
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), 200, "{path}");
        assert!(page.text().await.unwrap().contains("hearth test"), "{path}");
        let page = http.get(server.url(path)).send().await.unwrap();
        assert!(
            page.text().await.unwrap().contains("action=\"/signin\""),
            "{path}"
        );
    }
    let missing = http.get(server.url("/api/nope")).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    let error: ApiError = missing.json().await.unwrap();
    assert_eq!(error.error.as_str(), "not_found");
}

/// Browsers never put the long-lived token in a URL: they trade it for a
/// ticket that opens one WebSocket, once, within 30 s.
#[tokio::test]
async fn a_ws_ticket_opens_one_socket_once() {
    let server = TestServer::start().await;
    let session = server.sign_in("ticketed").await;
    let http = reqwest::Client::new();
    let anonymous = http
        .post(server.url("/api/ws-ticket"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    let answer = http
        .post(server.url("/api/ws-ticket"))
        .bearer_auth(&session.token)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 201);
    let ticket: common::WsTicket = answer.json().await.unwrap();
    assert_eq!(ticket.expires_in_secs, 30);
    assert!(!ticket.ticket.contains(&session.token));

    let url = format!("ws://{}/ws?ticket={}", server.addr, ticket.ticket);
    let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    use futures_util::StreamExt;
    let welcome: common::ServerMsg =
        serde_json::from_str(ws.next().await.unwrap().unwrap().to_text().unwrap()).unwrap();
    match welcome {
        common::ServerMsg::Welcome { user, .. } => assert_eq!(user, session.user),
        other => panic!("expected welcome, got {other:?}"),
    }
    // Used: never again. Unknown: never.
    for url in [url, format!("ws://{}/ws?ticket=not-a-ticket", server.addr)] {
        match tokio_tungstenite::connect_async(&url).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), 401);
                let body: ApiError =
                    serde_json::from_slice(response.body().as_deref().unwrap()).unwrap();
                assert_eq!(body.error.as_str(), "invalid_ticket");
            }
            other => panic!("expected a 401, got {other:?}"),
        }
    }
    // Expired: refused too.
    let store = server.server.as_ref().unwrap().state().hub.store().clone();
    let now = backend::hub::now_millis();
    let session_id = store
        .session(
            &backend::auth::secret_hash(&session.token),
            backend::auth::now_secs(),
        )
        .await
        .unwrap()
        .unwrap()
        .id;
    store
        .save_ticket(
            &backend::auth::secret_hash("old"),
            &session_id,
            now - 1,
            now - 10,
        )
        .await
        .unwrap();
    let old = format!("ws://{}/ws?ticket=old", server.addr);
    assert!(tokio_tungstenite::connect_async(&old).await.is_err());
}

/// A page of an allowed origin (`--allowed-origin`) may call the API from
/// its own origin: preflights are answered and answers carry its origin.
/// Any other origin gets no CORS headers, so its page is kept from the
/// answer; and nothing is allowed with cookies.
#[tokio::test]
async fn allowed_origins_may_call_the_api_across_origins_and_no_other() {
    let server = TestServer::start_with(|config| {
        config.allowed_origins = vec!["https://app.example/".into()];
    })
    .await;
    let session = server.sign_in("alice").await;
    let http = reqwest::Client::new();
    let preflight = |origin: &'static str| {
        http.request(reqwest::Method::OPTIONS, server.url("/api/ws-ticket"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "authorization")
            .send()
    };

    let allowed = preflight("https://app.example").await.unwrap();
    assert!(allowed.status().is_success(), "{}", allowed.status());
    let headers = allowed.headers();
    assert_eq!(
        headers["access-control-allow-origin"],
        "https://app.example"
    );
    let methods = headers["access-control-allow-methods"].to_str().unwrap();
    assert!(methods.contains("POST"), "{methods}");
    let allowed_headers = headers["access-control-allow-headers"].to_str().unwrap();
    assert!(
        allowed_headers.contains("authorization"),
        "{allowed_headers}"
    );
    assert!(!headers.contains_key("access-control-allow-credentials"));

    let refused = preflight("https://evil.example").await.unwrap();
    assert!(
        !refused
            .headers()
            .contains_key("access-control-allow-origin"),
        "{:?}",
        refused.headers()
    );

    // The call itself: the ticket is the page's, with its origin named.
    let ticket = http
        .post(server.url("/api/ws-ticket"))
        .header("origin", "https://app.example")
        .bearer_auth(&session.token)
        .send()
        .await
        .unwrap();
    assert!(ticket.status().is_success(), "{}", ticket.status());
    assert_eq!(
        ticket.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    let elsewhere = http
        .post(server.url("/api/ws-ticket"))
        .header("origin", "https://evil.example")
        .bearer_auth(&session.token)
        .send()
        .await
        .unwrap();
    assert!(
        !elsewhere
            .headers()
            .contains_key("access-control-allow-origin")
    );

    // Without --allowed-origin, no origin but the server's own.
    let plain = TestServer::start().await;
    let none = reqwest::Client::new()
        .request(reqwest::Method::OPTIONS, plain.url("/api/session"))
        .header("origin", "https://app.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert!(!none.headers().contains_key("access-control-allow-origin"));
}
