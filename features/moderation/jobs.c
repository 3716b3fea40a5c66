/* jobs.c - the moderation feature's jobs.
 *
 *   moderation:modlog  posts a case's embed to the guild's mod-log channel.
 *                      Idempotent: the posted message id is kept in Redis
 *                      (bot:{g}:moderation:modlog:<number>, 30 days) and a
 *                      run that finds it posts nothing; the post also carries
 *                      nonce "case-<number>" with enforce_nonce, so Discord
 *                      itself drops a second post of the same case made within
 *                      minutes (a run killed between the post and the Redis
 *                      write, or Redis down).
 *   moderation:lift    the durable timer of a tempban, mute or jail (and of
 *                      a softban whose unban failed): unban, remove the mute
 *                      role, or give back the saved roles without the jail
 *                      role. "Already lifted" answers (unknown ban, member
 *                      gone) count as done. A failure is retried with
 *                      backoff, and the case's lift shows the error meanwhile;
 *                      the last attempt marks the lift FAILED with the error,
 *                      so the dashboard shows it.
 *   moderation:decay   hourly: gh_mod_decay, then the timer of the next hour
 *                      (key moderation:decay:<hour>, an operator timer), so
 *                      exactly one decay job exists per hour. The chain is
 *                      seeded by gh_mod_act (actions.c): the first action a
 *                      process runs in an hour schedules that hour's timer.
 *
 * Every job returns GH_OK when the effect is done or cannot ever be done
 * (logged), a gh_err to be retried, GH_EINVAL for an unusable payload. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>
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
#include "features/registry.h"
#include "store/queue.h"
#include "store/redis.h"
#include "store/timers.h"

#define MODLOG_TTL_S (30 * 86400)
#define LIFT_MAX_ATTEMPTS 10 /* with a 5 s base: about 20 minutes of retries */
#define LIFT_BACKOFF_MS 5000
#define DECAY_PERIOD_MS ((int64_t)3600 * 1000)

/* Embed colours by kind of action. */
#define COLOR_WARN 0xFEE75C
#define COLOR_REMOVE 0xED4245
#define COLOR_RESTRICT 0xE67E22
#define COLOR_UNDO 0x57F287
#define COLOR_NOTE 0x99AAB5

/* ------------------------------------------------------------ helpers */

static char *to_text(json_object *o)
{
    const char *s =
        o ? json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE) : NULL;
    return s ? strdup(s) : NULL;
}

/* guild_id and number of the case a job is about. GH_OK or GH_EINVAL. */
static int job_case_ref(const struct gh_job *job, uint64_t *guild_id, int64_t *number)
{
    *guild_id = gh_json_get_snowflake(job->payload, "guild_id");
    if (!*guild_id)
        *guild_id = job->guild_id;
    if (gh_json_get_int(job->payload, "number", number) != GH_OK || *number <= 0 || !*guild_id)
        return GH_EINVAL;
    return GH_OK;
}

/* ------------------------------------------------------ moderation:modlog */

static int type_color(enum gh_mod_type t)
{
    switch (t) {
    case GH_MOD_WARN:
        return COLOR_WARN;
    case GH_MOD_KICK:
    case GH_MOD_BAN:
    case GH_MOD_TEMPBAN:
    case GH_MOD_SOFTBAN:
    case GH_MOD_HACKBAN:
        return COLOR_REMOVE;
    case GH_MOD_TIMEOUT:
    case GH_MOD_MUTE:
    case GH_MOD_JAIL:
        return COLOR_RESTRICT;
    case GH_MOD_UNTIMEOUT:
    case GH_MOD_UNBAN:
        return COLOR_UNDO;
    case GH_MOD_NOTE:
    case GH_MOD_TYPE_COUNT:
        break;
    }
    return COLOR_NOTE;
}

static void add_field(json_object *fields, const char *name, const char *value, int inline_)
{
    json_object *f = json_object_new_object();
    if (!f)
        return;
    json_object_object_add(f, "name", json_object_new_string(name));
    json_object_object_add(f, "value", json_object_new_string(value));
    json_object_object_add(f, "inline", json_object_new_boolean(inline_));
    json_object_array_add(fields, f);
}

/* The message body of a case's mod-log post (caller frees), or NULL. */
static char *modlog_body(const struct gh_mod_case *c)
{
    json_object *embeds = json_object_new_array(), *embed = json_object_new_object();
    json_object *fields = json_object_new_array(), *footer = json_object_new_object(), *msg = NULL;
    char title[96], v[1100], reason[2100], desc[2200], dur[48], ts[40], nonce[32];
    char *body = NULL;

    if (!embeds || !embed || !fields || !footer)
        goto out;
    snprintf(title, sizeof(title), "Case #%" PRId64 " | %s%s", c->number, gh_mod_type_name(c->type),
             c->status == GH_MOD_FAILED ? " (failed)" : "");
    gh_escape_markdown(c->reason[0] ? c->reason : "No reason given", reason, sizeof(reason));
    snprintf(desc, sizeof(desc), "**Reason:** %s", reason);

    snprintf(v, sizeof(v), "<@%" PRIu64 "> (`%" PRIu64 "`)", c->target_id, c->target_id);
    add_field(fields, "Member", v, 1);
    if (c->moderator_id)
        snprintf(v, sizeof(v), "<@%" PRIu64 "> (`%" PRIu64 "`)", c->moderator_id, c->moderator_id);
    else
        snprintf(v, sizeof(v), "Guildhall (automatic)");
    add_field(fields, "Moderator", v, 1);
    if (c->duration_s > 0) {
        gh_duration_text(c->duration_s, 2, "", dur, sizeof(dur));
        if (c->expires_ms > 0)
            snprintf(v, sizeof(v), "%s (ends <t:%" PRId64 ":R>)", dur, c->expires_ms / 1000);
        else
            snprintf(v, sizeof(v), "%s", dur);
        add_field(fields, "Duration", v, 1);
    } else if (c->type == GH_MOD_WARN && c->expires_ms > 0) {
        snprintf(v, sizeof(v), "<t:%" PRId64 ":R>", c->expires_ms / 1000);
        add_field(fields, "Expires", v, 1);
    }
    if (c->refs_case > 0) {
        snprintf(v, sizeof(v), "Case #%" PRId64, c->refs_case);
        add_field(fields, "Triggered by", v, 1);
    }
    if (c->status == GH_MOD_FAILED) {
        char err[1000];
        gh_escape_markdown(c->error[0] ? c->error : "unknown error", err, sizeof(err));
        add_field(fields, "Failed", err, 0);
    }
    snprintf(v, sizeof(v), "Target %" PRIu64, c->target_id);
    json_object_object_add(footer, "text", json_object_new_string(v));
    gh_iso8601(c->created_ms > 0 ? c->created_ms : gh_now_ms(), ts, sizeof(ts));

    json_object_object_add(embed, "title", json_object_new_string(title));
    json_object_object_add(embed, "description", json_object_new_string(desc));
    json_object_object_add(embed, "color", json_object_new_int(type_color(c->type)));
    json_object_object_add(embed, "fields", fields);
    fields = NULL;
    json_object_object_add(embed, "footer", footer);
    footer = NULL;
    json_object_object_add(embed, "timestamp", json_object_new_string(ts));
    json_object_array_add(embeds, embed);
    embed = NULL;
    msg = gh_msg_new(NULL, embeds, NULL, 0); /* allowed_mentions {"parse":[]} */
    if (!msg)
        goto out;
    snprintf(nonce, sizeof(nonce), "case-%" PRId64, c->number);
    json_object_object_add(msg, "nonce", json_object_new_string(nonce));
    json_object_object_add(msg, "enforce_nonce", json_object_new_boolean(1));
    body = to_text(msg);
out:
    json_object_put(msg);
    json_object_put(footer);
    json_object_put(fields);
    json_object_put(embed);
    json_object_put(embeds);
    return body;
}

/* The mod-log message already posted for a case: 1 yes, 0 no, -1 Redis unreadable. */
static int modlog_posted(struct gh_ctx *ctx, const char *key)
{
    redisReply *r;
    int posted;

    if (!ctx->redis)
        return -1;
    r = gh_redis_cmd(ctx->redis, "GET %s", key);
    if (!r || r->type == REDIS_REPLY_ERROR)
        posted = -1;
    else
        posted = r->type == REDIS_REPLY_STRING;
    freeReplyObject(r);
    return posted;
}

static int job_modlog(struct gh_ctx *ctx, const struct gh_job *job)
{
    struct gh_mod_settings s;
    struct gh_mod_case c;
    struct gh_rest_resp resp;
    json_object *posted = NULL;
    char key[160], path[64], msgid[24];
    char *body = NULL;
    uint64_t guild_id;
    int64_t number;
    int rc;

    memset(&c, 0, sizeof(c));
    memset(&resp, 0, sizeof(resp));
    if (job_case_ref(job, &guild_id, &number) != GH_OK) {
        GH_ERROR(&ctx->log, "moderation:modlog %s: payload needs guild_id and number", job->id);
        return GH_EINVAL;
    }
    rc = gh_mod_case_get(ctx, guild_id, number, &c);
    if (rc == GH_ENOTFOUND) {
        GH_WARN(&ctx->log,
                "moderation:modlog %s: case #%" PRId64 " of guild %" PRIu64 " is gone, nothing to post",
                job->id, number, guild_id);
        rc = GH_OK;
        goto out;
    }
    if (rc != GH_OK)
        goto out;
    rc = gh_mod_settings_load(ctx, guild_id, &s);
    if (rc != GH_OK)
        goto out; /* defaults would say "no channel": retry rather than drop the post */
    if (!s.mod_log_channel_id) {
        GH_DEBUG(&ctx->log, "moderation:modlog %s: guild %" PRIu64 " has no mod-log channel", job->id,
                 guild_id);
        goto out;
    }
    rc = GH_ETOOBIG;
    if (gh_key_guild(key, sizeof(key), guild_id, "moderation", "modlog:%" PRId64, number) != GH_OK)
        goto out;
    switch (modlog_posted(ctx, key)) {
    case 1:
        GH_INFO(&ctx->log, "moderation:modlog %s: case #%" PRId64 " already posted", job->id, number);
        rc = GH_OK;
        goto out;
    case -1:
        GH_WARN(&ctx->log, "moderation:modlog %s: Redis unreadable, posting with the nonce as the only guard",
                job->id);
        break;
    default:
        break;
    }
    rc = GH_ENOMEM;
    body = modlog_body(&c);
    if (!body)
        goto out;
    snprintf(path, sizeof(path), "/channels/%" PRIu64 "/messages", s.mod_log_channel_id);
    rc = gh_mod_rest(ctx, "POST", path, body, NULL, &resp);
    if (rc == GH_ENOTFOUND || rc == GH_EFORBIDDEN) {
        /* The channel is gone or closed to the bot: retrying cannot help. */
        GH_WARN(&ctx->log,
                "moderation:modlog %s: mod-log channel %" PRIu64 " of guild %" PRIu64
                " refused case #%" PRId64 " (%s): check the channel and Guildhall's permissions there",
                job->id, s.mod_log_channel_id, guild_id, number, resp.error);
        rc = GH_OK;
        goto out;
    }
    if (rc != GH_OK) {
        GH_WARN(&ctx->log, "moderation:modlog %s: post failed (%s), retrying", job->id, resp.error);
        goto out;
    }
    snprintf(msgid, sizeof(msgid), "0");
    if (resp.body && gh_json_parse(resp.body, resp.body_len, 0, &posted) == GH_OK &&
        gh_json_get_str(posted, "id"))
        snprintf(msgid, sizeof(msgid), "%s", gh_json_get_str(posted, "id"));
    if (ctx->redis) {
        redisReply *r = gh_redis_cmd(ctx->redis, "SET %s %s EX %d", key, msgid, MODLOG_TTL_S);
        if (!r || r->type == REDIS_REPLY_ERROR)
            GH_WARN(&ctx->log, "moderation:modlog %s: posted message %s but could not remember it", job->id,
                    msgid);
        freeReplyObject(r);
    }
    GH_INFO(&ctx->log, "moderation:modlog %s: case #%" PRId64 " posted as message %s", job->id, number,
            msgid);
out:
    json_object_put(posted);
    free(body);
    gh_rest_resp_cleanup(&resp);
    gh_mod_case_cleanup(&c);
    return rc;
}

/* ------------------------------------------------------- moderation:lift */

/* 1 when a 404 means the thing to undo is already undone. */
static int already_lifted(int rc, const struct gh_rest_resp *resp)
{
    return rc == GH_ENOTFOUND || resp->status == 404;
}

/* The role object with this id in a guild's role list (borrowed), or NULL. */
static json_object *find_role(json_object *guild_roles, const char *id)
{
    size_t n = guild_roles && json_object_is_type(guild_roles, json_type_array)
                   ? json_object_array_length(guild_roles)
                   : 0;

    for (size_t i = 0; i < n; i++) {
        json_object *r = json_object_array_get_idx(guild_roles, i);
        const char *rid = gh_json_get_str(r, "id");
        if (rid && strcmp(rid, id) == 0)
            return r;
    }
    return NULL;
}

/* Roles to give back at the end of a jail: the member's current roles and
 * the saved ones, without the jail role, without roles that no longer exist
 * and without managed roles (Discord assigns those itself). */
static json_object *restored_roles(struct gh_ctx *ctx, uint64_t guild_id, const json_object *saved,
                                   const json_object *current, uint64_t jail_role_id)
{
    json_object *out = json_object_new_array(), *guild_roles = NULL;
    const json_object *lists[2] = {current, saved};
    char jail[24];
    int have_roles;

    if (!out)
        return NULL;
    snprintf(jail, sizeof(jail), "%" PRIu64, jail_role_id);
    have_roles = gh_guildcache_roles(ctx, guild_id, &guild_roles) == GH_OK;
    for (int l = 0; l < 2; l++) {
        size_t n = lists[l] && json_object_is_type(lists[l], json_type_array)
                       ? json_object_array_length(lists[l])
                       : 0;
        for (size_t i = 0; i < n; i++) {
            const char *rid = json_object_get_string(json_object_array_get_idx(lists[l], i));
            int dup = 0, managed = 0;
            if (!rid || !rid[0] || strcmp(rid, jail) == 0)
                continue;
            for (size_t k = 0; k < json_object_array_length(out) && !dup; k++)
                dup = strcmp(json_object_get_string(json_object_array_get_idx(out, k)), rid) == 0;
            if (dup)
                continue;
            if (have_roles && l == 1) { /* saved roles: only those that still exist and can be given */
                json_object *role = find_role(guild_roles, rid);
                if (!role || (gh_json_get_bool(role, "managed", &managed) == GH_OK && managed))
                    continue;
            }
            json_object_array_add(out, json_object_new_string(rid));
        }
    }
    json_object_put(guild_roles);
    return out;
}

/* Undoes the case on Discord. GH_OK when lifted (or already was). */
static int lift_on_discord(struct gh_ctx *ctx, const struct gh_mod_case *c, uint64_t role_id,
                           struct gh_rest_resp *resp)
{
    json_object *member = NULL, *body = NULL, *roles = NULL;
    char path[160], audit[96];
    char *text = NULL;
    int rc = GH_EINVAL;

    snprintf(audit, sizeof(audit), "Guildhall: %s ended (case #%" PRId64 ")", gh_mod_type_name(c->type),
             c->number);
    switch (c->type) {
    case GH_MOD_TEMPBAN:
    case GH_MOD_SOFTBAN:
    case GH_MOD_BAN:
    case GH_MOD_HACKBAN:
        snprintf(path, sizeof(path), "/guilds/%" PRIu64 "/bans/%" PRIu64, c->guild_id, c->target_id);
        rc = gh_mod_rest(ctx, "DELETE", path, NULL, audit, resp);
        break;
    case GH_MOD_MUTE:
        if (!role_id) {
            snprintf(resp->error, sizeof(resp->error), "no mute role is known for this case");
            rc = GH_EINVAL;
            break;
        }
        snprintf(path, sizeof(path), "/guilds/%" PRIu64 "/members/%" PRIu64 "/roles/%" PRIu64, c->guild_id,
                 c->target_id, role_id);
        rc = gh_mod_rest(ctx, "DELETE", path, NULL, audit, resp);
        break;
    case GH_MOD_JAIL:
        if (!role_id) {
            snprintf(resp->error, sizeof(resp->error), "no jail role is known for this case");
            rc = GH_EINVAL;
            break;
        }
        snprintf(path, sizeof(path), "/guilds/%" PRIu64 "/members/%" PRIu64, c->guild_id, c->target_id);
        rc = gh_mod_rest(ctx, "GET", path, NULL, NULL, resp);
        if (rc != GH_OK)
            break;
        rc = GH_EJSON;
        if (!resp->body || gh_json_parse(resp->body, resp->body_len, 0, &member) != GH_OK) {
            snprintf(resp->error, sizeof(resp->error), "Discord's member object did not parse");
            break;
        }
        rc = GH_ENOMEM;
        roles = restored_roles(ctx, c->guild_id, c->target_roles, gh_json_get_arr(member, "roles"), role_id);
        body = json_object_new_object();
        if (!roles || !body)
            break;
        json_object_object_add(body, "roles", roles);
        roles = NULL;
        text = to_text(body);
        if (!text)
            break;
        gh_rest_resp_cleanup(resp);
        memset(resp, 0, sizeof(*resp));
        rc = gh_mod_rest(ctx, "PATCH", path, text, audit, resp);
        break;
    default:
        snprintf(resp->error, sizeof(resp->error), "a %s case has nothing to lift",
                 gh_mod_type_name(c->type));
        rc = GH_EINVAL;
        break;
    }
    if (rc != GH_OK && already_lifted(rc, resp)) {
        GH_INFO(&ctx->log, "moderation:lift: case #%" PRId64 " of guild %" PRIu64 " was already lifted (%s)",
                c->number, c->guild_id, resp->error);
        rc = GH_OK;
    }
    if (c->type == GH_MOD_MUTE || c->type == GH_MOD_JAIL)
        gh_guildcache_forget_member(ctx, c->guild_id, c->target_id);
    free(text);
    json_object_put(body);
    json_object_put(roles);
    json_object_put(member);
    return rc;
}

/* The same kind of restriction, for "a newer case supersedes this lift". */
static int restriction_group(enum gh_mod_type t)
{
    switch (t) {
    case GH_MOD_BAN:
    case GH_MOD_TEMPBAN:
    case GH_MOD_HACKBAN:
        return 1;
    case GH_MOD_MUTE:
        return 2;
    case GH_MOD_JAIL:
        return 3;
    default:
        return 0;
    }
}

/* A newer active case that put the same restriction on the same member
 * (a permanent ban after a tempban, a second mute): lifting this one would
 * undo that one, so the lift is left to it. *by = its number, 0 = none.
 * GH_OK or GH_EPG. */
static int superseded(struct gh_ctx *ctx, const struct gh_mod_case *c, int64_t *by)
{
    struct gh_mod_filter f;
    json_object *list = NULL;
    int64_t total = 0;
    int group = restriction_group(c->type == GH_MOD_SOFTBAN ? GH_MOD_BAN : c->type), rc;
    size_t n;

    *by = 0;
    if (!group)
        return GH_OK;
    memset(&f, 0, sizeof(f));
    f.target_id = c->target_id;
    f.type = -1;
    f.status = (int)GH_MOD_ACTIVE;
    f.limit = 100;
    rc = gh_mod_case_list(ctx, c->guild_id, &f, &list, &total);
    if (rc != GH_OK)
        return rc;
    n = list && json_object_is_type(list, json_type_array) ? json_object_array_length(list) : 0;
    for (size_t i = 0; i < n && !*by; i++) {
        json_object *o = json_object_array_get_idx(list, i);
        const char *type = gh_json_get_str(o, "type");
        int64_t number = 0;
        int t = type ? gh_mod_type_parse(type) : -1;
        if (gh_json_get_int(o, "number", &number) == GH_OK && number > c->number && t >= 0 &&
            restriction_group((enum gh_mod_type)t) == group)
            *by = number;
    }
    json_object_put(list);
    return GH_OK;
}

static int job_lift(struct gh_ctx *ctx, const struct gh_job *job)
{
    struct gh_mod_case c;
    struct gh_mod_settings s;
    struct gh_rest_resp resp;
    char err[256];
    uint64_t guild_id, role_id;
    int64_t number, newer = 0;
    int rc, last;

    memset(&c, 0, sizeof(c));
    memset(&resp, 0, sizeof(resp));
    if (job_case_ref(job, &guild_id, &number) != GH_OK) {
        GH_ERROR(&ctx->log, "moderation:lift %s: payload needs guild_id and number", job->id);
        return GH_EINVAL;
    }
    last = job->attempt >= LIFT_MAX_ATTEMPTS;
    rc = gh_mod_case_get(ctx, guild_id, number, &c);
    if (rc == GH_ENOTFOUND) {
        GH_WARN(&ctx->log,
                "moderation:lift %s: case #%" PRId64 " of guild %" PRIu64 " is gone, nothing to lift",
                job->id, number, guild_id);
        rc = GH_OK;
        goto out;
    }
    if (rc != GH_OK) {
        snprintf(err, sizeof(err), "the case could not be read (%s)", gh_strerror(rc));
        goto failed;
    }
    if (c.lift == GH_MOD_LIFT_DONE) {
        GH_INFO(&ctx->log, "moderation:lift %s: case #%" PRId64 " already lifted", job->id, number);
        goto out;
    }
    rc = superseded(ctx, &c, &newer);
    if (rc != GH_OK) {
        snprintf(err, sizeof(err), "the member's newer cases could not be read (%s)", gh_strerror(rc));
        goto failed;
    }
    if (newer) {
        snprintf(err, sizeof(err), "left in place: case #%" PRId64 " is newer and still active", newer);
        GH_INFO(&ctx->log, "moderation:lift %s: case #%" PRId64 " %s", job->id, number, err);
        rc = gh_mod_case_set_lift(ctx, guild_id, number, GH_MOD_LIFT_DONE, err);
        goto out;
    }
    role_id = gh_json_get_snowflake(job->payload, "role_id");
    if (!role_id && (c.type == GH_MOD_MUTE || c.type == GH_MOD_JAIL) &&
        gh_mod_settings_load(ctx, guild_id, &s) == GH_OK)
        role_id = c.type == GH_MOD_MUTE ? s.mute_role_id : s.jail_role_id;
    rc = lift_on_discord(ctx, &c, role_id, &resp);
    if (rc == GH_OK) {
        rc = gh_mod_case_set_lift(ctx, guild_id, number, GH_MOD_LIFT_DONE, NULL);
        if (rc == GH_OK)
            GH_INFO(&ctx->log, "moderation:lift %s: case #%" PRId64 " of guild %" PRIu64 " lifted", job->id,
                    number, guild_id);
        else
            GH_WARN(&ctx->log,
                    "moderation:lift %s: case #%" PRId64 " lifted on Discord, not recorded (%s): retrying",
                    job->id, number, gh_strerror(rc));
        goto out;
    }
    snprintf(err, sizeof(err), "%s", resp.error[0] ? resp.error : gh_strerror(rc));
failed:
    if (rc == GH_EINVAL)
        last = 1; /* the worker dead-letters GH_EINVAL at once */
    if (last) {
        char final[256 + 48];
        snprintf(final, sizeof(final), "%s (gave up after %d attempts)", err, job->attempt);
        GH_ERROR(&ctx->log,
                 "moderation:lift %s: case #%" PRId64 " of guild %" PRIu64 " could not be lifted: %s",
                 job->id, number, guild_id, final);
        if (gh_mod_case_set_lift(ctx, guild_id, number, GH_MOD_LIFT_FAILED, final) != GH_OK)
            GH_ERROR(&ctx->log,
                     "moderation:lift %s: the failed lift of case #%" PRId64 " could not be recorded",
                     job->id, number);
    } else {
        GH_WARN(&ctx->log, "moderation:lift %s: case #%" PRId64 " attempt %d failed, retrying: %s", job->id,
                number, job->attempt, err);
        /* The dashboard shows the error while it retries (the lift stays pending). */
        (void)gh_mod_case_set_lift(ctx, guild_id, number, GH_MOD_LIFT_PENDING, err);
    }
out:
    gh_rest_resp_cleanup(&resp);
    gh_mod_case_cleanup(&c);
    return rc;
}

/* ------------------------------------------------------ moderation:decay */

int gh_mod_decay_schedule(struct gh_ctx *ctx, int64_t now_ms)
{
    int64_t hour = now_ms / DECAY_PERIOD_MS + 1, timer_id = 0;
    char key[64];
    int rc;

    snprintf(key, sizeof(key), "moderation:decay:%" PRId64, hour);
    rc = gh_timers_schedule(ctx, 0, "moderation:decay", NULL, key, hour * DECAY_PERIOD_MS, &timer_id);
    if (rc == GH_EDUPLICATE)
        rc = GH_OK;
    if (rc != GH_OK)
        GH_WARN(&ctx->log, "moderation: the decay timer %s could not be scheduled (%s)", key,
                gh_strerror(rc));
    return rc;
}

static int job_decay(struct gh_ctx *ctx, const struct gh_job *job)
{
    int64_t changed = 0;
    int rc, next;

    rc = gh_mod_decay(ctx, &changed);
    if (rc == GH_OK)
        GH_INFO(&ctx->log, "moderation:decay %s: %" PRId64 " warnings expired", job->id, changed);
    else
        GH_WARN(&ctx->log, "moderation:decay %s: failed (%s), retrying", job->id, gh_strerror(rc));
    next = gh_mod_decay_schedule(ctx, gh_now_ms());
    return rc != GH_OK ? rc : next;
}

/* A warn count Redis did not take (it was down): recount from PostgreSQL. */
static int job_recount(struct gh_ctx *ctx, const struct gh_job *job)
{
    uint64_t user = job->payload ? gh_json_get_snowflake(job->payload, "user_id") : 0;
    if (job->guild_id == 0 || user == 0) {
        GH_WARN(&ctx->log, "moderation:recount %s: no guild or user_id: dropped", job->id);
        return GH_OK;
    }
    gh_mod_warns_refresh(ctx, job->guild_id, user);
    return GH_OK;
}

const struct gh_job_kind gh_mod_jobs[GH_MOD_N_JOBS] = {
    {.kind = "moderation:modlog", .run = job_modlog, .timeout_s = 20, .max_attempts = 5},
    {.kind = "moderation:lift",
     .run = job_lift,
     .timeout_s = 30,
     .max_attempts = LIFT_MAX_ATTEMPTS,
     .backoff_base_ms = LIFT_BACKOFF_MS},
    {.kind = "moderation:decay",
     .run = job_decay,
     .timeout_s = 120,
     .max_attempts = 5,
     .backoff_base_ms = 10000},
    {.kind = "moderation:recount", .run = job_recount, .timeout_s = 20, .max_attempts = 5},
};
