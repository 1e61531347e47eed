//! Many small rooms on one node (issue #29, workload 1), against the floor
//! (`floor.rs`, rooms by URL path) and Socket.IO 4 (`bench/socketio/`),
//! back to back on the same machine.
//!
//! Load: `rooms` rooms of `members` people, each person on a connection of
//! their own. Everyone sends one message every `period` seconds (at a
//! random offset), with `typing` 1.5 s before it; Hearth's people also send
//! a read marker after reading (at most one per 5 s each: what a client
//! that marks what is on screen does). 1 % of the people reconnect each
//! minute (Hearth's resume with `since`). Warm-up 10 s, then measured for
//! `seconds`. Messages are the same ~250-byte JSON for the references;
//! Hearth stores each in SQLite with fsync before fanning it out.
//!
//! Prints, per server: deliveries per second, the server's CPU per
//! delivered message (typing, pings and read markers are the workload's, not
//! counted as deliveries), p50/p99 from sending to each member reading it,
//! the server's RSS, and for Hearth the store's share of its CPU (its
//! SQLite worker threads).
//!
//! ```text
//! cargo build --release -p backend --bin hearth --example floor --example many_rooms
//! target/release/examples/many_rooms 1500 10 60 30   # rooms, members, seconds, period
//! ```
//!
//! `COMPARE_ONLY=hearth` (or `floor`, `socketio`) runs one server alone.
//!
//! `NODES=3` runs workload 2 instead: the same people over Hearth nodes
//! sharing PostgreSQL and Redis (person i on node i mod N, so each room's
//! members are on every node), against one such node in the same run.
//! PostgreSQL is a server of the run's own with `pg_stat_statements`
//! (needs root: it runs as the `postgres` user); Redis is HEARTH_TEST_REDIS_URL
//! (default 127.0.0.1:6379), whose `INFO` counts the commands and bytes.
//! Prints, per setup, the nodes' CPU per delivery summed, PostgreSQL's and
//! Redis's CPU per delivery, statements, Redis commands and bytes per
//! message, and the statements that cost the most.

#[path = "support/guest.rs"]
mod guest;
#[path = "support/nodes.rs"]
mod nodes;
#[path = "support/own_postgres.rs"]
mod own_postgres;
#[path = "support/process.rs"]
mod process;
#[path = "support/servers.rs"]
mod servers;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use rand::Rng;
use tokio::sync::{Mutex, Notify, watch};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use nodes::Nodes;
use own_postgres::OwnPostgres;
use servers::{Kind, Server, Ws, next_text, now_micros, quantile_ms, sent_at, try_ws};

const WARM_UP: Duration = Duration::from_secs(10);
/// `typing` comes this long before the message.
const TYPING_LEAD: Duration = Duration::from_millis(1_500);
/// At most one read marker per person per this.
const READ_EVERY: Duration = Duration::from_secs(5);
/// Share of the people who reconnect per minute.
const RECONNECTS_PER_MINUTE: f64 = 0.01;
/// Connections set up at once.
const SETUP_AT_ONCE: usize = 64;

#[derive(Clone, Copy)]
struct Load {
    rooms: usize,
    members: usize,
    seconds: u64,
    period: Duration,
}

/// What every person's task adds to.
#[derive(Default)]
struct Tally {
    measuring: AtomicBool,
    stopping: AtomicBool,
    delivered: AtomicU64,
    sent: AtomicU64,
    reconnects: AtomicU64,
    latencies: Mutex<Vec<u32>>,
}

/// One person: where they connect, and how to say things there.
struct Person {
    kind: Kind,
    port: u16,
    room: String,
    token: Option<String>,
}

impl Person {
    /// A connection in the room; Hearth's resumes after `since`. `None`:
    /// the server is gone (the run is over).
    async fn connect(&self, since: Option<u64>) -> Option<Ws> {
        let port = self.port;
        Some(match self.kind {
            Kind::Floor => try_ws(format!("ws://127.0.0.1:{port}/r/{}", self.room), None).await?,
            Kind::SocketIo => {
                let url = format!("ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket");
                let mut ws = try_ws(url, None).await?;
                next_text(&mut ws, |t| t.starts_with('0')).await;
                ws.send(Message::text("40")).await.unwrap();
                next_text(&mut ws, |t| t.starts_with("40")).await;
                let join = format!(r#"42["join","{}"]"#, self.room);
                ws.send(Message::text(join)).await.unwrap();
                ws
            }
            Kind::Hearth => {
                let url = format!("ws://127.0.0.1:{port}/ws");
                let mut ws = try_ws(url, self.token.as_deref()).await?;
                let join = serde_json::json!({"type":"join","room":self.room,"since":since});
                ws.send(Message::text(join.to_string())).await.ok()?;
                next_text(&mut ws, |t| t.contains(r#""type":"joined""#)).await;
                ws
            }
        })
    }

    fn typing(&self) -> String {
        match self.kind {
            Kind::SocketIo => format!(r#"42["send","{}",{{"type":"typing"}}]"#, self.room),
            _ => serde_json::json!({"type":"typing","room":self.room}).to_string(),
        }
    }

    fn message(&self, n: u64) -> String {
        let content = format!("t{}-{}", now_micros(), "x".repeat(60));
        let client_id = format!("c{n}");
        let message = serde_json::json!({
            "type": "message", "room": self.room, "seq": n,
            "id": "0192f0c4-7d1e-7cc4-b3b1-5e1b6a3c9f00",
            "user": {"id": "9b2f6c1e-4a7d-4e53-8f0a-1c2d3e4f5a6b", "name": "sender"},
            "content": content, "ts": 1_764_000_000_000u64, "client_id": client_id,
        });
        match self.kind {
            Kind::Floor => message.to_string(),
            Kind::SocketIo => format!(r#"42["send","{}",{message}]"#, self.room),
            Kind::Hearth => serde_json::json!({
                "type": "send", "room": self.room, "content": content, "client_id": client_id
            })
            .to_string(),
        }
    }
}

/// A message frame's `"seq":N` (Hearth's, for read markers and resuming).
fn seq_of(text: &str) -> Option<u64> {
    let start = text.find("\"seq\":")? + "\"seq\":".len();
    let digits = &text[start..];
    let end = digits.find(|c: char| !c.is_ascii_digit())?;
    digits[..end].parse().ok()
}

/// One person's life: send on schedule (from `offset` after the start
/// `go` gives, once everyone is connected; until then only reading and
/// answering pings), read everything, mark what was read, reconnect when
/// told.
async fn live(
    person: Person,
    mut ws: Ws,
    mut go: watch::Receiver<Option<Instant>>,
    offset: Duration,
    load: Load,
    tally: Arc<Tally>,
    nudge: Arc<Notify>,
) {
    let mut started = false;
    let mut next_message = Instant::now() + Duration::from_secs(86_400);
    let mut typed = false;
    let mut last_seq = 0u64;
    let mut read_seq = 0u64;
    let mut last_read = Instant::now() - READ_EVERY;
    let mut mine: Vec<u32> = Vec::new();
    let mut n = 0u64;
    while !tally.stopping.load(Ordering::Relaxed) {
        let wake = if typed {
            next_message
        } else {
            next_message - TYPING_LEAD
        };
        tokio::select! {
            Ok(()) = go.changed(), if !started => {
                if let Some(start) = *go.borrow() {
                    next_message = start + offset;
                    started = true;
                }
            }
            frame = ws.next() => {
                let text = match frame {
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(_)) => continue,
                    // The server went away (the run is over).
                    _ => break,
                };
                let text = text.as_str();
                if person.kind == Kind::SocketIo && text == "2" {
                    let _ = ws.send(Message::text("3")).await;
                    continue;
                }
                if person.kind == Kind::Hearth && text.contains(r#""type":"ping""#) {
                    let _ = ws.send(Message::text(r#"{"type":"pong"}"#)).await;
                    continue;
                }
                let Some(at) = sent_at(text) else { continue };
                if tally.measuring.load(Ordering::Relaxed) {
                    tally.delivered.fetch_add(1, Ordering::Relaxed);
                    mine.push(now_micros().saturating_sub(at) as u32);
                }
                if person.kind == Kind::Hearth && let Some(seq) = seq_of(text) {
                    last_seq = last_seq.max(seq);
                    if last_read.elapsed() >= READ_EVERY && seq > read_seq {
                        let read = serde_json::json!({"type":"read","room":person.room,"seq":seq});
                        let _ = ws.send(Message::text(read.to_string())).await;
                        read_seq = seq;
                        last_read = Instant::now();
                    }
                }
            }
            () = tokio::time::sleep_until(wake) => {
                if typed {
                    n += 1;
                    let _ = ws.send(Message::text(person.message(n))).await;
                    tally.sent.fetch_add(1, Ordering::Relaxed);
                    next_message += load.period;
                    typed = false;
                } else {
                    let _ = ws.send(Message::text(person.typing())).await;
                    typed = true;
                }
            }
            () = nudge.notified() => {
                let _ = ws.close(None).await;
                let Some(again) = person.connect((last_seq > 0).then_some(last_seq)).await else {
                    break;
                };
                ws = again;
                tally.reconnects.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    tally.latencies.lock().await.append(&mut mine);
}

struct Outcome {
    connections: usize,
    messages_per_sec: f64,
    deliveries_per_sec: f64,
    cpu_per_delivery_us: f64,
    p50_ms: f64,
    p99_ms: f64,
    rss_mib: f64,
    store_share: Option<f64>,
    reconnects: u64,
    /// Over nodes: what PostgreSQL and Redis did in the measured time.
    shared: Option<Shared>,
    messages: u64,
    delivered: u64,
}

/// What the people connect to: one server, or Hearth nodes behind a
/// PostgreSQL and a Redis of their own.
struct Target {
    kind: Kind,
    ports: Vec<u16>,
    pids: Vec<u32>,
    held: Held,
}

enum Held {
    Server(Server),
    Nodes(Nodes),
}

impl Target {
    fn cpu_time(&self) -> Duration {
        self.pids.iter().copied().map(process::cpu_time).sum()
    }

    fn rss_kib(&self) -> u64 {
        self.pids.iter().copied().map(process::rss_kib).sum()
    }

    async fn stop(self) {
        match self.held {
            Held::Server(server) => drop(server),
            Held::Nodes(nodes) => nodes.stop().await,
        }
    }
}

/// Counters of the shared services, read before and after the measured
/// time.
#[derive(Default, Clone)]
struct Shared {
    statements: u64,
    /// Calls of each Redis command.
    redis_calls: std::collections::BTreeMap<String, u64>,
    pg_cpu: Duration,
    redis_commands: u64,
    redis_bytes_in: u64,
    redis_bytes_out: u64,
    redis_cpu: Duration,
}

impl std::ops::Sub for Shared {
    type Output = Shared;
    fn sub(self, before: Shared) -> Shared {
        Shared {
            statements: self.statements - before.statements,
            redis_calls: self
                .redis_calls
                .iter()
                .map(|(command, calls)| {
                    let was = before.redis_calls.get(command).copied().unwrap_or(0);
                    (command.clone(), calls - was)
                })
                .filter(|(_, calls)| *calls > 0)
                .collect(),
            pg_cpu: self.pg_cpu - before.pg_cpu,
            redis_commands: self.redis_commands - before.redis_commands,
            redis_bytes_in: self.redis_bytes_in - before.redis_bytes_in,
            redis_bytes_out: self.redis_bytes_out - before.redis_bytes_out,
            redis_cpu: self.redis_cpu - before.redis_cpu,
        }
    }
}

/// The run's PostgreSQL, and a connection to read Redis's `INFO`.
struct Services {
    pg: OwnPostgres,
    stats: sqlx::PgPool,
    redis: redis::aio::MultiplexedConnection,
}

impl Services {
    async fn start() -> Services {
        let pg = OwnPostgres::start();
        let stats = sqlx::PgPool::connect(&pg.url()).await.unwrap();
        sqlx::query("CREATE EXTENSION pg_stat_statements")
            .execute(&stats)
            .await
            .unwrap();
        let redis = redis::Client::open(nodes::redis_url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        Services { pg, stats, redis }
    }

    /// Statements run in `database` (the nodes'), and Redis's totals: it
    /// is the machine's, so anything else using it at the time counts too.
    async fn read(&self, database: &str) -> Shared {
        let statements: i64 = sqlx::query_scalar(
            "SELECT coalesce(sum(calls), 0)::int8 FROM pg_stat_statements \
             WHERE dbid = (SELECT oid FROM pg_database WHERE datname = $1)",
        )
        .bind(database)
        .fetch_one(&self.stats)
        .await
        .unwrap();
        let info: String = redis::cmd("INFO")
            .arg("everything")
            .query_async(&mut self.redis.clone())
            .await
            .unwrap();
        let field = |name: &str| -> f64 {
            info.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0.0)
        };
        let redis_calls: std::collections::BTreeMap<String, u64> = info
            .lines()
            .filter_map(|l| {
                let (command, stats) = l.strip_prefix("cmdstat_")?.split_once(':')?;
                let calls = stats
                    .split("calls=")
                    .nth(1)?
                    .split(',')
                    .next()?
                    .parse()
                    .ok()?;
                Some((command.to_owned(), calls))
            })
            .collect();
        Shared {
            statements: statements as u64,
            redis_commands: redis_calls.values().sum(),
            redis_calls,
            pg_cpu: self.pg.cpu_time(),
            redis_bytes_in: field("total_net_input_bytes") as u64,
            redis_bytes_out: field("total_net_output_bytes") as u64,
            redis_cpu: Duration::from_secs_f64(field("used_cpu_sys") + field("used_cpu_user")),
        }
    }

    /// The statements that ran most in `database` since the last reset,
    /// with their calls.
    async fn top_statements(&self, database: &str, n: i64) -> Vec<(i64, String)> {
        sqlx::query_as(
            "SELECT calls, regexp_replace(query, '\\s+', ' ', 'g') FROM pg_stat_statements \
             WHERE dbid = (SELECT oid FROM pg_database WHERE datname = $1) \
             ORDER BY calls DESC LIMIT $2",
        )
        .bind(database)
        .bind(n)
        .fetch_all(&self.stats)
        .await
        .unwrap()
    }

    async fn reset_statements(&self) {
        sqlx::query("SELECT pg_stat_statements_reset()")
            .execute(&self.stats)
            .await
            .unwrap();
    }
}

/// CPU time of the threads of `pid` whose name starts with `prefix`.
fn threads_cpu(pid: u32, prefix: &str) -> Duration {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Duration::ZERO;
    };
    tasks
        .filter_map(|task| task.ok())
        .filter(|task| {
            std::fs::read_to_string(task.path().join("comm"))
                .is_ok_and(|name| name.starts_with(prefix))
        })
        .filter_map(|task| task.file_name().to_str()?.parse::<u32>().ok())
        .map(|tid| process::cpu_time_of(&format!("/proc/{pid}/task/{tid}/stat")))
        .sum()
}

async fn start(kind: Kind, nodes: usize, services: Option<&Services>) -> Target {
    match services {
        None => {
            let server = servers::start(kind, &[]).await;
            Target {
                kind,
                ports: vec![server.port],
                pids: vec![server.pid()],
                held: Held::Server(server),
            }
        }
        Some(services) => {
            let nodes = Nodes::start_at(nodes, "many", &services.pg.url()).await;
            Target {
                kind: Kind::Hearth,
                ports: nodes.servers.iter().map(|(port, _)| *port).collect(),
                pids: nodes.pids(),
                held: Held::Nodes(nodes),
            }
        }
    }
}

async fn run(target: Target, load: Load, services: Option<&Services>) -> Outcome {
    let kind = target.kind;
    let people = load.rooms * load.members;
    let http = reqwest::Client::new();
    let tally = Arc::new(Tally::default());
    let set_up = std::time::Instant::now();
    // Connect everyone, SETUP_AT_ONCE at a time; person i on node i mod N.
    // Each starts living at once (answering pings: a setup that takes
    // longer than the heartbeat would otherwise lose the first ones), and
    // sends from the common start on.
    let (go, started) = watch::channel(None);
    let people_of: Vec<(Arc<Notify>, tokio::task::JoinHandle<()>)> =
        futures_util::stream::iter(0..people)
            .map(|i| {
                let http = http.clone();
                let port = target.ports[i % target.ports.len()];
                let (tally, started) = (tally.clone(), started.clone());
                async move {
                    let token = match kind {
                        Kind::Hearth => Some(guest::sign_in(&http, port, &format!("p{i}")).await),
                        _ => None,
                    };
                    let person = Person {
                        kind,
                        port,
                        room: format!("room-{}", i / load.members),
                        token,
                    };
                    let ws = person.connect(None).await.expect("connected");
                    let nudge = Arc::new(Notify::new());
                    let offset =
                        load.period.mul_f64(rand::thread_rng().gen_range(0.0..1.0)) + TYPING_LEAD;
                    let task = tokio::spawn(live(
                        person,
                        ws,
                        started,
                        offset,
                        load,
                        tally,
                        nudge.clone(),
                    ));
                    (nudge, task)
                }
            })
            .buffer_unordered(SETUP_AT_ONCE)
            .collect()
            .await;
    eprintln!(
        "{} ({} process(es)): {people} connected in {:.1} s",
        kind.name(),
        target.pids.len(),
        set_up.elapsed().as_secs_f64()
    );
    let start = Instant::now() + Duration::from_secs(1);
    go.send_replace(Some(start));
    let (nudges, tasks): (Vec<_>, Vec<_>) = people_of.into_iter().unzip();
    // 1 % of the people per minute: one every `gap`, at random.
    let gap = Duration::from_secs_f64(60.0 / (RECONNECTS_PER_MINUTE * people as f64));
    let reconnecting = {
        let tally = tally.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(gap);
            tick.tick().await;
            while !tally.stopping.load(Ordering::Relaxed) {
                tick.tick().await;
                let who = rand::thread_rng().gen_range(0..nudges.len());
                nudges[who].notify_one();
            }
        })
    };
    tokio::time::sleep_until(start + WARM_UP).await;
    let database = match &target.held {
        Held::Nodes(nodes) => nodes.prefix.clone(),
        Held::Server(_) => String::new(),
    };
    if let Some(services) = services {
        services.reset_statements().await;
    }
    let shared_before = match services {
        Some(services) => Some(services.read(&database).await),
        None => None,
    };
    let cpu_before = target.cpu_time();
    let store_before = threads_cpu(target.pids[0], "sqlx-sqlite");
    let (sent_before, reconnects_before) = (
        tally.sent.load(Ordering::Relaxed),
        tally.reconnects.load(Ordering::Relaxed),
    );
    tally.measuring.store(true, Ordering::Relaxed);
    let measured = Instant::now();
    tokio::time::sleep(Duration::from_secs(load.seconds)).await;
    tally.measuring.store(false, Ordering::Relaxed);
    let elapsed = measured.elapsed().as_secs_f64();
    let cpu = target.cpu_time() - cpu_before;
    let store = threads_cpu(target.pids[0], "sqlx-sqlite") - store_before;
    let shared = match (services, shared_before) {
        (Some(services), Some(before)) => Some(services.read(&database).await - before),
        _ => None,
    };
    let rss_mib = target.rss_kib() as f64 / 1024.0;
    let sent = tally.sent.load(Ordering::Relaxed) - sent_before;
    let reconnects = tally.reconnects.load(Ordering::Relaxed) - reconnects_before;
    let delivered = tally.delivered.load(Ordering::Relaxed);
    if let Some(services) = services {
        println!(
            "\n{} node(s): the statements run most in the measured time, per message sent:",
            target.pids.len()
        );
        for (calls, query) in services.top_statements(&database, 8).await {
            let query: String = query.chars().take(140).collect();
            println!("- {:.2} × `{query}`", calls as f64 / sent.max(1) as f64);
        }
    }
    tally.stopping.store(true, Ordering::Relaxed);
    target.stop().await;
    let _ = tokio::time::timeout(
        Duration::from_secs(20),
        futures_util::future::join_all(tasks),
    )
    .await;
    reconnecting.abort();
    let mut all = std::mem::take(&mut *tally.latencies.lock().await);
    all.sort_unstable();
    Outcome {
        connections: people,
        messages_per_sec: sent as f64 / elapsed,
        deliveries_per_sec: delivered as f64 / elapsed,
        cpu_per_delivery_us: cpu.as_secs_f64() * 1e6 / delivered.max(1) as f64,
        p50_ms: quantile_ms(&all, 0.50),
        p99_ms: quantile_ms(&all, 0.99),
        rss_mib,
        store_share: (kind == Kind::Hearth && services.is_none() && !cpu.is_zero())
            .then(|| store.as_secs_f64() / cpu.as_secs_f64()),
        reconnects,
        shared,
        messages: sent,
        delivered,
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("numbers: rooms, members, seconds, period"))
        .collect();
    let arg = |i: usize, default: u64| args.get(i).copied().unwrap_or(default);
    let load = Load {
        rooms: arg(0, 1500) as usize,
        members: arg(1, 10) as usize,
        seconds: arg(2, 60),
        period: Duration::from_secs(arg(3, 30)),
    };
    let nodes: usize = std::env::var("NODES").map_or(0, |n| n.parse().expect("NODES: a number"));
    println!(
        "{} rooms of {} (one connection each), a message per person every {} s with typing \
         before it, read markers (Hearth), 1 % reconnecting per minute; {} s warm-up, {} s measured",
        load.rooms,
        load.members,
        load.period.as_secs(),
        WARM_UP.as_secs(),
        load.seconds
    );
    if nodes > 0 {
        return over_nodes(load, nodes).await;
    }
    println!();
    println!(
        "| server | connections | messages/s | deliveries/s | server CPU per delivery | × floor | \
         × Socket.IO | p50 | p99 | RSS | store's share of CPU | reconnects |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    let mut results = Vec::new();
    for kind in Kind::selected() {
        let target = start(kind, 1, None).await;
        results.push((kind, run(target, load, None).await));
        // Sockets of the last run leave TIME_WAIT before the next.
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let reference = |kind: Kind| {
        results
            .iter()
            .find(|(k, _)| *k == kind)
            .map_or(f64::NAN, |(_, r)| r.cpu_per_delivery_us)
    };
    let (floor, socketio) = (reference(Kind::Floor), reference(Kind::SocketIo));
    for (kind, r) in &results {
        println!(
            "| {} | {} | {:.0} | {:.0} | {:.2} µs | {:.2} | {:.2} | {:.2} ms | {:.2} ms | {:.0} MiB | {} | {} |",
            kind.name(),
            r.connections,
            r.messages_per_sec,
            r.deliveries_per_sec,
            r.cpu_per_delivery_us,
            r.cpu_per_delivery_us / floor,
            r.cpu_per_delivery_us / socketio,
            r.p50_ms,
            r.p99_ms,
            r.rss_mib,
            r.store_share
                .map_or("–".to_owned(), |s| format!("{:.0} %", s * 100.0)),
            r.reconnects
        );
    }
}

/// Workload 2: one node, then `count` nodes, each behind the run's own
/// PostgreSQL and the machine's Redis.
async fn over_nodes(load: Load, count: usize) {
    let services = Services::start().await;
    let mut results = Vec::new();
    for n in [1, count] {
        let target = start(Kind::Hearth, n, Some(&services)).await;
        results.push((n, run(target, load, Some(&services)).await));
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let one = results[0].1.cpu_per_delivery_us;
    println!();
    println!(
        "| nodes | connections | messages/s | deliveries/s | nodes' CPU per delivery | × one node | \
         p50 | p99 | nodes' RSS | PostgreSQL CPU per delivery | statements per message | \
         Redis CPU per delivery | Redis commands per message | Redis bytes in / out per message | reconnects |"
    );
    println!(
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    );
    for (n, r) in &results {
        let shared = r.shared.clone().unwrap_or_default();
        let (messages, delivered) = (r.messages.max(1) as f64, r.delivered.max(1) as f64);
        println!(
            "| {n} | {} | {:.0} | {:.0} | {:.2} µs | {:.2} | {:.2} ms | {:.2} ms | {:.0} MiB | \
             {:.2} µs | {:.2} | {:.2} µs | {:.2} | {:.0} / {:.0} | {} |",
            r.connections,
            r.messages_per_sec,
            r.deliveries_per_sec,
            r.cpu_per_delivery_us,
            r.cpu_per_delivery_us / one,
            r.p50_ms,
            r.p99_ms,
            r.rss_mib,
            shared.pg_cpu.as_secs_f64() * 1e6 / delivered,
            shared.statements as f64 / messages,
            shared.redis_cpu.as_secs_f64() * 1e6 / delivered,
            shared.redis_commands as f64 / messages,
            shared.redis_bytes_in as f64 / messages,
            shared.redis_bytes_out as f64 / messages,
            r.reconnects
        );
    }
    println!();
    for (n, r) in &results {
        let shared = r.shared.clone().unwrap_or_default();
        let each: Vec<String> = shared
            .redis_calls
            .iter()
            .map(|(command, calls)| {
                format!("{command} {:.2}", *calls as f64 / r.messages.max(1) as f64)
            })
            .collect();
        println!(
            "{n} node(s): Redis commands per message: {}",
            each.join(", ")
        );
    }
}
