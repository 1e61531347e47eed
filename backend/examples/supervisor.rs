//! Test infrastructure for the browser driver test (`frontend/tests/driver.rs`):
//! runs a real `hearth` and lets a page in headless Chromium restart it.
//!
//! A page cannot kill a process, so this small server does it on request:
//!
//! - `GET /session?name=…` signs in on the backend and returns its answer;
//! - `GET /restart` kills the backend with SIGKILL, waits a moment, starts it
//!   again on the same port (same data dir, so tokens and history survive),
//!   and answers once it is up.
//!
//! Every answer carries `Access-Control-Allow-Origin: *`, since the test page
//! is served from wasm-bindgen-test-runner's own origin. Only `scripts/test`
//! runs this, on loopback.
//!
//! Usage: supervisor <listen port> <backend port> <path to hearth> <data dir>

use std::process::Stdio;
use std::sync::Arc;
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

async fn restart(State(backend): State<Arc<Backend>>) -> Response {
    backend.kill().await;
    // Long enough for the page to notice the drop before the server is back.
    tokio::time::sleep(Duration::from_millis(500)).await;
    backend.start().await;
    cors("restarted".into_response())
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
    let app = Router::new()
        .route("/session", get(session))
        .route("/restart", get(restart))
        .with_state(backend.clone());
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
