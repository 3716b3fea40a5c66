/* test_mod_checks.c - gh_mod_check: every refusal (missing permission,
 * missing tier, lower role, target above the bot, self, owner, the bot, the
 * bot lacking the permission, Discord unreadable) and the passing cases.
 *
 * gh_rest_do is wrapped (test_mod_checks.wrap) and answers like Discord for
 * one guild: the guild (owner), its roles and its members. No Redis, so the
 * guild cache reads Discord every time; one case uses REDIS_URL when set to
 * check that the owner is cached. */
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
#include "store/redis.h"

#define APP_ID "1234567890123456789"
#define OWNER "111122223333444455"
#define ALICE "123456789012345678" /* moderator: roles member (1), moderator (3) */
#define BOB "987654321098765432"   /* member: role member (1) */
#define ADAM "222233334444555566"  /* admin: role admin (5) */
#define STRANGER "555566667777888899"

#define R_MEMBER "1300000000000000001"
#define R_MUTED "1300000000000000002"
#define R_MOD "1300000000000000003"
#define R_BOT "1300000000000000004"
#define R_ADMIN "1300000000000000005"

/* ---- the wrapped REST client: one guild ------------------------------------ */

static char guild_id_s[24];
static int n_calls;
static int n_guild_calls;
static long roles_status = 200; /* 503: roles unreadable */

static const char *member_roles_of(const char *user)
{
    if (strcmp(user, ALICE) == 0)
        return "[\"" R_MEMBER "\",\"" R_MOD "\"]";
    if (strcmp(user, BOB) == 0)
        return "[\"" R_MEMBER "\"]";
    if (strcmp(user, ADAM) == 0 || strcmp(user, OWNER) == 0)
        return "[\"" R_ADMIN "\"]";
    if (strcmp(user, APP_ID) == 0)
        return "[\"" R_BOT "\"]";
    return NULL;
}

int __wrap_gh_rest_do(struct gh_rest *rest, const struct gh_rest_req *req, struct gh_rest_resp *resp);
int __wrap_gh_rest_do(struct gh_rest *rest, const struct gh_rest_req *req, struct gh_rest_resp *resp)
{
    char prefix[64], body[1024];
    long status = 404;
    const char *p = req->path;

    (void)rest;
    n_calls++;
    memset(resp, 0, sizeof(*resp));
    snprintf(body, sizeof(body), "{\"message\":\"Unknown\",\"code\":10007}");
    snprintf(prefix, sizeof(prefix), "/guilds/%s", guild_id_s);
    if (strcmp(req->method, "GET") == 0 && strncmp(p, prefix, strlen(prefix)) == 0) {
        p += strlen(prefix);
        if (*p == '\0') {
            n_guild_calls++;
            status = 200;
            snprintf(body, sizeof(body), "{\"id\":\"%s\",\"name\":\"G\",\"owner_id\":\"" OWNER "\"}",
                     guild_id_s);
        } else if (strcmp(p, "/roles") == 0) {
            status = roles_status;
            if (status == 200)
                snprintf(body, sizeof(body),
                         "[{\"id\":\"%s\",\"position\":0},{\"id\":\"" R_MEMBER "\",\"position\":1},"
                         "{\"id\":\"" R_MUTED "\",\"position\":2},{\"id\":\"" R_MOD "\",\"position\":3},"
                         "{\"id\":\"" R_BOT "\",\"position\":4},{\"id\":\"" R_ADMIN "\",\"position\":5}]",
                         guild_id_s);
        } else if (strncmp(p, "/members/", 9) == 0 && member_roles_of(p + 9)) {
            status = 200;
            snprintf(body, sizeof(body), "{\"user\":{\"id\":\"%s\"},\"roles\":%s}", p + 9,
                     member_roles_of(p + 9));
        }
    }
    resp->status = status;
    resp->body = strdup(body);
    resp->body_len = strlen(body);
    if (status == 200)
        return GH_OK;
    snprintf(resp->error, sizeof(resp->error), "HTTP %ld", status);
    return status == 404 ? GH_ENOTFOUND : GH_EHTTP;
}

/* ---- fixture ---------------------------------------------------------------- */

struct fx {
    struct gh_config cfg;
    struct gh_log_sink sink;
    struct gh_ctx ctx;
    struct gh_mod_settings s;
    struct gh_interaction ix;
    int have_ix;
    uint64_t guild_id;
    int rest_dummy;
    char why[512];
};

static int setup(void **state)
{
    struct fx *fx = calloc(1, sizeof(*fx));

    if (!fx)
        return -1;
    gh_log_sink_init(&fx->sink, "test", GH_LOG_CRIT, NULL, 0, 0);
    gh_logger_init(&fx->ctx.log, &fx->sink, "test");
    fx->ctx.cfg = &fx->cfg;
    fx->ctx.rest = (struct gh_rest *)&fx->rest_dummy; /* never dereferenced: gh_rest_do is wrapped */
    fx->cfg.application_id = gh_snowflake_parse(APP_ID);
    fx->guild_id = (uint64_t)(gh_now_ms() - 1420070400000LL) << 22 | (uint64_t)(getpid() & 0x3fffff);
    snprintf(guild_id_s, sizeof(guild_id_s), "%" PRIu64, fx->guild_id);
    n_calls = n_guild_calls = 0;
    roles_status = 200;
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fx *fx = *state;

    if (fx->have_ix)
        gh_interaction_cleanup(&fx->ix);
    gh_redis_free(fx->ctx.redis);
    gh_log_sink_cleanup(&fx->sink);
    free(fx);
    return 0;
}

/* An interaction from user (with roles JSON and permissions) in the guild,
 * Guildhall holding app_perms. */
static struct gh_interaction *ix_from(struct fx *fx, const char *user, const char *roles, uint64_t perms,
                                      uint64_t app_perms)
{
    char body[4096], err[256];
    int n;

    if (fx->have_ix)
        gh_interaction_cleanup(&fx->ix);
    n = snprintf(
        body, sizeof(body),
        "{\"id\":\"1300000000000000999\",\"application_id\":\"" APP_ID "\",\"type\":2,\"token\":\"t\","
        "\"version\":1,\"guild_id\":\"%s\",\"channel_id\":\"1300000000000000777\","
        "\"app_permissions\":\"%" PRIu64 "\",\"member\":{\"permissions\":\"%" PRIu64 "\",\"roles\":%s,"
        "\"user\":{\"id\":\"%s\",\"username\":\"u\"}},\"data\":{\"id\":\"1\",\"name\":\"ban\",\"type\":1}}",
        guild_id_s, app_perms, perms, roles, user);
    assert_true(n > 0 && (size_t)n < sizeof(body));
    if (gh_interaction_parse(body, (size_t)n, &fx->ix, err, sizeof(err)) != GH_OK)
        fail_msg("interaction does not parse: %s", err);
    fx->have_ix = 1;
    return &fx->ix;
}

static struct gh_interaction *ix_alice(struct fx *fx, uint64_t perms)
{
    return ix_from(fx, ALICE, "[\"" R_MEMBER "\",\"" R_MOD "\"]", perms,
                   GH_PERM(BAN_MEMBERS) | GH_PERM(KICK_MEMBERS) | GH_PERM(MODERATE_MEMBERS) |
                       GH_PERM(MANAGE_ROLES));
}

static struct gh_mod_check chk_on(uint64_t need, enum gh_mod_tier tier, const char *target, int member)
{
    struct gh_mod_check c;

    memset(&c, 0, sizeof(c));
    c.need = need;
    c.tier = tier;
    c.target_id = gh_snowflake_parse(target);
    c.target_is_member = member;
    return c;
}

static int run_check(struct fx *fx, const struct gh_interaction *ix, const struct gh_mod_check *c)
{
    fx->why[0] = 'x';
    fx->why[1] = '\0';
    return gh_mod_check(&fx->ctx, ix, &fx->s, c, fx->why, sizeof(fx->why));
}

#define assert_why_has(fx, text)                                                                             \
    do {                                                                                                     \
        if (!strstr((fx)->why, (text)))                                                                      \
            fail_msg("why \"%s\" lacks \"%s\"", (fx)->why, (text));                                          \
    } while (0)

/* ---- permission and tier ------------------------------------------------------ */

static void test_missing_permission(void **state)
{
    struct fx *fx = *state;
    struct gh_mod_check c = chk_on(GH_PERM(BAN_MEMBERS), GH_MOD_TIER_NONE, BOB, 1);

    assert_int_equal(run_check(fx, ix_alice(fx, GH_PERM(KICK_MEMBERS)), &c), GH_EFORBIDDEN);
    assert_why_has(fx, "You need the **Ban Members** permission");
    assert_null(strstr(fx->why, "tier"));
    assert_int_equal(n_calls, 0); /* refused before reading anything from Discord */
}

static void test_missing_tier(void **state)
{
    struct fx *fx = *state;
    struct gh_mod_check c = chk_on(GH_PERM(MODERATE_MEMBERS), GH_MOD_TIER_MODERATOR, BOB, 1);

    /* Tier roles exist, but not Alice's. */
    fx->s.moderator_roles[0] = gh_snowflake_parse(R_MUTED);
    fx->s.n_moderator_roles = 1;
    assert_int_equal(run_check(fx, ix_alice(fx, 0), &c), GH_EFORBIDDEN);
    assert_why_has(fx, "**Moderate Members**");
    assert_why_has(fx, "moderator staff tier");
}

static void test_tier_granted_via_role(void **state)
{
    struct fx *fx = *state;
    struct gh_mod_check c = chk_on(GH_PERM(MODERATE_MEMBERS), GH_MOD_TIER_MODERATOR, BOB, 1);

    fx->s.moderator_roles[0] = gh_snowflake_parse(R_MOD);
    fx->s.n_moderator_roles = 1;
    assert_int_equal(run_check(fx, ix_alice(fx, 0), &c), GH_OK);
    assert_string_equal(fx->why, "");

    /* The moderator tier is not the admin tier... */
    c = chk_on(GH_PERM(BAN_MEMBERS), GH_MOD_TIER_ADMIN, BOB, 1);
    assert_int_equal(run_check(fx, ix_alice(fx, 0), &c), GH_EFORBIDDEN);
    assert_why_has(fx, "admin staff tier");
    /* ...but the admin tier covers the moderator tier. */
    fx->s.n_moderator_roles = 0;
    fx->s.admin_roles[0] = gh_snowflake_parse(R_MOD);
    fx->s.n_admin_roles = 1;
    c = chk_on(GH_PERM(MODERATE_MEMBERS), GH_MOD_TIER_MODERATOR, BOB, 1);
    assert_int_equal(run_check(fx, ix_alice(fx, 0), &c), GH_OK);
    /* A tier never stands in when the command asks for the permission only. */
    c = chk_on(GH_PERM(MODERATE_MEMBERS), GH_MOD_TIER_NONE, BOB, 1);
    assert_int_equal(run_check(fx, ix_alice(fx, 0), &c), GH_EFORBIDDEN);
}

static void test_administrator_implies_all(void **state)
{
    struct fx *fx = *state;
    struct gh_mod_check c = chk_on(GH_PERM(BAN_MEMBERS), GH_MOD_TIER_NONE, BOB, 1);

    assert_int_equal(run_check(fx, ix_alice(fx, GH_PERM(ADMINISTRATOR)), &c), GH_OK);
}

/* ---- the target ----------------------------------------------------------------- */

static void test_self_owner_bot(void **state)
{
    struct fx *fx = *state;
    struct gh_mod_check c = chk_on(GH_PERM(BAN_MEMBERS), GH_MOD_TIER_NONE, ALICE, 1);

    assert_int_equal(run_check(fx, ix_alice(fx, GH_PERM(BAN_MEMBERS)), &c), GH_EFORBIDDEN);
    assert_why_has(fx, "yourself");
    c = chk_on(GH_PERM(BAN_MEMBERS), GH_MOD_TIER_NONE, APP_ID, 1);
    assert_int_equal(run_check(fx, ix_alice(fx, GH_PERM(BAN_MEMBERS)), &c), GH_EFORBIDDEN);
    assert_why_has(fx, "Guildhall can't act on itself");
    /* The owner, even for an invoker with Administrator. */
    c = chk_on(GH_PERM(BAN_MEMBERS), GH_MOD_TIER_NONE, OWNER, 1);
    assert_int_equal(
        run_check(fx, ix_from(fx, ADAM, "[\"" R_ADMIN "\"]", GH_PERM(ADMINISTRATOR), GH_PERM(ADMINISTRATOR)),
                  &c),
        GH_EFORBIDDEN);
    assert_why_has(fx, "server owner");
    assert_int_equal(n_guild_calls, 1);
}

static void test_lower_role(void **state)
{
    struct fx *fx = *state;
    struct gh_mod_check c = chk_on(GH_PERM(BAN_MEMBERS), GH_MOD_TIER_NONE, ADAM, 1);

    /* Alice (highest 3) on Adam (5): refused, whatever her permissions. */
    assert_int_equal(run_check(fx, ix_alice(fx, GH_PERM(ADMINISTRATOR)), &c), GH_EFORBIDDEN);
    assert_why_has(fx, "Your highest role must be above");
    /* Equal roles are not enough either. */
    c = chk_on(GH_PERM(BAN_MEMBERS), GH_MOD_TIER_NONE, STRANGER, 1);
    {
        json_object *m = json_tokener_parse("{\"roles\":[\"" R_MOD "\"]}");
        c.target_member = m;
        assert_int_equal(run_check(fx, ix_alice(fx, GH_PERM(BAN_MEMBERS)), &c), GH_EFORBIDDEN);
        assert_why_has(fx, "Your highest role must be above");
        json_object_put(m);
    }
}

static void test_target_above_bot(void **state)
{
    struct fx *fx = *state;
    struct gh_mod_check c = chk_on(GH_PERM(BAN_MEMBERS), GH_MOD_TIER_NONE, ADAM, 1);

    /* The owner passes the invoker's hierarchy (no role at all), but Adam
     * (5) sits above Guildhall (4). */
    assert_int_equal(
        run_check(fx, ix_from(fx, OWNER, "[]", GH_PERM(ADMINISTRATOR), GH_PERM(ADMINISTRATOR)), &c),
        GH_EFORBIDDEN);
    assert_why_has(fx, "Guildhall's highest role must be above");
}

static void test_owner_passes_hierarchy(void **state)
{
    struct fx *fx = *state;
    struct gh_mod_check c = chk_on(GH_PERM(BAN_MEMBERS), GH_MOD_TIER_NONE, BOB, 1);

    assert_int_equal(
        run_check(fx, ix_from(fx, OWNER, "[]", GH_PERM(ADMINISTRATOR), GH_PERM(BAN_MEMBERS)), &c), GH_OK);
}

static void test_bot_lacks_permission(void **state)
{
    struct fx *fx = *state;
    struct gh_mod_check c = chk_on(GH_PERM(BAN_MEMBERS), GH_MOD_TIER_NONE, BOB, 1);

    assert_int_equal(
        run_check(fx, ix_from(fx, ALICE, "[\"" R_MOD "\"]", GH_PERM(BAN_MEMBERS), GH_PERM(KICK_MEMBERS)), &c),
        GH_EFORBIDDEN);
    assert_why_has(fx, "Guildhall lacks the **Ban Members** permission");
    /* bot_need replaces need for the bot (mute: Manage Roles)... */
    c = chk_on(GH_PERM(MODERATE_MEMBERS), GH_MOD_TIER_NONE, BOB, 1);
    c.bot_need = GH_PERM(MANAGE_ROLES);
    assert_int_equal(
        run_check(fx,
                  ix_from(fx, ALICE, "[\"" R_MOD "\"]", GH_PERM(MODERATE_MEMBERS), GH_PERM(MODERATE_MEMBERS)),
                  &c),
        GH_EFORBIDDEN);
    assert_why_has(fx, "**Manage Roles**");
    /* ...and bot_need_none skips it (warn, note). */
    c.bot_need = 0;
    c.bot_need_none = 1;
    assert_int_equal(run_check(fx, ix_from(fx, ALICE, "[\"" R_MOD "\"]", GH_PERM(MODERATE_MEMBERS), 0), &c),
                     GH_OK);
}

static void test_pass_member_and_non_member(void **state)
{
    struct fx *fx = *state;
    struct gh_mod_check c = chk_on(GH_PERM(BAN_MEMBERS), GH_MOD_TIER_NONE, BOB, 1);
    json_object *resolved = json_tokener_parse("{\"roles\":[\"" R_MEMBER "\"]}");

    /* Bob fetched from Discord. */
    assert_int_equal(run_check(fx, ix_alice(fx, GH_PERM(BAN_MEMBERS)), &c), GH_OK);
    assert_string_equal(fx->why, "");
    /* Bob from the interaction's resolved data: no member read. */
    n_calls = 0;
    c.target_member = resolved;
    assert_int_equal(run_check(fx, ix_alice(fx, GH_PERM(BAN_MEMBERS)), &c), GH_OK);
    assert_int_equal(n_calls, 3); /* guild (owner), roles, Guildhall's member */
    json_object_put(resolved);
    /* Not a member (a hackban): no hierarchy, nothing read from Discord. */
    n_calls = 0;
    c = chk_on(GH_PERM(BAN_MEMBERS), GH_MOD_TIER_NONE, STRANGER, 0);
    assert_int_equal(run_check(fx, ix_alice(fx, GH_PERM(BAN_MEMBERS)), &c), GH_OK);
    assert_int_equal(n_calls, 0);
    /* No target (channel tools): only the permissions. */
    c = chk_on(GH_PERM(BAN_MEMBERS), GH_MOD_TIER_NONE, "0", 0);
    assert_int_equal(run_check(fx, ix_alice(fx, GH_PERM(BAN_MEMBERS)), &c), GH_OK);
}

static void test_target_left_meanwhile(void **state)
{
    struct fx *fx = *state;
    struct gh_mod_check c = chk_on(GH_PERM(BAN_MEMBERS), GH_MOD_TIER_NONE, STRANGER, 1);

    /* Marked a member, but Discord says 404: nothing to outrank. */
    assert_int_equal(run_check(fx, ix_alice(fx, GH_PERM(BAN_MEMBERS)), &c), GH_OK);
}

static void test_discord_unreadable_fails_closed(void **state)
{
    struct fx *fx = *state;
    struct gh_mod_check c = chk_on(GH_PERM(BAN_MEMBERS), GH_MOD_TIER_NONE, BOB, 1);
    int rc;

    roles_status = 503;
    rc = run_check(fx, ix_alice(fx, GH_PERM(BAN_MEMBERS)), &c);
    assert_true(rc == GH_EHTTP || rc == GH_EUNAVAILABLE);
    assert_why_has(fx, "could not read this server's roles");
    assert_why_has(fx, "Nothing was done");
    /* No REST client at all. */
    roles_status = 200;
    fx->ctx.rest = NULL;
    rc = run_check(fx, ix_alice(fx, GH_PERM(BAN_MEMBERS)), &c);
    assert_int_equal(rc, GH_EUNAVAILABLE);
    assert_why_has(fx, "Nothing was done");
}

static void test_outside_a_guild(void **state)
{
    struct fx *fx = *state;
    struct gh_mod_check c = chk_on(GH_PERM(BAN_MEMBERS), GH_MOD_TIER_NONE, BOB, 1);
    struct gh_interaction ix;

    memset(&ix, 0, sizeof(ix));
    ix.user_id = gh_snowflake_parse(ALICE);
    ix.member_permissions = GH_PERM(ADMINISTRATOR);
    assert_int_equal(run_check(fx, &ix, &c), GH_EFORBIDDEN);
    assert_why_has(fx, "only work in a server");
}

static void test_owner_cached_in_redis(void **state)
{
    struct fx *fx = *state;
    const char *url = getenv("REDIS_URL");
    struct gh_mod_check c = chk_on(GH_PERM(BAN_MEMBERS), GH_MOD_TIER_NONE, BOB, 1);
    char key[128];
    redisReply *r;

    if (!url || !url[0]) {
        fprintf(stderr, "skipped: REDIS_URL not set\n");
        skip();
    }
    fx->ctx.redis = gh_redis_new(url, 500, &fx->ctx.log);
    if (!fx->ctx.redis || gh_redis_ping(fx->ctx.redis) != GH_OK) {
        fprintf(stderr, "skipped: Redis not reachable\n");
        skip();
    }
    assert_int_equal(run_check(fx, ix_alice(fx, GH_PERM(BAN_MEMBERS)), &c), GH_OK);
    assert_int_equal(run_check(fx, ix_alice(fx, GH_PERM(BAN_MEMBERS)), &c), GH_OK);
    assert_int_equal(n_guild_calls, 1); /* the second check read the owner from Redis */
    assert_int_equal(gh_key_guild(key, sizeof(key), fx->guild_id, "cache", "owner"), GH_OK);
    r = gh_redis_cmd(fx->ctx.redis, "GET %s", key);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    assert_string_equal(r->str, OWNER);
    freeReplyObject(r);
    r = gh_redis_cmd(fx->ctx.redis, "TTL %s", key);
    assert_true(r && r->type == REDIS_REPLY_INTEGER && r->integer > 0 && r->integer <= 300);
    freeReplyObject(r);
    /* Leave nothing behind. */
    freeReplyObject(gh_redis_cmd(fx->ctx.redis, "DEL %s", key));
    assert_int_equal(gh_key_guild(key, sizeof(key), fx->guild_id, "cache", "roles"), GH_OK);
    freeReplyObject(gh_redis_cmd(fx->ctx.redis, "DEL %s", key));
    assert_int_equal(gh_key_guild(key, sizeof(key), fx->guild_id, "cache", "member:%s", BOB), GH_OK);
    freeReplyObject(gh_redis_cmd(fx->ctx.redis, "DEL %s", key));
    assert_int_equal(gh_key_guild(key, sizeof(key), fx->guild_id, "cache", "member:%s", APP_ID), GH_OK);
    freeReplyObject(gh_redis_cmd(fx->ctx.redis, "DEL %s", key));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_missing_permission, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_tier, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tier_granted_via_role, setup, teardown),
        cmocka_unit_test_setup_teardown(test_administrator_implies_all, setup, teardown),
        cmocka_unit_test_setup_teardown(test_self_owner_bot, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lower_role, setup, teardown),
        cmocka_unit_test_setup_teardown(test_target_above_bot, setup, teardown),
        cmocka_unit_test_setup_teardown(test_owner_passes_hierarchy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bot_lacks_permission, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pass_member_and_non_member, setup, teardown),
        cmocka_unit_test_setup_teardown(test_target_left_meanwhile, setup, teardown),
        cmocka_unit_test_setup_teardown(test_discord_unreadable_fails_closed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_outside_a_guild, setup, teardown),
        cmocka_unit_test_setup_teardown(test_owner_cached_in_redis, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
