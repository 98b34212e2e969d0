#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/base.h"
#include "helpers.h"

static struct client cl;
static struct client cl2;
static struct response rsp;

static void wait_held(int n)
{
    for (int i = 0; i < 500 && th_num_held() < n; i++) {
        th_sleep_ms(10);
    }
    cr_assert_eq(th_num_held(), n);
}

TestSuite(ioring_bounds, .fini = th_stop, .timeout = 30);

Test(ioring_bounds, inflight_full_gets_503_with_retry_after)
{
    struct ioring_options o;
    th_options(&o);
    o.workers = 1;
    o.max_inflight = 2;
    o.retry_after_s = 7;
    th_start(&o);
    client_open(&cl, 3000);
    client_open(&cl2, 3000);
    client_send_str(&cl, "GET /hold HTTP/1.1\r\nHost: x\r\n\r\n");
    client_send_str(&cl2, "GET /hold HTTP/1.1\r\nHost: x\r\n\r\n");
    wait_held(2);
    struct client c3;
    client_open(&c3, 3000);
    client_send_str(&c3, "GET /echo HTTP/1.1\r\nHost: x\r\n\r\n");
    cr_assert_eq(client_read(&c3, &rsp), 0);
    cr_assert_eq(rsp.status, 503);
    cr_assert(header_has(&rsp, "Retry-After", "7"));
    cr_assert(header_has(&rsp, "Content-Length", "20"));
    client_close(&c3);
    th_release_held();
    cr_assert_eq(client_read(&cl, &rsp), 0);
    cr_assert_str_eq(rsp.body, "released");
    cr_assert_eq(client_read(&cl2, &rsp), 0);
    cr_assert_str_eq(rsp.body, "released");
    /* capacity is back */
    client_send_str(&cl, "GET /echo HTTP/1.1\r\nHost: x\r\n\r\n");
    cr_assert_eq(client_read(&cl, &rsp), 0);
    cr_assert_eq(rsp.status, 200);
    struct ioring_stats st;
    ioring_engine_stats_get(th.eng, &st);
    cr_assert_eq(st.responses_503, 1);
    cr_assert_eq(st.requests_inflight, 0);
    client_close(&cl);
    client_close(&cl2);
}

Test(ioring_bounds, header_deadline_closes_slowloris)
{
    struct ioring_options o;
    th_options(&o);
    o.header_timeout_ms = 300;
    th_start(&o);
    client_open(&cl, 3000);
    client_send_str(&cl, "GET /echo HTTP/1.1\r\nHo");
    client_open(&cl2, 3000);
    for (int i = 0; i < 3; i++) { /* served meanwhile */
        client_send_str(&cl2, "GET /echo HTTP/1.1\r\nHost: x\r\n\r\n");
        cr_assert_eq(client_read(&cl2, &rsp), 0);
        cr_assert_eq(rsp.status, 200);
        th_sleep_ms(100);
    }
    uint64_t t0 = clock_mono_ns();
    cr_assert(client_eof(&cl));
    cr_assert_lt(clock_mono_ns() - t0, 1000000000u);
    struct ioring_stats st;
    ioring_engine_stats_get(th.eng, &st);
    cr_assert_geq(st.timeouts, 1);
    client_close(&cl);
    client_close(&cl2);
}

Test(ioring_bounds, idle_and_body_deadlines)
{
    struct ioring_options o;
    th_options(&o);
    o.idle_timeout_ms = 300;
    o.body_timeout_ms = 300;
    th_start(&o);
    client_open(&cl, 3000);
    client_send_str(&cl, "GET /echo HTTP/1.1\r\nHost: x\r\n\r\n");
    cr_assert_eq(client_read(&cl, &rsp), 0);
    uint64_t t0 = clock_mono_ns();
    cr_assert(client_eof(&cl));
    cr_assert_geq(clock_mono_ns() - t0, 250000000u);
    client_close(&cl);
    client_open(&cl, 3000);
    client_send_str(&cl, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc");
    cr_assert(client_eof(&cl));
    client_close(&cl);
}

Test(ioring_bounds, max_connections_pauses_and_resumes_accept)
{
    struct ioring_options o;
    th_options(&o);
    o.workers = 1;
    o.max_connections = 2;
    th_start(&o);
    client_open(&cl, 3000);
    client_open(&cl2, 3000);
    client_send_str(&cl, "GET /echo HTTP/1.1\r\nHost: x\r\n\r\n");
    cr_assert_eq(client_read(&cl, &rsp), 0);
    client_send_str(&cl2, "GET /echo HTTP/1.1\r\nHost: x\r\n\r\n");
    cr_assert_eq(client_read(&cl2, &rsp), 0);
    struct client c3;
    client_open(&c3, 400); /* the kernel completes the handshake; the engine does not accept */
    client_send_str(&c3, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nc3");
    cr_assert_eq(client_read(&c3, &rsp), -1);
    struct ioring_stats st;
    ioring_engine_stats_get(th.eng, &st);
    cr_assert_eq(st.connections_open, 2);
    cr_assert_eq(st.accept_pauses, 1);
    client_close(&cl); /* below the low-water mark: accepting resumes */
    cr_assert_eq(client_read(&c3, &rsp), 0);
    cr_assert_str_eq(rsp.body, "c3");
    client_close(&c3);
    client_close(&cl2);
}

/* fds_open counts this process's open file descriptors (the engine's and the test's). */
static int fds_open(void)
{
    DIR *d = opendir("/proc/self/fd");
    ASSERT(d != NULL);
    int n = 0;
    for (struct dirent *e = readdir(d); e != NULL; e = readdir(d)) {
        n += e->d_name[0] != '.';
    }
    (void)closedir(d);
    return n - 1; /* the directory's own */
}

/* fds_settle waits (at most 2 s) until fds_open() is `want`: a connection's fd is closed by
 * the ring's next submit, not at once. Returns the last count. */
static int fds_settle(int want)
{
    int n = fds_open();
    for (int i = 0; i < 200 && n != want; i++) {
        th_sleep_ms(10);
        n = fds_open();
    }
    return n;
}

static uint16_t sock_port(int fd, bool peer)
{
    struct sockaddr_in a;
    socklen_t len = sizeof(a);
    int rc = peer ? getpeername(fd, (struct sockaddr *)&a, &len)
                  : getsockname(fd, (struct sockaddr *)&a, &len);
    return rc == 0 && a.sin_family == AF_INET ? ntohs(a.sin_port) : 0;
}

/* server_side finds the engine's socket of client `c`'s connection in this process. */
static int server_side(const struct client *c)
{
    uint16_t mine = sock_port(c->fd, false);
    for (int fd = 0; fd < 4096; fd++) {
        struct stat st;
        if (fd == c->fd || fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode)) {
            continue;
        }
        if (sock_port(fd, false) == th_port() && sock_port(fd, true) == mine) {
            return fd;
        }
    }
    return -1;
}

/* Each accepted connection inherits TCP_NODELAY from its listener (no setsockopt of its own),
 * and each way a connection ends gives its fd back (the ring's close, not a direct call). */
Test(ioring_bounds, accepted_sockets_have_nodelay_and_every_end_closes_the_fd)
{
    struct ioring_options o;
    th_options(&o);
    o.header_timeout_ms = 300;
    int before = fds_open();
    th_start(&o);
    int base = fds_open();
    client_open(&cl, 3000);
    client_send_str(&cl, "GET /echo HTTP/1.1\r\nHost: x\r\n\r\n");
    cr_assert_eq(client_read(&cl, &rsp), 0);
    int fd = server_side(&cl);
    cr_assert_geq(fd, 0, "the engine's socket of the connection");
    int nodelay = 0;
    socklen_t len = sizeof(nodelay);
    cr_assert_eq(getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &nodelay, &len), 0);
    cr_assert_eq(nodelay, 1, "an accepted connection without TCP_NODELAY");
    cr_assert_eq(fds_open(), base + 2, "the client's and the engine's");
    client_close(&cl); /* the client ends it: EOF, no recv left, the close alone */
    cr_assert_eq(fds_settle(base), base, "closed by the client: the engine's fd stays open");

    client_open(&cl, 3000); /* the server ends it: the answer, its FIN (shutdown), the close */
    client_send_str(&cl, "GET /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    cr_assert_eq(client_read(&cl, &rsp), 0);
    cr_assert(client_eof(&cl), "no FIN after Connection: close");
    client_close(&cl);
    cr_assert_eq(fds_settle(base), base, "Connection: close: the engine's fd stays open");

    client_open(&cl, 3000); /* a deadline ends it with its recv pending: shutdown and cancel */
    client_send_str(&cl, "GET /echo HTTP/1.1\r\n");
    cr_assert(client_eof(&cl), "the header deadline did not close");
    cr_assert_eq(fds_settle(base + 1), base + 1, "deadline: the engine's fd stays open");
    client_close(&cl);

    client_open(&cl, 3000); /* an error ends it: 400 and close */
    client_send_str(&cl, "BAD\x01 / HTTP/1.1\r\n\r\n");
    cr_assert_eq(client_read(&cl, &rsp), 0);
    cr_assert_eq(rsp.status, 400);
    cr_assert(client_eof(&cl));
    client_close(&cl);
    cr_assert_eq(fds_settle(base), base, "400: the engine's fd stays open");

    client_open(&cl, 3000); /* the engine stops with an idle connection: the drain closes it */
    client_send_str(&cl, "GET /echo HTTP/1.1\r\nHost: x\r\n\r\n");
    cr_assert_eq(client_read(&cl, &rsp), 0);
    th_stop();
    cr_assert_eq(fds_open(), before + 1, "the stopped engine left fds open");
    cr_assert(client_eof(&cl));
    client_close(&cl);
    th_start(&o); /* for the suite's .fini */
}

/* A client that asks for a large answer and never reads it: the send deadline ends the
 * connection, whose send would otherwise wait for ever, and gives back its slot, its fd and the
 * shared body. */
Test(ioring_bounds, a_client_that_does_not_read_is_let_go_at_the_send_deadline)
{
    struct ioring_options o;
    th_options(&o);
    o.workers = 1;
    o.body_timeout_ms = 300;
    th_start(&o);
    int base = fds_open();
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(fd, 0);
    int small = 4096; /* before connect: the window it advertises stays small */
    cr_assert_eq(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)), 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(th_port())};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    const char *req = "GET /shared?kb=16384 HTTP/1.1\r\nHost: x\r\n\r\n";
    cr_assert_eq(send(fd, req, strlen(req), MSG_NOSIGNAL), (ssize_t)strlen(req));
    struct ioring_stats st;
    for (int i = 0; i < 300; i++) {
        ioring_engine_stats_get(th.eng, &st);
        if (st.timeouts > 0 && st.connections_open == 0) {
            break;
        }
        th_sleep_ms(10);
    }
    cr_assert_eq(st.timeouts, 1, "the send deadline did not fire");
    cr_assert_eq(st.connections_open, 0, "the connection outlived its send deadline");
    cr_assert_eq(fds_settle(base + 1), base + 1, "the engine kept the connection's fd");
    for (int i = 0; i < 100 && atomic_load(&th.bodies_freed) < 1; i++) {
        th_sleep_ms(10);
    }
    cr_assert_eq(atomic_load(&th.bodies_freed), 1, "the shared body was not given back");
    (void)close(fd);
}

static uint64_t open_after(uint64_t want, unsigned max_ms)
{
    struct ioring_stats st;
    ioring_engine_stats_get(th.eng, &st);
    for (unsigned i = 0; i < max_ms / 10 && st.connections_open != want; i++) {
        th_sleep_ms(10);
        ioring_engine_stats_get(th.eng, &st);
    }
    return st.connections_open;
}

/* A client that asked to close (Connection: close, or HTTP/1.0) and sent nothing after: closed
 * once its answer is out, without waiting for its FIN. One that sent more: the half-close and
 * the wait for its FIN (LINGER_MS, 2 s), so that those bytes cannot reset the answer. */
Test(ioring_bounds, a_client_that_asked_to_close_is_not_waited_for)
{
    struct ioring_options o;
    th_options(&o);
    o.workers = 1;
    th_start(&o);
    const char *asks[] = {"GET /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                          "GET /echo HTTP/1.0\r\n\r\n",
                          "POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                          "Content-Length: 3\r\n\r\nabc"};
    for (size_t i = 0; i < sizeof(asks) / sizeof(asks[0]); i++) {
        client_open(&cl, 3000);
        client_send_str(&cl, asks[i]);
        cr_assert_eq(client_read(&cl, &rsp), 0);
        cr_assert_eq(rsp.status, 200);
        cr_assert(client_eof(&cl), "no FIN after the answer (%zu)", i);
        /* The client keeps its socket open: the engine has let go all the same. */
        cr_assert_eq(open_after(0, 1000), 0, "waited for the FIN of a client done (%zu)", i);
        client_close(&cl);
    }
    client_open(&cl, 3000); /* bytes after the request that asked to close */
    client_send_str(&cl, "GET /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                         "GET /echo HTTP/1.1\r\nHost: x\r\n\r\n");
    cr_assert_eq(client_read(&cl, &rsp), 0);
    cr_assert_eq(rsp.status, 200);
    cr_assert(client_eof(&cl));
    th_sleep_ms(300);
    cr_assert_eq(open_after(1, 0), 1, "no linger for a client that sent more");
    client_close(&cl);
    cr_assert_eq(open_after(0, 1000), 0);
}

/* Deadlines reach every connection in use however connections come and go: the ring visits
 * only those in use, a list from which a closed connection is taken out of the middle. */
Test(ioring_bounds, deadlines_reach_every_connection_as_others_come_and_go)
{
    enum { N = 24 };
    struct ioring_options o;
    th_options(&o);
    o.workers = 1;
    o.idle_timeout_ms = 400;
    th_start(&o);
    int base = fds_open();
    static struct client cs[N];
    for (int i = 0; i < N; i++) {
        client_open(&cs[i], 3000);
        client_send_str(&cs[i], "GET /echo HTTP/1.1\r\nHost: x\r\n\r\n");
        cr_assert_eq(client_read(&cs[i], &rsp), 0);
    }
    for (int i = 0; i < N; i += 3) { /* every third leaves first, from the list's middle */
        client_close(&cs[i]);
    }
    cr_assert_eq(fds_settle(base + 2 * (N - N / 3)), base + 2 * (N - N / 3));
    uint64_t t0 = clock_mono_ns();
    for (int i = 0; i < N; i++) {
        if (cs[i].fd >= 0) {
            cr_assert(client_eof(&cs[i]), "connection %d outlived its idle deadline", i);
            client_close(&cs[i]);
        }
    }
    cr_assert_lt(clock_mono_ns() - t0, 2000000000u);
    cr_assert_eq(fds_settle(base), base, "idle connections closed, fds left open");
    struct ioring_stats st;
    ioring_engine_stats_get(th.eng, &st);
    cr_assert_eq(st.connections_open, 0);
    cr_assert_eq(st.connections_accepted, N);
}

static size_t proxy_header(uint8_t *out, const char *ip, uint16_t port)
{
    static const uint8_t sig[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
                                    0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};
    memcpy(out, sig, 12);
    out[12] = 0x21; /* v2, PROXY */
    out[13] = 0x11; /* TCP over IPv4 */
    out[14] = 0;
    out[15] = 12;
    ASSERT(inet_pton(AF_INET, ip, out + 16) == 1);
    ASSERT(inet_pton(AF_INET, "10.0.0.1", out + 20) == 1);
    uint16_t sp = htons(port);
    uint16_t dp = htons(443);
    memcpy(out + 24, &sp, 2);
    memcpy(out + 26, &dp, 2);
    return 28;
}

Test(ioring_bounds, proxy_v2_reports_client_and_refuses_garbage)
{
    struct ioring_options o;
    th_options(&o);
    o.proxy_protocol = true;
    th_start(&o);
    uint8_t hdr[64];
    size_t n = proxy_header(hdr, "203.0.113.7", 4242);
    client_open(&cl, 3000);
    client_send(&cl, hdr, 5); /* split across reads */
    th_sleep_ms(30);
    client_send(&cl, hdr + 5, n - 5);
    client_send_str(&cl, "GET /client HTTP/1.1\r\nHost: x\r\n\r\n");
    cr_assert_eq(client_read(&cl, &rsp), 0);
    cr_assert_str_eq(rsp.body, "203.0.113.7:4242");
    client_close(&cl);
    client_open(&cl, 3000);
    client_send_str(&cl, "GET /client HTTP/1.1\r\nHost: x\r\n\r\n");
    char got[64];
    cr_assert_eq(client_read_raw(&cl, got, sizeof(got)), 0); /* no HTTP answer */
    client_close(&cl);
    struct ioring_stats st;
    ioring_engine_stats_get(th.eng, &st);
    cr_assert_eq(st.connections_refused, 1);
}

Test(ioring_bounds, stop_drains_inflight_async_request)
{
    struct ioring_options o;
    th_options(&o);
    th_start(&o);
    client_open(&cl, 3000);
    client_open(&cl2, 3000); /* idle: closed by stop */
    client_send_str(&cl, "GET /delay?ms=300 HTTP/1.1\r\nHost: x\r\n\r\n");
    for (int i = 0; i < 200 && atomic_load(&th.handled) == 0; i++) {
        th_sleep_ms(5);
    }
    uint64_t t0 = clock_mono_ns();
    cr_assert_eq(ioring_engine_stop(th.eng, 3000), 0);
    cr_assert_lt(clock_mono_ns() - t0, 2000000000u);
    cr_assert_eq(client_read(&cl, &rsp), 0);
    cr_assert_str_eq(rsp.body, "delayed 300");
    cr_assert(header_has(&rsp, "Connection", "close"));
    cr_assert(client_eof(&cl));
    cr_assert(client_eof(&cl2));
    client_close(&cl);
    client_close(&cl2);
}

Test(ioring_bounds, stop_deadline_cuts_off)
{
    struct ioring_options o;
    th_options(&o);
    th_start(&o);
    client_open(&cl, 3000);
    client_send_str(&cl, "GET /hold HTTP/1.1\r\nHost: x\r\n\r\n");
    wait_held(1);
    cr_assert_eq(ioring_engine_stop(th.eng, 200), -ETIMEDOUT);
    cr_assert(client_eof(&cl));
    client_close(&cl);
    /* th_stop answers the orphaned request; the answer is dropped */
}

static void dummy_handler(void *ctx, struct ioring_request *req)
{
    (void)ctx;
    (void)ioring_request_respond(req, 200, NULL, NULL, NULL, 0);
}

Test(ioring_bounds, bad_options_and_ipv6)
{
    struct ioring_options o;
    th_options(&o);
    struct ioring_engine *eng = NULL;
    o.listen = "nonsense";
    cr_assert_eq(ioring_engine_new(&eng, &o, dummy_handler, NULL), -EINVAL);
    o.listen = "127.0.0.1:99999";
    cr_assert_eq(ioring_engine_new(&eng, &o, dummy_handler, NULL), -EINVAL);
    o.listen = "[::1:80";
    cr_assert_eq(ioring_engine_new(&eng, &o, dummy_handler, NULL), -EINVAL);
    o.max_inflight = 1u << 20;
    o.listen = "127.0.0.1:0";
    cr_assert_eq(ioring_engine_new(&eng, &o, dummy_handler, NULL), -E2BIG);
    cr_assert_null(eng);
    th_options(&o);
    o.listen = "[::1]:0";
    int rc = ioring_engine_new(&eng, &o, dummy_handler, NULL);
    cr_assert(rc == 0 || rc == -EADDRNOTAVAIL || rc == -EAFNOSUPPORT, "rc %d", rc);
    ioring_engine_free(eng);
    th_options(&o);
    th_start(&o);
}

/* listen_when_free listens on 127.0.0.1:port without SO_REUSEPORT, waiting up to a second for
 * the listener of an engine just freed (its io_uring is torn down asynchronously). */
static int listen_when_free(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_neq(fd, -1);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int one = 1; /* over the TIME_WAIT of a closed connection, like the engine */
    cr_assert_eq(setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)), 0);
    int rc = -1;
    for (int i = 0; i < 100 && rc != 0; i++) {
        rc = bind(fd, (struct sockaddr *)&a, sizeof(a));
        if (rc != 0) {
            th_sleep_ms(10);
        }
    }
    cr_assert_eq(rc, 0);
    cr_assert_eq(listen(fd, 4), 0);
    return fd;
}

/* One port, one engine: the rings of an engine share their port (SO_REUSEPORT), but a second
 * engine, or any socket already listening, must not get it (the kernel would split the clients
 * between them). */
Test(ioring_bounds, a_taken_port_is_refused_the_rings_share_theirs)
{
    struct ioring_options o;
    th_options(&o); /* two rings */
    th_start(&o);
    char addr[32];
    snprintf(addr, sizeof(addr), "127.0.0.1:%u", th_port());
    struct ioring_options o2;
    th_options(&o2);
    o2.listen = addr;
    struct ioring_engine *eng = NULL;
    cr_assert_eq(ioring_engine_new(&eng, &o2, dummy_handler, NULL), -EADDRINUSE);
    cr_assert_null(eng);
    o2.workers = 1;
    cr_assert_eq(ioring_engine_new(&eng, &o2, dummy_handler, NULL), -EADDRINUSE);
    o2.listen = "0.0.0.0:0"; /* port 0: a port of its own */
    cr_assert_eq(ioring_engine_new(&eng, &o2, dummy_handler, NULL), 0);
    ioring_engine_free(eng);
    eng = NULL;
    /* The first engine still answers on its port. */
    client_open(&cl, 2000);
    client_send_str(&cl, "GET /echo HTTP/1.1\r\nHost: x\r\n\r\n");
    cr_assert_eq(client_read(&cl, &rsp), 0);
    cr_assert_eq(rsp.status, 200);
    client_close(&cl);
    /* Once it is gone, an engine of two rings takes that fixed port at once (neither its
     * lingering listener nor the closed connection's TIME_WAIT is in the way), and a plain
     * listener without SO_REUSEPORT is refused like an engine. */
    uint16_t port = th_port();
    th_stop();
    o2.listen = addr;
    o2.workers = 2;
    int rc = ioring_engine_new(&eng, &o2, dummy_handler, NULL);
    cr_assert_eq(rc, 0, "rc %d", rc);
    cr_assert_eq(ioring_engine_port(eng), port);
    cr_assert_eq(ioring_engine_workers(eng), 2);
    ioring_engine_free(eng);
    eng = NULL;
    int fd = listen_when_free(port);
    cr_assert_eq(ioring_engine_new(&eng, &o2, dummy_handler, NULL), -EADDRINUSE);
    cr_assert_eq(close(fd), 0);
    th_start(&o); /* for the suite's .fini */
}

Test(ioring_proxy, parse_truncations_and_garbage)
{
    uint8_t hdr[64];
    size_t n = proxy_header(hdr, "192.0.2.1", 80);
    size_t len = 0;
    struct sockaddr_storage a;
    socklen_t alen = 0;
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(ioring_proxy_v2_parse(&len, &a, &alen, hdr, i), -EAGAIN, "at %zu", i);
    }
    cr_assert_eq(ioring_proxy_v2_parse(&len, &a, &alen, hdr, n), 0);
    cr_assert_eq(len, n);
    cr_assert_eq(alen, sizeof(struct sockaddr_in));
    cr_assert_eq(ntohs(((struct sockaddr_in *)&a)->sin_port), 80);
    uint8_t bad[64];
    memcpy(bad, hdr, n);
    bad[3] = 'X';
    cr_assert_eq(ioring_proxy_v2_parse(&len, &a, &alen, bad, n), -EBADMSG);
    memcpy(bad, hdr, n);
    bad[12] = 0x31; /* version 3 */
    cr_assert_eq(ioring_proxy_v2_parse(&len, &a, &alen, bad, n), -EBADMSG);
    memcpy(bad, hdr, n);
    bad[15] = 4; /* too short for IPv4 addresses */
    cr_assert_eq(ioring_proxy_v2_parse(&len, &a, &alen, bad, n), -EBADMSG);
    memcpy(bad, hdr, n);
    bad[14] = 0xff; /* longer than we accept */
    cr_assert_eq(ioring_proxy_v2_parse(&len, &a, &alen, bad, n), -EBADMSG);
    memcpy(bad, hdr, n);
    bad[12] = 0x20; /* LOCAL: keep the peer */
    cr_assert_eq(ioring_proxy_v2_parse(&len, &a, &alen, bad, n), 0);
    cr_assert_eq(alen, 0);
    cr_assert_eq(ioring_proxy_v2_parse(&len, &a, &alen, (const uint8_t *)"GET / HTTP", 10),
                 -EBADMSG);
}
