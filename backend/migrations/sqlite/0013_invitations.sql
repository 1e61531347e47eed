-- Who invited a member to a private room, while the invitation is not yet
-- taken up (joining the room takes it up; leaving declines it). NULL: a
-- member who joined, or accepted.
ALTER TABLE room_members ADD COLUMN invited_by TEXT;
