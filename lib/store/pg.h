/* pg.h - one PostgreSQL connection with reconnect, prepared statements and a
 * statement timeout.
 *
 * A lost connection is detected on the next call (PQstatus/PQexec failure
 * with CONNECTION_BAD) and re-established once per call; prepared statements
 * are re-prepared lazily after a reconnect. Every query is parameterised. */
#ifndef GH_STORE_PG_H
#define GH_STORE_PG_H

#include <libpq-fe.h>

struct gh_logger;
struct gh_pg;

/* conninfo: a postgresql:// URL. Does not connect until first use (so a
 * process starts while PostgreSQL is down). Caller frees with gh_pg_free. */
struct gh_pg *gh_pg_new(const char *conninfo, int statement_timeout_ms, const struct gh_logger *lg);
void gh_pg_free(struct gh_pg *pg);

/* Connects if needed. GH_OK or GH_EPG. */
int gh_pg_connect(struct gh_pg *pg);
/* Health: SELECT 1 within the timeout. GH_OK or GH_EPG. */
int gh_pg_ping(struct gh_pg *pg);

/* Runs a parameterised statement (text params, NULL = SQL NULL). Returns a
 * result whose status is PGRES_COMMAND_OK or PGRES_TUPLES_OK; caller frees
 * with PQclear. NULL on failure (message in gh_pg_errmsg, logged). Retries
 * once after reconnecting when the connection was lost before the statement
 * was sent, or when the server ended the session under it (its work rolled
 * back); never inside a transaction. */
PGresult *gh_pg_exec(struct gh_pg *pg, const char *sql, int nparams, const char *const *params);
/* Same, through a named prepared statement prepared on first use on this
 * connection. name must be a static string unique per sql. */
PGresult *gh_pg_exec_prepared(struct gh_pg *pg, const char *name, const char *sql, int nparams,
                              const char *const *params);
/* Runs a script of several statements without parameters through the simple
 * query protocol (PQexec): migrations. Statements of one call run in one
 * implicit transaction unless the script has its own BEGIN/COMMIT. Result as
 * gh_pg_exec (the last statement's). */
PGresult *gh_pg_exec_script(struct gh_pg *pg, const char *sql);
/* Convenience: exec and PQclear; GH_OK or GH_EPG. */
int gh_pg_command(struct gh_pg *pg, const char *sql, int nparams, const char *const *params);
/* BEGIN / COMMIT / ROLLBACK. COMMIT of a transaction in which a statement
 * failed returns GH_EPG (SQLSTATE 25P02). After a lost connection inside a
 * transaction every call fails until ROLLBACK (GH_OK: the server already
 * rolled back). A successful ROLLBACK keeps gh_pg_errmsg/gh_pg_sqlstate of the
 * failure that caused it. */
int gh_pg_begin(struct gh_pg *pg);
int gh_pg_commit(struct gh_pg *pg);
int gh_pg_rollback(struct gh_pg *pg);

/* Last error message; valid until the next call on pg. */
const char *gh_pg_errmsg(const struct gh_pg *pg);
/* SQLSTATE of the last failure ("" if none), e.g. "23505". */
const char *gh_pg_sqlstate(const struct gh_pg *pg);
/* Borrowed raw connection (NULL when not connected). */
PGconn *gh_pg_conn(struct gh_pg *pg);

#endif
