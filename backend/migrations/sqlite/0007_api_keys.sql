-- API keys for the publish API, kept as the SHA-256 of the key (like
-- sessions), with the name their messages are sent under and the rooms
-- they may post to (`*` or names separated by spaces). A revoked key keeps
-- its row, so `hearth admin api-keys` still shows it. Portable SQL.
CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    key_hash TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    rooms TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);
