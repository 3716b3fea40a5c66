/* test_migrate.c - the migration runner against a scratch database created
 * here (guildhall_mig_<pid>, dropped at the end): the real sql/ folder up ->
 * down all -> up, refusals (edited, out of order, missing down, missing
 * applied file, duplicate number), rollback of a failing migration, the
 * no-transaction exception, backups before destructive migrations, and lint.
 * Needs DATABASE_URL whose role may CREATE DATABASE (lint runs without it).
 * Scratch migration folders go under build/tmp/. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "core/err.h"
#include "store/migrate.h"
#include "store/pg.h"

static struct gh_pg *admin, *pg;
static char dbname[64], scratch_url[1024], tmp[256], backups[300];
static int case_no;

#define NEED_DB()                                                                                            \
    do {                                                                                                     \
        if (!pg) {                                                                                           \
            print_message("DATABASE_URL is not set: migration tests against PostgreSQL skipped\n");          \
            skip();                                                                                          \
        }                                                                                                    \
    } while (0)

/* ---- files ------------------------------------------------------------------ */

static void rm_rf(const char *path)
{
    struct stat st;
    DIR *d;
    struct dirent *e;
    char p[1024];

    if (lstat(path, &st) != 0)
        return;
    if (!S_ISDIR(st.st_mode)) {
        unlink(path);
        return;
    }
    d = opendir(path);
    while (d && (e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(p, sizeof(p), "%s/%s", path, e->d_name);
        rm_rf(p);
    }
    if (d)
        closedir(d);
    rmdir(path);
}

/* A new empty folder for one case's migrations. */
static void new_dir(char *out, size_t size)
{
    snprintf(out, size, "%s/case%d", tmp, ++case_no);
    assert_int_equal(mkdir(out, 0755), 0);
}

static void put(const char *dir, const char *name, const char *text)
{
    char p[600];
    FILE *f;

    snprintf(p, sizeof(p), "%s/%s", dir, name);
    f = fopen(p, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    fclose(f);
}

static void del(const char *dir, const char *name)
{
    char p[600];

    snprintf(p, sizeof(p), "%s/%s", dir, name);
    assert_int_equal(unlink(p), 0);
}

/* A migration with a trivial down. */
static void put_mig(const char *dir, const char *base, const char *up, const char *down)
{
    char n[200];

    snprintf(n, sizeof(n), "%s.up.sql", base);
    put(dir, n, up);
    if (down) {
        snprintf(n, sizeof(n), "%s.down.sql", base);
        put(dir, n, down);
    }
}

/* Files in dir whose name starts with prefix; the first one's path into out. */
static int find_file(const char *dir, const char *prefix, char *out, size_t size)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;

    while (d && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' || strncmp(e->d_name, prefix, strlen(prefix)) != 0)
            continue;
        if (n++ == 0 && out)
            snprintf(out, size, "%s/%s", dir, e->d_name);
    }
    if (d)
        closedir(d);
    return n;
}

static int file_contains(const char *path, const char *needle)
{
    FILE *f = fopen(path, "r");
    char *buf;
    long n;
    int found;

    if (!f)
        return 0;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = calloc(1, (size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    found = strstr(buf, needle) != NULL;
    free(buf);
    return found;
}

/* ---- running the runner --------------------------------------------------------- */

enum cmd { UP, DOWN, STATUS, LINT };

struct run {
    int rc;
    char *out, *err;
};

static struct run migrate(enum cmd c, const char *dir, int n, const char *pg_dump)
{
    struct run r = {0};
    size_t ol = 0, el = 0;
    FILE *fo = open_memstream(&r.out, &ol), *fe = open_memstream(&r.err, &el);
    struct gh_migrate_opts o = {.dir = dir,
                                .database_url = scratch_url,
                                .backup_dir = backups,
                                .pg_dump = pg_dump,
                                .out = fo,
                                .err = fe};

    assert_non_null(fo);
    assert_non_null(fe);
    switch (c) {
    case UP:
        r.rc = gh_migrate_up(pg, &o);
        break;
    case DOWN:
        r.rc = gh_migrate_down(pg, &o, n);
        break;
    case STATUS:
        r.rc = gh_migrate_status(pg, &o);
        break;
    case LINT:
        r.rc = gh_migrate_lint(&o);
        break;
    }
    fclose(fo);
    fclose(fe);
    return r;
}

static void run_free(struct run *r)
{
    free(r->out);
    free(r->err);
}

static void expect(struct run *r, int rc, const char *in_out, const char *in_err)
{
    if (r->rc != rc || (in_out && !strstr(r->out, in_out)) || (in_err && !strstr(r->err, in_err)))
        print_message("rc %d (want %d)\nout:\n%s\nerr:\n%s\n", r->rc, rc, r->out, r->err);
    assert_int_equal(r->rc, rc);
    if (in_out)
        assert_non_null(strstr(r->out, in_out));
    if (in_err)
        assert_non_null(strstr(r->err, in_err));
    run_free(r);
}

static char *scalar(const char *sql, const char *param)
{
    const char *params[1] = {param};
    PGresult *res = gh_pg_exec(pg, sql, param ? 1 : 0, params);
    char *v;

    assert_non_null(res);
    v = strdup(PQntuples(res) ? PQgetvalue(res, 0, 0) : "");
    PQclear(res);
    return v;
}

static int table_exists(const char *name)
{
    char *v = scalar("SELECT to_regclass($1) IS NOT NULL", name);
    int yes = strcmp(v, "t") == 0;

    free(v);
    return yes;
}

static int applied_count(void)
{
    char *v = scalar("SELECT count(*) FROM schema_migrations", NULL);
    int n = atoi(v);

    free(v);
    return n;
}

/* ---- setup ------------------------------------------------------------------------ */

static int setup(void **state)
{
    const char *url = getenv("DATABASE_URL");
    char sql[160];
    const char *scheme, *slash, *q;

    (void)state;
    mkdir("build", 0755);
    mkdir("build/tmp", 0755);
    snprintf(tmp, sizeof(tmp), "build/tmp/test_migrate.XXXXXX");
    if (!mkdtemp(tmp))
        return -1;
    snprintf(backups, sizeof(backups), "%s/backups", tmp);
    if (!url || !*url)
        return 0;
    /* The same URL with the scratch database's name. */
    snprintf(dbname, sizeof(dbname), "guildhall_mig_%d", (int)getpid());
    scheme = strstr(url, "://");
    slash = scheme ? strchr(scheme + 3, '/') : NULL;
    if (!slash)
        return -1;
    q = strchr(slash, '?');
    snprintf(scratch_url, sizeof(scratch_url), "%.*s/%s%s", (int)(slash - url), url, dbname, q ? q : "");
    admin = gh_pg_new(url, 0, NULL);
    snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s", dbname);
    if (gh_pg_command(admin, sql, 0, NULL) != GH_OK)
        return -1;
    snprintf(sql, sizeof(sql), "CREATE DATABASE %s", dbname);
    if (gh_pg_command(admin, sql, 0, NULL) != GH_OK) {
        fprintf(stderr, "cannot create the scratch database (the role needs CREATEDB): %s\n",
                gh_pg_errmsg(admin));
        return -1;
    }
    pg = gh_pg_new(scratch_url, 0, NULL);
    return 0;
}

static int teardown(void **state)
{
    char sql[160];

    (void)state;
    gh_pg_free(pg);
    pg = NULL;
    if (admin) {
        snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)", dbname);
        gh_pg_command(admin, sql, 0, NULL);
        gh_pg_free(admin);
    }
    rm_rf(tmp);
    return 0;
}

/* Every case starts from an empty database. */
/* Empties the backups folder, so each test counts only its own dumps (their
 * names carry a timestamp: two tests a second apart would otherwise see each
 * other's files). */
static void clear_backups(void)
{
    DIR *d = opendir(backups);
    struct dirent *e;
    char path[700];

    while (d && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "%s/%s", backups, e->d_name);
        (void)unlink(path);
    }
    if (d)
        closedir(d);
}

static int reset(void **state)
{
    (void)state;
    if (!pg)
        return 0;
    clear_backups();
    {
        PGresult *res = gh_pg_exec_script(pg, "DROP SCHEMA public CASCADE; CREATE SCHEMA public");

        if (!res)
            fprintf(stderr, "reset failed: %s\n", gh_pg_errmsg(pg));
        PQclear(res);
        return res ? 0 : -1;
    }
}

/* ---- cases ---------------------------------------------------------------------------- */

static void sha256_file(const char *path, char out[65])
{
    FILE *f = fopen(path, "rb");
    unsigned char buf[65536], md[32];
    unsigned int n = 0, i;
    size_t len;

    assert_non_null(f);
    len = fread(buf, 1, sizeof(buf), f);
    fclose(f);
    assert_int_equal(EVP_Digest(buf, len, md, &n, EVP_sha256(), NULL), 1);
    for (i = 0; i < n; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* Columns, indexes, constraints, triggers and functions of the public schema. */
static char *fingerprint(void)
{
    return scalar(
        "SELECT concat_ws('|', "
        "(SELECT string_agg(table_name || '.' || column_name || ':' || data_type || ':' || is_nullable "
        "|| ':' || coalesce(column_default, ''), ',' ORDER BY table_name, column_name) "
        "FROM information_schema.columns WHERE table_schema = 'public' AND table_name <> "
        "'schema_migrations'), "
        "(SELECT string_agg(indexdef, ',' ORDER BY indexname) FROM pg_indexes WHERE schemaname = "
        "'public' AND tablename <> 'schema_migrations'), "
        "(SELECT string_agg(conrelid::regclass || ':' || pg_get_constraintdef(oid), ',' ORDER BY "
        "conrelid::regclass::text, conname) FROM pg_constraint WHERE connamespace = 'public'::regnamespace "
        "AND conrelid <> 'schema_migrations'::regclass), "
        "(SELECT string_agg(tgrelid::regclass || ':' || tgname, ',' ORDER BY tgrelid::regclass::text, "
        "tgname) FROM pg_trigger WHERE NOT tgisinternal), "
        "(SELECT string_agg(proname, ',' ORDER BY proname) FROM pg_proc WHERE pronamespace = "
        "'public'::regnamespace))",
        NULL);
}

static void test_real_sql_up_down_up(void **state)
{
    NEED_DB();
    static const char *const tables[] = {"guilds",      "guild_settings", "authorized_users",
                                         "command_log", "audit_log",      "error_log"};
    struct run r;
    char path[600], sum[65], *v;
    PGresult *res;
    size_t i;
    int nfiles = find_file("sql", "", NULL, 0) / 2, row;

    (void)state;
    assert_true(nfiles >= 2);
    r = migrate(UP, "sql", 0, NULL);
    expect(&r, GH_OK, "the schema is current", NULL);
    for (i = 0; i < sizeof(tables) / sizeof(tables[0]); i++) {
        char q[160];

        assert_true(table_exists(tables[i]));
        snprintf(q, sizeof(q),
                 "SELECT count(*) FROM pg_trigger WHERE tgrelid = '%s'::regclass AND tgname LIKE "
                 "'%%set_updated_at'",
                 tables[i]);
        v = scalar(q, NULL);
        assert_string_equal(v, "1"); /* every table keeps updated_at */
        free(v);
    }
    /* Recorded with the checksum of each up file. */
    res = gh_pg_exec(pg, "SELECT name, checksum, duration_ms >= 0 FROM schema_migrations ORDER BY version", 0,
                     NULL);
    assert_non_null(res);
    assert_int_equal(PQntuples(res), nfiles);
    for (row = 0; row < PQntuples(res); row++) {
        snprintf(path, sizeof(path), "sql/%s.up.sql", PQgetvalue(res, row, 0));
        sha256_file(path, sum);
        assert_string_equal(PQgetvalue(res, row, 1), sum);
        assert_string_equal(PQgetvalue(res, row, 2), "t");
    }
    PQclear(res);
    /* The trigger works. */
    assert_int_equal(gh_pg_command(pg,
                                   "INSERT INTO guilds (id, created_at, updated_at) VALUES (5, now() - "
                                   "interval '1 day', now() - interval '1 day')",
                                   0, NULL),
                     GH_OK);
    assert_int_equal(gh_pg_command(pg, "UPDATE guilds SET name = 'x' WHERE id = 5", 0, NULL), GH_OK);
    v = scalar("SELECT updated_at > created_at + interval '1 hour' FROM guilds WHERE id = 5", NULL);
    assert_string_equal(v, "t");
    free(v);

    r = migrate(STATUS, "sql", 0, NULL);
    assert_null(strstr(r.out, "pending"));
    expect(&r, GH_OK, "0001     guilds_and_settings", NULL);
    r = migrate(UP, "sql", 0, NULL); /* nothing to do */
    expect(&r, GH_OK, "the schema is current", NULL);

    r = migrate(DOWN, "sql", 1000, NULL);
    expect(&r, GH_OK, "reverted 0001_guilds_and_settings", NULL);
    for (i = 0; i < sizeof(tables) / sizeof(tables[0]); i++)
        assert_false(table_exists(tables[i]));
    v = scalar("SELECT count(*) FROM pg_proc WHERE proname = 'set_updated_at'", NULL);
    assert_string_equal(v, "0");
    free(v);
    assert_int_equal(applied_count(), 0);
    /* The downs were destructive: backups of the tables they dropped. */
    assert_int_equal(find_file(backups, "0001_guilds_and_settings_down_", path, sizeof(path)), 1);
    assert_true(file_contains(path, "CREATE TABLE public.guilds"));
    assert_true(file_contains(path, "5\tx\t")); /* the row, as COPY data */

    r = migrate(STATUS, "sql", 0, NULL);
    expect(&r, GH_OK, "pending", NULL);
    r = migrate(UP, "sql", 0, NULL);
    expect(&r, GH_OK, "applied 0002_logs", NULL);
    assert_int_equal(applied_count(), nfiles);

    /* Every migration: down k then up again gives back exactly the schema. */
    {
        char *want = fingerprint();
        int k;

        for (k = 1; k <= nfiles; k++) {
            char *got;

            r = migrate(DOWN, "sql", k, NULL);
            expect(&r, GH_OK, "reverted", NULL);
            assert_int_equal(applied_count(), nfiles - k);
            r = migrate(UP, "sql", 0, NULL);
            expect(&r, GH_OK, "applied", NULL);
            got = fingerprint();
            assert_string_equal(got, want);
            free(got);
        }
        free(want);
    }
}

static void test_real_sql_lints_clean(void **state)
{
    struct run r;

    (void)state;
    r = migrate(LINT, "sql", 0, NULL);
    expect(&r, 0, "no findings", NULL);
}

static void test_edited_migration_refused(void **state)
{
    NEED_DB();
    char dir[300];
    struct run r;

    (void)state;
    new_dir(dir, sizeof(dir));
    put_mig(dir, "0001_a", "CREATE TABLE t1 (x int);\n", "DROP TABLE t1;\n");
    put_mig(dir, "0002_b", "CREATE TABLE t2 (x int);\n", "DROP TABLE t2;\n");
    r = migrate(UP, dir, 0, NULL);
    expect(&r, GH_OK, "applied 0002_b", NULL);
    put(dir, "0002_b.up.sql", "CREATE TABLE t2 (x int, y int);\n");
    r = migrate(UP, dir, 0, NULL);
    expect(&r, GH_ECONFLICT, NULL, "0002_b.up.sql was edited after it was applied");
    r = migrate(UP, dir, 0, NULL);
    expect(&r, GH_ECONFLICT, NULL, "write a new migration instead");
    r = migrate(DOWN, dir, 1, NULL);
    expect(&r, GH_ECONFLICT, NULL, "nothing was changed");
    assert_true(table_exists("t2"));
    r = migrate(STATUS, dir, 0, NULL);
    expect(&r, GH_ECONFLICT, "0002     b", "was edited");
}

static void test_out_of_order_refused(void **state)
{
    NEED_DB();
    char dir[300];
    struct run r;

    (void)state;
    new_dir(dir, sizeof(dir));
    put_mig(dir, "0001_a", "CREATE TABLE t1 (x int);\n", "DROP TABLE t1;\n");
    put_mig(dir, "0003_c", "CREATE TABLE t3 (x int);\n", "DROP TABLE t3;\n");
    r = migrate(UP, dir, 0, NULL);
    expect(&r, GH_OK, NULL, NULL);
    put_mig(dir, "0002_b", "CREATE TABLE t2 (x int);\n", "DROP TABLE t2;\n");
    r = migrate(UP, dir, 0, NULL);
    expect(&r, GH_ECONFLICT, NULL, "0002_b.up.sql is out of order");
    assert_false(table_exists("t2"));
    assert_int_equal(applied_count(), 2);
}

static void test_missing_files_refused(void **state)
{
    NEED_DB();
    char dir[300];
    struct run r;

    (void)state;
    new_dir(dir, sizeof(dir));
    put_mig(dir, "0001_a", "CREATE TABLE t1 (x int);\n", NULL); /* no down */
    r = migrate(UP, dir, 0, NULL);
    expect(&r, GH_ECONFLICT, NULL, "0001_a.up.sql has no 0001_a.down.sql");
    assert_false(table_exists("t1"));

    put(dir, "0001_a.down.sql", "DROP TABLE t1;\n");
    r = migrate(UP, dir, 0, NULL);
    expect(&r, GH_OK, NULL, NULL);
    /* An applied migration's file disappears. */
    del(dir, "0001_a.up.sql");
    del(dir, "0001_a.down.sql");
    put_mig(dir, "0002_b", "CREATE TABLE t2 (x int);\n", "DROP TABLE t2;\n");
    r = migrate(UP, dir, 0, NULL);
    expect(&r, GH_ECONFLICT, NULL, "0001_a.up.sql is missing");
    assert_false(table_exists("t2"));
    r = migrate(STATUS, dir, 0, NULL);
    expect(&r, GH_ECONFLICT, "(file missing)", NULL);

    /* Duplicate numbers and bad names. */
    put_mig(dir, "0001_a", "CREATE TABLE t1 (x int);\n", "DROP TABLE t1;\n");
    put_mig(dir, "0002_other", "SELECT 1;\n", "SELECT 1;\n");
    r = migrate(UP, dir, 0, NULL);
    expect(&r, GH_ECONFLICT, NULL, "duplicate migration number 0002");
    del(dir, "0002_other.up.sql");
    del(dir, "0002_other.down.sql");
    put(dir, "3_bad.sql", "SELECT 1;\n");
    r = migrate(UP, dir, 0, NULL);
    expect(&r, GH_ECONFLICT, NULL, "3_bad.sql: not a migration file name");
    del(dir, "3_bad.sql");
    r = migrate(UP, dir, 0, NULL);
    expect(&r, GH_OK, "applied 0002_b", NULL);
}

static void test_failed_migration_rolls_back(void **state)
{
    NEED_DB();
    char dir[300];
    struct run r;

    (void)state;
    new_dir(dir, sizeof(dir));
    put_mig(dir, "0001_a",
            "CREATE TABLE t1 (x int);\nINSERT INTO t1 VALUES (1);\n\nINSERT INTO nope VALUES (1);\n",
            "DROP TABLE t1;\n");
    r = migrate(UP, dir, 0, NULL);
    expect(&r, GH_EPG, NULL, "0001_a.up.sql:4:");
    assert_false(table_exists("t1"));
    assert_int_equal(applied_count(), 0);
    /* Transaction control inside a file is refused before anything runs. */
    put_mig(dir, "0001_a", "CREATE TABLE t1 (x int);\nCOMMIT;\n", "DROP TABLE t1;\n");
    r = migrate(UP, dir, 0, NULL);
    expect(&r, GH_ECONFLICT, NULL, "0001_a.up.sql:2: transaction control");
    assert_false(table_exists("t1"));
}

static void test_no_transaction_exception(void **state)
{
    NEED_DB();
    static const char body[] = "ALTER TYPE mood ADD VALUE IF NOT EXISTS 'great';\n"
                               "INSERT INTO t1 VALUES ('great');\n"
                               "CREATE INDEX CONCURRENTLY IF NOT EXISTS t1_m_idx ON t1 (m);\n";
    char dir[300], text[512];
    struct run r;
    char *v;

    (void)state;
    new_dir(dir, sizeof(dir));
    put_mig(dir, "0001_a", "CREATE TYPE mood AS ENUM ('ok');\nCREATE TABLE t1 (m mood);\n",
            "DROP TABLE t1;\nDROP TYPE mood;\n");
    /* In a transaction PostgreSQL refuses to use the new value. */
    put_mig(dir, "0002_b", body, "DROP INDEX t1_m_idx;\n");
    r = migrate(UP, dir, 0, NULL);
    expect(&r, GH_EPG, "applied 0001_a", "0002_b.up.sql:2:");
    assert_int_equal(applied_count(), 1);
    /* The documented exception. */
    snprintf(text, sizeof(text), "-- guildhall:no-transaction\n%s", body);
    put(dir, "0002_b.up.sql", text);
    r = migrate(UP, dir, 0, NULL);
    expect(&r, GH_OK, "outside a transaction", NULL);
    v = scalar("SELECT count(*) FROM t1 WHERE m = 'great'", NULL);
    assert_string_equal(v, "1");
    free(v);
    assert_true(table_exists("t1_m_idx"));
    assert_int_equal(applied_count(), 2);
    r = migrate(DOWN, dir, 1, NULL);
    expect(&r, GH_OK, "reverted 0002_b", NULL);
    assert_false(table_exists("t1_m_idx"));
}

static void test_backup_before_destructive(void **state)
{
    NEED_DB();
    char dir[300], path[600];
    struct run r;

    (void)state;
    new_dir(dir, sizeof(dir));
    put_mig(dir, "0001_a",
            "CREATE TABLE t1 (x int, y text);\nINSERT INTO t1 VALUES (1, 'keep me'), (2, 'b');\n",
            "DROP TABLE t1;\n");
    put_mig(dir, "0002_b", "DELETE FROM t1 WHERE x = 1;\n", "SELECT 1;\n");
    r = migrate(UP, dir, 0, NULL);
    expect(&r, GH_OK, "0002_b.up.sql is destructive: backing up 1 table(s)", NULL);
    assert_int_equal(find_file(backups, "0002_b_", path, sizeof(path)), 1);
    assert_true(file_contains(path, "CREATE TABLE public.t1"));
    assert_true(file_contains(path, "keep me"));
    /* The backup file is private. */
    {
        struct stat st;

        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_mode & 077, 0);
    }
    /* pg_dump failing stops the migration. */
    put_mig(dir, "0003_c", "DROP TABLE t1;\n", "CREATE TABLE t1 (x int, y text);\n");
    r = migrate(UP, dir, 0, "/bin/false");
    expect(&r, GH_EIO, NULL, "backup failed; 0003_c.up.sql not run");
    assert_true(table_exists("t1"));
    assert_int_equal(applied_count(), 2);
    /* A destructive migration of a table that does not exist needs no backup. */
    put_mig(dir, "0003_c", "DROP TABLE IF EXISTS t9;\n", "SELECT 1;\n");
    r = migrate(UP, dir, 0, "/bin/false");
    expect(&r, GH_OK, "no backup needed", NULL);
}

static void test_lint_findings(void **state)
{
    char dir[300];
    struct run r;

    (void)state;
    new_dir(dir, sizeof(dir));
    put_mig(dir, "0001_base",
            "CREATE TABLE t1 (id int PRIMARY KEY, a int, b int);\n"
            "CREATE INDEX t1_a_idx ON t1 (a);\n"
            "ALTER TABLE t1 ADD COLUMN c int NOT NULL;\n"
            "CREATE TABLE parent (id int PRIMARY KEY);\n"
            "ALTER TABLE t1 ADD CONSTRAINT t1_fk0 FOREIGN KEY (a) REFERENCES parent (id);\n",
            "DROP TABLE t1;\nDROP TABLE parent;\n");
    put_mig(dir, "0002_bad",
            "ALTER TABLE t1 DROP COLUMN a;\n"
            "ALTER TABLE t1 ADD COLUMN d int NOT NULL;\n"
            "ALTER TABLE t1 ADD COLUMN e int NOT NULL DEFAULT 0;\n"
            "ALTER TABLE t1 ADD CONSTRAINT t1_p_fk FOREIGN KEY (b) REFERENCES parent (id);\n"
            "CREATE INDEX t1_b_idx ON public.t1 (b);\n"
            "ALTER TABLE t1 ADD CONSTRAINT t1_q_fk FOREIGN KEY (c) REFERENCES parent (id) NOT VALID;\n"
            "-- deprecate: t1.b\n"
            "ALTER TABLE t1 ADD COLUMN f int REFERENCES parent (id);\n"
            "CREATE UNIQUE INDEX CONCURRENTLY t1_c_idx ON t1 (c);\n",
            "SELECT 1;\n");
    put_mig(
        dir, "0003_ok",
        "ALTER TABLE t1 DROP COLUMN b;\n"
        "ALTER TABLE t1 ADD CONSTRAINT t1_r_fk FOREIGN KEY (e) REFERENCES parent (id) NOT VALID;\n"
        "ALTER TABLE t1 VALIDATE CONSTRAINT t1_r_fk;\n"
        "COMMENT ON TABLE t1 IS 'DROP COLUMN x; CREATE INDEX y ON t1 (x); ALTER TABLE t1 DROP COLUMN id';\n"
        "DO $$ BEGIN EXECUTE 'ALTER TABLE t1 DROP COLUMN id'; END $$;\n"
        "/* ALTER TABLE t1 ADD COLUMN z int NOT NULL; */\n"
        "ALTER TABLE t1 ADD COLUMN g int NOT NULL DEFAULT 1, ADD COLUMN h text;\n",
        "SELECT 1;\n");
    put_mig(dir, "0004_conc",
            "-- guildhall:no-transaction\n"
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS t1_e_idx ON t1 (e);\n",
            "DROP INDEX CONCURRENTLY t1_e_idx;\n");
    r = migrate(LINT, dir, 0, NULL);
    if (r.rc != 7)
        print_message("%s\n%s\n", r.out, r.err);
    assert_int_equal(r.rc, 7);
    assert_non_null(strstr(r.out, "0002_bad.up.sql:1: DROP COLUMN t1.a without an earlier deprecation"));
    assert_non_null(strstr(r.out, "0002_bad.up.sql:2: ADD COLUMN t1.d NOT NULL without a DEFAULT"));
    assert_non_null(strstr(r.out,
                           "0002_bad.up.sql:4: foreign key t1_p_fk added to existing table t1 without NOT "
                           "VALID"));
    assert_non_null(
        strstr(r.out, "0002_bad.up.sql:5: CREATE INDEX on existing table t1 without CONCURRENTLY"));
    assert_non_null(strstr(r.out, "0002_bad.up.sql:6: foreign key t1_q_fk on t1 is added NOT VALID but never "
                                  "validated"));
    assert_non_null(strstr(r.out, "0002_bad.up.sql:8: ADD COLUMN t1.f REFERENCES"));
    assert_non_null(
        strstr(r.out, "0002_bad.up.sql:9: CREATE INDEX CONCURRENTLY cannot run inside a transaction"));
    assert_null(strstr(r.out, "0001_base"));
    assert_null(strstr(r.out, "0003_ok"));
    assert_null(strstr(r.out, "0004_conc"));
    run_free(&r);

    /* Folder problems count as findings too. */
    put(dir, "0005_x.up.sql", "SELECT 1;\n");
    r = migrate(LINT, dir, 0, NULL);
    assert_int_equal(r.rc, 8);
    assert_non_null(strstr(r.out, "0005_x.up.sql has no 0005_x.down.sql"));
    run_free(&r);
}

static void test_tool_exit_codes(void **state)
{
    const char *build = getenv("GH_BUILD");
    char bin[300], cmd[1200], dir[300];
    int st;

    (void)state;
    snprintf(bin, sizeof(bin), "%s/bin/guildhall-migrate", build && *build ? build : "build");
    if (access(bin, X_OK) != 0) {
        print_message("%s not built: tool exit codes not checked\n", bin);
        skip();
    }
    new_dir(dir, sizeof(dir));
    put_mig(dir, "0001_a", "CREATE TABLE t1 (x int);\n", "DROP TABLE t1;\n");
    snprintf(cmd, sizeof(cmd), "%s --dir %s lint >/dev/null 2>&1", bin, dir);
    st = system(cmd);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    put_mig(dir, "0002_b", "CREATE INDEX t1_x ON t1 (x);\n", "DROP INDEX t1_x;\n");
    st = system(cmd);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 1);
    snprintf(cmd, sizeof(cmd), "%s --dir %s down zero >/dev/null 2>&1", bin, dir);
    st = system(cmd);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 2);
    snprintf(cmd, sizeof(cmd), "%s frobnicate >/dev/null 2>&1", bin);
    st = system(cmd);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 2);
}

/* Broken SQL is refused with the file, the line where the construct opened
 * and what is unterminated. */
static void test_lint_unterminated(void **state)
{
    static const struct {
        const char *up, *want;
    } cases[] = {
        {"SELECT 1;\nSELECT 2 /* open\n /* nested */ still open\n",
         "0001_a.up.sql:2: unterminated /* comment"},
        {"SELECT 1;\n\nSELECT 'it''s\nopen;\n", "0001_a.up.sql:3: unterminated string"},
        {"SELECT E'\\' still open;\n", "0001_a.up.sql:1: unterminated string"},
        {"SELECT 1;\nSELECT \"col\"\"x\n", "0001_a.up.sql:2: unterminated quoted identifier"},
        {"SELECT 1;\nDO $body$ BEGIN NULL; END $other$;\n", "0001_a.up.sql:2: unterminated $$ body"},
    };
    char dir[300];
    struct run r;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        new_dir(dir, sizeof(dir));
        put_mig(dir, "0001_a", cases[i].up, "SELECT 1;\n");
        r = migrate(LINT, dir, 0, NULL);
        expect(&r, 1, cases[i].want, NULL);
    }
}

/* Strings, quoted identifiers, comments and bodies hide what is inside
 * them: none of these statements is linted as DROP COLUMN or CREATE INDEX. */
static void test_lint_lexer_hides_quoted_text(void **state)
{
    char dir[300];
    struct run r;

    (void)state;
    new_dir(dir, sizeof(dir));
    put_mig(dir, "0001_base", "CREATE TABLE t1 (id int PRIMARY KEY, a int);\n", "DROP TABLE t1;\n");
    put_mig(dir, "0002_quoted",
            "COMMENT ON TABLE t1 IS E'a \\' ; ALTER TABLE t1 DROP COLUMN a; \\\\';\n"
            "COMMENT ON TABLE t1 IS 'it''s ; CREATE INDEX x ON t1 (a); ''';\n"
            "/* outer /* inner ; ALTER TABLE t1 DROP COLUMN a; */ still comment ; */\n"
            "SELECT \"we\"\"ird;\" FROM t1;\n"
            "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT CASE WHEN 1.5e3 > 1 THEN 1 "
            "ELSE 2 END; SELECT 3; END;\n"
            "DO $fn$ BEGIN EXECUTE 'CREATE INDEX y ON t1 (a)'; END $fn$;\n"
            "PREPARE p AS SELECT $1::int;\n"
            "SELECT $x;\n"
            "SELECT 1 -- trailing ; ALTER TABLE t1 DROP COLUMN a\n;\n",
            "SELECT 1;\n");
    r = migrate(LINT, dir, 0, NULL);
    expect(&r, 0, "2 migration(s), no findings", NULL);
}

static void test_lint_more_findings(void **state)
{
    char dir[300];
    struct run r;

    (void)state;
    new_dir(dir, sizeof(dir));
    put_mig(dir, "0001_base", "CREATE TABLE t1 (id int PRIMARY KEY, a int, b int);\n", "DROP TABLE t1;\n");
    put_mig(dir, "0002_tx", "BEGIN;\nALTER TABLE t1 ADD COLUMN c int;\nCOMMIT;\n", "SELECT 1;\n");
    put_mig(dir, "0003_fk", "ALTER TABLE t1 ADD FOREIGN KEY (a) REFERENCES t1 (id) NOT VALID;\n",
            "SELECT 1;\n");
    r = migrate(LINT, dir, 0, NULL);
    if (r.rc != 3)
        print_message("%s\n%s\n", r.out, r.err);
    assert_int_equal(r.rc, 3);
    assert_non_null(strstr(r.out, "0002_tx.up.sql:1: transaction control in a migration"));
    assert_non_null(strstr(r.out, "0002_tx.up.sql:3: transaction control in a migration"));
    assert_non_null(strstr(r.out, "0003_fk.up.sql:1: name the NOT VALID foreign key on t1"));
    run_free(&r);
}

/* A deprecation written with the schema counts for a DROP COLUMN written
 * with or without it. */
static void test_lint_deprecation_with_schema(void **state)
{
    char dir[300];
    struct run r;

    (void)state;
    new_dir(dir, sizeof(dir));
    put_mig(dir, "0001_base", "CREATE TABLE t1 (id int PRIMARY KEY, a int, b int);\n", "DROP TABLE t1;\n");
    put_mig(dir, "0002_dep", "-- deprecate: public.t1.a\n--   DEPRECATE:   T1.B  \nSELECT 1;\n",
            "SELECT 1;\n");
    put_mig(dir, "0003_drop",
            "ALTER TABLE public.t1 DROP COLUMN a;\nALTER TABLE t1 DROP COLUMN IF EXISTS b;\n", "SELECT 1;\n");
    r = migrate(LINT, dir, 0, NULL);
    expect(&r, 0, "3 migration(s), no findings", NULL);
}

static void test_lint_folder_problems(void **state)
{
    char dir[300];
    struct run r;

    (void)state;
    r = migrate(LINT, "build/tmp/does-not-exist-here", 0, NULL);
    assert_int_equal(r.rc, GH_EIO);
    assert_non_null(strstr(r.out, "cannot open the migrations folder"));
    run_free(&r);
    assert_int_equal(gh_migrate_lint(NULL), GH_EINVAL);

    new_dir(dir, sizeof(dir));
    put_mig(dir, "0001_a", "SELECT 1;\n", "SELECT 1;\n");
    put_mig(dir, "0001_b", "SELECT 1;\n", "SELECT 1;\n"); /* number used twice */
    put(dir, "01_short.up.sql", "SELECT 1;\n");
    put(dir, "0002_Upper.up.sql", "SELECT 1;\n");
    put(dir, "0003_x.sql", "SELECT 1;\n");
    put(dir, "0000_zero.up.sql", "SELECT 1;\n");
    put(dir, "0004_only.down.sql", "SELECT 1;\n");
    put(dir, "notes.txt", "not sql\n");
    r = migrate(LINT, dir, 0, NULL);
    assert_int_equal(r.rc, 1); /* folder problems count as one finding */
    assert_non_null(strstr(r.out, "duplicate migration number 0001"));
    assert_non_null(strstr(r.out, "01_short.up.sql: not a migration file name"));
    assert_non_null(strstr(r.out, "0002_Upper.up.sql: not a migration file name"));
    assert_non_null(strstr(r.out, "0003_x.sql: not a migration file name"));
    assert_non_null(strstr(r.out, "0000_zero.up.sql: not a migration file name"));
    assert_non_null(strstr(r.out, "0004_only.down.sql has no 0004_only.up.sql"));
    assert_null(strstr(r.out, "notes.txt"));
    run_free(&r);
}

/* Runs a command with options of the test's own making. */
static struct run migrate_with(enum cmd c, struct gh_pg *conn, const char *dir, const char *url,
                               const char *backup_dir, const char *pg_dump)
{
    struct run r = {0};
    size_t ol = 0, el = 0;
    FILE *fo = open_memstream(&r.out, &ol), *fe = open_memstream(&r.err, &el);
    struct gh_migrate_opts o = {
        .dir = dir, .database_url = url, .backup_dir = backup_dir, .pg_dump = pg_dump, .out = fo, .err = fe};

    assert_non_null(fo);
    assert_non_null(fe);
    r.rc = c == UP     ? gh_migrate_up(conn, &o)
           : c == DOWN ? gh_migrate_down(conn, &o, 1)
                       : gh_migrate_status(conn, &o);
    fclose(fo);
    fclose(fe);
    return r;
}

/* A destructive migration runs only after a backup; every reason a backup
 * cannot be taken stops it, with the reason named, and leaves the table. */
static void test_backup_refusals(void **state)
{
    NEED_DB();
    char dir[300], notadir[400], path[600];
    struct run r;

    (void)state;
    new_dir(dir, sizeof(dir));
    put_mig(dir, "0001_a", "CREATE TABLE t1 (x int);\nINSERT INTO t1 VALUES (7);\n", "DROP TABLE t1;\n");
    r = migrate(UP, dir, 0, NULL);
    expect(&r, GH_OK, "applied 0001_a", NULL);
    put_mig(dir, "0002_b", "DROP TABLE public.t1;\n", "CREATE TABLE t1 (x int);\n");

    r = migrate_with(UP, pg, dir, NULL, backups, NULL);
    expect(&r, GH_EIO, NULL, "0002_b.up.sql is destructive and no backup can be taken");
    r = migrate_with(UP, pg, dir, scratch_url, "", NULL);
    expect(&r, GH_EIO, NULL, "no backup can be taken");
    snprintf(notadir, sizeof(notadir), "%s/0001_a.up.sql/backups", dir); /* under a regular file */
    r = migrate_with(UP, pg, dir, scratch_url, notadir, NULL);
    expect(&r, GH_EIO, NULL, "cannot create the backup folder");
    r = migrate_with(UP, pg, dir, "this is = not a conninfo '", backups, NULL);
    expect(&r, GH_EIO, NULL, "cannot parse DATABASE_URL for pg_dump");
    assert_true(table_exists("t1"));
    assert_int_equal(applied_count(), 1);

    /* With everything in place: the schema-qualified table is dumped, then dropped. */
    r = migrate(UP, dir, 0, NULL);
    expect(&r, GH_OK, "backing up 1 table(s)", NULL);
    assert_int_equal(find_file(backups, "0002_b_", path, sizeof(path)), 1);
    assert_true(file_contains(path, "CREATE TABLE public.t1"));
    assert_false(table_exists("t1"));
}

static void test_runner_refusals(void **state)
{
    NEED_DB();
    struct gh_pg *dead = gh_pg_new("postgresql://guildhall:guildhall@127.0.0.1:1/guildhall", 0, NULL);
    struct gh_migrate_opts o = {0};
    char dir[300];
    struct run r;

    (void)state;
    new_dir(dir, sizeof(dir));
    put_mig(dir, "0001_a", "BEGIN;\nCREATE TABLE t1 (x int);\nCOMMIT;\n", "DROP TABLE t1;\n");
    r = migrate(UP, dir, 0, NULL);
    expect(&r, GH_ECONFLICT, NULL, "0001_a.up.sql:1: transaction control in a migration");
    assert_false(table_exists("t1"));
    assert_int_equal(gh_migrate_up(NULL, &o), GH_EINVAL);
    assert_int_equal(gh_migrate_up(pg, NULL), GH_EINVAL);
    assert_int_equal(gh_migrate_up(pg, &o), GH_EINVAL); /* no folder */
    assert_int_equal(gh_migrate_status(pg, NULL), GH_EINVAL);
    assert_int_equal(gh_migrate_down(pg, NULL, 1), GH_EINVAL);
    /* PostgreSQL down: the runner says so. */
    put_mig(dir, "0001_a", "CREATE TABLE t1 (x int);\n", "DROP TABLE t1;\n");
    r = migrate_with(UP, dead, dir, scratch_url, backups, NULL);
    expect(&r, GH_EPG, NULL, "cannot reach PostgreSQL");
    r = migrate_with(STATUS, dead, dir, scratch_url, backups, NULL);
    expect(&r, GH_EPG, NULL, "cannot reach PostgreSQL");
    /* A folder that cannot be read. */
    r = migrate_with(UP, pg, "build/tmp/no-such-folder", scratch_url, backups, NULL);
    expect(&r, GH_EIO, NULL, "cannot open the migrations folder");
    gh_pg_free(dead);
}

/* Every destructive form is backed up first: TRUNCATE of several tables
 * (one in another schema), ALTER COLUMN ... TYPE on a quoted table name,
 * DROP COLUMN. */
static void test_destructive_forms_backed_up(void **state)
{
    NEED_DB();
    char dir[300], path[600];
    struct run r;

    (void)state;
    new_dir(dir, sizeof(dir));
    put_mig(
        dir, "0001_a",
        "CREATE SCHEMA s2;\nCREATE TABLE s2.t2 (x int);\nCREATE TABLE \"Quoted\" (v int);\n"
        "CREATE TABLE t3 (a int, b int);\nINSERT INTO s2.t2 VALUES (1);\nINSERT INTO \"Quoted\" VALUES (2);\n"
        "INSERT INTO t3 VALUES (3, 4);\n",
        "DROP TABLE t3;\nDROP TABLE \"Quoted\";\nDROP SCHEMA s2 CASCADE;\n");
    r = migrate(UP, dir, 0, NULL);
    expect(&r, GH_OK, "applied 0001_a", NULL);

    put_mig(dir, "0002_trunc", "TRUNCATE TABLE ONLY s2.t2, t3 *;\n", "SELECT 1;\n");
    r = migrate(UP, dir, 0, NULL);
    expect(&r, GH_OK, "0002_trunc.up.sql is destructive: backing up 2 table(s)", NULL);
    assert_int_equal(find_file(backups, "0002_trunc_", path, sizeof(path)), 1);
    assert_true(file_contains(path, "CREATE TABLE s2.t2"));
    assert_true(file_contains(path, "CREATE TABLE public.t3"));

    put_mig(dir, "0003_qtype", "ALTER TABLE \"Quoted\" ALTER COLUMN v TYPE bigint;\n", "SELECT 1;\n");
    r = migrate(UP, dir, 0, NULL);
    expect(&r, GH_OK, "0003_qtype.up.sql is destructive: backing up 1 table(s)", NULL);
    assert_int_equal(find_file(backups, "0003_qtype_", path, sizeof(path)), 1);
    assert_true(file_contains(path, "CREATE TABLE public.\"Quoted\""));

    put_mig(dir, "0004_dropcol", "ALTER TABLE ONLY t3 DROP COLUMN b;\n",
            "ALTER TABLE t3 ADD COLUMN b int;\n");
    r = migrate(UP, dir, 0, NULL);
    expect(&r, GH_OK, "0004_dropcol.up.sql is destructive: backing up 1 table(s)", NULL);
    assert_int_equal(applied_count(), 4);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_real_sql_up_down_up, reset),
        cmocka_unit_test(test_real_sql_lints_clean),
        cmocka_unit_test_setup(test_edited_migration_refused, reset),
        cmocka_unit_test_setup(test_out_of_order_refused, reset),
        cmocka_unit_test_setup(test_missing_files_refused, reset),
        cmocka_unit_test_setup(test_failed_migration_rolls_back, reset),
        cmocka_unit_test_setup(test_no_transaction_exception, reset),
        cmocka_unit_test_setup(test_backup_before_destructive, reset),
        cmocka_unit_test(test_lint_findings),
        cmocka_unit_test_setup(test_backup_refusals, reset),
        cmocka_unit_test_setup(test_runner_refusals, reset),
        cmocka_unit_test_setup(test_destructive_forms_backed_up, reset),
        cmocka_unit_test(test_lint_unterminated),
        cmocka_unit_test(test_lint_lexer_hides_quoted_text),
        cmocka_unit_test(test_lint_more_findings),
        cmocka_unit_test(test_lint_deprecation_with_schema),
        cmocka_unit_test(test_lint_folder_problems),
        cmocka_unit_test(test_tool_exit_codes),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
