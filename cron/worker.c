/* worker.c - guildhall-worker: main and wiring around gh_worker_run
 * (lib/store/worker.c), which holds the logic.
 *
 *   guildhall-worker          one run: WORKER_CONCURRENCY children take jobs
 *                             for WORKER_TICK_S + 5 seconds, then exit
 *   guildhall-worker --once   drain the jobs that are ready now, flush the
 *                             command log, exit (tests, manual runs)
 *
 * cron starts it every tick under flock (cron/crontab); the local stack runs
 * the same binary on the same schedule from scripts/cron-loop.sh. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/app.h"
#include "core/config.h"
#include "core/log.h"
#include "features/registry.h"
#include "store/queue.h"
#include "store/worker.h"

#define RUN_OVERLAP_S 5

/* Services of one process (the parent, or a child after fork). Jobs may wait
 * out a rate limit (the REST client's default, 5 s); the interaction path
 * may not. */
static int ctx_open(struct gh_ctx *ctx, void *arg)
{
    return gh_app_ctx_open(arg, ctx, "worker", -1, 1);
}

static void ctx_close(struct gh_ctx *ctx, void *arg)
{
    (void)arg;
    gh_app_ctx_close(ctx);
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: guildhall-worker [--once]\n"
            "  (no option)  take jobs for WORKER_TICK_S + %d seconds with WORKER_CONCURRENCY children\n"
            "  --once       run the jobs that are ready now, flush the command log, exit\n",
            RUN_OVERLAP_S);
}

int main(int argc, char **argv)
{
    static struct gh_app app; /* outlives every child: they borrow it */
    struct gh_worker_opts wo;
    int once = 0, rc;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--once") == 0) {
            once = 1;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "guildhall-worker: unknown argument '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }

    gh_app_boot(&app, GH_SVC_WORKER, "worker", "guildhall-worker");

    memset(&wo, 0, sizeof(wo));
    wo.queue = GH_QUEUE_DEFAULT;
    wo.concurrency = app.cfg.worker_concurrency;
    wo.run_s = app.cfg.worker_tick_s + RUN_OVERLAP_S;
    wo.once = once;
    wo.lease_ms = app.cfg.job_lease_s * 1000;
    wo.lookup = gh_registry_job;
    wo.ctx_open = ctx_open;
    wo.ctx_close = ctx_close;
    wo.arg = &app;
    rc = gh_worker_run(&wo);
    gh_app_shutdown(&app);
    return rc;
}
