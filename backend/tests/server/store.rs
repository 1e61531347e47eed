//! One conformance suite for both stores. Each test runs against SQLite (a
//! fresh file) and PostgreSQL (a fresh schema in the `test` database, so runs
//! never collide). PostgreSQL is at HEARTH_TEST_POSTGRES_URL, default
//! postgres://postgres@127.0.0.1:5432/test; scripts/test starts it if needed.

use std::str::FromStr;
use std::sync::Arc;

use backend::store::{
    Departure, NewEntry, PostgresStore, SearchQuery, SqliteStore, Store, StoreError,
};
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

    /// Puts a database made by Hearth before its migrations moved to sqlx
    /// (`backend/tests/fixtures/schema-10.*`) where `open` will find it.
    async fn load_old_database(&self) {
        let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        match self {
            Target::Sqlite(path) => {
                std::fs::copy(fixtures.join("schema-10.sqlite3"), path).unwrap();
            }
            Target::Postgres { url, schema } => {
                let dump =
                    std::fs::read_to_string(fixtures.join("schema-10.postgres.sql")).unwrap();
                let admin = sqlx::PgPool::connect(url).await.unwrap();
                sqlx::raw_sql(&dump.replace("hearth_fixture", schema))
                    .execute(&admin)
                    .await
                    .unwrap();
                admin.close().await;
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

    /// A count read with raw SQL, past the store: what is really on disk.
    async fn count(&self, sql: &str) -> i64 {
        match self {
            Target::Sqlite(path) => {
                let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
                    .await
                    .unwrap();
                let n = sqlx::query_scalar(sql).fetch_one(&pool).await.unwrap();
                pool.close().await;
                n
            }
            Target::Postgres { url, schema } => {
                let options = PgConnectOptions::from_str(url)
                    .unwrap()
                    .options([("search_path", schema.as_str())]);
                let pool = sqlx::PgPool::connect_with(options).await.unwrap();
                let n = sqlx::query_scalar(sql).fetch_one(&pool).await.unwrap();
                pool.close().await;
                n
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

/// A message with the given id and time (`NewEntry::message` makes its own).
fn entry(room: &str, id: &str, who: &User, content: &str, ts: i64, client_id: &str) -> NewEntry {
    NewEntry {
        id: id.to_owned(),
        ts,
        ..NewEntry::message(
            room.to_owned(),
            who.clone(),
            content.to_owned(),
            client_id.to_owned(),
        )
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
        .append(entry(
            room,
            &uuid::Uuid::now_v7().to_string(),
            who,
            &format!("content of {client_id}"),
            ts,
            client_id,
        ))
        .await
        .unwrap()
}

async fn read_state(store: &dyn Store, user_id: &str, room: &str) -> (u64, u32) {
    let state = store.join_state(user_id, None, room).await.unwrap();
    (state.read_seq, state.unread)
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
    changes_are_entries_of_the_log_and_history_shows_the_current_state,
    a_delete_removes_the_text_for_good,
    reactions_are_one_per_person_and_emoji_and_show_in_history,
    search_finds_words_in_readable_rooms_only_and_forgets_deleted_text,
    deleting_a_users_messages_takes_their_reactions_and_those_to_them,
    a_database_made_before_sqlx_migrations_upgrades_in_place,
    what_notifies_is_a_members_choice,
    an_invitation_is_pending_until_joined_and_names_who_invited,
    a_departure_is_kept_until_the_room_is_joined_again,
    a_room_list_reads_every_member_state_at_once,
    an_uploaded_file_is_recorded_and_counted_against_its_uploader,
    a_file_is_sent_once_and_goes_with_its_message,
    two_sends_racing_for_one_file_claim_it_once,
    batches_naming_the_same_rooms_in_opposite_orders_both_commit,
    webhooks_start_at_the_present_and_their_cursors_only_move_forward,
    a_lease_is_one_holders_until_it_expires,
);

/// A webhook delivers from its creation on: rooms that exist start at their
/// newest seq, rooms made later at their first; cursors never move back,
/// `*` means public rooms, and a deleted webhook has nothing left.
async fn webhooks_start_at_the_present_and_their_cursors_only_move_forward(t: &Target) {
    use backend::store::{DeliveryState, RoomScope, Webhook};
    let store = t.open().await;
    accounts(&*store, &["a"]).await;
    store.ensure_room("ops", "a", 1).await.unwrap();
    let private = common::Visibility::Private;
    assert!(store.create_room("secret", private, "a", 1).await.unwrap());
    for room in ["ops", "secret"] {
        append(&*store, room, &user("a"), "old", 2).await;
    }
    let hook = |id: &str, rooms: &str| Webhook {
        id: id.into(),
        url: "https://hooks.example.com/".into(),
        rooms: RoomScope::parse(rooms).unwrap(),
        secret: "s".repeat(16),
        changes: false,
        created_at: 3,
        state: DeliveryState::default(),
    };
    let named = hook("named", "ops,secret,later");
    let all = hook("all", "*");
    store.create_webhook(&named).await.unwrap();
    store.create_webhook(&all).await.unwrap();
    let backlog = |hook: &Webhook| {
        let store = store.clone();
        let hook = hook.clone();
        async move {
            let rooms = store.webhook_backlog(&hook, 100).await.unwrap();
            rooms
                .into_iter()
                .map(|b| (b.room, b.delivered_seq, b.last_seq))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(backlog(&named).await, []);
    store.ensure_room("later", "a", 4).await.unwrap();
    store.ensure_room("public-later", "a", 4).await.unwrap();
    for room in ["ops", "secret", "later", "public-later"] {
        append(&*store, room, &user("a"), "new", 5).await;
    }
    assert_eq!(
        backlog(&named).await,
        [
            ("later".into(), 0, 1),
            ("ops".into(), 1, 2),
            ("secret".into(), 1, 2)
        ]
    );
    assert_eq!(
        backlog(&all).await,
        [
            ("later".into(), 0, 1),
            ("ops".into(), 1, 2),
            ("public-later".into(), 0, 1)
        ],
        "* is every public room, not the private one"
    );
    assert!(store.advance_webhook("named", "ops", 2).await.unwrap());
    assert!(store.advance_webhook("named", "ops", 1).await.unwrap());
    assert!(store.advance_webhook("named", "later", 1).await.unwrap());
    assert_eq!(
        backlog(&named).await,
        [("secret".into(), 1, 2)],
        "never back"
    );

    let failing = DeliveryState {
        failures: 3,
        failing_since: Some(10),
        next_attempt_at: 20,
        last_error: Some("HTTP 503".into()),
        paused_at: None,
    };
    assert!(store.set_delivery_state("named", &failing).await.unwrap());
    let listed = store.webhooks().await.unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(
        listed.iter().find(|h| h.id == "named").unwrap().state,
        failing
    );
    assert_eq!(
        listed.iter().find(|h| h.id == "all").unwrap().rooms,
        RoomScope::All
    );

    assert!(store.delete_webhook("named").await.unwrap());
    assert!(!store.delete_webhook("named").await.unwrap());
    assert!(
        !store.advance_webhook("named", "secret", 2).await.unwrap(),
        "gone"
    );
    assert_eq!(
        backlog(&named).await,
        [],
        "a deleted webhook has nothing to deliver"
    );
    assert!(!store.set_delivery_state("named", &failing).await.unwrap());
}

/// A lease is its holder's until it expires: renewed by it, refused to
/// others, then taken over; released only by its holder.
async fn a_lease_is_one_holders_until_it_expires(t: &Target) {
    let store = t.open().await;
    assert!(store.take_lease("job", "one", 0, 100).await.unwrap());
    assert!(
        store.take_lease("job", "one", 50, 150).await.unwrap(),
        "renewed"
    );
    assert!(
        !store.take_lease("job", "two", 120, 220).await.unwrap(),
        "held"
    );
    assert!(store.take_lease("other", "two", 120, 220).await.unwrap());
    assert!(
        store.take_lease("job", "two", 151, 251).await.unwrap(),
        "expired"
    );
    assert!(!store.take_lease("job", "one", 200, 300).await.unwrap());
    store.release_lease("job", "one").await.unwrap();
    assert!(
        !store.take_lease("job", "one", 200, 300).await.unwrap(),
        "not one's to release"
    );
    store.release_lease("job", "two").await.unwrap();
    assert!(
        store.take_lease("job", "one", 200, 300).await.unwrap(),
        "released"
    );
}

/// Accounts with these ids (each its own username and display name).
async fn accounts(store: &dyn backend::store::Store, ids: &[&str]) {
    for id in ids {
        store
            .create_user(&backend::store::NewUser {
                id,
                username: Some(id),
                display_name: id,
                password_hash: None,
                created_at_ms: 1,
            })
            .await
            .unwrap();
    }
}

/// What of a room notifies a member: theirs to choose, only as a member,
/// read back with the rest of what a join needs.
async fn what_notifies_is_a_members_choice(t: &Target) {
    use common::Notify;
    let store = t.open().await;
    store.ensure_room("r", "u", 1).await.unwrap();
    accounts(store.as_ref(), &["ann", "bo"]).await;
    assert!(
        !store.set_notify("r", "ann", Notify::Mute).await.unwrap(),
        "not a member"
    );
    store.add_member("r", "ann", 2).await.unwrap();
    store.add_member("r", "bo", 2).await.unwrap();
    let notify = async |who: &str| store.join_state(who, None, "r").await.unwrap().notify;
    assert_eq!(notify("ann").await, None, "not chosen: the room's default");
    assert!(store.set_notify("r", "ann", Notify::Mute).await.unwrap());
    assert_eq!(notify("ann").await, Some(Notify::Mute));
    assert!(store.set_notify("r", "ann", Notify::All).await.unwrap());
    assert_eq!(notify("ann").await, Some(Notify::All));
    assert_eq!(notify("bo").await, None, "per member");
    // A draft is a member's too.
    assert!(store.set_draft("r", "ann", Some("half")).await.unwrap());
    let draft = async |who: &str| store.join_state(who, None, "r").await.unwrap().draft;
    assert_eq!(draft("ann").await.as_deref(), Some("half"));
    assert_eq!(draft("bo").await, None);
    assert!(store.set_draft("r", "ann", None).await.unwrap());
    assert_eq!(draft("ann").await, None);
    assert!(!store.set_draft("r", "nobody", Some("x")).await.unwrap());
    // Leaving forgets it: joining again starts from the default.
    store
        .remove_member("r", "ann", Departure::Left, 3)
        .await
        .unwrap();
    store.add_member("r", "ann", 3).await.unwrap();
    assert_eq!(notify("ann").await, None);
}

/// An invitation makes a member whose invitation is pending, with who
/// invited, until they take it up; it never overrides a membership.
async fn an_invitation_is_pending_until_joined_and_names_who_invited(t: &Target) {
    let store = t.open().await;
    for room in ["p", "q"] {
        store.ensure_room(room, "ann", 1).await.unwrap();
    }
    accounts(store.as_ref(), &["ann", "bo"]).await;
    assert!(store.invite_member("p", "bo", "ann", 2).await.unwrap());
    assert!(store.invite_member("q", "bo", "ann", 3).await.unwrap());
    assert!(
        !store.invite_member("p", "bo", "ann", 4).await.unwrap(),
        "a member already"
    );
    let invited = store.invitations("bo").await.unwrap();
    let rooms: Vec<(&str, &str)> = invited
        .iter()
        .map(|(room, by)| (room.as_str(), by.id.as_str()))
        .collect();
    assert_eq!(rooms, [("p", "ann"), ("q", "ann")]);
    let state = store.join_state("bo", None, "p").await.unwrap();
    assert!(state.member && state.invited);
    assert!(store.accept_invitation("p", "bo").await.unwrap());
    assert!(!store.accept_invitation("p", "bo").await.unwrap(), "once");
    let state = store.join_state("bo", None, "p").await.unwrap();
    assert!(state.member && !state.invited);
    assert_eq!(store.invitations("bo").await.unwrap().len(), 1);
    // Declined (left): no longer a member, nor invited.
    assert!(
        store
            .remove_member("q", "bo", Departure::Left, 5)
            .await
            .unwrap()
    );
    assert!(store.invitations("bo").await.unwrap().is_empty());
    assert!(!store.join_state("bo", None, "q").await.unwrap().invited);
    // One who joined was never invited.
    store.add_member("q", "ann", 5).await.unwrap();
    assert!(!store.join_state("ann", None, "q").await.unwrap().invited);
}

/// Leaving a room, or being removed from it, is remembered (for a device
/// that resumes the room later) until the user is a member again; a
/// deleted room forgets it with everything else.
async fn a_departure_is_kept_until_the_room_is_joined_again(t: &Target) {
    let store = t.open().await;
    store.ensure_room("r", "ann", 1).await.unwrap();
    accounts(store.as_ref(), &["ann", "bo", "cy"]).await;
    let departed = async |who: &str| store.join_state(who, None, "r").await.unwrap().departed;
    assert!(store.add_member("r", "bo", 2).await.unwrap());
    assert_eq!(departed("bo").await, None);
    assert!(
        store
            .remove_member("r", "bo", Departure::Left, 3)
            .await
            .unwrap()
    );
    let state = store.join_state("bo", None, "r").await.unwrap();
    assert!(!state.member);
    assert_eq!(state.departed, Some(Departure::Left));
    // Removed by a moderator afterwards: the newer reason stands, and a
    // reader who never was a member leaves a departure too.
    assert!(
        !store
            .remove_member("r", "bo", Departure::Removed, 4)
            .await
            .unwrap()
    );
    assert_eq!(departed("bo").await, Some(Departure::Removed));
    assert!(
        !store
            .remove_member("r", "cy", Departure::Left, 4)
            .await
            .unwrap()
    );
    assert_eq!(departed("cy").await, Some(Departure::Left));
    assert_eq!(departed("ann").await, None, "per user");
    // Joining again forgets it.
    assert!(store.add_member("r", "bo", 5).await.unwrap());
    assert_eq!(departed("bo").await, None);
    // A deleted room (and a new one by its name) has none.
    assert!(store.delete_room("r", 6).await.unwrap().is_some());
    store.ensure_room("r", "ann", 7).await.unwrap();
    assert_eq!(departed("cy").await, None);
}

/// `member_states` says for a page of rooms what `join_state` says for
/// each (read position, unread, mentions, notify, draft), for the rooms the
/// user is a member of only.
async fn a_room_list_reads_every_member_state_at_once(t: &Target) {
    let store = t.open().await;
    for room in ["r", "s", "t"] {
        store.ensure_room(room, "bo", 1).await.unwrap();
    }
    accounts(store.as_ref(), &["ann", "bo"]).await;
    for room in ["r", "s"] {
        store.add_member(room, "ann", 2).await.unwrap();
    }
    let mut last = 0;
    for (i, id) in ["one", "@ann two", "three"].iter().enumerate() {
        last = append(&*store, "r", &user("bo"), id, 10 + i as i64)
            .await
            .message
            .seq;
    }
    store.mark_read("ann", "r", 1).await.unwrap();
    store
        .set_notify("s", "ann", common::Notify::Mute)
        .await
        .unwrap();
    store.set_draft("s", "ann", Some("later")).await.unwrap();
    let rooms = [("r", last), ("s", 0), ("t", 0)];
    let mut states = store
        .member_states("ann", Some("ann"), &rooms)
        .await
        .unwrap();
    states.sort_by(|a, b| a.0.cmp(&b.0));
    let names: Vec<&str> = states.iter().map(|(room, _)| room.as_str()).collect();
    assert_eq!(names, ["r", "s"], "not a member of t");
    for (room, state) in &states {
        let one = store.join_state("ann", Some("ann"), room).await.unwrap();
        assert_eq!(
            (
                state.read_seq,
                state.unread,
                state.mentions,
                state.notify,
                &state.draft
            ),
            (
                one.read_seq,
                one.unread,
                one.mentions,
                one.notify,
                &one.draft
            ),
            "{room}"
        );
    }
    assert_eq!((states[0].1.unread, states[0].1.mentions), (2, 1));
    assert_eq!(states[1].1.draft.as_deref(), Some("later"));
    assert!(
        store
            .member_states("ann", None, &[])
            .await
            .unwrap()
            .is_empty()
    );
}

/// What was uploaded, by whom, to which room: read back whole, summed per
/// uploader for the quota, counted per content for the file store.
async fn an_uploaded_file_is_recorded_and_counted_against_its_uploader(t: &Target) {
    let store = t.open().await;
    let file = |id: &str, uploader: &str, size: u64, sha: &str| backend::store::FileRecord {
        id: id.into(),
        room: "r".into(),
        uploader: uploader.into(),
        name: format!("{id}.png"),
        size,
        content_type: "image/png".into(),
        sha256: sha.into(),
        width: Some(640),
        height: None,
        created_at: 7,
        thumb_sha256: None,
    };
    let a = file("a", "ann", 1_000, &"1".repeat(64));
    store.add_file(&a).await.unwrap();
    store
        .add_file(&file("b", "ann", 3_000_000_000, &"2".repeat(64)))
        .await
        .unwrap();
    store
        .add_file(&file("c", "bo", 5, &"1".repeat(64)))
        .await
        .unwrap();
    assert_eq!(store.file("a").await.unwrap(), Some(a));
    assert_eq!(store.file("zz").await.unwrap(), None);
    assert_eq!(
        store.stored_by("ann").await.unwrap(),
        3_000_001_000,
        "past 32 bits"
    );
    assert_eq!(store.stored_by("nobody").await.unwrap(), 0);
    assert_eq!(store.files_with_content(&"1".repeat(64)).await.unwrap(), 2);
    assert_eq!(store.files_with_content(&"3".repeat(64)).await.unwrap(), 0);
}

/// A send claims the sender's own files of the room, all or none, once (a
/// retry claims them again); the message carries them in history; the
/// room's file list shows them; and every way a message goes takes its
/// files with it: a delete, retention, an operator's delete of a user's
/// messages, the room's deletion, and the sweep of files never sent.
async fn a_file_is_sent_once_and_goes_with_its_message(t: &Target) {
    use backend::store::{FileRecord, UNSENT_FILES_KEPT_MS};
    let store = t.open().await;
    for room in ["r", "s"] {
        store.ensure_room(room, "ann", 1).await.unwrap();
    }
    let (ann, bo) = (user("ann"), user("bo"));
    let now = 1_000_000_000;
    let add = async |id: &str, room: &str, uploader: &str| {
        let file = FileRecord {
            id: id.into(),
            room: room.into(),
            uploader: uploader.into(),
            name: format!("{id}.pdf"),
            size: 10,
            content_type: "application/pdf".into(),
            sha256: id.repeat(64)[..64].to_owned(),
            width: None,
            height: None,
            created_at: now,
            thumb_sha256: (id == "a").then(|| "f".repeat(64)),
        };
        store.add_file(&file).await.unwrap();
        file
    };
    let a = add("a", "r", "ann").await;
    let b = add("b", "r", "ann").await;
    add("c", "r", "bo").await;
    add("d", "s", "ann").await;
    add("e", "r", "ann").await;
    let ids = |ids: &[&str]| ids.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let claim = async |room: &str, who: &str, client_id: &str, files: &[&str]| {
        store
            .claim_files(room, who, client_id, &ids(files), now)
            .await
            .unwrap()
            .map(|files| files.into_iter().map(|f| f.id).collect::<Vec<_>>())
    };
    assert_eq!(
        claim("r", "ann", "m1", &["a", "b"]).await,
        Some(ids(&["a", "b"]))
    );
    assert_eq!(
        claim("r", "ann", "m1", &["a", "b"]).await,
        Some(ids(&["a", "b"])),
        "a retry"
    );
    assert_eq!(claim("r", "ann", "m2", &["a"]).await, None, "sent already");
    assert_eq!(claim("r", "ann", "m2", &["c"]).await, None, "bo's");
    assert_eq!(
        claim("r", "ann", "m2", &["d"]).await,
        None,
        "another room's"
    );
    assert_eq!(claim("r", "ann", "m2", &["zz"]).await, None, "no such file");
    assert_eq!(claim("r", "ann", "m2", &["e", "c"]).await, None);
    assert_eq!(
        claim("r", "ann", "m2", &["e"]).await,
        Some(ids(&["e"])),
        "all or none"
    );
    assert_eq!(
        store.files_with_content(&"f".repeat(64)).await.unwrap(),
        1,
        "a thumbnail holds bytes"
    );

    // The message carries its files, in history and in the room's list.
    let infos = vec![a.info(), b.info()];
    assert!(infos[0].thumbnail && !infos[1].thumbnail);
    let sent = store
        .append(NewEntry {
            files: infos.clone(),
            ..entry("r", "id-1", &ann, "", now, "m1")
        })
        .await
        .unwrap();
    assert_eq!(sent.message.files, infos);
    append(&*store, "r", &bo, "m3", now).await;
    let history = store.range("r", 0, 10, 10).await.unwrap();
    assert_eq!(history[0].files, infos);
    assert!(history[1].files.is_empty());
    let listed = store.room_files("r", u64::MAX, 10).await.unwrap();
    let listed: Vec<(&str, u64, &str)> = listed
        .iter()
        .map(|s| (s.file.id.as_str(), s.seq, s.user.id.as_str()))
        .collect();
    assert_eq!(listed, [("a", 1, "ann"), ("b", 1, "ann")]);
    assert!(
        store.room_files("r", 1, 10).await.unwrap().is_empty(),
        "paged by seq"
    );
    // Search finds a message by its files' names.
    let by_name = async |text: &str| {
        let words = backend::store::search_words(text);
        let query = backend::store::SearchQuery {
            user_id: "bo",
            words: &words,
            room: None,
            before: None,
            limit: 10,
        };
        let found = store.search(&query).await.unwrap();
        found.into_iter().map(|m| m.seq).collect::<Vec<_>>()
    };
    assert_eq!(by_name("b.pdf").await, [1]);
    assert_eq!(by_name("pdf").await, [1], "once, though both files match");
    assert_eq!(by_name("of m3").await, [2], "text still found");

    // A delete takes them: not served from that moment.
    store
        .append(NewEntry {
            kind: common::EntryKind::Delete,
            target: Some(1),
            ..entry("r", "id-3", &ann, "", now, "m4")
        })
        .await
        .unwrap();
    assert_eq!(store.file("a").await.unwrap(), None);
    assert_eq!(store.file("b").await.unwrap(), None);
    assert!(
        store.range("r", 0, 1, 10).await.unwrap()[0]
            .files
            .is_empty()
    );
    assert!(
        store
            .room_files("r", u64::MAX, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.files_with_content(&"f".repeat(64)).await.unwrap(), 0);
    assert!(by_name("b.pdf").await.is_empty());

    // "e" was claimed by a send never stored, "d" never sent: kept a day.
    assert_eq!(store.sweep_files(now - 1).await.unwrap(), 0);
    assert!(store.file("e").await.unwrap().is_some());
    assert_eq!(
        store.sweep_files(now + UNSENT_FILES_KEPT_MS).await.unwrap(),
        3
    );
    assert_eq!(store.file("e").await.unwrap(), None);
    assert_eq!(store.file("d").await.unwrap(), None);
    assert!(
        store.file("c").await.unwrap().is_none(),
        "c was never sent either"
    );

    // Retention, an operator's delete and the room's deletion take theirs.
    let sent_with = async |id: &str, room: &str, who: &User, client_id: &str| {
        let file = add(id, room, &who.id).await;
        store
            .claim_files(room, &who.id, client_id, &ids(&[id]), now)
            .await
            .unwrap()
            .unwrap();
        store
            .append(NewEntry {
                files: vec![file.info()],
                ..entry(
                    room,
                    &uuid::Uuid::now_v7().to_string(),
                    who,
                    "here",
                    now,
                    client_id,
                )
            })
            .await
            .unwrap();
    };
    sent_with("g", "r", &ann, "m5").await;
    store.prune(None, Some(now + 1)).await.unwrap();
    assert_eq!(store.file("g").await.unwrap(), None, "retention");
    sent_with("h", "r", &bo, "m6").await;
    sent_with("i", "r", &ann, "m7").await;
    store.delete_user_messages("bo", Some("r")).await.unwrap();
    assert_eq!(store.file("h").await.unwrap(), None, "an operator's delete");
    assert!(store.file("i").await.unwrap().is_some());
    add("j", "r", "ann").await;
    store.delete_room("r", now).await.unwrap();
    assert_eq!(store.file("i").await.unwrap(), None, "the room's deletion");
    assert_eq!(store.file("j").await.unwrap(), None);
}

/// Two messages naming the same upload, sent at once (two tabs, or a
/// client trying it on): raced 200 times, exactly one gets the file each
/// time, and it is that message's for good.
async fn two_sends_racing_for_one_file_claim_it_once(t: &Target) {
    let store = t.open().await;
    store.ensure_room("r", "ann", 1).await.unwrap();
    for i in 0..200 {
        let id = format!("f{i}");
        store
            .add_file(&backend::store::FileRecord {
                id: id.clone(),
                room: "r".into(),
                uploader: "ann".into(),
                name: "x.txt".into(),
                size: 1,
                content_type: "text/plain".into(),
                sha256: "a".repeat(64),
                width: None,
                height: None,
                created_at: 1,
                thumb_sha256: None,
            })
            .await
            .unwrap();
        let ids = [id.clone()];
        let (first, second) = (format!("a{i}"), format!("b{i}"));
        let (a, b) = tokio::join!(
            store.claim_files("r", "ann", &first, &ids, 2),
            store.claim_files("r", "ann", &second, &ids, 2),
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        assert!(
            a.is_some() != b.is_some(),
            "round {i}: exactly one claims it"
        );
        let winner = if a.is_some() { "a" } else { "b" };
        let again = store
            .claim_files("r", "ann", &format!("{winner}{i}"), &ids, 3)
            .await
            .unwrap();
        assert!(
            again.is_some(),
            "round {i}: the winner's retry still has it"
        );
    }
}

/// Two nodes' batches holding the same two rooms, one listing them a-then-b
/// and the other b-then-a, committed at once 100 times: every message of
/// both is stored, gap-free. (With rooms locked in the order they appear,
/// PostgreSQL found a deadlock within a few rounds and aborted one batch,
/// failing all of its sends; the chaos test saw it as a client that never
/// caught up.)
async fn batches_naming_the_same_rooms_in_opposite_orders_both_commit(t: &Target) {
    let (one, two) = (t.open().await, t.open().await);
    one.ensure_room("a", "ann", 1).await.unwrap();
    one.ensure_room("b", "ann", 1).await.unwrap();
    let ann = user("ann");
    // More than `ONE_BY_ONE` per room, so each room is locked as a group.
    let batch = |first: &str, second: &str, round: usize, node: &str| -> Vec<NewEntry> {
        let mut entries = Vec::new();
        for room in [first, second] {
            for k in 0..3 {
                let client_id = format!("{node}-{round}-{room}-{k}");
                let id = uuid::Uuid::now_v7().to_string();
                entries.push(entry(room, &id, &ann, "hi", 1, &client_id));
            }
        }
        entries
    };
    for round in 0..100 {
        let (x, y) = tokio::join!(
            one.append_batch(batch("a", "b", round, "one")),
            two.append_batch(batch("b", "a", round, "two")),
        );
        for (node, results) in [("one", x), ("two", y)] {
            let results = results.unwrap_or_else(|e| panic!("round {round}: {node}'s batch: {e}"));
            for r in results {
                r.unwrap_or_else(|e| panic!("round {round}: a send of {node}'s: {e}"));
            }
        }
    }
    for room in ["a", "b"] {
        let stored = one.range(room, 0, 1000, 1000).await.unwrap();
        assert_eq!(
            seqs(&stored),
            (1..=600).collect::<Vec<u64>>(),
            "room {room}"
        );
    }
}

/// How many migrations this Hearth has (one file each, per database).
fn migrations() -> i64 {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/sqlite");
    std::fs::read_dir(dir).unwrap().count() as i64
}

/// A database made by Hearth's own migration runner (versions in
/// `hearth_schema`) opens with sqlx's: its versions are adopted, nothing
/// runs twice, and everything in it is still there and still works.
async fn a_database_made_before_sqlx_migrations_upgrades_in_place(t: &Target) {
    t.load_old_database().await;
    assert_eq!(t.count("SELECT COUNT(*) FROM hearth_schema").await, 10);
    let store = t.open().await;
    assert_eq!(
        t.count("SELECT COUNT(*) FROM _sqlx_migrations WHERE success")
            .await,
        migrations(),
        "the ten adopted, and the newer ones applied"
    );
    // Migration 11: who wrote in a public room is its member.
    let rooms: Vec<String> = store
        .memberships("u-alice")
        .await
        .unwrap()
        .into_iter()
        .map(|(room, _)| room)
        .collect();
    assert!(rooms.contains(&"lobby".to_owned()), "{rooms:?}");
    let rooms: Vec<String> = store
        .rooms()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.name)
        .collect();
    assert_eq!(rooms, ["lobby", "secret"]);
    let lobby = store.range("lobby", 0, 10, 10).await.unwrap();
    assert_eq!(
        lobby.iter().map(|m| m.content.as_str()).collect::<Vec<_>>(),
        ["hello from the old schema", "deploy failed twice"]
    );
    assert_eq!(read_state(&*store, "u-alice", "lobby").await.0, 1);
    let alice = store
        .credentials("alice")
        .await
        .unwrap()
        .expect("accounts kept");
    assert_eq!(alice.user.id, "u-alice");
    assert!(
        store
            .session("hash-1", 1_700_000_100)
            .await
            .unwrap()
            .is_some()
    );
    let access = store
        .room_access("secret", "u-alice")
        .await
        .unwrap()
        .unwrap();
    assert!(access.role.is_some(), "membership kept");
    let found = store
        .search(&SearchQuery {
            user_id: "u-alice",
            words: &backend::store::search_words("deploy"),
            room: None,
            before: None,
            limit: 10,
        })
        .await
        .unwrap();
    assert_eq!(found.len(), 1, "the search index came along");
    // Seqs continue, and a second start changes nothing.
    drop(store);
    let store = t.open().await;
    let alice_user = alice.user;
    assert_eq!(
        append(&*store, "lobby", &alice_user, "c-new", 20)
            .await
            .message
            .seq,
        3
    );
    assert_eq!(
        t.count("SELECT COUNT(*) FROM _sqlx_migrations").await,
        migrations()
    );
}

/// An operator's `delete-messages USER`: their messages, their reactions
/// to others' messages, and others' reactions to theirs all go.
async fn deleting_a_users_messages_takes_their_reactions_and_those_to_them(t: &Target) {
    use common::EntryKind::React;
    let store = t.open().await;
    store.ensure_room("r", "ann", 1).await.unwrap();
    let (ann, spam) = (user("ann"), user("spam"));
    append(&*store, "r", &ann, "m1", 10).await; // 1
    append(&*store, "r", &spam, "m2", 10).await; // 2
    for (who, target, id) in [(&spam, 1, "x1"), (&ann, 2, "x2"), (&ann, 1, "x3")] {
        store
            .append(change("r", who, React, Some(target), "👍", id))
            .await
            .unwrap();
    }
    assert_eq!(t.count("SELECT COUNT(*) FROM reactions").await, 3);
    store.delete_user_messages("spam", None).await.unwrap();
    let left = store.range("r", 0, 100, 100).await.unwrap();
    assert!(left.iter().all(|m| m.user.id == "ann"));
    assert_eq!(left[0].reactions.len(), 1);
    assert_eq!(
        left[0].reactions[0].users[0].id, "ann",
        "only Ann's own is left"
    );
    assert_eq!(t.count("SELECT COUNT(*) FROM reactions").await, 1);
}

/// Words, stems and a prefix; newest first, paged by id; only rooms the
/// user may read; an edit is found by its new text only; a deleted
/// message is not found, and its words are gone from the index.
async fn search_finds_words_in_readable_rooms_only_and_forgets_deleted_text(t: &Target) {
    use common::EntryKind::{Delete, Edit};
    let store = t.open().await;
    let (ann, bo) = (user("ann"), user("bo"));
    store.ensure_room("ops", "ann", 1).await.unwrap();
    store
        .create_user(&backend::store::NewUser {
            id: "bo",
            username: Some("bo"),
            display_name: "BO",
            password_hash: None,
            created_at_ms: 1,
        })
        .await
        .unwrap();
    store
        .create_room("secret", common::Visibility::Private, "bo", 1)
        .await
        .unwrap();
    let say = |room: &'static str, who: &'static str, text: &'static str, id: &'static str| {
        let store = store.clone();
        async move {
            let who = user(who);
            store
                .append(entry(room, id, &who, text, 10, id))
                .await
                .unwrap()
        }
    };
    say("ops", "ann", "The deployment failed at noon", "00000001").await; // 1
    say("ops", "bo", "deploys are failing again", "00000002").await; // 2
    say("ops", "bo", "lunch?", "00000003").await; // 3
    say("secret", "bo", "the deployment is secret", "00000004").await;
    let find = |who: &'static str,
                q: &'static str,
                room: Option<&'static str>,
                before: Option<&'static str>| {
        let store = store.clone();
        async move {
            store
                .search(&SearchQuery {
                    user_id: who,
                    words: &backend::store::search_words(q),
                    room,
                    before,
                    limit: 10,
                })
                .await
                .unwrap()
                .into_iter()
                .map(|m| m.id)
                .collect::<Vec<_>>()
        }
    };
    // "deploy fail" matches both forms, newest first; not Bo's secret for Ann.
    assert_eq!(
        find("ann", "Deploy FAIL", None, None).await,
        ["00000002", "00000001"]
    );
    assert_eq!(
        find("bo", "deploy", None, None).await,
        ["00000004", "00000002", "00000001"],
        "Bo is a member of his private room"
    );
    assert_eq!(
        find("ann", "deploy", None, Some("00000002")).await,
        ["00000001"]
    );
    assert_eq!(
        find("bo", "deploy", Some("ops"), None).await,
        ["00000002", "00000001"]
    );
    assert_eq!(
        find("ann", "lun", None, None).await,
        ["00000003"],
        "a prefix"
    );
    assert!(
        find("ann", "\"*) OR NEAR(", None, None).await.is_empty(),
        "never a syntax error"
    );
    // Edited: found by the new text only. Deleted: not found at all.
    store
        .append(change(
            "ops",
            &ann,
            Edit,
            Some(1),
            "The rollout worked",
            "e1",
        ))
        .await
        .unwrap();
    assert_eq!(find("ann", "noon", None, None).await, Vec::<String>::new());
    assert_eq!(find("ann", "rollout", None, None).await, ["00000001"]);
    // What a message shows is found, not its syntax: a link's text, never
    // its hidden address; an edit's new link the same way.
    say(
        "ops",
        "ann",
        "see [the runbook](https://hidden.example/x)",
        "00000005",
    )
    .await;
    assert_eq!(find("ann", "runbook", None, None).await, ["00000005"]);
    assert!(find("ann", "hidden", None, None).await.is_empty());
    store
        .append(change(
            "ops",
            &ann,
            Edit,
            Some(5),
            "see [the **manual**](https://elsewhere.example)",
            "e2",
        ))
        .await
        .unwrap();
    assert_eq!(find("ann", "manual", None, None).await, ["00000005"]);
    assert!(find("ann", "runbook", None, None).await.is_empty());
    assert!(find("ann", "elsewhere", None, None).await.is_empty());
    store
        .append(change("ops", &bo, Delete, Some(2), "", "d1"))
        .await
        .unwrap();
    assert!(find("ann", "failing", None, None).await.is_empty());
    if let Target::Sqlite(_) = t {
        // The index itself no longer holds the erased words.
        let left = t
            .count("SELECT COUNT(*) FROM messages_fts WHERE messages_fts MATCH 'failing'")
            .await;
        assert_eq!(left, 0);
    }
}

/// Reacting twice is reacting once; taking a reaction back removes only
/// yours; pages and ranges carry each message's reactions with who made
/// them; a deleted message loses them, and nobody reacts to it.
async fn reactions_are_one_per_person_and_emoji_and_show_in_history(t: &Target) {
    use common::EntryKind::{Delete, React, Unreact};
    let store = t.open().await;
    store.ensure_room("r", "ann", 1).await.unwrap();
    let (ann, bo) = (user("ann"), user("bo"));
    append(&*store, "r", &ann, "m1", 10).await; // 1
    append(&*store, "r", &ann, "m2", 10).await; // 2
    for (who, kind, emoji, id) in [
        (&bo, React, "👍", "r1"),
        (&bo, React, "👍", "r2"), // again: still one
        (&ann, React, "👍", "r3"),
        (&ann, React, "🎉", "r4"),
        (&ann, Unreact, "🎉", "r5"),
        (&bo, React, "❤️", "r6"),
    ] {
        store
            .append(change("r", who, kind, Some(1), emoji, id))
            .await
            .unwrap();
    }
    let page = store.page_before("r", 100, 2).await.unwrap();
    assert_eq!(seqs(&page), [7, 8], "a page of changes has no messages");
    let all = store.range("r", 0, 100, 100).await.unwrap();
    let first = &all[0];
    // (All at the same time here; in order of time otherwise.)
    let mut summary: Vec<(String, Vec<String>)> = first
        .reactions
        .iter()
        .map(|r| {
            let mut who: Vec<String> = r.users.iter().map(|u| u.name.clone()).collect();
            who.sort();
            (r.emoji.clone(), who)
        })
        .collect();
    summary.sort();
    assert_eq!(
        summary,
        [
            ("❤️".to_owned(), vec!["BO".to_owned()]),
            ("👍".to_owned(), vec!["ANN".to_owned(), "BO".to_owned()]),
        ]
    );
    assert!(all[1].reactions.is_empty());
    store
        .append(change("r", &ann, Delete, Some(1), "", "d1"))
        .await
        .unwrap();
    let refused = store
        .append(change("r", &bo, React, Some(1), "👍", "r7"))
        .await;
    assert!(matches!(refused, Err(StoreError::NoSuchMessage)));
    assert!(
        store.range("r", 0, 1, 1).await.unwrap()[0]
            .reactions
            .is_empty()
    );
    assert_eq!(t.count("SELECT COUNT(*) FROM reactions").await, 0);
}

fn change<'a>(
    room: &'a str,
    who: &'a User,
    kind: common::EntryKind,
    target: Option<u64>,
    content: &'a str,
    client_id: &'a str,
) -> NewEntry {
    let id: &'static str = Box::leak(uuid::Uuid::now_v7().to_string().into_boxed_str());
    NewEntry {
        kind,
        target,
        ..entry(room, id, who, content, 20, client_id)
    }
}

/// Edits and topics take seqs of their own; history pages and ranges show
/// messages as they are now; a change that has nothing to change is
/// refused and takes no seq; a retried change is applied once.
async fn changes_are_entries_of_the_log_and_history_shows_the_current_state(t: &Target) {
    use common::EntryKind::{Edit, Message, Topic};
    let store = t.open().await;
    store.ensure_room("r", "ann", 1).await.unwrap();
    let (ann, bo) = (user("ann"), user("bo"));
    append(&*store, "r", &ann, "m1", 10).await;
    let reply = store
        .append(NewEntry {
            reply_to: Some(1),
            ..entry("r", "id-2", &bo, "answer", 11, "m2")
        })
        .await
        .unwrap();
    assert_eq!(reply.message.reply_to, Some(1));
    let edit = store
        .append(change("r", &ann, Edit, Some(1), "new text", "e1"))
        .await
        .unwrap();
    assert_eq!((edit.message.seq, edit.message.kind), (3, Edit));
    // The same edit again (a retry): the original, applied once.
    let again = store
        .append(change("r", &ann, Edit, Some(1), "new text", "e1"))
        .await
        .unwrap();
    assert!(again.duplicate);
    assert_eq!(again.message.seq, 3);
    // Bo may not edit Ann's message; nobody edits an edit or a missing one.
    for (who, target) in [(&bo, 1), (&ann, 3), (&ann, 99)] {
        let refused = store
            .append(change("r", who, Edit, Some(target), "x", "e-bad"))
            .await;
        assert!(
            matches!(refused, Err(StoreError::NoSuchMessage)),
            "{refused:?}"
        );
    }
    assert_eq!(
        store.last_seqs(&["r"]).await.unwrap(),
        [("r".to_owned(), 3)],
        "refusals take no seq"
    );
    store
        .append(change("r", &ann, Topic, None, "Plans for May", "t1"))
        .await
        .unwrap();
    let all = store.range("r", 0, 10, 10).await.unwrap();
    assert_eq!(seqs(&all), [1, 2, 3, 4], "gap-free across kinds");
    assert_eq!(all[0].content, "new text");
    assert_eq!(all[0].edited, Some(20));
    assert_eq!(all[0].kind, Message);
    assert_eq!(all[1].reply_to, Some(1));
    assert_eq!((all[2].kind, all[2].target), (Edit, Some(1)));
    assert_eq!(
        (all[3].kind, all[3].content.as_str()),
        (Topic, "Plans for May")
    );
    assert_eq!(store.page_before("r", 5, 10).await.unwrap(), all);
    let joining = store.join_state("bo", None, "r").await.unwrap();
    assert_eq!(joining.topic, "Plans for May");
    // Ann's message is unread for Bo; her edit and topic are not news.
    assert_eq!(joining.unread, 1);
}

/// A delete erases the text (and the earlier texts its edits kept); only
/// the author, or a moderator, deletes; a deleted message is not edited.
async fn a_delete_removes_the_text_for_good(t: &Target) {
    use common::EntryKind::{Delete, Edit};
    let store = t.open().await;
    store.ensure_room("r", "ann", 1).await.unwrap();
    let (ann, bo, mod_) = (user("ann"), user("bo"), user("mod"));
    append(&*store, "r", &ann, "m1", 10).await; // 1
    append(&*store, "r", &bo, "m2", 10).await; // 2
    store
        .append(change("r", &ann, Edit, Some(1), "secret v2", "e1"))
        .await
        .unwrap(); // 3
    let refused = store
        .append(change("r", &bo, Delete, Some(1), "", "d-bad"))
        .await;
    assert!(matches!(refused, Err(StoreError::NoSuchMessage)));
    let deleted = store
        .append(change("r", &ann, Delete, Some(1), "", "d1"))
        .await
        .unwrap();
    assert_eq!(deleted.message.seq, 4);
    // A moderator deletes Bo's.
    store
        .append(NewEntry {
            moderator: true,
            ..change("r", &mod_, Delete, Some(2), "", "d2")
        })
        .await
        .unwrap();
    let refused = store
        .append(change("r", &ann, Edit, Some(1), "back", "e2"))
        .await;
    assert!(matches!(refused, Err(StoreError::NoSuchMessage)));
    let all = store.range("r", 0, 10, 10).await.unwrap();
    assert_eq!(seqs(&all), [1, 2, 3, 4, 5]);
    assert!(all[0].deleted && all[0].content.is_empty());
    assert!(all[1].deleted && all[1].content.is_empty());
    assert_eq!(all[2].content, "", "the edit's text went with the message");
    // Not hidden: gone from the database itself.
    let left = t
        .count("SELECT COUNT(*) FROM messages WHERE content LIKE '%secret%' OR content LIKE '%content of m%'")
        .await;
    assert_eq!(left, 0);
    assert_eq!(store.join_state("ann", None, "r").await.unwrap().unread, 0);
}

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
    t.exec("DELETE FROM _sqlx_migrations WHERE version >= 4")
        .await;
    for undo in [
        "DROP TABLE leases",
        "DROP TABLE webhook_cursors",
        "DROP TABLE webhooks",
    ] {
        t.exec(undo).await; // 19
    }
    // 12 (`room_members.notify`) goes with `room_members`, dropped below.
    t.exec("ALTER TABLE messages DROP COLUMN files").await; // 17 (and 16, 17 below)
    t.exec("DROP TABLE files").await; // 16
    if let Target::Postgres { .. } = t {
        t.exec("DROP TABLE file_chunks").await;
    }
    t.exec("DROP TABLE departures").await; // 15
    t.exec("ALTER TABLE rooms DROP COLUMN deleted_at").await; // 10
    // 9
    match t {
        Target::Sqlite(_) => {
            for undo in [
                "DROP TRIGGER messages_fts_insert",
                "DROP TRIGGER messages_fts_delete",
                "DROP TRIGGER messages_fts_update",
                "DROP TABLE messages_fts",
            ] {
                t.exec(undo).await;
            }
        }
        Target::Postgres { .. } => t.exec("ALTER TABLE messages DROP COLUMN search").await,
    }
    // 18 (its triggers and its `search` went with 9's above)
    t.exec("ALTER TABLE messages DROP COLUMN search_text").await;
    t.exec("DROP TABLE ws_tickets").await; // 5
    for undo in [
        "DROP TABLE reactions", // 8
        "DROP INDEX messages_target",
        "ALTER TABLE messages DROP COLUMN kind",
        "ALTER TABLE messages DROP COLUMN target",
        "ALTER TABLE messages DROP COLUMN reply_to",
        "ALTER TABLE messages DROP COLUMN edited_at",
        "ALTER TABLE messages DROP COLUMN deleted_at",
        "ALTER TABLE rooms DROP COLUMN topic",
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
    assert_eq!(read_state(&*store, "a", "team").await, (1, 0));
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
    assert_eq!(read_state(&*store, "a", "r").await, (0, 2), "b's two");
    store.mark_read("a", "r", 3).await.unwrap();
    store.mark_read("a", "r", 1).await.unwrap();
    assert_eq!(read_state(&*store, "a", "r").await, (3, 0));
    assert_eq!(
        read_state(&*store, "b", "r").await,
        (0, 2),
        "a's two; per user"
    );
    // Several at once, in one transaction: the same rules.
    let batch = [("a", "r", 2), ("b", "r", 4), ("c", "r", 1)];
    store.mark_read_batch(&batch).await.unwrap();
    assert_eq!(read_state(&*store, "a", "r").await, (3, 0), "never back");
    assert_eq!(read_state(&*store, "b", "r").await, (4, 0));
    assert_eq!(read_state(&*store, "c", "r").await.0, 1);
    store.mark_read_batch(&[]).await.unwrap();
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
        .append(entry("nowhere", "i", &user("u1"), "c", 1, "c"))
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
    let message = |room: &'static str, who: &'static User, client_id: &'static str| {
        entry(
            room,
            Box::leak(uuid::Uuid::now_v7().to_string().into_boxed_str()),
            who,
            "hello",
            1,
            client_id,
        )
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
    let results = store.append_batch(batch.to_vec()).await.unwrap();
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
    let mut last = store.last_seqs(&["a", "b", "ghost"]).await.unwrap();
    last.sort();
    assert_eq!(
        last,
        [("a".to_owned(), 3), ("b".to_owned(), 1)],
        "each room that exists, once"
    );
    // The seq the duplicate took was given back: the next one follows on.
    assert_eq!(
        append(store.as_ref(), "a", bo, "c2", 2).await.message.seq,
        4
    );
    // A batch larger than one INSERT statement holds, with a retry of an
    // earlier message in the middle: still one seq per new message.
    let big: Vec<NewEntry> = (0..250)
        .map(|i| {
            let client_id = if i == 120 {
                "c1"
            } else {
                Box::leak(format!("m{i}").into_boxed_str())
            };
            message("b", ann, client_id)
        })
        .collect();
    let results = store.append_batch(big).await.unwrap();
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

    // Retries at the very start and the very end of a batch's list of
    // client ids are found too (each run-time parameter is bound to its
    // own value: a list shifted by one would miss the last).
    let edges: Vec<NewEntry> = ["m2", "fresh-1", "fresh-2", "m249"]
        .into_iter()
        .map(|client_id| message("b", ann, client_id))
        .collect();
    let results = store.append_batch(edges).await.unwrap();
    let duplicates: Vec<bool> = results
        .iter()
        .map(|r| r.as_ref().unwrap().duplicate)
        .collect();
    assert_eq!(duplicates, [true, false, false, true]);
    let seqs_of: Vec<u64> = results
        .iter()
        .map(|r| r.as_ref().unwrap().message.seq)
        .collect();
    assert_eq!(seqs_of, [4, 251, 252, 250]);
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
                    .append(entry(&room, &id, &who, "x", 1, "c"))
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
