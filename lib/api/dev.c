/* dev.c - developer pages (DEVELOPER_USER_IDS): shards, job statistics and
 * dead letters, and premium codes.
 *
 * Shards are reported by gateway-lite into Redis: the set
 * bot:{global}:shards of shard ids and one hash bot:{global}:shards:<id>
 * (state, guilds, latency_ms, last_heartbeat_ms, started_ms, owner,
 * shard_count). Job statistics come from the queue (Redis) and job_runs
 * (PostgreSQL, last 24 h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>
#include <libpq-fe.h>

#include "api/internal.h"
#include "core/ctx.h"
#include "core/err.h"
#include "core/json.h"
#include "core/log.h"
#include "core/str.h"
#include "core/timeutil.h"
#include "features/premium/premium.h"
#include "store/pg.h"
#include "store/queue.h"
#include "store/redis.h"

static const char *const shard_fields[] = {"state",      "guilds", "latency_ms", "last_heartbeat_ms",
                                           "started_ms", "owner",  "shard_count"};
#define N_SHARD_FIELDS (sizeof(shard_fields) / sizeof(shard_fields[0]))

static json_object *num_or_null(const char *s)
{
    int64_t v = 0;
    return s && gh_cstr_to_i64(s, &v) == GH_OK ? json_object_new_int64(v) : NULL;
}

/* One shard's hash as JSON; NULL when it has none. */
static json_object *shard_json(struct gh_api_call *c, const char *id, int64_t now)
{
    char key[128];
    redisReply *h;
    json_object *o = NULL;

    if (gh_key_global(key, sizeof(key), "shards", "%s", id) != GH_OK)
        return NULL;
    h = gh_redis_cmd(c->ctx->redis, "HMGET %s %s %s %s %s %s %s %s", key, shard_fields[0], shard_fields[1],
                     shard_fields[2], shard_fields[3], shard_fields[4], shard_fields[5], shard_fields[6]);
    if (h && h->type == REDIS_REPLY_ARRAY && h->elements == N_SHARD_FIELDS) {
        const char *v[N_SHARD_FIELDS];
        for (size_t i = 0; i < N_SHARD_FIELDS; i++)
            v[i] = h->element[i]->type == REDIS_REPLY_STRING ? h->element[i]->str : NULL;
        int64_t hb = 0;
        int64_t started = 0;
        o = json_object_new_object();
        json_object_object_add(o, "id", num_or_null(id));
        json_object_object_add(o, "state", json_object_new_string(v[0] ? v[0] : "unknown"));
        json_object_object_add(o, "guilds", num_or_null(v[1]));
        json_object_object_add(o, "latency_ms", num_or_null(v[2]));
        json_object_object_add(o, "last_heartbeat",
                               v[3] && gh_cstr_to_i64(v[3], &hb) == GH_OK ? gh_api_iso_or_null(hb) : NULL);
        json_object_object_add(o, "heartbeat_age_s",
                               hb > 0 ? json_object_new_int64((now - hb) / 1000) : NULL);
        json_object_object_add(o, "uptime_s",
                               v[4] && gh_cstr_to_i64(v[4], &started) == GH_OK && started > 0
                                   ? json_object_new_int64((now - started) / 1000)
                                   : NULL);
        json_object_object_add(o, "owner", gh_api_str_or_null(v[5]));
        json_object_object_add(o, "shard_count", num_or_null(v[6]));
    }
    freeReplyObject(h);
    return o;
}

static int by_id(const void *a, const void *b)
{
    int64_t x = json_object_get_int64(json_object_object_get(*(json_object *const *)a, "id"));
    int64_t y = json_object_get_int64(json_object_object_get(*(json_object *const *)b, "id"));
    return x < y ? -1 : x > y;
}

void gh_api_shards_list(struct gh_api_call *c)
{
    redisReply *set =
        c->ctx->redis ? gh_redis_cmd(c->ctx->redis, "SMEMBERS %s", "bot:{global}:shards") : NULL;
    int64_t now = gh_now_ms();
    if (set == NULL || set->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(set);
        gh_api_fail(c, GH_EREDIS, "reading the shards");
        return;
    }
    json_object *arr = json_object_new_array();
    for (size_t i = 0; i < set->elements; i++) {
        json_object *o =
            set->element[i]->type == REDIS_REPLY_STRING ? shard_json(c, set->element[i]->str, now) : NULL;
        if (o)
            json_object_array_add(arr, o);
    }
    freeReplyObject(set);
    json_object_array_sort(arr, by_id);
    json_object *out = json_object_new_object();
    json_object_object_add(out, "shards", arr);
    gh_api_reply(c, 200, out);
}

void gh_api_shard_for_guild(struct gh_api_call *c)
{
    const char *g = gh_api_param(c, "guild_id");
    uint64_t gid = 0;
    int64_t count = 0;
    redisReply *set;

    if (g == NULL || gh_cstr_to_u64(g, &gid) != GH_OK || gid == 0) {
        gh_api_field_error(c, "/guild_id", "must be a Discord server id");
        return;
    }
    set = c->ctx->redis ? gh_redis_cmd(c->ctx->redis, "SMEMBERS %s", "bot:{global}:shards") : NULL;
    if (set == NULL || set->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(set);
        gh_api_fail(c, GH_EREDIS, "reading the shards");
        return;
    }
    for (size_t i = 0; i < set->elements && count == 0; i++) {
        json_object *o = set->element[i]->type == REDIS_REPLY_STRING
                             ? shard_json(c, set->element[i]->str, gh_now_ms())
                             : NULL;
        json_object *n = o ? json_object_object_get(o, "shard_count") : NULL;
        if (n)
            count = json_object_get_int64(n);
        json_object_put(o);
    }
    freeReplyObject(set);
    json_object *out = json_object_new_object();
    json_object_object_add(out, "guild_id", json_object_new_string(g));
    if (count <= 0) {
        json_object_object_add(out, "shard_id", NULL);
        json_object_object_add(out, "shard_count", NULL);
        json_object_object_add(out, "shard", NULL);
        gh_api_reply(c, 200, out);
        return;
    }
    int64_t sid = (int64_t)((gid >> 22) % (uint64_t)count);
    char sids[24];
    (void)snprintf(sids, sizeof(sids), "%lld", (long long)sid);
    json_object_object_add(out, "shard_id", json_object_new_int64(sid));
    json_object_object_add(out, "shard_count", json_object_new_int64(count));
    json_object_object_add(out, "shard", shard_json(c, sids, gh_now_ms()));
    gh_api_reply(c, 200, out);
}

void gh_api_jobs_stats(struct gh_api_call *c)
{
    struct gh_queue_stats st;
    json_object *out = json_object_new_object();
    json_object *queues = json_object_new_array();
    json_object *kinds = json_object_new_array();
    json_object *q = json_object_new_object();
    PGresult *res;

    json_object_object_add(q, "name", json_object_new_string(GH_QUEUE_DEFAULT));
    if (c->ctx->redis && gh_queue_stats(c->ctx->redis, GH_QUEUE_DEFAULT, &st) == GH_OK) {
        json_object_object_add(q, "ready", json_object_new_int64(st.ready));
        json_object_object_add(q, "delayed", json_object_new_int64(st.delayed));
        json_object_object_add(q, "processing", json_object_new_int64(st.processing));
        json_object_object_add(q, "dead", json_object_new_int64(st.dead));
        json_object_object_add(q, "running", json_object_new_int64(st.leases));
        json_object_object_add(q, "leases_expired", json_object_new_int64(st.leases_expired));
        json_object_object_add(
            q, "oldest_ready_s",
            st.oldest_ready_ms >= 0 ? json_object_new_double((double)st.oldest_ready_ms / 1000.0) : NULL);
    } else {
        json_object_object_add(q, "error",
                               json_object_new_string("Redis is down: queue figures unavailable"));
    }
    json_object_array_add(queues, q);
    res = gh_pg_exec_prepared(
        c->ctx->pg, "api_job_kinds",
        "SELECT kind, count(*) FILTER (WHERE status = 'done'), "
        "count(*) FILTER (WHERE status IN ('retry', 'timeout')), "
        "count(*) FILTER (WHERE status = 'dead'), count(*) FILTER (WHERE status = 'expired'), "
        "coalesce(percentile_disc(0.5) WITHIN GROUP (ORDER BY duration_ms), 0), "
        "coalesce(percentile_disc(0.99) WITHIN GROUP (ORDER BY duration_ms), 0) "
        "FROM job_runs WHERE finished_at > now() - interval '24 hours' GROUP BY kind ORDER BY kind",
        0, NULL);
    if (res == NULL) {
        json_object_put(out);
        json_object_put(queues);
        json_object_put(kinds);
        gh_api_fail(c, GH_EPG, "reading job statistics");
        return;
    }
    for (int i = 0; i < PQntuples(res); i++) {
        json_object *k = json_object_new_object();
        json_object_object_add(k, "kind", json_object_new_string(PQgetvalue(res, i, 0)));
        json_object_object_add(k, "ok", json_object_new_int64(atoll(PQgetvalue(res, i, 1))));
        json_object_object_add(k, "failed", json_object_new_int64(atoll(PQgetvalue(res, i, 2))));
        json_object_object_add(k, "dead", json_object_new_int64(atoll(PQgetvalue(res, i, 3))));
        json_object_object_add(k, "expired", json_object_new_int64(atoll(PQgetvalue(res, i, 4))));
        json_object_object_add(k, "p50_ms", json_object_new_int64(atoll(PQgetvalue(res, i, 5))));
        json_object_object_add(k, "p99_ms", json_object_new_int64(atoll(PQgetvalue(res, i, 6))));
        json_object_array_add(kinds, k);
    }
    PQclear(res);
    json_object_object_add(out, "queues", queues);
    json_object_object_add(out, "kinds", kinds);
    gh_api_reply(c, 200, out);
}

void gh_api_jobs_dead(struct gh_api_call *c)
{
    char lim[16];
    int64_t limit = 50;
    json_object *list = NULL;
    if (gh_api_query(c->req, "limit", lim, sizeof(lim)) && lim[0] &&
        (gh_cstr_to_i64(lim, &limit) != GH_OK || limit < 1 || limit > 500)) {
        gh_api_field_error(c, "/limit", "must be between 1 and 500");
        return;
    }
    if (c->ctx->redis == NULL ||
        gh_queue_dead_list(c->ctx->redis, GH_QUEUE_DEFAULT, (int)limit, &list) != GH_OK) {
        gh_api_fail(c, GH_EREDIS, "reading the dead letters");
        return;
    }
    json_object *jobs = json_object_new_array();
    size_t n = json_object_array_length(list);
    for (size_t i = 0; i < n; i++) {
        json_object *j = json_object_array_get_idx(list, i);
        json_object *o = json_object_new_object();
        int64_t failed = 0;
        int64_t attempts = 0;
        (void)gh_json_get_int(j, "failed_ms", &failed);
        (void)gh_json_get_int(j, "attempt", &attempts);
        json_object_object_add(o, "id", gh_api_str_or_null(gh_json_get_str(j, "id")));
        json_object_object_add(o, "kind", gh_api_str_or_null(gh_json_get_str(j, "kind")));
        json_object_object_add(o, "guild_id", gh_api_str_or_null(gh_json_get_str(j, "guild_id")));
        json_object_object_add(o, "attempts", json_object_new_int64(attempts));
        json_object_object_add(o, "error", gh_api_str_or_null(gh_json_get_str(j, "error")));
        json_object_object_add(o, "failed_at", gh_api_iso_or_null(failed));
        json_object_array_add(jobs, o);
    }
    json_object_put(list);
    json_object *out = json_object_new_object();
    json_object_object_add(out, "jobs", jobs);
    gh_api_reply(c, 200, out);
}

void gh_api_jobs_retry(struct gh_api_call *c)
{
    const char *id = gh_api_param(c, "job_id");
    long long moved = 0;
    if (id == NULL || id[0] == '\0') {
        gh_api_field_error(c, "/job_id", "is required");
        return;
    }
    if (c->ctx->redis == NULL || gh_queue_dead_retry(c->ctx->redis, GH_QUEUE_DEFAULT, id, &moved) != GH_OK) {
        gh_api_fail(c, GH_EREDIS, "retrying the job");
        return;
    }
    if (moved == 0) {
        gh_api_error(c, 404, "not_found", "No dead letter has the id %s.", id);
        return;
    }
    json_object *after = json_object_new_object();
    json_object_object_add(after, "job_id", json_object_new_string(id));
    if (gh_api_audit(c, 0, "jobs.retry", id, NULL, after) != GH_OK)
        GH_ERROR(&c->ctx->log, "jobs: retry of %s not recorded in audit_log", id);
    json_object_put(after);
    GH_INFO(&c->ctx->log, "jobs: dead letter %s retried by %llu", id, (unsigned long long)c->user_id);
    json_object *out = json_object_new_object();
    json_object_object_add(out, "retried", json_object_new_int64(moved));
    gh_api_reply(c, 202, out);
}

/* ---- premium routes */

static void premium_answer(struct gh_api_call *c, int status)
{
    json_object *out = NULL;
    int rc = gh_premium_status_json(c->ctx, c->guild_id, &out);
    if (rc != GH_OK) {
        gh_api_fail(c, rc, "reading premium");
        return;
    }
    gh_api_reply(c, status, out);
}

void gh_api_premium_get(struct gh_api_call *c)
{
    premium_answer(c, 200);
}

void gh_api_premium_redeem(struct gh_api_call *c)
{
    const char *code = c->body ? gh_json_get_str(c->body, "code") : NULL;
    if (code == NULL || code[0] == '\0' || strlen(code) > 64) {
        gh_api_field_error(c, "/code", "enter the premium code you received");
        return;
    }
    int rc = gh_premium_redeem(c->ctx, c->guild_id, code, c->user_id);
    if (rc == GH_ENOTFOUND || rc == GH_EINVAL) {
        gh_api_field_error(c, "/code", "this code is not valid; check it and try again");
        return;
    }
    if (rc == GH_ECONFLICT) {
        gh_api_error(
            c, 409, "conflict",
            "This code was already used, or it is for a lower tier than the one this server has now.");
        return;
    }
    if (rc == GH_EEXPIRED) {
        gh_api_field_error(c, "/code", "this code has expired");
        return;
    }
    if (rc != GH_OK) {
        gh_api_fail(c, rc, "redeeming the code");
        return;
    }
    premium_answer(c, 200);
}

void gh_api_premium_trial(struct gh_api_call *c)
{
    int rc = gh_premium_start_trial(c->ctx, c->guild_id, c->user_id);
    if (rc == GH_ECONFLICT) {
        gh_api_error(c, 409, "conflict", "This server already used its trial or has premium.");
        return;
    }
    if (rc == GH_EINVAL) {
        gh_api_error(c, 409, "conflict", "Trials are not offered on this install.");
        return;
    }
    if (rc != GH_OK) {
        gh_api_fail(c, rc, "starting the trial");
        return;
    }
    premium_answer(c, 200);
}

void gh_api_premium_codes(struct gh_api_call *c)
{
    const char *tier = c->body ? gh_json_get_str(c->body, "tier") : NULL;
    int64_t days = 0;
    int64_t count = 1;
    int rank = tier ? gh_premium_tier_rank(tier) : -1;
    json_object *codes = NULL;

    if (rank < 1) {
        gh_api_field_error(c, "/tier", "must be premium or pro");
        return;
    }
    if (gh_json_get_int(c->body, "days", &days) != GH_OK || days < 1 || days > 3650) {
        gh_api_field_error(c, "/days", "must be between 1 and 3650");
        return;
    }
    if (json_object_object_get_ex(c->body, "count", NULL) &&
        (gh_json_get_int(c->body, "count", &count) != GH_OK || count < 1 || count > 100)) {
        gh_api_field_error(c, "/count", "must be between 1 and 100");
        return;
    }
    int rc = gh_premium_codes_create(c->ctx, rank, (int)days, (int)count, c->user_id, &codes);
    if (rc != GH_OK) {
        gh_api_fail(c, rc, "creating premium codes");
        return;
    }
    json_object *out = json_object_new_object();
    json_object_object_add(out, "codes", codes);
    gh_api_reply(c, 201, out);
}
