/* test_rest.c - the Discord REST client against a scripted HTTP/1.1 server
 * that runs in a thread of this test on 127.0.0.1:<ephemeral>. The server
 * answers each request with the next canned response of its script and
 * records what it received, so every test asserts what went over the wire.
 *
 * gh_mono_ms is wrapped (test_rest.wrap) so the circuit-breaker test can move
 * the monotonic clock forward instead of sleeping 10 s. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/err.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "discord/rest.h"
#include "store/redis.h"

#define TOKEN "TESTTOKEN.abcdef.0123456789"
#define UA "DiscordBot (https://example.test, 1.2.3)"

/* ---- clock seam --------------------------------------------------------- */

int64_t __real_gh_mono_ms(void);
int64_t __wrap_gh_mono_ms(void);
static int64_t mono_offset;

int64_t __wrap_gh_mono_ms(void)
{
    return __real_gh_mono_ms() + mono_offset;
}

/* ---- the scripted server ------------------------------------------------ */

#define MAX_SCRIPT 16
#define MAX_RECORDED 32
#define MAX_CONNS 16
#define CONN_BUF 65536

struct canned {
    int status;
    const char *headers; /* extra lines, each ending in \r\n */
    const char *body;
    int hang;   /* never answer */
    int repeat; /* answer this many requests (0 = 1) */
};

struct recorded {
    char method[8];
    char path[512];
    char headers[4096];
    char body[4096];
    size_t body_len;
};

struct conn {
    int fd;
    int hung;
    size_t len;
    char buf[CONN_BUF];
};

struct srv {
    int lfd;
    int port;
    int stop_pipe[2];
    pthread_t th;
    pthread_mutex_t mu;
    struct canned script[MAX_SCRIPT];
    int n_script;
    int next;
    int used_of_next;
    int n_reqs; /* all requests seen */
    struct recorded reqs[MAX_RECORDED];
    struct conn conns[MAX_CONNS];
};

static const char *reason_phrase(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 204:
        return "No Content";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 429:
        return "Too Many Requests";
    case 500:
        return "Internal Server Error";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    default:
        return "Whatever";
    }
}

static void write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w <= 0)
            return;
        p += w;
        n -= (size_t)w;
    }
}

static const char *find_ci(const char *hay, const char *needle)
{
    size_t n = strlen(needle);

    for (; *hay != '\0'; hay++)
        if (strncasecmp(hay, needle, n) == 0)
            return hay;
    return NULL;
}

/* Handles every complete request in c->buf. */
static void serve_conn(struct srv *s, struct conn *c)
{
    for (;;) {
        char *end;
        size_t hdr_len, body_len = 0, total;
        const char *cl;
        struct canned k = {500, NULL, "{\"message\":\"script exhausted\"}", 0, 0};
        char out[8192];
        int n;

        if (c->hung)
            return;
        c->buf[c->len] = '\0';
        end = strstr(c->buf, "\r\n\r\n");
        if (end == NULL)
            return;
        hdr_len = (size_t)(end - c->buf) + 4;
        cl = find_ci(c->buf, "\r\ncontent-length:");
        if (cl != NULL && cl < end)
            body_len = strtoul(cl + 17, NULL, 10);
        total = hdr_len + body_len;
        if (c->len < total)
            return;

        pthread_mutex_lock(&s->mu);
        if (s->n_reqs < MAX_RECORDED) {
            struct recorded *r = &s->reqs[s->n_reqs];
            sscanf(c->buf, "%7s %511s", r->method, r->path);
            size_t hn = hdr_len < sizeof(r->headers) - 1 ? hdr_len : sizeof(r->headers) - 1;
            memcpy(r->headers, c->buf, hn);
            r->headers[hn] = '\0';
            r->body_len = body_len < sizeof(r->body) - 1 ? body_len : sizeof(r->body) - 1;
            memcpy(r->body, c->buf + hdr_len, r->body_len);
            r->body[r->body_len] = '\0';
        }
        s->n_reqs++;
        if (s->next < s->n_script) {
            k = s->script[s->next];
            if (++s->used_of_next >= (k.repeat > 0 ? k.repeat : 1)) {
                s->next++;
                s->used_of_next = 0;
            }
        }
        pthread_mutex_unlock(&s->mu);

        memmove(c->buf, c->buf + total, c->len - total);
        c->len -= total;
        if (k.hang) {
            c->hung = 1;
            return;
        }
        /* one write: a split answer meets Nagle and delayed ACKs (40 ms each) */
        n = snprintf(out, sizeof(out),
                     "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n%s\r\n%s",
                     k.status, reason_phrase(k.status), k.body != NULL ? strlen(k.body) : 0,
                     k.headers != NULL ? k.headers : "", k.body != NULL ? k.body : "");
        write_all(c->fd, out, n < (int)sizeof(out) ? (size_t)n : sizeof(out) - 1);
    }
}

static void *srv_main(void *arg)
{
    struct srv *s = arg;

    for (;;) {
        struct pollfd pfd[MAX_CONNS + 2];
        int idx[MAX_CONNS + 2];
        int n = 0;

        pfd[n].fd = s->stop_pipe[0];
        pfd[n++].events = POLLIN;
        pfd[n].fd = s->lfd;
        pfd[n++].events = POLLIN;
        for (int i = 0; i < MAX_CONNS; i++) {
            if (s->conns[i].fd < 0)
                continue;
            idx[n] = i;
            pfd[n].fd = s->conns[i].fd;
            pfd[n++].events = POLLIN;
        }
        if (poll(pfd, (nfds_t)n, 1000) < 0)
            continue;
        if (pfd[0].revents)
            break;
        if (pfd[1].revents & POLLIN) {
            int fd = accept(s->lfd, NULL, NULL);
            int placed = 0;
            for (int i = 0; fd >= 0 && i < MAX_CONNS; i++) {
                if (s->conns[i].fd < 0) {
                    s->conns[i].fd = fd;
                    s->conns[i].len = 0;
                    s->conns[i].hung = 0;
                    placed = 1;
                    break;
                }
            }
            if (fd >= 0 && !placed)
                close(fd);
        }
        for (int j = 2; j < n; j++) {
            struct conn *c = &s->conns[idx[j]];
            ssize_t r;

            if (!(pfd[j].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            r = read(c->fd, c->buf + c->len, CONN_BUF - 1 - c->len);
            if (r <= 0) {
                close(c->fd);
                c->fd = -1;
                continue;
            }
            c->len += (size_t)r;
            serve_conn(s, c);
        }
    }
    for (int i = 0; i < MAX_CONNS; i++)
        if (s->conns[i].fd >= 0)
            close(s->conns[i].fd);
    return NULL;
}

static struct srv *srv_start(const struct canned *script, int n)
{
    struct srv *s = calloc(1, sizeof(*s));
    struct sockaddr_in addr;
    socklen_t alen = sizeof(addr);
    int one = 1;

    assert_non_null(s);
    assert_true(n <= MAX_SCRIPT);
    memcpy(s->script, script, sizeof(*script) * (size_t)n);
    s->n_script = n;
    for (int i = 0; i < MAX_CONNS; i++)
        s->conns[i].fd = -1;
    pthread_mutex_init(&s->mu, NULL);
    assert_int_equal(pipe(s->stop_pipe), 0);
    s->lfd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(s->lfd >= 0);
    setsockopt(s->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    memset(&addr, 0, sizeof(addr));
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    assert_int_equal(bind(s->lfd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    assert_int_equal(listen(s->lfd, 64), 0);
    assert_int_equal(getsockname(s->lfd, (struct sockaddr *)&addr, &alen), 0);
    s->port = ntohs(addr.sin_port);
    assert_int_equal(pthread_create(&s->th, NULL, srv_main, s), 0);
    return s;
}

static void srv_stop(struct srv *s)
{
    if (s == NULL)
        return;
    write_all(s->stop_pipe[1], "x", 1);
    pthread_join(s->th, NULL);
    close(s->lfd);
    close(s->stop_pipe[0]);
    close(s->stop_pipe[1]);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

static int srv_count(struct srv *s)
{
    int n;

    pthread_mutex_lock(&s->mu);
    n = s->n_reqs;
    pthread_mutex_unlock(&s->mu);
    return n;
}

/* A header value of recorded request i ("" when absent). */
static const char *req_header(struct srv *s, int i, const char *name, char *out, size_t size)
{
    const char *h = s->reqs[i].headers;
    size_t n = strlen(name);

    out[0] = '\0';
    for (const char *line = strstr(h, "\r\n"); line != NULL; line = strstr(line + 2, "\r\n")) {
        const char *l = line + 2;
        if (strncasecmp(l, name, n) == 0 && l[n] == ':') {
            const char *v = l + n + 1;
            const char *e = strstr(v, "\r\n");
            while (*v == ' ')
                v++;
            snprintf(out, size, "%.*s", (int)(e != NULL ? e - v : (long)strlen(v)), v);
            return out;
        }
    }
    return out;
}

/* ---- client fixtures ---------------------------------------------------- */

static struct gh_log_sink sink;
static struct gh_logger lg;
static FILE *logf_;

static int group_setup(void **state)
{
    (void)state;
    if (gh_log_sink_init(&sink, "test_rest", GH_LOG_DEBUG, NULL, 0, 0) != GH_OK)
        return -1;
    logf_ = tmpfile();
    if (logf_ == NULL)
        return -1;
    sink.fd = fileno(logf_);
    gh_logger_init(&lg, &sink, "rest");
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    gh_log_sink_cleanup(&sink);
    if (logf_ != NULL)
        fclose(logf_);
    return 0;
}

/* Everything logged so far (caller frees). */
static char *log_text(void)
{
    long n;
    char *buf;

    fflush(logf_);
    n = lseek(fileno(logf_), 0, SEEK_END);
    buf = calloc(1, (size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(pread(fileno(logf_), buf, (size_t)n, 0), n);
    return buf;
}

static struct gh_rest *client(struct srv *s, int max_retries, int max_wait_ms, int timeout_ms,
                              struct gh_redis *redis)
{
    char base[128];
    struct gh_rest_opts o;
    struct gh_rest *r;

    snprintf(base, sizeof(base), "http://127.0.0.1:%d/api/v10/", s->port);
    memset(&o, 0, sizeof(o));
    o.api_base = base; /* copied by gh_rest_new; the trailing slash is dropped */
    o.token = TOKEN;
    o.user_agent = UA;
    o.redis = redis;
    o.log = &lg;
    o.timeout_ms = timeout_ms;
    o.max_retries = max_retries;
    o.max_wait_ms = max_wait_ms;
    r = gh_rest_new(&o);
    assert_non_null(r);
    return r;
}

static int do_req(struct gh_rest *r, const char *method, const char *path, const char *body,
                  struct gh_rest_resp *resp)
{
    struct gh_rest_req q;

    memset(&q, 0, sizeof(q));
    q.method = method;
    q.path = path;
    q.body = body;
    q.body_len = body != NULL ? strlen(body) : 0;
    return gh_rest_do(r, &q, resp);
}

/* ---- tests -------------------------------------------------------------- */

static void test_route_keys(void **state)
{
    (void)state;
    char k[256];

    assert_int_equal(gh_rest_route_key("PATCH", "/channels/123/messages/456", k, sizeof(k)), GH_OK);
    assert_string_equal(k, "PATCH /channels/123/messages/{id}");
    assert_int_equal(gh_rest_route_key("PUT", "/guilds/9/members/8/roles/7", k, sizeof(k)), GH_OK);
    assert_string_equal(k, "PUT /guilds/9/members/{id}/roles/{id}");
    assert_int_equal(gh_rest_route_key("GET", "/channels/1/messages?limit=50", k, sizeof(k)), GH_OK);
    assert_string_equal(k, "GET /channels/1/messages");
    assert_int_equal(
        gh_rest_route_key("PUT", "/channels/1/messages/2/reactions/%F0%9F%91%8D/@me", k, sizeof(k)), GH_OK);
    assert_string_equal(k, "PUT /channels/1/messages/{id}/reactions/{emoji}/@me");
    assert_int_equal(gh_rest_route_key("PUT", "/applications/42/guilds/7/commands", k, sizeof(k)), GH_OK);
    assert_string_equal(k, "PUT /applications/{id}/guilds/{id}/commands");
    assert_int_equal(gh_rest_route_key("GET", "/users/@me", k, sizeof(k)), GH_OK);
    assert_string_equal(k, "GET /users/@me");
    /* tokens never appear in a route key */
    assert_int_equal(gh_rest_route_key("PATCH", "/webhooks/42/SECRETTOKEN/messages/@original", k, sizeof(k)),
                     GH_OK);
    assert_null(strstr(k, "SECRETTOKEN"));
    assert_int_equal(strncmp(k, "PATCH /webhooks/42/{t:", 22), 0);
    assert_non_null(strstr(k, "}/messages/@original"));
    /* a different token is a different major (its own bucket) */
    {
        char k2[256];
        assert_int_equal(
            gh_rest_route_key("PATCH", "/webhooks/42/OTHERTOKEN/messages/@original", k2, sizeof(k2)), GH_OK);
        assert_string_not_equal(k, k2);
    }
    assert_int_equal(gh_rest_route_key("POST", "/interactions/77/SECRET/callback", k, sizeof(k)), GH_OK);
    assert_string_equal(k, "POST /interactions/77/{token}/callback");
    assert_int_equal(gh_rest_route_key("GET", "no-slash", k, sizeof(k)), GH_EINVAL);
    assert_int_equal(gh_rest_route_key("GET", "/channels/1", k, 8), GH_ETOOBIG);
}

static void test_headers_and_2xx(void **state)
{
    (void)state;
    const struct canned script[] = {
        {200, NULL, "{\"id\":\"5\"}", 0, 0},
        {204, NULL, NULL, 0, 0},
        {200, NULL, "{}", 0, 0},
        {204, NULL, NULL, 0, 0},
        {200, NULL, "{}", 0, 0},
    };
    struct srv *s = srv_start(script, 5);
    struct gh_rest *r = client(s, 0, 0, 0, NULL);
    struct gh_rest_resp resp;
    struct gh_rest_req q;
    char h[4096];
    char reason[1300];

    memset(&q, 0, sizeof(q));
    q.method = "POST";
    q.path = "/channels/1/messages";
    q.body = "{\"content\":\"hi\"}";
    q.body_len = strlen(q.body);
    q.audit_reason = "spam & abuse: a/b caf\xc3\xa9\r\nX-Injected: 1";
    assert_int_equal(gh_rest_do(r, &q, &resp), GH_OK);
    assert_int_equal(resp.status, 200);
    assert_string_equal(resp.body, "{\"id\":\"5\"}");
    assert_string_equal(resp.error, "");
    gh_rest_resp_cleanup(&resp);
    assert_null(resp.body);

    assert_int_equal(srv_count(s), 1);
    assert_string_equal(s->reqs[0].method, "POST");
    assert_string_equal(s->reqs[0].path, "/api/v10/channels/1/messages");
    assert_string_equal(s->reqs[0].body, "{\"content\":\"hi\"}");
    assert_string_equal(req_header(s, 0, "Authorization", h, sizeof(h)), "Bot " TOKEN);
    assert_string_equal(req_header(s, 0, "User-Agent", h, sizeof(h)), UA);
    assert_string_equal(req_header(s, 0, "Content-Type", h, sizeof(h)), "application/json");
    assert_string_equal(req_header(s, 0, "X-Audit-Log-Reason", h, sizeof(h)),
                        "spam%20%26%20abuse%3A%20a%2Fb%20caf%C3%A9%0D%0AX-Injected%3A%201");
    assert_string_equal(req_header(s, 0, "X-Injected", h, sizeof(h)), "");

    /* interaction webhook: no Authorization; PUT without body: no content type, length 0 */
    memset(&q, 0, sizeof(q));
    q.method = "PUT";
    q.path = "/guilds/1/members/2/roles/3";
    memset(reason, 'r', 600);
    reason[600] = '\0';
    q.audit_reason = reason;
    assert_int_equal(gh_rest_do(r, &q, &resp), GH_OK);
    assert_int_equal(resp.status, 204);
    assert_non_null(resp.body);
    assert_string_equal(resp.body, "");
    gh_rest_resp_cleanup(&resp);
    assert_string_equal(s->reqs[1].method, "PUT");
    assert_string_equal(req_header(s, 1, "Content-Type", h, sizeof(h)), "");
    assert_string_equal(req_header(s, 1, "Content-Length", h, sizeof(h)), "0");
    assert_int_equal(strlen(req_header(s, 1, "X-Audit-Log-Reason", h, sizeof(h))), 512); /* capped */

    memset(&q, 0, sizeof(q));
    q.method = "PATCH";
    q.path = "/webhooks/42/SECRETTOKEN/messages/@original";
    q.body = "{\"content\":\"done\"}";
    q.body_len = strlen(q.body);
    q.no_auth = 1;
    assert_int_equal(gh_rest_do(r, &q, &resp), GH_OK);
    gh_rest_resp_cleanup(&resp);
    assert_string_equal(s->reqs[2].path, "/api/v10/webhooks/42/SECRETTOKEN/messages/@original");
    assert_string_equal(req_header(s, 2, "Authorization", h, sizeof(h)), "");

    /* the cap counts characters, never cutting one: 600 x U+00E9 -> 512 of them, encoded */
    for (int i = 0; i < 600; i++)
        memcpy(reason + 2 * i, "\xc3\xa9", 2);
    reason[1200] = '\0';
    memset(&q, 0, sizeof(q));
    q.method = "DELETE";
    q.path = "/guilds/1/bans/2";
    q.audit_reason = reason;
    assert_int_equal(gh_rest_do(r, &q, &resp), GH_OK);
    gh_rest_resp_cleanup(&resp);
    req_header(s, 3, "X-Audit-Log-Reason", h, sizeof(h));
    assert_int_equal(strlen(h), 512 * 6);
    assert_string_equal(h + strlen(h) - 6, "%C3%A9");
    /* bad requests never reach the server */
    assert_int_equal(do_req(r, "TRACE", "/x", NULL, &resp), GH_EINVAL);
    assert_int_equal(do_req(r, "GET", "/a b", NULL, &resp), GH_EINVAL);
    assert_int_equal(do_req(r, "GET", "/a\r\nX: y", NULL, &resp), GH_EINVAL);
    assert_true(strlen(resp.error) > 0);
    memset(&q, 0, sizeof(q));
    q.method = "GET";
    q.path = "/users/@me";
    q.authorization = "Bearer x\r\nX-Injected: 1";
    assert_int_equal(gh_rest_do(r, &q, &resp), GH_EINVAL);
    gh_rest_resp_cleanup(&resp);
    assert_int_equal(srv_count(s), 4);
    /* a user's credential replaces the bot token */
    q.authorization = "Bearer user-token";
    assert_int_equal(gh_rest_do(r, &q, &resp), GH_OK);
    gh_rest_resp_cleanup(&resp);
    assert_string_equal(req_header(s, 4, "Authorization", h, sizeof(h)), "Bearer user-token");
    gh_rest_free(r);
    srv_stop(s);
}

static void test_404_parses_discord_error(void **state)
{
    (void)state;
    const struct canned script[] = {
        {404, NULL, "{\"message\":\"Unknown Message\",\"code\":10008}", 0, 0},
        {400, NULL,
         "{\"code\":50035,\"errors\":{\"content\":{\"_errors\":[{\"code\":\"BASE_TYPE_MAX_LENGTH\","
         "\"message\":\"Must be 2000 or fewer in length.\"}]}},\"message\":\"Invalid Form Body\"}",
         0, 0},
        {403, NULL, "{\"message\":\"Missing Permissions\",\"code\":50013}", 0, 0},
    };
    struct srv *s = srv_start(script, 3);
    struct gh_rest *r = client(s, 0, 0, 0, NULL);
    struct gh_rest_resp resp;
    char *log;

    assert_int_equal(do_req(r, "DELETE", "/channels/1/messages/99", NULL, &resp), GH_ENOTFOUND);
    assert_int_equal(resp.status, 404);
    assert_int_equal(resp.discord_code, 10008);
    assert_non_null(strstr(resp.error, "Unknown Message"));
    gh_rest_resp_cleanup(&resp);

    assert_int_equal(do_req(r, "POST", "/channels/1/messages", "{\"content\":\"x\"}", &resp), GH_EDISCORD);
    assert_int_equal(resp.discord_code, 50035);
    assert_non_null(strstr(resp.error, "content: Must be 2000 or fewer in length."));
    gh_rest_resp_cleanup(&resp);

    assert_int_equal(do_req(r, "PUT", "/guilds/1/bans/2", "{}", &resp), GH_EFORBIDDEN);
    assert_int_equal(resp.discord_code, 50013);
    gh_rest_resp_cleanup(&resp);
    assert_int_equal(srv_count(s), 3); /* 4xx are not retried */

    log = log_text();
    assert_non_null(strstr(log, "\"route\":\"DELETE /channels/1/messages/{id}\""));
    assert_non_null(strstr(log, "\"status\":404"));
    assert_non_null(strstr(log, "\"discord_code\":10008"));
    assert_null(strstr(log, TOKEN));
    free(log);
    gh_rest_free(r);
    srv_stop(s);
}

static void test_429_short_wait_then_retry(void **state)
{
    (void)state;
    const struct canned script[] = {
        {429, "Retry-After: 1\r\nX-RateLimit-Scope: user\r\n",
         "{\"message\":\"You are being rate limited.\",\"retry_after\":0.05,\"global\":false}", 0, 0},
        {200, NULL, "{\"ok\":true}", 0, 0},
    };
    struct srv *s = srv_start(script, 2);
    struct gh_rest *r = client(s, 3, 2000, 0, NULL);
    struct gh_rest_resp resp;
    int64_t t0 = __real_gh_mono_ms();

    assert_int_equal(do_req(r, "POST", "/channels/5/messages", "{}", &resp), GH_OK);
    /* the body's retry_after (0.05 s) wins over the header's whole second */
    assert_true(__real_gh_mono_ms() - t0 >= 45);
    assert_true(__real_gh_mono_ms() - t0 < 900);
    assert_int_equal(resp.status, 200);
    assert_int_equal(srv_count(s), 2);
    gh_rest_resp_cleanup(&resp);
    gh_rest_free(r);
    srv_stop(s);
}

static void test_429_long_wait_refused(void **state)
{
    (void)state;
    const struct canned script[] = {
        {429, "Retry-After: 30\r\n",
         "{\"message\":\"You are being rate limited.\",\"retry_after\":30.5,\"global\":false}", 0, 0},
        {200, NULL, "{}", 0, 0},
    };
    struct srv *s = srv_start(script, 2);
    struct gh_rest *r = client(s, 3, 1000, 0, NULL);
    struct gh_rest_resp resp;
    int64_t t0 = __real_gh_mono_ms();

    assert_int_equal(do_req(r, "POST", "/channels/6/messages", "{}", &resp), GH_ERATELIMIT);
    assert_true(__real_gh_mono_ms() - t0 < 900); /* did not wait */
    assert_int_equal(resp.status, 429);
    assert_true(resp.retry_after > 30.0 && resp.retry_after < 31.0);
    gh_rest_resp_cleanup(&resp);
    /* the wait is remembered: the next call on the route is refused locally */
    assert_int_equal(do_req(r, "POST", "/channels/6/messages", "{}", &resp), GH_ERATELIMIT);
    assert_int_equal(resp.status, 0);
    assert_non_null(strstr(resp.error, "rate limited"));
    gh_rest_resp_cleanup(&resp);
    assert_int_equal(srv_count(s), 1);
    /* another channel (another major parameter) is not affected */
    assert_int_equal(do_req(r, "POST", "/channels/7/messages", "{}", &resp), GH_OK);
    gh_rest_resp_cleanup(&resp);
    gh_rest_free(r);
    srv_stop(s);
}

static void test_global_429(void **state)
{
    (void)state;
    const struct canned script[] = {
        {429, "X-RateLimit-Global: true\r\nX-RateLimit-Scope: global\r\n",
         "{\"message\":\"You are being rate limited.\",\"retry_after\":0.08,\"global\":true}", 0, 0},
        {200, NULL, "{}", 0, 0},
        {200, NULL, "{}", 0, 0},
    };
    struct srv *s = srv_start(script, 3);
    struct gh_rest *r = client(s, 0, 1000, 0, NULL); /* no retries: the 429 is returned */
    struct gh_rest_resp resp;
    struct gh_rest_req q;
    int64_t t0;

    assert_int_equal(do_req(r, "GET", "/guilds/1/roles", NULL, &resp), GH_ERATELIMIT);
    gh_rest_resp_cleanup(&resp);
    /* a global wait holds back every route ... */
    t0 = __real_gh_mono_ms();
    assert_int_equal(do_req(r, "GET", "/users/@me", NULL, &resp), GH_OK);
    assert_true(__real_gh_mono_ms() - t0 >= 50);
    gh_rest_resp_cleanup(&resp);
    /* ... but interaction webhooks are exempt */
    memset(&q, 0, sizeof(q));
    q.method = "POST";
    q.path = "/interactions/5/tok/callback";
    q.body = "{\"type\":1}";
    q.body_len = strlen(q.body);
    q.no_auth = 1;
    assert_int_equal(gh_rest_do(r, &q, &resp), GH_OK);
    gh_rest_resp_cleanup(&resp);
    assert_int_equal(srv_count(s), 3);
    gh_rest_free(r);
    srv_stop(s);
}

static void test_5xx_retried_then_ok(void **state)
{
    (void)state;
    const struct canned script[] = {
        {502, NULL, "<html>bad gateway</html>", 0, 0},
        {503, NULL, "", 0, 0},
        {200, NULL, "{\"id\":\"1\"}", 0, 0},
    };
    struct srv *s = srv_start(script, 3);
    struct gh_rest *r = client(s, -1, 0, 0, NULL); /* default: 3 retries */
    struct gh_rest_resp resp;
    int64_t t0 = __real_gh_mono_ms();

    assert_int_equal(do_req(r, "GET", "/channels/1", NULL, &resp), GH_OK);
    assert_int_equal(srv_count(s), 3);
    /* backoff: 125..250 ms then 250..500 ms */
    assert_true(__real_gh_mono_ms() - t0 >= 375);
    assert_string_equal(resp.body, "{\"id\":\"1\"}");
    gh_rest_resp_cleanup(&resp);
    gh_rest_free(r);
    srv_stop(s);
}

static void test_5xx_exhausted(void **state)
{
    (void)state;
    const struct canned script[] = {
        {500, NULL, "{\"message\":\"oops\",\"code\":0}", 0, 3},
        {200, NULL, "{}", 0, 0},
    };
    struct srv *s = srv_start(script, 2);
    struct gh_rest *r = client(s, 2, 0, 0, NULL);
    struct gh_rest_resp resp;

    assert_int_equal(do_req(r, "GET", "/channels/1", NULL, &resp), GH_EHTTP);
    assert_int_equal(resp.status, 500);
    assert_int_equal(srv_count(s), 3); /* 1 + 2 retries */
    assert_true(strlen(resp.error) > 0);
    gh_rest_resp_cleanup(&resp);
    gh_rest_free(r);
    srv_stop(s);
}

static void test_401_stops_everything(void **state)
{
    (void)state;
    const struct canned script[] = {
        {401, NULL, "{\"message\":\"401: Unauthorized\",\"code\":0}", 0, 0},
        {200, NULL, "{}", 0, 0},
        {200, NULL, "{}", 0, 0},
    };
    struct srv *s = srv_start(script, 3);
    struct gh_rest *r = client(s, 3, 0, 0, NULL);
    struct gh_rest_resp resp;
    struct gh_rest_req q;
    char *log;

    assert_int_equal(do_req(r, "GET", "/users/@me", NULL, &resp), GH_EUNAUTHORIZED);
    assert_int_equal(resp.status, 401);
    gh_rest_resp_cleanup(&resp);
    assert_int_equal(do_req(r, "GET", "/guilds/1", NULL, &resp), GH_EUNAUTHORIZED);
    assert_int_equal(resp.status, 0);
    assert_non_null(strstr(resp.error, "token"));
    gh_rest_resp_cleanup(&resp);
    assert_int_equal(srv_count(s), 1);
    /* interaction webhooks do not use the bot token and still go */
    memset(&q, 0, sizeof(q));
    q.method = "PATCH";
    q.path = "/webhooks/1/INTERACTIONTOKEN/messages/@original";
    q.body = "{}";
    q.body_len = 2;
    q.no_auth = 1;
    assert_int_equal(gh_rest_do(r, &q, &resp), GH_OK);
    gh_rest_resp_cleanup(&resp);
    assert_int_equal(srv_count(s), 2);

    log = log_text();
    assert_non_null(strstr(log, "\"level\":\"crit\""));
    assert_non_null(strstr(log, "Discord rejected the bot token"));
    assert_null(strstr(log, TOKEN));
    assert_null(strstr(log, "INTERACTIONTOKEN"));
    free(log);
    gh_rest_free(r);
    srv_stop(s);
}

static void test_bucket_learned_from_headers(void **state)
{
    (void)state;
    const char *hdrs = "X-RateLimit-Bucket: abcd1234\r\nX-RateLimit-Limit: 5\r\nX-RateLimit-Remaining: 0\r\n"
                       "X-RateLimit-Reset-After: 0.2\r\n";
    const struct canned script[] = {
        {200, hdrs, "{}", 0, 0},
        {200, NULL, "{}", 0, 0},
        {200, hdrs, "{}", 0, 0},
        {200, NULL, "{}", 0, 0},
    };
    struct srv *s = srv_start(script, 4);
    struct gh_rest *patient = client(s, 0, -1, 0, NULL); /* default: waits up to 5 s */
    struct gh_rest *hasty = client(s, 0, 0, 0, NULL);
    struct gh_rest_resp resp;
    int64_t t0;

    assert_int_equal(do_req(patient, "PATCH", "/channels/3/messages/1", "{}", &resp), GH_OK);
    gh_rest_resp_cleanup(&resp);
    /* same bucket (another message id): waits for the reset, then goes */
    t0 = __real_gh_mono_ms();
    assert_int_equal(do_req(patient, "PATCH", "/channels/3/messages/2", "{}", &resp), GH_OK);
    assert_true(__real_gh_mono_ms() - t0 >= 150);
    gh_rest_resp_cleanup(&resp);
    assert_int_equal(srv_count(s), 2);

    /* a client that never waits is refused without reaching the server */
    assert_int_equal(do_req(hasty, "PATCH", "/channels/3/messages/1", "{}", &resp), GH_OK);
    gh_rest_resp_cleanup(&resp);
    t0 = __real_gh_mono_ms();
    assert_int_equal(do_req(hasty, "PATCH", "/channels/3/messages/5", "{}", &resp), GH_ERATELIMIT);
    assert_true(__real_gh_mono_ms() - t0 < 100);
    assert_true(resp.retry_after > 0.0 && resp.retry_after <= 0.21);
    assert_non_null(strstr(resp.error, "bucket"));
    gh_rest_resp_cleanup(&resp);
    assert_int_equal(srv_count(s), 3);
    /* another major parameter has its own state */
    assert_int_equal(do_req(hasty, "PATCH", "/channels/4/messages/5", "{}", &resp), GH_OK);
    gh_rest_resp_cleanup(&resp);
    assert_int_equal(srv_count(s), 4);
    gh_rest_free(hasty);
    gh_rest_free(patient);
    srv_stop(s);
}

static void test_breaker(void **state)
{
    (void)state;
    const struct canned script[] = {
        {503, NULL, "", 0, 5},
        {200, NULL, "{}", 0, 0},
        {200, NULL, "{}", 0, 0},
    };
    struct srv *s = srv_start(script, 3);
    struct gh_rest *r = client(s, 0, 0, 0, NULL);
    struct gh_rest_resp resp;

    for (int i = 0; i < 5; i++) {
        assert_int_equal(do_req(r, "GET", "/channels/1", NULL, &resp), GH_EHTTP);
        gh_rest_resp_cleanup(&resp);
    }
    assert_int_equal(do_req(r, "GET", "/channels/1", NULL, &resp), GH_EUNAVAILABLE);
    assert_non_null(strstr(resp.error, "circuit breaker"));
    gh_rest_resp_cleanup(&resp);
    assert_int_equal(srv_count(s), 5);
    /* 10 s later: one trial goes through and closes the breaker */
    mono_offset += 10001;
    assert_int_equal(do_req(r, "GET", "/channels/1", NULL, &resp), GH_OK);
    gh_rest_resp_cleanup(&resp);
    assert_int_equal(do_req(r, "GET", "/channels/1", NULL, &resp), GH_OK);
    gh_rest_resp_cleanup(&resp);
    assert_int_equal(srv_count(s), 7);
    gh_rest_free(r);
    srv_stop(s);
}

static void test_breaker_reopens_on_failed_trial(void **state)
{
    (void)state;
    const struct canned script[] = {
        {500, NULL, "", 0, 6},
        {200, NULL, "{}", 0, 0},
    };
    struct srv *s = srv_start(script, 2);
    struct gh_rest *r = client(s, 0, 0, 0, NULL);
    struct gh_rest_resp resp;

    for (int i = 0; i < 5; i++) {
        assert_int_equal(do_req(r, "GET", "/channels/1", NULL, &resp), GH_EHTTP);
        gh_rest_resp_cleanup(&resp);
    }
    mono_offset += 10001;
    assert_int_equal(do_req(r, "GET", "/channels/1", NULL, &resp), GH_EHTTP); /* the trial fails */
    gh_rest_resp_cleanup(&resp);
    assert_int_equal(do_req(r, "GET", "/channels/1", NULL, &resp), GH_EUNAVAILABLE);
    gh_rest_resp_cleanup(&resp);
    assert_int_equal(srv_count(s), 6);
    gh_rest_free(r);
    srv_stop(s);
}

struct cb_result {
    int calls;
    int err;
    long status;
    char body[64];
    char path_seen[8];
};

static void on_done(int err, const struct gh_rest_resp *resp, void *arg)
{
    struct cb_result *res = arg;

    res->calls++;
    res->err = err;
    res->status = resp->status;
    snprintf(res->body, sizeof(res->body), "%s", resp->body != NULL ? resp->body : "(null)");
}

static void test_submit_poll(void **state)
{
    (void)state;
    const struct canned script[] = {
        {200, NULL, "{\"n\":1}", 0, 0},
        {404, NULL, "{\"message\":\"Unknown Member\",\"code\":10007}", 0, 0},
    };
    struct srv *s = srv_start(script, 2);
    struct gh_rest *r = client(s, 0, 0, 0, NULL);
    struct cb_result a = {0}, b = {0};
    struct gh_rest_req q;
    char body[32];
    int64_t deadline = __real_gh_mono_ms() + 5000;
    int left;

    memset(&q, 0, sizeof(q));
    q.method = "DELETE";
    q.path = "/channels/1/messages/2";
    q.audit_reason = "AutoMod";
    assert_int_equal(gh_rest_submit(r, &q, on_done, &a), GH_OK);
    /* the request is copied: the caller's buffers may go */
    snprintf(body, sizeof(body), "{\"x\":1}");
    q.method = "PATCH";
    q.path = "/guilds/1/members/2";
    q.body = body;
    q.body_len = strlen(body);
    assert_int_equal(gh_rest_submit(r, &q, on_done, &b), GH_OK);
    memset(body, 0, sizeof(body));
    assert_int_equal(a.calls + b.calls, 0); /* nothing runs before poll */
    do {
        left = gh_rest_poll(r, 100);
    } while (left > 0 && __real_gh_mono_ms() < deadline);
    assert_int_equal(left, 0);
    assert_int_equal(a.calls, 1);
    assert_int_equal(b.calls, 1);
    assert_int_equal(srv_count(s), 2);
    /* the server answers in arrival order; match by method */
    {
        struct cb_result *del = strcmp(s->reqs[0].method, "DELETE") == 0 ? &a : &b;
        struct cb_result *other = del == &a ? &b : &a;
        assert_int_equal(del->err, GH_OK);
        assert_int_equal(del->status, 200);
        assert_string_equal(del->body, "{\"n\":1}");
        assert_int_equal(other->err, GH_ENOTFOUND);
        assert_int_equal(other->status, 404);
    }
    for (int i = 0; i < 2; i++)
        if (strcmp(s->reqs[i].method, "PATCH") == 0)
            assert_string_equal(s->reqs[i].body, "{\"x\":1}");
    assert_int_equal(gh_rest_poll(r, 0), 0);
    gh_rest_free(r);
    srv_stop(s);
}

static void test_submit_refusal_goes_through_callback(void **state)
{
    (void)state;
    const struct canned script[] = {
        {401, NULL, "{\"message\":\"401: Unauthorized\",\"code\":0}", 0, 0},
    };
    struct srv *s = srv_start(script, 1);
    struct gh_rest *r = client(s, 0, 0, 0, NULL);
    struct gh_rest_resp resp;
    struct cb_result a = {0};
    struct gh_rest_req q;

    assert_int_equal(do_req(r, "GET", "/users/@me", NULL, &resp), GH_EUNAUTHORIZED);
    gh_rest_resp_cleanup(&resp);
    memset(&q, 0, sizeof(q));
    q.method = "GET";
    q.path = "/users/@me";
    assert_int_equal(gh_rest_submit(r, &q, on_done, &a), GH_OK);
    assert_int_equal(gh_rest_poll(r, 1000), 0);
    assert_int_equal(a.calls, 1);
    assert_int_equal(a.err, GH_EUNAUTHORIZED);
    assert_int_equal(srv_count(s), 1);
    q.method = "BREW";
    assert_int_equal(gh_rest_submit(r, &q, on_done, &a), GH_EINVAL);
    assert_int_equal(gh_rest_poll(r, 0), 0);
    assert_int_equal(a.calls, 1);
    gh_rest_free(r);
    srv_stop(s);
}

static void test_timeout(void **state)
{
    (void)state;
    const struct canned script[] = {
        {0, NULL, NULL, 1, 0},
    };
    struct srv *s = srv_start(script, 1);
    struct gh_rest *r = client(s, 0, 0, 300, NULL);
    struct gh_rest_resp resp;
    int64_t t0 = __real_gh_mono_ms();
    int64_t took;

    assert_int_equal(do_req(r, "GET", "/gateway/bot", NULL, &resp), GH_ETIMEOUT);
    took = __real_gh_mono_ms() - t0;
    assert_true(took >= 250);
    assert_true(took < 2000);
    assert_int_equal(resp.status, 0);
    assert_non_null(strstr(resp.error, "timed out"));
    gh_rest_resp_cleanup(&resp);
    assert_int_equal(srv_count(s), 1);
    gh_rest_free(r);
    srv_stop(s);
}

static void test_transport_error(void **state)
{
    (void)state;
    struct gh_rest_opts o;
    struct gh_rest *r;
    struct gh_rest_resp resp;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr;
    socklen_t alen = sizeof(addr);
    char base[96];

    /* a port nobody listens on: bind, read the port, close */
    memset(&addr, 0, sizeof(addr));
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&addr, &alen), 0);
    close(fd);
    snprintf(base, sizeof(base), "http://127.0.0.1:%d/api/v10", ntohs(addr.sin_port));
    memset(&o, 0, sizeof(o));
    o.api_base = base;
    o.token = TOKEN;
    o.user_agent = UA;
    o.max_retries = 1;
    r = gh_rest_new(&o);
    assert_non_null(r);
    assert_int_equal(do_req(r, "GET", "/users/@me", NULL, &resp), GH_EHTTP);
    assert_int_equal(resp.status, 0);
    assert_non_null(strstr(resp.error, "could not reach Discord"));
    gh_rest_resp_cleanup(&resp);
    gh_rest_free(r);
}

static void test_invalid_request_budget(void **state)
{
    (void)state;
    const struct canned script[] = {
        {403, NULL, "{\"message\":\"Missing Access\",\"code\":50001}", 0, 9000},
        {200, NULL, "{}", 0, 0},
    };
    struct srv *s = srv_start(script, 2);
    struct gh_rest *r;
    struct gh_rest_resp resp;
    struct gh_rest_req q;
    int64_t window = gh_now_ms() / 600000;

    /* no logger for the 9000 warnings */
    {
        char base[128];
        struct gh_rest_opts o;
        snprintf(base, sizeof(base), "http://127.0.0.1:%d/api/v10", s->port);
        memset(&o, 0, sizeof(o));
        o.api_base = base;
        o.token = TOKEN;
        o.user_agent = UA;
        o.max_retries = 0;
        r = gh_rest_new(&o);
        assert_non_null(r);
    }
    /* an interaction webhook route: exempt from the global 50/s, so this runs at full speed */
    memset(&q, 0, sizeof(q));
    q.method = "POST";
    q.path = "/webhooks/8/sometoken";
    q.body = "{}";
    q.body_len = 2;
    q.no_auth = 1;
    for (int i = 0; i < 9000; i++) {
        int rc = gh_rest_do(r, &q, &resp);
        gh_rest_resp_cleanup(&resp);
        if (rc != GH_EFORBIDDEN)
            fail_msg("request %d: got %d", i, rc);
    }
    if (gh_now_ms() / 600000 != window) {
        /* the 10-minute window turned over mid-test: the count restarted */
        gh_rest_free(r);
        srv_stop(s);
        skip();
    }
    assert_int_equal(do_req(r, "GET", "/channels/8", NULL, &resp), GH_ERATELIMIT);
    assert_non_null(strstr(resp.error, "invalid request budget"));
    gh_rest_resp_cleanup(&resp);
    assert_int_equal(gh_rest_do(r, &q, &resp), GH_ERATELIMIT);
    gh_rest_resp_cleanup(&resp);
    assert_int_equal(srv_count(s), 9000);
    gh_rest_free(r);
    srv_stop(s);
}

static void test_bucket_remaining_counts_down(void **state)
{
    (void)state;
    const struct canned script[] = {
        {200, "X-RateLimit-Bucket: cd01\r\nX-RateLimit-Remaining: 1\r\nX-RateLimit-Reset-After: 5\r\n", "{}",
         0, 0},
        {200, NULL, "{}", 0, 0},
        {200, NULL, "{}", 0, 0},
    };
    struct srv *s = srv_start(script, 3);
    struct gh_rest *r = client(s, 0, 0, 0, NULL);
    struct gh_rest_resp resp;

    assert_int_equal(do_req(r, "DELETE", "/channels/9/messages/1", NULL, &resp), GH_OK);
    gh_rest_resp_cleanup(&resp);
    /* one slot left: taken by this call (its answer carries no headers) */
    assert_int_equal(do_req(r, "DELETE", "/channels/9/messages/2", NULL, &resp), GH_OK);
    gh_rest_resp_cleanup(&resp);
    assert_int_equal(do_req(r, "DELETE", "/channels/9/messages/3", NULL, &resp), GH_ERATELIMIT);
    gh_rest_resp_cleanup(&resp);
    assert_int_equal(srv_count(s), 2);
    gh_rest_free(r);
    srv_stop(s);
}

static void test_submit_waits_for_bucket(void **state)
{
    (void)state;
    const struct canned script[] = {
        {200, "X-RateLimit-Bucket: ab02\r\nX-RateLimit-Remaining: 0\r\nX-RateLimit-Reset-After: 0.2\r\n",
         "{}", 0, 0},
        {200, NULL, "{\"late\":true}", 0, 0},
    };
    struct srv *s = srv_start(script, 2);
    struct gh_rest *r = client(s, 0, 1000, 0, NULL);
    struct gh_rest_resp resp;
    struct cb_result a = {0};
    struct gh_rest_req q;
    int64_t t0, deadline;
    int left;

    assert_int_equal(do_req(r, "POST", "/channels/10/messages", "{}", &resp), GH_OK);
    gh_rest_resp_cleanup(&resp);
    memset(&q, 0, sizeof(q));
    q.method = "POST";
    q.path = "/channels/10/messages";
    q.body = "{}";
    q.body_len = 2;
    t0 = __real_gh_mono_ms();
    deadline = t0 + 5000;
    assert_int_equal(gh_rest_submit(r, &q, on_done, &a), GH_OK);
    /* the first poll does not block on the bucket: it returns with the transfer waiting */
    assert_int_equal(gh_rest_poll(r, 0), 1);
    assert_int_equal(a.calls, 0);
    assert_true(__real_gh_mono_ms() - t0 < 100);
    do {
        left = gh_rest_poll(r, 50);
    } while (left > 0 && __real_gh_mono_ms() < deadline);
    assert_int_equal(a.calls, 1);
    assert_int_equal(a.err, GH_OK);
    assert_string_equal(a.body, "{\"late\":true}");
    assert_true(__real_gh_mono_ms() - t0 >= 150);
    gh_rest_free(r);
    srv_stop(s);
}

static void test_redis_down_falls_back_to_local(void **state)
{
    (void)state;
    const struct canned script[] = {
        {200, "X-RateLimit-Bucket: ef03\r\nX-RateLimit-Remaining: 0\r\nX-RateLimit-Reset-After: 5\r\n", "{}",
         0, 0},
        {200, NULL, "{}", 0, 0},
    };
    struct srv *s = srv_start(script, 2);
    struct gh_redis *dead;
    struct gh_rest *r;
    struct gh_rest_resp resp;
    char url[64];
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr;
    socklen_t alen = sizeof(addr);

    /* a Redis URL on a port nobody listens on */
    memset(&addr, 0, sizeof(addr));
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&addr, &alen), 0);
    close(fd);
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d/0", ntohs(addr.sin_port));
    dead = gh_redis_new(url, 200, &lg);
    assert_non_null(dead);
    r = client(s, 0, 0, 0, dead);
    assert_int_equal(do_req(r, "POST", "/channels/11/messages", "{}", &resp), GH_OK);
    gh_rest_resp_cleanup(&resp);
    /* the bucket state was kept in the process */
    assert_int_equal(do_req(r, "POST", "/channels/11/messages", "{}", &resp), GH_ERATELIMIT);
    gh_rest_resp_cleanup(&resp);
    assert_int_equal(srv_count(s), 1);
    gh_rest_free(r);
    gh_redis_free(dead);
    srv_stop(s);
}

static void test_shared_state_through_redis(void **state)
{
    (void)state;
    const char *url = getenv("REDIS_URL");
    char hdrs[256];
    char bucket[48];
    char path[64];
    char key[600];
    char route[256];
    struct gh_redis *redis;
    struct gh_rest *a, *b;
    struct gh_rest_resp resp;
    struct srv *s;
    redisReply *rep;
    unsigned long long chan;

    if (url == NULL || url[0] == '\0') {
        print_message("REDIS_URL unset: shared rate-limit state not tested\n");
        skip();
    }
    redis = gh_redis_new(url, 500, &lg);
    assert_non_null(redis);
    if (gh_redis_ping(redis) != GH_OK) {
        gh_redis_free(redis);
        fail_msg("REDIS_URL=%s is set but Redis does not answer", url);
    }
    chan = 900000000000000000ULL + (unsigned long long)getpid() * 1000ULL +
           (unsigned long long)(gh_now_ms() % 1000);
    snprintf(bucket, sizeof(bucket), "test%llx", chan);
    snprintf(hdrs, sizeof(hdrs),
             "X-RateLimit-Bucket: %s\r\nX-RateLimit-Remaining: 0\r\nX-RateLimit-Reset-After: 3\r\n", bucket);
    {
        const struct canned script[] = {
            {200, hdrs, "{}", 0, 0},
            {200, NULL, "{}", 0, 0},
        };
        s = srv_start(script, 2);
    }
    a = client(s, 0, 0, 0, redis);
    b = client(s, 0, 0, 0, redis);
    snprintf(path, sizeof(path), "/channels/%llu/messages", chan);

    assert_int_equal(do_req(a, "POST", path, "{}", &resp), GH_OK);
    gh_rest_resp_cleanup(&resp);
    /* b learned nothing itself, yet is refused from the shared state */
    assert_int_equal(do_req(b, "POST", path, "{}", &resp), GH_ERATELIMIT);
    assert_non_null(strstr(resp.error, "bucket"));
    gh_rest_resp_cleanup(&resp);
    assert_int_equal(srv_count(s), 1);

    /* the keys are where the header says, with TTLs */
    assert_int_equal(gh_rest_route_key("POST", path, route, sizeof(route)), GH_OK);
    snprintf(key, sizeof(key), "bot:{global}:rest:route:%s", route);
    rep = gh_redis_cmd(redis, "GET %s", key);
    assert_non_null(rep);
    assert_int_equal(rep->type, REDIS_REPLY_STRING);
    assert_string_equal(rep->str, bucket);
    freeReplyObject(rep);
    rep = gh_redis_cmd(redis, "TTL %s", key);
    assert_true(rep != NULL && rep->integer > 0 && rep->integer <= 86400);
    freeReplyObject(rep);
    rep = gh_redis_cmd(redis, "DEL %s", key);
    freeReplyObject(rep);
    snprintf(key, sizeof(key), "bot:{global}:rest:bucket:%s:channels/%llu", bucket, chan);
    rep = gh_redis_cmd(redis, "HGET %s remaining", key);
    assert_true(rep != NULL && rep->type == REDIS_REPLY_STRING);
    assert_string_equal(rep->str, "0");
    freeReplyObject(rep);
    rep = gh_redis_cmd(redis, "PTTL %s", key);
    assert_true(rep != NULL && rep->integer > 0 && rep->integer <= 3000);
    freeReplyObject(rep);
    rep = gh_redis_cmd(redis, "DEL %s", key);
    freeReplyObject(rep);

    gh_rest_free(b);
    gh_rest_free(a);
    gh_redis_free(redis);
    srv_stop(s);
}

static void test_unauthorized_shared_through_redis(void **state)
{
    (void)state;
    const char *url = getenv("REDIS_URL");
    const struct canned script[] = {
        {401, NULL, "{\"message\":\"401: Unauthorized\",\"code\":0}", 0, 0},
        {200, NULL, "{}", 0, 0},
    };
    struct gh_redis *redis;
    struct gh_rest *a, *b, *other;
    struct gh_rest_resp resp;
    struct gh_rest_opts o;
    struct srv *s;
    redisReply *rep;
    char base[128];
    char key[64];

    if (url == NULL || url[0] == '\0') {
        print_message("REDIS_URL unset: the shared stop on 401 not tested\n");
        skip();
    }
    redis = gh_redis_new(url, 500, &lg);
    assert_non_null(redis);
    s = srv_start(script, 2);
    a = client(s, 0, 0, 0, redis);
    b = client(s, 0, 0, 0, redis);
    snprintf(base, sizeof(base), "http://127.0.0.1:%d/api/v10", s->port);
    memset(&o, 0, sizeof(o));
    o.api_base = base;
    o.token = "ANOTHER.token.value";
    o.user_agent = UA;
    o.redis = redis;
    o.max_retries = 0;
    other = gh_rest_new(&o);
    assert_non_null(other);

    assert_int_equal(do_req(a, "GET", "/users/@me", NULL, &resp), GH_EUNAUTHORIZED);
    gh_rest_resp_cleanup(&resp);
    /* another process with the same token stops without calling Discord */
    assert_int_equal(do_req(b, "GET", "/users/@me", NULL, &resp), GH_EUNAUTHORIZED);
    gh_rest_resp_cleanup(&resp);
    assert_int_equal(srv_count(s), 1);
    /* a different (fixed) token is not blocked */
    assert_int_equal(do_req(other, "GET", "/users/@me", NULL, &resp), GH_OK);
    gh_rest_resp_cleanup(&resp);
    assert_int_equal(srv_count(s), 2);

    snprintf(key, sizeof(key), "bot:{global}:rest:unauthorized");
    rep = gh_redis_cmd(redis, "PTTL %s", key);
    assert_true(rep != NULL && rep->integer > 0 && rep->integer <= 3600 * 1000);
    freeReplyObject(rep);
    rep = gh_redis_cmd(redis, "DEL %s", key);
    freeReplyObject(rep);
    /* the 401 counted against the invalid-request budget: take it back */
    snprintf(key, sizeof(key), "bot:{global}:rest:invalid:%lld", (long long)(gh_now_ms() / 600000));
    rep = gh_redis_cmd(redis, "DECR %s", key);
    if (rep != NULL && rep->type == REDIS_REPLY_INTEGER && rep->integer <= 0) {
        freeReplyObject(rep);
        rep = gh_redis_cmd(redis, "DEL %s", key);
    }
    freeReplyObject(rep);

    gh_rest_free(other);
    gh_rest_free(b);
    gh_rest_free(a);
    gh_redis_free(redis);
    srv_stop(s);
}

static void test_new_rejects_bad_opts(void **state)
{
    (void)state;
    struct gh_rest_opts o;

    assert_null(gh_rest_new(NULL));
    memset(&o, 0, sizeof(o));
    assert_null(gh_rest_new(&o));
    o.api_base = "http://127.0.0.1:1/api/v10";
    o.token = "bad\r\ntoken";
    assert_null(gh_rest_new(&o));
    gh_rest_free(NULL);
    gh_rest_resp_cleanup(NULL);
}

/* Requests that cannot be valid are refused before anything is sent, with
 * a message naming the problem. */
static void test_invalid_requests_refused(void **state)
{
    (void)state;
    const struct canned script[] = {{200, NULL, "{}", 0, 0}};
    struct srv *s = srv_start(script, 1);
    struct gh_rest *r = client(s, 0, 0, 2000, NULL);
    struct gh_rest_resp resp;
    struct gh_rest_req q;
    char longpath[400], key[16];
    static const struct {
        const char *method, *path, *body, *ctype;
        size_t body_len;
        const char *want;
    } bad[] = {
        {NULL, "/x", NULL, NULL, 0, "method must be GET"},
        {"TRACE", "/x", NULL, NULL, 0, "method must be GET"},
        {"GET", NULL, NULL, NULL, 0, "path must start with '/'"},
        {"GET", "x", NULL, NULL, 0, "path must start with '/'"},
        {"GET", "/a b", NULL, NULL, 0, "path must start with '/'"},
        {"GET", "/a\r\nX-Evil: 1", NULL, NULL, 0, "path must start with '/'"},
        {"POST", "/x", NULL, NULL, 5, "body_len without body"},
        {"POST", "/x", "{}", "text/plain\r\nX-Evil: 1", 2, "bad content type"},
    };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        memset(&q, 0, sizeof(q));
        q.method = bad[i].method;
        q.path = bad[i].path;
        q.body = bad[i].body;
        q.body_len = bad[i].body_len;
        q.content_type = bad[i].ctype;
        assert_int_equal(gh_rest_do(r, &q, &resp), GH_EINVAL);
        if (strstr(resp.error, bad[i].want) == NULL)
            fail_msg("case %zu: error \"%s\" lacks \"%s\"", i, resp.error, bad[i].want);
        gh_rest_resp_cleanup(&resp);
        assert_int_equal(gh_rest_submit(r, &q, NULL, NULL), GH_EINVAL);
    }
    memset(longpath, 'a', sizeof(longpath) - 1);
    longpath[0] = '/';
    longpath[sizeof(longpath) - 1] = '\0';
    assert_int_equal(do_req(r, "GET", longpath, NULL, &resp), GH_ETOOBIG);
    assert_non_null(strstr(resp.error, "too long"));
    gh_rest_resp_cleanup(&resp);
    assert_int_equal(gh_rest_do(r, NULL, &resp), GH_EINVAL);
    gh_rest_resp_cleanup(&resp);
    assert_int_equal(gh_rest_do(r, &q, NULL), GH_EINVAL);
    assert_int_equal(gh_rest_do(NULL, &q, &resp), GH_EINVAL);
    assert_string_equal(resp.error, "no REST client");
    gh_rest_resp_cleanup(&resp);
    assert_int_equal(gh_rest_submit(NULL, &q, NULL, NULL), GH_EINVAL);
    assert_int_equal(gh_rest_poll(NULL, 0), GH_EINVAL);
    assert_int_equal(gh_rest_route_key("GET", "/channels/1", NULL, 10), GH_EINVAL);
    assert_int_equal(gh_rest_route_key("GET", "/channels/1", key, 0), GH_EINVAL);
    assert_int_equal(gh_rest_route_key("GET", "/channels/123/messages/456", key, sizeof(key)), GH_ETOOBIG);
    assert_string_equal(key, "");
    /* Nothing reached the server. */
    assert_int_equal(srv_count(s), 0);
    gh_rest_free(r);
    srv_stop(s);
}

static void test_new_rejects_control_characters(void **state)
{
    (void)state;
    struct gh_rest_opts o;

    memset(&o, 0, sizeof(o));
    o.api_base = "http://127.0.0.1:1/api\n/v10";
    assert_null(gh_rest_new(&o));
    o.api_base = "http://127.0.0.1:1/api/v10";
    o.user_agent = "ua\r\nX-Evil: 1";
    assert_null(gh_rest_new(&o));
}

/* A client freed with transfers still queued or running releases them
 * without calling their callbacks. */
static void test_free_with_transfers_in_flight(void **state)
{
    (void)state;
    const struct canned script[] = {{200, NULL, "{}", 1, 2}};
    struct srv *s = srv_start(script, 1);
    struct gh_rest *r = client(s, 0, 0, 5000, NULL);
    struct cb_result res1, res2;
    struct gh_rest_req q;

    memset(&res1, 0, sizeof(res1));
    memset(&res2, 0, sizeof(res2));
    memset(&q, 0, sizeof(q));
    q.method = "GET";
    q.path = "/channels/1";
    assert_int_equal(gh_rest_submit(r, &q, on_done, &res1), GH_OK);
    q.path = "/channels/2";
    assert_int_equal(gh_rest_submit(r, &q, on_done, &res2), GH_OK);
    /* Both are sent and hang: still pending. */
    assert_int_equal(gh_rest_poll(r, 200), 2);
    assert_true(srv_count(s) >= 1);
    gh_rest_free(r);
    assert_int_equal(res1.calls, 0);
    assert_int_equal(res2.calls, 0);
    srv_stop(s);
}

/* Error bodies of every shape end up in resp.error without guessing. */
static void test_error_body_shapes(void **state)
{
    (void)state;
    const struct canned script[] = {
        {400, NULL, "{\"message\":\"Bad thing\"}", 0, 0},
        {400, NULL, "[1,2]", 0, 0},
        {400, NULL, "not json at all", 0, 0},
        {400, NULL,
         "{\"code\":50035,\"message\":\"Invalid Form Body\",\"errors\":{\"content\":{\"_errors\":[{\"code\":"
         "\"BASE_TYPE_MAX_LENGTH\",\"message\":\"Must be 2000 or fewer in length.\"}]}}}",
         0, 0},
        {409, NULL, "", 0, 0},
    };
    struct srv *s = srv_start(script, 5);
    struct gh_rest *r = client(s, 0, 0, 2000, NULL);
    struct gh_rest_resp resp;

    assert_int_equal(do_req(r, "POST", "/channels/40/messages", "{}", &resp), GH_EDISCORD);
    assert_string_equal(resp.error, "Discord answered 400: Bad thing");
    assert_int_equal(resp.discord_code, 0);
    gh_rest_resp_cleanup(&resp);
    assert_int_equal(do_req(r, "POST", "/channels/40/messages", "{}", &resp), GH_EDISCORD);
    assert_string_equal(resp.error, "Discord answered 400");
    gh_rest_resp_cleanup(&resp);
    assert_int_equal(do_req(r, "POST", "/channels/40/messages", "{}", &resp), GH_EDISCORD);
    assert_string_equal(resp.error, "Discord answered 400");
    assert_string_equal(resp.body, "not json at all");
    gh_rest_resp_cleanup(&resp);
    assert_int_equal(do_req(r, "POST", "/channels/40/messages", "{}", &resp), GH_EDISCORD);
    assert_string_equal(resp.error,
                        "Discord answered 400: Invalid Form Body (content: Must be 2000 or fewer in "
                        "length.) (code 50035)");
    assert_int_equal(resp.discord_code, 50035);
    gh_rest_resp_cleanup(&resp);
    assert_int_equal(do_req(r, "DELETE", "/channels/40/messages/1", NULL, &resp), GH_EDISCORD);
    assert_int_equal(resp.status, 409);
    assert_non_null(resp.body); /* an empty body is "" , never NULL */
    assert_string_equal(resp.body, "");
    gh_rest_resp_cleanup(&resp);
    gh_rest_free(r);
    srv_stop(s);
}

/* Without retry_after in the body, the wait comes from Retry-After, then
 * X-RateLimit-Reset-After, then one second. */
static void test_429_wait_sources(void **state)
{
    (void)state;
    const struct canned script[] = {
        {429, "Retry-After: 0.05\r\n", "{}", 0, 0},
        {200, NULL, "{}", 0, 0},
        {429, "X-RateLimit-Reset-After: 0.05\r\n", "", 0, 0},
        {200, NULL, "{}", 0, 0},
        {429, NULL, "{\"message\":\"slow down\",\"global\":true}", 0, 0},
    };
    struct srv *s = srv_start(script, 5);
    struct gh_rest *r = client(s, 3, 500, 2000, NULL);
    struct gh_rest_resp resp;
    int64_t t0 = __real_gh_mono_ms();

    assert_int_equal(do_req(r, "POST", "/channels/41/messages", "{}", &resp), GH_OK);
    gh_rest_resp_cleanup(&resp);
    assert_int_equal(do_req(r, "POST", "/channels/42/messages", "{}", &resp), GH_OK);
    gh_rest_resp_cleanup(&resp);
    assert_true(__real_gh_mono_ms() - t0 >= 90);
    assert_true(__real_gh_mono_ms() - t0 < 900);
    /* Nothing said: one second, more than this client waits; global from the body. */
    assert_int_equal(do_req(r, "POST", "/channels/43/messages", "{}", &resp), GH_ERATELIMIT);
    assert_true(resp.retry_after > 0.99 && resp.retry_after < 1.01);
    assert_non_null(strstr(resp.error, "global"));
    gh_rest_resp_cleanup(&resp);
    assert_int_equal(srv_count(s), 5);
    gh_rest_free(r);
    srv_stop(s);
}

/* A body larger than the first buffer arrives whole; a URL longer than
 * the client builds is refused before sending. */
static void test_large_body_and_long_url(void **state)
{
    (void)state;
    static char big[6002];
    const struct canned script[] = {{200, NULL, big, 0, 0}};
    struct srv *s;
    struct gh_rest *r;
    struct gh_rest_resp resp;
    char path[2300];

    big[0] = '"';
    memset(big + 1, 'b', 5999);
    big[6000] = '"';
    big[6001] = '\0';
    s = srv_start(script, 1);
    r = client(s, 0, 0, 2000, NULL);
    assert_int_equal(do_req(r, "GET", "/channels/50", NULL, &resp), GH_OK);
    assert_int_equal(resp.body_len, 6001);
    assert_string_equal(resp.body, big);
    gh_rest_resp_cleanup(&resp);

    /* The query is not part of the route key, so only the URL is too long. */
    snprintf(path, sizeof path, "/channels/51?q=%02100d", 7);
    assert_int_equal(do_req(r, "GET", path, NULL, &resp), GH_EINVAL);
    assert_string_equal(resp.error, "invalid request: URL too long");
    gh_rest_resp_cleanup(&resp);
    assert_int_equal(srv_count(s), 1);
    gh_rest_free(r);
    srv_stop(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_route_keys),
        cmocka_unit_test(test_headers_and_2xx),
        cmocka_unit_test(test_404_parses_discord_error),
        cmocka_unit_test(test_429_short_wait_then_retry),
        cmocka_unit_test(test_429_long_wait_refused),
        cmocka_unit_test(test_global_429),
        cmocka_unit_test(test_5xx_retried_then_ok),
        cmocka_unit_test(test_5xx_exhausted),
        cmocka_unit_test(test_401_stops_everything),
        cmocka_unit_test(test_bucket_learned_from_headers),
        cmocka_unit_test(test_breaker),
        cmocka_unit_test(test_breaker_reopens_on_failed_trial),
        cmocka_unit_test(test_submit_poll),
        cmocka_unit_test(test_submit_refusal_goes_through_callback),
        cmocka_unit_test(test_timeout),
        cmocka_unit_test(test_transport_error),
        cmocka_unit_test(test_invalid_request_budget),
        cmocka_unit_test(test_bucket_remaining_counts_down),
        cmocka_unit_test(test_submit_waits_for_bucket),
        cmocka_unit_test(test_redis_down_falls_back_to_local),
        cmocka_unit_test(test_shared_state_through_redis),
        cmocka_unit_test(test_unauthorized_shared_through_redis),
        cmocka_unit_test(test_new_rejects_bad_opts),
        cmocka_unit_test(test_invalid_requests_refused),
        cmocka_unit_test(test_new_rejects_control_characters),
        cmocka_unit_test(test_free_with_transfers_in_flight),
        cmocka_unit_test(test_error_body_shapes),
        cmocka_unit_test(test_429_wait_sources),
        cmocka_unit_test(test_large_body_and_long_url),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
