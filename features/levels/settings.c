/* settings.c - the levels settings document (schema.json) as a struct, the
 * exclusions and multipliers of one gain, and the level-up text.
 *
 * Parsing starts from the defaults and takes each member the document sets
 * and that is usable; the document was validated when it was saved, so a
 * member that is nevertheless malformed keeps its default. Multipliers
 * combine as guild x best role x channel (the best role, not the product:
 * stacking many roles must not explode a member's gain). */
#include "features/levels/levels.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ctx.h"
#include "core/err.h"
#include "core/json.h"
#include "core/log.h"
#include "discord/interaction.h"
#include "discord/respond.h"
#include "store/settings.h"

#define DEFAULT_TEMPLATE "GG {user}, you reached level {level}!"

static void set_defaults(struct gh_lv_settings *s)
{
    memset(s, 0, sizeof(*s));
    s->multiplier = 1.0;
    s->cooldown_s = 60;
    s->notify = GH_LV_NOTIFY_CURRENT;
    snprintf(s->template_, sizeof(s->template_), "%s", DEFAULT_TEMPLATE);
    s->reward_stack = 1;
    s->voice_enabled = 1;
    s->voice_xp_per_min = 10;
}

static uint64_t id_of(json_object *v)
{
    return json_object_is_type(v, json_type_string) ? gh_snowflake_parse(json_object_get_string(v)) : 0;
}

static int number_of(json_object *v, double lo, double hi, double *out)
{
    double d;

    if (!json_object_is_type(v, json_type_double) && !json_object_is_type(v, json_type_int))
        return 0;
    d = json_object_get_double(v);
    if (!(d >= lo && d <= hi))
        return 0;
    *out = d;
    return 1;
}

static int ids(json_object *doc, const char *key, uint64_t *out, int max)
{
    json_object *a = gh_json_get_arr(doc, key);
    int n = 0;

    for (size_t i = 0; a && i < json_object_array_length(a) && n < max; i++) {
        uint64_t id = id_of(json_object_array_get_idx(a, i));
        if (id)
            out[n++] = id;
    }
    return n;
}

static int mults(json_object *doc, const char *key, const char *idkey, struct gh_lv_idmult *out)
{
    json_object *a = gh_json_get_arr(doc, key);
    int n = 0;

    for (size_t i = 0; a && i < json_object_array_length(a) && n < GH_LV_MAX_MULT; i++) {
        json_object *e = json_object_array_get_idx(a, i), *v = NULL;
        uint64_t id;
        double m;
        if (!json_object_is_type(e, json_type_object))
            continue;
        json_object_object_get_ex(e, idkey, &v);
        id = id_of(v);
        json_object_object_get_ex(e, "multiplier", &v);
        if (id && number_of(v, 0, 5, &m)) {
            out[n].id = id;
            out[n].mult = m;
            n++;
        }
    }
    return n;
}

static int cmp_reward(const void *a, const void *b)
{
    const struct gh_lv_reward *x = a, *y = b;

    return (x->level > y->level) - (x->level < y->level);
}

void gh_lv_settings_parse(json_object *doc, struct gh_lv_settings *s)
{
    json_object *v = NULL, *a;
    double d;
    int64_t i64;
    int b;
    const char *str;

    set_defaults(s);
    if (doc == NULL || !json_object_is_type(doc, json_type_object))
        return;
    if (gh_json_get_bool(doc, "enabled", &b) == GH_OK)
        s->enabled = b;
    if (json_object_object_get_ex(doc, "multiplier", &v) && number_of(v, 0, 5, &d))
        s->multiplier = d;
    s->n_role_mult = mults(doc, "role_multipliers", "role_id", s->role_mult);
    s->n_channel_mult = mults(doc, "channel_multipliers", "channel_id", s->channel_mult);
    s->n_ignored_channels = ids(doc, "ignored_channels", s->ignored_channels, GH_LV_MAX_IDS);
    s->n_blacklisted_roles = ids(doc, "blacklisted_roles", s->blacklisted_roles, GH_LV_MAX_IDS);
    s->n_blacklisted_users = ids(doc, "blacklisted_users", s->blacklisted_users, GH_LV_MAX_IDS);
    s->n_staff_roles = ids(doc, "staff_roles", s->staff_roles, GH_LV_MAX_IDS);
    if (gh_json_get_int(doc, "cooldown_seconds", &i64) == GH_OK && i64 >= 1 && i64 <= 3600)
        s->cooldown_s = (int)i64;
    str = gh_json_get_str(doc, "notify_mode");
    if (str && strcmp(str, "channel") == 0)
        s->notify = GH_LV_NOTIFY_CHANNEL;
    else if (str && strcmp(str, "off") == 0)
        s->notify = GH_LV_NOTIFY_OFF;
    s->notify_channel_id = json_object_object_get_ex(doc, "notify_channel_id", &v) ? id_of(v) : 0;
    str = gh_json_get_str(doc, "notify_template");
    if (str && *str && strlen(str) < sizeof(s->template_))
        snprintf(s->template_, sizeof(s->template_), "%s", str);
    a = gh_json_get_arr(doc, "role_rewards");
    for (size_t i = 0; a && i < json_object_array_length(a) && s->n_rewards < GH_LV_MAX_REWARDS; i++) {
        json_object *e = json_object_array_get_idx(a, i), *r = NULL;
        if (gh_json_get_int(e, "level", &i64) != GH_OK || i64 < 1 || i64 > GH_LV_MAX_LEVEL)
            continue;
        if (!json_object_object_get_ex(e, "role_id", &r) || id_of(r) == 0)
            continue;
        s->rewards[s->n_rewards].level = (int)i64;
        s->rewards[s->n_rewards].role_id = id_of(r);
        s->n_rewards++;
    }
    qsort(s->rewards, (size_t)s->n_rewards, sizeof(s->rewards[0]), cmp_reward);
    str = gh_json_get_str(doc, "reward_mode");
    if (str && strcmp(str, "replace") == 0)
        s->reward_stack = 0;
    if (gh_json_get_bool(doc, "voice_enabled", &b) == GH_OK)
        s->voice_enabled = b;
    if (gh_json_get_int(doc, "voice_xp_per_minute", &i64) == GH_OK && i64 >= 0 && i64 <= 50)
        s->voice_xp_per_min = (int)i64;
}

int gh_lv_settings_load(struct gh_ctx *ctx, uint64_t guild_id, struct gh_lv_settings *out)
{
    json_object *doc = NULL;
    int version = 0;
    int rc = gh_settings_get(ctx, guild_id, "levels", &doc, &version);

    gh_lv_settings_parse(rc == GH_OK ? doc : NULL, out);
    json_object_put(doc);
    return rc;
}

static int has_id(const uint64_t *ids_, int n, uint64_t id)
{
    for (int i = 0; i < n; i++)
        if (ids_[i] == id)
            return 1;
    return 0;
}

int gh_lv_excluded(const struct gh_lv_settings *s, uint64_t user_id, uint64_t channel_id, json_object *roles)
{
    if (has_id(s->blacklisted_users, s->n_blacklisted_users, user_id))
        return 1;
    if (channel_id && has_id(s->ignored_channels, s->n_ignored_channels, channel_id))
        return 1;
    for (size_t i = 0; roles && s->n_blacklisted_roles > 0 && i < json_object_array_length(roles); i++)
        if (has_id(s->blacklisted_roles, s->n_blacklisted_roles, id_of(json_object_array_get_idx(roles, i))))
            return 1;
    return 0;
}

static double cap(double m, int capped)
{
    return capped && m > GH_LV_FREE_MULT_CAP ? GH_LV_FREE_MULT_CAP : m;
}

double gh_lv_factor(const struct gh_lv_settings *s, uint64_t channel_id, json_object *roles, int capped)
{
    double f = cap(s->multiplier, capped), role = -1.0;

    for (size_t i = 0; roles && s->n_role_mult > 0 && i < json_object_array_length(roles); i++) {
        uint64_t id = id_of(json_object_array_get_idx(roles, i));
        for (int k = 0; k < s->n_role_mult; k++)
            if (s->role_mult[k].id == id && s->role_mult[k].mult > role)
                role = s->role_mult[k].mult;
    }
    if (role >= 0)
        f *= cap(role, capped);
    for (int k = 0; k < s->n_channel_mult; k++)
        if (s->channel_mult[k].id == channel_id) {
            f *= cap(s->channel_mult[k].mult, capped);
            break;
        }
    return f;
}

int gh_lv_notify_text(const struct gh_lv_settings *s, uint64_t user_id, const char *username, int level,
                      int64_t xp, char *out, size_t n)
{
    size_t len = 0;
    const char *p = s->template_;
    char piece[300];
    int trunc = 0;

    if (n == 0)
        return GH_EINVAL;
    out[0] = '\0';
    while (*p) {
        const char *rep = NULL;
        size_t skip = 1;
        if (strncmp(p, "{user}", 6) == 0) {
            snprintf(piece, sizeof(piece), "<@%" PRIu64 ">", user_id);
            rep = piece, skip = 6;
        } else if (strncmp(p, "{username}", 10) == 0) {
            gh_escape_markdown(username ? username : "", piece, sizeof(piece));
            rep = piece, skip = 10;
        } else if (strncmp(p, "{level}", 7) == 0) {
            snprintf(piece, sizeof(piece), "%d", level);
            rep = piece, skip = 7;
        } else if (strncmp(p, "{xp}", 4) == 0) {
            snprintf(piece, sizeof(piece), "%" PRId64, xp);
            rep = piece, skip = 4;
        }
        if (rep) {
            size_t rl = strlen(rep);
            if (len + rl >= n) {
                trunc = 1;
                break;
            }
            memcpy(out + len, rep, rl);
            len += rl;
        } else {
            if (len + 1 >= n) {
                trunc = 1;
                break;
            }
            out[len++] = *p;
        }
        p += skip;
    }
    out[len] = '\0';
    return trunc ? GH_ETOOBIG : GH_OK;
}
