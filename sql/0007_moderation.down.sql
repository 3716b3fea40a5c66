-- Reverts 0007_moderation.up.sql: drops exactly what it created (indexes and triggers go with
-- their tables). Destructive: the runner dumps these tables before it runs.
DROP TABLE mod_cases;
DROP TABLE mod_case_counters;
DROP TYPE mod_lift_state;
DROP TYPE mod_case_status;
DROP TYPE mod_case_type;
