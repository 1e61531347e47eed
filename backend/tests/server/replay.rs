//! History sent on joins and through the history API, attacked: sockets
//! that never read cannot make a node hold their replays in memory (a
//! replay is fetched a page at a time as the socket drains), and the bytes
//! of history are metered per user and per address, not only per socket.
//! A bystander is measured during each attack.

use std::time::{Duration, Instant};

use common::{ErrorCode, ServerMsg};
use futures_util::StreamExt;
use serde_json::json;
use tokio_tungstenite::MaybeTlsStream;

use crate::support::{
    Client, TestServer, connect_at, no_rate_limit, sign_in_at, spawn_hearth, temp_dir, ws_request,
};

/// The server's resident memory, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// A WebSocket whose kernel receive buffer is 4 KiB: once that is full,
/// everything the server sends it waits on the server's side.
async fn tiny_reader(addr: &str, token: &str) -> Client {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(addr.parse().unwrap()).await.unwrap();
    let (ws, _) =
        tokio_tungstenite::client_async(ws_request(addr, token), MaybeTlsStream::Plain(stream))
            .await
            .expect("websocket connects");
    let mut client = Client {
        ws,
        user: common::User {
            id: String::new(),
            name: String::new(),
            username: None,
        },
    };
    match client.recv().await {
        ServerMsg::Welcome { user, .. } => client.user = user,
        other => panic!("expected welcome, got {other:?}"),
    }
    client
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

/// The hardening review's attack: 300 sockets from one address (10 users ×
/// 30, inside every cap), each with a 4 KiB receive buffer, join a room of
/// 1 000 × 4 KB messages with `since: 0` and never read. Before, each
/// join's whole replay was built up front: ~2.5 GB of RSS for 25 s. With
/// the history budgets out of the way (so that only the replay's own
/// bounds are tested), RSS stays within fresh + 64 MB, and the bystander
/// keeps chatting: its round trips are printed (p99 24-26 ms for this debug
/// build run alone; 50 ms is the goal) and only starvation fails the test
/// (p99 over 250 ms), since the suite shares two cores with other tests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sockets_that_never_read_pin_no_memory_during_a_replay() {
    let dir = temp_dir();
    let (child, addr) = spawn_hearth([
        "--allow-guests".to_owned(),
        "--data-dir".to_owned(),
        dir.join("data").display().to_string(),
        "--static-dir".to_owned(),
        dir.display().to_string(),
        "--send-rate".to_owned(),
        "1000000".to_owned(),
        "--send-burst".to_owned(),
        "1000000".to_owned(),
        "--replay-bytes-per-sec".to_owned(),
        "1000000000".to_owned(),
        "--replay-bytes-per-user-per-sec".to_owned(),
        "1000000000".to_owned(),
        "--replay-bytes-per-ip-per-sec".to_owned(),
        "1000000000".to_owned(),
        "--auth-per-ip-per-minute".to_owned(),
        "100000".to_owned(),
    ])
    .await;
    let pid = child.id().unwrap();

    let feeder_session = sign_in_at(&addr, "feeder").await;
    let mut feeder = connect_at(&addr, &feeder_session).await;
    feeder.join("big").await;
    let content = "h".repeat(4000);
    for i in 0..1000 {
        feeder.say("big", &content, &format!("f{i}")).await;
    }
    let mut acks = 0;
    while acks < 1000 {
        if let ServerMsg::Ack { .. } = feeder.recv().await {
            acks += 1;
        }
    }
    drop(feeder);

    // The bystander, from another address, in another room.
    let bystander_session = {
        let http = reqwest::Client::builder()
            .local_address("127.0.0.2".parse::<std::net::IpAddr>().unwrap())
            .build()
            .unwrap();
        http.post(format!("http://{addr}/api/session"))
            .json(&json!({"name": "bystander"}))
            .send()
            .await
            .unwrap()
            .json::<common::SessionResponse>()
            .await
            .unwrap()
    };
    let mut bystander = connect_at(&addr, &bystander_session).await;
    bystander.join("quiet").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let fresh = rss_kib(pid);

    let mut attackers = Vec::new();
    for user in 0..10 {
        let session = sign_in_at(&addr, &format!("reader{user}")).await;
        for _ in 0..30 {
            let mut client = tiny_reader(&addr, &session.token).await;
            client
                .send_json(json!({"type": "join", "room": "big", "since": 0}))
                .await;
            attackers.push(client);
        }
    }

    // For 6 s (under the 10 s a replay waits for a reader before kicking
    // it): the server's RSS, and the bystander's round trips.
    let started = Instant::now();
    let mut peak = fresh;
    let mut trips = Vec::new();
    let mut n = 0;
    while started.elapsed() < Duration::from_secs(6) {
        n += 1;
        let sent = Instant::now();
        bystander.say("quiet", "still here", &format!("b{n}")).await;
        bystander
            .recv_where(|m| matches!(m, ServerMsg::Ack { .. }))
            .await;
        trips.push(sent.elapsed());
        peak = peak.max(rss_kib(pid));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    trips.sort();
    let p99 = percentile(&trips, 0.99);
    println!(
        "300 sockets not reading a 4 MB replay: RSS fresh {} MiB, peak {} MiB (+{} MiB); \
         bystander round trip p50 {:?}, p99 {:?} ({} trips)",
        fresh / 1024,
        peak / 1024,
        (peak - fresh) / 1024,
        percentile(&trips, 0.5),
        p99,
        trips.len()
    );
    assert!(
        peak <= fresh + 64 * 1024,
        "RSS grew by {} MiB",
        (peak - fresh) / 1024
    );
    assert!(p99 < Duration::from_millis(250), "bystander p99 {p99:?}");
    drop(attackers);
    drop(child);
}

/// 32 sockets of one user each ask for a 400 KB history at once, and then
/// the same user loops over the history API: together they get no more
/// than the user's history budget (here 200 KB/s, burst 400 KB), and the
/// API answers `429` with `Retry-After` past it. Another user, from another
/// address, still gets history at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_is_metered_per_user_across_sockets_and_the_api() {
    const RATE: usize = 200_000;
    let server = TestServer::start_with(|c| {
        no_rate_limit(c);
        c.replay_bytes_per_user_per_sec = RATE as u32;
        c.max_connections_per_user = 64;
    })
    .await;
    let mut feeder = server.client("feeder").await;
    feeder.join("big").await;
    let content = "h".repeat(4000);
    for i in 0..100 {
        feeder.say("big", &content, &format!("f{i}")).await;
    }
    let mut acks = 0;
    while acks < 100 {
        if let ServerMsg::Ack { .. } = feeder.recv().await {
            acks += 1;
        }
    }

    let session = server.sign_in("greedy").await;
    let mut sockets = Vec::new();
    for _ in 0..32 {
        sockets.push(server.connect(&session).await);
    }
    let started = Instant::now();
    for socket in &mut sockets {
        socket
            .send_json(json!({"type": "join", "room": "big", "since": 0}))
            .await;
    }
    // Every socket reads until its join is answered.
    let outcomes = futures_util::future::join_all(sockets.iter_mut().map(|socket| async {
        let mut bytes = 0usize;
        loop {
            let frame = tokio::time::timeout(Duration::from_secs(20), socket.ws.next())
                .await
                .expect("every join is answered")
                .unwrap()
                .unwrap();
            bytes += frame.len();
            match serde_json::from_str::<ServerMsg>(frame.to_text().unwrap()).unwrap() {
                ServerMsg::Joined { .. } => return (bytes, true),
                ServerMsg::Error {
                    code: ErrorCode::RateLimited,
                    ..
                } => return (bytes, false),
                _ => {}
            }
        }
    }))
    .await;
    let received: usize = outcomes.iter().map(|(bytes, _)| bytes).sum();
    let joined = outcomes.iter().filter(|(_, joined)| *joined).count();

    // Then the history API, in a loop, as the same user.
    let http = reqwest::Client::new();
    let mut api_bytes = 0usize;
    let mut throttled = None;
    for _ in 0..40 {
        let response = http
            .get(server.url("/api/rooms/big/messages?limit=200"))
            .bearer_auth(&session.token)
            .send()
            .await
            .unwrap();
        if response.status() == 429 {
            throttled = response
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_owned());
            break;
        }
        assert_eq!(response.status(), 200);
        api_bytes += response.bytes().await.unwrap().len();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let allowed = 2 * RATE + (RATE as f64 * elapsed) as usize + 100_000;
    println!(
        "one user, 32 sockets: {joined} joined, {received} bytes by socket and {api_bytes} \
         by the API in {elapsed:.1} s (budget {allowed}); API throttled: {throttled:?}"
    );
    assert!(
        received + api_bytes <= allowed,
        "{} > {allowed}",
        received + api_bytes
    );
    assert!(joined < 32, "the 32 full replays were not all sent");
    assert!(throttled.is_some(), "the API loop met its budget");

    // Another person is not affected.
    let other = server.sign_in("other").await;
    let response = http
        .get(server.url("/api/rooms/big/messages?limit=200"))
        .bearer_auth(&other.token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut bystander = server.connect(&other).await;
    bystander.join("big").await;
}
