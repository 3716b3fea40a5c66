/* crypto.h - encodings, MACs, session tokens (JWT HS256) and secrets at rest.
 *
 * OpenSSL 3.0 does the hashing, HMAC and AES-256-GCM; libsodium only supplies
 * random bytes. Every function is thread-safe and keeps no state.
 *
 * Return codes come from core/err.h. Output buffers are caller storage with
 * their size; a function that fails leaves a text output as "" (when
 * outsz > 0), never half-written. */
#ifndef GH_CORE_CRYPTO_H
#define GH_CORE_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

/* Length of the base64url text (no padding, no NUL) for n bytes. */
#define GH_B64URL_LEN(n) ((n) / 3 * 4 + ((n) % 3 ? (n) % 3 + 1 : 0))

/* ---- base64url without padding (RFC 4648 section 5) ---- */

/* Encodes n bytes of in (may be NULL when n is 0) into out, NUL-terminated.
 * Returns GH_OK, GH_ETOOBIG when outsz < GH_B64URL_LEN(n) + 1 (out is then
 * ""), or GH_EINVAL when in is NULL with n > 0. */
int gh_b64url_encode(const unsigned char *in, size_t n, char *out, size_t outsz);

/* Decodes n characters of in (no NUL needed) into out; *outlen gets the byte
 * count (out is binary, not NUL-terminated). Strict: only A-Z a-z 0-9 - _,
 * no '=' padding, no whitespace, a length that is not 1 mod 4, and the unused
 * low bits of the last character zero (so every byte string has exactly one
 * encoding). Returns GH_OK, GH_EINVAL (bad character or length, padding),
 * or GH_ETOOBIG (outsz too small). *outlen is 0 on failure. */
int gh_b64url_decode(const char *in, size_t n, unsigned char *out, size_t outsz, size_t *outlen);

/* ---- randomness, hashes, comparison ---- */

#define GH_RANDOM_TOKEN_MAX_BYTES 256

/* nbytes (1..GH_RANDOM_TOKEN_MAX_BYTES) random bytes from libsodium, written
 * as base64url text (GH_B64URL_LEN(nbytes) characters) NUL-terminated into
 * out. Returns GH_OK, GH_EINVAL (nbytes out of range), GH_ETOOBIG (outsz),
 * or GH_EIO (libsodium failed to initialise). */
int gh_random_token(char *out, size_t outsz, size_t nbytes);

/* HMAC-SHA256 of msg under key into out. key may be NULL when keylen is 0,
 * msg NULL when msglen is 0. Returns GH_OK, GH_EINVAL (NULL with a length,
 * keylen above INT_MAX) or GH_EIO (OpenSSL failed). */
int gh_hmac_sha256(const void *key, size_t keylen, const void *msg, size_t msglen, unsigned char out[32]);

/* SHA-256 of n bytes as 64 lowercase hex characters plus NUL. data may be
 * NULL when n is 0. out is "" if OpenSSL fails (it cannot without memory). */
void gh_sha256_hex(const void *data, size_t n, char out[65]);

/* 1 when the n bytes at a and b are equal, else 0; the time taken depends on
 * n only (CRYPTO_memcmp). n == 0 gives 1. */
int gh_ct_equal(const void *a, const void *b, size_t n);

/* ---- JWT, HS256 only ---- */

#define GH_JWT_MAX_LEN 4096 /* characters, without the NUL */

/* Signs claims (borrowed; must be a JSON object, written compactly in key
 * order) under secret (non-empty NUL-terminated string) with the header
 * {"alg":"HS256","typ":"JWT"}. out gets the token NUL-terminated. Returns
 * GH_OK, GH_EINVAL (secret NULL or empty, claims not an object), GH_ETOOBIG
 * (token longer than outsz - 1 or than GH_JWT_MAX_LEN, which verify refuses),
 * GH_ENOMEM (json-c could not serialise) or GH_EIO (OpenSSL failed). */
int gh_jwt_sign(const char *secret, json_object *claims, char *out, size_t outsz);

/* Verifies token under secret at time now_s (Unix seconds). Order of checks:
 * length and structure (three base64url parts), header (JSON object whose
 * "alg" is exactly "HS256"; "none" and every other alg refused; a "crit"
 * header is refused as unsupported), the signature (constant time), then the
 * payload (parsed only once the signature holds) and its times: "exp" is
 * required and an integer (expired when exp <= now_s), "nbf" when present an
 * integer <= now_s, "iat" when present an integer at most 60 s ahead of now_s.
 * claims may be NULL (check only); otherwise *claims is set on GH_OK (caller
 * frees with json_object_put) and is NULL on any failure.
 * Returns GH_OK; GH_EINVAL: secret NULL/empty, token NULL or longer than
 * GH_JWT_MAX_LEN, not 3 parts, bad base64url, bad JSON, header or claims not
 * an object, "crit" header; GH_ESIGNATURE: alg not HS256, signature wrong
 * (includes a wrong secret); GH_EEXPIRED: exp missing, not an integer or
 * passed, nbf not an integer or in the future, iat not an integer or more
 * than 60 s ahead; GH_EIO: OpenSSL failed. */
int gh_jwt_verify(const char *secret, const char *token, int64_t now_s, json_object **claims);

/* ---- secrets at rest: AES-256-GCM ---- */

#define GH_SEAL_IV_LEN 12
#define GH_SEAL_TAG_LEN 16
#define GH_SEAL_MAX_PLAIN ((size_t)1 << 20) /* bytes (1 MiB) */
/* Buffer size (NUL included) that gh_seal needs for n bytes of plaintext. */
#define GH_SEAL_BUFSZ(n) (3 + GH_B64URL_LEN((n) + GH_SEAL_IV_LEN + GH_SEAL_TAG_LEN) + 1)

/* Parses exactly 64 hex characters (either case; the ENCRYPTION_KEY format)
 * into key. Returns GH_OK or GH_EINVAL (NULL, wrong length, non-hex); key is
 * zeroed on failure. */
int gh_crypto_key_from_hex(const char *hex, unsigned char key[32]);

/* Encrypts n bytes of plain (NULL allowed when n is 0) under key with a fresh
 * random 12-byte IV. out gets, NUL-terminated,
 *   "v1." base64url(IV || ciphertext || 16-byte tag)
 * aad (NUL-terminated, may be NULL, which means the same as "") is
 * authenticated but not stored: bind the secret to its context, e.g. the
 * user id, and pass the same aad to gh_unseal. Returns GH_OK, GH_EINVAL
 * (key NULL, plain NULL with n > 0), GH_ETOOBIG (n above GH_SEAL_MAX_PLAIN,
 * outsz below GH_SEAL_BUFSZ(n)), GH_ENOMEM or GH_EIO (OpenSSL or libsodium
 * failed). */
int gh_seal(const unsigned char key[32], const char *aad, const void *plain, size_t n, char *out,
            size_t outsz);

/* Reverses gh_seal. out gets the plaintext followed by a NUL (so text
 * secrets read as strings; the plaintext itself may hold NULs, *outlen says
 * how many bytes it has; outlen may be NULL). Nothing unauthenticated is ever
 * left in out: on failure out is "" (when outsz > 0) and *outlen 0.
 * Returns GH_OK; GH_EINVAL: key or sealed NULL, a prefix other than "v1.",
 * bad base64url, too short to hold IV and tag; GH_ETOOBIG: outsz below
 * plaintext length + 1; GH_ESIGNATURE: tag mismatch (tampered, wrong key or
 * wrong aad); GH_ENOMEM; GH_EIO: OpenSSL failed. */
int gh_unseal(const unsigned char key[32], const char *aad, const char *sealed, char *out, size_t outsz,
              size_t *outlen);

#endif
