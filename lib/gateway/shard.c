/* shard.c - the gateway protocol decisions of one shard (see shard.h). */
#include <stddef.h>
#include <string.h>

#include "gateway/shard.h"

static const struct {
    int code;
    const char *name;
    int reconnect, new_session;
} close_codes[] = {
#define CLOSE_ROW(c, name, reconnect, new_session) {c, #name, reconnect, new_session},
    GH_GW_CLOSE_CODES(CLOSE_ROW)
#undef CLOSE_ROW
};

enum gh_gw_close_kind gh_gw_close_kind(int code)
{
    for (size_t i = 0; i < sizeof(close_codes) / sizeof(close_codes[0]); i++) {
        if (close_codes[i].code != code)
            continue;
        if (!close_codes[i].reconnect)
            return GH_GW_CLOSE_FATAL;
        return close_codes[i].new_session ? GH_GW_CLOSE_NEW_SESSION : GH_GW_CLOSE_RESUME;
    }
    return GH_GW_CLOSE_RESUME;
}

const char *gh_gw_close_name(int code)
{
    for (size_t i = 0; i < sizeof(close_codes) / sizeof(close_codes[0]); i++)
        if (close_codes[i].code == code)
            return close_codes[i].name;
    return code == 0 ? "NO_CLOSE_CODE" : "UNKNOWN";
}

const char *gh_gw_close_advice(int code)
{
    switch (code) {
    case 4004:
        return "the bot token was refused: set DISCORD_TOKEN to the token shown in the Developer Portal "
               "(Bot page, Reset Token)";
    case 4010:
        return "the shard id or count is invalid: check --shards i-j/N (N must be the total shard count, and "
               "a multiple of the assigned number for large bots)";
    case 4011:
        return "Discord requires more shards: restart with --shards covering the count GET /gateway/bot "
               "recommends (or no --shards to use it)";
    case 4012:
        return "the gateway API version is invalid: use v=10 (check DISCORD_GATEWAY_URL)";
    case 4013:
        return "the intents are invalid: check GATEWAY_INTENTS (unset it or set -1 to use what the features "
               "need)";
    case 4014:
        return "a privileged intent is not enabled for this application: enable the ones named in "
               "GATEWAY_PRIVILEGED_INTENTS (members = Server Members Intent, presences = Presence Intent, "
               "message_content = Message Content Intent) in the Developer Portal (Bot page, Privileged "
               "Gateway Intents), or remove them from GATEWAY_PRIVILEGED_INTENTS";
    default:
        return "";
    }
}

const char *gh_shard_state_name(enum gh_shard_state st)
{
    switch (st) {
#define STATE_NAME(e, name)                                                                                  \
    case e:                                                                                                  \
        return name;
        GH_SHARD_STATES(STATE_NAME)
#undef STATE_NAME
    }
    return "unknown";
}

/* ---- sent-payload limiter */

void gh_gw_limiter_reset(struct gh_gw_limiter *l)
{
    memset(l, 0, sizeof(*l));
}

static void limiter_expire(struct gh_gw_limiter *l, int64_t now_ms)
{
    while (l->n > 0) {
        int oldest = (l->head - l->n + GH_GW_SEND_LIMIT) % GH_GW_SEND_LIMIT;
        if (now_ms - l->sent[oldest] < GH_GW_SEND_WINDOW_MS)
            break;
        l->n--;
    }
}

int gh_gw_limiter_available(const struct gh_gw_limiter *l, int64_t now_ms)
{
    struct gh_gw_limiter c = *l;
    limiter_expire(&c, now_ms);
    int avail = GH_GW_SEND_LIMIT - GH_GW_SEND_HB_RESERVE - c.n;
    return avail > 0 ? avail : 0;
}

int gh_gw_limiter_take(struct gh_gw_limiter *l, int64_t now_ms, int heartbeat)
{
    limiter_expire(l, now_ms);
    int cap = heartbeat ? GH_GW_SEND_LIMIT : GH_GW_SEND_LIMIT - GH_GW_SEND_HB_RESERVE;
    if (l->n >= cap)
        return 0;
    l->sent[l->head] = now_ms;
    l->head = (l->head + 1) % GH_GW_SEND_LIMIT;
    l->n++;
    return 1;
}

/* ---- state machine */

void gh_shard_init(struct gh_shard *s, int id, int count)
{
    memset(s, 0, sizeof(*s));
    s->id = id;
    s->count = count;
    s->state = GH_SHARD_WAIT_LEASE;
    s->latency_ms = -1;
}

void gh_shard_drop_session(struct gh_shard *s)
{
    s->session_id[0] = '\0';
    s->resume_url[0] = '\0';
    s->seq = 0;
    s->want_resume = 0;
}

int gh_shard_can_resume(const struct gh_shard *s)
{
    return s->want_resume && s->session_id[0] != '\0';
}

void gh_shard_on_connecting(struct gh_shard *s, int64_t now_ms)
{
    (void)now_ms;
    s->state = GH_SHARD_CONNECTING;
    s->hb_interval_ms = 0;
    s->hb_due_ms = 0;
    s->awaiting_ack = 0;
    gh_gw_limiter_reset(&s->limiter);
}

struct gh_shard_act gh_shard_on_hello(struct gh_shard *s, int64_t interval_ms, double jitter, int64_t now_ms)
{
    struct gh_shard_act a = {0};

    if (interval_ms <= 0)
        interval_ms = 41250;
    if (jitter < 0)
        jitter = 0;
    if (jitter >= 1)
        jitter = 0.999999;
    s->hb_interval_ms = interval_ms;
    s->hb_due_ms = now_ms + (int64_t)((double)interval_ms * jitter);
    s->awaiting_ack = 0;
    if (gh_shard_can_resume(s)) {
        s->state = GH_SHARD_RESUMING;
        a.kind = GH_SACT_RESUME;
    } else {
        s->state = GH_SHARD_IDENTIFYING;
        a.kind = GH_SACT_IDENTIFY;
    }
    return a;
}

void gh_shard_on_seq(struct gh_shard *s, int64_t seq)
{
    if (seq > 0)
        s->seq = seq;
}

void gh_shard_on_ready(struct gh_shard *s, const char *session_id, const char *resume_url)
{
    {
        size_t n = session_id ? strlen(session_id) : 0;
        if (n >= sizeof(s->session_id))
            n = sizeof(s->session_id) - 1;
        memcpy(s->session_id, session_id ? session_id : "", n);
        s->session_id[n] = '\0';
        n = resume_url ? strlen(resume_url) : 0;
        if (n >= sizeof(s->resume_url))
            n = sizeof(s->resume_url) - 1;
        memcpy(s->resume_url, resume_url ? resume_url : "", n);
        s->resume_url[n] = '\0';
    }
    s->state = GH_SHARD_READY;
    s->attempts = 0;
    s->want_resume = 1;
}

void gh_shard_on_resumed(struct gh_shard *s)
{
    s->state = GH_SHARD_READY;
    s->attempts = 0;
    s->want_resume = 1;
}

void gh_shard_on_ack(struct gh_shard *s, int64_t now_ms)
{
    if (s->awaiting_ack && s->hb_sent_ms > 0)
        s->latency_ms = now_ms - s->hb_sent_ms;
    s->awaiting_ack = 0;
    s->last_ack_ms = now_ms;
}

struct gh_shard_act gh_shard_on_heartbeat_request(struct gh_shard *s)
{
    struct gh_shard_act a = {0};
    (void)s;
    a.kind = GH_SACT_HEARTBEAT;
    return a;
}

static struct gh_shard_act reconnect(struct gh_shard *s, int close_code, int64_t delay_ms, int resume)
{
    struct gh_shard_act a = {0};

    a.kind = GH_SACT_RECONNECT;
    a.close_code = close_code;
    a.delay_ms = delay_ms;
    a.resume = resume && s->session_id[0] != '\0';
    s->want_resume = a.resume;
    if (!resume)
        gh_shard_drop_session(s);
    s->state = GH_SHARD_RECONNECT_WAIT;
    s->hb_due_ms = 0;
    s->awaiting_ack = 0;
    return a;
}

struct gh_shard_act gh_shard_on_reconnect(struct gh_shard *s)
{
    return reconnect(s, 4000, 0, 1);
}

struct gh_shard_act gh_shard_on_invalid_session(struct gh_shard *s, int resumable, double rnd)
{
    if (rnd < 0)
        rnd = 0;
    if (rnd >= 1)
        rnd = 0.999999;
    int64_t delay =
        GH_GW_INVALID_MIN_MS + (int64_t)((double)(GH_GW_INVALID_MAX_MS - GH_GW_INVALID_MIN_MS) * rnd);
    return reconnect(s, 4000, delay, resumable);
}

int64_t gh_gw_backoff_ms(int attempt, double rnd)
{
    if (rnd < 0)
        rnd = 0;
    if (rnd >= 1)
        rnd = 0.999999;
    if (attempt <= 0)
        return (int64_t)(250.0 + 750.0 * rnd); /* fast first retry: 0.25-1 s */
    int64_t base = 1000;
    for (int i = 1; i < attempt && base < GH_GW_BACKOFF_MAX_MS; i++)
        base *= 2;
    if (base > GH_GW_BACKOFF_MAX_MS)
        base = GH_GW_BACKOFF_MAX_MS;
    /* half fixed, half jitter: spreads many shards reconnecting at once */
    int64_t half = base / 2;
    return half + (int64_t)((double)half * rnd);
}

struct gh_shard_act gh_shard_on_close(struct gh_shard *s, int code, double rnd)
{
    struct gh_shard_act a = {0};
    enum gh_gw_close_kind k = gh_gw_close_kind(code);

    if (k == GH_GW_CLOSE_FATAL) {
        s->state = GH_SHARD_FAILED;
        s->fatal_code = code;
        s->hb_due_ms = 0;
        s->awaiting_ack = 0;
        a.kind = GH_SACT_FATAL;
        return a;
    }
    int64_t delay = gh_gw_backoff_ms(s->attempts, rnd);
    s->attempts++;
    return reconnect(s, 0, delay, k == GH_GW_CLOSE_RESUME);
}

struct gh_shard_act gh_shard_tick(struct gh_shard *s, int64_t now_ms)
{
    struct gh_shard_act a = {0};

    if (s->hb_due_ms == 0 || now_ms < s->hb_due_ms)
        return a;
    if (s->awaiting_ack) {
        /* No ACK since the previous heartbeat: a zombie connection. Close
         * with a non-1000 code so the session stays resumable. */
        return reconnect(s, 4000, 0, 1);
    }
    a.kind = GH_SACT_HEARTBEAT;
    return a;
}

int64_t gh_shard_heartbeat_sent(struct gh_shard *s, int64_t now_ms)
{
    int64_t late = s->hb_due_ms > 0 && now_ms > s->hb_due_ms ? now_ms - s->hb_due_ms : 0;
    s->hb_sent_ms = now_ms;
    s->awaiting_ack = 1;
    if (s->hb_interval_ms > 0)
        s->hb_due_ms = now_ms + s->hb_interval_ms;
    return late;
}
