/* test_redis.c - the Redis connection: URL parsing, key builders, SELECT db,
 * reconnect after CLIENT KILL, the 250 ms back-off when Redis is down,
 * pipelining, per-command timeouts. Needs REDIS_URL for the live tests. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/err.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "store/redis.h"

static struct gh_log_sink sink;
static struct gh_logger lg;

#define NEED_REDIS()                                                                                         \
    const char *url = getenv("REDIS_URL");                                                                   \
    do {                                                                                                     \
        if (!url || !*url) {                                                                                 \
            print_message("REDIS_URL is not set: Redis tests skipped\n");                                    \
            skip();                                                                                          \
        }                                                                                                    \
    } while (0)

static int setup(void **state)
{
    (void)state;
    if (gh_log_sink_init(&sink, "test_redis", GH_LOG_WARN, NULL, 0, 0) != GH_OK)
        return -1;
    gh_logger_init(&lg, &sink, "redis");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    gh_log_sink_cleanup(&sink);
    return 0;
}

/* REDIS_URL with its database number replaced by db. */
static void url_with_db(const char *url, int db, char *out, size_t size)
{
    const char *hostpart = strstr(url, "://");
    const char *slash = strchr(hostpart ? hostpart + 3 : url, '/');
    int n = slash ? (int)(slash - url) : (int)strlen(url);

    snprintf(out, size, "%.*s/%d", n, url, db);
}

static void test_key_builders(void **state)
{
    char k[64], small[12];

    (void)state;
    assert_int_equal(gh_key_guild(k, sizeof(k), 123456789012345678ULL, "settings", "%s", "core"), GH_OK);
    assert_string_equal(k, "bot:{123456789012345678}:settings:core");
    assert_int_equal(gh_key_guild(k, sizeof(k), 7, "levels", "xp:%d", 42), GH_OK);
    assert_string_equal(k, "bot:{7}:levels:xp:42");
    assert_int_equal(gh_key_global(k, sizeof(k), "shards", "%d", 3), GH_OK);
    assert_string_equal(k, "bot:{global}:shards:3");
    assert_int_equal(gh_key_queue(k, sizeof(k), 2, "default", "ready"), GH_OK);
    assert_string_equal(k, "bot:{q2}:jobs:default:ready");
    /* Truncation is an error and leaves an empty key, never a prefix. */
    assert_int_equal(gh_key_guild(small, sizeof(small), 1, "settings", "%s", "core"), GH_ETOOBIG);
    assert_string_equal(small, "");
    assert_int_equal(gh_key_global(small, sizeof(small), "cmdlog", "pending"), GH_ETOOBIG);
    assert_int_equal(gh_key_queue(small, sizeof(small), 0, "default", "ready"), GH_ETOOBIG);
    assert_int_equal(gh_key_queue(k, sizeof(k), -1, "default", "ready"), GH_EINVAL);
}

static void test_url_parsing(void **state)
{
    struct gh_redis *r;

    (void)state;
    assert_null(gh_redis_new("http://127.0.0.1:6379", 100, &lg));
    assert_null(gh_redis_new("redis://", 100, &lg));
    assert_null(gh_redis_new("redis://host:notaport/0", 100, &lg));
    assert_null(gh_redis_new("redis://host:6379/x", 100, &lg));
    assert_null(gh_redis_new("redis://host:70000", 100, &lg));
    r = gh_redis_new("redis://localhost", 100, &lg);
    assert_non_null(r);
    assert_null(gh_redis_ctx(r)); /* lazy */
    gh_redis_free(r);
    r = gh_redis_new("redis://:secret@[::1]:6380/2", 100, &lg);
    assert_non_null(r);
    gh_redis_free(r);
    gh_redis_free(NULL);
}

static void test_select_db(void **state)
{
    NEED_REDIS();
    char u[300];
    struct gh_redis *r;
    redisReply *rep;

    (void)state;
    url_with_db(url, 7, u, sizeof(u));
    r = gh_redis_new(u, 500, &lg);
    assert_non_null(r);
    rep = gh_redis_cmd(r, "CLIENT INFO");
    assert_non_null(rep);
    assert_int_equal(rep->type, REDIS_REPLY_STRING);
    assert_non_null(strstr(rep->str, " db=7 "));
    freeReplyObject(rep);
    assert_int_equal(gh_redis_ping(r), GH_OK);
    gh_redis_free(r);
}

static void test_reconnect_after_client_kill(void **state)
{
    NEED_REDIS();
    struct gh_redis *r = gh_redis_new(url, 500, &lg), *killer = gh_redis_new(url, 500, &lg);
    redisReply *rep;
    long long id1, id2;
    char key[64];

    (void)state;
    snprintf(key, sizeof(key), "bot:{global}:test:redis:%d", (int)getpid());
    rep = gh_redis_cmd(r, "CLIENT ID");
    assert_non_null(rep);
    id1 = rep->integer;
    freeReplyObject(rep);
    rep = gh_redis_cmd(killer, "CLIENT KILL ID %lld", id1);
    assert_non_null(rep);
    assert_int_equal(rep->type, REDIS_REPLY_INTEGER);
    assert_int_equal(rep->integer, 1);
    freeReplyObject(rep);
    /* The very next command works, on a new connection. */
    rep = gh_redis_cmd(r, "SET %s v EX 60", key);
    assert_non_null(rep);
    assert_int_equal(rep->type, REDIS_REPLY_STATUS);
    freeReplyObject(rep);
    rep = gh_redis_cmd(r, "CLIENT ID");
    assert_non_null(rep);
    id2 = rep->integer;
    freeReplyObject(rep);
    assert_true(id2 != id1);
    rep = gh_redis_cmd(killer, "GET %s", key);
    assert_non_null(rep);
    assert_string_equal(rep->str, "v");
    freeReplyObject(rep);
    freeReplyObject(gh_redis_cmd(killer, "DEL %s", key));
    gh_redis_free(r);
    gh_redis_free(killer);
}

static void test_down_backs_off(void **state)
{
    struct gh_redis *r = gh_redis_new("redis://127.0.0.1:1/0", 200, &lg);
    int64_t t0;
    int i;

    (void)state;
    assert_non_null(r);
    assert_null(gh_redis_cmd(r, "PING"));
    assert_null(gh_redis_ctx(r));
    /* Within the back-off window no connect is attempted: fast NULLs. */
    t0 = gh_mono_ms();
    for (i = 0; i < 1000; i++)
        assert_null(gh_redis_cmd(r, "PING"));
    assert_true(gh_mono_ms() - t0 < 200);
    assert_int_equal(gh_redis_ping(r), GH_EREDIS);
    assert_int_equal(gh_redis_append(r, "PING"), GH_EREDIS);
    assert_null(gh_redis_get_reply(r));
    gh_redis_free(r);
}

static void test_pipeline(void **state)
{
    NEED_REDIS();
    struct gh_redis *r = gh_redis_new(url, 500, &lg);
    char key[64];
    redisReply *rep;

    (void)state;
    snprintf(key, sizeof(key), "bot:{global}:test:pipe:%d", (int)getpid());
    assert_int_equal(gh_redis_append(r, "DEL %s", key), GH_OK);
    assert_int_equal(gh_redis_append(r, "INCRBY %s 5", key), GH_OK);
    assert_int_equal(gh_redis_append(r, "EXPIRE %s 60", key), GH_OK);
    rep = gh_redis_get_reply(r);
    assert_non_null(rep);
    freeReplyObject(rep);
    rep = gh_redis_get_reply(r);
    assert_non_null(rep);
    assert_int_equal(rep->integer, 5);
    freeReplyObject(rep);
    rep = gh_redis_get_reply(r);
    assert_non_null(rep);
    assert_int_equal(rep->integer, 1);
    freeReplyObject(rep);
    assert_null(gh_redis_get_reply(r)); /* nothing pending */
    /* An error reply is a reply, not NULL. */
    rep = gh_redis_cmd(r, "LPUSH %s x", key);
    assert_non_null(rep);
    assert_int_equal(rep->type, REDIS_REPLY_ERROR);
    freeReplyObject(rep);
    freeReplyObject(gh_redis_cmd(r, "DEL %s", key));
    gh_redis_free(r);
}

/* Commands built in wire format (gh_rcmd): keys as gh_key_guild builds them,
 * numbers, binary-safe strings, a reused builder; a malformed one (argc not
 * as announced) is refused and its reply reads as NULL. */
static void test_rcmd(void **state)
{
    NEED_REDIS();
    struct gh_redis *r = gh_redis_new(url, 500, &lg);
    struct gh_rcmd c;
    char key[128];
    redisReply *rep;
    const char bin[] = {'a', ' ', '\0', '\r', '\n', 'b'};

    (void)state;
    memset(&c, 0, sizeof(c));
    assert_int_equal(gh_key_guild(key, sizeof(key), 18446744073709551615ull, "test", "rc:%d", getpid()),
                     GH_OK);
    gh_rcmd_begin(&c, 5);
    gh_rcmd_cstr(&c, "SET");
    gh_rcmd_key_guild(&c, 18446744073709551615ull, "test", "rc:", (uint64_t)getpid());
    gh_rcmd_str(&c, bin, sizeof(bin));
    gh_rcmd_cstr(&c, "EX");
    gh_rcmd_i64(&c, 60);
    assert_int_equal(gh_redis_append_rcmd(r, &c), GH_OK);
    gh_rcmd_begin(&c, 3); /* reused */
    gh_rcmd_cstr(&c, "INCRBY");
    gh_rcmd_key_guild(&c, 7, "test", "n", 0);
    gh_rcmd_i64(&c, -12345678901234LL);
    assert_int_equal(gh_redis_append_rcmd(r, &c), GH_OK);
    rep = gh_redis_get_reply(r);
    assert_non_null(rep);
    assert_int_equal(rep->type, REDIS_REPLY_STATUS);
    freeReplyObject(rep);
    rep = gh_redis_get_reply(r);
    assert_non_null(rep);
    assert_int_equal(rep->type, REDIS_REPLY_INTEGER);
    assert_true(rep->integer <= -12345678901234LL);
    freeReplyObject(rep);
    rep = gh_redis_cmd(r, "GET %s", key); /* the key gh_key_guild names */
    assert_non_null(rep);
    assert_int_equal(rep->type, REDIS_REPLY_STRING);
    assert_int_equal(rep->len, sizeof(bin));
    assert_memory_equal(rep->str, bin, sizeof(bin));
    freeReplyObject(rep);
    freeReplyObject(gh_redis_cmd(r, "DEL %s bot:{7}:test:n", key));
    /* announced 3 arguments, gave 2: refused, its reply NULL, the connection usable after */
    gh_rcmd_begin(&c, 3);
    gh_rcmd_cstr(&c, "GET");
    gh_rcmd_cstr(&c, key);
    assert_int_equal(gh_redis_append_rcmd(r, &c), GH_EINVAL);
    assert_null(gh_redis_get_reply(r));
    rep = gh_redis_cmd(r, "PING");
    assert_non_null(rep);
    freeReplyObject(rep);
    gh_rcmd_cleanup(&c);
    gh_redis_free(r);
}

static void test_timeouts(void **state)
{
    NEED_REDIS();
    struct gh_redis *r = gh_redis_new(url, 200, &lg);
    char key[64];
    redisReply *rep;
    int64_t t0;

    (void)state;
    snprintf(key, sizeof(key), "bot:{global}:test:empty:%d", (int)getpid());
    /* A blocking command longer than the connection timeout needs its own. */
    t0 = gh_mono_ms();
    rep = gh_redis_cmd_timeout(r, 3000, "BLPOP %s 1", key);
    assert_non_null(rep);
    assert_int_equal(rep->type, REDIS_REPLY_NIL);
    freeReplyObject(rep);
    assert_true(gh_mono_ms() - t0 >= 900);
    /* Without it the read times out, the connection is dropped ... */
    assert_null(gh_redis_cmd(r, "BLPOP %s 1", key));
    assert_null(gh_redis_ctx(r));
    /* ... and the next command reconnects at once. */
    assert_int_equal(gh_redis_ping(r), GH_OK);
    gh_redis_free(r);
}

static void test_url_edge_cases(void **state)
{
    struct gh_redis *r;
    char longpass[300];

    (void)state;
    assert_null(gh_redis_new(NULL, 100, &lg));
    assert_null(gh_redis_new("redis://[::1:6379", 100, &lg)); /* no closing bracket */
    assert_null(gh_redis_new("redis://[]:6379", 100, &lg));
    assert_null(gh_redis_new("redis://host:/0", 100, &lg));
    assert_null(gh_redis_new("redis://host:0", 100, &lg));
    assert_null(gh_redis_new("redis://host:6379/1001", 100, &lg));
    memset(longpass, 'p', sizeof(longpass) - 1);
    longpass[sizeof(longpass) - 1] = '\0';
    {
        char u[700];

        /* Credentials longer than the fields that hold them are refused, not cut. */
        snprintf(u, sizeof(u), "redis://%s@host", longpass);
        assert_null(gh_redis_new(u, 100, &lg));
        snprintf(u, sizeof(u), "redis://user:%s@host", longpass);
        assert_null(gh_redis_new(u, 100, &lg));
        snprintf(u, sizeof(u), "redis://%.200s:pw@host", longpass);
        assert_null(gh_redis_new(u, 100, &lg));
        snprintf(u, sizeof(u), "redis://%.255s:1", longpass); /* host 255 bytes: fits */
        {
            struct gh_redis *ok = gh_redis_new(u, 100, &lg);

            assert_non_null(ok);
            gh_redis_free(ok);
        }
        snprintf(u, sizeof(u), "redis://%.256s:1", longpass); /* 256: too long */
        assert_null(gh_redis_new(u, 100, &lg));
    }
    r = gh_redis_new("redis://user:pw@host:6380/", 0, &lg); /* empty db: 0; timeout 0: default */
    assert_non_null(r);
    gh_redis_free(r);
}

static void test_null_arguments(void **state)
{
    struct gh_redis *r = gh_redis_new("redis://127.0.0.1:1/0", 100, NULL);
    const char *argv[1] = {"PING"};

    (void)state;
    assert_null(gh_redis_cmd(NULL, "PING"));
    assert_null(gh_redis_cmd_timeout(NULL, 100, "PING"));
    assert_null(gh_redis_cmdargv(NULL, 1, argv, NULL));
    assert_null(gh_redis_cmdargv(r, 0, argv, NULL));
    assert_null(gh_redis_cmdargv(r, 1, NULL, NULL));
    assert_int_equal(gh_redis_append(NULL, "PING"), GH_EINVAL);
    assert_int_equal(gh_redis_append(r, NULL), GH_EINVAL);
    assert_null(gh_redis_get_reply(NULL));
    assert_null(gh_redis_ctx(NULL));
    assert_int_equal(gh_redis_ping(NULL), GH_EREDIS);
    assert_int_equal(gh_key_guild(NULL, 10, 1, "f", "x"), GH_EINVAL);
    assert_int_equal(gh_key_global(NULL, 10, "f", "x"), GH_EINVAL);
    assert_int_equal(gh_key_queue(NULL, 10, 0, "q", "x"), GH_EINVAL);
    gh_redis_free(r);
}

/* A failed append poisons the rest of its batch: every later append fails
 * too, and each gets a NULL reply, so replies never pair with the wrong command. */
static void test_failed_batch_stays_failed(void **state)
{
    struct gh_redis *r = gh_redis_new("redis://127.0.0.1:1/0", 100, &lg);

    (void)state;
    assert_int_equal(gh_redis_append(r, "PING"), GH_EREDIS);
    assert_int_equal(gh_redis_append(r, "PING"), GH_EREDIS);
    assert_int_equal(gh_redis_append(r, "PING"), GH_EREDIS);
    assert_null(gh_redis_get_reply(r));
    assert_null(gh_redis_get_reply(r));
    assert_null(gh_redis_get_reply(r));
    assert_null(gh_redis_get_reply(r)); /* nothing pending any more */
    /* a failed batch that nobody drains does not refuse later commands
     * forever: the next command settles it (and here fails only because
     * nothing listens) */
    assert_int_equal(gh_redis_append(r, "PING"), GH_EREDIS);
    assert_null(gh_redis_cmd(r, "PING"));
    assert_null(gh_redis_get_reply(r));
    gh_redis_free(r);
}

static void test_auth_and_select_failures(void **state)
{
    NEED_REDIS();
    const char *hostpart = strstr(url, "://");
    const char *slash = strchr(hostpart ? hostpart + 3 : url, '/');
    int n = slash ? (int)(slash - hostpart - 3) : (int)strlen(hostpart + 3);
    char u[300];
    struct gh_redis *r;

    (void)state;
    /* The test server has no password: AUTH fails and no connection is kept. */
    snprintf(u, sizeof(u), "redis://wrongpass@%.*s/0", n, hostpart + 3);
    r = gh_redis_new(u, 500, &lg);
    assert_non_null(r);
    assert_int_equal(gh_redis_ping(r), GH_EREDIS);
    assert_null(gh_redis_ctx(r));
    gh_redis_free(r);
    snprintf(u, sizeof(u), "redis://someone:wrongpass@%.*s/0", n, hostpart + 3);
    r = gh_redis_new(u, 500, &lg);
    assert_int_equal(gh_redis_ping(r), GH_EREDIS);
    assert_null(gh_redis_ctx(r));
    gh_redis_free(r);
    /* A database the server does not have: SELECT fails. */
    snprintf(u, sizeof(u), "redis://%.*s/999", n, hostpart + 3);
    r = gh_redis_new(u, 500, &lg);
    assert_int_equal(gh_redis_ping(r), GH_EREDIS);
    assert_null(gh_redis_ctx(r));
    gh_redis_free(r);
}

static void test_argv_and_pending_rules(void **state)
{
    NEED_REDIS();
    struct gh_redis *r = gh_redis_new(url, 200, &lg);
    char key[64];
    const char *argv[3];
    size_t lens[3];
    redisReply *rep;

    (void)state;
    snprintf(key, sizeof(key), "bot:{global}:test:argv:%d", (int)getpid());
    argv[0] = "SET";
    argv[1] = key;
    argv[2] = "a\0b"; /* binary safe with lengths */
    lens[0] = 3;
    lens[1] = strlen(key);
    lens[2] = 3;
    rep = gh_redis_cmdargv(r, 3, argv, lens);
    assert_non_null(rep);
    assert_int_equal(rep->type, REDIS_REPLY_STATUS);
    freeReplyObject(rep);
    rep = gh_redis_cmd(r, "STRLEN %s", key);
    assert_non_null(rep);
    assert_int_equal(rep->integer, 3);
    freeReplyObject(rep);
    /* Pipelined replies are read in order. */
    assert_int_equal(gh_redis_append(r, "GET %s", key), GH_OK);
    rep = gh_redis_get_reply(r);
    assert_non_null(rep);
    assert_int_equal(rep->len, 3);
    freeReplyObject(rep);
    /* A batch whose replies are never read is settled by the next plain
     * command (the connection is replaced), which then works, and so does
     * every command after it: nothing stays poisoned. */
    assert_int_equal(gh_redis_append(r, "GET %s", key), GH_OK);
    assert_int_equal(gh_redis_append(r, "GET %s", key), GH_OK);
    rep = gh_redis_cmd(r, "PING");
    assert_non_null(rep);
    assert_int_equal(rep->type, REDIS_REPLY_STATUS);
    freeReplyObject(rep);
    assert_null(gh_redis_get_reply(r)); /* nothing owed any more */
    assert_int_equal(gh_redis_append(r, "GET %s", key), GH_OK);
    rep = gh_redis_cmd_timeout(r, 100, "PING");
    assert_non_null(rep);
    freeReplyObject(rep);
    assert_int_equal(gh_redis_append(r, "GET %s", key), GH_OK);
    rep = gh_redis_cmdargv(r, 1, argv, NULL);
    assert_non_null(rep);
    freeReplyObject(rep);
    /* A pipelined reply that times out drops the connection ... */
    assert_int_equal(gh_redis_append(r, "BLPOP %s:none 1", key), GH_OK);
    assert_null(gh_redis_get_reply(r));
    assert_null(gh_redis_ctx(r));
    /* ... and the next command reconnects. */
    assert_int_equal(gh_redis_ping(r), GH_OK);
    freeReplyObject(gh_redis_cmd(r, "DEL %s", key));
    gh_redis_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_builders),
        cmocka_unit_test(test_url_parsing),
        cmocka_unit_test(test_select_db),
        cmocka_unit_test(test_reconnect_after_client_kill),
        cmocka_unit_test(test_down_backs_off),
        cmocka_unit_test(test_pipeline),
        cmocka_unit_test(test_rcmd),
        cmocka_unit_test(test_timeouts),
        cmocka_unit_test(test_url_edge_cases),
        cmocka_unit_test(test_null_arguments),
        cmocka_unit_test(test_failed_batch_stays_failed),
        cmocka_unit_test(test_auth_and_select_failures),
        cmocka_unit_test(test_argv_and_pending_rules),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
