-- Task service part 2: the task's frozen settings, its approval and execution state, the process
-- timeline, the log, and who may see it.
--
-- Status changes are compare-and-set (`UPDATE tasks SET status = … WHERE id = … AND status = …`);
-- `status_rank` is the TaskStatus enum number, kept beside the name so "sort by status" follows
-- the lifecycle and can use an index.
--
-- A SUBMITTING row is its own outbox entry: the submitter loop creates the approval request
-- (keyed by the task id, so a retry never orphans one) and moves the task to APPROVING;
-- `submit_next_at` is when it tries next. `permission_pending` = 1 when the approval service
-- could not answer the permission check at submission (the submitter checks before requesting).
ALTER TABLE tasks ADD COLUMN task_type TEXT NOT NULL DEFAULT 'shadow_table_sync';
ALTER TABLE tasks ADD COLUMN status_rank INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN connection_name TEXT NOT NULL DEFAULT '';
ALTER TABLE tasks ADD COLUMN environment TEXT NOT NULL DEFAULT '';
ALTER TABLE tasks ADD COLUMN execution_mode INTEGER NOT NULL DEFAULT 1;
ALTER TABLE tasks ADD COLUMN scheduled_at INTEGER;
ALTER TABLE tasks ADD COLUMN error_strategy INTEGER NOT NULL DEFAULT 1;
ALTER TABLE tasks ADD COLUMN remarks TEXT NOT NULL DEFAULT '';
ALTER TABLE tasks ADD COLUMN creator_name TEXT NOT NULL DEFAULT '';
ALTER TABLE tasks ADD COLUMN creator_roles TEXT NOT NULL DEFAULT '';
ALTER TABLE tasks ADD COLUMN finished_at INTEGER;
ALTER TABLE tasks ADD COLUMN sync_range INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN requested_tables TEXT NOT NULL DEFAULT '';
ALTER TABLE tasks ADD COLUMN naming_mode INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN affix TEXT NOT NULL DEFAULT '';
ALTER TABLE tasks ADD COLUMN tables_to_sync INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN tables_not_synced INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN statement_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN script_sha256 TEXT NOT NULL DEFAULT '';
ALTER TABLE tasks ADD COLUMN submit_request_id TEXT NOT NULL DEFAULT '';
ALTER TABLE tasks ADD COLUMN submit_parameters_sha256 TEXT NOT NULL DEFAULT '';
ALTER TABLE tasks ADD COLUMN submit_next_at INTEGER;
ALTER TABLE tasks ADD COLUMN submit_attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN permission_pending INTEGER NOT NULL DEFAULT 0;
-- The approval request, the last approval version applied (older events are ignored), the
-- current node's wait (an encoded ApprovalWait) and what the approval fixed at matching.
ALTER TABLE tasks ADD COLUMN approval_id TEXT NOT NULL DEFAULT '';
ALTER TABLE tasks ADD COLUMN approval_version INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN approval_decisions INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN approval_wait BLOB;
ALTER TABLE tasks ADD COLUMN approval_cancel_pending INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN wait_expiration INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN execution_expiration INTEGER NOT NULL DEFAULT 0;
-- When an approved task is due (the later of approval and scheduled time): the wait expiration
-- counts from here.
ALTER TABLE tasks ADD COLUMN due_at INTEGER;
-- Execution: the current attempt, the last attempt announced as dispatched, the lease, the
-- execution deadline, and a user's abort request.
ALTER TABLE tasks ADD COLUMN attempt INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN dispatched_attempt INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN lease_token TEXT;
ALTER TABLE tasks ADD COLUMN lease_owner TEXT;
ALTER TABLE tasks ADD COLUMN lease_until INTEGER;
ALTER TABLE tasks ADD COLUMN started_at INTEGER;
ALTER TABLE tasks ADD COLUMN execution_deadline INTEGER;
ALTER TABLE tasks ADD COLUMN abort_requested INTEGER NOT NULL DEFAULT 0;
-- Per-task sequence counters: the timeline's and the log's order, allocated under the task's
-- row lock so a follower reading "after sequence N" never misses a line committed late.
ALTER TABLE tasks ADD COLUMN timeline_seq INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN log_seq INTEGER NOT NULL DEFAULT 0;

CREATE INDEX tasks_created ON tasks (created_at, id);
CREATE INDEX tasks_creator_created ON tasks (creator, created_at, id);
CREATE INDEX tasks_status_created ON tasks (status, created_at, id);
CREATE INDEX tasks_rank ON tasks (status_rank, id);
CREATE INDEX tasks_submitting ON tasks (submit_next_at) WHERE status = 'SUBMITTING';
CREATE INDEX tasks_leases ON tasks (lease_until) WHERE status = 'EXECUTING';
CREATE INDEX tasks_due ON tasks (due_at) WHERE status = 'WAIT_FOR_EXECUTION';
CREATE INDEX tasks_cancel_pending ON tasks (id) WHERE approval_cancel_pending = 1;
CREATE UNIQUE INDEX tasks_analysis ON tasks (analysis_id);

-- The tables frozen at submission (to sync and not synced) with their execution results.
CREATE TABLE task_tables (
    task_id INTEGER NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    ordinal INTEGER NOT NULL,
    source_table TEXT NOT NULL,
    shadow_table TEXT NOT NULL,
    result INTEGER NOT NULL,
    synced INTEGER NOT NULL,
    skipped INTEGER NOT NULL,
    reason TEXT NOT NULL,
    source_fingerprint TEXT NOT NULL,
    shadow_fingerprint TEXT NOT NULL,
    target_fingerprint TEXT NOT NULL,
    depends_on TEXT NOT NULL,
    statements_total INTEGER NOT NULL,
    status INTEGER NOT NULL,
    statements_done INTEGER NOT NULL DEFAULT 0,
    error_code TEXT NOT NULL DEFAULT '',
    error_message TEXT NOT NULL DEFAULT '',
    started_at INTEGER,
    ended_at INTEGER,
    attempt INTEGER NOT NULL DEFAULT 0,
    observed_fingerprint TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (task_id, ordinal)
);
CREATE UNIQUE INDEX task_tables_source ON task_tables (task_id, source_table);

-- The approved script, in order (`ordinal` names the table).
CREATE TABLE task_statements (
    task_id INTEGER NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    script_index INTEGER NOT NULL,
    ordinal INTEGER NOT NULL,
    statement_index INTEGER NOT NULL,
    sql_text TEXT NOT NULL,
    expected_fingerprint_after TEXT NOT NULL,
    PRIMARY KEY (task_id, script_index)
);
CREATE INDEX task_statements_table ON task_statements (task_id, ordinal, statement_index);

-- The process timeline: each entry an encoded TimelineEntry.
CREATE TABLE task_timeline (
    task_id INTEGER NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    sequence INTEGER NOT NULL,
    kind INTEGER NOT NULL,
    entry BLOB NOT NULL,
    PRIMARY KEY (task_id, sequence)
);

-- The task log. Executor lines carry their (attempt, client_sequence) so a retried batch is
-- stored once; the task service's own lines have no client sequence.
CREATE TABLE task_logs (
    task_id INTEGER NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    sequence INTEGER NOT NULL,
    logged_at INTEGER NOT NULL,
    level INTEGER NOT NULL,
    message TEXT NOT NULL,
    message_lower TEXT NOT NULL,
    table_name TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    origin TEXT NOT NULL,
    client_sequence INTEGER,
    PRIMARY KEY (task_id, sequence)
);
CREATE UNIQUE INDEX task_logs_client ON task_logs (task_id, attempt, client_sequence)
    WHERE client_sequence IS NOT NULL;
CREATE INDEX task_logs_alert ON task_logs (task_id, level, sequence);

-- Who may see a task besides its creator and admins: the candidate approvers of its approval's
-- nodes so far (`user:<subject>` / `role:<role>`); `current` = 1 for the node waiting now.
CREATE TABLE task_principals (
    task_id INTEGER NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    principal TEXT NOT NULL,
    is_current INTEGER NOT NULL,
    PRIMARY KEY (task_id, principal)
);
CREATE INDEX task_principals_principal ON task_principals (principal, task_id);
