/* engine: options, listeners, start-up allocation of every ring, threads, stop and stats. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "ioring/internal.h"

#define LISTEN_BACKLOG 511
#define SIZE_MAX_BYTES (1u << 30) /* any one buffer size option */
#define INFLIGHT_MAX (1u << 16)
#define CONNS_MAX (1u << 20)
#define PROBE_TRIES_MAX 50 /* listen_probe: a just-closed listener may linger this many times */
#define PROBE_WAIT_MS 10   /* ... this long: half a second in all */

void ioring_options_default(struct ioring_options *out)
{
    ASSERT(out != NULL);
    memset(out, 0, sizeof(*out));
    out->listen = "0.0.0.0:8080";
    out->max_connections = 4096;
    out->max_request_bytes = 64 * 1024;
    out->max_header_bytes = 8 * 1024;
    out->max_response_bytes = 64 * 1024;
    out->max_inflight = 256;
    out->header_timeout_ms = 10000;
    out->body_timeout_ms = 30000;
    out->idle_timeout_ms = 60000;
    out->retry_after_s = 1;
    out->recv_buffers = 256;
    out->recv_buffer_bytes = 4096;
    out->handshake_timeout_ms = 10000;
    out->max_handshakes = 512;
}

static uint32_t pick(uint32_t v, uint32_t def)
{
    return v != 0 ? v : def;
}

static int options_fill(struct ioring_engine *eng, const struct ioring_options *in)
{
    struct ioring_options d;
    ioring_options_default(&d);
    struct ioring_options *o = &eng->opts;
    *o = *in;
    o->max_connections = pick(in->max_connections, d.max_connections);
    o->max_request_bytes = pick(in->max_request_bytes, d.max_request_bytes);
    o->max_header_bytes = pick(in->max_header_bytes, d.max_header_bytes);
    if (o->max_header_bytes > o->max_request_bytes) {
        o->max_header_bytes = o->max_request_bytes; /* the head is copied into the slot */
    }
    o->max_response_bytes = pick(in->max_response_bytes, d.max_response_bytes);
    o->max_inflight = pick(in->max_inflight, d.max_inflight);
    o->header_timeout_ms = pick(in->header_timeout_ms, d.header_timeout_ms);
    o->body_timeout_ms = pick(in->body_timeout_ms, d.body_timeout_ms);
    o->idle_timeout_ms = pick(in->idle_timeout_ms, d.idle_timeout_ms);
    o->retry_after_s = pick(in->retry_after_s, d.retry_after_s);
    o->recv_buffers = pick(in->recv_buffers, d.recv_buffers);
    o->recv_buffer_bytes = pick(in->recv_buffer_bytes, d.recv_buffer_bytes);
    o->handshake_timeout_ms = pick(in->handshake_timeout_ms, d.handshake_timeout_ms);
    o->max_handshakes = pick(in->max_handshakes, d.max_handshakes);
    if (base_str_copy(eng->listen, sizeof(eng->listen), in->listen ? in->listen : d.listen)) {
        return -EINVAL;
    }
    o->listen = eng->listen;
    bool tls = in->tls_listen != NULL && in->tls_listen[0] != '\0';
    if (tls != (in->tls != NULL) ||
        base_str_copy(eng->tls_listen, sizeof(eng->tls_listen), tls ? in->tls_listen : "")) {
        return -EINVAL; /* a TLS listener needs its context, and a context its listener */
    }
    o->tls_listen = eng->tls_listen;
    /* Parsed whether or not proxy_protocol is on: a bad list is an error either way. */
    int rc = cidr_list_parse(eng->proxy_from, &eng->num_proxy_from,
                             in->proxy_from != NULL ? in->proxy_from : IORING_PROXY_FROM_DEFAULT);
    if (rc != 0) {
        return -EINVAL;
    }
    o->proxy_from = NULL; /* the caller's string need not outlive ioring_engine_new */
    uint32_t workers = in->workers;
    if (workers == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        workers = n > 0 ? (uint32_t)n : 1;
    }
    o->workers = workers < IORING_WORKERS_MAX ? workers : IORING_WORKERS_MAX;
    uint32_t bufs = 1;
    while (bufs < o->recv_buffers && bufs < 32768) {
        bufs <<= 1;
    }
    o->recv_buffers = bufs;
    if (o->max_request_bytes > SIZE_MAX_BYTES || o->max_response_bytes > SIZE_MAX_BYTES ||
        o->recv_buffer_bytes > SIZE_MAX_BYTES || o->max_inflight > INFLIGHT_MAX ||
        o->max_connections > CONNS_MAX || o->max_response_bytes < 256) {
        return -E2BIG;
    }
    if (o->inflight_reserve >= o->max_inflight) {
        return -EINVAL; /* nothing left for a request with a body */
    }
    return 0;
}

/* parse_listen reads "host:port" or "[v6]:port". Returns 0 or -EINVAL. */
static int parse_listen(struct sockaddr_storage *out, socklen_t *out_len, const char *s)
{
    char host[IORING_LISTEN_MAX];
    const char *colon = strrchr(s, ':');
    if (colon == NULL || colon == s) {
        return -EINVAL;
    }
    const char *h = s;
    size_t hlen = (size_t)(colon - s);
    if (s[0] == '[') {
        if (hlen < 2 || s[hlen - 1] != ']') {
            return -EINVAL;
        }
        h = s + 1;
        hlen -= 2;
    }
    if (hlen == 0 || hlen >= sizeof(host)) {
        return -EINVAL;
    }
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    char *end = NULL;
    errno = 0;
    unsigned long port = strtoul(colon + 1, &end, 10);
    if (errno != 0 || end == colon + 1 || *end != '\0' || port > 65535) {
        return -EINVAL;
    }
    memset(out, 0, sizeof(*out));
    struct sockaddr_in *a4 = (struct sockaddr_in *)out;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)out;
    if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)port);
        *out_len = sizeof(*a4);
    } else if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        *out_len = sizeof(*a6);
    } else {
        return -EINVAL;
    }
    return 0;
}

int ioring_listen_check(const char *listen)
{
    ASSERT(listen != NULL);
    if (strnlen(listen, IORING_LISTEN_MAX) == IORING_LISTEN_MAX) {
        return -EINVAL; /* ioring_engine_new could not copy it */
    }
    struct sockaddr_storage addr;
    socklen_t addr_len = 0;
    int rc = parse_listen(&addr, &addr_len, listen);
    ASSERT(rc == 0 || rc == -EINVAL);
    ASSERT(rc != 0 || addr_len > 0);
    return rc;
}

static uint16_t addr_port(const struct sockaddr_storage *a)
{
    return a->ss_family == AF_INET ? ntohs(((const struct sockaddr_in *)a)->sin_port)
                                   : ntohs(((const struct sockaddr_in6 *)a)->sin6_port);
}

static void addr_set_port(struct sockaddr_storage *a, uint16_t port)
{
    if (a->ss_family == AF_INET) {
        ((struct sockaddr_in *)a)->sin_port = htons(port);
    } else {
        ((struct sockaddr_in6 *)a)->sin6_port = htons(port);
    }
}

static int listener_open(int *out_fd, uint16_t *out_port, const struct sockaddr_storage *addr,
                         socklen_t addr_len)
{
    int fd = socket(addr->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd == -1) {
        return -errno;
    }
    int one = 1;
    int rc = 0;
    struct sockaddr_storage bound;
    socklen_t bound_len = sizeof(bound);
    /* TCP_NODELAY on the listener: Linux copies it to every connection accepted from it, one
     * system call less per connection than setting it on each. */
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) == -1 ||
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) == -1 ||
        bind(fd, (const struct sockaddr *)addr, addr_len) == -1 ||
        listen(fd, LISTEN_BACKLOG) == -1 ||
        getsockname(fd, (struct sockaddr *)&bound, &bound_len) == -1) {
        rc = -errno;
        (void)close(fd);
        return rc;
    }
    *out_port = bound.ss_family == AF_INET ? ntohs(((struct sockaddr_in *)&bound)->sin_port)
                                           : ntohs(((struct sockaddr_in6 *)&bound)->sin6_port);
    *out_fd = fd;
    return 0;
}

/* probe_bind binds a socket without SO_REUSEPORT to `addr` and closes it. SO_REUSEADDR, which the
 * rings set as well, lets it bind over connections in TIME_WAIT (no listener: a restart must not
 * wait for them), but not beside a listener. */
static int probe_bind(const struct sockaddr_storage *addr, socklen_t addr_len)
{
    int fd = socket(addr->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd == -1) {
        return -errno;
    }
    int one = 1;
    int rc = 0;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1 ||
        bind(fd, (const struct sockaddr *)addr, addr_len) == -1) {
        rc = -errno;
    }
    if (close(fd) == -1 && rc == 0) {
        rc = -errno;
    }
    return rc;
}

/* listen_probe returns -EADDRINUSE when another socket already holds `addr`. The rings bind with
 * SO_REUSEPORT so that they share one port, but so would the rings of a second certprovd (same
 * user), silently, and the kernel would split the devices between two CAs. The probe binds
 * without SO_REUSEPORT, which no listener's group admits. The listener of an engine freed a
 * moment ago (in this process, or in one that just exited) lingers for a few milliseconds while
 * the kernel tears its io_uring down, asynchronously: an address in use is asked again for up
 * to PROBE_TRIES_MAX x PROBE_WAIT_MS before it counts as taken. A window of microseconds stays
 * between the probe and the first ring's bind. */
static int listen_probe(const struct sockaddr_storage *addr, socklen_t addr_len)
{
    int rc = probe_bind(addr, addr_len);
    for (uint32_t i = 1; i < PROBE_TRIES_MAX && rc == -EADDRINUSE; i++) {
        struct timespec ts = {.tv_sec = 0, .tv_nsec = PROBE_WAIT_MS * 1000000L};
        (void)nanosleep(&ts, NULL);
        rc = probe_bind(addr, addr_len);
    }
    return rc;
}

static size_t page_round(size_t n)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    return (n + page - 1) / page * page;
}

/* ring_alloc allocates every buffer of one ring (start-up only). Returns 0 or -ENOMEM. */
static int ring_alloc(struct ring *r, uint32_t num_conns)
{
    const struct ioring_options *o = &r->eng->opts;
    int rc = pthread_mutex_init(&r->done_mu, NULL);
    ASSERT(rc == 0); /* a default mutex: glibc's init cannot fail */
    r->mutex_ok = true;
    r->num_conns = num_conns;
    r->conns_low_water = num_conns - (num_conns / 10 > 0 ? num_conns / 10 : 1);
    r->conns = calloc(num_conns, sizeof(*r->conns));
    r->conn_free = calloc(num_conns, sizeof(*r->conn_free));
    r->live = calloc(num_conns, sizeof(*r->live));
    r->log_hold = malloc(RING_LOG_HOLD);
    r->slots = calloc(o->max_inflight, sizeof(*r->slots));
    r->slot_free = calloc(o->max_inflight, sizeof(*r->slot_free));
    r->done = calloc(o->max_inflight, sizeof(*r->done));
    size_t req_cap = (size_t)o->max_request_bytes + 2 * IORING_HEADERS_MAX + 8;
    size_t head_cap = (size_t)o->max_header_bytes + 2 * IORING_HEADERS_MAX + 8;
    ASSERT(head_cap <= req_cap);
    r->head_mem_len = page_round(head_cap * num_conns);
    r->head_mem =
        mmap(NULL, r->head_mem_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    /* Every connection and slot with a client of its own, at most half full. */
    uint32_t entries = 2;
    while (entries < 2 * (num_conns + o->max_inflight)) {
        entries <<= 1;
    }
    r->clients = calloc(entries, sizeof(*r->clients));
    r->clients_mask = entries - 1;
    uint32_t per_client = o->max_connections_per_client;
    uint32_t workers = r->eng->opts.workers;
    r->conns_per_client = per_client == 0 ? UINT32_MAX : (per_client + workers - 1) / workers;
    if (getrandom(r->client_seed, sizeof(r->client_seed), 0) != (ssize_t)sizeof(r->client_seed)) {
        r->client_seed[0] = clock_mono_ns(); /* getrandom before the pool is ready: rare */
        r->client_seed[1] = (uint64_t)(uintptr_t)r;
    }
    r->slot_mem_len = page_round((req_cap + o->max_response_bytes) * o->max_inflight);
    r->slot_mem =
        mmap(NULL, r->slot_mem_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    r->num_bufs = o->recv_buffers;
    r->bufs = calloc(r->num_bufs, o->recv_buffer_bytes);
    r->br_len = page_round(r->num_bufs * sizeof(struct io_uring_buf));
    r->br = mmap(NULL, r->br_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (r->conns == NULL || r->conn_free == NULL || r->live == NULL || r->log_hold == NULL ||
        r->slots == NULL || r->slot_free == NULL || r->done == NULL || r->slot_mem == MAP_FAILED ||
        r->bufs == NULL || r->br == MAP_FAILED || r->head_mem == MAP_FAILED || r->clients == NULL) {
        return -ENOMEM;
    }
    for (uint32_t i = 0; i < num_conns; i++) {
        r->conns[i].ring = r;
        r->conns[i].index = i;
        r->conns[i].fd = -1;
        r->conns[i].cur_slot = SLOT_NONE;
        r->conns[i].head.buf = r->head_mem + (size_t)i * head_cap;
        r->conn_free[i] = num_conns - 1 - i;
    }
    r->conn_free_len = num_conns;
    for (uint32_t i = 0; i < o->max_inflight; i++) {
        struct ioring_request *s = &r->slots[i];
        s->ring = r;
        s->index = i;
        s->req = r->slot_mem + (size_t)i * (req_cap + o->max_response_bytes);
        s->resp = s->req + req_cap;
        r->slot_free[i] = o->max_inflight - 1 - i;
    }
    r->slot_free_len = o->max_inflight;
    if (r->eng->opts.tls != NULL) {
        r->tls_plain_len = 16384; /* one TLS record of plaintext (RFC 8446 §5.1) */
        r->tls_plain = malloc(r->tls_plain_len);
        if (r->tls_plain == NULL) {
            return -ENOMEM;
        }
    }
    r->event_fd = eventfd(0, EFD_CLOEXEC);
    return r->event_fd == -1 ? -errno : 0;
}

static void ring_free(struct ring *r)
{
    if (r->listen_fd >= 0) {
        (void)close(r->listen_fd);
    }
    if (r->tls_fd >= 0) {
        (void)close(r->tls_fd);
    }
    free(r->tls_plain);
    for (uint32_t i = 0; r->slots != NULL && i < r->eng->opts.max_inflight; i++) {
        ioring_body_put(r->slots[i].body); /* answers that never went out */
        r->slots[i].body = NULL;
    }
    if (r->event_fd >= 0 && close(r->event_fd) == -1) {
        log_warn("ioring: close_failed errno=%d", errno);
    }
    if (r->slot_mem != NULL && r->slot_mem != MAP_FAILED) {
        int rc = munmap(r->slot_mem, r->slot_mem_len);
        ASSERT(rc == 0);
    }
    if (r->br != NULL && r->br != MAP_FAILED) {
        int rc = munmap(r->br, r->br_len);
        ASSERT(rc == 0);
    }
    if (r->head_mem != NULL && r->head_mem != MAP_FAILED) {
        ASSERT(munmap(r->head_mem, r->head_mem_len) == 0);
    }
    free(r->clients);
    if (r->mutex_ok) {
        int rc = pthread_mutex_destroy(&r->done_mu);
        ASSERT(rc == 0);
    }
    free(r->conns);
    free(r->conn_free);
    free(r->live);
    free(r->log_hold);
    free(r->slots);
    free(r->slot_free);
    free(r->done);
    free(r->bufs);
    memset(r, 0, sizeof(*r));
}

/* listen_prepare parses `listen` and, for a fixed port, makes sure nobody holds it. */
static int listen_prepare(struct sockaddr_storage *addr, socklen_t *addr_len, bool *fixed,
                          const char *listen)
{
    int rc = parse_listen(addr, addr_len, listen);
    if (rc != 0) {
        return rc;
    }
    /* Port 0 asks the kernel for a free port: nobody holds it, nothing to probe. */
    *fixed = addr_port(addr) != 0;
    return *fixed ? listen_probe(addr, *addr_len) : 0;
}

/* listens_clash is true when the TLS listener would share the plain one's port (SO_REUSEPORT
 * would let it, and split the clients between HTTP and HTTPS). */
static bool listens_clash(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family || addr_port(a) == 0 || addr_port(a) != addr_port(b)) {
        return false;
    }
    if (a->ss_family == AF_INET) {
        uint32_t x = ((const struct sockaddr_in *)a)->sin_addr.s_addr;
        uint32_t y = ((const struct sockaddr_in *)b)->sin_addr.s_addr;
        return x == y || x == INADDR_ANY || y == INADDR_ANY;
    }
    const struct in6_addr *x = &((const struct sockaddr_in6 *)a)->sin6_addr;
    const struct in6_addr *y = &((const struct sockaddr_in6 *)b)->sin6_addr;
    return memcmp(x, y, sizeof(*x)) == 0 || IN6_IS_ADDR_UNSPECIFIED(x) ||
           IN6_IS_ADDR_UNSPECIFIED(y);
}

static int rings_start(struct ioring_engine *eng)
{
    struct sockaddr_storage addr, tls_addr;
    socklen_t addr_len = 0, tls_addr_len = 0;
    bool fixed = false, tls_fixed = false;
    bool tls = eng->tls_listen[0] != '\0';
    int rc = listen_prepare(&addr, &addr_len, &fixed, eng->listen);
    if (rc == 0 && tls) {
        rc = parse_listen(&tls_addr, &tls_addr_len, eng->tls_listen);
        rc = rc != 0 ? rc : listens_clash(&addr, &tls_addr) ? -EINVAL : 0;
        rc = rc != 0 ? rc : listen_prepare(&tls_addr, &tls_addr_len, &tls_fixed, eng->tls_listen);
    }
    if (rc != 0) {
        return rc;
    }
    uint32_t n = eng->opts.workers;
    uint32_t per_ring = (eng->opts.max_connections + n - 1) / n;
    for (uint32_t i = 0; i < n; i++) {
        struct ring *r = &eng->rings[i];
        r->eng = eng;
        r->index = i;
        r->handshakes_max = (eng->opts.max_handshakes + n - 1) / n;
        if (i > 0) { /* port 0: every ring on the first one's port */
            addr_set_port(&addr, eng->port);
            addr_set_port(&tls_addr, eng->tls_port);
        }
        rc = listener_open(&r->listen_fd, &eng->port, &addr, addr_len);
        if (rc == 0 && tls) {
            rc = listener_open(&r->tls_fd, &eng->tls_port, &tls_addr, tls_addr_len);
        }
        rc = rc != 0 ? rc : ring_alloc(r, per_ring);
        if (rc != 0) {
            return rc;
        }
    }
    for (uint32_t i = 0; i < n; i++) {
        rc = -pthread_create(&eng->rings[i].thread, NULL, ring_main, &eng->rings[i]);
        if (rc != 0) {
            return rc;
        }
        eng->rings[i].thread_started = true;
        base_mutex_lock(&eng->init_mu);
        while (eng->init_done <= i) { /* bounded: ring i reports once, success or not */
            base_cond_wait(&eng->init_cv, &eng->init_mu);
        }
        rc = eng->rings[i].init_rc;
        base_mutex_unlock(&eng->init_mu);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

int ioring_engine_new(struct ioring_engine **out, const struct ioring_options *opts,
                      ioring_handler_fn handler, void *ctx)
{
    ASSERT(out != NULL);
    ASSERT(opts != NULL);
    ASSERT(handler != NULL);
    struct ioring_engine *eng = calloc(1, sizeof(*eng));
    if (eng == NULL) {
        return -ENOMEM;
    }
    int rc = pthread_mutex_init(&eng->init_mu, NULL);
    ASSERT(rc == 0); /* default attributes: glibc's init cannot fail */
    rc = pthread_cond_init(&eng->init_cv, NULL);
    ASSERT(rc == 0);
    eng->handler = handler;
    eng->ctx = ctx;
    http_settings_init(&eng->settings);
    rc = options_fill(eng, opts);
    if (rc != 0) {
        goto out;
    }
    eng->num_rings = eng->opts.workers;
    eng->rings = calloc(eng->num_rings, sizeof(*eng->rings));
    if (eng->rings == NULL) {
        rc = -ENOMEM;
        goto out;
    }
    for (uint32_t i = 0; i < eng->num_rings; i++) {
        eng->rings[i].listen_fd = -1;
        eng->rings[i].tls_fd = -1;
        eng->rings[i].event_fd = -1;
    }
    rc = rings_start(eng);
out:
    if (rc != 0) {
        log_err("ioring: start_failed listen=%s rc=%d", eng->listen, rc);
        ioring_engine_free(eng);
        return rc;
    }
    log_info("ioring: started listen=%s port=%u tls_listen=%s tls_port=%u workers=%u", eng->listen,
             eng->port, eng->tls_listen[0] != '\0' ? eng->tls_listen : "-", eng->tls_port,
             eng->num_rings);
    *out = eng;
    return 0;
}

uint16_t ioring_engine_port(const struct ioring_engine *eng)
{
    ASSERT(eng != NULL);
    return eng->port;
}

uint16_t ioring_engine_tls_port(const struct ioring_engine *eng)
{
    ASSERT(eng != NULL);
    return eng->tls_port;
}

uint32_t ioring_engine_workers(const struct ioring_engine *eng)
{
    ASSERT(eng != NULL);
    return eng->num_rings;
}

int ioring_engine_stop(struct ioring_engine *eng, uint32_t deadline_ms)
{
    ASSERT(eng != NULL);
    if (eng->stopped) {
        return 0;
    }
    eng->stopped = true;
    atomic_store(&eng->stop_deadline_ns, clock_mono_ns() + (uint64_t)deadline_ms * 1000000u);
    atomic_store(&eng->stopping, true);
    int rc = 0;
    for (uint32_t i = 0; i < eng->num_rings && eng->rings != NULL; i++) {
        struct ring *r = &eng->rings[i];
        if (!r->thread_started) {
            continue;
        }
        if (r->event_fd >= 0) {
            ring_wake(r);
        }
        void *ret = NULL;
        int joined = pthread_join(r->thread, &ret);
        ASSERT(joined == 0);
        r->thread_started = false;
        if (ret != NULL) {
            rc = -ETIMEDOUT;
        }
    }
    return rc;
}

void ioring_engine_free(struct ioring_engine *eng)
{
    if (eng == NULL) {
        return;
    }
    (void)ioring_engine_stop(eng, 0);
    for (uint32_t i = 0; i < eng->num_rings && eng->rings != NULL; i++) {
        ring_free(&eng->rings[i]);
    }
    free(eng->rings);
    eng->rings = NULL;
    int rc = pthread_mutex_destroy(&eng->init_mu);
    ASSERT(rc == 0);
    rc = pthread_cond_destroy(&eng->init_cv);
    ASSERT(rc == 0);
    free(eng);
}

void ioring_engine_stats_get(const struct ioring_engine *eng, struct ioring_stats *out)
{
    ASSERT(eng != NULL);
    ASSERT(out != NULL);
    memset(out, 0, sizeof(*out));
    for (uint32_t i = 0; i < eng->num_rings; i++) {
        const struct ring_stats *s = &eng->rings[i].stats;
        out->connections_open += atomic_load_explicit(&s->connections_open, memory_order_relaxed);
        out->connections_accepted += atomic_load(&s->connections_accepted);
        out->connections_refused += atomic_load(&s->connections_refused);
        out->requests += atomic_load(&s->requests);
        out->requests_inflight += atomic_load(&s->requests_inflight);
        out->responses += atomic_load(&s->responses);
        out->responses_400 += atomic_load(&s->responses_400);
        out->responses_413 += atomic_load(&s->responses_413);
        out->responses_503 += atomic_load(&s->responses_503);
        out->timeouts += atomic_load(&s->timeouts);
        out->accept_pauses += atomic_load(&s->accept_pauses);
        out->tls_full += atomic_load(&s->tls_full);
        out->tls_resumed += atomic_load(&s->tls_resumed);
        out->tls_failed += atomic_load(&s->tls_failed);
        out->tls_refused += atomic_load(&s->tls_refused);
        out->tls_client_certs += atomic_load(&s->tls_client_certs);
    }
}
