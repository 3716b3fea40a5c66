/* log.c - JSON-lines logger with redaction and size-based rotation.
 *
 * A line is built in a capped buffer and written with one write(2) on an
 * O_APPEND descriptor, so lines from many processes sharing a file never
 * interleave. Before each write the file's real size is read with fstat
 * (other processes append too); when the line would pass max_bytes the
 * writer takes flock on the file, checks that nobody rotated it meanwhile,
 * renames path.N-1 -> path.N ... path -> path.1 (path.N, the oldest, is
 * replaced) and opens a fresh path. A process that finds path already
 * rotated by someone else just reopens it. With several writers a file can
 * pass max_bytes by about one line per concurrent writer (fstat and write
 * are not one step); no line is lost or split.
 *
 * Redaction runs on every message and on every string of the extra fields,
 * in one pass: at each byte it looks for (1) a registered secret, (2) the
 * userinfo of a URL ("scheme://user:PASSWORD@"), (3) at a word start, a
 * key-like word followed by = or : and a value, or "Bot "/"Bearer " and a
 * token. Plain text costs two table look-ups per byte. */
#include "core/log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "core/err.h"
#include "core/json.h"
#include "core/str.h"
#include "core/timeutil.h"

#define MSG_MAX 8192         /* bytes of message kept in a line */
#define FMT_MAX 65536        /* bytes of formatted text the redactor sees */
#define EXTRA_TEXT_MAX 32768 /* longer extra_json is not parsed */
#define EXTRA_DEPTH 16
#define LINE_MAX_BYTES ((size_t)256 * 1024)
#define URL_USERINFO_MAX 512

static const char TRUNC_MARK[] = "\xe2\x80\xa6[truncated]"; /* U+2026 */
static const char REDACTED[] = "[redacted]";

static const char *const level_names[] = {"debug", "info", "warn", "error", "crit"};

/* Words after which a value is redacted; matched case-insensitively at a
 * word start ('_' and '-' end a word, so "client_secret" and "x-api-key"
 * match too). */
static const char *const secret_words[] = {"authorization", "password", "api_key", "apikey",
                                           "passwd",        "secret",   "token",   "key"};

/* Fields of the line itself: extra fields with these names get an "x_" prefix. */
static const char *const reserved_fields[] = {"time", "level", "service", "component", "corr", "guild",
                                              "user", "msg",   "errno",   "err",       "extra"};

/* ---- character classes (ASCII only, no locale) ---------------------------- */

static int is_alnum(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int is_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

static int is_quote(unsigned char c)
{
    return c == '"' || c == '\'';
}

static unsigned char lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
}

static int prefix_ci(const char *p, size_t n, const char *word)
{
    size_t i;

    for (i = 0; word[i]; i++)
        if (i >= n || lower((unsigned char)p[i]) != (unsigned char)word[i])
            return 0;
    return 1;
}

/* ---- redaction ------------------------------------------------------------ */

/* Output that counts what it would need, writing only what fits. */
struct rout {
    char *p;
    size_t size; /* including the NUL */
    size_t len;  /* needed so far */
};

static void rput(struct rout *o, const char *s, size_t n)
{
    if (o->len < o->size - 1) {
        size_t room = o->size - 1 - o->len;

        memcpy(o->p + o->len, s, n < room ? n : room);
    }
    o->len += n;
}

/* End of a value: whitespace, a quote (also an escaped one), comma, &, }. */
static size_t value_end(const char *in, size_t n, size_t i)
{
    while (i < n) {
        unsigned char c = (unsigned char)in[i];

        if (is_space(c) || is_quote(c) || c == ',' || c == '&' || c == '}')
            break;
        if (c == '\\' && i + 1 < n && is_quote((unsigned char)in[i + 1]))
            break;
        i++;
    }
    return i;
}

/* End of a quoted value: the closing quote q (also escaped, \"), so that
 * "password": "two words" is redacted whole. An unclosed quote runs to the
 * end: better too much redacted than a leak. */
static size_t quoted_end(const char *in, size_t n, size_t i, char q)
{
    while (i < n && in[i] != q && !(in[i] == '\\' && i + 1 < n && in[i + 1] == q))
        i++;
    return i;
}

/* "Bot xyz" in prose ("Bot started") is not a token: a token has a digit or
 * an inner dot, or is long. */
static int looks_like_token(const char *v, size_t n)
{
    size_t i;

    if (n >= 20)
        return 1;
    for (i = 0; i < n; i++) {
        if (v[i] >= '0' && v[i] <= '9')
            return 1;
        if (v[i] == '.' && i > 0 && i + 1 < n)
            return 1;
    }
    return 0;
}

/* Length of "Bot " / "Bearer " at p (case-sensitive unless ci), else 0. */
static size_t auth_scheme(const char *p, size_t n, int ci)
{
    if (ci ? prefix_ci(p, n, "bot ") : (n >= 4 && memcmp(p, "Bot ", 4) == 0))
        return 4;
    if (ci ? prefix_ci(p, n, "bearer ") : (n >= 7 && memcmp(p, "Bearer ", 7) == 0))
        return 7;
    return 0;
}

/* At in[i] == ':' of "://": the end of "user:PASSWORD@", with *pw set to the
 * password's start; 0 when there is no password. */
static size_t url_password(const char *in, size_t n, size_t i, size_t *pw)
{
    size_t j, lim = i + 3 + URL_USERINFO_MAX, colon = 0;

    for (j = i + 3; j < n && j < lim; j++) {
        unsigned char c = (unsigned char)in[j];

        if (c == '@')
            break;
        if (c == '/' || c == '?' || c == '#' || is_space(c) || is_quote(c))
            return 0;
        if (c == ':' && !colon)
            colon = j;
    }
    if (j >= n || j >= lim || in[j] != '@' || !colon || colon + 1 == j)
        return 0;
    *pw = colon + 1;
    return j;
}

/* At a word start: a key-like word, optional quote, = or :, optional spaces
 * or quotes. Returns the value's start (> i) or 0; in[start - 1] is the
 * opening quote when the value is quoted. */
static size_t keyword_value(const char *in, size_t n, size_t i)
{
    size_t w, j;

    for (w = 0; w < sizeof secret_words / sizeof secret_words[0]; w++)
        if (prefix_ci(in + i, n - i, secret_words[w]))
            break;
    if (w == sizeof secret_words / sizeof secret_words[0])
        return 0;
    j = i + strlen(secret_words[w]);
    if (j < n && in[j] == '\\' && j + 1 < n && is_quote((unsigned char)in[j + 1]))
        j++;
    if (j < n && is_quote((unsigned char)in[j]))
        j++;
    while (j < n && (in[j] == ' ' || in[j] == '\t'))
        j++;
    if (j >= n || (in[j] != '=' && in[j] != ':'))
        return 0;
    j++;
    while (j < n && (in[j] == ' ' || in[j] == '\t' || is_quote((unsigned char)in[j]) ||
                     (in[j] == '\\' && j + 1 < n && is_quote((unsigned char)in[j + 1]))))
        j++;
    return j < n ? j : 0;
}

/* Bitmap of the bytes a rule can start with at a word start: the first
 * letters of secret_words in both cases, and 'B' (Bot, Bearer). */
#define BIT(c) (1u << ((c)&7))
static const unsigned char word_start[256 / 8] = {
    ['A' >> 3] = BIT('A') | BIT('B'),            /* A..G share a byte */
    ['K' >> 3] = BIT('K'),                       /* H..O */
    ['P' >> 3] = BIT('P') | BIT('S') | BIT('T'), /* P..W */
    ['a' >> 3] = BIT('a'),                       /* a..g */
    ['k' >> 3] = BIT('k'),                       /* h..o */
    ['p' >> 3] = BIT('p') | BIT('s') | BIT('t'), /* p..w */
};
#undef BIT

/* Writes the redacted text of in[0..n) into out (size bytes, always
 * NUL-terminated when size > 0); returns the length the whole output needs,
 * so a result >= size means it was cut. */
static size_t redact(const struct gh_log_sink *s, const char *in, size_t n, char *out, size_t size)
{
    unsigned char first[256 / 8] = {0};
    size_t seclen[GH_LOG_MAX_SECRETS];
    struct rout o = {out, size, 0};
    size_t i = 0, run = 0, k;
    int nsec = s ? s->n_secrets : 0;

    if (size == 0)
        return n;
    if (nsec > GH_LOG_MAX_SECRETS)
        nsec = GH_LOG_MAX_SECRETS;
    for (k = 0; k < (size_t)nsec; k++) {
        unsigned char c = (unsigned char)s->secrets[k][0];

        first[c >> 3] |= (unsigned char)(1u << (c & 7));
        seclen[k] = strlen(s->secrets[k]);
    }
#define FLUSH()                                                                                              \
    do {                                                                                                     \
        if (run) {                                                                                           \
            rput(&o, in + run - 1, i - (run - 1));                                                           \
            run = 0;                                                                                         \
        }                                                                                                    \
    } while (0)
    /* run is start+1 of the pending plain bytes (0 = none). */
    while (i < n) {
        unsigned char c = (unsigned char)in[i];
        size_t best = 0, v, end, pw, sch;

        if (first[c >> 3] & (1u << (c & 7))) {
            for (k = 0; k < (size_t)nsec; k++) {
                size_t sl = seclen[k];

                if (sl > best && sl <= n - i && memcmp(in + i, s->secrets[k], sl) == 0)
                    best = sl;
            }
            if (best) {
                FLUSH();
                rput(&o, REDACTED, sizeof REDACTED - 1);
                i += best;
                continue;
            }
        }
        if (c == ':' && i + 2 < n && in[i + 1] == '/' && in[i + 2] == '/' &&
            (end = url_password(in, n, i, &pw)) != 0) {
            FLUSH();
            rput(&o, in + i, pw - i);
            rput(&o, REDACTED, sizeof REDACTED - 1);
            i = end; /* the '@' is copied as plain text */
            run = i + 1;
            i++;
            continue;
        }
        if ((word_start[c >> 3] & (1u << (c & 7))) && (i == 0 || !is_alnum((unsigned char)in[i - 1]))) {
            if (c != 'B' && (v = keyword_value(in, n, i)) != 0) {
                char q = in[v - 1];

                sch = auth_scheme(in + v, n - v, 1);
                end = is_quote((unsigned char)q) ? quoted_end(in, n, v + sch, q) : value_end(in, n, v + sch);
                if (end > v + sch || (sch && end == v + sch)) {
                    FLUSH();
                    rput(&o, in + i, v + sch - i);
                    rput(&o, REDACTED, sizeof REDACTED - 1);
                    i = end;
                    continue;
                }
            }
            if ((sch = auth_scheme(in + i, n - i, 0)) != 0) {
                end = value_end(in, n, i + sch);
                if (looks_like_token(in + i + sch, end - i - sch)) {
                    FLUSH();
                    rput(&o, in + i, sch);
                    rput(&o, REDACTED, sizeof REDACTED - 1);
                    i = end;
                    continue;
                }
            }
        }
        if (!run)
            run = i + 1;
        i++;
    }
    FLUSH();
#undef FLUSH
    out[o.len < size ? o.len : size - 1] = '\0';
    return o.len;
}

void gh_log_redact(const struct gh_log_sink *s, const char *in, char *out, size_t size)
{
    if (!out || size == 0)
        return;
    if (!in) {
        out[0] = '\0';
        return;
    }
    redact(s, in, strlen(in), out, size);
}

/* ---- sink ----------------------------------------------------------------- */

static int open_log(const char *path)
{
    return open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
}

int gh_log_sink_init(struct gh_log_sink *s, const char *service, enum gh_log_level min, const char *path,
                     size_t max_bytes, int max_files)
{
    struct stat st;
    int fd;

    memset(s, 0, sizeof *s);
    s->fd = 2;
    snprintf(s->service, sizeof s->service, "%s", service ? service : "guildhall");
    s->min_level = min;
    s->max_bytes = max_bytes;
    s->max_files = max_files < 0 ? 0 : max_files;
    if (!path || !*path)
        return GH_OK;
    if (strlen(path) >= sizeof s->path) {
        fprintf(stderr, "%s: log file path too long (max %zu bytes): logging to stderr\n", s->service,
                sizeof s->path - 1);
        return GH_EIO;
    }
    fd = open_log(path);
    if (fd < 0) {
        fprintf(stderr, "%s: cannot open log file %s: %s: logging to stderr\n", s->service, path,
                strerror(errno));
        return GH_EIO;
    }
    memcpy(s->path, path, strlen(path) + 1);
    s->fd = fd;
    if (fstat(fd, &st) == 0) /* appending to an existing file: count what is there */
        s->written = (size_t)st.st_size;
    return GH_OK;
}

void gh_log_sink_cleanup(struct gh_log_sink *s)
{
    if (!s)
        return;
    if (s->path[0] && s->fd >= 0)
        close(s->fd);
    s->fd = 2;
    s->path[0] = '\0';
    s->written = 0;
}

void gh_log_sink_add_secret(struct gh_log_sink *s, const char *secret)
{
    int i;

    if (!s || !secret || strlen(secret) < 6)
        return;
    for (i = 0; i < s->n_secrets; i++)
        if (strcmp(s->secrets[i], secret) == 0)
            return;
    if (s->n_secrets >= GH_LOG_MAX_SECRETS) {
        fprintf(stderr, "%s: too many secrets to redact (max %d): one is not redacted\n", s->service,
                GH_LOG_MAX_SECRETS);
        return;
    }
    s->secrets[s->n_secrets++] = secret;
}

int gh_log_level_parse(const char *name, enum gh_log_level *out)
{
    size_t i;

    if (!name)
        return GH_EINVAL;
    for (i = 0; i < sizeof level_names / sizeof level_names[0]; i++) {
        if (strlen(name) == strlen(level_names[i]) && prefix_ci(name, strlen(name), level_names[i])) {
            if (out)
                *out = (enum gh_log_level)i;
            return GH_OK;
        }
    }
    return GH_EINVAL;
}

static void rotate_files(const struct gh_log_sink *s)
{
    char from[sizeof s->path + 16], to[sizeof s->path + 16];
    int i;

    if (s->max_files <= 0) {
        unlink(s->path);
        return;
    }
    for (i = s->max_files - 1; i >= 1; i--) {
        snprintf(from, sizeof from, "%s.%d", s->path, i);
        snprintf(to, sizeof to, "%s.%d", s->path, i + 1);
        rename(from, to); /* ENOENT while the set is not full yet */
    }
    snprintf(to, sizeof to, "%s.1", s->path);
    rename(s->path, to);
}

static int same_file(const struct stat *a, const struct stat *b)
{
    return a->st_ino == b->st_ino && a->st_dev == b->st_dev;
}

static void maybe_rotate(struct gh_log_sink *s, size_t n)
{
    struct stat st, lst, pst;
    int fd, lk;

    if (!s->path[0] || s->max_bytes == 0 || fstat(s->fd, &st) != 0)
        return;
    s->written = (size_t)st.st_size;
    if (s->written == 0 || s->written + n <= s->max_bytes)
        return;
    /* The lock is taken on a descriptor of our own: prefork children share
     * s->fd's open file description, and flock does not exclude within one.
     * Rotate only if path is still the file we write to; otherwise another
     * process did it, and we only reopen. */
    lk = open(s->path, O_RDONLY | O_CLOEXEC);
    if (lk >= 0 && flock(lk, LOCK_EX) == 0 && fstat(lk, &lst) == 0 && stat(s->path, &pst) == 0 &&
        same_file(&lst, &st) && same_file(&pst, &st))
        rotate_files(s);
    /* Create the new file before unlocking, so that a process waiting on
     * the lock finds it and just reopens. */
    fd = open_log(s->path);
    if (lk >= 0)
        close(lk); /* releases the lock */
    if (fd < 0)
        return; /* keep writing where we were rather than lose lines */
    close(s->fd);
    s->fd = fd;
    s->written = fstat(fd, &st) == 0 ? (size_t)st.st_size : 0;
}

static void write_line(struct gh_log_sink *s, const char *p, size_t n)
{
    maybe_rotate(s, n);
    while (n > 0) {
        ssize_t w = write(s->fd, p, n);

        if (w < 0) {
            if (errno == EINTR)
                continue;
            return;
        }
        p += w;
        n -= (size_t)w;
        s->written += (size_t)w;
    }
}

/* ---- loggers -------------------------------------------------------------- */

void gh_logger_init(struct gh_logger *lg, struct gh_log_sink *sink, const char *component)
{
    lg->sink = sink;
    lg->component = component;
    lg->corr[0] = '\0';
    lg->guild_id = 0;
    lg->user_id = 0;
}

/* Correlation ids without a syscall per id: a per-process (per-thread) key
 * comes from getrandom once, then each id is SipHash-2-4 (keyed, so ids are
 * not predictable from earlier ones) of (pid, counter). A fork handler
 * (pthread_atfork, registered at the first seed) clears the seed in the
 * child, which then reseeds with its own pid instead of repeating its
 * parent's sequence; getpid() is a syscall, so it is read only when seeding. Distinct counters never collide
 * within a process; across processes and restarts the random keys (and the pid in the input) make a collision
 * of two 64-bit ids negligible. Not a secret: a correlation id. */
struct corr_gen {
    unsigned char key[crypto_shorthash_KEYBYTES];
    pid_t pid;  /* process the key belongs to; 0 = not seeded */
    int strong; /* key came from getrandom */
    uint64_t counter;
};

static _Thread_local struct corr_gen corr_gen;
static int corr_atfork_done;

/* Runs in the child after fork(): forces a reseed with the new pid. */
static void corr_after_fork(void)
{
    corr_gen.pid = 0;
}

static void corr_seed(struct corr_gen *g, const void *salt)
{
    pid_t pid = getpid();

    if (!corr_atfork_done && pthread_atfork(NULL, NULL, corr_after_fork) == 0)
        corr_atfork_done = 1;
    if (getrandom(g->key, sizeof g->key, GRND_NONBLOCK) == (ssize_t)sizeof g->key) {
        g->strong = 1;
    } else {
        /* No entropy yet (early boot): unique enough; retried next call. */
        uint64_t x =
            (uint64_t)gh_mono_ms() * 0x9e3779b97f4a7c15ULL ^ (uint64_t)pid ^ (uint64_t)(uintptr_t)salt;
        uint64_t y = (uint64_t)gh_now_ms() ^ (uint64_t)(uintptr_t)&g;

        memcpy(g->key, &x, sizeof x);
        memcpy(g->key + sizeof x, &y, sizeof y);
        g->strong = 0;
    }
    g->pid = pid;
}

void gh_logger_new_corr(struct gh_logger *lg)
{
    static const char hex[] = "0123456789abcdef";
    struct corr_gen *g = &corr_gen;
    unsigned char in[16], r[crypto_shorthash_BYTES];
    uint64_t p;
    size_t i;

    if (g->pid == 0 || !g->strong)
        corr_seed(g, lg);
    p = (uint64_t)g->pid;
    g->counter++;
    memcpy(in, &p, sizeof p);
    memcpy(in + sizeof p, &g->counter, sizeof g->counter);
    crypto_shorthash(r, in, sizeof in, g->key);
    for (i = 0; i < sizeof r; i++) {
        lg->corr[2 * i] = hex[r[i] >> 4];
        lg->corr[2 * i + 1] = hex[r[i] & 15];
    }
    lg->corr[2 * sizeof r] = '\0';
}

/* ---- line building -------------------------------------------------------- */

static int put_str(struct gh_buf *b, const char *s, size_t n)
{
    int rc = gh_buf_append(b, "\"", 1);

    if (rc == GH_OK)
        rc = gh_buf_append_json_escaped(b, s, n);
    if (rc == GH_OK)
        rc = gh_buf_append(b, "\"", 1);
    return rc;
}

/* Shortens len so that buf[0..len) does not end inside a UTF-8 sequence. */
static size_t utf8_cut(const char *buf, size_t len)
{
    size_t lead = len, want;
    unsigned char c;

    while (lead > 0 && len - lead < 4 && ((unsigned char)buf[lead - 1] & 0xC0) == 0x80)
        lead--;
    if (lead == 0)
        return len;
    c = (unsigned char)buf[lead - 1];
    if (c < 0x80)
        return len; /* ends with ASCII */
    want = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
    return len - (lead - 1) < want ? lead - 1 : len;
}

/* A redacted, escaped, quoted string, cut at MSG_MAX bytes (at a UTF-8
 * boundary) with the truncation mark. scratch has MSG_MAX + 1 bytes. */
static int put_redacted(struct gh_buf *b, const struct gh_log_sink *s, const char *in, size_t n,
                        int cut_before, char *scratch)
{
    size_t need = redact(s, in, n, scratch, MSG_MAX + 1), len = need;
    int rc;

    if (need > MSG_MAX || cut_before)
        len = utf8_cut(scratch, need > MSG_MAX ? MSG_MAX : need);
    rc = gh_buf_append(b, "\"", 1);
    if (rc == GH_OK)
        rc = gh_buf_append_json_escaped(b, scratch, len);
    if (rc == GH_OK && (need > MSG_MAX || cut_before))
        rc = gh_buf_append(b, TRUNC_MARK, sizeof TRUNC_MARK - 1);
    if (rc == GH_OK)
        rc = gh_buf_append(b, "\"", 1);
    return rc;
}

/* Field names ending in a secret word: "token", "access_token", "x-api-key". */
static int name_is_secret(const char *name)
{
    size_t n = strlen(name), w;

    for (w = 0; w < sizeof secret_words / sizeof secret_words[0]; w++) {
        size_t wl = strlen(secret_words[w]);
        size_t i;
        int eq = 1;

        if (wl > n)
            continue;
        for (i = 0; i < wl && eq; i++) {
            unsigned char c = lower((unsigned char)name[n - wl + i]);
            unsigned char d = (unsigned char)secret_words[w][i];

            eq = c == d || (d == '_' && c == '-');
        }
        if (eq && (n == wl || !is_alnum((unsigned char)name[n - wl - 1])))
            return 1;
    }
    return 0;
}

static int put_value(struct gh_buf *b, const struct gh_log_sink *s, json_object *v, int depth, char *scratch);

static int put_member(struct gh_buf *b, const struct gh_log_sink *s, const char *key, json_object *v,
                      int depth, char *scratch)
{
    int rc = put_redacted(b, s, key, strlen(key), 0, scratch);

    if (rc == GH_OK)
        rc = gh_buf_append(b, ":", 1);
    if (rc != GH_OK)
        return rc;
    if (name_is_secret(key) && v && !json_object_is_type(v, json_type_object) &&
        !json_object_is_type(v, json_type_array) && !json_object_is_type(v, json_type_boolean))
        return put_str(b, REDACTED, sizeof REDACTED - 1);
    return put_value(b, s, v, depth + 1, scratch);
}

static int put_value(struct gh_buf *b, const struct gh_log_sink *s, json_object *v, int depth, char *scratch)
{
    int rc = GH_OK, first = 1;
    size_t i, n;

    if (depth > EXTRA_DEPTH)
        return GH_ETOOBIG;
    switch (json_object_get_type(v)) {
    case json_type_string:
        return put_redacted(b, s, json_object_get_string(v), (size_t)json_object_get_string_len(v), 0,
                            scratch);
    case json_type_object:
        rc = gh_buf_append(b, "{", 1);
        json_object_object_foreach(v, key, val)
        {
            if (rc == GH_OK && !first)
                rc = gh_buf_append(b, ",", 1);
            if (rc == GH_OK)
                rc = put_member(b, s, key, val, depth, scratch);
            first = 0;
        }
        return rc == GH_OK ? gh_buf_append(b, "}", 1) : rc;
    case json_type_array:
        rc = gh_buf_append(b, "[", 1);
        n = json_object_array_length(v);
        for (i = 0; i < n && rc == GH_OK; i++) {
            if (i)
                rc = gh_buf_append(b, ",", 1);
            if (rc == GH_OK)
                rc = put_value(b, s, json_object_array_get_idx(v, i), depth + 1, scratch);
        }
        return rc == GH_OK ? gh_buf_append(b, "]", 1) : rc;
    case json_type_null:
    case json_type_boolean:
    case json_type_double:
    case json_type_int:
        return gh_json_to_buf(v, b);
    }
    return GH_EINVAL;
}

static int is_reserved(const char *key)
{
    size_t i;

    for (i = 0; i < sizeof reserved_fields / sizeof reserved_fields[0]; i++)
        if (strcmp(key, reserved_fields[i]) == 0)
            return 1;
    return 0;
}

/* The members of extra_json appended to the line, or "extra":"<text>" when it
 * is not a JSON object. */
static int put_extra(struct gh_buf *b, const struct gh_log_sink *s, const char *extra, char *scratch)
{
    json_object *obj = NULL;
    size_t n = strlen(extra);
    int rc = GH_OK;

    if (n <= EXTRA_TEXT_MAX && gh_json_parse(extra, n, EXTRA_DEPTH, &obj) == GH_OK && obj &&
        json_object_is_type(obj, json_type_object)) {
        json_object_object_foreach(obj, key, val)
        {
            char name[128];

            if (rc != GH_OK)
                break;
            if (is_reserved(key) && gh_snprintf(name, sizeof name, "x_%s", key) == GH_OK)
                key = name;
            rc = gh_buf_append(b, ",", 1);
            if (rc == GH_OK)
                rc = put_member(b, s, key, val, 0, scratch);
        }
    } else {
        rc = gh_buf_puts(b, ",\"extra\":");
        if (rc == GH_OK)
            rc = put_redacted(b, s, extra, n > FMT_MAX ? FMT_MAX : n, n > FMT_MAX, scratch);
    }
    json_object_put(obj);
    return rc;
}

static void vlog(const struct gh_logger *lg, enum gh_log_level lvl, int errnum, const char *extra,
                 const char *fmt, va_list ap) __attribute__((format(printf, 5, 0)));

static void vlog(const struct gh_logger *lg, enum gh_log_level lvl, int errnum, const char *extra,
                 const char *fmt, va_list ap)
{
    struct gh_log_sink fallback, *s = lg ? lg->sink : NULL;
    char text[MSG_MAX + 1024], *heap = NULL, *msg = text;
    char scratch[MSG_MAX + 1], ts[32], errbuf[128];
    struct gh_buf b;
    size_t mark, msglen;
    va_list cp;
    int n, cut = 0, rc, saved = errno;

    if (!s) {
        gh_log_sink_init(&fallback, "guildhall", GH_LOG_DEBUG, NULL, 0, 0);
        s = &fallback;
    }
    if (lvl < s->min_level || !fmt)
        goto out;
    if ((unsigned)lvl >= sizeof level_names / sizeof level_names[0])
        lvl = GH_LOG_CRIT;
    gh_buf_init(&b, LINE_MAX_BYTES);

    va_copy(cp, ap);
    n = vsnprintf(text, sizeof text, fmt, cp);
    va_end(cp);
    if (n < 0) {
        n = 0;
        text[0] = '\0';
    }
    msglen = (size_t)n < sizeof text ? (size_t)n : sizeof text - 1;
    if ((size_t)n >= sizeof text) {
        /* Long message: give the redactor enough to see every secret that
         * reaches the kept part, then cut. */
        size_t want = (size_t)n < FMT_MAX ? (size_t)n + 1 : FMT_MAX + 1;

        heap = malloc(want);
        if (heap) {
            va_copy(cp, ap);
            vsnprintf(heap, want, fmt, cp);
            va_end(cp);
            msg = heap;
            msglen = want - 1;
        }
        cut = 1;
    }

    gh_iso8601(gh_now_ms(), ts, sizeof ts);
    rc = gh_buf_printf(&b, "{\"time\":\"%s\",\"level\":\"%s\",\"service\":", ts, level_names[lvl]);
    if (rc == GH_OK)
        rc = put_str(&b, s->service, strlen(s->service));
    if (rc == GH_OK)
        rc = gh_buf_puts(&b, ",\"component\":");
    if (rc == GH_OK) {
        const char *comp = lg && lg->component ? lg->component : "main";

        rc = put_str(&b, comp, strlen(comp));
    }
    if (rc == GH_OK)
        rc = gh_buf_puts(&b, ",\"corr\":");
    if (rc == GH_OK)
        rc = put_str(&b, lg ? lg->corr : "", lg ? strnlen(lg->corr, sizeof lg->corr) : 0);
    if (rc == GH_OK && lg && lg->guild_id)
        rc = gh_buf_printf(&b, ",\"guild\":\"%llu\"", (unsigned long long)lg->guild_id);
    if (rc == GH_OK && lg && lg->user_id)
        rc = gh_buf_printf(&b, ",\"user\":\"%llu\"", (unsigned long long)lg->user_id);
    if (rc == GH_OK)
        rc = gh_buf_puts(&b, ",\"msg\":");
    if (rc == GH_OK)
        rc = put_redacted(&b, s, msg, msglen, cut, scratch);
    if (rc == GH_OK && errnum != 0) {
        const char *es = errbuf;

        if (errnum < 0)
            es = gh_strerror(errnum); /* a GH_E* code passed instead of errno */
        else if (strerror_r(errnum, errbuf, sizeof errbuf) != 0)
            snprintf(errbuf, sizeof errbuf, "error %d", errnum);
        rc = gh_buf_printf(&b, ",\"errno\":%d,\"err\":", errnum);
        if (rc == GH_OK)
            rc = put_str(&b, es, strlen(es));
    }
    mark = b.len;
    if (rc == GH_OK && extra && *extra) {
        rc = put_extra(&b, s, extra, scratch);
        if (rc != GH_OK) {
            b.len = mark;
            b.data[mark] = '\0';
            rc = gh_buf_puts(&b, ",\"extra\":\"[dropped: too large]\"");
        }
    }
    if (rc == GH_OK)
        rc = gh_buf_append(&b, "}\n", 2);
    if (rc == GH_OK) {
        write_line(s, b.data, b.len);
    } else {
        char line[256];

        n = snprintf(line, sizeof line,
                     "{\"time\":\"%s\",\"level\":\"error\",\"service\":\"%s\","
                     "\"msg\":\"log line dropped: %s\"}\n",
                     ts, s->service[0] && !strpbrk(s->service, "\"\\") ? s->service : "?", gh_strerror(rc));
        if (n > 0 && (size_t)n < sizeof line)
            write_line(s, line, (size_t)n);
    }
    gh_buf_cleanup(&b);
    free(heap);
out:
    errno = saved;
}

void gh_log(const struct gh_logger *lg, enum gh_log_level lvl, int errnum, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vlog(lg, lvl, errnum, NULL, fmt, ap);
    va_end(ap);
}

void gh_log_fields(const struct gh_logger *lg, enum gh_log_level lvl, int errnum, const char *extra_json,
                   const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vlog(lg, lvl, errnum, extra_json, fmt, ap);
    va_end(ap);
}
