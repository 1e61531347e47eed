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

#[path = "support/guest.rs"]
mod guest;
#[path = "support/process.rs"]
mod process;
#[path = "support/servers.rs"]
mod servers;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use rand::Rng;
use tokio::sync::{Mutex, Notify};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

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

/// One person's life: send on schedule, read everything, mark what was
/// read, reconnect when told.
async fn live(
    person: Person,
    mut ws: Ws,
    first: Instant,
    load: Load,
    tally: Arc<Tally>,
    nudge: Arc<Notify>,
) {
    let mut next_message = first;
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

async fn run(kind: Kind, load: Load) -> Outcome {
    let server: Server = servers::start(kind, &[]).await;
    let people = load.rooms * load.members;
    let http = reqwest::Client::new();
    let tally = Arc::new(Tally::default());
    let set_up = std::time::Instant::now();
    // Connect everyone, SETUP_AT_ONCE at a time.
    let connected: Vec<(Person, Ws)> = futures_util::stream::iter(0..people)
        .map(|i| {
            let http = http.clone();
            let port = server.port;
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
                (person, ws)
            }
        })
        .buffer_unordered(SETUP_AT_ONCE)
        .collect()
        .await;
    eprintln!(
        "{}: {people} connected in {:.1} s",
        kind.name(),
        set_up.elapsed().as_secs_f64()
    );
    let start = Instant::now() + Duration::from_secs(1);
    let mut nudges = Vec::with_capacity(people);
    let mut tasks = Vec::with_capacity(people);
    let mut rng = rand::thread_rng();
    for (person, ws) in connected {
        let nudge = Arc::new(Notify::new());
        nudges.push(nudge.clone());
        let first = start + load.period.mul_f64(rng.gen_range(0.0..1.0)) + TYPING_LEAD;
        tasks.push(tokio::spawn(live(
            person,
            ws,
            first,
            load,
            tally.clone(),
            nudge,
        )));
    }
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
    let cpu_before = server.cpu_time();
    let store_before = threads_cpu(server.pid(), "sqlx-sqlite");
    let (sent_before, reconnects_before) = (
        tally.sent.load(Ordering::Relaxed),
        tally.reconnects.load(Ordering::Relaxed),
    );
    tally.measuring.store(true, Ordering::Relaxed);
    let measured = Instant::now();
    tokio::time::sleep(Duration::from_secs(load.seconds)).await;
    tally.measuring.store(false, Ordering::Relaxed);
    let elapsed = measured.elapsed().as_secs_f64();
    let cpu = server.cpu_time() - cpu_before;
    let store = threads_cpu(server.pid(), "sqlx-sqlite") - store_before;
    let rss_mib = process::rss_kib(server.pid()) as f64 / 1024.0;
    let sent = tally.sent.load(Ordering::Relaxed) - sent_before;
    let reconnects = tally.reconnects.load(Ordering::Relaxed) - reconnects_before;
    let delivered = tally.delivered.load(Ordering::Relaxed);
    tally.stopping.store(true, Ordering::Relaxed);
    drop(server);
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
        store_share: (kind == Kind::Hearth && !cpu.is_zero())
            .then(|| store.as_secs_f64() / cpu.as_secs_f64()),
        reconnects,
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
    println!(
        "{} rooms of {} (one connection each), a message per person every {} s with typing \
         before it, read markers (Hearth), 1 % reconnecting per minute; {} s warm-up, {} s measured",
        load.rooms,
        load.members,
        load.period.as_secs(),
        WARM_UP.as_secs(),
        load.seconds
    );
    println!();
    println!(
        "| server | connections | messages/s | deliveries/s | server CPU per delivery | × floor | \
         × Socket.IO | p50 | p99 | RSS | store's share of CPU | reconnects |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    let mut results = Vec::new();
    for kind in Kind::selected() {
        results.push((kind, run(kind, load).await));
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
