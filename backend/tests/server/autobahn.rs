//! Autobahn|Testsuite (`wstest -m fuzzingclient`), the WebSocket world's
//! conformance suite, against the real server: sections 1-7 and 9.
//!
//! Two things stand between the suite and Hearth, and this test bridges
//! both without a test-only door in the server:
//! - Hearth's sockets need a one-time ticket (`/ws?ticket=`). A small proxy
//!   here takes each of the suite's connections, fetches a ticket for it
//!   with a session of its own, puts it in the request line, and then only
//!   copies bytes.
//! - Hearth is not an echo server: a message that is not one of its JSON
//!   frames is answered with an `error` frame (and too many of them close
//!   with 4008). So a case is judged by what the suite can judge without an
//!   echo: the closing behaviour always, and the case's behaviour unless
//!   what it expected was an echoed message (docs/protocol.md lists the
//!   sections and why).
//!
//! The suite runs on Python 2.7 (`autobahntestsuite` from PyPI); scripts/test
//! installs it and says where in `HEARTH_WSTEST`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::TestServer;

fn wstest() -> PathBuf {
    if let Ok(path) = std::env::var("HEARTH_WSTEST") {
        return PathBuf::from(path);
    }
    let pyenv = std::env::var("PYENV_ROOT").unwrap_or_else(|_| "/root/.pyenv".into());
    let candidate = PathBuf::from(pyenv).join("versions/2.7.18/bin/wstest");
    assert!(
        candidate.exists(),
        "wstest (autobahntestsuite on Python 2.7) not found: run scripts/test, \
         or set HEARTH_WSTEST"
    );
    candidate
}

/// Accepts the suite's connections and hands each to the server with a
/// fresh ticket in its request line. Returns the proxy's port.
async fn ticket_proxy(server: std::net::SocketAddr, token: String) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let http = reqwest::Client::new();
    tokio::spawn(async move {
        loop {
            let Ok((client, _)) = listener.accept().await else {
                return;
            };
            let (http, token) = (http.clone(), token.clone());
            tokio::spawn(async move {
                let _ = bridge(client, server, &http, &token).await;
            });
        }
    });
    port
}

async fn bridge(
    mut client: TcpStream,
    server: std::net::SocketAddr,
    http: &reqwest::Client,
    token: &str,
) -> std::io::Result<()> {
    // The request head, and whatever followed it in the same reads.
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    let end = loop {
        let n = client.read(&mut buf).await?;
        if n == 0 || head.len() > 64 * 1024 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
        if let Some(at) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
    };
    let ticket: common::WsTicket = http
        .post(format!("http://{server}/api/ws-ticket"))
        .bearer_auth(token)
        .send()
        .await
        .map_err(std::io::Error::other)?
        .json()
        .await
        .map_err(std::io::Error::other)?;
    let text = String::from_utf8_lossy(&head[..end]).into_owned();
    let (request_line, rest) = text.split_once("\r\n").unwrap_or((&text, ""));
    let mut parts = request_line.splitn(3, ' ');
    let (method, _path, version) = (parts.next(), parts.next(), parts.next());
    let rewritten = format!(
        "{} /ws?ticket={} {}\r\n{}",
        method.unwrap_or("GET"),
        ticket.ticket,
        version.unwrap_or("HTTP/1.1"),
        rest
    );
    let mut upstream = TcpStream::connect(server).await?;
    upstream.set_nodelay(true)?;
    client.set_nodelay(true)?;
    upstream.write_all(rewritten.as_bytes()).await?;
    upstream.write_all(&head[end..]).await?;
    tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
    Ok(())
}

/// What one case's summary in `index.json` says.
#[derive(serde::Deserialize)]
struct Summary {
    behavior: String,
    #[serde(rename = "behaviorClose")]
    behavior_close: String,
    #[serde(rename = "reportfile")]
    report_file: String,
}

const PASSING: [&str; 3] = ["OK", "NON-STRICT", "INFORMATIONAL"];

/// The suite writes its reports with Python 2, which escapes lone
/// surrogates and cuts long strings mid-escape; serde_json takes neither.
/// Such an escape becomes U+FFFD (only payload texts have them).
fn sanitize(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' && chars.peek() == Some(&'u') {
            chars.next();
            let hex: String = std::iter::from_fn(|| chars.next_if(char::is_ascii_hexdigit))
                .take(4)
                .collect();
            let valid = hex.len() == 4
                && u32::from_str_radix(&hex, 16).is_ok_and(|n| !(0xD800..=0xDFFF).contains(&n));
            out.push_str(if valid { "\\u" } else { "\\ufffd" });
            if valid {
                out.push_str(&hex);
            }
        } else if c == '\\' {
            out.push(c);
            if let Some(next) = chars.next() {
                out.push(next);
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The events of a case that are not messages: what the suite can judge
/// of a server that never echoes (pongs, chiefly).
fn without_messages(events: &serde_json::Value) -> Vec<serde_json::Value> {
    events
        .as_array()
        .map(|events| {
            events
                .iter()
                .filter(|event| event.get(0).and_then(|k| k.as_str()) != Some("message"))
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

/// Why a case that Autobahn failed still passes for a server that is not an
/// echo server, or `None` if it does not.
fn excused(report: &serde_json::Value, max_frame: usize) -> Option<&'static str> {
    let expected = report["expected"].as_object()?;
    let wanted_echo = expected.values().any(|events| {
        events.as_array().is_some_and(|events| {
            events
                .iter()
                .any(|event| event.get(0).and_then(|k| k.as_str()) == Some("message"))
        })
    });
    let echo_only = report["result"].as_str().is_some_and(|r| {
        [
            "Expected text message",
            "Expected binary message",
            "Echo'ed message",
        ]
        .iter()
        .any(|start| r.starts_with(start))
    });
    let behavior_ok = PASSING.contains(&report["behavior"].as_str()?)
        || echo_only
        || expected
            .values()
            .any(|events| without_messages(events) == without_messages(&report["received"]));
    if !behavior_ok {
        return None;
    }
    let wanted_echo = wanted_echo || echo_only;
    let close = report["behaviorClose"].as_str()?;
    if PASSING.contains(&close) {
        return Some(if wanted_echo {
            "judged without the echo"
        } else {
            "passes"
        });
    }
    let local = report["localCloseCode"].as_u64();
    let remote = report["remoteCloseCode"].as_u64();
    // The suite failed the connection itself (1001) because the echo was
    // not there, and the server answered its close with its own code.
    if wanted_echo && report["failedByMe"] == true && local.is_some() && local == remote {
        return Some("judged without the echo");
    }
    // A message over --max-frame-bytes is refused with 1009, as documented.
    // Section 9 names its sizes in the description: "… (256k)", "(4M)".
    let size = report["description"].as_str().and_then(|d| {
        let (_, rest) = d.rsplit_once('(')?;
        let (number, _) = rest.split_once(')')?;
        let (digits, unit) = number.split_at(number.len().checked_sub(1)?);
        let scale = match unit {
            "k" => 1 << 10,
            "M" => 1 << 20,
            _ => return None,
        };
        digits.parse::<usize>().ok().map(|n| n * scale)
    });
    if remote == Some(1009) && size.is_some_and(|size| size > max_frame) {
        return Some("over the frame limit: 1009");
    }
    None
}

/// The case patterns each `wstest` process runs: the suite is sequential
/// and most of its time is spent waiting (for echoes that never come, up
/// to its own timeouts), so a few run side by side.
const SHARDS: [&[&str]; 5] = [
    &["1.1.*", "3.*", "4.*"],
    &["1.2.*", "7.*"],
    &["2.*", "5.*", "9.*"],
    &[
        "6.1.*", "6.2.*", "6.3.*", "6.4.*", "6.5.*", "6.6.*", "6.7.*", "6.8.*",
    ],
    &[
        "6.9.*", "6.10.*", "6.11.*", "6.12.*", "6.13.*", "6.14.*", "6.15.*", "6.16.*", "6.17.*",
        "6.18.*", "6.19.*", "6.20.*", "6.21.*", "6.22.*", "6.23.*",
    ],
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn autobahn_fuzzingclient_sections_1_to_7_and_9() {
    let wstest = wstest();
    let server = TestServer::start_with(|c| {
        c.max_connections_per_user = 10_000;
        c.max_connections_per_ip = 10_000;
    })
    .await;
    let max_frame = 65_536;
    let session = server.sign_in("autobahn").await;
    let port = ticket_proxy(server.addr, session.token.clone()).await;
    let out = crate::support::temp_dir();
    let runs = SHARDS.iter().enumerate().map(|(shard, cases)| {
        let dir = out.join(format!("shard{shard}"));
        std::fs::create_dir_all(&dir).unwrap();
        let spec = serde_json::json!({
            "outdir": dir.join("reports").to_string_lossy(),
            "servers": [{"agent": "hearth", "url": format!("ws://127.0.0.1:{port}")}],
            "cases": cases,
            "exclude-cases": [],
            "exclude-agent-cases": {}
        });
        std::fs::write(dir.join("spec.json"), spec.to_string()).unwrap();
        let wstest = wstest.clone();
        async move {
            let status = tokio::time::timeout(
                Duration::from_secs(600),
                tokio::process::Command::new(&wstest)
                    .args(["-m", "fuzzingclient", "-s", "spec.json"])
                    .current_dir(&dir)
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .kill_on_drop(true)
                    .status(),
            )
            .await
            .expect("the suite finished in time")
            .expect("wstest runs");
            assert!(status.success(), "wstest: {status}");
            dir.join("reports")
        }
    });
    let shards = futures_util::future::join_all(runs).await;

    let mut by_section: BTreeMap<u32, (u32, u32, u32)> = BTreeMap::new();
    let mut failures = Vec::new();
    let mut total = 0;
    for reports in shards {
        let index: BTreeMap<String, BTreeMap<String, Summary>> =
            serde_json::from_slice(&std::fs::read(reports.join("index.json")).unwrap()).unwrap();
        for (case, summary) in &index["hearth"] {
            total += 1;
            let section = case.split('.').next().unwrap().parse().unwrap();
            let entry = by_section.entry(section).or_default();
            entry.0 += 1;
            if PASSING.contains(&summary.behavior.as_str())
                && PASSING.contains(&summary.behavior_close.as_str())
            {
                entry.1 += 1;
                continue;
            }
            let raw = std::fs::read_to_string(reports.join(&summary.report_file)).unwrap();
            let report: serde_json::Value =
                serde_json::from_str(&sanitize(&raw)).unwrap_or_else(|err| panic!("{case}: {err}"));
            match excused(&report, max_frame) {
                Some("passes") => entry.1 += 1,
                Some(_) => entry.2 += 1,
                None => failures.push(format!(
                    "{case}: behavior {} close {} ({}; {})",
                    summary.behavior,
                    summary.behavior_close,
                    report["description"].as_str().unwrap_or_default(),
                    report["resultClose"].as_str().unwrap_or_default(),
                )),
            }
        }
    }
    for (section, (all, passed, judged)) in &by_section {
        println!(
            "autobahn section {section}: {all} cases: {passed} pass, {judged} pass judged without an echo"
        );
    }
    assert!(total > 250, "only {total} cases ran");
    assert!(
        failures.is_empty(),
        "{} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
