-- 0010 levels: XP totals per member (features/levels, docs/features/levels.md).
--
-- Redis holds the live totals (bot:{g}:levels:xp:<u>, the leaderboard ZSET); the flush job
-- writes them here every 5 minutes with an upsert that SETS xp to the Redis total (never adds),
-- so running a flush twice changes nothing. After a Redis loss the totals are loaded back from
-- this table (gh_lv_seed). ON DELETE CASCADE: XP is a pure child of its guild, with no history
-- value once the guild's data is purged.

CREATE TABLE levels_members (
    guild_id       BIGINT NOT NULL REFERENCES guilds (id) ON DELETE CASCADE,
    user_id        BIGINT NOT NULL CHECK (user_id > 0),
    xp             BIGINT NOT NULL DEFAULT 0 CHECK (xp >= 0),
    level          INTEGER NOT NULL DEFAULT 0 CHECK (level >= 0),
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (guild_id, user_id)
);

CREATE INDEX levels_members_guild_id_xp_idx ON levels_members (guild_id, xp DESC);

COMMENT ON TABLE levels_members IS 'XP total and level of each member who earned XP; written by the levels:flush job from Redis (idempotent upsert of the total)';
COMMENT ON COLUMN levels_members.xp IS 'total XP as Redis had it at the last flush (bot:{g}:levels:xp:<u>)';
COMMENT ON COLUMN levels_members.level IS 'level of xp by the curve (features/levels/curve.c), kept for queries';

CREATE TRIGGER levels_members_set_updated_at BEFORE UPDATE ON levels_members
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
