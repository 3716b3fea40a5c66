/* wsframe.h - RFC 6455 frame codec (pure: no sockets, no allocation).
 *
 * gh_wsf_encode writes one masked client frame into caller storage;
 * gh_wsf_parse reads one frame header from a buffer and validates it the way a
 * client (or, with expect_masked, a server) must. gh_ws (ws.c) and the unit
 * tests both use it. */
#ifndef GH_GATEWAY_WSFRAME_H
#define GH_GATEWAY_WSFRAME_H

#include <stddef.h>
#include <stdint.h>

enum gh_wsf_opcode {
    GH_WSF_CONT = 0x0,
    GH_WSF_TEXT = 0x1,
    GH_WSF_BINARY = 0x2,
    GH_WSF_CLOSE = 0x8,
    GH_WSF_PING = 0x9,
    GH_WSF_PONG = 0xA,
};

#define GH_WSF_MAX_HEADER 14   /* 2 + 8 (64-bit length) + 4 (mask) */
#define GH_WSF_MAX_CONTROL 125 /* control frame payload limit */
#define GH_WSF_MAX_CLOSE_REASON 123

struct gh_wsf_header {
    int fin;
    int opcode;
    int masked;
    unsigned char mask[4];
    uint64_t payload_len;
    size_t header_len; /* bytes of header before the payload */
};

/* Size of a masked client frame header for a payload of n bytes. */
size_t gh_wsf_header_size(size_t n);

/* Writes one frame (FIN set, opcode, masked with mask; mask NULL = unmasked,
 * which only a server may send) with payload p (n bytes, p may be NULL when
 * n is 0) into out. Returns the bytes written, or 0 when outsz is too small
 * (out untouched). out and p must not overlap. */
size_t gh_wsf_encode(unsigned char *out, size_t outsz, int opcode, int fin, const void *p, size_t n,
                     const unsigned char *mask);

/* XORs n bytes at p with mask, starting at mask position offset % 4. */
void gh_wsf_mask(unsigned char *p, size_t n, const unsigned char mask[4], size_t offset);

/* Parses one frame header at buf (len bytes available).
 *   > 0  the header is complete: h is filled, the value is h->header_len
 *        (the payload, h->payload_len bytes, follows and may not all be here)
 *   0    more bytes are needed; *need (when not NULL) gets the header size
 *        known so far (at least 2)
 *   < 0  protocol error (GH_EINVAL): the peer must be closed with 1002;
 *        *why (when not NULL) gets a static explanation.
 * Checks: reserved bits clear (no extension negotiated), a known opcode,
 * control frames final and <= 125 bytes, a 64-bit length with the top bit
 * clear (non-minimal length encodings are accepted), and the mask bit:
 * expect_masked 0 (a client reading server frames) refuses masked frames,
 * 1 (a server) refuses unmasked ones. */
int gh_wsf_parse(const void *buf, size_t len, int expect_masked, struct gh_wsf_header *h, size_t *need,
                 const char **why);

/* Parses a close frame payload. An empty payload gives code 1005 (no status)
 * and "". A 1-byte payload, or a code that may not be sent on the wire
 * (< 1000, 1004-1006, 1015, 1016-2999) is GH_EINVAL. reason gets the text
 * (truncated to reasonsz - 1 bytes), NUL-terminated. */
int gh_wsf_close_parse(const void *p, size_t n, int *code, char *reason, size_t reasonsz);

#endif
