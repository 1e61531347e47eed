//! Hearth's server as a library: `start` runs it, `app` builds its router.
//!
//! Layering, from the socket inward:
//! - `ws` authenticates the upgrade, `session` runs one connection;
//! - `hub` holds this node's rooms and fans events out to connections;
//! - `broker` carries events between nodes.
//!
//! `main.rs` only parses flags and waits for a signal; tests call `start`
//! with port 0 and talk to the real server over real sockets.

pub mod auth;
pub mod broker;
pub mod config;
pub mod conn;
pub mod emoji;
pub mod http;
pub mod hub;
pub mod limits;
pub mod ops;
pub mod prometheus;
pub mod store;
pub mod tasks;
pub mod thumbnail;
pub mod transport;
pub mod webhooks;

use common::ApiErrorCode;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::routing::get;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnResponse, TraceLayer};

pub use config::Config;

use auth::passwords;
use http::{api, upgrade, web};
use limits::{slots, throttle};
use transport::listener;

use broker::{Broker, MemoryBroker};
use hub::{HistoryPolicy, Hub};

/// Everything a request or a connection needs, shared.
pub struct AppState {
    pub config: Config,
    pub hub: Arc<Hub>,
    pub passwords: passwords::Passwords,
    pub throttle: throttle::Throttle,
    /// The bytes of uploaded files (`store/blobs.rs`).
    pub blobs: Arc<dyn store::Blobs>,
    /// Caps on open WebSockets.
    pub slots: Arc<slots::Slots>,
    /// Cancelled when the server shuts down; every session watches it.
    pub shutdown: CancellationToken,
    /// Every live WebSocket session, so shutdown can wait for them.
    pub sessions: TaskTracker,
    next_conn_id: AtomicU64,
    /// The metrics recorder's handle, when metrics are on.
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    /// Shutting down soon: `/readyz` says so (see `--drain-ms`).
    draining: std::sync::atomic::AtomicBool,
}

impl AppState {
    /// From now on `/readyz` answers 503 "draining".
    pub fn begin_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    pub fn next_conn_id(&self) -> u64 {
        self.next_conn_id.fetch_add(1, Ordering::Relaxed)
    }
}

/// The header that carries a request's id (`--log-format json` logs it).
pub const REQUEST_ID: axum::http::HeaderName = axum::http::HeaderName::from_static("x-request-id");

/// The router: API, WebSocket, health, and the frontend with SPA fallback.
pub fn app(state: Arc<AppState>) -> Router {
    let frontend = web::frontend(&state.config.static_dir, state.config.allow_guests);
    let api = api::router().layer(axum::middleware::from_fn_with_state(
        state.clone(),
        api::rate_limit,
    ));
    // Outside the rate limit: a preflight is answered before anything else.
    let api = match http::cors::layer(&state.config.allowed_origins, state.config.dev) {
        Some(cors) => api.layer(cors),
        None => api,
    };
    Router::new()
        .route("/ws", get(upgrade::upgrade))
        .route(
            "/signin",
            get(http::signin::page).post(http::signin::submit),
        )
        .route("/healthz", get(api::healthz))
        .route("/readyz", get(api::readyz))
        .route("/metrics", get(http::metrics::scrape))
        .nest("/api", api)
        .merge(frontend)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            request_deadline,
        ))
        .layer(axum::middleware::from_fn(web::security_headers))
        .layer(
            TraceLayer::new_for_http()
                // Log the path only: a query string may hold a ticket.
                .make_span_with(|req: &axum::http::Request<_>| {
                    let id = req
                        .headers()
                        .get(REQUEST_ID)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default();
                    tracing::info_span!(
                        "http",
                        method = %req.method(),
                        path = %req.uri().path(),
                        request_id = %id
                    )
                })
                .on_response(DefaultOnResponse::new().level(tracing::Level::DEBUG))
                .on_failure(log_failure),
        )
        // Outermost: every request has an id (the client's, or a new UUID)
        // before it is logged, and the response carries it back.
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .with_state(state)
}

/// A request, its body included, and the answer to it have
/// `--request-timeout-ms`: the header deadline (`listener.rs`) ends a
/// request that never finishes its headers, this one a body that never
/// comes or trickles in. Over it: `408 request_timeout`, and hyper closes
/// the connection (the rest of the body is never read). An upgraded
/// WebSocket is past this: its handler answered at once.
async fn request_deadline(
    axum::extract::State(app): axum::extract::State<Arc<AppState>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let deadline = Duration::from_millis(app.config.request_timeout_ms.max(100));
    match tokio::time::timeout(deadline, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            crate::prometheus::rate_limited("request_timeout");
            let mut response = api::error(
                axum::http::StatusCode::REQUEST_TIMEOUT,
                ApiErrorCode::RequestTimeout,
                "the request took too long to arrive; send it again",
            );
            response.headers_mut().insert(
                axum::http::header::CONNECTION,
                axum::http::HeaderValue::from_static("close"),
            );
            response
        }
    }
}

/// A 500 is a bug or a fault worth an error line. A 503 is an answer the
/// server chose (draining, or its store unreachable, which is logged where
/// it is found): a load balancer polling `/readyz` while a node drains
/// must not fill the log with errors.
fn log_failure(
    class: tower_http::classify::ServerErrorsFailureClass,
    latency: std::time::Duration,
    _span: &tracing::Span,
) {
    use tower_http::classify::ServerErrorsFailureClass::StatusCode as Status;
    let ms = latency.as_millis();
    match class {
        Status(status) if status == axum::http::StatusCode::SERVICE_UNAVAILABLE => {
            tracing::debug!(%status, latency_ms = ms, "unavailable");
        }
        class => tracing::error!(%class, latency_ms = ms, "request failed"),
    }
}

/// A running server.
pub struct Server {
    addr: SocketAddr,
    state: Arc<AppState>,
    task: JoinHandle<anyhow::Result<()>>,
    /// The background loops (`tasks.rs`).
    background: tasks::Tasks,
}

/// Binds `config.listen` and starts serving in the background.
pub async fn start(config: Config) -> anyhow::Result<Server> {
    let node_id: Arc<str> = match &config.node_id {
        Some(id) => Arc::from(id.as_str()),
        None => Arc::from(uuid::Uuid::new_v4().simple().to_string()),
    };
    let store_options = store::StoreOptions {
        timeout: Duration::from_millis(config.store_timeout_ms.max(1)),
    };
    let store = store::open(
        config.database_url.as_deref(),
        &config.data_dir,
        store_options,
    )
    .await
    .context("opening the message store")?;
    tracing::info!(kind = store.kind(), "message store ready");
    let blobs = store::open_blobs(config.database_url.as_deref(), &config.data_dir)
        .await
        .context("opening the file store")?;
    // Uploads in progress when this node last stopped (a crash, a kill)
    // never reached the file store; their temp files go. None is in
    // progress yet: the data dir is this node's alone.
    match store::files::clear_dir(&config.data_dir.join("uploads")) {
        Ok(0) => {}
        Ok(removed) => tracing::info!(removed, "removed uploads cut off by the last stop"),
        Err(err) => tracing::warn!(%err, "clearing the uploads dir"),
    }
    let broker: Arc<dyn Broker> = match &config.redis_url {
        Some(url) => {
            anyhow::ensure!(
                store.kind() == "postgres",
                "--redis-url needs a shared PostgreSQL store (--database-url postgres://…): with a \
                 {} store per node, message history would diverge between nodes",
                store.kind()
            );
            broker::RedisBroker::connect(url, &config.redis_prefix)
                .await
                .context("connecting to Redis")?
        }
        None => Arc::new(MemoryBroker::new()),
    };
    tracing::info!(kind = broker.kind(), "broker ready");
    // Cancelled when the server shuts down: sessions and background loops
    // watch it.
    let shutdown = CancellationToken::new();
    let background = tasks::Tasks::new(shutdown.clone());
    let history = HistoryPolicy {
        resume_limit: config.resume_limit,
        page: config.history_page,
    };
    let hub = Hub::new(
        node_id,
        broker.clone(),
        store,
        history,
        config.typing_interval(),
    );
    // With one node there is nobody to hear from and nobody to tell:
    // presence is kept in memory only (see `broker`), and neither the
    // registry sync nor the delivery of our own echoes runs.
    if broker.kind() != "memory" {
        // An earlier run under this node id may have left registry entries.
        if let Err(err) = broker.forget_node(hub.node_id(), true).await {
            tracing::warn!(%err, "could not clear this node's old presence entries");
        }
        tasks::remote_delivery(&background, hub.clone(), broker.as_ref());
        hub.share_presence();
        tasks::presence(&background, &config, hub.clone());
    }
    tasks::room_unloading(&background, &config, hub.clone());
    tasks::read_marks(&background, hub.clone());
    tasks::retention(&background, &config, hub.store().clone());
    tasks::store_probe(&background, &config, hub.store().clone());
    tasks::webhooks(
        &background,
        &config,
        hub.store().clone(),
        hub.node_id().to_string(),
    );
    if broker.kind() != "memory" {
        tasks::tail_check(&background, &config, hub.clone());
    }

    if !config.static_dir.join("index.html").exists() {
        tracing::warn!(dir = %config.static_dir.display(), "no index.html in the static dir; build the frontend with `trunk build`");
    }
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let addr = listener.local_addr()?;
    let slot_limits = slots::SlotLimits {
        total: match config.max_connections {
            0 => slots::default_total(),
            n => n,
        },
        per_ip: config.max_connections_per_ip.max(1),
        per_user: config.max_connections_per_user.max(1),
    };
    tracing::info!(?slot_limits, "WebSocket limits");
    let http_limits = listener::HttpLimits {
        per_ip: config.max_http_per_ip.max(1),
        total: config.max_http_connections.max(1),
        header_timeout: Duration::from_millis(config.header_timeout_ms.max(100)),
    };
    tasks::revocation_poll(&background, &config, hub.clone());
    let throttle = throttle::Throttle::new(
        throttle::Limits {
            per_ip: config.auth_per_ip_per_minute,
            per_username: config.auth_per_username_per_minute,
            rooms_per_hour: config.rooms_per_user_per_hour,
            rooms_per_ip_per_hour: config.rooms_per_ip_per_hour,
            api_per_ip: config.api_per_ip_per_minute,
            api_per_token: config.api_per_token_per_minute,
            history_bytes_per_user: config.replay_bytes_per_user_per_sec,
            history_bytes_per_ip: config.replay_bytes_per_ip_per_sec,
            uploads_per_user: config.uploads_per_minute,
        },
        config.trusted_proxies.clone(),
    );
    let metrics = if config.metrics_token.is_some() || config.metrics_listen.is_some() {
        prometheus::install()
    } else {
        None
    };
    if let (Some(addr), Some(handle)) = (config.metrics_listen, &metrics) {
        prometheus::serve_separately(addr, handle.clone())
            .await
            .context("binding --metrics-listen")?;
    }
    let state = Arc::new(AppState {
        passwords: passwords::Passwords::new(config.hash_concurrency),
        throttle,
        blobs,
        slots: slots::Slots::new(slot_limits),
        config,
        hub,
        shutdown,
        sessions: TaskTracker::new(),
        next_conn_id: AtomicU64::new(1),
        draining: std::sync::atomic::AtomicBool::new(false),
        metrics,
    });
    let router = app(state.clone());
    let stop = state.shutdown.clone();
    let task = tokio::spawn(async move {
        listener::serve(listener, router, http_limits, stop).await;
        Ok(())
    });
    tasks::throttle_cleanup(&background, state.clone());
    tasks::file_sweep(
        &background,
        &state.config,
        state.hub.store().clone(),
        state.blobs.clone(),
    );
    tracing::info!(%addr, node = %state.hub.node_id(), "listening");
    Ok(Server {
        addr,
        state,
        task,
        background,
    })
}

impl Server {
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn state(&self) -> &Arc<AppState> {
        &self.state
    }

    /// Cancelling this token starts a graceful shutdown.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.state.shutdown.clone()
    }

    /// Waits until shutdown was requested and has finished: no new
    /// connections, every WebSocket closed with 1001 (or the grace period
    /// over). axum's own graceful shutdown does not wait for upgraded
    /// connections, hence the session tracker.
    pub async fn wait(self) -> anyhow::Result<()> {
        let served = self.task.await.context("server task panicked")?;
        self.state.sessions.close();
        let grace = Duration::from_millis(self.state.config.shutdown_grace_ms);
        if tokio::time::timeout(grace, self.state.sessions.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                left = self.state.sessions.len(),
                "connections still open after the grace period"
            );
        }
        if !self.background.stopped(grace).await {
            tracing::warn!("background loops still running after the grace period");
        }
        // The read positions of the last moments (their loop has stopped).
        self.state.hub.flush_reads().await;
        served
    }

    /// Starts a graceful shutdown and waits for it.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        self.state.shutdown.cancel();
        self.wait().await
    }
}
