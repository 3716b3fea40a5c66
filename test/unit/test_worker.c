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

#include "core/arena.h"
#include "core/config.h"
#include "core/ctx.h"
#include "core/err.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "features/registry.h"
#include "store/queue.h"
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

static const struct gh_job_kind test_kinds[] = {
    {.kind = "test:ok", .run = run_ok},
    {.kind = "test:flaky", .run = run_flaky, .max_attempts = 2},
    {.kind = "test:bad", .run = run_bad},
    {.kind = "test:slow", .run = run_slow, .timeout_s = 1, .max_attempts = 2},
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
    return ctx->redis ? GH_OK : GH_ECONFIG;
}

/* Forked worker processes end with _exit(status) right after closing their
 * services, which skips the writing of coverage counters. Here a forked
 * process leaves with exit() and the status the worker would have used
 * (0 after a normal run, 2 when its services could not be set up), so a
 * --coverage build records what the children ran. stdout is unbuffered
 * (main), so no inherited output is written twice. */
static pid_t test_pid;

static void ctx_close(struct gh_ctx *ctx, void *arg)
{
    int opened = ctx->redis != NULL;

    (void)arg;
    gh_redis_free(ctx->redis);
    ctx->redis = NULL;
    if (getpid() != test_pid) {
#if defined(__SANITIZE_ADDRESS__)
        _exit(opened ? 0 : 2); /* no counters here, and LeakSanitizer stays out of forked children */
#else
        exit(opened ? 0 : 2);
#endif
    }
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
    ok_calls = flaky_calls = 0;
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
    assert_int_equal(len(ctx, "ready"), 1);
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
    assert_int_equal(len(ctx, "ready"), 1);
    assert_int_equal(len(ctx, "processing"), 0);
    /* The alarm is off again: this process keeps running normally. */
    assert_int_equal(alarm(0), 0);
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

/* ---- more edges -------------------------------------------------------------- */

static void test_names_and_arguments(void **state)
{
    struct gh_job job;
    struct gh_job_result res;
    struct gh_ctx c;

    (void)state;
    assert_string_equal(gh_job_outcome_name(GH_JOB_DONE), "done");
    assert_string_equal(gh_job_outcome_name(GH_JOB_RETRY), "retry");
    assert_string_equal(gh_job_outcome_name((enum gh_job_outcome)99), "unknown");
    memset(&job, 0, sizeof(job));
    memset(&c, 0, sizeof(c));
    assert_int_equal(gh_worker_run_job(NULL, queue, &job, lookup, &res), GH_EINVAL);
    assert_int_equal(gh_worker_run_job(&c, queue, NULL, lookup, &res), GH_EINVAL);
    assert_int_equal(gh_worker_run_job(&c, queue, &job, lookup, NULL), GH_EINVAL);
    assert_int_equal(gh_worker_step(NULL, queue, 0, lookup, &res), GH_EINVAL);
    assert_int_equal(gh_worker_step(&c, queue, 0, lookup, NULL), GH_EINVAL);
}

/* The job ran, but recording the outcome failed: the result says so, and
 * the per-request arena is reset either way. */
static void test_outcome_not_recorded_and_arena_reset(void **state)
{
    struct gh_ctx *ctx = *state;
    struct gh_arena arena;
    struct gh_job job;
    struct gh_job_result res;

    NEED_REDIS(ctx);
    gh_arena_init(&arena, 4096, 1 << 20);
    ctx->arena = &arena;
    assert_non_null(gh_arena_strdup(&arena, "left over from an earlier request"));
    assert_true(arena.used > 0);
    memset(&job, 0, sizeof(job));
    snprintf(job.id, sizeof(job.id), "t:ok:never-popped");
    snprintf(job.kind, sizeof(job.kind), "test:ok");
    job.attempt = 1;
    job.raw = strdup("{\"id\":\"t:ok:never-popped\",\"kind\":\"test:ok\"}");
    /* NULL queue: the default queue, where this job is not in processing. */
    assert_int_equal(gh_worker_run_job(ctx, NULL, &job, lookup, &res), GH_OK);
    assert_int_equal(res.outcome, GH_JOB_DONE);
    assert_int_equal(res.queue_rc, GH_ENOTFOUND);
    assert_int_equal(ok_calls, 1);
    assert_int_equal(arena.used, 0);
    ctx->arena = NULL;
    gh_arena_cleanup(&arena);
    gh_job_cleanup(&job);
}

static void test_drain_skips_malformed_and_stops_on_timeout(void **state)
{
    struct gh_ctx *ctx = *state;
    char ready[256];
    int ran = -1;

    NEED_REDIS(ctx);
    gh_key_queue(ready, sizeof(ready), gh_queue_partition(queue), queue, "ready");
    enqueue(ctx, "t:ok:m1", "test:ok", 0, NULL, 0);
    freeReplyObject(gh_redis_cmd(ctx->redis, "LPUSH %s %s", ready, "{broken")); /* popped second */
    assert_int_equal(gh_worker_drain(ctx, queue, lookup, &ran), GH_OK);
    assert_int_equal(ran, 1);
    assert_int_equal(ok_calls, 1);
    assert_int_equal(len(ctx, "dead"), 1);
    /* An interrupted job ends the drain: the process must start clean. */
    enqueue(ctx, "t:slow:m2", "test:slow", 0, NULL, 0);
    enqueue(ctx, "t:ok:m3", "test:ok", 0, NULL, 0);
    assert_int_equal(gh_worker_drain(ctx, queue, lookup, &ran), GH_ETIMEOUT);
    assert_int_equal(ran, 1);
    assert_int_equal(ok_calls, 1); /* the job behind it waits for a fresh process */
    assert_int_equal(len(ctx, "ready"), 2);
}

static int open_fails(struct gh_ctx *ctx, void *arg)
{
    (void)arg;
    memset(ctx, 0, sizeof(*ctx));
    gh_logger_init(&ctx->log, &sink, "test-worker");
    return GH_ECONFIG;
}

static int open_dead_redis(struct gh_ctx *ctx, void *arg)
{
    (void)arg;
    memset(ctx, 0, sizeof(*ctx));
    gh_logger_init(&ctx->log, &sink, "test-worker");
    ctx->redis = gh_redis_new("redis://127.0.0.1:1/0", 200, &ctx->log);
    return GH_OK;
}

static void test_once_failures(void **state)
{
    struct gh_worker_opts o = opts(1, 1);

    (void)state;
    o.ctx_open = open_fails;
    o.ctx_close = NULL;
    assert_int_equal(gh_worker_run(&o), 1);
    o.ctx_open = open_dead_redis;
    o.ctx_close = ctx_close;
    assert_int_equal(gh_worker_run(&o), 1);
}

/* Children that cannot set up are respawned, at most once a second; the
 * parent keeps supervising. Each child's attempt is a line in a file. */
static pid_t parent_pid;
static char attempts_path[128];

static int open_fails_in_child(struct gh_ctx *ctx, void *arg)
{
    FILE *f;

    if (getpid() == parent_pid)
        return ctx_open(ctx, arg);
    memset(ctx, 0, sizeof(*ctx));
    f = fopen(attempts_path, "a");
    if (f) {
        fputs("x\n", f);
        fclose(f);
    }
    return GH_ECONFIG;
}

static void test_failing_children_respawned(void **state)
{
    struct gh_ctx *ctx = *state;
    struct gh_worker_opts o = opts(0, 3);
    char line[16];
    int n = 0;
    FILE *f;

    NEED_REDIS(ctx);
    parent_pid = getpid();
    snprintf(attempts_path, sizeof(attempts_path), "/tmp/gh-test-worker-%d.attempts", (int)getpid());
    unlink(attempts_path);
    o.concurrency = 1;
    o.ctx_open = open_fails_in_child;
    assert_int_equal(gh_worker_run(&o), 0);
    f = fopen(attempts_path, "r");
    assert_non_null(f);
    while (fgets(line, sizeof(line), f))
        n++;
    fclose(f);
    unlink(attempts_path);
    /* First spawn at 0 s, respawns until 1 s before the end, once a second. */
    assert_true(n >= 2);
    assert_true(n <= 3);
}

static int run_hang(struct gh_ctx *ctx, const struct gh_job *job)
{
    struct timespec ts = {20, 0};
    (void)ctx;
    (void)job;
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
    return GH_OK;
}

static const struct gh_job_kind hang_kind = {.kind = "test:hang", .run = run_hang, .timeout_s = 60};

static const struct gh_job_kind *lookup_hang(const char *kind, const struct gh_feature **feature)
{
    if (strcmp(kind, "test:hang") == 0) {
        if (feature)
            *feature = NULL;
        return &hang_kind;
    }
    return lookup(kind, feature);
}

/* A job that outlives the run and the grace period is killed; the lease
 * keeps it in processing for a later run. */
static void test_grace_period_kill(void **state)
{
    struct gh_ctx *ctx = *state;
    struct gh_worker_opts o = opts(0, 1);
    int64_t t0;

    NEED_REDIS(ctx);
    enqueue(ctx, "t:hang:g1", "test:hang", 0, NULL, 0);
    o.concurrency = 1;
    o.grace_s = 1;
    o.lookup = lookup_hang;
    t0 = gh_mono_ms();
    assert_int_equal(gh_worker_run(&o), 0);
    assert_true(gh_mono_ms() - t0 >= 1900);
    assert_true(gh_mono_ms() - t0 < 8000);
    assert_int_equal(len(ctx, "processing"), 1);
    assert_int_equal(len(ctx, "ready"), 0);
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
        cmocka_unit_test_setup_teardown(test_drain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_redis_down, setup, teardown),
        cmocka_unit_test_setup_teardown(test_run_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_run_forked_children, setup, teardown),
        cmocka_unit_test_setup_teardown(test_run_pickup_and_sigterm, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_options, setup, teardown),
        cmocka_unit_test_setup_teardown(test_names_and_arguments, setup, teardown),
        cmocka_unit_test_setup_teardown(test_outcome_not_recorded_and_arena_reset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_drain_skips_malformed_and_stops_on_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_once_failures, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failing_children_respawned, setup, teardown),
        cmocka_unit_test_setup_teardown(test_grace_period_kill, setup, teardown),
    };

    test_pid = getpid();
    setvbuf(stdout, NULL, _IONBF, 0);
    snprintf(queue, sizeof(queue), "test-worker-%d", (int)getpid());
    snprintf(count_key, sizeof(count_key), "bot:{global}:test:worker-count-%d", (int)getpid());
    gh_log_sink_init(&sink, "test", GH_LOG_CRIT, NULL, 0, 0);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
