/* test_gw_state.c - gateway-lite's Redis state (lib/gateway/gwstate.c):
 * leases (take, renew, refuse another owner, release only our own),
 * sessions (save, seq update, TTL, load, delete), identify locks, the shard
 * status hash. Needs REDIS_URL (the test stack's); uses database 11. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/err.h"
#include "core/log.h"
#include "gateway/gwstate.h"
#include "store/redis.h"

static struct gh_log_sink sink;
static struct gh_logger lg;
static struct gh_redis *r;

static int setup(void **state)
{
    const char *url = getenv("REDIS_URL");
    char u[256];
    (void)state;
    if (gh_log_sink_init(&sink, "test_gw_state", GH_LOG_WARN, NULL, 0, 0) != GH_OK)
        return -1;
    gh_logger_init(&lg, &sink, "gw");
    if (url && *url) {
        const char *hostpart = strstr(url, "://");
        const char *slash = strchr(hostpart ? hostpart + 3 : url, '/');
        int n = slash ? (int)(slash - url) : (int)strlen(url);
        snprintf(u, sizeof(u), "%.*s/11", n, url);
        r = gh_redis_new(u, 1000, &lg);
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    gh_redis_free(r);
    gh_log_sink_cleanup(&sink);
    return 0;
}

#define NEED_REDIS()                                                                                         \
    do {                                                                                                     \
        if (!r) {                                                                                            \
            print_message("REDIS_URL is not set: skipped\n");                                                \
            skip();                                                                                          \
        }                                                                                                    \
        freeReplyObject(gh_redis_cmd(r, "FLUSHDB"));                                                         \
    } while (0)

static long long ttl_ms(const char *key)
{
    redisReply *rep = gh_redis_cmd(r, "PTTL %s", key);
    long long v = rep && rep->type == REDIS_REPLY_INTEGER ? rep->integer : -9;
    freeReplyObject(rep);
    return v;
}

static void leases(void **state)
{
    char holder[64];
    (void)state;
    NEED_REDIS();
    assert_int_equal(gh_gwstate_lease(r, 4, "host:1", holder, sizeof(holder)), 1);
    assert_string_equal(holder, "host:1");
    long long t = ttl_ms("bot:{global}:gateway:lease:4");
    assert_true(t > 14000 && t <= GH_GW_LEASE_TTL_MS);
    /* another owner is refused and told who holds it */
    assert_int_equal(gh_gwstate_lease(r, 4, "host:2", holder, sizeof(holder)), 0);
    assert_string_equal(holder, "host:1");
    /* renewal by the owner */
    freeReplyObject(gh_redis_cmd(r, "PEXPIRE %s 1000", "bot:{global}:gateway:lease:4"));
    assert_int_equal(gh_gwstate_lease(r, 4, "host:1", NULL, 0), 1);
    assert_true(ttl_ms("bot:{global}:gateway:lease:4") > 14000);
    /* release only by the owner */
    assert_int_equal(gh_gwstate_lease_release(r, 4, "host:2"), GH_OK);
    assert_int_equal(gh_gwstate_lease(r, 4, "host:2", NULL, 0), 0);
    assert_int_equal(gh_gwstate_lease_release(r, 4, "host:1"), GH_OK);
    /* a lapsed (or released) lease is taken over */
    assert_int_equal(gh_gwstate_lease(r, 4, "host:2", holder, sizeof(holder)), 1);
    assert_string_equal(holder, "host:2");
    /* the first owner's renewal now fails: it must stop */
    assert_int_equal(gh_gwstate_lease(r, 4, "host:1", holder, sizeof(holder)), 0);
    assert_string_equal(holder, "host:2");
}

static void sessions(void **state)
{
    struct gh_gw_session s = {.session_id = "abc123", .resume_url = "wss://resume.example", .seq = 41}, out;
    (void)state;
    NEED_REDIS();
    assert_int_equal(gh_gwstate_session_load(r, 2, &out), 0);
    assert_int_equal(gh_gwstate_session_save(r, 2, &s), GH_OK);
    long long t = ttl_ms("bot:{global}:gateway:session:2");
    assert_true(t > GH_GW_SESSION_TTL_MS - 5000 && t <= GH_GW_SESSION_TTL_MS);
    freeReplyObject(gh_redis_cmd(r, "PEXPIRE %s 1000", "bot:{global}:gateway:session:2"));
    assert_int_equal(gh_gwstate_session_seq(r, 2, 99), GH_OK);
    assert_true(ttl_ms("bot:{global}:gateway:session:2") > GH_GW_SESSION_TTL_MS - 5000);
    assert_int_equal(gh_gwstate_session_load(r, 2, &out), 1);
    assert_string_equal(out.session_id, "abc123");
    assert_string_equal(out.resume_url, "wss://resume.example");
    assert_int_equal(out.seq, 99);
    assert_int_equal(gh_gwstate_session_delete(r, 2), GH_OK);
    assert_int_equal(gh_gwstate_session_load(r, 2, &out), 0);
}

static void identify_lock(void **state)
{
    (void)state;
    NEED_REDIS();
    assert_int_equal(gh_gwstate_identify_lock(r, 0), 1);
    assert_int_equal(gh_gwstate_identify_lock(r, 0), 0);
    assert_int_equal(gh_gwstate_identify_lock(r, 1), 1);
    long long t = ttl_ms("bot:{global}:gateway:identify:0");
    assert_true(t > 4000 && t <= GH_GW_IDENTIFY_LOCK_MS);
    /* restarted when the IDENTIFY goes out */
    assert_int_equal(gh_gwstate_identify_extend(r, 0, 5500), GH_OK);
    t = ttl_ms("bot:{global}:gateway:identify:0");
    assert_true(t > 5000 && t <= 5500);
    assert_int_equal(gh_gwstate_identify_lock(r, 0), 0);
}

static void status_hash(void **state)
{
    struct gh_gw_field f[3] = {{.name = "state", .value = "ready"},
                               {.name = "guilds", .value = "12"},
                               {.name = "owner", .value = "h:1"}};
    (void)state;
    NEED_REDIS();
    assert_int_equal(gh_gwstate_status(r, 7, f, 3), GH_OK);
    redisReply *h = gh_redis_cmd(r, "HMGET %s state guilds owner", "bot:{global}:shards:7");
    assert_non_null(h);
    assert_int_equal(h->elements, 3);
    assert_string_equal(h->element[0]->str, "ready");
    assert_string_equal(h->element[1]->str, "12");
    assert_string_equal(h->element[2]->str, "h:1");
    freeReplyObject(h);
    long long t = ttl_ms("bot:{global}:shards:7");
    assert_true(t > 55000 && t <= 60000);
    redisReply *m = gh_redis_cmd(r, "SISMEMBER %s 7", "bot:{global}:shards");
    assert_int_equal(m->integer, 1);
    freeReplyObject(m);
}

static void redis_down(void **state)
{
    struct gh_redis *dead = gh_redis_new("redis://127.0.0.1:1", 200, &lg);
    struct gh_gw_session s = {.session_id = "x", .seq = 1}, out;
    struct gh_gw_field f[1] = {{.name = "state", .value = "ready"}};
    (void)state;
    assert_int_equal(gh_gwstate_lease(dead, 0, "o", NULL, 0), GH_EREDIS);
    assert_int_equal(gh_gwstate_session_save(dead, 0, &s), GH_EREDIS);
    assert_int_equal(gh_gwstate_session_load(dead, 0, &out), GH_EREDIS);
    assert_int_equal(gh_gwstate_identify_lock(dead, 0), GH_EREDIS);
    assert_int_equal(gh_gwstate_status(dead, 0, f, 1), GH_EREDIS);
    gh_redis_free(dead);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(leases),      cmocka_unit_test(sessions),   cmocka_unit_test(identify_lock),
        cmocka_unit_test(status_hash), cmocka_unit_test(redis_down),
    };
    return cmocka_run_group_tests_name("gw_state", tests, setup, teardown);
}
