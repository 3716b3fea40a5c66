/* interactions.c - the POST /interactions endpoint.
 *
 * Everything before the signature check answers with DESIGN.md's error JSON
 * and touches no store: an unsigned request costs one Ed25519 verification
 * at most. After it, the request is Discord's, and every answer is a 200
 * interaction response, because Discord shows the user nothing useful for
 * a 4xx/5xx ("This interaction failed").
 *
 * Routing is a table by interaction type. Commands and autocomplete go to
 * the command's handler, components and modal submits to the component
 * whose custom_id prefix is the longest match. A feature that can be turned
 * off is checked in the guild's settings before its handler runs.
 *
 * Per request the endpoint costs one Redis round trip (the command_log
 * push, kept per request for durability). Two things that used to be round
 * trips are amortised in the process: the "guild seen" mark (a cache of
 * recently seen guilds, below) and the counters (gh_metrics_defer: the fcgi
 * loop's tick sends them about once a second). */
#include "web/interactions.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/ctx.h"
#include "core/err.h"
#include "core/log.h"
#include "core/str.h"
#include "core/timeutil.h"
#include "core/config.h"
#include "discord/interaction.h"
#include "discord/respond.h"
#include "discord/verify.h"
#include "features/core/core.h"
#include "features/registry.h"
#include "store/cmdlog.h"
#include "store/pg.h"
#include "store/redis.h"
#include "store/settings.h"
#include "web/http.h"
#include "web/metrics.h"

#define SEEN_TTL_S 86400
/* The process remembers a guild it has seen (marked in Redis, row upserted)
 * for this long, in a direct-mapped table: a collision only costs a Redis
 * round trip. */
#define SEEN_LOCAL_MS ((int64_t)10 * 60 * 1000)
#define SEEN_LOCAL_BITS 12
#define SEEN_LOCAL_SLOTS (1u << SEEN_LOCAL_BITS)
/* command_log.options: the options are kept whole (25 options of 6000 characters fit);
 * only a set larger than the request cap itself is recorded as truncated. */
#define OPTIONS_MAX ((size_t)256 * 1024)

static const char guild_upsert_sql[] = "INSERT INTO guilds (id, name) VALUES ($1, $2) "
                                       "ON CONFLICT (id) DO UPDATE SET is_active = true, deleted_at = NULL";

/* State of one routed interaction. */
struct ix_state {
    struct gh_ctx *ctx;
    const struct gh_interaction *ix;
    struct gh_http_resp *resp;
    const char *type_label;     /* metrics: command, component, autocomplete, modal */
    const char *outcome;        /* ok, error, unknown, disabled */
    const char *metric_command; /* registry name or "unknown": never user text */
    char log_command[160];      /* command_log.command; "" = not recorded */
    const char *error;          /* command_log.error */
    int success;
};

static int64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ---- guild bookkeeping -------------------------------------------------- */

/* Guilds this process saw recently. Process state, like the stop flag of
 * prefork.c: gh_interactions_handle has no per-process handle, and the
 * table is only a cache (losing it costs one round trip per guild). */
static struct {
    uint64_t guild;
    int64_t until_ms; /* gh_mono_ms() */
} seen_local[SEEN_LOCAL_SLOTS];

static size_t seen_slot(uint64_t guild_id)
{
    /* Fibonacci hashing: snowflakes' low bits are a per-process counter. */
    return (size_t)((guild_id * UINT64_C(0x9E3779B97F4A7C15)) >> (64 - SEEN_LOCAL_BITS));
}

static void remember_guild(uint64_t guild_id)
{
    size_t i = seen_slot(guild_id);
    seen_local[i].guild = guild_id;
    seen_local[i].until_ms = gh_mono_ms() + SEEN_LOCAL_MS;
}

/* The first interaction of a guild in a day upserts its row; Redis remembers
 * that it did, and this process remembers it for SEEN_LOCAL_MS on top, so a
 * busy guild costs no round trip at all. With Redis down the first
 * interaction per SEEN_LOCAL_MS upserts (cheap and idempotent). A failed
 * upsert forgets the mark so the next one retries. A guild deactivated
 * meanwhile (its Redis mark deleted) comes back within SEEN_LOCAL_MS. */
static void note_guild(struct gh_ctx *ctx, uint64_t guild_id)
{
    char key[96], id[24];
    int marked = 0;

    if (!guild_id || !ctx->pg)
        return;
    size_t slot = seen_slot(guild_id);
    if (seen_local[slot].guild == guild_id && gh_mono_ms() < seen_local[slot].until_ms)
        return;
    if (ctx->redis && gh_key_guild(key, sizeof(key), (unsigned long long)guild_id, "core", "seen") == GH_OK) {
        redisReply *r = gh_redis_cmd(ctx->redis, "SET %s 1 NX EX %d", key, SEEN_TTL_S);
        int seen = r && r->type == REDIS_REPLY_NIL;
        marked = r && r->type == REDIS_REPLY_STATUS;
        freeReplyObject(r);
        if (seen) {
            remember_guild(guild_id);
            return;
        }
    }
    (void)snprintf(id, sizeof(id), "%" PRIu64, guild_id);
    const char *params[2] = {id, NULL}; /* the interaction carries no guild name */
    PGresult *res = gh_pg_exec_prepared(ctx->pg, "ix_guild_upsert", guild_upsert_sql, 2, params);
    if (!res) {
        gh_log(&ctx->log, GH_LOG_WARN, 0, "could not record guild %s: %s", id, gh_pg_errmsg(ctx->pg));
        if (marked) {
            redisReply *r = gh_redis_cmd(ctx->redis, "DEL %s", key);
            freeReplyObject(r);
        }
        return;
    }
    PQclear(res);
    remember_guild(guild_id);
}

/* ---- answers ------------------------------------------------------------ */

static void answer_ephemeral(struct ix_state *st, const char *text)
{
    gh_http_resp_set(st->resp, 200, "application/json");
    if (st->ix->type == GH_IX_AUTOCOMPLETE) {
        /* Autocomplete cannot carry a message: offer no choices. */
        gh_resp_autocomplete(&st->resp->body, NULL);
        return;
    }
    if (gh_resp_message(&st->resp->body, text, 1) != GH_OK) {
        gh_buf_reset(&st->resp->body);
        gh_buf_puts(&st->resp->body,
                    "{\"type\":4,\"data\":{\"content\":\"Something went wrong.\",\"flags\":64,"
                    "\"allowed_mentions\":{\"parse\":[]}}}");
    }
}

static int feature_disabled(struct ix_state *st, const struct gh_feature *f)
{
    if (!f || !f->can_disable || !st->ix->guild_id)
        return 0;
    return !gh_settings_feature_enabled(st->ctx, st->ix->guild_id, f->name, f->default_enabled);
}

static void answer_disabled(struct ix_state *st, const struct gh_feature *f)
{
    char text[512];
    (void)snprintf(text, sizeof(text), GH_IX_FMT_DISABLED, f->title ? f->title : f->name, f->name);
    st->outcome = "disabled";
    st->error = "feature disabled";
    answer_ephemeral(st, text);
}

/* Failures that mean something is broken on our side (not a user or Discord
 * condition) page the operator. */
static int needs_alert(int rc)
{
    return rc == GH_EPG || rc == GH_ENOMEM || strcmp(gh_errname(rc), "GH_EUNKNOWN") == 0;
}

static void handler_failed(struct ix_state *st, int rc, const char *what)
{
    struct gh_ctx *ctx = st->ctx;
    char text[256], msg[384];
    struct gh_buf context;

    st->outcome = "error";
    st->error = gh_strerror(rc);
    gh_log(&ctx->log, GH_LOG_ERROR, 0, "%s failed: %s (%s)", what, gh_strerror(rc), gh_errname(rc));

    (void)snprintf(msg, sizeof(msg), "%s failed: %s (%s)", what, gh_strerror(rc), gh_errname(rc));
    gh_buf_init(&context, 1024);
    int ok = gh_buf_puts(&context, "{\"handler\":\"") == GH_OK &&
             gh_buf_append_json_escaped(&context, what, strlen(what)) == GH_OK &&
             gh_buf_printf(&context,
                           "\",\"err\":\"%s\",\"corr\":\"%s\",\"guild_id\":\"%" PRIu64
                           "\",\"user_id\":\"%" PRIu64 "\",\"interaction_id\":\"%" PRIu64 "\",\"type\":%d}",
                           gh_errname(rc), ctx->log.corr, st->ix->guild_id, st->ix->user_id, st->ix->id,
                           st->ix->type) == GH_OK;
    gh_errlog_record(ctx, "interactions", msg, ok ? gh_buf_cstr(&context) : NULL, NULL);
    gh_buf_cleanup(&context);
    if (needs_alert(rc)) {
        (void)snprintf(msg, sizeof(msg), "%s failed: %s (reference %s)", what, gh_strerror(rc),
                       ctx->log.corr);
        gh_core_alert_enqueue(ctx, 0, msg); /* best effort: it logs CRIT itself when not queued */
    }
    (void)snprintf(text, sizeof(text), GH_IX_FMT_FAILED, ctx->log.corr);
    answer_ephemeral(st, text);
}

static void run_handler(struct ix_state *st, gh_command_fn fn, const char *what)
{
    gh_buf_reset(&st->resp->body);
    st->resp->status = 200;
    int rc = fn(st->ctx, st->ix, &st->resp->body);
    if (rc == GH_OK && st->resp->body.len == 0) {
        gh_log(&st->ctx->log, GH_LOG_ERROR, 0, "%s returned without writing a response", what);
        rc = GH_EINVAL;
    }
    if (rc != GH_OK) {
        handler_failed(st, rc, what);
        return;
    }
    memcpy(st->resp->content_type, "application/json", sizeof("application/json"));
    st->success = 1;
    st->outcome = "ok";
}

/* ---- routes ------------------------------------------------------------- */

static void route_command(struct ix_state *st)
{
    const struct gh_interaction *ix = st->ix;
    const struct gh_feature *f = NULL;
    int type = ix->command_type > 0 ? ix->command_type : 1;
    const struct gh_command *cmd = gh_registry_command(ix->command_name, type, &f);
    char what[64];

    (void)snprintf(st->log_command, sizeof(st->log_command), "%s", ix->command_name);
    if (!cmd || !cmd->handler) {
        st->outcome = "unknown";
        st->error = "unknown command";
        gh_log(&st->ctx->log, GH_LOG_WARN, 0, "unknown command '%s' (type %d): answered as unavailable",
               ix->command_name, type);
        answer_ephemeral(st, GH_IX_MSG_UNKNOWN_COMMAND);
        return;
    }
    st->metric_command = cmd->name;
    if (feature_disabled(st, f)) {
        answer_disabled(st, f);
        return;
    }
    (void)snprintf(what, sizeof(what), "/%s", cmd->name);
    run_handler(st, cmd->handler, what);
}

static void route_autocomplete(struct ix_state *st)
{
    const struct gh_feature *f = NULL;
    const struct gh_command *cmd = gh_registry_command(st->ix->command_name, 1, &f);
    char what[64];

    if (!cmd || !cmd->handler) {
        st->outcome = "unknown";
        answer_ephemeral(st, NULL);
        return;
    }
    st->metric_command = cmd->name;
    if (feature_disabled(st, f)) {
        st->outcome = "disabled";
        answer_ephemeral(st, NULL);
        return;
    }
    (void)snprintf(what, sizeof(what), "autocomplete /%s", cmd->name);
    run_handler(st, cmd->handler, what);
}

static void route_component(struct ix_state *st)
{
    const struct gh_feature *f = NULL;
    const struct gh_component *comp = gh_registry_component(st->ix->custom_id, &f);
    char what[160];

    if (!comp || !comp->handler) {
        (void)snprintf(st->log_command, sizeof(st->log_command), "%s", "component:unknown");
        st->outcome = "unknown";
        st->error = "unknown component";
        gh_log(&st->ctx->log, GH_LOG_INFO, 0, "no component handles custom_id '%.100s'", st->ix->custom_id);
        answer_ephemeral(st, GH_IX_MSG_EXPIRED_COMPONENT);
        return;
    }
    (void)snprintf(st->log_command, sizeof(st->log_command), "component:%s", comp->prefix);
    if (feature_disabled(st, f)) {
        answer_disabled(st, f);
        return;
    }
    (void)snprintf(what, sizeof(what), "component %s", comp->prefix);
    run_handler(st, comp->handler, what);
}

static const struct {
    int type;
    const char *label;
    void (*route)(struct ix_state *st);
} routes[] = {
    {GH_IX_APPLICATION_COMMAND, "command", route_command},
    {GH_IX_MESSAGE_COMPONENT, "component", route_component},
    {GH_IX_AUTOCOMPLETE, "autocomplete", route_autocomplete},
    {GH_IX_MODAL_SUBMIT, "modal", route_component},
};

/* ---- recording ---------------------------------------------------------- */

/* Options as JSON text for command_log: the command's options, or the
 * component's custom_id and values. */
static void options_text(const struct gh_interaction *ix, struct gh_buf *out)
{
    int rc = GH_OK;
    if (ix->type == GH_IX_APPLICATION_COMMAND) {
        if (!ix->options)
            return;
        const char *s = json_object_to_json_string_ext(ix->options, JSON_C_TO_STRING_PLAIN |
                                                                        JSON_C_TO_STRING_NOSLASHESCAPE);
        rc = gh_buf_puts(out, s ? s : "null");
    } else {
        json_object *values = ix->data ? json_object_object_get(ix->data, "values") : NULL;
        const char *cid = ix->custom_id ? ix->custom_id : "";
        rc = gh_buf_puts(out, "{\"custom_id\":\"");
        if (rc == GH_OK)
            rc = gh_buf_append_json_escaped(out, cid, strlen(cid));
        if (rc == GH_OK && values)
            rc = gh_buf_printf(out, "\",\"values\":%s}",
                               json_object_to_json_string_ext(values, JSON_C_TO_STRING_PLAIN |
                                                                          JSON_C_TO_STRING_NOSLASHESCAPE));
        else if (rc == GH_OK)
            rc = gh_buf_puts(out, "\"}");
    }
    if (rc != GH_OK) {
        gh_buf_reset(out);
        gh_buf_puts(out, "{\"truncated\":true}");
    }
}

static void record(struct ix_state *st, int64_t duration_us)
{
    const struct gh_interaction *ix = st->ix;
    struct gh_buf opts;

    if (!st->log_command[0])
        return;
    gh_buf_init(&opts, OPTIONS_MAX);
    options_text(ix, &opts);
    struct gh_cmdlog_entry e = {
        .guild_id = ix->guild_id,
        .user_id = ix->user_id,
        .channel_id = ix->channel_id,
        .interaction_id = ix->id,
        .command = st->log_command,
        .options_json = opts.len ? gh_buf_cstr(&opts) : NULL,
        .options_verbatim = 1, /* complete JSON from options_text: not parsed again */
        .success = st->success,
        .error = st->success ? NULL : st->error,
        .duration_us = duration_us > INT32_MAX ? INT32_MAX : (int)duration_us,
        .corr = st->ctx->log.corr,
    };
    int rc = gh_cmdlog_record(st->ctx, &e);
    if (rc != GH_OK)
        gh_log(&st->ctx->log, GH_LOG_WARN, 0, "command_log entry for '%s' not recorded: %s", st->log_command,
               gh_strerror(rc));
    gh_buf_cleanup(&opts);
}

static void count(struct gh_ctx *ctx, const char *type, const char *outcome, const char *command,
                  int64_t duration_us)
{
    struct gh_metrics_batch b;
    char labels[160];

    if (!ctx->redis)
        return;
    gh_metrics_batch_init(&b);
    (void)snprintf(labels, sizeof(labels), "type=\"%s\",outcome=\"%s\"", type, outcome);
    gh_metrics_batch_incr(&b, "gh_interactions_total", labels, 1);
    if (command) {
        (void)snprintf(labels, sizeof(labels), "command=\"%s\",outcome=\"%s\"", command, outcome);
        gh_metrics_batch_incr(&b, "gh_commands_total", labels, 1);
    }
    if (duration_us >= 0) {
        (void)snprintf(labels, sizeof(labels), "type=\"%s\"", type);
        gh_metrics_batch_observe(&b, "gh_interaction_duration_seconds", labels, (double)duration_us / 1e6);
    }
    gh_metrics_defer(ctx->redis, &b); /* sent by the process's tick (fcgi/interactions.c) */
}

/* ---- entry point -------------------------------------------------------- */

static void reject(struct gh_ctx *ctx, struct gh_http_resp *resp, int status, const char *code,
                   const char *message)
{
    gh_http_error(resp, status, code, message);
    gh_log(&ctx->log, GH_LOG_INFO, 0, "rejected with %d %s: %s", status, code, message);
    count(ctx, "rejected", code, NULL, -1);
}

/* Everything after the shape checks: note the guild, route by type (the
 * feature's enabled state checked before its handler), record and count. */
static void route_parsed(struct gh_ctx *ctx, const struct gh_interaction *ix, struct gh_http_resp *resp,
                         int64_t t0)
{
    ctx->log.guild_id = ix->guild_id;
    ctx->log.user_id = ix->user_id;
    note_guild(ctx, ix->guild_id);

    struct ix_state st = {
        .ctx = ctx,
        .ix = ix,
        .resp = resp,
        .type_label = "other",
        .outcome = "unknown",
        .metric_command = NULL,
        .error = NULL,
        .success = 0,
    };
    st.log_command[0] = '\0';
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        if (routes[i].type == ix->type) {
            st.type_label = routes[i].label;
            routes[i].route(&st);
            break;
        }
    }
    if (ix->type == GH_IX_APPLICATION_COMMAND && !st.metric_command)
        st.metric_command = "unknown";

    int64_t took = mono_us() - t0;
    record(&st, took);
    count(ctx, st.type_label, st.outcome, ix->type == GH_IX_APPLICATION_COMMAND ? st.metric_command : NULL,
          took);
    gh_log(&ctx->log, GH_LOG_DEBUG, 0, "%s %s: %s in %" PRId64 " us", st.type_label,
           st.log_command[0] ? st.log_command : (ix->command_name ? ix->command_name : "-"), st.outcome, took);
}

void gh_interactions_route(struct gh_ctx *ctx, const struct gh_interaction *ix, struct gh_http_resp *resp)
{
    route_parsed(ctx, ix, resp, mono_us());
}

void gh_interactions_handle(struct gh_ctx *ctx, const struct gh_http_req *req, struct gh_http_resp *resp)
{
    int64_t t0 = mono_us();
    struct gh_interaction ix;
    char err[256], msg[320];

    memset(&ix, 0, sizeof(ix));
    gh_logger_new_corr(&ctx->log);
    ctx->log.guild_id = 0;
    ctx->log.user_id = 0;

    if (!req->method || strcmp(req->method, "POST") != 0) {
        reject(ctx, resp, 405, "method_not_allowed", "interactions are POSTed");
        gh_http_resp_header(resp, "Allow", "POST");
        return;
    }
    if (req->body_too_large) {
        (void)snprintf(msg, sizeof(msg), "request body is larger than %zu bytes",
                       ctx->cfg ? ctx->cfg->max_body_bytes : (size_t)0);
        reject(ctx, resp, 413, "body_too_large", msg);
        return;
    }
    const char *sig = gh_http_header(req, "x-signature-ed25519");
    const char *ts = gh_http_header(req, "x-signature-timestamp");
    if (!sig || !*sig || !ts || !*ts) {
        reject(ctx, resp, 401, "missing_signature",
               "the X-Signature-Ed25519 and X-Signature-Timestamp headers are required");
        return;
    }
    if (!ctx->cfg || !ctx->cfg->has_public_key) {
        gh_log(&ctx->log, GH_LOG_ERROR, 0,
               "DISCORD_PUBLIC_KEY is not configured: cannot verify interactions");
        gh_http_error(resp, 500, "not_configured", "the server has no public key to verify requests with");
        return;
    }
    int rc = gh_verify_interaction(ctx->cfg->public_key, sig, ts, req->body ? req->body : "", req->body_len,
                                   gh_now_ms() / 1000, ctx->cfg->signature_max_skew_s);
    if (rc == GH_ESTALE) {
        (void)snprintf(msg, sizeof(msg),
                       "the request timestamp is more than %d s away from the server's clock",
                       ctx->cfg->signature_max_skew_s);
        reject(ctx, resp, 401, "stale_timestamp", msg);
        return;
    }
    if (rc != GH_OK) {
        reject(ctx, resp, 401, "invalid_signature", "the request signature is not valid");
        return;
    }
    rc = gh_interaction_parse(req->body, req->body_len, &ix, err, sizeof(err));
    if (rc == GH_EJSON) {
        reject(ctx, resp, 400, "malformed_json", "the request body is not a JSON object");
        return;
    }
    if (rc != GH_OK) {
        reject(ctx, resp, 400, "invalid_interaction", err[0] ? err : gh_strerror(rc));
        return;
    }
    if (ix.type == GH_IX_PING) {
        gh_http_resp_set(resp, 200, "application/json");
        gh_resp_pong(&resp->body);
        count(ctx, "ping", "ok", NULL, mono_us() - t0);
        gh_interaction_cleanup(&ix);
        return;
    }

    route_parsed(ctx, &ix, resp, t0);
    gh_interaction_cleanup(&ix);
}
