/* interactions.h - POST /interactions: verify, parse, route, record.
 *
 * Order: method (405), body cap (413), signature headers (401
 * missing_signature), Ed25519 signature (401 invalid_signature), timestamp
 * window (401 stale_timestamp), JSON (400 malformed_json), shape (400
 * invalid_interaction), then PING -> PONG. Every later answer is 200 with an
 * interaction response: the handler's, or an ephemeral message saying what
 * went wrong (unknown command, expired component, disabled feature, handler
 * failure with a reference). Routed commands and components are recorded in
 * command_log (gh_cmdlog_record), failures in error_log, and counters and a
 * latency histogram go to the metrics hash.
 *
 * ctx: cfg (public key, skew), pg, redis and queue are used when non-NULL;
 * ctx->log gets a fresh correlation id, the guild and the user of the
 * request. ctx->arena, when set, is the request's arena (handlers use it). */
#ifndef GH_WEB_INTERACTIONS_H
#define GH_WEB_INTERACTIONS_H

struct gh_ctx;
struct gh_http_req;
struct gh_http_resp;
struct gh_interaction;

#define GH_IX_MSG_UNKNOWN_COMMAND                                                                            \
    "This command is not available any more. It may have been removed; try again in a minute after "         \
    "Discord refreshes your command list."
#define GH_IX_MSG_EXPIRED_COMPONENT "This button has expired."
/* printf formats: title, name / correlation id. */
#define GH_IX_FMT_DISABLED                                                                                   \
    "**%s** is disabled in this server. A server manager can turn it on with `/feature enable %s` "          \
    "or in the dashboard."
#define GH_IX_FMT_FAILED "Something went wrong on our side (reference %s). The team has been notified."

void gh_interactions_handle(struct gh_ctx *ctx, const struct gh_http_req *req, struct gh_http_resp *resp);

/* The part of gh_interactions_handle after verification and parsing, for an
 * interaction that did not come over HTTP (legacy prefix commands,
 * features/events): sets the logger's guild and user (the correlation id is
 * the caller's), records the guild, routes by type exactly as the endpoint
 * does (unknown command, disabled feature, handler failure answered as an
 * ephemeral message), records command_log and the metrics. resp receives
 * the interaction response JSON (status 200). ix is borrowed. */
void gh_interactions_route(struct gh_ctx *ctx, const struct gh_interaction *ix, struct gh_http_resp *resp);

#endif
