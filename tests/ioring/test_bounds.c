#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
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
