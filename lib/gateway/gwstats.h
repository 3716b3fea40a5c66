/* gwstats.h - gateway-lite's counters and latency histograms, kept in the
 * process and published with the shard status (lib/gateway).
 *
 * Histograms are log-linear buckets (about 3% wide) from 1 us to 100 s, so
 * a percentile is read without keeping samples. */
#ifndef GH_GATEWAY_GWSTATS_H
#define GH_GATEWAY_GWSTATS_H

#include <stdint.h>

#define GH_HIST_BUCKETS 640

struct gh_hist {
    uint64_t n;
    uint64_t bucket[GH_HIST_BUCKETS];
    int64_t max;
};

void gh_hist_add(struct gh_hist *h, int64_t value_us);
/* Value at quantile q (0..1), 0 when empty. An upper bound of the bucket. */
int64_t gh_hist_quantile(const struct gh_hist *h, double q);
void gh_hist_reset(struct gh_hist *h);

struct gh_gw_stats {
    uint64_t events;          /* dispatches handled */
    uint64_t messages;        /* MESSAGE_CREATE handled */
    uint64_t automod_hits;    /* messages that matched a rule */
    uint64_t urgent_calls;    /* urgent REST calls issued (delete, timeout) */
    uint64_t jobs_enqueued;   /* events turned into jobs */
    uint64_t redis_failures;  /* inline handlers that found Redis down */
    struct gh_hist urgent_us; /* frame received -> urgent REST call issued */
    struct gh_hist hb_late_us; /* heartbeat sent after its due time, by */
};

/* An inline handler calls this right after gh_rest_submit of an urgent call
 * (delete, timeout) for an event received at received_us; s may be NULL. */
void gh_gw_stats_urgent(struct gh_gw_stats *s, int64_t received_us);

#endif
