//! A minimal, embedded migration runner: numbered SQL scripts per database,
//! applied in order at start, each in its own transaction, recorded in
//! `hearth_schema`. Embedded (not read from disk) so the binary is all an
//! operator needs.

pub const SQLITE: &[&str] = &[
    r#"
CREATE TABLE rooms (
    name TEXT PRIMARY KEY,
    created_at INTEGER NOT NULL,
    created_by TEXT NOT NULL,
    last_seq INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE messages (
    room TEXT NOT NULL REFERENCES rooms(name),
    seq INTEGER NOT NULL,
    id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    user_name TEXT NOT NULL,
    content TEXT NOT NULL,
    ts INTEGER NOT NULL,
    client_id TEXT NOT NULL,
    PRIMARY KEY (room, seq)
);
CREATE UNIQUE INDEX messages_client_id ON messages (room, user_id, client_id);
CREATE INDEX messages_ts ON messages (ts);
"#,
    PROBE_TABLE,
    READ_MARKS,
    LOWERCASE_ROOMS,
    WS_TICKETS,
    ACCOUNTS,
    API_KEYS,
    EVENT_LOG,
    SQLITE_SEARCH,
    DELETED_AT,
];

pub const POSTGRES: &[&str] = &[
    r#"
CREATE TABLE rooms (
    name TEXT PRIMARY KEY,
    created_at BIGINT NOT NULL,
    created_by TEXT NOT NULL,
    last_seq BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE messages (
    room TEXT NOT NULL REFERENCES rooms(name),
    seq BIGINT NOT NULL,
    id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    user_name TEXT NOT NULL,
    content TEXT NOT NULL,
    ts BIGINT NOT NULL,
    client_id TEXT NOT NULL,
    PRIMARY KEY (room, seq)
);
CREATE UNIQUE INDEX messages_client_id ON messages (room, user_id, client_id);
CREATE INDEX messages_ts ON messages (ts);
"#,
    PROBE_TABLE,
    READ_MARKS,
    LOWERCASE_ROOMS,
    WS_TICKETS,
    ACCOUNTS,
    API_KEYS,
    EVENT_LOG,
    POSTGRES_SEARCH,
    DELETED_AT,
];

/// 2: one row that the health probe rewrites, to learn whether the store
/// takes writes again after a failure.
const PROBE_TABLE: &str = "CREATE TABLE hearth_probe (id INTEGER PRIMARY KEY, at BIGINT NOT NULL);";

/// 3: how far each user has read each room (unread counts, every tab).
const READ_MARKS: &str = "CREATE TABLE read_marks (user_id TEXT NOT NULL, room TEXT NOT NULL, \
    seq BIGINT NOT NULL, PRIMARY KEY (user_id, room));";

/// 4: room names became case-insensitive. Each room with capitals moves to
/// its lowercase name, messages and read positions with it. Where that name
/// is taken (a "General" beside a "general"), it moves to a name of its own
/// instead (`general-<digits>`), so no history is merged or lost. Portable
/// SQL: the same script runs on SQLite and PostgreSQL, in one transaction.
const LOWERCASE_ROOMS: &str = "
CREATE TEMPORARY TABLE room_renames AS
SELECT r.name AS old,
       CASE WHEN EXISTS (SELECT 1 FROM rooms o WHERE o.name = lower(r.name))
              OR EXISTS (SELECT 1 FROM rooms o
                         WHERE lower(o.name) = lower(r.name) AND o.name <> r.name
                           AND (o.created_at < r.created_at
                                OR (o.created_at = r.created_at AND o.name < r.name)))
            THEN substr(lower(r.name), 1, 57) || '-' || CAST(r.created_at % 1000000 AS TEXT)
            ELSE lower(r.name)
       END AS new
FROM rooms r
WHERE r.name <> lower(r.name);
INSERT INTO rooms (name, created_at, created_by, last_seq)
SELECT n.new, r.created_at, r.created_by, r.last_seq FROM rooms r JOIN room_renames n ON n.old = r.name;
UPDATE messages SET room = (SELECT n.new FROM room_renames n WHERE n.old = messages.room)
WHERE room IN (SELECT old FROM room_renames);
UPDATE read_marks SET room = (SELECT n.new FROM room_renames n WHERE n.old = read_marks.room)
WHERE room IN (SELECT old FROM room_renames);
DELETE FROM rooms WHERE name IN (SELECT old FROM room_renames);
DROP TABLE room_renames;
";

/// 5: one-time WebSocket tickets (stored hashed), shared by every node so a
/// ticket from one node opens a socket on another.
const WS_TICKETS: &str = "CREATE TABLE ws_tickets (hash TEXT PRIMARY KEY, user_id TEXT NOT NULL, \
    user_name TEXT NOT NULL, token_expires BIGINT NOT NULL, expires_at BIGINT NOT NULL);";

/// 6: accounts, revocable sessions and room membership. Sessions are
/// opaque random tokens, kept as their SHA-256 (see `auth.rs`); a revoked
/// session keeps its row (`revoked_at`) so every node can learn of the
/// revocation by polling, even if it missed the broker's event. Tickets now
/// name a session, so a ticket dies with its session. The name-only tokens
/// of earlier versions were signed, not stored: with this migration they
/// stop working, and their holders sign in again. Portable SQL.
const ACCOUNTS: &str = "
CREATE TABLE users (
    id TEXT PRIMARY KEY,
    username TEXT UNIQUE,
    display_name TEXT NOT NULL,
    password_hash TEXT,
    created_at BIGINT NOT NULL
);
CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    user_id TEXT NOT NULL REFERENCES users(id),
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_revoked ON sessions (revoked_at);
CREATE TABLE room_members (
    room TEXT NOT NULL REFERENCES rooms(name),
    user_id TEXT NOT NULL REFERENCES users(id),
    role TEXT NOT NULL,
    added_at BIGINT NOT NULL,
    PRIMARY KEY (room, user_id)
);
CREATE INDEX room_members_user ON room_members (user_id);
ALTER TABLE rooms ADD COLUMN visibility TEXT NOT NULL DEFAULT 'public';
ALTER TABLE messages ADD COLUMN username TEXT;
DROP TABLE ws_tickets;
CREATE TABLE ws_tickets (
    hash TEXT PRIMARY KEY,
    session_id TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
";

/// 9: full-text search (`store/search.rs`). SQLite: an FTS5 index of
/// messages' words (no stemming: see `search.rs`), kept by triggers as messages are
/// added, edited, deleted (their text erased) and pruned; `secure-delete`
/// so an erased text leaves nothing in the index. PostgreSQL: a generated
/// `tsvector` column with a GIN index.
const SQLITE_SEARCH: &str = "
CREATE VIRTUAL TABLE messages_fts USING fts5(
    content, content = 'messages', content_rowid = 'rowid', tokenize = 'unicode61'
);
INSERT INTO messages_fts (messages_fts, rank) VALUES ('secure-delete', 1);
CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages WHEN new.kind = 'message' BEGIN
    INSERT INTO messages_fts (rowid, content) VALUES (new.rowid, new.content);
END;
CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages WHEN old.kind = 'message' BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, content) VALUES ('delete', old.rowid, old.content);
END;
CREATE TRIGGER messages_fts_update AFTER UPDATE OF content ON messages WHEN old.kind = 'message' BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, content) VALUES ('delete', old.rowid, old.content);
    INSERT INTO messages_fts (rowid, content) VALUES (new.rowid, new.content);
END;
INSERT INTO messages_fts (rowid, content) SELECT rowid, content FROM messages WHERE kind = 'message';
";

const POSTGRES_SEARCH: &str = "
ALTER TABLE messages ADD COLUMN search tsvector
    GENERATED ALWAYS AS (to_tsvector('simple', content)) STORED;
CREATE INDEX messages_search ON messages USING GIN (search);
";

/// 10: when a room was deleted, so that every node can unload it at once
/// (`Operations::deleted_rooms_since`); and a deleted room keeps nothing
/// but its name and seq: the topics of rooms deleted before are erased.
/// Portable SQL.
const DELETED_AT: &str = "
ALTER TABLE rooms ADD COLUMN deleted_at BIGINT;
UPDATE rooms SET topic = '' WHERE visibility = 'deleted';
";

/// 8: changes are entries of the room's log (`common::EntryKind`): `kind`
/// says which, `target` is the message an edit or delete changes, and
/// `reply_to` the message a message answers. A message row holds its
/// current state: its latest text, when it was last edited, and whether
/// (when) it was deleted; its reactions are rows of `reactions`. Rooms get
/// a topic. Portable SQL.
const EVENT_LOG: &str = "
ALTER TABLE messages ADD COLUMN kind TEXT NOT NULL DEFAULT 'message';
ALTER TABLE messages ADD COLUMN target BIGINT;
ALTER TABLE messages ADD COLUMN reply_to BIGINT;
ALTER TABLE messages ADD COLUMN edited_at BIGINT;
ALTER TABLE messages ADD COLUMN deleted_at BIGINT;
CREATE INDEX messages_target ON messages (room, target) WHERE target IS NOT NULL;
ALTER TABLE rooms ADD COLUMN topic TEXT NOT NULL DEFAULT '';
CREATE TABLE reactions (
    room TEXT NOT NULL,
    target BIGINT NOT NULL,
    emoji TEXT NOT NULL,
    user_id TEXT NOT NULL,
    user_name TEXT NOT NULL,
    added_at BIGINT NOT NULL,
    PRIMARY KEY (room, target, emoji, user_id)
);
";

/// 7: API keys for the publish API, kept as the SHA-256 of the key (like
/// sessions), with the name their messages are sent under and the rooms
/// they may post to (`*` or names separated by spaces). A revoked key keeps
/// its row, so `hearth admin api-keys` still shows it. Portable SQL.
const API_KEYS: &str = "
CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    key_hash TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    rooms TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);
";
