/* commands.c - the core feature's commands: /ping, /status, /help, /feature.
 *
 * Each handler writes the whole interaction response into out. Handlers
 * that read a dependency (PostgreSQL, Redis) degrade instead of failing:
 * /status reports "down" for the part that did not answer, /ping answers
 * inline when the job queue is unreachable. */
#include <ctype.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "core/ctx.h"
#include "core/err.h"
#include "core/log.h"
#include "core/str.h"
#include "core/timeutil.h"
#include "core/version.h"
#include "discord/interaction.h"
#include "discord/perms.h"
#include "discord/respond.h"
#include "features/core/core.h"
#include "features/registry.h"
#include "store/pg.h"
#include "store/queue.h"
#include "store/redis.h"
#include "core/json.h"
#include "store/settings.h"

#define CONTENT_MAX 2000
#define EMBED_DESC_MAX 4096
#define AUTOCOMPLETE_MAX 25
#define SHARDS_SHOWN 10
#define EMBED_COLOR 0x5865F2

#define PING_DEFERRED_CONTENT "Pong! (deferred: edited by a worker {elapsed_ms} ms after the command)"

/* The documented source is features/core/schema.json; a unit test checks
 * that this text is identical to it. */
static const char core_schema[] =
    "{\n"
    "  \"type\": \"object\",\n"
    "  \"title\": \"Core\",\n"
    "  \"properties\": {\n"
    "    \"alert_channel_id\": {\n"
    "      \"type\": \"string\",\n"
    "      \"format\": \"channel\",\n"
    "      \"title\": \"Alert channel\",\n"
    "      \"description\": \"Channel where Guildhall posts errors and warnings about this server.\"\n"
    "    },\n"
    "    \"manager_role_id\": {\n"
    "      \"type\": \"string\",\n"
    "      \"format\": \"role\",\n"
    "      \"title\": \"Manager role\",\n"
    "      \"description\": \"Members with this role may manage Guildhall (/feature) like members with "
    "Manage Server. It must sit below your highest role and Guildhall's.\"\n"
    "    },\n"
    "    \"embed_color\": {\n"
    "      \"type\": \"integer\",\n"
    "      \"format\": \"color\",\n"
    "      \"minimum\": 0,\n"
    "      \"maximum\": 16777215,\n"
    "      \"x-premium\": \"premium\",\n"
    "      \"title\": \"Embed color\",\n"
    "      \"description\": \"Color of the embeds Guildhall posts here (needs Guildhall Premium).\"\n"
    "    }\n"
    "  },\n"
    "  \"additionalProperties\": false\n"
    "}\n";

/* ------------------------------------------------------------------------ */
/* small helpers */

static const char *queue_name(const struct gh_ctx *ctx)
{
    return ctx->queue && ctx->queue[0] ? ctx->queue : GH_QUEUE_DEFAULT;
}

static int64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t interaction_age_ms(const struct gh_interaction *ix)
{
    int64_t age = gh_now_ms() - gh_snowflake_ms(ix->id);
    return age < 0 ? 0 : age;
}

/* A message response (type 4) with one embed. embed is borrowed. */
static int reply_embed(struct gh_buf *out, json_object *embed, int ephemeral)
{
    json_object *embeds = json_object_new_array();
    json_object *msg = NULL;
    int rc = GH_ENOMEM;

    if (!embeds)
        goto out;
    json_object_array_add(embeds, json_object_get(embed));
    msg = gh_msg_new(NULL, embeds, NULL, ephemeral ? GH_MSG_EPHEMERAL : 0);
    if (!msg)
        goto out;
    rc = gh_resp_with_message(out, GH_CB_MESSAGE, msg);
out:
    json_object_put(msg);
    json_object_put(embeds);
    return rc;
}

static json_object *embed_new(const char *title, const char *description)
{
    json_object *e = json_object_new_object();

    if (!e)
        return NULL;
    if (title)
        json_object_object_add(e, "title", json_object_new_string(title));
    if (description && description[0])
        json_object_object_add(e, "description", json_object_new_string(description));
    json_object_object_add(e, "color", json_object_new_int(EMBED_COLOR));
    return e;
}

static void embed_field(json_object *embed, const char *name, const char *value, int is_inline)
{
    json_object *fields = NULL;
    json_object *f = json_object_new_object();

    if (!f)
        return;
    if (!json_object_object_get_ex(embed, "fields", &fields)) {
        fields = json_object_new_array();
        json_object_object_add(embed, "fields", fields);
    }
    json_object_object_add(f, "name", json_object_new_string(name));
    json_object_object_add(f, "value", json_object_new_string(value && value[0] ? value : "-"));
    json_object_object_add(f, "inline", json_object_new_boolean(is_inline));
    json_object_array_add(fields, f);
}

/* Case-insensitive prefix / substring tests for autocomplete. */
static int ci_prefix(const char *s, const char *prefix)
{
    for (; *prefix; s++, prefix++)
        if (tolower((unsigned char)*s) != tolower((unsigned char)*prefix))
            return 0;
    return 1;
}

static int ci_contains(const char *s, const char *needle)
{
    if (!needle[0])
        return 1;
    for (; *s; s++)
        if (ci_prefix(s, needle))
            return 1;
    return 0;
}

static int feature_enabled_here(struct gh_ctx *ctx, const struct gh_interaction *ix,
                                const struct gh_feature *f)
{
    if (!f->can_disable)
        return 1;
    if (!ix->guild_id)
        return f->default_enabled;
    return gh_settings_feature_enabled(ctx, ix->guild_id, f->name, f->default_enabled);
}

/* ------------------------------------------------------------------------ */
/* /ping */

static int ping_inline(struct gh_buf *out, const struct gh_interaction *ix, const char *note)
{
    char text[256];

    if (gh_snprintf(text, sizeof(text), "Pong! (%" PRId64 " ms since the interaction was sent%s)",
                    interaction_age_ms(ix), note ? note : "") != GH_OK)
        return GH_ETOOBIG;
    return gh_resp_message(out, text, 0);
}

/* Queues the job that edits @original. GH_OK, GH_EDUPLICATE (already queued
 * for this interaction), GH_EREDIS / GH_EUNAVAILABLE. */
static int enqueue_followup(struct gh_ctx *ctx, const struct gh_interaction *ix, const char *content)
{
    char id[64], app[24], ixid[24];
    json_object *payload = NULL;
    int rc = GH_EUNAVAILABLE;

    if (!ctx->redis)
        goto out;
    rc = GH_EINVAL;
    if (!ix->token || !ix->token[0] || !ix->id || !ix->application_id)
        goto out;
    if (gh_snprintf(id, sizeof(id), "core:followup:%" PRIu64, ix->id) != GH_OK ||
        gh_snprintf(app, sizeof(app), "%" PRIu64, ix->application_id) != GH_OK ||
        gh_snprintf(ixid, sizeof(ixid), "%" PRIu64, ix->id) != GH_OK)
        goto out;
    rc = GH_ENOMEM;
    payload = json_object_new_object();
    if (!payload)
        goto out;
    json_object_object_add(payload, "application_id", json_object_new_string(app));
    json_object_object_add(payload, "token", json_object_new_string(ix->token));
    json_object_object_add(payload, "content", json_object_new_string(content));
    json_object_object_add(payload, "interaction_id", json_object_new_string(ixid));
    rc = gh_queue_enqueue(ctx->redis, queue_name(ctx), id, "core:followup", ix->guild_id, payload,
                          gh_core_followup_deadline_ms(ix->id));
out:
    json_object_put(payload);
    return rc;
}

static int cmd_ping(struct gh_ctx *ctx, const struct gh_interaction *ix, struct gh_buf *out)
{
    int deferred = 0;
    int rc;

    if (gh_interaction_option_bool(ix, "deferred", &deferred) != GH_OK)
        deferred = 0;
    if (!deferred)
        return ping_inline(out, ix, NULL);

    rc = enqueue_followup(ctx, ix, PING_DEFERRED_CONTENT);
    if (rc == GH_OK || rc == GH_EDUPLICATE) {
        if (rc == GH_EDUPLICATE)
            GH_INFO(&ctx->log, "ping: follow-up for interaction %" PRIu64 " already queued", ix->id);
        return gh_resp_deferred(out, 0);
    }
    GH_WARN(&ctx->log, "ping: job queue unavailable (%s), answering inline", gh_strerror(rc));
    return ping_inline(out, ix, "; the job queue is unavailable, so this answer is inline");
}

/* ------------------------------------------------------------------------ */
/* /status */

static void format_duration(int64_t ms, char *out, size_t size)
{
    int64_t s = ms / 1000;
    long long d = (long long)(s / 86400), h = (long long)(s % 86400 / 3600);
    long long m = (long long)(s % 3600 / 60), sec = (long long)(s % 60);

    if (ms < 0) {
        snprintf(out, size, "unknown");
    } else if (d > 0) {
        snprintf(out, size, "%lldd %lldh %lldm", d, h, m);
    } else if (h > 0) {
        snprintf(out, size, "%lldh %lldm %llds", h, m, sec);
    } else if (m > 0) {
        snprintf(out, size, "%lldm %llds", m, sec);
    } else {
        snprintf(out, size, "%llds", sec);
    }
}

static void status_postgres(struct gh_ctx *ctx, struct gh_buf *b)
{
    PGresult *res = NULL;
    int64_t t0 = mono_us();
    int ok = ctx->pg && gh_pg_ping(ctx->pg) == GH_OK;
    double ping_ms = (double)(mono_us() - t0) / 1000.0;

    if (!ok) {
        gh_buf_puts(b, "**PostgreSQL:** down\n**Guilds:** unknown (PostgreSQL down)\n");
        GH_WARN(&ctx->log, "status: PostgreSQL down: %s", ctx->pg ? gh_pg_errmsg(ctx->pg) : "not configured");
        return;
    }
    gh_buf_printf(b, "**PostgreSQL:** ok (%.1f ms)\n", ping_ms);
    res = gh_pg_exec_prepared(ctx->pg, "core_status_guilds", "SELECT count(*) FROM guilds WHERE is_active", 0,
                              NULL);
    if (res && PQntuples(res) == 1)
        gh_buf_printf(b, "**Guilds:** %s\n", PQgetvalue(res, 0, 0));
    else
        gh_buf_puts(b, "**Guilds:** unknown (query failed)\n");
    PQclear(res);
}

static int cmp_shard_id(const void *a, const void *b)
{
    long long x = atoll(*(const char *const *)a), y = atoll(*(const char *const *)b);
    return (x > y) - (x < y);
}

static const char *hash_field(const redisReply *r, size_t i)
{
    if (!r || r->type != REDIS_REPLY_ARRAY || i >= r->elements)
        return "?";
    if (r->element[i]->type != REDIS_REPLY_STRING || !r->element[i]->str[0])
        return "?";
    return r->element[i]->str;
}

static void status_shards(struct gh_ctx *ctx, struct gh_buf *b)
{
    redisReply *set = gh_redis_cmd(ctx->redis, "SMEMBERS %s", "bot:{global}:shards");
    const char **ids = NULL;
    size_t n = 0;

    if (!set || set->type != REDIS_REPLY_ARRAY) {
        gh_buf_puts(b, "**Shards:** unknown (Redis error)\n");
        goto out;
    }
    if (set->elements == 0) {
        gh_buf_puts(b, "**Shards:** no gateway shards reporting\n");
        goto out;
    }
    ids = calloc(set->elements, sizeof(*ids));
    if (!ids)
        goto out;
    for (size_t i = 0; i < set->elements; i++)
        if (set->element[i]->type == REDIS_REPLY_STRING)
            ids[n++] = set->element[i]->str;
    qsort(ids, n, sizeof(*ids), cmp_shard_id);
    gh_buf_printf(b, "**Shards:** %zu reporting\n", n);
    for (size_t i = 0; i < n && i < SHARDS_SHOWN; i++) {
        char key[128], hb[48] = "?";
        redisReply *h = NULL;
        int64_t last = 0;

        if (gh_key_global(key, sizeof(key), "shards", "%s", ids[i]) != GH_OK)
            continue;
        h = gh_redis_cmd(ctx->redis, "HMGET %s state guilds latency_ms last_heartbeat_ms", key);
        if (gh_cstr_to_i64(hash_field(h, 3), &last) == GH_OK && last > 0) {
            char age[32];
            format_duration(gh_now_ms() - last, age, sizeof(age));
            snprintf(hb, sizeof(hb), "%s ago", age);
        }
        gh_buf_printf(b, "- shard %s: %s, %s guilds, %s ms, last heartbeat %s\n", ids[i], hash_field(h, 0),
                      hash_field(h, 1), hash_field(h, 2), hb);
        freeReplyObject(h);
    }
    if (n > SHARDS_SHOWN)
        gh_buf_printf(b, "- and %zu more\n", n - SHARDS_SHOWN);
out:
    free(ids);
    freeReplyObject(set);
}

static void status_redis(struct gh_ctx *ctx, struct gh_buf *b)
{
    int64_t t0 = mono_us();
    int ok = ctx->redis && gh_redis_ping(ctx->redis) == GH_OK;
    double ping_ms = (double)(mono_us() - t0) / 1000.0;
    long long ready, processing, dead;

    if (!ok) {
        gh_buf_puts(b,
                    "**Redis:** down\n**Shards:** unknown (Redis down)\n**Queue:** unknown (Redis down)\n");
        GH_WARN(&ctx->log, "status: Redis down");
        return;
    }
    gh_buf_printf(b, "**Redis:** ok (%.1f ms)\n", ping_ms);
    status_shards(ctx, b);
    ready = gh_queue_len(ctx->redis, queue_name(ctx), "ready");
    processing = gh_queue_len(ctx->redis, queue_name(ctx), "processing");
    dead = gh_queue_len(ctx->redis, queue_name(ctx), "dead");
    if (ready < 0)
        gh_buf_puts(b, "**Queue:** unknown (Redis error)\n");
    else
        gh_buf_printf(b, "**Queue:** %lld ready, %lld running, %lld dead\n", ready,
                      processing < 0 ? 0 : processing, dead < 0 ? 0 : dead);
}

static int cmd_status(struct gh_ctx *ctx, const struct gh_interaction *ix, struct gh_buf *out)
{
    struct gh_buf b;
    char uptime[64];
    int rc;

    (void)ix;
    gh_buf_init(&b, CONTENT_MAX);
    format_duration(ctx->started_ms > 0 ? gh_now_ms() - ctx->started_ms : -1, uptime, sizeof(uptime));
    gh_buf_printf(&b, "**Guildhall %s**\n**Uptime:** %s\n", ctx->version ? ctx->version : GH_VERSION, uptime);
    status_postgres(ctx, &b);
    status_redis(ctx, &b);
    rc = gh_resp_message(out, gh_buf_cstr(&b), 1);
    gh_buf_cleanup(&b);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* /help */

/* Appends "`/name` - description" lines of one command, one per subcommand
 * when it has subcommands. */
static void help_command_lines(struct gh_buf *b, const struct gh_command *c)
{
    json_object *opts = c->options_json ? json_tokener_parse(c->options_json) : NULL;
    int subs = 0;

    if (opts && json_object_is_type(opts, json_type_array)) {
        for (size_t i = 0; i < json_object_array_length(opts); i++) {
            json_object *o = json_object_array_get_idx(opts, i), *t, *n, *d;
            if (!json_object_object_get_ex(o, "type", &t) || json_object_get_int(t) != 1)
                continue;
            if (!json_object_object_get_ex(o, "name", &n) || !json_object_object_get_ex(o, "description", &d))
                continue;
            gh_buf_printf(b, "`/%s %s` - %s\n", c->name, json_object_get_string(n),
                          json_object_get_string(d));
            subs++;
        }
    }
    if (!subs)
        gh_buf_printf(b, "`/%s` - %s\n", c->name, c->description);
    json_object_put(opts);
}

static int help_all(struct gh_ctx *ctx, const struct gh_interaction *ix, struct gh_buf *out)
{
    struct gh_buf b;
    json_object *embed = NULL, *footer = NULL;
    int rc = GH_ENOMEM;

    gh_buf_init(&b, EMBED_DESC_MAX - 16);
    for (size_t i = 0; gh_features[i]; i++) {
        const struct gh_feature *f = gh_features[i];
        const char *state;
        size_t mark = b.len;

        if (!f->can_disable)
            state = "always on";
        else if (!ix->guild_id)
            state = f->default_enabled ? "on by default" : "off by default";
        else
            state = feature_enabled_here(ctx, ix, f) ? "enabled in this server" : "disabled in this server";
        gh_buf_printf(&b, "%s**%s** (%s)\n", i ? "\n" : "", f->title, state);
        for (size_t j = 0; j < f->n_commands; j++)
            if (f->commands[j].type == 1) /* context menus are not typed: not listed */
                help_command_lines(&b, &f->commands[j]);
        if (b.len == mark) { /* the buffer is full: say so instead of cutting a line */
            gh_buf_puts(&b, "...");
            break;
        }
    }
    embed = embed_new("Guildhall commands", gh_buf_cstr(&b));
    if (!embed)
        goto out;
    footer = json_object_new_object();
    if (!footer)
        goto out;
    json_object_object_add(footer, "text",
                           json_object_new_string("/help command:<name> shows the details of one command"));
    json_object_object_add(embed, "footer", footer);
    rc = reply_embed(out, embed, 1);
out:
    json_object_put(embed);
    gh_buf_cleanup(&b);
    return rc;
}

static int help_one(struct gh_ctx *ctx, const struct gh_interaction *ix, const char *want, struct gh_buf *out)
{
    const struct gh_feature *f = NULL;
    const struct gh_command *c = gh_registry_command(want, 1, &f);
    json_object *embed = NULL;
    struct gh_buf b;
    char title[64], where[64], perms[256];
    int rc = GH_ENOMEM;

    gh_buf_init(&b, EMBED_DESC_MAX - 16);
    if (!c) {
        char esc[128];
        gh_escape_markdown(want, esc, sizeof(esc));
        gh_buf_printf(&b, "There is no command named %s. `/help` lists them all.", esc);
        rc = gh_resp_message(out, gh_buf_cstr(&b), 1);
        goto out;
    }
    gh_buf_printf(&b, "%s\n", c->description);
    if (c->help)
        gh_buf_printf(&b, "\n%s\n", c->help);
    gh_buf_puts(&b, "\n");
    help_command_lines(&b, c);
    snprintf(title, sizeof(title), "/%s", c->name);
    embed = embed_new(title, gh_buf_cstr(&b));
    if (!embed)
        goto out;
    gh_buf_reset(&b);
    gh_buf_printf(&b, "%s (%s)", f->title,
                  !f->can_disable                    ? "always on"
                  : feature_enabled_here(ctx, ix, f) ? (ix->guild_id ? "enabled here" : "on by default")
                                                     : (ix->guild_id ? "disabled here" : "off by default"));
    embed_field(embed, "Feature", gh_buf_cstr(&b), 1);
    snprintf(where, sizeof(where), "%s", (c->contexts & ~GH_CTX_GUILD) ? "servers and DMs" : "servers only");
    embed_field(embed, "Where", where, 1);
    snprintf(perms, sizeof(perms), "everyone");
    if (c->default_member_permissions) {
        uint64_t need = 0;
        if (gh_perms_parse(c->default_member_permissions, &need) == GH_OK && need)
            gh_perms_missing(0, need, perms, sizeof(perms));
        else
            snprintf(perms, sizeof(perms), "administrators");
    }
    embed_field(embed, "Who can use it", perms, 1);
    rc = reply_embed(out, embed, 1);
out:
    json_object_put(embed);
    gh_buf_cleanup(&b);
    return rc;
}

/* Adds {name, value} to choices unless it is already there or full. */
static void choice_add(json_object *choices, const char *name, const char *value)
{
    json_object *c;

    if (json_object_array_length(choices) >= AUTOCOMPLETE_MAX)
        return;
    for (size_t i = 0; i < json_object_array_length(choices); i++) {
        json_object *v;
        if (json_object_object_get_ex(json_object_array_get_idx(choices, i), "value", &v) &&
            strcmp(json_object_get_string(v), value) == 0)
            return;
    }
    c = json_object_new_object();
    if (!c)
        return;
    json_object_object_add(c, "name", json_object_new_string(name));
    json_object_object_add(c, "value", json_object_new_string(value));
    json_object_array_add(choices, c);
}

static int help_autocomplete(const struct gh_interaction *ix, struct gh_buf *out)
{
    const char *typed = gh_interaction_option_str(ix, "command");
    json_object *choices = json_object_new_array();
    int rc = GH_ENOMEM;

    if (!choices)
        goto out;
    if (!typed)
        typed = "";
    if (typed[0] == '/')
        typed++;
    /* Prefix matches first, then the rest that contain the text. */
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; gh_features[i]; i++)
            for (size_t j = 0; j < gh_features[i]->n_commands; j++) {
                const char *name = gh_features[i]->commands[j].name;
                if (gh_features[i]->commands[j].type != 1)
                    continue; /* context menus have no /name */
                if (pass == 0 ? ci_prefix(name, typed) : ci_contains(name, typed))
                    choice_add(choices, name, name);
            }
    rc = gh_resp_autocomplete(out, choices);
out:
    json_object_put(choices);
    return rc;
}

static int cmd_help(struct gh_ctx *ctx, const struct gh_interaction *ix, struct gh_buf *out)
{
    const char *want;

    if (ix->type == GH_IX_AUTOCOMPLETE)
        return help_autocomplete(ix, out);
    want = gh_interaction_option_str(ix, "command");
    if (want && want[0] == '/')
        want++;
    if (want && want[0])
        return help_one(ctx, ix, want, out);
    return help_all(ctx, ix, out);
}

/* ------------------------------------------------------------------------ */
/* /feature */

static int reply_textf(struct gh_buf *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int reply_textf(struct gh_buf *out, const char *fmt, ...)
{
    struct gh_buf b;
    va_list ap;
    int rc;

    gh_buf_init(&b, CONTENT_MAX);
    va_start(ap, fmt);
    rc = gh_buf_vprintf(&b, fmt, ap);
    va_end(ap);
    if (rc == GH_OK || rc == GH_ETOOBIG)
        rc = gh_resp_message(out, gh_buf_cstr(&b), 1);
    gh_buf_cleanup(&b);
    return rc;
}

/* Writes {"enabled": on} into the feature's settings document, keeping the
 * rest of it. Retries once on a concurrent write. *changed = 0 when the
 * stored value already said so. */
static int store_enabled(struct gh_ctx *ctx, const struct gh_interaction *ix, const struct gh_feature *f,
                         int on, int *changed)
{
    json_object *doc = NULL, *cur = NULL;
    int version = 0, new_version = 0, rc = GH_EINVAL;

    *changed = 0;
    for (int attempt = 0; attempt < 2; attempt++) {
        json_object_put(doc);
        doc = NULL;
        rc = gh_settings_get(ctx, ix->guild_id, f->name, &doc, &version);
        if (rc != GH_OK)
            goto out;
        rc = GH_EJSON;
        if (!doc || !json_object_is_type(doc, json_type_object))
            goto out;
        if (json_object_object_get_ex(doc, "enabled", &cur) && json_object_is_type(cur, json_type_boolean) &&
            json_object_get_boolean(cur) == on) {
            rc = GH_OK;
            goto out;
        }
        json_object_object_add(doc, "enabled", json_object_new_boolean(on));
        rc = gh_settings_put(ctx, ix->guild_id, f->name, doc, ix->user_id, version, &new_version);
        if (rc != GH_ECONFLICT)
            break;
        GH_INFO(&ctx->log, "feature: settings of %s changed meanwhile, retrying", f->name);
    }
    if (rc == GH_OK) {
        *changed = 1;
        GH_INFO(&ctx->log, "feature %s %s in guild %" PRIu64 " (settings version %d)", f->name,
                on ? "enabled" : "disabled", ix->guild_id, new_version);
    }
out:
    if (rc != GH_OK)
        GH_ERROR(&ctx->log, "feature: could not save %s for guild %" PRIu64 ": %s", f->name, ix->guild_id,
                 gh_strerror(rc));
    json_object_put(doc);
    return rc;
}

static int feature_set(struct gh_ctx *ctx, const struct gh_interaction *ix, struct gh_buf *out, int on)
{
    const char *name = gh_interaction_option_str(ix, "name");
    const struct gh_feature *f = name ? gh_registry_feature(name) : NULL;
    int changed = 0, rc;

    if (!f) {
        char esc[128];
        gh_escape_markdown(name ? name : "", esc, sizeof(esc));
        return reply_textf(out, "There is no feature named \"%s\". `/feature list` shows them all.", esc);
    }
    if (!f->can_disable)
        return reply_textf(out, on ? "%s is always on." : "%s can't be turned off.", f->title);
    rc = store_enabled(ctx, ix, f, on, &changed);
    if (rc != GH_OK)
        return rc;
    if (!changed)
        return reply_textf(out, "**%s** is already %s in this server.", f->title,
                           on ? "enabled" : "disabled");
    if (on)
        return reply_textf(out, "**%s** is now enabled in this server.", f->title);
    return reply_textf(out,
                       "**%s** is now disabled in this server. Its commands answer \"disabled\" until "
                       "`/feature enable name:%s`.",
                       f->title, f->name);
}

static int feature_enable(struct gh_ctx *ctx, const struct gh_interaction *ix, struct gh_buf *out)
{
    return feature_set(ctx, ix, out, 1);
}

static int feature_disable(struct gh_ctx *ctx, const struct gh_interaction *ix, struct gh_buf *out)
{
    return feature_set(ctx, ix, out, 0);
}

static int feature_list(struct gh_ctx *ctx, const struct gh_interaction *ix, struct gh_buf *out)
{
    struct gh_buf b;
    int rc;

    gh_buf_init(&b, CONTENT_MAX);
    gh_buf_puts(&b, "**Features in this server**\n");
    for (size_t i = 0; gh_features[i]; i++) {
        const struct gh_feature *f = gh_features[i];
        const char *state = !f->can_disable                    ? "always on"
                            : feature_enabled_here(ctx, ix, f) ? "enabled"
                                                               : "disabled";
        gh_buf_printf(&b, "- **%s** (`%s`): %s. %s\n", f->title, f->name, state, f->description);
    }
    rc = gh_resp_message(out, gh_buf_cstr(&b), 1);
    gh_buf_cleanup(&b);
    return rc;
}

static int feature_autocomplete(const struct gh_interaction *ix, struct gh_buf *out)
{
    const char *sub = gh_interaction_subcommand(ix);
    const char *typed = gh_interaction_option_str(ix, "name");
    json_object *choices = json_object_new_array();
    int only_disableable = sub && strcmp(sub, "disable") == 0;
    int rc = GH_ENOMEM;

    if (!choices)
        goto out;
    if (!typed)
        typed = "";
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; gh_features[i]; i++) {
            const struct gh_feature *f = gh_features[i];
            char label[100];
            if (only_disableable && !f->can_disable)
                continue;
            if (!(pass == 0 ? ci_prefix(f->name, typed) || ci_prefix(f->title, typed)
                            : ci_contains(f->name, typed) || ci_contains(f->title, typed)))
                continue;
            snprintf(label, sizeof(label), "%s (%s)", f->title, f->name);
            choice_add(choices, label, f->name);
        }
    rc = gh_resp_autocomplete(out, choices);
out:
    json_object_put(choices);
    return rc;
}

static const struct {
    const char *name;
    gh_command_fn fn;
} feature_subcommands[] = {
    {"enable", feature_enable},
    {"disable", feature_disable},
    {"list", feature_list},
};

/* Core's manager_role_id setting: members with that role manage Guildhall
 * like members with Manage Server (the dashboard holds the role to the
 * hierarchy when it is set). */
static int has_manager_role(struct gh_ctx *ctx, const struct gh_interaction *ix)
{
    json_object *doc = NULL;
    int version = 0;
    int found = 0;
    const char *role;

    if (ix->member_roles == NULL || gh_settings_get(ctx, ix->guild_id, "core", &doc, &version) != GH_OK)
        return 0;
    role = gh_json_get_str(doc, "manager_role_id");
    for (size_t i = 0; role && i < json_object_array_length(ix->member_roles) && !found; i++) {
        const char *r = json_object_get_string(json_object_array_get_idx(ix->member_roles, i));
        found = r && strcmp(r, role) == 0;
    }
    json_object_put(doc);
    return found;
}

static int cmd_feature(struct gh_ctx *ctx, const struct gh_interaction *ix, struct gh_buf *out)
{
    const uint64_t need = GH_PERM(MANAGE_GUILD);
    const char *sub;

    if (ix->type == GH_IX_AUTOCOMPLETE)
        return feature_autocomplete(ix, out);
    if (!ix->guild_id)
        return reply_textf(out, "`/feature` only works in a server.");
    /* Discord hides the command from members without Manage Server, but
     * server admins can override that: check again here. */
    if (!gh_perms_has(ix->member_permissions, need) && !has_manager_role(ctx, ix)) {
        char missing[128];
        gh_perms_missing(ix->member_permissions, need, missing, sizeof(missing));
        GH_INFO(&ctx->log, "feature: refused, member lacks %s", missing);
        return reply_textf(out, "You need the **%s** permission to manage features.", missing);
    }
    sub = gh_interaction_subcommand(ix);
    for (size_t i = 0; sub && i < GH_COUNT(feature_subcommands); i++)
        if (strcmp(sub, feature_subcommands[i].name) == 0)
            return feature_subcommands[i].fn(ctx, ix, out);
    GH_WARN(&ctx->log, "feature: unknown subcommand %s", sub ? sub : "(none)");
    return GH_EINVAL;
}

/* ------------------------------------------------------------------------ */
/* the feature */

static const struct gh_command core_commands[] = {
    {
        .name = "ping",
        .description = "Check that Guildhall answers, and how fast",
        .type = 1,
        .options_json =
            "[{\"type\":5,\"name\":\"deferred\",\"description\":\"Answer later: a worker edits the "
            "reply through the job queue\",\"required\":false}]",
        .default_member_permissions = NULL,
        .contexts = GH_CTX_GUILD | GH_CTX_BOT_DM | GH_CTX_PRIVATE_CHANNEL,
        .handler = cmd_ping,
        .help = "Answers with the time since you sent the command. With `deferred:True` the answer is "
                "queued and a background worker edits it, which checks the whole job pipeline.",
    },
    {
        .name = "status",
        .description = "Show the health of Guildhall: uptime, database, Redis, shards, queue",
        .type = 1,
        .options_json = NULL,
        .default_member_permissions = NULL,
        .contexts = GH_CTX_GUILD | GH_CTX_BOT_DM | GH_CTX_PRIVATE_CHANNEL,
        .handler = cmd_status,
        .help = "Only you see the answer. A part that does not respond is shown as down.",
    },
    {
        .name = "help",
        .description = "List the commands of every feature",
        .type = 1,
        .options_json = "[{\"type\":3,\"name\":\"command\",\"description\":\"Show the details of one "
                        "command\",\"required\":false,\"autocomplete\":true,\"max_length\":32}]",
        .default_member_permissions = NULL,
        .contexts = GH_CTX_GUILD | GH_CTX_BOT_DM | GH_CTX_PRIVATE_CHANNEL,
        .handler = cmd_help,
        .help = NULL,
    },
    {
        .name = "feature",
        .description = "Turn features on or off in this server",
        .type = 1,
        .options_json =
            "[{\"type\":1,\"name\":\"enable\",\"description\":\"Turn a feature on in this "
            "server\",\"options\":"
            "[{\"type\":3,\"name\":\"name\",\"description\":\"The feature to turn on\",\"required\":true,"
            "\"autocomplete\":true,\"max_length\":32}]},"
            "{\"type\":1,\"name\":\"disable\",\"description\":\"Turn a feature off in this "
            "server\",\"options\":"
            "[{\"type\":3,\"name\":\"name\",\"description\":\"The feature to turn off\",\"required\":true,"
            "\"autocomplete\":true,\"max_length\":32}]},"
            "{\"type\":1,\"name\":\"list\",\"description\":\"Show every feature and whether it is on\"}]",
        .default_member_permissions = "32", /* MANAGE_GUILD */
        .contexts = GH_CTX_GUILD,
        .handler = cmd_feature,
        .help = "Needs the Manage Server permission. A disabled feature's commands answer that they are "
                "disabled in this server. Core can't be turned off.",
    },
};

const struct gh_feature gh_feature_core = {
    .name = "core",
    .title = "Core",
    .description = "Health checks, help and feature switches",
    .default_enabled = 1,
    .can_disable = 0,
    .commands = core_commands,
    .n_commands = GH_COUNT(core_commands),
    .components = NULL,
    .n_components = 0,
    .jobs = gh_core_jobs,
    .n_jobs = GH_CORE_N_JOBS,
    .settings_schema = core_schema,
    .premium_flags = 0,
};
