/* events.c - AutoMod in gateway-lite's hot path (MESSAGE_CREATE, and
 * MESSAGE_UPDATE for the content rules).
 *
 * A batch of messages is handled in chunks of CHUNK on the stack (nothing is
 * allocated per message):
 *   1. each message is read from its dispatch (bots, webhooks, DMs, system
 *      messages skipped), its guild's settings taken from the process's
 *      settings cache (lib/store/setcache.h: parsed once per
 *      GATEWAY_SETTINGS_TTL_MS, regexes compiled then), exemptions applied;
 *   2. the rate and repeat rules' Redis commands for the whole chunk go in
 *      one pipeline (one round trip): INCR + EXPIRE NX of the rate counter,
 *      LPUSH + LTRIM + EXPIRE + LRANGE of the similarity hashes. Redis down:
 *      those two rules are skipped (logged once per burst, counted in
 *      stats->redis_failures), the content rules still act;
 *   3. the decision (rules.c); the urgent calls (delete the message, PATCH the
 *      member's timeout) are submitted without blocking (gh_rest_submit) and
 *      timed (gh_gw_stats_urgent): the deletes per channel, coalesced into bulk
 *      deletes at the end of the batch (see "the deletes" below); then one "automod:offence" job per hit
 *      (id automod:<guild>:<message>:<rule>, the dedupe key; the batch's jobs
 *      queued in one pipeline at its end) carries what the
 *      worker needs to record it and run warn / kick / ban through moderation.
 *
 * After a settings load the guild's premium tier is read once (the load-time
 * gate on the premium word and pattern lists) and, when managers are exempt,
 * the roles holding Administrator or Manage Server from the Redis role cache
 * (bot:{g}:cache:roles, written by the gateway's caches and the API). */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hiredis/hiredis.h>
#include <json-c/json.h>

#include "core/config.h"
#include "core/ctx.h"
#include "core/err.h"
#include "core/json.h"
#include "core/log.h"
#include "core/str.h"
#include "core/timeutil.h"
#include "discord/rest.h"
#include "features/automod/automod.h"
#include "features/premium/premium.h"
#include "gateway/gwstats.h"
#include "store/jobspool.h"
#include "store/queue.h"
#include "store/redis.h"
#include "store/setcache.h"

#define CHUNK 64
#define MAX_ROLES 64
#define MAX_HITS GH_AM_RULE_COUNT
#define REDIS_LOG_EVERY_MS 10000
#define PERM_ADMINISTRATOR (1ull << 3)
#define PERM_MANAGE_GUILD (1ull << 5)

static struct gh_setcache *cache; /* one per process: gateway-lite's loop is one thread */
static int cache_ttl_ms = -1;
static int64_t redis_logged_ms;

static void *parse_cb(json_object *doc, uint64_t guild_id)
{
    return gh_am_settings_parse(doc, guild_id, NULL);
}

static void free_cb(void *p)
{
    gh_am_settings_free(p);
}

void gh_am_forget(uint64_t guild_id)
{
    if (cache)
        gh_setcache_forget(cache, guild_id);
}

static struct gh_setcache *settings_cache(struct gh_ctx *ctx)
{
    int ttl = ctx->cfg ? ctx->cfg->gateway_settings_ttl_ms : 5000;
    if (cache && ttl != cache_ttl_ms) {
        gh_setcache_free(cache);
        cache = NULL;
    }
    if (!cache) {
        cache = gh_setcache_new("automod", ttl, parse_cb, free_cb);
        cache_ttl_ms = ttl;
    }
    return cache;
}

/* Manager roles from the role cache (Redis only: never REST in the loop). */
static void load_manager_roles(struct gh_ctx *ctx, struct gh_am_settings *s)
{
    char key[96];
    redisReply *r;
    json_object *roles = NULL;

    s->n_manager_roles = 0;
    if (!ctx->redis || gh_key_guild(key, sizeof(key), s->guild_id, "cache", "roles") != GH_OK)
        return;
    r = gh_redis_cmd(ctx->redis, "GET %s", key);
    if (r && r->type == REDIS_REPLY_STRING && gh_json_parse(r->str, (size_t)r->len, 0, &roles) == GH_OK &&
        json_object_is_type(roles, json_type_array)) {
        for (size_t i = 0; i < json_object_array_length(roles) && s->n_manager_roles < MAX_ROLES; i++) {
            json_object *role = json_object_array_get_idx(roles, i);
            const char *perm = gh_json_get_str(role, "permissions");
            uint64_t bits = 0, id = gh_json_get_snowflake(role, "id");
            if (id && perm && gh_cstr_to_u64(perm, &bits) == GH_OK &&
                (bits & (PERM_ADMINISTRATOR | PERM_MANAGE_GUILD)))
                s->manager_roles[s->n_manager_roles++] = id;
        }
    }
    json_object_put(roles);
    freeReplyObject(r);
}

static void post_load(struct gh_ctx *ctx, struct gh_am_settings *s)
{
    struct gh_premium p;
    int rank = 0;

    s->post_loaded = 1;
    if (s->n_regex_invalid > 0)
        GH_WARN(&ctx->log, "automod: guild %" PRIu64 ": %d pattern(s) do not compile and are ignored",
                s->guild_id, s->n_regex_invalid);
    if (s->n_words > s->n_words_free || s->n_regex > s->n_regex_free || s->n_words > GH_AM_FREE_WORDS ||
        s->n_regex > GH_AM_FREE_REGEX) {
        memset(&p, 0, sizeof(p));
        if (gh_premium_get(ctx, s->guild_id, &p) == GH_OK)
            rank = p.effective;
        else
            GH_WARN(&ctx->log,
                    "automod: premium tier of guild %" PRIu64 " unreadable: free tier limits apply",
                    s->guild_id);
        gh_am_settings_apply_tier(s, rank, &ctx->log);
    }
    if (s->exempt_managers)
        load_manager_roles(ctx, s);
    /* the owner, from the gateway's guild cache (Redis only) */
    {
        char key[96];
        redisReply *r = NULL;
        if (ctx->redis && gh_key_guild(key, sizeof(key), s->guild_id, "cache", "guild") == GH_OK &&
            (r = gh_redis_cmd(ctx->redis, "HGET %s owner_id", key)) != NULL && r->type == REDIS_REPLY_STRING)
            (void)gh_cstr_to_u64(r->str, &s->owner_id);
        freeReplyObject(r);
    }
}

struct item {
    struct gh_event *ev;
    const struct gh_am_settings *s;
    struct gh_am_msg m;
    uint64_t roles[MAX_ROLES];
    struct gh_am_counters c;
    int want_rate, want_repeat;
    uint64_t hash;
};

struct seen {
    uint64_t guild_id;
    const struct gh_am_settings *s;
};

/* The guild's settings, fetched once per chunk: a second gh_setcache_get of
 * the same guild could reload them under an earlier item's pointer. */
static const struct gh_am_settings *chunk_settings(struct gh_ctx *ctx, struct seen *seen, int *n_seen,
                                                   uint64_t guild_id)
{
    const struct gh_am_settings *s;
    for (int i = 0; i < *n_seen; i++)
        if (seen[i].guild_id == guild_id)
            return seen[i].s;
    s = gh_setcache_get(settings_cache(ctx), ctx, guild_id);
    if (s && s->enabled && !s->post_loaded)         /* a guild with AutoMod off costs no Redis reads */
        post_load(ctx, (struct gh_am_settings *)s); /* ours: the cache holds what parse_cb made */
    if (*n_seen < CHUNK) {
        seen[*n_seen].guild_id = guild_id;
        seen[*n_seen].s = s;
        (*n_seen)++;
    }
    return s;
}

/* Reads one dispatch; 0 when AutoMod does not look at it. */
static int read_msg(struct gh_ctx *ctx, struct gh_event *ev, int is_edit, struct item *it, struct seen *seen,
                    int *n_seen)
{
    json_object *d = ev->d, *author = NULL, *member = NULL, *v = NULL;
    const struct gh_am_settings *s;
    int b = 0;

    memset(&it->m, 0, sizeof(it->m));
    it->ev = ev;
    it->want_rate = it->want_repeat = 0;
    it->c.rate_count = -1;
    it->c.repeat_count = -1;
    it->hash = 0;
    if (!d || !ev->guild_id)
        return 0; /* DMs: not AutoMod's */
    if (json_object_object_get_ex(d, "webhook_id", &v) && v)
        return 0;
    if (!json_object_object_get_ex(d, "author", &author) || !author)
        return 0;
    if (gh_json_get_bool(author, "bot", &b) == GH_OK && b)
        return 0;
    if (!json_object_object_get_ex(d, "content", &v) || !json_object_is_type(v, json_type_string))
        return 0; /* an edit without content (embeds resolved) */
    it->m.content = json_object_get_string(v);
    it->m.len = (size_t)json_object_get_string_len(v);
    it->m.guild_id = ev->guild_id;
    it->m.channel_id = gh_json_get_snowflake(d, "channel_id");
    it->m.message_id = gh_json_get_snowflake(d, "id");
    it->m.author_id = gh_json_get_snowflake(author, "id");
    it->m.is_edit = is_edit;
    if (!it->m.channel_id || !it->m.message_id || !it->m.author_id)
        return 0;

    s = chunk_settings(ctx, seen, n_seen, ev->guild_id);
    if (!s || !s->enabled)
        return 0;
    it->s = s;

    if (json_object_object_get_ex(d, "member", &member) && member &&
        json_object_object_get_ex(member, "roles", &v) && json_object_is_type(v, json_type_array)) {
        size_t n = json_object_array_length(v);
        for (size_t i = 0; i < n && it->m.n_roles < MAX_ROLES; i++) {
            uint64_t id = 0;
            if (gh_cstr_to_u64(json_object_get_string(json_object_array_get_idx(v, i)), &id) == GH_OK)
                it->roles[it->m.n_roles++] = id;
        }
    }
    it->m.roles = it->roles;
    if (gh_json_get_bool(d, "mention_everyone", &b) == GH_OK)
        it->m.mention_everyone = b;
    if (json_object_object_get_ex(d, "mentions", &v) && json_object_is_type(v, json_type_array))
        it->m.n_mentions += (int)json_object_array_length(v);
    if (json_object_object_get_ex(d, "mention_roles", &v) && json_object_is_type(v, json_type_array))
        it->m.n_mentions += (int)json_object_array_length(v);

    if (gh_am_exempt_all(s, &it->m))
        return 0;
    it->want_rate = !gh_am_rule_skipped(s, GH_AM_RATE, &it->m);
    it->want_repeat = !gh_am_rule_skipped(s, GH_AM_REPEAT, &it->m);
    if (it->want_repeat && (it->hash = gh_am_simhash(it->m.content, it->m.len)) == 0)
        it->want_repeat = 0; /* nothing to compare (no letters) */
    return 1;
}

static void redis_down(struct gh_ctx *ctx, struct gh_event *ev)
{
    if (ev && ev->stats)
        ev->stats->redis_failures++;
    if (gh_every(&redis_logged_ms, gh_mono_ms(), REDIS_LOG_EVERY_MS)) {
        GH_WARN(&ctx->log, "automod: Redis unavailable: the rate and repeat rules are skipped (content rules "
                           "still act)");
    }
}

/* The rate and repeat counters of one message in one script (one command and
 * one reply instead of six): KEYS rate, recent; ARGV want_rate, rate_window_s,
 * want_repeat, hash, history, repeat_window_s -> {rate count, same hashes in
 * the history (this one included)}, -1 for a rule not asked. */
static const char counters_lua[] = "local rate, same = -1, -1\n"
                                   "if ARGV[1] == '1' then\n"
                                   "  rate = redis.call('INCR', KEYS[1])\n"
                                   "  redis.call('EXPIRE', KEYS[1], ARGV[2], 'NX')\n"
                                   "end\n"
                                   "if ARGV[3] == '1' then\n"
                                   "  local h = tonumber(ARGV[5])\n"
                                   "  redis.call('LPUSH', KEYS[2], ARGV[4])\n"
                                   "  redis.call('LTRIM', KEYS[2], 0, h - 1)\n"
                                   "  redis.call('EXPIRE', KEYS[2], ARGV[6])\n"
                                   "  same = 0\n"
                                   "  for _, v in ipairs(redis.call('LRANGE', KEYS[2], 0, h - 1)) do\n"
                                   "    if v == ARGV[4] then same = same + 1 end\n"
                                   "  end\n"
                                   "end\n"
                                   "return {rate, same}\n";
static char counters_sha[48];

static int counters_append(struct gh_ctx *ctx, const struct item *it, int with_body)
{
    static struct gh_rcmd c; /* reused: the loop is one thread */
    char hash[24];
    int hl = snprintf(hash, sizeof(hash), "%" PRIx64, it->hash);

    gh_rcmd_begin(&c, 11);
    gh_rcmd_cstr(&c, with_body ? "EVAL" : "EVALSHA");
    gh_rcmd_cstr(&c, with_body ? counters_lua : counters_sha);
    gh_rcmd_cstr(&c, "2");
    gh_rcmd_key_guild(&c, it->m.guild_id, "automod", "rate:", it->m.author_id);
    gh_rcmd_key_guild(&c, it->m.guild_id, "automod", "recent:", it->m.author_id);
    gh_rcmd_cstr(&c, it->want_rate ? "1" : "0");
    gh_rcmd_i64(&c, it->s->rate_window_s);
    gh_rcmd_cstr(&c, it->want_repeat ? "1" : "0");
    gh_rcmd_str(&c, hash, (size_t)hl);
    gh_rcmd_i64(&c, it->s->repeat_history);
    gh_rcmd_i64(&c, it->s->repeat_window_s);
    return gh_redis_append_rcmd(ctx->redis, &c);
}

/* 0 read, 1 NOSCRIPT (send again with the body), -1 failed. */
static int counters_reply(struct gh_ctx *ctx, struct item *it)
{
    redisReply *r = gh_redis_get_reply(ctx->redis);
    int rc = -1;
    if (r && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0) {
        rc = 1;
    } else if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
               r->element[0]->type == REDIS_REPLY_INTEGER && r->element[1]->type == REDIS_REPLY_INTEGER) {
        if (it->want_rate)
            it->c.rate_count = r->element[0]->integer;
        if (it->want_repeat)
            it->c.repeat_count = (int)r->element[1]->integer;
        rc = 0;
    }
    freeReplyObject(r);
    return rc;
}

/* One pipeline for the chunk's rate and repeat counters: one script call per
 * message that needs them. */
static void counters(struct gh_ctx *ctx, struct item *items, int n)
{
    int queued = 0, failed = 0, again = 0;
    unsigned char st[CHUNK]; /* 0 not sent, 1 sent, 2 NOSCRIPT */

    memset(st, 0, sizeof(st));
    for (int i = 0; i < n; i++)
        if (items[i].s && (items[i].want_rate || items[i].want_repeat))
            queued++;
    if (queued == 0)
        return;
    queued = 0;
    if (ctx->redis && !counters_sha[0]) {
        redisReply *r = gh_redis_cmd(ctx->redis, "SCRIPT LOAD %s", counters_lua);
        if (r && r->type == REDIS_REPLY_STRING && r->len < sizeof(counters_sha))
            memcpy(counters_sha, r->str, r->len + 1);
        freeReplyObject(r);
    }
    for (int i = 0; i < n && ctx->redis; i++) {
        struct item *it = &items[i];
        if (!it->s || (!it->want_rate && !it->want_repeat))
            continue;
        (void)counters_append(ctx, it, !counters_sha[0]);
        st[i] = 1;
        queued++;
    }
    if (!ctx->redis)
        failed = 1;
    for (int i = 0; i < n; i++) {
        if (st[i] != 1)
            continue;
        int rc = counters_reply(ctx, &items[i]);
        if (rc == 1) {
            st[i] = 2;
            again++;
        } else if (rc < 0) {
            failed = 1;
        }
    }
    if (again > 0) { /* Redis lost its script cache (a restart): once more with the body */
        counters_sha[0] = '\0';
        for (int i = 0; i < n; i++)
            if (st[i] == 2)
                (void)counters_append(ctx, &items[i], 1);
        for (int i = 0; i < n; i++)
            if (st[i] == 2 && counters_reply(ctx, &items[i]) != 0)
                failed = 1;
    }
    if (failed) {
        for (int i = 0; i < n; i++)
            if (items[i].s && (items[i].want_rate || items[i].want_repeat)) {
                redis_down(ctx, items[i].ev);
                break;
            }
    }
}

static void rest_done(int err, const struct gh_rest_resp *resp, void *arg)
{
    (void)arg;
    (void)err;
    (void)resp; /* the REST client logs failures with route and status */
}

static void urgent_delete(struct gh_ctx *ctx, const struct item *it, enum gh_am_rule rule)
{
    char path[96], audit[64];
    struct gh_rest_req req;

    snprintf(path, sizeof(path), "/channels/%" PRIu64 "/messages/%" PRIu64, it->m.channel_id,
             it->m.message_id);
    snprintf(audit, sizeof(audit), "AutoMod: %s", gh_am_rule_title(rule));
    memset(&req, 0, sizeof(req));
    req.method = "DELETE";
    req.path = path;
    req.audit_reason = audit;
    if (gh_rest_submit(ctx->rest, &req, rest_done, NULL) == GH_OK) {
        it->ev->flags |= GH_EVF_DELETED;
        gh_gw_stats_urgent(it->ev->stats, it->ev->received_us);
    } else {
        GH_ERROR(&ctx->log, "automod: delete of message %" PRIu64 " in guild %" PRIu64 " not submitted",
                 it->m.message_id, it->m.guild_id);
    }
}

/* ---- the deletes: one queue per channel, coalesced into bulk deletes ----
 *
 * A message to delete joins its channel's queue. At the end of each inline
 * batch, every channel with no call in flight gets one: a DELETE for a single
 * message, POST /channels/{c}/messages/bulk-delete for 2..100 (messages past
 * BULK_MAX_AGE_MS are deleted one by one: Discord refuses them in bulk). While
 * a channel's call is in flight (possibly delayed by the rate limits, up to
 * the REST client's max wait), the next messages wait in its queue; when the
 * call ends, the next call takes up to 100 of them. One call in flight per
 * channel: a raid becomes a few bulk calls instead of one DELETE per message,
 * and nothing is refused for Discord's 50 requests/s. */
#define BULK_MAX 100
#define DISCORD_EPOCH_MS 1420070400000LL
#define BULK_MAX_AGE_MS (14LL * 86400 * 1000 - 60 * 1000) /* a minute's margin for clock skew */

struct dq_msg {
    uint64_t id;
    int64_t received_us;
    struct gh_gw_stats *stats;
    enum gh_am_rule rule;
};

struct dq_chan {
    uint64_t channel_id, guild_id;
    int inflight;
    struct dq_msg *q; /* pending, oldest first */
    size_t n, cap;
};

static struct dq_chan *dq;
static size_t dq_n, dq_cap;
static struct gh_ctx *dq_ctx; /* gateway-lite's one context (one thread) */

static int dq_bulkable(uint64_t message_id, int64_t now_ms)
{
    return now_ms - ((int64_t)(message_id >> 22) + DISCORD_EPOCH_MS) < BULK_MAX_AGE_MS;
}

static struct dq_chan *dq_find(uint64_t channel_id, uint64_t guild_id)
{
    for (size_t i = 0; i < dq_n; i++)
        if (dq[i].channel_id == channel_id)
            return &dq[i];
    if (dq_n == dq_cap) {
        size_t cap = dq_cap ? dq_cap * 2 : 16;
        struct dq_chan *p = realloc(dq, cap * sizeof(*p));
        if (!p)
            return NULL;
        dq = p;
        dq_cap = cap;
    }
    memset(&dq[dq_n], 0, sizeof(dq[dq_n]));
    dq[dq_n].channel_id = channel_id;
    dq[dq_n].guild_id = guild_id;
    return &dq[dq_n++];
}

static int dq_push(struct dq_chan *ch, const struct item *it, enum gh_am_rule rule)
{
    if (ch->n == ch->cap) {
        size_t cap = ch->cap ? ch->cap * 2 : 8;
        struct dq_msg *p = realloc(ch->q, cap * sizeof(*p));
        if (!p)
            return 0;
        ch->q = p;
        ch->cap = cap;
    }
    ch->q[ch->n].id = it->m.message_id;
    ch->q[ch->n].received_us = it->ev->received_us;
    ch->q[ch->n].stats = it->ev->stats;
    ch->q[ch->n].rule = rule;
    ch->n++;
    return 1;
}

static void dq_start(struct gh_ctx *ctx, struct dq_chan *ch);

/* The channel's call ended (the REST client logged a failure with its route
 * and status): the next one, if messages are waiting. arg is the channel id
 * (the table may have moved). */
static void dq_done(int err, const struct gh_rest_resp *resp, void *arg)
{
    uint64_t channel_id = (uint64_t)(uintptr_t)arg;
    (void)err;
    (void)resp;
    for (size_t i = 0; i < dq_n; i++)
        if (dq[i].channel_id == channel_id) {
            dq[i].inflight = 0;
            if (dq[i].n > 0 && dq_ctx)
                dq_start(dq_ctx, &dq[i]);
            return;
        }
}

/* Submits the channel's next call: its oldest pending messages (up to 100). */
static void dq_start(struct gh_ctx *ctx, struct dq_chan *ch)
{
    char path[112], audit[160], *body = NULL;
    struct gh_rest_req req;
    size_t k = ch->n < BULK_MAX ? ch->n : BULK_MAX, len = 0;
    unsigned rules = 0;
    int rc;

    if (k == 0 || ch->inflight)
        return;
    for (size_t i = 0; i < k; i++)
        rules |= 1u << ch->q[i].rule;
    memset(&req, 0, sizeof(req));
    req.audit_reason = audit;
    if (k == 1) {
        snprintf(audit, sizeof(audit), "AutoMod: %s", gh_am_rule_title(ch->q[0].rule));
        snprintf(path, sizeof(path), "/channels/%" PRIu64 "/messages/%" PRIu64, ch->channel_id, ch->q[0].id);
        req.method = "DELETE";
    } else {
        int off = snprintf(audit, sizeof(audit), "AutoMod: %zu messages (", k);
        for (int r = 0; r < GH_AM_RULE_COUNT && off > 0 && (size_t)off < sizeof(audit); r++)
            if (rules & (1u << r))
                off += snprintf(audit + off, sizeof(audit) - (size_t)off, "%s%s",
                                audit[off - 1] == '(' ? "" : ", ", gh_am_rule_title((enum gh_am_rule)r));
        if (off > 0 && (size_t)off < sizeof(audit) - 1)
            snprintf(audit + off, sizeof(audit) - (size_t)off, ")");
        body = malloc(16 + k * 23);
        if (!body) {
            GH_ERROR(&ctx->log, "automod: out of memory: %zu deletes in channel %" PRIu64 " wait", k,
                     ch->channel_id);
            return;
        }
        len = (size_t)sprintf(body, "{\"messages\":[");
        for (size_t i = 0; i < k; i++)
            len += (size_t)sprintf(body + len, "%s\"%" PRIu64 "\"", i ? "," : "", ch->q[i].id);
        len += (size_t)sprintf(body + len, "]}");
        snprintf(path, sizeof(path), "/channels/%" PRIu64 "/messages/bulk-delete", ch->channel_id);
        req.method = "POST";
        req.body = body;
        req.body_len = len;
    }
    req.path = path;
    rc = gh_rest_submit(ctx->rest, &req, dq_done, (void *)(uintptr_t)ch->channel_id);
    free(body);
    if (rc != GH_OK) {
        GH_ERROR(&ctx->log,
                 "automod: delete of %zu message(s) in channel %" PRIu64 " of guild %" PRIu64
                 " not submitted (%s)",
                 k, ch->channel_id, ch->guild_id, gh_strerror(rc));
        /* dropped: they would fail the same way again */
    } else {
        ch->inflight = 1;
        for (size_t i = 0; i < k; i++)
            gh_gw_stats_urgent(ch->q[i].stats, ch->q[i].received_us);
    }
    memmove(ch->q, ch->q + k, (ch->n - k) * sizeof(*ch->q));
    ch->n -= k;
}

/* End of a batch: a call for every idle channel with messages waiting;
 * channels with nothing left leave the table. */
static void dq_flush(struct gh_ctx *ctx)
{
    dq_ctx = ctx;
    for (size_t i = 0; i < dq_n; i++)
        if (!dq[i].inflight && dq[i].n > 0)
            dq_start(ctx, &dq[i]);
    for (size_t i = 0; i < dq_n;) {
        if (!dq[i].inflight && dq[i].n == 0) {
            free(dq[i].q);
            dq[i] = dq[--dq_n];
        } else {
            i++;
        }
    }
}

static void iso_time(int64_t ms, char *out, size_t n)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    if (strftime(out, n, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0 && n > 0)
        out[0] = '\0';
}

static int urgent_timeout(struct gh_ctx *ctx, const struct item *it, enum gh_am_rule rule, int64_t secs)
{
    char path[96], audit[64], body[96], until[40];
    struct gh_rest_req req;

    iso_time(gh_now_ms() + secs * 1000, until, sizeof(until));
    snprintf(path, sizeof(path), "/guilds/%" PRIu64 "/members/%" PRIu64, it->m.guild_id, it->m.author_id);
    snprintf(audit, sizeof(audit), "AutoMod: %s", gh_am_rule_title(rule));
    snprintf(body, sizeof(body), "{\"communication_disabled_until\":\"%s\"}", until);
    memset(&req, 0, sizeof(req));
    req.method = "PATCH";
    req.path = path;
    req.body = body;
    req.body_len = strlen(body);
    req.audit_reason = audit;
    if (gh_rest_submit(ctx->rest, &req, rest_done, NULL) == GH_OK) {
        gh_gw_stats_urgent(it->ev->stats, it->ev->received_us);
        return 1;
    }
    GH_ERROR(&ctx->log, "automod: timeout of user %" PRIu64 " in guild %" PRIu64 " not submitted",
             it->m.author_id, it->m.guild_id);
    return 0;
}

/* The start of the content, cut on a character boundary. */
static json_object *excerpt(const char *s, size_t len)
{
    size_t k = len > GH_AM_EXCERPT_MAX ? GH_AM_EXCERPT_MAX : len;
    while (k > 0 && k < len && ((unsigned char)s[k] & 0xc0) == 0x80)
        k--;
    return json_object_new_string_len(s, (int)k);
}

/* The batch's offence jobs, queued together by offences_flush. */
static struct gh_queue_new *oj;
static int oj_n, oj_cap;

/* One offence job on its own (the pipeline's fallback). */
/* One offence job the pipeline could not hand over: through the process's
 * job spool (gateway-lite keeps it while Redis refuses it, so the record and
 * the warn/kick/ban follow once Redis is back). */
static int enqueue_one(struct gh_ctx *ctx, const char *id, uint64_t guild_id, json_object *p)
{
    return gh_jobspool_enqueue(ctx, NULL, id, GH_AM_JOB_OFFENCE, guild_id, p, 0, 0);
}

static void enqueue_offence(struct gh_ctx *ctx, const struct item *it, const struct gh_am_hit *h, int deleted,
                            int timed_out, int64_t timeout_s)
{
    char id[160], num[24];
    json_object *p = json_object_new_object();
    int rc;

    if (!p)
        return;
    snprintf(id, sizeof(id), "automod:%" PRIu64 ":%" PRIu64 ":%s", it->m.guild_id, it->m.message_id,
             gh_am_rule_name(h->rule));
#define SF(k, v)                                                                                             \
    do {                                                                                                     \
        snprintf(num, sizeof(num), "%" PRIu64, (uint64_t)(v));                                               \
        json_object_object_add(p, k, json_object_new_string(num));                                           \
    } while (0)
    SF("guild_id", it->m.guild_id);
    SF("user_id", it->m.author_id);
    SF("channel_id", it->m.channel_id);
    SF("message_id", it->m.message_id);
#undef SF
    json_object_object_add(p, "rule", json_object_new_string(gh_am_rule_name(h->rule)));
    json_object_object_add(p, "actions", json_object_new_int64(h->actions));
    json_object_object_add(p, "log_only", json_object_new_boolean(h->log_only));
    json_object_object_add(p, "edited", json_object_new_boolean(it->m.is_edit));
    json_object_object_add(p, "deleted", json_object_new_boolean(deleted));
    json_object_object_add(p, "timed_out", json_object_new_boolean(timed_out));
    json_object_object_add(p, "timeout_s", json_object_new_int64(timeout_s));
    json_object_object_add(p, "excerpt", excerpt(it->m.content, it->m.len));
    json_object_object_add(p, "matched", json_object_new_string(h->matched));
    json_object_object_add(p, "detected_ms", json_object_new_int64(gh_now_ms()));
    if (oj_n == oj_cap) {
        int cap = oj_cap ? oj_cap * 2 : 64;
        struct gh_queue_new *q = realloc(oj, (size_t)cap * sizeof(*q));
        if (!q) {
            rc = enqueue_one(ctx, id, it->m.guild_id, p); /* out of memory: the slow way */
            if (rc != GH_OK && rc != GH_EDUPLICATE)
                GH_ERROR(&ctx->log, "automod: offence %s not queued (%s): not recorded", id, gh_strerror(rc));
            json_object_put(p);
            return;
        }
        oj = q;
        oj_cap = cap;
    }
    memset(&oj[oj_n], 0, sizeof(oj[oj_n]));
    oj[oj_n].id = strdup(id);
    oj[oj_n].kind = GH_AM_JOB_OFFENCE;
    oj[oj_n].guild_id = it->m.guild_id;
    oj[oj_n].payload = p; /* ours until offences_flush */
    if (!oj[oj_n].id) {
        json_object_put(p);
        GH_ERROR(&ctx->log, "automod: offence %s not queued (out of memory): not recorded", id);
        return;
    }
    oj_n++;
}

/* End of a batch: the batch's offence jobs in one pipeline (one round trip);
 * one Redis did not take goes through enqueue_one. */
static void offences_flush(struct gh_ctx *ctx)
{
    if (oj_n == 0)
        return;
    /* while the spool holds jobs, new ones go behind them (order kept) */
    if (ctx->redis && !(ctx->spool && gh_jobspool_len(ctx->spool) > 0))
        (void)gh_queue_enqueue_many(ctx->redis, ctx->queue ? ctx->queue : GH_QUEUE_DEFAULT, oj, oj_n);
    else
        for (int i = 0; i < oj_n; i++)
            oj[i].rc = GH_EREDIS;
    for (int i = 0; i < oj_n; i++) {
        int rc = oj[i].rc;
        if (rc == GH_EREDIS)
            rc = enqueue_one(ctx, oj[i].id, oj[i].guild_id, oj[i].payload);
        if (rc != GH_OK && rc != GH_EDUPLICATE)
            GH_ERROR(&ctx->log, "automod: offence %s not queued (%s): not recorded", oj[i].id,
                     gh_strerror(rc));
        json_object_put(oj[i].payload);
        free((char *)oj[i].id);
    }
    oj_n = 0;
}

static void decide(struct gh_ctx *ctx, struct item *it)
{
    struct gh_am_hit hits[MAX_HITS];
    int overflow = 0, n, del = 0, spam = 0, timed = 0;
    enum gh_am_rule del_rule = GH_AM_RULE_COUNT, to_rule = GH_AM_RULE_COUNT;
    int64_t to_s = 0;

    n = gh_am_check(it->s, &it->m, &it->c, hits, MAX_HITS, &overflow);
    if (overflow)
        GH_WARN(&ctx->log,
                "automod: a pattern of guild %" PRIu64 " hit its match limit on message %" PRIu64
                " (counted as no match)",
                it->m.guild_id, it->m.message_id);
    if (n == 0)
        return;
    it->ev->flags |= GH_EVF_AUTOMOD_HIT;
    if (it->ev->stats)
        it->ev->stats->automod_hits++;
    for (int i = 0; i < n; i++) {
        if (hits[i].rule == GH_AM_RATE || hits[i].rule == GH_AM_REPEAT)
            spam = 1;
        if (hits[i].actions & GH_AM_ACT_DELETE) {
            if (!del)
                del_rule = hits[i].rule;
            del = 1;
        }
        if ((hits[i].actions & GH_AM_ACT_TIMEOUT) && it->s->rule[hits[i].rule].timeout_s > to_s) {
            to_s = it->s->rule[hits[i].rule].timeout_s;
            to_rule = hits[i].rule;
        }
    }
    if (spam)
        it->ev->flags |= GH_EVF_SPAM;
    if (del) {
        struct dq_chan *ch = NULL;
        if (dq_bulkable(it->m.message_id, gh_now_ms()) &&
            (ch = dq_find(it->m.channel_id, it->m.guild_id)) != NULL && dq_push(ch, it, del_rule))
            it->ev->flags |= GH_EVF_DELETED; /* sent at the end of the batch (dq_flush) */
        else
            urgent_delete(ctx, it, del_rule); /* too old for a bulk delete (an edit), or out of memory */
    }
    if (to_s > 0)
        timed = urgent_timeout(ctx, it, to_rule, to_s);
    for (int i = 0; i < n; i++)
        enqueue_offence(ctx, it, &hits[i], del && (hits[i].actions & GH_AM_ACT_DELETE),
                        timed && (hits[i].actions & GH_AM_ACT_TIMEOUT), it->s->rule[hits[i].rule].timeout_s);
}

int gh_am_inline(struct gh_ctx *ctx, struct gh_event *const *evs, int n)
{
    struct item items[CHUNK];
    struct seen seen[CHUNK];

    if (!ctx || !evs || n <= 0)
        return GH_EINVAL;
    for (int base = 0; base < n; base += CHUNK) {
        int k = n - base < CHUNK ? n - base : CHUNK, any = 0, n_seen = 0;
        for (int i = 0; i < k; i++) {
            struct gh_event *ev = evs[base + i];
            int is_edit = ev->name && strcmp(ev->name, "MESSAGE_UPDATE") == 0;
            items[i].s = NULL;
            if (!read_msg(ctx, ev, is_edit, &items[i], seen, &n_seen))
                items[i].s = NULL;
            else
                any = 1;
        }
        if (!any)
            continue;
        counters(ctx, items, k);
        for (int i = 0; i < k; i++)
            if (items[i].s)
                decide(ctx, &items[i]);
    }
    dq_flush(ctx);
    offences_flush(ctx);
    return GH_OK;
}

const struct gh_event_handler gh_am_events[GH_AM_N_EVENTS] = {
    {.name = "MESSAGE_CREATE", .inline_fn = gh_am_inline},
    {.name = "MESSAGE_UPDATE", .inline_fn = gh_am_inline},
};
