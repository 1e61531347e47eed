-- Outgoing webhooks (`hearth admin webhook`): where to POST the new entries
-- of which rooms (`*` or names separated by spaces, as API keys keep them),
-- signed with `secret`, kept as given because it signs every delivery.
-- `changes` (0 or 1): edits, deletes, topics and reactions too.
--
-- Delivery state is the webhook's, not a room's: a receiver that fails is
-- retried as a whole. `failures` in a row since `failing_since`, the next
-- attempt not before `next_attempt_at`, the last `last_error`, and
-- `paused_at` once it has failed for too long (until `hearth admin webhook
-- resume`). Portable SQL.
CREATE TABLE webhooks (
    id TEXT PRIMARY KEY,
    url TEXT NOT NULL,
    rooms TEXT NOT NULL,
    secret TEXT NOT NULL,
    changes BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    failures BIGINT NOT NULL DEFAULT 0,
    failing_since BIGINT,
    next_attempt_at BIGINT NOT NULL DEFAULT 0,
    last_error TEXT,
    paused_at BIGINT
);

-- How far a webhook has delivered a room: every entry up to
-- `delivered_seq` was delivered (or was not one for it). A room without a
-- row was made after the webhook: it is delivered from its first entry.
CREATE TABLE webhook_cursors (
    webhook TEXT NOT NULL,
    room TEXT NOT NULL,
    delivered_seq BIGINT NOT NULL,
    PRIMARY KEY (webhook, room)
);

-- A job that one node of several does alone (delivering one webhook), and
-- which node holds it until when: another takes it once it has expired.
CREATE TABLE leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
