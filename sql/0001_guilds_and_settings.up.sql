-- 0001 guilds and settings: the guild registry, per-guild settings documents and the users a
-- guild authorised to use the dashboard. Conventions (DESIGN.md "Data"): snowflakes are
-- BIGINT CHECK (> 0), times are TIMESTAMPTZ, every table has created_at/updated_at with
-- updated_at kept by the set_updated_at() trigger, user-deletable rows carry deleted_at.

CREATE FUNCTION set_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at = now();
    RETURN NEW;
END;
$$;

COMMENT ON FUNCTION set_updated_at() IS 'BEFORE UPDATE trigger of every table: keeps updated_at current';

CREATE TABLE guilds (
    id          BIGINT PRIMARY KEY CHECK (id > 0),
    name        TEXT,
    added_by    BIGINT CHECK (added_by > 0),
    added_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    is_active   BOOLEAN NOT NULL DEFAULT true,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    deleted_at  TIMESTAMPTZ
);

COMMENT ON TABLE guilds IS 'Every guild (Discord server) Guildhall has seen; a row is created the first time the guild is seen (interaction, event or install)';
COMMENT ON COLUMN guilds.id IS 'Discord guild snowflake';
COMMENT ON COLUMN guilds.added_by IS 'user who installed the bot, when known';
COMMENT ON COLUMN guilds.is_active IS 'false once the bot was removed; the data is purged on the retention schedule';

CREATE TRIGGER guilds_set_updated_at BEFORE UPDATE ON guilds
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE guild_settings (
    guild_id    BIGINT NOT NULL REFERENCES guilds (id) ON DELETE CASCADE,
    feature     TEXT NOT NULL CHECK (feature ~ '^[a-z][a-z0-9_]{0,31}$'),
    document    JSONB NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(document) = 'object'),
    version     INTEGER NOT NULL DEFAULT 1 CHECK (version > 0),
    created_by  BIGINT CHECK (created_by > 0),
    updated_by  BIGINT CHECK (updated_by > 0),
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (guild_id, feature)
);

COMMENT ON TABLE guild_settings IS 'One settings document per (guild, feature), validated against the feature schema; cached in Redis as bot:{<guild>}:settings:<feature>';
COMMENT ON COLUMN guild_settings.version IS 'incremented by every write; writers pass the version they read (optimistic locking)';
COMMENT ON COLUMN guild_settings.created_by IS 'user who first saved the document; NULL for the system';
COMMENT ON COLUMN guild_settings.updated_by IS 'user who last saved the document; NULL for the system';

CREATE TRIGGER guild_settings_set_updated_at BEFORE UPDATE ON guild_settings
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE authorized_users (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    guild_id      BIGINT NOT NULL REFERENCES guilds (id) ON DELETE CASCADE,
    user_id       BIGINT NOT NULL CHECK (user_id > 0),
    granted_by    BIGINT CHECK (granted_by > 0),
    is_installer  BOOLEAN NOT NULL DEFAULT false,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    deleted_at    TIMESTAMPTZ,
    UNIQUE (guild_id, user_id)
);

COMMENT ON TABLE authorized_users IS 'Users a guild allows to manage Guildhall from the dashboard besides its administrators';
COMMENT ON COLUMN authorized_users.granted_by IS 'user who granted access; NULL when granted at install';
COMMENT ON COLUMN authorized_users.is_installer IS 'the user who installed the bot in this guild';
COMMENT ON COLUMN authorized_users.deleted_at IS 'set when access is revoked; granting again clears it';

CREATE TRIGGER authorized_users_set_updated_at BEFORE UPDATE ON authorized_users
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
