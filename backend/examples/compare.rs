//! Fan-out against references: Hearth, the "floor" (`floor.rs`: framing
//! once and one write per subscriber, nothing else) and Socket.IO 4 on
//! Node (`bench/socketio/`), back to back, same load, same machine. Prints
//! the server's CPU per delivery and the latency from sending to each
//! subscriber reading it, and the ratios to the floor and to Socket.IO.
//!
//! Load: one room of `subscribers`, one sender at a fixed rate; each rate is
//! warmed up for 2 s, then measured for 10 s. Every message is the same
//! ~250-byte JSON for all three servers (Hearth's own frame adds its
//! fields around the content). Hearth stores each message in SQLite with
//! fsync before fanning it out; the references store nothing.
//!
//! ```text
//! cargo build --release -p backend --bin hearth --example floor --example compare
//! target/release/examples/compare 1000 60 120
//! ```
//!
//! `COMPARE_ONLY=hearth` (or `floor`, `socketio`) runs one server alone, to
//! profile it (`perf record -p <pid>`); ratios then mean nothing.
//! `COMPARE_HEARTH_ARGS` adds flags to Hearth's (`--metrics-token x`).
//!
//! Socket.IO's dependencies are installed from npm into
//! bench/socketio/node_modules (ignored by git) on first use.

#[path = "support/guest.rs"]
mod guest;
#[path = "support/process.rs"]
mod process;
#[path = "support/servers.rs"]
mod servers;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::Message;

use servers::{Kind, Server, Ws, next_text, now_micros, quantile_ms, sent_at, ws};

const WARM_UP: Duration = Duration::from_secs(2);
const MEASURE: Duration = Duration::from_secs(10);
const ROOM: &str = "bench";

impl Server {
    /// A connection that is in the room.
    async fn connect(&self, http: &reqwest::Client, i: usize) -> Ws {
        match self.kind {
            Kind::Floor => ws(format!("ws://127.0.0.1:{}/", self.port), None).await,
            Kind::SocketIo => {
                let mut ws = ws(
                    format!(
                        "ws://127.0.0.1:{}/socket.io/?EIO=4&transport=websocket",
                        self.port
                    ),
                    None,
                )
                .await;
                next_text(&mut ws, |t| t.starts_with('0')).await;
                ws.send(Message::text("40")).await.unwrap();
                next_text(&mut ws, |t| t.starts_with("40")).await;
                ws.send(Message::text(format!(r#"42["join","{ROOM}"]"#)))
                    .await
                    .unwrap();
                ws
            }
            Kind::Hearth => {
                let token = guest::sign_in(http, self.port, &format!("user{i}")).await;
                let mut ws = ws(format!("ws://127.0.0.1:{}/ws", self.port), Some(&token)).await;
                guest::join(&mut ws, ROOM).await;
                ws
            }
        }
    }

    /// The frame that sends `content`.
    fn send_frame(&self, content: &str, n: u64) -> String {
        // The same ~250 bytes everywhere: a chat message as Hearth sends it.
        let message = serde_json::json!({
            "type": "message", "room": ROOM, "seq": n,
            "id": "0192f0c4-7d1e-7cc4-b3b1-5e1b6a3c9f00",
            "user": {"id": "9b2f6c1e-4a7d-4e53-8f0a-1c2d3e4f5a6b", "name": "sender"},
            "content": content, "ts": 1_764_000_000_000u64, "client_id": format!("c{n}"),
        });
        match self.kind {
            Kind::Floor => message.to_string(),
            Kind::SocketIo => format!(r#"42["send","{ROOM}",{message}]"#),
            Kind::Hearth => serde_json::json!({
                "type": "send", "room": ROOM, "content": content, "client_id": format!("c{n}")
            })
            .to_string(),
        }
    }
}

struct Outcome {
    deliveries_per_sec: f64,
    cpu_per_delivery_us: f64,
    p50_ms: f64,
    p99_ms: f64,
}

async fn run(kind: Kind, subscribers: usize, rate: u32) -> Outcome {
    let server = servers::start(kind, &[]).await;
    let http = reqwest::Client::new();
    let measuring = Arc::new(AtomicBool::new(false));
    let delivered = Arc::new(AtomicU64::new(0));
    let latencies: Arc<Mutex<Vec<u32>>> = Arc::default();
    let mut readers = Vec::with_capacity(subscribers);
    for i in 0..subscribers {
        let mut ws = server.connect(&http, i).await;
        let (measuring, delivered, latencies) =
            (measuring.clone(), delivered.clone(), latencies.clone());
        readers.push(tokio::spawn(async move {
            let mut mine: Vec<u32> = Vec::new();
            while let Some(Ok(frame)) = ws.next().await {
                let Message::Text(text) = frame else { continue };
                let text = text.as_str();
                if kind == Kind::SocketIo && text == "2" {
                    let _ = ws.send(Message::text("3")).await;
                    continue;
                }
                if kind == Kind::Hearth && text.contains(r#""type":"ping""#) {
                    let _ = ws.send(Message::text(r#"{"type":"pong"}"#)).await;
                    continue;
                }
                let Some(at) = sent_at(text) else { continue };
                if measuring.load(Ordering::Relaxed) {
                    delivered.fetch_add(1, Ordering::Relaxed);
                    mine.push(now_micros().saturating_sub(at) as u32);
                }
                if mine.len() >= 4096 {
                    latencies.lock().await.append(&mut mine);
                }
            }
            latencies.lock().await.append(&mut mine);
        }));
    }
    let sender = server.connect(&http, subscribers).await;
    // The sender's own copies and acks are read and dropped.
    let (mut sink, mut stream) = sender.split();
    let drain = tokio::spawn(async move { while stream.next().await.is_some() {} });
    let padding = "x".repeat(60);
    let every = Duration::from_secs_f64(1.0 / f64::from(rate));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut n = 0u64;
    let mut send_for = async |period: Duration, n: &mut u64| {
        let until = Instant::now() + period;
        while Instant::now() < until {
            tick.tick().await;
            *n += 1;
            let content = format!("t{}-{padding}", now_micros());
            sink.send(Message::text(server.send_frame(&content, *n)))
                .await
                .unwrap();
        }
    };
    send_for(WARM_UP, &mut n).await;
    let cpu_before = server.cpu_time();
    measuring.store(true, Ordering::Relaxed);
    let started = Instant::now();
    send_for(MEASURE, &mut n).await;
    // Let the last messages arrive before the window closes.
    tokio::time::sleep(Duration::from_millis(200)).await;
    measuring.store(false, Ordering::Relaxed);
    let elapsed = started.elapsed();
    let cpu = server.cpu_time() - cpu_before;
    let count = delivered.load(Ordering::Relaxed);
    drop(sink);
    drain.abort();
    drop(server);
    // The server's sockets close with it; each reader then hands over its
    // latencies (aborting them would lose those).
    let _ = tokio::time::timeout(
        Duration::from_secs(10),
        futures_util::future::join_all(readers),
    )
    .await;
    let mut all = std::mem::take(&mut *latencies.lock().await);
    all.sort_unstable();
    Outcome {
        deliveries_per_sec: count as f64 / elapsed.as_secs_f64(),
        cpu_per_delivery_us: cpu.as_secs_f64() * 1e6 / count.max(1) as f64,
        p50_ms: quantile_ms(&all, 0.50),
        p99_ms: quantile_ms(&all, 0.99),
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<u32> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("numbers: subscribers, then rates"))
        .collect();
    let subscribers = args.first().copied().unwrap_or(1000) as usize;
    let rates: Vec<u32> = if args.len() > 1 {
        args[1..].to_vec()
    } else {
        vec![60, 120]
    };
    println!("one room, {subscribers} subscribers, one sender; 2 s warm-up, 10 s measured per run");
    println!();
    println!(
        "| rate | server | deliveries/s | server CPU per delivery | × floor | × Socket.IO | p50 | p99 |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    for rate in rates {
        let mut results = Vec::new();
        for kind in Kind::selected() {
            results.push((kind, run(kind, subscribers, rate).await));
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
                "| {rate}/s | {} | {:.0} | {:.2} µs | {:.2} | {:.2} | {:.2} ms | {:.2} ms |",
                kind.name(),
                r.deliveries_per_sec,
                r.cpu_per_delivery_us,
                r.cpu_per_delivery_us / floor,
                r.cpu_per_delivery_us / socketio,
                r.p50_ms,
                r.p99_ms
            );
        }
    }
}
