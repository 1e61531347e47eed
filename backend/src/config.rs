//! Server configuration, from command-line flags or `HEARTH_*` env vars.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

#[derive(Parser, Debug, Clone)]
#[command(
    name = "hearth",
    version,
    about = "Hearth: real-time rooms and chat over WebSockets"
)]
pub struct Config {
    /// Address to listen on. Use port 0 to pick a free port.
    #[arg(long, env = "HEARTH_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Folder with the built frontend (trunk's `dist/`). Unknown paths fall
    /// back to its index.html so client-side routes work.
    #[arg(long, env = "HEARTH_STATIC_DIR", default_value = "dist")]
    pub static_dir: PathBuf,

    /// Folder for the server's own files: by default, the SQLite database.
    #[arg(long, env = "HEARTH_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,

    /// Where history is kept: `sqlite://path/to/file.db` or
    /// `postgres://user@host/db`. Default: `hearth.db` in the data dir.
    #[arg(long, env = "HEARTH_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// The longest one store call may take (also SQLite's busy wait and
    /// PostgreSQL's statement_timeout). While the store is failing, calls
    /// give up after at most 1 s, so a send is answered quickly.
    #[arg(long, env = "HEARTH_STORE_TIMEOUT_MS", default_value_t = 5_000)]
    pub store_timeout_ms: u64,

    /// Origins, besides this server's own, whose pages may open a WebSocket
    /// (for example `https://chat.example.com` behind a proxy that rewrites
    /// Host). Comma-separated in the env var.
    #[arg(
        long = "allowed-origin",
        env = "HEARTH_ALLOWED_ORIGINS",
        value_delimiter = ','
    )]
    pub allowed_origins: Vec<String>,

    /// Development mode: pages from `trunk serve` (http://127.0.0.1:8081,
    /// http://localhost:8081) may open WebSockets too. Never in production:
    /// anything on the machine could serve a page from that port.
    #[arg(long, env = "HEARTH_DEV")]
    pub dev: bool,

    /// `GET /api/rooms` leaves out rooms with nobody in them and no message
    /// for this long (the people in them still see them).
    #[arg(long, env = "HEARTH_ROOM_LIST_IDLE_SECS", default_value_t = 30 * 24 * 3600)]
    pub room_list_idle_secs: u64,

    /// With several nodes: how often rooms with recent messages compare
    /// their newest delivered seq with the store, to deliver a message whose
    /// node died before publishing it (see `Hub::check_tails`).
    #[arg(long, env = "HEARTH_TAIL_CHECK_MS", default_value_t = 2_000)]
    pub tail_check_ms: u64,

    /// How often the store is probed with a tiny write while it is failing
    /// (and every ten times as long while it is healthy), so `/healthz`
    /// notices recovery even when nobody sends.
    #[arg(long, env = "HEARTH_STORE_PROBE_MS", default_value_t = 1_000)]
    pub store_probe_ms: u64,

    /// A reconnecting client missing more than this many messages of a room
    /// gets only the newest page (and `recovered: false`).
    #[arg(long, env = "HEARTH_RESUME_LIMIT", default_value_t = 1000)]
    pub resume_limit: u32,

    /// Messages sent on a fresh join; also the size of a history page.
    #[arg(long, env = "HEARTH_HISTORY_PAGE", default_value_t = 50)]
    pub history_page: u32,

    /// Keep at most this many messages per room (older ones are deleted in
    /// the background). 0 keeps all.
    #[arg(long, env = "HEARTH_RETAIN_MESSAGES", default_value_t = 100_000)]
    pub retain_messages: u64,

    /// Delete messages older than this many seconds. 0 keeps them forever.
    #[arg(long, env = "HEARTH_RETAIN_SECS", default_value_t = 0)]
    pub retain_secs: u64,

    /// How often retention runs, in seconds.
    #[arg(long, env = "HEARTH_RETENTION_INTERVAL_SECS", default_value_t = 300)]
    pub retention_interval_secs: u64,

    /// How often the file store is swept of bytes no file refers to (a
    /// deleted message's files, uploads never sent), in seconds.
    #[arg(long, env = "HEARTH_FILE_SWEEP_SECS", default_value_t = 300)]
    pub file_sweep_secs: u64,

    /// Redis for fan-out between nodes (`redis://host:6379`). Without it
    /// this is a single node. Needs a shared PostgreSQL `--database-url`.
    #[arg(long, env = "HEARTH_REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,

    /// Prefix of every Redis channel and key, to share one Redis between
    /// deployments.
    #[arg(long, env = "HEARTH_REDIS_PREFIX", default_value = "hearth")]
    pub redis_prefix: String,

    /// How often a node renews its liveness in Redis and learns which other
    /// nodes are alive, in milliseconds. Presence changes are written as
    /// they happen, not on this beat.
    #[arg(long, env = "HEARTH_PRESENCE_REFRESH_MS", default_value_t = 2_000)]
    pub presence_refresh_ms: u64,

    /// How long a node counts as alive after its last beat. A node that
    /// dies stops beating, so its users are gone from every other node
    /// within this plus one refresh.
    #[arg(long, env = "HEARTH_PRESENCE_TTL_MS", default_value_t = 6_000)]
    pub presence_ttl_ms: u64,

    /// How long a session lasts after sign-in, in seconds (unless signed
    /// out or revoked earlier).
    #[arg(long, env = "HEARTH_SESSION_TTL_SECS", default_value_t = 30 * 24 * 3600)]
    pub session_ttl_secs: u64,

    /// Also let people in with a display name only, as guests (shown as
    /// such; no password, no username, cannot be invited).
    #[arg(long, env = "HEARTH_ALLOW_GUESTS")]
    pub allow_guests: bool,

    /// Sign-in, sign-up and password-change attempts allowed per client
    /// address per minute (also the burst).
    #[arg(long, env = "HEARTH_AUTH_PER_IP_PER_MINUTE", default_value_t = 20)]
    pub auth_per_ip_per_minute: u32,

    /// Sign-in attempts allowed per username per minute (also the burst),
    /// from all addresses together.
    #[arg(long, env = "HEARTH_AUTH_PER_USERNAME_PER_MINUTE", default_value_t = 5)]
    pub auth_per_username_per_minute: u32,

    /// Addresses of reverse proxies whose `X-Forwarded-For` is believed,
    /// for the per-address limits. From anyone else it is ignored.
    /// Comma-separated in the env var.
    #[arg(
        long = "trusted-proxy",
        env = "HEARTH_TRUSTED_PROXIES",
        value_delimiter = ','
    )]
    pub trusted_proxies: Vec<std::net::IpAddr>,

    /// Password hashes computed at once (each takes ~19 MiB and a core for
    /// tens of ms). 0: one per core.
    #[arg(long, env = "HEARTH_HASH_CONCURRENCY", default_value_t = 0)]
    pub hash_concurrency: usize,

    /// Most WebSockets open on this node at once; over it an upgrade gets
    /// `503 server_full`. 0: the open-file limit minus 1024 kept for HTTP
    /// requests, the database and logs.
    #[arg(long, env = "HEARTH_MAX_CONNECTIONS", default_value_t = 0)]
    pub max_connections: usize,

    /// Most WebSockets open at once from one client address (`429
    /// too_many_connections`). Generous: many people may share a NAT.
    #[arg(long, env = "HEARTH_MAX_CONNECTIONS_PER_IP", default_value_t = 500)]
    pub max_connections_per_ip: usize,

    /// Most WebSockets open at once for one user, every tab and device
    /// together (`429 too_many_connections`).
    #[arg(long, env = "HEARTH_MAX_CONNECTIONS_PER_USER", default_value_t = 32)]
    pub max_connections_per_user: usize,

    /// Most HTTP connections (not yet WebSockets) open at once from one
    /// client address; more are closed as soon as they are accepted.
    #[arg(long, env = "HEARTH_MAX_HTTP_PER_IP", default_value_t = 256)]
    pub max_http_per_ip: usize,

    /// A connection must send a request's complete headers within this
    /// many milliseconds, or it is closed (slowloris).
    #[arg(long, env = "HEARTH_HEADER_TIMEOUT_MS", default_value_t = 5_000)]
    pub header_timeout_ms: u64,

    /// A whole request (its body included) and the server's answer must
    /// be done within this many milliseconds, or it gets `408
    /// request_timeout` and its connection is closed (a body that never
    /// comes, or trickles).
    #[arg(long, env = "HEARTH_REQUEST_TIMEOUT_MS", default_value_t = 15_000)]
    pub request_timeout_ms: u64,

    /// Most HTTP connections (not yet WebSockets) open at once on this
    /// node, from all addresses; more are closed as soon as they are
    /// accepted. Within the file descriptors `--max-connections` leaves.
    #[arg(long, env = "HEARTH_MAX_HTTP_CONNECTIONS", default_value_t = 768)]
    pub max_http_connections: usize,

    /// HTTP API requests per client address per minute (also the burst);
    /// over it: `429 rate_limited` with `Retry-After`.
    #[arg(long, env = "HEARTH_API_PER_IP_PER_MINUTE", default_value_t = 1200)]
    pub api_per_ip_per_minute: u32,

    /// HTTP API requests per session token per minute (also the burst).
    #[arg(long, env = "HEARTH_API_PER_TOKEN_PER_MINUTE", default_value_t = 300)]
    pub api_per_token_per_minute: u32,

    /// Largest file one upload may be, in bytes (`413 too_large` beyond).
    #[arg(long, env = "HEARTH_MAX_UPLOAD_BYTES", default_value_t = 25 * 1024 * 1024)]
    pub max_upload_bytes: u64,

    /// Bytes the files one user uploaded may take in all (`413
    /// quota_exceeded` beyond).
    #[arg(long, env = "HEARTH_UPLOAD_QUOTA_BYTES", default_value_t = 1024 * 1024 * 1024)]
    pub upload_quota_bytes: u64,

    /// How long an upload's body may send nothing before it is given up
    /// (`408 request_timeout`, nothing stored).
    #[arg(long, env = "HEARTH_UPLOAD_IDLE_MS", default_value_t = 30_000)]
    pub upload_idle_ms: u64,

    /// Uploads per user per minute (also the burst); over it: `429
    /// rate_limited` with `Retry-After`.
    #[arg(long, env = "HEARTH_UPLOADS_PER_MINUTE", default_value_t = 20)]
    pub uploads_per_minute: u32,

    /// History a connection may be sent on joins, in bytes per second (the
    /// burst is twice this). A join whose replay would exceed it waits up
    /// to 5 s, or is refused with `rate_limited`.
    #[arg(long, env = "HEARTH_REPLAY_BYTES_PER_SEC", default_value_t = 1024 * 1024)]
    pub replay_bytes_per_sec: u32,

    /// History one user may be sent, on joins over all their sockets and
    /// through the history API together, in bytes per second (the burst is
    /// twice this).
    #[arg(long, env = "HEARTH_REPLAY_BYTES_PER_USER_PER_SEC", default_value_t = 2 * 1024 * 1024)]
    pub replay_bytes_per_user_per_sec: u32,

    /// The same for one client address, all its users together.
    #[arg(long, env = "HEARTH_REPLAY_BYTES_PER_IP_PER_SEC", default_value_t = 8 * 1024 * 1024)]
    pub replay_bytes_per_ip_per_sec: u32,

    /// A room with nobody in it on this node is unloaded from memory after
    /// this many seconds (its history stays in the store; the next join
    /// loads it again).
    #[arg(long, env = "HEARTH_ROOM_UNLOAD_SECS", default_value_t = 60)]
    pub room_unload_secs: u64,

    /// Most rooms one node holds in memory at once. A join that would load
    /// one more gets `room_limit`; rooms already loaded stay joinable.
    #[arg(long, env = "HEARTH_MAX_LOADED_ROOMS", default_value_t = 10_000)]
    pub max_loaded_rooms: usize,

    /// New rooms one user may create per hour (by joining a room that does
    /// not exist, or with `POST /api/rooms`); over it: `rate_limited`.
    #[arg(long, env = "HEARTH_ROOMS_PER_USER_PER_HOUR", default_value_t = 20)]
    pub rooms_per_user_per_hour: u32,

    /// New rooms created from one client address per hour, all its users
    /// together; over it: `rate_limited` (WebSocket) or `429` (API).
    #[arg(long, env = "HEARTH_ROOMS_PER_IP_PER_HOUR", default_value_t = 60)]
    pub rooms_per_ip_per_hour: u32,

    /// How often a node asks the store for revoked sessions, in case it
    /// missed the broker's event, in milliseconds.
    #[arg(long, env = "HEARTH_REVOCATION_POLL_MS", default_value_t = 5_000)]
    pub revocation_poll_ms: u64,

    /// Interval between server pings, in milliseconds.
    #[arg(long, env = "HEARTH_HEARTBEAT_MS", default_value_t = 25_000)]
    pub heartbeat_ms: u64,

    /// A connection that sends nothing for this long after a ping is closed
    /// with 4010, in milliseconds.
    #[arg(long, env = "HEARTH_PONG_TIMEOUT_MS", default_value_t = 10_000)]
    pub pong_timeout_ms: u64,

    /// Largest accepted WebSocket frame or message, in bytes (close 1009).
    #[arg(long, env = "HEARTH_MAX_FRAME_BYTES", default_value_t = 64 * 1024)]
    pub max_frame_bytes: usize,

    /// Sustained `send` rate per connection, messages per second.
    #[arg(long, env = "HEARTH_SEND_RATE", default_value_t = 20.0)]
    pub send_rate: f64,

    /// Burst of `send` messages allowed above the sustained rate.
    #[arg(long, env = "HEARTH_SEND_BURST", default_value_t = 40)]
    pub send_burst: u32,

    /// Most rooms one connection may be in at once.
    #[arg(long, env = "HEARTH_MAX_ROOMS", default_value_t = 100)]
    pub max_rooms: usize,

    /// Frames queued for one connection before it is closed as a slow
    /// consumer (4009).
    #[arg(long, env = "HEARTH_OUTBOUND_QUEUE", default_value_t = 256)]
    pub outbound_queue: usize,

    /// Bytes queued per connection before close 4009: a backlog is bounded
    /// by what it weighs as well as by how many frames it has.
    #[arg(long, env = "HEARTH_OUTBOUND_QUEUE_BYTES", default_value_t = 1024 * 1024)]
    pub outbound_queue_bytes: usize,

    /// Protocol errors (bad frames, unknown types, invalid input) allowed in
    /// a burst before the connection is closed with 4008. One more is
    /// allowed every second.
    #[arg(long, env = "HEARTH_ERROR_BUDGET", default_value_t = 10)]
    pub error_budget: u32,

    /// Minimum interval between forwarded `typing` events of one user in one
    /// room, in milliseconds.
    #[arg(long, env = "HEARTH_TYPING_INTERVAL_MS", default_value_t = 2_000)]
    pub typing_interval_ms: u64,

    /// How long shutdown waits for connections to close, in milliseconds.
    #[arg(long, env = "HEARTH_SHUTDOWN_GRACE_MS", default_value_t = 8_000)]
    pub shutdown_grace_ms: u64,

    /// On SIGTERM, how long `/readyz` says "draining" (503) while
    /// everything else still works, before connections are closed with
    /// 1001: time for a load balancer to stop sending new clients here.
    /// In milliseconds; 0 closes at once.
    #[arg(long, env = "HEARTH_DRAIN_MS", default_value_t = 5_000)]
    pub drain_ms: u64,

    /// Serves Prometheus metrics at `GET /metrics` on the main listener, to
    /// requests with `Authorization: Bearer <this token>`. Off unless set
    /// (or `--metrics-listen`).
    #[arg(long, env = "HEARTH_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,

    /// Serves `GET /metrics` without a token on this separate address
    /// (keep it private: a loopback or internal interface).
    #[arg(long, env = "HEARTH_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,

    /// Log lines as human-readable text, or as JSON objects (one per line,
    /// with their span fields: request ids, connection ids) for log shippers.
    #[arg(long, env = "HEARTH_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// This node's id in a multi-node deployment. Random if unset.
    #[arg(long, env = "HEARTH_NODE_ID")]
    pub node_id: Option<String>,

    /// Lets webhooks POST to loopback, private and link-local addresses
    /// (receivers inside the deployment). Off: such targets are refused,
    /// also when a name resolves to one (see `webhooks/target.rs`).
    #[arg(long, env = "HEARTH_WEBHOOK_ALLOW_PRIVATE")]
    pub webhook_allow_private: bool,

    /// How long a webhook's receiver may take to answer, in milliseconds.
    #[arg(long, env = "HEARTH_WEBHOOK_TIMEOUT_MS", default_value_t = 10_000)]
    pub webhook_timeout_ms: u64,

    /// How often webhooks look for new entries (and renew their leases), in
    /// milliseconds.
    #[arg(long, env = "HEARTH_WEBHOOK_POLL_MS", default_value_t = 1_000)]
    pub webhook_poll_ms: u64,

    /// How long a node's hold on a webhook lasts without renewal: another
    /// node takes over a dead node's webhooks after it. In milliseconds.
    #[arg(long, env = "HEARTH_WEBHOOK_LEASE_MS", default_value_t = 15_000)]
    pub webhook_lease_ms: u64,

    /// The first retry's delay after a failed delivery, doubled after each
    /// further failure, in milliseconds.
    #[arg(long, env = "HEARTH_WEBHOOK_RETRY_BASE_MS", default_value_t = 1_000)]
    pub webhook_retry_base_ms: u64,

    /// The longest delay between retries, in milliseconds.
    #[arg(long, env = "HEARTH_WEBHOOK_RETRY_MAX_MS", default_value_t = 3_600_000)]
    pub webhook_retry_max_ms: u64,

    /// A webhook whose receiver has failed for this long is paused (until
    /// `hearth admin webhook resume`), in milliseconds.
    #[arg(
        long,
        env = "HEARTH_WEBHOOK_PAUSE_AFTER_MS",
        default_value_t = 86_400_000
    )]
    pub webhook_pause_after_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

impl Config {
    /// Defaults for tests and embedding: as if run with no flags, but on a
    /// free port and with the given data dir.
    pub fn for_tests(data_dir: PathBuf) -> Self {
        let mut config = Config::parse_from(["hearth"]);
        config.listen = "127.0.0.1:0".parse().expect("valid address");
        config.data_dir = data_dir;
        // Most tests sign in many people from one address, as guests; the
        // account tests set their own limits.
        config.allow_guests = true;
        config.auth_per_ip_per_minute = 1_000_000;
        config.auth_per_username_per_minute = 1_000_000;
        config.rooms_per_user_per_hour = 1_000_000;
        config.rooms_per_ip_per_hour = 1_000_000;
        config.api_per_ip_per_minute = 1_000_000;
        config.api_per_token_per_minute = 1_000_000;
        config.replay_bytes_per_user_per_sec = 1 << 30;
        config.replay_bytes_per_ip_per_sec = 1 << 30;
        config
    }

    pub fn heartbeat(&self) -> Duration {
        Duration::from_millis(self.heartbeat_ms)
    }

    pub fn pong_timeout(&self) -> Duration {
        Duration::from_millis(self.pong_timeout_ms)
    }

    pub fn typing_interval(&self) -> Duration {
        Duration::from_millis(self.typing_interval_ms)
    }
}
