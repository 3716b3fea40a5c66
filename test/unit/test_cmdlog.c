/* test_cmdlog.c - command_log / error_log off the request path: record and
 * flush, PostgreSQL down (entries stay, then arrive once, none lost or
 * doubled), a batch replayed after a crash, Redis down (direct insert), both
 * down (spool, replayed by the next flush), rejected entries dropped without
 * blocking the list, the flush lock. Needs DATABASE_URL and REDIS_URL (uses
 * database 9 of that Redis, so the stack's worker does not flush our lists). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "core/config.h"
#include "core/ctx.h"
#include "core/err.h"
#include "core/log.h"
#include "store/cmdlog.h"
#include "store/pg.h"
#include "store/redis.h"

#define BAD_PG_URL "postgresql://guildhall:guildhall@127.0.0.1:1/guildhall"

static struct gh_log_sink sink;
static struct gh_config cfg;
static struct gh_pg *pg, *bad_pg;
static struct gh_redis *redis, *bad_redis;
static unsigned counter;
static char tmpdir[256];

#define NEED_STORES()                                                                                        \
    do {                                                                                                     \
        if (!pg || !redis) {                                                                                 \
            print_message("DATABASE_URL or REDIS_URL is not set: cmdlog tests skipped\n");                   \
            skip();                                                                                          \
        }                                                                                                    \
    } while (0)

static void url_with_db(const char *url, int db, char *out, size_t size)
{
    const char *hostpart = strstr(url, "://");
    const char *slash = strchr(hostpart ? hostpart + 3 : url, '/');
    int n = slash ? (int)(slash - url) : (int)strlen(url);

    snprintf(out, size, "%.*s/%d", n, url, db);
}

static void clear_lists(void)
{
    freeReplyObject(gh_redis_cmd(redis, "DEL bot:{global}:cmdlog:pending bot:{global}:cmdlog:inflight "
                                        "bot:{global}:errlog:pending bot:{global}:errlog:inflight "
                                        "bot:{global}:cmdlog:flushlock"));
}

static void rm_tmp(void)
{
    DIR *d = opendir(tmpdir);
    struct dirent *e;
    char p[600];

    while (d && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(p, sizeof(p), "%s/%s", tmpdir, e->d_name);
        unlink(p);
    }
    if (d)
        closedir(d);
}

static int setup(void **state)
{
    const char *db = getenv("DATABASE_URL"), *ru = getenv("REDIS_URL");
    char u[300];

    (void)state;
    if (gh_log_sink_init(&sink, "test_cmdlog", GH_LOG_WARN, NULL, 0, 0) != GH_OK)
        return -1;
    mkdir("build", 0755);
    mkdir("build/tmp", 0755);
    snprintf(tmpdir, sizeof(tmpdir), "build/tmp/test_cmdlog.XXXXXX");
    if (!mkdtemp(tmpdir))
        return -1;
    snprintf(cfg.run_dir, sizeof(cfg.run_dir), "%s", tmpdir);
    if (db && *db && ru && *ru) {
        pg = gh_pg_new(db, 5000, NULL);
        bad_pg = gh_pg_new(BAD_PG_URL, 5000, NULL);
        url_with_db(ru, 9, u, sizeof(u));
        redis = gh_redis_new(u, 500, NULL);
        bad_redis = gh_redis_new("redis://127.0.0.1:1/9", 100, NULL);
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    if (redis)
        clear_lists();
    gh_pg_free(pg);
    gh_pg_free(bad_pg);
    gh_redis_free(redis);
    gh_redis_free(bad_redis);
    rm_tmp();
    rmdir(tmpdir);
    gh_log_sink_cleanup(&sink);
    return 0;
}

static int each(void **state)
{
    (void)state;
    if (redis)
        clear_lists();
    rm_tmp();
    return 0;
}

static void ctx_init(struct gh_ctx *ctx, struct gh_pg *p, struct gh_redis *r)
{
    memset(ctx, 0, sizeof(*ctx));
    ctx->cfg = &cfg;
    ctx->pg = p;
    ctx->redis = r;
    gh_logger_init(&ctx->log, &sink, "cmdlog");
}

static uint64_t uniq(uint64_t base)
{
    return base + (uint64_t)getpid() * 10000u + ++counter;
}

static struct gh_cmdlog_entry entry(uint64_t guild, uint64_t interaction)
{
    struct gh_cmdlog_entry e = {
        .guild_id = guild,
        .user_id = 80351110224678912ULL,
        .channel_id = 41771983423143937ULL,
        .interaction_id = interaction,
        .command = "ping",
        .options_json = "{\"q\":\"h\\u00e9llo \\\"x\\\"\"}",
        .success = 1,
        .duration_us = 1234,
        .corr = "corr-test",
    };
    return e;
}

static long long count(const char *sql, uint64_t a, uint64_t b)
{
    char p1[24], p2[24];
    const char *params[2] = {p1, p2};
    PGresult *res;
    long long n;

    snprintf(p1, sizeof(p1), "%llu", (unsigned long long)a);
    snprintf(p2, sizeof(p2), "%llu", (unsigned long long)b);
    res = gh_pg_exec(pg, sql, 2, params);
    assert_non_null(res);
    n = atoll(PQgetvalue(res, 0, 0));
    PQclear(res);
    return n;
}

/* Rows of command_log with interaction ids in [lo, hi]. */
static long long rows_between(uint64_t lo, uint64_t hi)
{
    return count("SELECT count(*) FROM command_log WHERE interaction_id BETWEEN $1 AND $2", lo, hi);
}

static long long llen(const char *key)
{
    redisReply *rep = gh_redis_cmd(redis, "LLEN %s", key);
    long long n;

    assert_non_null(rep);
    n = rep->integer;
    freeReplyObject(rep);
    return n;
}

static void cleanup_rows(uint64_t lo, uint64_t hi, uint64_t guild)
{
    char p1[24], p2[24];
    const char *params[2] = {p1, p2};

    snprintf(p1, sizeof(p1), "%llu", (unsigned long long)lo);
    snprintf(p2, sizeof(p2), "%llu", (unsigned long long)hi);
    assert_int_equal(
        gh_pg_command(pg, "DELETE FROM command_log WHERE interaction_id BETWEEN $1 AND $2", 2, params),
        GH_OK);
    if (guild) {
        snprintf(p1, sizeof(p1), "%llu", (unsigned long long)guild);
        assert_int_equal(gh_pg_command(pg, "DELETE FROM guilds WHERE id = $1", 1, params), GH_OK);
    }
}

static void test_record_flush_writes_rows(void **state)
{
    NEED_STORES();
    struct gh_ctx ctx;
    uint64_t g = uniq(1100000000000000000ULL), i1 = uniq(2000000000000000000ULL),
             i2 = uniq(2000000000000000000ULL), i3 = uniq(2000000000000000000ULL);
    struct gh_cmdlog_entry e;
    PGresult *res;
    char p[24];
    const char *params[1] = {p};

    (void)state;
    ctx_init(&ctx, pg, redis);
    e = entry(g, i1);
    assert_int_equal(gh_cmdlog_record(&ctx, &e), GH_OK);
    e = entry(g, i2);
    e.success = 0;
    e.error = "missing permission";
    e.options_json = NULL;
    assert_int_equal(gh_cmdlog_record(&ctx, &e), GH_OK);
    e = entry(0, i3); /* a DM */
    assert_int_equal(gh_cmdlog_record(&ctx, &e), GH_OK);
    assert_int_equal(llen("bot:{global}:cmdlog:pending"), 3);
    assert_int_equal(rows_between(i1, i3), 0); /* nothing written on the request path */

    assert_int_equal(gh_cmdlog_flush(&ctx, 500), 3);
    assert_int_equal(rows_between(i1, i3), 3);
    assert_int_equal(llen("bot:{global}:cmdlog:pending"), 0);
    assert_int_equal(llen("bot:{global}:cmdlog:inflight"), 0);
    assert_int_equal(count("SELECT count(*) FROM guilds WHERE id = $1 AND $2 > 0", g, 1), 1); /* created */

    snprintf(p, sizeof(p), "%llu", (unsigned long long)i1);
    res = gh_pg_exec(
        pg,
        "SELECT guild_id, user_id, channel_id, command, options->>'q', success, error, duration_us, "
        "corr, created_at > now() - interval '1 minute' FROM command_log WHERE interaction_id = $1",
        1, params);
    assert_non_null(res);
    assert_int_equal(PQntuples(res), 1);
    assert_string_equal(PQgetvalue(res, 0, 1), "80351110224678912");
    assert_string_equal(PQgetvalue(res, 0, 2), "41771983423143937");
    assert_string_equal(PQgetvalue(res, 0, 3), "ping");
    assert_string_equal(PQgetvalue(res, 0, 4), "h\xc3\xa9llo \"x\"");
    assert_string_equal(PQgetvalue(res, 0, 5), "t");
    assert_true(PQgetisnull(res, 0, 6));
    assert_string_equal(PQgetvalue(res, 0, 7), "1234");
    assert_string_equal(PQgetvalue(res, 0, 8), "corr-test");
    assert_string_equal(PQgetvalue(res, 0, 9), "t");
    PQclear(res);
    snprintf(p, sizeof(p), "%llu", (unsigned long long)i2);
    res = gh_pg_exec(pg, "SELECT success, error, options IS NULL FROM command_log WHERE interaction_id = $1",
                     1, params);
    assert_non_null(res);
    assert_string_equal(PQgetvalue(res, 0, 0), "f");
    assert_string_equal(PQgetvalue(res, 0, 1), "missing permission");
    assert_string_equal(PQgetvalue(res, 0, 2), "t");
    PQclear(res);
    snprintf(p, sizeof(p), "%llu", (unsigned long long)i3);
    res = gh_pg_exec(pg, "SELECT guild_id IS NULL FROM command_log WHERE interaction_id = $1", 1, params);
    assert_non_null(res);
    assert_string_equal(PQgetvalue(res, 0, 0), "t");
    PQclear(res);
    /* Nothing left: a second flush writes nothing. */
    assert_int_equal(gh_cmdlog_flush(&ctx, 500), 0);
    cleanup_rows(i1, i3, g);
}

/* The pushed entry: members in order, verbatim options copied as given,
 * parsed options (and text that is not JSON) as before; the rows match. */
static void test_entry_format_and_verbatim_options(void **state)
{
    NEED_STORES();
    struct gh_ctx ctx;
    uint64_t i1 = uniq(2000000000000000000ULL), i2 = uniq(2000000000000000000ULL),
             i3 = uniq(2000000000000000000ULL);
    struct gh_cmdlog_entry e;
    redisReply *rep;
    json_object *o, *v;
    char p[24];
    const char *params[1] = {p};
    PGresult *res;

    (void)state;
    ctx_init(&ctx, pg, redis);
    e = entry(0, i1);
    e.options_json = "[{\"name\":\"url\",\"value\":\"a/b \\u00e9\"}]";
    e.options_verbatim = 1;
    e.success = 0;
    e.error = "bad \"quote\"\n\x01";
    assert_int_equal(gh_cmdlog_record(&ctx, &e), GH_OK);
    rep = gh_redis_cmd(redis, "LINDEX bot:{global}:cmdlog:pending 0");
    assert_non_null(rep);
    assert_int_equal(rep->type, REDIS_REPLY_STRING);
    assert_non_null(strstr(rep->str, ",\"options\":[{\"name\":\"url\",\"value\":\"a/b \\u00e9\"}],"));
    assert_true(strncmp(rep->str,
                        "{\"kind\":\"cmd\",\"guild_id\":null,\"user_id\":\"80351110224678912\","
                        "\"channel_id\":\"41771983423143937\",\"interaction_id\":\"",
                        strlen("{\"kind\":\"cmd\",\"guild_id\":null,\"user_id\":\"80351110224678912\","
                               "\"channel_id\":\"41771983423143937\",\"interaction_id\":\"")) == 0);
    assert_non_null(strstr(rep->str, ",\"command\":\"ping\",\"options\":"));
    assert_non_null(strstr(rep->str, "],\"success\":false,\"error\":\"bad \\\"quote\\\"\\u000a\\u0001\","
                                     "\"duration_us\":1234,\"corr\":\"corr-test\",\"created_at\":\""));
    o = json_tokener_parse(rep->str);
    freeReplyObject(rep);
    assert_non_null(o);
    assert_true(json_object_object_get_ex(o, "error", &v));
    assert_string_equal(json_object_get_string(v), "bad \"quote\"\n\x01");
    json_object_put(o);

    e = entry(0, i2); /* parsed: not JSON -> a string */
    e.options_json = "not json";
    assert_int_equal(gh_cmdlog_record(&ctx, &e), GH_OK);
    rep = gh_redis_cmd(redis, "LINDEX bot:{global}:cmdlog:pending 0");
    assert_non_null(rep);
    assert_non_null(strstr(rep->str, ",\"options\":\"not json\","));
    freeReplyObject(rep);
    e = entry(0, i3); /* verbatim empty text: null */
    e.options_json = "";
    e.options_verbatim = 1;
    e.corr = NULL;
    snprintf(ctx.log.corr, sizeof(ctx.log.corr), "ctxcorr");
    assert_int_equal(gh_cmdlog_record(&ctx, &e), GH_OK);
    rep = gh_redis_cmd(redis, "LINDEX bot:{global}:cmdlog:pending 0");
    assert_non_null(rep);
    assert_non_null(strstr(rep->str, ",\"options\":null,"));
    assert_non_null(strstr(rep->str, ",\"corr\":\"ctxcorr\","));
    freeReplyObject(rep);

    assert_int_equal(gh_cmdlog_flush(&ctx, 500), 3);
    snprintf(p, sizeof(p), "%llu", (unsigned long long)i1);
    res = gh_pg_exec(pg, "SELECT options->0->>'value', error FROM command_log WHERE interaction_id = $1", 1,
                     params);
    assert_non_null(res);
    assert_int_equal(PQntuples(res), 1);
    assert_string_equal(PQgetvalue(res, 0, 0), "a/b \xc3\xa9");
    assert_string_equal(PQgetvalue(res, 0, 1), "bad \"quote\"\n\x01");
    PQclear(res);
    snprintf(p, sizeof(p), "%llu", (unsigned long long)i2);
    res = gh_pg_exec(pg, "SELECT options #>> '{}' FROM command_log WHERE interaction_id = $1", 1, params);
    assert_non_null(res);
    assert_string_equal(PQgetvalue(res, 0, 0), "not json");
    PQclear(res);
    snprintf(p, sizeof(p), "%llu", (unsigned long long)i3);
    res =
        gh_pg_exec(pg, "SELECT options IS NULL, corr FROM command_log WHERE interaction_id = $1", 1, params);
    assert_non_null(res);
    assert_string_equal(PQgetvalue(res, 0, 0), "t");
    assert_string_equal(PQgetvalue(res, 0, 1), "ctxcorr");
    PQclear(res);
    cleanup_rows(i1, i3, 0);
}

static void test_errlog(void **state)
{
    NEED_STORES();
    struct gh_ctx ctx;
    char msg[64];
    const char *params[1] = {msg};
    PGresult *res;

    (void)state;
    ctx_init(&ctx, pg, redis);
    ctx.log.guild_id = 1234;
    snprintf(ctx.log.corr, sizeof(ctx.log.corr), "errcorr");
    snprintf(msg, sizeof(msg), "test error %d", (int)getpid());
    assert_int_equal(gh_errlog_record(&ctx, "test", msg, "{\"a\":1}", "frame1\nframe2"), GH_OK);
    assert_int_equal(gh_errlog_record(&ctx, "", msg, NULL, NULL), GH_EINVAL);
    assert_int_equal(llen("bot:{global}:errlog:pending"), 1);
    assert_int_equal(gh_cmdlog_flush(&ctx, 100), 1);
    res = gh_pg_exec(pg,
                     "SELECT guild_id, component, context->>'a', backtrace, corr, length(dedupe_key) "
                     "FROM error_log WHERE message = $1",
                     1, params);
    assert_non_null(res);
    assert_int_equal(PQntuples(res), 1);
    assert_string_equal(PQgetvalue(res, 0, 0), "1234");
    assert_string_equal(PQgetvalue(res, 0, 1), "test");
    assert_string_equal(PQgetvalue(res, 0, 2), "1");
    assert_string_equal(PQgetvalue(res, 0, 3), "frame1\nframe2");
    assert_string_equal(PQgetvalue(res, 0, 4), "errcorr");
    assert_string_equal(PQgetvalue(res, 0, 5), "32");
    PQclear(res);
    assert_int_equal(gh_pg_command(pg, "DELETE FROM error_log WHERE message = $1", 1, params), GH_OK);
}

static void test_pg_down_nothing_lost_or_doubled(void **state)
{
    NEED_STORES();
    struct gh_ctx ctx;
    uint64_t lo = uniq(2000000000000000000ULL), mid = uniq(2000000000000000000ULL),
             hi = uniq(2000000000000000000ULL);
    struct gh_cmdlog_entry e;
    redisReply *saved;
    size_t i;

    (void)state;
    ctx_init(&ctx, bad_pg, redis);
    e = entry(0, lo);
    assert_int_equal(gh_cmdlog_record(&ctx, &e), GH_OK);
    e = entry(0, mid);
    assert_int_equal(gh_cmdlog_record(&ctx, &e), GH_OK);
    /* PostgreSQL down: the flush fails and the batch stays in flight. */
    assert_int_equal(gh_cmdlog_flush(&ctx, 500), GH_EPG);
    assert_int_equal(llen("bot:{global}:cmdlog:inflight"), 2);
    assert_int_equal(llen("bot:{global}:cmdlog:pending"), 0);
    assert_int_equal(gh_cmdlog_flush(&ctx, 500), GH_EPG); /* still down: still there */
    assert_int_equal(llen("bot:{global}:cmdlog:inflight"), 2);
    e = entry(0, hi);
    assert_int_equal(gh_cmdlog_record(&ctx, &e), GH_OK);
    assert_int_equal(llen("bot:{global}:cmdlog:pending"), 1);
    assert_int_equal(rows_between(lo, hi), 0);
    saved = gh_redis_cmd(redis, "LRANGE bot:{global}:cmdlog:inflight 0 -1");
    assert_non_null(saved);
    assert_int_equal(saved->elements, 2);

    /* Back up: the in-flight batch first, then the rest. */
    ctx.pg = pg;
    assert_int_equal(gh_cmdlog_flush(&ctx, 500), 2);
    assert_int_equal(llen("bot:{global}:cmdlog:inflight"), 0);
    assert_int_equal(gh_cmdlog_flush(&ctx, 500), 1);
    assert_int_equal(rows_between(lo, hi), 3);
    assert_int_equal(llen("bot:{global}:cmdlog:pending"), 0);

    /* A flusher that died after COMMIT but before clearing in-flight: the
     * batch is sent again and inserts nothing twice. */
    for (i = 0; i < saved->elements; i++)
        freeReplyObject(gh_redis_cmd(redis, "RPUSH bot:{global}:cmdlog:inflight %s", saved->element[i]->str));
    freeReplyObject(saved);
    assert_int_equal(gh_cmdlog_flush(&ctx, 500), 2);
    assert_int_equal(rows_between(lo, hi), 3);
    assert_int_equal(
        count("SELECT count(DISTINCT interaction_id) FROM command_log WHERE interaction_id BETWEEN "
              "$1 AND $2",
              lo, hi),
        3);
    assert_int_equal(llen("bot:{global}:cmdlog:inflight"), 0);
    cleanup_rows(lo, hi, 0);
}

static void test_redis_down_direct_insert(void **state)
{
    NEED_STORES();
    struct gh_ctx ctx;
    uint64_t i1 = uniq(2000000000000000000ULL);
    struct gh_cmdlog_entry e = entry(0, i1);

    (void)state;
    ctx_init(&ctx, pg, bad_redis);
    assert_int_equal(gh_cmdlog_record(&ctx, &e), GH_OK);
    assert_int_equal(rows_between(i1, i1), 1);
    /* Recording it again (a retried request) does not double it. */
    assert_int_equal(gh_cmdlog_record(&ctx, &e), GH_OK);
    assert_int_equal(rows_between(i1, i1), 1);
    cleanup_rows(i1, i1, 0);
}

static long long spool_lines(const char *suffix)
{
    char path[600], line[4096];
    FILE *f;
    long long n = 0;

    snprintf(path, sizeof(path), "%s/cmdlog.spool%s", tmpdir, suffix);
    f = fopen(path, "r");
    if (!f)
        return -1;
    while (fgets(line, sizeof(line), f))
        n++;
    fclose(f);
    return n;
}

static void test_both_down_spool_replayed(void **state)
{
    NEED_STORES();
    struct gh_ctx ctx;
    uint64_t i1 = uniq(2000000000000000000ULL), i2 = uniq(2000000000000000000ULL);
    struct gh_cmdlog_entry e;
    char msg[64];
    const char *params[1] = {msg};

    (void)state;
    ctx_init(&ctx, bad_pg, bad_redis);
    e = entry(0, i1);
    assert_int_equal(gh_cmdlog_record(&ctx, &e), GH_OK);
    e = entry(0, i2);
    assert_int_equal(gh_cmdlog_record(&ctx, &e), GH_OK);
    snprintf(msg, sizeof(msg), "spooled error %d", (int)getpid());
    assert_int_equal(gh_errlog_record(&ctx, "test", msg, NULL, NULL), GH_OK);
    assert_int_equal(spool_lines(""), 3);

    /* Still down: the replay fails and keeps the file. */
    assert_true(gh_cmdlog_flush(&ctx, 500) < 0);
    assert_int_equal(spool_lines(".replaying"), 3);
    /* New entries go to a new spool meanwhile. */
    e = entry(0, uniq(2000000000000000000ULL));
    assert_int_equal(gh_cmdlog_record(&ctx, &e), GH_OK);
    assert_int_equal(spool_lines(""), 1);

    /* PostgreSQL back (Redis still down): the next flushes replay everything. */
    ctx.pg = pg;
    gh_cmdlog_flush(&ctx, 500); /* Redis part fails: negative, the spool part is done */
    assert_int_equal(spool_lines(".replaying"), -1);
    gh_cmdlog_flush(&ctx, 500);
    assert_int_equal(spool_lines(""), -1);
    assert_int_equal(rows_between(i1, i2 + 1), 3);
    {
        PGresult *res = gh_pg_exec(pg, "SELECT count(*) FROM error_log WHERE message = $1", 1, params);

        assert_non_null(res);
        assert_string_equal(PQgetvalue(res, 0, 0), "1");
        PQclear(res);
    }
    assert_int_equal(gh_pg_command(pg, "DELETE FROM error_log WHERE message = $1", 1, params), GH_OK);
    cleanup_rows(i1, i2 + 1, 0);
}

static void test_rejected_entries_do_not_block(void **state)
{
    NEED_STORES();
    struct gh_ctx ctx;
    uint64_t good = uniq(2000000000000000000ULL), bad = uniq(2000000000000000000ULL);
    struct gh_cmdlog_entry e = entry(0, good);

    (void)state;
    ctx_init(&ctx, pg, redis);
    assert_int_equal(gh_cmdlog_record(&ctx, &e), GH_OK);
    /* No user: NOT NULL violation. And a line that is not JSON at all. */
    freeReplyObject(
        gh_redis_cmd(redis,
                     "LPUSH bot:{global}:cmdlog:pending {\"kind\":\"cmd\",\"interaction_id\":\"%llu\","
                     "\"command\":\"x\",\"success\":true}",
                     (unsigned long long)bad));
    freeReplyObject(gh_redis_cmd(redis, "LPUSH bot:{global}:cmdlog:pending %s", "{broken"));
    assert_int_equal(gh_cmdlog_flush(&ctx, 500), 3);
    assert_int_equal(rows_between(good, good), 1);
    assert_int_equal(rows_between(bad, bad), 0);
    assert_int_equal(llen("bot:{global}:cmdlog:inflight"), 0);
    cleanup_rows(good, bad, 0);
}

static void test_flush_lock_and_validation(void **state)
{
    NEED_STORES();
    struct gh_ctx ctx;
    uint64_t i1 = uniq(2000000000000000000ULL);
    struct gh_cmdlog_entry e = entry(0, i1);

    (void)state;
    ctx_init(&ctx, pg, redis);
    e.user_id = 0;
    assert_int_equal(gh_cmdlog_record(&ctx, &e), GH_EINVAL);
    e.user_id = 1;
    e.command = NULL;
    assert_int_equal(gh_cmdlog_record(&ctx, &e), GH_EINVAL);
    e = entry(0, i1);
    assert_int_equal(gh_cmdlog_record(&ctx, &e), GH_OK);
    /* Another flusher holds the lock: this one leaves the lists alone. */
    freeReplyObject(gh_redis_cmd(redis, "SET bot:{global}:cmdlog:flushlock other PX 10000"));
    assert_int_equal(gh_cmdlog_flush(&ctx, 500), 0);
    assert_int_equal(llen("bot:{global}:cmdlog:pending"), 1);
    freeReplyObject(gh_redis_cmd(redis, "DEL bot:{global}:cmdlog:flushlock"));
    assert_int_equal(gh_cmdlog_flush(&ctx, 500), 1);
    assert_int_equal(rows_between(i1, i1), 1);
    assert_int_equal(gh_cmdlog_flush(&ctx, 0), GH_EINVAL);
    cleanup_rows(i1, i1, 0);
}

static void write_spool(const char *text)
{
    char path[600];
    FILE *f;

    snprintf(path, sizeof(path), "%s/cmdlog.spool", tmpdir);
    f = fopen(path, "a");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_validation_and_nowhere_to_store(void **state)
{
    struct gh_ctx ctx;
    struct gh_config nodir;
    struct gh_cmdlog_entry e = entry(0, 1);
    struct gh_pg *dead_pg = gh_pg_new(BAD_PG_URL, 5000, NULL);
    struct gh_redis *dead_redis = gh_redis_new("redis://127.0.0.1:1/9", 100, NULL);

    (void)state;
    ctx_init(&ctx, dead_pg, dead_redis);
    assert_int_equal(gh_cmdlog_record(NULL, &e), GH_EINVAL);
    assert_int_equal(gh_cmdlog_record(&ctx, NULL), GH_EINVAL);
    e.command = "";
    assert_int_equal(gh_cmdlog_record(&ctx, &e), GH_EINVAL);
    e = entry(0, 1);
    e.duration_us = -1;
    assert_int_equal(gh_cmdlog_record(&ctx, &e), GH_EINVAL);
    assert_int_equal(gh_errlog_record(NULL, "c", "m", NULL, NULL), GH_EINVAL);
    assert_int_equal(gh_errlog_record(&ctx, NULL, "m", NULL, NULL), GH_EINVAL);
    assert_int_equal(gh_errlog_record(&ctx, "", "m", NULL, NULL), GH_EINVAL);
    assert_int_equal(gh_errlog_record(&ctx, "c", NULL, NULL, NULL), GH_EINVAL);
    assert_int_equal(gh_cmdlog_flush(NULL, 10), GH_EINVAL);
    /* Both stores down and no run directory for a spool: the caller hears it. */
    ctx.cfg = NULL;
    e = entry(0, 1);
    assert_int_equal(gh_cmdlog_record(&ctx, &e), GH_EIO);
    assert_int_equal(gh_errlog_record(&ctx, "c", "m", "{\"a\":1}", "bt"), GH_EIO);
    /* A run directory that does not exist: the spool cannot be written either. */
    memset(&nodir, 0, sizeof(nodir));
    snprintf(nodir.run_dir, sizeof(nodir.run_dir), "%s/missing/dir", tmpdir);
    ctx.cfg = &nodir;
    assert_int_equal(gh_cmdlog_record(&ctx, &e), GH_EIO);
    /* Nothing to flush without Redis or a spool. */
    ctx.redis = NULL;
    assert_int_equal(gh_cmdlog_flush(&ctx, 10), 0);
    gh_pg_free(dead_pg);
    gh_redis_free(dead_redis);
}

/* A spool written by hand: blank lines, garbage and unknown kinds are
 * dropped; valid lines are inserted in batches of at most max. */
static void test_spool_replay_skips_bad_lines(void **state)
{
    NEED_STORES();
    struct gh_ctx ctx;
    uint64_t base = uniq(2000000000000000000ULL);
    char line[512];
    int i;

    (void)state;
    ctx_init(&ctx, pg, NULL);
    write_spool("\n\r\nnot json\n{\"kind\":\"other\"}\n{\"kind\":7}\n");
    for (i = 0; i < 5; i++) {
        snprintf(line, sizeof(line),
                 "{\"kind\":\"cmd\",\"user_id\":\"1\",\"interaction_id\":\"%llu\",\"command\":\"spooled\","
                 "\"success\":true,\"duration_us\":1}\r\n",
                 (unsigned long long)(base + (uint64_t)i));
        write_spool(line);
    }
    assert_int_equal(gh_cmdlog_flush(&ctx, 2), 5);
    assert_int_equal(spool_lines(""), -1);
    assert_int_equal(spool_lines(".replaying"), -1);
    assert_int_equal(rows_between(base, base + 4), 5);
    cleanup_rows(base, base + 4, 0);
}

static void test_spool_replay_waits_for_lock(void **state)
{
    NEED_STORES();
    struct gh_ctx ctx;
    uint64_t id = uniq(2000000000000000000ULL);
    char line[512], lockpath[600];
    int fd;

    (void)state;
    ctx_init(&ctx, pg, NULL);
    snprintf(line, sizeof(line),
             "{\"kind\":\"cmd\",\"user_id\":\"1\",\"interaction_id\":\"%llu\",\"command\":\"locked\","
             "\"success\":true,\"duration_us\":1}\n",
             (unsigned long long)id);
    write_spool(line);
    snprintf(lockpath, sizeof(lockpath), "%s/cmdlog.spool.lock", tmpdir);
    fd = open(lockpath, O_RDWR | O_CREAT, 0600);
    assert_true(fd >= 0);
    assert_int_equal(flock(fd, LOCK_EX), 0);
    /* Another process is replaying: this flush leaves the spool alone. */
    assert_int_equal(gh_cmdlog_flush(&ctx, 10), 0);
    assert_int_equal(spool_lines(""), 1);
    close(fd);
    assert_int_equal(gh_cmdlog_flush(&ctx, 10), 1);
    assert_int_equal(spool_lines(""), -1);
    assert_int_equal(rows_between(id, id), 1);
    cleanup_rows(id, id, 0);
}

static void test_flush_redis_errors(void **state)
{
    NEED_STORES();
    struct gh_ctx ctx;
    struct gh_cmdlog_entry e;
    uint64_t id = uniq(2000000000000000000ULL);

    (void)state;
    ctx_init(&ctx, pg, redis);
    e = entry(0, id);
    assert_int_equal(gh_cmdlog_record(&ctx, &e), GH_OK);
    /* The in-flight list is not a list: the flush reports Redis, keeps pending. */
    freeReplyObject(gh_redis_cmd(redis, "SET bot:{global}:cmdlog:inflight oops"));
    assert_int_equal(gh_cmdlog_flush(&ctx, 100000), GH_EREDIS);
    assert_int_equal(llen("bot:{global}:cmdlog:pending"), 1);
    assert_int_equal(rows_between(id, id), 0);
    /* The lock was released: once fixed, the next flush goes through. */
    freeReplyObject(gh_redis_cmd(redis, "DEL bot:{global}:cmdlog:inflight"));
    assert_int_equal(gh_cmdlog_flush(&ctx, 100000), 1);
    assert_int_equal(rows_between(id, id), 1);
    /* Redis down at flush time: an error, not zero. */
    ctx.redis = bad_redis;
    assert_int_equal(gh_cmdlog_flush(&ctx, 10), GH_EREDIS);
    cleanup_rows(id, id, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_record_flush_writes_rows, each),
        cmocka_unit_test_setup(test_entry_format_and_verbatim_options, each),
        cmocka_unit_test_setup(test_errlog, each),
        cmocka_unit_test_setup(test_pg_down_nothing_lost_or_doubled, each),
        cmocka_unit_test_setup(test_redis_down_direct_insert, each),
        cmocka_unit_test_setup(test_both_down_spool_replayed, each),
        cmocka_unit_test_setup(test_rejected_entries_do_not_block, each),
        cmocka_unit_test_setup(test_flush_lock_and_validation, each),
        cmocka_unit_test_setup(test_validation_and_nowhere_to_store, each),
        cmocka_unit_test_setup(test_spool_replay_skips_bad_lines, each),
        cmocka_unit_test_setup(test_spool_replay_waits_for_lock, each),
        cmocka_unit_test_setup(test_flush_redis_errors, each),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
