/* fcgi.h - the FastCGI responder loop of one prefork child (FastCGI 1.0,
 * spoken directly; see fcgi.c). */
#ifndef GH_WEB_FCGI_H
#define GH_WEB_FCGI_H

#include <stddef.h>

struct gh_http_req;
struct gh_http_resp;
struct gh_arena;
struct gh_logger;

typedef void (*gh_http_handler_fn)(const struct gh_http_req *req, struct gh_http_resp *resp, void *arg);

/* Accept loop for one child: reads each request (body capped at max_body;
 * larger bodies set body_too_large and are read and dropped), calls
 * handler, writes the response. Connections the web server asks to keep
 * (FCGI_KEEP_CONN) are kept, several per child, and served as their next
 * requests arrive. Returns when gh_prefork_stopping(). */
int gh_fcgi_serve(int listen_fd, size_t max_body, size_t max_resp, gh_http_handler_fn handler, void *arg);

/* The same with a logger for accept/IO failures (gh_fcgi_serve logs them to
 * stderr), and an optional periodic tick. */
struct gh_fcgi_opts {
    int listen_fd;
    size_t max_body;
    size_t max_resp;
    gh_http_handler_fn handler;
    void *arg;
    const struct gh_logger *log; /* borrowed; NULL = stderr */
    /* Called with arg between requests once tick_ms (0 = 1000) have passed
     * since the previous call, also while no request arrives (the wait for
     * a connection wakes up for it): deferred work such as flushing
     * gh_metrics_defer's table. NULL = none. Not called at exit: the caller
     * does its last flush after gh_fcgi_serve_opts returns. */
    void (*tick)(void *arg);
    int tick_ms;
};
int gh_fcgi_serve_opts(const struct gh_fcgi_opts *opts);

/* Fills req (method, path, query, remote_addr, headers, arena) from a CGI
 * parameter array ("NAME=value" strings, NULL-terminated). Values borrow
 * from envp; header names are copied into arena (lower case, '_' -> '-';
 * CONTENT_TYPE and CONTENT_LENGTH become "content-type"/"content-length").
 * *content_length: CONTENT_LENGTH, or -1 when absent or not a number.
 * Headers past GH_HTTP_MAX_HEADERS are dropped. GH_OK or GH_ENOMEM.
 * Exposed for tests. */
int gh_fcgi_parse_params(char **envp, struct gh_arena *arena, struct gh_http_req *req,
                         long long *content_length);

#endif
