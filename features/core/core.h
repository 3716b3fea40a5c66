/* core.h - the core feature: /ping, /status, /help, /feature, and the jobs
 * that edit a deferred response and post alerts.
 *
 * Core cannot be turned off. Its settings document (schema.json) carries
 * "alert_channel_id": where core:alert posts for that guild.
 *
 * Contracts other processes write to:
 *  - shard status (gateway-lite): the set bot:{global}:shards holds shard
 *    ids; the hash bot:{global}:shards:<id> has the fields "state" (text),
 *    "guilds" (count), "latency_ms" and "last_heartbeat_ms" (epoch ms of the
 *    last heartbeat ACK). /status reads them; missing fields show as "?".
 *  - job "core:followup": payload {"application_id","token","content",
 *    "interaction_id"?}. PATCHes /webhooks/<app>/<token>/messages/@original
 *    (no bot token). "{elapsed_ms}" in content is replaced by the
 *    milliseconds since the interaction was created (needs interaction_id).
 *  - job "core:alert": payload {"guild_id"?,"message","corr"?}. Posts an
 *    embed to the guild's alert channel (core settings "alert_channel_id"),
 *    else to ALERT_CHANNEL_ID, else only logs. */
#ifndef GH_FEATURES_CORE_H
#define GH_FEATURES_CORE_H

#include <stdint.h>

#include "features/registry.h"

struct gh_ctx;

extern const struct gh_feature gh_feature_core;

/* Jobs of the feature (jobs.c); commands.c points the feature at them. */
#define GH_CORE_N_JOBS 2
extern const struct gh_job_kind gh_core_jobs[GH_CORE_N_JOBS];

/* Interaction tokens live 15 minutes; a follow-up job must finish 30 s
 * before that. Returns the deadline (epoch ms) for an interaction id. */
int64_t gh_core_followup_deadline_ms(uint64_t interaction_id);

/* Queues a core:alert job (id "core:alert:<corr or time>:<hash of message>",
 * so the same alert from one request is queued once). guild_id 0 = the
 * operator's channel. GH_OK, GH_EDUPLICATE, GH_EREDIS (then the message is
 * logged at CRIT so it is not lost), GH_EINVAL. */
int gh_core_alert_enqueue(struct gh_ctx *ctx, uint64_t guild_id, const char *message);

#endif
