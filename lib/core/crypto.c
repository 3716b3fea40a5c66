/* crypto.c - base64url, HMAC-SHA256, SHA-256, JWT HS256 and AES-256-GCM.
 *
 * These are primitives without a logger: each failure has its own return
 * code and the caller, which knows the request, logs it. Decoding is strict
 * everywhere (one encoding per byte string), so that a token or a sealed
 * secret cannot be altered into another text that still verifies.
 *
 * JWT verification parses the untrusted header before the signature (it
 * must, to refuse other algs) but the payload only after the signature
 * holds. Unsealing decrypts straight into the caller's buffer and wipes it
 * when the tag does not match, so unauthenticated plaintext never leaks. */
#include "core/crypto.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sodium.h>

#include "core/err.h"
#include "core/json.h"

#define JWT_HEADER_B64 "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9" /* {"alg":"HS256","typ":"JWT"} */
#define JWT_SIG_LEN 32
#define JWT_PART_MAX (GH_JWT_MAX_LEN / 4 * 3) /* decoded bytes of the longest part */
#define JWT_HEADER_DEPTH 2
#define JWT_IAT_LEEWAY 60
#define SEAL_PREFIX "v1."
#define SEAL_PREFIX_LEN 3
#define SEAL_OVERHEAD (GH_SEAL_IV_LEN + GH_SEAL_TAG_LEN)

static const char b64url_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* ---- base64url ---- */

/* Writes GH_B64URL_LEN(n) characters and a NUL; out must be large enough. */
static size_t b64_encode_raw(const unsigned char *in, size_t n, char *out)
{
    size_t i = 0, o = 0;

    for (; i + 3 <= n; i += 3) {
        unsigned long v = ((unsigned long)in[i] << 16) | ((unsigned long)in[i + 1] << 8) | in[i + 2];
        out[o++] = b64url_alphabet[(v >> 18) & 63];
        out[o++] = b64url_alphabet[(v >> 12) & 63];
        out[o++] = b64url_alphabet[(v >> 6) & 63];
        out[o++] = b64url_alphabet[v & 63];
    }
    if (n - i == 1) {
        unsigned long v = (unsigned long)in[i] << 16;
        out[o++] = b64url_alphabet[(v >> 18) & 63];
        out[o++] = b64url_alphabet[(v >> 12) & 63];
    } else if (n - i == 2) {
        unsigned long v = ((unsigned long)in[i] << 16) | ((unsigned long)in[i + 1] << 8);
        out[o++] = b64url_alphabet[(v >> 18) & 63];
        out[o++] = b64url_alphabet[(v >> 12) & 63];
        out[o++] = b64url_alphabet[(v >> 6) & 63];
    }
    out[o] = '\0';
    return o;
}

/* Value of one base64url character, or -1. */
static int b64_value(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

/* Decoded size of n characters; n % 4 must not be 1. */
static size_t b64_decoded_len(size_t n)
{
    return n / 4 * 3 + (n % 4 ? n % 4 - 1 : 0);
}

int gh_b64url_encode(const unsigned char *in, size_t n, char *out, size_t outsz)
{
    if (out == NULL || outsz == 0)
        return GH_ETOOBIG;
    out[0] = '\0';
    if (in == NULL && n > 0)
        return GH_EINVAL;
    /* n / 3 * 4 overflows only for n beyond any real buffer; refuse it anyway. */
    if (n > (SIZE_MAX - 4) / 4 * 3 || outsz < (size_t)GH_B64URL_LEN(n) + 1)
        return GH_ETOOBIG;
    b64_encode_raw(in, n, out);
    return GH_OK;
}

int gh_b64url_decode(const char *in, size_t n, unsigned char *out, size_t outsz, size_t *outlen)
{
    size_t need, i, o = 0;
    unsigned long acc = 0;
    int bits = 0;

    if (outlen != NULL)
        *outlen = 0;
    if ((in == NULL && n > 0) || n % 4 == 1)
        return GH_EINVAL;
    need = b64_decoded_len(n);
    if (need > 0 && (out == NULL || outsz < need))
        return GH_ETOOBIG;
    for (i = 0; i < n; i++) {
        int v = b64_value(in[i]);
        if (v < 0)
            goto bad;
        acc = ((acc << 6) | (unsigned long)v) & 0xffffff;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
        }
    }
    /* The 2 or 4 bits left over from a partial group must be zero. */
    if (bits > 0 && (acc & ((1UL << bits) - 1)) != 0)
        goto bad;
    if (outlen != NULL)
        *outlen = o;
    return GH_OK;
bad:
    if (o > 0)
        OPENSSL_cleanse(out, o);
    return GH_EINVAL;
}

/* ---- randomness, hashes, comparison ---- */

int gh_random_token(char *out, size_t outsz, size_t nbytes)
{
    unsigned char raw[GH_RANDOM_TOKEN_MAX_BYTES];

    if (out != NULL && outsz > 0)
        out[0] = '\0';
    if (nbytes == 0 || nbytes > GH_RANDOM_TOKEN_MAX_BYTES)
        return GH_EINVAL;
    if (out == NULL || outsz < (size_t)GH_B64URL_LEN(nbytes) + 1)
        return GH_ETOOBIG;
    /* Idempotent and thread-safe: 0 on the first call, 1 afterwards. */
    if (sodium_init() < 0)
        return GH_EIO;
    randombytes_buf(raw, nbytes);
    b64_encode_raw(raw, nbytes, out);
    sodium_memzero(raw, sizeof(raw));
    return GH_OK;
}

int gh_hmac_sha256(const void *key, size_t keylen, const void *msg, size_t msglen, unsigned char out[32])
{
    static const unsigned char empty[1];
    unsigned int len = 0;

    if (out == NULL || (key == NULL && keylen > 0) || (msg == NULL && msglen > 0) || keylen > INT_MAX)
        return GH_EINVAL;
    /* OpenSSL is not fond of NULL pointers even with a zero length. */
    if (HMAC(EVP_sha256(), key != NULL ? key : empty, (int)keylen, msg != NULL ? msg : empty, msglen, out,
             &len) == NULL ||
        len != 32)
        return GH_EIO;
    return GH_OK;
}

void gh_sha256_hex(const void *data, size_t n, char out[65])
{
    static const char hex[] = "0123456789abcdef";
    static const unsigned char empty[1];
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;

    out[0] = '\0';
    if (data == NULL && n > 0)
        return;
    if (!EVP_Digest(data != NULL ? data : empty, n, md, &len, EVP_sha256(), NULL) || len != 32)
        return;
    for (size_t i = 0; i < 32; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[64] = '\0';
}

int gh_ct_equal(const void *a, const void *b, size_t n)
{
    if (n == 0)
        return 1;
    if (a == NULL || b == NULL)
        return 0;
    return CRYPTO_memcmp(a, b, n) == 0;
}

/* ---- JWT ---- */

int gh_jwt_sign(const char *secret, json_object *claims, char *out, size_t outsz)
{
    unsigned char sig[JWT_SIG_LEN];
    const char *payload;
    size_t plen = 0, hlen = sizeof(JWT_HEADER_B64) - 1, pos, total;
    int rc;

    if (out != NULL && outsz > 0)
        out[0] = '\0';
    if (secret == NULL || secret[0] == '\0' || !json_object_is_type(claims, json_type_object))
        return GH_EINVAL;
    payload = json_object_to_json_string_length(
        claims, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &plen);
    if (payload == NULL)
        return GH_ENOMEM;
    if (plen > GH_JWT_MAX_LEN)
        return GH_ETOOBIG;
    total = hlen + 1 + GH_B64URL_LEN(plen) + 1 + GH_B64URL_LEN(JWT_SIG_LEN);
    if (total > GH_JWT_MAX_LEN || out == NULL || outsz < total + 1)
        return GH_ETOOBIG;

    memcpy(out, JWT_HEADER_B64, hlen);
    out[hlen] = '.';
    pos = hlen + 1 + b64_encode_raw((const unsigned char *)payload, plen, out + hlen + 1);
    rc = gh_hmac_sha256(secret, strlen(secret), out, pos, sig);
    if (rc != GH_OK) {
        out[0] = '\0';
        return rc;
    }
    out[pos++] = '.';
    b64_encode_raw(sig, sizeof(sig), out + pos);
    return GH_OK;
}

/* Refuses unless "alg" is exactly "HS256"; a "crit" extension is not supported. */
static int jwt_check_header(const unsigned char *p, size_t len)
{
    json_object *hdr = NULL;
    const char *alg;
    int rc = GH_EINVAL;

    if (gh_json_parse((const char *)p, len, JWT_HEADER_DEPTH, &hdr) != GH_OK ||
        !json_object_is_type(hdr, json_type_object))
        goto out;
    if (json_object_object_get_ex(hdr, "crit", NULL))
        goto out;
    alg = gh_json_get_str(hdr, "alg");
    rc = (alg != NULL && strcmp(alg, "HS256") == 0) ? GH_OK : GH_ESIGNATURE;
out:
    json_object_put(hdr);
    return rc;
}

/* Every failure here is GH_EEXPIRED, as the header promises. */
static int jwt_check_times(const json_object *claims, int64_t now_s)
{
    int64_t exp = 0, nbf = 0, iat = 0;
    int rc;

    if (gh_json_get_int(claims, "exp", &exp) != GH_OK || exp <= now_s)
        return GH_EEXPIRED;
    rc = gh_json_get_int(claims, "nbf", &nbf);
    if (rc == GH_EINVAL || (rc == GH_OK && nbf > now_s))
        return GH_EEXPIRED;
    rc = gh_json_get_int(claims, "iat", &iat);
    /* Unsigned difference: cannot overflow whatever the two values. */
    if (rc == GH_EINVAL || (rc == GH_OK && iat > now_s && (uint64_t)iat - (uint64_t)now_s > JWT_IAT_LEEWAY))
        return GH_EEXPIRED;
    return GH_OK;
}

int gh_jwt_verify(const char *secret, const char *token, int64_t now_s, json_object **claims)
{
    unsigned char hdr[JWT_PART_MAX], payload[JWT_PART_MAX], sig[JWT_PART_MAX];
    unsigned char mac[JWT_SIG_LEN];
    size_t len, hlen = 0, plen = 0, slen = 0;
    const char *dot1, *dot2;
    json_object *obj = NULL;
    int rc = GH_EINVAL;

    if (claims != NULL)
        *claims = NULL;
    if (secret == NULL || secret[0] == '\0' || token == NULL)
        return GH_EINVAL;
    len = strnlen(token, GH_JWT_MAX_LEN + 1);
    if (len > GH_JWT_MAX_LEN)
        return GH_EINVAL;
    dot1 = memchr(token, '.', len);
    dot2 = dot1 != NULL ? memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - token)) : NULL;
    if (dot2 == NULL || memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - token)) != NULL)
        return GH_EINVAL;
    if (gh_b64url_decode(token, (size_t)(dot1 - token), hdr, sizeof(hdr), &hlen) != GH_OK ||
        gh_b64url_decode(dot1 + 1, (size_t)(dot2 - dot1 - 1), payload, sizeof(payload), &plen) != GH_OK ||
        gh_b64url_decode(dot2 + 1, len - (size_t)(dot2 + 1 - token), sig, sizeof(sig), &slen) != GH_OK)
        return GH_EINVAL;

    rc = jwt_check_header(hdr, hlen);
    if (rc != GH_OK)
        return rc;
    rc = gh_hmac_sha256(secret, strlen(secret), token, (size_t)(dot2 - token), mac);
    if (rc != GH_OK)
        return rc;
    /* The length of a signature is public; only its bytes are compared in constant time. */
    if (slen != JWT_SIG_LEN || !gh_ct_equal(mac, sig, JWT_SIG_LEN))
        return GH_ESIGNATURE;

    rc = GH_EINVAL;
    if (gh_json_parse((const char *)payload, plen, 0, &obj) != GH_OK ||
        !json_object_is_type(obj, json_type_object))
        goto out;
    rc = jwt_check_times(obj, now_s);
    if (rc != GH_OK)
        goto out;
    if (claims != NULL) {
        *claims = obj;
        obj = NULL;
    }
out:
    json_object_put(obj);
    return rc;
}

/* ---- AES-256-GCM ---- */

static int hex_nibble(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int gh_crypto_key_from_hex(const char *hex, unsigned char key[32])
{
    if (key == NULL)
        return GH_EINVAL;
    if (hex == NULL || strnlen(hex, 65) != 64)
        goto bad;
    for (size_t i = 0; i < 32; i++) {
        int hi = hex_nibble(hex[2 * i]), lo = hex_nibble(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            goto bad;
        key[i] = (unsigned char)(hi << 4 | lo);
    }
    return GH_OK;
bad:
    OPENSSL_cleanse(key, 32);
    return GH_EINVAL;
}

int gh_seal(const unsigned char key[32], const char *aad, const void *plain, size_t n, char *out,
            size_t outsz)
{
    EVP_CIPHER_CTX *ctx = NULL;
    unsigned char *bin = NULL;
    size_t aadlen = aad != NULL ? strlen(aad) : 0;
    int len = 0, rc = GH_EIO;

    if (out != NULL && outsz > 0)
        out[0] = '\0';
    if (key == NULL || (plain == NULL && n > 0))
        return GH_EINVAL;
    if (n > GH_SEAL_MAX_PLAIN || out == NULL || outsz < (size_t)GH_SEAL_BUFSZ(n))
        return GH_ETOOBIG;
    if (aadlen > INT_MAX)
        return GH_EINVAL;
    if (sodium_init() < 0)
        return GH_EIO;
    bin = malloc(n + SEAL_OVERHEAD);
    if (bin == NULL)
        return GH_ENOMEM;
    randombytes_buf(bin, GH_SEAL_IV_LEN);

    /* The IV length of GCM defaults to 12 bytes. */
    ctx = EVP_CIPHER_CTX_new();
    if (ctx == NULL || EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, bin) != 1)
        goto out;
    if (aadlen > 0 && EVP_EncryptUpdate(ctx, NULL, &len, (const unsigned char *)aad, (int)aadlen) != 1)
        goto out;
    if (n > 0 && (EVP_EncryptUpdate(ctx, bin + GH_SEAL_IV_LEN, &len, plain, (int)n) != 1 || (size_t)len != n))
        goto out;
    if (EVP_EncryptFinal_ex(ctx, bin + GH_SEAL_IV_LEN + n, &len) != 1 || len != 0)
        goto out;
    if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, GH_SEAL_TAG_LEN, bin + GH_SEAL_IV_LEN + n) != 1)
        goto out;

    memcpy(out, SEAL_PREFIX, SEAL_PREFIX_LEN);
    b64_encode_raw(bin, n + SEAL_OVERHEAD, out + SEAL_PREFIX_LEN);
    rc = GH_OK;
out:
    EVP_CIPHER_CTX_free(ctx);
    free(bin);
    return rc;
}

int gh_unseal(const unsigned char key[32], const char *aad, const char *sealed, char *out, size_t outsz,
              size_t *outlen)
{
    EVP_CIPHER_CTX *ctx = NULL;
    unsigned char *bin = NULL, *dst = (unsigned char *)out;
    size_t aadlen = aad != NULL ? strlen(aad) : 0;
    size_t blen, dlen = 0, plen;
    int len = 0, rc = GH_EINVAL;

    if (out != NULL && outsz > 0)
        out[0] = '\0';
    if (outlen != NULL)
        *outlen = 0;
    if (key == NULL || sealed == NULL || strncmp(sealed, SEAL_PREFIX, SEAL_PREFIX_LEN) != 0 ||
        aadlen > INT_MAX)
        return GH_EINVAL;
    sealed += SEAL_PREFIX_LEN;
    blen = strlen(sealed);
    if (blen % 4 == 1 || b64_decoded_len(blen) < SEAL_OVERHEAD)
        return GH_EINVAL;
    plen = b64_decoded_len(blen) - SEAL_OVERHEAD;
    if (plen > GH_SEAL_MAX_PLAIN || out == NULL || outsz < plen + 1)
        return GH_ETOOBIG;
    bin = malloc(plen + SEAL_OVERHEAD);
    if (bin == NULL)
        return GH_ENOMEM;
    if (gh_b64url_decode(sealed, blen, bin, plen + SEAL_OVERHEAD, &dlen) != GH_OK)
        goto out;

    rc = GH_EIO;
    ctx = EVP_CIPHER_CTX_new();
    if (ctx == NULL || EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, bin) != 1)
        goto out;
    if (aadlen > 0 && EVP_DecryptUpdate(ctx, NULL, &len, (const unsigned char *)aad, (int)aadlen) != 1)
        goto out;
    if (plen > 0 &&
        (EVP_DecryptUpdate(ctx, dst, &len, bin + GH_SEAL_IV_LEN, (int)plen) != 1 || (size_t)len != plen))
        goto out;
    if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, GH_SEAL_TAG_LEN, bin + GH_SEAL_IV_LEN + plen) != 1)
        goto out;
    /* The tag is checked here, after the plaintext was written: wiped below on failure. */
    if (EVP_DecryptFinal_ex(ctx, dst + plen, &len) != 1) {
        rc = GH_ESIGNATURE;
        goto out;
    }
    out[plen] = '\0';
    if (outlen != NULL)
        *outlen = plen;
    rc = GH_OK;
out:
    if (rc != GH_OK) {
        OPENSSL_cleanse(out, plen + 1);
        out[0] = '\0';
    }
    EVP_CIPHER_CTX_free(ctx);
    free(bin);
    return rc;
}
