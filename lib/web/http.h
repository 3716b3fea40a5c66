/* http.h - a request and response independent of FastCGI, so handlers and
 * routers are tested without a server. fcgi.c (our FastCGI responder) fills
 * these from the records nginx sends. */
#ifndef GH_WEB_HTTP_H
#define GH_WEB_HTTP_H

#include <stddef.h>

#include "core/str.h"

struct gh_arena;

#define GH_HTTP_MAX_HEADERS 32

struct gh_http_header {
    const char *name; /* lower-case, e.g. "x-signature-ed25519" */
    const char *value;
};

struct gh_http_req {
    const char *method; /* "POST" */
    const char *path;   /* "/interactions" (no query) */
    const char *query;  /* "" when none */
    const char *remote_addr;
    const char *body; /* NUL-terminated copy, len bytes */
    size_t body_len;
    int body_too_large; /* set by the reader when CONTENT_LENGTH > cap */
    struct gh_http_header headers[GH_HTTP_MAX_HEADERS];
    int n_headers;
    struct gh_arena *arena; /* per request, reset after it (borrowed; may be NULL in tests) */
};

struct gh_http_resp {
    int status;
    char content_type[64];
    char extra_headers[4096]; /* "Name: value\r\n"... */
    struct gh_buf body;       /* capped */
};

/* Case-insensitive header lookup; NULL when absent. */
const char *gh_http_header(const struct gh_http_req *req, const char *name);
void gh_http_resp_init(struct gh_http_resp *resp, size_t max_body);
void gh_http_resp_cleanup(struct gh_http_resp *resp);
/* Adds "Name: value\r\n"; GH_ETOOBIG when full. */
int gh_http_resp_header(struct gh_http_resp *resp, const char *name, const char *value);
/* DESIGN.md's error JSON: {"error":{"code":..,"message":..}} with status. */
void gh_http_error(struct gh_http_resp *resp, int status, const char *code, const char *message);
/* status + application/json + body text. */
void gh_http_json(struct gh_http_resp *resp, int status, const char *json);
/* Sets status and Content-Type and empties the body; the caller appends to
 * resp->body. */
void gh_http_resp_set(struct gh_http_resp *resp, int status, const char *content_type);
/* Reason phrase of a status ("Not Found"); "Unknown" for others. Never NULL. */
const char *gh_http_reason(int status);

#endif
