//! `hearth admin …` against a real SQLite file and a real PostgreSQL
//! database, while a server uses the same store.

use common::ServerMsg;

use crate::support::{Ended, connect_at, sign_up_at, spawn_hearth, temp_dir};

/// Runs `hearth <store args> admin <args>`: its JSON lines, or its error.
async fn admin(store: &[String], args: &[&str]) -> Result<Vec<serde_json::Value>, String> {
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
