/* setcache.h - a guild's parsed settings of one feature, kept in the
 * process (gateway-lite's hot path reads them for every message).
 *
 * A miss (or an entry older than ttl_ms) reads the document through
 * gh_settings_get (Redis, then PostgreSQL) and parses it with the feature's
 * parse function into the feature's own struct. When both stores fail, an
 * entry already held is kept (and retried after ttl_ms); without one the
 * parse function receives an empty document (the feature's defaults), and
 * the failure is logged once per guild per ttl. Open addressing over guild
 * ids; grows as needed. One cache belongs to one thread. */
#ifndef GH_STORE_SETCACHE_H
#define GH_STORE_SETCACHE_H

#include <json-c/json.h>
#include <stdint.h>

struct gh_ctx;
struct gh_setcache;

/* Returns a new parsed struct for doc (borrowed; an empty object when the
 * guild has none), or NULL when out of memory. The cache frees it with
 * free_fn. */
typedef void *(*gh_setcache_parse_fn)(json_object *doc, uint64_t guild_id);
typedef void (*gh_setcache_free_fn)(void *parsed);

/* feature: the settings document's feature name (static string). ttl_ms 0 =
 * read the stores every call. NULL when out of memory. */
struct gh_setcache *gh_setcache_new(const char *feature, int ttl_ms, gh_setcache_parse_fn parse,
                                    gh_setcache_free_fn free_fn);
void gh_setcache_free(struct gh_setcache *c); /* accepts NULL */

/* The guild's parsed settings, borrowed: valid until the next
 * gh_setcache_get for the same guild or gh_setcache_forget. NULL only when
 * out of memory. */
const void *gh_setcache_get(struct gh_setcache *c, struct gh_ctx *ctx, uint64_t guild_id);
/* Drops one guild (0 = all). */
void gh_setcache_forget(struct gh_setcache *c, uint64_t guild_id);

#endif
