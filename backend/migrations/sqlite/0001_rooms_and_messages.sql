-- rooms and their messages; seq is per room.
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
