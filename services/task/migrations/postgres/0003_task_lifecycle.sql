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
ALTER TABLE tasks ADD COLUMN status_rank BIGINT NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN connection_name TEXT NOT NULL DEFAULT '';
ALTER TABLE tasks ADD COLUMN environment TEXT NOT NULL DEFAULT '';
ALTER TABLE tasks ADD COLUMN execution_mode BIGINT NOT NULL DEFAULT 1;
ALTER TABLE tasks ADD COLUMN scheduled_at BIGINT;
ALTER TABLE tasks ADD COLUMN error_strategy BIGINT NOT NULL DEFAULT 1;
ALTER TABLE tasks ADD COLUMN remarks TEXT NOT NULL DEFAULT '';
ALTER TABLE tasks ADD COLUMN creator_name TEXT NOT NULL DEFAULT '';
ALTER TABLE tasks ADD COLUMN creator_roles TEXT NOT NULL DEFAULT '';
ALTER TABLE tasks ADD COLUMN finished_at BIGINT;
ALTER TABLE tasks ADD COLUMN sync_range BIGINT NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN requested_tables TEXT NOT NULL DEFAULT '';
ALTER TABLE tasks ADD COLUMN naming_mode BIGINT NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN affix TEXT NOT NULL DEFAULT '';
ALTER TABLE tasks ADD COLUMN tables_to_sync BIGINT NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN tables_not_synced BIGINT NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN statement_count BIGINT NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN script_sha256 TEXT NOT NULL DEFAULT '';
ALTER TABLE tasks ADD COLUMN submit_request_id TEXT NOT NULL DEFAULT '';
ALTER TABLE tasks ADD COLUMN submit_parameters_sha256 TEXT NOT NULL DEFAULT '';
ALTER TABLE tasks ADD COLUMN submit_next_at BIGINT;
ALTER TABLE tasks ADD COLUMN submit_attempts BIGINT NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN permission_pending BIGINT NOT NULL DEFAULT 0;
-- The approval request, the last approval version applied (older events are ignored), the
-- current node's wait (an encoded ApprovalWait) and what the approval fixed at matching.
ALTER TABLE tasks ADD COLUMN approval_id TEXT NOT NULL DEFAULT '';
ALTER TABLE tasks ADD COLUMN approval_version BIGINT NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN approval_decisions BIGINT NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN approval_wait BYTEA;
ALTER TABLE tasks ADD COLUMN approval_cancel_pending BIGINT NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN priority BIGINT NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN wait_expiration BIGINT NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN execution_expiration BIGINT NOT NULL DEFAULT 0;
-- When an approved task is due (the later of approval and scheduled time): the wait expiration
-- counts from here.
ALTER TABLE tasks ADD COLUMN due_at BIGINT;
-- Execution: the current attempt, the last attempt announced as dispatched, the lease, the
-- execution deadline, and a user's abort request.
ALTER TABLE tasks ADD COLUMN attempt BIGINT NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN dispatched_attempt BIGINT NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN lease_token TEXT;
ALTER TABLE tasks ADD COLUMN lease_owner TEXT;
ALTER TABLE tasks ADD COLUMN lease_until BIGINT;
ALTER TABLE tasks ADD COLUMN started_at BIGINT;
ALTER TABLE tasks ADD COLUMN execution_deadline BIGINT;
ALTER TABLE tasks ADD COLUMN abort_requested BIGINT NOT NULL DEFAULT 0;
-- Per-task sequence counters: the timeline's and the log's order, allocated under the task's
-- row lock so a follower reading "after sequence N" never misses a line committed late.
ALTER TABLE tasks ADD COLUMN timeline_seq BIGINT NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN log_seq BIGINT NOT NULL DEFAULT 0;

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
    task_id BIGINT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    ordinal BIGINT NOT NULL,
    source_table TEXT NOT NULL,
    shadow_table TEXT NOT NULL,
    result BIGINT NOT NULL,
    synced BIGINT NOT NULL,
    skipped BIGINT NOT NULL,
    reason TEXT NOT NULL,
    source_fingerprint TEXT NOT NULL,
    shadow_fingerprint TEXT NOT NULL,
    target_fingerprint TEXT NOT NULL,
    depends_on TEXT NOT NULL,
    statements_total BIGINT NOT NULL,
    status BIGINT NOT NULL,
    statements_done BIGINT NOT NULL DEFAULT 0,
    error_code TEXT NOT NULL DEFAULT '',
    error_message TEXT NOT NULL DEFAULT '',
    started_at BIGINT,
    ended_at BIGINT,
    attempt BIGINT NOT NULL DEFAULT 0,
    observed_fingerprint TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (task_id, ordinal)
);
CREATE UNIQUE INDEX task_tables_source ON task_tables (task_id, source_table);

-- The approved script, in order (`ordinal` names the table).
CREATE TABLE task_statements (
    task_id BIGINT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    script_index BIGINT NOT NULL,
    ordinal BIGINT NOT NULL,
    statement_index BIGINT NOT NULL,
    sql_text TEXT NOT NULL,
    expected_fingerprint_after TEXT NOT NULL,
    PRIMARY KEY (task_id, script_index)
);
CREATE INDEX task_statements_table ON task_statements (task_id, ordinal, statement_index);

-- The process timeline: each entry an encoded TimelineEntry.
CREATE TABLE task_timeline (
    task_id BIGINT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    sequence BIGINT NOT NULL,
    kind BIGINT NOT NULL,
    entry BYTEA NOT NULL,
    PRIMARY KEY (task_id, sequence)
);

-- The task log. Executor lines carry their (attempt, client_sequence) so a retried batch is
-- stored once; the task service's own lines have no client sequence.
CREATE TABLE task_logs (
    task_id BIGINT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    sequence BIGINT NOT NULL,
    logged_at BIGINT NOT NULL,
    level BIGINT NOT NULL,
    message TEXT NOT NULL,
    message_lower TEXT NOT NULL,
    table_name TEXT NOT NULL,
    attempt BIGINT NOT NULL,
    origin TEXT NOT NULL,
    client_sequence BIGINT,
    PRIMARY KEY (task_id, sequence)
);
CREATE UNIQUE INDEX task_logs_client ON task_logs (task_id, attempt, client_sequence)
    WHERE client_sequence IS NOT NULL;
CREATE INDEX task_logs_alert ON task_logs (task_id, level, sequence);

-- Who may see a task besides its creator and admins: the candidate approvers of its approval's
-- nodes so far (`user:<subject>` / `role:<role>`); `current` = 1 for the node waiting now.
CREATE TABLE task_principals (
    task_id BIGINT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    principal TEXT NOT NULL,
    is_current BIGINT NOT NULL,
    PRIMARY KEY (task_id, principal)
);
CREATE INDEX task_principals_principal ON task_principals (principal, task_id);
