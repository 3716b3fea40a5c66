/* test_settings.c - settings documents: empty read, put/get, version
 * conflicts, cache fill and invalidation, Redis down (PostgreSQL fallback),
 * audit_log rows, unknown guild, the enabled flag. Needs DATABASE_URL and
 * REDIS_URL with the migrations applied. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "core/ctx.h"
#include "core/err.h"
#include "core/log.h"
#include "store/pg.h"
#include "store/redis.h"
#include "store/settings.h"

static struct gh_log_sink sink;
static struct gh_pg *pg;
static struct gh_redis *redis;
static unsigned counter;

#define NEED_STORES()                                                                                        \
    do {                                                                                                     \
        if (!pg || !redis) {                                                                                 \
            print_message("DATABASE_URL or REDIS_URL is not set: settings tests skipped\n");                 \
            skip();                                                                                          \
        }                                                                                                    \
    } while (0)

static int setup(void **state)
{
    const char *db = getenv("DATABASE_URL"), *ru = getenv("REDIS_URL");

    (void)state;
    if (gh_log_sink_init(&sink, "test_settings", GH_LOG_WARN, NULL, 0, 0) != GH_OK)
        return -1;
    if (db && *db && ru && *ru) {
        pg = gh_pg_new(db, 5000, NULL);
        redis = gh_redis_new(ru, 500, NULL);
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    gh_pg_free(pg);
    gh_redis_free(redis);
    gh_log_sink_cleanup(&sink);
    return 0;
}

static void ctx_init(struct gh_ctx *ctx, struct gh_redis *r)
{
    memset(ctx, 0, sizeof(*ctx));
    ctx->pg = pg;
    ctx->redis = r;
    gh_logger_init(&ctx->log, &sink, "settings");
    snprintf(ctx->log.corr, sizeof(ctx->log.corr), "testcorr%d", (int)getpid());
}

/* A guild id no other test run uses. */
static uint64_t new_guild(int insert)
{
    uint64_t g = 1000000000000000000ULL + (uint64_t)getpid() * 1000u + ++counter;
    char id[24];
    const char *params[1] = {id};

    snprintf(id, sizeof(id), "%llu", (unsigned long long)g);
    if (insert)
        assert_int_equal(gh_pg_command(pg, "INSERT INTO guilds (id) VALUES ($1)", 1, params), GH_OK);
    return g;
}

static void drop_guild(uint64_t g)
{
    char id[24], key[128];
    const char *params[1] = {id};

    snprintf(id, sizeof(id), "%llu", (unsigned long long)g);
    assert_int_equal(gh_pg_command(pg, "DELETE FROM audit_log WHERE guild_id = $1", 1, params), GH_OK);
    assert_int_equal(gh_pg_command(pg, "DELETE FROM guilds WHERE id = $1", 1, params), GH_OK);
    snprintf(key, sizeof(key), "bot:{%s}:settings:testfeat", id);
    freeReplyObject(gh_redis_cmd(redis, "DEL %s %s:fill", key, key));
}

static json_object *doc_of(const char *text)
{
    json_object *d = json_tokener_parse(text);

    assert_non_null(d);
    return d;
}

static void assert_doc(json_object *doc, const char *text)
{
    json_object *want = doc_of(text);

    assert_true(json_object_equal(doc, want));
    json_object_put(want);
}

static long long key_exists(uint64_t g)
{
    redisReply *rep = gh_redis_cmd(redis, "EXISTS bot:{%llu}:settings:testfeat", (unsigned long long)g);
    long long n;

    assert_non_null(rep);
    n = rep->integer;
    freeReplyObject(rep);
    return n;
}

static void test_get_empty(void **state)
{
    NEED_STORES();
    struct gh_ctx ctx;
    uint64_t g = new_guild(1), unknown = new_guild(0);
    json_object *doc = NULL;
    int version = -1;

    (void)state;
    ctx_init(&ctx, redis);
    assert_int_equal(gh_settings_get(&ctx, g, "testfeat", &doc, &version), GH_OK);
    assert_int_equal(version, 0);
    assert_doc(doc, "{}");
    json_object_put(doc);
    /* Second read comes from the cache (filled with v 0). */
    assert_int_equal(key_exists(g), 1);
    assert_int_equal(gh_settings_get(&ctx, g, "testfeat", &doc, &version), GH_OK);
    assert_int_equal(version, 0);
    json_object_put(doc);
    /* A guild without a row reads as empty too. */
    assert_int_equal(gh_settings_get(&ctx, unknown, "testfeat", &doc, &version), GH_OK);
    assert_int_equal(version, 0);
    json_object_put(doc);
    assert_int_equal(gh_settings_get(&ctx, g, "Bad Name", &doc, &version), GH_EINVAL);
    assert_int_equal(gh_settings_get(&ctx, 0, "testfeat", &doc, &version), GH_EINVAL);
    drop_guild(g);
    drop_guild(unknown);
}

static void test_put_get_roundtrip(void **state)
{
    NEED_STORES();
    struct gh_ctx ctx;
    uint64_t g = new_guild(1);
    json_object *in = doc_of("{\"enabled\":false,\"threshold\":3,\"name\":\"h\\u00e9\"}"), *doc = NULL;
    int version = 0, nv = 0;

    (void)state;
    ctx_init(&ctx, redis);
    assert_int_equal(gh_settings_put(&ctx, g, "testfeat", in, 111, 0, &nv), GH_OK);
    assert_int_equal(nv, 1);
    assert_int_equal(gh_settings_get(&ctx, g, "testfeat", &doc, &version), GH_OK);
    assert_int_equal(version, 1);
    assert_true(json_object_equal(doc, in));
    json_object_put(doc);
    assert_int_equal(gh_settings_feature_enabled(&ctx, g, "testfeat", 1), 0);
    json_object_put(in);
    /* Not an object: refused. */
    in = doc_of("[1,2]");
    assert_int_equal(gh_settings_put(&ctx, g, "testfeat", in, 111, -1, &nv), GH_EINVAL);
    json_object_put(in);
    drop_guild(g);
}

static void test_version_conflict(void **state)
{
    NEED_STORES();
    struct gh_ctx ctx;
    uint64_t g = new_guild(1);
    json_object *a = doc_of("{\"v\":\"a\"}"), *b = doc_of("{\"v\":\"b\"}"), *doc = NULL;
    int nv = 0, version = 0;

    (void)state;
    ctx_init(&ctx, redis);
    assert_int_equal(gh_settings_put(&ctx, g, "testfeat", a, 111, 0, &nv), GH_OK);
    assert_int_equal(nv, 1);
    /* Someone else saved version 1 first: writing "from version 0" again conflicts. */
    assert_int_equal(gh_settings_put(&ctx, g, "testfeat", b, 222, 0, &nv), GH_ECONFLICT);
    assert_int_equal(gh_settings_put(&ctx, g, "testfeat", b, 222, 5, &nv), GH_ECONFLICT);
    assert_int_equal(gh_settings_get(&ctx, g, "testfeat", &doc, &version), GH_OK);
    assert_int_equal(version, 1);
    assert_doc(doc, "{\"v\":\"a\"}");
    json_object_put(doc);
    assert_int_equal(gh_settings_put(&ctx, g, "testfeat", b, 222, 1, &nv), GH_OK);
    assert_int_equal(nv, 2);
    assert_int_equal(gh_settings_put(&ctx, g, "testfeat", a, 222, -1, &nv), GH_OK); /* any version */
    assert_int_equal(nv, 3);
    json_object_put(a);
    json_object_put(b);
    drop_guild(g);
}

static void test_cache_invalidated_on_write(void **state)
{
    NEED_STORES();
    struct gh_ctx ctx;
    uint64_t g = new_guild(1);
    json_object *a = doc_of("{\"enabled\":true}"), *b = doc_of("{\"enabled\":false}"), *doc = NULL;
    redisReply *rep;
    int nv = 0, version = 0;

    (void)state;
    ctx_init(&ctx, redis);
    assert_int_equal(gh_settings_put(&ctx, g, "testfeat", a, 111, -1, &nv), GH_OK);
    assert_int_equal(gh_settings_feature_enabled(&ctx, g, "testfeat", 0), 1);
    /* The read filled the cache with the version. */
    rep = gh_redis_cmd(redis, "GET bot:{%llu}:settings:testfeat", (unsigned long long)g);
    assert_non_null(rep);
    assert_int_equal(rep->type, REDIS_REPLY_STRING);
    assert_non_null(strstr(rep->str, "\"v\":1"));
    freeReplyObject(rep);
    rep = gh_redis_cmd(redis, "TTL bot:{%llu}:settings:testfeat", (unsigned long long)g);
    assert_true(rep->integer > 3500 && rep->integer <= 3600);
    freeReplyObject(rep);
    assert_int_equal(gh_settings_put(&ctx, g, "testfeat", b, 111, 1, &nv), GH_OK);
    assert_int_equal(key_exists(g), 0); /* deleted by the write */
    assert_int_equal(gh_settings_feature_enabled(&ctx, g, "testfeat", 1), 0);
    assert_int_equal(gh_settings_get(&ctx, g, "testfeat", &doc, &version), GH_OK);
    assert_int_equal(version, 2);
    json_object_put(doc);
    /* While another reader holds the fill ticket, a reader answers from
     * PostgreSQL and leaves the cache alone; a write takes the ticket away. */
    gh_settings_invalidate(&ctx, g, "testfeat");
    assert_int_equal(key_exists(g), 0);
    rep = gh_redis_cmd(redis, "SET bot:{%llu}:settings:testfeat:fill other PX 5000", (unsigned long long)g);
    assert_non_null(rep);
    freeReplyObject(rep);
    assert_int_equal(gh_settings_get(&ctx, g, "testfeat", &doc, &version), GH_OK);
    assert_int_equal(version, 2);
    json_object_put(doc);
    assert_int_equal(key_exists(g), 0);
    assert_int_equal(gh_settings_put(&ctx, g, "testfeat", a, 111, 2, &nv), GH_OK);
    rep = gh_redis_cmd(redis, "EXISTS bot:{%llu}:settings:testfeat:fill", (unsigned long long)g);
    assert_non_null(rep);
    assert_int_equal(rep->integer, 0);
    freeReplyObject(rep);
    json_object_put(a);
    json_object_put(b);
    drop_guild(g);
}

static void test_redis_down_falls_back(void **state)
{
    NEED_STORES();
    struct gh_ctx ctx;
    struct gh_redis *dead = gh_redis_new("redis://127.0.0.1:1/0", 100, NULL);
    uint64_t g = new_guild(1);
    json_object *a = doc_of("{\"enabled\":false,\"k\":1}"), *doc = NULL;
    int nv = 0, version = 0;

    (void)state;
    ctx_init(&ctx, dead);
    assert_int_equal(gh_settings_put(&ctx, g, "testfeat", a, 111, 0, &nv), GH_OK);
    assert_int_equal(gh_settings_get(&ctx, g, "testfeat", &doc, &version), GH_OK);
    assert_int_equal(version, 1);
    assert_true(json_object_equal(doc, a));
    json_object_put(doc);
    assert_int_equal(gh_settings_feature_enabled(&ctx, g, "testfeat", 1), 0);
    /* Both down: the default, and an error from get. */
    ctx.pg = NULL;
    assert_int_equal(gh_settings_get(&ctx, g, "testfeat", &doc, &version), GH_EPG);
    assert_null(doc);
    assert_int_equal(gh_settings_feature_enabled(&ctx, g, "testfeat", 1), 1);
    json_object_put(a);
    gh_redis_free(dead);
    drop_guild(g);
}

static void test_audit_log_rows(void **state)
{
    NEED_STORES();
    struct gh_ctx ctx;
    uint64_t g = new_guild(1);
    json_object *a = doc_of("{\"x\":1}"), *b = doc_of("{\"x\":2}");
    char id[24], corr[40];
    const char *params[1] = {id};
    PGresult *res;
    int nv = 0;

    (void)state;
    ctx_init(&ctx, redis);
    snprintf(corr, sizeof(corr), "%s", ctx.log.corr);
    assert_int_equal(gh_settings_put(&ctx, g, "testfeat", a, 111, 0, &nv), GH_OK);
    assert_int_equal(gh_settings_put(&ctx, g, "testfeat", b, 222, 1, &nv), GH_OK);
    /* A refused write leaves no audit row. */
    assert_int_equal(gh_settings_put(&ctx, g, "testfeat", a, 333, 1, &nv), GH_ECONFLICT);
    snprintf(id, sizeof(id), "%llu", (unsigned long long)g);
    res = gh_pg_exec(pg,
                     "SELECT actor_id, action, target, before::text, after->>'x', corr FROM audit_log "
                     "WHERE guild_id = $1 ORDER BY id",
                     1, params);
    assert_non_null(res);
    assert_int_equal(PQntuples(res), 2);
    assert_string_equal(PQgetvalue(res, 0, 0), "111");
    assert_string_equal(PQgetvalue(res, 0, 1), "settings.update");
    assert_string_equal(PQgetvalue(res, 0, 2), "testfeat");
    assert_true(PQgetisnull(res, 0, 3));
    assert_string_equal(PQgetvalue(res, 0, 4), "1");
    assert_string_equal(PQgetvalue(res, 0, 5), corr);
    assert_string_equal(PQgetvalue(res, 1, 0), "222");
    assert_string_equal(PQgetvalue(res, 1, 3), "{\"x\": 1}");
    assert_string_equal(PQgetvalue(res, 1, 4), "2");
    PQclear(res);
    res = gh_pg_exec(pg, "SELECT created_by, updated_by, version FROM guild_settings WHERE guild_id = $1", 1,
                     params);
    assert_non_null(res);
    assert_string_equal(PQgetvalue(res, 0, 0), "111");
    assert_string_equal(PQgetvalue(res, 0, 1), "222");
    assert_string_equal(PQgetvalue(res, 0, 2), "2");
    PQclear(res);
    json_object_put(a);
    json_object_put(b);
    drop_guild(g);
}

static void test_unknown_guild(void **state)
{
    NEED_STORES();
    struct gh_ctx ctx;
    uint64_t g = new_guild(0);
    json_object *a = doc_of("{\"x\":1}");
    char id[24];
    const char *params[1] = {id};
    PGresult *res;
    int nv = 0;

    (void)state;
    ctx_init(&ctx, redis);
    assert_int_equal(gh_settings_put(&ctx, g, "testfeat", a, 111, -1, &nv), GH_ENOTFOUND);
    snprintf(id, sizeof(id), "%llu", (unsigned long long)g);
    res = gh_pg_exec(pg, "SELECT count(*) FROM audit_log WHERE guild_id = $1", 1, params);
    assert_non_null(res);
    assert_string_equal(PQgetvalue(res, 0, 0), "0");
    PQclear(res);
    /* The connection is usable afterwards (the transaction was rolled back). */
    assert_int_equal(gh_pg_ping(pg), GH_OK);
    json_object_put(a);
    drop_guild(g);
}

static void test_enabled_default(void **state)
{
    NEED_STORES();
    struct gh_ctx ctx;
    uint64_t g = new_guild(1);
    json_object *a = doc_of("{\"enabled\":\"yes\"}");
    int nv = 0;

    (void)state;
    ctx_init(&ctx, redis);
    assert_int_equal(gh_settings_feature_enabled(&ctx, g, "testfeat", 1), 1);
    assert_int_equal(gh_settings_feature_enabled(&ctx, g, "testfeat", 0), 0);
    assert_int_equal(gh_settings_feature_enabled(&ctx, 0, "testfeat", 1), 1); /* a DM */
    /* Only a boolean counts. */
    assert_int_equal(gh_settings_put(&ctx, g, "testfeat", a, 111, -1, &nv), GH_OK);
    assert_int_equal(gh_settings_feature_enabled(&ctx, g, "testfeat", 0), 0);
    json_object_put(a);
    drop_guild(g);
}

static void test_argument_checks(void **state)
{
    struct gh_ctx ctx;
    json_object *doc = NULL, *arr = json_tokener_parse("[1]"), *obj = json_object_new_object();
    int version = 0, nv = 0;

    (void)state;
    memset(&ctx, 0, sizeof(ctx));
    assert_int_equal(gh_settings_get(NULL, 1, "core", &doc, &version), GH_EINVAL);
    assert_int_equal(gh_settings_get(&ctx, 0, "core", &doc, &version), GH_EINVAL);
    assert_int_equal(gh_settings_get(&ctx, 1, NULL, &doc, &version), GH_EINVAL);
    assert_int_equal(gh_settings_get(&ctx, 1, "Core", &doc, &version), GH_EINVAL);
    assert_int_equal(gh_settings_get(&ctx, 1, "9core", &doc, &version), GH_EINVAL);
    assert_int_equal(gh_settings_get(&ctx, 1, "co-re", &doc, &version), GH_EINVAL);
    assert_int_equal(gh_settings_get(&ctx, 1, "abcdefghijklmnopqrstuvwxyz_0123456789", &doc, &version),
                     GH_EINVAL);
    assert_int_equal(gh_settings_get(&ctx, 1, "core", NULL, &version), GH_EINVAL);
    assert_int_equal(gh_settings_get(&ctx, 1, "core", &doc, NULL), GH_EINVAL);
    assert_int_equal(gh_settings_put(NULL, 1, "core", obj, 1, -1, &nv), GH_EINVAL);
    assert_int_equal(gh_settings_put(&ctx, 1, "core", arr, 1, -1, &nv), GH_EINVAL);
    assert_int_equal(gh_settings_put(&ctx, 1, "core", NULL, 1, -1, &nv), GH_EINVAL);
    assert_int_equal(gh_settings_put(&ctx, 1, "core", obj, 1, -2, &nv), GH_EINVAL);
    /* No PostgreSQL and no Redis: nothing can be written or read. */
    assert_int_equal(gh_settings_put(&ctx, 1, "core", obj, 1, -1, &nv), GH_EPG);
    assert_int_equal(gh_settings_get(&ctx, 1, "core", &doc, &version), GH_EPG);
    assert_null(doc);
    assert_int_equal(gh_settings_feature_enabled(NULL, 1, "core", 1), 1);
    assert_int_equal(gh_settings_feature_enabled(&ctx, 1, "core", 0), 0);
    gh_settings_invalidate(NULL, 1, "core"); /* no-op, must not crash */
    json_object_put(arr);
    json_object_put(obj);
}

static void test_malformed_cache_is_replaced(void **state)
{
    NEED_STORES();
    static const char *const bad[] = {"not json", "{\"v\":\"1\",\"doc\":{}}", "{\"v\":1,\"doc\":[]}",
                                      "{\"v\":1}"};
    struct gh_ctx ctx;
    uint64_t g = new_guild(1);
    json_object *a = doc_of("{\"k\":\"good\"}"), *doc = NULL;
    redisReply *rep;
    int nv = 0, version = 0;
    size_t i;

    (void)state;
    ctx_init(&ctx, redis);
    assert_int_equal(gh_settings_put(&ctx, g, "testfeat", a, 111, -1, &nv), GH_OK);
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        freeReplyObject(
            gh_redis_cmd(redis, "SET bot:{%llu}:settings:testfeat %s", (unsigned long long)g, bad[i]));
        assert_int_equal(gh_settings_get(&ctx, g, "testfeat", &doc, &version), GH_OK);
        assert_int_equal(version, 1);
        assert_doc(doc, "{\"k\":\"good\"}");
        json_object_put(doc);
        doc = NULL;
        /* The bad copy was replaced by the stored document. */
        rep = gh_redis_cmd(redis, "GET bot:{%llu}:settings:testfeat", (unsigned long long)g);
        assert_non_null(rep);
        assert_int_equal(rep->type, REDIS_REPLY_STRING);
        assert_non_null(strstr(rep->str, "\"v\":1"));
        assert_non_null(strstr(rep->str, "good"));
        freeReplyObject(rep);
    }
    /* A cache key of the wrong type: PostgreSQL answers, the key is left alone. */
    freeReplyObject(gh_redis_cmd(redis, "DEL bot:{%llu}:settings:testfeat", (unsigned long long)g));
    freeReplyObject(gh_redis_cmd(redis, "LPUSH bot:{%llu}:settings:testfeat x", (unsigned long long)g));
    assert_int_equal(gh_settings_get(&ctx, g, "testfeat", &doc, &version), GH_OK);
    assert_doc(doc, "{\"k\":\"good\"}");
    json_object_put(doc);
    freeReplyObject(gh_redis_cmd(redis, "DEL bot:{%llu}:settings:testfeat", (unsigned long long)g));
    json_object_put(a);
    drop_guild(g);
}

/* The table itself refuses a document that is not an object, so a reader
 * never meets one: the row is not written and the read stays empty. */
static void test_stored_document_not_object(void **state)
{
    NEED_STORES();
    struct gh_ctx ctx;
    uint64_t g = new_guild(1);
    char id[24];
    const char *params[1] = {id};
    json_object *doc = NULL;
    int version = -1;

    (void)state;
    ctx_init(&ctx, NULL);
    snprintf(id, sizeof(id), "%llu", (unsigned long long)g);
    assert_int_equal(gh_pg_command(pg,
                                   "INSERT INTO guild_settings (guild_id, feature, document, version) "
                                   "VALUES ($1, 'testfeat', '[1,2]'::jsonb, 3)",
                                   1, params),
                     GH_EPG);
    assert_string_equal(gh_pg_sqlstate(pg), "23514"); /* check_violation */
    assert_int_equal(gh_settings_get(&ctx, g, "testfeat", &doc, &version), GH_OK);
    assert_int_equal(version, 0);
    assert_doc(doc, "{}");
    json_object_put(doc);
    drop_guild(g);
}

static void test_unconditional_update_and_no_actor(void **state)
{
    NEED_STORES();
    struct gh_ctx ctx;
    uint64_t g = new_guild(1);
    json_object *a = doc_of("{\"n\":1}"), *b = doc_of("{\"n\":2}");
    char id[24];
    const char *params[1] = {id};
    PGresult *res;
    int nv = 0;

    (void)state;
    ctx_init(&ctx, redis);
    ctx.log.corr[0] = '\0';
    assert_int_equal(gh_settings_put(&ctx, g, "testfeat", a, 0, -1, &nv), GH_OK);
    assert_int_equal(nv, 1);
    assert_int_equal(gh_settings_put(&ctx, g, "testfeat", b, 0, -1, NULL), GH_OK);
    assert_int_equal(gh_settings_put(&ctx, g, "testfeat", a, 5, -1, &nv), GH_OK);
    assert_int_equal(nv, 3);
    snprintf(id, sizeof(id), "%llu", (unsigned long long)g);
    res = gh_pg_exec(pg, "SELECT count(*), count(actor_id), count(corr) FROM audit_log WHERE guild_id = $1",
                     1, params);
    assert_non_null(res);
    assert_string_equal(PQgetvalue(res, 0, 0), "3");
    assert_string_equal(PQgetvalue(res, 0, 1), "1"); /* no actor: NULL, not 0 */
    assert_string_equal(PQgetvalue(res, 0, 2), "0"); /* no correlation id: NULL */
    PQclear(res);
    json_object_put(a);
    json_object_put(b);
    drop_guild(g);
}

static void test_pg_down_put_fails(void **state)
{
    NEED_STORES();
    struct gh_ctx ctx;
    struct gh_pg *dead = gh_pg_new("postgresql://guildhall:guildhall@127.0.0.1:1/guildhall", 5000, NULL);
    json_object *a = doc_of("{\"n\":1}"), *doc = NULL;
    int nv = 0, version = 0;

    (void)state;
    ctx_init(&ctx, redis);
    ctx.pg = dead;
    assert_int_equal(gh_settings_put(&ctx, 4242, "testfeat", a, 1, -1, &nv), GH_EPG);
    freeReplyObject(
        gh_redis_cmd(redis, "DEL bot:{4242}:settings:testfeat bot:{4242}:settings:testfeat:fill"));
    assert_int_equal(gh_settings_get(&ctx, 4242, "testfeat", &doc, &version), GH_EPG);
    assert_null(doc);
    /* No cache entry was written for a read that failed. */
    {
        redisReply *rep = gh_redis_cmd(redis, "EXISTS bot:{4242}:settings:testfeat");

        assert_non_null(rep);
        assert_int_equal(rep->integer, 0);
        freeReplyObject(rep);
    }
    freeReplyObject(gh_redis_cmd(redis, "DEL bot:{4242}:settings:testfeat:fill"));
    json_object_put(a);
    gh_pg_free(dead);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_get_empty),
        cmocka_unit_test(test_put_get_roundtrip),
        cmocka_unit_test(test_version_conflict),
        cmocka_unit_test(test_cache_invalidated_on_write),
        cmocka_unit_test(test_redis_down_falls_back),
        cmocka_unit_test(test_audit_log_rows),
        cmocka_unit_test(test_unknown_guild),
        cmocka_unit_test(test_enabled_default),
        cmocka_unit_test(test_argument_checks),
        cmocka_unit_test(test_malformed_cache_is_replaced),
        cmocka_unit_test(test_stored_document_not_object),
        cmocka_unit_test(test_unconditional_update_and_no_actor),
        cmocka_unit_test(test_pg_down_put_fails),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
