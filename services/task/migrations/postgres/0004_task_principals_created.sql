-- ListTasks for someone who is not an admin looks up the tasks naming them on an approval node,
-- usually within a created-time window (the default is the last 48 hours). Indexed by principal
-- alone, that lookup read every task ever naming the caller (an approver role on 55,000 of a
-- million tasks: 80 ms for a 48-hour page); with the task's creation time copied beside each
-- principal, the window bounds the index range. `created_at` never changes after submission.
ALTER TABLE task_principals ADD COLUMN created_at BIGINT NOT NULL DEFAULT 0;
UPDATE task_principals SET created_at = (
    SELECT tasks.created_at FROM tasks WHERE tasks.id = task_principals.task_id
);
CREATE INDEX task_principals_created ON task_principals (principal, created_at, task_id);
