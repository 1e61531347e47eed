//! Connection limits, attacked from one address while a bystander on
//! another (127.0.0.2: every 127/8 address is loopback) keeps working:
//! silent and half-sent requests are cut after the header deadline, one
//! address cannot hold more than its share of sockets, and WebSockets are
//! capped per user, per address and per node, with a clear refusal.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::MaybeTlsStream;

use crate::support::{TestServer, ws_request};

async fn connect_from(source: &str, server: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
    socket.connect(server).await.unwrap()
}

/// Waits until the server closes `stream` (or it errors); how long it took.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(
            limit.saturating_sub(started.elapsed()),
            stream.read(&mut buf),
        )
        .await
        {
            Ok(Ok(0)) | Ok(Err(_)) => return Some(started.elapsed()),
            Ok(Ok(_)) => continue,
            Err(_) => return None,
        }
    }
}

/// A connection from `source` that the server closes on accept, tried
/// until one is (the server may not have accepted everything before it
/// yet): how long that one took to be closed. `None` if none was within
/// 10 s.
async fn refused_from(source: &str, server: SocketAddr) -> Option<Duration> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let mut probe = connect_from(source, server).await;
        if let Some(took) = closed_within(&mut probe, Duration::from_millis(300)).await {
            return Some(took);
        }
    }
    None
}

/// An HTTP client on another loopback address (127.0.0.2), signed in as a
/// guest: the bystander every attack here is measured against.
async fn bystander_elsewhere(server: &TestServer) -> (reqwest::Client, common::SessionResponse) {
    let http = reqwest::Client::builder()
        .local_address("127.0.0.2".parse::<std::net::IpAddr>().unwrap())
        .build()
        .unwrap();
    let session = http
        .post(server.url("/api/session"))
        .json(&serde_json::json!({"name": "bystander"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    (http, session)
}

/// What a WebSocket upgrade was answered with: 101, or the refusal.
async fn upgrade_status(
    request: tokio_tungstenite::tungstenite::handshake::client::Request,
) -> (u16, String) {
    match tokio_tungstenite::connect_async(request).await {
        Ok((ws, response)) => {
            drop(ws);
            (response.status().as_u16(), String::new())
        }
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            let body: serde_json::Value =
                serde_json::from_slice(response.body().as_deref().unwrap_or_default())
                    .unwrap_or_default();
            (
                response.status().as_u16(),
                body["error"].as_str().unwrap_or_default().to_owned(),
            )
        }
        Err(other) => panic!("upgrade failed: {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_and_half_sent_requests_from_one_address_lock_out_nobody_else() {
    let server = TestServer::start_with(|c| {
        c.max_http_per_ip = 20;
        c.header_timeout_ms = 1_000;
    })
    .await;
    // The attack: 15 sockets that say nothing, 5 that send half a request.
    let mut attackers = Vec::new();
    for i in 0..20 {
        let mut stream = connect_from("127.0.0.1", server.addr).await;
        if i >= 15 {
            stream
                .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
                .await
                .unwrap();
        }
        attackers.push(stream);
    }
    // One more from the same address is closed at once (once the server
    // has accepted the 20: until then a probe may be one of them).
    let refused = refused_from("127.0.0.1", server.addr).await;
    assert!(
        refused.is_some(),
        "the 21st socket from one address is closed"
    );

    // A bystander on another address: signs in, connects, chats.
    let (_, session) = bystander_elsewhere(&server).await;
    let stream = connect_from("127.0.0.2", server.addr).await;
    let (ws, _) = tokio_tungstenite::client_async(
        ws_request(server.addr, &session.token),
        MaybeTlsStream::Plain(stream),
    )
    .await
    .expect("the bystander's WebSocket opens");
    drop(ws);

    // The attackers are cut off by the header deadline (1 s here, 5 s by
    // default), half-sent requests included.
    let mut longest = Duration::ZERO;
    for (i, stream) in attackers.iter_mut().enumerate() {
        let took = closed_within(stream, Duration::from_secs(10))
            .await
            .unwrap_or_else(|| panic!("attacker {i} was never closed"));
        longest = longest.max(took);
    }
    println!(
        "21st socket closed after {refused:?}; all 20 attackers closed within {longest:?} more"
    );
    // Their places are free again.
    assert_eq!(
        reqwest::get(server.url("/healthz")).await.unwrap().status(),
        200
    );
}

/// Everything the server answers before closing `stream` (within
/// `limit`), and how long it took.
async fn answer_then_close(stream: &mut TcpStream, limit: Duration) -> Option<(Duration, String)> {
    let started = Instant::now();
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(
            limit.saturating_sub(started.elapsed()),
            stream.read(&mut buf),
        )
        .await
        {
            Ok(Ok(0)) | Ok(Err(_)) => {
                return Some((
                    started.elapsed(),
                    String::from_utf8_lossy(&answer).into_owned(),
                ));
            }
            Ok(Ok(n)) => answer.extend_from_slice(&buf[..n]),
            Err(_) => return None,
        }
    }
}

/// Complete headers, then a body that never comes, trickles in a byte at a
/// time, or is chunked and never ends: each gets `408 request_timeout` at
/// the request deadline and is closed. From several addresses together
/// they meet the per-node cap (closed on accept), and once they are cut
/// off the places come back for a bystander.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_that_never_arrive_are_cut_at_the_request_deadline() {
    let server = TestServer::start_with(|c| {
        c.max_http_per_ip = 20;
        c.max_http_connections = 40;
        c.request_timeout_ms = 1_000;
    })
    .await;
    let head = |body: &str| {
        format!(
            "POST /api/session HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{body}\r\n"
        )
    };
    let mut attackers = Vec::new();
    let mut tricklers = Vec::new();
    for source in ["127.0.0.1", "127.0.0.3"] {
        for i in 0..20 {
            let mut stream = connect_from(source, server.addr).await;
            match i % 3 {
                // A body announced and never sent.
                0 => stream
                    .write_all(head("Content-Length: 100\r\n").as_bytes())
                    .await
                    .unwrap(),
                // Chunked, one chunk, and no end.
                1 => stream
                    .write_all(
                        format!("{}5\r\nhello\r\n", head("Transfer-Encoding: chunked\r\n"))
                            .as_bytes(),
                    )
                    .await
                    .unwrap(),
                // A byte every 200 ms, for as long as the server listens.
                _ => {
                    stream
                        .write_all(head("Content-Length: 1000\r\n").as_bytes())
                        .await
                        .unwrap();
                    let (reader, mut writer) = stream.into_split();
                    tricklers.push(tokio::spawn(async move {
                        for _ in 0..100 {
                            if writer.write_all(b"{").await.is_err() {
                                return;
                            }
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        }
                    }));
                    attackers.push(Err(reader));
                    continue;
                }
            }
            attackers.push(Ok(stream));
        }
    }
    // The node is full: one more, from an address with no connection yet,
    // is closed at once.
    assert!(
        refused_from("127.0.0.4", server.addr).await.is_some(),
        "the 41st connection on the node is closed"
    );

    let mut longest = Duration::ZERO;
    let mut timed_out = 0;
    for (i, attacker) in attackers.iter_mut().enumerate() {
        let answered = match attacker {
            Ok(stream) => answer_then_close(stream, Duration::from_secs(10)).await,
            Err(reader) => {
                let started = Instant::now();
                let mut answer = Vec::new();
                let read =
                    tokio::time::timeout(Duration::from_secs(10), reader.read_to_end(&mut answer))
                        .await;
                read.ok().map(|_| {
                    (
                        started.elapsed(),
                        String::from_utf8_lossy(&answer).into_owned(),
                    )
                })
            }
        };
        let (took, answer) = answered.unwrap_or_else(|| panic!("attacker {i} was never closed"));
        longest = longest.max(took);
        if answer.starts_with("HTTP/1.1 408") {
            timed_out += 1;
        }
    }
    println!("40 slow bodies: {timed_out} answered 408, all closed within {longest:?}");
    assert_eq!(timed_out, 40, "every slow body gets 408 request_timeout");
    assert!(
        longest < Duration::from_secs(5),
        "cut at the deadline: {longest:?}"
    );
    for trickler in tricklers {
        trickler.await.unwrap();
    }
    // The places are free again: a bystander signs in.
    let (http, session) = bystander_elsewhere(&server).await;
    assert!(!session.token.is_empty());
    assert_eq!(
        http.get(server.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn websockets_are_capped_per_user_per_address_and_per_node() {
    let server = TestServer::start_with(|c| {
        c.max_connections_per_user = 3;
        c.max_connections_per_ip = 5;
    })
    .await;
    let alice = server.sign_in("alice").await;
    let mut open = Vec::new();
    for _ in 0..3 {
        open.push(server.connect(&alice).await);
    }
    assert_eq!(
        upgrade_status(ws_request(server.addr, &alice.token)).await,
        (429, "too_many_connections".to_owned()),
        "a 4th for one user"
    );
    let bob = server.sign_in("bob").await;
    open.push(server.connect(&bob).await);
    open.push(server.connect(&bob).await);
    assert_eq!(
        upgrade_status(ws_request(server.addr, &bob.token)).await,
        (429, "too_many_connections".to_owned()),
        "a 6th from one address"
    );
    // A place comes back when a socket closes.
    drop(open.pop());
    tokio::time::sleep(Duration::from_millis(200)).await;
    open.push(server.connect(&bob).await);

    let full = TestServer::start_with(|c| c.max_connections = 2).await;
    let carol = full.sign_in("carol").await;
    let _one = full.connect(&carol).await;
    let _two = full.connect(&carol).await;
    assert_eq!(
        upgrade_status(ws_request(full.addr, &carol.token)).await,
        (503, "server_full".to_owned())
    );
    // A full node still answers health checks and sign-ins.
    assert_eq!(
        reqwest::get(full.url("/healthz")).await.unwrap().status(),
        200
    );
    full.sign_in("dave").await;
}

/// The history API as an amplifier: one token asking for pages as fast as
/// it can is stopped at its quota with `429` and `Retry-After`; other
/// tokens, and other addresses, are not.
#[tokio::test]
async fn the_http_api_is_rate_limited_per_token_and_per_address() {
    let server = TestServer::start_with(|c| {
        c.api_per_token_per_minute = 10;
        c.api_per_ip_per_minute = 25;
    })
    .await;
    let mut feeder = server.client("feeder").await;
    feeder.join("r").await;
    let greedy = server.sign_in("greedy").await;
    let history = server.url("/api/rooms/r/messages?limit=200");
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..12 {
        let response = reqwest::Client::new()
            .get(&history)
            .bearer_auth(&greedy.token)
            .send()
            .await
            .unwrap();
        if response.status() == 429 {
            retry_after = response.headers().get("retry-after").cloned();
        }
        statuses.push(response.status().as_u16());
    }
    assert_eq!(statuses[..10], [200; 10], "{statuses:?}");
    assert_eq!(statuses[10..], [429, 429]);
    let wait: u64 = retry_after.unwrap().to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "Retry-After {wait}");
    // Another token from the same address: fine, until the address's
    // quota runs out (25 a minute; 3 sign-ins and 12 pages used 15).
    let polite = server.sign_in("polite").await;
    let mut from_one_address = Vec::new();
    for _ in 0..12 {
        let response = reqwest::Client::new()
            .get(&history)
            .bearer_auth(&polite.token)
            .send()
            .await
            .unwrap();
        from_one_address.push(response.status().as_u16());
    }
    assert_eq!(from_one_address[..10], [200; 10], "{from_one_address:?}");
    assert_eq!(from_one_address[10..], [429, 429], "the address quota");
    // Someone at another address is unaffected.
    let (elsewhere, bystander) = bystander_elsewhere(&server).await;
    let status = elsewhere
        .get(&history)
        .bearer_auth(&bystander.token)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200);
}
