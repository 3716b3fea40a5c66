/* test_zstream.c - Discord zlib-stream decoding (gateway/zstream.c). The
 * stream is produced here the way Discord (and Node's zlib) does: one
 * deflate context for the connection, Z_SYNC_FLUSH after each message. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <zlib.h>

#include "core/err.h"
#include "gateway/zstream.h"

struct deflater {
    z_stream z;
};

static void dfl_init(struct deflater *d)
{
    memset(d, 0, sizeof(*d));
    assert_int_equal(deflateInit(&d->z, Z_DEFAULT_COMPRESSION), Z_OK);
}

/* Compresses one message with Z_SYNC_FLUSH; returns the byte count in out. */
static size_t dfl_msg(struct deflater *d, const void *in, size_t n, unsigned char *out, size_t cap)
{
    d->z.next_in = (Bytef *)(uintptr_t)in;
    d->z.avail_in = (uInt)n;
    d->z.next_out = out;
    d->z.avail_out = (uInt)cap;
    assert_int_equal(deflate(&d->z, Z_SYNC_FLUSH), Z_OK);
    assert_int_equal(d->z.avail_in, 0);
    assert_true(d->z.avail_out > 0);
    size_t w = cap - d->z.avail_out;
    assert_true(w >= 4);
    assert_memory_equal(out + w - 4, "\x00\x00\xff\xff", 4);
    return w;
}

static void test_stream_in_order(void **state)
{
    (void)state;
    struct deflater d;
    dfl_init(&d);
    struct gh_zstream zs;
    assert_int_equal(gh_zstream_init(&zs, 1 << 20, 1 << 20), GH_OK);
    unsigned char buf[1 << 16];
    const char *out = NULL;
    size_t outlen = 0;
    char msg[2048];
    for (int i = 0; i < 50; i++) {
        int ml =
            snprintf(msg, sizeof(msg),
                     "{\"op\":0,\"s\":%d,\"t\":\"MESSAGE_CREATE\",\"d\":{\"guild_id\":\"81384788765712384\","
                     "\"content\":\"message number %d, the same words again and again\"}}",
                     i + 1, i);
        size_t n = dfl_msg(&d, msg, (size_t)ml, buf, sizeof(buf));
        if (i % 3 == 0) {
            /* Whole, in one push. */
            assert_int_equal(gh_zstream_push(&zs, buf, n, &out, &outlen), 1);
        } else {
            /* Split across several buffers: only the last completes it. */
            size_t cut1 = n / 3, cut2 = 2 * n / 3;
            assert_int_equal(gh_zstream_push(&zs, buf, cut1, &out, &outlen), 0);
            assert_int_equal(gh_zstream_push(&zs, buf + cut1, cut2 - cut1, &out, &outlen), 0);
            assert_int_equal(gh_zstream_push(&zs, buf + cut2, n - cut2, &out, &outlen), 1);
        }
        assert_int_equal(outlen, (size_t)ml);
        assert_string_equal(out, msg);
    }
    /* A large message (grows the output buffer past its first size). */
    size_t big = 300000;
    char *bm = malloc(big);
    for (size_t i = 0; i < big; i++)
        bm[i] = (char)('a' + (i * 31 + i / 7) % 26);
    unsigned char *cb = malloc(big + 1024);
    size_t n = dfl_msg(&d, bm, big, cb, big + 1024);
    assert_int_equal(gh_zstream_push(&zs, cb, n, &out, &outlen), 1);
    assert_int_equal(outlen, big);
    assert_memory_equal(out, bm, big);
    assert_int_equal(out[big], '\0');
    free(cb);
    free(bm);
    gh_zstream_cleanup(&zs);
    deflateEnd(&d.z);
}

static void test_never_ends(void **state)
{
    (void)state;
    struct deflater d;
    dfl_init(&d);
    struct gh_zstream zs;
    assert_int_equal(gh_zstream_init(&zs, 4096, 1 << 20), GH_OK);
    unsigned char buf[4096];
    size_t n = dfl_msg(&d, "{\"op\":11}", 9, buf, sizeof(buf));
    const char *out = NULL;
    size_t outlen = 0;
    /* Everything but the suffix: buffered, nothing delivered. */
    assert_int_equal(gh_zstream_push(&zs, buf, n - 4, &out, &outlen), 0);
    assert_null(out);
    /* More bytes that never end with 00 00 ff ff fill the input limit. */
    unsigned char junk[1000];
    memset(junk, 0x11, sizeof(junk));
    int rc = 0;
    for (int i = 0; i < 10 && rc == 0; i++)
        rc = gh_zstream_push(&zs, junk, sizeof(junk), &out, &outlen);
    assert_int_equal(rc, GH_ETOOBIG);
    assert_null(out);
    /* Broken for good. */
    assert_int_equal(gh_zstream_push(&zs, buf, n, &out, &outlen), GH_EIO);
    gh_zstream_cleanup(&zs);
    deflateEnd(&d.z);
}

static void test_inflate_limit(void **state)
{
    (void)state;
    struct deflater d;
    dfl_init(&d);
    struct gh_zstream zs;
    /* 100 KiB of zeros compresses to a few hundred bytes: the input is
     * small, the inflated message is over the 64 KiB limit. */
    assert_int_equal(gh_zstream_init(&zs, 1 << 20, 65536), GH_OK);
    size_t big = 100000;
    char *zeros = calloc(1, big);
    unsigned char buf[4096];
    size_t n = dfl_msg(&d, zeros, big, buf, sizeof(buf));
    assert_true(n < 1000);
    const char *out = NULL;
    size_t outlen = 0;
    assert_int_equal(gh_zstream_push(&zs, buf, n, &out, &outlen), GH_ETOOBIG);
    assert_non_null(strstr(zs.error, "too large"));
    /* Exactly at the limit is fine (new context). */
    gh_zstream_cleanup(&zs);
    deflateEnd(&d.z);
    dfl_init(&d);
    assert_int_equal(gh_zstream_init(&zs, 1 << 20, 65536), GH_OK);
    n = dfl_msg(&d, zeros, 65536, buf, sizeof(buf));
    assert_int_equal(gh_zstream_push(&zs, buf, n, &out, &outlen), 1);
    assert_int_equal(outlen, 65536);
    free(zeros);
    gh_zstream_cleanup(&zs);
    deflateEnd(&d.z);
}

static void test_corrupt(void **state)
{
    (void)state;
    struct deflater d;
    dfl_init(&d);
    struct gh_zstream zs;
    assert_int_equal(gh_zstream_init(&zs, 1 << 20, 1 << 20), GH_OK);
    unsigned char buf[4096];
    const char *out = NULL;
    size_t outlen = 0;
    size_t n = dfl_msg(&d, "{\"op\":10}", 9, buf, sizeof(buf));
    assert_int_equal(gh_zstream_push(&zs, buf, n, &out, &outlen), 1);
    assert_string_equal(out, "{\"op\":10}");
    /* Garbage that ends with the suffix. */
    unsigned char bad[] = {0xff, 0xfe, 0xfd, 0x13, 0x37, 0x00, 0x00, 0xff, 0xff};
    assert_int_equal(gh_zstream_push(&zs, bad, sizeof(bad), &out, &outlen), GH_EIO);
    assert_non_null(strstr(zs.error, "inflate"));
    gh_zstream_cleanup(&zs);
    deflateEnd(&d.z);

    /* A stream that does not start with a zlib header. */
    assert_int_equal(gh_zstream_init(&zs, 1 << 20, 1 << 20), GH_OK);
    unsigned char nohdr[] = {'h', 'e', 'l', 'l', 'o', 0x00, 0x00, 0xff, 0xff};
    assert_int_equal(gh_zstream_push(&zs, nohdr, sizeof(nohdr), &out, &outlen), GH_EIO);
    gh_zstream_cleanup(&zs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stream_in_order),
        cmocka_unit_test(test_never_ends),
        cmocka_unit_test(test_inflate_limit),
        cmocka_unit_test(test_corrupt),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
