/* joblog.c - job_runs written in batches (see joblog.h). The flush follows
 * lib/store/cmdlog.c: a batch moves pending -> inflight in one script, is
 * inserted in one transaction, and inflight is deleted only after COMMIT. */
#include "store/joblog.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include <json-c/json.h>

#include "core/ctx.h"
#include "core/err.h"
#include "core/log.h"
#include "core/str.h"
#include "core/timeutil.h"
#include "store/pg.h"
#include "store/queue.h"
#include "store/redis.h"

#define JOBLOG_KEY_MAX 256
#define JOBLOG_LOCK_MS 60000
#define JOBLOG_BATCH_BYTES (64u << 20)
#define JOBLOG_ERROR_MAX 2000
#define JOBLOG_DELETE_CHUNK 50000

static const char INSERT_SQL[] =
    "INSERT INTO job_runs (run_key, queue, kind, job_id, guild_id, attempt, status, duration_ms, error, "
    "worker_pid, started_at, finished_at) "
    "SELECT r.run_key, r.queue, r.kind, r.job_id, r.guild_id, r.attempt, r.status, r.duration_ms, r.error, "
    "r.worker_pid, r.started_at, r.finished_at "
    "FROM jsonb_to_recordset($1::jsonb) AS r(run_key text, queue text, kind text, job_id text, "
    "guild_id bigint, attempt integer, status text, duration_ms integer, error text, worker_pid integer, "
    "started_at timestamptz, finished_at timestamptz) "
    "ON CONFLICT (run_key) DO NOTHING";

static const char DELETE_SQL[] = "DELETE FROM job_runs WHERE id IN (SELECT id FROM job_runs WHERE created_at "
                                 "< now() - make_interval(days => "
                                 "$1::int) LIMIT $2::int)";

/* KEYS[1] pending, KEYS[2] inflight; ARGV[1] max. Moves up to max, returns them. */
static const char TAKE_LUA[] = "local out = {} for i = 1, tonumber(ARGV[1]) do "
                               "local v = redis.call('LMOVE', KEYS[1], KEYS[2], 'RIGHT', 'LEFT') "
                               "if not v then break end out[#out + 1] = v end return out";
static const char UNLOCK_LUA[] = "if redis.call('GET', KEYS[1]) == ARGV[1] then "
                                 "return redis.call('DEL', KEYS[1]) end return 0";

static void iso(json_object *o, const char *name, int64_t ms)
{
    char buf[40];

    if (ms <= 0) {
        json_object_object_add(o, name, NULL);
        return;
    }
    gh_iso8601(ms, buf, sizeof(buf));
    json_object_object_add(o, name, json_object_new_string(buf));
}

static void random_hex(char *out, size_t bytes)
{
    unsigned char rnd[16];

    if (bytes > sizeof(rnd))
        bytes = sizeof(rnd);
    if (getrandom(rnd, bytes, 0) != (ssize_t)bytes) { /* not secret: uniqueness is enough */
        uint64_t v = (uint64_t)gh_now_ms() ^ ((uint64_t)getpid() << 40) ^ (uint64_t)gh_mono_ms() << 20;
        for (size_t i = 0; i < bytes; i++)
            rnd[i] = (unsigned char)(v >> ((i % 8) * 8)) ^ (unsigned char)i;
    }
    for (size_t i = 0; i < bytes; i++)
        snprintf(out + 2 * i, 3, "%02x", rnd[i]);
}

/* A run key: 16 random bytes per process (drawn again after a fork), with
 * the last 8 replaced by a counter, so a key costs no syscall and keys of one
 * process never repeat. 32 hex digits. */
static void run_key(char *out, pid_t pid)
{
    static char prefix[17];
    static pid_t prefix_pid;
    static uint64_t counter;

    if (prefix_pid != pid || !prefix[0]) {
        random_hex(prefix, 8);
        prefix_pid = pid;
        counter = 0;
    }
    snprintf(out, 33, "%s%016" PRIx64, prefix, ++counter);
}

char *gh_joblog_entry(const struct gh_joblog_run *run)
{
    json_object *o;
    char key[40], guild[24], err[JOBLOG_ERROR_MAX + 1];
    char *text = NULL;

    if (!run || !run->job || !run->queue || !run->status || !run->job->id[0] || !run->job->kind[0])
        return NULL;
    o = json_object_new_object();
    if (!o)
        return NULL;
    run_key(key, run->pid > 0 ? (pid_t)run->pid : getpid());
    json_object_object_add(o, "run_key", json_object_new_string(key));
    json_object_object_add(o, "queue", json_object_new_string(run->queue));
    json_object_object_add(o, "kind", json_object_new_string(run->job->kind));
    json_object_object_add(o, "job_id", json_object_new_string(run->job->id));
    if (run->job->guild_id) {
        snprintf(guild, sizeof(guild), "%" PRIu64, run->job->guild_id);
        json_object_object_add(o, "guild_id", json_object_new_string(guild));
    } else {
        json_object_object_add(o, "guild_id", NULL);
    }
    json_object_object_add(o, "attempt", json_object_new_int(run->job->attempt > 0 ? run->job->attempt : 1));
    json_object_object_add(o, "status", json_object_new_string(run->status));
    json_object_object_add(
        o, "duration_ms",
        json_object_new_int64(
            run->duration_ms > 0 ? (run->duration_ms > INT32_MAX ? INT32_MAX : run->duration_ms) : 0));
    if (run->error) {
        snprintf(err, sizeof(err), "%s", run->error);
        json_object_object_add(o, "error", json_object_new_string(err));
    } else {
        json_object_object_add(o, "error", NULL);
    }
    json_object_object_add(o, "worker_pid", json_object_new_int(run->pid > 0 ? run->pid : (int)getpid()));
    iso(o, "started_at", run->started_ms);
    iso(o, "finished_at", run->finished_ms > 0 ? run->finished_ms : gh_now_ms());
    text = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
    json_object_put(o);
    return text;
}

/* ---- PostgreSQL ---------------------------------------------------------- */

static int data_error(const char *sqlstate)
{
    return strncmp(sqlstate, "22", 2) == 0 || strncmp(sqlstate, "23", 2) == 0;
}

static int insert_array(struct gh_ctx *ctx, const char *array)
{
    const char *params[1] = {array};

    if (!ctx->pg)
        return GH_EPG;
    return gh_pg_command(ctx->pg, INSERT_SQL, 1, params); /* one statement: atomic on its own */
}

/* GH_OK when every entry is in or dropped; GH_EPG when the batch must stay. */
static int insert_entries(struct gh_ctx *ctx, const redisReply *lines)
{
    struct gh_buf b;
    size_t used = 0;
    int rc = GH_ENOMEM;

    gh_buf_init(&b, JOBLOG_BATCH_BYTES);
    if (gh_buf_puts(&b, "[") != GH_OK)
        goto out;
    for (size_t i = 0; i < lines->elements; i++) {
        const redisReply *e = lines->element[i];
        json_object *probe = e->type == REDIS_REPLY_STRING ? json_tokener_parse(e->str) : NULL;
        int ok = probe && json_object_is_type(probe, json_type_object);

        json_object_put(probe);
        if (!ok) {
            GH_ERROR(&ctx->log, "joblog: dropped a malformed entry: %.300s",
                     e->type == REDIS_REPLY_STRING ? e->str : "(not a string)");
            continue;
        }
        if ((used && gh_buf_puts(&b, ",") != GH_OK) || gh_buf_puts(&b, e->str) != GH_OK)
            goto out;
        used++;
    }
    if (gh_buf_puts(&b, "]") != GH_OK)
        goto out;
    if (used == 0) {
        rc = GH_OK;
        goto out;
    }
    rc = insert_array(ctx, gh_buf_cstr(&b));
    if (rc == GH_OK || !ctx->pg || !data_error(gh_pg_sqlstate(ctx->pg)))
        goto out;
    GH_WARN(&ctx->log, "joblog: a batch of %zu was rejected (%s); inserting one by one", used,
            gh_pg_sqlstate(ctx->pg));
    for (size_t i = 0; i < lines->elements; i++) {
        const redisReply *e = lines->element[i];
        if (e->type != REDIS_REPLY_STRING)
            continue;
        gh_buf_reset(&b);
        if (gh_buf_printf(&b, "[%s]", e->str) != GH_OK) {
            rc = GH_ENOMEM;
            goto out;
        }
        if (insert_array(ctx, gh_buf_cstr(&b)) == GH_OK)
            continue;
        if (!data_error(gh_pg_sqlstate(ctx->pg))) {
            rc = GH_EPG;
            goto out;
        }
        GH_ERROR(&ctx->log, "joblog: dropped an entry PostgreSQL rejects (%s: %s): %.500s",
                 gh_pg_sqlstate(ctx->pg), gh_pg_errmsg(ctx->pg), e->str);
    }
    rc = GH_OK;
out:
    gh_buf_cleanup(&b);
    return rc;
}

int gh_joblog_flush(struct gh_ctx *ctx, const char *queue, int max)
{
    char pending[JOBLOG_KEY_MAX], inflight[JOBLOG_KEY_MAX], lock[JOBLOG_KEY_MAX], token[40];
    redisReply *rep = NULL;
    int rc, retry = 0;
    size_t n = 0;

    if (!ctx || !gh_queue_name_ok(queue) || max <= 0)
        return GH_EINVAL;
    if (!ctx->redis)
        return GH_EREDIS;
    if (max > GH_JOBLOG_BATCH_MAX)
        max = GH_JOBLOG_BATCH_MAX;
    if (gh_queue_key(pending, sizeof(pending), queue, "log") != GH_OK ||
        gh_queue_key(inflight, sizeof(inflight), queue, "log:inflight") != GH_OK ||
        gh_queue_key(lock, sizeof(lock), queue, "log:lock") != GH_OK)
        return GH_ETOOBIG;
    random_hex(token, 12);
    rep = gh_redis_cmd(ctx->redis, "SET %s %s NX PX %d", lock, token, JOBLOG_LOCK_MS);
    if (!rep || rep->type == REDIS_REPLY_ERROR) {
        freeReplyObject(rep);
        return GH_EREDIS;
    }
    if (rep->type == REDIS_REPLY_NIL) { /* another flusher is at work */
        freeReplyObject(rep);
        return 0;
    }
    freeReplyObject(rep);

    rep = gh_redis_cmd(ctx->redis, "LRANGE %s 0 -1", inflight);
    if (!rep || rep->type != REDIS_REPLY_ARRAY) {
        rc = GH_EREDIS;
        goto out;
    }
    if (rep->elements > 0) {
        retry = 1;
    } else {
        freeReplyObject(rep);
        rep = gh_redis_cmd(ctx->redis, "EVAL %s 2 %s %s %d", TAKE_LUA, pending, inflight, max);
        if (!rep || rep->type != REDIS_REPLY_ARRAY) {
            rc = GH_EREDIS;
            goto out;
        }
    }
    n = rep->elements;
    if (n == 0) {
        rc = 0;
        goto out;
    }
    rc = insert_entries(ctx, rep);
    if (rc != GH_OK) {
        GH_WARN(&ctx->log, "joblog: %zu entries stay in %s until PostgreSQL takes them (%s)", n, inflight,
                ctx->pg ? gh_pg_errmsg(ctx->pg) : "no connection");
        goto out;
    }
    freeReplyObject(rep);
    rep = gh_redis_cmd(ctx->redis, "DEL %s", inflight);
    if (!rep || rep->type != REDIS_REPLY_INTEGER) /* written; a re-send inserts nothing twice */
        GH_WARN(&ctx->log, "joblog: batch written but %s not cleared; the next flush re-sends it", inflight);
    if (retry)
        GH_INFO(&ctx->log, "joblog: %zu entries left from an earlier flush written", n);
    rc = (int)n;
out:
    freeReplyObject(rep);
    freeReplyObject(gh_redis_cmd(ctx->redis, "EVAL %s 1 %s %s", UNLOCK_LUA, lock, token));
    return rc;
}

long long gh_joblog_retention(struct gh_ctx *ctx, int force)
{
    char mark[JOBLOG_KEY_MAX], days[16], chunk[16];
    const char *params[2] = {days, chunk};
    long long total = 0;
    redisReply *rep;

    if (!ctx || !ctx->pg)
        return GH_EINVAL;
    if (!force) {
        if (!ctx->redis || gh_key_global(mark, sizeof(mark), "jobs", "joblog:retention") != GH_OK)
            return GH_EREDIS;
        rep = gh_redis_cmd(ctx->redis, "SET %s %lld NX EX %d", mark, (long long)gh_now_ms(),
                           GH_JOBLOG_RETENTION_EVERY_S);
        if (!rep || rep->type == REDIS_REPLY_ERROR) {
            freeReplyObject(rep);
            return GH_EREDIS;
        }
        if (rep->type == REDIS_REPLY_NIL) { /* done within the hour */
            freeReplyObject(rep);
            return 0;
        }
        freeReplyObject(rep);
    }
    snprintf(days, sizeof(days), "%d", GH_JOBLOG_RETENTION_DAYS);
    snprintf(chunk, sizeof(chunk), "%d", JOBLOG_DELETE_CHUNK);
    for (int round = 0; round < 100; round++) { /* chunks keep each statement short */
        PGresult *res = gh_pg_exec(ctx->pg, DELETE_SQL, 2, params);
        long long n;

        if (!res || PQresultStatus(res) != PGRES_COMMAND_OK) {
            GH_WARN(&ctx->log, "joblog: retention delete failed (%s); next try in an hour",
                    gh_pg_errmsg(ctx->pg));
            PQclear(res);
            return total > 0 ? total : GH_EPG;
        }
        n = strtoll(PQcmdTuples(res), NULL, 10);
        PQclear(res);
        total += n;
        if (n < JOBLOG_DELETE_CHUNK)
            break;
    }
    if (total > 0)
        GH_INFO(&ctx->log, "joblog: retention deleted %lld job_runs rows older than %d days", total,
                GH_JOBLOG_RETENTION_DAYS);
    return total;
}
