//! The JavaScript package (`scripts/js-package`, client-web with `js`) in
//! headless Chromium: its example page, with no framework, signs in, joins,
//! sends and receives; the server is killed and restarted, and what was
//! typed meanwhile is stored once, with nothing shown twice. axe-core finds
//! nothing on the page. Talks with a person on the native client. And the
//! same page served from another origin, which the server allows (and one
//! it does not).

use std::path::Path;

use fantoccini::Locator;
use hearth_client::{Event, ServerMsg};

use super::{
    PASSWORD, RECONNECT_WAIT, Stage, WAIT, axe, browser, screenshot, start_server_in,
    wait_for_port, wait_text, workspace,
};

/// The app's page (the server needs one) and the package beside it, in
/// `dir`.
fn static_dir(dir: &Path) -> std::path::PathBuf {
    let package = workspace().join("target/js-package");
    assert!(
        package.join("hearth_client_bg.wasm").exists(),
        "{} is missing: run scripts/js-package first (scripts/test does)",
        package.display()
    );
    std::fs::create_dir_all(dir).unwrap();
    std::fs::copy(workspace().join("dist/index.html"), dir.join("index.html")).unwrap();
    for file in std::fs::read_dir(&package).unwrap() {
        let file = file.unwrap().path();
        if file.is_file() {
            std::fs::copy(&file, dir.join(file.file_name().unwrap())).unwrap();
        }
    }
    dir.to_owned()
}

/// Waits until `client`'s events bring a message saying `text`.
async fn heard(events: &mut hearth_client::Events, text: &str) {
    tokio::time::timeout(RECONNECT_WAIT, async {
        loop {
            match events.next().await {
                Some(Event::Server(ServerMsg::Message(m))) if m.content == text => return,
                Some(_) => {}
                None => panic!("the client stopped"),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("never heard {text:?}"));
}

/// How many lines of the page's list say `text` (after the name).
async fn lines_saying(page: &fantoccini::Client, text: &str) -> usize {
    let count = page
        .execute(
            "return [...document.querySelectorAll('#messages li')]
               .filter(li => li.textContent.endsWith(': ' + arguments[0])).length",
            vec![serde_json::json!(text)],
        )
        .await
        .unwrap();
    count.as_u64().unwrap() as usize
}

async fn send_from_page(page: &fantoccini::Client, text: &str) {
    let input = page.find(Locator::Css("#text")).await.unwrap();
    input.send_keys(text).await.unwrap();
    input.send_keys("\u{E007}").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_js_package_chats_from_a_plain_page_and_survives_a_server_restart() {
    let files = std::env::temp_dir().join(format!("hearth-js-{}", uuid::Uuid::new_v4()));
    let dist = static_dir(&files);
    let stage = Stage::start_in("js-package", &[], Some(&dist)).await;
    let mut server = stage.server;
    let (port, base, data) = (stage.port, &stage.base, &stage.data);
    let native = hearth_client::Server::new(base).unwrap();
    native.sign_up("alice", PASSWORD, "Alice").await.unwrap();
    let bob = native.sign_up("bob", PASSWORD, "Bob").await.unwrap();
    let bob = hearth_client::Client::connect(&bob);
    let mut bob_hears = bob.events();
    bob.join("general").await.unwrap();

    let page = browser(&stage.driver_url).await;
    page.goto(&format!("{base}example.html")).await.unwrap();
    let found = axe(&page).await;
    assert!(found.is_empty(), "axe on the sign-in form: {found:#?}");
    submit_sign_in(&page).await;
    wait_text(&page, "#status", "Connected", WAIT).await;
    wait_text(&page, "#room-name", "#general", WAIT).await;

    send_from_page(&page, "from a plain page").await;
    heard(&mut bob_hears, "from a plain page").await;
    bob.send("general", "hello, page").await.unwrap();
    wait_text(&page, "#messages", "Bob: hello, page", WAIT).await;
    let found = axe(&page).await;
    assert!(found.is_empty(), "axe on the chat: {found:#?}");
    screenshot(&page, "js-package-example.png").await;

    // The server dies; the page says so, and what is typed waits.
    server.kill().await.unwrap();
    wait_text(&page, "#status", "Reconnecting", WAIT).await;
    send_from_page(&page, "typed while the server was down").await;
    let server = start_server_in(port, data, &[], &dist);
    wait_for_port(port).await;
    wait_text(&page, "#status", "Connected", RECONNECT_WAIT).await;
    heard(&mut bob_hears, "typed while the server was down").await;
    wait_text(
        &page,
        "#messages",
        "Alice: typed while the server was down",
        WAIT,
    )
    .await;

    // Stored once each, in order; and the page, which resumed #general
    // from the last message it had, shows each once.
    let alice = native.sign_in("alice", PASSWORD).await.unwrap();
    let said: Vec<String> = alice
        .history("general", None, 50)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.content)
        .collect();
    assert_eq!(
        said,
        [
            "from a plain page",
            "hello, page",
            "typed while the server was down"
        ]
    );
    for text in &said {
        assert_eq!(lines_saying(&page, text).await, 1, "{text:?} on the page");
    }
    page.close().await.unwrap();
    drop(server);
}

/// Serves `dir` on `port` (127.0.0.1): a web app's own origin, elsewhere
/// than the Hearth server.
async fn another_origin(dir: &Path, port: u16) {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let files = axum::Router::new().fallback_service(tower_http::services::ServeDir::new(dir));
    tokio::spawn(async move { axum::serve(listener, files).await.unwrap() });
}

async fn sign_in_on(page: &fantoccini::Client, url: &str) {
    page.goto(url).await.unwrap();
    submit_sign_in(page).await;
}

/// Signs in as Alice with the page's form.
async fn submit_sign_in(page: &fantoccini::Client) {
    for (field, value) in [("#username", "alice"), ("#password", PASSWORD)] {
        let input = page.find(Locator::Css(field)).await.unwrap();
        input.send_keys(value).await.unwrap();
    }
    page.find(Locator::Css("#signin button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

/// A web app on another origin uses the package against a server that
/// allows that origin (`--allowed-origin`: its WebSockets, and the API by
/// CORS); from an origin the server does not list, signing in fails and
/// says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_js_package_works_from_another_origin_the_server_allows() {
    let files = std::env::temp_dir().join(format!("hearth-js-{}", uuid::Uuid::new_v4()));
    let dist = static_dir(&files);
    let (app_port, stranger_port) = (super::unused_port(), super::unused_port());
    let app = format!("http://127.0.0.1:{app_port}");
    let stage = Stage::start_in("js-cors", &["--allowed-origin", &app], Some(&dist)).await;
    another_origin(&dist, app_port).await;
    another_origin(&dist, stranger_port).await;
    let hearth = format!("http://127.0.0.1:{}", stage.port);
    let native = hearth_client::Server::new(&hearth).unwrap();
    native.sign_up("alice", PASSWORD, "Alice").await.unwrap();
    let bob = native.sign_up("bob", PASSWORD, "Bob").await.unwrap();
    let bob = hearth_client::Client::connect(&bob);
    let mut bob_hears = bob.events();
    bob.join("general").await.unwrap();

    let page = browser(&stage.driver_url).await;
    sign_in_on(&page, &format!("{app}/example.html?server={hearth}")).await;
    wait_text(&page, "#status", "Connected", WAIT).await;
    send_from_page(&page, "from another origin").await;
    heard(&mut bob_hears, "from another origin").await;
    bob.send("general", "welcome, app").await.unwrap();
    wait_text(&page, "#messages", "Bob: welcome, app", WAIT).await;

    let stranger = format!("http://127.0.0.1:{stranger_port}/example.html?server={hearth}");
    sign_in_on(&page, &stranger).await;
    wait_text(&page, "#error", "cannot be reached", WAIT).await;
    page.close().await.unwrap();
}
