/* registry.h - the one list of features.
 *
 * A feature is one struct: its commands, components, jobs, API routes,
 * settings schema and premium flags. Every binary walks the same table:
 * the interactions router, guildhall-register-commands (Discord's command
 * JSON), the worker's job dispatch, /help, and the dashboard's forms. */
#ifndef GH_FEATURES_REGISTRY_H
#define GH_FEATURES_REGISTRY_H

#include <stddef.h>
#include <stdint.h>

struct gh_ctx;
struct gh_interaction;
struct gh_buf;
struct gh_job;
struct gh_api_route;
struct gh_event;

/* Interaction context types (Discord "contexts"). */
#define GH_CTX_GUILD (1u << 0)
#define GH_CTX_BOT_DM (1u << 1)
#define GH_CTX_PRIVATE_CHANNEL (1u << 2)

/* A handler writes the complete interaction response JSON into out and
 * returns GH_OK; on a failure it returns a gh_err and the router answers an
 * ephemeral error carrying the correlation id (and records it). A handler may
 * instead write a deferred response and enqueue a job that edits @original. */
typedef int (*gh_command_fn)(struct gh_ctx *ctx, const struct gh_interaction *ix, struct gh_buf *out);
typedef int (*gh_job_fn)(struct gh_ctx *ctx, const struct gh_job *job);

/* ---- gateway events (issue 7)
 *
 * gateway-lite parses each dispatch (op 0) into a struct gh_event and, in
 * the order of gh_features[], hands it to every handler registered for its
 * name. Two kinds of handler:
 *
 *  - inline (hot path, in gateway-lite's loop): AutoMod, XP, the Redis caches,
 *    prefix-command detection. Called with a batch of consecutive events of
 *    the same name (one socket read may carry hundreds of MESSAGE_CREATE), so
 *    a handler can pipeline its Redis commands for the whole batch in one
 *    round trip. It may use ctx->redis (blocking, short timeout) and
 *    ctx->rest ONLY through gh_rest_submit (non-blocking; the loop drives
 *    gh_rest_poll), and enqueue jobs (gh_jobspool_enqueue, store/jobspool.h:
 *    kept in the gateway's spool while Redis refuses them). It must never touch
 *    PostgreSQL except through gh_setcache_get (lib/store/setcache.h: a
 *    guild's parsed settings, cached in the process for
 *    GATEWAY_SETTINGS_TTL_MS, read from Redis and on a miss from PostgreSQL),
 *    nor block on anything else.
 *    Redis down: degrade (skip what needs Redis, log once per burst), never
 *    fail the batch.
 *  - job (in the worker): when any feature registers a job_fn for an event
 *    (features/events registers one for every event that must become a job:
 *    member, message edit/delete, reaction, channel, invite, voice, DM
 *    events), gateway-lite, after the inline handlers ran, enqueues one job of kind "gateway:event" (features/events) with payload
 *    {"t","d","shard","seq","received_ms"}, id "ev:<session_id>:<seq>" so a
 *    resumed replay is not queued twice. Its runner calls each feature's
 *    job_fn for that name with ev->d from the payload. Inline handlers may
 *    annotate ev->d with members named "gh_*" (e.g. the cached content of an
 *    edited message) that the job then carries.
 *
 * Inline handlers of one event share ev->flags: AutoMod sets GH_EVF_AUTOMOD_HIT
 * (and GH_EVF_SPAM for the spam/repeat rules, GH_EVF_DELETED when it deleted the
 * message) before levels runs, so a flagged message earns no XP. */
#define GH_EVF_AUTOMOD_HIT (1u << 0) /* some AutoMod rule matched (any action, log-only included) */
#define GH_EVF_SPAM (1u << 1)        /* rate or repeat rule matched: no XP */
#define GH_EVF_DELETED (1u << 2)     /* AutoMod deleted the message */
#define GH_EVF_PREFIX_CMD (1u << 3)  /* a legacy prefix command: no XP, no other inline use */

struct gh_gw_stats; /* lib/gateway: latency histograms; NULL outside gateway-lite */

struct gh_event {
    const char *name;    /* "MESSAGE_CREATE" (borrowed) */
    uint64_t guild_id;   /* d.guild_id, 0 = none (DM) */
    struct json_object *d; /* the dispatch's "d" (borrowed, valid during the call) */
    int shard_id;
    int64_t seq;
    int64_t received_us; /* monotonic microseconds when the frame was read (gh_mono_us) */
    unsigned flags;      /* GH_EVF_* */
    struct gh_gw_stats *stats; /* borrowed; NULL in the worker and in unit tests */
};

/* Inline: a batch of n events of one name (n >= 1). Returns GH_OK or a gh_err
 * (logged by the caller; the other handlers still run). */
typedef int (*gh_event_batch_fn)(struct gh_ctx *ctx, struct gh_event *const *evs, int n);
/* Job: one event, in the worker. GH_OK, or an error to retry the job. */
typedef int (*gh_event_job_fn)(struct gh_ctx *ctx, const struct gh_event *ev);

struct gh_event_handler {
    const char *name;            /* Discord dispatch name */
    gh_event_batch_fn inline_fn; /* gateway-lite hot path; NULL = none */
    gh_event_job_fn job_fn;      /* worker, from "gateway:event"; NULL = none */
    int job_dm_only;             /* job only for events without a guild (MESSAGE_CREATE in DMs) */
};

struct gh_command {
    const char *name;                       /* 1-32, lower case */
    const char *description;                /* 1-100 */
    int type;                               /* 1 CHAT_INPUT, 2 USER, 3 MESSAGE */
    const char *options_json;               /* Discord option array as JSON text, or NULL */
    const char *default_member_permissions; /* decimal bit string, NULL = everyone */
    unsigned contexts;                      /* GH_CTX_* mask */
    gh_command_fn handler;
    const char *help; /* longer text for /help, or NULL */
};

struct gh_component {
    const char *prefix; /* custom_id prefix, e.g. "giveaway:claim:" */
    gh_command_fn handler;
};

struct gh_job_kind {
    const char *kind; /* "core:followup" */
    gh_job_fn run;
    int timeout_s;       /* 0 = 30 */
    int max_attempts;    /* 0 = 3 */
    int backoff_base_ms; /* first retry delay before jitter, doubling per attempt (cap 5 min); 0 = 1000 */
    int deadline_s;      /* drop the job as expired this long after enqueue when the enqueuer gave no
                          * deadline; 0 = none */
};

struct gh_feature {
    const char *name;  /* "core", "moderation" */
    const char *title; /* "Core" */
    const char *description;
    int default_enabled;
    int can_disable; /* core cannot be turned off */
    const struct gh_command *commands;
    size_t n_commands;
    const struct gh_component *components;
    size_t n_components;
    const struct gh_job_kind *jobs;
    size_t n_jobs;
    const struct gh_api_route *routes; /* under /api/v1 (lib/api/api.h), checked by gh_api_dispatch */
    size_t n_routes;
    const char *settings_schema; /* JSON Schema subset as text (lib/web/jschema.h), or NULL */
    unsigned premium_flags;
    int premium_rank; /* the tier the whole feature needs (0 free, 1 premium, 2 pro) */
    const struct gh_event_handler *events; /* gateway events (see above) */
    size_t n_events;
    /* Gateway intents the feature needs (GH_INTENT_* bits, lib/gateway/intents.h);
     * gateway-lite identifies with the union of every feature's, privileged ones
     * only when GATEWAY_PRIVILEGED_INTENTS allows them. */
    uint64_t intents;
};

#define GH_COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* NULL-terminated list of every feature. */
extern const struct gh_feature *const gh_features[];

const struct gh_feature *gh_registry_feature(const char *name);
/* Finds a command by name (and type); *feature set when non-NULL. */
const struct gh_command *gh_registry_command(const char *name, int type, const struct gh_feature **feature);
/* Longest matching custom_id prefix. */
const struct gh_component *gh_registry_component(const char *custom_id, const struct gh_feature **feature);
const struct gh_job_kind *gh_registry_job(const char *kind, const struct gh_feature **feature);
/* Discord's bulk-overwrite body for every command, into out (caller's
 * buffer). GH_OK or GH_EJSON when an options_json does not parse. */
int gh_registry_commands_json(struct gh_buf *out);

#endif
