-- Rooms belong to the account: joining a public room makes you a member
-- (before, only private rooms and direct conversations had members). The
-- people who already wrote in a public room, or read it (a read mark), are
-- made its members, so that it is one of their rooms on every device.
INSERT INTO room_members (room, user_id, role, added_at)
SELECT seen.room, seen.user_id, 'member', MIN(seen.at)
FROM (
    SELECT m.room AS room, m.user_id AS user_id, m.ts AS at
    FROM messages m
    WHERE m.kind = 'message'
    UNION ALL
    SELECT rm.room, rm.user_id, 0
    FROM read_marks rm
) AS seen
JOIN rooms r ON r.name = seen.room AND r.visibility = 'public'
JOIN users u ON u.id = seen.user_id
WHERE TRUE
GROUP BY seen.room, seen.user_id
ON CONFLICT (room, user_id) DO NOTHING;
