-- What of a room's messages notify a member (all, mentions, mute); NULL:
-- the default for the room (common::Notify::default_for).
ALTER TABLE room_members ADD COLUMN notify TEXT;
