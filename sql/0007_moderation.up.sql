-- 0007 moderation: cases (features/moderation, docs/features/moderation.md). Every moderation
-- action is a case with a gapless number per guild; warnings count while active and decay to
-- inactive; timed actions (tempban, mute, jail) record the state of their lift.
--
-- Gapless numbers: mod_case_counters holds the last number of each guild. A case is created
-- in one transaction that first upserts the guild's counter row (INSERT ... ON CONFLICT DO
-- UPDATE ... RETURNING last_number), which locks that row until commit: case creation is
-- serialised per guild only, and a rolled-back creation gives its number back.
--
-- ON DELETE: cases are history (RESTRICT, like audit_log): a ban's reason must outlive a
-- re-install, and a guild purge must remove or archive its cases explicitly on the retention
-- schedule. The counter is RESTRICT too: dropping it while cases remain would hand out numbers
-- again, and the UNIQUE (guild_id, number) would then refuse every new case.

CREATE TYPE mod_case_type AS ENUM ('WARN', 'TIMEOUT', 'UNTIMEOUT', 'KICK', 'BAN', 'TEMPBAN', 'UNBAN', 'SOFTBAN',
                                   'HACKBAN', 'MUTE', 'JAIL', 'NOTE');

COMMENT ON TYPE mod_case_type IS 'what a case records (GH_MOD_CASE_TYPES in features/moderation/moderation.h): HACKBAN is a ban by id of someone not in the guild, NOTE a private moderator note';

CREATE TYPE mod_case_status AS ENUM ('pending', 'active', 'inactive', 'void', 'failed');

COMMENT ON TYPE mod_case_status IS 'pending: the Discord call not finished; active: in force (a warning counts); inactive: over (decayed warning, lifted tempban/mute/jail), kept; void: cancelled by a moderator; failed: Discord refused or did not answer (error kept)';

CREATE TYPE mod_lift_state AS ENUM ('none', 'pending', 'done', 'failed');

COMMENT ON TYPE mod_lift_state IS 'lift of a timed case (tempban, mute, jail): none (not timed), pending (timer scheduled), done, failed (retries exhausted, shown in the dashboard)';

CREATE TABLE mod_case_counters (
    guild_id     BIGINT PRIMARY KEY REFERENCES guilds (id) ON DELETE RESTRICT,
    last_number  BIGINT NOT NULL DEFAULT 0 CHECK (last_number >= 0),
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);

COMMENT ON TABLE mod_case_counters IS 'Last case number of each guild; the row is locked by the upsert that takes the next number, so case creation is serialised per guild and numbers are gapless (a rolled-back creation gives its number back)';
COMMENT ON COLUMN mod_case_counters.guild_id IS 'ON DELETE RESTRICT: the numbers must never be handed out again while the guild''s cases exist';
COMMENT ON COLUMN mod_case_counters.last_number IS 'number of the guild''s newest case; 0 before the first';

CREATE TRIGGER mod_case_counters_set_updated_at BEFORE UPDATE ON mod_case_counters
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE mod_cases (
    id              BIGSERIAL PRIMARY KEY,
    guild_id        BIGINT NOT NULL REFERENCES guilds (id) ON DELETE RESTRICT,
    number          BIGINT NOT NULL CHECK (number > 0),
    type            mod_case_type NOT NULL,
    status          mod_case_status NOT NULL DEFAULT 'pending',
    target_id       BIGINT NOT NULL CHECK (target_id > 0),
    moderator_id    BIGINT CHECK (moderator_id > 0),
    reason          TEXT CHECK (char_length(reason) <= 512),
    duration_s      BIGINT CHECK (duration_s > 0),
    expires_at      TIMESTAMPTZ,
    refs_case       BIGINT CHECK (refs_case > 0),
    interaction_id  BIGINT CHECK (interaction_id > 0),
    target_roles    JSONB CHECK (jsonb_typeof(target_roles) = 'array'),
    error           TEXT,
    voided_by       BIGINT CHECK (voided_by > 0),
    void_reason     TEXT CHECK (char_length(void_reason) <= 512),
    voided_at       TIMESTAMPTZ,
    lift            mod_lift_state NOT NULL DEFAULT 'none',
    lift_error      TEXT,
    created_by      BIGINT CHECK (created_by > 0),
    updated_by      BIGINT CHECK (updated_by > 0),
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (guild_id, number),
    UNIQUE (guild_id, interaction_id),
    CONSTRAINT mod_cases_refs_case_fkey FOREIGN KEY (guild_id, refs_case)
        REFERENCES mod_cases (guild_id, number) ON DELETE RESTRICT,
    CONSTRAINT mod_cases_voided_at_check CHECK ((status = 'void') = (voided_at IS NOT NULL)),
    CONSTRAINT mod_cases_failed_error_check CHECK (status <> 'failed' OR error IS NOT NULL)
);

-- Active warnings of a member (the escalation's count, the Redis rebuild) and the target filter.
CREATE INDEX mod_cases_guild_id_target_id_type_status_idx ON mod_cases (guild_id, target_id, type, status);
-- The list, newest first, is served by the UNIQUE (guild_id, number) index read backwards: a
-- separate (guild_id, number DESC) index would be the same b-tree twice.
-- Moderator filter of the list.
CREATE INDEX mod_cases_guild_id_moderator_id_number_idx ON mod_cases (guild_id, moderator_id, number);
-- The hourly decay, across every guild: only the warnings that can still expire.
CREATE INDEX mod_cases_warn_decay_idx ON mod_cases (expires_at)
    WHERE type = 'WARN' AND status = 'active';

COMMENT ON TABLE mod_cases IS 'Every moderation action and note as a case, numbered gaplessly per guild (mod_case_counters); kept when it ends (inactive) or is voided. Active warnings are counted in Redis as bot:{<guild>}:moderation:warns:<user> for 24 h';
COMMENT ON COLUMN mod_cases.guild_id IS 'ON DELETE RESTRICT: cases are history, purged explicitly on the retention schedule';
COMMENT ON COLUMN mod_cases.number IS 'case number in the guild, from 1, gapless (taken from mod_case_counters in the creating transaction)';
COMMENT ON COLUMN mod_cases.type IS 'the action';
COMMENT ON COLUMN mod_cases.status IS 'see mod_case_status; a warning counts while active and not past expires_at';
COMMENT ON COLUMN mod_cases.target_id IS 'user acted on';
COMMENT ON COLUMN mod_cases.moderator_id IS 'user who acted; NULL = Guildhall itself (escalation, AutoMod)';
COMMENT ON COLUMN mod_cases.reason IS 'why, as the moderator wrote it (at most 512 characters); NULL = none given';
COMMENT ON COLUMN mod_cases.duration_s IS 'length of a timeout, tempban, mute or jail in seconds; NULL = none';
COMMENT ON COLUMN mod_cases.expires_at IS 'when a warning stops counting (guild decay setting) or a timed action ends; NULL = never';
COMMENT ON COLUMN mod_cases.refs_case IS 'number of the case in the same guild that triggered this one (escalation); NULL = none. The foreign key (guild_id, refs_case) keeps it in the same guild; ON DELETE RESTRICT: a triggering case goes only together with the cases it triggered';
COMMENT ON COLUMN mod_cases.interaction_id IS 'Discord interaction that created the case; unique per guild, so a duplicate delivery creates nothing';
COMMENT ON COLUMN mod_cases.target_roles IS 'role ids (JSON array of strings) the target had when the case was made; a jail restores them';
COMMENT ON COLUMN mod_cases.error IS 'Discord''s error when the action failed';
COMMENT ON COLUMN mod_cases.voided_by IS 'user who voided the case; NULL for the system or while not void';
COMMENT ON COLUMN mod_cases.void_reason IS 'why it was voided (at most 512 characters)';
COMMENT ON COLUMN mod_cases.voided_at IS 'when it was voided; set exactly when status is void';
COMMENT ON COLUMN mod_cases.lift IS 'state of the timed lift (tempban, mute, jail)';
COMMENT ON COLUMN mod_cases.lift_error IS 'why the last lift attempt failed';
COMMENT ON COLUMN mod_cases.created_by IS 'user who created the case (the moderator); NULL for the system';
COMMENT ON COLUMN mod_cases.updated_by IS 'user who last changed it (reason edit, void); NULL for the system';

CREATE TRIGGER mod_cases_set_updated_at BEFORE UPDATE ON mod_cases
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
