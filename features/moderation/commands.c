/* commands.c - moderation's slash and context-menu commands, and the feature.
 *
 * Every action command follows one path (do_action): read the options (the
 * target from data.resolved, the duration through gh_jschema_duration, the
 * reason checked against GH_MOD_REASON_MAX), load the settings, run
 * gh_mod_check (a refusal is answered ephemerally and recorded as a security
 * event), then gh_mod_act, which records the case and calls Discord. The
 * answer is public when the action happened and ephemeral otherwise; no
 * answer pings anyone (allowed_mentions parse []), and user text is escaped.
 *
 * /purge, /slowmode and /lockdown act on channels and keep no case; they call
 * Discord directly (lib/discord/rest.h). /lockdown remembers the @everyone
 * overwrite's Send Messages bits before it changed them in Redis
 * (bot:{g}:moderation:lockdown:<channel>, 30 days) so that off restores them;
 * without that key, off clears the deny bit it set. */
#include <ctype.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <hiredis/hiredis.h>
#include <json-c/json.h>

#include "core/ctx.h"
#include "core/err.h"
#include "core/json.h"
#include "core/log.h"
#include "core/str.h"
#include "core/timeutil.h"
#include "discord/interaction.h"
#include "discord/perms.h"
#include "discord/respond.h"
#include "discord/rest.h"
#include "features/moderation/moderation.h"
#include "features/registry.h"
#include "store/pg.h"
#include "store/redis.h"
#include "web/jschema.h"

#define CONTENT_MAX 2000
#define TIMEOUT_MAX_S ((int64_t)28 * 86400) /* Discord's limit on communication_disabled_until */
#define BULK_DELETE_MAX_AGE_MS (14LL * 86400 * 1000 - 60LL * 1000) /* 14 days, a minute of margin */
#define LOCKDOWN_TTL_S (30 * 86400)
#define CASES_PER_PAGE 10
#define SLOWMODE_MAX_S 21600

/* The documented source is features/moderation/schema.json; a unit test
 * checks that this text is identical to it. */
static const char moderation_schema[] =
    "{\n"
    "  \"type\": \"object\",\n"
    "  \"title\": \"Moderation\",\n"
    "  \"properties\": {\n"
    "    \"enabled\": {\n"
    "      \"type\": \"boolean\",\n"
    "      \"title\": \"Enabled\",\n"
    "      \"description\": \"Turns the moderation commands on or off in this server.\",\n"
    "      \"default\": true\n"
    "    },\n"
    "    \"mod_log_channel_id\": {\n"
    "      \"type\": \"string\",\n"
    "      \"format\": \"channel\",\n"
    "      \"title\": \"Mod-log channel\",\n"
    "      \"description\": \"Every case is posted here: number, action, member, moderator, reason and "
    "duration.\"\n"
    "    },\n"
    "    \"mute_role_id\": {\n"
    "      \"type\": \"string\",\n"
    "      \"format\": \"role\",\n"
    "      \"title\": \"Mute role\",\n"
    "      \"description\": \"The role /mute gives. It must deny Send Messages in your channels and sit "
    "below Guildhall's role.\"\n"
    "    },\n"
    "    \"jail_role_id\": {\n"
    "      \"type\": \"string\",\n"
    "      \"format\": \"role\",\n"
    "      \"title\": \"Jail role\",\n"
    "      \"description\": \"The only role a jailed member keeps; their other roles come back when the jail "
    "ends.\"\n"
    "    },\n"
    "    \"moderator_roles\": {\n"
    "      \"type\": \"array\",\n"
    "      \"title\": \"Moderator tier roles\",\n"
    "      \"description\": \"Members with one of these roles may warn, time out, mute and jail, even "
    "without Discord's permissions.\",\n"
    "      \"items\": {\"type\": \"string\", \"format\": \"role\"},\n"
    "      \"maxItems\": 10,\n"
    "      \"uniqueItems\": true\n"
    "    },\n"
    "    \"admin_roles\": {\n"
    "      \"type\": \"array\",\n"
    "      \"title\": \"Admin tier roles\",\n"
    "      \"description\": \"Members with one of these roles may also kick and ban.\",\n"
    "      \"items\": {\"type\": \"string\", \"format\": \"role\"},\n"
    "      \"maxItems\": 10,\n"
    "      \"uniqueItems\": true\n"
    "    },\n"
    "    \"dm_on_action\": {\n"
    "      \"type\": \"boolean\",\n"
    "      \"title\": \"DM the member\",\n"
    "      \"description\": \"Send the member a direct message before a kick or ban, and on a warning or "
    "timeout.\",\n"
    "      \"default\": true\n"
    "    },\n"
    "    \"dm_template\": {\n"
    "      \"type\": \"string\",\n"
    "      \"title\": \"DM text\",\n"
    "      \"description\": \"Placeholders: {action}, {guild}, {reason}, {duration}, {case}.\",\n"
    "      \"maxLength\": 1000,\n"
    "      \"default\": \"You received a {action} in {guild}. Reason: {reason}\"\n"
    "    },\n"
    "    \"warn_expire\": {\n"
    "      \"type\": \"boolean\",\n"
    "      \"title\": \"Warnings expire\",\n"
    "      \"description\": \"Off: warnings count until a moderator voids them.\",\n"
    "      \"default\": true\n"
    "    },\n"
    "    \"warn_decay\": {\n"
    "      \"type\": \"string\",\n"
    "      \"format\": \"duration\",\n"
    "      \"title\": \"Warnings expire after\",\n"
    "      \"description\": \"An active warning stops counting after this long (it stays in the "
    "history).\",\n"
    "      \"default\": \"30d\"\n"
    "    },\n"
    "    \"escalation_enabled\": {\n"
    "      \"type\": \"boolean\",\n"
    "      \"title\": \"Escalation\",\n"
    "      \"description\": \"Act automatically when a member reaches a number of active warnings.\",\n"
    "      \"default\": true\n"
    "    },\n"
    "    \"thresholds\": {\n"
    "      \"type\": \"array\",\n"
    "      \"title\": \"Escalation steps\",\n"
    "      \"description\": \"Checked in ascending order of warnings.\",\n"
    "      \"maxItems\": 10,\n"
    "      \"items\": {\n"
    "        \"type\": \"object\",\n"
    "        \"properties\": {\n"
    "          \"warnings\": {\"type\": \"integer\", \"minimum\": 1, \"maximum\": 100, \"title\": \"Active "
    "warnings\"},\n"
    "          \"action\": {\"type\": \"string\", \"enum\": [\"timeout\", \"mute\", \"jail\", \"kick\", "
    "\"tempban\", \"ban\"], \"title\": \"Action\"},\n"
    "          \"duration\": {\"type\": \"string\", \"format\": \"duration\", \"title\": \"For\", "
    "\"description\": \"For timeout, mute, jail and tempban.\"}\n"
    "        },\n"
    "        \"required\": [\"warnings\", \"action\"],\n"
    "        \"additionalProperties\": false\n"
    "      },\n"
    "      \"default\": [\n"
    "        {\"warnings\": 3, \"action\": \"timeout\", \"duration\": \"1h\"},\n"
    "        {\"warnings\": 5, \"action\": \"kick\"},\n"
    "        {\"warnings\": 7, \"action\": \"ban\"}\n"
    "      ]\n"
    "    }\n"
    "  },\n"
    "  \"additionalProperties\": false\n"
    "}\n";

/* ------------------------------------------------------------------------ */
/* replies */

static int reply(struct gh_buf *out, int ephemeral, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A message response; content past 2000 characters is cut by respond.c. */
static int reply(struct gh_buf *out, int ephemeral, const char *fmt, ...)
{
    struct gh_buf b;
    va_list ap;
    int rc;

    gh_buf_init(&b, (size_t)CONTENT_MAX * 4);
    va_start(ap, fmt);
    rc = gh_buf_vprintf(&b, fmt, ap);
    va_end(ap);
    if (rc == GH_OK || rc == GH_ETOOBIG)
        rc = gh_resp_message(out, gh_buf_cstr(&b), ephemeral);
    gh_buf_cleanup(&b);
    return rc;
}

/* Characters (UTF-8 code points) of s. */
static size_t utf8_len(const char *s)
{
    size_t n = 0;

    for (; *s; s++)
        n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

/* ------------------------------------------------------------------------ */
/* security events */

/* A refusal: a warn line starting "security: moderation." and a
 * security_events row (best effort: a PostgreSQL failure is logged). */
static void security_event(struct gh_ctx *ctx, const struct gh_interaction *ix, const char *command,
                           uint64_t target_id, const char *why)
{
    char gid[24], uid[24], tid[24], path[48];
    const char *params[6];
    json_object *d = json_object_new_object();

    GH_WARN(&ctx->log,
            "security: moderation.refused: /%s by user %" PRIu64 " on %" PRIu64 " in guild %" PRIu64 ": %s",
            command, ix->user_id, target_id, ix->guild_id, why);
    if (!d || !ctx->pg)
        goto out;
    (void)snprintf(gid, sizeof(gid), "%" PRIu64, ix->guild_id);
    (void)snprintf(uid, sizeof(uid), "%" PRIu64, ix->user_id);
    (void)snprintf(tid, sizeof(tid), "%" PRIu64, target_id);
    (void)snprintf(path, sizeof(path), "/%s", command);
    json_object_object_add(d, "reason", json_object_new_string(why));
    json_object_object_add(d, "command", json_object_new_string(command));
    if (target_id)
        json_object_object_add(d, "target_id", json_object_new_string(tid));
    params[0] = ix->guild_id ? gid : NULL;
    params[1] = ix->user_id ? uid : NULL;
    params[2] = "moderation.refused";
    params[3] = path;
    params[4] = json_object_to_json_string_ext(d, JSON_C_TO_STRING_PLAIN);
    params[5] = ctx->log.corr;
    if (gh_pg_command(ctx->pg,
                      "INSERT INTO security_events (guild_id, user_id, kind, method, path, detail, corr) "
                      "VALUES ($1, $2, $3, 'COMMAND', $4, $5, $6)",
                      6, params) != GH_OK)
        GH_ERROR(&ctx->log, "security: could not record moderation.refused in security_events");
out:
    json_object_put(d);
}

/* Runs gh_mod_check; on a refusal writes the ephemeral answer into out and
 * returns 0 (the caller returns GH_OK). 1 = go on. */
static int checked(struct gh_ctx *ctx, const struct gh_interaction *ix, const struct gh_mod_settings *s,
                   const struct gh_mod_check *chk, const char *command, struct gh_buf *out, int *rc)
{
    char why[512];
    int r = gh_mod_check(ctx, ix, s, chk, why, sizeof(why));

    if (r == GH_OK)
        return 1;
    if (!why[0])
        (void)snprintf(why, sizeof(why), "This action is not allowed here (%s).", gh_strerror(r));
    if (r == GH_EFORBIDDEN)
        security_event(ctx, ix, command, chk->target_id, why);
    else
        GH_WARN(&ctx->log, "moderation: /%s not checked: %s", command, gh_strerror(r));
    *rc = reply(out, 1, "%s", why);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* options */

/* The target: option `user` (or the context menu's target), its resolved
 * user and member objects (borrowed, NULL when absent). */
struct target {
    uint64_t id;
    json_object *user;
    json_object *member;
};

static json_object *resolved(const struct gh_interaction *ix, const char *kind, uint64_t id)
{
    char key[24];
    json_object *r = ix->data ? gh_json_get_obj(ix->data, "resolved") : NULL;
    json_object *m = r ? gh_json_get_obj(r, kind) : NULL;

    (void)snprintf(key, sizeof(key), "%" PRIu64, id);
    return m ? gh_json_get_obj(m, key) : NULL;
}

/* "123", "<@123>", "<@!123>" -> 123; 0 otherwise. */
static uint64_t parse_user_ref(const char *s)
{
    char digits[24];
    size_t n;

    if (!s)
        return 0;
    if (s[0] == '<' && s[1] == '@') {
        s += 2;
        if (*s == '!')
            s++;
        n = strcspn(s, ">");
        if (s[n] != '>' || s[n + 1] != '\0' || n == 0 || n >= sizeof(digits))
            return 0;
        memcpy(digits, s, n);
        digits[n] = '\0';
        return gh_snowflake_parse(digits);
    }
    return gh_snowflake_parse(s);
}

static int get_target(const struct gh_interaction *ix, struct target *t)
{
    memset(t, 0, sizeof(*t));
    if (ix->command_type == 2)
        t->id = ix->target_id;
    else
        t->id = parse_user_ref(gh_interaction_option_str(ix, "user"));
    if (!t->id)
        return GH_EINVAL;
    t->user = resolved(ix, "users", t->id);
    t->member = resolved(ix, "members", t->id);
    return GH_OK;
}

/* The reason option (NULL when absent); 0 with an answer in out when too
 * long. */
static int get_reason(const struct gh_interaction *ix, const char *name, const char **reason,
                      struct gh_buf *out, int *rc)
{
    *reason = gh_interaction_option_str(ix, name);
    if (*reason && !(*reason)[0])
        *reason = NULL;
    if (*reason && utf8_len(*reason) > GH_MOD_REASON_MAX) {
        *rc = reply(out, 1, "The reason is %zu characters long; keep it to %d characters and try again.",
                    utf8_len(*reason), GH_MOD_REASON_MAX);
        return 0;
    }
    return 1;
}

/* The duration option: *secs 0 when absent; 0 with an answer in out when
 * malformed or above max_s. */
static int get_duration(const struct gh_interaction *ix, int64_t max_s, const char *what, int64_t *secs,
                        struct gh_buf *out, int *rc)
{
    const char *d = gh_interaction_option_str(ix, "duration");
    uint64_t v = 0;
    char esc[96], maxs[32];

    *secs = 0;
    if (!d || !d[0])
        return 1;
    gh_escape_markdown(d, esc, sizeof(esc));
    if (gh_jschema_duration(d, strlen(d), &v) != GH_OK) {
        *rc =
            reply(out, 1,
                  "\"%s\" is not a duration I understand. Write it like `30m`, `1h30m`, `7d` (from 1 second "
                  "to 365 days).",
                  esc);
        return 0;
    }
    if ((int64_t)v > max_s) {
        gh_duration_text(max_s, 2, "0s", maxs, sizeof(maxs));
        *rc = reply(out, 1, "%s can last at most %s; \"%s\" is longer. Pick a shorter duration.", what, maxs,
                    esc);
        return 0;
    }
    *secs = (int64_t)v;
    return 1;
}

/* Settings; on GH_EPG (neither store answered) the answer is written and 0
 * returned, unless degraded is allowed (channel tools: defaults are fine). */
static int load_settings(struct gh_ctx *ctx, const struct gh_interaction *ix, struct gh_mod_settings *s,
                         int allow_degraded, struct gh_buf *out, int *rc)
{
    int r = gh_mod_settings_load(ctx, ix->guild_id, s);

    if (r == GH_OK || allow_degraded)
        return 1;
    GH_ERROR(&ctx->log, "moderation: settings of guild %" PRIu64 " unreadable: %s", ix->guild_id,
             gh_strerror(r));
    *rc = reply(out, 1, "The database is unavailable, so nothing was done. Try again in a minute.");
    return 0;
}

/* ------------------------------------------------------------------------ */
/* actions with a case */

enum dur_mode { DUR_NONE, DUR_OPTIONAL, DUR_REQUIRED };

struct action_spec {
    const char *command; /* for logs and security events */
    enum gh_mod_type type;
    uint64_t need;
    uint64_t bot_need; /* 0 = need */
    int bot_need_none;
    enum gh_mod_tier tier;
    enum dur_mode duration;
    int64_t max_duration_s;
    int needs_member;          /* refuse a user who is not in the server */
    const char *reason_option; /* NULL = "reason" */
};

static const char *verb_of(enum gh_mod_type t)
{
    switch (t) {
    case GH_MOD_WARN:
        return "warned";
    case GH_MOD_TIMEOUT:
        return "timed out";
    case GH_MOD_UNTIMEOUT:
        return "no longer timed out";
    case GH_MOD_KICK:
        return "kicked";
    case GH_MOD_BAN:
    case GH_MOD_TEMPBAN:
    case GH_MOD_HACKBAN:
        return "banned";
    case GH_MOD_UNBAN:
        return "unbanned";
    case GH_MOD_SOFTBAN:
        return "softbanned (banned and unbanned; a day of messages deleted)";
    case GH_MOD_MUTE:
        return "muted";
    case GH_MOD_JAIL:
        return "jailed";
    case GH_MOD_NOTE:
        return "noted";
    case GH_MOD_TYPE_COUNT:
        break;
    }
    return "acted on";
}

/* The answer after gh_mod_act. */
static int act_answer(struct gh_ctx *ctx, const struct gh_mod_request *req, int act_rc, int duplicate,
                      const struct gh_mod_case *c, struct gh_buf *out)
{
    char reason[GH_MOD_REASON_MAX * 8 + 64], err[600], dur[48] = "", del[96] = "";

    if (act_rc == GH_EPG) {
        GH_ERROR(&ctx->log, "moderation: %s of %" PRIu64 " not recorded: PostgreSQL unavailable",
                 gh_mod_type_name(req->type), req->target_id);
        return reply(out, 1,
                     "The database is unavailable, so nothing was done (no case, no action on Discord). Try "
                     "again in a minute.");
    }
    if (act_rc == GH_OK && duplicate)
        return reply(out, 1, "Case #%" PRId64 ": already done (duplicate delivery).", c->number);
    if (act_rc != GH_OK) {
        gh_escape_markdown(c->error[0] ? c->error : gh_strerror(act_rc), err, sizeof(err));
        GH_WARN(&ctx->log, "moderation: %s of %" PRIu64 " failed (case #%" PRId64 "): %s",
                gh_mod_type_name(req->type), req->target_id, c->number,
                c->error[0] ? c->error : gh_strerror(act_rc));
        if (c->number > 0)
            return reply(out, 1, "Discord refused: %s \xe2\x80\x94 case #%" PRId64 " recorded as failed.",
                         err, c->number);
        return reply(out, 1, "Discord refused: %s \xe2\x80\x94 nothing was recorded.", err);
    }
    gh_escape_markdown(req->reason ? req->reason : "no reason given", reason, sizeof(reason));
    if (req->duration_s > 0) {
        char d[32];
        gh_duration_text(req->duration_s, 2, "0s", d, sizeof(d));
        (void)snprintf(dur, sizeof(dur), " for %s", d);
    }
    if ((req->type == GH_MOD_BAN || req->type == GH_MOD_TEMPBAN || req->type == GH_MOD_HACKBAN) &&
        req->delete_message_s > 0) {
        char d[32];
        gh_duration_text(req->delete_message_s, 2, "0s", d, sizeof(d));
        (void)snprintf(del, sizeof(del), " Their messages of the last %s were deleted.", d);
    }
    if (req->type == GH_MOD_NOTE)
        return reply(out, 1,
                     "**Case #%" PRId64 "**: note on <@%" PRIu64 "> saved (only moderators see it).\n%s",
                     c->number, req->target_id, reason);
    return reply(out, 0, "**Case #%" PRId64 "** \xc2\xb7 <@%" PRIu64 "> %s%s%s.%s\n**Reason:** %s", c->number,
                 req->target_id, verb_of(req->type), req->type == GH_MOD_HACKBAN ? " (not a member)" : "",
                 dur, del, reason);
}

/* The whole path of one action. fixed_duration_s > 0 overrides the option
 * (context menu "Timeout 1 hour"). */
static int do_action(struct gh_ctx *ctx, const struct gh_interaction *ix, struct gh_buf *out,
                     const struct action_spec *spec, int64_t fixed_duration_s)
{
    struct gh_mod_settings s;
    struct gh_mod_check chk;
    struct gh_mod_request req;
    struct gh_mod_case c;
    struct target t;
    const char *reason = NULL;
    int64_t duration = 0, del = 0;
    int duplicate = 0, rc = GH_OK;

    memset(&c, 0, sizeof(c));
    if (!ix->guild_id)
        return reply(out, 1, "Moderation commands only work in a server.");
    if (get_target(ix, &t) != GH_OK)
        return reply(out, 1, "Pick a user (a mention or a user ID) and try again.");
    if (!get_reason(ix, spec->reason_option ? spec->reason_option : "reason", &reason, out, &rc))
        return rc;
    if (fixed_duration_s > 0) {
        duration = fixed_duration_s;
    } else if (spec->duration != DUR_NONE) {
        if (!get_duration(ix, spec->max_duration_s,
                          spec->type == GH_MOD_TIMEOUT ? "A timeout" : "This action", &duration, out, &rc))
            return rc;
        if (spec->duration == DUR_REQUIRED && duration <= 0)
            return reply(out, 1, "Give a duration, like `1h` or `7d`.");
    }
    if (spec->needs_member && !t.member)
        return reply(out, 1, "<@%" PRIu64 "> is not a member of this server, so they can't be %s.", t.id,
                     verb_of(spec->type));
    if (!load_settings(ctx, ix, &s, 0, out, &rc))
        return rc;

    memset(&req, 0, sizeof(req));
    req.type = spec->type;
    req.guild_id = ix->guild_id;
    req.target_id = t.id;
    req.moderator_id = ix->user_id;
    req.reason = reason;
    req.duration_s = duration;
    req.interaction_id = ix->id;
    req.target_roles = t.member ? gh_json_get_arr(t.member, "roles") : NULL;
    if (spec->type == GH_MOD_BAN) {
        int64_t v = 0;
        if (gh_interaction_option_int(ix, "delete_messages", &v) == GH_OK) {
            if (v < 0 || v > 604800)
                return reply(out, 1, "Message deletion goes from none to 7 days.");
            del = v;
        }
        req.delete_message_s = (int)del;
        if (duration > 0)
            req.type = GH_MOD_TEMPBAN;
        else if (!t.member)
            req.type = GH_MOD_HACKBAN;
    } else if (spec->type == GH_MOD_SOFTBAN) {
        req.delete_message_s = 86400;
    }
    if (req.type == GH_MOD_MUTE && !s.mute_role_id)
        return reply(
            out, 1,
            "No mute role is set for this server. Choose one in the dashboard (Moderation > Mute role), "
            "then try again.");
    if (req.type == GH_MOD_JAIL && !s.jail_role_id)
        return reply(
            out, 1,
            "No jail role is set for this server. Choose one in the dashboard (Moderation > Jail role), "
            "then try again.");

    memset(&chk, 0, sizeof(chk));
    chk.need = spec->need;
    chk.bot_need = spec->bot_need;
    chk.bot_need_none = spec->bot_need_none;
    chk.tier = spec->tier;
    chk.target_id = req.type == GH_MOD_NOTE ? 0 : t.id;
    chk.target_is_member = t.member != NULL;
    chk.target_member = t.member;
    if (!checked(ctx, ix, &s, &chk, spec->command, out, &rc))
        return rc;

    rc = gh_mod_act(ctx, &req, &c, &duplicate);
    rc = act_answer(ctx, &req, rc, duplicate, &c, out);
    gh_mod_case_cleanup(&c);
    return rc;
}

#define P_KICK "2"
#define P_BAN "4"
#define P_MANAGE_CHANNELS "16"
#define P_MANAGE_MESSAGES "8192"
#define P_MODERATE "1099511627776"

static const struct action_spec spec_warn = {.command = "warn",
                                             .type = GH_MOD_WARN,
                                             .need = GH_PERM(MODERATE_MEMBERS),
                                             .bot_need_none = 1,
                                             .tier = GH_MOD_TIER_MODERATOR};
static const struct action_spec spec_timeout = {.command = "timeout",
                                                .type = GH_MOD_TIMEOUT,
                                                .need = GH_PERM(MODERATE_MEMBERS),
                                                .tier = GH_MOD_TIER_MODERATOR,
                                                .duration = DUR_REQUIRED,
                                                .max_duration_s = TIMEOUT_MAX_S,
                                                .needs_member = 1};
static const struct action_spec spec_untimeout = {.command = "untimeout",
                                                  .type = GH_MOD_UNTIMEOUT,
                                                  .need = GH_PERM(MODERATE_MEMBERS),
                                                  .tier = GH_MOD_TIER_MODERATOR,
                                                  .needs_member = 1};
static const struct action_spec spec_kick = {.command = "kick",
                                             .type = GH_MOD_KICK,
                                             .need = GH_PERM(KICK_MEMBERS),
                                             .tier = GH_MOD_TIER_ADMIN,
                                             .needs_member = 1};
static const struct action_spec spec_ban = {.command = "ban",
                                            .type = GH_MOD_BAN,
                                            .need = GH_PERM(BAN_MEMBERS),
                                            .tier = GH_MOD_TIER_ADMIN,
                                            .duration = DUR_OPTIONAL,
                                            .max_duration_s = 365LL * 86400};
static const struct action_spec spec_tempban = {.command = "tempban",
                                                .type = GH_MOD_TEMPBAN,
                                                .need = GH_PERM(BAN_MEMBERS),
                                                .tier = GH_MOD_TIER_ADMIN,
                                                .duration = DUR_REQUIRED,
                                                .max_duration_s = 365LL * 86400};
static const struct action_spec spec_unban = {
    .command = "unban", .type = GH_MOD_UNBAN, .need = GH_PERM(BAN_MEMBERS), .tier = GH_MOD_TIER_ADMIN};
static const struct action_spec spec_softban = {
    .command = "softban", .type = GH_MOD_SOFTBAN, .need = GH_PERM(BAN_MEMBERS), .tier = GH_MOD_TIER_ADMIN};
static const struct action_spec spec_mute = {.command = "mute",
                                             .type = GH_MOD_MUTE,
                                             .need = GH_PERM(MODERATE_MEMBERS),
                                             .bot_need = GH_PERM(MANAGE_ROLES),
                                             .tier = GH_MOD_TIER_MODERATOR,
                                             .duration = DUR_OPTIONAL,
                                             .max_duration_s = 365LL * 86400,
                                             .needs_member = 1};
static const struct action_spec spec_jail = {.command = "jail",
                                             .type = GH_MOD_JAIL,
                                             .need = GH_PERM(MODERATE_MEMBERS),
                                             .bot_need = GH_PERM(MANAGE_ROLES),
                                             .tier = GH_MOD_TIER_MODERATOR,
                                             .duration = DUR_OPTIONAL,
                                             .max_duration_s = 365LL * 86400,
                                             .needs_member = 1};
static const struct action_spec spec_note = {.command = "note",
                                             .type = GH_MOD_NOTE,
                                             .need = GH_PERM(MODERATE_MEMBERS),
                                             .bot_need_none = 1,
                                             .tier = GH_MOD_TIER_MODERATOR,
                                             .reason_option = "text"};

static int cmd_warn(struct gh_ctx *ctx, const struct gh_interaction *ix, struct gh_buf *out)
{
    return do_action(ctx, ix, out, &spec_warn, 0);
}
static int cmd_timeout(struct gh_ctx *ctx, const struct gh_interaction *ix, struct gh_buf *out)
{
    return do_action(ctx, ix, out, &spec_timeout, 0);
}
static int cmd_untimeout(struct gh_ctx *ctx, const struct gh_interaction *ix, struct gh_buf *out)
{
    return do_action(ctx, ix, out, &spec_untimeout, 0);
}
static int cmd_kick(struct gh_ctx *ctx, const struct gh_interaction *ix, struct gh_buf *out)
{
    return do_action(ctx, ix, out, &spec_kick, 0);
}
static int cmd_ban(struct gh_ctx *ctx, const struct gh_interaction *ix, struct gh_buf *out)
{
    return do_action(ctx, ix, out, &spec_ban, 0);
}
static int cmd_tempban(struct gh_ctx *ctx, const struct gh_interaction *ix, struct gh_buf *out)
{
    return do_action(ctx, ix, out, &spec_tempban, 0);
}
static int cmd_unban(struct gh_ctx *ctx, const struct gh_interaction *ix, struct gh_buf *out)
{
    return do_action(ctx, ix, out, &spec_unban, 0);
}
static int cmd_softban(struct gh_ctx *ctx, const struct gh_interaction *ix, struct gh_buf *out)
{
    return do_action(ctx, ix, out, &spec_softban, 0);
}
static int cmd_mute(struct gh_ctx *ctx, const struct gh_interaction *ix, struct gh_buf *out)
{
    return do_action(ctx, ix, out, &spec_mute, 0);
}
static int cmd_jail(struct gh_ctx *ctx, const struct gh_interaction *ix, struct gh_buf *out)
{
    return do_action(ctx, ix, out, &spec_jail, 0);
}
static int ctx_timeout_hour(struct gh_ctx *ctx, const struct gh_interaction *ix, struct gh_buf *out)
{
    return do_action(ctx, ix, out, &spec_timeout, 3600);
}

/* ------------------------------------------------------------------------ */
/* /case, /cases, /note */

/* Permission to read or edit cases: Moderate Members or the moderator tier;
 * no target (hierarchy does not apply to reading history). */
static int may_manage_cases(struct gh_ctx *ctx, const struct gh_interaction *ix, const char *command,
                            struct gh_mod_settings *s, struct gh_buf *out, int *rc)
{
    struct gh_mod_check chk;

    if (!ix->guild_id) {
        *rc = reply(out, 1, "Moderation commands only work in a server.");
        return 0;
    }
    if (!load_settings(ctx, ix, s, 0, out, rc))
        return 0;
    memset(&chk, 0, sizeof(chk));
    chk.need = GH_PERM(MODERATE_MEMBERS);
    chk.tier = GH_MOD_TIER_MODERATOR;
    chk.bot_need_none = 1;
    return checked(ctx, ix, s, &chk, command, out, rc);
}

static int store_failed(struct gh_ctx *ctx, const char *what, int rc, struct gh_buf *out)
{
    GH_ERROR(&ctx->log, "moderation: %s failed: %s", what, gh_strerror(rc));
    return reply(out, 1,
                 "The database is unavailable, so nothing was read or changed. Try again in a minute.");
}

static int case_number(const struct gh_interaction *ix, int64_t *n, struct gh_buf *out, int *rc)
{
    if (gh_interaction_option_int(ix, "number", n) != GH_OK || *n < 1) {
        *rc = reply(out, 1, "Give a case number (1 or more), as shown by `/cases`.");
        return 0;
    }
    return 1;
}

static int no_case(int64_t n, struct gh_buf *out)
{
    return reply(out, 1, "There is no case #%" PRId64 " in this server. `/cases user:<member>` lists them.",
                 n);
}

/* ISO time -> Discord timestamp markup "<t:unix:f>" when it parses. */
static void fmt_time(int64_t ms, char *out, size_t size)
{
    if (ms > 0)
        (void)snprintf(out, size, "<t:%" PRId64 ":f>", ms / 1000);
    else
        (void)snprintf(out, size, "-");
}

static int case_show(struct gh_ctx *ctx, const struct gh_interaction *ix, struct gh_buf *out)
{
    struct gh_mod_case c;
    struct gh_buf b;
    char esc[GH_MOD_REASON_MAX * 8 + 64], t1[40], t2[40], d[32];
    int64_t n = 0;
    int rc = GH_OK;

    memset(&c, 0, sizeof(c));
    if (!case_number(ix, &n, out, &rc))
        return rc;
    rc = gh_mod_case_get(ctx, ix->guild_id, n, &c);
    if (rc == GH_ENOTFOUND)
        return no_case(n, out);
    if (rc != GH_OK)
        return store_failed(ctx, "case get", rc, out);
    gh_buf_init(&b, (size_t)CONTENT_MAX * 4);
    fmt_time(c.created_ms, t1, sizeof(t1));
    gh_buf_printf(
        &b, "**Case #%" PRId64 "** \xc2\xb7 %s \xc2\xb7 %s\n**Member:** <@%" PRIu64 "> (`%" PRIu64 "`)\n",
        c.number, gh_mod_type_name(c.type), gh_mod_status_name(c.status), c.target_id, c.target_id);
    if (c.moderator_id)
        gh_buf_printf(&b, "**Moderator:** <@%" PRIu64 ">\n", c.moderator_id);
    else
        gh_buf_puts(&b, "**Moderator:** Guildhall (automatic)\n");
    gh_escape_markdown(c.reason[0] ? c.reason : "no reason given", esc, sizeof(esc));
    gh_buf_printf(&b, "**Reason:** %s\n**When:** %s\n", esc, t1);
    if (c.duration_s > 0) {
        gh_duration_text(c.duration_s, 2, "0s", d, sizeof(d));
        gh_buf_printf(&b, "**Duration:** %s\n", d);
    }
    if (c.expires_ms > 0) {
        fmt_time(c.expires_ms, t2, sizeof(t2));
        gh_buf_printf(&b, "**Expires:** %s\n", t2);
    }
    if (c.refs_case > 0)
        gh_buf_printf(&b, "**Triggered by:** case #%" PRId64 "\n", c.refs_case);
    if (c.status == GH_MOD_VOID) {
        gh_escape_markdown(c.void_reason[0] ? c.void_reason : "no reason given", esc, sizeof(esc));
        gh_buf_printf(&b, "**Voided by:** <@%" PRIu64 ">: %s\n", c.voided_by, esc);
    }
    if (c.status == GH_MOD_FAILED && c.error[0]) {
        gh_escape_markdown(c.error, esc, sizeof(esc));
        gh_buf_printf(&b, "**Discord's error:** %s\n", esc);
    }
    if (c.lift == GH_MOD_LIFT_FAILED) {
        gh_escape_markdown(c.lift_error[0] ? c.lift_error : "unknown error", esc, sizeof(esc));
        gh_buf_printf(&b, "**Lift failed:** %s\n", esc);
    }
    rc = gh_resp_message(out, gh_buf_cstr(&b), 1);
    gh_buf_cleanup(&b);
    gh_mod_case_cleanup(&c);
    return rc;
}

static int case_reason(struct gh_ctx *ctx, const struct gh_interaction *ix, struct gh_buf *out)
{
    const char *text = NULL;
    char esc[GH_MOD_REASON_MAX * 8 + 64];
    int64_t n = 0;
    int rc = GH_OK;

    if (!case_number(ix, &n, out, &rc) || !get_reason(ix, "text", &text, out, &rc))
        return rc;
    if (!text)
        return reply(out, 1, "Give the new reason.");
    rc = gh_mod_case_set_reason(ctx, ix->guild_id, n, text, ix->user_id);
    if (rc == GH_ENOTFOUND)
        return no_case(n, out);
    if (rc != GH_OK)
        return store_failed(ctx, "case reason", rc, out);
    gh_escape_markdown(text, esc, sizeof(esc));
    return reply(out, 1, "Case #%" PRId64 ": reason changed to: %s", n, esc);
}

static int case_void(struct gh_ctx *ctx, const struct gh_interaction *ix, struct gh_buf *out)
{
    const char *why = NULL;
    int64_t n = 0;
    int rc = GH_OK;

    if (!case_number(ix, &n, out, &rc) || !get_reason(ix, "reason", &why, out, &rc))
        return rc;
    if (!why)
        return reply(out, 1, "Say why the case is void.");
    rc = gh_mod_case_void(ctx, ix->guild_id, n, why, ix->user_id);
    if (rc == GH_ENOTFOUND)
        return no_case(n, out);
    if (rc == GH_ECONFLICT)
        return reply(out, 1, "Case #%" PRId64 " is already void.", n);
    if (rc != GH_OK)
        return store_failed(ctx, "case void", rc, out);
    return reply(out, 1,
                 "Case #%" PRId64
                 " is now void (kept in history; a voided warning no longer counts). It does not "
                 "undo the action on Discord.",
                 n);
}

static int cmd_case(struct gh_ctx *ctx, const struct gh_interaction *ix, struct gh_buf *out)
{
    static const struct {
        const char *name;
        gh_command_fn fn;
    } subs[] = {{"show", case_show}, {"reason", case_reason}, {"void", case_void}};
    struct gh_mod_settings s;
    const char *sub = gh_interaction_subcommand(ix);
    int rc = GH_OK;

    if (!may_manage_cases(ctx, ix, "case", &s, out, &rc))
        return rc;
    for (size_t i = 0; sub && i < GH_COUNT(subs); i++)
        if (strcmp(sub, subs[i].name) == 0)
            return subs[i].fn(ctx, ix, out);
    GH_WARN(&ctx->log, "case: unknown subcommand %s", sub ? sub : "(none)");
    return GH_EINVAL;
}

/* One line per case of a JSON array from gh_mod_case_list, skipping the
 * first skip. */
static void case_lines(struct gh_buf *b, json_object *arr, int skip, int with_reason)
{
    size_t n = arr ? json_object_array_length(arr) : 0;

    for (size_t i = (size_t)skip; i < n; i++) {
        json_object *o = json_object_array_get_idx(arr, i);
        const char *reason = gh_json_get_str(o, "reason"), *created = gh_json_get_str(o, "created_at");
        const char *type = gh_json_get_str(o, "type"), *status = gh_json_get_str(o, "status");
        char esc[GH_MOD_REASON_MAX * 8 + 64], cut[200];
        int64_t num = 0;

        (void)gh_json_get_int(o, "number", &num);
        snprintf(cut, sizeof(cut), "%s", reason && reason[0] ? reason : "no reason given");
        if (reason && strlen(reason) >= sizeof(cut)) { /* cut on a UTF-8 boundary */
            size_t k = sizeof(cut) - 4;
            while (k > 0 && ((unsigned char)cut[k] & 0xC0) == 0x80)
                k--;
            memcpy(cut + k, "...", 4);
        }
        gh_escape_markdown(cut, esc, sizeof(esc));
        gh_buf_printf(b, "`#%" PRId64 "` %s (%s) %.10s%s%s\n", num, type ? type : "?", status ? status : "?",
                      created ? created : "", with_reason ? " \xe2\x80\x94 " : "", with_reason ? esc : "");
    }
}

/* Lists a target's cases (type -1 = any) as an ephemeral answer. */
static int list_cases(struct gh_ctx *ctx, const struct gh_interaction *ix, uint64_t target, int type,
                      int64_t page, const char *title, struct gh_buf *out)
{
    struct gh_mod_filter f;
    struct gh_buf b;
    json_object *arr = NULL;
    int64_t total = 0;
    size_t got;
    int rc, skip;

    memset(&f, 0, sizeof(f));
    f.target_id = target;
    f.type = type;
    f.status = -1;
    f.limit = (int)(page * CASES_PER_PAGE);
    rc = gh_mod_case_list(ctx, ix->guild_id, &f, &arr, &total);
    if (rc != GH_OK)
        return store_failed(ctx, "case list", rc, out);
    got = arr ? json_object_array_length(arr) : 0;
    skip = (int)((page - 1) * CASES_PER_PAGE);
    gh_buf_init(&b, (size_t)CONTENT_MAX * 4);
    if (total == 0 || got <= (size_t)skip) {
        if (total == 0)
            gh_buf_printf(&b, "<@%" PRIu64 "> has no %s in this server.", target, title);
        else
            gh_buf_printf(&b, "Page %" PRId64 " is past the end: <@%" PRIu64 "> has %" PRId64 " %s.", page,
                          target, total, title);
    } else {
        int64_t pages = (total + CASES_PER_PAGE - 1) / CASES_PER_PAGE;
        gh_buf_printf(&b, "**%s of <@%" PRIu64 ">** (%" PRId64 ", page %" PRId64 " of %" PRId64 ")\n", title,
                      target, total, page, pages);
        case_lines(&b, arr, skip, 1);
        if (page < pages && page < 10)
            gh_buf_printf(&b, "Next: `page:%" PRId64 "`", page + 1);
    }
    rc = gh_resp_message(out, gh_buf_cstr(&b), 1);
    gh_buf_cleanup(&b);
    json_object_put(arr);
    return rc;
}

static int cmd_cases(struct gh_ctx *ctx, const struct gh_interaction *ix, struct gh_buf *out)
{
    struct gh_mod_settings s;
    struct target t;
    int64_t page = 1;
    int rc = GH_OK;

    if (!may_manage_cases(ctx, ix, "cases", &s, out, &rc))
        return rc;
    if (get_target(ix, &t) != GH_OK)
        return reply(out, 1, "Pick a user (a mention or a user ID) and try again.");
    if (gh_interaction_option_int(ix, "page", &page) != GH_OK)
        page = 1;
    if (page < 1 || page > 10)
        return reply(out, 1, "Pages go from 1 to 10; the dashboard shows older cases.");
    return list_cases(ctx, ix, t.id, -1, page, "Cases", out);
}

static int cmd_note(struct gh_ctx *ctx, const struct gh_interaction *ix, struct gh_buf *out)
{
    const char *sub = gh_interaction_subcommand(ix);
    struct gh_mod_settings s;
    struct target t;
    const char *text = NULL;
    int rc = GH_OK;

    if (sub && strcmp(sub, "add") == 0) {
        /* The note's text is the case's reason: same limit. */
        if (!get_reason(ix, "text", &text, out, &rc))
            return rc;
        if (!text)
            return reply(out, 1, "Write the note's text.");
        return do_action(ctx, ix, out, &spec_note, 0);
    }
    if (sub && strcmp(sub, "list") == 0) {
        if (!may_manage_cases(ctx, ix, "note", &s, out, &rc))
            return rc;
        if (get_target(ix, &t) != GH_OK)
            return reply(out, 1, "Pick a user (a mention or a user ID) and try again.");
        return list_cases(ctx, ix, t.id, GH_MOD_NOTE, 1, "Notes", out);
    }
    GH_WARN(&ctx->log, "note: unknown subcommand %s", sub ? sub : "(none)");
    return GH_EINVAL;
}

/* ------------------------------------------------------------------------ */
/* channel tools: /purge, /slowmode, /lockdown */

static int channel_check(struct gh_ctx *ctx, const struct gh_interaction *ix, const char *command,
                         uint64_t need, uint64_t bot_need, struct gh_buf *out, int *rc)
{
    struct gh_mod_settings s;
    struct gh_mod_check chk;

    if (!ix->guild_id) {
        *rc = reply(out, 1, "This command only works in a server.");
        return 0;
    }
    (void)load_settings(ctx, ix, &s, 1, out, rc); /* defaults are fine: no tier for channel tools */
    memset(&chk, 0, sizeof(chk));
    chk.need = need;
    chk.bot_need = bot_need;
    return checked(ctx, ix, &s, &chk, command, out, rc);
}

static int rest_call(struct gh_ctx *ctx, const char *method, const char *path, const char *body,
                     const char *audit, struct gh_rest_resp *resp)
{
    struct gh_rest_req req = {.method = method, .path = path, .body = body, .audit_reason = audit};

    memset(resp, 0, sizeof(*resp));
    if (body)
        req.body_len = strlen(body);
    if (!ctx->rest) {
        (void)snprintf(resp->error, sizeof(resp->error), "Discord is not configured");
        return GH_EUNAVAILABLE;
    }
    return gh_rest_do(ctx->rest, &req, resp);
}

static int discord_refused(struct gh_ctx *ctx, const char *what, int rc, const struct gh_rest_resp *resp,
                           struct gh_buf *out)
{
    char esc[600];

    GH_WARN(&ctx->log, "moderation: %s failed: %s (%s)", what, gh_strerror(rc), resp->error);
    gh_escape_markdown(resp->error[0] ? resp->error : gh_strerror(rc), esc, sizeof(esc));
    return reply(out, 1, "Discord refused: %s \xe2\x80\x94 nothing was changed.", esc);
}

static int ci_contains(const char *s, const char *needle)
{
    size_t n = strlen(needle);

    if (!n)
        return 1;
    for (; *s; s++)
        if (strncasecmp(s, needle, n) == 0)
            return 1;
    return 0;
}

static int cmd_purge(struct gh_ctx *ctx, const struct gh_interaction *ix, struct gh_buf *out)
{
    struct gh_rest_resp resp;
    json_object *msgs = NULL, *ids = NULL, *body = NULL;
    char path[128], audit[96];
    const char *contains = gh_interaction_option_str(ix, "contains");
    uint64_t user = parse_user_ref(gh_interaction_option_str(ix, "user"));
    int64_t amount = 0, now = gh_now_ms();
    int bots = 0, rc = GH_OK;
    size_t n = 0, picked = 0, too_old = 0;

    memset(&resp, 0, sizeof(resp));
    if (gh_interaction_option_int(ix, "amount", &amount) != GH_OK || amount < 1 || amount > 100)
        return reply(out, 1, "The amount goes from 1 to 100.");
    (void)gh_interaction_option_bool(ix, "bots", &bots);
    if (!channel_check(ctx, ix, "purge", GH_PERM(MANAGE_MESSAGES),
                       GH_PERM(MANAGE_MESSAGES) | GH_PERM(READ_MESSAGE_HISTORY), out, &rc))
        return rc;
    if (!ix->channel_id)
        return reply(out, 1, "Use /purge in the channel to clean.");
    (void)snprintf(audit, sizeof(audit), "/purge by %" PRIu64, ix->user_id);
    (void)snprintf(path, sizeof(path), "/channels/%" PRIu64 "/messages?limit=100", ix->channel_id);
    rc = rest_call(ctx, "GET", path, NULL, NULL, &resp);
    if (rc != GH_OK) {
        rc = discord_refused(ctx, "purge: reading messages", rc, &resp, out);
        goto out;
    }
    if (gh_json_parse(resp.body, resp.body_len, 16, &msgs) != GH_OK ||
        !json_object_is_type(msgs, json_type_array)) {
        GH_ERROR(&ctx->log, "purge: Discord sent malformed messages");
        rc = reply(out, 1, "Discord sent something I could not read; nothing was deleted.");
        goto out;
    }
    ids = json_object_new_array();
    if (!ids) {
        rc = GH_ENOMEM;
        goto out;
    }
    n = json_object_array_length(msgs);
    for (size_t i = 0; i < n && picked < (size_t)amount; i++) {
        json_object *m = json_object_array_get_idx(msgs, i), *author = gh_json_get_obj(m, "author");
        uint64_t id = gh_json_get_snowflake(m, "id");
        const char *content = gh_json_get_str(m, "content");
        int pinned = 0, is_bot = 0;

        if (!id)
            continue;
        (void)gh_json_get_bool(m, "pinned", &pinned);
        (void)gh_json_get_bool(author, "bot", &is_bot);
        if (pinned)
            continue;
        if (user && gh_json_get_snowflake(author, "id") != user)
            continue;
        if (bots && !is_bot)
            continue;
        if (contains && contains[0] && !(content && ci_contains(content, contains)))
            continue;
        if (now - gh_snowflake_ms(id) > BULK_DELETE_MAX_AGE_MS) {
            too_old++;
            continue;
        }
        json_object_array_add(ids, json_object_new_string(gh_json_get_str(m, "id")));
        picked++;
    }
    gh_rest_resp_cleanup(&resp);
    if (picked == 0) {
        rc = reply(out, 1, "No message matched among the last %zu%s. Nothing was deleted.", n,
                   too_old ? " (messages older than 14 days can't be bulk deleted)" : "");
        goto out;
    }
    if (picked == 1) {
        (void)snprintf(path, sizeof(path), "/channels/%" PRIu64 "/messages/%s", ix->channel_id,
                       json_object_get_string(json_object_array_get_idx(ids, 0)));
        rc = rest_call(ctx, "DELETE", path, NULL, audit, &resp);
    } else {
        body = json_object_new_object();
        if (!body) {
            rc = GH_ENOMEM;
            goto out;
        }
        json_object_object_add(body, "messages", json_object_get(ids));
        (void)snprintf(path, sizeof(path), "/channels/%" PRIu64 "/messages/bulk-delete", ix->channel_id);
        rc = rest_call(ctx, "POST", path, json_object_to_json_string_ext(body, JSON_C_TO_STRING_PLAIN), audit,
                       &resp);
    }
    if (rc != GH_OK) {
        rc = discord_refused(ctx, "purge: deleting", rc, &resp, out);
        goto out;
    }
    GH_INFO(&ctx->log, "purge: %zu messages deleted in channel %" PRIu64 " by %" PRIu64, picked,
            ix->channel_id, ix->user_id);
    rc = reply(out, 1, "Deleted %zu message%s.%s", picked, picked == 1 ? "" : "s",
               too_old ? " Messages older than 14 days were left (Discord can't bulk delete them)." : "");
out:
    gh_rest_resp_cleanup(&resp);
    json_object_put(body);
    json_object_put(ids);
    json_object_put(msgs);
    return rc;
}

static uint64_t channel_option(const struct gh_interaction *ix)
{
    uint64_t c = gh_snowflake_parse(gh_interaction_option_str(ix, "channel"));
    return c ? c : ix->channel_id;
}

static int cmd_slowmode(struct gh_ctx *ctx, const struct gh_interaction *ix, struct gh_buf *out)
{
    struct gh_rest_resp resp;
    char path[64], body[64], audit[96], d[32];
    uint64_t ch = channel_option(ix);
    int64_t secs = -1;
    int rc = GH_OK;

    if (gh_interaction_option_int(ix, "seconds", &secs) != GH_OK || secs < 0 || secs > SLOWMODE_MAX_S)
        return reply(out, 1, "Slowmode goes from 0 (off) to 21600 seconds (6 hours).");
    if (!channel_check(ctx, ix, "slowmode", GH_PERM(MANAGE_CHANNELS), 0, out, &rc))
        return rc;
    if (!ch)
        return reply(out, 1, "Pick a channel.");
    (void)snprintf(path, sizeof(path), "/channels/%" PRIu64, ch);
    (void)snprintf(body, sizeof(body), "{\"rate_limit_per_user\":%" PRId64 "}", secs);
    (void)snprintf(audit, sizeof(audit), "/slowmode by %" PRIu64, ix->user_id);
    rc = rest_call(ctx, "PATCH", path, body, audit, &resp);
    if (rc != GH_OK) {
        rc = discord_refused(ctx, "slowmode", rc, &resp, out);
        gh_rest_resp_cleanup(&resp);
        return rc;
    }
    gh_rest_resp_cleanup(&resp);
    GH_INFO(&ctx->log, "slowmode: channel %" PRIu64 " set to %" PRId64 " s by %" PRIu64, ch, secs,
            ix->user_id);
    if (secs == 0)
        return reply(out, 0, "Slowmode is off in <#%" PRIu64 ">.", ch);
    gh_duration_text(secs, 2, "0s", d, sizeof(d));
    return reply(out, 0, "Slowmode in <#%" PRIu64 ">: one message every %s per member.", ch, d);
}

/* The @everyone overwrite of a channel (id = the guild id). */
struct overwrite {
    int exists;
    uint64_t allow, deny;
};

static int read_overwrite(struct gh_ctx *ctx, uint64_t guild_id, uint64_t ch, struct overwrite *ow,
                          struct gh_rest_resp *resp)
{
    json_object *c = NULL, *list;
    char path[64];
    int rc;

    memset(ow, 0, sizeof(*ow));
    (void)snprintf(path, sizeof(path), "/channels/%" PRIu64, ch);
    rc = rest_call(ctx, "GET", path, NULL, NULL, resp);
    if (rc != GH_OK)
        return rc;
    if (gh_json_parse(resp->body, resp->body_len, 16, &c) != GH_OK) {
        (void)snprintf(resp->error, sizeof(resp->error), "malformed channel from Discord");
        return GH_EDISCORD;
    }
    list = gh_json_get_arr(c, "permission_overwrites");
    for (size_t i = 0; list && i < json_object_array_length(list); i++) {
        json_object *o = json_object_array_get_idx(list, i);
        if (gh_json_get_snowflake(o, "id") != guild_id)
            continue;
        ow->exists = 1;
        (void)gh_perms_parse(gh_json_get_str(o, "allow"), &ow->allow);
        (void)gh_perms_parse(gh_json_get_str(o, "deny"), &ow->deny);
    }
    json_object_put(c);
    return GH_OK;
}

static int write_overwrite(struct gh_ctx *ctx, uint64_t guild_id, uint64_t ch, uint64_t allow, uint64_t deny,
                           const char *audit, struct gh_rest_resp *resp)
{
    char path[96], body[128];

    (void)snprintf(path, sizeof(path), "/channels/%" PRIu64 "/permissions/%" PRIu64, ch, guild_id);
    if (!allow && !deny)
        return rest_call(ctx, "DELETE", path, NULL, audit, resp);
    (void)snprintf(body, sizeof(body), "{\"type\":0,\"allow\":\"%" PRIu64 "\",\"deny\":\"%" PRIu64 "\"}",
                   allow, deny);
    return rest_call(ctx, "PUT", path, body, audit, resp);
}

static int cmd_lockdown(struct gh_ctx *ctx, const struct gh_interaction *ix, struct gh_buf *out)
{
    const uint64_t send = GH_PERM(SEND_MESSAGES);
    const char *state = gh_interaction_option_str(ix, "state");
    struct gh_rest_resp resp;
    struct overwrite ow;
    redisReply *r = NULL;
    char key[128], audit[96], saved[64];
    uint64_t ch = channel_option(ix), allow, deny;
    int on, rc = GH_OK;

    memset(&resp, 0, sizeof(resp));
    if (!state || (strcmp(state, "on") != 0 && strcmp(state, "off") != 0))
        return reply(out, 1, "Choose `on` or `off`.");
    on = strcmp(state, "on") == 0;
    if (!channel_check(ctx, ix, "lockdown", GH_PERM(MANAGE_CHANNELS), GH_PERM(MANAGE_ROLES), out, &rc))
        return rc;
    if (!ch)
        return reply(out, 1, "Pick a channel.");
    (void)gh_key_guild(key, sizeof(key), ix->guild_id, "moderation", "lockdown:%" PRIu64, ch);
    (void)snprintf(audit, sizeof(audit), "/lockdown %s by %" PRIu64, state, ix->user_id);
    rc = read_overwrite(ctx, ix->guild_id, ch, &ow, &resp);
    if (rc != GH_OK) {
        rc = discord_refused(ctx, "lockdown: reading the channel", rc, &resp, out);
        goto out;
    }
    gh_rest_resp_cleanup(&resp);
    if (on) {
        if (ow.deny & send) {
            rc = reply(out, 1, "<#%" PRIu64 "> is already locked: @everyone can't send messages there.", ch);
            goto out;
        }
        /* What the overwrite said about Send Messages before: "-" when
         * there was no overwrite, else "<allow bit>,<deny bit>". */
        if (ow.exists)
            (void)snprintf(saved, sizeof(saved), "%d,%d", (ow.allow & send) != 0, (ow.deny & send) != 0);
        else
            (void)snprintf(saved, sizeof(saved), "-");
        if (ctx->redis)
            freeReplyObject(gh_redis_cmd(ctx->redis, "SET %s %s EX %d", key, saved, LOCKDOWN_TTL_S));
        allow = ow.allow & ~send;
        deny = ow.deny | send;
    } else {
        if (!(ow.deny & send)) {
            rc = reply(out, 1, "<#%" PRIu64 "> is not locked.", ch);
            goto out;
        }
        allow = ow.allow;
        deny = ow.deny & ~send;
        r = ctx->redis ? gh_redis_cmd(ctx->redis, "GET %s", key) : NULL;
        if (r && r->type == REDIS_REPLY_STRING && strcmp(r->str, "-") != 0) {
            int a = 0, d = 0;
            if (sscanf(r->str, "%d,%d", &a, &d) == 2) {
                if (a)
                    allow |= send;
                if (d)
                    deny |= send;
            }
        }
    }
    rc = write_overwrite(ctx, ix->guild_id, ch, allow, deny, audit, &resp);
    if (rc != GH_OK) {
        rc = discord_refused(ctx, "lockdown: writing the overwrite", rc, &resp, out);
        goto out;
    }
    if (!on && ctx->redis)
        freeReplyObject(gh_redis_cmd(ctx->redis, "DEL %s", key));
    GH_INFO(&ctx->log, "lockdown %s: channel %" PRIu64 " by %" PRIu64, state, ch, ix->user_id);
    rc = on ? reply(out, 0, "\xf0\x9f\x94\x92 <#%" PRIu64 "> is locked: @everyone can't send messages there.",
                    ch)
            : reply(out, 0, "\xf0\x9f\x94\x93 <#%" PRIu64 "> is unlocked.", ch);
out:
    freeReplyObject(r);
    gh_rest_resp_cleanup(&resp);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* user context menus */

static int ctx_cases(struct gh_ctx *ctx, const struct gh_interaction *ix, struct gh_buf *out)
{
    return cmd_cases(ctx, ix, out);
}

/* ------------------------------------------------------------------------ */
/* the feature */

#define OPT_USER(desc) "{\"type\":6,\"name\":\"user\",\"description\":\"" desc "\",\"required\":true}"
#define OPT_REASON                                                                                           \
    "{\"type\":3,\"name\":\"reason\",\"description\":\"Why (shown in the case and the mod-log)\","           \
    "\"required\":true,\"max_length\":512}"
#define OPT_DURATION(req, desc)                                                                              \
    "{\"type\":3,\"name\":\"duration\",\"description\":\"" desc "\",\"required\":" req                       \
    ",\"min_length\":2,\"max_length\":32}"

static const struct gh_command moderation_commands[] = {
    {
        .name = "warn",
        .description = "Warn a member; warnings add up to the server's escalation steps",
        .type = 1,
        .options_json = "[" OPT_USER("The member to warn") "," OPT_REASON "]",
        .default_member_permissions = P_MODERATE,
        .contexts = GH_CTX_GUILD,
        .handler = cmd_warn,
        .help =
            "Records a WARN case. Members with the moderator staff tier may use it too (allow the command "
            "for their role in Server Settings > Integrations).",
    },
    {
        .name = "timeout",
        .description = "Time a member out with Discord's native timeout (up to 28 days)",
        .type = 1,
        .options_json = "[" OPT_USER("The member to time out") "," OPT_DURATION(
            "true", "How long, like 10m, 1h, 7d (at most 28d)") "," OPT_REASON "]",
        .default_member_permissions = P_MODERATE,
        .contexts = GH_CTX_GUILD,
        .handler = cmd_timeout,
        .help = NULL,
    },
    {
        .name = "untimeout",
        .description = "End a member's timeout",
        .type = 1,
        .options_json = "[" OPT_USER("The member whose timeout ends") "," OPT_REASON "]",
        .default_member_permissions = P_MODERATE,
        .contexts = GH_CTX_GUILD,
        .handler = cmd_untimeout,
        .help = NULL,
    },
    {
        .name = "kick",
        .description = "Remove a member from the server (they can rejoin with an invite)",
        .type = 1,
        .options_json = "[" OPT_USER("The member to kick") "," OPT_REASON "]",
        .default_member_permissions = P_KICK,
        .contexts = GH_CTX_GUILD,
        .handler = cmd_kick,
        .help = NULL,
    },
    {
        .name = "ban",
        .description = "Ban a user, member or not (by ID); with a duration the ban is lifted later",
        .type = 1,
        .options_json = "[" OPT_USER(
            "The user to ban (a member, or the ID of someone not in the server)") "," OPT_REASON
                                                                                  ",{\"type\":4,\"name\":"
                                                                                  "\"delete_messages\","
                                                                                  "\"description\":\"Delete "
                                                                                  "their recent messages\","
                                                                                  "\"required\":false,"
                                                                                  "\"choices\":["
                                                                                  "{\"name\":\"None\","
                                                                                  "\"value\":0},{\"name\":"
                                                                                  "\"Last "
                                                                                  "hour\",\"value\":3600},"
                                                                                  "{\"name\":\"Last 6 "
                                                                                  "hours\",\"value\":21600},{"
                                                                                  "\"name\":\"Last 24 "
                                                                                  "hours\",\"value\":86400},"
                                                                                  "{\"name\":\"Last 3 "
                                                                                  "days\",\"value\":259200},{"
                                                                                  "\"name\":\"Last 7 "
                                                                                  "days\",\"value\":604800}]}"
                                                                                  ","
                                                                                  "" OPT_DURATION(
                                                                                      "false",
                                                                                      "Lift the ban after "
                                                                                      "this long, like 7d (a "
                                                                                      "tempban)") "]",
        .default_member_permissions = P_BAN,
        .contexts = GH_CTX_GUILD,
        .handler = cmd_ban,
        .help =
            "Works by user ID for someone who is not in the server (recorded as HACKBAN). With a duration "
            "it is a TEMPBAN, lifted automatically.",
    },
    {
        .name = "tempban",
        .description = "Ban a user for a while; the ban is lifted automatically",
        .type = 1,
        .options_json = "[" OPT_USER("The user to ban") "," OPT_DURATION(
            "true", "How long, like 1d or 2w (at most 365d)") "," OPT_REASON "]",
        .default_member_permissions = P_BAN,
        .contexts = GH_CTX_GUILD,
        .handler = cmd_tempban,
        .help = NULL,
    },
    {
        .name = "unban",
        .description = "Lift a user's ban",
        .type = 1,
        .options_json = "[" OPT_USER("The banned user (their ID)") "," OPT_REASON "]",
        .default_member_permissions = P_BAN,
        .contexts = GH_CTX_GUILD,
        .handler = cmd_unban,
        .help = NULL,
    },
    {
        .name = "softban",
        .description = "Ban and unban a member at once, deleting a day of their messages",
        .type = 1,
        .options_json = "[" OPT_USER("The member to softban") "," OPT_REASON "]",
        .default_member_permissions = P_BAN,
        .contexts = GH_CTX_GUILD,
        .handler = cmd_softban,
        .help = NULL,
    },
    {
        .name = "mute",
        .description = "Give a member the server's mute role, for a while or until unmuted",
        .type = 1,
        .options_json = "[" OPT_USER("The member to mute") "," OPT_REASON "," OPT_DURATION(
            "false", "Lift the mute after this long, like 1h") "]",
        .default_member_permissions = P_MODERATE,
        .contexts = GH_CTX_GUILD,
        .handler = cmd_mute,
        .help = "Needs a mute role set in the dashboard.",
    },
    {
        .name = "jail",
        .description = "Leave a member only the jail role; their roles come back when it ends",
        .type = 1,
        .options_json = "[" OPT_USER("The member to jail") "," OPT_REASON "," OPT_DURATION(
            "false", "End the jail after this long, like 1d") "]",
        .default_member_permissions = P_MODERATE,
        .contexts = GH_CTX_GUILD,
        .handler = cmd_jail,
        .help = "Needs a jail role set in the dashboard.",
    },
    {
        .name = "purge",
        .description = "Delete up to 100 recent messages in this channel (younger than 14 days)",
        .type = 1,
        .options_json =
            "[{\"type\":4,\"name\":\"amount\",\"description\":\"How many messages to delete\","
            "\"required\":true,\"min_value\":1,\"max_value\":100},"
            "{\"type\":6,\"name\":\"user\",\"description\":\"Only this user's messages\",\"required\":false},"
            "{\"type\":5,\"name\":\"bots\",\"description\":\"Only messages from bots\",\"required\":false},"
            "{\"type\":3,\"name\":\"contains\",\"description\":\"Only messages containing this text\","
            "\"required\":false,\"max_length\":100}]",
        .default_member_permissions = P_MANAGE_MESSAGES,
        .contexts = GH_CTX_GUILD,
        .handler = cmd_purge,
        .help = "Looks at the last 100 messages; pinned messages are kept.",
    },
    {
        .name = "slowmode",
        .description = "Set how often each member may send a message in a channel",
        .type = 1,
        .options_json =
            "[{\"type\":4,\"name\":\"seconds\",\"description\":\"Seconds between messages (0 turns it off)\","
            "\"required\":true,\"min_value\":0,\"max_value\":21600},"
            "{\"type\":7,\"name\":\"channel\",\"description\":\"The channel (default: this one)\","
            "\"required\":false,\"channel_types\":[0,2,5,11,12,13,15]}]",
        .default_member_permissions = P_MANAGE_CHANNELS,
        .contexts = GH_CTX_GUILD,
        .handler = cmd_slowmode,
        .help = NULL,
    },
    {
        .name = "lockdown",
        .description = "Stop or allow @everyone sending messages in a channel",
        .type = 1,
        .options_json =
            "[{\"type\":3,\"name\":\"state\",\"description\":\"on locks the channel, off restores it\","
            "\"required\":true,\"choices\":[{\"name\":\"on\",\"value\":\"on\"},{\"name\":\"off\",\"value\":"
            "\"off\"}]},"
            "{\"type\":7,\"name\":\"channel\",\"description\":\"The channel (default: this one)\","
            "\"required\":false,\"channel_types\":[0,2,5,13,15]}]",
        .default_member_permissions = P_MANAGE_CHANNELS,
        .contexts = GH_CTX_GUILD,
        .handler = cmd_lockdown,
        .help =
            "Denies Send Messages to @everyone in the channel; off puts back what the channel said before.",
    },
    {
        .name = "case",
        .description = "Show a case, change its reason, or void it",
        .type = 1,
        .options_json =
            "[{\"type\":1,\"name\":\"show\",\"description\":\"Show one case\",\"options\":["
            "{\"type\":4,\"name\":\"number\",\"description\":\"The case number\",\"required\":true,"
            "\"min_value\":1}]},"
            "{\"type\":1,\"name\":\"reason\",\"description\":\"Change a case's reason\",\"options\":["
            "{\"type\":4,\"name\":\"number\",\"description\":\"The case number\",\"required\":true,"
            "\"min_value\":1},"
            "{\"type\":3,\"name\":\"text\",\"description\":\"The new reason\",\"required\":true,"
            "\"max_length\":512}]},"
            "{\"type\":1,\"name\":\"void\",\"description\":\"Void a case (kept in history; a void warning "
            "stops "
            "counting)\",\"options\":["
            "{\"type\":4,\"name\":\"number\",\"description\":\"The case number\",\"required\":true,"
            "\"min_value\":1},"
            "{\"type\":3,\"name\":\"reason\",\"description\":\"Why the case is void\",\"required\":true,"
            "\"max_length\":512}]}]",
        .default_member_permissions = P_MODERATE,
        .contexts = GH_CTX_GUILD,
        .handler = cmd_case,
        .help = NULL,
    },
    {
        .name = "cases",
        .description = "List a user's cases, newest first",
        .type = 1,
        .options_json = "[" OPT_USER(
            "Whose cases") ",{\"type\":4,\"name\":\"page\",\"description\":\"Page "
                           "(10 cases each)\",\"required\":false,\"min_value\":1,\"max_value\":10}]",
        .default_member_permissions = P_MODERATE,
        .contexts = GH_CTX_GUILD,
        .handler = cmd_cases,
        .help = NULL,
    },
    {
        .name = "note",
        .description = "Private moderator notes about a user",
        .type = 1,
        .options_json =
            "[{\"type\":1,\"name\":\"add\",\"description\":\"Add a note (only moderators see "
            "it)\",\"options\":["
            "" OPT_USER("Who the note is about") ",{\"type\":3,\"name\":\"text\",\"description\":\"The "
                                                 "note\",\"required\":true,\"max_length\":512}]},"
                                                 "{\"type\":1,\"name\":\"list\",\"description\":\"List the "
                                                 "notes about a user\",\"options\":["
                                                 "" OPT_USER("Whose notes") "]}]",
        .default_member_permissions = P_MODERATE,
        .contexts = GH_CTX_GUILD,
        .handler = cmd_note,
        .help = NULL,
    },
    /* User context menus (type 2): no options, so no reason. */
    {.name = "Warn",
     .description = "",
     .type = 2,
     .default_member_permissions = P_MODERATE,
     .contexts = GH_CTX_GUILD,
     .handler = cmd_warn},
    {.name = "Timeout 1 hour",
     .description = "",
     .type = 2,
     .default_member_permissions = P_MODERATE,
     .contexts = GH_CTX_GUILD,
     .handler = ctx_timeout_hour},
    {.name = "Kick",
     .description = "",
     .type = 2,
     .default_member_permissions = P_KICK,
     .contexts = GH_CTX_GUILD,
     .handler = cmd_kick},
    {.name = "Ban",
     .description = "",
     .type = 2,
     .default_member_permissions = P_BAN,
     .contexts = GH_CTX_GUILD,
     .handler = cmd_ban},
    {.name = "Cases",
     .description = "",
     .type = 2,
     .default_member_permissions = P_MODERATE,
     .contexts = GH_CTX_GUILD,
     .handler = ctx_cases},
};

const struct gh_feature gh_feature_moderation = {
    .name = "moderation",
    .title = "Moderation",
    .description = "Warnings, timeouts, kicks and bans as numbered cases, escalation, channel tools",
    .default_enabled = 1,
    .can_disable = 1,
    .commands = moderation_commands,
    .n_commands = GH_COUNT(moderation_commands),
    .components = NULL,
    .n_components = 0,
    .jobs = gh_mod_jobs,
    .n_jobs = GH_MOD_N_JOBS,
    .routes = gh_mod_routes,
    .n_routes = GH_MOD_N_ROUTES,
    .settings_schema = moderation_schema,
    .premium_flags = 0,
};
