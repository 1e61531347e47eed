-- one-time WebSocket tickets (stored hashed), shared by every node so a
-- ticket from one node opens a socket on another.
CREATE TABLE ws_tickets (hash TEXT PRIMARY KEY, user_id TEXT NOT NULL, user_name TEXT NOT NULL, token_expires BIGINT NOT NULL, expires_at BIGINT NOT NULL);
