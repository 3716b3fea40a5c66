/* api.c - the levels dashboard routes (under /api/v1, every one through
 * lib/api's guild access checks: a user reaches only guilds they manage).
 *
 *   GET  /guilds/{id}/levels/leaderboard?page=1&size=25   paged, from the Redis
 *        leaderboard (PostgreSQL's last flush when Redis is down):
 *        {entries:[{user_id,xp,level,rank}], page, size, total}
 *   POST /guilds/{id}/levels/reset/{user_id}   admin: the member back to 0 XP
 *        (Redis and PostgreSQL, audit_log levels.reset): {user_id, before} */
#include "features/levels/levels.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "api/api.h"
#include "core/ctx.h"
#include "core/err.h"
#include "core/log.h"
#include "discord/interaction.h"

static int query_int(struct gh_api_call *c, const char *name, int def, int lo, int hi, int *out)
{
    char v[24];
    char *end;
    long n;

    *out = def;
    if (!gh_api_query(c->req, name, v, sizeof(v)))
        return 1;
    n = strtol(v, &end, 10);
    if (!v[0] || *end || n < lo || n > hi) {
        gh_api_error(c, 400, "invalid_input", "%s must be a whole number from %d to %d", name, lo, hi);
        return 0;
    }
    *out = (int)n;
    return 1;
}

static void lv_leaderboard(struct gh_api_call *c)
{
    int page, size, rc;
    long total = 0;
    json_object *arr = NULL, *body;

    if (!query_int(c, "page", 1, 1, 100000, &page) || !query_int(c, "size", 25, 1, 100, &size))
        return;
    rc = gh_lv_leaderboard(c->ctx, c->guild_id, page - 1, size, &arr, &total);
    if (rc != GH_OK) {
        gh_api_fail(c, rc, "reading the leaderboard");
        return;
    }
    body = json_object_new_object();
    json_object_object_add(body, "entries", arr);
    json_object_object_add(body, "page", json_object_new_int(page));
    json_object_object_add(body, "size", json_object_new_int(size));
    json_object_object_add(body, "total", json_object_new_int64(total));
    gh_api_reply(c, 200, body);
}

static void lv_reset(struct gh_api_call *c)
{
    const char *user = gh_api_param(c, "user_id");
    uint64_t u = user ? gh_snowflake_parse(user) : 0;
    int64_t before = 0;
    int rc;
    json_object *body;

    if (u == 0) {
        gh_api_field_error(c, "/user_id", "must be a member's id");
        return;
    }
    rc = gh_lv_reset(c->ctx, c->guild_id, u, c->user_id, &before);
    if (rc != GH_OK) {
        gh_api_fail(c, rc, "resetting XP");
        return;
    }
    body = json_object_new_object();
    json_object_object_add(body, "user_id", json_object_new_string(user));
    json_object_object_add(body, "before", json_object_new_int64(before));
    gh_api_reply(c, 200, body);
}

const struct gh_api_route gh_lv_routes[GH_LV_N_ROUTES] = {
    {"GET", "/guilds/{id}/levels/leaderboard", GH_API_GUILD, 0, GH_RL_READ, lv_leaderboard,
     "a server's XP leaderboard (paged)"},
    {"POST", "/guilds/{id}/levels/reset/{user_id}", GH_API_GUILD_ADMIN, 0, GH_RL_WRITE, lv_reset,
     "reset a member's XP to 0"},
};
