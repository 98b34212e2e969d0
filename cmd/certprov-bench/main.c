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

#include "base/base.h"
#include "cmd/certprov-bench/bench.h"

#define MAIN_LIST_MAX 16u
#define MAIN_IDLE_MAX 20000u
#define MAIN_PUBLISH_WAIT_MS 30000ull
#define MAIN_PRELOAD_MAX 10000000u /* --preload: certificates */
#define MAIN_PRELOAD_CONNS 256u

/* The scenario table. Scenarios whose server side does not exist yet are listed with the reason;
 * they print "skipped: ..." and never a number. */
struct scenario {
    const char *name;
    enum bench_proto proto;
    const char *skip; /* NULL: runnable */
    const char *what;
    bool pool_down; /* runs against its own certprovd whose pool store cannot be reached */
    bool pkcs11;    /* runs against its own certprovd whose CA key is in a SoftHSM2 token */
};
static const struct scenario scenarios[] = {
    {"est", BENCH_PROTO_EST, NULL, "EST simpleenroll, keep-alive HTTP, Basic auth", false, false},
    {"soap", BENCH_PROTO_SOAP, NULL, "CertProv GetAndPublishCert, keep-alive HTTP, Basic auth",
     false, false},
    {"soap-tls", BENCH_PROTO_SOAP, "needs TLS in certprovd (tls_listen)",
     "SOAP with a new TLS connection per enrollment (a device's first contact)", false, false},
    {"renew-mtls", BENCH_PROTO_EST, "needs TLS client-certificate renewal in certprovd",
     "EST simplereenroll authenticated by the client certificate", false, false},
    {"est-pkcs11", BENCH_PROTO_EST, NULL, "EST with the CA key in SoftHSM2 (4 sessions)", false,
     true},
    {"est-pool-down", BENCH_PROTO_EST, NULL,
     "EST with the PostgreSQL pool store stopped for the whole run", true, false},
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
    bool keep;
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
        "(P-256 CSR verify + P-256 certificate sign, one thread per core), then runs every\n"
        "scenario at every concurrency, each bounded in time, and prints a table.\n"
        "\n"
        "  --spawn            start a private certprovd (temp dir under --workdir, ca init,\n"
        "                     user import), stop it with SIGTERM at the end\n"
        "  --bin DIR          where certprovd and certprovctl are (default: beside this program)\n"
        "  --target URL       an already running certprovd, http://IPv4:PORT (it must know the\n"
        "                     users: give --config FILE to import them with certprovctl)\n"
        "  --pid PID          --target's process, for server CPU and peak RSS\n"
        "  --scenario LIST    comma-separated: est, soap, soap-tls, renew-mtls, est-pkcs11,\n"
        "                     est-pool-down (default est). est-pool-down (with --spawn) starts\n"
        "                     a certprovd of its own whose pool store is a PostgreSQL URL where\n"
        "                     nothing listens (a stopped server), and checks afterwards that\n"
        "                     the pool was down and the outbox holds the certificates;\n"
        "                     est-pkcs11 (with --spawn) one whose CA key is in a SoftHSM2 token\n"
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
        "  --workdir DIR      where --spawn puts its store (default /var/tmp: a real disk)\n"
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
    double publish_wait_s; /* after the load, until the outbox was empty; -1: it did not empty */
};

struct report {
    FILE *json;
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
    double cpu_e = r->server_cpu_s >= 0 ? per(r->server_cpu_s * 1e6, (double)x->enrollments) : -1;
    double ratio = rep->have_ceil && cpu_e > 0 ? cpu_e / rep->ceil.cpu_us_per_op : -1;
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
            "\"sign_per_s_per_core\":%.0f,\"verify_per_s_per_core\":%.0f}",
            rep->ceil.threads, rep->ceil.ops_per_s, rep->ceil.cpu_us_per_op,
            rep->ceil.sign_per_s_core, rep->ceil.verify_per_s_core);
}

static void json_run(const struct report *rep, const struct run *r)
{
    if (rep->json == NULL) {
        return;
    }
    const struct bench_load_result *x = &r->res;
    double cpu_e = r->server_cpu_s >= 0 ? per(r->server_cpu_s * 1e6, (double)x->enrollments) : -1;
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
    fprintf(f, ",\"cpu_ratio_to_ceiling\":%.3f}\n",
            rep->have_ceil && cpu_e > 0 ? cpu_e / rep->ceil.cpu_us_per_op : -1);
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
                   const struct bench_csr *csrs)
{
    struct bench_load_options lo = {
        .proto = r->scen->proto,
        .host = srv->host,
        .port = srv->port,
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
    int rc = bench_load_run(&r->res, &lo);
    if (rc != 0) {
        fprintf(stderr, "certprov-bench: the run could not start: %s\n", strerror(-rc));
        return rc;
    }
    r->publish_wait_s = r->scen->pool_down ? -1 : wait_published(srv, MAIN_PUBLISH_WAIT_MS);
    double cpu1 = srv->pid > 0 ? bench_proc_cpu_s(srv->pid) : -1;
    r->server_cpu_s = cpu0 >= 0 && cpu1 >= 0 ? cpu1 - cpu0 : -1;
    r->rss_kib = srv->pid > 0 ? bench_proc_kib(srv->pid, "VmHWM:") : -1;
    r->anon_kib = srv->pid > 0 ? bench_proc_kib(srv->pid, "RssAnon:") : -1;
    (void)bench_metrics_scrape(&r->m1, srv->host, srv->port);
    return 0;
}

static int run_scenario(const struct report *rep, const struct scenario *s,
                        const struct bench_server *srv, const struct opts *o,
                        const struct bench_csr *csrs)
{
    double best = 0;
    uint32_t max_conc = 0;
    for (uint32_t i = 0; i < o->num_conc; i++) {
        struct run r = {.scen = s, .concurrency = o->conc[i], .rate = o->rate};
        int rc = one_run(&r, srv, o, csrs);
        if (rc != 0) {
            return rc;
        }
        print_run(rep, &r);
        json_run(rep, &r);
        double eps = per((double)r.res.enrollments, r.res.elapsed_s);
        best = eps > best ? eps : best;
        max_conc = o->conc[i] > max_conc ? o->conc[i] : max_conc;
        free(r.res.hist);
    }
    if (o->rate_half && best > 0) {
        struct run r = {.scen = s, .concurrency = max_conc, .rate = best / 2};
        int rc = one_run(&r, srv, o, csrs);
        if (rc != 0) {
            return rc;
        }
        print_run(rep, &r);
        json_run(rep, &r);
        free(r.res.hist);
    }
    return 0;
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
    printf("ratio = server CPU per enrollment / crypto CPU per enrollment (1.00 = only crypto)\n");
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
static int run_pool_down(const struct report *rep, const struct scenario *s, const struct opts *o,
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

/* run_pkcs11 runs scenario `s` against a certprovd of its own whose issuing CA key is in a
 * SoftHSM2 token (embedded pool store): the cost of the pkcs11 backend and its signing pool. */
static int run_pkcs11(const struct report *rep, const struct scenario *s, const struct opts *o,
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
    struct bench_server srv = {0};
    int rc = bench_server_spawn_key(&srv, o->bin, o->workdir, o->users, spawn_max_conns(o),
                                    "embedded", true);
    if (rc == 0) {
        rc = run_scenario(rep, s, &srv, o, csrs);
    }
    if (bench_server_stop(&srv, o->keep) != 0 && rc == 0) {
        rc = -EIO;
    }
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

static int run_all(const struct opts *o, struct bench_server *srv, struct report *rep,
                   const struct bench_csr *csrs)
{
    if (o->ceiling_ms > 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        int rc = bench_ceiling_measure(&rep->ceil, n > 0 && n <= 256 ? (uint32_t)n : 1,
                                       o->ceiling_ms < 100 ? 100 : o->ceiling_ms);
        rep->have_ceil = rc == 0;
    }
    print_ceiling(rep);
    if (o->preload > 0) {
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
        } else if (o->scen[i]->pool_down) {
            rc = run_pool_down(rep, o->scen[i], o, csrs);
        } else if (o->scen[i]->pkcs11) {
            rc = run_pkcs11(rep, o->scen[i], o, csrs);
        } else {
            rc = run_scenario(rep, o->scen[i], srv, o, csrs);
        }
    }
    if (idle != NULL) {
        bench_idle_close(idle, o->idle);
        free(idle);
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
