#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/base.h"
#include "store/internal.h"
#include "tests/store/fixture.h"

TestSuite(store_cert, .init = fixture_init, .fini = fixture_fini);

static struct store_batch *batch_new(void)
{
    struct store_batch *b = calloc(1, sizeof(*b));
    cr_assert_not_null(b);
    return b;
}

/* add_certs appends `num` certificates numbered from `first`, alternating two users/pools. */
static void add_certs(struct store_batch *b, uint32_t first, uint32_t num)
{
    for (uint32_t i = 0; i < num; i++) {
        struct store_cert_meta m;
        uint32_t n = first + i;
        make_meta(&m, n % 2 ? "sip:bob@example.com" : "sip:alice@example.com",
                  n % 2 ? "pool-b" : "pool-a", n);
        cr_assert_eq(store_batch_add_cert(b, &m, fixture_der, 100 + n % 900), 0);
    }
}

static void expect_cert(struct store *st, uint32_t n)
{
    struct store_cert_meta want, got;
    make_meta(&want, n % 2 ? "sip:bob@example.com" : "sip:alice@example.com",
              n % 2 ? "pool-b" : "pool-a", n);
    uint8_t der[STORE_CERT_DER_MAX];
    size_t len = 0;
    cr_assert_eq(store_cert_get(st, &got, der, sizeof(der), &len, want.serial), 0, "cert %u", n);
    cr_assert_eq(len, 100 + n % 900);
    cr_assert_eq(memcmp(der, fixture_der, len), 0);
    cr_assert_str_eq(got.uri, want.uri);
    cr_assert_str_eq(got.pool, want.pool);
    cr_assert_str_eq(got.device_id, want.device_id);
    cr_assert_eq(got.not_after_s, want.not_after_s);
    cr_assert_geq(got.seq, 1);
}

Test(store_cert, commit_get_count)
{
    struct store_batch *b = batch_new();
    add_certs(b, 0, 10);
    cr_assert_eq(store_batch_commit(g_st, b), 0);
    cr_assert_eq(b->num_items, 0, "cleared");
    for (uint32_t i = 0; i < 10; i++) {
        cr_assert_eq(b->items[i].meta.seq, i + 1, "seq set");
        expect_cert(g_st, i);
    }
    uint64_t count = 0;
    cr_assert_eq(store_cert_count(g_st, &count), 0);
    cr_assert_eq(count, 10);
    struct store_cert_meta m;
    make_meta(&m, "x", "y", 12345);
    uint8_t der[STORE_CERT_DER_MAX];
    size_t len = 0;
    cr_assert_eq(store_cert_get(g_st, &m, der, sizeof(der), &len, m.serial), -ENOENT);
    make_meta(&m, "x", "y", 5);
    cr_assert_eq(store_cert_get(g_st, &m, der, 10, &len, m.serial), -E2BIG);
    free(b);
}

/* data_ahead returns how far data.mdb extends past LMDB's last page. */
static int64_t data_ahead(void)
{
    char path[400];
    snprintf(path, sizeof(path), "%s/data.mdb", g_env);
    struct stat sb;
    cr_assert_eq(stat(path, &sb), 0);
    MDB_envinfo info;
    MDB_stat ms;
    cr_assert_eq(mdb_env_info(g_st->env, &info), 0);
    cr_assert_eq(mdb_env_stat(g_st->env, &ms), 0);
    return (int64_t)sb.st_size - (int64_t)(info.me_last_pgno + 1) * ms.ms_psize;
}

Test(store_cert, data_file_written_ahead)
{
    struct store_batch *b = batch_new();
    for (uint32_t c = 0; c < 40; c++) { /* ~4 MiB: the file is extended more than once */
        add_certs(b, c * 100, 100);
        cr_assert_eq(store_batch_commit(g_st, b), 0);
        int64_t ahead = data_ahead();
        /* extended before each commit to >= 256 KiB ahead; a commit of 100 adds < 128 KiB */
        cr_assert_geq(ahead, 128 << 10, "commit %u: %lld bytes past the last page", c,
                      (long long)ahead);
        cr_assert_leq(ahead, 1 << 20, "commit %u: %lld", c, (long long)ahead);
    }
    store_close(g_st);
    g_st = fixture_open(0, false);
    for (uint32_t i = 0; i < 4000; i += 37) {
        expect_cert(g_st, i);
    }
    uint64_t count = 0;
    cr_assert_eq(store_cert_count(g_st, &count), 0);
    cr_assert_eq(count, 4000);
    free(b);
}

struct seen {
    size_t num;
    uint64_t seq[4096];
    char uri[STORE_URI_MAX + 1];
};

static int collect(void *ctx, const struct store_cert_meta *meta, const uint8_t *der,
                   size_t der_len)
{
    struct seen *s = ctx;
    cr_assert_str_eq(meta->uri, s->uri);
    cr_assert_eq(memcmp(der, fixture_der, der_len), 0);
    cr_assert_lt(s->num, ARRAY_LEN(s->seq));
    s->seq[s->num++] = meta->seq;
    return 0;
}

Test(store_cert, foreach_by_uri_oldest_first)
{
    struct store_batch *b = batch_new();
    add_certs(b, 0, 6);
    cr_assert_eq(store_batch_commit(g_st, b), 0);
    add_certs(b, 6, 6);
    cr_assert_eq(store_batch_commit(g_st, b), 0);
    struct seen s = {.num = 0};
    strcpy(s.uri, "sip:bob@example.com");
    cr_assert_eq(store_cert_foreach_by_uri(g_st, s.uri, collect, &s), 0);
    cr_assert_eq(s.num, 6);
    for (size_t i = 1; i < s.num; i++) {
        cr_assert_lt(s.seq[i - 1], s.seq[i]);
    }
    struct seen none = {.num = 0};
    strcpy(none.uri, "sip:nobody@example.com");
    cr_assert_eq(store_cert_foreach_by_uri(g_st, none.uri, collect, &none), 0);
    cr_assert_eq(none.num, 0);
    free(b);
}

static int collect_any(void *ctx, const struct store_cert_meta *meta, const uint8_t *der,
                       size_t der_len)
{
    struct seen *s = ctx;
    cr_assert_eq(memcmp(der, fixture_der, der_len), 0);
    if (s->num == 5) {
        return 7; /* the caller's bound stops the walk */
    }
    s->seq[s->num++] = meta->seq;
    return 0;
}

Test(store_cert, foreach_newest_newest_first_and_stops)
{
    struct seen empty = {.num = 0};
    cr_assert_eq(store_cert_foreach_newest(g_st, collect_any, &empty), 0);
    cr_assert_eq(empty.num, 0);
    struct store_batch *b = batch_new();
    add_certs(b, 0, 3);
    cr_assert_eq(store_batch_commit(g_st, b), 0);
    struct seen s = {.num = 0};
    cr_assert_eq(store_cert_foreach_newest(g_st, collect_any, &s), 0);
    cr_assert_eq(s.num, 3);
    add_certs(b, 3, 6);
    cr_assert_eq(store_batch_commit(g_st, b), 0);
    s.num = 0;
    cr_assert_eq(store_cert_foreach_newest(g_st, collect_any, &s), 7, "fn's return stops it");
    cr_assert_eq(s.num, 5);
    for (size_t i = 1; i < s.num; i++) {
        cr_assert_gt(s.seq[i - 1], s.seq[i], "newest first");
    }
    cr_assert_eq(s.seq[0], 9);
    free(b);
}

static void expect_count(struct store *st, uint64_t want)
{
    uint64_t count = 99;
    cr_assert_eq(store_cert_count(st, &count), 0);
    cr_assert_eq(count, want);
}

/* expect_by_uri checks that alice's and bob's listings hold exactly their certificates among
 * 0..num-1 (even: alice, odd: bob), oldest first, whatever part of them is in the index and
 * whatever part in the tail. */
static void expect_by_uri(struct store *st, uint32_t num)
{
    const char *uris[2] = {"sip:alice@example.com", "sip:bob@example.com"};
    for (size_t u = 0; u < 2; u++) {
        struct seen s = {.num = 0};
        strcpy(s.uri, uris[u]);
        cr_assert_eq(store_cert_foreach_by_uri(st, s.uri, collect, &s), 0);
        cr_assert_eq(s.num, (num + 1 - u) / 2, "%s after %u certificates", s.uri, num);
        for (size_t i = 1; i < s.num; i++) {
            cr_assert_lt(s.seq[i - 1], s.seq[i], "oldest first, each once");
        }
    }
}

/* reopen_with_tail reopens g_st with index_tail_max = `tail_max`. */
static void reopen_with_tail(uint32_t tail_max)
{
    store_close(g_st);
    struct store_options opt = {.path = g_env, .index_tail_max = tail_max};
    cr_assert_eq(store_open(&g_st, &opt), 0);
}

static struct store_index_state index_state(struct store *st)
{
    MDB_txn *txn = NULL;
    struct store_index_state ix;
    cr_assert_eq(store_txn_begin(st, &txn, false), 0);
    cr_assert_eq(store_index_get(st, txn, &ix), 0);
    mdb_txn_abort(txn);
    return ix;
}

static uint64_t index_upto(struct store *st)
{
    return index_state(st).upto;
}

/* The indexes are written in bulk, one slice of the key space per commit, once the tail is
 * longer than index_tail_max; listings and lookups by serial are complete and in order at
 * every step (before, during and after a segment is indexed), across a reopen and read-only. */
Test(store_cert, indexes_in_bulk_slice_by_slice)
{
    reopen_with_tail(5);
    struct store_batch *b = batch_new();
    uint32_t n = 0;
    bool mid = false;
    uint64_t done = 0;
    for (uint32_t round = 0; round < 264; round++) { /* segments of 6-8 begin and end */
        uint32_t k = 1 + round % 3;
        add_certs(b, n, k);
        cr_assert_eq(store_batch_commit(g_st, b), 0);
        n += k;
        struct store_index_state ix = index_state(g_st);
        mid = mid || ix.progress > 0;
        done = ix.upto > done ? ix.upto : done;
        cr_assert(ix.target == 0 || ix.target <= n);
        expect_by_uri(g_st, n);
        for (uint32_t i = 0; i < n; i++) {
            expect_cert(g_st, i);
        }
    }
    cr_assert(mid, "seen in the middle of a segment");
    cr_assert_geq(done, 6, "a segment was indexed completely");
    cr_assert_lt(index_upto(g_st), n, "and some certificates are in the tail now");
    store_close(g_st);
    g_st = fixture_open(0, true);
    expect_by_uri(g_st, n);
    expect_cert(g_st, 0);
    expect_cert(g_st, n - 1);
    store_close(g_st);
    g_st = fixture_open(0, false);
    expect_by_uri(g_st, n);
    free(b);
}

/* An environment without index state (from before it) gets its indexes rebuilt from the
 * certificate table when opened for writing; read-only, it is scanned. Made here by removing
 * the state and emptying both indexes. */
Test(store_cert, index_slices_paced_by_the_next_tail)
{
    const uint32_t pace = 1;
    reopen_with_tail(pace * STORE_INDEX_SLICES); /* a slice per certificate after the segment */
    const uint32_t tail = pace * STORE_INDEX_SLICES;
    struct store_batch *b = batch_new();
    uint64_t target = 0; /* of the segment being indexed, 0 between segments */
    uint64_t last_progress = 0;
    unsigned completed = 0;
    uint32_t n = 0;
    while (completed < 2 || target == 0) { /* bounded: a segment ends every ~2 x tail */
        cr_assert_lt(n, 10 * tail);
        n++; /* one certificate a commit: seq n */
        add_certs(b, n - 1, 1);
        cr_assert_eq(store_batch_commit(g_st, b), 0);
        struct store_index_state ix = index_state(g_st);
        if (ix.target != 0 && ix.target != target) {
            cr_assert_gt(n - ix.upto, tail, "a segment starts when the tail passes index_tail_max");
            cr_assert_eq(ix.target, n);
            cr_assert_eq(ix.progress, 1, "its first slice at once");
            target = ix.target;
        } else if (ix.target != 0) {
            cr_assert(ix.progress == last_progress || ix.progress == last_progress + 1);
            /* slice k (progress k + 1) when k x pace certificates followed the segment */
            cr_assert_eq(n - target >= last_progress * pace, ix.progress == last_progress + 1,
                         "n %u progress %llu", n, (unsigned long long)ix.progress);
        } else if (target != 0) {
            cr_assert_eq(ix.upto, target);
            cr_assert_eq(n - target, (STORE_INDEX_SLICES - 1) * pace,
                         "done while the next tail grows");
            target = 0;
            completed++;
        }
        last_progress = ix.progress;
    }
    for (uint32_t i = 0; i < n; i++) {
        expect_cert(g_st, i);
    }
    free(b);
}

/* spread is 15 bits of n, hashed (murmur3's finaliser): uniform over the serial key space. */
static uint32_t spread(uint32_t n)
{
    n ^= n >> 16;
    n *= 0x85ebca6bu;
    n ^= n >> 13;
    n *= 0xc2b2ae35u;
    n ^= n >> 16;
    return n & 0x7fffu;
}

/* spread_meta makes certificate n of add_spread_certs: its serial spread over the serial key
 * space (its first 15 bits: spread(n)), its user its own. */
static void spread_meta(struct store_cert_meta *m, uint32_t n)
{
    char uri[64];
    snprintf(uri, sizeof(uri), "sip:u%u@example.com", n);
    make_meta(m, uri, "pool-a", n);
    uint32_t p = spread(n);
    m->serial[0] = (uint8_t)(p >> 8);
    m->serial[1] = (uint8_t)p;
}

/* add_spread_certs appends `num` certificates numbered from `first` (spread_meta), so that
 * every index slice of a segment of them holds about as many entries. */
static void add_spread_certs(struct store_batch *b, uint32_t first, uint32_t num)
{
    for (uint32_t i = 0; i < num; i++) {
        struct store_cert_meta m;
        spread_meta(&m, first + i);
        cr_assert_eq(store_batch_add_cert(b, &m, fixture_der, 100), 0);
    }
}

/* expect_spread_cert finds certificate n of add_spread_certs by its serial. */
static void expect_spread_cert(struct store *st, uint32_t n)
{
    struct store_cert_meta want, got;
    spread_meta(&want, n);
    uint8_t der[STORE_CERT_DER_MAX];
    size_t len = 0;
    cr_assert_eq(store_cert_get(st, &got, der, sizeof(der), &len, want.serial), 0, "cert %u", n);
    cr_assert_str_eq(got.uri, want.uri);
}

/* index_entries reads how many entries the serial and by-user indexes hold. */
static void index_entries(struct store *st, size_t *out_serials, size_t *out_byuser)
{
    MDB_txn *txn = NULL;
    MDB_stat s;
    cr_assert_eq(store_txn_begin(st, &txn, false), 0);
    cr_assert_eq(mdb_stat(txn, st->serials, &s), 0);
    *out_serials = s.ms_entries;
    cr_assert_eq(mdb_stat(txn, st->byuser, &s), 0);
    *out_byuser = s.ms_entries;
    mdb_txn_abort(txn);
}

/* At a moderate rate (a few certificates a commit), a segment is indexed a little at each
 * commit: no commit puts more than 1/256 of its segment into either index. Each such commit is a
 * group of enrollments that waits for it: a slice of 512 entries (1/128 of the default tail, in
 * each index) made 4 ms commits among 0.2 ms ones at 8,500 enrollments/s (2026-12-06). */
Test(store_cert, a_trickle_indexes_a_small_share_of_its_segment_at_each_commit)
{
    const uint32_t tail = 16384;
    const uint32_t per_commit = 16;
    reopen_with_tail(tail);
    struct store_batch *b = batch_new();
    size_t serials = 0;
    size_t byuser = 0;
    size_t most_serials = 0;
    size_t most_byuser = 0;
    uint32_t n = 0;
    while (index_upto(g_st) == 0) { /* bounded: the first segment ends by about twice the tail */
        cr_assert_lt(n, 3 * tail);
        add_spread_certs(b, n, per_commit);
        n += per_commit;
        cr_assert_eq(store_batch_commit(g_st, b), 0);
        size_t s = 0;
        size_t u = 0;
        index_entries(g_st, &s, &u);
        most_serials = s - serials > most_serials ? s - serials : most_serials;
        most_byuser = u - byuser > most_byuser ? u - byuser : most_byuser;
        serials = s;
        byuser = u;
    }
    cr_assert_gt(index_upto(g_st), tail, "a whole segment was indexed");
    cr_assert_eq(serials, index_upto(g_st), "every certificate up to the watermark is indexed");
    cr_assert_leq(most_serials, tail / 256, "a commit put %zu serials into the index",
                  most_serials);
    cr_assert_leq(most_byuser, tail / 256, "a commit put %zu users' entries into the index",
                  most_byuser);
    for (uint32_t i = 0; i < n; i += 97) {
        expect_spread_cert(g_st, i);
    }
    expect_spread_cert(g_st, n - 1);
    free(b);
}

/* Under load (full batches), the slices keep pace with the certificates that follow the segment
 * instead of one slice a commit: the tail after the indexed certificates stays within about
 * twice index_tail_max (the tail set that checks serial clashes is sized by it, and lookups by
 * serial scan the tail). */
Test(store_cert, full_batches_index_their_segment_within_the_next_tail)
{
    const uint32_t tail = 2048;
    reopen_with_tail(tail);
    struct store_batch *b = batch_new();
    uint32_t n = 0;
    unsigned completed = 0;
    uint64_t upto = 0;
    while (completed < 3) {
        cr_assert_lt(n, 40 * tail);
        add_spread_certs(b, n, STORE_BATCH_MAX);
        n += STORE_BATCH_MAX;
        cr_assert_eq(store_batch_commit(g_st, b), 0);
        uint64_t u = index_upto(g_st);
        cr_assert_leq(n - u, 2 * tail + 2 * STORE_BATCH_MAX,
                      "%llu certificates after the watermark, %u stored",
                      (unsigned long long)(n - u), n);
        completed += u != upto;
        upto = u;
    }
    for (uint32_t i = 0; i < n; i += 89) {
        expect_spread_cert(g_st, i);
    }
    free(b);
}

/* put_index_state writes a raw meta "index" value (for states of other versions). */
static void put_index_state(const uint8_t *v, size_t len)
{
    MDB_txn *txn = NULL;
    cr_assert_eq(store_txn_begin(g_st, &txn, true), 0);
    MDB_val key = {.mv_size = strlen(STORE_META_INDEX), .mv_data = STORE_META_INDEX};
    MDB_val val = {.mv_size = len, .mv_data = (void *)(uintptr_t)v};
    cr_assert_eq(mdb_put(txn, g_st->meta, &key, &val, 0), 0);
    cr_assert_eq(mdb_txn_commit(txn), 0);
}

/* An environment whose index state was written with 16 slices and no slice count (up to
 * 2026-12-01), reopened in the middle of a segment: its progress counts in sixteenths. */
Test(store_cert, index_state_of_sixteen_slices_converted)
{
    const uint32_t tail = STORE_INDEX_SLICES;
    reopen_with_tail(tail);
    struct store_batch *b = batch_new();
    uint32_t n = 0;
    /* a segment starts at certificate tail + 1, (0, tail + 1], and each certificate after it
     * brings a slice */
    const uint32_t per_v1 = STORE_INDEX_SLICES / STORE_INDEX_SLICES_V1;
    for (; n < tail + per_v1; n++) {
        add_certs(b, n, 1);
        cr_assert_eq(store_batch_commit(g_st, b), 0);
    }
    struct store_index_state ix = index_state(g_st);
    cr_assert_eq(ix.target, tail + 1);
    cr_assert_eq(ix.progress, per_v1, "the first sixteenth of each key order is indexed");
    /* Write the state as the 16-slice version did for the same point: 3 x u64, progress 1. */
    uint8_t v1[24];
    store_seq_encode(v1, ix.upto);
    store_seq_encode(v1 + 8, ix.target);
    store_seq_encode(v1 + 16, 1);
    put_index_state(v1, sizeof(v1));
    ix = index_state(g_st);
    cr_assert_eq(ix.progress, per_v1, "converted");
    cr_assert_eq(ix.target, tail + 1);
    for (; n < 2 * tail + 8; n++) { /* the segment completes in the new slices */
        add_certs(b, n, 1);
        cr_assert_eq(store_batch_commit(g_st, b), 0);
    }
    ix = index_state(g_st);
    cr_assert_geq(ix.upto, tail + 1);
    for (uint32_t i = 0; i < n; i++) {
        expect_cert(g_st, i);
    }
    expect_by_uri(g_st, n);
    add_certs(b, 3, 1);
    cr_assert_eq(store_batch_commit(g_st, b), -EEXIST, "an indexed serial is still taken");
    free(b);
}

Test(store_cert, index_state_slice_counts)
{
    uint8_t v[32];
    store_seq_encode(v, 10);
    store_seq_encode(v + 8, 20);
    store_seq_encode(v + 16, 3);
    store_seq_encode(v + 24, STORE_INDEX_SLICES / 2); /* a version with half the slices */
    put_index_state(v, sizeof(v));
    struct store_index_state ix = index_state(g_st);
    cr_assert_eq(ix.upto, 10);
    cr_assert_eq(ix.target, 20);
    cr_assert_eq(ix.progress, 6);
    store_seq_encode(v + 24, 3); /* not a divisor: refused, never guessed */
    put_index_state(v, sizeof(v));
    MDB_txn *txn = NULL;
    cr_assert_eq(store_txn_begin(g_st, &txn, false), 0);
    cr_assert_eq(store_index_get(g_st, txn, &ix), -EPROTO);
    mdb_txn_abort(txn);
}

Test(store_cert, tail_longer_than_its_bound)
{
    /* An environment written with a long tail, reopened with a short index_tail_max: the tail's
     * serial set grows instead of overflowing, and clashes are still found. */
    reopen_with_tail(20000);
    struct store_batch *b = batch_new();
    for (uint32_t n = 0; n < 9000; n += 250) {
        add_certs(b, n, 250);
        cr_assert_eq(store_batch_commit(g_st, b), 0);
    }
    reopen_with_tail(2); /* its set starts with room for 2048 */
    add_certs(b, 9000, 1);
    cr_assert_eq(store_batch_commit(g_st, b), 0);
    add_certs(b, 17, 1); /* in the tail */
    cr_assert_eq(store_batch_commit(g_st, b), -EEXIST);
    cr_assert_eq(b->items[0].rc, -EEXIST);
    store_batch_clear(b);
    for (uint32_t i = 0; i <= 9000; i += 97) {
        expect_cert(g_st, i);
    }
    free(b);
}

Test(store_cert, index_state_missing_rebuilds)
{
    reopen_with_tail(2);
    struct store_batch *b = batch_new();
    const uint32_t num = 396; /* segments complete on the way */
    for (uint32_t i = 0; i < num; i += 3) {
        add_certs(b, i, 3);
        cr_assert_eq(store_batch_commit(g_st, b), 0);
    }
    cr_assert_gt(index_upto(g_st), 0);
    MDB_txn *txn = NULL;
    cr_assert_eq(store_txn_begin(g_st, &txn, true), 0);
    MDB_val key = {.mv_size = strlen(STORE_META_INDEX), .mv_data = STORE_META_INDEX};
    cr_assert_eq(mdb_del(txn, g_st->meta, &key, NULL), 0);
    cr_assert_eq(mdb_drop(txn, g_st->serials, 0), 0);
    cr_assert_eq(mdb_drop(txn, g_st->byuser, 0), 0);
    cr_assert_eq(store_txn_commit(g_st, txn), 0);
    store_close(g_st);
    g_st = fixture_open(0, true);
    cr_assert_eq(index_upto(g_st), 0, "read-only: everything is scanned");
    expect_by_uri(g_st, num);
    expect_cert(g_st, 4);
    store_close(g_st);
    g_st = fixture_open(0, false);
    cr_assert_eq(index_upto(g_st), num, "rebuilt at the writable open");
    expect_by_uri(g_st, num);
    for (uint32_t i = 0; i < num; i++) {
        expect_cert(g_st, i);
    }
    add_certs(b, 0, 1);
    cr_assert_eq(store_batch_commit(g_st, b), -EEXIST, "the rebuilt serial index is used");
    free(b);
}

/* expect_clashes commits the given certificates again, each in a batch with a new one: each
 * commit is refused for the old one only. */
static void expect_clashes(struct store_batch *b, const uint32_t *taken, size_t num,
                           const char *what)
{
    for (size_t k = 0; k < num; k++) {
        add_certs(b, 90000 + (uint32_t)k, 1);
        add_certs(b, taken[k], 1);
        cr_assert_eq(store_batch_commit(g_st, b), -EEXIST, "%s: %u", what, taken[k]);
        cr_assert_eq(b->items[0].rc, 0);
        cr_assert_eq(b->items[1].rc, -EEXIST, "%s: the serial of %u", what, taken[k]);
        store_batch_clear(b);
    }
}

/* child_commits commits `num` certificates numbered from `first` from another process (a
 * handle of its own on the environment, index_tail_max `tail_max`), and waits for it. */
static void child_commits(uint32_t tail_max, uint32_t first, uint32_t num)
{
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) { /* the child never touches the parent's handle */
        struct store *st = NULL;
        struct store_options opt = {.path = g_env, .index_tail_max = tail_max};
        static struct store_batch cb;
        add_certs(&cb, first, num);
        int rc = store_open(&st, &opt) == 0 ? store_batch_commit(st, &cb) : -1;
        _exit(rc == 0 ? 0 : 3);
    }
    int status = 0;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d", status);
}

/* A serial is refused whether its certificate is in the serial index or still in the tail, and
 * also when it repeats inside one batch; both kinds are found by serial. */
Test(store_cert, serial_clash_in_index_tail_and_batch)
{
    reopen_with_tail(2);
    struct store_batch *b = batch_new();
    add_certs(b, 0, 3); /* a tail of 3 > 2: the segment 1..3 is indexed as 2 more follow */
    cr_assert_eq(store_batch_commit(g_st, b), 0);
    for (uint32_t i = 3; i < 3 + 128; i++) {
        add_certs(b, i, 1);
        cr_assert_eq(store_batch_commit(g_st, b), 0);
    }
    uint32_t n = 3 + 128;
    cr_assert_geq(index_upto(g_st), 3, "certificates 0..2 are indexed");
    cr_assert_lt(index_upto(g_st), n, "the last one is in the tail");
    for (uint32_t i = 0; i < n; i++) {
        expect_cert(g_st, i);
    }
    uint32_t taken[2] = {1, n - 1}; /* indexed, tail */
    expect_clashes(b, taken, ARRAY_LEN(taken), "indexed, tail");
    add_certs(b, n + 101, 1);
    add_certs(b, n + 101, 1);
    cr_assert_eq(store_batch_commit(g_st, b), -EEXIST, "twice in one batch");
    cr_assert_eq(b->items[0].rc, 0);
    cr_assert_eq(b->items[1].rc, -EEXIST);
    store_batch_clear(b);
    add_certs(b, n + 100, 2); /* the serials of the refused batches were never stored */
    cr_assert_eq(store_batch_commit(g_st, b), 0);
    expect_count(g_st, n + 2);
    expect_cert(g_st, n + 100);
    expect_cert(g_st, n + 101);
    free(b);
}

/* Another process commits and indexes (its index steps move the watermark past its
 * certificates): this handle's filter of the indexed serials is stale then, and must be rebuilt
 * from the index, not trusted, or the clash check would skip the tree for that serial. */
Test(store_cert, serial_clash_with_what_another_process_indexed)
{
    struct store_batch *b = batch_new();
    add_certs(b, 0, 2);
    cr_assert_eq(store_batch_commit(g_st, b), 0); /* this handle's filter is built */
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        struct store *st = NULL;
        struct store_options opt = {.path = g_env, .index_tail_max = STORE_INDEX_SLICES};
        static struct store_batch cb;
        if (store_open(&st, &opt) != 0) {
            _exit(3);
        }
        for (uint32_t n = 100; n < 100 + 4 * STORE_INDEX_SLICES; n++) { /* a slice per commit */
            store_batch_clear(&cb);
            add_certs(&cb, n, 1);
            if (store_batch_commit(st, &cb) != 0) {
                _exit(4);
            }
        }
        store_close(st);
        _exit(0);
    }
    int status = 0;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d", status);
    struct store_cert_meta m;
    uint8_t der[STORE_CERT_DER_MAX];
    size_t len = 0;
    make_meta(&m, "sip:alice@example.com", "pool-a", 100);
    cr_assert_eq(store_cert_get(g_st, &m, der, sizeof(der), &len, m.serial), 0);
    cr_assert_gt(index_upto(g_st), m.seq, "the child indexed its first certificate");
    store_batch_clear(b);
    add_certs(b, 100, 1);
    cr_assert_eq(store_batch_commit(g_st, b), -EEXIST, "a serial the other process indexed");
    store_batch_clear(b);
    add_certs(b, 100000, 1);
    cr_assert_eq(store_batch_commit(g_st, b), 0);
    free(b);
}

/* When this handle has indexed a segment, its set of the tail's serials drops that segment's in
 * memory (no scan): the first check after each of two segments still refuses the oldest and the
 * newest serial of the tail and the newest indexed one, and takes a new one. */
Test(store_cert, serial_clash_after_the_tail_set_moved_past_a_segment)
{
    reopen_with_tail(STORE_INDEX_SLICES); /* a slice per certificate after the segment */
    struct store_batch *b = batch_new();
    uint32_t n = 0;
    uint64_t upto = 0;
    for (unsigned segments = 0; segments < 2;) { /* bounded: a segment ends every ~2 x tail */
        cr_assert_lt(n, 20 * STORE_INDEX_SLICES);
        add_certs(b, n++, 1);
        cr_assert_eq(store_batch_commit(g_st, b), 0);
        uint64_t now_upto = index_upto(g_st);
        if (now_upto == upto) {
            continue;
        }
        upto = now_upto;
        segments++;
        add_certs(b, n++, 1); /* this commit moves the set to the new watermark */
        cr_assert_eq(store_batch_commit(g_st, b), 0);
        cr_assert_eq(index_upto(g_st), upto);
        cr_assert_gt(n, upto + 1, "a tail after the watermark");
        /* certificate k has seq k + 1: the tail is k = upto .. n - 1 */
        add_certs(b, 10000 + n, 1);
        add_certs(b, (uint32_t)upto, 1);     /* the oldest of the tail */
        add_certs(b, n - 1, 1);              /* the newest */
        add_certs(b, (uint32_t)upto - 1, 1); /* the newest indexed */
        cr_assert_eq(store_batch_commit(g_st, b), -EEXIST);
        cr_assert_eq(b->items[0].rc, 0);
        cr_assert_eq(b->items[1].rc, -EEXIST, "oldest of the tail, segment %u", segments);
        cr_assert_eq(b->items[2].rc, -EEXIST, "newest of the tail, segment %u", segments);
        cr_assert_eq(b->items[3].rc, -EEXIST, "newest indexed, segment %u", segments);
        store_batch_clear(b);
    }
    expect_count(g_st, n);
    for (uint32_t i = 0; i < n; i++) {
        expect_cert(g_st, i);
    }
    free(b);
}

/* add_scrambled appends the nth certificate of a test whose serials come in no order, as real
 * ones do: their first byte (the key order's and the slices') is not n's order. */
static void add_scrambled(struct store_batch *b, uint32_t n)
{
    uint32_t x = (n * 40503u) & 0xffffu; /* a bijection of 0..65535 */
    struct store_cert_meta m;
    make_meta(&m, x % 2 ? "sip:bob@example.com" : "sip:alice@example.com", "pool-a", x);
    m.serial[0] = (uint8_t)(x % 128u);
    cr_assert_eq(store_batch_add_cert(b, &m, fixture_der, 100), 0);
}

/* probe_indexed commits `k` indexed certificates again (scrambled, the next after *next, below
 * `upto`, round): the commit is refused and each item of it with it. */
static void probe_indexed(struct store_batch *b, uint32_t *next, uint64_t upto, uint32_t k,
                          const char *what)
{
    for (uint32_t i = 0; i < k; i++) {
        add_scrambled(b, (uint32_t)((*next + i) % upto));
    }
    cr_assert_eq(store_batch_commit(g_st, b), -EEXIST, "%s: from %u", what, *next);
    for (uint32_t i = 0; i < k; i++) {
        cr_assert_eq(b->items[i].rc, -EEXIST, "%s: the %lluth serial", what,
                     (unsigned long long)((*next + i) % upto));
    }
    store_batch_clear(b);
    *next = (uint32_t)((*next + k) % upto);
}

/* The filter of the indexed serials is made anew by a scan of the index spread over commits,
 * when the index outgrows it and when a handle opens: at every commit of the scan and after it,
 * every indexed serial is refused (a refused commit takes a step of the scan too). Small here
 * (64 serials, then 256, 512, 1,024; 3 read a commit), the serials in no order: a step that lost
 * the key where it resumed, or a filter that missed a serial indexed during its scan, lets a
 * clash through. */
Test(store_cert, serial_clash_while_the_filter_is_made_anew)
{
    reopen_with_tail(128); /* STORE_INDEX_SLICES / 128 slices per certificate after a segment */
    store_filter_tune(g_st, 1024, 3);
    struct store_batch *b = batch_new();
    const uint32_t total = 700;
    uint32_t next = 0;
    for (uint32_t n = 0; n < total; n++) {
        add_scrambled(b, n);
        cr_assert_eq(store_batch_commit(g_st, b), 0);
        uint64_t upto = index_upto(g_st);
        if (upto >= 64) {
            probe_indexed(b, &next, upto, 24, "growing");
        }
    }
    uint64_t upto = index_upto(g_st);
    cr_assert_gt(upto, 4 * 64 + 1, "the filter was outgrown twice");
    reopen_with_tail(128); /* a new handle has no filter */
    store_filter_tune(g_st, 1024, 3);
    next = 0;
    for (uint32_t i = 0; i < 3 * upto / 32 + 1; i++) { /* each serial thrice */
        probe_indexed(b, &next, upto, 32, "reopened");
    }
    add_scrambled(b, total);
    uint8_t serial[STORE_SERIAL_LEN];
    memcpy(serial, b->items[0].meta.serial, sizeof(serial));
    cr_assert_eq(store_batch_commit(g_st, b), 0);
    struct store_cert_meta m;
    uint8_t der[STORE_CERT_DER_MAX];
    size_t len = 0;
    cr_assert_eq(store_cert_get(g_st, &m, der, sizeof(der), &len, serial), 0);
    free(b);
}

/* While a segment is indexed, the tail set holds it in one generation and the certificates after
 * it in the other. Another process commits after the segment (read in by a scan), and a new
 * handle builds both generations from the records in the middle of the segment: the serials of
 * the segment, of the other process and of the newest are refused at each point, and once the
 * watermark passed the segment every certificate is found by its serial. */
Test(store_cert, serial_clash_while_a_segment_is_indexed)
{
    reopen_with_tail(STORE_INDEX_SLICES); /* a slice per certificate after the segment */
    struct store_batch *b = batch_new();
    uint32_t n = 0;
    while (index_state(g_st).target == 0) { /* bounded: a segment starts past 128 certificates */
        cr_assert_lt(n, 4 * STORE_INDEX_SLICES);
        add_certs(b, n++, 1);
        cr_assert_eq(store_batch_commit(g_st, b), 0);
    }
    struct store_index_state ix = index_state(g_st);
    cr_assert_eq(ix.target, n, "the segment is every certificate so far (seq k + 1 is k)");
    for (int i = 0; i < 3; i++) { /* a few slices in */
        add_certs(b, n++, 1);
        cr_assert_eq(store_batch_commit(g_st, b), 0);
    }
    child_commits(STORE_INDEX_SLICES, 5000, 3);
    cr_assert_eq(index_state(g_st).target, ix.target, "still the same segment");
    uint32_t taken[] = {0, (uint32_t)ix.target - 1, (uint32_t)ix.target, n - 1, 5000, 5002};
    expect_clashes(b, taken, ARRAY_LEN(taken), "after the other process");
    add_certs(b, n++, 1);
    cr_assert_eq(store_batch_commit(g_st, b), 0);
    reopen_with_tail(STORE_INDEX_SLICES); /* a new handle in the middle of the segment */
    cr_assert_eq(index_state(g_st).target, ix.target, "still the same segment");
    taken[3] = n - 1;
    expect_clashes(b, taken, ARRAY_LEN(taken), "a new handle");
    while (index_upto(g_st) < ix.target) { /* bounded: a slice per certificate */
        cr_assert_lt(n, 8 * STORE_INDEX_SLICES);
        add_certs(b, n++, 1);
        cr_assert_eq(store_batch_commit(g_st, b), 0);
    }
    taken[3] = n - 1;
    expect_clashes(b, taken, ARRAY_LEN(taken), "the segment indexed");
    expect_count(g_st, n + 3);
    for (uint32_t i = 0; i < n; i++) {
        expect_cert(g_st, i);
    }
    for (uint32_t i = 5000; i < 5003; i++) {
        expect_cert(g_st, i);
    }
    free(b);
}

/* Another process (certprovctl beside certprovd) commits into the tail: the clash check of this
 * handle still sees its serial. */
Test(store_cert, serial_clash_with_another_process)
{
    struct store_batch *b = batch_new();
    add_certs(b, 0, 2);
    cr_assert_eq(store_batch_commit(g_st, b), 0); /* this handle's tail set is built */
    child_commits(0, 7, 1);                       /* 0: the default tail */
    add_certs(b, 7, 1);
    cr_assert_eq(store_batch_commit(g_st, b), -EEXIST);
    store_batch_clear(b);
    add_certs(b, 8, 1);
    cr_assert_eq(store_batch_commit(g_st, b), 0);
    expect_count(g_st, 4);
    expect_cert(g_st, 7);
    free(b);
}

/* ---- a user's recent certificates (the per-user rate limit) ---- */

#define RECENT_T0 1800000000 /* issue time of certificate 0; each next one 10 s later */
#define RECENT_MAX 1024

/* The last two have the same FNV-1a hash (the bucket key of the tail by user). */
static const char *const recent_uris[4] = {"sip:alice@example.com", "sip:bob@example.com",
                                           "sip:c611369@example.com", "sip:c1990054@example.com"};

/* What was committed, in commit order: whose, issued when. */
struct recent_model {
    size_t num;
    uint8_t who[RECENT_MAX];
    int64_t at[RECENT_MAX];
};

static void add_recent(struct store_batch *b, struct recent_model *m, uint32_t who)
{
    cr_assert_lt(m->num, RECENT_MAX);
    struct store_cert_meta meta;
    make_meta(&meta, recent_uris[who], "pool-a", 100000 + (uint32_t)m->num);
    meta.issued_at_s = RECENT_T0 + 10 * (int64_t)m->num;
    cr_assert_eq(store_batch_add_cert(b, &meta, fixture_der, 200), 0);
    m->who[m->num] = (uint8_t)who;
    m->at[m->num] = meta.issued_at_s;
    m->num++;
}

/* expect_recent compares store_cert_recent_by_uri with the model: the user's newest first, while
 * issued at or after `since`, at most `max`. */
static void expect_recent(struct store *st, const struct recent_model *m, uint32_t who,
                          int64_t since, uint32_t max)
{
    uint32_t want = 0;
    int64_t want_last = 0;
    for (size_t i = m->num; i-- > 0 && want < max;) {
        if (m->who[i] == who && m->at[i] < since) {
            break;
        }
        if (m->who[i] == who) {
            want++;
            want_last = m->at[i];
        }
    }
    uint32_t num = 99;
    int64_t last = -1;
    cr_assert_eq(store_cert_recent_by_uri(st, recent_uris[who], since, max, &num, &last), 0);
    cr_assert_eq(num, want, "%s since %lld max %u after %zu: %u, want %u", recent_uris[who],
                 (long long)since, max, m->num, num, want);
    cr_assert_eq(last, want_last, "%s since %lld max %u after %zu", recent_uris[who],
                 (long long)since, max, m->num);
}

static void expect_recent_all(struct store *st, const struct recent_model *m)
{
    static const uint32_t maxes[] = {1, 3, 20, 100000};
    for (uint32_t who = 0; who < 4; who++) {
        int64_t sinces[] = {0, RECENT_T0 + 10 * ((int64_t)m->num - 30),
                            RECENT_T0 + 10 * (int64_t)m->num};
        for (size_t s = 0; s < ARRAY_LEN(sinces); s++) {
            for (size_t k = 0; k < ARRAY_LEN(maxes); k++) {
                expect_recent(st, m, who, sinces[s], maxes[k]);
            }
        }
    }
}

/* Counted right whatever part of a user's certificates is in the by-user index and whatever part
 * in the tail (before, during and after a segment is indexed: tail 5), with two users whose
 * URIs share a hash, after another process committed, and read-only. */
Test(store_cert, recent_by_uri_newest_first_in_the_window)
{
    reopen_with_tail(5);
    struct store_batch *b = batch_new();
    static struct recent_model m;
    static const uint8_t pattern[] = {0, 0, 1, 2, 0, 3, 3, 0, 1, 2, 2, 0, 0, 0, 1};
    uint32_t p = 0;
    for (uint32_t round = 0; round < 296; round++) {
        for (uint32_t k = 0; k < 1 + round % 3; k++) {
            add_recent(b, &m, pattern[p++ % sizeof(pattern)]);
        }
        cr_assert_eq(store_batch_commit(g_st, b), 0);
        expect_recent_all(g_st, &m);
    }
    /* Another process commits bob's: seen at the next call. */
    size_t before = m.num;
    for (uint32_t k = 0; k < 3; k++) {
        add_recent(b, &m, 1);
    }
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) { /* the child never touches the parent's handle */
        struct store *st = NULL;
        struct store_options opt = {.path = g_env, .index_tail_max = 5};
        int rc = store_open(&st, &opt) == 0 ? store_batch_commit(st, b) : -1;
        _exit(rc == 0 ? 0 : 3);
    }
    int status = 0;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d", status);
    store_batch_clear(b);
    cr_assert_eq(m.num, before + 3);
    expect_recent_all(g_st, &m);
    struct store *ro = fixture_open(0, true);
    expect_recent_all(ro, &m);
    store_close(ro);
    uint32_t num = 9;
    int64_t last = 9;
    cr_assert_eq(store_cert_recent_by_uri(g_st, "", 0, 5, &num, &last), 0);
    cr_assert_eq(num, 0);
    char longuri[STORE_URI_MAX + 2];
    memset(longuri, 'a', sizeof(longuri) - 1);
    longuri[sizeof(longuri) - 1] = '\0';
    cr_assert_eq(store_cert_recent_by_uri(g_st, longuri, 0, 5, &num, &last), 0);
    cr_assert_eq(num, 0);
    cr_assert_eq(store_cert_recent_by_uri(g_st, "sip:nobody@example.com", 0, 5, &num, &last), 0);
    cr_assert_eq(num, 0);
    cr_assert_eq(last, 0);
    free(b);
}

Test(store_cert, duplicate_serial_against_db)
{
    struct store_batch *b = batch_new();
    add_certs(b, 0, 3);
    cr_assert_eq(store_batch_commit(g_st, b), 0);
    add_certs(b, 10, 2);
    add_certs(b, 1, 1); /* clashes with the stored certificate 1 */
    add_certs(b, 12, 1);
    cr_assert_eq(store_batch_commit(g_st, b), -EEXIST);
    cr_assert_eq(b->num_items, 4, "batch kept");
    cr_assert_eq(b->items[0].rc, 0);
    cr_assert_eq(b->items[1].rc, 0);
    cr_assert_eq(b->items[2].rc, -EEXIST);
    cr_assert_eq(b->items[3].rc, 0);
    expect_count(g_st, 3);
    uint64_t depth = 0;
    int64_t oldest = 0;
    cr_assert_eq(store_outbox_depth(g_st, NULL, &depth, &oldest), 0);
    cr_assert_eq(depth, 3, "no outbox entry of the failed batch");
    /* Re-sign: a new serial, then the same batch commits. */
    b->items[2].meta.serial[15] = 0x77;
    cr_assert_eq(store_batch_commit(g_st, b), 0);
    expect_count(g_st, 7);
    expect_cert(g_st, 10);
    expect_cert(g_st, 12);
    free(b);
}

Test(store_cert, duplicate_serial_within_batch)
{
    struct store_batch *b = batch_new();
    add_certs(b, 0, 2);
    add_certs(b, 0, 1);
    add_certs(b, 3, 1);
    add_certs(b, 1, 1);
    cr_assert_eq(store_batch_commit(g_st, b), -EEXIST);
    cr_assert_eq(b->items[0].rc, 0);
    cr_assert_eq(b->items[1].rc, 0);
    cr_assert_eq(b->items[2].rc, -EEXIST);
    cr_assert_eq(b->items[3].rc, 0);
    cr_assert_eq(b->items[4].rc, -EEXIST);
    expect_count(g_st, 0);
    b->items[2].meta.serial[15] = 0x70;
    b->items[4].meta.serial[15] = 0x71;
    cr_assert_eq(store_batch_commit(g_st, b), 0);
    expect_count(g_st, 5);
    free(b);
}

Test(store_cert, batch_limits)
{
    struct store_batch *b = batch_new();
    struct store_cert_meta m;
    make_meta(&m, "sip:alice@example.com", "pool-a", 1);
    static uint8_t big[STORE_CERT_DER_MAX + 1];
    cr_assert_eq(store_batch_add_cert(b, &m, big, sizeof(big)), -E2BIG);
    cr_assert_eq(store_batch_add_cert(b, &m, big, STORE_CERT_DER_MAX), 0);
    store_batch_clear(b);
    add_certs(b, 0, STORE_BATCH_MAX);
    cr_assert_eq(store_batch_add_cert(b, &m, fixture_der, 10), -EBUSY);
    cr_assert_eq(b->num_items, STORE_BATCH_MAX);
    cr_assert_eq(store_batch_commit(g_st, b), 0);
    expect_count(g_st, STORE_BATCH_MAX);
    struct store_lockout lk = {0};
    for (size_t i = 0; i < STORE_BATCH_MAX; i++) {
        cr_assert_eq(store_batch_add_lockout(b, "sip:alice@example.com", &lk), 0);
    }
    cr_assert_eq(store_batch_add_lockout(b, "sip:alice@example.com", &lk), -EBUSY);
    store_batch_clear(b);
    memset(m.uri, 'u', sizeof(m.uri));
    cr_assert_eq(store_batch_add_cert(b, &m, fixture_der, 10), -EINVAL);
    make_meta(&m, "sip:alice@example.com", "", 1);
    cr_assert_eq(store_batch_add_cert(b, &m, fixture_der, 10), -EINVAL);
    free(b);
}

Test(store_cert, batch_lockout_updates)
{
    struct store_user u;
    make_user(&u, "sip:alice@example.com", "+4930123456", "100");
    cr_assert_eq(store_user_add(g_st, &u), 0);
    struct store_batch *b = batch_new();
    struct store_lockout lk = {.window_failures = 2, .window_start_s = 10, .total_failures = 2};
    cr_assert_eq(store_batch_add_lockout(b, "sip:alice@example.com", &lk), 0);
    cr_assert_eq(store_batch_add_lockout(b, "sip:gone@example.com", &lk), 0); /* skipped */
    add_certs(b, 0, 2);
    cr_assert_eq(store_batch_commit(g_st, b), 0);
    struct store_lockout got;
    cr_assert_eq(store_lockout_get(g_st, &got, "sip:alice@example.com"), 0);
    cr_assert_eq(got.total_failures, 2);
    cr_assert_eq(got.window_start_s, 10);
    cr_assert_eq(store_lockout_get(g_st, &got, "sip:gone@example.com"), 0);
    cr_assert_eq(got.total_failures, 0);
    /* A failed batch does not apply its lockout updates either. */
    lk.total_failures = 9;
    cr_assert_eq(store_batch_add_lockout(b, "sip:alice@example.com", &lk), 0);
    add_certs(b, 0, 1);
    cr_assert_eq(store_batch_commit(g_st, b), -EEXIST);
    cr_assert_eq(store_lockout_get(g_st, &got, "sip:alice@example.com"), 0);
    cr_assert_eq(got.total_failures, 2);
    free(b);
}

/* Failed sign-ins of no known user are counted in one decoy lockout record, written and synced
 * like a user's lockout update (the service's timing must not tell a known number from an unknown
 * one), under a key no user can take. */
Test(store_cert, batch_unknown_failures_decoy_record)
{
    uint64_t n = 99;
    cr_assert_eq(store_unknown_get(g_st, &n), 0);
    cr_assert_eq(n, 0, "none counted yet");
    struct store_batch *b = batch_new();
    cr_assert_eq(store_batch_add_unknown(b), 0);
    cr_assert_eq(store_batch_add_unknown(b), 0);
    cr_assert_eq(b->num_unknown, 2);
    cr_assert_eq(store_batch_commit(g_st, b), 0, "a batch of only unknown failures commits");
    cr_assert_eq(b->num_unknown, 0, "cleared by the commit");
    cr_assert_eq(store_unknown_get(g_st, &n), 0);
    cr_assert_eq(n, 2);
    /* With certificates and lockout updates in one transaction; added to the count. */
    struct store_user u;
    make_user(&u, "sip:alice@example.com", "+4930123456", "100");
    cr_assert_eq(store_user_add(g_st, &u), 0);
    struct store_lockout lk = {.total_failures = 1};
    cr_assert_eq(store_batch_add_lockout(b, "sip:alice@example.com", &lk), 0);
    cr_assert_eq(store_batch_add_unknown(b), 0);
    add_certs(b, 0, 2);
    cr_assert_eq(store_batch_commit(g_st, b), 0);
    cr_assert_eq(store_unknown_get(g_st, &n), 0);
    cr_assert_eq(n, 3);
    /* A failed commit counts nothing. */
    cr_assert_eq(store_batch_add_unknown(b), 0);
    add_certs(b, 0, 1);
    cr_assert_eq(store_batch_commit(g_st, b), -EEXIST);
    cr_assert_eq(store_unknown_get(g_st, &n), 0);
    cr_assert_eq(n, 3);
    store_batch_clear(b);
    cr_assert_eq(b->num_unknown, 0);
    /* Bounded like every other part of a batch. */
    for (size_t i = 0; i < STORE_BATCH_MAX; i++) {
        cr_assert_eq(store_batch_add_unknown(b), 0);
    }
    cr_assert_eq(store_batch_add_unknown(b), -EBUSY);
    cr_assert_eq(store_batch_commit(g_st, b), 0);
    cr_assert_eq(store_unknown_get(g_st, &n), 0);
    cr_assert_eq(n, 3 + STORE_BATCH_MAX);
    /* The key is reserved: no user, no user's lockout update can take it. */
    make_user(&u, STORE_UNKNOWN_KEY, "+4930999999", "");
    cr_assert_eq(store_user_add(g_st, &u), -EINVAL);
    make_user(&u, "~sip:x@example.com", "+4930999999", "");
    cr_assert_eq(store_user_add(g_st, &u), -EINVAL, "'~' starts no URI");
    cr_assert_eq(store_batch_add_lockout(b, STORE_UNKNOWN_KEY, &lk), -EINVAL);
    cr_assert_eq(store_lockout_put(g_st, STORE_UNKNOWN_KEY, &lk), -ENOENT);
    /* A read-only store writes nothing. */
    struct store *ro = fixture_open(0, true);
    cr_assert_eq(store_batch_add_unknown(b), 0);
    cr_assert_eq(store_batch_commit(ro, b), -EROFS);
    cr_assert_eq(store_unknown_get(ro, &n), 0);
    cr_assert_eq(n, 3 + STORE_BATCH_MAX);
    store_close(ro);
    free(b);
}

Test(store_cert, reopen_durability)
{
    struct store_batch *b = batch_new();
    add_certs(b, 0, 20);
    cr_assert_eq(store_batch_commit(g_st, b), 0);
    store_close(g_st);
    g_st = fixture_open(0, false);
    expect_count(g_st, 20);
    for (uint32_t i = 0; i < 20; i++) {
        expect_cert(g_st, i);
    }
    add_certs(b, 20, 1);
    cr_assert_eq(store_batch_commit(g_st, b), 0);
    cr_assert_eq(b->items[0].meta.seq, 21, "seq continues after reopen");
    free(b);
}

Test(store_cert, crash_durability)
{
    store_close(g_st); /* an environment must not be used across fork */
    g_st = NULL;
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        struct store *st = NULL;
        struct store_options opt = {.path = g_env};
        static struct store_batch b;
        if (store_open(&st, &opt) != 0) {
            _exit(2);
        }
        for (uint32_t k = 0; k < 3; k++) {
            add_certs(&b, k * 64, 64);
            if (store_batch_commit(st, &b) != 0) {
                _exit(3);
            }
        }
        kill(getpid(), SIGKILL); /* no close, no exit handlers */
        _exit(4);
    }
    int status = 0;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFSIGNALED(status), "child status %d", status);
    cr_assert_eq(WTERMSIG(status), SIGKILL);
    g_st = fixture_open(0, false);
    expect_count(g_st, 192);
    for (uint32_t i = 0; i < 192; i++) {
        expect_cert(g_st, i);
    }
    uint64_t depth = 0;
    int64_t oldest = 0;
    cr_assert_eq(store_outbox_depth(g_st, NULL, &depth, &oldest), 0);
    cr_assert_eq(depth, 192);
}

Test(store_cert, map_full_is_enospc_and_recoverable)
{
    store_close(g_st);
    g_st = fixture_open(1u << 20, false);
    struct store_batch *b = batch_new();
    int rc = 0;
    uint32_t committed = 0;
    for (uint32_t k = 0; k < 100 && rc == 0; k++) {
        add_certs(b, k * 64, 64);
        rc = store_batch_commit(g_st, b);
        if (rc == 0) {
            committed += 64;
        }
    }
    cr_assert_eq(rc, -ENOSPC);
    cr_assert_eq(b->fault, STORE_FAULT_MAP_FULL);
    cr_assert_gt(committed, 0);
    cr_assert_eq(b->num_items, 64, "batch kept on -ENOSPC");
    expect_count(g_st, committed);
    /* A batch of 64 no longer fits; the probe asks for one certificate of the largest size. */
    struct store_batch *one = batch_new();
    uint32_t singles = 0;
    for (rc = 0; rc == 0 && singles < 200; singles += rc == 0 ? 1 : 0) {
        add_certs(one, 50000 + singles, 1);
        rc = store_batch_commit(g_st, one);
    }
    cr_assert_eq(rc, -ENOSPC);
    cr_assert_eq(one->fault, STORE_FAULT_MAP_FULL);
    free(one);
    enum store_fault fault = STORE_FAULT_NONE;
    cr_assert_eq(store_probe(g_st, &fault), -ENOSPC, "no room for a certificate");
    cr_assert_eq(fault, STORE_FAULT_MAP_FULL);
    store_close(g_st);
    g_st = fixture_open(1u << 20, false);
    expect_count(g_st, committed + singles);
    expect_cert(g_st, 0);
    expect_cert(g_st, committed - 1);
    store_close(g_st);
    g_st = fixture_open(64u << 20, false); /* the action the log asks for */
    cr_assert_eq(store_probe(g_st, &fault), 0);
    cr_assert_eq(fault, STORE_FAULT_NONE);
    cr_assert_eq(store_batch_commit(g_st, b), 0);
    cr_assert_eq(b->fault, STORE_FAULT_NONE);
    expect_count(g_st, committed + singles + 64);
    free(b);
}

/* fsize_limit makes every write of this process at or past `bytes` fail with EFBIG (and
 * shortens one that crosses it), as a full quota does; SIGXFSZ is ignored so that the write
 * reports it. RLIM_INFINITY lifts it. Criterion runs each test in its own process. */
static void fsize_limit(rlim_t bytes)
{
    cr_assert_neq(signal(SIGXFSZ, SIG_IGN), SIG_ERR);
    struct rlimit rl;
    cr_assert_eq(getrlimit(RLIMIT_FSIZE, &rl), 0);
    rl.rlim_cur = bytes;
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &rl), 0);
}

/* A file system (or quota) that takes no more blocks: certificates and lockout updates alike
 * fail with -ENOSPC and STORE_FAULT_DISK_FULL, nothing is stored, and the probe fails too, until
 * there is room again; then the probe and the commit succeed. The limit sits past LMDB's two meta
 * pages, so only data pages fail to be written. */
Test(store_cert, disk_full_is_enospc_and_the_probe_sees_it_end)
{
    struct store_user u;
    make_user(&u, "sip:alice@example.com", "+4930123456", "100");
    cr_assert_eq(store_user_add(g_st, &u), 0);
    struct store_batch *b = batch_new();
    add_certs(b, 0, 4);
    cr_assert_eq(store_batch_commit(g_st, b), 0);
    enum store_fault fault = STORE_FAULT_MAX_;
    cr_assert_eq(store_probe(g_st, &fault), 0);
    cr_assert_eq(fault, STORE_FAULT_NONE);
    fsize_limit(2 * 4096);
    add_certs(b, 4, 64);
    cr_assert_eq(store_batch_commit(g_st, b), -ENOSPC);
    cr_assert_eq(b->fault, STORE_FAULT_DISK_FULL);
    cr_assert_eq(b->num_items, 64, "batch kept");
    struct store_batch *l = batch_new();
    struct store_lockout lk = {.window_failures = 1, .total_failures = 1};
    cr_assert_eq(store_batch_add_lockout(l, u.uri, &lk), 0);
    cr_assert_eq(store_batch_commit(g_st, l), -ENOSPC);
    cr_assert_eq(l->fault, STORE_FAULT_DISK_FULL);
    free(l);
    cr_assert_eq(store_probe(g_st, &fault), -ENOSPC);
    cr_assert_eq(fault, STORE_FAULT_DISK_FULL);
    expect_count(g_st, 4);
    fsize_limit(RLIM_INFINITY);
    cr_assert_eq(store_probe(g_st, &fault), 0);
    cr_assert_eq(fault, STORE_FAULT_NONE);
    cr_assert_eq(store_batch_commit(g_st, b), 0);
    cr_assert_eq(b->fault, STORE_FAULT_NONE);
    expect_count(g_st, 68);
    expect_cert(g_st, 67);
    free(b);
}

/* A write that comes up short while the file system has room (LMDB reports EIO) is an I/O
 * fault, not a full disk; the store works again once writes do. */
Test(store_cert, short_write_with_room_is_an_io_fault)
{
    struct store_batch *b = batch_new();
    add_certs(b, 0, 4);
    cr_assert_eq(store_batch_commit(g_st, b), 0);
    uint64_t used = 0;
    uint64_t map = 0;
    cr_assert_eq(store_space_get(g_st, &used, &map), 0);
    fsize_limit(used + 100); /* the first new page is written 100 bytes short */
    add_certs(b, 4, 64);
    cr_assert_eq(store_batch_commit(g_st, b), -EIO);
    cr_assert_eq(b->fault, STORE_FAULT_IO);
    fsize_limit(RLIM_INFINITY);
    cr_assert_eq(store_batch_commit(g_st, b), 0);
    expect_count(g_st, 68);
    free(b);
}

/* Once certificates no longer fit, lockout updates and unknown failures still commit, one after
 * another, for as long as it takes (the map's reserve), and certificates stay refused. */
Test(store_cert, full_map_still_takes_lockout_updates)
{
    store_close(g_st);
    g_st = fixture_open(1u << 20, false);
    struct store_user u;
    make_user(&u, "sip:alice@example.com", "+4930123456", "100");
    cr_assert_eq(store_user_add(g_st, &u), 0);
    struct store_batch *b = batch_new();
    int rc = 0;
    for (uint32_t k = 0; k < 1000 && rc == 0; k++) {
        add_certs(b, k * 8, 8);
        rc = store_batch_commit(g_st, b);
    }
    cr_assert_eq(rc, -ENOSPC);
    store_batch_clear(b);
    rc = 0;
    for (uint32_t k = 0; k < 100 && rc == 0; k++) { /* then one at a time */
        add_certs(b, 10000 + k, 1);
        rc = store_batch_commit(g_st, b);
    }
    cr_assert_eq(rc, -ENOSPC);
    store_batch_clear(b);
    for (uint32_t k = 0; k < 64; k++) { /* stays full */
        add_certs(b, 100000 + k, 1);
        cr_assert_eq(store_batch_commit(g_st, b), -ENOSPC, "certificate %u", k);
        store_batch_clear(b);
    }
    for (uint64_t k = 1; k <= 200; k++) {
        struct store_lockout lk = {.window_failures = 1, .total_failures = k};
        cr_assert_eq(store_batch_add_lockout(b, "sip:alice@example.com", &lk), 0);
        cr_assert_eq(store_batch_add_unknown(b), 0);
        cr_assert_eq(store_batch_commit(g_st, b), 0, "lockout-only commit %llu",
                     (unsigned long long)k);
        if (k % 50 == 0) {
            add_certs(b, 200000 + (uint32_t)k, 1);
            cr_assert_eq(store_batch_commit(g_st, b), -ENOSPC);
            store_batch_clear(b);
        }
    }
    struct store_lockout got;
    cr_assert_eq(store_lockout_get(g_st, &got, "sip:alice@example.com"), 0);
    cr_assert_eq(got.total_failures, 200);
    uint64_t unknown = 0;
    cr_assert_eq(store_unknown_get(g_st, &unknown), 0);
    cr_assert_eq(unknown, 200);
    free(b);
}

Test(store_cert, read_only_writes_are_erofs)
{
    struct store_batch *b = batch_new();
    add_certs(b, 0, 2);
    cr_assert_eq(store_batch_commit(g_st, b), 0);
    struct store *ro = fixture_open(0, true);
    add_certs(b, 2, 1);
    cr_assert_eq(store_batch_commit(ro, b), -EROFS);
    cr_assert_eq(b->fault, STORE_FAULT_READ_ONLY);
    enum store_fault fault = STORE_FAULT_NONE;
    cr_assert_eq(store_probe(ro, &fault), -EROFS);
    cr_assert_eq(fault, STORE_FAULT_READ_ONLY);
    struct store_user u;
    make_user(&u, "sip:alice@example.com", "+4930123456", "100");
    cr_assert_eq(store_user_add(ro, &u), -EROFS);
    cr_assert_eq(store_user_del(ro, "sip:alice@example.com"), -EROFS);
    struct store_lockout lk = {0};
    cr_assert_eq(store_lockout_put(ro, "sip:alice@example.com", &lk), -EROFS);
    uint8_t v[STORE_VERIFIER_LEN] = {0};
    cr_assert_eq(store_user_set_pin(ro, "sip:alice@example.com", v, 4), -EROFS);
    uint64_t num = 0;
    cr_assert_eq(store_outbox_retry(ro, NULL, &num), -EROFS);
    cr_assert_eq(store_outbox_fail(ro, "pool-a", 1, 0, false, "x"), -EROFS);
    cr_assert_eq(store_outbox_remove(ro, "pool-a", 1), -EROFS);
    expect_count(ro, 2);
    expect_cert(ro, 1);
    store_close(ro);
    free(b);
}

Test(store_open, bad_options)
{
    struct store *st = NULL;
    struct store_options opt = {.path = ""};
    cr_assert_eq(store_open(&st, &opt), -EINVAL);
    opt.path = "/tmp/store-test-never-created-dir/x";
    opt.read_only = true;
    cr_assert_lt(store_open(&st, &opt), 0);
    cr_assert_null(st);
    store_close(NULL);
}
