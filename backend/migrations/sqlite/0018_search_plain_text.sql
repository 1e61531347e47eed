-- Search indexes what a message says, not its formatting: `search_text`
-- is the message's plain text (docs/protocol.md, "Formatting") when it
-- differs from `content` (NULL when they are the same, as for most
-- messages), so `**bold**` is found by "bold" and a link's hidden address
-- is not found at all. The index is rebuilt from what it is given; rows
-- from before keep their content indexed (they have no search_text).
ALTER TABLE messages ADD COLUMN search_text TEXT;
DROP TRIGGER messages_fts_insert;
DROP TRIGGER messages_fts_delete;
DROP TRIGGER messages_fts_update;
CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages WHEN new.kind = 'message' BEGIN
    INSERT INTO messages_fts (rowid, content) VALUES (new.rowid, COALESCE(new.search_text, new.content));
END;
CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages WHEN old.kind = 'message' BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, content)
        VALUES ('delete', old.rowid, COALESCE(old.search_text, old.content));
END;
CREATE TRIGGER messages_fts_update AFTER UPDATE OF content, search_text ON messages
    WHEN old.kind = 'message' BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, content)
        VALUES ('delete', old.rowid, COALESCE(old.search_text, old.content));
    INSERT INTO messages_fts (rowid, content) VALUES (new.rowid, COALESCE(new.search_text, new.content));
END;
