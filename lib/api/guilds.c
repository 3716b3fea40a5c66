/* guilds.c - the guild picker, a guild's overview, its members, roles and
 * channels (for the settings forms), and access management
 * (authorized_users: the installer is the first and cannot be revoked). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "api/internal.h"
#include "discord/guildcache.h"
#include "core/config.h"
#include "core/ctx.h"
#include "core/err.h"
#include "core/json.h"
#include "core/log.h"
#include "core/str.h"
#include "features/premium/premium.h"
#include "features/registry.h"
#include "store/pg.h"
#include "store/settings.h"
#include "web/http.h"

static const char *access_name(enum gh_access a)
{
    switch (a) {
    case GH_ACCESS_OWNER:
        return "owner";
    case GH_ACCESS_ADMIN:
        return "admin";
    case GH_ACCESS_GRANTED:
        return "granted";
    default:
        return "none";
    }
}

static json_object *premium_brief(struct gh_api_call *c, uint64_t guild_id)
{
    struct gh_premium p;
    json_object *o = json_object_new_object();
    if (gh_premium_get(c->ctx, guild_id, &p) == GH_OK) {
        json_object_object_add(o, "tier", json_object_new_string(gh_premium_tier_name(p.effective)));
        json_object_object_add(o, "status", json_object_new_string(p.status));
    } else {
        json_object_object_add(o, "tier", json_object_new_string("unknown"));
        json_object_object_add(o, "status", json_object_new_string("unknown"));
    }
    return o;
}

void gh_api_guilds_list(struct gh_api_call *c)
{
    char uid[24];
    const char *params[1] = {uid};
    PGresult *res = NULL;
    json_object *out = NULL;
    json_object *installed;
    json_object *missing;
    json_object *seen;
    int rc = gh_access_load_guilds(c);

    if (rc != GH_OK) {
        gh_api_fail(c, rc, "listing your servers");
        return;
    }
    (void)snprintf(uid, sizeof(uid), "%llu", (unsigned long long)c->user_id);
    /* every active guild the user manages or was granted, with how */
    res = gh_pg_exec_prepared(
        c->ctx->pg, "api_guilds_list",
        "WITH mine AS (SELECT (e->>'id')::bigint AS id, e->>'name' AS name, e->>'icon' AS icon, "
        "(e->>'owner')::boolean AS owner, (e->>'permissions')::numeric::bigint AS perms "
        "FROM dashboard_users u, jsonb_array_elements(u.guilds) e WHERE u.id = $1) "
        "SELECT g.id::text, coalesce(m.name, g.name, ''), m.icon, coalesce(m.owner, false), "
        "coalesce((m.perms & 40) <> 0, false), a.user_id IS NOT NULL "
        "FROM guilds g LEFT JOIN mine m ON m.id = g.id "
        "LEFT JOIN authorized_users a ON a.guild_id = g.id AND a.user_id = $1 AND a.deleted_at IS NULL "
        "WHERE g.is_active AND (m.owner OR (m.perms & 40) <> 0 OR a.user_id IS NOT NULL) ORDER BY 2, 1",
        1, params);
    if (res == NULL) {
        gh_api_fail(c, GH_EPG, "listing your servers");
        return;
    }
    out = json_object_new_object();
    installed = json_object_new_array();
    missing = json_object_new_array();
    seen = json_object_new_object();
    for (int i = 0; i < PQntuples(res); i++) {
        json_object *g = json_object_new_object();
        uint64_t gid = 0;
        const char *access = PQgetvalue(res, i, 3)[0] == 't'   ? "owner"
                             : PQgetvalue(res, i, 4)[0] == 't' ? "admin"
                                                               : "granted";
        (void)gh_cstr_to_u64(PQgetvalue(res, i, 0), &gid);
        json_object_object_add(g, "id", json_object_new_string(PQgetvalue(res, i, 0)));
        json_object_object_add(g, "name", json_object_new_string(PQgetvalue(res, i, 1)));
        json_object_object_add(g, "icon",
                               PQgetisnull(res, i, 2) ? NULL : json_object_new_string(PQgetvalue(res, i, 2)));
        json_object_object_add(g, "access", json_object_new_string(access));
        json_object *pb = premium_brief(c, gid);
        json_object_object_add(g, "premium_tier", json_object_get(json_object_object_get(pb, "tier")));
        json_object_put(pb);
        json_object_array_add(installed, g);
        json_object_object_add(seen, PQgetvalue(res, i, 0), json_object_new_boolean(1));
    }
    PQclear(res);
    /* guilds the user manages where Guildhall is not (yet) */
    size_t n = json_object_array_length(c->user_guilds);
    for (size_t i = 0; i < n; i++) {
        json_object *e = json_object_array_get_idx(c->user_guilds, i);
        const char *id = gh_json_get_str(e, "id");
        char url[160];
        if (id == NULL || json_object_object_get_ex(seen, id, NULL) ||
            gh_access_from_entry(e) < GH_ACCESS_ADMIN)
            continue;
        json_object *g = json_object_new_object();
        (void)snprintf(url, sizeof(url), "/api/v1/auth/discord/install?guild_id=%s", id);
        json_object_object_add(g, "id", json_object_new_string(id));
        json_object_object_add(g, "name", gh_api_str_or_null(gh_json_get_str(e, "name")));
        json_object_object_add(g, "icon", gh_api_str_or_null(gh_json_get_str(e, "icon")));
        json_object_object_add(g, "install_url", json_object_new_string(url));
        json_object_array_add(missing, g);
    }
    json_object_put(seen);
    json_object_object_add(out, "guilds", installed);
    json_object_object_add(out, "not_installed", missing);
    gh_api_reply(c, 200, out);
}

void gh_api_guild_get(struct gh_api_call *c)
{
    char gid[24];
    const char *params[1] = {gid};
    json_object *out = json_object_new_object();
    json_object *features = json_object_new_array();
    json_object *entry = gh_access_entry(c);
    const char *name = entry ? gh_json_get_str(entry, "name") : NULL;
    PGresult *res = NULL;

    (void)snprintf(gid, sizeof(gid), "%llu", (unsigned long long)c->guild_id);
    if (name == NULL) {
        res = gh_pg_exec_prepared(c->ctx->pg, "api_guild_name",
                                  "SELECT coalesce(name, '') FROM guilds WHERE id = $1", 1, params);
        if (res && PQntuples(res) == 1)
            name = PQgetvalue(res, 0, 0);
    }
    json_object_object_add(out, "id", json_object_new_string(gid));
    json_object_object_add(out, "name", json_object_new_string(name ? name : ""));
    json_object_object_add(out, "icon", entry ? gh_api_str_or_null(gh_json_get_str(entry, "icon")) : NULL);
    PQclear(res);
    json_object_object_add(out, "access", json_object_new_string(access_name(c->access)));
    json_object_object_add(out, "can_manage_access", json_object_new_boolean(c->access >= GH_ACCESS_ADMIN));
    json_object_object_add(out, "premium", premium_brief(c, c->guild_id));
    for (size_t i = 0; gh_features[i] != NULL; i++) {
        const struct gh_feature *f = gh_features[i];
        json_object *o = json_object_new_object();
        json_object_object_add(o, "name", json_object_new_string(f->name));
        json_object_object_add(o, "title", json_object_new_string(f->title ? f->title : f->name));
        json_object_object_add(o, "description",
                               json_object_new_string(f->description ? f->description : ""));
        json_object_object_add(o, "enabled",
                               json_object_new_boolean(gh_settings_feature_enabled(
                                   c->ctx, c->guild_id, f->name, f->default_enabled)));
        json_object_object_add(o, "can_disable", json_object_new_boolean(f->can_disable));
        json_object_object_add(o, "has_settings", json_object_new_boolean(f->settings_schema != NULL));
        json_object_object_add(o, "premium_tier",
                               json_object_new_string(gh_premium_tier_name(f->premium_rank)));
        json_object_array_add(features, o);
    }
    json_object_object_add(out, "features", features);
    gh_api_reply(c, 200, out);
}

static json_object *member_brief(json_object *m)
{
    json_object *u = gh_json_get_obj(m, "user");
    json_object *o = json_object_new_object();
    json_object *roles = gh_json_get_arr(m, "roles");
    json_object_object_add(o, "id", gh_api_str_or_null(gh_json_get_str(u, "id")));
    json_object_object_add(o, "username", gh_api_str_or_null(gh_json_get_str(u, "username")));
    json_object_object_add(o, "global_name", gh_api_str_or_null(gh_json_get_str(u, "global_name")));
    json_object_object_add(o, "nick", gh_api_str_or_null(gh_json_get_str(m, "nick")));
    json_object_object_add(o, "avatar", gh_api_str_or_null(gh_json_get_str(u, "avatar")));
    json_object_object_add(o, "roles", roles ? json_object_get(roles) : json_object_new_array());
    return o;
}

void gh_api_guild_members(struct gh_api_call *c)
{
    char query[512];
    char enc[1600];
    char lim[16];
    char path[1800];
    int64_t limit = 25;
    json_object *list = NULL;
    int rc;

    (void)gh_api_query(c->req, "query", query, sizeof(query));
    if (gh_api_query(c->req, "limit", lim, sizeof(lim)) && lim[0] &&
        (gh_cstr_to_i64(lim, &limit) != GH_OK || limit < 1 || limit > 100)) {
        gh_api_field_error(c, "/limit", "must be between 1 and 100");
        return;
    }
    if (strlen(query) > 100 || gh_api_urlencode(query, enc, sizeof(enc)) != GH_OK) {
        gh_api_field_error(c, "/query", "must be at most 100 characters");
        return;
    }
    if (query[0])
        (void)snprintf(path, sizeof(path), "/guilds/%llu/members/search?query=%s&limit=%lld",
                       (unsigned long long)c->guild_id, enc, (long long)limit);
    else
        (void)snprintf(path, sizeof(path), "/guilds/%llu/members?limit=%lld", (unsigned long long)c->guild_id,
                       (long long)limit);
    rc = gh_guildcache_get(c->ctx, path, &list);
    if (rc != GH_OK || !json_object_is_type(list, json_type_array)) {
        json_object_put(list);
        gh_api_fail(c, rc == GH_OK ? GH_EDISCORD : rc, "searching the server's members");
        return;
    }
    json_object *out = json_object_new_object();
    json_object *arr = json_object_new_array();
    size_t n = json_object_array_length(list);
    for (size_t i = 0; i < n; i++)
        json_object_array_add(arr, member_brief(json_object_array_get_idx(list, i)));
    json_object_put(list);
    json_object_object_add(out, "members", arr);
    gh_api_reply(c, 200, out);
}

static int by_position_desc(const void *a, const void *b)
{
    int64_t pa = 0;
    int64_t pb = 0;
    (void)gh_json_get_int(*(json_object *const *)a, "position", &pa);
    (void)gh_json_get_int(*(json_object *const *)b, "position", &pb);
    return pa < pb ? 1 : pa > pb ? -1 : 0;
}

void gh_api_guild_roles(struct gh_api_call *c)
{
    json_object *roles = NULL;
    json_object *member = NULL;
    int bot_pos = 0;
    int user_pos = 0;
    int rc = gh_guildcache_roles(c->ctx, c->guild_id, &roles);

    if (rc == GH_OK && !json_object_is_type(roles, json_type_array))
        rc = GH_EDISCORD;
    if (rc == GH_OK)
        rc = gh_guildcache_bot_position(c->ctx, c->guild_id, roles, &bot_pos);
    if (rc != GH_OK) {
        json_object_put(roles);
        gh_api_fail(c, rc, "reading the server's roles");
        return;
    }
    if (c->access == GH_ACCESS_OWNER)
        user_pos = 1 << 20;
    else if (gh_guildcache_member(c->ctx, c->guild_id, c->user_id, &member) == GH_OK)
        user_pos = gh_guildcache_highest(roles, member);
    json_object_put(member);
    json_object *arr = json_object_new_array();
    size_t n = json_object_array_length(roles);
    for (size_t i = 0; i < n; i++) {
        json_object *r = json_object_array_get_idx(roles, i);
        json_object *o = json_object_new_object();
        json_object *v = NULL;
        int64_t pos = 0;
        int64_t color = 0;
        (void)gh_json_get_int(r, "position", &pos);
        (void)gh_json_get_int(r, "color", &color);
        json_object_object_add(o, "id", gh_api_str_or_null(gh_json_get_str(r, "id")));
        json_object_object_add(o, "name", gh_api_str_or_null(gh_json_get_str(r, "name")));
        json_object_object_add(o, "position", json_object_new_int64(pos));
        json_object_object_add(o, "color", json_object_new_int64(color));
        json_object_object_add(o, "managed",
                               json_object_new_boolean(json_object_object_get_ex(r, "managed", &v) &&
                                                       json_object_get_boolean(v)));
        json_object_array_add(arr, o);
    }
    json_object_put(roles);
    json_object_array_sort(arr, by_position_desc);
    json_object *out = json_object_new_object();
    json_object_object_add(out, "roles", arr);
    json_object_object_add(out, "bot_position", json_object_new_int(bot_pos));
    json_object_object_add(out, "user_position", json_object_new_int(user_pos));
    gh_api_reply(c, 200, out);
}

void gh_api_guild_channels(struct gh_api_call *c)
{
    json_object *chans = NULL;
    int rc = gh_guildcache_channels(c->ctx, c->guild_id, &chans);
    if (rc == GH_OK && !json_object_is_type(chans, json_type_array))
        rc = GH_EDISCORD;
    if (rc != GH_OK) {
        json_object_put(chans);
        gh_api_fail(c, rc, "reading the server's channels");
        return;
    }
    json_object *arr = json_object_new_array();
    size_t n = json_object_array_length(chans);
    for (size_t i = 0; i < n; i++) {
        json_object *ch = json_object_array_get_idx(chans, i);
        json_object *o = json_object_new_object();
        int64_t type = 0;
        int64_t pos = 0;
        (void)gh_json_get_int(ch, "type", &type);
        (void)gh_json_get_int(ch, "position", &pos);
        json_object_object_add(o, "id", gh_api_str_or_null(gh_json_get_str(ch, "id")));
        json_object_object_add(o, "name", gh_api_str_or_null(gh_json_get_str(ch, "name")));
        json_object_object_add(o, "type", json_object_new_int64(type));
        json_object_object_add(o, "parent_id", gh_api_str_or_null(gh_json_get_str(ch, "parent_id")));
        json_object_object_add(o, "position", json_object_new_int64(pos));
        json_object_array_add(arr, o);
    }
    json_object_put(chans);
    json_object *out = json_object_new_object();
    json_object_object_add(out, "channels", arr);
    gh_api_reply(c, 200, out);
}

/* ---- access management */

static json_object *access_row(PGresult *res, int i)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "user_id", json_object_new_string(PQgetvalue(res, i, 0)));
    json_object_object_add(o, "username",
                           PQgetisnull(res, i, 1) ? NULL : json_object_new_string(PQgetvalue(res, i, 1)));
    json_object_object_add(o, "is_installer", json_object_new_boolean(PQgetvalue(res, i, 2)[0] == 't'));
    json_object_object_add(o, "granted_by",
                           PQgetisnull(res, i, 3) ? NULL : json_object_new_string(PQgetvalue(res, i, 3)));
    json_object_object_add(o, "created_at", json_object_new_string(PQgetvalue(res, i, 4)));
    return o;
}

#define ACCESS_COLUMNS                                                                                       \
    "a.user_id::text, u.username, a.is_installer, a.granted_by::text, "                                      \
    "to_char(a.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"

void gh_api_access_list(struct gh_api_call *c)
{
    char gid[24];
    const char *params[1] = {gid};
    (void)snprintf(gid, sizeof(gid), "%llu", (unsigned long long)c->guild_id);
    PGresult *res =
        gh_pg_exec_prepared(c->ctx->pg, "api_access_list",
                            "SELECT " ACCESS_COLUMNS " FROM authorized_users a LEFT JOIN dashboard_users u "
                            "ON u.id = a.user_id WHERE a.guild_id = $1 AND a.deleted_at IS NULL "
                            "ORDER BY a.is_installer DESC, a.created_at",
                            1, params);
    if (res == NULL) {
        gh_api_fail(c, GH_EPG, "listing who has access");
        return;
    }
    json_object *arr = json_object_new_array();
    for (int i = 0; i < PQntuples(res); i++)
        json_object_array_add(arr, access_row(res, i));
    PQclear(res);
    json_object *out = json_object_new_object();
    json_object_object_add(out, "users", arr);
    gh_api_reply(c, 200, out);
}

void gh_api_access_grant(struct gh_api_call *c)
{
    const char *target = c->body ? gh_json_get_str(c->body, "user_id") : NULL;
    uint64_t tid = 0;
    char gid[24];
    char by[24];
    json_object *member = NULL;
    int rc;

    if (target == NULL || gh_cstr_to_u64(target, &tid) != GH_OK || tid == 0) {
        gh_api_field_error(c, "/user_id", "must be a Discord user id");
        return;
    }
    rc = gh_guildcache_member(c->ctx, c->guild_id, tid, &member);
    json_object_put(member);
    if (rc == GH_ENOTFOUND) {
        gh_api_error(c, 404, "not_found", "That user is not a member of this server.");
        return;
    }
    if (rc != GH_OK) {
        gh_api_fail(c, rc, "checking the member");
        return;
    }
    (void)snprintf(gid, sizeof(gid), "%llu", (unsigned long long)c->guild_id);
    (void)snprintf(by, sizeof(by), "%llu", (unsigned long long)c->user_id);
    const char *params[3] = {gid, target, by};
    json_object *after = json_object_new_object();
    json_object_object_add(after, "user_id", json_object_new_string(target));
    if ((rc = gh_pg_begin(c->ctx->pg)) == GH_OK)
        rc = gh_pg_command(
            c->ctx->pg,
            "INSERT INTO authorized_users (guild_id, user_id, granted_by) VALUES ($1, $2, $3) "
            "ON CONFLICT (guild_id, user_id) DO UPDATE SET deleted_at = NULL, granted_by = "
            "CASE WHEN authorized_users.deleted_at IS NULL THEN authorized_users.granted_by ELSE $3 END",
            3, params);
    if (rc == GH_OK)
        rc = gh_api_audit(c, c->guild_id, "access.grant", target, NULL, after);
    if (rc == GH_OK)
        rc = gh_pg_commit(c->ctx->pg);
    else
        (void)gh_pg_rollback(c->ctx->pg);
    json_object_put(after);
    if (rc != GH_OK) {
        gh_api_fail(c, rc, "granting access");
        return;
    }
    PGresult *res =
        gh_pg_exec_prepared(c->ctx->pg, "api_access_one",
                            "SELECT " ACCESS_COLUMNS " FROM authorized_users a LEFT JOIN dashboard_users u "
                            "ON u.id = a.user_id WHERE a.guild_id = $1 AND a.user_id = $2",
                            2, params);
    if (res == NULL || PQntuples(res) != 1) {
        PQclear(res);
        gh_api_fail(c, GH_EPG, "reading the granted access");
        return;
    }
    gh_access_forget(c, c->guild_id, tid);
    GH_INFO(&c->ctx->log, "access: user %s granted access to guild %s by %s", target, gid, by);
    gh_api_reply(c, 201, access_row(res, 0));
    PQclear(res);
}

void gh_api_access_revoke(struct gh_api_call *c)
{
    const char *target = gh_api_param(c, "user_id");
    uint64_t tid = 0;
    char gid[24];
    PGresult *res;
    int rc;

    if (target == NULL || gh_cstr_to_u64(target, &tid) != GH_OK || tid == 0) {
        gh_api_field_error(c, "/user_id", "must be a Discord user id");
        return;
    }
    (void)snprintf(gid, sizeof(gid), "%llu", (unsigned long long)c->guild_id);
    const char *params[2] = {gid, target};
    if ((rc = gh_pg_begin(c->ctx->pg)) != GH_OK) {
        gh_api_fail(c, rc, "revoking access");
        return;
    }
    res = gh_pg_exec(c->ctx->pg,
                     "SELECT is_installer FROM authorized_users WHERE guild_id = $1 AND user_id = $2 AND "
                     "deleted_at IS NULL FOR UPDATE",
                     2, params);
    if (res == NULL) {
        (void)gh_pg_rollback(c->ctx->pg);
        gh_api_fail(c, GH_EPG, "revoking access");
        return;
    }
    if (PQntuples(res) == 0 || PQgetvalue(res, 0, 0)[0] == 't') {
        int installer = PQntuples(res) == 1;
        PQclear(res);
        (void)gh_pg_rollback(c->ctx->pg);
        if (installer)
            gh_api_error(c, 409, "conflict",
                         "The member who installed Guildhall keeps access; it cannot be revoked.");
        else
            gh_api_error(c, 404, "not_found", "That user has no granted access here.");
        return;
    }
    PQclear(res);
    json_object *before = json_object_new_object();
    json_object_object_add(before, "user_id", json_object_new_string(target));
    rc = gh_pg_command(c->ctx->pg,
                       "UPDATE authorized_users SET deleted_at = now() WHERE guild_id = $1 AND user_id = $2",
                       2, params);
    if (rc == GH_OK)
        rc = gh_api_audit(c, c->guild_id, "access.revoke", target, before, NULL);
    if (rc == GH_OK)
        rc = gh_pg_commit(c->ctx->pg);
    else
        (void)gh_pg_rollback(c->ctx->pg);
    json_object_put(before);
    if (rc != GH_OK) {
        gh_api_fail(c, rc, "revoking access");
        return;
    }
    gh_access_forget(c, c->guild_id, tid);
    GH_INFO(&c->ctx->log, "access: user %s's access to guild %s revoked", target, gid);
    gh_api_reply(c, 204, NULL);
}
