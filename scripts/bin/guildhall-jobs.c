/* guildhall-jobs - the operators' view of the job queue.
 *
 *   guildhall-jobs [--queue Q] stats            per queue: ready, delayed, processing, dead,
 *                                               running leases (expired ones), oldest ready age
 *   guildhall-jobs [--queue Q] dead [N]         the newest N dead letters (default 20): kind,
 *                                               id, attempts, when, last error
 *   guildhall-jobs [--queue Q] retry <id>|--all dead letters back to ready, attempts reset
 *   guildhall-jobs [--queue Q] purge-dead       deletes the dead list
 *   guildhall-jobs cancel-timer <id>            cancels a durable timer (scheduled_actions)
 *
 * Reads REDIS_URL / DATABASE_URL like every binary. Exit status: 0, 1 when
 * the store failed or nothing matched, 2 for a usage error. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "app/app.h"
#include "core/err.h"
#include "core/timeutil.h"
#include "store/queue.h"
#include "store/timers.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: guildhall-jobs [--queue Q] stats | dead [N] | retry <id>|--all | purge-dead\n"
               "       guildhall-jobs cancel-timer <timer id>\n");
}

static int cmd_stats(struct gh_ctx *ctx, const char *queue)
{
    struct gh_queue_stats st;
    int rc = gh_queue_stats(ctx->redis, queue, &st);

    if (rc != GH_OK) {
        fprintf(stderr, "guildhall-jobs: cannot read queue %s: %s\n", queue, gh_strerror(rc));
        return 1;
    }
    printf("%-12s %8s %8s %10s %8s %8s %8s %12s\n", "queue", "ready", "delayed", "processing", "dead",
           "running", "expired", "oldest_ready");
    printf("%-12s %8lld %8lld %10lld %8lld %8lld %8lld ", queue, st.ready, st.delayed, st.processing, st.dead,
           st.leases, st.leases_expired);
    if (st.oldest_ready_ms < 0)
        printf("%12s\n", "-");
    else
        printf("%11.1fs\n", (double)st.oldest_ready_ms / 1000.0);
    return 0;
}

static const char *str_of(json_object *o, const char *name, const char *dflt)
{
    json_object *v;

    return json_object_object_get_ex(o, name, &v) && json_object_is_type(v, json_type_string)
               ? json_object_get_string(v)
               : dflt;
}

static int64_t int_of(json_object *o, const char *name)
{
    json_object *v;

    return json_object_object_get_ex(o, name, &v) && json_object_is_type(v, json_type_int)
               ? json_object_get_int64(v)
               : 0;
}

static int cmd_dead(struct gh_ctx *ctx, const char *queue, int max)
{
    json_object *arr = NULL;
    int rc = gh_queue_dead_list(ctx->redis, queue, max, &arr);
    size_t n;

    if (rc != GH_OK) {
        fprintf(stderr, "guildhall-jobs: cannot read the dead letters of %s: %s\n", queue, gh_strerror(rc));
        return 1;
    }
    n = json_object_array_length(arr);
    printf("%zu dead letter(s) in %s (newest first)\n", n, queue);
    for (size_t i = 0; i < n; i++) {
        json_object *e = json_object_array_get_idx(arr, i);
        char when[40] = "-";
        int64_t failed = int_of(e, "failed_ms");

        if (failed > 0)
            gh_iso8601(failed, when, sizeof(when));
        printf("%s  kind=%s  id=%s  attempts=%" PRId64 "  at=%s\n    error: %s\n", i == 0 ? "*" : "-",
               str_of(e, "kind", "?"), str_of(e, "id", "(malformed job)"), int_of(e, "attempt"), when,
               str_of(e, "error", "-"));
    }
    json_object_put(arr);
    return 0;
}

int main(int argc, char **argv)
{
    static struct gh_app app;
    struct gh_ctx ctx;
    const char *queue = GH_QUEUE_DEFAULT, *cmd;
    int i = 1, status = 2, rc;

    if (argc > 2 && strcmp(argv[1], "--queue") == 0) {
        queue = argv[2];
        i = 3;
    }
    if (i >= argc || strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
        usage(i >= argc ? stderr : stdout);
        return i >= argc ? 2 : 0;
    }
    if (!gh_queue_name_ok(queue)) {
        fprintf(stderr, "guildhall-jobs: '%s' is not a queue name ([a-z0-9_-], up to 64)\n", queue);
        return 2;
    }
    cmd = argv[i++];
    gh_app_boot(&app, GH_SVC_TOOL, "tool", "guildhall-jobs");
    if (gh_app_ctx_open(&app, &ctx, "jobs", -1, 0) != GH_OK) {
        fprintf(stderr, "guildhall-jobs: cannot set up the store connections\n");
        gh_app_shutdown(&app);
        return 1;
    }
    ctx.queue = queue;

    if (strcmp(cmd, "stats") == 0 && i == argc) {
        status = cmd_stats(&ctx, queue);
    } else if (strcmp(cmd, "dead") == 0 && argc - i <= 1) {
        int max = i < argc ? atoi(argv[i]) : 20;
        if (max < 1 || max > 10000) {
            fprintf(stderr, "guildhall-jobs: dead N: N must be 1..10000\n");
            goto out;
        }
        status = cmd_dead(&ctx, queue, max);
    } else if (strcmp(cmd, "retry") == 0 && argc - i == 1) {
        long long moved = 0;
        const char *id = strcmp(argv[i], "--all") == 0 ? NULL : argv[i];
        rc = gh_queue_dead_retry(ctx.redis, queue, id, &moved);
        if (rc != GH_OK) {
            fprintf(stderr, "guildhall-jobs: retry failed after %lld job(s): %s\n", moved, gh_strerror(rc));
            status = 1;
        } else {
            printf("%lld dead letter(s) moved back to ready in %s\n", moved, queue);
            status = id && moved == 0 ? 1 : 0;
            if (status)
                fprintf(stderr, "guildhall-jobs: no dead letter with id %s in %s\n", id, queue);
        }
    } else if (strcmp(cmd, "purge-dead") == 0 && i == argc) {
        long long removed = 0;
        rc = gh_queue_dead_purge(ctx.redis, queue, &removed);
        if (rc != GH_OK)
            fprintf(stderr, "guildhall-jobs: purge failed: %s\n", gh_strerror(rc));
        else
            printf("%lld dead letter(s) deleted from %s\n", removed, queue);
        status = rc == GH_OK ? 0 : 1;
    } else if (strcmp(cmd, "cancel-timer") == 0 && argc - i == 1) {
        char *end = NULL;
        long long id = strtoll(argv[i], &end, 10);
        if (!end || *end || id <= 0) {
            fprintf(stderr, "guildhall-jobs: cancel-timer: '%s' is not a timer id\n", argv[i]);
            goto out;
        }
        rc = gh_timers_cancel(&ctx, (int64_t)id);
        if (rc == GH_OK)
            printf("timer %lld cancelled\n", id);
        else
            fprintf(stderr, "guildhall-jobs: timer %lld not cancelled: %s\n", id,
                    rc == GH_ENOTFOUND   ? "no such timer"
                    : rc == GH_ECONFLICT ? "it already ran (done or failed)"
                                         : gh_strerror(rc));
        status = rc == GH_OK ? 0 : 1;
    } else {
        fprintf(stderr, "guildhall-jobs: unknown command or wrong arguments: %s\n", cmd);
        usage(stderr);
    }
out:
    gh_app_ctx_close(&ctx);
    gh_app_shutdown(&app);
    return status;
}
