-- 0003 job_runs: one row per job run (every attempt), written in batches by the worker parent from
-- the per-queue Redis list bot:{q<n>}:jobs:<queue>:log, kept for 14 days (worker retention step).

CREATE TABLE job_runs (
    id           BIGSERIAL PRIMARY KEY,
    run_key      TEXT NOT NULL UNIQUE,
    queue        TEXT NOT NULL,
    kind         TEXT NOT NULL,
    job_id       TEXT NOT NULL,
    guild_id     BIGINT CHECK (guild_id > 0),
    attempt      INTEGER NOT NULL CHECK (attempt >= 1),
    status       TEXT NOT NULL CHECK (status IN ('done', 'retry', 'dead', 'expired', 'timeout')),
    duration_ms  INTEGER NOT NULL DEFAULT 0 CHECK (duration_ms >= 0),
    error        TEXT,
    worker_pid   INTEGER,
    started_at   TIMESTAMPTZ,
    finished_at  TIMESTAMPTZ NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX job_runs_created_at_idx ON job_runs (created_at);
CREATE INDEX job_runs_job_id_idx ON job_runs (job_id);
CREATE INDEX job_runs_guild_id_created_at_idx ON job_runs (guild_id, created_at) WHERE guild_id IS NOT NULL;

COMMENT ON TABLE job_runs IS 'Every run of a job (each attempt), written in batches by the worker; rows older than 14 days are deleted by the worker at most once an hour';
COMMENT ON COLUMN job_runs.run_key IS 'random id given when the run ended, so a replayed batch inserts nothing twice';
COMMENT ON COLUMN job_runs.queue IS 'queue the job ran from';
COMMENT ON COLUMN job_runs.kind IS 'job kind as registered by its feature (core:followup, ...)';
COMMENT ON COLUMN job_runs.job_id IS 'job id, which is also its dedupe key';
COMMENT ON COLUMN job_runs.guild_id IS 'guild the job works for, NULL when none; no foreign key: run history is operator data and outlives guild purges';
COMMENT ON COLUMN job_runs.attempt IS '1 on the first run';
COMMENT ON COLUMN job_runs.status IS 'done; retry (failed, another attempt follows); dead (failed for the last time); expired (deadline passed, dropped); timeout (ran past its timeout, another attempt follows)';
COMMENT ON COLUMN job_runs.duration_ms IS 'handler run time, milliseconds';
COMMENT ON COLUMN job_runs.error IS 'why the run failed, NULL when done';
COMMENT ON COLUMN job_runs.worker_pid IS 'process id of the worker child that ran it';
COMMENT ON COLUMN job_runs.started_at IS 'when the handler started (NULL when it never started)';
COMMENT ON COLUMN job_runs.finished_at IS 'when the run ended';

CREATE TRIGGER job_runs_set_updated_at BEFORE UPDATE ON job_runs
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
