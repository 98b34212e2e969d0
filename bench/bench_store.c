/* bench_store: durable group-commit throughput of the store.
 *
 * For batch sizes 1, 16, 64, 256 and 512 it commits certificates (1 KiB DER, random positive
 * 16-byte serials, 1000 users in 4 pools) with sync into a fresh environment under /var/tmp (real
 * disk) for about BENCH_CASE_NS (each case's files are removed before the next case starts: left in
 * place until the end, the earlier cases' files doubled the CPU per certificate of the later
 * cases), and prints one line per case: store_commit_batch<N> <certs_per_s>
 * <p50_us> <p99_us> <cpu_us>   (latency is per commit) store_commit_batch<N> is the store as
 * certprovd runs it (defer_meta_sync: one sync per commit, durable when the next commit returned);
 * store_commit_sync2_batch<N> commits that are each durable on return (two syncs). Two references
 * come first, in the same run: the disk's own synced append (disk_sync_append_batch<N>) and bare
 * LMDB with one random 1 KiB put per certificate (lmdb_random_put_batch<N>).
 *
 * Last, the store at scale: an environment preloaded with BENCH_SCALE_CERTS certificates (their
 * outbox drained as the publisher would) runs batch 64 as certprovd does:
 *   store_commit_batch64_at<N> <certs_per_s> <p50_us> <p99_us>
 * <cpu_us> is the process's CPU time (user + system, CLOCK_PROCESS_CPUTIME_ID) per certificate
 * over the case's loop: steadier than the rate on a shared VM, whose other guests move the disk's
 * latency and so the rate, but little the work done per certificate. The cases above start empty;
 * the indexes' pages, and so the cost of their slices, grow with the store. `bench_store scale`
 * runs only this case. */
#include <errno.h>
#include <unistd.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include <lmdb.h>
#include <sys/stat.h>

#include "base/base.h"
#include "store/store.h"

#define BENCH_CASE_NS 2000000000ull
#define BENCH_COMMITS_MAX 200000u
#define BENCH_USERS 1000u
#define BENCH_DER_LEN 1024u
#define BENCH_SCALE_CERTS 1000000u
#define BENCH_SCALE_BATCH 64u

static uint64_t g_rng[2];

/* xorshift128+: fast, seeded from getrandom; good enough for distinct benchmark serials. */
static uint64_t rng_next(void)
{
    uint64_t s1 = g_rng[0];
    const uint64_t s0 = g_rng[1];
    g_rng[0] = s0;
    s1 ^= s1 << 23;
    g_rng[1] = s1 ^ s0 ^ (s1 >> 17) ^ (s0 >> 26);
    return g_rng[1] + s0;
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a;
    uint64_t y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The users' strings, formatted once (make_users): formatting them for each certificate was
 * 6 % of the batch 512 case's CPU, work of this program and not of the store. */
static struct {
    char uri[32];
    char pool[8];
    char device_id[40];
} g_users[BENCH_USERS];

static void make_users(void)
{
    for (unsigned u = 0; u < BENCH_USERS; u++) {
        snprintf(g_users[u].uri, sizeof(g_users[u].uri), "sip:user%04u@example.com", u);
        snprintf(g_users[u].pool, sizeof(g_users[u].pool), "pool-%u", u % 4);
        snprintf(g_users[u].device_id, sizeof(g_users[u].device_id),
                 "{%08X-0000-0000-0000-000000000000}", u);
    }
}

static void fill_meta(struct store_cert_meta *m)
{
    uint64_t a = rng_next();
    uint64_t b = rng_next();
    memcpy(m->serial, &a, 8);
    memcpy(m->serial + 8, &b, 8);
    m->serial[0] &= 0x7f; /* positive */
    unsigned u = (unsigned)(rng_next() % BENCH_USERS);
    memcpy(m->uri, g_users[u].uri, sizeof(g_users[u].uri));
    memcpy(m->pool, g_users[u].pool, sizeof(g_users[u].pool));
    memcpy(m->device_id, g_users[u].device_id, sizeof(g_users[u].device_id));
    m->issued_at_s = clock_real_s();
    m->not_before_s = m->issued_at_s;
    m->not_after_s = m->issued_at_s + 365 * 86400;
}

/* cpu_ns is the process's CPU time so far (all threads, user and system). */
static uint64_t cpu_ns(void)
{
    struct timespec ts;
    int rc = clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    ASSERT(rc == 0);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void print_case(const char *name, size_t batch_size, size_t n, uint64_t elapsed_ns,
                       uint64_t cpu_used_ns, uint64_t *lat_ns)
{
    double secs = (double)elapsed_ns / 1e9;
    double ops = (double)(n * batch_size);
    qsort(lat_ns, n, sizeof(lat_ns[0]), cmp_u64);
    printf("%s%zu %.0f %.0f %.0f %.2f\n", name, batch_size, ops / secs, (double)lat_ns[n / 2] / 1e3,
           (double)lat_ns[(n * 99) / 100] / 1e3, (double)cpu_used_ns / 1e3 / ops);
    fflush(stdout);
}

/* disk_case measures the disk's own ceiling in the same run: appending the same bytes a commit
 * of `batch_size` certificates stores (DER only, no index) with ONE fdatasync each. LMDB needs
 * at least two syncs per commit (data pages, then the meta page), so the store reaching half of
 * this figure means it costs little beyond what durability itself costs on this disk. */
static int disk_case(const char *dir, size_t batch_size, uint64_t *lat_ns, const uint8_t *der)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/disk%zu", dir, batch_size);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd == -1) {
        int err = errno;
        perror("bench_store: open");
        return -err;
    }
    static uint8_t buf[STORE_BATCH_MAX * BENCH_DER_LEN];
    for (size_t i = 0; i < batch_size; i++) {
        memcpy(buf + i * BENCH_DER_LEN, der, BENCH_DER_LEN);
    }
    size_t len = batch_size * BENCH_DER_LEN;
    size_t n = 0;
    int rc = 0;
    uint64_t cpu0 = cpu_ns();
    uint64_t start = clock_mono_ns();
    uint64_t now = start;
    while (now - start < BENCH_CASE_NS && n < BENCH_COMMITS_MAX) {
        uint64_t t0 = clock_mono_ns();
        if (write(fd, buf, len) != (ssize_t)len || fdatasync(fd) == -1) {
            rc = -EIO;
            goto out;
        }
        now = clock_mono_ns();
        lat_ns[n++] = now - t0;
    }
out:;
    uint64_t cpu_used = cpu_ns() - cpu0;
    if (close(fd) == -1 && rc == 0) {
        rc = -errno;
    }
    if (unlink(path) == -1 && rc == 0) {
        rc = -errno;
    }
    if (rc != 0) {
        fprintf(stderr, "bench_store: disk case: %s\n", strerror(-rc));
        return rc;
    }
    print_case("disk_sync_append_batch", batch_size, n, now - start, cpu_used, lat_ns);
    return 0;
}

/* lmdb_commit puts `batch_size` random 16-byte keys with a 1 KiB value in one synced commit.
 * Returns 0 or LMDB's code. */
static int lmdb_commit(MDB_env *env, MDB_dbi dbi, size_t batch_size, const uint8_t *der)
{
    MDB_txn *txn = NULL;
    int rc = mdb_txn_begin(env, NULL, 0, &txn);
    if (rc != 0) {
        return rc;
    }
    for (size_t i = 0; i < batch_size; i++) {
        uint64_t k[2] = {rng_next(), rng_next()};
        MDB_val key = {.mv_size = sizeof(k), .mv_data = k};
        MDB_val val = {.mv_size = BENCH_DER_LEN, .mv_data = (void *)(uintptr_t)der};
        rc = mdb_put(txn, dbi, &key, &val, 0);
        if (rc != 0) {
            mdb_txn_abort(txn); /* never reused */
            return rc;
        }
    }
    return mdb_txn_commit(txn); /* frees txn on every path */
}

/* lmdb_case is the reference the store is held to, in the same run: bare LMDB, one random
 * 16-byte key with a 1 KiB value per certificate, `batch_size` puts per synced commit (two
 * syncs, LMDB's default). The store writes more per certificate (a record appended by sequence,
 * the serial and user indexes, the outbox entry), so it cannot beat this line; how close it
 * gets is the figure of merit. */
static int lmdb_case(const char *dir, size_t batch_size, uint64_t *lat_ns, const uint8_t *der)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/lmdb%zu", dir, batch_size);
    MDB_env *env = NULL;
    MDB_dbi dbi = 0;
    MDB_txn *txn = NULL;
    size_t n = 0;
    uint64_t start = 0;
    uint64_t now = 0;
    uint64_t cpu0 = 0;
    uint64_t cpu_used = 0;
    int rc = mkdir(path, 0700) == 0 ? 0 : errno; /* LMDB's codes and errnos, as mdb_strerror */
    if (rc != 0) {
        goto out;
    }
    rc = mdb_env_create(&env);
    if (rc != 0) {
        goto out;
    }
    rc = mdb_env_set_mapsize(env, 16ull << 30);
    if (rc != 0) {
        goto out;
    }
    rc = mdb_env_open(env, path, MDB_NOTLS, 0600);
    if (rc != 0) {
        goto out;
    }
    rc = mdb_txn_begin(env, NULL, 0, &txn);
    if (rc != 0) {
        goto out;
    }
    rc = mdb_dbi_open(txn, NULL, 0, &dbi);
    if (rc != 0) {
        goto out;
    }
    rc = mdb_txn_commit(txn); /* frees txn on every path */
    txn = NULL;
    if (rc != 0) {
        goto out;
    }
    cpu0 = cpu_ns();
    start = clock_mono_ns();
    now = start;
    while (now - start < BENCH_CASE_NS && n < BENCH_COMMITS_MAX) {
        uint64_t t0 = clock_mono_ns();
        rc = lmdb_commit(env, dbi, batch_size, der);
        if (rc != 0) {
            goto out;
        }
        now = clock_mono_ns();
        lat_ns[n++] = now - t0;
    }
    cpu_used = cpu_ns() - cpu0;
out:
    if (txn != NULL) {
        mdb_txn_abort(txn);
    }
    if (env != NULL) {
        mdb_env_close(env);
    }
    if (rc != 0) {
        fprintf(stderr, "bench_store: bare lmdb: %s\n", mdb_strerror(rc));
        return -EIO;
    }
    print_case("lmdb_random_put_batch", batch_size, n, now - start, cpu_used, lat_ns);
    return 0;
}

/* commit_loop commits batches of `batch_size` into `st` for BENCH_CASE_NS (at most
 * BENCH_COMMITS_MAX commits), the latency of each into lat_ns; then one store_sync, counted.
 * Returns 0 or the store's error; *out_n and *out_ns say what was done. */
static int commit_loop(struct store *st, size_t batch_size, uint64_t *lat_ns, struct store_batch *b,
                       const uint8_t *der, size_t *out_n, uint64_t *out_ns, uint64_t *out_cpu_ns)
{
    int rc = 0;
    size_t n = 0;
    uint64_t cpu0 = cpu_ns();
    uint64_t start = clock_mono_ns();
    uint64_t now = start;
    while (now - start < BENCH_CASE_NS && n < BENCH_COMMITS_MAX) {
        store_batch_clear(b);
        for (size_t i = 0; i < batch_size; i++) {
            struct store_cert_meta m = {0};
            fill_meta(&m);
            rc = store_batch_add_cert(b, &m, der, BENCH_DER_LEN);
            ASSERT(rc == 0); /* batch_size <= STORE_BATCH_MAX, valid meta */
        }
        uint64_t t0 = clock_mono_ns();
        rc = store_batch_commit(st, b);
        now = clock_mono_ns();
        if (rc != 0) {
            fprintf(stderr, "bench_store: commit: %s\n", strerror(-rc));
            break;
        }
        lat_ns[n++] = now - t0;
    }
    if (rc == 0) {
        rc = store_sync(st);
        now = clock_mono_ns();
    }
    *out_n = n;
    *out_ns = now - start;
    *out_cpu_ns = cpu_ns() - cpu0;
    if (rc != 0) {
        return rc;
    }
    return n == 0 ? -EIO : 0;
}

/* open_store opens a store at `path` on a 16 GiB map, as certprovd does when `deferred`. */
static int open_store(struct store **st, const char *path, bool deferred)
{
    struct store_options opt = {.path = path, .map_size = 16ull << 30, .defer_meta_sync = deferred};
    int rc = store_open(st, &opt);
    if (rc != 0) {
        fprintf(stderr, "bench_store: open %s: %s\n", path, strerror(-rc));
    }
    return rc;
}

/* run_case commits batches of `batch_size` for BENCH_CASE_NS into a fresh environment. With
 * `deferred` the store runs as certprovd's writer runs it (defer_meta_sync: one sync per commit,
 * a commit durable when the next one returned, one store_sync at the end, counted); without,
 * each commit is durable on its own (LMDB's two syncs). */
static int run_case(const char *dir, size_t batch_size, uint64_t *lat_ns, struct store_batch *b,
                    const uint8_t *der, bool deferred)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/batch%zu%s", dir, batch_size, deferred ? "d" : "");
    struct store *st = NULL;
    int rc = open_store(&st, path, deferred);
    if (rc != 0) {
        return rc;
    }
    size_t n = 0;
    uint64_t elapsed = 0;
    uint64_t cpu_used = 0;
    rc = commit_loop(st, batch_size, lat_ns, b, der, &n, &elapsed, &cpu_used);
    store_close(st);
    if (rc == 0) {
        print_case(deferred ? "store_commit_batch" : "store_commit_sync2_batch", batch_size, n,
                   elapsed, cpu_used, lat_ns);
    }
    return rc;
}

/* preload stores BENCH_SCALE_CERTS certificates of one pool in batches of STORE_BATCH_MAX and
 * removes their outbox entries after each batch, as the publisher of a healthy pool would (in
 * its batches of STORE_PUBLISH_BATCH_MAX). */
static int preload(struct store *st, struct store_batch *b, const uint8_t *der)
{
    static uint64_t seqs[STORE_BATCH_MAX];
    int rc = 0;
    for (uint32_t done = 0; done < BENCH_SCALE_CERTS; done += STORE_BATCH_MAX) {
        store_batch_clear(b);
        for (size_t i = 0; i < STORE_BATCH_MAX; i++) {
            struct store_cert_meta m = {0};
            fill_meta(&m);
            snprintf(m.pool, sizeof(m.pool), "pool-0");
            rc = store_batch_add_cert(b, &m, der, BENCH_DER_LEN);
            ASSERT(rc == 0); /* STORE_BATCH_MAX items, valid meta */
        }
        rc = store_batch_commit(st, b); /* sets each item's seq, then clears the count */
        if (rc != 0) {
            goto out;
        }
        for (size_t i = 0; i < STORE_BATCH_MAX; i++) {
            seqs[i] = b->items[i].meta.seq;
        }
        /* in the publisher's batches */
        for (size_t i = 0; rc == 0 && i < STORE_BATCH_MAX; i += STORE_PUBLISH_BATCH_MAX) {
            size_t n = STORE_BATCH_MAX - i;
            rc = store_outbox_remove_many(
                st, "pool-0", seqs + i, n < STORE_PUBLISH_BATCH_MAX ? n : STORE_PUBLISH_BATCH_MAX);
        }
        if (rc != 0) {
            goto out;
        }
    }
out:
    if (rc != 0) {
        fprintf(stderr, "bench_store: preload: %s\n", strerror(-rc));
    }
    return rc;
}

/* scale_case runs batch BENCH_SCALE_BATCH, as certprovd does, on a preloaded store. */
static int scale_case(const char *dir, uint64_t *lat_ns, struct store_batch *b, const uint8_t *der)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/scale", dir);
    struct store *st = NULL;
    int rc = open_store(&st, path, true);
    if (rc != 0) {
        return rc;
    }
    size_t n = 0;
    uint64_t elapsed = 0;
    uint64_t cpu_used = 0;
    rc = preload(st, b, der);
    if (rc == 0) {
        rc = commit_loop(st, BENCH_SCALE_BATCH, lat_ns, b, der, &n, &elapsed, &cpu_used);
    }
    store_close(st);
    if (rc == 0) {
        char name[64];
        snprintf(name, sizeof(name), "store_commit_at%u_batch", BENCH_SCALE_CERTS);
        print_case(name, BENCH_SCALE_BATCH, n, elapsed, cpu_used, lat_ns);
    }
    return rc;
}

static const size_t g_sizes[] = {1, 16, 64, 256, 512};

/* dir_reset removes what the last case left in `dir` and waits until the file system has written
 * it back (sync), so that each case starts on a disk with nothing of the cases before it in
 * flight or on it. */
static int dir_reset(const char *dir)
{
    if (nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS) != 0 || mkdir(dir, 0700) != 0) {
        perror("bench_store: dir_reset");
        return -EIO;
    }
    sync();
    return 0;
}

/* batch_cases runs the four cases of one batch size, in the order they are printed. */
static int batch_cases(const char *dir, size_t batch_size, uint64_t *lat, struct store_batch *b,
                       const uint8_t *der)
{
    int rc = disk_case(dir, batch_size, lat, der);
    if (rc == 0) {
        rc = dir_reset(dir);
    }
    if (rc == 0) {
        rc = lmdb_case(dir, batch_size, lat, der);
    }
    if (rc == 0) {
        rc = dir_reset(dir);
    }
    if (rc == 0) {
        rc = run_case(dir, batch_size, lat, b, der, true);
    }
    if (rc == 0) {
        rc = dir_reset(dir);
    }
    if (rc == 0) {
        rc = run_case(dir, batch_size, lat, b, der, false);
    }
    if (rc == 0) {
        rc = dir_reset(dir);
    }
    return rc;
}

int main(int argc, char **argv)
{
    log_setup("bench_store", LOG_LEVEL_WARN);
    if (getrandom(g_rng, sizeof(g_rng), 0) != (ssize_t)sizeof(g_rng)) {
        perror("getrandom");
        return 1;
    }
    char dir[] = "/var/tmp/bench_store-XXXXXX";
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    make_users();
    static uint8_t der[BENCH_DER_LEN];
    for (size_t i = 0; i < sizeof(der); i++) {
        der[i] = (uint8_t)rng_next();
    }
    struct store_batch *b = calloc(1, sizeof(*b));
    uint64_t *lat = calloc(BENCH_COMMITS_MAX, sizeof(uint64_t));
    int rc = 0;
    if (b == NULL || lat == NULL) {
        rc = -ENOMEM;
        goto out;
    }
    /* An optional argument runs one batch size only (for profiling), or "scale" the store at
     * scale only. */
    bool scale_only = argc > 1 && strcmp(argv[1], "scale") == 0;
    size_t only = argc > 1 && !scale_only ? (size_t)strtoul(argv[1], NULL, 10) : 0;
    for (size_t i = 0; !scale_only && i < ARRAY_LEN(g_sizes); i++) {
        if (only == 0 || only == g_sizes[i]) {
            rc = batch_cases(dir, g_sizes[i], lat, b, der);
            if (rc != 0) {
                goto out;
            }
        }
    }
    if (only == 0) {
        rc = scale_case(dir, lat, b, der);
    }
out:
    free(lat);
    free(b);
    if (nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS) != 0) {
        perror("nftw");
        rc = -EIO;
    }
    return rc == 0 ? 0 : 1;
}
