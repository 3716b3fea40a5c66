/* joblog.h - job_runs: one row per job run, written in batches off the
 * job's path.
 *
 * The worker builds an entry with gh_joblog_entry when a run ends and hands
 * it to the queue's ack/fail script, which pushes it onto
 * bot:{q<n>}:jobs:<queue>:log in the same step as the transition it records.
 * The worker parent calls gh_joblog_flush about once a second: up to max
 * entries move to :log:inflight (one script) and go into job_runs with one
 * multi-row INSERT; :log:inflight is deleted only after COMMIT, so
 * PostgreSQL being down loses nothing (the batch is sent again by the next
 * flush) and a replayed batch inserts nothing twice (run_key is unique).
 * A batch PostgreSQL rejects for its data (SQLSTATE class 22/23) is retried
 * entry by entry; entries that still fail are dropped, each logged whole.
 *
 * Retention: gh_joblog_retention deletes rows older than
 * GH_JOBLOG_RETENTION_DAYS, at most once an hour across all workers (a Redis
 * key with a one-hour TTL marks the last run). */
#ifndef GH_STORE_JOBLOG_H
#define GH_STORE_JOBLOG_H

#include <stdint.h>

struct gh_ctx;
struct gh_job;

#define GH_JOBLOG_RETENTION_DAYS 14
#define GH_JOBLOG_RETENTION_EVERY_S 3600
#define GH_JOBLOG_BATCH_MAX 5000

struct gh_joblog_run {
    const char *queue;
    const struct gh_job *job; /* borrowed: kind, id, guild, attempt */
    const char *status;       /* done, retry, dead, expired, timeout */
    const char *error;        /* NULL when done */
    int64_t started_ms;       /* wall clock; 0 = the handler never started */
    int64_t finished_ms;      /* wall clock; 0 = now */
    int64_t duration_ms;
    int pid; /* 0 = getpid() */
};

/* The entry as JSON text; caller frees with free(). NULL on bad arguments or
 * no memory. */
char *gh_joblog_entry(const struct gh_joblog_run *run);
/* Moves up to max entries of queue's log list into job_runs. Returns the
 * number written (0..max), or a negative gh_err (nothing lost). */
int gh_joblog_flush(struct gh_ctx *ctx, const char *queue, int max);
/* Deletes job_runs rows older than GH_JOBLOG_RETENTION_DAYS, unless another
 * process did within the last hour (force: regardless). Returns the number
 * of rows deleted, 0 when skipped, or a negative gh_err. */
long long gh_joblog_retention(struct gh_ctx *ctx, int force);

#endif
