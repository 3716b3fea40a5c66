/* test_queue.c - the minimal job queue: partitions and keys, dedupe, pop and
 * ack, fail -> retry -> dead, malformed jobs, deadlines. Needs REDIS_URL (uses
 * database 9 of that server, and a queue name unique to the run). */
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

#include "core/err.h"
#include "core/str.h"
#include "core/timeutil.h"
#include "store/queue.h"
#include "store/redis.h"

static struct gh_redis *r;
static char queue[32];

#define NEED_REDIS()                                                                                         \
    do {                                                                                                     \
        if (!r) {                                                                                            \
            print_message("REDIS_URL is not set: queue tests skipped\n");                                    \
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

static void clear_queue(void)
{
    static const char *const kinds[] = {"ready", "processing", "dead", "delayed", "leases", "log"};
    char key[128];
    size_t i;

    for (i = 0; i < 6; i++) {
        gh_key_queue(key, sizeof(key), gh_queue_partition(queue), queue, kinds[i]);
        freeReplyObject(gh_redis_cmd(r, "DEL %s", key));
    }
}

static int setup(void **state)
{
    const char *url = getenv("REDIS_URL");
    char u[300];

    (void)state;
    snprintf(queue, sizeof(queue), "tq%d", (int)getpid());
    if (url && *url) {
        url_with_db(url, 9, u, sizeof(u));
        r = gh_redis_new(u, 500, NULL);
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    if (r)
        clear_queue();
    gh_redis_free(r);
    return 0;
}

static int each(void **state)
{
    (void)state;
    if (r)
        clear_queue();
    return 0;
}

static void seen_key(const char *id, char *out, size_t size)
{
    char suffix[200];

    snprintf(suffix, sizeof(suffix), "seen:%s", id);
    assert_int_equal(gh_key_queue(out, size, gh_queue_partition(queue), queue, suffix), GH_OK);
}

static void test_partition(void **state)
{
    int p = gh_queue_partition("default");

    (void)state;
    assert_true(p >= 0 && p < GH_QUEUE_PARTITIONS);
    assert_int_equal(gh_queue_partition("default"), p); /* stable */
    /* FNV-1a 32 of "a" is 0xe40c292c: mod 4 = 0; of "b" 0xe70c2de5: 1. */
    assert_int_equal(gh_queue_partition("a"), 0);
    assert_int_equal(gh_queue_partition("b"), 1);
}

static void test_enqueue_dedupe(void **state)
{
    NEED_REDIS();
    json_object *payload = json_tokener_parse("{\"n\":1}");
    char key[256], id[64];
    redisReply *rep;

    (void)state;
    snprintf(id, sizeof(id), "test:dedupe:%d", (int)getpid());
    seen_key(id, key, sizeof(key));
    freeReplyObject(gh_redis_cmd(r, "DEL %s", key));
    assert_int_equal(gh_queue_enqueue(r, queue, id, "test.kind", 42, payload, 0), GH_OK);
    assert_int_equal(gh_queue_enqueue(r, queue, id, "test.kind", 42, payload, 0), GH_EDUPLICATE);
    assert_int_equal(gh_queue_len(r, queue, "ready"), 1);
    rep = gh_redis_cmd(r, "TTL %s", key);
    assert_non_null(rep);
    assert_true(rep->integer > 86000 && rep->integer <= 86400);
    freeReplyObject(rep);
    assert_int_equal(gh_queue_enqueue(r, "Bad Queue", id, "k", 0, NULL, 0), GH_EINVAL);
    assert_int_equal(gh_queue_enqueue(r, queue, "has space", "k", 0, NULL, 0), GH_EINVAL);
    assert_int_equal(gh_queue_len(r, queue, "nonsense"), -1);
    freeReplyObject(gh_redis_cmd(r, "DEL %s", key));
    json_object_put(payload);
}

/* Many jobs in one pipeline: each outcome in its rc (queued, duplicate of a
 * job queued before or earlier in the same call, invalid id), every valid new
 * one in ready once. */
static void test_enqueue_many(void **state)
{
    NEED_REDIS();
    json_object *payload = json_tokener_parse("{\"n\":2}");
    char a[64], b[64], key[256];
    struct gh_queue_new jobs[4];

    (void)state;
    snprintf(a, sizeof(a), "test:many:a:%d", (int)getpid());
    snprintf(b, sizeof(b), "test:many:b:%d", (int)getpid());
    seen_key(a, key, sizeof(key));
    freeReplyObject(gh_redis_cmd(r, "DEL %s", key));
    seen_key(b, key, sizeof(key));
    freeReplyObject(gh_redis_cmd(r, "DEL %s", key));
    long long before = gh_queue_len(r, queue, "ready");
    assert_int_equal(gh_queue_enqueue(r, queue, a, "test.kind", 1, payload, 0), GH_OK);
    memset(jobs, 0, sizeof(jobs));
    jobs[0] = (struct gh_queue_new){.id = a, .kind = "test.kind", .guild_id = 1, .payload = payload};
    jobs[1] = (struct gh_queue_new){.id = b, .kind = "test.kind", .guild_id = 2, .payload = payload};
    jobs[2] = (struct gh_queue_new){.id = b, .kind = "test.kind", .guild_id = 2, .payload = payload};
    jobs[3] = (struct gh_queue_new){.id = "has space", .kind = "k", .payload = NULL};
    assert_int_equal(gh_queue_enqueue_many(r, queue, jobs, 4), GH_EINVAL);
    assert_int_equal(jobs[0].rc, GH_EDUPLICATE);
    assert_int_equal(jobs[1].rc, GH_OK);
    assert_int_equal(jobs[2].rc, GH_EDUPLICATE);
    assert_int_equal(jobs[3].rc, GH_EINVAL);
    assert_int_equal(gh_queue_len(r, queue, "ready"), before + 2);
    assert_int_equal(gh_queue_enqueue_many(r, queue, jobs, 0), GH_OK);
    assert_int_equal(gh_queue_enqueue_many(r, "Bad Queue", jobs, 1), GH_EINVAL);
    /* the connection is usable after the pipeline */
    assert_int_equal(gh_queue_enqueue(r, queue, b, "test.kind", 2, payload, 0), GH_EDUPLICATE);
    json_object_put(payload);
}

static void test_pop_ack(void **state)
{
    NEED_REDIS();
    json_object *payload = json_tokener_parse("{\"msg\":\"hi\"}"), *v;
    struct gh_job job;
    char key[256], id[64];
    int64_t deadline = gh_now_ms() + 60000;

    (void)state;
    snprintf(id, sizeof(id), "test:pop:%d", (int)getpid());
    seen_key(id, key, sizeof(key));
    freeReplyObject(gh_redis_cmd(r, "DEL %s", key));
    assert_int_equal(gh_queue_pop(r, queue, 0, &job), GH_ENOTFOUND); /* empty, no wait */
    assert_int_equal(gh_queue_enqueue(r, queue, id, "test.pop", 1234567890123456789ULL, payload, deadline),
                     GH_OK);
    assert_int_equal(gh_queue_pop(r, queue, 1, &job), GH_OK);
    assert_string_equal(job.id, id);
    assert_string_equal(job.kind, "test.pop");
    assert_true(job.guild_id == 1234567890123456789ULL);
    assert_int_equal(job.attempt, 1);
    assert_true(job.deadline_ms == deadline);
    assert_true(job.enqueued_ms > 0);
    assert_non_null(job.raw);
    assert_true(json_object_object_get_ex(job.payload, "msg", &v));
    assert_string_equal(json_object_get_string(v), "hi");
    assert_int_equal(gh_queue_len(r, queue, "ready"), 0);
    assert_int_equal(gh_queue_len(r, queue, "processing"), 1);
    assert_int_equal(gh_job_expired(&job, gh_now_ms()), 0);
    assert_int_equal(gh_job_expired(&job, deadline), 1);
    assert_int_equal(gh_queue_ack(r, queue, &job), GH_OK);
    assert_int_equal(gh_queue_len(r, queue, "processing"), 0);
    assert_int_equal(gh_queue_ack(r, queue, &job), GH_ENOTFOUND);
    gh_job_cleanup(&job);
    assert_null(job.raw);
    /* Blocking pop on an empty queue times out. */
    assert_int_equal(gh_queue_pop(r, queue, 1, &job), GH_ENOTFOUND);
    freeReplyObject(gh_redis_cmd(r, "DEL %s", key));
    json_object_put(payload);
}

static void take_due(struct gh_job *job)
{
    struct gh_queue_poll p = {.lease_ms = 5000, .max = 1, .wait_ms = 3000};
    int n = 0;

    assert_int_equal(gh_queue_take(r, queue, &p, job, &n), GH_OK);
    assert_int_equal(n, 1);
}

static void test_fail_retry_dead(void **state)
{
    NEED_REDIS();
    struct gh_job job;
    char key[256], id[64];
    redisReply *rep;
    json_object *dead, *v;
    int attempt;

    (void)state;
    snprintf(id, sizeof(id), "test:fail:%d", (int)getpid());
    seen_key(id, key, sizeof(key));
    freeReplyObject(gh_redis_cmd(r, "DEL %s", key));
    assert_int_equal(gh_queue_enqueue(r, queue, id, "test.fail", 0, NULL, 0), GH_OK);
    for (attempt = 1; attempt <= 3; attempt++) {
        char err[32];
        int64_t retry_at = -1, before = gh_now_ms();

        take_due(&job); /* a retry waits in delayed until due: take waits for it */
        assert_int_equal(job.attempt, attempt);
        assert_true(job.guild_id == 0);
        snprintf(err, sizeof(err), "boom %d", attempt);
        assert_int_equal(gh_queue_fail_ex(r, queue, &job, 3, 100, err, NULL, &retry_at), GH_OK);
        assert_int_equal(gh_queue_len(r, queue, "processing"), 0);
        assert_int_equal(gh_queue_len(r, queue, "leases"), 0);
        assert_int_equal(gh_queue_len(r, queue, "ready"), 0);
        assert_int_equal(gh_queue_len(r, queue, "delayed"), attempt < 3 ? 1 : 0);
        if (attempt < 3) { /* delayed by the backoff of this attempt, with the error */
            char delayed[256];
            int64_t lo = 100LL << (attempt - 1);

            assert_true(retry_at >= before + lo / 2 && retry_at <= gh_now_ms() + lo);
            gh_key_queue(delayed, sizeof(delayed), gh_queue_partition(queue), queue, "delayed");
            rep = gh_redis_cmd(r, "ZRANGE %s 0 0", delayed);
            assert_non_null(rep);
            assert_int_equal(rep->elements, 1);
            assert_non_null(strstr(rep->element[0]->str, err));
            freeReplyObject(rep);
        } else {
            assert_true(retry_at == 0);
        }
        /* Failing a job that is no longer in processing does nothing. */
        assert_int_equal(gh_queue_fail(r, queue, &job, 3, "again"), GH_ENOTFOUND);
        gh_job_cleanup(&job);
    }
    assert_int_equal(gh_queue_len(r, queue, "dead"), 1);
    rep = gh_redis_cmd(r, "GET %s", key);
    assert_string_equal(rep->str, "dead");
    freeReplyObject(rep);
    gh_key_queue(key, sizeof(key), gh_queue_partition(queue), queue, "dead");
    rep = gh_redis_cmd(r, "LINDEX %s 0", key);
    assert_non_null(rep);
    assert_int_equal(rep->type, REDIS_REPLY_STRING);
    dead = json_tokener_parse(rep->str);
    freeReplyObject(rep);
    assert_non_null(dead);
    assert_true(json_object_object_get_ex(dead, "error", &v));
    assert_string_equal(json_object_get_string(v), "boom 3");
    assert_true(json_object_object_get_ex(dead, "last_error", &v));
    assert_string_equal(json_object_get_string(v), "boom 2");
    assert_true(json_object_object_get_ex(dead, "failed_ms", &v));
    assert_true(json_object_get_int64(v) > 0);
    assert_true(json_object_object_get_ex(dead, "attempt", &v));
    assert_int_equal(json_object_get_int(v), 3);
    json_object_put(dead);

    /* Operators: list, retry (attempts reset), purge. */
    {
        json_object *arr = NULL;
        long long moved = -1, removed = -1;

        assert_int_equal(gh_queue_dead_list(r, queue, 10, &arr), GH_OK);
        assert_int_equal(json_object_array_length(arr), 1);
        json_object_put(arr);
        assert_int_equal(gh_queue_dead_retry(r, queue, "no-such-id", &moved), GH_OK);
        assert_int_equal(moved, 0);
        assert_int_equal(gh_queue_dead_retry(r, queue, id, &moved), GH_OK);
        assert_int_equal(moved, 1);
        assert_int_equal(gh_queue_len(r, queue, "dead"), 0);
        take_due(&job);
        assert_string_equal(job.id, id);
        assert_int_equal(job.attempt, 1);
        assert_null(strstr(job.raw, "\"error\""));
        assert_int_equal(gh_queue_fail(r, queue, &job, 1, "again dead"), GH_OK);
        gh_job_cleanup(&job);
        assert_int_equal(gh_queue_dead_purge(r, queue, &removed), GH_OK);
        assert_int_equal(removed, 1);
        assert_int_equal(gh_queue_len(r, queue, "dead"), 0);
    }
    seen_key(id, key, sizeof(key));
    freeReplyObject(gh_redis_cmd(r, "DEL %s", key));
}

static void expect_state(const char *id, const char *state)
{
    char key[256];
    redisReply *rep;

    seen_key(id, key, sizeof(key));
    rep = gh_redis_cmd(r, "GET %s", key);
    assert_non_null(rep);
    assert_int_equal(rep->type, REDIS_REPLY_STRING);
    assert_string_equal(rep->str, state);
    freeReplyObject(rep);
}

/* An id that is queued, running or done is not queued again. */
static void test_dedupe_states(void **state)
{
    NEED_REDIS();
    struct gh_job job;
    char id[64];

    (void)state;
    snprintf(id, sizeof(id), "test:states:%d", (int)getpid());
    assert_int_equal(gh_queue_enqueue(r, queue, id, "k", 0, NULL, 0), GH_OK);
    expect_state(id, "queued");
    assert_int_equal(gh_queue_enqueue(r, queue, id, "k", 0, NULL, 0), GH_EDUPLICATE);
    take_due(&job);
    expect_state(id, "running");
    assert_int_equal(gh_queue_len(r, queue, "leases"), 1);
    assert_int_equal(gh_queue_enqueue(r, queue, id, "k", 0, NULL, 0), GH_EDUPLICATE);
    assert_int_equal(gh_queue_len(r, queue, "ready"), 0);
    assert_int_equal(gh_queue_ack_ex(r, queue, &job, "done", "{\"x\":1}"), GH_OK);
    expect_state(id, "done");
    assert_int_equal(gh_queue_len(r, queue, "leases"), 0);
    assert_int_equal(gh_queue_enqueue(r, queue, id, "k", 0, NULL, 0), GH_EDUPLICATE);
    assert_int_equal(gh_queue_len(r, queue, "ready"), 0);
    gh_job_cleanup(&job);
    /* Delayed: queued too; its id is kept at least for the delay plus 24 h. */
    snprintf(id, sizeof(id), "test:states-d:%d", (int)getpid());
    assert_int_equal(gh_queue_enqueue_at(r, queue, id, "k", 0, NULL, 0, gh_now_ms() + 3600000), GH_OK);
    assert_int_equal(gh_queue_enqueue(r, queue, id, "k", 0, NULL, 0), GH_EDUPLICATE);
    assert_int_equal(gh_queue_len(r, queue, "delayed"), 1);
    assert_int_equal(gh_queue_len(r, queue, "ready"), 0);
    {
        char key[256];
        redisReply *rep;
        seen_key(id, key, sizeof(key));
        rep = gh_redis_cmd(r, "TTL %s", key);
        assert_true(rep->integer > 86400 + 3500);
        freeReplyObject(rep);
    }
}

/* A delayed job is not taken before it is due, and is after. */
static void test_delayed(void **state)
{
    NEED_REDIS();
    struct gh_queue_poll p = {.lease_ms = 5000, .max = 4, .wait_ms = 0};
    struct gh_job jobs[4];
    int64_t due = gh_now_ms() + 400;
    int n = -1;

    (void)state;
    assert_int_equal(gh_queue_enqueue_at(r, queue, "d1", "k", 0, NULL, 0, due), GH_OK);
    assert_int_equal(gh_queue_take(r, queue, &p, jobs, &n), GH_ENOTFOUND);
    assert_int_equal(n, 0);
    assert_int_equal(gh_queue_len(r, queue, "delayed"), 1);
    p.wait_ms = 3000; /* the blocking wait ends at the due time, then the next take promotes it */
    while (gh_queue_take(r, queue, &p, jobs, &n) == GH_ENOTFOUND && gh_now_ms() < due + 5000)
        ;
    assert_int_equal(n, 1);
    assert_string_equal(jobs[0].id, "d1");
    assert_true(jobs[0].taken_ms >= due);
    assert_true(jobs[0].due_ms == due);
    assert_int_equal(gh_queue_ack(r, queue, &jobs[0]), GH_OK);
    gh_job_cleanup(&jobs[0]);
}

/* Batches; a job whose lease expires returns to ready with attempt + 1;
 * renew, extend and release. */
static void test_leases(void **state)
{
    NEED_REDIS();
    struct gh_queue_poll p = {.lease_ms = 300, .max = 3, .wait_ms = 0};
    struct gh_job jobs[3], again;
    const char *ids[2];
    int n = 0;

    (void)state;
    assert_int_equal(gh_queue_enqueue(r, queue, "l1", "k", 0, NULL, 0), GH_OK);
    assert_int_equal(gh_queue_enqueue(r, queue, "l2", "k", 0, NULL, 0), GH_OK);
    assert_int_equal(gh_queue_enqueue(r, queue, "l3", "k", 0, NULL, 0), GH_OK);
    assert_int_equal(gh_queue_take(r, queue, &p, jobs, &n), GH_OK);
    assert_int_equal(n, 3); /* one round trip, FIFO */
    assert_string_equal(jobs[0].id, "l1");
    assert_string_equal(jobs[2].id, "l3");
    assert_int_equal(gh_queue_len(r, queue, "leases"), 3);
    /* l1: held; l2: extended for long; l3: given back. */
    assert_int_equal(gh_queue_renew(r, queue, "l1", 300), 1);
    ids[0] = "l2";
    ids[1] = "gone";
    assert_int_equal(gh_queue_extend(r, queue, ids, 2, 60000), GH_OK);
    assert_int_equal(gh_queue_len(r, queue, "leases"), 3); /* XX: no lease for "gone" */
    assert_int_equal(gh_queue_release(r, queue, &jobs[2]), GH_OK);
    assert_int_equal(gh_queue_len(r, queue, "ready"), 1);
    /* l1's lease runs out: the next take reaps it (attempt 2) after l3. */
    p.max = 1;
    p.wait_ms = 2000;
    assert_int_equal(gh_queue_take(r, queue, &p, &again, &n), GH_OK);
    assert_string_equal(again.id, "l3");
    assert_int_equal(again.attempt, 1);
    assert_int_equal(gh_queue_ack(r, queue, &again), GH_OK);
    gh_job_cleanup(&again);
    memset(&again, 0, sizeof(again));
    {
        int64_t t0 = gh_now_ms();
        int rc;
        while ((rc = gh_queue_take(r, queue, &p, &again, &n)) == GH_ENOTFOUND && gh_now_ms() - t0 < 5000)
            ;
        assert_int_equal(rc, GH_OK);
    }
    assert_string_equal(again.id, "l1");
    assert_int_equal(again.attempt, 2);
    assert_int_equal(gh_queue_renew(r, queue, "l1", 5000), 1);
    /* The first holder's ack no longer finds its copy. */
    assert_int_equal(gh_queue_ack(r, queue, &jobs[0]), GH_ENOTFOUND);
    assert_int_equal(gh_queue_ack(r, queue, &again), GH_OK);
    assert_int_equal(gh_queue_ack(r, queue, &jobs[1]), GH_OK); /* l2 was kept by the extension */
    assert_int_equal(gh_queue_len(r, queue, "processing"), 0);
    assert_int_equal(gh_queue_len(r, queue, "leases"), 0);
    assert_int_equal(gh_queue_renew(r, queue, "l1", 5000), 0);
    gh_job_cleanup(&again);
    for (int i = 0; i < 3; i++)
        gh_job_cleanup(&jobs[i]);
}

/* A job moved by BLMOVE whose claim never came (worker died) gets a lease from
 * the next take, and is reaped when it expires. */
static void test_orphan_adopted(void **state)
{
    NEED_REDIS();
    struct gh_queue_poll p = {.lease_ms = 200, .max = 1, .wait_ms = 0};
    struct gh_job job;
    char ready[256], processing[256];
    int n = 0, rc;
    int64_t t0 = gh_now_ms();

    (void)state;
    assert_int_equal(gh_queue_enqueue(r, queue, "o1", "k", 0, NULL, 0), GH_OK);
    gh_key_queue(ready, sizeof(ready), gh_queue_partition(queue), queue, "ready");
    gh_key_queue(processing, sizeof(processing), gh_queue_partition(queue), queue, "processing");
    freeReplyObject(gh_redis_cmd(r, "LMOVE %s %s RIGHT LEFT", ready, processing));
    assert_int_equal(gh_queue_take(r, queue, &p, &job, &n), GH_ENOTFOUND);
    assert_int_equal(gh_queue_len(r, queue, "leases"), 1);
    p.wait_ms = 1000;
    while ((rc = gh_queue_take(r, queue, &p, &job, &n)) == GH_ENOTFOUND && gh_now_ms() - t0 < 5000)
        ;
    assert_int_equal(rc, GH_OK);
    assert_string_equal(job.id, "o1");
    assert_int_equal(job.attempt, 2);
    assert_int_equal(gh_queue_ack(r, queue, &job), GH_OK);
    gh_job_cleanup(&job);
}

static void test_backoff(void **state)
{
    (void)state;
    for (int i = 0; i < 200; i++) {
        int a1 = gh_queue_backoff_ms(1000, 1), a2 = gh_queue_backoff_ms(1000, 2),
            a3 = gh_queue_backoff_ms(1000, 3);
        int big = gh_queue_backoff_ms(1000, 40);

        assert_true(a1 >= 500 && a1 <= 1000);
        assert_true(a2 >= 1000 && a2 <= 2000);
        assert_true(a3 >= 2000 && a3 <= 4000);
        assert_true(big >= GH_QUEUE_BACKOFF_CAP_MS / 2 && big <= GH_QUEUE_BACKOFF_CAP_MS);
    }
    assert_true(gh_queue_backoff_ms(0, 1) >= 500); /* 0 = the default base */
}

static void test_stats_metrics(void **state)
{
    NEED_REDIS();
    struct gh_queue_stats st;
    struct gh_buf b;
    const char *queues[] = {queue, NULL};
    char line[160];

    (void)state;
    assert_int_equal(gh_queue_enqueue(r, queue, "s1", "k", 0, NULL, 0), GH_OK);
    assert_int_equal(gh_queue_enqueue_at(r, queue, "s2", "k", 0, NULL, 0, gh_now_ms() + 60000), GH_OK);
    assert_int_equal(gh_queue_stats(r, queue, &st), GH_OK);
    assert_int_equal(st.ready, 1);
    assert_int_equal(st.delayed, 1);
    assert_int_equal(st.processing, 0);
    assert_true(st.oldest_ready_ms >= 0);
    gh_buf_init(&b, 1 << 16);
    assert_int_equal(gh_queue_metrics(r, queues, &b), GH_OK);
    snprintf(line, sizeof(line), "gh_queue_jobs{queue=\"%s\",state=\"delayed\"} 1\n", queue);
    assert_non_null(strstr(gh_buf_cstr(&b), line));
    snprintf(line, sizeof(line), "gh_queue_jobs{queue=\"%s\",state=\"ready\"} 1\n", queue);
    assert_non_null(strstr(gh_buf_cstr(&b), line));
    gh_buf_cleanup(&b);
}

static void test_malformed_goes_dead(void **state)
{
    NEED_REDIS();
    struct gh_job job;
    char ready[256];

    (void)state;
    gh_key_queue(ready, sizeof(ready), gh_queue_partition(queue), queue, "ready");
    freeReplyObject(gh_redis_cmd(r, "LPUSH %s %s", ready, "{not json"));
    freeReplyObject(gh_redis_cmd(r, "LPUSH %s %s", ready, "{\"kind\":\"no id\"}"));
    assert_int_equal(gh_queue_pop(r, queue, 1, &job), GH_EJSON);
    assert_int_equal(gh_queue_pop(r, queue, 1, &job), GH_EJSON);
    assert_int_equal(gh_queue_len(r, queue, "processing"), 0);
    assert_int_equal(gh_queue_len(r, queue, "dead"), 2);
    assert_null(job.raw);
}

static void test_redis_down(void **state)
{
    struct gh_redis *dead = gh_redis_new("redis://127.0.0.1:1/0", 100, NULL);
    struct gh_job job;

    (void)state;
    assert_int_equal(gh_queue_enqueue(dead, "default", "x", "k", 0, NULL, 0), GH_EREDIS);
    assert_int_equal(gh_queue_pop(dead, "default", 1, &job), GH_EREDIS);
    assert_int_equal(gh_queue_len(dead, "default", "ready"), -1);
    gh_redis_free(dead);
}

/* Acks held back go with the next take, in its script: the jobs leave
 * processing and their leases, their state is the final one, their log
 * entries are pushed; an ack whose job was reaped meanwhile does not count. */
static void test_acks_with_take(void **state)
{
    NEED_REDIS();
    struct gh_queue_acks acks;
    struct gh_queue_poll p = {.lease_ms = 10000, .max = 3, .wait_ms = 0};
    struct gh_job jobs[3], more[3];
    char id[64], logk[256];
    int n = 0, m = 0, acked = 0;

    (void)state;
    memset(&acks, 0, sizeof(acks));
    for (int i = 0; i < 5; i++) {
        snprintf(id, sizeof(id), "test:acks:%d:%d", (int)getpid(), i);
        assert_int_equal(gh_queue_enqueue(r, queue, id, "test.acks", 0, NULL, 0), GH_OK);
    }
    assert_int_equal(gh_queue_take(r, queue, &p, jobs, &n), GH_OK);
    assert_int_equal(n, 3);
    assert_int_equal(gh_queue_ack_defer(&acks, &jobs[0], "done", "{\"e\":0}"), GH_OK);
    assert_int_equal(gh_queue_ack_defer(&acks, &jobs[1], "expired", NULL), GH_OK);
    assert_int_equal(gh_queue_len(r, queue, "processing"), 3); /* held: nothing sent yet */
    p.acks = &acks;
    p.acks_done = &acked;
    assert_int_equal(gh_queue_take(r, queue, &p, more, &m), GH_OK);
    assert_int_equal(m, 2);
    assert_int_equal(acks.n, 0);
    assert_int_equal(acked, 2);
    assert_int_equal(gh_queue_len(r, queue, "processing"), 3); /* jobs[2] and the two new ones */
    assert_int_equal(gh_queue_len(r, queue, "leases"), 3);
    expect_state(jobs[0].id, "done");
    expect_state(jobs[1].id, "expired");
    expect_state(jobs[2].id, "running");
    assert_int_equal(gh_queue_key(logk, sizeof(logk), queue, "log"), GH_OK);
    redisReply *rep = gh_redis_cmd(r, "LRANGE %s 0 -1", logk);
    assert_non_null(rep);
    assert_int_equal(rep->elements, 1);
    assert_string_equal(rep->element[0]->str, "{\"e\":0}");
    freeReplyObject(rep);
    /* A flush on its own; jobs[2] was given back (as a reaper would) first. */
    assert_int_equal(gh_queue_release(r, queue, &jobs[2]), GH_OK);
    assert_int_equal(gh_queue_ack_defer(&acks, &jobs[2], "done", NULL), GH_OK);
    assert_int_equal(gh_queue_ack_defer(&acks, &more[0], "done", NULL), GH_OK);
    assert_int_equal(gh_queue_ack_flush(r, queue, &acks, &acked), GH_OK);
    assert_int_equal(acked, 1);
    assert_int_equal(acks.n, 0);
    assert_int_equal(gh_queue_len(r, queue, "processing"), 1);
    assert_int_equal(gh_queue_len(r, queue, "ready"), 1);
    expect_state(more[0].id, "done");
    /* A full set is refused (flush first). */
    for (int i = 0; i < GH_QUEUE_TAKE_MAX; i++)
        assert_int_equal(gh_queue_ack_defer(&acks, &more[1], "done", NULL), GH_OK);
    assert_int_equal(gh_queue_ack_defer(&acks, &more[1], "done", NULL), GH_ETOOBIG);
    gh_queue_acks_cleanup(&acks);
    assert_int_equal(acks.n, 0);
    for (int i = 0; i < n; i++)
        gh_job_cleanup(&jobs[i]);
    for (int i = 0; i < m; i++)
        gh_job_cleanup(&more[i]);
}

/* Bad arguments are refused before Redis is asked. */
static void test_argument_guards(void **state)
{
    struct gh_job job, jobs[2];
    struct gh_queue_acks acks;
    struct gh_queue_stats st;
    struct gh_queue_poll poll_bad = {.max = 1, .wait_ms = -1};
    struct gh_buf b;
    json_object *arr = NULL;
    long long moved = 9, removed = 9;
    const char *ids[1] = {"x"};
    int n = 0, acked = 0;

    (void)state;
    memset(&job, 0, sizeof(job));
    memset(&acks, 0, sizeof(acks));
    assert_int_equal(gh_queue_name_ok(NULL), 0);
    assert_int_equal(gh_queue_name_ok(""), 0);
    assert_int_equal(gh_queue_name_ok("Upper"), 0);
    assert_int_equal(gh_queue_name_ok("ok_name-1"), 1);
    assert_int_equal(gh_queue_enqueue(NULL, "default", "x", "k", 0, NULL, 0), GH_EINVAL);
    assert_int_equal(gh_queue_pop(NULL, "default", 0, NULL), GH_EINVAL);
    assert_int_equal(gh_queue_take(NULL, "default", &poll_bad, jobs, &n), GH_EINVAL);
    assert_int_equal(gh_queue_ack(NULL, "default", &job), GH_EINVAL);
    assert_int_equal(gh_queue_fail(NULL, "default", &job, 3, "e"), GH_EINVAL);
    assert_int_equal(gh_queue_release(NULL, "default", &job), GH_EINVAL);
    assert_int_equal(gh_queue_extend(NULL, "default", ids, 1, 1000), GH_EINVAL);
    assert_int_equal(gh_queue_renew(NULL, "default", "x", 1000), GH_EINVAL);
    assert_int_equal(gh_queue_len(NULL, "default", "ready"), -1);
    assert_int_equal(gh_queue_stats(NULL, "default", &st), GH_EINVAL);
    assert_int_equal(gh_queue_metrics(NULL, NULL, NULL), GH_EINVAL);
    assert_int_equal(gh_queue_dead_list(NULL, "default", 10, &arr), GH_EINVAL);
    assert_null(arr);
    assert_int_equal(gh_queue_dead_retry(NULL, "default", NULL, &moved), GH_EINVAL);
    assert_int_equal(moved, 0);
    assert_int_equal(gh_queue_dead_purge(NULL, "default", &removed), GH_EINVAL);
    assert_int_equal(removed, 0);
    assert_int_equal(gh_queue_ack_flush(NULL, "default", &acks, &acked), GH_EINVAL);
    /* A job that was never popped cannot be held for an ack. */
    assert_int_equal(gh_queue_ack_defer(&acks, &job, NULL, NULL), GH_EINVAL);
    assert_int_equal(gh_queue_ack_defer(NULL, &job, NULL, NULL), GH_EINVAL);
    assert_int_equal(acks.n, 0);
    gh_queue_acks_cleanup(NULL); /* no-op */
    gh_job_cleanup(NULL);        /* no-op */
    assert_true(gh_queue_backoff_ms(1000, 0) >= 500 &&
                gh_queue_backoff_ms(1000, 0) <= 1000); /* as attempt 1 */

    NEED_REDIS();
    gh_buf_init(&b, 256);
    assert_int_equal(gh_queue_enqueue(r, "Bad Queue", "x", "k", 0, NULL, 0), GH_EINVAL);
    assert_int_equal(gh_queue_enqueue(r, queue, "", "k", 0, NULL, 0), GH_EINVAL);
    assert_int_equal(gh_queue_enqueue(r, queue, "x", "", 0, NULL, 0), GH_EINVAL);
    assert_int_equal(gh_queue_enqueue(r, queue, "x", "k", 0, NULL, -1), GH_EINVAL);
    assert_int_equal(gh_queue_pop(r, queue, 3601, &job), GH_EINVAL);
    assert_int_equal(gh_queue_take(r, queue, &poll_bad, jobs, &n), GH_EINVAL);
    assert_int_equal(gh_queue_take(r, queue, NULL, NULL, NULL), GH_EINVAL);
    assert_int_equal(gh_queue_ack(r, "Bad Queue", &job), GH_EINVAL);
    assert_int_equal(gh_queue_fail(r, queue, &job, 0, "e"), GH_EINVAL);
    assert_int_equal(gh_queue_release(r, queue, &job), GH_EINVAL);
    assert_int_equal(gh_queue_extend(r, queue, ids, 65, 1000), GH_EINVAL);
    assert_int_equal(gh_queue_extend(r, queue, NULL, 1, 1000), GH_EINVAL);
    assert_int_equal(gh_queue_extend(r, queue, ids, 1, 0), GH_EINVAL);
    assert_int_equal(gh_queue_extend(r, queue, NULL, 0, 1000), GH_OK); /* nothing to extend */
    assert_int_equal(gh_queue_renew(r, queue, NULL, 1000), GH_EINVAL);
    assert_int_equal(gh_queue_renew(r, queue, "x", 0), GH_EINVAL);
    assert_int_equal(gh_queue_len(r, queue, NULL), -1);
    assert_int_equal(gh_queue_len(r, "Bad Queue", "ready"), -1);
    assert_int_equal(gh_queue_stats(r, queue, NULL), GH_EINVAL);
    /* No queues, or one that cannot be read: the TYPE lines, no sample. */
    const char *bad_queues[] = {"Bad Queue", NULL};
    assert_int_equal(gh_queue_metrics(r, bad_queues, &b), GH_OK);
    assert_null(strstr(gh_buf_cstr(&b), "gh_queue_jobs{"));
    assert_non_null(strstr(gh_buf_cstr(&b), "# TYPE gh_queue_jobs gauge\n"));
    assert_int_equal(gh_queue_dead_list(r, queue, 0, &arr), GH_EINVAL);
    assert_int_equal(gh_queue_dead_retry(r, "Bad Queue", NULL, &moved), GH_EINVAL);
    assert_int_equal(gh_queue_dead_purge(r, "Bad Queue", &removed), GH_EINVAL);
    assert_int_equal(gh_queue_ack_flush(r, "Bad Queue", &acks, &acked), GH_EINVAL);
    assert_int_equal(gh_queue_ack_flush(r, queue, &acks, &acked), GH_OK); /* none held */
    assert_int_equal(acked, 0);
    /* None of it wrote anything. */
    assert_int_equal(gh_queue_len(r, queue, "ready"), 0);
    assert_int_equal(gh_queue_len(r, queue, "dead"), 0);
    gh_buf_cleanup(&b);
}

/* Field types a job must have; a numeric guild is accepted, the rest go dead. */
static void test_job_field_types(void **state)
{
    NEED_REDIS();
    struct gh_job job;
    char ready[256];
    static const char *const bad[] = {
        "[1,2]",
        "{\"id\":\"b1\",\"kind\":\"k\",\"guild\":\"12x\"}",
        "{\"id\":\"b2\",\"kind\":\"k\",\"guild\":-5}",
        "{\"id\":\"b3\",\"kind\":\"k\",\"guild\":true}",
        "{\"id\":\"b4\",\"kind\":\"k\",\"deadline_ms\":\"soon\"}",
        "{\"id\":\"\",\"kind\":\"k\"}",
        "{\"id\":\"b6\",\"kind\":7}",
    };

    (void)state;
    gh_key_queue(ready, sizeof(ready), gh_queue_partition(queue), queue, "ready");
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        freeReplyObject(gh_redis_cmd(r, "LPUSH %s %s", ready, bad[i]));
        assert_int_equal(gh_queue_pop(r, queue, 0, &job), GH_EJSON);
    }
    assert_int_equal(gh_queue_len(r, queue, "dead"), (long long)(sizeof(bad) / sizeof(bad[0])));
    assert_int_equal(gh_queue_len(r, queue, "processing"), 0);

    freeReplyObject(gh_redis_cmd(r, "LPUSH %s %s", ready,
                                 "{\"id\":\"g1\",\"kind\":\"k\",\"guild\":123456,\"attempt\":0,"
                                 "\"deadline_ms\":null}"));
    assert_int_equal(gh_queue_pop(r, queue, 0, &job), GH_OK);
    assert_string_equal(job.id, "g1");
    assert_int_equal(job.guild_id, 123456);
    assert_int_equal(job.attempt, 1); /* 0 read as the first attempt */
    assert_int_equal(job.deadline_ms, 0);
    assert_int_equal(gh_queue_ack(r, queue, &job), GH_OK);
    gh_job_cleanup(&job);
}

/* A dead entry that is not a JSON object is listed as unreadable, and
 * neither revived nor lost by a retry; purge removes it. */
static void test_dead_unreadable_entries(void **state)
{
    NEED_REDIS();
    char dead[256];
    json_object *arr = NULL, *e, *v;
    long long moved = -1, removed = -1;

    (void)state;
    gh_key_queue(dead, sizeof(dead), gh_queue_partition(queue), queue, "dead");
    freeReplyObject(gh_redis_cmd(r, "LPUSH %s %s", dead, "garbage"));
    freeReplyObject(gh_redis_cmd(r, "LPUSH %s %s", dead, "{\"id\":5}"));
    assert_int_equal(gh_queue_dead_list(r, queue, 10, &arr), GH_OK);
    assert_int_equal(json_object_array_length(arr), 2);
    e = json_object_array_get_idx(arr, 1);
    assert_true(json_object_object_get_ex(e, "error", &v));
    assert_string_equal(json_object_get_string(v), "unreadable dead letter");
    json_object_put(arr);
    assert_int_equal(gh_queue_dead_retry(r, queue, NULL, &moved), GH_OK);
    assert_int_equal(moved, 0);
    assert_int_equal(gh_queue_len(r, queue, "dead"), 2);
    assert_int_equal(gh_queue_len(r, queue, "ready"), 0);
    assert_int_equal(gh_queue_dead_purge(r, queue, &removed), GH_OK);
    assert_int_equal(removed, 2);
    assert_int_equal(gh_queue_len(r, queue, "dead"), 0);
}

/* Redis unreachable: every call reports GH_EREDIS (or -1), none pretends. */
static void test_redis_down_everywhere(void **state)
{
    struct gh_redis *dead = gh_redis_new("redis://127.0.0.1:1/0", 100, NULL);
    struct gh_queue_stats st;
    json_object *arr = NULL;
    long long moved = 0, removed = 0;
    const char *ids[1] = {"x"};

    (void)state;
    assert_int_equal(gh_queue_stats(dead, "default", &st), GH_EREDIS);
    assert_int_equal(gh_queue_dead_list(dead, "default", 5, &arr), GH_EREDIS);
    assert_null(arr);
    assert_int_equal(gh_queue_dead_retry(dead, "default", NULL, &moved), GH_EREDIS);
    assert_int_equal(gh_queue_dead_purge(dead, "default", &removed), GH_EREDIS);
    assert_int_equal(gh_queue_extend(dead, "default", ids, 1, 1000), GH_EREDIS);
    assert_int_equal(gh_queue_renew(dead, "default", "x", 1000), GH_EREDIS);
    gh_redis_free(dead);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_partition),
        cmocka_unit_test_setup(test_enqueue_dedupe, each),
        cmocka_unit_test_setup(test_enqueue_many, each),
        cmocka_unit_test_setup(test_pop_ack, each),
        cmocka_unit_test_setup(test_acks_with_take, each),
        cmocka_unit_test_setup(test_fail_retry_dead, each),
        cmocka_unit_test_setup(test_malformed_goes_dead, each),
        cmocka_unit_test_setup(test_dedupe_states, each),
        cmocka_unit_test_setup(test_delayed, each),
        cmocka_unit_test_setup(test_leases, each),
        cmocka_unit_test_setup(test_orphan_adopted, each),
        cmocka_unit_test(test_backoff),
        cmocka_unit_test_setup(test_stats_metrics, each),
        cmocka_unit_test(test_redis_down),
        cmocka_unit_test_setup(test_argument_guards, each),
        cmocka_unit_test_setup(test_job_field_types, each),
        cmocka_unit_test_setup(test_dead_unreadable_entries, each),
        cmocka_unit_test(test_redis_down_everywhere),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
