#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/base.h"
#include "helpers.h"

TestSuite(ioring_http, .init = th_start_default, .fini = th_stop, .timeout = 30);

static struct client cl;
static struct response rsp;

Test(ioring_http, curl_get_and_post)
{
    char out[512];
    int rc =
        run_cmd(out, sizeof(out),
                "curl -s --noproxy '*' -w ' %%{http_code}' http://127.0.0.1:%u/echo", th_port());
    cr_assert_eq(rc, 0);
    cr_assert_str_eq(out, " 200");
    rc = run_cmd(out, sizeof(out),
                 "curl -s --noproxy '*' -w ' %%{http_code}' -d hello-body "
                 "http://127.0.0.1:%u/echo",
                 th_port());
    cr_assert_eq(rc, 0);
    cr_assert_str_eq(out, "hello-body 200");
    rc =
        run_cmd(out, sizeof(out),
                "curl -s --noproxy '*' -w ' %%{http_code}' http://127.0.0.1:%u/missing", th_port());
    cr_assert_str_eq(out, "nope 404");
}

Test(ioring_http, curl_chunked_and_expect)
{
    char out[512];
    int rc = run_cmd(out, sizeof(out),
                     "printf 'chunky-data' | curl -s --noproxy '*' -w ' %%{http_code}' "
                     "-H 'Transfer-Encoding: chunked' --data-binary @- http://127.0.0.1:%u/echo",
                     th_port());
    cr_assert_eq(rc, 0);
    cr_assert_str_eq(out, "chunky-data 200");
    rc = run_cmd(out, sizeof(out),
                 "curl -s --noproxy '*' -w ' %%{http_code}' -H 'Expect: 100-continue' "
                 "-d expected http://127.0.0.1:%u/echo",
                 th_port());
    cr_assert_eq(rc, 0);
    cr_assert_str_eq(out, "expected 200");
}

Test(ioring_http, curl_reuses_connection)
{
    char out[512];
    int rc = run_cmd(out, sizeof(out),
                     "curl -s --noproxy '*' http://127.0.0.1:%u/echo -d a "
                     "http://127.0.0.1:%u/echo -d b http://127.0.0.1:%u/echo",
                     th_port(), th_port(), th_port());
    cr_assert_eq(rc, 0);
    struct ioring_stats st;
    ioring_engine_stats_get(th.eng, &st);
    cr_assert_eq(st.connections_accepted, 1);
    cr_assert_eq(st.requests, 3);
}

Test(ioring_http, keep_alive_and_headers)
{
    client_open(&cl, 3000);
    for (int i = 0; i < 5; i++) {
        char req[256];
        (void)snprintf(req, sizeof(req),
                       "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nreq-%d", i);
        client_send_str(&cl, req);
        cr_assert_eq(client_read(&cl, &rsp), 0);
        cr_assert_eq(rsp.status, 200);
        char want[32];
        (void)snprintf(want, sizeof(want), "req-%d", i);
        cr_assert_eq(rsp.body_len, 5);
        cr_assert_eq(memcmp(rsp.body, want, 5), 0);
        cr_assert(header_has(&rsp, "Connection", "keep-alive"));
        cr_assert(header_has(&rsp, "X-Method", "POST"));
    }
    client_send_str(&cl, "GET /hdr HTTP/1.1\r\nHost: x\r\nX-Test: the value\r\n\r\n");
    cr_assert_eq(client_read(&cl, &rsp), 0);
    cr_assert_str_eq(rsp.body, "the value");
    client_close(&cl);
    cr_assert_gt(atomic_load(&th.turn_ends), 0);
}

Test(ioring_http, turn_end_with_work_left_is_called_again_without_sleeping)
{
    /* A batch callback that did one slice and has work left is called at the next turn even
     * though no request came, and the ring does not sleep its tick (50 ms) in between: 20 slices
     * take well under one tick each. */
    client_open(&cl, 3000);
    client_send_str(&cl, "GET /hdr HTTP/1.1\r\nHost: x\r\nX-Test: a\r\n\r\n");
    cr_assert_eq(client_read(&cl, &rsp), 0);
    th_sleep_ms(20);
    int before = atomic_load(&th.turn_ends);
    atomic_store(&th.turn_more_left, 20);
    uint64_t t0 = clock_mono_ns();
    client_send_str(&cl, "GET /hdr HTTP/1.1\r\nHost: x\r\nX-Test: b\r\n\r\n");
    cr_assert_eq(client_read(&cl, &rsp), 0);
    cr_assert_str_eq(rsp.body, "b");
    for (int i = 0; i < 200 && atomic_load(&th.turn_more_left) > 0; i++) {
        th_sleep_ms(5);
    }
    uint64_t ms = (clock_mono_ns() - t0) / 1000000u;
    cr_assert_eq(atomic_load(&th.turn_more_left), 0);
    cr_assert_geq(atomic_load(&th.turn_ends) - before, 21);
    cr_assert_lt(ms, 500, "20 slices took %llu ms: the ring slept between them",
                 (unsigned long long)ms);
    client_close(&cl);
}

Test(ioring_http, raw_chunked_body)
{
    client_open(&cl, 3000);
    client_send_str(&cl, "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                         "3\r\nabc\r\n");
    th_sleep_ms(50);
    client_send_str(&cl, "4;ext=1\r\ndefg\r\n0\r\n\r\n");
    cr_assert_eq(client_read(&cl, &rsp), 0);
    cr_assert_eq(rsp.status, 200);
    cr_assert_str_eq(rsp.body, "abcdefg");
    client_close(&cl);
}

Test(ioring_http, pipelining_keeps_order)
{
    client_open(&cl, 5000);
    client_send_str(&cl, "GET /delay?ms=300 HTTP/1.1\r\nHost: x\r\n\r\n"
                         "GET /delay?ms=10 HTTP/1.1\r\nHost: x\r\n\r\n"
                         "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nlast");
    cr_assert_eq(client_read(&cl, &rsp), 0);
    cr_assert_str_eq(rsp.body, "delayed 300");
    cr_assert_eq(client_read(&cl, &rsp), 0);
    cr_assert_str_eq(rsp.body, "delayed 10");
    cr_assert_eq(client_read(&cl, &rsp), 0);
    cr_assert_str_eq(rsp.body, "last");
    client_close(&cl);
}

Test(ioring_http, expect_100_continue_raw)
{
    client_open(&cl, 3000);
    client_send_str(&cl, "POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                         "Content-Length: 6\r\n\r\n");
    char interim[26] = {0};
    cr_assert_eq(client_read_raw(&cl, interim, 25), 25);
    cr_assert_str_eq(interim, "HTTP/1.1 100 Continue\r\n\r\n");
    client_send_str(&cl, "thebod");
    cr_assert_eq(client_read(&cl, &rsp), 0);
    cr_assert_eq(rsp.status, 200);
    cr_assert_str_eq(rsp.body, "thebod");
    client_close(&cl);
}

Test(ioring_http, oversized_body_gets_413_before_body)
{
    client_open(&cl, 3000);
    client_send_str(&cl, "POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                         "Content-Length: 100000\r\n\r\n");
    cr_assert_eq(client_read(&cl, &rsp), 0);
    cr_assert_eq(rsp.status, 413);
    cr_assert(header_has(&rsp, "Connection", "close"));
    cr_assert(client_eof(&cl));
    client_close(&cl);
    /* chunked over the limit is cut off as it arrives */
    client_open(&cl, 3000);
    client_send_str(&cl, "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
    static char chunk[9000];
    memset(chunk, 'a', sizeof(chunk));
    client_send_str(&cl, "2328\r\n");
    client_send(&cl, chunk, sizeof(chunk));
    cr_assert_eq(client_read(&cl, &rsp), 0);
    cr_assert_eq(rsp.status, 413);
    client_close(&cl);
    struct ioring_stats st;
    ioring_engine_stats_get(th.eng, &st);
    cr_assert_eq(st.responses_413, 2);
    cr_assert_eq(st.requests, 0);
}

Test(ioring_http, malformed_gets_400_and_close)
{
    client_open(&cl, 3000);
    client_send_str(&cl, "GET /echo HTTP/1.1\r\nHost: x\r\n\r\nBLAH\x01 / HTTP/1.1\r\n\r\n");
    cr_assert_eq(client_read(&cl, &rsp), 0);
    cr_assert_eq(rsp.status, 200);
    cr_assert_eq(client_read(&cl, &rsp), 0);
    cr_assert_eq(rsp.status, 400);
    cr_assert(header_has(&rsp, "Connection", "close"));
    cr_assert(client_eof(&cl));
    client_close(&cl);
}

Test(ioring_http, http10_and_connection_close)
{
    client_open(&cl, 3000);
    client_send_str(&cl, "GET /echo HTTP/1.0\r\n\r\n");
    cr_assert_eq(client_read(&cl, &rsp), 0);
    cr_assert_eq(rsp.status, 200);
    cr_assert(header_has(&rsp, "Connection", "close"));
    cr_assert(header_has(&rsp, "Content-Length", "0"));
    cr_assert(client_eof(&cl));
    client_close(&cl);
    client_open(&cl, 3000);
    client_send_str(&cl, "GET /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    cr_assert_eq(client_read(&cl, &rsp), 0);
    cr_assert(header_has(&rsp, "Connection", "close"));
    cr_assert(client_eof(&cl));
    client_close(&cl);
}

Test(ioring_http, many_keep_alive_connections)
{
    enum { N = 200, ROUNDS = 3 };
    /* The burst of N requests may all reach one ring before it sends a single answer (a ring
     * descheduled while the test sends, by a test running beside it): a slot for each, so
     * that this test sees no 503 (the bound itself: ioring_bounds/inflight_full_...). */
    th_stop();
    struct ioring_options o;
    th_options(&o);
    o.max_inflight = 2 * N;
    th_start(&o);
    static struct client cs[N];
    for (int i = 0; i < N; i++) {
        client_open(&cs[i], 5000);
    }
    for (int round = 0; round < ROUNDS; round++) {
        for (int i = 0; i < N; i++) {
            char req[128];
            (void)snprintf(req, sizeof(req),
                           "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 8\r\n\r\n%04d%04d", i,
                           round);
            client_send_str(&cs[i], req);
        }
        for (int i = 0; i < N; i++) {
            cr_assert_eq(client_read(&cs[i], &rsp), 0, "conn %d round %d", i, round);
            char want[32];
            (void)snprintf(want, sizeof(want), "%04d%04d", i, round);
            cr_assert_str_eq(rsp.body, want);
        }
    }
    for (int i = 0; i < N; i++) {
        client_close(&cs[i]);
    }
    struct ioring_stats st;
    ioring_engine_stats_get(th.eng, &st);
    cr_assert_eq(st.connections_accepted, N);
    cr_assert_eq(st.requests, N * ROUNDS);
}

Test(ioring_http, async_answer_from_other_thread)
{
    client_open(&cl, 3000);
    client_send_str(&cl, "GET /delay?ms=100 HTTP/1.1\r\nHost: x\r\n\r\n");
    cr_assert_eq(client_read(&cl, &rsp), 0);
    cr_assert_str_eq(rsp.body, "delayed 100");
    client_send_str(&cl, "GET /client HTTP/1.1\r\nHost: x\r\n\r\n");
    cr_assert_eq(client_read(&cl, &rsp), 0);
    cr_assert_eq(strncmp(rsp.body, "127.0.0.1:", 10), 0, "%s", rsp.body);
    client_close(&cl);
}

Test(ioring_http, oversized_response_becomes_500)
{
    client_open(&cl, 3000);
    client_send_str(&cl, "GET /big HTTP/1.1\r\nHost: x\r\n\r\n");
    cr_assert_eq(client_read(&cl, &rsp), 0);
    cr_assert_eq(rsp.status, 500);
    client_send_str(&cl, "GET /echo HTTP/1.1\r\nHost: x\r\n\r\n");
    cr_assert_eq(client_read(&cl, &rsp), 0);
    cr_assert_eq(rsp.status, 200);
    client_close(&cl);
}

Test(ioring_http, too_many_or_too_large_headers_get_431)
{
    static char req[16384];
    size_t n = (size_t)snprintf(req, sizeof(req), "GET /echo HTTP/1.1\r\nHost: x\r\n");
    for (int i = 0; i < IORING_HEADERS_MAX + 1; i++) {
        n += (size_t)snprintf(req + n, sizeof(req) - n, "X-H%d: v\r\n", i);
    }
    (void)snprintf(req + n, sizeof(req) - n, "\r\n");
    client_open(&cl, 3000);
    client_send_str(&cl, req);
    cr_assert_eq(client_read(&cl, &rsp), 0);
    cr_assert_eq(rsp.status, 431);
    cr_assert(client_eof(&cl));
    client_close(&cl);
    memset(req, 'a', sizeof(req) - 1);
    memcpy(req, "GET /echo HTTP/1.1\r\nX-Long: ", 28);
    req[sizeof(req) - 1] = '\0';
    client_open(&cl, 3000);
    client_send_str(&cl, req);
    cr_assert_eq(client_read(&cl, &rsp), 0);
    cr_assert_eq(rsp.status, 431);
    client_close(&cl);
}

/* A shared body (ioring_request_respond_body) is not bounded by max_response_bytes (64 KiB
 * here): 3 MiB arrive whole and in order, a HEAD gets the headers alone, a keep-alive request
 * after it is answered, and every body is given back to its owner once sent. */
Test(ioring_http, shared_body_beyond_the_response_slot)
{
    char out[512];
    int freed0 = atomic_load(&th.bodies_freed);
    int rc = run_cmd(out, sizeof(out),
                     "curl -s --noproxy '*' http://127.0.0.1:%u/shared?kb=3072 "
                     "-o /dev/stdout http://127.0.0.1:%u/echo -d after | "
                     "python3 -c \"import sys; d = sys.stdin.buffer.read(); n = 3072 * 1024; "
                     "ok = all(d[i] == ((i * 7 + i // 251) & 255) for i in range(n)); "
                     "print(len(d), ok, d[n:].decode())\"",
                     th_port(), th_port());
    cr_assert_eq(rc, 0);
    cr_assert_str_eq(out, "3145733 True after\n");
    rc = run_cmd(out, sizeof(out),
                 "curl -s --noproxy '*' -I http://127.0.0.1:%u/shared?kb=100 | "
                 "tr -d '\\r' | grep -i '^content-length'",
                 th_port());
    cr_assert_eq(rc, 0);
    cr_assert_str_eq(out, "Content-Length: 102400\n");
    for (int i = 0; i < 100 && atomic_load(&th.bodies_freed) < freed0 + 2; i++) {
        th_sleep_ms(10);
    }
    cr_assert_eq(atomic_load(&th.bodies_freed), freed0 + 2);
}

/* A client that goes away in the middle of a shared body: the body is still given back. */
Test(ioring_http, shared_body_client_gone)
{
    int freed0 = atomic_load(&th.bodies_freed);
    client_open(&cl, 2000);
    client_send_str(&cl, "GET /shared?kb=8192 HTTP/1.1\r\nHost: t\r\n\r\n");
    char buf[4096];
    cr_assert_gt(client_read_raw(&cl, buf, sizeof(buf)), 0);
    client_close(&cl);
    for (int i = 0; i < 200 && atomic_load(&th.bodies_freed) < freed0 + 1; i++) {
        th_sleep_ms(10);
    }
    cr_assert_eq(atomic_load(&th.bodies_freed), freed0 + 1);
}
