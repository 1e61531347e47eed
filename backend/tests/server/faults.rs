//! The store fails underneath a running server, for real: a full disk under
//! SQLite, a PostgreSQL server that is stopped and started, one that holds a
//! lock past `statement_timeout`. Whatever happens, an acknowledged message
//! is never lost, the history API never shows an uncommitted one, `/healthz`
//! says `degraded` while writes fail and `ok` once they work, and the server
//! recovers without a restart.
//!
//! How fast a refusal comes is printed, not asserted (the deadline logic
//! itself is unit-tested in `store/health.rs`); run with `--nocapture`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{ErrorCode, ServerMsg, SessionResponse};

use crate::faults_support::{OwnPostgres, Tmpfs};
use crate::support::{Client, TestServer, get_json, no_rate_limit};

/// What the server answered to one `send`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Acked(u64),
    Refused(ErrorCode),
}

async fn send(client: &mut Client, room: &str, content: &str) -> (Outcome, Duration) {
    let started = Instant::now();
    client.say(room, content, content).await;
    let answer = client
        .recv_where(|m| match m {
            ServerMsg::Ack { client_id, .. } => client_id == content,
            ServerMsg::Error { reference, .. } => reference.as_deref() == Some(content),
            _ => false,
        })
        .await;
    let outcome = match answer {
        ServerMsg::Ack { seq, .. } => Outcome::Acked(seq),
        ServerMsg::Error { code, .. } => Outcome::Refused(code),
        _ => unreachable!(),
    };
    (outcome, started.elapsed())
}

async fn health(server: &TestServer) -> serde_json::Value {
    reqwest::get(server.url("/healthz"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn wait_for_health(server: &TestServer, status: &str) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let body = health(server).await;
        if body["status"] == status {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "healthz never said {status}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every stored message of `room`, by seq → content, read over the API.
async fn history(
    server: &TestServer,
    session: &SessionResponse,
    room: &str,
) -> BTreeMap<u64, String> {
    let url = server.url(&format!("/api/rooms/{room}/messages?limit=200"));
    let page: Vec<common::ChatMessage> = get_json(&url, &session.token).await;
    page.into_iter().map(|m| (m.seq, m.content)).collect()
}

/// The acked messages are exactly the stored ones, with seqs 1..=n.
fn assert_exactly_the_acked(
    stored: &BTreeMap<u64, String>,
    acked: &BTreeMap<u64, String>,
    when: &str,
) {
    assert_eq!(
        stored, acked,
        "{when}: stored messages differ from the acked ones"
    );
    let seqs: Vec<u64> = stored.keys().copied().collect();
    let expected: Vec<u64> = (1..=seqs.len() as u64).collect();
    assert_eq!(seqs, expected, "{when}: seqs are not gap-free");
}

fn quick_probe(config: &mut backend::Config) {
    no_rate_limit(config);
    config.store_probe_ms = 100;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_loses_no_acknowledged_message_and_recovers_by_itself() {
    // Room for the schema (its ten migrations start in the WAL) and the
    // messages before the disk is filled.
    let disk = Tmpfs::mount("2m");
    let data_dir = disk.dir.join("data");
    let server = TestServer::start_with(|c| {
        quick_probe(c);
        c.data_dir = data_dir.clone();
    })
    .await;
    let session = server.sign_in("disk").await;
    let mut client = server.connect(&session).await;
    client.join("disk").await;
    let mut acked = BTreeMap::new();
    for i in 0..10 {
        let content = format!("before-{i}");
        let (outcome, _) = send(&mut client, "disk", &content).await;
        let Outcome::Acked(seq) = outcome else {
            panic!("{content}: {outcome:?}")
        };
        acked.insert(seq, content);
    }

    disk.fill();
    let mut refused = 0;
    let mut slowest_refusal = Duration::ZERO;
    for i in 0..30 {
        let content = format!("full-{i}");
        match send(&mut client, "disk", &content).await {
            (Outcome::Acked(seq), _) => {
                acked.insert(seq, content);
            }
            (Outcome::Refused(code), took) => {
                assert_eq!(code, ErrorCode::Internal);
                refused += 1;
                slowest_refusal = slowest_refusal.max(took);
            }
        }
    }
    assert!(refused > 0, "the disk is full, yet every send was acked");
    let body = health(&server).await;
    assert_eq!(body["status"], "degraded", "{body}");
    assert!(body["reason"].as_str().unwrap().contains("store"), "{body}");
    // While it is full, nothing acked may be missing or extra, even live.
    assert_exactly_the_acked(
        &history(&server, &session, "disk").await,
        &acked,
        "disk full",
    );
    println!("disk full: {refused} of 30 sends refused, slowest refusal {slowest_refusal:?}");

    disk.free();
    // Recovery needs no restart, and no send to notice it.
    wait_for_health(&server, "ok").await;
    for i in 0..10 {
        let content = format!("after-{i}");
        let (outcome, _) = send(&mut client, "disk", &content).await;
        let Outcome::Acked(seq) = outcome else {
            panic!("{content} after the space was freed: {outcome:?}")
        };
        acked.insert(seq, content);
    }
    assert_exactly_the_acked(
        &history(&server, &session, "disk").await,
        &acked,
        "after freeing",
    );

    // Everything acked is on disk: a restart finds exactly it.
    drop(client);
    let mut server = server;
    server.server.take().unwrap().shutdown().await.unwrap();
    let server = TestServer::start_with(|c| c.data_dir = data_dir.clone()).await;
    let session = server.sign_in("reader").await;
    assert_exactly_the_acked(
        &history(&server, &session, "disk").await,
        &acked,
        "after a restart",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restarting_under_a_node_loses_nothing_and_the_node_recovers() {
    let mut pg = OwnPostgres::start();
    let url = pg.url();
    let server = TestServer::start_with(|c| {
        quick_probe(c);
        c.database_url = Some(url.clone());
        c.store_timeout_ms = 1_500;
    })
    .await;
    let session = server.sign_in("pg").await;
    let mut client = server.connect(&session).await;
    client.join("pg").await;
    let mut acked = BTreeMap::new();
    let mut next = 0;
    let mut send_one = async |client: &mut Client, acked: &mut BTreeMap<u64, String>| {
        next += 1;
        let content = format!("m-{next}");
        let (outcome, took) = send(client, "pg", &content).await;
        if let Outcome::Acked(seq) = outcome {
            acked.insert(seq, content);
        }
        (outcome, took)
    };
    for _ in 0..5 {
        assert!(matches!(
            send_one(&mut client, &mut acked).await.0,
            Outcome::Acked(_)
        ));
    }

    // 1. The server goes away (a fast shutdown terminates our connections).
    pg.stop_server();
    for _ in 0..3 {
        let (outcome, took) = send_one(&mut client, &mut acked).await;
        assert_eq!(outcome, Outcome::Refused(ErrorCode::Internal));
        println!("postgres stopped: refused after {took:?}");
    }
    wait_for_health(&server, "degraded").await;
    pg.start_server();
    wait_for_health(&server, "ok").await;
    for _ in 0..5 {
        let (outcome, _) = send_one(&mut client, &mut acked).await;
        assert!(
            matches!(outcome, Outcome::Acked(_)),
            "after the restart: {outcome:?}"
        );
    }

    // 2. The server stops answering (SIGSTOP): calls time out, fast.
    pg.pause();
    let (outcome, took) = send_one(&mut client, &mut acked).await;
    assert_eq!(outcome, Outcome::Refused(ErrorCode::Internal));
    println!("postgres paused: refused after {took:?} (the store deadline)");
    wait_for_health(&server, "degraded").await;
    pg.resume();
    wait_for_health(&server, "ok").await;
    let (outcome, _) = send_one(&mut client, &mut acked).await;
    assert!(
        matches!(outcome, Outcome::Acked(_)),
        "after SIGCONT: {outcome:?}"
    );

    // 3. Someone holds the room's row lock past statement_timeout.
    let blocker = sqlx::PgPool::connect(&url).await.unwrap();
    let mut tx = blocker.begin().await.unwrap();
    sqlx::query("SELECT last_seq FROM rooms WHERE name = 'pg' FOR UPDATE")
        .execute(&mut *tx)
        .await
        .unwrap();
    let (outcome, _) = send_one(&mut client, &mut acked).await;
    assert_eq!(outcome, Outcome::Refused(ErrorCode::Internal));
    tx.rollback().await.unwrap();
    let (outcome, _) = send_one(&mut client, &mut acked).await;
    assert!(
        matches!(outcome, Outcome::Acked(_)),
        "after the lock: {outcome:?}"
    );

    assert_exactly_the_acked(&history(&server, &session, "pg").await, &acked, "live");
    drop(client);
    let mut server = server;
    server.server.take().unwrap().shutdown().await.unwrap();
    let server = TestServer::start_with(|c| c.database_url = Some(url.clone())).await;
    let session = server.sign_in("reader").await;
    assert_exactly_the_acked(
        &history(&server, &session, "pg").await,
        &acked,
        "after a restart",
    );
}

#[tokio::test]
async fn nul_is_refused_up_front_on_both_stores() {
    let pg = OwnPostgres::start();
    let url = pg.url();
    for database_url in [None, Some(url)] {
        let server = TestServer::start_with(|c| c.database_url = database_url.clone()).await;
        let mut client = server.client("nul").await;
        client.join("nul").await;
        client.say("nul", "a\u{0}b", "c-1").await;
        match client.recv().await {
            ServerMsg::Error {
                code, reference, ..
            } => {
                assert_eq!(code, ErrorCode::InvalidContent, "{database_url:?}");
                assert_eq!(reference.as_deref(), Some("c-1"));
            }
            other => panic!("expected an error, got {other:?}"),
        }
        client.say("nul", "fine", "c-\u{0}").await;
        match client.recv().await {
            ServerMsg::Error { code, .. } => assert_eq!(code, ErrorCode::InvalidClientId),
            other => panic!("expected an error, got {other:?}"),
        }
        // The connection survives, and the store takes the next message.
        client.say("nul", "fine", "c-2").await;
        client
            .recv_where(|m| matches!(m, ServerMsg::Ack { client_id, .. } if client_id == "c-2"))
            .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_sqlite_database_fails_fast_and_recovers() {
    use sqlx::Connection;
    let dir = crate::support::temp_dir();
    let data_dir = dir.join("data");
    let server = TestServer::start_with(|c| {
        quick_probe(c);
        c.data_dir = data_dir.clone();
        c.store_timeout_ms = 1_000;
    })
    .await;
    let session = server.sign_in("locked").await;
    let mut client = server.connect(&session).await;
    client.join("locked").await;
    let mut acked = BTreeMap::new();
    let (Outcome::Acked(seq), _) = send(&mut client, "locked", "first").await else {
        panic!("the first send is acked")
    };
    acked.insert(seq, "first".to_owned());

    // Another process (a backup, a careless operator) holds the write lock.
    let url = format!("sqlite://{}", data_dir.join("hearth.db").display());
    let mut other = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut other)
        .await
        .unwrap();
    for content in ["blocked-1", "blocked-2"] {
        let (outcome, took) = send(&mut client, "locked", content).await;
        assert_eq!(outcome, Outcome::Refused(ErrorCode::Internal));
        println!("sqlite locked: refused after {took:?}");
    }
    assert_eq!(health(&server).await["status"], "degraded");
    sqlx::query("ROLLBACK").execute(&mut other).await.unwrap();
    wait_for_health(&server, "ok").await;
    let (Outcome::Acked(seq), _) = send(&mut client, "locked", "after").await else {
        panic!("the send after the lock is acked")
    };
    acked.insert(seq, "after".to_owned());
    assert_exactly_the_acked(
        &history(&server, &session, "locked").await,
        &acked,
        "after the lock",
    );
    drop(server);
    let _ = std::fs::remove_dir_all(dir);
}
