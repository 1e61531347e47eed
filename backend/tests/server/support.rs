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
        let url = format!("ws://{}/ws?token={}", self.addr, session.token);
        let (ws, _) = tokio_tungstenite::client_async(url, MaybeTlsStream::Plain(stream))
            .await
            .expect("websocket connects");
        welcomed(ws, &session).await
    }
}

/// Signs in on the server at `addr` (`host:port`), e.g. a child process.
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
    let url = format!("ws://{addr}/ws?token={}", session.token);
    let (ws, _) = connect_async(url).await.expect("websocket connects");
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

/// A port nothing listens on right now, for child-process servers.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
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
