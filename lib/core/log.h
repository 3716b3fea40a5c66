/* log.h - JSON-lines logger.
 *
 * One process-wide sink (where lines go, rotation, redaction list) and many
 * cheap loggers (component, correlation id, guild, user) that point at it.
 * Each line: {"time","level","service","component","corr","guild","user",
 * "msg","errno"?,"err"?, ...extra}. Tokens, keys and passwords are redacted:
 * every registered secret value is replaced by "[redacted]", and so are
 * values after key-like words (token, password, secret, authorization, key)
 * and "Bot <token>" / "Bearer <token>" patterns. */
#ifndef GH_CORE_LOG_H
#define GH_CORE_LOG_H

#include <stddef.h>
#include <stdint.h>

enum gh_log_level { GH_LOG_DEBUG = 0, GH_LOG_INFO, GH_LOG_WARN, GH_LOG_ERROR, GH_LOG_CRIT };

#define GH_LOG_MAX_SECRETS 16

struct gh_log_sink {
    char service[32];
    enum gh_log_level min_level;
    int fd;                                  /* 2 (stderr) unless a file is open */
    char path[512];                          /* empty: stderr */
    size_t max_bytes;                        /* rotate when the file would grow past this; 0 = never */
    int max_files;                           /* keep path.1 .. path.N */
    size_t written;                          /* bytes in the current file */
    const char *secrets[GH_LOG_MAX_SECRETS]; /* borrowed; must outlive the sink */
    int n_secrets;
};

struct gh_logger {
    struct gh_log_sink *sink; /* borrowed */
    const char *component;    /* borrowed, static string */
    char corr[40];            /* correlation id, "" when none */
    uint64_t guild_id;        /* 0 when unknown */
    uint64_t user_id;         /* 0 when unknown */
};

/* path NULL or "" logs to stderr. Returns GH_OK or GH_EIO (file not openable). */
int gh_log_sink_init(struct gh_log_sink *s, const char *service, enum gh_log_level min, const char *path,
                     size_t max_bytes, int max_files);
void gh_log_sink_cleanup(struct gh_log_sink *s);
/* Registers a secret value to redact wherever it appears (ignored if NULL or
 * shorter than 6 bytes). */
void gh_log_sink_add_secret(struct gh_log_sink *s, const char *secret);
int gh_log_level_parse(const char *name, enum gh_log_level *out); /* debug|info|warn|error|crit */

void gh_logger_init(struct gh_logger *lg, struct gh_log_sink *sink, const char *component);
/* New random correlation id (16 hex chars) into lg->corr. */
void gh_logger_new_corr(struct gh_logger *lg);

/* errnum: errno value or 0. Formats msg, redacts, writes one line with one write(2). */
void gh_log(const struct gh_logger *lg, enum gh_log_level lvl, int errnum, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Same with extra fields: extra_json is a JSON object text whose members are
 * appended to the line (e.g. "{\"route\":\"/x\",\"status\":429}"), or NULL. */
void gh_log_fields(const struct gh_logger *lg, enum gh_log_level lvl, int errnum, const char *extra_json,
                   const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* Redacts in place into out (size bytes). Exposed for tests. */
void gh_log_redact(const struct gh_log_sink *s, const char *in, char *out, size_t size);

#define GH_DEBUG(lg, ...) gh_log((lg), GH_LOG_DEBUG, 0, __VA_ARGS__)
#define GH_INFO(lg, ...) gh_log((lg), GH_LOG_INFO, 0, __VA_ARGS__)
#define GH_WARN(lg, ...) gh_log((lg), GH_LOG_WARN, 0, __VA_ARGS__)
#define GH_ERROR(lg, ...) gh_log((lg), GH_LOG_ERROR, 0, __VA_ARGS__)
#define GH_CRIT(lg, ...) gh_log((lg), GH_LOG_CRIT, 0, __VA_ARGS__)

#endif
