/* moderation.h - the moderation feature: cases, checks, escalation, warning
 * decay, timed actions (issue 6). The contract between the feature's files:
 *
 *   store.c       cases in PostgreSQL (gapless per-guild numbers), notes,
 *                 active-warning counts (Redis cache), escalation decision,
 *                 decay                                        gh_mod_case_*, gh_mod_warns_*, gh_mod_decay
 *   checks.c      who may act on whom: permission, staff tier, hierarchy,
 *                 self/owner/bot, the bot's own permissions   gh_mod_check_*
 *   commands.c    the slash and context-menu commands, the feature struct
 *   actions.c     the Discord side of each action (REST), and running one
 *                 action as a case (create -> act -> active | failed)
 *                                                              gh_mod_act, gh_mod_apply
 *   jobs.c        job kinds: mod-log embed, lifts (tempban, mute, jail,
 *                 via durable timers), hourly decay            gh_mod_jobs[]
 *   api.c         dashboard routes (cases with filters, detail, reason,
 *                 void)                                        gh_mod_routes[]
 *   schema.json   the settings (mirrored in commands.c as a string; a unit
 *                 test keeps them identical)
 *
 * Redis keys: bot:{<g>}:moderation:warns:<user> (active warnings, 24 h TTL,
 * rebuilt from PostgreSQL on a miss). Settings: feature "moderation"
 * (gh_settings_get). Tables: sql/0007_moderation.up.sql. */
#ifndef GH_FEATURES_MODERATION_H
#define GH_FEATURES_MODERATION_H

#include <json-c/json.h>
#include <stddef.h>
#include <stdint.h>

#include "api/api.h" /* struct gh_api_route, complete for the gh_mod_routes declaration */
#include "features/registry.h"

struct gh_ctx;
struct gh_interaction;
struct gh_buf;

extern const struct gh_feature gh_feature_moderation;

/* ---- case types and states (PostgreSQL enums mod_case_type, mod_case_status) */

#define GH_MOD_CASE_TYPES(X)                                                                                 \
    X(GH_MOD_WARN, "WARN")                                                                                   \
    X(GH_MOD_TIMEOUT, "TIMEOUT")                                                                             \
    X(GH_MOD_UNTIMEOUT, "UNTIMEOUT")                                                                         \
    X(GH_MOD_KICK, "KICK")                                                                                   \
    X(GH_MOD_BAN, "BAN")                                                                                     \
    X(GH_MOD_TEMPBAN, "TEMPBAN")                                                                             \
    X(GH_MOD_UNBAN, "UNBAN")                                                                                 \
    X(GH_MOD_SOFTBAN, "SOFTBAN")                                                                             \
    X(GH_MOD_HACKBAN, "HACKBAN")                                                                             \
    X(GH_MOD_MUTE, "MUTE")                                                                                   \
    X(GH_MOD_JAIL, "JAIL")                                                                                   \
    X(GH_MOD_NOTE, "NOTE")

enum gh_mod_type {
#define GH_MOD_TYPE_ENUM(id, name) id,
    GH_MOD_CASE_TYPES(GH_MOD_TYPE_ENUM)
#undef GH_MOD_TYPE_ENUM
        GH_MOD_TYPE_COUNT
};

const char *gh_mod_type_name(enum gh_mod_type t); /* "WARN" */
int gh_mod_type_parse(const char *name);          /* -1 when unknown (case-insensitive) */

/* pending: created, the Discord call not finished yet; active: in force (a
 * warning counts, a tempban waits for its lift); inactive: over (a decayed
 * warning, a lifted tempban/mute/jail) and kept in history; void: cancelled
 * by a moderator (who and why kept); failed: Discord refused or did not
 * answer (error kept): no case claims an action that did not happen. */
enum gh_mod_status { GH_MOD_PENDING, GH_MOD_ACTIVE, GH_MOD_INACTIVE, GH_MOD_VOID, GH_MOD_FAILED };
const char *gh_mod_status_name(enum gh_mod_status s); /* "pending", "active", ... */

/* A timed case's lift: none, pending (timer scheduled), done, failed. */
enum gh_mod_lift { GH_MOD_LIFT_NONE, GH_MOD_LIFT_PENDING, GH_MOD_LIFT_DONE, GH_MOD_LIFT_FAILED };

#define GH_MOD_REASON_MAX 512 /* characters (UTF-8 code points) */

struct gh_mod_case {
    int64_t id; /* row id */
    uint64_t guild_id;
    int64_t number; /* gapless per guild, from 1 */
    enum gh_mod_type type;
    enum gh_mod_status status;
    uint64_t target_id;
    uint64_t moderator_id; /* 0 = Guildhall itself (escalation, AutoMod) */
    char reason[GH_MOD_REASON_MAX * 4 + 1];
    int64_t duration_s;             /* 0 = none */
    int64_t created_ms, expires_ms; /* expires 0 = none */
    int64_t refs_case;              /* number of the case that triggered this one (escalation), 0 = none */
    uint64_t interaction_id;        /* dedupe of duplicate deliveries, 0 = none */
    json_object *target_roles;      /* role ids the target had (JSON array), owned; NULL = unknown */
    char error[256];                /* the Discord error when failed */
    uint64_t voided_by;
    char void_reason[GH_MOD_REASON_MAX * 4 + 1];
    enum gh_mod_lift lift;
    char lift_error[256];
};
void gh_mod_case_cleanup(struct gh_mod_case *c); /* frees target_roles */

/* ---- store.c */

/* Creates a case in one transaction: locks the guild's counter row, takes
 * the next number (gapless: the counter and the case commit together),
 * inserts the case with status in->status (usually PENDING for actions that
 * call Discord, ACTIVE for WARN and NOTE). When in->interaction_id is set and
 * a case of this guild already has it (a duplicate delivery), nothing is
 * inserted and *out is that case with *duplicate = 1. For a WARN it also
 * counts the target's active warnings (after this one) into *warn_count, in
 * the same transaction, so concurrent warns see distinct counts; and sets
 * expires_ms from the guild's decay setting when in->expires_ms is 0.
 * The guilds row is created if missing. out is filled (caller cleans up).
 * GH_OK, GH_EPG, GH_EINVAL (reason too long, bad ids). */
int gh_mod_case_create(struct gh_ctx *ctx, const struct gh_mod_case *in, struct gh_mod_case *out,
                       int *duplicate, int *warn_count);
/* Marks a case's outcome after the Discord call: ACTIVE, or FAILED with
 * error. GH_OK, GH_EPG. */
int gh_mod_case_settle(struct gh_ctx *ctx, uint64_t guild_id, int64_t number, enum gh_mod_status status,
                       const char *error);
/* One case by number. GH_OK, GH_ENOTFOUND, GH_EPG. */
int gh_mod_case_get(struct gh_ctx *ctx, uint64_t guild_id, int64_t number, struct gh_mod_case *out);
/* Edits the reason (audit_log row moderation.case.reason with before/after). */
int gh_mod_case_set_reason(struct gh_ctx *ctx, uint64_t guild_id, int64_t number, const char *reason,
                           uint64_t actor_id);
/* Voids a case (status void, who and why; a voided WARN stops counting and
 * the Redis count is dropped). GH_ECONFLICT when already void. */
int gh_mod_case_void(struct gh_ctx *ctx, uint64_t guild_id, int64_t number, const char *why,
                     uint64_t actor_id);
/* Sets the lift state of a timed case (and status INACTIVE when done). */
int gh_mod_case_set_lift(struct gh_ctx *ctx, uint64_t guild_id, int64_t number, enum gh_mod_lift lift,
                         const char *error);

struct gh_mod_filter {
    uint64_t target_id, moderator_id; /* 0 = any */
    int type;                         /* -1 = any */
    int status;                       /* -1 = any */
    int64_t from_ms, to_ms;           /* 0 = open */
    const char *text;                 /* substring of the reason, NULL = any */
    int64_t before_number;            /* paging: cases with number < this, 0 = from the newest */
    int limit;                        /* 1..100 */
};
/* Newest first: a JSON array of case objects (see gh_mod_case_json) into
 * *out, and *total (matching cases, ignoring paging). GH_OK, GH_EPG. */
int gh_mod_case_list(struct gh_ctx *ctx, uint64_t guild_id, const struct gh_mod_filter *f, json_object **out,
                     int64_t *total);
/* {number,type,status,target_id,moderator_id,reason,duration_s,created_at,expires_at,refs_case,
 *  target_roles,error,voided_by,void_reason,lift,lift_error} (snowflakes as strings, times ISO). */
json_object *gh_mod_case_json(const struct gh_mod_case *c);

/* Active warnings of a user: Redis (bot:{g}:moderation:warns:<u>, 24 h),
 * rebuilt from PostgreSQL on a miss or when Redis is down. GH_OK, GH_EPG. */
int gh_mod_warns_count(struct gh_ctx *ctx, uint64_t guild_id, uint64_t user_id, int *count);
/* Stores a count just computed in PostgreSQL (after a warn or a void). When
 * Redis does not take it (down), a "moderation:recount" durable timer is
 * scheduled (a PostgreSQL row first), so the copy Redis keeps across its
 * restart (AOF) is corrected once it is back: counts are never left stale. */
void gh_mod_warns_cache(struct gh_ctx *ctx, uint64_t guild_id, uint64_t user_id, int count);
/* Recounts from PostgreSQL and stores the count (the recount job). */
void gh_mod_warns_refresh(struct gh_ctx *ctx, uint64_t guild_id, uint64_t user_id);

/* Marks warnings past expires_at inactive, in every guild (kept in
 * history), and refreshes the affected Redis counts. *changed = rows.
 * Idempotent. GH_OK, GH_EPG. */
int gh_mod_decay(struct gh_ctx *ctx, int64_t *changed);

/* Private moderator notes (NOTE cases are the notes; listing them is a
 * filter on type NOTE). */

/* ---- settings (schema.json; read with gh_mod_settings_load) */

#define GH_MOD_MAX_THRESHOLDS 10
#define GH_MOD_MAX_TIER_ROLES 10

struct gh_mod_threshold {
    int warnings;            /* active warnings that trigger it */
    enum gh_mod_type action; /* TIMEOUT, KICK, BAN, TEMPBAN, MUTE, JAIL */
    int64_t duration_s;      /* for TIMEOUT / TEMPBAN / MUTE / JAIL */
};

struct gh_mod_settings {
    uint64_t mod_log_channel_id; /* 0 = none */
    uint64_t mute_role_id;       /* 0 = /mute unavailable */
    uint64_t jail_role_id;       /* 0 = /jail unavailable */
    int dm_on_action;            /* DM the target before kick/ban (and on warn/timeout) */
    char dm_template[1024];      /* "{action} in {guild}: {reason}" style, placeholders below */
    int64_t warn_decay_s;        /* 0 = warnings never expire */
    int escalation_enabled;
    struct gh_mod_threshold thresholds[GH_MOD_MAX_THRESHOLDS]; /* ascending by warnings */
    int n_thresholds;
    uint64_t moderator_roles[GH_MOD_MAX_TIER_ROLES]; /* staff tier "moderator" */
    int n_moderator_roles;
    uint64_t admin_roles[GH_MOD_MAX_TIER_ROLES]; /* staff tier "admin" */
    int n_admin_roles;
};
/* Defaults when the guild has no settings; GH_OK or GH_EPG (stores down:
 * defaults and GH_EPG). */
int gh_mod_settings_load(struct gh_ctx *ctx, uint64_t guild_id, struct gh_mod_settings *out);
/* The text of the DM: placeholders {action} {guild} {reason} {duration}
 * {case} replaced, user text escaped for Discord markdown. */
int gh_mod_dm_text(const struct gh_mod_settings *s, const char *action, const char *guild_name,
                   const char *reason, int64_t duration_s, int64_t case_number, char *out, size_t n);

/* ---- checks.c */

enum gh_mod_tier { GH_MOD_TIER_NONE = 0, GH_MOD_TIER_MODERATOR = 1, GH_MOD_TIER_ADMIN = 2 };

/* Everything checked before an action, in this order, each failure
 * answered with why (into why, for the ephemeral reply) and logged as a
 * security event by the caller: the invoker's permission `need` (from the
 * interaction's member.permissions; Administrator implies all) or a staff
 * tier >= `tier` (roles mapped in settings); no target of self, the guild
 * owner or the bot; when target_is_member: the invoker's highest role above
 * the target's (the owner passes) and the bot's highest role above the
 * target's (roles from Redis bot:{g}:cache:roles with a REST fallback); the
 * bot's own permission `need` from the interaction's app_permissions.
 * GH_OK, GH_EFORBIDDEN (why set), GH_EHTTP/GH_EUNAVAILABLE (roles could not be
 * read: why set). */
struct gh_mod_check {
    uint64_t need;         /* permission bits the action needs (GH_PERM_*) */
    enum gh_mod_tier tier; /* or this staff tier; NONE = permission only */
    uint64_t target_id;
    int target_is_member;       /* hierarchy applies */
    json_object *target_member; /* the target's member object if known (resolved), borrowed */
    /* Added by checks.c: what the bot itself needs from app_permissions when
     * it differs from need (mute/jail: MANAGE_ROLES); 0 = need. */
    uint64_t bot_need;
    int bot_need_none; /* warn, note: no Discord call, the bot needs nothing */
};
int gh_mod_check(struct gh_ctx *ctx, const struct gh_interaction *ix, const struct gh_mod_settings *s,
                 const struct gh_mod_check *chk, char *why, size_t whylen);

/* ---- actions.c */

struct gh_mod_request {
    enum gh_mod_type type;
    uint64_t guild_id;
    uint64_t target_id;
    uint64_t moderator_id; /* 0 = Guildhall (escalation) */
    const char *reason;    /* may be NULL */
    int64_t duration_s;    /* timeout/tempban/mute/jail */
    int delete_message_s;  /* ban/softban: 0..604800 */
    uint64_t interaction_id;
    int64_t refs_case;
    json_object *target_roles; /* borrowed: the target's roles now (jail saves them), may be NULL */
    const char *guild_name;    /* for the DM, may be NULL */
};
/* Runs one action as a case: create (PENDING, or ACTIVE for WARN/NOTE) ->
 * DM the target first when configured and the action removes them -> the
 * Discord call -> settle ACTIVE or FAILED (with Discord's error); timed
 * actions schedule their lift (gh_timers_schedule, kind "moderation:lift",
 * idempotency key "lift:<guild>:<number>"); the mod-log job is enqueued
 * ("moderation:modlog", id "modlog:<guild>:<number>"). For a WARN, the
 * escalation runs (gh_mod_escalate). out gets the case (caller cleans up).
 * Returns GH_OK when the action happened (or was a duplicate: *duplicate),
 * GH_EDISCORD/GH_EFORBIDDEN/... when Discord refused (case FAILED, out->error
 * says why), GH_EPG when nothing could be recorded (nothing acted on). */
int gh_mod_act(struct gh_ctx *ctx, const struct gh_mod_request *req, struct gh_mod_case *out, int *duplicate);
/* One Discord REST call with the bot token (audit may be NULL); resp is
 * filled in every case (caller cleans up). GH_EUNAVAILABLE without a client. */
struct gh_rest_resp;
int gh_mod_rest(struct gh_ctx *ctx, const char *method, const char *path, const char *body, const char *audit,
                struct gh_rest_resp *resp);
/* After a WARN that brought the target to warn_count active warnings: the
 * thresholds reached exactly at this count (ascending) each run as an
 * automatic case referencing the warn's number. AutoMod calls this too. */
int gh_mod_escalate(struct gh_ctx *ctx, uint64_t guild_id, uint64_t target_id, int warn_count,
                    int64_t warn_number);

/* ---- jobs.c / api.c (the counts are constants: the feature struct in
 * commands.c needs them at compile time; a unit test checks them) */
#define GH_MOD_N_JOBS 4 /* moderation:modlog, moderation:lift, moderation:decay, moderation:recount */
/* Schedules the "moderation:decay" timer of the hour after now_ms (operator
 * timer, key "moderation:decay:<hour>"): idempotent, so the hourly chain has
 * exactly one job per hour. gh_mod_act seeds it once per hour per process;
 * each decay job schedules the next. GH_OK (also when it existed), GH_EPG. */
int gh_mod_decay_schedule(struct gh_ctx *ctx, int64_t now_ms);
#define GH_MOD_N_ROUTES 4 /* list, detail, reason, void */
extern const struct gh_job_kind gh_mod_jobs[GH_MOD_N_JOBS];
struct gh_api_route;
extern const struct gh_api_route gh_mod_routes[GH_MOD_N_ROUTES];

#endif
