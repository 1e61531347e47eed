//! The three servers the fan-out benchmarks compare (`compare.rs`,
//! `many_rooms.rs`): Hearth, the "floor" (`floor.rs`) and Socket.IO 4 on
//! Node (`bench/socketio/`), each started as a process of its own on a
//! free port, and what a client needs to speak to them.

// Each benchmark uses part of this.
#![allow(dead_code)]

use std::process::Stdio;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::process;

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    Floor,
    SocketIo,
    Hearth,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Floor, Kind::SocketIo, Kind::Hearth];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Floor => "floor",
            Kind::SocketIo => "Socket.IO 4",
            Kind::Hearth => "Hearth",
        }
    }

    /// As `COMPARE_ONLY` names it.
    pub fn key(self) -> &'static str {
        match self {
            Kind::Floor => "floor",
            Kind::SocketIo => "socketio",
            Kind::Hearth => "hearth",
        }
    }

    /// The kinds to run: all, or the one `COMPARE_ONLY` names (to profile
    /// it alone; ratios then mean nothing).
    pub fn selected() -> Vec<Kind> {
        let only = std::env::var("COMPARE_ONLY").ok();
        Kind::ALL
            .into_iter()
            .filter(|kind| only.as_deref().is_none_or(|o| o == kind.key()))
            .collect()
    }
}

pub struct Server {
    pub kind: Kind,
    pub child: tokio::process::Child,
    pub port: u16,
    dir: std::path::PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn workspace_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// Starts `kind` with its open-file limit raised to the hard limit, and
/// waits until it listens. Hearth gets every per-client limit lifted, an
/// SQLite store in a temp dir, `hearth_args`, and `COMPARE_HEARTH_ARGS`'s
/// (for example `--metrics-token x`).
pub async fn start(kind: Kind, hearth_args: &[&str]) -> Server {
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("hearth-bench-{port}"));
    std::fs::create_dir_all(&dir).unwrap();
    let (program, args): (std::path::PathBuf, Vec<String>) = match kind {
        Kind::Floor => (
            process::release_dir().join("examples/floor"),
            vec![port.to_string()],
        ),
        Kind::SocketIo => {
            let bench = workspace_dir().join("bench/socketio");
            if !bench.join("node_modules").exists() {
                let status = std::process::Command::new("npm")
                    .args(["ci", "--no-audit", "--no-fund"])
                    .current_dir(&bench)
                    .status()
                    .expect("npm is installed");
                assert!(status.success(), "npm ci in bench/socketio failed");
            }
            let script = bench.join("server.js").display().to_string();
            ("node".into(), vec![script, port.to_string()])
        }
        Kind::Hearth => {
            let mut args: Vec<String> = [
                "--send-rate",
                "1000000",
                "--send-burst",
                "1000000",
                "--allow-guests",
                "--auth-per-ip-per-minute",
                "1000000",
                "--auth-per-username-per-minute",
                "1000000",
                "--max-connections-per-ip",
                "1000000",
                "--max-http-per-ip",
                "1000000",
                "--max-http-connections",
                "1000000",
                "--api-per-ip-per-minute",
                "1000000",
                "--rooms-per-user-per-hour",
                "1000000",
                "--rooms-per-ip-per-hour",
                "1000000",
            ]
            .map(str::to_owned)
            .to_vec();
            args.extend(["--listen".into(), format!("127.0.0.1:{port}")]);
            for flag in ["--data-dir", "--static-dir"] {
                args.extend([flag.to_owned(), dir.display().to_string()]);
            }
            args.extend(hearth_args.iter().map(|a| a.to_string()));
            args.extend(
                std::env::var("COMPARE_HEARTH_ARGS")
                    .unwrap_or_default()
                    .split_whitespace()
                    .map(str::to_owned),
            );
            (process::release_dir().join("hearth"), args)
        }
    };
    let mut command = tokio::process::Command::new("sh");
    command
        .arg("-c")
        .arg(r#"ulimit -n "$(ulimit -Hn)"; exec "$0" "$@""#)
        .arg(&program)
        .args(&args);
    let child = command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("start {kind:?}: {e} (build the examples with --release)"));
    for _ in 0..400 {
        if TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return Server {
                kind,
                child,
                port,
                dir,
            };
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{kind:?} did not start");
}

impl Server {
    pub fn pid(&self) -> u32 {
        self.child.id().unwrap()
    }

    /// CPU time the server has used (user + system), from /proc.
    pub fn cpu_time(&self) -> Duration {
        process::cpu_time(self.pid())
    }
}

/// A WebSocket to `url`, with a bearer token if given.
pub async fn ws(url: String, token: Option<&str>) -> Ws {
    try_ws(url, token)
        .await
        .expect("the server takes the connection")
}

/// `ws`, or `None` if the server refused or is gone.
pub async fn try_ws(url: String, token: Option<&str>) -> Option<Ws> {
    let mut request = url.into_client_request().unwrap();
    if let Some(token) = token {
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
    }
    tokio_tungstenite::connect_async_with_config(request, None, true)
        .await
        .ok()
        .map(|(ws, _)| ws)
}

/// Reads until a text frame `want` accepts.
pub async fn next_text(ws: &mut Ws, want: impl Fn(&str) -> bool) {
    let mut seen = std::collections::VecDeque::new();
    while let Some(Ok(frame)) = ws.next().await {
        match frame {
            Message::Text(t) if want(t.as_str()) => return,
            other => {
                if seen.len() == 4 {
                    seen.pop_front();
                }
                seen.push_back(other);
            }
        }
    }
    panic!("connection ended during setup; the last frames: {seen:?}");
}

pub fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

/// The send time in a delivered frame's content ("t<micros>-…").
pub fn sent_at(text: &str) -> Option<u64> {
    let start = text.find("\"content\":\"t")? + "\"content\":\"t".len();
    let digits = &text[start..];
    let end = digits.find(|c: char| !c.is_ascii_digit())?;
    digits[..end].parse().ok()
}

/// Latency quantile `q` of sorted microseconds, in milliseconds.
pub fn quantile_ms(sorted: &[u32], q: f64) -> f64 {
    sorted
        .get(((sorted.len() as f64 * q) as usize).min(sorted.len().saturating_sub(1)))
        .map_or(f64::NAN, |&us| f64::from(us) / 1000.0)
}
