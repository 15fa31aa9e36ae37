-- The transactional outbox (shadowsync_common::outbox), joining the migration history.
-- IF NOT EXISTS: stores created before this migration already have the table, which services
-- used to create at start-up outside the history. The statements after this header must stay
-- equal to shadowsync_common::outbox::schema_ddl (a test compares them).
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    destination TEXT NOT NULL,
    routing_key TEXT NOT NULL DEFAULT '',
    message_id TEXT NOT NULL,
    message_type TEXT NOT NULL,
    payload BLOB NOT NULL,
    priority INTEGER NOT NULL DEFAULT 0,
    traceparent TEXT,
    not_before INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    locked_until INTEGER,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    sent_at INTEGER
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (not_before) WHERE sent_at IS NULL;
