#include <criterion/criterion.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/base.h"
#include "store/internal.h"
#include "tests/store/fixture.h"

TestSuite(store_publish, .init = fixture_init, .fini = fixture_fini);

Test(store_publish, backoff_bounded_jittered_monotone)
{
    uint64_t prev_max = 0;
    for (uint32_t a = 1; a <= 40; a++) {
        uint64_t lo = UINT64_MAX;
        uint64_t hi = 0;
        for (uint64_t r = 0; r < 2000; r++) {
            uint64_t d = store_backoff_ms(a, 1000, 300000, r * 0x9E3779B97F4A7C15ull);
            lo = d < lo ? d : lo;
            hi = d > hi ? d : hi;
        }
        uint64_t ceiling = a >= 10 ? 300000 : 1000ull << (a - 1);
        ceiling = ceiling > 300000 ? 300000 : ceiling;
        cr_assert_geq(lo, 100, "attempt %u: never a busy loop", a);
        cr_assert_leq(hi, ceiling, "attempt %u: within the ceiling", a);
        cr_assert_gt(hi - lo, ceiling / 2, "attempt %u: jittered", a);
        cr_assert_geq(ceiling, prev_max, "ceilings are monotone");
        prev_max = ceiling;
    }
    cr_assert_eq(store_backoff_ms(UINT32_MAX, 1000, 300000, UINT64_MAX), 100 + UINT64_MAX % 299901);
    cr_assert_eq(store_backoff_ms(1, 50, 50, 7), 50);
}

static void commit_n(const char *pool, uint32_t from, uint32_t n)
{
    static struct store_batch b;
    store_batch_clear(&b);
    for (uint32_t i = from; i < from + n; i++) {
        struct store_cert_meta m;
        make_meta(&m, "sip:alice@example.com", pool, i);
        cr_assert_eq(store_batch_add_cert(&b, &m, fixture_der, 500), 0);
    }
    cr_assert_eq(store_batch_commit(g_st, &b), 0);
}

static bool depth_is(const char *pool, uint64_t want, int tenths)
{
    for (int i = 0; i < tenths; i++) {
        uint64_t d = 0;
        int64_t oldest = 0;
        cr_assert_eq(store_outbox_depth(g_st, pool, &d, &oldest), 0);
        if (d == want) {
            return true;
        }
        usleep(100000);
    }
    return false;
}

Test(store_publish, embedded_put_is_idempotent)
{
    char dir[400];
    char err[256] = {0};
    snprintf(dir, sizeof(dir), "%s/pools", g_dir);
    struct pool_embedded *e = NULL;
    cr_assert_eq(pool_embedded_open(&e, dir, "p", "me.example.com", err, sizeof(err)), 0);
    static struct pool_row rows[4];
    for (uint32_t i = 0; i < 4; i++) {
        make_meta(&rows[i].meta, "sip:alice@example.com", "p", i);
        rows[i].meta.seq = 10 + i;
        store_serial_hex(rows[i].serial, rows[i].meta.serial);
        memcpy(rows[i].der, fixture_der, 500);
        rows[i].der_len = 500;
    }
    cr_assert_eq(pool_embedded_publish(e, rows + 1, 2, err, sizeof(err)), 0);
    cr_assert_eq(pool_embedded_publish(e, rows + 1, 2, err, sizeof(err)), 0, "a replay succeeds");
    cr_assert_eq(rows[1].rc, 0);
    cr_assert_eq(rows[2].rc, 0);
    /* Before the table's last key (a retried parked entry): an ordinary insert. */
    cr_assert_eq(pool_embedded_publish(e, rows, 1, err, sizeof(err)), 0);
    cr_assert_eq(rows[0].rc, 0);
    rows[1].meta.not_after_s = 1; /* a replay never overwrites */
    cr_assert_eq(pool_embedded_publish(e, rows + 1, 1, err, sizeof(err)), 0);
    /* Another certificate at a stored key (a replaced replica reusing seqs in the same second):
     * a permanent error of that row, the others stored. */
    struct pool_row saved = rows[2];
    rows[2].meta.serial[15] = 0x77;
    store_serial_hex(rows[2].serial, rows[2].meta.serial);
    cr_assert_eq(pool_embedded_publish(e, rows + 2, 2, err, sizeof(err)), 0);
    cr_assert_eq(rows[2].rc, -EINVAL);
    cr_assert(strstr(rows[2].error, "holds serial") != NULL, "%s", rows[2].error);
    cr_assert_eq(rows[3].rc, 0);
    rows[2] = saved;
    pool_embedded_close(e);
    uint64_t n = 0;
    cr_assert_eq(store_embedded_count(dir, "p", &n), 0);
    cr_assert_eq(n, 4);
    struct store_cert_meta m;
    char by[64];
    for (uint32_t i = 0; i < 4; i++) {
        cr_assert_eq(store_embedded_get(dir, "p", rows[i].serial, &m, by, sizeof(by), NULL), 0);
        cr_assert_str_eq(m.uri, "sip:alice@example.com");
        char dev[32];
        snprintf(dev, sizeof(dev), "{DEV-%u}", i);
        cr_assert_str_eq(m.device_id, dev);
        cr_assert_str_eq(by, "me.example.com");
    }
    int64_t published_s = 0;
    int64_t before_s = clock_real_s();
    cr_assert_eq(store_embedded_get(dir, "p", rows[1].serial, &m, by, sizeof(by), &published_s), 0);
    cr_assert_eq(m.not_after_s, 1764070245 + 86400);
    cr_assert(published_s > 0 && published_s <= before_s, "published_at %lld",
              (long long)published_s);
    cr_assert_eq(store_embedded_get(dir, "p", "ABC", &m, by, sizeof(by), NULL), -ENOENT);
    cr_assert_eq(store_embedded_count(dir, "nope", &n), -ENOENT);
    /* The publisher reopening the pool appends after what is there. */
    cr_assert_eq(pool_embedded_open(&e, dir, "p", "me.example.com", err, sizeof(err)), 0);
    make_meta(&rows[0].meta, "sip:bob@example.com", "p", 99);
    rows[0].meta.seq = 99;
    store_serial_hex(rows[0].serial, rows[0].meta.serial);
    cr_assert_eq(pool_embedded_publish(e, rows, 1, err, sizeof(err)), 0);
    cr_assert_eq(rows[0].rc, 0);
    pool_embedded_close(e);
    cr_assert_eq(store_embedded_count(dir, "p", &n), 0);
    cr_assert_eq(n, 5);
}

Test(store_publish, embedded_refuses_first_layout)
{
    char dir[400];
    char path[480];
    char err[256] = {0};
    snprintf(dir, sizeof(dir), "%s/pools", g_dir);
    snprintf(path, sizeof(path), "%s/old", dir);
    cr_assert(mkdir(dir, 0700) == 0 || errno == EEXIST);
    cr_assert_eq(mkdir(path, 0700), 0);
    MDB_env *env = NULL; /* a table of the first layout: keyed by the serial's hex */
    MDB_txn *txn = NULL;
    MDB_dbi dbi = 0;
    cr_assert_eq(mdb_env_create(&env), 0);
    cr_assert_eq(mdb_env_set_maxdbs(env, 1), 0);
    cr_assert_eq(mdb_env_open(env, path, 0, 0600), 0);
    cr_assert_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
    cr_assert_eq(mdb_dbi_open(txn, "user_certificates", MDB_CREATE, &dbi), 0);
    MDB_val k = {.mv_size = 5, .mv_data = "1A2B3"};
    MDB_val v = {.mv_size = 3, .mv_data = "xyz"};
    cr_assert_eq(mdb_put(txn, dbi, &k, &v, 0), 0);
    cr_assert_eq(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
    struct pool_embedded *e = NULL;
    cr_assert_eq(pool_embedded_open(&e, dir, "old", "me.example.com", err, sizeof(err)), -EPROTO);
    cr_assert(strstr(err, "earlier version") != NULL, "%s", err);
}

static atomic_int g_fault_mode; /* 0 none, 1 park serial n=1, 2 everything transient */

static int fault(void *ctx, const char *pool, const uint8_t serial[STORE_SERIAL_LEN], char *err,
                 size_t cap)
{
    (void)ctx;
    (void)pool;
    int mode = atomic_load(&g_fault_mode);
    if (mode == 2) {
        snprintf(err, cap, "connection refused");
        return -EAGAIN;
    }
    if (mode == 1 && serial[15] == 1) {
        snprintf(err, cap, "violates check constraint");
        return -EINVAL;
    }
    return 0;
}

static struct store_publisher *start_pub(char *dir, size_t cap)
{
    snprintf(dir, cap, "%s/pools", g_dir);
    struct store_pool_spec specs[2] = {{"pool-a", "embedded"}, {"pool-b", "embedded"}};
    struct store_publisher_options o = {.issued_by = "me.example.com",
                                        .embedded_dir = dir,
                                        .batch_max = 4,
                                        .poll_ms = 100,
                                        .backoff_min_ms = 200,
                                        .backoff_max_ms = 400,
                                        .fault = fault};
    struct store_publisher *pub = NULL;
    cr_assert_eq(store_publisher_start(&pub, g_st, specs, 2, &o), 0);
    return pub;
}

Test(store_publish, drains_outbox_after_ack)
{
    atomic_store(&g_fault_mode, 0);
    char dir[400];
    commit_n("pool-a", 0, 10);
    struct store_publisher *pub = start_pub(dir, sizeof(dir));
    commit_n("pool-b", 100, 3);
    store_publisher_wake(pub, "pool-b");
    cr_assert(depth_is("pool-a", 0, 30));
    cr_assert(depth_is("pool-b", 0, 30));
    uint64_t n = 0;
    cr_assert_eq(store_embedded_count(dir, "pool-a", &n), 0);
    cr_assert_eq(n, 10);
    struct store_pool_stats s;
    cr_assert_eq(store_publisher_stats(pub, &s, "pool-a"), 0);
    cr_assert(s.state.up);
    cr_assert_eq(s.published, 10);
    cr_assert_eq(s.lag_count, 10);
    cr_assert_eq(store_publisher_stats(pub, &s, "nope"), -ENOENT);
    store_publisher_stop(pub);
    struct store_pool_state ps;
    cr_assert_eq(store_pool_state_get(g_st, &ps, "pool-a"), 0);
    cr_assert(ps.up);
    cr_assert_gt(ps.last_success_ms, 0);
}

static int first_entry(void *ctx, const struct store_outbox_entry *e)
{
    *(struct store_outbox_entry *)ctx = *e;
    return 1;
}

Test(store_publish, permanent_error_parks_then_retry_sends)
{
    atomic_store(&g_fault_mode, 1);
    char dir[400];
    commit_n("pool-a", 0, 5);
    struct store_publisher *pub = start_pub(dir, sizeof(dir));
    cr_assert(depth_is("pool-a", 1, 30), "only the parked entry stays");
    struct store_outbox_entry head;
    cr_assert_eq(store_outbox_foreach(g_st, "pool-a", first_entry, &head), 1);
    cr_assert(head.parked);
    cr_assert_str_eq(head.last_error, "violates check constraint");
    struct store_pool_stats s;
    cr_assert_eq(store_publisher_stats(pub, &s, "pool-a"), 0);
    cr_assert_eq(s.parked, 1);
    cr_assert(s.state.up, "a parked entry does not take the pool down");
    usleep(300000);
    cr_assert(depth_is("pool-a", 1, 1), "a parked entry is not retried by itself");
    atomic_store(&g_fault_mode, 0);
    uint64_t num = 0;
    cr_assert_eq(store_outbox_retry(g_st, "pool-a", &num), 0);
    cr_assert_eq(num, 1);
    cr_assert(depth_is("pool-a", 0, 20), "sent after retry, seen without a wake-up");
    store_publisher_stop(pub);
}

Test(store_publish, transient_error_keeps_entries_and_backs_off)
{
    atomic_store(&g_fault_mode, 2);
    char dir[400];
    commit_n("pool-a", 0, 3);
    struct store_publisher *pub = start_pub(dir, sizeof(dir));
    usleep(500000);
    cr_assert(depth_is("pool-a", 3, 1), "nothing removed without an acknowledgement");
    struct store_outbox_entry head;
    cr_assert_eq(store_outbox_foreach(g_st, "pool-a", first_entry, &head), 1);
    cr_assert_geq(head.attempts, 1);
    cr_assert_str_eq(head.last_error, "connection refused");
    cr_assert(!head.parked);
    struct store_pool_stats s;
    cr_assert_eq(store_publisher_stats(pub, &s, "pool-a"), 0);
    cr_assert(!s.state.up);
    cr_assert_geq(s.failures, 1);
    cr_assert_leq(s.failures, 5, "backoff: not a retry per poll");
    atomic_store(&g_fault_mode, 0);
    cr_assert(depth_is("pool-a", 0, 30), "drains by itself when the store returns");
    cr_assert_eq(store_publisher_stats(pub, &s, "pool-a"), 0);
    cr_assert(s.state.up);
    store_publisher_stop(pub);
}
