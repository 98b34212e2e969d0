/* HTTP/1.1 framing: llhttp callbacks that read a request's line and header section into its
 * connection's head buffer and, once the headers are complete, the request into a request slot;
 * the engine's own refusals (400, 413, 414, 431, 503) queued in the pipeline; response
 * formatting and the request accessors. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "ioring/internal.h"

static struct conn *parser_conn(llhttp_t *p)
{
    struct conn *c = p->data;
    DASSERT(c != NULL);
    DASSERT(c->state == CONN_OPEN);
    return c;
}

static struct ioring_request *cur_slot(struct conn *c)
{
    ASSERT(c->cur_slot != SLOT_NONE);
    struct ioring_request *s = &c->ring->slots[c->cur_slot];
    ASSERT(s->state == SLOT_PARSING);
    return s;
}

/* classify asks the application for the hint of a refused request, from its target if read. */
static uint8_t classify(struct conn *c)
{
    struct ring *r = c->ring;
    const struct ioring_options *o = &r->eng->opts;
    if (o->on_classify == NULL) {
        return 0;
    }
    if (c->cur_slot != SLOT_NONE) {
        const struct ioring_request *s = &r->slots[c->cur_slot];
        return o->on_classify(r->eng->ctx, (const char *)s->req + s->target_off, s->target_len);
    }
    if (c->in_message && c->head.target_done) {
        return o->on_classify(r->eng->ctx, (const char *)c->head.buf, c->head.target_len);
    }
    return o->on_classify(r->eng->ctx, NULL, 0);
}

/* reject ends reading on `c`: the current request (if any) is dropped and `status` is queued
 * as the connection's last response. Returns HPE_PAUSED so that llhttp stops at once. */
static int reject(struct conn *c, uint16_t status)
{
    struct ring *r = c->ring;
    uint8_t hint = classify(c);
    /* The method is known once the target is (a slot is taken after both). */
    bool head = (c->cur_slot != SLOT_NONE || (c->in_message && c->head.target_done)) &&
                c->parser.method == HTTP_HEAD;
    if (c->cur_slot != SLOT_NONE) {
        slot_put(r, &r->slots[c->cur_slot]);
        c->cur_slot = SLOT_NONE;
    }
    c->stop_parsing = true;
    c->in_message = false;
    c->want_continue = false;
    c->deadline_kind = DEADLINE_NONE;
    conn_pipe_push(c, SLOT_NONE, status, true, hint)->head = head;
    return HPE_PAUSED;
}

/* refuse_400 rejects a malformed request (RFC 9112 §2.2). */
static int refuse_400(struct conn *c)
{
    atomic_fetch_add_explicit(&c->ring->stats.responses_400, 1, memory_order_relaxed);
    return reject(c, 400);
}

/* token_valid is true for a non-empty RFC 9110 §5.6.2 token: the only field names we accept.
 * llhttp 8.1 (without LLHTTP_STRICT_MODE) takes spaces inside a name, whitespace before the
 * colon and an empty name, which another parser in front of us may read differently. */
static bool token_valid(const uint8_t *p, size_t len)
{
    static const char punct[] = "!#$%&'*+-.^_`|~";
    for (size_t i = 0; i < len; i++) {
        uint8_t b = p[i];
        bool alnum = (b >= '0' && b <= '9') || (b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z');
        if (!alnum && (b == '\0' || memchr(punct, b, sizeof(punct) - 1) == NULL)) {
            return false;
        }
    }
    return len > 0;
}

/* folded scans bytes of a request line and header section for a line that starts with a space
 * or a tab: obsolete line folding (RFC 9112 §5.2) or whitespace after the start line (§2.2).
 * llhttp 8.1 joins folded lines into one value, in every mode; we refuse them with 400. The
 * line state carries over between reads. */
static bool folded(struct conn *c, const uint8_t *p, size_t len)
{
    bool line_start = c->line_start;
    for (size_t i = 0; i < len; i++) {
        if (line_start && (p[i] == ' ' || p[i] == '\t')) {
            return true;
        }
        line_start = p[i] == '\n';
    }
    c->line_start = line_start;
    return false;
}

/* head_append copies `len` bytes of the request line or header section into the connection's
 * head buffer. Returns false (caller rejects) past max_header_bytes. */
static bool head_append(struct conn *c, const char *at, size_t len)
{
    struct head *h = &c->head;
    uint32_t max = c->ring->eng->opts.max_header_bytes;
    if (len > max - h->bytes) {
        return false;
    }
    ASSERT(h->len + len + 1 <= (size_t)max + 2 * IORING_HEADERS_MAX + 8);
    memcpy(h->buf + h->len, at, len);
    h->len += (uint32_t)len;
    h->bytes += (uint32_t)len;
    return true;
}

static void head_terminate(struct head *h)
{
    h->buf[h->len] = '\0';
    h->len++;
}

static void terminate(struct ioring_request *s)
{
    s->req[s->req_len] = '\0';
    s->req_len++;
}

/* body_append copies `len` body bytes into the slot's arena. Returns false (caller rejects) if
 * the request would exceed max_request_bytes. */
static bool body_append(struct conn *c, struct ioring_request *s, const char *at, size_t len)
{
    uint32_t max = c->ring->eng->opts.max_request_bytes;
    if (len > max - s->content_len) {
        return false;
    }
    ASSERT(s->req_len + len + 1 <= (size_t)max + 2 * IORING_HEADERS_MAX + 8);
    memcpy(s->req + s->req_len, at, len);
    s->req_len += (uint32_t)len;
    s->content_len += (uint32_t)len;
    return true;
}

/* in_trailer is true once the request has its slot: header callbacks then carry the trailer
 * section of a chunked body. Trailers are counted against max_request_bytes and dropped, never
 * merged into the header section (RFC 9110 §6.5.1). */
static bool in_trailer(struct conn *c)
{
    return c->cur_slot != SLOT_NONE;
}

static int trailer_bytes(struct conn *c, size_t len)
{
    struct ioring_request *s = cur_slot(c);
    if (len > c->ring->eng->opts.max_request_bytes - s->content_len) {
        return reject(c, 431);
    }
    s->content_len += (uint32_t)len;
    return 0;
}

static int on_message_begin(llhttp_t *p)
{
    struct conn *c = parser_conn(p);
    struct ring *r = c->ring;
    ASSERT(c->cur_slot == SLOT_NONE);
    c->in_message = true;
    c->deadline_kind = DEADLINE_HEADER;
    c->deadline_ns = clock_mono_ns() + (uint64_t)r->eng->opts.header_timeout_ms * 1000000u;
    /* No request slot yet: a partial request holds only its connection (and its head). */
    struct head *h = &c->head;
    h->len = 0;
    h->bytes = 0;
    h->target_len = 0;
    h->num_headers = 0;
    h->target_done = false;
    h->field_open = false;
    return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len)
{
    struct conn *c = parser_conn(p);
    if (!head_append(c, at, len)) {
        return reject(c, 414);
    }
    return 0;
}

static int on_url_complete(llhttp_t *p)
{
    struct conn *c = parser_conn(p);
    struct head *h = &c->head;
    h->target_len = h->len;
    head_terminate(h);
    h->target_done = true;
    return 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t len)
{
    struct conn *c = parser_conn(p);
    if (in_trailer(c)) {
        return trailer_bytes(c, len);
    }
    struct head *h = &c->head;
    if (!h->field_open) {
        if (h->num_headers == IORING_HEADERS_MAX) {
            return reject(c, 431);
        }
        h->field_open = true;
        h->headers[h->num_headers].name_off = h->len;
    }
    if (!head_append(c, at, len)) {
        return reject(c, 431);
    }
    return 0;
}

static int on_header_field_complete(llhttp_t *p)
{
    struct conn *c = parser_conn(p);
    if (in_trailer(c)) {
        return 0;
    }
    struct head *h = &c->head;
    if (!h->field_open) { /* an empty name (llhttp 8.1 takes ": value") */
        return refuse_400(c);
    }
    struct header_ref *f = &h->headers[h->num_headers];
    f->name_len = h->len - f->name_off;
    if (!token_valid(h->buf + f->name_off, f->name_len)) {
        return refuse_400(c);
    }
    head_terminate(h);
    h->field_open = false;
    f->value_off = h->len;
    return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len)
{
    struct conn *c = parser_conn(p);
    if (in_trailer(c)) {
        return trailer_bytes(c, len);
    }
    if (!head_append(c, at, len)) {
        return reject(c, 431);
    }
    return 0;
}

static int on_header_value_complete(llhttp_t *p)
{
    struct conn *c = parser_conn(p);
    if (in_trailer(c)) {
        return 0;
    }
    struct head *h = &c->head;
    ASSERT(h->num_headers < IORING_HEADERS_MAX);
    struct header_ref *f = &h->headers[h->num_headers];
    f->value_len = h->len - f->value_off;
    head_terminate(h);
    h->num_headers++;
    return 0;
}

/* slot_fill takes a request slot for the complete header section of `c` and copies the head
 * into it (a few KiB at most, once per request). Returns NULL if there is none for it. */
static struct ioring_request *slot_fill(struct conn *c, bool has_body)
{
    struct ring *r = c->ring;
    const struct head *h = &c->head;
    ASSERT(h->target_done);
    ASSERT(!h->field_open);
    /* Room for a 100 Continue and the final response, and 503 still fits otherwise. */
    if (c->pipe_count + 2 >= IORING_PIPELINE_MAX) {
        return NULL;
    }
    struct ioring_request *s = slot_take(r, c->client_key, has_body);
    if (s == NULL) {
        return NULL;
    }
    ASSERT(h->bytes <= r->eng->opts.max_request_bytes);
    memcpy(s->req, h->buf, h->len);
    s->req_len = h->len;
    s->content_len = h->bytes;
    s->target_off = 0;
    s->target_len = h->target_len;
    s->num_headers = h->num_headers;
    memcpy(s->headers, h->headers, h->num_headers * sizeof(h->headers[0]));
    s->state = SLOT_PARSING;
    s->conn_index = c->index;
    s->conn_gen = c->gen;
    memcpy(&s->client, &c->peer, sizeof(s->client));
    s->client_len = c->peer_len;
    if (c->tp->slot_fill != NULL) {
        c->tp->slot_fill(s, c);
    }
    c->cur_slot = s->index;
    return s;
}

static bool header_is(const struct ioring_request *s, const char *name, const char *value)
{
    size_t len = 0;
    const char *v = ioring_request_header_get(s, name, &len);
    return v != NULL && strlen(value) == len && strncasecmp(v, value, len) == 0;
}

static int on_headers_complete(llhttp_t *p)
{
    struct conn *c = parser_conn(p);
    struct ring *r = c->ring;
    uint32_t max = r->eng->opts.max_request_bytes;
    bool has_body = (p->flags & F_CHUNKED) != 0 || p->content_length > 0;
    /* RFC 9110 §15.5.14: refuse an announced oversized body before reading any of it. */
    if ((p->flags & F_CONTENT_LENGTH) != 0 && p->content_length > max - c->head.bytes) {
        atomic_fetch_add_explicit(&r->stats.responses_413, 1, memory_order_relaxed);
        return reject(c, 413);
    }
    struct ioring_request *s = slot_fill(c, has_body);
    if (s == NULL) {
        atomic_fetch_add_explicit(&r->stats.responses_503, 1, memory_order_relaxed);
        return reject(c, 503);
    }
    s->method = llhttp_method_name((llhttp_method_t)p->method);
    s->head = p->method == HTTP_HEAD;
    /* We speak no other protocol: an Upgrade (RFC 9110 §7.8) or a CONNECT (§9.3.6) gets the
     * handler's one answer and the connection closes; what follows is not HTTP we can read. */
    s->keep_alive = llhttp_should_keep_alive(p) != 0 && p->upgrade == 0;
    s->body_off = s->req_len;
    c->deadline_kind = DEADLINE_BODY;
    c->deadline_ns = clock_mono_ns() + (uint64_t)r->eng->opts.body_timeout_ms * 1000000u;
    /* RFC 9110 §10.1.1: 100 Continue, once http_input checked the header section. */
    c->want_continue = has_body && p->http_minor >= 1 && header_is(s, "expect", "100-continue");
    c->pause = PAUSE_HEAD_END;
    return HPE_PAUSED;
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    struct conn *c = parser_conn(p);
    if (!body_append(c, cur_slot(c), at, len)) {
        atomic_fetch_add_explicit(&c->ring->stats.responses_413, 1, memory_order_relaxed);
        return reject(c, 413);
    }
    return 0;
}

static int on_message_complete(llhttp_t *p)
{
    struct conn *c = parser_conn(p);
    struct ring *r = c->ring;
    struct ioring_request *s = cur_slot(c);
    s->body_len = s->req_len - s->body_off;
    terminate(s);
    s->id = ((uint64_t)r->index << 48) | ++r->req_seq;
    s->state = SLOT_HANDLER;
    c->cur_slot = SLOT_NONE;
    c->in_message = false;
    c->deadline_kind = DEADLINE_NONE;
    bool close = !s->keep_alive;
    conn_pipe_push(c, s->index, 0, close, 0);
    r->turn_requests++;
    atomic_fetch_add_explicit(&r->stats.requests, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&r->stats.requests_inflight, 1, memory_order_relaxed);
    r->eng->handler(r->eng->ctx, s);
    if (close) {
        c->stop_parsing = true;
        c->client_done = true;
    }
    c->pause = PAUSE_MESSAGE_END;
    return HPE_PAUSED;
}

void http_settings_init(llhttp_settings_t *st)
{
    llhttp_settings_init(st);
    st->on_message_begin = on_message_begin;
    st->on_url = on_url;
    st->on_url_complete = on_url_complete;
    st->on_header_field = on_header_field;
    st->on_header_field_complete = on_header_field_complete;
    st->on_header_value = on_header_value;
    st->on_header_value_complete = on_header_value_complete;
    st->on_headers_complete = on_headers_complete;
    st->on_body = on_body;
    st->on_message_complete = on_message_complete;
}

/* head_checked applies the pause of the last llhttp_execute after its `used` bytes: the header
 * section that ended must hold no folded line; a new one starts after a message. Returns false
 * if the request was refused. */
static bool head_checked(struct conn *c, const uint8_t *data, size_t used)
{
    if (c->in_head && folded(c, data, used)) {
        (void)refuse_400(c);
        return false;
    }
    if (c->pause == PAUSE_HEAD_END) {
        c->in_head = false;
        if (c->want_continue) { /* queued in order behind earlier responses */
            c->want_continue = false;
            conn_pipe_push(c, SLOT_NONE, 100, false, 0);
            conn_pump(c);
        }
    } else if (c->pause == PAUSE_MESSAGE_END) {
        c->in_head = true;
        c->line_start = true;
    }
    c->pause = PAUSE_NONE;
    return true;
}

/* http_input feeds plaintext to the parser. Returns 0; protocol errors queue a 400 and stop
 * reading (the connection closes once earlier responses are out). llhttp pauses at the end of
 * each header section and each message, so that the bytes of a header section are known. */
int http_input(struct conn *c, const uint8_t *data, size_t len)
{
    ASSERT(c->state == CONN_OPEN);
    /* Bounded: every pass consumes bytes, or ends a message right after its header section.
     * After a pause llhttp runs once more even without bytes: a message without a body
     * completes only then. */
    bool paused = false;
    if (c->stop_parsing && len > 0) {
        c->extra_input = true; /* after the last request: discarded */
    }
    while ((len > 0 || paused) && !c->stop_parsing) {
        ASSERT(c->pause == PAUSE_NONE);
        paused = false;
        llhttp_errno_t err = llhttp_execute(&c->parser, (const char *)data, len);
        size_t used = len;
        if (c->stop_parsing) {
            /* A callback queued the last answer (refusal or Connection: close). Bytes after
             * the message are the client's too: it may still be sending (conn_linger). */
            const uint8_t *end =
                err == HPE_PAUSED ? (const uint8_t *)llhttp_get_error_pos(&c->parser) : data + len;
            c->extra_input = c->extra_input || end < data + len;
            c->pause = PAUSE_NONE;
            return 0;
        }
        if (err == HPE_PAUSED) {
            const uint8_t *pos = (const uint8_t *)llhttp_get_error_pos(&c->parser);
            ASSERT(pos >= data);
            ASSERT(pos <= data + len);
            ASSERT(c->pause != PAUSE_NONE);
            used = (size_t)(pos - data);
            ASSERT(used > 0 || c->pause == PAUSE_MESSAGE_END);
            llhttp_resume(&c->parser);
            paused = true;
        } else if (err != HPE_OK) {
            /* Malformed (RFC 9112 §2.2): answer 400 and close. */
            (void)refuse_400(c);
            return 0;
        }
        if (!head_checked(c, data, used)) {
            return 0;
        }
        data += used;
        len -= used;
    }
    return 0;
}

/* format_response writes the whole response into the slot. Returns 0 or -E2BIG. */
static int format_response(struct ioring_request *s, int status, const char *content_type,
                           const char *extra_headers, const void *body, size_t body_len,
                           bool shared)
{
    struct ioring_engine *eng = s->ring->eng;
    size_t cap = eng->opts.max_response_bytes;
    bool close = !s->keep_alive || atomic_load(&eng->stopping);
    bool no_body = status == 204 || status == 304;
    char clen[40] = "";
    if (!no_body) {
        (void)snprintf(clen, sizeof(clen), "Content-Length: %zu\r\n", body_len);
    }
    int n = snprintf((char *)s->resp, cap, "HTTP/1.1 %d %s\r\n%s%s%s%s%sConnection: %s\r\n\r\n",
                     status, ioring_status_reason(status), content_type ? "Content-Type: " : "",
                     content_type ? content_type : "", content_type ? "\r\n" : "",
                     extra_headers ? extra_headers : "", clen, close ? "close" : "keep-alive");
    if (n < 0 || (size_t)n >= cap || (!no_body && !shared && body_len > cap - (size_t)n)) {
        return -E2BIG;
    }
    if (shared) { /* the body follows from its own buffer (ring.c conn_pump) */
        s->resp_len = (size_t)n;
        return 0;
    }
    /* RFC 9110 §9.3.2: the answer to HEAD is the GET answer's header section alone. */
    if (!no_body && !s->head && body_len > 0) {
        memcpy(s->resp + n, body, body_len);
    }
    s->resp_len = (size_t)n + (no_body || s->head ? 0 : body_len);
    return 0;
}

static void respond_done(struct ioring_request *req, int rc, int status);

int ioring_request_respond(struct ioring_request *req, int status, const char *content_type,
                           const char *extra_headers, const void *body, size_t body_len)
{
    ASSERT(req != NULL);
    ASSERT(req->state == SLOT_HANDLER);
    ASSERT(body != NULL || body_len == 0);
    int rc = -EINVAL;
    if (status >= 200 && status <= 599) {
        rc = format_response(req, status, content_type, extra_headers, body, body_len, false);
    }
    respond_done(req, rc, status);
    return rc;
}

int ioring_request_respond_body(struct ioring_request *req, int status, const char *content_type,
                                const char *extra_headers, struct ioring_body *body)
{
    ASSERT(req != NULL);
    ASSERT(req->state == SLOT_HANDLER);
    ASSERT(body != NULL);
    ASSERT(req->body == NULL);
    int rc = -EINVAL;
    if (status >= 200 && status <= 599 && status != 204 && status != 304) {
        rc = format_response(req, status, content_type, extra_headers, body->data, body->len, true);
    }
    if (rc == 0 && !req->head && body->len > 0) {
        req->body = body; /* dropped by slot_put */
    } else {
        ioring_body_put(body);
    }
    respond_done(req, rc, status);
    return rc;
}

/* respond_done hands a formatted answer to its ring (a bare 500 instead when rc failed). */
static void respond_done(struct ioring_request *req, int rc, int status)
{
    struct ring *r = req->ring;
    if (rc != 0) {
        log_warn("ioring: respond_failed id=%llu status=%d rc=%d", (unsigned long long)req->id,
                 status, rc);
        ioring_body_put(req->body);
        req->body = NULL;
        int fallback = format_response(req, 500, "text/plain", NULL, "", 0, false);
        ASSERT(fallback == 0); /* a bare 500 fits: options_fill keeps max_response_bytes >= 256 */
    }
    base_mutex_lock(&r->done_mu);
    uint32_t cap = r->eng->opts.max_inflight;
    ASSERT(r->done_count < cap);
    r->done[(r->done_head + r->done_count) % cap] = req->index;
    r->done_count++;
    base_mutex_unlock(&r->done_mu);
    ring_wake(r);
}

const char *ioring_request_method(const struct ioring_request *req)
{
    ASSERT(req->state == SLOT_HANDLER);
    return req->method;
}

const char *ioring_request_target(const struct ioring_request *req, size_t *out_len)
{
    ASSERT(req->state == SLOT_HANDLER);
    if (out_len != NULL) {
        *out_len = req->target_len;
    }
    return (const char *)req->req + req->target_off;
}

const char *ioring_request_header_get(const struct ioring_request *req, const char *name,
                                      size_t *out_len)
{
    ASSERT(name != NULL);
    size_t name_len = strlen(name);
    for (uint32_t i = 0; i < req->num_headers; i++) {
        const struct header_ref *h = &req->headers[i];
        if (h->name_len == name_len &&
            strncasecmp((const char *)req->req + h->name_off, name, name_len) == 0) {
            if (out_len != NULL) {
                *out_len = h->value_len;
            }
            return (const char *)req->req + h->value_off;
        }
    }
    return NULL;
}

const uint8_t *ioring_request_body(const struct ioring_request *req, size_t *out_len)
{
    ASSERT(req->state == SLOT_HANDLER);
    ASSERT(out_len != NULL);
    *out_len = req->body_len;
    return req->req + req->body_off;
}

const struct sockaddr *ioring_request_client(const struct ioring_request *req, socklen_t *out_len)
{
    if (out_len != NULL) {
        *out_len = req->client_len;
    }
    return (const struct sockaddr *)&req->client;
}

int ioring_request_client_format(const struct ioring_request *req, char *out, size_t cap)
{
    ASSERT(out != NULL);
    char host[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;
    bool v6 = req->client.ss_family == AF_INET6;
    if (req->client.ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)&req->client;
        (void)inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
        port = ntohs(a->sin_port);
    } else if (v6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&req->client;
        (void)inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
        port = ntohs(a->sin6_port);
    }
    int n = snprintf(out, cap, v6 ? "[%s]:%u" : "%s:%u", host, port);
    if (n < 0 || (size_t)n >= cap) {
        if (cap > 0) {
            out[0] = '\0';
        }
        return -E2BIG;
    }
    return 0;
}

uint64_t ioring_request_id(const struct ioring_request *req)
{
    return req->id;
}

uint32_t ioring_request_ring(const struct ioring_request *req)
{
    return req->ring->index;
}
