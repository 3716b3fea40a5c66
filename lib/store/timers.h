/* timers.h - durable timers: future actions kept in PostgreSQL
 * (scheduled_actions, sql/0004) and promoted into the job queue when due.
 *
 * A giveaway end, a tempban expiry, a reminder: anything due later is a row
 * first (gh_timers_schedule), so losing Redis loses no timer. guildhall-
 * scheduler (cron/scheduler.c) calls gh_timers_promote every ~100 ms; it
 * moves due rows into the queue as jobs and marks them 'queued'. The worker
 * reports each run of such a job back (gh_timers_job_finished), which makes
 * the row 'done' or 'failed'.
 *
 * States: pending -> queued -> done | failed; pending/queued -> cancelled.
 *
 * Delivery is at least once, never twice at the same time:
 *  - the job id is "timer:<id>", fixed for the row, and the queue's dedupe
 *    key: promoting a row whose job is still queued, running or recently
 *    done enqueues nothing;
 *  - a row 'queued' for longer than GH_TIMERS_REPROMOTE_GRACE_MS without a
 *    report is promoted again. After a Redis flush its job and dedupe key
 *    are gone, so it is enqueued afresh and fires; when the job is merely
 *    slow, the dedupe key is still there and nothing is enqueued (the row's
 *    queued_at moves on, attempts does not);
 *  - rows are taken FOR UPDATE SKIP LOCKED in one transaction per call, so
 *    several schedulers never promote the same row at once;
 *  - done, failed and cancelled rows are never promoted.
 * Handlers stay idempotent: after a lost report (PostgreSQL down when the
 * job ended) a row may run again once the queue's dedupe key has expired.
 *
 * The job: kind = the row's kind, guild = the row's guild (0 = none),
 * payload = the row's payload plus "timer_id" (integer), no deadline. It is
 * enqueued on ctx->queue (GH_QUEUE_DEFAULT when NULL). */
#ifndef GH_STORE_TIMERS_H
#define GH_STORE_TIMERS_H

#include <json-c/json.h>
#include <stddef.h>
#include <stdint.h>

struct gh_ctx;
struct gh_job;

/* A row left 'queued' this long without a report is promoted again. Longer
 * than a job's pickup under normal load; a slow job is protected by the
 * queue's dedupe key, not by this. */
#define GH_TIMERS_REPROMOTE_GRACE_MS ((int64_t)60 * 1000)
/* Rows per gh_timers_promote call that the scheduler asks for. */
#define GH_TIMERS_PROMOTE_BATCH 500
#define GH_TIMERS_KEY_MAX 200
#define GH_TIMERS_ERROR_MAX 2000

/* Schedules kind to run at due_ms (wall clock, ms since the epoch; a time in
 * the past fires at the next promotion). guild_id 0 = an operator timer (no
 * guild). payload is borrowed (NULL = {}), must be a JSON object. The
 * idempotency key (1-200 bytes) is unique per guild: scheduling a key that
 * exists changes nothing, sets *timer_id to the existing row and returns
 * GH_EDUPLICATE. Returns GH_OK (*timer_id set), GH_EDUPLICATE, GH_EINVAL (bad
 * argument: logged), GH_ENOTFOUND (guild_id is not a known guild), GH_EPG. */
int gh_timers_schedule(struct gh_ctx *ctx, uint64_t guild_id, const char *kind, json_object *payload,
                       const char *idempotency_key, int64_t due_ms, int64_t *timer_id);

/* Cancels a pending or queued timer (a queued job still in Redis is skipped by
 * gh_timers_job_started). GH_OK (cancelled now, or already cancelled),
 * GH_ENOTFOUND (no such timer), GH_ECONFLICT (already done or failed), GH_EPG. */
int gh_timers_cancel(struct gh_ctx *ctx, int64_t timer_id);

/* Promotes up to max rows that are due at now_ms (pending with due_at <=
 * now_ms, or queued since before now_ms - GH_TIMERS_REPROMOTE_GRACE_MS) in
 * one transaction: enqueues each as a job, then marks the enqueued ones
 * 'queued' (queued_at = now_ms, attempts + 1 when a job was enqueued). When
 * Redis fails part-way, the rows enqueued so far are marked and the rest stay
 * as they were; when PostgreSQL fails, nothing is marked (jobs already
 * enqueued are found by their dedupe key at the next promotion, so none runs
 * twice). *promoted (may be NULL) = rows marked. Returns GH_OK, GH_EINVAL,
 * GH_EPG (nothing changed in PostgreSQL), GH_EREDIS (the rows before the
 * failure were promoted: *promoted says how many). */
int gh_timers_promote(struct gh_ctx *ctx, int max, int64_t now_ms, int *promoted);

/* Milliseconds until the next pending row is due, as seen at now_ms: 0 when
 * one is due, -1 when none is pending (or on error), capped at cap_ms. Lets
 * the scheduler sleep until then. */
int64_t gh_timers_next_due_in(struct gh_ctx *ctx, int64_t now_ms, int64_t cap_ms);

/* The timer id of a job enqueued by gh_timers_promote (payload "timer_id"),
 * or 0 when the job is not a timer's. */
int64_t gh_timers_job_timer_id(const struct gh_job *job);

/* Optional, for the worker, before it runs a timer job: records fired_at
 * (the first start; lateness = fired_at - due_at) and says whether to run it.
 * GH_OK (run it), GH_ECONFLICT (the timer was cancelled or is already done:
 * ack the job without running it), GH_ENOTFOUND (no such timer: it was
 * deleted with its guild; ack without running), GH_EINVAL (not a timer job),
 * GH_EPG (PostgreSQL is down: run it anyway, at least once). */
int gh_timers_job_started(struct gh_ctx *ctx, const struct gh_job *job);

/* Called by the worker after each run of a timer job. ok: the run succeeded
 * -> state done, fired_at (if not set) and finished_at = now, lateness
 * recorded. !ok && final (no attempts left, or dead-lettered): state failed
 * with last_error = error, logged at ERROR. !ok && !final: last_error only
 * (a retry follows). A cancelled or already finished row is left as it is
 * (a failed row becomes done when a dead letter is retried and succeeds).
 * error is borrowed, may be NULL. Returns GH_OK, GH_EINVAL (not a timer job),
 * GH_ENOTFOUND (no such timer), GH_EPG (logged: the row stays queued and
 * is promoted again after the grace period). */
int gh_timers_job_finished(struct gh_ctx *ctx, const struct gh_job *job, int ok, int final,
                           const char *error);

#endif
