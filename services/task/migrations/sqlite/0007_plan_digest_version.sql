-- The encoding of a task's approved hash (`script_sha256`, the approval's payload hash).
-- Tasks stored before this migration were approved under version 1 (each statement followed by
-- ";\n", concatenated), which binds neither tables, order, strategy nor schedule: a claim fails
-- them ("approved under an older plan format; initiate again") rather than recompute the weak
-- hash. New tasks are written with version 2 (shadowsync_common::plan_digest).
ALTER TABLE tasks ADD COLUMN plan_digest_version INTEGER NOT NULL DEFAULT 1;
