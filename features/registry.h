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
