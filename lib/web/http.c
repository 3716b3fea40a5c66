/* http.c - request/response helpers independent of FastCGI.
 *
 * A response is a status, a Content-Type, extra header lines and a capped
 * body buffer. fcgi.c serialises it; handlers and tests only see these
 * structs. */
#include "web/http.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/err.h"

const char *gh_http_header(const struct gh_http_req *req, const char *name)
{
    if (!req || !name)
        return NULL;
    for (int i = 0; i < req->n_headers && i < GH_HTTP_MAX_HEADERS; i++) {
        const struct gh_http_header *h = &req->headers[i];
        if (h->name && strcasecmp(h->name, name) == 0)
            return h->value;
    }
    return NULL;
}

void gh_http_resp_init(struct gh_http_resp *resp, size_t max_body)
{
    resp->status = 200;
    memcpy(resp->content_type, "application/json", sizeof("application/json"));
    resp->extra_headers[0] = '\0';
    gh_buf_init(&resp->body, max_body);
}

void gh_http_resp_cleanup(struct gh_http_resp *resp)
{
    if (!resp)
        return;
    gh_buf_cleanup(&resp->body);
    resp->extra_headers[0] = '\0';
}

/* A header name is a token; a value must not smuggle a line break. */
static int header_text_ok(const char *s, int is_name)
{
    if (!s || (is_name && !*s))
        return 0;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '\r' || c == '\n' || c == '\0')
            return 0;
        if (is_name && (c <= ' ' || c == ':' || c >= 0x7f))
            return 0;
    }
    return 1;
}

int gh_http_resp_header(struct gh_http_resp *resp, const char *name, const char *value)
{
    if (!header_text_ok(name, 1) || !header_text_ok(value, 0))
        return GH_EINVAL;
    size_t used = strlen(resp->extra_headers);
    size_t room = sizeof(resp->extra_headers) - used;
    int n = snprintf(resp->extra_headers + used, room, "%s: %s\r\n", name, value);
    if (n < 0 || (size_t)n >= room) {
        resp->extra_headers[used] = '\0'; /* nothing half-written */
        return GH_ETOOBIG;
    }
    return GH_OK;
}

void gh_http_resp_set(struct gh_http_resp *resp, int status, const char *content_type)
{
    resp->status = status;
    if (!content_type ||
        gh_snprintf(resp->content_type, sizeof(resp->content_type), "%s", content_type) != GH_OK)
        memcpy(resp->content_type, "application/json", sizeof("application/json"));
    gh_buf_reset(&resp->body);
}

void gh_http_error(struct gh_http_resp *resp, int status, const char *code, const char *message)
{
    gh_http_resp_set(resp, status, "application/json");
    if (!code)
        code = "error";
    if (!message)
        message = gh_http_reason(status);
    int rc = gh_buf_puts(&resp->body, "{\"error\":{\"code\":\"");
    if (rc == GH_OK)
        rc = gh_buf_append_json_escaped(&resp->body, code, strlen(code));
    if (rc == GH_OK)
        rc = gh_buf_puts(&resp->body, "\",\"message\":\"");
    if (rc == GH_OK)
        rc = gh_buf_append_json_escaped(&resp->body, message, strlen(message));
    if (rc == GH_OK)
        rc = gh_buf_puts(&resp->body, "\"}}");
    if (rc != GH_OK) {
        /* The message did not fit the cap: keep the code, drop the text. */
        gh_buf_reset(&resp->body);
        gh_buf_puts(&resp->body, "{\"error\":{\"code\":\"error\",\"message\":\"\"}}");
    }
}

void gh_http_json(struct gh_http_resp *resp, int status, const char *json)
{
    gh_http_resp_set(resp, status, "application/json");
    if (!json)
        return;
    if (gh_buf_puts(&resp->body, json) != GH_OK)
        gh_http_error(resp, 500, "response_too_large", "the response is larger than the limit");
}

const char *gh_http_reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 303:
        return "See Other";
    case 304:
        return "Not Modified";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 409:
        return "Conflict";
    case 413:
        return "Payload Too Large";
    case 415:
        return "Unsupported Media Type";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        return "Unknown";
    }
}
