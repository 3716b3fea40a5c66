/* settings.c - the moderation settings document (schema.json) as a struct,
 * and the text of the DM sent to a member.
 *
 * gh_mod_settings_load starts from the schema's defaults and overrides each
 * member the guild's document sets. The document was validated against the
 * schema when it was saved; a member that is nevertheless malformed (an old
 * document, a hand edit) keeps its default and is logged, so one bad value
 * never disables moderation. warn_expire false (or an empty warn_decay) means "never expire". */
#include "features/moderation/moderation.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ctx.h"
#include "core/err.h"
#include "core/json.h"
#include "core/log.h"
#include "core/str.h"
#include "core/timeutil.h"
#include "discord/respond.h"
#include "store/settings.h"
#include "web/jschema.h"

#define DEFAULT_TEMPLATE "You received a {action} in {guild}. Reason: {reason}"
#define DEFAULT_DECAY_S (30LL * 86400)
#define TIMEOUT_DEFAULT_S 3600LL     /* a timeout step without a duration */
#define TIMEOUT_MAX_S (28LL * 86400) /* Discord's longest timeout */
#define TEMPBAN_DEFAULT_S 86400LL    /* a tempban step without a duration */

static const struct gh_mod_threshold default_thresholds[] = {
    {3, GH_MOD_TIMEOUT, 3600},
    {5, GH_MOD_KICK, 0},
    {7, GH_MOD_BAN, 0},
};

/* schema.json "thresholds.items.action" enum -> case type. */
static const struct {
    const char *name;
    enum gh_mod_type type;
} actions[] = {
    {"timeout", GH_MOD_TIMEOUT}, {"mute", GH_MOD_MUTE},       {"jail", GH_MOD_JAIL},
    {"kick", GH_MOD_KICK},       {"tempban", GH_MOD_TEMPBAN}, {"ban", GH_MOD_BAN},
};

static void set_defaults(struct gh_mod_settings *s)
{
    memset(s, 0, sizeof(*s));
    s->dm_on_action = 1;
    snprintf(s->dm_template, sizeof(s->dm_template), "%s", DEFAULT_TEMPLATE);
    s->warn_decay_s = DEFAULT_DECAY_S;
    s->escalation_enabled = 1;
    s->n_thresholds = (int)(sizeof(default_thresholds) / sizeof(default_thresholds[0]));
    memcpy(s->thresholds, default_thresholds, sizeof(default_thresholds));
}

/* A member that is present but not usable: logged once per load. */
static void bad(struct gh_ctx *ctx, uint64_t guild_id, const char *member)
{
    GH_WARN(&ctx->log, "moderation: guild %" PRIu64 " setting %s is malformed; its default is used", guild_id,
            member);
}

static int has(json_object *doc, const char *key)
{
    json_object *v = NULL;

    return json_object_object_get_ex(doc, key, &v) && v;
}

static void load_bool(struct gh_ctx *ctx, uint64_t g, json_object *doc, const char *key, int *out)
{
    int v = 0;

    if (!has(doc, key))
        return;
    if (gh_json_get_bool(doc, key, &v) == GH_OK)
        *out = v;
    else
        bad(ctx, g, key);
}

static void load_snowflake(struct gh_ctx *ctx, uint64_t g, json_object *doc, const char *key, uint64_t *out)
{
    uint64_t v;

    if (!has(doc, key))
        return;
    v = gh_json_get_snowflake(doc, key);
    if (v)
        *out = v;
    else
        bad(ctx, g, key);
}

static void load_roles(struct gh_ctx *ctx, uint64_t g, json_object *doc, const char *key, uint64_t *out,
                       int *n)
{
    json_object *arr;

    if (!has(doc, key))
        return;
    arr = gh_json_get_arr(doc, key);
    if (!arr) {
        bad(ctx, g, key);
        return;
    }
    *n = 0;
    for (size_t i = 0; i < json_object_array_length(arr) && *n < GH_MOD_MAX_TIER_ROLES; i++) {
        json_object *it = json_object_array_get_idx(arr, i);
        uint64_t v = 0;
        if (!json_object_is_type(it, json_type_string) ||
            gh_cstr_to_u64(json_object_get_string(it), &v) != GH_OK || v == 0 || v > INT64_MAX) {
            bad(ctx, g, key);
            continue;
        }
        out[(*n)++] = v;
    }
}

/* warn_expire false (or an empty warn_decay) -> 0 (never); absent keeps the default. */
static void load_decay(struct gh_ctx *ctx, uint64_t g, json_object *doc, struct gh_mod_settings *s)
{
    const char *text;
    uint64_t secs = 0;
    json_object *expire = NULL;

    if (json_object_object_get_ex(doc, "warn_expire", &expire) &&
        json_object_is_type(expire, json_type_boolean) && !json_object_get_boolean(expire)) {
        s->warn_decay_s = 0;
        return;
    }
    if (!has(doc, "warn_decay"))
        return;
    text = gh_json_get_str(doc, "warn_decay");
    if (text && !text[0]) {
        s->warn_decay_s = 0;
        return;
    }
    if (text && gh_jschema_duration(text, strlen(text), &secs) == GH_OK)
        s->warn_decay_s = (int64_t)secs;
    else
        bad(ctx, g, "warn_decay");
}

static int threshold_cmp(const void *a, const void *b)
{
    const struct gh_mod_threshold *x = a, *y = b;

    return (x->warnings > y->warnings) - (x->warnings < y->warnings);
}

/* One step; GH_OK or GH_EINVAL (skipped). */
static int parse_threshold(json_object *it, struct gh_mod_threshold *t)
{
    const char *action = gh_json_get_str(it, "action"), *dur = gh_json_get_str(it, "duration");
    int64_t warnings = 0;
    uint64_t secs = 0;
    size_t i;

    memset(t, 0, sizeof(*t));
    if (gh_json_get_int(it, "warnings", &warnings) != GH_OK || warnings < 1 || warnings > 100 || !action)
        return GH_EINVAL;
    for (i = 0; i < sizeof(actions) / sizeof(actions[0]); i++)
        if (strcmp(actions[i].name, action) == 0)
            break;
    if (i == sizeof(actions) / sizeof(actions[0]))
        return GH_EINVAL;
    if (dur && gh_jschema_duration(dur, strlen(dur), &secs) != GH_OK)
        return GH_EINVAL;
    t->warnings = (int)warnings;
    t->action = actions[i].type;
    switch (t->action) {
    case GH_MOD_TIMEOUT:
        t->duration_s = secs ? (int64_t)secs : TIMEOUT_DEFAULT_S;
        if (t->duration_s > TIMEOUT_MAX_S)
            t->duration_s = TIMEOUT_MAX_S;
        break;
    case GH_MOD_TEMPBAN:
        t->duration_s = secs ? (int64_t)secs : TEMPBAN_DEFAULT_S;
        break;
    case GH_MOD_MUTE:
    case GH_MOD_JAIL:
        t->duration_s = (int64_t)secs; /* 0: until lifted by hand */
        break;
    default:
        t->duration_s = 0; /* kick, ban: no duration */
        break;
    }
    return GH_OK;
}

static void load_thresholds(struct gh_ctx *ctx, uint64_t g, json_object *doc, struct gh_mod_settings *s)
{
    json_object *arr;

    if (!has(doc, "thresholds"))
        return;
    arr = gh_json_get_arr(doc, "thresholds");
    if (!arr) {
        bad(ctx, g, "thresholds");
        return;
    }
    s->n_thresholds = 0; /* the guild's list replaces the defaults, even when empty */
    for (size_t i = 0; i < json_object_array_length(arr) && s->n_thresholds < GH_MOD_MAX_THRESHOLDS; i++) {
        if (parse_threshold(json_object_array_get_idx(arr, i), &s->thresholds[s->n_thresholds]) == GH_OK)
            s->n_thresholds++;
        else
            bad(ctx, g, "thresholds[]");
    }
    /* Ascending by warnings; qsort is not stable, so ties keep no order: the
     * schema's steps are meant to have distinct counts. */
    qsort(s->thresholds, (size_t)s->n_thresholds, sizeof(s->thresholds[0]), threshold_cmp);
}

static void load_template(struct gh_ctx *ctx, uint64_t g, json_object *doc, struct gh_mod_settings *s)
{
    const char *t;
    size_t len;

    if (!has(doc, "dm_template"))
        return;
    t = gh_json_get_str(doc, "dm_template");
    if (!t || !t[0]) {
        bad(ctx, g, "dm_template");
        return;
    }
    len = strlen(t);
    if (len >= sizeof(s->dm_template)) {
        /* 1000 characters may be up to 4000 bytes: cut at a character. */
        len = sizeof(s->dm_template) - 1;
        while (len > 0 && ((unsigned char)t[len] & 0xC0) == 0x80)
            len--;
    }
    memcpy(s->dm_template, t, len);
    s->dm_template[len] = '\0';
}

int gh_mod_settings_load(struct gh_ctx *ctx, uint64_t guild_id, struct gh_mod_settings *out)
{
    json_object *doc = NULL;
    int version = 0, rc;

    if (!out)
        return GH_EINVAL;
    set_defaults(out);
    if (!ctx || guild_id == 0)
        return GH_EINVAL;
    rc = gh_settings_get(ctx, guild_id, "moderation", &doc, &version);
    if (rc != GH_OK || !doc) {
        GH_WARN(&ctx->log, "moderation: settings of guild %" PRIu64 " unreadable (%s); defaults used",
                guild_id, gh_strerror(rc));
        json_object_put(doc);
        return rc != GH_OK ? rc : GH_EPG;
    }
    load_snowflake(ctx, guild_id, doc, "mod_log_channel_id", &out->mod_log_channel_id);
    load_snowflake(ctx, guild_id, doc, "mute_role_id", &out->mute_role_id);
    load_snowflake(ctx, guild_id, doc, "jail_role_id", &out->jail_role_id);
    load_bool(ctx, guild_id, doc, "dm_on_action", &out->dm_on_action);
    load_template(ctx, guild_id, doc, out);
    load_decay(ctx, guild_id, doc, out);
    load_bool(ctx, guild_id, doc, "escalation_enabled", &out->escalation_enabled);
    load_thresholds(ctx, guild_id, doc, out);
    load_roles(ctx, guild_id, doc, "moderator_roles", out->moderator_roles, &out->n_moderator_roles);
    load_roles(ctx, guild_id, doc, "admin_roles", out->admin_roles, &out->n_admin_roles);
    json_object_put(doc);
    return GH_OK;
}

/* ------------------------------------------------------------------------ */
/* the DM */

int gh_mod_dm_text(const struct gh_mod_settings *s, const char *action, const char *guild_name,
                   const char *reason, int64_t duration_s, int64_t case_number, char *out, size_t n)
{
    /* Escaping can grow text several times (a zero-width space per mention). */
    char esc_reason[GH_MOD_REASON_MAX * 4 * 3 + 64], esc_guild[512], esc_action[128], dur[64], num[24];
    const char *tpl = s && s->dm_template[0] ? s->dm_template : DEFAULT_TEMPLATE;
    struct gh_buf b;
    int rc = GH_OK;

    if (!out || n == 0)
        return GH_EINVAL;
    out[0] = '\0';
    gh_escape_markdown(action && action[0] ? action : "moderation action", esc_action, sizeof(esc_action));
    gh_escape_markdown(guild_name && guild_name[0] ? guild_name : "the server", esc_guild, sizeof(esc_guild));
    gh_escape_markdown(reason && reason[0] ? reason : "No reason given", esc_reason, sizeof(esc_reason));
    gh_duration_text(duration_s, 0, "none", dur, sizeof(dur));
    if (case_number > 0)
        snprintf(num, sizeof(num), "#%" PRId64, case_number);
    else
        snprintf(num, sizeof(num), "-");

    gh_buf_init(&b, 16384);
    for (const char *p = tpl; *p && rc == GH_OK;) {
        static const char *const names[] = {"{action}", "{guild}", "{reason}", "{duration}", "{case}"};
        const char *values[] = {esc_action, esc_guild, esc_reason, dur, num};
        size_t i;

        for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
            if (strncmp(p, names[i], strlen(names[i])) == 0)
                break;
        if (i < sizeof(names) / sizeof(names[0])) {
            rc = gh_buf_puts(&b, values[i]);
            p += strlen(names[i]);
        } else {
            rc = gh_buf_append(&b, p, 1);
            p++;
        }
    }
    if (rc == GH_OK) {
        const char *text = gh_buf_cstr(&b);
        size_t len = strlen(text);
        if (len >= n) {
            /* Cut at a character boundary; the caller learns it was cut. */
            len = n - 1;
            while (len > 0 && ((unsigned char)text[len] & 0xC0) == 0x80)
                len--;
            rc = GH_ETOOBIG;
        }
        memcpy(out, text, len);
        out[len] = '\0';
    }
    gh_buf_cleanup(&b);
    return rc;
}
