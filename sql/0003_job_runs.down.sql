-- Reverts 0003_job_runs.up.sql: drops exactly what it created (indexes and triggers go with the table).
DROP TABLE job_runs;
