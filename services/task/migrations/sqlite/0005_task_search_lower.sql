-- ListTasks' database and creator filters are case-insensitive substrings. `LOWER()` folds only
-- ASCII on SQLite (and follows the server's LC_CTYPE on PostgreSQL), so "émile" never found
-- "ÉMILE MÜLLER" in the embedded mode. The task service now stores each searched value lowered
-- by Rust's Unicode rules beside the original, and matches those. Existing rows are lowered
-- here as well as the backend can (ASCII on SQLite); the values never change after submission.
ALTER TABLE tasks ADD COLUMN database_name_lower TEXT NOT NULL DEFAULT '';
ALTER TABLE tasks ADD COLUMN creator_lower TEXT NOT NULL DEFAULT '';
ALTER TABLE tasks ADD COLUMN creator_name_lower TEXT NOT NULL DEFAULT '';
UPDATE tasks SET database_name_lower = LOWER(database_name), creator_lower = LOWER(creator),
    creator_name_lower = LOWER(creator_name);
