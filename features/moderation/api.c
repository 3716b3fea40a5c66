/* api.c - the moderation feature's dashboard routes: the cases of a guild
 * with filters and paging, one case, editing its reason, voiding it.
 *
 * Every route needs guild access (GH_API_GUILD): the server's
 * administrators and members granted access moderate from the dashboard;
 * the staff tiers of the settings apply to the Discord commands. A case is
 * always looked up by (guild, number), with the guild from the URL that
 * passed the access check, so a case of another guild is simply not found.
 * Reads use the read rate limit, edits the write limit. Edits go through the
 * store, which writes the audit_log row (moderation.case.reason /
 * moderation.case.void) in the same transaction. docs/features/moderation.md
 * documents the routes. */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <json-c/json.h>

#include "api/api.h"
/* gh_api_query: the query-string reader of the platform (not yet in api.h). */
#include "core/ctx.h"
#include "core/err.h"
#include "core/json.h"
#include "core/log.h"
#include "core/str.h"
#include "features/moderation/moderation.h"

#define LIST_LIMIT_DEFAULT 25
#define LIST_LIMIT_MAX 100
#define TEXT_MAX 100 /* characters of the free-text filter */
#define DAY_MS 86400000LL

/* Code points of a UTF-8 string; -1 when it is not valid UTF-8 or holds a
 * control character other than newline and tab. */
static long utf8_chars(const char *s)
{
    long n = 0;
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        int extra;
        if (*p < 0x80) {
            if ((*p < 0x20 && *p != '\n' && *p != '\t') || *p == 0x7f)
                return -1;
            extra = 0;
        } else if ((*p & 0xe0) == 0xc0 && *p >= 0xc2) {
            extra = 1;
        } else if ((*p & 0xf0) == 0xe0) {
            extra = 2;
        } else if ((*p & 0xf8) == 0xf0 && *p <= 0xf4) {
            extra = 3;
        } else {
            return -1;
        }
        p++;
        for (int i = 0; i < extra; i++, p++)
            if ((*p & 0xc0) != 0x80)
                return -1;
        n++;
    }
    return n;
}

/* "2026-05-01" (the whole day: its start, or with end_of_day its last
 * millisecond) or "2026-05-01T10:30[:00[.000]]Z" or milliseconds since the
 * epoch. GH_OK or GH_EINVAL. */
static int parse_time(const char *s, int end_of_day, int64_t *out)
{
    struct tm tm;
    int y = 0;
    int mo = 0;
    int d = 0;
    int hh = 0;
    int mi = 0;
    int ss = 0;
    int ms = 0;
    int used = 0;
    int64_t v = 0;

    if (gh_cstr_to_i64(s, &v) == GH_OK) {
        if (v <= 0)
            return GH_EINVAL;
        *out = v;
        return GH_OK;
    }
    if (sscanf(s, "%4d-%2d-%2d%n", &y, &mo, &d, &used) != 3 || used != 10)
        return GH_EINVAL;
    if (s[10] == '\0') {
        /* a date alone */
    } else if (s[10] == 'T') {
        const char *t = s + 11;
        int n = 0;
        if (sscanf(t, "%2d:%2d%n", &hh, &mi, &n) != 2 || n != 5)
            return GH_EINVAL;
        t += n;
        if (*t == ':') {
            if (sscanf(t, ":%2d%n", &ss, &n) != 1 || n != 3)
                return GH_EINVAL;
            t += n;
            if (*t == '.') {
                if (sscanf(t, ".%3d%n", &ms, &n) != 1 || n != 4)
                    return GH_EINVAL;
                t += n;
            }
        }
        if (strcmp(t, "Z") != 0)
            return GH_EINVAL;
        end_of_day = 0;
    } else {
        return GH_EINVAL;
    }
    if (y < 2015 || y > 9999 || mo < 1 || mo > 12 || d < 1 || d > 31 || hh > 23 || mi > 59 || ss > 59)
        return GH_EINVAL;
    memset(&tm, 0, sizeof(tm));
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = hh;
    tm.tm_min = mi;
    tm.tm_sec = ss;
    time_t t = timegm(&tm);
    if (t == (time_t)-1)
        return GH_EINVAL;
    /* timegm normalises 2026-02-31 to March: refuse such dates */
    struct tm back;
    if (gmtime_r(&t, &back) == NULL || back.tm_mday != d || back.tm_mon != mo - 1)
        return GH_EINVAL;
    *out = (int64_t)t * 1000 + ms + (end_of_day ? DAY_MS - 1 : 0);
    return GH_OK;
}

static int parse_status(const char *s)
{
    static const enum gh_mod_status all[] = {GH_MOD_PENDING, GH_MOD_ACTIVE, GH_MOD_INACTIVE, GH_MOD_VOID,
                                             GH_MOD_FAILED};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        if (strcasecmp(s, gh_mod_status_name(all[i])) == 0)
            return (int)all[i];
    return -1;
}

/* A query parameter that is present and not empty, into out; 1 or 0. */
static int qparam(const struct gh_api_call *c, const char *name, char *out, size_t n)
{
    return gh_api_query(c->req, name, out, n) && out[0] != '\0';
}

/* A snowflake query parameter (0 when absent); GH_EINVAL after answering 400. */
static int q_snowflake(struct gh_api_call *c, const char *name, uint64_t *out)
{
    char v[32];
    char path[32];
    *out = 0;
    if (!qparam(c, name, v, sizeof(v)))
        return GH_OK;
    if (gh_cstr_to_u64(v, out) != GH_OK || *out == 0) {
        (void)snprintf(path, sizeof(path), "/%s", name);
        gh_api_field_error(c, path, "must be a Discord user id");
        return GH_EINVAL;
    }
    return GH_OK;
}

/* The filters of GET .../cases from the query string; GH_EINVAL after
 * answering 400 naming the field. text points into textbuf. */
static int parse_filter(struct gh_api_call *c, struct gh_mod_filter *f, char *textbuf, size_t textlen)
{
    char v[64];
    int64_t n = 0;

    memset(f, 0, sizeof(*f));
    f->type = -1;
    f->status = -1;
    f->limit = LIST_LIMIT_DEFAULT;
    if (q_snowflake(c, "user", &f->target_id) != GH_OK ||
        q_snowflake(c, "moderator", &f->moderator_id) != GH_OK)
        return GH_EINVAL;
    if (qparam(c, "type", v, sizeof(v)) && (f->type = gh_mod_type_parse(v)) < 0) {
        gh_api_field_error(c, "/type", "must be a case type such as WARN, TIMEOUT, KICK, BAN or NOTE");
        return GH_EINVAL;
    }
    if (qparam(c, "status", v, sizeof(v)) && (f->status = parse_status(v)) < 0) {
        gh_api_field_error(c, "/status", "must be pending, active, inactive, void or failed");
        return GH_EINVAL;
    }
    if (qparam(c, "from", v, sizeof(v)) && parse_time(v, 0, &f->from_ms) != GH_OK) {
        gh_api_field_error(c, "/from", "must be a date (2026-05-01) or an ISO 8601 time in UTC");
        return GH_EINVAL;
    }
    if (qparam(c, "to", v, sizeof(v)) && parse_time(v, 1, &f->to_ms) != GH_OK) {
        gh_api_field_error(c, "/to", "must be a date (2026-05-01) or an ISO 8601 time in UTC");
        return GH_EINVAL;
    }
    if (f->from_ms && f->to_ms && f->from_ms > f->to_ms) {
        gh_api_field_error(c, "/to", "must not be before from");
        return GH_EINVAL;
    }
    /* read one byte more than allowed so an overlong text is noticed */
    if (gh_api_query(c->req, "q", textbuf, textlen) && textbuf[0] != '\0') {
        long chars = utf8_chars(textbuf);
        if (chars < 0 || chars > TEXT_MAX || strlen(textbuf) + 1 >= textlen) {
            gh_api_field_error(c, "/q", "must be text of at most 100 characters");
            return GH_EINVAL;
        }
        f->text = textbuf;
    }
    if (qparam(c, "before", v, sizeof(v)) && (gh_cstr_to_i64(v, &n) != GH_OK || n < 1)) {
        gh_api_field_error(c, "/before", "must be a case number");
        return GH_EINVAL;
    }
    f->before_number = n;
    if (qparam(c, "limit", v, sizeof(v))) {
        if (gh_cstr_to_i64(v, &n) != GH_OK || n < 1 || n > LIST_LIMIT_MAX) {
            gh_api_field_error(c, "/limit", "must be between 1 and 100");
            return GH_EINVAL;
        }
        f->limit = (int)n;
    }
    return GH_OK;
}

static void mod_cases_list(struct gh_api_call *c)
{
    struct gh_mod_filter f;
    char text[TEXT_MAX * 4 + 2];
    json_object *cases = NULL;
    json_object *more = NULL;
    int64_t total = 0;
    int64_t more_total = 0;
    int64_t next = 0;
    int rc;

    if (parse_filter(c, &f, text, sizeof(text)) != GH_OK)
        return;
    rc = gh_mod_case_list(c->ctx, c->guild_id, &f, &cases, &total);
    if (rc != GH_OK || cases == NULL) {
        json_object_put(cases);
        gh_api_fail(c, rc == GH_OK ? GH_EPG : rc, "listing the cases");
        return;
    }
    /* A full page: is there anything older? One row answers it exactly. */
    size_t n = json_object_array_length(cases);
    if (n > 0 && n == (size_t)f.limit) {
        int64_t last = 0;
        (void)gh_json_get_int(json_object_array_get_idx(cases, n - 1), "number", &last);
        struct gh_mod_filter probe = f;
        probe.before_number = last;
        probe.limit = 1;
        if (last > 1 && gh_mod_case_list(c->ctx, c->guild_id, &probe, &more, &more_total) == GH_OK &&
            json_object_array_length(more) > 0)
            next = last;
        json_object_put(more);
    }
    json_object *out = json_object_new_object();
    json_object_object_add(out, "cases", cases);
    json_object_object_add(out, "total", json_object_new_int64(total));
    json_object_object_add(out, "next_before", next > 0 ? json_object_new_int64(next) : NULL);
    gh_api_reply(c, 200, out);
}

/* The {number} of the path; GH_EINVAL after answering (400 or 404). */
static int case_number(struct gh_api_call *c, int64_t *out)
{
    const char *s = gh_api_param(c, "number");
    if (s == NULL || gh_cstr_to_i64(s, out) != GH_OK || *out < 1) {
        gh_api_field_error(c, "/number", "must be a case number (1, 2, ...)");
        return GH_EINVAL;
    }
    return GH_OK;
}

static void not_found(struct gh_api_call *c, int64_t number)
{
    gh_api_error(c, 404, "not_found", "This server has no case #%lld.", (long long)number);
}

/* Answers the case as it is now (after an edit: status 200). */
static void answer_case(struct gh_api_call *c, int64_t number)
{
    struct gh_mod_case k;
    memset(&k, 0, sizeof(k));
    int rc = gh_mod_case_get(c->ctx, c->guild_id, number, &k);
    if (rc == GH_ENOTFOUND) {
        not_found(c, number);
    } else if (rc != GH_OK) {
        gh_api_fail(c, rc, "reading the case");
    } else {
        json_object *o = gh_mod_case_json(&k);
        if (o == NULL)
            gh_api_fail(c, GH_ENOMEM, "reading the case");
        else
            gh_api_reply(c, 200, o);
    }
    gh_mod_case_cleanup(&k);
}

static void mod_case_get(struct gh_api_call *c)
{
    int64_t number = 0;
    if (case_number(c, &number) != GH_OK)
        return;
    answer_case(c, number);
}

/* The body's "reason": 1..GH_MOD_REASON_MAX characters of text; NULL after
 * answering 400. */
static const char *body_reason(struct gh_api_call *c, const char *what)
{
    json_object *v = NULL;
    char msg[128];
    if (c->body == NULL || !json_object_object_get_ex(c->body, "reason", &v) ||
        !json_object_is_type(v, json_type_string)) {
        (void)snprintf(msg, sizeof(msg), "enter %s", what);
        gh_api_field_error(c, "/reason", msg);
        return NULL;
    }
    const char *r = json_object_get_string(v);
    long chars = utf8_chars(r);
    size_t lead = strspn(r, " \t\n");
    if (chars < 0) {
        gh_api_field_error(c, "/reason", "must be plain text (no control characters)");
        return NULL;
    }
    if (r[lead] == '\0') {
        (void)snprintf(msg, sizeof(msg), "enter %s", what);
        gh_api_field_error(c, "/reason", msg);
        return NULL;
    }
    if (chars > GH_MOD_REASON_MAX) {
        (void)snprintf(msg, sizeof(msg), "must be at most %d characters (it has %ld)", GH_MOD_REASON_MAX,
                       chars);
        gh_api_field_error(c, "/reason", msg);
        return NULL;
    }
    return r;
}

static void mod_case_reason(struct gh_api_call *c)
{
    int64_t number = 0;
    const char *reason;
    int rc;

    if (case_number(c, &number) != GH_OK || (reason = body_reason(c, "the new reason")) == NULL)
        return;
    rc = gh_mod_case_set_reason(c->ctx, c->guild_id, number, reason, c->user_id);
    if (rc == GH_ENOTFOUND) {
        not_found(c, number);
        return;
    }
    if (rc == GH_EINVAL) {
        gh_api_field_error(c, "/reason", "must be at most 512 characters of text");
        return;
    }
    if (rc == GH_ECONFLICT) {
        gh_api_error(c, 409, "conflict", "Case #%lld is void; its reason can no longer be changed.",
                     (long long)number);
        return;
    }
    if (rc != GH_OK) {
        gh_api_fail(c, rc, "changing the reason");
        return;
    }
    GH_INFO(&c->ctx->log, "moderation: case %lld reason edited by %llu", (long long)number,
            (unsigned long long)c->user_id);
    answer_case(c, number);
}

static void mod_case_void(struct gh_api_call *c)
{
    int64_t number = 0;
    const char *why;
    int rc;

    if (case_number(c, &number) != GH_OK || (why = body_reason(c, "why the case is void")) == NULL)
        return;
    rc = gh_mod_case_void(c->ctx, c->guild_id, number, why, c->user_id);
    if (rc == GH_ENOTFOUND) {
        not_found(c, number);
        return;
    }
    if (rc == GH_ECONFLICT) {
        gh_api_error(c, 409, "conflict", "Case #%lld is already void.", (long long)number);
        return;
    }
    if (rc == GH_EINVAL) {
        gh_api_field_error(c, "/reason", "must be at most 512 characters of text");
        return;
    }
    if (rc != GH_OK) {
        gh_api_fail(c, rc, "voiding the case");
        return;
    }
    GH_INFO(&c->ctx->log, "moderation: case %lld voided by %llu", (long long)number,
            (unsigned long long)c->user_id);
    answer_case(c, number);
}

const struct gh_api_route gh_mod_routes[GH_MOD_N_ROUTES] = {
    {"GET", "/guilds/{id}/moderation/cases", GH_API_GUILD, 0, GH_RL_READ, mod_cases_list,
     "a server's moderation cases"},
    {"GET", "/guilds/{id}/moderation/cases/{number}", GH_API_GUILD, 0, GH_RL_READ, mod_case_get,
     "one moderation case"},
    {"PUT", "/guilds/{id}/moderation/cases/{number}/reason", GH_API_GUILD, 0, GH_RL_WRITE, mod_case_reason,
     "edit a case's reason"},
    {"POST", "/guilds/{id}/moderation/cases/{number}/void", GH_API_GUILD, 0, GH_RL_WRITE, mod_case_void,
     "void a case"},
};
