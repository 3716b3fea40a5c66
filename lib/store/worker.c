/* worker.c - job dispatch and the worker process (see worker.h).
 *
 * The timeout uses SIGALRM and siglongjmp, which needs a little
 * process-wide state (the jump buffer and the stop flag a signal handler can
 * reach). That state is private to this file, and a process runs one job at
 * a time, so one buffer is enough. */
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
#include "store/queue.h"
#include "store/redis.h"
#include "store/worker.h"

#define CMDLOG_BATCH 500
#define CMDLOG_ROUNDS 20    /* batches per flush at most, so the loop stays responsive */
#define RECOVERY_ALARM_S 10 /* after a timeout, recording the failure must finish in this */
#define RESPAWN_MIN_INTERVAL_MS 1000
#define DEFAULT_GRACE_S 40
#define MAX_CHILDREN 64

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

/* One log line per run: {"kind","job_id","attempt","status","duration_ms","error"?,"late_ms"?}. */
static void log_run(struct gh_ctx *ctx, enum gh_log_level lvl, const struct gh_job *job, const char *status,
                    int64_t duration_ms, const char *error, int64_t late_ms)
{
    json_object *f = json_object_new_object();

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
        gh_logger_new_corr(&ctx->log);
}

/* Runs the handler with an alarm. *timed_out set when it was interrupted. */
static int run_with_timeout(struct gh_ctx *ctx, const struct gh_job_kind *kind, const struct gh_job *job,
                            int timeout_s, int *timed_out)
{
    struct sigaction sa, old;
    volatile int rc = GH_ETIMEOUT;

    *timed_out = 0;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_alarm;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGALRM, &sa, &old);
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
    sigaction(SIGALRM, &old, NULL);
    return rc;
}

/* Records a failure after an interrupted handler: ctx->redis may be in the
 * middle of a reply, so a fresh connection is used when the URL is known,
 * and an alarm bounds the whole attempt. */
static int fail_after_timeout(struct gh_ctx *ctx, const char *queue, const struct gh_job *job,
                              int max_attempts)
{
    struct gh_redis *fresh = NULL;
    int rc;

    signal(SIGALRM, SIG_DFL); /* if recording hangs, the process dies and the lease returns the job */
    alarm(RECOVERY_ALARM_S);
    if (ctx->cfg && ctx->cfg->redis_url[0])
        fresh = gh_redis_new(ctx->cfg->redis_url, ctx->cfg->redis_timeout_ms, &ctx->log);
    rc = gh_queue_fail(fresh ? fresh : ctx->redis, queue, job, max_attempts, "timed out");
    gh_redis_free(fresh);
    alarm(0);
    return rc;
}

int gh_worker_run_job(struct gh_ctx *ctx, const char *queue, struct gh_job *job, gh_worker_lookup_fn lookup,
                      struct gh_job_result *res)
{
    const struct gh_job_kind *kind = NULL;
    const struct gh_feature *feature = NULL;
    int64_t now, t0;
    int timeout_s, max_attempts, timed_out = 0;

    if (!ctx || !job || !res)
        return GH_EINVAL;
    memset(res, 0, sizeof(*res));
    if (!queue)
        queue = GH_QUEUE_DEFAULT;
    scope_logger(ctx, job);

    now = gh_now_ms();
    if (gh_job_expired(job, now)) {
        res->outcome = GH_JOB_EXPIRED;
        res->rc = GH_EEXPIRED;
        res->queue_rc = gh_queue_ack(ctx->redis, queue, job);
        log_run(ctx, GH_LOG_WARN, job, "expired", 0, "deadline passed before the job ran",
                now - job->deadline_ms);
        goto out;
    }

    kind = lookup ? lookup(job->kind, &feature) : NULL;
    if (!kind || !kind->run) {
        res->outcome = GH_JOB_DEAD;
        res->rc = GH_ENOTFOUND;
        res->queue_rc = gh_queue_fail(ctx->redis, queue, job, 1, "unknown job kind");
        log_run(ctx, GH_LOG_ERROR, job, "dead", 0, "unknown job kind", 0);
        goto out;
    }
    timeout_s = kind->timeout_s > 0 ? kind->timeout_s : GH_WORKER_DEFAULT_TIMEOUT_S;
    max_attempts = kind->max_attempts > 0 ? kind->max_attempts : GH_WORKER_DEFAULT_ATTEMPTS;

    t0 = gh_mono_ms();
    res->rc = run_with_timeout(ctx, kind, job, timeout_s, &timed_out);
    res->duration_ms = gh_mono_ms() - t0;

    if (timed_out) {
        res->tainted = 1;
        res->queue_rc = fail_after_timeout(ctx, queue, job, max_attempts);
        res->outcome = job->attempt >= max_attempts ? GH_JOB_DEAD : GH_JOB_RETRY;
        log_run(ctx, GH_LOG_ERROR, job, gh_job_outcome_name(res->outcome), res->duration_ms, "timed out", 0);
        goto out;
    }
    if (res->rc == GH_OK) {
        res->outcome = GH_JOB_DONE;
        res->queue_rc = gh_queue_ack(ctx->redis, queue, job);
        log_run(ctx, GH_LOG_INFO, job, "done", res->duration_ms, NULL, 0);
        goto out;
    }
    if (res->rc == GH_EINVAL || res->rc == GH_EJSON)
        max_attempts = 1; /* the payload is unusable: another attempt cannot help */
    res->outcome = job->attempt >= max_attempts ? GH_JOB_DEAD : GH_JOB_RETRY;
    res->queue_rc = gh_queue_fail(ctx->redis, queue, job, max_attempts, gh_strerror(res->rc));
    log_run(ctx, res->outcome == GH_JOB_DEAD ? GH_LOG_ERROR : GH_LOG_WARN, job,
            gh_job_outcome_name(res->outcome), res->duration_ms, gh_strerror(res->rc), 0);
out:
    if (res->queue_rc != GH_OK)
        GH_ERROR(&ctx->log, "job %s: could not record its outcome (%s); the lease will return it", job->id,
                 gh_strerror(res->queue_rc));
    if (ctx->arena)
        gh_arena_reset(ctx->arena);
    return GH_OK;
}

int gh_worker_step(struct gh_ctx *ctx, const char *queue, int timeout_s, gh_worker_lookup_fn lookup,
                   struct gh_job_result *res)
{
    struct gh_job job;
    int rc;

    if (!ctx || !res)
        return GH_EINVAL;
    if (!queue)
        queue = GH_QUEUE_DEFAULT;
    memset(res, 0, sizeof(*res));
    memset(&job, 0, sizeof(job));
    rc = gh_queue_pop(ctx->redis, queue, timeout_s < 0 ? 0 : timeout_s, &job);
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

/* A child: take jobs until the run ends or a stop is asked. Exit status 0,
 * 2 when the services could not be set up, 3 after an interrupted job. */
static int child_main(const struct gh_worker_opts *o, const char *queue, int64_t end_mono)
{
    struct gh_ctx ctx;
    struct gh_job_result res;
    int status = 0;

    memset(&ctx, 0, sizeof(ctx));
    if (o->ctx_open(&ctx, o->arg) != GH_OK) {
        status = 2;
        goto out;
    }
    ctx.log.component = "worker";
    while (!stop_requested && gh_mono_ms() < end_mono) {
        int rc = gh_worker_step(&ctx, queue, 1, o->lookup, &res);
        if (rc == GH_OK && res.tainted) {
            GH_WARN(&ctx.log, "worker child %d: a job was interrupted, exiting to start clean",
                    (int)getpid());
            _exit(3); /* connections may be mid-request: do not reuse or close them */
        }
        if (rc == GH_EREDIS) {
            GH_WARN(&ctx.log, "worker: Redis unavailable, retrying");
            sleep_ms(500);
        }
    }
out:
    if (o->ctx_close)
        o->ctx_close(&ctx, o->arg);
    return status;
}

static pid_t spawn_child(const struct gh_worker_opts *o, const char *queue, int64_t end_mono,
                         const struct gh_logger *lg)
{
    pid_t pid = fork();

    if (pid < 0) {
        gh_log(lg, GH_LOG_ERROR, errno, "worker: fork failed"); /* lg NULL: stderr */
        return -1;
    }
    if (pid == 0) {
        stop_requested = 0;
        install_stop_handlers();
        _exit(child_main(o, queue, end_mono));
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
    flush_cmdlog(&ctx);
    GH_INFO(&ctx.log, "worker --once: ran %d job(s)", ran);
out:
    if (o->ctx_close)
        o->ctx_close(&ctx, o->arg);
    return status;
}

int gh_worker_run(const struct gh_worker_opts *o)
{
    const char *queue = o && o->queue ? o->queue : GH_QUEUE_DEFAULT;
    pid_t pids[MAX_CHILDREN] = {0};
    int64_t spawned_at[MAX_CHILDREN] = {0};
    struct gh_ctx ctx;
    int64_t start, end, kill_at, next_flush;
    int n, alive = 0, status = 0, sent_term = 0;

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

    /* Children first, before the parent opens connections they would inherit. */
    for (int i = 0; i < n; i++) {
        pids[i] = spawn_child(o, queue, end, NULL);
        spawned_at[i] = gh_mono_ms();
        alive += pids[i] > 0;
    }
    if (o->ctx_open(&ctx, o->arg) != GH_OK)
        status = 1; /* keep supervising the children; only the flush is lost */
    ctx.log.component = "worker";
    GH_INFO(&ctx.log, "worker run: %d children, %d s, queue %s", alive, o->run_s, queue);

    next_flush = gh_mono_ms();
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
                alive--;
                if (!WIFEXITED(wst) || WEXITSTATUS(wst) != 0)
                    GH_WARN(&ctx.log, "worker: child %d ended (%s %d)", (int)pid,
                            WIFEXITED(wst) ? "status" : "signal",
                            WIFEXITED(wst) ? WEXITSTATUS(wst) : WTERMSIG(wst));
                /* Respawn while the run lasts, at most once a second per slot. */
                if ((!WIFEXITED(wst) || WEXITSTATUS(wst) != 0) && !stop_requested && now < end - 1000) {
                    if (now - spawned_at[i] < RESPAWN_MIN_INTERVAL_MS)
                        sleep_ms((int)(RESPAWN_MIN_INTERVAL_MS - (now - spawned_at[i])));
                    pids[i] = spawn_child(o, queue, end, &ctx.log);
                    spawned_at[i] = gh_mono_ms();
                    alive += pids[i] > 0;
                }
            }
        }
        if (status == 0 && gh_mono_ms() >= next_flush) {
            flush_cmdlog(&ctx);
            next_flush = gh_mono_ms() + 1000;
        }
        if (alive > 0)
            sleep_ms(200); /* SIGCHLD or SIGTERM ends it early */
    }
    if (status == 0)
        flush_cmdlog(&ctx);
    GH_INFO(&ctx.log, "worker run ended after %" PRId64 " ms", gh_mono_ms() - start);
    if (o->ctx_close)
        o->ctx_close(&ctx, o->arg);
    return status;
}
