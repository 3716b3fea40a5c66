/* gateway.c - gateway-lite's loop (see gateway.h, docs/gateway.md).
 *
 * The protocol decisions are in shard.c (pure); this file does the I/O:
 * sockets (lib/gateway/ws.h), Redis (gwstate.c, the job queue), REST
 * (GET /gateway/bot), and the dispatch to the features. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "core/config.h"
#include "core/ctx.h"
#include "core/err.h"
#include "core/json.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "discord/rest.h"
#include "features/registry.h"
#include "gateway/gateway.h"
#include "gateway/gwstate.h"
#include "gateway/gwstats.h"
#include "gateway/intents.h"
#include "gateway/shard.h"
#include "gateway/ws.h"
#include "store/jobspool.h"
#include "store/queue.h"
#include "store/redis.h"

#define BOT_STALE_MS 60000       /* refresh GET /gateway/bot before an identify after this */
#define IDENTIFY_RESERVE 5       /* below this many identifies left, space them out */
#define RESERVE_SPACING_MS 60000 /* one identify per minute inside the reserve */
#define IDENTIFY_WINDOW_MS 5000  /* max_concurrency identifies per bucket per 5 s */
#define IDENTIFY_MARGIN_MS 500   /* counted from our send: Discord counts from its receipt */
#define STANDBY_RETRY_MS 3000    /* a shard owned elsewhere: try its lease this often */
#define SEQ_SAVE_MS 1000         /* session seq written at least this often */
#define SESSION_REFRESH_MS 60000 /* session TTL refreshed at least this often */
#define HELLO_TIMEOUT_MS 30000
#define BATCH_MAX 512 /* dispatches held before the inline handlers run */
#define SHUTDOWN_CLOSE_MS 2000
#define SHUTDOWN_REST_MS 5000 /* pending REST calls (deletes) at SIGTERM */
#define LOG_EVERY_MS 10000

struct guildset {
    uint64_t *ids; /* sorted */
    size_t n, cap;
};

struct conn;

struct batch_item {
    json_object *obj; /* the whole payload (owned) */
    struct gh_event ev;
};

struct conn {
    struct gh_gateway *gw;
    struct gh_shard p;
    struct gh_ws *ws;
    int owned;       /* lease held */
    int failed;      /* stopped on a fatal close code: never retried */
    char error[256]; /* why it failed */
    int64_t next_lease_ms;
    int64_t seq_saved;
    int64_t next_seq_save_ms;
    int64_t session_saved_ms;
    int64_t connect_ms;      /* when the current socket was opened (mono) */
    int64_t started_wall_ms; /* lease acquired (status "started_ms") */
    int64_t last_hb_wall_ms; /* last heartbeat ACK (wall) */
    int has_pending;         /* op 7 / op 9 seen during gh_ws_service */
    struct gh_shard_act pending;
    int identifying; /* this connection was budgeted for an identify */
    struct guildset guilds;
    struct gh_gw_stats stats;
    uint64_t identifies, resumes;
};

struct gh_gateway {
    struct gh_ctx *ctx;
    struct gh_gateway_opts o;
    int count;
    struct conn *conns;
    int nconns;
    json_tokener *tok;
    /* GET /gateway/bot */
    char url[256];
    int recommended;
    int total, remaining, max_concurrency;
    int64_t reset_at_ms; /* mono: when remaining resets */
    int64_t bot_fetched_ms;
    int bot_fetching;
    int64_t last_reserve_identify_ms;
    int64_t *key_free_at; /* [max_concurrency] */
    int nkeys;
    /* dispatch batch of the shard being serviced */
    struct batch_item batch[BATCH_MAX];
    int nbatch;
    /* jobs Redis refused (store/jobspool.h): ours, lent to ctx->spool */
    struct gh_jobspool *spool;
    int own_spool;
    int64_t next_status_ms;
    uint64_t rng;
    int fatal_token;
    int house_count;
    int64_t house_ms;
    int stopping;
    /* log throttles */
    int64_t log_budget_ms, log_redis_ms, log_parse_ms, log_handler_ms;
};

/* ---- small helpers */

static double rnd01(struct gh_gateway *gw)
{
    /* xorshift64* */
    gw->rng ^= gw->rng >> 12;
    gw->rng ^= gw->rng << 25;
    gw->rng ^= gw->rng >> 27;
    return (double)((gw->rng * 2685821657736338717ull) >> 11) / 9007199254740992.0;
}

static int throttle(int64_t *last, int64_t now)
{
    return gh_every(last, now, LOG_EVERY_MS);
}

static const struct gh_logger *LG(const struct gh_gateway *gw)
{
    return &gw->ctx->log;
}

static void guildset_clear(struct guildset *g)
{
    g->n = 0;
}

static size_t guildset_pos(const struct guildset *g, uint64_t id, int *found)
{
    size_t lo = 0, hi = g->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (g->ids[mid] < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = lo < g->n && g->ids[lo] == id;
    return lo;
}

static void guildset_add(struct guildset *g, uint64_t id)
{
    int found;
    size_t pos = guildset_pos(g, id, &found);
    if (found || id == 0)
        return;
    if (g->n == g->cap) {
        size_t cap = g->cap ? g->cap * 2 : 64;
        uint64_t *n = realloc(g->ids, cap * sizeof(*n));
        if (!n)
            return;
        g->ids = n;
        g->cap = cap;
    }
    memmove(g->ids + pos + 1, g->ids + pos, (g->n - pos) * sizeof(*g->ids));
    g->ids[pos] = id;
    g->n++;
}

static void guildset_del(struct guildset *g, uint64_t id)
{
    int found;
    size_t pos = guildset_pos(g, id, &found);
    if (!found)
        return;
    memmove(g->ids + pos, g->ids + pos + 1, (g->n - pos - 1) * sizeof(*g->ids));
    g->n--;
}

/* base url (query replaced) + ?v=10&encoding=json[&compress=zlib-stream] */
static int build_url(const struct gh_gateway *gw, const char *base, char *out, size_t size)
{
    size_t n = strcspn(base, "?");
    const char *scheme = strstr(base, "://");
    const char *path = scheme ? strchr(scheme + 3, '/') : NULL;
    /* wss://gateway.discord.gg -> wss://gateway.discord.gg/?v=10...;
     * ws://127.0.0.1:1/gateway keeps its path as is */
    int slash = !path || (size_t)(path - base) >= n;
    int w = snprintf(out, size, "%.*s%s?v=10&encoding=json%s", (int)n, base, slash ? "/" : "",
                     gw->o.zlib_stream ? "&compress=zlib-stream" : "");
    return w > 0 && (size_t)w < size ? GH_OK : GH_ETOOBIG;
}

/* ---- GET /gateway/bot */

static int parse_bot(struct gh_gateway *gw, const char *body, size_t len)
{
    json_object *o = NULL, *ssl;
    int64_t v;
    int rc = GH_EJSON;

    if (gh_json_parse(body, len, 8, &o) != GH_OK || !json_object_is_type(o, json_type_object))
        goto out;
    const char *url = gh_json_get_str(o, "url");
    if (url && *url)
        snprintf(gw->url, sizeof(gw->url), "%s", url);
    if (gh_json_get_int(o, "shards", &v) == GH_OK && v > 0)
        gw->recommended = (int)v;
    ssl = gh_json_get_obj(o, "session_start_limit");
    if (ssl) {
        if (gh_json_get_int(ssl, "total", &v) == GH_OK)
            gw->total = (int)v;
        if (gh_json_get_int(ssl, "remaining", &v) == GH_OK)
            gw->remaining = (int)v;
        if (gh_json_get_int(ssl, "reset_after", &v) == GH_OK)
            gw->reset_at_ms = gh_mono_ms() + v;
        if (gh_json_get_int(ssl, "max_concurrency", &v) == GH_OK && v > 0)
            gw->max_concurrency = (int)v;
    }
    gw->bot_fetched_ms = gh_mono_ms();
    rc = GH_OK;
out:
    json_object_put(o);
    return rc;
}

static int ensure_keys(struct gh_gateway *gw)
{
    if (gw->max_concurrency < 1)
        gw->max_concurrency = 1;
    if (gw->max_concurrency > GH_GW_MAX_SHARDS)
        gw->max_concurrency = GH_GW_MAX_SHARDS;
    if (gw->nkeys >= gw->max_concurrency)
        return GH_OK;
    int64_t *k = realloc(gw->key_free_at, sizeof(*k) * (size_t)gw->max_concurrency);
    if (!k)
        return GH_ENOMEM;
    for (int i = gw->nkeys; i < gw->max_concurrency; i++)
        k[i] = 0;
    gw->key_free_at = k;
    gw->nkeys = gw->max_concurrency;
    return GH_OK;
}

static void bot_refreshed(int err, const struct gh_rest_resp *resp, void *arg)
{
    struct gh_gateway *gw = arg;

    gw->bot_fetching = 0;
    if (err != GH_OK || !resp || !resp->body || parse_bot(gw, resp->body, resp->body_len) != GH_OK) {
        GH_WARN(LG(gw), "gateway: refreshing GET /gateway/bot failed (%s%s%s); using the last known limits",
                gh_strerror(err), resp && resp->error[0] ? ": " : "", resp ? resp->error : "");
        gw->bot_fetched_ms = gh_mono_ms(); /* do not hammer it */
        return;
    }
    ensure_keys(gw);
    GH_INFO(LG(gw), "gateway: session start limit %d/%d remaining, max_concurrency %d", gw->remaining,
            gw->total, gw->max_concurrency);
}

/* Blocking, at start: retried until it works or a stop is requested.
 * GH_OK, GH_EUNAUTHORIZED (bad token), or GH_EIO when stopped. */
static int fetch_bot(struct gh_gateway *gw, volatile sig_atomic_t *stop)
{
    int attempt = 0;
    while (!*stop) {
        struct gh_rest_req req = {.method = "GET", .path = "/gateway/bot"};
        struct gh_rest_resp resp;
        memset(&resp, 0, sizeof(resp));
        int rc = gh_rest_do(gw->ctx->rest, &req, &resp);
        if (rc == GH_OK && resp.body && parse_bot(gw, resp.body, resp.body_len) == GH_OK) {
            gh_rest_resp_cleanup(&resp);
            return ensure_keys(gw);
        }
        if (rc == GH_EUNAUTHORIZED) {
            GH_CRIT(LG(gw),
                    "gateway: GET /gateway/bot refused the token (401): set DISCORD_TOKEN to the bot token "
                    "from the Developer Portal");
            gh_rest_resp_cleanup(&resp);
            return GH_EUNAUTHORIZED;
        }
        int64_t delay = gh_gw_backoff_ms(attempt++, rnd01(gw));
        GH_ERROR(LG(gw), "gateway: GET /gateway/bot failed (%s%s%s); retrying in %lld ms", gh_strerror(rc),
                 resp.error[0] ? ": " : "", resp.error, (long long)delay);
        gh_rest_resp_cleanup(&resp);
        struct timespec ts = {.tv_sec = delay / 1000, .tv_nsec = (delay % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
    return GH_EIO;
}

/* ---- sending */

static int send_payload(struct conn *c, json_object *o, int heartbeat)
{
    size_t len = 0;
    const char *txt = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN, &len);
    int64_t now = gh_mono_ms();

    if (!c->ws || gh_ws_state(c->ws) != GH_WS_OPEN)
        return GH_EIO;
    if (len > GH_GW_MAX_PAYLOAD) {
        GH_ERROR(LG(c->gw), "gateway: shard %d: payload of %zu bytes not sent (limit %d)", c->p.id, len,
                 GH_GW_MAX_PAYLOAD);
        return GH_ETOOBIG;
    }
    if (!gh_gw_limiter_take(&c->p.limiter, now, heartbeat)) {
        GH_WARN(LG(c->gw), "gateway: shard %d: send limit (120 per 60 s) reached; payload held back",
                c->p.id);
        return GH_ERATELIMIT;
    }
    return gh_ws_send_text(c->ws, txt, len);
}

static void send_heartbeat(struct conn *c)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "op", json_object_new_int(GH_GW_OP_HEARTBEAT));
    json_object_object_add(o, "d", c->p.seq > 0 ? json_object_new_int64(c->p.seq) : NULL);
    if (send_payload(c, o, 1) == GH_OK) {
        int64_t now_us = gh_mono_us();
        int64_t due_us = c->p.hb_due_ms * 1000;
        gh_shard_heartbeat_sent(&c->p, now_us / 1000);
        /* how late versus its due time: measures loop stalls (a heartbeat
         * Discord asked for with op 1 counts as on time) */
        gh_hist_add(&c->stats.hb_late_us, due_us > 0 && now_us > due_us ? now_us - due_us : 0);
    }
    json_object_put(o);
}

static void send_identify(struct conn *c)
{
    struct gh_gateway *gw = c->gw;
    json_object *o = json_object_new_object(), *d = json_object_new_object(),
                *props = json_object_new_object(), *shard = json_object_new_array();

    json_object_object_add(props, "os", json_object_new_string("linux"));
    json_object_object_add(props, "browser", json_object_new_string("guildhall"));
    json_object_object_add(props, "device", json_object_new_string("guildhall"));
    json_object_array_add(shard, json_object_new_int(c->p.id));
    json_object_array_add(shard, json_object_new_int(c->p.count));
    json_object_object_add(d, "token", json_object_new_string(gw->o.token));
    json_object_object_add(d, "intents", json_object_new_int64((int64_t)gw->o.intents));
    json_object_object_add(d, "properties", props);
    json_object_object_add(d, "shard", shard);
    json_object_object_add(d, "large_threshold", json_object_new_int(250));
    json_object_object_add(o, "op", json_object_new_int(GH_GW_OP_IDENTIFY));
    json_object_object_add(o, "d", d);
    if (send_payload(c, o, 0) == GH_OK) {
        /* the bucket's 5 s count from now (plus a margin for the trip) */
        int key = c->p.id % gw->max_concurrency;
        int64_t window = IDENTIFY_WINDOW_MS + IDENTIFY_MARGIN_MS;
        if (key < gw->nkeys)
            gw->key_free_at[key] = gh_mono_ms() + window;
        gh_gwstate_identify_extend(gw->ctx->redis, key, (int)window);
        c->identifies++;
        GH_INFO(LG(gw), "gateway: shard %d/%d: identifying (intents %llu)", c->p.id, c->p.count,
                (unsigned long long)gw->o.intents);
    }
    json_object_put(o);
}

static void send_resume(struct conn *c)
{
    json_object *o = json_object_new_object(), *d = json_object_new_object();

    json_object_object_add(d, "token", json_object_new_string(c->gw->o.token));
    json_object_object_add(d, "session_id", json_object_new_string(c->p.session_id));
    json_object_object_add(d, "seq", json_object_new_int64(c->p.seq));
    json_object_object_add(o, "op", json_object_new_int(GH_GW_OP_RESUME));
    json_object_object_add(o, "d", d);
    if (send_payload(c, o, 0) == GH_OK) {
        c->resumes++;
        GH_INFO(LG(c->gw), "gateway: shard %d: resuming session at seq %lld", c->p.id, (long long)c->p.seq);
    }
    json_object_put(o);
}

/* ---- sessions */

static void save_session(struct conn *c)
{
    struct gh_gw_session s;

    if (!c->p.session_id[0])
        return;
    memset(&s, 0, sizeof(s));
    snprintf(s.session_id, sizeof(s.session_id), "%s", c->p.session_id);
    snprintf(s.resume_url, sizeof(s.resume_url), "%s", c->p.resume_url);
    s.seq = c->p.seq;
    if (gh_gwstate_session_save(c->gw->ctx->redis, c->p.id, &s) == GH_OK)
        c->seq_saved = c->p.seq;
    else if (throttle(&c->gw->log_redis_ms, gh_mono_ms()))
        GH_WARN(LG(c->gw), "gateway: shard %d: saving the session to Redis failed; will retry", c->p.id);
}

static void save_seq(struct conn *c, int64_t now)
{
    if (now < c->next_seq_save_ms || !c->p.session_id[0])
        return;
    /* a quiet shard still refreshes the TTL now and then */
    if (c->p.seq == c->seq_saved && now - c->session_saved_ms < SESSION_REFRESH_MS)
        return;
    c->next_seq_save_ms = now + SEQ_SAVE_MS;
    c->session_saved_ms = now;
    /* a whole save also recreates a session lost with Redis */
    save_session(c);
}

/* ---- dispatch */

static int wants_job(const char *name, uint64_t guild_id)
{
    for (size_t i = 0; gh_features[i]; i++) {
        const struct gh_feature *f = gh_features[i];
        for (size_t j = 0; j < f->n_events; j++) {
            const struct gh_event_handler *h = &f->events[j];
            if (h->job_fn && strcmp(h->name, name) == 0 && (!h->job_dm_only || guild_id == 0))
                return 1;
        }
    }
    return 0;
}

static void enqueue_job(struct conn *c, const struct gh_event *ev)
{
    struct gh_gateway *gw = c->gw;
    char id[160];
    json_object *payload;

    snprintf(id, sizeof(id), "ev:%s:%lld", c->p.session_id[0] ? c->p.session_id : "nosession",
             (long long)ev->seq);
    payload = json_object_new_object();
    json_object_object_add(payload, "t", json_object_new_string(ev->name));
    json_object_object_add(payload, "d", json_object_get(ev->d));
    json_object_object_add(payload, "shard", json_object_new_int(c->p.id));
    json_object_object_add(payload, "seq", json_object_new_int64(ev->seq));
    json_object_object_add(payload, "received_ms",
                           json_object_new_int64(gh_now_ms() - (gh_mono_us() - ev->received_us) / 1000));
    /* queued, or spooled while Redis refuses it (counted either way) */
    int rc = gh_jobspool_enqueue(gw->ctx, GH_QUEUE_DEFAULT, id, "gateway:event", ev->guild_id, payload, 0, 0);
    json_object_put(payload);
    if (rc == GH_OK)
        c->stats.jobs_enqueued++;
    else if (rc != GH_EDUPLICATE)
        GH_ERROR(LG(gw), "gateway: shard %d: enqueueing %s (%s) failed: %s", c->p.id, ev->name, id,
                 gh_strerror(rc));
}

static void run_inline(struct conn *c, struct gh_event *const *evs, int n)
{
    struct gh_gateway *gw = c->gw;
    const char *name = evs[0]->name;

    for (size_t i = 0; gh_features[i]; i++) {
        const struct gh_feature *f = gh_features[i];
        for (size_t j = 0; j < f->n_events; j++) {
            const struct gh_event_handler *h = &f->events[j];
            if (!h->inline_fn || strcmp(h->name, name) != 0)
                continue;
            int rc = h->inline_fn(gw->ctx, evs, n);
            if (rc != GH_OK && throttle(&gw->log_handler_ms, gh_mono_ms()))
                GH_ERROR(LG(gw), "gateway: %s inline handler of %s failed on %d event(s): %s", f->name, name,
                         n, gh_strerror(rc));
        }
    }
}

static void flush_batch(struct conn *c)
{
    struct gh_gateway *gw = c->gw;
    struct gh_event *ptrs[BATCH_MAX];
    int n = gw->nbatch;

    if (n == 0)
        return;
    /* per run of one event name (a flood is one run): its handlers, whether
     * it is a message, whether it becomes a job (with and without a guild) */
    unsigned char want[BATCH_MAX];
    for (int i = 0; i < n; i++)
        ptrs[i] = &gw->batch[i].ev;
    for (int i = 0; i < n;) {
        int j = i + 1;
        while (j < n && strcmp(ptrs[j]->name, ptrs[i]->name) == 0)
            j++;
        run_inline(c, ptrs + i, j - i);
        int msg = strcmp(ptrs[i]->name, "MESSAGE_CREATE") == 0;
        int w_guild = wants_job(ptrs[i]->name, 1), w_dm = wants_job(ptrs[i]->name, 0);
        for (int k = i; k < j; k++)
            want[k] = (unsigned char)((ptrs[k]->guild_id ? w_guild : w_dm) | (msg << 1));
        i = j;
    }
    for (int i = 0; i < n; i++) {
        c->stats.events++;
        if (want[i] & 2)
            c->stats.messages++;
        if (want[i] & 1)
            enqueue_job(c, ptrs[i]);
    }
    for (int i = 0; i < n; i++) {
        json_object_put(gw->batch[i].obj);
        gw->batch[i].obj = NULL;
    }
    gw->nbatch = 0;
}

static void on_dispatch(struct conn *c, json_object *obj, int64_t seq, int64_t received_us)
{
    struct gh_gateway *gw = c->gw;
    const char *t = gh_json_get_str(obj, "t");
    json_object *d = NULL;

    json_object_object_get_ex(obj, "d", &d);
    if (!t) {
        json_object_put(obj);
        return;
    }
    if (strcmp(t, "READY") == 0) {
        const char *sid = gh_json_get_str(d, "session_id");
        const char *rurl = gh_json_get_str(d, "resume_gateway_url");
        json_object *guilds = gh_json_get_arr(d, "guilds");
        gh_shard_on_ready(&c->p, sid, rurl);
        guildset_clear(&c->guilds);
        for (size_t i = 0; guilds && i < json_object_array_length(guilds); i++)
            guildset_add(&c->guilds, gh_json_get_snowflake(json_object_array_get_idx(guilds, i), "id"));
        c->identifying = 0;
        GH_INFO(LG(gw), "gateway: shard %d/%d ready: session %s, %zu guild(s)", c->p.id, c->p.count,
                c->p.session_id, c->guilds.n);
        save_session(c);
    } else if (strcmp(t, "RESUMED") == 0) {
        gh_shard_on_resumed(&c->p);
        GH_INFO(LG(gw), "gateway: shard %d resumed at seq %lld", c->p.id, (long long)c->p.seq);
        save_session(c);
    } else if (strcmp(t, "GUILD_CREATE") == 0) {
        guildset_add(&c->guilds, gh_json_get_snowflake(d, "id"));
    } else if (strcmp(t, "GUILD_DELETE") == 0) {
        int unavailable = 0;
        gh_json_get_bool(d, "unavailable", &unavailable);
        if (!unavailable)
            guildset_del(&c->guilds, gh_json_get_snowflake(d, "id"));
    }
    if (gw->nbatch == BATCH_MAX)
        flush_batch(c);
    struct batch_item *it = &gw->batch[gw->nbatch++];
    it->obj = obj;
    memset(&it->ev, 0, sizeof(it->ev));
    it->ev.name = t;
    it->ev.d = d;
    it->ev.guild_id = d ? gh_json_get_snowflake(d, "guild_id") : 0;
    /* GUILD_CREATE/UPDATE/DELETE carry the guild as the object itself: its id */
    if (it->ev.guild_id == 0 && d && strncmp(t, "GUILD_", 6) == 0 &&
        (strcmp(t + 6, "CREATE") == 0 || strcmp(t + 6, "UPDATE") == 0 || strcmp(t + 6, "DELETE") == 0))
        it->ev.guild_id = gh_json_get_snowflake(d, "id");
    it->ev.shard_id = c->p.id;
    it->ev.seq = seq;
    it->ev.received_us = received_us;
    it->ev.stats = &c->stats;
}

static void set_pending(struct conn *c, struct gh_shard_act a)
{
    if (c->has_pending)
        return;
    c->pending = a;
    c->has_pending = 1;
}

/* One gh_ws_service call reads for as long as data keeps coming (a flood
 * can keep it busy for seconds). Every HOUSE_EVERY messages, at most every
 * HOUSE_MS: run the inline handlers on what is batched, send every shard's
 * due heartbeat, and drive the REST transfers (urgent calls go out now).
 * Zombie checks and reconnects wait for the loop (a socket is never freed
 * inside its own service call). */
#define HOUSE_EVERY 64
#define HOUSE_MS 5

static void housekeeping(struct conn *cur, int64_t now)
{
    struct gh_gateway *gw = cur->gw;

    flush_batch(cur);
    for (int i = 0; i < gw->nconns; i++) {
        struct conn *c = &gw->conns[i];
        if (c->ws && gh_ws_state(c->ws) == GH_WS_OPEN && c->p.hb_due_ms > 0 && now >= c->p.hb_due_ms &&
            !c->p.awaiting_ack)
            send_heartbeat(c);
    }
    gh_rest_poll(gw->ctx->rest, 0);
}

static void on_msg(void *arg, const char *data, size_t len)
{
    struct conn *c = arg;
    struct gh_gateway *gw = c->gw;
    int64_t received_us = gh_mono_us();
    json_object *obj, *s = NULL, *d = NULL;
    int64_t op = -1, seq = 0;

    if (++gw->house_count >= HOUSE_EVERY) {
        gw->house_count = 0;
        if (received_us / 1000 - gw->house_ms >= HOUSE_MS) {
            gw->house_ms = received_us / 1000;
            housekeeping(c, gw->house_ms);
        }
    }

    json_tokener_reset(gw->tok);
    obj = json_tokener_parse_ex(gw->tok, data, (int)len);
    if (!obj || !json_object_is_type(obj, json_type_object)) {
        if (throttle(&gw->log_parse_ms, gh_mono_ms()))
            GH_WARN(LG(gw), "gateway: shard %d: unparsable payload of %zu bytes dropped", c->p.id, len);
        json_object_put(obj);
        return;
    }
    gh_json_get_int(obj, "op", &op);
    if (json_object_object_get_ex(obj, "s", &s) && s && json_object_is_type(s, json_type_int)) {
        seq = json_object_get_int64(s);
        gh_shard_on_seq(&c->p, seq);
    }
    json_object_object_get_ex(obj, "d", &d);
    switch (op) {
    case GH_GW_OP_DISPATCH:
        on_dispatch(c, obj, seq, received_us);
        return; /* obj now belongs to the batch */
    case GH_GW_OP_HEARTBEAT:
        send_heartbeat(c);
        break;
    case GH_GW_OP_RECONNECT:
        GH_INFO(LG(gw), "gateway: shard %d: Discord asked to reconnect (op 7); resuming", c->p.id);
        set_pending(c, gh_shard_on_reconnect(&c->p));
        break;
    case GH_GW_OP_INVALID_SESSION: {
        int resumable = d && json_object_is_type(d, json_type_boolean) && json_object_get_boolean(d);
        struct gh_shard_act a = gh_shard_on_invalid_session(&c->p, resumable, rnd01(gw));
        GH_INFO(LG(gw), "gateway: shard %d: invalid session (op 9, %s); %s in %lld ms", c->p.id,
                resumable ? "resumable" : "not resumable", a.resume ? "resuming" : "identifying anew",
                (long long)a.delay_ms);
        if (!resumable)
            gh_gwstate_session_delete(gw->ctx->redis, c->p.id);
        set_pending(c, a);
        break;
    }
    case GH_GW_OP_HELLO: {
        int64_t interval = 0;
        gh_json_get_int(d, "heartbeat_interval", &interval);
        struct gh_shard_act a = gh_shard_on_hello(&c->p, interval, rnd01(gw), gh_mono_ms());
        if (a.kind == GH_SACT_RESUME)
            send_resume(c);
        else
            send_identify(c);
        break;
    }
    case GH_GW_OP_HEARTBEAT_ACK:
        gh_shard_on_ack(&c->p, gh_mono_ms());
        c->last_hb_wall_ms = gh_now_ms();
        break;
    default:
        break;
    }
    json_object_put(obj);
}

/* ---- connection lifecycle */

static void drop_ws(struct conn *c, int close_code)
{
    if (!c->ws)
        return;
    if (close_code && gh_ws_state(c->ws) == GH_WS_OPEN) {
        /* the close frame goes out at once when the socket takes it */
        gh_ws_close(c->ws, close_code, "reconnecting");
    }
    gh_ws_free(c->ws);
    c->ws = NULL;
}

static void write_status(struct conn *c, const char *state_override);

static void apply(struct conn *c, struct gh_shard_act a, int64_t now)
{
    struct gh_gateway *gw = c->gw;

    switch (a.kind) {
    case GH_SACT_NONE:
    case GH_SACT_IDENTIFY:
    case GH_SACT_RESUME:
        break;
    case GH_SACT_HEARTBEAT:
        send_heartbeat(c);
        break;
    case GH_SACT_RECONNECT:
        flush_batch(c);
        drop_ws(c, a.close_code);
        c->p.reconnect_at_ms = now + a.delay_ms;
        c->p.state = GH_SHARD_RECONNECT_WAIT;
        if (!a.resume)
            gh_gwstate_session_delete(gw->ctx->redis, c->p.id);
        break;
    case GH_SACT_FATAL:
        flush_batch(c);
        drop_ws(c, 0);
        c->failed = 1;
        snprintf(c->error, sizeof(c->error), "closed with %d %s", c->p.fatal_code,
                 gh_gw_close_name(c->p.fatal_code));
        char priv[160] = "";
        if (c->p.fatal_code == 4014) {
            char names[96];
            gh_gwconfig_intents_text(gw->o.intents & GH_INTENTS_PRIVILEGED, names, sizeof(names));
            snprintf(priv, sizeof(priv), " (privileged intents identified with: %s)", names);
        }
        GH_CRIT(LG(gw), "gateway: shard %d stopped: Discord closed the connection with %d (%s): %s%s",
                c->p.id, c->p.fatal_code, gh_gw_close_name(c->p.fatal_code),
                gh_gw_close_advice(c->p.fatal_code), priv);
        if (c->p.fatal_code == 4004)
            gw->fatal_token = 1;
        write_status(c, "failed");
        if (c->owned)
            gh_gwstate_lease_release(gw->ctx->redis, c->p.id, gw->o.owner);
        c->owned = 0;
        break;
    }
}

static void start_connect(struct conn *c, int64_t now)
{
    struct gh_gateway *gw = c->gw;
    char url[320], err[256];
    struct gh_ws_opts wo;
    int resume = gh_shard_can_resume(&c->p);
    const char *base = resume && c->p.resume_url[0] ? c->p.resume_url : gw->url;

    memset(&wo, 0, sizeof(wo));
    wo.zlib_stream = gw->o.zlib_stream;
    gh_shard_on_connecting(&c->p, now);
    c->connect_ms = now;
    c->has_pending = 0;
    if (build_url(gw, base, url, sizeof(url)) != GH_OK) {
        GH_ERROR(LG(gw), "gateway: shard %d: gateway URL too long", c->p.id);
        apply(c, gh_shard_on_close(&c->p, 0, rnd01(gw)), now);
        return;
    }
    c->ws = gh_ws_connect(url, &wo, err, sizeof(err));
    if (!c->ws) {
        GH_ERROR(LG(gw), "gateway: shard %d: connecting to %s failed: %s", c->p.id, url, err);
        apply(c, gh_shard_on_close(&c->p, 0, rnd01(gw)), now);
        return;
    }
    GH_INFO(LG(gw), "gateway: shard %d/%d: connecting to %s (%s)", c->p.id, c->p.count, url,
            resume ? "resume" : "identify");
}

/* The identify budget: may any shard identify now? */
static int budget_allows(struct gh_gateway *gw, int64_t now)
{
    if (gw->remaining <= 0) {
        if (gw->reset_at_ms > 0 && now >= gw->reset_at_ms) {
            if (!gw->bot_fetching) {
                struct gh_rest_req req = {.method = "GET", .path = "/gateway/bot"};
                if (gh_rest_submit(gw->ctx->rest, &req, bot_refreshed, gw) == GH_OK)
                    gw->bot_fetching = 1;
            }
            return 0;
        }
        if (throttle(&gw->log_budget_ms, now))
            GH_WARN(
                LG(gw),
                "gateway: no identify left in the session start limit (0/%d); waiting %lld s for it to reset",
                gw->total, (long long)((gw->reset_at_ms - now) / 1000));
        return 0;
    }
    if (now - gw->bot_fetched_ms > BOT_STALE_MS) {
        if (!gw->bot_fetching) {
            struct gh_rest_req req = {.method = "GET", .path = "/gateway/bot"};
            if (gh_rest_submit(gw->ctx->rest, &req, bot_refreshed, gw) == GH_OK)
                gw->bot_fetching = 1;
            else
                gw->bot_fetched_ms = now; /* could not even ask: go on with what we know */
        }
        if (gw->bot_fetching)
            return 0;
    }
    if (gw->remaining <= IDENTIFY_RESERVE) {
        if (gw->last_reserve_identify_ms != 0 && now - gw->last_reserve_identify_ms < RESERVE_SPACING_MS)
            return 0;
        GH_WARN(LG(gw),
                "gateway: only %d identify(s) left today (reserve %d): identifying one shard per minute",
                gw->remaining, IDENTIFY_RESERVE);
        return 2; /* one only */
    }
    return 1;
}

static void schedule_identifies(struct gh_gateway *gw, int64_t now)
{
    int cand[GH_GW_MAX_SHARDS], picks[GH_GW_MAX_SHARDS];
    int n = 0;

    for (int i = 0; i < gw->nconns; i++)
        if (gw->conns[i].owned && !gw->conns[i].failed && gw->conns[i].p.state == GH_SHARD_WAIT_IDENTIFY)
            cand[n++] = gw->conns[i].p.id;
    if (n == 0)
        return;
    int allow = budget_allows(gw, now);
    if (!allow)
        return;
    int np = gh_gwconfig_identify_picks(cand, n, gw->max_concurrency, gw->key_free_at, now, picks,
                                        allow == 2 ? 1 : GH_GW_MAX_SHARDS);
    for (int k = 0; k < np && gw->remaining > 0; k++) {
        struct conn *c = &gw->conns[picks[k] - gw->conns[0].p.id];
        int key = c->p.id % gw->max_concurrency;
        int lock = gh_gwstate_identify_lock(gw->ctx->redis, key);
        if (lock == 0) {
            gw->key_free_at[key] = now + 1000; /* another process identified in this bucket */
            continue;
        }
        if (lock < 0 && throttle(&gw->log_redis_ms, now))
            GH_WARN(LG(gw), "gateway: Redis down: identify bucket %d limited in this process only", key);
        gw->key_free_at[key] = now + IDENTIFY_WINDOW_MS;
        gw->remaining--;
        if (allow == 2)
            gw->last_reserve_identify_ms = now;
        c->identifying = 1;
        start_connect(c, now);
    }
}

/* Ready to (re)connect: resume at once, or wait for an identify slot. */
static void want_connect(struct conn *c, int64_t now)
{
    if (gh_shard_can_resume(&c->p))
        start_connect(c, now);
    else
        c->p.state = GH_SHARD_WAIT_IDENTIFY;
}

static void lease_tick(struct conn *c, int64_t now)
{
    struct gh_gateway *gw = c->gw;
    char holder[160] = "";

    if (c->failed || now < c->next_lease_ms)
        return;
    int rc = gh_gwstate_lease(gw->ctx->redis, c->p.id, gw->o.owner, holder, sizeof(holder));
    if (rc < 0) {
        c->next_lease_ms = now + 1000;
        if (throttle(&gw->log_redis_ms, now))
            GH_WARN(LG(gw),
                    "gateway: Redis unreachable: shard leases not renewed (connected shards carry on)");
        return;
    }
    if (rc == 1) {
        c->next_lease_ms = now + GH_GW_LEASE_RENEW_MS;
        if (c->owned)
            return;
        /* newly acquired: resume the session another process (or our last
         * run) left in Redis, else identify */
        struct gh_gw_session s;
        c->owned = 1;
        c->started_wall_ms = gh_now_ms();
        c->p.attempts = 0;
        gh_shard_drop_session(&c->p);
        if (gh_gwstate_session_load(gw->ctx->redis, c->p.id, &s) == 1) {
            snprintf(c->p.session_id, sizeof(c->p.session_id), "%s", s.session_id);
            snprintf(c->p.resume_url, sizeof(c->p.resume_url), "%s", s.resume_url);
            c->p.seq = s.seq;
            c->seq_saved = s.seq;
            c->p.want_resume = 1;
        }
        GH_INFO(LG(gw), "gateway: shard %d: lease taken by %s%s", c->p.id, gw->o.owner,
                c->p.session_id[0] ? " (session found: resuming)" : "");
        want_connect(c, now);
        return;
    }
    /* held by someone else */
    c->next_lease_ms = now + STANDBY_RETRY_MS;
    if (c->owned) {
        GH_ERROR(LG(gw), "gateway: shard %d: lease now held by %s; stopping this copy of the shard", c->p.id,
                 holder);
        flush_batch(c);
        drop_ws(c, 4000);
        c->owned = 0;
        gh_shard_drop_session(&c->p);
        c->p.state = GH_SHARD_WAIT_LEASE;
        c->p.hb_due_ms = 0;
    }
}

static void fmt_field(struct gh_gw_field *f, const char *name, long long v)
{
    f->name = name;
    snprintf(f->value, sizeof(f->value), "%lld", v);
}

static void write_status(struct conn *c, const char *state_override)
{
    struct gh_gateway *gw = c->gw;
    struct gh_gw_field f[24];
    int n = 0;

    f[n].name = "state";
    snprintf(f[n++].value, sizeof(f[0].value), "%s",
             state_override ? state_override : gh_shard_state_name(c->p.state));
    fmt_field(&f[n++], "guilds", (long long)c->guilds.n);
    fmt_field(&f[n], "latency_ms", (long long)c->p.latency_ms);
    if (c->p.latency_ms < 0)
        f[n].value[0] = '\0'; /* unknown: readers show it as such */
    n++;
    fmt_field(&f[n++], "last_heartbeat_ms", (long long)c->last_hb_wall_ms);
    fmt_field(&f[n++], "started_ms", (long long)c->started_wall_ms);
    f[n].name = "owner";
    snprintf(f[n++].value, sizeof(f[0].value), "%s", gw->o.owner);
    fmt_field(&f[n++], "shard_count", c->p.count);
    fmt_field(&f[n++], "seq", (long long)c->p.seq);
    fmt_field(&f[n++], "events", (long long)c->stats.events);
    fmt_field(&f[n++], "messages", (long long)c->stats.messages);
    fmt_field(&f[n++], "automod_hits", (long long)c->stats.automod_hits);
    fmt_field(&f[n++], "urgent_calls", (long long)c->stats.urgent_calls);
    fmt_field(&f[n++], "urgent_p50_us", (long long)gh_hist_quantile(&c->stats.urgent_us, 0.5));
    fmt_field(&f[n++], "urgent_p99_us", (long long)gh_hist_quantile(&c->stats.urgent_us, 0.99));
    fmt_field(&f[n++], "hb_late_p99_us", (long long)gh_hist_quantile(&c->stats.hb_late_us, 0.99));
    fmt_field(&f[n++], "jobs_enqueued", (long long)c->stats.jobs_enqueued);
    fmt_field(&f[n++], "jobs_spooled", (long long)gh_jobspool_len(gw->ctx->spool));
    fmt_field(&f[n++], "jobs_lost", (long long)gh_jobspool_lost(gw->ctx->spool));
    fmt_field(&f[n++], "identifies", (long long)c->identifies);
    fmt_field(&f[n++], "resumes", (long long)c->resumes);
    f[n].name = "error";
    snprintf(f[n++].value, sizeof(f[0].value), "%.63s", c->error);
    if (gh_gwstate_status(gw->ctx->redis, c->p.id, f, n) != GH_OK &&
        throttle(&gw->log_redis_ms, gh_mono_ms()))
        GH_WARN(LG(gw), "gateway: writing shard status to Redis failed");
}

static void service_conn(struct conn *c, short revents, int64_t now)
{
    struct gh_gateway *gw = c->gw;
    int rc;

    if (!c->ws)
        return;
    gw->nbatch = 0;
    rc = gh_ws_service(c->ws, revents, on_msg, c);
    flush_batch(c);
    if (c->has_pending) {
        c->has_pending = 0;
        apply(c, c->pending, gh_mono_ms());
        return;
    }
    if (rc < 0 || gh_ws_state(c->ws) == GH_WS_CLOSED) {
        struct gh_ws_close_info ci;
        gh_ws_get_close_info(c->ws, &ci);
        if (gw->stopping) {
            drop_ws(c, 0);
            return;
        }
        struct gh_shard_act a = gh_shard_on_close(&c->p, ci.code, rnd01(gw));
        if (a.kind == GH_SACT_RECONNECT)
            GH_WARN(LG(gw), "gateway: shard %d: connection closed (%d %s%s%s%s%s); %s in %lld ms", c->p.id,
                    ci.code, gh_gw_close_name(ci.code), ci.reason[0] ? ": " : "", ci.reason,
                    ci.error[0] ? "; " : "", ci.error, a.resume ? "resuming" : "new session",
                    (long long)a.delay_ms);
        apply(c, a, now);
        return;
    }
    if (c->p.state == GH_SHARD_CONNECTING && gh_ws_state(c->ws) == GH_WS_OPEN)
        c->p.state = GH_SHARD_HELLO;
    if ((c->p.state == GH_SHARD_CONNECTING || c->p.state == GH_SHARD_HELLO) &&
        now - c->connect_ms > HELLO_TIMEOUT_MS) {
        GH_WARN(LG(gw), "gateway: shard %d: no HELLO within %d s; reconnecting", c->p.id,
                HELLO_TIMEOUT_MS / 1000);
        apply(c, gh_shard_on_close(&c->p, 0, rnd01(gw)), now);
    }
}

/* ---- public */

struct gh_gateway *gh_gateway_new(struct gh_ctx *ctx, const struct gh_gateway_opts *opts)
{
    struct gh_gateway *gw = calloc(1, sizeof(*gw));
    if (!gw)
        return NULL;
    gw->ctx = ctx;
    gw->o = *opts;
    gw->tok = json_tokener_new_ex(64);
    if (!ctx->spool) { /* one spool per process: a caller's own is used as is */
        gw->spool = gh_jobspool_new(opts->spool_max > 0 ? opts->spool_max : GH_JOBSPOOL_DEFAULT_MAX);
        gw->own_spool = 1;
        ctx->spool = gw->spool;
    } else
        gw->spool = ctx->spool;
    gw->rng = (uint64_t)gh_mono_us() ^ ((uint64_t)getpid() << 32) ^ 0x9e3779b97f4a7c15ull;
    gw->max_concurrency = 1;
    if (!gw->tok || !gw->spool) {
        gh_gateway_free(gw);
        return NULL;
    }
    return gw;
}

void gh_gateway_free(struct gh_gateway *gw)
{
    if (!gw)
        return;
    for (int i = 0; i < gw->nconns; i++) {
        gh_ws_free(gw->conns[i].ws);
        free(gw->conns[i].guilds.ids);
    }
    for (int i = 0; i < gw->nbatch; i++)
        json_object_put(gw->batch[i].obj);
    if (gw->own_spool) {
        if (gw->ctx->spool == gw->spool)
            gw->ctx->spool = NULL;
        gh_jobspool_free(gw->spool);
    }
    free(gw->conns);
    free(gw->key_free_at);
    if (gw->tok)
        json_tokener_free(gw->tok);
    free(gw);
}

static int64_t next_timer(struct gh_gateway *gw, int64_t now)
{
    int64_t t = now + 1000;
    for (int i = 0; i < gw->nconns; i++) {
        struct conn *c = &gw->conns[i];
        if (c->failed)
            continue;
        if (c->next_lease_ms < t)
            t = c->next_lease_ms;
        if (c->ws && c->p.hb_due_ms > 0 && c->p.hb_due_ms < t)
            t = c->p.hb_due_ms;
        if (c->p.state == GH_SHARD_RECONNECT_WAIT && c->p.reconnect_at_ms < t)
            t = c->p.reconnect_at_ms;
        if (c->p.state == GH_SHARD_WAIT_IDENTIFY && now + 100 < t)
            t = now + 100;
    }
    return t;
}

static void shutdown_all(struct gh_gateway *gw)
{
    int64_t deadline;

    gw->stopping = 1;
    for (int i = 0; i < gw->nconns; i++) {
        struct conn *c = &gw->conns[i];
        if (c->ws && gh_ws_state(c->ws) == GH_WS_OPEN)
            gh_ws_close(c->ws, 4000, "shutting down");
    }
    /* let the close frames go out and the peer answer (bounded) */
    deadline = gh_mono_ms() + SHUTDOWN_CLOSE_MS;
    for (;;) {
        struct pollfd pfd[GH_GW_MAX_SHARDS];
        struct conn *who[GH_GW_MAX_SHARDS];
        int n = 0;
        for (int i = 0; i < gw->nconns; i++) {
            struct conn *c = &gw->conns[i];
            if (c->ws && gh_ws_state(c->ws) != GH_WS_CLOSED && gh_ws_fd(c->ws) >= 0) {
                pfd[n].fd = gh_ws_fd(c->ws);
                pfd[n].events = gh_ws_events(c->ws);
                pfd[n].revents = 0;
                who[n++] = c;
            }
        }
        int64_t left = deadline - gh_mono_ms();
        if (n == 0 || left <= 0)
            break;
        poll(pfd, (nfds_t)n, (int)(left < 50 ? left : 50));
        for (int i = 0; i < n; i++) {
            gw->nbatch = 0;
            gh_ws_service(who[i]->ws, pfd[i].revents, on_msg, who[i]);
            flush_batch(who[i]); /* events that arrived before the close still count */
        }
    }
    /* urgent calls still waiting (AutoMod's deletes behind a rate limit, the
     * next bulk delete of a channel): given a bounded time to go out */
    {
        int left = gh_rest_poll(gw->ctx->rest, 0);
        int64_t rest_deadline = gh_mono_ms() + SHUTDOWN_REST_MS;
        while (left > 0 && gh_mono_ms() < rest_deadline)
            left = gh_rest_poll(gw->ctx->rest, 50);
        if (left > 0)
            GH_WARN(LG(gw), "gateway: %d Discord call(s) still waiting at shutdown: dropped", left);
    }
    for (int i = 0; i < gw->nconns; i++) {
        struct conn *c = &gw->conns[i];
        drop_ws(c, 0);
        if (!c->owned)
            continue;
        save_session(c);
        write_status(c, "stopped");
        gh_gwstate_lease_release(gw->ctx->redis, c->p.id, gw->o.owner);
        c->owned = 0;
    }
    gh_jobspool_drain(gw->ctx, INT64_MAX); /* one last try, whatever the retry time */
    if (gh_jobspool_len(gw->ctx->spool) > 0)
        GH_ERROR(LG(gw), "gateway: %d spooled job(s) could not reach Redis before exit and are lost",
                 gh_jobspool_len(gw->ctx->spool));
}

int gh_gateway_run(struct gh_gateway *gw, volatile sig_atomic_t *stop)
{
    char text[512];
    int first, last;

    int rc = fetch_bot(gw, stop);
    if (rc == GH_EUNAUTHORIZED)
        return 1;
    if (rc != GH_OK)
        return *stop ? 0 : 1;
    if (gw->o.url_override && gw->o.url_override[0])
        snprintf(gw->url, sizeof(gw->url), "%s", gw->o.url_override);
    gw->count = gw->o.range.count > 0 ? gw->o.range.count : (gw->recommended > 0 ? gw->recommended : 1);
    first = gw->o.range.count > 0 ? gw->o.range.first : 0;
    last = gw->o.range.count > 0 ? gw->o.range.last : gw->count - 1;
    if (gw->count > GH_GW_MAX_SHARDS) {
        GH_CRIT(LG(gw), "gateway: %d shards is more than one deployment here supports (%d)", gw->count,
                GH_GW_MAX_SHARDS);
        return 2;
    }
    gw->nconns = last - first + 1;
    gw->conns = calloc((size_t)gw->nconns, sizeof(*gw->conns));
    if (!gw->conns)
        return 1;
    for (int i = 0; i < gw->nconns; i++) {
        gw->conns[i].gw = gw;
        gh_shard_init(&gw->conns[i].p, first + i, gw->count);
    }
    gh_gwconfig_intents_text(gw->o.intents, text, sizeof(text));
    GH_INFO(
        LG(gw),
        "gateway: shards %d-%d of %d (Discord recommends %d), owner %s, url %s, compress %s, identifies left "
        "%d/%d, max_concurrency %d, intents %llu (%s)",
        first, last, gw->count, gw->recommended, gw->o.owner, gw->url,
        gw->o.zlib_stream ? "zlib-stream" : "none", gw->remaining, gw->total, gw->max_concurrency,
        (unsigned long long)gw->o.intents, text);

    while (!*stop && !gw->fatal_token) {
        int64_t now = gh_mono_ms();
        struct pollfd pfd[GH_GW_MAX_SHARDS];
        struct conn *who[GH_GW_MAX_SHARDS];
        int n = 0, alive = 0;

        for (int i = 0; i < gw->nconns; i++) {
            struct conn *c = &gw->conns[i];
            if (c->failed)
                continue;
            alive++;
            lease_tick(c, now);
            if (!c->owned)
                continue;
            if (c->p.state == GH_SHARD_RECONNECT_WAIT && now >= c->p.reconnect_at_ms)
                want_connect(c, now);
            if (c->ws) {
                struct gh_shard_act a = gh_shard_tick(&c->p, now);
                if (a.kind == GH_SACT_RECONNECT)
                    GH_WARN(LG(gw),
                            "gateway: shard %d: no heartbeat ACK since the last heartbeat (zombie "
                            "connection); closing with 4000 and resuming",
                            c->p.id);
                apply(c, a, now);
            }
            save_seq(c, now);
        }
        if (alive == 0) {
            GH_CRIT(LG(gw), "gateway: every shard of this process stopped on a fatal close code; exiting");
            break;
        }
        schedule_identifies(gw, now);
        if (now >= gw->next_status_ms) {
            gw->next_status_ms = now + gw->o.status_interval_ms;
            for (int i = 0; i < gw->nconns; i++)
                if (gw->conns[i].owned || gw->conns[i].failed)
                    write_status(&gw->conns[i], gw->conns[i].failed ? "failed" : NULL);
        }
        gh_jobspool_drain(gw->ctx, now);

        for (int i = 0; i < gw->nconns; i++) {
            struct conn *c = &gw->conns[i];
            if (c->ws && gh_ws_fd(c->ws) >= 0) {
                pfd[n].fd = gh_ws_fd(c->ws);
                pfd[n].events = gh_ws_events(c->ws);
                pfd[n].revents = 0;
                who[n++] = c;
            }
        }
        int pending = gh_rest_poll(gw->ctx->rest, 0);
        int64_t wait = next_timer(gw, now) - gh_mono_ms();
        if (pending > 0 && wait > 5)
            wait = 5;
        if (wait < 0)
            wait = 0;
        if (poll(pfd, (nfds_t)n, (int)wait) < 0 && errno != EINTR) {
            GH_ERROR(LG(gw), "gateway: poll failed: %s", strerror(errno));
        }
        now = gh_mono_ms();
        for (int i = 0; i < n; i++)
            service_conn(who[i], pfd[i].revents, now);
        gh_rest_poll(gw->ctx->rest, 0);
    }
    int status = gw->fatal_token ? 1 : (*stop ? 0 : 1);
    shutdown_all(gw);
    GH_INFO(LG(gw), "gateway: stopped (exit %d)", status);
    return status;
}
