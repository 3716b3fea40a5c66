/* config.c - the configuration table and its loader (redis config.c).
 *
 * One row per variable: env name, type, field, default, the services that
 * require it, bounds, a one-line meaning and an optional extra check. The
 * loader, the validation messages and `guildhall-config --markdown` all read
 * the same rows, so a new variable is one new line here plus its field in
 * struct gh_config. An empty value counts as unset (a ".env" line "X="). */
#include "core/config.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/log.h"
#include "core/str.h"

#define ALL (GH_SVC_INTERACTIONS | GH_SVC_API | GH_SVC_WORKER | GH_SVC_GATEWAY | GH_SVC_TOOL)
#define VALUE_MAX 2048
#define FIELD(f) offsetof(struct gh_config, f), sizeof(((struct gh_config *)0)->f)

/* ---- extra checks --------------------------------------------------------- */

static int has_prefix(const char *s, const char *p)
{
    return strncmp(s, p, strlen(p)) == 0;
}

static int is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static int hex_val(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return c - 'A' + 10;
}

static int is_hex64(const char *v)
{
    size_t i;

    for (i = 0; i < 64; i++)
        if (!is_hex(v[i]))
            return 0;
    return v[64] == '\0';
}

static int check_http(const char *v, char *err, size_t errlen)
{
    if (has_prefix(v, "http://") || has_prefix(v, "https://"))
        return 0;
    snprintf(err, errlen, "must be an http:// or https:// URL");
    return 1;
}

static int check_ws(const char *v, char *err, size_t errlen)
{
    if (has_prefix(v, "wss://") || has_prefix(v, "ws://"))
        return 0;
    snprintf(err, errlen, "must be a wss:// or ws:// URL");
    return 1;
}

static int check_pg(const char *v, char *err, size_t errlen)
{
    if (has_prefix(v, "postgresql://") || has_prefix(v, "postgres://"))
        return 0;
    snprintf(err, errlen, "must be a PostgreSQL URL, postgresql://user:password@host:port/database");
    return 1;
}

static int check_redis(const char *v, char *err, size_t errlen)
{
    if (has_prefix(v, "redis://"))
        return 0;
    snprintf(err, errlen,
             "must be a Redis URL, redis://[:password@]host:port[/db] "
             "(TLS, rediss://, is not supported)");
    return 1;
}

static int check_session_secret(const char *v, char *err, size_t errlen)
{
    if (strlen(v) >= 32)
        return 0;
    snprintf(err, errlen, "must be at least 32 characters, got %zu (generate one with: openssl rand -hex 32)",
             strlen(v));
    return 1;
}

static int check_encryption_key(const char *v, char *err, size_t errlen)
{
    if (is_hex64(v))
        return 0;
    snprintf(err, errlen,
             "must be 64 hex characters, a 32-byte key, got %zu characters "
             "(generate one with: openssl rand -hex 32)",
             strlen(v));
    return 1;
}

static int check_rate_profile(const char *v, char *err, size_t errlen)
{
    if (strcmp(v, "default") == 0 || strcmp(v, "bench") == 0)
        return 0;
    snprintf(err, errlen, "must be default or bench, got '%s'", v);
    return 1;
}

static int check_socket(const char *v, char *err, size_t errlen)
{
    if (strlen(v) < 108) /* sizeof sockaddr_un.sun_path */
        return 0;
    snprintf(err, errlen, "must be shorter than 108 bytes (a unix socket path limit), got %zu", strlen(v));
    return 1;
}

/* ---- the table ------------------------------------------------------------ */

static const struct gh_cfg_entry table[] = {
    /* Discord */
    {"DISCORD_TOKEN", GH_CFG_SECRET, FIELD(discord_token), NULL, 0, 0, 0,
     "Bot token; unset = fake mode (the stack starts the fake Discord)", NULL},
    {"DISCORD_APPLICATION_ID", GH_CFG_SNOWFLAKE, FIELD(application_id), NULL, GH_SVC_INTERACTIONS, 0, 0,
     "Application id from the Developer Portal", NULL},
    {"DISCORD_PUBLIC_KEY", GH_CFG_HEXKEY32, FIELD(public_key), NULL, GH_SVC_INTERACTIONS | GH_SVC_API, 0, 0,
     "Application public key (64 hex), verifies interactions and webhook events", NULL},
    {"DISCORD_CLIENT_ID", GH_CFG_SNOWFLAKE, FIELD(client_id), NULL, 0, 0, 0,
     "OAuth2 client id for dashboard login (usually the application id)", NULL},
    {"DISCORD_CLIENT_SECRET", GH_CFG_SECRET, FIELD(client_secret), NULL, 0, 0, 0,
     "OAuth2 client secret for dashboard login", NULL},
    {"DISCORD_API_BASE", GH_CFG_URL, FIELD(api_base), "https://discord.com/api/v10", 0, 0, 0,
     "Discord REST base URL, with the API version", check_http},
    {"DISCORD_OAUTH_AUTHORIZE_URL", GH_CFG_URL, FIELD(oauth_authorize_url),
     "https://discord.com/oauth2/authorize", 0, 0, 0, "OAuth2 authorize page for dashboard login",
     check_http},
    {"DISCORD_GATEWAY_URL", GH_CFG_URL, FIELD(gateway_url), NULL, 0, 0, 0,
     "Gateway URL override; unset = ask GET /gateway/bot", check_ws},
    /* stores */
    {"DATABASE_URL", GH_CFG_URL, FIELD(database_url), NULL, ALL, 0, 0,
     "PostgreSQL URL, postgresql://user:password@host:port/database", check_pg},
    {"REDIS_URL", GH_CFG_URL, FIELD(redis_url), NULL, ALL, 0, 0,
     "Redis URL, redis://[:password@]host:port[/db]", check_redis},
    {"PG_POOL_MIN", GH_CFG_INT, FIELD(pg_pool_min), "10", 0, 1, 500,
     "PostgreSQL connections per host, lower bound (at most PG_POOL_MAX)", NULL},
    {"PG_POOL_MAX", GH_CFG_INT, FIELD(pg_pool_max), "50", 0, 1, 500,
     "PostgreSQL connections per host, upper bound; sizes the fcgi children", NULL},
    {"PG_STATEMENT_TIMEOUT_MS", GH_CFG_INT, FIELD(pg_statement_timeout_ms), "5000", 0, 0, 3600000,
     "PostgreSQL statement_timeout in ms (0 = none)", NULL},
    {"REDIS_TIMEOUT_MS", GH_CFG_INT, FIELD(redis_timeout_ms), "500", 0, 10, 60000,
     "Redis connect and command timeout in ms", NULL},
    /* web */
    {"PUBLIC_URL", GH_CFG_URL, FIELD(public_url), "http://127.0.0.1:8080", 0, 0, 0,
     "Public base URL; https:// turns on Secure cookies and the HTTPS redirect", check_http},
    {"SESSION_SECRET", GH_CFG_SECRET, FIELD(session_secret), NULL, GH_SVC_API, 0, 0,
     "Signs dashboard sessions; at least 32 characters", check_session_secret},
    {"ENCRYPTION_KEY", GH_CFG_SECRET, FIELD(encryption_key), NULL, GH_SVC_API, 0, 0,
     "Encrypts stored tokens and keys; 64 hex characters (32 bytes)", check_encryption_key},
    {"PREMIUM_URL", GH_CFG_URL, FIELD(premium_url), "https://guildhall.example/premium", 0, 0, 0,
     "Where upgrade prompts link to", check_http},
    {"MAIN_GUILD_ID", GH_CFG_SNOWFLAKE, FIELD(main_guild_id), NULL, 0, 0, 0,
     "The operator's own guild (support server); unset = none", NULL},
    {"DEVELOPER_USER_IDS", GH_CFG_SNOWFLAKES, FIELD(developers), NULL, 0, 0, 0,
     "Comma-separated user ids that see operator pages and commands", NULL},
    {"ALERT_CHANNEL_ID", GH_CFG_SNOWFLAKE, FIELD(alert_channel_id), NULL, 0, 0, 0,
     "Channel for operator alerts (critical errors); unset = none", NULL},
    {"API_RATE_PROFILE", GH_CFG_STR, FIELD(api_rate_profile), "default", 0, 0, 0,
     "API rate limits: default, or bench (limits 1000x higher, for make bench only)", check_rate_profile},
    {"PREMIUM_SKUS", GH_CFG_STR, FIELD(premium_skus), NULL, 0, 0, 0,
     "Discord SKUs that grant premium, as sku_id:tier pairs (tier premium or pro), comma-separated", NULL},
    {"PREMIUM_GRACE_DAYS", GH_CFG_INT, FIELD(premium_grace_days), "7", 0, 0, 90,
     "Days premium keeps working after it expires (the grace period)", NULL},
    {"PREMIUM_TRIAL_DAYS", GH_CFG_INT, FIELD(premium_trial_days), "7", 0, 0, 90,
     "Length of the one premium trial a guild may start; 0 = no trials", NULL},
    {"TLS_CERT_FILE", GH_CFG_STR, FIELD(tls_cert_file), NULL, 0, 0, 0,
     "TLS certificate (PEM) nginx serves when PUBLIC_URL is https", NULL},
    {"TLS_KEY_FILE", GH_CFG_STR, FIELD(tls_key_file), NULL, 0, 0, 0,
     "TLS private key (PEM) for TLS_CERT_FILE", NULL},
    /* fcgi */
    {"FCGI_SOCKET", GH_CFG_STR, FIELD(fcgi_socket), NULL, GH_SVC_INTERACTIONS | GH_SVC_API, 0, 0,
     "Unix socket the fcgi master listens on (set by the scripts)", check_socket},
    {"FCGI_CHILDREN", GH_CFG_INT, FIELD(fcgi_children), "0", 0, 0, 1024,
     "fcgi worker processes; 0 = sized from cores and PG_POOL_MAX", NULL},
    {"FCGI_BACKLOG", GH_CFG_INT, FIELD(fcgi_backlog), "1024", 0, 1, 65535,
     "listen(2) backlog of the fcgi socket", NULL},
    {"MAX_BODY_BYTES", GH_CFG_SIZE, FIELD(max_body_bytes), "262144", 0, 1024, 16777216,
     "Largest request body accepted; larger gets 413", NULL},
    {"SIGNATURE_MAX_SKEW_S", GH_CFG_INT, FIELD(signature_max_skew_s), "300", 0, 1, 3600,
     "Largest clock skew of a signed request's timestamp, past or future, in s", NULL},
    /* workers */
    {"WORKER_TICK_S", GH_CFG_INT, FIELD(worker_tick_s), "60", 0, 1, 3600,
     "Seconds between worker runs (cron period); a run lasts tick + overlap", NULL},
    {"WORKER_CONCURRENCY", GH_CFG_INT, FIELD(worker_concurrency), "2", 0, 1, 64, "Jobs a worker runs at once",
     NULL},
    {"JOB_LEASE_S", GH_CFG_INT, FIELD(job_lease_s), "10", 0, 1, 3600,
     "Seconds a taken job stays leased before it returns to the queue", NULL},
    /* gateway-lite (docs/gateway.md) */
    {"GATEWAY_INTENTS", GH_CFG_INT, FIELD(gateway_intents), "-1", 0, -1, 2147483647,
     "Gateway intents to identify with; -1 = what the registered features need", NULL},
    {"GATEWAY_PRIVILEGED_INTENTS", GH_CFG_STR, FIELD(gateway_privileged), "", 0, 0, 0,
     "Privileged intents allowed (comma list of members, presences, message_content); enable them in the "
     "Developer Portal first",
     NULL},
    {"GATEWAY_COMPRESS", GH_CFG_STR, FIELD(gateway_compress), "zlib-stream", 0, 0, 0,
     "Gateway transport compression: zlib-stream or none", NULL},
    {"GATEWAY_OWNER", GH_CFG_STR, FIELD(gateway_owner), "", 0, 0, 0,
     "Name of this gateway process in shard leases; empty = <hostname>:<pid>", NULL},
    {"GATEWAY_STATUS_INTERVAL_MS", GH_CFG_INT, FIELD(gateway_status_interval_ms), "5000", 0, 100, 60000,
     "How often gateway-lite writes shard status to Redis, in ms", NULL},
    {"GATEWAY_SETTINGS_TTL_MS", GH_CFG_INT, FIELD(gateway_settings_ttl_ms), "10000", 0, 0, 600000,
     "How long gateway-lite keeps a guild's parsed settings in memory, in ms (0 = read Redis every message)",
     NULL},
    /* REST */
    {"REST_TIMEOUT_MS", GH_CFG_INT, FIELD(rest_timeout_ms), "30000", 0, 100, 300000,
     "Timeout of one Discord REST call in ms", NULL},
    {"REST_MAX_RETRIES", GH_CFG_INT, FIELD(rest_max_retries), "3", 0, 0, 10,
     "Retries of a Discord REST call after 429 or 5xx", NULL},
    /* logging */
    {"LOG_LEVEL", GH_CFG_LEVEL, FIELD(log_level), "info", 0, 0, 0,
     "Lowest level logged: debug, info, warn, error or crit", NULL},
    {"LOG_FILE", GH_CFG_STR, FIELD(log_file), NULL, 0, 0, 0, "Log file (JSON lines); unset = stderr", NULL},
    {"LOG_MAX_BYTES", GH_CFG_SIZE, FIELD(log_max_bytes), "10485760", 0, 0, 1099511627776LL,
     "Rotate LOG_FILE before it passes this size; 0 = never", NULL},
    {"LOG_MAX_FILES", GH_CFG_INT, FIELD(log_max_files), "5", 0, 0, 100,
     "Rotated log files kept (LOG_FILE.1 .. LOG_FILE.N)", NULL},
    {"GH_RUN_DIR", GH_CFG_STR, FIELD(run_dir), ".run/dev", 0, 0, 0,
     "Run directory of the profile: pid files, sockets, spools", NULL},
};

const struct gh_cfg_entry *gh_config_table(size_t *n)
{
    if (n)
        *n = sizeof table / sizeof table[0];
    return table;
}

/* ---- loading -------------------------------------------------------------- */

static const char *env_getenv(const char *name, void *arg)
{
    (void)arg;
    return getenv(name);
}

/* "ENV: <detail>" into err; always GH_ECONFIG. */
static int fail(char *err, size_t errlen, const char *env, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(char *err, size_t errlen, const char *env, const char *fmt, ...)
{
    char detail[384];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    if (err && errlen)
        snprintf(err, errlen, "%s: %s", env, detail);
    return GH_ECONFIG;
}

/* "0123..." -> snowflake; 0 when not a positive decimal id. */
static uint64_t parse_snowflake(const char *s)
{
    uint64_t v = 0;

    if (gh_cstr_to_u64(s, &v) != GH_OK || strlen(s) > 20)
        return 0;
    return v;
}

static int load_developers(struct gh_config *cfg, const struct gh_cfg_entry *e, const char *v, char *err,
                           size_t errlen)
{
    const char *p = v;
    int item = 0;

    cfg->n_developers = 0;
    while (*p) {
        char tok[32];
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        uint64_t id;

        item++;
        while (n && (*p == ' ' || *p == '\t')) {
            p++;
            n--;
        }
        while (n && (p[n - 1] == ' ' || p[n - 1] == '\t'))
            n--;
        if (n) { /* empty items ("1,,2" or a trailing comma) are skipped */
            if (n >= sizeof tok)
                n = sizeof tok - 1;
            memcpy(tok, p, n);
            tok[n] = '\0';
            id = parse_snowflake(tok);
            if (!id) {
                if (err && errlen)
                    snprintf(err, errlen,
                             "%s: item %d must be a Discord user id (a positive decimal "
                             "snowflake), got '%s'",
                             e->env, item, tok);
                return GH_ECONFIG;
            }
            if (cfg->n_developers >= GH_MAX_DEVELOPERS) {
                if (err && errlen)
                    snprintf(err, errlen, "%s: at most %d ids", e->env, GH_MAX_DEVELOPERS);
                return GH_ECONFIG;
            }
            cfg->developers[cfg->n_developers++] = id;
        }
        if (!end)
            break;
        p = end + 1;
    }
    return GH_OK;
}

static int load_entry(struct gh_config *cfg, const struct gh_cfg_entry *e, const char *v, char *err,
                      size_t errlen)
{
    char *field = (char *)cfg + e->offset;
    char detail[320];
    int64_t num;
    uint64_t id;
    size_t i, len = strlen(v);

    switch (e->type) {
    case GH_CFG_STR:
    case GH_CFG_SECRET:
    case GH_CFG_URL:
        if (e->type == GH_CFG_URL) {
            const char *rest = strstr(v, "://");

            if (!rest || rest == v || rest[3] == '\0')
                return fail(err, errlen, e->env, "must be a URL (scheme://host...)");
            /* No trailing slash: callers append "/path". */
            while (len > (size_t)(rest - v) + 4 && v[len - 1] == '/')
                len--;
        }
        if (len >= e->size) {
            return fail(err, errlen, e->env, "too long (at most %zu characters)", e->size - 1);
        }
        memcpy(field, v, len);
        field[len] = '\0';
        break;
    case GH_CFG_INT:
    case GH_CFG_SIZE:
        if (gh_cstr_to_i64(v, &num) != GH_OK || num < e->min || num > e->max) {
            return fail(err, errlen, e->env, "must be an integer between %lld and %lld, got '%.40s'", e->min,
                        e->max, v);
        }
        if (e->type == GH_CFG_INT)
            *(int *)(void *)field = (int)num;
        else
            *(size_t *)(void *)field = (size_t)num;
        break;
    case GH_CFG_SNOWFLAKE:
        id = parse_snowflake(v);
        if (!id && !(strcmp(v, "0") == 0 && !e->required_by))
            return fail(err, errlen, e->env,
                        "must be a Discord id (a positive decimal snowflake), got '%.40s'", v);
        *(uint64_t *)(void *)field = id;
        break;
    case GH_CFG_SNOWFLAKES:
        return load_developers(cfg, e, v, err, errlen);
    case GH_CFG_HEXKEY32:
        if (!is_hex64(v))
            return fail(err, errlen, e->env,
                        "must be 64 hex characters (the application's public key from the "
                        "Developer Portal)");
        for (i = 0; i < 32; i++)
            cfg->public_key[i] = (unsigned char)(hex_val(v[2 * i]) << 4 | hex_val(v[2 * i + 1]));
        cfg->has_public_key = 1;
        break;
    case GH_CFG_LEVEL: {
        enum gh_log_level lvl;

        if (gh_log_level_parse(v, &lvl) != GH_OK)
            return fail(err, errlen, e->env, "must be one of debug, info, warn, error, crit, got '%.40s'", v);
        for (i = 0; i < len && i + 1 < e->size; i++)
            field[i] = (char)(v[i] >= 'A' && v[i] <= 'Z' ? v[i] + 32 : v[i]);
        field[i] = '\0';
        break;
    }
    }
    if (e->check && e->check(field, detail, sizeof detail) != 0)
        return fail(err, errlen, e->env, "%s", detail);
    return GH_OK;
}

/* Percent-decodes n bytes of s into out; "" when it does not fit. */
static void pct_decode(const char *s, size_t n, char *out, size_t size)
{
    size_t i, o = 0;

    for (i = 0; i < n; i++) {
        if (o + 1 >= size) {
            out[0] = '\0';
            return;
        }
        if (s[i] == '%' && i + 2 < n && is_hex(s[i + 1]) && is_hex(s[i + 2])) {
            out[o++] = (char)(hex_val(s[i + 1]) << 4 | hex_val(s[i + 2]));
            i += 2;
        } else {
            out[o++] = s[i];
        }
    }
    out[o] = '\0';
}

/* The password of "scheme://user:password@host..." or of "?password=..." */
static void url_password(const char *url, char *out, size_t size)
{
    const char *p = strstr(url, "://"), *at, *colon, *q;
    size_t n;

    out[0] = '\0';
    if (!p)
        return;
    p += 3;
    n = strcspn(p, "/?#");
    at = memchr(p, '@', n);
    if (at) {
        colon = memchr(p, ':', (size_t)(at - p));
        if (colon && colon + 1 < at) {
            pct_decode(colon + 1, (size_t)(at - colon - 1), out, size);
            return;
        }
    }
    q = strchr(p, '?');
    while (q) {
        q++;
        if (has_prefix(q, "password=")) {
            q += strlen("password=");
            pct_decode(q, strcspn(q, "&#"), out, size);
            return;
        }
        q = strchr(q, '&');
    }
}

int gh_config_load(struct gh_config *cfg, unsigned service, gh_getenv_fn get, void *arg, char *err,
                   size_t errlen)
{
    char val[VALUE_MAX];
    size_t i;
    int rc;

    memset(cfg, 0, sizeof *cfg);
    if (err && errlen)
        err[0] = '\0';
    if (!get)
        get = env_getenv;
    for (i = 0; i < sizeof table / sizeof table[0]; i++) {
        const struct gh_cfg_entry *e = &table[i];
        const char *raw = get(e->env, arg);
        size_t start = 0, len;

        if (raw) { /* trim: a stray space from a .env file is never meant */
            len = strlen(raw);
            while (start < len && (raw[start] == ' ' || raw[start] == '\t'))
                start++;
            while (len > start && (raw[len - 1] == ' ' || raw[len - 1] == '\t' || raw[len - 1] == '\r' ||
                                   raw[len - 1] == '\n'))
                len--;
            if (len - start >= sizeof val) {
                return fail(err, errlen, e->env, "too long (%zu characters)", len - start);
            }
            memcpy(val, raw + start, len - start);
            val[len - start] = '\0';
        } else {
            val[0] = '\0';
        }
        if (!val[0]) {
            if (e->def) {
                snprintf(val, sizeof val, "%s", e->def);
            } else if (e->required_by & service) {
                if (err && errlen)
                    snprintf(err, errlen, "%s: missing (required): %s", e->env, e->meaning);
                return GH_ECONFIG;
            } else {
                continue; /* optional and unset: the zeroed field means "none" */
            }
        }
        rc = load_entry(cfg, e, val, err, errlen);
        if (rc != GH_OK)
            return rc;
    }
    if (cfg->pg_pool_min > cfg->pg_pool_max) {
        if (err && errlen)
            snprintf(err, errlen, "PG_POOL_MIN: must not exceed PG_POOL_MAX (%d > %d)", cfg->pg_pool_min,
                     cfg->pg_pool_max);
        return GH_ECONFIG;
    }
    url_password(cfg->database_url, cfg->database_password, sizeof cfg->database_password);
    url_password(cfg->redis_url, cfg->redis_password, sizeof cfg->redis_password);
    return GH_OK;
}

void gh_config_load_or_die(struct gh_config *cfg, unsigned service, const char *progname)
{
    char err[512];

    if (gh_config_load(cfg, service, NULL, NULL, err, sizeof err) == GH_OK)
        return;
    fprintf(stderr, "%s: configuration error: %s\n", progname ? progname : "guildhall", err);
    exit(2);
}

int gh_config_is_developer(const struct gh_config *cfg, uint64_t user_id)
{
    int i;

    if (!user_id)
        return 0;
    for (i = 0; i < cfg->n_developers; i++)
        if (cfg->developers[i] == user_id)
            return 1;
    return 0;
}

int gh_config_fake_mode(const struct gh_config *cfg)
{
    return cfg->discord_token[0] == '\0';
}

void gh_config_register_secrets(const struct gh_config *cfg, struct gh_log_sink *sink)
{
    gh_log_sink_add_secret(sink, cfg->discord_token);
    gh_log_sink_add_secret(sink, cfg->client_secret);
    gh_log_sink_add_secret(sink, cfg->session_secret);
    gh_log_sink_add_secret(sink, cfg->encryption_key);
    gh_log_sink_add_secret(sink, cfg->database_password);
    gh_log_sink_add_secret(sink, cfg->redis_password);
}

/* ---- documentation -------------------------------------------------------- */

static void print_cell(const char *s)
{
    for (; *s; s++) {
        if (*s == '|')
            fputs("\\|", stdout);
        else
            putchar(*s);
    }
}

void gh_config_print_markdown(void)
{
    static const struct {
        unsigned bit;
        const char *name;
    } services[] = {
        {GH_SVC_INTERACTIONS, "interactions"}, {GH_SVC_API, "api"},    {GH_SVC_WORKER, "worker"},
        {GH_SVC_GATEWAY, "gateway"},           {GH_SVC_TOOL, "tools"},
    };
    size_t i, k;

    puts("| Variable | Default | Required by | Meaning |");
    puts("| --- | --- | --- | --- |");
    for (i = 0; i < sizeof table / sizeof table[0]; i++) {
        const struct gh_cfg_entry *e = &table[i];
        int first = 1;

        printf("| `%s` | ", e->env);
        if (e->def && e->def[0]) { /* an empty default reads as none, not as an empty code span */
            putchar('`');
            print_cell(e->def);
            putchar('`');
        } else {
            putchar('-');
        }
        fputs(" | ", stdout);
        if ((e->required_by & ALL) == ALL) {
            fputs("all", stdout);
        } else if (!e->required_by) {
            putchar('-');
        } else {
            for (k = 0; k < sizeof services / sizeof services[0]; k++) {
                if (!(e->required_by & services[k].bit))
                    continue;
                printf("%s%s", first ? "" : ", ", services[k].name);
                first = 0;
            }
        }
        fputs(" | ", stdout);
        print_cell(e->meaning);
        puts(" |");
    }
}
