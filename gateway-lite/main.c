/* main.c - guildhall-gateway: gateway-lite's main and wiring around
 * gh_gateway_run (lib/gateway/gateway.c), which holds the loop.
 *
 *   guildhall-gateway [--shards i-j/N]
 *
 * Without --shards it runs every shard, the count from GET /gateway/bot.
 * Exit status: 0 after SIGTERM/SIGINT, 1 when Discord refused the token or
 * every shard stopped on a fatal close code, 2 on a configuration error.
 * docs/gateway.md. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app/app.h"
#include "core/config.h"
#include "core/err.h"
#include "core/log.h"
#include "features/registry.h"
#include "gateway/gateway.h"
#include "gateway/gwconfig.h"
#include "store/queue.h"

#define REST_MAX_WAIT_MS 10000 /* longest rate-limit delay of a submitted call */

static volatile sig_atomic_t stop_requested;

static void on_stop(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: guildhall-gateway [--shards i-j/N]\n"
               "  --shards i-j/N  run shards i to j of N (i/N for one); default: every shard, N from\n"
               "                  GET /gateway/bot. Shards held by another process are taken over when\n"
               "                  their lease lapses.\n");
}

int main(int argc, char **argv)
{
    static struct gh_app app;
    struct gh_ctx ctx;
    struct gh_gateway_opts go;
    struct gh_gateway *gw = NULL;
    struct sigaction sa;
    char err[256], owner[160], host[96];
    uint64_t privileged = 0;
    int status = 1;

    memset(&go, 0, sizeof(go));
    for (int i = 1; i < argc; i++) {
        const char *val = NULL;
        if (strcmp(argv[i], "--shards") == 0 && i + 1 < argc)
            val = argv[++i];
        else if (strncmp(argv[i], "--shards=", 9) == 0)
            val = argv[i] + 9;
        else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "guildhall-gateway: unknown argument '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
        if (gh_gwconfig_parse_shards(val, &go.range, err, sizeof(err)) != GH_OK) {
            fprintf(stderr, "guildhall-gateway: %s\n", err);
            return 2;
        }
    }

    gh_app_boot(&app, GH_SVC_GATEWAY, "gateway", "guildhall-gateway");
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_stop;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    memset(&ctx, 0, sizeof(ctx));
    /* REST: the loop never blocks on a rate limit: submitted calls (AutoMod's
     * deletes and timeouts) are delayed up to REST_MAX_WAIT_MS behind the
     * route and global limits (and a 429's retry_after) instead of being
     * refused; GET /gateway/bot at start is the one blocking call. */
    if (gh_app_ctx_open(&app, &ctx, "gateway", REST_MAX_WAIT_MS, 0) != GH_OK)
        goto out;
    ctx.queue = GH_QUEUE_DEFAULT;

    /* Privileged intents: GATEWAY_PRIVILEGED_INTENTS; unset in fake mode =
     * members,message_content (the fake Discord grants them). */
    const char *priv = app.cfg.gateway_privileged;
    const char *fake_mode = getenv("GH_FAKE_MODE");
    if (!getenv("GATEWAY_PRIVILEGED_INTENTS") &&
        ((fake_mode && strcmp(fake_mode, "1") == 0) || strncmp(app.cfg.discord_token, "fake-", 5) == 0))
        priv = "members,message_content";
    if (gh_gwconfig_parse_privileged(priv, &privileged, err, sizeof(err)) != GH_OK) {
        GH_CRIT(&ctx.log, "%s", err);
        fprintf(stderr, "guildhall-gateway: %s\n", err);
        status = 2;
        goto out;
    }
    if (strcmp(app.cfg.gateway_compress, "zlib-stream") == 0) {
        go.zlib_stream = 1;
    } else if (strcmp(app.cfg.gateway_compress, "none") != 0) {
        GH_CRIT(&ctx.log, "GATEWAY_COMPRESS must be zlib-stream or none, not '%s'", app.cfg.gateway_compress);
        fprintf(stderr, "guildhall-gateway: GATEWAY_COMPRESS must be zlib-stream or none\n");
        status = 2;
        goto out;
    }
    if (app.cfg.gateway_owner[0]) {
        snprintf(owner, sizeof(owner), "%s", app.cfg.gateway_owner);
    } else {
        if (gethostname(host, sizeof(host)) != 0)
            snprintf(host, sizeof(host), "localhost");
        host[sizeof(host) - 1] = '\0';
        snprintf(owner, sizeof(owner), "%s:%ld", host, (long)getpid());
    }
    go.owner = owner;
    go.token = app.cfg.discord_token;
    go.url_override = app.cfg.gateway_url;
    go.status_interval_ms = app.cfg.gateway_status_interval_ms;
    go.intents = gh_gwconfig_intents(app.cfg.gateway_intents, gh_features, privileged, NULL, &ctx.log);

    gw = gh_gateway_new(&ctx, &go);
    if (!gw) {
        GH_CRIT(&ctx.log, "gateway: out of memory at start");
        goto out;
    }
    status = gh_gateway_run(gw, &stop_requested);
out:
    gh_gateway_free(gw);
    gh_app_ctx_close(&ctx);
    gh_app_shutdown(&app);
    return status;
}
