//! Several real `hearth` processes sharing Redis and PostgreSQL must look
//! like one server: same members, same messages, same order. Nodes are child
//! processes, so "kill a node" is a real SIGKILL.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::time::Duration;

use common::{ServerMsg, SessionResponse};
use tokio::process::{Child, Command};

use crate::faults_support::OwnRedis;
use crate::support::{Client, connect_at, sign_in_at, start_hearth, temp_dir, unused_port};

use crate::support::Database;

/// The machine's Redis (`HEARTH_TEST_REDIS_URL`); each cluster uses its
/// own key prefix on it.
fn shared_redis() -> String {
    std::env::var("HEARTH_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

struct Node {
    port: u16,
    child: Child,
}

struct Cluster {
    dir: PathBuf,
    database_url: String,
    redis_url: String,
    prefix: String,
}

impl Cluster {
    fn new(database_url: String, redis_url: String) -> Cluster {
        Cluster {
            dir: temp_dir(),
            database_url,
            redis_url,
            prefix: format!("hearth-test-{}", uuid::Uuid::new_v4().simple()),
        }
    }

    async fn start_node(&self, name: &str) -> Node {
        self.start_node_with(name, &[]).await
    }

    async fn start_node_with(&self, name: &str, extra: &[&str]) -> Node {
        let mut args: Vec<std::ffi::OsString> = extra.iter().map(Into::into).collect();
        for arg in [
            "--database-url",
            &self.database_url,
            "--redis-url",
            &self.redis_url,
            "--redis-prefix",
            &self.prefix,
            "--allow-guests",
            "--auth-per-ip-per-minute",
            "1000000",
            "--send-rate",
            "100000",
            "--send-burst",
            "100000",
        ] {
            args.push(arg.into());
        }
        if !extra.contains(&"--presence-refresh-ms") {
            for arg in ["--presence-refresh-ms", "250", "--presence-ttl-ms", "1500"] {
                args.push(arg.into());
            }
        }
        args.extend(["--data-dir".into(), self.dir.join(name).into_os_string()]);
        args.extend(["--static-dir".into(), self.dir.clone().into_os_string()]);
        // Each node's output is kept beside its data, for a failing test.
        let log = self.dir.join(format!("{name}.log"));
        let (child, addr) =
            start_hearth(args, "127.0.0.1:0", name, &log, "info,backend=debug").await;
        let port = addr.rsplit(':').next().unwrap().parse().unwrap();
        Node { port, child }
    }
}

impl Node {
    async fn sign_in(&self, name: &str) -> SessionResponse {
        sign_in_at(format!("127.0.0.1:{}", self.port), name).await
    }

    async fn connect(&self, session: &SessionResponse) -> Client {
        connect_at(format!("127.0.0.1:{}", self.port), session).await
    }

    async fn health(&self) -> serde_json::Value {
        reqwest::get(format!("http://127.0.0.1:{}/healthz", self.port))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

/// A client together with what it has seen: the room's members as it knows
/// them, and the messages in arrival order.
struct Seen {
    client: Client,
    /// Who was seen typing, by name.
    typists: Vec<String>,
    members: BTreeSet<String>,
    seqs: Vec<u64>,
    client_ids: Vec<String>,
    /// Read positions heard from the user's other tabs.
    reads: Vec<u64>,
}

impl Seen {
    fn new(client: Client) -> Seen {
        Seen {
            client,
            typists: Vec::new(),
            members: BTreeSet::new(),
            seqs: Vec::new(),
            client_ids: Vec::new(),
            reads: Vec::new(),
        }
    }

    fn fold(&mut self, msg: ServerMsg) {
        match msg {
            ServerMsg::Joined { members, .. } => {
                self.members = members.into_iter().map(|u| u.name).collect()
            }
            ServerMsg::UserJoined { user, .. } => {
                self.members.insert(user.name);
            }
            ServerMsg::UserLeft { user, .. } => {
                self.members.remove(&user.name);
            }
            ServerMsg::Message(m) => {
                self.seqs.push(m.seq);
                self.client_ids.push(m.client_id);
            }
            ServerMsg::Typing { user, .. } => self.typists.push(user.name),
            ServerMsg::Read { seq, .. } => self.reads.push(seq),
            _ => {}
        }
    }

    async fn join(&mut self, room: &str, since: Option<u64>) {
        self.client
            .send_json(serde_json::json!({"type":"join","room":room,"since":since}))
            .await;
        loop {
            let msg = self.client.recv().await;
            let done = matches!(msg, ServerMsg::Joined { .. });
            self.fold(msg);
            if done {
                return;
            }
        }
    }

    /// Reads until `done` holds; fails after 20 s.
    async fn until(&mut self, what: &str, done: impl Fn(&Seen) -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while !done(self) {
            match tokio::time::timeout_at(deadline, self.client.recv_where(|_| true)).await {
                Ok(ServerMsg::Ping) => {
                    self.client
                        .send_json(serde_json::json!({"type":"pong"}))
                        .await
                }
                Ok(msg) => self.fold(msg),
                Err(_) => panic!(
                    "{}: never saw {what}; members {:?}, {} messages",
                    self.client.user.name,
                    self.members,
                    self.seqs.len()
                ),
            }
        }
    }
}

/// Waits until `node` has written `name`'s entry in `room` to the presence
/// registry. The node publishes the presence event right after, so whatever
/// it publishes from then on reaches the other nodes after that event: a
/// frame from it that a client on another node has seen means that node
/// knows `name` is on `node`.
async fn until_listed(redis_url: &str, prefix: &str, room: &str, node: &str, name: &str) {
    let mut redis = redis::Client::open(redis_url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let key = format!("{prefix}:members:{room}");
    let (node, name) = (format!("{node}\u{1f}"), format!("\u{1f}{name}"));
    for _ in 0..400 {
        let entries: Vec<String> = redis::cmd("SMEMBERS")
            .arg(&key)
            .query_async(&mut redis)
            .await
            .unwrap();
        if entries
            .iter()
            .any(|e| e.starts_with(&node) && e.contains(&name))
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{node} never listed {name} in {room}");
}

fn names(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_behave_like_one_server() {
    let db = Database::create().await;
    let cluster = Cluster::new(db.url(), shared_redis());
    let n1 = cluster.start_node("n1").await;
    let n2 = cluster.start_node("n2").await;
    let mut n3 = cluster.start_node("n3").await;

    let alice_session = n1.sign_in("alice").await;
    let bob_session = n2.sign_in("bob").await;
    let carol_session = n3.sign_in("carol").await;
    let mut alice = Seen::new(n1.connect(&alice_session).await);
    let mut bob = Seen::new(n2.connect(&bob_session).await);
    let mut carol = Seen::new(n3.connect(&carol_session).await);
    // Alice's second tab, on another node: still one member.
    let mut alice_tab2 = Seen::new(n2.connect(&alice_session).await);

    alice.join("lobby", None).await;
    bob.join("lobby", None).await;
    carol.join("lobby", None).await;
    alice_tab2.join("lobby", None).await;
    let everyone = names(&["alice", "bob", "carol"]);
    for seen in [&mut alice, &mut bob, &mut carol, &mut alice_tab2] {
        seen.until("all three members", |s| s.members == everyone)
            .await;
    }
    // Alice's second tab is listed on node 2: bob's typing, from node 2,
    // then reaches node 1 after her presence there (the read below is
    // sent to her other tabs only where a room lists her).
    until_listed(&shared_redis(), &cluster.prefix, "lobby", "n2", "alice").await;
    // Typing crosses nodes too (and is not echoed to the typist's other tab).
    bob.client
        .send_json(serde_json::json!({"type":"typing","room":"lobby"}))
        .await;
    alice
        .until("bob typing", |s| s.typists.contains(&"bob".to_owned()))
        .await;
    carol
        .until("bob typing", |s| s.typists.contains(&"bob".to_owned()))
        .await;

    // A read position reaches the reader's tab on another node at once.
    alice
        .client
        .send_json(serde_json::json!({"type":"read","room":"lobby","seq":0}))
        .await;
    alice_tab2
        .until("alice's read position", |s| s.reads == [0])
        .await;
    assert!(bob.reads.is_empty(), "nobody else's");

    // Everyone on every node sees the same member count in the room list.
    for node in [&n1, &n2, &n3] {
        let rooms: Vec<common::RoomSummary> = reqwest::Client::new()
            .get(format!("http://127.0.0.1:{}/api/rooms", node.port))
            .bearer_auth(&bob_session.token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            rooms,
            [common::RoomSummary {
                name: "lobby".into(),
                members: 3,
                visibility: common::Visibility::Public,
                // Joining made him a member, notified of mentions there.
                role: Some(common::Role::Member),
                notify: Some(common::Notify::Mentions),
                ..Default::default()
            }]
        );
    }

    // 300 messages, from three senders on three nodes at once.
    let senders = [
        ("a", &alice_session, n1.port),
        ("b", &bob_session, n2.port),
        ("c", &carol_session, n3.port),
    ];
    let tasks: Vec<_> = senders
        .into_iter()
        .map(|(tag, session, port)| {
            let session = session.clone();
            tokio::spawn(async move {
                let node = Node {
                    port,
                    child: Command::new("true").spawn().unwrap(),
                };
                let mut sender = node.connect(&session).await;
                sender
                    .send_json(
                        serde_json::json!({"type":"join","room":"lobby","since":u64::MAX / 2}),
                    )
                    .await;
                sender
                    .recv_where(|m| matches!(m, ServerMsg::Joined { .. }))
                    .await;
                for i in 0..100 {
                    sender
                        .say("lobby", &format!("{tag}{i}"), &format!("{tag}-{i}"))
                        .await;
                }
                let mut acks = 0;
                while acks < 100 {
                    if let ServerMsg::Ack { .. } = sender.recv().await {
                        acks += 1;
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let all: Vec<u64> = (1..=300).collect();
    for seen in [&mut alice, &mut bob, &mut carol, &mut alice_tab2] {
        seen.until("all 300 messages", |s| s.seqs.len() >= 300)
            .await;
        assert_eq!(
            seen.seqs, all,
            "{}: in seq order, no gaps, no duplicates",
            seen.client.user.name
        );
    }
    assert_eq!(
        alice.client_ids, bob.client_ids,
        "the same order everywhere"
    );
    assert_eq!(alice.client_ids, carol.client_ids);
    let distinct: BTreeSet<&String> = alice.client_ids.iter().collect();
    assert_eq!(distinct.len(), 300);

    // Node 3 dies. Carol is gone for everyone within the presence TTL...
    n3.child.start_kill().unwrap();
    let _ = n3.child.wait().await;
    let without_carol = names(&["alice", "bob"]);
    alice
        .until("carol leave", |s| s.members == without_carol)
        .await;
    bob.until("carol leave", |s| s.members == without_carol)
        .await;

    // ...and comes back through another node, resuming with no gap.
    bob.client
        .say("lobby", "while carol was away", "b-away")
        .await;
    bob.until("its own message", |s| s.seqs.len() == 301).await;
    let mut carol_again = Seen::new(n1.connect(&carol_session).await);
    carol_again.join("lobby", Some(300)).await;
    // 301 comes in the replay, or live right after `joined` if node 1 has
    // not received it from Redis yet; either way exactly once.
    carol_again
        .until("the missed message", |s| !s.seqs.is_empty())
        .await;
    assert_eq!(carol_again.seqs, [301], "exactly the missed message");
    alice.until("carol back", |s| s.members == everyone).await;
    alice.client.say("lobby", "welcome back", "a-wb").await;
    carol_again
        .until("the next live message", |s| s.seqs.len() == 2)
        .await;
    assert_eq!(carol_again.seqs, [301, 302]);

    drop(n1);
    drop(n2);
    db.drop_now().await;
}

/// A message posted with an API key on a node where nobody is in the room
/// reaches its members on another node, in seq order after theirs, and a
/// retry on a third node is the same message, not a second one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_posted_with_an_api_key_reaches_every_node() {
    let db = Database::create().await;
    let cluster = Cluster::new(db.url(), shared_redis());
    let n1 = cluster.start_node("n1").await;
    let n2 = cluster.start_node("n2").await;
    let alice_session = n1.sign_in("alice").await;
    let mut alice = n1.connect(&alice_session).await;
    alice.join("alerts").await;
    alice.say("alerts", "watching", "a-1").await;
    alice
        .recv_where(|m| matches!(m, ServerMsg::Ack { seq: 1, .. }))
        .await;

    let made = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(["--database-url", &cluster.database_url])
        .args(["admin", "api-key", "create", "Pager", "--rooms", "alerts"])
        .output()
        .await
        .unwrap();
    assert!(made.status.success(), "{made:?}");
    let made: serde_json::Value = serde_json::from_slice(&made.stdout).unwrap();
    let key = made["key"].as_str().unwrap().to_owned();
    let post = |port: u16| {
        let key = key.clone();
        async move {
            reqwest::Client::new()
                .post(format!("http://127.0.0.1:{port}/api/rooms/alerts/messages"))
                .bearer_auth(key)
                .json(&serde_json::json!({"content": "disk 91% full", "client_id": "page-7"}))
                .send()
                .await
                .unwrap()
        }
    };
    let first = post(n2.port).await;
    assert_eq!(first.status(), 201);
    let first: common::Published = first.json().await.unwrap();
    assert_eq!(first.seq, 2);
    let heard = alice
        .recv_where(|m| matches!(m, ServerMsg::Message(_)))
        .await;
    let ServerMsg::Message(message) = heard else {
        unreachable!()
    };
    assert_eq!(
        (
            message.seq,
            message.user.id.as_str(),
            message.content.as_str()
        ),
        (2, "bot:Pager", "disk 91% full")
    );
    // The retry goes to the other node: the original comes back.
    let again = post(n1.port).await;
    assert_eq!(again.status(), 200);
    let again: common::Published = again.json().await.unwrap();
    assert_eq!(again, first);
    alice.expect_silence(Duration::from_millis(500)).await;

    drop(n1);
    drop(n2);
    db.drop_now().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_sent_during_a_redis_outage_arrive_after_it() {
    let db = Database::create().await;
    let mut redis = OwnRedis::start(unused_port());
    let cluster = Cluster::new(db.url(), format!("redis://127.0.0.1:{}", redis.port));
    let n1 = cluster.start_node("n1").await;
    let n2 = cluster.start_node("n2").await;

    let alice_session = n1.sign_in("alice").await;
    let bob_session = n2.sign_in("bob").await;
    let mut alice = Seen::new(n1.connect(&alice_session).await);
    let mut bob = Seen::new(n2.connect(&bob_session).await);
    alice.join("ops", None).await;
    bob.join("ops", None).await;
    bob.until("alice", |s| s.members.contains("alice")).await;
    assert_eq!(n1.health().await["status"], "ok");

    let mut acked: HashMap<u64, String> = HashMap::new();
    let send = |i: usize| {
        let id = format!("m{i}");
        (
            id.clone(),
            serde_json::json!({"type":"send","room":"ops","content":id,"client_id":id}),
        )
    };
    // Some before, some during, some after the outage.
    for phase in 0..3 {
        if phase == 1 {
            redis.kill();
            // The node notices and says so, and keeps serving its clients.
            let mut degraded = false;
            for _ in 0..100 {
                if n1.health().await["status"] == "degraded" {
                    degraded = true;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            assert!(degraded, "healthz reports degraded during the outage");
        }
        if phase == 2 {
            let port = redis.port;
            redis = OwnRedis::start(port);
        }
        for i in phase * 20..phase * 20 + 20 {
            let (id, frame) = send(i);
            alice.client.send_json(frame).await;
            loop {
                match alice.client.recv().await {
                    ServerMsg::Ack { seq, client_id, .. } => {
                        assert_eq!(client_id, id);
                        acked.insert(seq, client_id);
                        break;
                    }
                    other => alice.fold(other),
                }
            }
        }
        if phase == 1 {
            // Alice has seen seq 40 on n1; n2 has not heard of 21..=40 yet
            // (no Redis). Resuming there from 40 must not count as "ahead":
            // n2 catches up from the store and resumes her exactly.
            let mut tab = n2.connect(&alice_session).await;
            tab.send_json(serde_json::json!({"type":"join","room":"ops","since":40}))
                .await;
            match tab.recv().await {
                ServerMsg::Joined {
                    recovered,
                    last_seq,
                    ..
                } => {
                    assert!(recovered, "a resume on a lagging node is recovered");
                    assert_eq!(last_seq, 40);
                }
                other => panic!("expected joined and no replay, got {other:?}"),
            }
        }
    }
    assert_eq!(
        acked.len(),
        60,
        "the node kept serving its own clients throughout"
    );
    // Bob, on the other node, ends up with every acked message, in order.
    bob.until("every acked message", |s| s.seqs.len() >= 60)
        .await;
    assert_eq!(bob.seqs, (1..=60).collect::<Vec<u64>>());
    for (seq, id) in &acked {
        assert_eq!(&bob.client_ids[*seq as usize - 1], id);
    }
    let mut healthy = false;
    for _ in 0..100 {
        if n1.health().await["status"] == "ok" && n2.health().await["status"] == "ok" {
            healthy = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(healthy, "both nodes recover");
    drop((n1, n2));
    db.drop_now().await;
}

#[tokio::test]
async fn redis_with_a_per_node_sqlite_store_is_refused() {
    let dir = temp_dir();
    let redis = shared_redis();
    let output = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(["--listen", "127.0.0.1:0", "--redis-url", &redis])
        .arg("--data-dir")
        .arg(&dir)
        .output()
        .await
        .unwrap();
    assert!(!output.status.success(), "it must not start");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("needs a shared PostgreSQL store")
            && stderr.contains("history would diverge"),
        "a clear reason: {stderr}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// A node stores and acks a room's newest message, then dies before
/// publishing it (simulated: the message goes into the shared database
/// directly). Nothing later happens in the room, yet the other nodes'
/// clients get it: recently active rooms check their tail against the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_but_unpublished_message_still_reaches_everyone() {
    let pg = crate::faults_support::OwnPostgres::start();
    let url = pg.url();
    let redis = shared_redis();
    let prefix = format!("hearth-test-{}", uuid::Uuid::new_v4().simple());
    let server = crate::support::TestServer::start_with(|c| {
        c.database_url = Some(url.clone());
        c.redis_url = Some(redis.clone());
        c.redis_prefix = prefix.clone();
        c.tail_check_ms = 200;
    })
    .await;
    let mut reader = server.client("reader").await;
    reader.join("quiet").await;
    reader.say("quiet", "first", "c1").await;
    reader
        .recv_where(|m| matches!(m, ServerMsg::Ack { .. }))
        .await;

    let db = sqlx::PgPool::connect(&url).await.unwrap();
    let seq: i64 = sqlx::query_scalar(
        "UPDATE rooms SET last_seq = last_seq + 1 WHERE name = 'quiet' RETURNING last_seq",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO messages (room, seq, id, user_id, user_name, content, ts, client_id) \
         VALUES ('quiet', $1, 'm-lost', 'u-gone', 'gone', 'acked, never published', 0, 'x1')",
    )
    .bind(seq)
    .execute(&db)
    .await
    .unwrap();

    let arrived = reader
        .recv_where(|m| matches!(m, ServerMsg::Message(m) if m.id == "m-lost"))
        .await;
    let ServerMsg::Message(message) = arrived else {
        unreachable!()
    };
    assert_eq!(message.seq, 2);
}

/// Sign-out and removal reach every node: a socket of the session on
/// another node closes with 4001 within a second (through Redis: the store
/// polling is slowed to 10 min here, so only the broker can do it in
/// time), and a removed member's socket on another node gets `left`. A
/// node that cannot hear the broker (another Redis prefix: a partition)
/// still closes the socket, by polling the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_out_invitation_and_removal_reach_every_node() {
    use reqwest::Method;
    let db = Database::create().await;
    let redis = shared_redis();
    let cluster = Cluster::new(db.url(), redis.clone());
    let slow_poll = ["--revocation-poll-ms", "600000"];
    let n1 = cluster.start_node_with("n1", &slow_poll).await;
    let n2 = cluster.start_node_with("n2", &slow_poll).await;
    let cut_off = Cluster::new(db.url(), redis);
    let n3 = cut_off
        .start_node_with("n3", &["--revocation-poll-ms", "200"])
        .await;
    let api = |node: &Node, path: &str| format!("http://127.0.0.1:{}{path}", node.port);

    let alice = crate::support::sign_up_at(format!("127.0.0.1:{}", n1.port), "alice").await;
    let mut on_n2 = n2.connect(&alice).await;
    let mut on_n3 = n3.connect(&alice).await;
    let started = std::time::Instant::now();
    let (status, _) = crate::support::call(
        Method::DELETE,
        &api(&n1, "/api/session"),
        Some(&alice.token),
        None,
    )
    .await;
    assert_eq!(status, 204);
    assert_eq!(
        on_n2.ended().await,
        crate::support::Ended::Closed(common::close::TOKEN_INVALID)
    );
    let via_broker = started.elapsed();
    assert_eq!(
        on_n3.ended().await,
        crate::support::Ended::Closed(common::close::TOKEN_INVALID)
    );
    let via_poll = started.elapsed();
    println!(
        "revocation closed a socket on another node after {via_broker:?} (broker), {via_poll:?} (store poll)"
    );
    assert!(
        via_broker < Duration::from_secs(1),
        "closed within 1 s on another node: {via_broker:?}"
    );
    for node in [&n1, &n2, &n3] {
        let (status, _) = crate::support::call(
            Method::GET,
            &api(node, "/api/session"),
            Some(&alice.token),
            None,
        )
        .await;
        assert_eq!(status, 401, "refused on every node");
    }

    // Removal: the owner on n1, the member's socket on n2.
    let owner = crate::support::sign_up_at(format!("127.0.0.1:{}", n1.port), "olive").await;
    let bob = crate::support::sign_up_at(format!("127.0.0.1:{}", n2.port), "bob").await;
    let (status, _) = crate::support::call(
        Method::POST,
        &api(&n1, "/api/rooms"),
        Some(&owner.token),
        Some(serde_json::json!({"name": "team", "visibility": "private"})),
    )
    .await;
    assert_eq!(status, 201);
    let mut bob_socket = n2.connect(&bob).await;
    crate::support::call(
        Method::POST,
        &api(&n1, "/api/rooms/team/members"),
        Some(&owner.token),
        Some(serde_json::json!({"username": "bob"})),
    )
    .await;
    // Invited on n1: his socket on n2, in no room yet, is told at once.
    bob_socket
        .recv_where(|m| matches!(m, ServerMsg::RoomsChanged))
        .await;
    bob_socket.join("team").await;
    let (status, _) = crate::support::call(
        Method::DELETE,
        &api(&n1, &format!("/api/rooms/team/members/{}", bob.user.id)),
        Some(&owner.token),
        None,
    )
    .await;
    assert_eq!(status, 204);
    assert_eq!(
        bob_socket
            .recv_where(|m| matches!(m, ServerMsg::Left { .. }))
            .await,
        ServerMsg::Left {
            room: "team".into(),
            reason: Some("removed".into())
        }
    );
    drop((n1, n2, n3));
    db.drop_now().await;
}

/// The registry against a real Redis: writes replace a node's entries per
/// room, a read of many rooms (one pipeline) gives each room its own, and a
/// node that stops beating is removed with its entries, once.
#[tokio::test]
async fn the_registry_keeps_each_nodes_entries_and_forgets_dead_nodes() {
    use backend::broker::Broker;
    let redis = shared_redis();
    let prefix = format!("hearth-test-{}", uuid::Uuid::new_v4().simple());
    let b1 = backend::broker::RedisBroker::connect(&redis, &prefix)
        .await
        .unwrap();
    let b2 = backend::broker::RedisBroker::connect(&redis, &prefix)
        .await
        .unwrap();
    let user = |id: &str| common::User {
        id: id.into(),
        name: id.to_uppercase(),
        username: Some(id.into()),
    };
    let ids = |all: Vec<Vec<backend::broker::PresenceEntry>>| -> Vec<Vec<String>> {
        all.into_iter()
            .map(|entries| {
                let mut ids: Vec<String> = entries
                    .into_iter()
                    .map(|e| format!("{}/{}", e.node, e.user.id))
                    .collect();
                ids.sort();
                ids
            })
            .collect()
    };
    b1.write_presence(
        "n1",
        &[
            ("a".into(), vec![user("u1")]),
            ("b".into(), vec![user("u2"), user("u3")]),
        ],
    )
    .await
    .unwrap();
    b2.write_presence("n2", &[("a".into(), vec![user("u9")])])
        .await
        .unwrap();
    assert_eq!(
        ids(b1.members_of_many(&["a", "b", "c"]).await.unwrap()),
        [vec!["n1/u1", "n2/u9"], vec!["n1/u2", "n1/u3"], vec![]]
    );
    // A write replaces that node's entries in the rooms it names, only.
    b1.write_presence("n1", &[("b".into(), vec![user("u3")])])
        .await
        .unwrap();
    assert_eq!(
        ids(b1.members_of_many(&["a", "b"]).await.unwrap()),
        [vec!["n1/u1", "n2/u9"], vec!["n1/u3"]]
    );
    let one = b1.members("b").await.unwrap();
    assert_eq!(one[0].user, user("u3"));

    // Beats: the first one is a (re)join; both nodes alive.
    let beat = b1.heartbeat("n1", Duration::from_secs(30)).await.unwrap();
    assert!(beat.rejoined);
    let beat = b1.heartbeat("n1", Duration::from_secs(30)).await.unwrap();
    assert!(!beat.rejoined);
    assert!(
        b2.heartbeat("n2", Duration::from_millis(300))
            .await
            .unwrap()
            .rejoined
    );
    let alive = |beat: backend::broker::Liveness| -> Vec<String> {
        let mut nodes: Vec<String> = beat.nodes.into_iter().map(|(n, _)| n).collect();
        nodes.sort();
        nodes
    };
    assert_eq!(
        alive(b1.heartbeat("n1", Duration::from_secs(30)).await.unwrap()),
        ["n1", "n2"]
    );
    // A live node is not forgotten (without force).
    b1.forget_node("n2", false).await.unwrap();
    assert_eq!(
        ids(b1.members_of_many(&["a"]).await.unwrap()),
        [vec!["n1/u1", "n2/u9"]]
    );

    // n2 stops beating: it is no longer alive, and forgetting it removes
    // its entries and nobody else's.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut living = alive(b1.heartbeat("n1", Duration::from_secs(30)).await.unwrap());
    while living != ["n1"] && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        living = alive(b1.heartbeat("n1", Duration::from_secs(30)).await.unwrap());
    }
    assert_eq!(living, ["n1"]);
    b1.forget_node("n2", false).await.unwrap();
    assert_eq!(
        ids(b1.members_of_many(&["a"]).await.unwrap()),
        [vec!["n1/u1"]]
    );
    // Back, it learns that it was forgotten and must write everything again.
    let back = b2.heartbeat("n2", Duration::from_secs(30)).await.unwrap();
    assert!(back.rejoined);
    b2.write_presence("n2", &[("a".into(), vec![user("u9")])])
        .await
        .unwrap();
    assert_eq!(
        ids(b1.members_of_many(&["a"]).await.unwrap()),
        [vec!["n1/u1", "n2/u9"]]
    );
    // A node restarting under its id clears what it left (force).
    b1.forget_node("n1", true).await.unwrap();
    assert_eq!(
        ids(b1.members_of_many(&["a", "b"]).await.unwrap()),
        [vec!["n2/u9"], vec![]]
    );
}

/// Counts of Redis commands since the last `CONFIG RESETSTAT`, by name.
async fn command_calls(redis: &mut redis::aio::MultiplexedConnection) -> HashMap<String, u64> {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(redis)
        .await
        .unwrap();
    info.lines()
        .filter_map(|line| {
            let (name, stats) = line.strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = stats.split(',').find_map(|kv| kv.strip_prefix("calls="))?;
            Some((name.to_owned(), calls.parse().ok()?))
        })
        .collect()
}

/// Subscribers of each channel, as Redis counts them.
async fn subscribers(redis: &mut redis::aio::MultiplexedConnection, channel: &str) -> u64 {
    let answer: Vec<redis::Value> = redis::cmd("PUBSUB")
        .arg("NUMSUB")
        .arg(channel)
        .query_async(redis)
        .await
        .unwrap();
    redis::from_redis_value(answer[1].clone()).unwrap()
}

/// Idle, a node costs Redis one liveness beat per refresh, whatever the
/// number of rooms and members it holds; a change costs a few commands; and
/// a node subscribes to a room's channel only while it hosts the room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_costs_per_change_and_nodes_hear_only_their_rooms() {
    let db = Database::create().await;
    let own = OwnRedis::start(unused_port());
    let url = format!("redis://127.0.0.1:{}", own.port);
    let cluster = Cluster::new(db.url(), url.clone());
    let flags = [
        "--room-unload-secs",
        "1",
        "--rooms-per-user-per-hour",
        "1000",
    ];
    let n1 = cluster.start_node_with("n1", &flags).await;
    let n2 = cluster.start_node_with("n2", &flags).await;
    let mut redis = redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let channel = |room: &str| format!("{}:room:{room}", cluster.prefix);

    const ROOMS: usize = 50;
    let mut alice = Seen::new(n1.connect(&n1.sign_in("alice").await).await);
    for i in 0..ROOMS {
        alice.join(&format!("r{i}"), None).await;
    }
    let mut bob = Seen::new(n2.connect(&n2.sign_in("bob").await).await);
    bob.join("r0", None).await;
    assert!(bob.members.contains("alice"), "from the registry");
    alice.until("bob", |s| s.members.contains("bob")).await;

    // Subscriptions: both nodes on r0, only node 1 on the others, and no
    // pattern subscription that would bring every room to every node.
    assert_eq!(subscribers(&mut redis, &channel("r0")).await, 2);
    assert_eq!(subscribers(&mut redis, &channel("r1")).await, 1);
    let patterns: u64 = redis::cmd("PUBSUB")
        .arg("NUMPAT")
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(patterns, 0);

    // Idle: beats only (refresh 250 ms here, two nodes).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async(&mut redis)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle = command_calls(&mut redis).await;
    println!("Redis commands in 2 s idle with {ROOMS} rooms held: {idle:?}");
    // (Commands run by the beat's script are counted too: zadd, hset...)
    for cmd in ["sadd", "srem", "smembers", "publish", "subscribe"] {
        assert_eq!(idle.get(cmd), None, "{cmd} while idle: {idle:?}");
    }
    let beats = idle.get("evalsha").copied().unwrap_or(0) + idle.get("eval").copied().unwrap_or(0);
    assert!(
        (8..=24).contains(&beats),
        "about one beat per node per 250 ms, not {beats}"
    );

    // One change: one room's entry, written once (the set and the node's
    // index of its entries), whatever the number of rooms held.
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async(&mut redis)
        .await
        .unwrap();
    alice
        .client
        .send_json(serde_json::json!({"type":"leave","room":"r7"}))
        .await;
    // Until the presence task has written the change (then a little
    // longer, so a second write would be counted too).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !command_calls(&mut redis).await.contains_key("srem")
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let change = command_calls(&mut redis).await;
    println!("Redis commands for one leave: {change:?}");
    assert_eq!(change.get("srem"), Some(&2), "{change:?}");
    assert_eq!(change.get("sadd"), None, "{change:?}");
    assert_eq!(change.get("smembers"), None, "{change:?}");

    // Bob leaves r0: node 2 unloads it and stops listening to it.
    bob.client
        .send_json(serde_json::json!({"type":"leave","room":"r0"}))
        .await;
    let mut unsubscribed = false;
    for _ in 0..100 {
        if subscribers(&mut redis, &channel("r0")).await == 1 {
            unsubscribed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        unsubscribed,
        "node 2 still subscribed to a room it unloaded"
    );
    alice
        .until("bob gone", |s| !s.members.contains("bob"))
        .await;

    drop((n1, n2));
    db.drop_now().await;
}

/// A message is published once, by the node that stored it, whatever the
/// number of nodes that deliver it; a read position only where the reader
/// has another connection in the room. (Every node used to publish every
/// message it delivered, and every read: Redis traffic per message grew
/// with the square of the nodes, docs/benchmarks.md, workload 2.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_is_published_once_and_a_read_only_where_another_tab_is() {
    let db = Database::create().await;
    let own = OwnRedis::start(unused_port());
    let url = format!("redis://127.0.0.1:{}", own.port);
    let cluster = Cluster::new(db.url(), url.clone());
    let nodes = [
        cluster.start_node("n1").await,
        cluster.start_node("n2").await,
        cluster.start_node("n3").await,
    ];
    let mut redis = redis::Client::open(url.clone())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let mut people = Vec::new();
    let mut sessions = Vec::new();
    for (node, name) in nodes.iter().zip(["alice", "bob", "carol"]) {
        sessions.push(node.sign_in(name).await);
        let mut seen = Seen::new(node.connect(sessions.last().unwrap()).await);
        seen.join("lobby", None).await;
        people.push(seen);
    }
    let everyone = names(&["alice", "bob", "carol"]);
    for seen in &mut people {
        seen.until("everyone", |s| s.members == everyone).await;
    }
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async(&mut redis)
        .await
        .unwrap();

    const EACH: usize = 4;
    for (i, seen) in people.iter_mut().enumerate() {
        for n in 0..EACH {
            let id = format!("m{i}-{n}");
            seen.client
                .send_json(
                    serde_json::json!({"type":"send","room":"lobby","content":id,"client_id":id}),
                )
                .await;
        }
    }
    for seen in &mut people {
        seen.until("every message", |s| s.seqs.len() == 3 * EACH)
            .await;
        let newest = *seen.seqs.iter().max().unwrap();
        seen.client
            .send_json(serde_json::json!({"type":"read","room":"lobby","seq":newest}))
            .await;
    }
    // Reads are handled in order after the sends; give the last a moment.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let calls = command_calls(&mut redis).await;
    assert_eq!(
        calls.get("publish"),
        Some(&(3 * EACH as u64)),
        "one publish per message, none per read: {calls:?}"
    );

    // Alice opens a second tab on another node: now her read is published,
    // and reaches it.
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async(&mut redis)
        .await
        .unwrap();
    let mut tab = Seen::new(nodes[1].connect(&sessions[0]).await);
    tab.join("lobby", None).await;
    until_listed(&url, &cluster.prefix, "lobby", "n2", "alice").await;
    // Something new to read (a read position only moves forward), from
    // node 2: once alice has it, node 1 has heard of her tab there.
    people[1]
        .client
        .send_json(
            serde_json::json!({"type":"send","room":"lobby","content":"new","client_id":"new"}),
        )
        .await;
    let newest = 3 * EACH as u64 + 1;
    people[0]
        .until("the new message", |s| s.seqs.contains(&newest))
        .await;
    people[0]
        .client
        .send_json(serde_json::json!({"type":"read","room":"lobby","seq":newest}))
        .await;
    tab.until("alice's read from her other tab", |s| {
        s.reads.contains(&newest)
    })
    .await;
    drop((people, tab, nodes));
    db.drop_now().await;
}

/// With the default presence timings, a node killed with SIGKILL is gone
/// from the other nodes' member lists within 15 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_nodes_users_leave_everywhere_within_fifteen_seconds() {
    let db = Database::create().await;
    let cluster = Cluster::new(db.url(), shared_redis());
    let defaults = ["--presence-refresh-ms", "2000", "--presence-ttl-ms", "6000"];
    let n1 = cluster.start_node_with("n1", &defaults).await;
    let mut n2 = cluster.start_node_with("n2", &defaults).await;
    let mut alice = Seen::new(n1.connect(&n1.sign_in("alice").await).await);
    let mut carol = Seen::new(n2.connect(&n2.sign_in("carol").await).await);
    alice.join("lobby", None).await;
    carol.join("lobby", None).await;
    alice.until("carol", |s| s.members.contains("carol")).await;

    n2.child.start_kill().unwrap();
    let _ = n2.child.wait().await;
    let killed = std::time::Instant::now();
    alice
        .until("carol gone", |s| !s.members.contains("carol"))
        .await;
    let took = killed.elapsed();
    println!("a killed node's user left the other node after {took:?}");
    assert!(took < Duration::from_secs(15), "took {took:?}");
    drop(carol);
    drop(n1);
    db.drop_now().await;
}
