/* test_core_commands.c - the core and utility features, called directly:
 * a hand-built ctx and interactions parsed from JSON text, no HTTP.
 *
 * gh_rest_do is wrapped (test_core_commands.wrap): the jobs' Discord calls
 * are recorded and answered with a chosen status. Cases that need Redis or
 * PostgreSQL read REDIS_URL / DATABASE_URL (migrations applied) and skip
 * without them; every guild and queue they touch is unique to this run and
 * removed afterwards. */
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

#include "core/config.h"
#include "core/ctx.h"
#include "core/err.h"
#include "core/log.h"
#include "core/str.h"
#include "core/timeutil.h"
#include "discord/interaction.h"
#include "discord/rest.h"
#include "features/core/core.h"
#include "features/registry.h"
#include "features/utility/utility.h"
#include "store/pg.h"
#include "store/queue.h"
#include "store/redis.h"
#include "store/settings.h"

#define APP_ID "1234567890123456789"
#define DEAD_REDIS "redis://127.0.0.1:1/0"
#define DEAD_PG "postgresql://guildhall@127.0.0.1:1/guildhall?connect_timeout=1"
#define PERM_MANAGE_GUILD "32"
#define PERM_ADMIN "8"
#define PERM_NONE "2048"

#define skip_msg(m)                                                                                          \
    do {                                                                                                     \
        fprintf(stderr, "skipped: %s\n", (m));                                                               \
        skip();                                                                                              \
    } while (0)

/* ---- the wrapped REST client --------------------------------------------- */

struct rest_call {
    char method[8];
    char path[512];
    char body[8192];
    int no_auth;
};

static struct rest_call calls[8];
static int n_calls;
static long next_status = 200;
static int next_code;

int __wrap_gh_rest_do(struct gh_rest *rest, const struct gh_rest_req *req, struct gh_rest_resp *resp);
int __wrap_gh_rest_do(struct gh_rest *rest, const struct gh_rest_req *req, struct gh_rest_resp *resp)
{
    (void)rest;
    if (n_calls < (int)(sizeof(calls) / sizeof(calls[0]))) {
        struct rest_call *c = &calls[n_calls];
        snprintf(c->method, sizeof(c->method), "%s", req->method);
        snprintf(c->path, sizeof(c->path), "%s", req->path);
        snprintf(c->body, sizeof(c->body), "%.*s", (int)req->body_len, req->body ? req->body : "");
        c->no_auth = req->no_auth;
    }
    n_calls++;
    memset(resp, 0, sizeof(*resp));
    resp->status = next_status;
    resp->discord_code = next_code;
    resp->body = strdup(next_status < 300 ? "{\"id\":\"1\"}" : "{\"message\":\"no\",\"code\":0}");
    resp->body_len = strlen(resp->body);
    if (next_status >= 200 && next_status < 300)
        return GH_OK;
    snprintf(resp->error, sizeof(resp->error), "HTTP %ld", next_status);
    switch (next_status) {
    case 404:
        return GH_ENOTFOUND;
    case 403:
        return GH_EFORBIDDEN;
    default:
        return next_status >= 500 ? GH_EHTTP : GH_EDISCORD;
    }
}

static void rest_reset(long status, int code)
{
    memset(calls, 0, sizeof(calls));
    n_calls = 0;
    next_status = status;
    next_code = code;
}

/* ---- fixture --------------------------------------------------------------- */

struct fx {
    struct gh_config cfg;
    struct gh_log_sink sink;
    struct gh_ctx ctx;
    struct gh_buf out;
    char queue[64];
    uint64_t guild_id;
    int rest_dummy;
};

static int setup(void **state)
{
    struct fx *fx = calloc(1, sizeof(*fx));

    if (!fx)
        return -1;
    gh_log_sink_init(&fx->sink, "test", GH_LOG_CRIT, NULL, 0, 0);
    gh_logger_init(&fx->ctx.log, &fx->sink, "test");
    snprintf(fx->queue, sizeof(fx->queue), "test-core-%d", (int)getpid());
    fx->ctx.cfg = &fx->cfg;
    fx->ctx.queue = fx->queue;
    fx->ctx.version = "9.9.9-test";
    fx->ctx.started_ms = gh_now_ms() - 3723000;       /* 1h 2m 3s ago */
    fx->ctx.rest = (struct gh_rest *)&fx->rest_dummy; /* never dereferenced: gh_rest_do is wrapped */
    fx->cfg.redis_timeout_ms = 500;
    gh_buf_init(&fx->out, 64 * 1024);
    /* A guild id of this run: pid and time keep parallel runs apart. */
    fx->guild_id = (uint64_t)(gh_now_ms() - 1420070400000LL) << 22 | (uint64_t)(getpid() & 0x3fffff);
    rest_reset(200, 0);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fx *fx = *state;

    gh_redis_free(fx->ctx.redis);
    gh_pg_free(fx->ctx.pg);
    gh_buf_cleanup(&fx->out);
    gh_log_sink_cleanup(&fx->sink);
    free(fx);
    return 0;
}

static int use_redis(struct fx *fx, const char *url)
{
    fx->ctx.redis = gh_redis_new(url, 500, &fx->ctx.log);
    snprintf(fx->cfg.redis_url, sizeof(fx->cfg.redis_url), "%s", url);
    return fx->ctx.redis != NULL;
}

static int use_pg(struct fx *fx, const char *url)
{
    fx->ctx.pg = gh_pg_new(url, 5000, &fx->ctx.log);
    return fx->ctx.pg != NULL;
}

static void drop_queue(struct fx *fx, const char *job_id)
{
    static const char *const lists[] = {"ready", "processing", "dead"};
    char key[256], suffix[200];

    for (size_t i = 0; i < 3; i++)
        if (gh_key_queue(key, sizeof(key), gh_queue_partition(fx->queue), fx->queue, lists[i]) == GH_OK)
            freeReplyObject(gh_redis_cmd(fx->ctx.redis, "DEL %s", key));
    if (job_id) {
        snprintf(suffix, sizeof(suffix), "seen:%s", job_id);
        if (gh_key_queue(key, sizeof(key), gh_queue_partition(fx->queue), fx->queue, suffix) == GH_OK)
            freeReplyObject(gh_redis_cmd(fx->ctx.redis, "DEL %s", key));
    }
}

/* Inserts this run's guild; 0 when the guilds table is unusable. */
static int make_guild(struct fx *fx)
{
    char id[24];
    const char *p[1] = {id};

    snprintf(id, sizeof(id), "%" PRIu64, fx->guild_id);
    return gh_pg_command(fx->ctx.pg,
                         "INSERT INTO guilds (id, name) VALUES ($1, 'Test <Guild> *one*') "
                         "ON CONFLICT (id) DO NOTHING",
                         1, p) == GH_OK;
}

static void drop_guild(struct fx *fx)
{
    char id[24];
    const char *p[1] = {id};

    snprintf(id, sizeof(id), "%" PRIu64, fx->guild_id);
    gh_pg_command(fx->ctx.pg, "DELETE FROM audit_log WHERE guild_id = $1", 1, p);
    gh_pg_command(fx->ctx.pg, "DELETE FROM guilds WHERE id = $1", 1, p);
    gh_settings_invalidate(&fx->ctx, fx->guild_id, "utility");
    gh_settings_invalidate(&fx->ctx, fx->guild_id, "core");
}

/* A snowflake for "now", unique per call. */
static uint64_t fresh_id(void)
{
    static unsigned seq;
    return (uint64_t)(gh_now_ms() - 1420070400000LL) << 22 |
           (uint64_t)((getpid() << 8 | (int)(seq++ & 0xff)) & 0x3fffff);
}

/* Parses an interaction: type (2 or 4), command name, options JSON, member
 * permissions (NULL = a DM). */
static void make_ix(struct fx *fx, struct gh_interaction *ix, uint64_t id, int type, const char *name,
                    const char *options, const char *perms)
{
    char body[8192], who[512], err[256];
    int n;

    if (perms)
        snprintf(who, sizeof(who),
                 "\"guild_id\":\"%" PRIu64 "\",\"guild\":{\"id\":\"%" PRIu64 "\",\"locale\":\"en-US\","
                 "\"features\":[\"COMMUNITY\",\"NEWS\"]},\"context\":0,\"member\":{\"permissions\":\"%s\","
                 "\"roles\":[],\"user\":{\"id\":\"123456789012345678\",\"username\":\"alice\","
                 "\"global_name\":\"Alice\"}}",
                 fx->guild_id, fx->guild_id, perms);
    else
        snprintf(who, sizeof(who),
                 "\"context\":1,\"user\":{\"id\":\"123456789012345678\",\"username\":\"al_ice\","
                 "\"global_name\":null}");
    n = snprintf(body, sizeof(body),
                 "{\"id\":\"%" PRIu64 "\",\"application_id\":\"" APP_ID
                 "\",\"type\":%d,\"token\":\"tok-%" PRIu64
                 "\",\"version\":1,\"channel_id\":\"1112223334445556667\",\"locale\":\"en-GB\",%s,"
                 "\"data\":{\"id\":\"1200000000000000001\",\"name\":\"%s\",\"type\":1%s%s%s}}",
                 id, type, id, who, name, options ? ",\"options\":" : "", options ? options : "",
                 strcmp(name, "userinfo") == 0
                     ? ",\"resolved\":{\"users\":{\"987654321098765432\":{\"id\":\"987654321098765432\","
                       "\"username\":\"bob_*x*\",\"global_name\":\"@everyone\",\"bot\":true}}}"
                     : "");
    assert_true(n > 0 && (size_t)n < sizeof(body));
    if (gh_interaction_parse(body, (size_t)n, ix, err, sizeof(err)) != GH_OK)
        fail_msg("interaction does not parse: %s\n%s", err, body);
}

/* Runs a command's handler and parses the response. Caller puts. */
static json_object *run(struct fx *fx, const char *name, const struct gh_interaction *ix, int want_rc)
{
    const struct gh_command *c = gh_registry_command(name, 1, NULL);
    json_object *resp;
    int rc;

    assert_non_null(c);
    gh_buf_reset(&fx->out);
    rc = c->handler(&fx->ctx, ix, &fx->out);
    if (rc != want_rc)
        fail_msg("/%s returned %s, expected %s", name, gh_errname(rc), gh_errname(want_rc));
    if (rc != GH_OK)
        return NULL;
    resp = json_tokener_parse(gh_buf_cstr(&fx->out));
    if (!resp)
        fail_msg("/%s wrote no JSON: %s", name, gh_buf_cstr(&fx->out));
    return resp;
}

static json_object *path(json_object *o, const char *a, const char *b)
{
    json_object *v = NULL;

    if (!o || !json_object_object_get_ex(o, a, &v))
        return NULL;
    if (b && !json_object_object_get_ex(v, b, &v))
        return NULL;
    return v;
}

static int resp_type(json_object *r)
{
    return json_object_get_int(path(r, "type", NULL));
}

static const char *resp_content(json_object *r)
{
    json_object *c = path(path(r, "data", NULL), "content", NULL);
    return c ? json_object_get_string(c) : "";
}

static int resp_ephemeral(json_object *r)
{
    return (json_object_get_int(path(path(r, "data", NULL), "flags", NULL)) & 64) != 0;
}

/* The whole response as text, for "mentions X somewhere" checks. */
static const char *text(json_object *r)
{
    return json_object_to_json_string_ext(r, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
}

/* ---- schema.json and the C strings --------------------------------------- */

static char *read_file(const char *rel)
{
    static const char *const prefixes[] = {"", "../", "../../", "../../../"};
    char p[512];

    for (size_t i = 0; i < 4; i++) {
        FILE *f;
        char *buf;
        long n;
        snprintf(p, sizeof(p), "%s%s", prefixes[i], rel);
        f = fopen(p, "rb");
        if (!f)
            continue;
        fseek(f, 0, SEEK_END);
        n = ftell(f);
        fseek(f, 0, SEEK_SET);
        buf = calloc(1, (size_t)n + 1);
        if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
            free(buf);
            buf = NULL;
        }
        fclose(f);
        return buf;
    }
    return NULL;
}

static void test_schemas_match_files(void **state)
{
    char *core = read_file("features/core/schema.json");
    char *util = read_file("features/utility/schema.json");

    (void)state;
    if (!core || !util)
        fail_msg("features/*/schema.json not found from %s", getcwd((char[512]){0}, 512));
    assert_string_equal(gh_feature_core.settings_schema, core);
    assert_string_equal(gh_feature_utility.settings_schema, util);
    free(core);
    free(util);
}

/* ---- /ping ----------------------------------------------------------------- */

static void test_ping_inline(void **state)
{
    struct fx *fx = *state;
    struct gh_interaction ix;
    json_object *r;
    long long age = -1;

    make_ix(fx, &ix, fresh_id(), 2, "ping", NULL, NULL);
    r = run(fx, "ping", &ix, GH_OK);
    assert_int_equal(resp_type(r), 4);
    assert_int_equal(strncmp(resp_content(r), "Pong! (", 7), 0);
    assert_int_equal(sscanf(resp_content(r), "Pong! (%lld ms", &age), 1);
    assert_true(age >= 0 && age < 5000);
    assert_false(resp_ephemeral(r));
    assert_non_null(path(path(r, "data", NULL), "allowed_mentions", NULL));
    json_object_put(r);
    gh_interaction_cleanup(&ix);
}

static void test_ping_deferred_without_queue_answers_inline(void **state)
{
    struct fx *fx = *state;
    struct gh_interaction ix;
    json_object *r;

    assert_true(use_redis(fx, DEAD_REDIS));
    make_ix(fx, &ix, fresh_id(), 2, "ping", "[{\"name\":\"deferred\",\"type\":5,\"value\":true}]", PERM_NONE);
    r = run(fx, "ping", &ix, GH_OK);
    assert_int_equal(resp_type(r), 4);
    assert_non_null(strstr(resp_content(r), "job queue is unavailable"));
    json_object_put(r);
    gh_interaction_cleanup(&ix);
}

static void test_ping_deferred_enqueues_once(void **state)
{
    struct fx *fx = *state;
    const char *url = getenv("REDIS_URL");
    struct gh_interaction ix, ix2;
    struct gh_job job;
    json_object *r;
    uint64_t id = fresh_id();
    char job_id[64],
        want_content[] = "Pong! (deferred: edited by a worker {elapsed_ms} ms after the command)";
    const char *opts = "[{\"name\":\"deferred\",\"type\":5,\"value\":true}]";

    if (!url)
        skip_msg("REDIS_URL not set");
    assert_true(use_redis(fx, url));
    snprintf(job_id, sizeof(job_id), "core:followup:%" PRIu64, id);
    drop_queue(fx, job_id);

    make_ix(fx, &ix, id, 2, "ping", opts, PERM_NONE);
    r = run(fx, "ping", &ix, GH_OK);
    assert_int_equal(resp_type(r), 5);
    json_object_put(r);
    assert_int_equal(gh_queue_len(fx->ctx.redis, fx->queue, "ready"), 1);

    /* Discord retried the same interaction: answered, not queued twice. */
    make_ix(fx, &ix2, id, 2, "ping", opts, PERM_NONE);
    r = run(fx, "ping", &ix2, GH_OK);
    assert_int_equal(resp_type(r), 5);
    json_object_put(r);
    assert_int_equal(gh_queue_len(fx->ctx.redis, fx->queue, "ready"), 1);

    /* The job: kind, id, deadline inside the token's 15 minutes, payload. */
    memset(&job, 0, sizeof(job));
    assert_int_equal(gh_queue_pop(fx->ctx.redis, fx->queue, 1, &job), GH_OK);
    assert_string_equal(job.kind, "core:followup");
    assert_string_equal(job.id, job_id);
    assert_int_equal(job.guild_id, fx->guild_id);
    assert_int_equal(job.deadline_ms, gh_snowflake_ms(id) + 15 * 60 * 1000 - 30 * 1000);
    assert_string_equal(json_object_get_string(path(job.payload, "application_id", NULL)), APP_ID);
    assert_string_equal(json_object_get_string(path(job.payload, "content", NULL)), want_content);
    assert_non_null(strstr(json_object_get_string(path(job.payload, "token", NULL)), "tok-"));

    /* Run it: one PATCH of @original, without the bot token. */
    rest_reset(200, 0);
    assert_int_equal(gh_registry_job("core:followup", NULL)->run(&fx->ctx, &job), GH_OK);
    assert_int_equal(n_calls, 1);
    assert_string_equal(calls[0].method, "PATCH");
    {
        char want_path[256];
        snprintf(want_path, sizeof(want_path), "/webhooks/" APP_ID "/tok-%" PRIu64 "/messages/@original", id);
        assert_string_equal(calls[0].path, want_path);
    }
    assert_int_equal(calls[0].no_auth, 1);
    assert_non_null(strstr(calls[0].body, "Pong! (deferred: edited by a worker "));
    assert_non_null(strstr(calls[0].body, " ms after the command)"));
    assert_null(strstr(calls[0].body, "{elapsed_ms}"));
    assert_non_null(strstr(calls[0].body, "\"allowed_mentions\":{\"parse\":[]}"));

    assert_int_equal(gh_queue_ack(fx->ctx.redis, fx->queue, &job), GH_OK);
    gh_job_cleanup(&job);
    drop_queue(fx, job_id);
    gh_interaction_cleanup(&ix);
    gh_interaction_cleanup(&ix2);
}

/* ---- core:followup and core:alert against chosen REST outcomes -------------- */

static void make_job(struct gh_job *job, const char *kind, const char *payload)
{
    memset(job, 0, sizeof(*job));
    snprintf(job->id, sizeof(job->id), "%s:test", kind);
    snprintf(job->kind, sizeof(job->kind), "%s", kind);
    job->payload = json_tokener_parse(payload);
    job->attempt = 1;
    assert_non_null(job->payload);
}

static void test_followup_outcomes(void **state)
{
    struct fx *fx = *state;
    const struct gh_job_kind *k = gh_registry_job("core:followup", NULL);
    struct gh_job job;

    make_job(&job, "core:followup",
             "{\"application_id\":\"" APP_ID "\",\"token\":\"abc.DEF-_1\","
             "\"content\":\"hello {elapsed_ms}\"}");
    rest_reset(404, 10062); /* unknown interaction: expired, nothing to edit -> done */
    assert_int_equal(k->run(&fx->ctx, &job), GH_OK);
    assert_int_equal(n_calls, 1);
    rest_reset(400, 10015); /* unknown webhook -> done too */
    assert_int_equal(k->run(&fx->ctx, &job), GH_OK);
    rest_reset(503, 0); /* Discord down -> an error, so the worker retries */
    assert_int_equal(k->run(&fx->ctx, &job), GH_EHTTP);
    gh_job_cleanup(&job);

    /* A token that could change the path is refused without a call. */
    make_job(&job, "core:followup",
             "{\"application_id\":\"" APP_ID "\",\"token\":\"../../channels/1\","
             "\"content\":\"x\"}");
    rest_reset(200, 0);
    assert_int_equal(k->run(&fx->ctx, &job), GH_EINVAL);
    assert_int_equal(n_calls, 0);
    gh_job_cleanup(&job);

    make_job(&job, "core:followup", "{\"token\":\"abc\"}");
    assert_int_equal(k->run(&fx->ctx, &job), GH_EINVAL);
    assert_int_equal(n_calls, 0);
    gh_job_cleanup(&job);
}

static void test_alert_channels(void **state)
{
    struct fx *fx = *state;
    const struct gh_job_kind *k = gh_registry_job("core:alert", NULL);
    struct gh_job job;

    /* No channel anywhere: logged only, done, no call. */
    make_job(&job, "core:alert", "{\"message\":\"disk full\",\"corr\":\"c1\"}");
    rest_reset(200, 0);
    assert_int_equal(k->run(&fx->ctx, &job), GH_OK);
    assert_int_equal(n_calls, 0);

    /* The operator's channel; user text escaped, no pings. */
    gh_job_cleanup(&job);
    make_job(&job, "core:alert", "{\"message\":\"boom @everyone *x*\",\"corr\":\"c2\"}");
    fx->cfg.alert_channel_id = 555000000000000001ULL;
    rest_reset(200, 0);
    assert_int_equal(k->run(&fx->ctx, &job), GH_OK);
    assert_int_equal(n_calls, 1);
    assert_string_equal(calls[0].method, "POST");
    assert_string_equal(calls[0].path, "/channels/555000000000000001/messages");
    assert_int_equal(calls[0].no_auth, 0);
    assert_non_null(strstr(calls[0].body, "\"embeds\":[{"));
    assert_non_null(strstr(calls[0].body, "\"allowed_mentions\":{\"parse\":[]}"));
    assert_null(strstr(calls[0].body, "@everyone *x*"));
    assert_non_null(strstr(calls[0].body, "c2"));

    /* Discord refuses for good (403): logged, done; a 5xx: retried. */
    rest_reset(403, 50001);
    assert_int_equal(k->run(&fx->ctx, &job), GH_OK);
    rest_reset(502, 0);
    assert_int_equal(k->run(&fx->ctx, &job), GH_EHTTP);
    gh_job_cleanup(&job);

    make_job(&job, "core:alert", "{\"corr\":\"c3\"}");
    assert_int_equal(k->run(&fx->ctx, &job), GH_EINVAL);
    gh_job_cleanup(&job);
}

static void test_alert_guild_channel(void **state)
{
    struct fx *fx = *state;
    const char *db = getenv("DATABASE_URL"), *url = getenv("REDIS_URL");
    const struct gh_job_kind *k = gh_registry_job("core:alert", NULL);
    json_object *doc;
    struct gh_job job;
    char payload[256];
    int v = 0;

    if (!db || !url)
        skip_msg("DATABASE_URL and REDIS_URL not set");
    assert_true(use_pg(fx, db) && use_redis(fx, url));
    if (!make_guild(fx))
        skip_msg("guilds table unusable (migrations not applied?)");
    doc = json_tokener_parse("{\"alert_channel_id\":\"777000000000000001\"}");
    assert_int_equal(gh_settings_put(&fx->ctx, fx->guild_id, "core", doc, 0, -1, &v), GH_OK);
    json_object_put(doc);
    fx->cfg.alert_channel_id = 555000000000000001ULL;

    snprintf(payload, sizeof(payload), "{\"guild_id\":\"%" PRIu64 "\",\"message\":\"m\"}", fx->guild_id);
    make_job(&job, "core:alert", payload);
    rest_reset(200, 0);
    assert_int_equal(k->run(&fx->ctx, &job), GH_OK);
    assert_int_equal(n_calls, 1);
    assert_string_equal(calls[0].path, "/channels/777000000000000001/messages");

    /* The guild's channel is gone: the operator hears it instead. */
    rest_reset(404, 10003);
    assert_int_equal(k->run(&fx->ctx, &job), GH_OK);
    assert_int_equal(n_calls, 2);
    assert_string_equal(calls[1].path, "/channels/555000000000000001/messages");
    gh_job_cleanup(&job);
    drop_guild(fx);
}

static void test_alert_enqueue(void **state)
{
    struct fx *fx = *state;
    const char *url = getenv("REDIS_URL");
    struct gh_job job;

    if (!url)
        skip_msg("REDIS_URL not set");
    assert_true(use_redis(fx, url));
    drop_queue(fx, NULL);
    snprintf(fx->ctx.log.corr, sizeof(fx->ctx.log.corr), "corr%d", (int)getpid());
    assert_int_equal(gh_core_alert_enqueue(&fx->ctx, fx->guild_id, "handler failed"), GH_OK);
    assert_int_equal(gh_core_alert_enqueue(&fx->ctx, fx->guild_id, "handler failed"), GH_EDUPLICATE);
    assert_int_equal(gh_core_alert_enqueue(&fx->ctx, fx->guild_id, ""), GH_EINVAL);
    assert_int_equal(gh_queue_len(fx->ctx.redis, fx->queue, "ready"), 1);
    memset(&job, 0, sizeof(job));
    assert_int_equal(gh_queue_pop(fx->ctx.redis, fx->queue, 1, &job), GH_OK);
    assert_string_equal(job.kind, "core:alert");
    assert_string_equal(json_object_get_string(path(job.payload, "message", NULL)), "handler failed");
    assert_true(job.deadline_ms > gh_now_ms());
    drop_queue(fx, job.id);
    gh_job_cleanup(&job);

    /* Redis down: not queued, reported. */
    gh_redis_free(fx->ctx.redis);
    fx->ctx.redis = NULL;
    assert_true(use_redis(fx, DEAD_REDIS));
    assert_int_equal(gh_core_alert_enqueue(&fx->ctx, 0, "x"), GH_EREDIS);
}

static void test_jobs_edge_payloads(void **state)
{
    struct fx *fx = *state;
    const struct gh_job_kind *alert = gh_registry_job("core:alert", NULL);
    const struct gh_job_kind *followup = gh_registry_job("core:followup", NULL);
    const char *url = getenv("REDIS_URL");
    struct gh_rest *saved;
    struct gh_job job;

    /* A guild id given as a number; its settings unreadable (no stores):
     * the operator's channel gets the alert. */
    assert_true(use_pg(fx, DEAD_PG) && use_redis(fx, DEAD_REDIS));
    fx->cfg.alert_channel_id = 555000000000000002ULL;
    make_job(&job, "core:alert", "{\"guild_id\":424242424242424242,\"message\":\"m\",\"corr\":\"c9\"}");
    rest_reset(200, 0);
    assert_int_equal(alert->run(&fx->ctx, &job), GH_OK);
    assert_int_equal(n_calls, 1);
    assert_string_equal(calls[0].path, "/channels/555000000000000002/messages");
    gh_job_cleanup(&job);

    /* No REST client in this process: the follow-up fails so it is retried. */
    make_job(&job, "core:followup",
             "{\"application_id\":\"" APP_ID "\",\"token\":\"abc.DEF-_1\",\"content\":\"hi\"}");
    saved = fx->ctx.rest;
    fx->ctx.rest = NULL;
    rest_reset(200, 0);
    assert_int_equal(followup->run(&fx->ctx, &job), GH_EUNAVAILABLE);
    assert_int_equal(n_calls, 0);
    fx->ctx.rest = saved;
    gh_job_cleanup(&job);

    /* Alerts without a correlation id get a time-based id; without Redis
     * they are not queued. */
    gh_redis_free(fx->ctx.redis);
    fx->ctx.redis = NULL;
    fx->ctx.log.corr[0] = '\0';
    assert_int_equal(gh_core_alert_enqueue(&fx->ctx, 0, "no redis"), GH_EREDIS);
    assert_int_equal(gh_core_alert_enqueue(&fx->ctx, 0, NULL), GH_EINVAL);
    if (!url)
        return;
    assert_true(use_redis(fx, url));
    drop_queue(fx, NULL);
    assert_int_equal(gh_core_alert_enqueue(&fx->ctx, 0, "uncorrelated"), GH_OK);
    memset(&job, 0, sizeof(job));
    assert_int_equal(gh_queue_pop(fx->ctx.redis, fx->queue, 1, &job), GH_OK);
    assert_true(strncmp(job.id, "core:alert:t", 12) == 0);
    drop_queue(fx, job.id);
    gh_job_cleanup(&job);
}

/* ---- /status ---------------------------------------------------------------- */

static void test_status_all_down(void **state)
{
    struct fx *fx = *state;
    struct gh_interaction ix;
    json_object *r;
    const char *c;

    assert_true(use_redis(fx, DEAD_REDIS));
    assert_true(use_pg(fx, DEAD_PG));
    make_ix(fx, &ix, fresh_id(), 2, "status", NULL, NULL);
    r = run(fx, "status", &ix, GH_OK);
    c = resp_content(r);
    assert_int_equal(resp_type(r), 4);
    assert_true(resp_ephemeral(r));
    assert_non_null(strstr(c, "Guildhall 9.9.9-test"));
    assert_non_null(strstr(c, "**Uptime:** 1h 2m "));
    assert_non_null(strstr(c, "**Redis:** down"));
    assert_non_null(strstr(c, "**PostgreSQL:** down"));
    assert_non_null(strstr(c, "**Queue:** unknown (Redis down)"));
    assert_non_null(strstr(c, "**Guilds:** unknown"));
    json_object_put(r);
    gh_interaction_cleanup(&ix);
}

static void test_status_redis_down_postgres_up(void **state)
{
    struct fx *fx = *state;
    const char *db = getenv("DATABASE_URL");
    struct gh_interaction ix;
    json_object *r;
    const char *c;

    if (!db)
        skip_msg("DATABASE_URL not set");
    assert_true(use_redis(fx, DEAD_REDIS));
    assert_true(use_pg(fx, db));
    make_ix(fx, &ix, fresh_id(), 2, "status", NULL, PERM_NONE);
    r = run(fx, "status", &ix, GH_OK);
    c = resp_content(r);
    assert_non_null(strstr(c, "**Redis:** down"));
    assert_non_null(strstr(c, "**PostgreSQL:** ok ("));
    assert_non_null(strstr(c, "**Guilds:** "));
    assert_null(strstr(c, "**Guilds:** unknown"));
    json_object_put(r);
    gh_interaction_cleanup(&ix);
}

static void test_status_shards_and_queue(void **state)
{
    struct fx *fx = *state;
    const char *url = getenv("REDIS_URL");
    struct gh_interaction ix;
    json_object *r, *payload;
    char shard[16], key[64];
    const char *c;

    if (!url)
        skip_msg("REDIS_URL not set");
    assert_true(use_redis(fx, url));
    drop_queue(fx, NULL);
    /* A shard id no real gateway uses, removed afterwards. */
    snprintf(shard, sizeof(shard), "99%d", (int)(getpid() % 10000));
    snprintf(key, sizeof(key), "bot:{global}:shards:%s", shard);
    freeReplyObject(gh_redis_cmd(fx->ctx.redis, "SADD bot:{global}:shards %s", shard));
    freeReplyObject(gh_redis_cmd(fx->ctx.redis,
                                 "HSET %s state ready guilds 42 latency_ms 37 last_heartbeat_ms %lld", key,
                                 (long long)(gh_now_ms() - 5000)));
    freeReplyObject(gh_redis_cmd(fx->ctx.redis, "EXPIRE %s 60", key));
    payload = json_object_new_object();
    assert_int_equal(
        gh_queue_enqueue(fx->ctx.redis, fx->queue, "status-test-job", "core:alert", 0, payload, 0), GH_OK);
    json_object_put(payload);

    make_ix(fx, &ix, fresh_id(), 2, "status", NULL, PERM_NONE);
    r = run(fx, "status", &ix, GH_OK);
    c = resp_content(r);
    assert_non_null(strstr(c, "**Redis:** ok ("));
    {
        char want[96];
        snprintf(want, sizeof(want), "shard %s: ready, 42 guilds, 37 ms, last heartbeat 5s ago", shard);
        if (!strstr(c, want)) /* a slow machine may round to 6 s */
            snprintf(want, sizeof(want), "shard %s: ready, 42 guilds, 37 ms, last heartbeat ", shard);
        assert_non_null(strstr(c, want));
    }
    assert_non_null(strstr(c, "**Queue:** 1 ready"));
    json_object_put(r);

    freeReplyObject(gh_redis_cmd(fx->ctx.redis, "SREM bot:{global}:shards %s", shard));
    freeReplyObject(gh_redis_cmd(fx->ctx.redis, "DEL %s", key));
    drop_queue(fx, "status-test-job");
    gh_interaction_cleanup(&ix);
}

/* Many shards: sorted by number, ten shown, missing fields as "?", the age
 * of each heartbeat in days, hours, minutes or seconds. */
static void test_status_many_shards(void **state)
{
    struct fx *fx = *state;
    const char *url = getenv("REDIS_URL");
    static const long long age_s[] = {2 * 86400 + 3600, 2 * 3600 + 60, 3 * 60 + 4, 0};
    struct gh_interaction ix;
    char key[64], ready[256];
    redisReply *rep;
    json_object *r;
    const char *c;
    int i;

    if (!url)
        skip_msg("REDIS_URL not set");
    assert_true(use_redis(fx, url));
    rep = gh_redis_cmd(fx->ctx.redis, "SCARD bot:{global}:shards");
    assert_non_null(rep);
    if (rep->integer != 0) {
        freeReplyObject(rep);
        skip_msg("other shards are reporting");
    }
    freeReplyObject(rep);
    for (i = 11; i >= 0; i--) { /* added out of order */
        freeReplyObject(gh_redis_cmd(fx->ctx.redis, "SADD bot:{global}:shards %d", i));
        snprintf(key, sizeof(key), "bot:{global}:shards:%d", i);
        if (i < 4)
            freeReplyObject(gh_redis_cmd(fx->ctx.redis,
                                         "HSET %s state ready guilds %d latency_ms 5 "
                                         "last_heartbeat_ms %lld",
                                         key, i, (long long)(gh_now_ms() - age_s[i] * 1000)));
        else if (i == 4)
            freeReplyObject(gh_redis_cmd(fx->ctx.redis, "HSET %s state resuming", key));
        freeReplyObject(gh_redis_cmd(fx->ctx.redis, "EXPIRE %s 60", key));
    }
    /* The queue's ready list is not a list: its length is unknown. */
    gh_key_queue(ready, sizeof(ready), gh_queue_partition(fx->queue), fx->queue, "ready");
    freeReplyObject(gh_redis_cmd(fx->ctx.redis, "SET %s x EX 60", ready));

    make_ix(fx, &ix, fresh_id(), 2, "status", NULL, PERM_NONE);
    r = run(fx, "status", &ix, GH_OK);
    c = resp_content(r);
    assert_non_null(strstr(c, "**Shards:** 12 reporting"));
    assert_non_null(strstr(c, "- shard 0: ready, 0 guilds, 5 ms, last heartbeat 2d 1h 0m ago"));
    assert_non_null(strstr(c, "- shard 1: ready, 1 guilds, 5 ms, last heartbeat 2h 1m "));
    assert_non_null(strstr(c, "- shard 2: ready, 2 guilds, 5 ms, last heartbeat 3m "));
    assert_non_null(strstr(c, "- shard 3: ready, 3 guilds, 5 ms, last heartbeat 0s ago"));
    assert_non_null(strstr(c, "- shard 4: resuming, ? guilds, ? ms, last heartbeat ?"));
    assert_non_null(strstr(c, "- shard 9: ?, ? guilds, ? ms, last heartbeat ?"));
    assert_null(strstr(c, "- shard 10:"));
    assert_non_null(strstr(c, "- and 2 more"));
    assert_non_null(strstr(c, "**Queue:** unknown (Redis error)"));
    assert_true(strstr(c, "- shard 2:") < strstr(c, "- shard 9:"));
    json_object_put(r);
    gh_interaction_cleanup(&ix);

    /* The shard set itself unreadable. */
    freeReplyObject(gh_redis_cmd(fx->ctx.redis, "DEL bot:{global}:shards"));
    freeReplyObject(gh_redis_cmd(fx->ctx.redis, "SET bot:{global}:shards oops EX 60"));
    make_ix(fx, &ix, fresh_id(), 2, "status", NULL, PERM_NONE);
    r = run(fx, "status", &ix, GH_OK);
    assert_non_null(strstr(resp_content(r), "**Shards:** unknown (Redis error)"));
    json_object_put(r);
    gh_interaction_cleanup(&ix);
    freeReplyObject(gh_redis_cmd(fx->ctx.redis, "DEL bot:{global}:shards"));
    for (i = 0; i < 12; i++)
        freeReplyObject(gh_redis_cmd(fx->ctx.redis, "DEL bot:{global}:shards:%d", i));
    freeReplyObject(gh_redis_cmd(fx->ctx.redis, "DEL %s", ready));
}

/* ---- /help ------------------------------------------------------------------ */

static void test_help_lists_every_command(void **state)
{
    struct fx *fx = *state;
    struct gh_interaction ix;
    json_object *r;
    const char *t;

    make_ix(fx, &ix, fresh_id(), 2, "help", NULL, NULL); /* DM: no settings needed */
    r = run(fx, "help", &ix, GH_OK);
    assert_int_equal(resp_type(r), 4);
    assert_true(resp_ephemeral(r));
    t = text(r);
    for (size_t i = 0; gh_features[i]; i++) {
        assert_non_null(strstr(t, gh_features[i]->title));
        for (size_t j = 0; j < gh_features[i]->n_commands; j++) {
            char want[64];
            if (gh_features[i]->commands[j].type != 1)
                continue; /* context menus are not listed */
            snprintf(want, sizeof(want), "`/%s", gh_features[i]->commands[j].name);
            if (!strstr(t, want))
                fail_msg("/help does not list %s", want);
        }
    }
    assert_non_null(strstr(t, "`/feature enable` - "));
    assert_non_null(strstr(t, "always on"));
    assert_non_null(strstr(t, "on by default"));
    json_object_put(r);
    gh_interaction_cleanup(&ix);
}

static void test_help_one_command(void **state)
{
    struct fx *fx = *state;
    struct gh_interaction ix;
    json_object *r;

    make_ix(fx, &ix, fresh_id(), 2, "help", "[{\"name\":\"command\",\"type\":3,\"value\":\"feature\"}]",
            NULL);
    r = run(fx, "help", &ix, GH_OK);
    assert_non_null(strstr(text(r), "\"title\":\"/feature\""));
    assert_non_null(strstr(text(r), "Manage Guild"));
    assert_non_null(strstr(text(r), "servers only"));
    json_object_put(r);
    gh_interaction_cleanup(&ix);

    make_ix(fx, &ix, fresh_id(), 2, "help", "[{\"name\":\"command\",\"type\":3,\"value\":\"nope_*x*\"}]",
            NULL);
    r = run(fx, "help", &ix, GH_OK);
    assert_non_null(strstr(resp_content(r), "no command named"));
    assert_null(strstr(resp_content(r), "*x*")); /* echoed text is escaped */
    json_object_put(r);
    gh_interaction_cleanup(&ix);
}

static void test_help_autocomplete(void **state)
{
    struct fx *fx = *state;
    struct gh_interaction ix;
    json_object *r, *choices;

    make_ix(fx, &ix, fresh_id(), 4, "help",
            "[{\"name\":\"command\",\"type\":3,\"value\":\"s\",\"focused\":true}]", NULL);
    r = run(fx, "help", &ix, GH_OK);
    assert_int_equal(resp_type(r), 8);
    choices = path(path(r, "data", NULL), "choices", NULL);
    assert_non_null(choices);
    /* Prefix matches first, then the rest containing "s": slash commands only,
     * up to Discord's 25 choices. */
    {
        size_t prefix = 0, contains = 0, n = json_object_array_length(choices), seen_other = 0;
        for (size_t i = 0; gh_features[i]; i++)
            for (size_t j = 0; j < gh_features[i]->n_commands; j++) {
                const struct gh_command *c = &gh_features[i]->commands[j];
                if (c->type != 1)
                    continue;
                if (c->name[0] == 's')
                    prefix++;
                else if (strchr(c->name, 's'))
                    contains++;
            }
        assert_int_equal(n, prefix + contains < 25 ? prefix + contains : 25);
        for (size_t k = 0; k < n; k++) {
            const char *v =
                json_object_get_string(path(json_object_array_get_idx(choices, k), "value", NULL));
            assert_non_null(strchr(v, 's'));
            if (v[0] != 's')
                seen_other = 1;
            else
                assert_false(seen_other); /* no prefix match after a contains match */
        }
    }
    json_object_put(r);
    gh_interaction_cleanup(&ix);

    make_ix(fx, &ix, fresh_id(), 4, "help",
            "[{\"name\":\"command\",\"type\":3,\"value\":\"\",\"focused\":true}]", NULL);
    r = run(fx, "help", &ix, GH_OK);
    choices = path(path(r, "data", NULL), "choices", NULL);
    {
        size_t total = 0; /* every slash command, up to Discord's 25 choices */
        for (size_t i = 0; gh_features[i]; i++)
            for (size_t j = 0; j < gh_features[i]->n_commands; j++)
                total += gh_features[i]->commands[j].type == 1;
        assert_int_equal(json_object_array_length(choices), total < 25 ? total : 25);
    }
    json_object_put(r);
    gh_interaction_cleanup(&ix);
}

/* ---- /feature --------------------------------------------------------------- */

static void test_feature_needs_manage_guild(void **state)
{
    struct fx *fx = *state;
    struct gh_interaction ix;
    json_object *r;

    /* ctx has no stores: a write attempt would fail, the refusal must come first. */
    make_ix(fx, &ix, fresh_id(), 2, "feature",
            "[{\"name\":\"disable\",\"type\":1,\"options\":[{\"name\":\"name\",\"type\":3,\"value\":"
            "\"utility\"}]}]",
            PERM_NONE);
    r = run(fx, "feature", &ix, GH_OK);
    assert_int_equal(resp_type(r), 4);
    assert_true(resp_ephemeral(r));
    assert_non_null(strstr(resp_content(r), "You need the **Manage Guild** permission"));
    json_object_put(r);
    gh_interaction_cleanup(&ix);
}

static void test_feature_cannot_disable_core(void **state)
{
    struct fx *fx = *state;
    struct gh_interaction ix;
    json_object *r;

    /* ADMINISTRATOR implies Manage Server. */
    make_ix(
        fx, &ix, fresh_id(), 2, "feature",
        "[{\"name\":\"disable\",\"type\":1,\"options\":[{\"name\":\"name\",\"type\":3,\"value\":\"core\"}]}]",
        PERM_ADMIN);
    r = run(fx, "feature", &ix, GH_OK);
    assert_string_equal(resp_content(r), "Core can't be turned off.");
    assert_true(resp_ephemeral(r));
    json_object_put(r);
    gh_interaction_cleanup(&ix);

    make_ix(
        fx, &ix, fresh_id(), 2, "feature",
        "[{\"name\":\"enable\",\"type\":1,\"options\":[{\"name\":\"name\",\"type\":3,\"value\":\"nope\"}]}]",
        PERM_MANAGE_GUILD);
    r = run(fx, "feature", &ix, GH_OK);
    assert_non_null(strstr(resp_content(r), "There is no feature named \"nope\""));
    json_object_put(r);
    gh_interaction_cleanup(&ix);
}

static void test_feature_in_dm_refused(void **state)
{
    struct fx *fx = *state;
    struct gh_interaction ix;
    json_object *r;

    make_ix(fx, &ix, fresh_id(), 2, "feature", "[{\"name\":\"list\",\"type\":1}]", NULL);
    r = run(fx, "feature", &ix, GH_OK);
    assert_non_null(strstr(resp_content(r), "only works in a server"));
    json_object_put(r);
    gh_interaction_cleanup(&ix);
}

static void test_feature_disable_enable_roundtrip(void **state)
{
    struct fx *fx = *state;
    const char *db = getenv("DATABASE_URL"), *url = getenv("REDIS_URL");
    struct gh_interaction ix;
    json_object *r, *doc = NULL, *v = NULL;
    int version = 0;
    const char *dis =
        "[{\"name\":\"disable\",\"type\":1,\"options\":[{\"name\":\"name\",\"type\":3,\"value\":"
        "\"utility\"}]}]";
    const char *en = "[{\"name\":\"enable\",\"type\":1,\"options\":[{\"name\":\"name\",\"type\":3,\"value\":"
                     "\"utility\"}]}]";

    if (!db || !url)
        skip_msg("DATABASE_URL and REDIS_URL not set");
    assert_true(use_pg(fx, db) && use_redis(fx, url));
    if (!make_guild(fx))
        skip_msg("guilds table unusable (migrations not applied?)");
    /* A document with another member: the switch must keep it. */
    doc = json_tokener_parse("{\"kept\":\"yes\"}");
    assert_int_equal(gh_settings_put(&fx->ctx, fx->guild_id, "utility", doc, 0, -1, &version), GH_OK);
    json_object_put(doc);
    assert_int_equal(gh_settings_feature_enabled(&fx->ctx, fx->guild_id, "utility", 1), 1);

    make_ix(fx, &ix, fresh_id(), 2, "feature", dis, PERM_MANAGE_GUILD);
    r = run(fx, "feature", &ix, GH_OK);
    assert_string_equal(resp_content(r), "**Utility** is now disabled in this server. Its commands answer "
                                         "\"disabled\" until `/feature enable name:utility`.");
    json_object_put(r);
    gh_interaction_cleanup(&ix);
    assert_int_equal(gh_settings_feature_enabled(&fx->ctx, fx->guild_id, "utility", 1), 0);
    assert_int_equal(gh_settings_get(&fx->ctx, fx->guild_id, "utility", &doc, &version), GH_OK);
    assert_true(json_object_object_get_ex(doc, "enabled", &v));
    assert_false(json_object_get_boolean(v));
    assert_true(json_object_object_get_ex(doc, "kept", &v));
    json_object_put(doc);

    /* Again: nothing to change. */
    make_ix(fx, &ix, fresh_id(), 2, "feature", dis, PERM_MANAGE_GUILD);
    r = run(fx, "feature", &ix, GH_OK);
    assert_non_null(strstr(resp_content(r), "already disabled"));
    json_object_put(r);
    gh_interaction_cleanup(&ix);

    /* /feature list and /help show it off. */
    make_ix(fx, &ix, fresh_id(), 2, "feature", "[{\"name\":\"list\",\"type\":1}]", PERM_MANAGE_GUILD);
    r = run(fx, "feature", &ix, GH_OK);
    assert_non_null(strstr(resp_content(r), "**Utility** (`utility`): disabled"));
    assert_non_null(strstr(resp_content(r), "**Core** (`core`): always on"));
    json_object_put(r);
    gh_interaction_cleanup(&ix);
    make_ix(fx, &ix, fresh_id(), 2, "help", NULL, PERM_NONE);
    r = run(fx, "help", &ix, GH_OK);
    assert_non_null(strstr(text(r), "**Utility** (disabled in this server)"));
    json_object_put(r);
    gh_interaction_cleanup(&ix);

    make_ix(fx, &ix, fresh_id(), 2, "feature", en, PERM_MANAGE_GUILD);
    r = run(fx, "feature", &ix, GH_OK);
    assert_string_equal(resp_content(r), "**Utility** is now enabled in this server.");
    json_object_put(r);
    gh_interaction_cleanup(&ix);
    assert_int_equal(gh_settings_feature_enabled(&fx->ctx, fx->guild_id, "utility", 1), 1);
    drop_guild(fx);
}

static void test_feature_store_down_is_an_error(void **state)
{
    struct fx *fx = *state;
    struct gh_interaction ix;

    assert_true(use_pg(fx, DEAD_PG) && use_redis(fx, DEAD_REDIS));
    make_ix(fx, &ix, fresh_id(), 2, "feature",
            "[{\"name\":\"enable\",\"type\":1,\"options\":[{\"name\":\"name\",\"type\":3,\"value\":"
            "\"utility\"}]}]",
            PERM_MANAGE_GUILD);
    /* The router answers an ephemeral error with the correlation id. */
    assert_null(run(fx, "feature", &ix, GH_EPG));
    gh_interaction_cleanup(&ix);
}

static void test_feature_autocomplete(void **state)
{
    struct fx *fx = *state;
    struct gh_interaction ix;
    json_object *r, *choices;

    make_ix(fx, &ix, fresh_id(), 4, "feature",
            "[{\"name\":\"disable\",\"type\":1,\"options\":[{\"name\":\"name\",\"type\":3,\"value\":\"\","
            "\"focused\":true}]}]",
            PERM_MANAGE_GUILD);
    r = run(fx, "feature", &ix, GH_OK);
    assert_int_equal(resp_type(r), 8);
    choices = path(path(r, "data", NULL), "choices", NULL);
    {
        size_t n = 0; /* only features that can be turned off (core and premium cannot) */
        for (size_t i = 0; gh_features[i]; i++)
            n += gh_features[i]->can_disable;
        assert_int_equal(json_object_array_length(choices), n);
        for (size_t k = 0; k < n; k++) {
            const struct gh_feature *f = gh_registry_feature(
                json_object_get_string(path(json_object_array_get_idx(choices, k), "value", NULL)));
            assert_non_null(f);
            assert_true(f->can_disable);
        }
    }
    json_object_put(r);
    gh_interaction_cleanup(&ix);

    make_ix(fx, &ix, fresh_id(), 4, "feature",
            "[{\"name\":\"enable\",\"type\":1,\"options\":[{\"name\":\"name\",\"type\":3,\"value\":\"CO\","
            "\"focused\":true}]}]",
            PERM_MANAGE_GUILD);
    r = run(fx, "feature", &ix, GH_OK);
    choices = path(path(r, "data", NULL), "choices", NULL);
    assert_int_equal(json_object_array_length(choices), 1);
    assert_string_equal(json_object_get_string(path(json_object_array_get_idx(choices, 0), "value", NULL)),
                        "core");
    json_object_put(r);
    gh_interaction_cleanup(&ix);
}

/* ---- utility ---------------------------------------------------------------- */

static void test_serverinfo(void **state)
{
    struct fx *fx = *state;
    const char *db = getenv("DATABASE_URL");
    struct gh_interaction ix;
    json_object *r;
    char want[64];
    const char *t;

    if (db) {
        assert_true(use_pg(fx, db));
        if (!make_guild(fx))
            skip_msg("guilds table unusable (migrations not applied?)");
    } else {
        assert_true(use_pg(fx, DEAD_PG));
    }
    make_ix(fx, &ix, fresh_id(), 2, "serverinfo", NULL, PERM_NONE);
    r = run(fx, "serverinfo", &ix, GH_OK);
    t = text(r);
    assert_int_equal(resp_type(r), 4);
    snprintf(want, sizeof(want), "\"value\":\"%" PRIu64 "\"", fx->guild_id);
    assert_non_null(strstr(t, want));
    snprintf(want, sizeof(want), "<t:%lld:D>", (long long)(gh_snowflake_ms(fx->guild_id) / 1000));
    assert_non_null(strstr(t, want));
    assert_non_null(strstr(t, "COMMUNITY, NEWS"));
    assert_non_null(strstr(t, "en-US"));
    if (db) {
        assert_non_null(strstr(t, "\"title\":\"Test <Guild> \\\\*one\\\\*\""));
        assert_null(strstr(t, "not recorded"));
        assert_null(strstr(t, "unavailable"));
        drop_guild(fx);
    } else {
        assert_non_null(strstr(t, "unknown (database unavailable)"));
    }
    json_object_put(r);
    gh_interaction_cleanup(&ix);

    make_ix(fx, &ix, fresh_id(), 2, "serverinfo", NULL, NULL);
    r = run(fx, "serverinfo", &ix, GH_OK);
    assert_non_null(strstr(resp_content(r), "only works in a server"));
    json_object_put(r);
    gh_interaction_cleanup(&ix);
}

static void test_serverinfo_unrecorded_down_and_long_features(void **state)
{
    struct fx *fx = *state;
    const char *db = getenv("DATABASE_URL");
    struct gh_interaction ix;
    char body[16384], feats[12000], err[256];
    json_object *r;
    size_t o = 0;
    int n;

    if (db) { /* a guild the database has never seen */
        assert_true(use_pg(fx, db));
        make_ix(fx, &ix, fresh_id(), 2, "serverinfo", NULL, PERM_NONE);
        r = run(fx, "serverinfo", &ix, GH_OK);
        assert_non_null(strstr(text(r), "not recorded yet"));
        assert_non_null(strstr(text(r), "\"title\":\"Server information\""));
        json_object_put(r);
        gh_interaction_cleanup(&ix);
        gh_pg_free(fx->ctx.pg);
        fx->ctx.pg = NULL;
    }
    assert_true(use_pg(fx, DEAD_PG));
    /* 300 features do not fit one field: cut with "...". The locale comes from
     * guild_locale when the guild object has none. */
    for (int i = 0; i < 300; i++)
        o += (size_t)snprintf(feats + o, sizeof(feats) - o, "%s\"FEATURE_%03d\"", i ? "," : "", i);
    n = snprintf(body, sizeof(body),
                 "{\"id\":\"%" PRIu64 "\",\"application_id\":\"" APP_ID "\",\"type\":2,\"token\":\"t\","
                 "\"version\":1,\"channel_id\":\"1\",\"guild_id\":\"%" PRIu64 "\",\"guild_locale\":\"pt-BR\","
                 "\"guild\":{\"id\":\"%" PRIu64 "\",\"features\":[%s]},\"member\":{\"permissions\":\"0\","
                 "\"roles\":[],\"user\":{\"id\":\"123456789012345678\",\"username\":\"alice\"}},"
                 "\"data\":{\"id\":\"1\",\"name\":\"serverinfo\",\"type\":1}}",
                 fresh_id(), fx->guild_id, fx->guild_id, feats);
    assert_true(n > 0 && (size_t)n < sizeof(body));
    if (gh_interaction_parse(body, (size_t)n, &ix, err, sizeof(err)) != GH_OK)
        fail_msg("interaction does not parse: %s", err);
    r = run(fx, "serverinfo", &ix, GH_OK);
    assert_non_null(strstr(text(r), "unknown (database unavailable)"));
    assert_non_null(strstr(text(r), "pt-BR"));
    assert_non_null(strstr(text(r), "FEATURE\\\\_000, FEATURE\\\\_001"));
    assert_non_null(strstr(text(r), ", ..."));
    assert_null(strstr(text(r), "FEATURE\\\\_299"));
    json_object_put(r);
    gh_interaction_cleanup(&ix);
}

static void test_userinfo(void **state)
{
    struct fx *fx = *state;
    struct gh_interaction ix;
    json_object *r;
    const char *t;

    /* The resolved option user: escaped names, bot flag, creation date. */
    make_ix(fx, &ix, fresh_id(), 2, "userinfo",
            "[{\"name\":\"user\",\"type\":6,\"value\":\"987654321098765432\"}]", PERM_NONE);
    r = run(fx, "userinfo", &ix, GH_OK);
    t = text(r);
    assert_non_null(strstr(t, "\"value\":\"987654321098765432\""));
    assert_non_null(strstr(t, "bob\\\\_\\\\*x\\\\*"));
    assert_null(strstr(t, "\"@everyone\""));
    assert_non_null(strstr(t, "\"name\":\"Bot\",\"value\":\"yes\""));
    {
        char want[48];
        snprintf(want, sizeof(want), "<t:%lld:D>",
                 (long long)(gh_snowflake_ms(987654321098765432ULL) / 1000));
        assert_non_null(strstr(t, want));
    }
    json_object_put(r);
    gh_interaction_cleanup(&ix);

    /* No option, in a DM: the invoking user. */
    make_ix(fx, &ix, fresh_id(), 2, "userinfo", NULL, NULL);
    r = run(fx, "userinfo", &ix, GH_OK);
    t = text(r);
    assert_non_null(strstr(t, "\"value\":\"123456789012345678\""));
    assert_non_null(strstr(t, "al\\\\_ice"));
    assert_non_null(strstr(t, "\"name\":\"Global name\",\"value\":\"none\""));
    assert_non_null(strstr(t, "\"name\":\"Bot\",\"value\":\"no\""));
    json_object_put(r);
    gh_interaction_cleanup(&ix);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_schemas_match_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ping_inline, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ping_deferred_without_queue_answers_inline, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ping_deferred_enqueues_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_followup_outcomes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_alert_channels, setup, teardown),
        cmocka_unit_test_setup_teardown(test_alert_guild_channel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_alert_enqueue, setup, teardown),
        cmocka_unit_test_setup_teardown(test_jobs_edge_payloads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_status_all_down, setup, teardown),
        cmocka_unit_test_setup_teardown(test_status_redis_down_postgres_up, setup, teardown),
        cmocka_unit_test_setup_teardown(test_status_shards_and_queue, setup, teardown),
        cmocka_unit_test_setup_teardown(test_status_many_shards, setup, teardown),
        cmocka_unit_test_setup_teardown(test_help_lists_every_command, setup, teardown),
        cmocka_unit_test_setup_teardown(test_help_one_command, setup, teardown),
        cmocka_unit_test_setup_teardown(test_help_autocomplete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_feature_needs_manage_guild, setup, teardown),
        cmocka_unit_test_setup_teardown(test_feature_cannot_disable_core, setup, teardown),
        cmocka_unit_test_setup_teardown(test_feature_in_dm_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_feature_disable_enable_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_feature_store_down_is_an_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_feature_autocomplete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_serverinfo, setup, teardown),
        cmocka_unit_test_setup_teardown(test_serverinfo_unrecorded_down_and_long_features, setup, teardown),
        cmocka_unit_test_setup_teardown(test_userinfo, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
