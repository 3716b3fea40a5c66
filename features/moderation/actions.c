/* actions.c - the Discord side of each moderation action, and running one
 * action as a case.
 *
 * gh_mod_act is the one path every action takes (slash commands, context
 * menus, escalation, AutoMod later):
 *
 *   1. the case is created first (gh_mod_case_create): PostgreSQL down means
 *      nothing is done on Discord, so no action ever happens without a case;
 *   2. the target is DMed, best effort, before an action that removes them
 *      (after it they may share no server with the bot any more);
 *   3. the REST call, with X-Audit-Log-Reason "<moderator>: <reason> (case #N)";
 *   4. the case is settled ACTIVE, or FAILED with Discord's error (what the
 *      moderator is shown);
 *   5. a timed action (tempban, mute, jail with a duration) schedules its
 *      lift as a durable timer ("moderation:lift", key "lift:<guild>:<n>");
 *   6. the mod-log embed is a job ("moderation:modlog", id
 *      "modlog:<guild>:<n>", so a repeat enqueues nothing);
 *   7. a WARN runs the escalation with the count taken inside the case's
 *      transaction, so concurrent warns each see their own count and every
 *      threshold fires once.
 *
 * The hourly decay chain (jobs.c) is seeded from here: the first action a
 * process runs in an hour schedules that hour's decay timer (idempotent), so
 * the chain exists as soon as any guild has a case and heals itself if a
 * decay job was ever lost. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "core/ctx.h"
#include "core/err.h"
#include "core/json.h"
#include "core/log.h"
#include "core/str.h"
#include "core/timeutil.h"
#include "discord/guildcache.h"
#include "discord/respond.h"
#include "discord/rest.h"
#include "features/moderation/moderation.h"
#include "store/queue.h"
#include "store/timers.h"

#define TIMEOUT_MAX_S ((int64_t)28 * 86400)    /* Discord's longest timeout */
#define DELETE_MESSAGES_MAX_S 604800           /* ban: at most 7 days of messages */
#define SOFTBAN_DELETE_S 86400                 /* softban: 1 day of messages by default */
#define AUDIT_REASON_MAX 512                   /* Discord's X-Audit-Log-Reason limit */
#define DISCORD_CANNOT_DM 50007                /* "Cannot send messages to this user" */
#define DECAY_PERIOD_MS ((int64_t)3600 * 1000) /* the decay runs hourly */
#define ESCALATION_TIMEOUT_S 3600              /* a timeout step without a duration lasts 1 h */

/* ------------------------------------------------------------ helpers */

static int is_timed(enum gh_mod_type t)
{
    return t == GH_MOD_TEMPBAN || t == GH_MOD_MUTE || t == GH_MOD_JAIL;
}

/* Actions the target hears about by DM (when the guild wants it). */
static int notifies(enum gh_mod_type t)
{
    return t == GH_MOD_WARN || t == GH_MOD_TIMEOUT || t == GH_MOD_KICK || t == GH_MOD_BAN ||
           t == GH_MOD_TEMPBAN || t == GH_MOD_SOFTBAN;
}

/* The {action} of the DM template: "You received a {action} in {guild}". */
static const char *dm_action_word(enum gh_mod_type t)
{
    switch (t) {
    case GH_MOD_WARN:
        return "warning";
    case GH_MOD_TIMEOUT:
        return "timeout";
    case GH_MOD_KICK:
        return "kick";
    case GH_MOD_BAN:
        return "ban";
    case GH_MOD_TEMPBAN:
        return "temporary ban";
    case GH_MOD_SOFTBAN:
        return "softban";
    default:
        return gh_mod_type_name(t);
    }
}

/* Compact JSON text of o (caller frees), or NULL. */
static char *to_text(json_object *o)
{
    const char *s =
        o ? json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE) : NULL;
    return s ? strdup(s) : NULL;
}

static json_object *snowflake_json(uint64_t id)
{
    char s[24];
    snprintf(s, sizeof(s), "%" PRIu64, id);
    return json_object_new_string(s);
}

/* One REST call with the bot token. resp is filled in every case. */
int gh_mod_rest(struct gh_ctx *ctx, const char *method, const char *path, const char *body, const char *audit,
                struct gh_rest_resp *resp)
{
    struct gh_rest_req req;

    memset(&req, 0, sizeof(req));
    req.method = method;
    req.path = path;
    req.body = body;
    req.body_len = body ? strlen(body) : 0;
    req.audit_reason = audit;
    if (!ctx->rest) {
        snprintf(resp->error, sizeof(resp->error), "no Discord client in this process");
        return GH_EUNAVAILABLE;
    }
    return gh_rest_do(ctx->rest, &req, resp);
}

/* Cuts s to at most max bytes on a UTF-8 boundary. */
static void cut_utf8(char *s, size_t max)
{
    size_t n = strlen(s);
    if (n <= max)
        return;
    n = max;
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
        n--;
    s[n] = '\0';
}

/* "<moderator>: <reason> (case #N)", at most 512 bytes (the reason is cut). */
static void audit_reason(char *out, size_t size, uint64_t moderator_id, const char *reason, int64_t number)
{
    const char *src = reason && reason[0] ? reason : "no reason given";
    char who[32], tail[40], text[AUDIT_REASON_MAX + 1];
    size_t room, len = strlen(src);

    if (moderator_id)
        snprintf(who, sizeof(who), "%" PRIu64, moderator_id);
    else
        snprintf(who, sizeof(who), "Guildhall");
    snprintf(tail, sizeof(tail), " (case #%" PRId64 ")", number);
    if (len > AUDIT_REASON_MAX)
        len = AUDIT_REASON_MAX;
    memcpy(text, src, len);
    text[len] = '\0';
    room = AUDIT_REASON_MAX - strlen(who) - 2 - strlen(tail);
    cut_utf8(text, room);
    (void)gh_snprintf(out, size, "%s: %s%s", who, text, tail); /* fits: the reason was cut to the room left */
}

/* The "id" of a JSON object answer. GH_OK or GH_EJSON. */
static int body_id(const struct gh_rest_resp *resp, uint64_t *id)
{
    json_object *o = NULL;

    *id = 0;
    if (resp->body && gh_json_parse(resp->body, resp->body_len, 0, &o) == GH_OK)
        *id = gh_json_get_snowflake(o, "id");
    json_object_put(o);
    return *id ? GH_OK : GH_EJSON;
}

/* ------------------------------------------------------------ the DM */

/* Opens the DM channel and sends the text. A closed DM (50007) is normal:
 * logged, never an error. Returns GH_OK when delivered. */
static int dm_target(struct gh_ctx *ctx, const struct gh_mod_settings *s, const struct gh_mod_request *req,
                     const struct gh_mod_case *c)
{
    struct gh_rest_resp resp;
    json_object *open = NULL, *msg = NULL;
    char *body = NULL, *mbody = NULL;
    char text[8192], path[64]; /* gh_msg_new cuts the content to 2000 characters */
    uint64_t channel_id = 0;
    int rc = GH_ENOMEM;

    memset(&resp, 0, sizeof(resp));
    if (gh_mod_dm_text(s, dm_action_word(c->type), req->guild_name ? req->guild_name : "the server",
                       c->reason, c->duration_s, c->number, text, sizeof(text)) != GH_OK) {
        rc = GH_EINVAL;
        GH_WARN(&ctx->log, "moderation: case #%" PRId64 ": the DM text could not be built, no DM sent",
                c->number);
        goto out;
    }
    open = json_object_new_object();
    if (!open)
        goto out;
    json_object_object_add(open, "recipient_id", snowflake_json(c->target_id));
    body = to_text(open);
    if (!body)
        goto out;
    rc = gh_mod_rest(ctx, "POST", "/users/@me/channels", body, NULL, &resp);
    if (rc == GH_OK && body_id(&resp, &channel_id) != GH_OK)
        rc = GH_EJSON;
    if (rc != GH_OK)
        goto fail;
    gh_rest_resp_cleanup(&resp);
    memset(&resp, 0, sizeof(resp));
    rc = GH_ENOMEM;
    msg = gh_msg_new(text, NULL, NULL, 0);
    mbody = to_text(msg);
    if (!mbody)
        goto out;
    snprintf(path, sizeof(path), "/channels/%" PRIu64 "/messages", channel_id);
    rc = gh_mod_rest(ctx, "POST", path, mbody, NULL, &resp);
    if (rc == GH_OK) {
        GH_INFO(&ctx->log, "moderation: case #%" PRId64 ": DMed user %" PRIu64, c->number, c->target_id);
        goto out;
    }
fail:
    if (resp.discord_code == DISCORD_CANNOT_DM)
        GH_INFO(&ctx->log, "moderation: case #%" PRId64 ": user %" PRIu64 " does not accept DMs, none sent",
                c->number, c->target_id);
    else
        GH_WARN(&ctx->log, "moderation: case #%" PRId64 ": DM to user %" PRIu64 " failed (%s): %s", c->number,
                c->target_id, gh_errname(rc), resp.error);
out:
    gh_rest_resp_cleanup(&resp);
    free(mbody);
    free(body);
    json_object_put(msg);
    json_object_put(open);
    return rc;
}

/* ------------------------------------------------------ the Discord call */

/* The member's role ids now (GET member), as a new array (caller puts).
 * GH_OK, or the REST error with resp->error set. */
static int fetch_roles(struct gh_ctx *ctx, uint64_t guild_id, uint64_t user_id, json_object **out,
                       struct gh_rest_resp *resp)
{
    json_object *m = NULL, *roles;
    char path[96];
    int rc;

    *out = NULL;
    snprintf(path, sizeof(path), "/guilds/%" PRIu64 "/members/%" PRIu64, guild_id, user_id);
    rc = gh_mod_rest(ctx, "GET", path, NULL, NULL, resp);
    if (rc != GH_OK)
        return rc;
    if (!resp->body || gh_json_parse(resp->body, resp->body_len, 0, &m) != GH_OK ||
        !(roles = gh_json_get_arr(m, "roles"))) {
        snprintf(resp->error, sizeof(resp->error), "Discord's member object has no roles");
        json_object_put(m);
        return GH_EJSON;
    }
    *out = json_object_get(roles);
    json_object_put(m);
    return GH_OK;
}

/* 1 when role id is a managed role (bots, boosts): Discord will not let it be
 * removed, so a jail keeps it. Unknown roles (cache unavailable) count as not. */
static int role_managed(json_object *guild_roles, const char *id)
{
    size_t n = guild_roles && json_object_is_type(guild_roles, json_type_array)
                   ? json_object_array_length(guild_roles)
                   : 0;
    int managed = 0;

    for (size_t i = 0; i < n; i++) {
        json_object *r = json_object_array_get_idx(guild_roles, i);
        const char *rid = gh_json_get_str(r, "id");
        if (rid && strcmp(rid, id) == 0)
            return gh_json_get_bool(r, "managed", &managed) == GH_OK && managed;
    }
    return 0;
}

/* The jail's role list: the jail role plus the managed roles the member has. */
static json_object *jail_roles(struct gh_ctx *ctx, uint64_t guild_id, uint64_t jail_role_id, json_object *had)
{
    json_object *out = json_object_new_array(), *guild_roles = NULL;
    size_t n = had && json_object_is_type(had, json_type_array) ? json_object_array_length(had) : 0;
    char jail[24];

    if (!out)
        return NULL;
    snprintf(jail, sizeof(jail), "%" PRIu64, jail_role_id);
    json_object_array_add(out, json_object_new_string(jail));
    if (n && gh_guildcache_roles(ctx, guild_id, &guild_roles) == GH_OK) {
        for (size_t i = 0; i < n; i++) {
            const char *rid = json_object_get_string(json_object_array_get_idx(had, i));
            if (rid && strcmp(rid, jail) != 0 && role_managed(guild_roles, rid))
                json_object_array_add(out, json_object_new_string(rid));
        }
    }
    json_object_put(guild_roles);
    return out;
}

/* Does the action on Discord. *why gets the error for the case when it
 * fails (resp->error, or a reason found before calling). */
static int discord_act(struct gh_ctx *ctx, const struct gh_mod_settings *s, const struct gh_mod_request *req,
                       const struct gh_mod_case *c, int *partial, char *why, size_t whylen)
{
    struct gh_rest_resp resp;
    json_object *body = NULL, *roles = NULL;
    char audit[AUDIT_REASON_MAX + 1], member[96], ban[96], path[160], until[40];
    char *text = NULL;
    int rc = GH_ENOMEM, dms;

    memset(&resp, 0, sizeof(resp));
    why[0] = '\0';
    *partial = 0;
    audit_reason(audit, sizeof(audit), c->moderator_id, c->reason, c->number);
    snprintf(member, sizeof(member), "/guilds/%" PRIu64 "/members/%" PRIu64, c->guild_id, c->target_id);
    snprintf(ban, sizeof(ban), "/guilds/%" PRIu64 "/bans/%" PRIu64, c->guild_id, c->target_id);
    body = json_object_new_object();
    if (!body)
        goto out;

    switch (c->type) {
    case GH_MOD_WARN:
    case GH_MOD_NOTE:
    case GH_MOD_TYPE_COUNT:
        rc = GH_OK;
        goto out;
    case GH_MOD_TIMEOUT:
    case GH_MOD_UNTIMEOUT:
        if (c->type == GH_MOD_TIMEOUT) {
            gh_iso8601(c->expires_ms, until, sizeof(until));
            json_object_object_add(body, "communication_disabled_until", json_object_new_string(until));
        } else {
            json_object_object_add(body, "communication_disabled_until", NULL);
        }
        text = to_text(body);
        rc = text ? gh_mod_rest(ctx, "PATCH", member, text, audit, &resp) : GH_ENOMEM;
        break;
    case GH_MOD_KICK:
        rc = gh_mod_rest(ctx, "DELETE", member, NULL, audit, &resp);
        break;
    case GH_MOD_BAN:
    case GH_MOD_TEMPBAN:
    case GH_MOD_HACKBAN:
    case GH_MOD_SOFTBAN:
        dms = req->delete_message_s;
        if (c->type == GH_MOD_SOFTBAN && dms <= 0)
            dms = SOFTBAN_DELETE_S;
        dms = dms < 0 ? 0 : dms > DELETE_MESSAGES_MAX_S ? DELETE_MESSAGES_MAX_S : dms;
        json_object_object_add(body, "delete_message_seconds", json_object_new_int(dms));
        text = to_text(body);
        rc = text ? gh_mod_rest(ctx, "PUT", ban, text, audit, &resp) : GH_ENOMEM;
        if (rc == GH_OK && c->type == GH_MOD_SOFTBAN) {
            gh_rest_resp_cleanup(&resp);
            memset(&resp, 0, sizeof(resp));
            rc = gh_mod_rest(ctx, "DELETE", ban, NULL, audit, &resp);
            if (rc != GH_OK) {
                *partial = 1;
                /* Banned but not unbanned: say so exactly; gh_mod_act schedules the unban as a lift. */
                snprintf(why, whylen,
                         "the ban worked but the unban failed (%.170s); Guildhall keeps retrying it",
                         resp.error[0] ? resp.error : gh_strerror(rc));
                goto out;
            }
        }
        break;
    case GH_MOD_UNBAN:
        rc = gh_mod_rest(ctx, "DELETE", ban, NULL, audit, &resp);
        break;
    case GH_MOD_MUTE:
        if (!s->mute_role_id) {
            rc = GH_EINVAL;
            snprintf(why, whylen, "no mute role is configured (dashboard: Moderation, Mute role)");
            goto out;
        }
        snprintf(path, sizeof(path), "%s/roles/%" PRIu64, member, s->mute_role_id);
        rc = gh_mod_rest(ctx, "PUT", path, NULL, audit, &resp);
        break;
    case GH_MOD_JAIL:
        if (!s->jail_role_id) {
            rc = GH_EINVAL;
            snprintf(why, whylen, "no jail role is configured (dashboard: Moderation, Jail role)");
            goto out;
        }
        roles = jail_roles(ctx, c->guild_id, s->jail_role_id, c->target_roles);
        if (!roles)
            goto out;
        json_object_object_add(body, "roles", roles);
        roles = NULL;
        text = to_text(body);
        rc = text ? gh_mod_rest(ctx, "PATCH", member, text, audit, &resp) : GH_ENOMEM;
        break;
    }
    if (rc != GH_OK)
        snprintf(why, whylen, "%s", resp.error[0] ? resp.error : gh_strerror(rc));
    if (c->type == GH_MOD_MUTE || c->type == GH_MOD_JAIL || c->type == GH_MOD_TIMEOUT ||
        c->type == GH_MOD_UNTIMEOUT)
        gh_guildcache_forget_member(ctx, c->guild_id, c->target_id);
out:
    if (rc != GH_OK && !why[0])
        snprintf(why, whylen, "%s", gh_strerror(rc));
    gh_rest_resp_cleanup(&resp);
    free(text);
    json_object_put(roles);
    json_object_put(body);
    return rc;
}

/* --------------------------------------------------------- after the act */

/* Schedules the lift of a timed case and records it: lift PENDING, or
 * FAILED with why when the timer could not be written (visible, never
 * silent). due_ms 0 = now. */
static int schedule_lift(struct gh_ctx *ctx, const struct gh_mod_settings *s, const struct gh_mod_case *c,
                         int64_t due_ms)
{
    json_object *payload = json_object_new_object();
    char key[GH_TIMERS_KEY_MAX], err[160];
    int64_t timer_id = 0;
    int rc = GH_ENOMEM;

    if (!payload)
        goto fail;
    json_object_object_add(payload, "guild_id", snowflake_json(c->guild_id));
    json_object_object_add(payload, "number", json_object_new_int64(c->number));
    json_object_object_add(payload, "type", json_object_new_string(gh_mod_type_name(c->type)));
    json_object_object_add(payload, "target_id", snowflake_json(c->target_id));
    if (c->type == GH_MOD_MUTE && s->mute_role_id)
        json_object_object_add(payload, "role_id", snowflake_json(s->mute_role_id));
    if (c->type == GH_MOD_JAIL && s->jail_role_id)
        json_object_object_add(payload, "role_id", snowflake_json(s->jail_role_id));
    snprintf(key, sizeof(key), "lift:%" PRIu64 ":%" PRId64, c->guild_id, c->number);
    rc = gh_timers_schedule(ctx, c->guild_id, "moderation:lift", payload, key,
                            due_ms > 0 ? due_ms : gh_now_ms(), &timer_id);
    if (rc == GH_EDUPLICATE)
        rc = GH_OK;
fail:
    json_object_put(payload);
    if (rc == GH_OK) {
        if (gh_mod_case_set_lift(ctx, c->guild_id, c->number, GH_MOD_LIFT_PENDING, NULL) != GH_OK)
            GH_ERROR(&ctx->log,
                     "moderation: case #%" PRId64 ": lift timer %" PRId64 " scheduled but not recorded",
                     c->number, timer_id);
        return GH_OK;
    }
    snprintf(err, sizeof(err), "the lift could not be scheduled (%s): lift it by hand", gh_strerror(rc));
    GH_ERROR(&ctx->log, "moderation: case #%" PRId64 " of guild %" PRIu64 ": %s", c->number, c->guild_id,
             err);
    if (gh_mod_case_set_lift(ctx, c->guild_id, c->number, GH_MOD_LIFT_FAILED, err) != GH_OK)
        GH_ERROR(&ctx->log, "moderation: case #%" PRId64 ": the failed lift could not be recorded either",
                 c->number);
    return rc;
}

static void enqueue_modlog(struct gh_ctx *ctx, const struct gh_mod_case *c)
{
    json_object *payload = json_object_new_object();
    char id[96];
    int rc = GH_ENOMEM;

    if (payload) {
        json_object_object_add(payload, "guild_id", snowflake_json(c->guild_id));
        json_object_object_add(payload, "number", json_object_new_int64(c->number));
        snprintf(id, sizeof(id), "modlog:%" PRIu64 ":%" PRId64, c->guild_id, c->number);
        rc = gh_queue_enqueue(ctx->redis, ctx->queue ? ctx->queue : GH_QUEUE_DEFAULT, id, "moderation:modlog",
                              c->guild_id, payload, 0);
    }
    json_object_put(payload);
    if (rc != GH_OK && rc != GH_EDUPLICATE)
        GH_WARN(&ctx->log, "moderation: case #%" PRId64 " of guild %" PRIu64 ": mod-log job not queued (%s)",
                c->number, c->guild_id, gh_strerror(rc));
}

/* Seeds the hourly decay chain (see the top of this file): once per hour per
 * process, one idempotent timer insert. */
static void ensure_decay(struct gh_ctx *ctx)
{
    static int64_t seeded_hour = -1;
    int64_t hour = gh_now_ms() / DECAY_PERIOD_MS;

    if (hour == seeded_hour)
        return;
    if (gh_mod_decay_schedule(ctx, gh_now_ms()) == GH_OK)
        seeded_hour = hour;
}

/* ---------------------------------------------------------- gh_mod_act */

int gh_mod_act(struct gh_ctx *ctx, const struct gh_mod_request *req, struct gh_mod_case *out, int *duplicate)
{
    struct gh_mod_settings s;
    struct gh_mod_case in;
    struct gh_rest_resp resp;
    json_object *roles = NULL;
    char why[sizeof(out->error)], pre[sizeof(out->error)];
    int rc, dup = 0, warn_count = 0, partial = 0;
    int64_t now = gh_now_ms();

    memset(out, 0, sizeof(*out));
    memset(&resp, 0, sizeof(resp));
    if (duplicate)
        *duplicate = 0;
    pre[0] = why[0] = '\0';
    if (!ctx || !req || (int)req->type < 0 || req->type >= GH_MOD_TYPE_COUNT || !req->guild_id ||
        !req->target_id)
        return GH_EINVAL;
    if (gh_mod_settings_load(ctx, req->guild_id, &s) != GH_OK)
        GH_WARN(&ctx->log, "moderation: settings of guild %" PRIu64 " unreadable, using the defaults",
                req->guild_id);

    memset(&in, 0, sizeof(in));
    in.guild_id = req->guild_id;
    in.type = req->type;
    in.status = req->type == GH_MOD_WARN || req->type == GH_MOD_NOTE ? GH_MOD_ACTIVE : GH_MOD_PENDING;
    in.target_id = req->target_id;
    in.moderator_id = req->moderator_id;
    snprintf(in.reason, sizeof(in.reason), "%s", req->reason ? req->reason : "");
    in.duration_s = req->duration_s > 0 ? req->duration_s : 0;
    in.refs_case = req->refs_case;
    in.interaction_id = req->interaction_id;
    if (req->type == GH_MOD_TIMEOUT && (in.duration_s <= 0 || in.duration_s > TIMEOUT_MAX_S))
        snprintf(pre, sizeof(pre), "a timeout lasts from 1 second to 28 days");
    if (req->type == GH_MOD_TEMPBAN && in.duration_s <= 0)
        snprintf(pre, sizeof(pre), "a tempban needs a duration");
    if (in.duration_s > 0 && (req->type == GH_MOD_TIMEOUT || is_timed(req->type)))
        in.expires_ms = now + in.duration_s * 1000;

    /* Every case keeps the roles the target had when they are known (the
     * interaction's resolved member); a jail must have them (it gives them back),
     * so without them (escalation) they are read first. */
    if (req->type != GH_MOD_JAIL && req->target_roles)
        in.target_roles = req->target_roles; /* borrowed for the create */
    if (req->type == GH_MOD_JAIL) {
        if (req->target_roles) {
            in.target_roles = req->target_roles; /* borrowed for the create */
        } else if (!pre[0] &&
                   (rc = fetch_roles(ctx, req->guild_id, req->target_id, &roles, &resp)) == GH_OK) {
            in.target_roles = roles;
        } else if (!pre[0]) {
            snprintf(pre, sizeof(pre), "the member's roles could not be read: %.200s",
                     resp.error[0] ? resp.error : gh_strerror(rc));
        }
    }

    rc = gh_mod_case_create(ctx, &in, out, &dup, &warn_count);
    in.target_roles = NULL;
    if (rc != GH_OK) {
        GH_ERROR(&ctx->log, "moderation: %s of user %" PRIu64 " in guild %" PRIu64 " not done: no case (%s)",
                 gh_mod_type_name(req->type), req->target_id, req->guild_id, gh_strerror(rc));
        goto out;
    }
    if (dup) {
        if (duplicate)
            *duplicate = 1;
        GH_INFO(&ctx->log,
                "moderation: interaction %" PRIu64 " already made case #%" PRId64 ", not acting again",
                req->interaction_id, out->number);
        goto out;
    }
    ensure_decay(ctx);

    if (!pre[0] && s.dm_on_action && notifies(out->type))
        (void)dm_target(ctx, &s, req, out);

    if (pre[0]) {
        rc = GH_EINVAL;
        snprintf(why, sizeof(why), "%s", pre);
    } else {
        rc = discord_act(ctx, &s, req, out, &partial, why, sizeof(why));
    }

    if (out->type != GH_MOD_WARN && out->type != GH_MOD_NOTE) {
        enum gh_mod_status st = rc == GH_OK ? GH_MOD_ACTIVE : GH_MOD_FAILED;
        if (gh_mod_case_settle(ctx, out->guild_id, out->number, st, rc == GH_OK ? NULL : why) != GH_OK)
            GH_ERROR(&ctx->log,
                     "moderation: case #%" PRId64 " of guild %" PRIu64 ": %s on Discord but not recorded",
                     out->number, out->guild_id, rc == GH_OK ? "done" : "failed");
        out->status = st;
        if (rc != GH_OK)
            snprintf(out->error, sizeof(out->error), "%s", why);
    }
    if (rc != GH_OK)
        GH_WARN(&ctx->log,
                "moderation: case #%" PRId64 " of guild %" PRIu64 " (%s of user %" PRIu64 ") failed: %s",
                out->number, out->guild_id, gh_mod_type_name(out->type), out->target_id, why);

    if (rc == GH_OK && is_timed(out->type) && out->expires_ms > 0) {
        if (schedule_lift(ctx, &s, out, out->expires_ms) == GH_OK)
            out->lift = GH_MOD_LIFT_PENDING;
        else
            out->lift = GH_MOD_LIFT_FAILED;
    } else if (partial) {
        /* A softban whose unban failed did ban: FAILED with that said, and the unban retried as a lift. */
        out->lift = schedule_lift(ctx, &s, out, now) == GH_OK ? GH_MOD_LIFT_PENDING : GH_MOD_LIFT_FAILED;
    }

    if (out->type != GH_MOD_NOTE)
        enqueue_modlog(ctx, out);

    if (rc == GH_OK && out->type == GH_MOD_WARN && s.escalation_enabled && warn_count > 0)
        (void)gh_mod_escalate(ctx, out->guild_id, out->target_id, warn_count, out->number);
out:
    json_object_put(roles);
    gh_rest_resp_cleanup(&resp);
    return rc;
}

/* ----------------------------------------------------- gh_mod_escalate */

static int threshold_cmp(const void *a, const void *b)
{
    const struct gh_mod_threshold *x = a, *y = b;
    return (x->warnings > y->warnings) - (x->warnings < y->warnings);
}

int gh_mod_escalate(struct gh_ctx *ctx, uint64_t guild_id, uint64_t target_id, int warn_count,
                    int64_t warn_number)
{
    struct gh_mod_settings s;
    struct gh_mod_threshold th[GH_MOD_MAX_THRESHOLDS];
    int n, result = GH_OK;

    if (!ctx || !guild_id || !target_id || warn_count <= 0)
        return GH_EINVAL;
    if (gh_mod_settings_load(ctx, guild_id, &s) != GH_OK) {
        GH_ERROR(&ctx->log,
                 "moderation: escalation after case #%" PRId64 " of guild %" PRIu64
                 " skipped: settings unreadable",
                 warn_number, guild_id);
        return GH_EPG;
    }
    if (!s.escalation_enabled)
        return GH_OK;
    n = s.n_thresholds < 0                       ? 0
        : s.n_thresholds > GH_MOD_MAX_THRESHOLDS ? GH_MOD_MAX_THRESHOLDS
                                                 : s.n_thresholds;
    memcpy(th, s.thresholds, (size_t)n * sizeof(th[0]));
    qsort(th, (size_t)n, sizeof(th[0]), threshold_cmp);

    for (int i = 0; i < n; i++) {
        struct gh_mod_request req;
        struct gh_mod_case c;
        char reason[128];
        int rc;

        if (th[i].warnings != warn_count)
            continue;
        snprintf(reason, sizeof(reason), "Escalation: %d active warnings (case #%" PRId64 ")", warn_count,
                 warn_number);
        memset(&req, 0, sizeof(req));
        req.type = th[i].action;
        req.guild_id = guild_id;
        req.target_id = target_id;
        req.moderator_id = 0;
        req.reason = reason;
        req.duration_s = th[i].duration_s;
        req.refs_case = warn_number;
        if (req.type == GH_MOD_TIMEOUT && req.duration_s <= 0)
            req.duration_s = ESCALATION_TIMEOUT_S;
        rc = gh_mod_act(ctx, &req, &c, NULL);
        GH_INFO(&ctx->log,
                "moderation: escalation of user %" PRIu64 " in guild %" PRIu64
                " at %d warnings: %s case #%" PRId64 " %s",
                target_id, guild_id, warn_count, gh_mod_type_name(th[i].action), c.number,
                rc == GH_OK  ? "done"
                : c.error[0] ? c.error
                             : gh_strerror(rc));
        if (rc != GH_OK && result == GH_OK)
            result = rc;
        gh_mod_case_cleanup(&c);
    }
    return result;
}
