/* jobspool.h - jobs Redis refused, kept in memory and queued later.
 *
 * One spool per process that must not lose jobs while Redis is away: in
 * gateway-lite the gateway owns it (gh_gateway_new creates it and points
 * ctx->spool at it; the loop drains it every second and publishes its
 * counters as jobs_spooled / jobs_lost in the shard status hash), and every
 * inline handler that enqueues a job calls gh_jobspool_enqueue with its
 * context. Outside gateway-lite ctx->spool is NULL and gh_jobspool_enqueue is
 * a plain gh_queue_enqueue(_at): the worker, cron and the web side report
 * GH_EREDIS to their caller as before (a job retry, a 503).
 *
 * The spool is bounded (oldest dropped when full, counted in "lost" and
 * logged at most every 10 s) and FIFO: while it holds jobs a new job is
 * appended behind them instead of overtaking them, and gh_jobspool_drain
 * queues them in order until Redis refuses again. A duplicate (the id was
 * already queued) counts as done. Single thread only. */
#ifndef GH_STORE_JOBSPOOL_H
#define GH_STORE_JOBSPOOL_H

#include <json-c/json.h>
#include <stdint.h>

struct gh_ctx;
struct gh_jobspool;

#define GH_JOBSPOOL_DEFAULT_MAX 20000
/* gh_jobspool_drain retries at most this often after a refusal. */
#define GH_JOBSPOOL_RETRY_MS 1000

/* max 0 = GH_JOBSPOOL_DEFAULT_MAX. NULL on no memory. */
struct gh_jobspool *gh_jobspool_new(int max);
/* Frees the spool and any job still in it (lost: the caller logs). */
void gh_jobspool_free(struct gh_jobspool *s);

/* Enqueues on queue (NULL = ctx->queue, or GH_QUEUE_DEFAULT) through
 * ctx->redis: gh_queue_enqueue, or gh_queue_enqueue_at when due_ms > 0.
 * payload is borrowed (NULL = {}). Returns GH_OK when the job was queued or,
 * with ctx->spool set, kept in the spool (Redis refused it, or jobs spooled
 * earlier are still waiting); GH_EDUPLICATE when the id was already queued
 * (callers treat it as success); GH_EREDIS only when ctx->spool is NULL;
 * GH_EINVAL (bad queue name or id; never spooled), GH_ENOMEM. */
int gh_jobspool_enqueue(struct gh_ctx *ctx, const char *queue, const char *id, const char *kind,
                        uint64_t guild_id, json_object *payload, int64_t deadline_ms, int64_t due_ms);

/* Keeps a job in ctx->spool without trying Redis first: for a caller that
 * sent its jobs some other way (a pipelined batch) and saw Redis refuse
 * them, or that found gh_jobspool_len > 0 (order). Arguments as
 * gh_jobspool_enqueue. GH_OK, GH_EINVAL (no spool, bad queue name or id),
 * GH_ENOMEM. */
int gh_jobspool_keep(struct gh_ctx *ctx, const char *queue, const char *id, const char *kind,
                     uint64_t guild_id, json_object *payload, int64_t deadline_ms, int64_t due_ms);

/* Queues the spooled jobs in order through ctx->redis until Redis refuses
 * one (that one and those behind it stay) - when now_ms (gh_mono_ms) has
 * reached the next retry time (GH_JOBSPOOL_RETRY_MS after the last refusal);
 * a job Redis rejects for another reason is dropped and logged. Returns the
 * number of jobs that left the spool (queued or duplicates). ctx->spool NULL:
 * 0. */
int gh_jobspool_drain(struct gh_ctx *ctx, int64_t now_ms);

/* Jobs waiting; jobs dropped because the spool was full (since creation). */
int gh_jobspool_len(const struct gh_jobspool *s);
uint64_t gh_jobspool_lost(const struct gh_jobspool *s);

#endif
