/* fcgi.c - the FastCGI responder loop of one child.
 *
 * The protocol (FastCGI 1.0, responder role) is read and written here
 * directly rather than through libfcgi, which cost this loop a poll and a
 * half-close-then-wait-for-the-peer on every connection, about twenty
 * mallocs per request, and could serve only one kept-alive connection per
 * process (a child waiting on its idle kept connection starves the
 * connections queued on the listener). A request is read whole into a
 * per-child buffer (normally with one read), its parameters and body land in
 * the request's arena, and the response goes out framed in one write.
 *
 * Connections. Children of one master share a non-blocking listening
 * socket. A child with no kept-alive connection first tries accept4: under
 * load a connection is already waiting, and the try saves a wait. Otherwise
 * it sleeps in epoll_wait on the listener (EPOLLEXCLUSIVE: one connection
 * wakes one child) and on its kept-alive connections, and serves whichever
 * is ready, one request at a time. A child that holds kept connections
 * takes new ones from the listener in batches into its epoll set, where
 * their first requests queue up with the others in arrival order: taking
 * one per wake-up would leave new connections waiting in the backlog for
 * seconds behind a busy set. A SIGTERM interrupts the wait, so a stop
 * request is seen within one wait period at worst; the request in flight is
 * always finished first.
 *
 * Keep-alive (nginx: fastcgi_keep_conn on, keepalive in the upstream): when
 * BEGIN_REQUEST asks to keep the connection, it goes into the child's epoll
 * set after the response and is served again when its next request
 * arrives; the web server closes it when it wants to. A child never closes
 * an idle kept connection itself (nginx might be sending on it), except on a
 * protocol error, past MAX_CONNS, or when it exits.
 *
 * Reading. The connection is non-blocking; a read that finds nothing waits
 * in poll, up to IO_TIMEOUT_MS for the whole request, so a stalled peer
 * cannot hold a child for ever. Records for other request ids are skipped,
 * a second BEGIN_REQUEST is refused (FCGI_CANT_MPX_CONN), other roles get
 * FCGI_UNKNOWN_ROLE, management records get GET_VALUES_RESULT or
 * UNKNOWN_TYPE. A request is complete at its empty STDIN record; bytes read
 * past it mean the peer did not wait for our answer (a protocol error), and
 * the connection is closed after the response.
 *
 * Limits. Parameters are capped at PARAMS_MAX (past it: 431), the body at
 * max_body: a larger one is not kept (body_too_large, the handler answers
 * 413) but read and dropped, so the connection stays in sync; past DRAIN_MAX
 * the connection is closed instead. One arena per child holds each
 * request's parameters, header names and body; it is reset after the
 * response.
 *
 * The optional tick (gh_fcgi_opts) runs between requests once its period
 * has passed; the wait is cut short so that it also runs while no request
 * arrives. */
#define _GNU_SOURCE /* accept4 */
#include "web/fcgi.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/arena.h"
#include "core/err.h"
#include "core/log.h"
#include "core/str.h"
#include "core/timeutil.h"
#include "web/http.h"
#include "web/prefork.h"

#define POLL_MS 1000
#define IO_TIMEOUT_MS 10000            /* to read a whole request, or write a response */
#define DRAIN_MAX ((size_t)64 << 20)   /* give up on a body past 64 MiB: close */
#define PARAMS_MAX ((size_t)128 << 10) /* parameters (headers) of one request */
#define ARENA_CHUNK 16384
#define ARENA_HEADROOM ((size_t)384 << 10) /* params, their copies and names, on top of the body */
#define RBUF_SIZE ((size_t)72 << 10)       /* holds any one record: 8 + 65535 + 255 */
#define OUT_HEADROOM ((size_t)64 << 10)    /* framing and the head, on top of max_resp */
#define MAX_ACCEPT_ERRORS 100
#define TICK_MS_DEFAULT 1000
#define MAX_CONNS 256 /* connections in a child's epoll set */
#define MAX_EVENTS 64
#define STR_(x) #x
#define STR(x) STR_(x)
#define ACCEPT_BATCH 16 /* new connections taken per wake-up by a child with kept ones */

/* FastCGI 1.0 */
enum {
    FCGI_BEGIN_REQUEST = 1,
    FCGI_ABORT_REQUEST = 2,
    FCGI_END_REQUEST = 3,
    FCGI_PARAMS = 4,
    FCGI_STDIN = 5,
    FCGI_STDOUT = 6,
    FCGI_GET_VALUES = 9,
    FCGI_GET_VALUES_RESULT = 10,
    FCGI_UNKNOWN_TYPE = 11,
};
enum { FCGI_RESPONDER = 1, FCGI_KEEP_CONN = 1 };
enum { FCGI_REQUEST_COMPLETE = 0, FCGI_CANT_MPX_CONN = 1, FCGI_UNKNOWN_ROLE = 3 };
#define FCGI_HEADER_LEN 8
#define FCGI_MAX_CONTENT 65535

__attribute__((format(printf, 4, 5))) static void flog(const struct gh_logger *lg, enum gh_log_level lvl,
                                                       int errnum, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    (void)vsnprintf(msg, sizeof(msg), fmt, ap); /* a long message is cut, not lost */
    va_end(ap);
    if (lg && lg->sink)
        gh_log(lg, lvl, errnum, "%s", msg);
    else
        (void)fprintf(stderr, "fcgi: %s%s%s\n", msg, errnum ? ": " : "", errnum ? strerror(errnum) : "");
}

/* ---- parameters --------------------------------------------------------- */

/* "NAME=value": value when the name matches exactly, else NULL. */
static const char *param_value(const char *entry, const char *name, size_t name_len)
{
    if (strncmp(entry, name, name_len) == 0 && entry[name_len] == '=')
        return entry + name_len + 1;
    return NULL;
}

static char *header_name(struct gh_arena *arena, const char *src, size_t len)
{
    char *out = gh_arena_alloc(arena, len + 1);
    if (!out)
        return NULL;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)src[i];
        out[i] = c == '_' ? '-' : (char)tolower(c);
    }
    out[len] = '\0';
    return out;
}

static int add_header(struct gh_http_req *req, struct gh_arena *arena, const char *name, size_t name_len,
                      const char *value)
{
    if (req->n_headers >= GH_HTTP_MAX_HEADERS)
        return GH_OK; /* dropped: nothing we route on lives that far down */
    char *n = header_name(arena, name, name_len);
    if (!n)
        return GH_ENOMEM;
    req->headers[req->n_headers].name = n;
    req->headers[req->n_headers].value = value;
    req->n_headers++;
    return GH_OK;
}

static long long parse_length(const char *s)
{
    if (!s || !*s)
        return -1;
    long long v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        if (v > (LLONG_MAX - 9) / 10)
            return -1;
        v = v * 10 + (*s - '0');
    }
    return v;
}

int gh_fcgi_parse_params(char **envp, struct gh_arena *arena, struct gh_http_req *req,
                         long long *content_length)
{
    const char *script = NULL, *path_info = NULL, *doc_uri = NULL, *req_uri = NULL;
    int rc = GH_OK;

    memset(req, 0, sizeof(*req));
    req->method = "GET";
    req->path = "/";
    req->query = "";
    req->remote_addr = "";
    req->body = "";
    req->arena = arena;
    *content_length = -1;

    for (char **e = envp; e && *e; e++) {
        const char *p = *e, *v;
        if (strncmp(p, "HTTP_", 5) == 0) {
            const char *eq = strchr(p, '=');
            if (!eq || eq == p + 5)
                continue;
            rc = add_header(req, arena, p + 5, (size_t)(eq - p - 5), eq + 1);
            if (rc != GH_OK)
                return rc;
        } else if ((v = param_value(p, "REQUEST_METHOD", 14))) {
            req->method = v;
        } else if ((v = param_value(p, "DOCUMENT_URI", 12))) {
            doc_uri = v;
        } else if ((v = param_value(p, "SCRIPT_NAME", 11))) {
            script = v;
        } else if ((v = param_value(p, "PATH_INFO", 9))) {
            path_info = v;
        } else if ((v = param_value(p, "REQUEST_URI", 11))) {
            req_uri = v;
        } else if ((v = param_value(p, "QUERY_STRING", 12))) {
            req->query = v;
        } else if ((v = param_value(p, "REMOTE_ADDR", 11))) {
            req->remote_addr = v;
        } else if ((v = param_value(p, "CONTENT_LENGTH", 14))) {
            *content_length = parse_length(v);
            if (*v && (rc = add_header(req, arena, "content_length", 14, v)) != GH_OK)
                return rc;
        } else if ((v = param_value(p, "CONTENT_TYPE", 12))) {
            if (*v && (rc = add_header(req, arena, "content_type", 12, v)) != GH_OK)
                return rc;
        }
    }

    if (doc_uri && *doc_uri) {
        req->path = doc_uri;
    } else if ((script && *script) || (path_info && *path_info)) {
        char *joined = gh_arena_sprintf(arena, "%s%s", script ? script : "", path_info ? path_info : "");
        if (!joined)
            return GH_ENOMEM;
        req->path = joined;
    } else if (req_uri && *req_uri) {
        const char *q = strchr(req_uri, '?');
        char *p = gh_arena_strndup(arena, req_uri, q ? (size_t)(q - req_uri) : strlen(req_uri));
        if (!p)
            return GH_ENOMEM;
        req->path = p;
    }
    return GH_OK;
}

/* One name-value length (1 byte below 128, else 4 bytes with the top bit
 * set). Returns the bytes used, 0 when p..end is too short. */
static size_t nv_length(const unsigned char *p, const unsigned char *end, size_t *len)
{
    if (p >= end)
        return 0;
    if (!(p[0] & 0x80)) {
        *len = p[0];
        return 1;
    }
    if (end - p < 4)
        return 0;
    *len = ((size_t)(p[0] & 0x7f) << 24) | ((size_t)p[1] << 16) | ((size_t)p[2] << 8) | p[3];
    return 4;
}

/* The PARAMS stream -> a NULL-terminated "NAME=value" array in the arena.
 * GH_OK, GH_EINVAL (malformed pairs) or GH_ENOMEM (arena cap). */
static int params_to_envp(const unsigned char *p, size_t n, struct gh_arena *arena, char ***envp_out)
{
    const unsigned char *end = p + n;
    size_t count = 0;

    for (const unsigned char *q = p; q < end;) { /* first pass: count and validate */
        size_t nl, vl, a, b;
        if (!(a = nv_length(q, end, &nl)) || !(b = nv_length(q + a, end, &vl)))
            return GH_EINVAL;
        q += a + b;
        if (nl > (size_t)(end - q) || vl > (size_t)(end - q) - nl)
            return GH_EINVAL;
        q += nl + vl;
        count++;
    }
    char **envp = gh_arena_alloc(arena, (count + 1) * sizeof(*envp));
    if (!envp)
        return GH_ENOMEM;
    size_t i = 0;
    for (const unsigned char *q = p; q < end; i++) {
        size_t nl = 0, vl = 0, a = nv_length(q, end, &nl);
        q += a;
        q += nv_length(q, end, &vl);
        char *e = gh_arena_alloc(arena, nl + vl + 2);
        if (!e)
            return GH_ENOMEM;
        memcpy(e, q, nl);
        e[nl] = '=';
        memcpy(e + nl + 1, q + nl, vl);
        e[nl + 1 + vl] = '\0';
        envp[i] = e;
        q += nl + vl;
    }
    envp[count] = NULL;
    *envp_out = envp;
    return GH_OK;
}

/* ---- the child's state ---------------------------------------------------- */

struct child {
    const struct gh_fcgi_opts *o;
    int epfd;
    int kept[MAX_CONNS]; /* connections in the epoll set: kept-alive ones, and */
    int n_kept;          /* new ones waiting for their first request */
    unsigned char *rbuf; /* read buffer of the connection being served */
    size_t rpos, rlen;
    struct gh_buf params; /* PARAMS content of the request */
    struct gh_buf out;    /* the framed response */
    struct gh_arena arena;
    struct gh_http_resp resp;
};

/* One request as read. */
struct request_in {
    unsigned id;
    int begun, keep, params_done, aborted;
    int bad_params; /* too large for the caps: answered 431 */
    struct gh_http_req req;
    long long content_length;
    char *body;
    size_t body_want, body_len, dropped;
    int too_large;
};

/* ---- I/O ------------------------------------------------------------------- */

/* Waits for events on fd until deadline (gh_mono_ms). 1 ready, 0 timeout. */
static int wait_fd(int fd, short events, int64_t deadline)
{
    for (;;) {
        int64_t left = deadline - gh_mono_ms();
        if (left <= 0)
            return 0;
        struct pollfd p = {.fd = fd, .events = events};
        int n = poll(&p, 1, left > INT_MAX ? INT_MAX : (int)left);
        if (n > 0)
            return 1;
        if (n == 0)
            return 0;
        if (errno != EINTR)
            return 0;
        /* EINTR (a SIGTERM): the request in flight is finished first */
    }
}

/* Makes n bytes available at rbuf + rpos. 1 ok, 0 the peer closed with
 * nothing buffered, -1 error, timeout or a close inside a record. */
static int need(struct child *c, int fd, size_t n, int64_t deadline)
{
    if (c->rpos == c->rlen)
        c->rpos = c->rlen = 0;
    while (c->rlen - c->rpos < n) {
        if (c->rpos + n > RBUF_SIZE) {
            memmove(c->rbuf, c->rbuf + c->rpos, c->rlen - c->rpos);
            c->rlen -= c->rpos;
            c->rpos = 0;
        }
        ssize_t k = read(fd, c->rbuf + c->rlen, RBUF_SIZE - c->rlen);
        if (k > 0) {
            c->rlen += (size_t)k;
            continue;
        }
        if (k == 0)
            return c->rlen == c->rpos ? 0 : -1;
        if (errno == EINTR)
            continue;
        if ((errno != EAGAIN && errno != EWOULDBLOCK) || !wait_fd(fd, POLLIN, deadline))
            return -1;
    }
    return 1;
}

static int write_all(int fd, const char *p, size_t n, int64_t deadline)
{
    while (n > 0) {
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL); /* a peer gone is an error, not a signal */
        if (k > 0) {
            p += k;
            n -= (size_t)k;
            continue;
        }
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) && wait_fd(fd, POLLOUT, deadline))
            continue;
        return -1;
    }
    return 0;
}

static int put_header(struct gh_buf *out, int type, unsigned id, size_t len)
{
    unsigned char h[FCGI_HEADER_LEN] = {1,
                                        (unsigned char)type,
                                        (unsigned char)(id >> 8),
                                        (unsigned char)id,
                                        (unsigned char)(len >> 8),
                                        (unsigned char)len,
                                        0,
                                        0};
    return gh_buf_append(out, h, sizeof(h));
}

static int put_end_request(struct gh_buf *out, unsigned id, int protocol_status)
{
    unsigned char body[8] = {0, 0, 0, 0, (unsigned char)protocol_status, 0, 0, 0};
    if (put_header(out, FCGI_END_REQUEST, id, sizeof(body)) != GH_OK)
        return GH_ETOOBIG;
    return gh_buf_append(out, body, sizeof(body));
}

/* A record answered on the spot (management, refusals): its own write. */
static int send_now(int fd, const struct gh_buf *b)
{
    return write_all(fd, b->data, b->len, gh_mono_ms() + IO_TIMEOUT_MS);
}

static int refuse(int fd, unsigned id, int protocol_status)
{
    struct gh_buf b;
    gh_buf_init(&b, 64);
    int rc = put_end_request(&b, id, protocol_status) == GH_OK ? send_now(fd, &b) : -1;
    gh_buf_cleanup(&b);
    return rc;
}

static void put_value(struct gh_buf *b, const char *name, const char *value)
{
    unsigned char l[2] = {(unsigned char)strlen(name), (unsigned char)strlen(value)};
    if (gh_buf_append(b, l, 2) == GH_OK && gh_buf_puts(b, name) == GH_OK)
        (void)gh_buf_puts(b, value);
}

/* FCGI_GET_VALUES: answers the variables we know of. */
static int answer_values(int fd, const unsigned char *p, size_t n)
{
    static const struct {
        const char *name, *value;
    } known[] = {
        {"FCGI_MAX_CONNS", STR(MAX_CONNS)}, {"FCGI_MAX_REQS", STR(MAX_CONNS)}, {"FCGI_MPXS_CONNS", "0"}};
    const unsigned char *end = p + n;
    struct gh_buf vals, b;
    int rc = -1;

    gh_buf_init(&vals, 1024);
    gh_buf_init(&b, 2048);
    while (p < end) {
        size_t nl, vl, a, k;
        if (!(a = nv_length(p, end, &nl)) || !(k = nv_length(p + a, end, &vl)))
            goto out;
        p += a + k;
        if (nl > (size_t)(end - p) || vl > (size_t)(end - p) - nl)
            goto out;
        for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
            if (strlen(known[i].name) == nl && memcmp(known[i].name, p, nl) == 0)
                put_value(&vals, known[i].name, known[i].value);
        p += nl + vl;
    }
    if (put_header(&b, FCGI_GET_VALUES_RESULT, 0, vals.len) != GH_OK ||
        (vals.len && gh_buf_append(&b, vals.data, vals.len) != GH_OK))
        goto out;
    rc = send_now(fd, &b);
out:
    gh_buf_cleanup(&vals);
    gh_buf_cleanup(&b);
    return rc;
}

static int answer_unknown_type(int fd, int type)
{
    unsigned char body[8] = {(unsigned char)type, 0, 0, 0, 0, 0, 0, 0};
    struct gh_buf b;
    gh_buf_init(&b, 64);
    int rc = -1;
    if (put_header(&b, FCGI_UNKNOWN_TYPE, 0, sizeof(body)) == GH_OK &&
        gh_buf_append(&b, body, sizeof(body)) == GH_OK)
        rc = send_now(fd, &b);
    gh_buf_cleanup(&b);
    return rc;
}

/* ---- reading a request ------------------------------------------------------ */

/* The parameters are complete: build the request, size the body. */
static int params_done(struct child *c, struct request_in *rq)
{
    char **envp = NULL;
    rq->params_done = 1;
    if (!rq->bad_params) {
        int rc = params_to_envp((const unsigned char *)c->params.data, c->params.len, &c->arena, &envp);
        if (rc == GH_EINVAL)
            return -1; /* malformed: a protocol error */
        if (rc != GH_OK || gh_fcgi_parse_params(envp, &c->arena, &rq->req, &rq->content_length) != GH_OK)
            rq->bad_params = 1;
    }
    if (rq->bad_params) {
        (void)gh_fcgi_parse_params(NULL, &c->arena, &rq->req, &rq->content_length);
        rq->content_length = -1;
        rq->too_large = 1; /* the body is not needed: read and dropped */
        return 0;
    }
    size_t max_body = c->o->max_body;
    long long cl = rq->content_length;
    if (cl == 0)
        return 0;
    if (cl > 0 && (unsigned long long)cl > max_body) {
        rq->too_large = 1;
        return 0;
    }
    /* Unknown length: room for max_body + 1 to detect an oversized body. */
    rq->body_want = cl > 0 ? (size_t)cl : max_body + 1;
    rq->body = gh_arena_alloc(&c->arena, rq->body_want + 1);
    if (!rq->body)
        rq->too_large = 1;
    return 0;
}

static int stdin_data(struct child *c, struct request_in *rq, const unsigned char *p, size_t n)
{
    if (!rq->too_large && rq->body) {
        size_t room = rq->body_want - rq->body_len, take = n < room ? n : room;
        memcpy(rq->body + rq->body_len, p, take);
        rq->body_len += take;
        n -= take;
        if (rq->body_len > c->o->max_body)
            rq->too_large = 1; /* unknown length, and more than the cap */
    }
    rq->dropped += n; /* past CONTENT_LENGTH, or not kept */
    return rq->dropped > DRAIN_MAX ? -1 : 0;
}

/* Reads one request from fd. 1 complete, 0 the peer closed between requests,
 * -1 protocol error, I/O error or timeout (close the connection). */
static int read_request(struct child *c, int fd, struct request_in *rq)
{
    int64_t deadline = gh_mono_ms() + IO_TIMEOUT_MS;

    for (;;) {
        int r = need(c, fd, FCGI_HEADER_LEN, deadline);
        if (r == 0 && !rq->begun)
            return 0;
        if (r <= 0)
            return -1;
        const unsigned char *h = c->rbuf + c->rpos;
        if (h[0] != 1)
            return -1; /* not FastCGI 1 */
        int type = h[1];
        unsigned id = (unsigned)h[2] << 8 | h[3];
        size_t len = (size_t)h[4] << 8 | h[5], pad = h[6];
        if (need(c, fd, FCGI_HEADER_LEN + len + pad, deadline) <= 0)
            return -1;
        const unsigned char *p = c->rbuf + c->rpos + FCGI_HEADER_LEN;
        c->rpos += FCGI_HEADER_LEN + len + pad;

        if (id == 0) { /* management record */
            if ((type == FCGI_GET_VALUES ? answer_values(fd, p, len) : answer_unknown_type(fd, type)) != 0)
                return -1;
            continue;
        }
        if (type == FCGI_BEGIN_REQUEST) {
            if (len < 8)
                return -1;
            int role = p[0] << 8 | p[1];
            if (rq->begun || role != FCGI_RESPONDER) {
                if (refuse(fd, id, rq->begun ? FCGI_CANT_MPX_CONN : FCGI_UNKNOWN_ROLE) != 0)
                    return -1;
                continue;
            }
            rq->begun = 1;
            rq->id = id;
            rq->keep = (p[2] & FCGI_KEEP_CONN) != 0;
            continue;
        }
        if (!rq->begun || id != rq->id)
            continue; /* a record of a request we do not serve */
        switch (type) {
        case FCGI_ABORT_REQUEST:
            rq->aborted = 1;
            return 1;
        case FCGI_PARAMS:
            if (rq->params_done)
                return -1;
            if (len == 0) {
                if (params_done(c, rq) != 0)
                    return -1;
            } else if (!rq->bad_params && gh_buf_append(&c->params, p, len) != GH_OK) {
                rq->bad_params = 1; /* past PARAMS_MAX: read on, answer 431 */
            }
            break;
        case FCGI_STDIN:
            if (!rq->params_done)
                return -1;
            if (len == 0)
                return 1;
            if (stdin_data(c, rq, p, len) != 0)
                return -1;
            break;
        default:
            break; /* FCGI_DATA and others: not for a responder */
        }
    }
}

/* ---- response ----------------------------------------------------------- */

struct seg {
    const char *p;
    size_t n;
};

/* The segments as one STDOUT stream (records of at most 64 KiB), its end
 * record, and END_REQUEST. */
static int frame(struct gh_buf *out, unsigned id, const struct seg *segs, size_t nseg)
{
    size_t total = 0, si = 0, so = 0;
    for (size_t i = 0; i < nseg; i++)
        total += segs[i].n;
    while (total > 0) {
        size_t chunk = total > FCGI_MAX_CONTENT ? FCGI_MAX_CONTENT : total, left = chunk;
        if (put_header(out, FCGI_STDOUT, id, chunk) != GH_OK)
            return GH_ETOOBIG;
        while (left > 0) {
            size_t take = segs[si].n - so < left ? segs[si].n - so : left;
            if (take && gh_buf_append(out, segs[si].p + so, take) != GH_OK)
                return GH_ETOOBIG;
            so += take;
            left -= take;
            if (so == segs[si].n) {
                si++;
                so = 0;
            }
        }
        total -= chunk;
    }
    if (put_header(out, FCGI_STDOUT, id, 0) != GH_OK)
        return GH_ETOOBIG;
    return put_end_request(out, id, FCGI_REQUEST_COMPLETE);
}

static int frame_response(struct gh_buf *out, unsigned id, const struct gh_http_resp *resp)
{
    char head[256];
    int status = resp->status >= 100 && resp->status <= 599 ? resp->status : 500;
    int no_body = status == 204 || status == 304;
    size_t body_len = no_body ? 0 : resp->body.len;
    int n = snprintf(head, sizeof(head), "Status: %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n",
                     status, gh_http_reason(status),
                     resp->content_type[0] ? resp->content_type : "application/json", body_len);
    if (n < 0 || (size_t)n >= sizeof(head))
        return GH_ETOOBIG;
    struct seg segs[4] = {
        {head, (size_t)n},
        {resp->extra_headers, strlen(resp->extra_headers)},
        {"\r\n", 2},
        {resp->body.data, body_len},
    };
    return frame(out, id, segs, 4);
}

static void resp_reset(struct gh_http_resp *resp)
{
    resp->status = 200;
    memcpy(resp->content_type, "application/json", sizeof("application/json"));
    resp->extra_headers[0] = '\0';
    gh_buf_reset(&resp->body);
}

/* ---- connections ------------------------------------------------------------- */

static void forget_kept(struct child *c, int fd)
{
    for (int i = 0; i < c->n_kept; i++) {
        if (c->kept[i] == fd) {
            c->kept[i] = c->kept[--c->n_kept];
            return;
        }
    }
}

/* Serves one request on fd, then keeps the connection (in the epoll set) or
 * closes it. registered: fd is already a kept connection. */
static void serve_conn(struct child *c, int fd, int registered)
{
    const struct gh_fcgi_opts *o = c->o;
    struct request_in rq;
    int ok = 0;

    memset(&rq, 0, sizeof(rq));
    rq.content_length = -1;
    c->rpos = c->rlen = 0;
    int r = read_request(c, fd, &rq);
    if (r < 0)
        flog(o->log, GH_LOG_WARN, 0, "FastCGI connection dropped: malformed, truncated or too slow request");
    if (r == 1) {
        resp_reset(&c->resp);
        if (rq.aborted) {
            ok = put_end_request(&c->out, rq.id, FCGI_REQUEST_COMPLETE) == GH_OK;
        } else {
            if (rq.bad_params) {
                flog(o->log, GH_LOG_WARN, 0, "request parameters exceed the per-request memory cap");
                gh_http_error(&c->resp, 431, "headers_too_large", "request headers are too large");
            } else {
                if (rq.too_large) {
                    rq.req.body_too_large = 1;
                } else if (rq.body) {
                    rq.body[rq.body_len] = '\0';
                    rq.req.body = rq.body;
                    rq.req.body_len = rq.body_len;
                }
                o->handler(&rq.req, &c->resp, o->arg);
            }
            ok = frame_response(&c->out, rq.id, &c->resp) == GH_OK;
            if (!ok)
                flog(o->log, GH_LOG_ERROR, 0, "response larger than the output cap; not sent");
        }
        if (ok && write_all(fd, c->out.data, c->out.len, gh_mono_ms() + IO_TIMEOUT_MS) != 0) {
            flog(o->log, GH_LOG_WARN, errno, "could not write the response (client gone?)");
            ok = 0;
        }
    }
    int keep = ok && rq.keep && !rq.aborted && c->rpos == c->rlen; /* nothing read past the request */
    gh_arena_reset(&c->arena);
    gh_buf_reset(&c->params);
    gh_buf_reset(&c->out);
    c->rpos = c->rlen = 0;

    if (keep && !registered) {
        struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
        if (c->n_kept < MAX_CONNS && epoll_ctl(c->epfd, EPOLL_CTL_ADD, fd, &ev) == 0)
            c->kept[c->n_kept++] = fd;
        else
            keep = 0;
    }
    if (!keep) {
        if (registered)
            forget_kept(c, fd);
        close(fd); /* also leaves the epoll set */
    }
}

/* Runs the tick when due; returns how long the next wait may last (ms). */
static int tick_and_timeout(const struct gh_fcgi_opts *o, int64_t *next_tick)
{
    if (!o->tick)
        return POLL_MS;
    int period = o->tick_ms > 0 ? o->tick_ms : TICK_MS_DEFAULT;
    int64_t now = gh_mono_ms();
    if (now >= *next_tick) {
        o->tick(o->arg);
        *next_tick = now + period;
    }
    int64_t left = *next_tick - now;
    return left < 0 ? 0 : (left < POLL_MS ? (int)left : POLL_MS);
}

static int transient_accept_error(int err)
{
    return err == EAGAIN || err == EWOULDBLOCK || err == EINTR || err == ECONNABORTED || err == EPROTO;
}

/* Accepts one connection and serves it. 1 served, 0 none waiting, -1 an
 * accept error (errno set). */
static int accept_and_serve(struct child *c)
{
    int fd = accept4(c->o->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0)
        return transient_accept_error(errno) ? 0 : -1;
    serve_conn(c, fd, 0);
    return 1;
}

/* Takes up to ACCEPT_BATCH waiting connections into the epoll set; their
 * requests are served as they come up. A connection past MAX_CONNS is
 * served at once instead. 1 took some, 0 none waiting, -1 an accept error. */
static int accept_into_set(struct child *c)
{
    int took = 0;
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        int fd = accept4(c->o->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (transient_accept_error(errno))
                return took;
            return took ? 1 : -1;
        }
        took = 1;
        struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
        if (c->n_kept >= MAX_CONNS || epoll_ctl(c->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
            serve_conn(c, fd, 0);
            return 1;
        }
        c->kept[c->n_kept++] = fd;
    }
    return took;
}

static int listener_epoll(int listen_fd)
{
    int epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0)
        return -1;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLEXCLUSIVE, .data.fd = listen_fd};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, listen_fd, &ev) != 0) {
        ev.events = EPOLLIN; /* kernels before 4.5 */
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, listen_fd, &ev) != 0) {
            close(epfd);
            return -1;
        }
    }
    return epfd;
}

int gh_fcgi_serve_opts(const struct gh_fcgi_opts *o)
{
    struct child c;
    struct epoll_event evs[MAX_EVENTS];
    int rc = GH_EIO;
    int errors = 0;

    if (!o || !o->handler || o->listen_fd < 0)
        return GH_EINVAL;
    memset(&c, 0, sizeof(c));
    c.o = o;
    /* Shared by every child (same open file description): idempotent. */
    int fl = fcntl(o->listen_fd, F_GETFL);
    if (fl < 0 || fcntl(o->listen_fd, F_SETFL, fl | O_NONBLOCK) < 0) {
        flog(o->log, GH_LOG_ERROR, errno, "cannot make the listening socket non-blocking");
        return GH_EIO;
    }
    c.epfd = listener_epoll(o->listen_fd);
    if (c.epfd < 0) {
        flog(o->log, GH_LOG_ERROR, errno, "cannot set up epoll on the listening socket");
        return GH_EIO;
    }
    c.rbuf = malloc(RBUF_SIZE);
    if (!c.rbuf) {
        flog(o->log, GH_LOG_ERROR, errno, "out of memory");
        close(c.epfd);
        return GH_ENOMEM;
    }
    gh_buf_init(&c.params, PARAMS_MAX);
    gh_buf_init(&c.out, o->max_resp + OUT_HEADROOM);
    gh_arena_init(&c.arena, ARENA_CHUNK, o->max_body + ARENA_HEADROOM);
    gh_http_resp_init(&c.resp, o->max_resp);

    int64_t next_tick = gh_mono_ms() + (o->tick_ms > 0 ? o->tick_ms : TICK_MS_DEFAULT);
    while (!gh_prefork_stopping()) {
        int timeout = tick_and_timeout(o, &next_tick);
        int served = 0;
        if (c.n_kept == 0) {
            /* Accept first: under load a connection is already waiting. */
            served = accept_and_serve(&c);
            if (served == 1) {
                errors = 0;
                continue;
            }
        }
        if (served == 0) {
            int n = epoll_wait(c.epfd, evs, MAX_EVENTS, timeout);
            if (n < 0 && errno != EINTR) {
                flog(o->log, GH_LOG_ERROR, errno, "waiting for connections failed");
                goto out;
            }
            for (int i = 0; i < n && !gh_prefork_stopping() && served >= 0; i++) {
                if (evs[i].data.fd != o->listen_fd) {
                    serve_conn(&c, evs[i].data.fd, 1);
                    continue;
                }
                /* 0: another child was faster */
                served = c.n_kept == 0 ? accept_and_serve(&c) : accept_into_set(&c);
                if (served == 1)
                    errors = 0;
            }
        }
        if (served < 0) {
            int err = errno;
            if (err == EBADF || err == EINVAL || err == ENOTSOCK) {
                flog(o->log, GH_LOG_ERROR, err, "the listening socket is gone");
                goto out;
            }
            if (++errors >= MAX_ACCEPT_ERRORS) {
                flog(o->log, GH_LOG_ERROR, err, "accepting keeps failing; child exits");
                goto out;
            }
            flog(o->log, GH_LOG_WARN, err, "accepting a connection failed");
            (void)poll(NULL, 0, 10); /* e.g. EMFILE: the listener stays readable */
        }
    }
    rc = GH_OK;
out:
    for (int i = 0; i < c.n_kept; i++)
        close(c.kept[i]);
    close(c.epfd);
    free(c.rbuf);
    gh_buf_cleanup(&c.params);
    gh_buf_cleanup(&c.out);
    gh_http_resp_cleanup(&c.resp);
    gh_arena_cleanup(&c.arena);
    return rc;
}

int gh_fcgi_serve(int listen_fd, size_t max_body, size_t max_resp, gh_http_handler_fn handler, void *arg)
{
    struct gh_fcgi_opts o = {
        .listen_fd = listen_fd,
        .max_body = max_body,
        .max_resp = max_resp,
        .handler = handler,
        .arg = arg,
        .log = NULL,
        .tick = NULL,
        .tick_ms = 0,
    };
    return gh_fcgi_serve_opts(&o);
}
