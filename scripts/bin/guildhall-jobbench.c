/* guildhall-jobbench - the job system's benchmark (make bench, through
 * test/bench/jobs.sh; never a test). Reads DATABASE_URL / REDIS_URL like
 * every binary.
 *
 *   guildhall-jobbench drain --kind noop|pgrow [--n 20000] [--cpu 0] [--queue benchq]
 *       enqueues N jobs with unique ids, then drains them with one production
 *       worker run (gh_worker_run: one forked child taking batches under a
 *       lease, heartbeats, job_runs written) pinned to one CPU, and prints
 *       jobs/s and jobs per CPU-second of the worker processes (user + system
 *       of the worker and its child, from wait4: the same sum test/bench/cpu.py
 *       reads from /proc). bench:pgrow inserts one row per job into
 *       bench_job_rows; the row count is checked afterwards.
 *   guildhall-jobbench timers [--n 10000] [--span-s 60] [--lead-s 15] [--cpu 0]
 *       schedules N timers (kind bench:noop) due spread over one span starting
 *       lead-s from now, drains the default queue with a worker run while the
 *       separately started guildhall-scheduler promotes them, and prints the
 *       lateness (fired_at - due_at) p50 / p99 / max from scheduled_actions.
 *   guildhall-jobbench watch --pid P --n N
 *       follows the BullMQ peer (bench.mjs) from outside: samples the CPU of
 *       process P from /proc when its wait list first holds N jobs (enqueue
 *       done) and when wait and active are both empty (drained), and prints
 *       the drain's jobs/s and jobs per CPU-second.
 *   --redis-pid R (drain, watch) also samples redis-server's CPU over the
 *       drain and prints it per job ("redis_us_per_job", microseconds; it
 *       includes the bench's own progress polling, alike for both sides).
 *
 * Output: one line of JSON per command (the script compares them). */
#define _GNU_SOURCE /* sched_setaffinity, CPU_SET */
#include <errno.h>
#include <inttypes.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "app/app.h"
#include "core/ctx.h"
#include "core/err.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "features/registry.h"
#include "store/pg.h"
#include "store/queue.h"
#include "store/redis.h"
#include "store/timers.h"
#include "store/worker.h"

static struct gh_app app;

/* ---- the two job kinds ----------------------------------------------------------------- */

static int run_noop(struct gh_ctx *ctx, const struct gh_job *job)
{
    (void)ctx;
    (void)job;
    return GH_OK;
}

static int run_pgrow(struct gh_ctx *ctx, const struct gh_job *job)
{
    const char *p[1] = {job->id};

    PGresult *res = gh_pg_exec_prepared(
        ctx->pg, "bench_pgrow", "INSERT INTO bench_job_rows (id) VALUES ($1) ON CONFLICT DO NOTHING", 1, p);

    if (!res)
        return GH_EPG;
    PQclear(res);
    return GH_OK;
}

static const struct gh_job_kind bench_kinds[] = {
    {.kind = "bench:noop", .run = run_noop},
    {.kind = "bench:pgrow", .run = run_pgrow},
};

static const struct gh_job_kind *bench_lookup(const char *kind, const struct gh_feature **feature)
{
    if (feature)
        *feature = NULL;
    for (size_t i = 0; i < GH_COUNT(bench_kinds); i++)
        if (strcmp(bench_kinds[i].kind, kind) == 0)
            return &bench_kinds[i];
    return NULL;
}

static int ctx_open(struct gh_ctx *ctx, void *arg)
{
    return gh_app_ctx_open(arg, ctx, "jobbench", -1, 1);
}

static void ctx_close(struct gh_ctx *ctx, void *arg)
{
    (void)arg;
    gh_app_ctx_close(ctx);
}

/* ---- helpers --------------------------------------------------------------------------- */

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void pin(int cpu)
{
    cpu_set_t set;

    if (cpu < 0)
        return;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (sched_setaffinity(0, sizeof(set), &set) != 0)
        fprintf(stderr, "jobbench: cannot pin to CPU %d: %s\n", cpu, strerror(errno));
}

static double tv_s(struct timeval tv)
{
    return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

/* Forks one production worker run on queue (concurrency children, pinned to
 * cpu). Returns its pid. */
static pid_t start_worker(const char *queue, int concurrency, int cpu)
{
    pid_t pid = fork();

    if (pid == 0) {
        struct gh_worker_opts wo;

        pin(cpu);
        memset(&wo, 0, sizeof(wo));
        wo.queue = queue;
        wo.concurrency = concurrency;
        wo.run_s = 3600;
        wo.grace_s = 10;
        wo.lookup = bench_lookup;
        wo.ctx_open = ctx_open;
        wo.ctx_close = ctx_close;
        wo.arg = &app;
        _exit(gh_worker_run(&wo));
    }
    return pid;
}

/* Stops the worker run and returns its CPU seconds (it and its reaped children). */
static double stop_worker(pid_t pid)
{
    struct rusage ru;
    int st = 0;

    kill(pid, SIGTERM);
    memset(&ru, 0, sizeof(ru));
    if (wait4(pid, &st, 0, &ru) != pid)
        return -1;
    return tv_s(ru.ru_utime) + tv_s(ru.ru_stime);
}

static long long pg_count(struct gh_ctx *ctx, const char *sql)
{
    PGresult *res = gh_pg_exec(ctx->pg, sql, 0, NULL);
    long long v = -1;

    if (res && PQntuples(res) == 1)
        v = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return v;
}

static double proc_cpu(pid_t pid);

/* Redis CPU per job in microseconds ("redis_us_per_job"), -1 when unknown. */
static double redis_us_per_job(double c0, double c1, int n)
{
    return c0 >= 0 && c1 >= c0 && n > 0 ? (c1 - c0) * 1e6 / n : -1;
}

/* ---- drain ----------------------------------------------------------------------------- */

static int cmd_drain(const char *kind, int n, int cpu, const char *queue, pid_t redis_pid)
{
    struct gh_ctx ctx;
    struct gh_queue_stats st;
    char id[64], full_kind[32];
    json_object *payload = NULL;
    int64_t t0, t1, deadline;
    double cpu_s, r0 = -1, r1 = -1;
    long long rows = -1;
    pid_t w;
    int pg = strcmp(kind, "pgrow") == 0, rc = 1;

    memset(&ctx, 0, sizeof(ctx));
    if (ctx_open(&ctx, &app) != GH_OK)
        return 1;
    snprintf(full_kind, sizeof(full_kind), "bench:%s", kind);
    if (!bench_lookup(full_kind, NULL)) {
        fprintf(stderr, "jobbench: unknown kind %s (noop | pgrow)\n", kind);
        goto out;
    }
    if (pg &&
        (gh_pg_command(ctx.pg, "CREATE TABLE IF NOT EXISTS bench_job_rows (id text PRIMARY KEY)", 0, NULL) ||
         gh_pg_command(ctx.pg, "TRUNCATE bench_job_rows", 0, NULL))) {
        fprintf(stderr, "jobbench: cannot prepare bench_job_rows: %s\n", gh_pg_errmsg(ctx.pg));
        goto out;
    }
    payload = json_tokener_parse("{\"bench\":true}");
    for (int i = 0; i < n; i++) {
        snprintf(id, sizeof(id), "bench:%s:%" PRId64 ":%d", kind, gh_now_ms(), i);
        if (gh_queue_enqueue(ctx.redis, queue, id, full_kind, 0, payload, 0) != GH_OK) {
            fprintf(stderr, "jobbench: enqueue failed at %d\n", i);
            goto out;
        }
    }
    if (redis_pid > 0)
        r0 = proc_cpu(redis_pid);
    t0 = gh_mono_ms();
    w = start_worker(queue, 1, cpu);
    deadline = t0 + 600000;
    for (;;) {
        sleep_ms(5);
        if (gh_queue_stats(ctx.redis, queue, &st) == GH_OK && st.ready == 0 && st.processing == 0 &&
            st.delayed == 0)
            break;
        if (gh_mono_ms() > deadline) {
            fprintf(stderr, "jobbench: drain did not finish in 600 s\n");
            break;
        }
    }
    t1 = gh_mono_ms();
    if (redis_pid > 0)
        r1 = proc_cpu(redis_pid);
    cpu_s = stop_worker(w);
    if (pg)
        rows = pg_count(&ctx, "SELECT count(*) FROM bench_job_rows");
    printf("{\"impl\":\"guildhall\",\"kind\":\"%s\",\"jobs\":%d,\"drain_ms\":%" PRId64
           ",\"per_s\":%.0f,\"cpu_s\":%.3f,\"per_cpu_s\":%.0f,\"redis_us_per_job\":%.1f,"
           "\"dead\":%lld,\"rows\":%lld}\n",
           kind, n, t1 - t0, (double)n * 1000.0 / (double)(t1 - t0 > 0 ? t1 - t0 : 1), cpu_s,
           cpu_s > 0 ? (double)n / cpu_s : 0.0, redis_us_per_job(r0, r1, n), st.dead, rows);
    rc = (st.dead == 0 && (!pg || rows == n)) ? 0 : 1;
    if (rc)
        fprintf(stderr, "jobbench: %lld dead letter(s), %lld row(s) for %d jobs\n", st.dead, rows, n);
out:
    json_object_put(payload);
    ctx_close(&ctx, &app);
    return rc;
}

/* ---- timers ---------------------------------------------------------------------------- */

static int cmd_timers(int n, int span_s, int lead_s, int cpu)
{
    struct gh_ctx ctx;
    char key[80], sql[768];
    int64_t run = gh_now_ms(), first, deadline, id;
    json_object *payload = NULL;
    PGresult *res = NULL;
    pid_t w;
    int rc = 1;
    long long left = -1;

    memset(&ctx, 0, sizeof(ctx));
    if (ctx_open(&ctx, &app) != GH_OK)
        return 1;
    payload = json_tokener_parse("{\"bench\":true}");
    first = gh_now_ms() + (int64_t)lead_s * 1000;
    for (int i = 0; i < n; i++) {
        int64_t due = first + (int64_t)span_s * 1000 * i / n;
        snprintf(key, sizeof(key), "bench:%" PRId64 ":%d", run, i);
        if (gh_timers_schedule(&ctx, 0, "bench:noop", payload, key, due, &id) != GH_OK) {
            fprintf(stderr, "jobbench: schedule failed at %d\n", i);
            goto out;
        }
    }
    if (gh_now_ms() > first)
        fprintf(stderr, "jobbench: scheduling took longer than the lead (%d s): raise --lead-s\n", lead_s);
    w = start_worker(GH_QUEUE_DEFAULT, 2, cpu);
    deadline = gh_mono_ms() + ((int64_t)lead_s + span_s + 120) * 1000;
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM scheduled_actions WHERE kind = 'bench:noop' AND idempotency_key LIKE "
             "'bench:%" PRId64 ":%%' AND state IN ('pending', 'queued')",
             run);
    while (gh_mono_ms() < deadline) {
        sleep_ms(500);
        left = pg_count(&ctx, sql);
        if (left == 0)
            break;
    }
    (void)stop_worker(w);
    snprintf(
        sql, sizeof(sql),
        "SELECT count(*) FILTER (WHERE state = 'done'), "
        "coalesce(percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM fired_at - due_at)), -1), "
        "coalesce(percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM fired_at - due_at)), -1), "
        "coalesce(max(extract(epoch FROM fired_at - due_at)), -1) "
        "FROM scheduled_actions WHERE kind = 'bench:noop' AND idempotency_key LIKE 'bench:%" PRId64 ":%%'",
        run);
    res = gh_pg_exec(ctx.pg, sql, 0, NULL);
    if (!res || PQntuples(res) != 1) {
        fprintf(stderr, "jobbench: lateness query failed: %s\n", gh_pg_errmsg(ctx.pg));
        goto out;
    }
    printf("{\"timers\":%d,\"span_s\":%d,\"done\":%s,\"p50_s\":%.3f,\"p99_s\":%.3f,\"max_s\":%.3f}\n", n,
           span_s, PQgetvalue(res, 0, 0), strtod(PQgetvalue(res, 0, 1), NULL),
           strtod(PQgetvalue(res, 0, 2), NULL), strtod(PQgetvalue(res, 0, 3), NULL));
    rc = strtoll(PQgetvalue(res, 0, 0), NULL, 10) == n ? 0 : 1;
    if (rc)
        fprintf(stderr, "jobbench: only %s of %d timers done (%lld still pending or queued)\n",
                PQgetvalue(res, 0, 0), n, left);
out:
    PQclear(res);
    json_object_put(payload);
    ctx_close(&ctx, &app);
    return rc;
}

/* ---- watch (the BullMQ peer) ----------------------------------------------------------- */

/* utime + stime of pid in seconds from /proc, -1 when it is gone. */
static double proc_cpu(pid_t pid)
{
    char path[64], buf[1024];
    unsigned long long ut = 0, stime = 0;
    FILE *f;
    char *p;
    size_t len;

    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    f = fopen(path, "r");
    if (!f)
        return -1;
    len = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[len] = '\0';
    p = strrchr(buf, ')');
    if (!p)
        return -1;
    /* after ") ": state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime */
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &stime) != 2)
        return -1;
    return (double)(ut + stime) / (double)sysconf(_SC_CLK_TCK);
}

static long long llen(struct gh_redis *r, const char *key)
{
    redisReply *rep = gh_redis_cmd(r, "LLEN %s", key);
    long long v = rep && rep->type == REDIS_REPLY_INTEGER ? rep->integer : -1;

    freeReplyObject(rep);
    return v;
}

static int cmd_watch(pid_t pid, int n, pid_t redis_pid)
{
    struct gh_ctx ctx;
    char name[200] = "", wait_key[256], active_key[256];
    double c0 = -1, c1 = -1, last = -1, r0 = -1, r1 = -1;
    int64_t t0 = 0, t1 = 0, deadline = gh_mono_ms() + 600000;
    int rc = 1;

    memset(&ctx, 0, sizeof(ctx));
    if (ctx_open(&ctx, &app) != GH_OK)
        return 1;
    while (gh_mono_ms() < deadline) {
        double c = proc_cpu(pid);

        if (c < 0)
            break; /* the peer exited */
        last = c;
        if (!name[0]) {
            redisReply *rep = gh_redis_cmd(ctx.redis, "KEYS bull:bench-*:meta");
            if (rep && rep->type == REDIS_REPLY_ARRAY && rep->elements == 1) {
                snprintf(name, sizeof(name), "%.*s", (int)(rep->element[0]->len - 5), rep->element[0]->str);
                snprintf(wait_key, sizeof(wait_key), "%s:wait", name);
                snprintf(active_key, sizeof(active_key), "%s:active", name);
            }
            freeReplyObject(rep);
            sleep_ms(2);
            continue;
        }
        long long w = llen(ctx.redis, wait_key), a = llen(ctx.redis, active_key);
        if (c0 < 0 && (w >= n || (w >= 0 && w < n && a > 0))) {
            c0 = c; /* enqueue done (the worker starts only after addBulk finished) */
            t0 = gh_mono_ms();
            if (redis_pid > 0)
                r0 = proc_cpu(redis_pid);
        } else if (c0 >= 0 && w == 0 && a == 0) {
            c1 = c;
            t1 = gh_mono_ms();
            if (redis_pid > 0)
                r1 = proc_cpu(redis_pid);
            break;
        }
        sleep_ms(1);
    }
    if (c0 >= 0 && c1 < 0) { /* exited between two samples: the last reading */
        c1 = last;
        t1 = gh_mono_ms();
        if (redis_pid > 0)
            r1 = proc_cpu(redis_pid);
    }
    if (c0 >= 0 && c1 >= c0) {
        double cpu = c1 - c0;
        printf("{\"impl\":\"bullmq\",\"jobs\":%d,\"drain_ms\":%" PRId64 ",\"per_s\":%.0f,\"cpu_s\":%.3f,"
               "\"per_cpu_s\":%.0f,\"redis_us_per_job\":%.1f}\n",
               n, t1 - t0, (double)n * 1000.0 / (double)(t1 - t0 > 0 ? t1 - t0 : 1), cpu,
               cpu > 0 ? (double)n / cpu : 0.0, redis_us_per_job(r0, r1, n));
        rc = 0;
    } else {
        fprintf(stderr, "jobbench watch: could not follow the peer (queue %s)\n",
                name[0] ? name : "not found");
    }
    ctx_close(&ctx, &app);
    return rc;
}

/* ---- main ------------------------------------------------------------------------------ */

static void usage(FILE *f)
{
    fprintf(
        f, "usage: guildhall-jobbench drain --kind noop|pgrow [--n N] [--cpu C] [--queue Q] [--redis-pid R]\n"
           "       guildhall-jobbench timers [--n N] [--span-s S] [--lead-s L] [--cpu C]\n"
           "       guildhall-jobbench watch --pid P --n N [--redis-pid R]\n");
}

int main(int argc, char **argv)
{
    const char *kind = "noop", *queue = "benchq";
    int n = -1, cpu = 0, span = 60, lead = 15, rc;
    pid_t pid = 0, redis_pid = 0;

    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) {
            usage(stderr);
            return 2;
        }
        if (strcmp(a, "--kind") == 0)
            kind = v;
        else if (strcmp(a, "--queue") == 0)
            queue = v;
        else if (strcmp(a, "--n") == 0)
            n = atoi(v);
        else if (strcmp(a, "--cpu") == 0)
            cpu = atoi(v);
        else if (strcmp(a, "--span-s") == 0)
            span = atoi(v);
        else if (strcmp(a, "--lead-s") == 0)
            lead = atoi(v);
        else if (strcmp(a, "--pid") == 0)
            pid = (pid_t)atoi(v);
        else if (strcmp(a, "--redis-pid") == 0)
            redis_pid = (pid_t)atoi(v);
        else {
            usage(stderr);
            return 2;
        }
        i++;
    }
    gh_app_boot(&app, GH_SVC_WORKER, "jobbench", "guildhall-jobbench");
    if (strcmp(argv[1], "drain") == 0)
        rc = cmd_drain(kind, n > 0 ? n : 20000, cpu, queue, redis_pid);
    else if (strcmp(argv[1], "timers") == 0)
        rc = cmd_timers(n > 0 ? n : 10000, span > 0 ? span : 60, lead >= 0 ? lead : 15, cpu);
    else if (strcmp(argv[1], "watch") == 0 && pid > 0 && n > 0)
        rc = cmd_watch(pid, n, redis_pid);
    else {
        usage(stderr);
        rc = 2;
    }
    gh_app_shutdown(&app);
    return rc;
}
