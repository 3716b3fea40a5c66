/* verify.h - Ed25519 signature check of an incoming interaction or webhook
 * event (libsodium), plus our own replay window on the timestamp. */
#ifndef GH_DISCORD_VERIFY_H
#define GH_DISCORD_VERIFY_H

#include <stddef.h>
#include <stdint.h>

/* sig_hex: X-Signature-Ed25519 (128 hex chars); ts: X-Signature-Timestamp
 * (decimal Unix seconds). Message = ts || body. Returns GH_OK,
 * GH_ESIGNATURE (missing/malformed header or bad signature) or GH_ESTALE
 * (|now_s - ts| > max_skew_s; checked only after the signature is valid). */
int gh_verify_interaction(const unsigned char public_key[32], const char *sig_hex, const char *ts,
                          const char *body, size_t body_len, int64_t now_s, int max_skew_s);
/* 64 hex chars -> 32 bytes. GH_OK or GH_EINVAL. */
int gh_hex_to_key32(const char *hex, unsigned char out[32]);

#endif
