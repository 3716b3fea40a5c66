/* guildhall-migrate - applies, reverts, lists and lints schema migrations.
 *
 *   guildhall-migrate [--dir sql] up | down N | status | lint
 *
 * DATABASE_URL (and the rest of the configuration) from the environment;
 * lint needs no database. Backups of destructive migrations go to
 * $GH_BACKUP_DIR, else $GH_RUN_DIR/backups, else ./backups. Exit status: 0
 * done (lint: clean), 1 failed or refused (lint: findings), 2 usage or
 * configuration. The rules are described in lib/store/migrate.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/err.h"
#include "core/log.h"
#include "core/str.h"
#include "store/migrate.h"
#include "store/pg.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: guildhall-migrate [--dir DIR] up | down N | status | lint\n"
               "  up        apply every pending migration, in order\n"
               "  down N    revert the last N applied migrations\n"
               "  status    list migrations: version, name, applied time or pending\n"
               "  lint      check the up files for unsafe patterns (no database needed)\n"
               "DATABASE_URL comes from the environment; DIR defaults to sql.\n");
}

int main(int argc, char **argv)
{
    static struct gh_config cfg;
    struct gh_log_sink sink;
    struct gh_logger lg;
    struct gh_migrate_opts o = {.dir = "sql", .out = stdout, .err = stderr};
    struct gh_pg *pg = NULL;
    const char *cmd = NULL, *backup_env;
    char backup_dir[1024];
    enum gh_log_level lvl = GH_LOG_WARN;
    long down_n = 0;
    int i, rc;

    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc) {
            o.dir = argv[++i];
        } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (!cmd) {
            cmd = argv[i];
            if (strcmp(cmd, "down") == 0) {
                char *end = NULL;

                if (i + 1 >= argc) {
                    fprintf(stderr, "guildhall-migrate: down needs a count, e.g. 'down 1'\n");
                    return 2;
                }
                down_n = strtol(argv[++i], &end, 10);
                if (!end || *end || down_n < 1 || down_n > 100000) {
                    fprintf(stderr, "guildhall-migrate: down N: N must be a whole number >= 1, got '%s'\n",
                            argv[i]);
                    return 2;
                }
            } else if (strcmp(cmd, "up") != 0 && strcmp(cmd, "status") != 0 && strcmp(cmd, "lint") != 0) {
                fprintf(stderr, "guildhall-migrate: unknown command '%s'\n", cmd);
                usage(stderr);
                return 2;
            }
        } else {
            fprintf(stderr, "guildhall-migrate: unexpected argument '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (!cmd) {
        usage(stderr);
        return 2;
    }
    if (strcmp(cmd, "lint") == 0)
        return gh_migrate_lint(&o) == 0 ? 0 : 1;

    gh_config_load_or_die(&cfg, GH_SVC_TOOL, "guildhall-migrate");
    (void)gh_log_level_parse(cfg.log_level, &lvl);
    if (gh_log_sink_init(&sink, "migrate", lvl, NULL, 0, 0) != GH_OK) {
        fprintf(stderr, "guildhall-migrate: cannot set up logging\n");
        return 2;
    }
    gh_log_sink_add_secret(&sink, cfg.database_url);
    gh_logger_init(&lg, &sink, "migrate");

    /* Wiring, not a module: the one variable outside the config table. */
    backup_env = getenv("GH_BACKUP_DIR");
    if (backup_env && *backup_env)
        rc = gh_snprintf(backup_dir, sizeof(backup_dir), "%s", backup_env);
    else if (cfg.run_dir[0])
        rc = gh_snprintf(backup_dir, sizeof(backup_dir), "%s/backups", cfg.run_dir);
    else
        rc = gh_snprintf(backup_dir, sizeof(backup_dir), "backups");
    if (rc != GH_OK) {
        fprintf(stderr, "guildhall-migrate: GH_BACKUP_DIR: path too long\n");
        rc = 2;
        goto out;
    }
    o.backup_dir = backup_dir;
    o.database_url = cfg.database_url;

    /* Migrations may run long: no statement timeout. */
    pg = gh_pg_new(cfg.database_url, 0, &lg);
    if (!pg) {
        fprintf(stderr, "guildhall-migrate: out of memory\n");
        rc = 2;
        goto out;
    }
    if (gh_pg_connect(pg) != GH_OK) {
        fprintf(stderr, "guildhall-migrate: cannot connect to PostgreSQL (DATABASE_URL): %s\n",
                gh_pg_errmsg(pg));
        rc = 1;
        goto out;
    }
    if (strcmp(cmd, "up") == 0)
        rc = gh_migrate_up(pg, &o);
    else if (strcmp(cmd, "down") == 0)
        rc = gh_migrate_down(pg, &o, (int)down_n);
    else
        rc = gh_migrate_status(pg, &o);
    rc = rc == GH_OK ? 0 : 1;
out:
    gh_pg_free(pg);
    gh_log_sink_cleanup(&sink);
    return rc;
}
