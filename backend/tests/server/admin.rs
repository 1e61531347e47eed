//! `hearth admin …` against a real SQLite file and a real PostgreSQL
//! database, while a server uses the same store.

use common::ServerMsg;

use std::time::Duration;

use common::SessionResponse;
use reqwest::Method;
use serde_json::json;

use crate::support::{
    Client, Ended, call, connect_at, sign_in_at, sign_up_at, spawn_hearth, temp_dir,
};

/// Runs `hearth <store args> admin <args>`: its JSON lines, or its error.
pub async fn admin(store: &[String], args: &[&str]) -> Result<Vec<serde_json::Value>, String> {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(store)
        .arg("admin")
        .args(args)
        .output()
        .await
        .unwrap();
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).into_owned());
    }
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect())
}

async fn exercise(store: Vec<String>) {
    let dir = temp_dir();
    let mut args = store.clone();
    args.extend(["--revocation-poll-ms".into(), "200".into()]);
    args.extend(["--static-dir".into(), dir.display().to_string()]);
    args.push("--allow-guests".into());
    let (mut server, addr) = spawn_hearth(&args).await;
    let session = sign_up_at(&addr, "dana").await;
    let mut dana = connect_at(&addr, &session).await;
    dana.join("ops").await;
    for i in 0..3 {
        dana.say("ops", &format!("line {i}"), &format!("c{i}"))
            .await;
        dana.recv_where(|m| matches!(m, ServerMsg::Ack { .. }))
            .await;
    }

    let rooms = admin(&store, &["rooms"]).await.unwrap();
    let ops = rooms
        .iter()
        .find(|r| r["name"] == "ops")
        .expect("ops is listed");
    assert_eq!(ops["last_seq"], 3);
    assert_eq!(ops["visibility"], "public");
    let found = admin(&store, &["rooms", "O"]).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["name"], "ops");
    assert!(admin(&store, &["rooms", "x"]).await.unwrap().is_empty());

    let user = admin(&store, &["user", "DANA"]).await.unwrap();
    assert_eq!(user[0]["user"]["username"], "dana");
    assert_eq!(user[0]["user"]["id"], session.user.id);
    assert!(
        admin(&store, &["user", "nobody"])
            .await
            .unwrap_err()
            .contains("no account")
    );

    let export = admin(&store, &["export", "OPS"]).await.unwrap();
    let lines: Vec<(u64, String)> = export
        .iter()
        .map(|m| {
            (
                m["seq"].as_u64().unwrap(),
                m["content"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        lines,
        [
            (1, "line 0".into()),
            (2, "line 1".into()),
            (3, "line 2".into())
        ]
    );
    assert!(
        admin(&store, &["export", "nope"])
            .await
            .unwrap_err()
            .contains("no room")
    );

    // A guest, who has no username: found by display name, and their
    // messages deleted by user id.
    let guest = sign_in_at(&addr, "Gus").await;
    let mut gus = connect_at(&addr, &guest).await;
    gus.join("lobby").await;
    gus.say("lobby", "hi from a guest", "g-1").await;
    gus.recv_where(|m| matches!(m, ServerMsg::Ack { .. })).await;

    let users = admin(&store, &["users"]).await.unwrap();
    assert_eq!(users.len(), 2);
    assert_eq!(users[0]["user"]["username"], "dana", "oldest first");
    assert_eq!(admin(&store, &["users", "Da"]).await.unwrap().len(), 1);
    let found = admin(&store, &["users", "gu"]).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["user"]["id"], guest.user.id);
    assert!(admin(&store, &["users", "zz"]).await.unwrap().is_empty());
    let deleted = admin(&store, &["delete-messages", &guest.user.id])
        .await
        .unwrap();
    assert_eq!(deleted[0]["deleted_messages"], 1);
    assert!(
        admin(&store, &["export", "lobby"])
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        admin(&store, &["delete-messages", "nobody-at-all"])
            .await
            .is_err()
    );
    drop(gus);

    publish_with_api_keys(&store, &addr, &session, &mut dana).await;
    delete_messages_and_rooms(&store, &addr, &session, &mut dana).await;

    // Signed out everywhere: the running server closes the socket.
    let revoked = admin(&store, &["revoke-sessions", "dana"]).await.unwrap();
    assert_eq!(revoked[0]["revoked_sessions"], 1);
    assert_eq!(
        dana.ended().await,
        Ended::Closed(common::close::TOKEN_INVALID)
    );
    let _ = server.kill().await;
    let _ = std::fs::remove_dir_all(dir);
}

/// `POST /api/rooms/{room}/messages` with keys made by `hearth admin
/// api-key create`: members get the message from the bot, a retry is not
/// a second message, and a key is refused outside its scope (403) and
/// once revoked (401). Dana is in `ops`, which has 3 messages.
async fn publish_with_api_keys(
    store: &[String],
    addr: &str,
    session: &SessionResponse,
    dana: &mut Client,
) {
    let made = admin(
        store,
        &["api-key", "create", "Deploy Bot", "--rooms", "OPS, alerts"],
    )
    .await
    .unwrap();
    let key = made[0]["key"].as_str().unwrap().to_owned();
    let key_id = made[0]["api_key"]["id"].as_str().unwrap().to_owned();
    assert_eq!(made[0]["api_key"]["rooms"], "alerts ops");
    let everywhere = admin(store, &["api-key", "create", "Pager", "--rooms", "*"])
        .await
        .unwrap();
    let everywhere = everywhere[0]["key"].as_str().unwrap().to_owned();
    assert!(
        admin(store, &["api-key", "create", "x", "--rooms", "not/a/room"])
            .await
            .is_err()
    );

    let url = |room: &str| format!("http://{addr}/api/rooms/{room}/messages");
    let post = |room: &str, token: Option<&str>, body: serde_json::Value| {
        let url = url(room);
        let token = token.map(str::to_owned);
        async move { call(Method::POST, &url, token.as_deref(), Some(body)).await }
    };
    let deploy = json!({"content": "deployed v2", "client_id": "deploy-42"});
    let (status, body) = post("Ops", Some(&key), deploy.clone()).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["seq"], 4);
    let heard = dana
        .recv_where(|m| matches!(m, ServerMsg::Message(_)))
        .await;
    let ServerMsg::Message(message) = heard else {
        unreachable!()
    };
    assert_eq!(message.seq, 4);
    assert_eq!(message.content, "deployed v2");
    assert_eq!(message.user.id, "bot:Deploy Bot");
    assert_eq!(message.user.name, "Deploy Bot");
    assert!(message.user.is_bot() && !message.user.is_guest());
    assert_eq!(body["id"], message.id);

    // The same client_id again: the original, not a second message.
    let (status, again) = post("ops", Some(&key), deploy).await;
    assert_eq!(
        (status, &again["seq"], &again["id"]),
        (200, &body["seq"], &body["id"])
    );
    dana.expect_silence(Duration::from_millis(300)).await;

    // Refusals, each with its code.
    let note = json!({"content": "hi", "client_id": "n1"});
    let refused = |(status, body): (u16, serde_json::Value)| (status, body["error"].clone());
    assert_eq!(
        refused(post("general", Some(&key), note.clone()).await),
        (403, json!("forbidden"))
    );
    assert_eq!(
        refused(post("ops", Some(&session.token), note.clone()).await),
        (401, json!("invalid_api_key"))
    );
    assert_eq!(
        refused(post("ops", None, note.clone()).await),
        (401, json!("missing_token"))
    );
    assert_eq!(
        refused(post("ops", Some("hk_guessed"), note.clone()).await),
        (401, json!("invalid_api_key"))
    );
    assert_eq!(
        refused(post("nowhere", Some(&everywhere), note.clone()).await),
        (404, json!("unknown_room"))
    );
    // `*` is every public room, not private ones nor direct conversations.
    let (status, _) = call(
        Method::POST,
        &format!("http://{addr}/api/rooms"),
        Some(&session.token),
        Some(json!({"name": "hush", "visibility": "private"})),
    )
    .await;
    assert_eq!(status, 201);
    assert_eq!(
        refused(post("hush", Some(&everywhere), note.clone()).await),
        (403, json!("forbidden"))
    );
    assert_eq!(
        refused(
            post(
                "ops",
                Some(&key),
                json!({"content": " ", "client_id": "n2"})
            )
            .await
        ),
        (400, json!("invalid_content"))
    );
    assert_eq!(
        refused(post("ops", Some(&key), json!({"content": "x"})).await),
        (400, json!("invalid_body"))
    );

    // Listed without the key itself; revoked, it is refused from then on.
    let keys = admin(store, &["api-key", "list"]).await.unwrap();
    assert_eq!(keys.len(), 2);
    assert!(keys.iter().all(|k| k.get("key").is_none()));
    admin(store, &["api-key", "revoke", &key_id]).await.unwrap();
    assert_eq!(
        refused(post("ops", Some(&key), note.clone()).await),
        (401, json!("invalid_api_key"))
    );
    assert!(admin(store, &["api-key", "revoke", &key_id]).await.is_err());
    let keys = admin(store, &["api-key", "list"]).await.unwrap();
    assert!(
        keys.iter()
            .any(|k| k["id"] == key_id && k["revoked_at"].is_number())
    );
    dana.expect_silence(Duration::from_millis(200)).await;
}

/// Dana's 3 messages in `ops` are deleted, then the room (while she is in
/// it): her node takes her out of it, and joining again makes a new room
/// whose seqs continue.
async fn delete_messages_and_rooms(
    store: &[String],
    addr: &str,
    session: &SessionResponse,
    dana: &mut Client,
) {
    let deleted = admin(store, &["delete-messages", "dana", "--room", "ops"])
        .await
        .unwrap();
    assert_eq!(deleted[0]["deleted_messages"], 3);
    let left: Vec<u64> = admin(store, &["export", "ops"])
        .await
        .unwrap()
        .iter()
        .map(|m| m["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(left, [4], "only the bot's message is left");
    let history = format!("http://{addr}/api/rooms/ops/messages");
    let (_, page) = call(Method::GET, &history, Some(&session.token), None).await;
    assert_eq!(page.as_array().unwrap().len(), 1);

    // A topic, which the deletion must not leave behind.
    dana.send_json(
        json!({"type": "set_topic", "room": "ops", "topic": "the secret plan", "client_id": "t1"}),
    )
    .await;
    dana.recv_where(|m| matches!(m, ServerMsg::Ack { .. }))
        .await;

    let gone = admin(store, &["delete-room", "ops"]).await.unwrap();
    assert_eq!(
        gone[0]["deleted_messages"], 2,
        "the bot's message and the topic"
    );
    assert!(admin(store, &["delete-room", "ops"]).await.is_err());
    assert!(admin(store, &["export", "ops"]).await.is_err());
    let rooms = admin(store, &["rooms"]).await.unwrap();
    assert!(rooms.iter().all(|r| r["name"] != "ops"));
    let (status, _) = call(Method::GET, &history, Some(&session.token), None).await;
    assert_eq!(status, 404);

    // Her node takes her out of it without waiting for her to send (it
    // polls the store for deleted rooms).
    let left = dana
        .recv_where(|m| matches!(m, ServerMsg::Left { .. }))
        .await;
    assert!(
        matches!(&left, ServerMsg::Left { room, reason: Some(r) } if room == "ops" && r == "removed"),
        "{left:?}"
    );
    dana.say("ops", "anyone?", "after-delete").await;
    let refused = dana
        .recv_where(|m| matches!(m, ServerMsg::Error { .. }))
        .await;
    assert!(
        matches!(
            refused,
            ServerMsg::Error {
                code: common::ErrorCode::NotJoined,
                ..
            }
        ),
        "{refused:?}"
    );
    let ServerMsg::Joined {
        last_seq, topic, ..
    } = dana.join("ops").await
    else {
        panic!("joined again")
    };
    assert_eq!(
        last_seq, 5,
        "a new room under the old name continues its seqs"
    );
    assert_eq!(topic, "", "the deleted room's topic is gone");
    dana.say("ops", "fresh start", "after-delete-2").await;
    let ack = dana
        .recv_where(|m| matches!(m, ServerMsg::Ack { .. }))
        .await;
    assert!(matches!(ack, ServerMsg::Ack { seq: 6, .. }), "{ack:?}");
}

#[tokio::test]
async fn admin_commands_work_on_sqlite() {
    let dir = temp_dir();
    exercise(vec![
        "--data-dir".into(),
        dir.join("data").display().to_string(),
    ])
    .await;
    // A data dir without a database is an error, not a new empty store.
    let missing = admin(
        &[
            "--data-dir".into(),
            dir.join("elsewhere").display().to_string(),
        ],
        &["rooms"],
    )
    .await
    .unwrap_err();
    assert!(missing.contains("no database"), "{missing}");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn admin_commands_work_on_postgres() {
    let admin_url = std::env::var("HEARTH_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let name = format!("hearth_admin_{}", uuid::Uuid::new_v4().simple());
    let pool = sqlx::PgPool::connect(&admin_url).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&pool)
        .await
        .unwrap();
    let url = format!("{}/{name}", admin_url.rsplit_once('/').unwrap().0);
    let dir = temp_dir();
    exercise(vec![
        "--database-url".into(),
        url,
        "--data-dir".into(),
        dir.join("data").display().to_string(),
    ])
    .await;
    let _ = sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .execute(&pool)
        .await;
    let _ = std::fs::remove_dir_all(dir);
}

/// An API key that floods the publish API is refused past its quota (`429`
/// with `Retry-After`), nothing refused is stored, and a member chatting in
/// the same room meanwhile is served as usual.
#[tokio::test]
async fn a_flood_through_the_publish_api_is_limited_and_members_are_unaffected() {
    let dir = temp_dir();
    let store = vec![
        "--data-dir".to_owned(),
        dir.join("data").display().to_string(),
    ];
    let mut args = store.clone();
    args.extend(["--static-dir".into(), dir.display().to_string()]);
    args.extend(["--api-per-token-per-minute".into(), "20".into()]);
    let (mut server, addr) = spawn_hearth(&args).await;
    let session = sign_up_at(&addr, "dana").await;
    let mut dana = connect_at(&addr, &session).await;
    dana.join("ops").await;
    let made = admin(&store, &["api-key", "create", "Flood", "--rooms", "ops"])
        .await
        .unwrap();
    let key = made[0]["key"].as_str().unwrap().to_owned();

    let http = reqwest::Client::new();
    let (mut stored, mut refused) = (0, 0);
    for i in 0..60 {
        let response = http
            .post(format!("http://{addr}/api/rooms/ops/messages"))
            .bearer_auth(&key)
            .json(&json!({"content": "spam", "client_id": format!("f-{i}")}))
            .send()
            .await
            .unwrap();
        match response.status().as_u16() {
            201 => stored += 1,
            429 => {
                assert!(response.headers().contains_key("retry-after"));
                refused += 1;
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert!(
        stored <= 20 && refused >= 40,
        "{stored} stored, {refused} refused"
    );

    // The bystander: her message is stored and acked, after the bot's.
    dana.say("ops", "still fine here", "d-1").await;
    let ack = dana
        .recv_where(|m| matches!(m, ServerMsg::Ack { .. }))
        .await;
    assert!(
        matches!(ack, ServerMsg::Ack { seq, .. } if seq == stored + 1),
        "{ack:?}"
    );
    let history = admin(&store, &["export", "ops"]).await.unwrap();
    assert_eq!(
        history.len() as u64,
        stored + 1,
        "nothing refused was stored"
    );
    let _ = server.kill().await;
    let _ = std::fs::remove_dir_all(dir);
}
