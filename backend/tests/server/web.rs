//! The built frontend, served: precompressed variants, cache headers,
//! security headers with a CSP that matches the page's inline loader, and
//! real 404s for missing files and unknown API paths.

use std::path::Path;

use crate::support::TestServer;

const INDEX: &str = "<!doctype html><title>Hearth</title>\
    <script type=\"module\">import init from '/app-0123456789abcdef.js'; await init();</script>";

/// A dist/ like trunk's: hashed assets with .br/.gz beside them.
fn write_dist(dir: &Path) {
    std::fs::write(dir.join("index.html"), INDEX).unwrap();
    std::fs::write(dir.join("index.html.br"), b"brotli page").unwrap();
    std::fs::write(dir.join("app-0123456789abcdef.js"), "export default 1;").unwrap();
    std::fs::write(dir.join("app-0123456789abcdef.js.br"), b"brotli bytes").unwrap();
    std::fs::write(dir.join("app-0123456789abcdef.js.gz"), b"gzip bytes").unwrap();
    std::fs::write(dir.join("favicon.ico"), b"\0\0\x01\0").unwrap();
    std::fs::write(dir.join("robots.txt"), "User-agent: *\n").unwrap();
}

/// A GET by a browser that is signed in (so `/` is the app, not the
/// sign-in page: `signin_page.rs`).
async fn get(server: &TestServer, path: &str, encoding: Option<&str>) -> reqwest::Response {
    let mut request = reqwest::Client::new()
        .get(server.url(path))
        .header("cookie", "hearth=in");
    if let Some(encoding) = encoding {
        request = request.header("accept-encoding", encoding);
    }
    request.send().await.unwrap()
}

fn header<'a>(response: &'a reqwest::Response, name: &str) -> &'a str {
    response
        .headers()
        .get(name)
        .map(|v| v.to_str().unwrap())
        .unwrap_or_default()
}

#[tokio::test]
async fn assets_go_out_precompressed_and_cached_for_a_year() {
    let server = TestServer::start_with(|c| write_dist(&c.static_dir)).await;
    let br = get(&server, "/app-0123456789abcdef.js", Some("br, gzip")).await;
    assert_eq!(br.status(), 200);
    assert_eq!(header(&br, "content-encoding"), "br");
    assert_eq!(
        header(&br, "cache-control"),
        "public, max-age=31536000, immutable"
    );
    assert_eq!(br.bytes().await.unwrap().as_ref(), b"brotli bytes");

    let gz = get(&server, "/app-0123456789abcdef.js", Some("gzip")).await;
    assert_eq!(header(&gz, "content-encoding"), "gzip");
    let plain = get(&server, "/app-0123456789abcdef.js", None).await;
    assert_eq!(header(&plain, "content-encoding"), "");
    assert_eq!(plain.text().await.unwrap(), "export default 1;");
}

#[tokio::test]
async fn the_page_is_not_cached_and_carries_a_strict_csp() {
    let server = TestServer::start_with(|c| write_dist(&c.static_dir)).await;
    for path in ["/", "/rooms/general", "/index.html"] {
        let page = get(&server, path, None).await;
        assert_eq!(page.status(), 200, "{path}");
        assert_eq!(header(&page, "cache-control"), "no-cache", "{path}");
        assert_eq!(header(&page, "x-content-type-options"), "nosniff");
        assert_eq!(header(&page, "referrer-policy"), "no-referrer");
        let csp = header(&page, "content-security-policy").to_owned();
        assert!(csp.starts_with("default-src 'self'"), "{path}: {csp}");
        assert!(csp.contains("'wasm-unsafe-eval'"));
        assert!(!csp.contains("unsafe-inline"), "{csp}");
        // The hash of the inline loader, so the page still boots.
        use base64::Engine;
        use sha2::Digest;
        let script = "import init from '/app-0123456789abcdef.js'; await init();";
        let hash = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(script));
        assert!(csp.contains(&format!("'sha256-{hash}'")), "{csp}");
        assert_eq!(page.text().await.unwrap(), INDEX);
    }
}

/// The page itself goes out precompressed too (it is the first thing a
/// visit loads), with the CSP of the page it is a copy of.
#[tokio::test]
async fn the_page_goes_out_precompressed_to_browsers_that_accept_it() {
    let server = TestServer::start_with(|c| write_dist(&c.static_dir)).await;
    for path in ["/", "/rooms/general"] {
        let page = get(&server, path, Some("gzip, deflate, br")).await;
        assert_eq!(page.status(), 200, "{path}");
        assert_eq!(header(&page, "content-encoding"), "br", "{path}");
        assert_eq!(header(&page, "vary"), "accept-encoding, cookie");
        assert_eq!(header(&page, "cache-control"), "no-cache");
        assert!(header(&page, "content-security-policy").contains("'wasm-unsafe-eval'"));
        assert_eq!(page.bytes().await.unwrap().as_ref(), b"brotli page");
        // No gzip copy: a gzip-only browser gets the page as it is.
        let plain = get(&server, path, Some("gzip")).await;
        assert_eq!(header(&plain, "content-encoding"), "");
        assert_eq!(plain.text().await.unwrap(), INDEX);
    }
}

#[tokio::test]
async fn missing_files_and_unknown_api_paths_are_404s_not_the_app() {
    let server = TestServer::start_with(|c| write_dist(&c.static_dir)).await;
    let icon = get(&server, "/favicon.ico", None).await;
    assert_eq!(icon.status(), 200);
    assert_eq!(header(&icon, "content-type"), "image/x-icon");
    let robots = get(&server, "/robots.txt", None).await;
    assert_eq!(robots.status(), 200);
    assert!(header(&robots, "content-type").starts_with("text/plain"));

    for path in [
        "/missing.png",
        "/app-ffffffffffffffff.js",
        "/deep/path/x.css",
    ] {
        let response = get(&server, path, None).await;
        assert_eq!(response.status(), 404, "{path}");
        assert!(
            !response.text().await.unwrap().contains("<title>"),
            "{path} is not the app"
        );
    }
    for path in ["/api/nope", "/api/rooms/general/nope", "/api"] {
        let response = get(&server, path, None).await;
        assert_eq!(response.status(), 404, "{path}");
        assert!(
            header(&response, "content-type").starts_with("application/json"),
            "{path}"
        );
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error"], "not_found", "{path}");
    }
    // API answers carry the security headers too.
    let health = get(&server, "/healthz", None).await;
    assert_eq!(header(&health, "x-content-type-options"), "nosniff");
}
