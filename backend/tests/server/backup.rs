//! `hearth backup` on a running server, while messages flow: the copy,
//! opened by a new server, holds a gap-free prefix of the room's messages
//! that includes every message acked before the backup began.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::Path;
use std::time::Duration;

use common::ServerMsg;

use crate::support::{connect_at, get_json, sign_in_at, spawn_hearth, temp_dir};

async fn start(data_dir: &Path, static_dir: &Path) -> (tokio::process::Child, String) {
    let dirs = [
        OsStr::new("--data-dir"),
        data_dir.as_os_str(),
        OsStr::new("--static-dir"),
        static_dir.as_os_str(),
    ];
    let limits = [
        "--allow-guests",
        "--send-rate",
        "100000",
        "--send-burst",
        "100000",
    ];
    spawn_hearth(limits.iter().map(OsStr::new).chain(dirs)).await
}

#[tokio::test]
async fn a_backup_taken_while_messages_flow_restores_a_consistent_prefix() {
    let dir = temp_dir();
    let (mut server, addr) = start(&dir.join("data"), &dir).await;
    let mut alice = connect_at(&addr, &sign_in_at(&addr, "alice").await).await;
    alice.join("ops").await;

    // A writer that keeps 8 messages in flight and records every ack.
    let (backup_now, mut backup_started) = tokio::sync::oneshot::channel::<()>();
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    let writer = tokio::spawn(async move {
        let mut acked: BTreeMap<u64, String> = BTreeMap::new();
        let mut acked_before_backup = 0;
        let mut backup_now = Some(backup_now);
        let mut sent = 0;
        let mut done_rx = done_rx;
        loop {
            while sent - acked.len() < 8 {
                alice
                    .say("ops", &format!("m{sent}"), &format!("c{sent}"))
                    .await;
                sent += 1;
            }
            if let ServerMsg::Ack { seq, client_id, .. } = alice
                .recv_where(|m| matches!(m, ServerMsg::Ack { .. }))
                .await
            {
                acked.insert(seq, client_id);
            }
            if acked.len() == 100
                && let Some(go) = backup_now.take()
            {
                acked_before_backup = acked.len();
                let _ = go.send(());
            }
            if done_rx.try_recv().is_ok() {
                return (acked, acked_before_backup);
            }
        }
    });
    (&mut backup_started).await.unwrap();
    let restored_dir = dir.join("restored");
    std::fs::create_dir_all(&restored_dir).unwrap();
    let copy = restored_dir.join("hearth.db");
    let backup = || {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_hearth"))
            .arg("--data-dir")
            .arg(dir.join("data"))
            .arg("backup")
            .arg(&copy)
            .output()
    };
    let output = backup().await.unwrap();
    assert!(output.status.success(), "{output:?}");
    println!("{}", String::from_utf8_lossy(&output.stdout).trim());
    // Refuses to overwrite.
    assert!(!backup().await.unwrap().status.success());
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&copy).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the copy is private");
    }
    // Messages keep flowing after the copy, then stop.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _ = done_tx.send(());
    let (acked, acked_before_backup) = writer.await.unwrap();
    let _ = server.kill().await;

    let (_restored, addr) = start(&restored_dir, &dir).await;
    let session = sign_in_at(&addr, "reader").await;
    let mut stored: BTreeMap<u64, String> = BTreeMap::new();
    let mut before = String::new();
    loop {
        let page: Vec<common::ChatMessage> = get_json(
            &format!("http://{addr}/api/rooms/ops/messages?limit=200{before}"),
            &session.token,
        )
        .await;
        let Some(oldest) = page.iter().map(|m| m.seq).min() else {
            break;
        };
        stored.extend(page.into_iter().map(|m| (m.seq, m.client_id)));
        if oldest == 1 {
            break;
        }
        before = format!("&before={oldest}");
    }
    let n = stored.len() as u64;
    println!(
        "acked {} in all, {acked_before_backup} before the backup began; the copy holds seqs 1..={n}",
        acked.len()
    );
    assert_eq!(
        stored.keys().copied().collect::<Vec<_>>(),
        (1..=n).collect::<Vec<_>>(),
        "a gap-free prefix"
    );
    assert!(
        n as usize >= acked_before_backup,
        "every message acked before the backup is in it"
    );
    assert!(
        (n as usize) < acked.len(),
        "messages went on after it (so it was taken while they flowed)"
    );
    for (seq, client_id) in &stored {
        assert_eq!(
            acked.get(seq),
            Some(client_id),
            "seq {seq} is what was acked"
        );
    }
    // PostgreSQL has its own tool, and says so.
    let postgres = tokio::process::Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args([
            "--database-url",
            "postgres://nobody@127.0.0.1:1/none",
            "backup",
        ])
        .arg(dir.join("pg.db"))
        .output()
        .await
        .unwrap();
    assert!(!postgres.status.success());
    assert!(String::from_utf8_lossy(&postgres.stderr).contains("pg_dump"));
    // The restored server goes on from there.
    let mut reader = connect_at(&addr, &session).await;
    reader.join("ops").await;
    reader.say("ops", "after the restore", "r1").await;
    match reader
        .recv_where(|m| matches!(m, ServerMsg::Ack { .. }))
        .await
    {
        ServerMsg::Ack { seq, .. } => assert_eq!(seq, n + 1),
        _ => unreachable!(),
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// The uploaded files come with a backup: restored as a data dir, the copy
/// serves the same bytes.
#[tokio::test]
async fn a_backup_carries_the_uploaded_files() {
    let dir = temp_dir();
    let (mut server, addr) = start(&dir.join("data"), &dir).await;
    let alice = sign_in_at(&addr, "alice").await;
    connect_at(&addr, &alice).await.join("ops").await;
    let bytes: Vec<u8> = (0..50_000u32).map(|i| (i % 199) as u8).collect();
    let uploaded: common::FileInfo = reqwest::Client::new()
        .post(format!("http://{addr}/api/rooms/ops/files?name=notes.bin"))
        .bearer_auth(&alice.token)
        .body(bytes.clone())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let copy = dir.join("backup.db");
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_hearth"))
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("backup")
        .arg(&copy)
        .output()
        .await
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let _ = server.kill().await;

    let restored = dir.join("restored");
    std::fs::create_dir_all(&restored).unwrap();
    std::fs::rename(&copy, restored.join("hearth.db")).unwrap();
    std::fs::rename(dir.join("backup.db.files"), restored.join("files")).unwrap();
    let (_restored, addr) = start(&restored, &dir).await;
    let got = reqwest::Client::new()
        .get(format!("http://{addr}/api/files/{}", uploaded.id))
        .bearer_auth(&alice.token)
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), 200);
    assert_eq!(got.bytes().await.unwrap().as_ref(), bytes.as_slice());
}
