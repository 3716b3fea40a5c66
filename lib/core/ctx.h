/* ctx.h - struct gh_ctx, the one context every handler receives.
 *
 * Services are handed in, never reached through globals: a test builds a
 * context with whatever it needs and leaves the rest NULL. Everything here is
 * borrowed from the process's wiring (fcgi/, cron/, gateway-lite/), except
 * the logger, which is per request (correlation id, guild, user). */
#ifndef GH_CORE_CTX_H
#define GH_CORE_CTX_H

#include <stdint.h>

#include "core/log.h"

struct gh_config;
struct gh_pg;
struct gh_redis;
struct gh_rest;
struct gh_llm;
struct gh_arena;
struct gh_jobspool;

struct gh_ctx {
    const struct gh_config *cfg;
    struct gh_pg *pg;
    struct gh_redis *redis;
    struct gh_rest *rest;   /* Discord REST client */
    const char *queue;      /* job queue name to enqueue on (GH_QUEUE_DEFAULT) */
    struct gh_llm *llm;     /* later issue; NULL until then */
    struct gh_logger log;   /* per request */
    struct gh_arena *arena; /* per request, reset after it */
    int64_t started_ms;     /* process start, wall clock */
    const char *version;    /* GH_VERSION */
    /* Jobs Redis refused, queued later (store/jobspool.h): gateway-lite's
     * gateway owns one and sets this; NULL elsewhere, where
     * gh_jobspool_enqueue is a plain gh_queue_enqueue. */
    struct gh_jobspool *spool;
};

#endif
