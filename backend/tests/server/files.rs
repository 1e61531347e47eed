//! Files: the file store's two kinds under one conformance test, and the
//! upload and download API against the real server — what a file is comes
//! from its bytes, private rooms' files are their members' only, and every
//! limit refuses with its code and stores nothing.

use std::path::Path;

use backend::store::{Blobs, DiskBlobs, PgBlobs};
use common::{FileInfo, SessionResponse};
use futures_util::StreamExt;
use reqwest::Method;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::support::{Database, TestServer, temp_dir};

fn sha(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

async fn read_all(blobs: &dyn Blobs, sha256: &str) -> Option<Vec<u8>> {
    let mut stream = blobs.get(sha256).await.unwrap()?;
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk.unwrap());
    }
    Some(out)
}

/// Keeps, reads back in order (across chunks), keeps the same bytes once,
/// forgets, and never takes a name that is not a hash.
async fn a_file_store_keeps_bytes_by_content(blobs: &dyn Blobs, scratch: &Path) {
    // Larger than one PostgreSQL chunk, and not a multiple of it.
    let big: Vec<u8> = (0..700_000u32).map(|i| (i % 251) as u8).collect();
    let small = b"hello".to_vec();
    for bytes in [&big, &small, &Vec::new()] {
        let temp = scratch.join(uuid::Uuid::new_v4().to_string());
        std::fs::write(&temp, bytes).unwrap();
        let hash = sha(bytes);
        blobs.put(&hash, &temp).await.unwrap();
        assert!(!temp.exists(), "the temp file is taken");
        assert_eq!(read_all(blobs, &hash).await.as_ref(), Some(bytes));
        // The same bytes again: kept once, still readable.
        let again = scratch.join(uuid::Uuid::new_v4().to_string());
        std::fs::write(&again, bytes).unwrap();
        blobs.put(&hash, &again).await.unwrap();
        assert!(!again.exists());
        assert_eq!(read_all(blobs, &hash).await.as_ref(), Some(bytes));
    }
    // Bytes stored again are renewed: a sweep that looked before that
    // leaves them (see `Blobs::delete`).
    let hash = sha(&small);
    let now = backend::store::now_millis;
    assert!(
        blobs
            .stored_before(now() + 1)
            .await
            .unwrap()
            .contains(&hash)
    );
    let before_renewal = now();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let again = scratch.join(uuid::Uuid::new_v4().to_string());
    std::fs::write(&again, &small).unwrap();
    blobs.put(&hash, &again).await.unwrap();
    assert!(
        !blobs
            .stored_before(before_renewal)
            .await
            .unwrap()
            .contains(&hash)
    );
    assert!(
        !blobs.delete(&hash, before_renewal).await.unwrap(),
        "renewed"
    );
    assert!(read_all(blobs, &hash).await.is_some());
    assert!(blobs.delete(&hash, now() + 1).await.unwrap());
    assert_eq!(read_all(blobs, &hash).await, None);
    assert!(!blobs.delete(&hash, now() + 1).await.unwrap());
    assert!(!blobs.stored_before(i64::MAX).await.unwrap().contains(&hash));
    assert!(blobs.get("../../etc/passwd").await.is_err());
    assert!(blobs.delete("AB", 0).await.is_err());
}

#[tokio::test]
async fn the_data_dir_file_store_keeps_bytes_by_content() {
    let dir = temp_dir();
    let blobs = DiskBlobs::open(dir.join("files")).unwrap();
    a_file_store_keeps_bytes_by_content(&blobs, &dir).await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn the_postgres_file_store_keeps_bytes_by_content() {
    let db = Database::create().await;
    // The schema (file_chunks) comes with the store's migrations.
    let _store = backend::store::open(Some(&db.url()), Path::new("."), Default::default())
        .await
        .unwrap();
    let blobs = PgBlobs::connect(&db.url()).await.unwrap();
    let dir = temp_dir();
    a_file_store_keeps_bytes_by_content(&blobs, &dir).await;
    drop(blobs);
    let _ = std::fs::remove_dir_all(dir);
    db.drop_now().await;
}

/// A PNG of `width` × `height` as far as anyone reading its header can tell.
pub fn png(width: u32, height: u32) -> Vec<u8> {
    let mut bytes = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
    bytes.extend_from_slice(&width.to_be_bytes());
    bytes.extend_from_slice(&height.to_be_bytes());
    bytes.extend_from_slice(&[8, 6, 0, 0, 0, 0, 0, 0, 0]);
    bytes.extend_from_slice(&[0; 64]);
    bytes
}

pub async fn upload(
    server: &TestServer,
    who: &SessionResponse,
    room: &str,
    name: &str,
    bytes: Vec<u8>,
) -> reqwest::Response {
    reqwest::Client::new()
        .post(server.url(&format!("/api/rooms/{room}/files?name={name}")))
        .bearer_auth(&who.token)
        .header("content-type", "text/plain")
        .body(bytes)
        .send()
        .await
        .unwrap()
}

pub async fn download(server: &TestServer, who: &SessionResponse, id: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(server.url(&format!("/api/files/{id}")))
        .bearer_auth(&who.token)
        .send()
        .await
        .unwrap()
}

/// Files kept in the data dir's store, and left in its uploads dir.
pub fn kept(server: &TestServer) -> (usize, usize) {
    let count = |dir: &Path| -> usize {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return 0;
        };
        entries
            .map(|e| {
                let path = e.unwrap().path();
                if path.is_dir() { count_files(&path) } else { 1 }
            })
            .sum()
    };
    fn count_files(dir: &Path) -> usize {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| {
                let path = e.unwrap().path();
                if path.is_dir() { count_files(&path) } else { 1 }
            })
            .sum()
    }
    let data = server.dir.join("data");
    (count(&data.join("files")), count(&data.join("uploads")))
}

#[tokio::test]
async fn an_upload_is_what_its_bytes_say_and_its_rooms_members_only() {
    let server = TestServer::start().await;
    let alice = server.sign_up("alice").await;
    let bob = server.sign_up("bob").await;
    let eve = server.sign_up("eve").await;
    let created = json!({"name": "plans", "visibility": "private"});
    let (status, body) = server
        .call(
            Method::POST,
            "/api/rooms",
            Some(&alice.token),
            Some(created),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = server
        .call(
            Method::POST,
            "/api/rooms/plans/members",
            Some(&alice.token),
            Some(json!({"username": "bob"})),
        )
        .await;
    assert_eq!(status, 201, "{body}");

    // An image: its type from its bytes (the client said text/plain), its
    // size from its header.
    let image = png(640, 480);
    let response = upload(&server, &alice, "plans", "../holiday.png", image.clone()).await;
    assert_eq!(response.status(), 201);
    let file: FileInfo = response.json().await.unwrap();
    assert_eq!(
        (file.name.as_str(), file.size, file.content_type.as_str()),
        ("holiday.png", image.len() as u64, "image/png")
    );
    assert_eq!((file.width, file.height), (Some(640), Some(480)));

    // A member reads it, inline (a raster image), never sniffed.
    let got = download(&server, &bob, &file.id).await;
    assert_eq!(got.status(), 200);
    let headers = got.headers().clone();
    assert_eq!(headers["content-type"], "image/png");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert!(
        headers["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("inline;")
    );
    assert!(
        headers["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("sandbox")
    );
    assert_eq!(got.bytes().await.unwrap().as_ref(), image.as_slice());

    // A stranger can neither read it (the same answer as no such file) nor
    // upload to the room.
    assert_eq!(download(&server, &eve, &file.id).await.status(), 404);
    assert_eq!(download(&server, &eve, "no-such-file").await.status(), 404);
    assert_eq!(
        upload(&server, &eve, "plans", "x.txt", b"x".to_vec())
            .await
            .status(),
        403
    );

    // HTML is never shown inline, whatever it is called.
    let page = b"<!doctype html><script>alert(1)</script>".to_vec();
    let response = upload(&server, &bob, "plans", "cat.png", page).await;
    assert_eq!(response.status(), 201);
    let html: FileInfo = response.json().await.unwrap();
    assert_eq!(
        html.content_type, "text/html",
        "sniffed, not taken from the name"
    );
    assert!(html.width.is_none());
    let got = download(&server, &alice, &html.id).await;
    assert!(
        got.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment;")
    );
    assert_eq!(
        got.headers()["content-type"],
        "application/octet-stream",
        "never as HTML"
    );

    // The same bytes twice are kept once; nothing is left in uploads/.
    let response = upload(&server, &bob, "plans", "again.png", image).await;
    assert_eq!(response.status(), 201);
    assert_eq!(kept(&server), (2, 0));
}

#[tokio::test]
async fn every_upload_limit_refuses_with_its_code_and_stores_nothing() {
    let server = TestServer::start_with(|c| {
        c.max_upload_bytes = 10_000;
        c.upload_quota_bytes = 25_000;
        c.uploads_per_minute = 6;
    })
    .await;
    let alice = server.sign_up("alice").await;
    server.connect(&alice).await.join("lobby").await;
    let code = async |response: reqwest::Response| -> (u16, String) {
        let status = response.status().as_u16();
        let body: serde_json::Value = response.json().await.unwrap();
        (
            status,
            body["error"].as_str().unwrap_or_default().to_owned(),
        )
    };

    // Too large: said up front, or found while streaming (chunked, no
    // Content-Length).
    let response = upload(&server, &alice, "lobby", "big", vec![1; 10_001]).await;
    assert_eq!(code(response).await, (413, "too_large".to_owned()));
    let chunks = futures_util::stream::iter(
        (0..11).map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from(vec![2u8; 1_000]))),
    );
    let response = reqwest::Client::new()
        .post(server.url("/api/rooms/lobby/files?name=streamed"))
        .bearer_auth(&alice.token)
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_eq!(code(response).await, (413, "too_large".to_owned()));
    assert_eq!(kept(&server), (0, 0), "nothing of them is kept");

    // The quota: two files of 10 000 fit in 25 000, a third does not.
    for n in 0..2u8 {
        let response = upload(&server, &alice, "lobby", "f", vec![n + 10; 10_000]).await;
        assert_eq!(response.status(), 201);
    }
    let response = upload(&server, &alice, "lobby", "f", vec![9; 6_000]).await;
    assert_eq!(code(response).await, (413, "quota_exceeded".to_owned()));
    assert_eq!(kept(&server), (2, 0));

    // The rate: six a minute (those refused above counted too).
    let response = upload(&server, &alice, "lobby", "f", vec![7; 10]).await;
    assert_eq!(response.status(), 201);
    let response = upload(&server, &alice, "lobby", "f", vec![8; 10]).await;
    assert_eq!(response.status(), 429);
    assert!(response.headers().contains_key("retry-after"));
    // Another person uploads meanwhile.
    let bob = server.sign_up("bob").await;
    assert_eq!(
        upload(&server, &bob, "lobby", "f", vec![3; 100])
            .await
            .status(),
        201
    );
}

#[tokio::test]
async fn files_on_postgres_are_shared_by_every_node() {
    let db = Database::create().await;
    let url = db.url();
    let one = TestServer::start_with(|c| c.database_url = Some(url.clone())).await;
    let two = TestServer::start_with(|c| c.database_url = Some(url.clone())).await;
    let alice = one.sign_up("alice").await;
    one.connect(&alice).await.join("lobby").await;
    let image = png(2, 3);
    let response = upload(&one, &alice, "lobby", "tiny.png", image.clone()).await;
    let status = response.status();
    let body = response.text().await.unwrap();
    assert_eq!(status, 201, "{body}");
    let file: FileInfo = serde_json::from_str(&body).unwrap();
    // Read through the other node: the bytes are in the database, not on
    // the first node's disk.
    let got = download(&two, &alice, &file.id).await;
    assert_eq!(got.status(), 200);
    assert_eq!(got.bytes().await.unwrap().as_ref(), image.as_slice());
    assert_eq!(kept(&one), (0, 0));
    drop((one, two));
    db.drop_now().await;
}

/// An upload that starts and then sends nothing (slowloris, or a dead
/// link) is given up after `--upload-idle-ms` with `408`, leaving nothing
/// behind; someone else uploads meanwhile.
#[tokio::test]
async fn a_stalled_upload_is_given_up_and_leaves_nothing() {
    let server = TestServer::start_with(|c| c.upload_idle_ms = 300).await;
    let alice = server.sign_up("alice").await;
    let bob = server.sign_up("bob").await;
    server.connect(&alice).await.join("lobby").await;
    // Half a file, then silence (the sender stays connected).
    let half = futures_util::stream::iter([Ok::<_, std::io::Error>(bytes::Bytes::from(vec![
        1u8;
        4_096
    ]))])
    .chain(futures_util::stream::pending());
    let stalled = reqwest::Client::new()
        .post(server.url("/api/rooms/lobby/files?name=slow"))
        .bearer_auth(&alice.token)
        .body(reqwest::Body::wrap_stream(half))
        .send();
    let bystander = async {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        upload(&server, &bob, "lobby", "quick", vec![2; 100])
            .await
            .status()
    };
    let (stalled, bystander) = tokio::join!(stalled, bystander);
    assert_eq!(bystander, 201, "another upload goes through meanwhile");
    let response = stalled.unwrap();
    assert_eq!(response.status(), 408);
    assert_eq!(
        kept(&server),
        (1, 0),
        "only the bystander's file, no temp file"
    );
}

/// The disk fills up under an upload: refused with `500 internal`, its
/// partial temp file gone, the files already kept intact; once there is
/// room again, uploads work without a restart.
#[tokio::test]
async fn an_upload_onto_a_full_disk_is_refused_whole_and_the_next_one_works() {
    let disk = crate::faults_support::Tmpfs::mount("4m");
    let data = disk.dir.join("data");
    let server = TestServer::start_with(|c| c.data_dir = data.clone()).await;
    let alice = server.sign_up("alice").await;
    server.connect(&alice).await.join("lobby").await;
    let before: Vec<u8> = (0..200_000u32).map(|i| (i % 97) as u8).collect();
    let response = upload(&server, &alice, "lobby", "before", before.clone()).await;
    assert_eq!(response.status(), 201);
    let kept_before: FileInfo = response.json().await.unwrap();

    disk.fill();
    let response = upload(&server, &alice, "lobby", "full", vec![5; 300_000]).await;
    assert_eq!(response.status(), 500);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"], "internal", "{body}");
    let left = std::fs::read_dir(data.join("uploads")).unwrap().count();
    assert_eq!(left, 0, "no partial upload left behind");
    let got = download(&server, &alice, &kept_before.id).await;
    assert_eq!(got.bytes().await.unwrap().as_ref(), before.as_slice());

    disk.free();
    let after = vec![6u8; 300_000];
    let response = upload(&server, &alice, "lobby", "after", after.clone()).await;
    assert_eq!(response.status(), 201);
    let file: FileInfo = response.json().await.unwrap();
    let got = download(&server, &alice, &file.id).await;
    assert_eq!(got.bytes().await.unwrap().as_ref(), after.as_slice());
    drop(server);
}

/// The PostgreSQL server behind the file store stops and starts: refused
/// while it is down (`503`/`500` with their codes), served again by the
/// same node once it is back.
#[tokio::test]
async fn the_postgres_file_store_comes_back_after_a_restart() {
    let mut pg = crate::faults_support::OwnPostgres::start();
    let url = pg.url();
    let server = TestServer::start_with(|c| {
        c.database_url = Some(url.clone());
        c.store_timeout_ms = 1_500;
        c.store_probe_ms = 100;
    })
    .await;
    let alice = server.sign_up("alice").await;
    server.connect(&alice).await.join("lobby").await;
    let bytes = png(8, 8);
    let response = upload(&server, &alice, "lobby", "p.png", bytes.clone()).await;
    assert_eq!(response.status(), 201);
    let file: FileInfo = response.json().await.unwrap();

    pg.stop_server();
    let down = download(&server, &alice, &file.id).await;
    assert!(
        matches!(down.status().as_u16(), 500 | 503),
        "{}",
        down.status()
    );
    let body: serde_json::Value = down.json().await.unwrap();
    assert!(
        matches!(body["error"].as_str(), Some("internal" | "unavailable")),
        "{body}"
    );
    pg.start_server();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let got = download(&server, &alice, &file.id).await;
        if got.status() == 200 {
            assert_eq!(got.bytes().await.unwrap().as_ref(), bytes.as_slice());
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{}", got.status());
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let response = upload(&server, &alice, "lobby", "again.png", png(9, 9)).await;
    assert_eq!(response.status(), 201, "uploads work again too");
}

/// A node killed (SIGKILL) in the middle of an upload: the half file was
/// never visible (no record, nothing in the file store), and the node
/// started again removes its temp file and takes uploads.
#[tokio::test]
async fn a_node_killed_mid_upload_leaves_no_half_file() {
    let dir = temp_dir();
    let args = ["--data-dir".to_owned(), dir.display().to_string()];
    let (mut node, addr) = crate::support::spawn_hearth(&args).await;
    let alice = crate::support::sign_up_at(&addr, "alice").await;
    crate::support::connect_at(&addr, &alice)
        .await
        .join("lobby")
        .await;
    let half = futures_util::stream::iter([Ok::<_, std::io::Error>(bytes::Bytes::from(vec![
        1u8;
        100_000
    ]))])
    .chain(futures_util::stream::pending());
    let url = format!("http://{addr}/api/rooms/lobby/files?name=half");
    let token = alice.token.clone();
    let cut = tokio::spawn(async move {
        reqwest::Client::new()
            .post(url)
            .bearer_auth(token)
            .body(reqwest::Body::wrap_stream(half))
            .send()
            .await
    });
    // Until the half file is on the node's disk.
    let uploads = dir.join("uploads");
    for _ in 0..200 {
        let written: u64 = std::fs::read_dir(&uploads)
            .map(|entries| entries.map(|e| e.unwrap().metadata().unwrap().len()).sum())
            .unwrap_or(0);
        if written == 100_000 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert_eq!(std::fs::read_dir(&uploads).unwrap().count(), 1);
    node.kill().await.unwrap();
    assert!(cut.await.unwrap().is_err(), "the upload was cut off");

    let (_node, addr) = crate::support::spawn_hearth(&args).await;
    assert_eq!(
        std::fs::read_dir(&uploads).unwrap().count(),
        0,
        "the temp file is gone"
    );
    let files = std::fs::read_dir(dir.join("files")).map_or(0, |e| e.count());
    assert_eq!(files, 0, "nothing reached the file store");
    // Her session outlives the node.
    let again = reqwest::Client::new()
        .post(format!("http://{addr}/api/rooms/lobby/files?name=whole"))
        .bearer_auth(&alice.token)
        .body(vec![3u8; 1_000])
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 201);
    let _ = std::fs::remove_dir_all(dir);
}
