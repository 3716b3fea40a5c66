/* test_metrics.c - counters and histograms in Redis, Prometheus rendering.
 *
 * Tests that need Redis read REDIS_URL and skip without it. They use metric
 * names unique to the run and delete their own fields at the end, so they
 * neither see nor disturb the counters of a running stack. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/err.h"
#include "core/log.h"
#include "core/str.h"
#include "core/timeutil.h"
#include "store/redis.h"
#include "web/metrics.h"

struct fixture {
    struct gh_log_sink sink;
    struct gh_logger log;
    struct gh_redis *r;
    char tag[48]; /* unique to this run: every metric name contains it */
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    gh_log_sink_init(&f->sink, "test", GH_LOG_CRIT, NULL, 0, 0);
    gh_logger_init(&f->log, &f->sink, "test_metrics");
    snprintf(f->tag, sizeof(f->tag), "t%ld_%lld", (long)getpid(), (long long)gh_now_ms());
    const char *url = getenv("REDIS_URL");
    if (url && *url)
        f->r = gh_redis_new(url, 1000, &f->log);
    *state = f;
    return 0;
}

static void drop_fields(struct fixture *f)
{
    redisReply *keys = gh_redis_cmd(f->r, "HKEYS %s", GH_METRICS_KEY);
    if (keys && keys->type == REDIS_REPLY_ARRAY) {
        for (size_t i = 0; i < keys->elements; i++) {
            if (strstr(keys->element[i]->str, f->tag)) {
                redisReply *d = gh_redis_cmd(f->r, "HDEL %s %s", GH_METRICS_KEY, keys->element[i]->str);
                freeReplyObject(d);
            }
        }
    }
    freeReplyObject(keys);
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    if (f->r) {
        drop_fields(f);
        gh_redis_free(f->r);
    }
    gh_log_sink_cleanup(&f->sink);
    free(f);
    return 0;
}

#define NEED_REDIS(f)                                                                                        \
    do {                                                                                                     \
        if (!(f)->r) {                                                                                       \
            fprintf(stderr, "skipped: REDIS_URL is not set\n");                                              \
            skip();                                                                                          \
        }                                                                                                    \
    } while (0)

static char *render(struct gh_redis *r)
{
    struct gh_buf out;
    gh_buf_init(&out, 1 << 22);
    assert_int_equal(gh_metrics_render(r, &out), GH_OK);
    char *s = strdup(gh_buf_cstr(&out));
    gh_buf_cleanup(&out);
    return s;
}

static char *field_value(struct fixture *f, const char *field)
{
    redisReply *rep = gh_redis_cmd(f->r, "HGET %s %s", GH_METRICS_KEY, field);
    char *v = rep && rep->type == REDIS_REPLY_STRING ? strdup(rep->str) : NULL;
    freeReplyObject(rep);
    return v;
}

/* ---- no Redis ----------------------------------------------------------- */

static void test_names(void **state)
{
    (void)state;
    assert_true(gh_metrics_name_ok("gh_interactions_total"));
    assert_true(gh_metrics_name_ok("_x:y9"));
    assert_false(gh_metrics_name_ok("9abc"));
    assert_false(gh_metrics_name_ok("a b"));
    assert_false(gh_metrics_name_ok("a-b"));
    assert_false(gh_metrics_name_ok(""));
    assert_false(gh_metrics_name_ok(NULL));
}

static void test_render_without_redis(void **state)
{
    (void)state;
    gh_metrics_incr(NULL, "x_total", NULL, 1);        /* no-op, no crash */
    gh_metrics_observe(NULL, "x_seconds", NULL, 0.1); /* no-op, no crash */
    char *s = render(NULL);
    assert_string_equal(s, "# TYPE gh_up gauge\ngh_up 1\n# TYPE gh_redis_up gauge\ngh_redis_up 0\n");
    free(s);
}

static void test_redis_down_is_silent(void **state)
{
    struct fixture *f = *state;
    /* Port 1: nothing listens there. */
    struct gh_redis *down = gh_redis_new("redis://127.0.0.1:1/0", 100, &f->log);
    assert_non_null(down);
    int64_t t0 = gh_mono_ms();
    gh_metrics_incr(down, "gh_test_total", NULL, 1);
    gh_metrics_observe(down, "gh_test_seconds", NULL, 0.01);
    char *s = render(down);
    assert_non_null(strstr(s, "gh_up 1\n"));
    assert_non_null(strstr(s, "gh_redis_up 0\n"));
    free(s);
    assert_true(gh_mono_ms() - t0 < 2000);
    gh_redis_free(down);
}

static void test_batch_drops_past_its_capacity(void **state)
{
    (void)state;
    struct gh_metrics_batch b;
    gh_metrics_batch_init(&b);
    for (int i = 0; i < GH_METRICS_BATCH_MAX + 5; i++)
        gh_metrics_batch_incr(&b, "gh_x_total", NULL, 1);
    assert_int_equal(b.n, GH_METRICS_BATCH_MAX);
    /* An observation needs three slots: all or nothing. */
    gh_metrics_batch_init(&b);
    for (int i = 0; i < GH_METRICS_BATCH_MAX - 2; i++)
        gh_metrics_batch_incr(&b, "gh_x_total", NULL, 1);
    gh_metrics_batch_observe(&b, "gh_x_seconds", NULL, 0.5);
    assert_int_equal(b.n, GH_METRICS_BATCH_MAX - 2);
    /* Invalid names and labels are refused. */
    gh_metrics_batch_init(&b);
    gh_metrics_batch_incr(&b, "bad name", NULL, 1);
    gh_metrics_batch_incr(&b, "ok_total", "a=\"1\"}\nevil 1", 1);
    gh_metrics_batch_observe(&b, "9bad", NULL, 1);
    assert_int_equal(b.n, 0);
    gh_metrics_batch_flush(NULL, &b); /* no Redis: empties, no crash */
    assert_int_equal(b.n, 0);
}

/* ---- with Redis --------------------------------------------------------- */

static void test_counters(void **state)
{
    struct fixture *f = *state;
    NEED_REDIS(f);
    char name[96], field[160], line[512];
    snprintf(name, sizeof(name), "gh_test_%s_total", f->tag);

    gh_metrics_incr(f->r, name, "kind=\"a\"", 2);
    gh_metrics_incr(f->r, name, "kind=\"a\"", 3);
    gh_metrics_incr(f->r, name, "kind=\"b\"", 1);
    gh_metrics_incr(f->r, name, NULL, 5);
    gh_metrics_incr(f->r, "bad name", NULL, 1);

    snprintf(field, sizeof(field), "%s{kind=\"a\"}", name);
    char *v = field_value(f, field);
    assert_non_null(v);
    assert_string_equal(v, "5");
    free(v);

    char *s = render(f->r);
    snprintf(line, sizeof(line), "# TYPE %s counter\n%s 5\n%s{kind=\"a\"} 5\n%s{kind=\"b\"} 1\n", name, name,
             name, name);
    assert_non_null(strstr(s, line));
    /* One TYPE line per family. */
    snprintf(line, sizeof(line), "# TYPE %s ", name);
    const char *first = strstr(s, line);
    assert_non_null(first);
    assert_null(strstr(first + 1, line));
    assert_non_null(strstr(s, "gh_up 1\n# TYPE gh_redis_up gauge\ngh_redis_up 1\n"));
    free(s);
}

static void test_histogram(void **state)
{
    struct fixture *f = *state;
    NEED_REDIS(f);
    char name[96], want[2048], line[256];
    snprintf(name, sizeof(name), "gh_test_%s_seconds", f->tag);

    gh_metrics_observe(f->r, name, "type=\"x\"", 0.003);
    gh_metrics_observe(f->r, name, "type=\"x\"", 0.003);
    gh_metrics_observe(f->r, name, "type=\"x\"", 0.2);
    gh_metrics_observe(f->r, name, "type=\"x\"", 30.0); /* past the last bucket */
    gh_metrics_observe(f->r, name, NULL, 0.0005);

    /* Stored per bucket, not cumulative. */
    snprintf(line, sizeof(line), "%s_bucket{type=\"x\",le=\"0.005\"}", name);
    char *v = field_value(f, line);
    assert_non_null(v);
    assert_string_equal(v, "2");
    free(v);

    char *s = render(f->r);
    snprintf(line, sizeof(line), "# TYPE %s histogram\n", name);
    assert_non_null(strstr(s, line));

    /* The unlabelled series sorts first. */
    snprintf(want, sizeof(want), "%s_bucket{le=\"0.001\"} 1\n%s_bucket{le=\"0.0025\"} 1\n", name, name);
    assert_non_null(strstr(s, want));
    snprintf(want, sizeof(want), "%s_bucket{le=\"+Inf\"} 1\n%s_sum 0.0005\n%s_count 1\n", name, name, name);
    assert_non_null(strstr(s, want));

    static const char *const les[] = {"0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1",
                                      "0.25",  "0.5",    "1",     "2.5",  "5",     "10",   "+Inf"};
    static const int cum[] = {0, 0, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 4};
    size_t off = 0;
    for (size_t i = 0; i < sizeof(les) / sizeof(les[0]); i++) {
        int n = snprintf(want + off, sizeof(want) - off, "%s_bucket{type=\"x\",le=\"%s\"} %d\n", name, les[i],
                         cum[i]);
        off += (size_t)n;
    }
    snprintf(want + off, sizeof(want) - off, "%s_sum{type=\"x\"} 30.20", name);
    assert_non_null(strstr(s, want));
    snprintf(line, sizeof(line), "%s_count{type=\"x\"} 4\n", name);
    assert_non_null(strstr(s, line));
    free(s);
}

static void test_batch_flush(void **state)
{
    struct fixture *f = *state;
    NEED_REDIS(f);
    char a[96], h[96], field[160];
    snprintf(a, sizeof(a), "gh_test_%s_b_total", f->tag);
    snprintf(h, sizeof(h), "gh_test_%s_b_seconds", f->tag);

    struct gh_metrics_batch b;
    gh_metrics_batch_init(&b);
    gh_metrics_batch_incr(&b, a, "x=\"1\"", 4);
    gh_metrics_batch_incr(&b, a, "x=\"1\"", 6);
    gh_metrics_batch_observe(&b, h, NULL, 0.07);
    gh_metrics_batch_flush(f->r, &b);
    assert_int_equal(b.n, 0);

    snprintf(field, sizeof(field), "%s{x=\"1\"}", a);
    char *v = field_value(f, field);
    assert_non_null(v);
    assert_string_equal(v, "10");
    free(v);
    snprintf(field, sizeof(field), "%s_bucket{le=\"0.1\"}", h);
    v = field_value(f, field);
    assert_non_null(v);
    assert_string_equal(v, "1");
    free(v);
    snprintf(field, sizeof(field), "%s_count", h);
    v = field_value(f, field);
    assert_non_null(v);
    assert_string_equal(v, "1");
    free(v);
}

static void test_render_skips_junk_and_respects_cap(void **state)
{
    struct fixture *f = *state;
    NEED_REDIS(f);
    char field[160];
    /* A field another writer got wrong: not a number, or not a name. */
    snprintf(field, sizeof(field), "gh_test_%s_junk", f->tag);
    redisReply *r1 = gh_redis_cmd(f->r, "HSET %s %s notanumber", GH_METRICS_KEY, field);
    freeReplyObject(r1);
    snprintf(field, sizeof(field), "9%s{", f->tag);
    redisReply *r2 = gh_redis_cmd(f->r, "HSET %s %s 1", GH_METRICS_KEY, field);
    freeReplyObject(r2);
    char *s = render(f->r);
    assert_null(strstr(s, f->tag));
    free(s);

    struct gh_buf small;
    gh_buf_init(&small, 16);
    assert_int_equal(gh_metrics_render(f->r, &small), GH_ETOOBIG);
    gh_buf_cleanup(&small);
}

/* ---- deferred ------------------------------------------------------------ */

/* The table is process state shared by the tests of this binary: each test
 * leaves it empty when it has Redis (teardown deletes what it sent). */

static void test_defer_sums_and_flushes(void **state)
{
    struct fixture *f = *state;
    NEED_REDIS(f);
    char c[96], h[96], field[200];
    snprintf(c, sizeof(c), "gh_test_%s_d_total", f->tag);
    snprintf(h, sizeof(h), "gh_test_%s_d_seconds", f->tag);
    assert_int_equal(gh_metrics_flush(f->r), GH_OK);
    assert_int_equal(gh_metrics_pending(), 0);

    struct gh_metrics_batch b;
    for (int i = 0; i < 10; i++) {
        gh_metrics_batch_init(&b);
        gh_metrics_batch_incr(&b, c, "k=\"a\"", 2);
        gh_metrics_batch_observe(&b, h, NULL, i < 7 ? 0.003 : 0.2);
        gh_metrics_defer(f->r, &b);
        assert_int_equal(b.n, 0);
    }
    /* One counter series plus two buckets, sum and count. */
    assert_int_equal(gh_metrics_pending(), 5);
    snprintf(field, sizeof(field), "%s{k=\"a\"}", c);
    assert_null(field_value(f, field)); /* nothing sent yet */

    /* Not due right after the flush above; due a period later. */
    int64_t now = gh_mono_ms();
    assert_int_equal(gh_metrics_flush_due(f->r, now), 0);
    assert_int_equal(gh_metrics_pending(), 5);
    assert_int_equal(gh_metrics_flush_due(f->r, now + GH_METRICS_FLUSH_MS), 1);
    assert_int_equal(gh_metrics_pending(), 0);
    assert_int_equal(gh_metrics_flush_due(f->r, now + 10 * GH_METRICS_FLUSH_MS), 0); /* nothing left */

    char *v = field_value(f, field);
    assert_non_null(v);
    assert_string_equal(v, "20");
    free(v);
    snprintf(field, sizeof(field), "%s_bucket{le=\"0.005\"}", h);
    v = field_value(f, field);
    assert_non_null(v);
    assert_string_equal(v, "7");
    free(v);
    snprintf(field, sizeof(field), "%s_bucket{le=\"0.25\"}", h);
    v = field_value(f, field);
    assert_non_null(v);
    assert_string_equal(v, "3");
    free(v);
    snprintf(field, sizeof(field), "%s_count", h);
    v = field_value(f, field);
    assert_non_null(v);
    assert_string_equal(v, "10");
    free(v);
    snprintf(field, sizeof(field), "%s_sum", h);
    v = field_value(f, field);
    assert_non_null(v);
    assert_true(strtod(v, NULL) > 0.620 && strtod(v, NULL) < 0.622); /* 7 x 0.003 + 3 x 0.2 */
    free(v);

    /* A second round adds to what Redis holds. */
    gh_metrics_batch_init(&b);
    gh_metrics_batch_incr(&b, c, "k=\"a\"", 5);
    gh_metrics_defer(f->r, &b);
    assert_int_equal(gh_metrics_flush(f->r), GH_OK);
    snprintf(field, sizeof(field), "%s{k=\"a\"}", c);
    v = field_value(f, field);
    assert_non_null(v);
    assert_string_equal(v, "25");
    free(v);
}

static void test_defer_keeps_sums_while_redis_is_down(void **state)
{
    struct fixture *f = *state;
    NEED_REDIS(f);
    char c[96], field[200];
    snprintf(c, sizeof(c), "gh_test_%s_k_total", f->tag);
    assert_int_equal(gh_metrics_flush(f->r), GH_OK);

    struct gh_redis *down = gh_redis_new("redis://127.0.0.1:1/0", 100, &f->log);
    assert_non_null(down);
    struct gh_metrics_batch b;
    gh_metrics_batch_init(&b);
    gh_metrics_batch_incr(&b, c, NULL, 3);
    gh_metrics_defer(down, &b);
    assert_int_equal(gh_metrics_flush(down), GH_EREDIS);
    assert_int_equal(gh_metrics_flush(NULL), GH_EREDIS);
    assert_int_equal(gh_metrics_pending(), 1); /* kept */
    gh_metrics_batch_init(&b);
    gh_metrics_batch_incr(&b, c, NULL, 4);
    gh_metrics_defer(down, &b);
    gh_redis_free(down);

    assert_int_equal(gh_metrics_flush(f->r), GH_OK);
    assert_int_equal(gh_metrics_pending(), 0);
    snprintf(field, sizeof(field), "%s", c);
    char *v = field_value(f, field);
    assert_non_null(v);
    assert_string_equal(v, "7");
    free(v);
}

static void test_defer_table_capacity(void **state)
{
    struct fixture *f = *state;
    NEED_REDIS(f);
    char name[160], h[96];
    snprintf(h, sizeof(h), "gh_test_%s_cap_seconds", f->tag);
    assert_int_equal(gh_metrics_flush(f->r), GH_OK);

    /* Filled up without Redis: a histogram's three new series do not fit
     * and are dropped together; existing series still add up. */
    struct gh_metrics_batch b;
    for (int i = 0; i < GH_METRICS_PENDING_MAX; i++) {
        snprintf(name, sizeof(name), "gh_test_%s_cap%d_total", f->tag, i);
        gh_metrics_batch_init(&b);
        gh_metrics_batch_incr(&b, name, NULL, 1);
        gh_metrics_defer(NULL, &b);
    }
    assert_int_equal(gh_metrics_pending(), GH_METRICS_PENDING_MAX);
    gh_metrics_batch_init(&b);
    gh_metrics_batch_observe(&b, h, NULL, 0.01);
    gh_metrics_defer(NULL, &b);
    assert_int_equal(b.n, 0);
    assert_int_equal(gh_metrics_pending(), GH_METRICS_PENDING_MAX);
    snprintf(name, sizeof(name), "gh_test_%s_cap0_total", f->tag);
    gh_metrics_batch_init(&b);
    gh_metrics_batch_incr(&b, name, NULL, 41);
    gh_metrics_defer(NULL, &b);
    assert_int_equal(gh_metrics_pending(), GH_METRICS_PENDING_MAX);

    /* With Redis a full table is sent first, and the new batch fits. */
    gh_metrics_batch_init(&b);
    gh_metrics_batch_observe(&b, h, NULL, 0.01);
    gh_metrics_defer(f->r, &b);
    assert_int_equal(gh_metrics_pending(), 3);
    char *v = field_value(f, name);
    assert_non_null(v);
    assert_string_equal(v, "42");
    free(v);
    snprintf(name, sizeof(name), "gh_test_%s_cap%d_total", f->tag, GH_METRICS_PENDING_MAX - 1);
    v = field_value(f, name);
    assert_non_null(v);
    assert_string_equal(v, "1");
    free(v);
    assert_int_equal(gh_metrics_flush(f->r), GH_OK);
    snprintf(name, sizeof(name), "%s_count", h);
    v = field_value(f, name);
    assert_non_null(v);
    assert_string_equal(v, "1");
    free(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_render_without_redis),
        cmocka_unit_test_setup_teardown(test_redis_down_is_silent, setup, teardown),
        cmocka_unit_test(test_batch_drops_past_its_capacity),
        cmocka_unit_test_setup_teardown(test_counters, setup, teardown),
        cmocka_unit_test_setup_teardown(test_histogram, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_flush, setup, teardown),
        cmocka_unit_test_setup_teardown(test_render_skips_junk_and_respects_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_defer_sums_and_flushes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_defer_keeps_sums_while_redis_is_down, setup, teardown),
        cmocka_unit_test_setup_teardown(test_defer_table_capacity, setup, teardown),
    };
    return cmocka_run_group_tests_name("metrics", tests, NULL, NULL);
}
