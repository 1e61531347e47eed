//! One conformance suite for both stores. Each test runs against SQLite (a
//! fresh file) and PostgreSQL (a fresh schema in the `test` database, so runs
//! never collide). PostgreSQL is at HEARTH_TEST_POSTGRES_URL, default
//! postgres://postgres@127.0.0.1:5432/test; scripts/test starts it if needed.

use std::str::FromStr;
use std::sync::Arc;

use backend::store::{NewMessage, PostgresStore, SqliteStore, Store, StoreError};
use common::User;
use sqlx::postgres::PgConnectOptions;

use crate::support::temp_dir;

/// Opens a store, and can open it again (a "restart") on the same data.
enum Target {
    Sqlite(std::path::PathBuf),
    Postgres { url: String, schema: String },
}

impl Target {
    async fn sqlite() -> Target {
        Target::Sqlite(temp_dir().join("conformance.db"))
    }

    async fn postgres() -> Target {
        let url = std::env::var("HEARTH_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        let schema = format!("hearth_test_{}", uuid::Uuid::new_v4().simple());
        let admin = sqlx::PgPool::connect(&url)
            .await
            .expect("PostgreSQL is reachable");
        sqlx::query(&format!("CREATE SCHEMA {schema}"))
            .execute(&admin)
            .await
            .unwrap();
        Target::Postgres { url, schema }
    }

    async fn open(&self) -> Arc<dyn Store> {
        match self {
            Target::Sqlite(path) => Arc::new(
                SqliteStore::open(&format!("sqlite://{}", path.display()), Default::default())
                    .await
                    .unwrap(),
            ),
            Target::Postgres { url, schema } => {
                let options = PgConnectOptions::from_str(url)
                    .unwrap()
                    .options([("search_path", schema.as_str())]);
                Arc::new(
                    PostgresStore::open_with(options, Default::default())
                        .await
                        .unwrap(),
                )
            }
        }
    }

    /// Runs raw SQL on the target's database, as an operator would.
    async fn exec(&self, sql: &str) {
        match self {
            Target::Sqlite(path) => {
                let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
                    .await
                    .unwrap();
                sqlx::query(sql).execute(&pool).await.unwrap();
                pool.close().await;
            }
            Target::Postgres { url, schema } => {
                let options = PgConnectOptions::from_str(url)
                    .unwrap()
                    .options([("search_path", schema.as_str())]);
                let pool = sqlx::PgPool::connect_with(options).await.unwrap();
                sqlx::query(sql).execute(&pool).await.unwrap();
                pool.close().await;
            }
        }
    }

    async fn cleanup(self) {
        match self {
            Target::Sqlite(path) => {
                let _ = std::fs::remove_dir_all(path.parent().unwrap());
            }
            Target::Postgres { url, schema } => {
                let admin = sqlx::PgPool::connect(&url).await.unwrap();
                sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
                    .execute(&admin)
                    .await
                    .unwrap();
            }
        }
    }
}

fn user(id: &str) -> User {
    User {
        id: id.into(),
        name: id.to_uppercase(),
        username: Some(id.into()),
    }
}

async fn append(
    store: &dyn Store,
    room: &str,
    who: &User,
    client_id: &str,
    ts: i64,
) -> backend::store::Appended {
    store
        .append(NewMessage {
            room,
            id: &uuid::Uuid::now_v7().to_string(),
            user: who,
            content: &format!("content of {client_id}"),
            ts,
            client_id,
        })
        .await
        .unwrap()
}

fn seqs(messages: &[common::ChatMessage]) -> Vec<u64> {
    messages.iter().map(|m| m.seq).collect()
}

/// Generates `sqlite` and `postgres` variants of each conformance test.
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite { $( #[tokio::test] async fn $name() { let t = super::Target::sqlite().await; super::$name(&t).await; t.cleanup().await; } )* }
        mod postgres { $( #[tokio::test] async fn $name() { let t = super::Target::postgres().await; super::$name(&t).await; t.cleanup().await; } )* }
    };
}

conformance!(
    seq_starts_at_one_and_grows_by_one,
    a_repeated_client_id_is_stored_once,
    ranges_and_pages_are_bounded_and_ordered,
    seq_continues_after_a_restart,
    retention_never_reuses_a_seq,
    concurrent_appends_get_distinct_consecutive_seqs,
    rooms_are_persisted,
    mixed_case_rooms_move_to_lowercase_without_merging,
    read_positions_only_move_forward,
    room_pages_walk_by_name_and_prefix,
    a_batch_is_one_transaction_with_an_answer_per_message,
    concurrent_appends_share_commits_and_stay_gap_free,
);

/// The LIKE prefix (with `_` escaped) and the cursor behave the same on
/// both stores.
async fn room_pages_walk_by_name_and_prefix(t: &Target) {
    let store = t.open().await;
    for name in ["a_b", "axb", "b-1", "b-2", "b-3"] {
        store.ensure_room(name, "u", 1).await.unwrap();
    }
    let names = |page: Vec<(backend::store::StoredRoom, Option<common::Role>)>| {
        page.into_iter().map(|(r, _)| r.name).collect::<Vec<_>>()
    };
    assert_eq!(
        names(store.rooms_page("u", "", "a_", 10).await.unwrap()),
        ["a_b"]
    );
    assert_eq!(
        names(store.rooms_page("u", "", "", 2).await.unwrap()),
        ["a_b", "axb"]
    );
    assert_eq!(
        names(store.rooms_page("u", "axb", "", 2).await.unwrap()),
        ["b-1", "b-2"]
    );
    assert_eq!(
        names(store.rooms_page("u", "b-1", "b-", 10).await.unwrap()),
        ["b-2", "b-3"]
    );
}

/// Migration 4 on data written before room names were case-insensitive.
async fn mixed_case_rooms_move_to_lowercase_without_merging(t: &Target) {
    let store = t.open().await;
    for (name, created) in [("General", 1), ("general", 2), ("Team", 3), ("quiet", 4)] {
        store.ensure_room(name, "u", created).await.unwrap();
        append(&*store, name, &user("a"), &format!("{name}-1"), 10).await;
    }
    store.mark_read("a", "Team", 1).await.unwrap();
    drop(store);
    // As if this database predated migration 4: the runner continues after
    // the highest version, so 4 and every later one are undone and run
    // again on open. (A new migration adds its undo here.)
    t.exec("DELETE FROM hearth_schema WHERE version >= 4").await;
    t.exec("DROP TABLE ws_tickets").await; // 5
    for undo in [
        "DROP TABLE room_members", // 6
        "DROP TABLE sessions",
        "DROP TABLE users",
        "ALTER TABLE rooms DROP COLUMN visibility",
        "ALTER TABLE messages DROP COLUMN username",
        "DROP TABLE api_keys", // 7
    ] {
        t.exec(undo).await;
    }
    let store = t.open().await;
    let names: Vec<String> = store
        .rooms()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.name)
        .collect();
    assert_eq!(names, ["general", "general-1", "quiet", "team"]);
    let content = |room: &'static str| {
        let store = store.clone();
        async move {
            store.range(room, 0, 10, 10).await.unwrap()[0]
                .content
                .clone()
        }
    };
    assert_eq!(
        content("general").await,
        "content of general-1",
        "kept its own history"
    );
    assert_eq!(
        content("general-1").await,
        "content of General-1",
        "not merged, not lost"
    );
    assert_eq!(content("team").await, "content of Team-1");
    assert_eq!(store.read_state("a", "team").await.unwrap(), (1, 0));
    // The seq continues where it was.
    assert_eq!(
        append(&*store, "team", &user("b"), "t2", 11)
            .await
            .message
            .seq,
        2
    );
}

async fn read_positions_only_move_forward(t: &Target) {
    let store = t.open().await;
    store.ensure_room("r", "u", 1).await.unwrap();
    for i in 1..=4 {
        append(
            &*store,
            "r",
            &user(if i % 2 == 0 { "a" } else { "b" }),
            &format!("c{i}"),
            10,
        )
        .await;
    }
    assert_eq!(store.read_state("a", "r").await.unwrap(), (0, 2), "b's two");
    store.mark_read("a", "r", 3).await.unwrap();
    store.mark_read("a", "r", 1).await.unwrap();
    assert_eq!(store.read_state("a", "r").await.unwrap(), (3, 0));
    assert_eq!(
        store.read_state("b", "r").await.unwrap(),
        (0, 2),
        "a's two; per user"
    );
}

async fn seq_starts_at_one_and_grows_by_one(t: &Target) {
    let store = t.open().await;
    assert_eq!(store.ensure_room("general", "u1", 1).await.unwrap(), 0);
    assert_eq!(
        store.ensure_room("general", "u2", 2).await.unwrap(),
        0,
        "idempotent"
    );
    for expected in 1..=5 {
        let appended = append(
            store.as_ref(),
            "general",
            &user("u1"),
            &format!("c{expected}"),
            10,
        )
        .await;
        assert_eq!(appended.message.seq, expected);
        assert!(!appended.duplicate);
        assert_eq!(appended.message.user, user("u1"));
    }
    // Rooms count independently.
    store.ensure_room("other", "u1", 1).await.unwrap();
    assert_eq!(
        append(store.as_ref(), "other", &user("u1"), "x", 10)
            .await
            .message
            .seq,
        1
    );
    let err = store
        .append(NewMessage {
            room: "nowhere",
            id: "i",
            user: &user("u1"),
            content: "c",
            ts: 1,
            client_id: "c",
        })
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::UnknownRoom(_)), "{err:?}");
}

async fn a_repeated_client_id_is_stored_once(t: &Target) {
    let store = t.open().await;
    store.ensure_room("r", "u1", 1).await.unwrap();
    let first = append(store.as_ref(), "r", &user("u1"), "same", 10).await;
    let again = append(store.as_ref(), "r", &user("u1"), "same", 99).await;
    assert!(again.duplicate);
    assert_eq!(again.message, first.message, "the original, unchanged");
    // The same id from someone else, or in another room, is a new message.
    assert_eq!(
        append(store.as_ref(), "r", &user("u2"), "same", 10)
            .await
            .message
            .seq,
        2
    );
    store.ensure_room("r2", "u1", 1).await.unwrap();
    assert!(
        !append(store.as_ref(), "r2", &user("u1"), "same", 10)
            .await
            .duplicate
    );
    // The duplicate did not use up a seq.
    assert_eq!(
        append(store.as_ref(), "r", &user("u1"), "next", 10)
            .await
            .message
            .seq,
        3
    );
    assert_eq!(
        seqs(&store.range("r", 0, 100, 100).await.unwrap()),
        [1, 2, 3]
    );
}

async fn ranges_and_pages_are_bounded_and_ordered(t: &Target) {
    let store = t.open().await;
    store.ensure_room("r", "u1", 1).await.unwrap();
    for i in 1..=20 {
        append(store.as_ref(), "r", &user("u1"), &format!("c{i}"), i).await;
    }
    assert_eq!(
        seqs(&store.range("r", 5, 9, 100).await.unwrap()),
        [6, 7, 8, 9]
    );
    assert_eq!(seqs(&store.range("r", 5, 20, 3).await.unwrap()), [6, 7, 8]);
    assert_eq!(
        seqs(&store.range("r", 20, 30, 10).await.unwrap()),
        Vec::<u64>::new()
    );
    assert_eq!(
        seqs(&store.page_before("r", 21, 5).await.unwrap()),
        [16, 17, 18, 19, 20]
    );
    assert_eq!(
        seqs(&store.page_before("r", 4, 50).await.unwrap()),
        [1, 2, 3]
    );
    assert_eq!(
        seqs(&store.page_before("r", u64::MAX, 2).await.unwrap()),
        [19, 20]
    );
    let m = &store.range("r", 0, 1, 1).await.unwrap()[0];
    assert_eq!(
        (m.content.as_str(), m.client_id.as_str(), m.ts),
        ("content of c1", "c1", 1)
    );
}

async fn seq_continues_after_a_restart(t: &Target) {
    {
        let store = t.open().await;
        store.ensure_room("r", "u1", 1).await.unwrap();
        for i in 1..=3 {
            append(store.as_ref(), "r", &user("u1"), &format!("c{i}"), 1).await;
        }
    }
    let reopened = t.open().await;
    assert_eq!(reopened.ensure_room("r", "u1", 1).await.unwrap(), 3);
    assert_eq!(
        append(reopened.as_ref(), "r", &user("u1"), "c4", 1)
            .await
            .message
            .seq,
        4
    );
    // Idempotency holds across the restart too.
    assert!(
        append(reopened.as_ref(), "r", &user("u1"), "c2", 1)
            .await
            .duplicate
    );
}

async fn retention_never_reuses_a_seq(t: &Target) {
    let store = t.open().await;
    store.ensure_room("r", "u1", 1).await.unwrap();
    for i in 1..=10 {
        append(store.as_ref(), "r", &user("u1"), &format!("c{i}"), i * 1000).await;
    }
    assert_eq!(store.prune(Some(4), None).await.unwrap(), 6);
    assert_eq!(
        seqs(&store.range("r", 0, 100, 100).await.unwrap()),
        [7, 8, 9, 10]
    );
    assert_eq!(
        store.prune(None, Some(9_000)).await.unwrap(),
        2,
        "older than 9 s"
    );
    assert_eq!(seqs(&store.range("r", 0, 100, 100).await.unwrap()), [9, 10]);
    assert_eq!(
        append(store.as_ref(), "r", &user("u1"), "c11", 1)
            .await
            .message
            .seq,
        11
    );
    assert_eq!(store.ensure_room("r", "u1", 1).await.unwrap(), 11);
}

async fn concurrent_appends_get_distinct_consecutive_seqs(t: &Target) {
    let store = t.open().await;
    store.ensure_room("busy", "u1", 1).await.unwrap();
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                let who = user(&format!("w{w}"));
                let mut got = Vec::new();
                for i in 0..25 {
                    got.push(
                        append(store.as_ref(), "busy", &who, &format!("{w}-{i}"), 1)
                            .await
                            .message
                            .seq,
                    );
                }
                got
            })
        })
        .collect();
    let mut all = Vec::new();
    for writer in writers {
        all.extend(writer.await.unwrap());
    }
    all.sort_unstable();
    assert_eq!(all, (1..=100).collect::<Vec<u64>>());
}

async fn rooms_are_persisted(t: &Target) {
    {
        let store = t.open().await;
        store.ensure_room("beta", "bob", 20).await.unwrap();
        store.ensure_room("alpha", "alice", 10).await.unwrap();
        append(store.as_ref(), "beta", &user("bob"), "c", 1).await;
    }
    let rooms = t.open().await.rooms().await.unwrap();
    let summary: Vec<(&str, &str, i64, u64)> = rooms
        .iter()
        .map(|r| {
            (
                r.name.as_str(),
                r.created_by.as_str(),
                r.created_at,
                r.last_seq,
            )
        })
        .collect();
    assert_eq!(summary, [("alpha", "alice", 10, 0), ("beta", "bob", 20, 1)]);
}

/// `append_batch`: one transaction, answers in order; an unknown room is
/// refused on its own; a duplicate `client_id` (even within the batch) gets
/// the first message and takes no seq.
async fn a_batch_is_one_transaction_with_an_answer_per_message(t: &Target) {
    let store = t.open().await;
    store.ensure_room("a", "u1", 1).await.unwrap();
    store.ensure_room("b", "u1", 1).await.unwrap();
    let (ann, bo) = (user("ann"), user("bo"));
    let message = |room: &'static str, who: &'static User, client_id: &'static str| NewMessage {
        room,
        id: Box::leak(uuid::Uuid::now_v7().to_string().into_boxed_str()),
        user: who,
        content: "hello",
        ts: 1,
        client_id,
    };
    let ann: &'static User = Box::leak(Box::new(ann));
    let bo: &'static User = Box::leak(Box::new(bo));
    let batch = [
        message("a", ann, "c1"),
        message("b", ann, "c1"),
        message("a", bo, "c1"),
        message("ghost", ann, "c9"),
        message("a", ann, "c1"),
        message("a", ann, "c2"),
    ];
    let results = store.append_batch(&batch).await.unwrap();
    let outcome: Vec<String> = results
        .iter()
        .map(|r| match r {
            Ok(a) => format!(
                "{}:{}{}",
                a.message.room,
                a.message.seq,
                if a.duplicate { " dup" } else { "" }
            ),
            Err(StoreError::UnknownRoom(room)) => format!("unknown {room}"),
            Err(other) => format!("{other}"),
        })
        .collect();
    assert_eq!(
        outcome,
        ["a:1", "b:1", "a:2", "unknown ghost", "a:1 dup", "a:3"]
    );
    let stored = store.range("a", 0, 100, 100).await.unwrap();
    assert_eq!(seqs(&stored), [1, 2, 3]);
    assert_eq!(store.last_seq("a").await.unwrap(), Some(3));
    // The seq the duplicate took was given back: the next one follows on.
    assert_eq!(
        append(store.as_ref(), "a", bo, "c2", 2).await.message.seq,
        4
    );
    // A batch larger than one INSERT statement holds, with a retry of an
    // earlier message in the middle: still one seq per new message.
    let big: Vec<NewMessage> = (0..250)
        .map(|i| {
            let client_id = if i == 120 {
                "c1"
            } else {
                Box::leak(format!("m{i}").into_boxed_str())
            };
            message("b", ann, client_id)
        })
        .collect();
    let results = store.append_batch(&big).await.unwrap();
    let fresh: Vec<u64> = results
        .iter()
        .map(|r| r.as_ref().unwrap())
        .filter(|a| !a.duplicate)
        .map(|a| a.message.seq)
        .collect();
    assert_eq!(fresh, (2..=250).collect::<Vec<u64>>());
    assert!(results[120].as_ref().unwrap().duplicate);
    let stored = store.range("b", 0, 1000, 1000).await.unwrap();
    assert_eq!(seqs(&stored), (1..=250).collect::<Vec<u64>>());
}

/// Through `GroupCommit`, many concurrent appends to several rooms share
/// transactions, and every room's seqs are still exactly 1..=n.
async fn concurrent_appends_share_commits_and_stay_gap_free(t: &Target) {
    use backend::store::group_commit::GroupCommit;
    use std::sync::atomic::Ordering;
    let store = t.open().await;
    for room in ["r0", "r1", "r2", "r3"] {
        store.ensure_room(room, "u1", 1).await.unwrap();
    }
    let commits = Arc::new(GroupCommit::start(store.clone()));
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let commits = commits.clone();
            tokio::spawn(async move {
                let room = format!("r{}", i % 4);
                let who = user(&format!("w{i}"));
                let id = uuid::Uuid::now_v7().to_string();
                let appended = commits
                    .append(NewMessage {
                        room: &room,
                        id: &id,
                        user: &who,
                        content: "x",
                        ts: 1,
                        client_id: "c",
                    })
                    .await
                    .unwrap();
                (room, appended.message.seq)
            })
        })
        .collect();
    let mut by_room: std::collections::BTreeMap<String, Vec<u64>> = Default::default();
    for task in tasks {
        let (room, seq) = task.await.unwrap();
        by_room.entry(room).or_default().push(seq);
    }
    for (room, mut got) in by_room {
        got.sort_unstable();
        assert_eq!(got, (1..=50).collect::<Vec<u64>>(), "{room}");
        assert_eq!(
            seqs(&store.range(&room, 0, 100, 100).await.unwrap()).len(),
            50
        );
    }
    let stats = commits.stats();
    let (messages, transactions) = (
        stats.messages.load(Ordering::Relaxed),
        stats.commits.load(Ordering::Relaxed),
    );
    println!("{messages} appends in {transactions} transactions");
    assert_eq!(messages, 200);
    assert!(
        transactions < messages,
        "no two appends shared a transaction"
    );
}
