/* gwstate.c - leases, sessions, identify locks and shard status in Redis
 * (see gwstate.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "core/err.h"
#include "core/str.h"
#include "gateway/gwstate.h"
#include "store/redis.h"

/* Take when free, renew when ours; else the holder's name. */
static const char LEASE_LUA[] =
    "local v = redis.call('GET', KEYS[1]) "
    "if v == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return {1, v} end "
    "if not v then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return {1, ARGV[1]} end "
    "return {0, v}";

static const char RELEASE_LUA[] = "if redis.call('GET', KEYS[1]) == ARGV[1] then "
                                  "return redis.call('DEL', KEYS[1]) end return 0";

static int key_of(char *out, size_t size, const char *what, int shard)
{
    return gh_key_global(out, size, "gateway", "%s:%d", what, shard);
}

int gh_gwstate_lease(struct gh_redis *r, int shard, const char *owner, char *holder, size_t holder_len)
{
    char key[96], ttl[16];
    redisReply *rep;
    int rc = GH_EREDIS;

    if (key_of(key, sizeof(key), "lease", shard) != GH_OK)
        return GH_EINVAL;
    snprintf(ttl, sizeof(ttl), "%d", GH_GW_LEASE_TTL_MS);
    rep = gh_redis_cmd(r, "EVAL %s 1 %s %s %s", LEASE_LUA, key, owner, ttl);
    if (rep && rep->type == REDIS_REPLY_ARRAY && rep->elements == 2 &&
        rep->element[0]->type == REDIS_REPLY_INTEGER) {
        rc = rep->element[0]->integer == 1 ? 1 : 0;
        if (holder && holder_len) {
            snprintf(holder, holder_len, "%s",
                     rep->element[1]->type == REDIS_REPLY_STRING ? rep->element[1]->str : "?");
        }
    }
    freeReplyObject(rep);
    return rc;
}

int gh_gwstate_lease_release(struct gh_redis *r, int shard, const char *owner)
{
    char key[96];
    redisReply *rep;
    int rc = GH_EREDIS;

    if (key_of(key, sizeof(key), "lease", shard) != GH_OK)
        return GH_EINVAL;
    rep = gh_redis_cmd(r, "EVAL %s 1 %s %s", RELEASE_LUA, key, owner);
    if (rep && rep->type == REDIS_REPLY_INTEGER)
        rc = GH_OK;
    freeReplyObject(rep);
    return rc;
}

int gh_gwstate_session_load(struct gh_redis *r, int shard, struct gh_gw_session *out)
{
    char key[96];
    redisReply *rep;
    int rc = GH_EREDIS;

    if (key_of(key, sizeof(key), "session", shard) != GH_OK)
        return GH_EINVAL;
    rep = gh_redis_cmd(r, "HMGET %s session_id seq resume_url", key);
    if (rep && rep->type == REDIS_REPLY_ARRAY && rep->elements == 3) {
        rc = 0;
        if (rep->element[0]->type == REDIS_REPLY_STRING && rep->element[0]->len > 0 &&
            rep->element[0]->len < sizeof(out->session_id)) {
            memset(out, 0, sizeof(*out));
            snprintf(out->session_id, sizeof(out->session_id), "%s", rep->element[0]->str);
            if (rep->element[1]->type == REDIS_REPLY_STRING)
                out->seq = strtoll(rep->element[1]->str, NULL, 10);
            if (rep->element[2]->type == REDIS_REPLY_STRING)
                snprintf(out->resume_url, sizeof(out->resume_url), "%s", rep->element[2]->str);
            rc = 1;
        }
    }
    freeReplyObject(rep);
    return rc;
}

static int ok_reply(redisReply *rep)
{
    int ok = rep && rep->type != REDIS_REPLY_ERROR;
    freeReplyObject(rep);
    return ok;
}

int gh_gwstate_session_save(struct gh_redis *r, int shard, const struct gh_gw_session *s)
{
    char key[96];
    int ok = 1;

    if (key_of(key, sizeof(key), "session", shard) != GH_OK)
        return GH_EINVAL;
    if (gh_redis_append(r, "HSET %s session_id %s seq %lld resume_url %s", key, s->session_id,
                        (long long)s->seq, s->resume_url) != GH_OK ||
        gh_redis_append(r, "PEXPIRE %s %d", key, GH_GW_SESSION_TTL_MS) != GH_OK)
        ok = 0;
    /* read both replies even after a failure, so the connection stays in step */
    ok &= ok_reply(gh_redis_get_reply(r));
    ok &= ok_reply(gh_redis_get_reply(r));
    return ok ? GH_OK : GH_EREDIS;
}

int gh_gwstate_session_seq(struct gh_redis *r, int shard, int64_t seq)
{
    char key[96];
    int ok = 1;

    if (key_of(key, sizeof(key), "session", shard) != GH_OK)
        return GH_EINVAL;
    if (gh_redis_append(r, "HSET %s seq %lld", key, (long long)seq) != GH_OK ||
        gh_redis_append(r, "PEXPIRE %s %d", key, GH_GW_SESSION_TTL_MS) != GH_OK)
        ok = 0;
    ok &= ok_reply(gh_redis_get_reply(r));
    ok &= ok_reply(gh_redis_get_reply(r));
    return ok ? GH_OK : GH_EREDIS;
}

int gh_gwstate_session_delete(struct gh_redis *r, int shard)
{
    char key[96];

    if (key_of(key, sizeof(key), "session", shard) != GH_OK)
        return GH_EINVAL;
    return ok_reply(gh_redis_cmd(r, "DEL %s", key)) ? GH_OK : GH_EREDIS;
}

int gh_gwstate_identify_lock(struct gh_redis *r, int key_no)
{
    char key[96];
    redisReply *rep;
    int rc = GH_EREDIS;

    if (key_of(key, sizeof(key), "identify", key_no) != GH_OK)
        return GH_EINVAL;
    rep = gh_redis_cmd(r, "SET %s 1 NX PX %d", key, GH_GW_IDENTIFY_LOCK_MS);
    if (rep && rep->type == REDIS_REPLY_STATUS)
        rc = 1;
    else if (rep && rep->type == REDIS_REPLY_NIL)
        rc = 0;
    freeReplyObject(rep);
    return rc;
}

int gh_gwstate_identify_extend(struct gh_redis *r, int key_no, int px_ms)
{
    char key[96];

    if (key_of(key, sizeof(key), "identify", key_no) != GH_OK)
        return GH_EINVAL;
    return ok_reply(gh_redis_cmd(r, "SET %s 1 PX %d", key, px_ms)) ? GH_OK : GH_EREDIS;
}

int gh_gwstate_status(struct gh_redis *r, int shard, const struct gh_gw_field *fields, int n)
{
    char key[96], id[16];
    const char *argv[2 + 2 * 32];
    size_t lens[2 + 2 * 32];
    int argc = 0, ok = 1;

    if (n > 32 || gh_key_global(key, sizeof(key), "shards", "%d", shard) != GH_OK)
        return GH_EINVAL;
    argv[argc++] = "HSET";
    argv[argc++] = key;
    for (int i = 0; i < n; i++) {
        argv[argc++] = fields[i].name;
        argv[argc++] = fields[i].value;
    }
    for (int i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    snprintf(id, sizeof(id), "%d", shard);
    if (!ok_reply(gh_redis_cmdargv(r, argc, argv, lens)))
        return GH_EREDIS;
    if (gh_redis_append(r, "EXPIRE %s %d", key, GH_GW_STATUS_TTL_S) != GH_OK ||
        gh_redis_append(r, "SADD %s %s", "bot:{global}:shards", id) != GH_OK)
        ok = 0;
    for (int i = 0; i < 2; i++)
        ok &= ok_reply(gh_redis_get_reply(r));
    return ok ? GH_OK : GH_EREDIS;
}
