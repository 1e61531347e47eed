//! Files and pictures across two browsers: Alice drops a picture on the
//! page and pastes a document into the box, sees them upload, and sends
//! them with a line of text; Bob sees the picture (its thumbnail, fetched
//! with his session) and the document's card, opens the picture in the
//! viewer and closes it with Escape, and finds both under "Files". A file
//! over the size limit fails with the server's reason, and holds the
//! message back until it is removed.

use fantoccini::{Client, Locator, key::Key};

use super::{WAIT, axe, gone, poll_js, say, screenshot, wait_text};

/// Makes a `width` × `height` PNG named `name` in the page (a gradient, so
/// it looks like a picture) and hands it to the page as `how`: `"drop"`
/// (on the page) or `"paste"` (into the message box). `bytes` instead: a
/// file of that many zero bytes, named `name`.
pub async fn give_file(page: &Client, how: &str, name: &str, width: u32, height: u32, bytes: u64) {
    let outcome = page
        .execute_async(
            "const [how, name, width, height, bytes, done] = arguments;
             const hand = file => {
               const data = new DataTransfer();
               data.items.add(file);
               if (how === 'drop') {
                 window.dispatchEvent(new DragEvent('dragover', {dataTransfer: data, bubbles: true, cancelable: true}));
                 window.dispatchEvent(new DragEvent('drop', {dataTransfer: data, bubbles: true, cancelable: true}));
               } else {
                 const area = document.querySelector('.composer textarea');
                 area.dispatchEvent(new ClipboardEvent('paste', {clipboardData: data, bubbles: true, cancelable: true}));
               }
               done('ok');
             };
             if (bytes > 0) {
               hand(new File([new Uint8Array(bytes)], name, {type: 'application/octet-stream'}));
               return;
             }
             if (width === 0) {
               hand(new File(['Friday: dinner at eight. Bring a dessert.'], name, {type: 'text/plain'}));
               return;
             }
             const canvas = document.createElement('canvas');
             canvas.width = width; canvas.height = height;
             const ctx = canvas.getContext('2d');
             const sky = ctx.createLinearGradient(0, 0, 0, height);
             sky.addColorStop(0, '#f7b267'); sky.addColorStop(1, '#7f4f9e');
             ctx.fillStyle = sky; ctx.fillRect(0, 0, width, height);
             ctx.fillStyle = '#fff2c8';
             ctx.beginPath(); ctx.arc(width / 2, height * 0.7, height / 5, 0, Math.PI * 2); ctx.fill();
             canvas.toBlob(blob => hand(new File([blob], name, {type: 'image/png'})), 'image/png');",
            vec![
                how.into(),
                name.into(),
                width.into(),
                height.into(),
                bytes.into(),
            ],
        )
        .await
        .unwrap();
    assert_eq!(outcome, "ok");
}

/// The attachments about to be sent: (name, status text) each.
async fn attachments(page: &Client) -> serde_json::Value {
    page.execute(
        "return [...document.querySelectorAll('.attachments .attachment')]
           .map(a => [a.querySelector('.file-name').textContent, a.querySelector('.muted').textContent])",
        vec![],
    )
    .await
    .unwrap()
}

/// Waits until `count` attachments are uploaded.
pub async fn uploaded(page: &Client, count: usize) {
    let uploaded = poll_js(
        page,
        "return [...document.querySelectorAll('.attachments .attachment')]
           .map(a => a.querySelector('.muted').textContent)",
        |v| {
            v.as_array().is_some_and(|a| {
                a.len() == count
                    && a.iter()
                        .all(|s| !s.as_str().unwrap_or("").starts_with("Uploading"))
            })
        },
    )
    .await;
    assert_eq!(uploaded.as_array().map(Vec::len), Some(count), "{uploaded}");
}

pub async fn files_and_pictures(alice: &Client, bob: &Client) {
    // A picture dropped on the page, a document pasted into the box.
    give_file(alice, "drop", "sunset.png", 1200, 600, 0).await;
    give_file(alice, "paste", "agenda.txt", 0, 0, 0).await;
    uploaded(alice, 2).await;
    let listed = attachments(alice).await;
    assert_eq!(listed[0][0], "sunset.png", "{listed}");
    assert_eq!(listed[1][0], "agenda.txt", "{listed}");
    screenshot(alice, "files-attached.png").await;
    say(alice, "Pictures from Friday").await;

    // Bob sees the picture (fetched with his session) and the card.
    let picture = poll_js(
        bob,
        "const img = document.querySelector('.messages .message-files .picture img');
         return img && img.complete && img.naturalWidth > 0 ? [img.src.slice(0, 5), img.naturalWidth, img.alt] : null;",
        |v| !v.is_null(),
    )
    .await;
    assert_eq!(picture[0], "blob:", "{picture}");
    assert_eq!(
        picture[1], 480,
        "the thumbnail, not the full picture: {picture}"
    );
    assert_eq!(picture[2], "sunset.png");
    wait_text(bob, ".messages .file-card", "agenda.txt", WAIT).await;
    wait_text(
        bob,
        ".messages .line:last-child .content",
        "Pictures from Friday",
        WAIT,
    )
    .await;
    screenshot(bob, "files-in-message.png").await;
    let found = axe(bob).await;
    assert!(found.is_empty(), "files in a message: {found:?}");

    // The viewer: the full picture; Escape closes it.
    bob.find(Locator::Css(".messages .picture"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let full = poll_js(
        bob,
        "const img = document.querySelector('dialog.viewer[open] img');
         return img && img.complete && img.naturalWidth > 0 ? img.naturalWidth : null;",
        |v| !v.is_null(),
    )
    .await;
    assert_eq!(full, 1200, "the full picture");
    screenshot(bob, "files-viewer.png").await;
    let found = axe(bob).await;
    assert!(found.is_empty(), "the viewer: {found:?}");
    bob.active_element()
        .await
        .unwrap()
        .send_keys(&Key::Escape.to_string())
        .await
        .unwrap();
    assert!(
        gone(bob, Locator::Css("dialog.viewer")).await,
        "Escape closes the viewer"
    );

    // "Files" lists what was shared.
    bob.find(Locator::XPath(
        "//header[@class='room-header']//button[text()='Files']",
    ))
    .await
    .unwrap()
    .click()
    .await
    .unwrap();
    wait_text(bob, "dialog.files-dialog", "sunset.png", WAIT).await;
    wait_text(bob, "dialog.files-dialog", "agenda.txt", WAIT).await;
    screenshot(bob, "files-list.png").await;
    let found = axe(bob).await;
    assert!(found.is_empty(), "the files list: {found:?}");
    bob.find(Locator::XPath(
        "//dialog[contains(@class,'files-dialog')]//button[text()='Close']",
    ))
    .await
    .unwrap()
    .click()
    .await
    .unwrap();
    assert!(gone(bob, Locator::Css("dialog.files-dialog")).await);

    // Bob answers with a file from his disk, chosen with the attach
    // button's file input (WebDriver types the path into it).
    let dir = std::env::temp_dir().join(format!("hearth-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("directions.txt");
    std::fs::write(&path, "Take the second left after the bridge.").unwrap();
    bob.find(Locator::Css(".composer input[type=file]"))
        .await
        .unwrap()
        .send_keys(&path.display().to_string())
        .await
        .unwrap();
    uploaded(bob, 1).await;
    say(bob, "").await;
    wait_text(
        alice,
        ".messages .line:last-child .file-card",
        "directions.txt",
        WAIT,
    )
    .await;
    let quoted = alice
        .execute(
            "return document.querySelector('.messages .line:last-child .content') === null",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        quoted, true,
        "a message of a file alone has no empty text box"
    );
    let _ = std::fs::remove_dir_all(dir);
    say(alice, "Got the directions").await;
    wait_text(
        bob,
        ".messages .line:last-child .content",
        "Got the directions",
        WAIT,
    )
    .await;

    // Over the size limit: the server's reason, and the message waits
    // until the file is removed.
    give_file(alice, "drop", "huge.bin", 0, 0, 26 * 1024 * 1024).await;
    let failed = poll_js(
        alice,
        "const a = document.querySelector('.attachments .attachment.failed');
         return a ? a.querySelector('.muted').textContent : null;",
        |v| !v.is_null(),
    )
    .await;
    assert!(
        failed.as_str().is_some_and(|s| s.contains("at most")),
        "{failed}"
    );
    let send_disabled = alice
        .execute(
            "return document.querySelector('.composer button[type=submit]').disabled",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(send_disabled, true);
    screenshot(alice, "files-failed.png").await;
    alice
        .find(Locator::Css(
            ".attachments .attachment.failed button[aria-label^='Remove']",
        ))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    assert!(gone(alice, Locator::Css(".attachments")).await);
}

/// The same rich messages on the multi-node store: Alice's browser on one
/// node, Bob's on another, both behind one PostgreSQL and Redis. Alice
/// sends formatting and a picture; Bob sees them drawn and the picture
/// (bytes from PostgreSQL, through his node); Bob reacts with any emoji
/// from the picker and Alice sees it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rich_messages_across_two_nodes_on_postgres_and_redis() {
    let admin_url = std::env::var("HEARTH_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let name = format!("hearth_e2e_{}", uuid::Uuid::new_v4().simple());
    let admin = sqlx::PgPool::connect(&admin_url).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&admin)
        .await
        .unwrap();
    let db_url = format!("{}/{name}", admin_url.rsplit_once('/').unwrap().0);
    let redis =
        std::env::var("HEARTH_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let shared = [
        "--database-url",
        db_url.as_str(),
        "--redis-url",
        redis.as_str(),
    ];
    let stage = super::Stage::start_with("two-nodes", &shared).await;
    let other_port = super::unused_port();
    let other_data = stage.data.with_extension("b");
    let mut other = super::start_server_with(other_port, &other_data, &shared);
    super::wait_for_port(other_port).await;
    let other_base = format!("http://127.0.0.1:{other_port}/");

    let alice = super::browser(&stage.driver_url).await;
    let bob = super::browser(&stage.driver_url).await;
    super::sign_up(&alice, &stage.base, "alice", "Alice").await;
    super::sign_up(&bob, &other_base, "bob", "Bob").await;
    for page in [&alice, &bob] {
        let input = page.find(Locator::Css(".new-room input")).await.unwrap();
        input.send_keys("harbour\u{E007}").await.unwrap();
        wait_text(page, ".room-header h1", "harbour", WAIT).await;
    }
    wait_text(&alice, "[data-testid=members]", "Bob", WAIT).await;

    give_file(&alice, "drop", "boats.png", 1000, 700, 0).await;
    uploaded(&alice, 1).await;
    say(&alice, "**Boats** at `noon`").await;
    bob.wait()
        .at_most(WAIT)
        .for_element(Locator::XPath(
            "//div[contains(@class,'content')]//strong[text()='Boats']",
        ))
        .await
        .expect("Bob sees the bold text, drawn");
    let picture = poll_js(
        &bob,
        "const img = document.querySelector('.messages .picture img');
         return img && img.complete && img.naturalWidth > 0 ? img.naturalWidth : null;",
        |v| !v.is_null(),
    )
    .await;
    assert_eq!(picture, 480, "the thumbnail, from the shared store");
    screenshot(&bob, "two-nodes-bob.png").await;

    // Any emoji, from the picker, crosses back through Redis.
    super::changes::line_action(&bob, "Boats", "React").await;
    bob.find(Locator::Css(".line .picker button.more-emoji"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let search = bob
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css(".line .emoji-picker input.emoji-search"))
        .await
        .unwrap();
    search.send_keys("sailboat").await.unwrap();
    bob.wait()
        .at_most(WAIT)
        .for_element(Locator::Css(
            ".emoji-grid button.emoji[aria-label='sailboat']",
        ))
        .await
        .expect("found by name")
        .click()
        .await
        .unwrap();
    alice
        .wait()
        .at_most(WAIT)
        .for_element(Locator::XPath(
            "//button[contains(@class,'chip') and contains(., '⛵')]",
        ))
        .await
        .expect("Alice, on the other node, sees Bob's ⛵");

    alice.close().await.unwrap();
    bob.close().await.unwrap();
    let mut first = stage.server;
    let _ = first.kill().await;
    let _ = other.kill().await;
    let _ = sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .execute(&admin)
        .await;
}
