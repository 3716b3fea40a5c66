/* test_respond.c - interaction responses, allowed_mentions, truncation and
 * markdown escaping. Bodies are parsed back and checked field by field. */
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
#include "core/str.h"
#include "discord/respond.h"

#define ELLIPSIS "\xe2\x80\xa6"
#define ZWSP "\xe2\x80\x8b"

static json_object *parsed(const struct gh_buf *b)
{
    json_object *o = json_tokener_parse(gh_buf_cstr(b));
    assert_non_null(o);
    return o;
}

static json_object *at(json_object *o, const char *path)
{
    char key[64];
    const char *p = path;

    while (o != NULL && *p != '\0') {
        size_t n = strcspn(p, ".");
        snprintf(key, sizeof(key), "%.*s", (int)n, p);
        if (!json_object_object_get_ex(o, key, &o))
            return NULL;
        p += n;
        if (*p == '.')
            p++;
    }
    return o;
}

static void assert_no_mentions(json_object *data)
{
    json_object *parse = at(data, "allowed_mentions.parse");
    assert_non_null(parse);
    assert_true(json_object_is_type(parse, json_type_array));
    assert_int_equal(json_object_array_length(parse), 0);
}

/* Code points of a UTF-8 string. */
static size_t chars(const char *s)
{
    size_t n = 0;
    for (; *s != '\0'; s++)
        if (((unsigned char)*s & 0xC0) != 0x80)
            n++;
    return n;
}

static void test_pong_and_deferred(void **state)
{
    (void)state;
    struct gh_buf b;
    json_object *o;

    gh_buf_init(&b, 4096);
    assert_int_equal(gh_resp_pong(&b), GH_OK);
    assert_string_equal(gh_buf_cstr(&b), "{\"type\":1}");

    assert_int_equal(gh_resp_deferred(&b, 1), GH_OK);
    o = parsed(&b);
    assert_int_equal(json_object_get_int(at(o, "type")), 5);
    assert_int_equal(json_object_get_int(at(o, "data.flags")), 64);
    json_object_put(o);

    assert_int_equal(gh_resp_deferred(&b, 0), GH_OK);
    o = parsed(&b);
    assert_int_equal(json_object_get_int(at(o, "type")), 5);
    assert_null(at(o, "data.flags"));
    json_object_put(o);

    assert_int_equal(gh_resp_deferred_update(&b), GH_OK);
    assert_string_equal(gh_buf_cstr(&b), "{\"type\":6}");
    gh_buf_cleanup(&b);
}

static void test_message(void **state)
{
    (void)state;
    struct gh_buf b;
    json_object *o;

    gh_buf_init(&b, 4096);
    assert_int_equal(gh_resp_message(&b, "hello @everyone", 1), GH_OK);
    o = parsed(&b);
    assert_int_equal(json_object_get_int(at(o, "type")), 4);
    assert_string_equal(json_object_get_string(at(o, "data.content")), "hello @everyone");
    assert_int_equal(json_object_get_int(at(o, "data.flags")), GH_MSG_EPHEMERAL);
    assert_no_mentions(at(o, "data"));
    json_object_put(o);

    assert_int_equal(gh_resp_message(&b, "public", 0), GH_OK);
    o = parsed(&b);
    assert_null(at(o, "data.flags"));
    assert_no_mentions(at(o, "data"));
    json_object_put(o);

    assert_int_equal(gh_resp_update(&b, "edited"), GH_OK);
    o = parsed(&b);
    assert_int_equal(json_object_get_int(at(o, "type")), 7);
    assert_string_equal(json_object_get_string(at(o, "data.content")), "edited");
    assert_no_mentions(at(o, "data"));
    json_object_put(o);
    gh_buf_cleanup(&b);
}

static void test_buffer_cap(void **state)
{
    (void)state;
    struct gh_buf b;

    gh_buf_init(&b, 32);
    assert_int_equal(gh_resp_message(&b, "this will not fit in thirty-two bytes", 0), GH_ETOOBIG);
    assert_int_equal(b.len, 0);
    /* replacing, not appending */
    assert_int_equal(gh_resp_pong(&b), GH_OK);
    assert_int_equal(gh_resp_pong(&b), GH_OK);
    assert_string_equal(gh_buf_cstr(&b), "{\"type\":1}");
    gh_buf_cleanup(&b);
}

static void test_truncation(void **state)
{
    (void)state;
    struct gh_buf b;
    json_object *o;
    char *text = malloc(3 * 2100 + 1);
    const char *content;
    size_t o_len = 0;

    assert_non_null(text);
    /* 2100 chars of a 3-byte character: cut to 1999 + the ellipsis */
    for (int i = 0; i < 2100; i++) {
        memcpy(text + o_len, "\xe4\xb8\x96", 3);
        o_len += 3;
    }
    text[o_len] = '\0';
    gh_buf_init(&b, 64 * 1024);
    assert_int_equal(gh_resp_message(&b, text, 0), GH_OK);
    o = parsed(&b);
    content = json_object_get_string(at(o, "data.content"));
    assert_int_equal(chars(content), 2000);
    assert_int_equal(strlen(content), 1999 * 3 + 3);
    assert_memory_equal(content + strlen(content) - 3, ELLIPSIS, 3);
    json_object_put(o);

    /* exactly 2000 ASCII: untouched */
    memset(text, 'a', 2000);
    text[2000] = '\0';
    assert_int_equal(gh_resp_message(&b, text, 0), GH_OK);
    o = parsed(&b);
    assert_int_equal(strlen(json_object_get_string(at(o, "data.content"))), 2000);
    json_object_put(o);

    /* 2001 ASCII: 1999 + ellipsis */
    memset(text, 'a', 2001);
    text[2001] = '\0';
    assert_int_equal(gh_resp_message(&b, text, 0), GH_OK);
    o = parsed(&b);
    content = json_object_get_string(at(o, "data.content"));
    assert_int_equal(chars(content), 2000);
    assert_memory_equal(content + 1999, ELLIPSIS, 3);
    json_object_put(o);
    gh_buf_cleanup(&b);
    free(text);
}

static void test_with_message_and_msg_new(void **state)
{
    (void)state;
    struct gh_buf b;
    json_object *embeds = json_object_new_array();
    json_object *embed = json_object_new_object();
    json_object *msg, *o;

    json_object_object_add(embed, "title", json_object_new_string("Case 4"));
    json_object_array_add(embeds, embed);
    msg = gh_msg_new("content", embeds, NULL, GH_MSG_SUPPRESS_EMBEDS);
    assert_non_null(msg);
    assert_no_mentions(msg);
    assert_int_equal(json_object_get_int(at(msg, "flags")), GH_MSG_SUPPRESS_EMBEDS);
    gh_buf_init(&b, 4096);
    assert_int_equal(gh_resp_with_message(&b, GH_CB_MESSAGE, msg), GH_OK);
    o = parsed(&b);
    assert_int_equal(json_object_get_int(at(o, "type")), 4);
    assert_string_equal(json_object_get_string(json_object_object_get(
                            json_object_array_get_idx(at(o, "data.embeds"), 0), "title")),
                        "Case 4");
    assert_no_mentions(at(o, "data"));
    json_object_put(o);
    json_object_put(msg);

    /* a caller's message without allowed_mentions gets it; the caller's object is untouched */
    msg = json_object_new_object();
    json_object_object_add(msg, "content", json_object_new_string("x"));
    assert_int_equal(gh_resp_with_message(&b, GH_CB_UPDATE_MESSAGE, msg), GH_OK);
    o = parsed(&b);
    assert_int_equal(json_object_get_int(at(o, "type")), 7);
    assert_no_mentions(at(o, "data"));
    assert_null(at(msg, "allowed_mentions"));
    json_object_put(o);
    assert_int_equal(gh_resp_with_message(&b, GH_CB_PONG, msg), GH_EINVAL);
    assert_int_equal(gh_resp_with_message(&b, GH_CB_MESSAGE, NULL), GH_EINVAL);
    json_object_put(msg);
    json_object_put(embeds);
    gh_buf_cleanup(&b);
}

static void test_modal(void **state)
{
    (void)state;
    struct gh_buf b;
    json_object *comps = json_object_new_array();
    json_object *o;
    char long_title[64];

    json_object_array_add(comps,
                          json_tokener_parse("{\"type\":18,\"label\":\"Reason\",\"component\":{\"type\":4,"
                                             "\"custom_id\":\"reason\",\"style\":2}}"));
    gh_buf_init(&b, 4096);
    assert_int_equal(gh_resp_modal(&b, "report:1", "Report a message", comps), GH_OK);
    o = parsed(&b);
    assert_int_equal(json_object_get_int(at(o, "type")), 9);
    assert_string_equal(json_object_get_string(at(o, "data.custom_id")), "report:1");
    assert_string_equal(json_object_get_string(at(o, "data.title")), "Report a message");
    assert_int_equal(json_object_array_length(at(o, "data.components")), 1);
    json_object_put(o);

    memset(long_title, 't', 46);
    long_title[46] = '\0';
    assert_int_equal(gh_resp_modal(&b, "x", long_title, comps), GH_EINVAL);
    assert_int_equal(gh_resp_modal(&b, "", "t", comps), GH_EINVAL);
    assert_int_equal(gh_resp_modal(&b, "x", "t", NULL), GH_EINVAL);
    json_object_put(comps);
    comps = json_object_new_array();
    assert_int_equal(gh_resp_modal(&b, "x", "t", comps), GH_EINVAL); /* no components */
    json_object_put(comps);
    gh_buf_cleanup(&b);
}

static void test_autocomplete_caps_at_25(void **state)
{
    (void)state;
    struct gh_buf b;
    json_object *choices = json_object_new_array();
    json_object *o;

    for (int i = 0; i < 30; i++) {
        json_object *c = json_object_new_object();
        char name[16];
        snprintf(name, sizeof(name), "c%d", i);
        json_object_object_add(c, "name", json_object_new_string(name));
        json_object_object_add(c, "value", json_object_new_int(i));
        json_object_array_add(choices, c);
    }
    gh_buf_init(&b, 8192);
    assert_int_equal(gh_resp_autocomplete(&b, choices), GH_OK);
    o = parsed(&b);
    assert_int_equal(json_object_get_int(at(o, "type")), 8);
    assert_int_equal(json_object_array_length(at(o, "data.choices")), 25);
    assert_int_equal(json_object_get_int(json_object_object_get(
                         json_object_array_get_idx(at(o, "data.choices"), 24), "value")),
                     24);
    json_object_put(o);
    assert_int_equal(json_object_array_length(choices), 30); /* borrowed, untouched */

    assert_int_equal(gh_resp_autocomplete(&b, NULL), GH_OK);
    assert_string_equal(gh_buf_cstr(&b), "{\"type\":8,\"data\":{\"choices\":[]}}");
    json_object_put(choices);
    gh_buf_cleanup(&b);
}

static void test_escape_markdown(void **state)
{
    (void)state;
    char out[256];

    assert_string_equal(gh_escape_markdown("**bold** _it_ ~~s~~ `c` ||sp|| \\", out, sizeof(out)),
                        "\\*\\*bold\\*\\* \\_it\\_ \\~\\~s\\~\\~ \\`c\\` \\|\\|sp\\|\\| \\\\");
    assert_string_equal(
        gh_escape_markdown("# head\n> quote\n- item\na-b > c #d\n  ## x\n-# sub", out, sizeof(out)),
        "\\# head\n\\> quote\n\\- item\na-b > c #d\n  \\## x\n\\-# sub");
    assert_string_equal(gh_escape_markdown("hi @everyone and @here", out, sizeof(out)),
                        "hi @" ZWSP "everyone and @" ZWSP "here");
    assert_string_equal(gh_escape_markdown("<@123> <@!5> <@&456> <#789> <t:1:R>", out, sizeof(out)),
                        "<" ZWSP "@123> <" ZWSP "@!5> <" ZWSP "@&456> <" ZWSP "#789> <t:1:R>");
    assert_string_equal(gh_escape_markdown("plain caf\xc3\xa9", out, sizeof(out)), "plain caf\xc3\xa9");
    /* invalid UTF-8 becomes U+FFFD */
    assert_string_equal(gh_escape_markdown("a\xffz", out, sizeof(out)), "a\xef\xbf\xbdz");
    assert_string_equal(gh_escape_markdown(NULL, out, sizeof(out)), "");
}

static void test_escape_truncation(void **state)
{
    (void)state;
    char out[8];

    /* "ab" + a 3-byte char + "d": 6 bytes would fit "ab\xe4\xb8\x96d" (6) + NUL = 7 */
    assert_string_equal(gh_escape_markdown("ab\xe4\xb8\x96"
                                           "de",
                                           out, 7),
                        "ab\xe4\xb8\x96"
                        "d");
    /* no room for the whole 3-byte char: stop before it */
    assert_string_equal(gh_escape_markdown("abcd\xe4\xb8\x96", out, 7), "abcd");
    /* an escape pair is never split */
    assert_string_equal(gh_escape_markdown("abcde*", out, 7), "abcde");
    /* a mention guard is never split */
    assert_string_equal(gh_escape_markdown("abc@here", out, 7), "abc");
    assert_string_equal(gh_escape_markdown("x", out, 1), "");
}

#define FFFD "\xef\xbf\xbd"

/* Every kind of broken UTF-8 becomes U+FFFD per byte, never copied through. */
static void test_escape_invalid_utf8(void **state)
{
    char out[128];

    (void)state;
    /* Valid 2-, 3- and 4-byte sequences pass unchanged. */
    assert_string_equal(gh_escape_markdown("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", out, sizeof(out)),
                        "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
    assert_string_equal(gh_escape_markdown("\xc0\xaf", out, sizeof(out)), FFFD FFFD); /* overlong '/' */
    assert_string_equal(gh_escape_markdown("\xc3(", out, sizeof(out)), FFFD "(");     /* no continuation */
    assert_string_equal(gh_escape_markdown("\xe0\x80\xaf", out, sizeof(out)), FFFD FFFD FFFD); /* overlong */
    assert_string_equal(gh_escape_markdown("\xed\xa0\x80", out, sizeof(out)), FFFD FFFD FFFD); /* surrogate */
    assert_string_equal(gh_escape_markdown("\xe2\x82", out, sizeof(out)), FFFD FFFD);          /* cut short */
    assert_string_equal(gh_escape_markdown("\xf0\x80\x80\xaf", out, sizeof(out)), FFFD FFFD FFFD FFFD);
    assert_string_equal(gh_escape_markdown("\xf4\x90\x80\x80", out, sizeof(out)), FFFD FFFD FFFD FFFD);
    assert_string_equal(gh_escape_markdown("\xf0\x9f\x98", out, sizeof(out)), FFFD FFFD FFFD);
    assert_string_equal(gh_escape_markdown("\xf5\x80", out, sizeof(out)), FFFD FFFD);
    /* A replacement that does not fit is left out whole. */
    assert_string_equal(gh_escape_markdown("ab\xff", out, 5), "ab");
    /* Nothing to write into. */
    assert_null(gh_escape_markdown("x", NULL, 10));
    out[0] = 'z';
    assert_ptr_equal(gh_escape_markdown("x", out, 0), out);
    assert_int_equal(out[0], 'z');
}

/* Content is capped by code points even when it holds broken bytes. */
static void test_content_cap_with_invalid_bytes(void **state)
{
    struct gh_buf b;
    json_object *o;
    char text[2100];

    (void)state;
    memset(text, 'a', sizeof(text));
    text[0] = '\xff'; /* one invalid byte counts as one character */
    text[2001] = '\0';
    gh_buf_init(&b, 16384);
    assert_int_equal(gh_resp_message(&b, text, 0), GH_OK);
    o = parsed(&b);
    /* 2001 characters: cut to 1999 plus the ellipsis, the invalid byte counted as one. */
    assert_int_equal(chars(json_object_get_string(at(o, "data.content"))), 2000);
    assert_int_equal(json_object_get_string_len(at(o, "data.content")), 1 + 1998 + 3);
    assert_string_equal(json_object_get_string(at(o, "data.content")) + 1 + 1998, ELLIPSIS);
    json_object_put(o);
    text[2000] = '\0'; /* exactly 2000: kept whole */
    assert_int_equal(gh_resp_update(&b, text + 1), GH_OK);
    o = parsed(&b);
    assert_int_equal(json_object_get_string_len(at(o, "data.content")), 1999);
    json_object_put(o);
    gh_buf_cleanup(&b);
}

static void test_response_argument_checks(void **state)
{
    struct gh_buf b;
    json_object *comps = json_object_new_array(), *msg, *o;
    char long_id[120];
    int i;

    (void)state;
    gh_buf_init(&b, 8192);
    assert_int_equal(gh_resp_pong(NULL), GH_EINVAL);
    assert_int_equal(gh_resp_message(&b, NULL, 0), GH_OK); /* NULL content: empty message */
    o = parsed(&b);
    assert_string_equal(json_object_get_string(at(o, "data.content")), "");
    json_object_put(o);
    assert_int_equal(gh_resp_update(&b, NULL), GH_OK);
    /* A message that is not an object. */
    msg = json_object_new_array();
    assert_int_equal(gh_resp_with_message(&b, GH_CB_MESSAGE, msg), GH_EINVAL);
    json_object_put(msg);
    /* The caller's allowed_mentions is kept, and a null field passes through. */
    msg = json_tokener_parse(
        "{\"content\":\"hi\",\"allowed_mentions\":{\"parse\":[\"users\"]},\"embeds\":null}");
    assert_int_equal(gh_resp_with_message(&b, GH_CB_MESSAGE, msg), GH_OK);
    o = parsed(&b);
    assert_string_equal(
        json_object_get_string(json_object_array_get_idx(at(o, "data.allowed_mentions.parse"), 0)), "users");
    assert_true(json_object_object_get_ex(at(o, "data"), "embeds", NULL));
    json_object_put(o);
    json_object_put(msg);
    /* Modal limits: custom_id up to 100 characters, 1..5 components, an array. */
    json_object_array_add(comps, json_tokener_parse("{\"type\":1}"));
    memset(long_id, 'i', sizeof(long_id));
    long_id[101] = '\0';
    assert_int_equal(gh_resp_modal(&b, long_id, "t", comps), GH_EINVAL);
    long_id[100] = '\0';
    assert_int_equal(gh_resp_modal(&b, long_id, "t", comps), GH_OK);
    assert_int_equal(gh_resp_modal(&b, NULL, "t", comps), GH_EINVAL);
    assert_int_equal(gh_resp_modal(&b, "x", NULL, comps), GH_EINVAL);
    assert_int_equal(gh_resp_modal(&b, "x", "", comps), GH_EINVAL);
    for (i = 0; i < 5; i++)
        json_object_array_add(comps, json_tokener_parse("{\"type\":1}"));
    assert_int_equal(gh_resp_modal(&b, "x", "t", comps), GH_EINVAL); /* 6 components */
    o = json_object_new_object();
    assert_int_equal(gh_resp_modal(&b, "x", "t", o), GH_EINVAL);
    assert_int_equal(gh_resp_autocomplete(&b, o), GH_EINVAL);
    json_object_put(o);
    json_object_put(comps);
    gh_buf_cleanup(&b);
}

static void test_msg_nonce(void **state)
{
    json_object *a = json_object_new_object(), *b = json_object_new_object(), *c = json_object_new_object(),
                *v;
    const char *na, *nb, *nc;

    (void)state;
    gh_msg_set_nonce(a, "levels:up:1:2:5");
    gh_msg_set_nonce(b, "levels:up:1:2:5");
    gh_msg_set_nonce(c, "levels:up:1:2:6");
    na = gh_json_get_str(a, "nonce");
    nb = gh_json_get_str(b, "nonce");
    nc = gh_json_get_str(c, "nonce");
    assert_non_null(na);
    assert_true(strlen(na) > 0 && strlen(na) <= 25); /* Discord's limit */
    assert_string_equal(na, nb);                     /* the same job, the same nonce */
    assert_string_not_equal(na, nc);
    /* FNV-1a 64 of "a" is af63dc4c8601ec8c */
    gh_msg_set_nonce(c, "a");
    assert_string_equal(gh_json_get_str(c, "nonce"), "jaf63dc4c8601ec8c");
    assert_true(json_object_object_get_ex(a, "enforce_nonce", &v));
    assert_true(json_object_is_type(v, json_type_boolean) && json_object_get_boolean(v));
    gh_msg_set_nonce(NULL, "x"); /* harmless */
    json_object_put(a);
    json_object_put(b);
    json_object_put(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pong_and_deferred),
        cmocka_unit_test(test_message),
        cmocka_unit_test(test_buffer_cap),
        cmocka_unit_test(test_truncation),
        cmocka_unit_test(test_with_message_and_msg_new),
        cmocka_unit_test(test_modal),
        cmocka_unit_test(test_autocomplete_caps_at_25),
        cmocka_unit_test(test_escape_markdown),
        cmocka_unit_test(test_escape_truncation),
        cmocka_unit_test(test_escape_invalid_utf8),
        cmocka_unit_test(test_content_cap_with_invalid_bytes),
        cmocka_unit_test(test_response_argument_checks),
        cmocka_unit_test(test_msg_nonce),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
