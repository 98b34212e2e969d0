/* ring: one io_uring event loop per worker thread. Accept (multishot), recv (multishot into the
 * provided-buffer ring), send, deadlines, the pipeline of responses and the drain on stop. */
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ioring/internal.h"

enum op {
    OP_ACCEPT = 1, /* index 0: the plain listener, 1: the TLS listener */
    OP_RECV = 2,
    OP_SEND = 3,
    OP_WAKE = 4,
    OP_CANCEL = 5,
    OP_FD = 6, /* a connection's close: a completion only when it fails */
};

/* The ring whose loop runs on this thread: respond on it needs no eventfd write. */
static _Thread_local struct ring *tl_ring;

static uint64_t op_data(enum op op, uint32_t index, uint32_t gen)
{
    return ((uint64_t)op << 56) | ((uint64_t)(gen & 0xffffffu) << 32) | index;
}

static struct io_uring_sqe *sqe_get(struct ring *r)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&r->uring);
    if (sqe == NULL) { /* SQ full: flush it; the kernel copies SQEs on submit */
        int rc = io_uring_submit(&r->uring);
        ASSERT(rc >= 0);
        sqe = io_uring_get_sqe(&r->uring);
    }
    ASSERT(sqe != NULL);
    return sqe;
}

static uint64_t ms_ns(uint32_t ms)
{
    return (uint64_t)ms * 1000000u;
}

/* fd_close closes a connection's socket with the turn's other operations, in one
 * io_uring_enter, instead of a system call of its own (on this appliance's VMs a system call
 * costs about 1 us before any work). A socket's close runs inline at the submit, after the
 * operations queued before it; a success posts no completion. (Not so a shutdown: io_uring
 * always hands IORING_OP_SHUTDOWN to a worker thread, which would cost more than the call and
 * could run after the close.) */
static void fd_close(struct ring *r, int fd)
{
    struct io_uring_sqe *sqe = sqe_get(r);
    io_uring_prep_close(sqe, fd);
    io_uring_sqe_set_data64(sqe, op_data(OP_FD, (uint32_t)fd, 0));
    io_uring_sqe_set_flags(sqe, IOSQE_CQE_SKIP_SUCCESS);
}

void ring_wake(struct ring *r)
{
    if (tl_ring == r) {
        return; /* the loop drains completions after every step */
    }
    if (atomic_exchange(&r->wake_pending, true)) {
        return;
    }
    uint64_t one = 1;
    ssize_t n = write(r->event_fd, &one, sizeof(one));
    ASSERT(n == (ssize_t)sizeof(one));
}

struct ioring_request *slot_take(struct ring *r, const uint8_t key[16], bool has_body)
{
    /* The reserve keeps slots for requests without a body: health checks and status pages,
     * which need no slot for long, still get one while slow uploads hold the rest. */
    uint32_t keep = has_body ? r->eng->opts.inflight_reserve : 0;
    if (r->slot_free_len <= keep || !client_slot_take(r, key)) {
        return NULL;
    }
    struct ioring_request *s = &r->slots[r->slot_free[--r->slot_free_len]];
    ASSERT(s->state == SLOT_FREE);
    ASSERT(s->req_len == 0);
    ASSERT(!s->counted);
    memcpy(s->client_key, key, sizeof(s->client_key));
    s->counted = true;
    return s;
}

void slot_put(struct ring *r, struct ioring_request *s)
{
    ASSERT(s->state != SLOT_FREE);
    ASSERT(r->slot_free_len < r->eng->opts.max_inflight);
    if (s->counted) {
        client_slot_put(r, s->client_key);
        s->counted = false;
    }
    s->state = SLOT_FREE;
    s->orphaned = false;
    s->head = false;
    s->req_len = 0;
    s->content_len = 0;
    s->num_headers = 0;
    s->target_len = 0;
    s->body_len = 0;
    s->resp_len = 0;
    ioring_body_put(s->body);
    s->body = NULL;
    if (s->peer_cert != NULL) {
        s->peer_free(s->peer_cert);
        s->peer_cert = NULL;
    }
    s->tls = IORING_TLS_NONE;
    s->cert_state = IORING_CERT_NONE;
    r->slot_free[r->slot_free_len++] = s->index;
}

static void accept_arm_one(struct ring *r, uint32_t which, int fd, bool *armed)
{
    if (*armed || fd < 0) {
        return;
    }
    struct io_uring_sqe *sqe = sqe_get(r);
    io_uring_prep_multishot_accept(sqe, fd, NULL, NULL, SOCK_CLOEXEC);
    io_uring_sqe_set_data64(sqe, op_data(OP_ACCEPT, which, 0));
    *armed = true;
}

static void accept_arm(struct ring *r)
{
    if (r->accept_paused || r->draining) {
        return;
    }
    accept_arm_one(r, 0, r->listen_fd, &r->accept_armed);
    accept_arm_one(r, 1, r->tls_fd, &r->tls_accept_armed);
}

static void accept_cancel(struct ring *r)
{
    for (uint32_t which = 0; which < 2; which++) {
        if (!(which == 0 ? r->accept_armed : r->tls_accept_armed)) {
            continue;
        }
        struct io_uring_sqe *sqe = sqe_get(r);
        io_uring_prep_cancel64(sqe, op_data(OP_ACCEPT, which, 0), 0);
        io_uring_sqe_set_data64(sqe, op_data(OP_CANCEL, 0, 0));
    }
}

static void recv_arm(struct conn *c)
{
    ASSERT(!c->recv_armed);
    ASSERT(c->state != CONN_FREE);
    struct io_uring_sqe *sqe = sqe_get(c->ring);
    io_uring_prep_recv_multishot(sqe, c->fd, NULL, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = BUF_GROUP;
    io_uring_sqe_set_data64(sqe, op_data(OP_RECV, c->index, c->gen));
    c->recv_armed = true;
}

static void buf_recycle(struct ring *r, uint16_t bid)
{
    ASSERT(bid < r->num_bufs);
    size_t size = r->eng->opts.recv_buffer_bytes;
    io_uring_buf_ring_add(r->br, r->bufs + (size_t)bid * size, (unsigned)size, bid,
                          io_uring_buf_ring_mask(r->num_bufs), 0);
    io_uring_buf_ring_advance(r->br, 1);
}

static void set_deadline(struct conn *c, enum deadline_kind kind, uint32_t ms)
{
    c->deadline_kind = kind;
    c->deadline_ns = clock_mono_ns() + ms_ns(ms);
}

void ring_handshake_end(struct conn *c)
{
    struct ring *r = c->ring;
    if (!c->handshaking) {
        return;
    }
    c->handshaking = false;
    ASSERT(r->handshakes > 0);
    r->handshakes--;
    if (c->state == CONN_OPEN && c->deadline_kind == DEADLINE_HANDSHAKE) {
        set_deadline(c, DEADLINE_HEADER, r->eng->opts.header_timeout_ms);
    }
}

/* conn_release frees a closed connection once the kernel holds no operation on it. */
static void conn_release(struct conn *c)
{
    struct ring *r = c->ring;
    ASSERT(c->state == CONN_CLOSING);
    if (c->recv_armed || c->send_busy) {
        return;
    }
    for (uint32_t i = 0; i < c->pipe_count; i++) {
        struct pipe_entry *e = &c->pipe[(c->pipe_head + i) % IORING_PIPELINE_MAX];
        if (e->slot == SLOT_NONE) {
            continue;
        }
        struct ioring_request *s = &r->slots[e->slot];
        if (s->state == SLOT_HANDLER) {
            s->orphaned = true; /* freed when the handler answers */
        } else {
            slot_put(r, s);
        }
    }
    c->pipe_count = 0;
    if (c->cur_slot != SLOT_NONE) {
        slot_put(r, &r->slots[c->cur_slot]);
        c->cur_slot = SLOT_NONE;
    }
    if (c->counted) {
        client_conn_put(r, c->client_key);
        c->counted = false;
    }
    if (c->handshaking) { /* ended before its handshake did: not TLS, gone, or too slow */
        atomic_fetch_add_explicit(&r->stats.tls_failed, 1, memory_order_relaxed);
        ring_handshake_end(c);
    }
    if (c->tp->release != NULL) {
        c->tp->release(c);
    }
    c->out_len = 0;
    c->resp_out = false;
    fd_close(r, c->fd);
    c->fd = -1;
    c->state = CONN_FREE;
    c->gen++;
    r->conn_free[r->conn_free_len++] = c->index;
    ASSERT(r->conns_used > 0);
    r->conns_used--;
    ASSERT(r->live[c->live_pos] == c->index);
    uint32_t last = r->live[r->conns_used]; /* moves into the freed place */
    r->live[c->live_pos] = last;
    r->conns[last].live_pos = c->live_pos;
    atomic_fetch_sub_explicit(&r->stats.connections_open, 1, memory_order_relaxed);
    if (r->accept_paused && r->conns_used <= r->conns_low_water) {
        r->accept_paused = false; /* resume below the low-water mark */
        accept_arm(r);
    }
}

/* conn_farewell sends, without waiting, what the transport queues before a close (TLS:
 * close_notify, or the alert of a failed handshake): a few bytes into an idle socket's buffer,
 * best effort (MSG_DONTWAIT: never blocks the ring). */
static void conn_farewell(struct conn *c)
{
    if (c->send_busy) {
        return; /* the kernel holds bytes of ours: cannot add after them */
    }
    if (c->tp->close != NULL) {
        c->tp->close(c);
    }
    const uint8_t *p = NULL;
    size_t n = c->tp->wire(c, &p);
    if (n > 0 && send(c->fd, p, n, MSG_DONTWAIT | MSG_NOSIGNAL) > 0) {
        c->tp->sent(c, n); /* or less: the rest is dropped with the connection */
    }
}

static void conn_shut(struct conn *c)
{
    if (c->state == CONN_CLOSING || c->state == CONN_FREE) {
        return;
    }
    if (c->tls != NULL) {
        conn_farewell(c);
    }
    c->state = CONN_CLOSING;
    c->deadline_kind = DEADLINE_NONE;
    if (c->send_busy) {
        /* A send that waits for a client who does not read would wait for ever: this ends it
         * (EPIPE). Rare (a deadline, an error mid-answer): a system call is fine here. */
        (void)shutdown(c->fd, SHUT_RDWR);
    }
    if (c->recv_armed) {
        /* Ends the pending multishot recv (-ECANCELED); the close follows its completion. */
        struct io_uring_sqe *sqe = sqe_get(c->ring);
        io_uring_prep_cancel64(sqe, op_data(OP_RECV, c->index, c->gen), 0);
        io_uring_sqe_set_data64(sqe, op_data(OP_CANCEL, 0, 0));
    }
    conn_release(c);
}

/* conn_linger half-closes after the final response and discards input until the client's FIN,
 * so that unread request bytes do not turn into a RST that destroys the response. Not when the
 * client itself asked to close and sent nothing after that request (as nginx's lingering_close
 * auto): it has said all it will say, and a close now frees the connection a round trip sooner
 * without a shutdown of its own. */
static void conn_linger(struct conn *c)
{
    ASSERT(c->pipe_count == 0);
    ASSERT(c->state == CONN_OPEN);
    if (c->peer_eof || !c->recv_armed || c->ring->draining || (c->client_done && !c->extra_input)) {
        conn_shut(c);
        return;
    }
    c->state = CONN_LINGER;
    (void)shutdown(c->fd, SHUT_WR);
    set_deadline(c, DEADLINE_LINGER, LINGER_MS);
}

struct pipe_entry *conn_pipe_push(struct conn *c, uint32_t slot, uint16_t status, bool close,
                                  uint8_t hint)
{
    ASSERT(c->pipe_count < IORING_PIPELINE_MAX);
    ASSERT(slot != SLOT_NONE || status != 0);
    struct pipe_entry *e = &c->pipe[(c->pipe_head + c->pipe_count) % IORING_PIPELINE_MAX];
    e->slot = slot;
    e->status = status;
    e->close = close;
    e->head = false;
    e->hint = hint;
    c->pipe_count++;
    return e;
}

/* canned_len formats the engine's answer of `e` into c->canned; an answer to HEAD keeps only
 * its status line and headers (RFC 9110 §9.3.2: Content-Length stays what GET would get). */
static size_t canned_len(struct conn *c, const struct pipe_entry *e)
{
    struct ring *r = c->ring;
    const struct ioring_options *o = &r->eng->opts;
    size_t len = e->status != 100 && o->on_canned != NULL
                     ? o->on_canned(r->eng->ctx, c->canned, sizeof(c->canned), e->status, e->hint,
                                    e->close, o->retry_after_s)
                     : 0;
    ASSERT(len <= sizeof(c->canned));
    if (len == 0) {
        len =
            http_canned_format(c->canned, sizeof(c->canned), e->status, e->close, o->retry_after_s);
    }
    if (e->head) {
        const char *end = memmem(c->canned, len, "\r\n\r\n", 4);
        ASSERT(end != NULL);
        len = (size_t)(end - c->canned) + 4;
    }
    return len;
}

static void send_submit(struct conn *c, const uint8_t *p, size_t len)
{
    ASSERT(!c->send_busy);
    ASSERT(len > 0);
    struct io_uring_sqe *sqe = sqe_get(c->ring);
    io_uring_prep_send(sqe, c->fd, p, len, MSG_NOSIGNAL);
    io_uring_sqe_set_data64(sqe, op_data(OP_SEND, c->index, c->gen));
    c->send_busy = true;
    c->send_len = len;
    /* While a request arrives, its own deadline governs; during a handshake, the handshake's. */
    if (!c->in_message && c->tp->ready(c)) {
        set_deadline(c, DEADLINE_SEND, c->ring->eng->opts.body_timeout_ms);
    }
}

/* pipe_output gives the pipeline's first answer to the transport when it is ready. Returns 0
 * (given, or not ready yet) or a negative errno. */
static int pipe_output(struct conn *c)
{
    struct ring *r = c->ring;
    struct pipe_entry *e = &c->pipe[c->pipe_head];
    const uint8_t *plain = NULL;
    size_t len = 0;
    if (e->slot != SLOT_NONE) {
        struct ioring_request *s = &r->slots[e->slot];
        if (s->state != SLOT_DONE) {
            return 0;
        }
        plain = s->resp;
        len = s->resp_len;
    } else {
        len = canned_len(c, e);
        plain = (const uint8_t *)c->canned;
    }
    bool body = e->slot != SLOT_NONE && r->slots[e->slot].body != NULL;
    int rc = c->tp->output(c, plain, len, e->close && !body); /* close_notify after the body */
    c->resp_out = rc == 0;
    c->body_off = 0;
    return rc;
}

/* body_next gives the next chunk of the first answer's shared body to the transport. Returns 1
 * (a chunk queued), 0 (none left, or no shared body), or a negative errno. */
static int body_next(struct conn *c)
{
    ASSERT(c->resp_out);
    ASSERT(c->pipe_count > 0);
    const struct pipe_entry *e = &c->pipe[c->pipe_head];
    if (e->slot == SLOT_NONE) {
        return 0;
    }
    const struct ioring_body *b = c->ring->slots[e->slot].body;
    if (b == NULL || c->body_off >= b->len) {
        return 0;
    }
    size_t n = b->len - c->body_off < BODY_CHUNK_BYTES ? b->len - c->body_off : BODY_CHUNK_BYTES;
    int rc = c->tp->output(c, b->data + c->body_off, n, e->close && c->body_off + n == b->len);
    c->body_off += n;
    return rc == 0 ? 1 : rc;
}

/* conn_pump sends what the transport has queued (a TLS handshake flight, the rest of a
 * response), else the oldest response if it is ready: responses leave in request order
 * whatever order the handler answers in (RFC 9112 §9.3.2). */
void conn_pump(struct conn *c)
{
    if (c->send_busy || c->state != CONN_OPEN) {
        return;
    }
    const uint8_t *p = NULL;
    size_t len = c->tp->wire(c, &p);
    if (len == 0 && c->pipe_count > 0 && !c->resp_out && c->tp->ready(c)) {
        if (pipe_output(c) != 0) {
            conn_shut(c);
            return;
        }
        len = c->tp->wire(c, &p);
    } else if (len == 0 && c->resp_out) {
        if (body_next(c) < 0) {
            conn_shut(c);
            return;
        }
        len = c->tp->wire(c, &p);
    }
    if (len > 0) {
        send_submit(c, p, len);
    }
}

/* conn_start starts connection `fd`. `key` is its client's, already counted (or NULL with
 * proxy_protocol: the client is the header's, counted once it is read). */
static void conn_start(struct ring *r, int fd, const struct sockaddr_storage *peer,
                       socklen_t peer_len, const uint8_t *key, bool tls)
{
    ASSERT(r->conn_free_len > 0);
    struct conn *c = &r->conns[r->conn_free[--r->conn_free_len]];
    ASSERT(c->state == CONN_FREE);
    ASSERT(c->tls == NULL);
    c->fd = fd;
    c->tp = tls ? &transport_tls : &transport_plain;
    c->out_len = 0;
    c->resp_out = false;
    c->handshaking = false;
    c->state = r->eng->opts.proxy_protocol ? CONN_PROXY : CONN_OPEN;
    c->recv_armed = false;
    c->send_busy = false;
    c->stop_parsing = false;
    c->peer_eof = false;
    c->client_done = false;
    c->extra_input = false;
    c->in_message = false;
    c->in_head = true;
    c->line_start = true;
    c->want_continue = false;
    c->pause = PAUSE_NONE;
    c->cur_slot = SLOT_NONE;
    c->pipe_head = 0;
    c->pipe_count = 0;
    c->proxy_len = 0;
    c->peer = *peer;
    c->peer_len = peer_len;
    c->counted = key != NULL;
    if (key != NULL) {
        memcpy(c->client_key, key, sizeof(c->client_key));
    }
    llhttp_init(&c->parser, HTTP_REQUEST, &r->eng->settings);
    c->parser.data = c;
    set_deadline(c, DEADLINE_HEADER, r->eng->opts.header_timeout_ms);
    c->live_pos = r->conns_used;
    r->live[r->conns_used++] = c->index;
    atomic_fetch_add_explicit(&r->stats.connections_open, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&r->stats.connections_accepted, 1, memory_order_relaxed);
    if (tls) {
        c->handshaking = true;
        r->handshakes++;
        set_deadline(c, DEADLINE_HANDSHAKE, r->eng->opts.handshake_timeout_ms);
        if (c->tp->open(c) != 0) {
            log_warn("ioring: tls_conn_failed ring=%u errno=%d", r->index, ENOMEM);
            c->tp = &transport_plain; /* no TLS state to release */
            conn_shut(c);
            return;
        }
    }
    recv_arm(c);
}

/* peer_admitted is false for a connection the engine refuses at once: with proxy_protocol, a
 * peer outside proxy_from (its header would choose the client address); without, a client that
 * holds its share of connections. Otherwise the connection is counted for its client. */
static bool peer_admitted(struct ring *r, uint8_t key[16], const struct sockaddr_storage *peer,
                          socklen_t peer_len)
{
    const struct ioring_engine *eng = r->eng;
    if (eng->opts.proxy_protocol) {
        return cidr_match(eng->proxy_from, eng->num_proxy_from, peer, peer_len);
    }
    client_key(key, peer, peer_len);
    return client_conn_take(r, key);
}

/* tls_admitted is false for a TLS connection beyond this ring's handshakes in progress, or one
 * whose TLS state cannot be allocated: refused, so that a flood of ClientHellos costs at most
 * max_handshakes at a time and established connections keep being served. */
static bool tls_admitted(struct ring *r)
{
    if (r->handshakes < r->handshakes_max) {
        return true;
    }
    atomic_fetch_add_explicit(&r->stats.tls_refused, 1, memory_order_relaxed);
    return false;
}

static void on_accept(struct ring *r, uint32_t which, int res, uint32_t flags)
{
    bool tls = which == 1;
    if ((flags & IORING_CQE_F_MORE) == 0) {
        *(tls ? &r->tls_accept_armed : &r->accept_armed) = false;
    }
    if (res >= 0) {
        struct sockaddr_storage peer;
        socklen_t peer_len = sizeof(peer);
        if (getpeername(res, (struct sockaddr *)&peer, &peer_len) == -1) {
            peer_len = 0;
            memset(&peer, 0, sizeof(peer));
        }
        uint8_t key[16];
        if (r->draining || r->conn_free_len == 0 || (tls && !tls_admitted(r)) ||
            !peer_admitted(r, key, &peer, peer_len)) {
            /* Raced with the pause, or not admitted: refuse (counted before the client can
             * see the close). */
            atomic_fetch_add_explicit(&r->stats.connections_refused, 1, memory_order_relaxed);
            (void)close(res);
        } else {
            conn_start(r, res, &peer, peer_len, r->eng->opts.proxy_protocol ? NULL : key, tls);
        }
        if (r->conn_free_len == 0 && !r->accept_paused) {
            r->accept_paused = true; /* stop accepting at the limit */
            atomic_fetch_add_explicit(&r->stats.accept_pauses, 1, memory_order_relaxed);
            accept_cancel(r);
        }
    } else if (res != -ECANCELED) {
        log_warn("ioring: accept_failed ring=%u errno=%d", r->index, -res);
        return; /* re-armed by the next tick, not in a tight loop */
    }
    accept_arm(r);
}

/* conn_input: PROXY header first (if configured), then the transport and the HTTP parser. */
static void conn_input(struct conn *c, const uint8_t *data, size_t len)
{
    if (c->state == CONN_PROXY) {
        size_t room = PROXY_HDR_MAX - c->proxy_len;
        size_t take = len < room ? len : room;
        memcpy(c->proxy_buf + c->proxy_len, data, take);
        size_t hdr_len = 0;
        struct sockaddr_storage addr;
        socklen_t addr_len = 0;
        int rc =
            ioring_proxy_v2_parse(&hdr_len, &addr, &addr_len, c->proxy_buf, c->proxy_len + take);
        if (rc == -EAGAIN) {
            c->proxy_len = (uint16_t)(c->proxy_len + take);
            return;
        }
        if (rc != 0) { /* refused: no HTTP answer */
            atomic_fetch_add_explicit(&c->ring->stats.connections_refused, 1, memory_order_relaxed);
            conn_shut(c);
            return;
        }
        ASSERT(hdr_len > c->proxy_len);
        size_t used = hdr_len - c->proxy_len;
        ASSERT(used <= len);
        if (addr_len > 0) {
            c->peer = addr;
            c->peer_len = addr_len;
        }
        client_key(c->client_key, &c->peer, c->peer_len);
        if (!client_conn_take(c->ring, c->client_key)) { /* the client holds its share */
            atomic_fetch_add_explicit(&c->ring->stats.connections_refused, 1, memory_order_relaxed);
            conn_shut(c);
            return;
        }
        c->counted = true;
        c->state = CONN_OPEN;
        data += used;
        len -= used;
    }
    if (c->state == CONN_OPEN && len > 0 && c->tp->input(c, data, len) != 0) {
        conn_shut(c);
        return;
    }
    conn_pump(c);
}

static void on_recv(struct ring *r, struct conn *c, int res, uint32_t flags)
{
    bool more = (flags & IORING_CQE_F_MORE) != 0;
    if (!more) {
        c->recv_armed = false;
    }
    if (res > 0) {
        ASSERT((flags & IORING_CQE_F_BUFFER) != 0);
        uint16_t bid = (uint16_t)(flags >> IORING_CQE_BUFFER_SHIFT);
        if (c->state == CONN_PROXY || c->state == CONN_OPEN) {
            conn_input(c, r->bufs + (size_t)bid * r->eng->opts.recv_buffer_bytes, (size_t)res);
        }
        buf_recycle(r, bid);
        if (!c->recv_armed &&
            (c->state == CONN_OPEN || c->state == CONN_LINGER || c->state == CONN_PROXY)) {
            recv_arm(c);
        }
    } else if (res == -ENOBUFS && c->state != CONN_CLOSING) {
        recv_arm(c); /* buffers were given back during this turn */
    } else if (res == 0 && c->state == CONN_OPEN && c->pipe_count > 0) {
        c->peer_eof = true; /* half-close: answer what was asked, then close */
        c->stop_parsing = true;
    } else if (c->state != CONN_CLOSING) {
        conn_shut(c);
    }
    if (c->state == CONN_CLOSING) {
        conn_release(c);
    }
}

static void on_send(struct ring *r, struct conn *c, int res)
{
    c->send_busy = false;
    if (c->state == CONN_CLOSING) {
        conn_release(c);
        return;
    }
    if (res <= 0) {
        conn_shut(c);
        return;
    }
    ASSERT((size_t)res <= c->send_len);
    c->tp->sent(c, (size_t)res);
    const uint8_t *p = NULL;
    size_t more = c->tp->wire(c, &p);
    if (more > 0) { /* a short send, or bytes queued meanwhile: the rest first */
        send_submit(c, p, more);
        return;
    }
    if (!c->resp_out) { /* a handshake flight */
        conn_pump(c);
        return;
    }
    int brc = body_next(c); /* the next chunk of a shared body */
    if (brc < 0) {
        conn_shut(c);
        return;
    }
    if (brc > 0) {
        more = c->tp->wire(c, &p);
        ASSERT(more > 0);
        send_submit(c, p, more);
        return;
    }
    c->resp_out = false;
    struct pipe_entry e = c->pipe[c->pipe_head];
    c->pipe_head = (c->pipe_head + 1) % IORING_PIPELINE_MAX;
    c->pipe_count--;
    if (e.slot != SLOT_NONE) {
        slot_put(r, &r->slots[e.slot]);
    }
    if (e.status != 100) {
        atomic_fetch_add_explicit(&r->stats.responses, 1, memory_order_relaxed);
    }
    if (c->deadline_kind == DEADLINE_SEND) {
        c->deadline_kind = DEADLINE_NONE; /* waiting for the handler has no deadline here */
    }
    if (e.close) {
        conn_linger(c);
        return;
    }
    if (c->pipe_count == 0 && !c->in_message) {
        if (c->peer_eof || r->draining) {
            conn_shut(c);
            return;
        }
        set_deadline(c, DEADLINE_IDLE, r->eng->opts.idle_timeout_ms);
    }
    conn_pump(c);
}

static void on_cqe(struct ring *r, const struct io_uring_cqe *cqe)
{
    uint64_t data = cqe->user_data;
    enum op op = (enum op)(data >> 56);
    uint32_t index = (uint32_t)data;
    uint32_t gen = (uint32_t)(data >> 32) & 0xffffffu;
    struct conn *c = NULL;
    if (op == OP_RECV || op == OP_SEND) {
        ASSERT(index < r->num_conns);
        c = &r->conns[index];
        ASSERT((c->gen & 0xffffffu) == gen); /* a slot is never reused under a pending op */
        ASSERT(c->state != CONN_FREE);
    }
    switch (op) {
    case OP_ACCEPT:
        on_accept(r, index, cqe->res, cqe->flags);
        break;
    case OP_RECV:
        on_recv(r, c, cqe->res, cqe->flags);
        break;
    case OP_SEND:
        on_send(r, c, cqe->res);
        break;
    case OP_WAKE: {
        struct io_uring_sqe *sqe = sqe_get(r);
        io_uring_prep_read(sqe, r->event_fd, &r->event_val, sizeof(r->event_val), 0);
        io_uring_sqe_set_data64(sqe, op_data(OP_WAKE, 0, 0));
        break;
    }
    case OP_CANCEL:
        break;
    case OP_FD: /* a close that failed: not expected */
        log_warn("ioring: close_failed ring=%u fd=%u errno=%d", r->index, index, -cqe->res);
        break;
    default:
        ASSERT(0 && "unknown op");
    }
}

/* done_drain takes the answers handed over by ioring_request_respond. */
static void done_drain(struct ring *r)
{
    atomic_store(&r->wake_pending, false);
    uint32_t cap = r->eng->opts.max_inflight;
    for (uint32_t n = 0; n <= cap; n++) { /* bounded: at most one entry per slot */
        base_mutex_lock(&r->done_mu);
        if (r->done_count == 0) {
            base_mutex_unlock(&r->done_mu);
            return;
        }
        uint32_t index = r->done[r->done_head];
        r->done_head = (r->done_head + 1) % cap;
        r->done_count--;
        base_mutex_unlock(&r->done_mu);
        struct ioring_request *s = &r->slots[index];
        ASSERT(s->state == SLOT_HANDLER);
        s->state = SLOT_DONE;
        atomic_fetch_sub_explicit(&r->stats.requests_inflight, 1, memory_order_relaxed);
        if (s->orphaned) {
            slot_put(r, s);
            continue;
        }
        struct conn *c = &r->conns[s->conn_index];
        ASSERT(c->gen == s->conn_gen);
        conn_pump(c);
    }
}

/* deadlines_check visits the connections in use only, from the end of ring->live: a
 * connection freed on the way takes the last one's place, which is already visited. */
static void deadlines_check(struct ring *r, uint64_t now)
{
    for (uint32_t i = r->conns_used; i > 0; i--) {
        struct conn *c = &r->conns[r->live[i - 1]];
        ASSERT(c->state != CONN_FREE);
        if (c->state == CONN_CLOSING || c->deadline_kind == DEADLINE_NONE || now < c->deadline_ns) {
            continue;
        }
        if (c->deadline_kind != DEADLINE_LINGER && c->deadline_kind != DEADLINE_IDLE) {
            atomic_fetch_add_explicit(&r->stats.timeouts, 1, memory_order_relaxed);
        }
        conn_shut(c);
    }
    accept_arm(r); /* after an accept error */
}

static void drain_begin(struct ring *r)
{
    r->draining = true;
    accept_cancel(r);
    if (r->listen_fd >= 0) {
        (void)close(r->listen_fd);
        r->listen_fd = -1;
    }
    if (r->tls_fd >= 0) {
        (void)close(r->tls_fd);
        r->tls_fd = -1;
    }
    for (uint32_t i = 0; i < r->num_conns; i++) {
        struct conn *c = &r->conns[i];
        if (c->state == CONN_FREE || c->state == CONN_CLOSING) {
            continue;
        }
        if (c->state != CONN_OPEN || c->pipe_count == 0) {
            conn_shut(c); /* idle, partial request or lingering */
            continue;
        }
        c->stop_parsing = true;
        c->deadline_kind = DEADLINE_NONE;
        c->in_message = false;
        if (c->cur_slot != SLOT_NONE) {
            slot_put(r, &r->slots[c->cur_slot]);
            c->cur_slot = SLOT_NONE;
        }
    }
}

/* ring_teardown runs on the ring thread after the loop: closes what is left. Requests still
 * with the handler become orphans; their answers are dropped. */
static void ring_teardown(struct ring *r, bool cut)
{
    for (uint32_t i = 0; i < r->num_conns && cut; i++) {
        struct conn *c = &r->conns[i];
        if (c->state == CONN_FREE) {
            continue;
        }
        c->state = CONN_CLOSING;
        c->recv_armed = false; /* io_uring_queue_exit cancels what is pending */
        c->send_busy = false;
        conn_release(c);
    }
    (void)io_uring_submit(&r->uring); /* the closes queued above and by the last turn */
    io_uring_queue_exit(&r->uring);
    r->uring_ok = false;
}

static int ring_setup(struct ring *r)
{
    struct io_uring_params p;
    memset(&p, 0, sizeof(p));
    /* CQ bound: one CQE per provided buffer in use, at most four per connection (recv end,
     * send, cancel, a failed close), the listen backlog of accepts, and the wake-up. */
    p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_CQSIZE;
    p.cq_entries = r->num_bufs + 5 * r->num_conns + 1024;
    int rc = io_uring_queue_init_params(256, &r->uring, &p);
    if (rc < 0) {
        log_err("ioring: io_uring_setup_failed ring=%u errno=%d", r->index, -rc);
        return rc;
    }
    r->uring_ok = true;
    struct io_uring_buf_reg reg;
    memset(&reg, 0, sizeof(reg));
    reg.ring_addr = (uint64_t)(uintptr_t)r->br;
    reg.ring_entries = r->num_bufs;
    reg.bgid = BUF_GROUP;
    rc = io_uring_register_buf_ring(&r->uring, &reg, 0);
    if (rc < 0) {
        log_err("ioring: register_buf_ring_failed ring=%u errno=%d", r->index, -rc);
        return rc;
    }
    io_uring_buf_ring_init(r->br);
    for (uint32_t i = 0; i < r->num_bufs; i++) {
        buf_recycle(r, (uint16_t)i);
    }
    struct io_uring_sqe *sqe = sqe_get(r);
    io_uring_prep_read(sqe, r->event_fd, &r->event_val, sizeof(r->event_val), 0);
    io_uring_sqe_set_data64(sqe, op_data(OP_WAKE, 0, 0));
    accept_arm(r);
    rc = io_uring_submit(&r->uring);
    return rc < 0 ? rc : 0;
}

static void ring_report(struct ring *r, int rc)
{
    struct ioring_engine *eng = r->eng;
    base_mutex_lock(&eng->init_mu);
    r->init_rc = rc;
    eng->init_done++;
    base_cond_broadcast(&eng->init_cv);
    base_mutex_unlock(&eng->init_mu);
}

/* ring_turn ends one loop turn: the answers that are ready, then one slice of the batch
 * callback's work. Answers that became ready are handed to the kernel before the slice starts:
 * no finished answer waits behind new signing work. The requests an answer lets a connection
 * parse (pipelined) join the batch of the next turn, which then does not sleep. */
static void ring_turn(struct ring *r)
{
    done_drain(r);
    if (r->turn_requests == 0 && !r->turn_more) {
        return;
    }
    r->turn_requests = 0;
    if (r->eng->opts.on_turn_end == NULL) {
        r->turn_more = false;
        return;
    }
    if (io_uring_sq_ready(&r->uring) > 0) {
        (void)io_uring_submit(&r->uring); /* an error shows again at the loop's submit */
    }
    r->turn_more = r->eng->opts.on_turn_end(r->eng->ctx, r->index);
    done_drain(r);
}

void *ring_main(void *arg)
{
    struct ring *r = arg;
    struct ioring_engine *eng = r->eng;
    tl_ring = r;
    base_thread_name("cp-ring%u", r->index);
    int rc = ring_setup(r);
    ring_report(r, rc);
    if (rc != 0) {
        if (r->uring_ok) {
            io_uring_queue_exit(&r->uring);
            r->uring_ok = false;
        }
        return NULL;
    }
    uint64_t next_tick = clock_mono_ns() + ms_ns(TICK_MS);
    bool cut = false;
    for (;;) { /* the event loop: the one unbounded loop; it ends on ioring_engine_stop */
        /* Work left for the batch callback (a slice done, or requests parsed at the turn's
         * end): gather what completed, do not sleep. */
        bool busy = r->turn_more || r->turn_requests > 0;
        struct __kernel_timespec ts = {.tv_sec = 0,
                                       .tv_nsec = busy ? 0 : (long long)ms_ns(TICK_MS)};
        struct io_uring_cqe *cqe = NULL;
        rc = io_uring_submit_and_wait_timeout(&r->uring, &cqe, 1, &ts, NULL);
        if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EBUSY) {
            log_err("ioring: wait_failed ring=%u errno=%d", r->index, -rc);
        }
        /* The turn's log lines (a request's, a handshake's) leave in one write(2) at its end,
         * before the loop can sleep: never held longer than the turn. */
        log_hold_begin(r->log_hold, RING_LOG_HOLD);
        unsigned head = 0;
        unsigned seen = 0;
        io_uring_for_each_cqe(&r->uring, head, cqe)
        {
            on_cqe(r, cqe);
            seen++;
        }
        io_uring_cq_advance(&r->uring, seen);
        ring_turn(r);
        uint64_t now = clock_mono_ns();
        if (now >= next_tick) {
            deadlines_check(r, now);
            next_tick = now + ms_ns(TICK_MS);
        }
        log_hold_end();
        if (atomic_load(&eng->stopping)) {
            if (!r->draining) {
                drain_begin(r);
            }
            if (r->conns_used == 0) {
                break;
            }
            if (now >= atomic_load(&eng->stop_deadline_ns)) {
                cut = true;
                break;
            }
        }
    }
    ring_teardown(r, cut);
    return cut ? (void *)1 : NULL;
}
