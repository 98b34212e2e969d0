#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/base.h"
#include "store/internal.h"
#include "tests/store/fixture.h"

TestSuite(store_outbox, .init = fixture_init, .fini = fixture_fini);

struct collected {
    size_t num;
    struct store_outbox_entry e[16];
};

static int collect(void *ctx, const struct store_outbox_entry *e)
{
    struct collected *c = ctx;
    cr_assert_lt(c->num, 16);
    c->e[c->num++] = *e;
    return 0;
}

static int stop_at_first(void *ctx, const struct store_outbox_entry *e)
{
    (void)e;
    (*(int *)ctx)++;
    return 42;
}

/* commit_certs stores certificates 0..num-1; even ones in pool-b, odd ones in pool-a. */
static void commit_certs(uint32_t num)
{
    static struct store_batch b;
    for (uint32_t i = 0; i < num; i++) {
        struct store_cert_meta m;
        make_meta(&m, "sip:alice@example.com", i % 2 ? "pool-a" : "pool-b", i);
        cr_assert_eq(store_batch_add_cert(&b, &m, fixture_der, 500), 0);
    }
    cr_assert_eq(store_batch_commit(g_st, &b), 0);
}

Test(store_outbox, empty)
{
    uint64_t depth = 9;
    int64_t oldest = 9;
    cr_assert_eq(store_outbox_depth(g_st, NULL, &depth, &oldest), 0);
    cr_assert_eq(depth, 0);
    cr_assert_eq(oldest, 0);
    cr_assert_eq(store_outbox_depth(g_st, "pool-x", &depth, &oldest), 0);
    cr_assert_eq(depth, 0);
    struct collected c = {.num = 0};
    cr_assert_eq(store_outbox_foreach(g_st, NULL, collect, &c), 0);
    cr_assert_eq(store_outbox_foreach(g_st, "pool-x", collect, &c), 0);
    cr_assert_eq(c.num, 0);
}

Test(store_outbox, entries_per_pool_and_all)
{
    int64_t before = clock_real_ms();
    commit_certs(5);
    int64_t after = clock_real_ms();
    struct collected c = {.num = 0};
    cr_assert_eq(store_outbox_foreach(g_st, "pool-a", collect, &c), 0);
    cr_assert_eq(c.num, 2);
    cr_assert_eq(c.e[0].serial[15], 1);
    cr_assert_eq(c.e[1].serial[15], 3);
    cr_assert_lt(c.e[0].seq, c.e[1].seq);
    cr_assert_str_eq(c.e[0].pool, "pool-a");
    cr_assert_eq(c.e[0].attempts, 0);
    cr_assert_eq(c.e[0].next_attempt_ms, 0);
    cr_assert_eq(c.e[0].parked, false);
    cr_assert_str_eq(c.e[0].last_error, "");
    cr_assert_geq(c.e[0].enqueued_ms, before);
    cr_assert_leq(c.e[0].enqueued_ms, after);

    /* All pools: pool by pool in name order (pool-a was created after pool-b). */
    c.num = 0;
    cr_assert_eq(store_outbox_foreach(g_st, NULL, collect, &c), 0);
    cr_assert_eq(c.num, 5);
    const uint8_t want[5] = {1, 3, 0, 2, 4};
    for (size_t i = 0; i < 5; i++) {
        cr_assert_eq(c.e[i].serial[15], want[i], "entry %zu", i);
        cr_assert_str_eq(c.e[i].pool, i < 2 ? "pool-a" : "pool-b");
    }
    int calls = 0;
    cr_assert_eq(store_outbox_foreach(g_st, NULL, stop_at_first, &calls), 42);
    cr_assert_eq(calls, 1);
}

Test(store_outbox, depth_and_oldest)
{
    int64_t before = clock_real_ms();
    commit_certs(5);
    uint64_t depth = 0;
    int64_t oldest = 0;
    cr_assert_eq(store_outbox_depth(g_st, NULL, &depth, &oldest), 0);
    cr_assert_eq(depth, 5);
    cr_assert_geq(oldest, before);
    cr_assert_eq(store_outbox_depth(g_st, "pool-b", &depth, &oldest), 0);
    cr_assert_eq(depth, 3);
    cr_assert_eq(store_outbox_depth(g_st, "pool-a", &depth, &oldest), 0);
    cr_assert_eq(depth, 2);
    cr_assert_eq(store_outbox_depth(g_st, "pool-none", &depth, &oldest), 0);
    cr_assert_eq(depth, 0);
    cr_assert_eq(oldest, 0);
}

Test(store_outbox, retry_on_fresh_entries_changes_nothing)
{
    commit_certs(4);
    uint64_t num = 99;
    cr_assert_eq(store_outbox_retry(g_st, NULL, &num), 0);
    cr_assert_eq(num, 0);
    cr_assert_eq(store_outbox_retry(g_st, "pool-a", &num), 0);
    cr_assert_eq(num, 0);
    cr_assert_eq(store_outbox_retry(g_st, "pool-none", &num), 0);
    cr_assert_eq(num, 0);
}

Test(store_outbox, fail_retry_remove)
{
    commit_certs(4); /* pool-b: 0, 2; pool-a: 1, 3 */
    struct collected c = {.num = 0};
    cr_assert_eq(store_outbox_foreach(g_st, "pool-a", collect, &c), 0);
    cr_assert_eq(c.num, 2);
    uint64_t seq_a0 = c.e[0].seq;
    uint64_t seq_a1 = c.e[1].seq;
    cr_assert_eq(store_outbox_fail(g_st, "pool-a", seq_a0, 5000, false, "connection refused"), 0);
    cr_assert_eq(store_outbox_fail(g_st, "pool-a", seq_a1, 0, true, "duplicate key"), 0);
    cr_assert_eq(store_outbox_fail(g_st, "pool-a", seq_a1, 0, true, "duplicate key"), 0);
    c.num = 0;
    cr_assert_eq(store_outbox_foreach(g_st, "pool-a", collect, &c), 0);
    cr_assert_eq(c.e[0].attempts, 1);
    cr_assert_eq(c.e[0].next_attempt_ms, 5000);
    cr_assert_str_eq(c.e[0].last_error, "connection refused");
    cr_assert_eq(c.e[1].attempts, 2);
    cr_assert_eq(c.e[1].parked, true);

    char long_error[STORE_ERROR_MAX + 2];
    memset(long_error, 'e', sizeof(long_error) - 1);
    long_error[sizeof(long_error) - 1] = '\0';
    cr_assert_eq(store_outbox_fail(g_st, "pool-a", seq_a0, 0, false, long_error), -EINVAL);
    cr_assert_eq(store_outbox_fail(g_st, "pool-a", 999, 0, false, "x"), -ENOENT);
    cr_assert_eq(store_outbox_fail(g_st, "pool-none", seq_a0, 0, false, "x"), -ENOENT);

    uint64_t num = 0;
    cr_assert_eq(store_outbox_retry(g_st, "pool-b", &num), 0);
    cr_assert_eq(num, 0, "pool-b has nothing to retry");
    cr_assert_eq(store_outbox_retry(g_st, NULL, &num), 0);
    cr_assert_eq(num, 2);
    c.num = 0;
    cr_assert_eq(store_outbox_foreach(g_st, "pool-a", collect, &c), 0);
    cr_assert_eq(c.e[0].next_attempt_ms, 0);
    cr_assert_eq(c.e[1].parked, false);
    cr_assert_eq(c.e[1].attempts, 2, "retry keeps the attempt count");
    cr_assert_str_eq(c.e[1].last_error, "duplicate key");

    cr_assert_eq(store_outbox_remove(g_st, "pool-a", seq_a0), 0);
    cr_assert_eq(store_outbox_remove(g_st, "pool-a", seq_a0), -ENOENT);
    uint64_t depth = 0;
    int64_t oldest = 0;
    cr_assert_eq(store_outbox_depth(g_st, "pool-a", &depth, &oldest), 0);
    cr_assert_eq(depth, 1);
    cr_assert_eq(store_outbox_depth(g_st, NULL, &depth, &oldest), 0);
    cr_assert_eq(depth, 3);
}

/* defer_meta_sync: a commit's outbox entries stay hidden from the publisher until a later commit
 * or store_sync made it durable; the certificates themselves are readable at once, and a reopen
 * finds everything (LMDB's atomicity is untouched). */
static void commit_range(uint32_t from, uint32_t num)
{
    static struct store_batch b;
    for (uint32_t i = from; i < from + num; i++) {
        struct store_cert_meta m;
        make_meta(&m, "sip:alice@example.com", i % 2 ? "pool-a" : "pool-b", i);
        cr_assert_eq(store_batch_add_cert(&b, &m, fixture_der, 500), 0);
    }
    cr_assert_eq(store_batch_commit(g_st, &b), 0);
}

Test(store_outbox, deferred_commits_hidden_until_durable)
{
    store_close(g_st);
    struct store_options opt = {.path = g_env, .defer_meta_sync = true};
    cr_assert_eq(store_open(&g_st, &opt), 0);
    cr_assert(store_defers_sync(g_st));
    commit_certs(4); /* 2 in pool-a, 2 in pool-b */
    struct collected c = {.num = 0};
    cr_assert_eq(store_outbox_foreach(g_st, NULL, collect, &c), 0);
    cr_assert_eq(c.num, 0, "not durable yet: nothing to publish");
    uint64_t depth = 0;
    int64_t oldest = 0;
    cr_assert_eq(store_outbox_depth(g_st, NULL, &depth, &oldest), 0);
    cr_assert_eq(depth, 4, "the depth counts them");
    uint64_t count = 0;
    cr_assert_eq(store_cert_count(g_st, &count), 0);
    cr_assert_eq(count, 4);

    static struct store_batch b;
    struct store_cert_meta m;
    make_meta(&m, "sip:alice@example.com", "pool-a", 100);
    cr_assert_eq(store_batch_add_cert(&b, &m, fixture_der, 500), 0);
    cr_assert_eq(store_batch_commit(g_st, &b), 0);
    c.num = 0;
    cr_assert_eq(store_outbox_foreach(g_st, NULL, collect, &c), 0);
    cr_assert_eq(c.num, 4, "the next commit made the first durable, not itself");
    for (size_t i = 0; i < c.num; i++) {
        cr_assert_lt(c.e[i].seq, 5);
    }

    struct store_lockout l = {.window_failures = 1, .window_start_s = 1};
    struct store_user u;
    make_user(&u, "sip:bob@example.com", "", "2002");
    cr_assert_eq(store_user_add(g_st, &u), 0);
    cr_assert_eq(store_batch_add_lockout(&b, u.uri, &l), 0);
    cr_assert_eq(store_batch_commit(g_st, &b), 0);
    c.num = 0;
    cr_assert_eq(store_outbox_foreach(g_st, NULL, collect, &c), 0);
    cr_assert_eq(c.num, 5, "a commit without certificates also makes earlier ones durable");

    commit_range(200, 2);
    c.num = 0;
    cr_assert_eq(store_outbox_foreach(g_st, "pool-a", collect, &c), 0);
    cr_assert_eq(c.num, 3);
    cr_assert_eq(store_sync(g_st), 0);
    c.num = 0;
    cr_assert_eq(store_outbox_foreach(g_st, "pool-a", collect, &c), 0);
    cr_assert_eq(c.num, 4, "store_sync makes the last commit durable");

    commit_range(300, 2);
    store_close(g_st); /* syncs */
    g_st = fixture_open(0, false);
    cr_assert(!store_defers_sync(g_st));
    c.num = 0;
    cr_assert_eq(store_outbox_foreach(g_st, NULL, collect, &c), 0);
    cr_assert_eq(c.num, 9);
}

/* ---- the publisher's acknowledgements ride the next certificate commit (defer_meta_sync) ---- */

struct acker {
    pthread_t thread;
    const char *pool;
    struct store_outbox_entry e[16];
    size_t num;
    int rc;
    uint64_t took_ns;
};

static void *acker_main(void *arg)
{
    struct acker *a = arg;
    uint64_t t0 = clock_mono_ns();
    a->rc = store_outbox_remove_acked(g_st, a->pool, a->e, a->num);
    a->took_ns = clock_mono_ns() - t0;
    return NULL;
}

static void acker_start(struct acker *a)
{
    cr_assert_eq(pthread_create(&a->thread, NULL, acker_main, a), 0);
}

/* acks_waiting is how many acknowledgements wait for a commit. */
static size_t acks_waiting(void)
{
    size_t n = 0;
    base_mutex_lock(&g_st->ack_lock);
    for (const struct ack_slot *s = g_st->acks; s != NULL; s = s->next) {
        n++;
    }
    base_mutex_unlock(&g_st->ack_lock);
    return n;
}

static uint64_t last_txnid(void)
{
    MDB_envinfo info;
    cr_assert_eq(mdb_env_info(g_st->env, &info), 0);
    return (uint64_t)info.me_last_txnid;
}

/* deferred_store reopens g_st with defer_meta_sync and a wait of `wait_ms` for the next commit,
 * and stores 4 certificates (2 in pool-a) made durable by a second commit; a->e gets pool-a's 2
 * entries. */
static void deferred_store(struct acker *a, uint64_t wait_ms)
{
    store_close(g_st);
    struct store_options opt = {.path = g_env, .defer_meta_sync = true};
    cr_assert_eq(store_open(&g_st, &opt), 0);
    g_st->ack_wait_ns = wait_ms * 1000000u;
    commit_certs(4);
    cr_assert_eq(store_sync(g_st), 0);
    struct collected c = {.num = 0};
    cr_assert_eq(store_outbox_foreach(g_st, "pool-a", collect, &c), 0);
    cr_assert_eq(c.num, 2);
    memcpy(a->e, c.e, sizeof(c.e));
    a->num = c.num;
    a->pool = "pool-a";
}

/* wait_queued waits (at most 10 s) until n acknowledgements wait for a commit. */
static void wait_queued(size_t n)
{
    for (int i = 0; i < 100000 && acks_waiting() < n; i++) {
        usleep(100);
    }
    cr_assert_eq(acks_waiting(), n);
}

static uint64_t depth_of(const char *pool)
{
    uint64_t depth = 0;
    int64_t oldest = 0;
    cr_assert_eq(store_outbox_depth(g_st, pool, &depth, &oldest), 0);
    return depth;
}

/* The removal waits for the writer's next commit and is in it: one transaction for both, no
 * commit (and no sync under LMDB's writer lock) of its own. */
Test(store_outbox, acks_ride_the_next_certificate_commit)
{
    struct acker a = {0};
    deferred_store(&a, 60000); /* the commit below comes, however slow this machine is */
    uint64_t carried = atomic_load(&g_st->acks_carried);
    acker_start(&a);
    wait_queued(1);
    uint64_t txn0 = last_txnid();
    commit_range(100, 2); /* one in each pool */
    cr_assert_eq(pthread_join(a.thread, NULL), 0);
    cr_assert_eq(a.rc, 0);
    cr_assert_eq(last_txnid(), txn0 + 1, "the removal rode the certificates' transaction");
    cr_assert_eq(atomic_load(&g_st->acks_carried), carried + 1);
    cr_assert_eq(depth_of("pool-a"), 1, "pool-a keeps only the new certificate's entry");
    cr_assert_eq(depth_of("pool-b"), 3);
    cr_assert_eq(acks_waiting(), 0);
}

/* run_alone runs the acker with no commit beside it and checks that its removal committed alone
 * (one transaction, pool-a emptied); returns how many removals waited for a commit meanwhile. */
static uint64_t run_alone(struct acker *a)
{
    uint64_t alone = atomic_load(&g_st->acks_alone);
    uint64_t waited = atomic_load(&g_st->acks_waited);
    uint64_t txn0 = last_txnid();
    acker_start(a);
    cr_assert_eq(pthread_join(a->thread, NULL), 0);
    cr_assert_eq(a->rc, 0);
    cr_assert_eq(last_txnid(), txn0 + 1);
    cr_assert_eq(atomic_load(&g_st->acks_alone), alone + 1);
    cr_assert_eq(depth_of("pool-a"), 0);
    return atomic_load(&g_st->acks_waited) - waited;
}

/* When the next commit does not come, the removal commits alone after STORE_ACK_WAIT_MS. */
Test(store_outbox, acks_commit_alone_when_no_commit_comes)
{
    struct acker a = {0};
    deferred_store(&a, 60000);
    g_st->ack_wait_ns = 300000000u;                       /* 0.3 s */
    atomic_store(&g_st->last_commit_ns, clock_mono_ns()); /* a writer that has just committed */
    cr_assert_eq(run_alone(&a), 1, "it waited for a commit");
    cr_assert_geq(a.took_ns, g_st->ack_wait_ns);
    cr_assert_eq(acks_waiting(), 0);
}

/* An idle writer (no certificate committed for STORE_ACK_WAIT_MS: a backlog drained after an
 * outage) is not waited for: the removal commits alone at once. */
Test(store_outbox, acks_do_not_wait_for_an_idle_writer)
{
    struct acker a = {0};
    deferred_store(&a, STORE_ACK_WAIT_MS);
    usleep(2 * STORE_ACK_WAIT_MS * 1000);
    cr_assert_eq(run_alone(&a), 0, "it did not wait for a commit");
}

/* An acknowledgement the commit cannot apply (a pool this store does not know) fails alone, as
 * before, and never fails the certificates it rode with. */
Test(store_outbox, an_ack_that_fails_does_not_fail_the_commit)
{
    struct acker a = {0};
    deferred_store(&a, 60000);
    struct acker bad = a;
    bad.pool = "pool-nowhere";
    acker_start(&bad);
    acker_start(&a);
    wait_queued(2);
    uint64_t count = 0;
    cr_assert_eq(store_cert_count(g_st, &count), 0);
    commit_range(100, 2);
    uint64_t after = 0;
    cr_assert_eq(store_cert_count(g_st, &after), 0);
    cr_assert_eq(after, count + 2, "the certificates are stored");
    cr_assert_eq(pthread_join(bad.thread, NULL), 0);
    cr_assert_eq(pthread_join(a.thread, NULL), 0);
    cr_assert_eq(bad.rc, -ENOENT);
    cr_assert_eq(a.rc, 0);
    cr_assert_eq(depth_of("pool-a"), 1);
}
