/* test_joblog.c - job_runs in batches (lib/store/joblog.c): entries, batch
 * sizes, PostgreSQL down (nothing lost), a replayed batch (nothing twice),
 * and retention. Needs DATABASE_URL and REDIS_URL (skips without them); uses
 * a queue name unique to the run and deletes its rows afterwards. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "core/ctx.h"
#include "core/err.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "store/joblog.h"
#include "store/pg.h"
#include "store/queue.h"
#include "store/redis.h"

static struct gh_ctx ctx;
static struct gh_log_sink sink;
static char queue[64];

#define NEED_STORES()                                                                                        \
    do {                                                                                                     \
        if (!ctx.pg || !ctx.redis) {                                                                         \
            print_message("DATABASE_URL or REDIS_URL is not set: joblog tests skipped\n");                   \
            skip();                                                                                          \
        }                                                                                                    \
    } while (0)

static long long rows(const char *extra)
{
    char q[300];
    const char *params[1] = {queue};
    PGresult *res;
    long long n = -1;

    snprintf(q, sizeof(q), "SELECT count(*) FROM job_runs WHERE queue = $1 %s", extra ? extra : "");
    res = gh_pg_exec(ctx.pg, q, 1, params);
    if (res && PQresultStatus(res) == PGRES_TUPLES_OK)
        n = atoll(PQgetvalue(res, 0, 0));
    PQclear(res);
    return n;
}

static long long llen(const char *suffix)
{
    char key[200];
    redisReply *r;
    long long n;

    gh_queue_key(key, sizeof(key), queue, suffix);
    r = gh_redis_cmd(ctx.redis, "LLEN %s", key);
    n = r && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    freeReplyObject(r);
    return n;
}

static void push_entries(int n, const char *status)
{
    char key[200];
    struct gh_job job;

    memset(&job, 0, sizeof(job));
    snprintf(job.kind, sizeof(job.kind), "test:log");
    job.guild_id = 1234567890123ULL;
    gh_queue_key(key, sizeof(key), queue, "log");
    for (int i = 0; i < n; i++) {
        struct gh_joblog_run run = {.queue = queue,
                                    .job = &job,
                                    .status = status,
                                    .error = strcmp(status, "done") ? "boom" : NULL,
                                    .started_ms = gh_now_ms() - 5,
                                    .duration_ms = 5};
        char *e;

        snprintf(job.id, sizeof(job.id), "jl:%d", i);
        job.attempt = 1 + i % 3;
        e = gh_joblog_entry(&run);
        assert_non_null(e);
        freeReplyObject(gh_redis_cmd(ctx.redis, "LPUSH %s %s", key, e));
        free(e);
    }
}

static void clean(void)
{
    const char *params[1] = {queue};
    static const char *const suffixes[] = {"log", "log:inflight", "log:lock"};
    char key[200];

    if (ctx.pg)
        gh_pg_command(ctx.pg, "DELETE FROM job_runs WHERE queue = $1", 1, params);
    for (size_t i = 0; ctx.redis && i < 3; i++) {
        gh_queue_key(key, sizeof(key), queue, suffixes[i]);
        freeReplyObject(gh_redis_cmd(ctx.redis, "DEL %s", key));
    }
}

static int setup(void **state)
{
    const char *db = getenv("DATABASE_URL"), *ru = getenv("REDIS_URL");

    (void)state;
    snprintf(queue, sizeof(queue), "test-joblog-%d", (int)getpid());
    gh_log_sink_init(&sink, "test", GH_LOG_CRIT, NULL, 0, 0);
    gh_logger_init(&ctx.log, &sink, "test-joblog");
    if (db && ru) {
        ctx.pg = gh_pg_new(db, 10000, &ctx.log);
        ctx.redis = gh_redis_new(ru, 1000, &ctx.log);
    }
    clean();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    clean();
    gh_pg_free(ctx.pg);
    gh_redis_free(ctx.redis);
    return 0;
}

static void test_entry(void **state)
{
    struct gh_job job;
    struct gh_joblog_run run;
    json_object *o, *v;
    char *e;

    (void)state;
    memset(&job, 0, sizeof(job));
    snprintf(job.id, sizeof(job.id), "x:1");
    snprintf(job.kind, sizeof(job.kind), "core:followup");
    job.attempt = 2;
    memset(&run, 0, sizeof(run));
    assert_null(gh_joblog_entry(NULL));
    assert_null(gh_joblog_entry(&run)); /* no job */
    run.queue = "default";
    run.job = &job;
    run.status = "retry";
    run.error = "boom";
    run.duration_ms = 12;
    e = gh_joblog_entry(&run);
    assert_non_null(e);
    o = json_tokener_parse(e);
    assert_true(json_object_object_get_ex(o, "status", &v));
    assert_string_equal(json_object_get_string(v), "retry");
    assert_true(json_object_object_get_ex(o, "attempt", &v));
    assert_int_equal(json_object_get_int(v), 2);
    assert_true(json_object_object_get_ex(o, "guild_id", &v));
    assert_null(v);
    assert_true(json_object_object_get_ex(o, "started_at", &v));
    assert_null(v); /* never started */
    assert_true(json_object_object_get_ex(o, "run_key", &v));
    assert_int_equal(json_object_get_string_len(v), 32);
    json_object_put(o);
    free(e);
}

/* 2,500 entries go in as batches of at most 1,000; a replayed batch inserts nothing twice. */
static void test_batches(void **state)
{
    char inflight[200], logk[200];
    redisReply *r;

    (void)state;
    NEED_STORES();
    push_entries(2500, "done");
    assert_int_equal(gh_joblog_flush(&ctx, queue, 1000), 1000);
    assert_int_equal(rows(NULL), 1000);
    assert_int_equal(gh_joblog_flush(&ctx, queue, 1000), 1000);
    assert_int_equal(gh_joblog_flush(&ctx, queue, 1000), 500);
    assert_int_equal(gh_joblog_flush(&ctx, queue, 1000), 0);
    assert_int_equal(rows(NULL), 2500);
    assert_int_equal(rows("AND guild_id = 1234567890123 AND status = 'done' AND duration_ms = 5 AND "
                          "error IS NULL AND started_at IS NOT NULL AND worker_pid > 0"),
                     2500);
    assert_int_equal(llen("log"), 0);
    assert_int_equal(llen("log:inflight"), 0);
    /* A batch left in inflight after its COMMIT (the DEL was lost) is re-sent: nothing twice. */
    push_entries(10, "retry");
    gh_queue_key(logk, sizeof(logk), queue, "log");
    gh_queue_key(inflight, sizeof(inflight), queue, "log:inflight");
    r = gh_redis_cmd(ctx.redis, "LRANGE %s 0 -1", logk);
    assert_int_equal(gh_joblog_flush(&ctx, queue, 1000), 10);
    for (size_t i = 0; i < r->elements; i++)
        freeReplyObject(gh_redis_cmd(ctx.redis, "LPUSH %s %s", inflight, r->element[i]->str));
    freeReplyObject(r);
    assert_int_equal(gh_joblog_flush(&ctx, queue, 1000), 10);
    assert_int_equal(rows("AND status = 'retry' AND error = 'boom'"), 10);
    assert_int_equal(llen("log:inflight"), 0);
}

/* PostgreSQL down: the flush fails, the entries stay; back: all of them go in. */
static void test_pg_down(void **state)
{
    struct gh_pg *live;

    (void)state;
    NEED_STORES();
    push_entries(30, "dead");
    live = ctx.pg;
    ctx.pg = gh_pg_new("postgresql://guildhall@127.0.0.1:1/none?connect_timeout=1", 1000, &ctx.log);
    assert_true(gh_joblog_flush(&ctx, queue, 20) < 0);
    assert_int_equal(llen("log:inflight") + llen("log"), 30);
    assert_true(gh_joblog_flush(&ctx, queue, 20) < 0); /* still down: still nothing lost */
    gh_pg_free(ctx.pg);
    ctx.pg = live;
    assert_int_equal(gh_joblog_flush(&ctx, queue, 20), 20); /* the held batch first */
    assert_int_equal(gh_joblog_flush(&ctx, queue, 20), 10);
    assert_int_equal(rows("AND status = 'dead'"), 30);
    assert_int_equal(llen("log:inflight") + llen("log"), 0);
}

/* Rows past GH_JOBLOG_RETENTION_DAYS are deleted; at most once an hour unless forced. */
static void test_retention(void **state)
{
    const char *params[1] = {queue};
    char mark[200];

    (void)state;
    NEED_STORES();
    clean();
    push_entries(3, "done");
    assert_int_equal(gh_joblog_flush(&ctx, queue, 100), 3);
    assert_int_equal(gh_pg_command(ctx.pg,
                                   "UPDATE job_runs SET created_at = now() - interval '15 days' "
                                   "WHERE queue = $1 AND job_id IN ('jl:0', 'jl:1')",
                                   1, params),
                     GH_OK);
    assert_true(gh_joblog_retention(&ctx, 1) >= 2);
    assert_int_equal(rows(NULL), 1);
    gh_key_global(mark, sizeof(mark), "jobs", "joblog:retention");
    freeReplyObject(gh_redis_cmd(ctx.redis, "SET %s 1 EX 3600", mark));
    assert_int_equal(
        gh_pg_command(ctx.pg, "UPDATE job_runs SET created_at = now() - interval '15 days' WHERE queue = $1",
                      1, params),
        GH_OK);
    assert_int_equal(gh_joblog_retention(&ctx, 0), 0); /* ran within the hour: skipped */
    assert_int_equal(rows(NULL), 1);
    freeReplyObject(gh_redis_cmd(ctx.redis, "DEL %s", mark));
    assert_true(gh_joblog_retention(&ctx, 0) >= 1);
    assert_int_equal(rows(NULL), 0);
    freeReplyObject(gh_redis_cmd(ctx.redis, "DEL %s", mark));
}

static void lpush_raw(const char *text)
{
    char key[200];

    gh_queue_key(key, sizeof(key), queue, "log");
    freeReplyObject(gh_redis_cmd(ctx.redis, "LPUSH %s %s", key, text));
}

/* Entries that are not JSON objects are dropped; the others go in. */
static void test_malformed_entries_dropped(void **state)
{
    (void)state;
    NEED_STORES();
    clean();
    push_entries(2, "done");
    lpush_raw("not json at all");
    lpush_raw("[1,2,3]");
    assert_int_equal(gh_joblog_flush(&ctx, queue, 100), 4); /* four taken */
    assert_int_equal(rows(NULL), 2);
    assert_int_equal(llen("log") + llen("log:inflight"), 0);

    /* A batch of nothing but malformed entries: taken, nothing written. */
    lpush_raw("{broken");
    assert_int_equal(gh_joblog_flush(&ctx, queue, 100), 1);
    assert_int_equal(rows(NULL), 2);
    assert_int_equal(llen("log") + llen("log:inflight"), 0);
}

/* An entry PostgreSQL rejects (a data error) does not hold back the batch:
 * the others are inserted one by one and the bad one is dropped. */
static void test_rejected_entry_inserted_one_by_one(void **state)
{
    (void)state;
    NEED_STORES();
    clean();
    push_entries(3, "done");
    lpush_raw("{\"run_key\":\"bad-attempt\",\"queue\":\"x\",\"kind\":\"k\",\"job_id\":\"j\","
              "\"attempt\":\"not-a-number\",\"status\":\"done\"}");
    assert_int_equal(gh_joblog_flush(&ctx, queue, 100), 4);
    assert_int_equal(rows(NULL), 3);
    assert_int_equal(llen("log") + llen("log:inflight"), 0);
}

/* Bad arguments, a missing connection, and a flush already at work. */
static void test_flush_guards(void **state)
{
    struct gh_ctx none;
    char lock[200];
    redisReply *r;

    (void)state;
    assert_int_equal(gh_joblog_flush(NULL, "default", 10), GH_EINVAL);
    assert_int_equal(gh_joblog_flush(&ctx, "Bad Queue!", 10), GH_EINVAL);
    assert_int_equal(gh_joblog_flush(&ctx, queue, 0), GH_EINVAL);
    memset(&none, 0, sizeof(none));
    none.log = ctx.log;
    assert_int_equal(gh_joblog_flush(&none, queue, 10), GH_EREDIS);
    assert_int_equal(gh_joblog_retention(NULL, 1), GH_EINVAL);
    assert_int_equal(gh_joblog_retention(&none, 1), GH_EINVAL);
    NEED_STORES();
    clean();
    push_entries(5, "done");
    /* Another flusher holds the lock: nothing is taken. */
    gh_queue_key(lock, sizeof(lock), queue, "log:lock");
    freeReplyObject(gh_redis_cmd(ctx.redis, "SET %s other PX 60000", lock));
    assert_int_equal(gh_joblog_flush(&ctx, queue, 100), 0);
    assert_int_equal(llen("log"), 5);
    assert_int_equal(rows(NULL), 0);
    /* Its lock is not released by us. */
    r = gh_redis_cmd(ctx.redis, "GET %s", lock);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    assert_string_equal(r->str, "other");
    freeReplyObject(r);
    freeReplyObject(gh_redis_cmd(ctx.redis, "DEL %s", lock));
    /* A max above GH_JOBLOG_BATCH_MAX is clamped; all five go in. */
    assert_int_equal(gh_joblog_flush(&ctx, queue, GH_JOBLOG_BATCH_MAX + 5), 5);
    assert_int_equal(rows(NULL), 5);
}

/* An entry keeps the guild, the timestamps, and at most 2,000 error bytes. */
static void test_entry_fields(void **state)
{
    struct gh_job job;
    struct gh_joblog_run run;
    json_object *o, *v;
    char err[3000];
    char *e;

    (void)state;
    memset(&job, 0, sizeof(job));
    snprintf(job.id, sizeof(job.id), "x:2");
    snprintf(job.kind, sizeof(job.kind), "core:followup");
    job.guild_id = 42;
    memset(err, 'e', sizeof(err) - 1);
    err[sizeof(err) - 1] = '\0';
    memset(&run, 0, sizeof(run));
    run.queue = "default";
    run.job = &job;
    run.status = "dead";
    run.error = err;
    run.started_ms = 1700000000000LL;
    run.finished_ms = 1700000001000LL;
    run.duration_ms = (int64_t)INT32_MAX + 10;
    run.pid = 4321;
    e = gh_joblog_entry(&run);
    assert_non_null(e);
    o = json_tokener_parse(e);
    assert_non_null(o);
    assert_true(json_object_object_get_ex(o, "guild_id", &v));
    assert_string_equal(json_object_get_string(v), "42");
    assert_true(json_object_object_get_ex(o, "attempt", &v));
    assert_int_equal(json_object_get_int(v), 1); /* 0: the first attempt */
    assert_true(json_object_object_get_ex(o, "error", &v));
    assert_int_equal(json_object_get_string_len(v), 2000);
    assert_true(json_object_object_get_ex(o, "duration_ms", &v));
    assert_int_equal(json_object_get_int64(v), INT32_MAX);
    assert_true(json_object_object_get_ex(o, "worker_pid", &v));
    assert_int_equal(json_object_get_int(v), 4321);
    assert_true(json_object_object_get_ex(o, "started_at", &v));
    assert_non_null(strstr(json_object_get_string(v), "2023-11-14T22:13:20"));
    assert_true(json_object_object_get_ex(o, "finished_at", &v));
    assert_non_null(strstr(json_object_get_string(v), "2023-11-14T22:13:21"));
    json_object_put(o);
    free(e);
    /* A job without a kind is refused. */
    job.kind[0] = '\0';
    assert_null(gh_joblog_entry(&run));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_entry),
        cmocka_unit_test(test_batches),
        cmocka_unit_test(test_pg_down),
        cmocka_unit_test(test_retention),
        cmocka_unit_test(test_malformed_entries_dropped),
        cmocka_unit_test(test_rejected_entry_inserted_one_by_one),
        cmocka_unit_test(test_flush_guards),
        cmocka_unit_test(test_entry_fields),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
