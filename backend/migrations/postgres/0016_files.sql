-- Files people upload to a room (docs/protocol.md, "Files"): what was
-- uploaded, by whom, to which room. The bytes are kept by content (the
-- SHA-256, `sha256`) in the file store: the data dir, or PostgreSQL's
-- `file_chunks` (below, for PostgreSQL only).
CREATE TABLE files (
    id TEXT PRIMARY KEY,
    room TEXT NOT NULL,
    uploader TEXT NOT NULL,
    name TEXT NOT NULL,
    size BIGINT NOT NULL,
    content_type TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    width BIGINT,
    height BIGINT,
    created_at BIGINT NOT NULL
);
-- A user's quota, and who else holds the same bytes.
CREATE INDEX files_by_uploader ON files (uploader);
CREATE INDEX files_by_content ON files (sha256);
-- The bytes themselves when the file store is PostgreSQL (shared by every
-- node): in chunks of at most 256 KiB, so no row is large and a download
-- streams.
CREATE TABLE file_chunks (
    sha256 TEXT NOT NULL,
    n BIGINT NOT NULL,
    data BYTEA NOT NULL,
    PRIMARY KEY (sha256, n)
);
