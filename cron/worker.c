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

#include "core/arena.h"
#include "core/config.h"
#include "core/ctx.h"
#include "core/err.h"
#include "core/log.h"
#include "core/str.h"
#include "core/timeutil.h"
#include "core/version.h"
#include "discord/rest.h"
#include "features/registry.h"
#include "store/pg.h"
#include "store/queue.h"
#include "store/redis.h"
#include "store/worker.h"

#define RUN_OVERLAP_S 5
#define ARENA_CHUNK ((size_t)64 * 1024)
#define ARENA_CAP ((size_t)16 * 1024 * 1024)

struct app {
    struct gh_config cfg;
    struct gh_log_sink sink;
    int64_t started_ms;
    char user_agent[160];
};

/* Services of one process (the parent, or a child after fork). */
static int ctx_open(struct gh_ctx *ctx, void *arg)
{
    struct app *app = arg;
    const struct gh_config *cfg = &app->cfg;
    struct gh_rest_opts ro;

    memset(ctx, 0, sizeof(*ctx));
    gh_logger_init(&ctx->log, &app->sink, "worker");
    ctx->cfg = cfg;
    ctx->queue = GH_QUEUE_DEFAULT;
    ctx->started_ms = app->started_ms;
    ctx->version = GH_VERSION;
    ctx->pg = gh_pg_new(cfg->database_url, cfg->pg_statement_timeout_ms, &ctx->log);
    ctx->redis = gh_redis_new(cfg->redis_url, cfg->redis_timeout_ms, &ctx->log);
    if (!ctx->pg || !ctx->redis) {
        GH_CRIT(&ctx->log, "cannot set up the %s client", ctx->pg ? "Redis" : "PostgreSQL");
        return GH_ECONFIG;
    }
    memset(&ro, 0, sizeof(ro));
    ro.api_base = cfg->api_base;
    ro.token = cfg->discord_token;
    ro.user_agent = app->user_agent;
    ro.redis = ctx->redis;
    ro.log = &ctx->log;
    ro.timeout_ms = cfg->rest_timeout_ms;
    ro.max_retries = cfg->rest_max_retries;
    /* Jobs may wait out a rate limit (up to the client's 5 s default); the
     * interaction path may not, it has a 3 s budget. */
    ro.max_wait_ms = -1;
    ctx->rest = gh_rest_new(&ro);
    ctx->arena = malloc(sizeof(*ctx->arena));
    if (!ctx->rest || !ctx->arena) {
        GH_CRIT(&ctx->log, "cannot set up the %s", ctx->rest ? "request arena" : "Discord REST client");
        return GH_ENOMEM;
    }
    gh_arena_init(ctx->arena, ARENA_CHUNK, ARENA_CAP);
    return GH_OK;
}

static void ctx_close(struct gh_ctx *ctx, void *arg)
{
    (void)arg;
    if (ctx->arena) {
        gh_arena_cleanup(ctx->arena);
        free(ctx->arena);
    }
    gh_rest_free(ctx->rest);
    gh_redis_free(ctx->redis);
    gh_pg_free(ctx->pg);
    memset(ctx, 0, sizeof(*ctx));
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
    static struct app app; /* outlives every child: they borrow it */
    enum gh_log_level level = GH_LOG_INFO;
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

    app.started_ms = gh_now_ms();
    gh_config_load_or_die(&app.cfg, GH_SVC_WORKER, "guildhall-worker");
    if (gh_log_level_parse(app.cfg.log_level, &level) != GH_OK)
        level = GH_LOG_INFO;
    if (gh_log_sink_init(&app.sink, "worker", level, app.cfg.log_file, app.cfg.log_max_bytes,
                         app.cfg.log_max_files) != GH_OK) {
        fprintf(stderr, "guildhall-worker: LOG_FILE: cannot open '%s'; logging to stderr\n",
                app.cfg.log_file);
        gh_log_sink_init(&app.sink, "worker", level, NULL, 0, 0);
    }
    gh_config_register_secrets(&app.cfg, &app.sink);
    if (gh_snprintf(app.user_agent, sizeof(app.user_agent), "DiscordBot (%s, %s)", GH_PROJECT_URL,
                    GH_VERSION) != GH_OK)
        return 2;

    memset(&wo, 0, sizeof(wo));
    wo.queue = GH_QUEUE_DEFAULT;
    wo.concurrency = app.cfg.worker_concurrency;
    wo.run_s = app.cfg.worker_tick_s + RUN_OVERLAP_S;
    wo.once = once;
    wo.lookup = gh_registry_job;
    wo.ctx_open = ctx_open;
    wo.ctx_close = ctx_close;
    wo.arg = &app;
    rc = gh_worker_run(&wo);
    gh_log_sink_cleanup(&app.sink);
    return rc;
}
