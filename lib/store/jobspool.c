/* jobspool.c - jobs Redis refused, kept in memory and queued later (see
 * jobspool.h). A ring of items; the payload is kept as JSON text (the
 * caller's object may change or go away) and parsed again when queued. */
#include "store/jobspool.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ctx.h"
#include "core/err.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "store/queue.h"

#define LOG_EVERY_MS 10000

struct item {
    char *queue, *id, *kind, *payload; /* one allocation: queue points at it */
    uint64_t guild_id;
    int64_t deadline_ms, due_ms;
};

struct gh_jobspool {
    struct item *ring;
    int cap, head, n; /* head: next free slot; oldest at head - n */
    uint64_t lost;
    int64_t next_try_ms;
    int64_t log_full_ms, log_refused_ms;
};

static int throttle(int64_t *last, int64_t now)
{
    return gh_every(last, now, LOG_EVERY_MS);
}

struct gh_jobspool *gh_jobspool_new(int max)
{
    struct gh_jobspool *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->cap = max > 0 ? max : GH_JOBSPOOL_DEFAULT_MAX;
    s->ring = calloc((size_t)s->cap, sizeof(*s->ring));
    if (!s->ring) {
        free(s);
        return NULL;
    }
    return s;
}

static struct item *oldest(struct gh_jobspool *s)
{
    return &s->ring[(s->head - s->n + s->cap) % s->cap];
}

static void pop_oldest(struct gh_jobspool *s)
{
    struct item *it = oldest(s);
    free(it->queue);
    memset(it, 0, sizeof(*it));
    s->n--;
}

void gh_jobspool_free(struct gh_jobspool *s)
{
    if (!s)
        return;
    while (s->n > 0)
        pop_oldest(s);
    free(s->ring);
    free(s);
}

int gh_jobspool_len(const struct gh_jobspool *s)
{
    return s ? s->n : 0;
}

uint64_t gh_jobspool_lost(const struct gh_jobspool *s)
{
    return s ? s->lost : 0;
}

static const char *queue_of(const struct gh_ctx *ctx, const char *queue)
{
    if (queue && queue[0])
        return queue;
    return ctx->queue && ctx->queue[0] ? ctx->queue : GH_QUEUE_DEFAULT;
}

static int push(struct gh_ctx *ctx, const char *queue, const char *id, const char *kind, uint64_t guild_id,
                json_object *payload, int64_t deadline_ms, int64_t due_ms)
{
    struct gh_jobspool *s = ctx->spool;
    const char *text = payload ? json_object_to_json_string_ext(payload, JSON_C_TO_STRING_PLAIN) : "{}";
    size_t lq = strlen(queue) + 1, li = strlen(id) + 1, lk = strlen(kind) + 1, lp = strlen(text) + 1;
    char *mem = malloc(lq + li + lk + lp);
    struct item *it;

    if (!mem) {
        GH_ERROR(&ctx->log, "jobspool: out of memory: job %s (%s) lost", id, kind);
        return GH_ENOMEM;
    }
    if (s->n == s->cap) {
        int64_t now = gh_mono_ms();
        struct item *old = oldest(s);
        s->lost++;
        if (throttle(&s->log_full_ms, now))
            GH_ERROR(&ctx->log,
                     "jobspool: spool full (%d jobs while Redis refuses them): dropped the oldest (%s, %s), "
                     "%llu lost so far",
                     s->cap, old->id, old->kind, (unsigned long long)s->lost);
        pop_oldest(s);
    }
    it = &s->ring[s->head];
    it->queue = mem;
    memcpy(it->queue, queue, lq);
    it->id = it->queue + lq;
    memcpy(it->id, id, li);
    it->kind = it->id + li;
    memcpy(it->kind, kind, lk);
    it->payload = it->kind + lk;
    memcpy(it->payload, text, lp);
    it->guild_id = guild_id;
    it->deadline_ms = deadline_ms;
    it->due_ms = due_ms;
    s->head = (s->head + 1) % s->cap;
    s->n++;
    return GH_OK;
}

static int enqueue_now(struct gh_ctx *ctx, const char *queue, const char *id, const char *kind,
                       uint64_t guild_id, json_object *payload, int64_t deadline_ms, int64_t due_ms)
{
    if (due_ms > 0)
        return gh_queue_enqueue_at(ctx->redis, queue, id, kind, guild_id, payload, deadline_ms, due_ms);
    return gh_queue_enqueue(ctx->redis, queue, id, kind, guild_id, payload, deadline_ms);
}

int gh_jobspool_enqueue(struct gh_ctx *ctx, const char *queue, const char *id, const char *kind,
                        uint64_t guild_id, json_object *payload, int64_t deadline_ms, int64_t due_ms)
{
    struct gh_jobspool *s;
    int rc;

    if (!ctx || !id || !kind)
        return GH_EINVAL;
    queue = queue_of(ctx, queue);
    s = ctx->spool;
    if (!s)
        return enqueue_now(ctx, queue, id, kind, guild_id, payload, deadline_ms, due_ms);
    if (!gh_queue_name_ok(queue) || !id[0] || strlen(id) >= sizeof(((struct gh_job *)0)->id) || !kind[0])
        return GH_EINVAL;
    if (s->n > 0) /* behind the jobs already waiting, never before them */
        return push(ctx, queue, id, kind, guild_id, payload, deadline_ms, due_ms);
    rc = enqueue_now(ctx, queue, id, kind, guild_id, payload, deadline_ms, due_ms);
    if (rc != GH_EREDIS)
        return rc;
    if (throttle(&s->log_refused_ms, gh_mono_ms()))
        GH_WARN(&ctx->log,
                "jobspool: Redis refused job %s (%s); keeping jobs in memory and retrying every %d ms", id,
                kind, GH_JOBSPOOL_RETRY_MS);
    s->next_try_ms = gh_mono_ms() + GH_JOBSPOOL_RETRY_MS;
    return push(ctx, queue, id, kind, guild_id, payload, deadline_ms, due_ms);
}

int gh_jobspool_keep(struct gh_ctx *ctx, const char *queue, const char *id, const char *kind,
                     uint64_t guild_id, json_object *payload, int64_t deadline_ms, int64_t due_ms)
{
    if (!ctx || !ctx->spool || !id || !kind)
        return GH_EINVAL;
    queue = queue_of(ctx, queue);
    if (!gh_queue_name_ok(queue) || !id[0] || strlen(id) >= sizeof(((struct gh_job *)0)->id) || !kind[0])
        return GH_EINVAL;
    if (ctx->spool->n == 0)
        ctx->spool->next_try_ms = gh_mono_ms() + GH_JOBSPOOL_RETRY_MS;
    return push(ctx, queue, id, kind, guild_id, payload, deadline_ms, due_ms);
}

int gh_jobspool_drain(struct gh_ctx *ctx, int64_t now_ms)
{
    struct gh_jobspool *s = ctx ? ctx->spool : NULL;
    int sent = 0;

    if (!s || s->n == 0 || now_ms < s->next_try_ms)
        return 0;
    while (s->n > 0) {
        struct item *it = oldest(s);
        json_object *p = json_tokener_parse(it->payload);
        int rc =
            p ? enqueue_now(ctx, it->queue, it->id, it->kind, it->guild_id, p, it->deadline_ms, it->due_ms)
              : GH_EJSON;
        json_object_put(p);
        if (rc == GH_EREDIS) {
            s->next_try_ms = gh_mono_ms() + GH_JOBSPOOL_RETRY_MS; /* now_ms may be INT64_MAX */
            break;
        }
        if (rc != GH_OK && rc != GH_EDUPLICATE)
            GH_ERROR(&ctx->log, "jobspool: spooled job %s (%s) dropped: %s", it->id, it->kind,
                     gh_strerror(rc));
        else
            sent++;
        pop_oldest(s);
    }
    if (sent)
        GH_INFO(&ctx->log, "jobspool: %d spooled job(s) queued after a Redis outage, %d still waiting", sent,
                s->n);
    return sent;
}
