/* test_ws.c - gh_ws end to end against a tiny WebSocket server in a forked
 * child (blocking, scripted), on a loopback listener with an ephemeral port.
 * The child checks what the client sent and exits non-zero on a mismatch;
 * the parent drives gh_ws with poll() and checks what it delivered. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <zlib.h>

#include "core/err.h"
#include "core/timeutil.h"
#include "gateway/ws.h"
#include "gateway/wsframe.h"

/* ---- the server side (child process) ---- */

struct srv {
    int fd;
    SSL *ssl;
};

static SSL_CTX *g_srv_ctx; /* TLS server context, built once */

#define CHECK(cond)                                                                                          \
    do {                                                                                                     \
        if (!(cond)) {                                                                                       \
            fprintf(stderr, "server check failed at %s:%d: %s\n", __FILE__, __LINE__, #cond);                \
            _exit(3);                                                                                        \
        }                                                                                                    \
    } while (0)

static int srv_read_full(struct srv *s, void *buf, size_t n)
{
    unsigned char *p = buf;
    while (n) {
        ssize_t r = s->ssl ? SSL_read(s->ssl, p, (int)n) : read(s->fd, p, n);
        if (r <= 0) {
            if (!s->ssl && r < 0 && errno == EINTR)
                continue;
            return -1;
        }
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

static void srv_write_all(struct srv *s, const void *buf, size_t n)
{
    const unsigned char *p = buf;
    while (n) {
        ssize_t r = s->ssl ? SSL_write(s->ssl, p, (int)n) : write(s->fd, p, n);
        if (r <= 0 && !s->ssl && errno == EINTR)
            continue;
        CHECK(r > 0);
        p += r;
        n -= (size_t)r;
    }
}

static void srv_send(struct srv *s, int op, int fin, const void *p, size_t n)
{
    size_t cap = n + GH_WSF_MAX_HEADER;
    unsigned char *f = malloc(cap);
    CHECK(f);
    size_t w = gh_wsf_encode(f, cap, op, fin, p, n, NULL);
    CHECK(w > 0);
    srv_write_all(s, f, w);
    free(f);
}

/* Sends a frame with a mask (which a server must never do). */
static void srv_send_masked(struct srv *s, int op, const void *p, size_t n)
{
    unsigned char f[256];
    unsigned char m[4] = {1, 2, 3, 4};
    size_t w = gh_wsf_encode(f, sizeof(f), op, 1, p, n, m);
    CHECK(w > 0);
    srv_write_all(s, f, w);
}

/* Reads one client frame (must be masked); payload unmasked into buf. */
static int srv_recv(struct srv *s, int *op, unsigned char *buf, size_t cap, size_t *len)
{
    unsigned char h[GH_WSF_MAX_HEADER];
    size_t have = 2, need = 2;
    struct gh_wsf_header hd;
    if (srv_read_full(s, h, 2) != 0)
        return -1;
    for (;;) {
        int r = gh_wsf_parse(h, have, 1, &hd, &need, NULL);
        CHECK(r >= 0);
        if (r > 0)
            break;
        CHECK(need > have && need <= sizeof(h));
        if (srv_read_full(s, h + have, need - have) != 0)
            return -1;
        have = need;
    }
    CHECK(hd.payload_len <= cap);
    if (hd.payload_len && srv_read_full(s, buf, (size_t)hd.payload_len) != 0)
        return -1;
    gh_wsf_mask(buf, (size_t)hd.payload_len, hd.mask, 0);
    *op = hd.opcode;
    *len = (size_t)hd.payload_len;
    return 0;
}

/* Expects a close frame with code (and reason when not NULL). */
static void srv_expect_close(struct srv *s, int code, const char *reason)
{
    unsigned char b[256];
    size_t n;
    int op;
    for (;;) {
        CHECK(srv_recv(s, &op, b, sizeof(b), &n) == 0);
        if (op != GH_WSF_PONG)
            break;
    }
    CHECK(op == GH_WSF_CLOSE);
    int c;
    char r[124];
    CHECK(gh_wsf_close_parse(b, n, &c, r, sizeof(r)) == GH_OK);
    if (c != code)
        fprintf(stderr, "server: close code %d, want %d\n", c, code);
    CHECK(c == code);
    if (reason)
        CHECK(strcmp(r, reason) == 0);
}

static void srv_send_close(struct srv *s, int code, const char *reason)
{
    unsigned char b[128];
    b[0] = (unsigned char)(code >> 8);
    b[1] = (unsigned char)code;
    size_t rl = strlen(reason);
    memcpy(b + 2, reason, rl);
    srv_send(s, GH_WSF_CLOSE, 1, b, 2 + rl);
}

enum hs_mode { HS_OK, HS_BAD_ACCEPT, HS_403, HS_SILENT, HS_TLS_REFUSED };

static void srv_handshake(struct srv *s, enum hs_mode mode)
{
    char req[4096];
    size_t n = 0;
    while (n < 4 || memcmp(req + n - 4, "\r\n\r\n", 4) != 0) {
        CHECK(n < sizeof(req) - 1);
        CHECK(srv_read_full(s, req + n, 1) == 0);
        n++;
    }
    req[n] = '\0';
    CHECK(strncmp(req, "GET /gateway?v=10&encoding=json HTTP/1.1\r\n", 42) == 0);
    CHECK(strstr(req, "\r\nUpgrade: websocket\r\n") != NULL);
    CHECK(strstr(req, "\r\nSec-WebSocket-Version: 13\r\n") != NULL);
    CHECK(strstr(req, "\r\nHost: 127.0.0.1:") != NULL); /* non-default port kept */
    const char *k = strstr(req, "\r\nSec-WebSocket-Key: ");
    CHECK(k);
    k += 21;
    char key[64];
    size_t kl = strcspn(k, "\r");
    CHECK(kl == 24);
    memcpy(key, k, kl);
    key[kl] = '\0';
    if (mode == HS_SILENT)
        return;
    if (mode == HS_403) {
        const char *resp = "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n";
        srv_write_all(s, resp, strlen(resp));
        return;
    }
    char cat[128];
    snprintf(cat, sizeof(cat), "%s258EAFA5-E914-47DA-95CA-C5AB0DC85B11", key);
    unsigned char sha[20];
    SHA1((unsigned char *)cat, strlen(cat), sha);
    char acc[64];
    EVP_EncodeBlock((unsigned char *)acc, sha, 20);
    if (mode == HS_BAD_ACCEPT)
        acc[3] = acc[3] == 'A' ? 'B' : 'A';
    char resp[512];
    int rl = snprintf(resp, sizeof(resp),
                      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      "Sec-WebSocket-Accept: %s\r\n\r\n",
                      acc);
    srv_write_all(s, resp, (size_t)rl);
}

typedef void (*script_fn)(struct srv *s);

struct server {
    pid_t pid;
    int port;
};

static int listen_loopback(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(fd, 8), 0);
    socklen_t sl = sizeof(a);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &sl), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

/* Forks a server that accepts one connection, does TLS when tls, the
 * handshake in mode, then runs script (when not NULL). */
static struct server start_server(int tls, enum hs_mode mode, script_fn script)
{
    struct server sv;
    int lfd = listen_loopback(&sv.port);
    fflush(NULL);
    sv.pid = fork();
    assert_true(sv.pid >= 0);
    if (sv.pid == 0) {
        alarm(10);
        struct srv s = {.fd = accept(lfd, NULL, NULL), .ssl = NULL};
        CHECK(s.fd >= 0);
        close(lfd);
        if (tls) {
            s.ssl = SSL_new(g_srv_ctx);
            SSL_set_fd(s.ssl, s.fd);
            int ok = SSL_accept(s.ssl) == 1;
            if (mode == HS_TLS_REFUSED)
                _exit(ok ? 5 : 0); /* the client must abort the handshake */
            CHECK(ok);
        }
        srv_handshake(&s, mode);
        if (script)
            script(&s);
        if (mode == HS_SILENT) {
            /* Keep the connection open without answering. */
            char b[16];
            while (srv_read_full(&s, b, 1) == 0) {
            }
        }
        _exit(0);
    }
    close(lfd);
    return sv;
}

static void expect_server_ok(struct server *sv)
{
    int st = 0;
    assert_int_equal(waitpid(sv->pid, &st, 0), sv->pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
}

/* ---- the client side ---- */

#define MAX_KEPT 16

struct got {
    int n;
    char *msg[MAX_KEPT];
    size_t len[MAX_KEPT];
    struct gh_ws *echo_ws; /* when set, each message is sent back */
};

static void on_msg(void *arg, const char *data, size_t len)
{
    struct got *g = arg;
    assert_int_equal(data[len], '\0');
    if (g->n < MAX_KEPT) {
        g->msg[g->n] = malloc(len + 1);
        memcpy(g->msg[g->n], data, len + 1);
        g->len[g->n] = len;
    }
    g->n++;
}

static void got_free(struct got *g)
{
    for (int i = 0; i < g->n && i < MAX_KEPT; i++)
        free(g->msg[i]);
    memset(g, 0, sizeof(*g));
}

/* Drives ws until state want (or closed), or nmsg messages arrived
 * (nmsg > 0), for at most ms. Returns the last gh_ws_service result. */
static int pump(struct gh_ws *ws, struct got *g, enum gh_ws_state want, int nmsg, int ms)
{
    int64_t end = gh_mono_ms() + ms;
    int rc = GH_OK;
    while (gh_mono_ms() < end) {
        if (gh_ws_state(ws) == want || (nmsg > 0 && g->n >= nmsg))
            return rc;
        struct pollfd pfd = {.fd = gh_ws_fd(ws), .events = gh_ws_events(ws), .revents = 0};
        if (pfd.fd < 0)
            return rc;
        int pr = poll(&pfd, 1, 20);
        rc = gh_ws_service(ws, pr > 0 ? pfd.revents : 0, on_msg, g);
        if (rc < 0)
            return rc;
    }
    return rc;
}

static struct gh_ws *client(int port, int tls, const struct gh_ws_opts *opts)
{
    char url[128];
    snprintf(url, sizeof(url), "%s://127.0.0.1:%d/gateway?v=10&encoding=json", tls ? "wss" : "ws", port);
    char err[256];
    struct gh_ws *ws = gh_ws_connect(url, opts, err, sizeof(err));
    if (!ws)
        fail_msg("connect: %s", err);
    return ws;
}

/* ---- scenarios ---- */

#define BIG_LEN 200000

static void script_echo(struct srv *s)
{
    unsigned char b[512];
    size_t n;
    int op;
    CHECK(srv_recv(s, &op, b, sizeof(b), &n) == 0);
    CHECK(op == GH_WSF_TEXT && n == 5 && memcmp(b, "hello", 5) == 0);
    srv_send(s, GH_WSF_TEXT, 1, "echo:hello", 10);
    /* A 64-bit-length frame, larger than the client's read buffer. */
    char *big = malloc(BIG_LEN);
    CHECK(big);
    for (size_t i = 0; i < BIG_LEN; i++)
        big[i] = (char)('a' + i % 26);
    srv_send(s, GH_WSF_TEXT, 1, big, BIG_LEN);
    free(big);
    /* 16-bit length, then many small frames in one burst. */
    char mid[300];
    memset(mid, 'm', sizeof(mid));
    srv_send(s, GH_WSF_TEXT, 1, mid, sizeof(mid));
    for (int i = 0; i < 2000; i++) {
        char t[16];
        int tl = snprintf(t, sizeof(t), "%d", i);
        srv_send(s, GH_WSF_TEXT, 1, t, (size_t)tl);
    }
    srv_expect_close(s, 4000, "bye");
    srv_send_close(s, 4000, "bye");
}

static void test_echo_and_client_close(void **state)
{
    (void)state;
    struct server sv = start_server(0, HS_OK, script_echo);
    struct gh_ws_opts o = {0};
    struct gh_ws *ws = client(sv.port, 0, &o);
    struct got g = {0};
    assert_int_equal(pump(ws, &g, GH_WS_OPEN, 0, 3000), GH_OK);
    assert_int_equal(gh_ws_state(ws), GH_WS_OPEN);
    assert_int_equal(gh_ws_send_text(ws, "hello", 5), GH_OK);
    assert_int_equal(pump(ws, &g, GH_WS_CLOSED, 2003, 3000), GH_OK);
    assert_int_equal(g.n, 2003);
    assert_int_equal(g.len[0], 10);
    assert_string_equal(g.msg[0], "echo:hello");
    assert_int_equal(g.len[1], BIG_LEN);
    for (size_t i = 0; i < BIG_LEN; i++)
        if (g.msg[1][i] != (char)('a' + i % 26))
            fail_msg("big message differs at %zu", i);
    assert_int_equal(g.len[2], 300);
    assert_string_equal(g.msg[3], "0");
    assert_string_equal(g.msg[15], "12");
    uint64_t bin, min;
    gh_ws_counters(ws, &bin, &min);
    assert_int_equal(min, 2003);
    assert_true(bin > BIG_LEN);
    assert_int_equal(gh_ws_close(ws, 4000, "bye"), GH_OK);
    assert_int_equal(gh_ws_state(ws), GH_WS_CLOSING);
    int rc = pump(ws, &g, GH_WS_CLOSED, 0, 3000);
    assert_true(rc < 0);
    assert_int_equal(gh_ws_state(ws), GH_WS_CLOSED);
    assert_int_equal(gh_ws_fd(ws), -1);
    struct gh_ws_close_info ci;
    gh_ws_get_close_info(ws, &ci);
    assert_int_equal(ci.code, 4000);
    assert_string_equal(ci.reason, "bye");
    assert_int_equal(ci.by_peer, 0);
    assert_string_equal(ci.error, "");
    gh_ws_free(ws);
    got_free(&g);
    expect_server_ok(&sv);
}

static void script_fragments(struct srv *s)
{
    srv_send(s, GH_WSF_TEXT, 0, "abc", 3);
    srv_send(s, GH_WSF_PING, 1, "p1", 2);
    srv_send(s, GH_WSF_CONT, 0, "def", 3);
    srv_send(s, GH_WSF_PONG, 1, "ignored", 7);
    srv_send(s, GH_WSF_CONT, 1, "ghi", 3);
    unsigned char b[256];
    size_t n;
    int op;
    CHECK(srv_recv(s, &op, b, sizeof(b), &n) == 0);
    CHECK(op == GH_WSF_PONG && n == 2 && memcmp(b, "p1", 2) == 0);
    srv_send_close(s, 4004, "auth failed");
    srv_expect_close(s, 4004, NULL);
}

static void test_fragments_ping_and_peer_close(void **state)
{
    (void)state;
    struct server sv = start_server(0, HS_OK, script_fragments);
    struct gh_ws_opts o = {0};
    struct gh_ws *ws = client(sv.port, 0, &o);
    struct got g = {0};
    int rc = pump(ws, &g, GH_WS_CLOSED, 0, 3000);
    assert_true(rc < 0);
    assert_int_equal(g.n, 1);
    assert_int_equal(g.len[0], 9);
    assert_string_equal(g.msg[0], "abcdefghi");
    struct gh_ws_close_info ci;
    gh_ws_get_close_info(ws, &ci);
    assert_int_equal(ci.code, 4004);
    assert_string_equal(ci.reason, "auth failed");
    assert_int_equal(ci.by_peer, 1);
    assert_string_equal(ci.error, "");
    gh_ws_free(ws);
    got_free(&g);
    expect_server_ok(&sv);
}

static void test_bad_accept(void **state)
{
    (void)state;
    struct server sv = start_server(0, HS_BAD_ACCEPT, NULL);
    struct gh_ws_opts o = {0};
    struct gh_ws *ws = client(sv.port, 0, &o);
    struct got g = {0};
    assert_int_equal(pump(ws, &g, GH_WS_CLOSED, 0, 3000), GH_EHTTP);
    struct gh_ws_close_info ci;
    gh_ws_get_close_info(ws, &ci);
    assert_non_null(strstr(ci.error, "Sec-WebSocket-Accept"));
    assert_int_equal(ci.code, 0);
    gh_ws_free(ws);
    expect_server_ok(&sv);
}

static void test_403(void **state)
{
    (void)state;
    struct server sv = start_server(0, HS_403, NULL);
    struct gh_ws_opts o = {0};
    struct gh_ws *ws = client(sv.port, 0, &o);
    struct got g = {0};
    assert_int_equal(pump(ws, &g, GH_WS_CLOSED, 0, 3000), GH_EHTTP);
    struct gh_ws_close_info ci;
    gh_ws_get_close_info(ws, &ci);
    assert_non_null(strstr(ci.error, "403"));
    gh_ws_free(ws);
    expect_server_ok(&sv);
}

static void script_masked(struct srv *s)
{
    srv_send_masked(s, GH_WSF_TEXT, "x", 1);
    srv_expect_close(s, 1002, NULL);
}

static void test_masked_server_frame(void **state)
{
    (void)state;
    struct server sv = start_server(0, HS_OK, script_masked);
    struct gh_ws_opts o = {0};
    struct gh_ws *ws = client(sv.port, 0, &o);
    struct got g = {0};
    assert_int_equal(pump(ws, &g, GH_WS_CLOSED, 0, 3000), GH_EIO);
    assert_int_equal(g.n, 0);
    struct gh_ws_close_info ci;
    gh_ws_get_close_info(ws, &ci);
    assert_non_null(strstr(ci.error, "masked"));
    gh_ws_free(ws);
    expect_server_ok(&sv);
}

static void script_too_big(struct srv *s)
{
    char b[2000];
    memset(b, 'z', sizeof(b));
    srv_send(s, GH_WSF_TEXT, 1, b, sizeof(b));
    srv_expect_close(s, 1009, NULL);
}

static void test_too_big(void **state)
{
    (void)state;
    struct server sv = start_server(0, HS_OK, script_too_big);
    struct gh_ws_opts o = {.max_message = 1000};
    struct gh_ws *ws = client(sv.port, 0, &o);
    struct got g = {0};
    assert_int_equal(pump(ws, &g, GH_WS_CLOSED, 0, 3000), GH_ETOOBIG);
    assert_int_equal(g.n, 0);
    gh_ws_free(ws);
    expect_server_ok(&sv);
}

/* zlib-stream: one deflate stream for the whole connection, like Discord. */
static size_t zchunk(z_stream *z, const char *in, unsigned char *out, size_t cap)
{
    z->next_in = (Bytef *)(uintptr_t)in;
    z->avail_in = (uInt)strlen(in);
    z->next_out = out;
    z->avail_out = (uInt)cap;
    CHECK(deflate(z, Z_SYNC_FLUSH) == Z_OK);
    CHECK(z->avail_in == 0 && z->avail_out > 0);
    return cap - z->avail_out;
}

#define ZMSG1 "{\"op\":10,\"d\":{\"heartbeat_interval\":41250}}"
#define ZMSG2 "{\"op\":0,\"t\":\"READY\",\"s\":1,\"d\":{\"v\":10,\"session_id\":\"abc\"}}"
#define ZMSG3 "{\"op\":0,\"t\":\"MESSAGE_CREATE\",\"s\":2,\"d\":{\"content\":\"hello hello hello\"}}"

static void script_zlib(struct srv *s)
{
    z_stream z;
    memset(&z, 0, sizeof(z));
    CHECK(deflateInit(&z, Z_DEFAULT_COMPRESSION) == Z_OK);
    unsigned char out[4096];
    size_t n = zchunk(&z, ZMSG1, out, sizeof(out));
    srv_send(s, GH_WSF_BINARY, 1, out, n);
    /* A text message is delivered as is. */
    srv_send(s, GH_WSF_TEXT, 1, "plain", 5);
    /* Message 2 split over two WebSocket messages. */
    n = zchunk(&z, ZMSG2, out, sizeof(out));
    CHECK(n > 8);
    srv_send(s, GH_WSF_BINARY, 1, out, n / 2);
    srv_send(s, GH_WSF_BINARY, 1, out + n / 2, n - n / 2);
    /* Message 3 in two fragments of one WebSocket message. */
    n = zchunk(&z, ZMSG3, out, sizeof(out));
    srv_send(s, GH_WSF_BINARY, 0, out, 3);
    srv_send(s, GH_WSF_CONT, 1, out + 3, n - 3);
    /* Message 1 again: refers back to earlier data in the same stream. */
    n = zchunk(&z, ZMSG1, out, sizeof(out));
    srv_send(s, GH_WSF_BINARY, 1, out, n);
    deflateEnd(&z);
    srv_send_close(s, 1000, "");
    srv_expect_close(s, 1000, NULL);
}

static void test_zlib_stream(void **state)
{
    (void)state;
    struct server sv = start_server(0, HS_OK, script_zlib);
    struct gh_ws_opts o = {.zlib_stream = 1};
    struct gh_ws *ws = client(sv.port, 0, &o);
    struct got g = {0};
    assert_true(pump(ws, &g, GH_WS_CLOSED, 0, 3000) < 0);
    assert_int_equal(g.n, 5);
    assert_string_equal(g.msg[0], ZMSG1);
    assert_string_equal(g.msg[1], "plain");
    assert_string_equal(g.msg[2], ZMSG2);
    assert_string_equal(g.msg[3], ZMSG3);
    assert_string_equal(g.msg[4], ZMSG1);
    assert_int_equal(g.len[4], strlen(ZMSG1));
    struct gh_ws_close_info ci;
    gh_ws_get_close_info(ws, &ci);
    assert_int_equal(ci.code, 1000);
    assert_int_equal(ci.by_peer, 1);
    uint64_t min;
    gh_ws_counters(ws, NULL, &min);
    assert_int_equal(min, 5);
    gh_ws_free(ws);
    got_free(&g);
    expect_server_ok(&sv);
}

/* Frames written a few bytes at a time: the client must wait for the rest
 * of headers and payloads across reads. */
static void script_trickle(struct srv *s)
{
    int one = 1;
    setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    unsigned char all[1024];
    size_t len = 0;
    char mid[300];
    memset(mid, 'q', sizeof(mid));
    len += gh_wsf_encode(all + len, sizeof(all) - len, GH_WSF_TEXT, 1, mid, sizeof(mid), NULL);
    len += gh_wsf_encode(all + len, sizeof(all) - len, GH_WSF_TEXT, 0, "ab", 2, NULL);
    len += gh_wsf_encode(all + len, sizeof(all) - len, GH_WSF_PING, 1, "x", 1, NULL);
    len += gh_wsf_encode(all + len, sizeof(all) - len, GH_WSF_CONT, 1, "cd", 2, NULL);
    for (size_t i = 0; i < len; i += 3) {
        srv_write_all(s, all + i, len - i < 3 ? len - i : 3);
        usleep(300);
    }
    unsigned char b[64];
    size_t n;
    int op;
    CHECK(srv_recv(s, &op, b, sizeof(b), &n) == 0);
    CHECK(op == GH_WSF_PONG && n == 1 && b[0] == 'x');
    srv_send_close(s, 1000, "");
    srv_expect_close(s, 1000, NULL);
}

static void test_trickle(void **state)
{
    (void)state;
    struct server sv = start_server(0, HS_OK, script_trickle);
    struct gh_ws_opts o = {0};
    struct gh_ws *ws = client(sv.port, 0, &o);
    struct got g = {0};
    assert_true(pump(ws, &g, GH_WS_CLOSED, 0, 3000) < 0);
    assert_int_equal(g.n, 2);
    assert_int_equal(g.len[0], 300);
    assert_int_equal(g.msg[0][299], 'q');
    assert_string_equal(g.msg[1], "abcd");
    struct gh_ws_close_info ci;
    gh_ws_get_close_info(ws, &ci);
    assert_int_equal(ci.code, 1000);
    assert_string_equal(ci.error, "");
    gh_ws_free(ws);
    got_free(&g);
    expect_server_ok(&sv);
}

static void test_connect_timeout(void **state)
{
    (void)state;
    /* A listener that never accepts: the kernel completes the TCP
     * handshake, nobody answers the upgrade. */
    int port;
    int lfd = listen_loopback(&port);
    struct gh_ws_opts o = {.connect_timeout_ms = 300};
    struct gh_ws *ws = client(port, 0, &o);
    struct got g = {0};
    int64_t t0 = gh_mono_ms();
    assert_int_equal(pump(ws, &g, GH_WS_CLOSED, 0, 3000), GH_ETIMEOUT);
    int64_t took = gh_mono_ms() - t0;
    assert_true(took >= 250 && took < 1500);
    struct gh_ws_close_info ci;
    gh_ws_get_close_info(ws, &ci);
    assert_non_null(strstr(ci.error, "timed out"));
    gh_ws_free(ws);
    close(lfd);
}

static void test_refused(void **state)
{
    (void)state;
    /* A port nobody listens on (bound, then closed). */
    int port;
    int lfd = listen_loopback(&port);
    close(lfd);
    struct gh_ws_opts o = {0};
    struct gh_ws *ws = client(port, 0, &o);
    struct got g = {0};
    int rc = pump(ws, &g, GH_WS_CLOSED, 0, 3000); /* already closed (GH_OK) or closes now */
    assert_true(rc == GH_OK || rc == GH_EIO);
    assert_int_equal(gh_ws_state(ws), GH_WS_CLOSED);
    assert_int_equal(gh_ws_service(ws, 0, on_msg, &g), GH_EIO);
    struct gh_ws_close_info ci;
    gh_ws_get_close_info(ws, &ci);
    if (!strstr(ci.error, "refused"))
        fail_msg("error: %s", ci.error);
    gh_ws_free(ws);
}

static void test_bad_url(void **state)
{
    (void)state;
    char err[256];
    struct gh_ws_opts o = {0};
    assert_null(gh_ws_connect("http://example.com/", &o, err, sizeof(err)));
    assert_non_null(strstr(err, "ws://"));
    assert_null(gh_ws_connect("ws://127.0.0.1:99999/", &o, err, sizeof(err)));
    assert_non_null(strstr(err, "port"));
    gh_ws_free(NULL);
}

/* ---- TLS: a self-signed certificate made in memory ---- */

static X509 *g_cert;
static EVP_PKEY *g_key;

static X509 *make_cert(EVP_PKEY *key, const char *san)
{
    X509 *x = X509_new();
    assert_non_null(x);
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, key);
    X509_NAME *nm = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(nm, "CN", MBSTRING_ASC, (const unsigned char *)"guildhall test", -1, -1, 0);
    X509_set_issuer_name(x, nm);
    X509V3_CTX v3;
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, san);
    assert_non_null(ext);
    X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    ext = X509V3_EXT_conf_nid(NULL, &v3, NID_basic_constraints, "critical,CA:TRUE");
    assert_non_null(ext);
    X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    assert_true(X509_sign(x, key, EVP_sha256()) > 0);
    return x;
}

static void use_cert(const char *san)
{
    X509_free(g_cert);
    SSL_CTX_free(g_srv_ctx);
    g_cert = make_cert(g_key, san);
    g_srv_ctx = SSL_CTX_new(TLS_server_method());
    assert_non_null(g_srv_ctx);
    assert_int_equal(SSL_CTX_use_certificate(g_srv_ctx, g_cert), 1);
    assert_int_equal(SSL_CTX_use_PrivateKey(g_srv_ctx, g_key), 1);
}

/* Writes the certificate as a PEM file for opts.ca_file; caller unlinks. */
static void cert_file(char *path, size_t n)
{
    snprintf(path, n, "/tmp/gh-test-ws-ca-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    assert_non_null(f);
    assert_int_equal(PEM_write_X509(f, g_cert), 1);
    fclose(f);
}

static void script_tls_echo(struct srv *s)
{
    unsigned char b[64];
    size_t n;
    int op;
    CHECK(srv_recv(s, &op, b, sizeof(b), &n) == 0);
    CHECK(op == GH_WSF_TEXT && n == 5 && memcmp(b, "hello", 5) == 0);
    srv_send(s, GH_WSF_TEXT, 1, "echo:hello", 10);
    srv_expect_close(s, 4000, "bye");
    srv_send_close(s, 4000, "bye");
}

static void tls_session(int insecure, const char *ca_file, script_fn script, int nmsg)
{
    struct server sv = start_server(1, HS_OK, script);
    struct gh_ws_opts o = {.insecure = insecure, .ca_file = ca_file};
    struct gh_ws *ws = client(sv.port, 1, &o);
    struct got g = {0};
    assert_int_equal(pump(ws, &g, GH_WS_OPEN, 0, 3000), GH_OK);
    assert_int_equal(gh_ws_state(ws), GH_WS_OPEN);
    assert_int_equal(gh_ws_send_text(ws, "hello", 5), GH_OK);
    assert_int_equal(pump(ws, &g, GH_WS_CLOSED, nmsg, 3000), GH_OK);
    assert_int_equal(g.n, nmsg);
    assert_string_equal(g.msg[0], "echo:hello");
    if (nmsg > 1) {
        assert_int_equal(g.len[1], BIG_LEN);
        assert_string_equal(g.msg[15], "12");
    }
    assert_int_equal(gh_ws_close(ws, 4000, "bye"), GH_OK);
    assert_true(pump(ws, &g, GH_WS_CLOSED, 0, 3000) < 0);
    struct gh_ws_close_info ci;
    gh_ws_get_close_info(ws, &ci);
    assert_int_equal(ci.code, 4000);
    assert_string_equal(ci.error, "");
    gh_ws_free(ws);
    got_free(&g);
    expect_server_ok(&sv);
}

static void test_tls_insecure(void **state)
{
    (void)state;
    use_cert("IP:127.0.0.1");
    /* The big frame and the burst of small ones exercise partial TLS
     * records and SSL_pending. */
    tls_session(1, NULL, script_echo, 2003);
}

static void test_tls_verified_with_ca_file(void **state)
{
    (void)state;
    use_cert("IP:127.0.0.1");
    char path[64];
    cert_file(path, sizeof(path));
    tls_session(0, path, script_tls_echo, 1);
    unlink(path);
}

static void tls_refused(const char *ca_file, const char *want_error)
{
    struct server sv = start_server(1, HS_TLS_REFUSED, NULL);
    struct gh_ws_opts o = {.ca_file = ca_file};
    struct gh_ws *ws = client(sv.port, 1, &o);
    struct got g = {0};
    assert_int_equal(pump(ws, &g, GH_WS_CLOSED, 0, 3000), GH_EIO);
    struct gh_ws_close_info ci;
    gh_ws_get_close_info(ws, &ci);
    if (!strstr(ci.error, want_error))
        fail_msg("error \"%s\" lacks \"%s\"", ci.error, want_error);
    assert_non_null(strstr(ci.error, "certificate verify failed"));
    gh_ws_free(ws);
    expect_server_ok(&sv);
}

static void test_tls_self_signed_refused(void **state)
{
    (void)state;
    use_cert("IP:127.0.0.1");
    tls_refused(NULL, "self-signed");
}

static void test_tls_wrong_host_refused(void **state)
{
    (void)state;
    use_cert("IP:127.0.0.2");
    char path[64];
    cert_file(path, sizeof(path));
    tls_refused(path, "mismatch");
    unlink(path);
}

/* The server drops the connection: writes must fail with an error, not
 * kill the process with SIGPIPE (left at its default for this test). */
static void script_drop(struct srv *s)
{
    unsigned char b[64];
    size_t n;
    int op;
    CHECK(srv_recv(s, &op, b, sizeof(b), &n) == 0); /* the client is open */
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(s->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    close(s->fd); /* RST */
}

static void dropped(int tls)
{
    struct server sv = start_server(tls, HS_OK, script_drop);
    struct gh_ws_opts o = {.insecure = 1};
    struct gh_ws *ws = client(sv.port, tls, &o);
    struct got g = {0};
    assert_int_equal(pump(ws, &g, GH_WS_OPEN, 0, 3000), GH_OK);
    assert_int_equal(gh_ws_send_text(ws, "ready", 5), GH_OK);
    expect_server_ok(&sv); /* the connection is gone now */
    /* Consume the pending ECONNRESET (as an earlier read would): the next
     * write then gets EPIPE, which raises SIGPIPE unless suppressed. */
    int soerr = 0;
    socklen_t sl = sizeof(soerr);
    for (int i = 0; i < 100 && soerr == 0; i++) {
        getsockopt(gh_ws_fd(ws), SOL_SOCKET, SO_ERROR, &soerr, &sl);
        if (soerr == 0)
            usleep(1000);
    }
    assert_int_equal(soerr, ECONNRESET);
    signal(SIGPIPE, SIG_DFL);
    int rc = GH_OK;
    for (int i = 0; i < 50 && rc == GH_OK; i++) {
        rc = gh_ws_send_text(ws, "still there?", 12);
        if (rc == GH_OK)
            rc = pump(ws, &g, GH_WS_CLOSED, 0, 20);
    }
    signal(SIGPIPE, SIG_IGN);
    assert_true(rc < 0);
    assert_int_equal(gh_ws_state(ws), GH_WS_CLOSED);
    struct gh_ws_close_info ci;
    gh_ws_get_close_info(ws, &ci);
    assert_int_equal(ci.code, 0);
    assert_true(ci.error[0] != '\0');
    gh_ws_free(ws);
}

static void test_dropped_plain(void **state)
{
    (void)state;
    dropped(0);
}

static void test_dropped_tls(void **state)
{
    (void)state;
    use_cert("IP:127.0.0.1");
    dropped(1);
}

static int group_setup(void **state)
{
    (void)state;
    g_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    return g_key ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    X509_free(g_cert);
    SSL_CTX_free(g_srv_ctx);
    EVP_PKEY_free(g_key);
    return 0;
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_echo_and_client_close),
        cmocka_unit_test(test_fragments_ping_and_peer_close),
        cmocka_unit_test(test_bad_accept),
        cmocka_unit_test(test_403),
        cmocka_unit_test(test_masked_server_frame),
        cmocka_unit_test(test_too_big),
        cmocka_unit_test(test_zlib_stream),
        cmocka_unit_test(test_trickle),
        cmocka_unit_test(test_connect_timeout),
        cmocka_unit_test(test_bad_url),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_tls_insecure),
        cmocka_unit_test(test_tls_verified_with_ca_file),
        cmocka_unit_test(test_tls_self_signed_refused),
        cmocka_unit_test(test_tls_wrong_host_refused),
        cmocka_unit_test(test_dropped_plain),
        cmocka_unit_test(test_dropped_tls),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
