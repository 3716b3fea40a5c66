/* gwconfig.h - gateway-lite's start-up decisions, without I/O: the
 * --shards argument, the intents to identify with, and the order in which
 * shards may identify (max_concurrency buckets). */
#ifndef GH_GATEWAY_GWCONFIG_H
#define GH_GATEWAY_GWCONFIG_H

#include <stddef.h>
#include <stdint.h>

struct gh_feature;
struct gh_logger;

/* Largest shard count accepted on the command line. */
#define GH_GW_MAX_SHARDS 4096

/* --shards i-j/N (or i/N for one shard): shards first..last of count.
 * count 0 = not given (every shard, count from GET /gateway/bot). */
struct gh_gw_range {
    int first, last, count;
};

/* GH_OK, or GH_EINVAL with a sentence in err naming what is wrong. */
int gh_gwconfig_parse_shards(const char *arg, struct gh_gw_range *out, char *err, size_t errlen);

/* GATEWAY_PRIVILEGED_INTENTS: comma list of members, presences,
 * message_content (spaces and case ignored; GUILD_MEMBERS, GUILD_PRESENCES,
 * MESSAGE_CONTENT also accepted). GH_OK or GH_EINVAL (err names the word). */
int gh_gwconfig_parse_privileged(const char *list, uint64_t *out, char *err, size_t errlen);

/* The intents to identify with: override when >= 0, else GUILDS plus the
 * union of every feature's intents (features: NULL-terminated, like
 * gh_features). Privileged bits not in allowed are dropped; *dropped gets
 * them (may be NULL). lg (may be NULL): an info line per dropped bit naming
 * the features that lose it, and the final value. */
uint64_t gh_gwconfig_intents(int64_t override, const struct gh_feature *const *features, uint64_t allowed,
                             uint64_t *dropped, const struct gh_logger *lg);

/* "GUILDS|GUILD_MESSAGES|..." for a log line. */
void gh_gwconfig_intents_text(uint64_t intents, char *out, size_t size);

/* Identify order: candidates are shard ids waiting to identify (any
 * order); key_free_at[k] (k < max_concurrency) is when rate-limit bucket k
 * may identify again. Writes to picks the shards that may identify now (at
 * most one per bucket, lowest id first, so buckets start in order) and
 * returns how many. */
int gh_gwconfig_identify_picks(const int *candidates, int n, int max_concurrency, const int64_t *key_free_at,
                               int64_t now_ms, int *picks, int max_picks);

#endif
