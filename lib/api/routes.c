/* routes.c - the platform's routes (features add theirs in their struct
 * gh_feature). Each row declares what it needs; gh_api_dispatch checks it.
 * docs/api.md documents every row. */
#include <stddef.h>
#include <stdio.h>

#include "api/api.h"
#include "core/ctx.h"
#include "core/err.h"
#include "core/timeutil.h"
#include "core/version.h"
#include "store/pg.h"
#include "store/redis.h"

#define S GH_API_SESSION
#define G GH_API_GUILD
#define A GH_API_GUILD_ADMIN
#define D GH_API_DEVELOPER

const struct gh_api_route gh_api_platform_routes[] = {
    {"GET", "/health", GH_API_PUBLIC, 0, GH_RL_NONE, gh_api_health, "health of the stack"},
    {"GET", "/auth/discord/login", GH_API_PUBLIC, 0, GH_RL_AUTH, gh_api_auth_login,
     "start the Discord login"},
    {"GET", "/auth/discord/install", GH_API_PUBLIC, 0, GH_RL_AUTH, gh_api_auth_install,
     "add Guildhall to a server"},
    {"GET", "/auth/discord/callback", GH_API_PUBLIC, 0, GH_RL_AUTH, gh_api_auth_callback,
     "Discord login callback"},
    {"POST", "/auth/logout", S, 0, GH_RL_WRITE, gh_api_auth_logout, "log out"},
    {"GET", "/auth/me", S, 0, GH_RL_READ, gh_api_auth_me, "who is logged in"},
    {"GET", "/guilds", S, 0, GH_RL_READ, gh_api_guilds_list, "servers you can manage"},
    {"GET", "/guilds/{id}", G, 0, GH_RL_READ, gh_api_guild_get, "a server's overview"},
    {"GET", "/guilds/{id}/members", G, 0, GH_RL_READ, gh_api_guild_members, "search a server's members"},
    {"GET", "/guilds/{id}/roles", G, 0, GH_RL_READ, gh_api_guild_roles, "a server's roles"},
    {"GET", "/guilds/{id}/channels", G, 0, GH_RL_READ, gh_api_guild_channels, "a server's channels"},
    {"GET", "/guilds/{id}/authorized-users", G, 0, GH_RL_READ, gh_api_access_list, "who was granted access"},
    {"POST", "/guilds/{id}/authorized-users", A, 0, GH_RL_WRITE, gh_api_access_grant, "grant access"},
    {"DELETE", "/guilds/{id}/authorized-users/{user_id}", A, 0, GH_RL_WRITE, gh_api_access_revoke,
     "revoke access"},
    {"GET", "/guilds/{id}/settings", G, 0, GH_RL_READ, gh_api_settings_all, "every feature's settings"},
    {"GET", "/guilds/{id}/settings/{feature}", G, 0, GH_RL_READ, gh_api_settings_get,
     "one feature's settings"},
    {"PUT", "/guilds/{id}/settings/{feature}", G, 0, GH_RL_WRITE, gh_api_settings_put,
     "save a feature's settings"},
    {"GET", "/guilds/{id}/premium", G, 0, GH_RL_READ, gh_api_premium_get, "a server's premium status"},
    {"POST", "/guilds/{id}/premium/redeem", A, 0, GH_RL_WRITE, gh_api_premium_redeem,
     "redeem a premium code"},
    {"POST", "/guilds/{id}/premium/trial", A, 0, GH_RL_WRITE, gh_api_premium_trial,
     "start the premium trial"},
    {"POST", "/premium/codes", D, 0, GH_RL_WRITE, gh_api_premium_codes, "issue premium codes"},
    {"GET", "/shards", D, 0, GH_RL_READ, gh_api_shards_list, "gateway shards"},
    {"GET", "/shards/{guild_id}", D, 0, GH_RL_READ, gh_api_shard_for_guild, "the shard of a server"},
    {"GET", "/jobs/stats", D, 0, GH_RL_READ, gh_api_jobs_stats, "job queue statistics"},
    {"GET", "/jobs/dead", D, 0, GH_RL_READ, gh_api_jobs_dead, "dead letters"},
    {"POST", "/jobs/dead/{job_id}/retry", D, 0, GH_RL_WRITE, gh_api_jobs_retry, "retry a dead letter"},
};
const size_t gh_api_platform_n_routes = sizeof(gh_api_platform_routes) / sizeof(gh_api_platform_routes[0]);

void gh_api_health(struct gh_api_call *c)
{
    struct gh_ctx *ctx = c->ctx;
    int pg_ok = ctx->pg && gh_pg_ping(ctx->pg) == GH_OK;
    int redis_ok = ctx->redis && gh_redis_ping(ctx->redis) == GH_OK;
    json_object *o = json_object_new_object();
    json_object_object_add(o, "status", json_object_new_string(pg_ok && redis_ok ? "ok" : "degraded"));
    json_object_object_add(o, "postgres", json_object_new_string(pg_ok ? "ok" : "down"));
    json_object_object_add(o, "redis", json_object_new_string(redis_ok ? "ok" : "down"));
    json_object_object_add(o, "version", json_object_new_string(GH_VERSION));
    json_object_object_add(o, "uptime_s", json_object_new_int64((gh_now_ms() - ctx->started_ms) / 1000));
    if (!pg_ok || !redis_ok)
        GH_WARN(&ctx->log, "health: postgres %s, redis %s", pg_ok ? "ok" : "down", redis_ok ? "ok" : "down");
    /* Without PostgreSQL nothing works; without Redis we carry on slower. */
    gh_api_reply(c, pg_ok ? 200 : 503, o);
}
