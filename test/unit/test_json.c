/* test_json.c - strict parsing and borrowed getters. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/err.h"
#include "core/json.h"
#include "core/str.h"

static int parse(const char *s, json_object **out)
{
    return gh_json_parse(s, strlen(s), 0, out);
}

static void parses_complete_documents(void **state)
{
    json_object *o = NULL;

    (void)state;
    assert_int_equal(parse("{\"a\":1}", &o), GH_OK);
    assert_true(json_object_is_type(o, json_type_object));
    json_object_put(o);
    assert_int_equal(parse("  [1,2,3]\n", &o), GH_OK);
    assert_int_equal(json_object_array_length(o), 3);
    json_object_put(o);
    assert_int_equal(parse("123", &o), GH_OK); /* a number ending at the buffer's end */
    assert_int_equal(json_object_get_int(o), 123);
    json_object_put(o);
    assert_int_equal(parse("true", &o), GH_OK);
    assert_true(json_object_get_boolean(o));
    json_object_put(o);
    assert_int_equal(parse("\"h\xc3\xa9\"", &o), GH_OK);
    assert_string_equal(json_object_get_string(o), "h\xc3\xa9");
    json_object_put(o);
    /* not NUL-terminated: only len bytes count */
    assert_int_equal(gh_json_parse("{\"a\":1}XYZ", 7, 0, &o), GH_OK);
    json_object_put(o);
}

static void rejects_bad_input(void **state)
{
    static const char *const bad[] = {
        "",        "   ", "{",        "{\"a\":1",   "{\"a\":1}x", "{} {}",
        "[1,2,]x", "nul", "\"\xff\"", "{\"a\":\"x", "[1] 2",
    };
    json_object *o = (json_object *)1;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        o = (json_object *)1;
        assert_int_equal(parse(bad[i], &o), GH_EJSON);
        assert_null(o);
    }
    assert_int_equal(gh_json_parse("{}\0zz", 5, 0, &o), GH_EJSON); /* embedded NUL */
    assert_null(o);
    assert_int_equal(gh_json_parse(NULL, 0, 0, &o), GH_EJSON);
}

static void depth_limit(void **state)
{
    json_object *o = NULL;

    (void)state;
    assert_int_equal(gh_json_parse("[[[1]]]", 7, 3, &o), GH_OK);
    json_object_put(o);
    assert_int_equal(gh_json_parse("[[[[1]]]]", 9, 3, &o), GH_EJSON);
    assert_null(o);
}

static void getters(void **state)
{
    const char *doc = "{\"s\":\"x\",\"o\":{\"k\":1},\"a\":[1],\"i\":-5,\"big\":9007199254740993,"
                      "\"d\":1.5,\"b\":true,\"n\":null,\"id\":\"175928847299117063\","
                      "\"badid\":\"12x\",\"numid\":175928847299117063,\"huge\":\"99999999999999999999\"}";
    json_object *o = NULL;
    int64_t i = 0;
    int b = -1;

    (void)state;
    assert_int_equal(parse(doc, &o), GH_OK);
    assert_string_equal(gh_json_get_str(o, "s"), "x");
    assert_null(gh_json_get_str(o, "o"));
    assert_null(gh_json_get_str(o, "missing"));
    assert_non_null(gh_json_get_obj(o, "o"));
    assert_null(gh_json_get_obj(o, "a"));
    assert_non_null(gh_json_get_arr(o, "a"));
    assert_null(gh_json_get_arr(o, "s"));
    assert_int_equal(gh_json_get_int(o, "i", &i), GH_OK);
    assert_int_equal(i, -5);
    assert_int_equal(gh_json_get_int(o, "big", &i), GH_OK);
    assert_true(i == 9007199254740993LL);
    assert_int_equal(gh_json_get_int(o, "d", &i), GH_EINVAL);
    assert_int_equal(gh_json_get_int(o, "s", &i), GH_EINVAL);
    assert_int_equal(gh_json_get_int(o, "missing", &i), GH_ENOTFOUND);
    assert_int_equal(gh_json_get_int(o, "n", &i), GH_ENOTFOUND);
    assert_int_equal(gh_json_get_bool(o, "b", &b), GH_OK);
    assert_int_equal(b, 1);
    assert_int_equal(gh_json_get_bool(o, "i", &b), GH_EINVAL);
    assert_int_equal(gh_json_get_bool(o, "nope", &b), GH_ENOTFOUND);
    assert_true(gh_json_get_snowflake(o, "id") == 175928847299117063ULL);
    assert_true(gh_json_get_snowflake(o, "badid") == 0);
    assert_true(gh_json_get_snowflake(o, "numid") == 0);
    assert_true(gh_json_get_snowflake(o, "huge") == 0);
    assert_true(gh_json_get_snowflake(o, "missing") == 0);
    /* not an object */
    assert_null(gh_json_get_str(gh_json_get_arr(o, "a"), "s"));
    assert_null(gh_json_get_str(NULL, "s"));
    json_object_put(o);
}

static void to_buf_is_compact(void **state)
{
    json_object *o = json_object_new_object();
    struct gh_buf b;

    (void)state;
    json_object_object_add(o, "url", json_object_new_string("https://x/y"));
    json_object_object_add(o, "n", json_object_new_int(3));
    json_object_object_add(o, "t", json_object_new_string("caf\xc3\xa9 \"q\""));
    gh_buf_init(&b, 1024);
    assert_int_equal(gh_json_to_buf(o, &b), GH_OK);
    assert_string_equal(b.data, "{\"url\":\"https://x/y\",\"n\":3,\"t\":\"caf\xc3\xa9 \\\"q\\\"\"}");
    gh_buf_reset(&b);
    assert_int_equal(gh_json_to_buf(NULL, &b), GH_OK);
    assert_string_equal(b.data, "null");
    gh_buf_cleanup(&b);
    gh_buf_init(&b, 10);
    assert_int_equal(gh_json_to_buf(o, &b), GH_ETOOBIG);
    assert_int_equal(b.len, 0);
    gh_buf_cleanup(&b);
    json_object_put(o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parses_complete_documents),
        cmocka_unit_test(rejects_bad_input),
        cmocka_unit_test(depth_limit),
        cmocka_unit_test(getters),
        cmocka_unit_test(to_buf_is_compact),
    };

    return cmocka_run_group_tests_name("json", tests, NULL, NULL);
}
