/* app.c - process wiring shared by every binary (see app.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/app.h"
#include "core/arena.h"
#include "core/err.h"
#include "core/str.h"
#include "core/timeutil.h"
#include "core/version.h"
#include "discord/rest.h"
#include "store/pg.h"
#include "store/queue.h"
#include "store/redis.h"
#include "web/fcgi.h"
#include "web/http.h"
#include "web/metrics.h"
#include "web/prefork.h"

#define ARENA_CHUNK ((size_t)64 * 1024)
#define ARENA_CAP ((size_t)16 * 1024 * 1024)

void gh_app_boot(struct gh_app *app, unsigned service, const char *log_service, const char *progname)
{
    enum gh_log_level level = GH_LOG_INFO;

    app->started_ms = gh_now_ms();
    (void)snprintf(app->progname, sizeof(app->progname), "%s", progname);
    gh_config_load_or_die(&app->cfg, service, progname);
    if (gh_log_level_parse(app->cfg.log_level, &level) != GH_OK)
        level = GH_LOG_INFO;
    if (gh_log_sink_init(&app->sink, log_service, level, app->cfg.log_file, app->cfg.log_max_bytes,
                         app->cfg.log_max_files) != GH_OK) {
        (void)fprintf(stderr, "%s: LOG_FILE: cannot open '%s'; logging to stderr\n", progname,
                      app->cfg.log_file);
        (void)gh_log_sink_init(&app->sink, log_service, level, NULL, 0, 0);
    }
    gh_config_register_secrets(&app->cfg, &app->sink);
    /* Both parts are short constants: this cannot truncate. */
    (void)gh_snprintf(app->user_agent, sizeof(app->user_agent), "DiscordBot (%s, %s)", GH_PROJECT_URL,
                      GH_VERSION);
}

void gh_app_shutdown(struct gh_app *app)
{
    gh_log_sink_cleanup(&app->sink);
}

int gh_app_ctx_open(const struct gh_app *app, struct gh_ctx *ctx, const char *component, int rest_max_wait_ms,
                    int with_arena)
{
    const struct gh_config *cfg = &app->cfg;
    struct gh_rest_opts ro;

    memset(ctx, 0, sizeof(*ctx));
    gh_logger_init(&ctx->log, (struct gh_log_sink *)&app->sink, component);
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
    ro.max_wait_ms = rest_max_wait_ms;
    ctx->rest = gh_rest_new(&ro);
    if (!ctx->rest) {
        GH_CRIT(&ctx->log, "cannot set up the Discord REST client");
        return GH_ENOMEM;
    }
    if (with_arena) {
        ctx->arena = malloc(sizeof(*ctx->arena));
        if (!ctx->arena) {
            GH_CRIT(&ctx->log, "cannot allocate the work arena");
            return GH_ENOMEM;
        }
        gh_arena_init(ctx->arena, ARENA_CHUNK, ARENA_CAP);
    }
    return GH_OK;
}

void gh_app_ctx_close(struct gh_ctx *ctx)
{
    if (ctx->arena) {
        gh_arena_cleanup(ctx->arena);
        free(ctx->arena);
    }
    gh_rest_free(ctx->rest);
    gh_redis_free(ctx->redis);
    gh_pg_free(ctx->pg);
    memset(ctx, 0, sizeof(*ctx));
}

/* One child of a FastCGI master: its own services, then the accept loop. */
struct fcgi_child {
    const struct gh_app_fcgi *spec;
    struct gh_app *app;
    struct gh_ctx ctx;
};

static void fcgi_handle(const struct gh_http_req *req, struct gh_http_resp *resp, void *arg)
{
    struct fcgi_child *c = arg;

    c->ctx.arena = req->arena;
    c->spec->handler(&c->ctx, req, resp);
    c->ctx.arena = NULL;
}

/* Between requests: send the counters requests deferred (gh_metrics_defer);
 * kept for the next tick while Redis is down. */
static void fcgi_tick(void *arg)
{
    struct fcgi_child *c = arg;

    (void)gh_metrics_flush(c->ctx.redis);
}

static int fcgi_child_main(int listen_fd, void *arg)
{
    struct fcgi_child *c = arg;
    const struct gh_config *cfg = &c->app->cfg;
    int rc = 1;

    if (gh_app_ctx_open(c->app, &c->ctx, c->spec->name, c->spec->rest_max_wait_ms, 0) != GH_OK)
        goto out;
    struct gh_fcgi_opts fo = {
        .listen_fd = listen_fd,
        .max_body = cfg->max_body_bytes,
        .max_resp = c->spec->max_resp,
        .handler = fcgi_handle,
        .arg = c,
        .log = &c->ctx.log,
        .tick = fcgi_tick,
        .tick_ms = GH_METRICS_FLUSH_MS,
    };
    rc = gh_fcgi_serve_opts(&fo) == GH_OK ? 0 : 1;
    if (gh_metrics_flush(c->ctx.redis) != GH_OK && gh_metrics_pending() > 0)
        GH_WARN(&c->ctx.log, "%d metric series not sent before exit (Redis unavailable)",
                gh_metrics_pending());
out:
    gh_app_ctx_close(&c->ctx);
    return rc;
}

int gh_app_fcgi_main(const struct gh_app_fcgi *spec)
{
    static struct gh_app app;       /* outlives every child: they borrow it */
    static struct fcgi_child child; /* copied into each child by fork */
    struct gh_logger log;
    char pid_file[600];
    int rc;

    gh_app_boot(&app, spec->service, spec->name, spec->progname);
    gh_logger_init(&log, &app.sink, "prefork");
    if (!app.cfg.fcgi_socket[0]) {
        (void)fprintf(stderr, "%s: FCGI_SOCKET: missing (the unix socket path nginx connects to)\n",
                      spec->progname);
        return 2;
    }
    pid_file[0] = '\0';
    if (app.cfg.run_dir[0] &&
        gh_snprintf(pid_file, sizeof(pid_file), "%s/%s.pid", app.cfg.run_dir, spec->name) != GH_OK) {
        (void)fprintf(stderr, "%s: GH_RUN_DIR: path too long\n", spec->progname);
        return 2;
    }
    child.spec = spec;
    child.app = &app;
    struct gh_prefork_opts po = {
        .socket_path = app.cfg.fcgi_socket,
        .backlog = app.cfg.fcgi_backlog,
        .children = gh_prefork_size(app.cfg.fcgi_children, app.cfg.pg_pool_min, app.cfg.pg_pool_max),
        .child_main = fcgi_child_main,
        .arg = &child,
        .log = &log,
        .pid_file = pid_file[0] ? pid_file : NULL,
    };
    GH_INFO(&log, "%s %s starting", spec->progname, GH_VERSION);
    rc = gh_prefork_run(&po);
    gh_app_shutdown(&app);
    return rc == 0 ? 0 : 1;
}
