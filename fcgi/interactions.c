/* guildhall-interactions - the FastCGI server behind POST /interactions.
 *
 * The master loads the configuration (a bad value stops it with the
 * variable's name), opens the log, binds FCGI_SOCKET and keeps N children
 * alive. Each child owns its own PostgreSQL connection, Redis connection and
 * REST client (connected lazily), and serves requests with
 * gh_interactions_handle. The loop's tick sends the counters the requests
 * deferred (gh_metrics_defer) about once a second, and the child sends the
 * rest before it exits. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/ctx.h"
#include "core/err.h"
#include "core/log.h"
#include "core/str.h"
#include "core/timeutil.h"
#include "core/version.h"
#include "discord/rest.h"
#include "store/pg.h"
#include "store/queue.h"
#include "store/redis.h"
#include "web/fcgi.h"
#include "web/http.h"
#include "web/interactions.h"
#include "web/metrics.h"
#include "web/prefork.h"

#define MAX_RESP_BYTES ((size_t)512 << 10)

struct app {
    struct gh_config cfg;
    struct gh_log_sink sink;
    int64_t started_ms;
};

static void handle(const struct gh_http_req *req, struct gh_http_resp *resp, void *arg)
{
    struct gh_ctx *ctx = arg;
    ctx->arena = req->arena;
    gh_interactions_handle(ctx, req, resp);
    ctx->arena = NULL;
}

static void tick(void *arg)
{
    struct gh_ctx *ctx = arg;
    (void)gh_metrics_flush(ctx->redis); /* kept for the next tick when Redis is down */
}

static int child_main(int listen_fd, void *arg)
{
    struct app *app = arg;
    const struct gh_config *cfg = &app->cfg;
    struct gh_ctx ctx;
    char ua[160];
    int rc = 1;

    memset(&ctx, 0, sizeof(ctx));
    gh_logger_init(&ctx.log, &app->sink, "interactions");
    ctx.cfg = cfg;
    ctx.queue = GH_QUEUE_DEFAULT;
    ctx.started_ms = app->started_ms;
    ctx.version = GH_VERSION;

    /* The stores log through ctx.log, so their lines carry the request's
     * correlation id. */
    ctx.pg = gh_pg_new(cfg->database_url, cfg->pg_statement_timeout_ms, &ctx.log);
    ctx.redis = gh_redis_new(cfg->redis_url, cfg->redis_timeout_ms, &ctx.log);
    if (!ctx.pg || !ctx.redis) {
        GH_CRIT(&ctx.log, "cannot set up the %s client", ctx.pg ? "Redis" : "PostgreSQL");
        goto out;
    }
    if (gh_snprintf(ua, sizeof(ua), "DiscordBot (%s, %s)", GH_PROJECT_URL, GH_VERSION) != GH_OK)
        goto out;
    struct gh_rest_opts ro = {
        .api_base = cfg->api_base,
        .token = cfg->discord_token,
        .user_agent = ua,
        .redis = ctx.redis,
        .log = &ctx.log,
        .timeout_ms = cfg->rest_timeout_ms,
        .max_retries = cfg->rest_max_retries,
        .max_wait_ms = 0,
    };
    ctx.rest = gh_rest_new(&ro);
    if (!ctx.rest) {
        GH_CRIT(&ctx.log, "cannot set up the Discord REST client");
        goto out;
    }
    struct gh_fcgi_opts fo = {
        .listen_fd = listen_fd,
        .max_body = cfg->max_body_bytes,
        .max_resp = MAX_RESP_BYTES,
        .handler = handle,
        .arg = &ctx,
        .log = &ctx.log,
        .tick = tick,
        .tick_ms = GH_METRICS_FLUSH_MS,
    };
    rc = gh_fcgi_serve_opts(&fo) == GH_OK ? 0 : 1;
    if (gh_metrics_flush(ctx.redis) != GH_OK && gh_metrics_pending() > 0)
        GH_WARN(&ctx.log, "%d metric series not sent before exit (Redis unavailable)", gh_metrics_pending());
out:
    gh_rest_free(ctx.rest);
    gh_redis_free(ctx.redis);
    gh_pg_free(ctx.pg);
    return rc;
}

int main(void)
{
    static struct app app; /* outlives every child: they borrow it */
    struct gh_logger log;
    enum gh_log_level level = GH_LOG_INFO;
    char pid_file[600];

    app.started_ms = gh_now_ms();
    gh_config_load_or_die(&app.cfg, GH_SVC_INTERACTIONS, "guildhall-interactions");
    if (gh_log_level_parse(app.cfg.log_level, &level) != GH_OK)
        level = GH_LOG_INFO;
    if (gh_log_sink_init(&app.sink, "interactions", level, app.cfg.log_file, app.cfg.log_max_bytes,
                         app.cfg.log_max_files) != GH_OK) {
        (void)fprintf(stderr, "guildhall-interactions: LOG_FILE: cannot open '%s'; logging to stderr\n",
                      app.cfg.log_file);
        gh_log_sink_init(&app.sink, "interactions", level, NULL, 0, 0);
    }
    gh_config_register_secrets(&app.cfg, &app.sink);
    gh_logger_init(&log, &app.sink, "prefork");

    if (!app.cfg.fcgi_socket[0]) {
        (void)fprintf(
            stderr,
            "guildhall-interactions: FCGI_SOCKET: missing (the unix socket path nginx connects to)\n");
        return 2;
    }
    pid_file[0] = '\0';
    if (app.cfg.run_dir[0] &&
        gh_snprintf(pid_file, sizeof(pid_file), "%s/interactions.pid", app.cfg.run_dir) != GH_OK) {
        (void)fprintf(stderr, "guildhall-interactions: GH_RUN_DIR: path too long\n");
        return 2;
    }
    struct gh_prefork_opts po = {
        .socket_path = app.cfg.fcgi_socket,
        .backlog = app.cfg.fcgi_backlog,
        .children = gh_prefork_size(app.cfg.fcgi_children, app.cfg.pg_pool_min, app.cfg.pg_pool_max),
        .child_main = child_main,
        .arg = &app,
        .log = &log,
        .pid_file = pid_file[0] ? pid_file : NULL,
    };
    GH_INFO(&log, "guildhall-interactions %s starting", GH_VERSION);
    int rc = gh_prefork_run(&po);
    gh_log_sink_cleanup(&app.sink);
    return rc == 0 ? 0 : 1;
}
