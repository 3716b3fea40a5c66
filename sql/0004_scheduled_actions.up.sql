-- 0004 scheduled actions: durable timers. Anything due in the future (giveaway end, claim
-- timeout, tempban expiry, reminder, timed role, scheduled message) is a row here first;
-- guildhall-scheduler promotes due rows into the Redis job queue, so losing Redis loses no
-- timer (a row left in 'queued' is promoted again after a grace period).

CREATE TYPE scheduled_action_state AS ENUM ('pending', 'queued', 'done', 'failed', 'cancelled');

COMMENT ON TYPE scheduled_action_state IS 'pending: waiting for due_at; queued: promoted into the job queue; done / failed / cancelled: final';

CREATE TABLE scheduled_actions (
    id               BIGSERIAL PRIMARY KEY,
    guild_id         BIGINT REFERENCES guilds (id) ON DELETE CASCADE,
    kind             TEXT NOT NULL CHECK (kind ~ '^[a-z0-9_.:-]{1,63}$'),
    payload          JSONB NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(payload) = 'object'),
    idempotency_key  TEXT NOT NULL CHECK (length(idempotency_key) BETWEEN 1 AND 200),
    due_at           TIMESTAMPTZ NOT NULL,
    state            scheduled_action_state NOT NULL DEFAULT 'pending',
    attempts         INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    last_error       TEXT,
    queued_at        TIMESTAMPTZ,
    fired_at         TIMESTAMPTZ,
    finished_at      TIMESTAMPTZ,
    created_by       BIGINT CHECK (created_by > 0),
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT scheduled_actions_guild_id_idempotency_key_key UNIQUE NULLS NOT DISTINCT (guild_id, idempotency_key)
);

CREATE INDEX scheduled_actions_state_due_at_idx ON scheduled_actions (state, due_at)
    WHERE state IN ('pending', 'queued');
CREATE INDEX scheduled_actions_guild_id_due_at_idx ON scheduled_actions (guild_id, due_at);

COMMENT ON TABLE scheduled_actions IS 'Durable timers: one row per future action, promoted into the job queue by guildhall-scheduler when due (lib/store/timers.c, docs/jobs.md)';
COMMENT ON COLUMN scheduled_actions.guild_id IS 'guild the action belongs to; NULL for operator (platform-wide) timers';
COMMENT ON COLUMN scheduled_actions.kind IS 'job kind that runs it (a registered gh_job_kind, e.g. giveaway:end)';
COMMENT ON COLUMN scheduled_actions.payload IS 'job payload (JSON object); the job also receives "timer_id"';
COMMENT ON COLUMN scheduled_actions.idempotency_key IS 'caller''s key, unique per guild (NULL guild counts as one): scheduling the same key twice returns the first row';
COMMENT ON COLUMN scheduled_actions.due_at IS 'when the action is due';
COMMENT ON COLUMN scheduled_actions.attempts IS 'times the row was promoted into the queue (a re-promote after a lost job counts)';
COMMENT ON COLUMN scheduled_actions.last_error IS 'error of the last failed run; kept when a later run succeeds';
COMMENT ON COLUMN scheduled_actions.queued_at IS 'last promotion into the queue; a row queued for longer than the grace period is promoted again';
COMMENT ON COLUMN scheduled_actions.fired_at IS 'when the job first started (lateness = fired_at - due_at)';
COMMENT ON COLUMN scheduled_actions.finished_at IS 'when the row reached done or failed';
COMMENT ON COLUMN scheduled_actions.created_by IS 'user who caused the timer, NULL for the system';

CREATE TRIGGER scheduled_actions_set_updated_at BEFORE UPDATE ON scheduled_actions
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
