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

static void ctx_close(struct gh_ctx *ctx, void *arg)
{
    (void)arg;
    gh_redis_free(ctx->redis);
    ctx->redis = NULL;
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
    };

    snprintf(queue, sizeof(queue), "test-worker-%d", (int)getpid());
    snprintf(count_key, sizeof(count_key), "bot:{global}:test:worker-count-%d", (int)getpid());
    gh_log_sink_init(&sink, "test", GH_LOG_CRIT, NULL, 0, 0);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
