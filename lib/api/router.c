/* router.c - gh_api_dispatch: match a route, check what it declares it needs
 * (in the order of api.h), parse the body, run the handler, and the shared
 * answer helpers. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "api/api.h"
#include "api/internal.h"
#include "core/config.h"
#include "core/ctx.h"
#include "core/err.h"
#include "core/json.h"
#include "core/log.h"
#include "core/str.h"
#include "core/timeutil.h"
#include "features/premium/premium.h"
#include "features/registry.h"
#include "store/pg.h"
#include "web/http.h"

#define API_PREFIX "/api/v1"
#define MAX_JSON_DEPTH 32

/* ---- the table: the platform's routes then every feature's */

extern const struct gh_api_route gh_api_platform_routes[];
extern const size_t gh_api_platform_n_routes;

size_t gh_api_route_count(void)
{
    size_t n = gh_api_platform_n_routes;
    for (size_t i = 0; gh_features[i] != NULL; i++)
        n += gh_features[i]->n_routes;
    return n;
}

const struct gh_api_route *gh_api_route_at(size_t i)
{
    if (i < gh_api_platform_n_routes)
        return &gh_api_platform_routes[i];
    i -= gh_api_platform_n_routes;
    for (size_t f = 0; gh_features[f] != NULL; f++) {
        if (i < gh_features[f]->n_routes)
            return &gh_features[f]->routes[i];
        i -= gh_features[f]->n_routes;
    }
    return NULL;
}

/* Matches path against pattern; fills c's params. 1 match, 0 not. */
static int match(const char *pattern, const char *path, struct gh_api_call *c)
{
    const char *p = pattern;
    const char *s = path;
    int n = 0;

    while (*p && *s) {
        if (*p == '{') {
            const char *close = strchr(p, '}');
            const char *end = strchr(s, '/');
            size_t len = end ? (size_t)(end - s) : strlen(s);
            if (!close || len == 0 || len >= sizeof(c->pvalues[0]) || n >= GH_API_MAX_PARAMS)
                return 0;
            memcpy(c->pvalues[n], s, len);
            c->pvalues[n][len] = '\0';
            c->pnames[n] = p + 1; /* up to '}' */
            n++;
            p = close + 1;
            s += len;
            continue;
        }
        if (*p != *s)
            return 0;
        p++;
        s++;
    }
    if (*p || (*s && strcmp(s, "/") != 0))
        return 0;
    c->n_params = n;
    return 1;
}

const char *gh_api_param(const struct gh_api_call *c, const char *name)
{
    size_t len = strlen(name);
    for (int i = 0; i < c->n_params; i++)
        if (strncmp(c->pnames[i], name, len) == 0 && c->pnames[i][len] == '}')
            return c->pvalues[i];
    return NULL;
}

/* ---- answers */

void gh_api_reply(struct gh_api_call *c, int status, json_object *body)
{
    gh_http_resp_set(c->resp, status, "application/json");
    if (body != NULL) {
        if (gh_json_to_buf(body, &c->resp->body) != GH_OK) {
            GH_ERROR(&c->ctx->log, "api: answer too large for %s %s", c->req->method, c->req->path);
            gh_http_error(c->resp, 500, "internal", "the answer could not be built");
        }
        json_object_put(body);
    }
    if (status == 204 || status == 302)
        gh_buf_reset(&c->resp->body);
}

static json_object *error_obj(const char *code, const char *message)
{
    json_object *root = json_object_new_object();
    json_object *e = json_object_new_object();
    json_object_object_add(e, "code", json_object_new_string(code));
    json_object_object_add(e, "message", json_object_new_string(message));
    json_object_object_add(root, "error", e);
    return root;
}

void gh_api_error(struct gh_api_call *c, int status, const char *code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    (void)vsnprintf(msg, sizeof(msg), fmt, ap); /* truncation keeps a readable prefix */
    va_end(ap);
    gh_api_reply(c, status, error_obj(code, msg));
}

void gh_api_field_error(struct gh_api_call *c, const char *path, const char *message)
{
    json_object *root = error_obj("invalid_input", message);
    json_object *e = json_object_object_get(root, "error");
    json_object *fields = json_object_new_array();
    json_object *f = json_object_new_object();
    json_object_object_add(f, "path", json_object_new_string(path));
    json_object_object_add(f, "message", json_object_new_string(message));
    json_object_array_add(fields, f);
    json_object_object_add(e, "fields", fields);
    gh_api_reply(c, 400, root);
}

void gh_api_fail(struct gh_api_call *c, int err, const char *what)
{
    switch (err) {
    case GH_EPG:
        GH_ERROR(&c->ctx->log, "api: %s: PostgreSQL failed", what);
        gh_api_error(c, 500, "database_unavailable",
                     "The database is unavailable right now; nothing was changed. Try again in a minute.");
        break;
    case GH_EREDIS:
        GH_ERROR(&c->ctx->log, "api: %s: Redis failed", what);
        gh_api_error(c, 500, "internal", "A Guildhall service is unavailable; try again in a minute.");
        break;
    case GH_ERATELIMIT:
        GH_WARN(&c->ctx->log, "api: %s: rate limited by Discord", what);
        gh_http_resp_header(c->resp, "Retry-After", "5");
        gh_api_error(c, 429, "rate_limited",
                     "Discord is rate limiting Guildhall; try again in a few seconds.");
        break;
    case GH_ENOTFOUND:
        gh_api_error(c, 404, "not_found", "%s: not found", what);
        break;
    case GH_EFORBIDDEN:
        GH_WARN(&c->ctx->log, "api: %s: Discord refused (missing permission)", what);
        gh_api_error(c, 403, "forbidden",
                     "Discord refused: Guildhall lacks a permission for %s in this server.", what);
        break;
    case GH_EHTTP:
    case GH_ETIMEOUT:
    case GH_EUNAVAILABLE:
    case GH_EUNAUTHORIZED:
    case GH_EDISCORD:
        GH_ERROR(&c->ctx->log, "api: %s: Discord call failed: %s", what, gh_strerror(err));
        gh_api_error(c, 500, "discord_unavailable", "Discord did not answer for %s; try again in a minute.",
                     what);
        break;
    case GH_EPREMIUM:
        gh_api_error(c, 403, "premium_required", "%s needs a premium tier.", what);
        break;
    default:
        GH_ERROR(&c->ctx->log, "api: %s: %s", what, gh_strerror(err));
        gh_api_error(c, 500, "internal", "Something went wrong (%s); the error was logged with id %s.", what,
                     c->ctx->log.corr);
        break;
    }
}

void gh_api_security(struct gh_api_call *c, const char *kind, uint64_t guild_id, const char *detail_fmt, ...)
{
    char detail[512] = "";
    char gid[24];
    char uid[24];
    const char *params[8];
    json_object *d = json_object_new_object();

    if (detail_fmt != NULL) {
        va_list ap;
        va_start(ap, detail_fmt);
        (void)vsnprintf(detail, sizeof(detail), detail_fmt, ap);
        va_end(ap);
    }
    GH_WARN(&c->ctx->log, "security: %s: %s %s from %s user %llu guild %llu: %s", kind, c->req->method,
            c->req->path, c->ip, (unsigned long long)c->user_id, (unsigned long long)guild_id, detail);
    json_object_object_add(d, "reason", json_object_new_string(detail));
    (void)snprintf(gid, sizeof(gid), "%llu", (unsigned long long)guild_id);
    (void)snprintf(uid, sizeof(uid), "%llu", (unsigned long long)c->user_id);
    params[0] = guild_id ? gid : NULL;
    params[1] = c->user_id ? uid : NULL;
    params[2] = c->ip;
    params[3] = kind;
    params[4] = c->req->method;
    params[5] = c->req->path;
    params[6] = json_object_to_json_string_ext(d, JSON_C_TO_STRING_PLAIN);
    params[7] = c->ctx->log.corr;
    if (c->ctx->pg == NULL ||
        gh_pg_command(c->ctx->pg,
                      "INSERT INTO security_events (guild_id, user_id, ip, kind, method, path, detail, corr) "
                      "VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                      8, params) != GH_OK)
        GH_ERROR(&c->ctx->log, "security: could not record %s in security_events", kind);
    json_object_put(d);
}

int gh_api_audit(struct gh_api_call *c, uint64_t guild_id, const char *action, const char *target,
                 json_object *before, json_object *after)
{
    char gid[24];
    char uid[24];
    const char *params[7];
    (void)snprintf(gid, sizeof(gid), "%llu", (unsigned long long)guild_id);
    (void)snprintf(uid, sizeof(uid), "%llu", (unsigned long long)c->user_id);
    params[0] = guild_id ? gid : NULL;
    params[1] = c->user_id ? uid : NULL;
    params[2] = action;
    params[3] = target;
    params[4] = before ? json_object_to_json_string_ext(before, JSON_C_TO_STRING_PLAIN) : NULL;
    params[5] = after ? json_object_to_json_string_ext(after, JSON_C_TO_STRING_PLAIN) : NULL;
    params[6] = c->ctx->log.corr;
    return gh_pg_command(c->ctx->pg,
                         "INSERT INTO audit_log (guild_id, actor_id, action, target, before, after, corr) "
                         "VALUES ($1, $2, $3, $4, $5, $6, $7)",
                         7, params);
}

/* ---- the checks */

static int is_write(const char *method)
{
    return strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0 || strcmp(method, "PATCH") == 0 ||
           strcmp(method, "DELETE") == 0;
}

/* Parses the session cookie when there is one (no I/O); the verdict is
 * answered by refuse_session after the rate limits counted the request. */
static int parse_session(struct gh_api_call *c)
{
    int rc = gh_session_parse(c);
    if (rc != GH_OK)
        c->user_id = 0;
    return rc;
}

/* A route that needs a session, without a valid one: 401 (a bad cookie on
 * a public route is ignored). */
static int refuse_session(struct gh_api_call *c, int rc)
{
    switch (rc) {
    case GH_ENOTFOUND:
        gh_api_error(c, 401, "unauthorized", "Log in to use this.");
        break;
    case GH_EEXPIRED:
        gh_api_error(c, 401, "session_expired", "Your session ended; log in again.");
        break;
    default:
        gh_api_security(c, "session.tampered", 0, "session cookie refused: %s", gh_strerror(rc));
        gh_api_error(c, 401, "unauthorized", "Your session is not valid; log in again.");
        break;
    }
    return GH_EUNAUTHORIZED;
}

static int check_live(struct gh_api_call *c)
{
    int rc = gh_session_live(c);
    if (rc == GH_OK)
        return GH_OK;
    if (rc == GH_EUNAUTHORIZED) {
        gh_api_security(c, "session.revoked", 0, "a revoked session was used (jti %s)", c->jti);
        gh_api_error(c, 401, "session_revoked", "You logged out of this session; log in again.");
    } else {
        gh_api_fail(c, rc, "checking your session");
    }
    return GH_EUNAUTHORIZED;
}

static int check_csrf(struct gh_api_call *c)
{
    const char *tok = gh_http_header(c->req, "x-csrf-token");
    size_t n = strlen(c->csrf);
    if (tok != NULL && n > 0 && strlen(tok) == n) {
        unsigned char diff = 0;
        for (size_t i = 0; i < n; i++)
            diff |= (unsigned char)(tok[i] ^ c->csrf[i]);
        if (diff == 0)
            return GH_OK;
    }
    gh_api_security(c, "csrf.failed", 0, tok ? "wrong X-CSRF-Token" : "missing X-CSRF-Token");
    gh_api_error(c, 403, "csrf_failed",
                 "This request lacked the security token of your session; reload the page and try again.");
    return GH_EFORBIDDEN;
}

static int check_guild(struct gh_api_call *c, unsigned needs)
{
    const char *id = gh_api_param(c, "id");
    uint64_t gid = 0;
    if (id == NULL || gh_cstr_to_u64(id, &gid) != GH_OK || gid == 0) {
        gh_api_field_error(c, "/id", "must be a Discord server id");
        return GH_EINVAL;
    }
    c->guild_id = gid;
    c->ctx->log.guild_id = gid;
    int rc = gh_access_check(c);
    if (rc == GH_EFORBIDDEN) {
        gh_api_security(c, "guild.forbidden", gid, "no access to this guild");
        gh_api_error(c, 403, "forbidden",
                     "You don't have access to this server: you need Manage Server there, or an "
                     "administrator must grant you access, and Guildhall must be in it.");
        return rc;
    }
    if (rc != GH_OK) {
        gh_api_fail(c, rc, "checking your access to this server");
        return rc;
    }
    if ((needs & GH_API_GUILD_ADMIN) && c->access < GH_ACCESS_ADMIN) {
        gh_api_security(c, "guild.admin_required", gid, "granted user tried an administrator route");
        gh_api_error(c, 403, "forbidden",
                     "Only the server's owner and members with Manage Server can do this.");
        return GH_EFORBIDDEN;
    }
    return GH_OK;
}

static int check_premium(struct gh_api_call *c, int rank)
{
    char text[512];
    int rc = gh_premium_require(c->ctx, c->guild_id, c->user_id, rank, c->route->summary);
    if (rc == GH_OK)
        return GH_OK;
    if (rc != GH_EPREMIUM) {
        gh_api_fail(c, rc, "checking premium");
        return rc;
    }
    (void)gh_premium_upgrade_text(c->ctx->cfg, rank, c->route->summary, text, sizeof(text));
    json_object *root = error_obj("premium_required", text);
    json_object_object_add(json_object_object_get(root, "error"), "upgrade_url",
                           json_object_new_string(c->ctx->cfg->premium_url));
    gh_api_reply(c, 403, root);
    return rc;
}

static int parse_body(struct gh_api_call *c)
{
    if (c->req->body_too_large) {
        gh_api_error(c, 413, "body_too_large", "The request body is too large.");
        return GH_ETOOBIG;
    }
    if (c->req->body_len == 0)
        return GH_OK;
    json_object *doc = NULL;
    if (gh_json_parse(c->req->body, c->req->body_len, MAX_JSON_DEPTH, &doc) != GH_OK ||
        !json_object_is_type(doc, json_type_object)) {
        json_object_put(doc);
        gh_api_error(c, 400, "invalid_json", "The request body must be a JSON object.");
        return GH_EJSON;
    }
    c->body = doc;
    return GH_OK;
}

static void run(struct gh_api_call *c)
{
    const struct gh_api_route *r = c->route;
    unsigned needs = r->needs;

    if (needs & (GH_API_GUILD_ADMIN | GH_API_DEVELOPER))
        needs |= GH_API_SESSION;
    if (needs & GH_API_GUILD_ADMIN)
        needs |= GH_API_GUILD;
    if (needs & GH_API_GUILD)
        needs |= GH_API_SESSION;

    int srv = parse_session(c);
    c->developer = c->user_id != 0 && gh_config_is_developer(c->ctx->cfg, c->user_id);
    c->ctx->log.user_id = c->user_id;
    if (gh_limits_check(c) != GH_OK)
        return;
    if ((needs & GH_API_SESSION) && srv != GH_OK) {
        refuse_session(c, srv);
        return;
    }
    if ((needs & GH_API_SESSION) && check_live(c) != GH_OK)
        return;
    if ((needs & GH_API_SESSION) && is_write(c->req->method) && !(needs & GH_API_NO_CSRF) &&
        check_csrf(c) != GH_OK)
        return;
    if ((needs & GH_API_DEVELOPER) && !c->developer) {
        gh_api_security(c, "developer.forbidden", 0, "developer route without developer access");
        gh_api_error(c, 403, "forbidden", "This page is for Guildhall's operators only.");
        return;
    }
    if ((needs & GH_API_GUILD) && check_guild(c, needs) != GH_OK)
        return;
    if (r->premium_rank > 0 && check_premium(c, r->premium_rank) != GH_OK)
        return;
    if (is_write(c->req->method) && parse_body(c) != GH_OK)
        return;
    r->fn(c);
}

void gh_api_dispatch(struct gh_ctx *ctx, const struct gh_http_req *req, struct gh_http_resp *resp)
{
    struct gh_api_call c;
    const char *path = req->path;
    const char *method = req->method;
    int path_matched = 0;
    char allow[64] = "";

    memset(&c, 0, sizeof(c));
    c.ctx = ctx;
    c.req = req;
    c.resp = resp;
    c.ip = req->remote_addr && *req->remote_addr ? req->remote_addr : "unknown";
    c.pre_session = -1;
    c.pre_access = -1;
    gh_http_resp_header(resp, "X-Request-Id", ctx->log.corr);
    gh_http_resp_header(resp, "Cache-Control", "no-store");

    if (strncmp(path, API_PREFIX, sizeof(API_PREFIX) - 1) != 0) {
        gh_api_error(&c, 404, "not_found", "No such endpoint.");
        return;
    }
    path += sizeof(API_PREFIX) - 1;
    if (strcmp(method, "HEAD") == 0)
        method = "GET";

    size_t n = gh_api_route_count();
    for (size_t i = 0; i < n; i++) {
        const struct gh_api_route *r = gh_api_route_at(i);
        if (!match(r->pattern, path, &c))
            continue;
        path_matched = 1;
        if (strcmp(r->method, method) != 0) {
            size_t used = strlen(allow);
            if (used + strlen(r->method) + 3 < sizeof(allow))
                (void)snprintf(allow + used, sizeof(allow) - used, "%s%s", used ? ", " : "", r->method);
            continue;
        }
        c.route = r;
        run(&c);
        json_object_put(c.body);
        json_object_put(c.user_guilds);
        return;
    }
    if (path_matched) {
        gh_http_resp_header(resp, "Allow", allow);
        gh_api_error(&c, 405, "method_not_allowed", "Use %s for this endpoint.", allow);
        return;
    }
    gh_api_error(&c, 404, "not_found", "No such endpoint.");
}

/* ---- the table as JSON, for guildhall-api --routes and the tests */

int gh_api_routes_json(struct gh_buf *out)
{
    static const char *const rl_names[] = {"read", "write", "auth", "none"};
    json_object *arr = json_object_new_array();
    size_t n = gh_api_route_count();
    int rc;

    for (size_t i = 0; i < n; i++) {
        const struct gh_api_route *r = gh_api_route_at(i);
        json_object *o = json_object_new_object();
        json_object *needs = json_object_new_array();
        char path[256];
        (void)snprintf(path, sizeof(path), "%s%s", API_PREFIX, r->pattern);
        if (r->needs & GH_API_SESSION)
            json_object_array_add(needs, json_object_new_string("session"));
        if (r->needs & GH_API_GUILD)
            json_object_array_add(needs, json_object_new_string("guild"));
        if (r->needs & GH_API_GUILD_ADMIN)
            json_object_array_add(needs, json_object_new_string("guild_admin"));
        if (r->needs & GH_API_DEVELOPER)
            json_object_array_add(needs, json_object_new_string("developer"));
        json_object_object_add(o, "method", json_object_new_string(r->method));
        json_object_object_add(o, "path", json_object_new_string(path));
        json_object_object_add(o, "needs", needs);
        json_object_object_add(o, "premium_rank", json_object_new_int(r->premium_rank));
        json_object_object_add(o, "rate_limit",
                               json_object_new_string(rl_names[r->rl < GH_RL_N ? r->rl : 0]));
        json_object_object_add(o, "summary", json_object_new_string(r->summary ? r->summary : ""));
        json_object_array_add(arr, o);
    }
    rc = gh_buf_puts(
        out, json_object_to_json_string_ext(arr, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(arr);
    return rc;
}

/* ---- helpers */

json_object *gh_api_str_or_null(const char *s)
{
    return s ? json_object_new_string(s) : NULL;
}

json_object *gh_api_snowflake(uint64_t id)
{
    char b[24];
    (void)snprintf(b, sizeof(b), "%llu", (unsigned long long)id);
    return json_object_new_string(b);
}

json_object *gh_api_iso_or_null(int64_t ms)
{
    char b[40];
    if (ms <= 0)
        return NULL;
    gh_iso8601(ms, b, sizeof(b));
    return json_object_new_string(b);
}

static int hexval(int ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

int gh_api_query(const struct gh_http_req *req, const char *name, char *out, size_t n)
{
    const char *q = req->query;
    size_t nl = strlen(name);
    while (q && *q) {
        const char *amp = strchr(q, '&');
        size_t len = amp ? (size_t)(amp - q) : strlen(q);
        if (len > nl && strncmp(q, name, nl) == 0 && q[nl] == '=') {
            size_t o = 0;
            for (size_t i = nl + 1; i < len && o + 1 < n; i++) {
                int hi;
                int lo;
                if (q[i] == '+') {
                    out[o++] = ' ';
                } else if (q[i] == '%' && i + 2 < len && (hi = hexval(q[i + 1])) >= 0 &&
                           (lo = hexval(q[i + 2])) >= 0) {
                    out[o++] = (char)(hi * 16 + lo);
                    i += 2;
                } else {
                    out[o++] = q[i];
                }
            }
            out[o] = '\0';
            return 1;
        }
        if (len == nl && strncmp(q, name, nl) == 0) {
            out[0] = '\0';
            return 1;
        }
        q = amp ? amp + 1 : NULL;
    }
    if (n > 0)
        out[0] = '\0';
    return 0;
}

int gh_api_urlencode(const char *s, char *out, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        int plain = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                    ch == '-' || ch == '_' || ch == '.' || ch == '~';
        if (o + (plain ? 1 : 3) >= n)
            return GH_ETOOBIG;
        if (plain) {
            out[o++] = (char)ch;
        } else {
            out[o++] = '%';
            out[o++] = hex[ch >> 4];
            out[o++] = hex[ch & 15];
        }
    }
    out[o] = '\0';
    return GH_OK;
}
