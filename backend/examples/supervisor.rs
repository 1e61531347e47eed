//! Test infrastructure for the browser driver test (`frontend/tests/driver.rs`):
//! runs a real `hearth` and lets a page in headless Chromium restart it.
//!
//! A page cannot kill a process, so this small server does it on request:
//!
//! - `GET /session?name=…` signs in on the backend (as a guest) and returns
//!   its answer;
//! - `POST /api/ws-ticket` relays a ticket request (with its Authorization
//!   header) to the backend, as the app's own origin would serve it;
//! - `GET /restart` kills the backend with SIGKILL, waits a moment, starts it
//!   again on the same port (same data dir, so tokens and history survive),
//!   and answers once it is up;
//! - `GET /hostile` names three ports that a client must back off from:
//!   `dead` (nothing listens), `slam` (accepts TCP and closes at once) and
//!   `welcome_close` (a WebSocket server that sends `welcome` and closes),
//!   with how many connections the last two have accepted so far.
//!
//! Every answer carries `Access-Control-Allow-Origin: *`, since the test page
//! is served from wasm-bindgen-test-runner's own origin. Only `scripts/test`
//! runs this, on loopback.
//!
//! Usage: supervisor <listen port> <backend port> <path to hearth> <data dir>

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use tokio::process::{Child, Command};
use tokio::sync::Mutex;

struct Backend {
    port: u16,
    binary: String,
    data_dir: String,
    child: Mutex<Option<Child>>,
}

impl Backend {
    async fn start(&self) {
        let child = Command::new(&self.binary)
            .args([
                "--listen",
                &format!("127.0.0.1:{}", self.port),
                "--data-dir",
                &self.data_dir,
            ])
            .args(["--static-dir", &self.data_dir])
            // The driver test signs in as a guest, many times, from one address.
            .args(["--allow-guests", "--auth-per-ip-per-minute", "100000"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start hearth");
        *self.child.lock().await = Some(child);
        for _ in 0..400 {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("hearth did not come up on port {}", self.port);
    }

    async fn kill(&self) {
        if let Some(mut child) = self.child.lock().await.take() {
            let _ = child.kill().await;
        }
    }
}

#[derive(serde::Deserialize)]
struct SessionQuery {
    name: String,
}

async fn session(State(backend): State<Arc<Backend>>, Query(q): Query<SessionQuery>) -> Response {
    let answer: serde_json::Value = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{}/api/session", backend.port))
        .json(&serde_json::json!({ "name": q.name }))
        .send()
        .await
        .expect("backend answers")
        .json()
        .await
        .expect("a JSON answer");
    cors(Json(answer).into_response())
}

/// Relays `POST /api/ws-ticket`; the backend restarting meanwhile is a
/// 503, which the driver treats like any unavailable server.
async fn ws_ticket(
    State(backend): State<Arc<Backend>>,
    headers: axum::http::HeaderMap,
) -> Response {
    let mut request =
        reqwest::Client::new().post(format!("http://127.0.0.1:{}/api/ws-ticket", backend.port));
    if let Some(auth) = headers.get(header::AUTHORIZATION) {
        request = request.header(header::AUTHORIZATION, auth.as_bytes());
    }
    let response = match request.send().await {
        Ok(response) => response,
        Err(_) => return cors(axum::http::StatusCode::SERVICE_UNAVAILABLE.into_response()),
    };
    let status = axum::http::StatusCode::from_u16(response.status().as_u16())
        .unwrap_or(axum::http::StatusCode::BAD_GATEWAY);
    let body = response.bytes().await.unwrap_or_default();
    let mut answer = (status, body).into_response();
    answer.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    cors(answer)
}

/// The CORS preflight of a request with an Authorization header.
async fn preflight() -> Response {
    let mut response = cors(axum::http::StatusCode::NO_CONTENT.into_response());
    let headers = response.headers_mut();
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("authorization, content-type"),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("POST"),
    );
    response
}

async fn restart(State(backend): State<Arc<Backend>>) -> Response {
    backend.kill().await;
    // Long enough for the page to notice the drop before the server is back.
    tokio::time::sleep(Duration::from_millis(500)).await;
    backend.start().await;
    cors("restarted".into_response())
}

/// The hostile ports, and what they have seen.
struct Hostile {
    dead: u16,
    slam: u16,
    welcome_close: u16,
    slam_accepts: AtomicU64,
    welcome_accepts: AtomicU64,
}

async fn hostile(State(hostile): State<Arc<Hostile>>) -> Response {
    cors(
        Json(serde_json::json!({
            "dead": hostile.dead,
            "slam": hostile.slam,
            "welcome_close": hostile.welcome_close,
            "slam_accepts": hostile.slam_accepts.load(Ordering::Relaxed),
            "welcome_accepts": hostile.welcome_accepts.load(Ordering::Relaxed),
        }))
        .into_response(),
    )
}

async fn start_hostile() -> Arc<Hostile> {
    use axum::extract::WebSocketUpgrade;
    use axum::extract::ws::{CloseFrame, Message};

    // A port that was free a moment ago and that nobody listens on.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let slam = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let welcome = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let hostile = Arc::new(Hostile {
        dead,
        slam: slam.local_addr().expect("addr").port(),
        welcome_close: welcome.local_addr().expect("addr").port(),
        slam_accepts: AtomicU64::new(0),
        welcome_accepts: AtomicU64::new(0),
    });
    let counts = hostile.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = slam.accept().await {
            counts.slam_accepts.fetch_add(1, Ordering::Relaxed);
            drop(socket);
        }
    });
    let counts = hostile.clone();
    let app = Router::new().route(
        "/ws",
        get(move |upgrade: WebSocketUpgrade| {
            let counts = counts.clone();
            async move {
                counts.welcome_accepts.fetch_add(1, Ordering::Relaxed);
                upgrade.on_upgrade(|mut socket| async move {
                    let welcome = common::ServerMsg::Welcome {
                        user: common::User {
                            id: "hostile".into(),
                            name: "hostile".into(),
                            username: None,
                        },
                        heartbeat_ms: 25_000,
                        protocol: common::PROTOCOL_VERSION,
                        send_limit: common::SendLimit::default(),
                    };
                    let text = serde_json::to_string(&welcome).expect("serializes");
                    let _ = socket.send(Message::Text(text.into())).await;
                    let _ = socket
                        .send(Message::Close(Some(CloseFrame {
                            code: 1000,
                            reason: "bye".into(),
                        })))
                        .await;
                })
            }
        }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(welcome, app).await;
    });
    hostile
}

fn cors(mut response: Response) -> Response {
    response.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    response
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, listen, port, binary, data_dir] = args.as_slice() else {
        eprintln!("usage: supervisor <listen port> <backend port> <path to hearth> <data dir>");
        std::process::exit(2);
    };
    let backend = Arc::new(Backend {
        port: port.parse().expect("a port"),
        binary: binary.clone(),
        data_dir: data_dir.clone(),
        child: Mutex::new(None),
    });
    backend.start().await;
    let hostile_ports = start_hostile().await;
    let app = Router::new()
        .route("/session", get(session))
        .route("/restart", get(restart))
        .route(
            "/api/ws-ticket",
            axum::routing::post(ws_ticket).options(preflight),
        )
        .with_state(backend.clone())
        .merge(
            Router::new()
                .route("/hostile", get(hostile))
                .with_state(hostile_ports),
        );
    let listener =
        tokio::net::TcpListener::bind(("127.0.0.1", listen.parse::<u16>().expect("a port")))
            .await
            .expect("bind the supervisor port");
    let serve = axum::serve(listener, app);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("a SIGTERM handler");
    // Stop the backend too, whichever way we are stopped.
    tokio::select! {
        _ = serve => {}
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    backend.kill().await;
}
