/* test_registry.c - the feature registry: lookups, the bulk-overwrite JSON,
 * and Discord's limits on every command, option, job and schema. Pure: no
 * services needed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "core/err.h"
#include "core/str.h"
#include "features/automod/automod.h"
#include "features/core/core.h"
#include "features/events/events.h"
#include "features/levels/levels.h"
#include "features/moderation/moderation.h"
#include "features/premium/premium.h"
#include "features/registry.h"
#include "features/utility/utility.h"

/* ---- helpers ------------------------------------------------------------- */

/* ^[-_a-z0-9]{1,32}$ (our names are ASCII; Discord allows more). */
static int valid_name(const char *s)
{
    size_t n = 0;

    if (!s)
        return 0;
    for (; s[n]; n++)
        if (!((s[n] >= 'a' && s[n] <= 'z') || (s[n] >= '0' && s[n] <= '9') || s[n] == '-' || s[n] == '_'))
            return 0;
    return n >= 1 && n <= 32;
}

/* Length in characters (UTF-8 code points), as Discord counts. */
static size_t utf8_len(const char *s)
{
    size_t n = 0;

    for (; *s; s++)
        n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

static int valid_description(const char *s)
{
    return s && utf8_len(s) >= 1 && utf8_len(s) <= 100;
}

static const char *jstr(json_object *o, const char *k)
{
    json_object *v = NULL;

    if (!json_object_object_get_ex(o, k, &v) || !json_object_is_type(v, json_type_string))
        return NULL;
    return json_object_get_string(v);
}

static int jint(json_object *o, const char *k, int def)
{
    json_object *v = NULL;

    if (!json_object_object_get_ex(o, k, &v) || !json_object_is_type(v, json_type_int))
        return def;
    return json_object_get_int(v);
}

/* Checks one level of an options array (recursing into subcommands);
 * depth 0 = the command's own options. Fails the test with a message. */
static void check_options(const char *cmd, json_object *opts, int depth)
{
    int seen_optional = 0;

    assert_true(json_object_is_type(opts, json_type_array));
    if (json_object_array_length(opts) > 25)
        fail_msg("/%s: more than 25 options", cmd);
    for (size_t i = 0; i < json_object_array_length(opts); i++) {
        json_object *o = json_object_array_get_idx(opts, i), *sub = NULL, *choices = NULL, *v = NULL;
        const char *name = jstr(o, "name");
        int type = jint(o, "type", 0);
        int required = json_object_object_get_ex(o, "required", &v) && json_object_get_boolean(v);

        if (!valid_name(name))
            fail_msg("/%s: option name '%s' breaks ^[-_a-z0-9]{1,32}$", cmd, name ? name : "(null)");
        if (!valid_description(jstr(o, "description")))
            fail_msg("/%s %s: option description must be 1..100 characters", cmd, name);
        if (type < 1 || type > 11)
            fail_msg("/%s %s: option type %d is not a Discord option type", cmd, name, type);
        if (type <= 2) { /* SUB_COMMAND / SUB_COMMAND_GROUP */
            if (depth >= 2 || (type == 2 && depth >= 1))
                fail_msg("/%s %s: subcommands nested too deep", cmd, name);
            if (json_object_object_get_ex(o, "options", &sub))
                check_options(cmd, sub, depth + 1);
            continue;
        }
        if (required && seen_optional)
            fail_msg("/%s %s: a required option after an optional one", cmd, name);
        if (!required)
            seen_optional = 1;
        if (json_object_object_get_ex(o, "choices", &choices)) {
            if (json_object_array_length(choices) > 25)
                fail_msg("/%s %s: more than 25 choices", cmd, name);
            if (json_object_object_get_ex(o, "autocomplete", &v) && json_object_get_boolean(v))
                fail_msg("/%s %s: autocomplete together with choices", cmd, name);
        }
    }
}

/* ---- lookups ------------------------------------------------------------- */

static void test_feature_table(void **state)
{
    size_t n = 0;

    (void)state;
    for (; gh_features[n]; n++)
        ;
    assert_int_equal(n, 7);
    assert_ptr_equal(gh_features[0], &gh_feature_core);
    assert_ptr_equal(gh_features[1], &gh_feature_utility);
    assert_ptr_equal(gh_features[2], &gh_feature_premium);
    assert_ptr_equal(gh_features[3], &gh_feature_moderation);
    /* gateway events: AutoMod flags a message before events (prefix
     * commands) and levels (XP) look at it */
    assert_ptr_equal(gh_features[4], &gh_feature_automod);
    assert_ptr_equal(gh_features[5], &gh_feature_events);
    assert_ptr_equal(gh_features[6], &gh_feature_levels);
    for (size_t i = 0; i < n; i++) {
        assert_true(valid_name(gh_features[i]->name));
        assert_non_null(gh_features[i]->title);
        assert_non_null(gh_features[i]->description);
        for (size_t j = i + 1; j < n; j++)
            assert_string_not_equal(gh_features[i]->name, gh_features[j]->name);
    }
    assert_false(gh_feature_core.can_disable);
    assert_true(gh_feature_core.default_enabled);
    assert_true(gh_feature_utility.can_disable);
    assert_true(gh_feature_utility.default_enabled);
    assert_false(gh_feature_premium.can_disable);
    assert_true(gh_feature_premium.default_enabled);
    assert_true(gh_feature_moderation.can_disable);
    assert_true(gh_feature_moderation.default_enabled);
}

static void test_feature_lookup(void **state)
{
    (void)state;
    assert_ptr_equal(gh_registry_feature("core"), &gh_feature_core);
    assert_ptr_equal(gh_registry_feature("utility"), &gh_feature_utility);
    assert_null(gh_registry_feature("Core"));
    assert_null(gh_registry_feature("nope"));
    assert_null(gh_registry_feature(""));
    assert_null(gh_registry_feature(NULL));
}

static void test_command_lookup(void **state)
{
    const struct gh_feature *f = (const struct gh_feature *)1;
    const struct gh_command *c;

    (void)state;
    c = gh_registry_command("ping", 1, &f);
    assert_non_null(c);
    assert_string_equal(c->name, "ping");
    assert_ptr_equal(f, &gh_feature_core);

    c = gh_registry_command("userinfo", 0, &f); /* 0 = any type */
    assert_non_null(c);
    assert_ptr_equal(f, &gh_feature_utility);

    assert_null(gh_registry_command("ping", 2, &f)); /* no USER command named ping */
    assert_null(f);
    f = (const struct gh_feature *)1;
    assert_null(gh_registry_command("pong", 1, &f));
    assert_null(f);
    assert_null(gh_registry_command(NULL, 1, NULL));
    assert_non_null(gh_registry_command("feature", 1, NULL)); /* feature pointer optional */

    for (size_t i = 0; gh_features[i]; i++)
        for (size_t j = 0; j < gh_features[i]->n_commands; j++) {
            const struct gh_command *want = &gh_features[i]->commands[j];
            assert_ptr_equal(gh_registry_command(want->name, want->type, &f), want);
            assert_ptr_equal(f, gh_features[i]);
        }
}

static void test_job_lookup(void **state)
{
    const struct gh_feature *f = NULL;
    const struct gh_job_kind *k;

    (void)state;
    k = gh_registry_job("core:followup", &f);
    assert_non_null(k);
    assert_string_equal(k->kind, "core:followup");
    assert_ptr_equal(f, &gh_feature_core);
    assert_non_null(k->run);
    k = gh_registry_job("core:alert", &f);
    assert_non_null(k);
    assert_ptr_equal(f, &gh_feature_core);
    assert_null(gh_registry_job("core:cmdlog_flush", &f)); /* the worker flushes itself, not a job */
    assert_null(f);
    assert_null(gh_registry_job("core:", NULL));
    assert_null(gh_registry_job(NULL, NULL));
}

static void test_component_lookup(void **state)
{
    const struct gh_feature *f = (const struct gh_feature *)1;

    (void)state;
    /* No feature has components yet: nothing matches, and f is cleared. */
    assert_null(gh_registry_component("core:anything", &f));
    assert_null(f);
    assert_null(gh_registry_component(NULL, NULL));
}

/* ---- Discord's limits ---------------------------------------------------- */

static void test_commands_obey_discord_limits(void **state)
{
    size_t chat_input = 0, user_cmds = 0;

    (void)state;
    for (size_t i = 0; gh_features[i]; i++) {
        const struct gh_feature *f = gh_features[i];
        for (size_t j = 0; j < f->n_commands; j++) {
            const struct gh_command *c = &f->commands[j];
            json_object *opts = NULL;

            if (c->type == 2) { /* USER context menu: any case and spaces, empty description, no options */
                if (!c->name || utf8_len(c->name) < 1 || utf8_len(c->name) > 32)
                    fail_msg("user command name '%s' must be 1..32 characters", c->name ? c->name : "(null)");
                if (!c->description || c->description[0])
                    fail_msg("user command '%s': the description must be empty", c->name);
                assert_null(c->options_json);
                assert_non_null(c->handler);
                assert_int_equal(c->contexts, GH_CTX_GUILD);
                user_cmds++;
                continue;
            }
            if (!valid_name(c->name))
                fail_msg("command name '%s' breaks ^[-_a-z0-9]{1,32}$", c->name);
            if (!valid_description(c->description))
                fail_msg("/%s: description must be 1..100 characters (%zu)", c->name,
                         utf8_len(c->description));
            assert_true(c->type == 0 || c->type == 1);
            chat_input++;
            assert_non_null(c->handler);
            assert_true(c->contexts != 0);
            assert_int_equal(c->contexts & ~(unsigned)(GH_CTX_GUILD | GH_CTX_BOT_DM | GH_CTX_PRIVATE_CHANNEL),
                             0);
            if (c->default_member_permissions) {
                uint64_t bits = 0;
                assert_int_equal(gh_cstr_to_u64(c->default_member_permissions, &bits), GH_OK);
            }
            if (c->options_json) {
                opts = json_tokener_parse(c->options_json);
                if (!opts)
                    fail_msg("/%s: options_json does not parse", c->name);
                check_options(c->name, opts, 0);
                json_object_put(opts);
            }
            /* Names are unique across the registry (one type here). */
            for (size_t k = 0; gh_features[k]; k++)
                for (size_t m = 0; m < gh_features[k]->n_commands; m++)
                    if (&gh_features[k]->commands[m] != c)
                        assert_string_not_equal(gh_features[k]->commands[m].name, c->name);
        }
    }
    assert_true(chat_input <= 100);
    assert_true(user_cmds <= 15); /* Discord's limit on USER commands */
}

static void test_contexts_of_core(void **state)
{
    const unsigned everywhere = GH_CTX_GUILD | GH_CTX_BOT_DM | GH_CTX_PRIVATE_CHANNEL;

    (void)state;
    assert_int_equal(gh_registry_command("ping", 1, NULL)->contexts, everywhere);
    assert_int_equal(gh_registry_command("help", 1, NULL)->contexts, everywhere);
    assert_int_equal(gh_registry_command("status", 1, NULL)->contexts, everywhere);
    assert_int_equal(gh_registry_command("feature", 1, NULL)->contexts, GH_CTX_GUILD);
    assert_string_equal(gh_registry_command("feature", 1, NULL)->default_member_permissions, "32");
    assert_int_equal(gh_registry_command("serverinfo", 1, NULL)->contexts, GH_CTX_GUILD);
}

static void test_jobs_and_schemas(void **state)
{
    (void)state;
    for (size_t i = 0; gh_features[i]; i++) {
        const struct gh_feature *f = gh_features[i];
        size_t plen = strlen(f->name);

        for (size_t j = 0; j < f->n_jobs; j++) {
            const struct gh_job_kind *k = &f->jobs[j];
            /* A kind is "<feature>:<what>", unique, and runnable. The one exception is
             * "gateway:event", the kind gateway-lite enqueues (features/registry.h), which
             * the events feature runs. */
            if (!(strcmp(k->kind, "gateway:event") == 0 && strcmp(f->name, "events") == 0)) {
                assert_int_equal(strncmp(k->kind, f->name, plen), 0);
                assert_int_equal(k->kind[plen], ':');
            }
            assert_non_null(k->run);
            assert_true(k->timeout_s >= 0 && k->max_attempts >= 0);
            assert_ptr_equal(gh_registry_job(k->kind, NULL), k);
        }
        if (f->settings_schema) {
            json_object *s = json_tokener_parse(f->settings_schema), *t = NULL;
            if (!s)
                fail_msg("%s: settings_schema does not parse", f->name);
            assert_true(json_object_object_get_ex(s, "type", &t));
            assert_string_equal(json_object_get_string(t), "object");
            json_object_put(s);
        }
    }
}

/* ---- the bulk-overwrite body --------------------------------------------- */

static json_object *find_cmd(json_object *arr, const char *name)
{
    for (size_t i = 0; i < json_object_array_length(arr); i++) {
        const char *n = jstr(json_object_array_get_idx(arr, i), "name");
        if (n && strcmp(n, name) == 0)
            return json_object_array_get_idx(arr, i);
    }
    return NULL;
}

static void test_commands_json(void **state)
{
    struct gh_buf b;
    json_object *arr, *c, *v = NULL;
    size_t total = 0;

    (void)state;
    for (size_t i = 0; gh_features[i]; i++)
        total += gh_features[i]->n_commands;
    gh_buf_init(&b, 1 << 20);
    assert_int_equal(gh_registry_commands_json(&b), GH_OK);
    arr = json_tokener_parse(gh_buf_cstr(&b));
    assert_non_null(arr);
    assert_true(json_object_is_type(arr, json_type_array));
    assert_int_equal(json_object_array_length(arr), total);

    /* /ping: everyone, guild and DMs, options parsed into an array. */
    c = find_cmd(arr, "ping");
    assert_non_null(c);
    assert_int_equal(jint(c, "type", 0), 1);
    assert_string_equal(jstr(c, "description"), gh_registry_command("ping", 1, NULL)->description);
    assert_true(json_object_object_get_ex(c, "default_member_permissions", &v));
    assert_null(v); /* JSON null */
    assert_true(json_object_object_get_ex(c, "options", &v));
    assert_true(json_object_is_type(v, json_type_array));
    assert_string_equal(jstr(json_object_array_get_idx(v, 0), "name"), "deferred");
    assert_true(json_object_object_get_ex(c, "contexts", &v));
    assert_string_equal(json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN), "[0,1,2]");
    assert_true(json_object_object_get_ex(c, "integration_types", &v));
    assert_string_equal(json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN), "[0]");

    /* /feature: Manage Server as a string, guild only. */
    c = find_cmd(arr, "feature");
    assert_non_null(c);
    assert_string_equal(jstr(c, "default_member_permissions"), "32");
    assert_true(json_object_object_get_ex(c, "contexts", &v));
    assert_string_equal(json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN), "[0]");

    /* A command without options has no "options" member. */
    c = find_cmd(arr, "status");
    assert_non_null(c);
    assert_false(json_object_object_get_ex(c, "options", &v));

    /* Disabled-by-guild features are registered too: utility is there. */
    assert_non_null(find_cmd(arr, "serverinfo"));
    assert_non_null(find_cmd(arr, "userinfo"));
    json_object_put(arr);
    gh_buf_cleanup(&b);
}

static void test_commands_json_too_big(void **state)
{
    struct gh_buf b;

    (void)state;
    gh_buf_init(&b, 64);
    assert_int_equal(gh_registry_commands_json(&b), GH_ETOOBIG);
    assert_int_equal(b.len, 0); /* nothing half-written */
    gh_buf_cleanup(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_feature_table),    cmocka_unit_test(test_feature_lookup),
        cmocka_unit_test(test_command_lookup),   cmocka_unit_test(test_job_lookup),
        cmocka_unit_test(test_component_lookup), cmocka_unit_test(test_commands_obey_discord_limits),
        cmocka_unit_test(test_contexts_of_core), cmocka_unit_test(test_jobs_and_schemas),
        cmocka_unit_test(test_commands_json),    cmocka_unit_test(test_commands_json_too_big),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
