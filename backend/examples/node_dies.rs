//! A node dies under its people (issue #29, workload 3): three Hearth
//! nodes behind a PostgreSQL of the run's own and the machine's Redis,
//! reached through two TCP load balancers (this program again, as child
//! processes: `node_dies proxy PORT NODE…`, each connection to the next live
//! node in turn, as HAProxy's `balance roundrobin` does). Everyone is a
//! `hearth_client::Client`: the real reconnect policy, outbox and resume.
//!
//! The workload is workload 1's: rooms of `members`, a message per person
//! every `period` seconds with typing before it, read markers. After
//! warm-up and `before` seconds of steady load, one node gets `kill -9`.
//! At that moment 1 % of the people, chosen at random, close their client
//! and never come back (a third of them were on the dead node, whose
//! entries only its death can end: the ghosts to look for).
//!
//! Prints:
//! - the dead node's people (those whose client lost its connection): how
//!   long until each was welcomed again and had every room resumed;
//! - delivery p50/p99 of the other people's messages before the kill and
//!   in the 60 s after it;
//! - acknowledged messages lost or stored twice, from every room's
//!   history at the end, and messages any client was handed twice;
//! - leavers still listed in their room 15 s after the kill (ghosts);
//! - PostgreSQL connections at most (and the nodes' pools) and CPU.
//!
//! ```text
//! cargo build --release -p backend --bin hearth --example node_dies
//! target/release/examples/node_dies 1500 10 30 30   # rooms, members, period, before
//! ```
//!
//! Needs root (PostgreSQL runs as its own user) and Redis at
//! HEARTH_TEST_REDIS_URL (default 127.0.0.1:6379).

#[path = "support/nodes.rs"]
mod nodes;
#[path = "support/own_postgres.rs"]
mod own_postgres;
#[path = "support/process.rs"]
mod process;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use hearth_client::{Client, Event, Options, Phase, Server, ServerMsg};
use rand::Rng;
use rand::seq::SliceRandom;
use tokio::sync::Mutex;
use tokio::time::Instant;

use nodes::{Nodes, raised};
use own_postgres::OwnPostgres;
use process::free_port;

const NODES: usize = 3;
const PROXIES: usize = 2;
const WARM_UP: Duration = Duration::from_secs(10);
const TYPING_LEAD: Duration = Duration::from_millis(1_500);
const READ_EVERY: Duration = Duration::from_secs(5);
/// Connections (and sign-ins) set up at once.
const SETUP_AT_ONCE: usize = 64;
/// The goal: everyone back within this.
const BACK_WITHIN: Duration = Duration::from_secs(60);
/// Delivery after the kill is also reported per this much time.
const WINDOW: Duration = Duration::from_secs(5);
/// The goal: no leaver listed this long after the kill.
const GHOSTS_GONE: Duration = Duration::from_secs(15);
/// Each node's PostgreSQL pools (the store's and the uploads'), for the
/// report.
const POOL_PER_NODE: usize = 8 + 4;

#[derive(Clone, Copy)]
struct Load {
    rooms: usize,
    members: usize,
    period: Duration,
    before: Duration,
}

/// What every person's task adds to.
#[derive(Default)]
struct Tally {
    stopping: AtomicBool,
    /// Microseconds since `epoch` when the node was killed (0: not yet).
    killed_at: AtomicU64,
    /// Messages handed to a client a second time.
    duplicates: AtomicU64,
    sent: AtomicU64,
    not_acked: AtomicU64,
    /// Why posts were not acknowledged, and how many: the error, and
    /// whether the sender was one who left.
    refusals: Mutex<HashMap<String, u64>>,
    /// (when sent, how long until acknowledged, sender) of every
    /// acknowledged post, in µs.
    ack_times: Mutex<Vec<(u64, u32, u32)>>,
    /// (room, seq, content) of every acknowledged post.
    acked: Mutex<Vec<(String, u64, String)>>,
}

/// What one person saw, collected at the end.
#[derive(Default)]
struct Seen {
    /// (when, latency, sender) of each delivery: µs since the epoch, µs,
    /// the sender's number.
    deliveries: Vec<(u64, u32, u32)>,
    /// When the connection was lost after the kill, and when every room
    /// was joined again after that.
    lost_at: Option<u64>,
    back_at: Option<u64>,
}

fn micros(epoch: std::time::Instant) -> u64 {
    epoch.elapsed().as_micros() as u64
}

/// A message's content starts with when it was sent and by whom:
/// `t<µs>-p<sender>-…`.
fn sent_at(content: &str) -> Option<(u64, u32)> {
    let mut parts = content.strip_prefix('t')?.split('-');
    let at = parts.next()?.parse().ok()?;
    let sender = parts.next()?.strip_prefix('p')?.parse().ok()?;
    Some((at, sender))
}

/// Someone: their client, their room, their number, and whether they
/// leave at the kill.
struct Person {
    client: Client,
    room: String,
    who: usize,
    leaver: bool,
}

/// One person's life: send on schedule, read everything, mark what was
/// read, note when the connection went and came back.
async fn live(
    person: Person,
    load: Load,
    first: Instant,
    epoch: std::time::Instant,
    tally: Arc<Tally>,
) -> Seen {
    let Person {
        client,
        room,
        who,
        leaver,
    } = person;
    let mut events = client.events();
    let mut seen = Seen::default();
    let mut seqs: HashSet<u64> = HashSet::new();
    let mut next_message = first;
    let mut typed = false;
    let mut last_read = Instant::now() - READ_EVERY;
    let mut n = 0u64;
    while !tally.stopping.load(Ordering::Relaxed) {
        let wake = if typed {
            next_message
        } else {
            next_message - TYPING_LEAD
        };
        tokio::select! {
            event = events.next() => match event {
                Some(Event::Server(ServerMsg::Message(m))) => {
                    let now = micros(epoch);
                    if !seqs.insert(m.seq) {
                        tally.duplicates.fetch_add(1, Ordering::Relaxed);
                    }
                    if let Some((at, sender)) = sent_at(&m.content) {
                        seen.deliveries.push((now, now.saturating_sub(at) as u32, sender));
                    }
                    if last_read.elapsed() >= READ_EVERY {
                        let _ = client.read(&room, m.seq).await;
                        last_read = Instant::now();
                    }
                }
                Some(Event::Server(ServerMsg::Joined { .. })) => {
                    if seen.lost_at.is_some() && seen.back_at.is_none() {
                        seen.back_at = Some(micros(epoch));
                    }
                }
                Some(Event::Phase(phase)) => {
                    let killed = tally.killed_at.load(Ordering::Relaxed);
                    if phase != Phase::Open && killed > 0 && seen.lost_at.is_none() {
                        seen.lost_at = Some(micros(epoch));
                    }
                }
                Some(_) => {}
                // The client was closed (a leaver).
                None => break,
            },
            () = tokio::time::sleep_until(wake) => {
                if typed {
                    n += 1;
                    let content = format!("t{}-p{who}-{n}-{}", micros(epoch), "x".repeat(40));
                    tally.sent.fetch_add(1, Ordering::Relaxed);
                    let (client, room, tally) = (client.clone(), room.clone(), tally.clone());
                    // The ack comes when the post is stored, however many
                    // reconnects that takes: wait for it aside.
                    tokio::spawn(async move {
                        let sent = micros(epoch);
                        match client.send(&room, &content).await {
                            Ok(seq) => {
                                let took = (micros(epoch) - sent) as u32;
                                tally.ack_times.lock().await.push((sent, took, who as u32));
                                tally.acked.lock().await.push((room, seq, content));
                            }
                            Err(err) => {
                                tally.not_acked.fetch_add(1, Ordering::Relaxed);
                                let whose = if leaver { "a leaver's" } else { "not a leaver's" };
                                let why = format!("{err:?} ({whose})");
                                *tally.refusals.lock().await.entry(why).or_default() += 1;
                            }
                        }
                    });
                    next_message += load.period;
                    typed = false;
                } else {
                    let _ = client.typing(&room).await;
                    typed = true;
                }
            }
        }
    }
    seen
}

/// The load balancer: each connection to the next node that accepts it.
async fn proxy(listen: u16, nodes: Vec<u16>) {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", listen))
        .await
        .unwrap();
    let mut turn = 0usize;
    loop {
        let Ok((mut downstream, _)) = listener.accept().await else {
            continue;
        };
        turn += 1;
        let first = turn;
        let nodes = nodes.clone();
        tokio::spawn(async move {
            for i in 0..nodes.len() {
                let port = nodes[(first + i) % nodes.len()];
                if let Ok(mut upstream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await
                {
                    let _ = downstream.set_nodelay(true);
                    let _ = upstream.set_nodelay(true);
                    let _ = tokio::io::copy_bidirectional(&mut downstream, &mut upstream).await;
                    return;
                }
            }
        });
    }
}

fn quantile_ms(sorted: &[u32], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * q) as usize] as f64 / 1000.0
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("proxy") {
        let ports: Vec<u16> = args[1..].iter().map(|p| p.parse().unwrap()).collect();
        return proxy(ports[0], ports[1..].to_vec()).await;
    }
    let arg = |i: usize, default: u64| {
        args.get(i).map_or(default, |a| {
            a.parse().expect("numbers: rooms, members, period, before")
        })
    };
    let load = Load {
        rooms: arg(0, 1500) as usize,
        members: arg(1, 10) as usize,
        period: Duration::from_secs(arg(2, 30)),
        before: Duration::from_secs(arg(3, 30)),
    };
    let people = load.rooms * load.members;
    println!(
        "{people} people in {} rooms of {} over {NODES} nodes behind {PROXIES} load balancers; \
         a message per person every {} s with typing before it, read markers; {} s warm-up, \
         {} s steady, then kill -9 of one node",
        load.rooms,
        load.members,
        load.period.as_secs(),
        WARM_UP.as_secs(),
        load.before.as_secs()
    );

    let pg = OwnPostgres::start();
    let mut nodes = Nodes::start_at(NODES, "dies", &pg.url()).await;
    let stats = sqlx::PgPool::connect(&pg.url()).await.unwrap();
    let node_ports: Vec<String> = nodes.servers.iter().map(|(p, _)| p.to_string()).collect();
    let exe = std::env::current_exe().unwrap();
    let mut proxies = Vec::new();
    let mut servers = Vec::new();
    for _ in 0..PROXIES {
        let port = free_port();
        let mut args = vec!["proxy".to_owned(), port.to_string()];
        args.extend(node_ports.iter().cloned());
        proxies.push(
            raised(&exe, &args)
                .kill_on_drop(true)
                .spawn()
                .expect("the load balancer starts"),
        );
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        servers.push(Server::new(&format!("http://127.0.0.1:{port}")).unwrap());
    }

    // Everyone signs in as a guest, connects and joins, through the
    // balancers.
    let set_up = std::time::Instant::now();
    let clients: Vec<(usize, Client, String)> = futures_util::stream::iter(0..people)
        .map(|i| {
            let server = servers[i % PROXIES].clone();
            async move {
                let session = server.guest(&format!("p{i}")).await.expect("signed in");
                // Each subscriber's buffer is allocated up front: 64 events
                // (the task reads them as they come) rather than 1 024.
                let options = Options {
                    event_buffer: 64,
                    ..Options::default()
                };
                let client = Client::connect_with(&session, options);
                let room = format!("room-{}", i / load.members);
                client.join(&room).await.expect("joined");
                (i, client, room)
            }
        })
        .buffer_unordered(SETUP_AT_ONCE)
        .collect()
        .await;
    eprintln!(
        "{people} connected in {:.1} s",
        set_up.elapsed().as_secs_f64()
    );

    let epoch = std::time::Instant::now();
    let tally = Arc::new(Tally::default());
    let start = Instant::now() + Duration::from_secs(1);
    let mut rng = rand::thread_rng();
    let mut order: Vec<usize> = (0..people).collect();
    order.shuffle(&mut rng);
    let leavers: HashSet<usize> = order[..people / 100].iter().copied().collect();
    let mut tasks = Vec::with_capacity(people);
    let mut leaving = Vec::new();
    for (i, client, room) in clients {
        if leavers.contains(&i) {
            leaving.push((i, client.clone(), room.clone()));
        }
        let first = start + load.period.mul_f64(rng.gen_range(0.0..1.0)) + TYPING_LEAD;
        tasks.push((
            i,
            tokio::spawn(live(
                Person {
                    client,
                    room,
                    who: i,
                    leaver: leavers.contains(&i),
                },
                load,
                first,
                epoch,
                tally.clone(),
            )),
        ));
    }

    // PostgreSQL's connections and CPU, sampled every half second.
    let sampling = Arc::new(AtomicBool::new(true));
    let pg_samples = {
        let (sampling, stats) = (sampling.clone(), stats.clone());
        let database = nodes.prefix.clone();
        tokio::spawn(async move {
            let mut most = 0i64;
            while sampling.load(Ordering::Relaxed) {
                let now: i64 =
                    sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE datname = $1")
                        .bind(&database)
                        .fetch_one(&stats)
                        .await
                        .unwrap_or(0);
                most = most.max(now);
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            most
        })
    };

    let survivors_cpu = |nodes: &Nodes| -> Duration {
        nodes.pids()[1..]
            .iter()
            .copied()
            .map(process::cpu_time)
            .sum()
    };
    tokio::time::sleep_until(start + WARM_UP).await;
    let (pg_cpu_0, survivors_cpu_0) = (pg.cpu_time(), survivors_cpu(&nodes));
    tokio::time::sleep_until(start + WARM_UP + load.before).await;
    let (pg_cpu_1, survivors_cpu_1) = (pg.cpu_time(), survivors_cpu(&nodes));
    let steady_secs = load.before.as_secs_f64();

    // The kill: the node first, then the leavers close (those on the dead
    // node could not say goodbye if they tried).
    let killed = micros(epoch).max(1);
    nodes.servers[0].1.start_kill().unwrap();
    tally.killed_at.store(killed, Ordering::Relaxed);
    for (_, client, _) in &leaving {
        client.close().await;
    }
    let kill_instant = Instant::now();
    eprintln!("killed one node; {} people left with it", leaving.len());

    // Ghosts: 15 s on, someone new joins each leaver's room and reads who
    // is listed there.
    tokio::time::sleep_until(kill_instant + GHOSTS_GONE).await;
    let mut ghosts = 0usize;
    let watcher_sessions = {
        let mut sessions = Vec::new();
        for (p, server) in servers.iter().enumerate() {
            sessions.push(server.guest(&format!("watcher{p}")).await.unwrap());
        }
        sessions
    };
    let by_room: HashMap<String, Vec<usize>> =
        leaving.iter().fold(HashMap::new(), |mut m, (i, _, room)| {
            m.entry(room.clone()).or_default().push(*i);
            m
        });
    for (n, (room, gone)) in by_room.iter().enumerate() {
        let watcher = Client::connect(&watcher_sessions[n % PROXIES]);
        if let Ok(joined) = watcher.join(room).await {
            for i in gone {
                if joined.members.iter().any(|u| u.name == format!("p{i}")) {
                    ghosts += 1;
                }
            }
        }
        watcher.close().await;
    }
    let ghosts_checked_at = kill_instant.elapsed().as_secs_f64();

    tokio::time::sleep_until(kill_instant + BACK_WITHIN).await;
    let storm_secs = kill_instant.elapsed().as_secs_f64();
    let pg_cpu_storm = pg.cpu_time() - pg_cpu_1;
    let survivors_cpu_storm = survivors_cpu(&nodes) - survivors_cpu_1;

    // Stop sending; give the outboxes time to be acknowledged.
    tally.stopping.store(true, Ordering::Relaxed);
    let mut seen = Vec::with_capacity(people);
    for (i, task) in tasks {
        // Each task ends at its next event or timer.
        if let Ok(Ok(s)) = tokio::time::timeout(Duration::from_secs(40), task).await
            && !leavers.contains(&i)
        {
            seen.push((i, s));
        }
    }
    for _ in 0..60 {
        let done = tally.acked.lock().await.len() as u64 + tally.not_acked.load(Ordering::Relaxed);
        if done >= tally.sent.load(Ordering::Relaxed) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    sampling.store(false, Ordering::Relaxed);
    let most_pg = pg_samples.await.unwrap();

    // Every acknowledged message is in its room's history, once.
    let reader = &watcher_sessions[0];
    let acked = std::mem::take(&mut *tally.acked.lock().await);
    let mut by_room: HashMap<&str, Vec<(u64, &str)>> = HashMap::new();
    for (room, seq, content) in &acked {
        by_room.entry(room).or_default().push((*seq, content));
    }
    let (mut lost, mut twice) = (0usize, 0usize);
    for (room, posts) in &by_room {
        let mut history = Vec::new();
        let mut before = None;
        loop {
            // Paid from the reader's history budget (2 MiB/s by default):
            // wait when told to.
            let page = loop {
                match reader.history(room, before, 100).await {
                    Ok(page) => break page,
                    Err(hearth_client::Error::Api { status: 429, .. }) => {
                        tokio::time::sleep(Duration::from_millis(500)).await
                    }
                    Err(err) => panic!("history: {err}"),
                }
            };
            let Some(oldest) = page.first().map(|m| m.seq) else {
                break;
            };
            let full = page.len() == 100;
            history.extend(page);
            if !full {
                break;
            }
            before = Some(oldest);
        }
        let mut count: HashMap<&str, usize> = HashMap::new();
        let mut at: HashMap<u64, &str> = HashMap::new();
        for m in &history {
            *count.entry(m.content.as_str()).or_default() += 1;
            at.insert(m.seq, m.content.as_str());
        }
        for (seq, content) in posts {
            if at.get(seq) != Some(content) {
                lost += 1;
            }
        }
        twice += count.values().filter(|&&c| c > 1).count();
    }

    // Who lost their connection, and how long until they were back.
    let killed_ms = |t: u64| (t.saturating_sub(killed)) as f64 / 1000.0;
    let mut back: Vec<f64> = Vec::new();
    let mut never = 0usize;
    let mut before_lat: Vec<u32> = Vec::new();
    let mut storm_lat: Vec<u32> = Vec::new();
    // The same, by WINDOW after the kill: when it was slow.
    let mut by_window: Vec<Vec<u32>> =
        vec![Vec::new(); BACK_WITHIN.as_secs().div_ceil(WINDOW.as_secs()) as usize];
    let steady_from = killed.saturating_sub(load.before.as_micros() as u64);
    let storm_to = killed + BACK_WITHIN.as_micros() as u64;
    // The dead node's people, and those who left: their messages waited
    // in their outboxes, which is not delivery.
    let cut_off: HashSet<u32> = seen
        .iter()
        .filter(|(_, s)| s.lost_at.is_some())
        .map(|(i, _)| *i as u32)
        .chain(leavers.iter().map(|&i| i as u32))
        .collect();
    for (_, s) in &seen {
        match (s.lost_at, s.back_at) {
            (Some(_), Some(b)) => back.push(killed_ms(b)),
            (Some(_), None) => never += 1,
            _ => {}
        }
        if s.lost_at.is_none() {
            for &(when, latency, sender) in &s.deliveries {
                if cut_off.contains(&sender) {
                    continue;
                }
                if when >= steady_from && when < killed {
                    before_lat.push(latency);
                } else if when >= killed && when < storm_to {
                    storm_lat.push(latency);
                    let window = ((when - killed) / WINDOW.as_micros() as u64) as usize;
                    by_window[window].push(latency);
                }
            }
        }
    }
    back.sort_by(f64::total_cmp);
    before_lat.sort_unstable();
    storm_lat.sort_unstable();
    let q = |v: &[f64], q: f64| {
        v.get(((v.len().max(1) - 1) as f64 * q) as usize)
            .copied()
            .unwrap_or(f64::NAN)
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;

    println!();
    println!("| figure | value | goal |");
    println!("| --- | --- | --- |");
    println!(
        "| people whose connection the kill cut (less leavers) | {} | – |",
        back.len() + never
    );
    println!(
        "| back and resumed: p50 / p99 / last | {:.1} s / {:.1} s / {:.1} s | all within 60 s |",
        q(&back, 0.5) / 1000.0,
        q(&back, 0.99) / 1000.0,
        back.last().copied().unwrap_or(f64::NAN) / 1000.0
    );
    println!("| not back within the run | {never} | 0 |");
    println!(
        "| the other nodes' people: delivery p50 / p99 before the kill (senders the kill did not cut off) | {:.1} ms / {:.1} ms | – |",
        quantile_ms(&before_lat, 0.5),
        quantile_ms(&before_lat, 0.99)
    );
    println!(
        "| the same in the 60 s after it | {:.1} ms / {:.1} ms | p99 < 200 ms |",
        quantile_ms(&storm_lat, 0.5),
        quantile_ms(&storm_lat, 0.99)
    );
    // Acknowledgements of the same senders' posts, by when they were sent:
    // whether the store was slow, or only delivery.
    let mut acks_by_window: Vec<Vec<u32>> = vec![Vec::new(); by_window.len()];
    for &(sent, took, sender) in tally.ack_times.lock().await.iter() {
        if sent >= killed && sent < storm_to && !cut_off.contains(&sender) {
            acks_by_window[((sent - killed) / WINDOW.as_micros() as u64) as usize].push(took);
        }
    }
    for (n, (window, acks)) in by_window.iter_mut().zip(&mut acks_by_window).enumerate() {
        window.sort_unstable();
        acks.sort_unstable();
        let from = n as u64 * WINDOW.as_secs();
        println!(
            "| … {from}-{} s after: delivery p50 / p99 / most; acknowledgement p50 / p99 | \
             {:.1} / {:.1} / {:.1} ms; {:.1} / {:.1} ms | – |",
            from + WINDOW.as_secs(),
            quantile_ms(window, 0.5),
            quantile_ms(window, 0.99),
            quantile_ms(window, 1.0),
            quantile_ms(acks, 0.5),
            quantile_ms(acks, 0.99),
        );
    }
    println!(
        "| messages sent / acknowledged / not acknowledged | {} / {} / {} | – |",
        tally.sent.load(Ordering::Relaxed),
        acked.len(),
        tally.not_acked.load(Ordering::Relaxed)
    );
    for (why, count) in tally.refusals.lock().await.iter() {
        println!("| not acknowledged: {why} | {count} | – |");
    }
    println!("| acknowledged but not in the history | {lost} | 0 |");
    println!("| stored twice | {twice} | 0 |");
    println!(
        "| handed to a client twice | {} | 0 |",
        tally.duplicates.load(Ordering::Relaxed)
    );
    println!(
        "| leavers listed in their room {ghosts_checked_at:.0} s after the kill | {ghosts} of {} | 0 after 15 s |",
        leaving.len()
    );
    println!(
        "| PostgreSQL connections at most | {most_pg} | within the pools: {} |",
        NODES * POOL_PER_NODE
    );
    let share = |cpu: Duration, secs: f64| 100.0 * cpu.as_secs_f64() / secs.max(1.0) / cores;
    println!(
        "| PostgreSQL CPU, steady / the 60 s after | {:.0} % / {:.0} % of the machine's {cores} cores | – |",
        share(pg_cpu_1 - pg_cpu_0, steady_secs),
        share(pg_cpu_storm, storm_secs)
    );
    println!(
        "| the two other nodes' CPU, steady / the 60 s after | {:.0} % / {:.0} % | – |",
        share(survivors_cpu_1 - survivors_cpu_0, steady_secs),
        share(survivors_cpu_storm, storm_secs)
    );
    drop(proxies);
    nodes.stop().await;
    drop(pg);
}
