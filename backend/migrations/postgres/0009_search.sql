-- full-text search (`store/search.rs`). SQLite: an FTS5 index of
-- messages' words (no stemming: see `search.rs`), kept by triggers as messages are
-- added, edited, deleted (their text erased) and pruned; `secure-delete`
-- so an erased text leaves nothing in the index. PostgreSQL: a generated
-- `tsvector` column with a GIN index.
ALTER TABLE messages ADD COLUMN search tsvector
    GENERATED ALWAYS AS (to_tsvector('simple', content)) STORED;
CREATE INDEX messages_search ON messages USING GIN (search);
