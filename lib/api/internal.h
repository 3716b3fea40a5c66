/* internal.h - what the files of lib/api share: cookies, sessions, guild
 * access, rate limits and small JSON helpers. Not for features: they use
 * api.h. */
#ifndef GH_API_INTERNAL_H
#define GH_API_INTERNAL_H

#include <json-c/json.h>
#include <stddef.h>
#include <stdint.h>

#include "api/api.h"

#define GH_PERM_ADMINISTRATOR (1ull << 3)
#define GH_PERM_MANAGE_GUILD (1ull << 5)

#define GH_SESSION_COOKIE "gh_session"
#define GH_CSRF_COOKIE "gh_csrf"
#define GH_STATE_COOKIE "gh_oauth_state"
#define GH_NEXT_COOKIE "gh_oauth_next"
#define GH_SESSION_TTL_S 86400
#define GH_USER_GUILDS_TTL_S 300     /* Redis copy of a user's guild list */
#define GH_USER_GUILDS_REFRESH_S 600 /* read again from Discord when older */

/* ---- cookies (cookie.c) */
/* Value of cookie name from the Cookie header into out; 1 found, 0 not. */
int gh_api_cookie(const struct gh_http_req *req, const char *name, char *out, size_t n);
/* Set-Cookie with Path=/, SameSite=Lax, HttpOnly when http_only, Secure when
 * PUBLIC_URL is https; max_age 0 deletes it. */
void gh_api_set_cookie(struct gh_api_call *c, const char *name, const char *value, int max_age,
                       int http_only);
int gh_api_secure_cookies(const struct gh_api_call *c);

/* ---- sessions (session.c) */
/* Redis key of a session's marker (bot:{global}:dash:session:<jti>). */
int gh_session_key(char *out, size_t n, const char *jti);
/* Reads and verifies the JWT of the session cookie into c (user_id, jti,
 * csrf, expires_s, username). GH_OK; GH_ENOTFOUND (no cookie); GH_ESIGNATURE
 * (tampered); GH_EEXPIRED; GH_EINVAL (malformed). No I/O. */
int gh_session_parse(struct gh_api_call *c);
/* Whether the parsed session is live (not revoked): Redis marker, then
 * PostgreSQL. GH_OK, GH_EUNAUTHORIZED (revoked or unknown), GH_EPG. */
int gh_session_live(struct gh_api_call *c);
/* New session for user: dashboard_sessions row, Redis marker, cookies.
 * GH_OK or GH_EPG / GH_ENOMEM. */
int gh_session_issue(struct gh_api_call *c, uint64_t user_id, const char *username);
/* Logout: revoked in PostgreSQL and Redis, cookies cleared. */
int gh_session_revoke(struct gh_api_call *c);

/* ---- guild access (access.c) */
/* The user's guild list ([{id,name,icon,owner,permissions}]) into
 * c->user_guilds: Redis, then PostgreSQL, refreshed from Discord with the
 * user's token when older than GH_USER_GUILDS_REFRESH_S. GH_OK or GH_EPG. */
int gh_access_load_guilds(struct gh_api_call *c);
/* The access the user has to a guild from an entry of that list (owner,
 * admin or none). */
enum gh_access gh_access_from_entry(const json_object *entry);
/* Full check for c->guild_id: the guild is known and active (the bot is in
 * it) and the user owns/administers it or was granted access. Sets
 * c->access and c->guild_entry. GH_OK, GH_EFORBIDDEN, GH_EPG. */
int gh_access_check(struct gh_api_call *c);
/* The user's entry in their guild list for c->guild_id (loads the list when
 * the access came from the cache); NULL when none (granted access). */
json_object *gh_access_entry(struct gh_api_call *c);
/* Drops the cached access decision of user in guild (bot:{g}:dash:access:<u>,
 * GH_ACCESS_CACHE_TTL_S): grants and revocations call it. */
int gh_access_key(char *out, size_t n, uint64_t guild_id, uint64_t user_id);
void gh_access_forget(struct gh_api_call *c, uint64_t guild_id, uint64_t user_id);
#define GH_ACCESS_CACHE_TTL_S 60
/* Stores a freshly read guild list for user (PostgreSQL and Redis). */
int gh_access_store_guilds(struct gh_api_call *c, uint64_t user_id, json_object *guilds);
/* Every page of Discord's GET /users/@me/guilds (200 guilds a page, sorted by
 * id; at most GH_ACCESS_GUILD_PAGES pages) read with the user's credential
 * authorization ("Bearer <token>"), into *out: a new array, caller puts. A
 * page that fails fails the whole read (a partial list would drop access).
 * GH_OK or the REST error. */
#define GH_ACCESS_GUILD_PAGES 5
int gh_access_fetch_guilds(struct gh_api_call *c, const char *authorization, json_object **out);

/* ---- auth.c */
struct gh_rest_req;
struct gh_rest_resp;
/* A call with a user's credential: a 429 asking to wait at most 5 s is waited
 * out once (Discord allows GET /users/@me/guilds once a second per user). */
int gh_api_user_call(struct gh_api_call *c, const struct gh_rest_req *req, struct gh_rest_resp *resp);

/* ---- rate limits (limits.c) */
/* Counts this request against the route's class for IP, user, guild and
 * globally, sets X-RateLimit-* headers, and in the same Redis round trip
 * fetches the session marker and the cached access decision into
 * c->pre_session / c->pre_access (-1 unknown). GH_OK, or GH_ERATELIMIT after
 * answering 429. Redis down: allowed (logged). */
int gh_limits_check(struct gh_api_call *c);

/* ---- installs (access.c): APPLICATION_AUTHORIZED and the OAuth install */
/* Records the guild (name), marks it active and grants the installer access
 * (is_installer). Idempotent. GH_OK or GH_EPG. */
int gh_api_record_install(struct gh_ctx *ctx, uint64_t guild_id, const char *name, uint64_t user_id);

/* ---- small helpers */
json_object *gh_api_str_or_null(const char *s);
json_object *gh_api_snowflake(uint64_t id);
json_object *gh_api_iso_or_null(int64_t ms);
/* Percent-encodes s for a URL query. */
int gh_api_urlencode(const char *s, char *out, size_t n);

#endif
