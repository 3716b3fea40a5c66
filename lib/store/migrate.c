/* migrate.c - schema migrations.
 *
 * Files. sql/NNNN_name.up.sql and sql/NNNN_name.down.sql (NNNN: four or more
 * digits, name: [a-z0-9_]). Every migration has both; a number is used once.
 * Other .sql file names are refused; other files are ignored.
 *
 * Record. schema_migrations (version int primary key, name, checksum =
 * sha256 hex of the up file, applied_at, duration_ms), created by the runner.
 * Before doing anything the runner compares the files with the record and
 * refuses, naming the file, when an applied migration's file was edited
 * (checksum), renamed or deleted, or when a pending file is numbered below
 * the highest applied migration (out of order). An applied migration is
 * history: fix it with a new migration.
 *
 * Transactions. A migration runs in one transaction together with its
 * schema_migrations insert (or delete, for down), statement by statement so
 * an error names the file and line. The documented exception: a file whose
 * first line is
 *     -- guildhall:no-transaction
 * runs each statement on its own, outside any transaction block. Two
 * PostgreSQL rules need it: a value added with ALTER TYPE ... ADD VALUE
 * cannot be used in the transaction that added it, and CREATE INDEX
 * CONCURRENTLY (required on existing tables, see lint) cannot run in a
 * transaction block at all. Such a file should hold only those statements,
 * written to be re-runnable (ADD VALUE IF NOT EXISTS, CREATE INDEX
 * CONCURRENTLY IF NOT EXISTS): if statement k fails, statements before it
 * stay applied, the migration is not recorded, and the message says so.
 * Transaction control (BEGIN, COMMIT, ...) inside a file is refused.
 *
 * Concurrency. The runner holds pg_advisory_lock(GH_MIGRATE_LOCK) for the
 * whole command, so two runners (two hosts starting at once) never race.
 *
 * Backups. Before a destructive migration (one with DROP TABLE, DROP COLUMN,
 * TRUNCATE, DELETE FROM or ALTER COLUMN ... TYPE; down files count), the
 * tables it touches that exist are dumped with pg_dump (schema and data) to
 * <backup_dir>/<NNNN>_<name>_<UTC time>.sql (…_down_… for a down). The
 * password goes to pg_dump through its environment, never its argv. If
 * pg_dump fails the migration does not run.
 *
 * Lint (up files; no database). Findings, each with file and line:
 *   - DROP COLUMN t.c without a `-- deprecate: t.c` comment in an earlier
 *     migration (stop using a column for a release before dropping it);
 *   - ADD COLUMN ... NOT NULL without a DEFAULT (fails on a table with rows);
 *   - a foreign key added to an existing table without NOT VALID (validation
 *     locks both tables while it scans), including ADD COLUMN ... REFERENCES,
 *     and a NOT VALID key never followed by VALIDATE CONSTRAINT;
 *   - CREATE INDEX without CONCURRENTLY on a table not created in the same
 *     file (it blocks writes for the whole build), and CONCURRENTLY in a file
 *     that runs in a transaction (PostgreSQL refuses it);
 *   - transaction control statements.
 * Tables created in the same file are exempt: they are empty.
 *
 * The statement splitter knows '…' and E'…' strings, "…" identifiers,
 * $tag$…$tag$ bodies, -- and nested block comments, and BEGIN ATOMIC … END
 * function bodies. */
#include "store/migrate.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <openssl/evp.h>

#include "core/err.h"
#include "core/str.h"
#include "core/timeutil.h"
#include "store/pg.h"

#define GH_MIGRATE_LOCK "7451013352040263026" /* arbitrary, fixed: "guildhall-migrate" */
#define MIG_MAX_FILE (8u << 20)
#define MIG_NAME_MAX 96
#define MIG_IDENT_MAX 128
#define NO_TX_MARK "-- guildhall:no-transaction"
#define PG_DUMP_FALLBACK "/usr/lib/postgresql/15/bin/pg_dump"

/* ---- small helpers ------------------------------------------------------- */

static FILE *out_of(const struct gh_migrate_opts *o)
{
    return o && o->out ? o->out : stdout;
}

static FILE *err_of(const struct gh_migrate_opts *o)
{
    return o && o->err ? o->err : stderr;
}

__attribute__((format(printf, 2, 3))) static void say(FILE *f, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vfprintf(f, fmt, ap);
    va_end(ap);
    fputc('\n', f);
    fflush(f);
}

static int grow(void *arrp, size_t *cap, size_t need, size_t elem)
{
    void **arr = arrp;
    size_t ncap;
    void *np;

    if (need <= *cap)
        return GH_OK;
    ncap = *cap ? *cap * 2 : 16;
    while (ncap < need)
        ncap *= 2;
    np = realloc(*arr, ncap * elem);
    if (!np)
        return GH_ENOMEM;
    *arr = np;
    *cap = ncap;
    return GH_OK;
}

static void sha256_hex(const char *data, size_t len, char out[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0, i;

    out[0] = '\0';
    if (!EVP_Digest(data, len, md, &n, EVP_sha256(), NULL))
        return;
    for (i = 0; i < n && i < 32; i++)
        snprintf(out + (size_t)2 * i, 3, "%02x", md[i]);
}

static int read_file(const char *path, char **text, size_t *len)
{
    FILE *f = fopen(path, "rbe");
    char *buf = NULL;
    long sz;
    int rc = GH_EIO;

    *text = NULL;
    *len = 0;
    if (!f)
        return GH_EIO;
    if (fseek(f, 0, SEEK_END) != 0 || (sz = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0)
        goto out;
    if ((unsigned long)sz > MIG_MAX_FILE) {
        rc = GH_ETOOBIG;
        goto out;
    }
    buf = malloc((size_t)sz + 1);
    if (!buf) {
        rc = GH_ENOMEM;
        goto out;
    }
    if (fread(buf, 1, (size_t)sz, f) != (size_t)sz)
        goto out;
    buf[sz] = '\0';
    *text = buf;
    *len = (size_t)sz;
    buf = NULL;
    rc = GH_OK;
out:
    free(buf);
    fclose(f);
    return rc;
}

/* ---- lexer and statements ---------------------------------------------------- */

enum tok_type { TK_WORD, TK_QIDENT, TK_STRING, TK_DOLLAR, TK_NUM, TK_PUNCT };

struct tok {
    enum tok_type type;
    size_t off, len;
    int line;
};

struct stmt {
    size_t tok0, ntok; /* tokens, without the ';' */
    size_t off, len;   /* text */
    int line;
};

struct deprecation {
    char table[MIG_IDENT_MAX];
    char column[MIG_IDENT_MAX];
};

struct sqlfile {
    char display[MIG_NAME_MAX + 32]; /* "0002_logs.up.sql" */
    char *text;
    size_t len;
    int no_tx;
    struct tok *toks;
    size_t ntok, captok;
    struct stmt *stmts;
    size_t nstmt, capstmt;
    struct deprecation *deps;
    size_t ndeps, capdeps;
    int bad_line; /* lexing error */
    const char *bad_what;
};

static void sqlfile_cleanup(struct sqlfile *f)
{
    free(f->text);
    free(f->toks);
    free(f->stmts);
    free(f->deps);
    memset(f, 0, sizeof(*f));
}

static int is_word_start(int c)
{
    return isalpha(c) || c == '_' || c >= 0x80;
}

static int is_word_char(int c)
{
    return isalnum(c) || c == '_' || c == '$' || c >= 0x80;
}

static int add_tok(struct sqlfile *f, enum tok_type type, size_t off, size_t len, int line)
{
    if (grow(&f->toks, &f->captok, f->ntok + 1, sizeof(*f->toks)) != GH_OK)
        return GH_ENOMEM;
    f->toks[f->ntok++] = (struct tok){type, off, len, line};
    return GH_OK;
}

/* "-- deprecate: table.column" */
static int note_comment(struct sqlfile *f, const char *p, size_t n)
{
    static const char mark[] = "deprecate:";
    struct deprecation d;
    size_t i = 2, j;

    while (i < n && (p[i] == ' ' || p[i] == '\t'))
        i++;
    if (n - i < sizeof(mark) - 1 || strncasecmp(p + i, mark, sizeof(mark) - 1) != 0)
        return GH_OK;
    i += sizeof(mark) - 1;
    while (i < n && (p[i] == ' ' || p[i] == '\t'))
        i++;
    memset(&d, 0, sizeof(d));
    for (j = 0; i < n && p[i] != '.' && !isspace((unsigned char)p[i]) && j + 1 < sizeof(d.table); i++)
        d.table[j++] = (char)tolower((unsigned char)p[i]);
    if (i >= n || p[i] != '.')
        return GH_OK;
    for (i++, j = 0; i < n && !isspace((unsigned char)p[i]) && j + 1 < sizeof(d.column); i++)
        d.column[j++] = (char)tolower((unsigned char)p[i]);
    /* "public.t.c": the table was read up to the first dot, so the schema
     * landed in table and "t.c" in column. */
    if (strcmp(d.table, "public") == 0 && strchr(d.column, '.')) {
        char *dot = strchr(d.column, '.');

        *dot = '\0';
        snprintf(d.table, sizeof(d.table), "%s", d.column);
        memmove(d.column, dot + 1, strlen(dot + 1) + 1);
    }
    if (!d.table[0] || !d.column[0])
        return GH_OK;
    if (grow(&f->deps, &f->capdeps, f->ndeps + 1, sizeof(*f->deps)) != GH_OK)
        return GH_ENOMEM;
    f->deps[f->ndeps++] = d;
    return GH_OK;
}

static int lex(struct sqlfile *f)
{
    const char *s = f->text;
    size_t i = 0, n = f->len, start;
    int line = 1, sline;

    while (i < n) {
        unsigned char c = (unsigned char)s[i];

        if (c == '\n') {
            line++;
            i++;
        } else if (isspace(c)) {
            i++;
        } else if (c == '-' && i + 1 < n && s[i + 1] == '-') {
            start = i;
            while (i < n && s[i] != '\n')
                i++;
            if (note_comment(f, s + start, i - start) != GH_OK)
                return GH_ENOMEM;
        } else if (c == '/' && i + 1 < n && s[i + 1] == '*') {
            int depth = 1;

            sline = line;
            i += 2;
            while (i < n && depth > 0) {
                if (s[i] == '/' && i + 1 < n && s[i + 1] == '*') {
                    depth++;
                    i += 2;
                } else if (s[i] == '*' && i + 1 < n && s[i + 1] == '/') {
                    depth--;
                    i += 2;
                } else {
                    line += s[i] == '\n';
                    i++;
                }
            }
            if (depth > 0) {
                f->bad_line = sline;
                f->bad_what = "unterminated /* comment";
                return GH_EINVAL;
            }
        } else if (c == '\'' || ((c == 'E' || c == 'e') && i + 1 < n && s[i + 1] == '\'' &&
                                 (i == 0 || !is_word_char((unsigned char)s[i - 1])))) {
            int backslash = c != '\'';

            start = i;
            sline = line;
            i += backslash ? 2 : 1;
            for (;;) {
                if (i >= n) {
                    f->bad_line = sline;
                    f->bad_what = "unterminated string";
                    return GH_EINVAL;
                }
                if (backslash && s[i] == '\\' && i + 1 < n) {
                    line += s[i + 1] == '\n';
                    i += 2;
                } else if (s[i] == '\'' && i + 1 < n && s[i + 1] == '\'') {
                    i += 2;
                } else if (s[i] == '\'') {
                    i++;
                    break;
                } else {
                    line += s[i] == '\n';
                    i++;
                }
            }
            if (add_tok(f, TK_STRING, start, i - start, sline) != GH_OK)
                return GH_ENOMEM;
        } else if (c == '"') {
            start = i++;
            sline = line;
            for (;;) {
                if (i >= n) {
                    f->bad_line = sline;
                    f->bad_what = "unterminated quoted identifier";
                    return GH_EINVAL;
                }
                if (s[i] == '"' && i + 1 < n && s[i + 1] == '"') {
                    i += 2;
                } else if (s[i] == '"') {
                    i++;
                    break;
                } else {
                    line += s[i] == '\n';
                    i++;
                }
            }
            if (add_tok(f, TK_QIDENT, start, i - start, sline) != GH_OK)
                return GH_ENOMEM;
        } else if (c == '$' && i + 1 < n && (s[i + 1] == '$' || is_word_start((unsigned char)s[i + 1]))) {
            size_t t = i + 1, taglen;
            const char *end;

            while (t < n && s[t] != '$' && (isalnum((unsigned char)s[t]) || s[t] == '_'))
                t++;
            if (t >= n || s[t] != '$') { /* not a dollar quote */
                if (add_tok(f, TK_PUNCT, i, 1, line) != GH_OK)
                    return GH_ENOMEM;
                i++;
                continue;
            }
            taglen = t - i + 1; /* $tag$ */
            start = i;
            sline = line;
            end = NULL;
            for (i = t + 1; i + taglen <= n; i++) {
                if (s[i] == '$' && memcmp(s + i, s + start, taglen) == 0) {
                    end = s + i;
                    break;
                }
                line += s[i] == '\n';
            }
            if (!end) {
                f->bad_line = sline;
                f->bad_what = "unterminated $$ body";
                return GH_EINVAL;
            }
            i += taglen;
            if (add_tok(f, TK_DOLLAR, start, i - start, sline) != GH_OK)
                return GH_ENOMEM;
        } else if (is_word_start(c)) {
            start = i;
            while (i < n && is_word_char((unsigned char)s[i]))
                i++;
            if (add_tok(f, TK_WORD, start, i - start, line) != GH_OK)
                return GH_ENOMEM;
        } else if (isdigit(c)) {
            start = i;
            while (i < n && (isalnum((unsigned char)s[i]) || s[i] == '.'))
                i++;
            if (add_tok(f, TK_NUM, start, i - start, line) != GH_OK)
                return GH_ENOMEM;
        } else {
            if (add_tok(f, TK_PUNCT, i, 1, line) != GH_OK)
                return GH_ENOMEM;
            i++;
        }
    }
    return GH_OK;
}

static int tok_is(const struct sqlfile *f, size_t i, const char *word)
{
    const struct tok *t;

    if (i >= f->ntok)
        return 0;
    t = &f->toks[i];
    return t->type == TK_WORD && t->len == strlen(word) && strncasecmp(f->text + t->off, word, t->len) == 0;
}

static int tok_punct(const struct sqlfile *f, size_t i, char c)
{
    return i < f->ntok && f->toks[i].type == TK_PUNCT && f->text[f->toks[i].off] == c;
}

static int split(struct sqlfile *f)
{
    size_t i, first = 0;
    int atomic = 0; /* depth inside BEGIN ATOMIC ... END */

    for (i = 0; i <= f->ntok; i++) {
        int end = i == f->ntok || (tok_punct(f, i, ';') && atomic == 0);

        if (i < f->ntok && !end) {
            if ((tok_is(f, i, "BEGIN") && tok_is(f, i + 1, "ATOMIC")) || (atomic > 0 && tok_is(f, i, "CASE")))
                atomic++;
            else if (atomic > 0 && tok_is(f, i, "END"))
                atomic--;
            continue;
        }
        if (i > first) {
            const struct tok *a = &f->toks[first], *z = &f->toks[i - 1];

            if (grow(&f->stmts, &f->capstmt, f->nstmt + 1, sizeof(*f->stmts)) != GH_OK)
                return GH_ENOMEM;
            f->stmts[f->nstmt++] = (struct stmt){first, i - first, a->off, z->off + z->len - a->off, a->line};
        }
        first = i + 1;
    }
    return GH_OK;
}

static int parse_sql(struct sqlfile *f)
{
    size_t n = strlen(NO_TX_MARK);
    int rc;

    f->no_tx = f->len >= n && strncmp(f->text, NO_TX_MARK, n) == 0 &&
               (f->len == n || f->text[n] == '\n' || f->text[n] == '\r' || f->text[n] == ' ');
    rc = lex(f);
    if (rc != GH_OK)
        return rc;
    return split(f);
}

/* Reads an identifier (name or schema.name) at *i into out (lower-cased
 * unless quoted; "public." dropped). 0 when there is none. */
static int read_ident(const struct sqlfile *f, size_t *i, size_t end, char *out, size_t size)
{
    size_t used = 0;
    int parts = 0;

    out[0] = '\0';
    while (*i < end) {
        const struct tok *t = &f->toks[*i];
        size_t k;

        if (t->type == TK_WORD) {
            for (k = 0; k < t->len && used + 1 < size; k++)
                out[used++] = (char)tolower((unsigned char)f->text[t->off + k]);
        } else if (t->type == TK_QIDENT) {
            for (k = 1; k + 1 < t->len && used + 1 < size; k++) {
                out[used++] = f->text[t->off + k];
                if (f->text[t->off + k] == '"')
                    k++;
            }
        } else {
            break;
        }
        out[used] = '\0';
        parts++;
        (*i)++;
        if (*i < end && tok_punct(f, *i, '.') && used + 1 < size) {
            out[used++] = '.';
            (*i)++;
            continue;
        }
        break;
    }
    if (used > 7 && memcmp(out, "public.", 7) == 0)
        memmove(out, out + 7, used - 7 + 1);
    return parts > 0 && out[0];
}

/* Skips the given words in order where present (IF NOT EXISTS, ONLY, ...). */
static void skip_words(const struct sqlfile *f, size_t *i, const char *const *words)
{
    for (; *words; words++)
        if (tok_is(f, *i, *words))
            (*i)++;
}

/* ---- statement shapes ------------------------------------------------------ */

/* CREATE [GLOBAL|LOCAL] [TEMP|TEMPORARY|UNLOGGED] TABLE [IF NOT EXISTS] name */
static int created_table(const struct sqlfile *f, const struct stmt *s, char *name, size_t size)
{
    static const char *const mods[] = {"GLOBAL", "LOCAL", "TEMP", "TEMPORARY", "UNLOGGED", NULL};
    static const char *const ine[] = {"IF", "NOT", "EXISTS", NULL};
    size_t i = s->tok0, end = s->tok0 + s->ntok;

    if (!tok_is(f, i, "CREATE"))
        return 0;
    i++;
    skip_words(f, &i, mods);
    if (!tok_is(f, i, "TABLE"))
        return 0;
    i++;
    skip_words(f, &i, ine);
    return read_ident(f, &i, end, name, size);
}

/* ALTER TABLE [IF EXISTS] [ONLY] name: index of the first action token. */
static int altered_table(const struct sqlfile *f, const struct stmt *s, char *name, size_t size,
                         size_t *actions)
{
    static const char *const ie[] = {"IF", "EXISTS", NULL};
    static const char *const only[] = {"ONLY", NULL};
    size_t i = s->tok0, end = s->tok0 + s->ntok;

    if (!tok_is(f, i, "ALTER") || !tok_is(f, i + 1, "TABLE"))
        return 0;
    i += 2;
    skip_words(f, &i, ie);
    skip_words(f, &i, only);
    if (!read_ident(f, &i, end, name, size))
        return 0;
    if (tok_punct(f, i, '*'))
        i++;
    *actions = i;
    return 1;
}

/* Next top-level action of an ALTER TABLE: [*a, *z). */
static int next_action(const struct sqlfile *f, size_t end, size_t *pos, size_t *a, size_t *z)
{
    int depth = 0;
    size_t i = *pos;

    if (i >= end)
        return 0;
    *a = i;
    for (; i < end; i++) {
        if (tok_punct(f, i, '('))
            depth++;
        else if (tok_punct(f, i, ')'))
            depth--;
        else if (depth == 0 && tok_punct(f, i, ','))
            break;
    }
    *z = i;
    *pos = i + 1;
    return *z > *a;
}

static int range_has(const struct sqlfile *f, size_t a, size_t z, const char *w1, const char *w2)
{
    size_t i;

    for (i = a; i < z; i++)
        if (tok_is(f, i, w1) && (!w2 || tok_is(f, i + 1, w2)))
            return 1;
    return 0;
}

/* Is this action a column drop? Sets col. */
static int action_drop_column(const struct sqlfile *f, size_t a, size_t z, char *col, size_t size)
{
    static const char *const column[] = {"COLUMN", NULL};
    static const char *const ie[] = {"IF", "EXISTS", NULL};
    size_t i = a;

    if (!tok_is(f, i, "DROP"))
        return 0;
    i++;
    if (tok_is(f, i, "CONSTRAINT") || tok_is(f, i, "DEFAULT") || tok_is(f, i, "NOT") ||
        tok_is(f, i, "IDENTITY") || tok_is(f, i, "EXPRESSION"))
        return 0;
    skip_words(f, &i, column);
    skip_words(f, &i, ie);
    return read_ident(f, &i, z, col, size);
}

/* ADD [COLUMN] [IF NOT EXISTS] name type ... (not a table constraint). */
static int action_add_column(const struct sqlfile *f, size_t a, size_t z, char *col, size_t size)
{
    static const char *const column[] = {"COLUMN", NULL};
    static const char *const ine[] = {"IF", "NOT", "EXISTS", NULL};
    size_t i = a;

    if (!tok_is(f, i, "ADD"))
        return 0;
    i++;
    if (tok_is(f, i, "CONSTRAINT") || tok_is(f, i, "PRIMARY") || tok_is(f, i, "UNIQUE") ||
        tok_is(f, i, "CHECK") || tok_is(f, i, "FOREIGN") || tok_is(f, i, "EXCLUDE"))
        return 0;
    skip_words(f, &i, column);
    skip_words(f, &i, ine);
    return read_ident(f, &i, z, col, size);
}

/* ADD [CONSTRAINT name] FOREIGN KEY ...: name ("" when unnamed). */
static int action_add_fk(const struct sqlfile *f, size_t a, size_t z, char *name, size_t size)
{
    size_t i = a;

    name[0] = '\0';
    if (!tok_is(f, i, "ADD"))
        return 0;
    i++;
    if (tok_is(f, i, "CONSTRAINT")) {
        i++;
        if (!read_ident(f, &i, z, name, size))
            return 0;
    }
    return tok_is(f, i, "FOREIGN") && tok_is(f, i + 1, "KEY");
}

/* ALTER [COLUMN] c [SET DATA] TYPE ... */
static int action_alter_type(const struct sqlfile *f, size_t a, size_t z)
{
    static const char *const column[] = {"COLUMN", NULL};
    char col[MIG_IDENT_MAX];
    size_t i = a;

    if (!tok_is(f, i, "ALTER"))
        return 0;
    i++;
    if (tok_is(f, i, "CONSTRAINT"))
        return 0;
    skip_words(f, &i, column);
    if (!read_ident(f, &i, z, col, sizeof(col)))
        return 0;
    return tok_is(f, i, "TYPE") ||
           (tok_is(f, i, "SET") && tok_is(f, i + 1, "DATA") && tok_is(f, i + 2, "TYPE"));
}

/* CREATE [UNIQUE] INDEX [CONCURRENTLY] [IF NOT EXISTS] [name] ON [ONLY] table */
static int created_index(const struct sqlfile *f, const struct stmt *s, char *table, size_t size,
                         int *concurrently)
{
    static const char *const ine[] = {"IF", "NOT", "EXISTS", NULL};
    static const char *const only[] = {"ONLY", NULL};
    char name[MIG_IDENT_MAX];
    size_t i = s->tok0, end = s->tok0 + s->ntok;

    if (!tok_is(f, i, "CREATE"))
        return 0;
    i++;
    if (tok_is(f, i, "UNIQUE"))
        i++;
    if (!tok_is(f, i, "INDEX"))
        return 0;
    i++;
    *concurrently = tok_is(f, i, "CONCURRENTLY");
    if (*concurrently)
        i++;
    skip_words(f, &i, ine);
    if (!tok_is(f, i, "ON"))
        read_ident(f, &i, end, name, sizeof(name));
    if (!tok_is(f, i, "ON"))
        return 0;
    i++;
    skip_words(f, &i, only);
    return read_ident(f, &i, end, table, size);
}

static int is_tx_control(const struct sqlfile *f, const struct stmt *s)
{
    size_t i = s->tok0;

    return tok_is(f, i, "BEGIN") || tok_is(f, i, "COMMIT") || tok_is(f, i, "ROLLBACK") ||
           tok_is(f, i, "END") || tok_is(f, i, "START") || tok_is(f, i, "SAVEPOINT") ||
           tok_is(f, i, "RELEASE") || tok_is(f, i, "ABORT") ||
           (tok_is(f, i, "PREPARE") && tok_is(f, i + 1, "TRANSACTION"));
}

/* ---- tables a destructive statement touches --------------------------------- */

struct names {
    char (*v)[MIG_IDENT_MAX];
    size_t n, cap;
};

static int names_add(struct names *ns, const char *name)
{
    size_t i;

    for (i = 0; i < ns->n; i++)
        if (strcmp(ns->v[i], name) == 0)
            return GH_OK;
    if (grow(&ns->v, &ns->cap, ns->n + 1, sizeof(*ns->v)) != GH_OK)
        return GH_ENOMEM;
    snprintf(ns->v[ns->n++], MIG_IDENT_MAX, "%s", name);
    return GH_OK;
}

static int names_has(const struct names *ns, const char *name)
{
    size_t i;

    for (i = 0; i < ns->n; i++)
        if (strcmp(ns->v[i], name) == 0)
            return 1;
    return 0;
}

/* Comma-separated table list (DROP TABLE a, b / TRUNCATE a, b). */
static int list_tables(const struct sqlfile *f, size_t i, size_t end, struct names *out)
{
    static const char *const only[] = {"ONLY", NULL};
    char name[MIG_IDENT_MAX];

    for (;;) {
        skip_words(f, &i, only);
        if (!read_ident(f, &i, end, name, sizeof(name)))
            return GH_OK;
        if (names_add(out, name) != GH_OK)
            return GH_ENOMEM;
        if (tok_punct(f, i, '*'))
            i++;
        if (!tok_punct(f, i, ','))
            return GH_OK;
        i++;
    }
}

/* Adds the tables s destroys data of; *destructive set when it does. */
static int destructive_tables(const struct sqlfile *f, const struct stmt *s, struct names *out,
                              int *destructive)
{
    static const char *const ie[] = {"IF", "EXISTS", NULL};
    static const char *const table[] = {"TABLE", NULL};
    size_t i = s->tok0, end = s->tok0 + s->ntok, pos, a, z;
    char name[MIG_IDENT_MAX], col[MIG_IDENT_MAX];

    if (tok_is(f, i, "DROP") && tok_is(f, i + 1, "TABLE")) {
        i += 2;
        skip_words(f, &i, ie);
        *destructive = 1;
        return list_tables(f, i, end, out);
    }
    if (tok_is(f, i, "TRUNCATE")) {
        i++;
        skip_words(f, &i, table);
        *destructive = 1;
        return list_tables(f, i, end, out);
    }
    if (tok_is(f, i, "DELETE") && tok_is(f, i + 1, "FROM")) {
        i += 2;
        *destructive = 1;
        return list_tables(f, i, i + 3 < end ? i + 3 : end, out); /* [ONLY] name */
    }
    if (altered_table(f, s, name, sizeof(name), &pos)) {
        while (next_action(f, end, &pos, &a, &z)) {
            if (action_drop_column(f, a, z, col, sizeof(col)) || action_alter_type(f, a, z)) {
                *destructive = 1;
                return names_add(out, name);
            }
        }
    }
    return GH_OK;
}

/* ---- the migration set -------------------------------------------------------- */

struct mig {
    int version;
    char name[MIG_NAME_MAX]; /* without the number */
    char base[MIG_NAME_MAX + 16];
    int has_up, has_down;
    char checksum[65];
    struct sqlfile up, down;
};

struct applied {
    int version;
    char name[MIG_NAME_MAX + 16];
    char checksum[65];
    char at[40];
    int duration_ms;
    int seen; /* matched a file */
};

struct migset {
    struct mig *m;
    size_t n, cap;
    struct applied *a;
    size_t na;
};

static void migset_cleanup(struct migset *s)
{
    size_t i;

    for (i = 0; i < s->n; i++) {
        sqlfile_cleanup(&s->m[i].up);
        sqlfile_cleanup(&s->m[i].down);
    }
    free(s->m);
    free(s->a);
    memset(s, 0, sizeof(*s));
}

static int cmp_mig(const void *x, const void *y)
{
    const struct mig *a = x, *b = y;

    return (a->version > b->version) - (a->version < b->version);
}

/* "0002_logs.up.sql" -> version, name, up. 0 when the name is not one. */
static int parse_name(const char *fname, int *version, char *name, size_t size, int *up)
{
    size_t i = 0, nl = strlen(fname), j;
    long v = 0;

    while (i < 9 && isdigit((unsigned char)fname[i]))
        v = v * 10 + (fname[i++] - '0');
    if (i < 4 || fname[i] != '_' || v <= 0)
        return 0;
    i++;
    if (nl > 7 && strcmp(fname + nl - 7, ".up.sql") == 0) {
        *up = 1;
        nl -= 7;
    } else if (nl > 9 && strcmp(fname + nl - 9, ".down.sql") == 0) {
        *up = 0;
        nl -= 9;
    } else {
        return 0;
    }
    if (nl <= i || nl - i >= size)
        return 0;
    for (j = i; j < nl; j++)
        if (!(islower((unsigned char)fname[j]) || isdigit((unsigned char)fname[j]) || fname[j] == '_'))
            return 0;
    memcpy(name, fname + i, nl - i);
    name[nl - i] = '\0';
    *version = (int)v;
    return 1;
}

static int load_file(const char *dir, const char *fname, struct sqlfile *f, FILE *err)
{
    char path[4096];
    int rc;

    if (snprintf(path, sizeof(path), "%s/%s", dir, fname) >= (int)sizeof(path))
        return GH_ETOOBIG;
    snprintf(f->display, sizeof(f->display), "%s", fname);
    rc = read_file(path, &f->text, &f->len);
    if (rc != GH_OK) {
        say(err, "%s: cannot read: %s", path, rc == GH_ETOOBIG ? "larger than 8 MiB" : strerror(errno));
        return rc;
    }
    rc = parse_sql(f);
    if (rc == GH_EINVAL)
        say(err, "%s:%d: %s", fname, f->bad_line, f->bad_what);
    return rc;
}

/* Reads the folder. Refusals (bad names, duplicates, a missing half) are
 * printed to err; GH_ECONFLICT when there was any. */
static int load_dir(const char *dir, struct migset *s, FILE *err)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    int rc = GH_OK, problems = 0;
    size_t i;

    if (!d) {
        say(err, "%s: cannot open the migrations folder: %s", dir, strerror(errno));
        return GH_EIO;
    }
    while ((de = readdir(d)) != NULL) {
        char name[MIG_NAME_MAX];
        int version, up;
        struct mig *m = NULL;
        size_t nl = strlen(de->d_name);

        if (nl < 4 || strcmp(de->d_name + nl - 4, ".sql") != 0)
            continue;
        if (!parse_name(de->d_name, &version, name, sizeof(name), &up)) {
            say(err,
                "%s/%s: not a migration file name (want NNNN_name.up.sql and NNNN_name.down.sql, "
                "name in [a-z0-9_])",
                dir, de->d_name);
            problems++;
            continue;
        }
        for (i = 0; i < s->n; i++)
            if (s->m[i].version == version)
                m = &s->m[i];
        if (m && strcmp(m->name, name) != 0) {
            say(err, "duplicate migration number %04d: %04d_%s and %s; give one of them the next free number",
                version, version, m->name, de->d_name);
            problems++;
            continue;
        }
        if (!m) {
            if (grow(&s->m, &s->cap, s->n + 1, sizeof(*s->m)) != GH_OK) {
                rc = GH_ENOMEM;
                goto out;
            }
            m = &s->m[s->n++];
            memset(m, 0, sizeof(*m));
            m->version = version;
            snprintf(m->name, sizeof(m->name), "%s", name);
            snprintf(m->base, sizeof(m->base), "%04d_%s", version, name);
        }
        rc = load_file(dir, de->d_name, up ? &m->up : &m->down, err);
        if (rc == GH_EINVAL) {
            problems++;
            rc = GH_OK;
        } else if (rc != GH_OK) {
            goto out;
        }
        if (up) {
            m->has_up = 1;
            sha256_hex(m->up.text, m->up.len, m->checksum);
        } else {
            m->has_down = 1;
        }
    }
    if (s->n > 0)
        qsort(s->m, s->n, sizeof(*s->m), cmp_mig);
    for (i = 0; i < s->n; i++) {
        if (!s->m[i].has_up) {
            say(err, "%s.down.sql has no %s.up.sql", s->m[i].base, s->m[i].base);
            problems++;
        } else if (!s->m[i].has_down) {
            say(err,
                "%s.up.sql has no %s.down.sql: every migration needs one (it may only undo what the up "
                "did)",
                s->m[i].base, s->m[i].base);
            problems++;
        }
    }
out:
    closedir(d);
    if (rc != GH_OK)
        return rc;
    return problems ? GH_ECONFLICT : GH_OK;
}

/* ---- the database side ---------------------------------------------------------- */

static const char CREATE_TABLE_SQL[] = "CREATE TABLE IF NOT EXISTS schema_migrations ("
                                       " version integer PRIMARY KEY,"
                                       " name text NOT NULL,"
                                       " checksum text NOT NULL,"
                                       " applied_at timestamptz NOT NULL DEFAULT now(),"
                                       " duration_ms integer NOT NULL)";

static int lock_db(struct gh_pg *pg, FILE *err)
{
    PGresult *res = gh_pg_exec(pg, "SELECT pg_try_advisory_lock(" GH_MIGRATE_LOCK ")", 0, NULL);
    int got;

    if (!res) {
        say(err, "cannot reach PostgreSQL: %s", gh_pg_errmsg(pg));
        return GH_EPG;
    }
    got = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    if (got)
        return GH_OK;
    say(err, "another migration runner holds the lock; waiting for it to finish");
    if (gh_pg_command(pg, "SELECT pg_advisory_lock(" GH_MIGRATE_LOCK ")", 0, NULL) != GH_OK) {
        say(err, "waiting for the migration lock failed: %s", gh_pg_errmsg(pg));
        return GH_EPG;
    }
    return GH_OK;
}

static void unlock_db(struct gh_pg *pg)
{
    gh_pg_command(pg, "SELECT pg_advisory_unlock(" GH_MIGRATE_LOCK ")", 0, NULL);
}

static int load_applied(struct gh_pg *pg, struct migset *s, FILE *err)
{
    PGresult *res;
    int i, n;

    if (gh_pg_command(pg, CREATE_TABLE_SQL, 0, NULL) != GH_OK) {
        say(err, "cannot create schema_migrations: %s", gh_pg_errmsg(pg));
        return GH_EPG;
    }
    res = gh_pg_exec(pg,
                     "SELECT version, name, checksum, "
                     "to_char(applied_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), duration_ms "
                     "FROM schema_migrations ORDER BY version",
                     0, NULL);
    if (!res) {
        say(err, "cannot read schema_migrations: %s", gh_pg_errmsg(pg));
        return GH_EPG;
    }
    n = PQntuples(res);
    s->a = calloc((size_t)n + 1, sizeof(*s->a));
    if (!s->a) {
        PQclear(res);
        return GH_ENOMEM;
    }
    for (i = 0; i < n; i++) {
        struct applied *a = &s->a[i];

        a->version = atoi(PQgetvalue(res, i, 0));
        snprintf(a->name, sizeof(a->name), "%s", PQgetvalue(res, i, 1));
        snprintf(a->checksum, sizeof(a->checksum), "%s", PQgetvalue(res, i, 2));
        snprintf(a->at, sizeof(a->at), "%s", PQgetvalue(res, i, 3));
        a->duration_ms = atoi(PQgetvalue(res, i, 4));
    }
    s->na = (size_t)n;
    PQclear(res);
    return GH_OK;
}

static struct applied *applied_of(struct migset *s, int version)
{
    size_t i;

    for (i = 0; i < s->na; i++)
        if (s->a[i].version == version)
            return &s->a[i];
    return NULL;
}

/* Files against the record. Prints every problem; GH_ECONFLICT if any. */
static int check_history(struct migset *s, const char *dir, FILE *err)
{
    int problems = 0, max_applied = 0;
    size_t i, j;

    for (i = 0; i < s->na; i++)
        if (s->a[i].version > max_applied)
            max_applied = s->a[i].version;
    for (i = 0; i < s->na; i++) {
        struct applied *a = &s->a[i];
        struct mig *m = NULL;

        for (j = 0; j < s->n; j++)
            if (s->m[j].version == a->version)
                m = &s->m[j];
        if (!m || !m->has_up) {
            say(err,
                "migration %04d (%s) was applied at %s but %s/%s.up.sql is missing; restore the file "
                "(an applied migration is never deleted)",
                a->version, a->name, a->at, dir, a->name);
            problems++;
            continue;
        }
        a->seen = 1;
        if (strcmp(m->base, a->name) != 0) {
            say(err,
                "%s.up.sql has the number of applied migration %s (applied at %s); restore its name and "
                "put new work in a new migration",
                m->base, a->name, a->at);
            problems++;
        } else if (strcmp(m->checksum, a->checksum) != 0) {
            say(err,
                "%s.up.sql was edited after it was applied (checksum %.12s… recorded at %s, file now "
                "%.12s…); write a new migration instead",
                m->base, a->checksum, a->at, m->checksum);
            problems++;
        }
    }
    for (j = 0; j < s->n; j++) {
        const struct mig *m = &s->m[j];

        if (m->version < max_applied && !applied_of(s, m->version)) {
            say(err,
                "%s.up.sql is out of order: it is numbered below the highest applied migration %04d but "
                "was never applied; renumber it above %04d",
                m->base, max_applied, max_applied);
            problems++;
        }
    }
    return problems ? GH_ECONFLICT : GH_OK;
}

/* ---- backups ------------------------------------------------------------------------ */

static void find_pg_dump(const struct gh_migrate_opts *o, char *out, size_t size)
{
    FILE *p;
    char dir[512];

    if (o->pg_dump && *o->pg_dump) {
        snprintf(out, size, "%s", o->pg_dump);
        return;
    }
    p = popen("pg_config --bindir 2>/dev/null", "re");
    if (p) {
        if (fgets(dir, sizeof(dir), p)) {
            dir[strcspn(dir, "\r\n")] = '\0';
            if (dir[0] && gh_snprintf(out, size, "%s/pg_dump", dir) == GH_OK && access(out, X_OK) == 0) {
                pclose(p);
                return;
            }
        }
        pclose(p);
    }
    if (access(PG_DUMP_FALLBACK, X_OK) == 0)
        snprintf(out, size, "%s", PG_DUMP_FALLBACK);
    else
        snprintf(out, size, "pg_dump");
}

static int mkdir_p(const char *path)
{
    char tmp[1024];
    size_t i;

    if (gh_snprintf(tmp, sizeof(tmp), "%s", path) != GH_OK)
        return -1;
    for (i = 1; tmp[i]; i++) {
        if (tmp[i] != '/')
            continue;
        tmp[i] = '\0';
        if (mkdir(tmp, 0700) != 0 && errno != EEXIST)
            return -1;
        tmp[i] = '/';
    }
    return mkdir(tmp, 0700) != 0 && errno != EEXIST ? -1 : 0;
}

/* Runs pg_dump -t each table into file; connection settings (password
 * included) go through the child's environment. */
static int run_pg_dump(const struct gh_migrate_opts *o, const struct names *tables, const char *file,
                       FILE *err)
{
    PQconninfoOption *opts = NULL, *opt;
    char bin[1024], *errmsg = NULL;
    char **argv = NULL, (*targs)[MIG_IDENT_MAX * 2 + 8] = NULL;
    size_t i, argc = 0;
    pid_t pid;
    int status = 0, rc = GH_EIO;

    opts = PQconninfoParse(o->database_url, &errmsg);
    if (!opts) {
        say(err, "cannot parse DATABASE_URL for pg_dump: %s", errmsg ? errmsg : "out of memory");
        goto out;
    }
    find_pg_dump(o, bin, sizeof(bin));
    argv = calloc(tables->n * 2 + 8, sizeof(char *));
    targs = calloc(tables->n + 1, sizeof(*targs));
    if (!argv || !targs) {
        rc = GH_ENOMEM;
        goto out;
    }
    argv[argc++] = bin;
    argv[argc++] = "--no-password";
    argv[argc++] = "--format=plain";
    argv[argc++] = "--file";
    argv[argc++] = (char *)file;
    for (i = 0; i < tables->n; i++) {
        const char *t = tables->v[i], *dot = strchr(t, '.');

        if (dot)
            snprintf(targs[i], sizeof(targs[i]), "\"%.*s\".\"%s\"", (int)(dot - t), t, dot + 1);
        else
            snprintf(targs[i], sizeof(targs[i]), "\"public\".\"%s\"", t);
        argv[argc++] = "-t";
        argv[argc++] = targs[i];
    }
    argv[argc] = NULL;
    fflush(NULL);
    pid = fork();
    if (pid < 0) {
        say(err, "fork for pg_dump failed: %s", strerror(errno));
        goto out;
    }
    if (pid == 0) {
        umask(077); /* the backup holds the tables' data */
        for (opt = opts; opt->keyword; opt++)
            if (opt->val && *opt->val && opt->envvar)
                setenv(opt->envvar, opt->val, 1);
        execvp(bin, argv);
        fprintf(stderr, "cannot run %s: %s\n", bin, strerror(errno));
        _exit(127);
    }
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            say(err, "waiting for pg_dump failed: %s", strerror(errno));
            goto out;
        }
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        say(err, "pg_dump (%s) failed with status %d", bin, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
        goto out;
    }
    rc = GH_OK;
out:
    free(targs);
    free(argv);
    PQfreemem(errmsg);
    PQconninfoFree(opts);
    return rc;
}

/* Before a destructive migration: dump the existing tables it touches. */
static int backup_if_destructive(struct gh_pg *pg, const struct gh_migrate_opts *o, const struct mig *m,
                                 const struct sqlfile *f, int down)
{
    struct names touched = {0}, existing = {0};
    char file[1200], stamp[32];
    time_t now = time(NULL);
    struct tm tm;
    int destructive = 0, rc = GH_OK;
    size_t i;

    for (i = 0; i < f->nstmt; i++) {
        rc = destructive_tables(f, &f->stmts[i], &touched, &destructive);
        if (rc != GH_OK)
            goto out;
    }
    if (!destructive)
        goto out;
    for (i = 0; i < touched.n; i++) {
        const char *params[1] = {touched.v[i]};
        /* The name is as written (quoted ones keep their case): quote it again,
         * or to_regclass would fold "Quoted" to quoted and find no table. */
        PGresult *res =
            gh_pg_exec(pg,
                       "SELECT to_regclass(CASE WHEN strpos($1, '.') > 0 "
                       "THEN quote_ident(split_part($1, '.', 1)) || '.' || "
                       "quote_ident(split_part($1, '.', 2)) ELSE quote_ident($1) END) IS NOT NULL",
                       1, params);
        int exists = res && strcmp(PQgetvalue(res, 0, 0), "t") == 0;

        PQclear(res);
        if (!res) {
            say(err_of(o), "cannot check table %s before the backup: %s", touched.v[i], gh_pg_errmsg(pg));
            rc = GH_EPG;
            goto out;
        }
        if (exists && (rc = names_add(&existing, touched.v[i])) != GH_OK)
            goto out;
    }
    if (existing.n == 0) {
        say(out_of(o), "%s is destructive but touches no existing table; no backup needed", f->display);
        goto out;
    }
    if (!o->database_url || !o->backup_dir || !*o->backup_dir) {
        say(err_of(o),
            "%s is destructive and no backup can be taken (no database URL or backup folder); "
            "not running it",
            f->display);
        rc = GH_EIO;
        goto out;
    }
    if (mkdir_p(o->backup_dir) != 0) {
        say(err_of(o), "cannot create the backup folder %s: %s; %s not run", o->backup_dir, strerror(errno),
            f->display);
        rc = GH_EIO;
        goto out;
    }
    gmtime_r(&now, &tm);
    strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
    if (gh_snprintf(file, sizeof(file), "%s/%s%s_%s.sql", o->backup_dir, m->base, down ? "_down" : "",
                    stamp) != GH_OK) {
        rc = GH_ETOOBIG;
        goto out;
    }
    say(out_of(o), "%s is destructive: backing up %zu table(s) to %s", f->display, existing.n, file);
    rc = run_pg_dump(o, &existing, file, err_of(o));
    if (rc != GH_OK)
        say(err_of(o), "backup failed; %s not run", f->display);
out:
    free(touched.v);
    free(existing.v);
    return rc;
}

/* ---- running ------------------------------------------------------------------------ */

static int check_tx_control(const struct sqlfile *f, FILE *err)
{
    size_t i;

    for (i = 0; i < f->nstmt; i++) {
        if (is_tx_control(f, &f->stmts[i])) {
            say(err,
                "%s:%d: transaction control in a migration; the runner gives each migration its own "
                "transaction (or none, with " NO_TX_MARK ")",
                f->display, f->stmts[i].line);
            return GH_ECONFLICT;
        }
    }
    return GH_OK;
}

static int exec_stmt(struct gh_pg *pg, const struct sqlfile *f, size_t k, FILE *err)
{
    const struct stmt *s = &f->stmts[k];
    char *sql = strndup(f->text + s->off, s->len);
    PGresult *res;

    if (!sql)
        return GH_ENOMEM;
    res = gh_pg_exec_script(pg, sql);
    free(sql);
    if (!res) {
        say(err, "%s:%d: %s", f->display, s->line, gh_pg_errmsg(pg));
        return GH_EPG;
    }
    PQclear(res);
    return GH_OK;
}

/* Runs file f of migration m and records it (up: insert, down: delete). */
static int run_one(struct gh_pg *pg, const struct gh_migrate_opts *o, const struct mig *m, int down)
{
    const struct sqlfile *f = down ? &m->down : &m->up;
    char version[16], duration[16];
    int64_t t0 = gh_mono_ms();
    size_t k;
    int rc;

    rc = check_tx_control(f, err_of(o));
    if (rc != GH_OK)
        return rc;
    rc = backup_if_destructive(pg, o, m, f, down);
    if (rc != GH_OK)
        return rc;
    snprintf(version, sizeof(version), "%d", m->version);
    if (!f->no_tx && gh_pg_begin(pg) != GH_OK) {
        say(err_of(o), "BEGIN failed: %s", gh_pg_errmsg(pg));
        return GH_EPG;
    }
    for (k = 0; k < f->nstmt; k++) {
        rc = exec_stmt(pg, f, k, err_of(o));
        if (rc == GH_OK)
            continue;
        if (f->no_tx && k > 0)
            say(err_of(o),
                "%s runs outside a transaction: its first %zu statement(s) stay applied and the "
                "migration is not recorded; fix the file and run again (keep its statements "
                "re-runnable)",
                f->display, k);
        else if (!f->no_tx)
            say(err_of(o), "%s rolled back; nothing of it was applied", f->display);
        goto fail;
    }
    snprintf(duration, sizeof(duration), "%lld", (long long)(gh_mono_ms() - t0));
    if (down) {
        rc = gh_pg_command(pg, "DELETE FROM schema_migrations WHERE version = $1", 1,
                           (const char *const[]){version});
    } else {
        rc = gh_pg_command(pg,
                           "INSERT INTO schema_migrations (version, name, checksum, applied_at, duration_ms) "
                           "VALUES ($1, $2, $3, now(), $4)",
                           4, (const char *const[]){version, m->base, m->checksum, duration});
    }
    if (rc != GH_OK) {
        say(err_of(o), "recording %s in schema_migrations failed: %s", m->base, gh_pg_errmsg(pg));
        goto fail;
    }
    if (!f->no_tx && gh_pg_commit(pg) != GH_OK) {
        say(err_of(o), "COMMIT of %s failed: %s", f->display, gh_pg_errmsg(pg));
        rc = GH_EPG;
        goto fail;
    }
    say(out_of(o), "%s %s (%s ms%s)", down ? "reverted" : "applied", m->base, duration,
        f->no_tx ? ", outside a transaction" : "");
    return GH_OK;
fail:
    if (!f->no_tx)
        gh_pg_rollback(pg);
    return rc == GH_OK ? GH_EPG : rc;
}

/* Lock, read files and record, check. On GH_OK the lock is held. */
static int prepare(struct gh_pg *pg, const struct gh_migrate_opts *o, struct migset *s, int strict)
{
    int rc, rc_files;

    if (!pg || !o || !o->dir)
        return GH_EINVAL;
    rc_files = load_dir(o->dir, s, err_of(o));
    if (rc_files != GH_OK && rc_files != GH_ECONFLICT)
        return rc_files;
    rc = lock_db(pg, err_of(o));
    if (rc != GH_OK)
        return rc;
    rc = load_applied(pg, s, err_of(o));
    if (rc == GH_OK)
        rc = check_history(s, o->dir, err_of(o));
    if (rc == GH_OK)
        rc = rc_files;
    if (rc != GH_OK && (strict || rc != GH_ECONFLICT)) {
        say(err_of(o), "nothing was changed");
        unlock_db(pg);
    }
    return rc;
}

int gh_migrate_up(struct gh_pg *pg, const struct gh_migrate_opts *o)
{
    struct migset s = {0};
    size_t i, done = 0;
    int rc;

    rc = prepare(pg, o, &s, 1);
    if (rc != GH_OK)
        goto out;
    for (i = 0; i < s.n; i++) {
        if (applied_of(&s, s.m[i].version))
            continue;
        rc = run_one(pg, o, &s.m[i], 0);
        if (rc != GH_OK)
            break;
        done++;
    }
    if (rc == GH_OK && done)
        say(out_of(o), "%zu migration(s) applied; the schema is current", done);
    else if (rc == GH_OK)
        say(out_of(o), "the schema is current");
    unlock_db(pg);
out:
    migset_cleanup(&s);
    return rc;
}

int gh_migrate_down(struct gh_pg *pg, const struct gh_migrate_opts *o, int n)
{
    struct migset s = {0};
    int rc, done = 0;
    size_t k;

    if (n < 1) {
        say(err_of(o), "down needs a count of at least 1");
        return GH_EINVAL;
    }
    rc = prepare(pg, o, &s, 1);
    if (rc != GH_OK)
        goto out;
    if ((size_t)n > s.na)
        say(out_of(o), "only %zu migration(s) applied; reverting all of them", s.na);
    for (k = s.na; k > 0 && done < n; k--) {
        struct mig *m = NULL;
        size_t j;

        for (j = 0; j < s.n; j++)
            if (s.m[j].version == s.a[k - 1].version)
                m = &s.m[j];
        rc = m ? run_one(pg, o, m, 1) : GH_ECONFLICT; /* m exists: check_history passed */
        if (rc != GH_OK)
            break;
        done++;
    }
    if (rc == GH_OK)
        say(out_of(o), "%d migration(s) reverted", done);
    unlock_db(pg);
out:
    migset_cleanup(&s);
    return rc;
}

int gh_migrate_status(struct gh_pg *pg, const struct gh_migrate_opts *o)
{
    struct migset s = {0};
    size_t i;
    int rc;

    rc = prepare(pg, o, &s, 0);
    if (rc != GH_OK && rc != GH_ECONFLICT)
        goto out;
    say(out_of(o), "%-8s %-40s %s", "version", "name", "applied");
    for (i = 0; i < s.n; i++) {
        const struct applied *a = applied_of(&s, s.m[i].version);

        if (a)
            say(out_of(o), "%04d     %-40s %s (%d ms)", s.m[i].version, s.m[i].name, a->at, a->duration_ms);
        else
            say(out_of(o), "%04d     %-40s pending", s.m[i].version, s.m[i].name);
    }
    for (i = 0; i < s.na; i++)
        if (!s.a[i].seen)
            say(out_of(o), "%04d     %-40s %s (file missing)", s.a[i].version, s.a[i].name, s.a[i].at);
    unlock_db(pg);
out:
    migset_cleanup(&s);
    return rc;
}

/* ---- lint ------------------------------------------------------------------------------ */

struct notvalid {
    size_t file; /* index in the set */
    int line;
    char table[MIG_IDENT_MAX];
    char name[MIG_IDENT_MAX];
    int validated;
};

struct lint {
    const struct gh_migrate_opts *o;
    struct migset *s;
    struct notvalid *nv;
    size_t nnv, capnv;
    int findings;
};

__attribute__((format(printf, 4, 5))) static void finding(struct lint *l, const struct sqlfile *f, int line,
                                                          const char *fmt, ...)
{
    char msg[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    say(out_of(l->o), "%s/%s:%d: %s", l->o->dir, f->display, line, msg);
    l->findings++;
}

static int deprecated_before(const struct migset *s, size_t upto, const char *table, const char *col)
{
    size_t i, j;

    for (i = 0; i < upto; i++)
        for (j = 0; j < s->m[i].up.ndeps; j++)
            if (strcmp(s->m[i].up.deps[j].table, table) == 0 && strcmp(s->m[i].up.deps[j].column, col) == 0)
                return 1;
    return 0;
}

static void lint_alter(struct lint *l, size_t fi, const struct sqlfile *f, const struct stmt *st,
                       const struct names *created)
{
    char table[MIG_IDENT_MAX], col[MIG_IDENT_MAX], cname[MIG_IDENT_MAX];
    size_t end = st->tok0 + st->ntok, pos, a, z;
    int fresh;

    if (!altered_table(f, st, table, sizeof(table), &pos))
        return;
    fresh = names_has(created, table);
    while (next_action(f, end, &pos, &a, &z)) {
        int line = f->toks[a].line;

        if (tok_is(f, a, "VALIDATE") && tok_is(f, a + 1, "CONSTRAINT")) {
            size_t i = a + 2, k;

            if (read_ident(f, &i, z, cname, sizeof(cname)))
                for (k = 0; k < l->nnv; k++)
                    if (strcmp(l->nv[k].name, cname) == 0 && strcmp(l->nv[k].table, table) == 0)
                        l->nv[k].validated = 1;
            continue;
        }
        if (fresh)
            continue;
        if (action_drop_column(f, a, z, col, sizeof(col))) {
            if (!deprecated_before(l->s, fi, table, col))
                finding(l, f, line,
                        "DROP COLUMN %s.%s without an earlier deprecation: first ship a migration with "
                        "'-- deprecate: %s.%s' and stop using the column, then drop it in a later one",
                        table, col, table, col);
        } else if (action_add_column(f, a, z, col, sizeof(col))) {
            if (range_has(f, a, z, "NOT", "NULL") && !range_has(f, a, z, "DEFAULT", NULL))
                finding(
                    l, f, line,
                    "ADD COLUMN %s.%s NOT NULL without a DEFAULT fails on a table with rows: add a DEFAULT, "
                    "or add it nullable, backfill, then set NOT NULL",
                    table, col);
            if (range_has(f, a, z, "REFERENCES", NULL))
                finding(l, f, line,
                        "ADD COLUMN %s.%s REFERENCES validates at once on an existing table: add the column, "
                        "then ADD CONSTRAINT ... FOREIGN KEY ... NOT VALID and VALIDATE CONSTRAINT later",
                        table, col);
        } else if (action_add_fk(f, a, z, cname, sizeof(cname))) {
            if (!range_has(f, a, z, "NOT", "VALID")) {
                finding(l, f, line,
                        "foreign key %s added to existing table %s without NOT VALID: it locks both tables "
                        "while it scans; add it NOT VALID, then VALIDATE CONSTRAINT in a later migration",
                        cname[0] ? cname : "(unnamed)", table);
            } else if (cname[0] && grow(&l->nv, &l->capnv, l->nnv + 1, sizeof(*l->nv)) == GH_OK) {
                struct notvalid *nv = &l->nv[l->nnv++];

                memset(nv, 0, sizeof(*nv));
                nv->file = fi;
                nv->line = line;
                snprintf(nv->table, sizeof(nv->table), "%s", table);
                snprintf(nv->name, sizeof(nv->name), "%s", cname);
            } else if (!cname[0]) {
                finding(l, f, line,
                        "name the NOT VALID foreign key on %s (ADD CONSTRAINT <name> ...) so a "
                        "later migration can VALIDATE CONSTRAINT it",
                        table);
            }
        }
    }
}

static void lint_file(struct lint *l, size_t fi)
{
    const struct sqlfile *f = &l->s->m[fi].up;
    struct names created = {0};
    char name[MIG_IDENT_MAX];
    size_t i;

    for (i = 0; i < f->nstmt; i++) {
        const struct stmt *st = &f->stmts[i];
        int conc = 0;

        if (is_tx_control(f, st)) {
            finding(l, f, st->line,
                    "transaction control in a migration: the runner wraps each migration in "
                    "its own transaction (or none, with " NO_TX_MARK ")");
        } else if (created_table(f, st, name, sizeof(name))) {
            names_add(&created, name);
        } else if (created_index(f, st, name, sizeof(name), &conc)) {
            if (!conc && !names_has(&created, name))
                finding(
                    l, f, st->line,
                    "CREATE INDEX on existing table %s without CONCURRENTLY blocks writes while it builds: "
                    "use CREATE INDEX CONCURRENTLY in a migration whose first line is " NO_TX_MARK,
                    name);
            if (conc && !f->no_tx)
                finding(l, f, st->line,
                        "CREATE INDEX CONCURRENTLY cannot run inside a transaction: make the first line of "
                        "the file " NO_TX_MARK);
        } else {
            lint_alter(l, fi, f, st, &created);
        }
    }
    free(created.v);
}

int gh_migrate_lint(const struct gh_migrate_opts *o)
{
    struct migset s = {0};
    struct lint l = {0};
    size_t i;
    int rc;

    if (!o || !o->dir)
        return GH_EINVAL;
    l.o = o;
    l.s = &s;
    rc = load_dir(o->dir, &s, out_of(o));
    if (rc != GH_OK && rc != GH_ECONFLICT)
        goto out;
    if (rc == GH_ECONFLICT)
        l.findings++;
    for (i = 0; i < s.n; i++)
        if (s.m[i].has_up && s.m[i].up.text)
            lint_file(&l, i);
    for (i = 0; i < l.nnv; i++)
        if (!l.nv[i].validated)
            finding(&l, &s.m[l.nv[i].file].up, l.nv[i].line,
                    "foreign key %s on %s is added NOT VALID but never validated: add ALTER TABLE %s "
                    "VALIDATE CONSTRAINT %s in a later migration",
                    l.nv[i].name, l.nv[i].table, l.nv[i].table, l.nv[i].name);
    rc = l.findings;
    if (rc == 0)
        say(out_of(o), "%s: %zu migration(s), no findings", o->dir, s.n);
out:
    free(l.nv);
    migset_cleanup(&s);
    return rc;
}
