/* zstream.h - Discord's zlib-stream transport decoder.
 *
 * One inflate context lives as long as the connection (never reset between
 * messages: later messages refer back to earlier ones). Binary WebSocket
 * messages are appended until the buffered data ends with the Z_SYNC_FLUSH
 * suffix 00 00 ff ff; then the whole buffer is inflated and the result is
 * one gateway message. The output buffer is reused from message to message.
 * After an error the context is unusable: the connection must be dropped. */
#ifndef GH_GATEWAY_ZSTREAM_H
#define GH_GATEWAY_ZSTREAM_H

#include <stddef.h>

#include <zlib.h>

struct gh_zstream {
    z_stream z;
    int ready;         /* inflateInit done */
    int broken;        /* an error happened: every later push fails */
    unsigned char *in; /* compressed bytes waiting for the suffix */
    size_t in_len, in_cap, in_max;
    char *out; /* inflated message, NUL-terminated */
    size_t out_cap, out_max;
    char error[128]; /* why the last push failed */
};

/* max_in: most compressed bytes buffered for one message; max_out: largest
 * inflated message. Returns GH_OK or GH_ENOMEM. */
int gh_zstream_init(struct gh_zstream *zs, size_t max_in, size_t max_out);
void gh_zstream_cleanup(struct gh_zstream *zs); /* accepts a zeroed or cleaned struct */

/* Appends n bytes (one binary WebSocket message). Returns
 *   1   a message is complete: *out (NUL-terminated, valid until the next
 *       push or cleanup) and *outlen are set
 *   0   the data does not end with the suffix yet: buffered
 *   GH_ETOOBIG  the buffered input or the inflated message exceeds its max
 *   GH_EIO      corrupt data (zlib error; zs->error says which)
 *   GH_ENOMEM */
int gh_zstream_push(struct gh_zstream *zs, const void *data, size_t n, const char **out, size_t *outlen);

#endif
