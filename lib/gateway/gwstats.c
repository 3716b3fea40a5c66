/* gwstats.c - log-linear histograms for gateway-lite's latencies. */
#include <math.h>
#include <string.h>

#include "core/timeutil.h"
#include "gateway/gwstats.h"

/* bucket i covers [B^i, B^(i+1)) us with B = 1.03; 640 buckets reach ~1.6e8 us. */
#define HIST_BASE 1.03

static int bucket_of(int64_t v)
{
    if (v < 1)
        return 0;
    int i = (int)(log((double)v) / log(HIST_BASE));
    if (i < 0)
        i = 0;
    if (i >= GH_HIST_BUCKETS)
        i = GH_HIST_BUCKETS - 1;
    return i;
}

void gh_hist_add(struct gh_hist *h, int64_t value_us)
{
    if (!h)
        return;
    h->bucket[bucket_of(value_us)]++;
    h->n++;
    if (value_us > h->max)
        h->max = value_us;
}

int64_t gh_hist_quantile(const struct gh_hist *h, double q)
{
    if (!h || h->n == 0)
        return 0;
    if (q < 0)
        q = 0;
    if (q > 1)
        q = 1;
    uint64_t rank = (uint64_t)ceil(q * (double)h->n);
    if (rank == 0)
        rank = 1;
    uint64_t seen = 0;
    for (int i = 0; i < GH_HIST_BUCKETS; i++) {
        seen += h->bucket[i];
        if (seen >= rank) {
            int64_t upper = (int64_t)ceil(pow(HIST_BASE, i + 1));
            return upper < h->max ? upper : h->max;
        }
    }
    return h->max;
}

void gh_hist_reset(struct gh_hist *h)
{
    if (h)
        memset(h, 0, sizeof(*h));
}

void gh_gw_stats_urgent(struct gh_gw_stats *s, int64_t received_us)
{
    if (!s)
        return;
    s->urgent_calls++;
    if (received_us > 0)
        gh_hist_add(&s->urgent_us, gh_mono_us() - received_us);
}
