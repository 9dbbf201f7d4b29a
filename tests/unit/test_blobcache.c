/* pc_blobcache: LRU order, the byte budget, and blobs that outlive their eviction. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pc_blobcache.h"

static pc_blob *put(pc_blobcache *c, const char *key, size_t len, char fill)
{
    char *d = malloc(len + 1);
    memset(d, fill, len);
    pc_blob *b = pc_blobcache_put(c, key, strlen(key), d, len, &fill, 1);
    free(d);
    return b;
}

static int has(pc_blobcache *c, const char *key)
{
    pc_blob *b = pc_blobcache_get(c, key, strlen(key));
    pc_blob_release(b);
    return b != NULL;
}

static void stored_bytes_and_aux_come_back(void **state)
{
    (void)state;
    pc_blobcache *c = pc_blobcache_new(1000, 1000);
    pc_blob_release(put(c, "/a", 10, 'x'));
    pc_blob *b = pc_blobcache_get(c, "/a", 2);
    assert_non_null(b);
    assert_int_equal(b->len, 10);
    assert_memory_equal(b->data, "xxxxxxxxxx", 10);
    assert_int_equal(b->aux[0], 'x');
    pc_blob_release(b);
    assert_null(pc_blobcache_get(c, "/b", 2));
    assert_null(pc_blobcache_get(c, "/", 1)); /* a prefix is not a key */
    pc_blobcache_stats st;
    pc_blobcache_get_stats(c, &st);
    assert_int_equal(st.hits, 1);
    assert_int_equal(st.misses, 2);
    assert_int_equal(st.entries, 1);
    assert_int_equal(st.bytes, 10);
    pc_blobcache_free(c);
}

static void least_recently_used_goes_first_and_budget_holds(void **state)
{
    (void)state;
    pc_blobcache *c = pc_blobcache_new(300, 300);
    pc_blob_release(put(c, "a", 100, 'a'));
    pc_blob_release(put(c, "b", 100, 'b'));
    pc_blob_release(put(c, "c", 100, 'c'));
    assert_true(has(c, "a")); /* a is now the most recent: b goes next */
    pc_blob_release(put(c, "d", 100, 'd'));
    assert_false(has(c, "b"));
    assert_true(has(c, "a"));
    assert_true(has(c, "c"));
    assert_true(has(c, "d"));
    pc_blobcache_stats st;
    pc_blobcache_get_stats(c, &st);
    assert_int_equal(st.bytes, 300);
    assert_int_equal(st.evictions, 1);
    /* exactly at the budget fits; one byte more evicts */
    pc_blob_release(put(c, "e", 200, 'e'));
    pc_blobcache_get_stats(c, &st);
    assert_true(st.bytes <= 300);
    assert_true(has(c, "e"));
    pc_blobcache_free(c);
}

static void blob_larger_than_the_limit_is_refused(void **state)
{
    (void)state;
    pc_blobcache *c = pc_blobcache_new(1000, 100);
    assert_null(put(c, "big", 101, 'x'));
    pc_blob *b = put(c, "ok", 100, 'x');
    assert_non_null(b);
    pc_blob_release(b);
    char key[PC_BLOB_KEY_MAX + 2];
    memset(key, 'k', sizeof(key) - 1);
    key[sizeof(key) - 1] = '\0';
    assert_null(pc_blobcache_put(c, key, strlen(key), "x", 1, NULL, 0));
    assert_null(pc_blobcache_put(c, "k", 1, "x", 1, key, PC_BLOB_AUX_MAX + 1));
    pc_blobcache_free(c);
}

static void evicted_blob_stays_valid_for_its_holder(void **state)
{
    (void)state;
    pc_blobcache *c = pc_blobcache_new(100, 100);
    pc_blob *held = put(c, "a", 100, 'a');
    pc_blob_release(put(c, "b", 100, 'b')); /* evicts a while it is held */
    assert_false(has(c, "a"));
    assert_memory_equal(held->data, "aaaa", 4); /* ASan flags a use after free here */
    pc_blob_release(held);
    /* a replaced blob too */
    held = pc_blobcache_get(c, "b", 1);
    pc_blob_release(put(c, "b", 50, 'B'));
    assert_int_equal(held->len, 100);
    assert_int_equal(held->data[99], 'b');
    pc_blob_release(held);
    pc_blob *now = pc_blobcache_get(c, "b", 1);
    assert_int_equal(now->len, 50);
    pc_blob_release(now);
    /* and one still held when the whole cache goes */
    held = pc_blobcache_get(c, "b", 1);
    pc_blobcache_free(c);
    assert_int_equal(held->data[0], 'B');
    pc_blob_release(held);
}

/* What holders keep of blobs out of the index is counted (held_out), until the last holder lets go, also
 * past the cache's end; blobs of 128 KiB and more (their own mappings) behave the same */
static void blobs_held_out_of_the_index_are_counted(void **state)
{
    (void)state;
    for (size_t unit = 100; unit <= 200000; unit += 199900) {
        pc_blobcache *c = pc_blobcache_new(2 * unit, 2 * unit);
        pc_blob *a = put(c, "a", unit, 'a'), *b = put(c, "b", unit, 'b');
        assert_int_equal(pc_blobcache_held_out(c), 0);
        pc_blob_release(put(c, "c", unit, 'c')); /* evicts a, held */
        assert_int_equal(pc_blobcache_held_out(c), unit);
        pc_blob_release(put(c, "b", unit / 2, 'B')); /* replaces b, held */
        assert_int_equal(pc_blobcache_held_out(c), unit + unit);
        pc_blob_release(a);
        assert_int_equal(pc_blobcache_held_out(c), unit);
        pc_blob *c2 = pc_blobcache_get(c, "c", 1);
        assert_int_equal(pc_blobcache_forget_prefix(c, "c", 1), 1); /* forgotten, held */
        assert_int_equal(pc_blobcache_held_out(c), 2 * unit);
        pc_blob_release(put(c, "d", 2 * unit, 'd')); /* evicts B, not held: freed, not counted */
        assert_int_equal(pc_blobcache_held_out(c), 2 * unit);
        pc_blob_release(b);
        pc_blobcache_free(c); /* c2 outlives it */
        assert_int_equal(c2->data[unit - 1], 'c');
        pc_blob_release(c2); /* ASan: nothing leaks, nothing is freed twice */
    }
}

static void forget_prefix_drops_one_video(void **state)
{
    (void)state;
    pc_blobcache *c = pc_blobcache_new(1 << 20, 1 << 20);
    char key[64];
    for (int i = 0; i < 200; i++) { /* enough to grow the table */
        snprintf(key, sizeof(key), "/media/%s/seg%d", i % 2 ? "v1" : "v2", i);
        pc_blob_release(put(c, key, 10, 'x'));
    }
    assert_int_equal(pc_blobcache_forget_prefix(c, "/media/v1/", 10), 100);
    assert_false(has(c, "/media/v1/seg1"));
    assert_true(has(c, "/media/v2/seg0"));
    pc_blobcache_stats st;
    pc_blobcache_get_stats(c, &st);
    assert_int_equal(st.entries, 100);
    assert_int_equal(st.bytes, 1000);
    pc_blobcache_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(stored_bytes_and_aux_come_back),
        cmocka_unit_test(least_recently_used_goes_first_and_budget_holds),
        cmocka_unit_test(blob_larger_than_the_limit_is_refused),
        cmocka_unit_test(evicted_blob_stays_valid_for_its_holder),
        cmocka_unit_test(forget_prefix_drops_one_video),
        cmocka_unit_test(blobs_held_out_of_the_index_are_counted),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
