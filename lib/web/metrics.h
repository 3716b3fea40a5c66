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

/* Appends the Prometheus text exposition of every stored series to out
 * (with # TYPE lines, histograms made cumulative with their +Inf bucket),
 * followed by gh_up 1 and gh_redis_up 0|1. Redis down: only those two.
 * GH_OK, or GH_ETOOBIG when out's cap is reached. */
int gh_metrics_render(struct gh_redis *r, struct gh_buf *out);

/* Validates a metric name ([a-zA-Z_:][a-zA-Z0-9_:]*). Exposed for tests. */
int gh_metrics_name_ok(const char *name);

#endif
