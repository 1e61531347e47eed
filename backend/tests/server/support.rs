//! Test harness: the real server on port 0, real HTTP and WebSocket clients.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use backend::{Config, Server};
use common::{ServerMsg, SessionResponse, User};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

/// How long a test waits for a frame it expects before failing.
pub const WAIT: Duration = Duration::from_secs(10);

pub struct TestServer {
    pub server: Option<Server>,
    pub addr: SocketAddr,
    pub dir: PathBuf,
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> TestServer {
        let dir = temp_dir();
        let static_dir = dir.join("static");
        std::fs::create_dir_all(&static_dir).unwrap();
        std::fs::write(
            static_dir.join("index.html"),
            "<!doctype html><title>hearth test</title>",
        )
        .unwrap();
        let mut config = Config::for_tests(dir.join("data"));
        config.static_dir = static_dir;
        tweak(&mut config);
        let server = backend::start(config).await.expect("server starts");
        let addr = server.local_addr();
        TestServer {
            server: Some(server),
            addr,
            dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn sign_in(&self, name: &str) -> SessionResponse {
        sign_in_at(self.addr, name).await
    }

    /// Creates the account `username` (password `PASSWORD`) and signs in.
    pub async fn sign_up(&self, username: &str) -> SessionResponse {
        sign_up_at(self.addr, username).await
    }

    /// An API call on this server: `path` starts with `/api/`.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        call(method, &self.url(path), token, body).await
    }

    /// Signs in as `name` and connects; returns after `welcome`.
    pub async fn client(&self, name: &str) -> Client {
        let session = self.sign_in(name).await;
        self.connect(&session).await
    }

    pub async fn connect(&self, session: &SessionResponse) -> Client {
        connect_at(self.addr, session).await
    }

    /// Like `client`, but with a small, fixed kernel receive buffer (no
    /// autotuning), so a client that stops reading backs up quickly.
    pub async fn client_with_small_buffer(&self, name: &str) -> Client {
        let session = self.sign_in(name).await;
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(16 * 1024).unwrap();
        let stream = socket.connect(self.addr).await.unwrap();
        let request = ws_request(self.addr, &session.token);
        let (ws, _) = tokio_tungstenite::client_async(request, MaybeTlsStream::Plain(stream))
            .await
            .expect("websocket connects");
        welcomed(ws, &session).await
    }
}

/// The upgrade request for `/ws` on `addr`, authenticated by the token in
/// a header (never in the URL).
pub fn ws_request(
    addr: impl std::fmt::Display,
    token: &str,
) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = format!("ws://{addr}/ws").into_client_request().unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

/// Signs in as a guest named `name` on the server at `addr` (`host:port`),
/// e.g. a child process (which needs `--allow-guests`). Every call is a new
/// user, as two people with one display name are.
pub async fn sign_in_at(addr: impl std::fmt::Display, name: &str) -> SessionResponse {
    let response = reqwest::Client::new()
        .post(format!("http://{addr}/api/session"))
        .json(&serde_json::json!({ "name": name }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// Connects to the server at `addr`; returns after `welcome`.
pub async fn connect_at(addr: impl std::fmt::Display, session: &SessionResponse) -> Client {
    let (ws, _) = connect_async(ws_request(addr, &session.token))
        .await
        .expect("websocket connects");
    welcomed(ws, session).await
}

async fn welcomed(
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    session: &SessionResponse,
) -> Client {
    let mut client = Client {
        ws,
        user: session.user.clone(),
    };
    match client.recv().await {
        ServerMsg::Welcome { user, .. } => assert_eq!(user, session.user),
        other => panic!("expected welcome, got {other:?}"),
    }
    client
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A password good enough for the server's rules.
pub const PASSWORD: &str = "correct horse battery staple";

/// Creates an account on the server at `addr` and signs in.
pub async fn sign_up_at(addr: impl std::fmt::Display, username: &str) -> SessionResponse {
    let (status, body) = call(
        reqwest::Method::POST,
        &format!("http://{addr}/api/accounts"),
        None,
        Some(serde_json::json!({
            "username": username,
            "password": PASSWORD,
            "display_name": username.to_uppercase(),
        })),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    serde_json::from_value(body).unwrap()
}

/// One API call: the status and the JSON body (`null` if there is none).
pub async fn call(
    method: reqwest::Method,
    url: &str,
    token: Option<&str>,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let mut request = reqwest::Client::new().request(method, url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let json = if text.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text))
    };
    (status, json)
}

/// `GET url` with `Authorization: Bearer token`, decoded from JSON.
pub async fn get_json<T: serde::de::DeserializeOwned>(url: &str, token: &str) -> T {
    reqwest::Client::new()
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// For tests that send in bulk: no send rate limit to speak of.
pub fn no_rate_limit(config: &mut Config) {
    config.send_rate = 1e6;
    config.send_burst = 1_000_000;
}

/// For tests that race requests hundreds of times: no send, room or API
/// quota in the way.
pub fn racing(config: &mut Config) {
    no_rate_limit(config);
    config.max_rooms = 10_000;
    config.api_per_ip_per_minute = 1_000_000;
    config.api_per_token_per_minute = 1_000_000;
}

/// A port for a server that cannot pick its own (see `tests/shared/ports.rs`).
pub use crate::ports::unused_port;

/// The real `hearth` binary as a child process (killed when dropped) with
/// `args` (store, limits...), on a port it picked itself (see
/// `start_hearth`); with its address. Its output goes to a `hearth.log` in a
/// temp dir, whose path is printed, so a failing test can be read
/// afterwards.
pub async fn spawn_hearth<I, A>(args: I) -> (tokio::process::Child, String)
where
    I: IntoIterator<Item = A>,
    A: AsRef<std::ffi::OsStr>,
{
    let node = format!("test-{}", uuid::Uuid::new_v4().simple());
    let log = temp_dir().join("hearth.log");
    eprintln!("hearth {node}: output in {}", log.display());
    start_hearth(args, "127.0.0.1:0", &node, &log, "info").await
}

/// Starts the `hearth` binary with `args` as `--node-id node`, listening on
/// `listen`: `127.0.0.1:0` for a port of its own, read back from its
/// "listening" log line (no other process can take the port between a
/// check and the bind), or the address a node had before it was stopped,
/// to restart it where its clients know it. Its output (at `rust_log`,
/// which must let `backend`'s info through) is appended to `log`. Returns once the server answering `/healthz` there
/// says it is this node, with its address.
pub async fn start_hearth<I, A>(
    args: I,
    listen: &str,
    node: &str,
    log: &std::path::Path,
    rust_log: &str,
) -> (tokio::process::Child, String)
where
    I: IntoIterator<Item = A>,
    A: AsRef<std::ffi::OsStr>,
{
    let output = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    // Only this start's lines count (a restarted node appends).
    let from = output.metadata().unwrap().len() as usize;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(args)
        .args(["--listen", listen, "--node-id", node])
        .env("RUST_LOG", rust_log)
        .stdout(output.try_clone().unwrap())
        .stderr(output)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut text = String::new();
    for _ in 0..400 {
        let all = std::fs::read(log).unwrap_or_default();
        text = String::from_utf8_lossy(all.get(from..).unwrap_or_default()).into_owned();
        if let Some(addr) = listening_at(&text) {
            let health = reqwest::get(format!("http://{addr}/healthz")).await;
            if let Ok(health) = health {
                let health: serde_json::Value = health.json().await.unwrap();
                assert_eq!(health["node"], node, "another server answers on {addr}");
                return (child, addr);
            }
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("hearth {node} exited ({status}); its output:\n{text}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("hearth {node} did not come up; its output:\n{text}");
}

/// The address in a server's "listening" log line (text format, possibly
/// with terminal colours).
fn listening_at(log: &str) -> Option<String> {
    let mut plain = String::with_capacity(log.len());
    let mut chars = log.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // An ANSI escape: up to its final letter.
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    let line = plain
        .lines()
        .find(|line| line.contains("listening") && line.contains("addr"))?;
    if let Some(json) = line.split("\"addr\":\"").nth(1) {
        // --log-format json
        return json.split('"').next().map(str::to_owned);
    }
    line.split_whitespace()
        .find_map(|field| field.strip_prefix("addr="))
        .map(str::to_owned)
}

pub fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hearth-test-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub struct Client {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pub user: User,
}

/// How a connection ended, as the client saw it.
#[derive(Debug, PartialEq, Eq)]
pub enum Ended {
    Closed(u16),
    /// The stream ended or failed without a close frame.
    Dropped,
}

impl Client {
    pub async fn send_json(&mut self, value: serde_json::Value) {
        self.ws
            .send(Message::text(value.to_string()))
            .await
            .unwrap();
    }

    pub async fn send_raw(&mut self, text: &str) {
        self.ws.send(Message::text(text)).await.unwrap();
    }

    pub async fn join(&mut self, room: &str) -> ServerMsg {
        self.send_json(serde_json::json!({"type":"join","room":room,"since":null}))
            .await;
        self.recv_where(|m| matches!(m, ServerMsg::Joined { room: r, .. } if r == room))
            .await
    }

    pub async fn say(&mut self, room: &str, content: &str, client_id: &str) {
        self.send_json(
            serde_json::json!({"type":"send","room":room,"content":content,"client_id":client_id}),
        )
        .await;
    }

    /// The next protocol message, skipping pings. Fails after `WAIT`.
    pub async fn recv(&mut self) -> ServerMsg {
        self.recv_where(|m| !matches!(m, ServerMsg::Ping)).await
    }

    /// The next message matching `want`, discarding others.
    pub async fn recv_where(&mut self, want: impl Fn(&ServerMsg) -> bool) -> ServerMsg {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let frame = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .expect("timed out waiting for a message")
                .expect("connection ended while waiting for a message")
                .expect("websocket error");
            if let Message::Text(text) = frame {
                let msg: ServerMsg = serde_json::from_str(&text).expect("server sent valid JSON");
                if want(&msg) {
                    return msg;
                }
            }
        }
    }

    /// Nothing but pings arrives for `period`.
    pub async fn expect_silence(&mut self, period: Duration) {
        let deadline = tokio::time::Instant::now() + period;
        while let Ok(frame) = tokio::time::timeout_at(deadline, self.ws.next()).await {
            match frame {
                Some(Ok(Message::Text(text))) => {
                    let msg: ServerMsg = serde_json::from_str(&text).unwrap();
                    assert_eq!(msg, ServerMsg::Ping, "expected silence");
                }
                other => panic!("expected silence, got {other:?}"),
            }
        }
    }

    /// Reads until the connection ends, and says how.
    pub async fn ended(&mut self) -> Ended {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => panic!("connection did not end in time"),
                Ok(Some(Ok(Message::Close(Some(frame))))) => {
                    return Ended::Closed(u16::from(frame.code));
                }
                Ok(Some(Ok(Message::Close(None)))) => {
                    return Ended::Closed(u16::from(CloseCode::Status));
                }
                Ok(Some(Ok(_))) => continue,
                Ok(Some(Err(_)) | None) => return Ended::Dropped,
            }
        }
    }
}

/// A fresh PostgreSQL database, dropped at the end.
pub struct Database {
    admin_url: String,
    name: String,
}

impl Database {
    pub async fn create() -> Database {
        let admin_url = std::env::var("HEARTH_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        let name = format!("hearth_cluster_{}", uuid::Uuid::new_v4().simple());
        let admin = sqlx::PgPool::connect(&admin_url).await.unwrap();
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&admin)
            .await
            .unwrap();
        Database { admin_url, name }
    }

    pub fn url(&self) -> String {
        let (base, _) = self.admin_url.rsplit_once('/').unwrap();
        format!("{base}/{}", self.name)
    }

    pub async fn drop_now(self) {
        let admin = sqlx::PgPool::connect(&self.admin_url).await.unwrap();
        let _ = sqlx::query(&format!("DROP DATABASE {} WITH (FORCE)", self.name))
            .execute(&admin)
            .await;
    }
}
