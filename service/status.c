/* /readyz and /metrics: readiness (JSON) and the Prometheus text of the service's counters,
 * the engine's statistics and each pool's publication state. */
#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include "base/base.h"
#include "ioring/ioring.h"
#include "service/internal.h"

static const char *result_name(int result)
{
    if (result == SVC_RESULT_OK) {
        return "OK";
    }
    if (result == SVC_RESULT_NOT_FOUND) {
        return "NotFound";
    }
    return signer_code_name((enum signer_code)result);
}

/* text is an append-only bounded buffer; a full buffer drops the rest (never overflows). */
struct text {
    char *p;
    size_t cap;
    size_t len;
};

__attribute__((format(printf, 2, 3))) static void put(struct text *t, const char *fmt, ...)
{
    if (t->len >= t->cap) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(t->p + t->len, t->cap - t->len, fmt, ap);
    va_end(ap);
    t->len = n < 0 || (size_t)n >= t->cap - t->len ? t->cap : t->len + (size_t)n;
}

static void put_histogram(struct text *t, const char *name, const char *labels,
                          const struct svc_histogram *h, double scale)
{
    uint64_t cum = 0;
    const char *sep = labels[0] != '\0' ? "," : "";
    for (size_t i = 0; i <= SVC_BUCKETS; i++) {
        cum += atomic_load_explicit(&h->buckets[i], memory_order_relaxed);
        if (i < SVC_BUCKETS) {
            put(t, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels, sep,
                (double)h->bounds[i] * scale, (unsigned long long)cum);
        } else {
            put(t, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels, sep, (unsigned long long)cum);
        }
    }
    /* Sums grow without end: printed in full (%g would round them to 6 digits, and rate()
     * over them would jump). */
    put(t, "%s_sum{%s} %.17g\n%s_count{%s} %llu\n", name, labels,
        (double)atomic_load(&h->sum) * scale, name, labels,
        (unsigned long long)atomic_load(&h->count));
}

static void put_requests(struct text *t, struct service *svc)
{
    put(t, "# HELP certprov_requests_total Requests answered, by route and result code.\n"
           "# TYPE certprov_requests_total counter\n");
    for (int r = 0; r < SVC_ROUTE_MAX_; r++) {
        for (int c = 0; c < SVC_RESULT_MAX_; c++) {
            uint64_t v = atomic_load(&svc->metrics.requests[r][c]);
            if (v != 0) {
                put(t, "certprov_requests_total{route=\"%s\",code=\"%s\"} %llu\n",
                    svc_route_name((enum svc_route)r), result_name(c), (unsigned long long)v);
            }
        }
    }
}

static void put_latencies(struct text *t, struct service *svc)
{
    const struct svc_metrics *m = &svc->metrics;
    put(t, "# HELP certprov_issuance_seconds Enrollment latency, request to answer.\n"
           "# TYPE certprov_issuance_seconds histogram\n");
    put_histogram(t, "certprov_issuance_seconds", "", &m->stage_us[SVC_STAGE_TOTAL], 1e-6);
    put(t, "# HELP certprov_stage_seconds Time spent per enrollment stage.\n"
           "# TYPE certprov_stage_seconds histogram\n");
    for (int s = 0; s < SVC_STAGE_TOTAL; s++) {
        char labels[32];
        snprintf(labels, sizeof(labels), "stage=\"%s\"", svc_stage_name((enum svc_stage)s));
        put_histogram(t, "certprov_stage_seconds", labels, &m->stage_us[s], 1e-6);
    }
    put(t, "# HELP certprov_batch_size Certificates signed per ring batch.\n"
           "# TYPE certprov_batch_size histogram\n");
    put_histogram(t, "certprov_batch_size", "", &m->batch_size, 1);
    put(t, "# HELP certprov_commit_group_size Enrollments per LMDB group commit.\n"
           "# TYPE certprov_commit_group_size histogram\n");
    put_histogram(t, "certprov_commit_group_size", "", &m->commit_size, 1);
    put(t, "# HELP certprov_lmdb_commit_seconds LMDB group commit latency (with sync).\n"
           "# TYPE certprov_lmdb_commit_seconds histogram\n");
    put_histogram(t, "certprov_lmdb_commit_seconds", "", &m->commit_us, 1e-6);
}

/* put_tls writes the handshakes on tls_listen (all zero without one). */
static void put_tls(struct text *t, const struct ioring_stats *io)
{
    put(t,
        "# HELP certprov_tls_handshakes_total TLS handshakes by result: full, resumed (a ticket: "
        "no signature), failed (the connection ended first: not TLS, a bad or truncated record, "
        "a refused version or suite, the client gone, the deadline), refused (max_handshakes "
        "in progress).\n"
        "# TYPE certprov_tls_handshakes_total counter\n"
        "certprov_tls_handshakes_total{result=\"full\"} %llu\n"
        "certprov_tls_handshakes_total{result=\"resumed\"} %llu\n"
        "certprov_tls_handshakes_total{result=\"failed\"} %llu\n"
        "certprov_tls_handshakes_total{result=\"refused\"} %llu\n"
        "# HELP certprov_tls_client_certificates_total TLS handshakes that presented a client "
        "certificate.\n"
        "# TYPE certprov_tls_client_certificates_total counter\n"
        "certprov_tls_client_certificates_total %llu\n",
        (unsigned long long)io->tls_full, (unsigned long long)io->tls_resumed,
        (unsigned long long)io->tls_failed, (unsigned long long)io->tls_refused,
        (unsigned long long)io->tls_client_certs);
}

static void put_counters(struct text *t, struct service *svc)
{
    const struct svc_metrics *m = &svc->metrics;
    struct ioring_stats io = {0};
    struct ioring_engine *eng = atomic_load(&svc->eng);
    if (eng != NULL) {
        ioring_engine_stats_get(eng, &io);
    }
    put(t,
        "# HELP certprov_certificates_issued_total Certificates issued online.\n"
        "# TYPE certprov_certificates_issued_total counter\n"
        "certprov_certificates_issued_total %llu\n"
        "# HELP certprov_pin_failures_total Refused sign-ins (wrong PIN, unknown login, locked).\n"
        "# TYPE certprov_pin_failures_total counter\n"
        "certprov_pin_failures_total %llu\n"
        "# HELP certprov_pin_lockouts_total Users locked by failed sign-ins.\n"
        "# TYPE certprov_pin_lockouts_total counter\n"
        "certprov_pin_lockouts_total %llu\n"
        "# HELP certprov_serial_clashes_total Serials drawn twice (re-signed).\n"
        "# TYPE certprov_serial_clashes_total counter\n"
        "certprov_serial_clashes_total %llu\n"
        "# HELP certprov_writer_queue_depth Enrollments waiting for the group-commit writer.\n"
        "# TYPE certprov_writer_queue_depth gauge\n"
        "certprov_writer_queue_depth %llu\n"
        "# HELP certprov_connections_open Open client connections.\n"
        "# TYPE certprov_connections_open gauge\n"
        "certprov_connections_open %llu\n"
        "# HELP certprov_connections_accepted_total Client connections accepted.\n"
        "# TYPE certprov_connections_accepted_total counter\n"
        "certprov_connections_accepted_total %llu\n"
        "# HELP certprov_connections_refused_total Client connections closed at once at a bound.\n"
        "# TYPE certprov_connections_refused_total counter\n"
        "certprov_connections_refused_total %llu\n"
        "# HELP certprov_connection_timeouts_total Connections closed by a deadline.\n"
        "# TYPE certprov_connection_timeouts_total counter\n"
        "certprov_connection_timeouts_total %llu\n"
        "# HELP certprov_engine_responses_total Answers of the engine itself, by HTTP status.\n"
        "# TYPE certprov_engine_responses_total counter\n"
        "certprov_engine_responses_total{code=\"503\"} %llu\n",
        (unsigned long long)atomic_load(&m->certificates),
        (unsigned long long)atomic_load(&m->pin_failures),
        (unsigned long long)atomic_load(&m->lockouts),
        (unsigned long long)atomic_load(&m->serial_clashes),
        (unsigned long long)atomic_load(&svc->queued), (unsigned long long)io.connections_open,
        (unsigned long long)io.connections_accepted, (unsigned long long)io.connections_refused,
        (unsigned long long)io.timeouts, (unsigned long long)io.responses_503);
    put_tls(t, &io);
}

#ifndef CERTPROV_VERSION
#define CERTPROV_VERSION "unknown" /* the Makefile passes git describe */
#endif

/* proc_cpu_rss reads the process's CPU seconds (user + system) and resident bytes from
 * /proc/self/stat (fields 14, 15 and 24, proc(5)). Returns 0 or -1. */
static int proc_cpu_rss(double *out_cpu_s, uint64_t *out_rss)
{
    char buf[1024];
    FILE *f = fopen("/proc/self/stat", "re");
    if (f == NULL) {
        return -1;
    }
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')'); /* the command name may hold spaces */
    unsigned long long utime = 0;
    unsigned long long stime = 0;
    long long rss_pages = 0;
    if (p == NULL || sscanf(p + 2,
                            "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d "
                            "%*d %*d %*d %*u %*u %lld",
                            &utime, &stime, &rss_pages) != 3) {
        return -1;
    }
    long tck = sysconf(_SC_CLK_TCK);
    long page = sysconf(_SC_PAGESIZE);
    *out_cpu_s = (double)(utime + stime) / (double)(tck > 0 ? tck : 100);
    *out_rss = (uint64_t)(rss_pages > 0 ? rss_pages : 0) * (uint64_t)(page > 0 ? page : 4096);
    return 0;
}

/* proc_open_fds counts /proc/self/fd (the directory's own descriptor included, as Prometheus's
 * client libraries count). Returns the count or -1. */
static long proc_open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL) {
        return -1;
    }
    long n = 0;
    for (struct dirent *e = readdir(d); e != NULL; e = readdir(d)) { /* bounded by the fd limit */
        n += e->d_name[0] != '.';
    }
    closedir(d);
    return n;
}

/* put_build_process writes certprov_build_info and the standard process_* series (the names and
 * meanings of Prometheus's client libraries). */
static void put_build_process(struct text *t, struct service *svc)
{
    put(t,
        "# HELP certprov_build_info The build: certprov's version and BoringSSL's.\n"
        "# TYPE certprov_build_info gauge\n"
        "certprov_build_info{version=\"%s\",boringssl=\"%s\"} 1\n",
        CERTPROV_VERSION, signer_crypto_version());
    double cpu_s = 0;
    uint64_t rss = 0;
    if (proc_cpu_rss(&cpu_s, &rss) == 0) {
        put(t,
            "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n"
            "# TYPE process_cpu_seconds_total counter\n"
            "process_cpu_seconds_total %.2f\n"
            "# HELP process_resident_memory_bytes Resident memory size in bytes.\n"
            "# TYPE process_resident_memory_bytes gauge\n"
            "process_resident_memory_bytes %llu\n",
            cpu_s, (unsigned long long)rss);
    }
    long fds = proc_open_fds();
    if (fds >= 0) {
        put(t,
            "# HELP process_open_fds Number of open file descriptors.\n"
            "# TYPE process_open_fds gauge\n"
            "process_open_fds %ld\n",
            fds);
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
        put(t,
            "# HELP process_max_fds Maximum number of open file descriptors.\n"
            "# TYPE process_max_fds gauge\n"
            "process_max_fds %llu\n",
            (unsigned long long)rl.rlim_cur);
    }
    put(t,
        "# HELP process_start_time_seconds Start time of the process since unix epoch in "
        "seconds.\n"
        "# TYPE process_start_time_seconds gauge\n"
        "process_start_time_seconds %lld\n",
        (long long)svc->start_s);
}

/* pool_state_name: "up", "down", or "unknown" before the publisher's first attempt. */
/* put_label_value writes `v` as a Prometheus label value: '\\', '"' and newline escaped. */
static void put_label_value(struct text *t, const char *v)
{
    for (const char *p = v; *p != '\0'; p++) {
        if (*p == '\\' || *p == '"') {
            put(t, "\\%c", *p);
        } else if (*p == '\n') {
            put(t, "\\n");
        } else {
            put(t, "%c", *p);
        }
    }
}

/* put_ca_expiry: seconds until each certificate of the served chain expires (negative once
 * expired), the TLS leaf included. */
static void put_ca_expiry(struct text *t, const struct service *svc)
{
    int64_t now = clock_real_s();
    put(t, "# HELP certprov_ca_expiry_seconds Seconds until each certificate of the served chain "
           "expires (negative: expired).\n"
           "# TYPE certprov_ca_expiry_seconds gauge\n");
    for (size_t i = 0; i < svc->num_ca_certs; i++) {
        const struct svc_ca_cert *c = &svc->ca_certs[i];
        put(t, "certprov_ca_expiry_seconds{role=\"%s\",subject=\"", c->role);
        put_label_value(t, c->subject);
        put(t, "\"} %lld\n", (long long)(c->not_after_s - now));
    }
}

static const char *pool_state_name(const struct store_pool_stats *ps, bool have)
{
    if (!have || ps->state.since_ms == 0) {
        return "unknown";
    }
    return ps->state.up ? "up" : "down";
}

/* put_pool_json names the pool and its state for anyone who asks /readyz: never the pool
 * store's connection string or its last error, whose text names hosts and sockets. Those are
 * for the operator: the log line of the outage and `certprovctl pool status`. */
static void put_pool_json(struct text *t, const char *name, const struct store_pool_stats *ps,
                          bool have, int64_t now_ms, bool first)
{
    double age = ps->oldest_ms == 0 ? 0 : (double)(now_ms - ps->oldest_ms) / 1000.0;
    put(t,
        "%s\"%s\":{\"state\":\"%s\",\"outbox_depth\":%llu,\"oldest_age_s\":%.3f,"
        "\"since_s\":%lld}",
        first ? "" : ",", name, pool_state_name(ps, have), (unsigned long long)ps->depth, age,
        (long long)(ps->state.since_ms / 1000));
}

static void put_pool_metrics(struct text *t, const char *name, const struct store_pool_stats *ps,
                             bool have, int64_t now_ms)
{
    double age = ps->oldest_ms == 0 ? 0 : (double)(now_ms - ps->oldest_ms) / 1000.0;
    put(t, "certprov_outbox_depth{pool=\"%s\"} %llu\n", name, (unsigned long long)ps->depth);
    put(t, "certprov_outbox_oldest_age_seconds{pool=\"%s\"} %.3f\n", name, age);
    if (!have) {
        return;
    }
    char labels[STORE_POOL_MAX + 16];
    snprintf(labels, sizeof(labels), "pool=\"%s\"", name);
    put(t, "certprov_pool_up{%s} %d\n", labels, ps->state.up ? 1 : 0);
    put(t, "certprov_publish_failures_total{%s} %llu\n", labels, (unsigned long long)ps->failures);
    put(t, "certprov_published_total{%s} %llu\n", labels, (unsigned long long)ps->published);
    put(t, "certprov_publish_parked_total{%s} %llu\n", labels, (unsigned long long)ps->parked);
    const char *hn[2] = {"certprov_publication_lag_seconds", "certprov_publish_latency_seconds"};
    const uint64_t *hb[2] = {ps->lag_buckets, ps->latency_buckets};
    uint64_t hs[2] = {ps->lag_sum_ms, ps->latency_sum_ms};
    uint64_t hc[2] = {ps->lag_count, ps->latency_count};
    for (size_t h = 0; h < 2; h++) {
        uint64_t cum = 0;
        for (size_t i = 0; i <= STORE_LAG_BUCKETS; i++) {
            cum += hb[h][i];
            if (i < STORE_LAG_BUCKETS) {
                put(t, "%s_bucket{%s,le=\"%g\"} %llu\n", hn[h], labels,
                    (double)store_lag_bounds_ms[i] / 1000.0, (unsigned long long)cum);
            } else {
                put(t, "%s_bucket{%s,le=\"+Inf\"} %llu\n", hn[h], labels, (unsigned long long)cum);
            }
        }
        put(t, "%s_sum{%s} %.3f\n%s_count{%s} %llu\n", hn[h], labels, (double)hs[h] / 1000.0, hn[h],
            labels, (unsigned long long)hc[h]);
    }
}

static void put_pools(struct text *t, struct service *svc, bool json)
{
    int64_t now_ms = clock_real_ms();
    if (!json) {
        put(t, "# HELP certprov_outbox_depth Certificates waiting to be published, per pool.\n"
               "# TYPE certprov_outbox_depth gauge\n"
               "# HELP certprov_outbox_oldest_age_seconds Age of the oldest waiting certificate.\n"
               "# TYPE certprov_outbox_oldest_age_seconds gauge\n"
               "# HELP certprov_pool_up 1 when the last attempt reached the pool store.\n"
               "# TYPE certprov_pool_up gauge\n"
               "# HELP certprov_publish_failures_total Failed publication attempts.\n"
               "# TYPE certprov_publish_failures_total counter\n"
               "# HELP certprov_published_total Certificates acknowledged by the pool store.\n"
               "# TYPE certprov_published_total counter\n"
               "# HELP certprov_publish_parked_total Outbox entries parked after a permanent "
               "error.\n"
               "# TYPE certprov_publish_parked_total counter\n"
               "# HELP certprov_publication_lag_seconds Commit of a certificate to its pool "
               "store's acknowledgement.\n"
               "# TYPE certprov_publication_lag_seconds histogram\n"
               "# HELP certprov_publish_latency_seconds Round trip of one publication batch.\n"
               "# TYPE certprov_publish_latency_seconds histogram\n");
    }
    for (size_t i = 0; i < svc->cfg->num_pools; i++) {
        const char *name = svc->cfg->pools[i].name;
        static _Thread_local struct store_pool_stats ps;
        memset(&ps, 0, sizeof(ps));
        bool have = svc->pub != NULL && store_publisher_stats(svc->pub, &ps, name) == 0;
        if (!have) {
            (void)store_outbox_depth(svc->st, name, &ps.depth, &ps.oldest_ms);
        }
        if (json) {
            put_pool_json(t, name, &ps, have, now_ms, i == 0);
        } else {
            put_pool_metrics(t, name, &ps, have, now_ms);
        }
    }
}

/* directory_state: "ok" (connected, every change applied), "stale" (serving from the replica
 * while the directory cannot be read: lag_s since it was last known current), or "loading"
 * (no complete load yet: the replica does not hold the fleet's users). */
static const char *directory_state(struct service *svc, struct store_directory_stats *ds,
                                   int64_t *out_lag_s)
{
    store_directory_stats(svc->dir, ds);
    int64_t lag_ms = ds->up ? 0 : clock_real_ms() - ds->current_ms;
    *out_lag_s = lag_ms > 0 ? lag_ms / 1000 : 0;
    return !ds->loaded ? "loading" : ds->up ? "ok" : "stale";
}

static void put_directory(struct text *t, struct service *svc, bool json)
{
    if (svc->dir == NULL) {
        return;
    }
    static _Thread_local struct store_directory_stats ds;
    int64_t lag_s = 0;
    const char *state = directory_state(svc, &ds, &lag_s);
    if (json) {
        put(t, ",\"directory\":\"%s\",\"directory_lag_s\":%lld,\"directory_seq\":%llu%s", state,
            (long long)lag_s, (unsigned long long)ds.seq,
            ds.key_refused ? ",\"directory_reason\":\"pin_key\"" : "");
        return;
    }
    put(t,
        "# HELP certprov_directory_up 1 when the directory thread reads the fleet directory.\n"
        "# TYPE certprov_directory_up gauge\ncertprov_directory_up %d\n"
        "# HELP certprov_directory_lag_seconds Since the replica last held every change of the "
        "directory (0 while connected).\n"
        "# TYPE certprov_directory_lag_seconds gauge\ncertprov_directory_lag_seconds %lld\n"
        "# HELP certprov_directory_seq The last change of the directory applied to the replica.\n"
        "# TYPE certprov_directory_seq gauge\ncertprov_directory_seq %llu\n"
        "# HELP certprov_directory_applied_total Directory rows applied to the replica.\n"
        "# TYPE certprov_directory_applied_total counter\ncertprov_directory_applied_total %llu\n"
        "# HELP certprov_directory_conflicts_total Directory rows the replica refused.\n"
        "# TYPE certprov_directory_conflicts_total counter\n"
        "certprov_directory_conflicts_total %llu\n"
        "# HELP certprov_directory_lockouts_shipped_total Lockout states written to the "
        "directory.\n"
        "# TYPE certprov_directory_lockouts_shipped_total counter\n"
        "certprov_directory_lockouts_shipped_total %llu\n"
        "# HELP certprov_directory_lockouts_dropped_total Lockout states not shipped: the queue "
        "was full.\n"
        "# TYPE certprov_directory_lockouts_dropped_total counter\n"
        "certprov_directory_lockouts_dropped_total %llu\n"
        "# HELP certprov_directory_revocations_applied_total Revocation rows of the directory "
        "applied to the replica.\n"
        "# TYPE certprov_directory_revocations_applied_total counter\n"
        "certprov_directory_revocations_applied_total %llu\n"
        "# HELP certprov_directory_fleet_cas The fleet's issuing CAs accepted for renewal.\n"
        "# TYPE certprov_directory_fleet_cas gauge\ncertprov_directory_fleet_cas %u\n"
        "# HELP certprov_directory_serials_shipped_total Issued serials written to the fleet's "
        "serial index.\n"
        "# TYPE certprov_directory_serials_shipped_total counter\n"
        "certprov_directory_serials_shipped_total %llu\n"
        "# HELP certprov_directory_serials_dropped_total Issued serials not shipped: the queue "
        "was full.\n"
        "# TYPE certprov_directory_serials_dropped_total counter\n"
        "certprov_directory_serials_dropped_total %llu\n"
        "# HELP certprov_directory_serial_clashes_total Issued serials another appliance had "
        "issued.\n"
        "# TYPE certprov_directory_serial_clashes_total counter\n"
        "certprov_directory_serial_clashes_total %llu\n",
        ds.up ? 1 : 0, (long long)lag_s, (unsigned long long)ds.seq, (unsigned long long)ds.applied,
        (unsigned long long)ds.conflicts, (unsigned long long)ds.lockout_shipped,
        (unsigned long long)ds.lockout_dropped, (unsigned long long)ds.revocations_applied,
        (unsigned)ds.fleet_cas, (unsigned long long)ds.serials_shipped,
        (unsigned long long)ds.serials_dropped, (unsigned long long)ds.serial_clashes);
}

/* directory_loading: with [directory], the replica has never held a complete load. */
static bool directory_loading(struct service *svc)
{
    if (svc->dir == NULL) {
        return false;
    }
    struct store_directory_stats ds;
    store_directory_stats(svc->dir, &ds);
    return !ds.loaded;
}

const char *svc_store_condition_name(enum store_fault fault)
{
    switch (fault) {
    case STORE_FAULT_NONE:
        return "ok";
    case STORE_FAULT_MAP_FULL:
    case STORE_FAULT_DISK_FULL:
        return "full";
    case STORE_FAULT_IO:
    case STORE_FAULT_READ_ONLY:
        return "unwritable";
    case STORE_FAULT_MAX_:
        break;
    }
    ASSERT(false && "enum store_fault");
    return NULL;
}

const char *svc_store_reason_name(enum store_fault fault)
{
    static const char *const names[] = {
        [STORE_FAULT_NONE] = "none",           [STORE_FAULT_MAP_FULL] = "map_full",
        [STORE_FAULT_DISK_FULL] = "disk_full", [STORE_FAULT_IO] = "io_error",
        [STORE_FAULT_READ_ONLY] = "read_only",
    };
    static_assert(ARRAY_LEN(names) == STORE_FAULT_MAX_, "a name for every store fault");
    ASSERT((unsigned)fault < STORE_FAULT_MAX_);
    return names[fault];
}

/* store_state: "full" or "unwritable" while the store has a fault (service/writer.c
 * store_condition), else "nearly_full" from 80 % of the map on (long before enrollments are
 * refused), else "ok". */
static const char *store_state(struct service *svc, enum store_fault fault)
{
    if (fault != STORE_FAULT_NONE) {
        return svc_store_condition_name(fault);
    }
    uint64_t used = 0;
    uint64_t map = 0;
    if (store_space_get(svc->st, &used, &map) == 0 && map > 0 && used * 100 >= map * 80) {
        return "nearly_full";
    }
    return "ok";
}

/* Not ready: a ring has no free enrollment slot, or the store is full or unwritable. The engine
 * keeps inflight_reserve of its slots for requests without a body, so enrollments (which have
 * one) never get those: a ring is full when no more than that many items are free. */
static bool service_ready(struct service *svc, enum store_fault fault, uint64_t *out_free)
{
    bool ready = fault == STORE_FAULT_NONE;
    uint64_t total_free = 0;
    for (uint32_t i = 0; i < svc->num_rings; i++) {
        uint32_t n = svc_items_free(svc, i);
        uint32_t keep =
            svc->cfg->inflight_reserve < svc->rings[i].cap ? svc->cfg->inflight_reserve : 0;
        ready = ready && n > keep;
        total_free += n;
    }
    *out_free = total_free;
    return ready;
}

size_t svc_readyz(struct service *svc, char *out, size_t cap, bool *out_ready)
{
    ASSERT(cap > 0);
    struct text t = {.p = out, .cap = cap};
    enum store_fault fault = (enum store_fault)atomic_load(&svc->store_fault);
    uint64_t free_slots = 0;
    bool ready = service_ready(svc, fault, &free_slots);
    /* A stale directory keeps the appliance ready (the replica serves: a directory outage must
     * not take the fleet out of the balancer); one that never loaded does not. */
    ready = ready && !directory_loading(svc);
    const char *key_reason = NULL;
    bool key_down = hsm_key_status(signer_ca_get_key(svc->ca), &key_reason) != 0;
    ready = ready && !key_down;
    put(&t, "{\"ready\":%s,\"key_backend\":\"%s\",\"key\":\"%s\",\"store\":\"%s\",",
        ready ? "true" : "false", key_down ? "down" : svc->cfg->ca_backend,
        hsm_key_type_name(hsm_key_get_type(signer_ca_get_key(svc->ca))), store_state(svc, fault));
    if (key_down) { /* a static CKR_ word or "sign_timeout": no quoting needed */
        put(&t, "\"key_reason\":\"%s\",", key_reason);
    }
    if (fault != STORE_FAULT_NONE) {
        put(&t, "\"store_reason\":\"%s\",\"store_since_s\":%lld,", svc_store_reason_name(fault),
            (long long)atomic_load(&svc->store_fault_since_s));
    }
    put(&t, "\"free_slots\":%llu,\"pools\":{", (unsigned long long)free_slots);
    put_pools(&t, svc, true);
    put(&t, "}");
    put_directory(&t, svc, true);
    put(&t, "}\n");
    ASSERT(t.len < cap); /* SVC_RESPONSE_MAX holds every pool's entry */
    *out_ready = ready;
    return t.len;
}

void svc_respond_status(struct service *svc, struct ioring_request *req, enum svc_route route)
{
    static _Thread_local char buf[SVC_RESPONSE_MAX];
    struct text t = {.p = buf, .cap = sizeof(buf)};
    int status = 200;
    const char *type = "text/plain; version=0.0.4";
    int result = SVC_RESULT_OK;
    if (route == SVC_ROUTE_READYZ) {
        bool ready = false;
        t.len = svc_readyz(svc, buf, sizeof(buf), &ready);
        status = ready ? 200 : 503;
        type = "application/json";
        if (!ready) {
            result = atomic_load(&svc->store_fault) != STORE_FAULT_NONE
                         ? SIGNER_CODE_STORE_UNAVAILABLE
                     : hsm_key_status(signer_ca_get_key(svc->ca), NULL) != 0
                         ? SIGNER_CODE_SIGNING_UNAVAILABLE
                     : directory_loading(svc) ? SIGNER_CODE_STORE_UNAVAILABLE
                                              : SIGNER_CODE_OVERLOADED;
        }
    } else {
        ASSERT(route == SVC_ROUTE_METRICS);
        put_requests(&t, svc);
        put_latencies(&t, svc);
        put_counters(&t, svc);
        put_ca_expiry(&t, svc);
        put_pools(&t, svc, false);
        put_directory(&t, svc, false);
        put_build_process(&t, svc);
    }
    ASSERT(t.len < t.cap);
    svc_log_simple(req, route, status);
    svc_metrics_request(svc, route, result);
    svc_respond(svc, req, status, type, status == 503 ? "Retry-After: 1\r\n" : NULL, buf, t.len);
}
