/* redis.c - one Redis connection (hiredis 0.14) with connect/command
 * timeouts and reconnect.
 *
 * States: connected (c != NULL) or down (c == NULL). A command on a down
 * connection first tries to connect, but never sooner than 250 ms after the
 * last failed connect, so a dead Redis costs one refused connect per 250 ms,
 * not one per call. When a command fails (NULL reply, ctx->err) the context
 * is freed; the next call may reconnect at once (a broken connection is not
 * a dead server), and only a failed connect starts the 250 ms back-off.
 *
 * Before sending on an idle connection the socket is polled without
 * blocking: Redis never writes to an idle client, so anything readable is
 * the server closing it (CLIENT KILL, timeout, restart). Such a connection
 * is replaced before the command is sent, so the command is not lost. A
 * command that fails after it was sent is not retried (it may have run).
 *
 * The URL may carry a password (redis://:pass@host:port/db, or user:pass for
 * Redis 6 ACLs): AUTH, then SELECT db, on every connect. */
#include "store/redis.h"

#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "core/err.h"
#include "core/log.h"
#include "core/str.h"
#include "core/timeutil.h"

#define REDIS_RECONNECT_MS 250
#define REDIS_DEFAULT_PORT 6379

struct gh_redis {
    char host[256];
    int port;
    int db;
    char user[128];
    char pass[256];
    int timeout_ms;
    const struct gh_logger *lg;
    redisContext *c;
    int64_t next_connect_ms; /* monotonic; 0 = may connect now */
    int pending;             /* appended commands whose replies are not read yet */
    int was_down;            /* for logging transitions only */
};

static struct timeval ms_to_tv(int ms)
{
    struct timeval tv;

    tv.tv_sec = ms / 1000;
    tv.tv_usec = (suseconds_t)(ms % 1000) * 1000;
    return tv;
}

static int log_on(const struct gh_redis *r)
{
    return r->lg && r->lg->sink;
}

/* ---- URL --------------------------------------------------------------- */

static int parse_url(struct gh_redis *r, const char *url)
{
    const char *p, *at, *hostend, *slash;
    size_t n;
    char num[16];

    if (strncmp(url, "redis://", 8) != 0)
        return GH_EINVAL;
    p = url + 8;
    slash = strchr(p, '/');
    at = memchr(p, '@', slash ? (size_t)(slash - p) : strlen(p));
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));

        if (colon) {
            if ((size_t)(colon - p) >= sizeof(r->user) || (size_t)(at - colon - 1) >= sizeof(r->pass))
                return GH_EINVAL;
            memcpy(r->user, p, (size_t)(colon - p));
            memcpy(r->pass, colon + 1, (size_t)(at - colon - 1));
        } else {
            if ((size_t)(at - p) >= sizeof(r->pass))
                return GH_EINVAL;
            memcpy(r->pass, p, (size_t)(at - p));
        }
        p = at + 1;
    }
    if (*p == '[') { /* [ipv6]:port */
        hostend = strchr(p, ']');
        if (!hostend)
            return GH_EINVAL;
        n = (size_t)(hostend - p - 1);
        if (n == 0 || n >= sizeof(r->host))
            return GH_EINVAL;
        memcpy(r->host, p + 1, n);
        p = hostend + 1;
    } else {
        hostend = p + strcspn(p, ":/");
        n = (size_t)(hostend - p);
        if (n == 0 || n >= sizeof(r->host))
            return GH_EINVAL;
        memcpy(r->host, p, n);
        p = hostend;
    }
    r->host[n] = '\0';
    r->port = REDIS_DEFAULT_PORT;
    if (*p == ':') {
        uint64_t v;

        n = strcspn(p + 1, "/");
        if (n == 0 || n >= sizeof(num))
            return GH_EINVAL;
        memcpy(num, p + 1, n);
        num[n] = '\0';
        if (gh_cstr_to_u64(num, &v) != GH_OK || v == 0 || v > 65535)
            return GH_EINVAL;
        r->port = (int)v;
        p += 1 + n;
    }
    r->db = 0;
    if (*p == '/') {
        uint64_t v;

        p++;
        if (*p) {
            if (gh_cstr_to_u64(p, &v) != GH_OK || v > 1000)
                return GH_EINVAL;
            r->db = (int)v;
        }
    } else if (*p) {
        return GH_EINVAL;
    }
    return GH_OK;
}

/* ---- connection ---------------------------------------------------------- */

static void drop_ctx(struct gh_redis *r, const char *why)
{
    if (!r->c)
        return;
    if (log_on(r))
        gh_log(r->lg, GH_LOG_WARN, 0, "redis %s:%d: %s%s%s; connection dropped", r->host, r->port, why,
               r->c->err ? ": " : "", r->c->err ? r->c->errstr : "");
    redisFree(r->c);
    r->c = NULL;
}

/* Runs AUTH or SELECT right after connecting. */
static int setup_cmd(struct gh_redis *r, const char *what, redisReply *rep)
{
    int ok = rep && rep->type == REDIS_REPLY_STATUS;

    if (!ok && log_on(r))
        gh_log(r->lg, GH_LOG_ERROR, 0, "redis %s:%d: %s failed: %s", r->host, r->port, what,
               rep && rep->type == REDIS_REPLY_ERROR ? rep->str : (r->c->err ? r->c->errstr : "no reply"));
    freeReplyObject(rep);
    return ok ? GH_OK : GH_EREDIS;
}

static int connect_now(struct gh_redis *r)
{
    redisContext *c;
    struct timeval tv = ms_to_tv(r->timeout_ms);

    r->next_connect_ms = gh_mono_ms() + REDIS_RECONNECT_MS;
    c = redisConnectWithTimeout(r->host, r->port, tv);
    if (!c || c->err) {
        if (log_on(r) && !r->was_down)
            gh_log(r->lg, GH_LOG_ERROR, 0, "redis %s:%d: connect failed: %s (retrying at most every %d ms)",
                   r->host, r->port, c ? c->errstr : "out of memory", REDIS_RECONNECT_MS);
        redisFree(c);
        r->was_down = 1;
        return GH_EREDIS;
    }
    r->c = c;
    if (redisSetTimeout(c, tv) != REDIS_OK)
        goto fail;
    (void)redisEnableKeepAlive(c);
    if (r->pass[0]) {
        redisReply *rep = r->user[0] ? redisCommand(c, "AUTH %s %s", r->user, r->pass)
                                     : redisCommand(c, "AUTH %s", r->pass);
        if (setup_cmd(r, "AUTH", rep) != GH_OK)
            goto fail;
    }
    if (r->db != 0 && setup_cmd(r, "SELECT", redisCommand(c, "SELECT %d", r->db)) != GH_OK)
        goto fail;
    if (r->was_down && log_on(r))
        gh_log(r->lg, GH_LOG_INFO, 0, "redis %s:%d: connected", r->host, r->port);
    r->was_down = 0;
    r->next_connect_ms = 0;
    return GH_OK;
fail:
    redisFree(r->c);
    r->c = NULL;
    r->was_down = 1;
    return GH_EREDIS;
}

/* Redis never writes to an idle (non-pubsub) client: readable means closed. */
static int idle_ctx_dead(redisContext *c)
{
    struct pollfd p = {.fd = c->fd, .events = POLLIN};

    if (c->err || c->fd < 0)
        return 1;
    return poll(&p, 1, 0) > 0;
}

/* A caller that appended a batch and did not read every reply would leave
 * the connection owing replies to the next command (or, with no connection,
 * refusing every command for good). The next plain command settles it: the
 * connection is dropped and the count reset, and the mistake logged. */
static void settle_abandoned_batch(struct gh_redis *r)
{
    if (r->pending <= 0)
        return;
    if (log_on(r))
        gh_log(r->lg, GH_LOG_ERROR, 0, "redis %s:%d: %d pipelined replies were never read (a caller's bug)",
               r->host, r->port, r->pending);
    drop_ctx(r, "abandoned pipeline");
    r->pending = 0;
    r->next_connect_ms = 0;
}

/* Ready to send a command: GH_OK with r->c set, or GH_EREDIS. */
static int ensure(struct gh_redis *r)
{
    if (r->c && r->pending == 0 && idle_ctx_dead(r->c)) {
        drop_ctx(r, "server closed the idle connection");
        r->next_connect_ms = 0;
    }
    if (r->c)
        return GH_OK;
    if (r->next_connect_ms && gh_mono_ms() < r->next_connect_ms)
        return GH_EREDIS;
    return connect_now(r);
}

/* After a command: NULL reply or context error -> drop the context. */
static redisReply *check_reply(struct gh_redis *r, void *reply)
{
    if (!reply || r->c->err) {
        freeReplyObject(reply);
        drop_ctx(r, "command failed");
        r->next_connect_ms = 0;
        return NULL;
    }
    return reply;
}

/* ---- public ---------------------------------------------------------------- */

struct gh_redis *gh_redis_new(const char *url, int timeout_ms, const struct gh_logger *lg)
{
    struct gh_redis *r;

    if (!url)
        return NULL;
    r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    if (parse_url(r, url) != GH_OK) {
        if (lg && lg->sink)
            gh_log(lg, GH_LOG_ERROR, 0, "redis: malformed URL (want redis://host:port[/db])");
        explicit_bzero(r, sizeof(*r));
        free(r);
        return NULL;
    }
    r->timeout_ms = timeout_ms > 0 ? timeout_ms : 500;
    r->lg = lg;
    return r;
}

void gh_redis_free(struct gh_redis *r)
{
    if (!r)
        return;
    redisFree(r->c);
    explicit_bzero(r, sizeof(*r));
    free(r);
}

static redisReply *vcmd(struct gh_redis *r, const char *fmt, va_list ap)
{
    if (r)
        settle_abandoned_batch(r);
    if (!r || !fmt || ensure(r) != GH_OK)
        return NULL;
    return check_reply(r, redisvCommand(r->c, fmt, ap));
}

redisReply *gh_redis_cmd(struct gh_redis *r, const char *fmt, ...)
{
    va_list ap;
    redisReply *rep;

    va_start(ap, fmt);
    rep = vcmd(r, fmt, ap);
    va_end(ap);
    return rep;
}

redisReply *gh_redis_cmd_timeout(struct gh_redis *r, int timeout_ms, const char *fmt, ...)
{
    va_list ap;
    redisReply *rep;

    if (r)
        settle_abandoned_batch(r);
    if (!r || !fmt || ensure(r) != GH_OK)
        return NULL;
    if (redisSetTimeout(r->c, ms_to_tv(timeout_ms > 0 ? timeout_ms : r->timeout_ms)) != REDIS_OK) {
        drop_ctx(r, "setting the socket timeout failed");
        return NULL;
    }
    va_start(ap, fmt);
    rep = check_reply(r, redisvCommand(r->c, fmt, ap));
    va_end(ap);
    if (r->c && redisSetTimeout(r->c, ms_to_tv(r->timeout_ms)) != REDIS_OK)
        drop_ctx(r, "restoring the socket timeout failed");
    return rep;
}

redisReply *gh_redis_cmdargv(struct gh_redis *r, int argc, const char **argv, const size_t *argvlen)
{
    if (r)
        settle_abandoned_batch(r);
    if (!r || argc <= 0 || !argv || ensure(r) != GH_OK)
        return NULL;
    return check_reply(r, redisCommandArgv(r->c, argc, argv, argvlen));
}

/* Pipelining. Once one append of a batch fails, every later append of the
 * same batch fails too (a reconnect in the middle would pair replies with
 * the wrong commands); gh_redis_get_reply then returns NULL for each. */
int gh_redis_append(struct gh_redis *r, const char *fmt, ...)
{
    va_list ap;
    int rc;

    if (!r || !fmt)
        return GH_EINVAL;
    if (r->pending > 0 && !r->c) {
        r->pending++;
        return GH_EREDIS;
    }
    if (r->pending == 0 && ensure(r) != GH_OK) {
        r->pending++;
        return GH_EREDIS;
    }
    va_start(ap, fmt);
    rc = redisvAppendCommand(r->c, fmt, ap);
    va_end(ap);
    r->pending++;
    if (rc != REDIS_OK) {
        drop_ctx(r, "append failed");
        return GH_EREDIS;
    }
    return GH_OK;
}

/* ---- commands built in wire format -------------------------------------- */

static void rcmd_put(struct gh_rcmd *c, const char *p, size_t n)
{
    if (c->oom)
        return;
    if (c->len + n + 1 > c->cap) {
        size_t cap = c->cap ? c->cap : 256;
        while (c->len + n + 1 > cap)
            cap *= 2;
        char *d = realloc(c->data, cap);
        if (!d) {
            c->oom = 1;
            return;
        }
        c->data = d;
        c->cap = cap;
    }
    memcpy(c->data + c->len, p, n);
    c->len += n;
}

/* Decimal digits of v into the end of buf (size 24); returns the start. */
static char *u64_digits(char *end, uint64_t v)
{
    do {
        *--end = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return end;
}

static void rcmd_header(struct gh_rcmd *c, char kind, uint64_t n)
{
    char buf[24], *p = u64_digits(buf + sizeof(buf) - 2, n);
    buf[sizeof(buf) - 2] = '\r';
    buf[sizeof(buf) - 1] = '\n';
    *--p = kind;
    rcmd_put(c, p, (size_t)(buf + sizeof(buf) - p));
}

void gh_rcmd_begin(struct gh_rcmd *c, int argc)
{
    c->len = 0;
    c->argc = 0;
    c->want = argc;
    c->oom = 0;
    rcmd_header(c, '*', (uint64_t)argc);
}

void gh_rcmd_str(struct gh_rcmd *c, const char *s, size_t n)
{
    rcmd_header(c, '$', n);
    rcmd_put(c, s, n);
    rcmd_put(c, "\r\n", 2);
    c->argc++;
}

void gh_rcmd_cstr(struct gh_rcmd *c, const char *s)
{
    gh_rcmd_str(c, s, strlen(s));
}

void gh_rcmd_u64(struct gh_rcmd *c, uint64_t v)
{
    char buf[24], *p = u64_digits(buf + sizeof(buf), v);
    gh_rcmd_str(c, p, (size_t)(buf + sizeof(buf) - p));
}

void gh_rcmd_i64(struct gh_rcmd *c, int64_t v)
{
    char buf[24], *p;
    if (v >= 0) {
        gh_rcmd_u64(c, (uint64_t)v);
        return;
    }
    p = u64_digits(buf + sizeof(buf), (uint64_t)0 - (uint64_t)v);
    *--p = '-';
    gh_rcmd_str(c, p, (size_t)(buf + sizeof(buf) - p));
}

void gh_rcmd_key_guild(struct gh_rcmd *c, uint64_t guild_id, const char *feature, const char *name,
                       uint64_t id)
{
    char buf[160], d[24], *p;
    size_t n = 0, fl = strlen(feature), nl = strlen(name);
    if (fl + nl + 70 > sizeof(buf)) {
        c->oom = 1; /* never with the hot path's names */
        return;
    }
    memcpy(buf, "bot:{", 5);
    n = 5;
    p = u64_digits(d + sizeof(d), guild_id);
    memcpy(buf + n, p, (size_t)(d + sizeof(d) - p));
    n += (size_t)(d + sizeof(d) - p);
    memcpy(buf + n, "}:", 2);
    n += 2;
    memcpy(buf + n, feature, fl);
    n += fl;
    buf[n++] = ':';
    memcpy(buf + n, name, nl);
    n += nl;
    if (id) {
        p = u64_digits(d + sizeof(d), id);
        memcpy(buf + n, p, (size_t)(d + sizeof(d) - p));
        n += (size_t)(d + sizeof(d) - p);
    }
    gh_rcmd_str(c, buf, n);
}

void gh_rcmd_cleanup(struct gh_rcmd *c)
{
    free(c->data);
    memset(c, 0, sizeof(*c));
}

int gh_redis_append_rcmd(struct gh_redis *r, struct gh_rcmd *c)
{
    if (!r || !c)
        return GH_EINVAL;
    if (c->oom || c->argc != c->want || c->argc == 0) {
        r->pending++; /* its reply reads as NULL, like a failed append */
        if (r->c)
            drop_ctx(r, c->oom ? "out of memory building a command" : "malformed command");
        return c->oom ? GH_ENOMEM : GH_EINVAL;
    }
    if (r->pending > 0 && !r->c) {
        r->pending++;
        return GH_EREDIS;
    }
    if (r->pending == 0 && ensure(r) != GH_OK) {
        r->pending++;
        return GH_EREDIS;
    }
    r->pending++;
    if (redisAppendFormattedCommand(r->c, c->data, c->len) != REDIS_OK) {
        drop_ctx(r, "append failed");
        return GH_EREDIS;
    }
    return GH_OK;
}

redisReply *gh_redis_get_reply(struct gh_redis *r)
{
    void *reply = NULL;

    if (!r || r->pending <= 0)
        return NULL;
    r->pending--;
    if (!r->c)
        return NULL;
    if (redisGetReply(r->c, &reply) != REDIS_OK || !reply) {
        freeReplyObject(reply);
        drop_ctx(r, "reading a pipelined reply failed");
        r->next_connect_ms = 0;
        return NULL;
    }
    return reply;
}

int gh_redis_ping(struct gh_redis *r)
{
    redisReply *rep = gh_redis_cmd(r, "PING");
    int ok = rep && rep->type == REDIS_REPLY_STATUS && strcmp(rep->str, "PONG") == 0;

    freeReplyObject(rep);
    return ok ? GH_OK : GH_EREDIS;
}

redisContext *gh_redis_ctx(struct gh_redis *r)
{
    return r ? r->c : NULL;
}

/* ---- keys ---------------------------------------------------------------- */

__attribute__((format(printf, 4, 0))) static int key_tail(char *out, size_t size, int used, const char *fmt,
                                                          va_list ap)
{
    int n;

    if (used < 0 || (size_t)used >= size)
        return GH_ETOOBIG;
    n = vsnprintf(out + used, size - (size_t)used, fmt, ap);
    if (n < 0 || (size_t)n >= size - (size_t)used)
        return GH_ETOOBIG;
    return GH_OK;
}

int gh_key_guild(char *out, size_t size, unsigned long long guild_id, const char *feature, const char *fmt,
                 ...)
{
    va_list ap;
    int used, rc;

    if (!out || size == 0 || !feature || !fmt)
        return GH_EINVAL;
    used = snprintf(out, size, "bot:{%llu}:%s:", guild_id, feature);
    va_start(ap, fmt);
    rc = key_tail(out, size, used, fmt, ap);
    va_end(ap);
    if (rc != GH_OK)
        out[0] = '\0';
    return rc;
}

int gh_key_global(char *out, size_t size, const char *feature, const char *fmt, ...)
{
    va_list ap;
    int used, rc;

    if (!out || size == 0 || !feature || !fmt)
        return GH_EINVAL;
    used = snprintf(out, size, "bot:{global}:%s:", feature);
    va_start(ap, fmt);
    rc = key_tail(out, size, used, fmt, ap);
    va_end(ap);
    if (rc != GH_OK)
        out[0] = '\0';
    return rc;
}

int gh_key_queue(char *out, size_t size, int partition, const char *queue, const char *suffix)
{
    int rc;

    if (!out || size == 0 || !queue || !suffix || partition < 0)
        return GH_EINVAL;
    rc = gh_snprintf(out, size, "bot:{q%d}:jobs:%s:%s", partition, queue, suffix);
    if (rc != GH_OK)
        out[0] = '\0';
    return rc;
}
