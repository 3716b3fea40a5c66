/* test_levels_curve.c - the pure parts of features/levels: the level curve
 * at its edges, the settings parse (defaults, every member, malformed
 * members keep defaults), exclusions, multipliers (best role, free cap) and
 * the level-up text (placeholders, escaping); schema.json is identical to
 * the schema the feature serves and is a valid schema. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "core/err.h"
#include "features/levels/levels.h"
#include "web/jschema.h"

static void test_curve_steps(void **state)
{
    (void)state;
    assert_int_equal(gh_lv_xp_to_next(0), 100);
    assert_int_equal(gh_lv_xp_to_next(1), 155);
    assert_int_equal(gh_lv_xp_to_next(2), 220);
    assert_int_equal(gh_lv_xp_to_next(-3), 100);
    assert_int_equal(gh_lv_xp_for_level(0), 0);
    assert_int_equal(gh_lv_xp_for_level(-1), 0);
    assert_int_equal(gh_lv_xp_for_level(1), 100);
    assert_int_equal(gh_lv_xp_for_level(2), 255);
    assert_int_equal(gh_lv_xp_for_level(3), 475);
    assert_int_equal(gh_lv_xp_for_level(5), 1150);
    assert_int_equal(gh_lv_xp_for_level(10), 4675);
    assert_int_equal(gh_lv_xp_for_level(100), 1899250);
    /* closed form == running sum */
    int64_t sum = 0;
    for (int l = 0; l <= GH_LV_MAX_LEVEL; l++) {
        assert_int_equal(gh_lv_xp_for_level(l), sum);
        sum += gh_lv_xp_to_next(l);
    }
    assert_int_equal(gh_lv_xp_for_level(GH_LV_MAX_LEVEL + 50), gh_lv_xp_for_level(GH_LV_MAX_LEVEL));
}

static void test_level_for_xp_edges(void **state)
{
    (void)state;
    assert_int_equal(gh_lv_level_for_xp(-5), 0);
    assert_int_equal(gh_lv_level_for_xp(0), 0);
    assert_int_equal(gh_lv_level_for_xp(99), 0);
    assert_int_equal(gh_lv_level_for_xp(100), 1);
    assert_int_equal(gh_lv_level_for_xp(254), 1);
    assert_int_equal(gh_lv_level_for_xp(255), 2);
    for (int l = 1; l <= GH_LV_MAX_LEVEL; l++) {
        assert_int_equal(gh_lv_level_for_xp(gh_lv_xp_for_level(l)), l);
        assert_int_equal(gh_lv_level_for_xp(gh_lv_xp_for_level(l) - 1), l - 1);
    }
    assert_int_equal(gh_lv_level_for_xp(INT64_MAX / 4), GH_LV_MAX_LEVEL);
}

static void test_settings_defaults(void **state)
{
    struct gh_lv_settings s;

    (void)state;
    gh_lv_settings_parse(NULL, &s);
    assert_int_equal(s.enabled, 0);
    assert_true(s.multiplier == 1.0);
    assert_int_equal(s.cooldown_s, 60);
    assert_int_equal(s.notify, GH_LV_NOTIFY_CURRENT);
    assert_int_equal(s.reward_stack, 1);
    assert_int_equal(s.voice_enabled, 1);
    assert_int_equal(s.voice_xp_per_min, 10);
    assert_string_equal(s.template_, "GG {user}, you reached level {level}!");
}

static void test_settings_parse(void **state)
{
    struct gh_lv_settings s;
    json_object *doc = json_tokener_parse(
        "{\"enabled\":true,\"multiplier\":3,\"cooldown_seconds\":30,\"notify_mode\":\"channel\","
        "\"notify_channel_id\":\"222222222222222222\",\"notify_template\":\"{user} is {level}\","
        "\"role_multipliers\":[{\"role_id\":\"300000000000000001\",\"multiplier\":1.5},"
        "{\"role_id\":\"300000000000000002\",\"multiplier\":4}],"
        "\"channel_multipliers\":[{\"channel_id\":\"400000000000000001\",\"multiplier\":0.5}],"
        "\"ignored_channels\":[\"400000000000000009\"],\"blacklisted_roles\":[\"300000000000000009\"],"
        "\"blacklisted_users\":[\"500000000000000009\"],\"reward_mode\":\"replace\","
        "\"role_rewards\":[{\"level\":10,\"role_id\":\"600000000000000010\"},"
        "{\"level\":5,\"role_id\":\"600000000000000005\"},{\"level\":0,\"role_id\":\"600000000000000000\"}],"
        "\"voice_enabled\":false,\"voice_xp_per_minute\":7,\"staff_roles\":[\"700000000000000001\"]}");
    json_object *bad =
        json_tokener_parse("{\"multiplier\":99,\"cooldown_seconds\":\"x\",\"notify_mode\":7,"
                           "\"role_rewards\":[{\"level\":3}],\"ignored_channels\":[1,\"abc\"]}");

    (void)state;
    gh_lv_settings_parse(doc, &s);
    assert_int_equal(s.enabled, 1);
    assert_true(s.multiplier == 3.0);
    assert_int_equal(s.cooldown_s, 30);
    assert_int_equal(s.notify, GH_LV_NOTIFY_CHANNEL);
    assert_true(s.notify_channel_id == 222222222222222222ULL);
    assert_string_equal(s.template_, "{user} is {level}");
    assert_int_equal(s.n_role_mult, 2);
    assert_int_equal(s.n_channel_mult, 1);
    assert_int_equal(s.n_rewards, 2);        /* level 0 dropped */
    assert_int_equal(s.rewards[0].level, 5); /* sorted */
    assert_int_equal(s.rewards[1].level, 10);
    assert_int_equal(s.reward_stack, 0);
    assert_int_equal(s.voice_enabled, 0);
    assert_int_equal(s.voice_xp_per_min, 7);
    assert_int_equal(s.n_staff_roles, 1);

    /* exclusions */
    json_object *roles_bl = json_tokener_parse("[\"300000000000000009\"]");
    json_object *roles_ok = json_tokener_parse("[\"300000000000000001\",\"300000000000000002\"]");
    assert_int_equal(gh_lv_excluded(&s, 500000000000000009ULL, 1, NULL), 1);
    assert_int_equal(gh_lv_excluded(&s, 1, 400000000000000009ULL, NULL), 1);
    assert_int_equal(gh_lv_excluded(&s, 1, 2, roles_bl), 1);
    assert_int_equal(gh_lv_excluded(&s, 1, 2, roles_ok), 0);

    /* multipliers: guild 3 x best role 4 x channel 0.5; free: 2 x 2 x 0.5 */
    assert_true(gh_lv_factor(&s, 400000000000000001ULL, roles_ok, 0) == 6.0);
    assert_true(gh_lv_factor(&s, 400000000000000001ULL, roles_ok, 1) == 2.0);
    assert_true(gh_lv_factor(&s, 9, NULL, 0) == 3.0);
    assert_true(gh_lv_factor(&s, 9, NULL, 1) == 2.0);
    json_object_put(roles_bl);
    json_object_put(roles_ok);

    gh_lv_settings_parse(bad, &s);
    assert_true(s.multiplier == 1.0);
    assert_int_equal(s.cooldown_s, 60);
    assert_int_equal(s.notify, GH_LV_NOTIFY_CURRENT);
    assert_int_equal(s.n_rewards, 0);
    assert_int_equal(s.n_ignored_channels, 0);
    json_object_put(doc);
    json_object_put(bad);
}

static void test_notify_text(void **state)
{
    struct gh_lv_settings s;
    char out[600];
    json_object *doc =
        json_tokener_parse("{\"notify_template\":\"{user} ({username}) hit {level} with {xp} XP {x}\"}");

    (void)state;
    gh_lv_settings_parse(doc, &s);
    assert_int_equal(gh_lv_notify_text(&s, 42, "**evil** @everyone", 7, 1234, out, sizeof(out)), GH_OK);
    assert_non_null(strstr(out, "<@42> ("));
    assert_non_null(strstr(out, ") hit 7 with 1234 XP {x}"));
    assert_null(strstr(out, "**evil**"));  /* markdown escaped */
    assert_null(strstr(out, "@everyone")); /* mention neutralised */
    assert_int_equal(gh_lv_notify_text(&s, 42, "x", 7, 1234, out, 10), GH_ETOOBIG);
    assert_true(strlen(out) < 10);
    json_object_put(doc);
}

static void test_schema_file_matches(void **state)
{
    FILE *f = fopen("features/levels/schema.json", "rb");
    char *buf;
    long n;
    json_object *schema;
    char err[256] = "";

    (void)state;
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = calloc(1, (size_t)n + 1);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    assert_string_equal(buf, gh_lv_schema_text());
    assert_ptr_equal(gh_feature_levels.settings_schema, gh_lv_schema_text());
    schema = json_tokener_parse(buf);
    assert_non_null(schema);
    assert_int_equal(gh_jschema_check_schema(schema, err, sizeof(err)), GH_OK);
    json_object_put(schema);
    free(buf);
}

static void test_feature_struct(void **state)
{
    (void)state;
    assert_int_equal(gh_feature_levels.n_jobs, GH_LV_N_JOBS);
    assert_int_equal(gh_feature_levels.n_routes, GH_LV_N_ROUTES);
    assert_true(gh_feature_levels.intents & (1ull << 9));   /* GUILD_MESSAGES */
    assert_true(gh_feature_levels.intents & (1ull << 7));   /* GUILD_VOICE_STATES */
    assert_false(gh_feature_levels.intents & (1ull << 15)); /* no MESSAGE_CONTENT */
    assert_int_equal(gh_feature_levels.n_events, 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_curve_steps),       cmocka_unit_test(test_level_for_xp_edges),
        cmocka_unit_test(test_settings_defaults), cmocka_unit_test(test_settings_parse),
        cmocka_unit_test(test_notify_text),       cmocka_unit_test(test_schema_file_matches),
        cmocka_unit_test(test_feature_struct),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
