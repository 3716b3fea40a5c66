/* webhooks.c - POST /webhooks/discord: Discord's signed webhook events.
 *
 * Signed like interactions (Ed25519 over timestamp + body with
 * DISCORD_PUBLIC_KEY); a bad signature is refused with 401 and recorded as a
 * security event. PING (type 0) answers 204. Events (type 1):
 * APPLICATION_AUTHORIZED for a guild install records the guild and grants
 * the installing user access; ENTITLEMENT_CREATE / UPDATE / DELETE feed
 * premium. Everything else is acknowledged and logged. Handlers are
 * idempotent (Discord retries until it gets a 2xx within 3 s), and a store
 * failure answers 500 so that Discord retries. */
#include <stdio.h>
#include <string.h>

#include "api/api.h"
#include "api/internal.h"
#include "core/config.h"
#include "core/ctx.h"
#include "core/err.h"
#include "core/json.h"
#include "core/log.h"
#include "core/str.h"
#include "core/timeutil.h"
#include "store/pg.h"
#include "discord/verify.h"
#include "features/premium/premium.h"
#include "web/http.h"

static int on_authorized(struct gh_ctx *ctx, json_object *data)
{
    int64_t itype = -1;
    json_object *guild = gh_json_get_obj(data, "guild");
    json_object *user = gh_json_get_obj(data, "user");
    uint64_t gid = guild ? gh_json_get_snowflake(guild, "id") : 0;
    uint64_t uid = user ? gh_json_get_snowflake(user, "id") : 0;

    (void)gh_json_get_int(data, "integration_type", &itype);
    if (itype != 0 || gid == 0) {
        GH_INFO(&ctx->log,
                "webhook: APPLICATION_AUTHORIZED for a user install (user %llu): nothing to record",
                (unsigned long long)uid);
        return GH_OK;
    }
    return gh_api_record_install(ctx, gid, gh_json_get_str(guild, "name"), uid);
}

/* Premium from a Discord entitlement. The guild row is created when Discord
 * bills a guild Guildhall has not seen yet; a malformed entitlement is
 * logged and acknowledged (retrying it cannot help). */
static int on_entitlement(struct gh_ctx *ctx, const char *etype, json_object *data)
{
    uint64_t gid = gh_json_get_snowflake(data, "guild_id");
    char g[24];
    const char *params[1] = {g};
    int rc;

    (void)snprintf(g, sizeof(g), "%llu", (unsigned long long)gid);
    if (gid != 0 && gh_pg_command(ctx->pg, "INSERT INTO guilds (id) VALUES ($1) ON CONFLICT (id) DO NOTHING",
                                  1, params) != GH_OK)
        return GH_EPG;
    rc = gh_premium_entitlement(ctx, etype, data);
    if (rc == GH_EINVAL || rc == GH_ENOTFOUND) {
        GH_WARN(&ctx->log, "webhook: %s not applied (%s): acknowledged without effect", etype,
                gh_strerror(rc));
        return GH_OK;
    }
    return rc;
}

void gh_api_webhook_discord(struct gh_ctx *ctx, const struct gh_http_req *req, struct gh_http_resp *resp)
{
    struct gh_api_call c;
    const char *sig = gh_http_header(req, "x-signature-ed25519");
    const char *ts = gh_http_header(req, "x-signature-timestamp");
    json_object *root = NULL;
    json_object *event;
    const char *etype;
    int64_t type = -1;
    int rc;

    memset(&c, 0, sizeof(c));
    c.ctx = ctx;
    c.req = req;
    c.resp = resp;
    c.ip = req->remote_addr && *req->remote_addr ? req->remote_addr : "unknown";
    if (strcmp(req->method, "POST") != 0) {
        gh_http_resp_header(resp, "Allow", "POST");
        gh_api_error(&c, 405, "method_not_allowed", "Use POST.");
        return;
    }
    if (req->body_too_large) {
        gh_api_error(&c, 413, "body_too_large", "The request body is too large.");
        return;
    }
    if (!ctx->cfg->has_public_key) {
        GH_ERROR(&ctx->log, "webhook: DISCORD_PUBLIC_KEY is not configured: cannot verify webhook events");
        gh_api_error(&c, 500, "internal", "The server has no public key to verify requests with.");
        return;
    }
    rc = gh_verify_interaction(ctx->cfg->public_key, sig ? sig : "", ts ? ts : "", req->body ? req->body : "",
                               req->body_len, gh_now_ms() / 1000, ctx->cfg->signature_max_skew_s);
    if (rc != GH_OK) {
        gh_api_security(&c, "webhook.bad_signature", 0, "Discord webhook event refused: %s", gh_strerror(rc));
        gh_api_error(&c, 401, "unauthorized", "invalid request signature");
        return;
    }
    if (gh_json_parse(req->body, req->body_len, 32, &root) != GH_OK ||
        !json_object_is_type(root, json_type_object) || gh_json_get_int(root, "type", &type) != GH_OK) {
        json_object_put(root);
        gh_api_error(&c, 400, "invalid_json", "The body is not a webhook event.");
        return;
    }
    uint64_t app = gh_json_get_snowflake(root, "application_id");
    if (app != 0 && ctx->cfg->application_id != 0 && app != ctx->cfg->application_id) {
        gh_api_security(&c, "webhook.wrong_application", 0, "event for application %llu",
                        (unsigned long long)app);
        json_object_put(root);
        gh_api_error(&c, 400, "invalid_input", "This event is for another application.");
        return;
    }
    if (type == 0) { /* PING */
        json_object_put(root);
        gh_api_reply(&c, 204, NULL);
        return;
    }
    event = gh_json_get_obj(root, "event");
    etype = event ? gh_json_get_str(event, "type") : NULL;
    json_object *data = event ? gh_json_get_obj(event, "data") : NULL;
    if (type != 1 || etype == NULL || data == NULL) {
        json_object_put(root);
        gh_api_error(&c, 400, "invalid_input", "The event has no type or data.");
        return;
    }
    rc = GH_OK;
    if (strcmp(etype, "APPLICATION_AUTHORIZED") == 0)
        rc = on_authorized(ctx, data);
    else if (strncmp(etype, "ENTITLEMENT_", 12) == 0)
        rc = on_entitlement(ctx, etype, data);
    else
        GH_INFO(&ctx->log, "webhook: event %s acknowledged, nothing to do", etype);
    if (rc != GH_OK) {
        GH_ERROR(&ctx->log, "webhook: %s failed (%s); Discord will retry", etype, gh_strerror(rc));
        json_object_put(root);
        gh_api_error(&c, 500, "internal", "The event could not be recorded; retry later.");
        return;
    }
    GH_INFO(&ctx->log, "webhook: %s handled", etype);
    json_object_put(root);
    gh_api_reply(&c, 204, NULL);
}
