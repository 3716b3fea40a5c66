/* pg.c - one PostgreSQL connection with reconnect, prepared statements and a
 * statement timeout.
 *
 * Connecting is lazy: the first call connects (connect_timeout=3 and
 * options=-c statement_timeout=<ms> are added to the URL's parameters), so a
 * process starts while PostgreSQL is down.
 *
 * Lost connections. Before each statement an idle connection is checked
 * without blocking (poll the socket: a healthy idle connection has nothing to
 * read; a terminated backend has sent its FATAL message and closed). A dead
 * connection found there is replaced before the statement is sent. A
 * statement that fails because the connection broke while it ran is retried
 * once on a new connection only when the server said it ended the session
 * (SQLSTATE 57P01..57P03, or a FATAL notice: what ran was rolled back),
 * because after a silent drop we cannot know whether it ran. Never inside a
 * transaction: if the connection is lost inside BEGIN..COMMIT, every call
 * fails until the caller rolls back (a COMMIT on a fresh connection would
 * otherwise "succeed" with nothing in it).
 *
 * Prepared statements are per connection: the names prepared on the current
 * connection are kept in a small array, cleared on reconnect, and a
 * statement is (re)prepared on its first use after that. */
#include "store/pg.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "core/err.h"
#include "core/log.h"
#include "core/str.h"

#define PG_CONNECT_TIMEOUT "3"
#define PG_MAX_PREPARED 256

struct gh_pg {
    char *conninfo;
    char options[64];
    const struct gh_logger *lg;
    PGconn *conn;
    char **prepared; /* names prepared on conn */
    size_t n_prepared;
    size_t cap_prepared;
    int tx_lost;    /* connection lost inside a transaction: only ROLLBACK/BEGIN clear it */
    int fatal_seen; /* the server sent FATAL outside a query: it is closing the session */
    char errmsg[512];
    char sqlstate[6];
};

/* ---- errors and logging ---------------------------------------------- */

static void set_error(struct gh_pg *pg, const char *sqlstate, const char *msg)
{
    size_t n;

    snprintf(pg->sqlstate, sizeof(pg->sqlstate), "%s", sqlstate ? sqlstate : "");
    snprintf(pg->errmsg, sizeof(pg->errmsg), "%s", msg ? msg : "unknown error");
    n = strlen(pg->errmsg);
    while (n > 0 && (pg->errmsg[n - 1] == '\n' || pg->errmsg[n - 1] == ' '))
        pg->errmsg[--n] = '\0';
}

static void clear_error(struct gh_pg *pg)
{
    pg->errmsg[0] = '\0';
    pg->sqlstate[0] = '\0';
}

/* Logs the last error with its SQLSTATE and the statement's name (or the
 * first words of the SQL; never the parameters). Integrity and serialization
 * failures (classes 23, 40) are the caller's to handle: logged as warnings. */
static void log_error(const struct gh_pg *pg, const char *what, const char *stmt)
{
    json_object *extra = NULL;
    enum gh_log_level lvl = GH_LOG_ERROR;
    char head[64];

    if (!pg->lg || !pg->lg->sink)
        return;
    if (strncmp(pg->sqlstate, "23", 2) == 0 || strncmp(pg->sqlstate, "40", 2) == 0)
        lvl = GH_LOG_WARN;
    extra = json_object_new_object();
    if (extra) {
        json_object_object_add(extra, "sqlstate", json_object_new_string(pg->sqlstate));
        if (stmt) {
            snprintf(head, sizeof(head), "%s", stmt);
            json_object_object_add(extra, "stmt", json_object_new_string(head));
        }
    }
    gh_log_fields(pg->lg, lvl, 0,
                  extra ? json_object_to_json_string_ext(extra, JSON_C_TO_STRING_PLAIN) : NULL,
                  "postgres: %s: %s", what, pg->errmsg);
    json_object_put(extra);
}

/* Server notices (NOTICE, WARNING) go to the logger instead of stderr. */
static void notice_receiver(void *arg, const PGresult *res)
{
    struct gh_pg *pg = arg;
    const char *sev = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
    const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
    enum gh_log_level lvl = GH_LOG_DEBUG;

    /* An error while idle arrives here: FATAL means the backend is going away. */
    if (sev && (strcmp(sev, "FATAL") == 0 || strcmp(sev, "PANIC") == 0))
        pg->fatal_seen = 1;
    if (!pg->lg || !pg->lg->sink)
        return;
    if (sev && strcmp(sev, "WARNING") == 0)
        lvl = GH_LOG_WARN;
    gh_log(pg->lg, lvl, 0, "postgres %s: %s", sev ? sev : "notice", msg ? msg : "");
}

/* ---- connection -------------------------------------------------------- */

static void forget_prepared(struct gh_pg *pg)
{
    size_t i;

    for (i = 0; i < pg->n_prepared; i++)
        free(pg->prepared[i]);
    pg->n_prepared = 0;
}

static void drop_conn(struct gh_pg *pg)
{
    PQfinish(pg->conn);
    pg->conn = NULL;
    forget_prepared(pg);
}

static int open_conn(struct gh_pg *pg)
{
    const char *keys[5] = {"dbname", "connect_timeout", "fallback_application_name", NULL, NULL};
    const char *vals[5] = {pg->conninfo, PG_CONNECT_TIMEOUT, "guildhall", NULL, NULL};
    PGconn *c;

    if (pg->options[0]) {
        keys[3] = "options";
        vals[3] = pg->options;
    }
    c = PQconnectdbParams(keys, vals, 1);
    if (!c) {
        set_error(pg, "08001", "out of memory creating the connection");
        log_error(pg, "connect failed", NULL);
        return GH_EPG;
    }
    if (PQstatus(c) != CONNECTION_OK) {
        set_error(pg, "08001", PQerrorMessage(c));
        PQfinish(c);
        log_error(pg, "connect failed", NULL);
        return GH_EPG;
    }
    PQsetNoticeReceiver(c, notice_receiver, pg);
    pg->fatal_seen = 0;
    forget_prepared(pg);
    pg->conn = c;
    return GH_OK;
}

/* An idle connection has nothing to read. Something readable means the
 * server sent its goodbye (FATAL + close) or closed the socket: let libpq
 * read it and report whether the connection survived. Never blocks. */
static int idle_conn_dead(struct gh_pg *pg)
{
    PGconn *c = pg->conn;
    int i;

    if (pg->fatal_seen || PQstatus(c) != CONNECTION_OK || PQsocket(c) < 0)
        return 1;
    for (i = 0; i < 4; i++) {
        struct pollfd p = {.fd = PQsocket(c), .events = POLLIN};
        PGnotify *nt;

        if (poll(&p, 1, 0) <= 0)
            return 0;
        if (!PQconsumeInput(c))
            return 1;
        while ((nt = PQnotifies(c)) != NULL)
            PQfreemem(nt);
        if (pg->fatal_seen || PQstatus(c) != CONNECTION_OK)
            return 1;
    }
    return 0;
}

/* The server terminated the session (admin shutdown, crash shutdown, cannot
 * connect now): whatever the statement did was rolled back. */
static int terminated_by_server(const char *sqlstate)
{
    return strcmp(sqlstate, "57P01") == 0 || strcmp(sqlstate, "57P02") == 0 || strcmp(sqlstate, "57P03") == 0;
}

int gh_pg_connect(struct gh_pg *pg)
{
    PGTransactionStatusType ts;

    if (!pg)
        return GH_EINVAL;
    if (!pg->conn)
        return open_conn(pg);
    ts = PQtransactionStatus(pg->conn); /* before the check: a dead connection reports UNKNOWN */
    if (!idle_conn_dead(pg))
        return GH_OK;
    drop_conn(pg);
    if (ts == PQTRANS_INTRANS || ts == PQTRANS_INERROR)
        pg->tx_lost = 1; /* the caller must roll back before going on */
    if (pg->lg && pg->lg->sink)
        GH_WARN(pg->lg, "postgres: connection lost; reconnecting");
    return open_conn(pg);
}

/* ---- prepared statement names ------------------------------------------ */

static int is_prepared(const struct gh_pg *pg, const char *name)
{
    size_t i;

    for (i = 0; i < pg->n_prepared; i++)
        if (strcmp(pg->prepared[i], name) == 0)
            return 1;
    return 0;
}

static void unmark_prepared(struct gh_pg *pg, const char *name)
{
    size_t i;

    for (i = 0; i < pg->n_prepared; i++) {
        if (strcmp(pg->prepared[i], name) == 0) {
            free(pg->prepared[i]);
            pg->prepared[i] = pg->prepared[--pg->n_prepared];
            return;
        }
    }
}

static int mark_prepared(struct gh_pg *pg, const char *name)
{
    char *copy;

    if (pg->n_prepared >= PG_MAX_PREPARED)
        return GH_ETOOBIG;
    if (pg->n_prepared == pg->cap_prepared) {
        size_t ncap = pg->cap_prepared ? pg->cap_prepared * 2 : 16;
        char **np = realloc(pg->prepared, ncap * sizeof(*np));

        if (!np)
            return GH_ENOMEM;
        pg->prepared = np;
        pg->cap_prepared = ncap;
    }
    copy = strdup(name);
    if (!copy)
        return GH_ENOMEM;
    pg->prepared[pg->n_prepared++] = copy;
    return GH_OK;
}

/* ---- execution --------------------------------------------------------- */

enum run_mode { RUN_PARAMS, RUN_PREPARED, RUN_SCRIPT };

static int result_ok(const PGresult *res)
{
    ExecStatusType st = PQresultStatus(res);

    return st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
}

/* Records the failure of res (or of the connection when res is NULL).
 *
 * When the server ends a session under a running statement it sends FATAL
 * and closes; libpq 15 then returns only "server closed the connection
 * unexpectedly" and keeps the FATAL text in front of it in PQerrorMessage.
 * Something there before the result's own message means the server said
 * goodbye: pg->fatal_seen. */
static void capture_failure(struct gh_pg *pg, const PGresult *res)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *msg = res ? PQresultErrorMessage(res) : NULL;

    if (pg->conn && PQstatus(pg->conn) == CONNECTION_BAD) {
        const char *cm = PQerrorMessage(pg->conn);
        size_t lc = strlen(cm), lr = msg ? strlen(msg) : 0;

        if (lr > 0 && lc > lr && strcmp(cm + lc - lr, msg) == 0)
            pg->fatal_seen = 1;
        msg = cm;
    }
    if (!msg || !*msg)
        msg = pg->conn ? PQerrorMessage(pg->conn) : "no connection";
    if (!state || !*state)
        state = (pg->conn && PQstatus(pg->conn) == CONNECTION_BAD) ? "08006" : "";
    set_error(pg, state, msg);
}

/* One attempt: prepare if needed, then execute. NULL on failure with the
 * error captured. */
static PGresult *attempt(struct gh_pg *pg, enum run_mode mode, const char *name, const char *sql, int nparams,
                         const char *const *params, int reprepared)
{
    PGresult *res = NULL;

    if (mode == RUN_SCRIPT) {
        res = PQexec(pg->conn, sql);
    } else if (mode == RUN_PARAMS) {
        res = PQexecParams(pg->conn, sql, nparams, NULL, params, NULL, NULL, 0);
    } else {
        if (!is_prepared(pg, name)) {
            PGresult *pr = PQprepare(pg->conn, name, sql, nparams, NULL);
            const char *st = PQresultErrorField(pr, PG_DIAG_SQLSTATE);

            if (!result_ok(pr) && !(st && strcmp(st, "42P05") == 0)) {
                capture_failure(pg, pr);
                PQclear(pr);
                return NULL;
            }
            PQclear(pr);
            if (mark_prepared(pg, name) != GH_OK) {
                set_error(pg, "", "too many prepared statements on one connection");
                return NULL;
            }
        }
        res = PQexecPrepared(pg->conn, name, nparams, params, NULL, NULL, 0);
        if (!result_ok(res)) {
            const char *st = PQresultErrorField(res, PG_DIAG_SQLSTATE);

            /* Deallocated behind our back (DISCARD ALL, a pooler): prepare again. */
            if (st && strcmp(st, "26000") == 0 && !reprepared) {
                PQclear(res);
                unmark_prepared(pg, name);
                return attempt(pg, mode, name, sql, nparams, params, 1);
            }
        }
    }
    if (res && result_ok(res))
        return res;
    capture_failure(pg, res);
    PQclear(res);
    return NULL;
}

static PGresult *run(struct gh_pg *pg, enum run_mode mode, const char *name, const char *sql, int nparams,
                     const char *const *params)
{
    const char *label = name ? name : sql;
    int try;

    if (!pg || !sql || (mode == RUN_PREPARED && !name) || nparams < 0 || (nparams > 0 && !params)) {
        if (pg)
            set_error(pg, "", "invalid arguments");
        return NULL;
    }
    for (try = 0; try < 2; try++) {
        PGTransactionStatusType ts;
        int in_tx, server_ended;
        PGresult *res;

        clear_error(pg);
        if (pg->tx_lost) {
            set_error(pg, "08006", "the connection was lost inside a transaction; roll back and start again");
            log_error(pg, "statement refused", label);
            return NULL;
        }
        ts = pg->conn ? PQtransactionStatus(pg->conn) : PQTRANS_IDLE;
        in_tx = ts == PQTRANS_INTRANS || ts == PQTRANS_INERROR;
        if (pg->conn && idle_conn_dead(pg)) {
            drop_conn(pg);
            if (in_tx) {
                pg->tx_lost = 1;
                set_error(pg, "08006", "connection lost inside a transaction");
                log_error(pg, "statement not sent", label);
                return NULL;
            }
            if (pg->lg && pg->lg->sink)
                GH_WARN(pg->lg, "postgres: connection lost while idle; reconnecting");
        }
        if (!pg->conn && open_conn(pg) != GH_OK)
            return NULL;
        res = attempt(pg, mode, name, sql, nparams, params, 0);
        if (res)
            return res;
        /* The server may report the end of the session before libpq has
         * seen the socket close: a 57P0x error means the connection is gone. */
        server_ended = pg->fatal_seen || terminated_by_server(pg->sqlstate);
        if (PQstatus(pg->conn) != CONNECTION_BAD && !server_ended) {
            log_error(pg, "statement failed", label);
            return NULL;
        }
        /* The connection broke under the statement. */
        drop_conn(pg);
        if (in_tx) {
            pg->tx_lost = 1;
            log_error(pg, "connection lost inside a transaction", label);
            return NULL;
        }
        if (try > 0 || !server_ended) {
            log_error(pg, "connection lost", label);
            return NULL;
        }
        if (pg->lg && pg->lg->sink)
            GH_WARN(pg->lg, "postgres: session terminated by the server (%s); reconnecting and retrying once",
                    pg->sqlstate);
    }
    return NULL;
}

/* ---- public ------------------------------------------------------------ */

struct gh_pg *gh_pg_new(const char *conninfo, int statement_timeout_ms, const struct gh_logger *lg)
{
    struct gh_pg *pg;

    if (!conninfo || !*conninfo)
        return NULL;
    pg = calloc(1, sizeof(*pg));
    if (!pg)
        return NULL;
    pg->conninfo = strdup(conninfo);
    if (!pg->conninfo) {
        free(pg);
        return NULL;
    }
    if (statement_timeout_ms >= 0)
        snprintf(pg->options, sizeof(pg->options), "-c statement_timeout=%d", statement_timeout_ms);
    pg->lg = lg;
    return pg;
}

void gh_pg_free(struct gh_pg *pg)
{
    if (!pg)
        return;
    drop_conn(pg);
    free(pg->prepared);
    if (pg->conninfo) {
        explicit_bzero(pg->conninfo, strlen(pg->conninfo));
        free(pg->conninfo);
    }
    free(pg);
}

int gh_pg_ping(struct gh_pg *pg)
{
    return gh_pg_command(pg, "SELECT 1", 0, NULL);
}

PGresult *gh_pg_exec(struct gh_pg *pg, const char *sql, int nparams, const char *const *params)
{
    return run(pg, RUN_PARAMS, NULL, sql, nparams, params);
}

PGresult *gh_pg_exec_prepared(struct gh_pg *pg, const char *name, const char *sql, int nparams,
                              const char *const *params)
{
    return run(pg, RUN_PREPARED, name, sql, nparams, params);
}

PGresult *gh_pg_exec_script(struct gh_pg *pg, const char *sql)
{
    return run(pg, RUN_SCRIPT, NULL, sql, 0, NULL);
}

int gh_pg_command(struct gh_pg *pg, const char *sql, int nparams, const char *const *params)
{
    PGresult *res = gh_pg_exec(pg, sql, nparams, params);

    if (!res)
        return GH_EPG;
    PQclear(res);
    return GH_OK;
}

int gh_pg_begin(struct gh_pg *pg)
{
    if (!pg)
        return GH_EINVAL;
    pg->tx_lost = 0;
    return gh_pg_command(pg, "BEGIN", 0, NULL);
}

int gh_pg_commit(struct gh_pg *pg)
{
    PGresult *res;
    int rc = GH_EPG;

    if (!pg)
        return GH_EINVAL;
    res = gh_pg_exec(pg, "COMMIT", 0, NULL);
    if (!res)
        goto out;
    /* COMMIT of a failed transaction "succeeds" with the tag ROLLBACK. */
    if (strcmp(PQcmdStatus(res), "COMMIT") != 0) {
        set_error(pg, "25P02", "the transaction was rolled back because an earlier statement failed");
        log_error(pg, "commit failed", "COMMIT");
        goto out;
    }
    rc = GH_OK;
out:
    PQclear(res);
    return rc;
}

int gh_pg_rollback(struct gh_pg *pg)
{
    char msg[sizeof(pg->errmsg)], state[sizeof(pg->sqlstate)];

    if (!pg)
        return GH_EINVAL;
    if (pg->tx_lost || !pg->conn) {
        /* The server rolled back when the session ended. */
        pg->tx_lost = 0;
        return GH_OK;
    }
    if (PQtransactionStatus(pg->conn) == PQTRANS_IDLE)
        return GH_OK;
    /* Keep the error that made the caller roll back. */
    snprintf(msg, sizeof(msg), "%s", pg->errmsg);
    snprintf(state, sizeof(state), "%s", pg->sqlstate);
    if (gh_pg_command(pg, "ROLLBACK", 0, NULL) == GH_OK) {
        set_error(pg, state, msg);
        return GH_OK;
    }
    if (pg->tx_lost || !pg->conn) {
        pg->tx_lost = 0; /* lost while rolling back: the server rolled back */
        return GH_OK;
    }
    return GH_EPG;
}

const char *gh_pg_errmsg(const struct gh_pg *pg)
{
    return pg ? pg->errmsg : "no connection object";
}

const char *gh_pg_sqlstate(const struct gh_pg *pg)
{
    return pg ? pg->sqlstate : "";
}

PGconn *gh_pg_conn(struct gh_pg *pg)
{
    return pg ? pg->conn : NULL;
}
