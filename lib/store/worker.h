/* worker.h - the job worker: pops jobs, checks deadlines, dispatches by
 * kind, enforces a per-kind timeout, acks or fails, and logs every run.
 *
 * guildhall-worker (cron/worker.c) is only wiring around gh_worker_run:
 * cron starts it every WORKER_TICK_S under flock; a run lasts tick + 5 s so
 * consecutive runs overlap and pickup stays sub-second. The parent forks
 * `concurrency` children that each loop pop -> run -> ack/fail, and flushes
 * the command log into PostgreSQL about every second itself.
 *
 * Children take jobs in batches (gh_queue_take) under a lease of
 * JOB_LEASE_S. Each child publishes the id of the job it is running in a
 * slot of shared memory; the parent extends those leases every quarter lease
 * (one ZADD XX), so a long job keeps its lease while its child lives, and a
 * child killed mid-job stops being extended: its job returns to ready when
 * the lease expires (the reaper runs in every take). A job waiting in a
 * batch has its lease renewed before it runs, and is skipped if it was lost.
 * Without the parent (gh_worker_step, --once) a job's lease is set to its
 * timeout plus the lease before it runs.
 *
 * Outcome of one job:
 *  - deadline passed (the job's, or the kind's deadline_s counted from
 *    enqueue)                   -> dropped: WARN with kind, id, lateness; acked
 *  - kind unknown               -> dead letter at once (max_attempts 1)
 *  - attempt > max_attempts     -> dead letter (its worker died on every
 *                                  attempt: the reaper counted them)
 *  - handler GH_OK              -> acked
 *  - handler GH_EINVAL/GH_EJSON -> dead letter at once (retrying cannot help)
 *  - other error, or timeout    -> gh_queue_fail_ex with the kind's
 *                                  max_attempts and backoff_base_ms
 * Every run is recorded: a job_runs entry (lib/store/joblog.h) pushed with
 * the transition, gh_jobs_total{kind,status} and gh_job_lateness_seconds
 * {queue} (start - due time, or - enqueue time) in the process's deferred
 * metrics. A job whose payload carries "timer_id" reports to the timers
 * module before (gh_timers_job_started: a cancelled timer is not run) and
 * after (gh_timers_job_finished) each run.
 * A job that runs past its timeout is interrupted (SIGALRM + siglongjmp):
 * the failure is recorded over a fresh Redis connection and the result is
 * marked tainted, because the interrupted code may have left its
 * connections mid-request; a worker child then exits and is respawned. */
#ifndef GH_STORE_WORKER_H
#define GH_STORE_WORKER_H

#include <stdint.h>

struct gh_ctx;
struct gh_job;
struct gh_job_kind;
struct gh_feature;

/* Finds the runner of a kind (gh_registry_job in production; tests pass
 * their own table). */
typedef const struct gh_job_kind *(*gh_worker_lookup_fn)(const char *kind, const struct gh_feature **feature);

#define GH_WORKER_DEFAULT_TIMEOUT_S 30
#define GH_WORKER_DEFAULT_ATTEMPTS 3
#define GH_WORKER_DEFAULT_BATCH 8

enum gh_job_outcome {
    GH_JOB_DONE = 0, /* acked */
    GH_JOB_RETRY,    /* failed, requeued for another attempt */
    GH_JOB_DEAD,     /* failed for the last time, or unknown kind: dead list */
    GH_JOB_EXPIRED,  /* deadline passed before it ran: dropped (acked) */
};

struct gh_job_result {
    enum gh_job_outcome outcome;
    int rc;              /* the handler's result; GH_ETIMEOUT when it ran out of time */
    int queue_rc;        /* result of the ack/fail call (GH_OK unless Redis failed) */
    int64_t duration_ms; /* handler run time */
    int tainted;         /* the handler was interrupted: this process should exit */
};

/* "done", "retry", "dead", "expired". */
const char *gh_job_outcome_name(enum gh_job_outcome o);

/* Runs one popped job on ctx (ctx->redis must be the connection it was
 * popped from) and acks or fails it. job is borrowed (the caller cleans it
 * up). Sets the logger's guild and correlation id (payload "corr") for the
 * run and logs one line: kind, id, attempt, status, duration_ms. Returns
 * GH_OK, or GH_EINVAL for bad arguments. */
int gh_worker_run_job(struct gh_ctx *ctx, const char *queue, struct gh_job *job, gh_worker_lookup_fn lookup,
                      struct gh_job_result *res);

/* Pops one job (waiting up to timeout_s; 0 = do not wait) and runs it. GH_OK (res
 * filled), GH_ENOTFOUND (nothing ready), GH_EREDIS, GH_EJSON (a malformed
 * job was dead-lettered by the queue). */
int gh_worker_step(struct gh_ctx *ctx, const char *queue, int timeout_s, gh_worker_lookup_fn lookup,
                   struct gh_job_result *res);

/* Runs jobs until nothing is ready (GH_OK), Redis fails (GH_EREDIS) or a job
 * was interrupted (GH_ETIMEOUT: the process should exit). *ran counts the
 * jobs run (may be NULL). */
int gh_worker_drain(struct gh_ctx *ctx, const char *queue, gh_worker_lookup_fn lookup, int *ran);

/* Builds (and tears down) the services of one process: pg, redis, rest,
 * logger, arena. Called in the parent and in every child after fork, so no
 * connection is shared across processes. */
typedef int (*gh_worker_ctx_open_fn)(struct gh_ctx *ctx, void *arg);
typedef void (*gh_worker_ctx_close_fn)(struct gh_ctx *ctx, void *arg);

struct gh_worker_opts {
    const char *queue; /* GH_QUEUE_DEFAULT when NULL */
    int concurrency;   /* children, >= 1 */
    int run_s;         /* how long a run takes jobs: WORKER_TICK_S + 5 */
    int grace_s;       /* after run_s, how long to wait for running jobs before SIGKILL; 0 = 40 */
    int once;          /* no fork: drain what is ready, flush the command log, return */
    int lease_ms;      /* 0 = JOB_LEASE_S from the parent's ctx->cfg, else 10 s */
    int batch;         /* jobs a child takes per poll; 0 = GH_WORKER_DEFAULT_BATCH */
    gh_worker_lookup_fn lookup;
    gh_worker_ctx_open_fn ctx_open;
    gh_worker_ctx_close_fn ctx_close;
    void *arg;
};

/* The whole run. SIGTERM/SIGINT: children finish their current job and
 * exit, then the parent flushes once more and returns. Returns the process
 * exit status: 0, or 1 when setup failed (logged). */
int gh_worker_run(const struct gh_worker_opts *opts);

#endif
