//! The account's own writes — a new display name, an invitation, taking one
//! up by joining, a draft — when the store cannot write: held by another
//! writer (SQLite's write lock, PostgreSQL's table locks past the
//! statement timeout), or a PostgreSQL server that restarts. Each is
//! refused with `500 internal` (or, for taking up an invitation, left for
//! the next join), nothing is half-written, and each works again once the
//! store does, without restarting the node.

use std::time::Duration;

use common::{RoomSummary, ServerMsg, SessionResponse, User};
use reqwest::Method;
use serde_json::json;

use crate::faults_support::OwnPostgres;
use crate::support::{TestServer, get_json};

struct People {
    carol: SessionResponse,
    bob: SessionResponse,
}

/// Carol owns the private `plans`; both are in the public `lobby`.
async fn people(server: &TestServer) -> People {
    let carol = server.sign_up("carol").await;
    let bob = server.sign_up("bob").await;
    let created = json!({"name": "plans", "visibility": "private"});
    let (status, body) = server
        .call(
            Method::POST,
            "/api/rooms",
            Some(&carol.token),
            Some(created),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    for session in [&carol, &bob] {
        server.connect(session).await.join("lobby").await;
    }
    People { carol, bob }
}

/// The three writes over HTTP, by Bob (his name, his draft) and Carol
/// (inviting him): their statuses.
async fn write_all(server: &TestServer, people: &People, name: &str, draft: &str) -> [u16; 3] {
    let rename = server.call(
        Method::PATCH,
        "/api/account",
        Some(&people.bob.token),
        Some(json!({"display_name": name})),
    );
    let invite = server.call(
        Method::POST,
        "/api/rooms/plans/members",
        Some(&people.carol.token),
        Some(json!({"username": "bob"})),
    );
    let save = server.call(
        Method::PUT,
        "/api/rooms/lobby/draft",
        Some(&people.bob.token),
        Some(json!({"text": draft})),
    );
    let (rename, invite, save) = tokio::join!(rename, invite, save);
    for (status, body) in [&rename, &invite, &save] {
        match status {
            500 => assert_eq!(body["error"], "internal", "a documented code: {body}"),
            // The session could not be checked.
            503 => assert_eq!(body["error"], "unavailable", "a documented code: {body}"),
            _ => {}
        }
    }
    [rename.0, invite.0, save.0]
}

/// What the store holds of them, read back over the API: Bob's name, his
/// invitation to `plans` (who invited), his draft in `lobby`.
async fn held(server: &TestServer, people: &People) -> (String, Option<String>, Option<String>) {
    let me: User = get_json(&server.url("/api/session"), &people.bob.token).await;
    let rooms: Vec<RoomSummary> = get_json(&server.url("/api/rooms"), &people.bob.token).await;
    let find = |name: &str| rooms.iter().find(|r| r.name == name);
    let invited = find("plans").and_then(|r| r.invited_by.as_ref().map(|u| u.id.clone()));
    let draft = find("lobby").and_then(|r| r.draft.clone());
    (me.name, invited, draft)
}

/// Bob joins `plans` on a new socket: `joined`, or why not.
async fn bob_joins_plans(server: &TestServer, people: &People) -> ServerMsg {
    // Under the name he has now (the welcome says it).
    let mut bob = people.bob.clone();
    bob.user = get_json(&server.url("/api/session"), &bob.token).await;
    let mut socket = server.connect(&bob).await;
    socket
        .send_json(json!({"type": "join", "room": "plans", "since": null}))
        .await;
    socket
        .recv_where(|m| match m {
            ServerMsg::Joined { room, .. } => room == "plans",
            ServerMsg::Error { reference, .. } => reference.as_deref() == Some("plans"),
            _ => false,
        })
        .await
}

/// While writes fail: all three refused, nothing of them stored; joining
/// works but the invitation waits for a join that can take it up. After:
/// all three work, and the next join takes the invitation up.
async fn refused_then_recovered(
    server: &TestServer,
    people: &People,
    stall: impl AsyncFn(),
    unstall: impl AsyncFn(),
) {
    let before = held(server, people).await;
    assert_eq!((before.1.as_ref(), before.2.as_ref()), (None, None));
    stall().await;
    assert_eq!(
        write_all(server, people, "Robert", "half a thought").await,
        [500; 3]
    );
    assert_eq!(held(server, people).await, before, "nothing of them stored");
    unstall().await;

    assert_eq!(
        write_all(server, people, "Robert", "half a thought").await,
        [200, 201, 204]
    );
    let invited_by = Some(people.carol.user.id.clone());
    assert_eq!(
        held(server, people).await,
        (
            "Robert".to_owned(),
            invited_by.clone(),
            Some("half a thought".to_owned())
        )
    );

    stall().await;
    let answer = bob_joins_plans(server, people).await;
    assert!(matches!(answer, ServerMsg::Joined { .. }), "{answer:?}");
    assert_eq!(
        held(server, people).await.1,
        invited_by,
        "not taken up: still shown"
    );
    unstall().await;
    let answer = bob_joins_plans(server, people).await;
    assert!(matches!(answer, ServerMsg::Joined { .. }), "{answer:?}");
    assert_eq!(
        held(server, people).await.1,
        None,
        "taken up by the next join"
    );
}

fn quick(config: &mut backend::Config) {
    crate::support::no_rate_limit(config);
    config.store_probe_ms = 100;
    config.store_timeout_ms = 1_000;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_writes_on_a_locked_sqlite_database_are_refused_whole_and_recover() {
    use sqlx::Connection;
    let dir = crate::support::temp_dir();
    let data_dir = dir.join("data");
    let server = TestServer::start_with(|c| {
        quick(c);
        c.data_dir = data_dir.clone();
    })
    .await;
    let people = people(&server).await;
    // Another process (a backup, a careless operator) holds the write lock.
    let url = format!("sqlite://{}", data_dir.join("hearth.db").display());
    let other = tokio::sync::Mutex::new(sqlx::SqliteConnection::connect(&url).await.unwrap());
    let stall = async || {
        let mut other = other.lock().await;
        sqlx::query("BEGIN IMMEDIATE")
            .execute(&mut *other)
            .await
            .unwrap();
    };
    let unstall = async || {
        let mut other = other.lock().await;
        sqlx::query("ROLLBACK").execute(&mut *other).await.unwrap();
    };
    refused_then_recovered(&server, &people, stall, unstall).await;
    drop(server);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_writes_on_postgres_are_refused_whole_through_locks_and_a_restart() {
    let mut pg = OwnPostgres::start();
    let url = pg.url();
    let server = TestServer::start_with(|c| {
        quick(c);
        c.database_url = Some(url.clone());
        c.store_timeout_ms = 1_500;
    })
    .await;
    let people = people(&server).await;
    // Someone holds the tables' locks past the statement timeout (reads
    // still go through: EXCLUSIVE blocks writers only).
    let blocker = sqlx::PgPool::connect(&url).await.unwrap();
    let held_tx = tokio::sync::Mutex::new(None);
    let stall = async || {
        let mut tx = blocker.begin().await.unwrap();
        sqlx::query("LOCK TABLE users, room_members IN EXCLUSIVE MODE")
            .execute(&mut *tx)
            .await
            .unwrap();
        *held_tx.lock().await = Some(tx);
    };
    let unstall = async || {
        let tx = held_tx.lock().await.take().unwrap();
        tx.rollback().await.unwrap();
    };
    refused_then_recovered(&server, &people, stall, unstall).await;
    blocker.close().await;

    // The server restarts under the node: refused while it is down (or
    // the session cannot even be checked: `503 unavailable`), and the
    // same node works again once it is back.
    pg.stop_server();
    for status in write_all(&server, &people, "Bobby", "x").await {
        assert!(matches!(status, 500 | 503), "{status}");
    }
    pg.start_server();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let statuses = write_all(&server, &people, "Bobby", "after the restart").await;
        // The invitation was taken up above: inviting again is `200`.
        if statuses == [200, 200, 204] {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{statuses:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (name, _, draft) = held(&server, &people).await;
    assert_eq!(
        (name.as_str(), draft.as_deref()),
        ("Bobby", Some("after the restart"))
    );
}
