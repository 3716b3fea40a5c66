/* test_str.c - views, number parsing, capped buffers, JSON escaping. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/err.h"
#include "core/str.h"

static void views(void **state)
{
    struct gh_str a = GH_STR("hello"), e = gh_str_from_cstr(NULL);

    (void)state;
    assert_int_equal(a.len, 5);
    assert_int_equal(e.len, 0);
    assert_non_null(e.p);
    assert_true(gh_str_eq(a, gh_str_from_cstr("hello")));
    assert_false(gh_str_eq(a, gh_str_from_cstr("hell")));
    assert_true(gh_str_eq_cstr(a, "hello"));
    assert_false(gh_str_eq_cstr(a, "hellO"));
    assert_true(gh_str_eq(e, GH_STR("")));
    assert_true(gh_str_starts_with(a, "he"));
    assert_true(gh_str_starts_with(a, ""));
    assert_false(gh_str_starts_with(a, "hello!"));
    assert_false(gh_str_starts_with(a, "x"));
}

static void numbers(void **state)
{
    uint64_t u = 7;
    int64_t i = 7;
    struct gh_str part = {"12345", 3};

    (void)state;
    assert_int_equal(gh_str_to_u64(part, &u), GH_OK);
    assert_int_equal(u, 123);
    assert_int_equal(gh_cstr_to_u64("18446744073709551615", &u), GH_OK);
    assert_true(u == UINT64_MAX);
    assert_int_equal(gh_cstr_to_u64("18446744073709551616", &u), GH_EINVAL);
    assert_int_equal(gh_cstr_to_u64("", &u), GH_EINVAL);
    assert_int_equal(gh_cstr_to_u64(NULL, &u), GH_EINVAL);
    assert_int_equal(gh_cstr_to_u64("12a", &u), GH_EINVAL);
    assert_int_equal(gh_cstr_to_u64(" 12", &u), GH_EINVAL);
    assert_int_equal(gh_cstr_to_u64("-1", &u), GH_EINVAL);
    assert_int_equal(gh_cstr_to_i64("-42", &i), GH_OK);
    assert_int_equal(i, -42);
    assert_int_equal(gh_cstr_to_i64("-9223372036854775808", &i), GH_OK);
    assert_true(i == INT64_MIN);
    assert_int_equal(gh_cstr_to_i64("9223372036854775807", &i), GH_OK);
    assert_true(i == INT64_MAX);
    assert_int_equal(gh_cstr_to_i64("9223372036854775808", &i), GH_EINVAL);
    assert_int_equal(gh_cstr_to_i64("-", &i), GH_EINVAL);
    assert_int_equal(gh_cstr_to_i64("1.5", &i), GH_EINVAL);
    assert_int_equal(gh_cstr_to_i64(NULL, &i), GH_EINVAL);
    assert_int_equal(gh_cstr_to_i64("-9223372036854775809", &i), GH_EINVAL);
    assert_true(i == INT64_MAX); /* untouched by the refused values since */
    assert_int_equal(gh_cstr_to_i64("-5", NULL), GH_OK);
    assert_int_equal(gh_cstr_to_i64("5", NULL), GH_OK);
    gh_buf_cleanup(NULL);
}

static void buf_grows_and_stays_terminated(void **state)
{
    struct gh_buf b;
    int k;

    (void)state;
    gh_buf_init(&b, 1 << 20);
    assert_string_equal(gh_buf_cstr(&b), "");
    for (k = 0; k < 1000; k++)
        assert_int_equal(gh_buf_puts(&b, "abc"), GH_OK);
    assert_int_equal(b.len, 3000);
    assert_int_equal(strlen(b.data), 3000);
    assert_true(b.cap <= b.max + 1);
    assert_int_equal(gh_buf_printf(&b, "%d-%s", 42, "x"), GH_OK);
    assert_string_equal(b.data + 3000, "42-x");
    gh_buf_reset(&b);
    assert_int_equal(b.len, 0);
    assert_string_equal(gh_buf_cstr(&b), "");
    gh_buf_cleanup(&b);
    assert_null(b.data);
    gh_buf_cleanup(&b); /* twice is fine */
}

static void buf_cap_is_hard(void **state)
{
    struct gh_buf b;
    char big[100];

    (void)state;
    memset(big, 'x', sizeof big);
    gh_buf_init(&b, 10);
    assert_int_equal(gh_buf_puts(&b, "12345"), GH_OK);
    assert_int_equal(gh_buf_puts(&b, "678901"), GH_ETOOBIG);
    assert_string_equal(b.data, "12345"); /* unchanged */
    assert_int_equal(b.len, 5);
    assert_int_equal(gh_buf_printf(&b, "%s", "abcdef"), GH_ETOOBIG);
    assert_string_equal(b.data, "12345");
    assert_int_equal(gh_buf_printf(&b, "%s", "abcde"), GH_OK);
    assert_string_equal(b.data, "12345abcde");
    assert_int_equal(b.len, 10);
    assert_true(b.cap <= 11);
    assert_int_equal(gh_buf_append(&b, "x", 1), GH_ETOOBIG);
    assert_int_equal(gh_buf_append(&b, "", 0), GH_OK);
    gh_buf_cleanup(&b);

    gh_buf_init(&b, 0);
    assert_int_equal(gh_buf_append(&b, big, 1), GH_ETOOBIG);
    assert_int_equal(gh_buf_append(&b, big, SIZE_MAX), GH_ETOOBIG);
    gh_buf_cleanup(&b);
}

static void buf_printf_reuses_space(void **state)
{
    struct gh_buf b;
    int k;

    (void)state;
    gh_buf_init(&b, 4096);
    for (k = 0; k < 100; k++)
        assert_int_equal(gh_buf_printf(&b, "%03d,", k), GH_OK);
    assert_int_equal(b.len, 400);
    assert_memory_equal(b.data, "000,001,002,", 12);
    assert_string_equal(b.data + 396, "099,");
    gh_buf_cleanup(&b);
}

static void json_escaping(void **state)
{
    struct gh_buf b;
    const char in[] = "a\"b\\c/d\n\x01\x1f\xc3\xa9\xe2\x82\xac";

    (void)state;
    gh_buf_init(&b, 1024);
    assert_int_equal(gh_buf_append_json_escaped(&b, in, sizeof in - 1), GH_OK);
    assert_string_equal(b.data, "a\\\"b\\\\c/d\\u000a\\u0001\\u001f\xc3\xa9\xe2\x82\xac");
    gh_buf_reset(&b);
    /* embedded NUL is escaped, not a terminator */
    assert_int_equal(gh_buf_append_json_escaped(&b, "x\0y", 3), GH_OK);
    assert_string_equal(b.data, "x\\u0000y");
    gh_buf_cleanup(&b);

    /* all or nothing when the cap is hit midway */
    gh_buf_init(&b, 8);
    assert_int_equal(gh_buf_puts(&b, "ab"), GH_OK);
    assert_int_equal(gh_buf_append_json_escaped(&b, "cd\nef", 5), GH_ETOOBIG);
    assert_string_equal(b.data, "ab");
    assert_int_equal(b.len, 2);
    gh_buf_cleanup(&b);
}

static void snprintf_reports_truncation(void **state)
{
    char out[8];

    (void)state;
    assert_int_equal(gh_snprintf(out, sizeof out, "%s", "1234567"), GH_OK);
    assert_string_equal(out, "1234567");
    assert_int_equal(gh_snprintf(out, sizeof out, "%s", "12345678"), GH_ETOOBIG);
    assert_string_equal(out, "1234567");
    assert_int_equal(gh_snprintf(out, 0, "%s", "x"), GH_ETOOBIG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(views),
        cmocka_unit_test(numbers),
        cmocka_unit_test(buf_grows_and_stays_terminated),
        cmocka_unit_test(buf_cap_is_hard),
        cmocka_unit_test(buf_printf_reuses_space),
        cmocka_unit_test(json_escaping),
        cmocka_unit_test(snprintf_reports_truncation),
    };

    return cmocka_run_group_tests_name("str", tests, NULL, NULL);
}
