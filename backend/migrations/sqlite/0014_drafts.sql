-- What a member typed in a room and has not sent, kept for their account
-- so that another device shows it (NULL: nothing).
ALTER TABLE room_members ADD COLUMN draft TEXT;
