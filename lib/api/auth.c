/* auth.c - Discord login (OAuth2 authorization code grant), the bot install
 * through the same callback, logout and /auth/me.
 *
 * login sets a random state in the HttpOnly cookie gh_oauth_state and
 * redirects to DISCORD_OAUTH_AUTHORIZE_URL; the callback checks the state,
 * exchanges the code at <DISCORD_API_BASE>/oauth2/token (client credentials
 * by HTTP Basic), reads /users/@me and /users/@me/guilds with the user's
 * token, stores the tokens sealed with ENCRYPTION_KEY (bound to the user id),
 * starts a session and redirects to the page the user came from. A callback
 * carrying guild_id (the install) also records the guild and its installer.
 * Every failure redirects to /#/login?error=<why> and is logged. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <openssl/evp.h>

#include "api/internal.h"
#include "core/config.h"
#include "core/crypto.h"
#include "core/ctx.h"
#include "core/err.h"
#include "core/json.h"
#include "core/log.h"
#include "core/str.h"
#include "discord/rest.h"
#include "store/pg.h"
#include "web/http.h"

#define CALLBACK_PATH "/api/v1/auth/discord/callback"
#define STATE_TTL_S 600
/* What the bot asks for at install: View Channels, Send Messages, Embed Links,
 * Read Message History, Manage Messages, Manage Roles, Manage Channels, Kick,
 * Ban, Moderate Members, Manage Nicknames, Add Reactions, Attach Files. */
#define BOT_PERMISSIONS "1099780129878"

/* A call with the user's credential. Discord limits the code exchange and the
 * guild list per user and per application; a login is rare and worth a short
 * wait, so a 429 asking for at most 5 s is waited out once (the bot's REST
 * client in this process never waits). */
int gh_api_user_call(struct gh_api_call *c, const struct gh_rest_req *req, struct gh_rest_resp *resp)
{
    int rc = c->ctx->rest ? gh_rest_do(c->ctx->rest, req, resp) : GH_EUNAVAILABLE;
    if (rc == GH_ERATELIMIT && resp->retry_after > 0 && resp->retry_after <= 5.0) {
        GH_INFO(&c->ctx->log, "auth: Discord asks to wait %.3f s for %s %s; waiting", resp->retry_after,
                req->method, req->path);
        (void)usleep((useconds_t)(resp->retry_after * 1e6) + 50000);
        gh_rest_resp_cleanup(resp);
        memset(resp, 0, sizeof(*resp));
        rc = gh_rest_do(c->ctx->rest, req, resp);
    }
    return rc;
}

static uint64_t client_id(const struct gh_api_call *c)
{
    return c->ctx->cfg->client_id ? c->ctx->cfg->client_id : c->ctx->cfg->application_id;
}

static void redirect(struct gh_api_call *c, const char *location)
{
    gh_http_resp_set(c->resp, 302, "text/plain; charset=utf-8");
    gh_http_resp_header(c->resp, "Location", location);
}

static void fail_redirect(struct gh_api_call *c, const char *why)
{
    char loc[128];
    (void)snprintf(loc, sizeof(loc), "/#/login?error=%s", why);
    gh_api_set_cookie(c, GH_STATE_COOKIE, "", 0, 1);
    redirect(c, loc);
}

/* A next page we may send the user back to: a path on this site. */
static int safe_next(const char *next)
{
    size_t n = strlen(next);
    if (n == 0 || n > 200 || next[0] != '/' || next[1] == '/' || next[1] == '\\')
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)next[i] < 0x21 || next[i] == '\\' || next[i] == ';' || next[i] == ',')
            return 0;
    return 1;
}

static void start(struct gh_api_call *c, const char *scope, uint64_t guild_id)
{
    char state[48];
    char next[256];
    char enc_redirect[600];
    char enc_scope[128];
    char redirect_uri[400];
    char url[1500];

    if (client_id(c) == 0) {
        GH_ERROR(&c->ctx->log,
                 "auth: DISCORD_CLIENT_ID and DISCORD_APPLICATION_ID are unset: login impossible");
        gh_api_error(c, 500, "internal",
                     "Discord login is not configured on this install (DISCORD_CLIENT_ID).");
        return;
    }
    if (gh_random_token(state, sizeof(state), 24) != GH_OK) {
        gh_api_fail(c, GH_EIO, "starting the login");
        return;
    }
    if (snprintf(redirect_uri, sizeof(redirect_uri), "%s%s", c->ctx->cfg->public_url, CALLBACK_PATH) >=
            (int)sizeof(redirect_uri) ||
        gh_api_urlencode(redirect_uri, enc_redirect, sizeof(enc_redirect)) != GH_OK ||
        gh_api_urlencode(scope, enc_scope, sizeof(enc_scope)) != GH_OK) {
        gh_api_fail(c, GH_ETOOBIG, "building the login URL");
        return;
    }
    int n = snprintf(
        url, sizeof(url), "%s?response_type=code&client_id=%llu&scope=%s&state=%s&redirect_uri=%s",
        c->ctx->cfg->oauth_authorize_url, (unsigned long long)client_id(c), enc_scope, state, enc_redirect);
    if (n > 0 && (size_t)n < sizeof(url) && guild_id != 0)
        n += snprintf(url + n, sizeof(url) - (size_t)n,
                      "&permissions=" BOT_PERMISSIONS
                      "&integration_type=0&guild_id=%llu&disable_guild_select=true",
                      (unsigned long long)guild_id);
    else if (n > 0 && (size_t)n < sizeof(url) && strstr(scope, "bot") != NULL)
        n +=
            snprintf(url + n, sizeof(url) - (size_t)n, "&permissions=" BOT_PERMISSIONS "&integration_type=0");
    else if (n > 0 && (size_t)n < sizeof(url))
        n += snprintf(url + n, sizeof(url) - (size_t)n, "&prompt=none");
    if (n < 0 || (size_t)n >= sizeof(url)) {
        gh_api_fail(c, GH_ETOOBIG, "building the login URL");
        return;
    }
    gh_api_set_cookie(c, GH_STATE_COOKIE, state, STATE_TTL_S, 1);
    if (gh_api_query(c->req, "next", next, sizeof(next)) && safe_next(next))
        gh_api_set_cookie(c, GH_NEXT_COOKIE, next, STATE_TTL_S, 1);
    else
        gh_api_set_cookie(c, GH_NEXT_COOKIE, "", 0, 1);
    redirect(c, url);
}

void gh_api_auth_login(struct gh_api_call *c)
{
    start(c, "identify guilds", 0);
}

void gh_api_auth_install(struct gh_api_call *c)
{
    char gid[32];
    uint64_t guild_id = 0;
    if (gh_api_query(c->req, "guild_id", gid, sizeof(gid)) && gid[0] &&
        (gh_cstr_to_u64(gid, &guild_id) != GH_OK || guild_id == 0)) {
        gh_api_field_error(c, "/guild_id", "must be a Discord server id");
        return;
    }
    start(c, "identify guilds bot applications.commands", guild_id);
}

/* POST /oauth2/token; *tok owned by the caller. */
static int exchange_code(struct gh_api_call *c, const char *code, json_object **tok)
{
    char redirect_uri[400];
    char enc_code[600];
    char enc_redirect[600];
    char form[1600];
    char creds[400];
    unsigned char b64[600];
    char auth[620];
    struct gh_rest_resp resp;
    int rc;

    memset(&resp, 0, sizeof(resp));
    *tok = NULL;
    (void)snprintf(redirect_uri, sizeof(redirect_uri), "%s%s", c->ctx->cfg->public_url, CALLBACK_PATH);
    if (gh_api_urlencode(code, enc_code, sizeof(enc_code)) != GH_OK ||
        gh_api_urlencode(redirect_uri, enc_redirect, sizeof(enc_redirect)) != GH_OK)
        return GH_EINVAL;
    int n = snprintf(form, sizeof(form), "grant_type=authorization_code&code=%s&redirect_uri=%s", enc_code,
                     enc_redirect);
    int m = snprintf(creds, sizeof(creds), "%llu:%s", (unsigned long long)client_id(c),
                     c->ctx->cfg->client_secret);
    if (n < 0 || (size_t)n >= sizeof(form) || m < 0 || (size_t)m >= sizeof(creds) ||
        (size_t)m * 4 / 3 + 4 >= sizeof(b64))
        return GH_ETOOBIG;
    EVP_EncodeBlock(b64, (const unsigned char *)creds, m);
    (void)snprintf(auth, sizeof(auth), "Basic %s", (const char *)b64);
    struct gh_rest_req req = {.method = "POST",
                              .path = "/oauth2/token",
                              .body = form,
                              .body_len = (size_t)n,
                              .content_type = "application/x-www-form-urlencoded",
                              .authorization = auth};
    rc = gh_api_user_call(c, &req, &resp);
    if (rc == GH_OK && (gh_json_parse(resp.body, resp.body_len, 8, tok) != GH_OK ||
                        gh_json_get_str(*tok, "access_token") == NULL)) {
        json_object_put(*tok);
        *tok = NULL;
        rc = GH_EDISCORD;
    }
    if (rc != GH_OK)
        GH_WARN(&c->ctx->log, "auth: code exchange failed: %s", resp.error[0] ? resp.error : gh_strerror(rc));
    gh_rest_resp_cleanup(&resp);
    return rc;
}

static int bearer_get(struct gh_api_call *c, const char *token, const char *path, json_object **out)
{
    char auth[600];
    struct gh_rest_resp resp;
    int rc;
    memset(&resp, 0, sizeof(resp));
    *out = NULL;
    if (snprintf(auth, sizeof(auth), "Bearer %s", token) >= (int)sizeof(auth))
        return GH_ETOOBIG;
    struct gh_rest_req req = {.method = "GET", .path = path, .authorization = auth};
    rc = gh_api_user_call(c, &req, &resp);
    if (rc == GH_OK && gh_json_parse(resp.body, resp.body_len, 8, out) != GH_OK)
        rc = GH_EDISCORD;
    if (rc != GH_OK)
        GH_WARN(&c->ctx->log, "auth: GET %s with the user's token failed: %s", path,
                resp.error[0] ? resp.error : gh_strerror(rc));
    gh_rest_resp_cleanup(&resp);
    return rc;
}

static int seal_token(struct gh_api_call *c, const char *aad, const char *token, char *out, size_t n)
{
    unsigned char key[32];
    if (token == NULL) {
        out[0] = '\0';
        return GH_OK;
    }
    if (gh_crypto_key_from_hex(c->ctx->cfg->encryption_key, key) != GH_OK)
        return GH_ECONFIG;
    return gh_seal(key, aad, token, strlen(token), out, n);
}

static int store_user(struct gh_api_call *c, json_object *me, json_object *tok, json_object *guilds)
{
    char access[1024];
    char refresh[1024];
    char expires[24];
    int64_t exp_in = 0;
    const char *uid = gh_json_get_str(me, "id");
    const char *params[8];
    int rc;

    if (seal_token(c, uid, gh_json_get_str(tok, "access_token"), access, sizeof(access)) != GH_OK ||
        seal_token(c, uid, gh_json_get_str(tok, "refresh_token"), refresh, sizeof(refresh)) != GH_OK) {
        GH_ERROR(&c->ctx->log, "auth: sealing the OAuth tokens failed (ENCRYPTION_KEY?)");
        return GH_EIO;
    }
    (void)gh_json_get_int(tok, "expires_in", &exp_in);
    (void)snprintf(expires, sizeof(expires), "%lld", (long long)exp_in);
    params[0] = uid;
    params[1] = gh_json_get_str(me, "username") ? gh_json_get_str(me, "username") : "unknown";
    params[2] = gh_json_get_str(me, "global_name");
    params[3] = gh_json_get_str(me, "avatar");
    params[4] = access[0] ? access : NULL;
    params[5] = refresh[0] ? refresh : NULL;
    params[6] = expires;
    params[7] = gh_json_get_str(tok, "scope");
    rc = gh_pg_command(
        c->ctx->pg,
        "INSERT INTO dashboard_users (id, username, global_name, avatar, access_token_enc, "
        "refresh_token_enc, token_expires_at, scopes, last_login_at) VALUES ($1, $2, $3, $4, $5, $6, "
        "now() + make_interval(secs => $7::bigint), $8, now()) ON CONFLICT (id) DO UPDATE SET "
        "username = EXCLUDED.username, global_name = EXCLUDED.global_name, avatar = EXCLUDED.avatar, "
        "access_token_enc = EXCLUDED.access_token_enc, refresh_token_enc = EXCLUDED.refresh_token_enc, "
        "token_expires_at = EXCLUDED.token_expires_at, scopes = EXCLUDED.scopes, last_login_at = now()",
        8, params);
    if (rc != GH_OK)
        return rc;
    uint64_t id = 0;
    (void)gh_cstr_to_u64(uid, &id);
    return gh_access_store_guilds(c, id, guilds);
}

/* The install part of a callback: the guild named by guild_id, if the user
 * manages it (Discord only redirects with guild_id after adding the bot). */
static void record_install(struct gh_api_call *c, uint64_t user_id, const char *gid_text, json_object *tok,
                           json_object *guilds)
{
    uint64_t gid = 0;
    const char *name = NULL;
    json_object *g = gh_json_get_obj(tok, "guild");
    if (gh_cstr_to_u64(gid_text, &gid) != GH_OK || gid == 0)
        return;
    size_t n = json_object_array_length(guilds);
    for (size_t i = 0; i < n; i++) {
        json_object *e = json_object_array_get_idx(guilds, i);
        const char *id = gh_json_get_str(e, "id");
        if (id && strcmp(id, gid_text) == 0 && gh_access_from_entry(e) >= GH_ACCESS_ADMIN)
            name = gh_json_get_str(e, "name");
    }
    if (g != NULL && gh_json_get_str(g, "id") && strcmp(gh_json_get_str(g, "id"), gid_text) == 0 &&
        name == NULL)
        name = gh_json_get_str(g, "name");
    if (name == NULL) {
        gh_api_security(c, "install.unverified", gid,
                        "install callback for a guild the user does not manage");
        return;
    }
    (void)gh_api_record_install(c->ctx, gid, name, user_id);
}

void gh_api_auth_callback(struct gh_api_call *c)
{
    char state[96];
    char cookie_state[96];
    char code[512];
    char err[64];
    char next[256];
    char gid[32];
    json_object *tok = NULL;
    json_object *me = NULL;
    json_object *guilds = NULL;
    uint64_t user_id = 0;
    int rc;

    if (gh_api_query(c->req, "error", err, sizeof(err))) {
        GH_INFO(&c->ctx->log, "auth: the user declined the Discord login (%s)", err);
        fail_redirect(c, "denied");
        return;
    }
    if (!gh_api_query(c->req, "state", state, sizeof(state)) ||
        !gh_api_cookie(c->req, GH_STATE_COOKIE, cookie_state, sizeof(cookie_state)) || strlen(state) < 16 ||
        strlen(state) != strlen(cookie_state) || !gh_ct_equal(state, cookie_state, strlen(state))) {
        gh_api_security(c, "oauth.bad_state", 0,
                        "login callback with a state that does not match the cookie");
        fail_redirect(c, "bad_state");
        return;
    }
    if (!gh_api_query(c->req, "code", code, sizeof(code)) || code[0] == '\0') {
        fail_redirect(c, "exchange_failed");
        return;
    }
    rc = exchange_code(c, code, &tok);
    if (rc != GH_OK) {
        fail_redirect(c, rc == GH_EHTTP || rc == GH_ETIMEOUT || rc == GH_EUNAVAILABLE || rc == GH_ERATELIMIT
                             ? "discord_unavailable"
                             : "exchange_failed");
        return;
    }
    rc = bearer_get(c, gh_json_get_str(tok, "access_token"), "/users/@me", &me);
    if (rc == GH_OK) {
        char auth[600];
        const char *at = gh_json_get_str(tok, "access_token");
        if (!at || snprintf(auth, sizeof(auth), "Bearer %s", at) >= (int)sizeof(auth))
            rc = GH_EDISCORD;
        else
            rc = gh_access_fetch_guilds(c, auth, &guilds);
    }
    if (rc == GH_OK &&
        (gh_json_get_str(me, "id") == NULL || gh_cstr_to_u64(gh_json_get_str(me, "id"), &user_id) != GH_OK ||
         !json_object_is_type(guilds, json_type_array)))
        rc = GH_EDISCORD;
    if (rc != GH_OK) {
        fail_redirect(c, "discord_unavailable");
        goto out;
    }
    rc = store_user(c, me, tok, guilds);
    if (rc == GH_OK && gh_api_query(c->req, "guild_id", gid, sizeof(gid)) && gid[0])
        record_install(c, user_id, gid, tok, guilds);
    if (rc == GH_OK)
        rc = gh_session_issue(c, user_id, gh_json_get_str(me, "username"));
    if (rc != GH_OK) {
        GH_ERROR(&c->ctx->log, "auth: login of user %llu failed: %s", (unsigned long long)user_id,
                 gh_strerror(rc));
        fail_redirect(c, "unavailable");
        goto out;
    }
    gh_api_set_cookie(c, GH_STATE_COOKIE, "", 0, 1);
    gh_api_set_cookie(c, GH_NEXT_COOKIE, "", 0, 1);
    if (gh_api_cookie(c->req, GH_NEXT_COOKIE, next, sizeof(next)) && safe_next(next))
        redirect(c, next);
    else
        redirect(c, "/#/guilds");
out:
    json_object_put(tok);
    json_object_put(me);
    json_object_put(guilds);
}

void gh_api_auth_logout(struct gh_api_call *c)
{
    int rc = gh_session_revoke(c);
    if (rc != GH_OK) {
        gh_api_fail(c, rc, "logging out");
        return;
    }
    gh_api_reply(c, 204, NULL);
}

void gh_api_auth_me(struct gh_api_call *c)
{
    char uid[24];
    const char *params[1] = {uid};
    PGresult *res;
    json_object *out;
    json_object *user;

    (void)snprintf(uid, sizeof(uid), "%llu", (unsigned long long)c->user_id);
    res = gh_pg_exec_prepared(c->ctx->pg, "api_me",
                              "SELECT username, global_name, avatar FROM dashboard_users WHERE id = $1", 1,
                              params);
    if (res == NULL) {
        gh_api_fail(c, GH_EPG, "reading your profile");
        return;
    }
    out = json_object_new_object();
    user = json_object_new_object();
    json_object_object_add(user, "id", json_object_new_string(uid));
    if (PQntuples(res) == 1) {
        json_object_object_add(user, "username", json_object_new_string(PQgetvalue(res, 0, 0)));
        json_object_object_add(user, "global_name",
                               PQgetisnull(res, 0, 1) ? NULL : json_object_new_string(PQgetvalue(res, 0, 1)));
        json_object_object_add(user, "avatar",
                               PQgetisnull(res, 0, 2) ? NULL : json_object_new_string(PQgetvalue(res, 0, 2)));
    } else {
        json_object_object_add(user, "username", json_object_new_string(c->username));
        json_object_object_add(user, "global_name", NULL);
        json_object_object_add(user, "avatar", NULL);
    }
    PQclear(res);
    json_object_object_add(out, "user", user);
    json_object_object_add(out, "csrf_token", json_object_new_string(c->csrf));
    json_object_object_add(out, "developer", json_object_new_boolean(c->developer));
    json_object_object_add(out, "expires_at", gh_api_iso_or_null(c->expires_s * 1000));
    gh_api_reply(c, 200, out);
}
