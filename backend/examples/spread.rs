//! What each node receives from Redis when rooms are spread over nodes
//! (issue #13, item 4): 3 nodes, 3 000 rooms, each room's one member on one
//! node, every room sending messages. A node now subscribes to the channels
//! of the rooms it has loaded; before, every node subscribed to the pattern
//! `<prefix>:room:*` and so received every room's traffic. To show both in
//! one run, a `redis-cli PSUBSCRIBE` of that pattern stands in for a node
//! of the old design. Bytes are what the kernel counted on each process's
//! connections to Redis (`ss`), replies and framing included.
//!
//! ```text
//! cargo build --release -p backend --bin hearth --example spread
//! target/release/examples/spread 3 3000 5      # nodes, rooms, messages per room
//! ```

#[path = "support/guest.rs"]
mod guest;
#[path = "support/nodes.rs"]
mod nodes;
#[path = "support/process.rs"]
mod process;

use std::process::Stdio;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use nodes::Nodes;

/// Bytes received on `pid`'s connections to Redis's port.
fn bytes_from_redis(pid: u32, port: u16) -> u64 {
    let out = std::process::Command::new("ss")
        .args(["-tinpH", &format!("( dport = :{port} )")])
        .output()
        .expect("ss (iproute2) is installed");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut total = 0;
    let mut mine = false;
    for line in text.lines() {
        if !line.starts_with(char::is_whitespace) {
            mine = line.contains(&format!("pid={pid},"));
        } else if mine && let Some(at) = line.find("bytes_received:") {
            let digits: String = line[at + "bytes_received:".len()..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            total += digits.parse::<u64>().unwrap_or(0);
        }
    }
    total
}

#[tokio::main]
async fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("numbers: nodes, rooms, messages per room"))
        .collect();
    let nodes = args.first().copied().unwrap_or(3);
    let rooms = args.get(1).copied().unwrap_or(3000);
    let messages = args.get(2).copied().unwrap_or(5);
    let redis_port: u16 = nodes::redis_url()
        .rsplit(':')
        .next()
        .and_then(|p| p.trim_end_matches('/').parse().ok())
        .unwrap_or(6379);

    let cluster = Nodes::start(nodes, "spread").await;
    let mut pattern = tokio::process::Command::new("redis-cli")
        .args(["-p", &redis_port.to_string(), "psubscribe"])
        .arg(format!("{}:room:*", cluster.prefix))
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("redis-cli is installed");
    let pattern_pid = pattern.id().unwrap();

    // One member per room, room i on node i % nodes.
    let http = reqwest::Client::new();
    let mut tokens = Vec::new();
    for (port, _) in &cluster.servers {
        tokens.push(guest::sign_in(&http, *port, &format!("member-{port}")).await);
    }
    let mut clients = Vec::with_capacity(rooms);
    for i in 0..rooms {
        let n = i % nodes;
        let port = cluster.servers[n].0;
        let mut request = format!("ws://127.0.0.1:{port}/ws")
            .into_client_request()
            .unwrap();
        request.headers_mut().insert(
            "authorization",
            format!("Bearer {}", tokens[n]).parse().unwrap(),
        );
        let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
        guest::join(&mut ws, &format!("r{i}")).await;
        clients.push(ws);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let pids = cluster.pids();
    let before: Vec<u64> = pids
        .iter()
        .map(|&pid| bytes_from_redis(pid, redis_port))
        .collect();
    let pattern_before = bytes_from_redis(pattern_pid, redis_port);

    // Every room's member sends its messages and waits for the acks.
    let sends = clients.into_iter().enumerate().map(|(i, mut ws)| async move {
        for m in 0..messages {
            let send = serde_json::json!({
                "type": "send", "room": format!("r{i}"),
                "content": format!("message {m} of room {i}, about as long as a short chat line"),
                "client_id": format!("c{m}"),
            });
            ws.send(Message::text(send.to_string())).await.unwrap();
        }
        let mut acked = 0;
        while acked < messages {
            match ws.next().await {
                Some(Ok(Message::Text(t))) if t.contains(r#""type":"ack""#) => acked += 1,
                Some(Ok(_)) => {}
                _ => panic!("connection ended"),
            }
        }
        ws
    });
    let clients: Vec<_> = futures_util::stream::iter(sends)
        .buffer_unordered(256)
        .collect()
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after: Vec<u64> = pids
        .iter()
        .map(|&pid| bytes_from_redis(pid, redis_port))
        .collect();
    let pattern_bytes = bytes_from_redis(pattern_pid, redis_port) - pattern_before;

    println!(
        "{nodes} nodes, {rooms} rooms (each on one node), {messages} messages per room: {} messages",
        rooms * messages
    );
    println!();
    println!("| | received from Redis while the rooms talked |");
    println!("| --- | --- |");
    println!(
        "| a node of the old design (pattern subscription: every room) | {:.2} MB |",
        pattern_bytes as f64 / 1e6
    );
    for (n, (a, b)) in after.iter().zip(&before).enumerate() {
        println!(
            "| node {n} now (the {} rooms it hosts) | {:.2} MB ({:.0}% of the old) |",
            rooms.div_ceil(nodes),
            (a - b) as f64 / 1e6,
            (a - b) as f64 * 100.0 / pattern_bytes.max(1) as f64
        );
    }
    drop(clients);
    let _ = pattern.kill().await;
    cluster.stop().await;
}
