/* shard.h - the protocol state machine of one gateway shard, without I/O.
 *
 * Everything Discord's gateway protocol decides (shared/reference/
 * discord-protocol.md, section 1b) lives here as pure functions of parsed
 * payloads and time: when to heartbeat, when a connection is a zombie, what
 * op 7 / op 9 / a close code mean (resume, new session, stop), how long to
 * wait before reconnecting, and whether one more payload may be sent. The
 * loop (lib/gateway/gateway.c) feeds it events and carries out the actions
 * it returns; unit tests drive it with made-up times.
 *
 * Times are monotonic milliseconds. Randomness is passed in (a uniform value
 * in [0, 1)) so tests choose it. */
#ifndef GH_GATEWAY_SHARD_H
#define GH_GATEWAY_SHARD_H

#include <stdint.h>

/* Close codes Discord sends (opcodes-and-status-codes.mdx):
 * X(code, name, reconnect, new_session). reconnect 0 = fatal: the shard stops. */
#define GH_GW_CLOSE_CODES(X)                                                                                 \
    X(4000, UNKNOWN_ERROR, 1, 0)                                                                             \
    X(4001, UNKNOWN_OPCODE, 1, 0)                                                                            \
    X(4002, DECODE_ERROR, 1, 0)                                                                              \
    X(4003, NOT_AUTHENTICATED, 1, 0)                                                                         \
    X(4004, AUTHENTICATION_FAILED, 0, 0)                                                                     \
    X(4005, ALREADY_AUTHENTICATED, 1, 0)                                                                     \
    X(4007, INVALID_SEQ, 1, 1)                                                                               \
    X(4008, RATE_LIMITED, 1, 0)                                                                              \
    X(4009, SESSION_TIMED_OUT, 1, 1)                                                                         \
    X(4010, INVALID_SHARD, 0, 0)                                                                             \
    X(4011, SHARDING_REQUIRED, 0, 0)                                                                         \
    X(4012, INVALID_API_VERSION, 0, 0)                                                                       \
    X(4013, INVALID_INTENTS, 0, 0)                                                                           \
    X(4014, DISALLOWED_INTENTS, 0, 0)

enum gh_gw_close_kind {
    GH_GW_CLOSE_RESUME = 0,  /* reconnect and resume (also: no code, TCP drop, unknown code) */
    GH_GW_CLOSE_NEW_SESSION, /* reconnect and identify anew */
    GH_GW_CLOSE_FATAL,       /* stop the shard; an operator must fix something */
};

/* What a close code means; 0 (no close frame) resumes. */
enum gh_gw_close_kind gh_gw_close_kind(int code);
/* "DISALLOWED_INTENTS", or "UNKNOWN" for codes outside the table. Static. */
const char *gh_gw_close_name(int code);
/* What an operator should do about a fatal code (a sentence), or "". Static. */
const char *gh_gw_close_advice(int code);

/* Gateway opcodes. */
enum {
    GH_GW_OP_DISPATCH = 0,
    GH_GW_OP_HEARTBEAT = 1,
    GH_GW_OP_IDENTIFY = 2,
    GH_GW_OP_RESUME = 6,
    GH_GW_OP_RECONNECT = 7,
    GH_GW_OP_INVALID_SESSION = 9,
    GH_GW_OP_HELLO = 10,
    GH_GW_OP_HEARTBEAT_ACK = 11,
};

/* Shard states, X(enum, name in the status hash). */
#define GH_SHARD_STATES(X)                                                                                   \
    X(GH_SHARD_WAIT_LEASE, "standby")                                                                        \
    X(GH_SHARD_WAIT_IDENTIFY, "waiting_identify")                                                            \
    X(GH_SHARD_CONNECTING, "connecting")                                                                     \
    X(GH_SHARD_HELLO, "waiting_hello")                                                                       \
    X(GH_SHARD_IDENTIFYING, "identifying")                                                                   \
    X(GH_SHARD_RESUMING, "resuming")                                                                         \
    X(GH_SHARD_READY, "ready")                                                                               \
    X(GH_SHARD_RECONNECT_WAIT, "reconnecting")                                                               \
    X(GH_SHARD_FAILED, "failed")                                                                             \
    X(GH_SHARD_STOPPED, "stopped")

enum gh_shard_state {
#define GH_SHARD_STATE_ENUM(e, name) e,
    GH_SHARD_STATES(GH_SHARD_STATE_ENUM)
#undef GH_SHARD_STATE_ENUM
};
const char *gh_shard_state_name(enum gh_shard_state st);

/* Sent-payload limit per connection: 120 per 60 s; heartbeats keep a
 * reserve so other payloads can never starve them. */
#define GH_GW_SEND_LIMIT 120
#define GH_GW_SEND_WINDOW_MS 60000
#define GH_GW_SEND_HB_RESERVE 5
#define GH_GW_MAX_PAYLOAD 4096

struct gh_gw_limiter {
    int64_t sent[GH_GW_SEND_LIMIT]; /* ring of send times */
    int head, n;
};
void gh_gw_limiter_reset(struct gh_gw_limiter *l);
/* 1 when one more payload may go now (heartbeats may use the reserve), and
 * then it is counted; 0 when it must wait. */
int gh_gw_limiter_take(struct gh_gw_limiter *l, int64_t now_ms, int heartbeat);
/* Payloads that may still go now (non-heartbeat). */
int gh_gw_limiter_available(const struct gh_gw_limiter *l, int64_t now_ms);

/* Reconnect delays. */
#define GH_GW_BACKOFF_MAX_MS 60000
#define GH_GW_INVALID_MIN_MS 1000
#define GH_GW_INVALID_MAX_MS 5000

struct gh_shard {
    int id, count;
    enum gh_shard_state state;
    /* session (valid when session_id[0]) */
    char session_id[128];
    char resume_url[256];
    int64_t seq; /* last non-null s; 0 = none */
    /* heartbeats */
    int64_t hb_interval_ms;
    int64_t hb_due_ms;   /* next heartbeat due; 0 = not heartbeating */
    int64_t hb_sent_ms;  /* last heartbeat sent */
    int awaiting_ack;    /* a heartbeat was sent and not acknowledged yet */
    int64_t latency_ms;  /* last send -> ACK, -1 = unknown */
    int64_t last_ack_ms; /* 0 = none */
    /* reconnects */
    int attempts; /* consecutive failed connections since the last READY/RESUMED */
    int64_t reconnect_at_ms;
    int want_resume; /* next connection resumes (when a session is known) */
    int fatal_code;  /* close code that stopped the shard */
    struct gh_gw_limiter limiter;
};

enum gh_shard_act_kind {
    GH_SACT_NONE = 0,
    GH_SACT_HEARTBEAT, /* send op 1 with seq now */
    GH_SACT_IDENTIFY,  /* send op 2 (after the identify budget allows it) */
    GH_SACT_RESUME,    /* send op 6 */
    GH_SACT_RECONNECT, /* close the socket (close_code, 0 = just drop it) and reconnect after delay_ms */
    GH_SACT_FATAL,     /* stop the shard (fatal close code) */
};

struct gh_shard_act {
    enum gh_shard_act_kind kind;
    int close_code;   /* RECONNECT: code to close with (never 1000/1001), 0 = socket already closed */
    int64_t delay_ms; /* RECONNECT: wait before connecting again */
    int resume;       /* RECONNECT: resume (1) or identify anew (0) */
};

void gh_shard_init(struct gh_shard *s, int id, int count);
/* Forgets the session (a new session must identify). */
void gh_shard_drop_session(struct gh_shard *s);
int gh_shard_can_resume(const struct gh_shard *s);

/* A new connection is being opened: resets heartbeat and limiter state. */
void gh_shard_on_connecting(struct gh_shard *s, int64_t now_ms);
/* HELLO: heartbeat_interval in ms, jitter in [0,1): the first heartbeat is
 * due after interval * jitter. Returns IDENTIFY or RESUME. */
struct gh_shard_act gh_shard_on_hello(struct gh_shard *s, int64_t interval_ms, double jitter, int64_t now_ms);
/* Any payload with a non-null s. */
void gh_shard_on_seq(struct gh_shard *s, int64_t seq);
/* READY (session_id, resume_gateway_url) and RESUMED. */
void gh_shard_on_ready(struct gh_shard *s, const char *session_id, const char *resume_url);
void gh_shard_on_resumed(struct gh_shard *s);
/* op 11. */
void gh_shard_on_ack(struct gh_shard *s, int64_t now_ms);
/* op 1 from the server: heartbeat now. */
struct gh_shard_act gh_shard_on_heartbeat_request(struct gh_shard *s);
/* op 7. */
struct gh_shard_act gh_shard_on_reconnect(struct gh_shard *s);
/* op 9; resumable = d. rnd in [0,1) picks the 1-5 s wait. */
struct gh_shard_act gh_shard_on_invalid_session(struct gh_shard *s, int resumable, double rnd);
/* The connection closed (code 0 = no close frame / TCP drop / transport
 * error). rnd in [0,1) for the backoff jitter. */
struct gh_shard_act gh_shard_on_close(struct gh_shard *s, int code, double rnd);
/* Timers: a heartbeat due (HEARTBEAT) or a zombie connection (RECONNECT with
 * 4000, resume). Call often; NONE when nothing is due. */
struct gh_shard_act gh_shard_tick(struct gh_shard *s, int64_t now_ms);
/* Records that a heartbeat went out at now_ms (the loop calls it after
 * sending); due_ms was when it was due. Returns how late it was (>= 0). */
int64_t gh_shard_heartbeat_sent(struct gh_shard *s, int64_t now_ms);
/* Reconnect backoff for attempt n (0 = first): fast first retry, doubling,
 * capped at GH_GW_BACKOFF_MAX_MS, with jitter rnd in [0,1). */
int64_t gh_gw_backoff_ms(int attempt, double rnd);

#endif
