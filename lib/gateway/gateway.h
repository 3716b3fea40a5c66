/* gateway.h - gateway-lite's loop: every shard of a range on one thread.
 *
 * One poll() over the shards' sockets, with timers for heartbeats, leases,
 * status, session saves, reconnects and the job spool, and the REST
 * client's non-blocking transfers driven every iteration. Each dispatch is
 * parsed once, handed in batches to the features' inline handlers
 * (features/registry.h), then turned into a "gateway:event" job when a
 * feature wants one. docs/gateway.md tells the whole story. */
#ifndef GH_GATEWAY_GATEWAY_H
#define GH_GATEWAY_GATEWAY_H

#include <signal.h>
#include <stdint.h>

#include "gateway/gwconfig.h"

struct gh_ctx;
struct gh_gateway;

struct gh_gateway_opts {
    struct gh_gw_range range; /* count 0 = every shard, count from GET /gateway/bot */
    const char *owner;        /* lease owner name (borrowed) */
    const char *token;        /* bot token (borrowed) */
    const char *url_override; /* DISCORD_GATEWAY_URL or "" (borrowed) */
    uint64_t intents;
    int zlib_stream;
    int status_interval_ms;
    int spool_max; /* jobs kept in memory while Redis refuses them; 0 = 20000 */
};

/* ctx is borrowed and must outlive the gateway. NULL on no memory. Caller
 * frees with gh_gateway_free. */
struct gh_gateway *gh_gateway_new(struct gh_ctx *ctx, const struct gh_gateway_opts *opts);
void gh_gateway_free(struct gh_gateway *gw);

/* Runs until *stop becomes non-zero (SIGTERM/SIGINT), then closes every
 * shard with 4000 (resumable), saves the sessions, releases the leases and
 * writes a final "stopped" status. Returns the process exit status: 0 after
 * a requested stop, 1 when the token was refused (4004) or every shard
 * stopped on a fatal close code, 2 on a bad configuration found at start
 * (e.g. a shard range beyond the count). */
int gh_gateway_run(struct gh_gateway *gw, volatile sig_atomic_t *stop);

#endif
