//! Load generator for Hearth's benchmarks (see docs/benchmarks.md). It
//! starts the real server binary itself, so it can read the server's memory
//! from /proc, and drives it over loopback with real WebSocket clients.
//!
//! Bounded in count and time, loopback only.
//!
//! ```text
//! cargo build --release -p backend --bin hearth --example loadgen
//! target/release/examples/loadgen idle 2000       # memory per idle connection
//! target/release/examples/loadgen fanout 200 2000 64  # 200 members, 2000 messages, 64 in flight
//! target/release/examples/loadgen signins 20 10 16    # chat latency before and during a sign-in flood
//! target/release/examples/loadgen rooms 50000 10000 100  # rooms abandoned and held: memory, joins, idle CPU
//! ```

#[path = "support/guest.rs"]
mod guest;
#[path = "support/process.rs"]
mod process;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::ServerMsg;
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

struct Server {
    child: tokio::process::Child,
    port: u16,
    _dir: TempDir,
}

struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn start_server() -> Server {
    start_server_with(&[]).await
}

async fn start_server_with(extra: &[&str]) -> Server {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = std::env::temp_dir().join(format!("hearth-loadgen-{port}"));
    let binary = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("hearth");
    let child = tokio::process::Command::new(&binary)
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--send-rate",
            "1000000",
            "--send-burst",
            "1000000",
            "--allow-guests",
            "--auth-per-ip-per-minute",
            "1000000",
            "--auth-per-username-per-minute",
            "1000000",
            // Every client of a benchmark comes from one address.
            "--max-connections-per-ip",
            "1000000",
            "--max-http-per-ip",
            "1000000",
            "--api-per-ip-per-minute",
            "1000000",
            "--rooms-per-user-per-hour",
            "1000000",
        ])
        .args(extra)
        // LOADGEN_DATABASE_URL=postgres://… measures PostgreSQL instead of
        // the default SQLite file (give it an empty database).
        .args(
            std::env::var("LOADGEN_DATABASE_URL")
                .map(|url| vec!["--database-url".to_owned(), url])
                .unwrap_or_default(),
        )
        .arg("--data-dir")
        .arg(&dir)
        .arg("--static-dir")
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("start {}: {e} (build it with --release)", binary.display()));
    for _ in 0..200 {
        if TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return Server {
                child,
                port,
                _dir: TempDir(dir),
            };
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("server did not start");
}

impl Server {
    /// CPU time the server has used (user + system), from /proc.
    fn cpu_time(&self) -> Duration {
        process::cpu_time(self.child.id().unwrap())
    }

    /// Resident memory of the server process, in KiB.
    fn rss_kib(&self) -> u64 {
        process::rss_kib(self.child.id().unwrap())
    }

    fn rss_anon_kib(&self) -> u64 {
        process::rss_anon_kib(self.child.id().unwrap())
    }

    /// A connected client that has joined `room` and read up to `joined`.
    async fn member(&self, http: &reqwest::Client, name: &str, room: &str) -> Ws {
        let token = guest::sign_in(http, self.port, name).await;
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut request = format!("ws://127.0.0.1:{}/ws", self.port)
            .into_client_request()
            .unwrap();
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        // As browsers do: no Nagle delay on the client's side either.
        let (mut ws, _) = tokio_tungstenite::connect_async_with_config(request, None, true)
            .await
            .unwrap();
        let join = serde_json::json!({"type":"join","room":room,"since":null}).to_string();
        ws.send(Message::text(join)).await.unwrap();
        while let Some(Ok(frame)) = ws.next().await {
            if let Message::Text(t) = frame
                && t.contains(r#""type":"joined""#)
            {
                break;
            }
        }
        ws
    }
}

/// Memory per idle connection: RSS after `n` connections (each signed in,
/// connected and in one room of 50) minus RSS before, divided by `n`.
async fn idle(n: usize) {
    let server = start_server().await;
    let http = reqwest::Client::new();
    // Warm up allocator and pools with a few connections first.
    let mut warm = Vec::new();
    for i in 0..20 {
        warm.push(server.member(&http, &format!("warm{i}"), "warm").await);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = server.rss_kib();
    let started = Instant::now();
    let mut clients = Vec::with_capacity(n);
    for i in 0..n {
        clients.push(
            server
                .member(&http, &format!("idle{i}"), &format!("room{}", i / 50))
                .await,
        );
    }
    let connect_time = started.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = server.rss_kib();
    let per = (after - before) as f64 * 1024.0 / n as f64;
    println!("idle connections: {n}");
    println!("server RSS before: {before} KiB, after: {after} KiB");
    println!("memory per idle connection: {:.1} KiB", per / 1024.0);
    println!(
        "connect + sign in + join, sequential: {:.0} per second",
        n as f64 / connect_time.as_secs_f64()
    );
}

/// Fan-out: `members` clients in one room, one sender posts `count`
/// messages as fast as acks allow, with at most `in_flight` unacknowledged
/// (1 measures latency without queueing; more measures throughput). Reports
/// delivered messages per second and end-to-end latency percentiles.
async fn fanout(members: usize, count: usize, in_flight: usize) {
    let server = start_server().await;
    let http = reqwest::Client::new();
    let origin = Instant::now();
    let mut readers = Vec::new();
    for i in 0..members {
        let mut ws = server.member(&http, &format!("member{i}"), "bench").await;
        readers.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(count);
            while latencies.len() < count {
                let Some(Ok(Message::Text(text))) = ws.next().await else {
                    panic!("a member was disconnected");
                };
                if let Ok(ServerMsg::Message(m)) = serde_json::from_str::<ServerMsg>(&text) {
                    let sent_us: u64 = m.content.parse().unwrap();
                    latencies.push(origin.elapsed().as_micros() as u64 - sent_us);
                }
            }
            latencies
        }));
    }
    let sender = server.member(&http, "sender", "bench").await;
    let (mut sink, mut stream) = sender.split();
    let started = Instant::now();
    // At most `in_flight` messages unacknowledged: each ack frees a slot.
    let window = std::sync::Arc::new(tokio::sync::Semaphore::new(in_flight));
    let acks = {
        let window = window.clone();
        tokio::spawn(async move {
            let mut acked = 0;
            while acked < count {
                if let Some(Ok(Message::Text(t))) = stream.next().await
                    && t.contains(r#""type":"ack""#)
                {
                    acked += 1;
                    window.add_permits(1);
                }
            }
        })
    };
    for i in 0..count {
        window.acquire().await.unwrap().forget();
        let content = origin.elapsed().as_micros().to_string();
        let frame = serde_json::json!({"type":"send","room":"bench","content":content,"client_id":format!("c{i}")});
        sink.send(Message::text(frame.to_string())).await.unwrap();
    }
    acks.await.unwrap();
    let mut all = Vec::with_capacity(members * count);
    for reader in readers {
        all.extend(reader.await.unwrap());
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort_unstable();
    let pct = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)] as f64 / 1000.0;
    println!(
        "members: {members}, messages: {count}, in flight: {in_flight}, deliveries: {}",
        all.len()
    );
    println!("stored and acked: {:.0} messages/s", count as f64 / elapsed);
    println!("delivered: {:.0} messages/s", all.len() as f64 / elapsed);
    println!(
        "latency send -> member (ms): p50 {:.2}, p90 {:.2}, p99 {:.2}, max {:.2}",
        pct(0.50),
        pct(0.90),
        pct(0.99),
        pct(1.0)
    );
    println!("server RSS at the end: {} KiB", server.rss_kib());
}

/// Send -> ack round trips, one message in flight, for `period`.
async fn chat_round_trips(ws: &mut Ws, period: Duration, tag: &str) -> Vec<Duration> {
    let mut times = Vec::new();
    let started = Instant::now();
    let mut i = 0;
    while started.elapsed() < period {
        i += 1;
        let frame = serde_json::json!({"type":"send","room":"bench","content":"x","client_id":format!("{tag}{i}")});
        let sent = Instant::now();
        ws.send(Message::text(frame.to_string())).await.unwrap();
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) if t.contains(r#""type":"ack""#) => break,
                Some(Ok(_)) => {}
                _ => panic!("the sender was disconnected"),
            }
        }
        times.push(sent.elapsed());
        // About 50 messages a second: a busy room, not a benchmark of the store.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    times
}

fn percentiles(mut times: Vec<Duration>) -> String {
    times.sort_unstable();
    let pct = |p: f64| {
        times[((times.len() as f64 * p) as usize).min(times.len() - 1)].as_secs_f64() * 1000.0
    };
    format!(
        "{} messages, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        times.len(),
        pct(0.5),
        pct(0.99),
        pct(1.0)
    )
}

/// Chat while people sign in at full speed: `members` in a room, one of
/// them sending about 50 messages a second (send -> ack measured), for
/// `seconds` alone, then for `seconds` while `flooders` clients sign in
/// with a password as fast as the server answers. Password hashing must
/// not stall delivery (it runs off the async workers, bounded).
async fn signins(members: usize, seconds: u64, flooders: usize) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    let server = start_server().await;
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{}", server.port);
    let account = serde_json::json!({
        "username": "flood", "password": "correct horse battery staple", "display_name": "Flood"
    });
    let created = http
        .post(format!("{base}/api/accounts"))
        .json(&account)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let mut readers = Vec::new();
    for i in 0..members {
        let mut ws = server.member(&http, &format!("member{i}"), "bench").await;
        readers.push(tokio::spawn(async move {
            while let Some(Ok(_)) = ws.next().await {}
        }));
    }
    let mut sender = server.member(&http, "sender", "bench").await;
    let period = Duration::from_secs(seconds);
    let before = chat_round_trips(&mut sender, period, "b").await;

    let stop = Arc::new(AtomicBool::new(false));
    let (ok, busy, other) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let mut flood = Vec::new();
    for _ in 0..flooders {
        let (stop, ok, busy, other) = (stop.clone(), ok.clone(), busy.clone(), other.clone());
        let (http, url) = (http.clone(), format!("{base}/api/session"));
        let body =
            serde_json::json!({"username": "flood", "password": "correct horse battery staple"});
        flood.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let status = http.post(&url).json(&body).send().await.unwrap().status();
                match status.as_u16() {
                    200 => &ok,
                    503 => &busy,
                    _ => &other,
                }
                .fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let during = chat_round_trips(&mut sender, period, "d").await;
    stop.store(true, Ordering::Relaxed);
    for task in flood {
        task.await.unwrap();
    }
    println!("members: {members}, {seconds} s each, {flooders} clients signing in at full speed");
    println!("chat send -> ack before the flood: {}", percentiles(before));
    println!("chat send -> ack during the flood: {}", percentiles(during));
    println!(
        "sign-ins during the flood: {:.0}/s answered 200, {} busy (503), {} other",
        ok.load(Ordering::Relaxed) as f64 / seconds as f64,
        busy.load(Ordering::Relaxed),
        other.load(Ordering::Relaxed)
    );
    for reader in readers {
        reader.abort();
    }
}

async fn joined(ws: &mut Ws) {
    while let Some(Ok(frame)) = ws.next().await {
        if let Message::Text(t) = frame
            && (t.contains(r#""type":"joined""#) || t.contains(r#""type":"error""#))
        {
            assert!(t.contains("joined"), "a join was refused: {t}");
            return;
        }
    }
    panic!("disconnected while joining");
}

async fn join(ws: &mut Ws, room: &str) {
    let frame = serde_json::json!({"type":"join","room":room,"since":null}).to_string();
    ws.send(Message::text(frame)).await.unwrap();
    joined(ws).await;
}

/// Rooms created and abandoned must not stay in memory, and memberships
/// held must not slow joins or burn CPU. `holders` connections (distinct
/// users) each hold `held / holders` rooms; then `total - held` more rooms
/// are created and left at once. Reports RSS fresh, at the peak, and after
/// everyone left (rooms unload after 2 s here); a new join's latency and
/// the idle CPU while the memberships are held.
async fn rooms(total: usize, held: usize, holders: usize) {
    let server = start_server_with(&[
        "--room-unload-secs",
        "2",
        "--max-loaded-rooms",
        "1000000",
        "--max-rooms",
        "100000",
    ])
    .await;
    let http = reqwest::Client::new();
    let mut warm = Vec::new();
    for i in 0..20 {
        warm.push(server.member(&http, &format!("warm{i}"), "warm").await);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let fresh = server.rss_kib();
    let fresh_anon = server.rss_anon_kib();
    let started = Instant::now();

    let per_holder = held / holders.max(1);
    let mut tasks = Vec::new();
    for h in 0..holders {
        let mut ws = server.member(&http, &format!("holder{h}"), "warm").await;
        tasks.push(tokio::spawn(async move {
            for i in 0..per_holder {
                join(&mut ws, &format!("held-{h}-{i}")).await;
            }
            ws
        }));
    }
    let mut holding = Vec::new();
    for task in tasks {
        holding.push(task.await.unwrap());
    }
    let abandon = total.saturating_sub(per_holder * holders);
    let creators = 8;
    let mut tasks = Vec::new();
    for c in 0..creators {
        let mut ws = server.member(&http, &format!("creator{c}"), "warm").await;
        tasks.push(tokio::spawn(async move {
            for i in (c..abandon).step_by(creators) {
                let room = format!("gone-{i}");
                join(&mut ws, &room).await;
                let leave = serde_json::json!({"type":"leave","room":room}).to_string();
                ws.send(Message::text(leave)).await.unwrap();
            }
            ws
        }));
    }
    let mut creators_ws = Vec::new();
    for task in tasks {
        creators_ws.push(task.await.unwrap());
    }
    let created_in = started.elapsed();
    let peak = server.rss_kib();

    // A newcomer's joins, with every membership held.
    let mut probe = server.member(&http, "probe", "warm").await;
    let mut times = Vec::new();
    for i in 0..200 {
        let room = format!("probe-{i}");
        let t = Instant::now();
        join(&mut probe, &room).await;
        times.push(t.elapsed());
        let leave = serde_json::json!({"type":"leave","room":room}).to_string();
        probe.send(Message::text(leave)).await.unwrap();
    }
    // Idle CPU with the memberships held.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let cpu_before = server.cpu_time();
    let idle = Duration::from_secs(10);
    tokio::time::sleep(idle).await;
    let idle_cpu = (server.cpu_time() - cpu_before).as_secs_f64() / idle.as_secs_f64();

    drop(holding);
    drop(creators_ws);
    drop(probe);
    tokio::time::sleep(Duration::from_secs(8)).await;
    let after = server.rss_kib();
    let after_anon = server.rss_anon_kib();
    let health: serde_json::Value = http
        .get(format!("http://127.0.0.1:{}/healthz", server.port))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    println!(
        "after everyone left: {} rooms loaded, {} connections",
        health["rooms_loaded"], health["connections"]
    );
    // A second wave of as many rooms, created and abandoned: memory the
    // first wave freed is reused, so the node does not grow.
    let mut ws = server.member(&http, "second-wave", "warm").await;
    for i in 0..abandon + per_holder * holders {
        let room = format!("again-{i}");
        join(&mut ws, &room).await;
        let leave = serde_json::json!({"type":"leave","room":room}).to_string();
        ws.send(Message::text(leave)).await.unwrap();
    }
    drop(ws);
    tokio::time::sleep(Duration::from_secs(8)).await;
    let after_second = server.rss_kib();
    // The store's connections that served the burst close after a minute
    // idle, and the node gives their memory back (see `spawn_room_unloading`).
    tokio::time::sleep(Duration::from_secs(80)).await;
    let settled = server.rss_kib();
    let settled_anon = server.rss_anon_kib();
    println!(
        "rooms created: {}, memberships held: {} on {holders} connections, in {:.1} s",
        abandon + per_holder * holders,
        per_holder * holders,
        created_in.as_secs_f64()
    );
    println!(
        "server RSS: fresh {fresh} KiB, peak {peak} KiB, after everyone left {after} KiB \
         ({:.0}% of fresh)",
        after as f64 * 100.0 / fresh as f64
    );
    println!(
        "after a second wave of as many rooms, abandoned: {after_second} KiB ({:.0}% of after the first)",
        after_second as f64 * 100.0 / after as f64
    );
    println!(
        "80 s later, idle: {settled} KiB ({:.0}% of fresh)",
        settled as f64 * 100.0 / fresh as f64
    );
    println!(
        "of which anonymous (heap, stacks; RSS less the binary's mapped pages): fresh {fresh_anon} KiB, \
         after everyone left {after_anon} KiB, 80 s later {settled_anon} KiB (+{} KiB)",
        settled_anon.saturating_sub(fresh_anon)
    );
    println!(
        "a new join with the memberships held: {}",
        percentiles(times)
    );
    println!(
        "idle CPU with the memberships held: {:.1}% of a core",
        idle_cpu * 100.0
    );
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let number =
        |i: usize, default: usize| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default);
    match args.first().map(String::as_str) {
        Some("idle") => idle(number(1, 2000)).await,
        Some("fanout") => fanout(number(1, 200), number(2, 2000), number(3, 64)).await,
        Some("signins") => signins(number(1, 20), number(2, 10) as u64, number(3, 16)).await,
        Some("rooms") => rooms(number(1, 50_000), number(2, 10_000), number(3, 100)).await,
        _ => {
            eprintln!(
                "usage: loadgen idle [connections] | loadgen fanout [members] [messages] [in flight] \
                 | loadgen signins [members] [seconds] [flooders] \
                 | loadgen rooms [total] [held] [holders]"
            );
            std::process::exit(2);
        }
    }
}
