/* queue.h - the job queue: dedupe by id, immediate and delayed jobs, leases,
 * retries with backoff, dead letters, and the reaper for crashed workers.
 *
 * A job is one JSON text: {"attempt","id","kind","guild","payload",
 * "deadline_ms","enqueued_ms","due_ms"} ("attempt" always first: the reaper
 * script bumps it in place). The id is the dedupe key: enqueueing an id that
 * is queued, delayed, running, done or dead in the last 24 h does nothing.
 *
 * Keys of queue Q, all with the hash tag {q<n>} (n = gh_queue_partition(Q)),
 * so every script below touches one cluster slot:
 *   bot:{q<n>}:jobs:Q:ready        LIST  LPUSH in, taken from the right (FIFO)
 *   bot:{q<n>}:jobs:Q:delayed      ZSET  job text -> due time (ms): delayed jobs and retries
 *   bot:{q<n>}:jobs:Q:processing   LIST  jobs being run (BLMOVE / LMOVE target)
 *   bot:{q<n>}:jobs:Q:leases       ZSET  job id -> lease expiry (ms)
 *   bot:{q<n>}:jobs:Q:dead         LIST  jobs out of attempts, with "error" and "failed_ms"
 *   bot:{q<n>}:jobs:Q:seen:<id>    STRING state of the id (queued, running, done, dead,
 *                                  expired), TTL 24 h (plus the delay of a delayed job)
 *   bot:{q<n>}:jobs:Q:log          LIST  job_runs entries waiting for the worker's flush
 *                                  (lib/store/joblog.c), pushed in the same script as the
 *                                  transition they record
 *
 * Taking (gh_queue_take, one Lua script per poll): the acks the worker held
 * back for the batch it just ran are applied first (gh_queue_ack_defer); due
 * delayed jobs move to
 * ready; jobs whose lease expired move from processing back to ready with
 * attempt + 1 (the worker dead-letters a job whose attempt exceeds its kind's
 * max_attempts, so a job that kills its worker cannot loop for ever); a job
 * in processing without a lease (its worker died between BLMOVE and the
 * claim) gets one, so it is reaped in turn; then up to max jobs move from
 * ready to processing, each with a lease and its state "running". When none
 * is ready the caller blocks in BLMOVE (up to wait_ms, and no longer than the
 * next delayed job's due time), then claims the job in a second script.
 *
 * At-least-once: a worker that runs past its lease without renewing it (see
 * gh_queue_extend / gh_queue_renew) may see its job run again elsewhere;
 * handlers are idempotent (docs/jobs.md). */
#ifndef GH_STORE_QUEUE_H
#define GH_STORE_QUEUE_H

#include <json-c/json.h>
#include <stdint.h>

struct gh_redis;
struct gh_logger;
struct gh_buf;

#define GH_QUEUE_DEFAULT "default"
/* Number of queue partitions ({q0}..{q3}). */
#define GH_QUEUE_PARTITIONS 4
#define GH_QUEUE_DEFAULT_LEASE_MS 10000
#define GH_QUEUE_BACKOFF_BASE_MS 1000
#define GH_QUEUE_BACKOFF_CAP_MS 300000
#define GH_QUEUE_TAKE_MAX 64
#define GH_QUEUE_SEEN_TTL_S 86400

struct gh_job {
    char id[160];
    char kind[64];
    uint64_t guild_id;    /* 0 = none */
    json_object *payload; /* owned by the job; gh_job_cleanup releases it */
    int64_t deadline_ms;  /* 0 = none; past it the job is dropped and logged */
    int attempt;          /* 1 on the first run */
    int64_t enqueued_ms;
    int64_t due_ms;   /* when it was due (delayed job or retry); 0 = at enqueue */
    int64_t taken_ms; /* wall clock when this worker took it */
    char *raw;        /* the serialized job as popped (owned) */
};

void gh_job_cleanup(struct gh_job *job);
/* 1 when the job has a deadline and now_ms is at or past it (the worker then
 * drops and logs it), else 0. */
int gh_job_expired(const struct gh_job *job, int64_t now_ms);

/* payload is borrowed (serialized). Returns GH_OK (queued), GH_EDUPLICATE
 * (already seen: nothing done), GH_EINVAL, GH_EREDIS. */
int gh_queue_enqueue(struct gh_redis *r, const char *queue, const char *id, const char *kind,
                     uint64_t guild_id, json_object *payload, int64_t deadline_ms);
/* Same, due at due_ms (wall clock; 0 or past = ready now). */
int gh_queue_enqueue_at(struct gh_redis *r, const char *queue, const char *id, const char *kind,
                        uint64_t guild_id, json_object *payload, int64_t deadline_ms, int64_t due_ms);

/* Many jobs (ready now) in one pipeline: one round trip instead of one per
 * job. Each job's outcome in its rc (as gh_queue_enqueue: GH_OK, GH_EDUPLICATE,
 * GH_EINVAL, GH_EREDIS for one Redis did not take). Returns GH_OK when every
 * job was queued or a duplicate, else the first other rc (GH_EINVAL for a bad
 * queue name: no rc set). payload borrowed. */
struct gh_queue_new {
    const char *id;
    const char *kind;
    uint64_t guild_id;
    json_object *payload;
    int64_t deadline_ms;
    int rc; /* out */
};
int gh_queue_enqueue_many(struct gh_redis *r, const char *queue, struct gh_queue_new *jobs, int n);

/* Acks of finished jobs held back to go with the next take (one script for
 * a whole batch instead of one per job). Zero it before use. */
struct gh_queue_ack_item {
    char id[160];
    char state[16]; /* final state: done, expired */
    char *raw;      /* owned copies */
    char *entry;    /* job_runs entry, NULL = none */
};
struct gh_queue_acks {
    int n;
    struct gh_queue_ack_item item[GH_QUEUE_TAKE_MAX];
};
/* Holds job's ack (as gh_queue_ack_ex would do it; state and entry are
 * copied). GH_OK, GH_ETOOBIG (full: flush first), GH_ENOMEM, GH_EINVAL. */
int gh_queue_ack_defer(struct gh_queue_acks *a, const struct gh_job *job, const char *final_state,
                       const char *log_entry);
/* Sends the held acks now, in one script (each as gh_queue_ack_ex). GH_OK
 * (a emptied; *acked, may be NULL, counts the jobs that were still in
 * processing), GH_EREDIS (a kept: send it again; a repeat is harmless, the
 * job_runs entries carry unique run keys), GH_EINVAL. */
int gh_queue_ack_flush(struct gh_redis *r, const char *queue, struct gh_queue_acks *a, int *acked);
/* Frees the held acks without sending them. */
void gh_queue_acks_cleanup(struct gh_queue_acks *a);

struct gh_queue_poll {
    int lease_ms;               /* 0 = GH_QUEUE_DEFAULT_LEASE_MS */
    int max;                    /* jobs to take at most, 1..GH_QUEUE_TAKE_MAX (0 = 1) */
    int wait_ms;                /* when none is ready, block up to this in BLMOVE (0 = do not block) */
    struct gh_queue_acks *acks; /* NULL, or acks sent first in the take's script (emptied once it ran) */
    int *acks_done;             /* NULL, or incremented by the acks that found their job */
};
/* Promotes, reaps and takes (see above). jobs: caller storage for p->max jobs,
 * cleaned with gh_job_cleanup. GH_OK with *n >= 1, GH_ENOTFOUND (none ready
 * within the wait), GH_EREDIS, GH_EINVAL. Malformed jobs are moved to the
 * dead list and logged there, never returned. */
int gh_queue_take(struct gh_redis *r, const char *queue, const struct gh_queue_poll *p, struct gh_job *jobs,
                  int *n);
/* One job with the default lease, waiting up to timeout_s (0 = do not wait).
 * GH_OK with *job filled, GH_ENOTFOUND, GH_EREDIS, GH_EJSON (a malformed job
 * was moved to the dead list). */
int gh_queue_pop(struct gh_redis *r, const char *queue, int timeout_s, struct gh_job *job);

/* Done: removes the job from processing and its lease, sets its state to
 * final_state ("done" or "expired"; NULL = "done") for 24 h, and pushes
 * log_entry (JSON text, or NULL) to the log list. GH_OK, GH_ENOTFOUND (it was
 * not in processing: a reaper gave it back; the log entry is still pushed),
 * GH_EREDIS. */
int gh_queue_ack(struct gh_redis *r, const char *queue, const struct gh_job *job);
int gh_queue_ack_ex(struct gh_redis *r, const char *queue, const struct gh_job *job, const char *final_state,
                    const char *log_entry);
/* Failure: removes from processing; when attempts remain (job->attempt <
 * max_attempts) the job goes to delayed with attempt + 1, "last_error" and
 * due_ms = now + gh_queue_backoff_ms(backoff_base_ms, attempt); else to the
 * dead list with "error" and "failed_ms". GH_OK, GH_ENOTFOUND (not in
 * processing: nothing moved), GH_EREDIS. */
int gh_queue_fail(struct gh_redis *r, const char *queue, const struct gh_job *job, int max_attempts,
                  const char *error);
/* backoff_base_ms 0 = GH_QUEUE_BACKOFF_BASE_MS; *retry_at_ms (may be NULL)
 * receives the due time of the retry, 0 when dead-lettered. */
int gh_queue_fail_ex(struct gh_redis *r, const char *queue, const struct gh_job *job, int max_attempts,
                     int backoff_base_ms, const char *error, const char *log_entry, int64_t *retry_at_ms);
/* Delay before attempt + 1: d = base * 2^(attempt-1) capped at
 * GH_QUEUE_BACKOFF_CAP_MS, then d/2 + a random part in [0, d/2]. */
int gh_queue_backoff_ms(int base_ms, int attempt);

/* Gives a taken job back unrun (a worker stopping with jobs of a batch
 * left): processing -> the front of ready, lease dropped, attempt unchanged.
 * GH_OK, GH_ENOTFOUND (not in processing), GH_EREDIS. */
int gh_queue_release(struct gh_redis *r, const char *queue, const struct gh_job *job);
/* Heartbeat: pushes the leases of ids (jobs still running) to now +
 * lease_ms; ids without a lease (acked or reaped) are left alone. GH_OK or
 * GH_EREDIS. */
int gh_queue_extend(struct gh_redis *r, const char *queue, const char *const *ids, int n, int lease_ms);
/* The lease of one job: 1 renewed, 0 lost (reaped: do not run it), or a
 * negative gh_err. */
int gh_queue_renew(struct gh_redis *r, const char *queue, const char *id, int lease_ms);

/* Lengths of "ready", "processing", "dead" (lists) and "delayed", "leases"
 * (sets); -1 when Redis is down or which is unknown. */
long long gh_queue_len(struct gh_redis *r, const char *queue, const char *which);

struct gh_queue_stats {
    long long ready, delayed, processing, dead, leases;
    long long leases_expired; /* leases past their expiry (a dead worker's jobs, not reaped yet) */
    int64_t oldest_ready_ms;  /* age of the next job to be taken; -1 when none */
};
/* GH_OK or GH_EREDIS. */
int gh_queue_stats(struct gh_redis *r, const char *queue, struct gh_queue_stats *st);
/* Appends gh_queue_jobs{queue,state} gauges (ready, delayed, processing,
 * dead, running = leases) and gh_queue_oldest_ready_seconds{queue} for each
 * queue of the NULL-terminated list. Redis down: nothing is appended.
 * GH_OK or GH_ETOOBIG. */
int gh_queue_metrics(struct gh_redis *r, const char *const *queues, struct gh_buf *out);

/* Dead letters, newest first: up to max entries (JSON objects: the job with
 * "error" and "failed_ms"). *out is a new array (caller frees with
 * json_object_put). GH_OK or GH_EREDIS. */
int gh_queue_dead_list(struct gh_redis *r, const char *queue, int max, json_object **out);
/* Moves dead letters back to ready with attempt 1 (error fields removed,
 * state "queued"): the one with job id id, or every one when id is NULL.
 * *moved counts them. GH_OK (also when none matched), GH_EREDIS. */
int gh_queue_dead_retry(struct gh_redis *r, const char *queue, const char *id, long long *moved);
/* Deletes the dead list. *removed = its length before. GH_OK or GH_EREDIS. */
int gh_queue_dead_purge(struct gh_redis *r, const char *queue, long long *removed);

/* Partition of a queue (stable hash of its name). */
int gh_queue_partition(const char *queue);
/* 1 when name is a valid queue name ([a-z0-9_-], 1..64). */
int gh_queue_name_ok(const char *queue);
/* Key of queue Q with suffix ("ready", "log", ...). GH_OK or GH_ETOOBIG. */
int gh_queue_key(char *out, size_t size, const char *queue, const char *suffix);

#endif
