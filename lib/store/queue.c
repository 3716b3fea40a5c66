/* queue.c - the minimal job queue of the foundation (the job-system issue
 * replaces its internals; queue.h stays).
 *
 * Keys of queue Q live in partition n = FNV-1a(Q) mod GH_QUEUE_PARTITIONS and
 * share the hash tag {q<n>}, so the Lua scripts below touch one cluster slot:
 *   bot:{q<n>}:jobs:Q:ready        LPUSH in, BLMOVE RIGHT -> processing (FIFO)
 *   bot:{q<n>}:jobs:Q:processing   jobs being run
 *   bot:{q<n>}:jobs:Q:dead         jobs out of attempts, with their error
 *   bot:{q<n>}:jobs:Q:seen:<id>    dedupe marker, 24 h TTL
 * Enqueue is one script (SET NX EX + LPUSH: both or neither); fail is one
 * script (LREM + LPUSH), so a job is never in two lists or in none. Leases,
 * backoff and the reaper for a crashed worker's processing list are the job
 * system's; deadlines are checked by the worker with gh_job_expired. */
#include "store/queue.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/str.h"
#include "core/timeutil.h"
#include "store/redis.h"

#define QUEUE_SEEN_TTL_S 86400
#define QUEUE_KEY_MAX 256
#define QUEUE_ERROR_MAX 1000
#define QUEUE_DEAD_MAX 10000

/* KEYS[1] seen, KEYS[2] ready; ARGV[1] job, ARGV[2] ttl. 1 queued, 0 duplicate. */
static const char ENQUEUE_LUA[] = "if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[2]) then "
                                  "redis.call('LPUSH', KEYS[2], ARGV[1]) return 1 end return 0";
/* KEYS[1] processing, KEYS[2] destination; ARGV[1] raw, ARGV[2] new entry,
 * ARGV[3] cap of the destination (0 = none). 1 moved, 0 not in processing. */
static const char MOVE_LUA[] =
    "if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then return 0 end "
    "redis.call('LPUSH', KEYS[2], ARGV[2]) "
    "if tonumber(ARGV[3]) > 0 then redis.call('LTRIM', KEYS[2], 0, ARGV[3] - 1) end "
    "return 1";

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

static int valid_queue(const char *q)
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
        if (i + 1 >= max || (unsigned char)id[i] <= ' ' || id[i] == 0x7f)
            return 0;
    return 1;
}

static int qkey(char *out, const char *queue, const char *suffix)
{
    return gh_key_queue(out, QUEUE_KEY_MAX, gh_queue_partition(queue), queue, suffix);
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
    json_object *root = json_tokener_parse(raw);
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
        get_i64(root, "attempt", &attempt))
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

/* ---- operations ---------------------------------------------------------- */

int gh_queue_enqueue(struct gh_redis *r, const char *queue, const char *id, const char *kind,
                     uint64_t guild_id, json_object *payload, int64_t deadline_ms)
{
    char seen[QUEUE_KEY_MAX], ready[QUEUE_KEY_MAX], suffix[200];
    json_object *job = NULL;
    redisReply *rep = NULL;
    int rc = GH_EINVAL;

    if (!r || !valid_queue(queue) || !valid_id(id, sizeof(((struct gh_job *)0)->id)) ||
        !valid_id(kind, sizeof(((struct gh_job *)0)->kind)) || deadline_ms < 0)
        return GH_EINVAL;
    if (gh_snprintf(suffix, sizeof(suffix), "seen:%s", id) != GH_OK || qkey(seen, queue, suffix) != GH_OK ||
        qkey(ready, queue, "ready") != GH_OK)
        return GH_ETOOBIG;
    job = json_object_new_object();
    if (!job)
        return GH_ENOMEM;
    json_object_object_add(job, "id", json_object_new_string(id));
    json_object_object_add(job, "kind", json_object_new_string(kind));
    set_guild(job, guild_id);
    json_object_object_add(job, "payload", json_object_get(payload));
    json_object_object_add(job, "deadline_ms", json_object_new_int64(deadline_ms));
    json_object_object_add(job, "attempt", json_object_new_int(1));
    json_object_object_add(job, "enqueued_ms", json_object_new_int64(gh_now_ms()));

    rep = gh_redis_cmd(r, "EVAL %s 2 %s %s %s %d", ENQUEUE_LUA, seen, ready,
                       json_object_to_json_string_ext(job, JSON_C_TO_STRING_PLAIN), QUEUE_SEEN_TTL_S);
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
    rep = gh_redis_cmd(r, "EVAL %s 2 %s %s %s %s %d", MOVE_LUA, processing, dead, raw,
                       json_object_to_json_string_ext(entry, JSON_C_TO_STRING_PLAIN), QUEUE_DEAD_MAX);
    rc = rep && rep->type == REDIS_REPLY_INTEGER ? GH_OK : GH_EREDIS;
    freeReplyObject(rep);
    json_object_put(entry);
    return rc;
}

int gh_queue_pop(struct gh_redis *r, const char *queue, int timeout_s, struct gh_job *job)
{
    char ready[QUEUE_KEY_MAX], processing[QUEUE_KEY_MAX];
    redisReply *rep = NULL;
    int rc;

    if (!r || !valid_queue(queue) || !job || timeout_s < 0 || timeout_s > 3600)
        return GH_EINVAL;
    memset(job, 0, sizeof(*job));
    if (qkey(ready, queue, "ready") != GH_OK || qkey(processing, queue, "processing") != GH_OK)
        return GH_ETOOBIG;
    if (timeout_s == 0)
        rep = gh_redis_cmd(r, "LMOVE %s %s RIGHT LEFT", ready, processing);
    else /* the socket waits a little longer than the server blocks */
        rep = gh_redis_cmd_timeout(r, timeout_s * 1000 + 2000, "BLMOVE %s %s RIGHT LEFT %d", ready,
                                   processing, timeout_s);
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
    rc = parse_job(rep->str, job);
    if (rc != GH_OK) {
        bury_raw(r, queue, rep->str, "malformed job");
        rc = GH_EJSON;
    }
out:
    freeReplyObject(rep);
    return rc;
}

int gh_queue_ack(struct gh_redis *r, const char *queue, const struct gh_job *job)
{
    char processing[QUEUE_KEY_MAX];
    redisReply *rep;
    int rc;

    if (!r || !valid_queue(queue) || !job || !job->raw)
        return GH_EINVAL;
    if (qkey(processing, queue, "processing") != GH_OK)
        return GH_ETOOBIG;
    rep = gh_redis_cmd(r, "LREM %s 1 %s", processing, job->raw);
    if (!rep || rep->type != REDIS_REPLY_INTEGER)
        rc = GH_EREDIS;
    else
        rc = rep->integer > 0 ? GH_OK : GH_ENOTFOUND;
    freeReplyObject(rep);
    return rc;
}

int gh_queue_fail(struct gh_redis *r, const char *queue, const struct gh_job *job, int max_attempts,
                  const char *error)
{
    char processing[QUEUE_KEY_MAX], dest[QUEUE_KEY_MAX], err[QUEUE_ERROR_MAX + 1];
    json_object *entry = NULL;
    redisReply *rep = NULL;
    int retry, rc = GH_EINVAL;

    if (!r || !valid_queue(queue) || !job || !job->raw || max_attempts < 1)
        return GH_EINVAL;
    snprintf(err, sizeof(err), "%s", error ? error : "failed");
    entry = json_tokener_parse(job->raw);
    if (!entry || !json_object_is_type(entry, json_type_object))
        goto out;
    retry = job->attempt < max_attempts;
    if (qkey(processing, queue, "processing") != GH_OK ||
        qkey(dest, queue, retry ? "ready" : "dead") != GH_OK) {
        rc = GH_ETOOBIG;
        goto out;
    }
    if (retry) {
        json_object_object_add(entry, "attempt", json_object_new_int(job->attempt + 1));
        json_object_object_add(entry, "last_error", json_object_new_string(err));
    } else {
        json_object_object_add(entry, "error", json_object_new_string(err));
        json_object_object_add(entry, "failed_ms", json_object_new_int64(gh_now_ms()));
    }
    rep = gh_redis_cmd(r, "EVAL %s 2 %s %s %s %s %d", MOVE_LUA, processing, dest, job->raw,
                       json_object_to_json_string_ext(entry, JSON_C_TO_STRING_PLAIN),
                       retry ? 0 : QUEUE_DEAD_MAX);
    if (!rep || rep->type != REDIS_REPLY_INTEGER)
        rc = GH_EREDIS;
    else
        rc = rep->integer > 0 ? GH_OK : GH_ENOTFOUND;
out:
    freeReplyObject(rep);
    json_object_put(entry);
    return rc;
}

long long gh_queue_len(struct gh_redis *r, const char *queue, const char *which)
{
    char key[QUEUE_KEY_MAX];
    redisReply *rep;
    long long n = -1;

    if (!r || !valid_queue(queue) || !which ||
        (strcmp(which, "ready") != 0 && strcmp(which, "processing") != 0 && strcmp(which, "dead") != 0))
        return -1;
    if (qkey(key, queue, which) != GH_OK)
        return -1;
    rep = gh_redis_cmd(r, "LLEN %s", key);
    if (rep && rep->type == REDIS_REPLY_INTEGER)
        n = rep->integer;
    freeReplyObject(rep);
    return n;
}
