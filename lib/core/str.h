/* str.h - string views and capped output buffers. */
#ifndef GH_CORE_STR_H
#define GH_CORE_STR_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* A view: pointer and length, not NUL-terminated, borrowed from its owner. */
struct gh_str {
    const char *p;
    size_t len;
};

#define GH_STR(lit) ((struct gh_str){(lit), sizeof(lit) - 1})

struct gh_str gh_str_from_cstr(const char *s); /* s may be NULL -> empty */
int gh_str_eq(struct gh_str a, struct gh_str b);
int gh_str_eq_cstr(struct gh_str a, const char *b);
int gh_str_starts_with(struct gh_str s, const char *prefix);
/* Parses a decimal unsigned 64-bit number that fills the whole view.
 * Returns GH_OK or GH_EINVAL (empty, non-digit, overflow). */
int gh_str_to_u64(struct gh_str s, uint64_t *out);
/* Same for a NUL-terminated string. */
int gh_cstr_to_u64(const char *s, uint64_t *out);
int gh_cstr_to_i64(const char *s, int64_t *out);

/* A growable buffer with a hard maximum. data is always NUL-terminated
 * (when non-NULL). Appending past max fails with GH_ETOOBIG and leaves the
 * buffer unchanged. */
struct gh_buf {
    char *data;
    size_t len;
    size_t cap;
    size_t max;
};

void gh_buf_init(struct gh_buf *b, size_t max);
void gh_buf_cleanup(struct gh_buf *b); /* accepts an initialised empty buffer */
void gh_buf_reset(struct gh_buf *b);   /* len = 0, keeps memory */
int gh_buf_append(struct gh_buf *b, const void *p, size_t n);
int gh_buf_puts(struct gh_buf *b, const char *s);
int gh_buf_printf(struct gh_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int gh_buf_vprintf(struct gh_buf *b, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
/* Returns data, or "" for an empty buffer; valid until the next change. */
const char *gh_buf_cstr(const struct gh_buf *b);
/* JSON string escaping of n bytes (quotes not added). */
int gh_buf_append_json_escaped(struct gh_buf *b, const char *p, size_t n);

/* snprintf that reports truncation: GH_OK or GH_ETOOBIG. */
int gh_snprintf(char *dst, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
