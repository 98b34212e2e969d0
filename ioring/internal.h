/* ioring internals: engine, rings, connections, request slots and the transport layer.
 *
 * Data path of one connection:  recv (provided buffer) → PROXY v2 (optional) → transport (plain
 * now, TLS through memory BIOs later) → HTTP parser (llhttp) → the connection's head buffer
 * (request line and header section) → at the end of the headers, a request slot (the head is
 * copied in, the body follows) → handler.
 * Responses go back: slot response buffer → pipeline (request order) → transport → send.
 * Everything here runs on the ring thread except ioring_request_respond, which only writes the
 * slot's response buffer and hands the slot index to the ring through `done` (mutex) and the
 * ring's eventfd. */
#ifndef CERTPROV_IORING_INTERNAL_H
#define CERTPROV_IORING_INTERNAL_H

#include <liburing.h>
#include <llhttp.h>
#include <pthread.h>
#include <stdatomic.h>

#include "base/base.h"
#include "ioring/ioring.h"

#define SLOT_NONE UINT32_MAX
#define PROXY_HDR_MAX 232 /* 16-byte header + addresses + TLVs we accept (RFC: v2 §2.2) */
#define CANNED_MAX IORING_CANNED_MAX
#define LINGER_MS 2000                 /* half-closed connection waiting for the client's FIN */
#define TICK_MS 50                     /* deadline scan period */
#define RING_LOG_HOLD 16384            /* bytes of a loop turn's log lines */
#define BODY_CHUNK_BYTES (64u * 1024u) /* a shared body goes to the transport this much at once */
#define BUF_GROUP 0

struct conn;
struct ring;

/* struct cidr is one block of proxy_from: IPv4 as an IPv4-mapped IPv6 address (bits + 96), so
 * that peers of an IPv6 listener that arrive over IPv4 match IPv4 blocks. */
struct cidr {
    uint8_t addr[16]; /* host bits cleared */
    uint8_t bits;     /* 0..128 */
};

/* struct transport_ops is the layer between the socket and the HTTP parser. The ring sends what
 * `wire` gives, one send at a time, and reports it with `sent`; it gives a response to `output`
 * only when `wire` has nothing left and `ready` says application data may flow. */
struct transport_ops {
    const char *name;
    /* input takes bytes received from the wire and passes plaintext to http_input (and may queue
     * wire bytes of its own: a handshake flight). Returns 0 or a negative errno (the connection
     * is then closed without an answer). */
    int (*input)(struct conn *c, const uint8_t *wire, size_t len);
    /* output queues one response (plaintext that stays valid until its bytes are sent); `last`:
     * the connection closes after it. Returns 0 or a negative errno. */
    int (*output)(struct conn *c, const uint8_t *plain, size_t len, bool last);
    /* wire points *out at the next bytes to send and returns their length (0: none). They stay
     * valid and unchanged until `sent` is called, whatever input arrives meanwhile. */
    size_t (*wire)(struct conn *c, const uint8_t **out);
    /* sent consumes `n` bytes of what wire gave. */
    void (*sent)(struct conn *c, size_t n);
    /* ready is true when responses may be given to output (TLS: the handshake is done). */
    bool (*ready)(const struct conn *c);
    /* close queues what goes before a close (TLS: close_notify); may be NULL. */
    void (*close)(struct conn *c);
    /* release frees the connection's transport state; may be NULL. */
    void (*release)(struct conn *c);
    /* open gives a new connection its transport state (TLS: the SSL object); may be NULL.
     * Returns 0 or -ENOMEM. */
    int (*open)(struct conn *c);
    /* slot_fill records in slot `s` how its connection `c` is secured (TLS: the kind of
     * handshake, a reference to the client certificate, freed with s->peer_free); may be NULL. */
    void (*slot_fill)(struct ioring_request *s, const struct conn *c);
};

extern const struct transport_ops transport_plain;
extern const struct transport_ops transport_tls;
struct tls_conn;

enum slot_state {
    SLOT_FREE = 0,
    SLOT_PARSING, /* being filled by the parser */
    SLOT_HANDLER, /* owned by the handler */
    SLOT_DONE,    /* response ready, waiting for its turn in the pipeline */
};

struct header_ref {
    uint32_t name_off, name_len, value_off, value_len;
};

/* struct head is the request line and header section a connection is reading: its target, field
 * names and values, each NUL-terminated, in `buf` (head_cap bytes, allocated at start). */
struct head {
    uint8_t *buf;
    uint32_t len;   /* used bytes of buf */
    uint32_t bytes; /* target, names and values received: what max_header_bytes bounds */
    uint32_t target_len;
    uint32_t num_headers;
    bool target_done; /* the target (and so the method) is known */
    bool field_open;
    struct header_ref headers[IORING_HEADERS_MAX];
};

/* struct client_entry is one client address of a ring's table: what it holds now. An entry lives
 * while it holds a connection or a slot (a slot can outlive its connection, with the handler). */
struct client_entry {
    uint8_t key[16]; /* client_key */
    uint32_t conns;
    uint32_t slots;
    bool used;
};

/* struct ioring_request is one request slot. Ring thread only, except resp_* and the fields read
 * by accessors, which belong to the handler between handler call and respond. */
struct ioring_request {
    struct ring *ring;
    uint32_t index;
    enum slot_state state;
    bool orphaned;   /* its connection is gone: free on completion */
    bool keep_alive; /* request allows keep-alive */
    bool head;       /* a HEAD request: its answer carries no body (RFC 9110 §9.3.2) */
    bool counted;    /* counted in its client's slots (client_key) */
    uint8_t client_key[16];
    uint32_t conn_index;
    uint32_t conn_gen;
    uint64_t id;
    const char *method;
    uint8_t *req;     /* arena: target, header names and values, body, each NUL-terminated */
    uint32_t req_len; /* used bytes of the arena */
    uint32_t content_len;
    uint32_t target_off, target_len;
    uint32_t body_off, body_len;
    uint32_t num_headers;
    struct header_ref headers[IORING_HEADERS_MAX];
    struct sockaddr_storage client;
    socklen_t client_len;
    enum ioring_tls_kind tls;          /* tls_slot_fill */
    enum ioring_cert_state cert_state; /* of peer_cert */
    void *peer_cert; /* CRYPTO_BUFFER of the client certificate (tls.c's), a reference held
                        until the slot is freed (peer_free); NULL without one */
    void (*peer_free)(void *peer_cert);
    uint8_t *resp;
    size_t resp_len;
    struct ioring_body *body; /* a shared body sent after resp (one reference), or NULL */
};

struct pipe_entry {
    uint32_t slot;   /* request slot, or SLOT_NONE for an engine response */
    uint16_t status; /* engine response status (when slot == SLOT_NONE) */
    bool close;      /* close the connection after this response */
    bool head;       /* an engine response to a HEAD request: headers only */
    uint8_t hint;    /* the application's classification of a refused request */
};

enum conn_state {
    CONN_FREE = 0,
    CONN_PROXY,   /* waiting for the PROXY v2 header */
    CONN_OPEN,    /* HTTP */
    CONN_LINGER,  /* final response sent, write side shut, discarding input */
    CONN_CLOSING, /* shut down; freed when no operation is pending */
};

enum deadline_kind {
    DEADLINE_NONE = 0,
    DEADLINE_HEADER,
    DEADLINE_BODY,
    DEADLINE_IDLE,
    DEADLINE_LINGER,
    DEADLINE_SEND,      /* a client that does not read its responses (body timeout) */
    DEADLINE_HANDSHAKE, /* TLS: accept to the end of the handshake */
};

struct conn {
    struct ring *ring;
    const struct transport_ops *tp;
    struct tls_conn *tls;   /* TLS state (tls.c), NULL on the plain listener */
    const uint8_t *out_ptr; /* plain transport: the response being sent */
    size_t out_len;
    bool resp_out;    /* the pipeline's first answer was given to the transport */
    size_t body_off;  /* of the first answer's shared body: bytes given to the transport */
    bool handshaking; /* counted in the ring's handshakes */
    uint32_t index;
    uint32_t gen;
    int fd;
    enum conn_state state;
    bool recv_armed;
    bool send_busy;
    bool stop_parsing; /* no more requests are read (error, close or drain) */
    bool peer_eof;
    bool client_done;   /* its last request asked to close (Connection: close, HTTP/1.0) */
    bool extra_input;   /* bytes came after the request that stopped the parsing */
    bool in_message;    /* parser is between message begin and complete */
    bool in_head;       /* bytes fed now belong to a request line and header section */
    bool line_start;    /* the next header-section byte starts a line */
    bool want_continue; /* send 100 Continue once the header section passed its checks */
    uint8_t pause;      /* why llhttp paused in a callback (enum http_pause) */
    enum deadline_kind deadline_kind;
    uint64_t deadline_ns;
    uint32_t live_pos; /* where in ring->live, when not free */
    uint32_t cur_slot; /* the request's slot, from the end of its headers */
    struct head head;
    uint8_t client_key[16];
    bool counted; /* counted in its client's connections (PROXY: once the header is read) */
    llhttp_t parser;
    struct sockaddr_storage peer;
    socklen_t peer_len;
    uint16_t proxy_len;
    uint8_t proxy_buf[PROXY_HDR_MAX];
    struct pipe_entry pipe[IORING_PIPELINE_MAX];
    uint32_t pipe_head, pipe_count;
    size_t send_len; /* bytes of the send in flight */
    char canned[CANNED_MAX];
};

struct ring_stats {
    _Atomic uint64_t connections_open, connections_accepted, connections_refused, requests,
        requests_inflight, responses, responses_400, responses_413, responses_503, timeouts,
        accept_pauses, tls_full, tls_resumed, tls_failed, tls_refused, tls_client_certs;
};

struct ring {
    struct ioring_engine *eng;
    uint32_t index;
    pthread_t thread;
    bool thread_started;
    struct io_uring uring;
    bool uring_ok;
    int listen_fd;
    int tls_fd; /* the TLS listener, -1 without one */
    bool tls_accept_armed;
    uint32_t handshakes;     /* TLS handshakes in progress */
    uint32_t handshakes_max; /* this ring's share of max_handshakes */
    uint8_t *tls_plain;      /* SSL_read's output, given to http_input at once */
    size_t tls_plain_len;
    int event_fd;
    uint64_t event_val;
    bool accept_armed, accept_paused, draining;
    /* connections */
    struct conn *conns;
    uint32_t num_conns, conns_used, conns_low_water;
    uint32_t *conn_free; /* stack of free connection indexes */
    uint32_t conn_free_len;
    uint32_t *live; /* the indexes of the connections not free, in no order (conns_used) */
    char *log_hold; /* the log lines of one loop turn, written at its end (RING_LOG_HOLD) */
    /* request slots */
    struct ioring_request *slots;
    uint32_t *slot_free;
    uint32_t slot_free_len;
    uint8_t *slot_mem;
    size_t slot_mem_len;
    uint8_t *head_mem; /* one head buffer per connection */
    size_t head_mem_len;
    /* client addresses: open addressing, at most half full */
    struct client_entry *clients;
    uint32_t clients_mask;
    uint64_t client_seed[2];
    uint32_t conns_per_client; /* this ring's share of max_connections_per_client */
    uint32_t turn_requests;
    bool turn_more; /* on_turn_end left work: the next turn calls it again, without sleeping */
    uint64_t req_seq;
    /* provided buffers */
    struct io_uring_buf_ring *br;
    size_t br_len;
    uint8_t *bufs;
    uint32_t num_bufs;
    /* completions from other threads: bounded by the number of slots, cannot overflow */
    pthread_mutex_t done_mu;
    bool mutex_ok;
    uint32_t *done; /* ring buffer of slot indexes */
    uint32_t done_head, done_count;
    atomic_bool wake_pending;
    struct ring_stats stats;
    int init_rc; /* result of the thread's setup, read by ioring_engine_new */
};

struct ioring_engine {
    struct ioring_options opts;
    char listen[IORING_LISTEN_MAX];
    ioring_handler_fn handler;
    void *ctx;
    uint16_t port;
    char tls_listen[IORING_LISTEN_MAX]; /* "" = no TLS listener */
    uint16_t tls_port;
    uint32_t num_rings;
    struct ring *rings;
    atomic_bool stopping;
    atomic_uint_fast64_t stop_deadline_ns;
    bool stopped;
    struct cidr proxy_from[IORING_PROXY_FROM_MAX];
    uint32_t num_proxy_from;
    llhttp_settings_t settings;
    pthread_mutex_t init_mu;
    pthread_cond_t init_cv;
    uint32_t init_done;
};

/* The files of ioring/ call one way: engine.c starts ring.c; ring.c and http.c reach the
 * transports (transport.c, tls.c) only through the connection's ops table (function pointers,
 * like the handler); the transports call http.c, http.c calls ring.c's slot and pipeline
 * helpers; proxy.c (PROXY v2, proxy_from), client.c (per-client shares), canned.c and body.c
 * (shared bodies' references) are below them all. */

/* ring.c */
/* ring_main is the thread of one ring: its event loop until the engine stops. */
void *ring_main(void *arg);
/* ring_wake makes ring `r` look at its completed requests (no-op on its own thread). */
void ring_wake(struct ring *r);
/* conn_pipe_push queues the answer of `slot` (or a canned `status` when slot is SLOT_NONE) and
 * returns its entry (valid until the next push or send completion). */
struct pipe_entry *conn_pipe_push(struct conn *c, uint32_t slot, uint16_t status, bool close,
                                  uint8_t hint);
/* conn_pump sends the oldest queued answer when it is ready (answers leave in request order). */
void conn_pump(struct conn *c);
/* slot_put gives a request slot back to its ring's free list. */
void slot_put(struct ring *r, struct ioring_request *s);
/* ring_handshake_end uncounts a TLS connection's handshake and starts its request deadline. */
void ring_handshake_end(struct conn *c);
/* slot_take takes a free request slot for a request with or without a body, counted for the
 * client `key`, or NULL when the ring has none for it (the caller sends 503): the client holds
 * its share, or only the reserve is left and the request has a body. */
struct ioring_request *slot_take(struct ring *r, const uint8_t key[16], bool has_body);

/* http.c */
/* enum http_pause says why a callback paused llhttp: http_input then checks the bytes of the
 * header section that just ended (PAUSE_HEAD_END) or starts a new one (PAUSE_MESSAGE_END). */
enum http_pause {
    PAUSE_NONE = 0,
    PAUSE_HEAD_END,
    PAUSE_MESSAGE_END,
};
/* http_settings_init fills the llhttp callbacks that parse requests into slots. */
void http_settings_init(llhttp_settings_t *s);
/* http_input feeds plaintext bytes of connection `c` to its parser. Returns 0. */
int http_input(struct conn *c, const uint8_t *data, size_t len);

/* proxy.c */
/* cidr_list_parse parses `list` (ioring_cidr_list_check) into out[IORING_PROXY_FROM_MAX]. */
int cidr_list_parse(struct cidr *out, uint32_t *out_num, const char *list);
/* addr_v6 writes the address of `a` as 16 bytes (IPv4 mapped); all zero for another family. */
void addr_v6(uint8_t out[16], const struct sockaddr_storage *a, socklen_t len);
/* cidr_match is true if the address of `a` lies in one of the `num` blocks of `list`. */
bool cidr_match(const struct cidr *list, uint32_t num, const struct sockaddr_storage *a,
                socklen_t len);

/* client.c */
/* client_key writes the key of a client address: IPv4 (mapped), or the /64 of an IPv6 one. */
void client_key(uint8_t out[16], const struct sockaddr_storage *a, socklen_t len);
/* client_conn_take counts a connection of `key`; false (nothing counted) over its share. */
bool client_conn_take(struct ring *r, const uint8_t key[16]);
/* client_conn_put uncounts a connection of `key`. */
void client_conn_put(struct ring *r, const uint8_t key[16]);
/* client_slot_take counts a slot of `key`; false (nothing counted) over max_inflight_per_client. */
bool client_slot_take(struct ring *r, const uint8_t key[16]);
/* client_slot_put uncounts a slot of `key`. */
void client_slot_put(struct ring *r, const uint8_t key[16]);

/* canned.c */
/* http_canned_format writes the engine's plain answer of `status` into `out`; returns its length.
 */
size_t http_canned_format(char *out, size_t cap, uint16_t status, bool close,
                          uint32_t retry_after_s);

#endif
