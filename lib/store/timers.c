/* timers.c - durable timers (scheduled_actions) and their promotion into
 * the job queue. The guarantees are stated in timers.h and docs/jobs.md.
 *
 * Promotion, one transaction:
 *   SELECT due rows ... FOR UPDATE SKIP LOCKED   (another scheduler skips them)
 *   gh_queue_enqueue each as job "timer:<id>"    (dedupe key = job id)
 *   UPDATE the enqueued rows to 'queued'
 *   COMMIT
 * Redis is written before PostgreSQL commits, so a crash or a PostgreSQL
 * failure between the two leaves jobs in Redis for rows still 'pending'.
 * That is safe: the next promotion finds each job's dedupe key, enqueues
 * nothing and only marks the row. The other order (mark, then enqueue) could
 * lose a timer, which is the one thing this module must not do.
 *
 * Times are compared against the caller's now_ms rather than now(), so the
 * scheduler and the tests decide what "due" means; the stored queued_at is
 * that same clock. fired_at is when the worker took the job (gh_job.taken_ms,
 * the worker's wall clock), finished_at the database's now(). */
#include "store/timers.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ctx.h"
#include "core/err.h"
#include "core/log.h"
#include "core/str.h"
#include "store/pg.h"
#include "store/queue.h"
#include "web/metrics.h"

#define TIMERS_KIND_MAX 63
#define TIMERS_PROMOTE_MAX 5000
#define TIMERS_JOB_ID_MAX 40

static const char SQL_INSERT[] =
    "INSERT INTO scheduled_actions (guild_id, kind, payload, idempotency_key, due_at) "
    "VALUES ($1::bigint, $2, $3::jsonb, $4, to_timestamp($5::bigint / 1000.0)) "
    "ON CONFLICT ON CONSTRAINT scheduled_actions_guild_id_idempotency_key_key DO NOTHING RETURNING id";
static const char SQL_BY_KEY[] = "SELECT id FROM scheduled_actions "
                                 "WHERE guild_id IS NOT DISTINCT FROM $1::bigint AND idempotency_key = $2";
static const char SQL_CANCEL[] = "UPDATE scheduled_actions SET state = 'cancelled', finished_at = now() "
                                 "WHERE id = $1::bigint AND state IN ('pending', 'queued') RETURNING id";
static const char SQL_STATE[] = "SELECT state FROM scheduled_actions WHERE id = $1::bigint";
/* $1 now_ms, $2 grace_ms, $3 limit. */
static const char SQL_DUE[] =
    "SELECT id, coalesce(guild_id, 0), kind, payload::text, state = 'queued', "
    "(extract(epoch FROM due_at) * 1000)::bigint "
    "FROM scheduled_actions "
    "WHERE state IN ('pending', 'queued') AND ("
    "(state = 'pending' AND due_at <= to_timestamp($1::bigint / 1000.0)) OR "
    "(state = 'queued' AND queued_at <= to_timestamp(($1::bigint - $2::bigint) / 1000.0))) "
    "ORDER BY due_at LIMIT $3::int FOR UPDATE SKIP LOCKED";
/* $1 now_ms, $2 every marked id, $3 ids whose job was enqueued now. */
static const char SQL_MARK[] =
    "UPDATE scheduled_actions SET state = 'queued', queued_at = to_timestamp($1::bigint / 1000.0), "
    "attempts = attempts + CASE WHEN state = 'pending' OR id = ANY($3::bigint[]) THEN 1 ELSE 0 END "
    "WHERE id = ANY($2::bigint[])";
static const char SQL_ENQUEUE_FAILED[] =
    "UPDATE scheduled_actions SET state = 'failed', attempts = attempts + 1, finished_at = now(), "
    "last_error = left($2, 2000) WHERE id = $1::bigint";
static const char SQL_NEXT_DUE[] = "SELECT (extract(epoch FROM min(due_at)) * 1000)::bigint - $1::bigint "
                                   "FROM scheduled_actions WHERE state = 'pending'";
static const char SQL_STARTED[] =
    "UPDATE scheduled_actions "
    "SET fired_at = coalesce(fired_at, to_timestamp($2::bigint / 1000.0), now()) "
    "WHERE id = $1::bigint AND state IN ('pending', 'queued', 'failed') "
    "RETURNING id";
/* fired_at: the first start, which is when the worker took the job ($2/$3, ms;
 * NULL when unknown: now). */
static const char SQL_DONE[] =
    "UPDATE scheduled_actions SET state = 'done', "
    "fired_at = coalesce(fired_at, to_timestamp($2::bigint / 1000.0), now()), finished_at = now() "
    "WHERE id = $1::bigint AND state IN ('pending', 'queued', 'failed') "
    "RETURNING extract(epoch FROM fired_at - due_at)::float8, kind";
static const char SQL_FAILED[] =
    "UPDATE scheduled_actions SET state = 'failed', last_error = left($2, 2000), "
    "fired_at = coalesce(fired_at, to_timestamp($3::bigint / 1000.0), now()), finished_at = now() "
    "WHERE id = $1::bigint AND state IN ('pending', 'queued') RETURNING kind";
static const char SQL_RETRYING[] = "UPDATE scheduled_actions SET last_error = left($2, 2000), "
                                   "fired_at = coalesce(fired_at, to_timestamp($3::bigint / 1000.0), now()) "
                                   "WHERE id = $1::bigint AND state IN ('pending', 'queued', 'failed') "
                                   "RETURNING kind";

/* ---- helpers --------------------------------------------------------------------------- */

static int valid_kind(const char *k)
{
    size_t i;

    if (!k || !*k)
        return 0;
    for (i = 0; k[i]; i++)
        if (i >= TIMERS_KIND_MAX || !((k[i] >= 'a' && k[i] <= 'z') || (k[i] >= '0' && k[i] <= '9') ||
                                      k[i] == '_' || k[i] == '.' || k[i] == ':' || k[i] == '-'))
            return 0;
    return 1;
}

static const char *queue_of(const struct gh_ctx *ctx)
{
    return ctx->queue && *ctx->queue ? ctx->queue : GH_QUEUE_DEFAULT;
}

static void fmt_i64(char *out, size_t size, int64_t v)
{
    snprintf(out, size, "%" PRId64, v);
}

static int64_t col_i64(const PGresult *res, int row, int col)
{
    int64_t v = 0;

    if (PQgetisnull(res, row, col) || gh_cstr_to_i64(PQgetvalue(res, row, col), &v) != GH_OK)
        return 0;
    return v;
}

/* State of a timer: GH_OK with state copied, GH_ENOTFOUND, GH_EPG. */
static int timer_state(struct gh_ctx *ctx, const char *id, char *state, size_t size)
{
    const char *p[1] = {id};
    PGresult *res = gh_pg_exec_prepared(ctx->pg, "timers_state", SQL_STATE, 1, p);
    int rc = GH_EPG;

    if (!res)
        return GH_EPG;
    if (PQntuples(res) == 0) {
        rc = GH_ENOTFOUND;
    } else {
        snprintf(state, size, "%s", PQgetvalue(res, 0, 0));
        rc = GH_OK;
    }
    PQclear(res);
    return rc;
}

/* A growing "{1,2,3}" array literal: idlist_open, idlist_add..., idlist_close;
 * l->s is the text; the caller frees it. */
struct idlist {
    char *s;
    size_t len, cap;
    int n;
};

static int idlist_add(struct idlist *l, int64_t id)
{
    char num[24];
    size_t need;

    fmt_i64(num, sizeof(num), id);
    need = l->len + strlen(num) + 3;
    if (need > l->cap) {
        size_t cap = l->cap * 2;
        char *p;

        while (cap < need)
            cap *= 2;
        p = realloc(l->s, cap);
        if (!p)
            return GH_ENOMEM;
        l->s = p;
        l->cap = cap;
    }
    if (l->n)
        l->s[l->len++] = ',';
    memcpy(l->s + l->len, num, strlen(num));
    l->len += strlen(num);
    l->n++;
    return GH_OK;
}

static int idlist_open(struct idlist *l)
{
    memset(l, 0, sizeof(*l));
    l->cap = 256;
    l->s = malloc(l->cap);
    if (!l->s)
        return GH_ENOMEM;
    l->s[0] = '{';
    l->len = 1;
    return GH_OK;
}

static int idlist_close(struct idlist *l)
{
    if (l->len + 2 > l->cap) {
        char *p = realloc(l->s, l->len + 2);
        if (!p)
            return GH_ENOMEM;
        l->s = p;
        l->cap = l->len + 2;
    }
    l->s[l->len++] = '}';
    l->s[l->len] = '\0';
    return GH_OK;
}

/* ---- scheduling ------------------------------------------------------------------------ */

int gh_timers_schedule(struct gh_ctx *ctx, uint64_t guild_id, const char *kind, json_object *payload,
                       const char *idempotency_key, int64_t due_ms, int64_t *timer_id)
{
    char guild[24], due[24];
    const char *params[5];
    const char *ptext;
    PGresult *res = NULL;
    int rc = GH_EINVAL;

    if (timer_id)
        *timer_id = 0;
    if (!ctx || !ctx->pg || !timer_id)
        return GH_EINVAL;
    if (!valid_kind(kind) || !idempotency_key || !*idempotency_key ||
        strlen(idempotency_key) > GH_TIMERS_KEY_MAX || due_ms <= 0 || guild_id > (uint64_t)INT64_MAX ||
        (payload && !json_object_is_type(payload, json_type_object))) {
        GH_ERROR(&ctx->log, "timers: schedule refused: bad %s (kind '%s')",
                 !valid_kind(kind) ? "kind"
                 : (!idempotency_key || !*idempotency_key || strlen(idempotency_key) > GH_TIMERS_KEY_MAX)
                     ? "idempotency key (1-200 bytes)"
                 : due_ms <= 0                    ? "due time"
                 : guild_id > (uint64_t)INT64_MAX ? "guild id"
                                                  : "payload (not an object)",
                 kind ? kind : "");
        return GH_EINVAL;
    }
    snprintf(guild, sizeof(guild), "%" PRIu64, guild_id);
    fmt_i64(due, sizeof(due), due_ms);
    ptext = payload ? json_object_to_json_string_ext(payload, JSON_C_TO_STRING_PLAIN) : "{}";
    params[0] = guild_id ? guild : NULL;
    params[1] = kind;
    params[2] = ptext;
    params[3] = idempotency_key;
    params[4] = due;
    res = gh_pg_exec_prepared(ctx->pg, "timers_insert", SQL_INSERT, 5, params);
    if (!res) {
        rc = strcmp(gh_pg_sqlstate(ctx->pg), "23503") == 0 ? GH_ENOTFOUND : GH_EPG;
        GH_ERROR(&ctx->log, "timers: could not schedule %s (key %s): %s", kind, idempotency_key,
                 rc == GH_ENOTFOUND ? "unknown guild" : gh_pg_errmsg(ctx->pg));
        goto out;
    }
    if (PQntuples(res) == 1) {
        *timer_id = col_i64(res, 0, 0);
        rc = GH_OK;
        goto out;
    }
    /* The key exists: report the row it names, change nothing. */
    PQclear(res);
    params[1] = idempotency_key;
    res = gh_pg_exec_prepared(ctx->pg, "timers_by_key", SQL_BY_KEY, 2, params);
    if (!res) {
        rc = GH_EPG;
        goto out;
    }
    if (PQntuples(res) != 1) {
        rc = GH_EPG; /* deleted in between (its guild was removed): rare, let the caller retry */
        GH_WARN(&ctx->log, "timers: key %s conflicted but its row is gone", idempotency_key);
        goto out;
    }
    *timer_id = col_i64(res, 0, 0);
    rc = GH_EDUPLICATE;
out:
    PQclear(res);
    return rc;
}

int gh_timers_cancel(struct gh_ctx *ctx, int64_t timer_id)
{
    char id[24], state[32];
    const char *p[1] = {id};
    PGresult *res;
    int rc, n;

    if (!ctx || !ctx->pg || timer_id <= 0)
        return GH_EINVAL;
    fmt_i64(id, sizeof(id), timer_id);
    res = gh_pg_exec_prepared(ctx->pg, "timers_cancel", SQL_CANCEL, 1, p);
    if (!res) {
        GH_ERROR(&ctx->log, "timers: could not cancel timer %s: %s", id, gh_pg_errmsg(ctx->pg));
        return GH_EPG;
    }
    n = PQntuples(res);
    PQclear(res);
    if (n == 1) {
        GH_INFO(&ctx->log, "timers: timer %s cancelled", id);
        return GH_OK;
    }
    rc = timer_state(ctx, id, state, sizeof(state));
    if (rc != GH_OK)
        return rc;
    return strcmp(state, "cancelled") == 0 ? GH_OK : GH_ECONFLICT;
}

/* ---- promotion ------------------------------------------------------------------------- */

/* Enqueues one due row. GH_OK (enqueued), GH_EDUPLICATE (its job is already
 * there), GH_EREDIS, or another error: the row cannot become a job. */
static int enqueue_row(struct gh_ctx *ctx, const PGresult *res, int i)
{
    int64_t id = col_i64(res, i, 0);
    int64_t guild = col_i64(res, i, 1);
    json_object *payload = json_tokener_parse(PQgetvalue(res, i, 3));
    char jid[TIMERS_JOB_ID_MAX];
    int rc;

    if (!payload || !json_object_is_type(payload, json_type_object)) {
        json_object_put(payload);
        return GH_EJSON; /* cannot happen with the table's CHECK; still never silent */
    }
    json_object_object_add(payload, "timer_id", json_object_new_int64(id));
    snprintf(jid, sizeof(jid), "timer:%" PRId64, id);
    rc = gh_queue_enqueue(ctx->redis, queue_of(ctx), jid, PQgetvalue(res, i, 2), (uint64_t)guild, payload, 0);
    json_object_put(payload);
    return rc;
}

int gh_timers_promote(struct gh_ctx *ctx, int max, int64_t now_ms, int *promoted)
{
    char now[24], grace[24], limit[16];
    const char *p[3];
    struct idlist marked, fresh;
    struct gh_metrics_batch mb;
    PGresult *res = NULL;
    int rc = GH_EPG, redis_rc = GH_OK, n, i, repromoted = 0, in_tx = 0;

    if (promoted)
        *promoted = 0;
    if (!ctx || !ctx->pg || !ctx->redis || max < 1 || now_ms <= 0)
        return GH_EINVAL;
    if (max > TIMERS_PROMOTE_MAX)
        max = TIMERS_PROMOTE_MAX;
    memset(&marked, 0, sizeof(marked));
    memset(&fresh, 0, sizeof(fresh));
    gh_metrics_batch_init(&mb);
    fmt_i64(now, sizeof(now), now_ms);
    fmt_i64(grace, sizeof(grace), GH_TIMERS_REPROMOTE_GRACE_MS);
    snprintf(limit, sizeof(limit), "%d", max);

    if (gh_pg_begin(ctx->pg) != GH_OK)
        goto pg_failed;
    in_tx = 1;
    p[0] = now;
    p[1] = grace;
    p[2] = limit;
    res = gh_pg_exec_prepared(ctx->pg, "timers_due", SQL_DUE, 3, p);
    if (!res)
        goto pg_failed;
    n = PQntuples(res);
    if (n == 0) {
        rc = GH_OK;
        goto out;
    }
    if (idlist_open(&marked) != GH_OK || idlist_open(&fresh) != GH_OK) {
        rc = GH_ENOMEM;
        goto out;
    }
    for (i = 0; i < n; i++) {
        int64_t id = col_i64(res, i, 0);
        int was_queued = PQgetvalue(res, i, 4)[0] == 't';
        int erc = enqueue_row(ctx, res, i);

        if (erc == GH_EREDIS) {
            redis_rc = GH_EREDIS; /* mark what went in; the rest waits for Redis */
            GH_WARN(&ctx->log, "timers: Redis unavailable while promoting; %d of %d due timer(s) promoted", i,
                    n);
            break;
        }
        if (erc != GH_OK && erc != GH_EDUPLICATE) {
            char idt[24], msg[160];
            const char *fp[2] = {idt, msg};

            fmt_i64(idt, sizeof(idt), id);
            snprintf(msg, sizeof(msg), "could not be enqueued: %s", gh_strerror(erc));
            GH_ERROR(&ctx->log, "timers: timer %s (%s) %s; marked failed", idt, PQgetvalue(res, i, 2), msg);
            if (gh_pg_command(ctx->pg, SQL_ENQUEUE_FAILED, 2, fp) != GH_OK)
                goto pg_failed;
            continue;
        }
        if (idlist_add(&marked, id) != GH_OK || (erc == GH_OK && idlist_add(&fresh, id) != GH_OK)) {
            rc = GH_ENOMEM;
            goto out;
        }
        if (was_queued && erc == GH_OK) {
            repromoted++;
            GH_WARN(&ctx->log,
                    "timers: timer %" PRId64 " (%s) was queued but its job is gone; enqueued again", id,
                    PQgetvalue(res, i, 2));
        } else if (!was_queued) {
            int64_t due_ms = col_i64(res, i, 5);
            gh_metrics_batch_observe(&mb, "gh_timer_promote_lateness_seconds", NULL,
                                     now_ms > due_ms ? (double)(now_ms - due_ms) / 1000.0 : 0.0);
            if (mb.n + 3 > GH_METRICS_BATCH_MAX)
                gh_metrics_defer(ctx->redis, &mb);
        }
    }
    if (marked.n > 0) {
        if (idlist_close(&marked) != GH_OK || idlist_close(&fresh) != GH_OK) {
            rc = GH_ENOMEM;
            goto out;
        }
        p[0] = now;
        p[1] = marked.s;
        p[2] = fresh.s;
        if (gh_pg_command(ctx->pg, SQL_MARK, 3, p) != GH_OK)
            goto pg_failed;
    }
    if (gh_pg_commit(ctx->pg) != GH_OK) {
        in_tx = 0;
        goto pg_failed;
    }
    in_tx = 0;
    if (promoted)
        *promoted = marked.n;
    gh_metrics_batch_incr(&mb, "gh_timers_promoted_total", NULL, marked.n);
    if (repromoted)
        gh_metrics_batch_incr(&mb, "gh_timers_repromoted_total", NULL, repromoted);
    gh_metrics_defer(ctx->redis, &mb);
    gh_metrics_flush(ctx->redis);
    rc = redis_rc;
    goto out;

pg_failed:
    rc = GH_EPG;
    GH_ERROR(&ctx->log, "timers: promotion failed, nothing marked: %s", gh_pg_errmsg(ctx->pg));
out:
    if (in_tx)
        gh_pg_rollback(ctx->pg);
    PQclear(res);
    free(marked.s);
    free(fresh.s);
    return rc;
}

int64_t gh_timers_next_due_in(struct gh_ctx *ctx, int64_t now_ms, int64_t cap_ms)
{
    char now[24];
    const char *p[1] = {now};
    PGresult *res;
    int64_t v = -1;

    if (!ctx || !ctx->pg)
        return -1;
    fmt_i64(now, sizeof(now), now_ms);
    res = gh_pg_exec_prepared(ctx->pg, "timers_next_due", SQL_NEXT_DUE, 1, p);
    if (!res)
        return -1;
    if (PQntuples(res) == 1 && !PQgetisnull(res, 0, 0)) {
        v = col_i64(res, 0, 0);
        if (v < 0)
            v = 0;
        if (cap_ms >= 0 && v > cap_ms)
            v = cap_ms;
    }
    PQclear(res);
    return v;
}

/* ---- the worker's side ----------------------------------------------------------------- */

int64_t gh_timers_job_timer_id(const struct gh_job *job)
{
    json_object *v = NULL;
    int64_t id = 0;

    if (!job || !job->payload || !json_object_is_type(job->payload, json_type_object) ||
        !json_object_object_get_ex(job->payload, "timer_id", &v) || !v)
        return 0;
    if (json_object_is_type(v, json_type_int))
        id = json_object_get_int64(v);
    else if (json_object_is_type(v, json_type_string) &&
             gh_cstr_to_i64(json_object_get_string(v), &id) != GH_OK)
        id = 0;
    return id > 0 ? id : 0;
}

int gh_timers_job_started(struct gh_ctx *ctx, const struct gh_job *job)
{
    int64_t timer_id = gh_timers_job_timer_id(job);
    char id[24], taken[24], state[32];
    const char *p[2] = {id, NULL};
    PGresult *res;
    int n, rc;

    if (!ctx || !ctx->pg || timer_id == 0)
        return GH_EINVAL;
    fmt_i64(id, sizeof(id), timer_id);
    if (job->taken_ms > 0) {
        fmt_i64(taken, sizeof(taken), job->taken_ms);
        p[1] = taken;
    }
    res = gh_pg_exec_prepared(ctx->pg, "timers_started", SQL_STARTED, 2, p);
    if (!res) {
        GH_WARN(&ctx->log, "timers: timer %s: could not record its start (%s); running it anyway", id,
                gh_pg_errmsg(ctx->pg));
        return GH_EPG;
    }
    n = PQntuples(res);
    PQclear(res);
    if (n == 1)
        return GH_OK;
    rc = timer_state(ctx, id, state, sizeof(state));
    if (rc == GH_OK) {
        GH_INFO(&ctx->log, "timers: timer %s is %s; its job is skipped", id, state);
        return GH_ECONFLICT;
    }
    if (rc == GH_ENOTFOUND)
        GH_INFO(&ctx->log, "timers: timer %s no longer exists; its job is skipped", id);
    return rc;
}

int gh_timers_job_finished(struct gh_ctx *ctx, const struct gh_job *job, int ok, int final, const char *error)
{
    int64_t timer_id = gh_timers_job_timer_id(job);
    char id[24], taken[24], state[32];
    const char *p[3];
    struct gh_metrics_batch mb;
    PGresult *res;
    int n, rc;

    if (!ctx || !ctx->pg || timer_id == 0)
        return GH_EINVAL;
    fmt_i64(id, sizeof(id), timer_id);
    fmt_i64(taken, sizeof(taken), job->taken_ms);
    p[0] = id;
    p[1] = error && *error ? error : "failed (no error given)";
    p[2] = job->taken_ms > 0 ? taken : NULL;
    if (ok) {
        p[1] = p[2];
        res = gh_pg_exec_prepared(ctx->pg, "timers_done", SQL_DONE, 2, p);
    } else if (final) {
        res = gh_pg_exec_prepared(ctx->pg, "timers_failed", SQL_FAILED, 3, p);
    } else {
        res = gh_pg_exec_prepared(ctx->pg, "timers_retrying", SQL_RETRYING, 3, p);
    }
    if (!res) {
        GH_ERROR(&ctx->log,
                 "timers: timer %s (job %s): could not record the run (%s): %s; the row stays queued and is "
                 "promoted again after the grace period",
                 id, job->id,
                 ok      ? "done"
                 : final ? "failed"
                         : "will retry",
                 gh_pg_errmsg(ctx->pg));
        return GH_EPG;
    }
    n = PQntuples(res);
    gh_metrics_batch_init(&mb);
    if (n == 1 && ok) {
        double late = PQgetisnull(res, 0, 0) ? 0.0 : strtod(PQgetvalue(res, 0, 0), NULL);
        gh_metrics_batch_observe(&mb, "gh_timer_lateness_seconds", NULL, late < 0 ? 0.0 : late);
        gh_metrics_batch_incr(&mb, "gh_timers_fired_total", "outcome=\"done\"", 1);
    } else if (n == 1 && final) {
        GH_ERROR(&ctx->log, "timers: timer %s (%s) failed for good after attempt %d: %s", id,
                 PQgetvalue(res, 0, 0), job->attempt, p[1]);
        gh_metrics_batch_incr(&mb, "gh_timers_fired_total", "outcome=\"failed\"", 1);
    }
    PQclear(res);
    if (mb.n)
        gh_metrics_batch_flush(ctx->redis, &mb);
    if (n == 1)
        return GH_OK;
    rc = timer_state(ctx, id, state, sizeof(state));
    if (rc == GH_OK) {
        GH_INFO(&ctx->log, "timers: timer %s is already %s; run of job %s not recorded", id, state, job->id);
        return GH_OK;
    }
    if (rc == GH_ENOTFOUND)
        GH_WARN(&ctx->log, "timers: timer %s of job %s does not exist", id, job->id);
    return rc;
}
