#include "helpers.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "base/base.h"

struct th th;

struct delayed {
    struct ioring_request *req;
    unsigned ms;
};

static void *delay_main(void *arg)
{
    struct delayed d = *(struct delayed *)arg;
    free(arg);
    struct timespec ts = {.tv_sec = d.ms / 1000, .tv_nsec = (long)(d.ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
    char body[64];
    int n = snprintf(body, sizeof(body), "delayed %u", d.ms);
    ASSERT(ioring_request_respond(d.req, 200, "text/plain", NULL, body, (size_t)n) == 0);
    return NULL;
}

/* A shared body of /shared?kb=N: byte i is (i * 7 + i / 251) & 0xff; freed by the engine. */
struct shared_body {
    struct ioring_body body;
    uint8_t data[];
};

static void shared_free(struct ioring_body *b)
{
    atomic_fetch_add(&th.bodies_freed, 1);
    free(b);
}

static struct ioring_body *shared_new(size_t len)
{
    struct shared_body *sb = malloc(sizeof(*sb) + len);
    ASSERT(sb != NULL);
    for (size_t i = 0; i < len; i++) {
        sb->data[i] = (uint8_t)((i * 7 + i / 251) & 0xff);
    }
    atomic_init(&sb->body.refs, 1);
    sb->body.data = sb->data;
    sb->body.len = len;
    sb->body.free_fn = shared_free;
    return &sb->body;
}

static void handler(void *ctx, struct ioring_request *req)
{
    struct th *t = ctx;
    atomic_fetch_add(&t->handled, 1);
    size_t tlen = 0;
    const char *target = ioring_request_target(req, &tlen);
    size_t blen = 0;
    const uint8_t *body = ioring_request_body(req, &blen);
    if (strcmp(target, "/echo") == 0) {
        char extra[64];
        (void)snprintf(extra, sizeof(extra), "X-Method: %s\r\n", ioring_request_method(req));
        ASSERT(ioring_request_respond(req, 200, "text/plain", extra, body, blen) == 0);
    } else if (strncmp(target, "/delay?ms=", 10) == 0) {
        struct delayed *d = malloc(sizeof(*d));
        ASSERT(d != NULL);
        d->req = req;
        d->ms = (unsigned)strtoul(target + 10, NULL, 10);
        ASSERT(pthread_mutex_lock(&t->mu) == 0);
        ASSERT(t->num_threads < TH_THREADS_MAX);
        ASSERT(pthread_create(&t->threads[t->num_threads++], NULL, delay_main, d) == 0);
        ASSERT(pthread_mutex_unlock(&t->mu) == 0);
    } else if (strcmp(target, "/hold") == 0) {
        ASSERT(pthread_mutex_lock(&t->mu) == 0);
        ASSERT(t->num_held < TH_HELD_MAX);
        t->held[t->num_held++] = req;
        ASSERT(pthread_mutex_unlock(&t->mu) == 0);
    } else if (strcmp(target, "/client") == 0) {
        char addr[IORING_ADDR_TEXT_MAX];
        ASSERT(ioring_request_client_format(req, addr, sizeof(addr)) == 0);
        ASSERT(ioring_request_respond(req, 200, "text/plain", NULL, addr, strlen(addr)) == 0);
    } else if (strcmp(target, "/hdr") == 0) {
        size_t vlen = 0;
        const char *v = ioring_request_header_get(req, "x-TEST", &vlen);
        ASSERT(ioring_request_respond(req, v ? 200 : 404, NULL, NULL, v ? v : "", vlen) == 0);
    } else if (strncmp(target, "/shared?kb=", 11) == 0) {
        size_t kb = strtoul(target + 11, NULL, 10);
        ASSERT(ioring_request_respond_body(req, 200, "application/octet-stream", NULL,
                                           shared_new(kb * 1024)) == 0);
    } else if (strcmp(target, "/big") == 0) {
        static char big[1 << 17];
        ASSERT(ioring_request_respond(req, 200, NULL, NULL, big, sizeof(big)) == -E2BIG);
    } else {
        ASSERT(ioring_request_respond(req, 404, "text/plain", NULL, "nope", 4) == 0);
    }
}

static bool turn_end(void *ctx, uint32_t ring_index)
{
    struct th *t = ctx;
    (void)ring_index;
    atomic_fetch_add(&t->turn_ends, 1);
    int left = atomic_load(&t->turn_more_left);
    while (left > 0 && !atomic_compare_exchange_weak(&t->turn_more_left, &left, left - 1)) {
    }
    return left > 0;
}

void th_options(struct ioring_options *o)
{
    ioring_options_default(o);
    o->listen = "127.0.0.1:0";
    o->workers = 2;
    o->max_connections = 512;
    o->max_inflight = 64;
    o->max_request_bytes = 8192;
    o->header_timeout_ms = 2000;
    o->body_timeout_ms = 2000;
    o->idle_timeout_ms = 5000;
    o->on_turn_end = turn_end;
}

void th_start(const struct ioring_options *o)
{
    memset(&th, 0, sizeof(th));
    ASSERT(pthread_mutex_init(&th.mu, NULL) == 0);
    int rc = ioring_engine_new(&th.eng, o, handler, &th);
    cr_assert_eq(rc, 0, "engine_new: %d", rc);
    cr_assert_neq(ioring_engine_port(th.eng), 0);
}

int th_num_held(void)
{
    ASSERT(pthread_mutex_lock(&th.mu) == 0);
    int n = th.num_held;
    ASSERT(pthread_mutex_unlock(&th.mu) == 0);
    return n;
}

void th_release_held(void)
{
    ASSERT(pthread_mutex_lock(&th.mu) == 0);
    for (int i = 0; i < th.num_held; i++) {
        ASSERT(ioring_request_respond(th.held[i], 200, "text/plain", NULL, "released", 8) == 0);
    }
    th.num_held = 0;
    ASSERT(pthread_mutex_unlock(&th.mu) == 0);
}

void th_stop(void)
{
    for (int i = 0; i < th.num_threads; i++) {
        ASSERT(pthread_join(th.threads[i], NULL) == 0);
    }
    th.num_threads = 0;
    th_release_held();
    ioring_engine_free(th.eng);
    th.eng = NULL;
    ASSERT(pthread_mutex_destroy(&th.mu) == 0);
}

uint16_t th_port(void)
{
    return ioring_engine_port(th.eng);
}

void client_open(struct client *c, int timeout_ms)
{
    client_open_from(c, timeout_ms, NULL);
}

void client_open_from(struct client *c, int timeout_ms, const char *src)
{
    c->len = 0;
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_neq(c->fd, -1);
    if (src != NULL) {
        struct sockaddr_in b = {.sin_family = AF_INET};
        ASSERT(inet_pton(AF_INET, src, &b.sin_addr) == 1);
        cr_assert_eq(bind(c->fd, (struct sockaddr *)&b, sizeof(b)), 0, "bind %s: %d", src, errno);
    }
    struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
    ASSERT(setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) == 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(th_port())};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(connect(c->fd, (struct sockaddr *)&a, sizeof(a)), 0, "connect: %d", errno);
}

void client_close(struct client *c)
{
    if (c->fd >= 0) {
        (void)close(c->fd);
    }
    c->fd = -1;
}

void client_send(struct client *c, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);
        cr_assert_gt(n, 0, "send: %d", errno);
        p += n;
        len -= (size_t)n;
    }
}

void client_send_str(struct client *c, const char *s)
{
    client_send(c, s, strlen(s));
}

static int fill(struct client *c)
{
    if (c->len == sizeof(c->buf)) {
        return -1;
    }
    ssize_t n = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);
    if (n <= 0) {
        return -1;
    }
    c->len += (size_t)n;
    return 0;
}

int client_read(struct client *c, struct response *r)
{
    memset(r, 0, sizeof(*r));
    char *end = NULL;
    while ((end = memmem(c->buf, c->len, "\r\n\r\n", 4)) == NULL) {
        if (fill(c) != 0) {
            return -1;
        }
    }
    size_t hlen = (size_t)(end - c->buf) + 4;
    ASSERT(hlen < sizeof(r->headers));
    memcpy(r->headers, c->buf, hlen);
    r->headers[hlen] = '\0';
    r->status = atoi(r->headers + 9);
    size_t clen = 0;
    const char *cl = strcasestr(r->headers, "\r\nContent-Length:");
    if (cl != NULL) {
        clen = strtoul(cl + 17, NULL, 10);
    }
    while (c->len < hlen + clen) {
        if (fill(c) != 0) {
            return -1;
        }
    }
    ASSERT(clen < sizeof(r->body));
    memcpy(r->body, c->buf + hlen, clen);
    r->body_len = clen;
    memmove(c->buf, c->buf + hlen + clen, c->len - hlen - clen);
    c->len -= hlen + clen;
    return 0;
}

size_t client_read_raw(struct client *c, char *out, size_t n)
{
    while (c->len < n && fill(c) == 0) {
    }
    size_t got = c->len < n ? c->len : n;
    memcpy(out, c->buf, got);
    memmove(c->buf, c->buf + got, c->len - got);
    c->len -= got;
    return got;
}

bool client_eof(struct client *c)
{
    char b[256];
    for (int i = 0; i < 64; i++) {
        ssize_t n = recv(c->fd, b, sizeof(b), 0);
        if (n == 0 || (n < 0 && errno == ECONNRESET)) {
            return true;
        }
        if (n < 0) {
            return false; /* timeout */
        }
    }
    return false;
}

bool header_has(const struct response *r, const char *name, const char *value)
{
    char line[256];
    (void)snprintf(line, sizeof(line), "\r\n%s: %s\r\n", name, value);
    return strcasestr(r->headers, line) != NULL;
}

int run_cmd(char *out, size_t cap, const char *fmt, ...)
{
    char cmd[2048];
    va_list ap;
    va_start(ap, fmt);
    (void)vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    FILE *f = popen(cmd, "r");
    ASSERT(f != NULL);
    size_t n = fread(out, 1, cap - 1, f);
    out[n] = '\0';
    int st = pclose(f);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

void th_start_default(void)
{
    struct ioring_options o;
    th_options(&o);
    th_start(&o);
}

void th_sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}
