/* test_pg.c - the PostgreSQL connection: parameters, errors with SQLSTATE,
 * reconnect after the backend is terminated, prepared statements across a
 * reconnect, the refusal to continue a transaction on a new connection, the
 * statement timeout. Needs DATABASE_URL (skips without it). */
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

#include "core/err.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "store/pg.h"

static struct gh_log_sink sink;
static struct gh_logger lg;

#define NEED_DB()                                                                                            \
    const char *url = getenv("DATABASE_URL");                                                                \
    do {                                                                                                     \
        if (!url || !*url) {                                                                                 \
            print_message("DATABASE_URL is not set: PostgreSQL tests skipped\n");                            \
            skip();                                                                                          \
        }                                                                                                    \
    } while (0)

static int setup(void **state)
{
    (void)state;
    if (gh_log_sink_init(&sink, "test_pg", GH_LOG_WARN, NULL, 0, 0) != GH_OK)
        return -1;
    gh_logger_init(&lg, &sink, "pg");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    gh_log_sink_cleanup(&sink);
    return 0;
}

static char *scalar(struct gh_pg *pg, const char *sql, int n, const char *const *params)
{
    PGresult *res = gh_pg_exec(pg, sql, n, params);
    char *v;

    if (!res)
        return NULL;
    v = strdup(PQntuples(res) > 0 ? PQgetvalue(res, 0, 0) : "");
    PQclear(res);
    return v;
}

static int backend_pid(struct gh_pg *pg)
{
    char *v = scalar(pg, "SELECT pg_backend_pid()", 0, NULL);
    int pid = v ? atoi(v) : -1;

    free(v);
    return pid;
}

/* Terminates pid's backend from another connection and waits until it is gone. */
static void terminate(const char *url, int pid)
{
    struct gh_pg *killer = gh_pg_new(url, 5000, &lg);
    char p[16];
    const char *params[1] = {p};
    char *v;
    int i;

    assert_non_null(killer);
    snprintf(p, sizeof(p), "%d", pid);
    v = scalar(killer, "SELECT pg_terminate_backend($1::int)", 1, params);
    assert_non_null(v);
    assert_string_equal(v, "t");
    free(v);
    for (i = 0; i < 500; i++) {
        v = scalar(killer, "SELECT count(*) FROM pg_stat_activity WHERE pid = $1::int", 1, params);
        assert_non_null(v);
        if (strcmp(v, "0") == 0) {
            free(v);
            break;
        }
        free(v);
        usleep(10000);
    }
    assert_true(i < 500);
    gh_pg_free(killer);
}

static void test_lazy_and_params(void **state)
{
    NEED_DB();
    struct gh_pg *pg = gh_pg_new(url, 5000, &lg);
    const char *params[2] = {"41", NULL};
    PGresult *res;

    (void)state;
    assert_non_null(pg);
    assert_null(gh_pg_conn(pg)); /* nothing until first use */
    res = gh_pg_exec(pg, "SELECT $1::int + 1, $2::text IS NULL", 2, params);
    assert_non_null(res);
    assert_string_equal(PQgetvalue(res, 0, 0), "42");
    assert_string_equal(PQgetvalue(res, 0, 1), "t");
    PQclear(res);
    assert_non_null(gh_pg_conn(pg));
    assert_int_equal(gh_pg_ping(pg), GH_OK);
    assert_string_equal(gh_pg_sqlstate(pg), "");
    gh_pg_free(pg);
}

static void test_errors_carry_sqlstate(void **state)
{
    NEED_DB();
    struct gh_pg *pg = gh_pg_new(url, 5000, &lg);

    (void)state;
    assert_null(gh_pg_exec(pg, "SELECT 1 / 0", 0, NULL));
    assert_string_equal(gh_pg_sqlstate(pg), "22012");
    assert_non_null(strstr(gh_pg_errmsg(pg), "division by zero"));
    assert_int_equal(gh_pg_command(pg, "SELEC 1", 0, NULL), GH_EPG);
    assert_string_equal(gh_pg_sqlstate(pg), "42601");
    /* The connection is still good, and success clears the error. */
    assert_int_equal(gh_pg_ping(pg), GH_OK);
    assert_string_equal(gh_pg_sqlstate(pg), "");
    gh_pg_free(pg);
}

static void test_connect_failure(void **state)
{
    struct gh_pg *pg = gh_pg_new("postgresql://guildhall:guildhall@127.0.0.1:1/guildhall", 5000, &lg);
    int64_t t0 = gh_mono_ms();

    (void)state;
    assert_non_null(pg);
    assert_int_equal(gh_pg_ping(pg), GH_EPG);
    assert_string_equal(gh_pg_sqlstate(pg), "08001");
    assert_true(strlen(gh_pg_errmsg(pg)) > 0);
    assert_null(gh_pg_conn(pg));
    assert_true(gh_mono_ms() - t0 < 3500);
    gh_pg_free(pg);
    assert_null(gh_pg_new("", 5000, &lg));
    gh_pg_free(NULL);
}

static void test_reconnect_after_terminate(void **state)
{
    NEED_DB();
    struct gh_pg *pg = gh_pg_new(url, 5000, &lg);
    int pid1, pid2;
    char *v;

    (void)state;
    pid1 = backend_pid(pg);
    assert_true(pid1 > 0);
    terminate(url, pid1);
    v = scalar(pg, "SELECT 'alive'", 0, NULL); /* the next exec succeeds */
    assert_non_null(v);
    assert_string_equal(v, "alive");
    free(v);
    pid2 = backend_pid(pg);
    assert_true(pid2 > 0);
    assert_int_not_equal(pid1, pid2);
    gh_pg_free(pg);
}

/* The backend is terminated while it runs our statement: the server says so
 * (57P01), nothing was committed, and the statement is retried once. */
static void test_terminated_mid_statement_retried(void **state)
{
    NEED_DB();
    struct gh_pg *pg = gh_pg_new(url, 10000, &lg);
    int pid = backend_pid(pg), status = 0;
    pid_t child;
    char *v;

    (void)state;
    assert_true(pid > 0);
    child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        struct gh_pg *killer = gh_pg_new(url, 5000, NULL);
        char p[16];
        const char *params[1] = {p};
        int i;

        snprintf(p, sizeof(p), "%d", pid);
        for (i = 0; i < 1000; i++) { /* until our statement is running */
            char *busy = scalar(killer,
                                "SELECT count(*) FROM pg_stat_activity WHERE pid = $1::int AND "
                                "query LIKE 'SELECT pg_sleep%'",
                                1, params);
            int go = busy && strcmp(busy, "1") == 0;

            free(busy);
            if (go)
                break;
            usleep(5000);
        }
        if (i == 1000)
            _exit(2);
        v = scalar(killer, "SELECT pg_terminate_backend($1::int)", 1, params);
        _exit(v && strcmp(v, "t") == 0 ? 0 : 1);
    }
    v = scalar(pg, "SELECT pg_sleep(0.5)::text || 'done'", 0, NULL);
    assert_int_equal(waitpid(child, &status, 0), child);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_non_null(v);
    assert_string_equal(v, "done");
    free(v);
    assert_int_not_equal(backend_pid(pg), pid);
    gh_pg_free(pg);
}

static void test_prepared_survive_reconnect(void **state)
{
    NEED_DB();
    struct gh_pg *pg = gh_pg_new(url, 5000, &lg);
    const char *params[1] = {"ab"};
    PGresult *res;
    int pid;

    (void)state;
    res = gh_pg_exec_prepared(pg, "t_concat", "SELECT $1::text || 'c'", 1, params);
    assert_non_null(res);
    assert_string_equal(PQgetvalue(res, 0, 0), "abc");
    PQclear(res);
    /* Second use on the same connection: already prepared. */
    res = gh_pg_exec_prepared(pg, "t_concat", "SELECT $1::text || 'c'", 1, params);
    assert_non_null(res);
    PQclear(res);
    pid = backend_pid(pg);
    terminate(url, pid);
    res = gh_pg_exec_prepared(pg, "t_concat", "SELECT $1::text || 'c'", 1, params);
    assert_non_null(res);
    assert_string_equal(PQgetvalue(res, 0, 0), "abc");
    PQclear(res);
    assert_int_not_equal(backend_pid(pg), pid);
    /* Deallocated behind our back: prepared again. */
    assert_int_equal(gh_pg_command(pg, "DEALLOCATE t_concat", 0, NULL), GH_OK);
    res = gh_pg_exec_prepared(pg, "t_concat", "SELECT $1::text || 'c'", 1, params);
    assert_non_null(res);
    PQclear(res);
    gh_pg_free(pg);
}

static void test_lost_transaction_is_not_continued(void **state)
{
    NEED_DB();
    struct gh_pg *pg = gh_pg_new(url, 5000, &lg);
    char tbl[64], sql[160];
    char *v;

    (void)state;
    snprintf(tbl, sizeof(tbl), "t_pg_tx_%d", (int)getpid());
    snprintf(sql, sizeof(sql), "CREATE TABLE %s (x int)", tbl);
    assert_int_equal(gh_pg_command(pg, sql, 0, NULL), GH_OK);
    assert_int_equal(gh_pg_begin(pg), GH_OK);
    snprintf(sql, sizeof(sql), "INSERT INTO %s VALUES (1)", tbl);
    assert_int_equal(gh_pg_command(pg, sql, 0, NULL), GH_OK);
    terminate(url, backend_pid(pg));
    /* Neither the next statement nor COMMIT may run on a new connection. */
    assert_int_equal(gh_pg_command(pg, sql, 0, NULL), GH_EPG);
    assert_int_equal(gh_pg_commit(pg), GH_EPG);
    assert_int_equal(gh_pg_rollback(pg), GH_OK);
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s", tbl);
    v = scalar(pg, sql, 0, NULL);
    assert_non_null(v);
    assert_string_equal(v, "0");
    free(v);
    snprintf(sql, sizeof(sql), "DROP TABLE %s", tbl);
    assert_int_equal(gh_pg_command(pg, sql, 0, NULL), GH_OK);
    gh_pg_free(pg);
}

static void test_commit_of_failed_transaction_fails(void **state)
{
    NEED_DB();
    struct gh_pg *pg = gh_pg_new(url, 5000, &lg);

    (void)state;
    assert_int_equal(gh_pg_begin(pg), GH_OK);
    assert_int_equal(gh_pg_command(pg, "SELECT 1 / 0", 0, NULL), GH_EPG);
    assert_int_equal(gh_pg_commit(pg), GH_EPG); /* the server answered ROLLBACK */
    assert_int_equal(gh_pg_rollback(pg), GH_OK);
    assert_int_equal(gh_pg_ping(pg), GH_OK);
    /* ROLLBACK keeps the error that caused it. */
    assert_int_equal(gh_pg_begin(pg), GH_OK);
    assert_int_equal(gh_pg_command(pg, "SELECT 1 / 0", 0, NULL), GH_EPG);
    assert_int_equal(gh_pg_rollback(pg), GH_OK);
    assert_string_equal(gh_pg_sqlstate(pg), "22012");
    assert_int_equal(gh_pg_ping(pg), GH_OK);
    gh_pg_free(pg);
}

static void test_statement_timeout(void **state)
{
    NEED_DB();
    struct gh_pg *pg = gh_pg_new(url, 200, &lg);
    int64_t t0;
    char *v;

    (void)state;
    v = scalar(pg, "SHOW statement_timeout", 0, NULL);
    assert_non_null(v);
    assert_string_equal(v, "200ms");
    free(v);
    t0 = gh_mono_ms();
    assert_null(gh_pg_exec(pg, "SELECT pg_sleep(3)", 0, NULL));
    assert_true(gh_mono_ms() - t0 < 2000);
    assert_string_equal(gh_pg_sqlstate(pg), "57014"); /* query_canceled */
    assert_int_equal(gh_pg_ping(pg), GH_OK);          /* same connection, still usable */
    gh_pg_free(pg);
}

static void test_script(void **state)
{
    NEED_DB();
    struct gh_pg *pg = gh_pg_new(url, 5000, &lg);
    PGresult *res;

    (void)state;
    res = gh_pg_exec_script(pg, "SELECT 1; SELECT 2");
    assert_non_null(res);
    assert_string_equal(PQgetvalue(res, 0, 0), "2");
    PQclear(res);
    gh_pg_free(pg);
}

static void test_invalid_arguments(void **state)
{
    struct gh_pg *pg = gh_pg_new("postgresql://127.0.0.1:1/none", 5000, &lg);
    const char *params[1] = {"x"};

    (void)state;
    assert_null(gh_pg_new(NULL, 5000, &lg));
    assert_null(gh_pg_exec(NULL, "SELECT 1", 0, NULL));
    assert_int_equal(gh_pg_connect(NULL), GH_EINVAL);
    assert_int_equal(gh_pg_begin(NULL), GH_EINVAL);
    assert_int_equal(gh_pg_commit(NULL), GH_EINVAL);
    assert_int_equal(gh_pg_rollback(NULL), GH_EINVAL);
    assert_string_equal(gh_pg_errmsg(NULL), "no connection object");
    assert_string_equal(gh_pg_sqlstate(NULL), "");
    assert_null(gh_pg_conn(NULL));
    /* Bad arguments are refused before any connection is tried. */
    assert_null(gh_pg_exec(pg, NULL, 0, NULL));
    assert_string_equal(gh_pg_errmsg(pg), "invalid arguments");
    assert_null(gh_pg_exec(pg, "SELECT $1", 1, NULL));
    assert_string_equal(gh_pg_errmsg(pg), "invalid arguments");
    assert_null(gh_pg_exec(pg, "SELECT 1", -1, params));
    assert_null(gh_pg_exec_prepared(pg, NULL, "SELECT 1", 0, NULL));
    assert_string_equal(gh_pg_errmsg(pg), "invalid arguments");
    assert_null(gh_pg_conn(pg));
    /* Nothing to roll back without a connection. */
    assert_int_equal(gh_pg_rollback(pg), GH_OK);
    gh_pg_free(pg);
}

static void test_integrity_and_prepare_errors(void **state)
{
    NEED_DB();
    struct gh_pg *pg = gh_pg_new(url, 5000, &lg);
    const char *params[1] = {"1"};
    PGresult *res;

    (void)state;
    assert_int_equal(gh_pg_command(pg, "CREATE TEMP TABLE t_uniq (x int PRIMARY KEY)", 0, NULL), GH_OK);
    assert_int_equal(gh_pg_command(pg, "INSERT INTO t_uniq VALUES ($1::int)", 1, params), GH_OK);
    assert_int_equal(gh_pg_command(pg, "INSERT INTO t_uniq VALUES ($1::int)", 1, params), GH_EPG);
    assert_string_equal(gh_pg_sqlstate(pg), "23505");
    assert_non_null(strstr(gh_pg_errmsg(pg), "duplicate key"));
    /* A statement that cannot be prepared fails with the server's SQLSTATE ... */
    assert_null(gh_pg_exec_prepared(pg, "t_bad", "SELEC $1", 1, params));
    assert_string_equal(gh_pg_sqlstate(pg), "42601");
    /* ... is not remembered as prepared, and the same name works with good SQL. */
    res = gh_pg_exec_prepared(pg, "t_bad", "SELECT $1::int * 2", 1, params);
    assert_non_null(res);
    assert_string_equal(PQgetvalue(res, 0, 0), "2");
    PQclear(res);
    /* A prepared statement failing at execution keeps the connection. */
    assert_null(gh_pg_exec_prepared(pg, "t_div", "SELECT 1 / ($1::int - 1)", 1, params));
    assert_string_equal(gh_pg_sqlstate(pg), "22012");
    assert_int_equal(gh_pg_ping(pg), GH_OK);
    gh_pg_free(pg);
}

static void test_prepared_cap(void **state)
{
    NEED_DB();
    struct gh_pg *pg = gh_pg_new(url, 5000, &lg);
    char name[32];
    PGresult *res;
    int i;

    (void)state;
    for (i = 0; i < 256; i++) {
        snprintf(name, sizeof(name), "t_cap_%d", i);
        res = gh_pg_exec_prepared(pg, name, "SELECT 1", 0, NULL);
        assert_non_null(res);
        PQclear(res);
    }
    /* One more name than a connection remembers: refused with a clear message. */
    assert_null(gh_pg_exec_prepared(pg, "t_cap_256", "SELECT 1", 0, NULL));
    assert_string_equal(gh_pg_errmsg(pg), "too many prepared statements on one connection");
    /* Known names still run. */
    res = gh_pg_exec_prepared(pg, "t_cap_7", "SELECT 1", 0, NULL);
    assert_non_null(res);
    PQclear(res);
    gh_pg_free(pg);
}

static void test_notices_are_logged(void **state)
{
    NEED_DB();
    struct gh_log_sink fsink;
    struct gh_logger flg;
    char path[] = "/tmp/gh_test_pg_log_XXXXXX";
    char buf[8192];
    struct gh_pg *pg;
    FILE *f;
    size_t n;
    int fd = mkstemp(path);

    (void)state;
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(gh_log_sink_init(&fsink, "test_pg", GH_LOG_DEBUG, path, 0, 0), GH_OK);
    gh_logger_init(&flg, &fsink, "pg");
    pg = gh_pg_new(url, 5000, &flg);
    assert_int_equal(gh_pg_command(pg, "DO $$BEGIN RAISE WARNING 'careful-%', 42; END$$", 0, NULL), GH_OK);
    assert_int_equal(gh_pg_command(pg, "SELECT 1 / 0", 0, NULL), GH_EPG);
    gh_pg_free(pg);
    gh_log_sink_cleanup(&fsink);
    f = fopen(path, "r");
    assert_non_null(f);
    n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    fclose(f);
    unlink(path);
    assert_non_null(strstr(buf, "postgres WARNING: careful-42"));
    assert_non_null(strstr(buf, "\"sqlstate\":\"22012\""));
    assert_non_null(strstr(buf, "division by zero"));
}

static void test_connect_checks_the_connection(void **state)
{
    NEED_DB();
    struct gh_pg *pg = gh_pg_new(url, 5000, &lg);
    int pid1, pid2;

    (void)state;
    assert_int_equal(gh_pg_connect(pg), GH_OK);
    assert_non_null(gh_pg_conn(pg));
    pid1 = backend_pid(pg);
    assert_int_equal(gh_pg_connect(pg), GH_OK); /* alive: kept */
    assert_int_equal(backend_pid(pg), pid1);
    terminate(url, pid1);
    assert_int_equal(gh_pg_connect(pg), GH_OK); /* dead: replaced */
    pid2 = backend_pid(pg);
    assert_true(pid2 > 0);
    assert_int_not_equal(pid2, pid1);
    /* Lost inside a transaction: connect replaces it, but statements are
     * refused until the caller rolls back. */
    assert_int_equal(gh_pg_begin(pg), GH_OK);
    terminate(url, pid2);
    assert_int_equal(gh_pg_connect(pg), GH_OK);
    assert_int_equal(gh_pg_ping(pg), GH_EPG);
    assert_non_null(strstr(gh_pg_errmsg(pg), "roll back"));
    assert_int_equal(gh_pg_rollback(pg), GH_OK);
    assert_int_equal(gh_pg_ping(pg), GH_OK);
    /* Rolling back with nothing open is a no-op. */
    assert_int_equal(gh_pg_rollback(pg), GH_OK);
    gh_pg_free(pg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lazy_and_params),
        cmocka_unit_test(test_errors_carry_sqlstate),
        cmocka_unit_test(test_connect_failure),
        cmocka_unit_test(test_reconnect_after_terminate),
        cmocka_unit_test(test_terminated_mid_statement_retried),
        cmocka_unit_test(test_prepared_survive_reconnect),
        cmocka_unit_test(test_lost_transaction_is_not_continued),
        cmocka_unit_test(test_commit_of_failed_transaction_fails),
        cmocka_unit_test(test_statement_timeout),
        cmocka_unit_test(test_script),
        cmocka_unit_test(test_invalid_arguments),
        cmocka_unit_test(test_integrity_and_prepare_errors),
        cmocka_unit_test(test_prepared_cap),
        cmocka_unit_test(test_notices_are_logged),
        cmocka_unit_test(test_connect_checks_the_connection),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
