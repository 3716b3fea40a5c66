-- 0002 logs: the command log (written in batches by the worker from Redis), the audit log of
-- changes people make, and the error log.

CREATE TABLE command_log (
    id              BIGSERIAL PRIMARY KEY,
    guild_id        BIGINT REFERENCES guilds (id) ON DELETE CASCADE,
    user_id         BIGINT NOT NULL CHECK (user_id > 0),
    channel_id      BIGINT CHECK (channel_id > 0),
    interaction_id  BIGINT UNIQUE CHECK (interaction_id > 0),
    command         TEXT NOT NULL,
    options         JSONB,
    success         BOOLEAN NOT NULL,
    error           TEXT,
    duration_us     INTEGER CHECK (duration_us >= 0),
    corr            TEXT,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX command_log_guild_id_created_at_idx ON command_log (guild_id, created_at);

COMMENT ON TABLE command_log IS 'Every command run, written off the request path in batches (Redis list bot:{global}:cmdlog:pending, spool file when both stores are down)';
COMMENT ON COLUMN command_log.guild_id IS 'NULL for commands run in direct messages (Discord has no guild there)';
COMMENT ON COLUMN command_log.interaction_id IS 'Discord interaction snowflake; unique, so a batch replayed after a failure inserts nothing twice';
COMMENT ON COLUMN command_log.options IS 'the options as the user gave them (JSON)';
COMMENT ON COLUMN command_log.duration_us IS 'time from request to response, microseconds';
COMMENT ON COLUMN command_log.corr IS 'correlation id of the request (also in the log lines)';
COMMENT ON COLUMN command_log.created_at IS 'when the command ran (not when the row was written)';

CREATE TRIGGER command_log_set_updated_at BEFORE UPDATE ON command_log
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE audit_log (
    id          BIGSERIAL PRIMARY KEY,
    guild_id    BIGINT REFERENCES guilds (id) ON DELETE RESTRICT,
    actor_id    BIGINT CHECK (actor_id > 0),
    action      TEXT NOT NULL,
    target      TEXT,
    before      JSONB,
    after       JSONB,
    corr        TEXT,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX audit_log_guild_id_created_at_idx ON audit_log (guild_id, created_at);

COMMENT ON TABLE audit_log IS 'Changes people made through Guildhall (settings, permissions, ...), with the state before and after';
COMMENT ON COLUMN audit_log.guild_id IS 'NULL for platform-wide actions; ON DELETE RESTRICT: history is purged explicitly on the retention schedule';
COMMENT ON COLUMN audit_log.actor_id IS 'user who made the change; NULL for the system';
COMMENT ON COLUMN audit_log.action IS 'what was done, dotted: settings.update, ...';
COMMENT ON COLUMN audit_log.target IS 'what it was done to (the feature for settings.update)';

CREATE TRIGGER audit_log_set_updated_at BEFORE UPDATE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE error_log (
    id          BIGSERIAL PRIMARY KEY,
    guild_id    BIGINT CHECK (guild_id > 0),
    component   TEXT NOT NULL,
    message     TEXT NOT NULL,
    context     JSONB,
    backtrace   TEXT,
    corr        TEXT,
    dedupe_key  TEXT UNIQUE,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX error_log_created_at_idx ON error_log (created_at);

COMMENT ON TABLE error_log IS 'Errors of every process, written in batches like command_log';
COMMENT ON COLUMN error_log.guild_id IS 'guild the error happened in, NULL when none; no foreign key: error rows are operator data and outlive guild purges';
COMMENT ON COLUMN error_log.component IS 'module that reported it (rest, interactions, worker, ...)';
COMMENT ON COLUMN error_log.dedupe_key IS 'random id given when the error was recorded, so a replayed batch inserts nothing twice';
COMMENT ON COLUMN error_log.created_at IS 'when the error happened (not when the row was written)';

CREATE TRIGGER error_log_set_updated_at BEFORE UPDATE ON error_log
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
