/* certprov-bench: the server side. --spawn makes a private certprovd (temp dir, configuration,
 * `certprovctl ca init`, `certprovctl user import`), and for any run with a known PID the report
 * reads its CPU time from /proc/PID/stat and its peak RSS from /proc/PID/status; /metrics gives
 * the batch and commit figures. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/base.h"
#include "cmd/certprov-bench/bench.h"

#define SERVER_START_MS 20000u /* certprovd must answer /healthz within this (ASan is slow) */
#define SERVER_STOP_MS 20000u  /* SIGTERM drains at most 10 s; then SIGKILL */
#define METRICS_MAX (1u << 20) /* the /metrics answer we read at most */
#define HTTP_TIMEOUT_S 5

int bench_free_port(uint16_t *out)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    int rc = -errno;
    if (fd != -1 && bind(fd, (const struct sockaddr *)&a, sizeof(a)) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0) {
        *out = ntohs(a.sin_port);
        rc = 0;
    }
    if (fd != -1) {
        (void)close(fd);
    }
    return rc;
}

/* run_wait runs argv to completion with stdout and stderr appended to `log`. */
static int run_wait(char *const argv[], const char *log)
{
    pid_t pid = fork();
    if (pid == -1) {
        return -errno;
    }
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        if (fd != -1) {
            (void)dup2(fd, 1);
            (void)dup2(fd, 2);
        }
        execv(argv[0], argv);
        _exit(127);
    }
    int st = 0;
    if (waitpid(pid, &st, 0) == -1) {
        return -errno;
    }
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -EIO;
}

/* http_get does one GET with Connection: close and returns the status, the whole answer in
 * `buf` (NUL-terminated), or a negative errno. */
static int http_get(char *buf, size_t cap, size_t *out_len, const char *host, uint16_t port,
                    const char *path)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    if (inet_pton(AF_INET, host, &a.sin_addr) != 1) {
        return -EINVAL;
    }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd == -1) {
        return -errno;
    }
    struct timeval tv = {.tv_sec = HTTP_TIMEOUT_S};
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    char req[256];
    int n = snprintf(req, sizeof(req),
                     "GET %s HTTP/1.1\r\nHost: certprov\r\nConnection: close\r\n\r\n", path);
    size_t len = 0;
    int rc = -ECONNREFUSED;
    if (connect(fd, (const struct sockaddr *)&a, sizeof(a)) == 0 &&
        send(fd, req, (size_t)n, MSG_NOSIGNAL) == n) {
        ssize_t r;
        while (len + 1 < cap && (r = recv(fd, buf + len, cap - 1 - len, 0)) > 0) {
            len += (size_t)r;
        }
        buf[len] = '\0';
        rc = len > 12 && memcmp(buf, "HTTP/1.", 7) == 0 ? atoi(buf + 9) : -EBADMSG;
    }
    (void)close(fd);
    *out_len = len;
    return rc;
}

int bench_users_import(const char *bin, const char *config, const char *dir, uint32_t num_users)
{
    char csv[BENCH_PATH_MAX + 16];
    char ctl[BENCH_PATH_MAX + 16];
    char log[BENCH_PATH_MAX + 16];
    snprintf(csv, sizeof(csv), "%s/users.csv", dir);
    snprintf(ctl, sizeof(ctl), "%s/certprovctl", bin);
    snprintf(log, sizeof(log), "%s/ctl.log", dir);
    FILE *f = fopen(csv, "we");
    if (f == NULL) {
        return -errno;
    }
    fprintf(f, "uri,phone,ext,pool,pin\n");
    for (uint32_t i = 0; i < num_users; i++) {
        char name[64];
        char ext[16];
        char pin[16];
        bench_user_fill(i, name, ext, pin);
        fprintf(f, "sip:%s,,%s,pool1,%s\n", name, ext, pin);
    }
    if (fclose(f) != 0) {
        return -EIO;
    }
    char *const argv[] = {ctl, "-c", (char *)(uintptr_t)config, "user", "import", csv, NULL};
    return run_wait(argv, log);
}

#define P11_MODULE "/usr/lib/softhsm/libsofthsm2.so"
#define P11_UTIL "/usr/bin/softhsm2-util"

bool bench_pkcs11_available(void)
{
    return access(P11_MODULE, R_OK) == 0 && access(P11_UTIL, X_OK) == 0;
}

/* token_init makes a SoftHSM2 token "bench" in s->dir/tokens (SOFTHSM2_CONF, set in this process
 * and so in every program it starts) and writes the [ca] section of the pkcs11 backend into
 * *ca_conf and the key's URI into *uri. */
static int token_init(const struct bench_server *s, char *ca_conf, size_t ca_cap, char *uri,
                      size_t uri_cap)
{
    char conf[BENCH_PATH_MAX + 32];
    char tokens[BENCH_PATH_MAX + 32];
    char log[BENCH_PATH_MAX + 16];
    snprintf(conf, sizeof(conf), "%s/softhsm2.conf", s->dir);
    snprintf(tokens, sizeof(tokens), "%s/tokens", s->dir);
    snprintf(log, sizeof(log), "%s/ctl.log", s->dir);
    FILE *f = fopen(conf, "we");
    if (mkdir(tokens, 0700) != 0 || f == NULL) {
        if (f != NULL) {
            (void)fclose(f);
        }
        return -EIO;
    }
    fprintf(f, "directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n",
            tokens);
    if (fclose(f) != 0 || setenv("SOFTHSM2_CONF", conf, 1) != 0) {
        return -EIO;
    }
    char *const argv[] = {P11_UTIL, "--init-token", "--free",   "--label",  "bench",
                          "--pin",  "1234",         "--so-pin", "12345678", NULL};
    if (run_wait(argv, log) != 0) {
        fprintf(stderr, "certprov-bench: softhsm2-util --init-token failed; see %s\n", log);
        return -EIO;
    }
    snprintf(uri, uri_cap, "pkcs11:token=bench;object=issuing-ca?pin-value=1234");
    snprintf(ca_conf, ca_cap, "[ca]\nbackend = pkcs11\nmodule = %s\nkey = %s\n", P11_MODULE, uri);
    return 0;
}

int bench_server_spawn(struct bench_server *s, const char *bin, const char *workdir,
                       uint32_t num_users, uint32_t max_conns, const char *pool_store)
{
    return bench_server_spawn_key(s, bin, workdir, num_users, max_conns, pool_store, false);
}

int bench_server_spawn_key(struct bench_server *s, const char *bin, const char *workdir,
                           uint32_t num_users, uint32_t max_conns, const char *pool_store,
                           bool pkcs11)
{
    memset(s, 0, sizeof(*s));
    (void)base_str_copy(s->host, sizeof(s->host), "127.0.0.1");
    snprintf(s->dir, sizeof(s->dir), "%s/certprov-bench-XXXXXX", workdir);
    if (mkdtemp(s->dir) == NULL || bench_free_port(&s->port) != 0 ||
        bench_free_port(&s->tls_port) != 0) {
        return -errno;
    }
    if (s->tls_port == s->port && bench_free_port(&s->tls_port) != 0) {
        return -errno;
    }
    snprintf(s->chain, sizeof(s->chain), "%s/store/chain.pem", s->dir);
    snprintf(s->config, sizeof(s->config), "%s/certprov.ini", s->dir);
    char ca_conf[512] = "";
    char uri[128] = "";
    if (pkcs11 && token_init(s, ca_conf, sizeof(ca_conf), uri, sizeof(uri)) != 0) {
        return -EIO;
    }
    FILE *f = fopen(s->config, "we");
    if (f == NULL) {
        return -errno;
    }
    /* Durable commits on the real disk under workdir (never tmpfs), P-256 CA (ca init default).
     * Every connection comes from 127.0.0.1: one client may use everything. Each user enrolls
     * thousands of times a run: no per-user limit. TLS beside plain HTTP, in-memory ticket keys,
     * as many handshakes in progress as connections (a run's connections all start at once).
     * The Web ticket replay set keeps every (assertion, Timestamp) pair 5 minutes: the default
     * 65536 holds ~200 phone enrollments/s over that window, and the phone scenario runs at
     * thousands per second, run after run on the same certprovd (503 Overloaded beyond it), so
     * it gets 1M pairs (2M slots of 24 bytes, 48 MiB, touched only by the phone scenario). */
    fprintf(f,
            "[server]\nname = %s\nlisten = 127.0.0.1:%u\ntls_listen = 127.0.0.1:%u\n"
            "max_connections = %u\nmax_connections_per_client = %u\n"
            "max_inflight_per_client = 256\nmax_handshakes = %u\n"
            "[store]\npath = store\nmap_size = 16GiB\n[profile]\nmax_certs_per_user_per_day = 0\n"
            "[webticket]\nreplay_max = 1048576\n[pool.pool1]\nstore = %s\n%s",
            BENCH_TLS_NAME, s->port, s->tls_port, max_conns, max_conns, max_conns, pool_store,
            ca_conf);
    if (fclose(f) != 0) {
        return -EIO;
    }
    char ctl[BENCH_PATH_MAX + 16];
    char d[BENCH_PATH_MAX + 16];
    char log[BENCH_PATH_MAX + 16];
    snprintf(ctl, sizeof(ctl), "%s/certprovctl", bin);
    snprintf(d, sizeof(d), "%s/certprovd", bin);
    snprintf(log, sizeof(log), "%s/ctl.log", s->dir);
    char *const init[] = {ctl, "-c", s->config, "ca", "init", pkcs11 ? "--pkcs11" : NULL,
                          uri, NULL};
    if (run_wait(init, log) != 0) {
        fprintf(stderr, "certprov-bench: certprovctl ca init failed; see %s\n", log);
        return -EIO;
    }
    if (bench_users_import(bin, s->config, s->dir, num_users) != 0) {
        fprintf(stderr, "certprov-bench: certprovctl user import failed; see %s\n", log);
        return -EIO;
    }
    snprintf(log, sizeof(log), "%s/daemon.log", s->dir);
    pid_t pid = fork();
    if (pid == -1) {
        return -errno;
    }
    if (pid == 0) {
        int null = open("/dev/null", O_RDWR | O_CLOEXEC);
        (void)dup2(null, 0);
        (void)dup2(null, 1);
        char *const argv[] = {d, "-c", s->config, "--log", log, NULL};
        execv(d, argv);
        _exit(127);
    }
    s->pid = pid;
    s->spawned = true;
    for (uint32_t waited = 0; waited < SERVER_START_MS; waited += 20) {
        char buf[512];
        size_t len = 0;
        if (http_get(buf, sizeof(buf), &len, s->host, s->port, "/healthz") == 200) {
            return 0;
        }
        if (waitpid(pid, NULL, WNOHANG) == pid) {
            s->pid = 0;
            fprintf(stderr, "certprov-bench: certprovd exited at start; see %s\n", log);
            return -EIO;
        }
        struct timespec ts = {.tv_nsec = 20000000};
        (void)nanosleep(&ts, NULL);
    }
    fprintf(stderr, "certprov-bench: certprovd did not answer /healthz; see %s\n", log);
    return -ETIMEDOUT;
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

int bench_server_stop(struct bench_server *s, bool keep)
{
    int rc = 0;
    if (s->spawned && s->pid > 0) {
        (void)kill(s->pid, SIGTERM);
        int st = 0;
        uint32_t waited = 0;
        while (waitpid(s->pid, &st, WNOHANG) == 0) {
            if (waited >= SERVER_STOP_MS) {
                (void)kill(s->pid, SIGKILL);
                (void)waitpid(s->pid, &st, 0);
                break;
            }
            struct timespec ts = {.tv_nsec = 20000000};
            (void)nanosleep(&ts, NULL);
            waited += 20;
        }
        rc = WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -EIO;
        if (rc != 0) {
            fprintf(stderr, "certprov-bench: certprovd did not exit cleanly (status %d); see %s\n",
                    st, s->dir);
            keep = true;
        }
        s->pid = 0;
    }
    if (s->spawned && !keep) {
        (void)nftw(s->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    } else if (s->spawned) {
        fprintf(stderr, "certprov-bench: kept %s\n", s->dir);
    }
    return rc;
}

double bench_proc_cpu_s(int pid)
{
    char path[64];
    char buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    FILE *f = fopen(path, "re");
    if (f == NULL) {
        return -1;
    }
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* Fields after the command (which may hold spaces) start after the last ')'; utime and
     * stime are fields 14 and 15, that is the 12th and 13th after it. */
    const char *p = strrchr(buf, ')');
    unsigned long long ut = 0;
    unsigned long long stime = 0;
    if (p == NULL ||
        sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &stime) != 2) {
        return -1;
    }
    return (double)(ut + stime) / (double)sysconf(_SC_CLK_TCK);
}

const char *const bench_role_names[BENCH_ROLE_MAX_] = {"ring", "writer", "publisher", "other"};

static enum bench_role role_of(const char *comm)
{
    if (strncmp(comm, "cp-ring", 7) == 0) {
        return BENCH_ROLE_RING;
    }
    if (strncmp(comm, "cp-writer", 9) == 0) {
        return BENCH_ROLE_WRITER;
    }
    return strncmp(comm, "cp-pub-", 7) == 0 ? BENCH_ROLE_PUBLISHER : BENCH_ROLE_OTHER;
}

/* task_read reads the whole small file /proc/pid/task/tid/name into buf (cap bytes). */
static bool task_read(char *buf, size_t cap, int pid, const char *tid, const char *name)
{
    char path[96];
    snprintf(path, sizeof(path), "/proc/%d/task/%s/%s", pid, tid, name);
    FILE *f = fopen(path, "re");
    if (f == NULL) {
        return false;
    }
    size_t n = fread(buf, 1, cap - 1, f);
    fclose(f);
    buf[n] = '\0';
    return n > 0;
}

static unsigned long long status_field(const char *status, const char *field)
{
    const char *p = strstr(status, field);
    return p != NULL ? strtoull(p + strlen(field), NULL, 10) : 0;
}

void bench_proc_sched(struct bench_sched *out, int pid)
{
    memset(out, 0, sizeof(*out));
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/task", pid);
    DIR *d = opendir(path);
    if (d == NULL) {
        return;
    }
    struct dirent *e;
    char comm[64], status[4096], sched[128];
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' || !task_read(comm, sizeof(comm), pid, e->d_name, "comm") ||
            !task_read(status, sizeof(status), pid, e->d_name, "status")) {
            continue; /* the thread ended meanwhile */
        }
        enum bench_role r = role_of(comm);
        out->wakeups[r] += status_field(status, "\nvoluntary_ctxt_switches:");
        out->preempted[r] += status_field(status, "\nnonvoluntary_ctxt_switches:");
        unsigned long long run = 0, wait = 0;
        if (task_read(sched, sizeof(sched), pid, e->d_name, "schedstat") &&
            sscanf(sched, "%llu %llu", &run, &wait) == 2) {
            out->runq_ns[r] += wait;
        }
    }
    closedir(d);
    out->ok = true;
}

long bench_proc_kib(int pid, const char *field)
{
    char path[64];
    char line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", pid);
    FILE *f = fopen(path, "re");
    if (f == NULL) {
        return -1;
    }
    long kib = -1;
    size_t flen = strlen(field);
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, field, flen) == 0) {
            kib = strtol(line + flen, NULL, 10);
            break;
        }
    }
    fclose(f);
    return kib;
}

static double metric(const char *text, const char *name)
{
    size_t nlen = strlen(name);
    for (const char *p = text; (p = strstr(p, name)) != NULL; p += nlen) {
        /* "name value" or "name{labels} value" (certprovd writes an empty "{}") */
        if ((p == text || p[-1] == '\n') && (p[nlen] == ' ' || p[nlen] == '{')) {
            const char *v = p + nlen;
            if (*v == '{') {
                v = strchr(v, '}');
                if (v == NULL) {
                    return 0;
                }
                v++;
            }
            return strtod(v, NULL);
        }
    }
    return 0;
}

/* metric_labeled reads the value of one labelled series, "name{labels} value" exactly. */
static double metric_labeled(const char *text, const char *series)
{
    size_t len = strlen(series);
    for (const char *p = text; (p = strstr(p, series)) != NULL; p += len) {
        if ((p == text || p[-1] == '\n') && p[len] == ' ') {
            return strtod(p + len, NULL);
        }
    }
    return 0;
}

int bench_metrics_scrape(struct bench_metrics *out, const char *host, uint16_t port)
{
    memset(out, 0, sizeof(*out));
    char *buf = malloc(METRICS_MAX);
    if (buf == NULL) {
        return -ENOMEM;
    }
    size_t len = 0;
    int rc = http_get(buf, METRICS_MAX, &len, host, port, "/metrics");
    if (rc == 200) {
        out->ok = true;
        out->batch_sum = metric(buf, "certprov_batch_size_sum");
        out->batch_count = metric(buf, "certprov_batch_size_count");
        out->commit_sum = metric(buf, "certprov_lmdb_commit_seconds_sum");
        out->commit_count = metric(buf, "certprov_lmdb_commit_seconds_count");
        out->group_sum = metric(buf, "certprov_commit_group_size_sum");
        out->group_count = metric(buf, "certprov_commit_group_size_count");
        out->pool_up =
            strstr(buf, "\ncertprov_pool_up{") != NULL ? metric(buf, "certprov_pool_up") : -1;
        out->outbox_depth = metric(buf, "certprov_outbox_depth");
        out->published = metric(buf, "certprov_published_total");
        out->hs_full = metric_labeled(buf, "certprov_tls_handshakes_total{result=\"full\"}");
        out->hs_resumed = metric_labeled(buf, "certprov_tls_handshakes_total{result=\"resumed\"}");
        rc = 0;
    } else {
        rc = rc < 0 ? rc : -EIO;
    }
    free(buf);
    return rc;
}
