/* commands.c - /rank, /leaderboard, /xp reset, and the levels feature.
 *
 * Replies never ping (allowed_mentions parse [] through lib/discord/respond)
 * and show members as mentions, which Discord renders without echoing user
 * text. /rank and /leaderboard are public; refusals and /xp answers are
 * ephemeral. /xp reset needs Manage Server (or Administrator) or one of the
 * settings' staff roles; a refusal is logged as a security event line. */
#include "features/levels/levels.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "core/ctx.h"
#include "core/err.h"
#include "core/json.h"
#include "core/log.h"
#include "core/str.h"
#include "discord/interaction.h"
#include "discord/perms.h"
#include "discord/respond.h"
#include "gateway/intents.h"
#include "store/pg.h"

#include "features/levels/schema_json.h"

#define BOARD_PAGE 10

static int reply(struct gh_buf *out, int ephemeral, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int reply(struct gh_buf *out, int ephemeral, const char *fmt, ...)
{
    struct gh_buf b;
    va_list ap;
    int rc;

    gh_buf_init(&b, 8000);
    va_start(ap, fmt);
    rc = gh_buf_vprintf(&b, fmt, ap);
    va_end(ap);
    if (rc == GH_OK || rc == GH_ETOOBIG)
        rc = gh_resp_message(out, gh_buf_cstr(&b), ephemeral);
    gh_buf_cleanup(&b);
    return rc;
}

static int unavailable(struct gh_ctx *ctx, const char *what, int rc, struct gh_buf *out)
{
    GH_ERROR(&ctx->log, "levels: %s failed: %s", what, gh_strerror(rc));
    return reply(out, 1, "Levels are unavailable right now (%s). Try again in a minute. (ref %s)", what,
                 ctx->log.corr);
}

static int cmd_rank(struct gh_ctx *ctx, const struct gh_interaction *ix, struct gh_buf *out)
{
    const char *opt = gh_interaction_option_str(ix, "user");
    uint64_t u = opt ? gh_snowflake_parse(opt) : ix->user_id;
    int64_t xp = 0, base, next;
    long rank = 0;
    int level, rc;

    if (ix->guild_id == 0)
        return reply(out, 1, "Levels exist only in servers.");
    if (u == 0)
        return reply(out, 1, "Choose a member.");
    rc = gh_lv_user_total(ctx, ix->guild_id, u, &xp, &rank);
    if (rc != GH_OK)
        return unavailable(ctx, "reading XP", rc, out);
    level = gh_lv_level_for_xp(xp);
    base = gh_lv_xp_for_level(level);
    next = gh_lv_xp_for_level(level + 1);
    if (rank > 0)
        return reply(out, 0,
                     "<@%" PRIu64 "> is level **%d** with **%" PRId64
                     "** XP (rank #%ld). Next level: %" PRId64 "/%" PRId64 " XP (%" PRId64 " to go).",
                     u, level, xp, rank, xp - base, next - base, next - xp);
    return reply(out, 0, "<@%" PRIu64 "> has no XP yet. Level 1 takes %" PRId64 " XP.", u,
                 gh_lv_xp_for_level(1));
}

static int cmd_leaderboard(struct gh_ctx *ctx, const struct gh_interaction *ix, struct gh_buf *out)
{
    int64_t page = 1;
    json_object *arr = NULL;
    long total = 0;
    int rc;
    struct gh_buf b;

    if (ix->guild_id == 0)
        return reply(out, 1, "Levels exist only in servers.");
    if (gh_interaction_option_int(ix, "page", &page) != GH_OK)
        page = 1;
    if (page < 1 || page > 1000)
        return reply(out, 1, "The page must be between 1 and 1000.");
    rc = gh_lv_leaderboard(ctx, ix->guild_id, (int)page - 1, BOARD_PAGE, &arr, &total);
    if (rc != GH_OK)
        return unavailable(ctx, "reading the leaderboard", rc, out);
    gh_buf_init(&b, 8000);
    if (json_object_array_length(arr) == 0)
        gh_buf_printf(
            &b, total == 0 ? "Nobody has XP yet." : "Page %d is empty: the leaderboard has %ld members.",
            (int)page, total);
    else
        gh_buf_printf(&b, "**Leaderboard** (page %d of %ld)\n", (int)page,
                      (total + BOARD_PAGE - 1) / BOARD_PAGE);
    for (size_t i = 0; i < json_object_array_length(arr); i++) {
        json_object *e = json_object_array_get_idx(arr, i);
        int64_t xp = 0, lvl = 0, rk = 0;
        (void)gh_json_get_int(e, "xp", &xp);
        (void)gh_json_get_int(e, "level", &lvl);
        (void)gh_json_get_int(e, "rank", &rk);
        gh_buf_printf(&b, "%" PRId64 ". <@%s> level %" PRId64 ", %" PRId64 " XP\n", rk,
                      gh_json_get_str(e, "user_id"), lvl, xp);
    }
    rc = gh_resp_message(out, gh_buf_cstr(&b), 0);
    gh_buf_cleanup(&b);
    json_object_put(arr);
    return rc;
}

/* A refusal: a warn line "security: levels.refused" and a security_events
 * row (best effort: a PostgreSQL failure is logged). */
static void security_event(struct gh_ctx *ctx, const struct gh_interaction *ix, const char *sub,
                           uint64_t target, const char *why)
{
    char gid[24], uid[24], tid[24], cmd[32], path[40];
    json_object *d = json_object_new_object();

    GH_WARN(&ctx->log,
            "security: levels.refused: /xp %s by user %" PRIu64 " on %" PRIu64 " in guild %" PRIu64 ": %s",
            sub, ix->user_id, target, ix->guild_id, why);
    if (!d || !ctx->pg)
        goto out;
    snprintf(gid, sizeof(gid), "%" PRIu64, ix->guild_id);
    snprintf(uid, sizeof(uid), "%" PRIu64, ix->user_id);
    snprintf(tid, sizeof(tid), "%" PRIu64, target);
    json_object_object_add(d, "reason", json_object_new_string(why));
    snprintf(cmd, sizeof(cmd), "xp %s", sub);
    snprintf(path, sizeof(path), "/xp %s", sub);
    json_object_object_add(d, "command", json_object_new_string(cmd));
    json_object_object_add(d, "target_id", json_object_new_string(tid));
    if (gh_pg_command(ctx->pg,
                      "INSERT INTO security_events (guild_id, user_id, kind, method, path, detail, corr) "
                      "VALUES ($1, $2, 'levels.refused', 'COMMAND', '/xp reset', $3, $4)",
                      4,
                      (const char *const[]){gid, uid,
                                            json_object_to_json_string_ext(d, JSON_C_TO_STRING_PLAIN),
                                            ctx->log.corr}) != GH_OK)
        GH_ERROR(&ctx->log, "security: could not record levels.refused in security_events");
out:
    json_object_put(d);
}

static int is_staff(const struct gh_interaction *ix, const struct gh_lv_settings *s)
{
    if (gh_perms_has(ix->member_permissions, GH_PERM(MANAGE_GUILD)))
        return 1;
    for (size_t i = 0; ix->member_roles && i < json_object_array_length(ix->member_roles); i++) {
        uint64_t r =
            gh_snowflake_parse(json_object_get_string(json_object_array_get_idx(ix->member_roles, i)));
        for (int k = 0; k < s->n_staff_roles; k++)
            if (s->staff_roles[k] == r)
                return 1;
    }
    return 0;
}

static int cmd_xp(struct gh_ctx *ctx, const struct gh_interaction *ix, struct gh_buf *out)
{
    const char *sub = gh_interaction_subcommand(ix), *opt = gh_interaction_option_str(ix, "user");
    uint64_t u = opt ? gh_snowflake_parse(opt) : 0;
    struct gh_lv_settings s;
    int64_t before = 0, after = 0, amount = 0;
    int rc, give;

    if (ix->guild_id == 0)
        return reply(out, 1, "Levels exist only in servers.");
    if (sub == NULL || (strcmp(sub, "reset") != 0 && strcmp(sub, "give") != 0 && strcmp(sub, "remove") != 0))
        return reply(out, 1, "Unknown /xp subcommand.");
    if (u == 0)
        return reply(out, 1, "Choose the member.");
    rc = gh_lv_settings_load(ctx, ix->guild_id, &s);
    if (rc != GH_OK && !gh_perms_has(ix->member_permissions, GH_PERM(MANAGE_GUILD)))
        return unavailable(ctx, "reading the settings", rc, out);
    if (!is_staff(ix, &s)) {
        security_event(ctx, ix, sub, u, "needs Manage Server or an XP staff role");
        return reply(out, 1, "You need the Manage Server permission or an XP staff role to change XP.");
    }
    if (strcmp(sub, "reset") == 0) {
        rc = gh_lv_reset(ctx, ix->guild_id, u, ix->user_id, &before);
        if (rc == GH_EPG)
            return reply(out, 1,
                         "<@%" PRIu64
                         ">'s XP is reset, but the record could not be written yet; it will be saved "
                         "with the next flush. (ref %s)",
                         u, ctx->log.corr);
        if (rc != GH_OK)
            return unavailable(ctx, "resetting XP", rc, out);
        return reply(out, 1, "Reset <@%" PRIu64 ">'s XP (was %" PRId64 ", level %d) to 0.", u, before,
                     gh_lv_level_for_xp(before));
    }
    give = strcmp(sub, "give") == 0;
    if (gh_interaction_option_int(ix, "amount", &amount) != GH_OK || amount < 1 || amount > 1000000)
        return reply(out, 1, "The amount must be a whole number from 1 to 1000000.");
    rc = gh_lv_adjust(ctx, ix->guild_id, u, give ? amount : -amount, ix->user_id, &before, &after);
    if (rc != GH_OK && rc != GH_EPG)
        return unavailable(ctx, give ? "giving XP" : "removing XP", rc, out);
    if (give) /* a level reached this way is a level-up like any other (rewards, message) */
        (void)gh_lv_levelup_enqueue(ctx, ix->guild_id, u, ix->channel_id, before, after, NULL);
    return reply(out, 1, "<@%" PRIu64 "> now has %" PRId64 " XP (level %d; was %" PRId64 ", level %d).%s", u,
                 after, gh_lv_level_for_xp(after), before, gh_lv_level_for_xp(before),
                 rc == GH_EPG ? " The record will be saved with the next flush." : "");
}

static const struct gh_command levels_commands[] = {
    {.name = "rank",
     .description = "Show a member's level, XP and rank",
     .type = 1,
     .options_json = "[{\"type\":6,\"name\":\"user\",\"description\":\"The member (you by default)\"}]",
     .contexts = GH_CTX_GUILD,
     .handler = cmd_rank,
     .help = "Level, XP, progress to the next level and position on the leaderboard."},
    {.name = "leaderboard",
     .description = "The server's XP leaderboard",
     .type = 1,
     .options_json = "[{\"type\":4,\"name\":\"page\",\"description\":\"Page (10 per page)\",\"min_value\":1,"
                     "\"max_value\":1000}]",
     .contexts = GH_CTX_GUILD,
     .handler = cmd_leaderboard,
     .help = "Members by XP, 10 per page."},
    {.name = "xp",
     .description = "Manage members' XP",
     .type = 1,
     .options_json =
         "[{\"type\":1,\"name\":\"reset\",\"description\":\"Reset a member's XP to 0\",\"options\":"
         "[{\"type\":6,\"name\":\"user\",\"description\":\"The member\",\"required\":true}]},"
         "{\"type\":1,\"name\":\"give\",\"description\":\"Give a member XP\",\"options\":"
         "[{\"type\":6,\"name\":\"user\",\"description\":\"The member\",\"required\":true},"
         "{\"type\":4,\"name\":\"amount\",\"description\":\"XP to give\",\"required\":true,"
         "\"min_value\":1,\"max_value\":1000000}]},"
         "{\"type\":1,\"name\":\"remove\",\"description\":\"Take XP from a member\",\"options\":"
         "[{\"type\":6,\"name\":\"user\",\"description\":\"The member\",\"required\":true},"
         "{\"type\":4,\"name\":\"amount\",\"description\":\"XP to take\",\"required\":true,"
         "\"min_value\":1,\"max_value\":1000000}]}]",
     .default_member_permissions = "32",
     .contexts = GH_CTX_GUILD,
     .handler = cmd_xp,
     .help = "/xp reset user: back to 0 XP; /xp give|remove user amount (Manage Server or an XP staff role; "
             "recorded in the audit log)."},
};

static const struct gh_event_handler levels_events[] = {
    {.name = "MESSAGE_CREATE", .inline_fn = gh_lv_on_messages},
    {.name = "VOICE_STATE_UPDATE", .inline_fn = gh_lv_on_voice},
    {.name = "GUILD_CREATE", .inline_fn = gh_lv_on_guild_create},
};

const char *gh_lv_schema_text(void)
{
    return levels_schema;
}

const struct gh_feature gh_feature_levels = {
    .name = "levels",
    .title = "Levels",
    .description = "XP for activity, levels, role rewards and a leaderboard",
    .default_enabled = 0,
    .can_disable = 1,
    .commands = levels_commands,
    .n_commands = GH_COUNT(levels_commands),
    .jobs = gh_lv_jobs,
    .n_jobs = GH_LV_N_JOBS,
    .routes = gh_lv_routes,
    .n_routes = GH_LV_N_ROUTES,
    .settings_schema = levels_schema,
    .events = levels_events,
    .n_events = GH_COUNT(levels_events),
    .intents = GH_INTENT_GUILD_MESSAGES | GH_INTENT_GUILD_VOICE_STATES | GH_INTENT_GUILDS,
};
