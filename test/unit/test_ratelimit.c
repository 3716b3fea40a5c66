/* test_ratelimit.c - the rate-limit state without Redis (the process-local
 * table): header parsing, route keys, the global 50/s limit, learned
 * buckets, 429 waits, the invalid-request budget and the stop flag. Redis-
 * backed sharing is covered through the REST client in test_rest.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "core/err.h"
#include "discord/ratelimit.h"

#define NOW 1700000000000LL /* a fixed epoch ms, at the start of a second */

static void feed(struct gh_rl_headers *h, const char *line)
{
    gh_ratelimit_header(h, line, strlen(line));
}

static void test_header_parsing(void **state)
{
    struct gh_rl_headers h;

    (void)state;
    memset(&h, 0, sizeof(h));
    feed(&h, "X-RateLimit-Bucket: abcd1234\r\n");
    feed(&h, "x-ratelimit-remaining: 4\r\n");
    feed(&h, "X-RateLimit-Reset: 1700000001.5\r\n");
    feed(&h, "X-RateLimit-Reset-After: 1.25\r\n");
    feed(&h, "X-RateLimit-Global: TRUE\r\n");
    feed(&h, "X-RateLimit-Scope: a-very-long-scope-name\r\n");
    feed(&h, "Retry-After: 3\r\n");
    assert_true(h.has_bucket);
    assert_string_equal(h.bucket, "abcd1234");
    assert_true(h.has_remaining);
    assert_int_equal(h.remaining, 4);
    assert_true(h.has_reset);
    assert_true(h.reset > 1700000001.4 && h.reset < 1700000001.6);
    assert_true(h.has_reset_after);
    assert_true(h.global);
    assert_int_equal(strlen(h.scope), sizeof(h.scope) - 1); /* cut, never overflowing */
    assert_true(h.has_retry_after);
    /* A status line starts the next response from nothing. */
    feed(&h, "HTTP/1.1 429 Too Many Requests\r\n");
    assert_false(h.has_bucket);
    assert_false(h.global);
    /* Unusable values are ignored. */
    feed(&h, "X-RateLimit-Bucket: bad bucket;\r\n");
    feed(&h, "X-RateLimit-Remaining: many\r\n");
    feed(&h, "X-RateLimit-Reset-After: -1\r\n");
    feed(&h, "X-RateLimit-Reset: 1e13\r\n");
    feed(&h, "Retry-After: \r\n");
    feed(&h, "X-RateLimit-Global: false\r\n");
    feed(&h, "no colon here\r\n");
    assert_false(h.has_bucket);
    assert_false(h.has_remaining);
    assert_false(h.has_reset_after);
    assert_false(h.has_reset);
    assert_false(h.has_retry_after);
    assert_false(h.global);
    gh_ratelimit_header(NULL, "x", 1);
    gh_ratelimit_header(&h, NULL, 0);
}

static void test_route_errors(void **state)
{
    struct gh_rl_route r;
    char method[300], path[2000];
    size_t o = 0;

    (void)state;
    assert_int_equal(gh_ratelimit_route(NULL, "/x", &r), GH_EINVAL);
    assert_int_equal(gh_ratelimit_route("GET", NULL, &r), GH_EINVAL);
    assert_int_equal(gh_ratelimit_route("GET", "x", &r), GH_EINVAL);
    assert_int_equal(gh_ratelimit_route("GET", "/x", NULL), GH_EINVAL);
    memset(method, 'M', sizeof(method) - 1);
    method[sizeof(method) - 1] = '\0';
    assert_int_equal(gh_ratelimit_route(method, "/x", &r), GH_ETOOBIG);
    while (o + 8 < sizeof(path))
        o += (size_t)snprintf(path + o, sizeof(path) - o, "/seg%03zu", o);
    assert_int_equal(gh_ratelimit_route("GET", path, &r), GH_ETOOBIG);
    /* The query is not part of the route. */
    assert_int_equal(gh_ratelimit_route("GET", "/guilds/123/members?limit=5", &r), GH_OK);
    assert_null(strchr(r.key, '?'));
    assert_string_equal(r.major, "guilds/123");
}

static void test_global_limit_local(void **state)
{
    struct gh_ratelimit *rl = gh_ratelimit_new(NULL, "token-one");
    struct gh_rl_route r, cb;
    char why[200], path[64];
    int i;

    (void)state;
    assert_non_null(rl);
    for (i = 0; i < GH_RL_GLOBAL_PER_S; i++) {
        snprintf(path, sizeof(path), "/channels/%d/messages", 1000 + i);
        assert_int_equal(gh_ratelimit_route("POST", path, &r), GH_OK);
        assert_int_equal(gh_ratelimit_acquire(rl, &r, NOW + 10, why, sizeof(why)), 0);
    }
    assert_int_equal(gh_ratelimit_route("POST", "/channels/1/messages", &r), GH_OK);
    assert_int_equal(gh_ratelimit_acquire(rl, &r, NOW + 10, why, sizeof(why)), 990);
    assert_non_null(strstr(why, "global limit of 50 requests/s reached"));
    /* Interaction callbacks do not count against it. */
    assert_int_equal(gh_ratelimit_route("POST", "/interactions/1/tok/callback", &cb), GH_OK);
    assert_true(cb.global_exempt);
    assert_int_equal(gh_ratelimit_acquire(rl, &cb, NOW + 10, why, sizeof(why)), 0);
    /* The next second starts over. */
    assert_int_equal(gh_ratelimit_acquire(rl, &r, NOW + 1000, why, sizeof(why)), 0);
    assert_string_equal(why, "");
    assert_int_equal(gh_ratelimit_acquire(NULL, &r, NOW, why, sizeof(why)), 0);
    assert_int_equal(gh_ratelimit_acquire(rl, NULL, NOW, NULL, 0), 0);
    gh_ratelimit_free(rl);
    gh_ratelimit_free(NULL);
}

static void test_learned_bucket_and_429(void **state)
{
    struct gh_ratelimit *rl = gh_ratelimit_new(NULL, "token-two");
    struct gh_rl_route a, b;
    struct gh_rl_headers h;
    char why[200];

    (void)state;
    assert_int_equal(gh_ratelimit_route("PATCH", "/channels/5/messages/77", &a), GH_OK);
    assert_int_equal(gh_ratelimit_route("DELETE", "/channels/5/messages/78", &b), GH_OK);
    /* Both routes share bucket "shared1"; it has nothing left for 2 s. */
    memset(&h, 0, sizeof(h));
    feed(&h, "X-RateLimit-Bucket: shared1\r\n");
    feed(&h, "X-RateLimit-Remaining: 0\r\n");
    feed(&h, "X-RateLimit-Reset-After: 2\r\n");
    gh_ratelimit_learn(rl, &a, &h, NOW);
    gh_ratelimit_learn(rl, &b, &h, NOW);
    assert_int_equal(gh_ratelimit_acquire(rl, &b, NOW + 500, why, sizeof(why)), 1500);
    assert_non_null(strstr(why, "exhausted, resets in 1.500 s"));
    assert_int_equal(gh_ratelimit_acquire(rl, &a, NOW + 2001, why, sizeof(why)), 0);
    /* A reset in the past teaches nothing. */
    memset(&h, 0, sizeof(h));
    feed(&h, "X-RateLimit-Remaining: 0\r\n");
    feed(&h, "X-RateLimit-Reset: 1600000000\r\n");
    gh_ratelimit_learn(rl, &a, &h, NOW + 3000);
    assert_int_equal(gh_ratelimit_acquire(rl, &a, NOW + 3001, why, sizeof(why)), 0);
    gh_ratelimit_learn(rl, &a, NULL, NOW);
    /* A route 429 waits on its bucket; a global one on everything. */
    gh_ratelimit_on_429(rl, &a, NULL, 0.25, 0, NOW + 4000);
    assert_int_equal(gh_ratelimit_acquire(rl, &a, NOW + 4000, why, sizeof(why)), 250);
    gh_ratelimit_on_429(rl, &a, NULL, 0.0, 1, NOW + 5000);
    assert_int_equal(gh_ratelimit_acquire(rl, &b, NOW + 5000, why, sizeof(why)), 1);
    assert_non_null(strstr(why, "global rate limit hit (429)"));
    gh_ratelimit_on_429(NULL, &a, NULL, 1.0, 1, NOW);
    gh_ratelimit_free(rl);
}

static void test_invalid_budget_and_stop(void **state)
{
    struct gh_ratelimit *rl = gh_ratelimit_new(NULL, "token-three");
    struct gh_rl_route r;
    char why[300];
    long long n = 0;
    int64_t wait;

    (void)state;
    assert_int_equal(gh_ratelimit_route("GET", "/channels/9", &r), GH_OK);
    for (int i = 0; i < GH_RL_INVALID_STOP; i++)
        n = gh_ratelimit_count_invalid(rl, NOW);
    assert_int_equal(n, GH_RL_INVALID_STOP);
    wait = gh_ratelimit_acquire(rl, &r, NOW, why, sizeof(why));
    assert_true(wait > 0 && wait <= (int64_t)GH_RL_INVALID_WINDOW_S * 1000);
    assert_non_null(strstr(why, "invalid request budget exhausted"));
    assert_int_equal(gh_ratelimit_count_invalid(NULL, NOW), 0);
    assert_false(gh_ratelimit_stopped(rl));
    gh_ratelimit_stop(rl);
    assert_true(gh_ratelimit_stopped(rl));
    gh_ratelimit_stop(NULL);
    assert_false(gh_ratelimit_stopped(NULL));
    gh_ratelimit_free(rl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_header_parsing),          cmocka_unit_test(test_route_errors),
        cmocka_unit_test(test_global_limit_local),      cmocka_unit_test(test_learned_bucket_and_429),
        cmocka_unit_test(test_invalid_budget_and_stop),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
