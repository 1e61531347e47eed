//! The sign-in page the server draws for a browser that is not signed in
//! (`http/signin/`): no script, the app only after signing in, the session
//! handed to the app once, and the form's errors and attacks answered.

use crate::support::{PASSWORD, TestServer};

/// A browser that follows no redirects, so each step can be looked at.
fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// A dist/ whose page is the app (a script) and links trunk's stylesheet.
fn app_page(dir: &std::path::Path) {
    std::fs::write(
        dir.join("index.html"),
        "<!doctype html><html><head><title>Hearth</title>\
         <link rel=\"stylesheet\" href=\"/hearth-0123456789abcdef.css\" integrity=\"sha384-x\"/>\
         <script type=\"module\">import init from '/app-0123456789abcdef.js'; await init();</script>\
         </head><body></body></html>",
    )
    .unwrap();
}

/// The sign-in page of a release build keeps the app's stylesheet: trunk
/// minifies that page (`minify = "on_release"`), writing the link without
/// quotes and with `rel` last, which an earlier lookup missed (the form
/// then came without its styles).
#[tokio::test]
async fn the_sign_in_page_keeps_the_stylesheet_of_a_minified_release_page() {
    let server = TestServer::start_with(|c| {
        std::fs::write(
            c.static_dir.join("index.html"),
            "<!doctype html><html lang=en><meta charset=utf-8><title>Hearth</title>\
             <link href=/favicon.ico rel=icon sizes=32x32>\
             <link href=/hearth-6d751b9133d665c1.css integrity=sha384-c91F69QCnn48d28abNbmD8uHtrD37P2GR8/KsY/EEcd8RpAqSm+DOIOyqtWUXDfs rel=stylesheet>\
             <script type=module>import init from '/frontend-9385f74aac9c126d.js';</script></head><body></body></html>",
        )
        .unwrap();
        c.allow_guests = false;
    })
    .await;
    let html = browser()
        .get(server.url("/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        html.contains("<link href=/hearth-6d751b9133d665c1.css integrity=sha384-c91F69QCnn48d28abNbmD8uHtrD37P2GR8/KsY/EEcd8RpAqSm+DOIOyqtWUXDfs rel=stylesheet>"),
        "{html}"
    );
    assert!(!html.contains("<script"), "{html}");
}

/// The sign-in form, posted from the page itself.
async fn post_form(server: &TestServer, fields: &[(&str, &str)]) -> reqwest::Response {
    post_form_with(server, &[("sec-fetch-site", "same-origin")], fields).await
}

/// The form, posted with these headers (where it came from).
async fn post_form_with(
    server: &TestServer,
    headers: &[(&str, &str)],
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let mut request = browser()
        .post(server.url("/signin"))
        .header("content-type", "application/x-www-form-urlencoded");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request
        .body(serde_urlencoded::to_string(fields).unwrap())
        .send()
        .await
        .unwrap()
}

fn header(response: &reqwest::Response, name: &str) -> String {
    response
        .headers()
        .get_all(name)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Not signed in, every route is the sign-in form (leading back to that
/// route), with the app's stylesheet and no script; signed in, the app.
#[tokio::test]
async fn a_browser_not_signed_in_gets_the_form_and_never_the_app() {
    let server = TestServer::start_with(|c| {
        app_page(&c.static_dir);
        c.allow_guests = false;
    })
    .await;
    for path in ["/", "/rooms/general"] {
        let page = browser().get(server.url(path)).send().await.unwrap();
        assert_eq!(page.status(), 200);
        assert_eq!(header(&page, "vary"), "cookie");
        assert_eq!(header(&page, "cache-control"), "no-cache");
        let csp = header(&page, "content-security-policy");
        assert!(csp.starts_with("default-src 'none'"), "{csp}");
        assert!(
            csp.contains("script-src 'none'"),
            "no script may run: {csp}"
        );
        let html = page.text().await.unwrap();
        assert!(!html.contains("<script"), "{html}");
        assert!(html.contains("<form class=\"card\" method=\"post\" action=\"/signin\""));
        assert!(
            html.contains("href=\"/hearth-0123456789abcdef.css\""),
            "{html}"
        );
        assert!(
            html.contains(&format!("name=\"next\" value=\"{path}\"")),
            "{html}"
        );
        assert!(
            html.contains("Rooms and private conversations"),
            "a first visit"
        );
        assert!(html.len() < 8_000, "a few kilobytes: {}", html.len());
    }
    // Signed out here before: welcomed back.
    let page = browser()
        .get(server.url("/"))
        .header("cookie", "hearth=out")
        .send()
        .await
        .unwrap();
    assert!(page.text().await.unwrap().contains("Welcome back"));
    // Signed in: the app.
    let page = browser()
        .get(server.url("/rooms/general"))
        .header("cookie", "theme=dark; hearth=in")
        .send()
        .await
        .unwrap();
    assert!(
        page.text()
            .await
            .unwrap()
            .contains("<script type=\"module\">")
    );
    // Sent to `/signin` by the app, the page leads back to `next` (on
    // this site only), and its tabs keep it.
    let page = browser()
        .get(server.url("/signin?next=%2Frooms%2Fplans&notice=session-ended"))
        .send()
        .await
        .unwrap();
    assert_eq!(header(&page, "cache-control"), "no-cache");
    assert!(header(&page, "content-security-policy").contains("script-src 'none'"));
    let html = page.text().await.unwrap();
    assert!(
        html.contains("name=\"next\" value=\"/rooms/plans\""),
        "{html}"
    );
    assert!(
        html.contains("href=\"/signin?mode=signup&amp;next=%2Frooms%2Fplans\""),
        "{html}"
    );
    assert!(html.contains("Your session has ended"), "{html}");
    let page = browser()
        .get(server.url("/signin?next=//evil.example"))
        .send()
        .await
        .unwrap();
    assert!(
        page.text()
            .await
            .unwrap()
            .contains("name=\"next\" value=\"/\"")
    );
    // No guests on this server: no Guest tab, and `?mode=guest` is sign-in.
    let page = browser()
        .get(server.url("/?mode=guest"))
        .send()
        .await
        .unwrap();
    let html = page.text().await.unwrap();
    assert!(!html.contains(">Guest<"), "{html}");
    assert!(html.contains("id=\"password\""));
}

/// Signing up on the page: 303 to where the person was going, the app's
/// cookie set, and the session waiting for the app in an HttpOnly cookie
/// that only the handoff gets, once.
#[tokio::test]
async fn a_sign_up_hands_its_session_to_the_app_once() {
    let server = TestServer::start_with(|c| app_page(&c.static_dir)).await;
    let answer = post_form(
        &server,
        &[
            ("mode", "signup"),
            ("username", "Alice"),
            ("display_name", "Alice L."),
            ("password", PASSWORD),
            ("next", "/rooms/plans"),
        ],
    )
    .await;
    assert_eq!(answer.status(), 303);
    assert_eq!(header(&answer, "location"), "/rooms/plans");
    let cookies = header(&answer, "set-cookie");
    assert!(cookies.contains("hearth=in; Path=/;"), "{cookies}");
    let handoff = cookies
        .lines()
        .find(|c| c.starts_with("hearth_handoff="))
        .expect("the handoff cookie");
    assert!(handoff.contains("HttpOnly"), "{handoff}");
    assert!(handoff.contains("SameSite=Strict"), "{handoff}");
    assert!(handoff.contains("Path=/api/session/handoff"), "{handoff}");
    let pair = handoff.split(';').next().unwrap().to_owned();

    let picked = browser()
        .post(server.url("/api/session/handoff"))
        .header("cookie", &pair)
        .send()
        .await
        .unwrap();
    assert_eq!(picked.status(), 200);
    assert!(
        header(&picked, "set-cookie")
            .contains("hearth_handoff=; Path=/api/session/handoff; Max-Age=0")
    );
    let session: common::Handoff = picked.json().await.unwrap();
    assert_eq!(session.user.username.as_deref(), Some("alice"));
    assert_eq!(session.user.name, "Alice L.");
    // With a first WebSocket ticket, which opens a socket as Alice.
    let url = format!(
        "ws://{}/ws?ticket={}",
        server.addr, session.ws_ticket.ticket
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    use futures_util::StreamExt;
    let welcome: common::ServerMsg =
        serde_json::from_str(ws.next().await.unwrap().unwrap().to_text().unwrap()).unwrap();
    assert!(
        matches!(&welcome, common::ServerMsg::Welcome { user, .. } if user.username.as_deref() == Some("alice")),
        "{welcome:?}"
    );
    // The token works like any other.
    let whoami = browser()
        .get(server.url("/api/session"))
        .bearer_auth(&session.token)
        .send()
        .await
        .unwrap();
    assert_eq!(whoami.status(), 200);
    // Without the cookie there is nothing to pick up.
    let none = browser()
        .post(server.url("/api/session/handoff"))
        .send()
        .await
        .unwrap();
    assert_eq!(none.status(), 404);
    // From a page served over HTTPS (behind a proxy), both cookies are
    // Secure: the token never goes out in the clear.
    let answer = post_form_with(
        &server,
        &[
            ("sec-fetch-site", "same-origin"),
            ("origin", "https://chat.example.com"),
        ],
        &[("username", "alice"), ("password", PASSWORD)],
    )
    .await;
    assert_eq!(answer.status(), 303);
    let cookies = header(&answer, "set-cookie");
    assert_eq!(cookies.matches("; Secure").count(), 2, "{cookies}");
    // A token whose session ended is not handed over.
    browser()
        .delete(server.url("/api/session"))
        .bearer_auth(&session.token)
        .send()
        .await
        .unwrap();
    let ended = browser()
        .post(server.url("/api/session/handoff"))
        .header("cookie", &pair)
        .send()
        .await
        .unwrap();
    assert_eq!(ended.status(), 401);
}

/// Errors come back under their field, with what was typed but the
/// password; a refused sign-in offers to create the account; whatever was
/// typed is escaped; a redirect never leaves the site.
#[tokio::test]
async fn refusals_say_what_next_and_typed_text_stays_text() {
    let server = TestServer::start_with(|c| app_page(&c.static_dir)).await;
    server.sign_up("bob").await;

    let empty = post_form(&server, &[("mode", "signup"), ("next", "/")]).await;
    assert_eq!(empty.status(), 400);
    let html = empty.text().await.unwrap();
    assert!(
        html.contains("id=\"username-error\" class=\"field-error\">Username must be"),
        "{html}"
    );
    assert!(html.contains("aria-invalid=\"true\""));

    let wrong = post_form(
        &server,
        &[
            ("mode", "signin"),
            ("username", "<b>newcomer</b>"),
            ("password", "not it"),
        ],
    )
    .await;
    assert_eq!(wrong.status(), 401);
    let html = wrong.text().await.unwrap();
    assert!(html.contains("Wrong username or password"), "{html}");
    assert!(
        !html.contains("<b>newcomer"),
        "typed text is escaped: {html}"
    );
    assert!(html.contains("&lt;b&gt;newcomer&lt;/b&gt;"), "{html}");
    assert!(
        html.contains("href=\"/signin?mode=signup&amp;username=%3Cb%3Enewcomer%3C%2Fb%3E\""),
        "the offer carries the name: {html}"
    );
    assert!(!html.contains("not it"), "a password never comes back");

    let taken = post_form(
        &server,
        &[
            ("mode", "signup"),
            ("username", "bob"),
            ("display_name", "Bob 2"),
            ("password", PASSWORD),
        ],
    )
    .await;
    assert_eq!(taken.status(), 409);
    assert!(
        taken
            .text()
            .await
            .unwrap()
            .contains("id=\"username-error\" class=\"field-error\">That username is taken")
    );

    for next in [
        "//evil.example/",
        "https://evil.example/",
        "/\\evil.example",
    ] {
        let answer = post_form(
            &server,
            &[("username", "bob"), ("password", PASSWORD), ("next", next)],
        )
        .await;
        assert_eq!(answer.status(), 303, "{next}");
        assert_eq!(header(&answer, "location"), "/", "{next}");
    }
}

/// A form posted from another site (to sign the victim into the
/// attacker's account) is refused, and signs nobody in.
#[tokio::test]
async fn a_form_from_another_site_signs_nobody_in() {
    let server = TestServer::start_with(|c| app_page(&c.static_dir)).await;
    server.sign_up("mallory").await;
    for (name, value) in [
        ("sec-fetch-site", "cross-site"),
        ("origin", "https://evil.example"),
    ] {
        let answer = post_form_with(
            &server,
            &[(name, value)],
            &[("username", "mallory"), ("password", PASSWORD)],
        )
        .await;
        assert_eq!(answer.status(), 403, "{name}");
        assert!(header(&answer, "set-cookie").is_empty(), "{name}");
    }
}

/// Past the per-address quota the page says how long to wait, and a
/// bystander on another address still signs in.
#[tokio::test]
async fn a_flood_of_attempts_is_told_to_wait_and_a_bystander_is_not() {
    let server = TestServer::start_with(|c| {
        app_page(&c.static_dir);
        c.auth_per_ip_per_minute = 3;
        c.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    })
    .await;
    server.sign_up("carol").await;
    let attempt = async |ip: &str, password: &str| {
        post_form_with(
            &server,
            &[("x-forwarded-for", ip)],
            &[("username", "carol"), ("password", password)],
        )
        .await
    };
    let mut last = None;
    for _ in 0..5 {
        let answer = attempt("198.51.100.7", "wrong guess").await;
        if answer.status() == 429 {
            last = Some(answer.text().await.unwrap());
            break;
        }
    }
    let html = last.expect("429 within five attempts");
    assert!(html.contains("Too many attempts. Try again in "), "{html}");
    let bystander = attempt("203.0.113.9", PASSWORD).await;
    assert_eq!(bystander.status(), 303, "another address is not held up");
}
