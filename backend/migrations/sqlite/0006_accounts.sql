-- accounts, revocable sessions and room membership. Sessions are
-- opaque random tokens, kept as their SHA-256 (see `auth.rs`); a revoked
-- session keeps its row (`revoked_at`) so every node can learn of the
-- revocation by polling, even if it missed the broker's event. Tickets now
-- name a session, so a ticket dies with its session. The name-only tokens
-- of earlier versions were signed, not stored: with this migration they
-- stop working, and their holders sign in again. Portable SQL.
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
