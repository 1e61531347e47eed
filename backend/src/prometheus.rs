//! Metrics for Prometheus: the names, the recorder, and `GET /metrics`.
//!
//! Instrumented code uses the `metrics` facade (`counter!`, `gauge!`,
//! `histogram!`) with the names below. Without `--metrics-token` or
//! `--metrics-listen` no recorder is installed and every such call is a
//! no-op, so metrics cost nothing when off. When on, a call is a lookup in
//! the exporter's registry and an atomic add; the hot path makes them per
//! fan-out or per batch, never per recipient.
//!
//! Histograms keep their samples until they are aggregated, so `upkeep`
//! runs every few seconds.

use std::time::Duration;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub const CONNECTIONS_OPEN: &str = "hearth_connections_open";
pub const CONNECTIONS_OPENED: &str = "hearth_connections_opened_total";
/// Labelled with the close `code`.
pub const CONNECTIONS_CLOSED: &str = "hearth_connections_closed_total";
pub const ROOMS_LOADED: &str = "hearth_rooms_loaded";
pub const JOINS: &str = "hearth_joins_total";
pub const MESSAGES_STORED: &str = "hearth_messages_stored_total";
/// Frames queued to connections (messages, presence, typing, acks...).
pub const DELIVERIES: &str = "hearth_deliveries_total";
/// Errors sent to clients, labelled with their `code`.
pub const ERRORS: &str = "hearth_errors_total";
pub const SLOW_CONSUMER_KICKS: &str = "hearth_slow_consumer_kicks_total";
/// Frames waiting in a connection's queue when its socket could not take
/// them at once and its writer task took over (see `outbox.rs`).
pub const OUTBOUND_QUEUE_DEPTH: &str = "hearth_outbound_queue_depth";
/// One store transaction of appends (see `group_commit`).
pub const STORE_APPEND_SECONDS: &str = "hearth_store_append_seconds";
pub const STORE_APPEND_BATCH: &str = "hearth_store_append_batch_messages";
pub const STORE_ERRORS: &str = "hearth_store_errors_total";
pub const BROKER_PUBLISHED: &str = "hearth_broker_published_total";
pub const BROKER_RECEIVED: &str = "hearth_broker_received_total";
pub const BROKER_RECONNECTS: &str = "hearth_broker_reconnects_total";
/// Events this node missed because it fell behind (then caught up from
/// the store).
pub const BROKER_LAGGED: &str = "hearth_broker_lagged_events_total";
pub const PRESENCE_SYNC_SECONDS: &str = "hearth_presence_sync_seconds";
/// Labelled with the `result`: ok, bad_credentials, rate_limited, busy,
/// refused (bad input, guests off), error.
pub const SIGN_INS: &str = "hearth_sign_ins_total";
/// Labelled with the `kind` of limit.
pub const RATE_LIMITED: &str = "hearth_rate_limited_total";
/// Messages posted with an API key, labelled with the `result`: stored,
/// or duplicate (a retry of a stored `client_id`).
pub const API_PUBLISHED: &str = "hearth_api_published_total";
/// Webhook POSTs, labelled with the `result`: delivered, or failed.
pub const WEBHOOK_DELIVERIES: &str = "hearth_webhook_deliveries_total";
/// Webhooks paused because their receiver failed for too long (the
/// store's figure: the same on every node).
pub const WEBHOOKS_PAUSED: &str = "hearth_webhooks_paused";
/// Webhooks whose last attempt failed and that will try again.
pub const WEBHOOKS_FAILING: &str = "hearth_webhooks_failing";

/// Installs the process-wide recorder. `None` if one is installed already
/// (several servers in one test process): that server goes without.
pub fn install() -> Option<PrometheusHandle> {
    let seconds = [
        0.000_5, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
    ];
    let counts = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &seconds)
        .and_then(|b| b.set_buckets_for_metric(Matcher::Full(OUTBOUND_QUEUE_DEPTH.into()), &counts))
        .and_then(|b| b.set_buckets_for_metric(Matcher::Full(STORE_APPEND_BATCH.into()), &counts))
        .ok()?
        .install_recorder()
        .map_err(|err| tracing::warn!(%err, "metrics are off: a recorder is installed already"))
        .ok()?;
    describe();
    register_zeros();
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            upkeep.run_upkeep();
        }
    });
    Some(handle)
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_gauge!(CONNECTIONS_OPEN, "WebSocket connections open now");
    describe_counter!(CONNECTIONS_OPENED, "WebSocket connections opened");
    describe_counter!(
        CONNECTIONS_CLOSED,
        "WebSocket connections closed, by close code"
    );
    describe_gauge!(ROOMS_LOADED, "Rooms held in memory on this node");
    describe_counter!(JOINS, "Room joins");
    describe_counter!(
        MESSAGES_STORED,
        "Chat messages stored (duplicates not counted)"
    );
    describe_counter!(DELIVERIES, "Frames queued to connections");
    describe_counter!(ERRORS, "Errors sent to clients, by code");
    describe_counter!(
        SLOW_CONSUMER_KICKS,
        "Connections closed with 4009: queue full"
    );
    describe_histogram!(
        OUTBOUND_QUEUE_DEPTH,
        "Frames queued when a connection's writer wakes"
    );
    describe_histogram!(
        STORE_APPEND_SECONDS,
        "Duration of one store transaction of appends"
    );
    describe_histogram!(STORE_APPEND_BATCH, "Messages in one store transaction");
    describe_counter!(STORE_ERRORS, "Store transactions of appends that failed");
    describe_counter!(BROKER_PUBLISHED, "Envelopes published to other nodes");
    describe_counter!(BROKER_RECEIVED, "Envelopes received from the broker");
    describe_counter!(BROKER_RECONNECTS, "Broker subscriptions re-established");
    describe_counter!(BROKER_LAGGED, "Broker events missed by falling behind");
    describe_histogram!(PRESENCE_SYNC_SECONDS, "Duration of one presence round");
    describe_counter!(SIGN_INS, "Sign-in attempts, by result");
    describe_counter!(
        RATE_LIMITED,
        "Requests refused by a rate or connection limit, by kind"
    );
    describe_counter!(API_PUBLISHED, "Messages posted with an API key, by result");
    describe_counter!(WEBHOOK_DELIVERIES, "Webhook POSTs, by result");
    describe_gauge!(WEBHOOKS_PAUSED, "Webhooks paused after failing too long");
    describe_gauge!(WEBHOOKS_FAILING, "Webhooks failing and retrying");
}

/// Every `kind` of `RATE_LIMITED`.
pub const RATE_LIMIT_KINDS: &[&str] = &[
    "api",
    "connections_per_ip",
    "connections_per_node",
    "connections_per_user",
    "history_bytes",
    "http_connections_per_ip",
    "http_connections_per_node",
    "join",
    "read",
    "replay",
    "request_timeout",
    "rooms_created",
    "rooms_created_per_ip",
    "send",
    "sign_in",
    "sign_in_username",
    "uploads",
];

/// The close codes the server sends (`CONNECTIONS_CLOSED`'s `code`).
const CLOSE_CODES: &[u16] = &[
    1000,
    common::close::GOING_AWAY,
    common::close::PROTOCOL_ERROR,
    common::close::INVALID_DATA,
    common::close::TOO_BIG,
    common::close::TOKEN_INVALID,
    common::close::POLICY,
    common::close::SLOW_CONSUMER,
    common::close::HEARTBEAT_TIMEOUT,
];

/// Every series starts at zero, so that dashboards and alerts (a rate, an
/// absence) see it from the first scrape rather than from its first use.
/// Histograms appear with their first sample.
fn register_zeros() {
    use metrics::{counter, gauge};
    for name in [
        CONNECTIONS_OPENED,
        JOINS,
        MESSAGES_STORED,
        DELIVERIES,
        SLOW_CONSUMER_KICKS,
        STORE_ERRORS,
        BROKER_PUBLISHED,
        BROKER_RECEIVED,
        BROKER_RECONNECTS,
        BROKER_LAGGED,
    ] {
        counter!(name).absolute(0);
    }
    for name in [
        CONNECTIONS_OPEN,
        ROOMS_LOADED,
        WEBHOOKS_PAUSED,
        WEBHOOKS_FAILING,
    ] {
        gauge!(name).set(0.0);
    }
    for code in CLOSE_CODES {
        counter!(CONNECTIONS_CLOSED, "code" => code.to_string()).absolute(0);
    }
    for code in common::ErrorCode::ALL {
        counter!(ERRORS, "code" => code.as_str()).absolute(0);
    }
    for result in [
        "ok",
        "bad_credentials",
        "rate_limited",
        "busy",
        "refused",
        "error",
    ] {
        counter!(SIGN_INS, "result" => result).absolute(0);
    }
    for kind in RATE_LIMIT_KINDS {
        counter!(RATE_LIMITED, "kind" => *kind).absolute(0);
    }
    for result in ["delivered", "failed"] {
        counter!(WEBHOOK_DELIVERIES, "result" => result).absolute(0);
    }
    for result in ["stored", "duplicate"] {
        counter!(API_PUBLISHED, "result" => result).absolute(0);
    }
}

/// Counts a refusal by a limit.
pub fn rate_limited(kind: &'static str) {
    debug_assert!(RATE_LIMIT_KINDS.contains(&kind), "unlisted kind {kind}");
    metrics::counter!(RATE_LIMITED, "kind" => kind).increment(1);
}

/// Counts a message posted with an API key.
pub fn published(duplicate: bool) {
    let result = if duplicate { "duplicate" } else { "stored" };
    metrics::counter!(API_PUBLISHED, "result" => result).increment(1);
}

/// The text exposition format.
pub fn render(handle: &PrometheusHandle) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        handle.render(),
    )
        .into_response()
}

/// `--metrics-listen`: `/metrics` alone, without a token, on its own
/// address (keep it private).
pub async fn serve_separately(
    addr: std::net::SocketAddr,
    handle: PrometheusHandle,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "metrics listening");
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let handle = handle.clone();
            async move { render(&handle) }
        }),
    );
    tokio::spawn(async move {
        if let Err(err) = axum::serve(listener, app).await {
            tracing::error!(%err, "the metrics listener failed");
        }
    });
    Ok(())
}
