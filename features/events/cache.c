/* cache.c - the gateway's Redis caches, written by inline handlers.
 *
 * lib/discord/guildcache.c reads the same keys (roles and channels as JSON
 * arrays, members as objects) and falls back to REST with a 300 s TTL when
 * one is missing. Here the gateway keeps them fresh from events, so they
 * live GH_EVENTS_CACHE_TTL_S (24 h), refreshed on every write: a guild
 * whose events stop (the bot left, the shard moved) ages out.
 *
 * Role and channel events edit the arrays by read-modify-write: they are
 * rare, and the gateway that owns a guild's shard is its only writer (the
 * REST fallback only fills a missing key). An edit of an array that is not
 * cached is skipped: the next read fills it from REST.
 *
 * Messages: one pipelined round trip per MESSAGE_CREATE batch (a small Lua
 * script per message: SET with TTL, ZADD to the per-guild index, trim the
 * oldest beyond the cap). Updates and deletes read the cached copy first
 * and attach it to ev->d as "gh_before" so the job carries the old content.
 *
 * Redis down: every handler skips its writes, logs once per burst and
 * returns GH_OK (the batch is never failed for a cache). */
#include "features/events/events.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "core/ctx.h"
#include "core/err.h"
#include "core/json.h"
#include "core/log.h"
#include "core/str.h"
#include "core/timeutil.h"
#include "discord/interaction.h"
#include "store/redis.h"

#define DISCORD_EPOCH_MS INT64_C(1420070400000)

static int msg_cap = GH_EVENTS_MSG_CAP_DEFAULT;
static int64_t redis_down_logged_ms;

void gh_events_set_msg_cap(int cap)
{
    msg_cap = cap > 0 ? cap : GH_EVENTS_MSG_CAP_DEFAULT;
}

void gh_events_redis_down(struct gh_ctx *ctx, const char *what)
{
    if (!gh_every(&redis_down_logged_ms, gh_mono_ms(), 10000))
        return;
    GH_WARN(&ctx->log, "events: Redis is unavailable; %s skipped (logged once per 10 s)", what);
}

uint64_t gh_events_guild_of(const char *name, json_object *d)
{
    uint64_t g = d ? gh_json_get_snowflake(d, "guild_id") : 0;
    if (!g && d && name &&
        (!strcmp(name, "GUILD_CREATE") || !strcmp(name, "GUILD_UPDATE") || !strcmp(name, "GUILD_DELETE")))
        g = gh_json_get_snowflake(d, "id");
    return g;
}

static const char *plain(json_object *o)
{
    return json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
}

/* Reads n pending replies; returns how many were NULL (no answer). */
static int drain(struct gh_ctx *ctx, int n)
{
    int lost = 0;
    if (n == 0)
        return gh_redis_ctx(ctx->redis) == NULL; /* nothing went out: was it because Redis is gone? */
    for (int i = 0; i < n; i++) {
        redisReply *r = gh_redis_get_reply(ctx->redis);
        if (!r)
            lost++;
        freeReplyObject(r);
    }
    return lost;
}

/* ---- guilds ------------------------------------------------------------- */

/* Appends the summary hash writes for guild object d; returns commands appended. */
static int append_guild_summary(struct gh_ctx *ctx, uint64_t g, json_object *d, int with_count)
{
    char key[128], owner[24] = "", count[24] = "", now[24];
    const char *name = gh_json_get_str(d, "name");
    const char *icon = gh_json_get_str(d, "icon");
    int64_t mc = 0;
    int k = 0;

    if (gh_key_guild(key, sizeof(key), g, "cache", "guild") != GH_OK)
        return 0;
    uint64_t o = gh_json_get_snowflake(d, "owner_id");
    if (o)
        (void)snprintf(owner, sizeof(owner), "%" PRIu64, o);
    (void)snprintf(now, sizeof(now), "%" PRId64, gh_now_ms());
    if (gh_redis_append(ctx->redis, "HSET %s id %" PRIu64 " name %s icon %s unavailable 0 updated_ms %s", key,
                        g, name ? name : "", icon ? icon : "", now) == GH_OK)
        k++;
    if (owner[0] && gh_redis_append(ctx->redis, "HSET %s owner_id %s", key, owner) == GH_OK)
        k++;
    if (with_count && gh_json_get_int(d, "member_count", &mc) == GH_OK) {
        (void)snprintf(count, sizeof(count), "%" PRId64, mc);
        if (gh_redis_append(ctx->redis, "HSET %s member_count %s", key, count) == GH_OK)
            k++;
    }
    if (gh_redis_append(ctx->redis, "EXPIRE %s %d", key, GH_EVENTS_CACHE_TTL_S) == GH_OK)
        k++;
    return k;
}

static int append_array(struct gh_ctx *ctx, uint64_t g, const char *which, json_object *arr)
{
    char key[128];
    if (!arr || !json_object_is_type(arr, json_type_array) ||
        gh_key_guild(key, sizeof(key), g, "cache", "%s", which) != GH_OK)
        return 0;
    return gh_redis_append(ctx->redis, "SET %s %s EX %d", key, plain(arr), GH_EVENTS_CACHE_TTL_S) == GH_OK;
}

int gh_events_guild_create(struct gh_ctx *ctx, struct gh_event *const *evs, int n)
{
    int k = 0;
    if (!ctx->redis) {
        gh_events_redis_down(ctx, "guild cache");
        return GH_OK;
    }
    for (int i = 0; i < n; i++) {
        json_object *d = evs[i]->d;
        uint64_t g = gh_events_guild_of("GUILD_CREATE", d);
        if (!g)
            continue;
        k += append_guild_summary(ctx, g, d, 1);
        k += append_array(ctx, g, "roles", gh_json_get_arr(d, "roles"));
        k += append_array(ctx, g, "channels", gh_json_get_arr(d, "channels"));
    }
    if (drain(ctx, k))
        gh_events_redis_down(ctx, "guild cache");
    return GH_OK;
}

int gh_events_guild_update(struct gh_ctx *ctx, struct gh_event *const *evs, int n)
{
    int k = 0;
    if (!ctx->redis) {
        gh_events_redis_down(ctx, "guild cache");
        return GH_OK;
    }
    for (int i = 0; i < n; i++) {
        uint64_t g = gh_events_guild_of("GUILD_UPDATE", evs[i]->d);
        if (!g)
            continue;
        k += append_guild_summary(ctx, g, evs[i]->d, 0);
        k += append_array(ctx, g, "roles", gh_json_get_arr(evs[i]->d, "roles"));
    }
    if (drain(ctx, k))
        gh_events_redis_down(ctx, "guild cache");
    return GH_OK;
}

int gh_events_guild_delete(struct gh_ctx *ctx, struct gh_event *const *evs, int n)
{
    int k = 0;
    if (!ctx->redis) {
        gh_events_redis_down(ctx, "guild cache");
        return GH_OK;
    }
    for (int i = 0; i < n; i++) {
        json_object *d = evs[i]->d;
        uint64_t g = gh_events_guild_of("GUILD_DELETE", d);
        int unavailable = 0;
        char key[128], roles[128], chans[128], msgs[128];
        if (!g || gh_key_guild(key, sizeof(key), g, "cache", "guild") != GH_OK)
            continue;
        (void)gh_json_get_bool(d, "unavailable", &unavailable);
        if (unavailable) {
            /* An outage: the guild comes back with GUILD_CREATE; keep what we know. */
            if (gh_redis_append(ctx->redis, "HSET %s unavailable 1", key) == GH_OK)
                k++;
            continue;
        }
        (void)gh_key_guild(roles, sizeof(roles), g, "cache", "roles");
        (void)gh_key_guild(chans, sizeof(chans), g, "cache", "channels");
        (void)gh_key_guild(msgs, sizeof(msgs), g, "cache", "msgs");
        /* The message copies age out by their TTL; the index goes now. */
        if (gh_redis_append(ctx->redis, "DEL %s %s %s %s", key, roles, chans, msgs) == GH_OK)
            k++;
        GH_INFO(&ctx->log, "events: the bot was removed from guild %" PRIu64 "; its caches are dropped", g);
    }
    if (drain(ctx, k))
        gh_events_redis_down(ctx, "guild cache");
    return GH_OK;
}

/* ---- roles and channels (read-modify-write of the arrays) --------------- */

/* Replaces (obj != NULL) or removes the element with id in the cached array
 * `which`; an element not present is appended when obj is given. */
static void edit_array(struct gh_ctx *ctx, uint64_t g, const char *which, const char *id, json_object *obj)
{
    char key[128];
    json_object *arr = NULL, *out = NULL;
    redisReply *r = NULL;

    if (gh_key_guild(key, sizeof(key), g, "cache", "%s", which) != GH_OK)
        return;
    r = gh_redis_cmd(ctx->redis, "GET %s", key);
    if (!r) {
        gh_events_redis_down(ctx, "role/channel cache");
        return;
    }
    if (r->type != REDIS_REPLY_STRING || gh_json_parse(r->str, r->len, 16, &arr) != GH_OK ||
        !json_object_is_type(arr, json_type_array))
        goto out; /* not cached: the next read fills it from REST */
    out = json_object_new_array();
    size_t len = json_object_array_length(arr);
    int placed = 0;
    for (size_t i = 0; i < len; i++) {
        json_object *e = json_object_array_get_idx(arr, i);
        const char *eid = gh_json_get_str(e, "id");
        if (eid && !strcmp(eid, id)) {
            if (obj && !placed)
                json_object_array_add(out, json_object_get(obj));
            placed = 1;
            continue;
        }
        json_object_array_add(out, json_object_get(e));
    }
    if (obj && !placed)
        json_object_array_add(out, json_object_get(obj));
    freeReplyObject(r);
    r = gh_redis_cmd(ctx->redis, "SET %s %s EX %d", key, plain(out), GH_EVENTS_CACHE_TTL_S);
    if (!r)
        gh_events_redis_down(ctx, "role/channel cache");
out:
    freeReplyObject(r);
    json_object_put(arr);
    json_object_put(out);
}

int gh_events_role_event(struct gh_ctx *ctx, struct gh_event *const *evs, int n)
{
    if (!ctx->redis) {
        gh_events_redis_down(ctx, "role cache");
        return GH_OK;
    }
    for (int i = 0; i < n; i++) {
        json_object *d = evs[i]->d;
        uint64_t g = gh_json_get_snowflake(d, "guild_id");
        int del = !strcmp(evs[i]->name, "GUILD_ROLE_DELETE");
        json_object *role = del ? NULL : gh_json_get_obj(d, "role");
        const char *id = del ? gh_json_get_str(d, "role_id") : (role ? gh_json_get_str(role, "id") : NULL);
        if (!g || !id)
            continue;
        edit_array(ctx, g, "roles", id, role);
    }
    return GH_OK;
}

int gh_events_channel_event(struct gh_ctx *ctx, struct gh_event *const *evs, int n)
{
    if (!ctx->redis) {
        gh_events_redis_down(ctx, "channel cache");
        return GH_OK;
    }
    for (int i = 0; i < n; i++) {
        json_object *d = evs[i]->d;
        uint64_t g = gh_json_get_snowflake(d, "guild_id");
        const char *id = gh_json_get_str(d, "id");
        if (!g || !id)
            continue; /* DM channels are not cached */
        edit_array(ctx, g, "channels", id, strcmp(evs[i]->name, "CHANNEL_DELETE") ? d : NULL);
    }
    return GH_OK;
}

/* ---- members ------------------------------------------------------------ */

static int member_count(struct gh_ctx *ctx, struct gh_event *const *evs, int n, int by)
{
    int k = 0;
    if (!ctx->redis) {
        gh_events_redis_down(ctx, "member count");
        return GH_OK;
    }
    for (int i = 0; i < n; i++) {
        char key[128], member[128];
        uint64_t g = gh_json_get_snowflake(evs[i]->d, "guild_id");
        json_object *user = gh_json_get_obj(evs[i]->d, "user");
        uint64_t u = user ? gh_json_get_snowflake(user, "id") : 0;
        if (!g || gh_key_guild(key, sizeof(key), g, "cache", "guild") != GH_OK)
            continue;
        /* Only a guild whose summary is cached is counted: HINCRBY on a
         * missing hash would invent a count of 1. */
        if (gh_redis_append(ctx->redis, "EVAL %s 1 %s %d",
                            "if redis.call('EXISTS', KEYS[1]) == 1 then "
                            "return redis.call('HINCRBY', KEYS[1], 'member_count', ARGV[1]) end return false",
                            key, by) == GH_OK)
            k++;
        if (by < 0 && u && gh_key_guild(member, sizeof(member), g, "cache", "member:%" PRIu64, u) == GH_OK &&
            gh_redis_append(ctx->redis, "DEL %s", member) == GH_OK)
            k++;
    }
    if (drain(ctx, k))
        gh_events_redis_down(ctx, "member count");
    return GH_OK;
}

int gh_events_member_add(struct gh_ctx *ctx, struct gh_event *const *evs, int n)
{
    return member_count(ctx, evs, n, 1);
}

int gh_events_member_remove(struct gh_ctx *ctx, struct gh_event *const *evs, int n)
{
    return member_count(ctx, evs, n, -1);
}

/* A member's roles or nick changed: drop the cached copy (guildcache reads it
 * again from REST with its 60 s TTL). */
int gh_events_member_update(struct gh_ctx *ctx, struct gh_event *const *evs, int n)
{
    int k = 0;
    if (!ctx->redis) {
        gh_events_redis_down(ctx, "member cache");
        return GH_OK;
    }
    for (int i = 0; i < n; i++) {
        char key[128];
        uint64_t g = gh_json_get_snowflake(evs[i]->d, "guild_id");
        json_object *user = gh_json_get_obj(evs[i]->d, "user");
        uint64_t u = user ? gh_json_get_snowflake(user, "id") : 0;
        if (!g || !u || gh_key_guild(key, sizeof(key), g, "cache", "member:%" PRIu64, u) != GH_OK)
            continue;
        if (gh_redis_append(ctx->redis, "DEL %s", key) == GH_OK)
            k++;
    }
    if (drain(ctx, k))
        gh_events_redis_down(ctx, "member cache");
    return GH_OK;
}

/* ---- messages ----------------------------------------------------------- */

/* KEYS[1] message copy, KEYS[2] the guild's index; ARGV: copy, ttl, id,
 * score, cap, prefix of the copies' keys. Returns how many were trimmed. */
static const char store_msg_lua[] = "redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2]) "
                                    "redis.call('ZADD', KEYS[2], ARGV[4], ARGV[3]) "
                                    "redis.call('EXPIRE', KEYS[2], ARGV[2]) "
                                    "local n = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[5]) "
                                    "if n > 0 then "
                                    "  local old = redis.call('ZRANGE', KEYS[2], 0, n - 1) "
                                    "  for _, id in ipairs(old) do redis.call('DEL', ARGV[6] .. id) end "
                                    "  redis.call('ZREMRANGEBYRANK', KEYS[2], 0, n - 1) "
                                    "  return n "
                                    "end "
                                    "return 0";

/* How much of content the copy keeps: GH_EVENTS_MSG_CONTENT_MAX bytes at
 * most, not cutting a UTF-8 sequence. */
static size_t cut_len(const char *content)
{
    size_t len = strlen(content);
    if (len > GH_EVENTS_MSG_CONTENT_MAX) {
        len = GH_EVENTS_MSG_CONTENT_MAX;
        while (len > 0 && ((unsigned char)content[len] & 0xC0) == 0x80)
            len--; /* do not cut a UTF-8 sequence */
    }
    return len;
}

/* The cached copy of message d, {author_id, channel_id, content, attachments,
 * created}, written straight into b (no JSON tree per message), then a NUL. */
static int message_copy(struct gh_buf *b, json_object *d, uint64_t id)
{
    json_object *author = gh_json_get_obj(d, "author");
    const char *content = gh_json_get_str(d, "content");
    json_object *att = gh_json_get_arr(d, "attachments");
    size_t len = content ? cut_len(content) : 0;
    const char *aid = author ? gh_json_get_str(author, "id") : NULL;
    const char *cid = gh_json_get_str(d, "channel_id");
    int rc;

#define STR_FIELD(name, v)                                                                                   \
    ((v) ? (gh_buf_puts(b, "\"" name "\":\"") | gh_buf_append_json_escaped(b, (v), strlen(v)) |              \
            gh_buf_puts(b, "\""))                                                                            \
         : gh_buf_puts(b, "\"" name "\":null"))
    rc = gh_buf_puts(b, "{");
    rc |= STR_FIELD("author_id", aid);
    rc |= gh_buf_puts(b, ",");
    rc |= STR_FIELD("channel_id", cid);
#undef STR_FIELD
    rc |= gh_buf_puts(b, ",\"content\":\"");
    rc |= gh_buf_append_json_escaped(b, content ? content : "", len);
    rc |= gh_buf_printf(b, "\",\"attachments\":%d,\"created\":%" PRId64 "}",
                        att ? (int)json_object_array_length(att) : 0, (int64_t)(id >> 22) + DISCORD_EPOCH_MS);
    rc |= gh_buf_append(b, "", 1); /* the NUL that ends this copy */
    return rc == GH_OK ? GH_OK : GH_ENOMEM;
}

static char store_msg_sha[48];

static uint64_t ev_guild(const struct gh_event *ev)
{
    return ev->guild_id ? ev->guild_id : gh_json_get_snowflake(ev->d, "guild_id");
}

/* Appends the store script for message i: EVALSHA, or EVAL with the body. */
static int store_append(struct gh_ctx *ctx, uint64_t g, uint64_t id, const char *copy, int with_body)
{
    static struct gh_rcmd c; /* reused: the loop is one thread */
    if (!g || !id)
        return GH_EINVAL;
    gh_rcmd_begin(&c, 11);
    gh_rcmd_cstr(&c, with_body ? "EVAL" : "EVALSHA");
    gh_rcmd_cstr(&c, with_body ? store_msg_lua : store_msg_sha);
    gh_rcmd_cstr(&c, "2");
    gh_rcmd_key_guild(&c, g, "cache", "msg:", id);
    gh_rcmd_key_guild(&c, g, "cache", "msgs", 0);
    gh_rcmd_cstr(&c, copy);
    gh_rcmd_i64(&c, GH_EVENTS_CACHE_TTL_S);
    gh_rcmd_u64(&c, id);
    gh_rcmd_u64(&c, id >> 22);
    gh_rcmd_i64(&c, msg_cap);
    gh_rcmd_key_guild(&c, g, "cache", "msg:", 0);
    return gh_redis_append_rcmd(ctx->redis, &c);
}

int gh_events_message_create(struct gh_ctx *ctx, struct gh_event *const *evs, int n)
{
    static struct gh_buf copies = {NULL, 0, 0, (size_t)64 << 20};
    size_t *off = NULL;
    unsigned char *st = NULL; /* 0 skipped, 1 sent, 2 NOSCRIPT: again with the body */
    int k = 0, lost = 0, again = 0;

    if (!ctx->redis) {
        gh_events_redis_down(ctx, "message cache");
        goto prefix;
    }
    off = malloc((size_t)n * sizeof(*off));
    st = calloc((size_t)n, 1);
    if (!off || !st)
        goto prefix;
    gh_buf_reset(&copies);
    for (int i = 0; i < n; i++) {
        uint64_t g = ev_guild(evs[i]), id = gh_json_get_snowflake(evs[i]->d, "id");
        off[i] = copies.len;
        if (g && id && message_copy(&copies, evs[i]->d, id) == GH_OK)
            st[i] = 1;
        else
            copies.len = off[i]; /* nothing half-written */
    }
    if (!store_msg_sha[0]) {
        redisReply *r = gh_redis_cmd(ctx->redis, "SCRIPT LOAD %s", store_msg_lua);
        if (r && r->type == REDIS_REPLY_STRING && r->len < sizeof(store_msg_sha))
            memcpy(store_msg_sha, r->str, r->len + 1);
        freeReplyObject(r);
    }
    for (int i = 0; i < n; i++) {
        if (st[i] && store_append(ctx, ev_guild(evs[i]), gh_json_get_snowflake(evs[i]->d, "id"),
                                  copies.data + off[i], !store_msg_sha[0]) == GH_OK)
            k++;
        else
            st[i] = 0;
    }
    if (k == 0) {
        if (gh_redis_ctx(ctx->redis) == NULL)
            gh_events_redis_down(ctx, "message cache");
        goto prefix;
    }
    for (int i = 0; i < n; i++) {
        if (!st[i])
            continue;
        redisReply *r = gh_redis_get_reply(ctx->redis);
        if (!r)
            lost++;
        else if (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0) {
            st[i] = 2;
            again++;
        }
        freeReplyObject(r);
    }
    if (again > 0) { /* Redis lost its script cache (a restart): once more with the body */
        int sent = 0;
        store_msg_sha[0] = '\0';
        for (int i = 0; i < n; i++)
            if (st[i] == 2 && store_append(ctx, ev_guild(evs[i]), gh_json_get_snowflake(evs[i]->d, "id"),
                                           copies.data + off[i], 1) == GH_OK)
                sent++;
        lost += drain(ctx, sent);
    }
    if (lost)
        gh_events_redis_down(ctx, "message cache");
prefix:
    free(off);
    free(st);
    gh_events_prefix_detect(ctx, evs, n);
    return GH_OK;
}

/* Pipelined GET of each message's copy; befores[i] receives the parsed copy
 * (owned) or NULL. Returns GH_OK or GH_EREDIS. */
static int read_copies(struct gh_ctx *ctx, const uint64_t *guilds, const uint64_t *ids, int n,
                       json_object **befores)
{
    int k = 0, lost = 0;
    int sent[200];

    if (n > 200)
        n = 200;
    for (int i = 0; i < n; i++) {
        char key[128];
        befores[i] = NULL;
        sent[i] = 0;
        if (!guilds[i] || !ids[i] ||
            gh_key_guild(key, sizeof(key), guilds[i], "cache", "msg:%" PRIu64, ids[i]) != GH_OK)
            continue;
        if (gh_redis_append(ctx->redis, "GET %s", key) == GH_OK) {
            sent[i] = 1;
            k++;
        }
    }
    for (int i = 0; i < n; i++) {
        if (!sent[i])
            continue;
        redisReply *r = gh_redis_get_reply(ctx->redis);
        if (!r)
            lost++;
        else if (r->type == REDIS_REPLY_STRING && gh_json_parse(r->str, r->len, 8, &befores[i]) != GH_OK)
            befores[i] = NULL;
        freeReplyObject(r);
    }
    return lost ? GH_EREDIS : GH_OK;
}

int gh_events_message_update(struct gh_ctx *ctx, struct gh_event *const *evs, int n)
{
    enum { CHUNK = 64 };
    if (!ctx->redis) {
        gh_events_redis_down(ctx, "message cache");
        return GH_OK;
    }
    for (int base = 0; base < n; base += CHUNK) {
        int m = n - base < CHUNK ? n - base : CHUNK, k = 0;
        uint64_t guilds[CHUNK], ids[CHUNK];
        json_object *befores[CHUNK];
        for (int i = 0; i < m; i++) {
            guilds[i] = gh_json_get_snowflake(evs[base + i]->d, "guild_id");
            ids[i] = gh_json_get_snowflake(evs[base + i]->d, "id");
        }
        if (read_copies(ctx, guilds, ids, m, befores) != GH_OK)
            gh_events_redis_down(ctx, "message cache");
        for (int i = 0; i < m; i++) {
            json_object *d = evs[base + i]->d;
            const char *content = gh_json_get_str(d, "content");
            char key[128];
            if (!befores[i])
                continue;
            /* the new content replaces the copy (same TTL); an update without
             * content (an embed resolved) leaves it alone */
            if (content &&
                gh_key_guild(key, sizeof(key), guilds[i], "cache", "msg:%" PRIu64, ids[i]) == GH_OK) {
                json_object *copy = json_object_new_object();
                json_object_object_foreach(befores[i], fk, fv)
                    json_object_object_add(copy, fk, json_object_get(fv));
                json_object_object_add(copy, "content",
                                       json_object_new_string_len(content, (int)cut_len(content)));
                if (gh_redis_append(ctx->redis, "SET %s %s XX KEEPTTL", key, plain(copy)) == GH_OK)
                    k++;
                json_object_put(copy);
            }
            json_object_object_add(d, "gh_before", befores[i]); /* ownership passes to d */
            befores[i] = NULL;
        }
        if (drain(ctx, k))
            gh_events_redis_down(ctx, "message cache");
    }
    return GH_OK;
}

int gh_events_message_delete(struct gh_ctx *ctx, struct gh_event *const *evs, int n)
{
    if (!ctx->redis) {
        gh_events_redis_down(ctx, "message cache");
        return GH_OK;
    }
    for (int e = 0; e < n; e++) {
        json_object *d = evs[e]->d;
        uint64_t g = gh_json_get_snowflake(d, "guild_id");
        json_object *arr = gh_json_get_arr(d, "ids"); /* MESSAGE_DELETE_BULK */
        int bulk = arr != NULL;
        int m = bulk ? (int)json_object_array_length(arr) : 1;
        if (!g || m <= 0)
            continue;
        if (m > 200)
            m = 200; /* Discord's bulk delete limit is 100 */
        uint64_t guilds[200], ids[200];
        json_object *befores[200];
        for (int i = 0; i < m; i++) {
            guilds[i] = g;
            ids[i] = bulk ? gh_snowflake_parse(json_object_get_string(json_object_array_get_idx(arr, i)))
                          : gh_json_get_snowflake(d, "id");
        }
        if (read_copies(ctx, guilds, ids, m, befores) != GH_OK) {
            gh_events_redis_down(ctx, "message cache");
            continue;
        }
        json_object *bulk_before = bulk ? json_object_new_object() : NULL;
        char idx[128];
        int k = 0;
        (void)gh_key_guild(idx, sizeof(idx), g, "cache", "msgs");
        for (int i = 0; i < m; i++) {
            char key[128], ids_s[24];
            if (!ids[i])
                continue;
            (void)snprintf(ids_s, sizeof(ids_s), "%" PRIu64, ids[i]);
            if (gh_key_guild(key, sizeof(key), g, "cache", "msg:%" PRIu64, ids[i]) == GH_OK &&
                gh_redis_append(ctx->redis, "DEL %s", key) == GH_OK)
                k++;
            if (gh_redis_append(ctx->redis, "ZREM %s %s", idx, ids_s) == GH_OK)
                k++;
            if (!befores[i])
                continue;
            if (bulk)
                json_object_object_add(bulk_before, ids_s, befores[i]);
            else
                json_object_object_add(d, "gh_before", befores[i]);
            befores[i] = NULL;
        }
        if (bulk)
            json_object_object_add(d, "gh_before", bulk_before);
        if (drain(ctx, k))
            gh_events_redis_down(ctx, "message cache");
    }
    return GH_OK;
}
