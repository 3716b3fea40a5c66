/* limits.c - API rate limits: fixed one-minute windows counted in Redis per
 * IP, per user, per guild and globally (per second), for the route's class.
 *
 * One pipelined round trip (INCR + EXPIRE per counter). The tightest counter
 * decides the X-RateLimit-* headers; any counter over its limit answers 429
 * with Retry-After. Developers (DEVELOPER_USER_IDS) bypass the limits. Redis
 * down: the request is allowed and the outage logged (at most every 10 s per
 * process). API_RATE_PROFILE=bench multiplies every limit by 1000 for the
 * benchmark. The same round trip fetches the session marker and the cached
 * guild-access decision for the checks after it. Keys: bot:{global}:api:rl:<class>:ip:<ip>:<minute>,
 * bot:{global}:api:rl:<class>:user:<id>:<minute>,
 * bot:{<guild>}:api:rl:<class>:<minute>, bot:{global}:api:rl:all:<second>;
 * TTL two windows. */
#include <stdio.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "api/internal.h"
#include "core/config.h"
#include "core/ctx.h"
#include "core/err.h"
#include "core/log.h"
#include "core/str.h"
#include "core/timeutil.h"
#include "store/redis.h"
#include "web/http.h"

struct class_limits {
    const char *name;
    long ip, user, guild; /* per minute; 0 = not counted */
};

/* docs/security.md lists these. */
static const struct class_limits classes[GH_RL_N] = {
    [GH_RL_READ] = {"read", 1200, 600, 1200},
    [GH_RL_WRITE] = {"write", 240, 120, 240},
    [GH_RL_AUTH] = {"auth", 60, 0, 0},
    [GH_RL_NONE] = {"none", 0, 0, 0},
};
#define GLOBAL_PER_SECOND 5000L

struct counter {
    char key[200];
    long limit;
    int window_s;
    long long count;
    const char *scope;
};

static int64_t last_redis_warn_ms;

int gh_limits_check(struct gh_api_call *c)
{
    const struct class_limits *cl;
    struct counter k[4];
    int n = 0;
    int64_t now_ms = gh_now_ms();
    long long minute = now_ms / 60000;
    long long second = now_ms / 1000;
    long mult = strcmp(c->ctx->cfg->api_rate_profile, "bench") == 0 ? 1000 : 1;
    int worst = -1;
    long long worst_left = 0;
    int over = -1;
    char val[32];
    char skey[160];
    char akey[128];
    int want_session = 0;
    int want_access = 0;
    const char *gid = gh_api_param(c, "id");
    uint64_t guild = 0;

    c->pre_session = -1;
    c->pre_access = -1;
    if (c->ctx->redis == NULL)
        return GH_OK;
    if (gid != NULL && (gh_cstr_to_u64(gid, &guild) != GH_OK))
        guild = 0;
    cl = &classes[c->route->rl < GH_RL_N ? c->route->rl : GH_RL_NONE];
    if (c->developer)
        cl = &classes[GH_RL_NONE];
    if (cl->ip && gh_key_global(k[n].key, sizeof(k[n].key), "api", "rl:%s:ip:%s:%lld", cl->name, c->ip,
                                minute) == GH_OK) {
        k[n].limit = cl->ip * mult;
        k[n].window_s = 60;
        k[n++].scope = "ip";
    }
    if (cl->user && c->user_id &&
        gh_key_global(k[n].key, sizeof(k[n].key), "api", "rl:%s:user:%llu:%lld", cl->name,
                      (unsigned long long)c->user_id, minute) == GH_OK) {
        k[n].limit = cl->user * mult;
        k[n].window_s = 60;
        k[n++].scope = "user";
    }
    if (cl->guild && guild != 0 &&
        gh_key_guild(k[n].key, sizeof(k[n].key), guild, "api", "rl:%s:%lld", cl->name, minute) == GH_OK) {
        k[n].limit = cl->guild * mult;
        k[n].window_s = 60;
        k[n++].scope = "guild";
    }
    if (cl->ip && gh_key_global(k[n].key, sizeof(k[n].key), "api", "rl:all:%lld", second) == GH_OK) {
        k[n].limit = GLOBAL_PER_SECOND * mult;
        k[n].window_s = 1;
        k[n++].scope = "global";
    }
    /* In the same round trip: what the later checks would ask Redis for. */
    want_session = c->user_id != 0 && c->jti[0] && gh_session_key(skey, sizeof(skey), c->jti) == GH_OK;
    want_access =
        c->user_id != 0 && guild != 0 && gh_access_key(akey, sizeof(akey), guild, c->user_id) == GH_OK;

    /* Every append counts (a failed one too), and every one is answered by
     * gh_redis_get_reply, so the connection is never left with replies owed. */
    int ok = 1;
    int sent = 0;
    for (int i = 0; i < n; i++) {
        ok &= gh_redis_append(c->ctx->redis, "INCR %s", k[i].key) == GH_OK;
        ok &= gh_redis_append(c->ctx->redis, "EXPIRE %s %d", k[i].key, k[i].window_s * 2) == GH_OK;
        sent += 2;
    }
    if (want_session) {
        ok &= gh_redis_append(c->ctx->redis, "EXISTS %s", skey) == GH_OK;
        sent++;
    }
    if (want_access) {
        ok &= gh_redis_append(c->ctx->redis, "GET %s", akey) == GH_OK;
        sent++;
    }
    for (int i = 0; i < sent; i++) {
        redisReply *r = gh_redis_get_reply(c->ctx->redis);
        if (r == NULL) {
            ok = 0;
            continue;
        }
        if (i < 2 * n && i % 2 == 0) {
            if (r->type == REDIS_REPLY_INTEGER)
                k[i / 2].count = r->integer;
            else
                ok = 0;
        } else if (i >= 2 * n && want_session && i == 2 * n) {
            c->pre_session = r->type == REDIS_REPLY_INTEGER ? (int)(r->integer > 0) : -1;
        } else if (i >= 2 * n) {
            c->pre_access =
                r->type == REDIS_REPLY_STRING && r->len == 1 && r->str[0] >= '1' && r->str[0] <= '3'
                    ? r->str[0] - '0'
                    : (r->type == REDIS_REPLY_NIL ? 0 : -1);
        }
        freeReplyObject(r);
    }
    if (!ok) {
        c->pre_session = -1;
        c->pre_access = -1;
        if (now_ms - last_redis_warn_ms > 10000) {
            last_redis_warn_ms = now_ms;
            GH_WARN(&c->ctx->log, "api: Redis down: rate limits not enforced");
        }
        return GH_OK;
    }
    for (int i = 0; i < n; i++) {
        long long left = k[i].limit - k[i].count;
        if (k[i].scope[0] == 'g' && strcmp(k[i].scope, "global") == 0 && left >= 0)
            continue; /* the global limit is a safety net, not what a client sees */
        if (worst < 0 || left < worst_left) {
            worst = i;
            worst_left = left;
        }
        if (left < 0 && over < 0)
            over = i;
    }
    if (worst >= 0) {
        int reset = (int)(k[worst].window_s - (now_ms / 1000) % k[worst].window_s);
        (void)snprintf(val, sizeof(val), "%ld", k[worst].limit);
        gh_http_resp_header(c->resp, "X-RateLimit-Limit", val);
        (void)snprintf(val, sizeof(val), "%lld", worst_left > 0 ? worst_left : 0);
        gh_http_resp_header(c->resp, "X-RateLimit-Remaining", val);
        (void)snprintf(val, sizeof(val), "%d", reset);
        gh_http_resp_header(c->resp, "X-RateLimit-Reset", val);
        gh_http_resp_header(c->resp, "X-RateLimit-Scope", k[worst].scope);
    }
    if (over < 0)
        return GH_OK;
    int retry = (int)(k[over].window_s - (now_ms / 1000) % k[over].window_s);
    (void)snprintf(val, sizeof(val), "%d", retry > 0 ? retry : 1);
    gh_http_resp_header(c->resp, "Retry-After", val);
    GH_INFO(&c->ctx->log, "api: rate limited (%s %s, limit %ld per %d s) %s %s", classes[c->route->rl].name,
            k[over].scope, k[over].limit, k[over].window_s, c->req->method, c->req->path);
    gh_api_error(c, 429, "rate_limited", "Too many requests; try again in %s s.", val);
    return GH_ERATELIMIT;
}
