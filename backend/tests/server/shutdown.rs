use std::ffi::OsStr;
use std::time::{Duration, Instant};

use common::ServerMsg;

use crate::support::{
    Ended, TestServer, connect_at, sign_in_at, spawn_hearth, start_hearth, temp_dir,
};

#[tokio::test]
async fn shutdown_closes_every_websocket_with_1001() {
    let mut server = TestServer::start().await;
    let mut alice = server.client("alice").await;
    let mut bob = server.client("bob").await;
    alice.join("general").await;
    let started = Instant::now();
    let running = server.server.take().unwrap();
    let stopped = tokio::spawn(running.shutdown());
    assert_eq!(
        alice.ended().await,
        Ended::Closed(common::close::GOING_AWAY)
    );
    assert_eq!(bob.ended().await, Ended::Closed(common::close::GOING_AWAY));
    stopped.await.unwrap().unwrap();
    assert!(started.elapsed() < Duration::from_secs(10));
    // No longer accepting connections.
    assert!(reqwest::get(server.url("/healthz")).await.is_err());
}

/// The real binary: on SIGTERM `/readyz` turns 503 "draining" while the
/// node still serves (`--drain-ms`), then it closes connections with 1001
/// and exits. Its JSON logs are one object per line, with a request id on
/// each request, and no token is ever written to the log, even at the most
/// verbose level.
#[tokio::test]
async fn the_binary_drains_then_exits_on_sigterm_and_never_logs_tokens() {
    let dir = temp_dir();
    let data = dir.join("data");
    let args = [
        "--allow-guests",
        "--auth-per-ip-per-minute",
        "1000000",
        "--drain-ms",
        "1500",
        "--log-format",
        "json",
        "--data-dir",
        data.to_str().unwrap(),
        "--static-dir",
        dir.to_str().unwrap(),
    ];
    // Its output goes to a file, read at the end (a pipe nobody reads
    // could stall the server).
    let log = dir.join("hearth.log");
    let (mut child, addr) = start_hearth(args, "127.0.0.1:0", "drain", &log, "trace").await;
    let port: u16 = addr.rsplit(':').next().unwrap().parse().unwrap();
    let base = format!("http://{addr}");

    let session = sign_in_at(format!("127.0.0.1:{port}"), "alice").await;
    let mut client = connect_at(format!("127.0.0.1:{port}"), &session).await;
    client.join("general").await;
    // A refused token must not be logged either.
    let _ = tokio_tungstenite::connect_async(crate::support::ws_request(
        format!("127.0.0.1:{port}"),
        "secret-looking-token",
    ))
    .await;

    let ready = reqwest::get(format!("{base}/readyz")).await.unwrap();
    assert_eq!(ready.status(), 200);
    assert!(
        ready.headers().contains_key("x-request-id"),
        "every response carries its request id"
    );

    let pid = child.id().unwrap() as i32;
    let started = Instant::now();
    assert_eq!(unsafe_free_kill(pid, "TERM"), 0);
    // Draining: not ready, still alive, still serving this client.
    let mut draining = false;
    for _ in 0..40 {
        let ready = reqwest::get(format!("{base}/readyz")).await.unwrap();
        if ready.status() == 503 {
            let body: serde_json::Value = ready.json().await.unwrap();
            assert_eq!(body["status"], "draining");
            draining = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(draining, "/readyz never said draining");
    assert_eq!(
        reqwest::get(format!("{base}/healthz"))
            .await
            .unwrap()
            .status(),
        200
    );
    client.say("general", "still here", "c-drain").await;
    assert!(matches!(
        client
            .recv_where(|m| matches!(m, ServerMsg::Ack { .. }))
            .await,
        ServerMsg::Ack { .. }
    ));
    assert_eq!(
        client.ended().await,
        Ended::Closed(common::close::GOING_AWAY)
    );
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("exits within 10 s")
        .unwrap();
    assert!(status.success(), "{status:?}");
    assert!(started.elapsed() < Duration::from_secs(10));

    let logs = std::fs::read_to_string(&log).unwrap();
    assert!(
        logs.contains("/ws"),
        "the log is verbose enough to matter:\n{logs}"
    );
    // One JSON object per line; the upgrade request's lines name its id.
    let lines: Vec<serde_json::Value> = logs
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(
        lines.iter().any(|l| l["span"]["path"] == "/ws"
            && l["span"]["request_id"]
                .as_str()
                .is_some_and(|id| id.len() >= 32)),
        "no /ws line with a request id:\n{logs}"
    );
    // Draining is not an error: the 503s /readyz answered meanwhile are
    // not logged as such.
    let errors: Vec<_> = lines.iter().filter(|l| l["level"] == "ERROR").collect();
    assert!(
        errors.is_empty(),
        "errors logged while draining: {errors:?}"
    );
    assert!(
        !logs.contains(&session.token),
        "a token leaked into the log"
    );
    assert!(
        !logs.contains("secret-looking-token"),
        "a token leaked into the log"
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// Sends a signal with the `kill` command (the workspace forbids unsafe code).
fn unsafe_free_kill(pid: i32, signal: &str) -> i32 {
    std::process::Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .unwrap()
        .code()
        .unwrap()
}

/// `/metrics` on the real binary (a process of its own: the recorder is
/// process-wide): after a scripted exchange the counters are exact, and
/// the endpoint wants its token.
#[tokio::test]
async fn metrics_count_a_scripted_exchange_exactly() {
    let dir = temp_dir();
    let (mut child, addr) = spawn_hearth([
        OsStr::new("--allow-guests"),
        OsStr::new("--metrics-token"),
        OsStr::new("scrape-me"),
        OsStr::new("--data-dir"),
        dir.join("data").as_os_str(),
        OsStr::new("--static-dir"),
        dir.as_os_str(),
    ])
    .await;
    let base = format!("http://{addr}");
    let http = reqwest::Client::new();
    let scrape = |token: &'static str| {
        let request = http.get(format!("{base}/metrics")).bearer_auth(token);
        async move { request.send().await.unwrap() }
    };
    assert_eq!(scrape("wrong").await.status(), 401);
    assert_eq!(
        http.get(format!("{base}/metrics"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );

    // Before anything happened, every series is there, at zero.
    let first = scrape("scrape-me").await.text().await.unwrap();
    for series in [
        "hearth_connections_opened_total 0",
        "hearth_connections_open 0",
        "hearth_rooms_loaded 0",
        "hearth_messages_stored_total 0",
        r#"hearth_connections_closed_total{code="4009"} 0"#,
        r#"hearth_errors_total{code="forbidden"} 0"#,
        r#"hearth_sign_ins_total{result="rate_limited"} 0"#,
        r#"hearth_rate_limited_total{kind="replay"} 0"#,
        r#"hearth_api_published_total{result="stored"} 0"#,
    ] {
        assert!(
            first.lines().any(|line| line == series),
            "{series} in:\n{first}"
        );
    }

    let mut alice = connect_at(&addr, &sign_in_at(&addr, "alice").await).await;
    let mut bob = connect_at(&addr, &sign_in_at(&addr, "bob").await).await;
    alice.join("lobby").await;
    bob.join("lobby").await;
    for i in 0..3 {
        alice.say("lobby", &format!("m{i}"), &format!("c{i}")).await;
        alice
            .recv_where(|m| matches!(m, ServerMsg::Ack { .. }))
            .await;
    }
    // The same client_id again: acked, not stored twice.
    alice.say("lobby", "m0", "c0").await;
    alice
        .recv_where(|m| matches!(m, ServerMsg::Ack { .. }))
        .await;
    alice.send_raw("not json").await;
    alice
        .recv_where(|m| matches!(m, ServerMsg::Error { .. }))
        .await;
    for _ in 0..3 {
        bob.recv_where(|m| matches!(m, ServerMsg::Message(_))).await;
    }
    drop(alice);

    let value = |text: &str, series: &str| -> f64 {
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("no {series} in:\n{text}"))
            .trim()
            .parse()
            .unwrap()
    };
    let mut text = String::new();
    for _ in 0..100 {
        text = scrape("scrape-me").await.text().await.unwrap();
        if text.contains(r#"hearth_connections_closed_total{code="1000"} 1"#) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(value(&text, r#"hearth_sign_ins_total{result="ok"}"#), 2.0);
    assert_eq!(value(&text, "hearth_connections_opened_total"), 2.0);
    assert_eq!(
        value(&text, r#"hearth_connections_closed_total{code="1000"}"#),
        1.0
    );
    assert_eq!(value(&text, "hearth_connections_open"), 1.0);
    assert_eq!(value(&text, "hearth_joins_total"), 2.0);
    assert_eq!(value(&text, "hearth_rooms_loaded"), 1.0);
    assert_eq!(value(&text, "hearth_messages_stored_total"), 3.0);
    assert_eq!(
        value(&text, r#"hearth_errors_total{code="bad_frame"}"#),
        1.0
    );
    assert!(
        value(&text, "hearth_deliveries_total") >= 6.0,
        "3 messages to 2 members"
    );
    assert!(value(&text, "hearth_store_append_seconds_count") >= 1.0);
    let limited: Vec<&str> = text
        .lines()
        .filter(|line| line.starts_with("hearth_rate_limited_total{") && !line.ends_with(" 0"))
        .collect();
    assert!(limited.is_empty(), "nothing was limited: {limited:?}");
    let _ = child.kill().await;
    let _ = std::fs::remove_dir_all(dir);
}
