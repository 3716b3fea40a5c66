/* redis.h - one Redis connection (hiredis 0.14) with connect/command
 * timeouts and reconnect.
 *
 * When Redis is down a command returns NULL quickly; reconnects are attempted
 * at most every 250 ms so a dead Redis does not add a connect per call. */
#ifndef GH_STORE_REDIS_H
#define GH_STORE_REDIS_H

#include <hiredis/hiredis.h>
#include <stddef.h>
#include <stdint.h>

struct gh_logger;
struct gh_redis;

/* url: redis://host:port[/db]. Does not connect until first use. Caller frees
 * with gh_redis_free. NULL only on a malformed url. */
struct gh_redis *gh_redis_new(const char *url, int timeout_ms, const struct gh_logger *lg);
void gh_redis_free(struct gh_redis *r);

/* Commands; the reply is the caller's (freeReplyObject). NULL when Redis is
 * unreachable or the connection broke (then it reconnects on a later call).
 * An error reply (REDIS_REPLY_ERROR) is returned as a reply, not NULL. */
redisReply *gh_redis_cmd(struct gh_redis *r, const char *fmt, ...);
/* Same as gh_redis_cmd with a different read timeout for this one command:
 * blocking commands (BLMOVE, BLPOP) that may wait longer than the connection's
 * timeout_ms. */
redisReply *gh_redis_cmd_timeout(struct gh_redis *r, int timeout_ms, const char *fmt, ...);
redisReply *gh_redis_cmdargv(struct gh_redis *r, int argc, const char **argv, const size_t *argvlen);
/* Pipelining: append n commands, then read n replies (each may be NULL).
 * While replies are unread, gh_redis_cmd* return NULL (read them first). */
int gh_redis_append(struct gh_redis *r, const char *fmt, ...);
redisReply *gh_redis_get_reply(struct gh_redis *r);

/* A command built argument by argument straight into Redis' wire format:
 * appended without hiredis' format parsing (the gateway's hot path: a
 * pipeline of scripts per batch). Zero it before first use; reusable (each
 * gh_rcmd_begin starts over); gh_rcmd_cleanup frees it. Out of memory is
 * remembered and reported by gh_redis_append_rcmd (GH_ENOMEM, nothing sent,
 * but counted as pending like a failed gh_redis_append). */
struct gh_rcmd {
    char *data;
    size_t len, cap;
    int argc, want, oom;
};
void gh_rcmd_begin(struct gh_rcmd *c, int argc);
void gh_rcmd_str(struct gh_rcmd *c, const char *s, size_t n);
void gh_rcmd_cstr(struct gh_rcmd *c, const char *s);
void gh_rcmd_u64(struct gh_rcmd *c, uint64_t v);
void gh_rcmd_i64(struct gh_rcmd *c, int64_t v);
/* bot:{<guild_id>}:<feature>:<name><id> (id 0 = none): gh_key_guild's key. */
void gh_rcmd_key_guild(struct gh_rcmd *c, uint64_t guild_id, const char *feature, const char *name,
                       uint64_t id);
void gh_rcmd_cleanup(struct gh_rcmd *c);
/* Appends c (which must have exactly the argc it began with) to the pipeline:
 * like gh_redis_append. */
int gh_redis_append_rcmd(struct gh_redis *r, struct gh_rcmd *c);

int gh_redis_ping(struct gh_redis *r); /* GH_OK or GH_EREDIS */
/* Borrowed hiredis context, NULL when disconnected. */
redisContext *gh_redis_ctx(struct gh_redis *r);

/* Key builder: bot:{<guild_id>}:<feature>:<key>. Returns GH_OK or GH_ETOOBIG. */
int gh_key_guild(char *out, size_t size, unsigned long long guild_id, const char *feature, const char *fmt,
                 ...) __attribute__((format(printf, 5, 6)));
/* bot:{global}:<feature>:<key> */
int gh_key_global(char *out, size_t size, const char *feature, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* bot:{q<partition>}:jobs:<queue>:<suffix> */
int gh_key_queue(char *out, size_t size, int partition, const char *queue, const char *suffix);

#endif
