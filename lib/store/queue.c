/* queue.c - the job queue (see queue.h for the keys and the life of a job).
 *
 * Every transition is one Lua script, so a job is in exactly one of ready,
 * delayed, processing or dead at any time (or acked and gone), and its lease
 * and state key move with it:
 *   enqueue   SET seen NX EX + LPUSH ready (or ZADD delayed)
 *   take      promote due delayed -> ready; reap expired leases (processing ->
 *             ready, attempt + 1); adopt lease-less processing jobs; then up
 *             to max LMOVE ready -> processing with a lease and state running
 *   claim     after a BLMOVE: lease + state running
 *   ack       LREM processing, ZREM lease, state done/expired, log entry
 *   fail      LREM processing, ZREM lease, ZADD delayed (retry) or LPUSH dead,
 *             log entry
 * The scripts build the seen:<id> key names from a prefix passed in ARGV:
 * they share the {q<n>} tag with the declared keys, so they stay in one slot.
 * Redis Lua has cjson; it is used only to read a job's id, never to rewrite
 * a job (it would round large numbers in payloads): the reaper bumps
 * "attempt", which every job text starts with, by a string substitution. */
#include "store/queue.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "core/err.h"
#include "core/str.h"
#include "core/timeutil.h"
#include "store/redis.h"

_Static_assert(GH_QUEUE_SEEN_TTL_S == 86400, "GH_QUEUE_SEEN_TTL_STR is its text");

#define QUEUE_KEY_MAX 256
#define QUEUE_ERROR_MAX 1000
#define QUEUE_DEAD_MAX 10000
#define QUEUE_SWEEP_MAX 200 /* delayed jobs promoted and leases reaped per poll */
#define QUEUE_SWEEP_MAX_STR "200"
#define GH_QUEUE_SEEN_TTL_STR "86400" /* GH_QUEUE_SEEN_TTL_S */

/* KEYS[1] seen, KEYS[2] ready, KEYS[3] delayed; ARGV[1] job, ARGV[2] ttl,
 * ARGV[3] due ms (0 = ready now). 1 queued, 0 duplicate. */
static const char ENQUEUE_LUA[] =
    "if not redis.call('SET', KEYS[1], 'queued', 'NX', 'EX', ARGV[2]) then return 0 end "
    "if tonumber(ARGV[3]) > 0 then redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1]) "
    "else redis.call('LPUSH', KEYS[2], ARGV[1]) end return 1";

/* KEYS[1] ready, [2] processing, [3] delayed, [4] leases, [5] log; ARGV[1]
 * now ms, [2] lease ms, [3] max to take (0: acks only), [4] seen key prefix,
 * [5] state ttl, [6] sweep limit, [7] number of acks, then 4 per ack: raw,
 * id, final state, log entry ('' = none). The acks run first (as ACK_LUA,
 * one each). Returns {jobs, next due ms or -1, promoted, reaped, acked}. */
static const char TAKE_LUA[] =
    "local acked = 0 "
    "for i = 0, tonumber(ARGV[7]) - 1 do local b = 8 + 4 * i "
    "  if ARGV[b + 3] ~= '' then redis.call('LPUSH', KEYS[5], ARGV[b + 3]) end "
    "  if redis.call('LREM', KEYS[2], 1, ARGV[b]) > 0 then redis.call('ZREM', KEYS[4], ARGV[b + 1]) "
    "    redis.call('SET', ARGV[4] .. ARGV[b + 1], ARGV[b + 2], 'EX', ARGV[5]) acked = acked + 1 end end "
    "local now = tonumber(ARGV[1]) local lease = tonumber(ARGV[2]) local lim = tonumber(ARGV[6]) "
    "local function jid(raw) local ok, j = pcall(cjson.decode, raw) "
    "  if ok and type(j) == 'table' and type(j.id) == 'string' then return j.id end return nil end "
    "local due = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, lim) "
    "for i = 1, #due do redis.call('ZREM', KEYS[3], due[i]) redis.call('LPUSH', KEYS[1], due[i]) end "
    "local reaped = 0 "
    "local exp = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', now, 'LIMIT', 0, lim) "
    "local plen = redis.call('LLEN', KEYS[2]) "
    "if #exp > 0 or plen > redis.call('ZCARD', KEYS[4]) then "
    "  local want = {} for i = 1, #exp do want[exp[i]] = true end "
    "  local items = redis.call('LRANGE', KEYS[2], 0, -1) "
    "  for i = 1, #items do local raw = items[i] local id = jid(raw) "
    "    if id and want[id] then "
    "      redis.call('LREM', KEYS[2], 1, raw) "
    "      local n = string.match(raw, '^{\"attempt\":(%d+),') "
    "      if n then raw = '{\"attempt\":' .. (tonumber(n) + 1) .. ',' .. string.sub(raw, #n + 13) end "
    "      redis.call('RPUSH', KEYS[1], raw) "
    "      redis.call('SET', ARGV[4] .. id, 'queued', 'EX', ARGV[5]) reaped = reaped + 1 "
    "    elseif id and not redis.call('ZSCORE', KEYS[4], id) then "
    "      redis.call('ZADD', KEYS[4], now + lease, id) end end "
    "  for i = 1, #exp do redis.call('ZREM', KEYS[4], exp[i]) end end "
    "local out = {} "
    "for i = 1, tonumber(ARGV[3]) do "
    "  local raw = redis.call('LMOVE', KEYS[1], KEYS[2], 'RIGHT', 'LEFT') "
    "  if not raw then break end local id = jid(raw) "
    "  if id then redis.call('ZADD', KEYS[4], now + lease, id) "
    "    redis.call('SET', ARGV[4] .. id, 'running', 'EX', ARGV[5]) end "
    "  out[#out + 1] = raw end "
    "local nx = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES') "
    "return {out, nx[2] or '-1', #due, reaped, acked}";

/* KEYS[1] leases, KEYS[2] seen; ARGV[1] expiry, ARGV[2] id, ARGV[3] ttl. */
static const char CLAIM_LUA[] = "redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2]) "
                                "redis.call('SET', KEYS[2], 'running', 'EX', ARGV[3]) return 1";

/* KEYS[1] processing, [2] leases, [3] seen, [4] log; ARGV[1] raw, [2] id,
 * [3] ttl, [4] log entry ('' = none), [5] state. 1 acked, 0 not in processing. */
static const char ACK_LUA[] = "if ARGV[4] ~= '' then redis.call('LPUSH', KEYS[4], ARGV[4]) end "
                              "if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then return 0 end "
                              "redis.call('ZREM', KEYS[2], ARGV[2]) "
                              "redis.call('SET', KEYS[3], ARGV[5], 'EX', ARGV[3]) return 1";

/* KEYS[1] processing, [2] leases, [3] seen, [4] log, [5] destination (delayed
 * zset or dead list); ARGV[1] raw, [2] id, [3] ttl, [4] log entry, [5] new
 * entry, [6] 'retry' or 'dead', [7] due ms (retry) or cap (dead). */
static const char FAIL_LUA[] =
    "if ARGV[4] ~= '' then redis.call('LPUSH', KEYS[4], ARGV[4]) end "
    "if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then return 0 end "
    "redis.call('ZREM', KEYS[2], ARGV[2]) "
    "if ARGV[6] == 'retry' then redis.call('ZADD', KEYS[5], ARGV[7], ARGV[5]) "
    "  redis.call('SET', KEYS[3], 'queued', 'EX', ARGV[3]) "
    "else redis.call('LPUSH', KEYS[5], ARGV[5]) redis.call('LTRIM', KEYS[5], 0, tonumber(ARGV[7]) - 1) "
    "  redis.call('SET', KEYS[3], 'dead', 'EX', ARGV[3]) end return 1";

/* KEYS[1] processing, KEYS[2] dead; ARGV[1] raw (malformed), ARGV[2] entry. */
static const char BURY_LUA[] = "if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then return 0 end "
                               "redis.call('LPUSH', KEYS[2], ARGV[2]) "
                               "redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[3]) - 1) return 1";

/* KEYS[1] processing, [2] leases, [3] ready, [4] seen; ARGV[1] raw, [2] id, [3] ttl. */
static const char RELEASE_LUA[] =
    "if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then return 0 end "
    "redis.call('ZREM', KEYS[2], ARGV[2]) redis.call('RPUSH', KEYS[3], ARGV[1]) "
    "redis.call('SET', KEYS[4], 'queued', 'EX', ARGV[3]) return 1";

/* KEYS[1] leases; ARGV[1] expiry, ARGV[2] id. 1 renewed, 0 lost. */
static const char RENEW_LUA[] = "if not redis.call('ZSCORE', KEYS[1], ARGV[2]) then return 0 end "
                                "redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2]) return 1";

/* KEYS[1] dead, KEYS[2] ready, KEYS[3] seen; ARGV[1] dead entry, ARGV[2] job,
 * ARGV[3] ttl. 1 moved, 0 the entry is gone. */
static const char REVIVE_LUA[] = "if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then return 0 end "
                                 "redis.call('LPUSH', KEYS[2], ARGV[2]) "
                                 "redis.call('SET', KEYS[3], 'queued', 'EX', ARGV[3]) return 1";

int gh_queue_partition(const char *queue)
{
    uint32_t h = 2166136261u;
    const unsigned char *p = (const unsigned char *)(queue ? queue : "");

    for (; *p; p++) {
        h ^= *p;
        h *= 16777619u;
    }
    return (int)(h % GH_QUEUE_PARTITIONS);
}

int gh_queue_name_ok(const char *q)
{
    size_t i;

    if (!q || !*q)
        return 0;
    for (i = 0; q[i]; i++)
        if (i >= 64 ||
            !((q[i] >= 'a' && q[i] <= 'z') || (q[i] >= '0' && q[i] <= '9') || q[i] == '_' || q[i] == '-'))
            return 0;
    return 1;
}

static int valid_id(const char *id, size_t max)
{
    size_t i;

    if (!id || !*id)
        return 0;
    for (i = 0; id[i]; i++)
        if (i + 1 >= max || (unsigned char)id[i] <= ' ' || id[i] == 0x7f || id[i] == '"' || id[i] == '\\')
            return 0;
    return 1;
}

int gh_queue_key(char *out, size_t size, const char *queue, const char *suffix)
{
    return gh_key_queue(out, size, gh_queue_partition(queue), queue, suffix);
}

static int qkey(char *out, const char *queue, const char *suffix)
{
    return gh_queue_key(out, QUEUE_KEY_MAX, queue, suffix);
}

static int seen_key(char *out, const char *queue, const char *id)
{
    char suffix[200];

    if (gh_snprintf(suffix, sizeof(suffix), "seen:%s", id) != GH_OK)
        return GH_ETOOBIG;
    return qkey(out, queue, suffix);
}

/* ---- scripts ------------------------------------------------------------- */

/* A script is sent by its SHA1 (EVALSHA), so neither side handles its text
 * per call; the SHA comes from SCRIPT LOAD on first use, and a server that
 * does not know it (restarted, flushed, another server) gets EVAL with the
 * text, which caches it again. */
struct script {
    const char *text;
    char sha[48]; /* "" until loaded */
};

static struct script take_script_s = {TAKE_LUA, ""};
static struct script ack_script_s = {ACK_LUA, ""};
static struct script claim_script_s = {CLAIM_LUA, ""};
static struct script enqueue_script_s = {ENQUEUE_LUA, ""};
static struct script fail_script_s = {FAIL_LUA, ""};

#define SCRIPT_ARGS_MAX (8 + 4 * GH_QUEUE_TAKE_MAX + 16)

static void script_load(struct gh_redis *r, struct script *s)
{
    redisReply *rep = gh_redis_cmd(r, "SCRIPT LOAD %s", s->text);

    if (rep && rep->type == REDIS_REPLY_STRING && rep->len < sizeof(s->sha))
        memcpy(s->sha, rep->str, rep->len + 1);
    freeReplyObject(rep);
}

/* Runs script s with args (numkeys, keys..., argv...), argc of them at most
 * SCRIPT_ARGS_MAX. lens NULL: the args are C strings. NULL when Redis fails. */
static redisReply *script_run(struct gh_redis *r, struct script *s, int argc, const char *const *args,
                              const size_t *lens)
{
    const char *argv[SCRIPT_ARGS_MAX + 2];
    size_t argl[SCRIPT_ARGS_MAX + 2];
    redisReply *rep;

    if (argc < 1 || argc > SCRIPT_ARGS_MAX)
        return NULL;
    for (int i = 0; i < argc; i++) {
        argv[i + 2] = args[i];
        argl[i + 2] = lens ? lens[i] : strlen(args[i]);
    }
    if (!s->sha[0])
        script_load(r, s);
    if (s->sha[0]) {
        argv[0] = "EVALSHA";
        argv[1] = s->sha;
        argl[0] = 7;
        argl[1] = strlen(s->sha);
        rep = gh_redis_cmdargv(r, argc + 2, argv, argl);
        if (!rep || rep->type != REDIS_REPLY_ERROR || strncmp(rep->str, "NOSCRIPT", 8) != 0)
            return rep;
        freeReplyObject(rep); /* the server lost it: EVAL caches it again */
    }
    argv[0] = "EVAL";
    argv[1] = s->text;
    argl[0] = 4;
    argl[1] = strlen(s->text);
    return gh_redis_cmdargv(r, argc + 2, argv, argl);
}

void gh_job_cleanup(struct gh_job *job)
{
    if (!job)
        return;
    json_object_put(job->payload);
    free(job->raw);
    memset(job, 0, sizeof(*job));
}

int gh_job_expired(const struct gh_job *job, int64_t now_ms)
{
    return job && job->deadline_ms > 0 && now_ms >= job->deadline_ms;
}

/* ---- serialisation ------------------------------------------------------- */

static void set_guild(json_object *o, uint64_t guild_id)
{
    char g[24];

    if (guild_id == 0) {
        json_object_object_add(o, "guild", NULL);
        return;
    }
    snprintf(g, sizeof(g), "%llu", (unsigned long long)guild_id);
    json_object_object_add(o, "guild", json_object_new_string(g));
}

static int get_i64(json_object *o, const char *name, int64_t *out)
{
    json_object *v;

    *out = 0;
    if (!json_object_object_get_ex(o, name, &v) || v == NULL)
        return GH_OK;
    if (!json_object_is_type(v, json_type_int))
        return GH_EJSON;
    *out = json_object_get_int64(v);
    return GH_OK;
}

static int get_str(json_object *o, const char *name, char *out, size_t size)
{
    json_object *v;

    if (!json_object_object_get_ex(o, name, &v) || !json_object_is_type(v, json_type_string))
        return GH_EJSON;
    if (gh_snprintf(out, size, "%s", json_object_get_string(v)) != GH_OK || !*out)
        return GH_EJSON;
    return GH_OK;
}

static int parse_job(const char *raw, struct gh_job *job)
{
    json_object *root = raw ? json_tokener_parse(raw) : NULL;
    json_object *v = NULL;
    int64_t attempt = 0;
    int rc = GH_EJSON;

    memset(job, 0, sizeof(*job));
    if (!root || !json_object_is_type(root, json_type_object))
        goto out;
    if (get_str(root, "id", job->id, sizeof(job->id)) || get_str(root, "kind", job->kind, sizeof(job->kind)))
        goto out;
    if (json_object_object_get_ex(root, "guild", &v) && v) {
        if (json_object_is_type(v, json_type_string)) {
            if (gh_cstr_to_u64(json_object_get_string(v), &job->guild_id) != GH_OK)
                goto out;
        } else if (json_object_is_type(v, json_type_int) && json_object_get_int64(v) >= 0) {
            job->guild_id = (uint64_t)json_object_get_int64(v);
        } else {
            goto out;
        }
    }
    if (get_i64(root, "deadline_ms", &job->deadline_ms) || get_i64(root, "enqueued_ms", &job->enqueued_ms) ||
        get_i64(root, "due_ms", &job->due_ms) || get_i64(root, "attempt", &attempt))
        goto out;
    job->attempt = attempt > 0 && attempt < 1000000 ? (int)attempt : 1;
    if (json_object_object_get_ex(root, "payload", &v))
        job->payload = json_object_get(v);
    job->raw = strdup(raw);
    if (!job->raw)
        goto out;
    rc = GH_OK;
out:
    json_object_put(root);
    if (rc != GH_OK)
        gh_job_cleanup(job);
    return rc;
}

/* ---- enqueue ------------------------------------------------------------- */

static json_object *new_job(const char *id, const char *kind, uint64_t guild_id, json_object *payload,
                            int64_t deadline_ms, int64_t now, int64_t due_ms)
{
    json_object *job = json_object_new_object();
    if (!job)
        return NULL;
    /* "attempt" first: the reaper script rewrites it in place. */
    json_object_object_add(job, "attempt", json_object_new_int(1));
    json_object_object_add(job, "id", json_object_new_string(id));
    json_object_object_add(job, "kind", json_object_new_string(kind));
    set_guild(job, guild_id);
    json_object_object_add(job, "payload", json_object_get(payload));
    json_object_object_add(job, "deadline_ms", json_object_new_int64(deadline_ms));
    json_object_object_add(job, "enqueued_ms", json_object_new_int64(now));
    json_object_object_add(job, "due_ms", json_object_new_int64(due_ms));
    return job;
}

int gh_queue_enqueue_at(struct gh_redis *r, const char *queue, const char *id, const char *kind,
                        uint64_t guild_id, json_object *payload, int64_t deadline_ms, int64_t due_ms)
{
    char seen[QUEUE_KEY_MAX], ready[QUEUE_KEY_MAX], delayed[QUEUE_KEY_MAX], due[24], ttl_s[24];
    json_object *job = NULL;
    redisReply *rep = NULL;
    int64_t now = gh_now_ms(), ttl = GH_QUEUE_SEEN_TTL_S;
    int rc = GH_EINVAL;

    if (!r || !gh_queue_name_ok(queue) || !valid_id(id, sizeof(((struct gh_job *)0)->id)) ||
        !valid_id(kind, sizeof(((struct gh_job *)0)->kind)) || deadline_ms < 0 || due_ms < 0)
        return GH_EINVAL;
    if (seen_key(seen, queue, id) != GH_OK || qkey(ready, queue, "ready") != GH_OK ||
        qkey(delayed, queue, "delayed") != GH_OK)
        return GH_ETOOBIG;
    if (due_ms <= now)
        due_ms = 0;
    else
        ttl += (due_ms - now) / 1000 + 1; /* the id stays taken while it waits */
    job = new_job(id, kind, guild_id, payload, deadline_ms, now, due_ms);
    if (!job)
        return GH_ENOMEM;
    snprintf(due, sizeof(due), "%" PRId64, due_ms);

    snprintf(ttl_s, sizeof(ttl_s), "%" PRId64, ttl);
    {
        const char *args[] = {
            "3",   seen, ready, delayed, json_object_to_json_string_ext(job, JSON_C_TO_STRING_PLAIN),
            ttl_s, due};
        rep = script_run(r, &enqueue_script_s, (int)(sizeof(args) / sizeof(args[0])), args, NULL);
    }
    if (!rep || rep->type != REDIS_REPLY_INTEGER) {
        rc = GH_EREDIS;
        goto out;
    }
    rc = rep->integer == 1 ? GH_OK : GH_EDUPLICATE;
out:
    freeReplyObject(rep);
    json_object_put(job);
    return rc;
}

#define RC_NOSCRIPT 1 /* gh_queue_enqueue_many: sent again with EVAL */

int gh_queue_enqueue_many(struct gh_redis *r, const char *queue, struct gh_queue_new *jobs, int n)
{
    char ready[QUEUE_KEY_MAX], delayed[QUEUE_KEY_MAX], ttl_s[24];
    int64_t now = gh_now_ms();
    int sent = 0, rc = GH_OK;

    if (!r || !gh_queue_name_ok(queue) || n < 0 || (n > 0 && !jobs))
        return GH_EINVAL;
    if (qkey(ready, queue, "ready") != GH_OK || qkey(delayed, queue, "delayed") != GH_OK)
        return GH_ETOOBIG;
    snprintf(ttl_s, sizeof(ttl_s), "%d", GH_QUEUE_SEEN_TTL_S);
    for (int i = 0; i < n; i++)
        jobs[i].rc = GH_EINVAL;
    if (!enqueue_script_s.sha[0])
        script_load(r, &enqueue_script_s);
    if (!enqueue_script_s.sha[0]) {
        for (int i = 0; i < n; i++)
            jobs[i].rc = GH_EREDIS;
        return n > 0 ? GH_EREDIS : GH_OK;
    }
    for (int i = 0; i < n; i++) {
        struct gh_queue_new *j = &jobs[i];
        char seen[QUEUE_KEY_MAX];
        json_object *job;
        if (!valid_id(j->id, sizeof(((struct gh_job *)0)->id)) ||
            !valid_id(j->kind, sizeof(((struct gh_job *)0)->kind)) || j->deadline_ms < 0)
            continue;
        if (seen_key(seen, queue, j->id) != GH_OK) {
            j->rc = GH_ETOOBIG;
            continue;
        }
        job = new_job(j->id, j->kind, j->guild_id, j->payload, j->deadline_ms, now, 0);
        if (!job) {
            j->rc = GH_ENOMEM;
            continue;
        }
        (void)gh_redis_append(r, "EVALSHA %s 3 %s %s %s %s %s 0", enqueue_script_s.sha, seen, ready, delayed,
                              json_object_to_json_string_ext(job, JSON_C_TO_STRING_PLAIN), ttl_s);
        json_object_put(job);
        j->rc = GH_EREDIS; /* until its reply says otherwise */
        sent++;
    }
    for (int i = 0; i < n && sent > 0; i++) {
        struct gh_queue_new *j = &jobs[i];
        redisReply *rep;
        if (j->rc != GH_EREDIS)
            continue;
        rep = gh_redis_get_reply(r);
        sent--;
        if (rep && rep->type == REDIS_REPLY_INTEGER)
            j->rc = rep->integer == 1 ? GH_OK : GH_EDUPLICATE;
        else if (rep && rep->type == REDIS_REPLY_ERROR && strncmp(rep->str, "NOSCRIPT", 8) == 0)
            j->rc = RC_NOSCRIPT; /* the server lost the script: sent again below */
        freeReplyObject(rep);
    }
    for (int i = 0; i < n; i++) {
        if (jobs[i].rc == RC_NOSCRIPT) {
            enqueue_script_s.sha[0] = '\0';
            jobs[i].rc = gh_queue_enqueue_at(r, queue, jobs[i].id, jobs[i].kind, jobs[i].guild_id,
                                             jobs[i].payload, jobs[i].deadline_ms, 0);
        }
        if (jobs[i].rc != GH_OK && jobs[i].rc != GH_EDUPLICATE && rc == GH_OK)
            rc = jobs[i].rc;
    }
    return rc;
}

int gh_queue_enqueue(struct gh_redis *r, const char *queue, const char *id, const char *kind,
                     uint64_t guild_id, json_object *payload, int64_t deadline_ms)
{
    return gh_queue_enqueue_at(r, queue, id, kind, guild_id, payload, deadline_ms, 0);
}

/* ---- taking -------------------------------------------------------------- */

/* Moves raw from processing to the dead list with error (a malformed job). */
static int bury_raw(struct gh_redis *r, const char *queue, const char *raw, const char *error)
{
    char processing[QUEUE_KEY_MAX], dead[QUEUE_KEY_MAX];
    json_object *entry = json_object_new_object();
    redisReply *rep;
    int rc;

    if (!entry)
        return GH_ENOMEM;
    if (qkey(processing, queue, "processing") != GH_OK || qkey(dead, queue, "dead") != GH_OK) {
        json_object_put(entry);
        return GH_ETOOBIG;
    }
    json_object_object_add(entry, "raw", json_object_new_string(raw));
    json_object_object_add(entry, "error", json_object_new_string(error));
    json_object_object_add(entry, "failed_ms", json_object_new_int64(gh_now_ms()));
    rep = gh_redis_cmd(r, "EVAL %s 2 %s %s %s %s %d", BURY_LUA, processing, dead, raw,
                       json_object_to_json_string_ext(entry, JSON_C_TO_STRING_PLAIN), QUEUE_DEAD_MAX);
    rc = rep && rep->type == REDIS_REPLY_INTEGER ? GH_OK : GH_EREDIS;
    freeReplyObject(rep);
    json_object_put(entry);
    return rc;
}

/* Parses a taken job into jobs[*n] (incrementing *n), or buries it. */
static int accept_raw(struct gh_redis *r, const char *queue, const char *raw, int64_t now,
                      struct gh_job *jobs, int *n)
{
    if (!jobs || !n)
        return GH_EINVAL;
    if (parse_job(raw, &jobs[*n]) != GH_OK) {
        bury_raw(r, queue, raw, "malformed job");
        return GH_EJSON;
    }
    jobs[*n].taken_ms = now;
    (*n)++;
    return GH_OK;
}

/* BLMOVE for up to wait_ms, then the claim. GH_OK (one job), GH_ENOTFOUND,
 * GH_EJSON (malformed: buried), GH_EREDIS. */
static int block_one(struct gh_redis *r, const char *queue, int wait_ms, int lease_ms, struct gh_job *jobs,
                     int *n)
{
    char ready[QUEUE_KEY_MAX], processing[QUEUE_KEY_MAX], leases[QUEUE_KEY_MAX], seen[QUEUE_KEY_MAX];
    char secs[24], exp[24];
    redisReply *rep = NULL, *c = NULL;
    int64_t now;
    int rc;

    if (qkey(ready, queue, "ready") != GH_OK || qkey(processing, queue, "processing") != GH_OK ||
        qkey(leases, queue, "leases") != GH_OK)
        return GH_ETOOBIG;
    snprintf(secs, sizeof(secs), "%d.%03d", wait_ms / 1000, wait_ms % 1000);
    /* the socket waits a little longer than the server blocks */
    rep = gh_redis_cmd_timeout(r, wait_ms + 2000, "BLMOVE %s %s RIGHT LEFT %s", ready, processing, secs);
    if (!rep || rep->type == REDIS_REPLY_ERROR) {
        rc = GH_EREDIS;
        goto out;
    }
    if (rep->type == REDIS_REPLY_NIL) {
        rc = GH_ENOTFOUND;
        goto out;
    }
    if (rep->type != REDIS_REPLY_STRING) {
        rc = GH_EREDIS;
        goto out;
    }
    now = gh_now_ms();
    rc = accept_raw(r, queue, rep->str, now, jobs, n);
    if (rc != GH_OK)
        goto out;
    /* If this fails, the job sits in processing without a lease: the next
     * take adopts it with one, and reaps it when that expires. */
    snprintf(exp, sizeof(exp), "%" PRId64, now + lease_ms);
    if (seen_key(seen, queue, jobs[*n - 1].id) == GH_OK) {
        const char *args[] = {"2", leases, seen, exp, jobs[*n - 1].id, GH_QUEUE_SEEN_TTL_STR};
        c = script_run(r, &claim_script_s, (int)(sizeof(args) / sizeof(args[0])), args, NULL);
    }
    if (!c || c->type != REDIS_REPLY_INTEGER) {
        gh_job_cleanup(&jobs[--(*n)]);
        rc = GH_EREDIS;
    }
out:
    freeReplyObject(c);
    freeReplyObject(rep);
    return rc;
}

/* One run of the take script, with the deferred acks (acks may be NULL;
 * emptied when the script ran). GH_OK (*n >= 1), GH_ENOTFOUND, GH_EJSON
 * (only malformed jobs: buried), GH_EREDIS. *next_due: the next delayed
 * job's due time, -1 when none. *acked: acks that found their job. */
static int take_script(struct gh_redis *r, const char *queue, int lease_ms, int max,
                       struct gh_queue_acks *acks, struct gh_job *jobs, int *n, int64_t *next_due, int *acked)
{
    char ready[QUEUE_KEY_MAX], processing[QUEUE_KEY_MAX], delayed[QUEUE_KEY_MAX], leases[QUEUE_KEY_MAX];
    char logk[QUEUE_KEY_MAX], prefix[QUEUE_KEY_MAX], now_s[24], lease_s[16], max_s[16], nack_s[16];
    const char *args[SCRIPT_ARGS_MAX];
    redisReply *rep = NULL;
    int64_t now;
    int rc = GH_EREDIS, bad = 0, argc = 0, nack = acks ? acks->n : 0;

    *next_due = -1;
    *acked = 0;
    if (qkey(ready, queue, "ready") != GH_OK || qkey(processing, queue, "processing") != GH_OK ||
        qkey(delayed, queue, "delayed") != GH_OK || qkey(leases, queue, "leases") != GH_OK ||
        qkey(logk, queue, "log") != GH_OK || qkey(prefix, queue, "seen:") != GH_OK)
        return GH_ETOOBIG;
    now = gh_now_ms();
    snprintf(now_s, sizeof(now_s), "%" PRId64, now);
    snprintf(lease_s, sizeof(lease_s), "%d", lease_ms);
    snprintf(max_s, sizeof(max_s), "%d", max);
    snprintf(nack_s, sizeof(nack_s), "%d", nack);
    args[argc++] = "5";
    args[argc++] = ready;
    args[argc++] = processing;
    args[argc++] = delayed;
    args[argc++] = leases;
    args[argc++] = logk;
    args[argc++] = now_s;
    args[argc++] = lease_s;
    args[argc++] = max_s;
    args[argc++] = prefix;
    args[argc++] = GH_QUEUE_SEEN_TTL_STR;
    args[argc++] = QUEUE_SWEEP_MAX_STR;
    args[argc++] = nack_s;
    for (int i = 0; i < nack; i++) {
        args[argc++] = acks->item[i].raw;
        args[argc++] = acks->item[i].id;
        args[argc++] = acks->item[i].state;
        args[argc++] = acks->item[i].entry ? acks->item[i].entry : "";
    }
    rep = script_run(r, &take_script_s, argc, args, NULL);
    if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements < 5 ||
        rep->element[0]->type != REDIS_REPLY_ARRAY)
        goto out;
    if (acks) /* the script ran, so the acks did */
        gh_queue_acks_cleanup(acks);
    if (rep->element[4]->type == REDIS_REPLY_INTEGER)
        *acked = (int)rep->element[4]->integer;
    for (size_t i = 0; i < rep->element[0]->elements; i++) {
        const redisReply *e = rep->element[0]->element[i];
        if (e->type == REDIS_REPLY_STRING && accept_raw(r, queue, e->str, now, jobs, n) != GH_OK)
            bad++;
    }
    if (rep->element[1]->type == REDIS_REPLY_STRING)
        *next_due = strtoll(rep->element[1]->str, NULL, 10);
    rc = *n > 0 ? GH_OK : bad > 0 ? GH_EJSON : GH_ENOTFOUND;
out:
    freeReplyObject(rep);
    return rc;
}

int gh_queue_take(struct gh_redis *r, const char *queue, const struct gh_queue_poll *p, struct gh_job *jobs,
                  int *n)
{
    int64_t next_due = -1, give_up;
    int lease_ms, max, rc, acked = 0;

    if (!r || !gh_queue_name_ok(queue) || !p || !jobs || !n || p->max < 0 || p->max > GH_QUEUE_TAKE_MAX ||
        p->wait_ms < 0 || p->wait_ms > 3600000 || p->lease_ms < 0)
        return GH_EINVAL;
    *n = 0;
    lease_ms = p->lease_ms > 0 ? p->lease_ms : GH_QUEUE_DEFAULT_LEASE_MS;
    max = p->max > 0 ? p->max : 1;
    give_up = gh_mono_ms() + p->wait_ms;
    for (;;) {
        int64_t left;
        int wait_ms;

        rc = take_script(r, queue, lease_ms, max, p->acks, jobs, n, &next_due, &acked);
        if (p->acks_done)
            *p->acks_done += acked;
        if (rc != GH_ENOTFOUND)
            return rc;
        left = give_up - gh_mono_ms();
        if (left <= 0)
            return GH_ENOTFOUND;
        /* Nothing ready: block, but wake for the next delayed job, then take again. */
        wait_ms = (int)left;
        if (next_due >= 0) {
            int64_t until = next_due - gh_now_ms();
            if (until < wait_ms)
                wait_ms = until < 10 ? 10 : (int)until;
        }
        rc = block_one(r, queue, wait_ms, lease_ms, jobs, n);
        if (rc != GH_ENOTFOUND)
            return rc;
    }
}

int gh_queue_pop(struct gh_redis *r, const char *queue, int timeout_s, struct gh_job *job)
{
    struct gh_queue_poll p = {.lease_ms = 0, .max = 1, .wait_ms = timeout_s * 1000};
    int n = 0;

    if (!job || timeout_s < 0 || timeout_s > 3600)
        return GH_EINVAL;
    memset(job, 0, sizeof(*job));
    return gh_queue_take(r, queue, &p, job, &n);
}

/* ---- outcomes ------------------------------------------------------------ */

int gh_queue_ack_ex(struct gh_redis *r, const char *queue, const struct gh_job *job, const char *final_state,
                    const char *log_entry)
{
    char processing[QUEUE_KEY_MAX], leases[QUEUE_KEY_MAX], seen[QUEUE_KEY_MAX], logk[QUEUE_KEY_MAX];
    redisReply *rep;
    int rc;

    if (!r || !gh_queue_name_ok(queue) || !job || !job->raw)
        return GH_EINVAL;
    if (qkey(processing, queue, "processing") != GH_OK || qkey(leases, queue, "leases") != GH_OK ||
        seen_key(seen, queue, job->id) != GH_OK || qkey(logk, queue, "log") != GH_OK)
        return GH_ETOOBIG;
    {
        const char *args[] = {"4",
                              processing,
                              leases,
                              seen,
                              logk,
                              job->raw,
                              job->id,
                              GH_QUEUE_SEEN_TTL_STR,
                              log_entry ? log_entry : "",
                              final_state ? final_state : "done"};
        rep = script_run(r, &ack_script_s, (int)(sizeof(args) / sizeof(args[0])), args, NULL);
    }
    if (!rep || rep->type != REDIS_REPLY_INTEGER)
        rc = GH_EREDIS;
    else
        rc = rep->integer > 0 ? GH_OK : GH_ENOTFOUND;
    freeReplyObject(rep);
    return rc;
}

int gh_queue_ack(struct gh_redis *r, const char *queue, const struct gh_job *job)
{
    return gh_queue_ack_ex(r, queue, job, "done", NULL);
}

int gh_queue_ack_defer(struct gh_queue_acks *a, const struct gh_job *job, const char *final_state,
                       const char *log_entry)
{
    struct gh_queue_ack_item *it;

    if (!a || !job || !job->raw || !job->id[0])
        return GH_EINVAL;
    if (a->n >= GH_QUEUE_TAKE_MAX)
        return GH_ETOOBIG;
    it = &a->item[a->n];
    memset(it, 0, sizeof(*it));
    if (gh_snprintf(it->id, sizeof(it->id), "%s", job->id) != GH_OK ||
        gh_snprintf(it->state, sizeof(it->state), "%s", final_state ? final_state : "done") != GH_OK)
        return GH_EINVAL;
    it->raw = strdup(job->raw);
    it->entry = log_entry ? strdup(log_entry) : NULL;
    if (!it->raw || (log_entry && !it->entry)) {
        free(it->raw);
        free(it->entry);
        memset(it, 0, sizeof(*it));
        return GH_ENOMEM;
    }
    a->n++;
    return GH_OK;
}

int gh_queue_ack_flush(struct gh_redis *r, const char *queue, struct gh_queue_acks *a, int *acked)
{
    int64_t next_due;
    int n = 0, done = 0, rc;

    if (acked)
        *acked = 0;
    if (!r || !gh_queue_name_ok(queue) || !a)
        return GH_EINVAL;
    if (a->n == 0)
        return GH_OK;
    rc = take_script(r, queue, GH_QUEUE_DEFAULT_LEASE_MS, 0, a, NULL, &n, &next_due, &done);
    if (acked)
        *acked = done;
    return rc == GH_EREDIS || rc == GH_ETOOBIG ? rc : GH_OK;
}

void gh_queue_acks_cleanup(struct gh_queue_acks *a)
{
    if (!a)
        return;
    for (int i = 0; i < a->n; i++) {
        free(a->item[i].raw);
        free(a->item[i].entry);
    }
    a->n = 0;
}

static uint64_t rnd64(void)
{
    uint64_t v = 0;

    if (getrandom(&v, sizeof(v), GRND_NONBLOCK) != (ssize_t)sizeof(v))
        v = (uint64_t)gh_mono_ms() * 6364136223846793005ULL + 1442695040888963407ULL;
    return v;
}

int gh_queue_backoff_ms(int base_ms, int attempt)
{
    int64_t d;

    if (base_ms <= 0)
        base_ms = GH_QUEUE_BACKOFF_BASE_MS;
    if (attempt < 1)
        attempt = 1;
    d = base_ms;
    for (int i = 1; i < attempt && d < GH_QUEUE_BACKOFF_CAP_MS; i++)
        d *= 2;
    if (d > GH_QUEUE_BACKOFF_CAP_MS)
        d = GH_QUEUE_BACKOFF_CAP_MS;
    return (int)(d / 2 + (int64_t)(rnd64() % (uint64_t)(d / 2 + 1)));
}

int gh_queue_fail_ex(struct gh_redis *r, const char *queue, const struct gh_job *job, int max_attempts,
                     int backoff_base_ms, const char *error, const char *log_entry, int64_t *retry_at_ms)
{
    char processing[QUEUE_KEY_MAX], leases[QUEUE_KEY_MAX], seen[QUEUE_KEY_MAX], logk[QUEUE_KEY_MAX];
    char dest[QUEUE_KEY_MAX], err[QUEUE_ERROR_MAX + 1], arg7[24];
    json_object *entry = NULL;
    redisReply *rep = NULL;
    int64_t now = gh_now_ms(), due = 0;
    int retry, rc = GH_EINVAL;

    if (retry_at_ms)
        *retry_at_ms = 0;
    if (!r || !gh_queue_name_ok(queue) || !job || !job->raw || max_attempts < 1)
        return GH_EINVAL;
    snprintf(err, sizeof(err), "%s", error ? error : "failed");
    entry = json_tokener_parse(job->raw);
    if (!entry || !json_object_is_type(entry, json_type_object))
        goto out;
    retry = job->attempt < max_attempts;
    if (qkey(processing, queue, "processing") != GH_OK || qkey(leases, queue, "leases") != GH_OK ||
        seen_key(seen, queue, job->id) != GH_OK || qkey(logk, queue, "log") != GH_OK ||
        qkey(dest, queue, retry ? "delayed" : "dead") != GH_OK) {
        rc = GH_ETOOBIG;
        goto out;
    }
    if (retry) {
        due = now + gh_queue_backoff_ms(backoff_base_ms, job->attempt);
        json_object_object_add(entry, "attempt", json_object_new_int(job->attempt + 1));
        json_object_object_add(entry, "due_ms", json_object_new_int64(due));
        json_object_object_add(entry, "last_error", json_object_new_string(err));
        snprintf(arg7, sizeof(arg7), "%" PRId64, due);
    } else {
        json_object_object_add(entry, "error", json_object_new_string(err));
        json_object_object_add(entry, "failed_ms", json_object_new_int64(now));
        snprintf(arg7, sizeof(arg7), "%d", QUEUE_DEAD_MAX);
    }
    {
        const char *args[] = {"5",
                              processing,
                              leases,
                              seen,
                              logk,
                              dest,
                              job->raw,
                              job->id,
                              GH_QUEUE_SEEN_TTL_STR,
                              log_entry ? log_entry : "",
                              json_object_to_json_string_ext(entry, JSON_C_TO_STRING_PLAIN),
                              retry ? "retry" : "dead",
                              arg7};
        rep = script_run(r, &fail_script_s, (int)(sizeof(args) / sizeof(args[0])), args, NULL);
    }
    if (!rep || rep->type != REDIS_REPLY_INTEGER) {
        rc = GH_EREDIS;
    } else {
        rc = rep->integer > 0 ? GH_OK : GH_ENOTFOUND;
        if (rc == GH_OK && retry_at_ms)
            *retry_at_ms = due;
    }
out:
    freeReplyObject(rep);
    json_object_put(entry);
    return rc;
}

int gh_queue_fail(struct gh_redis *r, const char *queue, const struct gh_job *job, int max_attempts,
                  const char *error)
{
    return gh_queue_fail_ex(r, queue, job, max_attempts, 0, error, NULL, NULL);
}

/* ---- leases -------------------------------------------------------------- */

int gh_queue_release(struct gh_redis *r, const char *queue, const struct gh_job *job)
{
    char processing[QUEUE_KEY_MAX], leases[QUEUE_KEY_MAX], ready[QUEUE_KEY_MAX], seen[QUEUE_KEY_MAX];
    redisReply *rep;
    int rc;

    if (!r || !gh_queue_name_ok(queue) || !job || !job->raw)
        return GH_EINVAL;
    if (qkey(processing, queue, "processing") != GH_OK || qkey(leases, queue, "leases") != GH_OK ||
        qkey(ready, queue, "ready") != GH_OK || seen_key(seen, queue, job->id) != GH_OK)
        return GH_ETOOBIG;
    rep = gh_redis_cmd(r, "EVAL %s 4 %s %s %s %s %s %s %d", RELEASE_LUA, processing, leases, ready, seen,
                       job->raw, job->id, GH_QUEUE_SEEN_TTL_S);
    if (!rep || rep->type != REDIS_REPLY_INTEGER)
        rc = GH_EREDIS;
    else
        rc = rep->integer > 0 ? GH_OK : GH_ENOTFOUND;
    freeReplyObject(rep);
    return rc;
}

int gh_queue_extend(struct gh_redis *r, const char *queue, const char *const *ids, int n, int lease_ms)
{
    char leases[QUEUE_KEY_MAX], exp[24];
    const char *argv[2 + 1 + 2 * 64];
    size_t lens[2 + 1 + 2 * 64];
    redisReply *rep;
    int argc = 0, rc;

    if (!r || !gh_queue_name_ok(queue) || n < 0 || n > 64 || (n > 0 && !ids) || lease_ms <= 0)
        return GH_EINVAL;
    if (n == 0)
        return GH_OK;
    if (qkey(leases, queue, "leases") != GH_OK)
        return GH_ETOOBIG;
    snprintf(exp, sizeof(exp), "%" PRId64, gh_now_ms() + lease_ms);
    argv[argc++] = "ZADD";
    argv[argc++] = leases;
    argv[argc++] = "XX";
    for (int i = 0; i < n; i++) {
        argv[argc++] = exp;
        argv[argc++] = ids[i];
    }
    for (int i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    rep = gh_redis_cmdargv(r, argc, argv, lens);
    rc = rep && rep->type == REDIS_REPLY_INTEGER ? GH_OK : GH_EREDIS;
    freeReplyObject(rep);
    return rc;
}

int gh_queue_renew(struct gh_redis *r, const char *queue, const char *id, int lease_ms)
{
    char leases[QUEUE_KEY_MAX];
    redisReply *rep;
    int rc;

    if (!r || !gh_queue_name_ok(queue) || !id || lease_ms <= 0)
        return GH_EINVAL;
    if (qkey(leases, queue, "leases") != GH_OK)
        return GH_ETOOBIG;
    rep = gh_redis_cmd(r, "EVAL %s 1 %s %lld %s", RENEW_LUA, leases,
                       (long long)gh_now_ms() + (long long)lease_ms, id);
    rc = rep && rep->type == REDIS_REPLY_INTEGER ? (int)rep->integer : GH_EREDIS;
    freeReplyObject(rep);
    return rc;
}

/* ---- inspection ---------------------------------------------------------- */

long long gh_queue_len(struct gh_redis *r, const char *queue, const char *which)
{
    char key[QUEUE_KEY_MAX];
    redisReply *rep;
    long long n = -1;
    int zset;

    if (!r || !gh_queue_name_ok(queue) || !which)
        return -1;
    if (strcmp(which, "ready") == 0 || strcmp(which, "processing") == 0 || strcmp(which, "dead") == 0)
        zset = 0;
    else if (strcmp(which, "delayed") == 0 || strcmp(which, "leases") == 0)
        zset = 1;
    else
        return -1;
    if (qkey(key, queue, which) != GH_OK)
        return -1;
    rep = gh_redis_cmd(r, zset ? "ZCARD %s" : "LLEN %s", key);
    if (rep && rep->type == REDIS_REPLY_INTEGER)
        n = rep->integer;
    freeReplyObject(rep);
    return n;
}

int gh_queue_stats(struct gh_redis *r, const char *queue, struct gh_queue_stats *st)
{
    char ready[QUEUE_KEY_MAX], delayed[QUEUE_KEY_MAX], processing[QUEUE_KEY_MAX], dead[QUEUE_KEY_MAX],
        leases[QUEUE_KEY_MAX];
    redisReply *rep[7] = {0};
    long long *vals[6];
    int64_t now = gh_now_ms();
    int rc = GH_EREDIS, i;

    if (!r || !gh_queue_name_ok(queue) || !st)
        return GH_EINVAL;
    memset(st, 0, sizeof(*st));
    st->oldest_ready_ms = -1;
    if (qkey(ready, queue, "ready") != GH_OK || qkey(delayed, queue, "delayed") != GH_OK ||
        qkey(processing, queue, "processing") != GH_OK || qkey(dead, queue, "dead") != GH_OK ||
        qkey(leases, queue, "leases") != GH_OK)
        return GH_ETOOBIG;
    /* all seven appended and all seven read, also when one fails */
    (void)gh_redis_append(r, "LLEN %s", ready);
    (void)gh_redis_append(r, "ZCARD %s", delayed);
    (void)gh_redis_append(r, "LLEN %s", processing);
    (void)gh_redis_append(r, "LLEN %s", dead);
    (void)gh_redis_append(r, "ZCARD %s", leases);
    (void)gh_redis_append(r, "ZCOUNT %s -inf %lld", leases, (long long)now);
    (void)gh_redis_append(r, "LINDEX %s -1", ready);
    for (i = 0; i < 7; i++)
        rep[i] = gh_redis_get_reply(r);
    vals[0] = &st->ready;
    vals[1] = &st->delayed;
    vals[2] = &st->processing;
    vals[3] = &st->dead;
    vals[4] = &st->leases;
    vals[5] = &st->leases_expired;
    for (i = 0; i < 6; i++) {
        if (!rep[i] || rep[i]->type != REDIS_REPLY_INTEGER)
            goto out;
        *vals[i] = rep[i]->integer;
    }
    if (rep[6] && rep[6]->type == REDIS_REPLY_STRING) {
        struct gh_job j;
        if (parse_job(rep[6]->str, &j) == GH_OK) {
            int64_t since = j.due_ms > 0 ? j.due_ms : j.enqueued_ms;
            st->oldest_ready_ms = since > 0 && since < now ? now - since : 0;
            gh_job_cleanup(&j);
        } else {
            st->oldest_ready_ms = 0;
        }
    }
    rc = GH_OK;
out:
    for (i = 0; i < 7; i++)
        freeReplyObject(rep[i]);
    return rc;
}

int gh_queue_metrics(struct gh_redis *r, const char *const *queues, struct gh_buf *out)
{
    static const char *const states[] = {"ready", "delayed", "processing", "dead", "running"};
    struct gh_queue_stats st[16];
    int ok[16] = {0}, nq = 0, rc = GH_OK;

    if (!out)
        return GH_EINVAL;
    for (nq = 0; queues && queues[nq] && nq < 16; nq++)
        ok[nq] = gh_queue_stats(r, queues[nq], &st[nq]) == GH_OK;
    rc = gh_buf_puts(out, "# TYPE gh_queue_jobs gauge\n");
    for (int q = 0; q < nq && rc == GH_OK; q++) {
        long long v[5];
        if (!ok[q])
            continue;
        v[0] = st[q].ready;
        v[1] = st[q].delayed;
        v[2] = st[q].processing;
        v[3] = st[q].dead;
        v[4] = st[q].leases;
        for (int s = 0; s < 5 && rc == GH_OK; s++)
            rc = gh_buf_printf(out, "gh_queue_jobs{queue=\"%s\",state=\"%s\"} %lld\n", queues[q], states[s],
                               v[s]);
    }
    if (rc == GH_OK)
        rc = gh_buf_puts(out, "# TYPE gh_queue_oldest_ready_seconds gauge\n");
    for (int q = 0; q < nq && rc == GH_OK; q++)
        if (ok[q])
            rc = gh_buf_printf(out, "gh_queue_oldest_ready_seconds{queue=\"%s\"} %.3f\n", queues[q],
                               st[q].oldest_ready_ms > 0 ? (double)st[q].oldest_ready_ms / 1000.0 : 0.0);
    return rc;
}

/* ---- dead letters -------------------------------------------------------- */

int gh_queue_dead_list(struct gh_redis *r, const char *queue, int max, json_object **out)
{
    char dead[QUEUE_KEY_MAX];
    redisReply *rep;
    json_object *arr;

    if (!r || !gh_queue_name_ok(queue) || !out || max < 1)
        return GH_EINVAL;
    *out = NULL;
    if (qkey(dead, queue, "dead") != GH_OK)
        return GH_ETOOBIG;
    rep = gh_redis_cmd(r, "LRANGE %s 0 %d", dead, max - 1);
    if (!rep || rep->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(rep);
        return GH_EREDIS;
    }
    arr = json_object_new_array();
    for (size_t i = 0; arr && i < rep->elements; i++) {
        json_object *e =
            rep->element[i]->type == REDIS_REPLY_STRING ? json_tokener_parse(rep->element[i]->str) : NULL;
        if (!e || !json_object_is_type(e, json_type_object)) {
            json_object_put(e);
            e = json_object_new_object();
            json_object_object_add(e, "error", json_object_new_string("unreadable dead letter"));
        }
        json_object_array_add(arr, e);
    }
    freeReplyObject(rep);
    if (!arr)
        return GH_ENOMEM;
    *out = arr;
    return GH_OK;
}

/* The job text of a dead entry, ready to run again; NULL for a malformed
 * entry (a "raw" burial) or one of another id. Caller frees. */
static char *revived(const char *entry_text, const char *id, char *job_id, size_t id_size)
{
    json_object *e = json_tokener_parse(entry_text), *v;
    char *out = NULL;

    if (!e || !json_object_is_type(e, json_type_object) || !json_object_object_get_ex(e, "id", &v) ||
        !json_object_is_type(v, json_type_string))
        goto out;
    if (id && strcmp(json_object_get_string(v), id) != 0)
        goto out;
    if (gh_snprintf(job_id, id_size, "%s", json_object_get_string(v)) != GH_OK)
        goto out;
    json_object_object_add(e, "attempt", json_object_new_int(1));
    json_object_object_add(e, "due_ms", json_object_new_int64(0));
    json_object_object_del(e, "error");
    json_object_object_del(e, "failed_ms");
    json_object_object_del(e, "last_error");
    out = strdup(json_object_to_json_string_ext(e, JSON_C_TO_STRING_PLAIN));
out:
    json_object_put(e);
    return out;
}

int gh_queue_dead_retry(struct gh_redis *r, const char *queue, const char *id, long long *moved)
{
    char dead[QUEUE_KEY_MAX], ready[QUEUE_KEY_MAX], seen[QUEUE_KEY_MAX], jid[160];
    redisReply *rep;
    int rc = GH_OK;

    if (moved)
        *moved = 0;
    if (!r || !gh_queue_name_ok(queue))
        return GH_EINVAL;
    if (qkey(dead, queue, "dead") != GH_OK || qkey(ready, queue, "ready") != GH_OK)
        return GH_ETOOBIG;
    rep = gh_redis_cmd(r, "LRANGE %s 0 -1", dead);
    if (!rep || rep->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(rep);
        return GH_EREDIS;
    }
    for (size_t i = rep->elements; i-- > 0;) { /* oldest first, so they keep their order */
        redisReply *m;
        char *job;

        if (rep->element[i]->type != REDIS_REPLY_STRING)
            continue;
        job = revived(rep->element[i]->str, id, jid, sizeof(jid));
        if (!job)
            continue;
        if (seen_key(seen, queue, jid) != GH_OK) {
            free(job);
            continue;
        }
        m = gh_redis_cmd(r, "EVAL %s 3 %s %s %s %s %s %d", REVIVE_LUA, dead, ready, seen,
                         rep->element[i]->str, job, GH_QUEUE_SEEN_TTL_S);
        free(job);
        if (!m || m->type != REDIS_REPLY_INTEGER) {
            freeReplyObject(m);
            rc = GH_EREDIS;
            break;
        }
        if (m->integer == 1 && moved)
            (*moved)++;
        freeReplyObject(m);
    }
    freeReplyObject(rep);
    return rc;
}

int gh_queue_dead_purge(struct gh_redis *r, const char *queue, long long *removed)
{
    char dead[QUEUE_KEY_MAX];
    redisReply *a = NULL, *b = NULL;
    int rc = GH_EREDIS;

    if (removed)
        *removed = 0;
    if (!r || !gh_queue_name_ok(queue))
        return GH_EINVAL;
    if (qkey(dead, queue, "dead") != GH_OK)
        return GH_ETOOBIG;
    (void)gh_redis_append(r, "LLEN %s", dead);
    (void)gh_redis_append(r, "DEL %s", dead);
    a = gh_redis_get_reply(r);
    b = gh_redis_get_reply(r);
    if (a && a->type == REDIS_REPLY_INTEGER && b && b->type == REDIS_REPLY_INTEGER) {
        if (removed)
            *removed = a->integer;
        rc = GH_OK;
    }
    freeReplyObject(a);
    freeReplyObject(b);
    return rc;
}
