/* api.c - AutoMod's dashboard routes beyond the generic settings form:
 *
 *   GET  /guilds/{id}/automod/offences?user=&rule=&before=&limit=
 *        newest first: {offences: [...], total, next_before}
 *   POST /guilds/{id}/automod/test {content, settings?}
 *        which rules the text would match: {matches: [{rule, title, matched,
 *        actions, log_only}], skipped: [rules not checked]} with the saved
 *        settings (or the unsaved "settings" object of the form). The rate and
 *        repeat rules need a history, so the test skips them.
 *
 * Both need guild admin (owner, Administrator or Manage Server), like the
 * settings routes; the guild comes from the URL that passed the check, so
 * another guild's offences are never read. */
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include "api/api.h"
#include "core/ctx.h"
#include "core/err.h"
#include "core/json.h"
#include "core/log.h"
#include "core/str.h"
#include "features/automod/automod.h"
#include "features/premium/premium.h"
#include "store/settings.h"

#define LIMIT_DEFAULT 25
#define LIMIT_MAX 100
#define TEST_CONTENT_MAX 4000

static void am_offences(struct gh_api_call *c)
{
    char buf[64];
    uint64_t user = 0;
    int64_t before = 0, limit = LIMIT_DEFAULT, total = 0;
    int rule = -1, rc;
    json_object *list = NULL, *out;

    if (gh_api_query(c->req, "user", buf, sizeof(buf)) && buf[0] &&
        (gh_cstr_to_u64(buf, &user) != GH_OK || user == 0)) {
        gh_api_field_error(c, "/user", "must be a user id");
        return;
    }
    if (gh_api_query(c->req, "rule", buf, sizeof(buf)) && buf[0] && (rule = gh_am_rule_parse(buf)) < 0) {
        gh_api_field_error(c, "/rule", "must be one of rate, repeat, caps, invites, links, words, regex, mentions");
        return;
    }
    if (gh_api_query(c->req, "before", buf, sizeof(buf)) && buf[0] &&
        (gh_cstr_to_i64(buf, &before) != GH_OK || before < 1)) {
        gh_api_field_error(c, "/before", "must be an offence id (1, 2, ...)");
        return;
    }
    if (gh_api_query(c->req, "limit", buf, sizeof(buf)) && buf[0] &&
        (gh_cstr_to_i64(buf, &limit) != GH_OK || limit < 1 || limit > LIMIT_MAX)) {
        gh_api_field_error(c, "/limit", "must be from 1 to 100");
        return;
    }
    rc = gh_am_offence_list(c->ctx, c->guild_id, user, rule, before, (int)limit, &list, &total);
    if (rc != GH_OK) {
        gh_api_fail(c, rc, "reading the offences");
        return;
    }
    out = json_object_new_object();
    {
        size_t n = json_object_array_length(list);
        int64_t next = 0;
        if ((int64_t)n == limit && n > 0)
            next = json_object_get_int64(json_object_object_get(json_object_array_get_idx(list, n - 1), "id"));
        json_object_object_add(out, "offences", list);
        json_object_object_add(out, "total", json_object_new_int64(total));
        json_object_object_add(out, "next_before", next > 0 ? json_object_new_int64(next) : NULL);
    }
    gh_api_reply(c, 200, out);
}

static void am_test(struct gh_api_call *c)
{
    json_object *content = NULL, *given = NULL, *doc = NULL, *out = NULL, *matches, *skipped;
    struct gh_am_settings *s = NULL;
    struct gh_am_msg m;
    struct gh_am_hit hits[GH_AM_RULE_COUNT];
    struct gh_premium p;
    int version = 0, n, overflow = 0, rc;

    if (!c->body || !json_object_object_get_ex(c->body, "content", &content) ||
        !json_object_is_type(content, json_type_string) || json_object_get_string_len(content) == 0) {
        gh_api_field_error(c, "/content", "enter a message to test");
        return;
    }
    if (json_object_get_string_len(content) > TEST_CONTENT_MAX) {
        gh_api_field_error(c, "/content", "must be at most 4000 bytes");
        return;
    }
    if (json_object_object_get_ex(c->body, "settings", &given) && given &&
        !json_object_is_type(given, json_type_object)) {
        gh_api_field_error(c, "/settings", "must be an object (the settings form)");
        return;
    }
    if (!given) {
        rc = gh_settings_get(c->ctx, c->guild_id, "automod", &doc, &version);
        if (rc != GH_OK) {
            gh_api_fail(c, rc, "reading the AutoMod settings");
            return;
        }
    }
    s = gh_am_settings_parse(given ? given : doc, c->guild_id, &c->ctx->log);
    if (!s) {
        gh_api_fail(c, GH_ENOMEM, "testing");
        goto out;
    }
    memset(&p, 0, sizeof(p));
    gh_am_settings_apply_tier(s, gh_premium_get(c->ctx, c->guild_id, &p) == GH_OK ? p.effective : 0,
                              &c->ctx->log);
    s->enabled = 1; /* the test answers what the rules would do, switched on or not */
    memset(&m, 0, sizeof(m));
    m.guild_id = c->guild_id;
    m.content = json_object_get_string(content);
    m.len = (size_t)json_object_get_string_len(content);
    n = gh_am_check(s, &m, NULL, hits, GH_AM_RULE_COUNT, &overflow);
    out = json_object_new_object();
    matches = json_object_new_array();
    skipped = json_object_new_array();
    for (int i = 0; i < n; i++) {
        json_object *h = json_object_new_object(), *acts = json_object_new_array();
        char list[80];
        gh_am_actions_text(s->rule[hits[i].rule].actions, list, sizeof(list));
        for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ","))
            json_object_array_add(acts, json_object_new_string(tok));
        json_object_object_add(h, "rule", json_object_new_string(gh_am_rule_name(hits[i].rule)));
        json_object_object_add(h, "title", json_object_new_string(gh_am_rule_title(hits[i].rule)));
        json_object_object_add(h, "matched", json_object_new_string(hits[i].matched));
        json_object_object_add(h, "actions", acts);
        json_object_object_add(h, "log_only", json_object_new_boolean(hits[i].log_only));
        json_object_array_add(matches, h);
    }
    json_object_array_add(skipped, json_object_new_string("rate"));
    json_object_array_add(skipped, json_object_new_string("repeat"));
    json_object_object_add(out, "matches", matches);
    json_object_object_add(out, "skipped", skipped);
    json_object_object_add(out, "regex_limit_hits", json_object_new_int(overflow));
    {
        /* patterns that do not compile (skipped at load): shown so the admin can fix them */
        json_object *bad = json_object_new_array(), *rx = gh_json_get_obj(given ? given : doc, "regex");
        static const char *const lists[] = {"patterns", "premium_patterns"};
        for (size_t l = 0; l < 2; l++) {
            json_object *a = gh_json_get_arr(rx, lists[l]);
            for (size_t i = 0; a && i < json_object_array_length(a); i++) {
                const char *pat = json_object_get_string(json_object_array_get_idx(a, i));
                char err[200];
                struct gh_am_regex *re = pat ? gh_am_regex_new(pat, err, sizeof(err)) : NULL;
                if (pat && !re) {
                    json_object *e = json_object_new_object();
                    json_object_object_add(e, "pattern", json_object_new_string(pat));
                    json_object_object_add(e, "error", json_object_new_string(err));
                    json_object_array_add(bad, e);
                }
                gh_am_regex_free(re);
            }
        }
        json_object_object_add(out, "invalid_patterns", bad);
    }
    gh_api_reply(c, 200, out);
out:
    gh_am_settings_free(s);
    json_object_put(doc);
}

const struct gh_api_route gh_am_routes[GH_AM_N_ROUTES] = {
    {"GET", "/guilds/{id}/automod/offences", GH_API_GUILD_ADMIN, 0, GH_RL_READ, am_offences,
     "a server's AutoMod offences"},
    {"POST", "/guilds/{id}/automod/test", GH_API_GUILD_ADMIN, 0, GH_RL_WRITE, am_test,
     "which AutoMod rules a message would match"},
};
