/* test_automod_inline.c - AutoMod's inline handler (features/automod/events.c)
 * against the test stack's Redis, PostgreSQL (the settings) and the fake
 * Discord (the urgent REST calls): a batch of MESSAGE_CREATE events goes
 * through gh_am_inline and the test checks the flags, the DELETE and PATCH
 * requests the fake received (its /_fake/requests log), the offence jobs in
 * the queue (their ids, once per duplicate event), the rate rule tripping on
 * the N+1th message, the repeat rule, exemptions, bots, webhooks and DMs
 * ignored, MESSAGE_UPDATE re-checked for content only, and Redis down (a
 * dead Redis URL): the rate rule skipped and counted, the content rules
 * still deleting.
 *
 * Needs DATABASE_URL, REDIS_URL, DISCORD_API_BASE, DISCORD_TOKEN and
 * GH_FAKE_DISCORD_URL (scripts/test.sh exports the stack's). Jobs go to a
 * queue of their own ("automodtest") that no worker drains. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include <curl/curl.h>
#include <hiredis/hiredis.h>
#include <json-c/json.h>

#include "core/config.h"
#include "core/ctx.h"
#include "core/err.h"
#include "core/log.h"
#include "core/str.h"
#include "core/timeutil.h"
#include "discord/rest.h"
#include "features/automod/automod.h"
#include "gateway/gwstats.h"
#include "store/pg.h"
#include "store/queue.h"
#include "store/redis.h"
#include "store/settings.h"

#define QUEUE "automodtest"
#define DEAD_REDIS "redis://127.0.0.1:1/0"

struct fx {
    struct gh_config cfg;
    struct gh_log_sink sink;
    struct gh_ctx ctx;
    struct gh_pg *pg;
    struct gh_redis *redis;
    struct gh_gw_stats stats;
    uint64_t guild, guild2;
    char log_path[64];
};

static uint64_t random_id(void)
{
    uint64_t r = 0;
    assert_int_equal(getrandom(&r, sizeof(r), 0), (ssize_t)sizeof(r));
    return 1000000000000000000ULL + r % 4000000000000000000ULL;
}

static int have_stack(void)
{
    return getenv("DATABASE_URL") && getenv("REDIS_URL") && getenv("DISCORD_API_BASE") &&
           getenv("GH_FAKE_DISCORD_URL");
}

#define NEED_STACK()                                                                                         \
    do {                                                                                                     \
        if (!have_stack()) {                                                                                 \
            print_message("the test stack's env is not set: automod inline tests skipped\n");                \
            skip();                                                                                          \
        }                                                                                                    \
    } while (0)

static void drop_guild(struct fx *fx, uint64_t g)
{
    char id[24], pattern[64];
    const char *p[1] = {id};
    redisReply *keys;
    snprintf(id, sizeof(id), "%" PRIu64, g);
    (void)gh_pg_command(fx->pg, "DELETE FROM audit_log WHERE guild_id = $1", 1, p);
    (void)gh_pg_command(fx->pg, "DELETE FROM guild_settings WHERE guild_id = $1", 1, p);
    (void)gh_pg_command(fx->pg, "DELETE FROM guilds WHERE id = $1", 1, p);
    snprintf(pattern, sizeof(pattern), "bot:{%s}:*", id);
    keys = gh_redis_cmd(fx->redis, "KEYS %s", pattern);
    for (size_t i = 0; keys && keys->type == REDIS_REPLY_ARRAY && i < keys->elements; i++)
        freeReplyObject(gh_redis_cmd(fx->redis, "DEL %s", keys->element[i]->str));
    freeReplyObject(keys);
}

static void clear_queue(struct fx *fx)
{
    char key[160];
    (void)gh_queue_key(key, sizeof(key), QUEUE, "ready");
    freeReplyObject(gh_redis_cmd(fx->redis, "DEL %s", key));
}

static int setup(void **state)
{
    struct fx *fx = calloc(1, sizeof(*fx));
    if (!fx)
        return -1;
    snprintf(fx->log_path, sizeof(fx->log_path), "/tmp/test_automod_inline.%d.log", (int)getpid());
    if (gh_log_sink_init(&fx->sink, "test_automod_inline", GH_LOG_DEBUG, fx->log_path, 0, 0) != GH_OK)
        return -1;
    gh_logger_init(&fx->ctx.log, &fx->sink, "automod");
    fx->ctx.cfg = &fx->cfg;
    fx->cfg.gateway_settings_ttl_ms = 60000;
    fx->ctx.queue = QUEUE;
    if (have_stack()) {
        struct gh_rest_opts o;
        const char *tok = getenv("DISCORD_TOKEN");
        fx->pg = gh_pg_new(getenv("DATABASE_URL"), 10000, NULL);
        fx->redis = gh_redis_new(getenv("REDIS_URL"), 500, NULL);
        fx->ctx.pg = gh_pg_new(getenv("DATABASE_URL"), 10000, &fx->ctx.log);
        fx->ctx.redis = gh_redis_new(getenv("REDIS_URL"), 500, &fx->ctx.log);
        memset(&o, 0, sizeof(o));
        o.api_base = getenv("DISCORD_API_BASE");
        o.token = tok ? tok : "";
        o.user_agent = "DiscordBot (test, 1)";
        o.log = &fx->ctx.log;
        o.max_retries = 0;
        fx->ctx.rest = gh_rest_new(&o);
        fx->guild = random_id();
        fx->guild2 = random_id();
    }
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fx *fx = *state;
    if (fx->pg) {
        drop_guild(fx, fx->guild);
        drop_guild(fx, fx->guild2);
        clear_queue(fx);
    }
    gh_rest_free(fx->ctx.rest);
    gh_redis_free(fx->ctx.redis);
    gh_pg_free(fx->ctx.pg);
    gh_redis_free(fx->redis);
    gh_pg_free(fx->pg);
    gh_log_sink_cleanup(&fx->sink);
    free(fx);
    return 0;
}

static void put_settings(struct fx *fx, uint64_t g, const char *json)
{
    char id[24];
    const char *p[1] = {id};
    json_object *doc = json_tokener_parse(json);
    int ver = 0;
    assert_non_null(doc);
    snprintf(id, sizeof(id), "%" PRIu64, g);
    assert_int_equal(gh_pg_command(fx->pg, "INSERT INTO guilds (id) VALUES ($1) ON CONFLICT DO NOTHING", 1, p),
                     GH_OK);
    assert_int_equal(gh_settings_put(&fx->ctx, g, "automod", doc, 0, -1, &ver), GH_OK);
    json_object_put(doc);
    gh_am_forget(g);
}

/* A MESSAGE_CREATE "d" (caller puts). */
static json_object *message(uint64_t g, uint64_t channel, uint64_t id, uint64_t author, const char *content,
                            const char *extra)
{
    char buf[4096];
    json_object *c = json_object_new_string(content);
    snprintf(buf, sizeof(buf),
             "{\"id\":\"%" PRIu64 "\",\"channel_id\":\"%" PRIu64 "\",\"author\":{\"id\":\"%" PRIu64
             "\",\"username\":\"u\"},\"member\":{\"roles\":[]},\"content\":%s,\"mentions\":[],"
             "\"mention_roles\":[],\"mention_everyone\":false%s%s}",
             id, channel, author,
             json_object_to_json_string(c), extra ? "," : "", extra ? extra : "");
    json_object_put(c);
    json_object *d = json_tokener_parse(buf);
    if (d && g) {
        char gs[24];
        snprintf(gs, sizeof(gs), "%" PRIu64, g);
        json_object_object_add(d, "guild_id", json_object_new_string(gs));
    }
    assert_non_null(d);
    return d;
}

struct batch {
    struct gh_event ev[16];
    struct gh_event *evp[16];
    json_object *d[16];
    int n;
};

static void add(struct fx *fx, struct batch *b, const char *name, uint64_t g, json_object *d)
{
    struct gh_event *e = &b->ev[b->n];
    memset(e, 0, sizeof(*e));
    e->name = name;
    e->guild_id = g;
    e->d = d;
    e->received_us = gh_mono_us();
    e->stats = &fx->stats;
    b->evp[b->n] = e;
    b->d[b->n] = d;
    b->n++;
}

static void run(struct fx *fx, struct batch *b)
{
    assert_int_equal(gh_am_inline(&fx->ctx, b->evp, b->n), GH_OK);
    for (int i = 0; i < 200 && gh_rest_poll(fx->ctx.rest, 50) > 0; i++)
        ;
}

static void batch_free(struct batch *b)
{
    for (int i = 0; i < b->n; i++)
        json_object_put(b->d[i]);
    b->n = 0;
}

/* ---- the fake's request log */

static size_t sink_cb(char *p, size_t sz, size_t n, void *arg)
{
    struct gh_buf *b = arg;
    return gh_buf_append(b, p, sz * n) == GH_OK ? sz * n : 0;
}

/* Requests the fake received with method and a path matching re. */
static int fake_count(const char *method, const char *re)
{
    char url[512];
    char *esc;
    struct gh_buf b;
    json_object *arr = NULL;
    int n = -1;
    CURL *c = curl_easy_init();
    assert_non_null(c);
    esc = curl_easy_escape(c, re, 0);
    snprintf(url, sizeof(url), "%s/_fake/requests?method=%s&path_re=%s", getenv("GH_FAKE_DISCORD_URL"), method,
             esc);
    curl_free(esc);
    gh_buf_init(&b, 1 << 22);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink_cb);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
    if (curl_easy_perform(c) == CURLE_OK && (arr = json_tokener_parse(gh_buf_cstr(&b))) != NULL &&
        json_object_is_type(arr, json_type_array))
        n = (int)json_object_array_length(arr);
    json_object_put(arr);
    gh_buf_cleanup(&b);
    curl_easy_cleanup(c);
    return n;
}

static int delete_count(uint64_t channel, uint64_t message_id)
{
    char re[128];
    snprintf(re, sizeof(re), "/channels/%" PRIu64 "/messages/%" PRIu64 "$", channel, message_id);
    return fake_count("DELETE", re);
}

/* Jobs with this id in the test queue's ready list. */
static int jobs_with_id(struct fx *fx, uint64_t g, uint64_t m, const char *rule)
{
    char key[160], id[160];
    redisReply *r;
    int n = 0;
    (void)gh_queue_key(key, sizeof(key), QUEUE, "ready");
    snprintf(id, sizeof(id), "\"id\":\"automod:%" PRIu64 ":%" PRIu64 ":%s\"", g, m, rule);
    r = gh_redis_cmd(fx->redis, "LRANGE %s 0 -1", key);
    for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i < r->elements; i++)
        if (strstr(r->element[i]->str, id))
            n++;
    freeReplyObject(r);
    return n;
}

/* ---- tests */

static void rate_trips_on_n_plus_one(void **state)
{
    struct fx *fx = *state;
    struct batch b = {.n = 0};
    uint64_t user = random_id(), ch = random_id(), m0 = random_id();
    NEED_STACK();
    put_settings(fx, fx->guild,
                 "{\"enabled\":true,\"rate\":{\"enabled\":true,\"max_messages\":3,\"window_s\":60,"
                 "\"actions\":[\"delete\"]}}");
    for (int i = 0; i < 4; i++)
        add(fx, &b, "MESSAGE_CREATE", fx->guild, message(fx->guild, ch, m0 + (uint64_t)i, user, "hello there", NULL));
    run(fx, &b);
    for (int i = 0; i < 3; i++)
        assert_int_equal(b.ev[i].flags, 0);
    assert_true(b.ev[3].flags & GH_EVF_AUTOMOD_HIT);
    assert_true(b.ev[3].flags & GH_EVF_SPAM);
    assert_true(b.ev[3].flags & GH_EVF_DELETED);
    assert_int_equal(delete_count(ch, m0 + 3), 1);
    assert_int_equal(delete_count(ch, m0 + 2), 0);
    assert_int_equal(jobs_with_id(fx, fx->guild, m0 + 3, "rate"), 1);
    assert_int_equal(jobs_with_id(fx, fx->guild, m0 + 2, "rate"), 0);
    /* the counter has its TTL */
    {
        char key[128];
        redisReply *r;
        (void)gh_key_guild(key, sizeof(key), fx->guild, "automod", "rate:%" PRIu64, user);
        r = gh_redis_cmd(fx->redis, "TTL %s", key);
        assert_non_null(r);
        assert_true(r->integer > 0 && r->integer <= 60);
        freeReplyObject(r);
    }
    batch_free(&b);
}

static void repeat_rule(void **state)
{
    struct fx *fx = *state;
    struct batch b = {.n = 0};
    uint64_t user = random_id(), ch = random_id(), m0 = random_id();
    NEED_STACK();
    put_settings(fx, fx->guild,
                 "{\"enabled\":true,\"repeat\":{\"enabled\":true,\"max_repeats\":3,\"actions\":[\"log\"]}}");
    add(fx, &b, "MESSAGE_CREATE", fx->guild, message(fx->guild, ch, m0, user, "Buy cheap gold!", NULL));
    add(fx, &b, "MESSAGE_CREATE", fx->guild, message(fx->guild, ch, m0 + 1, user, "something else", NULL));
    add(fx, &b, "MESSAGE_CREATE", fx->guild, message(fx->guild, ch, m0 + 2, user, "buy CHEAP gold 100", NULL));
    add(fx, &b, "MESSAGE_CREATE", fx->guild, message(fx->guild, ch, m0 + 3, user, "buy   cheap gold!!!", NULL));
    run(fx, &b);
    assert_int_equal(b.ev[0].flags, 0);
    assert_int_equal(b.ev[2].flags, 0);
    assert_int_equal(b.ev[3].flags, GH_EVF_AUTOMOD_HIT | GH_EVF_SPAM); /* log: no delete */
    assert_int_equal(delete_count(ch, m0 + 3), 0);
    assert_int_equal(jobs_with_id(fx, fx->guild, m0 + 3, "repeat"), 1);
    batch_free(&b);
}

static void content_rules_delete_and_timeout(void **state)
{
    struct fx *fx = *state;
    struct batch b = {.n = 0};
    uint64_t user = random_id(), ch = random_id(), exempt_ch = random_id(), m0 = random_id();
    char json[1024], re[128];
    uint64_t before = fx->stats.urgent_calls;
    NEED_STACK();
    snprintf(json, sizeof(json),
             "{\"enabled\":true,\"invites\":{\"enabled\":true,\"actions\":[\"delete\",\"warn\",\"timeout\"],"
             "\"timeout\":\"5m\",\"exempt_channels\":[\"%" PRIu64 "\"]},"
             "\"words\":{\"enabled\":true,\"log_only\":true,\"actions\":[\"delete\"],\"words\":[\"heck\"]}}",
             exempt_ch);
    put_settings(fx, fx->guild, json);
    add(fx, &b, "MESSAGE_CREATE", fx->guild, message(fx->guild, ch, m0, user, "join discord . gg / abcdef", NULL));
    add(fx, &b, "MESSAGE_CREATE", fx->guild, message(fx->guild, exempt_ch, m0 + 1, user, "discord.gg/abcdef", NULL));
    add(fx, &b, "MESSAGE_CREATE", fx->guild, message(fx->guild, ch, m0 + 2, user, "what the h3ck", NULL));
    add(fx, &b, "MESSAGE_CREATE", fx->guild,
        message(fx->guild, ch, m0 + 3, user, "discord.gg/abcdef", "\"webhook_id\":\"1\""));
    add(fx, &b, "MESSAGE_CREATE", 0, message(0, ch, m0 + 4, user, "discord.gg/abcdef", NULL)); /* DM */
    {
        json_object *d = message(fx->guild, ch, m0 + 5, user, "discord.gg/abcdef", NULL), *a;
        json_object_object_get_ex(d, "author", &a);
        json_object_object_add(a, "bot", json_object_new_boolean(1));
        add(fx, &b, "MESSAGE_CREATE", fx->guild, d);
    }
    run(fx, &b);
    assert_int_equal(b.ev[0].flags, GH_EVF_AUTOMOD_HIT | GH_EVF_DELETED);
    assert_int_equal(delete_count(ch, m0), 1);
    snprintf(re, sizeof(re), "/guilds/%" PRIu64 "/members/%" PRIu64 "$", fx->guild, user);
    assert_int_equal(fake_count("PATCH", re), 1);
    assert_int_equal(fx->stats.urgent_calls - before, 2);
    assert_true(fx->stats.urgent_us.n >= 2);
    assert_int_equal(jobs_with_id(fx, fx->guild, m0, "invites"), 1);
    /* exempt channel, webhook, DM, bot: nothing */
    assert_int_equal(b.ev[1].flags, 0);
    assert_int_equal(delete_count(exempt_ch, m0 + 1), 0);
    assert_int_equal(b.ev[3].flags, 0);
    assert_int_equal(b.ev[4].flags, 0);
    assert_int_equal(b.ev[5].flags, 0);
    assert_int_equal(delete_count(ch, m0 + 5), 0);
    /* log-only: a hit and a job, no delete */
    assert_int_equal(b.ev[2].flags, GH_EVF_AUTOMOD_HIT);
    assert_int_equal(delete_count(ch, m0 + 2), 0);
    assert_int_equal(jobs_with_id(fx, fx->guild, m0 + 2, "words"), 1);
    batch_free(&b);

    /* the same event again (a resumed replay): the job is not queued twice */
    add(fx, &b, "MESSAGE_CREATE", fx->guild, message(fx->guild, ch, m0, user, "join discord . gg / abcdef", NULL));
    run(fx, &b);
    assert_int_equal(jobs_with_id(fx, fx->guild, m0, "invites"), 1);
    batch_free(&b);

    /* an edit that adds an invite is checked again (content rules only) */
    add(fx, &b, "MESSAGE_UPDATE", fx->guild, message(fx->guild, ch, m0 + 9, user, "now discord.gg/zzzzzz", NULL));
    run(fx, &b);
    assert_true(b.ev[0].flags & GH_EVF_DELETED);
    assert_int_equal(delete_count(ch, m0 + 9), 1);
    batch_free(&b);
}

static void guilds_are_isolated(void **state)
{
    struct fx *fx = *state;
    struct batch b = {.n = 0};
    uint64_t user = random_id(), ch = random_id(), m0 = random_id();
    NEED_STACK();
    put_settings(fx, fx->guild, "{\"enabled\":true,\"invites\":{\"enabled\":true}}");
    put_settings(fx, fx->guild2, "{\"enabled\":false,\"invites\":{\"enabled\":true}}");
    add(fx, &b, "MESSAGE_CREATE", fx->guild2, message(fx->guild2, ch, m0, user, "discord.gg/abcdef", NULL));
    add(fx, &b, "MESSAGE_CREATE", fx->guild, message(fx->guild, ch, m0 + 1, user, "discord.gg/abcdef", NULL));
    run(fx, &b);
    assert_int_equal(b.ev[0].flags, 0);
    assert_int_equal(delete_count(ch, m0), 0);
    assert_true(b.ev[1].flags & GH_EVF_DELETED);
    batch_free(&b);
}

static void redis_down_content_rules_still_act(void **state)
{
    struct fx *fx = *state;
    struct batch b = {.n = 0};
    uint64_t user = random_id(), ch = random_id(), m0 = random_id();
    struct gh_redis *live;
    uint64_t failures;
    NEED_STACK();
    put_settings(fx, fx->guild,
                 "{\"enabled\":true,\"rate\":{\"enabled\":true,\"max_messages\":2},"
                 "\"invites\":{\"enabled\":true}}");
    live = fx->ctx.redis;
    fx->ctx.redis = gh_redis_new(DEAD_REDIS, 200, &fx->ctx.log);
    failures = fx->stats.redis_failures;
    for (int i = 0; i < 3; i++)
        add(fx, &b, "MESSAGE_CREATE", fx->guild, message(fx->guild, ch, m0 + (uint64_t)i, user, "plain text", NULL));
    add(fx, &b, "MESSAGE_CREATE", fx->guild, message(fx->guild, ch, m0 + 3, user, "discord.gg/abcdef", NULL));
    run(fx, &b);
    gh_redis_free(fx->ctx.redis);
    fx->ctx.redis = live;
    assert_int_equal(b.ev[2].flags, 0); /* the rate rule is skipped */
    assert_true(fx->stats.redis_failures > failures);
    assert_int_equal(b.ev[3].flags, GH_EVF_AUTOMOD_HIT | GH_EVF_DELETED);
    assert_int_equal(delete_count(ch, m0 + 3), 1);
    batch_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(rate_trips_on_n_plus_one),
        cmocka_unit_test(repeat_rule),
        cmocka_unit_test(content_rules_delete_and_timeout),
        cmocka_unit_test(guilds_are_isolated),
        cmocka_unit_test(redis_down_content_rules_still_act),
    };
    curl_global_init(CURL_GLOBAL_DEFAULT);
    return cmocka_run_group_tests(tests, setup, teardown);
}
