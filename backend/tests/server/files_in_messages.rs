//! Files sent in messages, against the real server: a send refers to
//! uploads and everyone in the room gets them; an image gets a thumbnail;
//! the hostile cases are refused with `no_such_file` (someone else's
//! upload, another room's, one sent already, a bomb); the room lists what
//! was shared; and a deleted message's files stop being served at once and
//! leave the file store with the next sweep.

use backend::store::Blobs;
use common::{ErrorCode, FileInfo, ServerMsg, SharedFile};
use reqwest::Method;
use serde_json::json;

use crate::files::{download, kept, png, upload};
use crate::support::{Client, TestServer, get_json};

/// A real PNG (decodable), `width` × `height`, opaque.
fn picture(width: u32, height: u32) -> Vec<u8> {
    let mut bytes = std::io::Cursor::new(Vec::new());
    image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, 90])
    })
    .write_to(&mut bytes, image::ImageFormat::Png)
    .unwrap();
    bytes.into_inner()
}

async fn send_files(client: &mut Client, room: &str, client_id: &str, files: &[&str]) {
    client
        .send_json(json!({"type": "send", "room": room, "content": "", "client_id": client_id, "files": files}))
        .await;
}

/// The answer to `client_id`: its ack's seq, or its error's code.
async fn answer(client: &mut Client, client_id: &str) -> Result<u64, ErrorCode> {
    match client
        .recv_where(|m| match m {
            ServerMsg::Ack { client_id: c, .. } => c == client_id,
            ServerMsg::Error { reference, .. } => reference.as_deref() == Some(client_id),
            _ => false,
        })
        .await
    {
        ServerMsg::Ack { seq, .. } => Ok(seq),
        ServerMsg::Error { code, .. } => Err(code),
        _ => unreachable!(),
    }
}

#[tokio::test]
async fn files_are_sent_in_messages_and_go_with_them() {
    let server = TestServer::start().await;
    let alice = server.sign_up("alice").await;
    let bob = server.sign_up("bob").await;
    let (mut a, mut b) = (server.connect(&alice).await, server.connect(&bob).await);
    a.join("team").await;
    b.join("team").await;
    let (status, body) = server
        .call(
            Method::POST,
            "/api/rooms",
            Some(&alice.token),
            Some(json!({"name": "secret", "visibility": "private"})),
        )
        .await;
    assert_eq!(status, 201, "{body}");

    // A photo and a document, sent together without text.
    let photo: FileInfo = upload(&server, &alice, "team", "beach.png", picture(1200, 600))
        .await
        .json()
        .await
        .unwrap();
    assert!(photo.thumbnail, "a large image has a thumbnail");
    let notes: FileInfo = upload(
        &server,
        &alice,
        "team",
        "notes.txt",
        b"plain words".to_vec(),
    )
    .await
    .json()
    .await
    .unwrap();
    assert!(!notes.thumbnail);
    send_files(&mut a, "team", "c1", &[&photo.id, &notes.id]).await;
    let seq = answer(&mut a, "c1").await.unwrap();
    let got = b
        .recv_where(|m| matches!(m, ServerMsg::Message(m) if m.client_id == "c1"))
        .await;
    let ServerMsg::Message(message) = got else {
        unreachable!()
    };
    assert_eq!(message.files, [photo.clone(), notes.clone()]);
    assert_eq!(message.content, "");

    // The thumbnail: a JPEG that fits in 480 × 480, to members only.
    let thumb = reqwest::Client::new()
        .get(server.url(&format!("/api/files/{}/thumbnail", photo.id)))
        .bearer_auth(&bob.token)
        .send()
        .await
        .unwrap();
    assert_eq!(thumb.status(), 200);
    assert_eq!(thumb.headers()["content-type"], "image/jpeg");
    let small = image::load_from_memory(&thumb.bytes().await.unwrap()).unwrap();
    assert_eq!((small.width(), small.height()), (480, 240));
    let none = reqwest::Client::new()
        .get(server.url(&format!("/api/files/{}/thumbnail", notes.id)))
        .bearer_auth(&bob.token)
        .send()
        .await
        .unwrap();
    assert_eq!(none.status(), 404, "a text file has no thumbnail");

    // A retry of the send is the same message; the same files in another
    // message, someone else's upload, another room's: refused.
    send_files(&mut a, "team", "c1", &[&photo.id, &notes.id]).await;
    assert_eq!(answer(&mut a, "c1").await, Ok(seq));
    send_files(&mut a, "team", "c2", &[&photo.id]).await;
    assert_eq!(answer(&mut a, "c2").await, Err(ErrorCode::NoSuchFile));
    let bobs: FileInfo = upload(&server, &bob, "team", "bob.txt", b"mine".to_vec())
        .await
        .json()
        .await
        .unwrap();
    send_files(&mut a, "team", "c3", &[&bobs.id]).await;
    assert_eq!(answer(&mut a, "c3").await, Err(ErrorCode::NoSuchFile));
    let hidden: FileInfo = upload(&server, &alice, "secret", "plan.txt", b"shh".to_vec())
        .await
        .json()
        .await
        .unwrap();
    send_files(&mut a, "team", "c4", &[&hidden.id]).await;
    assert_eq!(
        answer(&mut a, "c4").await,
        Err(ErrorCode::NoSuchFile),
        "a private room's file in a public room"
    );
    assert_eq!(download(&server, &bob, &hidden.id).await.status(), 404);
    let eleven: Vec<String> = (0..11).map(|i| format!("f{i}")).collect();
    a.send_json(
        json!({"type": "send", "room": "team", "content": "", "client_id": "c5", "files": eleven}),
    )
    .await;
    assert_eq!(
        answer(&mut a, "c5").await,
        Err(ErrorCode::InvalidContent),
        "at most ten"
    );
    // Nothing of these reached Bob.
    b.expect_silence(std::time::Duration::from_millis(200))
        .await;

    // A decompression bomb (a tiny file claiming 100 000 × 100 000) is refused.
    let bomb = upload(&server, &alice, "team", "bomb.png", png(100_000, 100_000)).await;
    assert_eq!(bomb.status(), 413);

    // The room's files, and search by a file's name.
    let shared: Vec<SharedFile> = get_json(&server.url("/api/rooms/team/files"), &bob.token).await;
    let listed: Vec<(&str, u64)> = shared
        .iter()
        .map(|s| (s.file.name.as_str(), s.seq))
        .collect();
    assert_eq!(listed, [("beach.png", seq), ("notes.txt", seq)]);
    let found: serde_json::Value = get_json(&server.url("/api/search?q=beach"), &bob.token).await;
    assert_eq!(found["messages"][0]["seq"], seq, "{found}");

    // Deleting the message stops serving its files at once; the sweep
    // then removes their bytes (a thumbnail's too).
    let (files_before, _) = kept(&server);
    assert_eq!(
        files_before, 5,
        "photo, thumbnail, notes, Bob's, the private one"
    );
    a.send_json(json!({"type": "delete", "room": "team", "target": seq, "client_id": "d1"}))
        .await;
    answer(&mut a, "d1").await.unwrap();
    for id in [&photo.id, &notes.id] {
        assert_eq!(download(&server, &bob, id).await.status(), 404);
    }
    let shared: Vec<SharedFile> = get_json(&server.url("/api/rooms/team/files"), &bob.token).await;
    assert!(shared.is_empty());
    let data = server.dir.join("data");
    let store = backend::store::open(None, &data, Default::default())
        .await
        .unwrap();
    let blobs = backend::store::DiskBlobs::open(data.join("files")).unwrap();
    let later = backend::store::now_millis() + 3_600_000;
    let swept = backend::store::file_sweep::sweep(&*store, &blobs, later)
        .await
        .unwrap();
    assert_eq!(swept.contents, 3, "{swept:?}");
    // Bob's and the private room's uploads were never sent: kept a day.
    assert_eq!(kept(&server).0, 2);
    assert_eq!(download(&server, &bob, &bobs.id).await.status(), 200);
}

/// On the multi-node store: a picture sent on one node comes with its
/// message to a reader on another (history from the shared database), its
/// thumbnail is served there, and once the message is deleted neither node
/// serves it and the sweep empties PostgreSQL's file store.
#[tokio::test]
async fn files_sent_on_one_node_are_read_on_another_and_go_with_their_message() {
    let db = crate::support::Database::create().await;
    let url = db.url();
    let one = TestServer::start_with(|c| c.database_url = Some(url.clone())).await;
    let two = TestServer::start_with(|c| c.database_url = Some(url.clone())).await;
    let alice = one.sign_up("alice").await;
    let bob = two.sign_up("bob").await;
    let mut a = one.connect(&alice).await;
    a.join("lobby").await;
    let photo: FileInfo = upload(&one, &alice, "lobby", "pier.png", picture(800, 400))
        .await
        .json()
        .await
        .unwrap();
    assert!(photo.thumbnail);
    send_files(&mut a, "lobby", "c1", &[&photo.id]).await;
    let seq = answer(&mut a, "c1").await.unwrap();

    let mut b = two.connect(&bob).await;
    b.send_json(json!({"type": "join", "room": "lobby", "since": 0}))
        .await;
    let got = b
        .recv_where(|m| matches!(m, ServerMsg::Message(m) if m.seq == seq))
        .await;
    let ServerMsg::Message(message) = got else {
        unreachable!()
    };
    assert_eq!(message.files, std::slice::from_ref(&photo));
    let thumb = reqwest::Client::new()
        .get(two.url(&format!("/api/files/{}/thumbnail", photo.id)))
        .bearer_auth(&bob.token)
        .send()
        .await
        .unwrap();
    assert_eq!(thumb.status(), 200);
    let small = image::load_from_memory(&thumb.bytes().await.unwrap()).unwrap();
    assert_eq!((small.width(), small.height()), (480, 240));

    a.send_json(json!({"type": "delete", "room": "lobby", "target": seq, "client_id": "d1"}))
        .await;
    answer(&mut a, "d1").await.unwrap();
    assert_eq!(download(&two, &bob, &photo.id).await.status(), 404);
    assert_eq!(download(&one, &alice, &photo.id).await.status(), 404);
    let store = backend::store::open(Some(&url), std::path::Path::new("."), Default::default())
        .await
        .unwrap();
    let blobs = backend::store::PgBlobs::connect(&url).await.unwrap();
    let later = backend::store::now_millis() + 3_600_000;
    let swept = backend::store::file_sweep::sweep(&*store, &blobs, later)
        .await
        .unwrap();
    assert_eq!(
        swept.contents, 2,
        "the picture and its thumbnail: {swept:?}"
    );
    assert!(blobs.stored_before(i64::MAX).await.unwrap().is_empty());
    drop((a, b, one, two, store, blobs));
    db.drop_now().await;
}
