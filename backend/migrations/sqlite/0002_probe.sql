-- one row that the health probe rewrites, to learn whether the store
-- takes writes again after a failure.
CREATE TABLE hearth_probe (id INTEGER PRIMARY KEY, at BIGINT NOT NULL);
