/* test_arena.c - alignment, the hard cap, big allocations, reset. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/arena.h"

#define ALIGN _Alignof(max_align_t)

static void aligned_and_distinct(void **state)
{
    struct gh_arena a;
    char *p[100];
    int i;

    (void)state;
    gh_arena_init(&a, 1024, 1 << 20);
    for (i = 0; i < 100; i++) {
        p[i] = gh_arena_alloc(&a, (size_t)(i % 13) + 1);
        assert_non_null(p[i]);
        assert_int_equal((uintptr_t)p[i] % ALIGN, 0);
        memset(p[i], i, (size_t)(i % 13) + 1);
    }
    for (i = 0; i < 100; i++)
        assert_int_equal((unsigned char)p[i][0], i);
    assert_null(gh_arena_alloc(&a, 0));
    assert_true(a.used >= 100);
    assert_true(a.total >= a.used);
    assert_true(a.total <= a.hard_cap);
    gh_arena_cleanup(&a);
}

static void cap_returns_null(void **state)
{
    struct gh_arena a;
    size_t got = 0;
    void *p;

    (void)state;
    gh_arena_init(&a, 256, 4096);
    while ((p = gh_arena_alloc(&a, 100)) != NULL)
        got += 100;
    assert_true(got > 2000); /* most of the cap is usable */
    assert_true(got <= 4096);
    assert_true(a.total <= 4096);
    assert_null(gh_arena_alloc(&a, 100));
    assert_null(gh_arena_alloc(&a, 1 << 20));
    assert_null(gh_arena_calloc(&a, SIZE_MAX / 2, 4)); /* overflow */
    assert_null(gh_arena_alloc(&a, SIZE_MAX));
    gh_arena_cleanup(&a);
}

static void big_allocation_gets_own_chunk_within_cap(void **state)
{
    struct gh_arena a;
    char *small1, *big, *small2;

    (void)state;
    gh_arena_init(&a, 256, 64 * 1024);
    small1 = gh_arena_alloc(&a, 16);
    assert_non_null(small1);
    big = gh_arena_alloc(&a, 10000);
    assert_non_null(big);
    memset(big, 'b', 10000);
    assert_true(a.total >= 10000 + 256);
    /* the small chunk is still the current one */
    small2 = gh_arena_alloc(&a, 16);
    assert_non_null(small2);
    assert_true(small2 > small1 && small2 < small1 + 256);
    /* a big allocation past the cap fails, the arena keeps working */
    assert_null(gh_arena_alloc(&a, 60000));
    assert_non_null(gh_arena_alloc(&a, 16));
    gh_arena_cleanup(&a);
}

static void reset_frees_all_but_one_chunk(void **state)
{
    struct gh_arena a;
    size_t total_one;
    char *first, *again;
    int i;

    (void)state;
    gh_arena_init(&a, 512, 1 << 20);
    first = gh_arena_alloc(&a, 8);
    total_one = a.total;
    for (i = 0; i < 50; i++)
        assert_non_null(gh_arena_alloc(&a, 300));
    assert_non_null(gh_arena_alloc(&a, 5000));
    assert_true(a.total > total_one);
    gh_arena_reset(&a);
    assert_int_equal(a.used, 0);
    assert_int_equal(a.total, total_one);
    assert_non_null(a.head);
    again = gh_arena_alloc(&a, 8);
    assert_non_null(again);
    (void)first;
    /* after a reset the cap applies afresh */
    gh_arena_cleanup(&a);
    gh_arena_init(&a, 256, 2048);
    while (gh_arena_alloc(&a, 64))
        ;
    assert_null(gh_arena_alloc(&a, 64));
    gh_arena_reset(&a);
    assert_non_null(gh_arena_alloc(&a, 64));
    gh_arena_cleanup(&a);
    assert_null(a.head);
    assert_int_equal(a.total, 0);
    gh_arena_cleanup(&a);
}

static void strings(void **state)
{
    struct gh_arena a;
    char *s;
    int *z;

    (void)state;
    gh_arena_init(&a, 128, 8192);
    s = gh_arena_strdup(&a, "hello");
    assert_string_equal(s, "hello");
    s = gh_arena_strndup(&a, "hello world", 5);
    assert_string_equal(s, "hello");
    s = gh_arena_strndup(&a, "hi\0there", 8);
    assert_string_equal(s, "hi");
    s = gh_arena_sprintf(&a, "%s-%d", "id", 42);
    assert_string_equal(s, "id-42");
    s = gh_arena_sprintf(&a, "%0300d", 7); /* longer than a chunk */
    assert_non_null(s);
    assert_int_equal(strlen(s), 300);
    assert_null(gh_arena_strdup(&a, NULL));
    z = gh_arena_calloc(&a, 10, sizeof *z);
    assert_non_null(z);
    assert_int_equal(z[0] | z[9], 0);
    assert_null(gh_arena_sprintf(&a, "%09000d", 1)); /* over the cap */
    gh_arena_cleanup(&a);
}

/* Near the cap the last chunk shrinks to what is left, so the cap and not a
 * multiple of chunk_size is the limit; strings over the cap are NULL. */
static void last_chunk_shrinks_to_the_cap(void **state)
{
    struct gh_arena a;
    char big[3000];

    (void)state;
    gh_arena_init(&a, 4096, 6000);
    assert_non_null(gh_arena_alloc(&a, 4000)); /* fills the first chunk */
    assert_non_null(gh_arena_alloc(&a, 1000)); /* a second, smaller chunk */
    assert_true(a.total <= 6000);
    assert_true(a.total > 4096);
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_null(gh_arena_strdup(&a, big));
    assert_null(gh_arena_sprintf(&a, "%s", big));
    assert_null(gh_arena_strdup(&a, NULL));
    assert_null(gh_arena_strndup(&a, NULL, 3));
    while (gh_arena_alloc(&a, 16) != NULL)
        ;
    assert_true(a.total <= 6000);
    assert_null(gh_arena_alloc(&a, 16)); /* full: no chunk at all any more */
    gh_arena_cleanup(&a);
    gh_arena_cleanup(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(aligned_and_distinct),
        cmocka_unit_test(cap_returns_null),
        cmocka_unit_test(big_allocation_gets_own_chunk_within_cap),
        cmocka_unit_test(reset_frees_all_but_one_chunk),
        cmocka_unit_test(strings),
        cmocka_unit_test(last_chunk_shrinks_to_the_cap),
    };

    return cmocka_run_group_tests_name("arena", tests, NULL, NULL);
}
