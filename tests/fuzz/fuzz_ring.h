/* fuzz_ring.h: the one-ring, one-connection engine that fuzz_http and fuzz_tls drive without
 * io_uring (header only: each harness is one translation unit). */
#ifndef CERTPROV_TESTS_FUZZ_RING_H
#define CERTPROV_TESTS_FUZZ_RING_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

#include "base/base.h"
#include "ioring/internal.h"

/* Bounds the harnesses share: small, so that the fuzzer reaches them. */
#define FUZZ_INFLIGHT 8
#define FUZZ_HEADER_BYTES 1024
#define FUZZ_REQUEST_BYTES 4096
#define FUZZ_RESPONSE_BYTES 4096

/* fuzz_ring_setup allocates what a ring would at start (once): eng with its options and
 * `handler`, one ring with one connection `conn`; tls may be NULL (plain HTTP). */
static inline void fuzz_ring_setup(struct ioring_engine *eng, struct ring *ring, struct conn *conn,
                                   ioring_handler_fn handler, struct ioring_tls *tls)
{
    ioring_options_default(&eng->opts);
    eng->opts.workers = 1;
    eng->opts.max_connections = 1;
    eng->opts.max_inflight = FUZZ_INFLIGHT;
    eng->opts.max_header_bytes = FUZZ_HEADER_BYTES;
    eng->opts.max_request_bytes = FUZZ_REQUEST_BYTES;
    eng->opts.max_response_bytes = FUZZ_RESPONSE_BYTES;
    eng->opts.tls = tls;
    eng->handler = handler;
    eng->num_rings = 1;
    eng->rings = ring;
    http_settings_init(&eng->settings);
    ring->eng = eng;
    ring->num_conns = 1;
    ring->conns = conn;
    ring->slots = calloc(FUZZ_INFLIGHT, sizeof(*ring->slots));
    ring->slot_free = calloc(FUZZ_INFLIGHT, sizeof(*ring->slot_free));
    ring->done = calloc(FUZZ_INFLIGHT, sizeof(*ring->done));
    size_t req_cap = FUZZ_REQUEST_BYTES + 2 * IORING_HEADERS_MAX + 8;
    ring->slot_mem = malloc((req_cap + FUZZ_RESPONSE_BYTES) * FUZZ_INFLIGHT);
    ring->clients = calloc(64, sizeof(*ring->clients));
    ring->clients_mask = 63;
    ring->conns_per_client = UINT32_MAX;
    if (tls != NULL) {
        ring->tls_plain_len = 16384;
        ring->tls_plain = malloc(ring->tls_plain_len);
        ASSERT(ring->tls_plain != NULL);
    }
    conn->head.buf = malloc(FUZZ_HEADER_BYTES + 2 * IORING_HEADERS_MAX + 8);
    ASSERT(ring->slots != NULL && ring->slot_free != NULL && ring->done != NULL);
    ASSERT(ring->slot_mem != NULL && ring->clients != NULL && conn->head.buf != NULL);
    ASSERT(pthread_mutex_init(&ring->done_mu, NULL) == 0);
    /* ioring_request_respond wakes the ring through its eventfd unless a wake-up is pending:
     * one always is, and the harness drains `done` itself. */
    atomic_store(&ring->wake_pending, true);
    for (uint32_t i = 0; i < FUZZ_INFLIGHT; i++) {
        ring->slots[i].ring = ring;
        ring->slots[i].index = i;
        ring->slots[i].req = ring->slot_mem + i * (req_cap + FUZZ_RESPONSE_BYTES);
        ring->slots[i].resp = ring->slots[i].req + req_cap;
    }
}

#endif
