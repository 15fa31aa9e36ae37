-- Initiate Again re-applies the previous task's skips. They are stored with the new analysis
-- (a JSON array of source table names) and passed to the planner by the runner, so the
-- analysis is SUCCEEDED only with them applied, and a restart in between loses nothing.
ALTER TABLE analyses ADD COLUMN initial_skips TEXT NOT NULL DEFAULT '[]';
