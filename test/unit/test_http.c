/* test_http.c - request/response helpers, the FastCGI parameter reader, and
 * the FastCGI loop at the protocol level (keep-alive, records in pieces,
 * management records, limits, the tick).
 *
 * The loop tests fork one process running gh_fcgi_serve_opts on a unix
 * socket in a temporary directory and talk to it with raw records. Waits are
 * bounded polls for an event, never fixed sleeps. */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "core/arena.h"
#include "core/err.h"
#include "core/str.h"
#include "core/timeutil.h"
#include "web/fcgi.h"
#include "web/http.h"

static void test_header_lookup_is_case_insensitive(void **state)
{
    (void)state;
    struct gh_http_req req;
    memset(&req, 0, sizeof(req));
    req.headers[0].name = "content-type";
    req.headers[0].value = "application/json";
    req.headers[1].name = "x-signature-ed25519";
    req.headers[1].value = "abcd";
    req.n_headers = 2;

    assert_string_equal(gh_http_header(&req, "X-Signature-Ed25519"), "abcd");
    assert_string_equal(gh_http_header(&req, "content-type"), "application/json");
    assert_null(gh_http_header(&req, "x-signature-timestamp"));
    assert_null(gh_http_header(&req, NULL));
    assert_null(gh_http_header(NULL, "content-type"));
    /* n_headers bounds the search: an entry past it is not seen. */
    req.n_headers = 1;
    assert_null(gh_http_header(&req, "x-signature-ed25519"));
}

static void test_resp_defaults_and_json(void **state)
{
    (void)state;
    struct gh_http_resp resp;
    gh_http_resp_init(&resp, 1024);
    assert_int_equal(resp.status, 200);
    assert_string_equal(resp.content_type, "application/json");
    assert_string_equal(resp.extra_headers, "");
    assert_int_equal(resp.body.len, 0);

    gh_http_json(&resp, 201, "{\"ok\":true}");
    assert_int_equal(resp.status, 201);
    assert_string_equal(gh_buf_cstr(&resp.body), "{\"ok\":true}");

    /* A second call replaces the body, it does not append. */
    gh_http_json(&resp, 200, "{}");
    assert_string_equal(gh_buf_cstr(&resp.body), "{}");
    gh_http_resp_cleanup(&resp);
}

static void test_resp_json_too_large_becomes_500(void **state)
{
    (void)state;
    struct gh_http_resp resp;
    char big[300];
    gh_http_resp_init(&resp, 128);
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    gh_http_json(&resp, 200, big);
    assert_int_equal(resp.status, 500);
    assert_non_null(strstr(gh_buf_cstr(&resp.body), "response_too_large"));
    gh_http_resp_cleanup(&resp);
}

static void test_error_json_is_escaped_and_parses(void **state)
{
    (void)state;
    struct gh_http_resp resp;
    gh_http_resp_init(&resp, 4096);
    gh_http_error(&resp, 400, "invalid_interaction", "field \"token\" is\nmissing");
    assert_int_equal(resp.status, 400);
    assert_string_equal(resp.content_type, "application/json");

    json_object *root = json_tokener_parse(gh_buf_cstr(&resp.body));
    assert_non_null(root);
    json_object *err = NULL, *code = NULL, *msg = NULL;
    assert_true(json_object_object_get_ex(root, "error", &err));
    assert_true(json_object_object_get_ex(err, "code", &code));
    assert_true(json_object_object_get_ex(err, "message", &msg));
    assert_string_equal(json_object_get_string(code), "invalid_interaction");
    assert_string_equal(json_object_get_string(msg), "field \"token\" is\nmissing");
    json_object_put(root);

    /* NULL message: the reason phrase. */
    gh_http_error(&resp, 404, "not_found", NULL);
    assert_non_null(strstr(gh_buf_cstr(&resp.body), "\"message\":\"Not Found\""));
    gh_http_resp_cleanup(&resp);
}

static void test_resp_headers(void **state)
{
    (void)state;
    struct gh_http_resp resp;
    gh_http_resp_init(&resp, 64);
    assert_int_equal(gh_http_resp_header(&resp, "Allow", "POST"), GH_OK);
    assert_int_equal(gh_http_resp_header(&resp, "Retry-After", "3"), GH_OK);
    assert_string_equal(resp.extra_headers, "Allow: POST\r\nRetry-After: 3\r\n");

    /* Header injection is refused and leaves the block unchanged. */
    assert_int_equal(gh_http_resp_header(&resp, "X-Evil", "a\r\nSet-Cookie: x=1"), GH_EINVAL);
    assert_int_equal(gh_http_resp_header(&resp, "Bad Name", "v"), GH_EINVAL);
    assert_int_equal(gh_http_resp_header(&resp, "", "v"), GH_EINVAL);
    assert_string_equal(resp.extra_headers, "Allow: POST\r\nRetry-After: 3\r\n");

    /* Full: GH_ETOOBIG and nothing half-written. */
    char value[sizeof(resp.extra_headers) / 2 + 100];
    memset(value, 'v', sizeof(value) - 1);
    value[sizeof(value) - 1] = '\0';
    assert_int_equal(gh_http_resp_header(&resp, "X-A", value), GH_OK);
    size_t before = strlen(resp.extra_headers);
    assert_int_equal(gh_http_resp_header(&resp, "X-B", value), GH_ETOOBIG);
    assert_int_equal(strlen(resp.extra_headers), before);
    gh_http_resp_cleanup(&resp);
}

static void test_reason_phrases(void **state)
{
    (void)state;
    assert_string_equal(gh_http_reason(200), "OK");
    assert_string_equal(gh_http_reason(401), "Unauthorized");
    assert_string_equal(gh_http_reason(413), "Payload Too Large");
    assert_string_equal(gh_http_reason(503), "Service Unavailable");
    assert_string_equal(gh_http_reason(799), "Unknown");
}

/* Missing or oversized inputs fall back to safe defaults. */
static void test_resp_fallbacks(void **state)
{
    (void)state;
    struct gh_http_resp resp;
    char long_type[100];
    memset(long_type, 't', sizeof(long_type) - 1);
    long_type[sizeof(long_type) - 1] = '\0';
    gh_http_resp_init(&resp, 48);

    /* A Content-Type that is NULL or does not fit: application/json. */
    gh_http_resp_set(&resp, 200, NULL);
    assert_string_equal(resp.content_type, "application/json");
    gh_http_resp_set(&resp, 200, long_type);
    assert_string_equal(resp.content_type, "application/json");

    /* NULL JSON: status set, body empty. */
    gh_buf_puts(&resp.body, "old");
    gh_http_json(&resp, 204, NULL);
    assert_int_equal(resp.status, 204);
    assert_int_equal(resp.body.len, 0);

    /* NULL code: "error". */
    gh_http_error(&resp, 409, NULL, "x");
    assert_int_equal(resp.status, 409);
    assert_string_equal(gh_buf_cstr(&resp.body), "{\"error\":{\"code\":\"error\",\"message\":\"x\"}}");

    /* A message past the cap: the code is kept, the text dropped. */
    gh_http_error(&resp, 400, "bad", "a message far too long for a forty-eight byte body cap");
    assert_int_equal(resp.status, 400);
    assert_string_equal(gh_buf_cstr(&resp.body), "{\"error\":{\"code\":\"error\",\"message\":\"\"}}");

    gh_http_resp_cleanup(&resp);
    assert_int_equal(resp.body.len, 0);
    gh_http_resp_cleanup(NULL); /* no-op */
}

/* Every status the handlers use has its standard phrase; others "Unknown". */
static void test_reason_phrase_table(void **state)
{
    (void)state;
    static const struct {
        int status;
        const char *reason;
    } t[] = {{200, "OK"},
             {201, "Created"},
             {202, "Accepted"},
             {204, "No Content"},
             {301, "Moved Permanently"},
             {302, "Found"},
             {303, "See Other"},
             {304, "Not Modified"},
             {400, "Bad Request"},
             {401, "Unauthorized"},
             {403, "Forbidden"},
             {404, "Not Found"},
             {405, "Method Not Allowed"},
             {409, "Conflict"},
             {413, "Payload Too Large"},
             {415, "Unsupported Media Type"},
             {429, "Too Many Requests"},
             {431, "Request Header Fields Too Large"},
             {500, "Internal Server Error"},
             {502, "Bad Gateway"},
             {503, "Service Unavailable"},
             {504, "Gateway Timeout"},
             {0, "Unknown"},
             {-1, "Unknown"},
             {418, "Unknown"}};
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
        assert_string_equal(gh_http_reason(t[i].status), t[i].reason);
}

static void test_resp_set_clears_body(void **state)
{
    (void)state;
    struct gh_http_resp resp;
    gh_http_resp_init(&resp, 64);
    gh_buf_puts(&resp.body, "old");
    gh_http_resp_set(&resp, 202, "text/plain");
    assert_int_equal(resp.status, 202);
    assert_string_equal(resp.content_type, "text/plain");
    assert_int_equal(resp.body.len, 0);
    gh_http_resp_cleanup(&resp);
}

static void test_fcgi_params(void **state)
{
    (void)state;
    struct gh_arena arena;
    struct gh_http_req req;
    long long clen = 0;
    char *envp[] = {
        "REQUEST_METHOD=POST",
        "DOCUMENT_URI=/interactions",
        "SCRIPT_NAME=/ignored",
        "QUERY_STRING=a=1&b=2",
        "REMOTE_ADDR=127.0.0.1",
        "CONTENT_LENGTH=42",
        "CONTENT_TYPE=application/json",
        "HTTP_X_SIGNATURE_ED25519=deadbeef",
        "HTTP_USER_AGENT=Discord-Interactions/1.0",
        "HTTP_=empty-name-ignored",
        "SERVER_PORT=8080",
        NULL,
    };
    gh_arena_init(&arena, 1024, 65536);
    assert_int_equal(gh_fcgi_parse_params(envp, &arena, &req, &clen), GH_OK);
    assert_string_equal(req.method, "POST");
    assert_string_equal(req.path, "/interactions");
    assert_string_equal(req.query, "a=1&b=2");
    assert_string_equal(req.remote_addr, "127.0.0.1");
    assert_int_equal(clen, 42);
    assert_ptr_equal(req.arena, &arena);
    assert_string_equal(gh_http_header(&req, "x-signature-ed25519"), "deadbeef");
    assert_string_equal(gh_http_header(&req, "user-agent"), "Discord-Interactions/1.0");
    assert_string_equal(gh_http_header(&req, "content-type"), "application/json");
    assert_string_equal(gh_http_header(&req, "content-length"), "42");
    assert_int_equal(req.n_headers, 4);
    assert_int_equal(req.body_len, 0);
    assert_int_equal(req.body_too_large, 0);
    gh_arena_cleanup(&arena);
}

static void test_fcgi_params_path_fallbacks(void **state)
{
    (void)state;
    struct gh_arena arena;
    struct gh_http_req req;
    long long clen = 0;
    gh_arena_init(&arena, 1024, 65536);

    char *a[] = {"SCRIPT_NAME=/api", "PATH_INFO=/v1/health", "CONTENT_LENGTH=abc", NULL};
    assert_int_equal(gh_fcgi_parse_params(a, &arena, &req, &clen), GH_OK);
    assert_string_equal(req.path, "/api/v1/health");
    assert_string_equal(req.method, "GET"); /* default */
    assert_int_equal(clen, -1);             /* not a number */

    char *b[] = {"REQUEST_URI=/metrics?x=1", NULL};
    assert_int_equal(gh_fcgi_parse_params(b, &arena, &req, &clen), GH_OK);
    assert_string_equal(req.path, "/metrics");
    assert_string_equal(req.query, "");
    assert_int_equal(clen, -1);

    char *c[] = {NULL};
    assert_int_equal(gh_fcgi_parse_params(c, &arena, &req, &clen), GH_OK);
    assert_string_equal(req.path, "/");
    assert_int_equal(gh_fcgi_parse_params(NULL, &arena, &req, &clen), GH_OK);
    gh_arena_cleanup(&arena);
}

static void test_fcgi_params_header_limit(void **state)
{
    (void)state;
    struct gh_arena arena;
    struct gh_http_req req;
    long long clen = 0;
    char storage[GH_HTTP_MAX_HEADERS + 8][32];
    char *envp[GH_HTTP_MAX_HEADERS + 9];
    int n = GH_HTTP_MAX_HEADERS + 8;
    for (int i = 0; i < n; i++) {
        snprintf(storage[i], sizeof(storage[i]), "HTTP_X_H%d=%d", i, i);
        envp[i] = storage[i];
    }
    envp[n] = NULL;
    gh_arena_init(&arena, 1024, 65536);
    assert_int_equal(gh_fcgi_parse_params(envp, &arena, &req, &clen), GH_OK);
    assert_int_equal(req.n_headers, GH_HTTP_MAX_HEADERS);
    assert_string_equal(gh_http_header(&req, "x-h0"), "0");
    assert_null(gh_http_header(&req, "x-h40"));
    gh_arena_cleanup(&arena);

    /* An arena too small for the names: GH_ENOMEM, not a crash. */
    gh_arena_init(&arena, 64, 128);
    assert_int_equal(gh_fcgi_parse_params(envp, &arena, &req, &clen), GH_ENOMEM);
    gh_arena_cleanup(&arena);
}

/* ---- the FastCGI loop ------------------------------------------------------ */

enum {
    T_BEGIN = 1,
    T_ABORT = 2,
    T_END = 3,
    T_PARAMS = 4,
    T_STDIN = 5,
    T_STDOUT = 6,
    T_VALUES = 9,
    T_VALUES_RESULT = 10,
    T_UNKNOWN = 11
};

struct srv {
    char dir[64];
    char sock[100];
    int tick_rd, tick_wr; /* the server's ticks arrive as 'T' bytes */
    pid_t pid;
};

static int g_tick_fd = -1;

#ifdef GH_COVERAGE
void __gcov_dump(void);
#endif

/* The server child leaves on SIGTERM; a coverage build first writes its
 * counters, which SIGKILL would lose. */
static void srv_on_term(int sig)
{
    (void)sig;
#ifdef GH_COVERAGE
    __gcov_dump();
#endif
    _exit(0);
}

static void srv_tick(void *arg)
{
    (void)arg;
    if (write(g_tick_fd, "T", 1) != 1)
        _exit(3);
}

static void echo(const struct gh_http_req *req, struct gh_http_resp *resp, void *arg)
{
    (void)arg;
    const char *x = gh_http_header(req, "x-test");
    gh_http_resp_set(resp, 200, "application/json");
    gh_buf_printf(&resp->body, "{\"path\":\"%s\",\"x\":\"%s\",\"len\":%zu,\"big\":%d,\"body\":\"%.40s\"}",
                  req->path, x ? x : "", req->body_len, req->body_too_large,
                  req->body_len <= 40 ? req->body : "");
}

static int srv_start(void **state)
{
    struct srv *s = calloc(1, sizeof(*s));
    int p[2];
    assert_non_null(s);
    snprintf(s->dir, sizeof(s->dir), "/tmp/gh-fcgi-XXXXXX");
    assert_non_null(mkdtemp(s->dir));
    snprintf(s->sock, sizeof(s->sock), "%s/s.sock", s->dir);
    assert_int_equal(pipe(p), 0);
    s->tick_rd = p[0];
    s->tick_wr = p[1];

    int lfd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", s->sock);
    assert_true(lfd >= 0);
    assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(lfd, 16), 0);
    s->pid = fork();
    assert_true(s->pid >= 0);
    if (s->pid == 0) {
        signal(SIGTERM, srv_on_term);
        g_tick_fd = s->tick_wr;
        struct gh_fcgi_opts o = {
            .listen_fd = lfd,
            .max_body = 1024,
            .max_resp = 65536,
            .handler = echo,
            .arg = NULL,
            .log = NULL,
            .tick = srv_tick,
            .tick_ms = 50,
        };
        _exit(gh_fcgi_serve_opts(&o) == GH_OK ? 0 : 1);
    }
    close(lfd);
    *state = s;
    return 0;
}

static int srv_stop(void **state)
{
    struct srv *s = *state;
    int status = 0;
    kill(s->pid, SIGTERM);
    int64_t deadline = gh_mono_ms() + 5000;
    while (waitpid(s->pid, &status, WNOHANG) == 0) {
        if (gh_mono_ms() > deadline) {
            kill(s->pid, SIGKILL);
            waitpid(s->pid, &status, 0);
            break;
        }
        (void)poll(NULL, 0, 5);
    }
    close(s->tick_rd);
    close(s->tick_wr);
    unlink(s->sock);
    rmdir(s->dir);
    free(s);
    return 0;
}

static int conn(const struct srv *s)
{
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", s->sock);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    return fd;
}

/* Bytes of a request under construction. */
static void rec(struct gh_buf *b, int type, unsigned id, const void *body, size_t len, size_t pad)
{
    unsigned char h[8] = {1,
                          (unsigned char)type,
                          (unsigned char)(id >> 8),
                          (unsigned char)id,
                          (unsigned char)(len >> 8),
                          (unsigned char)len,
                          (unsigned char)pad,
                          0};
    static const char zeros[256];
    gh_buf_append(b, h, 8);
    if (len)
        gh_buf_append(b, body, len);
    if (pad)
        gh_buf_append(b, zeros, pad);
}

static void nv_len(struct gh_buf *b, size_t n)
{
    unsigned char c[4] = {(unsigned char)((n >> 24) | 0x80), (unsigned char)(n >> 16),
                          (unsigned char)(n >> 8), (unsigned char)n};
    if (n < 128)
        gh_buf_append(b, c + 3, 1);
    else
        gh_buf_append(b, c, 4);
}

static void nv(struct gh_buf *b, const char *name, const char *value)
{
    nv_len(b, strlen(name));
    nv_len(b, strlen(value));
    gh_buf_puts(b, name);
    gh_buf_puts(b, value);
}

static void begin(struct gh_buf *b, unsigned id, int role, int keep)
{
    unsigned char body[8] = {(unsigned char)(role >> 8), (unsigned char)role, (unsigned char)(keep ? 1 : 0)};
    rec(b, T_BEGIN, id, body, 8, 0);
}

/* A whole request: path, x-test header, body. */
static void request(struct gh_buf *b, unsigned id, int keep, const char *path, const char *x,
                    const char *body, size_t body_len)
{
    struct gh_buf pb;
    char cl[24];
    gh_buf_init(&pb, 1 << 16);
    snprintf(cl, sizeof(cl), "%zu", body_len);
    nv(&pb, "REQUEST_METHOD", "POST");
    nv(&pb, "DOCUMENT_URI", path);
    nv(&pb, "CONTENT_LENGTH", cl);
    if (x)
        nv(&pb, "HTTP_X_TEST", x);
    begin(b, id, 1, keep);
    rec(b, T_PARAMS, id, pb.data, pb.len, 0);
    rec(b, T_PARAMS, id, NULL, 0, 0);
    for (size_t off = 0; off < body_len;) {
        size_t n = body_len - off > 30000 ? 30000 : body_len - off;
        rec(b, T_STDIN, id, body + off, n, 0);
        off += n;
    }
    rec(b, T_STDIN, id, NULL, 0, 0);
    gh_buf_cleanup(&pb);
}

static void send_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n > 0) {
        ssize_t k = write(fd, c, n);
        assert_true(k > 0);
        c += k;
        n -= (size_t)k;
    }
}

/* Reads exactly n bytes within 5 s; returns how many arrived (fewer: EOF). */
static size_t recv_n(int fd, void *buf, size_t n)
{
    size_t got = 0;
    int64_t deadline = gh_mono_ms() + 5000;
    while (got < n) {
        int64_t left = deadline - gh_mono_ms();
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (left <= 0 || poll(&p, 1, (int)left) <= 0)
            break;
        ssize_t k = read(fd, (char *)buf + got, n - got);
        if (k <= 0)
            break;
        got += (size_t)k;
    }
    return got;
}

/* One record: its type, id and content (into out, reset first). 0 or -1. */
static int read_rec(int fd, int *type, unsigned *id, struct gh_buf *out)
{
    unsigned char h[8], body[65536 + 256];
    gh_buf_reset(out);
    if (recv_n(fd, h, 8) != 8)
        return -1;
    size_t len = (size_t)h[4] << 8 | h[5], pad = h[6];
    if (recv_n(fd, body, len + pad) != len + pad)
        return -1;
    *type = h[1];
    *id = (unsigned)h[2] << 8 | h[3];
    gh_buf_append(out, body, len);
    return 0;
}

/* Reads a response to request id: the STDOUT text (caller frees), NULL on
 * a protocol surprise. */
static char *response(int fd, unsigned want_id)
{
    struct gh_buf out, r;
    int type, stdout_ended = 0;
    unsigned id;
    char *text = NULL;
    gh_buf_init(&out, 1 << 20);
    gh_buf_init(&r, 1 << 17);
    while (read_rec(fd, &type, &id, &r) == 0 && id == want_id) {
        if (type == T_STDOUT && r.len == 0)
            stdout_ended = 1;
        else if (type == T_STDOUT)
            gh_buf_append(&out, r.data, r.len);
        else if (type == T_END) {
            if (stdout_ended && r.len == 8 && r.data[4] == 0)
                text = strdup(out.len ? out.data : "");
            break;
        }
    }
    gh_buf_cleanup(&out);
    gh_buf_cleanup(&r);
    return text;
}

/* 1 when the server closed fd within 2 s (EOF), 0 when it is still open. */
static int closed_by_server(int fd)
{
    char c;
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, 2000) <= 0)
        return 0;
    return read(fd, &c, 1) == 0;
}

static void test_fcgi_keep_conn_serves_many_requests(void **state)
{
    struct srv *s = *state;
    int fd = conn(s);
    struct gh_buf b;
    gh_buf_init(&b, 1 << 20);
    for (unsigned id = 1; id <= 3; id++) {
        gh_buf_reset(&b);
        request(&b, id, 1, "/k", "again", "hello", 5);
        send_all(fd, b.data, b.len);
        char *out = response(fd, id);
        assert_non_null(out);
        assert_non_null(strstr(out, "Status: 200 OK\r\n"));
        assert_non_null(
            strstr(out, "\"path\":\"/k\",\"x\":\"again\",\"len\":5,\"big\":0,\"body\":\"hello\""));
        free(out);
    }
    /* Kept: no EOF after the last answer. */
    struct pollfd p = {.fd = fd, .events = POLLIN};
    assert_int_equal(poll(&p, 1, 200), 0);
    close(fd);
    gh_buf_cleanup(&b);
}

static void test_fcgi_without_keep_conn_closes_at_once(void **state)
{
    struct srv *s = *state;
    struct gh_buf b;
    gh_buf_init(&b, 1 << 20);
    /* An idle kept connection does not hold up a new one (one server
     * process), and a connection without keep-alive is closed right after
     * the answer, without waiting for the client to close first. */
    int kept = conn(s);
    request(&b, 1, 1, "/a", NULL, "", 0);
    send_all(kept, b.data, b.len);
    char *out = response(kept, 1);
    assert_non_null(out);
    free(out);

    int fd = conn(s);
    gh_buf_reset(&b);
    request(&b, 7, 0, "/b", NULL, "x", 1);
    send_all(fd, b.data, b.len);
    out = response(fd, 7);
    assert_non_null(out);
    assert_non_null(strstr(out, "\"path\":\"/b\""));
    free(out);
    assert_int_equal(closed_by_server(fd), 1);
    close(fd);

    gh_buf_reset(&b);
    request(&b, 2, 1, "/c", NULL, "", 0);
    send_all(kept, b.data, b.len);
    out = response(kept, 2);
    assert_non_null(out);
    assert_non_null(strstr(out, "\"path\":\"/c\""));
    free(out);
    close(kept);
    gh_buf_cleanup(&b);
}

static void test_fcgi_records_in_pieces(void **state)
{
    struct srv *s = *state;
    struct gh_buf pb, b;
    char longv[300];
    gh_buf_init(&pb, 1 << 16);
    gh_buf_init(&b, 1 << 16);
    memset(longv, 'v', sizeof(longv) - 1);
    longv[sizeof(longv) - 1] = '\0';
    nv(&pb, "DOCUMENT_URI", "/pieces");
    nv(&pb, "HTTP_X_TEST", longv); /* 4-byte length */
    nv(&pb, "CONTENT_LENGTH", "11");
    begin(&b, 5, 1, 0);
    size_t cut = 7; /* inside the first pair */
    rec(&b, T_PARAMS, 5, pb.data, cut, 3);
    rec(&b, T_PARAMS, 5, pb.data + cut, pb.len - cut, 5);
    rec(&b, T_PARAMS, 5, NULL, 0, 0);
    rec(&b, T_STDIN, 9, "other request", 13, 0); /* not ours: skipped */
    rec(&b, T_STDIN, 5, "hello", 5, 1);
    rec(&b, T_STDIN, 5, " wor", 4, 0);
    rec(&b, T_STDIN, 5, "ld", 2, 6);
    rec(&b, T_STDIN, 5, NULL, 0, 0);

    int fd = conn(s);
    for (size_t i = 0; i < b.len; i++) /* one byte at a time */
        send_all(fd, b.data + i, 1);
    char *out = response(fd, 5);
    assert_non_null(out);
    char want[400];
    snprintf(want, sizeof(want), "\"x\":\"%s\",\"len\":11,\"big\":0,\"body\":\"hello world\"", longv);
    assert_non_null(strstr(out, want));
    free(out);
    close(fd);
    gh_buf_cleanup(&pb);
    gh_buf_cleanup(&b);
}

static void test_fcgi_management_and_roles(void **state)
{
    struct srv *s = *state;
    struct gh_buf b, pb, r;
    int type;
    unsigned id;
    gh_buf_init(&b, 1 << 16);
    gh_buf_init(&pb, 1024);
    gh_buf_init(&r, 1 << 17);
    int fd = conn(s);

    nv(&pb, "FCGI_MPXS_CONNS", "");
    nv(&pb, "FCGI_NOT_A_THING", "");
    rec(&b, T_VALUES, 0, pb.data, pb.len, 0);
    send_all(fd, b.data, b.len);
    assert_int_equal(read_rec(fd, &type, &id, &r), 0);
    assert_int_equal(type, T_VALUES_RESULT);
    assert_int_equal(id, 0);
    assert_int_equal(r.len, 2 + 15 + 1);
    assert_memory_equal(r.data + 2, "FCGI_MPXS_CONNS0", 16);

    gh_buf_reset(&b);
    rec(&b, 99, 0, "12345678", 8, 0);
    send_all(fd, b.data, b.len);
    assert_int_equal(read_rec(fd, &type, &id, &r), 0);
    assert_int_equal(type, T_UNKNOWN);
    assert_int_equal((unsigned char)r.data[0], 99);

    /* Another role is refused; the connection serves a responder next. */
    gh_buf_reset(&b);
    begin(&b, 3, 2, 1);
    send_all(fd, b.data, b.len);
    assert_int_equal(read_rec(fd, &type, &id, &r), 0);
    assert_int_equal(type, T_END);
    assert_int_equal(id, 3);
    assert_int_equal(r.data[4], 3); /* FCGI_UNKNOWN_ROLE */

    /* A second BEGIN_REQUEST while one is open: FCGI_CANT_MPX_CONN. */
    gh_buf_reset(&b);
    begin(&b, 4, 1, 1);
    begin(&b, 5, 1, 1);
    send_all(fd, b.data, b.len);
    assert_int_equal(read_rec(fd, &type, &id, &r), 0);
    assert_int_equal(type, T_END);
    assert_int_equal(id, 5);
    assert_int_equal(r.data[4], 1);
    gh_buf_reset(&b);
    gh_buf_reset(&pb);
    nv(&pb, "DOCUMENT_URI", "/four");
    rec(&b, T_PARAMS, 4, pb.data, pb.len, 0);
    rec(&b, T_PARAMS, 4, NULL, 0, 0);
    rec(&b, T_STDIN, 4, NULL, 0, 0);
    send_all(fd, b.data, b.len);
    char *out = response(fd, 4);
    assert_non_null(out);
    assert_non_null(strstr(out, "\"path\":\"/four\""));
    free(out);

    /* An aborted request gets its END_REQUEST and no answer. */
    gh_buf_reset(&b);
    begin(&b, 6, 1, 1);
    rec(&b, T_ABORT, 6, NULL, 0, 0);
    send_all(fd, b.data, b.len);
    assert_int_equal(read_rec(fd, &type, &id, &r), 0);
    assert_int_equal(type, T_END);
    assert_int_equal(id, 6);
    close(fd);
    gh_buf_cleanup(&b);
    gh_buf_cleanup(&pb);
    gh_buf_cleanup(&r);
}

static void test_fcgi_limits_keep_the_connection_in_sync(void **state)
{
    struct srv *s = *state;
    struct gh_buf b;
    gh_buf_init(&b, 1 << 20);
    char *big = malloc(70001);
    assert_non_null(big);
    memset(big, 'b', 70000);
    big[70000] = '\0'; /* also a header value below */
    int fd = conn(s);

    /* Over max_body (1024): flagged, not kept, read to its end. */
    request(&b, 1, 1, "/big", NULL, big, 70000);
    send_all(fd, b.data, b.len);
    char *out = response(fd, 1);
    assert_non_null(out);
    assert_non_null(strstr(out, "\"len\":0,\"big\":1"));
    free(out);

    /* Parameters past the cap: 431, and still in sync. */
    struct gh_buf pb;
    gh_buf_init(&pb, 1 << 20);
    for (int i = 0; i < 3; i++)
        nv(&pb, "HTTP_X_FILL", big); /* 210 kB of headers */
    gh_buf_reset(&b);
    begin(&b, 2, 1, 1);
    for (size_t off = 0; off < pb.len; off += 60000)
        rec(&b, T_PARAMS, 2, pb.data + off, pb.len - off > 60000 ? 60000 : pb.len - off, 0);
    rec(&b, T_PARAMS, 2, NULL, 0, 0);
    rec(&b, T_STDIN, 2, "abc", 3, 0);
    rec(&b, T_STDIN, 2, NULL, 0, 0);
    send_all(fd, b.data, b.len);
    out = response(fd, 2);
    assert_non_null(out);
    assert_non_null(strstr(out, "Status: 431 "));
    free(out);

    gh_buf_reset(&b);
    request(&b, 3, 1, "/small", NULL, "ok", 2);
    send_all(fd, b.data, b.len);
    out = response(fd, 3);
    assert_non_null(out);
    assert_non_null(strstr(out, "\"path\":\"/small\",\"x\":\"\",\"len\":2,\"big\":0"));
    free(out);
    close(fd);
    free(big);
    gh_buf_cleanup(&pb);
    gh_buf_cleanup(&b);
}

static void test_fcgi_garbage_closes_only_that_connection(void **state)
{
    struct srv *s = *state;
    struct gh_buf b;
    gh_buf_init(&b, 1 << 16);
    int bad = conn(s);
    send_all(bad, "\x02\x01\x00\x01\x00\x08\x00\x00", 8); /* FastCGI version 2 */
    assert_int_equal(closed_by_server(bad), 1);
    close(bad);

    /* Bytes past the request (the peer did not wait for the answer): the
     * request is answered, then the connection is closed. */
    int fd = conn(s);
    request(&b, 1, 1, "/x", NULL, "", 0);
    begin(&b, 2, 1, 1);
    send_all(fd, b.data, b.len);
    char *out = response(fd, 1);
    assert_non_null(out);
    free(out);
    assert_int_equal(closed_by_server(fd), 1);
    close(fd);

    fd = conn(s);
    gh_buf_reset(&b);
    request(&b, 1, 0, "/fine", NULL, "", 0);
    send_all(fd, b.data, b.len);
    out = response(fd, 1);
    assert_non_null(out);
    assert_non_null(strstr(out, "\"path\":\"/fine\""));
    free(out);
    close(fd);
    gh_buf_cleanup(&b);
}

static void test_fcgi_tick_runs_while_idle(void **state)
{
    struct srv *s = *state;
    char t[3];
    int64_t t0 = gh_mono_ms();
    /* tick_ms is 50: three ticks arrive well within 2 s without a request. */
    for (int i = 0; i < 3; i++) {
        struct pollfd p = {.fd = s->tick_rd, .events = POLLIN};
        assert_int_equal(poll(&p, 1, 2000), 1);
        assert_int_equal(read(s->tick_rd, t + i, 1), 1);
        assert_int_equal(t[i], 'T');
    }
    assert_true(gh_mono_ms() - t0 < 2000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_header_lookup_is_case_insensitive),
        cmocka_unit_test(test_resp_defaults_and_json),
        cmocka_unit_test(test_resp_json_too_large_becomes_500),
        cmocka_unit_test(test_error_json_is_escaped_and_parses),
        cmocka_unit_test(test_resp_headers),
        cmocka_unit_test(test_reason_phrases),
        cmocka_unit_test(test_reason_phrase_table),
        cmocka_unit_test(test_resp_fallbacks),
        cmocka_unit_test(test_resp_set_clears_body),
        cmocka_unit_test(test_fcgi_params),
        cmocka_unit_test(test_fcgi_params_path_fallbacks),
        cmocka_unit_test(test_fcgi_params_header_limit),
        cmocka_unit_test_setup_teardown(test_fcgi_keep_conn_serves_many_requests, srv_start, srv_stop),
        cmocka_unit_test_setup_teardown(test_fcgi_without_keep_conn_closes_at_once, srv_start, srv_stop),
        cmocka_unit_test_setup_teardown(test_fcgi_records_in_pieces, srv_start, srv_stop),
        cmocka_unit_test_setup_teardown(test_fcgi_management_and_roles, srv_start, srv_stop),
        cmocka_unit_test_setup_teardown(test_fcgi_limits_keep_the_connection_in_sync, srv_start, srv_stop),
        cmocka_unit_test_setup_teardown(test_fcgi_garbage_closes_only_that_connection, srv_start, srv_stop),
        cmocka_unit_test_setup_teardown(test_fcgi_tick_runs_while_idle, srv_start, srv_stop),
    };
    return cmocka_run_group_tests_name("http", tests, NULL, NULL);
}
