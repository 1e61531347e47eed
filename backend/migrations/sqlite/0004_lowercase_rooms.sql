-- room names became case-insensitive. Each room with capitals moves to
-- its lowercase name, messages and read positions with it. Where that name
-- is taken (a "General" beside a "general"), it moves to a name of its own
-- instead (`general-<digits>`), so no history is merged or lost. Portable
-- SQL: the same script runs on SQLite and PostgreSQL, in one transaction.
CREATE TEMPORARY TABLE room_renames AS
SELECT r.name AS old,
       CASE WHEN EXISTS (SELECT 1 FROM rooms o WHERE o.name = lower(r.name))
              OR EXISTS (SELECT 1 FROM rooms o
                         WHERE lower(o.name) = lower(r.name) AND o.name <> r.name
                           AND (o.created_at < r.created_at
                                OR (o.created_at = r.created_at AND o.name < r.name)))
            THEN substr(lower(r.name), 1, 57) || '-' || CAST(r.created_at % 1000000 AS TEXT)
            ELSE lower(r.name)
       END AS new
FROM rooms r
WHERE r.name <> lower(r.name);
INSERT INTO rooms (name, created_at, created_by, last_seq)
SELECT n.new, r.created_at, r.created_by, r.last_seq FROM rooms r JOIN room_renames n ON n.old = r.name;
UPDATE messages SET room = (SELECT n.new FROM room_renames n WHERE n.old = messages.room)
WHERE room IN (SELECT old FROM room_renames);
UPDATE read_marks SET room = (SELECT n.new FROM room_renames n WHERE n.old = read_marks.room)
WHERE room IN (SELECT old FROM room_renames);
DELETE FROM rooms WHERE name IN (SELECT old FROM room_renames);
DROP TABLE room_renames;
