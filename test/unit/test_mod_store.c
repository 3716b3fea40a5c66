/* test_mod_store.c - the moderation data layer (features/moderation/store.c,
 * settings.c): gapless numbers, 50 concurrent warns from forked processes,
 * duplicate deliveries, cross-guild isolation, settle, void and reason edit
 * with their audit rows, list filters and paging (LIKE wildcards taken
 * literally), the Redis warn count (hit, miss rebuilt, Redis down, TTL),
 * decay, lifts, PostgreSQL down, settings defaults and parsing, the DM text.
 *
 * Needs DATABASE_URL and REDIS_URL with the migrations applied (skips
 * without). Every test makes its own random guild ids and removes what it
 * wrote (cases, counters, audit rows, settings, guilds, Redis keys). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/wait.h>
#include <unistd.h>

#include <json-c/json.h>

#include "core/config.h"
#include "core/ctx.h"
#include "core/err.h"
#include "core/log.h"
#include "core/str.h"
#include "core/timeutil.h"
#include "features/moderation/moderation.h"
#include "store/pg.h"
#include "store/redis.h"
#include "store/settings.h"

#define DEAD_REDIS "redis://127.0.0.1:1/0"
#define DEAD_PG "postgresql://guildhall@127.0.0.1:1/guildhall?connect_timeout=1"
#define N_CONCURRENT 50
#define MAX_GUILDS 8

#define NEED_STORES()                                                                                        \
    do {                                                                                                     \
        if (!getenv("DATABASE_URL") || !getenv("REDIS_URL")) {                                               \
            print_message("DATABASE_URL or REDIS_URL is not set: moderation store tests skipped\n");         \
            skip();                                                                                          \
        }                                                                                                    \
    } while (0)

struct fx {
    struct gh_config cfg;
    struct gh_log_sink sink;
    struct gh_ctx ctx;
    struct gh_pg *pg; /* the test's own connection, for checks */
    struct gh_redis *redis;
    char log_path[64];
    uint64_t guilds[MAX_GUILDS];
    int n_guilds;
};

/* ---- fixture ---------------------------------------------------------------- */

static uint64_t random_id(void)
{
    uint64_t r = 0;

    assert_int_equal(getrandom(&r, sizeof(r), 0), (ssize_t)sizeof(r));
    return 1000000000000000000ULL + r % 4000000000000000000ULL;
}

static int setup(void **state)
{
    const char *db = getenv("DATABASE_URL"), *ru = getenv("REDIS_URL");
    struct fx *fx = calloc(1, sizeof(*fx));

    if (!fx)
        return -1;
    snprintf(fx->log_path, sizeof(fx->log_path), "/tmp/test_mod_store.%d.log", (int)getpid());
    unlink(fx->log_path);
    if (gh_log_sink_init(&fx->sink, "test_mod_store", GH_LOG_DEBUG, fx->log_path, 0, 0) != GH_OK)
        return -1;
    gh_logger_init(&fx->ctx.log, &fx->sink, "moderation");
    snprintf(fx->ctx.log.corr, sizeof(fx->ctx.log.corr), "modcorr%d", (int)getpid());
    fx->ctx.cfg = &fx->cfg;
    if (db && ru) {
        fx->pg = gh_pg_new(db, 10000, NULL);
        fx->redis = gh_redis_new(ru, 500, NULL);
        fx->ctx.pg = gh_pg_new(db, 10000, &fx->ctx.log);
        fx->ctx.redis = gh_redis_new(ru, 500, &fx->ctx.log);
    }
    *state = fx;
    return 0;
}

static void q(struct fx *fx, const char *sql, const char *p1)
{
    const char *params[1] = {p1};

    if (gh_pg_command(fx->pg, sql, p1 ? 1 : 0, p1 ? params : NULL) != GH_OK)
        fail_msg("%s: %s", sql, gh_pg_errmsg(fx->pg));
}

/* The first cell of a query with up to two parameters, "" for NULL or no row. */
static const char *value(struct fx *fx, const char *sql, const char *p1, const char *p2)
{
    static char out[8192];
    const char *params[2] = {p1, p2};
    PGresult *res = gh_pg_exec(fx->pg, sql, p2 ? 2 : p1 ? 1 : 0, params);

    if (!res)
        fail_msg("%s: %s", sql, gh_pg_errmsg(fx->pg));
    snprintf(out, sizeof(out), "%s", PQntuples(res) > 0 ? PQgetvalue(res, 0, 0) : "");
    PQclear(res);
    return out;
}

static long long ivalue(struct fx *fx, const char *sql, const char *p1, const char *p2)
{
    return atoll(value(fx, sql, p1, p2));
}

static void drop_guild(struct fx *fx, uint64_t g)
{
    static const char *const sql[] = {
        "DELETE FROM audit_log WHERE guild_id = $1",
        "DELETE FROM mod_cases WHERE guild_id = $1",
        "DELETE FROM mod_case_counters WHERE guild_id = $1",
        "DELETE FROM guild_settings WHERE guild_id = $1",
        "DELETE FROM guilds WHERE id = $1",
    };
    char id[24], pattern[64];
    redisReply *keys;

    snprintf(id, sizeof(id), "%" PRIu64, g);
    for (size_t i = 0; i < sizeof(sql) / sizeof(sql[0]); i++)
        q(fx, sql[i], id);
    snprintf(pattern, sizeof(pattern), "bot:{%s}:*", id);
    keys = gh_redis_cmd(fx->redis, "KEYS %s", pattern);
    for (size_t i = 0; keys && keys->type == REDIS_REPLY_ARRAY && i < keys->elements; i++)
        freeReplyObject(gh_redis_cmd(fx->redis, "DEL %s", keys->element[i]->str));
    freeReplyObject(keys);
}

static int teardown(void **state)
{
    struct fx *fx = *state;

    if (fx->pg)
        for (int i = 0; i < fx->n_guilds; i++)
            drop_guild(fx, fx->guilds[i]);
    gh_pg_free(fx->ctx.pg);
    gh_redis_free(fx->ctx.redis);
    gh_pg_free(fx->pg);
    gh_redis_free(fx->redis);
    gh_log_sink_cleanup(&fx->sink);
    unlink(fx->log_path);
    free(fx);
    return 0;
}

/* A fresh guild id (no row: gh_mod_case_create makes it), removed at teardown. */
static uint64_t new_guild(struct fx *fx)
{
    uint64_t g = random_id();

    assert_true(fx->n_guilds < MAX_GUILDS);
    fx->guilds[fx->n_guilds++] = g;
    return g;
}

static const char *idtext(uint64_t v)
{
    static char bufs[4][24];
    static int next;
    char *b = bufs[next++ % 4];

    snprintf(b, 24, "%" PRIu64, v);
    return b;
}

struct spec {
    enum gh_mod_type type;
    enum gh_mod_status status;
    uint64_t target, moderator, interaction;
    const char *reason;
    int64_t expires_ms;
};

/* Creates a case, asserts GH_OK and no duplicate; returns its number. */
static int64_t mk(struct fx *fx, uint64_t g, const struct spec *s, int *warn_count)
{
    struct gh_mod_case in = {0}, out;
    int dup = -1, wc = -1, rc;
    int64_t n;

    in.guild_id = g;
    in.type = s->type;
    in.status = s->status;
    in.target_id = s->target;
    in.moderator_id = s->moderator;
    in.interaction_id = s->interaction;
    in.expires_ms = s->expires_ms;
    if (s->reason)
        snprintf(in.reason, sizeof(in.reason), "%s", s->reason);
    rc = gh_mod_case_create(&fx->ctx, &in, &out, &dup, &wc);
    assert_int_equal(rc, GH_OK);
    assert_int_equal(dup, 0);
    assert_int_equal(out.guild_id, g);
    assert_int_equal(out.type, s->type);
    n = out.number;
    gh_mod_case_cleanup(&out);
    if (warn_count)
        *warn_count = wc;
    return n;
}

static int64_t warn(struct fx *fx, uint64_t g, uint64_t target, int *warn_count)
{
    struct spec s = {GH_MOD_WARN, GH_MOD_ACTIVE, target, 42, 0, "spam", 0};

    return mk(fx, g, &s, warn_count);
}

static const char *redis_get(struct fx *fx, const char *key)
{
    static char out[64];
    redisReply *r = gh_redis_cmd(fx->redis, "GET %s", key);

    assert_non_null(r);
    snprintf(out, sizeof(out), "%s", r->type == REDIS_REPLY_STRING ? r->str : "(nil)");
    freeReplyObject(r);
    return out;
}

static const char *warns_key(uint64_t g, uint64_t u)
{
    static char key[128];

    snprintf(key, sizeof(key), "bot:{%" PRIu64 "}:moderation:warns:%" PRIu64, g, u);
    return key;
}

/* ---- names and JSON ------------------------------------------------------------ */

static void test_names_and_json(void **state)
{
    (void)state;
    struct gh_mod_case c = {0};
    json_object *o;

    assert_string_equal(gh_mod_type_name(GH_MOD_WARN), "WARN");
    assert_string_equal(gh_mod_type_name(GH_MOD_NOTE), "NOTE");
    assert_int_equal(gh_mod_type_parse("tempban"), GH_MOD_TEMPBAN);
    assert_int_equal(gh_mod_type_parse("HACKBAN"), GH_MOD_HACKBAN);
    assert_int_equal(gh_mod_type_parse("nope"), -1);
    assert_int_equal(gh_mod_type_parse(NULL), -1);
    assert_string_equal(gh_mod_status_name(GH_MOD_PENDING), "pending");
    assert_string_equal(gh_mod_status_name(GH_MOD_FAILED), "failed");
    for (int t = 0; t < GH_MOD_TYPE_COUNT; t++)
        assert_int_equal(gh_mod_type_parse(gh_mod_type_name((enum gh_mod_type)t)), t);

    c.number = 12;
    c.type = GH_MOD_TEMPBAN;
    c.status = GH_MOD_ACTIVE;
    c.target_id = 1234567890123456789ULL;
    c.moderator_id = 0;
    snprintf(c.reason, sizeof(c.reason), "raid");
    c.duration_s = 3600;
    c.created_ms = 1700000000000;
    c.target_roles = json_tokener_parse("[\"1\",\"2\"]");
    c.lift = GH_MOD_LIFT_PENDING;
    o = gh_mod_case_json(&c);
    assert_non_null(o);
    assert_string_equal(
        json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN),
        "{\"number\":12,\"type\":\"TEMPBAN\",\"status\":\"active\",\"target_id\":"
        "\"1234567890123456789\",\"moderator_id\":null,\"reason\":\"raid\",\"duration_s\":3600,"
        "\"created_at\":\"2023-11-14T22:13:20.000Z\",\"expires_at\":null,\"refs_case\":null,"
        "\"target_roles\":[\"1\",\"2\"],\"error\":null,\"voided_by\":null,\"void_reason\":null,"
        "\"lift\":\"pending\",\"lift_error\":null}");
    json_object_put(o);
    gh_mod_case_cleanup(&c);
    assert_null(c.target_roles);
    gh_mod_case_cleanup(NULL);
}

/* ---- numbers --------------------------------------------------------------------- */

static void test_numbers_gapless_and_fields(void **state)
{
    NEED_STORES();
    struct fx *fx = *state;
    uint64_t g = new_guild(fx), target = random_id();
    struct gh_mod_case in = {0}, out;
    int dup, wc;
    int64_t before = gh_now_ms();

    for (int i = 1; i <= 5; i++) {
        struct spec s = {i % 2 ? GH_MOD_NOTE : GH_MOD_KICK, GH_MOD_ACTIVE, target, 42, 0, "r", 0};
        assert_int_equal(mk(fx, g, &s, NULL), i);
    }
    assert_int_equal(
        ivalue(fx, "SELECT last_number FROM mod_case_counters WHERE guild_id = $1", idtext(g), NULL), 5);
    assert_string_equal(value(fx,
                              "SELECT string_agg(number::text, ',' ORDER BY number) FROM mod_cases "
                              "WHERE guild_id = $1",
                              idtext(g), NULL),
                        "1,2,3,4,5");
    assert_int_equal(ivalue(fx, "SELECT count(*) FROM guilds WHERE id = $1", idtext(g), NULL), 1);

    /* An escalation case: moderator 0 (Guildhall), refs_case, roles, a timed type. */
    in.guild_id = g;
    in.type = GH_MOD_TEMPBAN;
    in.status = GH_MOD_PENDING;
    in.target_id = target;
    in.refs_case = 2;
    in.duration_s = 7200;
    in.target_roles = json_tokener_parse("[\"111\",\"222\"]");
    snprintf(in.reason, sizeof(in.reason), "Automatic: 5 warnings");
    assert_int_equal(gh_mod_case_create(&fx->ctx, &in, &out, &dup, &wc), GH_OK);
    assert_int_equal(out.number, 6);
    assert_int_equal(dup, 0);
    assert_int_equal(wc, 0);
    assert_int_equal(out.status, GH_MOD_PENDING);
    assert_int_equal(out.moderator_id, 0);
    assert_int_equal(out.refs_case, 2);
    assert_int_equal(out.duration_s, 7200);
    /* A timed case without expires_ms ends duration_s from now. */
    assert_true(out.expires_ms >= before + 7200000 && out.expires_ms <= gh_now_ms() + 7200000);
    assert_true(out.created_ms >= before - 2000 && out.created_ms <= gh_now_ms() + 2000);
    assert_string_equal(json_object_to_json_string_ext(out.target_roles, JSON_C_TO_STRING_PLAIN),
                        "[\"111\",\"222\"]");
    gh_mod_case_cleanup(&out);
    assert_string_equal(
        value(fx,
              "SELECT coalesce(moderator_id::text, 'NULL') || ' ' || "
              "coalesce(created_by::text, 'NULL') FROM mod_cases WHERE guild_id = $1 AND number = 6",
              idtext(g), NULL),
        "NULL NULL");

    assert_int_equal(gh_mod_case_get(&fx->ctx, g, 6, &out), GH_OK);
    assert_string_equal(out.reason, "Automatic: 5 warnings");
    assert_int_equal(out.lift, GH_MOD_LIFT_NONE);
    gh_mod_case_cleanup(&out);

    /* A refs_case that does not exist in this guild is refused, and takes no number. */
    in.refs_case = 99;
    assert_int_equal(gh_mod_case_create(&fx->ctx, &in, &out, &dup, &wc), GH_EINVAL);
    json_object_put(in.target_roles);
    assert_int_equal(
        ivalue(fx, "SELECT last_number FROM mod_case_counters WHERE guild_id = $1", idtext(g), NULL), 6);
    /* Bad input takes nothing either. */
    memset(&in, 0, sizeof(in));
    in.guild_id = g;
    in.type = GH_MOD_WARN;
    assert_int_equal(gh_mod_case_create(&fx->ctx, &in, &out, &dup, &wc), GH_EINVAL); /* no target */
    in.target_id = target;
    in.status = GH_MOD_VOID;
    assert_int_equal(gh_mod_case_create(&fx->ctx, &in, &out, &dup, &wc), GH_EINVAL);
    in.status = GH_MOD_FAILED; /* failed needs an error */
    assert_int_equal(gh_mod_case_create(&fx->ctx, &in, &out, &dup, &wc), GH_EINVAL);
    assert_int_equal(gh_mod_case_get(&fx->ctx, g, 7, &out), GH_ENOTFOUND);
    assert_int_equal(gh_mod_case_get(&fx->ctx, g, 0, &out), GH_ENOTFOUND);
    assert_int_equal(
        ivalue(fx, "SELECT last_number FROM mod_case_counters WHERE guild_id = $1", idtext(g), NULL), 6);
}

/* 50 processes, each with its own connection, create a WARN for one member
 * of one guild at the same moment: 50 distinct consecutive numbers, and the
 * counts 1..50 each seen exactly once. */
static void test_concurrent_warns(void **state)
{
    NEED_STORES();
    struct fx *fx = *state;
    uint64_t g = new_guild(fx), target = random_id();
    int go[2], ready[2], results[2];
    pid_t pids[N_CONCURRENT];
    int seen_number[N_CONCURRENT + 1] = {0}, seen_count[N_CONCURRENT + 1] = {0}, count = -1;

    /* The guild exists with one case already: the race is on the counter row. */
    {
        struct spec s = {GH_MOD_NOTE, GH_MOD_ACTIVE, random_id(), 42, 0, "first", 0};
        assert_int_equal(mk(fx, g, &s, NULL), 1);
    }
    assert_int_equal(pipe(go), 0);
    assert_int_equal(pipe(ready), 0);
    assert_int_equal(pipe(results), 0);
    for (int i = 0; i < N_CONCURRENT; i++) {
        pids[i] = fork();
        assert_true(pids[i] >= 0);
        if (pids[i] == 0) {
            struct gh_ctx c = fx->ctx;
            struct gh_mod_case in = {0}, out;
            int64_t rec[2];
            int dup = 0, wc = 0;
            char byte;

            c.pg = gh_pg_new(getenv("DATABASE_URL"), 30000, NULL);
            c.redis = gh_redis_new(getenv("REDIS_URL"), 2000, NULL);
            if (!c.pg || gh_pg_connect(c.pg) != GH_OK)
                _exit(3);
            if (write(ready[1], "r", 1) != 1 || read(go[0], &byte, 1) != 1)
                _exit(4);
            in.guild_id = g;
            in.type = GH_MOD_WARN;
            in.status = GH_MOD_ACTIVE;
            in.target_id = target;
            in.moderator_id = 42;
            in.interaction_id = 5000 + (uint64_t)i;
            if (gh_mod_case_create(&c, &in, &out, &dup, &wc) != GH_OK || dup)
                _exit(5);
            rec[0] = out.number;
            rec[1] = wc;
            if (write(results[1], rec, sizeof(rec)) != (ssize_t)sizeof(rec))
                _exit(6);
            _exit(0);
        }
    }
    for (int i = 0; i < N_CONCURRENT; i++) {
        char byte;
        assert_int_equal(read(ready[0], &byte, 1), 1);
    }
    {
        char bytes[N_CONCURRENT];
        memset(bytes, 'g', sizeof(bytes));
        assert_int_equal(write(go[1], bytes, sizeof(bytes)), N_CONCURRENT);
    }
    for (int i = 0; i < N_CONCURRENT; i++) {
        int st = 0;
        assert_int_equal(waitpid(pids[i], &st, 0), pids[i]);
        assert_true(WIFEXITED(st));
        if (WEXITSTATUS(st) != 0)
            fail_msg("child %d exited with %d", i, WEXITSTATUS(st));
    }
    close(results[1]);
    for (int i = 0; i < N_CONCURRENT; i++) {
        int64_t rec[2];
        assert_int_equal(read(results[0], rec, sizeof(rec)), (ssize_t)sizeof(rec));
        /* numbers 2..51 (case 1 is the note), counts 1..50 */
        assert_true(rec[0] >= 2 && rec[0] <= N_CONCURRENT + 1);
        assert_true(rec[1] >= 1 && rec[1] <= N_CONCURRENT);
        seen_number[rec[0] - 1]++;
        seen_count[rec[1]]++;
    }
    for (int i = 1; i <= N_CONCURRENT; i++) {
        assert_int_equal(seen_number[i], 1);
        assert_int_equal(seen_count[i], 1);
    }
    close(go[0]);
    close(go[1]);
    close(ready[0]);
    close(ready[1]);
    close(results[0]);
    assert_string_equal(value(fx,
                              "SELECT count(*) || ' ' || min(number) || ' ' || max(number) || ' ' || "
                              "count(DISTINCT number) FROM mod_cases WHERE guild_id = $1 AND type = 'WARN'",
                              idtext(g), NULL),
                        "50 2 51 50");
    assert_int_equal(
        ivalue(fx, "SELECT last_number FROM mod_case_counters WHERE guild_id = $1", idtext(g), NULL),
        N_CONCURRENT + 1);
    /* The cache ends at the highest count, whatever order the SETs arrived in. */
    assert_string_equal(redis_get(fx, warns_key(g, target)), "50");
    assert_int_equal(gh_mod_warns_count(&fx->ctx, g, target, &count), GH_OK);
    assert_int_equal(count, N_CONCURRENT);
}

/* ---- duplicates ------------------------------------------------------------------ */

static void test_duplicate_interaction(void **state)
{
    NEED_STORES();
    struct fx *fx = *state;
    uint64_t g = new_guild(fx), target = random_id(), iid = random_id();
    struct gh_mod_case in = {0}, out;
    int dup = 0, wc = -1;

    in.guild_id = g;
    in.type = GH_MOD_WARN;
    in.status = GH_MOD_ACTIVE;
    in.target_id = target;
    in.moderator_id = 42;
    in.interaction_id = iid;
    snprintf(in.reason, sizeof(in.reason), "first delivery");
    assert_int_equal(gh_mod_case_create(&fx->ctx, &in, &out, &dup, &wc), GH_OK);
    assert_int_equal(out.number, 1);
    assert_int_equal(dup, 0);
    assert_int_equal(wc, 1);
    assert_int_equal(out.interaction_id, iid);
    gh_mod_case_cleanup(&out);

    /* The same interaction again (Discord retried): no second case, no number used. */
    snprintf(in.reason, sizeof(in.reason), "second delivery");
    assert_int_equal(gh_mod_case_create(&fx->ctx, &in, &out, &dup, &wc), GH_OK);
    assert_int_equal(dup, 1);
    assert_int_equal(wc, 0); /* no escalation for a duplicate */
    assert_int_equal(out.number, 1);
    assert_string_equal(out.reason, "first delivery");
    gh_mod_case_cleanup(&out);
    assert_int_equal(ivalue(fx, "SELECT count(*) FROM mod_cases WHERE guild_id = $1", idtext(g), NULL), 1);
    assert_int_equal(
        ivalue(fx, "SELECT last_number FROM mod_case_counters WHERE guild_id = $1", idtext(g), NULL), 1);
    /* The next case gets 2: the duplicate consumed nothing. */
    assert_int_equal(warn(fx, g, target, &wc), 2);
    assert_int_equal(wc, 2);
}

/* Two processes deliver one interaction at the same moment: one case. */
static void test_duplicate_interaction_concurrent(void **state)
{
    NEED_STORES();
    struct fx *fx = *state;
    uint64_t g = new_guild(fx), target = random_id(), iid = random_id();
    int go[2], ready[2], dups = 0, created = 0;
    pid_t pids[2];

    {
        struct spec s = {GH_MOD_NOTE, GH_MOD_ACTIVE, target, 42, 0, "first", 0};
        assert_int_equal(mk(fx, g, &s, NULL), 1);
    }
    assert_int_equal(pipe(go), 0);
    assert_int_equal(pipe(ready), 0);
    for (int i = 0; i < 2; i++) {
        pids[i] = fork();
        assert_true(pids[i] >= 0);
        if (pids[i] == 0) {
            struct gh_ctx c = fx->ctx;
            struct gh_mod_case in = {0}, out;
            int dup = 0, wc = 0;
            char byte;

            c.pg = gh_pg_new(getenv("DATABASE_URL"), 30000, NULL);
            c.redis = NULL;
            if (!c.pg || gh_pg_connect(c.pg) != GH_OK)
                _exit(3);
            if (write(ready[1], "r", 1) != 1 || read(go[0], &byte, 1) != 1)
                _exit(4);
            in.guild_id = g;
            in.type = GH_MOD_BAN;
            in.status = GH_MOD_PENDING;
            in.target_id = target;
            in.interaction_id = iid;
            if (gh_mod_case_create(&c, &in, &out, &dup, &wc) != GH_OK || out.number != 2)
                _exit(5);
            _exit(dup ? 1 : 0);
        }
    }
    for (int i = 0; i < 2; i++) {
        char byte;
        assert_int_equal(read(ready[0], &byte, 1), 1);
    }
    assert_int_equal(write(go[1], "gg", 2), 2);
    for (int i = 0; i < 2; i++) {
        int st = 0;
        assert_int_equal(waitpid(pids[i], &st, 0), pids[i]);
        assert_true(WIFEXITED(st));
        if (WEXITSTATUS(st) == 0)
            created++;
        else if (WEXITSTATUS(st) == 1)
            dups++;
        else
            fail_msg("child %d exited with %d", i, WEXITSTATUS(st));
    }
    close(go[0]);
    close(go[1]);
    close(ready[0]);
    close(ready[1]);
    assert_int_equal(created, 1);
    assert_int_equal(dups, 1);
    assert_int_equal(ivalue(fx, "SELECT count(*) FROM mod_cases WHERE guild_id = $1", idtext(g), NULL), 2);
    assert_int_equal(
        ivalue(fx, "SELECT last_number FROM mod_case_counters WHERE guild_id = $1", idtext(g), NULL), 2);
}

/* ---- cross-guild ----------------------------------------------------------------- */

static void test_cross_guild(void **state)
{
    NEED_STORES();
    struct fx *fx = *state;
    uint64_t a = new_guild(fx), b = new_guild(fx), user = random_id(), iid = random_id();
    struct gh_mod_case out;
    json_object *list = NULL;
    int64_t total = -1;
    int wc = 0, count = -1;

    for (int i = 1; i <= 3; i++)
        assert_int_equal(warn(fx, a, user, &wc), i);
    assert_int_equal(wc, 3);
    assert_int_equal(warn(fx, b, user, &wc), 1);
    assert_int_equal(wc, 1); /* guild a's warnings do not count in b */
    {
        /* One interaction id may appear in two guilds (it cannot, in Discord, but
         * the uniqueness is per guild and must not leak across). */
        struct spec s = {GH_MOD_NOTE, GH_MOD_ACTIVE, user, 42, iid, "note", 0};
        assert_int_equal(mk(fx, a, &s, NULL), 4);
        assert_int_equal(mk(fx, b, &s, NULL), 2);
    }
    assert_int_equal(gh_mod_case_get(&fx->ctx, b, 3, &out), GH_ENOTFOUND);
    assert_int_equal(gh_mod_case_get(&fx->ctx, b, 2, &out), GH_OK);
    assert_int_equal(out.guild_id, b);
    gh_mod_case_cleanup(&out);
    assert_int_equal(gh_mod_case_list(&fx->ctx, b, NULL, &list, &total), GH_OK);
    assert_int_equal(total, 2);
    assert_int_equal(json_object_array_length(list), 2);
    json_object_put(list);
    /* A void, reason edit, settle or lift of a number that exists only in a fails in b. */
    assert_int_equal(gh_mod_case_void(&fx->ctx, b, 3, "x", 42), GH_ENOTFOUND);
    assert_int_equal(gh_mod_case_set_reason(&fx->ctx, b, 3, "x", 42), GH_ENOTFOUND);
    assert_int_equal(gh_mod_case_settle(&fx->ctx, b, 3, GH_MOD_ACTIVE, NULL), GH_ENOTFOUND);
    assert_int_equal(gh_mod_case_set_lift(&fx->ctx, b, 3, GH_MOD_LIFT_DONE, NULL), GH_ENOTFOUND);
    assert_int_equal(ivalue(fx, "SELECT count(*) FROM audit_log WHERE guild_id = $1", idtext(b), NULL), 0);
    assert_int_equal(gh_mod_warns_count(&fx->ctx, a, user, &count), GH_OK);
    assert_int_equal(count, 3);
    assert_int_equal(gh_mod_warns_count(&fx->ctx, b, user, &count), GH_OK);
    assert_int_equal(count, 1);
}

/* ---- settle, void, reason, lift ------------------------------------------------- */

static void test_settle(void **state)
{
    NEED_STORES();
    struct fx *fx = *state;
    uint64_t g = new_guild(fx), target = random_id();
    struct spec s = {GH_MOD_BAN, GH_MOD_PENDING, target, 42, 0, "raid", 0};
    struct gh_mod_case out;

    assert_int_equal(mk(fx, g, &s, NULL), 1);
    assert_int_equal(mk(fx, g, &s, NULL), 2);
    assert_int_equal(gh_mod_case_settle(&fx->ctx, g, 1, GH_MOD_FAILED, "Missing Permissions (50013)"), GH_OK);
    assert_int_equal(gh_mod_case_get(&fx->ctx, g, 1, &out), GH_OK);
    assert_int_equal(out.status, GH_MOD_FAILED);
    assert_string_equal(out.error, "Missing Permissions (50013)");
    gh_mod_case_cleanup(&out);
    /* A failed case never becomes active later. */
    assert_int_equal(gh_mod_case_settle(&fx->ctx, g, 1, GH_MOD_ACTIVE, NULL), GH_ECONFLICT);
    assert_string_equal(
        value(fx, "SELECT status FROM mod_cases WHERE guild_id = $1 AND number = 1", idtext(g), NULL),
        "failed");
    /* Settling twice to the same outcome is fine (a retried job). */
    assert_int_equal(gh_mod_case_settle(&fx->ctx, g, 2, GH_MOD_ACTIVE, NULL), GH_OK);
    assert_int_equal(gh_mod_case_settle(&fx->ctx, g, 2, GH_MOD_ACTIVE, NULL), GH_OK);
    assert_string_equal(value(fx,
                              "SELECT status || coalesce(error, '-') FROM mod_cases WHERE guild_id = $1 AND "
                              "number = 2",
                              idtext(g), NULL),
                        "active-");
    assert_int_equal(gh_mod_case_settle(&fx->ctx, g, 3, GH_MOD_ACTIVE, NULL), GH_ENOTFOUND);
    assert_int_equal(gh_mod_case_settle(&fx->ctx, g, 2, GH_MOD_VOID, NULL), GH_EINVAL);
    /* Failed without a message still says something. */
    assert_int_equal(mk(fx, g, &s, NULL), 3);
    assert_int_equal(gh_mod_case_settle(&fx->ctx, g, 3, GH_MOD_FAILED, NULL), GH_OK);
    assert_string_equal(
        value(fx, "SELECT error FROM mod_cases WHERE guild_id = $1 AND number = 3", idtext(g), NULL),
        "unknown error");
}

static void test_void(void **state)
{
    NEED_STORES();
    struct fx *fx = *state;
    uint64_t g = new_guild(fx), target = random_id(), actor = random_id();
    struct gh_mod_case out;
    char expect[512];
    int wc = 0, count = -1;

    assert_int_equal(warn(fx, g, target, &wc), 1);
    assert_int_equal(warn(fx, g, target, &wc), 2);
    assert_string_equal(redis_get(fx, warns_key(g, target)), "2");

    assert_int_equal(gh_mod_case_void(&fx->ctx, g, 1, "wrong member", actor), GH_OK);
    assert_int_equal(gh_mod_case_get(&fx->ctx, g, 1, &out), GH_OK);
    assert_int_equal(out.status, GH_MOD_VOID);
    assert_int_equal(out.voided_by, actor);
    assert_string_equal(out.void_reason, "wrong member");
    gh_mod_case_cleanup(&out);
    snprintf(expect, sizeof(expect), "true %s", idtext(actor));
    assert_string_equal(value(fx,
                              "SELECT (voided_at IS NOT NULL)::text || ' ' || updated_by FROM mod_cases "
                              "WHERE guild_id = $1 AND number = 1",
                              idtext(g), NULL),
                        expect);
    /* The voided warning stops counting, in Redis too. */
    assert_string_equal(redis_get(fx, warns_key(g, target)), "1");
    assert_int_equal(gh_mod_warns_count(&fx->ctx, g, target, &count), GH_OK);
    assert_int_equal(count, 1);
    /* The audit row: who, what, before and after. */
    snprintf(expect, sizeof(expect),
             "%s moderation.case.void case:1 {\"status\": \"active\"} {\"status\": \"void\", "
             "\"void_reason\": \"wrong member\"} %s",
             idtext(actor), fx->ctx.log.corr);
    assert_string_equal(
        value(fx,
              "SELECT actor_id || ' ' || action || ' ' || target || ' ' || before::text || ' ' || "
              "after::text || ' ' || corr FROM audit_log WHERE guild_id = $1",
              idtext(g), NULL),
        expect);
    /* Twice: a conflict, nothing written. */
    assert_int_equal(gh_mod_case_void(&fx->ctx, g, 1, "again", actor), GH_ECONFLICT);
    assert_int_equal(ivalue(fx, "SELECT count(*) FROM audit_log WHERE guild_id = $1", idtext(g), NULL), 1);
    assert_string_equal(
        value(fx, "SELECT void_reason FROM mod_cases WHERE guild_id = $1 AND number = 1", idtext(g), NULL),
        "wrong member");
    assert_int_equal(gh_mod_case_void(&fx->ctx, g, 9, "none", actor), GH_ENOTFOUND);
    /* A void without a reason, by the system. */
    assert_int_equal(gh_mod_case_void(&fx->ctx, g, 2, NULL, 0), GH_OK);
    assert_string_equal(value(fx,
                              "SELECT coalesce(voided_by::text, 'NULL') || coalesce(void_reason, 'NULL') "
                              "FROM mod_cases WHERE guild_id = $1 AND number = 2",
                              idtext(g), NULL),
                        "NULLNULL");
    assert_string_equal(redis_get(fx, warns_key(g, target)), "0");
}

static void test_reason(void **state)
{
    NEED_STORES();
    struct fx *fx = *state;
    uint64_t g = new_guild(fx), target = random_id(), actor = random_id();
    struct gh_mod_case in = {0}, out;
    char long_reason[GH_MOD_REASON_MAX * 4 + 1], expect[256];
    int dup, wc;

    assert_int_equal(warn(fx, g, target, NULL), 1);
    assert_int_equal(gh_mod_case_set_reason(&fx->ctx, g, 1, "spam in #general", actor), GH_OK);
    assert_int_equal(gh_mod_case_get(&fx->ctx, g, 1, &out), GH_OK);
    assert_string_equal(out.reason, "spam in #general");
    gh_mod_case_cleanup(&out);
    snprintf(expect, sizeof(expect), "moderation.case.reason spam -> spam in #general %s", idtext(actor));
    assert_string_equal(
        value(fx,
              "SELECT action || ' ' || (before->>'reason') || ' -> ' || (after->>'reason') || "
              "' ' || actor_id FROM audit_log WHERE guild_id = $1",
              idtext(g), NULL),
        expect);
    assert_string_equal(
        value(fx, "SELECT updated_by FROM mod_cases WHERE guild_id = $1 AND number = 1", idtext(g), NULL),
        idtext(actor));

    /* 512 characters of 4 bytes each are fine; 513 are not (and change nothing). */
    long_reason[0] = '\0';
    for (int i = 0; i < GH_MOD_REASON_MAX; i++)
        strcat(long_reason, "\xF0\x9F\x98\x80"); /* U+1F600 */
    assert_int_equal(gh_mod_case_set_reason(&fx->ctx, g, 1, long_reason, actor), GH_OK);
    assert_int_equal(ivalue(fx,
                            "SELECT char_length(reason) FROM mod_cases WHERE guild_id = $1 AND number = 1",
                            idtext(g), NULL),
                     GH_MOD_REASON_MAX);
    {
        char too_long[sizeof(long_reason) + 1];
        snprintf(too_long, sizeof(too_long), "%sx", long_reason);
        assert_int_equal(gh_mod_case_set_reason(&fx->ctx, g, 1, too_long, actor), GH_EINVAL);
        assert_int_equal(gh_mod_case_void(&fx->ctx, g, 1, too_long, actor), GH_EINVAL);
    }
    assert_int_equal(ivalue(fx, "SELECT count(*) FROM audit_log WHERE guild_id = $1", idtext(g), NULL), 2);
    {
        /* In a create: 513 ASCII characters are refused, no number taken. */
        memset(in.reason, 'a', GH_MOD_REASON_MAX + 1);
        in.reason[GH_MOD_REASON_MAX + 1] = '\0';
        in.guild_id = g;
        in.type = GH_MOD_NOTE;
        in.status = GH_MOD_ACTIVE;
        in.target_id = target;
        assert_int_equal(gh_mod_case_create(&fx->ctx, &in, &out, &dup, &wc), GH_EINVAL);
        in.reason[GH_MOD_REASON_MAX] = '\0';
        assert_int_equal(gh_mod_case_create(&fx->ctx, &in, &out, &dup, &wc), GH_OK);
        assert_int_equal(out.number, 2);
        gh_mod_case_cleanup(&out);
    }
    /* Clearing the reason. */
    assert_int_equal(gh_mod_case_set_reason(&fx->ctx, g, 2, "", actor), GH_OK);
    assert_string_equal(
        value(fx, "SELECT coalesce(reason, 'NULL') FROM mod_cases WHERE guild_id = $1 AND number = 2",
              idtext(g), NULL),
        "NULL");
    assert_int_equal(gh_mod_case_set_reason(&fx->ctx, g, 3, "x", actor), GH_ENOTFOUND);
}

static void test_lift(void **state)
{
    NEED_STORES();
    struct fx *fx = *state;
    uint64_t g = new_guild(fx), target = random_id();
    struct spec s = {GH_MOD_TEMPBAN, GH_MOD_ACTIVE, target, 42, 0, "raid", 0};
    struct gh_mod_case out;

    assert_int_equal(mk(fx, g, &s, NULL), 1);
    assert_int_equal(mk(fx, g, &s, NULL), 2);
    assert_int_equal(gh_mod_case_set_lift(&fx->ctx, g, 1, GH_MOD_LIFT_PENDING, NULL), GH_OK);
    assert_int_equal(gh_mod_case_set_lift(&fx->ctx, g, 1, GH_MOD_LIFT_DONE, NULL), GH_OK);
    assert_int_equal(gh_mod_case_get(&fx->ctx, g, 1, &out), GH_OK);
    assert_int_equal(out.lift, GH_MOD_LIFT_DONE);
    assert_int_equal(out.status, GH_MOD_INACTIVE);
    gh_mod_case_cleanup(&out);
    assert_int_equal(gh_mod_case_set_lift(&fx->ctx, g, 2, GH_MOD_LIFT_FAILED, "Unknown Ban (10026)"), GH_OK);
    assert_int_equal(gh_mod_case_get(&fx->ctx, g, 2, &out), GH_OK);
    assert_int_equal(out.lift, GH_MOD_LIFT_FAILED);
    assert_int_equal(out.status, GH_MOD_ACTIVE);
    assert_string_equal(out.lift_error, "Unknown Ban (10026)");
    gh_mod_case_cleanup(&out);
}

/* ---- list ------------------------------------------------------------------------ */

static int64_t first_number(json_object *list, size_t i)
{
    json_object *o = json_object_array_get_idx(list, i), *n = NULL;

    assert_non_null(o);
    assert_true(json_object_object_get_ex(o, "number", &n));
    return json_object_get_int64(n);
}

/* Numbers in the list, "5,3,1". */
static const char *numbers(json_object *list)
{
    static char out[512];
    size_t used = 0;

    out[0] = '\0';
    for (size_t i = 0; i < json_object_array_length(list); i++)
        used += (size_t)snprintf(out + used, sizeof(out) - used, "%s%" PRId64, i ? "," : "",
                                 first_number(list, i));
    return out;
}

static const char *list_of(struct fx *fx, uint64_t g, const struct gh_mod_filter *f, int64_t *total)
{
    json_object *list = NULL;
    static char out[512];

    assert_int_equal(gh_mod_case_list(&fx->ctx, g, f, &list, total), GH_OK);
    assert_non_null(list);
    snprintf(out, sizeof(out), "%s", numbers(list));
    json_object_put(list);
    return out;
}

static void test_list_filters_and_paging(void **state)
{
    NEED_STORES();
    struct fx *fx = *state;
    uint64_t g = new_guild(fx), other = new_guild(fx), t1 = random_id(), t2 = random_id(), m1 = random_id(),
             m2 = random_id();
    const struct spec specs[] = {
        {GH_MOD_WARN, GH_MOD_ACTIVE, t1, m1, 0, "100% sure it was spam", 0}, /* 1 */
        {GH_MOD_WARN, GH_MOD_ACTIVE, t1, m2, 0, "a_b posted links", 0},      /* 2 */
        {GH_MOD_KICK, GH_MOD_ACTIVE, t2, m1, 0, "axb posted LINKS", 0},      /* 3 */
        {GH_MOD_BAN, GH_MOD_PENDING, t2, m2, 0, "100 percent a raid", 0},    /* 4 */
        {GH_MOD_NOTE, GH_MOD_ACTIVE, t1, m1, 0, "back\\slash note", 0},      /* 5 */
        {GH_MOD_TIMEOUT, GH_MOD_ACTIVE, t2, 0, 0, NULL, 0},                  /* 6 */
    };
    struct gh_mod_filter f;
    json_object *list = NULL;
    int64_t total = -1;

    for (size_t i = 0; i < sizeof(specs) / sizeof(specs[0]); i++)
        assert_int_equal(mk(fx, g, &specs[i], NULL), (int64_t)i + 1);
    {
        struct spec s = {GH_MOD_WARN, GH_MOD_ACTIVE, t1, m1, 0, "100% other guild", 0};
        mk(fx, other, &s, NULL);
    }
    assert_int_equal(gh_mod_case_settle(&fx->ctx, g, 4, GH_MOD_FAILED, "Missing Permissions"), GH_OK);
    /* Cases 1 and 2 are from ten days ago. */
    q(fx, "UPDATE mod_cases SET created_at = now() - interval '10 days' WHERE guild_id = $1 AND number <= 2",
      idtext(g));

#define F(...) (f = (struct gh_mod_filter){0, 0, -1, -1, 0, 0, NULL, 0, 0}, __VA_ARGS__, &f)
    assert_string_equal(list_of(fx, g, NULL, &total), "6,5,4,3,2,1");
    assert_int_equal(total, 6);
    assert_string_equal(list_of(fx, g, F(f.target_id = t1), &total), "5,2,1");
    assert_int_equal(total, 3);
    assert_string_equal(list_of(fx, g, F(f.moderator_id = m1), &total), "5,3,1");
    assert_string_equal(list_of(fx, g, F(f.type = GH_MOD_WARN), &total), "2,1");
    assert_string_equal(list_of(fx, g, F(f.status = GH_MOD_FAILED), &total), "4");
    assert_string_equal(list_of(fx, g, F(f.target_id = t2, f.moderator_id = m1), &total), "3");
    /* Text: case-insensitive substring; % _ and \ are plain characters. */
    assert_string_equal(list_of(fx, g, F(f.text = "links"), &total), "3,2");
    assert_string_equal(list_of(fx, g, F(f.text = "100%"), &total), "1");
    assert_int_equal(total, 1);
    assert_string_equal(list_of(fx, g, F(f.text = "%"), &total), "1");
    assert_string_equal(list_of(fx, g, F(f.text = "a_b"), &total), "2");
    assert_string_equal(list_of(fx, g, F(f.text = "_"), &total), "2");
    assert_string_equal(list_of(fx, g, F(f.text = "k\\s"), &total), "5");
    assert_string_equal(list_of(fx, g, F(f.text = "' OR 1=1 --"), &total), "");
    assert_int_equal(total, 0);
    /* Dates: from and to, inclusive. */
    assert_string_equal(list_of(fx, g, F(f.from_ms = gh_now_ms() - 86400000LL), &total), "6,5,4,3");
    assert_string_equal(list_of(fx, g, F(f.to_ms = gh_now_ms() - 86400000LL), &total), "2,1");
    assert_string_equal(
        list_of(fx, g, F(f.from_ms = gh_now_ms() - 11 * 86400000LL, f.to_ms = gh_now_ms() - 9 * 86400000LL),
                &total),
        "2,1");
    /* Paging: newest first, before_number, total ignores paging. */
    assert_string_equal(list_of(fx, g, F(f.limit = 2), &total), "6,5");
    assert_int_equal(total, 6);
    assert_string_equal(list_of(fx, g, F(f.limit = 2, f.before_number = 5), &total), "4,3");
    assert_int_equal(total, 6);
    assert_string_equal(list_of(fx, g, F(f.limit = 2, f.before_number = 3), &total), "2,1");
    assert_string_equal(list_of(fx, g, F(f.limit = 2, f.before_number = 1), &total), "");
    assert_string_equal(list_of(fx, g, F(f.limit = 1, f.target_id = t1, f.before_number = 5), &total), "2");
    assert_int_equal(total, 3);
    assert_string_equal(list_of(fx, g, F(f.limit = 1000), &total), "6,5,4,3,2,1");
    /* Bad filters. */
    assert_int_equal(gh_mod_case_list(&fx->ctx, g, F(f.type = GH_MOD_TYPE_COUNT), &list, &total), GH_EINVAL);
    assert_int_equal(gh_mod_case_list(&fx->ctx, g, F(f.status = 9), &list, &total), GH_EINVAL);
    assert_int_equal(gh_mod_case_list(&fx->ctx, g, F(f.limit = -1), &list, &total), GH_EINVAL);
    assert_null(list);
#undef F
    /* The objects are gh_mod_case_json's. */
    assert_int_equal(gh_mod_case_list(&fx->ctx, g, NULL, &list, &total), GH_OK);
    {
        json_object *o = json_object_array_get_idx(list, 2), *v = NULL; /* case 4 */
        assert_true(json_object_object_get_ex(o, "status", &v));
        assert_string_equal(json_object_get_string(v), "failed");
        assert_true(json_object_object_get_ex(o, "error", &v));
        assert_string_equal(json_object_get_string(v), "Missing Permissions");
        assert_true(json_object_object_get_ex(o, "target_id", &v));
        assert_string_equal(json_object_get_string(v), idtext(t2));
    }
    json_object_put(list);
}

/* ---- warn counts ------------------------------------------------------------------ */

static void test_warns_count_cache(void **state)
{
    NEED_STORES();
    struct fx *fx = *state;
    uint64_t g = new_guild(fx), target = random_id();
    struct gh_redis *saved;
    redisReply *r;
    int wc = 0, count = -1;

    assert_int_equal(warn(fx, g, target, &wc), 1);
    assert_int_equal(warn(fx, g, target, &wc), 2);
    assert_int_equal(wc, 2);
    /* Cached with a 24 h TTL. */
    assert_string_equal(redis_get(fx, warns_key(g, target)), "2");
    r = gh_redis_cmd(fx->redis, "TTL %s", warns_key(g, target));
    assert_non_null(r);
    assert_true(r->integer > 86400 - 60 && r->integer <= 86400);
    freeReplyObject(r);

    /* A hit is served from Redis (the planted value proves it). */
    freeReplyObject(gh_redis_cmd(fx->redis, "SET %s 7 EX 100", warns_key(g, target)));
    assert_int_equal(gh_mod_warns_count(&fx->ctx, g, target, &count), GH_OK);
    assert_int_equal(count, 7);

    /* A miss is rebuilt from PostgreSQL and cached again for 24 h. */
    freeReplyObject(gh_redis_cmd(fx->redis, "DEL %s", warns_key(g, target)));
    assert_int_equal(gh_mod_warns_count(&fx->ctx, g, target, &count), GH_OK);
    assert_int_equal(count, 2);
    assert_string_equal(redis_get(fx, warns_key(g, target)), "2");
    r = gh_redis_cmd(fx->redis, "TTL %s", warns_key(g, target));
    assert_true(r && r->integer > 86400 - 60);
    freeReplyObject(r);

    /* A malformed cached value is replaced by the real count. */
    freeReplyObject(gh_redis_cmd(fx->redis, "SET %s banana", warns_key(g, target)));
    assert_int_equal(gh_mod_warns_count(&fx->ctx, g, target, &count), GH_OK);
    assert_int_equal(count, 2);
    assert_string_equal(redis_get(fx, warns_key(g, target)), "2");

    /* A user without warnings: 0. */
    assert_int_equal(gh_mod_warns_count(&fx->ctx, g, random_id(), &count), GH_OK);
    assert_int_equal(count, 0);

    /* Redis down (no client): counts still come from PostgreSQL, warns still work. */
    saved = fx->ctx.redis;
    fx->ctx.redis = NULL;
    freeReplyObject(gh_redis_cmd(fx->redis, "SET %s 7 EX 100", warns_key(g, target)));
    assert_int_equal(gh_mod_warns_count(&fx->ctx, g, target, &count), GH_OK);
    assert_int_equal(count, 2);
    assert_int_equal(warn(fx, g, target, &wc), 3);
    assert_int_equal(wc, 3);
    /* Redis unreachable (a client to a dead port): the same. */
    fx->ctx.redis = gh_redis_new(DEAD_REDIS, 200, &fx->ctx.log);
    assert_int_equal(gh_mod_warns_count(&fx->ctx, g, target, &count), GH_OK);
    assert_int_equal(count, 3);
    assert_int_equal(warn(fx, g, target, &wc), 4);
    assert_int_equal(wc, 4);
    gh_redis_free(fx->ctx.redis);
    fx->ctx.redis = saved;
    /* Back up: the stale planted 7 is what Redis says until a change refreshes it... */
    assert_string_equal(redis_get(fx, warns_key(g, target)), "7");
    /* ...and a void recounts and overwrites it. */
    assert_int_equal(gh_mod_case_void(&fx->ctx, g, 1, "stale", 42), GH_OK);
    assert_string_equal(redis_get(fx, warns_key(g, target)), "3");

    /* gh_mod_warns_cache writes with the TTL. */
    gh_mod_warns_cache(&fx->ctx, g, target, 9);
    assert_string_equal(redis_get(fx, warns_key(g, target)), "9");
    r = gh_redis_cmd(fx->redis, "TTL %s", warns_key(g, target));
    assert_true(r && r->integer > 86400 - 60);
    freeReplyObject(r);
}

/* ---- decay ------------------------------------------------------------------------ */

static void test_decay(void **state)
{
    NEED_STORES();
    struct fx *fx = *state;
    uint64_t g = new_guild(fx), t1 = random_id(), t2 = random_id();
    int64_t past = gh_now_ms() - 3600000, future = gh_now_ms() + 3600000, changed = -1;
    const struct spec specs[] = {
        {GH_MOD_WARN, GH_MOD_ACTIVE, t1, 42, 0, "expired", past},          /* 1: decays */
        {GH_MOD_WARN, GH_MOD_ACTIVE, t1, 42, 0, "current", future},        /* 2: stays */
        {GH_MOD_WARN, GH_MOD_ACTIVE, t1, 42, 0, "voided", past},           /* 3: void, stays void */
        {GH_MOD_TEMPBAN, GH_MOD_ACTIVE, t1, 42, 0, "not a warning", past}, /* 4: not a warning */
        {GH_MOD_WARN, GH_MOD_ACTIVE, t2, 42, 0, "expired too", past},      /* 5: decays */
        {GH_MOD_WARN, GH_MOD_FAILED, t2, 42, 0, "failed", past},           /* 6: not active */
    };
    int count = -1;

    for (size_t i = 0; i < sizeof(specs) / sizeof(specs[0]); i++) {
        if (specs[i].status == GH_MOD_FAILED) {
            struct gh_mod_case in = {0}, out;
            int dup, wc;
            in.guild_id = g;
            in.type = specs[i].type;
            in.status = GH_MOD_FAILED;
            in.target_id = specs[i].target;
            in.expires_ms = specs[i].expires_ms;
            snprintf(in.error, sizeof(in.error), "Discord down");
            assert_int_equal(gh_mod_case_create(&fx->ctx, &in, &out, &dup, &wc), GH_OK);
            assert_int_equal(out.number, (int64_t)i + 1);
            gh_mod_case_cleanup(&out);
        } else {
            assert_int_equal(mk(fx, g, &specs[i], NULL), (int64_t)i + 1);
        }
    }
    assert_int_equal(gh_mod_case_void(&fx->ctx, g, 3, "mistake", 42), GH_OK);
    /* An expired warning already stops counting before the decay runs. */
    freeReplyObject(gh_redis_cmd(fx->redis, "DEL %s", warns_key(g, t1)));
    assert_int_equal(gh_mod_warns_count(&fx->ctx, g, t1, &count), GH_OK);
    assert_int_equal(count, 1);
    /* Stale cached counts, which the decay must refresh. */
    freeReplyObject(gh_redis_cmd(fx->redis, "SET %s 5 EX 1000", warns_key(g, t1)));
    freeReplyObject(gh_redis_cmd(fx->redis, "SET %s 5 EX 1000", warns_key(g, t2)));

    assert_int_equal(gh_mod_decay(&fx->ctx, &changed), GH_OK);
    assert_true(changed >= 2); /* every guild's expired warnings; ours are two */
    assert_string_equal(
        value(fx,
              "SELECT string_agg(number || ':' || status, ',' ORDER BY number) FROM mod_cases "
              "WHERE guild_id = $1",
              idtext(g), NULL),
        "1:inactive,2:active,3:void,4:active,5:inactive,6:failed");
    assert_string_equal(redis_get(fx, warns_key(g, t1)), "1");
    assert_string_equal(redis_get(fx, warns_key(g, t2)), "0");
    assert_int_equal(gh_mod_warns_count(&fx->ctx, g, t1, &count), GH_OK);
    assert_int_equal(count, 1);

    /* Idempotent: a second run changes nothing. */
    assert_int_equal(gh_mod_decay(&fx->ctx, &changed), GH_OK);
    assert_int_equal(changed, 0);
    assert_string_equal(
        value(fx,
              "SELECT string_agg(number || ':' || status, ',' ORDER BY number) FROM mod_cases "
              "WHERE guild_id = $1",
              idtext(g), NULL),
        "1:inactive,2:active,3:void,4:active,5:inactive,6:failed");
}

/* ---- PostgreSQL down ---------------------------------------------------------------- */

static void test_postgres_down(void **state)
{
    NEED_STORES();
    struct fx *fx = *state;
    struct gh_pg *saved = fx->ctx.pg;
    uint64_t g = new_guild(fx), target = random_id();
    struct gh_mod_case in = {0}, out;
    json_object *list = NULL;
    int64_t total = 0, changed = 0;
    int dup = 0, wc = 0, count = 0;

    fx->ctx.pg = gh_pg_new(DEAD_PG, 1000, &fx->ctx.log);
    in.guild_id = g;
    in.type = GH_MOD_WARN;
    in.status = GH_MOD_ACTIVE;
    in.target_id = target;
    assert_int_equal(gh_mod_case_create(&fx->ctx, &in, &out, &dup, &wc), GH_EPG);
    assert_int_equal(out.number, 0);
    assert_int_equal(gh_mod_case_get(&fx->ctx, g, 1, &out), GH_EPG);
    assert_int_equal(gh_mod_case_void(&fx->ctx, g, 1, "x", 42), GH_EPG);
    assert_int_equal(gh_mod_case_set_reason(&fx->ctx, g, 1, "x", 42), GH_EPG);
    assert_int_equal(gh_mod_case_settle(&fx->ctx, g, 1, GH_MOD_ACTIVE, NULL), GH_EPG);
    assert_int_equal(gh_mod_case_list(&fx->ctx, g, NULL, &list, &total), GH_EPG);
    assert_null(list);
    assert_int_equal(gh_mod_decay(&fx->ctx, &changed), GH_EPG);
    /* Redis has no count and PostgreSQL is down: an error, not a 0. */
    assert_int_equal(gh_mod_warns_count(&fx->ctx, g, target, &count), GH_EPG);
    gh_pg_free(fx->ctx.pg);
    fx->ctx.pg = saved;
    assert_int_equal(ivalue(fx, "SELECT count(*) FROM guilds WHERE id = $1", idtext(g), NULL), 0);
}

/* ---- settings ------------------------------------------------------------------------ */

static void put_settings(struct fx *fx, uint64_t g, const char *json)
{
    json_object *doc = json_tokener_parse(json);
    int version = 0;

    assert_non_null(doc);
    q(fx, "INSERT INTO guilds (id) VALUES ($1) ON CONFLICT DO NOTHING", idtext(g));
    assert_int_equal(gh_settings_put(&fx->ctx, g, "moderation", doc, 42, -1, &version), GH_OK);
    json_object_put(doc);
}

static void test_settings(void **state)
{
    NEED_STORES();
    struct fx *fx = *state;
    uint64_t g = new_guild(fx);
    struct gh_mod_settings s;
    struct gh_pg *saved_pg;
    struct gh_redis *saved_redis;
    struct gh_mod_case in = {0}, out;
    int dup, wc;
    int64_t before;

    /* No document: the schema's defaults. */
    assert_int_equal(gh_mod_settings_load(&fx->ctx, g, &s), GH_OK);
    assert_int_equal(s.mod_log_channel_id, 0);
    assert_int_equal(s.mute_role_id, 0);
    assert_int_equal(s.dm_on_action, 1);
    assert_string_equal(s.dm_template, "You received a {action} in {guild}. Reason: {reason}");
    assert_int_equal(s.warn_decay_s, 30 * 86400);
    assert_int_equal(s.escalation_enabled, 1);
    assert_int_equal(s.n_thresholds, 3);
    assert_int_equal(s.thresholds[0].warnings, 3);
    assert_int_equal(s.thresholds[0].action, GH_MOD_TIMEOUT);
    assert_int_equal(s.thresholds[0].duration_s, 3600);
    assert_int_equal(s.thresholds[1].warnings, 5);
    assert_int_equal(s.thresholds[1].action, GH_MOD_KICK);
    assert_int_equal(s.thresholds[2].warnings, 7);
    assert_int_equal(s.thresholds[2].action, GH_MOD_BAN);
    assert_int_equal(s.n_moderator_roles, 0);

    /* A document: thresholds sorted, durations parsed, roles read. */
    put_settings(
        fx, g,
        "{\"mod_log_channel_id\":\"111111111111111111\",\"mute_role_id\":\"222\",\"jail_role_id\":\"333\","
        "\"dm_on_action\":false,\"dm_template\":\"{case}: {action}\",\"warn_decay\":\"1h30m\","
        "\"escalation_enabled\":false,\"moderator_roles\":[\"10\",\"11\"],\"admin_roles\":[\"12\"],"
        "\"thresholds\":[{\"warnings\":7,\"action\":\"ban\"},{\"warnings\":2,\"action\":\"timeout\","
        "\"duration\":\"10m\"},{\"warnings\":4,\"action\":\"tempban\",\"duration\":\"2d\"},"
        "{\"warnings\":3,\"action\":\"mute\"},{\"warnings\":5,\"action\":\"explode\"}]}");
    assert_int_equal(gh_mod_settings_load(&fx->ctx, g, &s), GH_OK);
    assert_int_equal(s.mod_log_channel_id, 111111111111111111ULL);
    assert_int_equal(s.mute_role_id, 222);
    assert_int_equal(s.jail_role_id, 333);
    assert_int_equal(s.dm_on_action, 0);
    assert_string_equal(s.dm_template, "{case}: {action}");
    assert_int_equal(s.warn_decay_s, 5400);
    assert_int_equal(s.escalation_enabled, 0);
    assert_int_equal(s.n_moderator_roles, 2);
    assert_int_equal(s.moderator_roles[1], 11);
    assert_int_equal(s.n_admin_roles, 1);
    assert_int_equal(s.admin_roles[0], 12);
    assert_int_equal(s.n_thresholds, 4); /* the unknown action is skipped */
    assert_int_equal(s.thresholds[0].warnings, 2);
    assert_int_equal(s.thresholds[0].action, GH_MOD_TIMEOUT);
    assert_int_equal(s.thresholds[0].duration_s, 600);
    assert_int_equal(s.thresholds[1].warnings, 3);
    assert_int_equal(s.thresholds[1].action, GH_MOD_MUTE);
    assert_int_equal(s.thresholds[1].duration_s, 0);
    assert_int_equal(s.thresholds[2].warnings, 4);
    assert_int_equal(s.thresholds[2].action, GH_MOD_TEMPBAN);
    assert_int_equal(s.thresholds[2].duration_s, 2 * 86400);
    assert_int_equal(s.thresholds[3].warnings, 7);
    assert_int_equal(s.thresholds[3].action, GH_MOD_BAN);

    /* A WARN's expiry follows the guild's decay. */
    before = gh_now_ms();
    in.guild_id = g;
    in.type = GH_MOD_WARN;
    in.status = GH_MOD_ACTIVE;
    in.target_id = random_id();
    assert_int_equal(gh_mod_case_create(&fx->ctx, &in, &out, &dup, &wc), GH_OK);
    assert_true(out.expires_ms >= before + 5400000 - 1000 && out.expires_ms <= gh_now_ms() + 5400000 + 1000);
    gh_mod_case_cleanup(&out);

    /* Empty decay: never; an empty threshold list: no escalation steps; bad values keep defaults. */
    put_settings(fx, g,
                 "{\"warn_decay\":\"\",\"thresholds\":[],\"mute_role_id\":\"abc\",\"dm_on_action\":\"yes\"}");
    assert_int_equal(gh_mod_settings_load(&fx->ctx, g, &s), GH_OK);
    assert_int_equal(s.warn_decay_s, 0);
    assert_int_equal(s.n_thresholds, 0);
    assert_int_equal(s.mute_role_id, 0);
    assert_int_equal(s.dm_on_action, 1);
    in.target_id = random_id();
    assert_int_equal(gh_mod_case_create(&fx->ctx, &in, &out, &dup, &wc), GH_OK);
    assert_int_equal(out.expires_ms, 0);
    gh_mod_case_cleanup(&out);
    put_settings(fx, g, "{\"warn_decay\":\"soon\",\"thresholds\":{}}");
    assert_int_equal(gh_mod_settings_load(&fx->ctx, g, &s), GH_OK);
    assert_int_equal(s.warn_decay_s, 30 * 86400);
    assert_int_equal(s.n_thresholds, 3);

    /* Both stores down: the defaults and GH_EPG. */
    saved_pg = fx->ctx.pg;
    saved_redis = fx->ctx.redis;
    fx->ctx.pg = gh_pg_new(DEAD_PG, 1000, &fx->ctx.log);
    fx->ctx.redis = gh_redis_new(DEAD_REDIS, 200, &fx->ctx.log);
    assert_int_equal(gh_mod_settings_load(&fx->ctx, g, &s), GH_EPG);
    assert_int_equal(s.warn_decay_s, 30 * 86400);
    assert_int_equal(s.n_thresholds, 3);
    gh_pg_free(fx->ctx.pg);
    gh_redis_free(fx->ctx.redis);
    fx->ctx.pg = saved_pg;
    fx->ctx.redis = saved_redis;
}

static void test_dm_text(void **state)
{
    (void)state;
    struct gh_mod_settings s;
    char out[2000], small[16];

    memset(&s, 0, sizeof(s));
    snprintf(s.dm_template, sizeof(s.dm_template),
             "**{action}** in {guild} (case {case}) for {duration}: {reason} {unknown} {reason");
    assert_int_equal(gh_mod_dm_text(&s, "tempban", "My *Cool* Server", "spam @everyone <@123> __x__", 5400,
                                    12, out, sizeof(out)),
                     GH_OK);
    /* The template's own markdown stays; the member's and the guild's text is escaped. */
    assert_string_equal(out, "**tempban** in My \\*Cool\\* Server (case #12) for 1h 30m: spam @\xE2\x80\x8B"
                             "everyone <\xE2\x80\x8B"
                             "@123> \\_\\_x\\_\\_ {unknown} {reason");
    /* No reason, no duration, no case; the default template when none is set. */
    memset(&s, 0, sizeof(s));
    assert_int_equal(gh_mod_dm_text(&s, "warning", "Guild", NULL, 0, 0, out, sizeof(out)), GH_OK);
    assert_string_equal(out, "You received a warning in Guild. Reason: No reason given");
    assert_int_equal(gh_mod_dm_text(NULL, "kick", NULL, "", 0, 0, out, sizeof(out)), GH_OK);
    assert_string_equal(out, "You received a kick in the server. Reason: No reason given");
    snprintf(s.dm_template, sizeof(s.dm_template), "{duration}|{duration}");
    assert_int_equal(gh_mod_dm_text(&s, "x", "g", "r", 2 * 86400 + 61, 1, out, sizeof(out)), GH_OK);
    assert_string_equal(out, "2d 1m 1s|2d 1m 1s");
    assert_int_equal(gh_mod_dm_text(&s, "x", "g", "r", 0, 1, out, sizeof(out)), GH_OK);
    assert_string_equal(out, "none|none");
    /* Too small: cut, NUL-terminated, and said so. */
    snprintf(s.dm_template, sizeof(s.dm_template), "{reason}");
    assert_int_equal(gh_mod_dm_text(&s, "x", "g", "abcdefghijklmnopqrstuvwxyz", 0, 1, small, sizeof(small)),
                     GH_ETOOBIG);
    assert_string_equal(small, "abcdefghijklmno");
    assert_int_equal(gh_mod_dm_text(&s, "x", "g",
                                    "\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9", 0, 1,
                                    small, sizeof(small)),
                     GH_ETOOBIG);
    assert_string_equal(small,
                        "\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9"); /* never mid-character */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_names_and_json, setup, teardown),
        cmocka_unit_test_setup_teardown(test_numbers_gapless_and_fields, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_warns, setup, teardown),
        cmocka_unit_test_setup_teardown(test_duplicate_interaction, setup, teardown),
        cmocka_unit_test_setup_teardown(test_duplicate_interaction_concurrent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cross_guild, setup, teardown),
        cmocka_unit_test_setup_teardown(test_settle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_void, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reason, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lift, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_filters_and_paging, setup, teardown),
        cmocka_unit_test_setup_teardown(test_warns_count_cache, setup, teardown),
        cmocka_unit_test_setup_teardown(test_decay, setup, teardown),
        cmocka_unit_test_setup_teardown(test_postgres_down, setup, teardown),
        cmocka_unit_test_setup_teardown(test_settings, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dm_text, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
