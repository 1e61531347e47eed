//! End to end: the trunk-built app, served by the real `hearth` binary, used
//! by two people in two independent headless Chromium sessions (fantoccini
//! driving /usr/bin/chromedriver). The server is killed with SIGKILL and
//! restarted mid-conversation; both pages must recover by themselves.
//!
//! Needs `dist/` (trunk build) and chromedriver; `scripts/test` provides both.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use tokio::process::{Child, Command};

#[path = "browser/changes.rs"]
mod changes;
#[path = "browser/files.rs"]
mod files;
#[path = "browser/js_package.rs"]
mod js_package;

const WAIT: Duration = Duration::from_secs(20);
/// Long enough for a few backoff rounds after a restart.
const RECONNECT_WAIT: Duration = Duration::from_secs(40);

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

#[path = "shared/ports.rs"]
mod ports;
use ports::unused_port;

async fn wait_for_port(port: u16) {
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("nothing listening on port {port}");
}

fn start_server(port: u16, data: &Path) -> Child {
    start_server_with(port, data, &[])
}

fn start_server_with(port: u16, data: &Path, extra: &[&str]) -> Child {
    let dist = workspace().join("dist");
    assert!(
        dist.join("index.html").exists(),
        "{} is missing: run `trunk build --release` first (scripts/test does)",
        dist.display()
    );
    start_server_in(port, data, extra, &dist)
}

/// The server, serving the files in `dist`.
fn start_server_in(port: u16, data: &Path, extra: &[&str], dist: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(extra)
        .arg("--static-dir")
        .arg(dist)
        .arg("--data-dir")
        .arg(data)
        // How each WebSocket authenticated, for `no_token_in_any_url`.
        .env("RUST_LOG", "info,backend::http::upgrade=debug")
        .stdout(server_log(data))
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start hearth")
}

/// The server's log, appended to across restarts, beside its data dir.
fn server_log(data: &Path) -> std::fs::File {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(data.with_extension("log"))
        .unwrap()
}

/// The long-lived token never travels in a URL: not in any request the
/// browser made (Resource Timing), and the server saw every WebSocket
/// authenticated by a one-time ticket, none by a token in the URL.
async fn no_token_in_any_url(page: &Client, data: &Path) {
    let token = page
        .execute(
            "return JSON.parse(localStorage.getItem('hearth.session')).token",
            vec![],
        )
        .await
        .unwrap();
    let token = token.as_str().unwrap().to_owned();
    let urls = page
        .execute(
            "return [location.href].concat(performance.getEntries().map(e => e.name))",
            vec![],
        )
        .await
        .unwrap();
    let urls: Vec<String> = serde_json::from_value(urls).unwrap();
    assert!(
        urls.iter().any(|u| u.contains("/api/ws-ticket")),
        "{urls:?}"
    );
    for url in &urls {
        assert!(!url.contains(&token), "the token is in {url}");
    }
    let log = std::fs::read_to_string(data.with_extension("log")).unwrap();
    assert!(
        log.contains("websocket authenticated by a ticket"),
        "tickets were used"
    );
    assert!(
        !log.contains("token in the URL"),
        "a WebSocket was opened with the token in its URL"
    );
}

async fn browser(driver_url: &str) -> Client {
    browser_in(driver_url, Scheme::Light).await
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Light,
    Dark,
}

async fn browser_in(driver_url: &str, scheme: Scheme) -> Client {
    let chromium = std::env::var("HEARTH_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let mut args = vec![
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1100,720",
    ];
    if scheme == Scheme::Dark {
        // Also makes `prefers-color-scheme: dark` match in pages.
        args.push("--force-dark-mode");
    }
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": chromium,
            "args": args,
            // As if the person had allowed notifications (the browser's
            // own permission, not a fake): the mention test expects one.
            "prefs": {"profile.default_content_setting_values.notifications": 1},
        }),
    );
    // Each session gets its own fresh profile: two independent users.
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(driver_url)
        .await
        .expect("a chromedriver session")
}

/// Polls until the text of `css` contains `want`.
async fn wait_text(page: &Client, css: &str, want: &str, timeout: Duration) {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last = String::new();
    while tokio::time::Instant::now() < deadline {
        if let Ok(el) = page.find(Locator::Css(css)).await
            && let Ok(text) = el.text().await
        {
            if text.contains(want) {
                return;
            }
            last = text;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("`{css}` never contained {want:?}; last text: {last:?}");
}

/// Runs `script` (which returns something) every 100 ms until `done` says
/// yes to what it returned, for at most `WAIT`: the last value either way,
/// for the caller's assertion to show.
async fn poll_js(
    page: &Client,
    script: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let value = page.execute(script, vec![]).await.unwrap();
        if done(&value) || tokio::time::Instant::now() >= deadline {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every account in these tests has this password.
const PASSWORD: &str = "correct horse battery staple";

/// Creates an account through the sign-up form, as a person would.
async fn sign_up(page: &Client, base: &str, username: &str, display_name: &str) {
    page.goto(base).await.unwrap();
    page.wait()
        .at_most(WAIT)
        .for_element(Locator::Css("#username"))
        .await
        .unwrap();
    page.find(Locator::XPath("//a[text()='Create account']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let name = page
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css("#display-name"))
        .await
        .unwrap();
    name.send_keys(display_name).await.unwrap();
    enter_credentials(page, username).await;
}

/// Signs in to an existing account (password `PASSWORD`).
async fn sign_in(page: &Client, base: &str, username: &str) {
    page.goto(base).await.unwrap();
    enter_credentials(page, username).await;
}

/// Fills in the username and `PASSWORD` of the form on screen, submits it
/// and waits until the chat is connected.
async fn enter_credentials(page: &Client, username: &str) {
    for (css, text) in [("#username", username), ("#password", PASSWORD)] {
        page.wait()
            .at_most(WAIT)
            .for_element(Locator::Css(css))
            .await
            .unwrap()
            .send_keys(text)
            .await
            .unwrap();
    }
    page.find(Locator::Css("form.card button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_text(page, "[data-testid=banner]", "Connected", WAIT).await;
}

/// Whether nothing matches `locator` within `WAIT` (polled, not slept on).
async fn gone(page: &Client, locator: Locator<'_>) -> bool {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if page.find_all(locator).await.unwrap().is_empty() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Opens the account screen from the sidebar.
async fn open_account(page: &Client) {
    page.find(Locator::Css(".me button[aria-haspopup=dialog]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    page.wait()
        .at_most(WAIT)
        .for_element(Locator::Css("dialog.profile #profile-name"))
        .await
        .unwrap();
}

/// Renames the account from the account screen, and closes it.
async fn rename(page: &Client, name: &str) {
    open_account(page).await;
    let input = page.find(Locator::Css("#profile-name")).await.unwrap();
    input.clear().await.unwrap();
    input.send_keys(&format!("{name}\u{E007}")).await.unwrap();
    wait_text(page, "#profile-name-said", "Saved", WAIT).await;
    page.find(Locator::XPath(
        "//dialog//button[normalize-space()='Close']",
    ))
    .await
    .unwrap()
    .click()
    .await
    .unwrap();
    assert!(gone(page, Locator::Css("dialog.profile")).await);
}

/// Opens `room` from the sidebar's "Your rooms".
async fn open_room(page: &Client, room: &str) {
    page.find(Locator::XPath(&format!(
        "//ul[@data-testid='rooms']//button[contains(., '{room}')]"
    )))
    .await
    .unwrap()
    .click()
    .await
    .unwrap();
    wait_text(page, ".room-header h1", room, WAIT).await;
}

/// Rooms belong to the account: a room Bob joined in one browser is in
/// "Your rooms" on his second device (a fresh browser, nothing stored),
/// with its unread count before he opens it; muting it there mutes it on
/// the first device; leaving it there leaves it on the first device too.
async fn rooms_follow_the_account(alice: &Client, bob: &Client, driver_url: &str, base: &str) {
    bob.find(Locator::Css(".new-room input"))
        .await
        .unwrap()
        .send_keys("side-room\u{E007}")
        .await
        .unwrap();
    wait_text(bob, ".room-header h1", "side-room", WAIT).await;
    // A new room says what it is instead of a blank pane.
    wait_text(
        bob,
        "[data-testid=messages] .intro",
        "This is the start of #side-room",
        WAIT,
    )
    .await;
    open_room(bob, "general").await;
    alice
        .find(Locator::Css(".new-room input"))
        .await
        .unwrap()
        .send_keys("side-room\u{E007}")
        .await
        .unwrap();
    wait_text(alice, ".room-header h1", "side-room", WAIT).await;
    say(alice, "news for the side room").await;
    wait_text(
        alice,
        "[data-testid=messages]",
        "news for the side room",
        WAIT,
    )
    .await;
    open_room(alice, "general").await;

    // Bob starts a message in #general and leaves it unsent.
    bob.find(Locator::Css(".composer textarea"))
        .await
        .unwrap()
        .send_keys("a half-written plan")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2_000)).await;

    let phone = browser(driver_url).await;
    sign_in(&phone, base, "bob").await;
    let badge = "//ul[@data-testid='rooms']//button[contains(., 'side-room')]//span[contains(@class,'badge')]";
    let shown = phone
        .wait()
        .at_most(WAIT)
        .for_element(Locator::XPath(badge))
        .await
        .expect("side-room, with a badge, on the second device");
    assert!(shown.text().await.unwrap().contains('1'));
    screenshot(&phone, "bob-second-device.png").await;
    // His draft is there too.
    let draft = poll_js(
        &phone,
        "return document.querySelector('.composer textarea').value",
        |v| v == "a half-written plan",
    )
    .await;
    assert_eq!(draft, "a half-written plan", "the draft on the phone");
    // Emptied on the first device (as a person would: an input event).
    bob.find(Locator::Css(".composer textarea"))
        .await
        .unwrap()
        .send_keys("\u{E009}a\u{E000}\u{E003}")
        .await
        .unwrap();

    open_room(&phone, "side-room").await;
    wait_text(
        &phone,
        "[data-testid=messages]",
        "news for the side room",
        WAIT,
    )
    .await;
    // What he had not read begins under "New".
    let after_new = phone
        .execute(
            "const d = document.querySelector('.messages > .new-divider');
             return d && d.nextElementSibling.textContent;",
            vec![],
        )
        .await
        .unwrap();
    assert!(
        after_new
            .as_str()
            .is_some_and(|t| t.contains("news for the side room")),
        "the New divider: {after_new}"
    );
    // Muted on the phone: on the first device too, a new message there
    // shows as a dot, not a count.
    phone
        .find(Locator::Css("select[data-testid=notify]"))
        .await
        .unwrap()
        .select_by_value("mute")
        .await
        .unwrap();
    // Away from it on the phone: with the room on screen there, the phone
    // would read the next message at once, and the first device would
    // rightly show nothing unread.
    open_room(&phone, "general").await;
    open_room(alice, "side-room").await;
    say(alice, "quiet news").await;
    wait_text(alice, "[data-testid=messages]", "quiet news", WAIT).await;
    open_room(alice, "general").await;
    let dot = "//ul[@data-testid='rooms']//button[contains(., 'side-room')]//span[contains(@class,'badge') and contains(@class,'muted')]";
    let muted = bob
        .wait()
        .at_most(WAIT)
        .for_element(Locator::XPath(dot))
        .await
        .expect("muted on the phone: a dot on the first device");
    assert!(
        !muted.text().await.unwrap().contains('1'),
        "a dot, not a count"
    );
    screenshot(bob, "bob-muted-room.png").await;
    // Renamed on the phone: the first device shows it at once, and what
    // Bob says there next carries it; then back.
    rename(&phone, "Robert").await;
    wait_text(bob, ".me strong", "Robert", WAIT).await;
    say(bob, "signed, Robert").await;
    let by_robert = "//div[contains(@class,'line')][.//div[@class='content' and text()='signed, Robert']]//*[contains(@class,'author')]";
    let author = alice
        .wait()
        .at_most(WAIT)
        .for_element(Locator::XPath(by_robert))
        .await
        .expect("Alice sees what Bob said");
    assert_eq!(author.text().await.unwrap(), "Robert");
    rename(&phone, "Bob").await;
    wait_text(bob, ".me strong", "Bob", WAIT).await;
    // The phone leaves a room while the first device is still coming back
    // under the new name (a rename reconnects): resuming the room there
    // follows the leave rather than undoing it.
    open_room(&phone, "side-room").await;
    phone
        .find(Locator::Css("button.leave"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let on_first = "//ul[@data-testid='rooms']//button[contains(., 'side-room')]";
    assert!(
        gone(bob, Locator::XPath(on_first)).await,
        "left on the phone, gone from the first device"
    );
    phone.close().await.unwrap();
}

/// Up in the empty composer edits your last message; what you typed and
/// did not send is still there after a reload.
async fn the_composer_keeps_drafts_and_up_edits_the_last_message(alice: &Client) {
    say(alice, "a line to edit").await;
    wait_text(alice, "[data-testid=messages]", "a line to edit", WAIT).await;
    let area = alice
        .find(Locator::Css(".composer textarea"))
        .await
        .unwrap();
    // WebDriver's Arrow Up.
    area.send_keys("\u{E013}").await.unwrap();
    let edit = alice
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css("form.edit textarea"))
        .await
        .expect("Up opened the last message for editing");
    assert_eq!(
        edit.prop("value").await.unwrap().as_deref(),
        Some("a line to edit")
    );
    alice
        .find(Locator::XPath(
            "//form[contains(@class,'edit')]//button[normalize-space()='Cancel']",
        ))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();

    let area = alice
        .find(Locator::Css(".composer textarea"))
        .await
        .unwrap();
    area.send_keys("half a thought").await.unwrap();
    alice.refresh().await.unwrap();
    wait_text(alice, "[data-testid=banner]", "Connected", WAIT).await;
    let area = alice
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css(".composer textarea"))
        .await
        .unwrap();
    assert_eq!(
        area.prop("value").await.unwrap().as_deref(),
        Some("half a thought"),
        "the draft survived the reload"
    );
    // Control+A, Backspace: emptied as a person would (an input event),
    // so the draft is forgotten too.
    area.send_keys("\u{E009}a\u{E000}\u{E003}").await.unwrap();
}

/// What the visit to the chat after signing up cost, from the browser's
/// own Resource Timing: the app booted under the server's CSP (or it would
/// not have connected), the wasm came compressed, and the bytes on the
/// wire and first paint are printed for the README. The first socket
/// opened with the ticket the sign-in handoff brought (no ticket asked for).
async fn first_visit(page: &Client) {
    let figures = page
        .execute(
            "const r = performance.getEntriesByType('resource');
             const nav = performance.getEntriesByType('navigation')[0];
             const wasm = r.find(e => e.name.endsWith('.wasm'));
             const fcp = performance.getEntriesByName('first-contentful-paint')[0];
             return {
               bytes: r.concat([nav]).reduce((n, e) => n + e.transferSize, 0),
               wasm_encoded: wasm.encodedBodySize, wasm_decoded: wasm.decodedBodySize,
               fcp_ms: fcp ? fcp.startTime : null,
               tickets: r.filter(e => e.name.includes('/api/ws-ticket')).length,
             };",
            vec![],
        )
        .await
        .unwrap();
    let encoded = figures["wasm_encoded"].as_f64().unwrap();
    let decoded = figures["wasm_decoded"].as_f64().unwrap();
    assert!(
        encoded < decoded / 2.0,
        "the wasm went out compressed: {figures}"
    );
    // The first connection used the ticket that came with the session.
    assert_eq!(figures["tickets"], 0, "no ticket asked for: {figures}");
    println!(
        "first visit: {} bytes on the wire (headers included), wasm {encoded} of {decoded} bytes, \
         first contentful paint {} ms",
        figures["bytes"], figures["fcp_ms"]
    );
}

async fn say(page: &Client, text: &str) {
    let area = page.find(Locator::Css(".composer textarea")).await.unwrap();
    // \u{E007} is WebDriver's Enter key.
    area.send_keys(&format!("{text}\u{E007}")).await.unwrap();
}

/// Sends `text` with its line breaks (as Shift+Enter would make them):
/// put in the box as if typed, then Enter.
async fn say_lines(page: &Client, text: &str) {
    page.execute(
        "const area = document.querySelector('.composer textarea');
         area.value = arguments[0];
         area.dispatchEvent(new Event('input', {bubbles: true}));",
        vec![serde_json::json!(text)],
    )
    .await
    .unwrap();
    say(page, "").await;
}

async fn screenshot(page: &Client, name: &str) {
    let png = page.screenshot().await.unwrap();
    let dir = workspace().join("target/e2e");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), png).unwrap();
}

/// Makes an API key with `hearth admin` on the server's data dir, and posts
/// `content` to `room` with it, as "Deploy Bot".
async fn post_as_bot(data: &Path, port: u16, room: &str, content: &str) {
    let made = std::process::Command::new(env!("CARGO_BIN_EXE_hearth"))
        .arg("--data-dir")
        .arg(data)
        .args(["admin", "api-key", "create", "Deploy Bot", "--rooms", room])
        .output()
        .unwrap();
    assert!(made.status.success(), "{made:?}");
    let made: serde_json::Value = serde_json::from_slice(&made.stdout).unwrap();
    let response = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/api/rooms/{room}/messages"))
        .bearer_auth(made["key"].as_str().unwrap())
        .json(&serde_json::json!({"content": content, "client_id": "deploy-1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
}

/// Posts `count` messages to `room` through the protocol, as "Feeder".
async fn fill_room(port: u16, room: &str, count: usize) {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let username = format!("feeder-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let response = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/api/accounts"))
        .json(&serde_json::json!({
            "username": username, "password": PASSWORD, "display_name": "Feeder"
        }))
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body = response.text().await.unwrap();
    let session: common::SessionResponse = serde_json::from_str(&body)
        .unwrap_or_else(|err| panic!("the feeder's sign-up: {status} {body:?}: {err}"));
    // Like the app: a one-time ticket, never the token, in the URL.
    let ticket: common::WsTicket = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/api/ws-ticket"))
        .bearer_auth(&session.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let url = format!("ws://127.0.0.1:{port}/ws?ticket={}", ticket.ticket);
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let join = serde_json::json!({"type":"join","room":room});
    ws.send(Message::text(join.to_string())).await.unwrap();
    for i in 1..=count {
        let send = serde_json::json!({"type":"send","room":room,"content":format!("history #{i:02}"),"client_id":format!("h{i}")});
        ws.send(Message::text(send.to_string())).await.unwrap();
        // One at a time keeps within the default rate limit's burst.
        loop {
            let frame = ws.next().await.unwrap().unwrap();
            if frame
                .to_text()
                .unwrap_or_default()
                .contains(r#""type":"ack""#)
            {
                break;
            }
        }
        if i % 30 == 0 {
            // Let the rate limiter refill (20 per second, burst 40).
            tokio::time::sleep(Duration::from_millis(1_600)).await;
        }
    }
}

/// What every browser test needs: chromedriver, and the real server on a
/// fresh data dir.
struct Stage {
    _chromedriver: Driver,
    driver_url: String,
    server: Child,
    port: u16,
    base: String,
    data: PathBuf,
}

impl Stage {
    async fn start(name: &str) -> Stage {
        Stage::start_with(name, &[]).await
    }

    async fn start_with(name: &str, extra: &[&str]) -> Stage {
        Stage::start_in(name, extra, None).await
    }

    /// The stage, its server serving `dist` (the app's build by default).
    async fn start_in(name: &str, extra: &[&str], dist: Option<&Path>) -> Stage {
        let chromedriver =
            std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into());
        let driver_port = unused_port();
        // In a process group of its own, with the browsers it starts: a
        // test that fails before closing its sessions still leaves no
        // Chromium behind (`Drop for Stage`).
        let driver = Command::new(chromedriver)
            .arg(format!("--port={driver_port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .expect("start chromedriver");
        wait_for_port(driver_port).await;
        let data = std::env::temp_dir().join(format!("hearth-{name}-{}", uuid::Uuid::new_v4()));
        let port = unused_port();
        let server = match dist {
            Some(dist) => start_server_in(port, &data, extra, dist),
            None => start_server_with(port, &data, extra),
        };
        wait_for_port(port).await;
        Stage {
            _chromedriver: Driver(driver),
            driver_url: format!("http://127.0.0.1:{driver_port}"),
            server,
            port,
            base: format!("http://127.0.0.1:{port}/"),
            data,
        }
    }
}

/// chromedriver, killed with every browser it started (its process
/// group) when the test ends, passed or failed.
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        if let Some(pid) = self.0.id() {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_people_chat_and_survive_a_server_restart() {
    let stage = Stage::start("e2e").await;
    let (driver_url, base, port, data) = (&stage.driver_url, &stage.base, stage.port, &stage.data);
    let mut server = stage.server;

    let alice = browser(driver_url).await;
    let bob = browser(driver_url).await;
    sign_up(&alice, base, "alice", "Alice").await;
    first_visit(&alice).await;
    sign_up(&bob, base, "bob", "Bob").await;

    // Both land in #general and see each other.
    wait_text(&alice, "[data-testid=members]", "Bob", WAIT).await;
    wait_text(&bob, "[data-testid=members]", "Alice", WAIT).await;

    // Alice types: Bob sees the indicator. She sends: Bob sees the message.
    let area = alice
        .find(Locator::Css(".composer textarea"))
        .await
        .unwrap();
    area.send_keys("Hello Bob").await.unwrap();
    wait_text(&bob, "[data-testid=typing]", "Alice is typing…", WAIT).await;
    area.send_keys("\u{E007}").await.unwrap();
    wait_text(&bob, "[data-testid=messages]", "Hello Bob", WAIT).await;
    wait_text(&bob, "[data-testid=typing]", "", WAIT).await;
    say(&bob, "Hi Alice! <b>not bold</b>").await;
    wait_text(
        &alice,
        "[data-testid=messages]",
        "Hi Alice! <b>not bold</b>",
        WAIT,
    )
    .await;
    assert!(
        alice.find(Locator::Css(".messages b")).await.is_err(),
        "content is text, not HTML"
    );

    // The server dies without warning. Both pages notice and say so.
    server.kill().await.unwrap();
    wait_text(&alice, "[data-testid=banner]", "Reconnecting", WAIT).await;
    wait_text(&bob, "[data-testid=banner]", "Reconnecting", WAIT).await;
    screenshot(&alice, "alice-reconnecting.png").await;
    // Alice keeps typing: her message waits in the outbox, shown as such.
    say(&alice, "typed while offline").await;
    wait_text(&alice, ".line.pending", "typed while offline", WAIT).await;
    wait_text(&alice, ".line.pending .state", "sending…", WAIT).await;
    // She corrects her first message too: shown at once, saved later.
    changes::line_action(&alice, "Hello Bob", "Edit").await;
    changes::type_edit(&alice, "Hello Bob, corrected offline").await;
    wait_text(
        &alice,
        ".line.pending",
        "Hello Bob, corrected offline",
        WAIT,
    )
    .await;

    // It comes back on the same address; the pages reconnect and re-join.
    let mut server = start_server(port, data);
    wait_for_port(port).await;
    wait_text(&alice, "[data-testid=banner]", "Connected", RECONNECT_WAIT).await;
    wait_text(&bob, "[data-testid=banner]", "Connected", RECONNECT_WAIT).await;
    wait_text(&alice, "[data-testid=members]", "Bob", WAIT).await;
    wait_text(&bob, "[data-testid=members]", "Alice", WAIT).await;
    // The outbox was sent after the reconnect, exactly once.
    wait_text(&bob, "[data-testid=messages]", "typed while offline", WAIT).await;
    let mut pending_gone = false;
    for _ in 0..100 {
        if alice.find(Locator::Css(".line.pending")).await.is_err() {
            pending_gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(pending_gone, "alice's message is no longer pending");
    let copies = bob
        .find_all(Locator::XPath(
            "//div[@class='content' and text()='typed while offline']",
        ))
        .await
        .unwrap();
    assert_eq!(copies.len(), 1, "delivered once");
    // And so was her edit: Bob, who was offline too, sees it in place.
    wait_text(
        &bob,
        "[data-testid=messages]",
        "Hello Bob, corrected offline (edited)",
        WAIT,
    )
    .await;

    say(&bob, "Are you still there?").await;
    wait_text(
        &alice,
        "[data-testid=messages]",
        "Are you still there?",
        WAIT,
    )
    .await;
    say(&alice, "Yes, nothing lost on my side.").await;
    wait_text(
        &bob,
        "[data-testid=messages]",
        "Yes, nothing lost on my side.",
        WAIT,
    )
    .await;

    // Another system posts with an API key: both see it, from the bot.
    post_as_bot(data, port, "general", "Deploy of v2.3 finished").await;
    wait_text(
        &alice,
        "[data-testid=messages]",
        "Deploy of v2.3 finished",
        WAIT,
    )
    .await;
    wait_text(
        &bob,
        "[data-testid=messages]",
        "Deploy of v2.3 finished",
        WAIT,
    )
    .await;
    let tags = bob
        .find_all(Locator::XPath(
            "//div[contains(@class,'line')][.//div[@class='content' and text()='Deploy of v2.3 finished']]//span[@class='tag']",
        ))
        .await
        .unwrap();
    assert_eq!(tags.len(), 1, "the bot's message is marked");
    assert_eq!(tags[0].text().await.unwrap(), "bot");

    screenshot(&alice, "alice.png").await;
    screenshot(&bob, "bob.png").await;
    // The layout at phone width.
    bob.set_window_size(390, 844).await.unwrap();
    wait_text(&bob, "[data-testid=messages]", "nothing lost", WAIT).await;
    screenshot(&bob, "bob-phone.png").await;
    bob.set_window_size(1100, 720).await.unwrap();

    // Sending fast: 60 messages typed as fast as WebDriver can, more than
    // the server's burst of 40. The client paces itself to the rate the
    // server announced: every one arrives, in order, none refused.
    let area = alice
        .find(Locator::Css(".composer textarea"))
        .await
        .unwrap();
    let quick: String = (1..=60).map(|i| format!("quick {i:02}\u{E007}")).collect();
    area.send_keys(&quick).await.unwrap();
    wait_text(&bob, "[data-testid=messages]", "quick 60", WAIT).await;
    let seen = bob
        .execute(
            "return [...document.querySelectorAll('.messages .line .content')]
               .map(e => e.textContent).filter(t => t.startsWith('quick '))",
            vec![],
        )
        .await
        .unwrap();
    let want: Vec<String> = (1..=60).map(|i| format!("quick {i:02}")).collect();
    assert_eq!(seen, serde_json::json!(want), "all 60, in order");
    let failed = alice.find_all(Locator::Css(".line.failed")).await.unwrap();
    assert!(failed.is_empty(), "no message was refused");

    // History: a room with 60 messages opens on the newest 50, and
    // scrolling to the top loads the rest.
    fill_room(port, "history", 60).await;
    bob.set_window_size(1100, 720).await.unwrap();
    let room_input = alice.find(Locator::Css(".new-room input")).await.unwrap();
    room_input.send_keys("history\u{E007}").await.unwrap();
    wait_text(&alice, "[data-testid=messages]", "history #60", WAIT).await;
    let lines = alice
        .find_all(Locator::Css(".messages .line"))
        .await
        .unwrap();
    assert_eq!(lines.len(), 50, "a fresh join shows the newest 50");
    alice
        .execute("document.querySelector('.messages').scrollTop = 0", vec![])
        .await
        .unwrap();
    wait_text(&alice, "[data-testid=messages]", "history #01", WAIT).await;
    let lines = alice
        .find_all(Locator::Css(".messages .line"))
        .await
        .unwrap();
    assert_eq!(lines.len(), 60, "older messages were added above");

    // She reads from "history #05" at the top of the view.
    alice
        .execute(
            "[...document.querySelectorAll('.messages .line')]
               .find(e => e.textContent.includes('history #05')).scrollIntoView({block: 'start'});",
            vec![],
        )
        .await
        .unwrap();

    // Read state lives on the server: after a reload Alice is back in the
    // room she was in, and the rooms she has read show no unread badge.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    alice.refresh().await.unwrap();
    wait_text(&alice, "[data-testid=banner]", "Connected", WAIT).await;
    wait_text(&alice, ".room-header h1", "# history", WAIT).await;
    wait_text(&alice, "[data-testid=rooms]", "general", WAIT).await;
    let badges = alice.find_all(Locator::Css(".rooms .badge")).await.unwrap();
    assert!(badges.is_empty(), "no unread badge for rooms she has read");
    // And at her reading place, not at the bottom: "history #05" (older
    // than what a join replays, so paged in) is back at the top.
    let place = "const list = document.querySelector('.messages');
         const l = [...list.querySelectorAll('.line')].find(e => e.textContent.includes('history #05'));
         return l ? Math.round(l.getBoundingClientRect().top - list.getBoundingClientRect().top) : null;";
    let offset = poll_js(&alice, place, |v| {
        v.as_i64().is_some_and(|px| px.abs() < 40)
    })
    .await;
    assert!(
        offset.as_i64().is_some_and(|px| px.abs() < 40),
        "the reading place after a reload: {offset}"
    );

    // Bob comes to the history room with all 60 unread: "Jump to first
    // unread" pages back to where they begin, under "New".
    bob.find(Locator::Css(".new-room input"))
        .await
        .unwrap()
        .send_keys("history\u{E007}")
        .await
        .unwrap();
    wait_text(&bob, "[data-testid=messages]", "history #60", WAIT).await;
    bob.wait()
        .at_most(WAIT)
        .for_element(Locator::Css(".jump-new"))
        .await
        .expect("Jump to first unread")
        .click()
        .await
        .unwrap();
    let divider = "const list = document.querySelector('.messages');
         const d = list.querySelector(':scope > .new-divider');
         return d ? [d.nextElementSibling.textContent,
           Math.round(d.getBoundingClientRect().top - list.getBoundingClientRect().top)] : null;";
    let shown = poll_js(&bob, divider, |v| {
        v[1].as_i64().is_some_and(|px| (0..100).contains(&px))
    })
    .await;
    assert!(
        shown[0].as_str().is_some_and(|t| t.contains("history #01"))
            && shown[1].as_i64().is_some_and(|px| (0..100).contains(&px)),
        "New, before the first unread, at the top: {shown}"
    );
    assert!(
        gone(&bob, Locator::Css(".jump-new")).await,
        "nothing left to jump to"
    );
    screenshot(&bob, "bob-new-divider.png").await;
    let found = axe(&bob).await;
    assert!(found.is_empty(), "axe, the New divider: {found:?}");
    // Left at once (within the second the read report waits for): still
    // read, on this device and after a reload.
    open_room(&bob, "general").await;
    bob.refresh().await.unwrap();
    wait_text(&bob, "[data-testid=banner]", "Connected", WAIT).await;
    wait_text(&bob, "[data-testid=rooms]", "history", WAIT).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(bob.title().await.unwrap(), "Hearth", "nothing unread");

    // Addresses: the room on screen is in the address bar, Back and
    // Forward move between rooms, and a link to a message opens it in
    // place (older than a join replays: paged in).
    async fn path_is(page: &Client, want: &str) {
        for _ in 0..100 {
            if page.current_url().await.unwrap().path() == want {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "the address never became {want}: {}",
            page.current_url().await.unwrap()
        );
    }
    path_is(&alice, "/rooms/history").await;
    open_room(&alice, "general").await;
    path_is(&alice, "/rooms/general").await;
    alice.back().await.unwrap();
    wait_text(&alice, ".room-header h1", "history", WAIT).await;
    alice.forward().await.unwrap();
    wait_text(&alice, ".room-header h1", "general", WAIT).await;
    alice.goto(&format!("{base}rooms/history/3")).await.unwrap();
    wait_text(&alice, ".room-header h1", "history", WAIT).await;
    let in_view = "const list = document.querySelector('.messages');
         const l = [...list.querySelectorAll('.line')].find(e => e.textContent.includes('history #03'));
         if (!l) return false;
         const a = l.getBoundingClientRect(), b = list.getBoundingClientRect();
         return a.top >= b.top - 2 && a.bottom <= b.bottom + 2;";
    let shown = poll_js(&alice, in_view, |v| *v == serde_json::json!(true)).await;
    assert_eq!(shown, true, "the linked message is on screen");
    let href = alice
        .execute(
            "return [...document.querySelectorAll('.messages .line')]
               .find(e => e.textContent.includes('history #03'))
               .querySelector('a.permalink').getAttribute('href')",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        href,
        serde_json::json!("/rooms/history/3"),
        "its time is its link"
    );

    no_token_in_any_url(&alice, data).await;
    no_token_in_any_url(&bob, data).await;

    changes::replies_edits_deletes_and_topic(&alice, &bob).await;
    files::files_and_pictures(&alice, &bob).await;

    rooms_follow_the_account(&alice, &bob, driver_url, base).await;
    the_composer_keeps_drafts_and_up_edits_the_last_message(&alice).await;

    private_room_invite_removal_and_sign_out(&alice, &bob, port).await;
    the_account_screen_changes_the_password_and_signs_out_everywhere(&alice, port).await;

    alice.close().await.unwrap();
    bob.close().await.unwrap();
    server.kill().await.unwrap();
    let _ = std::fs::remove_dir_all(data);
}

/// Accounts and private rooms, as people use them: a name shows its
/// @username on hover; Alice creates a private room and invites Bob from
/// the members panel; Bob finds it, joins, talks; Alice removes him and he
/// is told; Bob signs out, and his token no longer works anywhere.
async fn private_room_invite_removal_and_sign_out(alice: &Client, bob: &Client, port: u16) {
    alice
        .find(Locator::XPath(
            "//ul[@data-testid='rooms']//button[contains(., 'general')]",
        ))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_text(alice, ".room-header h1", "general", WAIT).await;
    say(bob, "a word from Bob").await;
    wait_text(alice, "[data-testid=messages]", "a word from Bob", WAIT).await;
    let handles = alice
        .execute(
            "return [...document.querySelectorAll('.line .author')].map(e => e.title)",
            vec![],
        )
        .await
        .unwrap();
    assert!(
        handles.to_string().contains("Bob · @bob"),
        "names show @username on hover: {handles}"
    );

    // A direct message reaches Bob at once, though he is looking at
    // another room: a badge like a mention's, and the tab's title.
    alice
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css("button[aria-label='Message Bob']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_text(alice, ".room-header h1", "Bob", WAIT).await;
    say(alice, "psst, a word in private").await;
    wait_text(
        bob,
        "[data-testid=directs] .badge.mention",
        "1",
        Duration::from_secs(3),
    )
    .await;
    let title = bob.title().await.unwrap();
    assert!(title.starts_with("(1)"), "the tab counts it: {title}");
    bob.find(Locator::Css("[data-testid=directs] button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_text(
        bob,
        "[data-testid=messages]",
        "psst, a word in private",
        WAIT,
    )
    .await;
    for page in [alice, bob] {
        page.find(Locator::XPath(
            "//ul[@data-testid='rooms']//button[contains(., 'general')]",
        ))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    }

    alice
        .find(Locator::Css(".private-toggle input"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    alice
        .find(Locator::Css(".new-room input"))
        .await
        .unwrap()
        .send_keys("plans\u{E007}")
        .await
        .unwrap();
    wait_text(alice, ".room-header h1", "plans", WAIT).await;
    wait_text(alice, "[data-testid=rooms]", "plans", WAIT).await;
    wait_text(alice, "[data-testid=rooms]", "private room", WAIT).await;
    let invite = alice
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css("#invitee"))
        .await
        .unwrap();
    // The invite box completes the people she has seen (Bob, in general).
    let known = alice
        .execute(
            "return [...document.querySelectorAll('#known-people option')].map(o => o.value)",
            vec![],
        )
        .await
        .unwrap();
    let known: Vec<String> = serde_json::from_value(known).unwrap();
    assert!(
        known.contains(&"bob".to_owned()) && !known.contains(&"alice".to_owned()),
        "Bob offered to invite, not Alice herself: {known:?}"
    );
    invite.send_keys("bob\u{E007}").await.unwrap();
    wait_text(alice, "[data-testid=members]", "Bob", WAIT).await;
    wait_text(alice, ".invite", "Invited Bob (@bob)", WAIT).await;
    // Marked as invited in her list until he joins.
    let mark = "//aside[@data-testid='members']//li[.//span[contains(@class,'who') and contains(., 'Bob')]]//span[@class='tag' and text()='invited']";
    alice
        .wait()
        .at_most(WAIT)
        .for_element(Locator::XPath(mark))
        .await
        .expect("Bob marked as invited");
    screenshot(alice, "alice-private-room.png").await;

    // Bob is told of the invitation at once (`rooms_changed`), well
    // before his room list's 10-s refresh: an invitation, saying who.
    wait_text(
        bob,
        "[data-testid=invitations]",
        "Alice (@alice) invited you",
        Duration::from_secs(5),
    )
    .await;
    assert!(
        bob.find_all(Locator::XPath(
            "//ul[contains(@class,'directory')]//button[contains(., 'plans')]"
        ))
        .await
        .unwrap()
        .is_empty(),
        "an invitation, not one of the other rooms"
    );
    screenshot(bob, "bob-invited.png").await;
    let found = axe(bob).await;
    assert!(found.is_empty(), "axe, an invitation: {found:?}");
    bob.find(Locator::Css("button[aria-label='Join #plans']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_text(bob, ".room-header h1", "plans", WAIT).await;
    wait_text(bob, "[data-testid=rooms]", "plans", WAIT).await;
    assert!(
        gone(bob, Locator::Css("[data-testid=invitations]")).await,
        "taken up"
    );
    say(bob, "glad to be in on the plans").await;
    wait_text(
        alice,
        "[data-testid=messages]",
        "glad to be in on the plans",
        WAIT,
    )
    .await;
    // Here now: no longer marked as invited on Alice's screen.
    assert!(gone(alice, Locator::XPath(mark)).await, "no longer invited");

    // Remove asks first; saying no changes nothing.
    let remove = alice
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css("button[aria-label='Remove Bob']"))
        .await
        .unwrap();
    alice
        .execute(
            "window.asked = null; window.confirm = m => { window.asked = m; return false; };",
            vec![],
        )
        .await
        .unwrap();
    remove.click().await.unwrap();
    let asked = alice.execute("return window.asked", vec![]).await.unwrap();
    assert!(
        asked
            .as_str()
            .is_some_and(|m| m.contains("Remove Bob from #plans")),
        "{asked}"
    );
    alice
        .execute("window.confirm = () => true;", vec![])
        .await
        .unwrap();
    remove.click().await.unwrap();
    wait_text(bob, ".notice-bar", "You were removed from #plans", WAIT).await;
    screenshot(bob, "bob-removed.png").await;
    assert!(
        bob.find(Locator::XPath(
            "//ul[@data-testid='rooms']//button[contains(., 'plans')]"
        ))
        .await
        .is_err(),
        "the room left Bob's list"
    );

    let token = bob
        .execute(
            "return JSON.parse(localStorage.getItem('hearth.session')).token",
            vec![],
        )
        .await
        .unwrap();
    let token = token.as_str().unwrap().to_owned();
    bob.find(Locator::XPath("//button[text()='Sign out']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    bob.wait()
        .at_most(WAIT)
        .for_element(Locator::Css("#username"))
        .await
        .unwrap();
    let mut revoked = false;
    for _ in 0..50 {
        let status = reqwest::Client::new()
            .get(format!("http://127.0.0.1:{port}/api/session"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status();
        if status == 401 {
            revoked = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(revoked, "signing out revoked the token on the server");
}

/// The account screen: a wrong current password is said under it; the
/// right one changes the password; "Sign out everywhere" ends every
/// session of hers (one made elsewhere too) and shows sign-in.
async fn the_account_screen_changes_the_password_and_signs_out_everywhere(
    alice: &Client,
    port: u16,
) {
    const NEW_PASSWORD: &str = "a much newer passphrase";
    open_account(alice).await;
    let fill = |css: &'static str, text: &'static str| async move {
        let input = alice.find(Locator::Css(css)).await.unwrap();
        input.clear().await.unwrap();
        input.send_keys(text).await.unwrap();
    };
    let submit = || async {
        alice
            .find(Locator::XPath(
                "//dialog//button[normalize-space()='Change password']",
            ))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
    };
    fill("#profile-old", "not my password").await;
    fill("#profile-new", NEW_PASSWORD).await;
    submit().await;
    wait_text(
        alice,
        "#profile-password-said",
        "current password is wrong",
        WAIT,
    )
    .await;
    let invalid = alice
        .find(Locator::Css("#profile-old"))
        .await
        .unwrap()
        .attr("aria-invalid")
        .await
        .unwrap();
    assert_eq!(invalid.as_deref(), Some("true"));
    fill("#profile-old", PASSWORD).await;
    submit().await;
    wait_text(alice, "#profile-password-said", "Password changed", WAIT).await;
    screenshot(alice, "account-password-changed.png").await;

    // Signed in elsewhere with the new password.
    let http = reqwest::Client::new();
    let elsewhere: common::SessionResponse = http
        .post(format!("http://127.0.0.1:{port}/api/session"))
        .json(&serde_json::json!({"username": "alice", "password": NEW_PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    alice
        .execute("window.confirm = () => true;", vec![])
        .await
        .unwrap();
    alice
        .find(Locator::XPath(
            "//dialog//button[normalize-space()='Sign out everywhere']",
        ))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    alice
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css("#username"))
        .await
        .expect("back at sign-in");
    wait_text(alice, "form.card", "You signed out on every device", WAIT).await;
    let status = http
        .get(format!("http://127.0.0.1:{port}/api/session"))
        .bearer_auth(&elsewhere.token)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 401, "the other session ended too");
}

/// Runs axe-core in the page and returns its violations, one line each.
async fn axe(page: &Client) -> Vec<String> {
    let path =
        std::env::var("HEARTH_AXE_JS").expect("HEARTH_AXE_JS (scripts/test installs axe-core)");
    let source = std::fs::read_to_string(path).expect("axe-core is installed");
    page.execute(&source, vec![]).await.unwrap();
    let found = page
        .execute_async(
            "const done = arguments[arguments.length - 1];
             axe.run(document, { resultTypes: ['violations'] }).then(r => done(
               r.violations.map(v => v.id + ' (' + v.impact + '): ' + v.help + ' -> ' +
                 v.nodes.slice(0, 4).map(n => n.target.join(' ')).join(' | '))));",
            vec![],
        )
        .await
        .unwrap();
    serde_json::from_value(found).unwrap()
}

/// axe-core finds nothing on the sign-in page or the chat, in the light and
/// the dark scheme, at desktop and phone sizes; screenshots of each land in
/// target/e2e/ to be looked at.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_accessibility_violations_in_light_and_dark() {
    let stage = Stage::start("a11y").await;
    let (driver_url, base, port, data) = (&stage.driver_url, &stage.base, stage.port, &stage.data);
    let mut server = stage.server;
    fill_room(port, "general", 3).await;

    let mut problems = Vec::new();
    for scheme in [Scheme::Light, Scheme::Dark] {
        let name = format!("{scheme:?}").to_lowercase();
        let page = browser_in(driver_url, scheme).await;
        page.goto(base).await.unwrap();
        page.wait()
            .at_most(WAIT)
            .for_element(Locator::Css("#username"))
            .await
            .unwrap();
        for found in axe(&page).await {
            problems.push(format!("sign-in, {name}: {found}"));
        }
        screenshot(&page, &format!("signin-{name}.png")).await;
        // The sign-up form, with the errors of an empty submit showing.
        page.find(Locator::XPath("//a[text()='Create account']"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        page.find(Locator::Css("form.card button[type=submit]"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        wait_text(&page, "#username-error", "Username must be", WAIT).await;
        for found in axe(&page).await {
            problems.push(format!("sign-up with errors, {name}: {found}"));
        }
        screenshot(&page, &format!("signup-errors-{name}.png")).await;
        sign_up(
            &page,
            base,
            &format!("reader-{name}"),
            &format!("Reader {name}"),
        )
        .await;
        wait_text(&page, "[data-testid=messages]", "history #03", WAIT).await;
        // Signed in: the cursor is in the message box. The first Tab stop
        // is a link there, past the sidebar and the history.
        let active = async || {
            poll_js(&page, "return document.activeElement.id", |v| {
                v == "composer"
            })
            .await
        };
        assert_eq!(active().await, "composer", "focus after sign-in");
        let first = page
            .execute(
                "const first = document.querySelector('a[href], button, input, select, textarea');
                 first.focus();
                 return first.textContent;",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(first, "Skip to the message box");
        page.active_element()
            .await
            .unwrap()
            .send_keys("\u{E007}")
            .await
            .unwrap();
        assert_eq!(active().await, "composer", "the skip link leads to the box");
        say(&page, "Hello from the accessibility check").await;
        wait_text(&page, "[data-testid=messages]", "accessibility check", WAIT).await;
        // Formatting, checked like everything else on screen.
        say_lines(
            &page,
            "**Formatted**, _slanted_, ~~struck~~ and `inline code`, [a link](https://example.org)\n\n> a quote\n\n- one\n- two\n\n```rust\nfn main() { println!(\"a long line of code that scrolls sideways rather than wrapping\"); }\n```",
        )
        .await;
        wait_text(&page, "[data-testid=messages]", "slanted", WAIT).await;
        page.wait()
            .at_most(WAIT)
            .for_element(Locator::Css(".line .content strong"))
            .await
            .expect("bold drawn as bold");
        page.find(Locator::Css(".line .content .code-block button.copy"))
            .await
            .expect("a code block with its copy button");
        // A picture and a document, as a message shows them.
        files::give_file(&page, "drop", "harbour.png", 900, 500, 0).await;
        files::give_file(&page, "paste", "minutes.txt", 0, 0, 0).await;
        files::uploaded(&page, 2).await;
        say(&page, "The harbour, and the minutes").await;
        poll_js(
            &page,
            "const img = document.querySelector('.messages .picture img');
             return img && img.complete && img.naturalWidth > 0;",
            |v| v == true,
        )
        .await;
        for found in axe(&page).await {
            problems.push(format!("chat, {name}: {found}"));
        }
        screenshot(&page, &format!("chat-{name}.png")).await;
        // The account screen, a modal dialog, at both sizes.
        open_account(&page).await;
        for found in axe(&page).await {
            problems.push(format!("account dialog, {name}: {found}"));
        }
        screenshot(&page, &format!("account-{name}.png")).await;
        page.set_window_size(390, 844).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        screenshot(&page, &format!("account-phone-{name}.png")).await;
        for small in small_tap_targets(&page).await {
            problems.push(format!(
                "tap target under 44 px in the account dialog, {name}: {small}"
            ));
        }
        page.active_element()
            .await
            .unwrap()
            .send_keys("\u{E00C}")
            .await
            .unwrap();
        assert!(
            gone(&page, Locator::Css("dialog.profile")).await,
            "Escape closes the account dialog"
        );
        page.set_window_size(1100, 720).await.unwrap();

        page.set_window_size(390, 844).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        for found in axe(&page).await {
            problems.push(format!("chat at phone size, {name}: {found}"));
        }
        screenshot(&page, &format!("chat-phone-{name}.png")).await;
        for small in small_tap_targets(&page).await {
            problems.push(format!(
                "tap target under 44 px at phone size, {name}: {small}"
            ));
        }
        screenshot(&page, &format!("chat-phone-tapped-{name}.png")).await;
        // The emoji picker over the box, at phone size.
        page.find(Locator::Css(".composer .emoji-button"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        page.wait()
            .at_most(WAIT)
            .for_element(Locator::Css(".emoji-grid button.emoji"))
            .await
            .expect("the emoji loaded");
        for found in axe(&page).await {
            problems.push(format!("emoji picker at phone size, {name}: {found}"));
        }
        for small in small_tap_targets(&page).await {
            problems.push(format!(
                "tap target under 44 px in the emoji picker, {name}: {small}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        screenshot(&page, &format!("emoji-phone-{name}.png")).await;
        page.find(Locator::Css(".emoji-search"))
            .await
            .unwrap()
            .send_keys("\u{E00C}")
            .await
            .unwrap();
        assert!(
            gone(&page, Locator::Css(".emoji-picker")).await,
            "Escape closes the emoji picker"
        );
        // A tap in the middle of a short message selects it and does
        // nothing else (a hidden action bar once caught it).
        page.find(Locator::Css(".messages .line .content"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        let triggered = page
            .find_all(Locator::Css(".line .picker, .line form.edit"))
            .await
            .unwrap();
        assert!(
            triggered.is_empty(),
            "a tap on a message triggered an action"
        );
        phone_layout(&page, &name).await;
        if scheme == Scheme::Light {
            page.set_window_size(1100, 720).await.unwrap();
            keyboard_and_empty_state(&page).await;
        }
        page.close().await.unwrap();
    }
    server.kill().await.unwrap();
    let _ = std::fs::remove_dir_all(data);
    assert!(
        problems.is_empty(),
        "axe-core found:\n{}",
        problems.join("\n")
    );
}

/// Rooms are reachable and switchable by keyboard alone, and leaving every
/// room leaves a clear empty state, not a bare "#" and a dead button.
async fn keyboard_and_empty_state(page: &Client) {
    let room_input = page.find(Locator::Css(".new-room input")).await.unwrap();
    room_input.send_keys("second\u{E007}").await.unwrap();
    wait_text(page, ".room-header h1", "# second", WAIT).await;
    page.execute(
        "document.querySelector('.rooms button.room-link').focus()",
        vec![],
    )
    .await
    .unwrap();
    let focused = || async {
        page.execute("return document.activeElement.textContent", vec![])
            .await
            .unwrap()
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    assert!(focused().await.starts_with("# general"));
    // \u{E015} is WebDriver's ArrowDown, \u{E013} ArrowUp.
    page.active_element()
        .await
        .unwrap()
        .send_keys("\u{E015}")
        .await
        .unwrap();
    assert!(
        focused().await.starts_with("# second"),
        "ArrowDown moves to the next room"
    );
    page.active_element()
        .await
        .unwrap()
        .send_keys("\u{E013}")
        .await
        .unwrap();
    assert!(
        focused().await.starts_with("# general"),
        "ArrowUp moves back"
    );
    page.active_element()
        .await
        .unwrap()
        .send_keys("\u{E007}")
        .await
        .unwrap();
    wait_text(page, ".room-header h1", "# general", WAIT).await;
    let current = page
        .find(Locator::Css(".rooms li.active button[aria-current=page]"))
        .await
        .unwrap();
    assert!(current.text().await.unwrap().starts_with("# general"));

    // The history is one Tab stop: from it, the next is the message box.
    // Up moves into the messages (the newest first); a message in focus
    // shows its actions, and Tab reaches its buttons, not the rest.
    let focus_log = "document.querySelector('[data-testid=messages]').focus()";
    page.execute(focus_log, vec![]).await.unwrap();
    let press = |key: &'static str| async move {
        page.active_element()
            .await
            .unwrap()
            .send_keys(key)
            .await
            .unwrap();
    };
    press("\u{E004}").await; // Tab
    let id = page
        .execute("return document.activeElement.id", vec![])
        .await
        .unwrap();
    assert_eq!(id, "composer", "one Tab from the history to the box");
    page.execute(focus_log, vec![]).await.unwrap();
    press("\u{E013}").await; // ArrowUp
    press("\u{E013}").await;
    let in_line = page
        .execute(
            "const a = document.activeElement;
             const lines = [...document.querySelectorAll('.messages > .line:not(.topic-change)')];
             return [a.classList.contains('line'), lines.indexOf(a), lines.length,
                     getComputedStyle(a.querySelector('.actions')).visibility];",
            vec![],
        )
        .await
        .unwrap();
    let count = in_line[2].as_i64().unwrap();
    assert_eq!(in_line[0], true, "{in_line}");
    assert_eq!(
        in_line[1].as_i64(),
        Some(count - 2),
        "two up from the newest: {in_line}"
    );
    assert_eq!(in_line[3], "visible", "its actions show: {in_line}");
    press("\u{E004}").await;
    let inside = page
        .execute(
            "const a = document.activeElement;
             return ['BUTTON', 'A'].includes(a.tagName) && a.closest('.line') !== null;",
            vec![],
        )
        .await
        .unwrap();
    // (Its first control: a button, or the link in its text when it
    // continues the one before and shows no name.)
    assert_eq!(inside, true, "Tab from a message goes to its controls");

    for _ in 0..2 {
        page.find(Locator::Css(".room-header button.leave"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    wait_text(page, "main.room", "You are not in any room", WAIT).await;
    assert!(
        page.find(Locator::Css(".room-header")).await.is_err(),
        "no header, no Leave button, without a room"
    );
    let found = axe(page).await;
    assert!(found.is_empty(), "empty state: {found:?}");
    screenshot(page, "empty-light.png").await;
}

/// Every control on screen (and a message's actions, once it is tapped)
/// that a finger gets less than 44 × 44 CSS px of: what it says and its
/// size. A checkbox counts by its label, which takes the tap too; links
/// inside a message's text are text (WCAG 2.5.5's inline exception).
async fn small_tap_targets(page: &Client) -> Vec<String> {
    let found = page
        .execute(
            "const line = [...document.querySelectorAll('.messages .line')].pop();
             if (line) line.focus();
             const small = [];
             for (const e of document.querySelectorAll('button, select, input, textarea, a[href]')) {
               if (e.closest('.content')) continue;
               const style = getComputedStyle(e);
               if (style.visibility !== 'visible' || style.display === 'none') continue;
               const label = e.type === 'checkbox' ? e.closest('label') : null;
               const r = (label ?? e).getBoundingClientRect();
               if (r.width === 0 || r.height === 0) continue;
               if (r.right < 0 || r.left > innerWidth || r.bottom < 0 || r.top > innerHeight) continue;
               if (r.width < 44 || r.height < 44) {
                 const what = (e.getAttribute('aria-label') || e.textContent || e.placeholder || e.tagName).trim();
                 small.push(what.slice(0, 30) + ' ' + Math.round(r.width) + '×' + Math.round(r.height));
               }
             }
             return small;",
            vec![],
        )
        .await
        .unwrap();
    serde_json::from_value(found).unwrap()
}

/// At phone width the rooms are a drawer and the members a panel, both
/// reachable from the bar above the room; with the on-screen keyboard open
/// (a 500 px tall viewport) the composer and the newest message are in view.
async fn phone_layout(page: &Client, scheme: &str) {
    let in_view = |selector: &str| {
        format!(
            "const e = document.querySelector('{selector}');
             if (!e) return false;
             const r = e.getBoundingClientRect();
             return getComputedStyle(e).visibility === 'visible' && r.left >= 0
               && r.right <= innerWidth + 1 && r.top >= 0 && r.bottom <= innerHeight + 1;"
        )
    };
    // Whether `selector` is in view once the layout has settled into
    // `want` (transitions take a few hundred ms): polled, not slept on.
    let visible_once = |selector: &'static str, want: bool| {
        let script = in_view(selector);
        async move {
            let deadline = tokio::time::Instant::now() + WAIT;
            loop {
                let now = page.execute(&script, vec![]).await.unwrap() == serde_json::json!(true);
                if now == want || tokio::time::Instant::now() >= deadline {
                    return now;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    assert!(
        !visible_once(".sidebar", false).await,
        "the drawer starts closed"
    );
    let buttons = page
        .find_all(Locator::Css(".phone-bar button"))
        .await
        .unwrap();
    assert_eq!(buttons.len(), 2, "Rooms, and the member count");
    buttons[0].click().await.unwrap();
    assert!(visible_once(".sidebar", true).await, "the drawer opened");
    let small = small_tap_targets(page).await;
    assert!(
        small.is_empty(),
        "tap targets under 44 px in the drawer: {small:?}"
    );
    let found = axe(page).await;
    assert!(found.is_empty(), "the open drawer passes axe: {found:?}");
    screenshot(page, &format!("drawer-phone-{scheme}.png")).await;
    page.find(Locator::Css(".rooms li.active button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    assert!(
        !visible_once(".sidebar", false).await,
        "choosing a room closes the drawer"
    );
    let buttons = page
        .find_all(Locator::Css(".phone-bar button"))
        .await
        .unwrap();
    buttons[1].click().await.unwrap();
    assert!(
        visible_once(".side .members", true).await,
        "the member list is reachable"
    );
    // A tap on the dimmed part of the page closes it (WebDriver would aim
    // at the scrim's centre, which the panel covers).
    page.execute("document.querySelector('.scrim').click()", vec![])
        .await
        .unwrap();
    assert!(!visible_once(".side .members", false).await);

    // The keyboard takes the lower part of the screen.
    page.set_window_size(390, 500).await.unwrap();
    assert!(
        visible_once(".composer textarea", true).await,
        "the composer is in view"
    );
    assert!(
        visible_once(".messages .line:last-child", true).await,
        "the newest message is in view"
    );
    screenshot(page, &format!("chat-keyboard-{scheme}.png")).await;
    page.set_window_size(390, 844).await.unwrap();
}

/// A first visit says what Hearth is. A sign-in that matches no account
/// offers to create one under that name (the name carried to the other
/// forms); one the server refuses for now (429) says when it may be tried
/// again. (On the guests' own server: its sign-in quotas are not spent by
/// the other tests.)
async fn a_first_visit_is_introduced_and_a_refused_sign_in_says_what_next(
    driver_url: &str,
    base: &str,
) {
    let page = browser(driver_url).await;
    page.goto(base).await.unwrap();
    wait_text(&page, "form.card", "Rooms and private conversations", WAIT).await;
    let submit = async || {
        page.find(Locator::Css("form.card button[type=submit]"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
    };
    for (css, text) in [("#username", "newcomer"), ("#password", PASSWORD)] {
        page.find(Locator::Css(css))
            .await
            .unwrap()
            .send_keys(text)
            .await
            .unwrap();
    }
    submit().await;
    let offer = page
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css("p.offer a"))
        .await
        .expect("no such account: an offer to create it");
    assert!(offer.text().await.unwrap().contains("newcomer"));
    screenshot(&page, "signin-offers-sign-up.png").await;
    offer.click().await.unwrap();
    page.wait()
        .at_most(WAIT)
        .for_element(Locator::Css("#display-name"))
        .await
        .expect("the sign-up form");
    let kept = page
        .find(Locator::Css("#username"))
        .await
        .unwrap()
        .prop("value")
        .await
        .unwrap();
    assert_eq!(kept.as_deref(), Some("newcomer"), "the name carried over");

    // The name's sign-in quota spent elsewhere: the page counts down.
    page.find(Locator::XPath("//a[text()='Sign in']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let mut statuses = Vec::new();
    for _ in 0..10 {
        let status = http
            .post(format!("{base}api/session"))
            .json(&serde_json::json!({ "username": "newcomer", "password": "not it" }))
            .send()
            .await
            .unwrap()
            .status();
        statuses.push(status.as_u16());
        if status == 429 {
            break;
        }
    }
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
    page.find(Locator::Css("#password"))
        .await
        .unwrap()
        .send_keys(PASSWORD)
        .await
        .unwrap();
    submit().await;
    wait_text(&page, "form.card p.error", "Try again in", WAIT).await;
    // The page is the server's, without script: it says how long to wait,
    // keeps what was typed but the password, and takes the next attempt.
    let kept = page
        .find(Locator::Css("#username"))
        .await
        .unwrap()
        .prop("value")
        .await
        .unwrap();
    assert_eq!(kept.as_deref(), Some("newcomer"));
    let password = page
        .find(Locator::Css("#password"))
        .await
        .unwrap()
        .prop("value")
        .await
        .unwrap();
    assert_eq!(password.as_deref(), Some(""), "a password never comes back");
    let found = axe(&page).await;
    assert!(found.is_empty(), "sign-in offers and waits: {found:?}");
    page.close().await.unwrap();
}

/// Where the operator allows guests, the sign-in page offers a Guest tab: a
/// display name is enough, and the guest is shown as one to others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_signs_in_with_a_name_and_is_shown_as_a_guest() {
    let stage = Stage::start_with("guests", &["--allow-guests"]).await;
    let (driver_url, base) = (&stage.driver_url, &stage.base);
    let mut server = stage.server;
    let member = browser(driver_url).await;
    sign_up(&member, base, "member", "Member").await;

    let guest = browser(driver_url).await;
    guest.goto(base).await.unwrap();
    let tab = guest
        .wait()
        .at_most(WAIT)
        .for_element(Locator::XPath("//a[text()='Guest']"))
        .await
        .unwrap();
    tab.click().await.unwrap();
    assert!(
        guest.find(Locator::Css("#password")).await.is_err(),
        "no password for a guest"
    );
    guest
        .find(Locator::Css("#display-name"))
        .await
        .unwrap()
        .send_keys("Drifter\u{E007}")
        .await
        .unwrap();
    wait_text(&guest, "[data-testid=banner]", "Connected", WAIT).await;
    wait_text(&member, "[data-testid=members]", "Drifter", WAIT).await;
    wait_text(&member, "[data-testid=members]", "guest", WAIT).await;
    screenshot(&member, "member-sees-a-guest.png").await;
    let found = axe(&guest).await;
    assert!(found.is_empty(), "guest sign-in and chat: {found:?}");
    member.close().await.unwrap();
    guest.close().await.unwrap();
    a_first_visit_is_introduced_and_a_refused_sign_in_says_what_next(driver_url, base).await;
    server.kill().await.unwrap();
    let _ = std::fs::remove_dir_all(&stage.data);
}
