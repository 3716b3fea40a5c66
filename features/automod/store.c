/* store.c - AutoMod offences in PostgreSQL (sql/0009_automod.up.sql).
 *
 * Only the worker (the "automod:offence" job) and the API call these: the
 * gateway's hot path never touches PostgreSQL. A row is unique per
 * (guild, message, rule), so a job delivered twice records once; done_at
 * tells a retry whether the actions already ran. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "core/ctx.h"
#include "core/err.h"
#include "core/log.h"
#include "features/automod/automod.h"
#include "store/pg.h"

int gh_am_offence_record(struct gh_ctx *ctx, const struct gh_am_offence *o, int *created, int *done)
{
    char g[24], u[24], ch[24], m[24], acts[96], when[32];
    const char *params[11];
    PGresult *res = NULL;
    int rc = GH_EPG;

    if (created)
        *created = 0;
    if (done)
        *done = 0;
    if (!ctx || !ctx->pg || !o || !o->guild_id || !o->user_id || !o->channel_id || !o->message_id ||
        (int)o->rule < 0 || o->rule >= GH_AM_RULE_COUNT)
        return GH_EINVAL;
    snprintf(g, sizeof(g), "%" PRIu64, o->guild_id);
    snprintf(u, sizeof(u), "%" PRIu64, o->user_id);
    snprintf(ch, sizeof(ch), "%" PRIu64, o->channel_id);
    snprintf(m, sizeof(m), "%" PRIu64, o->message_id);
    {
        char list[80];
        gh_am_actions_text(o->log_only ? 0 : o->actions, list, sizeof(list));
        snprintf(acts, sizeof(acts), "{%s}", list);
    }
    snprintf(when, sizeof(when), "%lld", (long long)(o->message_ms > 0 ? o->message_ms : 0));

    params[0] = g;
    if (gh_pg_command(ctx->pg, "INSERT INTO guilds (id) VALUES ($1) ON CONFLICT (id) DO NOTHING", 1, params) !=
        GH_OK)
        goto out;
    params[1] = u;
    params[2] = ch;
    params[3] = m;
    params[4] = gh_am_rule_name(o->rule);
    params[5] = acts;
    params[6] = o->log_only ? "true" : "false";
    params[7] = o->is_edit ? "true" : "false";
    params[8] = o->excerpt ? o->excerpt : "";
    params[9] = o->matched ? o->matched : "";
    params[10] = when;
    /* the row, or the one a previous run wrote (xmax = 0 only for a fresh insert) */
    res = gh_pg_exec_prepared(
        ctx->pg, "automod_offence_record",
        "INSERT INTO automod_offences (guild_id, user_id, channel_id, message_id, rule, actions, log_only, edited, "
        "excerpt, matched, detected_at) VALUES ($1, $2, $3, $4, $5::automod_rule, $6::text[], $7, $8, $9, $10, "
        "CASE WHEN $11::bigint > 0 THEN to_timestamp($11::bigint / 1000.0) ELSE now() END) "
        "ON CONFLICT (guild_id, message_id, rule) DO UPDATE SET guild_id = EXCLUDED.guild_id "
        "RETURNING (xmax = 0) AS created, done_at IS NOT NULL AS done",
        11, params);
    if (!res || PQntuples(res) != 1) {
        GH_ERROR(&ctx->log, "automod: offence of message %s (%s) in guild %s not recorded: %s", m,
                 gh_am_rule_name(o->rule), g, gh_pg_errmsg(ctx->pg));
        goto out;
    }
    if (created)
        *created = PQgetvalue(res, 0, 0)[0] == 't';
    if (done)
        *done = PQgetvalue(res, 0, 1)[0] == 't';
    rc = GH_OK;
out:
    PQclear(res);
    return rc;
}

int gh_am_offence_done(struct gh_ctx *ctx, uint64_t guild_id, uint64_t message_id, enum gh_am_rule rule,
                       const char *outcome)
{
    char g[24], m[24], oc[1001];
    const char *params[4];

    if (!ctx || !ctx->pg || !guild_id || !message_id)
        return GH_EINVAL;
    snprintf(g, sizeof(g), "%" PRIu64, guild_id);
    snprintf(m, sizeof(m), "%" PRIu64, message_id);
    snprintf(oc, sizeof(oc), "%s", outcome ? outcome : "");
    params[0] = g;
    params[1] = m;
    params[2] = gh_am_rule_name(rule);
    params[3] = oc;
    return gh_pg_command(ctx->pg,
                         "UPDATE automod_offences SET done_at = now(), outcome = $4 WHERE guild_id = $1 AND "
                         "message_id = $2 AND rule = $3::automod_rule",
                         4, params);
}

int gh_am_offence_list(struct gh_ctx *ctx, uint64_t guild_id, uint64_t user_id, int rule, int64_t before_id,
                       int limit, json_object **out, int64_t *total)
{
    char g[24], u[24], b[24], l[16];
    const char *params[5];
    PGresult *res = NULL, *cnt = NULL;
    json_object *arr = NULL;
    int rc = GH_EPG;

    *out = NULL;
    if (total)
        *total = 0;
    if (!ctx || !ctx->pg || !guild_id || limit < 1 || limit > 100)
        return GH_EINVAL;
    snprintf(g, sizeof(g), "%" PRIu64, guild_id);
    snprintf(u, sizeof(u), "%" PRIu64, user_id);
    snprintf(b, sizeof(b), "%lld", (long long)before_id);
    snprintf(l, sizeof(l), "%d", limit);
    params[0] = g;
    params[1] = u;
    params[2] = rule >= 0 ? gh_am_rule_name((enum gh_am_rule)rule) : NULL;
    params[3] = b;
    params[4] = l;
    res = gh_pg_exec_prepared(ctx->pg, "automod_offence_list",
                              "SELECT id, user_id::text, channel_id::text, message_id::text, rule::text, "
                              "array_to_string(actions, ','), log_only, edited, excerpt, matched, "
                              "coalesce(outcome, ''), "
                              "to_char(detected_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), "
                              "done_at IS NOT NULL "
                              "FROM automod_offences WHERE guild_id = $1 AND ($2::bigint = 0 OR user_id = $2) "
                              "AND ($3::automod_rule IS NULL OR rule = $3::automod_rule) "
                              "AND ($4::bigint = 0 OR id < $4) ORDER BY id DESC LIMIT $5",
                              5, params);
    if (!res)
        goto out;
    cnt = gh_pg_exec_prepared(ctx->pg, "automod_offence_count",
                              "SELECT count(*) FROM automod_offences WHERE guild_id = $1 AND "
                              "($2::bigint = 0 OR user_id = $2) AND ($3::automod_rule IS NULL OR rule = "
                              "$3::automod_rule)",
                              3, params);
    if (!cnt)
        goto out;
    arr = json_object_new_array();
    for (int i = 0; i < PQntuples(res); i++) {
        json_object *o = json_object_new_object(), *acts = json_object_new_array();
        const char *a = PQgetvalue(res, i, 5);
        json_object_object_add(o, "id", json_object_new_int64(atoll(PQgetvalue(res, i, 0))));
        json_object_object_add(o, "user_id", json_object_new_string(PQgetvalue(res, i, 1)));
        json_object_object_add(o, "channel_id", json_object_new_string(PQgetvalue(res, i, 2)));
        json_object_object_add(o, "message_id", json_object_new_string(PQgetvalue(res, i, 3)));
        json_object_object_add(o, "rule", json_object_new_string(PQgetvalue(res, i, 4)));
        while (*a) {
            const char *e = strchr(a, ',');
            size_t k = e ? (size_t)(e - a) : strlen(a);
            json_object_array_add(acts, json_object_new_string_len(a, (int)k));
            a += k + (e ? 1 : 0);
        }
        json_object_object_add(o, "actions", acts);
        json_object_object_add(o, "log_only", json_object_new_boolean(PQgetvalue(res, i, 6)[0] == 't'));
        json_object_object_add(o, "edited", json_object_new_boolean(PQgetvalue(res, i, 7)[0] == 't'));
        json_object_object_add(o, "excerpt", json_object_new_string(PQgetvalue(res, i, 8)));
        json_object_object_add(o, "matched", json_object_new_string(PQgetvalue(res, i, 9)));
        json_object_object_add(o, "outcome", json_object_new_string(PQgetvalue(res, i, 10)));
        json_object_object_add(o, "created_at", json_object_new_string(PQgetvalue(res, i, 11)));
        json_object_object_add(o, "done", json_object_new_boolean(PQgetvalue(res, i, 12)[0] == 't'));
        json_object_array_add(arr, o);
    }
    if (total)
        *total = atoll(PQgetvalue(cnt, 0, 0));
    *out = arr;
    arr = NULL;
    rc = GH_OK;
out:
    json_object_put(arr);
    PQclear(cnt);
    PQclear(res);
    return rc;
}
