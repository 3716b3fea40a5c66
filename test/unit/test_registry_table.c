/* test_registry_table.c - the registry's lookups and its command export run
 * over a fixture table instead of the real features: longest-prefix
 * component routing, command types, job kinds, and an options text that is
 * not a JSON array. registry.c is compiled into this test with the table's
 * names mapped to the fixtures below (the real table stays in the library
 * and is not linked here). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#define gh_features test_features
#define gh_feature_core fixture_alpha
#define gh_feature_utility fixture_beta
#define gh_feature_premium fixture_gamma
#define gh_feature_moderation fixture_gamma /* the real table is not linked here */
#define gh_feature_automod fixture_gamma    /* its jobs reach the registry: keep the real one out */
#define gh_feature_events fixture_gamma     /* its jobs reach the registry: keep the real one out */
#define gh_feature_levels fixture_gamma     /* the same for levels (its jobs and routes) */
#include "features/registry.c"

static int handled;

static int h_give(struct gh_ctx *ctx, const struct gh_interaction *ix, struct gh_buf *out)
{
    (void)ctx;
    (void)ix;
    (void)out;
    handled = 1;
    return GH_OK;
}

static int h_claim(struct gh_ctx *ctx, const struct gh_interaction *ix, struct gh_buf *out)
{
    (void)ctx;
    (void)ix;
    (void)out;
    handled = 2;
    return GH_OK;
}

static int run_job(struct gh_ctx *ctx, const struct gh_job *job)
{
    (void)ctx;
    (void)job;
    return GH_OK;
}

/* Writable so that one test can make it invalid. */
static char beta_options[128] = "[{\"type\":3,\"name\":\"q\",\"description\":\"what\"}]";

static const struct gh_component alpha_components[] = {
    {"", h_claim}, /* an empty prefix never matches */
    {"give:", h_give},
    {"give:claim:", h_claim},
};
static const struct gh_command alpha_commands[] = {
    {.name = "ping",
     .description = "Pong",
     .contexts = GH_CTX_GUILD | GH_CTX_BOT_DM | GH_CTX_PRIVATE_CHANNEL},
    {.name = "inspect",
     .description = "Inspect a user",
     .type = 2,
     .default_member_permissions = "8",
     .contexts = GH_CTX_GUILD},
};
static const struct gh_command beta_commands[] = {
    {.name = "inspect",
     .description = "Inspect text",
     .type = 1,
     .options_json = beta_options,
     .contexts = GH_CTX_PRIVATE_CHANNEL},
};
static const struct gh_job_kind beta_jobs[] = {{.kind = "beta:job", .run = run_job}};

const struct gh_feature fixture_alpha = {
    .name = "alpha",
    .title = "Alpha",
    .description = "a",
    .commands = alpha_commands,
    .n_commands = GH_COUNT(alpha_commands),
    .components = alpha_components,
    .n_components = GH_COUNT(alpha_components),
};
const struct gh_feature fixture_beta = {
    .name = "beta",
    .title = "Beta",
    .description = "b",
    .commands = beta_commands,
    .n_commands = GH_COUNT(beta_commands),
    .jobs = beta_jobs,
    .n_jobs = GH_COUNT(beta_jobs),
};
const struct gh_feature fixture_gamma = {.name = "gamma", .title = "Gamma", .description = "c"};

static void test_component_longest_prefix(void **state)
{
    const struct gh_feature *f = &fixture_beta;
    const struct gh_component *c;

    (void)state;
    c = gh_registry_component("give:claim:42", &f);
    assert_non_null(c);
    assert_ptr_equal(c, &alpha_components[2]);
    assert_ptr_equal(f, &fixture_alpha);
    c->handler(NULL, NULL, NULL);
    assert_int_equal(handled, 2);
    c = gh_registry_component("give:away", &f);
    assert_ptr_equal(c, &alpha_components[1]);
    assert_null(gh_registry_component("other:1", &f));
    assert_null(f);
    f = &fixture_alpha;
    assert_null(gh_registry_component(NULL, &f));
    assert_null(f);
    assert_non_null(gh_registry_component("give:", NULL));
}

static void test_command_types_and_jobs(void **state)
{
    const struct gh_feature *f = NULL;

    (void)state;
    assert_ptr_equal(gh_registry_command("inspect", 1, &f), &beta_commands[0]);
    assert_ptr_equal(f, &fixture_beta);
    assert_ptr_equal(gh_registry_command("inspect", 2, &f), &alpha_commands[1]);
    assert_ptr_equal(f, &fixture_alpha);
    assert_ptr_equal(gh_registry_command("inspect", 0, NULL), &alpha_commands[1]); /* any type: first */
    assert_ptr_equal(gh_registry_command("ping", 1, NULL), &alpha_commands[0]);    /* type 0 is 1 */
    assert_null(gh_registry_command("ping", 3, &f));
    assert_null(f);
    assert_null(gh_registry_command(NULL, 1, &f));
    assert_ptr_equal(gh_registry_job("beta:job", &f), &beta_jobs[0]);
    assert_ptr_equal(f, &fixture_beta);
    assert_null(gh_registry_job("alpha:none", &f));
    assert_null(gh_registry_job(NULL, NULL));
    assert_ptr_equal(gh_registry_feature("beta"), &fixture_beta);
    assert_ptr_equal(gh_registry_feature("gamma"), &fixture_gamma);
    assert_null(gh_registry_feature("delta"));
    assert_null(gh_registry_feature(NULL));
}

static void test_commands_json_shape(void **state)
{
    struct gh_buf b;
    json_object *arr, *c;

    (void)state;
    gh_buf_init(&b, 65536);
    assert_int_equal(gh_registry_commands_json(&b), GH_OK);
    arr = json_tokener_parse(gh_buf_cstr(&b));
    assert_non_null(arr);
    assert_int_equal(json_object_array_length(arr), 3);
    c = json_object_array_get_idx(arr, 0);
    assert_string_equal(json_object_get_string(json_object_object_get(c, "name")), "ping");
    assert_int_equal(json_object_get_int(json_object_object_get(c, "type")), 1);
    assert_string_equal(
        json_object_to_json_string_ext(json_object_object_get(c, "contexts"), JSON_C_TO_STRING_PLAIN),
        "[0,1,2]");
    assert_null(json_object_object_get(c, "default_member_permissions"));
    assert_false(json_object_object_get_ex(c, "options", NULL));
    c = json_object_array_get_idx(arr, 1);
    assert_string_equal(json_object_get_string(json_object_object_get(c, "default_member_permissions")), "8");
    assert_int_equal(json_object_get_int(json_object_object_get(c, "type")), 2);
    c = json_object_array_get_idx(arr, 2);
    assert_string_equal(
        json_object_to_json_string_ext(json_object_object_get(c, "contexts"), JSON_C_TO_STRING_PLAIN), "[2]");
    assert_int_equal(json_object_array_length(json_object_object_get(c, "options")), 1);
    assert_string_equal(json_object_to_json_string_ext(json_object_object_get(c, "integration_types"),
                                                       JSON_C_TO_STRING_PLAIN),
                        "[0]");
    json_object_put(arr);
    gh_buf_cleanup(&b);
}

/* Options that are not a JSON array stop the export: nothing half-written. */
static void test_bad_options_refused(void **state)
{
    static const char *const bad[] = {"{\"type\":3}", "not json"};
    char saved[sizeof beta_options];
    struct gh_buf b;

    (void)state;
    memcpy(saved, beta_options, sizeof saved);
    gh_buf_init(&b, 65536);
    for (size_t i = 0; i < GH_COUNT(bad); i++) {
        snprintf(beta_options, sizeof beta_options, "%s", bad[i]);
        assert_int_equal(gh_registry_commands_json(&b), GH_EJSON);
        assert_int_equal(b.len, 0);
    }
    memcpy(beta_options, saved, sizeof saved);
    /* A buffer too small for the export. */
    gh_buf_cleanup(&b);
    gh_buf_init(&b, 16);
    assert_int_equal(gh_registry_commands_json(&b), GH_ETOOBIG);
    gh_buf_cleanup(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_component_longest_prefix),
        cmocka_unit_test(test_command_types_and_jobs),
        cmocka_unit_test(test_commands_json_shape),
        cmocka_unit_test(test_bad_options_refused),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
