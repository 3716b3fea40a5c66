/* ratelimit.h - Discord REST rate-limit state, shared across processes.
 *
 * The REST client (rest.c) asks before each request and reports what each
 * response said. State lives in Redis so that every process on every host
 * sees the same buckets:
 *
 *   bot:{global}:rest:route:<route key>          learned bucket id (TTL 1 day)
 *   bot:{global}:rest:bucket:<bucket>:<major>    hash {remaining, reset_ms}, PEXPIRE at reset
 *   bot:{global}:rest:global:<unix second>       requests this second (TTL 2 s)
 *   bot:{global}:rest:global_wait                a global 429: epoch ms to wait for (PX)
 *   bot:{global}:rest:invalid:<10-minute window> 401/403/429 responses (TTL 660 s)
 *   bot:{global}:rest:unauthorized               fingerprint of a rejected token (TTL 1 h)
 *
 * When Redis is absent or down, the same state is kept in a small table in
 * the process and work carries on. Times are wall-clock epoch milliseconds
 * (shared between processes). Interaction tokens never appear in a key: the
 * route key carries a short hash of a webhook token instead. */
#ifndef GH_DISCORD_RATELIMIT_H
#define GH_DISCORD_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>

struct gh_redis;
struct gh_ratelimit;

#define GH_RL_GLOBAL_PER_S 50
#define GH_RL_INVALID_STOP 9000
#define GH_RL_INVALID_WINDOW_S 600

/* A request's rate-limit identity. */
struct gh_rl_route {
    char key[256];     /* "PATCH /channels/123/messages/{id}" */
    char major[160];   /* "channels/123", "webhooks/1/<tokenhash>", "-" when none */
    int global_exempt; /* interaction callback and webhook routes */
};

/* What one response said (X-RateLimit-*, Retry-After). */
struct gh_rl_headers {
    char bucket[80];
    int has_bucket;
    long long remaining;
    int has_remaining;
    double reset_after; /* seconds */
    int has_reset_after;
    double reset; /* epoch seconds */
    int has_reset;
    double retry_after; /* Retry-After header, seconds */
    int has_retry_after;
    int global;     /* X-RateLimit-Global: true */
    char scope[16]; /* X-RateLimit-Scope: user | global | shared */
};

/* method + path (query ignored) -> route. GH_OK, GH_EINVAL (not a path) or
 * GH_ETOOBIG. */
int gh_ratelimit_route(const char *method, const char *path, struct gh_rl_route *out);

/* Feeds one raw response header line ("Name: value\r\n"); a status line
 * ("HTTP/...") clears h for the next response. */
void gh_ratelimit_header(struct gh_rl_headers *h, const char *line, size_t len);

/* redis borrowed (NULL = process-local only); token is hashed, not kept.
 * Caller frees with gh_ratelimit_free. NULL on allocation failure. */
struct gh_ratelimit *gh_ratelimit_new(struct gh_redis *redis, const char *token);
void gh_ratelimit_free(struct gh_ratelimit *rl);

/* Before sending: returns 0 when the request may go (a slot of its bucket is
 * taken and the global counter counted), else the milliseconds to wait before
 * asking again, with the reason in why ("bucket ... exhausted", "global rate
 * limit", "invalid request budget ..."). */
int64_t gh_ratelimit_acquire(struct gh_ratelimit *rl, const struct gh_rl_route *route, int64_t now_ms,
                             char *why, size_t whylen);
/* After any response: learns the bucket and its state from the headers. */
void gh_ratelimit_learn(struct gh_ratelimit *rl, const struct gh_rl_route *route,
                        const struct gh_rl_headers *h, int64_t now_ms);
/* After a 429: remembers the wait (globally when global, else on the bucket). */
void gh_ratelimit_on_429(struct gh_ratelimit *rl, const struct gh_rl_route *route,
                         const struct gh_rl_headers *h, double retry_after_s, int global, int64_t now_ms);
/* Counts one invalid request (401, 403, 429 not shared); returns the count in
 * the current 10-minute window. */
long long gh_ratelimit_count_invalid(struct gh_ratelimit *rl, int64_t now_ms);

/* The token was rejected (401): every process using it stops. */
void gh_ratelimit_stop(struct gh_ratelimit *rl);
/* 1 when this process or another one saw the token rejected. */
int gh_ratelimit_stopped(struct gh_ratelimit *rl);

#endif
