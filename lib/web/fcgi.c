/* fcgi.c - the FastCGI request loop of one child (libfcgi FCGX_*).
 *
 * Children of one master share a non-blocking listening socket. A free
 * child first tries accept4 itself: under load a connection is already
 * waiting, and the try saves a wait. Only when none is waiting does it sleep
 * in epoll_wait with EPOLLEXCLUSIVE (so one connection wakes one child, not
 * all of them; plain poll() where epoll is unavailable), which a SIGTERM
 * always interrupts, so a stop request is seen within one wait period at
 * worst. A child that loses the race for a connection gets EAGAIN and waits
 * again. We do not use FCGX_ShutdownPending: libfcgi then fails every read
 * and write, which would break the request in flight instead of finishing
 * it.
 *
 * Accepting ourselves (instead of in FCGX_Accept_r) also skips libfcgi's
 * check that a new unix-socket connection turns readable within 2 s (one
 * more poll per request). The accepted fd is handed to FCGX_Accept_r in
 * fr.ipcFd, which then only reads the request; keepConnection is set so the
 * finish that FCGX_Accept_r runs first keeps the fd (the BEGIN_REQUEST
 * record then sets it to what the web server asked for).
 *
 * Closing: libfcgi's close half-closes the socket and then waits for the
 * peer to close its side before close() (up to 2 s), which costs three
 * syscalls and keeps the child from its next request until nginx has read
 * the response. The request is read to its end first (the end record of
 * stdin is normally in the buffer already, so this costs nothing), so no
 * unread byte can turn the close into a reset, and FCGX_Detach makes the
 * close a plain close().
 *
 * One arena per request holds the header names and the body; it is reset
 * after the response is written. Bodies above max_body are not kept: the
 * request is marked body_too_large and the rest of stdin is drained (up to
 * a bound) so that a kept-alive connection stays in sync.
 *
 * The optional tick (gh_fcgi_opts) runs between requests once its period
 * has passed; the wait for a connection is cut short so that it also runs
 * while no request arrives. */
#define _GNU_SOURCE /* accept4 */
#include "web/fcgi.h"

#include <ctype.h>
#include <errno.h>
#include <fcgiapp.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/arena.h"
#include "core/err.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "web/http.h"
#include "web/prefork.h"

#define POLL_MS 1000
#define DRAIN_MAX ((size_t)64 << 20) /* give up draining a body past 64 MiB */
#define ARENA_CHUNK 16384
#define ARENA_HEADROOM ((size_t)256 << 10) /* params and names, on top of the body */
#define MAX_ACCEPT_ERRORS 100
#define TICK_MS_DEFAULT 1000

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

/* ---- body --------------------------------------------------------------- */

static void drain(FCGX_Stream *in)
{
    char scratch[8192];
    size_t total = 0;
    int n;
    while (total < DRAIN_MAX && (n = FCGX_GetStr(scratch, sizeof(scratch), in)) > 0)
        total += (size_t)n;
}

/* Reads the body into the arena, then stdin to its end, so that nothing is
 * left unread on the connection. Never fails the request: a body that does
 * not fit is flagged body_too_large (and the handler answers 413). */
static void read_body(FCGX_Stream *in, struct gh_http_req *req, long long content_length, size_t max_body)
{
    if (content_length > 0 && (unsigned long long)content_length > max_body) {
        req->body_too_large = 1;
        drain(in);
        return;
    }
    if (content_length == 0) {
        drain(in); /* the end record: normally buffered already */
        return;
    }
    /* Unknown length: read up to max_body + 1 to detect an oversized body. */
    size_t want = content_length > 0 ? (size_t)content_length : max_body + 1;
    char *buf = gh_arena_alloc(req->arena, want + 1);
    if (!buf) {
        req->body_too_large = 1;
        drain(in);
        return;
    }
    size_t got = 0;
    while (got < want) {
        size_t chunk = want - got > (1u << 20) ? (1u << 20) : want - got;
        int n = FCGX_GetStr(buf + got, (int)chunk, in);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    drain(in); /* the end record (or bytes past CONTENT_LENGTH, ignored) */
    if (got > max_body) {
        req->body_too_large = 1;
        return;
    }
    buf[got] = '\0';
    req->body = buf;
    req->body_len = got;
}

/* ---- response ----------------------------------------------------------- */

static int write_response(FCGX_Stream *out, const struct gh_http_resp *resp)
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
    if (FCGX_PutStr(head, n, out) < 0)
        return GH_EIO;
    size_t extra = strlen(resp->extra_headers);
    if (extra && FCGX_PutStr(resp->extra_headers, (int)extra, out) < 0)
        return GH_EIO;
    if (FCGX_PutStr("\r\n", 2, out) < 0)
        return GH_EIO;
    if (body_len && FCGX_PutStr(resp->body.data, (int)body_len, out) < 0)
        return GH_EIO;
    return GH_OK;
}

static void resp_reset(struct gh_http_resp *resp)
{
    resp->status = 200;
    memcpy(resp->content_type, "application/json", sizeof("application/json"));
    resp->extra_headers[0] = '\0';
    gh_buf_reset(&resp->body);
}

/* ---- loop --------------------------------------------------------------- */

/* Waits for fd to be readable: 1 ready, 0 timeout or EINTR, -1 error. A
 * closed listener is an error. epfd >= 0 waits on the epoll set instead
 * (which holds the listener). */
static int wait_readable(int epfd, int fd, int timeout_ms)
{
    if (epfd >= 0) {
        struct epoll_event ev;
        int n = epoll_wait(epfd, &ev, 1, timeout_ms);
        if (n < 0)
            return errno == EINTR ? 0 : -1;
        return n > 0;
    }
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    int n = poll(&pfd, 1, timeout_ms);
    if (n < 0)
        return errno == EINTR ? 0 : -1;
    if (n > 0 && (pfd.revents & POLLNVAL)) {
        errno = EBADF;
        return -1;
    }
    return n > 0;
}

static int listener_epoll(int listen_fd)
{
    int epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0)
        return -1;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLEXCLUSIVE, .data.fd = listen_fd};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, listen_fd, &ev) != 0) {
        close(epfd);
        return -1;
    }
    return epfd;
}

static void serve_one(const struct gh_fcgi_opts *o, FCGX_Request *fr, struct gh_arena *arena,
                      struct gh_http_resp *resp)
{
    struct gh_http_req req;
    long long content_length = -1;

    resp_reset(resp);
    if (gh_fcgi_parse_params(fr->envp, arena, &req, &content_length) != GH_OK) {
        flog(o->log, GH_LOG_WARN, 0, "request parameters exceed the per-request memory cap");
        drain(fr->in);
        gh_http_error(resp, 431, "headers_too_large", "request headers are too large");
    } else {
        read_body(fr->in, &req, content_length, o->max_body);
        o->handler(&req, resp, o->arg);
    }
    if (write_response(fr->out, resp) != GH_OK)
        flog(o->log, GH_LOG_WARN, 0, "could not write the response (client gone?)");
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

/* The next request: on the kept-alive connection, or on a new one. Returns
 * 0 with a request in fr, 1 to go round again (nothing yet, or another child
 * was faster), or a negative errno-style code from accepting. */
static int next_request(const struct gh_fcgi_opts *o, FCGX_Request *fr, int epfd, int timeout_ms)
{
    if (fr->ipcFd >= 0) {
        /* fastcgi_keep_conn on: the next request comes on the same fd. */
        int ready = wait_readable(-1, fr->ipcFd, timeout_ms);
        if (ready < 0)
            return -(errno ? errno : EIO);
        if (ready == 0)
            return 1;
        return FCGX_Accept_r(fr); /* peer closed: libfcgi closes it and tries the listener */
    }
    int fd = accept4(o->listen_fd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR || errno == ECONNABORTED) {
            int ready = wait_readable(epfd, o->listen_fd, timeout_ms);
            if (ready < 0)
                return -(errno ? errno : EIO);
            return 1;
        }
        return -errno;
    }
    fr->ipcFd = fd;
    fr->keepConnection = 1; /* see the top of the file */
    return FCGX_Accept_r(fr);
}

int gh_fcgi_serve_opts(const struct gh_fcgi_opts *o)
{
    FCGX_Request fr;
    struct gh_arena arena;
    struct gh_http_resp resp;
    int rc = GH_EIO;
    int errors = 0;
    int epfd = -1;

    if (!o || !o->handler || o->listen_fd < 0)
        return GH_EINVAL;
    if (FCGX_Init() != 0) {
        flog(o->log, GH_LOG_ERROR, 0, "FCGX_Init failed");
        return GH_EIO;
    }
    /* Shared by every child (same open file description): idempotent. */
    int fl = fcntl(o->listen_fd, F_GETFL);
    if (fl < 0 || fcntl(o->listen_fd, F_SETFL, fl | O_NONBLOCK) < 0) {
        flog(o->log, GH_LOG_ERROR, errno, "cannot make the listening socket non-blocking");
        return GH_EIO;
    }
    if (FCGX_InitRequest(&fr, o->listen_fd, 0) != 0) {
        flog(o->log, GH_LOG_ERROR, 0, "FCGX_InitRequest failed");
        return GH_EIO;
    }
    gh_arena_init(&arena, ARENA_CHUNK, o->max_body + ARENA_HEADROOM);
    gh_http_resp_init(&resp, o->max_resp);

    epfd = listener_epoll(o->listen_fd);
    int64_t next_tick = gh_mono_ms() + (o->tick_ms > 0 ? o->tick_ms : TICK_MS_DEFAULT);
    while (!gh_prefork_stopping()) {
        int timeout = tick_and_timeout(o, &next_tick);
        int ar = next_request(o, &fr, epfd, timeout);
        if (ar == 1)
            continue;
        if (ar < 0) {
            if (ar == -EAGAIN || ar == -EWOULDBLOCK || ar == -EINTR)
                continue; /* another child took it */
            if (ar == -EBADF || ar == -EINVAL || ar == -ENOTSOCK) {
                flog(o->log, GH_LOG_ERROR, -ar, "waiting for connections failed");
                goto out;
            }
            if (++errors >= MAX_ACCEPT_ERRORS) {
                flog(o->log, GH_LOG_ERROR, ar > -4096 ? -ar : 0, "accepting keeps failing; child exits");
                goto out;
            }
            flog(o->log, GH_LOG_WARN, ar > -4096 ? -ar : 0, "accepting a connection failed");
            /* e.g. EMFILE: the listener stays readable, so wait before retrying */
            (void)poll(NULL, 0, 10);
            continue;
        }
        errors = 0;
        serve_one(o, &fr, &arena, &resp);
        FCGX_Detach(&fr);   /* plain close(), see the top of the file */
        FCGX_Finish_r(&fr); /* ends the request now: nginx does not wait for the next accept */
        gh_arena_reset(&arena);
    }
    rc = GH_OK;
out:
    if (epfd >= 0)
        close(epfd);
    FCGX_Finish_r(&fr);
    FCGX_Free(&fr, 1);
    gh_http_resp_cleanup(&resp);
    gh_arena_cleanup(&arena);
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
