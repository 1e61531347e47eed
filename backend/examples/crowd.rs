//! 100 000 idle connections on one machine (issue #13): several Hearth
//! nodes behind the same PostgreSQL and Redis, each under the per-process
//! open-file limit (20 000 here), and one load-generating process per node,
//! each connecting from its own loopback source address (127.0.0.2, .3, …)
//! so that no address runs short of ephemeral ports.
//!
//! ```text
//! cargo build --release -p backend --bin hearth --example crowd
//! target/release/examples/crowd 6 16700        # 6 nodes × 16 700 connections
//! ```
//!
//! Every connection is one of a user's 100 (signing in 100 000 guests would
//! measure the store, not idle connections), joins a room of 50 distinct
//! users, and then only answers pings.
//! Prints the time to connect them all and each node's RSS per connection.
//! Needs `ulimit -n` 20 000 (it raises the soft limit of what it starts),
//! PostgreSQL at HEARTH_TEST_POSTGRES_URL (default
//! postgres://postgres@127.0.0.1:5432/test; a database is created and
//! dropped) and Redis at HEARTH_TEST_REDIS_URL (default 127.0.0.1:6379).

#[path = "support/guest.rs"]
mod guest;
#[path = "support/nodes.rs"]
mod nodes;
#[path = "support/process.rs"]
mod process;

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpSocket;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use nodes::{Nodes, raised};
use process::rss_kib;

/// Connections of one user: a person with many tabs, which keeps sign-ins
/// (store writes) from dominating the setup.
const CONNECTIONS_PER_USER: usize = 100;
const ROOM_SIZE: usize = 50;
/// Connections being set up at once by one process.
const CONCURRENCY: usize = 64;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("hold") {
        let port: u16 = args[1].parse().unwrap();
        let count: usize = args[2].parse().unwrap();
        let source: std::net::Ipv4Addr = args[3].parse().unwrap();
        return hold(port, count, source).await;
    }
    let nodes: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(6);
    let per_node: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(16_700);
    orchestrate(nodes, per_node).await;
}

async fn orchestrate(nodes: usize, per_node: usize) {
    let cluster = Nodes::start(nodes, "crowd").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before: Vec<u64> = cluster.pids().into_iter().map(rss_kib).collect();

    println!("{nodes} nodes × {per_node} connections, each node's clients from its own 127.0.0.x");
    let started = Instant::now();
    let mut holders = Vec::new();
    for (n, (port, _)) in cluster.servers.iter().enumerate() {
        let args = vec![
            "hold".to_string(),
            port.to_string(),
            per_node.to_string(),
            format!("127.0.0.{}", n + 2),
        ];
        let mut child = raised(&std::env::current_exe().unwrap(), &args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .stdin(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        holders.push((child, lines));
    }
    let mut held = 0;
    for (_, lines) in &mut holders {
        let line = lines.next_line().await.unwrap().expect("a holder reports");
        held += line
            .strip_prefix("held ")
            .and_then(|n| n.parse::<usize>().ok())
            .unwrap_or_else(|| panic!("holder said {line:?}"));
    }
    let took = started.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after: Vec<u64> = cluster.pids().into_iter().map(rss_kib).collect();
    let http = reqwest::Client::new();
    let mut open = 0;
    for (port, _) in &cluster.servers {
        let health: serde_json::Value = http
            .get(format!("http://127.0.0.1:{port}/healthz"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        open += health["connections"].as_u64().unwrap_or(0);
    }
    println!(
        "connected and joined: {held} in {:.1} s ({:.0} per second); the nodes count {open} open",
        took.as_secs_f64(),
        held as f64 / took.as_secs_f64()
    );
    let grown: u64 = after.iter().zip(&before).map(|(a, b)| a - b).sum();
    println!(
        "nodes' RSS: {} KiB before, {} KiB after (+{grown} KiB): {:.1} KiB per connection",
        before.iter().sum::<u64>(),
        after.iter().sum::<u64>(),
        grown as f64 / held.max(1) as f64
    );
    for (i, (a, b)) in after.iter().zip(&before).enumerate() {
        println!("  node {i}: {b} → {a} KiB");
    }
    drop(holders);
    cluster.stop().await;
}

/// Connects `count` clients to the node at `port` from `source`, says
/// "held N" when all are in their rooms, and keeps them (answering pings)
/// until stdin closes.
async fn hold(port: u16, count: usize, source: std::net::Ipv4Addr) {
    let http = reqwest::Client::builder()
        .local_address(std::net::IpAddr::V4(source))
        .build()
        .unwrap();
    let users = count.div_ceil(CONNECTIONS_PER_USER);
    let mut tokens = Vec::with_capacity(users);
    for u in 0..users {
        tokens.push(guest::sign_in(&http, port, &format!("{source}-{u}")).await);
    }
    let tokens = Arc::new(tokens);
    let next = Arc::new(AtomicUsize::new(0));
    let joined = Arc::new(AtomicUsize::new(0));
    let (done_tx, mut done_rx) = tokio::sync::mpsc::channel::<()>(1);
    for _ in 0..CONCURRENCY {
        let (tokens, next, joined, done_tx) = (
            tokens.clone(),
            next.clone(),
            joined.clone(),
            done_tx.clone(),
        );
        tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    return;
                }
                // Distinct users in each room of 50.
                let token = &tokens[i % tokens.len()];
                let room = format!("c{}-{}", source.octets()[3], i / ROOM_SIZE);
                let socket = TcpSocket::new_v4().unwrap();
                socket.bind((source, 0).into()).unwrap();
                let stream = socket.connect(([127, 0, 0, 1], port).into()).await.unwrap();
                let mut request = format!("ws://127.0.0.1:{port}/ws")
                    .into_client_request()
                    .unwrap();
                request
                    .headers_mut()
                    .insert("authorization", format!("Bearer {token}").parse().unwrap());
                let (mut ws, _) = tokio_tungstenite::client_async(request, stream)
                    .await
                    .unwrap();
                guest::join(&mut ws, &room).await;
                if joined.fetch_add(1, Ordering::Relaxed) + 1 == count {
                    let _ = done_tx.send(()).await;
                }
                // Idle from here on, apart from answering pings.
                tokio::spawn(async move {
                    while let Some(Ok(frame)) = ws.next().await {
                        if let Message::Text(t) = frame
                            && t.contains(r#""type":"ping""#)
                            && ws.send(Message::text(r#"{"type":"pong"}"#)).await.is_err()
                        {
                            return;
                        }
                    }
                });
            }
        });
    }
    drop(done_tx);
    let _ = done_rx.recv().await;
    println!("held {}", joined.load(Ordering::Relaxed));
    // Until the orchestrator is done with us.
    let _ = tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        while std::io::stdin().read_line(&mut line).is_ok_and(|n| n > 0) {
            line.clear();
        }
    })
    .await;
}
