-- full-text search (`store/search.rs`). SQLite: an FTS5 index of
-- messages' words (no stemming: see `search.rs`), kept by triggers as messages are
-- added, edited, deleted (their text erased) and pruned; `secure-delete`
-- so an erased text leaves nothing in the index. PostgreSQL: a generated
-- `tsvector` column with a GIN index.
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
