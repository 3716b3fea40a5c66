/* test_events_prefix.c - prefix commands without any store: splitting the
 * message, parsing arguments against declared options (every type, quotes,
 * rest-of-line strings, missing and extra arguments, bad mentions, choices,
 * min/max, subcommands and groups), usage lines, the settings document, the
 * permission algorithm (roles, administrator, owner, channel overwrites),
 * and the schema text kept identical to schema.json. */
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
#include "core/json.h"
#include "discord/perms.h"
#include "features/events/events.h"
#include "gateway/intents.h"

static const char warn_opts[] = "[{\"type\":6,\"name\":\"user\",\"description\":\"d\",\"required\":true},"
                                "{\"type\":3,\"name\":\"reason\",\"description\":\"d\",\"required\":false}]";

static const char all_opts[] =
    "[{\"type\":4,\"name\":\"count\",\"description\":\"d\",\"required\":true,\"min_value\":1,\"max_value\":100},"
    "{\"type\":10,\"name\":\"ratio\",\"description\":\"d\",\"required\":true},"
    "{\"type\":5,\"name\":\"flag\",\"description\":\"d\",\"required\":true},"
    "{\"type\":7,\"name\":\"where\",\"description\":\"d\",\"required\":true},"
    "{\"type\":8,\"name\":\"role\",\"description\":\"d\",\"required\":true},"
    "{\"type\":9,\"name\":\"who\",\"description\":\"d\",\"required\":true},"
    "{\"type\":3,\"name\":\"mode\",\"description\":\"d\",\"required\":true,"
    "\"choices\":[{\"name\":\"Fast\",\"value\":\"fast\"},{\"name\":\"Slow\",\"value\":\"slow\"}]},"
    "{\"type\":3,\"name\":\"note\",\"description\":\"d\",\"required\":false}]";

static const char sub_opts[] =
    "[{\"type\":1,\"name\":\"add\",\"description\":\"d\",\"options\":["
    "{\"type\":6,\"name\":\"user\",\"description\":\"d\",\"required\":true}]},"
    "{\"type\":2,\"name\":\"rules\",\"description\":\"d\",\"options\":["
    "{\"type\":1,\"name\":\"set\",\"description\":\"d\",\"options\":["
    "{\"type\":3,\"name\":\"name\",\"description\":\"d\",\"required\":true},"
    "{\"type\":5,\"name\":\"on\",\"description\":\"d\",\"required\":true}]}]}]";

struct parsed {
    json_object *opts;
    int rc;
    char err[512];
    char usage[512];
};

static void parse(struct parsed *p, const char *name, const char *decl, const char *args)
{
    p->opts = NULL;
    p->rc = gh_events_prefix_parse("!", name, decl, args, &p->opts, p->err, sizeof(p->err), p->usage,
                                   sizeof(p->usage));
}

static json_object *opt_at(json_object *opts, size_t i)
{
    assert_non_null(opts);
    assert_true(i < json_object_array_length(opts));
    return json_object_array_get_idx(opts, i);
}

static const char *val_str(json_object *o)
{
    json_object *v = NULL;
    assert_true(json_object_object_get_ex(o, "value", &v));
    return json_object_get_string(v);
}

static void test_split(void **state)
{
    (void)state;
    char name[40];
    const char *rest = NULL;

    assert_int_equal(gh_events_prefix_split("!Ping  now", "!", name, sizeof(name), &rest), 1);
    assert_string_equal(name, "ping");
    assert_string_equal(rest, "now");
    assert_int_equal(gh_events_prefix_split("?!warn", "?!", name, sizeof(name), &rest), 1);
    assert_string_equal(name, "warn");
    assert_string_equal(rest, "");
    assert_int_equal(gh_events_prefix_split("ping", "!", name, sizeof(name), &rest), 0);
    assert_int_equal(gh_events_prefix_split("! ping", "!", name, sizeof(name), &rest), 0);
    assert_int_equal(gh_events_prefix_split("!", "!", name, sizeof(name), &rest), 0);
    assert_int_equal(gh_events_prefix_split(NULL, "!", name, sizeof(name), &rest), 0);
    char small[4];
    assert_int_equal(gh_events_prefix_split("!toolong", "!", small, sizeof(small), &rest), 0);
}

static void test_user_forms_and_rest_of_line(void **state)
{
    (void)state;
    struct parsed p;
    const char *forms[] = {"<@123456789012345678>", "<@!123456789012345678>", "123456789012345678"};

    for (size_t i = 0; i < 3; i++) {
        char args[128];
        snprintf(args, sizeof(args), "%s spamming   links again ", forms[i]);
        parse(&p, "warn", warn_opts, args);
        assert_int_equal(p.rc, GH_OK);
        assert_int_equal(json_object_array_length(p.opts), 2);
        assert_string_equal(val_str(opt_at(p.opts, 0)), "123456789012345678");
        assert_string_equal(gh_json_get_str(opt_at(p.opts, 0), "name"), "user");
        assert_string_equal(val_str(opt_at(p.opts, 1)), "spamming   links again");
        json_object_put(p.opts);
    }
    /* optional reason left out */
    parse(&p, "warn", warn_opts, "<@123456789012345678>");
    assert_int_equal(p.rc, GH_OK);
    assert_int_equal(json_object_array_length(p.opts), 1);
    json_object_put(p.opts);
    /* a quoted reason */
    parse(&p, "warn", warn_opts, "<@1234567890> \"say \\\"hi\\\" twice\"");
    assert_int_equal(p.rc, GH_OK);
    assert_string_equal(val_str(opt_at(p.opts, 1)), "say \"hi\" twice");
    json_object_put(p.opts);
}

static void test_missing_and_bad_mentions(void **state)
{
    (void)state;
    struct parsed p;

    parse(&p, "warn", warn_opts, "");
    assert_int_equal(p.rc, GH_EINVAL);
    assert_null(p.opts);
    assert_non_null(strstr(p.err, "missing `user`"));
    assert_string_equal(p.usage, "!warn <user> [reason]");

    parse(&p, "warn", warn_opts, "<#123456789012345678> x");
    assert_int_equal(p.rc, GH_EINVAL);
    assert_non_null(strstr(p.err, "`user` must be a user mention"));
    assert_string_equal(p.usage, "!warn <user> [reason]");

    parse(&p, "warn", warn_opts, "<@12a> x");
    assert_int_equal(p.rc, GH_EINVAL);
    parse(&p, "warn", warn_opts, "bob");
    assert_int_equal(p.rc, GH_EINVAL);
    parse(&p, "warn", warn_opts, "<@123> \"unterminated");
    assert_int_equal(p.rc, GH_EINVAL);
    assert_non_null(strstr(p.err, "quote"));
}

static void test_every_type(void **state)
{
    (void)state;
    struct parsed p;

    parse(&p, "t", all_opts, "42 2.5 yes <#111111111111111111> <@&222222222222222222> <@333333333333333333> SLOW rest of it");
    assert_int_equal(p.rc, GH_OK);
    assert_int_equal(json_object_array_length(p.opts), 8);
    json_object *v = NULL;
    assert_true(json_object_object_get_ex(opt_at(p.opts, 0), "value", &v));
    assert_true(json_object_is_type(v, json_type_int));
    assert_int_equal(json_object_get_int64(v), 42);
    assert_true(json_object_object_get_ex(opt_at(p.opts, 1), "value", &v));
    assert_true(json_object_is_type(v, json_type_double));
    assert_true(json_object_get_double(v) == 2.5);
    assert_true(json_object_object_get_ex(opt_at(p.opts, 2), "value", &v));
    assert_true(json_object_is_type(v, json_type_boolean));
    assert_true(json_object_get_boolean(v));
    assert_string_equal(val_str(opt_at(p.opts, 3)), "111111111111111111");
    assert_string_equal(val_str(opt_at(p.opts, 4)), "222222222222222222");
    assert_string_equal(val_str(opt_at(p.opts, 5)), "333333333333333333");
    assert_string_equal(val_str(opt_at(p.opts, 6)), "slow"); /* choice matched by name, value sent */
    assert_string_equal(val_str(opt_at(p.opts, 7)), "rest of it");
    int64_t type = 0;
    assert_int_equal(gh_json_get_int(opt_at(p.opts, 5), "type", &type), GH_OK);
    assert_int_equal(type, 9);
    json_object_put(p.opts);

    /* booleans: false/no */
    parse(&p, "t", all_opts, "1 0 no 1 2 <@&3> fast");
    assert_int_equal(p.rc, GH_OK);
    assert_true(json_object_object_get_ex(opt_at(p.opts, 2), "value", &v));
    assert_false(json_object_get_boolean(v));
    json_object_put(p.opts);

    struct {
        const char *args, *want;
    } bad[] = {
        {"abc 1 yes 1 2 3 fast", "`count` must be a whole number"},
        {"0 1 yes 1 2 3 fast", "`count` must be between 1 and 100"},
        {"101 1 yes 1 2 3 fast", "`count` must be between 1 and 100"},
        {"5 x yes 1 2 3 fast", "`ratio` must be a number"},
        {"5 1 maybe 1 2 3 fast", "`flag` must be true or false"},
        {"5 1 yes <@1> 2 3 fast", "`where` must be a channel mention"},
        {"5 1 yes 1 <@2> 3 fast", "`role` must be a role mention"},
        {"5 1 yes 1 2 <#3> fast", "`who` must be a user or role mention"},
        {"5 1 yes 1 2 3 medium", "`mode` must be one of: Fast, Slow"},
        {"5 1 yes 1 2 3", "missing `mode`"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        parse(&p, "t", all_opts, bad[i].args);
        assert_int_equal(p.rc, GH_EINVAL);
        if (!strstr(p.err, bad[i].want))
            fail_msg("args \"%s\": error \"%s\" lacks \"%s\"", bad[i].args, p.err, bad[i].want);
        assert_string_equal(p.usage, "!t <count> <ratio> <flag> <where> <role> <who> <mode> [note]");
    }
}

static void test_no_options_and_extra(void **state)
{
    (void)state;
    struct parsed p;

    parse(&p, "serverinfo", NULL, "");
    assert_int_equal(p.rc, GH_OK);
    assert_int_equal(json_object_array_length(p.opts), 0);
    json_object_put(p.opts);
    parse(&p, "serverinfo", NULL, "extra");
    assert_int_equal(p.rc, GH_EINVAL);
    assert_non_null(strstr(p.err, "too many arguments"));
    assert_string_equal(p.usage, "!serverinfo");
    parse(&p, "x", "not json", "");
    assert_int_equal(p.rc, GH_EJSON);
    parse(&p, "x", "[{\"type\":11,\"name\":\"file\",\"description\":\"d\",\"required\":true}]", "");
    assert_int_equal(p.rc, GH_EUNAVAILABLE);
}

static void test_subcommands(void **state)
{
    (void)state;
    struct parsed p;

    parse(&p, "cfg", sub_opts, "add <@123456789012345678>");
    assert_int_equal(p.rc, GH_OK);
    json_object *sub = opt_at(p.opts, 0);
    assert_string_equal(gh_json_get_str(sub, "name"), "add");
    json_object *inner = gh_json_get_arr(sub, "options");
    assert_string_equal(val_str(opt_at(inner, 0)), "123456789012345678");
    json_object_put(p.opts);

    parse(&p, "cfg", sub_opts, "rules set \"no spam\" on");
    assert_int_equal(p.rc, GH_OK);
    json_object *grp = opt_at(p.opts, 0);
    int64_t t = 0;
    assert_int_equal(gh_json_get_int(grp, "type", &t), GH_OK);
    assert_int_equal(t, 2);
    json_object *set = opt_at(gh_json_get_arr(grp, "options"), 0);
    assert_string_equal(gh_json_get_str(set, "name"), "set");
    json_object *leaf = gh_json_get_arr(set, "options");
    assert_string_equal(val_str(opt_at(leaf, 0)), "no spam");
    json_object_put(p.opts);

    parse(&p, "cfg", sub_opts, "");
    assert_int_equal(p.rc, GH_EINVAL);
    assert_string_equal(p.err, "missing subcommand");
    assert_string_equal(p.usage, "!cfg <add|rules>");
    parse(&p, "cfg", sub_opts, "remove x");
    assert_int_equal(p.rc, GH_EINVAL);
    assert_non_null(strstr(p.err, "unknown subcommand \"remove\""));
    parse(&p, "cfg", sub_opts, "rules");
    assert_int_equal(p.rc, GH_EINVAL);
    assert_string_equal(p.usage, "!cfg rules <set>");
    parse(&p, "cfg", sub_opts, "rules set x");
    assert_int_equal(p.rc, GH_EINVAL);
    assert_non_null(strstr(p.err, "missing `on`"));
    assert_string_equal(p.usage, "!cfg rules set <name> <on>");
}

static void test_settings(void **state)
{
    (void)state;
    struct gh_events_settings s;
    json_object *doc = json_tokener_parse("{\"prefix_enabled\":true,\"prefix\":\"??\",\"commands\":[\"ping\"]}");

    gh_events_settings_load(doc, &s);
    assert_int_equal(s.prefix_enabled, 1);
    assert_string_equal(s.prefix, "??");
    assert_true(gh_events_settings_allows(&s, "ping"));
    assert_false(gh_events_settings_allows(&s, "warn"));
    json_object_put(s.commands);
    json_object_put(doc);

    doc = json_tokener_parse("{\"prefix\":\"toolong\"}");
    gh_events_settings_load(doc, &s);
    assert_int_equal(s.prefix_enabled, 0);
    assert_string_equal(s.prefix, "!");
    assert_true(gh_events_settings_allows(&s, "warn"));
    json_object_put(doc);
}

#define GUILD 1000ULL
#define USER 2000ULL

static void test_perms(void **state)
{
    (void)state;
    json_object *roles = json_tokener_parse("[{\"id\":\"1000\",\"permissions\":\"3072\",\"position\":0},"
                                            "{\"id\":\"11\",\"permissions\":\"1099511627776\",\"position\":1},"
                                            "{\"id\":\"12\",\"permissions\":\"8\",\"position\":2}]");
    json_object *none = json_tokener_parse("[]");
    json_object *mod = json_tokener_parse("[\"11\"]");
    json_object *admin = json_tokener_parse("[\"12\"]");
    /* @everyone may not send here; role 11 may again; the member is denied VIEW_CHANNEL */
    json_object *chan = json_tokener_parse(
        "{\"id\":\"50\",\"permission_overwrites\":["
        "{\"id\":\"1000\",\"type\":0,\"allow\":\"0\",\"deny\":\"2048\"},"
        "{\"id\":\"11\",\"type\":0,\"allow\":\"2048\",\"deny\":\"0\"},"
        "{\"id\":\"2000\",\"type\":1,\"allow\":\"0\",\"deny\":\"1024\"}]}");

    uint64_t everyone = gh_events_perms_compute(roles, NULL, none, GUILD, USER, 0);
    assert_int_equal(everyone, 3072);
    assert_false(gh_perms_has(everyone, GH_PERM(MODERATE_MEMBERS)));
    uint64_t m = gh_events_perms_compute(roles, NULL, mod, GUILD, USER, 0);
    assert_true(gh_perms_has(m, GH_PERM(MODERATE_MEMBERS)));
    assert_int_equal(gh_events_perms_compute(roles, NULL, admin, GUILD, USER, 0), GH_EVENTS_PERMS_ALL);
    assert_int_equal(gh_events_perms_compute(roles, NULL, none, GUILD, USER, 1), GH_EVENTS_PERMS_ALL);

    uint64_t c = gh_events_perms_compute(roles, chan, none, GUILD, USER, 0);
    assert_int_equal(c, 0); /* no SEND (everyone deny), no VIEW (member deny) */
    c = gh_events_perms_compute(roles, chan, mod, GUILD, 3000, 0);
    assert_true(gh_perms_has(c, GH_PERM(SEND_MESSAGES) | GH_PERM(VIEW_CHANNEL)));
    /* administrators ignore overwrites */
    assert_int_equal(gh_events_perms_compute(roles, chan, admin, GUILD, USER, 0), GH_EVENTS_PERMS_ALL);

    json_object_put(roles);
    json_object_put(none);
    json_object_put(mod);
    json_object_put(admin);
    json_object_put(chan);
}

static void test_feature_struct(void **state)
{
    (void)state;
    FILE *f = fopen("features/events/schema.json", "rb");
    char buf[8192];
    size_t n;

    assert_non_null(f);
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    assert_string_equal(gh_feature_events.settings_schema, buf);
    assert_int_equal(gh_feature_events.can_disable, 0);
    assert_int_equal(gh_feature_events.default_enabled, 1);
    assert_true(gh_feature_events.intents & GH_INTENT_MESSAGE_CONTENT);
    assert_true(gh_feature_events.intents & GH_INTENT_GUILD_MEMBERS);
    /* MESSAGE_CREATE becomes a job only in DMs */
    int found = 0;
    for (size_t i = 0; i < gh_feature_events.n_events; i++) {
        if (!strcmp(gh_feature_events.events[i].name, "MESSAGE_CREATE")) {
            found = 1;
            assert_int_equal(gh_feature_events.events[i].job_dm_only, 1);
            assert_non_null(gh_feature_events.events[i].inline_fn);
        }
    }
    assert_true(found);
    assert_non_null(gh_registry_job("gateway:event", NULL));
    assert_non_null(gh_registry_job("events:prefix", NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split),
        cmocka_unit_test(test_user_forms_and_rest_of_line),
        cmocka_unit_test(test_missing_and_bad_mentions),
        cmocka_unit_test(test_every_type),
        cmocka_unit_test(test_no_options_and_extra),
        cmocka_unit_test(test_subcommands),
        cmocka_unit_test(test_settings),
        cmocka_unit_test(test_perms),
        cmocka_unit_test(test_feature_struct),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
