/* test_wsframe.c - the RFC 6455 frame codec (gateway/wsframe.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/err.h"
#include "gateway/wsframe.h"

static const unsigned char MASK[4] = {0x37, 0xfa, 0x21, 0x3d};

/* Encodes n bytes with MASK, checks the header bytes and that unmasking
 * gives back the payload. */
static void check_encode(size_t n, size_t want_hl, unsigned char len7)
{
    unsigned char *p = malloc(n + 1);
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(i * 7 + 1);
    size_t cap = n + GH_WSF_MAX_HEADER;
    unsigned char *f = malloc(cap);
    assert_int_equal(gh_wsf_header_size(n), want_hl);
    size_t w = gh_wsf_encode(f, cap, GH_WSF_TEXT, 1, p, n, MASK);
    assert_int_equal(w, want_hl + n);
    assert_int_equal(f[0], 0x81);
    assert_int_equal(f[1], 0x80 | len7);
    if (len7 == 126)
        assert_int_equal(((size_t)f[2] << 8) | f[3], n);
    if (len7 == 127) {
        uint64_t L = 0;
        for (int k = 0; k < 8; k++)
            L = (L << 8) | f[2 + k];
        assert_int_equal(L, n);
    }
    assert_memory_equal(f + want_hl - 4, MASK, 4);
    /* Masked on the wire: not the plain bytes (for n > 0). */
    if (n >= 4)
        assert_true(memcmp(f + want_hl, p, n) != 0);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(f[want_hl + i] ^ MASK[i % 4], p[i]);
    /* The parser (server side) reads it back. */
    struct gh_wsf_header h;
    assert_int_equal(gh_wsf_parse(f, w, 1, &h, NULL, NULL), (int)want_hl);
    assert_int_equal(h.payload_len, n);
    assert_int_equal(h.opcode, GH_WSF_TEXT);
    assert_true(h.fin);
    assert_true(h.masked);
    assert_memory_equal(h.mask, MASK, 4);
    gh_wsf_mask(f + want_hl, n, h.mask, 0);
    if (n)
        assert_memory_equal(f + want_hl, p, n);
    /* Too small a buffer writes nothing. */
    assert_int_equal(gh_wsf_encode(f, want_hl + n - 1, GH_WSF_TEXT, 1, p, n, MASK), 0);
    free(f);
    free(p);
}

static void test_encode_lengths(void **state)
{
    (void)state;
    check_encode(0, 6, 0);
    check_encode(5, 6, 5);
    check_encode(125, 6, 125);
    check_encode(126, 8, 126);
    check_encode(65535, 8, 126);
    check_encode(65536, 14, 127);
    check_encode(200001, 14, 127);
}

static void test_mask_offset(void **state)
{
    (void)state;
    unsigned char a[37], b[37];
    for (int i = 0; i < 37; i++)
        a[i] = b[i] = (unsigned char)i;
    gh_wsf_mask(a, 37, MASK, 0);
    /* Masking in two pieces with the right offset gives the same bytes. */
    gh_wsf_mask(b, 13, MASK, 0);
    gh_wsf_mask(b + 13, 24, MASK, 13);
    assert_memory_equal(a, b, 37);
    for (int i = 0; i < 37; i++)
        assert_int_equal(a[i], i ^ MASK[i % 4]);
}

static void test_parse_server_frames(void **state)
{
    (void)state;
    struct gh_wsf_header h;
    size_t need = 0;
    /* 7-bit */
    unsigned char f1[] = {0x81, 0x03, 'a', 'b', 'c'};
    assert_int_equal(gh_wsf_parse(f1, sizeof(f1), 0, &h, &need, NULL), 2);
    assert_int_equal(h.payload_len, 3);
    assert_int_equal(h.opcode, GH_WSF_TEXT);
    assert_int_equal(h.fin, 1);
    assert_int_equal(h.masked, 0);
    /* 16-bit, binary, not final */
    unsigned char f2[] = {0x02, 126, 0x01, 0x00};
    assert_int_equal(gh_wsf_parse(f2, sizeof(f2), 0, &h, NULL, NULL), 4);
    assert_int_equal(h.payload_len, 256);
    assert_int_equal(h.fin, 0);
    assert_int_equal(h.opcode, GH_WSF_BINARY);
    /* 64-bit */
    unsigned char f3[] = {0x80, 127, 0, 0, 0, 0x01, 0, 0, 0, 0x05};
    assert_int_equal(gh_wsf_parse(f3, sizeof(f3), 0, &h, NULL, NULL), 10);
    assert_int_equal(h.payload_len, ((uint64_t)1 << 32) + 5);
    assert_int_equal(h.opcode, GH_WSF_CONT);
    /* Partial headers need more, and say how much. */
    assert_int_equal(gh_wsf_parse(f3, 0, 0, &h, &need, NULL), 0);
    assert_int_equal(gh_wsf_parse(f3, 1, 0, &h, &need, NULL), 0);
    assert_int_equal(need, 2);
    assert_int_equal(gh_wsf_parse(f3, 2, 0, &h, &need, NULL), 0);
    assert_int_equal(need, 10);
    assert_int_equal(gh_wsf_parse(f3, 9, 0, &h, &need, NULL), 0);
    assert_int_equal(gh_wsf_parse(f2, 3, 0, &h, &need, NULL), 0);
    assert_int_equal(need, 4);
    /* Control frames */
    unsigned char ping[] = {0x89, 0x02, 'h', 'i'};
    assert_int_equal(gh_wsf_parse(ping, sizeof(ping), 0, &h, NULL, NULL), 2);
    assert_int_equal(h.opcode, GH_WSF_PING);
    unsigned char close125[] = {0x88, 125};
    assert_int_equal(gh_wsf_parse(close125, 2, 0, &h, NULL, NULL), 2);
}

static void expect_error(const unsigned char *f, size_t n, int expect_masked, const char *want)
{
    struct gh_wsf_header h;
    const char *why = NULL;
    assert_int_equal(gh_wsf_parse(f, n, expect_masked, &h, NULL, &why), GH_EINVAL);
    assert_non_null(why);
    if (!strstr(why, want))
        fail_msg("why \"%s\" lacks \"%s\"", why, want);
}

static void test_parse_errors(void **state)
{
    (void)state;
    /* A masked frame from the server. */
    unsigned char masked[] = {0x81, 0x81, 1, 2, 3, 4, 'x'};
    expect_error(masked, sizeof(masked), 0, "masked");
    /* An unmasked frame from a client (server-side parse). */
    unsigned char plain[] = {0x81, 0x01, 'x'};
    expect_error(plain, sizeof(plain), 1, "unmasked");
    /* RSV1, RSV2, RSV3. */
    unsigned char rsv1[] = {0xC1, 0x00};
    unsigned char rsv2[] = {0xA1, 0x00};
    unsigned char rsv3[] = {0x91, 0x00};
    expect_error(rsv1, 2, 0, "reserved");
    expect_error(rsv2, 2, 0, "reserved");
    expect_error(rsv3, 2, 0, "reserved");
    /* Control frames: too long, fragmented. */
    unsigned char bigping[] = {0x89, 126, 0x00, 0x7e};
    expect_error(bigping, sizeof(bigping), 0, "125");
    unsigned char longclose[] = {0x88, 126};
    expect_error(longclose, 2, 0, "125"); /* refused before the length bytes arrive */
    unsigned char fragping[] = {0x09, 0x00};
    expect_error(fragping, 2, 0, "fragmented");
    /* Unknown opcodes. */
    unsigned char op3[] = {0x83, 0x00};
    unsigned char opb[] = {0x8B, 0x00};
    expect_error(op3, 2, 0, "opcode");
    expect_error(opb, 2, 0, "opcode");
    /* 64-bit length with the top bit set. */
    unsigned char huge[] = {0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 1};
    expect_error(huge, sizeof(huge), 0, "top bit");
}

static void test_close_parse(void **state)
{
    (void)state;
    int code = 0;
    char reason[124];
    unsigned char c1[] = {0x0F, 0xA4, 'a', 'u', 't', 'h', ' ', 'f', 'a', 'i', 'l', 'e', 'd'};
    assert_int_equal(gh_wsf_close_parse(c1, sizeof(c1), &code, reason, sizeof(reason)), GH_OK);
    assert_int_equal(code, 4004);
    assert_string_equal(reason, "auth failed");
    /* Empty: no status. */
    assert_int_equal(gh_wsf_close_parse(c1, 0, &code, reason, sizeof(reason)), GH_OK);
    assert_int_equal(code, 1005);
    assert_string_equal(reason, "");
    /* Code only. */
    unsigned char c2[] = {0x03, 0xE8};
    assert_int_equal(gh_wsf_close_parse(c2, 2, &code, reason, sizeof(reason)), GH_OK);
    assert_int_equal(code, 1000);
    assert_string_equal(reason, "");
    /* One byte, and codes that may not be sent. */
    assert_int_equal(gh_wsf_close_parse(c2, 1, &code, reason, sizeof(reason)), GH_EINVAL);
    unsigned char c1005[] = {0x03, 0xED};
    unsigned char c999[] = {0x03, 0xE7};
    unsigned char c2000[] = {0x07, 0xD0};
    unsigned char c5000[] = {0x13, 0x88};
    assert_int_equal(gh_wsf_close_parse(c1005, 2, &code, reason, sizeof(reason)), GH_EINVAL);
    assert_int_equal(gh_wsf_close_parse(c999, 2, &code, reason, sizeof(reason)), GH_EINVAL);
    assert_int_equal(gh_wsf_close_parse(c2000, 2, &code, reason, sizeof(reason)), GH_EINVAL);
    assert_int_equal(gh_wsf_close_parse(c5000, 2, &code, reason, sizeof(reason)), GH_EINVAL);
    /* A reason longer than the buffer is cut. */
    char small[5];
    assert_int_equal(gh_wsf_close_parse(c1, sizeof(c1), &code, small, sizeof(small)), GH_OK);
    assert_string_equal(small, "auth");
}

static void test_encode_close_and_unmasked(void **state)
{
    (void)state;
    unsigned char f[32];
    unsigned char pl[] = {0x0F, 0xA0, 'b', 'y', 'e'};
    size_t w = gh_wsf_encode(f, sizeof(f), GH_WSF_CLOSE, 1, pl, sizeof(pl), NULL);
    assert_int_equal(w, 2 + sizeof(pl));
    assert_int_equal(f[0], 0x88);
    assert_int_equal(f[1], sizeof(pl));
    assert_memory_equal(f + 2, pl, sizeof(pl));
    struct gh_wsf_header h;
    assert_int_equal(gh_wsf_parse(f, w, 0, &h, NULL, NULL), 2);
    int code;
    char reason[16];
    assert_int_equal(gh_wsf_close_parse(f + 2, (size_t)h.payload_len, &code, reason, sizeof(reason)), GH_OK);
    assert_int_equal(code, 4000);
    assert_string_equal(reason, "bye");
    /* A non-final frame has FIN clear. */
    w = gh_wsf_encode(f, sizeof(f), GH_WSF_BINARY, 0, "ab", 2, MASK);
    assert_int_equal(f[0], 0x02);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encode_lengths),      cmocka_unit_test(test_mask_offset),
        cmocka_unit_test(test_parse_server_frames), cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_close_parse),         cmocka_unit_test(test_encode_close_and_unmasked),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
