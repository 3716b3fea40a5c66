/* test_mod_actions.c - moderation's actions (actions.c) and jobs (jobs.c)
 * against recorded seams.
 *
 * Wrapped (test_mod_actions.wrap): gh_rest_do (every Discord call recorded
 * with its method, path, body and audit-log reason, and answered by rules),
 * the case store (gh_mod_case_create/settle/get/set_lift, gh_mod_decay),
 * gh_mod_settings_load, gh_mod_dm_text, gh_timers_schedule, gh_queue_enqueue
 * and gh_guildcache_roles. The mod-log idempotency test uses the real Redis
 * of REDIS_URL and skips without it. */
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
#include <hiredis/hiredis.h>
#include <json-c/json.h>

#include "core/config.h"
#include "core/ctx.h"
#include "core/err.h"
#include "core/log.h"
#include "core/str.h"
#include "core/timeutil.h"
#include "discord/rest.h"
#include "features/moderation/moderation.h"
#include "features/registry.h"
#include "store/queue.h"
#include "store/redis.h"

#define GUILD 111111111111111111ULL
#define TARGET 222222222222222222ULL
#define MOD 333333333333333333ULL
#define MUTE_ROLE 444
#define JAIL_ROLE 555

/* ---- the wrapped REST client ------------------------------------------ */

struct rest_call {
    char method[8];
    char path[256];
    char body[4096];
    char audit[600];
};
struct rest_rule {
    const char *method, *path_sub; /* matches calls whose path contains path_sub */
    int rc;
    long status;
    int code;
    const char *body;
    int count; /* times it applies; 0 = always */
};

static struct rest_call calls[32];
static int n_calls;
static struct rest_rule rules[8];
static int n_rules;

static void rest_reset(void)
{
    memset(calls, 0, sizeof(calls));
    n_calls = 0;
    memset(rules, 0, sizeof(rules));
    n_rules = 0;
}

static void rest_rule(const char *method, const char *path_sub, int rc, long status, int code,
                      const char *body)
{
    rules[n_rules++] = (struct rest_rule){method, path_sub, rc, status, code, body, 0};
}

int __wrap_gh_rest_do(struct gh_rest *rest, const struct gh_rest_req *req, struct gh_rest_resp *resp);
int __wrap_gh_rest_do(struct gh_rest *rest, const struct gh_rest_req *req, struct gh_rest_resp *resp)
{
    const char *body = "";
    int rc = GH_OK;

    (void)rest;
    if (n_calls < (int)(sizeof(calls) / sizeof(calls[0]))) {
        struct rest_call *c = &calls[n_calls];
        snprintf(c->method, sizeof(c->method), "%s", req->method);
        snprintf(c->path, sizeof(c->path), "%s", req->path);
        snprintf(c->body, sizeof(c->body), "%.*s", (int)req->body_len, req->body ? req->body : "");
        snprintf(c->audit, sizeof(c->audit), "%s", req->audit_reason ? req->audit_reason : "");
    }
    n_calls++;
    memset(resp, 0, sizeof(*resp));
    resp->status = 200;
    if (strcmp(req->path, "/users/@me/channels") == 0)
        body = "{\"id\":\"900\",\"type\":1}";
    else if (strstr(req->path, "/messages"))
        body = "{\"id\":\"777\"}";
    else if (strcmp(req->method, "GET") == 0 && strstr(req->path, "/members/"))
        body = "{\"roles\":[\"11\",\"12\"]}";
    else
        resp->status = 204;
    for (int i = 0; i < n_rules; i++) {
        struct rest_rule *r = &rules[i];
        if (r->count < 0 || (r->method && strcmp(r->method, req->method) != 0) ||
            !strstr(req->path, r->path_sub))
            continue;
        rc = r->rc;
        resp->status = r->status;
        resp->discord_code = r->code;
        if (r->body)
            body = r->body;
        else if (rc != GH_OK)
            body = "{\"message\":\"Missing Permissions\",\"code\":50013}";
        if (rc != GH_OK)
            snprintf(resp->error, sizeof(resp->error), "Discord answered %ld: refused (code %d)", r->status,
                     r->code);
        break;
    }
    resp->body = strdup(body);
    resp->body_len = strlen(body);
    return rc;
}

/* ---- the wrapped case store ---------------------------------------------- */

struct created {
    struct gh_mod_case in;
    char roles[256]; /* target_roles as JSON text */
};
static struct created created[16];
static int n_created;
static int create_rc, create_dup;
static int warn_counts[16]; /* warn_count answered to the n-th create */
static int64_t next_number;

struct settled {
    int64_t number;
    enum gh_mod_status status;
    char error[256];
};
static struct settled settled[16];
static int n_settled;

struct lifted {
    int64_t number;
    enum gh_mod_lift lift;
    char error[320];
};
static struct lifted lifts[16];
static int n_lifts;

static struct gh_mod_case stored; /* what gh_mod_case_get answers */
static int get_rc;

int __wrap_gh_mod_case_create(struct gh_ctx *ctx, const struct gh_mod_case *in, struct gh_mod_case *out,
                              int *duplicate, int *warn_count);
int __wrap_gh_mod_case_create(struct gh_ctx *ctx, const struct gh_mod_case *in, struct gh_mod_case *out,
                              int *duplicate, int *warn_count)
{
    (void)ctx;
    if (n_created < 16) {
        created[n_created].in = *in;
        created[n_created].in.target_roles = NULL;
        snprintf(created[n_created].roles, sizeof(created[0].roles), "%s",
                 in->target_roles ? json_object_to_json_string_ext(in->target_roles, JSON_C_TO_STRING_PLAIN)
                                  : "");
    }
    *warn_count = n_created < 16 ? warn_counts[n_created] : 0;
    n_created++;
    *duplicate = 0;
    if (create_rc != GH_OK)
        return create_rc;
    *out = *in;
    out->target_roles = in->target_roles ? json_object_get(in->target_roles) : NULL;
    out->number = next_number++;
    out->created_ms = gh_now_ms();
    out->id = out->number;
    if (create_dup) {
        *duplicate = 1;
        out->status = GH_MOD_ACTIVE;
    }
    return GH_OK;
}

int __wrap_gh_mod_case_settle(struct gh_ctx *ctx, uint64_t guild_id, int64_t number,
                              enum gh_mod_status status, const char *error);
int __wrap_gh_mod_case_settle(struct gh_ctx *ctx, uint64_t guild_id, int64_t number,
                              enum gh_mod_status status, const char *error)
{
    (void)ctx;
    assert_int_equal(guild_id, GUILD);
    if (n_settled < 16) {
        settled[n_settled].number = number;
        settled[n_settled].status = status;
        snprintf(settled[n_settled].error, sizeof(settled[0].error), "%s", error ? error : "");
    }
    n_settled++;
    return GH_OK;
}

int __wrap_gh_mod_case_set_lift(struct gh_ctx *ctx, uint64_t guild_id, int64_t number, enum gh_mod_lift lift,
                                const char *error);
int __wrap_gh_mod_case_set_lift(struct gh_ctx *ctx, uint64_t guild_id, int64_t number, enum gh_mod_lift lift,
                                const char *error)
{
    (void)ctx;
    assert_int_equal(guild_id, GUILD);
    if (n_lifts < 16) {
        lifts[n_lifts].number = number;
        lifts[n_lifts].lift = lift;
        snprintf(lifts[n_lifts].error, sizeof(lifts[0].error), "%s", error ? error : "");
    }
    n_lifts++;
    return GH_OK;
}

int __wrap_gh_mod_case_get(struct gh_ctx *ctx, uint64_t guild_id, int64_t number, struct gh_mod_case *out);
int __wrap_gh_mod_case_get(struct gh_ctx *ctx, uint64_t guild_id, int64_t number, struct gh_mod_case *out)
{
    (void)ctx;
    memset(out, 0, sizeof(*out));
    if (get_rc != GH_OK)
        return get_rc;
    if (guild_id != stored.guild_id || number != stored.number)
        return GH_ENOTFOUND;
    *out = stored;
    out->target_roles = stored.target_roles ? json_object_get(stored.target_roles) : NULL;
    return GH_OK;
}

static const char *case_list_json = "[]"; /* what gh_mod_case_list answers */
static int list_rc;
static struct gh_mod_filter last_filter;
int __wrap_gh_mod_case_list(struct gh_ctx *ctx, uint64_t guild_id, const struct gh_mod_filter *f,
                            json_object **out, int64_t *total);
int __wrap_gh_mod_case_list(struct gh_ctx *ctx, uint64_t guild_id, const struct gh_mod_filter *f,
                            json_object **out, int64_t *total)
{
    (void)ctx;
    assert_int_equal(guild_id, GUILD);
    last_filter = *f;
    *out = NULL;
    if (list_rc != GH_OK)
        return list_rc;
    *out = json_tokener_parse(case_list_json);
    *total = (int64_t)json_object_array_length(*out);
    return GH_OK;
}

static int decay_rc, n_decay;
int __wrap_gh_mod_decay(struct gh_ctx *ctx, int64_t *changed);
int __wrap_gh_mod_decay(struct gh_ctx *ctx, int64_t *changed)
{
    (void)ctx;
    n_decay++;
    *changed = 3;
    return decay_rc;
}

/* ---- settings, DM text, guild roles --------------------------------------- */

static struct gh_mod_settings settings;

int __wrap_gh_mod_settings_load(struct gh_ctx *ctx, uint64_t guild_id, struct gh_mod_settings *out);
int __wrap_gh_mod_settings_load(struct gh_ctx *ctx, uint64_t guild_id, struct gh_mod_settings *out)
{
    (void)ctx;
    (void)guild_id;
    *out = settings;
    return GH_OK;
}

int __wrap_gh_mod_dm_text(const struct gh_mod_settings *s, const char *action, const char *guild_name,
                          const char *reason, int64_t duration_s, int64_t case_number, char *out, size_t n);
int __wrap_gh_mod_dm_text(const struct gh_mod_settings *s, const char *action, const char *guild_name,
                          const char *reason, int64_t duration_s, int64_t case_number, char *out, size_t n)
{
    (void)s;
    (void)duration_s;
    snprintf(out, n, "You received a %s in %s. Reason: %s (case %" PRId64 ")", action, guild_name, reason,
             case_number);
    return GH_OK;
}

static const char *guild_roles_json; /* NULL = unavailable */
int __wrap_gh_guildcache_roles(struct gh_ctx *ctx, uint64_t guild_id, json_object **out);
int __wrap_gh_guildcache_roles(struct gh_ctx *ctx, uint64_t guild_id, json_object **out)
{
    (void)ctx;
    (void)guild_id;
    *out = guild_roles_json ? json_tokener_parse(guild_roles_json) : NULL;
    return *out ? GH_OK : GH_EUNAVAILABLE;
}

/* ---- timers and queue ------------------------------------------------------ */

struct timer {
    uint64_t guild_id;
    char kind[64], key[200], payload[512];
    int64_t due_ms;
};
static struct timer timers[16];
static int n_timers, timers_rc;

int __wrap_gh_timers_schedule(struct gh_ctx *ctx, uint64_t guild_id, const char *kind, json_object *payload,
                              const char *idempotency_key, int64_t due_ms, int64_t *timer_id);
int __wrap_gh_timers_schedule(struct gh_ctx *ctx, uint64_t guild_id, const char *kind, json_object *payload,
                              const char *idempotency_key, int64_t due_ms, int64_t *timer_id)
{
    (void)ctx;
    if (n_timers < 16) {
        struct timer *t = &timers[n_timers];
        t->guild_id = guild_id;
        snprintf(t->kind, sizeof(t->kind), "%s", kind);
        snprintf(t->key, sizeof(t->key), "%s", idempotency_key);
        snprintf(t->payload, sizeof(t->payload), "%s",
                 payload ? json_object_to_json_string_ext(payload, JSON_C_TO_STRING_PLAIN) : "{}");
        t->due_ms = due_ms;
    }
    n_timers++;
    *timer_id = 99;
    return timers_rc;
}

struct enq {
    char id[160], kind[64], payload[256];
};
static struct enq enqueued[16];
static int n_enqueued;

int __wrap_gh_queue_enqueue(struct gh_redis *r, const char *queue, const char *id, const char *kind,
                            uint64_t guild_id, json_object *payload, int64_t deadline_ms);
int __wrap_gh_queue_enqueue(struct gh_redis *r, const char *queue, const char *id, const char *kind,
                            uint64_t guild_id, json_object *payload, int64_t deadline_ms)
{
    (void)r;
    (void)queue;
    (void)deadline_ms;
    assert_int_equal(guild_id, GUILD);
    if (n_enqueued < 16) {
        snprintf(enqueued[n_enqueued].id, sizeof(enqueued[0].id), "%s", id);
        snprintf(enqueued[n_enqueued].kind, sizeof(enqueued[0].kind), "%s", kind);
        snprintf(enqueued[n_enqueued].payload, sizeof(enqueued[0].payload), "%s",
                 json_object_to_json_string_ext(payload, JSON_C_TO_STRING_PLAIN));
    }
    n_enqueued++;
    return GH_OK;
}

/* ---- fixture -------------------------------------------------------------- */

struct fx {
    struct gh_config cfg;
    struct gh_log_sink sink;
    struct gh_ctx ctx;
    int rest_dummy;
};

static void reset_all(void)
{
    rest_reset();
    memset(created, 0, sizeof(created));
    n_created = 0;
    create_rc = GH_OK;
    create_dup = 0;
    memset(warn_counts, 0, sizeof(warn_counts));
    next_number = 7;
    n_settled = n_lifts = n_timers = n_enqueued = n_decay = 0;
    timers_rc = GH_OK;
    decay_rc = GH_OK;
    get_rc = GH_OK;
    guild_roles_json = NULL;
    case_list_json = "[]";
    list_rc = GH_OK;
    memset(&settings, 0, sizeof(settings));
    settings.mute_role_id = MUTE_ROLE;
    settings.jail_role_id = JAIL_ROLE;
    settings.mod_log_channel_id = 666;
    json_object_put(stored.target_roles);
    memset(&stored, 0, sizeof(stored));
}

static int setup(void **state)
{
    struct fx *fx = calloc(1, sizeof(*fx));

    if (!fx)
        return -1;
    gh_log_sink_init(&fx->sink, "test", GH_LOG_CRIT, NULL, 0, 0);
    gh_logger_init(&fx->ctx.log, &fx->sink, "test");
    fx->ctx.cfg = &fx->cfg;
    fx->ctx.queue = "test-mod";
    fx->ctx.rest = (struct gh_rest *)&fx->rest_dummy; /* never dereferenced: gh_rest_do is wrapped */
    reset_all();
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fx *fx = *state;
    reset_all();
    gh_redis_free(fx->ctx.redis);
    gh_log_sink_cleanup(&fx->sink);
    free(fx);
    return 0;
}

static struct gh_mod_request request(enum gh_mod_type type)
{
    struct gh_mod_request r;
    memset(&r, 0, sizeof(r));
    r.type = type;
    r.guild_id = GUILD;
    r.target_id = TARGET;
    r.moderator_id = MOD;
    r.reason = "spam";
    r.guild_name = "Test Guild";
    return r;
}

static int count_kind(const char *kind)
{
    int n = 0;
    for (int i = 0; i < n_timers && i < 16; i++)
        n += strcmp(timers[i].kind, kind) == 0;
    return n;
}

/* ---- gh_mod_act ----------------------------------------------------------- */

/* Runs first: the first action of the hour seeds the decay chain. */
static void test_first_action_seeds_decay(void **state)
{
    struct fx *fx = *state;
    struct gh_mod_request r = request(GH_MOD_NOTE);
    struct gh_mod_case c;
    int64_t hour = gh_now_ms() / 3600000 + 1;
    char key[64];

    assert_int_equal(gh_mod_act(&fx->ctx, &r, &c, NULL), GH_OK);
    assert_int_equal(count_kind("moderation:decay"), 1);
    snprintf(key, sizeof(key), "moderation:decay:%" PRId64, hour);
    assert_string_equal(timers[0].key, key);
    assert_int_equal(timers[0].guild_id, 0);
    assert_int_equal(timers[0].due_ms, hour * 3600000);
    /* A NOTE: no Discord call, no mod-log post. */
    assert_int_equal(n_calls, 0);
    assert_int_equal(n_enqueued, 0);
    gh_mod_case_cleanup(&c);

    /* The second action of the hour does not schedule it again. */
    n_timers = 0;
    assert_int_equal(gh_mod_act(&fx->ctx, &r, &c, NULL), GH_OK);
    assert_int_equal(count_kind("moderation:decay"), 0);
    gh_mod_case_cleanup(&c);
}

static void test_warn_no_discord_call(void **state)
{
    struct fx *fx = *state;
    struct gh_mod_request r = request(GH_MOD_WARN);
    struct gh_mod_case c;
    int dup = -1;

    assert_int_equal(gh_mod_act(&fx->ctx, &r, &c, &dup), GH_OK);
    assert_int_equal(dup, 0);
    assert_int_equal(n_created, 1);
    assert_int_equal(created[0].in.type, GH_MOD_WARN);
    assert_int_equal(created[0].in.status, GH_MOD_ACTIVE);
    assert_int_equal(created[0].in.expires_ms, 0); /* the store sets it from the decay setting */
    assert_string_equal(created[0].in.reason, "spam");
    assert_int_equal(created[0].in.moderator_id, MOD);
    assert_int_equal(n_calls, 0);
    assert_int_equal(n_settled, 0);
    assert_int_equal(n_enqueued, 1);
    assert_string_equal(enqueued[0].kind, "moderation:modlog");
    assert_string_equal(enqueued[0].id, "modlog:111111111111111111:7");
    assert_string_equal(enqueued[0].payload, "{\"guild_id\":\"111111111111111111\",\"number\":7}");
    gh_mod_case_cleanup(&c);
}

struct expect {
    enum gh_mod_type type;
    int64_t duration_s;
    int delete_s;
    int n; /* Discord calls */
    const char *method[2];
    const char *path[2];
    const char *body[2]; /* exact body, NULL = none */
    int lift;            /* a lift timer is scheduled */
};

static void test_each_action(void **state)
{
    struct fx *fx = *state;
    static const struct expect ex[] = {
        {GH_MOD_TIMEOUT,
         3600,
         0,
         1,
         {"PATCH"},
         {"/guilds/111111111111111111/members/222222222222222222"},
         {NULL},
         0},
        {GH_MOD_UNTIMEOUT,
         0,
         0,
         1,
         {"PATCH"},
         {"/guilds/111111111111111111/members/222222222222222222"},
         {"{\"communication_disabled_until\":null}"},
         0},
        {GH_MOD_KICK,
         0,
         0,
         1,
         {"DELETE"},
         {"/guilds/111111111111111111/members/222222222222222222"},
         {""},
         0},
        {GH_MOD_BAN,
         0,
         3600,
         1,
         {"PUT"},
         {"/guilds/111111111111111111/bans/222222222222222222"},
         {"{\"delete_message_seconds\":3600}"},
         0},
        {GH_MOD_BAN,
         0,
         999999,
         1,
         {"PUT"},
         {"/guilds/111111111111111111/bans/222222222222222222"},
         {"{\"delete_message_seconds\":604800}"},
         0},
        {GH_MOD_TEMPBAN,
         86400,
         0,
         1,
         {"PUT"},
         {"/guilds/111111111111111111/bans/222222222222222222"},
         {"{\"delete_message_seconds\":0}"},
         1},
        {GH_MOD_HACKBAN,
         0,
         0,
         1,
         {"PUT"},
         {"/guilds/111111111111111111/bans/222222222222222222"},
         {"{\"delete_message_seconds\":0}"},
         0},
        {GH_MOD_SOFTBAN,
         0,
         0,
         2,
         {"PUT", "DELETE"},
         {"/guilds/111111111111111111/bans/222222222222222222",
          "/guilds/111111111111111111/bans/222222222222222222"},
         {"{\"delete_message_seconds\":86400}", ""},
         0},
        {GH_MOD_UNBAN, 0, 0, 1, {"DELETE"}, {"/guilds/111111111111111111/bans/222222222222222222"}, {""}, 0},
        {GH_MOD_MUTE,
         600,
         0,
         1,
         {"PUT"},
         {"/guilds/111111111111111111/members/222222222222222222/roles/444"},
         {""},
         1},
        {GH_MOD_MUTE,
         0,
         0,
         1,
         {"PUT"},
         {"/guilds/111111111111111111/members/222222222222222222/roles/444"},
         {""},
         0},
    };

    for (size_t i = 0; i < sizeof(ex) / sizeof(ex[0]); i++) {
        struct gh_mod_request r = request(ex[i].type);
        struct gh_mod_case c;
        char audit[64];
        int64_t before = gh_now_ms();

        reset_all();
        r.duration_s = ex[i].duration_s;
        r.delete_message_s = ex[i].delete_s;
        print_message("action %s\n", gh_mod_type_name(ex[i].type));
        assert_int_equal(gh_mod_act(&fx->ctx, &r, &c, NULL), GH_OK);
        assert_int_equal(created[0].in.status, GH_MOD_PENDING);
        assert_int_equal(n_calls, ex[i].n);
        snprintf(audit, sizeof(audit), "%llu: spam (case #7)", (unsigned long long)MOD);
        for (int k = 0; k < ex[i].n; k++) {
            assert_string_equal(calls[k].method, ex[i].method[k]);
            assert_string_equal(calls[k].path, ex[i].path[k]);
            if (ex[i].body[k])
                assert_string_equal(calls[k].body, ex[i].body[k]);
            assert_string_equal(calls[k].audit, audit);
        }
        if (ex[i].type == GH_MOD_TIMEOUT) {
            char until[40];
            assert_true(created[0].in.expires_ms >= before + 3600 * 1000);
            gh_iso8601(created[0].in.expires_ms, until, sizeof(until));
            assert_non_null(strstr(calls[0].body, until));
            assert_non_null(strstr(calls[0].body, "\"communication_disabled_until\":"));
        }
        assert_int_equal(n_settled, 1);
        assert_int_equal(settled[0].number, 7);
        assert_int_equal(settled[0].status, GH_MOD_ACTIVE);
        assert_int_equal(c.status, GH_MOD_ACTIVE);
        assert_int_equal(count_kind("moderation:lift"), ex[i].lift);
        if (ex[i].lift) {
            const struct timer *t = &timers[n_timers - 1];
            assert_string_equal(t->key, "lift:111111111111111111:7");
            assert_int_equal(t->guild_id, GUILD);
            assert_int_equal(t->due_ms, created[0].in.expires_ms);
            assert_true(t->due_ms >= before + ex[i].duration_s * 1000);
            assert_non_null(strstr(t->payload, "\"number\":7"));
            assert_int_equal(n_lifts, 1);
            assert_int_equal(lifts[0].lift, GH_MOD_LIFT_PENDING);
            assert_int_equal(c.lift, GH_MOD_LIFT_PENDING);
        } else {
            assert_int_equal(n_lifts, 0);
        }
        assert_int_equal(n_enqueued, 1);
        assert_string_equal(enqueued[0].id, "modlog:111111111111111111:7");
        gh_mod_case_cleanup(&c);
    }
}

static void test_escalation_reason_in_audit(void **state)
{
    struct fx *fx = *state;
    struct gh_mod_request r = request(GH_MOD_KICK);
    struct gh_mod_case c;

    r.moderator_id = 0;
    r.reason = NULL;
    assert_int_equal(gh_mod_act(&fx->ctx, &r, &c, NULL), GH_OK);
    assert_string_equal(calls[0].audit, "Guildhall: no reason given (case #7)");
    gh_mod_case_cleanup(&c);

    /* A long reason is cut so the header stays within 512 bytes. */
    reset_all();
    char big[2100];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    r.reason = big;
    assert_int_equal(gh_mod_act(&fx->ctx, &r, &c, NULL), GH_OK);
    assert_int_equal(strlen(calls[0].audit), 512);
    assert_non_null(strstr(calls[0].audit, " (case #7)"));
    gh_mod_case_cleanup(&c);
}

static void test_jail_saves_roles(void **state)
{
    struct fx *fx = *state;
    struct gh_mod_request r = request(GH_MOD_JAIL);
    struct gh_mod_case c;

    /* No roles given (escalation): read from Discord before the case. */
    guild_roles_json = "[{\"id\":\"11\",\"managed\":false},{\"id\":\"12\",\"managed\":true}]";
    r.duration_s = 3600;
    assert_int_equal(gh_mod_act(&fx->ctx, &r, &c, NULL), GH_OK);
    assert_int_equal(n_calls, 2);
    assert_string_equal(calls[0].method, "GET");
    assert_string_equal(calls[0].path, "/guilds/111111111111111111/members/222222222222222222");
    assert_string_equal(created[0].roles, "[\"11\",\"12\"]");
    assert_string_equal(calls[1].method, "PATCH");
    assert_string_equal(calls[1].path, "/guilds/111111111111111111/members/222222222222222222");
    /* The jail role, plus the managed role Discord would not let us remove. */
    assert_string_equal(calls[1].body, "{\"roles\":[\"555\",\"12\"]}");
    assert_int_equal(settled[0].status, GH_MOD_ACTIVE);
    assert_int_equal(count_kind("moderation:lift"), 1);
    assert_non_null(strstr(timers[n_timers - 1].payload, "\"role_id\":\"555\""));
    gh_mod_case_cleanup(&c);

    /* Roles given (the command's resolved member): no GET. */
    reset_all();
    json_object *roles = json_tokener_parse("[\"21\"]");
    r.target_roles = roles;
    assert_int_equal(gh_mod_act(&fx->ctx, &r, &c, NULL), GH_OK);
    assert_int_equal(n_calls, 1);
    assert_string_equal(created[0].roles, "[\"21\"]");
    assert_string_equal(calls[0].body, "{\"roles\":[\"555\"]}");
    gh_mod_case_cleanup(&c);
    json_object_put(roles);

    /* No jail role configured: the case says so, nothing is called. */
    reset_all();
    settings.jail_role_id = 0;
    r.target_roles = NULL;
    assert_int_equal(gh_mod_act(&fx->ctx, &r, &c, NULL), GH_EINVAL);
    assert_int_equal(n_created, 1);
    assert_int_equal(settled[0].status, GH_MOD_FAILED);
    assert_non_null(strstr(settled[0].error, "no jail role"));
    assert_int_equal(count_kind("moderation:lift"), 0);
    gh_mod_case_cleanup(&c);
}

static void test_dm_before_ban(void **state)
{
    struct fx *fx = *state;
    struct gh_mod_request r = request(GH_MOD_BAN);
    struct gh_mod_case c;

    settings.dm_on_action = 1;
    assert_int_equal(gh_mod_act(&fx->ctx, &r, &c, NULL), GH_OK);
    assert_int_equal(n_calls, 3);
    assert_string_equal(calls[0].method, "POST");
    assert_string_equal(calls[0].path, "/users/@me/channels");
    assert_string_equal(calls[0].body, "{\"recipient_id\":\"222222222222222222\"}");
    assert_string_equal(calls[1].path, "/channels/900/messages");
    assert_non_null(strstr(calls[1].body, "You received a ban in Test Guild. Reason: spam (case 7)"));
    assert_non_null(strstr(calls[1].body, "\"allowed_mentions\":{\"parse\":[]}"));
    assert_string_equal(calls[2].method, "PUT");
    assert_int_equal(settled[0].status, GH_MOD_ACTIVE);
    gh_mod_case_cleanup(&c);

    /* DMs closed (403 50007): logged, the ban still happens. */
    reset_all();
    settings.dm_on_action = 1;
    rest_rule("POST", "/channels/900/messages", GH_EFORBIDDEN, 403, 50007,
              "{\"message\":\"Cannot send messages to this user\",\"code\":50007}");
    assert_int_equal(gh_mod_act(&fx->ctx, &r, &c, NULL), GH_OK);
    assert_int_equal(n_calls, 3);
    assert_string_equal(calls[2].path, "/guilds/111111111111111111/bans/222222222222222222");
    assert_int_equal(settled[0].status, GH_MOD_ACTIVE);
    gh_mod_case_cleanup(&c);

    /* No DM for an unban, a hackban or a note even when configured. */
    static const enum gh_mod_type quiet[] = {GH_MOD_UNBAN, GH_MOD_HACKBAN, GH_MOD_UNTIMEOUT, GH_MOD_MUTE};
    for (size_t i = 0; i < sizeof(quiet) / sizeof(quiet[0]); i++) {
        reset_all();
        settings.dm_on_action = 1;
        r = request(quiet[i]);
        assert_int_equal(gh_mod_act(&fx->ctx, &r, &c, NULL), GH_OK);
        for (int k = 0; k < n_calls; k++)
            assert_null(strstr(calls[k].path, "/users/@me/channels"));
        gh_mod_case_cleanup(&c);
    }
    /* A WARN is DMed. */
    reset_all();
    settings.dm_on_action = 1;
    r = request(GH_MOD_WARN);
    assert_int_equal(gh_mod_act(&fx->ctx, &r, &c, NULL), GH_OK);
    assert_int_equal(n_calls, 2);
    assert_non_null(strstr(calls[1].body, "You received a warning in Test Guild"));
    gh_mod_case_cleanup(&c);
}

static void test_discord_failure_marks_failed(void **state)
{
    struct fx *fx = *state;
    struct gh_mod_request r = request(GH_MOD_TEMPBAN);
    struct gh_mod_case c;

    r.duration_s = 3600;
    rest_rule("PUT", "/bans/", GH_EFORBIDDEN, 403, 50013, NULL);
    assert_int_equal(gh_mod_act(&fx->ctx, &r, &c, NULL), GH_EFORBIDDEN);
    assert_int_equal(n_settled, 1);
    assert_int_equal(settled[0].status, GH_MOD_FAILED);
    assert_string_equal(settled[0].error, "Discord answered 403: refused (code 50013)");
    assert_int_equal(c.status, GH_MOD_FAILED);
    assert_string_equal(c.error, "Discord answered 403: refused (code 50013)");
    assert_int_equal(count_kind("moderation:lift"), 0);
    assert_int_equal(n_lifts, 0);
    assert_int_equal(n_enqueued, 1); /* the mod-log shows the failed case */
    gh_mod_case_cleanup(&c);

    /* A softban whose unban fails: FAILED, saying the ban happened, and the unban retried as a lift now. */
    reset_all();
    r = request(GH_MOD_SOFTBAN);
    rest_rule("DELETE", "/bans/", GH_EHTTP, 502, 0, NULL);
    int64_t before = gh_now_ms();
    assert_int_equal(gh_mod_act(&fx->ctx, &r, &c, NULL), GH_EHTTP);
    assert_int_equal(settled[0].status, GH_MOD_FAILED);
    assert_non_null(strstr(settled[0].error, "the ban worked but the unban failed"));
    assert_int_equal(count_kind("moderation:lift"), 1);
    assert_true(timers[n_timers - 1].due_ms >= before && timers[n_timers - 1].due_ms <= gh_now_ms());
    assert_int_equal(lifts[0].lift, GH_MOD_LIFT_PENDING);
    gh_mod_case_cleanup(&c);

    /* A lift that cannot be scheduled is FAILED on the case, visibly. */
    reset_all();
    r = request(GH_MOD_TEMPBAN);
    r.duration_s = 60;
    timers_rc = GH_EPG;
    assert_int_equal(gh_mod_act(&fx->ctx, &r, &c, NULL), GH_OK);
    assert_int_equal(n_lifts, 1);
    assert_int_equal(lifts[0].lift, GH_MOD_LIFT_FAILED);
    assert_non_null(strstr(lifts[0].error, "could not be scheduled"));
    gh_mod_case_cleanup(&c);

    /* A timeout longer than 28 days is refused before Discord, on the case. */
    reset_all();
    r = request(GH_MOD_TIMEOUT);
    r.duration_s = 29 * 86400;
    assert_int_equal(gh_mod_act(&fx->ctx, &r, &c, NULL), GH_EINVAL);
    assert_int_equal(n_calls, 0);
    assert_int_equal(settled[0].status, GH_MOD_FAILED);
    assert_non_null(strstr(settled[0].error, "28 days"));
    gh_mod_case_cleanup(&c);
}

static void test_pg_down_nothing_done(void **state)
{
    struct fx *fx = *state;
    struct gh_mod_request r = request(GH_MOD_BAN);
    struct gh_mod_case c;

    settings.dm_on_action = 1;
    create_rc = GH_EPG;
    assert_int_equal(gh_mod_act(&fx->ctx, &r, &c, NULL), GH_EPG);
    assert_int_equal(n_calls, 0);
    assert_int_equal(n_settled, 0);
    assert_int_equal(n_enqueued, 0);
    assert_int_equal(n_timers, 0);
    gh_mod_case_cleanup(&c);
}

static void test_duplicate_delivery(void **state)
{
    struct fx *fx = *state;
    struct gh_mod_request r = request(GH_MOD_KICK);
    struct gh_mod_case c;
    int dup = 0;

    r.interaction_id = 123;
    create_dup = 1;
    assert_int_equal(gh_mod_act(&fx->ctx, &r, &c, &dup), GH_OK);
    assert_int_equal(dup, 1);
    assert_int_equal(created[0].in.interaction_id, 123);
    assert_int_equal(n_calls, 0);
    assert_int_equal(n_settled, 0);
    assert_int_equal(n_enqueued, 0);
    gh_mod_case_cleanup(&c);
}

static void test_escalation_exact_thresholds(void **state)
{
    struct fx *fx = *state;
    struct gh_mod_request r = request(GH_MOD_WARN);
    struct gh_mod_case c;

    settings.escalation_enabled = 1;
    /* Deliberately unsorted; two steps at 5. */
    settings.thresholds[0] = (struct gh_mod_threshold){7, GH_MOD_BAN, 0};
    settings.thresholds[1] = (struct gh_mod_threshold){5, GH_MOD_TEMPBAN, 86400};
    settings.thresholds[2] = (struct gh_mod_threshold){3, GH_MOD_TIMEOUT, 0};
    settings.thresholds[3] = (struct gh_mod_threshold){5, GH_MOD_KICK, 0};
    settings.n_thresholds = 4;

    /* 4 warnings: nothing. */
    warn_counts[0] = 4;
    assert_int_equal(gh_mod_act(&fx->ctx, &r, &c, NULL), GH_OK);
    assert_int_equal(n_created, 1);
    assert_int_equal(n_calls, 0);
    gh_mod_case_cleanup(&c);

    /* 5 warnings: both steps at 5 (in ascending order of warnings; ties as configured), nothing else. */
    reset_all();
    settings.escalation_enabled = 1;
    settings.thresholds[0] = (struct gh_mod_threshold){7, GH_MOD_BAN, 0};
    settings.thresholds[1] = (struct gh_mod_threshold){5, GH_MOD_TEMPBAN, 86400};
    settings.thresholds[2] = (struct gh_mod_threshold){3, GH_MOD_TIMEOUT, 0};
    settings.thresholds[3] = (struct gh_mod_threshold){5, GH_MOD_KICK, 0};
    settings.n_thresholds = 4;
    warn_counts[0] = 5;
    assert_int_equal(gh_mod_act(&fx->ctx, &r, &c, NULL), GH_OK);
    assert_int_equal(c.number, 7);
    assert_int_equal(n_created, 3);
    for (int i = 1; i < 3; i++) {
        assert_int_equal(created[i].in.moderator_id, 0);
        assert_int_equal(created[i].in.refs_case, 7);
        assert_string_equal(created[i].in.reason, "Escalation: 5 active warnings (case #7)");
        assert_int_equal(created[i].in.target_id, TARGET);
    }
    enum gh_mod_type a = created[1].in.type, b = created[2].in.type;
    assert_true((a == GH_MOD_TEMPBAN && b == GH_MOD_KICK) || (a == GH_MOD_KICK && b == GH_MOD_TEMPBAN));
    for (int i = 1; i < 3; i++)
        if (created[i].in.type == GH_MOD_TEMPBAN)
            assert_int_equal(created[i].in.duration_s, 86400);
    assert_string_equal(calls[0].audit, "Guildhall: Escalation: 5 active warnings (case #7) (case #8)");
    assert_int_equal(n_enqueued, 3); /* the warn and both escalations are in the mod-log */
    gh_mod_case_cleanup(&c);

    /* 3 warnings: the timeout, 1 h by default when the step has no duration. */
    reset_all();
    settings.escalation_enabled = 1;
    settings.thresholds[0] = (struct gh_mod_threshold){3, GH_MOD_TIMEOUT, 0};
    settings.n_thresholds = 1;
    warn_counts[0] = 3;
    assert_int_equal(gh_mod_act(&fx->ctx, &r, &c, NULL), GH_OK);
    assert_int_equal(n_created, 2);
    assert_int_equal(created[1].in.type, GH_MOD_TIMEOUT);
    assert_int_equal(created[1].in.duration_s, 3600);
    assert_string_equal(calls[0].method, "PATCH");
    gh_mod_case_cleanup(&c);

    /* Escalation off: nothing. */
    reset_all();
    settings.escalation_enabled = 0;
    settings.thresholds[0] = (struct gh_mod_threshold){3, GH_MOD_TIMEOUT, 0};
    settings.n_thresholds = 1;
    warn_counts[0] = 3;
    assert_int_equal(gh_mod_act(&fx->ctx, &r, &c, NULL), GH_OK);
    assert_int_equal(n_created, 1);
    gh_mod_case_cleanup(&c);

    /* Called directly (AutoMod): the same rule. */
    reset_all();
    settings.escalation_enabled = 1;
    settings.thresholds[0] = (struct gh_mod_threshold){2, GH_MOD_KICK, 0};
    settings.n_thresholds = 1;
    assert_int_equal(gh_mod_escalate(&fx->ctx, GUILD, TARGET, 2, 41), GH_OK);
    assert_int_equal(n_created, 1);
    assert_int_equal(created[0].in.refs_case, 41);
    assert_int_equal(gh_mod_escalate(&fx->ctx, GUILD, TARGET, 1, 42), GH_OK);
    assert_int_equal(gh_mod_escalate(&fx->ctx, GUILD, TARGET, 3, 43), GH_OK);
    assert_int_equal(n_created, 1);
}

/* ---- jobs ----------------------------------------------------------------- */

static const struct gh_job_kind *kind(const char *name)
{
    for (int i = 0; i < GH_MOD_N_JOBS; i++)
        if (strcmp(gh_mod_jobs[i].kind, name) == 0)
            return &gh_mod_jobs[i];
    fail_msg("no job kind %s", name);
    return NULL;
}

static void make_job(struct gh_job *job, const char *k, int64_t number, int attempt, const char *extra)
{
    char text[256];
    memset(job, 0, sizeof(*job));
    snprintf(job->id, sizeof(job->id), "timer:1");
    snprintf(job->kind, sizeof(job->kind), "%s", k);
    job->guild_id = GUILD;
    job->attempt = attempt;
    snprintf(text, sizeof(text), "{\"guild_id\":\"111111111111111111\",\"number\":%" PRId64 "%s}", number,
             extra ? extra : "");
    job->payload = json_tokener_parse(text);
    assert_non_null(job->payload);
}

static void store_case(enum gh_mod_type type, int64_t number, const char *roles)
{
    json_object_put(stored.target_roles);
    memset(&stored, 0, sizeof(stored));
    stored.guild_id = GUILD;
    stored.number = number;
    stored.type = type;
    stored.status = GH_MOD_ACTIVE;
    stored.target_id = TARGET;
    stored.moderator_id = MOD;
    stored.lift = GH_MOD_LIFT_PENDING;
    snprintf(stored.reason, sizeof(stored.reason), "spam");
    stored.target_roles = roles ? json_tokener_parse(roles) : NULL;
}

static void test_jobs_table(void **state)
{
    (void)state;
    assert_non_null(kind("moderation:modlog")->run);
    assert_non_null(kind("moderation:lift")->run);
    assert_non_null(kind("moderation:decay")->run);
    assert_true(kind("moderation:lift")->max_attempts > 3);
}

static void test_lift_tempban(void **state)
{
    struct fx *fx = *state;
    const struct gh_job_kind *k = kind("moderation:lift");
    struct gh_job job;

    store_case(GH_MOD_TEMPBAN, 12, NULL);
    make_job(&job, "moderation:lift", 12, 1, NULL);
    assert_int_equal(k->run(&fx->ctx, &job), GH_OK);
    assert_int_equal(n_calls, 1);
    assert_string_equal(calls[0].method, "DELETE");
    assert_string_equal(calls[0].path, "/guilds/111111111111111111/bans/222222222222222222");
    assert_string_equal(calls[0].audit, "Guildhall: TEMPBAN ended (case #12)");
    assert_int_equal(n_lifts, 1);
    assert_int_equal(lifts[0].number, 12);
    assert_int_equal(lifts[0].lift, GH_MOD_LIFT_DONE);

    /* Run again after it was recorded: nothing is called. */
    rest_reset();
    n_lifts = 0;
    stored.lift = GH_MOD_LIFT_DONE;
    assert_int_equal(k->run(&fx->ctx, &job), GH_OK);
    assert_int_equal(n_calls, 0);
    assert_int_equal(n_lifts, 0);

    /* Already unbanned by hand (404 Unknown Ban): done. */
    stored.lift = GH_MOD_LIFT_PENDING;
    rest_rule("DELETE", "/bans/", GH_ENOTFOUND, 404, 10026, "{\"message\":\"Unknown Ban\",\"code\":10026}");
    assert_int_equal(k->run(&fx->ctx, &job), GH_OK);
    assert_int_equal(lifts[0].lift, GH_MOD_LIFT_DONE);
    gh_job_cleanup(&job);
}

static void test_lift_superseded(void **state)
{
    struct fx *fx = *state;
    const struct gh_job_kind *k = kind("moderation:lift");
    struct gh_job job;

    /* A permanent ban (case 15) after the tempban (case 12): the lift must not unban. */
    store_case(GH_MOD_TEMPBAN, 12, NULL);
    case_list_json = "[{\"number\":15,\"type\":\"BAN\",\"status\":\"active\"},"
                     "{\"number\":13,\"type\":\"WARN\",\"status\":\"active\"},"
                     "{\"number\":12,\"type\":\"TEMPBAN\",\"status\":\"active\"}]";
    make_job(&job, "moderation:lift", 12, 1, NULL);
    assert_int_equal(k->run(&fx->ctx, &job), GH_OK);
    assert_int_equal(n_calls, 0);
    assert_int_equal(last_filter.target_id, TARGET);
    assert_int_equal(last_filter.status, GH_MOD_ACTIVE);
    assert_int_equal(lifts[0].lift, GH_MOD_LIFT_DONE);
    assert_non_null(strstr(lifts[0].error, "case #15"));

    /* Only older or unrelated cases: the unban happens. */
    n_lifts = 0;
    case_list_json = "[{\"number\":14,\"type\":\"MUTE\",\"status\":\"active\"},"
                     "{\"number\":11,\"type\":\"BAN\",\"status\":\"active\"}]";
    assert_int_equal(k->run(&fx->ctx, &job), GH_OK);
    assert_int_equal(n_calls, 1);
    assert_string_equal(calls[0].method, "DELETE");
    assert_int_equal(lifts[0].lift, GH_MOD_LIFT_DONE);

    /* The newer cases cannot be read: retried, nothing called. */
    rest_reset();
    n_lifts = 0;
    list_rc = GH_EPG;
    assert_int_equal(k->run(&fx->ctx, &job), GH_EPG);
    assert_int_equal(n_calls, 0);
    assert_int_equal(lifts[0].lift, GH_MOD_LIFT_PENDING);
    gh_job_cleanup(&job);
}

static void test_lift_retry_then_failed(void **state)
{
    struct fx *fx = *state;
    const struct gh_job_kind *k = kind("moderation:lift");
    struct gh_job job;

    store_case(GH_MOD_TEMPBAN, 12, NULL);
    rest_rule("DELETE", "/bans/", GH_EHTTP, 503, 0, NULL);
    make_job(&job, "moderation:lift", 12, 1, NULL);
    assert_int_equal(k->run(&fx->ctx, &job), GH_EHTTP); /* the worker retries it */
    assert_int_equal(n_lifts, 1);
    assert_int_equal(lifts[0].lift, GH_MOD_LIFT_PENDING); /* still pending, error shown */
    assert_non_null(strstr(lifts[0].error, "503"));
    gh_job_cleanup(&job);

    /* The last attempt: FAILED with the error, and the error returned (dead letter, timer failed). */
    n_lifts = 0;
    make_job(&job, "moderation:lift", 12, k->max_attempts, NULL);
    assert_int_equal(k->run(&fx->ctx, &job), GH_EHTTP);
    assert_int_equal(n_lifts, 1);
    assert_int_equal(lifts[0].lift, GH_MOD_LIFT_FAILED);
    assert_non_null(strstr(lifts[0].error, "Discord answered 503"));
    assert_non_null(strstr(lifts[0].error, "gave up after"));
    gh_job_cleanup(&job);

    /* PostgreSQL down while reading the case: retried. */
    n_lifts = 0;
    rest_reset();
    get_rc = GH_EPG;
    make_job(&job, "moderation:lift", 12, 1, NULL);
    assert_int_equal(k->run(&fx->ctx, &job), GH_EPG);
    assert_int_equal(n_calls, 0);
    gh_job_cleanup(&job);

    /* A case that no longer exists: nothing to do. */
    get_rc = GH_OK;
    make_job(&job, "moderation:lift", 99, 1, NULL);
    assert_int_equal(k->run(&fx->ctx, &job), GH_OK);
    assert_int_equal(n_calls, 0);
    gh_job_cleanup(&job);

    /* Unusable payload. */
    memset(&job, 0, sizeof(job));
    job.payload = json_tokener_parse("{}");
    assert_int_equal(k->run(&fx->ctx, &job), GH_EINVAL);
    gh_job_cleanup(&job);
}

static void test_lift_mute_and_jail(void **state)
{
    struct fx *fx = *state;
    const struct gh_job_kind *k = kind("moderation:lift");
    struct gh_job job;

    /* Mute: the role recorded at scheduling time, even if the setting changed since. */
    settings.mute_role_id = 4242;
    store_case(GH_MOD_MUTE, 13, NULL);
    make_job(&job, "moderation:lift", 13, 1, ",\"role_id\":\"444\"");
    assert_int_equal(k->run(&fx->ctx, &job), GH_OK);
    assert_string_equal(calls[0].method, "DELETE");
    assert_string_equal(calls[0].path, "/guilds/111111111111111111/members/222222222222222222/roles/444");
    assert_int_equal(lifts[0].lift, GH_MOD_LIFT_DONE);
    gh_job_cleanup(&job);

    /* Jail: current roles without the jail role, plus the saved ones that still exist (not managed). */
    reset_all();
    guild_roles_json = "[{\"id\":\"11\"},{\"id\":\"12\",\"managed\":true},{\"id\":\"13\"},{\"id\":\"555\"}]";
    store_case(GH_MOD_JAIL, 14, "[\"11\",\"12\",\"gone\"]");
    rest_rule("GET", "/members/", GH_OK, 200, 0, "{\"roles\":[\"555\",\"13\"]}");
    make_job(&job, "moderation:lift", 14, 1, ",\"role_id\":\"555\"");
    assert_int_equal(k->run(&fx->ctx, &job), GH_OK);
    assert_int_equal(n_calls, 2);
    assert_string_equal(calls[0].method, "GET");
    assert_string_equal(calls[1].method, "PATCH");
    assert_string_equal(calls[1].path, "/guilds/111111111111111111/members/222222222222222222");
    assert_string_equal(calls[1].body, "{\"roles\":[\"13\",\"11\"]}");
    assert_int_equal(lifts[0].lift, GH_MOD_LIFT_DONE);
    gh_job_cleanup(&job);

    /* Jailed member left the guild: done. */
    reset_all();
    store_case(GH_MOD_JAIL, 14, "[\"11\"]");
    rest_rule("GET", "/members/", GH_ENOTFOUND, 404, 10007,
              "{\"message\":\"Unknown Member\",\"code\":10007}");
    make_job(&job, "moderation:lift", 14, 1, ",\"role_id\":\"555\"");
    assert_int_equal(k->run(&fx->ctx, &job), GH_OK);
    assert_int_equal(n_calls, 1);
    assert_int_equal(lifts[0].lift, GH_MOD_LIFT_DONE);
    gh_job_cleanup(&job);
}

static void test_modlog_embed_and_idempotency(void **state)
{
    struct fx *fx = *state;
    const struct gh_job_kind *k = kind("moderation:modlog");
    const char *url = getenv("REDIS_URL");
    struct gh_job job;
    char key[128];
    int64_t number = (gh_now_ms() % 1000000) * 100 + (getpid() % 100); /* unique to this run */

    store_case(GH_MOD_TEMPBAN, number, NULL);
    snprintf(stored.reason, sizeof(stored.reason), "**rude** @everyone <@1>");
    stored.duration_s = 90000;
    stored.expires_ms = gh_now_ms() + 90000000;
    stored.refs_case = 3;
    make_job(&job, "moderation:modlog", number, 1, NULL);

    /* Without Redis the post still goes out (the nonce guards it). */
    assert_int_equal(k->run(&fx->ctx, &job), GH_OK);
    assert_int_equal(n_calls, 1);
    assert_string_equal(calls[0].method, "POST");
    assert_string_equal(calls[0].path, "/channels/666/messages");
    const char *b = calls[0].body;
    assert_non_null(strstr(b, "\"allowed_mentions\":{\"parse\":[]}"));
    assert_non_null(strstr(b, "\"enforce_nonce\":true"));
    assert_non_null(strstr(b, "TEMPBAN"));
    assert_non_null(strstr(b, "<@222222222222222222>"));
    assert_non_null(strstr(b, "<@333333333333333333>"));
    assert_non_null(strstr(b, "1d 1h"));
    assert_non_null(strstr(b, "Case #3"));
    assert_null(strstr(b, "**rude**"));           /* markdown escaped */
    assert_null(strstr(b, "@everyone"));          /* mention neutralised */
    assert_non_null(strstr(b, "\\\\*\\\\*rude")); /* \*\*rude, JSON-escaped */

    /* No mod-log channel: nothing posted. */
    rest_reset();
    settings.mod_log_channel_id = 0;
    assert_int_equal(k->run(&fx->ctx, &job), GH_OK);
    assert_int_equal(n_calls, 0);
    settings.mod_log_channel_id = 666;

    /* Channel gone: logged, not retried. */
    rest_rule("POST", "/channels/666/messages", GH_ENOTFOUND, 404, 10003, NULL);
    assert_int_equal(k->run(&fx->ctx, &job), GH_OK);
    /* Discord down: retried. */
    rest_reset();
    rest_rule("POST", "/channels/666/messages", GH_EHTTP, 502, 0, NULL);
    assert_int_equal(k->run(&fx->ctx, &job), GH_EHTTP);
    rest_reset();

    if (!url) {
        gh_job_cleanup(&job);
        print_message("REDIS_URL is not set: idempotency part skipped\n");
        skip();
    }
    fx->ctx.redis = gh_redis_new(url, 500, &fx->ctx.log);
    assert_non_null(fx->ctx.redis);
    gh_key_guild(key, sizeof(key), GUILD, "moderation", "modlog:%" PRId64, number);
    freeReplyObject(gh_redis_cmd(fx->ctx.redis, "DEL %s", key));

    assert_int_equal(k->run(&fx->ctx, &job), GH_OK);
    assert_int_equal(n_calls, 1);
    redisReply *r = gh_redis_cmd(fx->ctx.redis, "GET %s", key);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    assert_string_equal(r->str, "777");
    freeReplyObject(r);
    r = gh_redis_cmd(fx->ctx.redis, "TTL %s", key);
    assert_true(r->integer > 86400);
    freeReplyObject(r);

    /* A re-run after success posts nothing. */
    assert_int_equal(k->run(&fx->ctx, &job), GH_OK);
    assert_int_equal(n_calls, 1);

    freeReplyObject(gh_redis_cmd(fx->ctx.redis, "DEL %s", key));
    gh_job_cleanup(&job);
}

static void test_decay_reschedules(void **state)
{
    struct fx *fx = *state;
    const struct gh_job_kind *k = kind("moderation:decay");
    struct gh_job job;
    int64_t hour = gh_now_ms() / 3600000 + 1;
    char key[64];

    memset(&job, 0, sizeof(job));
    snprintf(job.id, sizeof(job.id), "timer:5");
    job.payload = json_tokener_parse("{\"timer_id\":5}");
    assert_int_equal(k->run(&fx->ctx, &job), GH_OK);
    assert_int_equal(n_decay, 1);
    assert_int_equal(n_timers, 1);
    snprintf(key, sizeof(key), "moderation:decay:%" PRId64, hour);
    assert_string_equal(timers[0].kind, "moderation:decay");
    assert_string_equal(timers[0].key, key);
    assert_int_equal(timers[0].guild_id, 0);
    assert_int_equal(timers[0].due_ms, hour * 3600000);

    /* A second run in the same hour asks for the same key (the store keeps one row). */
    timers_rc = GH_EDUPLICATE;
    assert_int_equal(k->run(&fx->ctx, &job), GH_OK);
    assert_string_equal(timers[1].key, key);

    /* Decay failed: retried, and the next hour is scheduled anyway. */
    timers_rc = GH_OK;
    decay_rc = GH_EPG;
    assert_int_equal(k->run(&fx->ctx, &job), GH_EPG);
    assert_int_equal(n_timers, 3);

    /* Scheduling failed: retried. */
    decay_rc = GH_OK;
    timers_rc = GH_EPG;
    assert_int_equal(k->run(&fx->ctx, &job), GH_EPG);
    gh_job_cleanup(&job);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_first_action_seeds_decay, setup, teardown),
        cmocka_unit_test_setup_teardown(test_warn_no_discord_call, setup, teardown),
        cmocka_unit_test_setup_teardown(test_each_action, setup, teardown),
        cmocka_unit_test_setup_teardown(test_escalation_reason_in_audit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_jail_saves_roles, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dm_before_ban, setup, teardown),
        cmocka_unit_test_setup_teardown(test_discord_failure_marks_failed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pg_down_nothing_done, setup, teardown),
        cmocka_unit_test_setup_teardown(test_duplicate_delivery, setup, teardown),
        cmocka_unit_test_setup_teardown(test_escalation_exact_thresholds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_jobs_table, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lift_tempban, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lift_superseded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lift_retry_then_failed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lift_mute_and_jail, setup, teardown),
        cmocka_unit_test_setup_teardown(test_modlog_embed_and_idempotency, setup, teardown),
        cmocka_unit_test_setup_teardown(test_decay_reschedules, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
