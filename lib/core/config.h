/* config.h - configuration from the environment, loaded once from a table.
 *
 * Every variable is one row of the table in config.c: env name, field, type,
 * default, which services require it, and a one-line meaning (the README's
 * table is generated from the same rows by `guildhall-config --markdown`).
 * A bad or missing value stops the process with a message naming the
 * variable. Modules never call getenv: they receive this struct. */
#ifndef GH_CORE_CONFIG_H
#define GH_CORE_CONFIG_H

#include <stddef.h>
#include <stdint.h>

/* Which binary is loading: decides which variables are required. */
enum gh_service {
    GH_SVC_INTERACTIONS = 1 << 0,
    GH_SVC_API = 1 << 1,
    GH_SVC_WORKER = 1 << 2,
    GH_SVC_GATEWAY = 1 << 3,
    GH_SVC_TOOL = 1 << 4, /* migrate, register-commands, ... */
};

#define GH_MAX_DEVELOPERS 32

struct gh_config {
    /* Discord */
    char discord_token[128];      /* DISCORD_TOKEN; "" = fake mode */
    uint64_t application_id;      /* DISCORD_APPLICATION_ID */
    unsigned char public_key[32]; /* DISCORD_PUBLIC_KEY (hex) */
    int has_public_key;
    uint64_t client_id;            /* DISCORD_CLIENT_ID */
    char client_secret[128];       /* DISCORD_CLIENT_SECRET */
    char api_base[256];            /* DISCORD_API_BASE, no trailing slash */
    char oauth_authorize_url[256]; /* DISCORD_OAUTH_AUTHORIZE_URL */
    char gateway_url[256];         /* DISCORD_GATEWAY_URL, "" = ask /gateway/bot */
    /* stores */
    char database_url[512];      /* DATABASE_URL */
    char redis_url[256];         /* REDIS_URL redis://host:port[/db] */
    int pg_pool_min;             /* PG_POOL_MIN, default 10 */
    int pg_pool_max;             /* PG_POOL_MAX, default 50: connections per host */
    int pg_statement_timeout_ms; /* PG_STATEMENT_TIMEOUT_MS, default 5000 */
    int redis_timeout_ms;        /* REDIS_TIMEOUT_MS, default 500 */
    /* web */
    char public_url[256];                   /* PUBLIC_URL */
    char session_secret[128];               /* SESSION_SECRET */
    char encryption_key[128];               /* ENCRYPTION_KEY */
    char premium_url[256];                  /* PREMIUM_URL */
    uint64_t main_guild_id;                 /* MAIN_GUILD_ID, 0 = none */
    uint64_t developers[GH_MAX_DEVELOPERS]; /* DEVELOPER_USER_IDS, comma-separated */
    int n_developers;
    uint64_t alert_channel_id; /* ALERT_CHANNEL_ID: operator alert channel, 0 = none */
    char api_rate_profile[16]; /* API_RATE_PROFILE: default | bench */
    char premium_skus[512];    /* PREMIUM_SKUS: "sku_id:tier,..." (Discord SKUs -> tiers) */
    int premium_grace_days;    /* PREMIUM_GRACE_DAYS, default 7 */
    int premium_trial_days;    /* PREMIUM_TRIAL_DAYS, default 7, 0 = no trial */
    char tls_cert_file[512];   /* TLS_CERT_FILE: nginx certificate when PUBLIC_URL is https */
    char tls_key_file[512];    /* TLS_KEY_FILE */
    /* fcgi */
    char fcgi_socket[256];    /* FCGI_SOCKET: unix socket path (set by the scripts) */
    int fcgi_children;        /* FCGI_CHILDREN, 0 = sized from cores and PG_POOL_MAX */
    int fcgi_backlog;         /* FCGI_BACKLOG, default 1024 */
    size_t max_body_bytes;    /* MAX_BODY_BYTES, default 262144 */
    int signature_max_skew_s; /* SIGNATURE_MAX_SKEW_S, default 300 */
    /* workers */
    int worker_tick_s;      /* WORKER_TICK_S, default 60: one run lasts tick + overlap */
    int worker_concurrency; /* WORKER_CONCURRENCY, default 2 */
    int job_lease_s;        /* JOB_LEASE_S, default 10 */
    /* gateway-lite */
    int gateway_intents;                /* GATEWAY_INTENTS, -1 = from the features */
    char gateway_privileged[128];       /* GATEWAY_PRIVILEGED_INTENTS */
    char gateway_compress[16];          /* GATEWAY_COMPRESS: zlib-stream | none */
    char gateway_owner[128];            /* GATEWAY_OWNER, "" = <hostname>:<pid> */
    int gateway_status_interval_ms;     /* GATEWAY_STATUS_INTERVAL_MS */
    int gateway_settings_ttl_ms;        /* GATEWAY_SETTINGS_TTL_MS */
    /* REST */
    int rest_timeout_ms;  /* REST_TIMEOUT_MS, default 30000 */
    int rest_max_retries; /* REST_MAX_RETRIES, default 3 */
    /* logging */
    char log_level[16];   /* LOG_LEVEL, default info */
    char log_file[512];   /* LOG_FILE, "" = stderr */
    size_t log_max_bytes; /* LOG_MAX_BYTES, default 10485760 */
    int log_max_files;    /* LOG_MAX_FILES, default 5 */
    char run_dir[512];    /* GH_RUN_DIR: .run/<profile>, for pid files and spools */
    /* Derived at load, not variables of their own: the (percent-decoded)
     * passwords inside DATABASE_URL and REDIS_URL, "" when none, kept so that
     * gh_config_register_secrets can hand them to the log redactor. */
    char database_password[256];
    char redis_password[256];
};

enum gh_cfg_type {
    GH_CFG_STR,        /* char[] field */
    GH_CFG_SECRET,     /* char[] field, registered with the log redactor */
    GH_CFG_URL,        /* char[]; must start with http://, https://, postgres(ql)://, redis:// */
    GH_CFG_INT,        /* int, with min/max */
    GH_CFG_SIZE,       /* size_t, with min/max */
    GH_CFG_SNOWFLAKE,  /* uint64_t, 0 allowed only when not required */
    GH_CFG_SNOWFLAKES, /* developers list */
    GH_CFG_HEXKEY32,   /* 32-byte key as 64 hex chars (public_key + has_public_key) */
    GH_CFG_LEVEL,      /* log level name */
};

struct gh_cfg_entry {
    const char *env;
    enum gh_cfg_type type;
    size_t offset;
    size_t size;          /* field size for strings */
    const char *def;      /* default text, NULL = none */
    unsigned required_by; /* mask of enum gh_service */
    long long min, max;   /* for numbers */
    const char *meaning;  /* one line, for README and --help */
    /* Extra check after the type's own (URL scheme, length, format), NULL =
     * none. Writes "<what is expected>" into err (without the variable's
     * name) and returns nonzero when value is not acceptable. */
    int (*check)(const char *value, char *err, size_t errlen);
};

/* The table; n entries via *n. */
const struct gh_cfg_entry *gh_config_table(size_t *n);

/* Seam: where values come from. Default is getenv; tests pass their own. */
typedef const char *(*gh_getenv_fn)(const char *name, void *arg);

/* Loads every row. On failure returns GH_ECONFIG and writes
 * "DATABASE_URL: missing (required)" or "PG_POOL_MAX: must be between 1 and
 * 500, got 'x'" into err. */
int gh_config_load(struct gh_config *cfg, unsigned service, gh_getenv_fn get, void *arg, char *err,
                   size_t errlen);
/* Loads from the real environment; on failure prints the message to stderr
 * and exits(2). */
void gh_config_load_or_die(struct gh_config *cfg, unsigned service, const char *progname);
int gh_config_is_developer(const struct gh_config *cfg, uint64_t user_id);
int gh_config_fake_mode(const struct gh_config *cfg); /* token empty */
/* Prints the README table (markdown) to stdout. */
void gh_config_print_markdown(void);

struct gh_log_sink;
/* Registers every secret of cfg with the sink's redactor: DISCORD_TOKEN,
 * DISCORD_CLIENT_SECRET, SESSION_SECRET, ENCRYPTION_KEY and the passwords
 * inside DATABASE_URL and REDIS_URL. The sink borrows the strings: cfg must
 * outlive it. */
void gh_config_register_secrets(const struct gh_config *cfg, struct gh_log_sink *sink);

#endif
