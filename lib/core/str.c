/* str.c - string views and capped output buffers.
 *
 * A gh_buf grows by doubling, never past max + 1 bytes (the +1 is the NUL
 * that keeps data a C string). An append that would pass max fails with
 * GH_ETOOBIG and leaves the buffer exactly as it was (curl's dynbuf). */
#include "core/str.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"

#define BUF_MIN_CAP 64

struct gh_str gh_str_from_cstr(const char *s)
{
    struct gh_str v = {"", 0};

    if (s) {
        v.p = s;
        v.len = strlen(s);
    }
    return v;
}

int gh_str_eq(struct gh_str a, struct gh_str b)
{
    if (a.len != b.len)
        return 0;
    return a.len == 0 || memcmp(a.p, b.p, a.len) == 0;
}

int gh_str_eq_cstr(struct gh_str a, const char *b)
{
    return gh_str_eq(a, gh_str_from_cstr(b));
}

int gh_str_starts_with(struct gh_str s, const char *prefix)
{
    size_t n = prefix ? strlen(prefix) : 0;

    if (n > s.len)
        return 0;
    return n == 0 || memcmp(s.p, prefix, n) == 0;
}

int gh_str_to_u64(struct gh_str s, uint64_t *out)
{
    uint64_t v = 0;
    size_t i;

    if (!s.p || s.len == 0)
        return GH_EINVAL;
    for (i = 0; i < s.len; i++) {
        unsigned d;

        if (s.p[i] < '0' || s.p[i] > '9')
            return GH_EINVAL;
        d = (unsigned)(s.p[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return GH_EINVAL;
        v = v * 10 + d;
    }
    if (out)
        *out = v;
    return GH_OK;
}

int gh_cstr_to_u64(const char *s, uint64_t *out)
{
    return gh_str_to_u64(gh_str_from_cstr(s), out);
}

int gh_cstr_to_i64(const char *s, int64_t *out)
{
    uint64_t mag;
    int neg = 0;

    if (!s)
        return GH_EINVAL;
    if (*s == '-') {
        neg = 1;
        s++;
    }
    if (gh_cstr_to_u64(s, &mag) != GH_OK)
        return GH_EINVAL;
    if (neg) {
        if (mag > (uint64_t)INT64_MAX + 1)
            return GH_EINVAL;
        if (out)
            *out = mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)mag;
    } else {
        if (mag > (uint64_t)INT64_MAX)
            return GH_EINVAL;
        if (out)
            *out = (int64_t)mag;
    }
    return GH_OK;
}

void gh_buf_init(struct gh_buf *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max;
}

void gh_buf_cleanup(struct gh_buf *b)
{
    if (!b)
        return;
    free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void gh_buf_reset(struct gh_buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

/* Makes room for n more bytes plus the NUL; GH_ETOOBIG past max. */
static int buf_reserve(struct gh_buf *b, size_t n)
{
    size_t need, cap;
    char *p;

    if (n > b->max || b->len > b->max - n)
        return GH_ETOOBIG;
    need = b->len + n + 1;
    if (need <= b->cap)
        return GH_OK;
    cap = b->cap ? b->cap : BUF_MIN_CAP;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? SIZE_MAX : cap * 2;
    if (cap > b->max + 1)
        cap = b->max + 1;
    p = realloc(b->data, cap);
    if (!p)
        return GH_ENOMEM;
    b->data = p;
    b->cap = cap;
    return GH_OK;
}

int gh_buf_append(struct gh_buf *b, const void *p, size_t n)
{
    int rc = buf_reserve(b, n);

    if (rc != GH_OK)
        return rc;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return GH_OK;
}

int gh_buf_puts(struct gh_buf *b, const char *s)
{
    return gh_buf_append(b, s ? s : "", s ? strlen(s) : 0);
}

int gh_buf_vprintf(struct gh_buf *b, const char *fmt, va_list ap)
{
    va_list cp;
    size_t room;
    char *dst;
    int n, rc;

    /* First try into the space already there; most calls fit. */
    dst = b->data ? b->data + b->len : NULL;
    room = dst ? b->cap - b->len : 0;
    va_copy(cp, ap);
    n = vsnprintf(dst, room, fmt, cp);
    va_end(cp);
    if (n < 0) {
        if (b->data)
            b->data[b->len] = '\0';
        return GH_EINVAL;
    }
    if ((size_t)n < room) {
        if (b->len + (size_t)n > b->max) {
            b->data[b->len] = '\0';
            return GH_ETOOBIG;
        }
        b->len += (size_t)n;
        return GH_OK;
    }
    if (b->data)
        b->data[b->len] = '\0'; /* undo the partial write */
    rc = buf_reserve(b, (size_t)n);
    if (rc != GH_OK)
        return rc;
    va_copy(cp, ap);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, cp);
    va_end(cp);
    b->len += (size_t)n;
    return GH_OK;
}

int gh_buf_printf(struct gh_buf *b, const char *fmt, ...)
{
    va_list ap;
    int rc;

    va_start(ap, fmt);
    rc = gh_buf_vprintf(b, fmt, ap);
    va_end(ap);
    return rc;
}

const char *gh_buf_cstr(const struct gh_buf *b)
{
    return b->data && b->len ? b->data : "";
}

int gh_buf_append_json_escaped(struct gh_buf *b, const char *p, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t old = b->len, i, run = 0;
    int rc = GH_OK;

    /* Copies runs of plain bytes in one append; UTF-8 passes through. */
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        char esc[6];
        size_t elen;

        if (c >= 0x20 && c != '"' && c != '\\') {
            run++;
            continue;
        }
        if (run) {
            rc = gh_buf_append(b, p + i - run, run);
            if (rc != GH_OK)
                goto out;
            run = 0;
        }
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            elen = 2;
        } else {
            esc[0] = '\\';
            esc[1] = 'u';
            esc[2] = '0';
            esc[3] = '0';
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            elen = 6;
        }
        rc = gh_buf_append(b, esc, elen);
        if (rc != GH_OK)
            goto out;
    }
    if (run)
        rc = gh_buf_append(b, p + n - run, run);
out:
    if (rc != GH_OK) {
        b->len = old; /* all or nothing */
        if (b->data)
            b->data[old] = '\0';
    }
    return rc;
}

int gh_snprintf(char *dst, size_t size, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (!dst || size == 0)
        return GH_ETOOBIG;
    va_start(ap, fmt);
    n = vsnprintf(dst, size, fmt, ap);
    va_end(ap);
    if (n < 0) {
        dst[0] = '\0';
        return GH_EINVAL;
    }
    return (size_t)n >= size ? GH_ETOOBIG : GH_OK;
}
