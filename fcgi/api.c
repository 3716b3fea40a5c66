/* guildhall-api - the FastCGI server behind /health, /metrics and /api/v1/ (the API).
 *
 * For the foundation it answers health and metrics; the dashboard API and
 * POST /webhooks/discord arrive with later issues and plug into the route
 * table below. nginx restricts /metrics to loopback. */
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
#include "store/pg.h"
#include "store/queue.h"
#include "store/redis.h"
#include "web/fcgi.h"
#include "web/http.h"
#include "web/metrics.h"
#include "web/prefork.h"

#define MAX_RESP_BYTES ((size_t)4 << 20)

struct app {
    struct gh_config cfg;
    struct gh_log_sink sink;
    int64_t started_ms;
};

typedef void (*route_fn)(struct gh_ctx *ctx, const struct gh_http_req *req, struct gh_http_resp *resp);

static void health(struct gh_ctx *ctx, const struct gh_http_req *req, struct gh_http_resp *resp)
{
    (void)req;
    int pg_ok = ctx->pg && gh_pg_ping(ctx->pg) == GH_OK;
    int redis_ok = ctx->redis && gh_redis_ping(ctx->redis) == GH_OK;
    const char *status = pg_ok && redis_ok ? "ok" : "degraded";
    char body[256];
    (void)snprintf(
        body, sizeof(body), /* 256 bytes hold the longest answer */
        "{\"status\":\"%s\",\"postgres\":\"%s\",\"redis\":\"%s\",\"version\":\"%s\",\"uptime_s\":%lld}",
        status, pg_ok ? "ok" : "down", redis_ok ? "ok" : "down", GH_VERSION,
        (long long)((gh_now_ms() - ctx->started_ms) / 1000));
    if (!pg_ok || !redis_ok)
        GH_WARN(&ctx->log, "health: postgres %s, redis %s", pg_ok ? "ok" : "down", redis_ok ? "ok" : "down");
    /* Without PostgreSQL nothing works; without Redis we carry on slower. */
    gh_http_json(resp, pg_ok ? 200 : 503, body);
    gh_http_resp_header(resp, "Cache-Control", "no-store");
}

static void metrics(struct gh_ctx *ctx, const struct gh_http_req *req, struct gh_http_resp *resp)
{
    static const char *const queues[] = {GH_QUEUE_DEFAULT, NULL};
    (void)req;
    gh_http_resp_set(resp, 200, "text/plain; version=0.0.4");
    int rc = gh_metrics_render(ctx->redis, &resp->body);
    if (rc == GH_OK) /* ready, delayed, processing, dead, running per queue; oldest ready age */
        rc = gh_queue_metrics(ctx->redis, queues, &resp->body);
    if (rc == GH_OK)
        rc = gh_buf_printf(&resp->body, "# TYPE gh_build_info gauge\ngh_build_info{version=\"%s\"} 1\n",
                           GH_VERSION);
    if (rc != GH_OK) {
        GH_ERROR(&ctx->log, "metrics: rendering failed: %s", gh_strerror(rc));
        gh_http_error(resp, 500, "metrics_unavailable", "the metrics could not be rendered");
    }
}

static const struct {
    const char *path;
    route_fn get; /* GET and HEAD */
} routes[] = {
    {"/health", health},
    {"/api/v1/health", health},
    {"/metrics", metrics},
};

static void handle(const struct gh_http_req *req, struct gh_http_resp *resp, void *arg)
{
    struct gh_ctx *ctx = arg;
    ctx->arena = req->arena;
    gh_logger_new_corr(&ctx->log);
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        if (strcmp(req->path, routes[i].path) != 0)
            continue;
        if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0) {
            gh_http_error(resp, 405, "method_not_allowed", "use GET");
            gh_http_resp_header(resp, "Allow", "GET, HEAD");
        } else {
            routes[i].get(ctx, req, resp);
        }
        goto out;
    }
    gh_http_error(resp, 404, "not_found", "no such endpoint");
out:
    ctx->arena = NULL;
}

static int child_main(int listen_fd, void *arg)
{
    struct app *app = arg;
    const struct gh_config *cfg = &app->cfg;
    struct gh_ctx ctx;
    int rc = 1;

    memset(&ctx, 0, sizeof(ctx));
    gh_logger_init(&ctx.log, &app->sink, "api");
    ctx.cfg = cfg;
    ctx.queue = GH_QUEUE_DEFAULT;
    ctx.started_ms = app->started_ms;
    ctx.version = GH_VERSION;
    ctx.pg = gh_pg_new(cfg->database_url, cfg->pg_statement_timeout_ms, &ctx.log);
    ctx.redis = gh_redis_new(cfg->redis_url, cfg->redis_timeout_ms, &ctx.log);
    if (!ctx.pg || !ctx.redis) {
        GH_CRIT(&ctx.log, "cannot set up the %s client", ctx.pg ? "Redis" : "PostgreSQL");
        goto out;
    }
    struct gh_fcgi_opts fo = {
        .listen_fd = listen_fd,
        .max_body = cfg->max_body_bytes,
        .max_resp = MAX_RESP_BYTES,
        .handler = handle,
        .arg = &ctx,
        .log = &ctx.log,
    };
    rc = gh_fcgi_serve_opts(&fo) == GH_OK ? 0 : 1;
out:
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
    gh_config_load_or_die(&app.cfg, GH_SVC_API, "guildhall-api");
    if (gh_log_level_parse(app.cfg.log_level, &level) != GH_OK)
        level = GH_LOG_INFO;
    if (gh_log_sink_init(&app.sink, "api", level, app.cfg.log_file, app.cfg.log_max_bytes,
                         app.cfg.log_max_files) != GH_OK) {
        (void)fprintf(stderr, "guildhall-api: LOG_FILE: cannot open '%s'; logging to stderr\n",
                      app.cfg.log_file);
        gh_log_sink_init(&app.sink, "api", level, NULL, 0, 0);
    }
    gh_config_register_secrets(&app.cfg, &app.sink);
    gh_logger_init(&log, &app.sink, "prefork");

    if (!app.cfg.fcgi_socket[0]) {
        (void)fprintf(stderr,
                      "guildhall-api: FCGI_SOCKET: missing (the unix socket path nginx connects to)\n");
        return 2;
    }
    pid_file[0] = '\0';
    if (app.cfg.run_dir[0] &&
        gh_snprintf(pid_file, sizeof(pid_file), "%s/api.pid", app.cfg.run_dir) != GH_OK) {
        (void)fprintf(stderr, "guildhall-api: GH_RUN_DIR: path too long\n");
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
    GH_INFO(&log, "guildhall-api %s starting", GH_VERSION);
    int rc = gh_prefork_run(&po);
    gh_log_sink_cleanup(&app.sink);
    return rc == 0 ? 0 : 1;
}
