/* migrate.h - schema migrations: sql/NNNN_name.up.sql + NNNN_name.down.sql.
 *
 * Applied migrations are recorded in schema_migrations (version, name,
 * checksum = sha256 hex of the up file, applied_at, duration_ms). Every
 * command first checks the files against that record and refuses, naming
 * the file, when an applied migration was edited, renamed or deleted, when a
 * pending one is numbered below the highest applied one, when a number is
 * used twice, or when an up file has no down file. Rules, the no-transaction
 * exception and the backups taken before destructive migrations are
 * described at the top of migrate.c. */
#ifndef GH_STORE_MIGRATE_H
#define GH_STORE_MIGRATE_H

#include <stdio.h>

struct gh_pg;

struct gh_migrate_opts {
    const char *dir;          /* folder of the .sql files */
    const char *database_url; /* handed to pg_dump for backups (password via the environment,
                               * never argv); NULL refuses destructive migrations */
    const char *backup_dir;   /* where backups go (created if missing) */
    const char *pg_dump;      /* NULL: $(pg_config --bindir)/pg_dump, then
                               * /usr/lib/postgresql/15/bin/pg_dump, then PATH */
    FILE *out;                /* progress and status (borrowed; NULL = stdout) */
    FILE *err;                /* messages for the person (borrowed; NULL = stderr) */
};

/* pg: a connection without a statement timeout (gh_pg_new(url, 0, lg)).
 * Each returns GH_OK, GH_ECONFLICT (refused: the reason is on o->err),
 * GH_EPG (a statement failed: file and line on o->err), GH_EIO (files,
 * pg_dump) or GH_EINVAL. All take pg_advisory_lock so runners never race. */
int gh_migrate_up(struct gh_pg *pg, const struct gh_migrate_opts *o);
/* Reverts the last n applied migrations, newest first (fewer if fewer are applied). */
int gh_migrate_down(struct gh_pg *pg, const struct gh_migrate_opts *o, int n);
/* One line per migration: version, name, applied time or "pending"; then the
 * problems, if any (GH_ECONFLICT). */
int gh_migrate_status(struct gh_pg *pg, const struct gh_migrate_opts *o);
/* Checks the up files for unsafe patterns without a database. Prints
 * "<file>:<line>: <finding>" per finding; returns how many (0 = clean), or a
 * negative gh_err when the folder cannot be read. */
int gh_migrate_lint(const struct gh_migrate_opts *o);

#endif
