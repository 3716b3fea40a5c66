/* test_prefork.c - the prefork master and the FastCGI loop, in real
 * processes over a real unix socket.
 *
 * Each test forks a master (gh_prefork_run) in a temporary directory. Child
 * mains report to the test through a pipe; the FastCGI tests speak the wire
 * protocol with the small client below. Waits are bounded polls for an
 * event, never fixed sleeps. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/err.h"
#include "core/str.h"
#include "core/timeutil.h"
#include "web/fcgi.h"
#include "web/http.h"
#include "web/prefork.h"

struct fixture {
    char dir[64];
    char sock[100];
    char pidf[100];
    int pipe_rd, pipe_wr;
    int *shared; /* MAP_SHARED counter visible to every forked process */
    pid_t master;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    snprintf(f->dir, sizeof(f->dir), "/tmp/gh-prefork-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->sock, sizeof(f->sock), "%s/test.sock", f->dir);
    snprintf(f->pidf, sizeof(f->pidf), "%s/test.pid", f->dir);
    int p[2];
    assert_int_equal(pipe(p), 0);
    f->pipe_rd = p[0];
    f->pipe_wr = p[1];
    f->shared = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(f->shared != MAP_FAILED);
    memset(f->shared, 0, 4096);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    if (f->master > 0) {
        kill(f->master, SIGKILL);
        waitpid(f->master, NULL, 0);
    }
    close(f->pipe_rd);
    close(f->pipe_wr);
    munmap(f->shared, 4096);
    unlink(f->sock);
    unlink(f->pidf);
    rmdir(f->dir);
    free(f);
    return 0;
}

/* ---- helpers ------------------------------------------------------------ */

static pid_t start_master(struct fixture *f, int children, gh_child_main_fn fn)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(f->pipe_rd);
        struct gh_prefork_opts o = {
            .socket_path = f->sock,
            .backlog = 64,
            .children = children,
            .child_main = fn,
            .arg = f,
            .log = NULL,
            .pid_file = f->pidf,
        };
        exit(gh_prefork_run(&o));
    }
    f->master = pid;
    return pid;
}

/* Reads exactly n bytes within timeout_ms; returns the count read. */
static size_t read_pipe(int fd, void *buf, size_t n, int timeout_ms)
{
    size_t got = 0;
    int64_t deadline = gh_mono_ms() + timeout_ms;
    while (got < n) {
        int64_t left = deadline - gh_mono_ms();
        if (left <= 0)
            break;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int r = poll(&p, 1, (int)left);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        ssize_t k = read(fd, (char *)buf + got, n - got);
        if (k <= 0)
            break;
        got += (size_t)k;
    }
    return got;
}

/* Waits for pid to exit within timeout_ms; returns its status or -1. */
static int wait_exit(pid_t pid, int timeout_ms)
{
    int64_t deadline = gh_mono_ms() + timeout_ms;
    struct timespec tick = {0, 5 * 1000 * 1000};
    while (gh_mono_ms() < deadline) {
        int status;
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            return status;
        nanosleep(&tick, NULL);
    }
    return -1;
}

static int connect_sock(const char *path)
{
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static int wait_listening(const char *path, int timeout_ms)
{
    int64_t deadline = gh_mono_ms() + timeout_ms;
    struct timespec tick = {0, 5 * 1000 * 1000};
    while (gh_mono_ms() < deadline) {
        int fd = connect_sock(path);
        if (fd >= 0) {
            close(fd);
            return 1;
        }
        nanosleep(&tick, NULL);
    }
    return 0;
}

/* ---- a minimal FastCGI client ------------------------------------------- */

enum { FCGI_BEGIN = 1, FCGI_END = 3, FCGI_PARAMS = 4, FCGI_STDIN = 5, FCGI_STDOUT = 6 };

static int write_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n > 0) {
        ssize_t k = write(fd, c, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        c += k;
        n -= (size_t)k;
    }
    return 0;
}

static int write_record(int fd, int type, const void *body, size_t len)
{
    unsigned char h[8] = {1, (unsigned char)type, 0, 1, (unsigned char)(len >> 8), (unsigned char)len, 0, 0};
    if (write_all(fd, h, 8) != 0)
        return -1;
    return len ? write_all(fd, body, len) : 0;
}

static void put_len(struct gh_buf *b, size_t n)
{
    unsigned char c[4];
    if (n < 128) {
        c[0] = (unsigned char)n;
        gh_buf_append(b, c, 1);
        return;
    }
    c[0] = (unsigned char)((n >> 24) | 0x80);
    c[1] = (unsigned char)(n >> 16);
    c[2] = (unsigned char)(n >> 8);
    c[3] = (unsigned char)n;
    gh_buf_append(b, c, 4);
}

/* params: NAME, VALUE, ..., NULL. Returns the STDOUT text (caller frees) or NULL. */
static char *fcgi_call(const char *path, const char *const *params, const char *body, size_t body_len)
{
    int fd = connect_sock(path);
    if (fd < 0)
        return NULL;
    struct gh_buf pb, out;
    gh_buf_init(&pb, 1 << 16);
    gh_buf_init(&out, 1 << 20);
    char *result = NULL;
    unsigned char begin[8] = {0, 1, 0, 0, 0, 0, 0, 0};
    if (write_record(fd, FCGI_BEGIN, begin, 8) != 0)
        goto out;
    for (int i = 0; params[i]; i += 2) {
        put_len(&pb, strlen(params[i]));
        put_len(&pb, strlen(params[i + 1]));
        gh_buf_puts(&pb, params[i]);
        gh_buf_puts(&pb, params[i + 1]);
    }
    if (write_record(fd, FCGI_PARAMS, pb.data, pb.len) != 0 || write_record(fd, FCGI_PARAMS, NULL, 0) != 0)
        goto out;
    for (size_t off = 0; off < body_len;) {
        size_t n = body_len - off > 32768 ? 32768 : body_len - off;
        if (write_record(fd, FCGI_STDIN, body + off, n) != 0)
            goto out;
        off += n;
    }
    if (write_record(fd, FCGI_STDIN, NULL, 0) != 0)
        goto out;
    for (;;) {
        unsigned char h[8];
        if (read_pipe(fd, h, 8, 5000) != 8)
            goto out;
        size_t len = ((size_t)h[4] << 8) | h[5], pad = h[6];
        char *buf = malloc(len + pad + 1);
        if (!buf || read_pipe(fd, buf, len + pad, 5000) != len + pad) {
            free(buf);
            goto out;
        }
        if (h[1] == FCGI_STDOUT)
            gh_buf_append(&out, buf, len);
        free(buf);
        if (h[1] == FCGI_END)
            break;
    }
    result = strdup(gh_buf_cstr(&out));
out:
    close(fd);
    gh_buf_cleanup(&pb);
    gh_buf_cleanup(&out);
    return result;
}

/* ---- child mains -------------------------------------------------------- */

/* First child exits 3, the second dies of SIGKILL, later ones run until
 * asked to stop and then report 'E'. Every start reports 'S'. */
static int crashy_child(int listen_fd, void *arg)
{
    struct fixture *f = arg;
    (void)listen_fd;
    int n = __atomic_fetch_add(f->shared, 1, __ATOMIC_SEQ_CST);
    write_all(f->pipe_wr, "S", 1);
    if (n == 0)
        return 3;
    if (n == 1)
        raise(SIGKILL);
    struct timespec tick = {0, 10 * 1000 * 1000};
    while (!gh_prefork_stopping())
        nanosleep(&tick, NULL);
    write_all(f->pipe_wr, "E", 1);
    return 0;
}

/* Reports its start time and exits at once: a child dying in a loop. */
static int dying_child(int listen_fd, void *arg)
{
    struct fixture *f = arg;
    (void)listen_fd;
    int64_t now = gh_mono_ms();
    write_all(f->pipe_wr, &now, sizeof(now));
    return 1;
}

static void echo_handler(const struct gh_http_req *req, struct gh_http_resp *resp, void *arg)
{
    struct fixture *f = arg;
    const char *x = gh_http_header(req, "x-test");
    if (strcmp(req->path, "/slow") == 0) {
        /* Simulated work that outlives a SIGTERM sent meanwhile. */
        write_all(f->pipe_wr, "R", 1);
        int64_t until = gh_mono_ms() + 300;
        struct timespec tick = {0, 10 * 1000 * 1000};
        while (gh_mono_ms() < until)
            nanosleep(&tick, NULL);
    }
    gh_http_resp_set(resp, strcmp(req->path, "/missing") == 0 ? 404 : 200, "application/json");
    gh_http_resp_header(resp, "X-Echo", "1");
    gh_buf_printf(&resp->body,
                  "{\"method\":\"%s\",\"path\":\"%s\",\"query\":\"%s\",\"x\":\"%s\",\"len\":%zu,\"big\":%d,"
                  "\"body\":\"%.20s\",\"pid\":%ld}",
                  req->method, req->path, req->query, x ? x : "", req->body_len, req->body_too_large,
                  req->body_len <= 20 ? req->body : "", (long)getpid());
}

static int fcgi_child(int listen_fd, void *arg)
{
    return gh_fcgi_serve(listen_fd, 1024, 65536, echo_handler, arg) == GH_OK ? 0 : 1;
}

/* ---- tests -------------------------------------------------------------- */

static void test_size(void **state)
{
    (void)state;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    if (cores < 1)
        cores = 1;
    /* Requested wins, but never past PG_POOL_MAX. */
    assert_int_equal(gh_prefork_size(7, 10, 50), 7);
    assert_int_equal(gh_prefork_size(80, 10, 50), 50);
    /* Automatic: 2 x cores within the pool. */
    assert_int_equal(gh_prefork_size(0, 1, 500), (int)(2 * cores));
    assert_int_equal(gh_prefork_size(0, 1, 1), 1);
    assert_true(gh_prefork_size(0, 10, 50) <= 50);
    assert_true(gh_prefork_size(0, 0, 0) >= 1);
}

static void test_respawn_and_stop(void **state)
{
    struct fixture *f = *state;
    pid_t master = start_master(f, 1, crashy_child);
    char buf[8];

    /* 3 starts: the exit(3) one, the SIGKILLed one, and a healthy one. */
    assert_int_equal(read_pipe(f->pipe_rd, buf, 3, 10000), 3);
    assert_memory_equal(buf, "SSS", 3);
    assert_int_equal(*f->shared, 3);
    assert_true(wait_listening(f->sock, 5000));

    struct stat st;
    assert_int_equal(stat(f->sock, &st), 0);
    assert_true(S_ISSOCK(st.st_mode));
    assert_int_equal(st.st_mode & 0777, 0666);
    FILE *pf = fopen(f->pidf, "r");
    assert_non_null(pf);
    long pid_in_file = 0;
    assert_int_equal(fscanf(pf, "%ld", &pid_in_file), 1);
    fclose(pf);
    assert_int_equal(pid_in_file, (long)master);

    assert_int_equal(kill(master, SIGTERM), 0);
    int status = wait_exit(master, 10000);
    assert_true(status != -1);
    f->master = 0;
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    /* The healthy child saw the stop request and returned by itself. */
    assert_int_equal(read_pipe(f->pipe_rd, buf, 1, 2000), 1);
    assert_int_equal(buf[0], 'E');
    /* No extra spawn after the stop. */
    assert_int_equal(*f->shared, 3);
    assert_int_equal(access(f->sock, F_OK), -1);
    assert_int_equal(access(f->pidf, F_OK), -1);
}

static void test_backoff_when_children_die_in_a_loop(void **state)
{
    struct fixture *f = *state;
    int64_t t[13];
    start_master(f, 1, dying_child);
    for (int i = 0; i < 13; i++)
        assert_int_equal(read_pipe(f->pipe_rd, &t[i], sizeof(t[i]), 10000), sizeof(t[i]));
    /* Ten quick respawns, then one second between them. */
    assert_true(t[10] - t[0] < 900);
    assert_true(t[11] - t[10] >= 900);
    assert_true(t[12] - t[11] >= 900);
    assert_int_equal(kill(f->master, SIGTERM), 0);
    int status = wait_exit(f->master, 10000);
    f->master = 0;
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_socket_checks(void **state)
{
    struct fixture *f = *state;

    /* A stale socket (nobody listening) is replaced. */
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", f->sock);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    close(fd);
    assert_int_equal(access(f->sock, F_OK), 0);
    pid_t first = start_master(f, 1, fcgi_child);
    assert_true(wait_listening(f->sock, 5000));

    /* A live one is not stolen: the second master refuses to start. */
    struct gh_prefork_opts o = {
        .socket_path = f->sock,
        .backlog = 8,
        .children = 1,
        .child_main = fcgi_child,
        .arg = f,
    };
    assert_int_not_equal(gh_prefork_run(&o), 0);
    assert_true(wait_listening(f->sock, 1000));

    kill(first, SIGTERM);
    assert_true(wait_exit(first, 10000) != -1);
    f->master = 0;

    /* A regular file at the path is never removed. */
    FILE *reg = fopen(f->sock, "w");
    assert_non_null(reg);
    fclose(reg);
    assert_int_not_equal(gh_prefork_run(&o), 0);
    assert_int_equal(access(f->sock, F_OK), 0);
    unlink(f->sock);

    /* Bad options. */
    struct gh_prefork_opts bad = {.socket_path = f->sock, .children = 0, .child_main = fcgi_child};
    assert_int_not_equal(gh_prefork_run(&bad), 0);
    assert_int_not_equal(gh_prefork_run(NULL), 0);
}

/* Setup failures return non-zero and leave neither a socket nor a pid file. */
static void test_setup_failures(void **state)
{
    struct fixture *f = *state;
    char long_path[200];
    memset(long_path, 'p', sizeof(long_path) - 1);
    long_path[0] = '/';
    long_path[sizeof(long_path) - 1] = '\0';
    struct gh_prefork_opts o = {
        .socket_path = long_path,
        .backlog = 8,
        .children = 1,
        .child_main = fcgi_child,
        .arg = f,
    };

    /* A socket path longer than sun_path, and an empty one. */
    assert_int_not_equal(gh_prefork_run(&o), 0);
    o.socket_path = "";
    assert_int_not_equal(gh_prefork_run(&o), 0);

    /* A pid file that cannot be written: the bound socket is removed again. */
    char pid_missing[160];
    snprintf(pid_missing, sizeof(pid_missing), "%s/no-such-dir/test.pid", f->dir);
    o.socket_path = f->sock;
    o.pid_file = pid_missing;
    assert_int_not_equal(gh_prefork_run(&o), 0);
    assert_int_equal(access(f->sock, F_OK), -1);
    assert_int_equal(access(pid_missing, F_OK), -1);

    /* A pid file path too long for its temporary name. */
    char pid_long[1100];
    memset(pid_long, 'q', sizeof(pid_long) - 1);
    pid_long[0] = '/';
    pid_long[sizeof(pid_long) - 1] = '\0';
    o.pid_file = pid_long;
    assert_int_not_equal(gh_prefork_run(&o), 0);
    assert_int_equal(access(f->sock, F_OK), -1);
}

static void test_fcgi_roundtrip(void **state)
{
    struct fixture *f = *state;
    start_master(f, 2, fcgi_child);
    assert_true(wait_listening(f->sock, 5000));

    const char *post[] = {"REQUEST_METHOD",
                          "POST",
                          "DOCUMENT_URI",
                          "/interactions",
                          "QUERY_STRING",
                          "a=1",
                          "CONTENT_LENGTH",
                          "11",
                          "HTTP_X_TEST",
                          "yes",
                          NULL};
    char *out = fcgi_call(f->sock, post, "hello world", 11);
    assert_non_null(out);
    assert_non_null(strstr(out, "Status: 200 OK\r\n"));
    assert_non_null(strstr(out, "Content-Type: application/json\r\n"));
    assert_non_null(strstr(out, "X-Echo: 1\r\n"));
    assert_non_null(strstr(out, "\"method\":\"POST\""));
    assert_non_null(strstr(out, "\"path\":\"/interactions\""));
    assert_non_null(strstr(out, "\"query\":\"a=1\""));
    assert_non_null(strstr(out, "\"x\":\"yes\""));
    assert_non_null(strstr(out, "\"len\":11,\"big\":0,\"body\":\"hello world\""));
    /* Content-Length matches the body after the blank line. */
    const char *body = strstr(out, "\r\n\r\n");
    assert_non_null(body);
    char want[64];
    snprintf(want, sizeof(want), "Content-Length: %zu\r\n", strlen(body + 4));
    assert_non_null(strstr(out, want));
    free(out);

    /* A body over the cap (1024) is not read into the request but drained;
     * the next request on a new connection is served normally. */
    size_t big_len = 100000;
    char *big = malloc(big_len);
    assert_non_null(big);
    memset(big, 'b', big_len);
    const char *bigp[] = {"REQUEST_METHOD", "POST", "DOCUMENT_URI", "/x", "CONTENT_LENGTH", "100000", NULL};
    out = fcgi_call(f->sock, bigp, big, big_len);
    assert_non_null(out);
    assert_non_null(strstr(out, "\"len\":0,\"big\":1"));
    free(out);
    /* Without CONTENT_LENGTH the cap still holds. */
    const char *nolen[] = {"REQUEST_METHOD", "POST", "DOCUMENT_URI", "/x", NULL};
    out = fcgi_call(f->sock, nolen, big, 2000);
    assert_non_null(out);
    assert_non_null(strstr(out, "\"len\":0,\"big\":1"));
    free(out);
    out = fcgi_call(f->sock, nolen, big, 1024);
    assert_non_null(out);
    assert_non_null(strstr(out, "\"len\":1024,\"big\":0"));
    free(out);
    free(big);

    /* Status line of another code; many requests spread over both children. */
    const char *get[] = {"REQUEST_METHOD", "GET", "DOCUMENT_URI", "/missing", NULL};
    for (int i = 0; i < 20; i++) {
        out = fcgi_call(f->sock, get, NULL, 0);
        assert_non_null(out);
        assert_non_null(strstr(out, "Status: 404 Not Found\r\n"));
        free(out);
    }

    assert_int_equal(kill(f->master, SIGTERM), 0);
    int status = wait_exit(f->master, 10000);
    f->master = 0;
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_int_equal(access(f->sock, F_OK), -1);
}

static void test_stop_finishes_the_request_in_flight(void **state)
{
    struct fixture *f = *state;
    start_master(f, 1, fcgi_child);
    assert_true(wait_listening(f->sock, 5000));

    pid_t client = fork();
    assert_true(client >= 0);
    if (client == 0) {
        const char *slow[] = {"REQUEST_METHOD", "GET", "DOCUMENT_URI", "/slow", NULL};
        char *out = fcgi_call(f->sock, slow, NULL, 0);
        int ok = out && strstr(out, "Status: 200 OK") && strstr(out, "\"path\":\"/slow\"");
        free(out);
        _exit(ok ? 0 : 1);
    }
    char c;
    assert_int_equal(read_pipe(f->pipe_rd, &c, 1, 5000), 1); /* the handler is running */
    assert_int_equal(c, 'R');
    assert_int_equal(kill(f->master, SIGTERM), 0);

    int cstatus = wait_exit(client, 10000);
    assert_true(WIFEXITED(cstatus));
    assert_int_equal(WEXITSTATUS(cstatus), 0); /* the full response arrived */
    int status = wait_exit(f->master, 10000);
    f->master = 0;
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_size),
        cmocka_unit_test_setup_teardown(test_respawn_and_stop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backoff_when_children_die_in_a_loop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_socket_checks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_setup_failures, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fcgi_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_finishes_the_request_in_flight, setup, teardown),
    };
    return cmocka_run_group_tests_name("prefork", tests, NULL, NULL);
}
