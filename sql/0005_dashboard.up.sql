-- 0005 dashboard: the people who log in to the dashboard (Discord OAuth2), their sessions, and
-- the security events the API records (failed permission checks, cross-guild attempts, bad
-- signatures, revoked or tampered sessions).

CREATE TABLE dashboard_users (
    id                 BIGINT PRIMARY KEY CHECK (id > 0),
    username           TEXT NOT NULL,
    global_name        TEXT,
    avatar             TEXT,
    access_token_enc   TEXT,
    refresh_token_enc  TEXT,
    token_expires_at   TIMESTAMPTZ,
    scopes             TEXT,
    guilds             JSONB NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(guilds) = 'array'),
    guilds_fetched_at  TIMESTAMPTZ,
    last_login_at      TIMESTAMPTZ,
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at         TIMESTAMPTZ NOT NULL DEFAULT now()
);

COMMENT ON TABLE dashboard_users IS 'Discord users who logged in to the dashboard; a row per user, updated at every login';
COMMENT ON COLUMN dashboard_users.id IS 'Discord user snowflake';
COMMENT ON COLUMN dashboard_users.access_token_enc IS 'OAuth2 access token sealed with ENCRYPTION_KEY (AES-256-GCM, bound to the user id); never logged';
COMMENT ON COLUMN dashboard_users.refresh_token_enc IS 'OAuth2 refresh token, sealed like access_token_enc';
COMMENT ON COLUMN dashboard_users.guilds IS 'the user''s guilds from GET /users/@me/guilds (id, name, icon, owner, permissions), the basis of dashboard access; cached in Redis as bot:{global}:dash:guilds:<user>';
COMMENT ON COLUMN dashboard_users.guilds_fetched_at IS 'when guilds was last read from Discord; refreshed when older than 10 minutes';

CREATE TRIGGER dashboard_users_set_updated_at BEFORE UPDATE ON dashboard_users
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE dashboard_sessions (
    jti         TEXT PRIMARY KEY CHECK (length(jti) BETWEEN 16 AND 64),
    user_id     BIGINT NOT NULL REFERENCES dashboard_users (id) ON DELETE CASCADE,
    ip          TEXT,
    user_agent  TEXT,
    expires_at  TIMESTAMPTZ NOT NULL,
    revoked_at  TIMESTAMPTZ,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX dashboard_sessions_user_id_idx ON dashboard_sessions (user_id);
CREATE INDEX dashboard_sessions_expires_at_idx ON dashboard_sessions (expires_at);

COMMENT ON TABLE dashboard_sessions IS 'One row per dashboard login (the JWT''s jti); a session is valid until expires_at unless revoked_at is set (logout). Cached in Redis as bot:{global}:dash:session:<jti> for its lifetime';
COMMENT ON COLUMN dashboard_sessions.revoked_at IS 'set at logout: the JWT is refused from then on even though its signature and expiry are good';

CREATE TRIGGER dashboard_sessions_set_updated_at BEFORE UPDATE ON dashboard_sessions
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE security_events (
    id          BIGSERIAL PRIMARY KEY,
    guild_id    BIGINT CHECK (guild_id > 0),
    user_id     BIGINT CHECK (user_id > 0),
    ip          TEXT,
    kind        TEXT NOT NULL CHECK (kind ~ '^[a-z_.]{1,64}$'),
    method      TEXT,
    path        TEXT,
    detail      JSONB,
    corr        TEXT,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX security_events_guild_id_created_at_idx ON security_events (guild_id, created_at);
CREATE INDEX security_events_created_at_idx ON security_events (created_at);

COMMENT ON TABLE security_events IS 'Refused requests worth an operator''s attention: guild access denied (cross-guild attempts), missing permission, CSRF failures, tampered, expired or revoked sessions, bad webhook signatures';
COMMENT ON COLUMN security_events.guild_id IS 'the guild the request aimed at, when any; no foreign key: attempts may name guilds Guildhall does not know';
COMMENT ON COLUMN security_events.kind IS 'dotted: guild.forbidden, guild.admin_required, developer.forbidden, csrf.failed, session.tampered, session.revoked, webhook.bad_signature, settings.role_hierarchy, ...';

CREATE TRIGGER security_events_set_updated_at BEFORE UPDATE ON security_events
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
