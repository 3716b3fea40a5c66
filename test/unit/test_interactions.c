/* test_interactions.c - the POST /interactions endpoint, end to end below
 * HTTP: signed requests in, interaction responses out, effects checked in
 * PostgreSQL and Redis.
 *
 * Requests are signed with the test key (seed 00..1f). The rejections before
 * the signature check need no store and always run; the routed cases need
 * DATABASE_URL and REDIS_URL (with migrations applied) and skip without
 * them. gh_registry_command/gh_registry_component are wrapped
 * (test_interactions.wrap) to add a test feature whose handlers fail or
 * answer on demand; every other name goes to the real registry. gh_mono_ms
 * is wrapped too, so a test can move the process's clock past the
 * in-process "guild seen" cache without sleeping. */
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>
#include <sodium.h>

#include "core/arena.h"
#include "core/config.h"
#include "core/ctx.h"
#include "core/err.h"
#include "core/log.h"
#include "core/str.h"
#include "core/timeutil.h"
#include "discord/interaction.h"
#include "discord/respond.h"
#include "features/registry.h"
#include "store/pg.h"
#include "store/queue.h"
#include "store/redis.h"
#include "store/settings.h"
#include "web/http.h"
#include "web/interactions.h"
#include "web/metrics.h"

static const char seed_hex[] = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

/* ---- the test feature, reached through the wrapped registry -------------- */

static int h_boom(struct gh_ctx *ctx, const struct gh_interaction *ix, struct gh_buf *out)
{
    (void)ctx;
    (void)ix;
    gh_buf_puts(out, "{\"half\":"); /* a half-written answer must not leak out */
    return GH_EPG;
}

static int h_silent(struct gh_ctx *ctx, const struct gh_interaction *ix, struct gh_buf *out)
{
    (void)ctx;
    (void)ix;
    (void)out;
    return GH_OK;
}

static int h_echo(struct gh_ctx *ctx, const struct gh_interaction *ix, struct gh_buf *out)
{
    (void)ctx;
    if (ix->type == GH_IX_AUTOCOMPLETE)
        return gh_resp_autocomplete(out, NULL);
    if (ix->type == GH_IX_MESSAGE_COMPONENT)
        return gh_resp_update(out, "component ok");
    return gh_resp_message(out, "echo ok", 1);
}

static const struct gh_command test_commands[] = {
    {.name = "tboom", .description = "fails", .type = 1, .contexts = GH_CTX_GUILD, .handler = h_boom},
    {.name = "tsilent",
     .description = "writes nothing",
     .type = 1,
     .contexts = GH_CTX_GUILD,
     .handler = h_silent},
    {.name = "techo", .description = "answers", .type = 1, .contexts = GH_CTX_GUILD, .handler = h_echo},
};
static const struct gh_component test_components[] = {
    {.prefix = "test:ok:", .handler = h_echo},
    {.prefix = "test:boom:", .handler = h_boom},
};
static const struct gh_feature test_feature = {
    .name = "testfeat",
    .title = "Test Feature",
    .default_enabled = 1,
    .can_disable = 1,
    .commands = test_commands,
    .n_commands = GH_COUNT(test_commands),
    .components = test_components,
    .n_components = GH_COUNT(test_components),
};

const struct gh_command *__real_gh_registry_command(const char *name, int type,
                                                    const struct gh_feature **feature);
const struct gh_command *__wrap_gh_registry_command(const char *name, int type,
                                                    const struct gh_feature **feature);
const struct gh_component *__real_gh_registry_component(const char *custom_id,
                                                        const struct gh_feature **feature);
const struct gh_component *__wrap_gh_registry_component(const char *custom_id,
                                                        const struct gh_feature **feature);

const struct gh_command *__wrap_gh_registry_command(const char *name, int type,
                                                    const struct gh_feature **feature)
{
    for (size_t i = 0; name && i < GH_COUNT(test_commands); i++) {
        if (strcmp(name, test_commands[i].name) == 0) {
            if (feature)
                *feature = &test_feature;
            return &test_commands[i];
        }
    }
    return __real_gh_registry_command(name, type, feature);
}

const struct gh_component *__wrap_gh_registry_component(const char *custom_id,
                                                        const struct gh_feature **feature)
{
    for (size_t i = 0; custom_id && i < GH_COUNT(test_components); i++) {
        if (strncmp(custom_id, test_components[i].prefix, strlen(test_components[i].prefix)) == 0) {
            if (feature)
                *feature = &test_feature;
            return &test_components[i];
        }
    }
    return __real_gh_registry_component(custom_id, feature);
}

/* ---- the clock -------------------------------------------------------------- */

static int64_t clock_offset_ms;

int64_t __real_gh_mono_ms(void);
int64_t __wrap_gh_mono_ms(void);

int64_t __wrap_gh_mono_ms(void)
{
    return __real_gh_mono_ms() + clock_offset_ms;
}

/* ---- fixture ------------------------------------------------------------ */

struct fixture {
    struct gh_config cfg;
    struct gh_log_sink sink;
    struct gh_arena arena;
    struct gh_ctx ctx;
    unsigned char sk[crypto_sign_SECRETKEYBYTES];
    int stores; /* PostgreSQL and Redis configured */
    char sig[129];
    char ts[32];
    char body[4096];
    struct gh_http_req req;
    struct gh_http_resp resp;
    json_object *answer; /* parsed response body */
};

static uint64_t unique_id(void)
{
    static uint64_t base, n;
    /* 19 digits, distinct per run (time and pid) and per call. */
    if (!base)
        base = UINT64_C(1000000000000000000) + ((uint64_t)gh_now_ms() % UINT64_C(1000000000)) * 1000000 +
               ((uint64_t)getpid() % 1000) * 1000;
    return base + n++;
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    unsigned char seed[32], pk[32];
    assert_non_null(f);
    assert_int_equal(sodium_init() >= 0, 1);
    assert_int_equal(sodium_hex2bin(seed, sizeof(seed), seed_hex, 64, NULL, NULL, NULL), 0);
    crypto_sign_seed_keypair(pk, f->sk, seed);
    memcpy(f->cfg.public_key, pk, 32);
    f->cfg.has_public_key = 1;
    f->cfg.signature_max_skew_s = 300;
    f->cfg.max_body_bytes = 262144;
    f->cfg.pg_statement_timeout_ms = 5000;
    f->cfg.redis_timeout_ms = 1000;
    snprintf(f->cfg.run_dir, sizeof(f->cfg.run_dir), "/tmp/gh-ix-XXXXXX");
    assert_non_null(mkdtemp(f->cfg.run_dir));

    gh_log_sink_init(&f->sink, "test", GH_LOG_CRIT, NULL, 0, 0);
    gh_arena_init(&f->arena, 16384, 1 << 20);
    memset(&f->ctx, 0, sizeof(f->ctx));
    gh_logger_init(&f->ctx.log, &f->sink, "interactions");
    f->ctx.cfg = &f->cfg;
    f->ctx.queue = GH_QUEUE_DEFAULT;
    f->ctx.arena = &f->arena;
    f->ctx.started_ms = gh_now_ms();
    f->ctx.version = "test";

    const char *db = getenv("DATABASE_URL"), *rd = getenv("REDIS_URL");
    if (db && *db && rd && *rd) {
        snprintf(f->cfg.database_url, sizeof(f->cfg.database_url), "%s", db);
        snprintf(f->cfg.redis_url, sizeof(f->cfg.redis_url), "%s", rd);
        f->ctx.pg = gh_pg_new(db, 5000, &f->ctx.log);
        f->ctx.redis = gh_redis_new(rd, 1000, &f->ctx.log);
        assert_non_null(f->ctx.pg);
        assert_non_null(f->ctx.redis);
        f->stores = 1;
    }
    gh_http_resp_init(&f->resp, 1 << 16);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    json_object_put(f->answer);
    gh_http_resp_cleanup(&f->resp);
    gh_redis_free(f->ctx.redis);
    gh_pg_free(f->ctx.pg);
    gh_arena_cleanup(&f->arena);
    gh_log_sink_cleanup(&f->sink);
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->cfg.run_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", f->cfg.run_dir);
    free(f);
    return 0;
}

#define NEED_STORES(f)                                                                                       \
    do {                                                                                                     \
        if (!(f)->stores) {                                                                                  \
            fprintf(stderr, "skipped: DATABASE_URL and REDIS_URL are not both set\n");                       \
            skip();                                                                                          \
        }                                                                                                    \
    } while (0)

/* Builds a POST with body, signed at now + ts_offset_s. tamper: flips a
 * byte of the body after signing. */
static void make_req(struct fixture *f, const char *body, int64_t ts_offset_s, int tamper)
{
    unsigned char sig[crypto_sign_BYTES];
    char msg[4200];
    snprintf(f->body, sizeof(f->body), "%s", body);
    snprintf(f->ts, sizeof(f->ts), "%" PRId64, gh_now_ms() / 1000 + ts_offset_s);
    size_t tl = strlen(f->ts), bl = strlen(f->body);
    memcpy(msg, f->ts, tl);
    memcpy(msg + tl, f->body, bl);
    crypto_sign_detached(sig, NULL, (unsigned char *)msg, tl + bl, f->sk);
    sodium_bin2hex(f->sig, sizeof(f->sig), sig, sizeof(sig));
    if (tamper)
        f->body[bl / 2] ^= 0x01;

    memset(&f->req, 0, sizeof(f->req));
    f->req.method = "POST";
    f->req.path = "/interactions";
    f->req.query = "";
    f->req.remote_addr = "127.0.0.1";
    f->req.body = f->body;
    f->req.body_len = bl;
    f->req.arena = &f->arena;
    f->req.headers[0].name = "x-signature-ed25519";
    f->req.headers[0].value = f->sig;
    f->req.headers[1].name = "x-signature-timestamp";
    f->req.headers[1].value = f->ts;
    f->req.headers[2].name = "content-type";
    f->req.headers[2].value = "application/json";
    f->req.n_headers = 3;
}

/* Runs the handler; parses the JSON answer into f->answer. */
static void call(struct fixture *f)
{
    json_object_put(f->answer);
    f->answer = NULL;
    gh_http_resp_cleanup(&f->resp);
    gh_http_resp_init(&f->resp, 1 << 16);
    gh_interactions_handle(&f->ctx, &f->req, &f->resp);
    f->answer = json_tokener_parse(gh_buf_cstr(&f->resp.body));
    assert_non_null(f->answer);
    assert_string_equal(f->resp.content_type, "application/json");
    gh_arena_reset(&f->arena);
}

static const char *error_code(struct fixture *f)
{
    json_object *e = NULL, *c = NULL;
    if (!json_object_object_get_ex(f->answer, "error", &e) || !json_object_object_get_ex(e, "code", &c))
        return "";
    return json_object_get_string(c);
}

static int answer_type(struct fixture *f)
{
    json_object *t = NULL;
    return json_object_object_get_ex(f->answer, "type", &t) ? json_object_get_int(t) : -1;
}

static const char *answer_content(struct fixture *f)
{
    json_object *d = NULL, *c = NULL;
    if (!json_object_object_get_ex(f->answer, "data", &d) || !json_object_object_get_ex(d, "content", &c))
        return "";
    return json_object_get_string(c);
}

static int answer_flags(struct fixture *f)
{
    json_object *d = NULL, *fl = NULL;
    if (!json_object_object_get_ex(f->answer, "data", &d) || !json_object_object_get_ex(d, "flags", &fl))
        return 0;
    return json_object_get_int(fl);
}

/* A command interaction in guild g by user u. */
static void command_body(char *out, size_t size, int type, uint64_t id, uint64_t g, uint64_t u,
                         const char *name)
{
    snprintf(out, size,
             "{\"type\":%d,\"id\":\"%" PRIu64 "\",\"application_id\":\"42\",\"token\":\"tok-%" PRIu64 "\","
             "\"version\":1,\"guild_id\":\"%" PRIu64 "\",\"channel_id\":\"77\",\"locale\":\"en-US\","
             "\"member\":{\"user\":{\"id\":\"%" PRIu64 "\",\"username\":\"alice\"},\"roles\":[],"
             "\"permissions\":\"8\"},\"app_permissions\":\"8\","
             "\"data\":{\"id\":\"5\",\"name\":\"%s\",\"type\":1,"
             "\"options\":[{\"name\":\"text\",\"type\":3,\"value\":\"h\\u00e9llo\"}]}}",
             type, id, id, g, u, name);
}

static void component_body(char *out, size_t size, int type, uint64_t id, uint64_t g, uint64_t u,
                           const char *custom_id)
{
    snprintf(out, size,
             "{\"type\":%d,\"id\":\"%" PRIu64 "\",\"application_id\":\"42\",\"token\":\"tok\",\"version\":1,"
             "\"guild_id\":\"%" PRIu64 "\",\"channel_id\":\"77\","
             "\"member\":{\"user\":{\"id\":\"%" PRIu64 "\",\"username\":\"bob\"},\"permissions\":\"0\"},"
             "\"data\":{\"custom_id\":\"%s\",\"component_type\":2,\"values\":[\"a\"]}}",
             type, id, g, u, custom_id);
}

/* ---- store probes ------------------------------------------------------- */

/* 1 when a command_log entry for the interaction is pending in Redis, in
 * flight, or already written to PostgreSQL by a worker. */
static int cmdlog_has(struct fixture *f, uint64_t interaction_id, const char *command, int success)
{
    char idtxt[24], want_cmd[200];
    snprintf(idtxt, sizeof(idtxt), "%" PRIu64, interaction_id);
    snprintf(want_cmd, sizeof(want_cmd), "\"%s\"", command);
    static const char *const lists[] = {"bot:{global}:cmdlog:pending", "bot:{global}:cmdlog:inflight"};
    for (size_t l = 0; l < 2; l++) {
        redisReply *r = gh_redis_cmd(f->ctx.redis, "LRANGE %s 0 -1", lists[l]);
        int found = 0;
        for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
            const char *e = r->element[i]->str;
            if (e && strstr(e, idtxt) && strstr(e, want_cmd)) {
                json_object *o = json_tokener_parse(e), *s = NULL;
                if (o && json_object_object_get_ex(o, "success", &s))
                    found = json_object_get_boolean(s) == success;
                else
                    found = 1;
                json_object_put(o);
            }
        }
        freeReplyObject(r);
        if (found)
            return 1;
    }
    const char *p[2] = {idtxt, command};
    PGresult *res = gh_pg_exec(
        f->ctx.pg, "SELECT success FROM command_log WHERE interaction_id = $1 AND command = $2", 2, p);
    int found = res && PQntuples(res) == 1 && (PQgetvalue(res, 0, 0)[0] == 't') == (success != 0);
    PQclear(res);
    return found;
}

/* The handler defers its counters (gh_metrics_defer); the fcgi loop's tick
 * sends them. Here the test sends them before it reads. */
static long long metric(struct fixture *f, const char *field)
{
    assert_int_equal(gh_metrics_flush(f->ctx.redis), GH_OK);
    assert_int_equal(gh_metrics_pending(), 0);
    redisReply *r = gh_redis_cmd(f->ctx.redis, "HGET %s %s", GH_METRICS_KEY, field);
    long long v = r && r->type == REDIS_REPLY_STRING ? atoll(r->str) : 0;
    freeReplyObject(r);
    return v;
}

static int key_matching(struct fixture *f, const char *pattern)
{
    redisReply *r = gh_redis_cmd(f->ctx.redis, "KEYS %s", pattern);
    int n = r && r->type == REDIS_REPLY_ARRAY ? (int)r->elements : 0;
    freeReplyObject(r);
    return n;
}

static void insert_guild(struct fixture *f, uint64_t g)
{
    char id[24];
    snprintf(id, sizeof(id), "%" PRIu64, g);
    const char *p[1] = {id};
    assert_int_equal(
        gh_pg_command(f->ctx.pg, "INSERT INTO guilds (id) VALUES ($1) ON CONFLICT DO NOTHING", 1, p), GH_OK);
}

/* ---- rejections (no store needed) --------------------------------------- */

static void test_method_not_allowed(void **state)
{
    struct fixture *f = *state;
    make_req(f, "{\"type\":1}", 0, 0);
    f->req.method = "GET";
    call(f);
    assert_int_equal(f->resp.status, 405);
    assert_string_equal(error_code(f), "method_not_allowed");
    assert_non_null(strstr(f->resp.extra_headers, "Allow: POST\r\n"));
}

static void test_body_too_large(void **state)
{
    struct fixture *f = *state;
    make_req(f, "", 0, 0);
    f->req.body_too_large = 1;
    call(f);
    assert_int_equal(f->resp.status, 413);
    assert_string_equal(error_code(f), "body_too_large");
}

static void test_missing_signature_headers(void **state)
{
    struct fixture *f = *state;
    make_req(f, "{\"type\":1}", 0, 0);
    f->req.n_headers = 0;
    call(f);
    assert_int_equal(f->resp.status, 401);
    assert_string_equal(error_code(f), "missing_signature");

    make_req(f, "{\"type\":1}", 0, 0);
    f->req.headers[1].value = ""; /* timestamp present but empty */
    call(f);
    assert_int_equal(f->resp.status, 401);
    assert_string_equal(error_code(f), "missing_signature");
}

static void test_tampered_body(void **state)
{
    struct fixture *f = *state;
    make_req(f, "{\"type\":1,\"id\":\"1\",\"application_id\":\"2\",\"token\":\"t\",\"version\":1}", 0, 1);
    call(f);
    assert_int_equal(f->resp.status, 401);
    assert_string_equal(error_code(f), "invalid_signature");

    /* A signature that is not hex at all. */
    make_req(f, "{\"type\":1}", 0, 0);
    f->req.headers[0].value = "zz";
    call(f);
    assert_int_equal(f->resp.status, 401);
    assert_string_equal(error_code(f), "invalid_signature");
}

static void test_wrong_key(void **state)
{
    struct fixture *f = *state;
    unsigned char pk[32], sk[64], seed[32];
    memset(seed, 7, sizeof(seed));
    crypto_sign_seed_keypair(pk, sk, seed);
    memcpy(f->sk, sk, sizeof(sk)); /* sign with another key */
    make_req(f, "{\"type\":1,\"id\":\"1\",\"application_id\":\"2\",\"token\":\"t\",\"version\":1}", 0, 0);
    call(f);
    assert_int_equal(f->resp.status, 401);
    assert_string_equal(error_code(f), "invalid_signature");
}

static void test_stale_and_future_timestamps(void **state)
{
    struct fixture *f = *state;
    const char *ping = "{\"type\":1,\"id\":\"1\",\"application_id\":\"2\",\"token\":\"t\",\"version\":1}";
    make_req(f, ping, -301, 0);
    call(f);
    assert_int_equal(f->resp.status, 401);
    assert_string_equal(error_code(f), "stale_timestamp");

    make_req(f, ping, 301, 0);
    call(f);
    assert_int_equal(f->resp.status, 401);
    assert_string_equal(error_code(f), "stale_timestamp");

    /* Inside the window both ways. */
    make_req(f, ping, -290, 0);
    call(f);
    assert_int_equal(f->resp.status, 200);
    make_req(f, ping, 290, 0);
    call(f);
    assert_int_equal(f->resp.status, 200);
}

static void test_malformed_json(void **state)
{
    struct fixture *f = *state;
    make_req(f, "{\"type\":1,", 0, 0);
    call(f);
    assert_int_equal(f->resp.status, 400);
    assert_string_equal(error_code(f), "malformed_json");

    make_req(f, "[1,2,3]", 0, 0);
    call(f);
    assert_int_equal(f->resp.status, 400);
    assert_string_equal(error_code(f), "malformed_json");
}

static void test_wrong_shape(void **state)
{
    struct fixture *f = *state;
    make_req(f, "{\"type\":2,\"id\":\"1\",\"application_id\":\"2\",\"token\":\"t\"}", 0, 0);
    call(f);
    assert_int_equal(f->resp.status, 400);
    assert_string_equal(error_code(f), "invalid_interaction");
    json_object *e = NULL, *m = NULL;
    assert_true(json_object_object_get_ex(f->answer, "error", &e));
    assert_true(json_object_object_get_ex(e, "message", &m));
    assert_non_null(strstr(json_object_get_string(m), "missing field"));

    make_req(f, "{\"type\":99,\"id\":\"1\",\"application_id\":\"2\",\"token\":\"t\"}", 0, 0);
    call(f);
    assert_int_equal(f->resp.status, 400);
    assert_string_equal(error_code(f), "invalid_interaction");
    assert_true(json_object_object_get_ex(f->answer, "error", &e));
    assert_true(json_object_object_get_ex(e, "message", &m));
    assert_non_null(strstr(json_object_get_string(m), "unknown interaction type"));
}

static void test_ping_pong(void **state)
{
    struct fixture *f = *state;
    make_req(f, "{\"type\":1,\"id\":\"1\",\"application_id\":\"2\",\"token\":\"t\",\"version\":1}", 0, 0);
    call(f);
    assert_int_equal(f->resp.status, 200);
    assert_int_equal(answer_type(f), 1);
    assert_string_equal(gh_buf_cstr(&f->resp.body), "{\"type\":1}");
    assert_int_equal(strlen(f->ctx.log.corr), 16); /* a correlation id per request */
}

static void test_no_public_key(void **state)
{
    struct fixture *f = *state;
    f->cfg.has_public_key = 0;
    make_req(f, "{\"type\":1}", 0, 0);
    call(f);
    assert_int_equal(f->resp.status, 500);
    assert_string_equal(error_code(f), "not_configured");
}

/* ---- routed (PostgreSQL and Redis) -------------------------------------- */

static void test_ping_command_upserts_guild_and_records(void **state)
{
    struct fixture *f = *state;
    NEED_STORES(f);
    uint64_t g = unique_id(), u = unique_id(), id = unique_id();
    char body[2048], gid[24], key[96];
    long long before = metric(f, "gh_commands_total{command=\"ping\",outcome=\"ok\"}");

    command_body(body, sizeof(body), 2, id, g, u, "ping");
    make_req(f, body, 0, 0);
    call(f);
    assert_int_equal(f->resp.status, 200);
    assert_int_equal(answer_type(f), 4);
    assert_non_null(strstr(answer_content(f), "Pong"));
    assert_int_equal(f->ctx.log.guild_id, g);
    assert_int_equal(f->ctx.log.user_id, u);

    /* The guild row exists and is active; Redis remembers it was seen. */
    snprintf(gid, sizeof(gid), "%" PRIu64, g);
    const char *p[1] = {gid};
    PGresult *res =
        gh_pg_exec(f->ctx.pg, "SELECT is_active, deleted_at IS NULL FROM guilds WHERE id = $1", 1, p);
    assert_non_null(res);
    assert_int_equal(PQntuples(res), 1);
    assert_string_equal(PQgetvalue(res, 0, 0), "t");
    assert_string_equal(PQgetvalue(res, 0, 1), "t");
    PQclear(res);
    snprintf(key, sizeof(key), "bot:{%" PRIu64 "}:core:seen", g);
    redisReply *ttl = gh_redis_cmd(f->ctx.redis, "TTL %s", key);
    assert_non_null(ttl);
    assert_true(ttl->integer > 0 && ttl->integer <= 86400);
    freeReplyObject(ttl);

    assert_true(cmdlog_has(f, id, "ping", 1));
    /* Counted in the process until the tick sends it. */
    assert_true(gh_metrics_pending() > 0);
    assert_true(metric(f, "gh_commands_total{command=\"ping\",outcome=\"ok\"}") >= before + 1);

    /* A deactivated guild comes back on its next interaction once the
     * seen-mark is gone and the process has forgotten the guild (10 min). */
    assert_int_equal(gh_pg_command(f->ctx.pg,
                                   "UPDATE guilds SET is_active = false, deleted_at = now() WHERE id = $1", 1,
                                   p),
                     GH_OK);
    redisReply *d = gh_redis_cmd(f->ctx.redis, "DEL %s", key);
    freeReplyObject(d);

    /* Within the 10 minutes the process knows the guild: no round trip, so
     * no new mark, and the row is left alone. */
    command_body(body, sizeof(body), 2, unique_id(), g, u, "ping");
    make_req(f, body, 0, 0);
    call(f);
    assert_int_equal(answer_type(f), 4);
    redisReply *ex = gh_redis_cmd(f->ctx.redis, "EXISTS %s", key);
    assert_non_null(ex);
    assert_int_equal(ex->integer, 0);
    freeReplyObject(ex);
    res = gh_pg_exec(f->ctx.pg, "SELECT is_active FROM guilds WHERE id = $1", 1, p);
    assert_non_null(res);
    assert_string_equal(PQgetvalue(res, 0, 0), "f");
    PQclear(res);

    clock_offset_ms += 11 * 60 * 1000;
    command_body(body, sizeof(body), 2, unique_id(), g, u, "ping");
    make_req(f, body, 0, 0);
    call(f);
    res = gh_pg_exec(f->ctx.pg, "SELECT is_active, deleted_at IS NULL FROM guilds WHERE id = $1", 1, p);
    assert_non_null(res);
    assert_string_equal(PQgetvalue(res, 0, 0), "t");
    assert_string_equal(PQgetvalue(res, 0, 1), "t");
    PQclear(res);
    ex = gh_redis_cmd(f->ctx.redis, "EXISTS %s", key);
    assert_non_null(ex);
    assert_int_equal(ex->integer, 1);
    freeReplyObject(ex);
}

/* Guilds the process saw are not re-marked, even when another process's
 * mark says "seen": one SET NX per guild per 10 minutes, then none. */
static void test_seen_guild_costs_one_round_trip(void **state)
{
    struct fixture *f = *state;
    NEED_STORES(f);
    uint64_t g = unique_id(), u = unique_id();
    char body[2048], key[96], gid[24];
    snprintf(key, sizeof(key), "bot:{%" PRIu64 "}:core:seen", g);
    snprintf(gid, sizeof(gid), "%" PRIu64, g);

    /* Another process already marked it: this one trusts the mark (no
     * upsert: the row does not exist, and stays so). */
    redisReply *m = gh_redis_cmd(f->ctx.redis, "SET %s 1 EX 60", key);
    freeReplyObject(m);
    command_body(body, sizeof(body), 2, unique_id(), g, u, "ping");
    make_req(f, body, 0, 0);
    call(f);
    assert_int_equal(answer_type(f), 4);
    const char *p[1] = {gid};
    PGresult *res = gh_pg_exec(f->ctx.pg, "SELECT 1 FROM guilds WHERE id = $1", 1, p);
    assert_non_null(res);
    assert_int_equal(PQntuples(res), 0);
    PQclear(res);

    /* From now on the process remembers: the mark may go, nothing changes. */
    m = gh_redis_cmd(f->ctx.redis, "DEL %s", key);
    freeReplyObject(m);
    for (int i = 0; i < 3; i++) {
        command_body(body, sizeof(body), 2, unique_id(), g, u, "ping");
        make_req(f, body, 0, 0);
        call(f);
        assert_int_equal(answer_type(f), 4);
    }
    redisReply *ex = gh_redis_cmd(f->ctx.redis, "EXISTS %s", key);
    assert_non_null(ex);
    assert_int_equal(ex->integer, 0);
    freeReplyObject(ex);

    /* Past the 10 minutes: marked and upserted again. */
    clock_offset_ms += 11 * 60 * 1000;
    command_body(body, sizeof(body), 2, unique_id(), g, u, "ping");
    make_req(f, body, 0, 0);
    call(f);
    res = gh_pg_exec(f->ctx.pg, "SELECT is_active FROM guilds WHERE id = $1", 1, p);
    assert_non_null(res);
    assert_int_equal(PQntuples(res), 1);
    PQclear(res);
    ex = gh_redis_cmd(f->ctx.redis, "TTL %s", key);
    assert_non_null(ex);
    assert_true(ex->integer > 3600);
    freeReplyObject(ex);
}

/* Counters of many requests reach Redis as sums, in one flush. */
static void test_counters_are_deferred_and_summed(void **state)
{
    struct fixture *f = *state;
    NEED_STORES(f);
    const char *field = "gh_interactions_total{type=\"rejected\",outcome=\"invalid_signature\"}";
    const char *count = "gh_interaction_duration_seconds_count{type=\"command\"}";
    long long before = metric(f, field), before_count = metric(f, count);
    char body[2048];

    for (int i = 0; i < 5; i++) {
        make_req(f, "{\"type\":1}", 0, 1); /* tampered: rejected */
        call(f);
        assert_int_equal(f->resp.status, 401);
    }
    for (int i = 0; i < 3; i++) {
        command_body(body, sizeof(body), 2, unique_id(), unique_id(), unique_id(), "ping");
        make_req(f, body, 0, 0);
        call(f);
    }
    /* Nothing sent yet: the process holds the sums. */
    redisReply *r = gh_redis_cmd(f->ctx.redis, "HGET %s %s", GH_METRICS_KEY, field);
    long long mid = r && r->type == REDIS_REPLY_STRING ? atoll(r->str) : 0;
    freeReplyObject(r);
    assert_int_equal(mid, before);
    assert_true(gh_metrics_pending() >= 2);

    assert_int_equal(metric(f, field), before + 5);
    assert_int_equal(metric(f, count), before_count + 3);
}

static void test_unknown_command(void **state)
{
    struct fixture *f = *state;
    NEED_STORES(f);
    uint64_t id = unique_id();
    char body[2048];
    command_body(body, sizeof(body), 2, id, unique_id(), unique_id(), "no-such-command");
    make_req(f, body, 0, 0);
    call(f);
    assert_int_equal(f->resp.status, 200);
    assert_int_equal(answer_type(f), 4);
    assert_int_equal(answer_flags(f) & 64, 64);
    assert_string_equal(answer_content(f), GH_IX_MSG_UNKNOWN_COMMAND);
    assert_true(cmdlog_has(f, id, "no-such-command", 0));
}

static void test_disabled_feature(void **state)
{
    struct fixture *f = *state;
    NEED_STORES(f);
    uint64_t g = unique_id(), u = unique_id();
    char body[2048], want[512];
    const struct gh_feature *util = gh_registry_feature("utility");
    assert_non_null(util);
    assert_true(util->can_disable);

    insert_guild(f, g);
    json_object *doc = json_object_new_object();
    json_object_object_add(doc, "enabled", json_object_new_boolean(0));
    int version = 0;
    assert_int_equal(gh_settings_put(&f->ctx, g, "utility", doc, u, -1, &version), GH_OK);
    json_object_put(doc);

    uint64_t id = unique_id();
    command_body(body, sizeof(body), 2, id, g, u, "serverinfo");
    make_req(f, body, 0, 0);
    call(f);
    assert_int_equal(f->resp.status, 200);
    assert_int_equal(answer_type(f), 4);
    assert_int_equal(answer_flags(f) & 64, 64);
    snprintf(want, sizeof(want), GH_IX_FMT_DISABLED, util->title, util->name);
    assert_string_equal(answer_content(f), want);
    assert_non_null(strstr(answer_content(f), "`/feature enable utility`"));
    assert_true(cmdlog_has(f, id, "serverinfo", 0));

    /* Autocomplete for a disabled feature offers no choices. */
    command_body(body, sizeof(body), 4, unique_id(), g, u, "serverinfo");
    make_req(f, body, 0, 0);
    call(f);
    assert_int_equal(answer_type(f), 8);

    /* The same command in a DM is never "disabled". */
}

static void test_handler_failure_is_reported(void **state)
{
    struct fixture *f = *state;
    NEED_STORES(f);
    uint64_t id = unique_id();
    char body[2048], want[256], pattern[200];
    command_body(body, sizeof(body), 2, id, unique_id(), unique_id(), "tboom");
    make_req(f, body, 0, 0);
    call(f);
    assert_int_equal(f->resp.status, 200);
    assert_int_equal(answer_type(f), 4);
    assert_int_equal(answer_flags(f) & 64, 64);
    snprintf(want, sizeof(want), GH_IX_FMT_FAILED, f->ctx.log.corr);
    assert_string_equal(answer_content(f), want);
    assert_true(cmdlog_has(f, id, "tboom", 0));

    /* GH_EPG pages the operator: a core:alert job with this request's
     * correlation id was queued (its dedupe mark stays after a worker ran it). */
    int part = gh_queue_partition(GH_QUEUE_DEFAULT);
    snprintf(pattern, sizeof(pattern), "bot:{q%d}:jobs:%s:seen:core:alert:%s:*", part, GH_QUEUE_DEFAULT,
             f->ctx.log.corr);
    assert_int_equal(key_matching(f, pattern), 1);

    /* The error_log entry carries the correlation id (pending in Redis or
     * already in PostgreSQL). */
    redisReply *r = gh_redis_cmd(f->ctx.redis, "LRANGE bot:{global}:errlog:pending 0 -1");
    int found = 0;
    for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i < r->elements; i++)
        found |= strstr(r->element[i]->str, f->ctx.log.corr) != NULL;
    freeReplyObject(r);
    if (!found) {
        const char *p[1] = {f->ctx.log.corr};
        PGresult *res =
            gh_pg_exec(f->ctx.pg, "SELECT 1 FROM error_log WHERE context::text LIKE '%' || $1 || '%'", 1, p);
        found = res && PQntuples(res) > 0;
        PQclear(res);
    }
    assert_true(found);

    /* A handler that answers nothing is a failure too. */
    command_body(body, sizeof(body), 2, unique_id(), unique_id(), unique_id(), "tsilent");
    make_req(f, body, 0, 0);
    call(f);
    assert_int_equal(answer_type(f), 4);
    assert_non_null(strstr(answer_content(f), "Something went wrong on our side"));
}

static void test_components_and_modals(void **state)
{
    struct fixture *f = *state;
    NEED_STORES(f);
    uint64_t g = unique_id(), u = unique_id(), id = unique_id();
    char body[2048];

    component_body(body, sizeof(body), 3, id, g, u, "test:ok:123");
    make_req(f, body, 0, 0);
    call(f);
    assert_int_equal(f->resp.status, 200);
    assert_int_equal(answer_type(f), 7);
    assert_string_equal(answer_content(f), "component ok");
    assert_true(cmdlog_has(f, id, "component:test:ok:", 1));

    id = unique_id();
    component_body(body, sizeof(body), 3, id, g, u, "gone:button");
    make_req(f, body, 0, 0);
    call(f);
    assert_int_equal(answer_type(f), 4);
    assert_int_equal(answer_flags(f) & 64, 64);
    assert_string_equal(answer_content(f), GH_IX_MSG_EXPIRED_COMPONENT);
    assert_true(cmdlog_has(f, id, "component:unknown", 0));

    /* A modal submit routes like a component. */
    snprintf(body, sizeof(body),
             "{\"type\":5,\"id\":\"%" PRIu64 "\",\"application_id\":\"42\",\"token\":\"tok\",\"version\":1,"
             "\"user\":{\"id\":\"%" PRIu64 "\",\"username\":\"dm\"},"
             "\"data\":{\"custom_id\":\"gone:modal\",\"components\":[]}}",
             unique_id(), u);
    make_req(f, body, 0, 0);
    call(f);
    assert_int_equal(answer_type(f), 4);
    assert_string_equal(answer_content(f), GH_IX_MSG_EXPIRED_COMPONENT);

    /* Autocomplete reaches the command's handler, and an unknown command's
     * autocomplete gets an empty choice list. */
    command_body(body, sizeof(body), 4, unique_id(), g, u, "techo");
    make_req(f, body, 0, 0);
    call(f);
    assert_int_equal(answer_type(f), 8);
    command_body(body, sizeof(body), 4, unique_id(), g, u, "nothing-here");
    make_req(f, body, 0, 0);
    call(f);
    assert_int_equal(answer_type(f), 8);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_method_not_allowed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_body_too_large, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_signature_headers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tampered_body, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stale_and_future_timestamps, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed_json, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_shape, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ping_pong, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_public_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ping_command_upserts_guild_and_records, setup, teardown),
        cmocka_unit_test_setup_teardown(test_seen_guild_costs_one_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_counters_are_deferred_and_summed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_command, setup, teardown),
        cmocka_unit_test_setup_teardown(test_disabled_feature, setup, teardown),
        cmocka_unit_test_setup_teardown(test_handler_failure_is_reported, setup, teardown),
        cmocka_unit_test_setup_teardown(test_components_and_modals, setup, teardown),
    };
    return cmocka_run_group_tests_name("interactions", tests, NULL, NULL);
}
