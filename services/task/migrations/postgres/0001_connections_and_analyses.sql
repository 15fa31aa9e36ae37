-- Connections: target databases. The password is AES-256-GCM ciphertext (nonce || sealed bytes),
-- never plain text.
CREATE TABLE connections (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    dialect BIGINT NOT NULL,
    host TEXT NOT NULL,
    port BIGINT NOT NULL,
    username TEXT NOT NULL,
    password_ciphertext BYTEA,
    environment TEXT NOT NULL,
    options TEXT NOT NULL,
    creator TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX connections_name ON connections (name);

-- Idempotency keys of mutating calls, scoped to (caller, rpc) and kept 24 h.
CREATE TABLE request_ids (
    caller TEXT NOT NULL,
    rpc TEXT NOT NULL,
    request_id TEXT NOT NULL,
    parameters_sha256 TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (caller, rpc, request_id)
);

-- Analyses: one run of the schema engine, owned by its creator until submitted. The runner
-- holding `lease_owner` until `lease_until` is the only writer of its rows.
CREATE TABLE analyses (
    id TEXT PRIMARY KEY,
    connection_id TEXT NOT NULL,
    connection_name TEXT NOT NULL,
    database_name TEXT NOT NULL,
    sync_range BIGINT NOT NULL,
    requested_tables TEXT NOT NULL,
    requested_table_count BIGINT NOT NULL,
    naming_mode BIGINT NOT NULL,
    affix TEXT NOT NULL,
    status BIGINT NOT NULL,
    tables_done BIGINT NOT NULL DEFAULT 0,
    tables_total BIGINT NOT NULL DEFAULT 0,
    progress_percent BIGINT NOT NULL DEFAULT 0,
    failure_reason BIGINT NOT NULL DEFAULT 0,
    failure_message TEXT NOT NULL DEFAULT '',
    failure_retryable BIGINT NOT NULL DEFAULT 0,
    server_version TEXT NOT NULL DEFAULT '',
    creator TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    expire_at BIGINT NOT NULL,
    task_id BIGINT NOT NULL DEFAULT 0,
    preview_etag TEXT NOT NULL DEFAULT '',
    preview_statement_count BIGINT NOT NULL DEFAULT 0,
    preview_size_bytes BIGINT NOT NULL DEFAULT 0,
    preview_sha256 TEXT NOT NULL DEFAULT '',
    previous_analysis_id TEXT NOT NULL DEFAULT '',
    attempt BIGINT NOT NULL DEFAULT 0,
    lease_owner TEXT,
    lease_until BIGINT
);
CREATE INDEX analyses_lease ON analyses (status, lease_until);
CREATE INDEX analyses_expiry ON analyses (expire_at);
CREATE INDEX analyses_connection ON analyses (connection_id);

-- One row per source table of an analysis. `row_no` is the stable id; `ordinal` the plan
-- position (changes when dependants are re-planned). `original_result` is the first analysis'
-- verdict, `result` the latest plan's.
CREATE TABLE analysis_tables (
    analysis_id TEXT NOT NULL REFERENCES analyses (id) ON DELETE CASCADE,
    row_no BIGINT NOT NULL,
    ordinal BIGINT NOT NULL,
    source_table TEXT NOT NULL,
    shadow_table TEXT NOT NULL,
    result BIGINT NOT NULL,
    original_result BIGINT NOT NULL,
    skipped BIGINT NOT NULL DEFAULT 0,
    replanned BIGINT NOT NULL DEFAULT 0,
    reason TEXT NOT NULL,
    source_ddl TEXT NOT NULL,
    shadow_ddl TEXT NOT NULL,
    source_fingerprint TEXT NOT NULL,
    shadow_fingerprint TEXT NOT NULL,
    target_fingerprint TEXT NOT NULL,
    depends_on TEXT NOT NULL,
    statement_count BIGINT NOT NULL,
    PRIMARY KEY (analysis_id, row_no)
);
CREATE UNIQUE INDEX analysis_tables_source ON analysis_tables (analysis_id, source_table);
CREATE INDEX analysis_tables_ordinal ON analysis_tables (analysis_id, ordinal);

-- The change statements of an analysis, in script order (`script_index` is the position in the
-- whole script of the latest plan; skipped tables have none). Keyed by table so a re-plan can
-- replace one table's statements at a time.
CREATE TABLE analysis_statements (
    analysis_id TEXT NOT NULL REFERENCES analyses (id) ON DELETE CASCADE,
    script_index BIGINT NOT NULL,
    row_no BIGINT NOT NULL,
    statement_index BIGINT NOT NULL,
    sql_text TEXT NOT NULL,
    expected_fingerprint_after TEXT NOT NULL,
    PRIMARY KEY (analysis_id, row_no, statement_index)
);
CREATE INDEX analysis_statements_order ON analysis_statements (analysis_id, script_index);
