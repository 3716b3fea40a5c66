/* premium.h - premium tiers per guild: status, the one gate, per-tier
 * limits, and every change (grant, code, trial, Discord entitlement,
 * revoke). docs/features/premium.md describes the model.
 *
 * Tiers are ranks: free 0, premium 1, pro 2. A guild's subscription (one
 * row, premium_subscriptions) stores a tier, its source and its period; the
 * tier is in force while now < expires_at (or no expiry), then during the
 * grace period until grace_until, then the guild is free again. Nothing is
 * deleted on a downgrade: features stop at the gate.
 *
 * Status is cached in Redis at bot:{<guild>}:premium:status for 300 s as the
 * stored row; the effective tier is computed from it at every read, so a
 * cached copy never outlives an expiry. Redis down: PostgreSQL answers
 * (logged at debug). PostgreSQL down and nothing cached: GH_EPG.
 *
 * Every change runs in one transaction with a premium_history row and an
 * audit_log row (action premium.grant, premium.redeem, premium.trial,
 * premium.entitlement, premium.revoke; before/after JSON), holding the guild
 * row's lock (so changes of one guild are serialised), then drops the cache.
 * Functions that name a guild need its guilds row (GH_ENOTFOUND otherwise). */
#ifndef GH_FEATURES_PREMIUM_H
#define GH_FEATURES_PREMIUM_H

#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "features/registry.h"

struct gh_ctx;
struct gh_config;

extern const struct gh_feature gh_feature_premium;

/* Ranks. */
#define GH_PREMIUM_FREE 0
#define GH_PREMIUM_PREMIUM 1
#define GH_PREMIUM_PRO 2
#define GH_PREMIUM_MAX_RANK 2

/* Limits answered by gh_premium_limit (also the names in the API's
 * "limits" object). */
#define GH_PREMIUM_LIMIT_ROLE_PANELS "role_panels"
#define GH_PREMIUM_LIMIT_TRIGGERS "triggers"
#define GH_PREMIUM_LIMIT_GIVEAWAYS "giveaways" /* active at once */

/* Sources (the PostgreSQL enum premium_source, same order and names). */
#define GH_PREMIUM_SOURCES(X)                                                                                \
    X(GH_PREMIUM_SRC_CODE, "code")                                                                           \
    X(GH_PREMIUM_SRC_ENTITLEMENT, "entitlement")                                                             \
    X(GH_PREMIUM_SRC_TRIAL, "trial")                                                                         \
    X(GH_PREMIUM_SRC_OPERATOR, "operator")

enum gh_premium_source {
#define GH_PREMIUM_SRC_ENUM(id, name) id,
    GH_PREMIUM_SOURCES(GH_PREMIUM_SRC_ENUM)
#undef GH_PREMIUM_SRC_ENUM
        GH_PREMIUM_SRC_COUNT
};

struct gh_premium {
    int tier;           /* stored rank; 0 when the guild never had a subscription */
    int effective;      /* rank in force now */
    const char *status; /* static: "none", "active", "trial", "grace", "expired" */
    char source[16];    /* "code", "entitlement", "trial", "operator"; "" when none */
    char source_ref[32];
    int64_t starts_at;   /* epoch ms, 0 = none */
    int64_t expires_at;  /* epoch ms, 0 = no end (or no subscription) */
    int64_t grace_until; /* epoch ms, 0 = none */
    int trial_used;
};

/* ---- names and tables (pure) ---------------------------------------------- */

/* "free", "premium", "pro"; "free" for out-of-range ranks. */
const char *gh_premium_tier_name(int rank);
/* "Free", "Guildhall Premium", "Guildhall Pro". */
const char *gh_premium_tier_title(int rank);
/* Rank of "free"/"premium"/"pro", or GH_EINVAL. */
int gh_premium_tier_rank(const char *name);
/* "code", ...; NULL outside the enum. */
const char *gh_premium_source_name(enum gh_premium_source s);

/* Limit of what for a tier: >= 0, or -1 = unlimited. An unknown what, or a
 * rank outside 0..2, answers 0 (nothing allowed): fail closed. */
int gh_premium_limit(int rank, const char *what);

/* Fills effective and status of p from its stored fields at now_ms:
 * tier 0 -> "none"; now < expires_at or no expiry -> the tier ("trial" when
 * the source is trial, else "active"); now < grace_until -> the tier,
 * "grace"; else 0, "expired". Exactly at expires_at the period is over. */
void gh_premium_evaluate(struct gh_premium *p, int64_t now_ms);

/* Tier of a Discord SKU per cfg->premium_skus ("sku_id:tier,..."): 1 or 2,
 * 0 when the SKU is not listed, GH_EINVAL when the list is malformed. */
int gh_premium_sku_rank(const struct gh_config *cfg, uint64_t sku_id);

/* "Custom embed color needs Guildhall Premium. Upgrade at <PREMIUM_URL>"
 * (without the second sentence when PREMIUM_URL is unset). GH_OK, or
 * GH_ETOOBIG (out holds the truncated text), GH_EINVAL. */
int gh_premium_upgrade_text(const struct gh_config *cfg, int min_rank, const char *what, char *out, size_t n);
/* "This server can have 3 role panels on its tier (Free). Guildhall Premium
 * raises it to 25. Upgrade at <PREMIUM_URL>". GH_OK, GH_ETOOBIG, GH_EINVAL. */
int gh_premium_limit_text(const struct gh_config *cfg, int rank, const char *what, char *out, size_t n);

/* ---- status ---------------------------------------------------------------- */

/* The guild's status (see the top). GH_OK; GH_EPG when neither store
 * answered; GH_EINVAL. A guild without a guilds row reads as "none". */
int gh_premium_get(struct gh_ctx *ctx, uint64_t guild_id, struct gh_premium *out);
/* Drops the cached status (and a reader's fill ticket). Redis down: logged
 * at error (the old copy may live up to 300 s). */
void gh_premium_invalidate(struct gh_ctx *ctx, uint64_t guild_id);

/* The one gate. GH_OK when the guild's effective rank >= min_rank (min_rank
 * <= 0 always passes). GH_EPREMIUM otherwise: a premium_denials row (best
 * effort, a failed insert is logged) and a warn line with guild, user, what,
 * required and effective tier. GH_EPG when the status cannot be read:
 * callers treat it as "not allowed now" with a "try again" message (no
 * denial row: nothing was decided). user_id 0 = not known. what: a short
 * phrase, "custom embed color". */
int gh_premium_require(struct gh_ctx *ctx, uint64_t guild_id, uint64_t user_id, int min_rank,
                       const char *what);
/* GH_OK when current_count < the limit of what for the effective tier (or
 * it is unlimited); GH_EPREMIUM when the guild is at or over it (denial row
 * with what "<what> limit" and the lowest tier whose limit is higher, and a
 * warn line); GH_EPG; GH_EINVAL for an unknown what. */
int gh_premium_check_limit(struct gh_ctx *ctx, uint64_t guild_id, uint64_t user_id, const char *what,
                           long current_count);

/* The body of GET /guilds/{id}/premium (docs/api.md): tier, effective_tier,
 * status, source, starts_at, expires_at, grace_until (ISO 8601 or null),
 * trial_used, trial_available, upgrade_url (or null), tiers [{name, title,
 * rank, unlocks [text], limits {role_panels, triggers, giveaways: number,
 * null = unlimited}}], history (the last 20 changes, newest first: {tier,
 * from_tier, source, source_ref, expires_at, reason, actor_id, created_at}).
 * *out: caller puts. GH_OK, GH_ENOTFOUND (no guilds row), GH_EPG. */
int gh_premium_status_json(struct gh_ctx *ctx, uint64_t guild_id, json_object **out);

/* ---- changes ----------------------------------------------------------------- */

/* Sets the guild's subscription: rank 1..2 from starts_ms (0 = now) until
 * expires_ms (0 = no end); grace_until = expires + PREMIUM_GRACE_DAYS (no
 * grace for trials). source_ref and reason may be NULL; actor 0 = system.
 * GH_OK, GH_EINVAL, GH_ENOTFOUND (no guilds row), GH_EPG. */
int gh_premium_grant(struct gh_ctx *ctx, uint64_t guild_id, int rank, enum gh_premium_source source,
                     const char *source_ref, int64_t starts_ms, int64_t expires_ms, uint64_t actor_id,
                     const char *reason);
/* Ends the subscription now, without grace (expires_at = grace_until =
 * now; the tier stays stored, nothing is deleted). GH_OK (also when nothing
 * was in force: then nothing is written), GH_ENOTFOUND, GH_EPG. */
int gh_premium_revoke(struct gh_ctx *ctx, uint64_t guild_id, uint64_t actor_id, const char *reason);

/* Redeems a code (case, spaces and dashes do not matter; O reads as 0, I
 * and L as 1). The code's tier for its days: from the current expiry when
 * the same tier is in force (active or in grace), else from now. GH_OK;
 * GH_EINVAL (not shaped like a code); GH_ENOTFOUND (unknown code, or no
 * guilds row); GH_ECONFLICT (already redeemed, or a higher tier is in force:
 * the code stays unused); GH_EEXPIRED (the code's own redeem-by date
 * passed); GH_EPG. Two concurrent redeems of one code: one wins. */
int gh_premium_redeem(struct gh_ctx *ctx, uint64_t guild_id, const char *code, uint64_t actor_id);

/* Starts the guild's one trial: premium for PREMIUM_TRIAL_DAYS, no grace.
 * GH_OK; GH_EINVAL when trials are off (0 days); GH_ECONFLICT when the trial
 * was used or a paid tier is in force; GH_ENOTFOUND; GH_EPG. */
int gh_premium_start_trial(struct gh_ctx *ctx, uint64_t guild_id, uint64_t actor_id);

/* Issues count (1..100) codes of rank 1..2 for days (1..3650), only their
 * hashes stored, in one transaction with one audit_log row (action
 * premium.codes, no guild, the ids but never the codes). *codes_out: a new
 * array of strings "GH-XXXXX-XXXXX-XXXXX-XXXXX" (100 random bits each),
 * caller puts; shown once. GH_OK, GH_EINVAL, GH_EIO (no randomness), GH_EPG. */
int gh_premium_codes_create(struct gh_ctx *ctx, int rank, int days, int count, uint64_t actor_id,
                            json_object **codes_out);

/* A Discord entitlement event: event_type "ENTITLEMENT_CREATE", "_UPDATE" or
 * "_DELETE"; entitlement (borrowed) is Discord's entitlement object. The SKU
 * maps to a tier through PREMIUM_SKUS (unknown SKU, or no guild_id: logged
 * and ignored, GH_OK). The entitlement is upserted (premium_entitlements);
 * when nothing in it changed, nothing else happens (replays are no-ops).
 * Active: the tier until ends_at (null = no end) plus grace, unless a higher
 * tier from another source is in force. DELETE or deleted:true: when the
 * subscription came from this entitlement, it ends now (no grace). GH_OK;
 * GH_EINVAL (malformed object or event type); GH_ENOTFOUND (no guilds row);
 * GH_EPG. */
int gh_premium_entitlement(struct gh_ctx *ctx, const char *event_type, json_object *entitlement);

#endif
