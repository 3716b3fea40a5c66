/* test_timers.c - durable timers (lib/store/timers.c) against real
 * PostgreSQL and Redis: schedule and idempotency keys, cancel, promotion of
 * exactly the due rows, the worker's reports, Redis flushed (timers still
 * fire), two schedulers at once (no timer enqueued twice), PostgreSQL down
 * (an error, nothing half-written).
 *
 * Isolation: the test applies sql/0004_scheduled_actions.up.sql into a schema
 * of its own (tt<pid>) and reaches it through search_path, so the running
 * stack's scheduler never sees these rows and rows of other tests never
 * reach this test's queue. Redis database 9, queue tt<pid>. Needs
 * DATABASE_URL and REDIS_URL (scripts/test.sh exports them). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <json-c/json.h>
#include <libpq-fe.h>

#include "core/ctx.h"
#include "core/err.h"
#include "core/timeutil.h"
#include "store/pg.h"
#include "store/queue.h"
#include "store/redis.h"
#include "store/timers.h"

#define MIGRATION "sql/0004_scheduled_actions.up.sql"
#define DAY_MS ((int64_t)86400 * 1000)
#define MANY 2000

static char schema[32], queue[32], pg_url[1024], redis_url[300];
static struct gh_ctx ctx;
static PGconn *admin; /* plain libpq, same schema: checks rows behind the module's back */
static uint64_t guild;
static int64_t T0; /* the test's clock: ten days ahead, so nothing real is ever due with it */
static int ready_db;

/* ---- wrap: PostgreSQL goes away in the middle of a promotion --------------------------- */

int __real_gh_queue_enqueue(struct gh_redis *r, const char *q, const char *id, const char *kind,
                            uint64_t guild_id, json_object *payload, int64_t deadline_ms);
int __wrap_gh_queue_enqueue(struct gh_redis *r, const char *q, const char *id, const char *kind,
                            uint64_t guild_id, json_object *payload, int64_t deadline_ms);
static int enqueue_calls, kill_pg_after;

int __wrap_gh_queue_enqueue(struct gh_redis *r, const char *q, const char *id, const char *kind,
                            uint64_t guild_id, json_object *payload, int64_t deadline_ms)
{
    int rc = __real_gh_queue_enqueue(r, q, id, kind, guild_id, payload, deadline_ms);

    if (kill_pg_after > 0 && ++enqueue_calls == kill_pg_after) {
        char sql[96];
        PGresult *res;

        snprintf(sql, sizeof(sql), "SELECT pg_terminate_backend(%d)", PQbackendPID(gh_pg_conn(ctx.pg)));
        res = PQexec(admin, sql);
        PQclear(res);
    }
    return rc;
}

/* ---- helpers --------------------------------------------------------------------------- */

#define NEED_DB()                                                                                            \
    do {                                                                                                     \
        if (!ready_db) {                                                                                     \
            print_message("DATABASE_URL / REDIS_URL not set or unusable: timer tests skipped\n");            \
            skip();                                                                                          \
        }                                                                                                    \
    } while (0)

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long n;

    if (!f)
        return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) > 0 && fseek(f, 0, SEEK_SET) == 0) {
        buf = calloc(1, (size_t)n + 1);
        if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
            free(buf);
            buf = NULL;
        }
    }
    fclose(f);
    return buf;
}

static int admin_exec(const char *sql)
{
    PGresult *res = PQexec(admin, sql);
    int ok = res && (PQresultStatus(res) == PGRES_COMMAND_OK || PQresultStatus(res) == PGRES_TUPLES_OK);

    if (!ok)
        print_message("admin SQL failed: %s: %s\n", sql, PQerrorMessage(admin));
    PQclear(res);
    return ok;
}

/* First column of the first row as an integer (-1 on failure). */
static long long admin_int(const char *fmt, ...)
{
    char sql[1024];
    va_list ap;
    PGresult *res;
    long long v = -1;

    va_start(ap, fmt);
    vsnprintf(sql, sizeof(sql), fmt, ap);
    va_end(ap);
    res = PQexec(admin, sql);
    if (res && PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 && !PQgetisnull(res, 0, 0))
        v = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    else
        print_message("admin query failed: %s: %s\n", sql, PQerrorMessage(admin));
    PQclear(res);
    return v;
}

static void admin_text(char *out, size_t size, const char *fmt, ...)
{
    char sql[1024];
    va_list ap;
    PGresult *res;

    va_start(ap, fmt);
    vsnprintf(sql, sizeof(sql), fmt, ap);
    va_end(ap);
    out[0] = '\0';
    res = PQexec(admin, sql);
    if (res && PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 && !PQgetisnull(res, 0, 0))
        snprintf(out, size, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
}

static void url_with_db(const char *url, int db, char *out, size_t size)
{
    const char *hostpart = strstr(url, "://");
    const char *slash = strchr(hostpart ? hostpart + 3 : url, '/');
    int n = slash ? (int)(slash - url) : (int)strlen(url);

    snprintf(out, size, "%.*s/%d", n, url, db);
}

static long long ready_len(void)
{
    return gh_queue_len(ctx.redis, queue, "ready");
}

static void flushdb(void)
{
    redisReply *rep = gh_redis_cmd(ctx.redis, "FLUSHDB");

    assert_non_null(rep);
    assert_int_not_equal(rep->type, REDIS_REPLY_ERROR);
    freeReplyObject(rep);
}

static int64_t schedule_at(const char *key, int64_t due_ms)
{
    json_object *payload = json_tokener_parse("{\"n\":7,\"who\":\"test\"}");
    int64_t id = 0;

    assert_int_equal(gh_timers_schedule(&ctx, 0, "test:fire", payload, key, due_ms, &id), GH_OK);
    assert_true(id > 0);
    json_object_put(payload);
    return id;
}

static void state_of(int64_t id, char *out, size_t size)
{
    admin_text(out, size, "SELECT state FROM scheduled_actions WHERE id = %" PRId64, id);
}

/* A stand-in worker: pops every ready job, checks it with gh_timers_job_started,
 * "runs" it (counts it) and reports with gh_timers_job_finished, then acks.
 * Returns the jobs run. */
static int run_ready_jobs(int ok, int final)
{
    struct gh_job job;
    int ran = 0;

    for (;;) {
        memset(&job, 0, sizeof(job));
        int rc = gh_queue_pop(ctx.redis, queue, 0, &job);
        if (rc == GH_ENOTFOUND)
            break;
        assert_int_equal(rc, GH_OK);
        assert_true(gh_timers_job_timer_id(&job) > 0);
        if (gh_timers_job_started(&ctx, &job) == GH_OK) {
            ran++;
            assert_int_equal(gh_timers_job_finished(&ctx, &job, ok, final, ok ? NULL : "handler said no"),
                             GH_OK);
        }
        if (ok || !final)
            (void)gh_queue_ack(ctx.redis, queue, &job);
        else
            (void)gh_queue_fail(ctx.redis, queue, &job, 1, "handler said no");
        gh_job_cleanup(&job);
    }
    return ran;
}

/* ---- fixtures -------------------------------------------------------------------------- */

static int setup(void **state)
{
    const char *db = getenv("DATABASE_URL"), *ru = getenv("REDIS_URL");
    char sql[256], *mig = NULL;

    (void)state;
    snprintf(schema, sizeof(schema), "tt%d", (int)getpid());
    snprintf(queue, sizeof(queue), "tt%d", (int)getpid());
    T0 = gh_now_ms() + 10 * DAY_MS;
    guild = 880000000000000000ULL + (uint64_t)getpid();
    if (!db || !*db || !ru || !*ru)
        return 0;
    snprintf(pg_url, sizeof(pg_url), "%s%coptions=-csearch_path%%3D%s%%2Cpublic", db,
             strchr(db, '?') ? '&' : '?', schema);
    url_with_db(ru, 9, redis_url, sizeof(redis_url));

    admin = PQconnectdb(pg_url);
    if (PQstatus(admin) != CONNECTION_OK) {
        print_message("cannot connect to PostgreSQL: %s\n", PQerrorMessage(admin));
        return 0;
    }
    mig = read_file(MIGRATION);
    if (!mig) {
        print_message("cannot read %s (run from the repository root)\n", MIGRATION);
        return 0;
    }
    snprintf(sql, sizeof(sql), "DROP SCHEMA IF EXISTS %s CASCADE; CREATE SCHEMA %s", schema, schema);
    snprintf(sql + strlen(sql), sizeof(sql) - strlen(sql),
             "; INSERT INTO public.guilds (id, name) VALUES (%" PRIu64
             ", 'timers test') ON CONFLICT DO NOTHING",
             guild);
    if (!admin_exec(sql) || !admin_exec(mig)) {
        free(mig);
        return 0;
    }
    free(mig);
    ctx.pg = gh_pg_new(pg_url, -1, NULL); /* -1: keep the URL's options (search_path) */
    ctx.redis = gh_redis_new(redis_url, 2000, NULL);
    ctx.queue = queue;
    ready_db = ctx.pg && ctx.redis && gh_pg_ping(ctx.pg) == GH_OK && gh_redis_ping(ctx.redis) == GH_OK;
    return 0;
}

static int teardown(void **state)
{
    char sql[256];

    (void)state;
    if (admin && PQstatus(admin) == CONNECTION_OK) {
        snprintf(sql, sizeof(sql),
                 "DROP SCHEMA IF EXISTS %s CASCADE; DELETE FROM public.guilds WHERE id = %" PRIu64, schema,
                 guild);
        admin_exec(sql);
    }
    if (ctx.redis)
        freeReplyObject(gh_redis_cmd(ctx.redis, "FLUSHDB"));
    gh_pg_free(ctx.pg);
    gh_redis_free(ctx.redis);
    PQfinish(admin);
    return 0;
}

/* Every test starts from an empty table and an empty Redis database 9. */
static int each(void **state)
{
    (void)state;
    kill_pg_after = 0;
    enqueue_calls = 0;
    if (ready_db) {
        admin_exec("TRUNCATE scheduled_actions");
        freeReplyObject(gh_redis_cmd(ctx.redis, "FLUSHDB"));
    }
    return 0;
}

/* ---- tests ----------------------------------------------------------------------------- */

static void test_schedule_and_idempotency_key(void **state)
{
    NEED_DB();
    json_object *p1 = json_tokener_parse("{\"a\":1}"), *p2 = json_tokener_parse("{\"a\":2}");
    int64_t id = 0, again = 0, other = 0, g = 0;
    char text[128];

    (void)state;
    assert_int_equal(gh_timers_schedule(&ctx, 0, "test:fire", p1, "giveaway:end:1", T0, &id), GH_OK);
    assert_true(id > 0);
    /* Same key: the first row, unchanged. */
    assert_int_equal(gh_timers_schedule(&ctx, 0, "test:other", p2, "giveaway:end:1", T0 + 5000, &again),
                     GH_EDUPLICATE);
    assert_int_equal(again, id);
    admin_text(text, sizeof(text),
               "SELECT kind || ' ' || payload::text || ' ' || state FROM scheduled_actions "
               "WHERE id = %" PRId64,
               id);
    assert_string_equal(text, "test:fire {\"a\": 1} pending");
    assert_int_equal(admin_int("SELECT (extract(epoch FROM due_at) * 1000)::bigint FROM scheduled_actions "
                               "WHERE id = %" PRId64,
                               id),
                     T0);
    /* The key is per guild: a guild's timer with the same key is another row. */
    assert_int_equal(gh_timers_schedule(&ctx, guild, "test:fire", p1, "giveaway:end:1", T0, &g), GH_OK);
    assert_true(g != id);
    assert_int_equal(gh_timers_schedule(&ctx, guild, "test:fire", p1, "giveaway:end:1", T0, &other),
                     GH_EDUPLICATE);
    assert_int_equal(other, g);
    assert_int_equal(admin_int("SELECT count(*) FROM scheduled_actions"), 2);
    /* Unknown guild, bad arguments: refused, nothing written. */
    assert_int_equal(gh_timers_schedule(&ctx, 12345, "test:fire", p1, "k", T0, &other), GH_ENOTFOUND);
    assert_int_equal(gh_timers_schedule(&ctx, 0, "bad kind", p1, "k2", T0, &other), GH_EINVAL);
    assert_int_equal(gh_timers_schedule(&ctx, 0, "test:fire", p1, "", T0, &other), GH_EINVAL);
    assert_int_equal(gh_timers_schedule(&ctx, 0, "test:fire", p1, "k3", 0, &other), GH_EINVAL);
    json_object *arr = json_tokener_parse("[1]");
    assert_int_equal(gh_timers_schedule(&ctx, 0, "test:fire", arr, "k4", T0, &other), GH_EINVAL);
    json_object_put(arr);
    assert_int_equal(admin_int("SELECT count(*) FROM scheduled_actions"), 2);
    json_object_put(p1);
    json_object_put(p2);
}

static void test_cancel(void **state)
{
    NEED_DB();
    int64_t a, b, c;
    char st[32];
    int n = -1;

    (void)state;
    a = schedule_at("cancel:a", T0 - 1000);
    b = schedule_at("cancel:b", T0 - 1000);
    c = schedule_at("cancel:c", T0 - 1000);
    assert_int_equal(gh_timers_cancel(&ctx, a), GH_OK);
    state_of(a, st, sizeof(st));
    assert_string_equal(st, "cancelled");
    assert_int_equal(gh_timers_cancel(&ctx, a), GH_OK); /* again: nothing to do */
    assert_int_equal(gh_timers_cancel(&ctx, 999999999), GH_ENOTFOUND);

    /* A cancelled row is never promoted. */
    assert_int_equal(gh_timers_promote(&ctx, 100, T0, &n), GH_OK);
    assert_int_equal(n, 2);
    assert_int_equal(ready_len(), 2);

    /* Cancelled while queued: the job is skipped and the row stays cancelled. */
    assert_int_equal(gh_timers_cancel(&ctx, b), GH_OK);
    assert_int_equal(run_ready_jobs(1, 0), 1); /* only c ran */
    state_of(b, st, sizeof(st));
    assert_string_equal(st, "cancelled");
    state_of(c, st, sizeof(st));
    assert_string_equal(st, "done");
    /* A done timer cannot be cancelled. */
    assert_int_equal(gh_timers_cancel(&ctx, c), GH_ECONFLICT);
    state_of(c, st, sizeof(st));
    assert_string_equal(st, "done");
}

static void test_promote_exactly_the_due_ones(void **state)
{
    NEED_DB();
    int64_t due[3], later[2];
    struct gh_job job;
    json_object *v = NULL;
    int n = -1, i;

    (void)state;
    for (i = 0; i < 3; i++) {
        char key[32];
        snprintf(key, sizeof(key), "due:%d", i);
        due[i] = schedule_at(key, T0 - 1000 * (i + 1));
    }
    later[0] = schedule_at("later:0", T0 + 1);
    later[1] = schedule_at("later:1", T0 + 60000);
    assert_int_equal(gh_timers_next_due_in(&ctx, T0 - 10000, 60000), 7000);
    assert_int_equal(gh_timers_next_due_in(&ctx, T0, 60000), 0);

    assert_int_equal(gh_timers_promote(&ctx, 100, T0, &n), GH_OK);
    assert_int_equal(n, 3);
    assert_int_equal(ready_len(), 3);
    assert_int_equal(
        admin_int("SELECT count(*) FROM scheduled_actions WHERE state = 'queued' AND attempts = 1 "
                  "AND queued_at = to_timestamp(%" PRId64 " / 1000.0)",
                  T0),
        3);
    assert_int_equal(
        admin_int("SELECT count(*) FROM scheduled_actions WHERE state = 'pending' AND id IN (%" PRId64
                  ", %" PRId64 ") AND attempts = 0",
                  later[0], later[1]),
        2);
    /* Promoting again within the grace period enqueues nothing. */
    assert_int_equal(gh_timers_promote(&ctx, 100, T0 + 1000, &n), GH_OK);
    assert_int_equal(n, 1); /* later[0] is due now */
    assert_int_equal(ready_len(), 4);

    /* The job: kind, id "timer:<id>", payload plus timer_id; oldest due first. */
    memset(&job, 0, sizeof(job));
    assert_int_equal(gh_queue_pop(ctx.redis, queue, 0, &job), GH_OK);
    assert_string_equal(job.kind, "test:fire");
    char want[40];
    snprintf(want, sizeof(want), "timer:%" PRId64, due[2]);
    assert_string_equal(job.id, want);
    assert_int_equal(gh_timers_job_timer_id(&job), due[2]);
    assert_true(json_object_object_get_ex(job.payload, "n", &v));
    assert_int_equal(json_object_get_int(v), 7);
    assert_int_equal(job.guild_id, 0);
    gh_job_cleanup(&job);

    /* max is honoured. */
    schedule_at("more:0", T0 - 5);
    schedule_at("more:1", T0 - 5);
    assert_int_equal(gh_timers_promote(&ctx, 1, T0 + 1000, &n), GH_OK);
    assert_int_equal(n, 1);
    assert_int_equal(gh_timers_promote(&ctx, 1, T0 + 1000, &n), GH_OK);
    assert_int_equal(n, 1);
    assert_int_equal(gh_timers_promote(&ctx, 1, T0 + 1000, &n), GH_OK);
    assert_int_equal(n, 0);
    (void)later;
}

static void test_worker_reports(void **state)
{
    NEED_DB();
    int64_t ok_id, fail_id;
    char st[32], err[128];
    int n = -1;

    (void)state;
    ok_id = schedule_at("report:ok", T0 - 2000);
    assert_int_equal(gh_timers_promote(&ctx, 100, T0, &n), GH_OK);
    assert_int_equal(run_ready_jobs(1, 0), 1);
    state_of(ok_id, st, sizeof(st));
    assert_string_equal(st, "done");
    assert_int_equal(admin_int("SELECT count(*) FROM scheduled_actions WHERE id = %" PRId64
                               " AND fired_at IS NOT NULL AND finished_at IS NOT NULL",
                               ok_id),
                     1);

    /* A failure with attempts left records the error; the last one fails the row, visibly. */
    fail_id = schedule_at("report:fail", T0 - 2000);
    assert_int_equal(gh_timers_promote(&ctx, 100, T0, &n), GH_OK);
    assert_int_equal(n, 1);
    assert_int_equal(run_ready_jobs(0, 0), 1);
    state_of(fail_id, st, sizeof(st));
    assert_string_equal(st, "queued");
    admin_text(err, sizeof(err), "SELECT last_error FROM scheduled_actions WHERE id = %" PRId64, fail_id);
    assert_string_equal(err, "handler said no");

    freeReplyObject(gh_redis_cmd(ctx.redis, "FLUSHDB"));
    assert_int_equal(gh_timers_promote(&ctx, 100, T0 + GH_TIMERS_REPROMOTE_GRACE_MS, &n), GH_OK);
    assert_int_equal(n, 1);
    assert_int_equal(run_ready_jobs(0, 1), 1);
    state_of(fail_id, st, sizeof(st));
    assert_string_equal(st, "failed");
    /* A failed row is never promoted again. */
    assert_int_equal(gh_timers_promote(&ctx, 100, T0 + 10 * GH_TIMERS_REPROMOTE_GRACE_MS, &n), GH_OK);
    assert_int_equal(n, 0);
    assert_int_equal(ready_len(), 0);
    /* Not a timer job: refused. */
    struct gh_job plain;
    memset(&plain, 0, sizeof(plain));
    assert_int_equal(gh_timers_job_finished(&ctx, &plain, 1, 0, NULL), GH_EINVAL);
}

static void test_redis_flushed_timers_still_fire(void **state)
{
    NEED_DB();
    int64_t ids[3];
    int n = -1, i;

    (void)state;
    for (i = 0; i < 3; i++) {
        char key[32];
        snprintf(key, sizeof(key), "flush:%d", i);
        ids[i] = schedule_at(key, T0 - 100);
    }
    assert_int_equal(gh_timers_promote(&ctx, 100, T0, &n), GH_OK);
    assert_int_equal(n, 3);
    assert_int_equal(ready_len(), 3);

    flushdb(); /* the queued jobs and their dedupe keys are gone */
    assert_int_equal(ready_len(), 0);
    /* Within the grace period nothing happens yet... */
    assert_int_equal(gh_timers_promote(&ctx, 100, T0 + 1000, &n), GH_OK);
    assert_int_equal(n, 0);
    /* ...after it, the rows are promoted again and their jobs are back. */
    assert_int_equal(gh_timers_promote(&ctx, 100, T0 + GH_TIMERS_REPROMOTE_GRACE_MS, &n), GH_OK);
    assert_int_equal(n, 3);
    assert_int_equal(ready_len(), 3);
    assert_int_equal(admin_int("SELECT count(*) FROM scheduled_actions WHERE attempts = 2"), 3);
    assert_int_equal(run_ready_jobs(1, 0), 3);
    assert_int_equal(admin_int("SELECT count(*) FROM scheduled_actions WHERE state = 'done'"), 3);
    (void)ids;
}

static void test_slow_job_not_enqueued_twice(void **state)
{
    NEED_DB();
    int n = -1;

    (void)state;
    schedule_at("slow", T0 - 100);
    assert_int_equal(gh_timers_promote(&ctx, 100, T0, &n), GH_OK);
    assert_int_equal(ready_len(), 1);
    /* The job is still waiting (a slow queue, Redis intact): a re-promote finds
     * its dedupe key and enqueues nothing; attempts does not grow. */
    assert_int_equal(gh_timers_promote(&ctx, 100, T0 + GH_TIMERS_REPROMOTE_GRACE_MS, &n), GH_OK);
    assert_int_equal(n, 1);
    assert_int_equal(ready_len(), 1);
    assert_int_equal(admin_int("SELECT attempts FROM scheduled_actions"), 1);
    assert_int_equal(run_ready_jobs(1, 0), 1);
    assert_int_equal(ready_len(), 0);
}

/* Two scheduler processes promote the same MANY due rows at once. */
static void test_two_schedulers(void **state)
{
    NEED_DB();
    pid_t pids[2];
    int total = 0, i, st;
    char sql[512];
    int fds[2][2];

    (void)state;
    snprintf(sql, sizeof(sql),
             "INSERT INTO scheduled_actions (kind, payload, idempotency_key, due_at) "
             "SELECT 'test:fire', jsonb_build_object('i', g), 'many:' || g, "
             "to_timestamp((%" PRId64 " - g) / 1000.0) FROM generate_series(1, %d) g",
             T0, MANY);
    assert_true(admin_exec(sql));
    for (i = 0; i < 2; i++) {
        assert_int_equal(pipe(fds[i]), 0);
        pids[i] = fork();
        assert_true(pids[i] >= 0);
        if (pids[i] == 0) {
            struct gh_ctx c;
            int sum = 0, n = 0, rc;

            close(fds[i][0]);
            memset(&c, 0, sizeof(c));
            c.pg = gh_pg_new(pg_url, -1, NULL);
            c.redis = gh_redis_new(redis_url, 2000, NULL);
            c.queue = queue;
            do {
                rc = gh_timers_promote(&c, 50, T0, &n);
                sum += n;
            } while (rc == GH_OK && n > 0);
            if (write(fds[i][1], &sum, sizeof(sum)) != (ssize_t)sizeof(sum))
                _exit(3);
            _exit(rc == GH_OK ? 0 : 2);
        }
        close(fds[i][1]);
    }
    for (i = 0; i < 2; i++) {
        int sum = 0;
        assert_int_equal(read(fds[i][0], &sum, sizeof(sum)), (ssize_t)sizeof(sum));
        close(fds[i][0]);
        assert_int_equal(waitpid(pids[i], &st, 0), pids[i]);
        assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
        print_message("scheduler %d promoted %d\n", i, sum);
        total += sum;
    }
    /* Each row promoted by exactly one of them, once; each job enqueued once. */
    assert_int_equal(total, MANY);
    assert_int_equal(
        admin_int("SELECT count(*) FROM scheduled_actions WHERE state = 'queued' AND attempts = 1"), MANY);
    assert_int_equal(ready_len(), MANY);
    /* Fire them: every job runs once (the stand-in worker counts runs). */
    assert_int_equal(run_ready_jobs(1, 0), MANY);
    assert_int_equal(admin_int("SELECT count(*) FROM scheduled_actions WHERE state = 'done'"), MANY);
}

static void test_pg_down(void **state)
{
    NEED_DB();
    struct gh_ctx down;
    char url[1100];
    int n = -1, i;

    (void)state;
    for (i = 0; i < 5; i++) {
        char key[32];
        snprintf(key, sizeof(key), "pgdown:%d", i);
        schedule_at(key, T0 - 100 - i);
    }
    /* PostgreSQL unreachable: an error, nothing enqueued. */
    memset(&down, 0, sizeof(down));
    snprintf(url, sizeof(url), "postgresql://guildhall:x@127.0.0.1:1/guildhall?connect_timeout=2");
    down.pg = gh_pg_new(url, 1000, NULL);
    down.redis = ctx.redis;
    down.queue = queue;
    assert_int_equal(gh_timers_promote(&down, 100, T0, &n), GH_EPG);
    assert_int_equal(n, 0);
    assert_int_equal(ready_len(), 0);
    gh_pg_free(down.pg);

    /* PostgreSQL goes away after two jobs were enqueued: an error, and no row
     * is marked (the transaction died with the connection). */
    kill_pg_after = 2;
    assert_int_equal(gh_timers_promote(&ctx, 100, T0, &n), GH_EPG);
    assert_int_equal(n, 0);
    kill_pg_after = 0;
    assert_int_equal(
        admin_int("SELECT count(*) FROM scheduled_actions WHERE state = 'pending' AND attempts = 0 "
                  "AND queued_at IS NULL"),
        5);
    long long first = ready_len();
    assert_true(first >= 2 && first <= 5);
    /* Back: every row is promoted; the jobs already in Redis are not enqueued twice. */
    assert_int_equal(gh_timers_promote(&ctx, 100, T0, &n), GH_OK);
    assert_int_equal(n, 5);
    assert_int_equal(ready_len(), 5);
    assert_int_equal(
        admin_int("SELECT count(*) FROM scheduled_actions WHERE state = 'queued' AND attempts = 1"), 5);
    assert_int_equal(run_ready_jobs(1, 0), 5);
}

static void test_redis_down(void **state)
{
    NEED_DB();
    struct gh_ctx down;
    int n = -1;

    (void)state;
    schedule_at("redisdown", T0 - 100);
    memset(&down, 0, sizeof(down));
    down.pg = ctx.pg;
    down.redis = gh_redis_new("redis://127.0.0.1:1/9", 200, NULL);
    down.queue = queue;
    assert_int_equal(gh_timers_promote(&down, 100, T0, &n), GH_EREDIS);
    assert_int_equal(n, 0);
    assert_int_equal(
        admin_int("SELECT count(*) FROM scheduled_actions WHERE state = 'pending' AND attempts = 0"), 1);
    gh_redis_free(down.redis);
    /* Redis back: promoted. */
    assert_int_equal(gh_timers_promote(&ctx, 100, T0, &n), GH_OK);
    assert_int_equal(n, 1);
}

/* Bad arguments are refused without touching the table. */
static void test_argument_guards(void **state)
{
    NEED_DB();
    json_object *arr = json_object_new_array();
    char long_kind[80], long_key[GH_TIMERS_KEY_MAX + 2];
    int64_t id = 99;
    int n = 7;
    struct gh_job plain;

    (void)state;
    memset(long_kind, 'k', sizeof(long_kind) - 1);
    long_kind[sizeof(long_kind) - 1] = '\0';
    memset(long_key, 'x', sizeof(long_key) - 1);
    long_key[sizeof(long_key) - 1] = '\0';
    assert_int_equal(gh_timers_schedule(NULL, 0, "test:fire", NULL, "k", T0, &id), GH_EINVAL);
    assert_int_equal(id, 0);
    assert_int_equal(gh_timers_schedule(&ctx, 0, "test:fire", NULL, "k", T0, NULL), GH_EINVAL);
    assert_int_equal(gh_timers_schedule(&ctx, 0, "Bad Kind", NULL, "k", T0, &id), GH_EINVAL);
    assert_int_equal(gh_timers_schedule(&ctx, 0, "", NULL, "k", T0, &id), GH_EINVAL);
    assert_int_equal(gh_timers_schedule(&ctx, 0, long_kind, NULL, "k", T0, &id), GH_EINVAL);
    assert_int_equal(gh_timers_schedule(&ctx, 0, "test:fire", NULL, "", T0, &id), GH_EINVAL);
    assert_int_equal(gh_timers_schedule(&ctx, 0, "test:fire", NULL, long_key, T0, &id), GH_EINVAL);
    assert_int_equal(gh_timers_schedule(&ctx, 0, "test:fire", NULL, "k", 0, &id), GH_EINVAL);
    assert_int_equal(gh_timers_schedule(&ctx, (uint64_t)INT64_MAX + 1, "test:fire", NULL, "k", T0, &id),
                     GH_EINVAL);
    assert_int_equal(gh_timers_schedule(&ctx, 0, "test:fire", arr, "k", T0, &id), GH_EINVAL);
    assert_int_equal(id, 0);
    assert_int_equal(admin_int("SELECT count(*) FROM scheduled_actions"), 0);
    json_object_put(arr);

    assert_int_equal(gh_timers_cancel(&ctx, 0), GH_EINVAL);
    assert_int_equal(gh_timers_cancel(NULL, 5), GH_EINVAL);
    assert_int_equal(gh_timers_promote(&ctx, 0, T0, &n), GH_EINVAL);
    assert_int_equal(n, 0);
    assert_int_equal(gh_timers_promote(&ctx, 10, 0, &n), GH_EINVAL);
    assert_int_equal(gh_timers_promote(NULL, 10, T0, &n), GH_EINVAL);
    assert_int_equal(gh_timers_next_due_in(NULL, T0, 1000), -1);
    memset(&plain, 0, sizeof(plain));
    snprintf(plain.id, sizeof(plain.id), "plain:1");
    assert_int_equal(gh_timers_job_timer_id(&plain), 0);
    assert_int_equal(gh_timers_job_started(&ctx, &plain), GH_EINVAL);
    assert_int_equal(gh_timers_job_started(NULL, &plain), GH_EINVAL);
}

/* Nothing pending: -1; a far timer: capped; no cap: the full wait. */
static void test_next_due_in_cap(void **state)
{
    NEED_DB();
    (void)state;
    assert_int_equal(gh_timers_next_due_in(&ctx, T0, 60000), -1);
    schedule_at("far", T0 + DAY_MS);
    assert_int_equal(gh_timers_next_due_in(&ctx, T0, 60000), 60000);
    assert_int_equal(gh_timers_next_due_in(&ctx, T0, -1), DAY_MS);
}

/* Hundreds due at once go out in one promotion (max above the limit is clamped). */
static void test_promote_many_at_once(void **state)
{
    NEED_DB();
    int n = -1;

    (void)state;
    for (int i = 0; i < 300; i++) {
        char key[32];
        snprintf(key, sizeof(key), "many:%d", i);
        schedule_at(key, T0 - 1000 - i);
    }
    assert_int_equal(gh_timers_promote(&ctx, 1000000, T0, &n), GH_OK);
    assert_int_equal(n, 300);
    assert_int_equal(ready_len(), 300);
    assert_int_equal(admin_int("SELECT count(*) FROM scheduled_actions WHERE state = 'queued'"), 300);
    assert_int_equal(run_ready_jobs(1, 0), 300);
    assert_int_equal(admin_int("SELECT count(*) FROM scheduled_actions WHERE state = 'done'"), 300);
}

/* A job whose timer row was deleted is skipped (started: ENOTFOUND); a second
 * report for a finished timer changes nothing and succeeds. */
static void test_job_of_missing_or_finished_timer(void **state)
{
    NEED_DB();
    struct gh_job job;
    int64_t gone, twice;
    char st[32];
    int n = -1;

    (void)state;
    gone = schedule_at("gone", T0 - 10);
    assert_int_equal(gh_timers_promote(&ctx, 10, T0, &n), GH_OK);
    assert_int_equal(n, 1);
    memset(&job, 0, sizeof(job));
    assert_int_equal(gh_queue_pop(ctx.redis, queue, 0, &job), GH_OK);
    assert_int_equal(gh_timers_job_timer_id(&job), gone);
    assert_true(admin_exec("DELETE FROM scheduled_actions"));
    assert_int_equal(gh_timers_job_started(&ctx, &job), GH_ENOTFOUND);
    assert_int_equal(gh_timers_job_finished(&ctx, &job, 1, 0, NULL), GH_ENOTFOUND);
    (void)gh_queue_ack(ctx.redis, queue, &job);
    gh_job_cleanup(&job);

    twice = schedule_at("twice", T0 - 10);
    assert_int_equal(gh_timers_promote(&ctx, 10, T0, &n), GH_OK);
    memset(&job, 0, sizeof(job));
    assert_int_equal(gh_queue_pop(ctx.redis, queue, 0, &job), GH_OK);
    assert_int_equal(gh_timers_job_started(&ctx, &job), GH_OK);
    assert_int_equal(gh_timers_job_finished(&ctx, &job, 1, 0, NULL), GH_OK);
    assert_int_equal(gh_timers_job_finished(&ctx, &job, 0, 1, "late failure"), GH_OK);
    state_of(twice, st, sizeof(st));
    assert_string_equal(st, "done"); /* the late failure did not overwrite it */
    assert_int_equal(gh_timers_job_started(&ctx, &job), GH_ECONFLICT);
    (void)gh_queue_ack(ctx.redis, queue, &job);
    gh_job_cleanup(&job);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_schedule_and_idempotency_key, each),
        cmocka_unit_test_setup(test_cancel, each),
        cmocka_unit_test_setup(test_promote_exactly_the_due_ones, each),
        cmocka_unit_test_setup(test_worker_reports, each),
        cmocka_unit_test_setup(test_redis_flushed_timers_still_fire, each),
        cmocka_unit_test_setup(test_slow_job_not_enqueued_twice, each),
        cmocka_unit_test_setup(test_two_schedulers, each),
        cmocka_unit_test_setup(test_pg_down, each),
        cmocka_unit_test_setup(test_redis_down, each),
        cmocka_unit_test_setup(test_argument_guards, each),
        cmocka_unit_test_setup(test_next_due_in_cap, each),
        cmocka_unit_test_setup(test_promote_many_at_once, each),
        cmocka_unit_test_setup(test_job_of_missing_or_finished_timer, each),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
