/* gwstate.h - gateway-lite's state in Redis (all keys global, all with
 * TTLs; docs/gateway.md):
 *
 *   bot:{global}:gateway:lease:<id>     owner of shard <id> (PX 15000, renewed every 5 s)
 *   bot:{global}:gateway:session:<id>   hash session_id, seq, resume_url (TTL 15 min)
 *   bot:{global}:gateway:identify:<k>   identify lock of max_concurrency bucket k (PX 5000)
 *   bot:{global}:shards:<id>            status hash (TTL 60 s), ids in the set bot:{global}:shards
 *
 * Every function returns GH_EREDIS when Redis cannot be reached; callers
 * carry on with what they know (a shard stays connected through an outage). */
#ifndef GH_GATEWAY_GWSTATE_H
#define GH_GATEWAY_GWSTATE_H

#include <stddef.h>
#include <stdint.h>

struct gh_redis;

#define GH_GW_LEASE_TTL_MS 15000
#define GH_GW_LEASE_RENEW_MS 5000
#define GH_GW_SESSION_TTL_MS (15 * 60 * 1000)
#define GH_GW_IDENTIFY_LOCK_MS 5000
#define GH_GW_STATUS_TTL_S 60

/* Takes the lease when free, renews it when owner holds it. 1 = owner holds
 * it now, 0 = another owner holds it (holder, when non-NULL, gets its name),
 * GH_EREDIS. */
int gh_gwstate_lease(struct gh_redis *r, int shard, const char *owner, char *holder, size_t holder_len);
/* Deletes the lease only when owner holds it. GH_OK or GH_EREDIS. */
int gh_gwstate_lease_release(struct gh_redis *r, int shard, const char *owner);

struct gh_gw_session {
    char session_id[128];
    char resume_url[256];
    int64_t seq;
};
/* 1 = found (out filled), 0 = none, GH_EREDIS. */
int gh_gwstate_session_load(struct gh_redis *r, int shard, struct gh_gw_session *out);
/* Whole session (READY, shutdown) with the TTL refreshed. */
int gh_gwstate_session_save(struct gh_redis *r, int shard, const struct gh_gw_session *s);
/* Only seq (every second while it moves), TTL refreshed. */
int gh_gwstate_session_seq(struct gh_redis *r, int shard, int64_t seq);
int gh_gwstate_session_delete(struct gh_redis *r, int shard);

/* SET NX PX 5000 on bucket key's identify lock: 1 taken, 0 busy (another
 * process identified within 5 s), GH_EREDIS. */
int gh_gwstate_identify_lock(struct gh_redis *r, int key);
/* Restarts the lock's PX ms when the IDENTIFY actually goes out (the
 * window counts from Discord's receipt, not from our connect). */
int gh_gwstate_identify_extend(struct gh_redis *r, int key, int px_ms);

/* One status field. */
struct gh_gw_field {
    const char *name;
    char value[64];
};
/* HSET the fields, EXPIRE 60 s, SADD the id to bot:{global}:shards, in one
 * pipeline. GH_OK or GH_EREDIS. */
int gh_gwstate_status(struct gh_redis *r, int shard, const struct gh_gw_field *fields, int n);

#endif
