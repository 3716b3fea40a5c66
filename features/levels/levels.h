/* levels.h - the levels feature: text and voice XP, levels, role rewards,
 * leaderboard (issue 7, item 5). The contract between the feature's files:
 *
 *   curve.c     the level curve (pure)                    gh_lv_xp_for_level, gh_lv_level_for_xp
 *   settings.c  the settings document as a struct         gh_lv_settings_parse, gh_lv_gain
 *   xp.c        gateway-lite's inline handlers: text XP (MESSAGE_CREATE) and
 *               voice tracking (VOICE_STATE_UPDATE)       gh_lv_on_messages, gh_lv_on_voice
 *   store.c     Redis totals and PostgreSQL rows: seed after a Redis loss,
 *               flush, reset, rank, leaderboard           gh_lv_seed, gh_lv_flush_guild, ...
 *   jobs.c      levels:levelup, levels:flush, levels:voice
 *   api.c       dashboard routes (leaderboard, reset)
 *   commands.c  /rank, /leaderboard, /xp reset, the feature struct (and the
 *               schema text, identical to schema.json: a unit test checks it)
 *
 * Curve (MEE6's): going from level L to L+1 takes 5L^2 + 50L + 100 XP, so
 * reaching level L takes xp_for_level(L) = sum_{k<L} (5k^2 + 50k + 100).
 *
 * Redis keys (every one without TTL unless said; the totals are the state):
 *   bot:{g}:levels:xp:<u>      STRING user's total XP
 *   bot:{g}:levels:lb          ZSET   user -> total (ZADD of the total, so it never drifts)
 *   bot:{g}:levels:dirty       SET    users changed since the last flush
 *   bot:{g}:levels:cd:<u>      STRING text cooldown, SET NX EX cooldown_s
 *   bot:{g}:levels:seeded      STRING present once the guild's totals were loaded
 *                                     from PostgreSQL (see gh_lv_seed)
 *   bot:{g}:levels:tier        STRING the guild's effective premium rank, 1 h TTL
 *                                     (written by the worker; absent = free)
 *   bot:{g}:levels:voice       HASH   user -> "<channel>:<since_ms>:<flags>"
 *   bot:{global}:levels:dirty_guilds:<shard>  SET guilds with dirty users
 *   bot:{global}:levels:voice_guilds:<shard>  SET guilds with members in voice
 * Table: levels_members (sql/0010_levels.up.sql). */
#ifndef GH_FEATURES_LEVELS_H
#define GH_FEATURES_LEVELS_H

#include <json-c/json.h>
#include <stddef.h>
#include <stdint.h>

#include "api/api.h"
#include "features/registry.h"

struct gh_ctx;

extern const struct gh_feature gh_feature_levels;

/* ---- curve.c (pure) */

#define GH_LV_MAX_LEVEL 1000
/* XP needed to go from level to level + 1 (level >= 0). */
int64_t gh_lv_xp_to_next(int level);
/* Total XP needed to reach level (0 for level <= 0; capped at GH_LV_MAX_LEVEL). */
int64_t gh_lv_xp_for_level(int level);
/* The level a total reaches: the largest L with xp_for_level(L) <= xp (0 for
 * xp <= 0; at most GH_LV_MAX_LEVEL). */
int gh_lv_level_for_xp(int64_t xp);

/* ---- settings.c */

#define GH_LV_MAX_MULT 25
#define GH_LV_MAX_IDS 100
#define GH_LV_MAX_REWARDS 50
#define GH_LV_FREE_REWARDS 5    /* rewards a free guild gets (the lowest levels) */
#define GH_LV_FREE_MULT_CAP 2.0 /* free guilds: each multiplier capped at 2x */
#define GH_LV_GAIN_MIN 15
#define GH_LV_GAIN_MAX 25
#define GH_LV_VOICE_PERIOD_MS ((int64_t)5 * 60 * 1000)
#define GH_LV_FLUSH_PERIOD_MS ((int64_t)5 * 60 * 1000)

enum gh_lv_notify { GH_LV_NOTIFY_CURRENT = 0, GH_LV_NOTIFY_CHANNEL, GH_LV_NOTIFY_OFF };

struct gh_lv_idmult {
    uint64_t id;
    double mult;
};
struct gh_lv_reward {
    int level;
    uint64_t role_id;
};

struct gh_lv_settings {
    int enabled;
    double multiplier;
    struct gh_lv_idmult role_mult[GH_LV_MAX_MULT];
    int n_role_mult;
    struct gh_lv_idmult channel_mult[GH_LV_MAX_MULT];
    int n_channel_mult;
    uint64_t ignored_channels[GH_LV_MAX_IDS];
    int n_ignored_channels;
    uint64_t blacklisted_roles[GH_LV_MAX_IDS];
    int n_blacklisted_roles;
    uint64_t blacklisted_users[GH_LV_MAX_IDS];
    int n_blacklisted_users;
    uint64_t staff_roles[GH_LV_MAX_IDS];
    int n_staff_roles;
    int cooldown_s;
    enum gh_lv_notify notify;
    uint64_t notify_channel_id;
    char template_[512];
    struct gh_lv_reward rewards[GH_LV_MAX_REWARDS]; /* ascending by level */
    int n_rewards;
    int reward_stack; /* 1 keep earlier rewards, 0 replace them */
    int voice_enabled;
    int voice_xp_per_min;
};

/* Defaults, then each member of doc (borrowed; NULL = none) that is usable.
 * Never fails: a malformed member keeps its default. */
void gh_lv_settings_parse(json_object *doc, struct gh_lv_settings *out);
/* Reads the guild's settings (Redis, then PostgreSQL). GH_OK or GH_EPG (defaults). */
int gh_lv_settings_load(struct gh_ctx *ctx, uint64_t guild_id, struct gh_lv_settings *out);
/* 1 when a member with these roles (JSON array of id strings, borrowed, may
 * be NULL) in channel_id, user_id earns no XP (ignored channel, blacklisted user or role). */
int gh_lv_excluded(const struct gh_lv_settings *s, uint64_t user_id, uint64_t channel_id, json_object *roles);
/* The factor applied to a base gain: guild x best role multiplier (1 when no
 * role has one) x channel multiplier; capped is 1 for a free guild (each
 * factor at most GH_LV_FREE_MULT_CAP). */
double gh_lv_factor(const struct gh_lv_settings *s, uint64_t channel_id, json_object *roles, int capped);
/* The notification text: {user} (a mention), {username} (escaped),
 * {level}, {xp}. GH_OK or GH_ETOOBIG (truncated). */
int gh_lv_notify_text(const struct gh_lv_settings *s, uint64_t user_id, const char *username, int level,
                      int64_t xp, char *out, size_t n);

/* ---- xp.c (gateway-lite inline) */

int gh_lv_on_messages(struct gh_ctx *ctx, struct gh_event *const *evs, int n);
int gh_lv_on_voice(struct gh_ctx *ctx, struct gh_event *const *evs, int n);
int gh_lv_on_guild_create(struct gh_ctx *ctx, struct gh_event *const *evs, int n);
/* Counters for tests: batches skipped because Redis was down. */
long gh_lv_redis_failures(void);
/* Forgets the per-process settings cache (tests). */
void gh_lv_inline_reset(void);

/* The award script (one per user per award): cooldown (cooldown_s > 0),
 * INCRBY, ZADD, SADD dirty. Appended to the connection's pipeline; the reply
 * is read with gh_lv_award_reply. GH_OK or GH_EREDIS. */
int gh_lv_award_append(struct gh_ctx *ctx, uint64_t guild_id, uint64_t user_id, int cooldown_s,
                       long gain_free, long gain_premium);
/* Reads one award's reply: GH_OK with *awarded (0 = cooldown), *old_xp,
 * *new_xp, *seeded; GH_EREDIS (no reply) or GH_ENOSCRIPT-like GH_EAGAIN
 * (the script was not loaded: append again with the body). */
int gh_lv_award_reply(struct gh_ctx *ctx, int *awarded, int64_t *old_xp, int64_t *new_xp, int *seeded);
/* Enqueues "levels:levelup" for a user who went from old_xp to new_xp when
 * that crosses a level (id levels:up:<g>:<u>:<level>). channel_id: the
 * message's channel (0 none). GH_OK (also when no level was crossed). */
int gh_lv_levelup_enqueue(struct gh_ctx *ctx, uint64_t guild_id, uint64_t user_id, uint64_t channel_id,
                          int64_t old_xp, int64_t new_xp, const char *username);

/* ---- store.c */

/* Loads the guild's PostgreSQL totals into Redis once after a Redis loss
 * (or for a guild never seen): adds each stored total to what Redis counted
 * since, rebuilds the leaderboard entries, sets the seeded marker; a Lua
 * script checks the marker, so running it twice adds nothing. GH_OK, GH_EPG,
 * GH_EREDIS. */
int gh_lv_seed(struct gh_ctx *ctx, uint64_t guild_id);
/* Writes the guild's dirty users' Redis totals to levels_members (an upsert
 * that sets xp to the total: running it twice changes nothing), then removes
 * the users written from the dirty set. *written (may be NULL) = rows.
 * GH_OK, GH_EPG (dirty set kept), GH_EREDIS. */
int gh_lv_flush_guild(struct gh_ctx *ctx, uint64_t guild_id, int *written);
/* Flushes every guild of the shard's dirty_guilds set. GH_OK or the first error
 * (the other guilds still ran). */
int gh_lv_flush_shard(struct gh_ctx *ctx, int shard, int *guilds, int *rows);
/* A user's total: Redis, or PostgreSQL when the guild was not seeded (it
 * seeds it). *rank: 1-based position in the leaderboard, 0 = not ranked. */
int gh_lv_user_total(struct gh_ctx *ctx, uint64_t guild_id, uint64_t user_id, int64_t *xp, long *rank);
/* Page (0-based) of size entries: a JSON array of {user_id, xp, level, rank}
 * from the Redis ZSET, or PostgreSQL when Redis is down. *total = ranked
 * members. *out: caller puts. GH_OK, GH_EPG. */
int gh_lv_leaderboard(struct gh_ctx *ctx, uint64_t guild_id, int page, int size, json_object **out,
                      long *total);
/* Resets a user to 0 XP in Redis and PostgreSQL with an audit_log row
 * (action levels.reset, before/after). GH_OK, GH_EREDIS (nothing changed),
 * GH_EPG (Redis already 0: the next flush writes it). */
int gh_lv_reset(struct gh_ctx *ctx, uint64_t guild_id, uint64_t user_id, uint64_t actor_id, int64_t *before);
/* Adds delta (may be negative; the total never goes below 0) to a user's
 * total in Redis (leaderboard, dirty set) and writes the new total to
 * PostgreSQL with an audit_log row (levels.give or levels.remove). *before
 * and *after receive the totals. GH_OK, GH_EINVAL (delta 0), GH_EREDIS
 * (nothing changed), GH_EPG (Redis changed: the next flush writes it). */
int gh_lv_adjust(struct gh_ctx *ctx, uint64_t guild_id, uint64_t user_id, int64_t delta, uint64_t actor_id,
                 int64_t *before, int64_t *after);
/* Stores the guild's effective premium rank for the inline handler. */
void gh_lv_tier_refresh(struct gh_ctx *ctx, uint64_t guild_id, int *rank);

/* ---- jobs.c / api.c */

#define GH_LV_N_JOBS 3 /* levels:levelup, levels:flush, levels:voice */
extern const struct gh_job_kind gh_lv_jobs[GH_LV_N_JOBS];
int gh_lv_job_levelup(struct gh_ctx *ctx, const struct gh_job *job);
int gh_lv_job_flush(struct gh_ctx *ctx, const struct gh_job *job);
int gh_lv_job_voice(struct gh_ctx *ctx, const struct gh_job *job);
/* Enqueues the shard's flush (or voice) job for the 5-minute slot of now_ms
 * (id levels:flush:<shard>:<slot>, due at the slot's end): idempotent.
 * GH_OK or GH_EREDIS. */
int gh_lv_schedule(struct gh_ctx *ctx, const char *kind, int shard, int64_t now_ms);
/* Voice award of one guild at now_ms (the voice job, per guild): members
 * unmuted and undeafened (self and server) in a channel with at least two
 * such members get voice_xp_per_min x factor per full minute since their
 * last award. *awarded = members. GH_OK, GH_EREDIS. */
int gh_lv_voice_award(struct gh_ctx *ctx, uint64_t guild_id, int64_t now_ms, int *awarded);

/* The settings schema text (commands.c; identical to schema.json). */
const char *gh_lv_schema_text(void);

#define GH_LV_N_ROUTES 2
extern const struct gh_api_route gh_lv_routes[GH_LV_N_ROUTES];

#endif
