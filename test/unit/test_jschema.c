/* test_jschema.c - the settings schema subset: every keyword valid and
 * invalid with exact pointers and messages, error collection and its cap,
 * UTF-8 lengths, bounded patterns, the ref hook, premium annotations,
 * defaults, the schema checker, and the real features/<name>/schema.json
 * files (read from the repository root, where the test runs). Pure: no
 * services needed. */
#include <glob.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "core/err.h"
#include "core/json.h"
#include "web/jschema.h"

/* ---- helpers ------------------------------------------------------------- */

static json_object *parse(const char *text)
{
    json_object *o = NULL;

    if (gh_json_parse(text, strlen(text), 64, &o) != GH_OK)
        fail_msg("test JSON does not parse: %s", text);
    return o;
}

/* Validates doc against schema_text and compares the errors with the
 * (path, message) pairs that follow, ended by NULL. No pairs: valid. */
static void vexpect(int line, const char *schema_text, json_object *doc, const char *doc_text, va_list ap)
{
    json_object *schema = parse(schema_text);
    struct gh_jschema_result res;
    int rc, n = 0;
    const char *path;

    memset(&res, 0x5a, sizeof res); /* validate must clear it */
    rc = gh_jschema_validate(schema, doc, NULL, NULL, &res);
    while ((path = va_arg(ap, const char *)) != NULL) {
        const char *msg = va_arg(ap, const char *);
        if (n >= res.n_errors)
            fail_msg("line %d: %s against %s: expected error %d (%s: %s), got only %d", line, doc_text,
                     schema_text, n, path, msg, res.n_errors);
        if (strcmp(res.errors[n].path, path) != 0 || strcmp(res.errors[n].message, msg) != 0)
            fail_msg("line %d: %s: error %d is (\"%s\", \"%s\"), expected (\"%s\", \"%s\")", line, doc_text,
                     n, res.errors[n].path, res.errors[n].message, path, msg);
        n++;
    }
    if (res.n_errors != n)
        fail_msg("line %d: %s against %s: %d errors, expected %d (first: \"%s\" %s)", line, doc_text,
                 schema_text, res.n_errors, n, res.n_errors ? res.errors[0].path : "",
                 res.n_errors ? res.errors[0].message : "");
    if (rc != (n ? GH_EINVAL : GH_OK))
        fail_msg("line %d: %s: rc %d (%s)", line, doc_text, rc, gh_errname(rc));
    assert_int_equal(res.truncated, 0);
    json_object_put(schema);
}

static void expect_text(int line, const char *schema_text, const char *doc_text, ...)
{
    json_object *doc = parse(doc_text);
    va_list ap;

    va_start(ap, doc_text);
    vexpect(line, schema_text, doc, doc_text, ap);
    va_end(ap);
    json_object_put(doc);
}

static void expect_obj(int line, const char *schema_text, json_object *doc, ...)
{
    va_list ap;

    va_start(ap, doc);
    vexpect(line, schema_text, doc, "(built document)", ap);
    va_end(ap);
}

#define END ((const char *)NULL)
#define OK(schema, doc) expect_text(__LINE__, schema, doc, END)
#define BAD(schema, doc, ...) expect_text(__LINE__, schema, doc, __VA_ARGS__, END)

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    size_t n;

    if (!f)
        fail_msg("cannot open %s (run the test from the repository root)", path);
    buf = calloc(1, 1 << 20);
    assert_non_null(buf);
    n = fread(buf, 1, (1 << 20) - 1, f);
    fclose(f);
    assert_true(n > 0);
    return buf;
}

static json_object *load_json(const char *path)
{
    char *text = read_file(path);
    json_object *o = NULL;

    if (gh_json_parse(text, strlen(text), 0, &o) != GH_OK || !o)
        fail_msg("%s does not parse", path);
    free(text);
    return o;
}

/* ---- type ------------------------------------------------------------------ */

static void test_type(void **state)
{
    (void)state;
    OK("{\"type\":\"string\"}", "\"x\"");
    BAD("{\"type\":\"string\"}", "1", "", "must be a string");
    OK("{\"type\":\"integer\"}", "1");
    OK("{\"type\":\"integer\"}", "-5");
    OK("{\"type\":\"integer\"}", "1.0"); /* a number without fraction */
    BAD("{\"type\":\"integer\"}", "1.5", "", "must be an integer");
    BAD("{\"type\":\"integer\"}", "\"1\"", "", "must be an integer");
    OK("{\"type\":\"number\"}", "1.5");
    OK("{\"type\":\"number\"}", "1");
    BAD("{\"type\":\"number\"}", "true", "", "must be a number");
    OK("{\"type\":\"boolean\"}", "false");
    BAD("{\"type\":\"boolean\"}", "0", "", "must be a boolean");
    OK("{\"type\":\"object\"}", "{}");
    BAD("{\"type\":\"object\"}", "[]", "", "must be an object");
    OK("{\"type\":\"array\"}", "[]");
    BAD("{\"type\":\"array\"}", "{}", "", "must be an array");
    OK("{\"type\":\"null\"}", "null");
    BAD("{\"type\":\"null\"}", "0", "", "must be null");
    OK("{\"type\":[\"string\",\"null\"]}", "null");
    OK("{\"type\":[\"string\",\"null\"]}", "\"a\"");
    BAD("{\"type\":[\"string\",\"null\"]}", "1", "", "must be a string or null");
    BAD("{\"type\":[\"string\",\"integer\",\"null\"]}", "true", "", "must be a string, an integer or null");
    OK("{}", "[1,{\"a\":null}]"); /* no type: anything */
    /* null is validated like any value, and a type failure hides the rest */
    BAD("{\"type\":\"object\"}", "null", "", "must be an object");
    BAD("{\"type\":\"string\",\"minLength\":5,\"enum\":[\"abcdef\"]}", "7", "", "must be a string");
}

/* ---- objects ----------------------------------------------------------------- */

static const char person[] = "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\"},"
                             "\"age\":{\"type\":\"integer\"}},\"required\":[\"name\",\"age\"],"
                             "\"additionalProperties\":false}";

static void test_object_keywords(void **state)
{
    (void)state;
    OK(person, "{\"name\":\"x\",\"age\":3}");
    BAD(person, "{}", "/name", "is required", "/age", "is required");
    BAD(person, "{\"age\":3}", "/name", "is required");
    BAD(person, "{\"name\":\"x\",\"age\":3,\"extra\":1}", "/extra", "is not an allowed property");
    BAD(person, "{\"name\":null,\"age\":\"3\"}", "/name", "must be a string", "/age", "must be an integer");
    /* additionalProperties defaults to true */
    OK("{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\"}}}", "{\"a\":1,\"b\":\"anything\"}");
    OK("{\"type\":\"object\",\"additionalProperties\":true}", "{\"b\":1}");
    BAD("{\"type\":\"object\",\"additionalProperties\":false}", "{\"b\":1}", "/b",
        "is not an allowed property");
    /* RFC 6901 escaping of "/" and "~" */
    BAD("{\"properties\":{\"a/b\":{\"type\":\"integer\"},\"m~n\":{\"type\":\"integer\"}},\"required\":[\"x/"
        "~y\"]}",
        "{\"a/b\":\"x\",\"m~n\":\"y\"}", "/x~1~0y", "is required", "/a~1b", "must be an integer", "/m~0n",
        "must be an integer");
    /* object keywords ignore other types */
    OK("{\"properties\":{\"a\":{}},\"required\":[\"a\"],\"additionalProperties\":false}", "\"text\"");
}

/* ---- enum, const --------------------------------------------------------------- */

static void test_enum_const(void **state)
{
    static const char levels[] = "{\"enum\":[\"low\",\"medium\",\"high\"]}";
    static const char mixed[] = "{\"enum\":[1,2.5,true,null,\"x\"]}";

    (void)state;
    OK(levels, "\"low\"");
    OK(levels, "\"high\"");
    BAD(levels, "\"extreme\"", "", "must be one of: low, medium, high");
    BAD(levels, "\"Low\"", "", "must be one of: low, medium, high");
    OK(mixed, "1");
    OK(mixed, "1.0"); /* numbers compare by value */
    OK(mixed, "2.5");
    OK(mixed, "true");
    OK(mixed, "null");
    OK(mixed, "\"x\"");
    BAD(mixed, "\"1\"", "", "must be one of: 1, 2.5, true, null, x"); /* by type too */
    BAD(mixed, "false", "", "must be one of: 1, 2.5, true, null, x");
    BAD("{\"enum\":[1]}", "true", "", "must be one of: 1");
    BAD("{\"enum\":[0]}", "false", "", "must be one of: 0");
    OK("{\"const\":\"on\"}", "\"on\"");
    BAD("{\"const\":\"on\"}", "\"off\"", "", "must be on");
    OK("{\"const\":0}", "0.0");
    BAD("{\"const\":0}", "false", "", "must be 0");
    BAD("{\"const\":null}", "\"\"", "", "must be null");
}

/* ---- numbers ------------------------------------------------------------------- */

static void test_numbers(void **state)
{
    static const char range[] = "{\"type\":\"integer\",\"minimum\":1,\"maximum\":100}";
    static const char open[] = "{\"exclusiveMinimum\":0,\"exclusiveMaximum\":1.5}";

    (void)state;
    OK(range, "1");
    OK(range, "100");
    BAD(range, "0", "", "must be at least 1");
    BAD(range, "101", "", "must be at most 100");
    BAD(range, "-9223372036854775808", "", "must be at least 1");
    OK(open, "0.5");
    OK(open, "1");
    BAD(open, "0", "", "must be greater than 0");
    BAD(open, "-0.5", "", "must be greater than 0");
    BAD(open, "1.5", "", "must be less than 1.5");
    BAD(open, "2", "", "must be less than 1.5");
    /* both limits at once */
    BAD("{\"minimum\":10,\"exclusiveMaximum\":5}", "7", "", "must be at least 10", "", "must be less than 5");
    /* exact beyond 2^53, where doubles would call these equal */
    BAD("{\"maximum\":9007199254740992}", "9007199254740993", "", "must be at most 9007199254740992");
    OK("{\"maximum\":18446744073709551615}", "18446744073709551615");
    BAD("{\"maximum\":18446744073709551614}", "18446744073709551615", "",
        "must be at most 18446744073709551614");
    /* numeric keywords ignore strings */
    OK("{\"minimum\":5}", "\"abc\"");
}

/* ---- strings ------------------------------------------------------------------- */

static void test_string_lengths_utf8(void **state)
{
    static const char len23[] = "{\"type\":\"string\",\"minLength\":2,\"maxLength\":3}";
    static const char *const invalid[] = {"a\xff", "\xc0\xaf", "\xed\xa0\x80", "\xe2\x82",
                                          "\xf4\x90\x80\x80"};
    json_object *o;

    (void)state;
    OK(len23, "\"ab\"");
    BAD(len23, "\"\xc3\xa9\"", "", "must be at least 2 characters"); /* é: 2 bytes, 1 character */
    OK(len23, "\"\xc3\xa9\xc3\xa9\"");
    OK(len23, "\"\xc3\xa9\xc3\xa9\xc3\xa9\""); /* 6 bytes, 3 characters */
    BAD(len23, "\"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\"", "", "must be at most 3 characters");
    OK(len23, "\"\xf0\x9f\x98\x80\xf0\x9f\x98\x80\xf0\x9f\x98\x80\""); /* three 4-byte emoji */
    BAD("{\"maxLength\":1}", "\"ab\"", "", "must be at most 1 character");
    BAD("{\"minLength\":1}", "\"\"", "", "must be at least 1 character");
    BAD("{\"maxLength\":32}", "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"", "", "must be at most 32 characters");
    OK("{\"maxLength\":0}", "\"\"");
    OK("{\"minLength\":3}", "12"); /* string keywords ignore numbers */
    /* Invalid UTF-8 (only a document built in C can hold it: the parser
     * refuses it) is an error of its own, reported once. */
    for (size_t i = 0; i < sizeof invalid / sizeof invalid[0]; i++) {
        o = json_object_new_string_len(invalid[i], (int)strlen(invalid[i]));
        expect_obj(__LINE__, len23, o, "", "must be valid UTF-8 text", END);
        json_object_put(o);
    }
    o = json_object_new_object();
    json_object_object_add(o, "name", json_object_new_string_len("\xff\xfe", 2));
    expect_obj(__LINE__, "{\"properties\":{\"name\":{\"type\":\"string\",\"pattern\":\"x\"}}}", o, "/name",
               "must be valid UTF-8 text", END);
    json_object_put(o);
}

static void test_pattern(void **state)
{
    static const char lower[] = "{\"type\":\"string\",\"pattern\":\"^[a-z]+$\"}";
    static const char evil[] = "{\"type\":\"string\",\"pattern\":\"^(a+)+$\"}";
    char doc[5100];

    (void)state;
    OK(lower, "\"abc\"");
    BAD(lower, "\"Abc\"", "", "must match the pattern ^[a-z]+$");
    BAD(lower, "\"\"", "", "must match the pattern ^[a-z]+$");
    OK("{\"pattern\":\"b\"}", "\"abc\"");          /* unanchored, as JSON Schema says */
    OK("{\"pattern\":\"^.$\"}", "\"\xc3\xa9\"");   /* UTF mode: é is one character */
    OK("{\"pattern\":\"^\\\\d{3}$\"}", "\"123\""); /* \d */
    BAD("{\"pattern\":\"^\\\\d{3}$\"}", "\"12a\"", "", "must match the pattern ^\\d{3}$");
    /* Several keywords of one value all report. */
    BAD("{\"type\":\"string\",\"maxLength\":3,\"pattern\":\"^[a-z]+$\"}", "\"ABCDE\"", "",
        "must be at most 3 characters", "", "must match the pattern ^[a-z]+$");
    /* Catastrophic backtracking stops at the match limit: a validation
     * error, not a hang (and not "must match"). */
    OK(evil, "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"");
    BAD(evil, "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!\"", "", "could not be checked against the pattern ^(a+)+$");
    /* Our limit, not PCRE2's default (10 million, which decides this one
     * as "no match"), is in force; a cheaper failure is still a mismatch. */
    BAD(evil, "\"aaaaaaaaaaaaaaaaaa!\"", "", "could not be checked against the pattern ^(a+)+$");
    BAD(evil, "\"aaaaaaaaaa!\"", "", "must match the pattern ^(a+)+$");
    doc[0] = '"';
    memset(doc + 1, 'a', 5000);
    memcpy(doc + 5001, "!\"", 3);
    BAD(evil, doc, "", "could not be checked against the pattern ^(a+)+$");
}

/* ---- arrays -------------------------------------------------------------------- */

static void test_arrays(void **state)
{
    static const char ints[] =
        "{\"type\":\"array\",\"items\":{\"type\":\"integer\"},\"minItems\":1,\"maxItems\":3,"
        "\"uniqueItems\":true}";
    json_object *big;

    (void)state;
    OK(ints, "[1,2]");
    OK(ints, "[1,2,3]");
    BAD(ints, "[]", "", "must have at least 1 item");
    BAD(ints, "[1,2,3,4]", "", "must have at most 3 items");
    BAD(ints, "[1,\"x\",2.5]", "/1", "must be an integer", "/2", "must be an integer");
    BAD(ints, "[1,1.0]", "", "must not contain duplicates");
    BAD("{\"maxItems\":10}", "[0,1,2,3,4,5,6,7,8,9,10]", "", "must have at most 10 items");
    BAD("{\"minItems\":2}", "[0]", "", "must have at least 2 items");
    OK("{\"maxItems\":1}", "\"ab\""); /* array keywords ignore strings */
    /* uniqueItems compares deeply, object members in any order */
    BAD("{\"uniqueItems\":true}", "[{\"a\":1,\"b\":[1,2]},{\"b\":[1,2],\"a\":1}]", "",
        "must not contain duplicates");
    OK("{\"uniqueItems\":true}", "[{\"a\":1},{\"a\":2},[1],[1,2],\"1\",1,true,null]");
    OK("{\"uniqueItems\":false}", "[1,1]");
    /* ...within a budget: a huge array cannot make it quadratic forever */
    big = json_object_new_array();
    for (int i = 0; i < 2000; i++)
        json_object_array_add(big, json_object_new_int(i));
    expect_obj(__LINE__, "{\"uniqueItems\":true}", big, "",
               "could not be checked for duplicates (too many items)", END);
    json_object_put(big);
}

/* ---- nesting, collection, cap, depth -------------------------------------------------- */

static const char thresholds[] =
    "{\"type\":\"object\",\"additionalProperties\":false,\"properties\":{\"thresholds\":{\"type\":\"array\","
    "\"items\":{\"type\":\"object\",\"additionalProperties\":false,\"required\":[\"count\",\"action\"],"
    "\"properties\":{\"count\":{\"type\":\"integer\",\"minimum\":1},\"action\":{\"enum\":[\"warn\",\"mute\"]}"
    "}}}}}";

static void test_nested_pointers(void **state)
{
    static const char doc[] = "{\"thresholds\":[{\"count\":3,\"action\":\"warn\"},"
                              "{\"count\":0,\"action\":\"ban\",\"x\":1},{}],\"extra\":true}";
    json_object *schema = parse(thresholds), *d = parse(doc);
    struct gh_jschema_result res;
    char before[256];

    (void)state;
    OK(thresholds, "{\"thresholds\":[{\"count\":3,\"action\":\"warn\"},{\"count\":1,\"action\":\"mute\"}]}");
    /* every error of the document in one pass, in document order */
    BAD(thresholds, doc, "/thresholds/1/count", "must be at least 1", "/thresholds/1/action",
        "must be one of: warn, mute", "/thresholds/1/x", "is not an allowed property", "/thresholds/2/count",
        "is required", "/thresholds/2/action", "is required", "/extra", "is not an allowed property");
    /* the document is not modified */
    snprintf(before, sizeof before, "%s", json_object_to_json_string_ext(d, JSON_C_TO_STRING_PLAIN));
    assert_int_equal(gh_jschema_validate(schema, d, NULL, NULL, &res), GH_EINVAL);
    assert_int_equal(res.n_errors, 6);
    assert_string_equal(json_object_to_json_string_ext(d, JSON_C_TO_STRING_PLAIN), before);
    /* res may be NULL */
    assert_int_equal(gh_jschema_validate(schema, d, NULL, NULL, NULL), GH_EINVAL);
    json_object_put(d);
    json_object_put(schema);
}

static void test_error_cap(void **state)
{
    json_object *schema = parse("{\"type\":\"object\",\"additionalProperties\":false}");
    json_object *doc = json_object_new_object();
    struct gh_jschema_result res;
    char key[16];

    (void)state;
    for (int i = 0; i < 32; i++) {
        snprintf(key, sizeof key, "k%02d", i);
        json_object_object_add(doc, key, json_object_new_int(i));
    }
    assert_int_equal(gh_jschema_validate(schema, doc, NULL, NULL, &res), GH_EINVAL);
    assert_int_equal(res.n_errors, 32); /* exactly full: not truncated */
    assert_int_equal(res.truncated, 0);
    for (int i = 32; i < 40; i++) {
        snprintf(key, sizeof key, "k%02d", i);
        json_object_object_add(doc, key, json_object_new_int(i));
    }
    assert_int_equal(gh_jschema_validate(schema, doc, NULL, NULL, &res), GH_EINVAL);
    assert_int_equal(res.n_errors, GH_JSCHEMA_MAX_ERRORS);
    assert_int_equal(res.truncated, 1);
    assert_string_equal(res.errors[0].path, "/k00");
    assert_string_equal(res.errors[31].path, "/k31");
    assert_string_equal(res.errors[31].message, "is not an allowed property");
    json_object_put(doc);
    json_object_put(schema);
}

static void test_depth_limit(void **state)
{
    char text[200], want[100] = "";
    json_object *schema = parse("{}"), *doc, *inner;
    struct gh_jschema_result res;

    (void)state;
    /* 32 nested arrays are fine, 33 are one error at the 33rd */
    memset(text, '[', 32);
    memset(text + 32, ']', 32);
    text[64] = '\0';
    OK("{}", text);
    memset(text, '[', 33);
    memset(text + 33, ']', 33);
    text[66] = '\0';
    for (int i = 0; i < 32; i++)
        strcat(want, "/0");
    BAD("{}", text, want, "is nested too deeply (more than 32 levels)");

    /* Far deeper than any parser would allow (built in C): one error, no
     * recursion blow-up. */
    doc = json_object_new_array();
    inner = json_object_new_object();
    json_object_array_add(doc, inner);
    for (int i = 0; i < 5000; i++) { /* json-c frees recursively: keep its stack sane */
        json_object *next = json_object_new_object();
        json_object_object_add(inner, "a", next);
        inner = next;
    }
    assert_int_equal(gh_jschema_validate(schema, doc, NULL, NULL, &res), GH_EINVAL);
    assert_int_equal(res.n_errors, 1);
    assert_string_equal(res.errors[0].message, "is nested too deeply (more than 32 levels)");
    assert_int_equal(strncmp(res.errors[0].path, "/0/a/a/a", 8), 0);
    json_object_put(doc);
    json_object_put(schema);
}

static void test_long_path_truncated(void **state)
{
    char doc[400];
    json_object *schema = parse("{\"additionalProperties\":false}"), *d;
    struct gh_jschema_result res;
    size_t n;

    (void)state;
    snprintf(doc, sizeof doc, "{\"%0300d\":1}", 7);
    d = parse(doc);
    assert_int_equal(gh_jschema_validate(schema, d, NULL, NULL, &res), GH_EINVAL);
    n = strlen(res.errors[0].path);
    assert_int_equal(n, sizeof res.errors[0].path - 1);
    assert_string_equal(res.errors[0].path + n - 3, "...");
    assert_int_equal(strncmp(res.errors[0].path, "/0000", 5), 0);
    assert_string_equal(res.errors[0].message, "is not an allowed property");
    json_object_put(d);
    json_object_put(schema);
}

/* ---- formats ---------------------------------------------------------------------- */

static void test_format_snowflake(void **state)
{
    static const char sf[] = "{\"type\":\"string\",\"format\":\"snowflake\"}";
    static const char msg[] = "must be a Discord id (snowflake)";

    (void)state;
    OK(sf, "\"123456789012345678\"");
    OK(sf, "\"123456789012345\"");      /* 15 digits: old ids */
    OK(sf, "\"18446744073709551615\""); /* 2^64 - 1 */
    BAD(sf, "\"12345678901234\"", "", msg);
    BAD(sf, "\"012345678901234567\"", "", msg);
    BAD(sf, "\"18446744073709551616\"", "", msg);
    BAD(sf, "\"99999999999999999999\"", "", msg);
    BAD(sf, "\"123456789012345678901\"", "", msg);
    BAD(sf, "\"12345678901234567a\"", "", msg);
    BAD(sf, "\" 12345678901234567\"", "", msg);
    BAD(sf, "\"0\"", "", msg);
    BAD(sf, "\"\"", "", msg);
    BAD("{\"format\":\"snowflake\"}", "123456789012345678", "", msg); /* a number loses precision in JS */
    OK("{\"format\":\"snowflake\"}", "null");                         /* other types: "type" decides */
    /* the "snowflake" keyword */
    OK("{\"type\":\"string\",\"snowflake\":true}", "\"123456789012345678\"");
    BAD("{\"type\":\"string\",\"snowflake\":true}", "\"1\"", "", msg);
    OK("{\"type\":\"string\",\"snowflake\":false}", "\"1\"");
}

static void test_format_color_url(void **state)
{
    static const char color[] = "{\"format\":\"color\"}";
    static const char cmsg[] = "must be a color such as #5865f2";
    static const char url[] = "{\"type\":\"string\",\"format\":\"url\"}";
    static const char umsg[] = "must be a URL starting with http:// or https://";
    static const char *const good_urls[] = {
        "https://example.com",
        "http://example.com:8080/a?b=1#c",
        "HTTPS://EXAMPLE.COM",
        "https://[::1]:443/",
        "https://user@example.com/x",
        "https://example.com?q",
        "https://xn--bcher-kva.example/",
    };
    static const char *const bad_urls[] = {
        "ftp://example.com",   "https://",           "https:///path",  "https://exa mple.com",
        "https://x.com:99999", "https://x.com:",     "https://user@/", "https://[]/",
        "example.com",         "https://x.com/a\tb", "https://:80/",   "javascript:1",
        "https://[::1]x",
    };
    char doc[2100];

    (void)state;
    OK(color, "0");
    OK(color, "16777215");
    OK(color, "255.0");
    OK(color, "\"#5865F2\"");
    OK(color, "\"#00ff00\"");
    BAD(color, "16777216", "", cmsg);
    BAD(color, "-1", "", cmsg);
    BAD(color, "1.5", "", cmsg);
    BAD(color, "\"#5865f\"", "", cmsg);
    BAD(color, "\"5865f2\"", "", cmsg);
    BAD(color, "\"#5865g2\"", "", cmsg);
    BAD(color, "\"#5865f20\"", "", cmsg);
    for (size_t i = 0; i < sizeof good_urls / sizeof good_urls[0]; i++) {
        snprintf(doc, sizeof doc, "\"%s\"", good_urls[i]);
        OK(url, doc);
    }
    for (size_t i = 0; i < sizeof bad_urls / sizeof bad_urls[0]; i++) {
        json_object *o = json_object_new_string(bad_urls[i]);
        expect_obj(__LINE__, url, o, "", umsg, END);
        json_object_put(o);
    }
    /* 2048 bytes fine, 2049 not */
    memcpy(doc, "\"https://e.com/", 15);
    memset(doc + 15, 'a', 2048 - 14);
    memcpy(doc + 2049, "\"", 2);
    OK(url, doc);
    memcpy(doc + 2049, "a\"", 3);
    BAD(url, doc, "", "must be a URL of at most 2048 characters");
}

static void test_format_duration(void **state)
{
    static const char dur[] = "{\"type\":\"string\",\"format\":\"duration\"}";
    static const char msg[] = "must be a duration such as 10m, 1h or 7d";
    static const char range[] = "must be a duration between 1s and 365d";
    static const char *const good[] = {"30s", "10m", "1h30m", "7d", "2w", "365d", "1s", "1w2d3h4m5s", "05m"};
    static const char *const bad[] = {"10",   "m",    "10x", "30m1h", "1h1h", "1.5h",
                                      " 10m", "10m ", "",    "-5m",   "10M",  "1234567890s"};
    char doc[64];
    uint64_t secs = 0;

    (void)state;
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        snprintf(doc, sizeof doc, "\"%s\"", good[i]);
        OK(dur, doc);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(doc, sizeof doc, "\"%s\"", bad[i]);
        BAD(dur, doc, "", msg);
    }
    BAD(dur, "\"0s\"", "", range);
    BAD(dur, "\"366d\"", "", range);
    BAD(dur, "\"53w\"", "", range);
    BAD(dur, "\"364d24h1s\"", "", range);
    BAD("{\"format\":\"duration\"}", "600", "", msg);

    assert_int_equal(gh_jschema_duration("1h30m", 5, &secs), GH_OK);
    assert_int_equal(secs, 5400);
    assert_int_equal(gh_jschema_duration("2w", 2, &secs), GH_OK);
    assert_int_equal(secs, 1209600);
    assert_int_equal(gh_jschema_duration("365d", 4, &secs), GH_OK);
    assert_int_equal(secs, 31536000);
    assert_int_equal(gh_jschema_duration("0s", 2, &secs), GH_EINVAL);
    assert_int_equal(gh_jschema_duration("10mXX", 3, &secs), GH_OK); /* only len bytes */
    assert_int_equal(secs, 600);
    assert_int_equal(gh_jschema_duration(NULL, 0, &secs), GH_EINVAL);
}

/* ---- the ref hook -------------------------------------------------------------------- */

struct calls {
    int n;
    char format[8][16];
    char path[8][64];
    char value[8][32];
};

static int ref_hook(void *arg, const char *format, const char *path, const char *value, char *msg,
                    size_t msgsz)
{
    struct calls *c = arg;

    assert_true(c->n < 8);
    snprintf(c->format[c->n], sizeof c->format[0], "%s", format);
    snprintf(c->path[c->n], sizeof c->path[0], "%s", path);
    snprintf(c->value[c->n], sizeof c->value[0], "%s", value);
    c->n++;
    assert_true(msgsz >= 64);
    assert_string_equal(msg, "");
    if (strcmp(value, "222222222222222222") == 0) {
        snprintf(msg, msgsz, "is not a %s of this server", format);
        return 1;
    }
    if (strcmp(value, "333333333333333333") == 0)
        return 1; /* no message: the generic one */
    if (strcmp(value, "444444444444444444") == 0) {
        snprintf(msg, msgsz, "is above your highest role");
        return 1;
    }
    return 0;
}

static void test_ref_hook(void **state)
{
    json_object *schema =
        parse("{\"type\":\"object\",\"properties\":{\"mod_role\":{\"type\":\"string\",\"format\":\"role\"},"
              "\"log\":{\"type\":\"string\",\"format\":\"channel\"},\"owner\":{\"type\":\"string\","
              "\"format\":\"user\"},"
              "\"plain\":{\"type\":\"string\",\"format\":\"snowflake\"},\"flag\":{\"type\":\"string\","
              "\"snowflake\":true},"
              "\"roles\":{\"type\":\"array\",\"items\":{\"type\":\"string\",\"format\":\"role\"}}}}");
    json_object *doc = parse("{\"mod_role\":\"111111111111111111\",\"log\":\"333333333333333333\","
                             "\"owner\":\"111111111111111112\",\"plain\":\"222222222222222222\","
                             "\"flag\":\"222222222222222222\",\"roles\":[\"111111111111111111\","
                             "\"222222222222222222\",\"bad\",\"444444444444444444\"]}");
    struct gh_jschema_result res;
    struct calls c;

    (void)state;
    memset(&c, 0, sizeof c);
    assert_int_equal(gh_jschema_validate(schema, doc, ref_hook, &c, &res), GH_EINVAL);
    /* called for role/channel/user only, after the snowflake check */
    assert_int_equal(c.n, 6);
    assert_string_equal(c.format[0], "role");
    assert_string_equal(c.path[0], "/mod_role");
    assert_string_equal(c.value[0], "111111111111111111");
    assert_string_equal(c.format[1], "channel");
    assert_string_equal(c.path[1], "/log");
    assert_string_equal(c.format[2], "user");
    assert_string_equal(c.path[2], "/owner");
    assert_string_equal(c.value[2], "111111111111111112");
    assert_string_equal(c.path[3], "/roles/0");
    assert_string_equal(c.path[4], "/roles/1");
    assert_string_equal(c.format[4], "role");
    assert_string_equal(c.path[5], "/roles/3");
    /* its messages are used */
    assert_int_equal(res.n_errors, 4);
    assert_string_equal(res.errors[0].path, "/log");
    assert_string_equal(res.errors[0].message, "is not a channel of this server");
    assert_string_equal(res.errors[1].path, "/roles/1");
    assert_string_equal(res.errors[1].message, "is not a role of this server");
    assert_string_equal(res.errors[2].path, "/roles/2");
    assert_string_equal(res.errors[2].message, "must be a Discord id (snowflake)");
    assert_string_equal(res.errors[3].path, "/roles/3");
    assert_string_equal(res.errors[3].message, "is above your highest role");

    /* without a hook, ids only need to be snowflakes */
    assert_int_equal(gh_jschema_validate(schema, doc, NULL, NULL, &res), GH_EINVAL);
    assert_int_equal(res.n_errors, 1);
    assert_string_equal(res.errors[0].path, "/roles/2");
    json_object_put(doc);
    json_object_put(schema);
}

/* ---- premium ------------------------------------------------------------------------- */

static const char premium_schema[] =
    "{\"type\":\"object\",\"properties\":{"
    "\"enabled\":{\"type\":\"boolean\",\"default\":true},"
    "\"custom_embed\":{\"type\":\"boolean\",\"default\":false,\"x-premium\":\"premium\"},"
    "\"ai_model\":{\"type\":\"string\",\"x-premium\":\"pro\"},"
    "\"limits\":{\"type\":\"object\",\"properties\":{\"max_panels\":{\"type\":\"integer\",\"default\":3,"
    "\"x-premium\":\"premium\"}}},"
    "\"triggers\":{\"type\":\"array\",\"items\":{\"type\":\"object\",\"properties\":{\"regex\":{\"type\":"
    "\"string\",\"x-premium\":\"pro\"}}}}}}";

static int premium(const char *doc_text, struct gh_jschema_result *res)
{
    json_object *schema = parse(premium_schema), *doc = parse(doc_text);
    int rank;

    assert_int_equal(gh_jschema_check_schema(schema, NULL, 0), GH_OK);
    rank = gh_jschema_premium_needed(schema, doc, res);
    json_object_put(doc);
    json_object_put(schema);
    return rank;
}

static void test_premium_needed(void **state)
{
    struct gh_jschema_result res;

    (void)state;
    assert_int_equal(premium("{}", &res), 0);
    assert_int_equal(res.n_errors, 0);
    assert_int_equal(premium("{\"enabled\":false,\"custom_embed\":false}", &res), 0); /* the default */
    assert_int_equal(res.n_errors, 0);
    assert_int_equal(premium("{\"custom_embed\":true}", &res), 1);
    assert_int_equal(res.n_errors, 1);
    assert_string_equal(res.errors[0].path, "/custom_embed");
    assert_string_equal(res.errors[0].message, "needs the premium tier");
    assert_int_equal(premium("{\"ai_model\":\"\"}", &res), 2); /* no default: any value counts */
    assert_int_equal(res.n_errors, 1);
    assert_string_equal(res.errors[0].path, "/ai_model");
    assert_string_equal(res.errors[0].message, "needs the pro tier");
    assert_int_equal(premium("{\"limits\":{\"max_panels\":3.0}}", &res), 0); /* 3.0 == default 3 */
    assert_int_equal(premium("{\"limits\":{\"max_panels\":10}}", &res), 1);
    assert_int_equal(res.n_errors, 1);
    assert_string_equal(res.errors[0].path, "/limits/max_panels");
    assert_int_equal(premium("{\"custom_embed\":true,\"triggers\":[{\"regex\":\"a\"},{}]}", &res), 2);
    assert_int_equal(res.n_errors, 2);
    assert_string_equal(res.errors[0].path, "/custom_embed");
    assert_string_equal(res.errors[0].message, "needs the premium tier");
    assert_string_equal(res.errors[1].path, "/triggers/0/regex");
    assert_string_equal(res.errors[1].message, "needs the pro tier");
    assert_int_equal(premium("{\"triggers\":[{\"regex\":\"a\"}]}", NULL), 2); /* res optional */
}

/* ---- defaults ------------------------------------------------------------------------ */

static void test_apply_defaults(void **state)
{
    json_object *schema =
        parse("{\"type\":\"object\",\"properties\":{"
              "\"enabled\":{\"type\":\"boolean\",\"default\":true},"
              "\"mode\":{\"enum\":[\"low\",\"high\"],\"default\":\"low\"},"
              "\"list\":{\"type\":\"array\",\"default\":[1,2]},"
              "\"opt\":{\"type\":[\"string\",\"null\"],\"default\":null},"
              "\"kept\":{\"type\":[\"string\",\"null\"],\"default\":\"x\"},"
              "\"none\":{\"type\":\"string\"},"
              "\"deep\":{\"type\":\"object\",\"properties\":{\"inner\":{\"default\":5}}}}}");
    json_object *doc = parse("{\"mode\":\"high\",\"kept\":null}"), *v = NULL, *def = NULL;

    (void)state;
    assert_int_equal(gh_jschema_apply_defaults(schema, doc), GH_OK);
    assert_string_equal(json_object_to_json_string_ext(doc, JSON_C_TO_STRING_PLAIN),
                        "{\"mode\":\"high\",\"kept\":null,\"enabled\":true,\"list\":[1,2],\"opt\":null}");
    /* a deep copy: changing the document leaves the schema alone */
    assert_true(json_object_object_get_ex(doc, "list", &v));
    json_object_array_add(v, json_object_new_int(3));
    assert_true(json_object_object_get_ex(json_object_object_get(schema, "properties"), "list", &def));
    assert_true(json_object_object_get_ex(def, "default", &def));
    assert_int_equal(json_object_array_length(def), 2);
    /* the result still validates */
    assert_int_equal(gh_jschema_validate(schema, doc, NULL, NULL, NULL), GH_OK);
    json_object_put(doc);

    doc = parse("[]");
    assert_int_equal(gh_jschema_apply_defaults(schema, doc), GH_EINVAL);
    assert_int_equal(json_object_array_length(doc), 0);
    json_object_put(doc);
    assert_int_equal(gh_jschema_apply_defaults(schema, NULL), GH_EINVAL);

    doc = parse("{\"a\":1}");
    json_object_put(schema);
    schema = parse("{\"type\":\"object\"}");
    assert_int_equal(gh_jschema_apply_defaults(schema, doc), GH_OK);
    assert_string_equal(json_object_to_json_string_ext(doc, JSON_C_TO_STRING_PLAIN), "{\"a\":1}");
    json_object_put(doc);
    json_object_put(schema);
}

/* ---- the schema checker ---------------------------------------------------------------- */

static void check_bad(int line, const char *schema_text, const char *want)
{
    json_object *schema = parse(schema_text);
    char err[300];
    int rc;

    memset(err, 'x', sizeof err);
    rc = gh_jschema_check_schema(schema, err, sizeof err);
    if (rc != GH_EINVAL || strcmp(err, want) != 0)
        fail_msg("line %d: %s: rc %d, err \"%s\", expected \"%s\"", line, schema_text, rc, err, want);
    json_object_put(schema);
}
#define CHECK_BAD(schema, want) check_bad(__LINE__, schema, want)

static void test_check_schema(void **state)
{
    static const char every[] =
        "{\"type\":\"object\",\"title\":\"T\",\"description\":\"D\",\"$comment\":\"c\","
        "\"additionalProperties\":false,"
        "\"required\":[\"s\"],\"properties\":{"
        "\"s\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":32,\"pattern\":\"^[a-z]+$\",\"default\":"
        "\"abc\","
        "\"examples\":[\"x\"],\"x-widget\":\"text\",\"x-order\":1,\"readOnly\":false},"
        "\"n\":{\"type\":[\"number\",\"null\"],\"minimum\":0,\"maximum\":1.5,\"exclusiveMinimum\":-1,"
        "\"exclusiveMaximum\":2},"
        "\"e\":{\"enum\":[\"a\",1,true,null],\"x-premium\":\"pro\"},\"k\":{\"const\":\"on\"},"
        "\"r\":{\"type\":\"array\",\"items\":{\"type\":\"string\",\"format\":\"role\"},\"minItems\":0,"
        "\"maxItems\":25,\"uniqueItems\":true,\"x-premium\":\"premium\"},"
        "\"f\":{\"format\":\"duration\",\"default\":\"10m\"},\"c\":{\"format\":\"color\"},\"u\":{\"format\":"
        "\"url\"},"
        "\"ch\":{\"format\":\"channel\"},\"us\":{\"format\":\"user\"},\"sf\":{\"snowflake\":true}}}";
    json_object *schema = parse(every), *doc;
    struct gh_jschema_result res;
    char deep[400] = "", small[12];

    (void)state;
    assert_int_equal(gh_jschema_check_schema(schema, NULL, 0), GH_OK);
    json_object_put(schema);

    CHECK_BAD("[]", "(root): must be a schema (an object)");
    CHECK_BAD("{\"$ref\":\"#/x\"}", "/$ref: is not a supported keyword");
    CHECK_BAD("{\"oneOf\":[]}", "/oneOf: is not a supported keyword");
    CHECK_BAD("{\"properties\":{\"a\":{\"patternProperties\":{}}}}",
              "/properties/a/patternProperties: is not a supported keyword");
    CHECK_BAD("{\"properties\":{\"a/b\":{\"allOf\":[]}}}",
              "/properties/a~1b/allOf: is not a supported keyword");
    CHECK_BAD("{\"properties\":{\"a\":true}}", "/properties/a: must be a schema (an object)");
    CHECK_BAD("{\"properties\":[]}", "/properties: must be an object of schemas");
    CHECK_BAD("{\"maxLength\":-1}", "/maxLength: must be a non-negative integer");
    CHECK_BAD("{\"maxLength\":\"3\"}", "/maxLength: must be a non-negative integer");
    CHECK_BAD("{\"minItems\":1.5}", "/minItems: must be a non-negative integer");
    CHECK_BAD("{\"minLength\":null}", "/minLength: must be a non-negative integer");
    CHECK_BAD("{\"pattern\":\"(\"}", "/pattern: does not compile: missing closing parenthesis at offset 1");
    CHECK_BAD("{\"pattern\":5}", "/pattern: must be a string");
    CHECK_BAD("{\"enum\":[]}", "/enum: must be a non-empty array");
    CHECK_BAD("{\"enum\":\"a\"}", "/enum: must be a non-empty array");
    CHECK_BAD("{\"enum\":[1,{}]}", "/enum/1: must be a string, number, boolean or null");
    CHECK_BAD("{\"const\":[1]}", "/const: must be a string, number, boolean or null");
    CHECK_BAD("{\"required\":\"a\"}", "/required: must be an array of property names");
    CHECK_BAD("{\"required\":[\"a\",1]}", "/required/1: must be a string");
    CHECK_BAD("{\"properties\":{\"a\":{}},\"required\":[\"b\"],\"additionalProperties\":false}",
              "/required/0: names b, which is not in properties");
    CHECK_BAD("{\"x-premium\":\"gold\"}", "/x-premium: must be \"premium\" or \"pro\"");
    CHECK_BAD("{\"x-premium\":true}", "/x-premium: must be \"premium\" or \"pro\"");
    CHECK_BAD("{\"type\":\"str\"}", "/type: must be one of string, integer, number, boolean, object, array, "
                                    "null, or a non-empty array of them");
    CHECK_BAD("{\"type\":[]}", "/type: must be one of string, integer, number, boolean, object, array, null, "
                               "or a non-empty array of them");
    CHECK_BAD("{\"type\":[\"string\",\"string\"]}", "/type: lists string twice");
    CHECK_BAD("{\"additionalProperties\":{}}", "/additionalProperties: must be true or false");
    CHECK_BAD("{\"uniqueItems\":1}", "/uniqueItems: must be true or false");
    CHECK_BAD("{\"snowflake\":\"yes\"}", "/snowflake: must be true or false");
    CHECK_BAD("{\"format\":\"email\"}",
              "/format: must be one of snowflake, role, channel, user, color, url, duration");
    CHECK_BAD("{\"items\":[{}]}", "/items: must be a schema (an object)");
    CHECK_BAD("{\"items\":{\"if\":{}}}", "/items/if: is not a supported keyword");
    CHECK_BAD("{\"minimum\":\"1\"}", "/minimum: must be a number");
    CHECK_BAD("{\"exclusiveMaximum\":true}", "/exclusiveMaximum: must be a number");
    CHECK_BAD("{\"title\":1}", "/title: must be a string");
    CHECK_BAD("{\"examples\":1}", "/examples: must be an array");
    CHECK_BAD("{\"x-order\":\"1\"}", "/x-order: must be an integer");
    CHECK_BAD("{\"readOnly\":\"no\"}", "/readOnly: must be true or false");
    CHECK_BAD("{\"type\":\"integer\",\"default\":\"5\"}", "/default: must be an integer");
    CHECK_BAD(
        "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"array\",\"items\":{\"type\":\"string\"},"
        "\"default\":[1]}}}",
        "/properties/a/default: /0 must be a string");

    /* 33 levels of subschemas */
    for (int i = 0; i < 33; i++)
        strcat(deep, "{\"items\":");
    strcat(deep, "{}");
    for (int i = 0; i < 33; i++)
        strcat(deep, "}");
    schema = parse(deep);
    assert_int_equal(gh_jschema_check_schema(schema, small, sizeof small), GH_EINVAL);
    assert_string_equal(small, "/items/i..."); /* a short buffer: cut, marked */
    assert_int_equal(gh_jschema_check_schema(schema, NULL, 0), GH_EINVAL);
    json_object_put(schema);

    assert_int_equal(gh_jschema_check_schema(NULL, small, sizeof small), GH_EINVAL);
    assert_string_equal(small, "(root): ...");

    /* validate refuses a bad schema as the server's fault, without crashing */
    schema = parse("{\"properties\":{\"a\":{\"oneOf\":[{\"type\":\"string\"}]}}}");
    doc = parse("{\"a\":\"x\"}");
    assert_int_equal(gh_jschema_validate(schema, doc, NULL, NULL, &res), GH_ECONFIG);
    assert_int_equal(res.n_errors, 1);
    assert_string_equal(res.errors[0].path, "");
    assert_string_equal(
        res.errors[0].message,
        "could not be checked: invalid schema (/properties/a/oneOf: is not a supported keyword)");
    json_object_put(doc);
    json_object_put(schema);
}

/* ---- the real schemas ------------------------------------------------------------------- */

static void test_real_schemas(void **state)
{
    json_object *core = load_json("features/core/schema.json");
    json_object *utility = load_json("features/utility/schema.json");
    json_object *doc;
    struct gh_jschema_result res;
    char err[256];
    glob_t g;

    (void)state;
    assert_int_equal(gh_jschema_check_schema(core, err, sizeof err), GH_OK);
    assert_int_equal(gh_jschema_check_schema(utility, err, sizeof err), GH_OK);

    doc = parse("{}");
    assert_int_equal(gh_jschema_validate(core, doc, NULL, NULL, &res), GH_OK);
    assert_int_equal(gh_jschema_validate(utility, doc, NULL, NULL, &res), GH_OK);
    /* utility's effective settings: enabled by default */
    assert_int_equal(gh_jschema_apply_defaults(utility, doc), GH_OK);
    assert_string_equal(json_object_to_json_string_ext(doc, JSON_C_TO_STRING_PLAIN), "{\"enabled\":true}");
    json_object_put(doc);

    doc = parse("{\"alert_channel_id\":\"123456789012345678\"}");
    assert_int_equal(gh_jschema_validate(core, doc, NULL, NULL, &res), GH_OK);
    json_object_put(doc);
    doc = parse("{\"alert_channel_id\":\"general\",\"colour\":1}");
    assert_int_equal(gh_jschema_validate(core, doc, NULL, NULL, &res), GH_EINVAL);
    assert_int_equal(res.n_errors, 2);
    assert_string_equal(res.errors[0].path, "/alert_channel_id");
    assert_string_equal(res.errors[0].message, "must be a Discord id (snowflake)");
    assert_string_equal(res.errors[1].path, "/colour");
    assert_string_equal(res.errors[1].message, "is not an allowed property");
    json_object_put(doc);
    doc = parse("{\"alert_channel_id\":123456789012345678}");
    assert_int_equal(gh_jschema_validate(core, doc, NULL, NULL, &res), GH_EINVAL);
    assert_string_equal(res.errors[0].message, "must be a string");
    json_object_put(doc);

    doc = parse("{\"enabled\":false}");
    assert_int_equal(gh_jschema_validate(utility, doc, NULL, NULL, &res), GH_OK);
    assert_int_equal(gh_jschema_premium_needed(utility, doc, &res), 0);
    json_object_put(doc);
    doc = parse("{\"enabled\":\"no\"}");
    assert_int_equal(gh_jschema_validate(utility, doc, NULL, NULL, &res), GH_EINVAL);
    assert_int_equal(res.n_errors, 1);
    assert_string_equal(res.errors[0].path, "/enabled");
    assert_string_equal(res.errors[0].message, "must be a boolean");
    json_object_put(doc);
    doc = parse("[]");
    assert_int_equal(gh_jschema_validate(utility, doc, NULL, NULL, &res), GH_EINVAL);
    assert_string_equal(res.errors[0].path, "");
    assert_string_equal(res.errors[0].message, "must be an object");
    json_object_put(doc);
    json_object_put(core);
    json_object_put(utility);

    /* every feature's schema, including ones added later, passes the checker */
    assert_int_equal(glob("features/*/schema.json", 0, NULL, &g), 0);
    assert_true(g.gl_pathc >= 2);
    for (size_t i = 0; i < g.gl_pathc; i++) {
        json_object *s = load_json(g.gl_pathv[i]);
        if (gh_jschema_check_schema(s, err, sizeof err) != GH_OK)
            fail_msg("%s: %s", g.gl_pathv[i], err);
        json_object_put(s);
    }
    globfree(&g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_type),
        cmocka_unit_test(test_object_keywords),
        cmocka_unit_test(test_enum_const),
        cmocka_unit_test(test_numbers),
        cmocka_unit_test(test_string_lengths_utf8),
        cmocka_unit_test(test_pattern),
        cmocka_unit_test(test_arrays),
        cmocka_unit_test(test_nested_pointers),
        cmocka_unit_test(test_error_cap),
        cmocka_unit_test(test_depth_limit),
        cmocka_unit_test(test_long_path_truncated),
        cmocka_unit_test(test_format_snowflake),
        cmocka_unit_test(test_format_color_url),
        cmocka_unit_test(test_format_duration),
        cmocka_unit_test(test_ref_hook),
        cmocka_unit_test(test_premium_needed),
        cmocka_unit_test(test_apply_defaults),
        cmocka_unit_test(test_check_schema),
        cmocka_unit_test(test_real_schemas),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
