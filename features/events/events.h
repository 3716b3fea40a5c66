/* events.h - the events feature (issue 7): gateway caches, events as jobs,
 * legacy prefix commands. The contract between the feature's files:
 *
 *   cache.c     inline handlers (gateway-lite's loop): the guild, role and
 *               channel caches lib/discord/guildcache.c reads, member
 *               counts, recent message content (gh_before annotations)
 *                                                      gh_events_cache_*
 *   prefix.c    prefix commands: detection in MESSAGE_CREATE (inline),
 *               argument parsing against a command's declared options,
 *               usage text, permissions from roles and overwrites
 *                                                      gh_events_prefix_*, gh_events_perms_*
 *   jobs.c      the "gateway:event" job kind (runs every feature's job_fn),
 *               this feature's job_fns, the "events:prefix" job
 *   commands.c  the feature struct, its settings schema and event table
 *
 * Redis keys (all TTL 24 h, refreshed on every write; see
 * docs/features/events.md):
 *   bot:{<g>}:cache:guild          HASH  id name owner_id icon member_count unavailable updated_ms
 *   bot:{<g>}:cache:roles          STRING JSON array of role objects (guildcache format)
 *   bot:{<g>}:cache:channels       STRING JSON array of channel objects
 *   bot:{<g>}:cache:msg:<id>       STRING {author_id, channel_id, content, attachments, created}
 *   bot:{<g>}:cache:msgs           ZSET  message id -> ms since Discord epoch (cap per guild)
 *   bot:{<g>}:events:prefix_rl:<u> STRING one prefix command per user per 3 s
 * Settings: feature "events" (schema.json). */
#ifndef GH_FEATURES_EVENTS_H
#define GH_FEATURES_EVENTS_H

#include <json-c/json.h>
#include <stddef.h>
#include <stdint.h>

#include "features/registry.h"

extern const struct gh_feature gh_feature_events;

#define GH_EVENTS_CACHE_TTL_S 86400        /* guild, roles, channels, messages */
#define GH_EVENTS_MSG_CONTENT_MAX 4000     /* bytes of content kept per message */
#define GH_EVENTS_MSG_CAP_DEFAULT 10000    /* messages kept per guild */
#define GH_EVENTS_PREFIX_RATE_MS 3000      /* one prefix command per user per this */
#define GH_EVENTS_PREFIX_MAX 5

/* ---- cache.c (inline handlers; also callable from tests) */
int gh_events_guild_create(struct gh_ctx *ctx, struct gh_event *const *evs, int n);
int gh_events_guild_update(struct gh_ctx *ctx, struct gh_event *const *evs, int n);
int gh_events_guild_delete(struct gh_ctx *ctx, struct gh_event *const *evs, int n);
int gh_events_role_event(struct gh_ctx *ctx, struct gh_event *const *evs, int n);
int gh_events_channel_event(struct gh_ctx *ctx, struct gh_event *const *evs, int n);
int gh_events_member_add(struct gh_ctx *ctx, struct gh_event *const *evs, int n);
int gh_events_member_remove(struct gh_ctx *ctx, struct gh_event *const *evs, int n);
int gh_events_member_update(struct gh_ctx *ctx, struct gh_event *const *evs, int n);
/* MESSAGE_CREATE: caches guild messages (one pipelined round trip for the
 * batch), then detects prefix commands (prefix.c). */
int gh_events_message_create(struct gh_ctx *ctx, struct gh_event *const *evs, int n);
/* MESSAGE_UPDATE / MESSAGE_DELETE / MESSAGE_DELETE_BULK: annotate ev->d with
 * "gh_before" (the cached copy; for the bulk delete an object id -> copy),
 * then update or drop the cache. */
int gh_events_message_update(struct gh_ctx *ctx, struct gh_event *const *evs, int n);
int gh_events_message_delete(struct gh_ctx *ctx, struct gh_event *const *evs, int n);
/* Messages kept per guild (tests lower it); <= 0 restores the default. */
void gh_events_set_msg_cap(int cap);
/* The guild of an event: d.guild_id, or d.id for GUILD_CREATE/UPDATE/DELETE. */
uint64_t gh_events_guild_of(const char *name, json_object *d);

/* ---- prefix.c */

/* The "events" settings document as a struct (setcache parse target). */
struct gh_events_settings {
    int prefix_enabled;
    char prefix[GH_EVENTS_PREFIX_MAX + 1];
    json_object *commands; /* owned array of allowed names; NULL or empty = every command */
};
void gh_events_settings_load(json_object *doc, struct gh_events_settings *s); /* doc borrowed */
/* 1 when name may run as a prefix command under s. */
int gh_events_settings_allows(const struct gh_events_settings *s, const char *name);

/* Splits "<prefix>name rest": when content starts with prefix and a command
 * word follows, copies the lower-cased word into name and points *rest at the
 * text after it. 1 when it matched, 0 otherwise. */
int gh_events_prefix_split(const char *content, const char *prefix, char *name, size_t name_size,
                           const char **rest);
/* Parses args against options_json (Discord's option array as text, NULL =
 * none) into *out, a new array of interaction options (caller puts). GH_OK;
 * GH_EINVAL with err naming the option and what was expected and usage the
 * usage line of the (sub)command ("<prefix>warn <user> [reason]"); GH_EJSON
 * when options_json does not parse; GH_EUNAVAILABLE for an option type a
 * message cannot carry (attachments). */
int gh_events_prefix_parse(const char *prefix, const char *name, const char *options_json, const char *args,
                           json_object **out, char *err, size_t errlen, char *usage, size_t usage_size);

/* Discord's permission algorithm: base from @everyone (role id = guild id)
 * and the member's roles, ADMINISTRATOR or owner = everything, then the
 * channel's overwrites (@everyone, roles, member). roles: the guild's role
 * array; channel: the channel object or NULL (guild-level); member_roles:
 * array of role id strings. */
uint64_t gh_events_perms_compute(const json_object *roles, const json_object *channel,
                                 const json_object *member_roles, uint64_t guild_id, uint64_t user_id,
                                 int is_owner);
#define GH_EVENTS_PERMS_ALL ((UINT64_C(1) << 53) - 1)

/* Inline prefix detection over a MESSAGE_CREATE batch (called by
 * gh_events_message_create). */
void gh_events_prefix_detect(struct gh_ctx *ctx, struct gh_event *const *evs, int n);

/* ---- jobs.c */
extern const struct gh_job_kind gh_events_jobs[];
extern const size_t gh_events_n_jobs;
/* The "gateway:event" runner and the "events:prefix" job (exposed for tests). */
int gh_events_run_gateway_event(struct gh_ctx *ctx, const struct gh_job *job);
int gh_events_run_prefix(struct gh_ctx *ctx, const struct gh_job *job);
/* job_fns registered in commands.c */
int gh_events_job_generic(struct gh_ctx *ctx, const struct gh_event *ev);
int gh_events_job_guild_create(struct gh_ctx *ctx, const struct gh_event *ev);
int gh_events_job_guild_delete(struct gh_ctx *ctx, const struct gh_event *ev);

/* Logs "Redis unavailable" at most once per burst (10 s); exposed for the
 * feature's files. */
void gh_events_redis_down(struct gh_ctx *ctx, const char *what);

#endif
