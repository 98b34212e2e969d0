/* ioring: the network engine. One io_uring per worker thread, each with its own SO_REUSEPORT
 * listener on the one port of the engine (which no other socket may hold): multishot accept,
 * multishot recv into a provided-buffer ring, HTTP/1.1 framing with llhttp (keep-alive, pipelining,
 * Content-Length and chunked bodies, Expect: 100-continue), optional PROXY protocol v2, deadlines
 * and backpressure.
 *
 * The engine knows nothing about certificates. It hands each complete request to a handler on
 * the ring thread; the handler answers at once or later, from any thread, with
 * ioring_request_respond. Responses on one connection always leave in request order.
 *
 * Memory: everything is allocated by ioring_engine_new from the options (connection slots,
 * request slots with their request and response buffers, the provided-buffer ring). Nothing is
 * allocated on the request path. When a bound is hit the engine pushes back: it stops accepting
 * at max_connections, answers 413/431 to oversized requests before reading their body, answers
 * 503 with Retry-After when max_inflight requests are already with the handler, and closes
 * connections that miss their header, body or idle deadline.
 *
 * A request takes a request slot only once its header section is complete: until then it is
 * read into its connection's own buffer of max_header_bytes, so clients that send a byte and
 * wait hold connections, never what complete requests need. Per client address (the PROXY
 * header's when proxy_protocol is on; IPv6 by /64) the engine can bound connections and slots,
 * and it can keep slots that only requests without a body (health checks) may take. */
#ifndef CERTPROV_IORING_H
#define CERTPROV_IORING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct ioring_engine;
struct ioring_request;

/* Hard limits of the engine (not configurable: they size fixed arrays). */
#define IORING_WORKERS_MAX 64
#define IORING_HEADERS_MAX 64    /* headers per request; more is answered 431 */
#define IORING_PIPELINE_MAX 16   /* requests queued per connection; more is answered 503 */
#define IORING_LISTEN_MAX 128    /* length of the "host:port" option */
#define IORING_ADDR_TEXT_MAX 64  /* "[v6addr]:port" and NUL */
#define IORING_PROXY_FROM_MAX 32 /* CIDR blocks in proxy_from */
#define IORING_PROXY_FROM_DEFAULT "127.0.0.0/8, ::1/128"

/* ioring_handler_fn receives one complete request on the ring thread `ring_index`. The handler
 * owns `req` until it calls ioring_request_respond exactly once, now or later, from any thread.
 * It must not block (invariant 7): slow work goes to other threads. */
typedef void (*ioring_handler_fn)(void *ctx, struct ioring_request *req);

/* ioring_classify_fn runs on the ring when the engine itself must refuse a request (400, 413,
 * 414, 431, 503): it maps the request-target, when already read (else target is NULL), to a
 * small hint the application chooses (e.g. its route), kept with the queued refusal. */
typedef uint8_t (*ioring_classify_fn)(void *ctx, const char *target, size_t target_len);

/* ioring_canned_fn formats the engine's refusal `status` for `hint` as a whole HTTP response
 * (status line, headers with Content-Length and "Connection: close"/"keep-alive" as `close` says,
 * body) into `out` (IORING_CANNED_MAX bytes). Returns its length, or 0 to let the engine write
 * its plain-text default. Runs on the ring thread when the response is sent. */
#define IORING_CANNED_MAX 2048
typedef size_t (*ioring_canned_fn)(void *ctx, char *out, size_t cap, uint16_t status, uint8_t hint,
                                   bool close, uint32_t retry_after_s);

/* ioring_turn_end_fn runs on ring `ring_index` at the end of every loop turn in which that ring
 * handed at least one request to the handler, so that the caller can batch them. It does a
 * bounded slice of work and returns true when work is left: the ring then gathers its
 * completions (answers go out, new requests join the batch) without sleeping and calls it again
 * at the end of the next turn. */
typedef bool (*ioring_turn_end_fn)(void *ctx, uint32_t ring_index);

/* struct ioring_options configures an engine. ioring_options_default fills the defaults; a zero
 * in a field given to ioring_engine_new means "default" as well. */
struct ioring_options {
    const char *listen;          /* "host:port", IPv4 or [IPv6]; port 0 picks one */
    uint32_t workers;            /* ring threads; 0 = one per online core */
    uint32_t max_connections;    /* whole engine, split evenly between rings */
    uint32_t max_request_bytes;  /* target + headers + body of one request */
    uint32_t max_header_bytes;   /* target + field names and values; at most the above */
    uint32_t max_response_bytes; /* status line + headers + body of one response */
    uint32_t max_inflight;       /* per ring: request slots (held from the end of the headers
                                    until the answer is sent) */
    uint32_t max_connections_per_client; /* whole engine, split evenly; 0 = no bound */
    uint32_t max_inflight_per_client;    /* per ring: slots one client holds; 0 = no bound */
    uint32_t inflight_reserve;  /* per ring: slots only requests without a body take; 0 = none */
    uint32_t header_timeout_ms; /* first byte of a request to the end of its headers */
    uint32_t body_timeout_ms;   /* end of headers to the end of the body */
    uint32_t idle_timeout_ms;   /* keep-alive connection with nothing to do */
    uint32_t retry_after_s;     /* Retry-After of a 503 */
    uint32_t recv_buffers;      /* provided buffers per ring, rounded up to a power of two */
    uint32_t recv_buffer_bytes; /* size of each provided buffer */
    bool proxy_protocol;        /* expect a PROXY protocol v2 header on every connection */
    const char *proxy_from; /* with proxy_protocol: the peers (CIDR list, ioring_cidr_list_check)
                               allowed to send it, others are closed; NULL = loopback */
    /* TLS (ioring_tls_new): with tls_listen set and tls given, every ring also listens there and
     * speaks HTTPS (the PROXY header, when proxy_protocol is on, comes before the ClientHello). */
    const char *tls_listen;         /* "host:port" like listen; NULL or "" = no TLS listener */
    struct ioring_tls *tls;         /* borrowed: outlives the engine; NULL = no TLS listener */
    uint32_t handshake_timeout_ms;  /* accept (or PROXY header) to the end of the handshake */
    uint32_t max_handshakes;        /* whole engine, split evenly: TLS handshakes in progress; a
                                       connection beyond is closed at once (refused) */
    ioring_turn_end_fn on_turn_end; /* may be NULL; called with the handler's ctx */
    ioring_classify_fn on_classify; /* may be NULL (hint 0); called with the handler's ctx */
    ioring_canned_fn on_canned;     /* may be NULL (plain-text refusals) */
};

/* ioring_options_default fills `out` with the defaults: "0.0.0.0:8080" (no TLS listener; 10 s
 * handshakes, 512 at once when there is one), one worker per core,
 * 4096 connections, 64 KiB requests and responses, 8 KiB of headers, 256 in flight per ring, no
 * per-client bounds and no reserve, deadlines of 10 s (header), 30 s (body) and 60 s (idle),
 * Retry-After 1, 256 buffers of 4 KiB, no PROXY (from IORING_PROXY_FROM_DEFAULT when on). */
void ioring_options_default(struct ioring_options *out);

/* ioring_listen_check tells whether ioring_engine_new would accept `listen` as its address: the
 * same parser, without binding anything. Accepted: "IPv4:PORT" or "[IPv6]:PORT" (a bare IPv6
 * address before the last ':' is accepted too), numeric addresses only (no host names), PORT a
 * decimal number 0..65535, shorter than IORING_LISTEN_MAX. Returns 0 or -EINVAL. For a
 * configuration check before start-up. Thread-safe. */
int ioring_listen_check(const char *listen);

/* ioring_engine_new binds the listeners, allocates every buffer and starts the ring threads.
 * The rings share the listen port (SO_REUSEPORT), but nobody else may: a port that another
 * socket already holds, of another process or of another engine, is refused (-EADDRINUSE)
 * instead of shared; an address in use is asked again for up to half a second first (the
 * listener of an engine freed a moment ago lingers while the kernel tears its io_uring down).
 * `opts` is copied (the listen string too); `handler` and `ctx` must stay valid until
 * ioring_engine_free. Returns 0 and the engine in *out, -EINVAL for a bad option or address, -E2BIG
 * if the sizes multiply beyond what the engine accepts, -EADDRINUSE if the address is taken,
 * -ENOMEM, or the negative errno of a failed socket, bind or io_uring setup (e.g. -EADDRNOTAVAIL:
 * not an address of this host; -EACCES: a port below 1024). */
int ioring_engine_new(struct ioring_engine **out, const struct ioring_options *opts,
                      ioring_handler_fn handler, void *ctx);

/* ioring_engine_port returns the TCP port the engine listens on (useful with port 0). */
uint16_t ioring_engine_port(const struct ioring_engine *eng);

/* ioring_engine_tls_port returns the TCP port of the TLS listener, 0 without one. */
uint16_t ioring_engine_tls_port(const struct ioring_engine *eng);

/* ioring_engine_workers returns the number of ring threads. */
uint32_t ioring_engine_workers(const struct ioring_engine *eng);

/* ioring_engine_stop stops accepting, closes idle connections and partly received requests,
 * lets requests already with the handler finish (their responses carry Connection: close) and
 * returns when every connection is closed or after `deadline_ms`, whichever comes first; then
 * the ring threads have exited. Returns 0, or -ETIMEDOUT if the deadline cut connections off.
 * Call from one thread, not from a handler. Calling it again returns 0 at once. A request that
 * the handler still owns may still be answered: the answer is discarded. */
int ioring_engine_stop(struct ioring_engine *eng, uint32_t deadline_ms);

/* ioring_engine_free stops the engine (deadline 0) if needed and releases everything. Every
 * ioring_request_respond must have returned before this is called. NULL is a no-op. */
void ioring_engine_free(struct ioring_engine *eng);

/* struct ioring_stats is a snapshot of counters summed over the rings (for metrics). */
struct ioring_stats {
    uint64_t connections_open;     /* gauge */
    uint64_t connections_accepted; /* counter */
    uint64_t connections_refused;  /* over the limit or a client's share, a peer outside
                                      proxy_from, or a failed PROXY header */
    uint64_t requests;             /* handed to the handler */
    uint64_t requests_inflight;    /* gauge: with the handler now */
    uint64_t responses;            /* all responses sent, engine ones included */
    uint64_t responses_400;
    uint64_t responses_413; /* 413 and 431 */
    uint64_t responses_503;
    uint64_t timeouts;         /* connections closed on a deadline */
    uint64_t accept_pauses;    /* times a ring stopped accepting at max_connections */
    uint64_t tls_full;         /* TLS handshakes completed with a full handshake */
    uint64_t tls_resumed;      /* ... with a resumed session (ticket): no signature */
    uint64_t tls_failed;       /* TLS connections that ended before their handshake completed:
                                  bad input (not TLS, a truncated or oversized record, a refused
                                  version or suite), the client gone, or the handshake deadline */
    uint64_t tls_refused;      /* TLS connections closed at once: max_handshakes in progress */
    uint64_t tls_client_certs; /* completed handshakes with a client certificate */
};

/* ioring_engine_stats_get writes a snapshot into *out. Thread-safe; counters are read without
 * a global lock, so the sums may mix instants a few microseconds apart. */
void ioring_engine_stats_get(const struct ioring_engine *eng, struct ioring_stats *out);

/* Request accessors. All borrow from the request: pointers stay valid until
 * ioring_request_respond is called for it. They may be called from any thread that currently
 * owns `req`. Strings are NUL-terminated as well as counted. */

/* ioring_request_method returns the method ("GET", "POST", ...). */
const char *ioring_request_method(const struct ioring_request *req);

/* ioring_request_target returns the request-target as sent ("/path?query"), length in *out_len
 * (may be NULL). */
const char *ioring_request_target(const struct ioring_request *req, size_t *out_len);

/* ioring_request_header_get returns the value of the first header named `name` (compared
 * case-insensitively, RFC 9110 §5.1), length in *out_len (may be NULL), or NULL if absent. */
const char *ioring_request_header_get(const struct ioring_request *req, const char *name,
                                      size_t *out_len);

/* ioring_request_body returns the body (de-chunked), length in *out_len; "" when empty. */
const uint8_t *ioring_request_body(const struct ioring_request *req, size_t *out_len);

/* ioring_request_client returns the client address: from the PROXY v2 header when
 * proxy_protocol is on, else the peer. Length in *out_len (may be NULL). */
const struct sockaddr *ioring_request_client(const struct ioring_request *req, socklen_t *out_len);

/* ioring_request_client_format writes the client address as "a.b.c.d:port" or "[v6]:port"
 * into `out` (IORING_ADDR_TEXT_MAX bytes suffice). Returns 0 or -E2BIG. */
int ioring_request_client_format(const struct ioring_request *req, char *out, size_t cap);

/* ioring_request_id returns the engine-unique id of the request (for logs). */
uint64_t ioring_request_id(const struct ioring_request *req);

/* ioring_request_ring returns the index of the ring thread that received the request. */
uint32_t ioring_request_ring(const struct ioring_request *req);

/* enum ioring_tls_kind says how a request's connection was secured. */
enum ioring_tls_kind {
    IORING_TLS_NONE = 0, /* plain HTTP */
    IORING_TLS_FULL,     /* TLS, full handshake */
    IORING_TLS_RESUMED,  /* TLS, resumed session (ticket) */
};

/* enum ioring_cert_state says what the client certificate of a TLS request was worth. */
enum ioring_cert_state {
    IORING_CERT_NONE = 0, /* none presented (or plain HTTP) */
    IORING_CERT_OK,       /* it chains to a certificate of the client CA file and was within its
                             validity at the handshake, for clientAuth */
    IORING_CERT_EXPIRED,  /* it chains, but had expired (or was not yet valid) */
    IORING_CERT_UNTRUSTED /* anything else: another CA, a bad signature, a wrong purpose */
};

/* ioring_request_tls returns how the request's connection was secured. */
enum ioring_tls_kind ioring_request_tls(const struct ioring_request *req);

/* ioring_request_client_cert returns the state of the client certificate of the request's TLS
 * connection and, for IORING_CERT_OK, IORING_CERT_EXPIRED and IORING_CERT_UNTRUSTED, its DER in
 * *out_der / *out_len (borrowed from the request: valid until ioring_request_respond). For a
 * resumed session it is the certificate of the session's first handshake, judged then: the
 * handler checks its validity against the clock itself. */
enum ioring_cert_state ioring_request_client_cert(const struct ioring_request *req,
                                                  const uint8_t **out_der, size_t *out_len);

/* ioring_request_respond answers `req` and gives it back to the engine: `req` must not be used
 * afterwards. Safe from any thread, including inside the handler; it never blocks for long (a
 * short mutex). `content_type` may be NULL (no Content-Type); `extra_headers` may be NULL or
 * complete "Name: value\r\n" lines; the engine adds Content-Length and Connection. The bytes
 * are copied. Returns 0, -EINVAL for a status outside 100..599 or 1xx, or -E2BIG if the
 * response exceeds max_response_bytes; on an error the client gets a 500 instead and `req` is
 * consumed all the same. If the client has gone, the response is dropped silently. */
int ioring_request_respond(struct ioring_request *req, int status, const char *content_type,
                           const char *extra_headers, const void *body, size_t body_len);

/* struct ioring_body is a response body the engine sends without copying it into the request's
 * slot (which bounds an ordinary answer to max_response_bytes): a large document served to many
 * clients, such as the CRL. Reference-counted: whoever holds `refs` keeps data alive;
 * ioring_body_put drops one and calls free_fn(body) at zero, on whichever thread that is. */
struct ioring_body {
    _Atomic uint32_t refs;
    const uint8_t *data;
    size_t len;
    void (*free_fn)(struct ioring_body *body);
};

/* ioring_body_get takes a reference to `body`. Thread-safe. */
void ioring_body_get(struct ioring_body *body);

/* ioring_body_put drops a reference to `body` (NULL: no-op) and frees it at the last one.
 * Thread-safe. */
void ioring_body_put(struct ioring_body *body);

/* ioring_request_respond_body is ioring_request_respond with a shared body: it takes over one
 * reference of `body` (the caller took it with ioring_body_get) and gives it back once the
 * answer is sent or dropped. The status line and headers go into the slot as usual; the body is
 * sent from `body->data` in place (TLS: encrypted a chunk at a time, so a connection holds at
 * most one chunk of ciphertext). Returns 0, or an error as ioring_request_respond (then the
 * client gets a 500 and the reference is dropped). */
int ioring_request_respond_body(struct ioring_request *req, int status, const char *content_type,
                                const char *extra_headers, struct ioring_body *body);

/* ioring_status_reason returns the reason phrase of an HTTP status ("OK", ...), "" if unknown. */
const char *ioring_status_reason(int status);

/* ioring_cidr_list_check checks a list of CIDR blocks as proxy_from takes it: comma-separated,
 * spaces around items allowed, each an IPv4 or IPv6 address with an optional "/prefix-length"
 * (without it, the one address; host bits under the prefix are ignored). Returns 0, -EINVAL if
 * the list is empty or an item is malformed, or -E2BIG for more than IORING_PROXY_FROM_MAX
 * items. Thread-safe. */
int ioring_cidr_list_check(const char *list);

/* ioring_proxy_v2_parse parses a PROXY protocol v2 header at the start of `data` (exposed for
 * tests and fuzzing). Returns 0 with the header's total length in *out_len and the source
 * address in *out_addr and *out_addr_len (*out_addr_len = 0 for LOCAL or an UNSPEC family: keep the
 * peer), -EAGAIN if more bytes are needed, or -EBADMSG if it is not a valid v2 header. */
int ioring_proxy_v2_parse(size_t *out_len, struct sockaddr_storage *out_addr,
                          socklen_t *out_addr_len, const uint8_t *data, size_t len);

/* ---- TLS: the server's certificate, key, client CA and session tickets (ioring/tls.c) ----
 *
 * TLS 1.2 and 1.3 only, ECDHE with AEAD suites only (AES-GCM, ChaCha20-Poly1305), no
 * renegotiation (BoringSSL has none on servers), no compression, ALPN http/1.1, close_notify
 * before a close. Sessions resume by ticket only (no server-side cache): TLS 1.3 PSK and TLS 1.2
 * tickets, encrypted with AES-256-CBC + HMAC-SHA256 under 16-byte-named keys; the current key
 * seals, it and the previous one open (a ticket opened with the previous key is renewed).
 * Without a ticket-key file the keys are made in memory and rotated every ticket_rotate_s; with
 * one (several appliances behind one balancer share it) they are read from it at start and by
 * ioring_tls_reload, and rotated by whoever rewrites the file (ioring_tls_ticket_file_rotate). */

struct ioring_tls;

#define IORING_TLS_ERR_MAX 512
#define IORING_TICKET_ROTATE_S_DEFAULT (12u * 3600u)

struct ioring_tls_options {
    const char *cert_file;      /* PEM: the server's certificate, then the CA certificates sent with
                                   it (not the root) */
    const char *key_file;       /* PEM or DER (PKCS#8): the server certificate's private key */
    const char *client_ca_file; /* PEM: the CA certificates a client certificate must chain to
                                   (one of them is the anchor, it need not be a root); NULL or
                                   "": no client certificate is asked for */
    const char *ticket_file;    /* NULL or "": ticket keys in memory, rotated by the process */
    uint32_t ticket_rotate_s;   /* 0 = IORING_TICKET_ROTATE_S_DEFAULT; also the lifetime of a
                                   ticket */
};

/* ioring_tls_new loads the certificate, key, client CA and ticket keys. Returns 0 (*out owned:
 * free with ioring_tls_free after the engine), -ENOENT/-EACCES (a file cannot be read),
 * -EBADMSG (a file is not what it must be: which and why in `err`), -EINVAL (the key does not
 * match the certificate), or -ENOMEM. `err` (IORING_TLS_ERR_MAX bytes) names the file and the
 * reason on every failure. Not thread-safe. */
int ioring_tls_new(struct ioring_tls **out, char *err, const struct ioring_tls_options *opts);

/* ioring_tls_reload reads the certificate, key and client CA files again into a new context,
 * which new connections take (a connection keeps the context it started with), and the
 * ticket-key file when there is one. Returns 0, or an error as ioring_tls_new (then the
 * context and keys in use are kept). Thread-safe. */
int ioring_tls_reload(struct ioring_tls *tls, char *err);

/* ioring_tls_free frees `tls`. NULL is a no-op. */
void ioring_tls_free(struct ioring_tls *tls);

/* ioring_tls_ticket_file_rotate writes a new current key into the ticket-key file at `path`
 * (created 0600 if missing), keeping the old current one as the previous; atomically (a
 * reader sees the old file or the new one). Returns 0, or a negative errno with the reason in
 * `err` (IORING_TLS_ERR_MAX bytes): -EBADMSG for an existing file that is not a ticket-key file
 * (it is left alone). Thread-safe. */
int ioring_tls_ticket_file_rotate(const char *path, char *err);

#endif
