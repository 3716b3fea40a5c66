/* metrics.c - counters and histograms in one Redis hash, rendered as
 * Prometheus text.
 *
 * Immediate recording is one round trip per call or batch: one small Lua
 * script applies every HINCRBY / HINCRBYFLOAT of the batch (a histogram's
 * bucket, sum and count move together, atomically). Deferred recording sums
 * batches in a table in the process and sends the table with the same script
 * about once a second (see metrics.h). Rendering reads the hash with
 * HGETALL, sorts the series by family and labels, and turns the per-bucket
 * counts into the cumulative buckets Prometheus expects. */
#include "web/metrics.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/str.h"
#include "core/timeutil.h"
#include "store/redis.h"

#define FIELD_MAX 512

#define GH_BUCKET_STR(s) s,
static const char *const bucket_le[] = {GH_METRICS_BUCKETS(GH_BUCKET_STR)};
#undef GH_BUCKET_STR
#define N_BUCKETS ((int)(sizeof(bucket_le) / sizeof(bucket_le[0])))
#define INF_BUCKET N_BUCKETS

/* ARGV holds (op, field, value) triples: 'f' is HINCRBYFLOAT, else HINCRBY. */
static const char batch_lua[] = "for i=1,#ARGV,3 do "
                                "if ARGV[i]=='f' then redis.call('HINCRBYFLOAT',KEYS[1],ARGV[i+1],ARGV[i+2]) "
                                "else redis.call('HINCRBY',KEYS[1],ARGV[i+1],ARGV[i+2]) end end return 1";

int gh_metrics_name_ok(const char *name)
{
    if (!name || !*name)
        return 0;
    if (!(isalpha((unsigned char)name[0]) || name[0] == '_' || name[0] == ':'))
        return 0;
    for (const char *p = name + 1; *p; p++)
        if (!(isalnum((unsigned char)*p) || *p == '_' || *p == ':'))
            return 0;
    return 1;
}

/* Labels text must not break the line or the braces. */
static int labels_ok(const char *labels)
{
    if (!labels)
        return 1;
    for (const char *p = labels; *p; p++)
        if (*p == '\n' || *p == '\r' || *p == '{' || *p == '}')
            return 0;
    return 1;
}

/* name{labels} or name (labels NULL/empty), with an optional extra label. */
static int series_name(char *out, size_t size, const char *name, const char *suffix, const char *labels,
                       const char *extra)
{
    int has_labels = labels && *labels;
    int has_extra = extra && *extra;
    if (!has_labels && !has_extra)
        return gh_snprintf(out, size, "%s%s", name, suffix);
    return gh_snprintf(out, size, "%s%s{%s%s%s}", name, suffix, has_labels ? labels : "",
                       has_labels && has_extra ? "," : "", has_extra ? extra : "");
}

void gh_metrics_batch_init(struct gh_metrics_batch *b)
{
    b->n = 0;
}

static void batch_add(struct gh_metrics_batch *b, char op, const char *field, const char *value)
{
    if (b->n >= GH_METRICS_BATCH_MAX)
        return;
    if (gh_snprintf(b->ops[b->n].field, sizeof(b->ops[b->n].field), "%s", field) != GH_OK ||
        gh_snprintf(b->ops[b->n].value, sizeof(b->ops[b->n].value), "%s", value) != GH_OK)
        return;
    b->ops[b->n].op = op;
    b->n++;
}

void gh_metrics_batch_incr(struct gh_metrics_batch *b, const char *name, const char *labels, long long by)
{
    char field[GH_METRICS_FIELD_MAX], value[32];
    if (!gh_metrics_name_ok(name) || !labels_ok(labels))
        return;
    if (series_name(field, sizeof(field), name, "", labels, NULL) != GH_OK)
        return;
    (void)snprintf(value, sizeof(value), "%lld", by); /* 21 bytes at most */
    batch_add(b, 'i', field, value);
}

void gh_metrics_batch_observe(struct gh_metrics_batch *b, const char *name, const char *labels,
                              double seconds)
{
    char bucket[GH_METRICS_FIELD_MAX], sum[GH_METRICS_FIELD_MAX], count[GH_METRICS_FIELD_MAX], le[32],
        secs[32];
    if (!gh_metrics_name_ok(name) || !labels_ok(labels))
        return;
    if (b->n + 3 > GH_METRICS_BATCH_MAX)
        return; /* all three or none */
    if (!isfinite(seconds) || seconds < 0)
        seconds = 0;
    static double bound[N_BUCKETS];
    static int have_bounds; /* parsed once: the strings are constants */
    if (!have_bounds) {
        for (int i = 0; i < N_BUCKETS; i++)
            bound[i] = strtod(bucket_le[i], NULL);
        have_bounds = 1;
    }
    int idx = INF_BUCKET;
    for (int i = 0; i < N_BUCKETS; i++) {
        if (seconds <= bound[i]) {
            idx = i;
            break;
        }
    }
    (void)snprintf(le, sizeof(le), "le=\"%s\"", idx == INF_BUCKET ? "+Inf" : bucket_le[idx]);
    (void)snprintf(secs, sizeof(secs), "%.6f", seconds);
    if (series_name(bucket, sizeof(bucket), name, "_bucket", labels, le) != GH_OK ||
        series_name(sum, sizeof(sum), name, "_sum", labels, NULL) != GH_OK ||
        series_name(count, sizeof(count), name, "_count", labels, NULL) != GH_OK)
        return;
    batch_add(b, 'i', bucket, "1");
    batch_add(b, 'f', sum, secs);
    batch_add(b, 'i', count, "1");
}

void gh_metrics_batch_flush(struct gh_redis *r, struct gh_metrics_batch *b)
{
    const char *argv[4 + 3 * GH_METRICS_BATCH_MAX];
    size_t lens[4 + 3 * GH_METRICS_BATCH_MAX];
    static const char op_i[] = "i", op_f[] = "f";
    int argc = 0;

    if (!r || b->n == 0) {
        b->n = 0;
        return;
    }
    argv[argc++] = "EVAL";
    argv[argc++] = batch_lua;
    argv[argc++] = "1";
    argv[argc++] = GH_METRICS_KEY;
    for (int i = 0; i < b->n; i++) {
        argv[argc++] = b->ops[i].op == 'f' ? op_f : op_i;
        argv[argc++] = b->ops[i].field;
        argv[argc++] = b->ops[i].value;
    }
    for (int i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    redisReply *rep = gh_redis_cmdargv(r, argc, argv, lens);
    freeReplyObject(rep);
    b->n = 0;
}

/* ---- deferred ------------------------------------------------------------ */

/* Open addressing over twice the capacity, so probes stay short. */
#define PENDING_SLOTS (2 * GH_METRICS_PENDING_MAX)

struct pending_entry {
    uint32_t hash;
    char used;
    char op; /* 'i' or 'f', as in the batch */
    long long i;
    double f;
    char field[GH_METRICS_FIELD_MAX];
};

/* Process state: the one table of the process (see metrics.h). */
static struct {
    struct pending_entry slot[PENDING_SLOTS];
    int n;
    int64_t last_flush_ms;
} pending;

static uint32_t field_hash(const char *s)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 16777619u;
    }
    return h;
}

/* The slot holding field, or the empty slot where it would go. */
static struct pending_entry *pending_find(const char *field, uint32_t h)
{
    uint32_t i = h & (PENDING_SLOTS - 1);
    for (;;) {
        struct pending_entry *e = &pending.slot[i];
        if (!e->used || (e->hash == h && strcmp(e->field, field) == 0))
            return e;
        i = (i + 1) & (PENDING_SLOTS - 1); /* never full: n <= PENDING_SLOTS / 2 */
    }
}

/* Series of b not yet in the table (a field repeated in b counts once per
 * repeat: an upper bound is enough). */
static int new_series(const struct gh_metrics_batch *b)
{
    int fresh = 0;
    for (int k = 0; k < b->n; k++)
        fresh += !pending_find(b->ops[k].field, field_hash(b->ops[k].field))->used;
    return fresh;
}

int gh_metrics_pending(void)
{
    return pending.n;
}

void gh_metrics_defer(struct gh_redis *r, struct gh_metrics_batch *b)
{
    if (b->n == 0)
        return;
    if (pending.n + new_series(b) > GH_METRICS_PENDING_MAX) {
        (void)gh_metrics_flush(r);
        if (pending.n + new_series(b) > GH_METRICS_PENDING_MAX) {
            b->n = 0; /* dropped whole: metrics never block or fail the caller */
            return;
        }
    }
    for (int k = 0; k < b->n; k++) {
        uint32_t h = field_hash(b->ops[k].field);
        struct pending_entry *e = pending_find(b->ops[k].field, h);
        if (!e->used) {
            memcpy(e->field, b->ops[k].field, sizeof(e->field));
            e->hash = h;
            e->op = b->ops[k].op;
            e->i = 0;
            e->f = 0;
            e->used = 1;
            pending.n++;
        }
        if (e->op == 'f')
            e->f += strtod(b->ops[k].value, NULL);
        else
            e->i += strtoll(b->ops[k].value, NULL, 10);
    }
    b->n = 0;
}

static void pending_clear(void)
{
    for (int i = 0; i < PENDING_SLOTS; i++)
        pending.slot[i].used = 0;
    pending.n = 0;
}

int gh_metrics_flush(struct gh_redis *r)
{
    const char *argv[4 + 3 * GH_METRICS_PENDING_MAX];
    size_t lens[4 + 3 * GH_METRICS_PENDING_MAX];
    char values[GH_METRICS_PENDING_MAX][32];
    int argc = 0, nv = 0, rc;

    pending.last_flush_ms = gh_mono_ms();
    if (pending.n == 0)
        return GH_OK;
    if (!r)
        return GH_EREDIS;
    argv[argc++] = "EVAL";
    argv[argc++] = batch_lua;
    argv[argc++] = "1";
    argv[argc++] = GH_METRICS_KEY;
    for (int i = 0; i < PENDING_SLOTS && nv < GH_METRICS_PENDING_MAX; i++) {
        const struct pending_entry *e = &pending.slot[i];
        if (!e->used)
            continue;
        if (e->op == 'f')
            (void)snprintf(values[nv], sizeof(values[nv]), "%.6f", e->f); /* sums of seconds: fits */
        else
            (void)snprintf(values[nv], sizeof(values[nv]), "%lld", e->i);
        argv[argc++] = e->op == 'f' ? "f" : "i";
        argv[argc++] = e->field;
        argv[argc++] = values[nv++];
    }
    for (int i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    redisReply *rep = gh_redis_cmdargv(r, argc, argv, lens);
    if (!rep) {
        rc = GH_EREDIS; /* not sent, or no answer: keep the sums for the next flush */
    } else {
        rc = rep->type == REDIS_REPLY_ERROR ? GH_EINVAL : GH_OK;
        pending_clear();
    }
    freeReplyObject(rep);
    return rc;
}

int gh_metrics_flush_due(struct gh_redis *r, int64_t now_ms)
{
    if (pending.n == 0 || now_ms - pending.last_flush_ms < GH_METRICS_FLUSH_MS)
        return 0;
    return gh_metrics_flush(r) == GH_OK;
}

/* ---- immediate ------------------------------------------------------------- */

void gh_metrics_incr(struct gh_redis *r, const char *name, const char *labels, long long by)
{
    struct gh_metrics_batch b;
    if (!r)
        return;
    gh_metrics_batch_init(&b);
    gh_metrics_batch_incr(&b, name, labels, by);
    gh_metrics_batch_flush(r, &b);
}

void gh_metrics_observe(struct gh_redis *r, const char *name, const char *labels, double seconds)
{
    struct gh_metrics_batch b;
    if (!r)
        return;
    gh_metrics_batch_init(&b);
    gh_metrics_batch_observe(&b, name, labels, seconds);
    gh_metrics_batch_flush(r, &b);
}

/* ---- rendering ---------------------------------------------------------- */

enum kind { K_COUNTER = 0, K_BUCKET, K_SUM, K_COUNT };

struct series {
    char family[FIELD_MAX];
    char labels[FIELD_MAX]; /* without le */
    enum kind kind;
    int bucket;        /* K_BUCKET: index, INF_BUCKET for +Inf */
    const char *value; /* borrowed from the reply */
};

static int ends_with(const char *s, size_t len, const char *suffix)
{
    size_t n = strlen(suffix);
    return len >= n && memcmp(s + len - n, suffix, n) == 0;
}

static int bucket_index(const char *le, size_t len)
{
    if (len == 4 && memcmp(le, "+Inf", 4) == 0)
        return INF_BUCKET;
    for (int i = 0; i < N_BUCKETS; i++)
        if (strlen(bucket_le[i]) == len && memcmp(bucket_le[i], le, len) == 0)
            return i;
    return -1;
}

static int value_ok(const char *v)
{
    char *end = NULL;
    if (!v || !*v)
        return 0;
    (void)strtod(v, &end);
    return end && *end == '\0';
}

/* Splits "name{labels}" into s->family / s->labels; classifies buckets.
 * Returns 0 to skip a field we do not understand. */
static int parse_field(const char *field, const char *value, struct series *s)
{
    memset(s, 0, sizeof(*s));
    s->value = value;
    if (!value_ok(value) || strchr(field, '\n'))
        return 0;
    const char *brace = strchr(field, '{');
    size_t name_len = brace ? (size_t)(brace - field) : strlen(field);
    if (name_len == 0 || name_len >= sizeof(s->family))
        return 0;
    memcpy(s->family, field, name_len);
    s->family[name_len] = '\0';
    if (!gh_metrics_name_ok(s->family))
        return 0;
    if (brace) {
        size_t lab_len = strlen(brace + 1);
        if (lab_len == 0 || brace[lab_len] != '}' || lab_len - 1 >= sizeof(s->labels))
            return 0;
        memcpy(s->labels, brace + 1, lab_len - 1);
        s->labels[lab_len - 1] = '\0';
    }
    s->kind = K_COUNTER;
    if (ends_with(s->family, name_len, "_bucket")) {
        /* le is the last label: `le="x"` alone or after a comma. */
        char *le = strstr(s->labels, "le=\"");
        while (le && le != s->labels && le[-1] != ',')
            le = strstr(le + 1, "le=\"");
        if (le) {
            const char *v = le + 4;
            size_t vlen = strlen(v);
            int idx = vlen >= 1 && v[vlen - 1] == '"' ? bucket_index(v, vlen - 1) : -1;
            if (idx >= 0) {
                s->kind = K_BUCKET;
                s->bucket = idx;
                s->family[name_len - 7] = '\0';
                if (le != s->labels)
                    le--; /* drop the comma too */
                *le = '\0';
            }
        }
    }
    return 1;
}

static int cmp_series(const void *a, const void *b)
{
    const struct series *x = a, *y = b;
    int c = strcmp(x->family, y->family);
    if (c)
        return c;
    if ((c = strcmp(x->labels, y->labels)))
        return c;
    if (x->kind != y->kind)
        return (int)x->kind - (int)y->kind;
    return x->bucket - y->bucket;
}

/* After buckets are known: name_sum / name_count of a histogram family
 * become parts of it. */
static void classify_parts(struct series *all, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct series *s = &all[i];
        if (s->kind != K_COUNTER)
            continue;
        size_t len = strlen(s->family);
        enum kind k;
        size_t cut;
        if (ends_with(s->family, len, "_sum")) {
            k = K_SUM;
            cut = len - 4;
        } else if (ends_with(s->family, len, "_count")) {
            k = K_COUNT;
            cut = len - 6;
        } else {
            continue;
        }
        for (size_t j = 0; j < n; j++) {
            if (all[j].kind == K_BUCKET && strlen(all[j].family) == cut &&
                memcmp(all[j].family, s->family, cut) == 0) {
                s->family[cut] = '\0';
                s->kind = k;
                break;
            }
        }
    }
}

static int is_histogram(const struct series *all, size_t n, size_t from)
{
    for (size_t j = from; j < n && strcmp(all[j].family, all[from].family) == 0; j++)
        if (all[j].kind != K_COUNTER)
            return 1;
    return 0;
}

static int emit_labels(struct gh_buf *out, const char *labels, const char *le)
{
    int hl = labels && *labels, hle = le != NULL;
    if (!hl && !hle)
        return GH_OK;
    return gh_buf_printf(out, "{%s%s%s%s%s}", hl ? labels : "", hl && hle ? "," : "", hle ? "le=\"" : "",
                         hle ? le : "", hle ? "\"" : "");
}

/* One histogram label set: entries [from, to). */
static int emit_histogram(struct gh_buf *out, const struct series *all, size_t from, size_t to)
{
    long long counts[N_BUCKETS + 1] = {0};
    const char *sum = "0";
    long long count = -1;
    const char *fam = all[from].family, *labels = all[from].labels;
    int rc = GH_OK;

    for (size_t i = from; i < to; i++) {
        if (all[i].kind == K_BUCKET)
            counts[all[i].bucket] += strtoll(all[i].value, NULL, 10);
        else if (all[i].kind == K_SUM)
            sum = all[i].value;
        else if (all[i].kind == K_COUNT)
            count = strtoll(all[i].value, NULL, 10);
    }
    long long cum = 0;
    for (int b = 0; b <= N_BUCKETS && rc == GH_OK; b++) {
        cum += counts[b];
        rc = gh_buf_printf(out, "%s_bucket", fam);
        if (rc == GH_OK)
            rc = emit_labels(out, labels, b == INF_BUCKET ? "+Inf" : bucket_le[b]);
        if (rc == GH_OK)
            rc = gh_buf_printf(out, " %lld\n", b == INF_BUCKET && count >= 0 ? count : cum);
    }
    if (rc == GH_OK)
        rc = gh_buf_printf(out, "%s_sum", fam);
    if (rc == GH_OK)
        rc = emit_labels(out, labels, NULL);
    if (rc == GH_OK)
        rc = gh_buf_printf(out, " %s\n%s_count", sum, fam);
    if (rc == GH_OK)
        rc = emit_labels(out, labels, NULL);
    if (rc == GH_OK)
        rc = gh_buf_printf(out, " %lld\n", count >= 0 ? count : cum);
    return rc;
}

static int emit_all(struct gh_buf *out, struct series *all, size_t n)
{
    int rc = GH_OK;
    size_t i = 0;
    while (i < n && rc == GH_OK) {
        size_t fam_end = i;
        while (fam_end < n && strcmp(all[fam_end].family, all[i].family) == 0)
            fam_end++;
        int hist = is_histogram(all, n, i);
        rc = gh_buf_printf(out, "# TYPE %s %s\n", all[i].family, hist ? "histogram" : "counter");
        while (i < fam_end && rc == GH_OK) {
            if (!hist) {
                rc = gh_buf_puts(out, all[i].family);
                if (rc == GH_OK)
                    rc = emit_labels(out, all[i].labels, NULL);
                if (rc == GH_OK)
                    rc = gh_buf_printf(out, " %s\n", all[i].value);
                i++;
                continue;
            }
            size_t set_end = i;
            while (set_end < fam_end && strcmp(all[set_end].labels, all[i].labels) == 0)
                set_end++;
            rc = emit_histogram(out, all, i, set_end);
            i = set_end;
        }
        i = fam_end;
    }
    return rc;
}

int gh_metrics_render(struct gh_redis *r, struct gh_buf *out)
{
    redisReply *rep = NULL;
    struct series *all = NULL;
    size_t n = 0;
    int rc = GH_OK;
    int redis_up = 0;

    if (r)
        rep = gh_redis_cmd(r, "HGETALL %s", GH_METRICS_KEY);
    if (rep && rep->type == REDIS_REPLY_ARRAY) {
        redis_up = 1;
        size_t pairs = rep->elements / 2;
        if (pairs > 0) {
            all = calloc(pairs, sizeof(*all));
            if (!all) {
                rc = GH_ENOMEM;
                goto out;
            }
        }
        for (size_t i = 0; i < pairs; i++) {
            redisReply *f = rep->element[2 * i], *v = rep->element[2 * i + 1];
            if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
                continue;
            if (parse_field(f->str, v->str, &all[n]))
                n++;
        }
        classify_parts(all, n);
        if (n > 1)
            qsort(all, n, sizeof(*all), cmp_series);
        rc = emit_all(out, all, n);
        if (rc != GH_OK)
            goto out;
    }
    rc = gh_buf_printf(out, "# TYPE gh_up gauge\ngh_up 1\n# TYPE gh_redis_up gauge\ngh_redis_up %d\n",
                       redis_up);
out:
    free(all);
    freeReplyObject(rep);
    return rc;
}
