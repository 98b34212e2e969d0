/* fuzz_http: libFuzzer harness for the HTTP engine's input path. The input's first byte picks
 * how the rest is cut into reads; each read goes through http_input on a connection in memory
 * (no socket, no io_uring: the connection stays "sending", so answers queue in its pipeline, and
 * the harness takes them out in order, as the ring's send completions would). Requests go to a
 * handler that answers at once, or after the read for targets under /later (from the end, so
 * answers complete out of order). Pipelining, chunked bodies, trailers, Expect: 100-continue,
 * HEAD, Upgrade and the engine's refusals all come from the bytes.
 *
 * Checked: every answer is one well-formed status line and header section, HEAD answers carry no
 * body, nothing follows an answer that closes the connection, at most one final answer per
 * request, and when the connection goes every request slot and every client count is back. Any
 * crash, sanitizer report, leak or ASSERT is a finding. The small bounds (8 slots, 1 KiB of
 * headers, 4 KiB per request) make the refusals reachable. */
#include <arpa/inet.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "ioring/internal.h"
#include "tests/fuzz/fuzz_ring.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_OUT_MAX (1 << 20)

static struct ioring_engine eng;
static struct ring ring;
static struct conn conn;
static struct ioring_request *later[FUZZ_INFLIGHT];
static size_t num_later;
static size_t num_handled;
static bool upgraded; /* llhttp saw an Upgrade or a CONNECT: its answer must be the last */

static void handler(void *ctx, struct ioring_request *req)
{
    (void)ctx;
    num_handled++;
    size_t tlen = 0;
    const char *target = ioring_request_target(req, &tlen);
    ASSERT(strlen(target) == tlen);
    size_t blen = 0;
    const uint8_t *body = ioring_request_body(req, &blen);
    ASSERT(body[blen] == '\0');
    const char *method = ioring_request_method(req);
    ASSERT(method != NULL);
    if (conn.parser.upgrade != 0) {
        upgraded = true;
        ASSERT(!req->keep_alive);
    }
    if (strncmp(target, "/later", 6) == 0) {
        ASSERT(num_later < FUZZ_INFLIGHT);
        later[num_later++] = req;
        return;
    }
    size_t vlen = 0;
    const char *v = ioring_request_header_get(req, "x-test", &vlen);
    char extra[64];
    (void)snprintf(extra, sizeof(extra), "X-Method: %s\r\n", method);
    if (strcmp(target, "/big") == 0) {
        static const uint8_t big[FUZZ_RESPONSE_BYTES];
        ASSERT(ioring_request_respond(req, 200, NULL, NULL, big, sizeof(big)) == -E2BIG);
    } else if (v != NULL) {
        ASSERT(ioring_request_respond(req, 200, "text/plain", extra, v, vlen) == 0);
    } else {
        ASSERT(ioring_request_respond(req, 200, "text/plain", extra, body, blen) == 0);
    }
}

/* setup allocates what a ring would at start (once). */
static void setup(void)
{
    log_setup("fuzz_http", LOG_LEVEL_ERR); /* not a warning per oversized answer */
    fuzz_ring_setup(&eng, &ring, &conn, handler, NULL);
    eng.opts.max_inflight_per_client = FUZZ_INFLIGHT - 2;
    eng.opts.inflight_reserve = 1;
}

/* conn_start resets the ring and opens the connection, as ring.c's conn_open would. */
static void conn_start(void)
{
    ring.slot_free_len = 0;
    for (uint32_t i = 0; i < FUZZ_INFLIGHT; i++) {
        ASSERT(ring.slots[i].state == SLOT_FREE);
        ring.slot_free[ring.slot_free_len++] = FUZZ_INFLIGHT - 1 - i;
    }
    ring.done_head = 0;
    ring.done_count = 0;
    struct head *h = &conn.head;
    uint8_t *buf = h->buf;
    memset(&conn, 0, sizeof(conn));
    conn.head.buf = buf;
    conn.ring = &ring;
    conn.tp = &transport_plain;
    conn.state = CONN_OPEN;
    conn.send_busy = true; /* answers queue in the pipeline; the harness sends them */
    conn.in_head = true;
    conn.line_start = true;
    conn.cur_slot = SLOT_NONE;
    struct sockaddr_in *a = (struct sockaddr_in *)&conn.peer;
    a->sin_family = AF_INET;
    a->sin_addr.s_addr = htonl(0x7f000001);
    conn.peer_len = sizeof(*a);
    client_key(conn.client_key, &conn.peer, conn.peer_len);
    llhttp_init(&conn.parser, HTTP_REQUEST, &eng.settings);
    conn.parser.data = &conn;
    num_later = 0;
    num_handled = 0;
    upgraded = false;
}

/* done_take does what the ring's done_drain does with the answers handed over. */
static void done_take(void)
{
    while (ring.done_count > 0) {
        struct ioring_request *s = &ring.slots[ring.done[ring.done_head]];
        ring.done_head = (ring.done_head + 1) % FUZZ_INFLIGHT;
        ring.done_count--;
        ASSERT(s->state == SLOT_HANDLER);
        s->state = SLOT_DONE;
        if (s->orphaned) {
            slot_put(&ring, s);
        }
    }
}

struct out {
    size_t num_answers; /* final answers (not 100 Continue) */
    bool closed;
};

/* check_answer checks one answer's status line and header section; HEAD answers end there. */
static void check_answer(const uint8_t *p, size_t len, bool head)
{
    ASSERT(len >= 17);
    ASSERT(memcmp(p, "HTTP/1.1 ", 9) == 0);
    ASSERT(p[9] >= '1' && p[9] <= '5');
    const uint8_t *end = memmem(p, len, "\r\n\r\n", 4);
    ASSERT(end != NULL);
    size_t hlen = (size_t)(end - p) + 4;
    ASSERT(!head || hlen == len);
    const char *cl = memmem(p, hlen, "\r\nContent-Length: ", 18);
    if (cl != NULL && !head) {
        ASSERT(hlen + strtoul(cl + 18, NULL, 10) == len);
    }
}

/* send_ready takes the answers out of the pipeline in order, as completed sends would. */
static void send_ready(struct out *o)
{
    static char canned[CANNED_MAX];
    while (conn.pipe_count > 0 && !o->closed) {
        struct pipe_entry e = conn.pipe[conn.pipe_head];
        if (e.slot != SLOT_NONE) {
            struct ioring_request *s = &ring.slots[e.slot];
            if (s->state != SLOT_DONE) {
                return; /* its turn has not come: the handler has it */
            }
            check_answer(s->resp, s->resp_len, s->head);
        } else {
            size_t len = http_canned_format(canned, sizeof(canned), e.status, e.close, 1);
            check_answer((const uint8_t *)canned, len, false);
        }
        conn.pipe_head = (conn.pipe_head + 1) % IORING_PIPELINE_MAX;
        conn.pipe_count--;
        if (e.slot != SLOT_NONE) {
            slot_put(&ring, &ring.slots[e.slot]);
        }
        if (e.status != 100) {
            o->num_answers++;
        }
        o->closed = e.close;
    }
}

/* conn_end closes the connection, as conn_release does, and checks that nothing leaked. */
static void conn_end(void)
{
    for (uint32_t i = 0; i < conn.pipe_count; i++) {
        struct pipe_entry *e = &conn.pipe[(conn.pipe_head + i) % IORING_PIPELINE_MAX];
        if (e->slot == SLOT_NONE) {
            continue;
        }
        struct ioring_request *s = &ring.slots[e->slot];
        if (s->state == SLOT_HANDLER) {
            s->orphaned = true;
        } else {
            slot_put(&ring, s);
        }
    }
    conn.pipe_count = 0;
    if (conn.cur_slot != SLOT_NONE) {
        slot_put(&ring, &ring.slots[conn.cur_slot]);
        conn.cur_slot = SLOT_NONE;
    }
    for (size_t i = num_later; i > 0; i--) { /* the handler answers after the client left */
        ASSERT(ioring_request_respond(later[i - 1], 204, NULL, NULL, NULL, 0) == 0);
    }
    num_later = 0;
    done_take();
    ASSERT(ring.slot_free_len == FUZZ_INFLIGHT);
    for (uint32_t i = 0; i <= ring.clients_mask; i++) {
        ASSERT(!ring.clients[i].used);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool ready;
    if (!ready) {
        setup();
        ready = true;
    }
    if (size == 0) {
        return 0;
    }
    size_t cut = (size_t)data[0] + 1; /* bytes per read: 1..256 */
    data++;
    size--;
    conn_start();
    struct out o = {0};
    for (size_t off = 0; off < size && !o.closed; off += cut) { /* bounded by size */
        size_t n = size - off < cut ? size - off : cut;
        if (!conn.stop_parsing) {
            ASSERT(http_input(&conn, data + off, n) == 0);
        }
        done_take();
        send_ready(&o);
        for (size_t i = num_later; i > 0; i--) { /* answered after the read, newest first */
            ASSERT(ioring_request_respond(later[i - 1], 200, "text/plain", NULL, "later", 5) == 0);
        }
        num_later = 0;
        done_take();
        send_ready(&o);
    }
    ASSERT(o.num_answers <= num_handled + 1); /* one each, and at most one refusal */
    ASSERT(!upgraded || o.num_answers == num_handled);
    conn_end();
    return 0;
}
