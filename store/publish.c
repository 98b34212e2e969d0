/* publish.c: the publisher. One thread per home pool drains that pool's outbox, oldest first, in
 * batches, into the pool store through its driver (pool_embedded.c, pool_pg.c). See store.h for
 * the contract; the rules that matter:
 *   - an entry is removed only after the store acknowledged it (invariant 2);
 *   - the pool's next due time lives on its head entry (store_outbox_fail), so an external
 *     `outbox retry` is seen at the next look, at most poll_ms later;
 *   - one log line per outage and one when its backlog has drained (invariant 6);
 *   - pools share nothing but the LMDB environment: one slow store never holds up another. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <unistd.h>
#include <time.h>

#include "base/base.h"
#include "store/internal.h"

#define PUB_SCAN_MAX 4096        /* outbox entries looked at per round (parked ones skipped) */
#define PUB_STATE_SAVE_MS 5000   /* durable pool state: at most this often unless it flips */
#define PUB_SPACE_CHECK_MS 10000 /* how often the map usage is checked */
#define PUB_SPACE_WARN_PCT 80    /* map usage that is logged (and shown by readyz) */
#define PUB_PATH_MAX 4096
#define PUB_NICE 5 /* publisher threads run below the enrollment path (setpriority) */

const uint64_t store_lag_bounds_ms[STORE_LAG_BUCKETS] = {
    1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 10000, 60000, 300000};

struct pool_driver {
    struct pool_embedded *emb; /* opened at the first attempt */
    struct pool_pg *pg;
    bool embedded;
    char name[STORE_POOL_MAX + 1];
    char dir[PUB_PATH_MAX];
    char issued_by[256];
};

struct pub_pool {
    struct store_publisher *pub;
    char name[STORE_POOL_MAX + 1];
    struct pool_driver *drv;
    pthread_t thread;
    bool started;
    pthread_mutex_t lock; /* guards woken, sleeping and stats */
    pthread_cond_t cond;
    bool woken;
    bool sleeping; /* in pool_sleep: a wake-up is signalled (pool_pause only notes it) */
    struct store_pool_stats stats;
    /* the pool's thread only */
    struct store_outbox_entry *entries; /* batch_max */
    struct pool_row *rows;              /* batch_max */
    uint64_t *seqs;                     /* batch_max */
    int64_t state_saved_ms;
    bool recovering;
    int64_t down_since_ms;
    int64_t recovered_ms;
    uint64_t drained;
    uint32_t probe_attempts;
    int64_t probe_at_ms;
    int64_t space_checked_ms;
    uint64_t rnd;
};

struct store_publisher {
    struct store *st;
    struct store_publisher_options opt;
    char issued_by[256];
    char embedded_dir[PUB_PATH_MAX];
    atomic_bool stopping;
    size_t num_pools;
    struct pub_pool *pools;
};

uint64_t store_backoff_ms(uint32_t attempts, uint32_t min_ms, uint32_t max_ms, uint64_t rnd)
{
    ASSERT(attempts >= 1);
    ASSERT(min_ms >= 1);
    ASSERT(min_ms <= max_ms);
    uint64_t ceiling = min_ms;
    for (uint32_t i = 1; i < attempts && ceiling < max_ms; i++) { /* bounded: 64 doublings */
        ceiling *= 2;
    }
    ceiling = ceiling > max_ms ? max_ms : ceiling;
    uint64_t floor = ceiling < 100 ? ceiling : 100; /* full jitter, but never a busy loop */
    uint64_t d = floor + rnd % (ceiling - floor + 1);
    ASSERT(d <= max_ms);
    return d;
}

static uint64_t next_rnd(uint64_t *s)
{
    /* xorshift64*: jitter only, not a secret. */
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1Dull;
}

/* ---- the driver switch ---- */

int pool_driver_new(struct pool_driver **out, const char *name, const char *conninfo,
                    const char *embedded_dir, const char *issued_by)
{
    struct pool_driver *d = calloc(1, sizeof(*d));
    if (d == NULL) {
        return -ENOMEM;
    }
    d->embedded = strcmp(conninfo, "embedded") == 0;
    int rc = 0;
    if (base_str_copy(d->name, sizeof(d->name), name) != 0 ||
        base_str_copy(d->dir, sizeof(d->dir), embedded_dir) != 0 ||
        base_str_copy(d->issued_by, sizeof(d->issued_by), issued_by) != 0) {
        rc = -EINVAL;
        goto out;
    }
    if (!d->embedded) {
        rc = pool_pg_new(&d->pg, conninfo, issued_by);
        if (rc != 0) {
            goto out;
        }
    }
    *out = d;
    d = NULL;
out:
    free(d);
    return rc;
}

int pool_driver_publish(struct pool_driver *d, struct pool_row *rows, size_t n, char *err,
                        size_t cap)
{
    ASSERT(d != NULL);
    if (!d->embedded) {
        return pool_pg_publish(d->pg, rows, n, err, cap);
    }
    if (d->emb == NULL) {
        int rc = pool_embedded_open(&d->emb, d->dir, d->name, d->issued_by, err, cap);
        if (rc != 0) {
            return -EAGAIN;
        }
    }
    return pool_embedded_publish(d->emb, rows, n, err, cap);
}

void pool_driver_free(struct pool_driver *d)
{
    if (d == NULL) {
        return;
    }
    pool_embedded_close(d->emb);
    pool_pg_free(d->pg);
    free(d);
}

int store_pool_check(const char *conninfo, char *err, size_t cap)
{
    ASSERT(conninfo != NULL);
    ASSERT(err != NULL);
    err[0] = '\0';
    if (strcmp(conninfo, "embedded") == 0) {
        return 0;
    }
    return pool_pg_check(conninfo, err, cap);
}

/* ---- statistics ---- */

static void hist_add(uint64_t *buckets, uint64_t *sum, uint64_t *count, uint64_t v)
{
    size_t i = 0;
    while (i < STORE_LAG_BUCKETS && v > store_lag_bounds_ms[i]) {
        i++;
    }
    buckets[i]++;
    *sum += v;
    (*count)++;
}

static void save_state(struct pub_pool *p, int64_t now, bool force)
{
    if (!force && now - p->state_saved_ms < PUB_STATE_SAVE_MS) {
        return;
    }
    base_mutex_lock(&p->lock);
    struct store_pool_state s = p->stats.state;
    base_mutex_unlock(&p->lock);
    if (store_pool_state_put(p->pub->st, p->name, &s) == 0) {
        p->state_saved_ms = now;
    }
}

/* on_failure records a failed attempt: the head entry (NULL for a probe) gets its next due
 * time; the pool goes down (one log line per outage). */
static void on_failure(struct pub_pool *p, const struct store_outbox_entry *head, const char *err,
                       int64_t now)
{
    const struct store_publisher_options *o = &p->pub->opt;
    if (head != NULL) {
        uint32_t attempts = head->attempts == UINT32_MAX ? head->attempts : head->attempts + 1;
        uint64_t d =
            store_backoff_ms(attempts, o->backoff_min_ms, o->backoff_max_ms, next_rnd(&p->rnd));
        (void)store_outbox_fail(p->pub->st, p->name, head->seq, now + (int64_t)d, false, err);
    } else {
        p->probe_attempts++;
        p->probe_at_ms = now + (int64_t)store_backoff_ms(p->probe_attempts, o->backoff_min_ms,
                                                         o->backoff_max_ms, next_rnd(&p->rnd));
    }
    base_mutex_lock(&p->lock);
    bool flip = p->stats.state.up || p->stats.state.since_ms == 0;
    p->stats.failures++;
    p->stats.state.last_error_ms = now;
    (void)base_str_copy(p->stats.state.last_error, sizeof(p->stats.state.last_error), err);
    if (flip) {
        p->stats.state.up = false;
        p->stats.state.since_ms = now;
    }
    base_mutex_unlock(&p->lock);
    if (flip) {
        p->down_since_ms = now;
        p->recovering = false;
        log_warn("store: data store unavailable pool=%s cause=\"%s\"", p->name, err);
    }
    save_state(p, now, flip);
}

static void on_success(struct pub_pool *p, size_t num_acked, uint64_t latency_ms, int64_t now)
{
    base_mutex_lock(&p->lock);
    bool flip = !p->stats.state.up;
    bool was_down = flip && p->stats.state.since_ms != 0;
    for (size_t i = 0; i < num_acked; i++) {
        int64_t lag = now - p->entries[i].enqueued_ms;
        hist_add(p->stats.lag_buckets, &p->stats.lag_sum_ms, &p->stats.lag_count,
                 lag < 0 ? 0 : (uint64_t)lag);
    }
    if (num_acked > 0) {
        hist_add(p->stats.latency_buckets, &p->stats.latency_sum_ms, &p->stats.latency_count,
                 latency_ms);
    }
    p->stats.published += num_acked;
    p->stats.state.last_success_ms = now;
    if (flip) {
        p->stats.state.up = true;
        p->stats.state.since_ms = now;
    }
    base_mutex_unlock(&p->lock);
    p->probe_attempts = 0;
    if (was_down) {
        p->recovering = true;
        p->recovered_ms = now;
        p->drained = 0;
    }
    if (p->recovering) {
        p->drained += num_acked;
    }
    save_state(p, now, flip);
}

/* ---- one round ---- */

struct collect {
    struct pub_pool *p;
    size_t n;
    size_t visited;
    size_t cap;
};

static int collect_fn(void *ctx, const struct store_outbox_entry *e)
{
    struct collect *c = ctx;
    c->visited++;
    if (!e->parked) {
        c->p->entries[c->n++] = *e;
    }
    return c->n == c->cap || c->visited >= PUB_SCAN_MAX ? 1 : 0;
}

/* row_revocation fills the row's revocation columns from the replica (none: not revoked, or a
 * lifted hold). Returns 0 or -EAGAIN (unreadable now: the batch is tried again). */
static int row_revocation(struct store *st, struct pool_row *r,
                          const uint8_t serial[STORE_SERIAL_LEN])
{
    struct store_revocation rev;
    int rc = store_cert_revocation_get(st, &rev, serial);
    r->revoked_at_s = rc == 0 ? rev.revoked_at_s : 0;
    r->reason = rc == 0 ? rev.reason : 0;
    return rc == 0 || rc == -ENOENT ? 0 : -EAGAIN;
}

/* load_rows fills rows from the entries' certificate records; entries the fault hook or a
 * missing record makes permanent are parked at once. Returns the rows to send, or -EAGAIN. */
static int load_rows(struct pub_pool *p, size_t n, size_t *out_m, char *err, size_t cap)
{
    struct store_publisher *pub = p->pub;
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        struct store_outbox_entry *e = &p->entries[i];
        struct pool_row *r = &p->rows[m];
        memset(r->error, 0, sizeof(r->error));
        int rc = pub->opt.fault != NULL ? pub->opt.fault(pub->opt.fault_ctx, p->name, e->serial,
                                                         r->error, sizeof(r->error))
                                        : 0;
        if (rc == -EAGAIN) {
            store_err_copy(err, cap, r->error);
            return -EAGAIN;
        }
        if (rc == 0) {
            rc = store_cert_get_seq(pub->st, &r->meta, r->der, sizeof(r->der), &r->der_len, e->seq,
                                    e->serial);
            if (rc != 0) {
                snprintf(r->error, sizeof(r->error), "certificate record unreadable: %s",
                         strerror(-rc));
            }
        }
        if (rc == 0) {
            rc = row_revocation(pub->st, r, e->serial);
            if (rc == -EAGAIN) {
                snprintf(err, cap, "revocation record unreadable");
                return -EAGAIN;
            }
        }
        if (rc != 0) {
            log_err("store: publish_parked pool=%s seq=%llu error=\"%s\"", p->name,
                    (unsigned long long)e->seq, r->error);
            (void)store_outbox_fail(pub->st, p->name, e->seq, 0, true, r->error);
            base_mutex_lock(&p->lock);
            p->stats.parked++;
            base_mutex_unlock(&p->lock);
            continue;
        }
        store_serial_hex(r->serial, e->serial);
        r->rc = -EAGAIN;
        p->entries[m] = *e; /* entries[0..m) now match rows[0..m) */
        m++;
    }
    *out_m = m;
    return 0;
}

/* settle removes the acknowledged rows and parks the rejected ones; returns how many were
 * acknowledged (their entries are moved to the front of p->entries for the lag histogram). */
static size_t settle(struct pub_pool *p, size_t m)
{
    size_t acked = 0;
    for (size_t i = 0; i < m; i++) {
        if (p->rows[i].rc == 0) {
            p->seqs[acked] = p->entries[i].seq;
            p->entries[acked] = p->entries[i];
            acked++;
        } else if (p->rows[i].rc == -EINVAL) {
            log_err("store: publish_parked pool=%s serial=%s error=\"%s\"", p->name,
                    p->rows[i].serial, p->rows[i].error);
            (void)store_outbox_fail(p->pub->st, p->name, p->entries[i].seq, 0, true,
                                    p->rows[i].error);
            base_mutex_lock(&p->lock);
            p->stats.parked++;
            base_mutex_unlock(&p->lock);
        }
    }
    int rc = store_outbox_remove_acked(p->pub->st, p->name, p->entries, acked);
    if (rc != 0) {
        log_err("store: outbox_remove_failed pool=%s rc=%d (the entries will be replayed)", p->name,
                rc);
    }
    return acked;
}

static void publish_batch(struct pub_pool *p, size_t n, int64_t now)
{
    char err[STORE_ERROR_MAX + 1] = {0};
    struct store_outbox_entry head = p->entries[0];
    size_t m = 0;
    int rc = load_rows(p, n, &m, err, sizeof(err));
    uint64_t t0 = clock_mono_ns();
    if (rc == 0 && m > 0) {
        rc = pool_driver_publish(p->drv, p->rows, m, err, sizeof(err));
    }
    uint64_t latency_ms = (clock_mono_ns() - t0) / 1000000u;
    if (rc != 0) {
        on_failure(p, &head, err[0] != '\0' ? err : "unknown error", clock_real_ms());
        return;
    }
    size_t acked = settle(p, m);
    (void)now;
    on_success(p, acked, latency_ms, clock_real_ms());
}

static void check_space(struct pub_pool *p, int64_t now)
{
    if (p != &p->pub->pools[0] || now - p->space_checked_ms < PUB_SPACE_CHECK_MS) {
        return;
    }
    p->space_checked_ms = now;
    uint64_t used = 0;
    uint64_t map = 0;
    if (store_space_get(p->pub->st, &used, &map) == 0 && map > 0 &&
        used * 100 >= map * PUB_SPACE_WARN_PCT) {
        log_warn("store: map_nearly_full used_pct=%llu map_size=%llu action=\"raise [store] "
                 "map_size; enrollments are refused when it is full\"",
                 (unsigned long long)(used * 100 / map), (unsigned long long)map);
    }
}

static void pool_sleep(struct pub_pool *p, int64_t ms)
{
    uint32_t poll_ms = p->pub->opt.poll_ms;
    ms = ms < 1 ? 1 : (ms > poll_ms ? poll_ms : ms);
    uint64_t until = clock_mono_ns() + (uint64_t)ms * 1000000u;
    base_mutex_lock(&p->lock);
    if (!p->woken && !atomic_load(&p->pub->stopping)) {
        p->sleeping = true;
        (void)base_cond_wait_until(&p->cond, &p->lock, until); /* woken, or the time is up */
        p->sleeping = false;
    }
    p->woken = false;
    base_mutex_unlock(&p->lock);
}

/* pool_pause waits `ms` whatever wake-ups arrive (they are remembered for the next sleep, and
 * not signalled: under load the writer wakes a pool after every commit, thousands of times a
 * second), or until the publisher stops. */
static void pool_pause(struct pub_pool *p, int64_t ms)
{
    struct timespec ts;
    int rc = clock_gettime(CLOCK_MONOTONIC, &ts);
    ASSERT(rc == 0);
    ts.tv_nsec += (ms % 1000) * 1000000;
    ts.tv_sec += ms / 1000 + ts.tv_nsec / 1000000000;
    ts.tv_nsec %= 1000000000;
    base_mutex_lock(&p->lock);
    /* Bounded by the deadline: each wait ends at it at the latest. */
    while (!atomic_load(&p->pub->stopping)) {
        struct timespec now;
        rc = clock_gettime(CLOCK_MONOTONIC, &now);
        ASSERT(rc == 0);
        if (now.tv_sec > ts.tv_sec || (now.tv_sec == ts.tv_sec && now.tv_nsec >= ts.tv_nsec)) {
            break;
        }
        rc = pthread_cond_timedwait(&p->cond, &p->lock, &ts);
        ASSERT(rc == 0 || rc == ETIMEDOUT);
    }
    base_mutex_unlock(&p->lock);
}

/* round looks at the outbox once and publishes a batch when the head is due. Returns how long
 * to sleep (ms) or 0 to go on at once. */
static int64_t round_once(struct pub_pool *p)
{
    struct collect c = {.p = p, .cap = p->pub->opt.batch_max};
    int rc = store_outbox_foreach(p->pub->st, p->name, collect_fn, &c);
    int64_t now = clock_real_ms();
    check_space(p, now);
    if (rc < 0) {
        return p->pub->opt.poll_ms;
    }
    if (p->recovering && (c.n == 0 || p->entries[0].enqueued_ms >= p->recovered_ms)) {
        p->recovering = false;
        log_info("store: data store available pool=%s outage_s=%.1f drained=%llu", p->name,
                 (double)(p->recovered_ms - p->down_since_ms) / 1000.0,
                 (unsigned long long)p->drained);
    }
    if (c.n == 0) {
        bool up = true;
        base_mutex_lock(&p->lock);
        up = p->stats.state.up;
        base_mutex_unlock(&p->lock);
        if (!up && now >= p->probe_at_ms) { /* down and idle: probe, so readyz sees it return */
            char err[STORE_ERROR_MAX + 1] = {0};
            rc = pool_driver_publish(p->drv, p->rows, 0, err, sizeof(err));
            if (rc != 0) {
                on_failure(p, NULL, err[0] != '\0' ? err : "unknown error", now);
            } else {
                on_success(p, 0, 0, now);
            }
        }
        return p->pub->opt.poll_ms;
    }
    if (p->entries[0].next_attempt_ms > now) {
        return p->entries[0].next_attempt_ms - now;
    }
    publish_batch(p, c.n, now);
    /* A full batch means more is waiting: go on at once. A partial one means the pool has
     * caught up: let the next certificates gather for a moment, so that under load the pool
     * costs a few synced commits a second, not one per enrollment group (the enrollment writer
     * shares LMDB's write lock and the disk), while publication lag stays in milliseconds. */
    return c.n >= p->pub->opt.batch_max ? 0 : -(int64_t)p->pub->opt.coalesce_ms;
}

static void *pool_main(void *arg)
{
    struct pub_pool *p = arg;
    /* Background work: when the cores are saturated, the rings and the enrollment writer (whose
     * clients wait) go first; publication catches up in the gaps. Best effort. */
    (void)setpriority(PRIO_PROCESS, (id_t)gettid(), PUB_NICE);
    base_thread_name("cp-pub-%s", p->name); /* the pool name cut to 8 bytes */
    /* The publisher's loop: unbounded by design, ends at store_publisher_stop. */
    while (!atomic_load(&p->pub->stopping)) {
        int64_t sleep_ms = round_once(p);
        if (sleep_ms > 0) {
            pool_sleep(p, sleep_ms);
        } else if (sleep_ms < 0) {
            pool_pause(p, -sleep_ms);
        }
    }
    return NULL;
}

/* ---- lifecycle ---- */

static int pool_init(struct store_publisher *pub, struct pub_pool *p,
                     const struct store_pool_spec *spec)
{
    size_t b = pub->opt.batch_max;
    p->pub = pub; /* from here on store_publisher_stop destroys lock and cond */
    base_cond_init_mono(&p->cond);
    int rc = pthread_mutex_init(&p->lock, NULL);
    ASSERT(rc == 0);
    if (spec->name == NULL || spec->conninfo == NULL || spec->name[0] == '\0' ||
        base_str_copy(p->name, sizeof(p->name), spec->name) != 0 ||
        strlen(spec->conninfo) > STORE_CONNINFO_MAX) {
        return -EINVAL;
    }
    p->entries = calloc(b, sizeof(*p->entries));
    p->rows = calloc(b, sizeof(*p->rows));
    p->seqs = calloc(b, sizeof(*p->seqs));
    if (p->entries == NULL || p->rows == NULL || p->seqs == NULL) {
        return -ENOMEM;
    }
    if (getrandom(&p->rnd, sizeof(p->rnd), 0) != (ssize_t)sizeof(p->rnd) || p->rnd == 0) {
        p->rnd = clock_mono_ns() | 1;
    }
    (void)store_pool_state_get(pub->st, &p->stats.state, p->name); /* last known, if any */
    p->stats.state.up = false;
    p->stats.state.since_ms = 0; /* unknown until the first attempt */
    return pool_driver_new(&p->drv, p->name, spec->conninfo, pub->embedded_dir, pub->issued_by);
}

static int options_copy(struct store_publisher *pub, const struct store_publisher_options *opt)
{
    pub->opt = *opt;
    struct store_publisher_options *o = &pub->opt;
    o->batch_max = o->batch_max == 0 ? STORE_PUBLISH_BATCH_MAX : o->batch_max;
    o->backoff_min_ms = o->backoff_min_ms == 0 ? 1000 : o->backoff_min_ms;
    o->backoff_max_ms = o->backoff_max_ms == 0 ? 300000 : o->backoff_max_ms;
    o->poll_ms = o->poll_ms == 0 ? 1000 : o->poll_ms;
    o->coalesce_ms = o->coalesce_ms == 0 ? 25 : o->coalesce_ms;
    if (o->batch_max > STORE_PUBLISH_BATCH_MAX || o->backoff_min_ms > o->backoff_max_ms ||
        base_str_copy(pub->issued_by, sizeof(pub->issued_by),
                      opt->issued_by != NULL ? opt->issued_by : "") != 0 ||
        opt->embedded_dir == NULL ||
        base_str_copy(pub->embedded_dir, sizeof(pub->embedded_dir), opt->embedded_dir) != 0) {
        return -EINVAL;
    }
    o->issued_by = pub->issued_by;
    o->embedded_dir = pub->embedded_dir;
    return 0;
}

/* name_taken tells whether pools[i] has the name of an earlier pool (checked by pool_init). */
static bool name_taken(const struct store_pool_spec *pools, size_t i)
{
    for (size_t j = 0; j < i; j++) {
        if (pools[i].name != NULL && strcmp(pools[i].name, pools[j].name) == 0) {
            return true;
        }
    }
    return false;
}

int store_publisher_start(struct store_publisher **out, struct store *st,
                          const struct store_pool_spec *pools, size_t num_pools,
                          const struct store_publisher_options *opt)
{
    store_validate(st);
    ASSERT(out != NULL);
    ASSERT(opt != NULL);
    if (num_pools > STORE_POOLS_MAX || (num_pools > 0 && pools == NULL) || st->read_only) {
        return -EINVAL;
    }
    struct store_publisher *pub = calloc(1, sizeof(*pub));
    if (pub == NULL) {
        return -ENOMEM;
    }
    pub->st = st;
    atomic_init(&pub->stopping, false);
    int rc = 0;
    pub->pools = calloc(num_pools == 0 ? 1 : num_pools, sizeof(*pub->pools));
    if (pub->pools == NULL) {
        rc = -ENOMEM;
        goto out;
    }
    rc = options_copy(pub, opt);
    if (rc != 0) {
        goto out;
    }
    for (size_t i = 0; i < num_pools; i++) {
        pub->num_pools = i + 1; /* store_publisher_stop undoes pool_init of these */
        if (name_taken(pools, i)) {
            rc = -EINVAL;
            goto out;
        }
        rc = pool_init(pub, &pub->pools[i], &pools[i]);
        if (rc != 0) {
            goto out;
        }
    }
    for (size_t i = 0; i < num_pools; i++) {
        if (pthread_create(&pub->pools[i].thread, NULL, pool_main, &pub->pools[i]) != 0) {
            rc = -EAGAIN;
            goto out;
        }
        pub->pools[i].started = true;
    }
    *out = pub;
    pub = NULL;
out:
    if (pub != NULL) {
        store_publisher_stop(pub); /* stops the threads started, frees what pool_init took */
    }
    return rc;
}

static struct pub_pool *find(struct store_publisher *pub, const char *pool)
{
    for (size_t i = 0; i < pub->num_pools; i++) {
        if (strcmp(pub->pools[i].name, pool) == 0) {
            return &pub->pools[i];
        }
    }
    return NULL;
}

static void wake_one(struct pub_pool *p)
{
    base_mutex_lock(&p->lock);
    p->woken = true;
    if (p->sleeping || atomic_load(&p->pub->stopping)) {
        base_cond_signal(&p->cond);
    }
    base_mutex_unlock(&p->lock);
}

void store_publisher_wake(struct store_publisher *pub, const char *pool)
{
    if (pub == NULL) {
        return;
    }
    if (pool != NULL) {
        struct pub_pool *p = find(pub, pool);
        if (p != NULL) {
            wake_one(p);
        }
        return;
    }
    for (size_t i = 0; i < pub->num_pools; i++) {
        wake_one(&pub->pools[i]);
    }
}

int store_publisher_stats(struct store_publisher *pub, struct store_pool_stats *out,
                          const char *pool)
{
    ASSERT(pub != NULL);
    ASSERT(out != NULL);
    struct pub_pool *p = pool != NULL ? find(pub, pool) : NULL;
    if (p == NULL) {
        return -ENOENT;
    }
    base_mutex_lock(&p->lock);
    *out = p->stats;
    base_mutex_unlock(&p->lock);
    out->depth = 0;
    out->oldest_ms = 0;
    (void)store_outbox_depth(pub->st, p->name, &out->depth, &out->oldest_ms);
    return 0;
}

void store_publisher_stop(struct store_publisher *pub)
{
    if (pub == NULL) {
        return;
    }
    atomic_store(&pub->stopping, true);
    store_publisher_wake(pub, NULL);
    for (size_t i = 0; i < pub->num_pools; i++) {
        struct pub_pool *p = &pub->pools[i];
        if (p->started) {
            int rc = pthread_join(p->thread, NULL);
            ASSERT(rc == 0);
            p->started = false;
        }
        if (p->drv != NULL || p->entries != NULL) {
            pool_driver_free(p->drv);
            p->drv = NULL;
            free(p->entries);
            free(p->rows);
            free(p->seqs);
            p->entries = NULL;
            p->rows = NULL;
            p->seqs = NULL;
        }
    }
    for (size_t i = 0; i < pub->num_pools; i++) {
        if (pub->pools[i].pub != NULL) {
            int rc = pthread_mutex_destroy(&pub->pools[i].lock);
            ASSERT(rc == 0); /* its thread has ended: nobody holds it */
            rc = pthread_cond_destroy(&pub->pools[i].cond);
            ASSERT(rc == 0);
        }
    }
    free(pub->pools);
    free(pub);
}
