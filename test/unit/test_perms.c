/* test_perms.c - permission strings, checks and names. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "core/err.h"
#include "discord/perms.h"

static void test_parse_valid(void **state)
{
    (void)state;
    uint64_t v = 1;

    assert_int_equal(gh_perms_parse("0", &v), GH_OK);
    assert_true(v == 0);
    assert_int_equal(gh_perms_parse("8", &v), GH_OK);
    assert_true(v == GH_PERM(ADMINISTRATOR));
    assert_int_equal(gh_perms_parse("1099511627776", &v), GH_OK);
    assert_true(v == GH_PERM(MODERATE_MEMBERS));
    /* the fixture's member permissions: every bit up to 50 */
    assert_int_equal(gh_perms_parse("1125899906842623", &v), GH_OK);
    assert_true(v == (UINT64_C(1) << 50) - 1);
    assert_int_equal(gh_perms_parse("18446744073709551615", &v), GH_OK);
    assert_true(v == UINT64_MAX);
}

static void test_parse_invalid(void **state)
{
    (void)state;
    uint64_t v = 42;

    assert_int_equal(gh_perms_parse(NULL, &v), GH_EINVAL);
    assert_int_equal(gh_perms_parse("", &v), GH_EINVAL);
    assert_int_equal(gh_perms_parse("-1", &v), GH_EINVAL);
    assert_int_equal(gh_perms_parse("+8", &v), GH_EINVAL);
    assert_int_equal(gh_perms_parse(" 8", &v), GH_EINVAL);
    assert_int_equal(gh_perms_parse("8 ", &v), GH_EINVAL);
    assert_int_equal(gh_perms_parse("0x10", &v), GH_EINVAL);
    assert_int_equal(gh_perms_parse("1.5", &v), GH_EINVAL);
    assert_int_equal(gh_perms_parse("18446744073709551616", &v), GH_EINVAL); /* 2^64 */
    assert_int_equal(gh_perms_parse("99999999999999999999", &v), GH_EINVAL);
    assert_true(v == 42); /* untouched on failure */
}

static void test_has(void **state)
{
    (void)state;
    uint64_t mod = GH_PERM(BAN_MEMBERS) | GH_PERM(KICK_MEMBERS);

    assert_true(gh_perms_has(mod, GH_PERM(BAN_MEMBERS)));
    assert_true(gh_perms_has(mod, GH_PERM(BAN_MEMBERS) | GH_PERM(KICK_MEMBERS)));
    assert_false(gh_perms_has(mod, GH_PERM(BAN_MEMBERS) | GH_PERM(MANAGE_ROLES)));
    assert_false(gh_perms_has(0, GH_PERM(SEND_MESSAGES)));
    assert_true(gh_perms_has(0, 0));
    /* ADMINISTRATOR implies everything, even bits we do not name */
    assert_true(gh_perms_has(GH_PERM(ADMINISTRATOR), GH_PERM(MODERATE_MEMBERS) | (UINT64_C(1) << 62)));
}

static void test_names(void **state)
{
    (void)state;
    assert_string_equal(gh_perm_name(GH_PERM_BAN_MEMBERS), "Ban Members");
    assert_string_equal(gh_perm_name(GH_PERM_MODERATE_MEMBERS), "Moderate Members");
    assert_string_equal(gh_perm_name(GH_PERM_ADMINISTRATOR), "Administrator");
    assert_string_equal(gh_perm_name(GH_PERM_MANAGE_GUILD_EXPRESSIONS), "Manage Guild Expressions");
    assert_string_equal(gh_perm_name(GH_PERM_BYPASS_SLOWMODE), "Bypass Slowmode");
    assert_null(gh_perm_name(8)); /* undefined bit */
    assert_null(gh_perm_name(-1));
    assert_null(gh_perm_name(64));
}

static void test_missing(void **state)
{
    (void)state;
    char out[128];
    char small[20];

    gh_perms_missing(GH_PERM(KICK_MEMBERS),
                     GH_PERM(BAN_MEMBERS) | GH_PERM(MANAGE_ROLES) | GH_PERM(KICK_MEMBERS), out, sizeof(out));
    assert_string_equal(out, "Ban Members, Manage Roles");
    gh_perms_missing(GH_PERM(ADMINISTRATOR), GH_PERM(BAN_MEMBERS), out, sizeof(out));
    assert_string_equal(out, "");
    gh_perms_missing(GH_PERM(BAN_MEMBERS), GH_PERM(BAN_MEMBERS), out, sizeof(out));
    assert_string_equal(out, "");
    gh_perms_missing(0, UINT64_C(1) << 8, out, sizeof(out));
    assert_string_equal(out, "bit 8");
    /* truncation keeps whole names */
    gh_perms_missing(0, GH_PERM(BAN_MEMBERS) | GH_PERM(MANAGE_ROLES), small, sizeof(small));
    assert_string_equal(small, "Ban Members");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_valid), cmocka_unit_test(test_parse_invalid), cmocka_unit_test(test_has),
        cmocka_unit_test(test_names),       cmocka_unit_test(test_missing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
