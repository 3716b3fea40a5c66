/* session.c - dashboard sessions and cookies.
 *
 * A session is a JWT (HS256, SESSION_SECRET) in the HttpOnly cookie
 * gh_session: {sub, name, jti, csrf, iat, exp}, 24 h. It is live while its
 * dashboard_sessions row is not revoked; Redis keeps a marker
 * bot:{global}:dash:session:<jti> for the session's lifetime so the check
 * costs no PostgreSQL query. Logout revokes the row and deletes the marker.
 * The CSRF token travels in the JWT (server side) and in the readable cookie
 * gh_csrf / GET /auth/me (client side); state-changing requests echo it in
 * X-CSRF-Token. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <hiredis/hiredis.h>
#include <libpq-fe.h>

#include "api/internal.h"
#include "core/config.h"
#include "core/crypto.h"
#include "core/ctx.h"
#include "core/err.h"
#include "core/json.h"
#include "core/log.h"
#include "core/str.h"
#include "core/timeutil.h"
#include "store/pg.h"
#include "store/redis.h"
#include "web/http.h"

#define JWT_MAX 2048

/* ---- cookies */

int gh_api_cookie(const struct gh_http_req *req, const char *name, char *out, size_t n)
{
    const char *h = gh_http_header(req, "cookie");
    size_t nl = strlen(name);
    if (n > 0)
        out[0] = '\0';
    while (h && *h) {
        while (*h == ' ' || *h == ';')
            h++;
        const char *end = strchr(h, ';');
        size_t len = end ? (size_t)(end - h) : strlen(h);
        if (len > nl && strncmp(h, name, nl) == 0 && h[nl] == '=') {
            size_t vl = len - nl - 1;
            if (vl >= n)
                return 0; /* too long to be ours */
            memcpy(out, h + nl + 1, vl);
            out[vl] = '\0';
            return 1;
        }
        h = end;
    }
    return 0;
}

int gh_api_secure_cookies(const struct gh_api_call *c)
{
    return strncasecmp(c->ctx->cfg->public_url, "https://", 8) == 0;
}

void gh_api_set_cookie(struct gh_api_call *c, const char *name, const char *value, int max_age, int http_only)
{
    char line[JWT_MAX + 256];
    if (snprintf(line, sizeof(line), "%s=%s; Path=/; Max-Age=%d; SameSite=Lax%s%s", name,
                 max_age > 0 ? value : "", max_age > 0 ? max_age : 0, http_only ? "; HttpOnly" : "",
                 gh_api_secure_cookies(c) ? "; Secure" : "") >= (int)sizeof(line) ||
        gh_http_resp_header(c->resp, "Set-Cookie", line) != GH_OK)
        GH_ERROR(&c->ctx->log, "api: cookie %s could not be set (too long)", name);
}

/* ---- sessions */

int gh_session_key(char *out, size_t n, const char *jti)
{
    return gh_key_global(out, n, "dash", "session:%s", jti);
}

int gh_session_parse(struct gh_api_call *c)
{
    char tok[JWT_MAX];
    json_object *claims = NULL;
    int64_t exp = 0;
    const char *s;
    int rc;

    if (!gh_api_cookie(c->req, GH_SESSION_COOKIE, tok, sizeof(tok)) || tok[0] == '\0')
        return GH_ENOTFOUND;
    rc = gh_jwt_verify(c->ctx->cfg->session_secret, tok, gh_now_ms() / 1000, &claims);
    if (rc != GH_OK)
        return rc;
    rc = GH_EINVAL;
    s = gh_json_get_str(claims, "sub");
    if (s == NULL || gh_cstr_to_u64(s, &c->user_id) != GH_OK || c->user_id == 0)
        goto out;
    s = gh_json_get_str(claims, "jti");
    if (s == NULL || gh_snprintf(c->jti, sizeof(c->jti), "%s", s) != GH_OK || strlen(s) < 16)
        goto out;
    s = gh_json_get_str(claims, "csrf");
    if (s == NULL || gh_snprintf(c->csrf, sizeof(c->csrf), "%s", s) != GH_OK || strlen(s) < 16)
        goto out;
    s = gh_json_get_str(claims, "name");
    (void)gh_snprintf(c->username, sizeof(c->username), "%s", s ? s : "");
    if (gh_json_get_int(claims, "exp", &exp) != GH_OK)
        goto out;
    c->expires_s = exp;
    rc = GH_OK;
out:
    if (rc != GH_OK) {
        c->user_id = 0;
        c->jti[0] = c->csrf[0] = '\0';
    }
    json_object_put(claims);
    return rc;
}

int gh_session_live(struct gh_api_call *c)
{
    char key[160];
    PGresult *res = NULL;
    const char *params[1] = {c->jti};
    int redis_ok = 0;
    int rc;

    if (c->pre_session == 1)
        return GH_OK; /* fetched with the rate limits */
    if (gh_session_key(key, sizeof(key), c->jti) != GH_OK)
        return GH_EUNAUTHORIZED;
    if (c->pre_session == 0) {
        redis_ok = 1; /* Redis answered: the marker is missing */
    } else if (c->ctx->redis) {
        redisReply *r = gh_redis_cmd(c->ctx->redis, "EXISTS %s", key);
        int live = r && r->type == REDIS_REPLY_INTEGER && r->integer == 1;
        redis_ok = r != NULL && r->type == REDIS_REPLY_INTEGER;
        freeReplyObject(r);
        if (live)
            return GH_OK;
    }
    res = gh_pg_exec_prepared(
        c->ctx->pg, "api_session_live",
        "SELECT extract(epoch FROM expires_at)::bigint - extract(epoch FROM now())::bigint "
        "FROM dashboard_sessions WHERE jti = $1 AND revoked_at IS NULL AND expires_at > now()",
        1, params);
    if (res == NULL)
        return GH_EPG;
    if (PQntuples(res) != 1) {
        rc = GH_EUNAUTHORIZED;
    } else {
        long long ttl = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
        rc = GH_OK;
        if (redis_ok && ttl > 0) { /* marker lost (Redis restarted without it): put it back */
            redisReply *s = gh_redis_cmd(c->ctx->redis, "SET %s 1 EX %lld", key, ttl);
            freeReplyObject(s);
        }
    }
    PQclear(res);
    return rc;
}

int gh_session_issue(struct gh_api_call *c, uint64_t user_id, const char *username)
{
    char jti[48];
    char csrf[48];
    char sub[24];
    char jwt[JWT_MAX];
    char key[160];
    const char *params[5];
    int64_t now = gh_now_ms() / 1000;
    int64_t exp = now + GH_SESSION_TTL_S;
    char exps[24];
    json_object *claims = NULL;
    int rc;

    if (gh_random_token(jti, sizeof(jti), 24) != GH_OK || gh_random_token(csrf, sizeof(csrf), 24) != GH_OK)
        return GH_EIO;
    (void)snprintf(sub, sizeof(sub), "%llu", (unsigned long long)user_id);
    (void)snprintf(exps, sizeof(exps), "%lld", (long long)exp);
    claims = json_object_new_object();
    json_object_object_add(claims, "sub", json_object_new_string(sub));
    json_object_object_add(claims, "name", json_object_new_string(username ? username : ""));
    json_object_object_add(claims, "jti", json_object_new_string(jti));
    json_object_object_add(claims, "csrf", json_object_new_string(csrf));
    json_object_object_add(claims, "iat", json_object_new_int64(now));
    json_object_object_add(claims, "exp", json_object_new_int64(exp));
    rc = gh_jwt_sign(c->ctx->cfg->session_secret, claims, jwt, sizeof(jwt));
    json_object_put(claims);
    if (rc != GH_OK)
        return rc;

    params[0] = jti;
    params[1] = sub;
    params[2] = c->ip;
    params[3] = gh_http_header(c->req, "user-agent");
    params[4] = exps;
    rc = gh_pg_command(c->ctx->pg,
                       "INSERT INTO dashboard_sessions (jti, user_id, ip, user_agent, expires_at) "
                       "VALUES ($1, $2, $3, left($4, 300), to_timestamp($5::bigint))",
                       5, params);
    if (rc != GH_OK)
        return rc;
    if (c->ctx->redis && gh_session_key(key, sizeof(key), jti) == GH_OK) {
        redisReply *r = gh_redis_cmd(c->ctx->redis, "SET %s %s EX %d", key, sub, GH_SESSION_TTL_S);
        if (r == NULL)
            GH_WARN(&c->ctx->log, "session: Redis down, session %.6s... checked in PostgreSQL", jti);
        freeReplyObject(r);
    }
    gh_api_set_cookie(c, GH_SESSION_COOKIE, jwt, GH_SESSION_TTL_S, 1);
    gh_api_set_cookie(c, GH_CSRF_COOKIE, csrf, GH_SESSION_TTL_S, 0);
    c->user_id = user_id;
    (void)gh_snprintf(c->jti, sizeof(c->jti), "%s", jti);
    (void)gh_snprintf(c->csrf, sizeof(c->csrf), "%s", csrf);
    c->expires_s = exp;
    GH_INFO(&c->ctx->log, "session: user %llu logged in from %s", (unsigned long long)user_id, c->ip);
    return GH_OK;
}

int gh_session_revoke(struct gh_api_call *c)
{
    char key[160];
    const char *params[1] = {c->jti};
    int rc = gh_pg_command(
        c->ctx->pg, "UPDATE dashboard_sessions SET revoked_at = now() WHERE jti = $1 AND revoked_at IS NULL",
        1, params);
    if (rc != GH_OK)
        return rc;
    if (c->ctx->redis && gh_session_key(key, sizeof(key), c->jti) == GH_OK) {
        redisReply *r = gh_redis_cmd(c->ctx->redis, "DEL %s", key);
        if (r == NULL) /* the marker may come back with Redis: its TTL ends it within 24 h */
            GH_ERROR(&c->ctx->log,
                     "session: Redis down at logout; the session marker of %.6s... stays until "
                     "its expiry or Redis's next restart",
                     c->jti);
        freeReplyObject(r);
    }
    gh_api_set_cookie(c, GH_SESSION_COOKIE, "", 0, 1);
    gh_api_set_cookie(c, GH_CSRF_COOKIE, "", 0, 0);
    GH_INFO(&c->ctx->log, "session: user %llu logged out", (unsigned long long)c->user_id);
    return GH_OK;
}
