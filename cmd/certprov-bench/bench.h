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

#include <openssl/base.h> /* X509, EVP_PKEY (forward declarations) */

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

/* bench_csr_make makes a P-256 key and a CSR (DER) for it naming `cn`; the key into *out_key
 * (owned) when out_key is not NULL. Returns 0 or -EIO. */
int bench_csr_make(EVP_PKEY **out_key, struct bench_csr *out, const char *cn);

/* bench_user_fill writes user i's sign-in name, extension and PIN (distinct for every i <
 * BENCH_USERS_MAX; the PIN passes the default PIN policy). */
void bench_user_fill(uint32_t i, char name[64], char ext[16], char pin[16]);

/* bench_csr_pool_load fills `out` (num entries, caller-owned) with P-256 CSRs, CSR j naming user
 * j % num_users. It reads `cache_path` when it holds exactly that pool, else generates the pool
 * on all cores and writes the cache. Returns 0 or a negative errno. */
int bench_csr_pool_load(struct bench_csr *out, uint32_t num, uint32_t num_users,
                        const char *cache_path);

/* The crypto ceiling: one enrollment's pure crypto (SHA-256 + ECDSA P-256 verify of the CSR,
 * SHA-256 + ECDSA P-256 sign of the certificate), on `threads` threads for about `ms`. With
 * `tls`, also the server's crypto of a TLS handshake, on as many threads: a full one is the
 * ECDHE of the group BoringSSL's client and server agree on (X25519: key generation + shared
 * secret) plus the server's ECDSA P-256 signature (CertificateVerify, over a SHA-256 transcript
 * hash); a resumed one (TLS 1.3 psk_dhe_ke, or a TLS 1.2 ticket) is the ECDHE alone. The
 * ceiling of a scenario adds the CPU of the parts it does per enrollment. */
struct bench_ceiling {
    uint32_t threads;
    double ops_per_s;         /* enrollments' crypto per second, all threads */
    double cpu_us_per_op;     /* thread CPU per enrollment's crypto */
    double sign_per_s_core;   /* ECDSA P-256 sign alone, one thread */
    double verify_per_s_core; /* ECDSA P-256 verify alone, one thread */
    bool tls;                 /* the two below were measured */
    double hs_full_cpu_us;    /* thread CPU per full handshake's server crypto */
    double hs_resumed_cpu_us; /* thread CPU per resumed handshake's server crypto */
};
int bench_ceiling_measure(struct bench_ceiling *out, uint32_t threads, uint32_t ms, bool tls);

/* A client identity for renewal by certificate (renew-mtls): user `user`'s certificate, issued
 * by the appliance for `key` in the setup (bench_idents_enroll). */
struct bench_ident {
    uint32_t user;
    X509 *cert;
    EVP_PKEY *key;
};

/* ---- the load (load.c) ---- */
/* What each request is: EST simpleenroll and SOAP GetAndPublishCert with the user's PIN, EST
 * simplereenroll without one (the connection's client certificate names the user), or GET
 * /healthz (the handshake benchmarks: an "enrollment" is then a 200 answer). */
enum bench_proto {
    BENCH_PROTO_EST,
    BENCH_PROTO_SOAP,
    BENCH_PROTO_REENROLL,
    BENCH_PROTO_HEALTHZ,
    BENCH_PROTO_OCSP, /* POST /CertProv/ocsp: the "CSR" of a request is a DER OCSPRequest */
    /* The phone's path ([MS-OCAUTHWS] §3.2, §3.1): a Web ticket by PIN (WS-Trust RST to the
     * Web Ticket Service's PIN port), then GetAndPublishCert with the ticket and its HMAC-SHA1
     * proof on the same connection; an enrollment = the certificate, latency from the RST. */
    BENCH_PROTO_PHONE
};

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
    /* TLS: tls_ca_file NULL is plain HTTP; else every connection is TLS (1.2 or 1.3, ALPN
     * http/1.1), the server's chain verified against tls_ca_file and tls_name (also the SNI). */
    const char *tls_ca_file;
    const char *tls_name;
    bool new_conn; /* a new connection per request, sent with Connection: close */
    bool resume;   /* offer the session of the slot's previous handshake (TLS 1.3 tickets) */
    bool tls12;    /* TLS 1.2 only (its resumption by ticket skips the key exchange) */
    /* Client certificates: slot i presents idents[i % num_idents] and sends user
     * idents[..].user's request (num_idents 0: none). Borrowed for the run. */
    const struct bench_ident *idents;
    uint32_t num_idents;
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
    uint64_t hs_full;    /* TLS handshakes completed without resumption */
    uint64_t hs_resumed; /* TLS handshakes that resumed the offered session */
    uint16_t tls_group;  /* the key-exchange group of the last handshake (SSL_CURVE_*), 0 none */
};

/* bench_load_run runs one bounded load and fills `out`. Returns 0, or a negative errno when it
 * could not start (no memory, no socket); request failures are counted, not returned. */
int bench_load_run(struct bench_load_result *out, const struct bench_load_options *opt);

/* bench_idle_open opens `num` keep-alive connections, sends each GET /healthz and reads the
 * answer, and leaves them open; fds go into `fds` (caller-owned, num entries). Returns how many
 * are open. bench_idle_close closes them. */
uint32_t bench_idle_open(int *fds, uint32_t num, const char *host, uint16_t port);
void bench_idle_close(int *fds, uint32_t num);

/* ---- renewal identities (tls.c) ---- */
/* bench_idents_enroll gives users 0..num-1 a certificate each: a fresh P-256 key, a CSR naming
 * the user, EST simpleenroll with the PIN over plain HTTP on one keep-alive connection to
 * host:port. `out` is caller-owned (num entries); on success each entry owns its cert and key
 * (bench_idents_free). Returns 0, or a negative errno (what failed is printed on stderr). */
int bench_idents_enroll(struct bench_ident *out, uint32_t num, const char *host, uint16_t port);
/* bench_idents_free frees the certificates and keys of `num` entries (zeroed entries are fine). */
void bench_idents_free(struct bench_ident *ids, uint32_t num);

/* ---- the server (server.c) ---- */
struct bench_server {
    int pid; /* 0: not known (--target without --pid) */
    bool spawned;
    char dir[BENCH_PATH_MAX]; /* spawn: the temp dir */
    char config[BENCH_PATH_MAX + 32];
    char host[64];
    uint16_t port;
    uint16_t tls_port;               /* 0: no TLS listener known */
    char chain[BENCH_PATH_MAX + 32]; /* the store's chain.pem: what TLS clients trust */
};
#define BENCH_TLS_NAME "bench.example.com" /* [server] name of a spawned certprovd: SNI, SAN */

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
/* bench_ocsp_requests fills out[0..*out_num) (at most `cap`) with DER OCSP requests, one
 * certificate each, no nonce, for certificates the server at `config` issued (`bin`/certprovctl
 * cert list --json) and its issuing CA (the first certificate of `chain_pem`) (ocsp.c). Returns
 * 0, -ENOENT (no certificate issued yet), or a negative errno. */
int bench_ocsp_requests(struct bench_csr *out, uint32_t cap, uint32_t *out_num, const char *bin,
                        const char *config, const char *chain_pem);
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

/* The server's threads by role, from their names (base_thread_name): what each role did in a
 * run, for the wake-ups per enrollment and the run-queue waits (issue 17). */
enum bench_role {
    BENCH_ROLE_RING,
    BENCH_ROLE_WRITER,
    BENCH_ROLE_PUBLISHER,
    BENCH_ROLE_OTHER,
    BENCH_ROLE_MAX_
};
struct bench_sched {
    bool ok;
    /* per role, summed over its threads (threads that ended between two reads are lost) */
    unsigned long long wakeups[BENCH_ROLE_MAX_];   /* voluntary context switches: each is a
                                                    * sleep that a wake-up ends */
    unsigned long long preempted[BENCH_ROLE_MAX_]; /* involuntary context switches */
    unsigned long long runq_ns[BENCH_ROLE_MAX_];   /* time runnable but waiting for a CPU */
};
extern const char *const bench_role_names[BENCH_ROLE_MAX_];
/* bench_proc_sched reads /proc/pid/task/ * /{comm,status,schedstat} into *out (out->ok false
 * when the process cannot be read). */
void bench_proc_sched(struct bench_sched *out, int pid);

/* Sums and counts of the /metrics histograms the report uses. */
struct bench_metrics {
    bool ok;
    double batch_sum, batch_count;
    double commit_sum, commit_count;
    double group_sum, group_count;
    double pool_up;      /* certprov_pool_up of the first pool (-1: not reported) */
    double outbox_depth; /* certprov_outbox_depth of the first pool */
    double published;    /* certprov_published_total of the first pool */
    double hs_full;      /* certprov_tls_handshakes_total{result="full"} */
    double hs_resumed;   /* certprov_tls_handshakes_total{result="resumed"} */
};
int bench_metrics_scrape(struct bench_metrics *out, const char *host, uint16_t port);

#endif
