/* wsframe.c - RFC 6455 frame codec. See wsframe.h. */
#include "gateway/wsframe.h"

#include <string.h>

#include "core/err.h"

size_t gh_wsf_header_size(size_t n)
{
    return (n < 126 ? 2 : n <= 0xFFFF ? 4 : 10) + 4;
}

void gh_wsf_mask(unsigned char *p, size_t n, const unsigned char mask[4], size_t offset)
{
    size_t i = 0;
    /* Word at a time once aligned to the mask period: the payloads we send
     * are small, but a pong echo or a test server unmasking a large frame
     * should not crawl. */
    unsigned char m[8];
    for (int k = 0; k < 8; k++)
        m[k] = mask[(offset + (size_t)k) & 3];
    uint64_t w;
    memcpy(&w, m, 8);
    for (; i + 8 <= n; i += 8) {
        uint64_t v;
        memcpy(&v, p + i, 8);
        v ^= w;
        memcpy(p + i, &v, 8);
    }
    for (; i < n; i++)
        p[i] ^= mask[(offset + i) & 3];
}

size_t gh_wsf_encode(unsigned char *out, size_t outsz, int opcode, int fin, const void *p, size_t n,
                     const unsigned char *mask)
{
    size_t hl = gh_wsf_header_size(n) - (mask ? 0 : 4);
    if (outsz < hl || outsz - hl < n)
        return 0;
    size_t i = 0;
    out[i++] = (unsigned char)((fin ? 0x80 : 0) | (opcode & 0x0F));
    unsigned char mbit = mask ? 0x80 : 0;
    if (n < 126) {
        out[i++] = (unsigned char)(mbit | n);
    } else if (n <= 0xFFFF) {
        out[i++] = (unsigned char)(mbit | 126);
        out[i++] = (unsigned char)(n >> 8);
        out[i++] = (unsigned char)n;
    } else {
        out[i++] = (unsigned char)(mbit | 127);
        uint64_t L = (uint64_t)n;
        for (int k = 7; k >= 0; k--)
            out[i++] = (unsigned char)(L >> (8 * k));
    }
    if (mask) {
        memcpy(out + i, mask, 4);
        i += 4;
    }
    if (n) {
        memcpy(out + i, p, n);
        if (mask)
            gh_wsf_mask(out + i, n, mask, 0);
    }
    return i + n;
}

int gh_wsf_parse(const void *buf, size_t len, int expect_masked, struct gh_wsf_header *h, size_t *need,
                 const char **why)
{
    const unsigned char *b = buf;
    const char *dummy;
    if (!why)
        why = &dummy;
    if (need)
        *need = 2;
    if (len < 2)
        return 0;
    int op = b[0] & 0x0F;
    if (b[0] & 0x70) {
        *why = "reserved bits set";
        return GH_EINVAL;
    }
    switch (op) {
    case GH_WSF_CONT:
    case GH_WSF_TEXT:
    case GH_WSF_BINARY:
    case GH_WSF_CLOSE:
    case GH_WSF_PING:
    case GH_WSF_PONG:
        break;
    default:
        *why = "unknown opcode";
        return GH_EINVAL;
    }
    int fin = (b[0] & 0x80) != 0;
    int masked = (b[1] & 0x80) != 0;
    if (masked != (expect_masked != 0)) {
        *why = masked ? "masked frame from the server" : "unmasked frame from the client";
        return GH_EINVAL;
    }
    unsigned l7 = b[1] & 0x7F;
    size_t hl = 2 + (l7 == 126 ? 2 : l7 == 127 ? 8 : 0) + (masked ? 4 : 0);
    if (op & 0x8) {
        if (!fin) {
            *why = "fragmented control frame";
            return GH_EINVAL;
        }
        if (l7 > GH_WSF_MAX_CONTROL) {
            *why = "control frame longer than 125 bytes";
            return GH_EINVAL;
        }
    }
    if (need)
        *need = hl;
    if (len < hl)
        return 0;
    uint64_t plen = l7;
    if (l7 == 126) {
        plen = ((uint64_t)b[2] << 8) | b[3];
    } else if (l7 == 127) {
        plen = 0;
        for (int k = 0; k < 8; k++)
            plen = (plen << 8) | b[2 + k];
        if (plen >> 63) {
            *why = "64-bit length with the top bit set";
            return GH_EINVAL;
        }
    }
    h->fin = fin;
    h->opcode = op;
    h->masked = masked;
    if (masked)
        memcpy(h->mask, b + hl - 4, 4);
    else
        memset(h->mask, 0, 4);
    h->payload_len = plen;
    h->header_len = hl;
    return (int)hl;
}

static int close_code_valid(int c)
{
    if (c >= 3000 && c <= 4999)
        return 1;
    if (c < 1000 || c > 1014)
        return 0;
    return c != 1004 && c != 1005 && c != 1006;
}

int gh_wsf_close_parse(const void *p, size_t n, int *code, char *reason, size_t reasonsz)
{
    const unsigned char *b = p;
    if (reasonsz)
        reason[0] = '\0';
    *code = 1005;
    if (n == 0)
        return GH_OK;
    if (n == 1)
        return GH_EINVAL;
    int c = (b[0] << 8) | b[1];
    if (!close_code_valid(c))
        return GH_EINVAL;
    *code = c;
    if (reasonsz) {
        size_t rl = n - 2;
        if (rl > reasonsz - 1)
            rl = reasonsz - 1;
        memcpy(reason, b + 2, rl);
        reason[rl] = '\0';
    }
    return GH_OK;
}
