/* fcgi.h - FastCGI request loop glue (libfcgi FCGX_*). */
#ifndef GH_WEB_FCGI_H
#define GH_WEB_FCGI_H

#include <stddef.h>

struct gh_http_req;
struct gh_http_resp;

typedef void (*gh_http_handler_fn)(const struct gh_http_req *req, struct gh_http_resp *resp, void *arg);

/* Accept loop for one child: reads each request (body capped at max_body;
 * larger bodies set body_too_large without being read), calls handler,
 * writes the response. Returns when gh_prefork_stopping(). */
int gh_fcgi_serve(int listen_fd, size_t max_body, size_t max_resp, gh_http_handler_fn handler, void *arg);

#endif
