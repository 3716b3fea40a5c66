/* test_gw_config.c - --shards parsing, intents, identify bucket order
 * (lib/gateway/gwconfig.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/err.h"
#include "features/registry.h"
#include "gateway/gwconfig.h"
#include "gateway/intents.h"

static void shards_arg(void **state)
{
    struct gh_gw_range r;
    char err[256];
    (void)state;
    assert_int_equal(gh_gwconfig_parse_shards("0-3/8", &r, err, sizeof(err)), GH_OK);
    assert_int_equal(r.first, 0);
    assert_int_equal(r.last, 3);
    assert_int_equal(r.count, 8);
    assert_int_equal(gh_gwconfig_parse_shards("5/6", &r, err, sizeof(err)), GH_OK);
    assert_int_equal(r.first, 5);
    assert_int_equal(r.last, 5);
    assert_int_equal(gh_gwconfig_parse_shards("0-0/1", &r, err, sizeof(err)), GH_OK);
    static const char *bad[] = {"",     "x",    "0-3",    "0-3/",    "3-1/8",     "0-8/8", "0-1/0",
                                "-1/2", "1-/2", "0-1/2x", "0 - 1/2", "0-1/99999", "a-b/c"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        assert_int_equal(gh_gwconfig_parse_shards(bad[i], &r, err, sizeof(err)), GH_EINVAL);
        assert_true(strlen(err) > 10);
    }
    assert_int_equal(gh_gwconfig_parse_shards("0-8/8", &r, err, sizeof(err)), GH_EINVAL);
    assert_non_null(strstr(err, "0 to 7"));
    assert_int_equal(gh_gwconfig_parse_shards(NULL, &r, err, sizeof(err)), GH_EINVAL);
}

static void privileged_list(void **state)
{
    uint64_t bits = 99;
    char err[256];
    (void)state;
    assert_int_equal(gh_gwconfig_parse_privileged("", &bits, err, sizeof(err)), GH_OK);
    assert_int_equal(bits, 0);
    assert_int_equal(gh_gwconfig_parse_privileged("members, Message_Content", &bits, err, sizeof(err)),
                     GH_OK);
    assert_int_equal(bits, GH_INTENT_GUILD_MEMBERS | GH_INTENT_MESSAGE_CONTENT);
    assert_int_equal(gh_gwconfig_parse_privileged("presences,GUILD_MEMBERS", &bits, err, sizeof(err)), GH_OK);
    assert_int_equal(bits, GH_INTENT_GUILD_MEMBERS | GH_INTENT_GUILD_PRESENCES);
    assert_int_equal(gh_gwconfig_parse_privileged("members,typing", &bits, err, sizeof(err)), GH_EINVAL);
    assert_non_null(strstr(err, "typing"));
}

static const struct gh_feature fa = {.name = "alpha",
                                     .intents = GH_INTENT_GUILD_MESSAGES | GH_INTENT_MESSAGE_CONTENT};
static const struct gh_feature fb = {.name = "beta",
                                     .intents = GH_INTENT_GUILD_MEMBERS | GH_INTENT_GUILD_VOICE_STATES};
static const struct gh_feature fc = {.name = "gamma", .intents = 0};

static void intents(void **state)
{
    const struct gh_feature *const feats[] = {&fa, &fb, &fc, NULL};
    uint64_t dropped = 0;
    (void)state;
    /* union of the features plus GUILDS, privileged only when allowed */
    uint64_t all = GH_INTENT_GUILDS | GH_INTENT_GUILD_MESSAGES | GH_INTENT_MESSAGE_CONTENT |
                   GH_INTENT_GUILD_MEMBERS | GH_INTENT_GUILD_VOICE_STATES;
    assert_int_equal(gh_gwconfig_intents(-1, feats, GH_INTENTS_PRIVILEGED, &dropped, NULL), all);
    assert_int_equal(dropped, 0);
    assert_int_equal(gh_gwconfig_intents(-1, feats, 0, &dropped, NULL),
                     all & ~(GH_INTENT_GUILD_MEMBERS | GH_INTENT_MESSAGE_CONTENT));
    assert_int_equal(dropped, GH_INTENT_GUILD_MEMBERS | GH_INTENT_MESSAGE_CONTENT);
    assert_int_equal(gh_gwconfig_intents(-1, feats, GH_INTENT_MESSAGE_CONTENT, &dropped, NULL),
                     all & ~GH_INTENT_GUILD_MEMBERS);
    assert_int_equal(dropped, GH_INTENT_GUILD_MEMBERS);
    /* GUILDS always, even with no feature */
    const struct gh_feature *const none[] = {NULL};
    assert_int_equal(gh_gwconfig_intents(-1, none, 0, NULL, NULL), GH_INTENT_GUILDS);
    /* an override wins, privileged bits still filtered */
    assert_int_equal(gh_gwconfig_intents(513, feats, 0, NULL, NULL), 513);
    assert_int_equal(gh_gwconfig_intents(512 | 32768, feats, 0, &dropped, NULL), 512);
    assert_int_equal(dropped, 32768);
    assert_int_equal(gh_gwconfig_intents(0, feats, 0, NULL, NULL), 0);
    /* the real registry: GUILDS at least, and never an unlisted privileged bit */
    uint64_t real = gh_gwconfig_intents(-1, gh_features, 0, NULL, NULL);
    assert_true(real & GH_INTENT_GUILDS);
    assert_int_equal(real & GH_INTENTS_PRIVILEGED, 0);
    char text[256];
    gh_gwconfig_intents_text(GH_INTENT_GUILDS | GH_INTENT_GUILD_MESSAGES, text, sizeof(text));
    assert_string_equal(text, "GUILDS|GUILD_MESSAGES");
    gh_gwconfig_intents_text(0, text, sizeof(text));
    assert_string_equal(text, "none");
}

static void identify_order(void **state)
{
    int picks[16];
    int64_t free_at[4] = {0, 0, 0, 0};
    (void)state;
    /* max_concurrency 1: one at a time, lowest first */
    const int c1[] = {3, 1, 2, 0};
    assert_int_equal(gh_gwconfig_identify_picks(c1, 4, 1, free_at, 0, picks, 16), 1);
    assert_int_equal(picks[0], 0);
    /* bucket busy: nobody */
    int64_t busy[1] = {5000};
    assert_int_equal(gh_gwconfig_identify_picks(c1, 4, 1, busy, 100, picks, 16), 0);
    assert_int_equal(gh_gwconfig_identify_picks(c1, 4, 1, busy, 5000, picks, 16), 1);
    /* max_concurrency 2: shards 0 and 1 first (one per bucket), then 2 and 3 */
    const int c2[] = {5, 4, 3, 2, 1, 0};
    assert_int_equal(gh_gwconfig_identify_picks(c2, 6, 2, free_at, 0, picks, 16), 2);
    assert_int_equal(picks[0], 0);
    assert_int_equal(picks[1], 1);
    const int c3[] = {5, 4, 3, 2};
    assert_int_equal(gh_gwconfig_identify_picks(c3, 4, 2, free_at, 0, picks, 16), 2);
    assert_int_equal(picks[0], 2);
    assert_int_equal(picks[1], 3);
    /* bucket 0 busy: shard 2 waits, shard 3 goes; shard 4 never jumps ahead of 2 */
    int64_t b0[2] = {9999, 0};
    assert_int_equal(gh_gwconfig_identify_picks(c3, 4, 2, b0, 0, picks, 16), 1);
    assert_int_equal(picks[0], 3);
    /* max_picks caps */
    assert_int_equal(gh_gwconfig_identify_picks(c2, 6, 4, free_at, 0, picks, 1), 1);
    assert_int_equal(picks[0], 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(shards_arg),
        cmocka_unit_test(privileged_list),
        cmocka_unit_test(intents),
        cmocka_unit_test(identify_order),
    };
    return cmocka_run_group_tests_name("gw_config", tests, NULL, NULL);
}
