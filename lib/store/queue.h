/* queue.h - the minimal job queue of the foundation (the job-system issue
 * replaces its internals; this interface stays).
 *
 * A job: {"id","kind","guild","payload","deadline_ms","attempt","enqueued_ms"}.
 * The id is the dedupe key: enqueueing an id seen in the last 24 h does
 * nothing (SET NX bot:{q<n>}:jobs:<queue>:seen:<id>). Ready list:
 * bot:{q<n>}:jobs:<queue>:ready, processing list: ...:processing. */
#ifndef GH_STORE_QUEUE_H
#define GH_STORE_QUEUE_H

#include <json-c/json.h>
#include <stdint.h>

struct gh_redis;
struct gh_logger;

#define GH_QUEUE_DEFAULT "default"
/* Number of queue partitions ({q0}..{q3}). */
#define GH_QUEUE_PARTITIONS 4

struct gh_job {
    char id[160];
    char kind[64];
    uint64_t guild_id;    /* 0 = none */
    json_object *payload; /* owned by the job; gh_job_cleanup releases it */
    int64_t deadline_ms;  /* 0 = none; past it the job is dropped and logged */
    int attempt;          /* 1 on the first run */
    int64_t enqueued_ms;
    char *raw; /* the serialized job as popped (owned) */
};

void gh_job_cleanup(struct gh_job *job);
/* 1 when the job has a deadline and now_ms is at or past it (the worker then
 * drops and logs it), else 0. */
int gh_job_expired(const struct gh_job *job, int64_t now_ms);

/* payload is borrowed (serialized). Returns GH_OK (queued), GH_EDUPLICATE
 * (already seen: nothing done), GH_EREDIS. */
int gh_queue_enqueue(struct gh_redis *r, const char *queue, const char *id, const char *kind,
                     uint64_t guild_id, json_object *payload, int64_t deadline_ms);
/* Blocks up to timeout_s (BLMOVE ready -> processing; 0 = do not block). GH_OK with *job
 * filled, GH_ENOTFOUND on timeout, GH_EREDIS, GH_EJSON (a malformed job was
 * moved to the dead list). */
int gh_queue_pop(struct gh_redis *r, const char *queue, int timeout_s, struct gh_job *job);
/* Removes the job from processing (done). GH_OK, GH_ENOTFOUND (it was not in
 * processing), GH_EREDIS. */
int gh_queue_ack(struct gh_redis *r, const char *queue, const struct gh_job *job);
/* Failure: removes from processing; requeues with attempt+1 when attempts
 * remain (max_attempts), else pushes to ...:dead with the error. GH_OK,
 * GH_ENOTFOUND (not in processing: nothing done), GH_EREDIS. */
int gh_queue_fail(struct gh_redis *r, const char *queue, const struct gh_job *job, int max_attempts,
                  const char *error);
/* Lengths of ready / processing / dead; -1 when Redis is down. */
long long gh_queue_len(struct gh_redis *r, const char *queue, const char *which);
/* Partition of a queue (stable hash of its name). */
int gh_queue_partition(const char *queue);

#endif
