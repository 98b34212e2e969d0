/* certprov-bench: the load generator and ceiling measurement (README, certprovctl, benchmark
 * issue).
 *
 * Parts: crypto.c (the CSR pool, cached in a file, and the crypto ceiling), load.c (the epoll
 * client: closed and open loop, HTTP/1.1 keep-alive, latency histogram, errors by status and
 * Code), server.c (spawning certprovd, /proc CPU and RSS, /metrics), main.c (options, the
 * scenario table, the report).
 *
 * BoringSSL is called directly from crypto.c, not through signer/: the ceiling must be the
 * library's raw cost (ECDSA verify + sign, nothing of ours), so that "server CPU per enrollment
 * / crypto CPU per enrollment" measures exactly our overhead; routing it through signer/ would
 * also widen signer.h for a tool. certprovctl already links BoringSSL the same way. */
#ifndef CERTPROV_BENCH_H
#define CERTPROV_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BENCH_USERS_MAX 100000u
#define BENCH_CSRS_MAX 200000u
#define BENCH_CSR_DER_MAX 1024u
#define BENCH_CONNS_MAX 20000u
#define BENCH_ERROR_KINDS_MAX 32u
#define BENCH_ERROR_NAME_MAX 48u
#define BENCH_PATH_MAX 512u
#define BENCH_SIGN_IN_DOMAIN "bench.example.com"

/* ---- CSR pool (crypto.c) ---- */
struct bench_csr {
    uint8_t der[BENCH_CSR_DER_MAX];
    uint16_t der_len;
};

/* bench_user_fill writes user i's sign-in name, extension and PIN (distinct for every i <
 * BENCH_USERS_MAX; the PIN passes the default PIN policy). */
void bench_user_fill(uint32_t i, char name[64], char ext[16], char pin[16]);

/* bench_csr_pool_load fills `out` (num entries, caller-owned) with P-256 CSRs, CSR j naming user
 * j % num_users. It reads `cache_path` when it holds exactly that pool, else generates the pool
 * on all cores and writes the cache. Returns 0 or a negative errno. */
int bench_csr_pool_load(struct bench_csr *out, uint32_t num, uint32_t num_users,
                        const char *cache_path);

/* The crypto ceiling: one enrollment's pure crypto (SHA-256 + ECDSA P-256 verify of the CSR,
 * SHA-256 + ECDSA P-256 sign of the certificate), on `threads` threads for about `ms`. */
struct bench_ceiling {
    uint32_t threads;
    double ops_per_s;         /* enrollments' crypto per second, all threads */
    double cpu_us_per_op;     /* thread CPU per enrollment's crypto */
    double sign_per_s_core;   /* ECDSA P-256 sign alone, one thread */
    double verify_per_s_core; /* ECDSA P-256 verify alone, one thread */
};
int bench_ceiling_measure(struct bench_ceiling *out, uint32_t threads, uint32_t ms);

/* ---- the load (load.c) ---- */
enum bench_proto { BENCH_PROTO_EST, BENCH_PROTO_SOAP };

/* Log-linear latency histogram (HDR-style): 64 sub-buckets per power of two of nanoseconds,
 * so every value is recorded within 1/64 (1.6 %). Bounded: values above 2^40 ns clamp. */
#define BENCH_HIST_SUB 64u
#define BENCH_HIST_EXP 40u
struct bench_hist {
    uint64_t counts[BENCH_HIST_EXP * BENCH_HIST_SUB];
    uint64_t total;
    uint64_t max_ns;
};
void bench_hist_add(struct bench_hist *h, uint64_t ns);
/* bench_hist_quantile returns the value (ns) at quantile q in [0,1], 0 when empty. */
uint64_t bench_hist_quantile(const struct bench_hist *h, double q);

struct bench_error_kind {
    char name[BENCH_ERROR_NAME_MAX]; /* "503 Overloaded", "conn reset", ... */
    uint64_t count;
};

struct bench_load_options {
    enum bench_proto proto;
    const char *host; /* IPv4 literal */
    uint16_t port;
    uint32_t concurrency;
    double duration_s; /* hard cap on sending; plus at most drain_s to finish in-flight */
    double drain_s;
    double rate; /* 0: closed loop; else open loop at this many requests per second */
    const struct bench_csr *csrs;
    uint32_t num_csrs;
    uint32_t num_users;
    uint64_t max_enrollments; /* 0: none; else stop sending once this many succeeded */
};

struct bench_load_result {
    uint64_t requests;    /* responses received plus failed requests */
    uint64_t enrollments; /* 200 with a certificate */
    uint64_t errors;
    double elapsed_s;        /* first send to last completion */
    double client_cpu_s;     /* the generator's own CPU */
    uint64_t backlog_max;    /* open loop: most intended sends waiting for a connection */
    struct bench_hist *hist; /* owned; free() it */
    struct bench_error_kind errs[BENCH_ERROR_KINDS_MAX];
    uint32_t num_errs;
};

/* bench_load_run runs one bounded load and fills `out`. Returns 0, or a negative errno when it
 * could not start (no memory, no socket); request failures are counted, not returned. */
int bench_load_run(struct bench_load_result *out, const struct bench_load_options *opt);

/* bench_idle_open opens `num` keep-alive connections, sends each GET /healthz and reads the
 * answer, and leaves them open; fds go into `fds` (caller-owned, num entries). Returns how many
 * are open. bench_idle_close closes them. */
uint32_t bench_idle_open(int *fds, uint32_t num, const char *host, uint16_t port);
void bench_idle_close(int *fds, uint32_t num);

/* ---- the server (server.c) ---- */
struct bench_server {
    int pid; /* 0: not known (--target without --pid) */
    bool spawned;
    char dir[BENCH_PATH_MAX]; /* spawn: the temp dir */
    char config[BENCH_PATH_MAX + 32];
    char host[64];
    uint16_t port;
};

/* bench_server_spawn creates a temp dir under `workdir`, a configuration, the CA, imports
 * `num_users` users (all in pool `pool1`, whose `store =` is `pool_store`) and starts
 * `bin`/certprovd; it returns once /healthz answers. */
int bench_server_spawn(struct bench_server *s, const char *bin, const char *workdir,
                       uint32_t num_users, uint32_t max_conns, const char *pool_store);
/* bench_server_spawn_key is bench_server_spawn with, when `pkcs11`, the issuing CA's key in a
 * SoftHSM2 token of its own under the temp dir ([ca] backend = pkcs11, `ca init --pkcs11`). */
int bench_server_spawn_key(struct bench_server *s, const char *bin, const char *workdir,
                           uint32_t num_users, uint32_t max_conns, const char *pool_store,
                           bool pkcs11);
/* bench_pkcs11_available tells whether SoftHSM2 (module and softhsm2-util) is installed. */
bool bench_pkcs11_available(void);
/* bench_free_port picks a loopback TCP port that nothing listens on now. */
int bench_free_port(uint16_t *out);
/* bench_users_import writes the users CSV and runs certprovctl -c config user import. */
int bench_users_import(const char *bin, const char *config, const char *dir, uint32_t num_users);
/* bench_server_stop sends SIGTERM, waits (then SIGKILL), and removes the temp dir unless keep. */
int bench_server_stop(struct bench_server *s, bool keep);
/* bench_proc_cpu_s returns utime+stime of pid in seconds, or -1. */
double bench_proc_cpu_s(int pid);
/* bench_proc_kib returns a "VmHWM:"/"VmRSS:" style field of /proc/pid/status in KiB, or -1. */
long bench_proc_kib(int pid, const char *field);

/* Sums and counts of the /metrics histograms the report uses. */
struct bench_metrics {
    bool ok;
    double batch_sum, batch_count;
    double commit_sum, commit_count;
    double group_sum, group_count;
    double pool_up;      /* certprov_pool_up of the first pool (-1: not reported) */
    double outbox_depth; /* certprov_outbox_depth of the first pool */
    double published;    /* certprov_published_total of the first pool */
};
int bench_metrics_scrape(struct bench_metrics *out, const char *host, uint16_t port);

#endif
