-- how far each user has read each room (unread counts, every tab).
CREATE TABLE read_marks (user_id TEXT NOT NULL, room TEXT NOT NULL, seq BIGINT NOT NULL, PRIMARY KEY (user_id, room));
