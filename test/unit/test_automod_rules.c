/* test_automod_rules.c - AutoMod's pure rule matrix (features/automod/rules.c):
 * each rule matches and does not match (obfuscated invites, links with allow
 * and deny lists and subdomains, words with look-alikes, regexes and their
 * match limit, capitals, mentions, rate and repeat thresholds), each
 * exemption (global role and channel, per-rule role and channel, managers),
 * log-only (a hit, no action), each action, the settings parse (defaults,
 * the premium lists and the free tier), and the schema (identical to
 * schema.json, a valid schema, premium lists flagged). */
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
#include "features/automod/automod.h"
#include "web/jschema.h"

static struct gh_am_settings *settings(const char *json)
{
    json_object *doc = json_tokener_parse(json);
    assert_non_null(doc);
    struct gh_am_settings *s = gh_am_settings_parse(doc, 42, NULL);
    json_object_put(doc);
    assert_non_null(s);
    return s;
}

static struct gh_am_msg msg(const char *text)
{
    struct gh_am_msg m;
    memset(&m, 0, sizeof(m));
    m.guild_id = 42;
    m.channel_id = 100;
    m.message_id = 200;
    m.author_id = 300;
    m.content = text;
    m.len = strlen(text);
    return m;
}

static int inv(const char *t)
{
    char matched[GH_AM_MATCHED_MAX + 1];
    return gh_am_match_invite(t, strlen(t), matched, sizeof(matched));
}

static void invites(void **state)
{
    (void)state;
    char matched[GH_AM_MATCHED_MAX + 1];
    assert_true(inv("join discord.gg/abcdef now"));
    assert_true(inv("https://discord.com/invite/abcdef"));
    assert_true(inv("http://discordapp.com/invite/xyz12"));
    assert_true(inv("dsc.gg/mycool"));
    assert_true(inv("DISCORD.GG/ABCDEF"));
    assert_true(inv("discord . gg / abcdef"));
    assert_true(inv("discord(dot)gg/abcdef"));
    assert_true(inv("discord[.]gg/abcdef"));
    assert_true(inv("disc\xe2\x80\x8bord.gg/abcdef"));            /* zero-width space */
    assert_true(inv("discord\xef\xbc\x8egg\xef\xbc\x8f" "abcdef")); /* fullwidth dot and slash */
    assert_true(inv("hxxps://discord.gg/abcdef"));
    assert_true(inv("discord gg/abcdef"));
    assert_true(inv("d i s c o r d . g g / a b c d e f"));
    assert_int_equal(gh_am_match_invite("see discord.gg/abcd ok", 22, matched, sizeof(matched)), 1);
    assert_string_equal(matched, "discord.gg/abcd");

    assert_false(inv("I love discord"));
    assert_false(inv("discord.gg"));
    assert_false(inv("discord.gg/"));
    assert_false(inv("notdiscord.gg/abcdef"));
    assert_false(inv("https://example.com/invite/abc"));
    assert_false(inv(""));
}

static int link(const char *t, const char *const *domains, int n, int allow)
{
    char matched[GH_AM_MATCHED_MAX + 1];
    return gh_am_match_links(t, strlen(t), (char *const *)domains, n, allow, matched, sizeof(matched));
}

static void links(void **state)
{
    (void)state;
    static const char *const deny[] = {"evil.com", "bad.org"};
    static const char *const allow[] = {"youtube.com", "github.com"};

    /* deny list: the domain and its subdomains */
    assert_true(link("see https://evil.com/x", deny, 2, 0));
    assert_true(link("see http://www.evil.com", deny, 2, 0));
    assert_true(link("see https://a.b.evil.com:8443/path?q=1", deny, 2, 0));
    assert_true(link("hxxps://bad[.]org", deny, 2, 0));
    assert_true(link("www.evil.com", deny, 2, 0));
    assert_true(link("https://user@evil.com/", deny, 2, 0));
    assert_false(link("https://notevil.com", deny, 2, 0));
    assert_false(link("https://evil.com.example.net", deny, 2, 0));
    assert_false(link("evil dot com is text", deny, 2, 0));
    assert_false(link("https://good.com", deny, 2, 0));
    assert_false(link("https://evil.com", NULL, 0, 0)); /* an empty deny list denies nothing */

    /* allow list: anything else is a hit */
    assert_false(link("https://youtube.com/watch?v=1", allow, 2, 1));
    assert_false(link("https://www.youtube.com/watch?v=1", allow, 2, 1));
    assert_false(link("https://gist.github.com/x", allow, 2, 1));
    assert_true(link("https://youtube.com.evil.net/", allow, 2, 1));
    assert_true(link("go to https://example.com", allow, 2, 1));
    assert_false(link("no links here at all", allow, 2, 1));
}

static int word(const char *t, const char *const *w, int n)
{
    char *norm[8];
    char matched[GH_AM_MATCHED_MAX + 1];
    int r;
    for (int i = 0; i < n; i++) {
        char buf[128];
        gh_am_norm_word(w[i], strlen(w[i]), buf, sizeof(buf));
        norm[i] = strdup(buf);
    }
    r = gh_am_match_words(t, strlen(t), norm, n, matched, sizeof(matched));
    for (int i = 0; i < n; i++)
        free(norm[i]);
    return r;
}

static void words(void **state)
{
    (void)state;
    static const char *const w[] = {"badword", "ass", "free nitro"};
    char out[64];

    assert_int_equal(gh_am_norm_word("B4dW0rd", 7, out, sizeof(out)), 7);
    assert_string_equal(out, "badword");
    assert_true(word("this is a badword here", w, 3));
    assert_true(word("this is a BADWORD!", w, 3));
    assert_true(word("b4dw0rd", w, 3));
    assert_true(word("b a d w o r d", w, 3));
    assert_true(word("b.a.d.w.o.r.d", w, 3));
    assert_true(word("bad\xe2\x80\x8bword", w, 3)); /* zero-width inside */
    assert_true(word("you @ss", w, 3));
    assert_true(word("a$$", w, 3));
    assert_true(word("b\xc3\xa4" "dword", w, 3)); /* accent */
    assert_true(word("get FREE   nitro now", w, 3));
    assert_true(word("get fr33 n1tro", w, 3));

    assert_false(word("a classic assignment", w, 3)); /* whole words only */
    assert_false(word("badwords", w, 3));
    assert_false(word("nothing to see", w, 3));
    assert_false(word("free stuff", w, 3));
}

static int check(struct gh_am_settings *s, struct gh_am_msg *m, const struct gh_am_counters *c,
                 struct gh_am_hit *hits);

static void words_through_settings(void **state)
{
    (void)state;
    char json[16384];
    size_t k = 0;
    struct gh_am_hit hits[GH_AM_RULE_COUNT];
    struct gh_am_msg m;
    k += (size_t)snprintf(json + k, sizeof(json) - k, "{\"enabled\":true,\"words\":{\"enabled\":true,\"words\":[\"free nitro\",\"h3ck\"],\"premium_words\":[");
    for (int i = 0; i < 400; i++)
        k += (size_t)snprintf(json + k, sizeof(json) - k, "%s\"word%c%c\"", i ? "," : "", 'a' + i % 26, 'a' + i / 26);
    snprintf(json + k, sizeof(json) - k, "]}}");
    struct gh_am_settings *s = settings(json);
    assert_int_equal(s->n_words, 402);
    assert_int_equal(s->n_phrases, 1);
    m = msg("this has wordqb in it");
    assert_int_equal(check(s, &m, NULL, hits), 1);
    assert_string_equal(hits[0].matched, "wordqb");
    m = msg("what the HECK");
    assert_int_equal(check(s, &m, NULL, hits), 1);
    m = msg("get FREE  nitro");
    assert_int_equal(check(s, &m, NULL, hits), 1);
    assert_string_equal(hits[0].matched, "FREE  nitro");
    m = msg("wordzz wordq heckle");
    assert_int_equal(check(s, &m, NULL, hits), 0);
    gh_am_settings_apply_tier(s, 0, NULL); /* free: the premium words are gone from the index too */
    m = msg("this has wordqb in it");
    assert_int_equal(check(s, &m, NULL, hits), 0);
    m = msg("what the heck");
    assert_int_equal(check(s, &m, NULL, hits), 1);
    gh_am_settings_free(s);
}

static void regex_rule(void **state)
{
    (void)state;
    char err[200], matched[GH_AM_MATCHED_MAX + 1];
    struct gh_am_regex *re = gh_am_regex_new("buy\\s+cheap\\s+\\w+", err, sizeof(err));
    struct gh_am_regex *evil = gh_am_regex_new("^(a|a)*$", err, sizeof(err));
    char text[4096];

    assert_non_null(re);
    assert_int_equal(gh_am_match_regex(re, "Please BUY  cheap pills", 23, matched, sizeof(matched)), 1);
    assert_string_equal(matched, "BUY  cheap pills");
    assert_int_equal(gh_am_match_regex(re, "buy expensive", 13, matched, sizeof(matched)), 0);

    assert_null(gh_am_regex_new("(unclosed", err, sizeof(err)));
    assert_true(strlen(err) > 0);

    /* catastrophic backtracking: the match limit stops it, counted as no match */
    assert_non_null(evil);
    memset(text, 'a', 60);
    text[60] = 'b';
    text[61] = '\0';
    assert_int_equal(gh_am_match_regex(evil, text, 61, matched, sizeof(matched)), -1);
    gh_am_regex_free(re);
    gh_am_regex_free(evil);

    /* through the settings: overflow counted, no hit */
    struct gh_am_settings *s = settings("{\"enabled\":true,\"regex\":{\"enabled\":true,\"patterns\":"
                                        "[\"^(a|a)*$\",\"(unclosed\"]}}");
    struct gh_am_msg m = msg(text);
    struct gh_am_hit hits[GH_AM_RULE_COUNT];
    int overflow = 0;
    assert_int_equal(s->n_regex, 1); /* the one that does not compile is ignored */
    assert_int_equal(gh_am_check(s, &m, NULL, hits, GH_AM_RULE_COUNT, &overflow), 0);
    assert_int_equal(overflow, 1);
    gh_am_settings_free(s);
}

static void caps(void **state)
{
    (void)state;
    assert_true(gh_am_match_caps("THIS IS ALL CAPS SHOUTING", 25, 70, 10));
    assert_false(gh_am_match_caps("OK FINE", 7, 70, 10)); /* too short */
    assert_false(gh_am_match_caps("This Is Title Case Text", 23, 70, 10));
    assert_true(gh_am_match_caps("MOSTLY CAPS but not all", 23, 50, 10));
    assert_false(gh_am_match_caps("hello <@123456> https://EXAMPLE.COM/ABCDEFGHIJ", 47, 70, 5));
    assert_false(gh_am_match_caps("1234567890 !!!", 14, 70, 1));
}

static int check(struct gh_am_settings *s, struct gh_am_msg *m, const struct gh_am_counters *c,
                 struct gh_am_hit *hits)
{
    return gh_am_check(s, m, c, hits, GH_AM_RULE_COUNT, NULL);
}

static void mentions(void **state)
{
    (void)state;
    struct gh_am_settings *s = settings("{\"enabled\":true,\"mentions\":{\"enabled\":true,\"max_mentions\":3}}");
    struct gh_am_hit hits[GH_AM_RULE_COUNT];
    struct gh_am_msg m = msg("hello @everyone");
    assert_int_equal(check(s, &m, NULL, hits), 1);
    assert_int_equal(hits[0].rule, GH_AM_MENTIONS);
    m = msg("hi");
    m.mention_everyone = 1;
    assert_int_equal(check(s, &m, NULL, hits), 1);
    m = msg("hi all");
    m.n_mentions = 4;
    assert_int_equal(check(s, &m, NULL, hits), 1);
    m.n_mentions = 3;
    assert_int_equal(check(s, &m, NULL, hits), 0);
    gh_am_settings_free(s);
    s = settings("{\"enabled\":true,\"mentions\":{\"enabled\":true,\"everyone\":false,\"max_mentions\":0}}");
    m = msg("@here look");
    m.n_mentions = 50;
    assert_int_equal(check(s, &m, NULL, hits), 0);
    gh_am_settings_free(s);
}

static void rate_and_repeat(void **state)
{
    (void)state;
    struct gh_am_settings *s = settings("{\"enabled\":true,\"rate\":{\"enabled\":true,\"max_messages\":5},"
                                        "\"repeat\":{\"enabled\":true,\"max_repeats\":3}}");
    struct gh_am_hit hits[GH_AM_RULE_COUNT];
    struct gh_am_msg m = msg("hello");
    struct gh_am_counters c = {5, 2};
    assert_int_equal(check(s, &m, &c, hits), 0);
    c.rate_count = 6;
    assert_int_equal(check(s, &m, &c, hits), 1);
    assert_int_equal(hits[0].rule, GH_AM_RATE);
    c.rate_count = 1;
    c.repeat_count = 3;
    assert_int_equal(check(s, &m, &c, hits), 1);
    assert_int_equal(hits[0].rule, GH_AM_REPEAT);
    c.rate_count = -1; /* Redis down: skipped */
    c.repeat_count = -1;
    assert_int_equal(check(s, &m, &c, hits), 0);
    assert_int_equal(check(s, &m, NULL, hits), 0);
    m.is_edit = 1; /* an edit never counts as a new message */
    c.rate_count = 100;
    c.repeat_count = 10;
    assert_int_equal(check(s, &m, &c, hits), 0);
    gh_am_settings_free(s);

    /* the similarity hash */
    assert_true(gh_am_simhash("Buy now!!", 9) == gh_am_simhash("buy   NOW 123", 13));
    assert_true(gh_am_simhash("buy now", 7) != gh_am_simhash("buy later", 9));
    assert_true(gh_am_simhash("12345 !!!", 9) == 0);
}

#define ALL_RULES_ON                                                                                         \
    "\"invites\":{\"enabled\":true,\"actions\":[\"delete\",\"warn\"]},"                                      \
    "\"caps\":{\"enabled\":true,\"actions\":[\"timeout\"],\"timeout\":\"1h\",\"exempt_roles\":[\"555\"],"    \
    "\"exempt_channels\":[\"777\"]},"                                                                        \
    "\"words\":{\"enabled\":true,\"log_only\":true,\"actions\":[\"ban\"],\"words\":[\"spam\"]},"             \
    "\"links\":{\"enabled\":true,\"actions\":[\"kick\",\"log\"],\"domains\":[\"evil.com\"]}"

static void exemptions(void **state)
{
    (void)state;
    struct gh_am_settings *s = settings("{\"enabled\":true,\"exempt_roles\":[\"111\"],\"exempt_channels\":[\"222\"],"
                                        ALL_RULES_ON "}");
    struct gh_am_hit hits[GH_AM_RULE_COUNT];
    uint64_t roles[2] = {999, 111};
    const char *text = "JOIN DISCORD.GG/ABCDEF NOW PLEASE";
    struct gh_am_msg m = msg(text);

    assert_int_equal(check(s, &m, NULL, hits), 2); /* caps + invites */
    /* global channel */
    m.channel_id = 222;
    assert_int_equal(check(s, &m, NULL, hits), 0);
    /* global role */
    m = msg(text);
    m.roles = roles;
    m.n_roles = 2;
    assert_int_equal(check(s, &m, NULL, hits), 0);
    /* per-rule role: caps off, invites still on */
    roles[1] = 555;
    assert_int_equal(check(s, &m, NULL, hits), 1);
    assert_int_equal(hits[0].rule, GH_AM_INVITES);
    /* per-rule channel */
    m = msg(text);
    m.channel_id = 777;
    assert_int_equal(check(s, &m, NULL, hits), 1);
    assert_int_equal(hits[0].rule, GH_AM_INVITES);
    /* managers: roles found with Administrator / Manage Server */
    m = msg(text);
    roles[1] = 888;
    m.roles = roles;
    m.n_roles = 2;
    s->manager_roles[0] = 888;
    s->n_manager_roles = 1;
    assert_int_equal(check(s, &m, NULL, hits), 0);
    s->exempt_managers = 0;
    assert_int_equal(check(s, &m, NULL, hits), 2);
    /* the guild owner (known from the guild cache) is never checked */
    s->owner_id = m.author_id;
    assert_int_equal(check(s, &m, NULL, hits), 0);
    s->owner_id = 0;
    /* the feature off: nothing */
    s->enabled = 0;
    assert_int_equal(check(s, &m, NULL, hits), 0);
    gh_am_settings_free(s);
}

static void actions_and_log_only(void **state)
{
    (void)state;
    struct gh_am_settings *s = settings("{\"enabled\":true," ALL_RULES_ON "}");
    struct gh_am_hit hits[GH_AM_RULE_COUNT];
    struct gh_am_msg m = msg("THIS IS SPAM AT HTTPS://EVIL.COM DISCORD.GG/ABCDEF");
    char text[80];
    int n = check(s, &m, NULL, hits);

    assert_int_equal(n, 4);
    assert_int_equal(hits[0].rule, GH_AM_CAPS);
    assert_int_equal(hits[0].actions, GH_AM_ACT_TIMEOUT);
    assert_int_equal(s->rule[GH_AM_CAPS].timeout_s, 3600);
    assert_int_equal(hits[1].rule, GH_AM_INVITES);
    assert_int_equal(hits[1].actions, GH_AM_ACT_DELETE | GH_AM_ACT_WARN);
    assert_int_equal(hits[2].rule, GH_AM_LINKS);
    assert_int_equal(hits[2].actions, GH_AM_ACT_KICK | GH_AM_ACT_LOG);
    assert_int_equal(hits[3].rule, GH_AM_WORDS);
    assert_true(hits[3].log_only);
    assert_int_equal(hits[3].actions, 0); /* log-only: a hit, no action */
    assert_string_equal(hits[3].matched, "SPAM");
    gh_am_actions_text(GH_AM_ACT_DELETE | GH_AM_ACT_WARN | GH_AM_ACT_BAN, text, sizeof(text));
    assert_string_equal(text, "delete,warn,ban");
    assert_int_equal(gh_am_action_bit("timeout"), GH_AM_ACT_TIMEOUT);
    assert_int_equal(gh_am_action_bit("nope"), 0);
    assert_int_equal(gh_am_rule_parse("regex"), GH_AM_REGEX);
    assert_int_equal(gh_am_rule_parse("nope"), -1);
    gh_am_settings_free(s);
}

static void parse_defaults_and_tier(void **state)
{
    (void)state;
    struct gh_am_settings *s = settings("{}");
    assert_false(s->enabled);
    assert_true(s->exempt_managers);
    for (int r = 0; r < GH_AM_RULE_COUNT; r++) {
        assert_false(s->rule[r].enabled);
        assert_int_equal(s->rule[r].actions, GH_AM_ACT_DELETE);
    }
    assert_int_equal(s->rate_max, 15);
    assert_int_equal(s->rate_window_s, 60);
    gh_am_settings_free(s);

    s = settings("{\"words\":{\"words\":[\"a1\",\"b\"],\"premium_words\":[\"c\",\"d\",\"e\"]},"
                 "\"regex\":{\"patterns\":[\"x\"],\"premium_patterns\":[\"y\",\"z\"]}}");
    assert_int_equal(s->n_words, 5);
    assert_int_equal(s->n_words_free, 2);
    assert_int_equal(s->n_regex, 3);
    gh_am_settings_apply_tier(s, 1, NULL);
    assert_int_equal(s->n_words, 5);
    gh_am_settings_apply_tier(s, 0, NULL); /* free: the premium lists are ignored at load */
    assert_int_equal(s->n_words, 2);
    assert_int_equal(s->n_regex, 1);
    gh_am_settings_free(s);
}

static void schema(void **state)
{
    (void)state;
    FILE *f = fopen("features/automod/schema.json", "rb");
    char buf[65536], err[256];
    size_t n;
    json_object *sc, *doc;
    struct gh_jschema_result res;

    assert_non_null(f);
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    assert_string_equal(buf, gh_am_schema);
    sc = json_tokener_parse(gh_am_schema);
    assert_non_null(sc);
    assert_int_equal(gh_jschema_check_schema(sc, err, sizeof(err)), GH_OK);
    doc = json_tokener_parse("{\"enabled\":true,\"words\":{\"enabled\":true,\"words\":[\"x\"],"
                             "\"premium_words\":[]},\"caps\":{\"actions\":[\"delete\",\"warn\"]}}");
    assert_int_equal(gh_jschema_validate(sc, doc, NULL, NULL, &res), GH_OK);
    assert_int_equal(gh_jschema_premium_needed(sc, doc, &res), 0);
    json_object_put(doc);
    doc = json_tokener_parse("{\"words\":{\"premium_words\":[\"y\"]}}");
    assert_int_equal(gh_jschema_premium_needed(sc, doc, &res), 1);
    json_object_put(doc);
    doc = json_tokener_parse("{\"caps\":{\"actions\":[\"explode\"]}}");
    assert_int_equal(gh_jschema_validate(sc, doc, NULL, NULL, &res), GH_EINVAL);
    json_object_put(doc);
    doc = json_tokener_parse("{\"words\":{\"words\":[\"1\",\"2\",\"3\",\"4\",\"5\",\"6\",\"7\",\"8\",\"9\",\"10\","
                             "\"11\",\"12\",\"13\",\"14\",\"15\",\"16\",\"17\",\"18\",\"19\",\"20\",\"21\"]}}");
    assert_int_equal(gh_jschema_validate(sc, doc, NULL, NULL, &res), GH_EINVAL); /* free list: 20 */
    json_object_put(doc);
    json_object_put(sc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(invites),        cmocka_unit_test(links),
        cmocka_unit_test(words),          cmocka_unit_test(words_through_settings),
        cmocka_unit_test(regex_rule),
        cmocka_unit_test(caps),           cmocka_unit_test(mentions),
        cmocka_unit_test(rate_and_repeat), cmocka_unit_test(exemptions),
        cmocka_unit_test(actions_and_log_only), cmocka_unit_test(parse_defaults_and_tier),
        cmocka_unit_test(schema),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
