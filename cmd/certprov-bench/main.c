/* certprov-bench: the load generator and ceiling measurement (README, certprovctl, the benchmark
 * issue).
 *
 * One invocation measures the crypto ceiling on all cores (server idle), then runs every
 * (scenario, concurrency) of its matrix against one server, each run bounded in time, and prints
 * a table (and, with --json, one JSON object per run and line). The headline figure is
 * "server CPU per enrollment / crypto CPU per enrollment": it holds on a noisy shared machine
 * where absolute rates drift. */
#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <openssl/ssl.h> /* SSL_get_curve_name, SSL_CURVE_X25519: what the handshakes agreed */

#include "base/base.h"
#include "cmd/certprov-bench/bench.h"

#define MAIN_LIST_MAX 16u
#define MAIN_IDLE_MAX 20000u
#define MAIN_PUBLISH_WAIT_MS 30000ull
#define MAIN_PRELOAD_MAX 10000000u /* --preload: certificates */
#define MAIN_PRELOAD_CONNS 256u
#define MAIN_SUMS_MAX (MAIN_LIST_MAX * MAIN_LIST_MAX) /* closed-loop runs kept for the bars */
/* The bars of the TLS benchmark (README, issue 12). */
#define BAR_SOAP_TLS_MIN 0.70 /* soap-tls: at least this share of its own ceiling */
#define BAR_EST_TLS_MIN 0.90  /* est-tls: enrollments/s at least this share of est's */
#define BAR_RESUMED_MAX 0.25  /* tls-resumed server CPU per handshake / tls-full's */
#define BAR_OCSP_MIN 10000.0  /* ocsp responses/s (cached answers), issue 15 */

/* What a scenario's ceiling is made of (struct bench_ceiling): the enrollment's crypto, plus
 * the server's crypto of the handshake it does per enrollment; or a handshake's alone. */
enum ceil_kind {
    CEIL_ENROLL,
    CEIL_ENROLL_HS_FULL,
    CEIL_ENROLL_HS_RESUMED,
    CEIL_HS_FULL,
    CEIL_HS_RESUMED,
    CEIL_ENROLL_TICKET, /* an enrollment and a Web ticket's (ticket_us) */
    CEIL_NONE           /* TLS 1.2 resumption: no public-key crypto at all */
};

/* The scenario table. Scenarios whose server side does not exist yet are listed with the reason;
 * they print "skipped: ..." and never a number. */
struct scenario {
    const char *name;
    enum bench_proto proto;
    const char *skip; /* NULL: runnable */
    const char *what;
    bool pool_down; /* runs against its own certprovd whose pool store cannot be reached */
    bool pkcs11;    /* runs against its own certprovd whose CA key is in a SoftHSM2 token */
    bool ocsp;      /* OCSP requests for certificates a setup enrolls first */
    bool tls;       /* on tls_listen (needs --spawn) */
    bool new_conn;  /* a new connection per request */
    bool resume;    /* each slot resumes its previous session */
    bool mtls;      /* each slot presents a user's certificate (enrolled in a setup) */
    bool tls12;     /* TLS 1.2 only */
    enum ceil_kind ceil;
};
static const struct scenario scenarios[] = {
    {.name = "est",
     .proto = BENCH_PROTO_EST,
     .what = "EST simpleenroll, keep-alive HTTP, Basic auth"},
    {.name = "est-tls",
     .proto = BENCH_PROTO_EST,
     .what = "EST simpleenroll, keep-alive HTTPS (one full handshake per connection), Basic auth",
     .tls = true},
    {.name = "soap",
     .proto = BENCH_PROTO_SOAP,
     .what = "CertProv GetAndPublishCert, keep-alive HTTP, Basic auth"},
    {.name = "soap-tls",
     .proto = BENCH_PROTO_SOAP,
     .what = "SOAP with a new TLS connection per enrollment, full handshake (a device's first "
             "contact)",
     .tls = true,
     .new_conn = true,
     .ceil = CEIL_ENROLL_HS_FULL},
    {.name = "phone",
     .proto = BENCH_PROTO_PHONE,
     .what = "the phone's path on keep-alive HTTPS: a Web ticket by PIN (RST to the Web Ticket "
             "Service's PIN port), then GetAndPublishCert with the ticket and its HMAC-SHA1 proof "
             "on the same connection (an enrollment = the certificate)",
     .tls = true,
     .ceil = CEIL_ENROLL_TICKET},
    {.name = "renew-mtls",
     .proto = BENCH_PROTO_REENROLL,
     .what = "EST simplereenroll by client certificate, a new TLS connection per renewal resuming "
             "the slot's previous session",
     .tls = true,
     .new_conn = true,
     .resume = true,
     .mtls = true,
     .ceil = CEIL_ENROLL_HS_RESUMED},
    {.name = "tls-full",
     .proto = BENCH_PROTO_HEALTHZ,
     .what = "GET /healthz on a new TLS connection each, full handshake (an enrollment = a 200)",
     .tls = true,
     .new_conn = true,
     .ceil = CEIL_HS_FULL},
    {.name = "tls-resumed",
     .proto = BENCH_PROTO_HEALTHZ,
     .what = "GET /healthz on a new TLS connection each, resuming the slot's previous session",
     .tls = true,
     .new_conn = true,
     .resume = true,
     .ceil = CEIL_HS_RESUMED},
    {.name = "http-conn",
     .proto = BENCH_PROTO_HEALTHZ,
     .what = "GET /healthz on a new plain HTTP connection each: what a connection costs without "
             "TLS (the baseline of tls-full and tls-resumed)",
     .new_conn = true,
     .ceil = CEIL_NONE},
    {.name = "tls12-full",
     .proto = BENCH_PROTO_HEALTHZ,
     .what = "tls-full with TLS 1.2 (ECDHE + the server's signature over its key share)",
     .tls = true,
     .new_conn = true,
     .tls12 = true,
     .ceil = CEIL_HS_FULL},
    {.name = "tls12-resumed",
     .proto = BENCH_PROTO_HEALTHZ,
     .what = "tls-resumed with TLS 1.2 (a ticket: no key exchange, no signature)",
     .tls = true,
     .new_conn = true,
     .resume = true,
     .tls12 = true,
     .ceil = CEIL_NONE},
    {.name = "est-pkcs11",
     .proto = BENCH_PROTO_EST,
     .what = "EST with the CA key in SoftHSM2 (4 sessions)",
     .pkcs11 = true},
    {.name = "ocsp",
     .proto = BENCH_PROTO_OCSP,
     .what = "OCSP (RFC 6960) POST, one certificate per request, no nonce: the answers a relying "
             "party asks for again and again (a setup first enrolls the certificates asked about)",
     .ocsp = true,
     .ceil = CEIL_NONE},
    {.name = "est-pool-down",
     .proto = BENCH_PROTO_EST,
     .what = "EST with the PostgreSQL pool store stopped for the whole run",
     .pool_down = true},
};
#define NUM_SCENARIOS (sizeof(scenarios) / sizeof(scenarios[0]))

struct opts {
    const char *target;
    bool spawn;
    const char *bin;
    const char *config;
    int pid;
    const struct scenario *scen[MAIN_LIST_MAX];
    uint32_t num_scen;
    uint32_t conc[MAIN_LIST_MAX];
    uint32_t num_conc;
    double duration_s;
    double drain_s;
    double rate;
    bool rate_half;
    uint32_t users;
    uint32_t csrs;
    const char *cache_dir;
    const char *json;
    const char *workdir;
    uint32_t ceiling_ms;
    uint32_t idle;
    uint32_t preload;
    const char *tls_name;
    bool keep;
    bool fresh;
};

static void usage(FILE *out)
{
    fprintf(
        out,
        "usage: certprov-bench (--spawn [--bin DIR] | --target URL [--pid PID] [--config FILE])\n"
        "                      [--scenario LIST] [--concurrency LIST] [--duration S]\n"
        "                      [--rate R|half] [--users N] [--csrs N] [--json FILE] ...\n"
        "\n"
        "Load generator and ceiling measurement for certprovd. Measures the crypto ceiling\n"
        "(P-256 CSR verify + P-256 certificate sign, one thread per core; with a TLS scenario\n"
        "also the server's handshake crypto: X25519 + its ECDSA P-256 signature), then runs\n"
        "every scenario at every concurrency, each bounded in time, prints a table and the\n"
        "bars whose scenarios ran (soap-tls >= 70 %% of its ceiling, est-tls within 10 %% of\n"
        "est, a resumed handshake < 25 %% of a full one in server CPU).\n"
        "\n"
        "  --spawn            start a private certprovd (temp dir under --workdir, ca init,\n"
        "                     user import), stop it with SIGTERM at the end\n"
        "  --bin DIR          where certprovd and certprovctl are (default: beside this program)\n"
        "  --target URL       an already running certprovd, http://IPv4:PORT (it must know the\n"
        "                     users: give --config FILE to import them with certprovctl)\n"
        "  --pid PID          --target's process, for server CPU and peak RSS\n"
        "  --scenario LIST    comma-separated (default est):\n"
        "                     est, soap: keep-alive HTTP with the PIN\n"
        "                     est-tls: est over keep-alive HTTPS\n"
        "                     soap-tls: soap on a new HTTPS connection per enrollment (full\n"
        "                       handshake, no resumption: a phone's first contact)\n"
        "                     phone: the phone's path on keep-alive HTTPS: per enrollment a\n"
        "                       Web ticket by PIN, then GetAndPublishCert with the ticket and\n"
        "                       its proof on the same connection (ceiling: the enrollment's\n"
        "                       crypto plus the ticket's P-256 sign and verify)\n"
        "                     renew-mtls: EST simplereenroll by client certificate, a new\n"
        "                       connection per renewal resuming the slot's previous session\n"
        "                       (a setup first enrolls one user per slot over HTTP)\n"
        "                     tls-full, tls-resumed: GET /healthz on a new HTTPS connection\n"
        "                       each, without / with resumption (server CPU per handshake)\n"
        "                     tls12-full, tls12-resumed: the same with TLS 1.2\n"
        "                     http-conn: the same on plain HTTP (the connection's own cost)\n"
        "                     est-pkcs11: a certprovd of its own (--spawn) whose CA key is in\n"
        "                       a SoftHSM2 token\n"
        "                     ocsp: OCSP POSTs for 256 certificates a setup enrolls (one per\n"
        "                       request, no nonce: the responder's cache), --spawn only\n"
        "                     est-pool-down: a certprovd of its own whose pool store is a\n"
        "                       PostgreSQL URL where nothing listens (a stopped server); checks\n"
        "                       afterwards that the pool was down and the outbox holds them\n"
        "                     TLS scenarios need --spawn (its tls_listen and chain.pem)\n"
        "  --concurrency LIST comma-separated connection counts (default 16)\n"
        "  --duration S       seconds of load per run, a hard cap (default 10)\n"
        "  --drain S          at most this long for in-flight requests after it (default 2)\n"
        "  --rate R           open loop at R requests/s on the connections; latency counts\n"
        "                     from each request's intended send time\n"
        "  --rate half        after the closed-loop runs of a scenario, one open-loop run at\n"
        "                     half its best rate (the p99 bar)\n"
        "  --users N          users to provision (default 1000)\n"
        "  --csrs N           CSR pool size (default: --users); cached under --cache-dir\n"
        "  --cache-dir DIR    default build/bench\n"
        "  --json FILE        one JSON object per run and line\n"
        "  --ceiling-ms MS    duration of the ceiling measurement (default 2000; 0 skips it)\n"
        "  --idle N           hold N idle keep-alive connections open for the whole run and\n"
        "                     report the server's RSS with them\n"
        "  --preload N        before the runs, enroll N certificates (est, 256 connections,\n"
        "                     not measured) and wait until they are published, so that the\n"
        "                     runs see a store of that size (est-pool-down's own server\n"
        "                     starts empty)\n"
        "  --tls-name NAME    the name TLS clients send (SNI) and require in the server's\n"
        "                     certificate (default " BENCH_TLS_NAME ", the spawned server's)\n"
        "  --workdir DIR      where --spawn puts its store (default /var/tmp: a real disk)\n"
        "  --fresh            with --spawn: each scenario runs against a certprovd started\n"
        "                     for it (an empty store, or --preload's), so that scenarios\n"
        "                     compared by a bar see a store of the same size; without it they\n"
        "                     share one server and each meets the certificates of those\n"
        "                     before it (idle and ocsp always use the shared one)\n"
        "  --keep             keep the --spawn directory\n"
        "  -h, --help         this text\n"
        "Exit status: 0 success, 1 failure, 2 usage error.\n");
}

static int parse_u32_list(uint32_t *out, uint32_t *num, char *s, uint32_t lo, uint32_t hi)
{
    *num = 0;
    for (char *save = NULL, *t = strtok_r(s, ",", &save); t != NULL;
         t = strtok_r(NULL, ",", &save)) {
        char *end = NULL;
        unsigned long v = strtoul(t, &end, 10);
        if (*num == MAIN_LIST_MAX || end == t || *end != '\0' || v < lo || v > hi) {
            return -EINVAL;
        }
        out[(*num)++] = (uint32_t)v;
    }
    return *num > 0 ? 0 : -EINVAL;
}

static int parse_scenarios(struct opts *o, char *s)
{
    o->num_scen = 0;
    for (char *save = NULL, *t = strtok_r(s, ",", &save); t != NULL;
         t = strtok_r(NULL, ",", &save)) {
        const struct scenario *found = NULL;
        for (size_t i = 0; i < NUM_SCENARIOS; i++) {
            found = strcmp(scenarios[i].name, t) == 0 ? &scenarios[i] : found;
        }
        if (found == NULL || o->num_scen == MAIN_LIST_MAX) {
            fprintf(stderr, "certprov-bench: unknown scenario '%s'\n", t);
            return -EINVAL;
        }
        o->scen[o->num_scen++] = found;
    }
    return o->num_scen > 0 ? 0 : -EINVAL;
}

static int parse_num(double *out, const char *s, double lo, double hi)
{
    char *end = NULL;
    double v = strtod(s, &end);
    if (end == s || *end != '\0' || v < lo || v > hi) {
        return -EINVAL;
    }
    *out = v;
    return 0;
}

static int parse_opt(struct opts *o, int c, char *arg)
{
    double v = 0;
    int rc = 0;
    switch (c) {
    case 't':
        o->target = arg;
        break;
    case 'S':
        o->spawn = true;
        break;
    case 'b':
        o->bin = arg;
        break;
    case 'C':
        o->config = arg;
        break;
    case 'p':
        rc = parse_num(&v, arg, 1, 1 << 22);
        o->pid = (int)v;
        break;
    case 's':
        rc = parse_scenarios(o, arg);
        break;
    case 'c':
        rc = parse_u32_list(o->conc, &o->num_conc, arg, 1, BENCH_CONNS_MAX);
        break;
    case 'd':
        rc = parse_num(&o->duration_s, arg, 0.1, 3600);
        break;
    case 'D':
        rc = parse_num(&o->drain_s, arg, 0, 60);
        break;
    case 'r':
        o->rate_half = strcmp(arg, "half") == 0;
        rc = o->rate_half ? 0 : parse_num(&o->rate, arg, 1, 1e7);
        break;
    case 'u':
        rc = parse_num(&v, arg, 1, BENCH_USERS_MAX);
        o->users = (uint32_t)v;
        break;
    case 'n':
        rc = parse_num(&v, arg, 1, BENCH_CSRS_MAX);
        o->csrs = (uint32_t)v;
        break;
    case 'k':
        o->cache_dir = arg;
        break;
    case 'j':
        o->json = arg;
        break;
    case 'w':
        o->workdir = arg;
        break;
    case 'm':
        rc = parse_num(&v, arg, 0, 600000);
        o->ceiling_ms = (uint32_t)v;
        break;
    case 'i':
        rc = parse_num(&v, arg, 0, MAIN_IDLE_MAX);
        o->idle = (uint32_t)v;
        break;
    case 'P':
        rc = parse_num(&v, arg, 0, MAIN_PRELOAD_MAX);
        o->preload = (uint32_t)v;
        break;
    case 'K':
        o->keep = true;
        break;
    case 'F':
        o->fresh = true;
        break;
    case 'N':
        o->tls_name = arg;
        rc = arg[0] != '\0' && strlen(arg) < 254 ? 0 : -EINVAL;
        break;
    default:
        rc = -EINVAL;
        break;
    }
    return rc;
}

static int parse_args(struct opts *o, int argc, char **argv)
{
    static const struct option lo[] = {{"target", required_argument, NULL, 't'},
                                       {"spawn", no_argument, NULL, 'S'},
                                       {"bin", required_argument, NULL, 'b'},
                                       {"config", required_argument, NULL, 'C'},
                                       {"pid", required_argument, NULL, 'p'},
                                       {"scenario", required_argument, NULL, 's'},
                                       {"concurrency", required_argument, NULL, 'c'},
                                       {"duration", required_argument, NULL, 'd'},
                                       {"drain", required_argument, NULL, 'D'},
                                       {"rate", required_argument, NULL, 'r'},
                                       {"users", required_argument, NULL, 'u'},
                                       {"csrs", required_argument, NULL, 'n'},
                                       {"cache-dir", required_argument, NULL, 'k'},
                                       {"json", required_argument, NULL, 'j'},
                                       {"workdir", required_argument, NULL, 'w'},
                                       {"ceiling-ms", required_argument, NULL, 'm'},
                                       {"idle", required_argument, NULL, 'i'},
                                       {"preload", required_argument, NULL, 'P'},
                                       {"keep", no_argument, NULL, 'K'},
                                       {"fresh", no_argument, NULL, 'F'},
                                       {"tls-name", required_argument, NULL, 'N'},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
    int c;
    opterr = 0;
    int idx = -1;
    while ((c = getopt_long(argc, argv, "h", lo, &idx)) != -1) {
        if (c == 'h') {
            usage(stdout);
            return -1;
        }
        if (c == '?') {
            fprintf(stderr, "certprov-bench: bad or incomplete option '%s'\n", argv[optind - 1]);
            usage(stderr);
            return 2;
        }
        ASSERT(idx >= 0); /* every option but -h is long-only */
        if (parse_opt(o, c, optarg) != 0) {
            fprintf(stderr, "certprov-bench: bad value '%s' for --%s\n",
                    optarg != NULL ? optarg : "", lo[idx].name);
            usage(stderr);
            return 2;
        }
        idx = -1;
    }
    if (optind != argc || o->spawn == (o->target != NULL)) {
        fprintf(stderr, "certprov-bench: give exactly one of --spawn and --target URL\n");
        usage(stderr);
        return 2;
    }
    if (o->fresh && !o->spawn) {
        fprintf(stderr, "certprov-bench: --fresh needs --spawn\n");
        usage(stderr);
        return 2;
    }
    o->csrs = o->csrs == 0 ? o->users : o->csrs;
    return 0;
}

static int parse_target(struct bench_server *s, const char *url)
{
    unsigned port = 0;
    char host[64];
    if (sscanf(url, "http://%63[^:/]:%u", host, &port) != 2 || port == 0 || port > 65535) {
        return -EINVAL;
    }
    (void)base_str_copy(s->host, sizeof(s->host),
                        strcmp(host, "localhost") == 0 ? "127.0.0.1" : host);
    s->port = (uint16_t)port;
    return 0;
}

/* ---- the report ---- */

struct run {
    const struct scenario *scen;
    uint32_t concurrency;
    double rate; /* 0: closed loop */
    struct bench_load_result res;
    double server_cpu_s; /* -1: unknown */
    long rss_kib;        /* peak (VmHWM); -1: unknown */
    long anon_kib;       /* RssAnon at the end: the process's own memory, without the pages of
                          * the LMDB map it has read (page cache, shared and reclaimable) */
    struct bench_metrics m0, m1;
    struct bench_sched s0, s1; /* the server's threads before and after */
    double publish_wait_s; /* after the load, until the outbox was empty; -1: it did not empty */
};

/* What the bars need of a closed-loop run. */
struct run_sum {
    const struct scenario *scen;
    uint32_t concurrency;
    double eps;     /* enrollments (answers) per second */
    double cpu_e;   /* server CPU us per enrollment, -1 unknown */
    double ceil_us; /* the scenario's ceiling, -1 unknown */
};

struct report {
    FILE *json;
    struct run_sum sums[MAIN_SUMS_MAX];
    uint32_t num_sums;
    uint64_t preload; /* certificates enrolled before the runs */
    struct bench_ceiling ceil;
    bool have_ceil;
    char date[32];
    char machine[160];
};

static double per(double a, double b)
{
    return b > 0 ? a / b : 0;
}

/* ticket_us is the server crypto of a Web ticket: the Web Ticket Service signs the assertion and
 * CertProv verifies that signature (one ECDSA P-256 sign and one verify; the HMAC-SHA1s of the
 * proof and the AES-GCM of the sealed key are noise beside them). -1 when not measured. */
static double ticket_us(const struct bench_ceiling *c)
{
    if (c->sign_per_s_core <= 0 || c->verify_per_s_core <= 0) {
        return -1;
    }
    return 1e6 / c->sign_per_s_core + 1e6 / c->verify_per_s_core;
}

/* scen_ceil_us is the crypto CPU of one enrollment (or handshake) of scenario s, -1 when it was
 * not measured. */
static double scen_ceil_us(const struct report *rep, const struct scenario *s)
{
    const struct bench_ceiling *c = &rep->ceil;
    if (!rep->have_ceil || s->ceil == CEIL_NONE ||
        (s->ceil != CEIL_ENROLL && s->ceil != CEIL_ENROLL_TICKET && !c->tls)) {
        return -1;
    }
    switch (s->ceil) {
    case CEIL_ENROLL:
        return c->cpu_us_per_op;
    case CEIL_ENROLL_TICKET:
        return ticket_us(c) > 0 ? c->cpu_us_per_op + ticket_us(c) : -1;
    case CEIL_ENROLL_HS_FULL:
        return c->cpu_us_per_op + c->hs_full_cpu_us;
    case CEIL_ENROLL_HS_RESUMED:
        return c->cpu_us_per_op + c->hs_resumed_cpu_us;
    case CEIL_HS_FULL:
        return c->hs_full_cpu_us;
    case CEIL_HS_RESUMED:
        return c->hs_resumed_cpu_us;
    case CEIL_NONE:
        break;
    }
    return -1;
}

static double run_cpu_e(const struct run *r)
{
    return r->server_cpu_s >= 0 ? per(r->server_cpu_s * 1e6, (double)r->res.enrollments) : -1;
}

/* What one role of the server's threads did per enrollment in a run. */
struct sched_e {
    double wakeups, preempted, runq_us;
};

static struct sched_e sched_per_e(const struct run *r, int role)
{
    double n = (double)r->res.enrollments;
    return (struct sched_e){
        .wakeups = per((double)(r->s1.wakeups[role] - r->s0.wakeups[role]), n),
        .preempted = per((double)(r->s1.preempted[role] - r->s0.preempted[role]), n),
        .runq_us = per((double)(r->s1.runq_ns[role] - r->s0.runq_ns[role]) / 1e3, n),
    };
}

static void print_header(void)
{
    printf("%-14s %-6s %5s %8s %9s %7s %7s %7s %7s %7s %6s %8s %6s %6s %8s %7s %7s\n", "scenario",
           "loop", "conc", "rate", "enroll/s", "p50ms", "p90ms", "p99ms", "p999ms", "maxms",
           "errors", "cpu_us/e", "ratio", "batch", "commitms", "rssMiB", "anonMiB");
}

static void print_run(const struct report *rep, const struct run *r)
{
    const struct bench_load_result *x = &r->res;
    double eps = per((double)x->enrollments, x->elapsed_s);
    double cpu_e = run_cpu_e(r);
    double ceil_us = scen_ceil_us(rep, r->scen);
    double ratio = ceil_us > 0 && cpu_e > 0 ? cpu_e / ceil_us : -1;
    double batch = per(r->m1.batch_sum - r->m0.batch_sum, r->m1.batch_count - r->m0.batch_count);
    double commit =
        per(r->m1.commit_sum - r->m0.commit_sum, r->m1.commit_count - r->m0.commit_count) * 1e3;
    printf("%-14s %-6s %5u %8.0f %9.0f %7.2f %7.2f %7.2f %7.2f %7.2f %6llu %8.1f %6.2f %6.1f "
           "%8.2f %7.1f %7.1f\n",
           r->scen->name, r->rate > 0 ? "open" : "closed", r->concurrency, r->rate, eps,
           (double)bench_hist_quantile(x->hist, 0.50) / 1e6,
           (double)bench_hist_quantile(x->hist, 0.90) / 1e6,
           (double)bench_hist_quantile(x->hist, 0.99) / 1e6,
           (double)bench_hist_quantile(x->hist, 0.999) / 1e6, (double)x->hist->max_ns / 1e6,
           (unsigned long long)x->errors, cpu_e, ratio, batch, commit,
           r->rss_kib >= 0 ? (double)r->rss_kib / 1024 : -1,
           r->anon_kib >= 0 ? (double)r->anon_kib / 1024 : -1);
    for (uint32_t i = 0; i < x->num_errs; i++) {
        printf("    error %-32s %llu\n", x->errs[i].name, (unsigned long long)x->errs[i].count);
    }
    if (r->s0.ok && r->s1.ok && x->enrollments > 0) {
        printf("    threads per enrollment (wake-ups, preemptions, run-queue wait us):");
        for (int i = 0; i < BENCH_ROLE_MAX_; i++) {
            struct sched_e e = sched_per_e(r, i);
            printf(" %s %.2f %.2f %.1f", bench_role_names[i], e.wakeups, e.preempted, e.runq_us);
        }
        printf("\n");
    }
    if (r->scen->tls) {
        const char *g = x->tls_group != 0 ? SSL_get_curve_name(x->tls_group) : NULL;
        printf("    tls: %llu full, %llu resumed handshakes (server: %.0f full, %.0f resumed), "
               "group %s\n",
               (unsigned long long)x->hs_full, (unsigned long long)x->hs_resumed,
               r->m1.hs_full - r->m0.hs_full, r->m1.hs_resumed - r->m0.hs_resumed,
               g != NULL ? g : "none");
        if (x->tls_group != 0 && x->tls_group != SSL_CURVE_X25519) {
            printf("    warning: the ceiling's ECDHE is X25519, the handshakes used %s\n",
                   g != NULL ? g : "another group");
        }
    }
    fflush(stdout);
}

static void json_ceiling(const struct report *rep)
{
    if (!rep->have_ceil) {
        fprintf(rep->json, "null");
        return;
    }
    fprintf(rep->json,
            "{\"what\":\"ECDSA P-256 CSR verify + ECDSA P-256 certificate sign, SHA-256\","
            "\"threads\":%u,\"enrollments_per_s\":%.0f,\"cpu_us_per_enrollment\":%.2f,"
            "\"sign_per_s_per_core\":%.0f,\"verify_per_s_per_core\":%.0f",
            rep->ceil.threads, rep->ceil.ops_per_s, rep->ceil.cpu_us_per_op,
            rep->ceil.sign_per_s_core, rep->ceil.verify_per_s_core);
    if (rep->ceil.tls) {
        fprintf(
            rep->json,
            ",\"tls_handshake\":{\"what\":\"server side: X25519 key generation + shared secret; "
            "full adds SHA-256 of a 2 KiB transcript + ECDSA P-256 sign\","
            "\"full_cpu_us\":%.2f,\"resumed_cpu_us\":%.2f}",
            rep->ceil.hs_full_cpu_us, rep->ceil.hs_resumed_cpu_us);
    }
    if (ticket_us(&rep->ceil) > 0) {
        fprintf(rep->json,
                ",\"web_ticket\":{\"what\":\"the assertion's ECDSA P-256 sign (Web Ticket "
                "Service) and verify (CertProv)\",\"cpu_us\":%.2f}",
                ticket_us(&rep->ceil));
    }
    fprintf(rep->json, "}");
}

static void json_run(const struct report *rep, const struct run *r)
{
    if (rep->json == NULL) {
        return;
    }
    const struct bench_load_result *x = &r->res;
    double cpu_e = run_cpu_e(r);
    double ceil_us = scen_ceil_us(rep, r->scen);
    FILE *f = rep->json;
    fprintf(f,
            "{\"scenario\":\"%s\",\"date\":\"%s\",\"machine\":\"%s\",\"loop\":\"%s\","
            "\"concurrency\":%u,\"rate\":%.0f,\"preload\":%llu,\"duration_s\":%.3f,"
            "\"requests\":%llu,\"enrollments\":%llu,\"enrollments_per_s\":%.1f,",
            r->scen->name, rep->date, rep->machine, r->rate > 0 ? "open" : "closed", r->concurrency,
            r->rate, (unsigned long long)(r->scen->pool_down ? 0 : rep->preload), x->elapsed_s,
            (unsigned long long)x->requests, (unsigned long long)x->enrollments,
            per((double)x->enrollments, x->elapsed_s));
    fprintf(f,
            "\"latency_us\":{\"p50\":%.1f,\"p90\":%.1f,\"p99\":%.1f,\"p99_9\":%.1f,\"max\":%.1f},",
            (double)bench_hist_quantile(x->hist, 0.50) / 1e3,
            (double)bench_hist_quantile(x->hist, 0.90) / 1e3,
            (double)bench_hist_quantile(x->hist, 0.99) / 1e3,
            (double)bench_hist_quantile(x->hist, 0.999) / 1e3, (double)x->hist->max_ns / 1e3);
    fprintf(f, "\"errors_total\":%llu,\"errors\":{", (unsigned long long)x->errors);
    for (uint32_t i = 0; i < x->num_errs; i++) {
        fprintf(f, "%s\"%s\":%llu", i ? "," : "", x->errs[i].name,
                (unsigned long long)x->errs[i].count);
    }
    fprintf(f,
            "},\"server_cpu_s\":%.2f,\"server_cpu_us_per_enrollment\":%.1f,"
            "\"server_peak_rss_kib\":%ld,\"server_rss_anon_kib\":%ld,\"client_cpu_s\":%.2f,"
            "\"open_loop_unsent\":%llu,\"publish_wait_s\":%.2f,\"outbox_depth_end\":%.0f,",
            r->server_cpu_s, cpu_e, r->rss_kib, r->anon_kib, x->client_cpu_s,
            (unsigned long long)x->backlog_max, r->scen->pool_down ? -1.0 : r->publish_wait_s,
            r->m1.outbox_depth);
    fprintf(f,
            "\"batch_size_avg\":%.2f,\"commit_group_size_avg\":%.2f,"
            "\"commit_seconds_avg\":%.6f,\"ceiling\":",
            per(r->m1.batch_sum - r->m0.batch_sum, r->m1.batch_count - r->m0.batch_count),
            per(r->m1.group_sum - r->m0.group_sum, r->m1.group_count - r->m0.group_count),
            per(r->m1.commit_sum - r->m0.commit_sum, r->m1.commit_count - r->m0.commit_count));
    json_ceiling(rep);
    if (r->s0.ok && r->s1.ok) {
        fprintf(f, ",\"threads_per_enrollment\":{");
        for (int i = 0; i < BENCH_ROLE_MAX_; i++) {
            struct sched_e e = sched_per_e(r, i);
            fprintf(f, "%s\"%s\":{\"wakeups\":%.3f,\"preemptions\":%.3f,\"runq_wait_us\":%.2f}",
                    i ? "," : "", bench_role_names[i], e.wakeups, e.preempted, e.runq_us);
        }
        fprintf(f, "}");
    }
    if (r->scen->tls) {
        const char *g = x->tls_group != 0 ? SSL_get_curve_name(x->tls_group) : NULL;
        fprintf(f,
                ",\"tls\":{\"new_connection_per_request\":%s,\"resume\":%s,"
                "\"client_certificate\":%s,\"handshakes_full\":%llu,\"handshakes_resumed\":%llu,"
                "\"server_handshakes_full\":%.0f,\"server_handshakes_resumed\":%.0f,"
                "\"group\":\"%s\"}",
                r->scen->new_conn ? "true" : "false", r->scen->resume ? "true" : "false",
                r->scen->mtls ? "true" : "false", (unsigned long long)x->hs_full,
                (unsigned long long)x->hs_resumed, r->m1.hs_full - r->m0.hs_full,
                r->m1.hs_resumed - r->m0.hs_resumed, g != NULL ? g : "none");
    }
    fprintf(f, ",\"scenario_ceiling_cpu_us\":%.2f,\"cpu_ratio_to_ceiling\":%.3f}\n", ceil_us,
            ceil_us > 0 && cpu_e > 0 ? cpu_e / ceil_us : -1);
    fflush(f);
}

static void report_skip(const struct report *rep, const struct scenario *s)
{
    printf("%-14s skipped: %s\n", s->name, s->skip);
    if (rep->json != NULL) {
        fprintf(rep->json, "{\"scenario\":\"%s\",\"date\":\"%s\",\"skipped\":\"%s\"}\n", s->name,
                rep->date, s->skip);
    }
}

static void report_init(struct report *rep)
{
    clock_format_utc(rep->date, clock_real_s());
    char model[96] = "unknown CPU";
    FILE *f = fopen("/proc/cpuinfo", "re");
    char line[256];
    while (f != NULL && fgets(line, sizeof(line), f) != NULL) {
        char *colon = strchr(line, ':');
        if (strncmp(line, "model name", 10) == 0 && colon != NULL) {
            (void)base_str_copy(model, sizeof(model), colon + 2);
            model[strcspn(model, "\n\"\\")] = '\0';
            break;
        }
    }
    if (f != NULL) {
        fclose(f);
    }
    snprintf(rep->machine, sizeof(rep->machine), "%ld cores, %s", sysconf(_SC_NPROCESSORS_ONLN),
             model);
}

/* ---- running ---- */

/* wait_published waits (at most max_ms) until the pool's outbox is empty, so that the server
 * CPU of a run includes publishing what it enrolled (the publisher runs below the enrollment
 * path and may trail it while the cores are saturated). Returns how long that took in seconds,
 * or -1 when the outbox did not empty in time. */
static double wait_published(const struct bench_server *srv, uint64_t max_ms)
{
    uint64_t t0 = clock_mono_ns();
    for (;;) {
        struct bench_metrics m;
        if (bench_metrics_scrape(&m, srv->host, srv->port) == 0 && m.outbox_depth == 0) {
            return (double)(clock_mono_ns() - t0) / 1e9;
        }
        if (clock_mono_ns() - t0 > max_ms * 1000000ull) {
            return -1;
        }
        struct timespec ts = {.tv_nsec = 20000000};
        (void)nanosleep(&ts, NULL);
    }
}

static int one_run(struct run *r, const struct bench_server *srv, const struct opts *o,
                   const struct bench_csr *csrs, const struct bench_ident *idents,
                   uint32_t num_idents)
{
    const struct scenario *s = r->scen;
    struct bench_load_options lo = {
        .proto = s->proto,
        .host = srv->host,
        .port = s->tls ? srv->tls_port : srv->port,
        .tls_ca_file = s->tls ? srv->chain : NULL,
        .tls_name = o->tls_name,
        .new_conn = s->new_conn,
        .resume = s->resume,
        .tls12 = s->tls12,
        .idents = idents,
        .num_idents = num_idents,
        .concurrency = r->concurrency,
        .duration_s = o->duration_s,
        .drain_s = o->drain_s,
        .rate = r->rate,
        .csrs = csrs,
        .num_csrs = o->csrs,
        .num_users = o->users,
    };
    (void)bench_metrics_scrape(&r->m0, srv->host, srv->port);
    double cpu0 = srv->pid > 0 ? bench_proc_cpu_s(srv->pid) : -1;
    if (srv->pid > 0) {
        bench_proc_sched(&r->s0, srv->pid);
    }
    int rc = bench_load_run(&r->res, &lo);
    if (rc != 0) {
        fprintf(stderr, "certprov-bench: the run could not start: %s\n", strerror(-rc));
        return rc;
    }
    r->publish_wait_s = r->scen->pool_down ? -1 : wait_published(srv, MAIN_PUBLISH_WAIT_MS);
    double cpu1 = srv->pid > 0 ? bench_proc_cpu_s(srv->pid) : -1;
    if (srv->pid > 0) {
        bench_proc_sched(&r->s1, srv->pid);
    }
    r->server_cpu_s = cpu0 >= 0 && cpu1 >= 0 ? cpu1 - cpu0 : -1;
    r->rss_kib = srv->pid > 0 ? bench_proc_kib(srv->pid, "VmHWM:") : -1;
    r->anon_kib = srv->pid > 0 ? bench_proc_kib(srv->pid, "RssAnon:") : -1;
    (void)bench_metrics_scrape(&r->m1, srv->host, srv->port);
    return 0;
}

/* idents_setup gives as many users as the scenario's busiest run has slots (at most every
 * user with a CSR of its own) a certificate to renew with. */
static int idents_setup(struct bench_ident **out, uint32_t *out_num, const struct scenario *s,
                        const struct bench_server *srv, const struct opts *o)
{
    uint32_t num = 0;
    for (uint32_t i = 0; i < o->num_conc; i++) {
        num = o->conc[i] > num ? o->conc[i] : num;
    }
    num = num < o->users ? num : o->users;
    num = num < o->csrs ? num : o->csrs;
    struct bench_ident *ids = calloc(num, sizeof(*ids));
    if (ids == NULL) {
        return -ENOMEM;
    }
    uint64_t t0 = clock_mono_ns();
    int rc = bench_idents_enroll(ids, num, srv->host, srv->port);
    if (rc != 0) {
        free(ids);
        return rc;
    }
    printf("%-14s setup: %u users enrolled over HTTP for their client certificates in %.1f s\n",
           s->name, num, (double)(clock_mono_ns() - t0) / 1e9);
    *out = ids;
    *out_num = num;
    return 0;
}

static void sum_add(struct report *rep, const struct run *r)
{
    if (r->rate > 0 || rep->num_sums == MAIN_SUMS_MAX) {
        return;
    }
    rep->sums[rep->num_sums++] = (struct run_sum){
        .scen = r->scen,
        .concurrency = r->concurrency,
        .eps = per((double)r->res.enrollments, r->res.elapsed_s),
        .cpu_e = run_cpu_e(r),
        .ceil_us = scen_ceil_us(rep, r->scen),
    };
}

static int run_scenario(struct report *rep, const struct scenario *s,
                        const struct bench_server *srv, const struct opts *o,
                        const struct bench_csr *csrs)
{
    double best = 0;
    uint32_t max_conc = 0;
    struct bench_ident *ids = NULL;
    uint32_t num_ids = 0;
    int rc = 0;
    if (s->mtls && (rc = idents_setup(&ids, &num_ids, s, srv, o)) != 0) {
        fprintf(stderr, "certprov-bench: %s: the renewal setup failed: %s\n", s->name,
                strerror(-rc));
        return rc;
    }
    for (uint32_t i = 0; rc == 0 && i < o->num_conc; i++) {
        struct run r = {.scen = s, .concurrency = o->conc[i], .rate = o->rate};
        rc = one_run(&r, srv, o, csrs, ids, num_ids);
        if (rc != 0) {
            break;
        }
        print_run(rep, &r);
        json_run(rep, &r);
        sum_add(rep, &r);
        double eps = per((double)r.res.enrollments, r.res.elapsed_s);
        best = eps > best ? eps : best;
        max_conc = o->conc[i] > max_conc ? o->conc[i] : max_conc;
        free(r.res.hist);
    }
    if (rc == 0 && o->rate_half && best > 0) {
        struct run r = {.scen = s, .concurrency = max_conc, .rate = best / 2};
        rc = one_run(&r, srv, o, csrs, ids, num_ids);
        if (rc == 0) {
            print_run(rep, &r);
            json_run(rep, &r);
            free(r.res.hist);
        }
    }
    bench_idents_free(ids, num_ids);
    free(ids);
    return rc;
}

static const struct run_sum *sum_find(const struct report *rep, const char *name, uint32_t conc)
{
    for (uint32_t i = 0; i < rep->num_sums; i++) {
        if (strcmp(rep->sums[i].scen->name, name) == 0 && rep->sums[i].concurrency == conc) {
            return &rep->sums[i];
        }
    }
    return NULL;
}

static void bar_report(const struct report *rep, const char *bar, uint32_t conc, double value,
                       double limit, bool met, const char *text)
{
    printf("bar %-44s c=%-4u %s: %s\n", bar, conc, text, met ? "met" : "NOT MET");
    if (rep->json != NULL) {
        fprintf(rep->json,
                "{\"scenario\":\"bar\",\"bar\":\"%s\",\"date\":\"%s\",\"machine\":\"%s\","
                "\"concurrency\":%u,"
                "\"value\":%.3f,\"limit\":%.2f,\"met\":%s}\n",
                bar, rep->date, rep->machine, conc, value, limit, met ? "true" : "false");
    }
}

/* print_bars checks the bars of the TLS benchmark whose scenarios ran in this invocation (at
 * the same concurrency, against the same server). */
static void print_bars(const struct report *rep)
{
    char text[160];
    for (uint32_t i = 0; i < rep->num_sums; i++) {
        const struct run_sum *x = &rep->sums[i];
        const char *n = x->scen->name;
        if (strcmp(n, "ocsp") == 0) {
            snprintf(text, sizeof(text), "%.0f responses/s", x->eps);
            bar_report(rep, "ocsp >= 10,000 responses/s from the cache", x->concurrency, x->eps,
                       BAR_OCSP_MIN, x->eps >= BAR_OCSP_MIN, text);
        }
        if (strcmp(n, "soap-tls") == 0 && x->cpu_e > 0 && x->ceil_us > 0) {
            double share = x->ceil_us / x->cpu_e;
            snprintf(text, sizeof(text),
                     "%.0f us server CPU per enrollment, ceiling %.0f us: %.0f %%", x->cpu_e,
                     x->ceil_us, share * 100);
            bar_report(rep, "soap-tls >= 70 % of its ceiling", x->concurrency, share,
                       BAR_SOAP_TLS_MIN, share >= BAR_SOAP_TLS_MIN, text);
        }
        const struct run_sum *base = NULL;
        if (strcmp(n, "est-tls") == 0 && (base = sum_find(rep, "est", x->concurrency)) != NULL &&
            base->eps > 0) {
            double share = x->eps / base->eps;
            snprintf(text, sizeof(text), "%.0f vs %.0f enrollments/s: %.0f %% of est", x->eps,
                     base->eps, share * 100);
            bar_report(rep, "est-tls within 10 % of est", x->concurrency, share, BAR_EST_TLS_MIN,
                       share >= BAR_EST_TLS_MIN, text);
        }
        bool t12 = strcmp(n, "tls12-resumed") == 0;
        if ((t12 || strcmp(n, "tls-resumed") == 0) &&
            (base = sum_find(rep, t12 ? "tls12-full" : "tls-full", x->concurrency)) != NULL &&
            base->cpu_e > 0 && x->cpu_e > 0) {
            double share = x->cpu_e / base->cpu_e;
            snprintf(text, sizeof(text), "%.0f vs %.0f us server CPU per handshake: %.0f %%",
                     x->cpu_e, base->cpu_e, share * 100);
            bar_report(rep,
                       t12 ? "resumed handshake < 25 % of a full one, TLS 1.2"
                           : "resumed handshake < 25 % of a full one",
                       x->concurrency, share, BAR_RESUMED_MAX, share < BAR_RESUMED_MAX, text);
        }
    }
}

static void print_ceiling(const struct report *rep)
{
    if (!rep->have_ceil) {
        printf("crypto ceiling: not measured\n");
        return;
    }
    printf("crypto ceiling (P-256 CSR verify + P-256 sign, %u threads): %.0f enrollments/s, "
           "%.1f us CPU each; per core: sign %.0f/s, verify %.0f/s\n",
           rep->ceil.threads, rep->ceil.ops_per_s, rep->ceil.cpu_us_per_op,
           rep->ceil.sign_per_s_core, rep->ceil.verify_per_s_core);
    if (rep->ceil.tls) {
        const struct bench_ceiling *c = &rep->ceil;
        printf("TLS handshake server crypto (%u threads): full (X25519 + ECDSA P-256 sign) %.1f us "
               "CPU, resumed (X25519) %.1f us; soap-tls ceiling %.1f us CPU per enrollment "
               "(%.0f/s)\n",
               c->threads, c->hs_full_cpu_us, c->hs_resumed_cpu_us,
               c->cpu_us_per_op + c->hs_full_cpu_us,
               c->ops_per_s * c->cpu_us_per_op / (c->cpu_us_per_op + c->hs_full_cpu_us));
    }
    if (ticket_us(&rep->ceil) > 0) {
        const struct bench_ceiling *c = &rep->ceil;
        double t_us = ticket_us(c);
        printf("Web ticket server crypto: the assertion's ECDSA P-256 sign and verify %.1f us CPU; "
               "phone ceiling %.1f us CPU per enrollment (%.0f/s)\n",
               t_us, c->cpu_us_per_op + t_us,
               c->ops_per_s * c->cpu_us_per_op / (c->cpu_us_per_op + t_us));
    }
    printf("ratio = server CPU per enrollment / crypto CPU per enrollment (1.00 = only crypto; "
           "the scenario's own ceiling: TLS scenarios add their handshake's crypto, phone its "
           "ticket's)\n");
}

static void hold_idle(int *fds, uint32_t num, const struct bench_server *srv,
                      const struct report *rep)
{
    uint32_t open = bench_idle_open(fds, num, srv->host, srv->port);
    long rss = srv->pid > 0 ? bench_proc_kib(srv->pid, "VmRSS:") : -1;
    long anon = srv->pid > 0 ? bench_proc_kib(srv->pid, "RssAnon:") : -1;
    printf("idle: %u of %u keep-alive connections open, server RSS %.1f MiB (anonymous %.1f)\n",
           open, num, rss >= 0 ? (double)rss / 1024 : -1.0, anon >= 0 ? (double)anon / 1024 : -1.0);
    if (rep->json != NULL) {
        fprintf(rep->json,
                "{\"scenario\":\"idle\",\"date\":\"%s\",\"machine\":\"%s\",\"connections\":%u,"
                "\"server_rss_kib\":%ld,\"server_rss_anon_kib\":%ld}\n",
                rep->date, rep->machine, open, rss, anon);
    }
}

/* spawn_max_conns is the max_connections of a spawned certprovd: the idle connections and the
 * load's, with room to spare. */
static uint32_t spawn_max_conns(const struct opts *o)
{
    return o->idle + 2 * BENCH_CONNS_MAX / 4;
}

/* run_pool_down runs scenario `s` against a certprovd of its own whose pool store is a
 * PostgreSQL URL on a loopback port where nothing listens: to libpq exactly what a stopped
 * PostgreSQL server on the pool's host looks like (connection refused). Every enrollment must
 * still succeed; afterwards the pool must be down, nothing published and the outbox holding
 * every certificate of the runs. */
static int run_pool_down(struct report *rep, const struct scenario *s, const struct opts *o,
                         const struct bench_csr *csrs)
{
    if (!o->spawn) {
        struct scenario skip = *s;
        skip.skip = "needs --spawn (it starts a certprovd of its own, pool store down)";
        report_skip(rep, &skip);
        return 0;
    }
    uint16_t pg_port = 0;
    int rc = bench_free_port(&pg_port);
    if (rc != 0) {
        return rc;
    }
    char pool[128];
    snprintf(pool, sizeof(pool), "postgresql://certprov@127.0.0.1:%u/certprov?connect_timeout=2",
             pg_port);
    struct bench_server down = {0};
    struct bench_metrics m = {0};
    rc = bench_server_spawn(&down, o->bin, o->workdir, o->users, spawn_max_conns(o), pool);
    if (rc != 0) {
        goto out; /* stops what did start */
    }
    rc = run_scenario(rep, s, &down, o, csrs);
    if (rc != 0) {
        goto out;
    }
    if (bench_metrics_scrape(&m, down.host, down.port) == 0) {
        bool down_ok = m.pool_up == 0 && m.published == 0;
        printf("%-14s pool store %s: pool_up %.0f, published %.0f, outbox depth %.0f%s\n", s->name,
               pool, m.pool_up, m.published, m.outbox_depth,
               down_ok ? "" : "  (NOT DOWN: this run measured nothing)");
        rc = down_ok ? 0 : -EIO;
    }
out:
    if (bench_server_stop(&down, o->keep) != 0 && rc == 0) {
        rc = -EIO;
    }
    return rc;
}

#define OCSP_CERTS 256u /* certificates the ocsp scenario asks about */

/* run_ocsp enrolls OCSP_CERTS certificates (est, not measured), builds one OCSP request for each
 * and runs scenario `s` with them as its requests. Needs the server's configuration (--spawn). */
static int run_ocsp(struct report *rep, const struct scenario *s, const struct bench_server *srv,
                    const struct opts *o, const struct bench_csr *csrs)
{
    if (!srv->spawned) {
        struct scenario skip = *s;
        skip.skip = "needs --spawn (the server's certprovctl and chain.pem)";
        report_skip(rep, &skip);
        return 0;
    }
    struct bench_load_options lo = {
        .proto = BENCH_PROTO_EST,
        .host = srv->host,
        .port = srv->port,
        .concurrency = 16,
        .duration_s = 60,
        .drain_s = o->drain_s,
        .csrs = csrs,
        .num_csrs = o->csrs,
        .num_users = o->users,
        .max_enrollments = OCSP_CERTS,
    };
    struct bench_load_result res;
    int rc = bench_load_run(&res, &lo);
    if (rc != 0) {
        return rc;
    }
    free(res.hist);
    struct bench_csr *reqs = calloc(OCSP_CERTS, sizeof(*reqs));
    if (reqs == NULL) {
        return -ENOMEM;
    }
    uint32_t n = 0;
    rc = bench_ocsp_requests(reqs, OCSP_CERTS, &n, o->bin, srv->config, srv->chain);
    if (rc != 0) {
        fprintf(stderr, "certprov-bench: ocsp: cannot build the requests: %s\n", strerror(-rc));
    } else {
        struct opts oo = *o;
        oo.csrs = n;
        rc = run_scenario(rep, s, srv, &oo, reqs);
    }
    free(reqs);
    return rc;
}

/* preload enrolls o->preload certificates (est, closed loop, not measured) and waits until the
 * publisher has caught up, so that the runs see a store of that size. Bounded: at least 500
 * enrollments/s are expected, and the publisher gets as long again. */
static int preload(const struct opts *o, const struct bench_server *srv,
                   const struct bench_csr *csrs, uint64_t *out_num)
{
    double cap_s = 60.0 + o->preload / 500.0;
    struct bench_load_options lo = {
        .proto = BENCH_PROTO_EST,
        .host = srv->host,
        .port = srv->port,
        .concurrency = MAIN_PRELOAD_CONNS,
        .duration_s = cap_s,
        .drain_s = o->drain_s,
        .csrs = csrs,
        .num_csrs = o->csrs,
        .num_users = o->users,
        .max_enrollments = o->preload,
    };
    struct bench_load_result res;
    int rc = bench_load_run(&res, &lo);
    if (rc != 0) {
        fprintf(stderr, "certprov-bench: the preload could not start: %s\n", strerror(-rc));
        return rc;
    }
    free(res.hist);
    *out_num = res.enrollments;
    double pub_s = wait_published(srv, (uint64_t)(cap_s * 1000));
    printf("preload: %llu enrollments in %.1f s (%.0f/s, %llu errors), published %s%.1f s later\n",
           (unsigned long long)res.enrollments, res.elapsed_s,
           per((double)res.enrollments, res.elapsed_s), (unsigned long long)res.errors,
           pub_s < 0 ? "NOT ALL " : "", pub_s < 0 ? cap_s : pub_s);
    if (res.enrollments < o->preload) {
        fprintf(stderr, "certprov-bench: the preload stopped at %llu of %u certificates\n",
                (unsigned long long)res.enrollments, o->preload);
        return -ETIMEDOUT;
    }
    return 0;
}

/* run_own runs scenario `s` against a certprovd started for it: with `pkcs11`, one whose issuing
 * CA key is in a SoftHSM2 token (est-pkcs11); without, one for --fresh, preloaded as --preload
 * asks: every scenario then starts from a store of the same size, whatever ran before it (with
 * one shared server, a scenario late in the list meets the hundreds of thousands of certificates
 * of those before it, and its commits the larger indexes). */
static int run_own(struct report *rep, const struct scenario *s, const struct opts *o,
                   const struct bench_csr *csrs, bool pkcs11)
{
    struct bench_server srv = {0};
    int rc = bench_server_spawn_key(&srv, o->bin, o->workdir, o->users, spawn_max_conns(o),
                                    "embedded", pkcs11);
    if (rc == 0 && !pkcs11) {
        printf("%-14s server %s:%u (spawned for it)\n", s->name, srv.host, srv.port);
        if (o->preload > 0) {
            rc = preload(o, &srv, csrs, &rep->preload);
        }
    }
    if (rc == 0) {
        rc = run_scenario(rep, s, &srv, o, csrs);
    }
    if (bench_server_stop(&srv, o->keep) != 0 && rc == 0) {
        rc = -EIO;
    }
    return rc;
}

/* run_pkcs11 runs scenario `s` against a certprovd of its own whose issuing CA key is in a
 * SoftHSM2 token (embedded pool store): the cost of the pkcs11 backend and its signing pool. */
static int run_pkcs11(struct report *rep, const struct scenario *s, const struct opts *o,
                      const struct bench_csr *csrs)
{
    struct scenario skip = *s;
    skip.skip = !o->spawn                   ? "needs --spawn (it starts a certprovd of its own)"
                : !bench_pkcs11_available() ? "needs SoftHSM2 (package softhsm2)"
                                            : NULL;
    if (skip.skip != NULL) {
        report_skip(rep, &skip);
        return 0;
    }
    return run_own(rep, s, o, csrs, true);
}

static int run_all(const struct opts *o, struct bench_server *srv, struct report *rep,
                   const struct bench_csr *csrs)
{
    bool tls = false;
    for (uint32_t i = 0; i < o->num_scen; i++) {
        tls = tls || (o->scen[i]->tls && o->scen[i]->skip == NULL);
    }
    if (o->ceiling_ms > 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        int rc = bench_ceiling_measure(&rep->ceil, n > 0 && n <= 256 ? (uint32_t)n : 1,
                                       o->ceiling_ms < 100 ? 100 : o->ceiling_ms, tls);
        rep->have_ceil = rc == 0;
    }
    print_ceiling(rep);
    if (o->preload > 0 && !o->fresh) { /* --fresh preloads each scenario's own server */
        int rc = preload(o, srv, csrs, &rep->preload);
        if (rc != 0) {
            return rc;
        }
    }
    int *idle = NULL;
    if (o->idle > 0) {
        idle = calloc(o->idle, sizeof(int));
        if (idle == NULL) {
            return -ENOMEM;
        }
        hold_idle(idle, o->idle, srv, rep);
    }
    print_header();
    int rc = 0;
    for (uint32_t i = 0; rc == 0 && i < o->num_scen; i++) {
        if (o->scen[i]->skip != NULL) {
            report_skip(rep, o->scen[i]);
        } else if (o->scen[i]->tls && srv->tls_port == 0) {
            struct scenario skip = *o->scen[i];
            skip.skip = "needs --spawn (TLS against --target is not supported)";
            report_skip(rep, &skip);
        } else if (o->scen[i]->pool_down) {
            rc = run_pool_down(rep, o->scen[i], o, csrs);
        } else if (o->scen[i]->pkcs11) {
            rc = run_pkcs11(rep, o->scen[i], o, csrs);
        } else if (o->scen[i]->ocsp) {
            rc = run_ocsp(rep, o->scen[i], srv, o, csrs);
        } else if (o->fresh) {
            rc = run_own(rep, o->scen[i], o, csrs, false);
        } else {
            rc = run_scenario(rep, o->scen[i], srv, o, csrs);
        }
    }
    if (idle != NULL) {
        bench_idle_close(idle, o->idle);
        free(idle);
    }
    if (rc == 0) {
        print_bars(rep);
    }
    return rc;
}

static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl); /* best effort: the spawned server inherits it */
    }
}

static int prepare(struct opts *o, struct bench_server *srv, struct bench_csr **out_csrs,
                   char *self_dir)
{
    char cache[BENCH_PATH_MAX + 64];
    if (o->bin == NULL) {
        o->bin = dirname(self_dir);
    }
    struct bench_csr *csrs = calloc(o->csrs, sizeof(*csrs));
    if (csrs == NULL) {
        return -ENOMEM;
    }
    *out_csrs = csrs;
    (void)mkdir(o->cache_dir, 0755);
    snprintf(cache, sizeof(cache), "%s/csrs-p256-u%u-n%u.bin", o->cache_dir, o->users, o->csrs);
    int rc = bench_csr_pool_load(csrs, o->csrs, o->users, cache);
    if (rc != 0) {
        fprintf(stderr, "certprov-bench: cannot make the CSR pool: %s\n", strerror(-rc));
        return rc;
    }
    if (o->spawn) {
        return bench_server_spawn(srv, o->bin, o->workdir, o->users, spawn_max_conns(o),
                                  "embedded");
    }
    if (parse_target(srv, o->target) != 0) {
        fprintf(stderr, "certprov-bench: --target must be http://IPv4:PORT\n");
        return -EINVAL;
    }
    srv->pid = o->pid;
    if (o->config != NULL) {
        char dir[] = "/tmp/certprov-bench-users-XXXXXX";
        if (mkdtemp(dir) == NULL) {
            return -errno;
        }
        if (bench_users_import(o->bin, o->config, dir, o->users) != 0) {
            fprintf(stderr,
                    "certprov-bench: warning: user import failed (users already there?); "
                    "see %s/ctl.log\n",
                    dir);
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct opts o = {.duration_s = 10,
                     .drain_s = 2,
                     .users = 1000,
                     .cache_dir = "build/bench",
                     .workdir = "/var/tmp",
                     .ceiling_ms = 2000,
                     .tls_name = BENCH_TLS_NAME,
                     .conc = {16},
                     .num_conc = 1,
                     .scen = {&scenarios[0]},
                     .num_scen = 1};
    int rc = parse_args(&o, argc, argv);
    if (rc != 0) {
        return rc < 0 ? 0 : rc;
    }
    signal(SIGPIPE, SIG_IGN);
    raise_nofile();
    struct report rep = {0};
    report_init(&rep);
    if (o.json != NULL && (rep.json = fopen(o.json, "we")) == NULL) {
        fprintf(stderr, "certprov-bench: cannot write %s: %s\n", o.json, strerror(errno));
        return 1;
    }
    char self[BENCH_PATH_MAX];
    (void)base_str_copy(self, sizeof(self), argv[0]);
    struct bench_server srv = {0};
    struct bench_csr *csrs = NULL;
    rc = prepare(&o, &srv, &csrs, self);
    if (rc != 0) {
        goto out;
    }
    printf("certprov-bench %s on %s, server %s:%u%s, %u users, %u CSRs (P-256)\n", rep.date,
           rep.machine, srv.host, srv.port, srv.spawned ? " (spawned)" : "", o.users, o.csrs);
    rc = run_all(&o, &srv, &rep, csrs);
out:
    if (bench_server_stop(&srv, o.keep) != 0 && rc == 0) {
        rc = -EIO;
    }
    free(csrs);
    if (rep.json != NULL && fclose(rep.json) != 0 && rc == 0) {
        rc = -EIO;
    }
    return rc == 0 ? 0 : 1;
}
