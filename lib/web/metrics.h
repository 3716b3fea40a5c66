/* metrics.h - Prometheus counters and histograms kept in Redis.
 *
 * Every fcgi child, worker and gateway process adds to one Redis hash,
 * bot:{global}:metrics, so the API renders the whole install's numbers from
 * any host. Field names are Prometheus series names: `name` or
 * `name{labels}`. A histogram (fixed buckets, in seconds) is stored as
 * `name_bucket{labels,le="0.005"}` per-bucket counts (NOT cumulative:
 * gh_metrics_render accumulates them), `name_sum{labels}` and
 * `name_count{labels}`.
 *
 * Everything is best effort: with Redis down (or r == NULL) the recording
 * calls do nothing and report nothing; metrics never fail a request.
 *
 * labels: the text between the braces, e.g. "type=\"command\"", or NULL.
 * Label values must be escaped by the caller and must come from a closed set
 * (registry names, never user input), to keep the series count bounded. */
#ifndef GH_WEB_METRICS_H
#define GH_WEB_METRICS_H

#include <stddef.h>
#include <stdint.h>

struct gh_redis;
struct gh_buf;

#define GH_METRICS_KEY "bot:{global}:metrics"

/* Upper bounds of the histogram buckets, in seconds (+Inf is implied). */
#define GH_METRICS_BUCKETS(X)                                                                                \
    X("0.001")                                                                                               \
    X("0.0025")                                                                                              \
    X("0.005") X("0.01") X("0.025") X("0.05") X("0.1") X("0.25") X("0.5") X("1") X("2.5") X("5") X("10")

/* Adds `by` to the counter name{labels}. */
void gh_metrics_incr(struct gh_redis *r, const char *name, const char *labels, long long by);
/* Records one observation of `seconds` in the histogram name{labels}
 * (one round trip). */
void gh_metrics_observe(struct gh_redis *r, const char *name, const char *labels, double seconds);

/* Several updates in one round trip (one Lua script): fill a batch on the
 * stack, then flush it. Updates past GH_METRICS_BATCH_MAX are dropped. */
#define GH_METRICS_BATCH_MAX 24
#define GH_METRICS_FIELD_MAX 256
struct gh_metrics_batch {
    int n;
    struct {
        char op; /* 'i' HINCRBY, 'f' HINCRBYFLOAT */
        char field[GH_METRICS_FIELD_MAX];
        char value[32];
    } ops[GH_METRICS_BATCH_MAX];
};
void gh_metrics_batch_init(struct gh_metrics_batch *b);
void gh_metrics_batch_incr(struct gh_metrics_batch *b, const char *name, const char *labels, long long by);
void gh_metrics_batch_observe(struct gh_metrics_batch *b, const char *name, const char *labels,
                              double seconds);
/* Sends every queued update; the batch is empty afterwards. */
void gh_metrics_batch_flush(struct gh_redis *r, struct gh_metrics_batch *b);

/* ---- deferred recording ------------------------------------------------
 *
 * A hot path (every interaction) should not pay a Redis round trip per
 * update. gh_metrics_defer merges a batch into a table kept in the process
 * (one sum per series), and gh_metrics_flush sends the whole table in one
 * round trip. The loop that owns the process calls gh_metrics_flush from a
 * periodic tick (gh_fcgi_opts.tick: at most once per GH_METRICS_FLUSH_MS,
 * and also while idle) and once more before it exits, so a process that
 * crashes loses at most one interval of counts.
 *
 * The table is process state (one per process, not thread-safe), like a
 * stdio buffer: forked children start from the parent's copy, so fork before
 * deferring anything. It holds GH_METRICS_PENDING_MAX series; a batch whose
 * new series do not fit first flushes the table, and is dropped whole (a
 * histogram's bucket, sum and count stay together) when that fails. When a
 * flush gets no reply (Redis down), the sums stay for the next flush. */
#define GH_METRICS_FLUSH_MS 1000
#define GH_METRICS_PENDING_MAX 256

/* Adds every update of b to the process table; b is empty afterwards. r is
 * used only when the table is full (NULL: never sends). */
void gh_metrics_defer(struct gh_redis *r, struct gh_metrics_batch *b);
/* Sends the table in one round trip and empties it. GH_OK (sent, or nothing
 * to send), GH_EREDIS (no Redis or no reply: the sums are kept), GH_EINVAL
 * (Redis refused the update: the sums are dropped, and it is not retried). */
int gh_metrics_flush(struct gh_redis *r);
/* gh_metrics_flush when the table holds anything and now_ms (gh_mono_ms())
 * is GH_METRICS_FLUSH_MS or more past the previous flush. Returns 1 when it
 * sent, 0 otherwise. For loops without a tick of their own. */
int gh_metrics_flush_due(struct gh_redis *r, int64_t now_ms);
/* Number of series waiting in the table. */
int gh_metrics_pending(void);

/* Appends the Prometheus text exposition of every stored series to out
 * (with # TYPE lines, histograms made cumulative with their +Inf bucket),
 * followed by gh_up 1 and gh_redis_up 0|1. Redis down: only those two.
 * GH_OK, or GH_ETOOBIG when out's cap is reached. */
int gh_metrics_render(struct gh_redis *r, struct gh_buf *out);

/* Validates a metric name ([a-zA-Z_:][a-zA-Z0-9_:]*). Exposed for tests. */
int gh_metrics_name_ok(const char *name);

#endif
