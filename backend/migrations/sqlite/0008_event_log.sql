-- changes are entries of the room's log (`common::EntryKind`): `kind`
-- says which, `target` is the message an edit or delete changes, and
-- `reply_to` the message a message answers. A message row holds its
-- current state: its latest text, when it was last edited, and whether
-- (when) it was deleted; its reactions are rows of `reactions`. Rooms get
-- a topic. Portable SQL.
ALTER TABLE messages ADD COLUMN kind TEXT NOT NULL DEFAULT 'message';
ALTER TABLE messages ADD COLUMN target BIGINT;
ALTER TABLE messages ADD COLUMN reply_to BIGINT;
ALTER TABLE messages ADD COLUMN edited_at BIGINT;
ALTER TABLE messages ADD COLUMN deleted_at BIGINT;
CREATE INDEX messages_target ON messages (room, target) WHERE target IS NOT NULL;
ALTER TABLE rooms ADD COLUMN topic TEXT NOT NULL DEFAULT '';
CREATE TABLE reactions (
    room TEXT NOT NULL,
    target BIGINT NOT NULL,
    emoji TEXT NOT NULL,
    user_id TEXT NOT NULL,
    user_name TEXT NOT NULL,
    added_at BIGINT NOT NULL,
    PRIMARY KEY (room, target, emoji, user_id)
);
