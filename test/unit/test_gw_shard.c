/* test_gw_shard.c - the gateway protocol state machine (lib/gateway/shard.c):
 * heartbeat jitter, zombie detection, op 1/7/9, close codes, resume versus
 * identify, reconnect backoff, the sent-payload limiter. No sockets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "gateway/shard.h"

static void ready_shard(struct gh_shard *s, int64_t now)
{
    gh_shard_init(s, 3, 8);
    gh_shard_on_connecting(s, now);
    struct gh_shard_act a = gh_shard_on_hello(s, 41250, 0.5, now);
    assert_int_equal(a.kind, GH_SACT_IDENTIFY);
    gh_shard_on_seq(s, 1);
    gh_shard_on_ready(s, "sess-abc", "wss://resume.example/");
}

static void first_heartbeat_jitter_bounds(void **state)
{
    struct gh_shard s;
    (void)state;
    for (int i = 0; i <= 10; i++) {
        double j = i / 10.0; /* 1.0 is clamped below the interval */
        gh_shard_init(&s, 0, 1);
        gh_shard_on_connecting(&s, 1000);
        gh_shard_on_hello(&s, 40000, j, 1000);
        assert_true(s.hb_due_ms >= 1000);
        assert_true(s.hb_due_ms < 1000 + 40000);
        if (i < 10)
            assert_int_equal(s.hb_due_ms, 1000 + (int64_t)(40000 * j));
    }
    /* out-of-range jitter is clamped */
    gh_shard_on_hello(&s, 40000, -3, 500);
    assert_int_equal(s.hb_due_ms, 500);
    /* nothing due before the time, a heartbeat when due */
    gh_shard_on_hello(&s, 40000, 0.25, 0);
    assert_int_equal(gh_shard_tick(&s, 9999).kind, GH_SACT_NONE);
    assert_int_equal(gh_shard_tick(&s, 10000).kind, GH_SACT_HEARTBEAT);
    /* then every interval, and lateness is measured */
    assert_int_equal(gh_shard_heartbeat_sent(&s, 10250), 250);
    assert_int_equal(s.hb_due_ms, 10250 + 40000);
    assert_true(s.awaiting_ack);
    gh_shard_on_ack(&s, 10300);
    assert_int_equal(s.latency_ms, 50);
    assert_false(s.awaiting_ack);
    assert_int_equal(gh_shard_tick(&s, 50250).kind, GH_SACT_HEARTBEAT);
}

static void zombie_detection(void **state)
{
    struct gh_shard s;
    (void)state;
    ready_shard(&s, 0);
    assert_int_equal(gh_shard_tick(&s, 20625).kind, GH_SACT_HEARTBEAT);
    gh_shard_heartbeat_sent(&s, 20625);
    /* no ACK before the next one is due: zombie, close non-1000, resume */
    assert_int_equal(gh_shard_tick(&s, 20625 + 41249).kind, GH_SACT_NONE);
    struct gh_shard_act a = gh_shard_tick(&s, 20625 + 41250);
    assert_int_equal(a.kind, GH_SACT_RECONNECT);
    assert_int_equal(a.close_code, 4000);
    assert_true(a.close_code != 1000 && a.close_code != 1001);
    assert_int_equal(a.resume, 1);
    assert_int_equal(a.delay_ms, 0);
    assert_string_equal(s.session_id, "sess-abc");
    /* after reconnecting, HELLO says RESUME */
    gh_shard_on_connecting(&s, 70000);
    assert_int_equal(gh_shard_on_hello(&s, 41250, 0.1, 70000).kind, GH_SACT_RESUME);
    assert_int_equal(s.state, GH_SHARD_RESUMING);
    gh_shard_on_resumed(&s);
    assert_int_equal(s.state, GH_SHARD_READY);
}

static void server_heartbeat_request(void **state)
{
    struct gh_shard s;
    (void)state;
    ready_shard(&s, 0);
    assert_int_equal(gh_shard_on_heartbeat_request(&s).kind, GH_SACT_HEARTBEAT);
}

static void op7_reconnect_resumes(void **state)
{
    struct gh_shard s;
    (void)state;
    ready_shard(&s, 0);
    gh_shard_on_seq(&s, 42);
    gh_shard_on_seq(&s, 0); /* null s keeps the last one */
    struct gh_shard_act a = gh_shard_on_reconnect(&s);
    assert_int_equal(a.kind, GH_SACT_RECONNECT);
    assert_int_equal(a.resume, 1);
    assert_int_equal(a.close_code, 4000);
    assert_int_equal(s.seq, 42);
    assert_true(gh_shard_can_resume(&s));
}

static void op9_both_ways(void **state)
{
    struct gh_shard s;
    (void)state;
    ready_shard(&s, 0);
    struct gh_shard_act a = gh_shard_on_invalid_session(&s, 1, 0.0);
    assert_int_equal(a.kind, GH_SACT_RECONNECT);
    assert_int_equal(a.resume, 1);
    assert_int_equal(a.delay_ms, 1000);
    assert_true(gh_shard_can_resume(&s));
    a = gh_shard_on_invalid_session(&s, 1, 0.999);
    assert_true(a.delay_ms >= 1000 && a.delay_ms <= 5000);

    a = gh_shard_on_invalid_session(&s, 0, 0.5);
    assert_int_equal(a.kind, GH_SACT_RECONNECT);
    assert_int_equal(a.resume, 0);
    assert_int_equal(a.delay_ms, 3000);
    assert_false(gh_shard_can_resume(&s));
    assert_string_equal(s.session_id, "");
    assert_int_equal(s.seq, 0);
    gh_shard_on_connecting(&s, 0);
    assert_int_equal(gh_shard_on_hello(&s, 41250, 0.1, 0).kind, GH_SACT_IDENTIFY);
}

static void close_codes(void **state)
{
    static const int fatal[] = {4004, 4010, 4011, 4012, 4013, 4014};
    static const int resume[] = {0, 1000, 1001, 1006, 4000, 4001, 4002, 4003, 4005, 4008, 4999};
    (void)state;
    for (size_t i = 0; i < sizeof(fatal) / sizeof(fatal[0]); i++) {
        struct gh_shard s;
        ready_shard(&s, 0);
        assert_int_equal(gh_gw_close_kind(fatal[i]), GH_GW_CLOSE_FATAL);
        assert_int_equal(gh_shard_on_close(&s, fatal[i], 0.5).kind, GH_SACT_FATAL);
        assert_int_equal(s.state, GH_SHARD_FAILED);
        assert_int_equal(s.fatal_code, fatal[i]);
        assert_true(strlen(gh_gw_close_advice(fatal[i])) > 20);
    }
    assert_non_null(strstr(gh_gw_close_advice(4014), "Developer Portal"));
    assert_non_null(strstr(gh_gw_close_advice(4014), "GATEWAY_PRIVILEGED_INTENTS"));
    assert_non_null(strstr(gh_gw_close_advice(4004), "DISCORD_TOKEN"));
    assert_string_equal(gh_gw_close_name(4014), "DISALLOWED_INTENTS");
    assert_string_equal(gh_gw_close_name(0), "NO_CLOSE_CODE");
    for (size_t i = 0; i < sizeof(resume) / sizeof(resume[0]); i++) {
        struct gh_shard s;
        ready_shard(&s, 0);
        struct gh_shard_act a = gh_shard_on_close(&s, resume[i], 0.5);
        assert_int_equal(a.kind, GH_SACT_RECONNECT);
        assert_int_equal(a.resume, 1);
        assert_int_equal(a.close_code, 0); /* already closed */
        assert_true(gh_shard_can_resume(&s));
    }
    for (int code = 4007; code <= 4009; code += 2) {
        struct gh_shard s;
        ready_shard(&s, 0);
        assert_int_equal(gh_gw_close_kind(code), GH_GW_CLOSE_NEW_SESSION);
        struct gh_shard_act a = gh_shard_on_close(&s, code, 0.5);
        assert_int_equal(a.kind, GH_SACT_RECONNECT);
        assert_int_equal(a.resume, 0);
        assert_false(gh_shard_can_resume(&s));
    }
}

static void resume_needs_a_session(void **state)
{
    struct gh_shard s;
    (void)state;
    /* no session yet: a drop before READY identifies again */
    gh_shard_init(&s, 0, 1);
    gh_shard_on_connecting(&s, 0);
    gh_shard_on_hello(&s, 41250, 0.5, 0);
    struct gh_shard_act a = gh_shard_on_close(&s, 0, 0.5);
    assert_int_equal(a.resume, 0);
    gh_shard_on_connecting(&s, 0);
    assert_int_equal(gh_shard_on_hello(&s, 41250, 0.5, 0).kind, GH_SACT_IDENTIFY);
    /* a session loaded from Redis (takeover) resumes */
    gh_shard_init(&s, 0, 1);
    strcpy(s.session_id, "from-redis");
    s.seq = 77;
    s.want_resume = 1;
    gh_shard_on_connecting(&s, 0);
    assert_int_equal(gh_shard_on_hello(&s, 41250, 0.5, 0).kind, GH_SACT_RESUME);
}

static void backoff(void **state)
{
    (void)state;
    int64_t first = gh_gw_backoff_ms(0, 0.0), first_hi = gh_gw_backoff_ms(0, 0.999);
    assert_true(first >= 250 && first_hi <= 1000);
    int64_t prev = 0;
    for (int a = 1; a < 12; a++) {
        int64_t lo = gh_gw_backoff_ms(a, 0.0), hi = gh_gw_backoff_ms(a, 0.999);
        assert_true(lo <= hi);
        assert_true(hi <= GH_GW_BACKOFF_MAX_MS);
        assert_true(lo >= prev / 2);
        prev = lo;
    }
    assert_true(gh_gw_backoff_ms(30, 0.999) > GH_GW_BACKOFF_MAX_MS / 2);
    /* consecutive failures back off, READY resets the count */
    struct gh_shard s;
    ready_shard(&s, 0);
    int64_t d1 = gh_shard_on_close(&s, 0, 0.0).delay_ms;
    int64_t d2 = gh_shard_on_close(&s, 0, 0.0).delay_ms;
    int64_t d3 = gh_shard_on_close(&s, 0, 0.0).delay_ms;
    assert_true(d1 < 1000 && d2 >= 500 && d3 > d2);
    gh_shard_on_resumed(&s);
    assert_int_equal(s.attempts, 0);
}

static void limiter(void **state)
{
    struct gh_gw_limiter l;
    (void)state;
    gh_gw_limiter_reset(&l);
    int ok = 0;
    for (int i = 0; i < 200; i++)
        ok += gh_gw_limiter_take(&l, 1000 + i, 0);
    assert_int_equal(ok, GH_GW_SEND_LIMIT - GH_GW_SEND_HB_RESERVE);
    assert_int_equal(gh_gw_limiter_available(&l, 2000), 0);
    /* heartbeats still go, up to the hard limit */
    int hb = 0;
    for (int i = 0; i < 10; i++)
        hb += gh_gw_limiter_take(&l, 2000, 1);
    assert_int_equal(hb, GH_GW_SEND_HB_RESERVE);
    assert_int_equal(gh_gw_limiter_take(&l, 2000, 1), 0);
    /* the window slides: 60 s after the first sends, they free up */
    assert_int_equal(gh_gw_limiter_take(&l, 1000 + 59999, 0), 0);
    assert_int_equal(gh_gw_limiter_take(&l, 1000 + 60000, 0), 0); /* still full of later ones? */
    assert_true(gh_gw_limiter_available(&l, 1000 + 60000 + 120) > 0);
    assert_int_equal(gh_gw_limiter_take(&l, 62000, 0), 1);
    /* never more than 120 in any 60 s window */
    gh_gw_limiter_reset(&l);
    int64_t times[1000];
    int n = 0;
    for (int64_t t = 0; t < 300000; t += 97)
        if (gh_gw_limiter_take(&l, t, (t / 97) % 7 == 0))
            times[n++ < 1000 ? n - 1 : 999] = t;
    for (int i = 0; i + GH_GW_SEND_LIMIT < n && i + GH_GW_SEND_LIMIT < 1000; i++)
        assert_true(times[i + GH_GW_SEND_LIMIT] - times[i] >= GH_GW_SEND_WINDOW_MS);
}

static void state_names(void **state)
{
    (void)state;
    assert_string_equal(gh_shard_state_name(GH_SHARD_READY), "ready");
    assert_string_equal(gh_shard_state_name(GH_SHARD_WAIT_LEASE), "standby");
    assert_string_equal(gh_shard_state_name(GH_SHARD_STOPPED), "stopped");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(first_heartbeat_jitter_bounds),
        cmocka_unit_test(zombie_detection),
        cmocka_unit_test(server_heartbeat_request),
        cmocka_unit_test(op7_reconnect_resumes),
        cmocka_unit_test(op9_both_ways),
        cmocka_unit_test(close_codes),
        cmocka_unit_test(resume_needs_a_session),
        cmocka_unit_test(backoff),
        cmocka_unit_test(limiter),
        cmocka_unit_test(state_names),
    };
    return cmocka_run_group_tests_name("gw_shard", tests, NULL, NULL);
}
