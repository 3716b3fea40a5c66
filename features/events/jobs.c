/* jobs.c - the events feature's jobs.
 *
 *   gateway:event   the job gateway-lite enqueues for every event some
 *                   feature has a job_fn for: {"t","d","shard","seq",
 *                   "received_ms"}. Runs each feature's job_fn for t in
 *                   registry order; one failure fails the job (retried; the
 *                   handlers are idempotent). A malformed payload is GH_EINVAL
 *                   (dead-lettered at once by the worker).
 *   events:prefix   a legacy prefix command found by the inline detection
 *                   (prefix.c): parse the arguments, build the interaction a
 *                   slash command would have brought, route it through the
 *                   interactions router's own code (gh_interactions_route),
 *                   and post its answer as a reply in the channel.
 *
 * This feature's job_fns validate the event, make sure the guild row exists
 * (GUILD_CREATE reactivates it, GUILD_DELETE of a removed bot deactivates
 * it) and count it in gh_gateway_events_total{event}. The consumers
 * (logging, welcome, starboard...) come in later issues. */
#include "features/events/events.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "core/config.h"
#include "core/ctx.h"
#include "core/err.h"
#include "core/json.h"
#include "core/log.h"
#include "core/str.h"
#include "core/timeutil.h"
#include "discord/guildcache.h"
#include "discord/interaction.h"
#include "discord/perms.h"
#include "discord/respond.h"
#include "discord/rest.h"
#include "store/pg.h"
#include "store/queue.h"
#include "store/redis.h"
#include "store/settings.h"
#include "web/http.h"
#include "web/interactions.h"
#include "web/metrics.h"

/* ---- gateway:event ------------------------------------------------------ */

int gh_events_run_gateway_event(struct gh_ctx *ctx, const struct gh_job *job)
{
    json_object *p = job->payload, *d = NULL, *v = NULL;
    const char *t = p ? gh_json_get_str(p, "t") : NULL;
    int64_t shard = 0, seq = 0;
    int rc = GH_OK, ran = 0;

    if (!p || !t || !*t || !json_object_object_get_ex(p, "d", &d) || !d ||
        !json_object_is_type(d, json_type_object)) {
        GH_ERROR(&ctx->log, "events: gateway:event %s has a malformed payload (t and an object d are required)",
                 job->id);
        return GH_EINVAL;
    }
    if (json_object_object_get_ex(p, "shard", &v))
        shard = json_object_get_int64(v);
    if (json_object_object_get_ex(p, "seq", &v))
        seq = json_object_get_int64(v);
    struct gh_event ev = {
        .name = t,
        .guild_id = gh_events_guild_of(t, d),
        .d = d,
        .shard_id = (int)shard,
        .seq = seq,
        .received_us = 0,
        .flags = 0,
        .stats = NULL,
    };
    for (size_t f = 0; gh_features[f]; f++) {
        const struct gh_feature *feat = gh_features[f];
        for (size_t i = 0; i < feat->n_events; i++) {
            const struct gh_event_handler *h = &feat->events[i];
            if (!h->job_fn || strcmp(h->name, t) != 0 || (h->job_dm_only && ev.guild_id))
                continue;
            int r = h->job_fn(ctx, &ev);
            ran++;
            if (r != GH_OK) {
                GH_WARN(&ctx->log, "events: %s handler of %s (job %s) failed: %s", feat->name, t, job->id,
                        gh_strerror(r));
                if (rc == GH_OK || r == GH_EINVAL)
                    rc = r; /* a malformed event wins: retrying cannot help */
            }
        }
    }
    if (!ran)
        GH_INFO(&ctx->log, "events: no feature handles %s any more (job %s); dropped", t, job->id);
    return rc;
}

/* ---- this feature's job_fns --------------------------------------------- */

/* Fields each event must carry ("a.b" = member b of object a). */
static const struct {
    const char *name;
    const char *fields[4];
} event_shapes[] = {
    {"GUILD_CREATE", {"id"}},
    {"GUILD_DELETE", {"id"}},
    {"GUILD_MEMBER_ADD", {"guild_id", "user.id"}},
    {"GUILD_MEMBER_REMOVE", {"guild_id", "user.id"}},
    {"GUILD_MEMBER_UPDATE", {"guild_id", "user.id"}},
    {"MESSAGE_CREATE", {"id", "channel_id", "author.id"}},
    {"MESSAGE_UPDATE", {"id", "channel_id"}},
    {"MESSAGE_DELETE", {"id", "channel_id"}},
    {"MESSAGE_DELETE_BULK", {"ids", "channel_id"}},
    {"MESSAGE_REACTION_ADD", {"user_id", "channel_id", "message_id", "emoji"}},
    {"MESSAGE_REACTION_REMOVE", {"user_id", "channel_id", "message_id", "emoji"}},
    {"MESSAGE_REACTION_REMOVE_ALL", {"channel_id", "message_id"}},
    {"MESSAGE_REACTION_REMOVE_EMOJI", {"channel_id", "message_id", "emoji"}},
    {"CHANNEL_CREATE", {"id", "type"}},
    {"CHANNEL_UPDATE", {"id", "type"}},
    {"CHANNEL_DELETE", {"id", "type"}},
    {"INVITE_CREATE", {"channel_id", "code"}},
    {"INVITE_DELETE", {"channel_id", "code"}},
    {"VOICE_STATE_UPDATE", {"user_id", "session_id"}},
    {"GUILD_BAN_ADD", {"guild_id", "user.id"}},
    {"GUILD_BAN_REMOVE", {"guild_id", "user.id"}},
};

static int has_field(json_object *d, const char *path)
{
    const char *dot = strchr(path, '.');
    json_object *v = NULL;
    if (dot) {
        char head[32];
        size_t n = (size_t)(dot - path);
        if (n >= sizeof(head))
            return 0;
        memcpy(head, path, n);
        head[n] = '\0';
        json_object *o = gh_json_get_obj(d, head);
        return o && has_field(o, dot + 1);
    }
    return json_object_object_get_ex(d, path, &v) && v;
}

/* GH_OK, or GH_EINVAL naming the missing field. */
static int validate(struct gh_ctx *ctx, const struct gh_event *ev)
{
    for (size_t i = 0; i < sizeof(event_shapes) / sizeof(event_shapes[0]); i++) {
        if (strcmp(event_shapes[i].name, ev->name) != 0)
            continue;
        for (int f = 0; f < 4 && event_shapes[i].fields[f]; f++) {
            if (!ev->d || !has_field(ev->d, event_shapes[i].fields[f])) {
                GH_ERROR(&ctx->log, "events: %s without %s: malformed, dropped", ev->name,
                         event_shapes[i].fields[f]);
                return GH_EINVAL;
            }
        }
        return GH_OK;
    }
    GH_ERROR(&ctx->log, "events: %s is not an event this feature knows", ev->name);
    return GH_EINVAL;
}

static void count_event(struct gh_ctx *ctx, const char *name)
{
    char labels[96];
    if (!ctx->redis)
        return;
    (void)snprintf(labels, sizeof(labels), "event=\"%s\"", name); /* name is from event_shapes: a closed set */
    gh_metrics_incr(ctx->redis, "gh_gateway_events_total", labels, 1);
}

static const char ensure_sql[] = "INSERT INTO guilds (id) VALUES ($1) ON CONFLICT (id) DO NOTHING";

static int ensure_guild(struct gh_ctx *ctx, uint64_t guild_id)
{
    char id[24];
    if (!guild_id)
        return GH_OK;
    if (!ctx->pg)
        return GH_EPG;
    (void)snprintf(id, sizeof(id), "%" PRIu64, guild_id);
    const char *params[1] = {id};
    PGresult *res = gh_pg_exec_prepared(ctx->pg, "events_guild_ensure", ensure_sql, 1, params);
    if (!res) {
        GH_WARN(&ctx->log, "events: guild %s row not ensured: %s", id, gh_pg_errmsg(ctx->pg));
        return GH_EPG;
    }
    PQclear(res);
    return GH_OK;
}

int gh_events_job_generic(struct gh_ctx *ctx, const struct gh_event *ev)
{
    int rc = validate(ctx, ev);
    if (rc != GH_OK)
        return rc;
    rc = ensure_guild(ctx, ev->guild_id);
    if (rc != GH_OK)
        return rc;
    count_event(ctx, ev->name);
    GH_DEBUG(&ctx->log, "events: %s in guild %" PRIu64 " (seq %" PRId64 ")", ev->name, ev->guild_id, ev->seq);
    return GH_OK;
}

static const char guild_create_sql[] =
    "INSERT INTO guilds (id, name) VALUES ($1, $2) "
    "ON CONFLICT (id) DO UPDATE SET name = COALESCE(EXCLUDED.name, guilds.name), is_active = true, "
    "deleted_at = NULL";

int gh_events_job_guild_create(struct gh_ctx *ctx, const struct gh_event *ev)
{
    char id[24];
    int rc = validate(ctx, ev);
    if (rc != GH_OK)
        return rc;
    if (!ev->guild_id)
        return GH_EINVAL;
    if (!ctx->pg)
        return GH_EPG;
    (void)snprintf(id, sizeof(id), "%" PRIu64, ev->guild_id);
    const char *params[2] = {id, gh_json_get_str(ev->d, "name")};
    PGresult *res = gh_pg_exec_prepared(ctx->pg, "events_guild_create", guild_create_sql, 2, params);
    if (!res) {
        GH_WARN(&ctx->log, "events: guild %s not recorded: %s", id, gh_pg_errmsg(ctx->pg));
        return GH_EPG;
    }
    PQclear(res);
    count_event(ctx, ev->name);
    GH_DEBUG(&ctx->log, "events: GUILD_CREATE %s recorded (active)", id);
    return GH_OK;
}

static const char guild_removed_sql[] =
    "WITH g AS (UPDATE guilds SET is_active = false WHERE id = $1 AND is_active RETURNING id) "
    "INSERT INTO audit_log (guild_id, action, target, before, after) "
    "SELECT id, 'guild.removed', $1::text, '{\"is_active\":true}'::jsonb, '{\"is_active\":false}'::jsonb FROM g";

int gh_events_job_guild_delete(struct gh_ctx *ctx, const struct gh_event *ev)
{
    char id[24], key[96];
    int unavailable = 0;
    int rc = validate(ctx, ev);
    if (rc != GH_OK)
        return rc;
    if (!ev->guild_id)
        return GH_EINVAL;
    (void)gh_json_get_bool(ev->d, "unavailable", &unavailable);
    count_event(ctx, ev->name);
    if (unavailable) {
        GH_INFO(&ctx->log, "events: guild %" PRIu64 " is unavailable (outage); kept active", ev->guild_id);
        return GH_OK;
    }
    if (!ctx->pg)
        return GH_EPG;
    (void)snprintf(id, sizeof(id), "%" PRIu64, ev->guild_id);
    const char *params[1] = {id};
    PGresult *res = gh_pg_exec_prepared(ctx->pg, "events_guild_removed", guild_removed_sql, 1, params);
    if (!res) {
        GH_WARN(&ctx->log, "events: guild %s not deactivated: %s", id, gh_pg_errmsg(ctx->pg));
        return GH_EPG;
    }
    PQclear(res);
    /* the interactions router's "seen" mark: a guild that adds the bot back is upserted again */
    if (ctx->redis && gh_key_guild(key, sizeof(key), ev->guild_id, "core", "seen") == GH_OK) {
        redisReply *r = gh_redis_cmd(ctx->redis, "DEL %s", key);
        freeReplyObject(r);
    }
    GH_INFO(&ctx->log, "events: the bot was removed from guild %s; the guild is deactivated (data purged on the "
                       "retention schedule)",
            id);
    return GH_OK;
}

/* ---- events:prefix ------------------------------------------------------ */

#define REPLY_MAX 2000

/* Posts text (or a whole message object when msg != NULL) as a reply to the
 * invoking message. */
static int post_reply(struct gh_ctx *ctx, const char *job_id, json_object *message, const char *text,
                      json_object *data)
{
    char path[96];
    struct gh_rest_resp resp;
    json_object *body = json_object_new_object(), *v = NULL;
    uint64_t channel = gh_json_get_snowflake(message, "channel_id");
    int rc;

    memset(&resp, 0, sizeof(resp));
    if (data) {
        static const char *const keep[] = {"content", "embeds", "allowed_mentions", "tts", NULL};
        for (int i = 0; keep[i]; i++)
            if (json_object_object_get_ex(data, keep[i], &v) && v)
                json_object_object_add(body, keep[i], json_object_get(v));
        /* flags: ephemeral (64) has no meaning in a channel; keep SUPPRESS_EMBEDS (4) */
        if (json_object_object_get_ex(data, "flags", &v) && (json_object_get_int64(v) & 4))
            json_object_object_add(body, "flags", json_object_new_int(4));
    } else {
        json_object_object_add(body, "content", json_object_new_string(text));
    }
    /* the handler's allowed_mentions win; the reply itself never pings unless they say so */
    if (!json_object_object_get_ex(body, "allowed_mentions", &v) || !json_object_is_type(v, json_type_object)) {
        json_object *am = json_object_new_object();
        json_object_object_add(am, "parse", json_object_new_array());
        json_object_object_add(body, "allowed_mentions", am);
        v = am;
    } else {
        json_object *copy = json_object_new_object();
        json_object_object_foreach(v, mk, mv) json_object_object_add(copy, mk, json_object_get(mv));
        json_object_object_add(body, "allowed_mentions", copy); /* never edit the handler's object */
        v = copy;
    }
    json_object *ru = NULL;
    if (!json_object_object_get_ex(v, "replied_user", &ru))
        json_object_object_add(v, "replied_user", json_object_new_boolean(0));
    json_object *ref = json_object_new_object();
    json_object_object_add(ref, "message_id", json_object_new_string(gh_json_get_str(message, "id")));
    json_object_object_add(ref, "channel_id", json_object_new_string(gh_json_get_str(message, "channel_id")));
    if (gh_json_get_str(message, "guild_id"))
        json_object_object_add(ref, "guild_id", json_object_new_string(gh_json_get_str(message, "guild_id")));
    json_object_object_add(ref, "fail_if_not_exists", json_object_new_boolean(0));
    json_object_object_add(body, "message_reference", ref);
    gh_msg_set_nonce(body, job_id); /* a job run twice replies once */
    (void)snprintf(path, sizeof(path), "/channels/%" PRIu64 "/messages", channel);
    const char *s = json_object_to_json_string_ext(body, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    struct gh_rest_req req = {.method = "POST", .path = path, .body = s, .body_len = strlen(s)};
    rc = ctx->rest ? gh_rest_do(ctx->rest, &req, &resp) : GH_EUNAVAILABLE;
    if (rc != GH_OK)
        GH_WARN(&ctx->log, "events: prefix command reply in channel %" PRIu64 " not posted: %s (%s)", channel,
                gh_strerror(rc), resp.error);
    gh_rest_resp_cleanup(&resp);
    json_object_put(body);
    /* Discord refusing (no access to the channel, deleted message) is final */
    return rc == GH_EFORBIDDEN || rc == GH_ENOTFOUND || rc == GH_EDISCORD ? GH_OK : rc;
}

static int reply_text(struct gh_ctx *ctx, const char *job_id, json_object *message, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int reply_text(struct gh_ctx *ctx, const char *job_id, json_object *message, const char *fmt, ...)
{
    char text[REPLY_MAX + 1];
    va_list ap;
    va_start(ap, fmt);
    (void)vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    return post_reply(ctx, job_id, message, text, NULL);
}

/* Owner of the guild: the gateway's summary hash, else REST. */
static uint64_t guild_owner(struct gh_ctx *ctx, uint64_t guild_id)
{
    char key[128], path[64];
    uint64_t owner = 0;
    if (ctx->redis && gh_key_guild(key, sizeof(key), guild_id, "cache", "guild") == GH_OK) {
        redisReply *r = gh_redis_cmd(ctx->redis, "HGET %s owner_id", key);
        if (r && r->type == REDIS_REPLY_STRING)
            owner = gh_snowflake_parse(r->str);
        freeReplyObject(r);
    }
    if (!owner) {
        json_object *g = NULL;
        (void)snprintf(path, sizeof(path), "/guilds/%" PRIu64, guild_id);
        if (gh_guildcache_get(ctx, path, &g) == GH_OK)
            owner = gh_json_get_snowflake(g, "owner_id");
        json_object_put(g);
    }
    return owner;
}

static json_object *find_by_id(json_object *arr, uint64_t id)
{
    char s[24];
    size_t n = arr && json_object_is_type(arr, json_type_array) ? json_object_array_length(arr) : 0;
    (void)snprintf(s, sizeof(s), "%" PRIu64, id);
    for (size_t i = 0; i < n; i++) {
        json_object *e = json_object_array_get_idx(arr, i);
        const char *eid = gh_json_get_str(e, "id");
        if (eid && !strcmp(eid, s))
            return e;
    }
    return NULL;
}

/* data.resolved for the USER/ROLE/CHANNEL/MENTIONABLE options (what a slash
 * command would carry); best effort. */
static void add_resolved(struct gh_ctx *ctx, uint64_t guild_id, json_object *opts, json_object *roles,
                         json_object *channels, json_object *resolved)
{
    size_t n = opts ? json_object_array_length(opts) : 0;
    for (size_t i = 0; i < n; i++) {
        json_object *o = json_object_array_get_idx(opts, i), *sub = gh_json_get_arr(o, "options");
        int64_t type = 0;
        const char *val = gh_json_get_str(o, "value");
        if (sub) {
            add_resolved(ctx, guild_id, sub, roles, channels, resolved);
            continue;
        }
        (void)gh_json_get_int(o, "type", &type);
        uint64_t id = val ? gh_snowflake_parse(val) : 0;
        if (!id)
            continue;
        json_object *role = (type == 8 || type == 9) ? find_by_id(roles, id) : NULL;
        if (role) {
            json_object *m = gh_json_get_obj(resolved, "roles");
            if (!m) {
                m = json_object_new_object();
                json_object_object_add(resolved, "roles", m);
            }
            json_object_object_add(m, val, json_object_get(role));
            continue;
        }
        if (type == 7) {
            json_object *c = find_by_id(channels, id), *m = gh_json_get_obj(resolved, "channels");
            if (!c)
                continue;
            if (!m) {
                m = json_object_new_object();
                json_object_object_add(resolved, "channels", m);
            }
            json_object_object_add(m, val, json_object_get(c));
            continue;
        }
        if (type == 6 || type == 9) {
            json_object *member = NULL, *user = NULL;
            if (gh_guildcache_member(ctx, guild_id, id, &member) != GH_OK)
                continue;
            user = gh_json_get_obj(member, "user");
            json_object *us = gh_json_get_obj(resolved, "users"), *ms = gh_json_get_obj(resolved, "members");
            if (!us) {
                us = json_object_new_object();
                json_object_object_add(resolved, "users", us);
            }
            if (!ms) {
                ms = json_object_new_object();
                json_object_object_add(resolved, "members", ms);
            }
            if (user)
                json_object_object_add(us, val, json_object_get(user));
            json_object *copy = json_object_new_object();
            json_object_object_foreach(member, k, v) if (strcmp(k, "user") != 0)
                json_object_object_add(copy, k, json_object_get(v));
            json_object_object_add(ms, val, copy);
            json_object_put(member);
        }
    }
}

static void perms_text(char *out, size_t size, uint64_t v)
{
    (void)snprintf(out, size, "%" PRIu64, v);
}

int gh_events_run_prefix(struct gh_ctx *ctx, const struct gh_job *job)
{
    json_object *msg = job->payload ? gh_json_get_obj(job->payload, "message") : NULL;
    json_object *doc = NULL, *opts = NULL, *roles = NULL, *channels = NULL, *ix_json = NULL, *resp_json = NULL;
    json_object *member_roles = NULL, *bot_member = NULL, *fetched_member = NULL;
    struct gh_events_settings s;
    struct gh_interaction ix;
    struct gh_http_resp resp;
    const struct gh_feature *feature = NULL;
    char name[40], err[512], usage[512], ptext[24], atext[24], ixerr[256], idtext[24];
    const char *rest = NULL;
    int version = 0, rc = GH_EINVAL;

    memset(&s, 0, sizeof(s));
    memset(&ix, 0, sizeof(ix));
    gh_http_resp_init(&resp, 64 * 1024);
    json_object *author = msg ? gh_json_get_obj(msg, "author") : NULL;
    const char *content = msg ? gh_json_get_str(msg, "content") : NULL;
    uint64_t guild_id = msg ? gh_json_get_snowflake(msg, "guild_id") : 0;
    uint64_t channel_id = msg ? gh_json_get_snowflake(msg, "channel_id") : 0;
    uint64_t message_id = msg ? gh_json_get_snowflake(msg, "id") : 0;
    uint64_t user_id = author ? gh_json_get_snowflake(author, "id") : 0;
    if (!content || !guild_id || !channel_id || !message_id || !user_id) {
        GH_ERROR(&ctx->log, "events: events:prefix %s has a malformed payload", job->id);
        goto out;
    }
    ctx->log.guild_id = guild_id;
    ctx->log.user_id = user_id;
    /* the settings again: the gateway's copy may be a few seconds old */
    rc = gh_settings_get(ctx, guild_id, "events", &doc, &version);
    if (rc != GH_OK)
        goto out; /* retried */
    gh_events_settings_load(doc, &s);
    rc = GH_OK;
    if (!s.prefix_enabled || !gh_events_prefix_split(content, s.prefix, name, sizeof(name), &rest))
        goto out; /* turned off meanwhile: nothing to do */
    const struct gh_command *cmd = gh_registry_command(name, 1, &feature);
    if (!cmd || !cmd->handler || !gh_events_settings_allows(&s, name))
        goto out;
    if (!(cmd->contexts & GH_CTX_GUILD) && cmd->contexts) {
        rc = reply_text(ctx, job->id, msg, "`%s%s` does not work in a server.", s.prefix, cmd->name);
        goto out;
    }
    int prc = gh_events_prefix_parse(s.prefix, cmd->name, cmd->options_json, rest, &opts, err, sizeof(err), usage,
                                     sizeof(usage));
    if (prc == GH_EUNAVAILABLE) {
        rc = reply_text(ctx, job->id, msg, "This command only works as /%s.", cmd->name);
        goto out;
    }
    if (prc == GH_EJSON || prc == GH_ENOMEM) {
        GH_ERROR(&ctx->log, "events: /%s options could not be read: %s", cmd->name, gh_strerror(prc));
        rc = prc == GH_ENOMEM ? GH_ENOMEM : GH_OK;
        goto out;
    }
    if (prc != GH_OK) {
        rc = reply_text(ctx, job->id, msg, "%s.\nUsage: `%s`", err, usage);
        goto out;
    }

    /* who is asking, with what permissions in this channel */
    rc = gh_guildcache_roles(ctx, guild_id, &roles);
    if (rc == GH_OK)
        rc = gh_guildcache_channels(ctx, guild_id, &channels);
    if (rc != GH_OK)
        goto out; /* Discord or Redis trouble: retried */
    json_object *msg_member = gh_json_get_obj(msg, "member");
    member_roles = msg_member ? gh_json_get_arr(msg_member, "roles") : NULL;
    if (!member_roles) {
        rc = gh_guildcache_member(ctx, guild_id, user_id, &fetched_member);
        if (rc != GH_OK)
            goto out;
        member_roles = gh_json_get_arr(fetched_member, "roles");
    }
    uint64_t owner = guild_owner(ctx, guild_id);
    json_object *channel = find_by_id(channels, channel_id);
    uint64_t mperms = gh_events_perms_compute(roles, channel, member_roles, guild_id, user_id, owner == user_id);
    uint64_t aperms = 0;
    if (ctx->cfg && ctx->cfg->application_id &&
        gh_guildcache_member(ctx, guild_id, ctx->cfg->application_id, &bot_member) == GH_OK)
        aperms = gh_events_perms_compute(roles, channel, gh_json_get_arr(bot_member, "roles"), guild_id,
                                         ctx->cfg->application_id, owner == ctx->cfg->application_id);

    /* default_member_permissions: Discord enforces it for slash commands, we do for prefix ones */
    if (cmd->default_member_permissions) {
        uint64_t need = 0;
        if (gh_perms_parse(cmd->default_member_permissions, &need) == GH_OK) {
            if (need == 0)
                need = GH_PERM(ADMINISTRATOR); /* "0": only administrators */
            if (!gh_perms_has(mperms, need)) {
                char missing[256];
                gh_perms_missing(mperms, need, missing, sizeof(missing));
                rc = reply_text(ctx, job->id, msg, "You need the %s permission to use `%s%s`.", missing, s.prefix, cmd->name);
                goto out;
            }
        }
    }

    /* the interaction a slash command would have brought */
    perms_text(ptext, sizeof(ptext), mperms);
    perms_text(atext, sizeof(atext), aperms);
    ix_json = json_object_new_object();
    (void)snprintf(idtext, sizeof(idtext), "%" PRIu64, message_id);
    json_object_object_add(ix_json, "type", json_object_new_int(2));
    json_object_object_add(ix_json, "id", json_object_new_string(idtext));
    char appid[24];
    (void)snprintf(appid, sizeof(appid), "%" PRIu64, ctx->cfg ? ctx->cfg->application_id : 0);
    json_object_object_add(ix_json, "application_id", json_object_new_string(appid[0] != '0' ? appid : "1"));
    /* no callback can use this token: a handler that defers is answered below */
    json_object_object_add(ix_json, "token", json_object_new_string("prefix-command-no-callback"));
    json_object_object_add(ix_json, "guild_id", json_object_new_string(gh_json_get_str(msg, "guild_id")));
    json_object_object_add(ix_json, "channel_id", json_object_new_string(gh_json_get_str(msg, "channel_id")));
    json_object *member = json_object_new_object();
    json_object_object_add(member, "user", json_object_get(author));
    json_object_object_add(member, "roles", member_roles ? json_object_get(member_roles) : json_object_new_array());
    json_object_object_add(member, "permissions", json_object_new_string(ptext));
    json_object_object_add(ix_json, "member", member);
    json_object_object_add(ix_json, "app_permissions", json_object_new_string(atext));
    json_object_object_add(ix_json, "locale", json_object_new_string("en-US"));
    json_object_object_add(ix_json, "context", json_object_new_int(0));
    json_object *data = json_object_new_object();
    json_object_object_add(data, "id", json_object_new_string("0"));
    json_object_object_add(data, "name", json_object_new_string(cmd->name));
    json_object_object_add(data, "type", json_object_new_int(1));
    json_object *resolved = json_object_new_object();
    add_resolved(ctx, guild_id, opts, roles, channels, resolved);
    if (json_object_object_length(resolved) > 0)
        json_object_object_add(data, "resolved", resolved);
    else
        json_object_put(resolved);
    json_object_object_add(data, "options", opts);
    opts = NULL;
    json_object_object_add(ix_json, "data", data);
    const char *ix_text = json_object_to_json_string_ext(ix_json, JSON_C_TO_STRING_PLAIN);
    if (gh_interaction_parse(ix_text, strlen(ix_text), &ix, ixerr, sizeof(ixerr)) != GH_OK) {
        GH_ERROR(&ctx->log, "events: the interaction built for %s%s does not parse: %s", s.prefix, cmd->name, ixerr);
        rc = GH_OK;
        goto out;
    }

    /* the router's own path: enabled state, handler, command_log, metrics */
    gh_interactions_route(ctx, &ix, &resp);
    (void)gh_metrics_flush(ctx->redis); /* the router defers its counters; the worker has no tick */
    if (gh_json_parse(resp.body.data, resp.body.len, 32, &resp_json) != GH_OK) {
        GH_ERROR(&ctx->log, "events: %s%s answered something that is not JSON", s.prefix, cmd->name);
        rc = GH_OK;
        goto out;
    }
    int64_t type = 0;
    (void)gh_json_get_int(resp_json, "type", &type);
    json_object *rdata = gh_json_get_obj(resp_json, "data");
    if ((type == 4 || type == 7) && rdata)
        rc = post_reply(ctx, job->id, msg, NULL, rdata);
    else
        rc = reply_text(ctx, job->id, msg, "This command only works as /%s.", cmd->name);
out:
    if (rc == GH_EINVAL)
        GH_WARN(&ctx->log, "events: prefix job %s dropped", job->id);
    gh_interaction_cleanup(&ix);
    gh_http_resp_cleanup(&resp);
    json_object_put(resp_json);
    json_object_put(ix_json);
    json_object_put(opts);
    json_object_put(bot_member);
    json_object_put(fetched_member);
    json_object_put(channels);
    json_object_put(roles);
    json_object_put(doc);
    json_object_put(s.commands);
    return rc;
}

const struct gh_job_kind gh_events_jobs[] = {
    {.kind = "gateway:event", .run = gh_events_run_gateway_event, .timeout_s = 30, .max_attempts = 3},
    {.kind = "events:prefix", .run = gh_events_run_prefix, .timeout_s = 20, .max_attempts = 2,
     .deadline_s = 120},
};
const size_t gh_events_n_jobs = sizeof(gh_events_jobs) / sizeof(gh_events_jobs[0]);
