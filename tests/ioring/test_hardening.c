/* The hardening issue's engine items: HEAD answers without a body (RFC 9110 §9.3.2), one answer
 * to an Upgrade or CONNECT request, strict header syntax against request smuggling (RFC 9112
 * §5.1, §5.2), partial requests that hold no request slot, per-client shares, and the addresses
 * a PROXY header is accepted from. */
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
static struct response rsp;
static char raw[1 << 16];

/* read_all reads what the server sends until it closes (or the client's timeout); NUL-terminated.
 */
static size_t read_all(struct client *c)
{
    size_t n = client_read_raw(c, raw, sizeof(raw) - 1);
    raw[n] = '\0';
    return n;
}

static int count_of(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = strstr(hay, needle); p != NULL; p = strstr(p + 1, needle)) {
        n++;
    }
    return n;
}

TestSuite(ioring_hardening, .init = th_start_default, .fini = th_stop, .timeout = 30);

/* ---- item 12: HEAD ---- */

Test(ioring_hardening, head_answer_has_headers_only)
{
    client_open(&cl, 2000);
    /* The 404 of /missing has the 4-byte body "nope": HEAD says so and sends none of it. */
    client_send_str(&cl,
                    "HEAD /missing HTTP/1.1\r\nHost: x\r\n\r\n"
                    "GET /hdr HTTP/1.1\r\nHost: x\r\nX-Test: after\r\nConnection: close\r\n\r\n");
    size_t n = read_all(&cl);
    cr_assert_gt(n, 0);
    const char *end = strstr(raw, "\r\n\r\n");
    cr_assert_not_null(end);
    cr_assert_eq(strncmp(raw, "HTTP/1.1 404 ", 13), 0, "%s", raw);
    cr_assert_not_null(strcasestr(raw, "\r\nContent-Length: 4\r\n"), "%s", raw);
    cr_assert_eq(strncmp(end + 4, "HTTP/1.1 200 ", 13), 0, "after the HEAD answer: %s", end + 4);
    cr_assert_eq(count_of(raw, "HTTP/1.1 "), 2);
    cr_assert_str_eq(raw + n - 5, "after");
    client_close(&cl);
}

Test(ioring_hardening, head_answer_of_the_engine_has_headers_only)
{
    client_open(&cl, 2000);
    client_send_str(&cl, "HEAD /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n");
    size_t n = read_all(&cl);
    cr_assert_eq(strncmp(raw, "HTTP/1.1 413 ", 13), 0, "%s", raw);
    const char *end = strstr(raw, "\r\n\r\n");
    cr_assert_not_null(end);
    cr_assert_eq((size_t)(end + 4 - raw), n, "a body follows: %s", end + 4);
    client_close(&cl);
}

/* ---- item 13: Upgrade and CONNECT get exactly one answer ---- */

static void one_answer_then_close(const char *req, int status)
{
    client_open(&cl, 2000);
    client_send_str(&cl, req);
    read_all(&cl);
    char want[32];
    (void)snprintf(want, sizeof(want), "HTTP/1.1 %d ", status);
    cr_assert_eq(strncmp(raw, want, strlen(want)), 0, "%s", raw);
    cr_assert_eq(count_of(raw, "HTTP/1.1 "), 1, "more than one answer: %s", raw);
    cr_assert_not_null(strcasestr(raw, "\r\nConnection: close\r\n"), "%s", raw);
    client_close(&cl);
}

Test(ioring_hardening, upgrade_gets_one_answer)
{
    one_answer_then_close("GET /echo HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n"
                          "Upgrade: websocket\r\n\r\n",
                          200);
    one_answer_then_close("POST /echo HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, Upgrade\r\n"
                          "Upgrade: h2c\r\nContent-Length: 3\r\n\r\nabcGET /echo HTTP/1.1\r\n\r\n",
                          200);
    cr_assert_eq(atomic_load(&th.handled), 2);
}

Test(ioring_hardening, connect_gets_one_answer)
{
    one_answer_then_close("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"
                          "\x16\x03\x01\x02\x00\x01",
                          404);
    cr_assert_eq(atomic_load(&th.handled), 1);
}

/* ---- item 14: strict header syntax ---- */

static void refused_400(const char *req)
{
    client_open(&cl, 2000);
    client_send_str(&cl, req);
    read_all(&cl);
    cr_assert_eq(strncmp(raw, "HTTP/1.1 400 ", 13), 0, "%s -> %s", req, raw);
    cr_assert_eq(count_of(raw, "HTTP/1.1 "), 1, "%s", raw);
    cr_assert_not_null(strcasestr(raw, "\r\nConnection: close\r\n"), "%s", raw);
    client_close(&cl);
}

Test(ioring_hardening, obsolete_line_folding_is_refused)
{
    refused_400("GET /echo HTTP/1.1\r\nHost: x\r\nX-A: one\r\n two\r\n\r\n");
    refused_400("GET /echo HTTP/1.1\r\nHost: x\r\nX-A: one\r\n\ttwo\r\n\r\n");
    refused_400("GET /echo HTTP/1.1\r\nHost: x\r\nX-A:\r\n two\r\n\r\n");
    refused_400("GET /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\r\n chunked\r\n\r\n");
    refused_400("GET /echo HTTP/1.1\r\n Host: x\r\n\r\n"); /* whitespace after the start line */
    /* folded across two reads */
    client_open(&cl, 2000);
    client_send_str(&cl, "GET /echo HTTP/1.1\r\nHost: x\r\nX-A: one\r\n");
    th_sleep_ms(50);
    client_send_str(&cl, " two\r\n\r\n");
    cr_assert_eq(client_read(&cl, &rsp), 0);
    cr_assert_eq(rsp.status, 400);
    client_close(&cl);
    cr_assert_eq(atomic_load(&th.handled), 0);
}

Test(ioring_hardening, bad_header_names_are_refused)
{
    refused_400("GET /echo HTTP/1.1\r\nHost: x\r\n: empty\r\n\r\n");
    refused_400("GET /echo HTTP/1.1\r\nHost: x\r\nFoo Bar: x\r\n\r\n");
    refused_400("GET /echo HTTP/1.1\r\nHost: x\r\nContent-Length : 5\r\n\r\nabcde");
    refused_400("GET /echo HTTP/1.1\r\nHost: x\r\nX\"y: x\r\n\r\n");
    cr_assert_eq(atomic_load(&th.handled), 0);
}

Test(ioring_hardening, strictness_keeps_valid_requests)
{
    client_open(&cl, 2000);
    /* a value split across reads at a space, whitespace inside a value, a body with "\r\n " */
    client_send_str(&cl, "GET /hdr HTTP/1.1\r\nHost: x\r\nX-Test: the");
    th_sleep_ms(50);
    client_send_str(&cl, " value\r\n\r\n");
    cr_assert_eq(client_read(&cl, &rsp), 0);
    cr_assert_eq(rsp.status, 200);
    cr_assert_str_eq(rsp.body, "the value");
    client_send_str(&cl, "GET /hdr HTTP/1.1\r\nHost: x\r\nX-Test: a \t b\r\n\r\n"
                         "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\nab\r\n c"
                         "GET /hdr HTTP/1.1\r\nX-Test: last\r\n\r\n");
    cr_assert_eq(client_read(&cl, &rsp), 0);
    cr_assert_str_eq(rsp.body, "a \t b");
    cr_assert_eq(client_read(&cl, &rsp), 0);
    cr_assert_str_eq(rsp.body, "ab\r\n c");
    cr_assert_eq(client_read(&cl, &rsp), 0);
    cr_assert_str_eq(rsp.body, "last");
    /* a trailer field is dropped, never merged into the header section (RFC 9110 §6.5.1) */
    client_send_str(&cl, "POST /hdr HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                         "1\r\na\r\n0\r\nX-Test: from-the-trailer\r\n\r\n");
    cr_assert_eq(client_read(&cl, &rsp), 0);
    cr_assert_eq(rsp.status, 404, "%s", rsp.body);
    /* a fold in the request after a body is still refused */
    client_send_str(&cl, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nab\n"
                         "GET /hdr HTTP/1.1\r\nX-Test: a\r\n b\r\n\r\n");
    cr_assert_eq(client_read(&cl, &rsp), 0);
    cr_assert_str_eq(rsp.body, "ab\n");
    cr_assert_eq(client_read(&cl, &rsp), 0);
    cr_assert_eq(rsp.status, 400);
    cr_assert(client_eof(&cl));
    client_close(&cl);
}

/* ---- item 15: PROXY headers only from proxy_from ---- */

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

/* proxy_get sends a valid PROXY v2 header and a request from `src`; returns the answer's length
 * (0: closed without one) with the answer in raw. */
static size_t proxy_get(const char *src)
{
    uint8_t hdr[128];
    size_t n = proxy_header(hdr, "203.0.113.7", 4242);
    static const char req[] = "GET /client HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    memcpy(hdr + n, req, sizeof(req) - 1);
    client_open_from(&cl, 2000, src);
    /* One send, unchecked: a refused connection may be closed before it is written. */
    (void)send(cl.fd, hdr, n + sizeof(req) - 1, MSG_NOSIGNAL);
    n = read_all(&cl);
    client_close(&cl);
    return n;
}

TestSuite(ioring_proxy_from, .fini = th_stop, .timeout = 30);

Test(ioring_proxy_from, only_listed_peers_may_send_a_proxy_header)
{
    struct ioring_options o;
    th_options(&o);
    o.proxy_protocol = true;
    o.proxy_from = "127.0.0.2/32, 10.0.0.0/8,::1/128";
    th_start(&o);
    cr_assert_gt(proxy_get("127.0.0.2"), 0);
    cr_assert_not_null(strstr(raw, "\r\n\r\n203.0.113.7:4242"), "%s", raw);
    cr_assert_eq(proxy_get("127.0.0.1"), 0, "a PROXY header from 127.0.0.1 was read: %s", raw);
    cr_assert_eq(proxy_get("127.0.0.3"), 0);
    struct ioring_stats st;
    ioring_engine_stats_get(th.eng, &st);
    cr_assert_eq(st.connections_refused, 2, "refused %llu",
                 (unsigned long long)st.connections_refused);
    cr_assert_eq(atomic_load(&th.handled), 1);
}

Test(ioring_proxy_from, default_is_loopback)
{
    struct ioring_options o;
    th_options(&o);
    o.proxy_protocol = true;
    th_start(&o);
    cr_assert_gt(proxy_get("127.0.0.1"), 0);
    cr_assert_gt(proxy_get("127.9.8.7"), 0);
    cr_assert_not_null(strstr(raw, "\r\n\r\n203.0.113.7:4242"), "%s", raw);
}

static void dummy_handler(void *ctx, struct ioring_request *req)
{
    (void)ctx;
    (void)ioring_request_respond(req, 200, NULL, NULL, NULL, 0);
}

Test(ioring_proxy_from, bad_lists_are_refused)
{
    static const char *const bad[] = {
        "",
        "nonsense",
        "10.0.0.0/33",
        "::1/129",
        "10.0.0.0/",
        "/8",
        "10.0.0.0/8,",
        ",",
        "10.0.0.0/8 10.0.0.1",
        "10.0.0.0/-1",
        "10.0.0.0/08x",
        "[::1]/128",
    };
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        cr_assert_eq(ioring_cidr_list_check(bad[i]), -EINVAL, "'%s'", bad[i]);
    }
    static const char *const good[] = {"127.0.0.0/8, ::1/128", "10.1.2.3", "::/0", "0.0.0.0/0",
                                       " 192.0.2.0/24 ,2001:db8::/32 "};
    for (size_t i = 0; i < ARRAY_LEN(good); i++) {
        cr_assert_eq(ioring_cidr_list_check(good[i]), 0, "'%s'", good[i]);
    }
    char many[2048] = "";
    for (int i = 0; i <= IORING_PROXY_FROM_MAX; i++) {
        char one[32];
        (void)snprintf(one, sizeof(one), "%s10.0.%d.0/24", i > 0 ? "," : "", i);
        (void)strcat(many, one);
    }
    cr_assert_eq(ioring_cidr_list_check(many), -E2BIG);
    struct ioring_options o;
    th_options(&o);
    o.proxy_protocol = true;
    o.proxy_from = "10.0.0.0/33";
    struct ioring_engine *eng = NULL;
    cr_assert_eq(ioring_engine_new(&eng, &o, dummy_handler, NULL), -EINVAL);
    th_options(&o);
    th_start(&o);
}

/* ---- item 8: partial requests hold no request slot; per-client shares; a reserve ---- */

TestSuite(ioring_partial, .fini = th_stop, .timeout = 30);

#define PARTIAL_N 40
static struct client partial[PARTIAL_N];

static void partial_open(int n, const char *bytes)
{
    for (int i = 0; i < n; i++) {
        client_open(&partial[i], 3000);
        client_send_str(&partial[i], bytes);
    }
    th_sleep_ms(100); /* let the ring read them all */
}

static void partial_close(int n)
{
    for (int i = 0; i < n; i++) {
        client_close(&partial[i]);
    }
}

Test(ioring_partial, partial_requests_hold_no_slot)
{
    struct ioring_options o;
    th_options(&o);
    o.workers = 1;
    o.max_inflight = 4;
    o.header_timeout_ms = 5000;
    th_start(&o);
    /* Ten times as many connections as slots, each one byte (or a whole header line) in. */
    partial_open(PARTIAL_N / 2, "G");
    for (int i = PARTIAL_N / 2; i < PARTIAL_N; i++) {
        client_open(&partial[i], 3000);
        client_send_str(&partial[i], "POST /echo HTTP/1.1\r\nHost: x\r\n");
    }
    th_sleep_ms(100);
    struct client c2;
    client_open_from(&c2, 3000, "127.0.0.2");
    client_send_str(&c2, "GET /echo HTTP/1.1\r\nHost: x\r\n\r\n");
    cr_assert_eq(client_read(&c2, &rsp), 0);
    cr_assert_eq(rsp.status, 200, "a complete request was refused: %d", rsp.status);
    client_send_str(&c2, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nbody");
    cr_assert_eq(client_read(&c2, &rsp), 0);
    cr_assert_eq(rsp.status, 200);
    cr_assert_str_eq(rsp.body, "body");
    /* and the partial ones still complete normally */
    client_send_str(&partial[0], "ET /echo HTTP/1.1\r\nHost: x\r\n\r\n");
    cr_assert_eq(client_read(&partial[0], &rsp), 0);
    cr_assert_eq(rsp.status, 200);
    struct ioring_stats st;
    ioring_engine_stats_get(th.eng, &st);
    cr_assert_eq(st.responses_503, 0);
    client_close(&c2);
    partial_close(PARTIAL_N);
}

Test(ioring_partial, header_bytes_are_bounded)
{
    struct ioring_options o;
    th_options(&o);
    o.max_header_bytes = 1024;
    th_start(&o);
    static char req[4096];
    char pad[1100];
    memset(pad, 'a', sizeof(pad) - 1);
    pad[sizeof(pad) - 1] = '\0';
    (void)snprintf(req, sizeof(req), "GET /hdr HTTP/1.1\r\nHost: x\r\nX-Test: %.900s\r\n\r\n", pad);
    client_open(&cl, 2000);
    client_send_str(&cl, req);
    cr_assert_eq(client_read(&cl, &rsp), 0);
    cr_assert_eq(rsp.status, 200);
    cr_assert_eq(rsp.body_len, 900);
    (void)snprintf(req, sizeof(req), "GET /hdr HTTP/1.1\r\nHost: x\r\nX-Test: %s\r\n\r\n", pad);
    client_send_str(&cl, req);
    cr_assert_eq(client_read(&cl, &rsp), 0);
    cr_assert_eq(rsp.status, 431);
    cr_assert(client_eof(&cl));
    client_close(&cl);
    (void)snprintf(req, sizeof(req), "GET /%s HTTP/1.1\r\nHost: x\r\n\r\n", pad);
    client_open(&cl, 2000);
    client_send_str(&cl, req);
    cr_assert_eq(client_read(&cl, &rsp), 0);
    cr_assert_eq(rsp.status, 414);
    client_close(&cl);
    /* The body still has max_request_bytes (8192) less the header bytes. */
    static char body[7000];
    memset(body, 'b', sizeof(body));
    (void)snprintf(req, sizeof(req),
                   "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n", sizeof(body));
    client_open(&cl, 2000);
    client_send_str(&cl, req);
    client_send(&cl, body, sizeof(body));
    cr_assert_eq(client_read(&cl, &rsp), 0);
    cr_assert_eq(rsp.status, 200);
    cr_assert_eq(rsp.body_len, sizeof(body));
    client_close(&cl);
}

Test(ioring_partial, connections_per_client)
{
    struct ioring_options o;
    th_options(&o);
    o.workers = 1;
    o.max_connections_per_client = 3;
    th_start(&o);
    partial_open(3, "GET /echo HTTP/1.1\r\n");
    client_open(&cl, 1000); /* the fourth from 127.0.0.1: closed without an answer */
    (void)send(cl.fd, "GET /echo HTTP/1.1\r\n\r\n", 22, MSG_NOSIGNAL);
    cr_assert_eq(read_all(&cl), 0);
    cr_assert(client_eof(&cl));
    client_close(&cl);
    client_open_from(&cl, 2000, "127.0.0.2");
    client_send_str(&cl, "GET /echo HTTP/1.1\r\nHost: x\r\n\r\n");
    cr_assert_eq(client_read(&cl, &rsp), 0);
    cr_assert_eq(rsp.status, 200);
    client_close(&cl);
    struct ioring_stats st;
    ioring_engine_stats_get(th.eng, &st);
    cr_assert_eq(st.connections_refused, 1);
    /* One of the three goes: 127.0.0.1 may connect again. */
    client_send_str(&partial[0], "Host: x\r\nConnection: close\r\n\r\n");
    cr_assert_eq(client_read(&partial[0], &rsp), 0);
    cr_assert(client_eof(&partial[0]));
    client_close(&partial[0]); /* the server lingers until our FIN */
    th_sleep_ms(100);
    client_open(&cl, 2000);
    client_send_str(&cl, "GET /echo HTTP/1.1\r\nHost: x\r\n\r\n");
    cr_assert_eq(client_read(&cl, &rsp), 0);
    cr_assert_eq(rsp.status, 200);
    client_close(&cl);
    partial_close(3); /* partial[0] again: a no-op */
}

static void hold_from(struct client *c, const char *src, const char *req)
{
    client_open_from(c, 2000, src);
    client_send_str(c, req);
}

static void wait_held(int n)
{
    for (int i = 0; i < 500 && th_num_held() < n; i++) {
        th_sleep_ms(10);
    }
    cr_assert_eq(th_num_held(), n);
}

Test(ioring_partial, inflight_per_client)
{
    struct ioring_options o;
    th_options(&o);
    o.workers = 1;
    o.max_inflight = 8;
    o.max_inflight_per_client = 2;
    th_start(&o);
    struct client h[3];
    hold_from(&h[0], NULL, "GET /hold HTTP/1.1\r\nHost: x\r\n\r\n");
    hold_from(&h[1], NULL, "GET /hold HTTP/1.1\r\nHost: x\r\n\r\n");
    wait_held(2);
    client_open(&cl, 2000);
    client_send_str(&cl, "HEAD /echo HTTP/1.1\r\nHost: x\r\n\r\n");
    size_t n = read_all(&cl);
    cr_assert_eq(strncmp(raw, "HTTP/1.1 503 ", 13), 0, "%s", raw);
    cr_assert_not_null(strstr(raw, "\r\nContent-Length: 20\r\n"), "%s", raw);
    cr_assert_eq(strstr(raw, "\r\n\r\n") + 4 - raw, (long)n, "HEAD: a body follows: %s", raw);
    client_close(&cl);
    hold_from(&h[2], "127.0.0.2", "GET /hold HTTP/1.1\r\nHost: x\r\n\r\n");
    wait_held(3);
    th_release_held();
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(client_read(&h[i], &rsp), 0);
        cr_assert_str_eq(rsp.body, "released");
    }
    /* The share is back: both slots again. */
    client_send_str(&h[0], "GET /echo HTTP/1.1\r\nHost: x\r\n\r\n");
    cr_assert_eq(client_read(&h[0], &rsp), 0);
    cr_assert_eq(rsp.status, 200);
    for (int i = 0; i < 3; i++) {
        client_close(&h[i]);
    }
}

Test(ioring_partial, reserve_is_for_requests_without_a_body)
{
    struct ioring_options o;
    th_options(&o);
    o.workers = 1;
    o.max_inflight = 4;
    o.inflight_reserve = 2;
    th_start(&o);
    struct client h[4];
    hold_from(&h[0], NULL, "POST /hold HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\na");
    hold_from(&h[1], NULL, "POST /hold HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nb");
    wait_held(2);
    client_open(&cl, 2000); /* a body: the reserve is not for it */
    client_send_str(&cl, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nc");
    cr_assert_eq(client_read(&cl, &rsp), 0);
    cr_assert_eq(rsp.status, 503);
    client_close(&cl);
    hold_from(&h[2], NULL, "GET /hold HTTP/1.1\r\nHost: x\r\n\r\n");
    wait_held(3);
    client_open(&cl, 2000); /* the health check gets the last slot */
    client_send_str(&cl, "GET /echo HTTP/1.1\r\nHost: x\r\n\r\n");
    cr_assert_eq(client_read(&cl, &rsp), 0);
    cr_assert_eq(rsp.status, 200);
    client_close(&cl);
    th_release_held();
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(client_read(&h[i], &rsp), 0);
        client_close(&h[i]);
    }
}

Test(ioring_partial, proxy_client_is_the_one_counted)
{
    struct ioring_options o;
    th_options(&o);
    o.workers = 1;
    o.proxy_protocol = true;
    o.max_connections_per_client = 1;
    th_start(&o);
    /* Many connections from the balancer (127.0.0.1), one per client of the header. */
    uint8_t hdr[64];
    struct client c[3];
    for (int i = 0; i < 3; i++) {
        char ip[32];
        (void)snprintf(ip, sizeof(ip), "198.51.100.%d", i + 1);
        size_t n = proxy_header(hdr, ip, 1000);
        client_open(&c[i], 2000);
        client_send(&c[i], hdr, n);
        client_send_str(&c[i], "GET /client HTTP/1.1\r\nHost: x\r\n\r\n");
        cr_assert_eq(client_read(&c[i], &rsp), 0);
        cr_assert_eq(rsp.status, 200);
    }
    size_t n = proxy_header(hdr, "198.51.100.1", 2000); /* a second one of the first client */
    client_open(&cl, 2000);
    (void)send(cl.fd, hdr, n, MSG_NOSIGNAL);
    cr_assert_eq(read_all(&cl), 0);
    client_close(&cl);
    for (int i = 0; i < 3; i++) {
        client_close(&c[i]);
    }
}
