/* test_config.c - the table loader, through a getenv seam over a small table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/config.h"
#include "core/err.h"
#include "core/log.h"

#define PUBKEY "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8"
#define ENCKEY "00112233445566778899AABBCCDDEEFF00112233445566778899aabbccddeeff"

struct kv {
    const char *k, *v;
};

/* A complete environment for every service; a test overrides or removes
 * entries by putting its own table first. */
static const struct kv base_env[] = {
    {"DATABASE_URL", "postgresql://guildhall:pg%40pass1@127.0.0.1:18082/guildhall"},
    {"REDIS_URL", "redis://:redispw123@127.0.0.1:18083/0"},
    {"DISCORD_PUBLIC_KEY", PUBKEY},
    {"DISCORD_APPLICATION_ID", "1234567890123456789"},
    {"SESSION_SECRET", "0123456789abcdef0123456789abcdef-session"},
    {"ENCRYPTION_KEY", ENCKEY},
    {"FCGI_SOCKET", "/tmp/gh.sock"},
    {NULL, NULL},
};

struct env {
    const struct kv *over; /* checked first; value NULL = unset */
};

static const char *fake_getenv(const char *name, void *arg)
{
    const struct env *e = arg;
    const struct kv *p;

    for (p = e->over; p && p->k; p++)
        if (strcmp(p->k, name) == 0)
            return p->v;
    for (p = base_env; p->k; p++)
        if (strcmp(p->k, name) == 0)
            return p->v;
    return NULL;
}

static int load(const struct kv *over, unsigned svc, struct gh_config *cfg, char *err, size_t n)
{
    struct env e = {over};

    return gh_config_load(cfg, svc, fake_getenv, &e, err, n);
}

static const unsigned all_services[] = {GH_SVC_INTERACTIONS, GH_SVC_API, GH_SVC_WORKER, GH_SVC_GATEWAY,
                                        GH_SVC_TOOL};

static void defaults_applied(void **state)
{
    struct gh_config cfg;
    char err[256];

    (void)state;
    assert_int_equal(load(NULL, GH_SVC_API, &cfg, err, sizeof err), GH_OK);
    assert_string_equal(err, "");
    assert_string_equal(cfg.api_base, "https://discord.com/api/v10");
    assert_string_equal(cfg.oauth_authorize_url, "https://discord.com/oauth2/authorize");
    assert_string_equal(cfg.public_url, "http://127.0.0.1:8080");
    assert_string_equal(cfg.premium_url, "https://guildhall.example/premium");
    assert_string_equal(cfg.gateway_url, "");
    assert_int_equal(cfg.pg_pool_min, 10);
    assert_int_equal(cfg.pg_pool_max, 50);
    assert_int_equal(cfg.pg_statement_timeout_ms, 5000);
    assert_int_equal(cfg.redis_timeout_ms, 500);
    assert_int_equal(cfg.fcgi_backlog, 1024);
    assert_int_equal(cfg.fcgi_children, 0);
    assert_int_equal(cfg.max_body_bytes, 262144);
    assert_int_equal(cfg.signature_max_skew_s, 300);
    assert_int_equal(cfg.worker_tick_s, 60);
    assert_int_equal(cfg.worker_concurrency, 2);
    assert_int_equal(cfg.job_lease_s, 10);
    assert_int_equal(cfg.rest_timeout_ms, 30000);
    assert_int_equal(cfg.rest_max_retries, 3);
    assert_string_equal(cfg.log_level, "info");
    assert_string_equal(cfg.log_file, "");
    assert_int_equal(cfg.log_max_bytes, 10485760);
    assert_int_equal(cfg.log_max_files, 5);
    assert_string_equal(cfg.run_dir, ".run/dev");
    assert_true(cfg.main_guild_id == 0);
    assert_int_equal(cfg.n_developers, 0);
    assert_true(gh_config_fake_mode(&cfg));
    assert_true(cfg.application_id == 1234567890123456789ULL);
}

static void values_override_defaults(void **state)
{
    static const struct kv over[] = {
        {"DISCORD_TOKEN", "fake-token-abc.def"},
        {"DISCORD_API_BASE", "http://127.0.0.1:18081/api/v10/"},
        {"PG_POOL_MAX", " 20 "},
        {"PG_POOL_MIN", "5"},
        {"MAX_BODY_BYTES", "1024"},
        {"LOG_LEVEL", "DEBUG"},
        {"GH_RUN_DIR", ".run/test"},
        {"MAIN_GUILD_ID", "987654321098765432"},
        {"DISCORD_GATEWAY_URL", "ws://127.0.0.1:18081/gateway"},
        {"PUBLIC_URL", ""}, /* empty = unset */
        {NULL, NULL},
    };
    struct gh_config cfg;
    char err[256];

    (void)state;
    assert_int_equal(load(over, GH_SVC_INTERACTIONS, &cfg, err, sizeof err), GH_OK);
    assert_string_equal(cfg.discord_token, "fake-token-abc.def");
    assert_false(gh_config_fake_mode(&cfg));
    assert_string_equal(cfg.api_base, "http://127.0.0.1:18081/api/v10"); /* no trailing slash */
    assert_int_equal(cfg.pg_pool_max, 20);
    assert_int_equal(cfg.pg_pool_min, 5);
    assert_int_equal(cfg.max_body_bytes, 1024);
    assert_string_equal(cfg.log_level, "debug");
    assert_string_equal(cfg.run_dir, ".run/test");
    assert_true(cfg.main_guild_id == 987654321098765432ULL);
    assert_string_equal(cfg.gateway_url, "ws://127.0.0.1:18081/gateway");
    assert_string_equal(cfg.public_url, "http://127.0.0.1:8080");
}

static void missing_required_is_named(void **state)
{
    static const struct {
        const char *env;
        unsigned required_by, not_required_by;
    } cases[] = {
        {"DATABASE_URL", GH_SVC_WORKER, 0},
        {"REDIS_URL", GH_SVC_GATEWAY, 0},
        {"DISCORD_PUBLIC_KEY", GH_SVC_INTERACTIONS, GH_SVC_WORKER},
        {"DISCORD_APPLICATION_ID", GH_SVC_INTERACTIONS, GH_SVC_API},
        {"SESSION_SECRET", GH_SVC_API, GH_SVC_INTERACTIONS},
        {"ENCRYPTION_KEY", GH_SVC_API, GH_SVC_WORKER},
        {"FCGI_SOCKET", GH_SVC_API, GH_SVC_GATEWAY},
    };
    struct gh_config cfg;
    char err[256], want[64];
    size_t i, k;

    (void)state;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct kv over[2] = {{cases[i].env, NULL}, {NULL, NULL}};

        assert_int_equal(load(over, cases[i].required_by, &cfg, err, sizeof err), GH_ECONFIG);
        snprintf(want, sizeof want, "%s: missing (required)", cases[i].env);
        if (strncmp(err, want, strlen(want)) != 0)
            fail_msg("got '%s', want it to start with '%s'", err, want);
        if (cases[i].not_required_by)
            assert_int_equal(load(over, cases[i].not_required_by, &cfg, err, sizeof err), GH_OK);
    }
    /* DATABASE_URL is required by every service */
    for (k = 0; k < sizeof all_services / sizeof all_services[0]; k++) {
        struct kv over[2] = {{"DATABASE_URL", ""}, {NULL, NULL}};

        assert_int_equal(load(over, all_services[k], &cfg, err, sizeof err), GH_ECONFIG);
        assert_non_null(strstr(err, "DATABASE_URL"));
    }
}

static void expect_error(const char *env, const char *value, unsigned svc, const char *want)
{
    struct kv over[2] = {{env, value}, {NULL, NULL}};
    struct gh_config cfg;
    char err[256];

    assert_int_equal(load(over, svc, &cfg, err, sizeof err), GH_ECONFIG);
    if (strcmp(err, want) != 0 &&
        !(want[strlen(want) - 1] == '*' && strncmp(err, want, strlen(want) - 1) == 0))
        fail_msg("%s=%s\n  got  %s\n  want %s", env, value, err, want);
}

static void bad_values_are_named(void **state)
{
    (void)state;
    expect_error("PG_POOL_MAX", "abc", GH_SVC_API,
                 "PG_POOL_MAX: must be an integer between 1 and 500, got 'abc'");
    expect_error("PG_POOL_MAX", "501", GH_SVC_API,
                 "PG_POOL_MAX: must be an integer between 1 and 500, got '501'");
    expect_error("PG_POOL_MAX", "0", GH_SVC_API, "PG_POOL_MAX: must be an integer between*");
    expect_error("PG_POOL_MAX", "5", GH_SVC_API, "PG_POOL_MIN: must not exceed PG_POOL_MAX (10 > 5)");
    expect_error("MAX_BODY_BYTES", "100", GH_SVC_API,
                 "MAX_BODY_BYTES: must be an integer between 1024 and 16777216, got '100'");
    expect_error("REST_TIMEOUT_MS", "1.5", GH_SVC_WORKER, "REST_TIMEOUT_MS: must be an integer*");
    expect_error("DISCORD_PUBLIC_KEY", "xyz", GH_SVC_INTERACTIONS,
                 "DISCORD_PUBLIC_KEY: must be 64 hex characters (the application's public key "
                 "from the Developer Portal)");
    expect_error("DISCORD_PUBLIC_KEY", PUBKEY "00", GH_SVC_INTERACTIONS,
                 "DISCORD_PUBLIC_KEY: must be 64 hex characters*");
    expect_error("DISCORD_PUBLIC_KEY", "g3a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8",
                 GH_SVC_INTERACTIONS, "DISCORD_PUBLIC_KEY: must be 64 hex characters*");
    expect_error("DISCORD_APPLICATION_ID", "12ab", GH_SVC_INTERACTIONS,
                 "DISCORD_APPLICATION_ID: must be a Discord id (a positive decimal snowflake), "
                 "got '12ab'");
    expect_error("DISCORD_APPLICATION_ID", "0", GH_SVC_INTERACTIONS,
                 "DISCORD_APPLICATION_ID: must be a Discord id*");
    expect_error("DATABASE_URL", "mysql://x@y/z", GH_SVC_WORKER, "DATABASE_URL: must be a PostgreSQL URL*");
    expect_error("DATABASE_URL", "not a url", GH_SVC_WORKER, "DATABASE_URL: must be a URL*");
    expect_error("REDIS_URL", "rediss://h:1", GH_SVC_WORKER, "REDIS_URL: must be a Redis URL*");
    expect_error("PUBLIC_URL", "ftp://x", GH_SVC_API, "PUBLIC_URL: must be an http:// or https:// URL");
    expect_error("SESSION_SECRET", "too-short", GH_SVC_API,
                 "SESSION_SECRET: must be at least 32 characters, got 9*");
    expect_error("ENCRYPTION_KEY", "abcd", GH_SVC_API, "ENCRYPTION_KEY: must be 64 hex characters*");
    expect_error("LOG_LEVEL", "loud", GH_SVC_WORKER,
                 "LOG_LEVEL: must be one of debug, info, warn, error, crit, got 'loud'");
    expect_error("DISCORD_GATEWAY_URL", "https://gw", GH_SVC_GATEWAY,
                 "DISCORD_GATEWAY_URL: must be a wss:// or ws:// URL");
    expect_error("FCGI_SOCKET",
                 "/tmp/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.sock",
                 GH_SVC_API, "FCGI_SOCKET: must be shorter than 108 bytes*");
    expect_error("DISCORD_TOKEN",
                 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
                 GH_SVC_API, "DISCORD_TOKEN: too long (at most 127 characters)");
}

static void error_messages_never_echo_secrets(void **state)
{
    static const struct kv over[] = {
        {"SESSION_SECRET", "my-short-secret"},
        {NULL, NULL},
    };
    static const struct kv over2[] = {
        {"DATABASE_URL", "mysql://root:verysecretpw@h/db"},
        {NULL, NULL},
    };
    struct gh_config cfg;
    char err[256];

    (void)state;
    assert_int_equal(load(over, GH_SVC_API, &cfg, err, sizeof err), GH_ECONFIG);
    assert_null(strstr(err, "my-short-secret"));
    assert_int_equal(load(over2, GH_SVC_API, &cfg, err, sizeof err), GH_ECONFIG);
    assert_null(strstr(err, "verysecretpw"));
}

static void hex_key_parsed(void **state)
{
    static const unsigned char want[32] = {
        0x03, 0xa1, 0x07, 0xbf, 0xf3, 0xce, 0x10, 0xbe, 0x1d, 0x70, 0xdd, 0x18, 0xe7, 0x4b, 0xc0, 0x99,
        0x67, 0xe4, 0xd6, 0x30, 0x9b, 0xa5, 0x0d, 0x5f, 0x1d, 0xdc, 0x86, 0x64, 0x12, 0x55, 0x31, 0xb8,
    };
    static const struct kv upper[] = {
        {"DISCORD_PUBLIC_KEY", "03A107BFF3CE10BE1D70DD18E74BC09967E4D6309BA50D5F1DDC8664125531B8"},
        {NULL, NULL},
    };
    static const struct kv none[] = {{"DISCORD_PUBLIC_KEY", NULL}, {NULL, NULL}};
    struct gh_config cfg;
    char err[256];

    (void)state;
    assert_int_equal(load(NULL, GH_SVC_INTERACTIONS, &cfg, err, sizeof err), GH_OK);
    assert_int_equal(cfg.has_public_key, 1);
    assert_memory_equal(cfg.public_key, want, 32);
    assert_int_equal(load(upper, GH_SVC_INTERACTIONS, &cfg, err, sizeof err), GH_OK);
    assert_memory_equal(cfg.public_key, want, 32);
    assert_int_equal(load(none, GH_SVC_WORKER, &cfg, err, sizeof err), GH_OK);
    assert_int_equal(cfg.has_public_key, 0);
}

static void developers_list(void **state)
{
    static const struct kv ok[] = {
        {"DEVELOPER_USER_IDS", " 111111111111111111, 222222222222222222 ,,333333333333333333,"},
        {NULL, NULL},
    };
    static const struct kv bad[] = {
        {"DEVELOPER_USER_IDS", "111111111111111111,abc"},
        {NULL, NULL},
    };
    struct gh_config cfg;
    char err[256];

    (void)state;
    assert_int_equal(load(ok, GH_SVC_API, &cfg, err, sizeof err), GH_OK);
    assert_int_equal(cfg.n_developers, 3);
    assert_true(cfg.developers[0] == 111111111111111111ULL);
    assert_true(cfg.developers[2] == 333333333333333333ULL);
    assert_true(gh_config_is_developer(&cfg, 222222222222222222ULL));
    assert_false(gh_config_is_developer(&cfg, 444444444444444444ULL));
    assert_false(gh_config_is_developer(&cfg, 0));
    assert_int_equal(load(bad, GH_SVC_API, &cfg, err, sizeof err), GH_ECONFIG);
    assert_non_null(strstr(err, "DEVELOPER_USER_IDS"));
    assert_non_null(strstr(err, "'abc'"));
}

static void developers_list_is_capped(void **state)
{
    char list[GH_MAX_DEVELOPERS * 8 + 64] = "";
    struct kv over[2] = {{"DEVELOPER_USER_IDS", list}, {NULL, NULL}};
    struct gh_config cfg;
    char err[256];
    int i;

    (void)state;
    for (i = 1; i <= GH_MAX_DEVELOPERS + 1; i++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "%d,", i);
    assert_int_equal(load(over, GH_SVC_API, &cfg, err, sizeof err), GH_ECONFIG);
    assert_non_null(strstr(err, "DEVELOPER_USER_IDS: at most"));
}

static void secrets_registered(void **state)
{
    static const struct kv over[] = {
        {"DISCORD_TOKEN", "Nzk.real-looking.token"},
        {"DISCORD_CLIENT_SECRET", "clientsecret123"},
        {NULL, NULL},
    };
    struct gh_log_sink sink;
    struct gh_config cfg;
    char err[256], out[512];

    (void)state;
    assert_int_equal(load(over, GH_SVC_API, &cfg, err, sizeof err), GH_OK);
    assert_string_equal(cfg.database_password, "pg@pass1"); /* percent-decoded */
    assert_string_equal(cfg.redis_password, "redispw123");
    gh_log_sink_init(&sink, "t", GH_LOG_DEBUG, NULL, 0, 0);
    gh_config_register_secrets(&cfg, &sink);
    assert_int_equal(sink.n_secrets, 6);
    gh_log_redact(&sink,
                  "a Nzk.real-looking.token b clientsecret123 c 0123456789abcdef0123456789abcdef-session "
                  "d " ENCKEY " e pg@pass1 f redispw123",
                  out, sizeof out);
    assert_string_equal(out, "a [redacted] b [redacted] c [redacted] d [redacted] e [redacted] f "
                             "[redacted]");
    gh_log_sink_cleanup(&sink);
}

static void table_is_complete(void **state)
{
    const struct gh_cfg_entry *t;
    size_t n, i, j;

    (void)state;
    t = gh_config_table(&n);
    assert_true(n >= 35);
    for (i = 0; i < n; i++) {
        assert_non_null(t[i].env);
        assert_non_null(t[i].meaning);
        assert_true(strlen(t[i].meaning) > 10);
        assert_null(strchr(t[i].meaning, '\n'));
        assert_true(t[i].offset + t[i].size <= sizeof(struct gh_config));
        for (j = i + 1; j < n; j++) {
            assert_string_not_equal(t[i].env, t[j].env);
            assert_int_not_equal(t[i].offset, t[j].offset);
        }
    }
}

static void password_from_query_and_percent_decoding(void **state)
{
    struct gh_config cfg;
    char err[256];
    const struct kv q[] = {
        {"DATABASE_URL", "postgresql://127.0.0.1:18082/guildhall?user=gh&password=p%41ss%2Fw&sslmode=off"},
        {"REDIS_URL", "redis://127.0.0.1:18083/0"},
        {NULL, NULL},
    };
    const struct kv bad_pct[] = {
        {"DATABASE_URL", "postgresql://u:ab%4@127.0.0.1/db"},
        {"REDIS_URL", "redis://user@127.0.0.1:18083/0?db=1&password=rp%zz"},
        {NULL, NULL},
    };

    (void)state;
    assert_int_equal(load(q, GH_SVC_API, &cfg, err, sizeof err), GH_OK);
    assert_string_equal(cfg.database_password, "pAss/w");
    assert_string_equal(cfg.redis_password, ""); /* none given */
    /* A '%' without two hex digits is kept as it is. */
    assert_int_equal(load(bad_pct, GH_SVC_API, &cfg, err, sizeof err), GH_OK);
    assert_string_equal(cfg.database_password, "ab%4");
    assert_string_equal(cfg.redis_password, "rp%zz");
    assert_int_equal(gh_config_is_developer(&cfg, 0), 0);
}

static void markdown_table_documents_every_variable(void **state)
{
    char path[] = "/tmp/gh_test_config_md_XXXXXX";
    char *text;
    long n;
    FILE *f;
    int fd = mkstemp(path), saved;

    (void)state;
    assert_true(fd >= 0);
    fflush(stdout);
    saved = dup(1);
    assert_true(saved >= 0);
    assert_int_equal(dup2(fd, 1), 1);
    gh_config_print_markdown();
    fflush(stdout);
    assert_int_equal(dup2(saved, 1), 1);
    close(saved);
    close(fd);
    f = fopen(path, "r");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    text = calloc(1, (size_t)n + 1);
    assert_non_null(text);
    assert_int_equal(fread(text, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    unlink(path);
    assert_true(strncmp(text, "| Variable | Default | Required by | Meaning |\n| --- | --- | --- | --- |\n",
                        70) == 0);
    for (const struct kv *p = base_env; p->k; p++) {
        char cell[80];

        snprintf(cell, sizeof(cell), "| `%s` | ", p->k);
        if (!strstr(text, cell))
            fail_msg("%s is not documented", p->k);
    }
    assert_non_null(strstr(text, "| `DATABASE_URL` | - | all |"));
    assert_non_null(strstr(text, "| `PG_POOL_MIN` | `10` |"));
    free(text);
}

/* load_or_die exits with status 2 and names the problem on stderr. */
static void load_or_die_exits_on_error(void **state)
{
    int pipefd[2], status = 0;
    char buf[512];
    ssize_t n;
    pid_t pid;

    (void)state;
    assert_int_equal(pipe(pipefd), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct gh_config cfg;

        dup2(pipefd[1], 2);
        close(pipefd[0]);
        clearenv();
        for (const struct kv *p = base_env; p->k; p++)
            setenv(p->k, p->v, 1);
        gh_config_load_or_die(&cfg, GH_SVC_API, "prog");
        if (strcmp(cfg.database_password, "pg@pass1") != 0)
            exit(3);
        unsetenv("DATABASE_URL");
        gh_config_load_or_die(&cfg, GH_SVC_API, "prog");
        exit(0); /* not reached */
    }
    close(pipefd[1]);
    n = read(pipefd[0], buf, sizeof(buf) - 1);
    close(pipefd[0]);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 2);
    assert_true(n > 0);
    buf[n] = '\0';
    assert_non_null(strstr(buf, "prog: configuration error: DATABASE_URL: missing"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(defaults_applied),
        cmocka_unit_test(values_override_defaults),
        cmocka_unit_test(missing_required_is_named),
        cmocka_unit_test(bad_values_are_named),
        cmocka_unit_test(error_messages_never_echo_secrets),
        cmocka_unit_test(hex_key_parsed),
        cmocka_unit_test(developers_list),
        cmocka_unit_test(developers_list_is_capped),
        cmocka_unit_test(secrets_registered),
        cmocka_unit_test(table_is_complete),
        cmocka_unit_test(password_from_query_and_percent_decoding),
        cmocka_unit_test(markdown_table_documents_every_variable),
        cmocka_unit_test(load_or_die_exits_on_error),
    };

    return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
