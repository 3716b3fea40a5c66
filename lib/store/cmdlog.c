/* cmdlog.c - command_log and error_log, written off the request path.
 *
 * Path of an entry (one JSON object, "kind" "cmd" or "err"):
 *   1. gh_cmdlog_record / gh_errlog_record LPUSH it onto
 *      bot:{global}:cmdlog:pending (or errlog:pending) and return.
 *   2. Redis down: the entry is inserted into PostgreSQL directly.
 *   3. Both down: it is appended as one line to <run_dir>/cmdlog.spool
 *      (O_APPEND, one write under flock).
 *   4. Last resort (no spool either): the entry goes to the log as an error
 *      line, and GH_EIO is returned.
 *
 * gh_cmdlog_flush (the worker) holds bot:{global}:cmdlog:flushlock (60 s TTL,
 * released by token) so one flusher runs at a time, then for each list:
 * if :inflight is non-empty, a previous flush died or PostgreSQL failed, and
 * that batch is inserted again; otherwise up to max entries move from
 * :pending to :inflight in one script. The batch is inserted with one
 * INSERT ... SELECT FROM jsonb_to_recordset($1) in a transaction that first
 * creates missing guilds rows (so the foreign key holds); :inflight is
 * deleted only after COMMIT. A replayed batch inserts nothing twice:
 * command_log is unique on interaction_id, error_log on dedupe_key (a random
 * id given at record time), both with ON CONFLICT DO NOTHING.
 *
 * A batch that PostgreSQL rejects for its data (SQLSTATE class 22 or 23,
 * e.g. a NOT NULL or CHECK violation) would block the list for ever, so it
 * is retried one entry at a time and the entries that still fail are
 * dropped, each logged whole. Any other failure leaves the batch in place.
 *
 * The spool is replayed first by every flush: it is renamed to
 * cmdlog.spool.replaying (under the writers' flock, so no line lands in a
 * file already read), inserted in batches, and removed once all of it is in.
 * Writers that opened the old file re-check its inode after taking the lock
 * and reopen. A replay that fails leaves .replaying for the next flush. */
#include "store/cmdlog.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "core/config.h"
#include "core/ctx.h"
#include "core/err.h"
#include "core/log.h"
#include "core/str.h"
#include "core/timeutil.h"
#include "store/pg.h"
#include "store/redis.h"

#define CMDLOG_LOCK_MS 60000
#define CMDLOG_BATCH_BYTES (64u << 20)
#define CMDLOG_KEY_MAX 128
#define CMDLOG_ENTRY_MAX (8u << 20)
#define CMDLOG_MAX_BATCH 5000

enum kind { KIND_CMD, KIND_ERR };

struct kind_def {
    const char *name;    /* "cmd" / "err": the entry's "kind" */
    const char *feature; /* key prefix: cmdlog / errlog */
    const char *insert;  /* $1 = JSON array of entries */
};

static const char GUILDS_SQL[] =
    "INSERT INTO guilds (id) SELECT DISTINCT r.guild_id FROM jsonb_to_recordset($1::jsonb) "
    "AS r(guild_id bigint) WHERE r.guild_id IS NOT NULL ON CONFLICT (id) DO NOTHING";

static const struct kind_def KINDS[] = {
    [KIND_CMD] =
        {"cmd", "cmdlog",
         "INSERT INTO command_log (guild_id, user_id, channel_id, interaction_id, command, options, "
         "success, error, duration_us, corr, created_at) "
         "SELECT r.guild_id, r.user_id, r.channel_id, r.interaction_id, r.command, r.options, "
         "r.success, r.error, r.duration_us, r.corr, COALESCE(r.created_at, now()) "
         "FROM jsonb_to_recordset($1::jsonb) AS r(guild_id bigint, user_id bigint, channel_id bigint, "
         "interaction_id bigint, command text, options jsonb, success boolean, error text, "
         "duration_us integer, corr text, created_at timestamptz) "
         "ON CONFLICT (interaction_id) DO NOTHING"},
    [KIND_ERR] =
        {"err", "errlog",
         "INSERT INTO error_log (guild_id, component, message, context, backtrace, corr, dedupe_key, "
         "created_at) "
         "SELECT r.guild_id, r.component, r.message, r.context, r.backtrace, r.corr, r.dedupe_key, "
         "COALESCE(r.created_at, now()) "
         "FROM jsonb_to_recordset($1::jsonb) AS r(guild_id bigint, component text, message text, "
         "context jsonb, backtrace text, corr text, dedupe_key text, created_at timestamptz) "
         "ON CONFLICT (dedupe_key) DO NOTHING"},
};

/* KEYS[1] pending, KEYS[2] inflight; ARGV[1] max. Moves up to max, returns them. */
static const char TAKE_LUA[] = "local out = {} for i = 1, tonumber(ARGV[1]) do "
                               "local v = redis.call('LMOVE', KEYS[1], KEYS[2], 'RIGHT', 'LEFT') "
                               "if not v then break end out[#out + 1] = v end return out";
static const char UNLOCK_LUA[] = "if redis.call('GET', KEYS[1]) == ARGV[1] then "
                                 "return redis.call('DEL', KEYS[1]) end return 0";

__attribute__((format(printf, 3, 4))) static void cl_log(struct gh_ctx *ctx, enum gh_log_level lvl,
                                                         const char *fmt, ...)
{
    char msg[1024];
    va_list ap;

    if (!ctx->log.sink)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    gh_log(&ctx->log, lvl, 0, "cmdlog: %s", msg);
}

/* ---- entries --------------------------------------------------------------- */

static void add_snowflake(json_object *o, const char *name, uint64_t v)
{
    char s[24];

    if (v == 0) {
        json_object_object_add(o, name, NULL);
        return;
    }
    snprintf(s, sizeof(s), "%llu", (unsigned long long)v);
    json_object_object_add(o, name, json_object_new_string(s));
}

static void add_str(json_object *o, const char *name, const char *v)
{
    json_object_object_add(o, name, v ? json_object_new_string(v) : NULL);
}

/* Borrowed JSON text -> a member; text that does not parse is kept as a string. */
static void add_json(json_object *o, const char *name, const char *text)
{
    json_object *v;

    if (!text) {
        json_object_object_add(o, name, NULL);
        return;
    }
    v = json_tokener_parse(text);
    if (!v && strcmp(text, "null") != 0)
        v = json_object_new_string(text);
    json_object_object_add(o, name, v);
}

static void add_now(json_object *o)
{
    char iso[40];

    gh_iso8601(gh_now_ms(), iso, sizeof(iso));
    json_object_object_add(o, "created_at", json_object_new_string(iso));
}

/* ---- PostgreSQL -------------------------------------------------------------- */

static int data_error(const char *sqlstate)
{
    return strncmp(sqlstate, "22", 2) == 0 || strncmp(sqlstate, "23", 2) == 0;
}

/* Inserts the JSON array text in one transaction. GH_OK or GH_EPG. */
static int insert_array(struct gh_ctx *ctx, enum kind k, const char *array)
{
    const char *params[1] = {array};
    int rc = GH_EPG;

    if (!ctx->pg)
        return GH_EPG;
    if (gh_pg_begin(ctx->pg) != GH_OK)
        return GH_EPG;
    if (k == KIND_CMD && gh_pg_command(ctx->pg, GUILDS_SQL, 1, params) != GH_OK)
        goto out;
    if (gh_pg_command(ctx->pg, KINDS[k].insert, 1, params) != GH_OK)
        goto out;
    if (gh_pg_commit(ctx->pg) != GH_OK)
        goto out;
    rc = GH_OK;
out:
    if (rc != GH_OK)
        gh_pg_rollback(ctx->pg);
    return rc;
}

/* Inserts n entries (JSON texts). A batch rejected for its data is retried
 * entry by entry; entries rejected alone are dropped and logged. GH_OK when
 * every entry is either in or dropped, GH_EPG when the batch must stay. */
static int insert_entries(struct gh_ctx *ctx, enum kind k, char **entries, size_t n)
{
    struct gh_buf b;
    size_t i, used = 0;
    int rc = GH_ENOMEM;

    gh_buf_init(&b, CMDLOG_BATCH_BYTES);
    if (gh_buf_puts(&b, "[") != GH_OK)
        goto out;
    for (i = 0; i < n; i++) {
        json_object *probe = json_tokener_parse(entries[i]);
        int ok = probe && json_object_is_type(probe, json_type_object);

        json_object_put(probe);
        if (!ok) {
            cl_log(ctx, GH_LOG_ERROR, "dropped a malformed %s entry: %.300s", KINDS[k].name, entries[i]);
            continue;
        }
        if ((used && gh_buf_puts(&b, ",") != GH_OK) || gh_buf_puts(&b, entries[i]) != GH_OK)
            goto out;
        used++;
    }
    if (gh_buf_puts(&b, "]") != GH_OK)
        goto out;
    if (used == 0) {
        rc = GH_OK;
        goto out;
    }
    rc = insert_array(ctx, k, gh_buf_cstr(&b));
    if (rc == GH_OK || !data_error(gh_pg_sqlstate(ctx->pg)))
        goto out;

    cl_log(ctx, GH_LOG_WARN, "a %s batch of %zu was rejected (%s); inserting one by one", KINDS[k].name, used,
           gh_pg_sqlstate(ctx->pg));
    for (i = 0; i < n; i++) {
        gh_buf_reset(&b);
        if (gh_buf_printf(&b, "[%s]", entries[i]) != GH_OK) {
            rc = GH_ENOMEM;
            goto out;
        }
        if (insert_array(ctx, k, gh_buf_cstr(&b)) == GH_OK)
            continue;
        if (!data_error(gh_pg_sqlstate(ctx->pg))) {
            rc = GH_EPG;
            goto out;
        }
        cl_log(ctx, GH_LOG_ERROR, "dropped a %s entry PostgreSQL rejects (%s: %s): %.500s", KINDS[k].name,
               gh_pg_sqlstate(ctx->pg), gh_pg_errmsg(ctx->pg), entries[i]);
    }
    rc = GH_OK;
out:
    gh_buf_cleanup(&b);
    return rc;
}

/* ---- spool ------------------------------------------------------------------- */

static int spool_path(struct gh_ctx *ctx, char *out, size_t size, const char *suffix)
{
    if (!ctx->cfg || !ctx->cfg->run_dir[0])
        return GH_ECONFIG;
    return gh_snprintf(out, size, "%s/cmdlog.spool%s", ctx->cfg->run_dir, suffix);
}

static int spool_append(struct gh_ctx *ctx, const char *line)
{
    char path[600];
    struct stat fs, ps;
    size_t len = strlen(line);
    int fd = -1, tries, rc = GH_EIO;
    char *buf = NULL;

    if (spool_path(ctx, path, sizeof(path), "") != GH_OK)
        return GH_ECONFIG;
    buf = malloc(len + 1);
    if (!buf)
        return GH_ENOMEM;
    memcpy(buf, line, len);
    buf[len] = '\n';
    for (tries = 0; tries < 5; tries++) {
        fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
        if (fd < 0)
            break;
        if (flock(fd, LOCK_EX) != 0)
            break;
        /* A replay may have renamed the file between open and lock. */
        if (fstat(fd, &fs) == 0 && stat(path, &ps) == 0 && fs.st_ino == ps.st_ino && fs.st_dev == ps.st_dev) {
            ssize_t w = write(fd, buf, len + 1);

            rc = w == (ssize_t)(len + 1) ? GH_OK : GH_EIO;
            break;
        }
        close(fd);
        fd = -1;
    }
    if (rc != GH_OK && ctx->log.sink)
        gh_log(&ctx->log, GH_LOG_ERROR, errno, "cmdlog: cannot write the spool %s", path);
    if (fd >= 0)
        close(fd);
    free(buf);
    return rc;
}

static void free_lines(char **lines, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++)
        free(lines[i]);
}

/* Kind of a spooled line; -1 when unknown. */
static int line_kind(const char *line)
{
    json_object *o = json_tokener_parse(line), *k = NULL;
    int kind = -1;

    if (o && json_object_object_get_ex(o, "kind", &k) && json_object_is_type(k, json_type_string)) {
        if (strcmp(json_object_get_string(k), "cmd") == 0)
            kind = KIND_CMD;
        else if (strcmp(json_object_get_string(k), "err") == 0)
            kind = KIND_ERR;
    }
    json_object_put(o);
    return kind;
}

/* Inserts every line of the replaying file, batch by batch. */
static int replay_file(struct gh_ctx *ctx, const char *path, int max, int *written)
{
    FILE *f = fopen(path, "re");
    char **batch[2] = {NULL, NULL};
    size_t nb[2] = {0, 0}, cap = (size_t)max;
    char *line = NULL;
    size_t linecap = 0;
    ssize_t len;
    int rc = GH_ENOMEM, k;

    if (!f)
        return errno == ENOENT ? GH_OK : GH_EIO;
    batch[0] = calloc(cap, sizeof(char *));
    batch[1] = calloc(cap, sizeof(char *));
    if (!batch[0] || !batch[1])
        goto out;
    while ((len = getline(&line, &linecap, f)) >= 0) {
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        if (len == 0)
            continue;
        k = line_kind(line);
        if (k < 0) {
            cl_log(ctx, GH_LOG_ERROR, "dropped a malformed spool line: %.300s", line);
            continue;
        }
        batch[k][nb[k]] = strdup(line);
        if (!batch[k][nb[k]])
            goto out;
        if (++nb[k] == cap) {
            rc = insert_entries(ctx, (enum kind)k, batch[k], nb[k]);
            if (rc != GH_OK)
                goto out;
            *written += (int)nb[k];
            free_lines(batch[k], nb[k]);
            nb[k] = 0;
        }
    }
    for (k = 0; k < 2; k++) {
        if (nb[k] == 0)
            continue;
        rc = insert_entries(ctx, (enum kind)k, batch[k], nb[k]);
        if (rc != GH_OK)
            goto out;
        *written += (int)nb[k];
    }
    rc = GH_OK;
out:
    for (k = 0; k < 2; k++) {
        if (batch[k])
            free_lines(batch[k], nb[k]);
        free(batch[k]);
    }
    free(line);
    fclose(f);
    return rc;
}

static int spool_replay(struct gh_ctx *ctx, int max, int *written)
{
    char path[600], replaying[620], lockpath[620];
    int lockfd = -1, fd, rc = GH_OK;

    if (spool_path(ctx, path, sizeof(path), "") != GH_OK ||
        spool_path(ctx, replaying, sizeof(replaying), ".replaying") != GH_OK ||
        spool_path(ctx, lockpath, sizeof(lockpath), ".lock") != GH_OK)
        return GH_OK; /* no run dir: no spool */
    if (access(path, F_OK) != 0 && access(replaying, F_OK) != 0)
        return GH_OK;
    lockfd = open(lockpath, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (lockfd < 0 || flock(lockfd, LOCK_EX | LOCK_NB) != 0)
        goto out; /* another process is replaying */
    if (access(replaying, F_OK) != 0) {
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            goto out;
        if (flock(fd, LOCK_EX) != 0 || rename(path, replaying) != 0) {
            if (ctx->log.sink)
                gh_log(&ctx->log, GH_LOG_ERROR, errno, "cmdlog: cannot move the spool %s aside", path);
            close(fd);
            rc = GH_EIO;
            goto out;
        }
        close(fd);
    }
    rc = replay_file(ctx, replaying, max, written);
    if (rc == GH_OK) {
        unlink(replaying);
        cl_log(ctx, GH_LOG_INFO, "spool replayed");
    } else {
        cl_log(ctx, GH_LOG_WARN, "spool replay failed (%s); %s kept for the next flush", gh_strerror(rc),
               replaying);
    }
out:
    if (lockfd >= 0)
        close(lockfd);
    return rc;
}

/* ---- recording ------------------------------------------------------------ */

static int key(char *out, enum kind k, const char *which)
{
    return gh_key_global(out, CMDLOG_KEY_MAX, KINDS[k].feature, "%s", which);
}

static int push(struct gh_ctx *ctx, enum kind k, const char *text)
{
    char pending[CMDLOG_KEY_MAX];
    char *batch[1];
    redisReply *rep = NULL;
    int rc;

    if (ctx->redis && key(pending, k, "pending") == GH_OK) {
        rep = gh_redis_cmd(ctx->redis, "LPUSH %s %s", pending, text);
        rc = rep && rep->type == REDIS_REPLY_INTEGER ? GH_OK : GH_EREDIS;
        freeReplyObject(rep);
        if (rc == GH_OK)
            return GH_OK;
    }
    batch[0] = (char *)text;
    if (ctx->pg && insert_entries(ctx, k, batch, 1) == GH_OK) {
        cl_log(ctx, GH_LOG_WARN, "Redis unavailable: %s entry written directly", KINDS[k].name);
        return GH_OK;
    }
    if (spool_append(ctx, text) == GH_OK) {
        cl_log(ctx, GH_LOG_WARN, "Redis and PostgreSQL unavailable: %s entry spooled", KINDS[k].name);
        return GH_OK;
    }
    cl_log(ctx, GH_LOG_CRIT, "%s entry could not be stored anywhere: %.1000s", KINDS[k].name, text);
    return GH_EIO;
}

/* Entry text builders: the same members, in the same order, as the
 * json-c object the worker's jsonb_to_recordset reads. */
static int put_snowflake(struct gh_buf *b, const char *name, uint64_t v)
{
    if (v == 0)
        return gh_buf_printf(b, ",\"%s\":null", name);
    return gh_buf_printf(b, ",\"%s\":\"%llu\"", name, (unsigned long long)v);
}

static int put_str(struct gh_buf *b, const char *name, const char *v)
{
    int rc;

    if (!v)
        return gh_buf_printf(b, ",\"%s\":null", name);
    rc = gh_buf_printf(b, ",\"%s\":\"", name);
    if (rc == GH_OK)
        rc = gh_buf_append_json_escaped(b, v, strlen(v));
    if (rc == GH_OK)
        rc = gh_buf_puts(b, "\"");
    return rc;
}

/* Options: verbatim text is copied; other text is parsed (text that does not
 * parse is kept as a string), as add_json does. */
static int put_options(struct gh_buf *b, const char *text, int verbatim)
{
    json_object *v;
    int rc;

    if (!text || (verbatim && !*text))
        return gh_buf_puts(b, ",\"options\":null");
    if (verbatim) {
        rc = gh_buf_puts(b, ",\"options\":");
        return rc == GH_OK ? gh_buf_puts(b, text) : rc;
    }
    v = json_tokener_parse(text);
    if (!v && strcmp(text, "null") != 0)
        return put_str(b, "options", text);
    rc = gh_buf_puts(b, ",\"options\":");
    if (rc == GH_OK)
        rc = gh_buf_puts(b, v ? json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN) : "null");
    json_object_put(v);
    return rc;
}

int gh_cmdlog_record(struct gh_ctx *ctx, const struct gh_cmdlog_entry *e)
{
    struct gh_buf b;
    char iso[40];
    const char *corr;
    int rc;

    if (!ctx || !e || !e->command || !*e->command || e->user_id == 0 || e->duration_us < 0)
        return GH_EINVAL;
    corr = e->corr && *e->corr ? e->corr : (ctx->log.corr[0] ? ctx->log.corr : NULL);
    gh_iso8601(gh_now_ms(), iso, sizeof(iso));
    gh_buf_init(&b, CMDLOG_ENTRY_MAX);
    rc = gh_buf_puts(&b, "{\"kind\":\"cmd\"");
    if (rc == GH_OK)
        rc = put_snowflake(&b, "guild_id", e->guild_id);
    if (rc == GH_OK)
        rc = put_snowflake(&b, "user_id", e->user_id);
    if (rc == GH_OK)
        rc = put_snowflake(&b, "channel_id", e->channel_id);
    if (rc == GH_OK)
        rc = put_snowflake(&b, "interaction_id", e->interaction_id);
    if (rc == GH_OK)
        rc = put_str(&b, "command", e->command);
    if (rc == GH_OK)
        rc = put_options(&b, e->options_json, e->options_verbatim);
    if (rc == GH_OK)
        rc = gh_buf_printf(&b, ",\"success\":%s", e->success ? "true" : "false");
    if (rc == GH_OK)
        rc = put_str(&b, "error", e->error);
    if (rc == GH_OK)
        rc = gh_buf_printf(&b, ",\"duration_us\":%d", e->duration_us);
    if (rc == GH_OK)
        rc = put_str(&b, "corr", corr);
    if (rc == GH_OK)
        rc = put_str(&b, "created_at", iso);
    if (rc == GH_OK)
        rc = gh_buf_puts(&b, "}");
    if (rc == GH_OK)
        rc = push(ctx, KIND_CMD, gh_buf_cstr(&b));
    gh_buf_cleanup(&b);
    return rc;
}

int gh_errlog_record(struct gh_ctx *ctx, const char *component, const char *message, const char *context_json,
                     const char *backtrace)
{
    unsigned char rnd[16];
    char dedupe[40];
    json_object *o;
    size_t i;
    int rc;

    if (!ctx || !component || !*component || !message)
        return GH_EINVAL;
    if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
        return GH_EIO;
    for (i = 0; i < sizeof(rnd); i++)
        snprintf(dedupe + 2 * i, 3, "%02x", rnd[i]);
    o = json_object_new_object();
    if (!o)
        return GH_ENOMEM;
    json_object_object_add(o, "kind", json_object_new_string("err"));
    add_snowflake(o, "guild_id", ctx->log.guild_id);
    add_str(o, "component", component);
    add_str(o, "message", message);
    add_json(o, "context", context_json);
    add_str(o, "backtrace", backtrace);
    add_str(o, "corr", ctx->log.corr[0] ? ctx->log.corr : NULL);
    add_str(o, "dedupe_key", dedupe);
    add_now(o);
    rc = push(ctx, KIND_ERR, json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
    json_object_put(o);
    return rc;
}

/* ---- flushing ----------------------------------------------------------------- */

/* Copies the string elements of an array reply. */
static int reply_lines(const redisReply *rep, char ***out, size_t *n)
{
    size_t i;

    *out = NULL;
    *n = 0;
    if (!rep || rep->type != REDIS_REPLY_ARRAY)
        return GH_EREDIS;
    if (rep->elements == 0)
        return GH_OK;
    *out = calloc(rep->elements, sizeof(char *));
    if (!*out)
        return GH_ENOMEM;
    for (i = 0; i < rep->elements; i++) {
        if (rep->element[i]->type != REDIS_REPLY_STRING)
            continue;
        (*out)[*n] = strdup(rep->element[i]->str);
        if (!(*out)[*n]) {
            free_lines(*out, *n);
            free(*out);
            *out = NULL;
            *n = 0;
            return GH_ENOMEM;
        }
        (*n)++;
    }
    return GH_OK;
}

static int flush_list(struct gh_ctx *ctx, enum kind k, int max, int *written)
{
    char pending[CMDLOG_KEY_MAX], inflight[CMDLOG_KEY_MAX];
    redisReply *rep = NULL;
    char **lines = NULL;
    size_t n = 0;
    int rc, retry = 0;

    if (key(pending, k, "pending") != GH_OK || key(inflight, k, "inflight") != GH_OK)
        return GH_ETOOBIG;
    rep = gh_redis_cmd(ctx->redis, "LRANGE %s 0 -1", inflight);
    rc = reply_lines(rep, &lines, &n);
    if (rc != GH_OK)
        goto out;
    if (n > 0) {
        retry = 1;
    } else {
        freeReplyObject(rep);
        rep = gh_redis_cmd(ctx->redis, "EVAL %s 2 %s %s %d", TAKE_LUA, pending, inflight, max);
        free(lines);
        rc = reply_lines(rep, &lines, &n);
        if (rc != GH_OK || n == 0)
            goto out;
    }
    rc = insert_entries(ctx, k, lines, n);
    if (rc != GH_OK) {
        cl_log(ctx, GH_LOG_WARN, "%zu %s entries stay in %s until PostgreSQL takes them (%s)", n,
               KINDS[k].name, inflight, ctx->pg ? gh_pg_errmsg(ctx->pg) : "no connection");
        goto out;
    }
    freeReplyObject(rep);
    rep = gh_redis_cmd(ctx->redis, "DEL %s", inflight);
    if (!rep || rep->type != REDIS_REPLY_INTEGER) {
        /* Written, but the batch may be inserted again: harmless (ON CONFLICT). */
        cl_log(ctx, GH_LOG_WARN, "%s written but %s not cleared; the next flush re-sends it", KINDS[k].name,
               inflight);
        rc = GH_EREDIS;
    }
    *written += (int)n;
    if (retry)
        cl_log(ctx, GH_LOG_INFO, "%zu %s entries left from an earlier flush written", n, KINDS[k].name);
out:
    free_lines(lines, n);
    free(lines);
    freeReplyObject(rep);
    return rc;
}

int gh_cmdlog_flush(struct gh_ctx *ctx, int max)
{
    char lock[CMDLOG_KEY_MAX];
    unsigned char rnd[12];
    char token[32];
    redisReply *rep = NULL;
    int written = 0, rc = GH_OK, r;
    size_t i;

    if (!ctx || max <= 0)
        return GH_EINVAL;
    if (max > CMDLOG_MAX_BATCH)
        max = CMDLOG_MAX_BATCH;

    r = spool_replay(ctx, max, &written);
    if (r != GH_OK)
        rc = r;

    if (!ctx->redis)
        return rc != GH_OK ? rc : written;
    if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
        return GH_EIO;
    for (i = 0; i < sizeof(rnd); i++)
        snprintf(token + 2 * i, 3, "%02x", rnd[i]);
    if (gh_key_global(lock, sizeof(lock), "cmdlog", "flushlock") != GH_OK)
        return GH_ETOOBIG;
    rep = gh_redis_cmd(ctx->redis, "SET %s %s NX PX %d", lock, token, CMDLOG_LOCK_MS);
    if (!rep || rep->type == REDIS_REPLY_ERROR) {
        freeReplyObject(rep);
        return rc != GH_OK ? rc : GH_EREDIS;
    }
    if (rep->type == REDIS_REPLY_NIL) { /* another flusher is at work */
        freeReplyObject(rep);
        return rc != GH_OK ? rc : written;
    }
    freeReplyObject(rep);

    r = flush_list(ctx, KIND_CMD, max, &written);
    if (r != GH_OK)
        rc = r;
    r = flush_list(ctx, KIND_ERR, max, &written);
    if (r != GH_OK && rc == GH_OK)
        rc = r;

    freeReplyObject(gh_redis_cmd(ctx->redis, "EVAL %s 1 %s %s", UNLOCK_LUA, lock, token));
    return rc != GH_OK ? rc : written;
}
