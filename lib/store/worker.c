/* worker.c - job dispatch and the worker process (see worker.h).
 *
 * The timeout uses SIGALRM and siglongjmp, which needs a little
 * process-wide state (the jump buffer and the stop flag a signal handler can
 * reach). That state is private to this file, and a process runs one job at
 * a time, so one buffer is enough. */
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "core/arena.h"
#include "core/config.h"
#include "core/ctx.h"
#include "core/err.h"
#include "core/log.h"
#include "core/str.h"
#include "core/timeutil.h"
#include "features/registry.h"
#include "store/cmdlog.h"
#include "store/joblog.h"
#include "store/queue.h"
#include "store/redis.h"
#include "store/timers.h"
#include "store/worker.h"
#include "web/metrics.h"

#define CMDLOG_BATCH 500
#define CMDLOG_ROUNDS 20    /* batches per flush at most, so the loop stays responsive */
#define RECOVERY_ALARM_S 10 /* after a timeout, recording the failure must finish in this */
#define RESPAWN_MIN_INTERVAL_MS 1000
#define DEFAULT_GRACE_S 40
#define MAX_CHILDREN 64
#define JOBLOG_BATCH 1000
#define JOBLOG_ROUNDS 20
#define RETENTION_CHECK_MS 60000
#define ACK_HOLD_MS 1000       /* held acks older than this are sent before the next job */
#define SUMMARY_EVERY_MS 10000 /* a child's info line summing up its successful runs */

/* The jobs a child holds (the batch it took: waiting, running, or finished
 * with the ack held back for the next take), published for the parent's
 * heartbeat: the child bumps seq to odd, writes ids, bumps it to even; the
 * parent reads only an even, unchanged seq. n = 0 means idle. Extending the
 * lease of a job already acked or failed does nothing (ZADD XX). */
struct hb_slot {
    atomic_uint seq;
    int n;
    char id[GH_QUEUE_TAKE_MAX][160];
};

#ifdef GH_COVERAGE
void __gcov_dump(void);
#endif

/* A worker child leaves with _exit: its connections and stdio belong to the
 * parent's copies. Coverage builds (make coverage) first write the child's
 * counters, which _exit would discard. */
static _Noreturn void child_exit(int status)
{
#ifdef GH_COVERAGE
    __gcov_dump();
#endif
    _exit(status);
}

static struct hb_slot *hb_slots; /* MAP_SHARED, MAX_CHILDREN of them (parent) */
static struct hb_slot *my_slot;  /* this child's slot, NULL outside a forked run */

static sigjmp_buf timeout_jmp;
static volatile sig_atomic_t timeout_armed;
static volatile sig_atomic_t stop_requested;

const char *gh_job_outcome_name(enum gh_job_outcome o)
{
    switch (o) {
    case GH_JOB_DONE:
        return "done";
    case GH_JOB_RETRY:
        return "retry";
    case GH_JOB_DEAD:
        return "dead";
    case GH_JOB_EXPIRED:
        return "expired";
    }
    return "unknown";
}

static void slot_set(const struct gh_job *jobs, int n)
{
    if (!my_slot)
        return;
    atomic_fetch_add(&my_slot->seq, 1);
    my_slot->n = 0;
    for (int i = 0; i < n && i < GH_QUEUE_TAKE_MAX; i++)
        memcpy(my_slot->id[my_slot->n++], jobs[i].id, sizeof(jobs[i].id));
    atomic_fetch_add(&my_slot->seq, 1);
}

static void slot_clear(struct hb_slot *s)
{
    atomic_fetch_add(&s->seq, 1);
    s->n = 0;
    atomic_fetch_add(&s->seq, 1);
}

/* Copies slot i's ids into out (none when idle or being written). Returns
 * how many. */
static int slot_read(int i, char (*out)[160])
{
    unsigned a = atomic_load(&hb_slots[i].seq), b;
    int n;

    if (a & 1u)
        return 0;
    n = hb_slots[i].n;
    if (n < 0 || n > GH_QUEUE_TAKE_MAX)
        return 0;
    for (int k = 0; k < n; k++) {
        memcpy(out[k], hb_slots[i].id[k], sizeof(out[k]));
        out[k][sizeof(out[k]) - 1] = '\0';
    }
    b = atomic_load(&hb_slots[i].seq);
    return a == b ? n : 0;
}

/* This process's pid (fork-safe: refreshed in every child). */
static pid_t self_pid;

static pid_t my_pid(void)
{
    if (self_pid == 0)
        self_pid = getpid();
    return self_pid;
}

/* A fresh correlation id for a job without one: 16 hex digits, a random
 * per-process prefix and a counter (no syscall per job). */
static void new_corr(struct gh_logger *lg)
{
    static uint32_t prefix;
    static pid_t prefix_pid;
    static uint32_t counter;

    if (prefix_pid != my_pid()) {
        gh_logger_new_corr(lg); /* random: seed the prefix from it */
        prefix = (uint32_t)strtoul(lg->corr + 8, NULL, 16);
        prefix_pid = my_pid();
        counter = 0;
        return;
    }
    snprintf(lg->corr, sizeof(lg->corr), "%08" PRIx32 "%08" PRIx32, prefix, ++counter);
}

static int lease_ms_of(const struct gh_ctx *ctx)
{
    return ctx && ctx->cfg && ctx->cfg->job_lease_s > 0 ? ctx->cfg->job_lease_s * 1000
                                                        : GH_QUEUE_DEFAULT_LEASE_MS;
}

static void on_alarm(int sig)
{
    (void)sig;
    if (timeout_armed) {
        timeout_armed = 0;
        siglongjmp(timeout_jmp, 1);
    }
}

static void on_stop(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL); /* a signal may end it early: callers re-check their clock */
}

/* One log line per run: {"kind","job_id","attempt","status","duration_ms","error"?,"late_ms"?}.
 * Successful runs log at debug (a worker child sums them up at info every
 * SUMMARY_EVERY_MS); failures, retries, expiries at warn or error. */
static void log_run(struct gh_ctx *ctx, enum gh_log_level lvl, const struct gh_job *job, const char *status,
                    int64_t duration_ms, const char *error, int64_t late_ms)
{
    json_object *f;

    if (!ctx->log.sink || lvl < ctx->log.sink->min_level)
        return; /* not written: do not build it */
    f = json_object_new_object();

    if (f) {
        json_object_object_add(f, "kind", json_object_new_string(job->kind));
        json_object_object_add(f, "job_id", json_object_new_string(job->id));
        json_object_object_add(f, "attempt", json_object_new_int(job->attempt));
        json_object_object_add(f, "status", json_object_new_string(status));
        json_object_object_add(f, "duration_ms", json_object_new_int64(duration_ms));
        if (error)
            json_object_object_add(f, "error", json_object_new_string(error));
        if (late_ms > 0)
            json_object_object_add(f, "late_ms", json_object_new_int64(late_ms));
    }
    gh_log_fields(&ctx->log, lvl, 0, f ? json_object_to_json_string_ext(f, JSON_C_TO_STRING_PLAIN) : NULL,
                  "job %s %s: %s", job->kind, job->id, status);
    json_object_put(f);
}

/* The request-scoped parts of the logger for this job. */
static void scope_logger(struct gh_ctx *ctx, const struct gh_job *job)
{
    json_object *v = NULL;

    ctx->log.guild_id = job->guild_id;
    ctx->log.user_id = 0;
    if (job->payload && json_object_object_get_ex(job->payload, "corr", &v) &&
        json_object_is_type(v, json_type_string) && json_object_get_string_len(v) > 0 &&
        (size_t)json_object_get_string_len(v) < sizeof(ctx->log.corr))
        snprintf(ctx->log.corr, sizeof(ctx->log.corr), "%s", json_object_get_string(v));
    else
        new_corr(&ctx->log);
}

/* 1 while on_alarm is SIGALRM's handler in this process (installed once, not
 * per job; fail_after_timeout resets it). */
static int alarm_installed;

/* Runs the handler with an alarm. *timed_out set when it was interrupted. A
 * stray SIGALRM outside a run finds timeout_armed 0 and does nothing. */
static int run_with_timeout(struct gh_ctx *ctx, const struct gh_job_kind *kind, const struct gh_job *job,
                            int timeout_s, int *timed_out)
{
    volatile int rc = GH_ETIMEOUT;

    *timed_out = 0;
    if (!alarm_installed) {
        struct sigaction sa;

        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = on_alarm;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGALRM, &sa, NULL);
        alarm_installed = 1;
    }
    if (sigsetjmp(timeout_jmp, 1) == 0) {
        timeout_armed = 1;
        alarm((unsigned)timeout_s);
        rc = kind->run(ctx, job);
        timeout_armed = 0;
        alarm(0);
    } else {
        *timed_out = 1;
        rc = GH_ETIMEOUT;
    }
    timeout_armed = 0;
    return rc;
}

/* Records a failure after an interrupted handler: ctx->redis may be in the
 * middle of a reply, so a fresh connection is used when the URL is known,
 * and an alarm bounds the whole attempt. */
static int fail_after_timeout(struct gh_ctx *ctx, const char *queue, const struct gh_job *job,
                              int max_attempts, int backoff_base_ms, const char *entry)
{
    struct gh_redis *fresh = NULL;
    int rc;

    signal(SIGALRM, SIG_DFL); /* if recording hangs, the process dies and the lease returns the job */
    alarm_installed = 0;
    alarm(RECOVERY_ALARM_S);
    if (ctx->cfg && ctx->cfg->redis_url[0])
        fresh = gh_redis_new(ctx->cfg->redis_url, ctx->cfg->redis_timeout_ms, &ctx->log);
    rc = gh_queue_fail_ex(fresh ? fresh : ctx->redis, queue, job, max_attempts, backoff_base_ms, "timed out",
                          entry, NULL);
    gh_redis_free(fresh);
    alarm(0);
    return rc;
}

/* The job_runs entry of this run (NULL on no memory: the run is then only in the log line). */
static char *run_entry(const char *queue, const struct gh_job *job, const char *status, const char *error,
                       int64_t started_ms, int64_t duration_ms)
{
    struct gh_joblog_run run = {.queue = queue,
                                .job = job,
                                .status = status,
                                .error = error,
                                .started_ms = started_ms,
                                .finished_ms = gh_now_ms(),
                                .duration_ms = duration_ms,
                                .pid = (int)my_pid()};

    return gh_joblog_entry(&run);
}

static void count_run(struct gh_metrics_batch *mb, const struct gh_job_kind *kind, const char *status)
{
    char labels[160];

    snprintf(labels, sizeof(labels), "kind=\"%s\",status=\"%s\"", kind ? kind->kind : "unknown", status);
    gh_metrics_batch_incr(mb, "gh_jobs_total", labels, 1);
}

/* Tells the timers module how a timer job's run ended (not after an
 * interrupted run: its connections may be mid-request; the row then stays
 * queued and is promoted again after the timers' grace period). */
static void timer_finished(struct gh_ctx *ctx, const struct gh_job *job, int ok, int final, const char *error)
{
    int rc;

    if (gh_timers_job_timer_id(job) <= 0)
        return;
    rc = gh_timers_job_finished(ctx, job, ok, final, error);
    if (rc != GH_OK && rc != GH_ENOTFOUND)
        GH_WARN(&ctx->log, "job %s: the timer was not told how the run ended (%s)", job->id, gh_strerror(rc));
}

/* Acks a job that is not run (expired, or a cancelled timer) and records it. */
static void drop_job(struct gh_ctx *ctx, const char *queue, const struct gh_job *job,
                     const struct gh_job_kind *kind, struct gh_job_result *res, const char *why,
                     int64_t late_ms, struct gh_metrics_batch *mb)
{
    char *entry = run_entry(queue, job, "expired", why, 0, 0);

    res->outcome = GH_JOB_EXPIRED;
    res->rc = GH_EEXPIRED;
    res->queue_rc = gh_queue_ack_ex(ctx->redis, queue, job, "expired", entry);
    free(entry);
    count_run(mb, kind, "expired");
    log_run(ctx, GH_LOG_WARN, job, "expired", 0, why, late_ms);
}

/* gh_worker_run_job; acks NULL: ack at once, else a successful run's ack is
 * held in acks for the next take (run_batch). */
static int run_job(struct gh_ctx *ctx, const char *queue, struct gh_job *job, gh_worker_lookup_fn lookup,
                   struct gh_job_result *res, struct gh_queue_acks *acks)
{
    const struct gh_job_kind *kind = NULL;
    const struct gh_feature *feature = NULL;
    struct gh_metrics_batch mb;
    char labels[96];
    char *entry = NULL;
    const char *status, *error = NULL;
    int64_t now, t0, started, since, kind_deadline;
    int timeout_s, max_attempts, backoff, timed_out = 0, final;

    if (!ctx || !job || !res)
        return GH_EINVAL;
    memset(res, 0, sizeof(*res));
    if (!queue)
        queue = GH_QUEUE_DEFAULT;
    scope_logger(ctx, job);
    gh_metrics_batch_init(&mb);

    now = gh_now_ms();
    if (gh_job_expired(job, now)) {
        drop_job(ctx, queue, job, lookup ? lookup(job->kind, &feature) : NULL, res,
                 "deadline passed before the job ran", now - job->deadline_ms, &mb);
        goto out;
    }

    kind = lookup ? lookup(job->kind, &feature) : NULL;
    if (!kind || !kind->run) {
        kind = NULL;
        res->outcome = GH_JOB_DEAD;
        res->rc = GH_ENOTFOUND;
        entry = run_entry(queue, job, "dead", "unknown job kind", 0, 0);
        res->queue_rc = gh_queue_fail_ex(ctx->redis, queue, job, 1, 0, "unknown job kind", entry, NULL);
        count_run(&mb, NULL, "dead");
        log_run(ctx, GH_LOG_ERROR, job, "dead", 0, "unknown job kind", 0);
        timer_finished(ctx, job, 0, 1, "unknown job kind");
        goto out;
    }
    kind_deadline = kind->deadline_s > 0 && job->deadline_ms == 0 && job->enqueued_ms > 0
                        ? job->enqueued_ms + (int64_t)kind->deadline_s * 1000
                        : 0;
    if (kind_deadline > 0 && now >= kind_deadline) {
        drop_job(ctx, queue, job, kind, res, "the kind's deadline passed before the job ran",
                 now - kind_deadline, &mb);
        timer_finished(ctx, job, 0, 1, "expired");
        goto out;
    }
    timeout_s = kind->timeout_s > 0 ? kind->timeout_s : GH_WORKER_DEFAULT_TIMEOUT_S;
    max_attempts = kind->max_attempts > 0 ? kind->max_attempts : GH_WORKER_DEFAULT_ATTEMPTS;
    backoff = kind->backoff_base_ms > 0 ? kind->backoff_base_ms : GH_QUEUE_BACKOFF_BASE_MS;

    if (job->attempt > max_attempts) { /* the reaper gave it back after every attempt */
        static const char why[] = "its worker died during the last attempt (lease expired)";
        res->outcome = GH_JOB_DEAD;
        res->rc = GH_ETIMEOUT;
        entry = run_entry(queue, job, "dead", why, 0, 0);
        res->queue_rc = gh_queue_fail_ex(ctx->redis, queue, job, 1, backoff, why, entry, NULL);
        count_run(&mb, kind, "dead");
        log_run(ctx, GH_LOG_ERROR, job, "dead", 0, why, 0);
        timer_finished(ctx, job, 0, 1, why);
        goto out;
    }
    if (gh_timers_job_timer_id(job) > 0) {
        int trc = gh_timers_job_started(ctx, job);
        if (trc == GH_ECONFLICT || trc == GH_ENOTFOUND) {
            drop_job(ctx, queue, job, kind, res, "timer cancelled, finished or deleted: not run", 0, &mb);
            goto out;
        }
    }
    if (!my_slot) /* no parent extends the lease: cover the whole run */
        gh_queue_renew(ctx->redis, queue, job->id, timeout_s * 1000 + lease_ms_of(ctx));

    started = gh_now_ms();
    since = job->due_ms > 0 ? job->due_ms : job->enqueued_ms;
    if (since > 0) {
        snprintf(labels, sizeof(labels), "queue=\"%s\"", queue);
        gh_metrics_batch_observe(&mb, "gh_job_lateness_seconds", labels,
                                 started > since ? (double)(started - since) / 1000.0 : 0.0);
    }
    t0 = gh_mono_ms();
    res->rc = run_with_timeout(ctx, kind, job, timeout_s, &timed_out);
    res->duration_ms = gh_mono_ms() - t0;

    if (timed_out) {
        res->tainted = 1;
        res->outcome = job->attempt >= max_attempts ? GH_JOB_DEAD : GH_JOB_RETRY;
        status = res->outcome == GH_JOB_DEAD ? "dead" : "timeout";
        entry = run_entry(queue, job, status, "timed out", started, res->duration_ms);
        res->queue_rc = fail_after_timeout(ctx, queue, job, max_attempts, backoff, entry);
        count_run(&mb, kind, status);
        log_run(ctx, GH_LOG_ERROR, job, gh_job_outcome_name(res->outcome), res->duration_ms, "timed out", 0);
        if (res->outcome == GH_JOB_DEAD)
            GH_WARN(&ctx->log, "job %s: dead after a timeout; its timer (if any) is settled by the scheduler",
                    job->id);
        goto out;
    }
    if (res->rc == GH_OK) {
        res->outcome = GH_JOB_DONE;
        entry = run_entry(queue, job, "done", NULL, started, res->duration_ms);
        if (!acks || gh_queue_ack_defer(acks, job, "done", entry) != GH_OK)
            res->queue_rc = gh_queue_ack_ex(ctx->redis, queue, job, "done", entry);
        count_run(&mb, kind, "done");
        log_run(ctx, GH_LOG_DEBUG, job, "done", res->duration_ms, NULL, 0);
        timer_finished(ctx, job, 1, 1, NULL);
        goto out;
    }
    if (res->rc == GH_EINVAL || res->rc == GH_EJSON)
        max_attempts = job->attempt; /* the payload is unusable: another attempt cannot help */
    res->outcome = job->attempt >= max_attempts ? GH_JOB_DEAD : GH_JOB_RETRY;
    final = res->outcome == GH_JOB_DEAD;
    error = gh_strerror(res->rc);
    status = gh_job_outcome_name(res->outcome);
    entry = run_entry(queue, job, status, error, started, res->duration_ms);
    res->queue_rc = gh_queue_fail_ex(ctx->redis, queue, job, max_attempts, backoff, error, entry, NULL);
    count_run(&mb, kind, status);
    log_run(ctx, final ? GH_LOG_ERROR : GH_LOG_WARN, job, status, res->duration_ms, error, 0);
    timer_finished(ctx, job, 0, final, error);
out:
    free(entry);
    gh_metrics_defer(ctx->redis, &mb);
    if (res->queue_rc != GH_OK)
        GH_ERROR(&ctx->log, "job %s: could not record its outcome (%s); the lease will return it", job->id,
                 gh_strerror(res->queue_rc));
    if (ctx->arena)
        gh_arena_reset(ctx->arena);
    return GH_OK;
}

int gh_worker_run_job(struct gh_ctx *ctx, const char *queue, struct gh_job *job, gh_worker_lookup_fn lookup,
                      struct gh_job_result *res)
{
    return run_job(ctx, queue, job, lookup, res, NULL);
}

int gh_worker_step(struct gh_ctx *ctx, const char *queue, int timeout_s, gh_worker_lookup_fn lookup,
                   struct gh_job_result *res)
{
    struct gh_queue_poll p;
    struct gh_job job;
    int rc, n = 0;

    if (!ctx || !res)
        return GH_EINVAL;
    if (!queue)
        queue = GH_QUEUE_DEFAULT;
    memset(res, 0, sizeof(*res));
    memset(&job, 0, sizeof(job));
    memset(&p, 0, sizeof(p));
    p.lease_ms = lease_ms_of(ctx);
    p.max = 1;
    p.wait_ms = (timeout_s < 0 ? 0 : timeout_s) * 1000;
    rc = gh_queue_take(ctx->redis, queue, &p, &job, &n);
    if (rc == GH_OK)
        rc = gh_worker_run_job(ctx, queue, &job, lookup, res);
    gh_job_cleanup(&job);
    return rc;
}

int gh_worker_drain(struct gh_ctx *ctx, const char *queue, gh_worker_lookup_fn lookup, int *ran)
{
    struct gh_job_result res;
    int n = 0, rc = GH_OK;

    if (!queue)
        queue = GH_QUEUE_DEFAULT;
    while (!stop_requested) {
        rc = gh_worker_step(ctx, queue, 0, lookup, &res);
        if (rc == GH_ENOTFOUND) { /* nothing ready: drained */
            rc = GH_OK;
            break;
        }
        if (rc == GH_EJSON) /* a malformed job was dead-lettered by the queue */
            continue;
        if (rc != GH_OK)
            break;
        n++;
        if (res.tainted) {
            rc = GH_ETIMEOUT;
            break;
        }
    }
    if (ctx && ctx->redis)
        gh_metrics_flush(ctx->redis);
    if (ran)
        *ran = n;
    return rc;
}

/* ------------------------------------------------------------------------ */
/* the process */

static void install_stop_handlers(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_stop;
    sa.sa_flags = SA_RESTART; /* let a running job's I/O continue; loops poll the flag */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

/* Moves the command log to PostgreSQL; a full batch means more is waiting. */
static void flush_cmdlog(struct gh_ctx *ctx)
{
    for (int i = 0; i < CMDLOG_ROUNDS; i++) {
        int n = gh_cmdlog_flush(ctx, CMDLOG_BATCH);
        if (n < 0) {
            GH_WARN(&ctx->log, "command log flush failed (%s); entries stay queued", gh_strerror(n));
            return;
        }
        if (n < CMDLOG_BATCH)
            return;
    }
}

/* Moves the queue's job_runs entries to PostgreSQL. */
static void flush_joblog(struct gh_ctx *ctx, const char *queue)
{
    for (int i = 0; i < JOBLOG_ROUNDS; i++) {
        int n = gh_joblog_flush(ctx, queue, JOBLOG_BATCH);
        if (n < 0) {
            GH_WARN(&ctx->log, "job log flush failed (%s); entries stay queued", gh_strerror(n));
            return;
        }
        if (n < JOBLOG_BATCH)
            return;
    }
}

static void flush_logs(struct gh_ctx *ctx, const char *queue)
{
    flush_cmdlog(ctx);
    flush_joblog(ctx, queue);
}

/* Successful runs since a child's last summary line (they log at debug). */
struct run_tally {
    long long done, failed;
    int64_t since_mono;
};

static void tally_log(struct gh_ctx *ctx, struct run_tally *t, int64_t now_mono)
{
    if (t->done > 0 || t->failed > 0)
        GH_INFO(&ctx->log, "worker: %lld job(s) done, %lld not (logged above), in the last %.1f s", t->done,
                t->failed, (double)(now_mono - t->since_mono) / 1000.0);
    t->done = t->failed = 0;
    t->since_mono = now_mono;
}

/* Sends the acks held back now (not with a take). */
static void flush_acks(struct gh_ctx *ctx, struct gh_redis *r, const char *queue, struct gh_queue_acks *acks)
{
    int held = acks->n, acked = 0, rc;

    if (held == 0)
        return;
    rc = gh_queue_ack_flush(r, queue, acks, &acked);
    if (rc != GH_OK)
        GH_ERROR(
            &ctx->log,
            "worker: could not ack %d finished job(s) (%s); kept to send again, or their leases return them",
            held, gh_strerror(rc));
    else if (acked < held)
        GH_WARN(&ctx->log, "worker: %d of %d finished job(s) were no longer in processing (reaped)",
                held - acked, held);
}

/* After an interrupted job: the acks held for the batch go over a fresh
 * connection (ctx->redis may be mid-reply), bounded by an alarm. */
static void flush_acks_fresh(struct gh_ctx *ctx, const char *queue, struct gh_queue_acks *acks)
{
    struct gh_redis *fresh;

    if (acks->n == 0 || !ctx->cfg || !ctx->cfg->redis_url[0])
        return;
    signal(SIGALRM, SIG_DFL);
    alarm_installed = 0;
    alarm(RECOVERY_ALARM_S);
    fresh = gh_redis_new(ctx->cfg->redis_url, ctx->cfg->redis_timeout_ms, &ctx->log);
    if (fresh)
        flush_acks(ctx, fresh, queue, acks);
    gh_redis_free(fresh);
    alarm(0);
}

/* Runs a batch, or gives its jobs back when the run is ending. Successful
 * runs' acks are held in acks and go with the next take (one script per
 * batch); the parent keeps every job of the batch leased meanwhile. Held
 * acks older than ACK_HOLD_MS (slow jobs) are sent before the next job. */
static void run_batch(struct gh_ctx *ctx, const struct gh_worker_opts *o, const char *queue,
                      struct gh_job *jobs, int n, int lease_ms, int64_t end_mono, struct gh_queue_acks *acks,
                      struct run_tally *tally)
{
    struct gh_job_result res;
    int64_t held_since = gh_mono_ms();

    slot_set(jobs, n);
    for (int i = 0; i < n; i++) {
        if (stop_requested || gh_mono_ms() >= end_mono) {
            gh_queue_release(ctx->redis, queue, &jobs[i]);
            continue;
        }
        if (acks->n > 0 && gh_mono_ms() - held_since > ACK_HOLD_MS) {
            flush_acks(ctx, ctx->redis, queue, acks);
            held_since = gh_mono_ms();
        }
        if (i > 0 && gh_now_ms() - jobs[i].taken_ms > lease_ms / 3) {
            int held = gh_queue_renew(ctx->redis, queue, jobs[i].id, lease_ms);
            if (held == 0) {
                GH_WARN(&ctx->log,
                        "job %s: its lease expired while it waited in a batch; another worker has it",
                        jobs[i].id);
                continue;
            }
        }
        run_job(ctx, queue, &jobs[i], o->lookup, &res, acks);
        if (res.outcome == GH_JOB_DONE)
            tally->done++;
        else
            tally->failed++;
        if (res.tainted) {
            GH_WARN(&ctx->log, "worker child %d: a job was interrupted, exiting to start clean",
                    (int)my_pid());
            flush_acks_fresh(ctx, queue, acks);
            child_exit(3); /* connections may be mid-request: do not reuse or close them */
        }
    }
}

/* A child: take jobs until the run ends or a stop is asked. Exit status 0,
 * 2 when the services could not be set up, 3 after an interrupted job. */
static int child_main(const struct gh_worker_opts *o, const char *queue, int64_t end_mono, int lease_ms)
{
    struct gh_job jobs[GH_QUEUE_TAKE_MAX];
    struct gh_queue_acks acks;
    struct run_tally tally;
    struct gh_queue_poll p;
    struct gh_ctx ctx;
    int status = 0, acked = 0;

    memset(&ctx, 0, sizeof(ctx));
    memset(jobs, 0, sizeof(jobs));
    memset(&acks, 0, sizeof(acks));
    if (o->ctx_open(&ctx, o->arg) != GH_OK) {
        status = 2;
        goto out;
    }
    ctx.log.component = "worker";
    memset(&p, 0, sizeof(p));
    p.lease_ms = lease_ms;
    p.max = o->batch > 0 ? (o->batch > GH_QUEUE_TAKE_MAX ? GH_QUEUE_TAKE_MAX : o->batch)
                         : GH_WORKER_DEFAULT_BATCH;
    p.wait_ms = 1000;
    p.acks = &acks;
    p.acks_done = &acked;
    tally.done = tally.failed = 0;
    tally.since_mono = gh_mono_ms();
    while (!stop_requested && gh_mono_ms() < end_mono) {
        int n = 0, held = acks.n, rc;
        int64_t now;

        acked = 0;
        rc = gh_queue_take(ctx.redis, queue, &p, jobs, &n);
        /* gh_queue_take sent the held acks (through p.acks) and emptied the list. */
        // cppcheck-suppress incorrectLogicOperator
        if (held > 0 && acks.n == 0 && acked < held)
            GH_WARN(&ctx.log, "worker: %d of %d finished job(s) were no longer in processing (reaped)",
                    held - acked, held);
        if (rc == GH_OK)
            run_batch(&ctx, o, queue, jobs, n, lease_ms, end_mono, &acks, &tally);
        for (int i = 0; i < n; i++)
            gh_job_cleanup(&jobs[i]);
        if (rc == GH_EREDIS) {
            GH_WARN(&ctx.log, "worker: Redis unavailable, retrying");
            sleep_ms(500);
        }
        now = gh_mono_ms();
        gh_metrics_flush_due(ctx.redis, now);
        if (now - tally.since_mono >= SUMMARY_EVERY_MS)
            tally_log(&ctx, &tally, now);
    }
    flush_acks(&ctx, ctx.redis, queue, &acks);
    gh_queue_acks_cleanup(&acks); /* not sent: logged above; their leases return them */
    slot_set(NULL, 0);
    tally_log(&ctx, &tally, gh_mono_ms());
    gh_metrics_flush(ctx.redis);
out:
    if (o->ctx_close)
        o->ctx_close(&ctx, o->arg);
    return status;
}

static pid_t spawn_child(const struct gh_worker_opts *o, const char *queue, int64_t end_mono, int lease_ms,
                         int slot, const struct gh_logger *lg)
{
    pid_t pid;

    if (hb_slots) /* a dead child's job is not extended */
        slot_clear(&hb_slots[slot]);
    pid = fork();
    if (pid < 0) {
        gh_log(lg, GH_LOG_ERROR, errno, "worker: fork failed"); /* lg NULL: stderr */
        return -1;
    }
    if (pid == 0) {
        self_pid = getpid();
        stop_requested = 0;
        my_slot = hb_slots ? &hb_slots[slot] : NULL;
        install_stop_handlers();
        child_exit(child_main(o, queue, end_mono, lease_ms));
    }
    return pid;
}

static int run_once(const struct gh_worker_opts *o, const char *queue)
{
    struct gh_ctx ctx;
    int ran = 0, rc, status = 0;

    memset(&ctx, 0, sizeof(ctx));
    install_stop_handlers();
    if (o->ctx_open(&ctx, o->arg) != GH_OK) {
        status = 1;
        goto out;
    }
    rc = gh_worker_drain(&ctx, queue, o->lookup, &ran);
    if (rc != GH_OK) {
        GH_ERROR(&ctx.log, "worker --once: stopped early: %s", gh_strerror(rc));
        status = 1;
    }
    flush_logs(&ctx, queue);
    if (ctx.pg)
        gh_joblog_retention(&ctx, 0);
    GH_INFO(&ctx.log, "worker --once: ran %d job(s)", ran);
out:
    if (o->ctx_close)
        o->ctx_close(&ctx, o->arg);
    return status;
}

/* Extends the leases of the jobs the live children hold. */
static void heartbeat(struct gh_ctx *ctx, const char *queue, const pid_t *pids, int n, int lease_ms)
{
    static char ids[GH_QUEUE_TAKE_MAX][160];
    const char *ptrs[GH_QUEUE_TAKE_MAX];
    int failed = 0;

    for (int i = 0; i < n; i++) {
        int k;

        if (pids[i] <= 0)
            continue;
        k = slot_read(i, ids);
        for (int j = 0; j < k; j++)
            ptrs[j] = ids[j];
        if (k > 0 && gh_queue_extend(ctx->redis, queue, ptrs, k, lease_ms) != GH_OK)
            failed += k;
    }
    if (failed > 0)
        GH_WARN(&ctx->log, "worker: could not extend %d running job lease(s)", failed);
}

int gh_worker_run(const struct gh_worker_opts *o)
{
    const char *queue = o && o->queue ? o->queue : GH_QUEUE_DEFAULT;
    pid_t pids[MAX_CHILDREN] = {0};
    int64_t spawned_at[MAX_CHILDREN] = {0};
    struct gh_ctx ctx;
    int64_t start, end, kill_at, next_flush, next_beat, next_retention;
    int n, alive = 0, status = 0, sent_term = 0, lease_ms, beat_ms;

    if (!o || !o->ctx_open || o->concurrency < 1 || o->run_s < 1)
        return 1;
    if (o->once)
        return run_once(o, queue);
    n = o->concurrency > MAX_CHILDREN ? MAX_CHILDREN : o->concurrency;
    memset(&ctx, 0, sizeof(ctx));
    stop_requested = 0;
    install_stop_handlers();
    start = gh_mono_ms();
    end = start + (int64_t)o->run_s * 1000;
    kill_at = end + (int64_t)(o->grace_s > 0 ? o->grace_s : DEFAULT_GRACE_S) * 1000;
    lease_ms = o->lease_ms > 0 ? o->lease_ms : GH_QUEUE_DEFAULT_LEASE_MS;
    beat_ms = lease_ms / 4 < 100 ? 100 : (lease_ms / 4 > 2500 ? 2500 : lease_ms / 4);
    if (!hb_slots) {
        void *m = mmap(NULL, sizeof(struct hb_slot) * MAX_CHILDREN, PROT_READ | PROT_WRITE,
                       MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        hb_slots = m == MAP_FAILED ? NULL : m; /* without it, leases are not extended (logged below) */
    }
    if (hb_slots)
        memset(hb_slots, 0, sizeof(struct hb_slot) * MAX_CHILDREN);

    /* Children first, before the parent opens connections they would inherit. */
    for (int i = 0; i < n; i++) {
        pids[i] = spawn_child(o, queue, end, lease_ms, i, NULL);
        spawned_at[i] = gh_mono_ms();
        alive += pids[i] > 0;
    }
    if (o->ctx_open(&ctx, o->arg) != GH_OK)
        status = 1; /* keep supervising the children; only the flush and heartbeat are lost */
    ctx.log.component = "worker";
    if (!hb_slots)
        GH_ERROR(&ctx.log, "worker: no shared memory for the heartbeat (%s); long jobs may run twice",
                 strerror(errno));
    GH_INFO(&ctx.log, "worker run: %d children, %d s, queue %s, lease %d ms", alive, o->run_s, queue,
            lease_ms);

    next_flush = next_beat = gh_mono_ms();
    next_retention = next_flush + 5000;
    while (alive > 0) {
        int64_t now = gh_mono_ms();
        int wst = 0;
        pid_t pid;

        if (stop_requested && !sent_term) {
            GH_INFO(&ctx.log, "worker: stop requested, letting running jobs finish");
            for (int i = 0; i < n; i++)
                if (pids[i] > 0)
                    kill(pids[i], SIGTERM);
            sent_term = 1;
        }
        if (now >= kill_at) {
            for (int i = 0; i < n; i++)
                if (pids[i] > 0) {
                    GH_ERROR(&ctx.log, "worker: child %d still running after the grace period, killing it",
                             (int)pids[i]);
                    kill(pids[i], SIGKILL);
                }
            kill_at = now + 60000;
        }
        while ((pid = waitpid(-1, &wst, WNOHANG)) > 0) {
            for (int i = 0; i < n; i++) {
                if (pids[i] != pid)
                    continue;
                pids[i] = 0;
                if (hb_slots) /* its job's lease now runs out, and the job is reaped */
                    slot_clear(&hb_slots[i]);
                alive--;
                if (!WIFEXITED(wst) || WEXITSTATUS(wst) != 0)
                    GH_WARN(&ctx.log, "worker: child %d ended (%s %d)", (int)pid,
                            WIFEXITED(wst) ? "status" : "signal",
                            WIFEXITED(wst) ? WEXITSTATUS(wst) : WTERMSIG(wst));
                /* Respawn while the run lasts, at most once a second per slot. */
                if ((!WIFEXITED(wst) || WEXITSTATUS(wst) != 0) && !stop_requested && now < end - 1000) {
                    if (now - spawned_at[i] < RESPAWN_MIN_INTERVAL_MS)
                        sleep_ms((int)(RESPAWN_MIN_INTERVAL_MS - (now - spawned_at[i])));
                    pids[i] = spawn_child(o, queue, end, lease_ms, i, &ctx.log);
                    spawned_at[i] = gh_mono_ms();
                    alive += pids[i] > 0;
                }
            }
        }
        if (status == 0 && hb_slots && gh_mono_ms() >= next_beat) {
            heartbeat(&ctx, queue, pids, n, lease_ms);
            next_beat = gh_mono_ms() + beat_ms;
        }
        if (status == 0 && gh_mono_ms() >= next_flush) {
            flush_logs(&ctx, queue);
            next_flush = gh_mono_ms() + 1000;
        }
        if (status == 0 && ctx.pg && gh_mono_ms() >= next_retention) {
            gh_joblog_retention(&ctx, 0); /* at most once an hour across workers */
            next_retention = gh_mono_ms() + RETENTION_CHECK_MS;
        }
        if (alive > 0)
            sleep_ms(beat_ms < 200 ? beat_ms : 200); /* SIGCHLD or SIGTERM ends it early */
    }
    if (status == 0)
        flush_logs(&ctx, queue);
    GH_INFO(&ctx.log, "worker run ended after %" PRId64 " ms", gh_mono_ms() - start);
    if (o->ctx_close)
        o->ctx_close(&ctx, o->arg);
    return status;
}
