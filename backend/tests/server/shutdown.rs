use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;

use crate::support::{Ended, TestServer, connect_at, free_port, sign_in_at, temp_dir};

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

/// The real binary: SIGTERM closes connections with 1001 and exits, and no
/// token is ever written to the log, even at the most verbose level.
#[tokio::test]
async fn the_binary_exits_cleanly_on_sigterm_and_never_logs_tokens() {
    let dir = temp_dir();
    let port = free_port();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--allow-guests", "--auth-per-ip-per-minute", "1000000"])
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--static-dir")
        .arg(&dir)
        .env("RUST_LOG", "trace")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let mut up = false;
    for _ in 0..100 {
        if reqwest::get(format!("{base}/healthz")).await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(up, "server did not come up");

    let session = sign_in_at(format!("127.0.0.1:{port}"), "alice").await;
    let mut client = connect_at(format!("127.0.0.1:{port}"), &session).await;
    client.join("general").await;
    // A refused token must not be logged either.
    let _ = tokio_tungstenite::connect_async(crate::support::ws_request(
        format!("127.0.0.1:{port}"),
        "secret-looking-token",
    ))
    .await;

    let pid = child.id().unwrap() as i32;
    let started = Instant::now();
    assert_eq!(unsafe_free_kill(pid, "TERM"), 0);
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

    let mut logs = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut logs)
        .await
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut logs)
        .await
        .unwrap();
    assert!(
        logs.contains("/ws"),
        "the log is verbose enough to matter:\n{logs}"
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
