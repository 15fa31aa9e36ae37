-- Approval service store (DESIGN.md §4). Times are microseconds since the Unix epoch; flags are
-- 0/1 integers and structured values JSON text, so the same SQL runs on PostgreSQL and SQLite.

CREATE TABLE templates (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL,
    enabled INTEGER NOT NULL CHECK (enabled IN (0, 1)),
    builtin INTEGER NOT NULL CHECK (builtin IN (0, 1)),
    -- Match rule, nodes, expirations, separation of duties (JSON).
    definition TEXT NOT NULL,
    version INTEGER NOT NULL,
    creator TEXT NOT NULL,
    create_time INTEGER NOT NULL,
    update_time INTEGER NOT NULL,
    -- The builtin template can never be disabled.
    CHECK (builtin = 0 OR enabled = 1)
);
-- At most one builtin fallback template.
CREATE UNIQUE INDEX templates_one_builtin ON templates (builtin) WHERE builtin = 1;

-- The priority order: one row, replaced as a whole under its version.
CREATE TABLE priority_order (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    -- JSON array of non-builtin template ids, first match first.
    template_ids TEXT NOT NULL,
    version INTEGER NOT NULL
);

CREATE TABLE approvals (
    id TEXT PRIMARY KEY,
    request_type TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    resource_display TEXT NOT NULL,
    -- MatchAttributes (JSON).
    attributes TEXT NOT NULL,
    requester TEXT NOT NULL,
    requester_name TEXT NOT NULL,
    requester_roles TEXT NOT NULL,
    submitter TEXT NOT NULL,
    request_id TEXT NOT NULL,
    -- Fingerprint of the submitted parameters: a retry with other parameters is refused.
    fingerprint TEXT NOT NULL,
    payload_summary TEXT NOT NULL,
    payload_sha256 TEXT NOT NULL,
    status TEXT NOT NULL,
    -- The matched template as it was (JSON), so editing it never changes this request.
    template_snapshot TEXT NOT NULL,
    template_id TEXT NOT NULL,
    priority INTEGER NOT NULL,
    current_node INTEGER NOT NULL,
    approval_deadline INTEGER NOT NULL,
    scheduled_time INTEGER,
    cancelled_by TEXT,
    cancel_reason TEXT,
    create_time INTEGER NOT NULL,
    update_time INTEGER NOT NULL,
    finish_time INTEGER,
    version INTEGER NOT NULL,
    -- A retried submission can never create a second request.
    UNIQUE (submitter, request_id)
);
-- At most one open request per resource.
CREATE UNIQUE INDEX approvals_one_pending_per_resource
    ON approvals (request_type, resource_type, resource_id) WHERE status = 'PENDING';
CREATE INDEX approvals_by_requester ON approvals (requester, create_time);
CREATE INDEX approvals_pending_deadline ON approvals (approval_deadline) WHERE status = 'PENDING';
CREATE INDEX approvals_by_resource ON approvals (request_type, resource_type, resource_id, create_time);

CREATE TABLE approval_nodes (
    approval_id TEXT NOT NULL REFERENCES approvals (id),
    node_index INTEGER NOT NULL,
    status TEXT NOT NULL,
    start_time INTEGER,
    end_time INTEGER,
    PRIMARY KEY (approval_id, node_index)
);

CREATE TABLE decisions (
    approval_id TEXT NOT NULL REFERENCES approvals (id),
    node_index INTEGER NOT NULL,
    -- Empty for an auto-approve node.
    actor TEXT NOT NULL,
    actor_name TEXT NOT NULL,
    actor_roles TEXT NOT NULL,
    outcome TEXT NOT NULL,
    comment TEXT NOT NULL,
    request_id TEXT NOT NULL,
    decide_time INTEGER NOT NULL,
    -- One person's decision counts once per node (an auto-approval is the node's only one).
    PRIMARY KEY (approval_id, node_index, actor)
);

CREATE TABLE permissions (
    id TEXT PRIMARY KEY,
    grantee TEXT NOT NULL,
    task_type TEXT NOT NULL,
    connection_id TEXT NOT NULL,
    database_name TEXT NOT NULL,
    reason TEXT NOT NULL,
    granted_by TEXT NOT NULL,
    -- The permission_apply approval that granted it: one grant per approval at most.
    approval_id TEXT UNIQUE,
    grant_time INTEGER NOT NULL,
    expire_time INTEGER,
    revoke_time INTEGER,
    revoked_by TEXT NOT NULL,
    revoke_reason TEXT NOT NULL,
    -- Idempotency of a direct grant: (admin, request_id).
    request_key TEXT UNIQUE
);
CREATE INDEX permissions_lookup ON permissions (grantee, task_type, connection_id);

-- What a permission_apply request asks for, granted when it is approved.
CREATE TABLE permission_applications (
    approval_id TEXT PRIMARY KEY REFERENCES approvals (id),
    task_type TEXT NOT NULL,
    connection_id TEXT NOT NULL,
    database_name TEXT NOT NULL,
    reason TEXT NOT NULL,
    -- Microseconds; NULL: the grant never expires.
    duration INTEGER
);

-- Idempotency keys of mutating RPCs other than SubmitApproval (kept 24 h).
CREATE TABLE request_keys (
    caller TEXT NOT NULL,
    rpc TEXT NOT NULL,
    request_id TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    result_id TEXT NOT NULL,
    create_time INTEGER NOT NULL,
    PRIMARY KEY (caller, rpc, request_id)
);

-- Candidate approvers of every node (users and roles, as snapshotted), so "pending for me" and
-- visibility are answered by the database with paging.
CREATE TABLE approval_candidates (
    approval_id TEXT NOT NULL REFERENCES approvals (id),
    node_index INTEGER NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('user', 'role')),
    value TEXT NOT NULL,
    PRIMARY KEY (approval_id, node_index, kind, value)
);
CREATE INDEX approval_candidates_lookup ON approval_candidates (kind, value, approval_id);
