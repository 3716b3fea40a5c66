/* jschema.c - the JSON Schema subset of settings documents.
 *
 * Two walkers share the helpers below. The checker (struct check) walks a
 * schema once, dispatching every keyword through one table, and stops at the
 * first problem. The validator (struct walk) walks a document along its
 * schema, collecting every error with the JSON pointer of the value; it
 * assumes a checked schema, so gh_jschema_validate checks first. Recursion
 * is bounded: a schema deeper than GH_JSCHEMA_MAX_DEPTH is refused, and a
 * document's depth is measured (stopping at the limit) before the walk, so
 * neither a hostile schema nor a hostile document can exhaust the stack.
 * Costs are bounded too: "pattern" runs under PCRE2 match and depth limits,
 * and "uniqueItems" under a comparison budget; running out of either is a
 * validation error ("could not be checked"), not a hang. */
#include "web/jschema.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "core/err.h"

/* Internal pointer buffer; errors copy at most sizeof(error.path) of it. */
#define PTR_CAP 512
/* Deep comparisons allowed for one "uniqueItems" check. */
#define UNIQUE_BUDGET 1000000L
#define URL_MAX 2048
#define DURATION_MAX (365ULL * 86400ULL)
#define COLOR_MAX 16777215.0L

/* ---- text helpers -------------------------------------------------------- */

/* Ends a truncated NUL-terminated buffer of size bytes with "...", without
 * cutting a UTF-8 sequence in half. */
static void ellipsize(char *dst, size_t size)
{
    size_t cut;

    if (size < 4)
        return;
    cut = size - 4;
    while (cut > 0 && ((unsigned char)dst[cut] & 0xC0) == 0x80)
        cut--;
    memcpy(dst + cut, "...", 4);
}

static void vtext(char *dst, size_t size, const char *fmt, va_list ap) __attribute__((format(printf, 3, 0)));
static void vtext(char *dst, size_t size, const char *fmt, va_list ap)
{
    int n = vsnprintf(dst, size, fmt, ap);

    if (n < 0)
        dst[0] = '\0';
    else if ((size_t)n >= size)
        ellipsize(dst, size);
}

/* A bounded string being assembled (enum lists, type lists). */
struct text {
    char buf[512];
    size_t len;
};

static void text_add(struct text *t, const char *s, size_t n)
{
    size_t room = sizeof t->buf - 1 - t->len;

    if (n > room)
        n = room;
    memcpy(t->buf + t->len, s, n);
    t->len += n;
    t->buf[t->len] = '\0';
}

static void text_puts(struct text *t, const char *s)
{
    text_add(t, s, strlen(s));
}

/* ---- JSON pointers --------------------------------------------------------- */

struct ptr {
    char buf[PTR_CAP];
    size_t len;
    int over; /* a segment did not fit */
};

struct mark {
    size_t len;
    int over;
};

static void ptr_putc(struct ptr *p, char c)
{
    if (p->len + 1 < sizeof p->buf) {
        p->buf[p->len++] = c;
        p->buf[p->len] = '\0';
    } else {
        p->over = 1;
    }
}

/* Appends "/" and seg escaped per RFC 6901 ("~" -> "~0", "/" -> "~1"). */
static struct mark ptr_push(struct ptr *p, const char *seg)
{
    struct mark m = {p->len, p->over};

    ptr_putc(p, '/');
    for (; *seg; seg++) {
        if (*seg == '~' || *seg == '/') {
            ptr_putc(p, '~');
            ptr_putc(p, *seg == '~' ? '0' : '1');
        } else {
            ptr_putc(p, *seg);
        }
    }
    return m;
}

static struct mark ptr_push_index(struct ptr *p, size_t i)
{
    char num[24];

    snprintf(num, sizeof num, "%zu", i); /* 20 digits at most: fits */
    return ptr_push(p, num);
}

static void ptr_pop(struct ptr *p, struct mark m)
{
    p->len = m.len;
    p->over = m.over;
    p->buf[p->len] = '\0';
}

static void ptr_copy(char *dst, size_t size, const struct ptr *p)
{
    if (!p->over && p->len < size) {
        memcpy(dst, p->buf, p->len + 1);
        return;
    }
    memcpy(dst, p->buf, size - 1);
    dst[size - 1] = '\0';
    ellipsize(dst, size);
}

/* ---- JSON values ------------------------------------------------------------ */

static int is_number(json_object *v)
{
    return json_object_is_type(v, json_type_int) ||
           (json_object_is_type(v, json_type_double) && isfinite(json_object_get_double(v)));
}

/* "integer": a JSON integer, or a number without fraction (3.0). */
static int is_integer(json_object *v)
{
    double d;

    if (json_object_is_type(v, json_type_int))
        return 1;
    if (!json_object_is_type(v, json_type_double))
        return 0;
    d = json_object_get_double(v);
    return isfinite(d) && floor(d) == d;
}

/* Exact for every int64, uint64 and double where long double has a 64-bit
 * mantissa (x86-64, aarch64); elsewhere as close as double. */
static long double num_value(json_object *v)
{
    int64_t i;

    if (!json_object_is_type(v, json_type_int))
        return (long double)json_object_get_double(v);
    i = json_object_get_int64(v);
    if (i == INT64_MAX) /* json-c saturates: the value may be a larger uint64 */
        return (long double)json_object_get_uint64(v);
    return (long double)i;
}

static void num_text(json_object *v, char *buf, size_t size)
{
    int64_t i;

    if (!json_object_is_type(v, json_type_int)) {
        snprintf(buf, size, "%.15g", json_object_get_double(v));
        return;
    }
    i = json_object_get_int64(v);
    if (i == INT64_MAX)
        snprintf(buf, size, "%llu", (unsigned long long)json_object_get_uint64(v));
    else
        snprintf(buf, size, "%lld", (long long)i);
}

/* A scalar as a person reads it: strings without quotes. */
static void scalar_text(struct text *t, json_object *v)
{
    char num[40];

    switch (json_object_get_type(v)) {
    case json_type_string:
        text_add(t, json_object_get_string(v), strlen(json_object_get_string(v)));
        break;
    case json_type_int:
    case json_type_double:
        num_text(v, num, sizeof num);
        text_puts(t, num);
        break;
    case json_type_boolean:
        text_puts(t, json_object_get_boolean(v) ? "true" : "false");
        break;
    case json_type_null:
        text_puts(t, "null");
        break;
    default:
        text_puts(t, "(a structure)");
        break;
    }
}

static int is_scalar(json_object *v)
{
    return !json_object_is_type(v, json_type_object) && !json_object_is_type(v, json_type_array);
}

/* Deep equality, numbers by value (1 == 1.0). budget (NULL: unlimited)
 * counts compared nodes: 1 equal, 0 different, -1 budget spent. */
static int json_equal(json_object *a, json_object *b, long *budget)
{
    enum json_type ta = json_object_get_type(a), tb = json_object_get_type(b);

    if (budget && --*budget < 0)
        return -1;
    if ((ta == json_type_int || ta == json_type_double) && (tb == json_type_int || tb == json_type_double))
        return num_value(a) == num_value(b);
    if (ta != tb)
        return 0;
    switch (ta) {
    case json_type_null:
        return 1;
    case json_type_boolean:
        return !json_object_get_boolean(a) == !json_object_get_boolean(b);
    case json_type_string:
        return json_object_get_string_len(a) == json_object_get_string_len(b) &&
               memcmp(json_object_get_string(a), json_object_get_string(b),
                      (size_t)json_object_get_string_len(a)) == 0;
    case json_type_array: {
        size_t n = json_object_array_length(a);
        if (n != json_object_array_length(b))
            return 0;
        for (size_t i = 0; i < n; i++) {
            int r = json_equal(json_object_array_get_idx(a, i), json_object_array_get_idx(b, i), budget);
            if (r != 1)
                return r;
        }
        return 1;
    }
    case json_type_object: {
        if (json_object_object_length(a) != json_object_object_length(b))
            return 0;
        json_object_object_foreach(a, key, av)
        {
            json_object *bv = NULL;
            int r;
            if (!json_object_object_get_ex(b, key, &bv))
                return 0;
            r = json_equal(av, bv, budget);
            if (r != 1)
                return r;
        }
        return 1;
    }
    default:
        return 0;
    }
}

/* Code points in s[0..n) into *count; 0 when not valid UTF-8 (overlong
 * forms, surrogates, beyond U+10FFFF, truncated sequences), else 1. */
static int utf8_count(const unsigned char *s, size_t n, size_t *count)
{
    size_t i = 0, cps = 0;

    while (i < n) {
        unsigned c = s[i];
        size_t len;
        uint32_t cp;

        if (c < 0x80) {
            i++;
            cps++;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF) {
            len = 2;
            cp = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            len = 3;
            cp = c & 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            len = 4;
            cp = c & 0x07;
        } else {
            return 0;
        }
        if (n - i < len)
            return 0;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return 0;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10FFFF ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        i += len;
        cps++;
    }
    *count = cps;
    return 1;
}

/* ---- types ----------------------------------------------------------------- */

static const struct type_name {
    const char *name;
    const char *phrase; /* "must be <phrase>" */
} type_names[] = {
    {"string", "a string"},  {"integer", "an integer"}, {"number", "a number"}, {"boolean", "a boolean"},
    {"object", "an object"}, {"array", "an array"},     {"null", "null"},
};
#define N_TYPES (sizeof type_names / sizeof type_names[0])

static int type_index(const char *name)
{
    for (size_t i = 0; i < N_TYPES; i++)
        if (strcmp(type_names[i].name, name) == 0)
            return (int)i;
    return -1;
}

static int type_matches(const char *name, json_object *v)
{
    switch (type_index(name)) {
    case 0:
        return json_object_is_type(v, json_type_string);
    case 1:
        return is_integer(v);
    case 2:
        return is_number(v);
    case 3:
        return json_object_is_type(v, json_type_boolean);
    case 4:
        return json_object_is_type(v, json_type_object);
    case 5:
        return json_object_is_type(v, json_type_array);
    case 6:
        return v == NULL; /* json-c's null */
    default:
        return 0;
    }
}

/* type is a checked "type" value: a name or an array of names. */
static int type_ok(json_object *type, json_object *v)
{
    if (json_object_is_type(type, json_type_string))
        return type_matches(json_object_get_string(type), v);
    for (size_t i = 0; i < json_object_array_length(type); i++)
        if (type_matches(json_object_get_string(json_object_array_get_idx(type, i)), v))
            return 1;
    return 0;
}

/* "a string", "a string or null", "a string, an integer or null". */
static void type_phrase(struct text *t, json_object *type)
{
    size_t n;

    if (json_object_is_type(type, json_type_string)) {
        text_puts(t, type_names[type_index(json_object_get_string(type))].phrase);
        return;
    }
    n = json_object_array_length(type);
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            text_puts(t, i + 1 == n ? " or " : ", ");
        text_puts(t,
                  type_names[type_index(json_object_get_string(json_object_array_get_idx(type, i)))].phrase);
    }
}

/* ---- formats ----------------------------------------------------------------- */

static const char msg_snowflake[] = "must be a Discord id (snowflake)";

/* Each returns NULL when v is acceptable, else the message. Called for
 * strings and numbers only. */
static const char *fmt_snowflake(json_object *v)
{
    const char *s;
    size_t n;

    if (!json_object_is_type(v, json_type_string))
        return msg_snowflake; /* ids are strings: JavaScript rounds above 2^53 */
    s = json_object_get_string(v);
    n = (size_t)json_object_get_string_len(v);
    if (n < 15 || n > 20 || s[0] == '0')
        return msg_snowflake;
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return msg_snowflake;
    if (n == 20 && memcmp(s, "18446744073709551615", 20) > 0)
        return msg_snowflake; /* >= 2^64 */
    return NULL;
}

static int is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static const char *fmt_color(json_object *v)
{
    static const char msg[] = "must be a color such as #5865f2";
    const char *s;

    if (!json_object_is_type(v, json_type_string))
        return is_integer(v) && num_value(v) >= 0 && num_value(v) <= COLOR_MAX ? NULL : msg;
    s = json_object_get_string(v);
    if (json_object_get_string_len(v) != 7 || s[0] != '#')
        return msg;
    for (int i = 1; i < 7; i++)
        if (!is_hex(s[i]))
            return msg;
    return NULL;
}

/* http(s)://[user@]host[:port][/path?query#fragment], no spaces or controls. */
static const char *fmt_url(json_object *v)
{
    static const char msg[] = "must be a URL starting with http:// or https://";
    const char *s, *auth, *host, *end, *colon = NULL;
    size_t n;

    if (!json_object_is_type(v, json_type_string))
        return msg;
    s = json_object_get_string(v);
    n = (size_t)json_object_get_string_len(v);
    if (n > URL_MAX)
        return "must be a URL of at most 2048 characters";
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] <= 0x20 || s[i] == 0x7F)
            return msg;
    if (strncasecmp(s, "https://", 8) == 0)
        auth = s + 8;
    else if (strncasecmp(s, "http://", 7) == 0)
        auth = s + 7;
    else
        return msg;
    end = auth + strcspn(auth, "/?#");
    host = auth;
    for (const char *p = auth; p < end; p++)
        if (*p == '@')
            host = p + 1;
    if (host < end && *host == '[') { /* IPv6 literal */
        const char *close = memchr(host, ']', (size_t)(end - host));
        if (!close || close == host + 1)
            return msg;
        if (close + 1 < end && close[1] != ':')
            return msg;
        colon = close + 1 < end ? close + 1 : NULL;
    } else {
        colon = memchr(host, ':', (size_t)(end - host));
        if ((colon ? colon : end) == host)
            return msg; /* no host */
    }
    if (colon) {
        size_t digits = (size_t)(end - colon - 1);
        unsigned port = 0;
        if (digits < 1 || digits > 5)
            return msg;
        for (const char *p = colon + 1; p < end; p++) {
            if (*p < '0' || *p > '9')
                return msg;
            port = port * 10 + (unsigned)(*p - '0');
        }
        if (port < 1 || port > 65535)
            return msg;
    }
    return NULL;
}

/* Parses "<digits><unit>..." with units in decreasing order; 0 on success
 * (total may be out of range), -1 when malformed. */
static int parse_duration(const char *s, size_t len, uint64_t *total)
{
    static const struct {
        char unit;
        uint64_t seconds;
    } units[] = {{'w', 604800}, {'d', 86400}, {'h', 3600}, {'m', 60}, {'s', 1}};
    size_t i = 0;
    int last = -1;

    *total = 0;
    if (!s || len == 0)
        return -1;
    while (i < len) {
        uint64_t n = 0;
        size_t digits = 0;
        int u = -1;

        for (; i < len && s[i] >= '0' && s[i] <= '9'; i++, digits++) {
            if (digits >= 9)
                return -1; /* keeps the sum far from overflow */
            n = n * 10 + (uint64_t)(s[i] - '0');
        }
        if (digits == 0 || i >= len)
            return -1;
        for (int k = 0; k < (int)(sizeof units / sizeof units[0]); k++)
            if (units[k].unit == s[i])
                u = k;
        if (u <= last)
            return -1; /* unknown unit, repeated, or out of order */
        last = u;
        i++;
        *total += n * units[u].seconds;
    }
    return 0;
}

int gh_jschema_duration(const char *s, size_t len, uint64_t *seconds)
{
    uint64_t total = 0;

    if (parse_duration(s, len, &total) != 0 || total < 1 || total > DURATION_MAX)
        return GH_EINVAL;
    if (seconds)
        *seconds = total;
    return GH_OK;
}

static const char *fmt_duration(json_object *v)
{
    static const char msg[] = "must be a duration such as 10m, 1h or 7d";
    uint64_t total = 0;

    if (!json_object_is_type(v, json_type_string) ||
        parse_duration(json_object_get_string(v), (size_t)json_object_get_string_len(v), &total) != 0)
        return msg;
    if (total < 1 || total > DURATION_MAX)
        return "must be a duration between 1s and 365d";
    return NULL;
}

static const struct format {
    const char *name;
    int is_ref; /* role/channel/user: also ask the ref hook */
    const char *(*check)(json_object *v);
} formats[] = {
    {"snowflake", 0, fmt_snowflake}, {"role", 1, fmt_snowflake}, {"channel", 1, fmt_snowflake},
    {"user", 1, fmt_snowflake},      {"color", 0, fmt_color},    {"url", 0, fmt_url},
    {"duration", 0, fmt_duration},
};
#define N_FORMATS (sizeof formats / sizeof formats[0])

static const struct format *format_find(const char *name)
{
    for (size_t i = 0; i < N_FORMATS; i++)
        if (strcmp(formats[i].name, name) == 0)
            return &formats[i];
    return NULL;
}

/* ---- patterns ---------------------------------------------------------------- */

/* NULL with a message in err when pat does not compile. Caller frees with
 * pcre2_code_free. */
static pcre2_code *pattern_compile(const char *pat, size_t len, char *err, size_t errsz)
{
    int code = 0;
    PCRE2_SIZE off = 0;
    pcre2_code *re =
        pcre2_compile((PCRE2_SPTR)pat, len, PCRE2_UTF | PCRE2_NEVER_BACKSLASH_C, &code, &off, NULL);
    PCRE2_UCHAR msg[160];

    if (!re && err && errsz) {
        if (pcre2_get_error_message(code, msg, sizeof msg) < 0)
            snprintf((char *)msg, sizeof msg, "error %d", code);
        snprintf(err, errsz, "%s at offset %zu", (const char *)msg, (size_t)off);
    }
    return re;
}

/* ---- the validator ------------------------------------------------------------ */

struct walk {
    struct gh_jschema_result *res;
    gh_jschema_ref_fn ref;
    void *arg;
    struct ptr path;
    pcre2_match_context *mctx; /* created on the first pattern */
    int rc;                    /* GH_OK, or GH_ENOMEM: stop */
};

static void walk_init(struct walk *w, struct gh_jschema_result *res, gh_jschema_ref_fn ref, void *arg)
{
    memset(res, 0, sizeof *res);
    w->res = res;
    w->ref = ref;
    w->arg = arg;
    w->path.buf[0] = '\0';
    w->path.len = 0;
    w->path.over = 0;
    w->mctx = NULL;
    w->rc = GH_OK;
}

static void walk_cleanup(struct walk *w)
{
    pcre2_match_context_free(w->mctx); /* NULL is a no-op */
    w->mctx = NULL;
}

static int stopped(const struct walk *w)
{
    return w->rc != GH_OK || w->res->truncated;
}

static void add_error(struct walk *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add_error(struct walk *w, const char *fmt, ...)
{
    struct gh_jschema_result *r = w->res;
    struct gh_jschema_error *e;
    va_list ap;

    if (r->n_errors >= GH_JSCHEMA_MAX_ERRORS) {
        r->truncated = 1;
        return;
    }
    e = &r->errors[r->n_errors++];
    ptr_copy(e->path, sizeof e->path, &w->path);
    va_start(ap, fmt);
    vtext(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
}

/* Measures v's nesting without going deeper than the limit: one error at
 * the first container beyond it. Returns 1 when too deep. */
static int too_deep(struct walk *w, json_object *v, int depth)
{
    int deep = 0;

    if (!json_object_is_type(v, json_type_object) && !json_object_is_type(v, json_type_array))
        return 0;
    if (depth + 1 > GH_JSCHEMA_MAX_DEPTH) {
        add_error(w, "is nested too deeply (more than %d levels)", GH_JSCHEMA_MAX_DEPTH);
        return 1;
    }
    if (json_object_is_type(v, json_type_array)) {
        for (size_t i = 0; !deep && i < json_object_array_length(v); i++) {
            struct mark m = ptr_push_index(&w->path, i);
            deep = too_deep(w, json_object_array_get_idx(v, i), depth + 1);
            ptr_pop(&w->path, m);
        }
        return deep;
    }
    json_object_object_foreach(v, key, child)
    {
        struct mark m = ptr_push(&w->path, key);
        deep = too_deep(w, child, depth + 1);
        ptr_pop(&w->path, m);
        if (deep)
            break;
    }
    return deep;
}

static void validate_value(struct walk *w, json_object *schema, json_object *v, int depth);

static void check_pattern(struct walk *w, json_object *pattern, const char *s, size_t n)
{
    const char *pat = json_object_get_string(pattern);
    pcre2_code *re = NULL;
    pcre2_match_data *md = NULL;
    int rc;

    re = pattern_compile(pat, (size_t)json_object_get_string_len(pattern), NULL, 0);
    if (!re) { /* checked schemas compile; a failure here is memory */
        w->rc = GH_ENOMEM;
        goto out;
    }
    if (!w->mctx) {
        w->mctx = pcre2_match_context_create(NULL);
        if (!w->mctx) {
            w->rc = GH_ENOMEM;
            goto out;
        }
        pcre2_set_match_limit(w->mctx, GH_JSCHEMA_MATCH_LIMIT);
        pcre2_set_depth_limit(w->mctx, GH_JSCHEMA_DEPTH_LIMIT);
    }
    md = pcre2_match_data_create_from_pattern(re, NULL);
    if (!md) {
        w->rc = GH_ENOMEM;
        goto out;
    }
    /* The subject's UTF-8 was checked by the caller. */
    rc = pcre2_match(re, (PCRE2_SPTR)s, n, 0, PCRE2_NO_UTF_CHECK, md, w->mctx);
    if (rc >= 0)
        goto out;
    if (rc == PCRE2_ERROR_NOMATCH)
        add_error(w, "must match the pattern %s", pat);
    else if (rc == PCRE2_ERROR_NOMEMORY)
        w->rc = GH_ENOMEM;
    else /* match, depth or heap limit: too costly to decide */
        add_error(w, "could not be checked against the pattern %s", pat);
out:
    pcre2_match_data_free(md);
    pcre2_code_free(re);
}

static void check_format(struct walk *w, json_object *schema, json_object *v)
{
    json_object *kv = NULL;
    const struct format *f = NULL;
    const char *msg;
    char hook_msg[sizeof w->res->errors[0].message];

    if (json_object_object_get_ex(schema, "format", &kv))
        f = format_find(json_object_get_string(kv));
    if (!f && json_object_object_get_ex(schema, "snowflake", &kv) && json_object_get_boolean(kv))
        f = &formats[0];
    if (!f)
        return;
    msg = f->check(v);
    if (msg) {
        add_error(w, "%s", msg);
        return;
    }
    if (!f->is_ref || !w->ref)
        return;
    hook_msg[0] = '\0';
    if (w->ref(w->arg, f->name, w->path.buf, json_object_get_string(v), hook_msg, sizeof hook_msg) == 0)
        return;
    hook_msg[sizeof hook_msg - 1] = '\0';
    if (hook_msg[0])
        add_error(w, "%s", hook_msg);
    else
        add_error(w, "is not a %s of this server", f->name);
}

static void validate_string(struct walk *w, json_object *schema, json_object *v, size_t cps)
{
    json_object *kv = NULL;
    int64_t lim;

    if (json_object_object_get_ex(schema, "minLength", &kv) && (lim = json_object_get_int64(kv)) > 0 &&
        cps < (uint64_t)lim)
        add_error(w, "must be at least %lld character%s", (long long)lim, lim == 1 ? "" : "s");
    if (json_object_object_get_ex(schema, "maxLength", &kv) && (lim = json_object_get_int64(kv)) >= 0 &&
        cps > (uint64_t)lim)
        add_error(w, "must be at most %lld character%s", (long long)lim, lim == 1 ? "" : "s");
    if (json_object_object_get_ex(schema, "pattern", &kv))
        check_pattern(w, kv, json_object_get_string(v), (size_t)json_object_get_string_len(v));
    if (!stopped(w))
        check_format(w, schema, v);
}

static void validate_number(struct walk *w, json_object *schema, json_object *v)
{
    static const struct {
        const char *keyword;
        int cmp;           /* the value fails when cmp(value, limit) is this... */
        int or_equal;      /* ...or equal, when set */
        const char *words; /* "must be <words> <limit>" */
    } limits[] = {
        {"minimum", -1, 0, "at least"},
        {"maximum", 1, 0, "at most"},
        {"exclusiveMinimum", -1, 1, "greater than"},
        {"exclusiveMaximum", 1, 1, "less than"},
    };
    long double x;

    if (!is_number(v)) {
        add_error(w, "must be a number");
        return;
    }
    x = num_value(v);
    for (size_t i = 0; i < sizeof limits / sizeof limits[0]; i++) {
        json_object *kv = NULL;
        long double lim;
        int cmp;
        char num[40];

        if (!json_object_object_get_ex(schema, limits[i].keyword, &kv))
            continue;
        lim = num_value(kv);
        cmp = x < lim ? -1 : x > lim;
        if (cmp == limits[i].cmp || (limits[i].or_equal && cmp == 0)) {
            num_text(kv, num, sizeof num);
            add_error(w, "must be %s %s", limits[i].words, num);
        }
    }
    check_format(w, schema, v);
}

static void validate_object(struct walk *w, json_object *schema, json_object *v, int depth)
{
    json_object *props = NULL, *req = NULL, *kv = NULL, *dummy = NULL;
    int allow_extra = 1;

    json_object_object_get_ex(schema, "properties", &props);
    if (json_object_object_get_ex(schema, "additionalProperties", &kv))
        allow_extra = json_object_get_boolean(kv);
    if (json_object_object_get_ex(schema, "required", &req)) {
        for (size_t i = 0; i < json_object_array_length(req) && !stopped(w); i++) {
            const char *name = json_object_get_string(json_object_array_get_idx(req, i));
            if (!json_object_object_get_ex(v, name, &dummy)) {
                struct mark m = ptr_push(&w->path, name);
                add_error(w, "is required");
                ptr_pop(&w->path, m);
            }
        }
    }
    json_object_object_foreach(v, key, child)
    {
        json_object *sub = NULL;
        struct mark m;

        if (stopped(w))
            break;
        m = ptr_push(&w->path, key);
        if (props && json_object_object_get_ex(props, key, &sub))
            validate_value(w, sub, child, depth + 1);
        else if (!allow_extra)
            add_error(w, "is not an allowed property");
        ptr_pop(&w->path, m);
    }
}

static void check_unique(struct walk *w, json_object *v)
{
    long budget = UNIQUE_BUDGET;
    size_t n = json_object_array_length(v);

    for (size_t i = 1; i < n; i++)
        for (size_t j = 0; j < i; j++) {
            int r = json_equal(json_object_array_get_idx(v, i), json_object_array_get_idx(v, j), &budget);
            if (r < 0) {
                add_error(w, "could not be checked for duplicates (too many items)");
                return;
            }
            if (r == 1) {
                add_error(w, "must not contain duplicates");
                return;
            }
        }
}

static void validate_array(struct walk *w, json_object *schema, json_object *v, int depth)
{
    json_object *kv = NULL, *items = NULL;
    size_t n = json_object_array_length(v);
    int64_t lim;

    if (json_object_object_get_ex(schema, "minItems", &kv) && (lim = json_object_get_int64(kv)) > 0 &&
        n < (uint64_t)lim)
        add_error(w, "must have at least %lld item%s", (long long)lim, lim == 1 ? "" : "s");
    if (json_object_object_get_ex(schema, "maxItems", &kv) && (lim = json_object_get_int64(kv)) >= 0 &&
        n > (uint64_t)lim)
        add_error(w, "must have at most %lld item%s", (long long)lim, lim == 1 ? "" : "s");
    if (json_object_object_get_ex(schema, "uniqueItems", &kv) && json_object_get_boolean(kv))
        check_unique(w, v);
    if (!json_object_object_get_ex(schema, "items", &items))
        return;
    for (size_t i = 0; i < n && !stopped(w); i++) {
        struct mark m = ptr_push_index(&w->path, i);
        validate_value(w, items, json_object_array_get_idx(v, i), depth + 1);
        ptr_pop(&w->path, m);
    }
}

static int in_enum(json_object *values, json_object *v)
{
    for (size_t i = 0; i < json_object_array_length(values); i++)
        if (json_equal(json_object_array_get_idx(values, i), v, NULL) == 1)
            return 1;
    return 0;
}

/* schema is checked; v may be NULL (JSON null). After a type, UTF-8, const
 * or enum failure the value's other keywords are not reported: they would
 * only repeat the problem. */
static void validate_value(struct walk *w, json_object *schema, json_object *v, int depth)
{
    json_object *kv = NULL;
    struct text t = {.len = 0};
    size_t cps = 0;

    if (stopped(w))
        return;
    if (depth > GH_JSCHEMA_MAX_DEPTH) { /* unreachable after too_deep(); kept as a guard */
        add_error(w, "is nested too deeply (more than %d levels)", GH_JSCHEMA_MAX_DEPTH);
        return;
    }
    t.buf[0] = '\0';
    if (json_object_object_get_ex(schema, "type", &kv) && !type_ok(kv, v)) {
        type_phrase(&t, kv);
        add_error(w, "must be %s", t.buf);
        return;
    }
    if (json_object_is_type(v, json_type_string) &&
        !utf8_count((const unsigned char *)json_object_get_string(v), (size_t)json_object_get_string_len(v),
                    &cps)) {
        add_error(w, "must be valid UTF-8 text");
        return;
    }
    if (json_object_object_get_ex(schema, "const", &kv) && json_equal(kv, v, NULL) != 1) {
        scalar_text(&t, kv);
        add_error(w, "must be %s", t.buf);
        return;
    }
    if (json_object_object_get_ex(schema, "enum", &kv) && !in_enum(kv, v)) {
        text_puts(&t, "must be one of: ");
        for (size_t i = 0; i < json_object_array_length(kv); i++) {
            if (i > 0)
                text_puts(&t, ", ");
            scalar_text(&t, json_object_array_get_idx(kv, i));
        }
        add_error(w, "%s", t.buf);
        return;
    }
    switch (json_object_get_type(v)) {
    case json_type_string:
        validate_string(w, schema, v, cps);
        break;
    case json_type_int:
    case json_type_double:
        validate_number(w, schema, v);
        break;
    case json_type_object:
        validate_object(w, schema, v, depth);
        break;
    case json_type_array:
        validate_array(w, schema, v, depth);
        break;
    default: /* null, boolean: type, const and enum said everything */
        break;
    }
}

/* ---- the schema checker --------------------------------------------------------- */

struct check {
    struct ptr path;
    char *err;
    size_t errsz;
    int rc; /* the first failure, GH_OK until then */
};

static int fail(struct check *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(struct check *c, const char *fmt, ...)
{
    char msg[256];
    va_list ap;

    if (c->rc != GH_OK)
        return c->rc;
    c->rc = GH_EINVAL;
    if (!c->err || c->errsz == 0)
        return c->rc;
    va_start(ap, fmt);
    vtext(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (snprintf(c->err, c->errsz, "%s%s: %s", c->path.len ? c->path.buf : "(root)",
                 c->path.over ? "..." : "", msg) >= (int)c->errsz)
        ellipsize(c->err, c->errsz);
    return c->rc;
}

static int check_node(struct check *c, json_object *schema, int depth);

typedef int (*kw_fn)(struct check *c, json_object *schema, json_object *v, int depth);

static int kw_type(struct check *c, json_object *schema, json_object *v, int depth)
{
    static const char msg[] = "must be one of string, integer, number, boolean, object, array, null, or a "
                              "non-empty array of them";
    size_t n;

    (void)schema;
    (void)depth;
    if (json_object_is_type(v, json_type_string))
        return type_index(json_object_get_string(v)) >= 0 ? GH_OK : fail(c, "%s", msg);
    if (!json_object_is_type(v, json_type_array) || (n = json_object_array_length(v)) == 0)
        return fail(c, "%s", msg);
    for (size_t i = 0; i < n; i++) {
        json_object *e = json_object_array_get_idx(v, i);
        if (!json_object_is_type(e, json_type_string) || type_index(json_object_get_string(e)) < 0)
            return fail(c, "%s", msg);
        for (size_t j = 0; j < i; j++)
            if (strcmp(json_object_get_string(e), json_object_get_string(json_object_array_get_idx(v, j))) ==
                0)
                return fail(c, "lists %s twice", json_object_get_string(e));
    }
    return GH_OK;
}

static int kw_properties(struct check *c, json_object *schema, json_object *v, int depth)
{
    (void)schema;
    if (!json_object_is_type(v, json_type_object))
        return fail(c, "must be an object of schemas");
    json_object_object_foreach(v, key, sub)
    {
        struct mark m = ptr_push(&c->path, key);
        int rc = check_node(c, sub, depth + 1);
        if (rc != GH_OK)
            return rc;
        ptr_pop(&c->path, m);
    }
    return GH_OK;
}

static int kw_required(struct check *c, json_object *schema, json_object *v, int depth)
{
    json_object *props = NULL, *ap = NULL, *dummy = NULL;
    int closed;

    (void)depth;
    if (!json_object_is_type(v, json_type_array))
        return fail(c, "must be an array of property names");
    json_object_object_get_ex(schema, "properties", &props);
    closed = json_object_object_get_ex(schema, "additionalProperties", &ap) &&
             json_object_is_type(ap, json_type_boolean) && !json_object_get_boolean(ap);
    for (size_t i = 0; i < json_object_array_length(v); i++) {
        json_object *e = json_object_array_get_idx(v, i);
        struct mark m = ptr_push_index(&c->path, i);
        if (!json_object_is_type(e, json_type_string))
            return fail(c, "must be a string");
        if (closed && !json_object_object_get_ex(props, json_object_get_string(e), &dummy))
            return fail(c, "names %s, which is not in properties", json_object_get_string(e));
        ptr_pop(&c->path, m);
    }
    return GH_OK;
}

static int kw_enum(struct check *c, json_object *schema, json_object *v, int depth)
{
    (void)schema;
    (void)depth;
    if (!json_object_is_type(v, json_type_array) || json_object_array_length(v) == 0)
        return fail(c, "must be a non-empty array");
    for (size_t i = 0; i < json_object_array_length(v); i++) {
        struct mark m = ptr_push_index(&c->path, i);
        if (!is_scalar(json_object_array_get_idx(v, i)))
            return fail(c, "must be a string, number, boolean or null");
        ptr_pop(&c->path, m);
    }
    return GH_OK;
}

static int kw_scalar(struct check *c, json_object *schema, json_object *v, int depth)
{
    (void)schema;
    (void)depth;
    return is_scalar(v) ? GH_OK : fail(c, "must be a string, number, boolean or null");
}

static int kw_number(struct check *c, json_object *schema, json_object *v, int depth)
{
    (void)schema;
    (void)depth;
    return is_number(v) ? GH_OK : fail(c, "must be a number");
}

static int kw_count(struct check *c, json_object *schema, json_object *v, int depth)
{
    (void)schema;
    (void)depth;
    if (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 0)
        return fail(c, "must be a non-negative integer");
    return GH_OK;
}

static int kw_integer(struct check *c, json_object *schema, json_object *v, int depth)
{
    (void)schema;
    (void)depth;
    return json_object_is_type(v, json_type_int) ? GH_OK : fail(c, "must be an integer");
}

static int kw_boolean(struct check *c, json_object *schema, json_object *v, int depth)
{
    (void)schema;
    (void)depth;
    return json_object_is_type(v, json_type_boolean) ? GH_OK : fail(c, "must be true or false");
}

static int kw_string(struct check *c, json_object *schema, json_object *v, int depth)
{
    (void)schema;
    (void)depth;
    return json_object_is_type(v, json_type_string) ? GH_OK : fail(c, "must be a string");
}

static int kw_array(struct check *c, json_object *schema, json_object *v, int depth)
{
    (void)schema;
    (void)depth;
    return json_object_is_type(v, json_type_array) ? GH_OK : fail(c, "must be an array");
}

static int kw_any(struct check *c, json_object *schema, json_object *v, int depth)
{
    (void)c;
    (void)schema;
    (void)v;
    (void)depth;
    return GH_OK; /* "default" is validated against its schema in check_node */
}

static int kw_pattern(struct check *c, json_object *schema, json_object *v, int depth)
{
    char why[200];
    pcre2_code *re;

    (void)schema;
    (void)depth;
    if (!json_object_is_type(v, json_type_string))
        return fail(c, "must be a string");
    re = pattern_compile(json_object_get_string(v), (size_t)json_object_get_string_len(v), why, sizeof why);
    if (!re)
        return fail(c, "does not compile: %s", why);
    pcre2_code_free(re);
    return GH_OK;
}

static int kw_items(struct check *c, json_object *schema, json_object *v, int depth)
{
    (void)schema;
    return check_node(c, v, depth + 1);
}

static int kw_format(struct check *c, json_object *schema, json_object *v, int depth)
{
    (void)schema;
    (void)depth;
    if (!json_object_is_type(v, json_type_string) || !format_find(json_object_get_string(v)))
        return fail(c, "must be one of snowflake, role, channel, user, color, url, duration");
    return GH_OK;
}

static int kw_premium(struct check *c, json_object *schema, json_object *v, int depth)
{
    const char *s = json_object_is_type(v, json_type_string) ? json_object_get_string(v) : "";

    (void)schema;
    (void)depth;
    if (strcmp(s, "premium") != 0 && strcmp(s, "pro") != 0)
        return fail(c, "must be \"premium\" or \"pro\"");
    return GH_OK;
}

static const struct keyword {
    const char *name;
    kw_fn check;
} keywords[] = {
    {"type", kw_type},
    {"properties", kw_properties},
    {"required", kw_required},
    {"additionalProperties", kw_boolean},
    {"enum", kw_enum},
    {"const", kw_scalar},
    {"minimum", kw_number},
    {"maximum", kw_number},
    {"exclusiveMinimum", kw_number},
    {"exclusiveMaximum", kw_number},
    {"minLength", kw_count},
    {"maxLength", kw_count},
    {"pattern", kw_pattern},
    {"items", kw_items},
    {"minItems", kw_count},
    {"maxItems", kw_count},
    {"uniqueItems", kw_boolean},
    {"format", kw_format},
    {"snowflake", kw_boolean},
    /* annotations: type-checked, otherwise ignored by validation */
    {"title", kw_string},
    {"description", kw_string},
    {"$comment", kw_string},
    {"default", kw_any},
    {"examples", kw_array},
    {"x-premium", kw_premium},
    {"x-widget", kw_string},
    {"x-order", kw_integer},
    {"readOnly", kw_boolean},
};

static const struct keyword *keyword_find(const char *name)
{
    for (size_t i = 0; i < sizeof keywords / sizeof keywords[0]; i++)
        if (strcmp(keywords[i].name, name) == 0)
            return &keywords[i];
    return NULL;
}

/* A "default" must pass its own schema (the form shows it as the value). */
static int check_default(struct check *c, json_object *schema, json_object *def)
{
    struct gh_jschema_result res;
    struct walk w;
    struct mark m;
    const struct gh_jschema_error *e;

    walk_init(&w, &res, NULL, NULL);
    if (!too_deep(&w, def, 0))
        validate_value(&w, schema, def, 0);
    walk_cleanup(&w);
    if (w.rc != GH_OK) {
        c->rc = w.rc;
        return c->rc;
    }
    if (res.n_errors == 0)
        return GH_OK;
    e = &res.errors[0];
    m = ptr_push(&c->path, "default");
    fail(c, "%s%s%s", e->path, e->path[0] ? " " : "", e->message);
    ptr_pop(&c->path, m);
    return c->rc;
}

static int check_node(struct check *c, json_object *schema, int depth)
{
    json_object *def = NULL;

    if (!json_object_is_type(schema, json_type_object))
        return fail(c, "must be a schema (an object)");
    if (depth > GH_JSCHEMA_MAX_DEPTH)
        return fail(c, "is nested too deeply (more than %d levels)", GH_JSCHEMA_MAX_DEPTH);
    json_object_object_foreach(schema, key, v)
    {
        const struct keyword *kw = keyword_find(key);
        struct mark m = ptr_push(&c->path, key);
        int rc = kw ? kw->check(c, schema, v, depth) : fail(c, "is not a supported keyword");
        if (rc != GH_OK)
            return rc;
        ptr_pop(&c->path, m);
    }
    if (json_object_object_get_ex(schema, "default", &def))
        return check_default(c, schema, def);
    return GH_OK;
}

/* ---- public functions -------------------------------------------------------------- */

int gh_jschema_check_schema(json_object *schema, char *err, size_t errsz)
{
    struct check c;

    memset(&c, 0, sizeof c);
    c.err = err;
    c.errsz = errsz;
    c.rc = GH_OK;
    if (err && errsz)
        err[0] = '\0';
    return check_node(&c, schema, 0);
}

int gh_jschema_validate(json_object *schema, json_object *doc, gh_jschema_ref_fn ref, void *arg,
                        struct gh_jschema_result *res)
{
    struct gh_jschema_result scratch;
    struct walk w;
    char why[160];
    int rc;

    if (!res)
        res = &scratch;
    walk_init(&w, res, ref, arg);
    rc = gh_jschema_check_schema(schema, why, sizeof why);
    if (rc != GH_OK) {
        if (rc == GH_ENOMEM)
            return rc;
        res->n_errors = 1;
        if (snprintf(res->errors[0].message, sizeof res->errors[0].message,
                     "could not be checked: invalid schema (%s)", why) >= (int)sizeof res->errors[0].message)
            ellipsize(res->errors[0].message, sizeof res->errors[0].message);
        return GH_ECONFIG;
    }
    if (!too_deep(&w, doc, 0))
        validate_value(&w, schema, doc, 0);
    walk_cleanup(&w);
    if (w.rc != GH_OK)
        return w.rc;
    return res->n_errors ? GH_EINVAL : GH_OK;
}

static int premium_rank(json_object *schema, const char **name)
{
    json_object *kv = NULL;
    const char *s;

    if (!json_object_object_get_ex(schema, "x-premium", &kv) || !json_object_is_type(kv, json_type_string))
        return 0;
    s = json_object_get_string(kv);
    *name = s;
    return strcmp(s, "pro") == 0 ? 2 : strcmp(s, "premium") == 0 ? 1 : 0;
}

/* v is present in the document (possibly null) and described by schema. */
static int premium_walk(struct walk *w, json_object *schema, json_object *v, int depth)
{
    json_object *def = NULL, *props = NULL, *items = NULL;
    const char *name = NULL;
    int rank, best = 0;

    if (depth > GH_JSCHEMA_MAX_DEPTH || !json_object_is_type(schema, json_type_object))
        return 0;
    rank = premium_rank(schema, &name);
    if (rank > 0 && (!json_object_object_get_ex(schema, "default", &def) || json_equal(def, v, NULL) != 1)) {
        add_error(w, "needs the %s tier", name);
        best = rank;
    }
    if (json_object_is_type(v, json_type_object) && json_object_object_get_ex(schema, "properties", &props) &&
        json_object_is_type(props, json_type_object)) {
        json_object_object_foreach(v, key, child)
        {
            json_object *sub = NULL;
            if (json_object_object_get_ex(props, key, &sub)) {
                struct mark m = ptr_push(&w->path, key);
                rank = premium_walk(w, sub, child, depth + 1);
                best = rank > best ? rank : best;
                ptr_pop(&w->path, m);
            }
        }
    }
    if (json_object_is_type(v, json_type_array) && json_object_object_get_ex(schema, "items", &items)) {
        for (size_t i = 0; i < json_object_array_length(v); i++) {
            struct mark m = ptr_push_index(&w->path, i);
            rank = premium_walk(w, items, json_object_array_get_idx(v, i), depth + 1);
            best = rank > best ? rank : best;
            ptr_pop(&w->path, m);
        }
    }
    return best;
}

int gh_jschema_premium_needed(json_object *schema, json_object *doc, struct gh_jschema_result *res)
{
    struct gh_jschema_result scratch;
    struct walk w;
    int rank;

    walk_init(&w, res ? res : &scratch, NULL, NULL);
    rank = premium_walk(&w, schema, doc, 0);
    walk_cleanup(&w);
    return rank;
}

int gh_jschema_apply_defaults(json_object *schema, json_object *doc)
{
    json_object *props = NULL, *add = NULL, *dummy = NULL;
    const char *failed_at = NULL;
    int rc = GH_ENOMEM;

    if (!json_object_is_type(doc, json_type_object))
        return GH_EINVAL;
    if (!json_object_is_type(schema, json_type_object) ||
        !json_object_object_get_ex(schema, "properties", &props) ||
        !json_object_is_type(props, json_type_object))
        return GH_OK;
    /* Copy every missing default first, so that running out of memory
     * leaves doc as it was. */
    add = json_object_new_object();
    if (!add)
        goto out;
    json_object_object_foreach(props, key, sub)
    {
        json_object *def = NULL, *copy = NULL;

        if (json_object_object_get_ex(doc, key, &dummy) || !json_object_is_type(sub, json_type_object) ||
            !json_object_object_get_ex(sub, "default", &def))
            continue;
        if (def && json_object_deep_copy(def, &copy, NULL) != 0)
            goto out;
        if (json_object_object_add(add, key, copy) != 0) {
            json_object_put(copy);
            goto out;
        }
    }
    json_object_object_foreach(add, akey, aval)
    {
        if (json_object_object_add(doc, akey, json_object_get(aval)) != 0) {
            json_object_put(aval);
            failed_at = akey;
            break;
        }
    }
    if (failed_at) { /* take back what was added before the failure */
        json_object_object_foreach(add, bkey, bval)
        {
            (void)bval;
            if (strcmp(bkey, failed_at) == 0)
                break;
            json_object_object_del(doc, bkey);
        }
        goto out;
    }
    rc = GH_OK;
out:
    json_object_put(add);
    return rc;
}
