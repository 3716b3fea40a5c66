/* cmdlog.h - command_log and error_log, written off the request path.
 *
 * The fcgi child pushes one JSON entry onto bot:{global}:cmdlog:pending (or
 * :errlog:pending) and returns; the worker moves entries in batches of up to
 * 500 into PostgreSQL with one multi-row INSERT. An entry leaves Redis only
 * after its batch commits (LMOVE to an inflight list, DEL after commit), so
 * PostgreSQL being down loses nothing, and a replayed batch inserts nothing
 * twice (unique interaction_id / dedupe_key). If Redis is down at push time
 * the entry is inserted directly (so do not record while ctx->pg is inside a
 * transaction); if both are down it is appended to the spool file
 * <run_dir>/cmdlog.spool and replayed by the worker. Details in cmdlog.c. */
#ifndef GH_STORE_CMDLOG_H
#define GH_STORE_CMDLOG_H

#include <stdint.h>

struct gh_ctx;

struct gh_cmdlog_entry {
    uint64_t guild_id; /* 0 = DM */
    uint64_t user_id;
    uint64_t channel_id;
    uint64_t interaction_id;
    const char *command;      /* borrowed */
    const char *options_json; /* borrowed JSON text or NULL */
    /* Nonzero: options_json is complete JSON text from a serializer (e.g.
     * json_object_to_json_string_ext) and is copied into the entry as is.
     * Zero: it is parsed first, and text that does not parse is kept as a
     * JSON string. */
    int options_verbatim;
    int success;
    const char *error; /* borrowed or NULL */
    int duration_us;
    const char *corr; /* correlation id */
};

/* GH_OK (queued, written or spooled), GH_EINVAL (no command or user),
 * GH_EIO (nowhere to put it: logged whole). */
int gh_cmdlog_record(struct gh_ctx *ctx, const struct gh_cmdlog_entry *e);
/* Records an error: component, message, context JSON (or NULL), backtrace (or
 * NULL). The guild and correlation id come from ctx->log. */
int gh_errlog_record(struct gh_ctx *ctx, const char *component, const char *message, const char *context_json,
                     const char *backtrace);
/* Worker side: flushes up to max entries of each list. Returns the number
 * written, or a negative gh_err (nothing lost). */
int gh_cmdlog_flush(struct gh_ctx *ctx, int max);

#endif
