/* test_mod_commands.c - the moderation commands, called directly with
 * interactions parsed from JSON text: option parsing, what each command asks
 * of gh_mod_act, and the answers (public or ephemeral, allowed_mentions,
 * escaped user text, Discord's error, duplicates, PostgreSQL down).
 *
 * Wrapped (test_mod_commands.wrap): gh_mod_act, gh_mod_check,
 * gh_mod_settings_load and the case store functions record what they were
 * asked and answer what the test chose; gh_rest_do answers /purge,
 * /slowmode and /lockdown like Discord. The refusal's security_events row is
 * checked when DATABASE_URL is set. */
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
#include "discord/perms.h"
#include "discord/rest.h"
#include "features/moderation/moderation.h"
#include "features/registry.h"
#include "store/pg.h"

#define APP_ID "1234567890123456789"
#define ALICE "123456789012345678"
#define BOB "987654321098765432"
#define CHANNEL "1300000000000000777"
#define OTHER_CHANNEL "1300000000000000778"
#define IX_ID "1300000000000000999"

/* ---- wrapped moderation functions ------------------------------------------- */

static struct {
    int calls;
    struct gh_mod_request req;
    char reason[GH_MOD_REASON_MAX * 4 + 1];
    int has_reason;
    int n_target_roles;
    int rc;        /* what gh_mod_act returns */
    int duplicate; /* what it says about duplicates */
    int64_t number;
    char error[256];
} act;

int __wrap_gh_mod_act(struct gh_ctx *ctx, const struct gh_mod_request *req, struct gh_mod_case *out,
                      int *duplicate);
int __wrap_gh_mod_act(struct gh_ctx *ctx, const struct gh_mod_request *req, struct gh_mod_case *out,
                      int *duplicate)
{
    (void)ctx;
    act.calls++;
    act.req = *req;
    act.has_reason = req->reason != NULL;
    snprintf(act.reason, sizeof(act.reason), "%s", req->reason ? req->reason : "");
    act.req.reason = NULL;
    act.n_target_roles = req->target_roles ? (int)json_object_array_length(req->target_roles) : -1;
    act.req.target_roles = NULL;
    memset(out, 0, sizeof(*out));
    *duplicate = act.duplicate;
    if (act.rc == GH_EPG)
        return GH_EPG;
    out->number = act.number;
    out->type = req->type;
    out->target_id = req->target_id;
    snprintf(out->error, sizeof(out->error), "%s", act.error);
    return act.rc;
}

static struct {
    int calls;
    struct gh_mod_check chk;
    int rc;
    const char *why;
} check;

int __wrap_gh_mod_check(struct gh_ctx *ctx, const struct gh_interaction *ix, const struct gh_mod_settings *s,
                        const struct gh_mod_check *chk, char *why, size_t whylen);
int __wrap_gh_mod_check(struct gh_ctx *ctx, const struct gh_interaction *ix, const struct gh_mod_settings *s,
                        const struct gh_mod_check *chk, char *why, size_t whylen)
{
    (void)ctx;
    (void)ix;
    (void)s;
    check.calls++;
    check.chk = *chk;
    check.chk.target_member = NULL;
    snprintf(why, whylen, "%s", check.rc == GH_OK ? "" : check.why);
    return check.rc;
}

static struct {
    int rc;
    uint64_t mute_role, jail_role;
} settings;

int __wrap_gh_mod_settings_load(struct gh_ctx *ctx, uint64_t guild_id, struct gh_mod_settings *out);
int __wrap_gh_mod_settings_load(struct gh_ctx *ctx, uint64_t guild_id, struct gh_mod_settings *out)
{
    (void)ctx;
    (void)guild_id;
    memset(out, 0, sizeof(*out));
    out->mute_role_id = settings.mute_role;
    out->jail_role_id = settings.jail_role;
    return settings.rc;
}

static struct {
    int rc;
    int calls;
    int64_t number;
    char text[600];
    struct gh_mod_filter filter;
    int64_t total;
    const char *list_json;
} store;

int __wrap_gh_mod_case_get(struct gh_ctx *ctx, uint64_t guild_id, int64_t number, struct gh_mod_case *out);
int __wrap_gh_mod_case_get(struct gh_ctx *ctx, uint64_t guild_id, int64_t number, struct gh_mod_case *out)
{
    (void)ctx;
    (void)guild_id;
    store.calls++;
    store.number = number;
    memset(out, 0, sizeof(*out));
    if (store.rc != GH_OK)
        return store.rc;
    out->number = number;
    out->type = GH_MOD_TEMPBAN;
    out->status = GH_MOD_VOID;
    out->target_id = gh_snowflake_parse(BOB);
    out->moderator_id = gh_snowflake_parse(ALICE);
    snprintf(out->reason, sizeof(out->reason), "spam *everywhere* @everyone");
    out->duration_s = 3 * 86400;
    out->created_ms = 1700000000000LL;
    out->voided_by = gh_snowflake_parse(ALICE);
    snprintf(out->void_reason, sizeof(out->void_reason), "wrong `user`");
    return GH_OK;
}

int __wrap_gh_mod_case_set_reason(struct gh_ctx *ctx, uint64_t guild_id, int64_t number, const char *reason,
                                  uint64_t actor_id);
int __wrap_gh_mod_case_set_reason(struct gh_ctx *ctx, uint64_t guild_id, int64_t number, const char *reason,
                                  uint64_t actor_id)
{
    (void)ctx;
    (void)guild_id;
    (void)actor_id;
    store.calls++;
    store.number = number;
    snprintf(store.text, sizeof(store.text), "%s", reason);
    return store.rc;
}

int __wrap_gh_mod_case_void(struct gh_ctx *ctx, uint64_t guild_id, int64_t number, const char *why,
                            uint64_t actor_id);
int __wrap_gh_mod_case_void(struct gh_ctx *ctx, uint64_t guild_id, int64_t number, const char *why,
                            uint64_t actor_id)
{
    (void)ctx;
    (void)guild_id;
    (void)actor_id;
    store.calls++;
    store.number = number;
    snprintf(store.text, sizeof(store.text), "%s", why);
    return store.rc;
}

int __wrap_gh_mod_case_list(struct gh_ctx *ctx, uint64_t guild_id, const struct gh_mod_filter *f,
                            json_object **out, int64_t *total);
int __wrap_gh_mod_case_list(struct gh_ctx *ctx, uint64_t guild_id, const struct gh_mod_filter *f,
                            json_object **out, int64_t *total)
{
    (void)ctx;
    (void)guild_id;
    store.calls++;
    store.filter = *f;
    store.filter.text = NULL;
    *out = NULL;
    *total = 0;
    if (store.rc != GH_OK)
        return store.rc;
    *out = json_tokener_parse(store.list_json ? store.list_json : "[]");
    *total = store.total;
    return GH_OK;
}

/* ---- wrapped REST client ------------------------------------------------------ */

struct rest_call {
    char method[8];
    char path[256];
    char body[8192];
    char audit[128];
};

static struct rest_call calls[8];
static int n_calls;
static const char *messages_json = "[]"; /* GET /channels/{c}/messages */
static const char *channel_json = "{}";  /* GET /channels/{c} */
static long write_status = 200;          /* PATCH/PUT/POST/DELETE */

int __wrap_gh_rest_do(struct gh_rest *rest, const struct gh_rest_req *req, struct gh_rest_resp *resp);
int __wrap_gh_rest_do(struct gh_rest *rest, const struct gh_rest_req *req, struct gh_rest_resp *resp)
{
    const char *body = "{}";
    long status = 200;

    (void)rest;
    if (n_calls < 8) {
        struct rest_call *c = &calls[n_calls];
        snprintf(c->method, sizeof(c->method), "%s", req->method);
        snprintf(c->path, sizeof(c->path), "%s", req->path);
        snprintf(c->body, sizeof(c->body), "%.*s", (int)req->body_len, req->body ? req->body : "");
        snprintf(c->audit, sizeof(c->audit), "%s", req->audit_reason ? req->audit_reason : "");
    }
    n_calls++;
    memset(resp, 0, sizeof(*resp));
    if (strcmp(req->method, "GET") == 0)
        body = strstr(req->path, "/messages") ? messages_json : channel_json;
    else
        status = write_status;
    if (status >= 300)
        body = "{\"message\":\"Missing Permissions\",\"code\":50013}";
    resp->status = status;
    resp->body = strdup(body);
    resp->body_len = strlen(body);
    if (status < 300)
        return GH_OK;
    snprintf(resp->error, sizeof(resp->error), "Missing Permissions (50013)");
    return GH_EFORBIDDEN;
}

/* ---- fixture ----------------------------------------------------------------- */

struct fx {
    struct gh_config cfg;
    struct gh_log_sink sink;
    struct gh_ctx ctx;
    struct gh_buf out;
    struct gh_interaction ix;
    int have_ix;
    json_object *resp;
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
    fx->ctx.cfg = &fx->cfg;
    fx->ctx.rest = (struct gh_rest *)&fx->rest_dummy;
    fx->cfg.application_id = gh_snowflake_parse(APP_ID);
    fx->guild_id = (uint64_t)(gh_now_ms() - 1420070400000LL) << 22 | (uint64_t)(getpid() & 0x3fffff);
    gh_buf_init(&fx->out, 64 * 1024);
    memset(&act, 0, sizeof(act));
    act.number = 12;
    memset(&check, 0, sizeof(check));
    memset(&settings, 0, sizeof(settings));
    memset(&store, 0, sizeof(store));
    memset(calls, 0, sizeof(calls));
    n_calls = 0;
    messages_json = "[]";
    channel_json = "{}";
    write_status = 200;
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fx *fx = *state;

    if (fx->have_ix)
        gh_interaction_cleanup(&fx->ix);
    json_object_put(fx->resp);
    gh_pg_free(fx->ctx.pg);
    gh_buf_cleanup(&fx->out);
    gh_log_sink_cleanup(&fx->sink);
    free(fx);
    return 0;
}

/* The member object of Bob in data.resolved, or nothing (not a member). */
#define RESOLVED_MEMBER                                                                                      \
    "\"resolved\":{\"users\":{\"" BOB "\":{\"id\":\"" BOB "\",\"username\":\"bob\"}},\"members\":{\"" BOB    \
    "\":{\"roles\":[\"1300000000000000001\",\"1300000000000000002\"],\"nick\":null}}}"
#define RESOLVED_USER "\"resolved\":{\"users\":{\"" BOB "\":{\"id\":\"" BOB "\",\"username\":\"bob\"}}}"

/* Parses a command interaction: type 1 (slash) or 2 (user context menu),
 * options JSON (or NULL), extra data members (resolved, target_id). */
static const struct gh_interaction *make_ix(struct fx *fx, int cmd_type, const char *name,
                                            const char *options, const char *extra)
{
    static char body[16384];
    char err[256];
    int n;

    if (fx->have_ix)
        gh_interaction_cleanup(&fx->ix);
    n = snprintf(body, sizeof(body),
                 "{\"id\":\"" IX_ID "\",\"application_id\":\"" APP_ID "\",\"type\":2,\"token\":\"t\","
                 "\"version\":1,\"guild_id\":\"%" PRIu64 "\",\"channel_id\":\"" CHANNEL "\","
                 "\"app_permissions\":\"8\",\"member\":{\"permissions\":\"8\",\"roles\":[],"
                 "\"user\":{\"id\":\"" ALICE "\",\"username\":\"alice\"}},"
                 "\"data\":{\"id\":\"1\",\"name\":\"%s\",\"type\":%d%s%s%s%s}}",
                 fx->guild_id, name, cmd_type, options ? ",\"options\":" : "", options ? options : "",
                 extra ? "," : "", extra ? extra : "");
    assert_true(n > 0 && (size_t)n < sizeof(body));
    if (gh_interaction_parse(body, (size_t)n, &fx->ix, err, sizeof(err)) != GH_OK)
        fail_msg("interaction does not parse: %s\n%s", err, body);
    fx->have_ix = 1;
    return &fx->ix;
}

/* Runs the command (registry lookup by name and type) and parses the answer. */
static json_object *run(struct fx *fx, int cmd_type, const char *name, const char *options, const char *extra)
{
    const struct gh_command *c = gh_registry_command(name, cmd_type, NULL);
    const struct gh_interaction *ix;
    int rc;

    if (!c)
        fail_msg("no command %s of type %d", name, cmd_type);
    ix = make_ix(fx, cmd_type, name, options, extra);
    gh_buf_reset(&fx->out);
    rc = c->handler(&fx->ctx, ix, &fx->out);
    if (rc != GH_OK)
        fail_msg("/%s returned %s", name, gh_errname(rc));
    json_object_put(fx->resp);
    fx->resp = json_tokener_parse(gh_buf_cstr(&fx->out));
    if (!fx->resp)
        fail_msg("/%s wrote no JSON: %s", name, gh_buf_cstr(&fx->out));
    return fx->resp;
}

static json_object *get(json_object *o, const char *k)
{
    json_object *v = NULL;
    return o && json_object_object_get_ex(o, k, &v) ? v : NULL;
}

static const char *content(json_object *r)
{
    json_object *c = get(get(r, "data"), "content");
    return c ? json_object_get_string(c) : "";
}

static int ephemeral(json_object *r)
{
    return (json_object_get_int(get(get(r, "data"), "flags")) & 64) != 0;
}

/* Type 4, allowed_mentions {"parse":[]} and nothing else that pings. */
static void assert_message(json_object *r, int want_ephemeral)
{
    json_object *am = get(get(r, "data"), "allowed_mentions");

    assert_int_equal(json_object_get_int(get(r, "type")), 4);
    assert_non_null(am);
    assert_string_equal(json_object_to_json_string_ext(am, JSON_C_TO_STRING_PLAIN), "{\"parse\":[]}");
    if (ephemeral(r) != want_ephemeral)
        fail_msg("expected %s answer: %s", want_ephemeral ? "an ephemeral" : "a public", content(r));
}

#define assert_has(r, text)                                                                                  \
    do {                                                                                                     \
        if (!strstr(content(r), (text)))                                                                     \
            fail_msg("answer \"%s\" lacks \"%s\"", content(r), (text));                                      \
    } while (0)

#define OPT_USER_BOB "{\"name\":\"user\",\"type\":6,\"value\":\"" BOB "\"}"
#define OPT_REASON(r) "{\"name\":\"reason\",\"type\":3,\"value\":\"" r "\"}"
#define OPT_DURATION(d) "{\"name\":\"duration\",\"type\":3,\"value\":\"" d "\"}"

/* ---- actions ------------------------------------------------------------------ */

static void test_warn_happy_path(void **state)
{
    struct fx *fx = *state;
    json_object *r =
        run(fx, 1, "warn", "[" OPT_USER_BOB "," OPT_REASON("**spam** @everyone <@&1>") "]", RESOLVED_MEMBER);

    assert_int_equal(act.calls, 1);
    assert_int_equal(act.req.type, GH_MOD_WARN);
    assert_int_equal(act.req.guild_id, fx->guild_id);
    assert_int_equal(act.req.target_id, gh_snowflake_parse(BOB));
    assert_int_equal(act.req.moderator_id, gh_snowflake_parse(ALICE));
    assert_int_equal(act.req.interaction_id, gh_snowflake_parse(IX_ID));
    assert_string_equal(act.reason, "**spam** @everyone <@&1>"); /* stored as typed */
    assert_int_equal(act.n_target_roles, 2);
    /* The check asked for Moderate Members or the moderator tier; the bot needs nothing. */
    assert_int_equal(check.calls, 1);
    assert_true(check.chk.need == GH_PERM(MODERATE_MEMBERS));
    assert_int_equal(check.chk.tier, GH_MOD_TIER_MODERATOR);
    assert_true(check.chk.bot_need_none);
    assert_true(check.chk.target_is_member);
    assert_int_equal(check.chk.target_id, gh_snowflake_parse(BOB));
    /* Public, no pings, escaped reason. */
    assert_message(r, 0);
    assert_has(r, "Case #12");
    assert_has(r, "<@" BOB ">");
    assert_has(r, "warned");
    assert_has(r, "\\*\\*spam\\*\\*");
    assert_null(strstr(content(r), "@everyone"));
    assert_null(strstr(content(r), "<@&1>"));
}

static void test_timeout_durations(void **state)
{
    struct fx *fx = *state;
    json_object *r;

    r = run(fx, 1, "timeout", "[" OPT_USER_BOB "," OPT_DURATION("1h30m") "," OPT_REASON("calm down") "]",
            RESOLVED_MEMBER);
    assert_int_equal(act.calls, 1);
    assert_int_equal(act.req.type, GH_MOD_TIMEOUT);
    assert_int_equal(act.req.duration_s, 5400);
    assert_message(r, 0);
    assert_has(r, "for 1h 30m");
    assert_true(check.chk.need == GH_PERM(MODERATE_MEMBERS));
    assert_int_equal(check.chk.bot_need_none, 0);

    /* Past Discord's 28 days. */
    r = run(fx, 1, "timeout", "[" OPT_USER_BOB "," OPT_DURATION("29d") "," OPT_REASON("x") "]",
            RESOLVED_MEMBER);
    assert_int_equal(act.calls, 1);
    assert_message(r, 1);
    assert_has(r, "at most 4w");
    /* Not a duration; the bad text is escaped in the answer. */
    r = run(fx, 1, "timeout", "[" OPT_USER_BOB "," OPT_DURATION("soon*ish*") "," OPT_REASON("x") "]",
            RESOLVED_MEMBER);
    assert_int_equal(act.calls, 1);
    assert_message(r, 1);
    assert_has(r, "soon\\*ish\\*");
    assert_has(r, "`1h30m`");
    /* Not a member: nothing to time out. */
    r = run(fx, 1, "timeout", "[" OPT_USER_BOB "," OPT_DURATION("1h") "," OPT_REASON("x") "]", RESOLVED_USER);
    assert_int_equal(act.calls, 1);
    assert_message(r, 1);
    assert_has(r, "not a member");
    assert_int_equal(check.calls, 1);
}

static void test_reason_too_long(void **state)
{
    struct fx *fx = *state;
    char opts[4096], reason[1100];
    json_object *r;

    /* 513 characters, two bytes each: too long by characters, not bytes. */
    for (int i = 0; i < 513; i++)
        memcpy(reason + i * 2, "\xc3\xa9", 2);
    reason[513 * 2] = '\0';
    snprintf(opts, sizeof(opts), "[" OPT_USER_BOB ",{\"name\":\"reason\",\"type\":3,\"value\":\"%s\"}]",
             reason);
    r = run(fx, 1, "kick", opts, RESOLVED_MEMBER);
    assert_int_equal(act.calls, 0);
    assert_message(r, 1);
    assert_has(r, "513 characters");
    assert_has(r, "512");
    /* Exactly 512 passes. */
    reason[512 * 2] = '\0';
    snprintf(opts, sizeof(opts), "[" OPT_USER_BOB ",{\"name\":\"reason\",\"type\":3,\"value\":\"%s\"}]",
             reason);
    r = run(fx, 1, "kick", opts, RESOLVED_MEMBER);
    assert_int_equal(act.calls, 1);
    assert_int_equal(act.req.type, GH_MOD_KICK);
    assert_true(check.chk.need == GH_PERM(KICK_MEMBERS));
    assert_int_equal(check.chk.tier, GH_MOD_TIER_ADMIN);
}

static void test_ban_variants(void **state)
{
    struct fx *fx = *state;
    json_object *r;

    /* A member, with message deletion. */
    r = run(fx, 1, "ban",
            "[" OPT_USER_BOB
            "," OPT_REASON("raid") ",{\"name\":\"delete_messages\",\"type\":4,\"value\":86400}]",
            RESOLVED_MEMBER);
    assert_int_equal(act.req.type, GH_MOD_BAN);
    assert_int_equal(act.req.delete_message_s, 86400);
    assert_int_equal(act.req.duration_s, 0);
    assert_message(r, 0);
    assert_has(r, "banned");
    assert_has(r, "last 1d");
    assert_true(check.chk.need == GH_PERM(BAN_MEMBERS));
    /* With a duration: a TEMPBAN. */
    r = run(fx, 1, "ban", "[" OPT_USER_BOB "," OPT_REASON("raid") "," OPT_DURATION("7d") "]",
            RESOLVED_MEMBER);
    assert_int_equal(act.req.type, GH_MOD_TEMPBAN);
    assert_int_equal(act.req.duration_s, 7 * 86400);
    assert_has(r, "for 1w");
    /* Not a member (by id): a HACKBAN, no hierarchy. */
    r = run(fx, 1, "ban", "[" OPT_USER_BOB "," OPT_REASON("alt account") "]", RESOLVED_USER);
    assert_int_equal(act.req.type, GH_MOD_HACKBAN);
    assert_false(check.chk.target_is_member);
    assert_int_equal(act.n_target_roles, -1);
    assert_has(r, "not a member");
    /* /tempban needs its duration. */
    r = run(fx, 1, "tempban", "[" OPT_USER_BOB "," OPT_REASON("x") "]", RESOLVED_MEMBER);
    assert_int_equal(act.calls, 3);
    assert_message(r, 1);
    assert_has(r, "Give a duration");
    r = run(fx, 1, "tempban", "[" OPT_USER_BOB "," OPT_DURATION("2d") "," OPT_REASON("x") "]",
            RESOLVED_MEMBER);
    assert_int_equal(act.req.type, GH_MOD_TEMPBAN);
    assert_int_equal(act.req.duration_s, 2 * 86400);
    /* /softban deletes a day of messages. */
    r = run(fx, 1, "softban", "[" OPT_USER_BOB "," OPT_REASON("x") "]", RESOLVED_MEMBER);
    assert_int_equal(act.req.type, GH_MOD_SOFTBAN);
    assert_int_equal(act.req.delete_message_s, 86400);
    /* /unban works by id, the user need not be resolved as a member. */
    r = run(fx, 1, "unban", "[" OPT_USER_BOB "," OPT_REASON("appeal") "]", RESOLVED_USER);
    assert_int_equal(act.req.type, GH_MOD_UNBAN);
    assert_message(r, 0);
    assert_has(r, "unbanned");
}

static void test_mute_and_jail_need_roles(void **state)
{
    struct fx *fx = *state;
    json_object *r;

    r = run(fx, 1, "mute", "[" OPT_USER_BOB "," OPT_REASON("x") "]", RESOLVED_MEMBER);
    assert_int_equal(act.calls, 0);
    assert_message(r, 1);
    assert_has(r, "dashboard");
    assert_has(r, "Mute role");
    r = run(fx, 1, "jail", "[" OPT_USER_BOB "," OPT_REASON("x") "]", RESOLVED_MEMBER);
    assert_int_equal(act.calls, 0);
    assert_has(r, "Jail role");

    settings.mute_role = 42;
    settings.jail_role = 43;
    r = run(fx, 1, "mute", "[" OPT_USER_BOB "," OPT_REASON("x") "," OPT_DURATION("2h") "]", RESOLVED_MEMBER);
    assert_int_equal(act.req.type, GH_MOD_MUTE);
    assert_int_equal(act.req.duration_s, 7200);
    assert_true(check.chk.bot_need == GH_PERM(MANAGE_ROLES));
    assert_message(r, 0);
    r = run(fx, 1, "jail", "[" OPT_USER_BOB "," OPT_REASON("x") "]", RESOLVED_MEMBER);
    assert_int_equal(act.req.type, GH_MOD_JAIL);
    assert_int_equal(act.req.duration_s, 0);
    assert_int_equal(act.n_target_roles, 2); /* jail saves the roles */
}

static void test_refusal_is_ephemeral_and_recorded(void **state)
{
    struct fx *fx = *state;
    const char *url = getenv("DATABASE_URL");
    json_object *r;

    check.rc = GH_EFORBIDDEN;
    check.why = "Your highest role must be above the member's highest role to act on them.";
    if (url && url[0])
        fx->ctx.pg = gh_pg_new(url, 5000, &fx->ctx.log);
    gh_logger_new_corr(&fx->ctx.log);
    r = run(fx, 1, "kick", "[" OPT_USER_BOB "," OPT_REASON("x") "]", RESOLVED_MEMBER);
    assert_int_equal(act.calls, 0);
    assert_message(r, 1);
    assert_string_equal(content(r), check.why);
    if (fx->ctx.pg) {
        assert_int_equal(gh_pg_ping(fx->ctx.pg), GH_OK); /* scripts/test.sh's stack is up */
        const char *p[1] = {fx->ctx.log.corr};
        PGresult *res = gh_pg_exec(fx->ctx.pg,
                                   "SELECT kind, path, guild_id::text, user_id::text, detail->>'target_id', "
                                   "detail->>'reason' FROM security_events WHERE corr = $1",
                                   1, p);
        assert_non_null(res);
        assert_int_equal(PQntuples(res), 1);
        assert_string_equal(PQgetvalue(res, 0, 0), "moderation.refused");
        assert_string_equal(PQgetvalue(res, 0, 1), "/kick");
        assert_int_equal(gh_snowflake_parse(PQgetvalue(res, 0, 2)), fx->guild_id);
        assert_string_equal(PQgetvalue(res, 0, 3), ALICE);
        assert_string_equal(PQgetvalue(res, 0, 4), BOB);
        assert_string_equal(PQgetvalue(res, 0, 5), check.why);
        PQclear(res);
        gh_pg_command(fx->ctx.pg, "DELETE FROM security_events WHERE corr = $1", 1, p);
    } else {
        fprintf(stderr, "note: DATABASE_URL not set; security_events row not checked\n");
    }
    /* Discord unreadable during the check: the reason, no security event needed. */
    check.rc = GH_EUNAVAILABLE;
    check.why = "I could not read this server's roles from Discord";
    r = run(fx, 1, "kick", "[" OPT_USER_BOB "," OPT_REASON("x") "]", RESOLVED_MEMBER);
    assert_int_equal(act.calls, 0);
    assert_message(r, 1);
    assert_has(r, "could not read");
}

static void test_act_outcomes(void **state)
{
    struct fx *fx = *state;
    json_object *r;

    /* Discord refused: the case is recorded as failed, the moderator sees why. */
    act.rc = GH_EFORBIDDEN;
    snprintf(act.error, sizeof(act.error), "Missing Permissions (50013) *x*");
    r = run(fx, 1, "kick", "[" OPT_USER_BOB "," OPT_REASON("x") "]", RESOLVED_MEMBER);
    assert_message(r, 1);
    assert_has(r, "Discord refused: Missing Permissions (50013) \\*x\\*");
    assert_has(r, "case #12 recorded as failed");
    /* A duplicate delivery. */
    act.rc = GH_OK;
    act.duplicate = 1;
    r = run(fx, 1, "kick", "[" OPT_USER_BOB "," OPT_REASON("x") "]", RESOLVED_MEMBER);
    assert_message(r, 1);
    assert_has(r, "already done (duplicate delivery)");
    /* PostgreSQL down: nothing was done. */
    act.duplicate = 0;
    act.rc = GH_EPG;
    r = run(fx, 1, "kick", "[" OPT_USER_BOB "," OPT_REASON("x") "]", RESOLVED_MEMBER);
    assert_message(r, 1);
    assert_has(r, "nothing was done");
    /* Settings unreadable (both stores down): refused before acting. */
    settings.rc = GH_EPG;
    r = run(fx, 1, "warn", "[" OPT_USER_BOB "," OPT_REASON("x") "]", RESOLVED_MEMBER);
    assert_int_equal(act.calls, 3);
    assert_int_equal(check.calls, 3);
    assert_message(r, 1);
    assert_has(r, "nothing was done");
}

static void test_context_menus(void **state)
{
    struct fx *fx = *state;
    json_object *r;

    r = run(fx, 2, "Timeout 1 hour", NULL, "\"target_id\":\"" BOB "\"," RESOLVED_MEMBER);
    assert_int_equal(act.req.type, GH_MOD_TIMEOUT);
    assert_int_equal(act.req.duration_s, 3600);
    assert_int_equal(act.req.target_id, gh_snowflake_parse(BOB));
    assert_false(act.has_reason);
    assert_message(r, 0);
    assert_has(r, "no reason given");
    r = run(fx, 2, "Ban", NULL, "\"target_id\":\"" BOB "\"," RESOLVED_USER);
    assert_int_equal(act.req.type, GH_MOD_HACKBAN);
    r = run(fx, 2, "Warn", NULL, "\"target_id\":\"" BOB "\"," RESOLVED_MEMBER);
    assert_int_equal(act.req.type, GH_MOD_WARN);
    store.total = 1;
    store.list_json = "[{\"number\":3,\"type\":\"WARN\",\"status\":\"active\",\"reason\":\"a\","
                      "\"created_at\":\"2025-01-02T03:04:05Z\"}]";
    r = run(fx, 2, "Cases", NULL, "\"target_id\":\"" BOB "\"," RESOLVED_MEMBER);
    assert_int_equal(store.filter.target_id, gh_snowflake_parse(BOB));
    assert_message(r, 1);
    assert_has(r, "`#3` WARN (active) 2025-01-02");
}

/* ---- cases and notes -------------------------------------------------------------- */

static void test_case_show(void **state)
{
    struct fx *fx = *state;
    json_object *r;

    r = run(fx, 1, "case",
            "[{\"name\":\"show\",\"type\":1,\"options\":[{\"name\":\"number\",\"type\":4,\"value\":5}]}]",
            NULL);
    assert_int_equal(store.number, 5);
    assert_message(r, 1);
    assert_has(r, "**Case #5**");
    assert_has(r, "TEMPBAN");
    assert_has(r, "void");
    assert_has(r, "spam \\*everywhere\\*");
    assert_null(strstr(content(r), "@everyone"));
    assert_has(r, "wrong \\`user\\`");
    assert_has(r, "3d");
    assert_has(r, "<t:1700000000:f>");
    /* Unknown case. */
    store.rc = GH_ENOTFOUND;
    r = run(fx, 1, "case",
            "[{\"name\":\"show\",\"type\":1,\"options\":[{\"name\":\"number\",\"type\":4,\"value\":99}]}]",
            NULL);
    assert_message(r, 1);
    assert_has(r, "There is no case #99");
    /* PostgreSQL down. */
    store.rc = GH_EPG;
    r = run(fx, 1, "case",
            "[{\"name\":\"show\",\"type\":1,\"options\":[{\"name\":\"number\",\"type\":4,\"value\":5}]}]",
            NULL);
    assert_has(r, "database is unavailable");
    /* The permission check ran with no target. */
    assert_int_equal(check.chk.target_id, 0);
    assert_true(check.chk.need == GH_PERM(MODERATE_MEMBERS));
}

static void test_case_reason_and_void(void **state)
{
    struct fx *fx = *state;
    json_object *r;

    r = run(fx, 1, "case",
            "[{\"name\":\"reason\",\"type\":1,\"options\":[{\"name\":\"number\",\"type\":4,\"value\":7},"
            "{\"name\":\"text\",\"type\":3,\"value\":\"new _reason_\"}]}]",
            NULL);
    assert_int_equal(store.number, 7);
    assert_string_equal(store.text, "new _reason_");
    assert_message(r, 1);
    assert_has(r, "new \\_reason\\_");
    r = run(fx, 1, "case",
            "[{\"name\":\"void\",\"type\":1,\"options\":[{\"name\":\"number\",\"type\":4,\"value\":7},"
            "{\"name\":\"reason\",\"type\":3,\"value\":\"mistake\"}]}]",
            NULL);
    assert_string_equal(store.text, "mistake");
    assert_has(r, "Case #7 is now void");
    store.rc = GH_ECONFLICT;
    r = run(fx, 1, "case",
            "[{\"name\":\"void\",\"type\":1,\"options\":[{\"name\":\"number\",\"type\":4,\"value\":7},"
            "{\"name\":\"reason\",\"type\":3,\"value\":\"mistake\"}]}]",
            NULL);
    assert_has(r, "already void");
    /* A refused check stops before the store. */
    store.rc = GH_OK;
    store.calls = 0;
    check.rc = GH_EFORBIDDEN;
    check.why = "You need the **Moderate Members** permission";
    r = run(fx, 1, "case",
            "[{\"name\":\"void\",\"type\":1,\"options\":[{\"name\":\"number\",\"type\":4,\"value\":7},"
            "{\"name\":\"reason\",\"type\":3,\"value\":\"x\"}]}]",
            NULL);
    assert_int_equal(store.calls, 0);
    assert_has(r, "Moderate Members");
}

static void test_cases_and_notes(void **state)
{
    struct fx *fx = *state;
    json_object *r;

    store.total = 0;
    r = run(fx, 1, "cases", "[" OPT_USER_BOB "]", RESOLVED_MEMBER);
    assert_message(r, 1);
    assert_has(r, "has no Cases");
    assert_int_equal(store.filter.type, -1);
    /* 13 cases, newest first: page 2 shows #3..#1. */
    {
        static char list[4096];
        size_t len = 0;
        len += (size_t)snprintf(list + len, sizeof(list) - len, "[");
        for (int n = 13; n >= 1; n--)
            len += (size_t)snprintf(list + len, sizeof(list) - len,
                                    "%s{\"number\":%d,\"type\":\"%s\",\"status\":\"%s\",\"reason\":\"r%d\"}",
                                    n == 13 ? "" : ",", n, n == 13 ? "BAN" : "WARN",
                                    n == 13 ? "failed" : "active", n);
        snprintf(list + len, sizeof(list) - len, "]");
        store.list_json = list;
    }
    store.total = 13;
    r = run(fx, 1, "cases", "[" OPT_USER_BOB ",{\"name\":\"page\",\"type\":4,\"value\":2}]", RESOLVED_MEMBER);
    assert_int_equal(store.filter.limit, 20);
    assert_has(r, "page 2 of 2");
    assert_has(r, "`#3` WARN");
    assert_has(r, "`#1` WARN");
    assert_null(strstr(content(r), "`#4`"));
    assert_null(strstr(content(r), "Next:"));
    r = run(fx, 1, "cases", "[" OPT_USER_BOB "]", RESOLVED_MEMBER);
    assert_has(r, "`#13` BAN (failed)");
    assert_has(r, "Next: `page:2`");

    /* /note add: a NOTE case, private. */
    r = run(fx, 1, "note",
            "[{\"name\":\"add\",\"type\":1,\"options\":[" OPT_USER_BOB ",{\"name\":\"text\",\"type\":3,"
            "\"value\":\"talks to <@&5>\"}]}]",
            RESOLVED_MEMBER);
    assert_int_equal(act.req.type, GH_MOD_NOTE);
    assert_string_equal(act.reason, "talks to <@&5>");
    assert_int_equal(check.chk.target_id, 0);
    assert_message(r, 1);
    assert_has(r, "note on <@" BOB ">");
    assert_null(strstr(content(r), "<@&5>"));
    /* /note list filters on NOTE. */
    r = run(fx, 1, "note", "[{\"name\":\"list\",\"type\":1,\"options\":[" OPT_USER_BOB "]}]",
            RESOLVED_MEMBER);
    assert_int_equal(store.filter.type, GH_MOD_NOTE);
    assert_int_equal(store.filter.target_id, gh_snowflake_parse(BOB));
    assert_message(r, 1);
}

/* ---- channel tools ---------------------------------------------------------------- */

/* A message id for now - age_ms. */
static uint64_t msg_id(int64_t age_ms, unsigned seq)
{
    return (uint64_t)(gh_now_ms() - age_ms - 1420070400000LL) << 22 | seq;
}

static void test_purge(void **state)
{
    struct fx *fx = *state;
    static char msgs[4096];
    json_object *r, *body;

    snprintf(msgs, sizeof(msgs),
             "[{\"id\":\"%" PRIu64 "\",\"content\":\"hello SPAM\",\"author\":{\"id\":\"" BOB "\"}},"
             "{\"id\":\"%" PRIu64 "\",\"content\":\"pinned spam\",\"pinned\":true,\"author\":{\"id\":\"" BOB
             "\"}},"
             "{\"id\":\"%" PRIu64
             "\",\"content\":\"spam from a bot\",\"author\":{\"id\":\"5\",\"bot\":true}},"
             "{\"id\":\"%" PRIu64 "\",\"content\":\"fine\",\"author\":{\"id\":\"" ALICE "\"}},"
             "{\"id\":\"%" PRIu64 "\",\"content\":\"old spam\",\"author\":{\"id\":\"" BOB "\"}}]",
             msg_id(1000, 1), msg_id(2000, 2), msg_id(3000, 3), msg_id(4000, 4), msg_id(15LL * 86400000, 5));
    messages_json = msgs;
    r = run(fx, 1, "purge",
            "[{\"name\":\"amount\",\"type\":4,\"value\":50},{\"name\":\"contains\",\"type\":3,"
            "\"value\":\"spam\"}]",
            NULL);
    assert_int_equal(n_calls, 2);
    assert_string_equal(calls[0].method, "GET");
    assert_string_equal(calls[0].path, "/channels/" CHANNEL "/messages?limit=100");
    assert_string_equal(calls[1].method, "POST");
    assert_string_equal(calls[1].path, "/channels/" CHANNEL "/messages/bulk-delete");
    body = json_tokener_parse(calls[1].body);
    assert_non_null(body);
    assert_int_equal(json_object_array_length(get(body, "messages")),
                     2); /* not pinned, not old, not "fine" */
    json_object_put(body);
    assert_non_null(strstr(calls[1].audit, "/purge"));
    assert_message(r, 1);
    assert_has(r, "Deleted 2 messages");
    assert_has(r, "older than 14 days");
    assert_true(check.chk.need == GH_PERM(MANAGE_MESSAGES));

    /* Only Bob's, one message: a single DELETE. */
    memset(calls, 0, sizeof(calls));
    n_calls = 0;
    r = run(fx, 1, "purge", "[{\"name\":\"amount\",\"type\":4,\"value\":1}," OPT_USER_BOB "]", NULL);
    assert_int_equal(n_calls, 2);
    assert_string_equal(calls[1].method, "DELETE");
    assert_true(strncmp(calls[1].path, "/channels/" CHANNEL "/messages/",
                        strlen("/channels/" CHANNEL "/messages/")) == 0);
    assert_has(r, "Deleted 1 message.");

    /* Bots only. */
    memset(calls, 0, sizeof(calls));
    n_calls = 0;
    r = run(fx, 1, "purge",
            "[{\"name\":\"amount\",\"type\":4,\"value\":10},{\"name\":\"bots\",\"type\":5,\"value\":true}]",
            NULL);
    assert_string_equal(calls[1].method, "DELETE");
    assert_has(r, "Deleted 1 message.");

    /* Nothing matches: no delete at all. */
    memset(calls, 0, sizeof(calls));
    n_calls = 0;
    r = run(fx, 1, "purge",
            "[{\"name\":\"amount\",\"type\":4,\"value\":10},{\"name\":\"contains\",\"type\":3,"
            "\"value\":\"zzz\"}]",
            NULL);
    assert_int_equal(n_calls, 1);
    assert_has(r, "Nothing was deleted");

    /* Discord refuses the delete. */
    memset(calls, 0, sizeof(calls));
    n_calls = 0;
    write_status = 403;
    r = run(fx, 1, "purge", "[{\"name\":\"amount\",\"type\":4,\"value\":5}]", NULL);
    assert_message(r, 1);
    assert_has(r, "Discord refused: Missing Permissions");
}

static void test_slowmode(void **state)
{
    struct fx *fx = *state;
    json_object *r;

    r = run(fx, 1, "slowmode", "[{\"name\":\"seconds\",\"type\":4,\"value\":90}]", NULL);
    assert_int_equal(n_calls, 1);
    assert_string_equal(calls[0].method, "PATCH");
    assert_string_equal(calls[0].path, "/channels/" CHANNEL);
    assert_string_equal(calls[0].body, "{\"rate_limit_per_user\":90}");
    assert_message(r, 0);
    assert_has(r, "<#" CHANNEL ">");
    assert_has(r, "1m 30s");
    r = run(fx, 1, "slowmode",
            "[{\"name\":\"seconds\",\"type\":4,\"value\":0},{\"name\":\"channel\",\"type\":7,\"value\":"
            "\"" OTHER_CHANNEL "\"}]",
            NULL);
    assert_string_equal(calls[1].path, "/channels/" OTHER_CHANNEL);
    assert_has(r, "off");
    r = run(fx, 1, "slowmode", "[{\"name\":\"seconds\",\"type\":4,\"value\":21601}]", NULL);
    assert_int_equal(n_calls, 2);
    assert_message(r, 1);
}

static void test_lockdown_round_trip(void **state)
{
    struct fx *fx = *state;
    static char ch[512];
    json_object *r;

    /* @everyone explicitly allowed Send Messages (2048) and denied Attach Files (32768) before. */
    snprintf(ch, sizeof(ch),
             "{\"id\":\"" CHANNEL "\",\"permission_overwrites\":[{\"id\":\"%" PRIu64 "\",\"type\":0,"
             "\"allow\":\"2048\",\"deny\":\"32768\"}]}",
             fx->guild_id);
    channel_json = ch;
    r = run(fx, 1, "lockdown", "[{\"name\":\"state\",\"type\":3,\"value\":\"on\"}]", NULL);
    assert_int_equal(n_calls, 2);
    assert_string_equal(calls[1].method, "PUT");
    assert_true(strstr(calls[1].path, "/permissions/") != NULL);
    assert_string_equal(calls[1].body, "{\"type\":0,\"allow\":\"0\",\"deny\":\"34816\"}");
    assert_message(r, 0);
    assert_has(r, "is locked");
    assert_true(check.chk.bot_need == GH_PERM(MANAGE_ROLES));

    /* Locked now; without Redis, off clears the deny bit it set. */
    snprintf(ch, sizeof(ch),
             "{\"id\":\"" CHANNEL "\",\"permission_overwrites\":[{\"id\":\"%" PRIu64 "\",\"type\":0,"
             "\"allow\":\"0\",\"deny\":\"34816\"}]}",
             fx->guild_id);
    r = run(fx, 1, "lockdown", "[{\"name\":\"state\",\"type\":3,\"value\":\"off\"}]", NULL);
    assert_string_equal(calls[3].method, "PUT");
    assert_string_equal(calls[3].body, "{\"type\":0,\"allow\":\"0\",\"deny\":\"32768\"}");
    assert_has(r, "unlocked");
    /* A lock that was the whole overwrite goes away entirely. */
    snprintf(ch, sizeof(ch),
             "{\"id\":\"" CHANNEL "\",\"permission_overwrites\":[{\"id\":\"%" PRIu64 "\",\"type\":0,"
             "\"allow\":\"0\",\"deny\":\"2048\"}]}",
             fx->guild_id);
    r = run(fx, 1, "lockdown", "[{\"name\":\"state\",\"type\":3,\"value\":\"off\"}]", NULL);
    assert_string_equal(calls[5].method, "DELETE");
    /* Already locked / not locked: nothing written. */
    r = run(fx, 1, "lockdown", "[{\"name\":\"state\",\"type\":3,\"value\":\"on\"}]", NULL);
    assert_int_equal(n_calls, 7);
    assert_message(r, 1);
    assert_has(r, "already locked");
    channel_json = "{\"id\":\"1\",\"permission_overwrites\":[]}";
    r = run(fx, 1, "lockdown", "[{\"name\":\"state\",\"type\":3,\"value\":\"off\"}]", NULL);
    assert_int_equal(n_calls, 8);
    assert_has(r, "is not locked");
}

/* ---- the feature --------------------------------------------------------------- */

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

static void test_feature_struct(void **state)
{
    char *schema = read_file("features/moderation/schema.json");
    size_t users = 0;

    (void)state;
    assert_non_null(schema);
    assert_string_equal(gh_feature_moderation.settings_schema, schema);
    free(schema);
    assert_string_equal(gh_feature_moderation.name, "moderation");
    assert_string_equal(gh_feature_moderation.title, "Moderation");
    assert_true(gh_feature_moderation.can_disable);
    assert_true(gh_feature_moderation.default_enabled);
    assert_ptr_equal(gh_feature_moderation.jobs, gh_mod_jobs);
    assert_int_equal(gh_feature_moderation.n_jobs, GH_MOD_N_JOBS);
    assert_ptr_equal(gh_feature_moderation.routes, gh_mod_routes);
    assert_int_equal(gh_feature_moderation.n_routes, GH_MOD_N_ROUTES);
    for (size_t i = 0; i < gh_feature_moderation.n_commands; i++) {
        const struct gh_command *c = &gh_feature_moderation.commands[i];
        uint64_t bits = 0;
        /* Every command: guild only, a permission declared. */
        assert_int_equal(c->contexts, GH_CTX_GUILD);
        assert_non_null(c->default_member_permissions);
        assert_int_equal(gh_perms_parse(c->default_member_permissions, &bits), GH_OK);
        assert_true(bits != 0);
        users += c->type == 2;
    }
    assert_int_equal(users, 5);
    assert_non_null(gh_registry_command("warn", 1, NULL));
    assert_non_null(gh_registry_command("Warn", 2, NULL));
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_warn_happy_path),
        T(test_timeout_durations),
        T(test_reason_too_long),
        T(test_ban_variants),
        T(test_mute_and_jail_need_roles),
        T(test_refusal_is_ephemeral_and_recorded),
        T(test_act_outcomes),
        T(test_context_menus),
        T(test_case_show),
        T(test_case_reason_and_void),
        T(test_cases_and_notes),
        T(test_purge),
        T(test_slowmode),
        T(test_lockdown_round_trip),
        T(test_feature_struct),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
