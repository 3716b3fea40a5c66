/* scheduler.c - guildhall-scheduler: promotes due durable timers
 * (scheduled_actions) into the job queue. The logic is gh_timers_promote
 * (lib/store/timers.c); this file is the loop and the wiring.
 *
 *   guildhall-scheduler          one run: promote every ~100 ms for
 *                                WORKER_TICK_S + 5 seconds, then exit
 *   guildhall-scheduler --once   promote what is due now, exit
 *
 * cron starts it every tick under flock with two alternating lock slots, as
 * it does the worker (cron/crontab); the local stack does the same from
 * scripts/cron-loop.sh. Consecutive runs overlap for a few seconds, which is
 * safe: rows are taken FOR UPDATE SKIP LOCKED, and a job id is its dedupe
 * key. Lateness is recorded twice: at promotion
 * (gh_timer_promote_lateness_seconds) and at the job's start
 * (scheduled_actions.fired_at, gh_timer_lateness_seconds). */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "app/app.h"
#include "core/config.h"
#include "core/err.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "store/queue.h"
#include "store/timers.h"

#define RUN_OVERLAP_S 5
#define POLL_MS 100         /* between promotions when nothing more is due */
#define ERROR_PAUSE_MS 1000 /* after a failed promotion */
#define ERROR_LOG_EVERY_MS 10000

static volatile sig_atomic_t stop_requested;

static void on_stop(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static void sleep_ms(int64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};

    nanosleep(&ts, NULL); /* a signal ends it early: the loop re-checks the flag */
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: guildhall-scheduler [--once]\n"
            "  (no option)  promote due timers every %d ms for WORKER_TICK_S + %d seconds\n"
            "  --once       promote what is due now, then exit\n",
            POLL_MS, RUN_OVERLAP_S);
}

/* Promotes until fewer than a batch were due. Returns GH_OK or the failure. */
static int promote_due(struct gh_ctx *ctx, long long *total)
{
    int n = 0, rc;

    do {
        rc = gh_timers_promote(ctx, GH_TIMERS_PROMOTE_BATCH, gh_now_ms(), &n);
        *total += n;
    } while (rc == GH_OK && n == GH_TIMERS_PROMOTE_BATCH && !stop_requested);
    return rc;
}

int main(int argc, char **argv)
{
    static struct gh_app app;
    struct gh_ctx ctx;
    struct sigaction sa;
    int64_t start, end, last_error_log = 0;
    long long total = 0, failures = 0;
    int once = 0, status = 0;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--once") == 0) {
            once = 1;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "guildhall-scheduler: unknown argument '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }

    gh_app_boot(&app, GH_SVC_WORKER, "scheduler", "guildhall-scheduler");
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_stop;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    memset(&ctx, 0, sizeof(ctx));
    if (gh_app_ctx_open(&app, &ctx, "scheduler", -1, 0) != GH_OK) {
        status = 1;
        goto out;
    }
    ctx.queue = GH_QUEUE_DEFAULT;

    if (once) {
        int rc = promote_due(&ctx, &total);
        if (rc != GH_OK) {
            GH_ERROR(&ctx.log, "scheduler --once: %s (promoted %lld)", gh_strerror(rc), total);
            status = 1;
        } else {
            GH_INFO(&ctx.log, "scheduler --once: promoted %lld timer(s)", total);
        }
        goto out;
    }

    start = gh_mono_ms();
    end = start + ((int64_t)app.cfg.worker_tick_s + RUN_OVERLAP_S) * 1000;
    GH_INFO(&ctx.log, "scheduler run: %d s, queue %s", app.cfg.worker_tick_s + RUN_OVERLAP_S, ctx.queue);
    while (!stop_requested && gh_mono_ms() < end) {
        int rc = promote_due(&ctx, &total);
        int64_t now = gh_mono_ms();

        if (rc == GH_OK) {
            sleep_ms(POLL_MS);
            continue;
        }
        /* PostgreSQL or Redis is down: nothing was lost (the rows stay due);
         * say so now and then, and try again shortly. */
        failures++;
        if (last_error_log == 0 || now - last_error_log >= ERROR_LOG_EVERY_MS) {
            GH_ERROR(&ctx.log, "scheduler: promotion failed (%s), %lld failure(s) this run; retrying",
                     gh_strerror(rc), failures);
            last_error_log = now;
        }
        sleep_ms(ERROR_PAUSE_MS);
    }
    GH_INFO(&ctx.log,
            "scheduler run ended after %" PRId64 " ms: promoted %lld timer(s), %lld failed attempt(s)",
            gh_mono_ms() - start, total, failures);
out:
    gh_app_ctx_close(&ctx);
    gh_app_shutdown(&app);
    return status;
}
