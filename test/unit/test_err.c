/* test_err.c - every error code has a message and a name. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/err.h"

static const int all_codes[] = {
#define CODE(name, value, msg) name,
    GH_ERRORS(CODE)
#undef CODE
};

static const char *const all_names[] = {
#define NAME(name, value, msg) #name,
    GH_ERRORS(NAME)
#undef NAME
};

static void every_code_has_a_message(void **state)
{
    size_t i;

    (void)state;
    for (i = 0; i < sizeof all_codes / sizeof all_codes[0]; i++) {
        const char *m = gh_strerror(all_codes[i]);

        assert_non_null(m);
        assert_true(strlen(m) > 0);
        assert_string_not_equal(m, "unknown error");
        assert_string_equal(gh_errname(all_codes[i]), all_names[i]);
    }
}

static void codes_are_zero_or_negative_and_distinct(void **state)
{
    size_t i, j, n = sizeof all_codes / sizeof all_codes[0];

    (void)state;
    assert_int_equal(GH_OK, 0);
    for (i = 0; i < n; i++) {
        assert_true(all_codes[i] <= 0);
        for (j = i + 1; j < n; j++)
            assert_int_not_equal(all_codes[i], all_codes[j]);
    }
}

static void specific_messages(void **state)
{
    (void)state;
    assert_string_equal(gh_strerror(GH_OK), "ok");
    assert_string_equal(gh_strerror(GH_EPG), "PostgreSQL error");
    assert_string_equal(gh_errname(GH_ECONFIG), "GH_ECONFIG");
}

static void unknown_values(void **state)
{
    (void)state;
    assert_string_equal(gh_strerror(1), "unknown error");
    assert_string_equal(gh_strerror(-9999), "unknown error");
    assert_non_null(gh_errname(12345));
    assert_string_equal(gh_errname(12345), "GH_EUNKNOWN");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_code_has_a_message),
        cmocka_unit_test(codes_are_zero_or_negative_and_distinct),
        cmocka_unit_test(specific_messages),
        cmocka_unit_test(unknown_values),
    };

    return cmocka_run_group_tests_name("err", tests, NULL, NULL);
}
