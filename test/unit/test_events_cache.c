/* test_events_cache.c - the events feature against the test stack's Redis
 * and PostgreSQL: the inline handlers fill the caches in guildcache's format
 * (and guildcache then reads them without any REST call), role and channel
 * events edit the arrays, GUILD_DELETE keeps (outage) or drops (removed) the
 * caches and the job deactivates the guild, member counts, message copies
 * with gh_before annotations and the per-guild cap, Redis down, the
 * gateway:event runner (dispatch, malformed payloads), and the events:prefix
 * job end to end with gh_rest_do wrapped (refused without the permission,
 * usage on bad arguments, a routed answer as a reply).
 *
 * Needs DATABASE_URL and REDIS_URL (skips without). Every test makes its own
 * random guild id and removes what it wrote. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include <json-c/json.h>

#include "core/config.h"
#include "core/ctx.h"
#include "core/err.h"
#include "core/json.h"
#include "core/log.h"
#include "discord/guildcache.h"
#include "discord/rest.h"
#include "features/events/events.h"
#include "store/pg.h"
#include "store/queue.h"
#include "store/redis.h"
#include "store/settings.h"

#define DEAD_REDIS "redis://127.0.0.1:1/0"
#define APP_ID 1234567890123456789ULL

/* ---- gh_rest_do wrapped: every call recorded ---------------------------- */

struct rest_call {
    char method[8];
    char path[128];
    char body[4096];
};
static struct rest_call calls[16];
static int n_calls;

int __wrap_gh_rest_do(struct gh_rest *rest, const struct gh_rest_req *req, struct gh_rest_resp *resp);
int __wrap_gh_rest_do(struct gh_rest *rest, const struct gh_rest_req *req, struct gh_rest_resp *resp)
{
    (void)rest;
    if (n_calls < (int)(sizeof(calls) / sizeof(calls[0]))) {
        struct rest_call *c = &calls[n_calls];
        snprintf(c->method, sizeof(c->method), "%s", req->method);
        snprintf(c->path, sizeof(c->path), "%s", req->path);
        snprintf(c->body, sizeof(c->body), "%.*s", (int)req->body_len, req->body ? req->body : "");
    }
    n_calls++;
    memset(resp, 0, sizeof(*resp));
    resp->status = 404;
    resp->body = strdup("{\"message\":\"Unknown\",\"code\":10004}");
    resp->body_len = strlen(resp->body);
    if (!strcmp(req->method, "POST")) {
        resp->status = 200;
        free(resp->body);
        resp->body = strdup("{\"id\":\"1\"}");
        resp->body_len = strlen(resp->body);
        return GH_OK;
    }
    return GH_ENOTFOUND;
}

/* ---- fixture ------------------------------------------------------------ */

struct fx {
    struct gh_config cfg;
    struct gh_log_sink sink;
    struct gh_ctx ctx;
    struct gh_pg *pg;
    struct gh_redis *redis;
    char log_path[64];
    uint64_t guild;
    char gid[24];
    int rest_token; /* a non-NULL ctx->rest for the wrapped client */
};

#define NEED_STORES()                                                                                        \
    do {                                                                                                     \
        if (!getenv("DATABASE_URL") || !getenv("REDIS_URL")) {                                               \
            print_message("DATABASE_URL or REDIS_URL is not set: events store tests skipped\n");             \
            skip();                                                                                          \
        }                                                                                                    \
    } while (0)

static uint64_t random_id(void)
{
    uint64_t r = 0;
    assert_int_equal(getrandom(&r, sizeof(r), 0), (ssize_t)sizeof(r));
    return 1000000000000000000ULL + r % 4000000000000000000ULL;
}

static void drop_guild(struct fx *fx)
{
    static const char *const sql[] = {
        "DELETE FROM audit_log WHERE guild_id = $1",  "DELETE FROM command_log WHERE guild_id = $1",
        "DELETE FROM error_log WHERE guild_id = $1",  "DELETE FROM guild_settings WHERE guild_id = $1",
        "DELETE FROM guilds WHERE id = $1",
    };
    const char *params[1] = {fx->gid};
    char pattern[64];

    for (size_t i = 0; i < sizeof(sql) / sizeof(sql[0]); i++)
        (void)gh_pg_command(fx->pg, sql[i], 1, params); /* a table may not have guild_id: ignored */
    snprintf(pattern, sizeof(pattern), "bot:{%s}:*", fx->gid);
    redisReply *keys = gh_redis_cmd(fx->redis, "KEYS %s", pattern);
    for (size_t i = 0; keys && i < keys->elements; i++) {
        redisReply *r = gh_redis_cmd(fx->redis, "DEL %s", keys->element[i]->str);
        freeReplyObject(r);
    }
    freeReplyObject(keys);
}

static int setup(void **state)
{
    const char *db = getenv("DATABASE_URL"), *ru = getenv("REDIS_URL");
    struct fx *fx = calloc(1, sizeof(*fx));

    if (!fx)
        return -1;
    snprintf(fx->log_path, sizeof(fx->log_path), "/tmp/test_events_cache.%d.log", (int)getpid());
    if (gh_log_sink_init(&fx->sink, "test_events_cache", GH_LOG_DEBUG, fx->log_path, 0, 0) != GH_OK)
        return -1;
    gh_logger_init(&fx->ctx.log, &fx->sink, "events");
    fx->cfg.application_id = APP_ID;
    fx->cfg.gateway_settings_ttl_ms = 1;
    fx->ctx.cfg = &fx->cfg;
    fx->ctx.queue = "events_test";
    fx->ctx.rest = (struct gh_rest *)&fx->rest_token;
    fx->guild = random_id();
    snprintf(fx->gid, sizeof(fx->gid), "%" PRIu64, fx->guild);
    if (db && ru) {
        fx->pg = gh_pg_new(db, 10000, NULL);
        fx->redis = gh_redis_new(ru, 500, NULL);
        fx->ctx.pg = gh_pg_new(db, 10000, &fx->ctx.log);
        fx->ctx.redis = gh_redis_new(ru, 500, &fx->ctx.log);
    }
    n_calls = 0;
    gh_events_set_msg_cap(0);
    if (fx->redis) { /* this file's own queue starts empty */
        redisReply *keys = gh_redis_cmd(fx->redis, "KEYS bot:{q*}:jobs:events_test:*");
        for (size_t i = 0; keys && i < keys->elements; i++) {
            redisReply *r = gh_redis_cmd(fx->redis, "DEL %s", keys->element[i]->str);
            freeReplyObject(r);
        }
        freeReplyObject(keys);
    }
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fx *fx = *state;
    if (fx->pg && fx->redis)
        drop_guild(fx);
    gh_pg_free(fx->ctx.pg);
    gh_redis_free(fx->ctx.redis);
    gh_pg_free(fx->pg);
    gh_redis_free(fx->redis);
    gh_log_sink_cleanup(&fx->sink);
    unlink(fx->log_path);
    free(fx);
    return 0;
}

/* ---- helpers ------------------------------------------------------------ */

static json_object *j(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static json_object *j(const char *fmt, ...)
{
    char buf[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    json_object *o = json_tokener_parse(buf);
    if (!o)
        fail_msg("test JSON does not parse: %s", buf);
    return o;
}

/* Runs one inline handler on one event. */
static void inline1(struct fx *fx, gh_event_batch_fn fn, const char *name, json_object *d)
{
    struct gh_event ev = {.name = name, .guild_id = gh_events_guild_of(name, d), .d = d};
    struct gh_event *evs[1] = {&ev};
    assert_int_equal(fn(&fx->ctx, evs, 1), GH_OK);
}

static char *get(struct fx *fx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static char *get(struct fx *fx, const char *fmt, ...)
{
    static char out[16384];
    char key[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(key, sizeof(key), fmt, ap);
    va_end(ap);
    redisReply *r = gh_redis_cmd(fx->redis, "GET %s", key);
    assert_non_null(r);
    if (r->type != REDIS_REPLY_STRING) {
        freeReplyObject(r);
        return NULL;
    }
    snprintf(out, sizeof(out), "%s", r->str);
    freeReplyObject(r);
    return out;
}

static char *hget(struct fx *fx, const char *field)
{
    static char out[256];
    char key[160];
    snprintf(key, sizeof(key), "bot:{%s}:cache:guild", fx->gid);
    redisReply *r = gh_redis_cmd(fx->redis, "HGET %s %s", key, field);
    assert_non_null(r);
    if (r->type != REDIS_REPLY_STRING) {
        freeReplyObject(r);
        return NULL;
    }
    snprintf(out, sizeof(out), "%s", r->str);
    freeReplyObject(r);
    return out;
}

static long long ttl(struct fx *fx, const char *suffix)
{
    char key[160];
    snprintf(key, sizeof(key), "bot:{%s}:cache:%s", fx->gid, suffix);
    redisReply *r = gh_redis_cmd(fx->redis, "TTL %s", key);
    assert_non_null(r);
    long long v = r->integer;
    freeReplyObject(r);
    return v;
}

static const char *pgvalue(struct fx *fx, const char *sql)
{
    static char out[256];
    const char *params[1] = {fx->gid};
    PGresult *res = gh_pg_exec(fx->pg, sql, 1, params);
    if (!res)
        fail_msg("%s: %s", sql, gh_pg_errmsg(fx->pg));
    snprintf(out, sizeof(out), "%s", PQntuples(res) > 0 ? PQgetvalue(res, 0, 0) : "");
    PQclear(res);
    return out;
}

static json_object *guild_create_d(struct fx *fx)
{
    const char *g = fx->gid;
    return j("{\"id\":\"%s\",\"name\":\"Cache Guild\",\"owner_id\":\"111\",\"icon\":\"abc\",\"member_count\":42,"
             "\"roles\":[{\"id\":\"%s\",\"name\":\"@everyone\",\"position\":0,\"permissions\":\"3072\"},"
             "{\"id\":\"21\",\"name\":\"Mod\",\"position\":2,\"permissions\":\"1099511627776\"},"
             "{\"id\":\"22\",\"name\":\"Member\",\"position\":1,\"permissions\":\"0\"},"
             "{\"id\":\"23\",\"name\":\"Bot\",\"position\":3,\"permissions\":\"8\"}],"
             "\"channels\":[{\"id\":\"31\",\"type\":0,\"name\":\"general\",\"position\":0},"
             "{\"id\":\"32\",\"type\":0,\"name\":\"mods\",\"position\":1}],"
             "\"members\":[],\"unavailable\":false}",
             g, g);
}

static int index_of(json_object *arr, const char *id)
{
    for (size_t i = 0; arr && i < json_object_array_length(arr); i++) {
        const char *e = gh_json_get_str(json_object_array_get_idx(arr, i), "id");
        if (e && !strcmp(e, id))
            return (int)i;
    }
    return -1;
}

static int run_job(struct fx *fx, const char *kind, json_object *payload)
{
    struct gh_job job;
    memset(&job, 0, sizeof(job));
    snprintf(job.id, sizeof(job.id), "test:%s", kind);
    snprintf(job.kind, sizeof(job.kind), "%s", kind);
    job.payload = payload;
    job.attempt = 1;
    int rc = !strcmp(kind, "gateway:event") ? gh_events_run_gateway_event(&fx->ctx, &job)
                                            : gh_events_run_prefix(&fx->ctx, &job);
    job.payload = NULL;
    return rc;
}

/* ---- tests -------------------------------------------------------------- */

static void test_guild_create_fills_guildcache(void **state)
{
    struct fx *fx = *state;
    NEED_STORES();
    json_object *d = guild_create_d(fx);
    inline1(fx, gh_events_guild_create, "GUILD_CREATE", d);
    json_object_put(d);

    assert_string_equal(hget(fx, "name"), "Cache Guild");
    assert_string_equal(hget(fx, "owner_id"), "111");
    assert_string_equal(hget(fx, "member_count"), "42");
    assert_string_equal(hget(fx, "icon"), "abc");
    assert_string_equal(hget(fx, "unavailable"), "0");
    assert_true(ttl(fx, "guild") > 3600);
    assert_true(ttl(fx, "roles") > 3600);
    assert_true(ttl(fx, "channels") > 3600);

    /* guildcache reads them: no REST call */
    json_object *roles = NULL, *channels = NULL;
    n_calls = 0;
    assert_int_equal(gh_guildcache_roles(&fx->ctx, fx->guild, &roles), GH_OK);
    assert_int_equal(gh_guildcache_channels(&fx->ctx, fx->guild, &channels), GH_OK);
    assert_int_equal(n_calls, 0);
    assert_int_equal(json_object_array_length(roles), 4);
    assert_int_equal(gh_guildcache_role_position(roles, "21"), 2);
    assert_int_equal(index_of(channels, "32"), 1);
    json_object_put(roles);
    json_object_put(channels);

    /* and the job: the row exists, active, named */
    d = guild_create_d(fx);
    json_object *p = j("{\"t\":\"GUILD_CREATE\",\"shard\":0,\"seq\":5,\"received_ms\":1}");
    json_object_object_add(p, "d", d);
    assert_int_equal(run_job(fx, "gateway:event", p), GH_OK);
    json_object_put(p);
    assert_string_equal(pgvalue(fx, "SELECT is_active::text || name FROM guilds WHERE id = $1"), "trueCache Guild");
}

static void test_roles_and_channels_edit_arrays(void **state)
{
    struct fx *fx = *state;
    NEED_STORES();
    json_object *d = guild_create_d(fx);
    inline1(fx, gh_events_guild_create, "GUILD_CREATE", d);
    json_object_put(d);

    d = j("{\"guild_id\":\"%s\",\"role\":{\"id\":\"24\",\"name\":\"New\",\"position\":4,\"permissions\":\"0\"}}", fx->gid);
    inline1(fx, gh_events_role_event, "GUILD_ROLE_CREATE", d);
    json_object_put(d);
    d = j("{\"guild_id\":\"%s\",\"role\":{\"id\":\"21\",\"name\":\"Mods\",\"position\":5,\"permissions\":\"4\"}}", fx->gid);
    inline1(fx, gh_events_role_event, "GUILD_ROLE_UPDATE", d);
    json_object_put(d);
    d = j("{\"guild_id\":\"%s\",\"role_id\":\"22\"}", fx->gid);
    inline1(fx, gh_events_role_event, "GUILD_ROLE_DELETE", d);
    json_object_put(d);

    json_object *roles = NULL;
    assert_int_equal(gh_guildcache_roles(&fx->ctx, fx->guild, &roles), GH_OK);
    assert_int_equal(json_object_array_length(roles), 4);
    assert_int_equal(gh_guildcache_role_position(roles, "24"), 4);
    assert_int_equal(gh_guildcache_role_position(roles, "21"), 5);
    assert_int_equal(gh_guildcache_role_position(roles, "22"), -1);
    assert_string_equal(gh_json_get_str(json_object_array_get_idx(roles, index_of(roles, "21")), "permissions"), "4");
    json_object_put(roles);

    d = j("{\"guild_id\":\"%s\",\"id\":\"33\",\"type\":2,\"name\":\"voice\"}", fx->gid);
    inline1(fx, gh_events_channel_event, "CHANNEL_CREATE", d);
    json_object_put(d);
    d = j("{\"guild_id\":\"%s\",\"id\":\"31\",\"type\":0,\"name\":\"chat\"}", fx->gid);
    inline1(fx, gh_events_channel_event, "CHANNEL_UPDATE", d);
    json_object_put(d);
    d = j("{\"guild_id\":\"%s\",\"id\":\"32\",\"type\":0}", fx->gid);
    inline1(fx, gh_events_channel_event, "CHANNEL_DELETE", d);
    json_object_put(d);
    json_object *ch = NULL;
    n_calls = 0;
    assert_int_equal(gh_guildcache_channels(&fx->ctx, fx->guild, &ch), GH_OK);
    assert_int_equal(n_calls, 0);
    assert_int_equal(json_object_array_length(ch), 2);
    assert_true(index_of(ch, "33") >= 0);
    assert_int_equal(index_of(ch, "32"), -1);
    assert_string_equal(gh_json_get_str(json_object_array_get_idx(ch, index_of(ch, "31")), "name"), "chat");
    json_object_put(ch);
}

static void test_guild_delete_outage_and_removal(void **state)
{
    struct fx *fx = *state;
    NEED_STORES();
    json_object *d = guild_create_d(fx);
    inline1(fx, gh_events_guild_create, "GUILD_CREATE", d);
    json_object *p = j("{\"t\":\"GUILD_CREATE\"}");
    json_object_object_add(p, "d", d);
    assert_int_equal(run_job(fx, "gateway:event", p), GH_OK);
    json_object_put(p);

    /* an outage: caches kept, marked unavailable, row stays active */
    d = j("{\"id\":\"%s\",\"unavailable\":true}", fx->gid);
    inline1(fx, gh_events_guild_delete, "GUILD_DELETE", d);
    assert_string_equal(hget(fx, "unavailable"), "1");
    assert_non_null(get(fx, "bot:{%s}:cache:roles", fx->gid));
    p = j("{\"t\":\"GUILD_DELETE\"}");
    json_object_object_add(p, "d", d);
    assert_int_equal(run_job(fx, "gateway:event", p), GH_OK);
    json_object_put(p);
    assert_string_equal(pgvalue(fx, "SELECT is_active::text FROM guilds WHERE id = $1"), "true");

    /* removed: caches dropped, row inactive, audited */
    d = j("{\"id\":\"%s\"}", fx->gid);
    inline1(fx, gh_events_guild_delete, "GUILD_DELETE", d);
    assert_null(get(fx, "bot:{%s}:cache:roles", fx->gid));
    assert_null(get(fx, "bot:{%s}:cache:channels", fx->gid));
    assert_null(hget(fx, "name"));
    p = j("{\"t\":\"GUILD_DELETE\"}");
    json_object_object_add(p, "d", d);
    assert_int_equal(run_job(fx, "gateway:event", p), GH_OK);
    json_object_put(p);
    assert_string_equal(pgvalue(fx, "SELECT is_active::text FROM guilds WHERE id = $1"), "false");
    assert_string_equal(pgvalue(fx, "SELECT count(*) FROM audit_log WHERE guild_id = $1 AND action = 'guild.removed'"),
                        "1");

    /* the bot is added back: active again */
    d = guild_create_d(fx);
    p = j("{\"t\":\"GUILD_CREATE\"}");
    json_object_object_add(p, "d", d);
    assert_int_equal(run_job(fx, "gateway:event", p), GH_OK);
    json_object_put(p);
    assert_string_equal(pgvalue(fx, "SELECT is_active::text FROM guilds WHERE id = $1"), "true");
}

static void test_member_counts(void **state)
{
    struct fx *fx = *state;
    NEED_STORES();
    /* no summary cached: nothing invented */
    json_object *add = j("{\"guild_id\":\"%s\",\"user\":{\"id\":\"77\"}}", fx->gid);
    inline1(fx, gh_events_member_add, "GUILD_MEMBER_ADD", add);
    assert_null(hget(fx, "member_count"));

    json_object *d = guild_create_d(fx);
    inline1(fx, gh_events_guild_create, "GUILD_CREATE", d);
    json_object_put(d);
    inline1(fx, gh_events_member_add, "GUILD_MEMBER_ADD", add);
    inline1(fx, gh_events_member_add, "GUILD_MEMBER_ADD", add);
    assert_string_equal(hget(fx, "member_count"), "44");
    redisReply *r = gh_redis_cmd(fx->redis, "SET bot:{%s}:cache:member:77 {} EX 60", fx->gid);
    freeReplyObject(r);
    inline1(fx, gh_events_member_remove, "GUILD_MEMBER_REMOVE", add);
    assert_string_equal(hget(fx, "member_count"), "43");
    assert_null(get(fx, "bot:{%s}:cache:member:77", fx->gid));

    r = gh_redis_cmd(fx->redis, "SET bot:{%s}:cache:member:77 {} EX 60", fx->gid);
    freeReplyObject(r);
    inline1(fx, gh_events_member_update, "GUILD_MEMBER_UPDATE", add);
    assert_null(get(fx, "bot:{%s}:cache:member:77", fx->gid));

    /* the job: the guild row is ensured, the event counted */
    json_object *p = j("{\"t\":\"GUILD_MEMBER_ADD\"}");
    json_object_object_add(p, "d", add);
    assert_int_equal(run_job(fx, "gateway:event", p), GH_OK);
    json_object_put(p);
    assert_string_equal(pgvalue(fx, "SELECT is_active::text FROM guilds WHERE id = $1"), "true");
}

static json_object *message(struct fx *fx, uint64_t id, const char *content)
{
    return j("{\"id\":\"%" PRIu64 "\",\"guild_id\":\"%s\",\"channel_id\":\"31\",\"author\":{\"id\":\"77\","
             "\"username\":\"bob\"},\"content\":\"%s\",\"attachments\":[{\"id\":\"1\"}]}",
             id, fx->gid, content);
}

static void test_message_cache_and_before(void **state)
{
    struct fx *fx = *state;
    NEED_STORES();
    uint64_t base = 1200000000000000000ULL;
    struct gh_event evs_storage[3];
    struct gh_event *evs[3];
    json_object *msgs[3];

    for (int i = 0; i < 3; i++) {
        char content[32];
        snprintf(content, sizeof(content), "hello %d", i);
        msgs[i] = message(fx, base + (uint64_t)i * (UINT64_C(1) << 22), content);
        evs_storage[i] = (struct gh_event){.name = "MESSAGE_CREATE", .guild_id = fx->guild, .d = msgs[i]};
        evs[i] = &evs_storage[i];
    }
    assert_int_equal(gh_events_message_create(&fx->ctx, evs, 3), GH_OK);
    for (int i = 0; i < 3; i++)
        json_object_put(msgs[i]);
    char *copy = get(fx, "bot:{%s}:cache:msg:%" PRIu64, fx->gid, base);
    assert_non_null(copy);
    json_object *c = json_tokener_parse(copy);
    assert_string_equal(gh_json_get_str(c, "content"), "hello 0");
    assert_string_equal(gh_json_get_str(c, "author_id"), "77");
    assert_string_equal(gh_json_get_str(c, "channel_id"), "31");
    int64_t att = 0;
    assert_int_equal(gh_json_get_int(c, "attachments", &att), GH_OK);
    assert_int_equal(att, 1);
    json_object_put(c);
    assert_true(ttl(fx, "msgs") > 3600);

    /* an edit: the event carries the old content; the copy has the new one */
    json_object *up = j("{\"id\":\"%" PRIu64 "\",\"guild_id\":\"%s\",\"channel_id\":\"31\",\"content\":\"edited\"}",
                        base, fx->gid);
    inline1(fx, gh_events_message_update, "MESSAGE_UPDATE", up);
    json_object *before = gh_json_get_obj(up, "gh_before");
    assert_non_null(before);
    assert_string_equal(gh_json_get_str(before, "content"), "hello 0");
    c = json_tokener_parse(get(fx, "bot:{%s}:cache:msg:%" PRIu64, fx->gid, base));
    assert_string_equal(gh_json_get_str(c, "content"), "edited");
    json_object_put(c);
    /* the job carries gh_before through */
    json_object *p = j("{\"t\":\"MESSAGE_UPDATE\",\"seq\":9}");
    json_object_object_add(p, "d", up);
    assert_int_equal(run_job(fx, "gateway:event", p), GH_OK);
    json_object_put(p);

    /* a delete: annotated, then the copy is gone */
    json_object *del = j("{\"id\":\"%" PRIu64 "\",\"guild_id\":\"%s\",\"channel_id\":\"31\"}", base + (UINT64_C(1) << 22), fx->gid);
    inline1(fx, gh_events_message_delete, "MESSAGE_DELETE", del);
    assert_string_equal(gh_json_get_str(gh_json_get_obj(del, "gh_before"), "content"), "hello 1");
    assert_null(get(fx, "bot:{%s}:cache:msg:%" PRIu64, fx->gid, base + (UINT64_C(1) << 22)));
    json_object_put(del);

    /* a bulk delete: an object id -> copy */
    del = j("{\"ids\":[\"%" PRIu64 "\",\"%" PRIu64 "\",\"5\"],\"guild_id\":\"%s\",\"channel_id\":\"31\"}", base,
            base + 2 * (UINT64_C(1) << 22), fx->gid);
    inline1(fx, gh_events_message_delete, "MESSAGE_DELETE_BULK", del);
    json_object *bb = gh_json_get_obj(del, "gh_before");
    assert_non_null(bb);
    char k[24];
    snprintf(k, sizeof(k), "%" PRIu64, base + 2 * (UINT64_C(1) << 22));
    assert_string_equal(gh_json_get_str(gh_json_get_obj(bb, k), "content"), "hello 2");
    assert_int_equal(json_object_object_length(bb), 2);
    json_object_put(del);
    redisReply *r = gh_redis_cmd(fx->redis, "ZCARD bot:{%s}:cache:msgs", fx->gid);
    assert_int_equal(r->integer, 0);
    freeReplyObject(r);
}

static void test_message_cap_and_content_limit(void **state)
{
    struct fx *fx = *state;
    NEED_STORES();
    uint64_t base = 1200000000000000000ULL;
    enum { N = 8 };
    struct gh_event st[N];
    struct gh_event *evs[N];
    json_object *msgs[N];

    gh_events_set_msg_cap(5);
    for (int i = 0; i < N; i++) {
        msgs[i] = message(fx, base + (uint64_t)i * (UINT64_C(1) << 22), "x");
        st[i] = (struct gh_event){.name = "MESSAGE_CREATE", .guild_id = fx->guild, .d = msgs[i]};
        evs[i] = &st[i];
    }
    assert_int_equal(gh_events_message_create(&fx->ctx, evs, N), GH_OK);
    for (int i = 0; i < N; i++)
        json_object_put(msgs[i]);
    redisReply *r = gh_redis_cmd(fx->redis, "ZCARD bot:{%s}:cache:msgs", fx->gid);
    assert_int_equal(r->integer, 5);
    freeReplyObject(r);
    assert_null(get(fx, "bot:{%s}:cache:msg:%" PRIu64, fx->gid, base));                    /* oldest trimmed */
    assert_null(get(fx, "bot:{%s}:cache:msg:%" PRIu64, fx->gid, base + 2 * (UINT64_C(1) << 22))); /* its copy too */
    assert_non_null(get(fx, "bot:{%s}:cache:msg:%" PRIu64, fx->gid, base + 3 * (UINT64_C(1) << 22)));

    /* content capped at 4000 bytes */
    char *big = malloc(6001);
    memset(big, 'a', 6000);
    big[6000] = '\0';
    json_object *m = message(fx, base + 100 * (UINT64_C(1) << 22), "y");
    json_object_object_add(m, "content", json_object_new_string(big));
    free(big);
    inline1(fx, gh_events_message_create, "MESSAGE_CREATE", m);
    json_object_put(m);
    json_object *c = json_tokener_parse(get(fx, "bot:{%s}:cache:msg:%" PRIu64, fx->gid, base + 100 * (UINT64_C(1) << 22)));
    assert_int_equal(strlen(gh_json_get_str(c, "content")), GH_EVENTS_MSG_CONTENT_MAX);
    json_object_put(c);
}

static void test_redis_down(void **state)
{
    struct fx *fx = *state;
    NEED_STORES();
    struct gh_redis *good = fx->ctx.redis;
    fx->ctx.redis = gh_redis_new(DEAD_REDIS, 100, &fx->ctx.log);
    json_object *d = guild_create_d(fx);
    inline1(fx, gh_events_guild_create, "GUILD_CREATE", d);
    json_object_put(d);
    d = message(fx, 1200000000000000000ULL, "hi");
    inline1(fx, gh_events_message_create, "MESSAGE_CREATE", d);
    inline1(fx, gh_events_message_update, "MESSAGE_UPDATE", d);
    assert_null(gh_json_get_obj(d, "gh_before"));
    inline1(fx, gh_events_message_delete, "MESSAGE_DELETE", d);
    json_object_put(d);
    d = j("{\"guild_id\":\"%s\",\"role_id\":\"22\"}", fx->gid);
    inline1(fx, gh_events_role_event, "GUILD_ROLE_DELETE", d);
    inline1(fx, gh_events_member_add, "GUILD_MEMBER_ADD", d);
    json_object_put(d);
    gh_redis_free(fx->ctx.redis);
    fx->ctx.redis = NULL;
    d = guild_create_d(fx);
    inline1(fx, gh_events_guild_create, "GUILD_CREATE", d);
    json_object_put(d);
    fx->ctx.redis = good;
    assert_null(hget(fx, "name")); /* nothing was written anywhere */
}

static void test_runner(void **state)
{
    struct fx *fx = *state;
    NEED_STORES();
    /* malformed payloads: permanent */
    const char *bad[] = {"{}", "{\"t\":\"MESSAGE_DELETE\"}", "{\"t\":\"MESSAGE_DELETE\",\"d\":[1]}",
                         "{\"t\":\"\",\"d\":{}}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        json_object *p = json_tokener_parse(bad[i]);
        assert_int_equal(run_job(fx, "gateway:event", p), GH_EINVAL);
        json_object_put(p);
    }
    assert_int_equal(run_job(fx, "gateway:event", NULL), GH_EINVAL);
    /* an event missing its fields: the job_fn refuses it for good */
    json_object *p = j("{\"t\":\"MESSAGE_REACTION_ADD\",\"d\":{\"guild_id\":\"%s\",\"user_id\":\"1\"}}", fx->gid);
    assert_int_equal(run_job(fx, "gateway:event", p), GH_EINVAL);
    json_object_put(p);
    /* a complete one: ensured row */
    p = j("{\"t\":\"MESSAGE_REACTION_ADD\",\"d\":{\"guild_id\":\"%s\",\"user_id\":\"1\",\"channel_id\":\"2\","
          "\"message_id\":\"3\",\"emoji\":{\"name\":\"x\"}}}",
          fx->gid);
    assert_int_equal(run_job(fx, "gateway:event", p), GH_OK);
    json_object_put(p);
    assert_string_equal(pgvalue(fx, "SELECT count(*) FROM guilds WHERE id = $1"), "1");
    /* a guild MESSAGE_CREATE is not a job (job_dm_only): nothing runs, no row */
    char other[24];
    snprintf(other, sizeof(other), "%" PRIu64, random_id());
    p = j("{\"t\":\"MESSAGE_CREATE\",\"d\":{\"guild_id\":\"%s\",\"id\":\"1\",\"channel_id\":\"2\",\"author\":{\"id\":\"3\"}}}",
          other);
    assert_int_equal(run_job(fx, "gateway:event", p), GH_OK);
    json_object_put(p);
    const char *params[1] = {other};
    PGresult *res = gh_pg_exec(fx->pg, "SELECT 1 FROM guilds WHERE id = $1", 1, params);
    assert_int_equal(PQntuples(res), 0);
    PQclear(res);
    /* a DM runs */
    p = j("{\"t\":\"MESSAGE_CREATE\",\"d\":{\"id\":\"1\",\"channel_id\":\"2\",\"author\":{\"id\":\"3\"}}}");
    assert_int_equal(run_job(fx, "gateway:event", p), GH_OK);
    json_object_put(p);
    p = j("{\"t\":\"MESSAGE_CREATE\",\"d\":{\"id\":\"1\",\"channel_id\":\"2\"}}");
    assert_int_equal(run_job(fx, "gateway:event", p), GH_EINVAL);
    json_object_put(p);
}

/* ---- prefix job ---------------------------------------------------------- */

static void seed_prefix_guild(struct fx *fx, const char *doc_text)
{
    json_object *d = guild_create_d(fx);
    inline1(fx, gh_events_guild_create, "GUILD_CREATE", d);
    json_object *p = j("{\"t\":\"GUILD_CREATE\"}");
    json_object_object_add(p, "d", d);
    assert_int_equal(run_job(fx, "gateway:event", p), GH_OK);
    json_object_put(p);
    /* the bot's member (role 23: administrator) */
    redisReply *r = gh_redis_cmd(fx->redis, "SET bot:{%s}:cache:member:%llu %s EX 60", fx->gid,
                                 (unsigned long long)APP_ID, "{\"user\":{\"id\":\"1234567890123456789\"},\"roles\":[\"23\"]}");
    freeReplyObject(r);
    r = gh_redis_cmd(fx->redis, "SET bot:{%s}:cache:member:555 %s EX 60", fx->gid,
                     "{\"user\":{\"id\":\"555\",\"username\":\"target\"},\"roles\":[]}");
    freeReplyObject(r);
    json_object *doc = json_tokener_parse(doc_text);
    int v = 0;
    assert_int_equal(gh_settings_put(&fx->ctx, fx->guild, "events", doc, 1, -1, &v), GH_OK);
    json_object_put(doc);
}

static json_object *prefix_payload(struct fx *fx, const char *content, const char *roles)
{
    return j("{\"message\":{\"id\":\"1300000000000000001\",\"guild_id\":\"%s\",\"channel_id\":\"31\","
             "\"author\":{\"id\":\"77\",\"username\":\"bob\"},\"member\":{\"roles\":%s},\"content\":\"%s\"}}",
             fx->gid, roles, content);
}

static void test_prefix_job(void **state)
{
    struct fx *fx = *state;
    NEED_STORES();
    seed_prefix_guild(fx, "{\"prefix_enabled\":true,\"prefix\":\"?\"}");

    /* no permission: refused, named */
    n_calls = 0;
    json_object *p = prefix_payload(fx, "?warn <@555> spam", "[\"22\"]");
    assert_int_equal(run_job(fx, "events:prefix", p), GH_OK);
    json_object_put(p);
    assert_int_equal(n_calls, 1);
    assert_string_equal(calls[0].method, "POST");
    assert_string_equal(calls[0].path, "/channels/31/messages");
    if (!strstr(calls[0].body, "You need the Moderate Members permission"))
        fail_msg("body: %s", calls[0].body);
    assert_non_null(strstr(calls[0].body, "\"message_reference\":{\"message_id\":\"1300000000000000001\""));
    assert_non_null(strstr(calls[0].body, "\"allowed_mentions\":{\"parse\":[],\"replied_user\":false}"));

    /* bad arguments: the option and the usage */
    n_calls = 0;
    p = prefix_payload(fx, "?warn bob", "[\"21\"]");
    assert_int_equal(run_job(fx, "events:prefix", p), GH_OK);
    json_object_put(p);
    assert_int_equal(n_calls, 1);
    assert_non_null(strstr(calls[0].body, "`user` must be a user mention"));
    if (!strstr(calls[0].body, "?warn <user> <reason>"))
        fail_msg("body: %s", calls[0].body);

    /* ping runs through the router and answers in the channel */
    n_calls = 0;
    p = prefix_payload(fx, "?ping", "[]");
    assert_int_equal(run_job(fx, "events:prefix", p), GH_OK);
    json_object_put(p);
    assert_true(n_calls >= 1);
    assert_string_equal(calls[n_calls - 1].method, "POST");
    assert_string_equal(calls[n_calls - 1].path, "/channels/31/messages");
    assert_non_null(strstr(calls[n_calls - 1].body, "\"content\""));
    assert_null(strstr(calls[n_calls - 1].body, "\"flags\":64"));
    assert_non_null(strstr(calls[n_calls - 1].body, "Pong!"));

    /* ping's option: a deferred answer cannot reach a message */
    n_calls = 0;
    p = prefix_payload(fx, "?ping yes", "[]");
    assert_int_equal(run_job(fx, "events:prefix", p), GH_OK);
    json_object_put(p);
    assert_true(n_calls >= 1);
    assert_non_null(strstr(calls[n_calls - 1].body, "only works as /ping"));

    /* the wrong prefix, an unknown command: nothing */
    n_calls = 0;
    p = prefix_payload(fx, "!ping", "[]");
    assert_int_equal(run_job(fx, "events:prefix", p), GH_OK);
    json_object_put(p);
    p = prefix_payload(fx, "?nosuchcommand", "[]");
    assert_int_equal(run_job(fx, "events:prefix", p), GH_OK);
    json_object_put(p);
    assert_int_equal(n_calls, 0);

    /* malformed payload: permanent */
    p = j("{\"message\":{\"content\":\"?ping\"}}");
    assert_int_equal(run_job(fx, "events:prefix", p), GH_EINVAL);
    json_object_put(p);
}

static void test_prefix_detect_inline(void **state)
{
    struct fx *fx = *state;
    NEED_STORES();
    seed_prefix_guild(fx, "{\"prefix_enabled\":true}");
    redisReply *r = gh_redis_cmd(fx->redis, "DEL bot:{%s}:events:prefix_rl:77", fx->gid);
    freeReplyObject(r);
    long long before = gh_queue_len(fx->redis, "events_test", "ready");
    if (before < 0)
        before = 0;

    json_object *m1 = message(fx, 1300000000000000011ULL, "!ping");
    json_object *m2 = message(fx, 1300000000000000012ULL, "!ping again"); /* same user within 3 s */
    json_object *m3 = message(fx, 1300000000000000013ULL, "just chatting");
    json_object *m4 = message(fx, 1300000000000000014ULL, "!notacommand");
    struct gh_event st[4] = {
        {.name = "MESSAGE_CREATE", .guild_id = fx->guild, .d = m1},
        {.name = "MESSAGE_CREATE", .guild_id = fx->guild, .d = m2},
        {.name = "MESSAGE_CREATE", .guild_id = fx->guild, .d = m3},
        {.name = "MESSAGE_CREATE", .guild_id = fx->guild, .d = m4},
    };
    struct gh_event *evs[4] = {&st[0], &st[1], &st[2], &st[3]};
    assert_int_equal(gh_events_message_create(&fx->ctx, evs, 4), GH_OK);
    assert_true(st[0].flags & GH_EVF_PREFIX_CMD);
    assert_false(st[2].flags & GH_EVF_PREFIX_CMD);
    assert_false(st[3].flags & GH_EVF_PREFIX_CMD);
    assert_int_equal(gh_queue_len(fx->redis, "events_test", "ready"), before + 1); /* the second is rate limited */
    struct gh_job job;
    memset(&job, 0, sizeof(job));
    assert_int_equal(gh_queue_pop(fx->redis, "events_test", 0, &job), GH_OK);
    assert_string_equal(job.kind, "events:prefix");
    char want[96];
    snprintf(want, sizeof(want), "prefix:%s:1300000000000000011", fx->gid);
    assert_string_equal(job.id, want);
    assert_string_equal(gh_json_get_str(gh_json_get_obj(job.payload, "message"), "content"), "!ping");
    (void)gh_queue_ack(fx->redis, "events_test", &job);
    gh_job_cleanup(&job);
    json_object_put(m1);
    json_object_put(m2);
    json_object_put(m3);
    json_object_put(m4);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_guild_create_fills_guildcache, setup, teardown),
        cmocka_unit_test_setup_teardown(test_roles_and_channels_edit_arrays, setup, teardown),
        cmocka_unit_test_setup_teardown(test_guild_delete_outage_and_removal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_member_counts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_message_cache_and_before, setup, teardown),
        cmocka_unit_test_setup_teardown(test_message_cap_and_content_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_redis_down, setup, teardown),
        cmocka_unit_test_setup_teardown(test_runner, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prefix_job, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prefix_detect_inline, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
