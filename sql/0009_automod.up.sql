-- 0009 automod: offences (features/automod, docs/features/automod.md). Every message that
-- matched an AutoMod rule is one row per (message, rule), log-only hits included. The row is
-- written by the "automod:offence" job (the gateway never touches PostgreSQL): the UNIQUE
-- (guild_id, message_id, rule) makes a repeated job a no-op, and done_at records that the
-- job's actions (warn, kick, ban through moderation) ran, so a retry does not run them twice.
--
-- ON DELETE: offences are history, like mod_cases (RESTRICT): a guild purge removes them
-- explicitly on the retention schedule.

CREATE TYPE automod_rule AS ENUM ('rate', 'repeat', 'caps', 'invites', 'links', 'words', 'regex', 'mentions');

COMMENT ON TYPE automod_rule IS 'AutoMod rule that matched (GH_AM_RULES in features/automod/automod.h)';

CREATE TABLE automod_offences (
    id           BIGSERIAL PRIMARY KEY,
    guild_id     BIGINT NOT NULL REFERENCES guilds (id) ON DELETE RESTRICT,
    user_id      BIGINT NOT NULL CHECK (user_id > 0),
    channel_id   BIGINT NOT NULL CHECK (channel_id > 0),
    message_id   BIGINT NOT NULL CHECK (message_id > 0),
    rule         automod_rule NOT NULL,
    actions      TEXT[] NOT NULL DEFAULT '{}'
                 CHECK (actions <@ ARRAY['delete', 'warn', 'timeout', 'kick', 'ban', 'log']::TEXT[]),
    log_only     BOOLEAN NOT NULL DEFAULT false,
    edited       BOOLEAN NOT NULL DEFAULT false,
    excerpt      TEXT NOT NULL DEFAULT '' CHECK (octet_length(excerpt) <= 300),
    matched      TEXT NOT NULL DEFAULT '' CHECK (octet_length(matched) <= 100),
    outcome      TEXT CHECK (octet_length(outcome) <= 1000),
    detected_at  TIMESTAMPTZ NOT NULL,
    done_at      TIMESTAMPTZ,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (guild_id, message_id, rule),
    CONSTRAINT automod_offences_log_only_check CHECK (NOT log_only OR actions = '{}')
);

COMMENT ON TABLE automod_offences IS 'One row per (message, AutoMod rule) that matched; written by the automod:offence job, idempotently';
COMMENT ON COLUMN automod_offences.actions IS 'what the rule did or asked for (delete, warn, timeout, kick, ban, log); empty for a log-only hit';
COMMENT ON COLUMN automod_offences.excerpt IS 'the start of the message (at most 300 bytes, cut on a character boundary)';
COMMENT ON COLUMN automod_offences.matched IS 'the text that matched (or "16 messages in 60 s" for the rate rule)';
COMMENT ON COLUMN automod_offences.outcome IS 'what the job''s actions gave (case numbers, failures); NULL until done';
COMMENT ON COLUMN automod_offences.detected_at IS 'when gateway-lite saw the message (the row is written later by the worker)';
COMMENT ON COLUMN automod_offences.done_at IS 'when the job''s actions ran; NULL: a retry runs them';

-- The dashboard list, newest first, and its user and rule filters.
CREATE INDEX automod_offences_guild_id_id_idx ON automod_offences (guild_id, id DESC);
CREATE INDEX automod_offences_guild_id_user_id_id_idx ON automod_offences (guild_id, user_id, id DESC);
CREATE INDEX automod_offences_guild_id_rule_id_idx ON automod_offences (guild_id, rule, id DESC);

CREATE TRIGGER automod_offences_set_updated_at BEFORE UPDATE ON automod_offences
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
