/* jobs.c - the core feature's jobs: core:followup edits a deferred
 * interaction response, core:alert posts an alert to a channel.
 *
 * Both are idempotent: editing @original twice leaves the same message, and
 * an alert's job id is its dedupe key. A job returns GH_OK when it is done
 * (also when there is nothing left to do, e.g. the interaction expired), a
 * gh_err to be retried, or GH_EINVAL when its payload is unusable. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "core/config.h"
#include "core/ctx.h"
#include "core/err.h"
#include "core/log.h"
#include "core/str.h"
#include "core/timeutil.h"
#include "discord/interaction.h"
#include "discord/respond.h"
#include "discord/rest.h"
#include "features/core/core.h"
#include "store/queue.h"
#include "store/settings.h"

#define TOKEN_LIFETIME_MS ((int64_t)15 * 60 * 1000)
#define FOLLOWUP_MARGIN_MS ((int64_t)30 * 1000)
#define ALERT_DEADLINE_MS ((int64_t)60 * 60 * 1000)
#define ALERT_TEXT_MAX 4000
#define ALERT_COLOR 0xED4245

/* Discord JSON error codes. */
#define DISCORD_UNKNOWN_WEBHOOK 10015
#define DISCORD_UNKNOWN_INTERACTION 10062

int64_t gh_core_followup_deadline_ms(uint64_t interaction_id)
{
    return gh_snowflake_ms(interaction_id) + TOKEN_LIFETIME_MS - FOLLOWUP_MARGIN_MS;
}

/* Borrowed string member, or NULL. */
static const char *payload_str(const struct gh_job *job, const char *key)
{
    json_object *v = NULL;

    if (!job->payload || !json_object_object_get_ex(job->payload, key, &v) ||
        !json_object_is_type(v, json_type_string))
        return NULL;
    return json_object_get_string(v);
}

/* A snowflake given as a string (or, leniently, a number). 0 when absent. */
static uint64_t payload_snowflake(const struct gh_job *job, const char *key)
{
    json_object *v = NULL;

    if (!job->payload || !json_object_object_get_ex(job->payload, key, &v))
        return 0;
    if (json_object_is_type(v, json_type_string))
        return gh_snowflake_parse(json_object_get_string(v));
    if (json_object_is_type(v, json_type_int) && json_object_get_int64(v) > 0)
        return (uint64_t)json_object_get_int64(v);
    return 0;
}

/* Interaction tokens are URL-safe base64 with dots; refuse anything that
 * could change the path. */
static int token_ok(const char *t)
{
    size_t n = 0;

    for (; t[n]; n++) {
        char c = t[n];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
              c == '_' || c == '.'))
            return 0;
    }
    return n > 0 && n < 1024;
}

/* content with every "{elapsed_ms}" replaced. */
static int expand_content(const char *content, int64_t elapsed_ms, struct gh_buf *b)
{
    static const char mark[] = "{elapsed_ms}";
    const char *p = content, *hit;
    int rc = GH_OK;

    while (rc == GH_OK && (hit = strstr(p, mark)) != NULL) {
        rc = gh_buf_append(b, p, (size_t)(hit - p));
        if (rc == GH_OK)
            rc = gh_buf_printf(b, "%" PRId64, elapsed_ms < 0 ? 0 : elapsed_ms);
        p = hit + sizeof(mark) - 1;
    }
    if (rc == GH_OK)
        rc = gh_buf_puts(b, p);
    return rc;
}

static char *msg_to_text(json_object *msg)
{
    const char *s =
        json_object_to_json_string_ext(msg, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    return s ? strdup(s) : NULL;
}

static int job_followup(struct gh_ctx *ctx, const struct gh_job *job)
{
    const char *app = payload_str(job, "application_id");
    const char *token = payload_str(job, "token");
    const char *content = payload_str(job, "content");
    uint64_t ixid = payload_snowflake(job, "interaction_id");
    struct gh_rest_resp resp;
    struct gh_rest_req req;
    struct gh_buf text;
    json_object *msg = NULL;
    char path[1200];
    char *body = NULL;
    int rc = GH_EINVAL;

    memset(&resp, 0, sizeof(resp));
    gh_buf_init(&text, 2000);
    if (!app || !gh_snowflake_parse(app) || !token || !token_ok(token) || !content) {
        GH_ERROR(&ctx->log, "core:followup %s: payload needs application_id, token and content", job->id);
        goto out;
    }
    rc = expand_content(content, ixid ? gh_now_ms() - gh_snowflake_ms(ixid) : 0, &text);
    if (rc != GH_OK)
        goto out;
    rc = GH_ETOOBIG;
    if (gh_snprintf(path, sizeof(path), "/webhooks/%s/%s/messages/@original", app, token) != GH_OK)
        goto out;
    rc = GH_ENOMEM;
    msg = gh_msg_new(gh_buf_cstr(&text), NULL, NULL, 0);
    body = msg ? msg_to_text(msg) : NULL;
    if (!body)
        goto out;
    rc = GH_EUNAVAILABLE;
    if (!ctx->rest) {
        GH_ERROR(&ctx->log, "core:followup %s: no REST client", job->id);
        goto out;
    }
    memset(&req, 0, sizeof(req));
    req.method = "PATCH";
    req.path = path;
    req.body = body;
    req.body_len = strlen(body);
    req.no_auth = 1;
    rc = gh_rest_do(ctx->rest, &req, &resp);
    if (rc == GH_OK) {
        GH_INFO(&ctx->log, "core:followup %s: edited the original response", job->id);
    } else if (rc == GH_ENOTFOUND || resp.status == 404 || resp.discord_code == DISCORD_UNKNOWN_WEBHOOK ||
               resp.discord_code == DISCORD_UNKNOWN_INTERACTION) {
        /* The token expired or the response was deleted: nothing to edit. */
        GH_WARN(&ctx->log, "core:followup %s: interaction gone (HTTP %ld, code %d), dropping", job->id,
                resp.status, resp.discord_code);
        rc = GH_OK;
    } else {
        GH_WARN(&ctx->log, "core:followup %s: edit failed (HTTP %ld, code %d): %s", job->id, resp.status,
                resp.discord_code, resp.error);
    }
out:
    gh_rest_resp_cleanup(&resp);
    free(body);
    json_object_put(msg);
    gh_buf_cleanup(&text);
    return rc;
}

/* The guild's alert channel from core settings, or 0. */
static uint64_t guild_alert_channel(struct gh_ctx *ctx, uint64_t guild_id)
{
    json_object *doc = NULL, *v = NULL;
    uint64_t channel = 0;
    int version = 0;

    if (!guild_id)
        return 0;
    if (gh_settings_get(ctx, guild_id, "core", &doc, &version) != GH_OK) {
        GH_WARN(&ctx->log, "core:alert: settings of guild %" PRIu64 " unreadable, using the operator channel",
                guild_id);
        return 0;
    }
    if (doc && json_object_object_get_ex(doc, "alert_channel_id", &v) &&
        json_object_is_type(v, json_type_string))
        channel = gh_snowflake_parse(json_object_get_string(v));
    json_object_put(doc);
    return channel;
}

static int post_alert(struct gh_ctx *ctx, uint64_t channel, uint64_t guild_id, const char *message,
                      const char *corr, struct gh_rest_resp *resp)
{
    json_object *embeds = NULL, *embed = NULL, *footer = NULL, *msg = NULL;
    struct gh_rest_req req;
    char text[ALERT_TEXT_MAX], foot[128], ts[32], path[64];
    char *body = NULL;
    int rc = GH_ENOMEM;

    gh_escape_markdown(message, text, sizeof(text));
    gh_iso8601(gh_now_ms(), ts, sizeof(ts));
    if (guild_id)
        snprintf(foot, sizeof(foot), "guild %" PRIu64 "%s%s", guild_id, corr && corr[0] ? " | corr " : "",
                 corr ? corr : "");
    else
        snprintf(foot, sizeof(foot), "operator alert%s%s", corr && corr[0] ? " | corr " : "",
                 corr ? corr : "");
    embeds = json_object_new_array();
    embed = json_object_new_object();
    footer = json_object_new_object();
    if (!embeds || !embed || !footer)
        goto out;
    json_object_object_add(footer, "text", json_object_new_string(foot));
    json_object_object_add(embed, "title", json_object_new_string("Guildhall alert"));
    json_object_object_add(embed, "description", json_object_new_string(text));
    json_object_object_add(embed, "color", json_object_new_int(ALERT_COLOR));
    json_object_object_add(embed, "timestamp", json_object_new_string(ts));
    json_object_object_add(embed, "footer", footer);
    footer = NULL;
    json_object_array_add(embeds, embed);
    embed = NULL;
    msg = gh_msg_new(NULL, embeds, NULL, 0);
    body = msg ? msg_to_text(msg) : NULL;
    if (!body)
        goto out;
    rc = GH_EUNAVAILABLE;
    if (!ctx->rest)
        goto out;
    snprintf(path, sizeof(path), "/channels/%" PRIu64 "/messages", channel);
    memset(&req, 0, sizeof(req));
    req.method = "POST";
    req.path = path;
    req.body = body;
    req.body_len = strlen(body);
    rc = gh_rest_do(ctx->rest, &req, resp);
out:
    free(body);
    json_object_put(msg);
    json_object_put(footer);
    json_object_put(embed);
    json_object_put(embeds);
    return rc;
}

static int job_alert(struct gh_ctx *ctx, const struct gh_job *job)
{
    const char *message = payload_str(job, "message");
    const char *corr = payload_str(job, "corr");
    uint64_t guild_id = payload_snowflake(job, "guild_id");
    uint64_t operator_channel = ctx->cfg ? ctx->cfg->alert_channel_id : 0;
    uint64_t channel;
    struct gh_rest_resp resp;
    int rc;

    if (!guild_id)
        guild_id = job->guild_id;
    if (!message || !message[0]) {
        GH_ERROR(&ctx->log, "core:alert %s: payload has no message", job->id);
        return GH_EINVAL;
    }
    channel = guild_alert_channel(ctx, guild_id);
    if (!channel)
        channel = operator_channel;
    if (!channel) {
        GH_CRIT(&ctx->log, "alert (no alert channel configured; guild %" PRIu64 "): %s", guild_id, message);
        return GH_OK;
    }
    memset(&resp, 0, sizeof(resp));
    rc = post_alert(ctx, channel, guild_id, message, corr, &resp);
    if ((rc == GH_ENOTFOUND || rc == GH_EFORBIDDEN) && operator_channel && channel != operator_channel) {
        /* The guild's channel is gone or closed to us: tell the operator instead. */
        GH_WARN(&ctx->log,
                "core:alert %s: channel %" PRIu64 " refused (HTTP %ld), using the operator channel", job->id,
                channel, resp.status);
        gh_rest_resp_cleanup(&resp);
        memset(&resp, 0, sizeof(resp));
        channel = operator_channel;
        rc = post_alert(ctx, channel, guild_id, message, corr, &resp);
    }
    if (rc == GH_OK) {
        GH_INFO(&ctx->log, "core:alert %s: posted to channel %" PRIu64, job->id, channel);
    } else if (rc == GH_ENOTFOUND || rc == GH_EFORBIDDEN) {
        /* Retrying cannot help; keep the text in the log. */
        GH_CRIT(&ctx->log, "alert (channel %" PRIu64 " refused it, HTTP %ld): %s", channel, resp.status,
                message);
        rc = GH_OK;
    } else {
        GH_WARN(&ctx->log, "core:alert %s: post failed (HTTP %ld): %s", job->id, resp.status, resp.error);
    }
    gh_rest_resp_cleanup(&resp);
    return rc;
}

const struct gh_job_kind gh_core_jobs[GH_CORE_N_JOBS] = {
    {.kind = "core:followup", .run = job_followup, .timeout_s = 20, .max_attempts = 3},
    {.kind = "core:alert", .run = job_alert, .timeout_s = 20, .max_attempts = 5},
};

static uint32_t fnv1a(const char *s)
{
    uint32_t h = 2166136261u;

    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

int gh_core_alert_enqueue(struct gh_ctx *ctx, uint64_t guild_id, const char *message)
{
    json_object *payload = NULL;
    char id[128], gid[24];
    int rc = GH_EINVAL;

    if (!message || !message[0])
        goto out;
    if (ctx->log.corr[0])
        rc = gh_snprintf(id, sizeof(id), "core:alert:%s:%08x", ctx->log.corr, fnv1a(message));
    else
        rc = gh_snprintf(id, sizeof(id), "core:alert:t%" PRId64 ":%08x", gh_now_ms(), fnv1a(message));
    if (rc != GH_OK)
        goto out;
    rc = GH_ENOMEM;
    payload = json_object_new_object();
    if (!payload)
        goto out;
    if (guild_id) {
        snprintf(gid, sizeof(gid), "%" PRIu64, guild_id);
        json_object_object_add(payload, "guild_id", json_object_new_string(gid));
    }
    json_object_object_add(payload, "message", json_object_new_string(message));
    json_object_object_add(payload, "corr", json_object_new_string(ctx->log.corr));
    rc = GH_EREDIS;
    if (ctx->redis)
        rc = gh_queue_enqueue(ctx->redis, ctx->queue && ctx->queue[0] ? ctx->queue : GH_QUEUE_DEFAULT, id,
                              "core:alert", guild_id, payload, gh_now_ms() + ALERT_DEADLINE_MS);
out:
    if (rc != GH_OK && rc != GH_EDUPLICATE && message)
        GH_CRIT(&ctx->log, "alert not queued (%s; guild %" PRIu64 "): %s", gh_strerror(rc), guild_id,
                message);
    json_object_put(payload);
    return rc;
}
