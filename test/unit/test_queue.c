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
    static const char *const kinds[] = {"ready", "processing", "dead"};
    char key[128];
    size_t i;

    for (i = 0; i < 3; i++) {
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

        assert_int_equal(gh_queue_pop(r, queue, 1, &job), GH_OK);
        assert_int_equal(job.attempt, attempt);
        assert_true(job.guild_id == 0);
        snprintf(err, sizeof(err), "boom %d", attempt);
        assert_int_equal(gh_queue_fail(r, queue, &job, 3, err), GH_OK);
        assert_int_equal(gh_queue_len(r, queue, "processing"), 0);
        assert_int_equal(gh_queue_len(r, queue, "ready"), attempt < 3 ? 1 : 0);
        if (attempt < 3) { /* requeued with the error */
            char ready[256];

            gh_key_queue(ready, sizeof(ready), gh_queue_partition(queue), queue, "ready");
            rep = gh_redis_cmd(r, "LINDEX %s 0", ready);
            assert_non_null(rep);
            assert_int_equal(rep->type, REDIS_REPLY_STRING);
            assert_non_null(strstr(rep->str, err));
            freeReplyObject(rep);
        }
        /* Failing a job that is no longer in processing does nothing. */
        assert_int_equal(gh_queue_fail(r, queue, &job, 3, "again"), GH_ENOTFOUND);
        gh_job_cleanup(&job);
    }
    assert_int_equal(gh_queue_len(r, queue, "dead"), 1);
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
    seen_key(id, key, sizeof(key));
    freeReplyObject(gh_redis_cmd(r, "DEL %s", key));
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

static void push_ready(const char *raw)
{
    char ready[256];

    gh_key_queue(ready, sizeof(ready), gh_queue_partition(queue), queue, "ready");
    freeReplyObject(gh_redis_cmd(r, "LPUSH %s %s", ready, raw));
}

/* Every field is checked: wrong types and impossible values are dead letters. */
static void test_malformed_fields(void **state)
{
    NEED_REDIS();
    static const char *const bad[] = {
        "[1,2]",
        "{\"id\":\"a\"}",
        "{\"id\":\"\",\"kind\":\"k\"}",
        "{\"id\":\"a\",\"kind\":\"k\",\"guild\":\"12x\"}",
        "{\"id\":\"a\",\"kind\":\"k\",\"guild\":-5}",
        "{\"id\":\"a\",\"kind\":\"k\",\"guild\":true}",
        "{\"id\":\"a\",\"kind\":\"k\",\"deadline_ms\":\"soon\"}",
        "{\"id\":\"a\",\"kind\":\"k\",\"enqueued_ms\":1.5}",
        "{\"id\":\"a\",\"kind\":\"k\",\"attempt\":\"2\"}",
    };
    struct gh_job job;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        push_ready(bad[i]);
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(gh_queue_pop(r, queue, 0, &job), GH_EJSON);
    assert_int_equal(gh_queue_len(r, queue, "dead"), (long long)(sizeof(bad) / sizeof(bad[0])));
    assert_int_equal(gh_queue_len(r, queue, "processing"), 0);
    /* Accepted shapes: numeric guild, null fields, an out-of-range attempt read as 1. */
    push_ready("{\"id\":\"ok1\",\"kind\":\"k\",\"guild\":77,\"attempt\":0,\"deadline_ms\":null}");
    assert_int_equal(gh_queue_pop(r, queue, 0, &job), GH_OK);
    assert_string_equal(job.id, "ok1");
    assert_int_equal(job.guild_id, 77);
    assert_int_equal(job.attempt, 1);
    assert_int_equal(job.deadline_ms, 0);
    assert_null(job.payload);
    assert_int_equal(gh_queue_ack(r, queue, &job), GH_OK);
    /* Acking twice: it is no longer in processing. */
    assert_int_equal(gh_queue_ack(r, queue, &job), GH_ENOTFOUND);
    assert_int_equal(gh_queue_fail(r, queue, &job, 3, "x"), GH_ENOTFOUND);
    gh_job_cleanup(&job);
    gh_job_cleanup(NULL);
}

static void test_argument_checks(void **state)
{
    NEED_REDIS();
    struct gh_job job;
    char longq[80], longkind[80];

    (void)state;
    memset(longq, 'q', sizeof(longq) - 1);
    longq[sizeof(longq) - 1] = '\0';
    memset(longkind, 'k', sizeof(longkind) - 1);
    longkind[sizeof(longkind) - 1] = '\0';
    assert_int_equal(gh_queue_enqueue(NULL, queue, "a", "k", 0, NULL, 0), GH_EINVAL);
    assert_int_equal(gh_queue_enqueue(r, "", "a", "k", 0, NULL, 0), GH_EINVAL);
    assert_int_equal(gh_queue_enqueue(r, NULL, "a", "k", 0, NULL, 0), GH_EINVAL);
    assert_int_equal(gh_queue_enqueue(r, longq, "a", "k", 0, NULL, 0), GH_EINVAL);
    assert_int_equal(gh_queue_enqueue(r, queue, "", "k", 0, NULL, 0), GH_EINVAL);
    assert_int_equal(gh_queue_enqueue(r, queue, "a\x7f", "k", 0, NULL, 0), GH_EINVAL);
    assert_int_equal(gh_queue_enqueue(r, queue, "a", longkind, 0, NULL, 0), GH_EINVAL);
    assert_int_equal(gh_queue_enqueue(r, queue, "a", "k", 0, NULL, -1), GH_EINVAL);
    assert_int_equal(gh_queue_pop(r, queue, -1, &job), GH_EINVAL);
    assert_int_equal(gh_queue_pop(r, queue, 3601, &job), GH_EINVAL);
    assert_int_equal(gh_queue_pop(r, queue, 0, NULL), GH_EINVAL);
    assert_int_equal(gh_queue_pop(r, "UPPER", 0, &job), GH_EINVAL);
    /* Empty queue, no wait: nothing ready. */
    assert_int_equal(gh_queue_pop(r, queue, 0, &job), GH_ENOTFOUND);
    memset(&job, 0, sizeof(job));
    assert_int_equal(gh_queue_ack(r, queue, &job), GH_EINVAL); /* never popped: no raw */
    assert_int_equal(gh_queue_ack(r, queue, NULL), GH_EINVAL);
    assert_int_equal(gh_queue_fail(r, queue, &job, 3, "x"), GH_EINVAL);
    job.raw = strdup("not json");
    assert_int_equal(gh_queue_fail(r, queue, &job, 0, "x"), GH_EINVAL);
    assert_int_equal(gh_queue_fail(r, queue, &job, 3, "x"), GH_EINVAL); /* raw is not a job */
    gh_job_cleanup(&job);
    assert_int_equal(gh_queue_len(NULL, queue, "ready"), -1);
    assert_int_equal(gh_queue_len(r, queue, NULL), -1);
    assert_int_equal(gh_job_expired(NULL, 1), 0);
}

static void test_wrong_key_type_is_redis_error(void **state)
{
    NEED_REDIS();
    struct gh_job job;
    char ready[256];

    (void)state;
    gh_key_queue(ready, sizeof(ready), gh_queue_partition(queue), queue, "ready");
    freeReplyObject(gh_redis_cmd(r, "SET %s notalist", ready));
    assert_int_equal(gh_queue_pop(r, queue, 0, &job), GH_EREDIS);
    assert_int_equal(gh_queue_pop(r, queue, 1, &job), GH_EREDIS);
    assert_int_equal(gh_queue_len(r, queue, "ready"), -1);
    freeReplyObject(gh_redis_cmd(r, "DEL %s", ready));
}

static void test_fail_default_error_text(void **state)
{
    NEED_REDIS();
    struct gh_job job;
    char dead[256];
    redisReply *rep;

    (void)state;
    push_ready("{\"id\":\"fe1\",\"kind\":\"k\",\"attempt\":2}");
    assert_int_equal(gh_queue_pop(r, queue, 0, &job), GH_OK);
    assert_int_equal(job.attempt, 2);
    assert_int_equal(gh_queue_fail(r, queue, &job, 2, NULL), GH_OK); /* last attempt: dead */
    gh_key_queue(dead, sizeof(dead), gh_queue_partition(queue), queue, "dead");
    rep = gh_redis_cmd(r, "LINDEX %s 0", dead);
    assert_non_null(rep);
    assert_int_equal(rep->type, REDIS_REPLY_STRING);
    assert_non_null(strstr(rep->str, "\"error\":\"failed\""));
    freeReplyObject(rep);
    gh_job_cleanup(&job);
}

static void test_ack_fail_redis_down(void **state)
{
    struct gh_redis *dead = gh_redis_new("redis://127.0.0.1:1/0", 100, NULL);
    struct gh_job job;

    (void)state;
    memset(&job, 0, sizeof(job));
    snprintf(job.id, sizeof(job.id), "x");
    snprintf(job.kind, sizeof(job.kind), "k");
    job.attempt = 1;
    job.raw = strdup("{\"id\":\"x\",\"kind\":\"k\"}");
    assert_int_equal(gh_queue_ack(dead, "default", &job), GH_EREDIS);
    assert_int_equal(gh_queue_fail(dead, "default", &job, 3, "boom"), GH_EREDIS);
    gh_job_cleanup(&job);
    assert_int_equal(gh_queue_pop(dead, "default", 0, &job), GH_EREDIS);
    assert_null(job.raw);
    gh_redis_free(dead);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_partition),
        cmocka_unit_test_setup(test_enqueue_dedupe, each),
        cmocka_unit_test_setup(test_pop_ack, each),
        cmocka_unit_test_setup(test_fail_retry_dead, each),
        cmocka_unit_test_setup(test_malformed_goes_dead, each),
        cmocka_unit_test(test_redis_down),
        cmocka_unit_test_setup(test_malformed_fields, each),
        cmocka_unit_test_setup(test_argument_checks, each),
        cmocka_unit_test_setup(test_wrong_key_type_is_redis_error, each),
        cmocka_unit_test_setup(test_fail_default_error_text, each),
        cmocka_unit_test(test_ack_fail_redis_down),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
