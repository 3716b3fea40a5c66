/* rest.h - the one Discord REST client (libcurl), blocking and non-blocking.
 *
 * Rate limits: per-route buckets learned from X-RateLimit-* headers and
 * shared across processes in Redis (bot:{global}:rest:...), keyed by
 * (bucket, major parameter); the global 50/s limit (interaction endpoints
 * exempt); a 429 is honoured with its retry_after; invalid requests (401,
 * 403, 429 not shared) counted against Discord's 10,000 per 10 minutes
 * budget, stopping at 9,000; a 401 stops every call (token invalid) until
 * restart; 5xx and transport errors retried with exponential backoff;
 * a 30 s timeout; a circuit breaker that opens after 5 consecutive
 * failures for 10 s. Every failure is logged with route and status. */
#ifndef GH_DISCORD_REST_H
#define GH_DISCORD_REST_H

#include <stddef.h>
#include <stdint.h>

struct gh_redis;
struct gh_logger;
struct gh_rest;

struct gh_rest_opts {
    const char *api_base;        /* e.g. https://discord.com/api/v10 */
    const char *token;           /* bot token; "" for none */
    const char *user_agent;      /* "DiscordBot (url, version)" */
    struct gh_redis *redis;      /* borrowed; NULL = process-local limits only */
    const struct gh_logger *log; /* borrowed */
    int timeout_ms;              /* default 30000 (when <= 0) */
    int max_retries;             /* 5xx / 429 retries; 0 = none, < 0 = default 3 */
    int max_wait_ms;             /* longest rate-limit wait accepted (blocking calls sleep,
                                    submitted ones are delayed); 0 = never wait,
                                    < 0 = default 5000 */
};

struct gh_rest_req {
    const char *method; /* GET POST PUT PATCH DELETE */
    const char *path;   /* relative to api_base: "/channels/1/messages" */
    const char *body;   /* JSON text or NULL */
    size_t body_len;
    const char *content_type; /* default application/json when body is set */
    const char *audit_reason; /* X-Audit-Log-Reason (URL-encoded here), or NULL */
    int no_auth;              /* interaction webhooks: no Authorization header */
    /* A user's credential instead of the bot token, e.g. "Bearer <oauth token>" or "Basic
     * <client credentials>" (OAuth2). Such calls skip the bot's shared rate-limit buckets (a
     * user's limits are the user's), and their 401 never stops the bot's calls. NULL = bot. */
    const char *authorization;
};

struct gh_rest_resp {
    long status; /* HTTP status, 0 when no response */
    char *body;  /* NUL-terminated, caller frees with gh_rest_resp_cleanup */
    size_t body_len;
    double retry_after; /* seconds, from a 429 */
    int discord_code;   /* JSON "code" of an error body, 0 if none */
    char error[256];    /* what went wrong, for the person and the log */
};

/* Copies what it needs from opts. NULL when api_base is missing or a string
 * holds control characters. One gh_rest belongs to one thread. */
struct gh_rest *gh_rest_new(const struct gh_rest_opts *opts);
/* Accepts NULL. Transfers still pending are dropped without their callback. */
void gh_rest_free(struct gh_rest *rest);
void gh_rest_resp_cleanup(struct gh_rest_resp *resp);

/* Blocking call. Returns GH_OK for 2xx; GH_ERATELIMIT (429 beyond the
 * acceptable wait), GH_EUNAUTHORIZED (401 or stopped), GH_EFORBIDDEN (403),
 * GH_ENOTFOUND (404), GH_EDISCORD (other 4xx), GH_EHTTP (5xx after retries,
 * transport), GH_ETIMEOUT, GH_EUNAVAILABLE (breaker open). resp is filled in
 * every case. */
int gh_rest_do(struct gh_rest *rest, const struct gh_rest_req *req, struct gh_rest_resp *resp);

/* Non-blocking (curl multi). cb runs from gh_rest_poll with the outcome;
 * resp is valid only during the callback. Returns GH_OK when queued (cb then
 * runs exactly once, also for refusals such as rate limits or an open
 * breaker), or GH_EINVAL / GH_ENOMEM (cb never runs). Rate-limit waits up to
 * max_wait_ms delay the transfer instead of blocking. The request is copied. */
typedef void (*gh_rest_cb)(int err, const struct gh_rest_resp *resp, void *arg);
int gh_rest_submit(struct gh_rest *rest, const struct gh_rest_req *req, gh_rest_cb cb, void *arg);
/* Drives transfers for up to timeout_ms; returns the number still running
 * (or waiting), or GH_EINVAL when called from inside a callback. */
int gh_rest_poll(struct gh_rest *rest, int timeout_ms);

/* The rate-limit key of a request: "PATCH /channels/{id}/messages/{id}" with
 * major parameters kept ("/channels/123/..."). Exposed for tests. Webhook
 * tokens become "{t:<hash>}" and interaction tokens "{token}", so the key is
 * safe to log; the query string is ignored. */
int gh_rest_route_key(const char *method, const char *path, char *out, size_t size);

#endif
