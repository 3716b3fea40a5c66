/* api.h - the dashboard API: one route table, whose rows declare what they
 * need, checked in one place (gh_api_dispatch) before any handler runs.
 *
 * Order of the checks (docs/api.md): rate limits (per IP, user, guild and
 * global; developers bypass them), session (the gh_session cookie, a JWT),
 * CSRF on state-changing methods, developer access, guild access (admin
 * routes need Manage Guild / Administrator / owner), premium tier. A refusal
 * answers DESIGN.md's error JSON; the security-relevant ones are also
 * recorded in security_events (gh_api_security). Features add routes with
 * their struct gh_feature (routes, n_routes). */
#ifndef GH_API_API_H
#define GH_API_API_H

#include <json-c/json.h>
#include <stddef.h>
#include <stdint.h>

struct gh_ctx;
struct gh_http_req;
struct gh_http_resp;
struct gh_feature;
struct gh_buf;

/* What a route needs (GH_API_GUILD_ADMIN implies GH_API_GUILD implies
 * GH_API_SESSION; GH_API_DEVELOPER implies GH_API_SESSION). CSRF is implied
 * by a session on POST, PUT, PATCH and DELETE. */
enum {
    GH_API_PUBLIC = 0,
    GH_API_SESSION = 1u << 0,
    GH_API_GUILD = 1u << 1,       /* "{id}": a guild the user may manage */
    GH_API_GUILD_ADMIN = 1u << 2, /* ... as owner or with Manage Guild / Administrator */
    GH_API_DEVELOPER = 1u << 3,   /* DEVELOPER_USER_IDS */
    GH_API_NO_CSRF = 1u << 4,     /* a state-changing public route that cannot carry a token */
};

/* Rate-limit classes (limits in docs/security.md; API_RATE_PROFILE=bench
 * multiplies them by 1000). */
enum gh_api_rl { GH_RL_READ = 0, GH_RL_WRITE, GH_RL_AUTH, GH_RL_NONE, GH_RL_N };

/* How the user reaches a guild. */
enum gh_access { GH_ACCESS_NONE = 0, GH_ACCESS_GRANTED, GH_ACCESS_ADMIN, GH_ACCESS_OWNER };

#define GH_API_MAX_PARAMS 4

struct gh_api_call;
typedef void (*gh_api_fn)(struct gh_api_call *c);

struct gh_api_route {
    const char *method;  /* "GET" (also answers HEAD), "POST", "PUT", "DELETE" */
    const char *pattern; /* "/guilds/{id}/settings/{feature}", under /api/v1 */
    unsigned needs;      /* GH_API_* */
    int premium_rank;    /* 0 = none; 1 premium; 2 pro (the guild's effective tier) */
    enum gh_api_rl rl;
    gh_api_fn fn;
    const char *summary; /* one line, for --routes and docs */
};

struct gh_api_call {
    struct gh_ctx *ctx;
    const struct gh_http_req *req;
    struct gh_http_resp *resp;
    const struct gh_api_route *route;
    const char *ip;
    /* path parameters, by name ("id", "feature", "user_id", ...) */
    const char *pnames[GH_API_MAX_PARAMS];
    char pvalues[GH_API_MAX_PARAMS][96];
    int n_params;
    /* session (user_id 0 = none) */
    uint64_t user_id;
    char username[64];
    char jti[64];
    char csrf[64];
    int64_t expires_s;
    int developer;
    /* guild, when the route has {id} and access passed */
    uint64_t guild_id;
    enum gh_access access;
    json_object *guild_entry; /* the user's /users/@me/guilds entry for it, or NULL (borrowed) */
    json_object *body;        /* parsed JSON body (object) on POST/PUT, or NULL; owned by the call */
    json_object *user_guilds; /* the user's guild list, when loaded (owned by the call) */
    int premium_effective;    /* the guild's effective tier rank, when checked */
    int pre_session;          /* prefetched session marker: 1 present, 0 absent, -1 unknown */
    int pre_access;           /* prefetched cached access (enum gh_access), 0 none cached, -1 unknown */
};

/* Every route: the platform's (lib/api/routes.c) then each feature's. */
size_t gh_api_route_count(void);
const struct gh_api_route *gh_api_route_at(size_t i);

/* The one entry point of /api/v1 (path still carries the prefix). */
void gh_api_dispatch(struct gh_ctx *ctx, const struct gh_http_req *req, struct gh_http_resp *resp);
/* The route table as JSON ([{method, path, needs:[...], premium_rank, rate_limit, summary}]). */
int gh_api_routes_json(struct gh_buf *out);

/* Query parameter value (percent-decoded) into out; 1 found, 0 not. */
int gh_api_query(const struct gh_http_req *req, const char *name, char *out, size_t n);
/* Path parameter by name; NULL when the route has none of that name. */
const char *gh_api_param(const struct gh_api_call *c, const char *name);

/* Answers. gh_api_reply takes ownership of body (may be NULL: empty). */
void gh_api_reply(struct gh_api_call *c, int status, json_object *body);
void gh_api_error(struct gh_api_call *c, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* 400 invalid_input naming one field (a JSON pointer). */
void gh_api_field_error(struct gh_api_call *c, const char *path, const char *message);
/* Maps a gh_err from a store/REST call to an answer: GH_EPG -> 500
 * database_unavailable, GH_EREDIS -> 500, GH_EHTTP/GH_ETIMEOUT/GH_EUNAVAILABLE
 * -> 500 discord_unavailable, GH_ERATELIMIT -> 429, GH_ENOTFOUND -> 404 ... and
 * logs what failed. */
void gh_api_fail(struct gh_api_call *c, int err, const char *what);

/* Records a security event: a warn log line ("security": kind) and a
 * security_events row (best effort: a PostgreSQL failure is logged). detail
 * may be NULL (borrowed). */
void gh_api_security(struct gh_api_call *c, const char *kind, uint64_t guild_id, const char *detail_fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Writes an audit_log row (action "access.grant", ...), before/after borrowed
 * (NULL allowed). GH_OK or GH_EPG. Runs inside the caller's transaction if any. */
int gh_api_audit(struct gh_api_call *c, uint64_t guild_id, const char *action, const char *target,
                 json_object *before, json_object *after);

/* Platform handlers (lib/api/<file>.c), listed in lib/api/routes.c. */
void gh_api_auth_login(struct gh_api_call *c);
void gh_api_auth_install(struct gh_api_call *c);
void gh_api_auth_callback(struct gh_api_call *c);
void gh_api_auth_logout(struct gh_api_call *c);
void gh_api_auth_me(struct gh_api_call *c);
void gh_api_guilds_list(struct gh_api_call *c);
void gh_api_guild_get(struct gh_api_call *c);
void gh_api_guild_members(struct gh_api_call *c);
void gh_api_guild_roles(struct gh_api_call *c);
void gh_api_guild_channels(struct gh_api_call *c);
void gh_api_access_list(struct gh_api_call *c);
void gh_api_access_grant(struct gh_api_call *c);
void gh_api_access_revoke(struct gh_api_call *c);
void gh_api_settings_all(struct gh_api_call *c);
void gh_api_settings_get(struct gh_api_call *c);
void gh_api_settings_put(struct gh_api_call *c);
void gh_api_premium_get(struct gh_api_call *c);
void gh_api_premium_redeem(struct gh_api_call *c);
void gh_api_premium_trial(struct gh_api_call *c);
void gh_api_premium_codes(struct gh_api_call *c);
void gh_api_shards_list(struct gh_api_call *c);
void gh_api_shard_for_guild(struct gh_api_call *c);
void gh_api_jobs_stats(struct gh_api_call *c);
void gh_api_jobs_dead(struct gh_api_call *c);
void gh_api_jobs_retry(struct gh_api_call *c);
void gh_api_health(struct gh_api_call *c);

/* POST /webhooks/discord (outside /api/v1: Discord signs it, no session). */
void gh_api_webhook_discord(struct gh_ctx *ctx, const struct gh_http_req *req, struct gh_http_resp *resp);

#endif
