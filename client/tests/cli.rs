//! `hearth-chat`, the real binary, against the real server (in this
//! process, restarted under it): what is typed while the server is away is
//! sent once it is back, exactly once each; the session is kept for the
//! next run, readable by its owner only.

use std::process::Stdio;
use std::time::Duration;

use hearth_client::{Client, Event, Server, ServerMsg};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

const PASSWORD: &str = "correct horse battery staple";
const WAIT: Duration = Duration::from_secs(20);

fn temp_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("hearth-chat-test-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn config(dir: &std::path::Path) -> backend::Config {
    std::fs::write(dir.join("index.html"), "<!doctype html><title>test</title>").unwrap();
    let mut config = backend::Config::for_tests(dir.join("data"));
    config.static_dir = dir.to_owned();
    config
}

fn chat(dir: &std::path::Path, url: &str, args: &[&str]) -> tokio::process::Child {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_hearth-chat"))
        .args(["--server", url])
        .args(args)
        .env("HEARTH_CONFIG_DIR", dir.join("config"))
        .env_remove("HEARTH_PASSWORD")
        .env_remove("HEARTH_USER")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

/// Waits until the reader has printed a line containing `text`.
async fn printed(
    lines: &mut tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
    text: &str,
) -> Vec<String> {
    let mut seen = Vec::new();
    let found = tokio::time::timeout(WAIT, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            let hit = line.contains(text);
            seen.push(line);
            if hit {
                return;
            }
        }
        panic!("hearth-chat ended without printing {text:?}: {seen:?}");
    })
    .await;
    assert!(
        found.is_ok(),
        "hearth-chat did not print {text:?} in time: {seen:?}"
    );
    seen
}

/// Waits until Bob's client has been told of a message saying `text`.
async fn heard(events: &mut hearth_client::Events, text: &str) {
    tokio::time::timeout(WAIT, async {
        loop {
            if let Some(Event::Server(ServerMsg::Message(m))) = events.next().await
                && m.content == text
            {
                return;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("Bob never heard {text:?}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_is_typed_while_the_server_restarts_is_sent_once_and_the_session_is_kept() {
    let dir = temp_dir();
    let mut config = config(&dir);
    let node = backend::start(config.clone()).await.unwrap();
    let addr = node.local_addr();
    let url = format!("http://{addr}");
    let server = Server::new(&url).unwrap();
    let alice = server.sign_up("alice", PASSWORD, "Alice").await.unwrap();
    let bob = server.sign_up("bob", PASSWORD, "Bob").await.unwrap();
    let bob_client = Client::connect(&bob);
    let mut bob_hears = bob_client.events();
    bob_client.join("general").await.unwrap();

    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_hearth-chat"));
    child
        .args(["--server", &url, "--user", "alice", "--room", "general"])
        .env("HEARTH_CONFIG_DIR", dir.join("config"))
        .env("HEARTH_PASSWORD", PASSWORD)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true);
    let mut child = child.spawn().unwrap();
    let mut input = child.stdin.take().unwrap();
    let mut output = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    printed(&mut output, "writing to #general").await;

    input.write_all(b"one\ntwo\n").await.unwrap();
    heard(&mut bob_hears, "two").await;
    bob_client.send("general", "hi alice").await.unwrap();
    printed(&mut output, "#general Bob: hi alice").await;

    // The server goes away; Alice keeps typing.
    node.shutdown().await.unwrap();
    printed(&mut output, "not connected").await;
    input.write_all(b"three\nfour\n").await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    config.listen = addr;
    let node = backend::start(config.clone()).await.unwrap();
    heard(&mut bob_hears, "four").await;
    // End of input: it leaves once everything typed is stored.
    drop(input);
    let status = tokio::time::timeout(WAIT, child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "hearth-chat exited with {status}");

    let said: Vec<String> = alice
        .history("general", None, 50)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.content)
        .collect();
    assert_eq!(said, ["one", "two", "hi alice", "three", "four"]);

    // The session was kept, for the owner's eyes only: the next run needs
    // no password.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let kept = std::fs::metadata(dir.join("config/sessions.json")).unwrap();
        assert_eq!(kept.permissions().mode() & 0o777, 0o600);
    }
    let mut again = chat(&dir, &url, &["--room", "general"]);
    let mut input = again.stdin.take().unwrap();
    let mut output = tokio::io::BufReader::new(again.stdout.take().unwrap()).lines();
    let mut seen = printed(&mut output, "writing to #general").await;
    assert!(
        seen.iter().any(|l| l.contains("as Alice (@alice)")),
        "{seen:?}"
    );
    input.write_all(b"five\n").await.unwrap();
    drop(input);
    let status = tokio::time::timeout(WAIT, again.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success());
    heard(&mut bob_hears, "five").await;
    while let Some(line) = output.next_line().await.unwrap() {
        seen.push(line);
    }
    // The room's recent messages are shown on joining, once.
    let shown = seen.iter().filter(|l| *l == "#general Alice: four").count();
    assert_eq!(shown, 1, "{seen:?}");

    // Signed out elsewhere: the kept session is dropped, and without a
    // terminal or HEARTH_PASSWORD it says what it needs.
    alice.sign_out_everywhere().await.unwrap();
    let ended = chat(&dir, &url, &["--user", "alice"])
        .wait_with_output()
        .await
        .unwrap();
    assert!(!ended.status.success());
    let said = String::from_utf8_lossy(&ended.stdout);
    assert!(said.contains("sign in again"), "{said}");
    let why = String::from_utf8_lossy(&ended.stderr);
    assert!(why.contains("set HEARTH_PASSWORD"), "{why}");
    node.shutdown().await.unwrap();
    std::fs::remove_dir_all(dir).ok();
}
