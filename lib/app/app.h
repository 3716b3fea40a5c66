/* app.h - process wiring shared by every binary: configuration, the log
 * sink, and the per-process services that go into struct gh_ctx.
 *
 * A binary boots once (gh_app_boot), then each process that serves work (the
 * fcgi children, the worker children) opens its own connections with
 * gh_app_ctx_open after fork and closes them with gh_app_ctx_close. */
#ifndef GH_APP_APP_H
#define GH_APP_APP_H

#include <stdint.h>

#include "core/config.h"
#include "core/ctx.h"
#include "core/log.h"

struct gh_app {
    struct gh_config cfg;
    struct gh_log_sink sink;
    int64_t started_ms;
    char user_agent[160]; /* "DiscordBot (url, version)" */
    char progname[48];    /* "guildhall-worker" */
};

/* Loads the configuration for service (a GH_SVC_* bit; exits 2 with a
 * message naming the variable when it is wrong), opens the log sink from
 * LOG_FILE (stderr, with a warning, when the file cannot be opened) under
 * the name log_service, and registers the secrets for redaction. app must
 * outlive every process that borrows it (make it static). */
void gh_app_boot(struct gh_app *app, unsigned service, const char *log_service, const char *progname);
/* Releases the sink. */
void gh_app_shutdown(struct gh_app *app);

/* Per-process services: PostgreSQL and Redis (lazy: they connect on first
 * use, so a process starts while either is down), the Discord REST client
 * (rest_max_wait_ms: longest rate-limit wait a blocking call accepts; 0 on
 * the interaction path, which has a 3 s budget; -1 = the client's default),
 * and, when with_arena, a heap arena for work outside an HTTP request.
 * GH_OK, or GH_ENOMEM/GH_ECONFIG (logged) with ctx left closable. */
int gh_app_ctx_open(const struct gh_app *app, struct gh_ctx *ctx, const char *component, int rest_max_wait_ms,
                    int with_arena);
/* Frees what gh_app_ctx_open opened; safe on a partly opened ctx. */
void gh_app_ctx_close(struct gh_ctx *ctx);

struct gh_http_req;
struct gh_http_resp;

/* A FastCGI binary: what differs between guildhall-interactions and
 * guildhall-api. Everything else (configuration, log, prefork master on
 * FCGI_SOCKET, pid file <GH_RUN_DIR>/<name>.pid, one context per child,
 * metrics sent about once a second and at exit) is gh_app_fcgi_main. */
struct gh_app_fcgi {
    unsigned service;     /* GH_SVC_* */
    const char *name;     /* "interactions": log service, component, pid file */
    const char *progname; /* "guildhall-interactions" */
    /* Handles one request; ctx->arena is the request's arena during the call. */
    void (*handler)(struct gh_ctx *ctx, const struct gh_http_req *req, struct gh_http_resp *resp);
    int rest_max_wait_ms; /* see gh_app_ctx_open */
    size_t max_resp;      /* response cap in bytes */
};

/* main() of a FastCGI binary. Returns the process exit status: 0 after a
 * clean SIGTERM, 1 on a setup failure, 2 on a configuration error. */
int gh_app_fcgi_main(const struct gh_app_fcgi *spec);

#endif
