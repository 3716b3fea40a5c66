/* zstream.c - zlib-stream decoder. See zstream.h. */
#include "gateway/zstream.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"

#define OUT_INITIAL 65536

int gh_zstream_init(struct gh_zstream *zs, size_t max_in, size_t max_out)
{
    memset(zs, 0, sizeof(*zs));
    zs->in_max = max_in;
    zs->out_max = max_out;
    if (inflateInit(&zs->z) != Z_OK)
        return GH_ENOMEM;
    zs->ready = 1;
    return GH_OK;
}

void gh_zstream_cleanup(struct gh_zstream *zs)
{
    if (zs->ready)
        inflateEnd(&zs->z);
    free(zs->in);
    free(zs->out);
    memset(zs, 0, sizeof(*zs));
}

static int fail(struct gh_zstream *zs, int rc, const char *what)
{
    zs->broken = 1;
    zs->in_len = 0;
    snprintf(zs->error, sizeof(zs->error), "%s", what);
    return rc;
}

static int ends_with_suffix(const unsigned char *p, size_t n)
{
    return n >= 4 && p[n - 4] == 0x00 && p[n - 3] == 0x00 && p[n - 2] == 0xFF && p[n - 1] == 0xFF;
}

/* Inflates n bytes at src into zs->out (grown up to out_max + 1 bytes). */
static int inflate_all(struct gh_zstream *zs, const unsigned char *src, size_t n, size_t *outlen)
{
    if (!zs->out) {
        size_t cap = OUT_INITIAL < zs->out_max + 2 ? OUT_INITIAL : zs->out_max + 2;
        zs->out = malloc(cap);
        if (!zs->out)
            return fail(zs, GH_ENOMEM, "out of memory");
        zs->out_cap = cap;
    }
    size_t have = 0;
    /* zlib's avail_in is a uInt: feed big inputs in slices. */
    zs->z.next_in = (Bytef *)(uintptr_t)src;
    size_t left = n;
    for (;;) {
        if (zs->z.avail_in == 0 && left) {
            uInt take = left > 0x40000000u ? 0x40000000u : (uInt)left;
            zs->z.avail_in = take;
            left -= take;
        }
        /* Keep one byte for the NUL. The buffer may reach out_max + 2 so
         * that one byte over the limit can be seen (and refused) while a
         * message of exactly out_max bytes still ends with room left. */
        if (have + 1 >= zs->out_cap) {
            if (zs->out_cap >= zs->out_max + 2)
                return fail(zs, GH_ETOOBIG, "inflated message too large");
            size_t ncap = zs->out_cap * 2;
            if (ncap > zs->out_max + 2)
                ncap = zs->out_max + 2;
            char *nb = realloc(zs->out, ncap);
            if (!nb)
                return fail(zs, GH_ENOMEM, "out of memory");
            zs->out = nb;
            zs->out_cap = ncap;
        }
        size_t room = zs->out_cap - 1 - have;
        uInt give = room > 0x40000000u ? 0x40000000u : (uInt)room;
        zs->z.next_out = (Bytef *)zs->out + have;
        zs->z.avail_out = give;
        int rc = inflate(&zs->z, Z_SYNC_FLUSH);
        have += give - zs->z.avail_out;
        if (rc == Z_STREAM_END) {
            if (zs->z.avail_in || left)
                return fail(zs, GH_EIO, "data after the end of the zlib stream");
            break;
        }
        if (rc == Z_BUF_ERROR) {
            /* No progress possible: done when all input is consumed,
             * otherwise the output was full (loop grows it). */
            if (zs->z.avail_in == 0 && left == 0)
                break;
            if (zs->z.avail_out != 0)
                return fail(zs, GH_EIO, "zlib made no progress");
            continue;
        }
        if (rc != Z_OK) {
            char why[96];
            snprintf(why, sizeof(why), "inflate failed: %s", zs->z.msg ? zs->z.msg : "error");
            return fail(zs, GH_EIO, why);
        }
        if (zs->z.avail_in == 0 && left == 0 && zs->z.avail_out != 0)
            break; /* all input consumed and output not full: message done */
    }
    if (have > zs->out_max)
        return fail(zs, GH_ETOOBIG, "inflated message too large");
    zs->out[have] = '\0';
    *outlen = have;
    return GH_OK;
}

int gh_zstream_push(struct gh_zstream *zs, const void *data, size_t n, const char **out, size_t *outlen)
{
    if (zs->broken)
        return GH_EIO;
    const unsigned char *src;
    size_t srclen;
    if (zs->in_len == 0 && ends_with_suffix(data, n)) {
        /* The common case: one WebSocket message is one zlib flush. Inflate
         * straight from the caller's bytes, no copy. */
        if (n > zs->in_max)
            return fail(zs, GH_ETOOBIG, "compressed message too large");
        src = data;
        srclen = n;
    } else {
        if (n > zs->in_max || zs->in_len > zs->in_max - n)
            return fail(zs, GH_ETOOBIG, "compressed message too large");
        if (zs->in_len + n > zs->in_cap) {
            size_t ncap = zs->in_cap ? zs->in_cap : 4096;
            while (ncap < zs->in_len + n)
                ncap *= 2;
            unsigned char *nb = realloc(zs->in, ncap);
            if (!nb)
                return fail(zs, GH_ENOMEM, "out of memory");
            zs->in = nb;
            zs->in_cap = ncap;
        }
        if (n)
            memcpy(zs->in + zs->in_len, data, n);
        zs->in_len += n;
        if (!ends_with_suffix(zs->in, zs->in_len))
            return 0;
        src = zs->in;
        srclen = zs->in_len;
    }
    size_t len = 0;
    int rc = inflate_all(zs, src, srclen, &len);
    zs->in_len = 0;
    if (rc != GH_OK)
        return rc;
    *out = zs->out;
    *outlen = len;
    return 1;
}
