-- Search indexes what a message says, not its formatting: `search_text`
-- is the message's plain text (docs/protocol.md, "Formatting") when it
-- differs from `content` (NULL when they are the same, as for most
-- messages), so `**bold**` is found by "bold" and a link's hidden address
-- is not found at all. Rows from before keep their content indexed.
ALTER TABLE messages ADD COLUMN search_text TEXT;
ALTER TABLE messages DROP COLUMN search;
ALTER TABLE messages ADD COLUMN search tsvector
    GENERATED ALWAYS AS (to_tsvector('simple', COALESCE(search_text, content))) STORED;
CREATE INDEX messages_search ON messages USING GIN (search);
