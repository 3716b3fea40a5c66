/* settings.h - per-guild, per-feature settings documents.
 *
 * Read through Redis (bot:{g}:settings:<feature>, TTL 1 h), fall back to
 * PostgreSQL (guild_settings) when Redis misses or is down; writes go to
 * PostgreSQL with a version check and then delete the Redis key. Every
 * document may carry "enabled": a disabled feature answers "disabled in this
 * server" everywhere (the router checks gh_settings_feature_enabled). */
#ifndef GH_STORE_SETTINGS_H
#define GH_STORE_SETTINGS_H

#include <json-c/json.h>
#include <stdint.h>

struct gh_ctx;

/* *doc: caller releases with json_object_put; an empty object when the guild
 * has no row. *version: 0 when no row. GH_OK, or GH_EPG when neither store
 * answered. */
int gh_settings_get(struct gh_ctx *ctx, uint64_t guild_id, const char *feature, json_object **doc,
                    int *version);
/* Saves doc (borrowed) if the stored version equals expected_version (-1 =
 * any); new version into *new_version. GH_OK, GH_ECONFLICT, GH_EPG,
 * GH_ENOTFOUND (no guilds row for guild_id: create it first), GH_EINVAL (doc
 * not a JSON object, feature not [a-z][a-z0-9_]{0,31}). Records
 * the change in audit_log (before/after) in the same transaction. */
int gh_settings_put(struct gh_ctx *ctx, uint64_t guild_id, const char *feature, json_object *doc,
                    uint64_t updated_by, int expected_version, int *new_version);
/* 1 enabled, 0 disabled. default_enabled applies when the document has no
 * boolean "enabled" member, and for guild_id 0 (DMs). Stores down: returns
 * default_enabled (logged). */
int gh_settings_feature_enabled(struct gh_ctx *ctx, uint64_t guild_id, const char *feature,
                                int default_enabled);
/* Drops the cached copy. */
void gh_settings_invalidate(struct gh_ctx *ctx, uint64_t guild_id, const char *feature);

#endif
