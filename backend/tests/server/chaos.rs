//! The chaos run: three real nodes on a PostgreSQL and a Redis of the run's
//! own, clients on every node sending steadily, resuming with `since` and
//! reconnecting at random, while faults are injected:
//! - `kill -9` of a random node, which is then restarted on the same port;
//! - a Redis restart;
//! - PostgreSQL paused with SIGSTOP for a few seconds;
//! - a fault proxy in front of one node, which adds latency, drops
//!   connections and cuts frames mid-way (`FaultProxy`).
//!
//! Then everything calms down, every client resumes once more, and the
//! checker asserts (and prints) that every acked message is stored exactly
//! once, every client's view of every room is the stored, gap-free sequence,
//! nobody is listed who is not connected, and every node's memory is back
//! within a bound.
//!
//! In the suite it runs for `HEARTH_CHAOS_SECS` (default 20 s);
//! `scripts/chaos` runs it for 3 minutes and shows the report.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{ServerMsg, SessionResponse};
use futures_util::{SinkExt, StreamExt};
use rand::Rng;
use tokio::process::Child;
use tokio_tungstenite::connect_async;
use tokio_tungstenite::tungstenite::Message;

use crate::faults_support::{FaultProxy, OwnPostgres, OwnRedis};
use crate::support::{sign_in_at, start_hearth, temp_dir, unused_port};

const ROOMS: [&str; 3] = ["chaos-a", "chaos-b", "chaos-c"];
const NODES: usize = 3;
const CLIENTS_PER_NODE: usize = 3;
const PROXIED_CLIENTS: usize = 3;
/// Presence expiry on the nodes; a killed node's users are gone after it.
const PRESENCE_TTL_MS: u64 = 1_500;

struct Node {
    port: u16,
    child: Option<Child>,
    /// RSS right after it came up, and after the warm-up.
    baseline_kib: u64,
}

struct Cluster {
    dir: std::path::PathBuf,
    database_url: String,
    redis_url: String,
    nodes: Vec<Node>,
}

impl Cluster {
    /// Starts node `index` on `listen` (`127.0.0.1:0` the first time; its
    /// own address again when it restarts, where its clients know it).
    async fn spawn(&self, index: usize, listen: &str) -> (Child, u16) {
        let name = format!("chaos-{index}");
        let mut args: Vec<std::ffi::OsString> = Vec::new();
        for arg in [
            "--database-url",
            &self.database_url,
            "--redis-url",
            &self.redis_url,
            "--allow-guests",
            "--auth-per-ip-per-minute",
            "1000000",
            "--presence-refresh-ms",
            "250",
            "--presence-ttl-ms",
            &PRESENCE_TTL_MS.to_string(),
            "--send-rate",
            "1000",
            "--send-burst",
            "1000",
            "--store-timeout-ms",
            "2000",
            "--store-probe-ms",
            "200",
        ] {
            args.push(arg.into());
        }
        args.extend(["--data-dir".into(), self.dir.join(&name).into_os_string()]);
        args.extend(["--static-dir".into(), self.dir.clone().into_os_string()]);
        // Kept beside its data, for a failing run.
        let log = self.dir.join(format!("{name}.log"));
        let (child, addr) = start_hearth(args, listen, &name, &log, "info").await;
        (child, addr.rsplit(':').next().unwrap().parse().unwrap())
    }

    async fn kill_and_restart(&mut self, index: usize) {
        let port = self.nodes[index].port;
        if let Some(mut child) = self.nodes[index].child.take() {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
        tokio::time::sleep(random_ms(300, 1_500)).await;
        let (child, _) = self.spawn(index, &format!("127.0.0.1:{port}")).await;
        self.nodes[index].baseline_kib = rss_kib(&child);
        self.nodes[index].child = Some(child);
    }
}

/// A random duration in `[from, to)` ms. (A plain function: the thread-local
/// generator must not live across an `.await`.)
fn random_ms(from: u64, to: u64) -> Duration {
    Duration::from_millis(rand::thread_rng().gen_range(from..to))
}

fn rss_kib(child: &Child) -> u64 {
    let Some(pid) = child.id() else { return 0 };
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Shared between the clients and the coordinator.
#[derive(Default)]
struct Board {
    /// Set when the faults stop: clients stop sending and disconnecting.
    calm: AtomicBool,
    /// The room's final last seq, once known: clients read up to it.
    targets: Mutex<Option<HashMap<String, u64>>>,
    /// Clients that have caught up to the targets.
    synced: AtomicU64,
    /// Set when the checker is done with the live connections.
    release: AtomicBool,
    /// When the last ack arrived anywhere (ms since `start`).
    last_ack_ms: AtomicU64,
}

/// What one client saw and did.
#[derive(Default, Debug)]
struct Log {
    name: String,
    /// Per room: every message received, in arrival order.
    views: BTreeMap<String, Vec<(u64, String)>>,
    /// client_id -> (room, seq) for every ack.
    acked: HashMap<String, (String, u64)>,
    internal: u64,
    reconnects: u64,
    /// Longest time from losing a connection to being re-joined everywhere.
    worst_recovery: Duration,
    violations: Vec<String>,
}

struct ClientSpec {
    index: usize,
    session: SessionResponse,
    /// Ports it may connect to (a node's, or the proxy's).
    ports: Vec<u16>,
}

async fn run_client(spec: ClientSpec, board: Arc<Board>, start: Instant) -> Log {
    let mut log = Log {
        name: spec.session.user.name.clone(),
        ..Log::default()
    };
    let mut last_seen: HashMap<String, u64> = HashMap::new();
    // Unacked sends: client_id -> (room, content). Re-sent after a reconnect.
    let mut outbox: BTreeMap<String, String> = BTreeMap::new();
    // Sends answered `internal` on this socket: offered again once each, as
    // the app does. (Re-offering the whole outbox on every tick piles up
    // copies behind a stalled store, which the send limit then refuses.)
    let mut retry: BTreeSet<String> = BTreeSet::new();
    let mut next = 0u64;
    let mut lost_at: Option<Instant> = None;
    loop {
        if board.release.load(Ordering::Acquire) {
            return log;
        }
        let port = spec.ports[rand::thread_rng().gen_range(0..spec.ports.len())];
        let url = crate::support::ws_request(format!("127.0.0.1:{port}"), &spec.session.token);
        let Ok(Ok((mut ws, _))) =
            tokio::time::timeout(Duration::from_secs(3), connect_async(url)).await
        else {
            lost_at.get_or_insert_with(Instant::now);
            tokio::time::sleep(random_ms(50, 300)).await;
            continue;
        };
        for room in ROOMS {
            let since = last_seen.get(room).copied();
            let join = serde_json::json!({"type":"join","room":room,"since":since});
            if ws.send(Message::text(join.to_string())).await.is_err() {
                break;
            }
        }
        let mut joined: BTreeSet<String> = BTreeSet::new();
        retry.clear();
        let mut send_tick =
            tokio::time::interval(Duration::from_millis(80 + 20 * spec.index as u64 % 60));
        send_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let quit_after = random_ms(2_000, 12_000);
        let quit_at = tokio::time::Instant::now() + quit_after;
        let mut synced = false;
        'socket: loop {
            tokio::select! {
                frame = ws.next() => {
                    let text = match frame {
                        Some(Ok(Message::Text(text))) => text,
                        Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break 'socket,
                        Some(Ok(_)) => continue,
                    };
                    let Ok(msg) = serde_json::from_str::<ServerMsg>(&text) else {
                        log.violations.push(format!("unparsable frame {text}"));
                        continue;
                    };
                    match msg {
                        ServerMsg::Ping => {
                            let _ = ws.send(Message::text(r#"{"type":"pong"}"#)).await;
                        }
                        ServerMsg::Joined { room, recovered, .. } => {
                            if !recovered {
                                log.violations.push(format!("{room}: resume not recovered"));
                            }
                            joined.insert(room.clone());
                            // Re-send this room's unacked messages, same client_id.
                            for (id, content) in outbox.iter().filter(|(_, c)| c.starts_with(&format!("{room}/"))) {
                                let send = serde_json::json!({"type":"send","room":room,"content":content,"client_id":id});
                                let _ = ws.send(Message::text(send.to_string())).await;
                            }
                            if joined.len() == ROOMS.len()
                                && let Some(at) = lost_at.take()
                            {
                                log.reconnects += 1;
                                log.worst_recovery = log.worst_recovery.max(at.elapsed());
                            }
                        }
                        ServerMsg::Message(m) => {
                            let last = last_seen.get(&m.room).copied();
                            if let Some(last) = last
                                && m.seq != last + 1
                            {
                                log.violations.push(format!(
                                    "{}: seq {} after {last}",
                                    m.room, m.seq
                                ));
                            }
                            last_seen.insert(m.room.clone(), m.seq);
                            log.views.entry(m.room).or_default().push((m.seq, m.content));
                        }
                        ServerMsg::Ack { room, client_id, seq } => {
                            outbox.remove(&client_id);
                            board.last_ack_ms.store(start.elapsed().as_millis() as u64, Ordering::Relaxed);
                            if let Some(earlier) = log.acked.insert(client_id.clone(), (room.clone(), seq))
                                && earlier != (room.clone(), seq)
                            {
                                log.violations.push(format!("{client_id} acked as {earlier:?} and as {seq}"));
                            }
                        }
                        ServerMsg::Error { code: common::ErrorCode::Internal, reference, .. } => {
                            // Stays in the outbox; offered again on the next
                            // tick, or on the next join.
                            log.internal += 1;
                            if let Some(id) = reference
                                && outbox.contains_key(&id)
                            {
                                retry.insert(id);
                            }
                        }
                        ServerMsg::Error { code, message, reference } => {
                            log.violations.push(format!("error {code:?} {message} {reference:?}"));
                        }
                        _ => {}
                    }
                }
                _ = send_tick.tick() => {
                    let calm = board.calm.load(Ordering::Acquire);
                    if !calm && joined.len() == ROOMS.len() && outbox.len() < 8 {
                        next += 1;
                        let room = ROOMS[(next as usize + spec.index) % ROOMS.len()];
                        let id = format!("{}-{next}", log.name);
                        let content = format!("{room}/{id}");
                        outbox.insert(id.clone(), content.clone());
                        let send = serde_json::json!({"type":"send","room":room,"content":content,"client_id":id});
                        if ws.send(Message::text(send.to_string())).await.is_err() {
                            break 'socket;
                        }
                    }
                    if calm && !synced && outbox.is_empty() {
                        let targets = board.targets.lock().unwrap().clone();
                        if let Some(targets) = targets
                            && targets.iter().all(|(room, seq)| last_seen.get(room).copied().unwrap_or(0) >= *seq)
                        {
                            synced = true;
                            board.synced.fetch_add(1, Ordering::AcqRel);
                        }
                    }
                    if joined.len() == ROOMS.len() && !retry.is_empty() {
                        // Something got `internal`: offer it again, once.
                        for id in std::mem::take(&mut retry) {
                            let Some(content) = outbox.get(&id) else { continue };
                            let room = content.split('/').next().unwrap();
                            let send = serde_json::json!({"type":"send","room":room,"content":content,"client_id":id});
                            let _ = ws.send(Message::text(send.to_string())).await;
                        }
                    }
                    if board.release.load(Ordering::Acquire) {
                        let _ = ws.close(None).await;
                        return log;
                    }
                }
                _ = tokio::time::sleep_until(quit_at), if !board.calm.load(Ordering::Acquire) => {
                    // A client that goes away on its own, at random.
                    let _ = ws.close(None).await;
                    break 'socket;
                }
            }
        }
        if synced {
            board.synced.fetch_sub(1, Ordering::AcqRel);
        }
        lost_at.get_or_insert_with(Instant::now);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn chaos_loses_nothing_and_every_client_sees_one_gap_free_order() {
    let secs: u64 = std::env::var("HEARTH_CHAOS_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let start = Instant::now();
    let pg = OwnPostgres::start();
    let redis_port = unused_port();
    let mut redis = OwnRedis::start(redis_port);
    let mut cluster = Cluster {
        dir: temp_dir(),
        database_url: pg.url(),
        redis_url: format!("redis://127.0.0.1:{redis_port}"),
        nodes: Vec::new(),
    };
    for index in 0..NODES {
        let (child, port) = cluster.spawn(index, "127.0.0.1:0").await;
        cluster.nodes.push(Node {
            port,
            child: Some(child),
            baseline_kib: 0,
        });
    }
    let proxy = FaultProxy::start(cluster.nodes[0].port).await;
    let board = Arc::new(Board::default());
    let node_ports: Vec<u16> = cluster.nodes.iter().map(|n| n.port).collect();
    let mut clients = Vec::new();
    for index in 0..NODES * CLIENTS_PER_NODE + PROXIED_CLIENTS {
        let session = sign_in_at(
            format!("127.0.0.1:{}", node_ports[index % NODES]),
            &format!("c{index}"),
        )
        .await;
        let ports = if index < PROXIED_CLIENTS {
            vec![proxy.port]
        } else {
            node_ports.clone()
        };
        let spec = ClientSpec {
            index,
            session,
            ports,
        };
        clients.push(tokio::spawn(run_client(spec, board.clone(), start)));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    for node in &mut cluster.nodes {
        node.baseline_kib = rss_kib(node.child.as_ref().unwrap());
    }

    // Faults, one every 2–5 s, until the time is up.
    let mut faults: BTreeMap<&str, u32> = BTreeMap::new();
    let mut worst_store_recovery = Duration::ZERO;
    let deadline = Instant::now() + Duration::from_secs(secs);
    // The kinds take turns (from a random first), so even a short run has
    // each of them.
    let mut kind = rand::thread_rng().gen_range(0..3);
    while Instant::now() < deadline {
        tokio::time::sleep(random_ms(2_000, 5_000)).await;
        kind = (kind + 1) % 3;
        match kind {
            0 => {
                let index = rand::thread_rng().gen_range(0..NODES);
                cluster.kill_and_restart(index).await;
                *faults.entry("node kill -9 + restart").or_default() += 1;
            }
            1 => {
                redis.kill();
                tokio::time::sleep(random_ms(200, 1_500)).await;
                redis = OwnRedis::start(redis_port);
                *faults.entry("redis restart").or_default() += 1;
            }
            _ => {
                pg.pause();
                tokio::time::sleep(random_ms(1_000, 4_000)).await;
                pg.resume();
                let resumed = start.elapsed().as_millis() as u64;
                *faults.entry("postgres SIGSTOP").or_default() += 1;
                // How long until an ack arrives again.
                for _ in 0..300 {
                    if board.last_ack_ms.load(Ordering::Relaxed) > resumed {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                let took = Duration::from_millis(
                    board
                        .last_ack_ms
                        .load(Ordering::Relaxed)
                        .saturating_sub(resumed),
                );
                worst_store_recovery = worst_store_recovery.max(took);
            }
        }
    }

    // Calm: no more faults, sends or random disconnects. Every client
    // resumes and reads up to each room's final seq.
    board.calm.store(true, Ordering::Release);
    proxy.calm.store(true, Ordering::Release);
    let db = sqlx::PgPool::connect(&pg.url()).await.unwrap();
    let clients_total = clients.len() as u64;
    let mut quiet_since = Instant::now();
    let sync_deadline = Instant::now() + Duration::from_secs(60);
    loop {
        // Targets are final once no ack has arrived for a while.
        let rows: Vec<(String, i64)> = sqlx::query_as("SELECT name, last_seq FROM rooms")
            .fetch_all(&db)
            .await
            .unwrap();
        let targets: HashMap<String, u64> = rows.into_iter().map(|(n, s)| (n, s as u64)).collect();
        let changed = board.targets.lock().unwrap().as_ref() != Some(&targets);
        if changed {
            quiet_since = Instant::now();
            *board.targets.lock().unwrap() = Some(targets);
        }
        if board.synced.load(Ordering::Acquire) == clients_total
            && quiet_since.elapsed() > Duration::from_secs(1)
        {
            break;
        }
        assert!(
            Instant::now() < sync_deadline,
            "clients did not catch up: {} of {clients_total}",
            board.synced.load(Ordering::Acquire)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Nobody listed who is not connected: wait out the presence TTL of any
    // killed node, then ask every node who is in every room.
    tokio::time::sleep(Duration::from_millis(PRESENCE_TTL_MS * 2)).await;
    let everyone: BTreeSet<String> = (0..clients_total).map(|i| format!("c{i}")).collect();
    for node in &cluster.nodes {
        let observer = sign_in_at(format!("127.0.0.1:{}", node.port), "observer").await;
        let url = crate::support::ws_request(format!("127.0.0.1:{}", node.port), &observer.token);
        let (mut ws, _) = connect_async(url).await.unwrap();
        for room in ROOMS {
            ws.send(Message::text(
                serde_json::json!({"type":"join","room":room,"since":u64::MAX}).to_string(),
            ))
            .await
            .unwrap();
            let members = loop {
                let Some(Ok(Message::Text(text))) = ws.next().await else {
                    panic!("observer lost")
                };
                if let Ok(ServerMsg::Joined { members, .. }) = serde_json::from_str(&text) {
                    break members;
                }
            };
            let names: BTreeSet<String> = members
                .into_iter()
                .map(|u| u.name)
                .filter(|n| n != "observer")
                .collect();
            assert_eq!(names, everyone, "members of {room} on node {}", node.port);
        }
    }
    board.release.store(true, Ordering::Release);
    let mut logs = Vec::new();
    for client in clients {
        logs.push(client.await.unwrap());
    }

    // Every acked message is stored exactly once, as acked.
    let stored: Vec<(String, i64, String, String)> =
        sqlx::query_as("SELECT room, seq, client_id, content FROM messages")
            .fetch_all(&db)
            .await
            .unwrap();
    let mut by_seq: HashMap<(String, u64), String> = HashMap::new();
    let mut copies: HashMap<String, Vec<(String, u64)>> = HashMap::new();
    for (room, seq, client_id, content) in stored {
        by_seq.insert((room.clone(), seq as u64), content);
        copies
            .entry(client_id)
            .or_default()
            .push((room, seq as u64));
    }
    let mut acked_total = 0;
    for log in &logs {
        assert!(
            log.violations.is_empty(),
            "{}: {:?}",
            log.name,
            log.violations
        );
        for (client_id, (room, seq)) in &log.acked {
            acked_total += 1;
            assert_eq!(
                copies.get(client_id),
                Some(&vec![(room.clone(), *seq)]),
                "{client_id} is not stored exactly once as acked"
            );
        }
        // Each view is the stored sequence, gap-free from where it started
        // to the room's end.
        for (room, view) in &log.views {
            let last = board.targets.lock().unwrap().as_ref().unwrap()[room];
            let first = view[0].0;
            let seqs: Vec<u64> = view.iter().map(|(s, _)| *s).collect();
            assert_eq!(
                seqs,
                (first..=last).collect::<Vec<_>>(),
                "{}: view of {room}",
                log.name
            );
            for (seq, content) in view {
                assert_eq!(
                    by_seq.get(&(room.clone(), *seq)),
                    Some(content),
                    "{}: {room} seq {seq}",
                    log.name
                );
            }
        }
    }
    assert!(acked_total > 0, "nothing was acked at all");

    // Memory is back within a bound of where each node started.
    let mut rss = Vec::new();
    for node in &cluster.nodes {
        let now = rss_kib(node.child.as_ref().unwrap());
        rss.push((node.baseline_kib, now));
        assert!(
            now <= (node.baseline_kib * 2).max(node.baseline_kib + 48 * 1024),
            "node {} RSS {now} KiB after, {} KiB at start",
            node.port,
            node.baseline_kib
        );
    }

    let reconnects: u64 = logs.iter().map(|l| l.reconnects).sum();
    let internal: u64 = logs.iter().map(|l| l.internal).sum();
    let worst_reconnect = logs
        .iter()
        .map(|l| l.worst_recovery)
        .max()
        .unwrap_or_default();
    println!(
        "chaos run: {secs} s of faults, {} nodes, {clients_total} clients ({PROXIED_CLIENTS} through the fault proxy), {} rooms",
        NODES,
        ROOMS.len()
    );
    println!(
        "  messages acked and stored exactly once: {acked_total}; sends answered internal (then retried): {internal}"
    );
    for (kind, count) in &faults {
        println!("  fault: {kind}: {count}");
    }
    println!(
        "  fault proxy: {} connections, {} dropped, {} cut mid-frame",
        proxy.stats.connections.load(Ordering::Relaxed),
        proxy.stats.dropped.load(Ordering::Relaxed),
        proxy.stats.cut.load(Ordering::Relaxed)
    );
    println!(
        "  recoveries (client reconnected and re-joined every room): {reconnects}; worst {worst_reconnect:?}"
    );
    println!("  worst time from PostgreSQL resuming to the next ack: {worst_store_recovery:?}");
    for (i, (before, after)) in rss.iter().enumerate() {
        println!("  node {i} RSS: {before} KiB at start, {after} KiB at the end");
    }
    println!(
        "  every client's view of every room: gap-free and identical to the store; members: exactly the connected clients"
    );
    let _ = std::fs::remove_dir_all(&cluster.dir);
}
