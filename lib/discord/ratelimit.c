/* ratelimit.c - Discord REST rate-limit state in Redis, with a process-local
 * fallback.
 *
 * Every operation is written against two stores: Redis when it answers, and a
 * small open-addressing table in the process that mirrors every write. A read
 * uses Redis when it answers and the table when it does not, so a Redis
 * outage degrades sharing between processes but never stops a call. The
 * bucket check-and-take is one Lua script, so two processes cannot both take
 * the last slot of a bucket. */
#include "discord/ratelimit.h"

#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/err.h"
#include "store/redis.h"

#define FEATURE "rest"
#define ROUTE_TTL_S 86400
#define GLOBAL_TTL_S 2
#define INVALID_TTL_S 660
#define UNAUTH_TTL_S 3600
#define KEY_MAX 512
#define LOCAL_SLOTS 512 /* power of two */
#define LOCAL_PROBE 16
#define LOCAL_KEY_MAX 320
#define FINGERPRINT_LEN 16 /* hex chars of a token hash */

struct local_slot {
    char key[LOCAL_KEY_MAX]; /* "" = empty */
    char str[96];
    int64_t num;
    int64_t num2;
    int64_t expires_ms; /* 0 = never */
};

struct gh_ratelimit {
    struct gh_redis *redis; /* borrowed, may be NULL */
    char fingerprint[FINGERPRINT_LEN + 1];
    int stopped; /* this process saw a 401 */
    struct local_slot *slots;
};

/* Check-and-take of one bucket slot. Returns {-1,0} when nothing is known or
 * the window passed, {0,reset_ms} when exhausted, {remaining,reset_ms} after
 * taking one. */
static const char take_script[] = "local r = redis.call('HMGET', KEYS[1], 'remaining', 'reset_ms')\n"
                                  "if not r[1] or not r[2] then return {-1, 0} end\n"
                                  "local rem = tonumber(r[1])\n"
                                  "local reset = tonumber(r[2])\n"
                                  "if reset <= tonumber(ARGV[1]) then return {-1, 0} end\n"
                                  "if rem <= 0 then return {0, reset} end\n"
                                  "redis.call('HINCRBY', KEYS[1], 'remaining', -1)\n"
                                  "return {rem, reset}\n";

/* ---- routes ------------------------------------------------------------- */

static int all_digits(const char *s, size_t n)
{
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    return 1;
}

static int seg_is(const char *s, size_t n, const char *lit)
{
    return strlen(lit) == n && memcmp(s, lit, n) == 0;
}

static void token_hash(const char *tok, size_t n, char out[FINGERPRINT_LEN + 1])
{
    unsigned char h[FINGERPRINT_LEN / 2];

    crypto_generichash(h, sizeof(h), (const unsigned char *)tok, n, NULL, 0);
    sodium_bin2hex(out, FINGERPRINT_LEN + 1, h, sizeof(h));
}

/* Appends n bytes at *o of out (size); 0 when it does not fit. */
static int cat(char *out, size_t size, size_t *o, const char *p, size_t n)
{
    if (*o + n + 1 > size)
        return 0;
    memcpy(out + *o, p, n);
    *o += n;
    out[*o] = '\0';
    return 1;
}

int gh_ratelimit_route(const char *method, const char *path, struct gh_rl_route *out)
{
    const char *p;
    const char *end;
    const char *first = NULL;
    size_t first_len = 0;
    const char *prev = NULL;
    size_t prev_len = 0;
    size_t o = 0;
    size_t mo = 0;
    int idx = 0;

    if (method == NULL || path == NULL || out == NULL || path[0] != '/')
        return GH_EINVAL;
    memset(out, 0, sizeof(*out));
    end = path + strcspn(path, "?#");
    if (!cat(out->key, sizeof(out->key), &o, method, strlen(method)) ||
        !cat(out->key, sizeof(out->key), &o, " ", 1))
        return GH_ETOOBIG;
    p = path + 1;
    while (p <= end) {
        const char *seg = p;
        size_t n;
        const char *repl = NULL;
        char hashed[FINGERPRINT_LEN + 8];

        while (p < end && *p != '/')
            p++;
        n = (size_t)(p - seg);
        p++; /* past the slash (or end) */
        if (n == 0 && seg == end)
            break;

        if (idx == 0) {
            first = seg;
            first_len = n;
            if (seg_is(seg, n, "interactions"))
                out->global_exempt = 1;
        } else if (idx == 1 &&
                   (seg_is(first, first_len, "channels") || seg_is(first, first_len, "guilds") ||
                    seg_is(first, first_len, "webhooks") || seg_is(first, first_len, "interactions"))) {
            /* the major parameter stays */
            if (!cat(out->major, sizeof(out->major), &mo, first, first_len) ||
                !cat(out->major, sizeof(out->major), &mo, "/", 1) ||
                !cat(out->major, sizeof(out->major), &mo, seg, n))
                return GH_ETOOBIG;
        } else if (idx == 2 && seg_is(first, first_len, "webhooks")) {
            /* webhook token: part of the major, hashed so no key or log holds it */
            char h[FINGERPRINT_LEN + 1];
            token_hash(seg, n, h);
            (void)snprintf(hashed, sizeof(hashed), "{t:%s}", h);
            repl = hashed;
            out->global_exempt = 1;
            if (!cat(out->major, sizeof(out->major), &mo, "/", 1) ||
                !cat(out->major, sizeof(out->major), &mo, h, strlen(h)))
                return GH_ETOOBIG;
        } else if (idx == 2 && seg_is(first, first_len, "interactions")) {
            repl = "{token}";
        } else if (prev != NULL && seg_is(prev, prev_len, "reactions")) {
            repl = "{emoji}";
        } else if (all_digits(seg, n)) {
            repl = "{id}";
        }
        if (!cat(out->key, sizeof(out->key), &o, "/", 1))
            return GH_ETOOBIG;
        if (repl != NULL ? !cat(out->key, sizeof(out->key), &o, repl, strlen(repl))
                         : !cat(out->key, sizeof(out->key), &o, seg, n))
            return GH_ETOOBIG;
        prev = seg;
        prev_len = n;
        idx++;
    }
    if (idx == 0 && !cat(out->key, sizeof(out->key), &o, "/", 1))
        return GH_ETOOBIG;
    if (mo == 0)
        cat(out->major, sizeof(out->major), &mo, "-", 1);
    return GH_OK;
}

/* ---- response headers --------------------------------------------------- */

/* "name:" prefix, case-insensitive; returns the trimmed value or NULL. */
static const char *header_value(const char *line, size_t len, const char *name, size_t *vlen)
{
    size_t n = strlen(name);
    const char *v;
    const char *e = line + len;

    if (len <= n || strncasecmp(line, name, n) != 0 || line[n] != ':')
        return NULL;
    v = line + n + 1;
    while (v < e && (*v == ' ' || *v == '\t'))
        v++;
    while (e > v && (e[-1] == '\r' || e[-1] == '\n' || e[-1] == ' ' || e[-1] == '\t'))
        e--;
    *vlen = (size_t)(e - v);
    return v;
}

static int parse_double(const char *v, size_t n, double *out)
{
    char tmp[64];
    char *end = NULL;
    double d;

    if (n == 0 || n >= sizeof(tmp))
        return 0;
    memcpy(tmp, v, n);
    tmp[n] = '\0';
    d = strtod(tmp, &end);
    if (end == tmp || *end != '\0' || !(d >= 0) || d > 1e12)
        return 0;
    *out = d;
    return 1;
}

static void copy_value(char *dst, size_t size, const char *v, size_t n)
{
    if (n >= size)
        n = size - 1;
    memcpy(dst, v, n);
    dst[n] = '\0';
}

void gh_ratelimit_header(struct gh_rl_headers *h, const char *line, size_t len)
{
    const char *v;
    size_t n = 0;

    if (h == NULL || line == NULL)
        return;
    if (len >= 5 && memcmp(line, "HTTP/", 5) == 0) {
        memset(h, 0, sizeof(*h));
        return;
    }
    if ((v = header_value(line, len, "x-ratelimit-bucket", &n)) != NULL) {
        /* bucket ids are opaque (hex at Discord); only safe characters are kept */
        if (n > 0 && n < sizeof(h->bucket) &&
            strspn(v, "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_.:") >= n) {
            copy_value(h->bucket, sizeof(h->bucket), v, n);
            h->has_bucket = 1;
        }
    } else if ((v = header_value(line, len, "x-ratelimit-remaining", &n)) != NULL) {
        double d;
        if (parse_double(v, n, &d)) {
            h->remaining = (long long)d;
            h->has_remaining = 1;
        }
    } else if ((v = header_value(line, len, "x-ratelimit-reset-after", &n)) != NULL) {
        h->has_reset_after = parse_double(v, n, &h->reset_after);
    } else if ((v = header_value(line, len, "x-ratelimit-reset", &n)) != NULL) {
        h->has_reset = parse_double(v, n, &h->reset);
    } else if ((v = header_value(line, len, "x-ratelimit-global", &n)) != NULL) {
        h->global = (n == 4 && strncasecmp(v, "true", 4) == 0);
    } else if ((v = header_value(line, len, "x-ratelimit-scope", &n)) != NULL) {
        copy_value(h->scope, sizeof(h->scope), v, n);
    } else if ((v = header_value(line, len, "retry-after", &n)) != NULL) {
        h->has_retry_after = parse_double(v, n, &h->retry_after);
    }
}

/* ---- process-local table ------------------------------------------------ */

static uint64_t fnv1a(const char *s)
{
    uint64_t h = UINT64_C(1469598103934665603);

    for (; *s != '\0'; s++) {
        h ^= (unsigned char)*s;
        h *= UINT64_C(1099511628211);
    }
    return h;
}

static int slot_live(const struct local_slot *s, int64_t now_ms)
{
    return s->key[0] != '\0' && (s->expires_ms == 0 || s->expires_ms > now_ms);
}

static struct local_slot *local_get(struct gh_ratelimit *rl, const char *key, int64_t now_ms)
{
    size_t start = (size_t)fnv1a(key) & (LOCAL_SLOTS - 1);

    for (size_t i = 0; i < LOCAL_PROBE; i++) {
        struct local_slot *s = &rl->slots[(start + i) & (LOCAL_SLOTS - 1)];
        if (slot_live(s, now_ms) && strcmp(s->key, key) == 0)
            return s;
    }
    return NULL;
}

/* The slot for key, created empty (or reused) when absent; NULL only for keys
 * too long to keep. An existing live slot keeps its values. */
static struct local_slot *local_put(struct gh_ratelimit *rl, const char *key, int64_t now_ms, int64_t ttl_ms)
{
    size_t start = (size_t)fnv1a(key) & (LOCAL_SLOTS - 1);
    struct local_slot *victim = NULL;
    struct local_slot *s;

    if (strlen(key) >= LOCAL_KEY_MAX)
        return NULL;
    s = local_get(rl, key, now_ms);
    if (s != NULL) {
        s->expires_ms = ttl_ms > 0 ? now_ms + ttl_ms : 0;
        return s;
    }
    for (size_t i = 0; i < LOCAL_PROBE; i++) {
        s = &rl->slots[(start + i) & (LOCAL_SLOTS - 1)];
        if (!slot_live(s, now_ms)) {
            victim = s;
            break;
        }
        /* full window: evict the one that expires first (never-expiring last) */
        if (victim == NULL ||
            (s->expires_ms != 0 && (victim->expires_ms == 0 || s->expires_ms < victim->expires_ms)))
            victim = s;
    }
    memset(victim, 0, sizeof(*victim));
    (void)snprintf(victim->key, sizeof(victim->key), "%s", key);
    victim->expires_ms = ttl_ms > 0 ? now_ms + ttl_ms : 0;
    return victim;
}

/* ---- Redis primitives (NULL reply = use the local table) ---------------- */

static redisReply *rcmd(struct gh_ratelimit *rl, int argc, const char **argv, int want_type)
{
    redisReply *r;

    if (rl->redis == NULL)
        return NULL;
    r = gh_redis_cmdargv(rl->redis, argc, argv, NULL);
    if (r == NULL)
        return NULL;
    if (r->type == REDIS_REPLY_ERROR ||
        (want_type >= 0 && r->type != want_type && r->type != REDIS_REPLY_NIL)) {
        freeReplyObject(r);
        return NULL;
    }
    return r;
}

/* bot:{global}:rest:<a><b><c> */
static int key_of(char *out, size_t size, const char *a, const char *b, const char *c)
{
    return gh_key_global(out, size, FEATURE, "%s%s%s", a, b, c);
}

static int key_of_bucket(char *out, size_t size, const char *bucket, const char *major)
{
    return gh_key_global(out, size, FEATURE, "bucket:%s:%s", bucket, major);
}

static void say(char *why, size_t whylen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void say(char *why, size_t whylen, const char *fmt, ...)
{
    va_list ap;

    if (why == NULL || whylen == 0)
        return;
    va_start(ap, fmt);
    (void)vsnprintf(why, whylen, fmt, ap);
    va_end(ap);
}

/* GET key as a string; 1 when found. */
static int kv_get_str(struct gh_ratelimit *rl, const char *key, char *out, size_t size, int64_t now_ms)
{
    const char *argv[2] = {"GET", key};
    redisReply *r = rcmd(rl, 2, argv, REDIS_REPLY_STRING);
    struct local_slot *s;

    out[0] = '\0';
    if (r != NULL) {
        int found = r->type == REDIS_REPLY_STRING;
        if (found)
            (void)snprintf(out, size, "%.*s", (int)r->len, r->str);
        freeReplyObject(r);
        return found;
    }
    s = local_get(rl, key, now_ms);
    if (s == NULL)
        return 0;
    (void)snprintf(out, size, "%s", s->str);
    return 1;
}

static int64_t kv_get_int(struct gh_ratelimit *rl, const char *key, int64_t now_ms)
{
    char buf[32];

    if (!kv_get_str(rl, key, buf, sizeof(buf), now_ms))
        return 0;
    return strtoll(buf, NULL, 10);
}

static void kv_set_str(struct gh_ratelimit *rl, const char *key, const char *val, int64_t ttl_ms,
                       int64_t now_ms)
{
    char ttl[24];
    const char *argv[5] = {"SET", key, val, "PX", ttl};
    struct local_slot *s;
    redisReply *r;

    (void)snprintf(ttl, sizeof(ttl), "%lld", (long long)(ttl_ms > 0 ? ttl_ms : 1));
    r = rcmd(rl, 5, argv, -1);
    freeReplyObject(r);
    s = local_put(rl, key, now_ms, ttl_ms > 0 ? ttl_ms : 1);
    if (s != NULL)
        (void)snprintf(s->str, sizeof(s->str), "%s", val);
}

/* INCR key and (re)arm its TTL; returns the count. */
static long long kv_incr(struct gh_ratelimit *rl, const char *key, int ttl_s, int64_t now_ms)
{
    char ttl[16];
    const char *incr[2] = {"INCR", key};
    const char *expire[3] = {"EXPIRE", key, ttl};
    struct local_slot *s;
    redisReply *r;
    long long n = -1;

    (void)snprintf(ttl, sizeof(ttl), "%d", ttl_s);
    r = rcmd(rl, 2, incr, REDIS_REPLY_INTEGER);
    if (r != NULL && r->type == REDIS_REPLY_INTEGER) {
        n = r->integer;
        freeReplyObject(rcmd(rl, 3, expire, -1));
    }
    freeReplyObject(r);
    /* the local mirror counts too, and answers when Redis did not */
    s = local_get(rl, key, now_ms);
    if (s == NULL)
        s = local_put(rl, key, now_ms, (int64_t)ttl_s * 1000);
    if (s != NULL) {
        s->num++;
        (void)snprintf(s->str, sizeof(s->str), "%lld", (long long)s->num);
        if (n < 0)
            n = s->num;
    }
    return n < 0 ? 0 : n;
}

/* Check-and-take of one slot of a bucket; see take_script. */
static long long bucket_take(struct gh_ratelimit *rl, const char *key, int64_t now_ms, int64_t *reset_ms)
{
    char now[24];
    const char *argv[5] = {"EVAL", take_script, "1", key, now};
    redisReply *r;
    struct local_slot *s;

    *reset_ms = 0;
    (void)snprintf(now, sizeof(now), "%lld", (long long)now_ms);
    r = rcmd(rl, 5, argv, REDIS_REPLY_ARRAY);
    if (r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
        r->element[0]->type == REDIS_REPLY_INTEGER && r->element[1]->type == REDIS_REPLY_INTEGER) {
        long long rem = r->element[0]->integer;
        *reset_ms = r->element[1]->integer;
        freeReplyObject(r);
        s = local_get(rl, key, now_ms);
        if (s != NULL && rem > 0 && s->num > 0)
            s->num--;
        return rem;
    }
    freeReplyObject(r);
    s = local_get(rl, key, now_ms);
    if (s == NULL || s->num2 <= now_ms)
        return -1;
    *reset_ms = s->num2;
    if (s->num <= 0)
        return 0;
    return s->num--;
}

static void bucket_set(struct gh_ratelimit *rl, const char *key, long long remaining, int64_t reset_ms,
                       int64_t now_ms)
{
    char rem[24], reset[24], ttl[24];
    const char *hset[6] = {"HSET", key, "remaining", rem, "reset_ms", reset};
    const char *pexpire[3] = {"PEXPIRE", key, ttl};
    int64_t ttl_ms = reset_ms - now_ms;
    struct local_slot *s;
    redisReply *r;

    if (ttl_ms < 1)
        ttl_ms = 1;
    (void)snprintf(rem, sizeof(rem), "%lld", remaining);
    (void)snprintf(reset, sizeof(reset), "%lld", (long long)reset_ms);
    (void)snprintf(ttl, sizeof(ttl), "%lld", (long long)ttl_ms);
    r = rcmd(rl, 6, hset, -1);
    if (r != NULL)
        freeReplyObject(rcmd(rl, 3, pexpire, -1));
    freeReplyObject(r);
    s = local_put(rl, key, now_ms, ttl_ms);
    if (s != NULL) {
        s->num = remaining;
        s->num2 = reset_ms;
    }
}

/* ---- the client's questions ---------------------------------------------- */

struct gh_ratelimit *gh_ratelimit_new(struct gh_redis *redis, const char *token)
{
    struct gh_ratelimit *rl = calloc(1, sizeof(*rl));

    if (rl == NULL)
        return NULL;
    rl->slots = calloc(LOCAL_SLOTS, sizeof(*rl->slots));
    if (rl->slots == NULL || sodium_init() < 0) {
        gh_ratelimit_free(rl);
        return NULL;
    }
    rl->redis = redis;
    token_hash(token != NULL ? token : "", token != NULL ? strlen(token) : 0, rl->fingerprint);
    return rl;
}

void gh_ratelimit_free(struct gh_ratelimit *rl)
{
    if (rl == NULL)
        return;
    free(rl->slots);
    free(rl);
}

/* The bucket key of a route: learned bucket id, or the route key itself
 * until Discord names the bucket. */
static int bucket_key(struct gh_ratelimit *rl, const struct gh_rl_route *route, char *out, size_t size,
                      int64_t now_ms)
{
    char rkey[KEY_MAX];
    char bucket[sizeof(route->key)];

    if (key_of(rkey, sizeof(rkey), "route:", route->key, "") != GH_OK)
        return GH_ETOOBIG;
    if (!kv_get_str(rl, rkey, bucket, sizeof(bucket), now_ms) || bucket[0] == '\0')
        (void)snprintf(bucket, sizeof(bucket), "%s", route->key);
    return key_of_bucket(out, size, bucket, route->major);
}

int64_t gh_ratelimit_acquire(struct gh_ratelimit *rl, const struct gh_rl_route *route, int64_t now_ms,
                             char *why, size_t whylen)
{
    char key[KEY_MAX];
    char num[24];
    int64_t v, reset_ms = 0;
    long long left;

    if (why != NULL && whylen > 0)
        why[0] = '\0';
    if (rl == NULL || route == NULL)
        return 0;

    /* 1. the invalid-request budget (Discord bans the IP at 10,000 / 10 min) */
    (void)snprintf(num, sizeof(num), "%lld", (long long)(now_ms / 1000 / GH_RL_INVALID_WINDOW_S));
    if (key_of(key, sizeof(key), "invalid:", num, "") == GH_OK) {
        v = kv_get_int(rl, key, now_ms);
        if (v >= GH_RL_INVALID_STOP) {
            int64_t end_ms = (now_ms / 1000 / GH_RL_INVALID_WINDOW_S + 1) * GH_RL_INVALID_WINDOW_S * 1000;
            say(why, whylen,
                "invalid request budget exhausted: %lld invalid requests (401/403/429) in this "
                "10-minute window, Discord bans at 10000; refusing calls for %lld s",
                (long long)v, (long long)((end_ms - now_ms + 999) / 1000));
            return end_ms - now_ms > 0 ? end_ms - now_ms : 1;
        }
    }
    if (!route->global_exempt) {
        /* 2. a global 429 */
        if (key_of(key, sizeof(key), "global_wait", "", "") == GH_OK) {
            v = kv_get_int(rl, key, now_ms);
            if (v > now_ms) {
                say(why, whylen, "global rate limit hit (429), waiting %.3f s",
                    (double)(v - now_ms) / 1000.0);
                return v - now_ms;
            }
        }
        /* 3. 50 requests per second per bot */
        (void)snprintf(num, sizeof(num), "%lld", (long long)(now_ms / 1000));
        if (key_of(key, sizeof(key), "global:", num, "") == GH_OK &&
            kv_incr(rl, key, GLOBAL_TTL_S, now_ms) > GH_RL_GLOBAL_PER_S) {
            say(why, whylen, "global limit of %d requests/s reached", GH_RL_GLOBAL_PER_S);
            return 1000 - now_ms % 1000;
        }
    }
    /* 4. the route's bucket */
    if (bucket_key(rl, route, key, sizeof(key), now_ms) != GH_OK)
        return 0;
    left = bucket_take(rl, key, now_ms, &reset_ms);
    if (left == 0 && reset_ms > now_ms) {
        say(why, whylen, "rate limit bucket of %s exhausted, resets in %.3f s", route->key,
            (double)(reset_ms - now_ms) / 1000.0);
        return reset_ms - now_ms;
    }
    return 0;
}

void gh_ratelimit_learn(struct gh_ratelimit *rl, const struct gh_rl_route *route,
                        const struct gh_rl_headers *h, int64_t now_ms)
{
    char key[KEY_MAX];
    int64_t reset_ms;

    if (rl == NULL || route == NULL || h == NULL)
        return;
    if (h->has_bucket && key_of(key, sizeof(key), "route:", route->key, "") == GH_OK) {
        char known[96];
        if (!kv_get_str(rl, key, known, sizeof(known), now_ms) || strcmp(known, h->bucket) != 0)
            kv_set_str(rl, key, h->bucket, (int64_t)ROUTE_TTL_S * 1000, now_ms);
    }
    if (!h->has_remaining || (!h->has_reset_after && !h->has_reset))
        return;
    reset_ms = h->has_reset_after ? now_ms + (int64_t)(h->reset_after * 1000.0 + 0.5)
                                  : (int64_t)(h->reset * 1000.0 + 0.5);
    if (reset_ms <= now_ms)
        return;
    if (h->has_bucket) {
        if (key_of_bucket(key, sizeof(key), h->bucket, route->major) != GH_OK)
            return;
    } else if (bucket_key(rl, route, key, sizeof(key), now_ms) != GH_OK) {
        return;
    }
    bucket_set(rl, key, h->remaining, reset_ms, now_ms);
}

void gh_ratelimit_on_429(struct gh_ratelimit *rl, const struct gh_rl_route *route,
                         const struct gh_rl_headers *h, double retry_after_s, int global, int64_t now_ms)
{
    char key[KEY_MAX];
    char until[24];
    int64_t wait_ms = (int64_t)(retry_after_s * 1000.0 + 0.5);

    if (rl == NULL || route == NULL)
        return;
    if (wait_ms < 1)
        wait_ms = 1;
    if (global) {
        (void)snprintf(until, sizeof(until), "%lld", (long long)now_ms + (long long)wait_ms);
        if (key_of(key, sizeof(key), "global_wait", "", "") == GH_OK)
            kv_set_str(rl, key, until, wait_ms, now_ms);
        return;
    }
    if (h != NULL && h->has_bucket) {
        if (key_of_bucket(key, sizeof(key), h->bucket, route->major) != GH_OK)
            return;
    } else if (bucket_key(rl, route, key, sizeof(key), now_ms) != GH_OK) {
        return;
    }
    bucket_set(rl, key, 0, now_ms + wait_ms, now_ms);
}

long long gh_ratelimit_count_invalid(struct gh_ratelimit *rl, int64_t now_ms)
{
    char key[KEY_MAX];
    char num[24];

    if (rl == NULL)
        return 0;
    (void)snprintf(num, sizeof(num), "%lld", (long long)(now_ms / 1000 / GH_RL_INVALID_WINDOW_S));
    if (key_of(key, sizeof(key), "invalid:", num, "") != GH_OK)
        return 0;
    return kv_incr(rl, key, INVALID_TTL_S, now_ms);
}

void gh_ratelimit_stop(struct gh_ratelimit *rl)
{
    char key[KEY_MAX];

    if (rl == NULL)
        return;
    rl->stopped = 1;
    /* the value is the token's fingerprint: a new token is not blocked */
    if (key_of(key, sizeof(key), "unauthorized", "", "") == GH_OK)
        kv_set_str(rl, key, rl->fingerprint, (int64_t)UNAUTH_TTL_S * 1000, 0);
}

int gh_ratelimit_stopped(struct gh_ratelimit *rl)
{
    char key[KEY_MAX];
    char val[FINGERPRINT_LEN + 8];

    if (rl == NULL)
        return 0;
    if (rl->stopped)
        return 1;
    if (rl->redis == NULL || key_of(key, sizeof(key), "unauthorized", "", "") != GH_OK)
        return 0;
    /* only Redis matters here: the local table holds nothing another process wrote */
    {
        const char *argv[2] = {"GET", key};
        redisReply *r = rcmd(rl, 2, argv, REDIS_REPLY_STRING);
        if (r != NULL && r->type == REDIS_REPLY_STRING) {
            (void)snprintf(val, sizeof(val), "%.*s", (int)r->len, r->str);
            if (strcmp(val, rl->fingerprint) == 0)
                rl->stopped = 1;
        }
        freeReplyObject(r);
    }
    return rl->stopped;
}
