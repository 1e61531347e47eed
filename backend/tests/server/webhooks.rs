//! Outgoing webhooks, from the real `hearth` binary to a real HTTP receiver
//! on loopback that answers, fails, stalls and comes back: every message
//! arrives signed, once acknowledged, in seq order, across a `kill -9` of
//! the server; a receiver that keeps failing is paused and reported; two
//! nodes on one PostgreSQL database deliver each message once; and the
//! server's own network is refused unless allowed.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use common::ServerMsg;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::admin::admin;
use crate::support::{
    Client, Database, connect_at, sign_up_at, spawn_hearth, start_hearth, temp_dir,
};

const SECRET: &str = "s3cret-s3cret-s3cret";

/// How the receiver answers the next request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Ok,
    Fail,
    /// Never answers (the server's timeout ends the attempt).
    Stall,
}

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Seen {
    body: Value,
    key: String,
    signed: bool,
    answered: Mode,
}

#[derive(Clone)]
struct Receiver {
    addr: SocketAddr,
    mode: Arc<Mutex<Mode>>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Receiver {
    async fn start() -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let receiver = Receiver {
            addr: listener.local_addr().unwrap(),
            mode: Arc::new(Mutex::new(Mode::Ok)),
            seen: Arc::default(),
        };
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(take))
            .with_state(receiver.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        receiver
    }

    fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// The bodies it answered 2xx to, in the order it got them.
    fn delivered(&self) -> Vec<Value> {
        let seen = self.seen();
        seen.into_iter()
            .filter(|s| s.answered == Mode::Ok)
            .map(|s| s.body)
            .collect()
    }

    /// Waits (at most 30 s) until `done` holds of what it got.
    async fn wait_for(&self, what: &str, done: impl Fn(&[Seen]) -> bool) {
        for _ in 0..600 {
            if done(&self.seen()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "receiver: waited in vain for {what}; got {:#?}",
            self.seen()
        );
    }

    async fn wait_delivered(&self, count: usize) {
        self.wait_for(&format!("{count} deliveries"), |seen| {
            seen.iter().filter(|s| s.answered == Mode::Ok).count() >= count
        })
        .await;
    }
}

async fn take(State(receiver): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let mode = *receiver.mode.lock().unwrap();
    receiver.seen.lock().unwrap().push(Seen {
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        key: header("idempotency-key"),
        signed: verify(&header("hearth-signature"), &body),
        answered: mode,
    });
    match mode {
        Mode::Ok => StatusCode::NO_CONTENT,
        Mode::Fail => StatusCode::INTERNAL_SERVER_ERROR,
        Mode::Stall => std::future::pending().await,
    }
}

/// What docs/clients.md tells a receiver to do: HMAC-SHA256 of
/// "<t>.<body>" under the secret, hex, against `v1`; and a recent `t`.
fn verify(header: &str, body: &[u8]) -> bool {
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", value)) => t = value.parse::<i64>().ok(),
            Some(("v1", value)) => v1 = Some(value.to_owned()),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else {
        return false;
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    (now - t).abs() < 300 && hex == v1
}

/// Quick retries and timeouts, so the test sees several in a few seconds.
fn fast(extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "--allow-guests",
        "--webhook-poll-ms",
        "100",
        "--webhook-retry-base-ms",
        "100",
        "--webhook-retry-max-ms",
        "400",
        "--webhook-timeout-ms",
        "700",
        "--webhook-lease-ms",
        "1500",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

async fn say(client: &mut Client, room: &str, content: &str) -> u64 {
    client
        .say(room, content, &uuid::Uuid::new_v4().to_string())
        .await;
    match client
        .recv_where(|m| matches!(m, ServerMsg::Ack { .. } | ServerMsg::Error { .. }))
        .await
    {
        ServerMsg::Ack { seq, .. } => seq,
        other => panic!("{content}: {other:?}"),
    }
}

/// `hearth admin webhook create` for `rooms`: the webhook's id.
async fn create(store: &[String], url: &str, rooms: &str, extra: &[&str]) -> String {
    let mut args = vec![
        "webhook", "create", url, "--rooms", rooms, "--secret", SECRET,
    ];
    args.extend(extra);
    let out = admin(store, &args).await.unwrap();
    out[0]["webhook"]["id"].as_str().unwrap().to_owned()
}

async fn listed(store: &[String], id: &str) -> Value {
    let all = admin(store, &["webhook", "list"]).await.unwrap();
    all.into_iter()
        .find(|w| w["id"] == id)
        .expect("the webhook is listed")
}

/// Messages' contents in what was delivered, with their rooms, checking
/// each delivery's shape on the way.
fn contents(delivered: &[Value], id: &str) -> Vec<String> {
    delivered
        .iter()
        .map(|body| {
            assert_eq!(body["webhook"], id);
            assert_eq!(body["room"], body["message"]["room"]);
            assert_eq!(body["seq"], body["message"]["seq"]);
            format!(
                "{}:{}",
                body["room"].as_str().unwrap(),
                body["message"]["content"].as_str().unwrap()
            )
        })
        .collect()
}

#[tokio::test]
async fn webhooks_deliver_signed_in_order_once_through_failures_stalls_and_a_kill() {
    let receiver = Receiver::start().await;
    let dir = temp_dir();
    let store = vec![
        "--data-dir".to_owned(),
        dir.join("data").display().to_string(),
    ];
    let mut args = store.clone();
    args.extend(fast(&["--webhook-allow-private", "--static-dir"]));
    args.push(dir.display().to_string());
    let node = format!("webhooks-{}", uuid::Uuid::new_v4().simple());
    let log = dir.join("hearth.log");
    eprintln!("hearth output in {}", log.display());
    let (mut server, addr) = start_hearth(&args, "127.0.0.1:0", &node, &log, "info").await;

    let session = sign_up_at(&addr, "dana").await;
    let mut dana = connect_at(&addr, &session).await;
    dana.join("ops").await;
    dana.join("random").await;
    say(&mut dana, "ops", "before the webhook").await;
    let id = create(&store, &receiver.url(), "ops", &["--allow-private"]).await;

    // Delivered as they come, each signed, with a key of its own; the
    // other room and what came before the webhook are not.
    for i in 0..5 {
        say(&mut dana, "ops", &format!("m{i}")).await;
        say(&mut dana, "random", &format!("elsewhere {i}")).await;
    }
    receiver.wait_delivered(5).await;
    let first = receiver.delivered();
    assert_eq!(
        contents(&first, &id),
        ["ops:m0", "ops:m1", "ops:m2", "ops:m3", "ops:m4"]
    );
    assert_eq!(first[0]["event"], "message");
    assert_eq!(first[0]["message"]["user"]["username"], "dana");
    assert!(
        receiver.seen().iter().all(|s| s.signed),
        "every delivery is signed"
    );
    let key = &receiver.seen()[0].key;
    assert_eq!(
        key,
        &format!("{id}/{}", first[0]["message"]["id"].as_str().unwrap())
    );

    // The receiver fails: retried with backoff, and reported.
    receiver.set(Mode::Fail);
    for i in 5..10 {
        say(&mut dana, "ops", &format!("m{i}")).await;
    }
    receiver
        .wait_for("three failed attempts", |seen| {
            seen.iter().filter(|s| s.answered == Mode::Fail).count() >= 3
        })
        .await;
    let failing = listed(&store, &id).await;
    assert_eq!(failing["status"], "failing", "{failing}");
    assert!(
        failing["last_error"].as_str().unwrap().contains("500"),
        "{failing}"
    );
    assert_eq!(failing["pending"], 5, "{failing}");
    // Every retry is of the first undelivered message: nothing overtakes it.
    for attempt in receiver.seen().iter().filter(|s| s.answered == Mode::Fail) {
        assert_eq!(attempt.body["message"]["content"], "m5");
    }

    // Then it stalls, and the server is killed while a request hangs.
    receiver.set(Mode::Stall);
    for i in 10..15 {
        say(&mut dana, "ops", &format!("m{i}")).await;
    }
    receiver
        .wait_for("a stalled attempt", |seen| {
            seen.iter().any(|s| s.answered == Mode::Stall)
        })
        .await;
    server.kill().await.unwrap();
    drop(dana);

    // It comes back, and so does the server: everything arrives, in order.
    receiver.set(Mode::Ok);
    let (mut server, addr) = start_hearth(&args, &addr, &node, &log, "info").await;
    let mut dana = connect_at(&addr, &session).await;
    dana.join("ops").await;
    say(&mut dana, "ops", "m15").await;
    receiver.wait_delivered(16).await;
    let all = receiver.delivered();
    let expected: Vec<String> = (0..16).map(|i| format!("ops:m{i}")).collect();
    assert_eq!(contents(&all, &id), expected, "once each, in order");
    let keys: std::collections::HashSet<_> = receiver
        .seen()
        .into_iter()
        .filter(|s| s.answered == Mode::Ok)
        .map(|s| s.key)
        .collect();
    assert_eq!(keys.len(), 16, "a key of its own per message");
    assert!(receiver.seen().iter().all(|s| s.signed));
    let healthy = listed(&store, &id).await;
    assert_eq!(healthy["status"], "delivering", "{healthy}");
    assert_eq!(healthy["failures"], 0, "{healthy}");

    // Nothing more, and a deleted webhook delivers nothing.
    let deleted = admin(&store, &["webhook", "delete", &id]).await.unwrap();
    assert_eq!(deleted[0]["deleted"], id);
    say(&mut dana, "ops", "after the webhook").await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let after: Vec<_> = receiver.delivered().split_off(16);
    assert!(after.is_empty(), "{after:#?}");
    server.kill().await.unwrap();
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_webhook_with_changes_gets_edits_and_reactions_in_the_same_order() {
    let receiver = Receiver::start().await;
    let dir = temp_dir();
    let store = vec![
        "--data-dir".to_owned(),
        dir.join("data").display().to_string(),
    ];
    let mut args = store.clone();
    args.extend(fast(&["--webhook-allow-private", "--static-dir"]));
    args.push(dir.display().to_string());
    let (mut server, addr) = spawn_hearth(&args).await;
    let session = sign_up_at(&addr, "erin").await;
    let mut erin = connect_at(&addr, &session).await;
    erin.join("plans").await;
    let id = create(
        &store,
        &receiver.url(),
        "plans",
        &["--allow-private", "--changes"],
    )
    .await;
    let seq = say(&mut erin, "plans", "Meet at 6").await;
    erin.send_json(
        json!({"type":"edit","room":"plans","target":seq,"content":"Meet at 7","client_id":"e1"}),
    )
    .await;
    erin.send_json(
        json!({"type":"react","room":"plans","target":seq,"emoji":"👍","on":true,"client_id":"e2"}),
    )
    .await;
    receiver.wait_delivered(3).await;
    let all = receiver.delivered();
    let events: Vec<_> = all.iter().map(|b| b["event"].clone()).collect();
    assert_eq!(
        events,
        [json!("message"), json!("edit"), json!("react")],
        "{all:#?}"
    );
    let seqs: Vec<u64> = all.iter().map(|b| b["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    assert_eq!(all[1]["message"]["target"], seq);
    assert_eq!(all[0]["webhook"], id);
    server.kill().await.unwrap();
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_receiver_that_keeps_failing_is_paused_reported_and_resumed() {
    let receiver = Receiver::start().await;
    receiver.set(Mode::Fail);
    let dir = temp_dir();
    let store = vec![
        "--data-dir".to_owned(),
        dir.join("data").display().to_string(),
    ];
    let mut args = store.clone();
    args.extend(fast(&[
        "--webhook-allow-private",
        "--webhook-pause-after-ms",
        "1000",
        "--metrics-token",
        "metrics-secret",
        "--static-dir",
    ]));
    args.push(dir.display().to_string());
    let (mut server, addr) = spawn_hearth(&args).await;
    let session = sign_up_at(&addr, "finn").await;
    let mut finn = connect_at(&addr, &session).await;
    finn.join("alerts").await;
    let id = create(&store, &receiver.url(), "alerts", &["--allow-private"]).await;
    say(&mut finn, "alerts", "disk full").await;

    let mut paused = Value::Null;
    for _ in 0..100 {
        paused = listed(&store, &id).await;
        if paused["status"] == "paused" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(paused["status"], "paused", "{paused}");
    assert!(paused["failures"].as_u64().unwrap() >= 2, "{paused}");
    assert_eq!(paused["pending"], 1, "{paused}");
    // Reported in /metrics from the coordinator's next poll.
    let mut metrics = String::new();
    for _ in 0..50 {
        metrics = reqwest::Client::new()
            .get(format!("http://{addr}/metrics"))
            .bearer_auth("metrics-secret")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if metrics
            .lines()
            .any(|line| line == "hearth_webhooks_paused 1")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        metrics
            .lines()
            .any(|line| line == "hearth_webhooks_paused 1"),
        "{metrics}"
    );
    assert!(metrics.contains("hearth_webhook_deliveries_total{result=\"failed\"}"));

    // Paused: no more attempts, however long.
    let attempts = receiver.seen().len();
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(
        receiver.seen().len(),
        attempts,
        "a paused webhook stays quiet"
    );

    // Resumed once the receiver is back: what waited arrives.
    receiver.set(Mode::Ok);
    let resumed = admin(&store, &["webhook", "resume", &id]).await.unwrap();
    assert_eq!(resumed[0]["was_paused"], true);
    receiver.wait_delivered(1).await;
    assert_eq!(contents(&receiver.delivered(), &id), ["alerts:disk full"]);
    server.kill().await.unwrap();
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn webhooks_refuse_the_servers_own_network_unless_allowed() {
    let receiver = Receiver::start().await;
    let dir = temp_dir();
    let store = vec![
        "--data-dir".to_owned(),
        dir.join("data").display().to_string(),
    ];
    let mut args = store.clone();
    // No --webhook-allow-private.
    args.extend(fast(&["--static-dir"]));
    args.push(dir.display().to_string());
    let (mut server, addr) = spawn_hearth(&args).await;
    let session = sign_up_at(&addr, "gail").await;
    let mut gail = connect_at(&addr, &session).await;
    gail.join("ops").await;

    for url in [
        receiver.url(),
        format!("http://localhost:{}/hook", receiver.addr.port()),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        "http://[::1]/hook".to_owned(),
    ] {
        let args = [
            "webhook", "create", &url, "--rooms", "ops", "--secret", SECRET,
        ];
        let refused = admin(&store, &args).await.unwrap_err();
        assert!(refused.contains("own network"), "{url}: {refused}");
    }
    let refused = admin(
        &store,
        &["webhook", "create", "file:///etc/passwd", "--rooms", "ops"],
    )
    .await
    .unwrap_err();
    assert!(refused.contains("only http and https"), "{refused}");

    // Allowed by the operator, but not by the server: never connected to,
    // by address or by a name that resolves to loopback.
    let by_address = create(&store, &receiver.url(), "ops", &["--allow-private"]).await;
    let name = format!("http://localhost:{}/hook", receiver.addr.port());
    let by_name = create(&store, &name, "ops", &["--allow-private"]).await;
    say(&mut gail, "ops", "secret plans").await;
    for id in [&by_address, &by_name] {
        let mut hook = Value::Null;
        for _ in 0..100 {
            hook = listed(&store, id).await;
            if hook["failures"].as_u64().unwrap_or(0) > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let why = hook["last_error"].as_str().unwrap_or_default();
        assert!(why.contains("loopback"), "{hook}");
        assert_eq!(hook["status"], "failing");
    }
    assert!(receiver.seen().is_empty(), "{:?}", receiver.seen());
    server.kill().await.unwrap();
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn two_nodes_on_one_database_deliver_each_message_once_and_take_over() {
    let receiver = Receiver::start().await;
    let database = Database::create().await;
    let dir = temp_dir();
    let store = vec![
        "--database-url".to_owned(),
        database.url(),
        "--data-dir".to_owned(),
        dir.join("data").display().to_string(),
    ];
    let mut args = store.clone();
    args.extend(fast(&["--webhook-allow-private", "--static-dir"]));
    args.push(dir.display().to_string());
    let (mut one, one_addr) = spawn_hearth(&args).await;
    let (mut two, two_addr) = spawn_hearth(&args).await;
    let session = sign_up_at(&one_addr, "hana").await;
    let mut on_one = connect_at(&one_addr, &session).await;
    let mut on_two = connect_at(&two_addr, &session).await;
    for room in ["alpha", "beta"] {
        on_one.join(room).await;
        on_two.join(room).await;
    }
    let id = create(&store, &receiver.url(), "alpha,beta", &["--allow-private"]).await;
    for i in 0..10 {
        say(&mut on_one, "alpha", &format!("one {i}")).await;
        say(&mut on_two, "beta", &format!("two {i}")).await;
    }
    receiver.wait_delivered(20).await;
    // Both nodes poll; only the lease holder delivers.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.seen().len(), 20, "each once");

    // Whichever held the lease, with node one dead node two delivers.
    one.kill().await.unwrap();
    for i in 10..15 {
        say(&mut on_two, "alpha", &format!("two {i}")).await;
    }
    receiver.wait_delivered(25).await;
    let all = contents(&receiver.delivered(), &id);
    for room in ["alpha", "beta"] {
        let mine: Vec<_> = all.iter().filter(|c| c.starts_with(room)).collect();
        let mut sorted = mine.clone();
        sorted.sort_by_key(|c| c.rsplit(' ').next().unwrap().parse::<u32>().unwrap());
        sorted.dedup();
        assert_eq!(mine, sorted, "room {room}: in order, once each");
    }
    assert_eq!(all.len(), 25);
    two.kill().await.unwrap();
    database.drop_now().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn the_receiver_in_docs_clients_md_takes_real_deliveries_and_refuses_forged_ones() {
    use tokio::io::AsyncBufReadExt;
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/clients.md"))
        .unwrap();
    let code = doc
        .split("<!-- receiver.py -->\n```python\n")
        .nth(1)
        .and_then(|rest| rest.split("\n```").next())
        .expect("docs/clients.md has the receiver");
    let dir = temp_dir();
    std::fs::write(dir.join("receiver.py"), code).unwrap();
    let port = crate::support::unused_port();
    let mut python = tokio::process::Command::new("python3")
        .arg(dir.join("receiver.py"))
        .arg(port.to_string())
        .env("HEARTH_WEBHOOK_SECRET", SECRET)
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("python3 runs");
    let mut lines = tokio::io::BufReader::new(python.stdout.take().unwrap()).lines();
    let next_line = async |lines: &mut tokio::io::Lines<_>| {
        tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .expect("the receiver printed a line")
            .unwrap()
            .expect("the receiver is running")
    };
    assert_eq!(next_line(&mut lines).await, "listening");

    let store = vec![
        "--data-dir".to_owned(),
        dir.join("data").display().to_string(),
    ];
    let mut args = store.clone();
    args.extend(fast(&["--webhook-allow-private", "--static-dir"]));
    args.push(dir.display().to_string());
    let (mut server, addr) = spawn_hearth(&args).await;
    let session = sign_up_at(&addr, "ivan").await;
    let mut ivan = connect_at(&addr, &session).await;
    ivan.join("ops").await;
    let url = format!("http://127.0.0.1:{port}/");
    create(&store, &url, "ops", &["--allow-private"]).await;
    let seq = say(&mut ivan, "ops", "deploy done").await;
    let line = next_line(&mut lines).await;
    assert!(line.starts_with(&format!("message #ops {seq} ")), "{line}");
    assert!(line.ends_with(": deploy done"), "{line}");

    // A delivery not signed with the secret is refused.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let forged = reqwest::Client::new()
        .post(&url)
        .header("hearth-signature", format!("t={now},v1={}", "0".repeat(64)))
        .header("idempotency-key", "forged")
        .body(r#"{"event":"message"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 401);
    server.kill().await.unwrap();
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_receiver_that_is_down_costs_no_memory_per_waiting_message() {
    let receiver = Receiver::start().await;
    receiver.set(Mode::Fail);
    let dir = temp_dir();
    let store = vec![
        "--data-dir".to_owned(),
        dir.join("data").display().to_string(),
    ];
    let mut args = store.clone();
    args.extend(fast(&[
        "--webhook-allow-private",
        "--api-per-ip-per-minute",
        "100000000",
        "--api-per-token-per-minute",
        "100000000",
        "--static-dir",
    ]));
    args.push(dir.display().to_string());
    let (mut server, addr) = spawn_hearth(&args).await;
    let pid = server.id().unwrap();
    let session = sign_up_at(&addr, "kim").await;
    let mut kim = connect_at(&addr, &session).await;
    kim.join("bulk").await;
    drop(kim);
    let made = admin(&store, &["api-key", "create", "Bulk", "--rooms", "bulk"])
        .await
        .unwrap();
    let key = made[0]["key"].as_str().unwrap().to_owned();
    create(&store, &receiver.url(), "bulk", &["--allow-private"]).await;
    let http = reqwest::Client::new();
    let post = |i: usize| {
        let (http, key, addr) = (http.clone(), key.clone(), addr.clone());
        async move {
            // 4 000 bytes, the most a message may hold.
            let content = format!("{i:06} {}", "x".repeat(3_993));
            let answer = http
                .post(format!("http://{addr}/api/rooms/bulk/messages"))
                .bearer_auth(key)
                .json(&json!({"content": content, "client_id": format!("b{i}")}))
                .send()
                .await
                .unwrap();
            assert!(answer.status().is_success(), "{}", answer.status());
        }
    };
    post(0).await;
    receiver
        .wait_for("a failed attempt", |seen| !seen.is_empty())
        .await;
    let rss_anon_kib = || {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("RssAnon:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap()
    };
    let before = rss_anon_kib();
    // 16 MB of messages wait for the receiver: held in memory, they would
    // be twice that with their JSON.
    use futures_util::StreamExt;
    futures_util::stream::iter(1..4_000)
        .map(post)
        .buffer_unordered(16)
        .collect::<Vec<()>>()
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let grown_kib = rss_anon_kib().saturating_sub(before);
    eprintln!("RSS (anonymous) grew {grown_kib} KiB while 4 000 messages waited");
    // SQLite's page caches (4 connections × 2 MiB) and the allocator's
    // slack, not the messages.
    assert!(grown_kib < 12 * 1024, "grew {grown_kib} KiB");

    // Then it comes back: all of them, in order.
    receiver.set(Mode::Ok);
    let back = std::time::Instant::now();
    for _ in 0..120 {
        if receiver.delivered().len() >= 4_000 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    eprintln!("4 000 waiting messages delivered in {:?}", back.elapsed());
    // In the room's order (posted 16 at a time, stored in any order).
    let delivered = receiver.delivered();
    let seqs: Vec<u64> = delivered
        .iter()
        .map(|b| b["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs.len(), 4_000, "all of them");
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "once each, in seq order"
    );
    let mut numbers: Vec<usize> = delivered
        .iter()
        .map(|b| {
            b["message"]["content"].as_str().unwrap()[..6]
                .parse()
                .unwrap()
        })
        .collect();
    numbers.sort_unstable();
    assert!(numbers.iter().copied().eq(0..4_000), "every message once");
    server.kill().await.unwrap();
    let _ = std::fs::remove_dir_all(dir);
}
