/* test_worker.c - job dispatch (lib/store/worker.c) against a real Redis:
 * ack, retry, dead letter, unknown kind, expired deadline, timeout, drain,
 * and whole runs (--once, forked children, SIGTERM).
 *
 * Needs REDIS_URL (skips without it). Jobs go to a queue of this run
 * ("test-worker-<pid>") through test kinds supplied by a lookup function,
 * so the real registry is not involved; every key is removed afterwards. */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "core/config.h"
#include "core/ctx.h"
#include "core/err.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "web/metrics.h"
#include "features/registry.h"
#include "store/pg.h"
#include "store/queue.h"
#include "store/timers.h"
#include "store/redis.h"
#include "store/worker.h"

#define skip_msg(m)                                                                                          \
    do {                                                                                                     \
        fprintf(stderr, "skipped: %s\n", (m));                                                               \
        skip();                                                                                              \
    } while (0)

static char queue[64];
static char count_key[96];
static struct gh_config cfg;
static struct gh_log_sink sink;

/* ---- test kinds ---------------------------------------------------------- */

static int ok_calls;
static char ok_corr[40];
static uint64_t ok_guild;

/* Counts in-process and in Redis (children of a forked run count there). */
static int run_ok(struct gh_ctx *ctx, const struct gh_job *job)
{
    (void)job;
    ok_calls++;
    snprintf(ok_corr, sizeof(ok_corr), "%s", ctx->log.corr);
    ok_guild = ctx->log.guild_id;
    freeReplyObject(gh_redis_cmd(ctx->redis, "INCR %s", count_key));
    freeReplyObject(gh_redis_cmd(ctx->redis, "EXPIRE %s 300", count_key));
    return GH_OK;
}

static int flaky_calls;
static int run_flaky(struct gh_ctx *ctx, const struct gh_job *job)
{
    (void)ctx;
    (void)job;
    flaky_calls++;
    return GH_EIO;
}

static int run_bad(struct gh_ctx *ctx, const struct gh_job *job)
{
    (void)ctx;
    (void)job;
    return GH_EINVAL;
}

static int run_slow(struct gh_ctx *ctx, const struct gh_job *job)
{
    struct timespec ts = {3, 0};
    (void)ctx;
    (void)job;
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
    return GH_OK;
}

static char effects[64]; /* test table of this run */
static char runs_key[96];

/* The effect: one row per job id (ON CONFLICT DO NOTHING), plus a run counter.
 * On the first run of "kill-me" ids it publishes its pid and waits to be killed. */
static int run_effect(struct gh_ctx *ctx, const struct gh_job *job)
{
    char sql[200];
    const char *params[1] = {job->id};
    redisReply *rep;
    long long runs;

    if (!ctx->pg)
        return GH_EPG;
    snprintf(sql, sizeof(sql), "INSERT INTO %s (id) VALUES ($1) ON CONFLICT (id) DO NOTHING", effects);
    if (gh_pg_command(ctx->pg, sql, 1, params) != GH_OK)
        return GH_EPG;
    rep = gh_redis_cmd(ctx->redis, "HINCRBY %s %s 1", runs_key, job->id);
    runs = rep && rep->type == REDIS_REPLY_INTEGER ? rep->integer : -1;
    freeReplyObject(rep);
    if (runs == 1 && strncmp(job->id, "kill-me", 7) == 0) {
        freeReplyObject(gh_redis_cmd(ctx->redis, "HSET %s pid %d", runs_key, (int)getpid()));
        for (;;)
            pause(); /* until SIGKILL */
    }
    return GH_OK;
}

/* The 10,000-job effect: a plain INSERT, so a second run would show as a duplicate row. */
static int run_log(struct gh_ctx *ctx, const struct gh_job *job)
{
    char sql[200];
    const char *params[1] = {job->id};

    snprintf(sql, sizeof(sql), "INSERT INTO %s_log (id) VALUES ($1)", effects);
    return ctx->pg && gh_pg_command(ctx->pg, sql, 1, params) == GH_OK ? GH_OK : GH_EPG;
}

static int timer_calls, timer_ok, timer_final;
static char timer_error[64];
int __wrap_gh_timers_job_finished(struct gh_ctx *ctx, const struct gh_job *job, int ok, int final,
                                  const char *error);
int __wrap_gh_timers_job_started(struct gh_ctx *ctx, const struct gh_job *job);
int __wrap_gh_timers_job_finished(struct gh_ctx *ctx, const struct gh_job *job, int ok, int final,
                                  const char *error)
{
    (void)ctx;
    (void)job;
    timer_calls++;
    timer_ok = ok;
    timer_final = final;
    snprintf(timer_error, sizeof(timer_error), "%s", error ? error : "");
    return GH_OK;
}
int __wrap_gh_timers_job_started(struct gh_ctx *ctx, const struct gh_job *job)
{
    (void)ctx;
    return strstr(job->id, "cancelled") ? GH_ECONFLICT : GH_OK;
}

static const struct gh_job_kind test_kinds[] = {
    {.kind = "test:ok", .run = run_ok},
    {.kind = "test:flaky", .run = run_flaky, .max_attempts = 2, .backoff_base_ms = 1},
    {.kind = "test:flaky3", .run = run_flaky, .backoff_base_ms = 200},
    {.kind = "test:bad", .run = run_bad},
    {.kind = "test:slow", .run = run_slow, .timeout_s = 1, .max_attempts = 2},
    {.kind = "test:dl", .run = run_ok, .deadline_s = 1},
    {.kind = "test:effect", .run = run_effect, .backoff_base_ms = 50, .max_attempts = 5},
    {.kind = "test:log", .run = run_log},
};

static const struct gh_job_kind *lookup(const char *kind, const struct gh_feature **feature)
{
    if (feature)
        *feature = NULL;
    for (size_t i = 0; i < sizeof(test_kinds) / sizeof(test_kinds[0]); i++)
        if (strcmp(test_kinds[i].kind, kind) == 0)
            return &test_kinds[i];
    return NULL;
}

/* ---- fixture --------------------------------------------------------------- */

static int ctx_open(struct gh_ctx *ctx, void *arg)
{
    (void)arg;
    memset(ctx, 0, sizeof(*ctx));
    gh_logger_init(&ctx->log, &sink, "test-worker");
    ctx->cfg = &cfg;
    ctx->queue = queue;
    ctx->redis = gh_redis_new(cfg.redis_url, 1000, &ctx->log);
    if (getenv("DATABASE_URL"))
        ctx->pg = gh_pg_new(getenv("DATABASE_URL"), 10000, &ctx->log);
    return ctx->redis ? GH_OK : GH_ECONFIG;
}

static void ctx_close(struct gh_ctx *ctx, void *arg)
{
    (void)arg;
    gh_redis_free(ctx->redis);
    gh_pg_free(ctx->pg);
    ctx->redis = NULL;
    ctx->pg = NULL;
}

static void clean(struct gh_ctx *ctx)
{
    redisReply *keys;
    char pattern[256];

    snprintf(pattern, sizeof(pattern), "bot:{q%d}:jobs:%s:*", gh_queue_partition(queue), queue);
    keys = gh_redis_cmd(ctx->redis, "KEYS %s", pattern);
    for (size_t i = 0; keys && keys->type == REDIS_REPLY_ARRAY && i < keys->elements; i++)
        freeReplyObject(gh_redis_cmd(ctx->redis, "DEL %s", keys->element[i]->str));
    freeReplyObject(keys);
    freeReplyObject(gh_redis_cmd(ctx->redis, "DEL %s", count_key));
    freeReplyObject(gh_redis_cmd(ctx->redis, "DEL %s", runs_key));
}

static int setup(void **state)
{
    struct gh_ctx *ctx = calloc(1, sizeof(*ctx));
    const char *url = getenv("REDIS_URL");

    if (!ctx)
        return -1;
    *state = ctx;
    if (!url)
        return 0;
    snprintf(cfg.redis_url, sizeof(cfg.redis_url), "%s", url);
    cfg.redis_timeout_ms = 1000;
    if (ctx_open(ctx, NULL) != GH_OK)
        return -1;
    clean(ctx);
    ok_calls = flaky_calls = timer_calls = 0;
    ok_corr[0] = '\0';
    ok_guild = 0;
    return 0;
}

static int teardown(void **state)
{
    struct gh_ctx *ctx = *state;

    if (ctx->redis) {
        clean(ctx);
        ctx_close(ctx, NULL);
    }
    free(ctx);
    return 0;
}

#define NEED_REDIS(ctx)                                                                                      \
    do {                                                                                                     \
        if (!(ctx)->redis)                                                                                   \
            skip_msg("REDIS_URL not set");                                                                   \
    } while (0)

static void enqueue(struct gh_ctx *ctx, const char *id, const char *kind, uint64_t guild, const char *payload,
                    int64_t deadline)
{
    json_object *p = json_tokener_parse(payload ? payload : "{}");

    assert_int_equal(gh_queue_enqueue(ctx->redis, queue, id, kind, guild, p, deadline), GH_OK);
    json_object_put(p);
}

static long long len(struct gh_ctx *ctx, const char *which)
{
    return gh_queue_len(ctx->redis, queue, which);
}

static long long redis_count(struct gh_ctx *ctx)
{
    redisReply *r = gh_redis_cmd(ctx->redis, "GET %s", count_key);
    long long n = r && r->type == REDIS_REPLY_STRING ? atoll(r->str) : 0;

    freeReplyObject(r);
    return n;
}

/* ---- one job --------------------------------------------------------------- */

static void test_done_is_acked(void **state)
{
    struct gh_ctx *ctx = *state;
    struct gh_job_result res;

    NEED_REDIS(ctx);
    enqueue(ctx, "t:ok:1", "test:ok", 42, "{\"corr\":\"abc123\"}", gh_now_ms() + 60000);
    assert_int_equal(gh_worker_step(ctx, queue, 1, lookup, &res), GH_OK);
    assert_int_equal(res.outcome, GH_JOB_DONE);
    assert_int_equal(res.rc, GH_OK);
    assert_int_equal(res.queue_rc, GH_OK);
    assert_false(res.tainted);
    assert_int_equal(ok_calls, 1);
    assert_string_equal(ok_corr, "abc123"); /* the run logs with the job's correlation id */
    assert_int_equal(ok_guild, 42);
    assert_int_equal(len(ctx, "ready"), 0);
    assert_int_equal(len(ctx, "processing"), 0);
    assert_int_equal(len(ctx, "dead"), 0);
    /* Nothing left: a non-blocking step finds nothing. */
    assert_int_equal(gh_worker_step(ctx, queue, 0, lookup, &res), GH_ENOTFOUND);
}

static void test_failure_retries_then_dead_letters(void **state)
{
    struct gh_ctx *ctx = *state;
    struct gh_job_result res;
    redisReply *dead;
    char key[256];

    NEED_REDIS(ctx);
    enqueue(ctx, "t:flaky:1", "test:flaky", 0, NULL, 0);
    assert_int_equal(gh_worker_step(ctx, queue, 1, lookup, &res), GH_OK);
    assert_int_equal(res.outcome, GH_JOB_RETRY);
    assert_int_equal(res.rc, GH_EIO);
    assert_int_equal(len(ctx, "delayed"), 1); /* waits out its backoff */
    assert_int_equal(len(ctx, "processing"), 0);

    assert_int_equal(gh_worker_step(ctx, queue, 1, lookup, &res), GH_OK); /* attempt 2 of 2 */
    assert_int_equal(res.outcome, GH_JOB_DEAD);
    assert_int_equal(flaky_calls, 2);
    assert_int_equal(len(ctx, "ready"), 0);
    assert_int_equal(len(ctx, "processing"), 0);
    assert_int_equal(len(ctx, "dead"), 1);

    /* The dead entry says why. */
    assert_int_equal(gh_key_queue(key, sizeof(key), gh_queue_partition(queue), queue, "dead"), GH_OK);
    dead = gh_redis_cmd(ctx->redis, "LINDEX %s 0", key);
    assert_non_null(dead);
    assert_int_equal(dead->type, REDIS_REPLY_STRING);
    assert_non_null(strstr(dead->str, "\"id\":\"t:flaky:1\""));
    if (!strstr(dead->str, "\"error\":\"input")) /* gh_strerror(GH_EIO), "/" escaped */
        fail_msg("dead entry without the error: %s", dead->str);
    freeReplyObject(dead);
}

static void test_bad_payload_dead_at_once(void **state)
{
    struct gh_ctx *ctx = *state;
    struct gh_job_result res;

    NEED_REDIS(ctx);
    enqueue(ctx, "t:bad:1", "test:bad", 0, NULL, 0);
    assert_int_equal(gh_worker_step(ctx, queue, 1, lookup, &res), GH_OK);
    assert_int_equal(res.outcome, GH_JOB_DEAD); /* GH_EINVAL: retrying cannot help */
    assert_int_equal(len(ctx, "ready"), 0);
    assert_int_equal(len(ctx, "dead"), 1);
}

static void test_unknown_kind_dead_letters(void **state)
{
    struct gh_ctx *ctx = *state;
    struct gh_job_result res;

    NEED_REDIS(ctx);
    enqueue(ctx, "t:nope:1", "test:nope", 0, NULL, 0);
    assert_int_equal(gh_worker_step(ctx, queue, 1, lookup, &res), GH_OK);
    assert_int_equal(res.outcome, GH_JOB_DEAD);
    assert_int_equal(res.rc, GH_ENOTFOUND);
    assert_int_equal(len(ctx, "ready"), 0);
    assert_int_equal(len(ctx, "processing"), 0);
    assert_int_equal(len(ctx, "dead"), 1);
    /* No lookup at all behaves the same. */
    enqueue(ctx, "t:ok:nolookup", "test:ok", 0, NULL, 0);
    assert_int_equal(gh_worker_step(ctx, queue, 1, NULL, &res), GH_OK);
    assert_int_equal(res.outcome, GH_JOB_DEAD);
    assert_int_equal(ok_calls, 0);
}

static void test_expired_deadline_dropped(void **state)
{
    struct gh_ctx *ctx = *state;
    struct gh_job_result res;

    NEED_REDIS(ctx);
    enqueue(ctx, "t:ok:late", "test:ok", 0, NULL, gh_now_ms() - 1500);
    assert_int_equal(gh_worker_step(ctx, queue, 1, lookup, &res), GH_OK);
    assert_int_equal(res.outcome, GH_JOB_EXPIRED);
    assert_int_equal(res.rc, GH_EEXPIRED);
    assert_int_equal(ok_calls, 0); /* never ran */
    assert_int_equal(len(ctx, "ready"), 0);
    assert_int_equal(len(ctx, "processing"), 0);
    assert_int_equal(len(ctx, "dead"), 0);
}

static void test_timeout_counts_as_failure(void **state)
{
    struct gh_ctx *ctx = *state;
    struct gh_job_result res;
    int64_t t0;

    NEED_REDIS(ctx);
    enqueue(ctx, "t:slow:1", "test:slow", 0, NULL, 0);
    t0 = gh_mono_ms();
    assert_int_equal(gh_worker_step(ctx, queue, 1, lookup, &res), GH_OK);
    assert_true(gh_mono_ms() - t0 < 2500); /* interrupted after 1 s, not 3 */
    assert_int_equal(res.outcome, GH_JOB_RETRY);
    assert_int_equal(res.rc, GH_ETIMEOUT);
    assert_true(res.tainted);
    assert_true(res.duration_ms >= 900);
    assert_int_equal(res.queue_rc, GH_OK);
    assert_int_equal(len(ctx, "delayed"), 1);
    assert_int_equal(len(ctx, "processing"), 0);
    /* The alarm is off again: this process keeps running normally. */
    assert_int_equal(alarm(0), 0);
}

/* A job the reaper handed back after its last attempt (attempt past the
 * kind's max) is dead-lettered without running, and the run is logged. */
static void test_attempts_exhausted_by_reaper(void **state)
{
    struct gh_ctx *ctx = *state;
    struct gh_log_sink dbg;
    struct gh_job job;
    struct gh_job_result res;
    char path[64], text[8192];
    FILE *f;
    size_t got;

    NEED_REDIS(ctx);
    snprintf(path, sizeof(path), "/tmp/gh-worker-log-%d.log", (int)getpid());
    unlink(path);
    assert_int_equal(gh_log_sink_init(&dbg, "test", GH_LOG_DEBUG, path, 0, 0), GH_OK);
    gh_logger_init(&ctx->log, &dbg, "test-worker");
    enqueue(ctx, "t:reaped:1", "test:flaky", 0, NULL, 0);
    memset(&job, 0, sizeof(job));
    assert_int_equal(gh_queue_pop(ctx->redis, queue, 0, &job), GH_OK);
    job.attempt = 3; /* test:flaky allows 2 */
    assert_int_equal(gh_worker_run_job(ctx, queue, &job, lookup, &res), GH_OK);
    gh_job_cleanup(&job);
    gh_logger_init(&ctx->log, &sink, "test-worker");
    gh_log_sink_cleanup(&dbg);

    assert_int_equal(res.outcome, GH_JOB_DEAD);
    assert_int_equal(res.rc, GH_ETIMEOUT);
    assert_int_equal(res.queue_rc, GH_OK);
    assert_int_equal(flaky_calls, 0); /* never ran again */
    assert_int_equal(len(ctx, "dead"), 1);
    assert_int_equal(len(ctx, "processing"), 0);
    assert_int_equal(len(ctx, "ready") + len(ctx, "delayed"), 0);
    f = fopen(path, "r");
    assert_non_null(f);
    got = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    unlink(path);
    text[got] = '\0';
    assert_non_null(strstr(text, "job test:flaky t:reaped:1: dead"));
    assert_non_null(strstr(text, "its worker died during the last attempt"));
    assert_non_null(strstr(text, "\"attempt\":3"));
}

static void test_drain(void **state)
{
    struct gh_ctx *ctx = *state;
    int ran = -1;

    NEED_REDIS(ctx);
    enqueue(ctx, "t:ok:d1", "test:ok", 0, NULL, 0);
    enqueue(ctx, "t:ok:d2", "test:ok", 0, NULL, 0);
    enqueue(ctx, "t:flaky:d3", "test:flaky", 0, NULL, 0);
    assert_int_equal(gh_worker_drain(ctx, queue, lookup, &ran), GH_OK);
    assert_int_equal(ran, 4); /* two ok, the flaky one twice */
    assert_int_equal(ok_calls, 2);
    assert_int_equal(len(ctx, "ready"), 0);
    assert_int_equal(len(ctx, "dead"), 1);
}

static void test_redis_down(void **state)
{
    struct gh_ctx *ctx = *state;
    struct gh_ctx dead;
    struct gh_job_result res;

    NEED_REDIS(ctx);
    memset(&dead, 0, sizeof(dead));
    gh_logger_init(&dead.log, &sink, "test-worker");
    dead.redis = gh_redis_new("redis://127.0.0.1:1/0", 200, &dead.log);
    assert_int_equal(gh_worker_step(&dead, queue, 0, lookup, &res), GH_EREDIS);
    assert_int_equal(gh_worker_drain(&dead, queue, lookup, NULL), GH_EREDIS);
    gh_redis_free(dead.redis);
}

/* ---- whole runs ------------------------------------------------------------- */

static struct gh_worker_opts opts(int once, int run_s)
{
    struct gh_worker_opts o;

    memset(&o, 0, sizeof(o));
    o.queue = queue;
    o.concurrency = 2;
    o.run_s = run_s;
    o.grace_s = 5;
    o.once = once;
    o.lookup = lookup;
    o.ctx_open = ctx_open;
    o.ctx_close = ctx_close;
    return o;
}

static void test_run_once(void **state)
{
    struct gh_ctx *ctx = *state;
    struct gh_worker_opts o = opts(1, 1);

    NEED_REDIS(ctx);
    enqueue(ctx, "t:ok:o1", "test:ok", 0, NULL, 0);
    enqueue(ctx, "t:ok:o2", "test:ok", 0, NULL, 0);
    assert_int_equal(gh_worker_run(&o), 0);
    assert_int_equal(ok_calls, 2);
    assert_int_equal(len(ctx, "ready"), 0);
    assert_int_equal(len(ctx, "processing"), 0);
}

static void test_run_forked_children(void **state)
{
    struct gh_ctx *ctx = *state;
    struct gh_worker_opts o = opts(0, 2);
    int64_t t0;

    NEED_REDIS(ctx);
    for (int i = 0; i < 5; i++) {
        char id[32];
        snprintf(id, sizeof(id), "t:ok:f%d", i);
        enqueue(ctx, id, "test:ok", 0, NULL, 0);
    }
    t0 = gh_mono_ms();
    assert_int_equal(gh_worker_run(&o), 0);
    assert_true(gh_mono_ms() - t0 >= 1900); /* a run lasts its run_s */
    assert_true(gh_mono_ms() - t0 < 6000);
    assert_int_equal(redis_count(ctx), 5); /* the children ran every job */
    assert_int_equal(ok_calls, 0);         /* ... in their own processes */
    assert_int_equal(len(ctx, "ready"), 0);
    assert_int_equal(len(ctx, "processing"), 0);
}

static void test_run_pickup_and_sigterm(void **state)
{
    struct gh_ctx *ctx = *state;
    struct gh_worker_opts o = opts(0, 30);
    int64_t t0;
    int status = 0;
    pid_t pid;

    NEED_REDIS(ctx);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(gh_worker_run(&o));
    /* Queued while the run waits: picked up quickly. */
    usleep(300 * 1000);
    t0 = gh_mono_ms();
    enqueue(ctx, "t:ok:live", "test:ok", 0, NULL, 0);
    while (redis_count(ctx) < 1 && gh_mono_ms() - t0 < 3000)
        usleep(20 * 1000);
    assert_int_equal(redis_count(ctx), 1);
    assert_true(gh_mono_ms() - t0 < 1500);

    /* SIGTERM: the run ends long before its 30 s. */
    t0 = gh_mono_ms();
    assert_int_equal(kill(pid, SIGTERM), 0);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_true(gh_mono_ms() - t0 < 4000);
}

/* ---- issue 4: the guarantees ---------------------------------------------- */

#define NEED_PG(ctx)                                                                                         \
    do {                                                                                                     \
        if (!(ctx)->redis || !(ctx)->pg)                                                                     \
            skip_msg("DATABASE_URL or REDIS_URL not set");                                                   \
    } while (0)

__attribute__((format(printf, 2, 3))) static void sql(struct gh_ctx *ctx, const char *fmt, ...)
{
    char q[400];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(q, sizeof(q), fmt, ap);
    va_end(ap);
    if (gh_pg_command(ctx->pg, q, 0, NULL) != GH_OK)
        fail_msg("%s: %s", q, gh_pg_errmsg(ctx->pg));
}

__attribute__((format(printf, 2, 3))) static long long count(struct gh_ctx *ctx, const char *fmt, ...)
{
    char q[400];
    PGresult *res;
    long long n = -1;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(q, sizeof(q), fmt, ap);
    va_end(ap);
    res = gh_pg_exec(ctx->pg, q, 0, NULL);
    if (res && PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
        n = atoll(PQgetvalue(res, 0, 0));
    PQclear(res);
    return n;
}

static void make_tables(struct gh_ctx *ctx)
{
    sql(ctx, "DROP TABLE IF EXISTS %s", effects);
    sql(ctx, "DROP TABLE IF EXISTS %s_log", effects);
    sql(ctx, "CREATE TABLE %s (id text PRIMARY KEY)", effects);
    sql(ctx, "CREATE TABLE %s_log (id text NOT NULL)", effects);
}

static void drop_tables(struct gh_ctx *ctx)
{
    sql(ctx, "DROP TABLE IF EXISTS %s", effects);
    sql(ctx, "DROP TABLE IF EXISTS %s_log", effects);
    sql(ctx, "DELETE FROM job_runs WHERE queue = '%s'", queue);
}

static long long hget(struct gh_ctx *ctx, const char *key, const char *field)
{
    redisReply *r = gh_redis_cmd(ctx->redis, "HGET %s %s", key, field);
    long long n = r && r->type == REDIS_REPLY_STRING ? atoll(r->str) : 0;

    freeReplyObject(r);
    return n;
}

/* Duplicate enqueue while queued, running and done (through the worker). */
static void test_duplicate_enqueue(void **state)
{
    struct gh_ctx *ctx = *state;
    struct gh_job_result res;
    json_object *p = json_object_new_object();

    NEED_REDIS(ctx);
    enqueue(ctx, "dup:1", "test:ok", 0, NULL, 0);
    assert_int_equal(gh_queue_enqueue(ctx->redis, queue, "dup:1", "test:ok", 0, p, 0), GH_EDUPLICATE);
    assert_int_equal(len(ctx, "ready"), 1);
    assert_int_equal(gh_worker_step(ctx, queue, 1, lookup, &res), GH_OK);
    assert_int_equal(res.outcome, GH_JOB_DONE);
    assert_int_equal(gh_queue_enqueue(ctx->redis, queue, "dup:1", "test:ok", 0, p, 0), GH_EDUPLICATE);
    assert_int_equal(gh_worker_step(ctx, queue, 0, lookup, &res), GH_ENOTFOUND);
    assert_int_equal(ok_calls, 1); /* ran once */
    json_object_put(p);
}

/* Retries wait out growing delays, then the dead list holds the last error;
 * each run is a job_runs entry and a gh_jobs_total count. */
static void test_backoff_then_dead(void **state)
{
    struct gh_ctx *ctx = *state;
    struct gh_job_result res;
    int64_t ran_at[3], gaps[2];
    long long before = hget(ctx, GH_METRICS_KEY, "gh_jobs_total{kind=\"test:flaky3\",status=\"retry\"}");
    json_object *arr = NULL, *v;

    NEED_REDIS(ctx);
    enqueue(ctx, "bo:1", "test:flaky3", 0, NULL, 0);
    for (int i = 0; i < 3; i++) {
        int rc;
        while ((rc = gh_worker_step(ctx, queue, 1, lookup, &res)) == GH_ENOTFOUND)
            ;
        assert_int_equal(rc, GH_OK);
        ran_at[i] = gh_now_ms();
        assert_int_equal(res.outcome, i < 2 ? GH_JOB_RETRY : GH_JOB_DEAD);
    }
    gaps[0] = ran_at[1] - ran_at[0]; /* backoff of attempt 1: 100..200 ms */
    gaps[1] = ran_at[2] - ran_at[1]; /* attempt 2: 200..400 ms */
    assert_true(gaps[0] >= 100);
    assert_true(gaps[1] >= 200);
    assert_int_equal(flaky_calls, 3);
    assert_int_equal(len(ctx, "dead"), 1);
    assert_int_equal(gh_queue_dead_list(ctx->redis, queue, 5, &arr), GH_OK);
    assert_true(json_object_object_get_ex(json_object_array_get_idx(arr, 0), "error", &v));
    assert_string_equal(json_object_get_string(v), gh_strerror(GH_EIO));
    json_object_put(arr);
    assert_int_equal(gh_queue_len(ctx->redis, queue, "processing"), 0);
    {
        char logk[200];
        redisReply *r;
        gh_queue_key(logk, sizeof(logk), queue, "log");
        r = gh_redis_cmd(ctx->redis, "LRANGE %s 0 -1", logk);
        assert_int_equal(r->elements, 3); /* retry, retry, dead */
        assert_non_null(strstr(r->element[0]->str, "\"status\":\"dead\""));
        assert_non_null(strstr(r->element[2]->str, "\"status\":\"retry\""));
        freeReplyObject(r);
    }
    gh_metrics_flush(ctx->redis);
    assert_int_equal(hget(ctx, GH_METRICS_KEY, "gh_jobs_total{kind=\"test:flaky3\",status=\"retry\"}"),
                     before + 2);
}

/* The kind's deadline_s counts from enqueue when the job has none. */
static void test_kind_deadline(void **state)
{
    struct gh_ctx *ctx = *state;
    struct gh_job_result res;
    char ready[200], job[300];

    NEED_REDIS(ctx);
    gh_queue_key(ready, sizeof(ready), queue, "ready");
    snprintf(job, sizeof(job),
             "{\"attempt\":1,\"id\":\"dl:old\",\"kind\":\"test:dl\",\"guild\":null,\"payload\":{},"
             "\"deadline_ms\":0,\"enqueued_ms\":%lld,\"due_ms\":0}",
             (long long)(gh_now_ms() - 5000));
    freeReplyObject(gh_redis_cmd(ctx->redis, "LPUSH %s %s", ready, job));
    assert_int_equal(gh_worker_step(ctx, queue, 1, lookup, &res), GH_OK);
    assert_int_equal(res.outcome, GH_JOB_EXPIRED);
    assert_int_equal(ok_calls, 0);
    enqueue(ctx, "dl:fresh", "test:dl", 0, NULL, 0);
    assert_int_equal(gh_worker_step(ctx, queue, 1, lookup, &res), GH_OK);
    assert_int_equal(res.outcome, GH_JOB_DONE);
    assert_int_equal(ok_calls, 1);
}

/* Timer jobs report back; a cancelled timer's job is not run. */
static void test_timer_hook(void **state)
{
    struct gh_ctx *ctx = *state;
    struct gh_job_result res;

    NEED_REDIS(ctx);
    enqueue(ctx, "timer:1", "test:ok", 0, "{\"timer_id\":7}", 0);
    assert_int_equal(gh_worker_step(ctx, queue, 1, lookup, &res), GH_OK);
    assert_int_equal(timer_calls, 1);
    assert_int_equal(timer_ok, 1);
    assert_int_equal(timer_final, 1);
    enqueue(ctx, "timer:2", "test:bad", 0, "{\"timer_id\":8}", 0);
    assert_int_equal(gh_worker_step(ctx, queue, 1, lookup, &res), GH_OK);
    assert_int_equal(timer_calls, 2);
    assert_int_equal(timer_ok, 0);
    assert_int_equal(timer_final, 1);
    assert_string_equal(timer_error, gh_strerror(GH_EINVAL));
    enqueue(ctx, "timer:cancelled", "test:ok", 0, "{\"timer_id\":9}", 0);
    assert_int_equal(gh_worker_step(ctx, queue, 1, lookup, &res), GH_OK);
    assert_int_equal(res.outcome, GH_JOB_EXPIRED);
    assert_int_equal(ok_calls, 1); /* only timer:1 ran */
    enqueue(ctx, "plain", "test:ok", 0, "{\"timer_id\":\"x\"}", 0);
    assert_int_equal(gh_worker_step(ctx, queue, 1, lookup, &res), GH_OK);
    assert_int_equal(timer_calls, 2); /* not a timer job */
}

/* PostgreSQL down: the job fails and retries; with PostgreSQL back it completes. */
static void test_pg_down_then_back(void **state)
{
    struct gh_ctx *ctx = *state;
    struct gh_job_result res;
    struct gh_pg *live;
    int rc;

    NEED_PG(ctx);
    make_tables(ctx);
    live = ctx->pg;
    ctx->pg = gh_pg_new("postgresql://guildhall@127.0.0.1:1/none?connect_timeout=1", 1000, &ctx->log);
    enqueue(ctx, "pg:1", "test:effect", 0, NULL, 0);
    assert_int_equal(gh_worker_step(ctx, queue, 1, lookup, &res), GH_OK);
    assert_int_equal(res.outcome, GH_JOB_RETRY);
    assert_int_equal(res.rc, GH_EPG);
    while ((rc = gh_worker_step(ctx, queue, 1, lookup, &res)) == GH_ENOTFOUND)
        ;
    assert_int_equal(rc, GH_OK);
    assert_int_equal(res.outcome, GH_JOB_RETRY); /* still down */
    gh_pg_free(ctx->pg);
    ctx->pg = live; /* back */
    while ((rc = gh_worker_step(ctx, queue, 1, lookup, &res)) == GH_ENOTFOUND)
        ;
    assert_int_equal(rc, GH_OK);
    assert_int_equal(res.outcome, GH_JOB_DONE);
    assert_int_equal(count(ctx, "SELECT count(*) FROM %s WHERE id = 'pg:1'", effects), 1);
    assert_int_equal(len(ctx, "delayed") + len(ctx, "ready") + len(ctx, "dead"), 0);
    drop_tables(ctx);
}

static struct gh_worker_opts opts(int once, int run_s);

/* A child killed with SIGKILL mid-job: its lease (2 s) runs out, another take
 * reaps the job, and it runs again; its effect happened once. While the
 * child lived, the parent kept extending the lease. */
static void test_sigkill_mid_job(void **state)
{
    struct gh_ctx *ctx = *state;
    struct gh_worker_opts o = opts(0, 30);
    char leases[200], seen[200];
    redisReply *rep;
    double first = 0, later = 0;
    int64_t t0;
    pid_t run, child;
    int status = 0;

    NEED_PG(ctx);
    make_tables(ctx);
    o.lease_ms = 2000;
    o.concurrency = 2;
    run = fork();
    assert_true(run >= 0);
    if (run == 0)
        _exit(gh_worker_run(&o));
    enqueue(ctx, "kill-me:1", "test:effect", 0, NULL, 0);
    gh_queue_key(leases, sizeof(leases), queue, "leases");
    t0 = gh_mono_ms();
    while ((child = (pid_t)hget(ctx, runs_key, "pid")) == 0 && gh_mono_ms() - t0 < 10000)
        usleep(20 * 1000);
    assert_true(child > 0);
    /* The heartbeat moves the lease on while the job runs. */
    rep = gh_redis_cmd(ctx->redis, "ZSCORE %s kill-me:1", leases);
    assert_int_equal(rep->type, REDIS_REPLY_STRING);
    first = atof(rep->str);
    freeReplyObject(rep);
    while (later <= first + 1000 && gh_mono_ms() - t0 < 10000) {
        usleep(50 * 1000);
        rep = gh_redis_cmd(ctx->redis, "ZSCORE %s kill-me:1", leases);
        later = rep && rep->type == REDIS_REPLY_STRING ? atof(rep->str) : 0;
        freeReplyObject(rep);
    }
    assert_true(later > first + 1000);                     /* extended past the first lease's end... */
    assert_int_equal(hget(ctx, runs_key, "kill-me:1"), 1); /* ...and not run twice meanwhile */
    assert_int_equal(kill(child, SIGKILL), 0);
    t0 = gh_mono_ms();
    while (hget(ctx, runs_key, "kill-me:1") < 2 && gh_mono_ms() - t0 < 15000)
        usleep(50 * 1000);
    assert_int_equal(hget(ctx, runs_key, "kill-me:1"), 2); /* ran again after the lease */
    gh_key_queue(seen, sizeof(seen), gh_queue_partition(queue), queue, "seen:kill-me:1");
    t0 = gh_mono_ms();
    for (;;) { /* acked: state done */
        rep = gh_redis_cmd(ctx->redis, "GET %s", seen);
        int done = rep && rep->type == REDIS_REPLY_STRING && strcmp(rep->str, "done") == 0;
        freeReplyObject(rep);
        if (done || gh_mono_ms() - t0 > 5000)
            break;
        usleep(20 * 1000);
    }
    assert_int_equal(kill(run, SIGTERM), 0);
    assert_int_equal(waitpid(run, &status, 0), run);
    assert_int_equal(count(ctx, "SELECT count(*) FROM %s", effects), 1); /* the effect once */
    assert_int_equal(len(ctx, "processing") + len(ctx, "ready") + len(ctx, "leases"), 0);
    /* job_runs: the second run (attempt 2, done), flushed by the parent. */
    assert_int_equal(count(ctx,
                           "SELECT count(*) FROM job_runs WHERE queue = '%s' AND job_id = 'kill-me:1' "
                           "AND attempt = 2 AND status = 'done'",
                           queue),
                     1);
    drop_tables(ctx);
}

/* 4 worker processes x 10,000 jobs: every effect exactly once, every run in job_runs. */
static void test_four_workers_10k(void **state)
{
    struct gh_ctx *ctx = *state;
    struct gh_worker_opts o = opts(0, 120);
    pid_t runs[4];
    int64_t t0;
    int status;

    NEED_PG(ctx);
    make_tables(ctx);
    o.concurrency = 1;
    o.lease_ms = 10000;
    for (int i = 0; i < 10000; i++) {
        char id[32];
        snprintf(id, sizeof(id), "many:%d", i);
        enqueue(ctx, id, "test:log", 0, NULL, 0);
    }
    for (int i = 0; i < 4; i++) {
        runs[i] = fork();
        assert_true(runs[i] >= 0);
        if (runs[i] == 0)
            _exit(gh_worker_run(&o));
    }
    t0 = gh_mono_ms();
    while ((len(ctx, "ready") > 0 || len(ctx, "processing") > 0) && gh_mono_ms() - t0 < 180000)
        usleep(100 * 1000);
    for (int i = 0; i < 4; i++)
        kill(runs[i], SIGTERM);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(waitpid(runs[i], &status, 0), runs[i]);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    assert_int_equal(count(ctx, "SELECT count(*) FROM %s_log", effects), 10000);
    assert_int_equal(count(ctx, "SELECT count(DISTINCT id) FROM %s_log", effects), 10000);
    assert_int_equal(len(ctx, "dead") + len(ctx, "delayed") + len(ctx, "leases"), 0);
    assert_int_equal(
        count(ctx, "SELECT count(*) FROM job_runs WHERE queue = '%s' AND status = 'done'", queue), 10000);
    assert_int_equal(
        count(ctx, "SELECT count(DISTINCT worker_pid) FROM job_runs WHERE queue = '%s'", queue) >= 2, 1);
    drop_tables(ctx);
}

static void test_bad_options(void **state)
{
    struct gh_worker_opts o = opts(0, 0);

    (void)state;
    assert_int_equal(gh_worker_run(NULL), 1);
    assert_int_equal(gh_worker_run(&o), 1); /* run_s 0 */
    o = opts(0, 1);
    o.ctx_open = NULL;
    assert_int_equal(gh_worker_run(&o), 1);
    assert_string_equal(gh_job_outcome_name(GH_JOB_EXPIRED), "expired");
    assert_string_equal(gh_job_outcome_name(GH_JOB_DEAD), "dead");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_done_is_acked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failure_retries_then_dead_letters, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_payload_dead_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_kind_dead_letters, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expired_deadline_dropped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timeout_counts_as_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_attempts_exhausted_by_reaper, setup, teardown),
        cmocka_unit_test_setup_teardown(test_drain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_redis_down, setup, teardown),
        cmocka_unit_test_setup_teardown(test_run_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_run_forked_children, setup, teardown),
        cmocka_unit_test_setup_teardown(test_run_pickup_and_sigterm, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_options, setup, teardown),
        cmocka_unit_test_setup_teardown(test_duplicate_enqueue, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backoff_then_dead, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kind_deadline, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timer_hook, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pg_down_then_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sigkill_mid_job, setup, teardown),
        cmocka_unit_test_setup_teardown(test_four_workers_10k, setup, teardown),
    };

    snprintf(queue, sizeof(queue), "test-worker-%d", (int)getpid());
    snprintf(count_key, sizeof(count_key), "bot:{global}:test:worker-count-%d", (int)getpid());
    snprintf(runs_key, sizeof(runs_key), "bot:{global}:test:worker-runs-%d", (int)getpid());
    snprintf(effects, sizeof(effects), "test_job_effects_%d", (int)getpid());
    gh_log_sink_init(&sink, "test", GH_LOG_CRIT, NULL, 0, 0);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
