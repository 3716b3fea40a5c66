-- 0006 premium: tiers per guild (features/premium, docs/features/premium.md). One current
-- subscription row per guild, a history row for every change, operator-issued codes (stored
-- hashed), the one trial a guild may start, the entitlements Discord sent us, and every failed
-- premium check (billing audit). Free is the absence of a subscription in force: it is never
-- stored. A downgrade deletes nothing: the row stays, its expiry passes, and the gate refuses.
--
-- ON DELETE: the subscription row is current state only (CASCADE); everything else here is
-- history or billing evidence (RESTRICT, like audit_log): a guild purge must remove or archive
-- it explicitly, so a paid period is never lost by accident. Because every subscription has at
-- least one premium_history row, the RESTRICT on history also guards the subscription row.

CREATE TYPE premium_tier AS ENUM ('premium', 'pro');

COMMENT ON TYPE premium_tier IS 'paid tiers in rank order: premium (rank 1), pro (rank 2); free (rank 0) is never stored, it is NULL or the absence of a row';

CREATE TYPE premium_source AS ENUM ('code', 'entitlement', 'trial', 'operator');

COMMENT ON TYPE premium_source IS 'where a tier came from: code (an operator-issued code redeemed by the guild), entitlement (a Discord purchase), trial (the one trial per guild), operator (granted or revoked by hand)';

CREATE TABLE premium_subscriptions (
    guild_id     BIGINT PRIMARY KEY REFERENCES guilds (id) ON DELETE CASCADE,
    tier         premium_tier NOT NULL,
    source       premium_source NOT NULL,
    source_ref   TEXT,
    starts_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at   TIMESTAMPTZ,
    grace_until  TIMESTAMPTZ,
    created_by   BIGINT CHECK (created_by > 0),
    updated_by   BIGINT CHECK (updated_by > 0),
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK (expires_at IS NULL OR expires_at >= starts_at),
    CHECK (grace_until IS NULL OR (expires_at IS NOT NULL AND grace_until >= expires_at))
);

COMMENT ON TABLE premium_subscriptions IS 'The current tier of each guild that ever had one; cached in Redis as bot:{<guild>}:premium:status for 300 s. ON DELETE CASCADE: current state only, every change is also in premium_history';
COMMENT ON COLUMN premium_subscriptions.tier IS 'stored tier; it is in force while now < expires_at, or now < grace_until (grace), and free after that';
COMMENT ON COLUMN premium_subscriptions.source IS 'where the current tier came from';
COMMENT ON COLUMN premium_subscriptions.source_ref IS 'premium_codes.id for a code, the Discord entitlement id for an entitlement, NULL otherwise';
COMMENT ON COLUMN premium_subscriptions.starts_at IS 'when the current period started';
COMMENT ON COLUMN premium_subscriptions.expires_at IS 'end of the paid (or trial) period; NULL = no end. A revocation sets it to the time of the revocation';
COMMENT ON COLUMN premium_subscriptions.grace_until IS 'expires_at + PREMIUM_GRACE_DAYS, computed when granted (equal to expires_at for trials and revocations: no grace); NULL when expires_at is NULL';
COMMENT ON COLUMN premium_subscriptions.created_by IS 'user who caused the first grant; NULL for the system (Discord entitlements)';
COMMENT ON COLUMN premium_subscriptions.updated_by IS 'user who caused the last change; NULL for the system';

CREATE TRIGGER premium_subscriptions_set_updated_at BEFORE UPDATE ON premium_subscriptions
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE premium_history (
    id           BIGSERIAL PRIMARY KEY,
    guild_id     BIGINT NOT NULL REFERENCES guilds (id) ON DELETE RESTRICT,
    from_tier    premium_tier,
    to_tier      premium_tier,
    source       premium_source NOT NULL,
    source_ref   TEXT,
    expires_at   TIMESTAMPTZ,
    reason       TEXT,
    actor_id     BIGINT CHECK (actor_id > 0),
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX premium_history_guild_id_created_at_idx ON premium_history (guild_id, created_at);

COMMENT ON TABLE premium_history IS 'One row per change of a guild''s premium subscription (grant, redeem, trial, entitlement, revoke); written in the transaction of the change, together with an audit_log row';
COMMENT ON COLUMN premium_history.guild_id IS 'ON DELETE RESTRICT: billing history is purged explicitly on the retention schedule';
COMMENT ON COLUMN premium_history.from_tier IS 'tier in force before the change; NULL = free';
COMMENT ON COLUMN premium_history.to_tier IS 'tier stored by the change; NULL = ended (revoked, entitlement deleted)';
COMMENT ON COLUMN premium_history.source IS 'source of the change';
COMMENT ON COLUMN premium_history.source_ref IS 'premium_codes.id, Discord entitlement id, or NULL';
COMMENT ON COLUMN premium_history.expires_at IS 'expiry the change set; NULL = no end';
COMMENT ON COLUMN premium_history.reason IS 'why, in words (operator note, "code redeemed", "entitlement deleted", ...)';
COMMENT ON COLUMN premium_history.actor_id IS 'user who made the change; NULL for the system';

CREATE TRIGGER premium_history_set_updated_at BEFORE UPDATE ON premium_history
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE premium_codes (
    id                 BIGSERIAL PRIMARY KEY,
    code_hash          TEXT NOT NULL UNIQUE CHECK (code_hash ~ '^[0-9a-f]{64}$'),
    tier               premium_tier NOT NULL,
    days               INTEGER NOT NULL CHECK (days BETWEEN 1 AND 3650),
    expires_at         TIMESTAMPTZ,
    created_by         BIGINT CHECK (created_by > 0),
    redeemed_guild_id  BIGINT REFERENCES guilds (id) ON DELETE RESTRICT,
    redeemed_by        BIGINT CHECK (redeemed_by > 0),
    redeemed_at        TIMESTAMPTZ,
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK ((redeemed_guild_id IS NULL) = (redeemed_at IS NULL))
);

CREATE INDEX premium_codes_redeemed_guild_id_idx ON premium_codes (redeemed_guild_id)
    WHERE redeemed_guild_id IS NOT NULL;

COMMENT ON TABLE premium_codes IS 'Operator-issued premium codes (POST /api/v1/premium/codes); the code itself is shown once and never stored. Platform data: a code belongs to no guild until it is redeemed';
COMMENT ON COLUMN premium_codes.code_hash IS 'sha256 hex of the canonical code text (GH-XXXXX-XXXXX-XXXXX-XXXXX)';
COMMENT ON COLUMN premium_codes.days IS 'length of the period the code grants';
COMMENT ON COLUMN premium_codes.expires_at IS 'last moment the code can be redeemed; NULL = no limit';
COMMENT ON COLUMN premium_codes.created_by IS 'operator who issued the code';
COMMENT ON COLUMN premium_codes.redeemed_guild_id IS 'guild that redeemed it, NULL while unused; ON DELETE RESTRICT: a redeemed code is billing history';
COMMENT ON COLUMN premium_codes.redeemed_by IS 'user who redeemed it';
COMMENT ON COLUMN premium_codes.redeemed_at IS 'when it was redeemed; set once (the redeeming UPDATE requires it NULL, so two concurrent redeems cannot both win)';

CREATE TRIGGER premium_codes_set_updated_at BEFORE UPDATE ON premium_codes
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE premium_trials (
    guild_id    BIGINT PRIMARY KEY REFERENCES guilds (id) ON DELETE RESTRICT,
    started_by  BIGINT CHECK (started_by > 0),
    starts_at   TIMESTAMPTZ NOT NULL,
    ends_at     TIMESTAMPTZ NOT NULL CHECK (ends_at > starts_at),
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

COMMENT ON TABLE premium_trials IS 'The one trial each guild may start (the primary key enforces once); kept after the trial ends';
COMMENT ON COLUMN premium_trials.guild_id IS 'ON DELETE RESTRICT: whether a guild used its trial must outlive a re-install';
COMMENT ON COLUMN premium_trials.started_by IS 'user who started the trial';
COMMENT ON COLUMN premium_trials.ends_at IS 'starts_at + PREMIUM_TRIAL_DAYS at the time it started';

CREATE TRIGGER premium_trials_set_updated_at BEFORE UPDATE ON premium_trials
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE premium_entitlements (
    entitlement_id  BIGINT PRIMARY KEY CHECK (entitlement_id > 0),
    guild_id        BIGINT NOT NULL REFERENCES guilds (id) ON DELETE RESTRICT,
    sku_id          BIGINT NOT NULL CHECK (sku_id > 0),
    user_id         BIGINT CHECK (user_id > 0),
    tier            premium_tier NOT NULL,
    starts_at       TIMESTAMPTZ,
    ends_at         TIMESTAMPTZ,
    deleted         BOOLEAN NOT NULL DEFAULT false,
    raw             JSONB NOT NULL CHECK (jsonb_typeof(raw) = 'object'),
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX premium_entitlements_guild_id_idx ON premium_entitlements (guild_id);

COMMENT ON TABLE premium_entitlements IS 'Discord entitlements for premium SKUs (webhook events ENTITLEMENT_CREATE/UPDATE/DELETE), upserted idempotently: replaying an event changes nothing. Entitlements of unknown SKUs or without a guild are not stored';
COMMENT ON COLUMN premium_entitlements.entitlement_id IS 'Discord entitlement snowflake';
COMMENT ON COLUMN premium_entitlements.guild_id IS 'guild the entitlement is for; ON DELETE RESTRICT: billing evidence';
COMMENT ON COLUMN premium_entitlements.sku_id IS 'Discord SKU, mapped to a tier by PREMIUM_SKUS';
COMMENT ON COLUMN premium_entitlements.user_id IS 'user who bought it';
COMMENT ON COLUMN premium_entitlements.tier IS 'tier the SKU mapped to when the event arrived';
COMMENT ON COLUMN premium_entitlements.starts_at IS 'Discord starts_at; NULL for entitlements without dates';
COMMENT ON COLUMN premium_entitlements.ends_at IS 'Discord ends_at; NULL while a subscription renews';
COMMENT ON COLUMN premium_entitlements.deleted IS 'true after ENTITLEMENT_DELETE or deleted:true (refund, removal); never set back to false';
COMMENT ON COLUMN premium_entitlements.raw IS 'the entitlement object of the last event that changed the row, verbatim';

CREATE TRIGGER premium_entitlements_set_updated_at BEFORE UPDATE ON premium_entitlements
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE premium_denials (
    id              BIGSERIAL PRIMARY KEY,
    guild_id        BIGINT NOT NULL REFERENCES guilds (id) ON DELETE RESTRICT,
    user_id         BIGINT CHECK (user_id > 0),
    required_tier   premium_tier NOT NULL,
    effective_tier  premium_tier,
    what            TEXT NOT NULL CHECK (length(what) BETWEEN 1 AND 200),
    corr            TEXT,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX premium_denials_guild_id_created_at_idx ON premium_denials (guild_id, created_at);

COMMENT ON TABLE premium_denials IS 'Every failed premium check (gh_premium_require, gh_premium_check_limit), for billing audit; written best effort (a failed insert is logged)';
COMMENT ON COLUMN premium_denials.guild_id IS 'ON DELETE RESTRICT: billing audit is purged explicitly on the retention schedule';
COMMENT ON COLUMN premium_denials.user_id IS 'user who tried, NULL when not known (system actions)';
COMMENT ON COLUMN premium_denials.required_tier IS 'lowest tier that would have allowed it';
COMMENT ON COLUMN premium_denials.effective_tier IS 'tier in force at the check; NULL = free';
COMMENT ON COLUMN premium_denials.what IS 'what was refused: "custom embed color", "role_panels limit", ...';
COMMENT ON COLUMN premium_denials.corr IS 'correlation id of the request (also in the warn log line)';

CREATE TRIGGER premium_denials_set_updated_at BEFORE UPDATE ON premium_denials
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
