/* verify.c - Ed25519 check of Discord's signed requests (libsodium).
 *
 * Discord signs X-Signature-Timestamp || raw body. Headers are decoded
 * strictly: exactly 128 hex characters for the signature, 64 for the key,
 * and a timestamp of decimal digits only. The replay window is our own policy
 * and is checked only once the signature holds, so an attacker learns nothing
 * about the window from unsigned probes. */
#include "discord/verify.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"

#define SIG_HEX_LEN (crypto_sign_BYTES * 2)          /* 128 */
#define KEY_HEX_LEN (crypto_sign_PUBLICKEYBYTES * 2) /* 64 */
#define TS_MAX_DIGITS 12                             /* far beyond any real clock */

static int sodium_ready(void)
{
    static volatile int ready;

    if (ready)
        return 1;
    /* sodium_init is idempotent and thread-safe; it returns 1 when already done. */
    if (sodium_init() < 0)
        return 0;
    ready = 1;
    return 1;
}

/* Exactly hex_len hex characters into bin_len bytes; nothing else accepted. */
static int hex_exact(const char *hex, size_t hex_len, unsigned char *bin, size_t bin_len)
{
    size_t got = 0;

    if (hex == NULL || strlen(hex) != hex_len)
        return GH_EINVAL;
    /* hex_end NULL: sodium fails unless every character was consumed. */
    if (sodium_hex2bin(bin, bin_len, hex, hex_len, NULL, &got, NULL) != 0 || got != bin_len)
        return GH_EINVAL;
    return GH_OK;
}

/* Decimal seconds, digits only (no sign, no space, no fraction). */
static int parse_ts(const char *ts, size_t *len, int64_t *out)
{
    int64_t v = 0;
    size_t n = 0;

    if (ts == NULL)
        return GH_EINVAL;
    for (; ts[n] != '\0'; n++) {
        if (ts[n] < '0' || ts[n] > '9' || n >= TS_MAX_DIGITS)
            return GH_EINVAL;
        v = v * 10 + (ts[n] - '0');
    }
    if (n == 0)
        return GH_EINVAL;
    *len = n;
    *out = v;
    return GH_OK;
}

int gh_verify_interaction(const unsigned char public_key[32], const char *sig_hex, const char *ts,
                          const char *body, size_t body_len, int64_t now_s, int max_skew_s)
{
    unsigned char sig[crypto_sign_BYTES];
    unsigned char *msg = NULL;
    size_t ts_len = 0;
    int64_t ts_val = 0;
    int64_t skew;
    int rc = GH_ESIGNATURE;

    if (public_key == NULL || (body == NULL && body_len > 0))
        return GH_ESIGNATURE;
    if (!sodium_ready())
        return GH_ESIGNATURE;
    if (hex_exact(sig_hex, SIG_HEX_LEN, sig, sizeof(sig)) != GH_OK)
        return GH_ESIGNATURE;
    if (parse_ts(ts, &ts_len, &ts_val) != GH_OK)
        return GH_ESIGNATURE;
    if (body_len > SIZE_MAX - ts_len)
        return GH_ESIGNATURE;

    /* One copy: the signed message is the timestamp followed by the body. */
    msg = malloc(ts_len + body_len + 1);
    if (msg == NULL) {
        rc = GH_ENOMEM;
        goto out;
    }
    memcpy(msg, ts, ts_len);
    if (body_len > 0)
        memcpy(msg + ts_len, body, body_len);
    if (crypto_sign_verify_detached(sig, msg, ts_len + body_len, public_key) != 0)
        goto out;

    skew = now_s - ts_val;
    if (skew < 0)
        skew = -skew;
    rc = (max_skew_s >= 0 && skew > max_skew_s) ? GH_ESTALE : GH_OK;
out:
    free(msg);
    return rc;
}

int gh_hex_to_key32(const char *hex, unsigned char out[32])
{
    if (out == NULL)
        return GH_EINVAL;
    return hex_exact(hex, KEY_HEX_LEN, out, 32);
}
