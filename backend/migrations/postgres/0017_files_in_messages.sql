-- Messages carry files (docs/protocol.md, "Files"). A message's files are
-- kept with it as JSON (`messages.files`: what history and search show,
-- read with the row), and each file records the message that sent it:
-- `claimed_by` is that message's `client_id` (with `room` and `uploader`,
-- the message's key), set when the send is checked, so a file is sent
-- once, a retried send (same `client_id`) sends it again, and deleting the
-- message finds its files. A file's thumbnail (an image's) is kept by
-- content like the file. A kept file records when it was last stored
-- (`file_chunks.stored_at` of its first chunk): the sweep that removes
-- bytes no file refers to leaves the fresh ones to uploads in progress.
ALTER TABLE messages ADD COLUMN files TEXT;
ALTER TABLE files ADD COLUMN claimed_by TEXT;
ALTER TABLE files ADD COLUMN claimed_at BIGINT;
ALTER TABLE files ADD COLUMN thumb_sha256 TEXT;
CREATE INDEX files_by_message ON files (room, uploader, claimed_by);
CREATE INDEX files_by_thumb ON files (thumb_sha256);
ALTER TABLE file_chunks ADD COLUMN stored_at BIGINT NOT NULL DEFAULT 0;
