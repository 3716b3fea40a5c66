/* test_interaction.c - parsing interactions: the fixtures in
 * test/fixtures/interactions/ and crafted bad bodies. Run from the repository
 * root (scripts/test.sh does). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/err.h"
#include "discord/interaction.h"
#include "discord/perms.h"

#define FIXTURES "test/fixtures/interactions/"

static char *read_fixture(const char *name, size_t *len)
{
    char path[256];
    FILE *f;
    char *buf;
    long n;

    snprintf(path, sizeof(path), FIXTURES "%s", name);
    f = fopen(path, "rb");
    if (f == NULL)
        fail_msg("cannot open %s (run from the repository root)", path);
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static int parse(const char *body, struct gh_interaction *ix, char *err, size_t errlen)
{
    return gh_interaction_parse(body, strlen(body), ix, err, errlen);
}

static void test_fixture_ping(void **state)
{
    (void)state;
    struct gh_interaction ix;
    char err[128];
    size_t len;
    char *body = read_fixture("ping.json", &len);

    assert_int_equal(gh_interaction_parse(body, len, &ix, err, sizeof(err)), GH_OK);
    assert_int_equal(ix.type, GH_IX_PING);
    assert_true(ix.id == UINT64_C(1300000000000000001));
    assert_true(ix.application_id == UINT64_C(1234567890123456789));
    assert_non_null(ix.token);
    assert_int_equal(strncmp(ix.token, "aW50ZXJhY3Rpb24", 15), 0);
    assert_true(ix.user_id == UINT64_C(643945264868098049));
    assert_false(ix.has_member);
    assert_true(ix.guild_id == 0);
    assert_null(ix.command_name);
    assert_null(ix.data);
    assert_int_equal(ix.context, -1);
    gh_interaction_cleanup(&ix);
    assert_null(ix.root);
    free(body);
}

static void test_fixture_command(void **state)
{
    (void)state;
    struct gh_interaction ix;
    char err[128];
    size_t len;
    char *body = read_fixture("command.json", &len);

    assert_int_equal(gh_interaction_parse(body, len, &ix, err, sizeof(err)), GH_OK);
    free(body); /* the struct must not point into the body */
    assert_int_equal(ix.type, GH_IX_APPLICATION_COMMAND);
    assert_true(ix.id == UINT64_C(1300000000000000002));
    assert_true(ix.guild_id == UINT64_C(1098765432109876543));
    assert_true(ix.channel_id == UINT64_C(1112223334445556667));
    assert_true(ix.user_id == UINT64_C(123456789012345678));
    assert_string_equal(ix.username, "alice");
    assert_string_equal(ix.global_name, "Alice");
    assert_true(ix.has_member);
    assert_true(ix.member_permissions == UINT64_C(1125899906842623));
    assert_true(ix.app_permissions == UINT64_C(562949953601536));
    assert_true(gh_perms_has(ix.member_permissions, GH_PERM(BAN_MEMBERS)));
    assert_non_null(ix.member_roles);
    assert_int_equal(json_object_array_length(ix.member_roles), 2);
    assert_string_equal(ix.locale, "en-GB");
    assert_int_equal(ix.context, 0);
    assert_string_equal(ix.command_name, "rank");
    assert_int_equal(ix.command_type, 1);
    assert_string_equal(gh_interaction_option_str(&ix, "user"), "987654321098765432");
    assert_null(gh_interaction_option(&ix, "missing"));
    assert_null(gh_interaction_subcommand(&ix));
    gh_interaction_cleanup(&ix);
}

static void test_fixture_command_1k(void **state)
{
    (void)state;
    struct gh_interaction ix;
    char err[128];
    size_t len;
    char *body = read_fixture("command_1k.json", &len);

    assert_int_equal(gh_interaction_parse(body, len, &ix, err, sizeof(err)), GH_OK);
    assert_int_equal(ix.type, GH_IX_APPLICATION_COMMAND);
    assert_string_equal(ix.command_name, "rank");
    assert_null(ix.options);
    assert_true(ix.user_id != 0);
    gh_interaction_cleanup(&ix);
    free(body);
}

#define BASE "\"id\":\"11\",\"application_id\":\"22\",\"token\":\"tok\",\"version\":1"
#define USER ",\"user\":{\"id\":\"33\",\"username\":\"u\"}"

static void expect_err(const char *body, int want, const char *err_part)
{
    struct gh_interaction ix;
    char err[160] = "";

    int rc = parse(body, &ix, err, sizeof(err));
    if (rc != want)
        fail_msg("body %.80s: got %d (%s), want %d", body, rc, err, want);
    if (err_part != NULL && strstr(err, err_part) == NULL)
        fail_msg("body %.80s: error '%s' lacks '%s'", body, err, err_part);
    assert_null(ix.root); /* nothing half-built is left behind */
    gh_interaction_cleanup(&ix);
}

static void test_bad_json(void **state)
{
    (void)state;
    expect_err("", GH_EJSON, "empty");
    expect_err("not json", GH_EJSON, NULL);
    expect_err("{\"type\":1", GH_EJSON, "end of input");
    expect_err("[1,2,3]", GH_EJSON, "object");
    expect_err("\"str\"", GH_EJSON, "object");
    expect_err("42", GH_EJSON, NULL);
    expect_err("{\"type\":1," BASE "} trailing", GH_EJSON, "unexpected character");
    expect_err("{\"type\":1," BASE "}{}", GH_EJSON, NULL);
    expect_err("{'type':1}", GH_EJSON, NULL);    /* strict: no single quotes */
    expect_err("{\"type\":1,}", GH_EJSON, NULL); /* strict: no trailing comma */
    expect_err("{\"type\":1," BASE ",\"x\":NaN}", GH_EJSON, NULL);
    expect_err("{\"type\":1," BASE ",\"x\":Infinity}", GH_EJSON, NULL);
    expect_err("{\"type\":1," BASE ",\"x\":\"a\tb\"}", GH_EJSON, NULL); /* raw control character */
    expect_err("{\"a\":\"\xff\xfe\"}", GH_EJSON, NULL);                 /* invalid UTF-8 */
    /* a NUL inside the declared length */
    struct gh_interaction ix;
    char err[128];
    const char nul_body[] = "{\"type\":1,\0\"id\":\"1\"}";
    assert_int_equal(gh_interaction_parse(nul_body, sizeof(nul_body) - 1, &ix, err, sizeof(err)), GH_EJSON);
    /* whitespace after the object is fine */
    assert_int_equal(parse("{\"type\":1," BASE "}\r\n", &ix, err, sizeof(err)), GH_OK);
    gh_interaction_cleanup(&ix);
    /* a NULL body */
    assert_int_equal(gh_interaction_parse(NULL, 0, &ix, err, sizeof(err)), GH_EJSON);
}

static void test_depth_limit(void **state)
{
    (void)state;
    char body[400];
    size_t o = 0;

    o += (size_t)snprintf(body + o, sizeof(body) - o, "{\"type\":1," BASE ",\"x\":");
    for (int i = 0; i < 40; i++)
        body[o++] = '[';
    for (int i = 0; i < 40; i++)
        body[o++] = ']';
    body[o++] = '}';
    body[o] = '\0';
    expect_err(body, GH_EJSON, NULL);
}

static void test_required_fields(void **state)
{
    (void)state;
    expect_err("{\"id\":\"11\",\"application_id\":\"22\",\"type\":1}", GH_EINVAL, "missing field token");
    expect_err("{\"id\":\"11\",\"application_id\":\"22\",\"type\":1,\"token\":\"\"}", GH_EINVAL, "token");
    expect_err("{\"id\":\"11\",\"application_id\":\"22\",\"type\":1,\"token\":5}", GH_EINVAL, "token");
    expect_err("{" BASE "}", GH_EINVAL, "missing field type");
    expect_err("{\"type\":\"2\"," BASE USER ",\"data\":{\"name\":\"x\"}}", GH_EINVAL,
               "type must be an integer");
    expect_err("{\"type\":2.0," BASE USER ",\"data\":{\"name\":\"x\"}}", GH_EINVAL,
               "type must be an integer");
    expect_err("{\"type\":99," BASE "}", GH_EINVAL, "unknown interaction type 99");
    expect_err("{\"type\":0," BASE "}", GH_EINVAL, "unknown interaction type 0");
    expect_err("{\"type\":-3," BASE "}", GH_EINVAL, "unknown interaction type -3");
    expect_err("{\"type\":1,\"application_id\":\"22\",\"token\":\"t\"}", GH_EINVAL, "missing field id");
    expect_err("{\"type\":1,\"id\":11,\"application_id\":\"22\",\"token\":\"t\"}", GH_EINVAL,
               "id must be a snowflake");
    expect_err("{\"type\":1,\"id\":\"abc\",\"application_id\":\"22\",\"token\":\"t\"}", GH_EINVAL,
               "snowflake");
    expect_err("{\"type\":1,\"id\":\"11\",\"token\":\"t\"}", GH_EINVAL, "application_id");
    expect_err("{\"type\":1," BASE ",\"version\":\"1\"}", GH_EINVAL, "version");
    expect_err("{\"type\":1," BASE ",\"guild_id\":\"x1\"}", GH_EINVAL, "guild_id");
    /* commands need a user, data and data.name */
    expect_err("{\"type\":2," BASE ",\"data\":{\"name\":\"x\"}}", GH_EINVAL, "user");
    expect_err("{\"type\":2," BASE USER "}", GH_EINVAL, "missing field data");
    expect_err("{\"type\":2," BASE USER ",\"data\":[]}", GH_EINVAL, "data must be an object");
    expect_err("{\"type\":2," BASE USER ",\"data\":{}}", GH_EINVAL, "data.name");
    expect_err("{\"type\":4," BASE USER ",\"data\":{\"name\":5}}", GH_EINVAL, "data.name");
    expect_err("{\"type\":2," BASE USER ",\"data\":{\"name\":\"x\",\"options\":{}}}", GH_EINVAL, "options");
    /* components and modals need data.custom_id */
    expect_err("{\"type\":3," BASE USER ",\"data\":{\"component_type\":2}}", GH_EINVAL, "custom_id");
    expect_err("{\"type\":5," BASE USER ",\"data\":{\"custom_id\":\"\"}}", GH_EINVAL, "custom_id");
    /* member shape */
    expect_err("{\"type\":2," BASE
               ",\"member\":{\"user\":{\"id\":\"1\"},\"permissions\":\"-1\"},\"data\":{\"name\":\"x\"}}",
               GH_EINVAL, "member.permissions");
    expect_err("{\"type\":2," BASE ",\"member\":{\"user\":{\"id\":\"zz\"}},\"data\":{\"name\":\"x\"}}",
               GH_EINVAL, "member.user.id");
    expect_err("{\"type\":1," BASE ",\"app_permissions\":8}", GH_EINVAL, "app_permissions");
}

static void test_component_and_modal(void **state)
{
    (void)state;
    struct gh_interaction ix;
    char err[128];

    assert_int_equal(parse("{\"type\":3," BASE USER
                           ",\"guild_id\":\"5\",\"data\":{\"custom_id\":\"giveaway:join:7\","
                           "\"component_type\":2}}",
                           &ix, err, sizeof(err)),
                     GH_OK);
    assert_int_equal(ix.type, GH_IX_MESSAGE_COMPONENT);
    assert_string_equal(ix.custom_id, "giveaway:join:7");
    assert_int_equal(ix.component_type, 2);
    assert_true(ix.user_id == 33);
    assert_true(ix.guild_id == 5);
    gh_interaction_cleanup(&ix);

    assert_int_equal(parse("{\"type\":5," BASE USER ",\"data\":{\"custom_id\":\"report\",\"components\":[]}}",
                           &ix, err, sizeof(err)),
                     GH_OK);
    assert_int_equal(ix.type, GH_IX_MODAL_SUBMIT);
    assert_string_equal(ix.custom_id, "report");
    gh_interaction_cleanup(&ix);
}

static void test_user_command_target(void **state)
{
    (void)state;
    struct gh_interaction ix;
    char err[128];

    assert_int_equal(parse("{\"type\":2," BASE USER
                           ",\"data\":{\"name\":\"Warn\",\"type\":2,\"target_id\":\"77\"}}",
                           &ix, err, sizeof(err)),
                     GH_OK);
    assert_int_equal(ix.command_type, 2);
    assert_true(ix.target_id == 77);
    assert_false(ix.has_member);
    gh_interaction_cleanup(&ix);
}

static void test_options_subcommands(void **state)
{
    (void)state;
    struct gh_interaction ix;
    char err[128];
    int64_t n = 0;
    int b = -1;
    const char *body =
        "{\"type\":2," BASE USER ",\"data\":{\"name\":\"config\",\"options\":[{\"name\":\"xp\",\"type\":2,"
        "\"options\":[{\"name\":\"set\",\"type\":1,\"options\":["
        "{\"name\":\"amount\",\"type\":4,\"value\":250},"
        "{\"name\":\"enabled\",\"type\":5,\"value\":true},"
        "{\"name\":\"label\",\"type\":3,\"value\":\"h\\u00e9llo \\ud83d\\ude00 \\u4e16\\u754c\"}]}]}]}}";

    assert_int_equal(parse(body, &ix, err, sizeof(err)), GH_OK);
    assert_string_equal(gh_interaction_subcommand(&ix), "set");
    assert_int_equal(gh_interaction_option_int(&ix, "amount", &n), GH_OK);
    assert_int_equal(n, 250);
    assert_int_equal(gh_interaction_option_bool(&ix, "enabled", &b), GH_OK);
    assert_int_equal(b, 1);
    /* unicode values come back as UTF-8 */
    assert_string_equal(gh_interaction_option_str(&ix, "label"),
                        "h\xc3\xa9llo \xf0\x9f\x98\x80 \xe4\xb8\x96\xe7\x95\x8c");
    /* wrong types and absent options */
    assert_int_equal(gh_interaction_option_int(&ix, "label", &n), GH_EINVAL);
    assert_int_equal(gh_interaction_option_bool(&ix, "amount", &b), GH_EINVAL);
    assert_int_equal(gh_interaction_option_int(&ix, "nope", &n), GH_ENOTFOUND);
    assert_null(gh_interaction_option_str(&ix, "amount"));
    /* subcommand names are not value options */
    assert_null(gh_interaction_option(&ix, "set"));
    gh_interaction_cleanup(&ix);

    /* autocomplete: a focused integer option arrives as the typed string */
    assert_int_equal(parse("{\"type\":4," BASE USER
                           ",\"data\":{\"name\":\"ban\",\"options\":[{\"name\":\"days\","
                           "\"type\":4,\"value\":\"-7\",\"focused\":true}]}}",
                           &ix, err, sizeof(err)),
                     GH_OK);
    assert_int_equal(ix.type, GH_IX_AUTOCOMPLETE);
    assert_int_equal(gh_interaction_option_int(&ix, "days", &n), GH_OK);
    assert_int_equal(n, -7);
    assert_null(gh_interaction_subcommand(&ix));
    gh_interaction_cleanup(&ix);
}

static void test_long_option(void **state)
{
    (void)state;
    struct gh_interaction ix;
    char err[128];
    size_t n = 10000;
    size_t cap = n + 512;
    char *body = malloc(cap);
    int o;

    assert_non_null(body);
    o = snprintf(body, cap,
                 "{\"type\":2," BASE USER ",\"data\":{\"name\":\"say\",\"options\":[{\"name\":\"text\","
                 "\"type\":3,\"value\":\"");
    memset(body + o, 'a', n);
    snprintf(body + o + n, cap - (size_t)o - n, "\"}]}}");
    assert_int_equal(parse(body, &ix, err, sizeof(err)), GH_OK);
    assert_int_equal(strlen(gh_interaction_option_str(&ix, "text")), n);
    gh_interaction_cleanup(&ix);
    free(body);
}

static void test_snowflake_parse(void **state)
{
    (void)state;
    assert_true(gh_snowflake_parse("123") == 123);
    assert_true(gh_snowflake_parse("18446744073709551615") == UINT64_MAX);
    assert_true(gh_snowflake_parse("18446744073709551616") == 0);
    assert_true(gh_snowflake_parse("") == 0);
    assert_true(gh_snowflake_parse(NULL) == 0);
    assert_true(gh_snowflake_parse("12a") == 0);
    assert_true(gh_snowflake_parse("-1") == 0);
    assert_true(gh_snowflake_parse(" 1") == 0);
}

static void test_more_shape_errors(void **state)
{
    (void)state;
    expect_err("[1,2]", GH_EJSON, "interaction must be a JSON object");
    expect_err("{\"type\":1," BASE "} {}", GH_EJSON, "malformed JSON"); /* a second value */
    {
        struct gh_interaction ix;
        char e[160];

        /* Trailing whitespace is fine. */
        assert_int_equal(parse("{\"type\":1," BASE "} \r\n\t", &ix, e, sizeof(e)), GH_OK);
        gh_interaction_cleanup(&ix);
    }
    expect_err("{\"type\":1," BASE ",\"channel_id\":\"c\"}", GH_EINVAL, "channel_id");
    expect_err("{\"type\":1," BASE ",\"context\":\"0\"}", GH_EINVAL, "context must be an integer");
    expect_err("{\"type\":1," BASE ",\"context\":-2}", GH_EINVAL, "context is out of range");
    expect_err("{\"type\":2," BASE ",\"member\":[],\"data\":{\"name\":\"x\"}}", GH_EINVAL,
               "member must be an object");
    expect_err("{\"type\":2," BASE
               ",\"member\":{\"user\":{\"id\":\"1\"},\"roles\":{}},\"data\":{\"name\":\"x\"}}",
               GH_EINVAL, "member.roles must be an array");
    expect_err("{\"type\":2," BASE ",\"user\":5,\"data\":{\"name\":\"x\"}}", GH_EINVAL,
               "field user must be an object");
    expect_err("{\"type\":2," BASE ",\"member\":{\"user\":\"me\"},\"data\":{\"name\":\"x\"}}", GH_EINVAL,
               "field member.user must be an object");
    expect_err("{\"type\":2," BASE USER ",\"data\":{\"name\":\"x\",\"type\":\"1\"}}", GH_EINVAL,
               "data.type must be an integer");
    expect_err("{\"type\":2," BASE USER ",\"data\":{\"name\":\"x\",\"type\":2000000}}", GH_EINVAL,
               "data.type is out of range");
    expect_err("{\"type\":2," BASE USER ",\"data\":{\"name\":\"x\",\"target_id\":\"t\"}}", GH_EINVAL,
               "data.target_id");
    expect_err("{\"type\":3," BASE USER ",\"data\":{\"custom_id\":\"c\",\"component_type\":true}}", GH_EINVAL,
               "data.component_type");
    assert_int_equal(gh_interaction_parse("{}", 2, NULL, NULL, 0), GH_EINVAL);
    gh_interaction_cleanup(NULL);
}

/* Option lookups: nested subcommands, wrong value types, typed-in integers. */
static void test_option_lookups(void **state)
{
    struct gh_interaction ix;
    char err[160];
    int64_t n = 0;
    int b = -1;

    (void)state;
    assert_int_equal(
        parse(
            "{\"type\":4," BASE USER
            ",\"data\":{\"name\":\"x\",\"options\":[5,{\"name\":\"grp\",\"type\":2,\"options\":[{\"name\":"
            "\"sub\",\"type\":1,\"options\":[{\"name\":\"n\",\"type\":4,\"value\":\"-42\"},{\"name\":\"big\","
            "\"type\":4,\"value\":\"99999999999999999999\"},{\"name\":\"flag\",\"type\":5,\"value\":\"yes\"},"
            "{\"name\":\"ok\",\"type\":5,\"value\":false},{\"name\":\"f\",\"type\":10,\"value\":1.5},"
            "{\"name\":\"z\",\"type\":4,\"value\":\"0\"}]}]}]}}",
            &ix, err, sizeof(err)),
        GH_OK);
    /* The first option is not an object: the subcommand is not found through it. */
    assert_null(gh_interaction_subcommand(&ix));
    assert_int_equal(gh_interaction_option_int(&ix, "n", &n), GH_OK);
    assert_int_equal(n, -42);
    assert_int_equal(gh_interaction_option_int(&ix, "z", &n), GH_OK);
    assert_int_equal(n, 0);
    assert_int_equal(gh_interaction_option_int(&ix, "big", &n), GH_EINVAL);
    assert_int_equal(gh_interaction_option_int(&ix, "f", &n), GH_EINVAL);
    assert_int_equal(gh_interaction_option_int(&ix, "missing", &n), GH_ENOTFOUND);
    assert_int_equal(gh_interaction_option_int(&ix, "n", NULL), GH_ENOTFOUND);
    assert_int_equal(gh_interaction_option_bool(&ix, "flag", &b), GH_EINVAL);
    assert_int_equal(gh_interaction_option_bool(&ix, "ok", &b), GH_OK);
    assert_int_equal(b, 0);
    assert_int_equal(gh_interaction_option_bool(&ix, "missing", &b), GH_ENOTFOUND);
    assert_null(gh_interaction_option(&ix, NULL));
    assert_null(gh_interaction_option(NULL, "n"));
    assert_null(gh_interaction_option_str(&ix, "missing"));
    assert_null(gh_interaction_subcommand(NULL));
    gh_interaction_cleanup(&ix);

    /* A group whose first option is a plain value: no subcommand. */
    assert_int_equal(
        parse("{\"type\":2," BASE USER
              ",\"data\":{\"name\":\"x\",\"options\":[{\"name\":\"g\",\"type\":2,\"options\":[{\"name\":"
              "\"v\",\"type\":3,\"value\":\"s\"}]}]}}",
              &ix, err, sizeof(err)),
        GH_OK);
    assert_null(gh_interaction_subcommand(&ix));
    assert_string_equal(gh_interaction_option_str(&ix, "v"), "s");
    gh_interaction_cleanup(&ix);
    /* Empty options: no subcommand either. */
    assert_int_equal(
        parse("{\"type\":2," BASE USER ",\"data\":{\"name\":\"x\",\"options\":[]}}", &ix, err, sizeof(err)),
        GH_OK);
    assert_null(gh_interaction_subcommand(&ix));
    gh_interaction_cleanup(&ix);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixture_ping),        cmocka_unit_test(test_fixture_command),
        cmocka_unit_test(test_fixture_command_1k),  cmocka_unit_test(test_bad_json),
        cmocka_unit_test(test_depth_limit),         cmocka_unit_test(test_required_fields),
        cmocka_unit_test(test_component_and_modal), cmocka_unit_test(test_user_command_target),
        cmocka_unit_test(test_options_subcommands), cmocka_unit_test(test_long_option),
        cmocka_unit_test(test_snowflake_parse),     cmocka_unit_test(test_more_shape_errors),
        cmocka_unit_test(test_option_lookups),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
