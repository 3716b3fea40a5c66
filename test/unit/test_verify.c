/* test_verify.c - Ed25519 verification of interactions, with the reference
 * test vector (shared/reference/discord-protocol.md, "Ed25519 test vector"). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "core/err.h"
#include "discord/verify.h"

#define PUBKEY_HEX "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8"
#define SEED_HEX "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
#define TS "1700000000"
#define BODY "{\"type\":1,\"id\":\"1\",\"application_id\":\"2\",\"token\":\"t\",\"version\":1}"
#define SIG                                                                                                  \
    "0f9e54b264347b4abf8a98448093023b92be156813d2f25d6df7151bbd0632ec668fd2e83ace7421c389b138783a8a5a3833d"  \
    "2805bcd2d84c5b452027c07460a"
#define NOW 1700000000
#define SKEW 300

static unsigned char pk[32];

static int setup(void **state)
{
    (void)state;
    return gh_hex_to_key32(PUBKEY_HEX, pk) == GH_OK ? 0 : -1;
}

static int verify(const char *sig, const char *ts, const char *body, int64_t now)
{
    return gh_verify_interaction(pk, sig, ts, body, body != NULL ? strlen(body) : 0, now, SKEW);
}

static void test_vector_valid(void **state)
{
    (void)state;
    assert_int_equal(verify(SIG, TS, BODY, NOW), GH_OK);
    /* uppercase hex is still hex */
    char upper[129];
    for (int i = 0; i < 128; i++)
        upper[i] = (char)((SIG[i] >= 'a' && SIG[i] <= 'f') ? SIG[i] - 32 : SIG[i]);
    upper[128] = '\0';
    assert_int_equal(verify(upper, TS, BODY, NOW), GH_OK);
}

static void test_tampered_body(void **state)
{
    (void)state;
    assert_int_equal(
        verify(SIG, TS, "{\"type\":2,\"id\":\"1\",\"application_id\":\"2\",\"token\":\"t\",\"version\":1}",
               NOW),
        GH_ESIGNATURE);
    /* one byte more (trailing space) */
    assert_int_equal(verify(SIG, TS, BODY " ", NOW), GH_ESIGNATURE);
    /* the body length is what counts, not the NUL */
    assert_int_equal(gh_verify_interaction(pk, SIG, TS, BODY, strlen(BODY) - 1, NOW, SKEW), GH_ESIGNATURE);
    assert_int_equal(verify(SIG, TS, "", NOW), GH_ESIGNATURE);
}

static void test_changed_timestamp(void **state)
{
    (void)state;
    assert_int_equal(verify(SIG, "1700000001", BODY, NOW), GH_ESIGNATURE);
}

static void test_wrong_key(void **state)
{
    (void)state;
    unsigned char other[32];
    memcpy(other, pk, 32);
    other[0] ^= 1;
    assert_int_equal(gh_verify_interaction(other, SIG, TS, BODY, strlen(BODY), NOW, SKEW), GH_ESIGNATURE);
    assert_int_equal(gh_verify_interaction(NULL, SIG, TS, BODY, strlen(BODY), NOW, SKEW), GH_ESIGNATURE);
}

static void test_bad_signature_header(void **state)
{
    (void)state;
    char sig[160];

    assert_int_equal(verify(NULL, TS, BODY, NOW), GH_ESIGNATURE);
    assert_int_equal(verify("", TS, BODY, NOW), GH_ESIGNATURE);
    /* short: 126 hex */
    snprintf(sig, sizeof(sig), "%.126s", SIG);
    assert_int_equal(verify(sig, TS, BODY, NOW), GH_ESIGNATURE);
    /* long: 130 hex */
    snprintf(sig, sizeof(sig), "%s00", SIG);
    assert_int_equal(verify(sig, TS, BODY, NOW), GH_ESIGNATURE);
    /* non-hex character at the end */
    snprintf(sig, sizeof(sig), "%.127sg", SIG);
    assert_int_equal(verify(sig, TS, BODY, NOW), GH_ESIGNATURE);
    /* separators are not ignored */
    snprintf(sig, sizeof(sig), "%.64s:%.63s", SIG, SIG + 64);
    assert_int_equal(verify(sig, TS, BODY, NOW), GH_ESIGNATURE);
    /* flipped bit in the signature */
    snprintf(sig, sizeof(sig), "%s", SIG);
    sig[0] = sig[0] == '0' ? '1' : '0';
    assert_int_equal(verify(sig, TS, BODY, NOW), GH_ESIGNATURE);
}

static void test_bad_timestamp_header(void **state)
{
    (void)state;
    assert_int_equal(verify(SIG, NULL, BODY, NOW), GH_ESIGNATURE);
    assert_int_equal(verify(SIG, "", BODY, NOW), GH_ESIGNATURE);
    assert_int_equal(verify(SIG, "+1700000000", BODY, NOW), GH_ESIGNATURE);
    assert_int_equal(verify(SIG, "1700000000.0", BODY, NOW), GH_ESIGNATURE);
    assert_int_equal(verify(SIG, " 1700000000", BODY, NOW), GH_ESIGNATURE);
    assert_int_equal(verify(SIG, "1e9", BODY, NOW), GH_ESIGNATURE);
    assert_int_equal(verify(SIG, "99999999999999999999999", BODY, NOW), GH_ESIGNATURE);
}

static void test_window(void **state)
{
    (void)state;
    /* inside the window, both sides */
    assert_int_equal(verify(SIG, TS, BODY, NOW + SKEW), GH_OK);
    assert_int_equal(verify(SIG, TS, BODY, NOW - SKEW), GH_OK);
    assert_int_equal(verify(SIG, TS, BODY, NOW + 10), GH_OK);
    /* stale: the request is older than the window */
    assert_int_equal(verify(SIG, TS, BODY, NOW + SKEW + 1), GH_ESTALE);
    assert_int_equal(verify(SIG, TS, BODY, NOW + 86400), GH_ESTALE);
    /* from the future */
    assert_int_equal(verify(SIG, TS, BODY, NOW - SKEW - 1), GH_ESTALE);
    /* the window is checked only after the signature: a forged stale request is a bad signature */
    assert_int_equal(verify(SIG, "1700000001", BODY, NOW + 86400), GH_ESIGNATURE);
}

static void test_freshly_signed_large_body(void **state)
{
    (void)state;
    unsigned char seed[32], spk[32], ssk[64], sig[64];
    char sig_hex[129];
    size_t n = 1 << 20;
    char *body = malloc(n);
    unsigned char *msg = malloc(n + 10);

    assert_non_null(body);
    assert_non_null(msg);
    assert_int_equal(gh_hex_to_key32(SEED_HEX, seed), GH_OK);
    crypto_sign_seed_keypair(spk, ssk, seed);
    assert_memory_equal(spk, pk, 32);
    memset(body, 'x', n);
    memcpy(msg, TS, 10);
    memcpy(msg + 10, body, n);
    crypto_sign_detached(sig, NULL, msg, n + 10, ssk);
    sodium_bin2hex(sig_hex, sizeof(sig_hex), sig, sizeof(sig));
    assert_int_equal(gh_verify_interaction(pk, sig_hex, TS, body, n, NOW, SKEW), GH_OK);
    body[n / 2] = 'y';
    assert_int_equal(gh_verify_interaction(pk, sig_hex, TS, body, n, NOW, SKEW), GH_ESIGNATURE);
    free(msg);
    free(body);
}

static void test_hex_to_key32(void **state)
{
    (void)state;
    unsigned char k[32];
    assert_int_equal(gh_hex_to_key32(PUBKEY_HEX, k), GH_OK);
    assert_int_equal(k[0], 0x03);
    assert_int_equal(k[31], 0xb8);
    assert_int_equal(gh_hex_to_key32(NULL, k), GH_EINVAL);
    assert_int_equal(gh_hex_to_key32("", k), GH_EINVAL);
    assert_int_equal(gh_hex_to_key32(PUBKEY_HEX "00", k), GH_EINVAL);
    assert_int_equal(gh_hex_to_key32("03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b", k),
                     GH_EINVAL);
    assert_int_equal(gh_hex_to_key32("z3a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8", k),
                     GH_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vector_valid),
        cmocka_unit_test(test_tampered_body),
        cmocka_unit_test(test_changed_timestamp),
        cmocka_unit_test(test_wrong_key),
        cmocka_unit_test(test_bad_signature_header),
        cmocka_unit_test(test_bad_timestamp_header),
        cmocka_unit_test(test_window),
        cmocka_unit_test(test_freshly_signed_large_body),
        cmocka_unit_test(test_hex_to_key32),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
