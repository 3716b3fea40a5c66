/* rest.c - the one Discord REST client (libcurl).
 *
 * A call goes through the same steps in both modes:
 *
 *   preflight   token stopped? breaker open? rate limits (ratelimit.c) say wait?
 *   transfer    curl easy (blocking, one reused handle with keep-alive) or
 *               curl multi (gh_rest_submit / gh_rest_poll)
 *   finish      learn the bucket from the headers, classify the status, and
 *               either finish or schedule a retry (429 within the acceptable
 *               wait, 5xx and transport errors with exponential backoff)
 *
 * Blocking calls sleep between steps; non-blocking transfers carry a
 * not-before time and are started by gh_rest_poll when it passes. Logs name
 * the route key, never the path: webhook and interaction tokens live in paths. */
#include "discord/rest.h"

#include <curl/curl.h>
#include <errno.h>
#include <json-c/json.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/err.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "discord/ratelimit.h"

#define DEFAULT_TIMEOUT_MS 30000
#define DEFAULT_MAX_RETRIES 3
#define DEFAULT_MAX_WAIT_MS 5000
#define CONNECT_TIMEOUT_MS 5000
#define BACKOFF_BASE_MS 250
#define BACKOFF_MAX_MS 8000
#define BREAKER_THRESHOLD 5
#define BREAKER_OPEN_MS 10000
#define RESPONSE_MAX ((size_t)16 * 1024 * 1024)
#define REASON_MAX_CHARS 512
#define STEP_WAIT 1  /* preflight: wait x->not_before, then ask again */
#define STEP_RETRY 2 /* finish: send again after x->not_before */

struct gh_rest {
    char *api_base;
    char *auth_header; /* "Authorization: Bot <token>", NULL without a token */
    char *user_agent;
    const struct gh_logger *log;
    int timeout_ms;
    int max_retries;
    int max_wait_ms;
    struct gh_ratelimit *rl;
    CURL *easy;         /* blocking calls: reused, keeps its connections */
    CURLM *multi;       /* non-blocking calls */
    struct xfer *xfers; /* submitted, not yet completed */
    int in_poll;
    /* circuit breaker (per process) */
    int failures;          /* consecutive 5xx / transport failures */
    int64_t open_until_ms; /* monotonic; 0 = closed */
    int trial_inflight;    /* half-open: one trial at a time */
};

struct xfer {
    struct gh_rest *rest;
    char method[8];
    const char *path; /* borrowed (blocking) or own_path */
    const char *body;
    size_t body_len;
    char content_type[128];
    char *reason; /* URL-encoded audit reason, owned */
    int no_auth;
    char *user_auth; /* "Authorization: <user credential>", owned; implies no_auth */
    char *own_path;
    char *own_body;
    struct gh_rl_route route;
    /* progress */
    int attempts;
    int retries;
    int64_t waited_ms;     /* rate-limit waits so far */
    int64_t not_before_ms; /* monotonic */
    int trial;             /* this attempt is the breaker's half-open trial */
    int running;
    /* response of the current attempt */
    struct gh_rest_resp resp;
    size_t body_cap;
    int body_overflow;
    struct gh_rl_headers h;
    char curl_err[CURL_ERROR_SIZE];
    CURL *easy; /* the handle in use (rest->easy or a multi one) */
    struct curl_slist *headers;
    /* non-blocking */
    gh_rest_cb cb;
    void *cb_arg;
    struct xfer *next;
};

/* ---- small helpers ------------------------------------------------------ */

static void set_error(struct gh_rest_resp *resp, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void set_error(struct gh_rest_resp *resp, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    (void)vsnprintf(resp->error, sizeof(resp->error), fmt, ap);
    va_end(ap);
}

static void sleep_ms(int64_t ms)
{
    struct timespec ts;

    if (ms <= 0)
        return;
    ts.tv_sec = (time_t)(ms / 1000);
    ts.tv_nsec = (long)(ms % 1000) * 1000000L;
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static char *dup_str(const char *s)
{
    size_t n = strlen(s);
    char *d = malloc(n + 1);

    if (d != NULL)
        memcpy(d, s, n + 1);
    return d;
}

static int has_ctl(const char *s)
{
    for (; *s != '\0'; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return 1;
    return 0;
}

static int method_ok(const char *m)
{
    static const char *const methods[] = {"GET", "POST", "PUT", "PATCH", "DELETE"};

    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
        if (strcmp(m, methods[i]) == 0)
            return 1;
    return 0;
}

/* Byte length of the first max_chars code points of s. */
static size_t utf8_prefix(const char *s, size_t max_chars)
{
    size_t i = 0;
    size_t chars = 0;

    while (s[i] != '\0' && chars < max_chars) {
        i++;
        while (((unsigned char)s[i] & 0xC0) == 0x80)
            i++;
        chars++;
    }
    return i;
}

/* ---- logging ------------------------------------------------------------ */

static void log_call(const struct gh_rest *rest, enum gh_log_level lvl, const struct xfer *x, int err,
                     const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void log_call(const struct gh_rest *rest, enum gh_log_level lvl, const struct xfer *x, int err,
                     const char *fmt, ...)
{
    char msg[512];
    json_object *extra = NULL;
    va_list ap;

    if (rest->log == NULL || rest->log->sink == NULL)
        return;
    va_start(ap, fmt);
    (void)vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    extra = json_object_new_object();
    if (extra != NULL && x != NULL) {
        json_object_object_add(extra, "method", json_object_new_string(x->method));
        json_object_object_add(extra, "route", json_object_new_string(x->route.key));
        json_object_object_add(extra, "status", json_object_new_int64(x->resp.status));
        json_object_object_add(extra, "discord_code", json_object_new_int(x->resp.discord_code));
        json_object_object_add(extra, "attempts", json_object_new_int(x->attempts));
        if (err != GH_OK)
            json_object_object_add(extra, "err", json_object_new_string(gh_errname(err)));
    }
    gh_log_fields(rest->log, lvl, 0,
                  extra != NULL ? json_object_to_json_string_ext(extra, JSON_C_TO_STRING_PLAIN) : NULL, "%s",
                  msg);
    json_object_put(extra);
}

/* ---- circuit breaker ---------------------------------------------------- */

/* GH_OK when a request may go; marks the half-open trial. */
static int breaker_check(struct gh_rest *rest, struct xfer *x)
{
    int64_t now = gh_mono_ms();

    x->trial = 0;
    if (rest->open_until_ms == 0)
        return GH_OK;
    if (now < rest->open_until_ms) {
        set_error(
            &x->resp,
            "Discord API unavailable: circuit breaker open after %d consecutive failures; retry in %lld s",
            BREAKER_THRESHOLD, (long long)((rest->open_until_ms - now + 999) / 1000));
        return GH_EUNAVAILABLE;
    }
    if (rest->trial_inflight) {
        set_error(&x->resp,
                  "Discord API unavailable: circuit breaker half-open, a trial request is in flight");
        return GH_EUNAVAILABLE;
    }
    rest->trial_inflight = 1;
    x->trial = 1;
    return GH_OK;
}

static void breaker_success(struct gh_rest *rest, struct xfer *x)
{
    if (rest->open_until_ms != 0 && x->trial)
        log_call(rest, GH_LOG_INFO, x, GH_OK, "circuit breaker closed: Discord answered again");
    if (x->trial || rest->open_until_ms == 0) {
        rest->open_until_ms = 0;
        rest->trial_inflight = 0;
    }
    rest->failures = 0;
    x->trial = 0;
}

static void breaker_failure(struct gh_rest *rest, struct xfer *x)
{
    rest->failures++;
    if (x->trial || (rest->open_until_ms == 0 && rest->failures >= BREAKER_THRESHOLD)) {
        rest->open_until_ms = gh_mono_ms() + BREAKER_OPEN_MS;
        rest->trial_inflight = 0;
        log_call(rest, GH_LOG_ERROR, x, GH_EUNAVAILABLE,
                 "circuit breaker open for %d s after %d consecutive failures", BREAKER_OPEN_MS / 1000,
                 rest->failures);
    }
    x->trial = 0;
}

/* A trial that ends without an answer either way (refused before sending). */
static void breaker_release(struct gh_rest *rest, struct xfer *x)
{
    if (x->trial)
        rest->trial_inflight = 0;
    x->trial = 0;
}

/* ---- transfers ---------------------------------------------------------- */

static void resp_reset(struct gh_rest_resp *resp)
{
    free(resp->body);
    memset(resp, 0, sizeof(*resp));
}

void gh_rest_resp_cleanup(struct gh_rest_resp *resp)
{
    if (resp == NULL)
        return;
    free(resp->body);
    resp->body = NULL;
    resp->body_len = 0;
}

static void xfer_free(struct xfer *x)
{
    if (x == NULL)
        return;
    curl_slist_free_all(x->headers);
    free(x->resp.body);
    free(x->reason);
    free(x->user_auth);
    free(x->own_path);
    free(x->own_body);
    free(x);
}

/* Validates req and builds a transfer; copy=1 keeps its own path and body. */
static int xfer_new(struct gh_rest *rest, const struct gh_rest_req *req, int copy, struct xfer **out,
                    struct gh_rest_resp *resp)
{
    struct xfer *x = NULL;
    int rc = GH_EINVAL;

    *out = NULL;
    if (req == NULL || req->method == NULL || !method_ok(req->method)) {
        set_error(resp, "invalid request: method must be GET, POST, PUT, PATCH or DELETE");
        goto out;
    }
    if (req->path == NULL || req->path[0] != '/' || has_ctl(req->path) || strchr(req->path, ' ') != NULL) {
        set_error(resp, "invalid request: path must start with '/' and hold no spaces or control characters");
        goto out;
    }
    if (req->body == NULL && req->body_len > 0) {
        set_error(resp, "invalid request: body_len without body");
        goto out;
    }
    if (req->content_type != NULL && (has_ctl(req->content_type) || strlen(req->content_type) >= 128)) {
        set_error(resp, "invalid request: bad content type");
        goto out;
    }
    x = calloc(1, sizeof(*x));
    if (x == NULL) {
        rc = GH_ENOMEM;
        set_error(resp, "out of memory");
        goto out;
    }
    x->rest = rest;
    (void)snprintf(x->method, sizeof(x->method), "%s", req->method);
    rc = gh_ratelimit_route(req->method, req->path, &x->route);
    if (rc != GH_OK) {
        set_error(resp, "invalid request: path too long for a route key");
        goto out;
    }
    x->no_auth = req->no_auth;
    if (req->authorization != NULL) {
        size_t alen = strlen(req->authorization) + sizeof("Authorization: ");
        if (has_ctl(req->authorization) || alen > 4096) {
            rc = GH_EINVAL;
            set_error(resp, "invalid request: bad authorization value");
            goto out;
        }
        x->user_auth = malloc(alen);
        if (x->user_auth == NULL)
            goto nomem;
        (void)snprintf(x->user_auth, alen, "Authorization: %s", req->authorization);
        x->no_auth = 1;
    }
    x->path = req->path;
    x->body = req->body;
    x->body_len = req->body_len;
    if (req->body != NULL)
        (void)snprintf(x->content_type, sizeof(x->content_type), "%s",
                       req->content_type != NULL ? req->content_type : "application/json");
    if (copy) {
        x->own_path = dup_str(req->path);
        if (x->own_path == NULL)
            goto nomem;
        x->path = x->own_path;
        if (req->body != NULL) {
            x->own_body = malloc(req->body_len + 1);
            if (x->own_body == NULL)
                goto nomem;
            memcpy(x->own_body, req->body, req->body_len);
            x->own_body[req->body_len] = '\0';
            x->body = x->own_body;
        }
    }
    if (req->audit_reason != NULL && req->audit_reason[0] != '\0') {
        /* Discord takes 1-512 characters: cap the text, then URL-encode it. */
        size_t n = utf8_prefix(req->audit_reason, REASON_MAX_CHARS);
        char *enc = curl_easy_escape(rest->easy, req->audit_reason, (int)n);
        if (enc == NULL)
            goto nomem;
        x->reason = dup_str(enc);
        curl_free(enc);
        if (x->reason == NULL)
            goto nomem;
    }
    *out = x;
    x = NULL;
    rc = GH_OK;
    goto out;
nomem:
    rc = GH_ENOMEM;
    set_error(resp, "out of memory");
out:
    xfer_free(x);
    return rc;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
    struct xfer *x = arg;
    size_t n = size * nmemb;
    size_t need = x->resp.body_len + n + 1;

    if (need > RESPONSE_MAX) {
        x->body_overflow = 1;
        return 0;
    }
    if (need > x->body_cap) {
        size_t cap = x->body_cap ? x->body_cap : 1024;
        char *p;
        while (cap < need)
            cap *= 2;
        p = realloc(x->resp.body, cap);
        if (p == NULL)
            return 0;
        x->resp.body = p;
        x->body_cap = cap;
    }
    memcpy(x->resp.body + x->resp.body_len, data, n);
    x->resp.body_len += n;
    x->resp.body[x->resp.body_len] = '\0';
    return n;
}

static size_t on_header(char *line, size_t size, size_t nmemb, void *arg)
{
    struct xfer *x = arg;

    gh_ratelimit_header(&x->h, line, size * nmemb);
    return size * nmemb;
}

static int add_header(struct curl_slist **list, const char *line)
{
    struct curl_slist *n = curl_slist_append(*list, line);

    if (n == NULL)
        return GH_ENOMEM;
    *list = n;
    return GH_OK;
}

/* Prepares easy for the next attempt of x. */
static int setup_easy(struct xfer *x, CURL *easy)
{
    struct gh_rest *rest = x->rest;
    char url[2048];
    char line[200];
    int rc = GH_ENOMEM;

    if (snprintf(url, sizeof(url), "%s%s", rest->api_base, x->path) >= (int)sizeof(url)) {
        set_error(&x->resp, "invalid request: URL too long");
        return GH_EINVAL;
    }
    curl_slist_free_all(x->headers);
    x->headers = NULL;
    if (!x->no_auth && rest->auth_header != NULL && add_header(&x->headers, rest->auth_header) != GH_OK)
        goto fail;
    if (x->user_auth != NULL && add_header(&x->headers, x->user_auth) != GH_OK)
        goto fail;
    if (x->body != NULL) {
        (void)snprintf(line, sizeof(line), "Content-Type: %s", x->content_type);
        if (add_header(&x->headers, line) != GH_OK)
            goto fail;
    } else if (add_header(&x->headers, "Content-Type:") != GH_OK) {
        goto fail;
    }
    if (x->reason != NULL) {
        /* up to 512 characters, each up to 12 bytes once encoded */
        size_t len = strlen(x->reason) + sizeof("X-Audit-Log-Reason: ");
        char *hdr = malloc(len);
        int ok;
        if (hdr == NULL)
            goto fail;
        (void)snprintf(hdr, len, "X-Audit-Log-Reason: %s", x->reason);
        ok = add_header(&x->headers, hdr) == GH_OK;
        free(hdr);
        if (!ok)
            goto fail;
    }
    if (add_header(&x->headers, "Expect:") != GH_OK)
        goto fail;

    resp_reset(&x->resp);
    x->body_cap = 0;
    x->body_overflow = 0;
    memset(&x->h, 0, sizeof(x->h));
    x->curl_err[0] = '\0';
    x->easy = easy;

    curl_easy_setopt(easy, CURLOPT_URL, url);
    curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, (long)rest->timeout_ms);
    curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS,
                     (long)(rest->timeout_ms < CONNECT_TIMEOUT_MS ? rest->timeout_ms : CONNECT_TIMEOUT_MS));
    curl_easy_setopt(easy, CURLOPT_USERAGENT, rest->user_agent);
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, x->headers);
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(easy, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, x->curl_err);
    curl_easy_setopt(easy, CURLOPT_PRIVATE, x);
    curl_easy_setopt(easy, CURLOPT_ACCEPT_ENCODING, "");
    if (strcmp(x->method, "GET") == 0) {
        curl_easy_setopt(easy, CURLOPT_HTTPGET, 1L);
    } else if (x->body != NULL || strcmp(x->method, "DELETE") != 0) {
        /* POST/PUT/PATCH always carry a length, even when empty */
        curl_easy_setopt(easy, CURLOPT_POSTFIELDS, x->body != NULL ? x->body : "");
        curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(x->body != NULL ? x->body_len : 0));
        curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, x->method);
    } else {
        curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, x->method);
    }
    return GH_OK;
fail:
    set_error(&x->resp, "out of memory");
    return rc;
}

/* Before each attempt: GH_OK (send now), STEP_WAIT (x->not_before set) or an
 * error with resp->error filled. */
static int preflight(struct xfer *x)
{
    struct gh_rest *rest = x->rest;
    char why[200];
    int64_t wait;
    int rc;

    if (!x->no_auth && gh_ratelimit_stopped(rest->rl)) {
        set_error(&x->resp, "Discord rejected the bot token (401): REST calls are stopped until the token is "
                            "fixed and the process restarted");
        return GH_EUNAUTHORIZED;
    }
    if (rest->open_until_ms != 0 && gh_mono_ms() < rest->open_until_ms)
        return breaker_check(rest, x); /* open: refuse with its message */
    wait =
        x->user_auth != NULL ? 0 : gh_ratelimit_acquire(rest->rl, &x->route, gh_now_ms(), why, sizeof(why));
    if (wait > 0) {
        if (x->waited_ms + wait > rest->max_wait_ms) {
            x->resp.retry_after = (double)wait / 1000.0;
            set_error(&x->resp, "rate limited: %s", why);
            return GH_ERATELIMIT;
        }
        x->waited_ms += wait;
        x->not_before_ms = gh_mono_ms() + wait;
        return STEP_WAIT;
    }
    rc = breaker_check(rest, x);
    return rc;
}

/* The "code" and "message" of a Discord error body into resp; for 50035 the
 * first field error too. */
static void parse_error_body(struct gh_rest_resp *resp)
{
    json_object *root = NULL;
    json_object *v = NULL;
    const char *message = NULL;

    if (resp->body == NULL || resp->body_len == 0)
        return;
    root = json_tokener_parse(resp->body);
    if (root == NULL || !json_object_is_type(root, json_type_object))
        goto out;
    if (json_object_object_get_ex(root, "code", &v) && json_object_is_type(v, json_type_int))
        resp->discord_code = json_object_get_int(v);
    if (json_object_object_get_ex(root, "message", &v) && json_object_is_type(v, json_type_string))
        message = json_object_get_string(v);
    if (json_object_object_get_ex(root, "retry_after", &v) &&
        (json_object_is_type(v, json_type_double) || json_object_is_type(v, json_type_int)))
        resp->retry_after = json_object_get_double(v);
    if (message != NULL) {
        char detail[128] = "";
        json_object *errors = NULL;
        /* {"errors":{"content":{"_errors":[{"message":"..."}]}}}: first field only */
        if (json_object_object_get_ex(root, "errors", &errors) &&
            json_object_is_type(errors, json_type_object)) {
            json_object_object_foreach(errors, field, fobj)
            {
                json_object *list = NULL;
                json_object *first;
                json_object *m = NULL;
                if (fobj != NULL && json_object_object_get_ex(fobj, "_errors", &list) &&
                    json_object_is_type(list, json_type_array) && json_object_array_length(list) > 0 &&
                    (first = json_object_array_get_idx(list, 0)) != NULL &&
                    json_object_object_get_ex(first, "message", &m) &&
                    json_object_is_type(m, json_type_string))
                    (void)snprintf(detail, sizeof(detail), " (%s: %s)", field, json_object_get_string(m));
                break;
            }
        }
        if (resp->discord_code != 0)
            set_error(resp, "Discord answered %ld: %s%s (code %d)", resp->status, message, detail,
                      resp->discord_code);
        else
            set_error(resp, "Discord answered %ld: %s%s", resp->status, message, detail);
    }
out:
    json_object_put(root);
}

static int64_t backoff_ms(int retry)
{
    int64_t d = BACKOFF_BASE_MS;

    for (int i = 1; i < retry && d < BACKOFF_MAX_MS; i++)
        d *= 2;
    if (d > BACKOFF_MAX_MS)
        d = BACKOFF_MAX_MS;
    /* equal jitter: half fixed, half random */
    return d / 2 + (int64_t)randombytes_uniform((uint32_t)(d / 2 + 1));
}

/* A failure worth retrying (5xx, transport): STEP_RETRY or final_rc. */
static int retry_or(struct xfer *x, int final_rc)
{
    struct gh_rest *rest = x->rest;

    if (x->retries < rest->max_retries && rest->open_until_ms == 0) {
        int64_t d;
        x->retries++;
        d = backoff_ms(x->retries);
        x->not_before_ms = gh_mono_ms() + d;
        log_call(rest, GH_LOG_WARN, x, final_rc, "Discord call failed (%s); retry %d of %d in %lld ms",
                 x->resp.error, x->retries, rest->max_retries, (long long)d);
        return STEP_RETRY;
    }
    return final_rc;
}

static int on_429(struct xfer *x)
{
    struct gh_rest *rest = x->rest;
    double ra = x->resp.retry_after; /* from the body, when it had one */
    int shared = strcmp(x->h.scope, "shared") == 0;
    int global = x->h.global || strcmp(x->h.scope, "global") == 0;
    int64_t now = gh_now_ms();
    int64_t wait_ms;

    if (ra <= 0 && x->h.has_retry_after)
        ra = x->h.retry_after;
    if (ra <= 0 && x->h.has_reset_after)
        ra = x->h.reset_after;
    if (ra <= 0)
        ra = 1.0;
    if (x->resp.body != NULL && x->resp.body_len > 0) {
        json_object *root = json_tokener_parse(x->resp.body);
        json_object *g = NULL;
        if (root != NULL && json_object_is_type(root, json_type_object) &&
            json_object_object_get_ex(root, "global", &g) && json_object_is_type(g, json_type_boolean) &&
            json_object_get_boolean(g))
            global = 1;
        json_object_put(root);
    }
    x->resp.retry_after = ra;
    if (x->user_auth == NULL)
        gh_ratelimit_on_429(rest->rl, &x->route, &x->h, ra, global, now);
    if (!shared) {
        long long n = gh_ratelimit_count_invalid(rest->rl, now);
        if (n == GH_RL_INVALID_STOP)
            log_call(rest, GH_LOG_CRIT, x, GH_ERATELIMIT,
                     "invalid request budget reached (%lld in 10 minutes): refusing calls", n);
    }
    wait_ms = (int64_t)(ra * 1000.0 + 0.5);
    set_error(&x->resp, "rate limited by Discord (%s%s): retry after %.3f s", global ? "global" : "route",
              shared ? ", shared" : "", ra);
    if (x->retries < rest->max_retries && x->waited_ms + wait_ms <= rest->max_wait_ms) {
        x->retries++;
        x->waited_ms += wait_ms;
        x->not_before_ms = gh_mono_ms() + wait_ms;
        log_call(rest, GH_LOG_WARN, x, GH_ERATELIMIT,
                 "429 from Discord: waiting %lld ms, then retry %d of %d", (long long)wait_ms, x->retries,
                 rest->max_retries);
        return STEP_RETRY;
    }
    return GH_ERATELIMIT;
}

/* After an attempt: GH_OK, an error, or STEP_RETRY (x->not_before set). */
static int finish_attempt(struct xfer *x, CURLcode cc)
{
    struct gh_rest *rest = x->rest;
    long status = 0;

    x->attempts++;
    if (cc != CURLE_OK) {
        x->resp.status = 0;
        if (cc == CURLE_OPERATION_TIMEDOUT) {
            set_error(&x->resp, "request to Discord timed out after %d ms", rest->timeout_ms);
        } else if (x->body_overflow) {
            set_error(&x->resp, "Discord's response exceeded %zu bytes", RESPONSE_MAX);
        } else {
            set_error(&x->resp, "could not reach Discord: %s",
                      x->curl_err[0] != '\0' ? x->curl_err : curl_easy_strerror(cc));
        }
        breaker_failure(rest, x);
        return retry_or(x, cc == CURLE_OPERATION_TIMEDOUT ? GH_ETIMEOUT : GH_EHTTP);
    }
    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
    x->resp.status = status;
    if (x->resp.body == NULL) {
        x->resp.body = calloc(1, 1);
        if (x->resp.body == NULL) {
            set_error(&x->resp, "out of memory");
            return GH_ENOMEM;
        }
    }
    if (x->user_auth == NULL)
        gh_ratelimit_learn(rest->rl, &x->route, &x->h, gh_now_ms());
    if (status >= 500) {
        set_error(&x->resp, "Discord answered %ld", status);
        parse_error_body(&x->resp);
        breaker_failure(rest, x);
        return retry_or(x, GH_EHTTP);
    }
    breaker_success(rest, x);
    if (status >= 200 && status < 300)
        return GH_OK;
    set_error(&x->resp, "Discord answered %ld", status);
    parse_error_body(&x->resp);
    switch (status) {
    case 429:
        return on_429(x);
    case 401:
        gh_ratelimit_count_invalid(rest->rl, gh_now_ms());
        if (!x->no_auth) {
            gh_ratelimit_stop(rest->rl);
            log_call(rest, GH_LOG_CRIT, x, GH_EUNAUTHORIZED,
                     "Discord rejected the bot token (401); every REST call is stopped until it is fixed");
            set_error(&x->resp,
                      "Discord rejected the bot token (401): REST calls are stopped until the token "
                      "is fixed and the process restarted");
        }
        return GH_EUNAUTHORIZED;
    case 403:
        gh_ratelimit_count_invalid(rest->rl, gh_now_ms());
        return GH_EFORBIDDEN;
    case 404:
        return GH_ENOTFOUND;
    default:
        return GH_EDISCORD;
    }
}

static void log_outcome(struct xfer *x, int rc)
{
    enum gh_log_level lvl;

    if (rc == GH_OK)
        return;
    if (rc == GH_EUNAUTHORIZED && x->resp.status == 401 && !x->no_auth)
        return; /* logged CRIT when it happened */
    switch (rc) {
    case GH_ENOTFOUND:
    case GH_EFORBIDDEN:
    case GH_EDISCORD:
    case GH_ERATELIMIT:
        lvl = GH_LOG_WARN;
        break;
    default:
        lvl = GH_LOG_ERROR;
        break;
    }
    log_call(x->rest, lvl, x, rc, "Discord call failed: %s", x->resp.error);
}

/* ---- public ------------------------------------------------------------- */

struct gh_rest *gh_rest_new(const struct gh_rest_opts *opts)
{
    struct gh_rest *rest = NULL;
    const char *token;
    size_t n;

    if (opts == NULL || opts->api_base == NULL || has_ctl(opts->api_base) ||
        (opts->user_agent != NULL && has_ctl(opts->user_agent)) ||
        (opts->token != NULL && has_ctl(opts->token)))
        return NULL;
    if (sodium_init() < 0 || curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return NULL;
    rest = calloc(1, sizeof(*rest));
    if (rest == NULL)
        goto fail_global;
    rest->log = opts->log;
    rest->timeout_ms = opts->timeout_ms > 0 ? opts->timeout_ms : DEFAULT_TIMEOUT_MS;
    rest->max_retries = opts->max_retries >= 0 ? opts->max_retries : DEFAULT_MAX_RETRIES;
    rest->max_wait_ms = opts->max_wait_ms >= 0 ? opts->max_wait_ms : DEFAULT_MAX_WAIT_MS;
    rest->api_base = dup_str(opts->api_base);
    rest->user_agent =
        dup_str(opts->user_agent != NULL ? opts->user_agent
                                         : "DiscordBot (https://github.com/guildhall/guildhall, 0.1.0)");
    if (rest->api_base == NULL || rest->user_agent == NULL)
        goto fail;
    n = strlen(rest->api_base);
    while (n > 0 && rest->api_base[n - 1] == '/')
        rest->api_base[--n] = '\0';
    token = opts->token != NULL ? opts->token : "";
    if (token[0] != '\0') {
        size_t len = strlen(token) + sizeof("Authorization: Bot ");
        rest->auth_header = malloc(len);
        if (rest->auth_header == NULL)
            goto fail;
        (void)snprintf(rest->auth_header, len, "Authorization: Bot %s", token);
    }
    rest->rl = gh_ratelimit_new(opts->redis, token);
    rest->easy = curl_easy_init();
    rest->multi = curl_multi_init();
    if (rest->rl == NULL || rest->easy == NULL || rest->multi == NULL)
        goto fail;
    return rest;
fail:
    gh_rest_free(rest);
    return NULL;
fail_global:
    curl_global_cleanup();
    return NULL;
}

void gh_rest_free(struct gh_rest *rest)
{
    if (rest == NULL)
        return;
    while (rest->xfers != NULL) {
        struct xfer *x = rest->xfers;
        rest->xfers = x->next;
        if (x->running) {
            curl_multi_remove_handle(rest->multi, x->easy);
            curl_easy_cleanup(x->easy);
        }
        xfer_free(x);
    }
    if (rest->multi != NULL)
        curl_multi_cleanup(rest->multi);
    curl_easy_cleanup(rest->easy);
    gh_ratelimit_free(rest->rl);
    if (rest->auth_header != NULL) {
        sodium_memzero(rest->auth_header, strlen(rest->auth_header));
        free(rest->auth_header);
    }
    free(rest->user_agent);
    free(rest->api_base);
    free(rest);
    curl_global_cleanup();
}

int gh_rest_do(struct gh_rest *rest, const struct gh_rest_req *req, struct gh_rest_resp *resp)
{
    struct xfer *x = NULL;
    int rc;

    if (resp == NULL)
        return GH_EINVAL;
    memset(resp, 0, sizeof(*resp));
    if (rest == NULL) {
        set_error(resp, "no REST client");
        return GH_EINVAL;
    }
    rc = xfer_new(rest, req, 0, &x, resp);
    if (rc != GH_OK)
        return rc;
    for (;;) {
        rc = preflight(x);
        if (rc == STEP_WAIT) {
            sleep_ms(x->not_before_ms - gh_mono_ms());
            continue;
        }
        if (rc != GH_OK)
            break;
        curl_easy_reset(rest->easy); /* keeps live connections */
        rc = setup_easy(x, rest->easy);
        if (rc != GH_OK) {
            breaker_release(rest, x);
            break;
        }
        rc = finish_attempt(x, curl_easy_perform(rest->easy));
        if (rc != STEP_RETRY)
            break;
        sleep_ms(x->not_before_ms - gh_mono_ms());
    }
    curl_easy_reset(rest->easy); /* drop pointers into x before it goes */
    log_outcome(x, rc);
    *resp = x->resp; /* the body moves to the caller */
    memset(&x->resp, 0, sizeof(x->resp));
    xfer_free(x);
    return rc;
}

int gh_rest_submit(struct gh_rest *rest, const struct gh_rest_req *req, gh_rest_cb cb, void *arg)
{
    struct gh_rest_resp tmp;
    struct xfer *x = NULL;
    struct xfer **tail;
    int rc;

    if (rest == NULL)
        return GH_EINVAL;
    memset(&tmp, 0, sizeof(tmp));
    rc = xfer_new(rest, req, 1, &x, &tmp);
    if (rc != GH_OK) {
        log_call(rest, GH_LOG_WARN, NULL, rc, "Discord call not submitted: %s", tmp.error);
        return rc;
    }
    x->cb = cb;
    x->cb_arg = arg;
    x->not_before_ms = gh_mono_ms();
    for (tail = &rest->xfers; *tail != NULL; tail = &(*tail)->next)
        ;
    *tail = x;
    return GH_OK;
}

static void unlink_xfer(struct gh_rest *rest, struct xfer *x)
{
    for (struct xfer **pp = &rest->xfers; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == x) {
            *pp = x->next;
            x->next = NULL;
            return;
        }
    }
}

static void complete(struct gh_rest *rest, struct xfer *x, int rc)
{
    unlink_xfer(rest, x);
    log_outcome(x, rc);
    if (x->cb != NULL)
        x->cb(rc, &x->resp, x->cb_arg);
    xfer_free(x);
}

/* Starts every due transfer that is not running. */
static void start_due(struct gh_rest *rest)
{
    struct xfer *next;

    for (struct xfer *x = rest->xfers; x != NULL; x = next) {
        CURL *easy;
        int rc;

        next = x->next;
        if (x->running || gh_mono_ms() < x->not_before_ms)
            continue;
        rc = preflight(x);
        if (rc == STEP_WAIT)
            continue;
        if (rc != GH_OK) {
            complete(rest, x, rc);
            continue;
        }
        easy = curl_easy_init();
        rc = easy == NULL ? GH_ENOMEM : setup_easy(x, easy);
        if (rc == GH_OK && curl_multi_add_handle(rest->multi, easy) != CURLM_OK) {
            set_error(&x->resp, "could not start the transfer");
            rc = GH_ENOMEM;
        }
        if (rc != GH_OK) {
            if (easy == NULL)
                set_error(&x->resp, "out of memory");
            curl_easy_cleanup(easy);
            breaker_release(rest, x);
            complete(rest, x, rc);
            continue;
        }
        x->running = 1;
    }
}

static void collect_done(struct gh_rest *rest)
{
    CURLMsg *msg;
    int left = 0;

    while ((msg = curl_multi_info_read(rest->multi, &left)) != NULL) {
        struct xfer *x = NULL;
        CURL *easy = msg->easy_handle;
        CURLcode cc = msg->data.result;
        int rc;

        if (msg->msg != CURLMSG_DONE)
            continue;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&x);
        curl_multi_remove_handle(rest->multi, easy);
        if (x == NULL) {
            curl_easy_cleanup(easy);
            continue;
        }
        x->running = 0;
        rc = finish_attempt(x, cc);
        curl_easy_cleanup(easy);
        x->easy = NULL;
        if (rc == STEP_RETRY)
            continue;
        complete(rest, x, rc);
    }
}

int gh_rest_poll(struct gh_rest *rest, int timeout_ms)
{
    int64_t deadline;
    int count = 0;

    if (rest == NULL || rest->in_poll)
        return GH_EINVAL;
    rest->in_poll = 1;
    deadline = gh_mono_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    for (;;) {
        int running = 0;
        int64_t now, wait;

        start_due(rest);
        curl_multi_perform(rest->multi, &running);
        collect_done(rest);
        count = 0;
        now = gh_mono_ms();
        wait = deadline - now;
        for (struct xfer *x = rest->xfers; x != NULL; x = x->next) {
            count++;
            if (!x->running && x->not_before_ms - now < wait)
                wait = x->not_before_ms - now;
        }
        if (count == 0 || now >= deadline)
            break;
        if (wait < 0)
            wait = 0;
        curl_multi_poll(rest->multi, NULL, 0, (int)wait, NULL);
    }
    rest->in_poll = 0;
    return count;
}

int gh_rest_route_key(const char *method, const char *path, char *out, size_t size)
{
    struct gh_rl_route route;
    int rc;

    if (out == NULL || size == 0)
        return GH_EINVAL;
    out[0] = '\0';
    rc = gh_ratelimit_route(method, path, &route);
    if (rc != GH_OK)
        return rc;
    if (strlen(route.key) >= size)
        return GH_ETOOBIG;
    memcpy(out, route.key, strlen(route.key) + 1);
    return GH_OK;
}
