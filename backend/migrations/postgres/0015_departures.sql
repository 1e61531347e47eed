-- Who left a room, or was removed from it, and is not a member again
-- since: a device that was offline then and resumes the room on
-- reconnecting is told it left (common::ServerMsg::Left), rather than
-- making its user a member again. `why` is 'left' or 'removed'. Joining
-- the room again (afresh) clears it; deleting the room does too.
CREATE TABLE departures (
    room TEXT NOT NULL,
    user_id TEXT NOT NULL,
    why TEXT NOT NULL,
    at BIGINT NOT NULL,
    PRIMARY KEY (room, user_id)
);
