/* commands.c - the utility feature's commands: /serverinfo, /userinfo.
 *
 * Both read what the interaction already carries (the partial guild, the
 * resolved users) and, for /serverinfo, the guilds row; nothing here calls
 * Discord. Every user-supplied string is escaped before it is echoed.
 *
 * Embed color: the core settings' "embed_color" is a premium setting. It is
 * used only when the premium gate passes here, where the embed is built (the
 * API checks it again when the setting is saved); otherwise, or when the
 * settings or the status cannot be read, the default color. A refused check
 * never fails the command. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include "core/ctx.h"
#include "core/err.h"
#include "core/log.h"
#include "core/str.h"
#include "core/timeutil.h"
#include "discord/interaction.h"
#include "discord/respond.h"
#include "features/premium/premium.h"
#include "features/registry.h"
#include "features/utility/utility.h"
#include "store/pg.h"
#include "store/settings.h"

#define EMBED_COLOR 0x5865F2
#define EMBED_COLOR_MAX 0xFFFFFF
#define FIELD_MAX 1024

/* The documented source is features/utility/schema.json; a unit test checks
 * that this text is identical to it. */
static const char utility_schema[] =
    "{\n"
    "  \"type\": \"object\",\n"
    "  \"title\": \"Utility\",\n"
    "  \"properties\": {\n"
    "    \"enabled\": {\n"
    "      \"type\": \"boolean\",\n"
    "      \"title\": \"Enabled\",\n"
    "      \"description\": \"Turns /serverinfo and /userinfo on or off in this server.\",\n"
    "      \"default\": true\n"
    "    }\n"
    "  },\n"
    "  \"additionalProperties\": false\n"
    "}\n";

/* Borrowed member of o, or NULL. */
static json_object *member(json_object *o, const char *key)
{
    json_object *v = NULL;

    if (!o || !json_object_object_get_ex(o, key, &v))
        return NULL;
    return v;
}

static const char *member_str(json_object *o, const char *key)
{
    json_object *v = member(o, key);

    return v && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

/* "<t:S:D> (<t:S:R>)": Discord renders it in the reader's time zone. */
static void discord_time(int64_t epoch_ms, char *out, size_t size)
{
    long long s = (long long)(epoch_ms / 1000);

    snprintf(out, size, "<t:%lld:D> (<t:%lld:R>)", s, s);
}

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

/* The guild's custom embed color when it set one and its tier allows it,
 * else the default. */
static int embed_color(struct gh_ctx *ctx, const struct gh_interaction *ix)
{
    json_object *doc = NULL, *v = NULL;
    int64_t color = -1;
    int version = 0;

    if (!ix->guild_id || gh_settings_get(ctx, ix->guild_id, "core", &doc, &version) != GH_OK)
        goto out;
    if (json_object_object_get_ex(doc, "embed_color", &v) && json_object_is_type(v, json_type_int))
        color = json_object_get_int64(v);
    /* Only a color the guild actually set is checked (and a refusal recorded). */
    if (color < 0 || color > EMBED_COLOR_MAX ||
        gh_premium_require(ctx, ix->guild_id, ix->user_id, GH_PREMIUM_PREMIUM, "custom embed color") != GH_OK)
        color = -1;
out:
    json_object_put(doc);
    return color < 0 ? EMBED_COLOR : (int)color;
}

/* Wraps fields (taken) into one embed and writes a public type 4 response. */
static int reply_fields(struct gh_buf *out, const char *title, int color, json_object *fields)
{
    json_object *embed = json_object_new_object();
    json_object *embeds = json_object_new_array();
    json_object *msg = NULL;
    int rc = GH_ENOMEM;

    if (!embed || !embeds) {
        json_object_put(fields);
        goto out;
    }
    json_object_object_add(embed, "title", json_object_new_string(title));
    json_object_object_add(embed, "color", json_object_new_int(color));
    json_object_object_add(embed, "fields", fields);
    json_object_array_add(embeds, embed);
    embed = NULL;
    msg = gh_msg_new(NULL, embeds, NULL, 0);
    if (!msg)
        goto out;
    rc = gh_resp_with_message(out, GH_CB_MESSAGE, msg);
out:
    json_object_put(msg);
    json_object_put(embeds);
    json_object_put(embed);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* /serverinfo */

/* Name and first-seen time from the guilds row. GH_OK, GH_ENOTFOUND (no
 * row), GH_EPG. */
static int guild_row(struct gh_ctx *ctx, uint64_t guild_id, char *name, size_t name_size, int64_t *seen_ms)
{
    char id[24];
    const char *params[1] = {id};
    PGresult *res = NULL;
    int rc = GH_EPG;

    if (!ctx->pg)
        goto out;
    snprintf(id, sizeof(id), "%" PRIu64, guild_id);
    res = gh_pg_exec_prepared(ctx->pg, "utility_guild_row",
                              "SELECT coalesce(name, ''), (extract(epoch FROM created_at) * 1000)::bigint "
                              "FROM guilds WHERE id = $1",
                              1, params);
    if (!res)
        goto out;
    rc = GH_ENOTFOUND;
    if (PQntuples(res) != 1)
        goto out;
    snprintf(name, name_size, "%s", PQgetvalue(res, 0, 0));
    if (gh_cstr_to_i64(PQgetvalue(res, 0, 1), seen_ms) != GH_OK)
        *seen_ms = 0;
    rc = GH_OK;
out:
    PQclear(res);
    return rc;
}

static void guild_features(json_object *guild, char *out, size_t size)
{
    static const char more[] = ", ...";
    json_object *arr = member(guild, "features");
    struct gh_buf b;
    char esc[128];
    int cut = 0;

    /* Room is kept for the marker: a full buffer could not take it. */
    gh_buf_init(&b, size - sizeof(more));
    if (arr && json_object_is_type(arr, json_type_array))
        for (size_t i = 0; i < json_object_array_length(arr); i++) {
            const char *f = json_object_get_string(json_object_array_get_idx(arr, i));
            gh_escape_markdown(f ? f : "", esc, sizeof(esc));
            if (gh_buf_printf(&b, "%s%s", i ? ", " : "", esc) != GH_OK) {
                cut = 1;
                break;
            }
        }
    snprintf(out, size, "%s%s", b.len ? gh_buf_cstr(&b) : "none", cut ? more : "");
    gh_buf_cleanup(&b);
}

static int cmd_serverinfo(struct gh_ctx *ctx, const struct gh_interaction *ix, struct gh_buf *out)
{
    json_object *guild = member(ix->root, "guild");
    json_object *fields = NULL;
    const char *locale;
    char name[256] = "", esc_name[256], title[300], id[24], created[80], seen[96], feats[FIELD_MAX], loc[64];
    int64_t seen_ms = 0;
    int rc;

    if (!ix->guild_id)
        return gh_resp_message(out, "`/serverinfo` only works in a server.", 1);
    rc = guild_row(ctx, ix->guild_id, name, sizeof(name), &seen_ms);
    if (rc == GH_OK && seen_ms > 0)
        discord_time(seen_ms, seen, sizeof(seen));
    else if (rc == GH_ENOTFOUND)
        snprintf(seen, sizeof(seen), "not recorded yet");
    else {
        snprintf(seen, sizeof(seen), "unknown (database unavailable)");
        GH_WARN(&ctx->log, "serverinfo: guild row unreadable: %s",
                ctx->pg ? gh_pg_errmsg(ctx->pg) : "no database");
    }
    gh_escape_markdown(name, esc_name, sizeof(esc_name));
    snprintf(title, sizeof(title), "%s", esc_name[0] ? esc_name : "Server information");
    snprintf(id, sizeof(id), "%" PRIu64, ix->guild_id);
    discord_time(gh_snowflake_ms(ix->guild_id), created, sizeof(created));
    locale = member_str(guild, "locale");
    if (!locale)
        locale = member_str(ix->root, "guild_locale");
    gh_escape_markdown(locale ? locale : "unknown", loc, sizeof(loc));
    guild_features(guild, feats, sizeof(feats));

    fields = json_object_new_array();
    if (!fields)
        return GH_ENOMEM;
    add_field(fields, "Server ID", id, 1);
    add_field(fields, "Created", created, 1);
    add_field(fields, "Locale", loc, 1);
    add_field(fields, "Guildhall first saw it", seen, 1);
    add_field(fields, "Features", feats, 0);
    return reply_fields(out, title, embed_color(ctx, ix), fields);
}

/* ------------------------------------------------------------------------ */
/* /userinfo */

/* The user object to describe (borrowed): the option's resolved user, or
 * the invoking user. */
static json_object *target_user(const struct gh_interaction *ix, uint64_t *id)
{
    const char *opt = gh_interaction_option_str(ix, "user");
    json_object *u;

    *id = 0;
    if (opt) {
        *id = gh_snowflake_parse(opt);
        return member(member(member(ix->data, "resolved"), "users"), opt);
    }
    u = member(member(ix->root, "member"), "user");
    if (!u)
        u = member(ix->root, "user");
    *id = ix->user_id;
    return u;
}

static int cmd_userinfo(struct gh_ctx *ctx, const struct gh_interaction *ix, struct gh_buf *out)
{
    uint64_t uid = 0;
    json_object *u = target_user(ix, &uid);
    json_object *fields = NULL, *bot = member(u, "bot");
    const char *username = member_str(u, "username");
    const char *global_name = member_str(u, "global_name");
    char id[24], created[80], esc_user[128], esc_global[128], title[160];

    if (!uid)
        return gh_resp_message(out, "I could not tell which user you mean.", 1);
    snprintf(id, sizeof(id), "%" PRIu64, uid);
    discord_time(gh_snowflake_ms(uid), created, sizeof(created));
    gh_escape_markdown(username ? username : "unknown", esc_user, sizeof(esc_user));
    gh_escape_markdown(global_name ? global_name : "none", esc_global, sizeof(esc_global));
    snprintf(title, sizeof(title), "%s", global_name ? esc_global : esc_user);

    fields = json_object_new_array();
    if (!fields)
        return GH_ENOMEM;
    add_field(fields, "User ID", id, 1);
    add_field(fields, "Username", esc_user, 1);
    add_field(fields, "Global name", esc_global, 1);
    add_field(fields, "Account created", created, 1);
    add_field(fields, "Bot", bot && json_object_get_boolean(bot) ? "yes" : "no", 1);
    return reply_fields(out, title, embed_color(ctx, ix), fields);
}

/* ------------------------------------------------------------------------ */
/* the feature */

static const struct gh_command utility_commands[] = {
    {
        .name = "serverinfo",
        .description = "Show facts about this server",
        .type = 1,
        .options_json = NULL,
        .default_member_permissions = NULL,
        .contexts = GH_CTX_GUILD,
        .handler = cmd_serverinfo,
        .help =
            "Server id, creation date, locale, Discord features, and when Guildhall first saw the server.",
    },
    {
        .name = "userinfo",
        .description = "Show facts about a user",
        .type = 1,
        .options_json = "[{\"type\":6,\"name\":\"user\",\"description\":\"The user (you, when left out)\","
                        "\"required\":false}]",
        .default_member_permissions = NULL,
        .contexts = GH_CTX_GUILD | GH_CTX_BOT_DM | GH_CTX_PRIVATE_CHANNEL,
        .handler = cmd_userinfo,
        .help = "User id, names, account creation date and whether the account is a bot.",
    },
};

const struct gh_feature gh_feature_utility = {
    .name = "utility",
    .title = "Utility",
    .description = "Server and user information",
    .default_enabled = 1,
    .can_disable = 1,
    .commands = utility_commands,
    .n_commands = GH_COUNT(utility_commands),
    .components = NULL,
    .n_components = 0,
    .jobs = NULL,
    .n_jobs = 0,
    .settings_schema = utility_schema,
    .premium_flags = 0,
};
