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
];

/// 2: one row that the health probe rewrites, to learn whether the store
/// takes writes again after a failure.
const PROBE_TABLE: &str = "CREATE TABLE hearth_probe (id INTEGER PRIMARY KEY, at BIGINT NOT NULL);";

/// 3: how far each user has read each room (unread counts, every tab).
const READ_MARKS: &str = "CREATE TABLE read_marks (user_id TEXT NOT NULL, room TEXT NOT NULL, \
    seq BIGINT NOT NULL, PRIMARY KEY (user_id, room));";
