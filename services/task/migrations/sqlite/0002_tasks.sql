-- Tasks: part 2 of the task service starts from this minimal table and grows it (settings,
-- snapshot, approval, lease, timeline live in later migrations). Part 1 needs it only to refuse
-- deleting a connection that unfinished tasks use.
--
-- `id` is an increasing integer ("task 42"). `status` is the DESIGN §3 name (APPROVING,
-- WAIT_FOR_EXECUTION, EXECUTING, EXECUTION_SUCCEEDED, EXECUTION_FAILED, CANCELLED, REJECTED,
-- APPROVAL_EXPIRED, WAIT_FOR_EXECUTION_EXPIRED, EXECUTION_EXPIRED) or the hidden SUBMITTING of a
-- task whose approval request does not exist yet. `connection_id` is not a foreign key: finished
-- tasks keep the id of a connection deleted since. Whoever inserts a task must first lock the
-- connection row (`UPDATE connections SET updated_at = updated_at WHERE id = …`) in the same
-- transaction, as the delete does, so a task cannot slip past a concurrent delete.
CREATE TABLE tasks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    analysis_id TEXT NOT NULL,
    connection_id TEXT NOT NULL,
    database_name TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('SUBMITTING', 'APPROVING', 'WAIT_FOR_EXECUTION',
        'EXECUTING', 'EXECUTION_SUCCEEDED', 'EXECUTION_FAILED', 'CANCELLED', 'REJECTED',
        'APPROVAL_EXPIRED', 'WAIT_FOR_EXECUTION_EXPIRED', 'EXECUTION_EXPIRED')),
    creator TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX tasks_connection_status ON tasks (connection_id, status);
