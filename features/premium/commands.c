/* commands.c - the premium feature's command, /premium, and the feature
 * struct.
 *
 * /premium answers, only to the person who asked, the server's tier in
 * force, its status, expiry and grace, the tier's limits, the trial and the
 * upgrade link. It echoes no user text and mentions no one. When the status
 * cannot be read it says so and asks to try again (not an error: nothing
 * failed on the person's side). */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include "core/config.h"
#include "core/ctx.h"
#include "core/err.h"
#include "core/log.h"
#include "core/str.h"
#include "discord/interaction.h"
#include "discord/respond.h"
#include "features/premium/premium.h"
#include "features/registry.h"

#define EMBED_COLOR 0xF1C40F /* gold */
#define FIELD_MAX 1024

static void add_field(json_object *fields, const char *name, const char *value, int is_inline)
{
    json_object *f = json_object_new_object();

    if (!f)
        return;
    json_object_object_add(f, "name", json_object_new_string(name));
    json_object_object_add(f, "value", json_object_new_string(value && value[0] ? value : "-"));
    json_object_object_add(f, "inline", json_object_new_boolean(is_inline));
    json_object_array_add(fields, f);
}

/* "<t:S:D> (<t:S:R>)": Discord renders it in the reader's time zone. */
static void discord_time(int64_t epoch_ms, char *out, size_t size)
{
    long long s = (long long)(epoch_ms / 1000);

    snprintf(out, size, "<t:%lld:D> (<t:%lld:R>)", s, s);
}

static void summary(const struct gh_premium *p, char *out, size_t n)
{
    const char *title = gh_premium_tier_title(p->tier);
    char when[80] = "";

    if (strcmp(p->status, "none") == 0) {
        snprintf(out, n, "This server is on the free tier.");
    } else if (strcmp(p->status, "active") == 0 || strcmp(p->status, "trial") == 0) {
        if (p->expires_at)
            discord_time(p->expires_at, when, sizeof(when));
        snprintf(out, n, "%s%s is active in this server%s%s.",
                 strcmp(p->status, "trial") == 0 ? "A trial of " : "", title, when[0] ? " until " : "", when);
    } else if (strcmp(p->status, "grace") == 0) {
        discord_time(p->grace_until, when, sizeof(when));
        snprintf(out, n,
                 "%s expired <t:%lld:R>. It keeps working until %s (grace period): renew before then to keep "
                 "it.",
                 title, (long long)(p->expires_at / 1000), when);
    } else {
        discord_time(p->expires_at, when, sizeof(when));
        snprintf(out, n,
                 "%s ended %s. Its features are off; nothing was deleted, and they come back when the server "
                 "upgrades again.",
                 title, when);
    }
}

static void limits_text(int rank, char *out, size_t n)
{
    static const struct {
        const char *what, *title;
    } rows[] = {{GH_PREMIUM_LIMIT_ROLE_PANELS, "Role panels"},
                {GH_PREMIUM_LIMIT_TRIGGERS, "Triggers"},
                {GH_PREMIUM_LIMIT_GIVEAWAYS, "Active giveaways"}};
    struct gh_buf b;

    gh_buf_init(&b, n - 1);
    for (size_t i = 0; i < GH_COUNT(rows); i++) {
        int l = gh_premium_limit(rank, rows[i].what);
        if (l < 0)
            gh_buf_printf(&b, "%s%s: unlimited", i ? "\n" : "", rows[i].title);
        else
            gh_buf_printf(&b, "%s%s: %d", i ? "\n" : "", rows[i].title, l);
    }
    snprintf(out, n, "%s", gh_buf_cstr(&b));
    gh_buf_cleanup(&b);
}

static int reply_embed(struct gh_buf *out, json_object *embed)
{
    json_object *embeds = json_object_new_array();
    json_object *msg = NULL;
    int rc = GH_ENOMEM;

    if (!embeds)
        goto out;
    json_object_array_add(embeds, json_object_get(embed));
    msg = gh_msg_new(NULL, embeds, NULL, GH_MSG_EPHEMERAL);
    if (!msg)
        goto out;
    rc = gh_resp_with_message(out, GH_CB_MESSAGE, msg);
out:
    json_object_put(msg);
    json_object_put(embeds);
    return rc;
}

static int cmd_premium(struct gh_ctx *ctx, const struct gh_interaction *ix, struct gh_buf *out)
{
    const char *url = ctx->cfg && ctx->cfg->premium_url[0] ? ctx->cfg->premium_url : NULL;
    struct gh_premium p;
    json_object *embed = NULL, *fields = NULL;
    char text[FIELD_MAX], title[96];
    int rc, trial_days = ctx->cfg ? ctx->cfg->premium_trial_days : 0;

    if (!ix->guild_id)
        return gh_resp_message(out, "`/premium` only works in a server.", 1);
    rc = gh_premium_get(ctx, ix->guild_id, &p);
    if (rc != GH_OK) {
        GH_WARN(&ctx->log, "premium: /premium could not read the status of guild %" PRIu64 ": %s",
                ix->guild_id, gh_strerror(rc));
        return gh_resp_message(out,
                               "I can't read this server's premium status right now (the database did not "
                               "answer). Nothing changed; try again in a minute.",
                               1);
    }
    rc = GH_ENOMEM;
    embed = json_object_new_object();
    fields = json_object_new_array();
    if (!embed || !fields)
        goto out;
    snprintf(title, sizeof(title), "Premium: %s", gh_premium_tier_title(p.effective));
    json_object_object_add(embed, "title", json_object_new_string(title));
    summary(&p, text, sizeof(text));
    json_object_object_add(embed, "description", json_object_new_string(text));
    json_object_object_add(embed, "color", json_object_new_int(EMBED_COLOR));

    add_field(fields, "Tier in force", gh_premium_tier_title(p.effective), 1);
    add_field(fields, "Status", p.status, 1);
    if (p.tier) {
        add_field(fields, "Source", p.source, 1);
        if (p.expires_at) {
            discord_time(p.expires_at, text, sizeof(text));
            add_field(fields, "Expires", text, 1);
        } else {
            add_field(fields, "Expires", "never", 1);
        }
        if (p.grace_until > p.expires_at) {
            discord_time(p.grace_until, text, sizeof(text));
            add_field(fields, "Grace until", text, 1);
        }
    }
    limits_text(p.effective, text, sizeof(text));
    add_field(fields, "Limits", text, 0);
    if (trial_days <= 0)
        snprintf(text, sizeof(text), "not offered");
    else if (p.trial_used)
        snprintf(text, sizeof(text), "already used");
    else if (p.effective >= GH_PREMIUM_PREMIUM)
        snprintf(text, sizeof(text), "not needed while a paid tier is active");
    else
        snprintf(text, sizeof(text),
                 "%d days of Guildhall Premium, once per server: start it from the dashboard", trial_days);
    add_field(fields, "Trial", text, 0);
    if (p.effective < GH_PREMIUM_MAX_RANK)
        add_field(fields, "Upgrade", url ? url : "Ask the operator of this Guildhall installation.", 0);
    json_object_object_add(embed, "fields", fields);
    fields = NULL;
    rc = reply_embed(out, embed);
out:
    json_object_put(fields);
    json_object_put(embed);
    return rc;
}

static const struct gh_command premium_commands[] = {
    {
        .name = "premium",
        .description = "Show this server's Guildhall Premium tier, expiry and limits",
        .type = 1,
        .options_json = NULL,
        .default_member_permissions = NULL,
        .contexts = GH_CTX_GUILD,
        .handler = cmd_premium,
        .help = "Only you see the answer: the tier in force, its status (active, trial, grace, expired), "
                "when it ends, the limits that come with it, and where to upgrade.",
    },
};

const struct gh_feature gh_feature_premium = {
    .name = "premium",
    .title = "Premium",
    .description = "Premium tiers: status, limits, codes, trial and Discord subscriptions",
    .default_enabled = 1,
    .can_disable = 0,
    .commands = premium_commands,
    .n_commands = GH_COUNT(premium_commands),
    .components = NULL,
    .n_components = 0,
    .jobs = NULL,
    .n_jobs = 0,
    .settings_schema = NULL,
    .premium_flags = 0,
};
