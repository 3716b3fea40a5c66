/* ws.c - non-blocking WebSocket client (RFC 6455) over TCP or TLS.
 * See ws.h for the interface.
 *
 * Layout: one read buffer (rbuf, 64 KiB and more when a single frame is
 * larger) that frames are parsed from in place, one write buffer (wbuf) of
 * encoded frames waiting for the socket, one reassembly buffer (msg) used only
 * for fragmented messages, and the zlib-stream decoder. An unfragmented
 * message is handed to on_msg straight out of rbuf: the byte after its payload
 * is saved, replaced by a NUL for the call, and restored.
 *
 * Every failure ends in fail(): the reason goes to close_info.error, a close
 * frame is attempted when the WebSocket was open (1002 protocol error, 1009
 * too big), the socket is closed and the state is CLOSED. gh_ws_service then
 * returns the stored error code for ever. */
#include "gateway/ws.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "core/err.h"
#include "core/timeutil.h"
#include "gateway/wsframe.h"
#include "gateway/zstream.h"

#define RBUF_CHUNK 65536        /* bytes asked from the socket per read */
#define MAX_RESPONSE_HEAD 16384 /* HTTP upgrade response headers */
#define CLOSE_WAIT_MS 2000      /* gh_ws_close: wait this long for the peer's close */
#define DEFAULT_MAX_MESSAGE (16u << 20)
#define DEFAULT_CONNECT_TIMEOUT_MS 10000
#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

struct gh_ws {
    enum gh_ws_state state;
    int fd;
    int tls;
    SSL_CTX *ctx;
    SSL *ssl;
    int tls_want_write;       /* the last TLS call wants POLLOUT */
    int tls_write_wants_read; /* SSL_write is waiting for readable, not writable */
    size_t tls_retry_len;     /* SSL_write must be retried with this length (0 = none) */

    char host[256];
    char port[8];
    char *path; /* path + query, "/" at least */
    int host_is_ip;
    struct addrinfo *ai_list, *ai_next;

    struct gh_ws_opts opts;
    char user_agent[128];
    char ca_file[512];
    char accept_expected[32];

    int64_t deadline_ms;       /* connect + TLS + upgrade */
    int64_t close_deadline_ms; /* CLOSING */

    unsigned char *rbuf; /* cap + 1 bytes allocated (room for the NUL trick) */
    size_t rpos, rlen, rcap;

    unsigned char *wbuf;
    size_t wpos, wlen, wcap;

    unsigned char *msg; /* fragmented message being reassembled */
    size_t msg_len, msg_cap;
    int msg_op; /* opcode of the message in progress, -1 = none */

    struct gh_zstream zs;
    int zs_ready;

    int close_sent;
    int result; /* GH_OK while alive, the final code once CLOSED */
    struct gh_ws_close_info info;

    uint64_t bytes_in, messages_in;
};

/* ---- small helpers ---- */

static void set_error(struct gh_ws *ws, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_error(struct gh_ws *ws, const char *fmt, ...)
{
    if (ws->info.error[0])
        return; /* keep the first cause */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ws->info.error, sizeof(ws->info.error), fmt, ap);
    va_end(ap);
}

static void close_socket(struct gh_ws *ws)
{
    if (ws->ssl) {
        SSL_free(ws->ssl);
        ws->ssl = NULL;
    }
    if (ws->fd >= 0) {
        close(ws->fd);
        ws->fd = -1;
    }
}

static void finish(struct gh_ws *ws, int rc)
{
    close_socket(ws);
    ws->state = GH_WS_CLOSED;
    ws->result = rc;
}

static int grow(unsigned char **p, size_t *cap, size_t need, size_t extra)
{
    if (need <= *cap)
        return GH_OK;
    size_t ncap = *cap ? *cap : 4096;
    while (ncap < need)
        ncap *= 2;
    unsigned char *nb = realloc(*p, ncap + extra);
    if (!nb)
        return GH_ENOMEM;
    *p = nb;
    *cap = ncap;
    return GH_OK;
}

/* ---- raw I/O (TCP or TLS). Return > 0 bytes, 0 would block, -1 EOF,
 * -2 error (error text set). ---- */

static const char *tls_err_text(char *buf, size_t n)
{
    unsigned long e = ERR_get_error();
    if (!e)
        return "no OpenSSL error queued";
    ERR_error_string_n(e, buf, n);
    ERR_clear_error();
    return buf;
}

static ssize_t io_read(struct gh_ws *ws, void *buf, size_t n)
{
    if (!ws->tls) {
        for (;;) {
            ssize_t r = recv(ws->fd, buf, n, 0);
            if (r > 0)
                return r;
            if (r == 0)
                return -1;
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 0;
            set_error(ws, "read: %s", strerror(errno));
            return -2;
        }
    }
    int want = n > 0x7fffffff ? 0x7fffffff : (int)n;
    ERR_clear_error();
    int r = SSL_read(ws->ssl, buf, want);
    if (r > 0) {
        ws->tls_want_write = 0;
        return r;
    }
    int e = SSL_get_error(ws->ssl, r);
    switch (e) {
    case SSL_ERROR_WANT_READ:
        ws->tls_want_write = 0;
        return 0;
    case SSL_ERROR_WANT_WRITE:
        ws->tls_want_write = 1;
        return 0;
    case SSL_ERROR_ZERO_RETURN:
        return -1;
    case SSL_ERROR_SYSCALL:
        if (errno == 0 || errno == ECONNRESET || errno == EPIPE) {
            if (errno == ECONNRESET)
                set_error(ws, "TLS read: connection reset");
            return -1; /* EOF without close_notify */
        }
        set_error(ws, "TLS read: %s", strerror(errno));
        return -2;
    default: {
        char eb[160];
        set_error(ws, "TLS read: %s", tls_err_text(eb, sizeof(eb)));
        return -2;
    }
    }
}

static ssize_t io_write(struct gh_ws *ws, const void *buf, size_t n)
{
    if (!ws->tls) {
        for (;;) {
            ssize_t r = send(ws->fd, buf, n, MSG_NOSIGNAL);
            if (r >= 0)
                return r;
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 0;
            set_error(ws, "write: %s", strerror(errno));
            return -2;
        }
    }
    /* After WANT_READ/WANT_WRITE, SSL_write must see the same length again;
     * the buffer may have moved (SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER). */
    size_t len = ws->tls_retry_len ? ws->tls_retry_len : (n > 0x40000000 ? 0x40000000 : n);
    if (len > n)
        len = n; /* cannot happen: wbuf only grows at its end */
    ERR_clear_error();
    int r = SSL_write(ws->ssl, buf, (int)len);
    if (r > 0) {
        ws->tls_retry_len = 0;
        ws->tls_want_write = 0;
        ws->tls_write_wants_read = 0;
        return r;
    }
    int e = SSL_get_error(ws->ssl, r);
    if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) {
        ws->tls_retry_len = len;
        ws->tls_want_write = e == SSL_ERROR_WANT_WRITE;
        ws->tls_write_wants_read = e == SSL_ERROR_WANT_READ;
        return 0;
    }
    if (e == SSL_ERROR_SYSCALL) {
        set_error(ws, "TLS write: %s", errno ? strerror(errno) : "connection closed");
        return -2;
    }
    char eb[160];
    set_error(ws, "TLS write: %s", tls_err_text(eb, sizeof(eb)));
    return -2;
}

/* Writes what the socket takes. GH_OK (maybe with data left) or GH_EIO. */
static int flush(struct gh_ws *ws)
{
    while (ws->wpos < ws->wlen) {
        ssize_t r = io_write(ws, ws->wbuf + ws->wpos, ws->wlen - ws->wpos);
        if (r == 0)
            break;
        if (r < 0)
            return GH_EIO;
        ws->wpos += (size_t)r;
    }
    if (ws->wpos == ws->wlen)
        ws->wpos = ws->wlen = 0;
    return GH_OK;
}

/* Appends one masked frame to wbuf. */
static int queue_frame(struct gh_ws *ws, int opcode, const void *p, size_t n)
{
    size_t fl = gh_wsf_header_size(n) + n;
    if (ws->wpos && ws->wpos == ws->wlen)
        ws->wpos = ws->wlen = 0;
    if (grow(&ws->wbuf, &ws->wcap, ws->wlen + fl, 0) != GH_OK)
        return GH_ENOMEM;
    unsigned char mask[4];
    if (RAND_bytes(mask, 4) != 1)
        return GH_EIO;
    size_t w = gh_wsf_encode(ws->wbuf + ws->wlen, ws->wcap - ws->wlen, opcode, 1, p, n, mask);
    if (w == 0)
        return GH_ENOMEM;
    ws->wlen += w;
    return GH_OK;
}

static void queue_close(struct gh_ws *ws, int code, const char *reason)
{
    if (ws->close_sent)
        return;
    unsigned char pl[2 + GH_WSF_MAX_CLOSE_REASON];
    size_t n = 0;
    if (code > 0) {
        pl[0] = (unsigned char)(code >> 8);
        pl[1] = (unsigned char)code;
        n = 2;
        size_t rl = reason ? strlen(reason) : 0;
        if (rl > GH_WSF_MAX_CLOSE_REASON)
            rl = GH_WSF_MAX_CLOSE_REASON;
        if (rl)
            memcpy(pl + 2, reason, rl);
        n += rl;
    }
    if (queue_frame(ws, GH_WSF_CLOSE, pl, n) == GH_OK)
        ws->close_sent = 1;
}

/* Ends the connection on an error. close_code > 0 sends that close frame
 * first (best effort, one write attempt) when the WebSocket is open. */
static int fail(struct gh_ws *ws, int rc, int close_code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(struct gh_ws *ws, int rc, int close_code, const char *fmt, ...)
{
    if (!ws->info.error[0]) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(ws->info.error, sizeof(ws->info.error), fmt, ap);
        va_end(ap);
    }
    if (close_code > 0 && (ws->state == GH_WS_OPEN || ws->state == GH_WS_CLOSING) && !ws->close_sent) {
        queue_close(ws, close_code, NULL);
        (void)flush(ws);
    }
    finish(ws, rc);
    return rc;
}

/* ---- URL ---- */

static int parse_url(struct gh_ws *ws, const char *url, char *err, size_t errlen)
{
    const char *p;
    if (strncasecmp(url, "ws://", 5) == 0) {
        ws->tls = 0;
        p = url + 5;
    } else if (strncasecmp(url, "wss://", 6) == 0) {
        ws->tls = 1;
        p = url + 6;
    } else {
        snprintf(err, errlen, "bad WebSocket URL (want ws:// or wss://): %.200s", url);
        return GH_EINVAL;
    }
    const char *hend;
    const char *h0 = p;
    size_t hlen;
    if (*p == '[') {
        hend = strchr(p, ']');
        if (!hend) {
            snprintf(err, errlen, "bad WebSocket URL (unclosed '['): %.200s", url);
            return GH_EINVAL;
        }
        h0 = p + 1;
        hlen = (size_t)(hend - h0);
        p = hend + 1;
    } else {
        hlen = strcspn(p, ":/?#");
        p += hlen;
    }
    if (hlen == 0 || hlen >= sizeof(ws->host)) {
        snprintf(err, errlen, "bad WebSocket URL (host): %.200s", url);
        return GH_EINVAL;
    }
    memcpy(ws->host, h0, hlen);
    ws->host[hlen] = '\0';
    snprintf(ws->port, sizeof(ws->port), "%s", ws->tls ? "443" : "80");
    if (*p == ':') {
        p++;
        size_t pl = strspn(p, "0123456789");
        long port = pl && pl < 6 ? strtol(p, NULL, 10) : 0;
        if (port < 1 || port > 65535) {
            snprintf(err, errlen, "bad WebSocket URL (port): %.200s", url);
            return GH_EINVAL;
        }
        snprintf(ws->port, sizeof(ws->port), "%ld", port);
        p += pl;
    }
    if (*p && *p != '/' && *p != '?') {
        snprintf(err, errlen, "bad WebSocket URL: %.200s", url);
        return GH_EINVAL;
    }
    size_t plen = strcspn(p, "#");
    ws->path = malloc(plen + 2);
    if (!ws->path) {
        snprintf(err, errlen, "out of memory");
        return GH_ENOMEM;
    }
    if (*p == '/') {
        memcpy(ws->path, p, plen);
        ws->path[plen] = '\0';
    } else {
        ws->path[0] = '/';
        memcpy(ws->path + 1, p, plen);
        ws->path[plen + 1] = '\0';
    }
    unsigned char tmp[16];
    ws->host_is_ip = inet_pton(AF_INET, ws->host, tmp) == 1 || inet_pton(AF_INET6, ws->host, tmp) == 1;
    return GH_OK;
}

/* ---- handshake ---- */

static int b64_std(const unsigned char *in, size_t n, char *out, size_t outsz)
{
    if (outsz < 4 * ((n + 2) / 3) + 1)
        return GH_ETOOBIG;
    EVP_EncodeBlock((unsigned char *)out, in, (int)n);
    return GH_OK;
}

static int start_tcp(struct gh_ws *ws)
{
    while (ws->ai_next) {
        struct addrinfo *ai = ws->ai_next;
        ws->ai_next = ai->ai_next;
        int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            set_error(ws, "socket: %s", strerror(errno));
            continue;
        }
        int one = 1;
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 || errno == EINPROGRESS) {
            ws->fd = fd;
            ws->info.error[0] = '\0';
            ws->state = GH_WS_CONNECTING;
            return GH_OK;
        }
        set_error(ws, "connect to %s:%s: %s", ws->host, ws->port, strerror(errno));
        close(fd);
    }
    if (!ws->info.error[0])
        set_error(ws, "connect to %s:%s: no address", ws->host, ws->port);
    return GH_EIO;
}

static int queue_upgrade(struct gh_ws *ws)
{
    unsigned char key[16];
    char key64[32];
    if (RAND_bytes(key, sizeof(key)) != 1 || b64_std(key, sizeof(key), key64, sizeof(key64)) != GH_OK)
        return fail(ws, GH_EIO, 0, "no random bytes for Sec-WebSocket-Key");
    char cat[96];
    snprintf(cat, sizeof(cat), "%s%s", key64, WS_GUID);
    unsigned char sha[SHA_DIGEST_LENGTH];
    SHA1((const unsigned char *)cat, strlen(cat), sha);
    b64_std(sha, sizeof(sha), ws->accept_expected, sizeof(ws->accept_expected));

    int default_port = strcmp(ws->port, ws->tls ? "443" : "80") == 0;
    int v6 = strchr(ws->host, ':') != NULL;
    char hosthdr[300];
    snprintf(hosthdr, sizeof(hosthdr), "%s%s%s%s%s", v6 ? "[" : "", ws->host, v6 ? "]" : "",
             default_port ? "" : ":", default_port ? "" : ws->port);
    static const char fmt[] = "GET %s HTTP/1.1\r\n"
                              "Host: %s\r\n"
                              "User-Agent: %s\r\n"
                              "Upgrade: websocket\r\n"
                              "Connection: Upgrade\r\n"
                              "Sec-WebSocket-Key: %s\r\n"
                              "Sec-WebSocket-Version: 13\r\n"
                              "\r\n";
    int n = snprintf(NULL, 0, fmt, ws->path, hosthdr, ws->user_agent, key64);
    char *req = n < 0 ? NULL : malloc((size_t)n + 1);
    if (!req)
        return fail(ws, GH_ENOMEM, 0, "out of memory");
    snprintf(req, (size_t)n + 1, fmt, ws->path, hosthdr, ws->user_agent, key64);
    int rc = grow(&ws->wbuf, &ws->wcap, ws->wlen + (size_t)n, 0);
    if (rc == GH_OK) {
        memcpy(ws->wbuf + ws->wlen, req, (size_t)n);
        ws->wlen += (size_t)n;
    }
    free(req);
    if (rc != GH_OK)
        return fail(ws, GH_ENOMEM, 0, "out of memory");
    ws->state = GH_WS_UPGRADE;
    return GH_OK;
}

/* OpenSSL's socket BIO writes with write(), which raises SIGPIPE on a
 * connection the peer reset; a library must not kill its process. This BIO is
 * the socket BIO with send(MSG_NOSIGNAL) for writes. */
static BIO_METHOD *nosigpipe_method;
static pthread_once_t nosigpipe_once = PTHREAD_ONCE_INIT;

static int nosigpipe_write(BIO *b, const char *buf, int n)
{
    int fd = -1;
    BIO_get_fd(b, &fd);
    BIO_clear_retry_flags(b);
    ssize_t r;
    do {
        r = send(fd, buf, (size_t)n, MSG_NOSIGNAL);
    } while (r < 0 && errno == EINTR);
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        BIO_set_retry_write(b);
    return (int)r;
}

static void nosigpipe_make(void)
{
    const BIO_METHOD *base = BIO_s_socket();
    BIO_METHOD *m =
        BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK | BIO_TYPE_DESCRIPTOR, "guildhall socket");
    if (!m)
        return;
    if (!BIO_meth_set_write(m, nosigpipe_write) || !BIO_meth_set_read(m, BIO_meth_get_read(base)) ||
        !BIO_meth_set_puts(m, BIO_meth_get_puts(base)) || !BIO_meth_set_ctrl(m, BIO_meth_get_ctrl(base)) ||
        !BIO_meth_set_create(m, BIO_meth_get_create(base)) ||
        !BIO_meth_set_destroy(m, BIO_meth_get_destroy(base))) {
        BIO_meth_free(m);
        return;
    }
    nosigpipe_method = m;
}

static int start_tls(struct gh_ws *ws)
{
    char eb[160];
    ws->ctx = SSL_CTX_new(TLS_client_method());
    if (!ws->ctx)
        return fail(ws, GH_EIO, 0, "TLS: SSL_CTX_new: %s", tls_err_text(eb, sizeof(eb)));
    SSL_CTX_set_min_proto_version(ws->ctx, TLS1_2_VERSION);
    if (!ws->opts.insecure) {
        int ok = ws->ca_file[0] ? SSL_CTX_load_verify_locations(ws->ctx, ws->ca_file, NULL)
                                : SSL_CTX_set_default_verify_paths(ws->ctx);
        if (ok != 1)
            return fail(ws, GH_EIO, 0, "TLS: cannot load CA certificates%s%s: %s",
                        ws->ca_file[0] ? " from " : "", ws->ca_file, tls_err_text(eb, sizeof(eb)));
        SSL_CTX_set_verify(ws->ctx, SSL_VERIFY_PEER, NULL);
    } else {
        SSL_CTX_set_verify(ws->ctx, SSL_VERIFY_NONE, NULL);
    }
    ws->ssl = SSL_new(ws->ctx);
    if (!ws->ssl)
        return fail(ws, GH_EIO, 0, "TLS: SSL_new: %s", tls_err_text(eb, sizeof(eb)));
    SSL_set_mode(ws->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (!ws->host_is_ip)
        SSL_set_tlsext_host_name(ws->ssl, ws->host);
    if (!ws->opts.insecure) {
        X509_VERIFY_PARAM *param = SSL_get0_param(ws->ssl);
        int ok = ws->host_is_ip ? X509_VERIFY_PARAM_set1_ip_asc(param, ws->host)
                                : X509_VERIFY_PARAM_set1_host(param, ws->host, 0);
        if (ok != 1)
            return fail(ws, GH_EIO, 0, "TLS: cannot set the host name to verify");
    }
    pthread_once(&nosigpipe_once, nosigpipe_make);
    BIO *bio = nosigpipe_method ? BIO_new(nosigpipe_method) : NULL;
    if (!bio)
        return fail(ws, GH_EIO, 0, "TLS: cannot make the socket BIO: %s", tls_err_text(eb, sizeof(eb)));
    BIO_set_fd(bio, ws->fd, BIO_NOCLOSE);
    SSL_set_bio(ws->ssl, bio, bio);
    ws->state = GH_WS_TLS;
    return GH_OK;
}

/* GH_OK: done (state advanced) or in progress; negative: failed. */
static int step_tls(struct gh_ws *ws)
{
    ERR_clear_error();
    int r = SSL_connect(ws->ssl);
    if (r == 1) {
        ws->tls_want_write = 0;
        return queue_upgrade(ws);
    }
    int e = SSL_get_error(ws->ssl, r);
    if (e == SSL_ERROR_WANT_READ) {
        ws->tls_want_write = 0;
        return GH_OK;
    }
    if (e == SSL_ERROR_WANT_WRITE) {
        ws->tls_want_write = 1;
        return GH_OK;
    }
    long vr = ws->opts.insecure ? X509_V_OK : SSL_get_verify_result(ws->ssl);
    if (vr != X509_V_OK)
        return fail(ws, GH_EIO, 0, "TLS handshake with %s: certificate verify failed: %s", ws->host,
                    X509_verify_cert_error_string(vr));
    char eb[160];
    if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)
        return fail(ws, GH_EIO, 0, "TLS handshake with %s: %s", ws->host,
                    errno ? strerror(errno) : "connection closed");
    return fail(ws, GH_EIO, 0, "TLS handshake with %s: %s", ws->host, tls_err_text(eb, sizeof(eb)));
}

/* Finds header name (case-insensitive) in the response head; value trimmed
 * into out. 1 found, 0 not. */
static int find_header(const char *head, const char *name, char *out, size_t outsz)
{
    size_t nl = strlen(name);
    const char *line = strstr(head, "\r\n");
    while (line && line[2] != '\r' && line[2]) {
        line += 2;
        const char *eol = strstr(line, "\r\n");
        if (!eol)
            break;
        if ((size_t)(eol - line) > nl && strncasecmp(line, name, nl) == 0 && line[nl] == ':') {
            const char *v = line + nl + 1;
            while (v < eol && (*v == ' ' || *v == '\t'))
                v++;
            const char *ve = eol;
            while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
                ve--;
            size_t vl = (size_t)(ve - v);
            if (vl >= outsz)
                vl = outsz - 1;
            memcpy(out, v, vl);
            out[vl] = '\0';
            return 1;
        }
        line = eol;
    }
    return 0;
}

static int has_token(const char *v, const char *tok)
{
    size_t tl = strlen(tok);
    const char *p = v;
    while (*p) {
        while (*p == ' ' || *p == ',' || *p == '\t')
            p++;
        size_t l = strcspn(p, ", \t");
        if (l == tl && strncasecmp(p, tok, tl) == 0)
            return 1;
        p += l;
    }
    return 0;
}

/* Checks the response head in rbuf (complete, ends at head_len). */
static int check_upgrade(struct gh_ws *ws, size_t head_len)
{
    char *head = (char *)ws->rbuf;
    char saved = head[head_len];
    head[head_len] = '\0';
    int rc = GH_OK;
    int status = 0;
    char reason[64] = "";
    if (sscanf(head, "HTTP/1.%*d %d %63[^\r\n]", &status, reason) < 1) {
        rc = fail(ws, GH_EHTTP, 0, "upgrade: malformed HTTP status line");
        goto out;
    }
    if (status != 101) {
        rc = fail(ws, GH_EHTTP, 0, "upgrade refused: HTTP %d %s", status, reason);
        goto out;
    }
    char v[128];
    if (!find_header(head, "Upgrade", v, sizeof(v)) || strcasecmp(v, "websocket") != 0) {
        rc = fail(ws, GH_EHTTP, 0, "upgrade: missing or wrong Upgrade header");
        goto out;
    }
    if (!find_header(head, "Connection", v, sizeof(v)) || !has_token(v, "upgrade")) {
        rc = fail(ws, GH_EHTTP, 0, "upgrade: missing or wrong Connection header");
        goto out;
    }
    if (!find_header(head, "Sec-WebSocket-Accept", v, sizeof(v)) || strcmp(v, ws->accept_expected) != 0) {
        rc = fail(ws, GH_EHTTP, 0, "upgrade: bad Sec-WebSocket-Accept");
        goto out;
    }
    if (find_header(head, "Sec-WebSocket-Extensions", v, sizeof(v)) && v[0]) {
        rc = fail(ws, GH_EHTTP, 0, "upgrade: server chose an extension we did not offer (%s)", v);
        goto out;
    }
out:
    head[head_len] = saved;
    return rc;
}

/* ---- frames ---- */

static void deliver(struct gh_ws *ws, unsigned char *p, size_t n, gh_ws_msg_fn on_msg, void *arg)
{
    /* p[n] is inside an allocation that has one spare byte at its end. */
    unsigned char saved = p[n];
    p[n] = '\0';
    ws->messages_in++;
    if (on_msg)
        on_msg(arg, (const char *)p, n);
    p[n] = saved;
}

static int handle_message(struct gh_ws *ws, int op, unsigned char *p, size_t n, gh_ws_msg_fn on_msg,
                          void *arg)
{
    if (op == GH_WSF_BINARY && ws->opts.zlib_stream) {
        const char *out;
        size_t outlen;
        int rc = gh_zstream_push(&ws->zs, p, n, &out, &outlen);
        if (rc == 0)
            return GH_OK;
        if (rc == GH_ETOOBIG)
            return fail(ws, GH_ETOOBIG, 1009, "zlib-stream: %s (max %zu bytes)", ws->zs.error,
                        ws->opts.max_message);
        if (rc < 0)
            return fail(ws, rc, rc == GH_EIO ? 1007 : 1011, "zlib-stream: %s", ws->zs.error);
        ws->messages_in++;
        if (on_msg)
            on_msg(arg, out, outlen);
        return GH_OK;
    }
    deliver(ws, p, n, on_msg, arg);
    return GH_OK;
}

static int handle_close(struct gh_ws *ws, unsigned char *p, size_t n)
{
    int code;
    char reason[sizeof(ws->info.reason)];
    if (gh_wsf_close_parse(p, n, &code, reason, sizeof(reason)) != GH_OK)
        return fail(ws, GH_EIO, 1002, "protocol error: bad close frame payload");
    ws->info.code = code == 1005 ? 0 : code;
    memcpy(ws->info.reason, reason, sizeof(reason));
    if (!ws->close_sent) {
        ws->info.by_peer = 1;
        queue_close(ws, code == 1005 ? 0 : code, NULL);
        (void)flush(ws);
    }
    finish(ws, GH_EIO);
    return GH_EIO;
}

/* Parses and handles every complete frame in rbuf. */
static int parse_frames(struct gh_ws *ws, gh_ws_msg_fn on_msg, void *arg)
{
    size_t maxmsg = ws->opts.max_message;
    while (ws->state == GH_WS_OPEN || ws->state == GH_WS_CLOSING) {
        size_t avail = ws->rlen - ws->rpos;
        struct gh_wsf_header h;
        const char *why = "";
        int r = gh_wsf_parse(ws->rbuf + ws->rpos, avail, 0, &h, NULL, &why);
        if (r == 0)
            break;
        if (r < 0)
            return fail(ws, GH_EIO, 1002, "protocol error: %s", why);
        int data = !(h.opcode & 0x8);
        if (data) {
            size_t already = h.opcode == GH_WSF_CONT ? ws->msg_len : 0;
            if (h.payload_len > maxmsg || already > maxmsg - h.payload_len)
                return fail(ws, GH_ETOOBIG, 1009, "message too large (over %zu bytes)", maxmsg);
        }
        size_t total = h.header_len + (size_t)h.payload_len;
        if (avail < total) {
            if (total > ws->rcap) {
                /* A frame bigger than the buffer: move it to the front and
                 * grow so that it fits whole. */
                if (ws->rpos) {
                    memmove(ws->rbuf, ws->rbuf + ws->rpos, avail);
                    ws->rlen = avail;
                    ws->rpos = 0;
                }
                if (grow(&ws->rbuf, &ws->rcap, total, 1) != GH_OK)
                    return fail(ws, GH_ENOMEM, 1011, "out of memory");
            }
            break;
        }
        unsigned char *p = ws->rbuf + ws->rpos + h.header_len;
        size_t n = (size_t)h.payload_len;
        ws->rpos += total;
        int rc = GH_OK;
        switch (h.opcode) {
        case GH_WSF_TEXT:
        case GH_WSF_BINARY:
            if (ws->msg_op >= 0)
                return fail(ws, GH_EIO, 1002, "protocol error: new message inside a fragmented one");
            if (h.fin) {
                rc = handle_message(ws, h.opcode, p, n, on_msg, arg);
            } else {
                if (grow(&ws->msg, &ws->msg_cap, n, 1) != GH_OK)
                    return fail(ws, GH_ENOMEM, 1011, "out of memory");
                memcpy(ws->msg, p, n);
                ws->msg_len = n;
                ws->msg_op = h.opcode;
            }
            break;
        case GH_WSF_CONT:
            if (ws->msg_op < 0)
                return fail(ws, GH_EIO, 1002, "protocol error: continuation without a message");
            if (grow(&ws->msg, &ws->msg_cap, ws->msg_len + n, 1) != GH_OK)
                return fail(ws, GH_ENOMEM, 1011, "out of memory");
            memcpy(ws->msg + ws->msg_len, p, n);
            ws->msg_len += n;
            if (h.fin) {
                int op = ws->msg_op;
                size_t len = ws->msg_len;
                ws->msg_op = -1;
                ws->msg_len = 0;
                rc = handle_message(ws, op, ws->msg, len, on_msg, arg);
            }
            break;
        case GH_WSF_PING:
            if (ws->state == GH_WS_OPEN) {
                if (queue_frame(ws, GH_WSF_PONG, p, n) != GH_OK)
                    return fail(ws, GH_ENOMEM, 0, "out of memory");
            }
            break;
        case GH_WSF_PONG:
            break;
        case GH_WSF_CLOSE:
            return handle_close(ws, p, n);
        default:
            break;
        }
        if (rc < 0)
            return rc;
    }
    if (ws->state == GH_WS_CLOSED)
        return ws->result;
    /* Keep the unparsed tail at the front so the next read has room. */
    if (ws->rpos == ws->rlen) {
        ws->rpos = ws->rlen = 0;
    } else if (ws->rpos) {
        memmove(ws->rbuf, ws->rbuf + ws->rpos, ws->rlen - ws->rpos);
        ws->rlen -= ws->rpos;
        ws->rpos = 0;
    }
    return GH_OK;
}

/* Length of the HTTP head (through the blank line), 0 when incomplete. */
static size_t find_head_end(const unsigned char *p, size_t n)
{
    for (size_t i = 3; i < n; i++)
        if (p[i] == '\n' && p[i - 1] == '\r' && p[i - 2] == '\n' && p[i - 3] == '\r')
            return i + 1;
    return 0;
}

/* Reads until the socket is drained, parsing as it goes. */
static int read_loop(struct gh_ws *ws, gh_ws_msg_fn on_msg, void *arg)
{
    while (ws->state == GH_WS_OPEN || ws->state == GH_WS_CLOSING || ws->state == GH_WS_UPGRADE) {
        if (ws->rcap - ws->rlen < RBUF_CHUNK / 4) {
            if (grow(&ws->rbuf, &ws->rcap, ws->rlen + RBUF_CHUNK, 1) != GH_OK)
                return fail(ws, GH_ENOMEM, 1011, "out of memory");
        }
        size_t room = ws->rcap - ws->rlen;
        ssize_t r = io_read(ws, ws->rbuf + ws->rlen, room);
        if (r == 0)
            break;
        if (r == -1) {
            if (ws->state == GH_WS_UPGRADE)
                return fail(ws, GH_EHTTP, 0, "upgrade: connection closed before the response");
            ws->info.by_peer = !ws->close_sent;
            return fail(ws, GH_EIO, 0, "connection closed by the peer without a close frame");
        }
        if (r < 0)
            return fail(ws, GH_EIO, 0, "%s", "read failed");
        ws->rlen += (size_t)r;
        ws->bytes_in += (uint64_t)r;
        if (ws->state == GH_WS_UPGRADE) {
            size_t head_len = find_head_end(ws->rbuf, ws->rlen);
            if (!head_len) {
                if (ws->rlen > MAX_RESPONSE_HEAD)
                    return fail(ws, GH_EHTTP, 0, "upgrade: response headers too long");
                continue;
            }
            int rc = check_upgrade(ws, head_len);
            if (rc < 0)
                return rc;
            ws->rpos = head_len;
            ws->state = GH_WS_OPEN;
            ws->deadline_ms = 0;
        }
        int rc = parse_frames(ws, on_msg, arg);
        if (rc < 0)
            return rc;
        /* A short plain-TCP read means the socket is drained: skip the
         * recv() that would only say EAGAIN (poll is level-triggered). */
        if (!ws->tls && (size_t)r < room)
            break;
    }
    return ws->state == GH_WS_CLOSED ? ws->result : GH_OK;
}

/* ---- public ---- */

struct gh_ws *gh_ws_connect(const char *url, const struct gh_ws_opts *opts, char *err, size_t errlen)
{
    char dummy[8];
    if (!err || !errlen) {
        err = dummy;
        errlen = sizeof(dummy);
    }
    err[0] = '\0';
    if (!url) {
        snprintf(err, errlen, "no URL");
        return NULL;
    }
    struct gh_ws *ws = calloc(1, sizeof(*ws));
    if (!ws) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    ws->fd = -1;
    ws->msg_op = -1;
    if (opts)
        ws->opts = *opts;
    if (!ws->opts.max_message)
        ws->opts.max_message = DEFAULT_MAX_MESSAGE;
    if (ws->opts.connect_timeout_ms <= 0)
        ws->opts.connect_timeout_ms = DEFAULT_CONNECT_TIMEOUT_MS;
    snprintf(ws->user_agent, sizeof(ws->user_agent), "%s",
             ws->opts.user_agent ? ws->opts.user_agent : "guildhall-gateway");
    ws->opts.user_agent = NULL;
    if (ws->opts.ca_file)
        snprintf(ws->ca_file, sizeof(ws->ca_file), "%s", ws->opts.ca_file);
    ws->opts.ca_file = NULL;
    if (parse_url(ws, url, err, errlen) != GH_OK)
        goto fail;
    ws->rbuf = malloc(RBUF_CHUNK + 1);
    if (!ws->rbuf) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    ws->rcap = RBUF_CHUNK;
    if (ws->opts.zlib_stream) {
        if (gh_zstream_init(&ws->zs, ws->opts.max_message, ws->opts.max_message) != GH_OK) {
            snprintf(err, errlen, "out of memory (zlib)");
            goto fail;
        }
        ws->zs_ready = 1;
    }
    struct addrinfo hints;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int gai = getaddrinfo(ws->host, ws->port, &hints, &ws->ai_list);
    if (gai != 0) {
        snprintf(err, errlen, "resolve %s: %s", ws->host, gai_strerror(gai));
        goto fail;
    }
    ws->ai_next = ws->ai_list;
    ws->deadline_ms = gh_mono_ms() + ws->opts.connect_timeout_ms;
    if (start_tcp(ws) != GH_OK)
        finish(ws, GH_EIO); /* refused at once: reported by gh_ws_service like a late refusal */
    return ws;
fail:
    gh_ws_free(ws);
    return NULL;
}

void gh_ws_free(struct gh_ws *ws)
{
    if (!ws)
        return;
    close_socket(ws);
    SSL_CTX_free(ws->ctx);
    if (ws->ai_list)
        freeaddrinfo(ws->ai_list);
    if (ws->zs_ready)
        gh_zstream_cleanup(&ws->zs);
    free(ws->path);
    free(ws->rbuf);
    free(ws->wbuf);
    free(ws->msg);
    free(ws);
}

int gh_ws_fd(const struct gh_ws *ws)
{
    return ws && ws->state != GH_WS_CLOSED ? ws->fd : -1;
}

short gh_ws_events(const struct gh_ws *ws)
{
    if (!ws || ws->state == GH_WS_CLOSED)
        return 0;
    short ev = POLLIN;
    if (ws->state == GH_WS_CONNECTING || ws->tls_want_write ||
        (ws->wlen > ws->wpos && !ws->tls_write_wants_read))
        ev |= POLLOUT;
    return ev;
}

enum gh_ws_state gh_ws_state(const struct gh_ws *ws)
{
    return ws ? ws->state : GH_WS_CLOSED;
}

static int step_connect(struct gh_ws *ws, short revents)
{
    if (!(revents & (POLLOUT | POLLERR | POLLHUP)))
        return GH_OK;
    int soerr = 0;
    socklen_t sl = sizeof(soerr);
    if (getsockopt(ws->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0)
        soerr = errno;
    if (soerr == EINPROGRESS)
        return GH_OK;
    if (soerr != 0) {
        close(ws->fd);
        ws->fd = -1;
        set_error(ws, "connect to %s:%s: %s", ws->host, ws->port, strerror(soerr));
        if (ws->ai_next) {
            char keep[sizeof(ws->info.error)];
            memcpy(keep, ws->info.error, sizeof(keep));
            if (start_tcp(ws) == GH_OK)
                return GH_OK;
            memcpy(ws->info.error, keep, sizeof(keep));
        }
        return fail(ws, GH_EIO, 0, "%s", ws->info.error);
    }
    if (ws->tls) {
        int rc = start_tls(ws);
        if (rc < 0)
            return rc;
        return step_tls(ws);
    }
    return queue_upgrade(ws);
}

int gh_ws_service(struct gh_ws *ws, short revents, gh_ws_msg_fn on_msg, void *arg)
{
    if (!ws)
        return GH_EINVAL;
    if (ws->state == GH_WS_CLOSED)
        return ws->result;
    int64_t now = gh_mono_ms();
    if (ws->state < GH_WS_OPEN && now >= ws->deadline_ms) {
        static const char *const what[] = {"TCP connect", "TLS handshake", "HTTP upgrade"};
        return fail(ws, GH_ETIMEOUT, 0, "connect timed out after %d ms (during the %s to %s:%s)",
                    ws->opts.connect_timeout_ms, what[ws->state], ws->host, ws->port);
    }
    if (ws->state == GH_WS_CLOSING && now >= ws->close_deadline_ms)
        return fail(ws, GH_ETIMEOUT, 0, "the peer did not answer our close frame within %d ms",
                    CLOSE_WAIT_MS);
    int rc;
    if (ws->state == GH_WS_CONNECTING) {
        rc = step_connect(ws, revents);
        if (rc < 0)
            return rc;
        if (ws->state == GH_WS_CONNECTING)
            return GH_OK;
        revents |= POLLIN; /* try reading right away after the handshake steps */
    }
    if (ws->state == GH_WS_TLS) {
        rc = step_tls(ws);
        if (rc < 0)
            return rc;
        if (ws->state == GH_WS_TLS)
            return GH_OK;
        revents |= POLLIN;
    }
    if (flush(ws) != GH_OK)
        return fail(ws, GH_EIO, 0, "%s", "write failed");
    int want_read = (revents & (POLLIN | POLLERR | POLLHUP)) != 0;
    /* TLS: a record may sit decrypted inside OpenSSL (SSL_pending), or the
     * last SSL_read wanted the socket writable. */
    if (ws->tls && ws->ssl && (SSL_pending(ws->ssl) > 0 || (ws->tls_want_write && (revents & POLLOUT))))
        want_read = 1;
    if (want_read) {
        rc = read_loop(ws, on_msg, arg);
        if (rc < 0)
            return rc;
    }
    /* Pongs and sends queued by on_msg. */
    if (ws->state != GH_WS_CLOSED && flush(ws) != GH_OK)
        return fail(ws, GH_EIO, 0, "%s", "write failed");
    return ws->state == GH_WS_CLOSED ? ws->result : GH_OK;
}

int gh_ws_send_text(struct gh_ws *ws, const char *data, size_t len)
{
    if (!ws || ws->state != GH_WS_OPEN)
        return GH_EIO;
    if (len && !data)
        return GH_EINVAL;
    int rc = queue_frame(ws, GH_WSF_TEXT, data, len);
    if (rc != GH_OK)
        return rc;
    if (flush(ws) != GH_OK) {
        fail(ws, GH_EIO, 0, "%s", "write failed");
        return GH_EIO;
    }
    return GH_OK;
}

int gh_ws_close(struct gh_ws *ws, int code, const char *reason)
{
    if (!ws)
        return GH_EINVAL;
    if (ws->state == GH_WS_CLOSED || ws->state == GH_WS_CLOSING)
        return GH_OK;
    if (ws->state != GH_WS_OPEN) {
        /* Nothing to close politely yet. */
        set_error(ws, "closed by us before the WebSocket was open");
        finish(ws, GH_EIO);
        return GH_OK;
    }
    queue_close(ws, code, reason);
    if (!ws->close_sent)
        return fail(ws, GH_ENOMEM, 0, "out of memory");
    ws->state = GH_WS_CLOSING;
    ws->close_deadline_ms = gh_mono_ms() + CLOSE_WAIT_MS;
    if (flush(ws) != GH_OK)
        fail(ws, GH_EIO, 0, "%s", "write failed");
    return GH_OK;
}

void gh_ws_get_close_info(const struct gh_ws *ws, struct gh_ws_close_info *out)
{
    if (!ws) {
        memset(out, 0, sizeof(*out));
        return;
    }
    *out = ws->info;
}

void gh_ws_counters(const struct gh_ws *ws, uint64_t *bytes_in, uint64_t *messages_in)
{
    if (bytes_in)
        *bytes_in = ws ? ws->bytes_in : 0;
    if (messages_in)
        *messages_in = ws ? ws->messages_in : 0;
}
