/* test_jobspool.c - the process-wide job spool: plain enqueue without a
 * spool, jobs kept while Redis refuses them (a dead Redis URL), order kept
 * when they are queued again, the bound and its loss count, duplicates taken
 * as done, delayed jobs keep their due time. Needs REDIS_URL (database 9 of
 * that server, a queue name unique to the run). */
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
#include "core/timeutil.h"
#include "store/jobspool.h"
#include "store/queue.h"
#include "store/redis.h"

static struct gh_redis *live, *dead;
static char queue[32];

static void url_with_db(const char *url, int db, char *out, size_t size)
{
    const char *hostpart = strstr(url, "://");
    const char *slash = strchr(hostpart ? hostpart + 3 : url, '/');
    int n = slash ? (int)(slash - url) : (int)strlen(url);

    snprintf(out, size, "%.*s/%d", n, url, db);
}

static void clear_queue(void)
{
    static const char *const kinds[] = {"ready", "processing", "dead", "delayed", "leases", "log"};
    char key[128], pat[160];
    redisReply *rep;

    for (size_t i = 0; i < 6; i++) {
        gh_key_queue(key, sizeof(key), gh_queue_partition(queue), queue, kinds[i]);
        freeReplyObject(gh_redis_cmd(live, "DEL %s", key));
    }
    gh_key_queue(key, sizeof(key), gh_queue_partition(queue), queue, "seen:*");
    snprintf(pat, sizeof(pat), "%s", key);
    rep = gh_redis_cmd(live, "KEYS %s", pat);
    for (size_t i = 0; rep && rep->type == REDIS_REPLY_ARRAY && i < rep->elements; i++)
        freeReplyObject(gh_redis_cmd(live, "DEL %s", rep->element[i]->str));
    freeReplyObject(rep);
}

static int setup(void **state)
{
    const char *url = getenv("REDIS_URL");
    char u[300];

    (void)state;
    if (!url || !*url) {
        fprintf(stderr, "REDIS_URL is not set: the jobspool tests need the test stack's Redis\n");
        return -1;
    }
    snprintf(queue, sizeof(queue), "tjs%d", (int)getpid());
    url_with_db(url, 9, u, sizeof(u));
    live = gh_redis_new(u, 500, NULL);
    dead = gh_redis_new("redis://127.0.0.1:1/9", 200, NULL); /* nothing listens on port 1 */
    return live && dead ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    if (live)
        clear_queue();
    gh_redis_free(live);
    gh_redis_free(dead);
    return 0;
}

static int each(void **state)
{
    (void)state;
    clear_queue();
    return 0;
}

static void ctx_init(struct gh_ctx *ctx, struct gh_redis *r, struct gh_jobspool *s)
{
    memset(ctx, 0, sizeof(*ctx));
    ctx->redis = r;
    ctx->queue = queue;
    ctx->spool = s;
    gh_logger_init(&ctx->log, NULL, "test");
}

static int enqueue_n(struct gh_ctx *ctx, const char *id, int n)
{
    json_object *p = json_object_new_object();
    int rc;

    json_object_object_add(p, "n", json_object_new_int(n));
    rc = gh_jobspool_enqueue(ctx, NULL, id, "test:spool", 7, p, 0, 0);
    json_object_put(p);
    return rc;
}

/* Takes every ready job and returns their "n" in order, count in *k. */
static void take_all(int *ns, int max, int *k)
{
    struct gh_job job;

    *k = 0;
    while (*k < max && gh_queue_pop(live, queue, 0, &job) == GH_OK) {
        json_object *n;
        assert_true(json_object_object_get_ex(job.payload, "n", &n));
        assert_string_equal(job.kind, "test:spool");
        assert_int_equal(job.guild_id, 7);
        ns[(*k)++] = json_object_get_int(n);
        assert_int_equal(gh_queue_ack(live, queue, &job), GH_OK);
        gh_job_cleanup(&job);
    }
}

static void test_no_spool_is_plain_enqueue(void **state)
{
    struct gh_ctx ctx;

    (void)state;
    ctx_init(&ctx, dead, NULL);
    assert_int_equal(enqueue_n(&ctx, "js:plain:1", 1), GH_EREDIS);
    assert_int_equal(gh_jobspool_drain(&ctx, INT64_MAX), 0);
    ctx_init(&ctx, live, NULL);
    assert_int_equal(enqueue_n(&ctx, "js:plain:1", 1), GH_OK);
    assert_int_equal(enqueue_n(&ctx, "js:plain:1", 1), GH_EDUPLICATE);
    assert_int_equal(gh_queue_len(live, queue, "ready"), 1);
    assert_int_equal(gh_jobspool_enqueue(&ctx, NULL, "has space", "k", 0, NULL, 0, 0), GH_EINVAL);
}

static void test_order_kept_after_outage(void **state)
{
    struct gh_jobspool *s = gh_jobspool_new(100);
    struct gh_ctx ctx;
    char id[64];
    int ns[16], k;

    (void)state;
    assert_non_null(s);
    /* Redis up: straight to the queue */
    ctx_init(&ctx, live, s);
    assert_int_equal(enqueue_n(&ctx, "js:order:0", 0), GH_OK);
    assert_int_equal(gh_jobspool_len(s), 0);
    /* Redis down: kept, in order */
    ctx.redis = dead;
    for (int i = 1; i <= 5; i++) {
        snprintf(id, sizeof(id), "js:order:%d", i);
        assert_int_equal(enqueue_n(&ctx, id, i), GH_OK);
    }
    assert_int_equal(gh_jobspool_len(s), 5);
    assert_int_equal(gh_jobspool_drain(&ctx, INT64_MAX), 0); /* still down */
    assert_int_equal(gh_jobspool_len(s), 5);
    /* Redis back: a new job does not overtake the spooled ones */
    ctx.redis = live;
    assert_int_equal(enqueue_n(&ctx, "js:order:6", 6), GH_OK);
    assert_int_equal(gh_jobspool_len(s), 6);
    assert_int_equal(gh_queue_len(live, queue, "ready"), 1);
    /* not before the retry time */
    assert_int_equal(gh_jobspool_drain(&ctx, gh_mono_ms()), 0);
    assert_int_equal(gh_jobspool_drain(&ctx, gh_mono_ms() + GH_JOBSPOOL_RETRY_MS + 1), 6);
    assert_int_equal(gh_jobspool_len(s), 0);
    assert_int_equal(gh_jobspool_lost(s), 0);
    take_all(ns, 16, &k);
    assert_int_equal(k, 7);
    for (int i = 0; i < 7; i++)
        assert_int_equal(ns[i], i);
    /* empty again: straight to the queue */
    assert_int_equal(enqueue_n(&ctx, "js:order:7", 7), GH_OK);
    assert_int_equal(gh_jobspool_len(s), 0);
    assert_int_equal(gh_queue_len(live, queue, "ready"), 1);
    gh_jobspool_free(s);
}

static void test_bound_drops_oldest(void **state)
{
    struct gh_jobspool *s = gh_jobspool_new(3);
    struct gh_ctx ctx;
    char id[64];
    int ns[16], k;

    (void)state;
    ctx_init(&ctx, dead, s);
    for (int i = 1; i <= 5; i++) {
        snprintf(id, sizeof(id), "js:bound:%d", i);
        assert_int_equal(enqueue_n(&ctx, id, i), GH_OK);
    }
    assert_int_equal(gh_jobspool_len(s), 3);
    assert_int_equal(gh_jobspool_lost(s), 2);
    ctx.redis = live;
    assert_int_equal(gh_jobspool_drain(&ctx, INT64_MAX), 3);
    take_all(ns, 16, &k);
    assert_int_equal(k, 3);
    assert_int_equal(ns[0], 3); /* 1 and 2 were dropped */
    assert_int_equal(ns[1], 4);
    assert_int_equal(ns[2], 5);
    assert_int_equal(gh_jobspool_lost(s), 2);
    gh_jobspool_free(s);
}

static void test_duplicates_are_done(void **state)
{
    struct gh_jobspool *s = gh_jobspool_new(10);
    struct gh_ctx ctx;
    int ns[16], k;

    (void)state;
    ctx_init(&ctx, live, s);
    assert_int_equal(enqueue_n(&ctx, "js:dup:1", 1), GH_OK);
    assert_int_equal(enqueue_n(&ctx, "js:dup:1", 1), GH_EDUPLICATE); /* Redis up: reported */
    ctx.redis = dead;
    assert_int_equal(enqueue_n(&ctx, "js:dup:1", 1), GH_OK); /* spooled: Redis cannot say */
    assert_int_equal(enqueue_n(&ctx, "js:dup:2", 2), GH_OK);
    assert_int_equal(gh_jobspool_len(s), 2);
    ctx.redis = live;
    assert_int_equal(gh_jobspool_drain(&ctx, INT64_MAX), 2); /* the duplicate leaves too */
    assert_int_equal(gh_jobspool_len(s), 0);
    take_all(ns, 16, &k);
    assert_int_equal(k, 2);
    assert_int_equal(ns[0], 1);
    assert_int_equal(ns[1], 2);
    gh_jobspool_free(s);
}

static void test_keep_without_trying(void **state)
{
    struct gh_jobspool *s = gh_jobspool_new(10);
    struct gh_ctx ctx;
    json_object *p = json_object_new_object();
    int ns[16], k;

    (void)state;
    ctx_init(&ctx, live, NULL);
    assert_int_equal(gh_jobspool_keep(&ctx, NULL, "js:keep:1", "test:spool", 7, p, 0, 0),
                     GH_EINVAL); /* no spool */
    ctx.spool = s;
    json_object_object_add(p, "n", json_object_new_int(1));
    assert_int_equal(gh_jobspool_keep(&ctx, NULL, "js:keep:1", "test:spool", 7, p, 0, 0), GH_OK);
    json_object_put(p);
    assert_int_equal(gh_queue_len(live, queue, "ready"), 0);  /* Redis up, but not tried */
    assert_int_equal(enqueue_n(&ctx, "js:keep:2", 2), GH_OK); /* behind it */
    assert_int_equal(gh_jobspool_len(s), 2);
    assert_int_equal(gh_jobspool_drain(&ctx, INT64_MAX), 2);
    take_all(ns, 16, &k);
    assert_int_equal(k, 2);
    assert_int_equal(ns[0], 1);
    assert_int_equal(ns[1], 2);
    gh_jobspool_free(s);
}

static void test_delayed_keeps_due(void **state)
{
    struct gh_jobspool *s = gh_jobspool_new(10);
    struct gh_ctx ctx;
    json_object *p = json_object_new_object();
    int64_t due = gh_now_ms() + 600000;
    char key[128];
    redisReply *rep;

    (void)state;
    ctx_init(&ctx, dead, s);
    assert_int_equal(gh_jobspool_enqueue(&ctx, NULL, "js:delayed:1", "test:spool", 0, p, 0, due), GH_OK);
    json_object_put(p);
    ctx.redis = live;
    assert_int_equal(gh_jobspool_drain(&ctx, INT64_MAX), 1);
    assert_int_equal(gh_queue_len(live, queue, "ready"), 0);
    assert_int_equal(gh_queue_len(live, queue, "delayed"), 1);
    gh_key_queue(key, sizeof(key), gh_queue_partition(queue), queue, "delayed");
    rep = gh_redis_cmd(live, "ZRANGE %s 0 0 WITHSCORES", key);
    assert_non_null(rep);
    assert_int_equal(rep->elements, 2);
    assert_int_equal(strtoll(rep->element[1]->str, NULL, 10), due);
    freeReplyObject(rep);
    gh_jobspool_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_no_spool_is_plain_enqueue, each),
        cmocka_unit_test_setup(test_order_kept_after_outage, each),
        cmocka_unit_test_setup(test_bound_drops_oldest, each),
        cmocka_unit_test_setup(test_duplicates_are_done, each),
        cmocka_unit_test_setup(test_keep_without_trying, each),
        cmocka_unit_test_setup(test_delayed_keeps_due, each),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
