-- when a room was deleted, so that every node can unload it at once
-- (`Operations::deleted_rooms_since`); and a deleted room keeps nothing
-- but its name and seq: the topics of rooms deleted before are erased.
-- Portable SQL.
ALTER TABLE rooms ADD COLUMN deleted_at BIGINT;
UPDATE rooms SET topic = '' WHERE visibility = 'deleted';
