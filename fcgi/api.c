/* guildhall-api - the FastCGI server behind /health, /metrics, /api/v1/ (the
 * dashboard API, lib/api/) and POST /webhooks/discord (Discord's signed
 * webhook events). nginx restricts /metrics to loopback.
 *
 *   guildhall-api            serve (FCGI_SOCKET, prefork)
 *   guildhall-api --routes   print the API's route table as JSON and exit */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "app/app.h"
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
    {"/metrics", metrics},
};

static void handle(struct gh_ctx *ctx, const struct gh_http_req *req, struct gh_http_resp *resp)
{
    gh_logger_new_corr(&ctx->log);
    ctx->log.guild_id = 0;
    ctx->log.user_id = 0;
    if (strncmp(req->path, "/api/", 5) == 0) {
        gh_api_dispatch(ctx, req, resp);
        return;
    }
    if (strcmp(req->path, "/webhooks/discord") == 0) {
        gh_api_webhook_discord(ctx, req, resp);
        return;
    }
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        if (strcmp(req->path, routes[i].path) != 0)
            continue;
        if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0) {
            gh_http_error(resp, 405, "method_not_allowed", "use GET");
            gh_http_resp_header(resp, "Allow", "GET, HEAD");
        } else {
            routes[i].get(ctx, req, resp);
        }
        return;
    }
    gh_http_error(resp, 404, "not_found", "no such endpoint");
}

int main(int argc, char **argv)
{
    static const struct gh_app_fcgi spec = {
        .service = GH_SVC_API,
        .name = "api",
        .progname = "guildhall-api",
        .handler = handle,
        .rest_max_wait_ms = 0,
        .max_resp = MAX_RESP_BYTES,
    };

    if (argc == 2 && strcmp(argv[1], "--routes") == 0) {
        struct gh_buf b;
        gh_buf_init(&b, (size_t)1 << 20);
        int rc = gh_api_routes_json(&b);
        if (rc == GH_OK)
            puts(gh_buf_cstr(&b));
        gh_buf_cleanup(&b);
        return rc == GH_OK ? 0 : 1;
    }
    if (argc > 1) {
        fprintf(stderr, "usage: guildhall-api [--routes]\n");
        return 2;
    }
    return gh_app_fcgi_main(&spec);
}
