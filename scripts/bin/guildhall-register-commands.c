/* guildhall-register-commands - puts every command of the registry to
 * Discord with one bulk overwrite.
 *
 *   guildhall-register-commands [--guild <id>] [--dry-run]
 *
 * Global: PUT /applications/<app>/commands (can take up to an hour to show
 * everywhere). --guild: PUT /applications/<app>/guilds/<id>/commands (at
 * once; for development). --dry-run prints the JSON and calls nothing.
 * Needs DISCORD_TOKEN and DISCORD_APPLICATION_ID; DISCORD_API_BASE points it
 * at the fake Discord of the local stack. Exit status 0 on success, 1 when
 * Discord refused, 2 on a usage or configuration error. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "core/config.h"
#include "core/err.h"
#include "core/log.h"
#include "core/str.h"
#include "core/version.h"
#include "discord/interaction.h"
#include "discord/rest.h"
#include "features/registry.h"

#define BODY_MAX ((size_t)1024 * 1024)

static void usage(FILE *f)
{
    fprintf(f, "usage: guildhall-register-commands [--guild <id>] [--dry-run]\n"
               "  --guild <id>  register to one guild (shows at once) instead of globally\n"
               "  --dry-run     print the command JSON and exit\n");
}

static const char *env_or_empty(const char *name, void *arg)
{
    (void)arg;
    return getenv(name);
}

/* Number of commands in Discord's answer (an array), or -1. */
static int count_commands(const char *body)
{
    json_object *arr = body ? json_tokener_parse(body) : NULL;
    int n = -1;

    if (arr && json_object_is_type(arr, json_type_array))
        n = (int)json_object_array_length(arr);
    json_object_put(arr);
    return n;
}

int main(int argc, char **argv)
{
    static struct gh_config cfg;
    struct gh_log_sink sink;
    struct gh_logger log;
    struct gh_rest *rest = NULL;
    struct gh_rest_opts ro;
    struct gh_rest_req req;
    struct gh_rest_resp resp;
    struct gh_buf body;
    uint64_t guild_id = 0;
    int dry_run = 0, status = 2, rc, n;
    char err[512], path[160], ua[160];

    memset(&resp, 0, sizeof(resp));
    gh_buf_init(&body, BODY_MAX);
    gh_log_sink_init(&sink, "register-commands", GH_LOG_WARN, NULL, 0, 0);
    gh_logger_init(&log, &sink, "register-commands");
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--dry-run") == 0) {
            dry_run = 1;
        } else if (strcmp(argv[i], "--guild") == 0 && i + 1 < argc) {
            guild_id = gh_snowflake_parse(argv[++i]);
            if (!guild_id) {
                fprintf(stderr, "guildhall-register-commands: --guild: '%s' is not a guild id\n", argv[i]);
                goto out;
            }
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            status = 0;
            goto out;
        } else {
            fprintf(stderr, "guildhall-register-commands: unknown argument '%s'\n", argv[i]);
            usage(stderr);
            goto out;
        }
    }

    rc = gh_registry_commands_json(&body);
    if (rc != GH_OK) {
        fprintf(stderr, "guildhall-register-commands: cannot build the command JSON: %s\n", gh_strerror(rc));
        goto out;
    }
    if (dry_run) {
        printf("%s\n", gh_buf_cstr(&body));
        status = 0;
        goto out;
    }

    /* Only this tool's variables are required; a malformed optional one
     * still stops it with its name. */
    if (gh_config_load(&cfg, 0, env_or_empty, NULL, err, sizeof(err)) != GH_OK) {
        fprintf(stderr, "guildhall-register-commands: %s\n", err);
        goto out;
    }
    if (!cfg.discord_token[0]) {
        fprintf(stderr, "guildhall-register-commands: DISCORD_TOKEN: missing (the bot token registers the "
                        "commands)\n");
        goto out;
    }
    if (!cfg.application_id) {
        fprintf(stderr, "guildhall-register-commands: DISCORD_APPLICATION_ID: missing (the application the "
                        "commands belong to)\n");
        goto out;
    }
    gh_config_register_secrets(&cfg, &sink);

    if (guild_id)
        rc = gh_snprintf(path, sizeof(path), "/applications/%" PRIu64 "/guilds/%" PRIu64 "/commands",
                         cfg.application_id, guild_id);
    else
        rc = gh_snprintf(path, sizeof(path), "/applications/%" PRIu64 "/commands", cfg.application_id);
    if (rc != GH_OK ||
        gh_snprintf(ua, sizeof(ua), "DiscordBot (%s, %s)", GH_PROJECT_URL, GH_VERSION) != GH_OK)
        goto out;

    memset(&ro, 0, sizeof(ro));
    ro.api_base = cfg.api_base;
    ro.token = cfg.discord_token;
    ro.user_agent = ua;
    ro.log = &log;
    ro.timeout_ms = cfg.rest_timeout_ms;
    ro.max_retries = cfg.rest_max_retries;
    ro.max_wait_ms = 60000; /* a one-off tool can wait out a rate limit */
    rest = gh_rest_new(&ro);
    if (!rest) {
        fprintf(stderr, "guildhall-register-commands: cannot set up the REST client\n");
        goto out;
    }
    memset(&req, 0, sizeof(req));
    req.method = "PUT";
    req.path = path;
    req.body = gh_buf_cstr(&body);
    req.body_len = body.len;
    rc = gh_rest_do(rest, &req, &resp);
    if (rc != GH_OK) {
        if (resp.status == 0)
            fprintf(stderr, "guildhall-register-commands: PUT %s failed", path);
        else
            fprintf(stderr, "guildhall-register-commands: Discord refused PUT %s: HTTP %ld", path,
                    resp.status);
        if (resp.discord_code)
            fprintf(stderr, ", code %d", resp.discord_code);
        fprintf(stderr, " (%s)\n", resp.error[0] ? resp.error : gh_strerror(rc));
        if (resp.body && resp.body_len)
            fprintf(stderr, "%s\n", resp.body);
        status = 1;
        goto out;
    }
    n = count_commands(resp.body);
    if (n < 0) {
        fprintf(stderr, "guildhall-register-commands: Discord answered HTTP %ld without a command list\n",
                resp.status);
        status = 1;
        goto out;
    }
    printf("Discord accepted %d command%s %s (%s).\n", n, n == 1 ? "" : "s",
           guild_id ? "for the guild" : "globally", path);
    status = 0;
out:
    gh_rest_resp_cleanup(&resp);
    gh_rest_free(rest);
    gh_buf_cleanup(&body);
    gh_log_sink_cleanup(&sink);
    return status;
}
