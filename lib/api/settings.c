/* settings.c - GET /guilds/{id}/settings, GET|PUT /guilds/{id}/settings/{feature}.
 *
 * A PUT is validated against the feature's schema (lib/web/jschema.h; every
 * bad field named in one 400), its role values checked against the guild's
 * roles and the role hierarchy (a role at or above the user's highest role,
 * or the bot's, is refused with 403 role_hierarchy unless the user owns the
 * guild), its premium fields against the guild's effective tier, then saved
 * with the version the client read (409 on a conflict); gh_settings_put
 * writes the audit_log row and drops the cached copy. Only values that
 * change are held to the hierarchy and premium checks, so a lower admin can
 * still save a form holding an owner's choice, and a downgraded guild keeps
 * (and may keep saving) what it set while premium. "enabled" is the
 * platform's toggle in every document. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
#include "store/settings.h"
#include "web/jschema.h"

/* Resolves a JSON pointer ("/a/0/b") in doc; NULL when absent. */
static json_object *pointer_get(json_object *doc, const char *ptr)
{
    char tok[128];
    json_object *cur = doc;
    while (cur && *ptr == '/') {
        size_t o = 0;
        ptr++;
        while (*ptr && *ptr != '/' && o + 1 < sizeof(tok)) {
            if (ptr[0] == '~' && ptr[1] == '1') {
                tok[o++] = '/';
                ptr += 2;
            } else if (ptr[0] == '~' && ptr[1] == '0') {
                tok[o++] = '~';
                ptr += 2;
            } else {
                tok[o++] = *ptr++;
            }
        }
        tok[o] = '\0';
        if (json_object_is_type(cur, json_type_object)) {
            json_object *next = NULL;
            cur = json_object_object_get_ex(cur, tok, &next) ? next : NULL;
        } else if (json_object_is_type(cur, json_type_array)) {
            char *end = NULL;
            long i = strtol(tok, &end, 10);
            cur = (end && *end == '\0' && i >= 0 && (size_t)i < json_object_array_length(cur))
                      ? json_object_array_get_idx(cur, (size_t)i)
                      : NULL;
        } else {
            cur = NULL;
        }
    }
    return *ptr ? NULL : cur;
}

static int same_at(json_object *a, json_object *b, const char *ptr)
{
    json_object *x = pointer_get(a, ptr);
    json_object *y = pointer_get(b, ptr);
    if (x == NULL || y == NULL)
        return x == y;
    return json_object_equal(x, y);
}

/* The feature's schema, parsed once per process (the registry is constant):
 * a new reference, or NULL when the feature has none. */
static json_object *parsed_schema(const struct gh_feature *f)
{
    static json_object *cache[64];
    size_t i = 0;
    if (f->settings_schema == NULL)
        return NULL;
    while (gh_features[i] != NULL && gh_features[i] != f)
        i++;
    if (gh_features[i] == NULL || i >= sizeof(cache) / sizeof(cache[0]))
        return json_tokener_parse(f->settings_schema);
    if (cache[i] == NULL)
        cache[i] = json_tokener_parse(f->settings_schema);
    return cache[i] ? json_object_get(cache[i]) : NULL;
}

static int schema_has_enabled(json_object *schema)
{
    json_object *props = schema ? gh_json_get_obj(schema, "properties") : NULL;
    return props && json_object_object_get_ex(props, "enabled", NULL);
}

static json_object *feature_entry(struct gh_api_call *c, const struct gh_feature *f, json_object *doc,
                                  int version, int with_schema)
{
    json_object *o = json_object_new_object();
    json_object *en = NULL;
    int enabled = f->default_enabled;
    if (json_object_object_get_ex(doc, "enabled", &en) && json_object_is_type(en, json_type_boolean))
        enabled = json_object_get_boolean(en);
    if (!f->can_disable)
        enabled = 1;
    json_object_object_add(o, "feature", json_object_new_string(f->name));
    json_object_object_add(o, "title", json_object_new_string(f->title ? f->title : f->name));
    json_object_object_add(o, "description", json_object_new_string(f->description ? f->description : ""));
    json_object_object_add(o, "enabled", json_object_new_boolean(enabled));
    json_object_object_add(o, "can_disable", json_object_new_boolean(f->can_disable));
    json_object_object_add(o, "version", json_object_new_int(version));
    json_object_object_add(o, "document", json_object_get(doc));
    json_object_object_add(o, "premium_tier", json_object_new_string(gh_premium_tier_name(f->premium_rank)));
    if (with_schema) {
        json_object *s = parsed_schema(f);
        json_object_object_add(o, "schema", s ? s : json_object_new_object());
    }
    (void)c;
    return o;
}

void gh_api_settings_all(struct gh_api_call *c)
{
    json_object *arr = json_object_new_array();
    for (size_t i = 0; gh_features[i] != NULL; i++) {
        const struct gh_feature *f = gh_features[i];
        json_object *doc = NULL;
        int version = 0;
        int rc = gh_settings_get(c->ctx, c->guild_id, f->name, &doc, &version);
        if (rc != GH_OK) {
            json_object_put(arr);
            gh_api_fail(c, rc, "reading the settings");
            return;
        }
        json_object_array_add(arr, feature_entry(c, f, doc, version, 1));
        json_object_put(doc);
    }
    json_object *out = json_object_new_object();
    json_object_object_add(out, "settings", arr);
    gh_api_reply(c, 200, out);
}

static const struct gh_feature *feature_of(struct gh_api_call *c)
{
    const char *name = gh_api_param(c, "feature");
    const struct gh_feature *f = name ? gh_registry_feature(name) : NULL;
    if (f == NULL || (f->settings_schema == NULL && !f->can_disable)) {
        gh_api_error(c, 404, "not_found", "No feature named '%s' has settings.", name ? name : "");
        return NULL;
    }
    return f;
}

void gh_api_settings_get(struct gh_api_call *c)
{
    const struct gh_feature *f = feature_of(c);
    json_object *doc = NULL;
    int version = 0;
    int rc;

    if (f == NULL)
        return;
    rc = gh_settings_get(c->ctx, c->guild_id, f->name, &doc, &version);
    if (rc != GH_OK) {
        gh_api_fail(c, rc, "reading the settings");
        return;
    }
    gh_api_reply(c, 200, feature_entry(c, f, doc, version, 1));
    json_object_put(doc);
}

/* ---- PUT */

struct role_check {
    struct gh_api_call *c;
    json_object *before;
    json_object *roles; /* the guild's roles, loaded on first need */
    int roles_rc;
    int user_pos;
    int bot_pos;
    struct gh_jschema_result hierarchy; /* refusals for 403 role_hierarchy */
};

static const json_object *find_role(json_object *roles, const char *id)
{
    size_t n = json_object_array_length(roles);
    for (size_t i = 0; i < n; i++) {
        json_object *r = json_object_array_get_idx(roles, i);
        const char *rid = gh_json_get_str(r, "id");
        if (rid && strcmp(rid, id) == 0)
            return r;
    }
    return NULL;
}

static void add_error(struct gh_jschema_result *res, const char *path, const char *msg)
{
    if (res->n_errors >= GH_JSCHEMA_MAX_ERRORS) {
        res->truncated = 1;
        return;
    }
    /* long paths and messages are cut: a readable prefix is enough */
    (void)gh_snprintf(res->errors[res->n_errors].path, sizeof(res->errors[0].path), "%s", path);
    (void)gh_snprintf(res->errors[res->n_errors].message, sizeof(res->errors[0].message), "%s", msg);
    res->n_errors++;
}

static int load_roles(struct role_check *rc)
{
    struct gh_api_call *c = rc->c;
    json_object *member = NULL;
    if (rc->roles != NULL || rc->roles_rc != GH_OK)
        return rc->roles_rc;
    rc->roles_rc = gh_guildcache_roles(c->ctx, c->guild_id, &rc->roles);
    if (rc->roles_rc == GH_OK && !json_object_is_type(rc->roles, json_type_array))
        rc->roles_rc = GH_EDISCORD;
    if (rc->roles_rc == GH_OK)
        rc->roles_rc = gh_guildcache_bot_position(c->ctx, c->guild_id, rc->roles, &rc->bot_pos);
    if (rc->roles_rc == GH_OK) {
        if (c->access == GH_ACCESS_OWNER) {
            rc->user_pos = 1 << 20;
        } else if (gh_guildcache_member(c->ctx, c->guild_id, c->user_id, &member) == GH_OK) {
            rc->user_pos = gh_guildcache_highest(rc->roles, member);
        } else {
            rc->user_pos = 0; /* not a member (a granted user who left): no role is below them */
        }
    }
    json_object_put(member);
    return rc->roles_rc;
}

static int check_ref(void *arg, const char *format, const char *path, const char *value, char *msg,
                     size_t msgsz)
{
    struct role_check *rc = arg;
    struct gh_api_call *c = rc->c;
    char why[192];

    if (strcmp(format, "channel") == 0) {
        json_object *chans = NULL;
        int found = 0;
        if (gh_guildcache_channels(c->ctx, c->guild_id, &chans) != GH_OK) {
            (void)snprintf(msg, msgsz, "could not be checked: Discord did not answer; try again");
            return 1;
        }
        size_t n = json_object_is_type(chans, json_type_array) ? json_object_array_length(chans) : 0;
        for (size_t i = 0; i < n && !found; i++) {
            const char *id = gh_json_get_str(json_object_array_get_idx(chans, i), "id");
            found = id && strcmp(id, value) == 0;
        }
        json_object_put(chans);
        if (!found)
            (void)snprintf(msg, msgsz, "is not a channel of this server");
        return !found;
    }
    if (strcmp(format, "role") != 0)
        return 0;
    if (load_roles(rc) != GH_OK) {
        (void)snprintf(msg, msgsz, "could not be checked: Discord did not answer; try again");
        return 1;
    }
    const json_object *role = find_role(rc->roles, value);
    json_object *v = NULL;
    int64_t pos = 0;
    if (role == NULL) {
        (void)snprintf(msg, msgsz, "is not a role of this server");
        return 1;
    }
    char gid[24];
    (void)snprintf(gid, sizeof(gid), "%llu", (unsigned long long)c->guild_id);
    if (strcmp(value, gid) == 0) {
        (void)snprintf(msg, msgsz, "cannot be @everyone");
        return 1;
    }
    if (json_object_object_get_ex(role, "managed", &v) && json_object_get_boolean(v)) {
        (void)snprintf(msg, msgsz, "is managed by an integration and cannot be assigned");
        return 1;
    }
    json_object *prev = rc->before ? pointer_get(rc->before, path) : NULL;
    if (prev != NULL && json_object_is_type(prev, json_type_string) &&
        strcmp(json_object_get_string(prev), value) == 0)
        return 0; /* unchanged: not held to the hierarchy again */
    (void)gh_json_get_int(role, "position", &pos);
    if (pos >= rc->user_pos) {
        (void)snprintf(why, sizeof(why), "the role %s is not below your highest role; ask someone above it",
                       gh_json_get_str(role, "name") ? gh_json_get_str(role, "name") : value);
        add_error(&rc->hierarchy, path, why);
    } else if (pos >= rc->bot_pos) {
        (void)snprintf(why, sizeof(why),
                       "the role %s is not below Guildhall's highest role; move Guildhall's role above it",
                       gh_json_get_str(role, "name") ? gh_json_get_str(role, "name") : value);
        add_error(&rc->hierarchy, path, why);
    }
    return 0;
}

static void reply_fields(struct gh_api_call *c, int status, const char *code, const char *message,
                         const struct gh_jschema_result *res, int with_upgrade)
{
    json_object *root = json_object_new_object();
    json_object *e = json_object_new_object();
    json_object *fields = json_object_new_array();
    for (int i = 0; i < res->n_errors; i++) {
        json_object *f = json_object_new_object();
        json_object_object_add(f, "path", json_object_new_string(res->errors[i].path));
        json_object_object_add(f, "message", json_object_new_string(res->errors[i].message));
        json_object_array_add(fields, f);
    }
    json_object_object_add(e, "code", json_object_new_string(code));
    json_object_object_add(e, "message", json_object_new_string(message));
    json_object_object_add(e, "fields", fields);
    if (res->truncated)
        json_object_object_add(e, "truncated", json_object_new_boolean(1));
    if (with_upgrade)
        json_object_object_add(e, "upgrade_url", json_object_new_string(c->ctx->cfg->premium_url));
    json_object_object_add(root, "error", e);
    gh_api_reply(c, status, root);
}

/* Premium fields whose value this PUT changes, beyond the guild's tier. */
static int premium_refusals(struct gh_api_call *c, json_object *schema, json_object *doc, json_object *before,
                            struct gh_jschema_result *out)
{
    struct gh_jschema_result need;
    struct gh_premium p;
    memset(&need, 0, sizeof(need));
    memset(out, 0, sizeof(*out));
    int rank = gh_jschema_premium_needed(schema, doc, &need);
    if (rank <= 0)
        return GH_OK;
    int rc = gh_premium_get(c->ctx, c->guild_id, &p);
    if (rc != GH_OK)
        return rc;
    for (int i = 0; i < need.n_errors; i++)
        if (!same_at(doc, before, need.errors[i].path))
            add_error(out, need.errors[i].path, need.errors[i].message);
    if (out->n_errors > 0 && p.effective >= rank)
        out->n_errors = 0;
    if (out->n_errors > 0)
        (void)gh_premium_require(c->ctx, c->guild_id, c->user_id, rank,
                                 "premium settings"); /* logs the refusal */
    return GH_OK;
}

void gh_api_settings_put(struct gh_api_call *c)
{
    const struct gh_feature *f = feature_of(c);
    json_object *doc = NULL;
    json_object *check = NULL;
    json_object *schema = NULL;
    json_object *before = NULL;
    json_object *en = NULL;
    struct role_check rcheck;
    struct gh_jschema_result res;
    int64_t version = -1;
    int before_version = 0;
    int new_version = 0;
    int rc;

    memset(&rcheck, 0, sizeof(rcheck));
    memset(&res, 0, sizeof(res));
    if (f == NULL)
        return;
    doc = c->body ? gh_json_get_obj(c->body, "document") : NULL;
    if (doc == NULL || !json_object_is_type(doc, json_type_object)) {
        gh_api_field_error(c, "/document", "must be an object holding the feature's settings");
        return;
    }
    if (gh_json_get_int(c->body, "version", &version) != GH_OK || version < 0) {
        gh_api_field_error(c, "/version", "must be the version you read (0 when there were no settings yet)");
        return;
    }
    if (json_object_object_get_ex(doc, "enabled", &en)) {
        if (!json_object_is_type(en, json_type_boolean)) {
            gh_api_field_error(c, "/document/enabled", "must be true or false");
            return;
        }
        if (!json_object_get_boolean(en) && !f->can_disable) {
            gh_api_field_error(c, "/document/enabled", "this feature cannot be turned off");
            return;
        }
    }
    rc = gh_settings_get(c->ctx, c->guild_id, f->name, &before, &before_version);
    if (rc != GH_OK) {
        gh_api_fail(c, rc, "reading the current settings");
        return;
    }
    schema = parsed_schema(f);
    /* the toggle is the platform's: validate the rest against the feature's schema */
    check = json_object_new_object();
    json_object_object_foreach(doc, k, v)
    {
        if (strcmp(k, "enabled") != 0 || schema_has_enabled(schema))
            json_object_object_add(check, k, json_object_get(v));
    }
    rcheck.c = c;
    rcheck.before = before;
    rc = schema != NULL ? gh_jschema_validate(schema, check, check_ref, &rcheck, &res) : GH_OK;
    if (rc == GH_EINVAL) {
        reply_fields(c, 400, "invalid_settings", "Some settings are not valid; see each field.", &res, 0);
        goto out;
    }
    if (rc != GH_OK) {
        GH_ERROR(&c->ctx->log, "settings: the schema of %s cannot be used: %s", f->name,
                 res.n_errors ? res.errors[0].message : gh_strerror(rc));
        gh_api_fail(c, rc == GH_ECONFIG ? GH_EIO : rc, "validating the settings");
        goto out;
    }
    if (schema == NULL && json_object_object_length(check) > 0) {
        memset(&res, 0, sizeof(res));
        json_object_object_foreach(check, k2, v2)
        {
            char path[140];
            (void)v2;
            (void)snprintf(path, sizeof(path), "/%s", k2);
            add_error(&res, path, "is not an allowed property");
        }
        reply_fields(c, 400, "invalid_settings", "This feature has no settings besides on/off.", &res, 0);
        goto out;
    }
    if (rcheck.hierarchy.n_errors > 0) {
        gh_api_security(c, "settings.role_hierarchy", c->guild_id, "%s: %s", rcheck.hierarchy.errors[0].path,
                        rcheck.hierarchy.errors[0].message);
        reply_fields(c, 403, "role_hierarchy", "A role you chose is above your highest role or Guildhall's.",
                     &rcheck.hierarchy, 0);
        goto out;
    }
    if (schema != NULL) {
        rc = premium_refusals(c, schema, check, before, &res);
        if (rc != GH_OK) {
            gh_api_fail(c, rc, "checking premium");
            goto out;
        }
        if (res.n_errors > 0) {
            char text[400];
            (void)gh_premium_upgrade_text(c->ctx->cfg, 1, "This setting", text, sizeof(text));
            reply_fields(c, 403, "premium_required", text, &res, 1);
            goto out;
        }
    }
    if (f->premium_rank > 0 && en && json_object_get_boolean(en)) {
        rc = gh_premium_require(c->ctx, c->guild_id, c->user_id, f->premium_rank,
                                f->title ? f->title : f->name);
        if (rc != GH_OK) {
            char text[400];
            (void)gh_premium_upgrade_text(c->ctx->cfg, f->premium_rank, f->title ? f->title : f->name, text,
                                          sizeof(text));
            memset(&res, 0, sizeof(res));
            add_error(&res, "/document/enabled", text);
            if (rc == GH_EPREMIUM)
                reply_fields(c, 403, "premium_required", text, &res, 1);
            else
                gh_api_fail(c, rc, "checking premium");
            goto out;
        }
    }
    rc = gh_settings_put(c->ctx, c->guild_id, f->name, doc, c->user_id, (int)version, &new_version);
    if (rc == GH_ECONFLICT) {
        gh_api_error(
            c, 409, "version_conflict",
            "Someone else saved these settings since you loaded them (now version %d); reload to see "
            "their changes.",
            before_version);
        goto out;
    }
    if (rc != GH_OK) {
        gh_api_fail(c, rc, "saving the settings");
        goto out;
    }
    GH_INFO(&c->ctx->log, "settings: %s of guild %llu saved as version %d", f->name,
            (unsigned long long)c->guild_id, new_version);
    gh_api_reply(c, 200, feature_entry(c, f, doc, new_version, 0));
out:
    json_object_put(check);
    json_object_put(schema);
    json_object_put(before);
    json_object_put(rcheck.roles);
}
