/* certprov-bench: the load. One thread, epoll, non-blocking keep-alive connections; one request
 * in flight per connection (no pipelining, like a device or a balancer's pooled connection).
 *
 * TLS: a BoringSSL client SSL per connection, writing to its non-blocking socket and reading
 * from a memory BIO that one recv fills with whatever the socket holds (a socket BIO reads each
 * record in two, its header and then its body: a third more system calls than plain HTTP, on the
 * two vCPUs the generator shares with the server); the handshake, SSL_write and SSL_read turn
 * WANT_READ / WANT_WRITE into the connection's epoll interest. Each slot keeps the SSL_SESSION of
 * its last handshake (the new-session callback, which TLS 1.3 calls for the server's
 * NewSessionTicket) and offers it on its next connection when resuming; one session per slot bounds
 * the memory. A new connection per request (the phone's first contact) measures its latency from
 * the connect.
 *
 * Closed loop: each connection sends its next request as soon as the previous answer is in;
 * latency is measured from the send. Open loop: request k is due at t0 + k/rate; it goes out on
 * the first free connection at or after that time, and its latency is measured from the time it
 * was due, so a stalled server shows up as latency instead of being hidden by a generator that
 * slows down with it (coordinated omission). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <openssl/base64.h>
#include <openssl/bytestring.h>
#include <openssl/digest.h>
#include <openssl/err.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "base/base.h"
#include "cmd/certprov-bench/bench.h"

#define LOAD_WARM_NS 10000000000ull /* warm_up's bound: 10 s */
#define LOAD_RBUF_LEN 16384u        /* the largest answer we accept (a SOAP answer is ~2 KiB) */
#define LOAD_REQ_MAX 8192u          /* one prebuilt request */
#define LOAD_REQ2_MAX 16384u        /* phone: the GetAndPublishCert a ticket's answer makes */
#define LOAD_EVENTS_MAX 256u        /* epoll events per wait */
#define LOAD_RETRY_NS 100000000u    /* a connection that failed is retried after 100 ms */

#define SOAP_PATH "/CertProv/CertProvisioningService.svc"
#define EST_PATH "/.well-known/est/simpleenroll"
#define REENROLL_PATH "/.well-known/est/simplereenroll"
#define WT_PIN_PATH "/WebTicket/WebTicketService.svc/Auth"
#define PROOF_PATH SOAP_PATH "/WebTicket_Proof"
#define PHONE_ENTROPY_LEN 32u
#define NS_WSSE "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
#define NS_WSU "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
#define NS_DS "http://www.w3.org/2000/09/xmldsig#"
#define NS_EXC "http://www.w3.org/2001/10/xml-exc-c14n#"

enum conn_state {
    CONN_DOWN,
    CONN_CONNECTING,
    CONN_HANDSHAKE,
    CONN_IDLE,
    CONN_SENDING,
    CONN_WAITING
};

struct conn {
    int fd;
    enum conn_state state;
    bool want_out;     /* EPOLLOUT is in the interest set */
    uint64_t start_ns; /* closed loop: when sent; open loop: when it was due */
    uint64_t open_ns;  /* when the connection was opened */
    uint64_t due_ns;   /* open loop, new connection per request: when its request was due */
    uint64_t retry_at_ns;
    SSL *ssl;          /* TLS only */
    SSL_SESSION *sess; /* TLS: the last handshake's session (owned), offered when resuming */
    const struct bench_ident *ident; /* the client certificate of this slot, or NULL */
    const uint8_t *out;
    size_t out_len;
    size_t out_off;
    uint8_t *rbuf;
    size_t rlen;
    uint32_t req_idx;  /* the request (and CSR) being sent */
    bool ticket_phase; /* phone: the RST is out, GetAndPublishCert follows its answer */
    uint8_t *buf2;     /* phone: LOAD_REQ2_MAX bytes for that GetAndPublishCert */
};

struct req {
    uint8_t *buf;
    size_t len;
    uint8_t entropy[PHONE_ENTROPY_LEN]; /* phone: the RST's client entropy */
};

struct load {
    const struct bench_load_options *opt;
    struct bench_load_result *res;
    int ep;
    struct sockaddr_in addr;
    SSL_CTX *tls;          /* NULL: plain HTTP */
    uint8_t tls_in[16384]; /* tls_fill's scratch: one recv, then into the connection's BIO */
    struct conn *conns;
    struct req *reqs;
    uint8_t *arena;
    uint32_t next_req;
    uint32_t inflight;
    uint32_t num_down;
    bool stopping;
    uint64_t t0_ns;
    bool warming; /* keep-alive: the connections open (and shake hands) before the clock starts */
    uint64_t last_done_ns;
    uint64_t issued; /* open loop: requests sent so far (request k is due at t0 + k/rate) */
    uint64_t period_ns;
};

void bench_hist_add(struct bench_hist *h, uint64_t ns)
{
    size_t idx;
    if (ns < BENCH_HIST_SUB) {
        idx = ns;
    } else {
        unsigned e = 63u - (unsigned)__builtin_clzll(ns); /* >= 6 */
        size_t row = e - 5u;
        size_t sub = (size_t)((ns >> (e - 6u)) - BENCH_HIST_SUB);
        idx = row * BENCH_HIST_SUB + sub;
        if (row >= BENCH_HIST_EXP) {
            idx = BENCH_HIST_EXP * BENCH_HIST_SUB - 1;
        }
    }
    h->counts[idx]++;
    h->total++;
    h->max_ns = ns > h->max_ns ? ns : h->max_ns;
}

uint64_t bench_hist_quantile(const struct bench_hist *h, double q)
{
    if (h->total == 0) {
        return 0;
    }
    uint64_t target = (uint64_t)(q * (double)h->total + 0.999999);
    target = target == 0 ? 1 : target;
    uint64_t seen = 0;
    for (size_t i = 0; i < BENCH_HIST_EXP * BENCH_HIST_SUB; i++) {
        seen += h->counts[i];
        if (seen >= target) {
            size_t row = i / BENCH_HIST_SUB;
            uint64_t sub = i % BENCH_HIST_SUB;
            uint64_t v =
                row == 0 ? sub : ((BENCH_HIST_SUB + sub) << (row - 1)) + ((1ull << (row - 1)) / 2);
            return v < h->max_ns ? v : h->max_ns;
        }
    }
    return h->max_ns;
}

static void count_error(struct bench_load_result *res, const char *name)
{
    res->errors++;
    res->requests++;
    for (uint32_t i = 0; i < res->num_errs; i++) {
        if (strcmp(res->errs[i].name, name) == 0) {
            res->errs[i].count++;
            return;
        }
    }
    uint32_t i = res->num_errs;
    if (i == BENCH_ERROR_KINDS_MAX) {
        i = BENCH_ERROR_KINDS_MAX - 1; /* the last slot collects whatever does not fit */
        (void)base_str_copy(res->errs[i].name, sizeof(res->errs[i].name), "other");
    } else {
        res->num_errs++;
        (void)base_str_copy(res->errs[i].name, sizeof(res->errs[i].name), name);
    }
    res->errs[i].count++;
}

/* ---- requests, prebuilt once per CSR ---- */

static size_t b64(char *out, const uint8_t *in, size_t len)
{
    return EVP_EncodeBlock((uint8_t *)out, in, len);
}

static int build_req(struct req *r, uint8_t *buf, enum bench_proto proto, const struct bench_csr *c,
                     uint32_t user, bool close)
{
    const char *conn_close = close ? "Connection: close\r\n" : "";
    if (proto == BENCH_PROTO_OCSP) { /* RFC 6960 Appendix A.1: a DER body */
        int n = snprintf((char *)buf, LOAD_REQ_MAX,
                         "POST /CertProv/ocsp HTTP/1.1\r\nHost: %s\r\n%s"
                         "Content-Type: application/ocsp-request\r\nContent-Length: %u\r\n\r\n",
                         BENCH_TLS_NAME, conn_close, (unsigned)c->der_len);
        if (n <= 0 || (size_t)n + c->der_len > LOAD_REQ_MAX) {
            return -E2BIG;
        }
        memcpy(buf + n, c->der, c->der_len);
        *r = (struct req){.buf = buf, .len = (size_t)n + c->der_len};
        (void)user;
        return 0;
    }
    if (proto == BENCH_PROTO_HEALTHZ) {
        int n = snprintf((char *)buf, LOAD_REQ_MAX, "GET /healthz HTTP/1.1\r\nHost: %s\r\n%s\r\n",
                         BENCH_TLS_NAME, conn_close);
        ASSERT(n > 0 && (size_t)n < LOAD_REQ_MAX);
        *r = (struct req){.buf = buf, .len = (size_t)n};
        return 0;
    }
    char name[64];
    char ext[16];
    char pin[16];
    char cred[40];
    char auth[64];
    char csr64[BENCH_CSR_DER_MAX * 2];
    char body[LOAD_REQ_MAX];
    bench_user_fill(user, name, ext, pin);
    int n = snprintf(cred, sizeof(cred), "%s:%s", ext, pin);
    ASSERT(n > 0 && (size_t)n < sizeof(cred));
    b64(auth, (const uint8_t *)cred, (size_t)n);
    b64(csr64, c->der, c->der_len);
    if (proto == BENCH_PROTO_PHONE) {
        /* The RST of the phone's path (PROTOCOL-NOTES §2.5, as pidgin-sipe sends it: WS-Trust
         * 2005/02), the PIN in a UsernameToken; the client entropy kept for the proof key. */
        char e64[BASE_B64_LEN(PHONE_ENTROPY_LEN) + 1];
        RAND_bytes(r->entropy, sizeof(r->entropy));
        b64(e64, r->entropy, sizeof(r->entropy));
        n = snprintf(
            body, sizeof(body),
            "<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\"><s:Header>"
            "<wsse:Security xmlns:wsse=\"" NS_WSSE "\"><wsse:UsernameToken><wsse:Username>%s"
            "</wsse:Username><wsse:Password>%s</wsse:Password></wsse:UsernameToken>"
            "</wsse:Security></s:Header><s:Body><wst:RequestSecurityToken xmlns:wst=\""
            "http://schemas.xmlsoap.org/ws/2005/02/trust\" Context=\"bench-%u\">"
            "<wst:TokenType>http://docs.oasis-open.org/wss/oasis-wss-saml-token-profile-1.1"
            "#SAMLV1.1</wst:TokenType><wst:RequestType>http://schemas.xmlsoap.org/ws/2005/02/"
            "trust/Issue</wst:RequestType><wsp:AppliesTo xmlns:wsp=\"http://schemas.xmlsoap.org/"
            "ws/2004/09/policy\"><wsa:EndpointReference xmlns:wsa=\"http://www.w3.org/2005/08/"
            "addressing\"><wsa:Address>https://%s" PROOF_PATH "</wsa:Address>"
            "</wsa:EndpointReference></wsp:AppliesTo><wst:Entropy><wst:BinarySecret>%s"
            "</wst:BinarySecret></wst:Entropy><wst:KeyType>http://docs.oasis-open.org/ws-sx/"
            "ws-trust/200512/SymmetricKey</wst:KeyType></wst:RequestSecurityToken></s:Body>"
            "</s:Envelope>",
            ext, pin, user, BENCH_TLS_NAME, e64);
    } else if (proto != BENCH_PROTO_SOAP) {
        n = snprintf(body, sizeof(body), "%s", csr64);
    } else {
        n = snprintf(
            body, sizeof(body),
            "<?xml version=\"1.0\" encoding=\"utf-8\"?>"
            "<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\"><s:Header/>"
            "<s:Body><GetAndPublishCert xmlns=\"http://schemas.microsoft.com/OCS/AuthWebServices/\""
            " DeviceId=\"{2C9F6F43-8B0A-4E5D-9E0B-%012X}\" Entity=\"%s\">"
            "<wst:RequestSecurityToken xmlns:wst=\"http://docs.oasis-open.org/ws-sx/ws-trust/"
            "200512/\"><wst:TokenType>http://docs.oasis-open.org/wss/2004/01/"
            "oasis-200401-wss-x509-token-profile-1.0#X509v3</wst:TokenType>"
            "<wst:RequestType>http://docs.oasis-open.org/ws-sx/ws-trust/200512/Issue"
            "</wst:RequestType><wsse:BinarySecurityToken xmlns:wsse=\"http://docs.oasis-open.org/"
            "wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd\" ValueType=\"http://"
            "schemas.microsoft.com/windows/pki/2009/01/enrollment#PKCS10\" EncodingType=\"http://"
            "docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
            "#base64binary\">%s</wsse:BinarySecurityToken></wst:RequestSecurityToken>"
            "</GetAndPublishCert></s:Body></s:Envelope>",
            user, name, csr64);
    }
    ASSERT(n > 0 && (size_t)n < sizeof(body));
    size_t body_len = (size_t)n;
    /* simplereenroll carries no PIN: the client certificate is the credential (RFC 7030
     * §4.2.2; a PIN there is refused). */
    char auth_hdr[96] = "";
    if (proto != BENCH_PROTO_REENROLL && proto != BENCH_PROTO_PHONE) {
        snprintf(auth_hdr, sizeof(auth_hdr), "Authorization: Basic %s\r\n", auth);
    }
    bool soap = proto == BENCH_PROTO_SOAP || proto == BENCH_PROTO_PHONE;
    n = snprintf((char *)buf, LOAD_REQ_MAX,
                 "POST %s HTTP/1.1\r\nHost: %s\r\n%s%s"
                 "Content-Type: %s\r\n%sContent-Length: %zu\r\n\r\n",
                 proto == BENCH_PROTO_EST        ? EST_PATH
                 : proto == BENCH_PROTO_REENROLL ? REENROLL_PATH
                 : proto == BENCH_PROTO_PHONE    ? WT_PIN_PATH
                                                 : SOAP_PATH,
                 BENCH_TLS_NAME, auth_hdr, conn_close,
                 !soap ? "application/pkcs10" : "text/xml; charset=utf-8",
                 !soap                        ? ""
                 : proto == BENCH_PROTO_PHONE ? "SOAPAction: \"http://docs.oasis-open.org/"
                                                "ws-sx/ws-trust/200512/RST/Issue\"\r\n"
                                              : "SOAPAction: \"http://schemas.microsoft.com/OCS/"
                                                "AuthWebServices/GetAndPublishCert\"\r\n",
                 body_len);
    if (n <= 0 || (size_t)n + body_len > LOAD_REQ_MAX) {
        return -E2BIG;
    }
    memcpy(buf + n, body, body_len);
    r->buf = buf;
    r->len = (size_t)n + body_len;
    return 0;
}

/* ---- connections ---- */

static void conn_want_out(struct load *l, struct conn *c, bool out)
{
    if (c->want_out == out) {
        return;
    }
    struct epoll_event ev = {.events = EPOLLIN | (out ? EPOLLOUT : 0u), .data.ptr = c};
    int rc = epoll_ctl(l->ep, EPOLL_CTL_MOD, c->fd, &ev);
    ASSERT(rc == 0);
    c->want_out = out;
}

static void conn_close(struct load *l, struct conn *c, uint64_t retry_at_ns)
{
    if (c->ssl != NULL) {
        /* A clean close sends close_notify, as a phone's TLS stack does (best effort: the
         * server may have closed already); a failed connection is dropped quietly. */
        if (c->state == CONN_IDLE) {
            (void)SSL_shutdown(c->ssl);
        }
        SSL_free(c->ssl);
        c->ssl = NULL;
        ERR_clear_error();
    }
    if (c->fd >= 0) {
        (void)close(c->fd); /* a close error on a socket we are dropping changes nothing */
    }
    c->fd = -1;
    c->rlen = 0;
    c->due_ns = 0;
    c->state = CONN_DOWN;
    c->retry_at_ns = retry_at_ns;
    l->num_down++;
}

static void conn_fail(struct load *l, struct conn *c, const char *why, uint64_t now)
{
    bool was_busy = c->state == CONN_SENDING || c->state == CONN_WAITING;
    if (was_busy) {
        ASSERT(l->inflight > 0);
        l->inflight--;
        count_error(l->res, why);
    } else if (c->state == CONN_CONNECTING || c->state == CONN_HANDSHAKE) {
        count_error(l->res, why);
    }
    conn_close(l, c, now + (was_busy ? 0 : LOAD_RETRY_NS));
}

/* tls_fail names a TLS failure: the library's reason, or the certificate verdict. */
static void tls_fail(struct load *l, struct conn *c, const char *what, int err, uint64_t now)
{
    char name[BENCH_ERROR_NAME_MAX];
    long v = c->ssl != NULL ? SSL_get_verify_result(c->ssl) : X509_V_OK;
    if (err == SSL_ERROR_ZERO_RETURN || (err == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)) {
        snprintf(name, sizeof(name), "%s: conn closed", what);
    } else if (v != X509_V_OK) {
        snprintf(name, sizeof(name), "%s: %s", what, X509_verify_cert_error_string(v));
    } else {
        const char *r = ERR_reason_error_string(ERR_peek_error());
        snprintf(name, sizeof(name), "%s: %s", what, r != NULL ? r : "error");
    }
    ERR_clear_error();
    conn_fail(l, c, name, now);
}

/* new_session_cb keeps the session the server just gave (TLS 1.3: its NewSessionTicket; TLS
 * 1.2: the handshake's) as the slot's one session, for its next connection. */
static int new_session_cb(SSL *ssl, SSL_SESSION *sess)
{
    struct conn *c = SSL_get_app_data(ssl);
    ASSERT(c != NULL);
    SSL_SESSION_free(c->sess);
    c->sess = sess;
    return 1; /* we own it */
}

static int conn_tls_new(struct load *l, struct conn *c)
{
    c->ssl = SSL_new(l->tls);
    BIO *rbio = c->ssl != NULL ? BIO_new(BIO_s_mem()) : NULL; /* empty: a retry, not the end */
    if (rbio != NULL) {
        SSL_set0_rbio(c->ssl, rbio); /* owned by the SSL from here */
    }
    if (c->ssl == NULL || rbio == NULL || SSL_set_wfd(c->ssl, c->fd) != 1 ||
        SSL_set_app_data(c->ssl, c) != 1 ||
        SSL_set_tlsext_host_name(c->ssl, l->opt->tls_name) != 1 ||
        (l->opt->resume && c->sess != NULL && SSL_set_session(c->ssl, c->sess) != 1) ||
        (c->ident != NULL && (SSL_use_certificate(c->ssl, c->ident->cert) != 1 ||
                              SSL_use_PrivateKey(c->ssl, c->ident->key) != 1))) {
        return -ENOMEM;
    }
    SSL_set_connect_state(c->ssl);
    return 0;
}

static void dispatch(struct load *l, struct conn *c, uint64_t now);

/* tls_fill moves what the socket holds (one recv) into the connection's read BIO: > 0 bytes,
 * 0 at the end of the stream, -EAGAIN when nothing is there, -EIO. */
static ssize_t tls_fill(struct load *l, struct conn *c)
{
    ssize_t n = recv(c->fd, l->tls_in, sizeof(l->tls_in), 0);
    if (n == -1) {
        return errno == EAGAIN ? -EAGAIN : -EIO;
    }
    if (n > 0 && BIO_write(SSL_get_rbio(c->ssl), l->tls_in, (int)n) != (int)n) {
        return -EIO;
    }
    return n;
}

/* conn_handshake drives the TLS handshake as far as the socket allows. */
static void conn_handshake(struct load *l, struct conn *c, uint64_t now)
{
    ASSERT(c->state == CONN_HANDSHAKE);
    int r = SSL_do_handshake(c->ssl);
    while (r != 1 && SSL_get_error(c->ssl, r) == SSL_ERROR_WANT_READ) {
        ssize_t got = tls_fill(l, c);
        if (got == -EAGAIN) {
            conn_want_out(l, c, false);
            return;
        }
        if (got <= 0) {
            tls_fail(l, c, "tls handshake", SSL_ERROR_SYSCALL, now);
            return;
        }
        r = SSL_do_handshake(c->ssl);
    }
    if (r == 1) {
        if (SSL_session_reused(c->ssl)) {
            l->res->hs_resumed++;
        } else {
            l->res->hs_full++;
        }
        l->res->tls_group = SSL_get_curve_id(c->ssl);
        conn_want_out(l, c, false);
        c->state = CONN_IDLE;
        dispatch(l, c, now);
        return;
    }
    int err = SSL_get_error(c->ssl, r);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
        conn_want_out(l, c, err == SSL_ERROR_WANT_WRITE);
        return;
    }
    tls_fail(l, c, "tls handshake", err, now);
}

static void conn_open(struct load *l, struct conn *c, uint64_t now)
{
    ASSERT(c->state == CONN_DOWN);
    l->num_down--;
    c->open_ns = now;
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd == -1) {
        c->state = CONN_CONNECTING;
        conn_fail(l, c, "conn socket", now);
        return;
    }
    int one = 1;
    (void)setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->state = CONN_CONNECTING;
    if (l->tls != NULL && conn_tls_new(l, c) != 0) {
        conn_fail(l, c, "tls: no memory", now);
        return;
    }
    if (connect(c->fd, (const struct sockaddr *)&l->addr, sizeof(l->addr)) == -1 &&
        errno != EINPROGRESS) {
        conn_fail(l, c, "conn refused", now);
        return;
    }
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
    int rc = epoll_ctl(l->ep, EPOLL_CTL_ADD, c->fd, &ev);
    ASSERT(rc == 0);
    c->want_out = true;
}

static void conn_flush(struct load *l, struct conn *c, uint64_t now)
{
    ASSERT(c->state == CONN_SENDING);
    while (c->out_off < c->out_len) {
        const uint8_t *p = c->out + c->out_off;
        size_t len = c->out_len - c->out_off;
        ssize_t n;
        if (c->ssl != NULL) {
            int w = SSL_write(c->ssl, p, len > INT32_MAX ? INT32_MAX : (int)len);
            int err = w > 0 ? SSL_ERROR_NONE : SSL_get_error(c->ssl, w);
            if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
                conn_want_out(l, c, err == SSL_ERROR_WANT_WRITE);
                return;
            }
            if (err != SSL_ERROR_NONE) {
                tls_fail(l, c, "tls send", err, now);
                return;
            }
            n = w;
        } else {
            n = send(c->fd, p, len, MSG_NOSIGNAL);
            if (n == -1 && errno == EAGAIN) {
                conn_want_out(l, c, true);
                return;
            }
            if (n == -1) {
                conn_fail(l, c, "conn send", now);
                return;
            }
        }
        c->out_off += (size_t)n;
    }
    conn_want_out(l, c, false);
    c->state = CONN_WAITING;
}

static void conn_send(struct load *l, struct conn *c, uint64_t start_ns, uint64_t now)
{
    ASSERT(c->state == CONN_IDLE);
    const struct req *r;
    if (c->ident != NULL) {
        c->req_idx = c->ident->user; /* CSR u names user u (u < num_csrs: bench_load_run) */
    } else {
        c->req_idx = l->next_req;
        l->next_req = (l->next_req + 1) % l->opt->num_csrs;
    }
    r = &l->reqs[c->req_idx];
    c->ticket_phase = l->opt->proto == BENCH_PROTO_PHONE;
    c->out = r->buf;
    c->out_len = r->len;
    c->out_off = 0;
    c->rlen = 0;
    c->start_ns = start_ns;
    c->state = CONN_SENDING;
    l->inflight++;
    conn_flush(l, c, now);
}

/* dispatch gives an idle connection its next request, if one is due. */
static void dispatch(struct load *l, struct conn *c, uint64_t now)
{
    if (l->stopping || l->warming || c->state != CONN_IDLE) {
        return;
    }
    if (l->opt->rate <= 0) {
        /* A new connection per request: the phone's wait starts at its connect. */
        conn_send(l, c, l->opt->new_conn ? c->open_ns : now, now);
        return;
    }
    if (l->opt->new_conn) {
        /* Open loop: this connection was opened for a request that fell due (the load's
         * loop), whose latency counts from then: connect and handshake included. */
        if (c->due_ns != 0) {
            conn_send(l, c, c->due_ns, now);
            c->due_ns = 0;
        }
        return;
    }
    uint64_t due_ns = l->t0_ns + l->issued * l->period_ns;
    if (due_ns <= now) {
        l->issued++;
        conn_send(l, c, due_ns, now);
    }
}

/* parse_code extracts the API Code of an error answer: <Code>X</Code> (SOAP) or "X: reason"
 * (EST text/plain). */
static void parse_code(char *out, size_t cap, const uint8_t *body, size_t len)
{
    const char *b = (const char *)body;
    const char *start = memmem(b, len, "<Code>", 6);
    size_t n = 0;
    if (start != NULL) {
        start += 6;
    } else {
        start = b;
    }
    while (start + n < b + len && n + 1 < cap &&
           ((start[n] >= 'A' && start[n] <= 'Z') || (start[n] >= 'a' && start[n] <= 'z'))) {
        n++;
    }
    memcpy(out, start, n);
    out[n] = '\0';
}

/* header_value finds "Name:" among the header lines (case-insensitive) and returns its value. */
static const char *header_value(const char *h, size_t hlen, const char *name)
{
    size_t nlen = strlen(name);
    const char *end = h + hlen;
    for (const char *p = memchr(h, '\n', hlen); p != NULL && p + 1 + nlen < end;
         p = memchr(p + 1, '\n', (size_t)(end - p - 1))) {
        if (strncasecmp(p + 1, name, nlen) == 0 && p[1 + nlen] == ':') {
            const char *v = p + 2 + nlen;
            while (v < end && *v == ' ') {
                v++;
            }
            return v;
        }
    }
    return NULL;
}

/* conn_read reads what is there into rbuf: > 0 bytes, 0 at the end of the stream, -EAGAIN when
 * nothing (more) is there (TLS: also when only a post-handshake message such as a session
 * ticket came), or -EIO (the reason counted by the caller from *out_err). */
static ssize_t conn_read(struct load *l, struct conn *c, int *out_err)
{
    size_t cap = LOAD_RBUF_LEN - c->rlen;
    *out_err = SSL_ERROR_NONE;
    if (c->ssl == NULL) {
        ssize_t n = recv(c->fd, c->rbuf + c->rlen, cap, 0);
        return n == -1 ? (errno == EAGAIN ? -EAGAIN : -EIO) : n;
    }
    for (;;) {
        int n = SSL_read(c->ssl, c->rbuf + c->rlen, cap > INT32_MAX ? INT32_MAX : (int)cap);
        if (n > 0) {
            return n;
        }
        int err = SSL_get_error(c->ssl, n);
        if (err != SSL_ERROR_WANT_READ) {
            *out_err = err;
            return err == SSL_ERROR_ZERO_RETURN ? 0 : -EIO;
        }
        ssize_t got = tls_fill(l, c);
        if (got <= 0) {
            *out_err = SSL_ERROR_SYSCALL; /* the stream ended inside a record, or failed */
            return got == -EAGAIN ? -EAGAIN : got == 0 ? 0 : -EIO;
        }
    }
}

/* ocsp_successful: the body is an OCSPResponse whose responseStatus is successful (0) and that
 * carries responseBytes (RFC 6960 §4.2.1). */
static bool ocsp_successful(const uint8_t *body, size_t len)
{
    CBS cbs, resp, status;
    CBS_init(&cbs, body, len);
    return CBS_get_asn1(&cbs, &resp, CBS_ASN1_SEQUENCE) &&
           CBS_get_asn1(&resp, &status, CBS_ASN1_ENUMERATED) && CBS_len(&status) == 1 &&
           CBS_data(&status)[0] == 0 &&
           CBS_peek_asn1_tag(&resp, CBS_ASN1_CONTEXT_SPECIFIC | CBS_ASN1_CONSTRUCTED | 0);
}

/* ---- the phone's GetAndPublishCert, made from the ticket's answer ---- */

/* p_sha1 writes out_len bytes of P_SHA1(secret, seed) (RFC 2246 §5; WS-Trust 1.3 §4.4.5). */
static void p_sha1(uint8_t *out, size_t out_len, const uint8_t *secret, size_t secret_len,
                   const uint8_t *seed, size_t seed_len)
{
    uint8_t a[SHA_DIGEST_LENGTH];
    uint8_t in[SHA_DIGEST_LENGTH + 64];
    uint8_t block[SHA_DIGEST_LENGTH];
    unsigned int n = 0;
    ASSERT(seed_len <= 64);
    ASSERT(HMAC(EVP_sha1(), secret, secret_len, seed, seed_len, a, &n) != NULL);
    for (size_t done = 0; done < out_len; done += n) {
        memcpy(in, a, sizeof(a));
        memcpy(in + sizeof(a), seed, seed_len);
        ASSERT(HMAC(EVP_sha1(), secret, secret_len, in, sizeof(a) + seed_len, block, &n) != NULL);
        memcpy(out + done, block, out_len - done < n ? out_len - done : n);
        ASSERT(HMAC(EVP_sha1(), secret, secret_len, a, sizeof(a), a, &n) != NULL);
    }
}

/* between returns the bytes after the first `open` up to the next `close` in b[0..len). */
static const char *between(size_t *out_len, const char *b, size_t len, const char *open,
                           const char *close)
{
    const char *s = memmem(b, len, open, strlen(open));
    if (s == NULL) {
        return NULL;
    }
    s += strlen(open);
    const char *e = memmem(s, len - (size_t)(s - b), close, strlen(close));
    if (e == NULL) {
        return NULL;
    }
    *out_len = (size_t)(e - s);
    return s;
}

/* phone_enroll reads the RSTR body[0..len) (the assertion verbatim, the server entropy, KeySize),
 * derives the proof key and sends GetAndPublishCert to the Web ticket port: a Timestamp and
 * SignedInfo written in their exclusive-c14n form, the assertion, the HMAC-SHA1 proof. Returns
 * false when the answer holds no usable ticket. */
static bool phone_enroll(struct load *l, struct conn *c, const uint8_t *body, size_t len,
                         uint64_t now)
{
    const char *b = (const char *)body;
    const char *as = memmem(b, len, "<saml:Assertion ", 16);
    const char *ae =
        as != NULL ? memmem(as, len - (size_t)(as - b), "</saml:Assertion>", 17) : NULL;
    if (ae == NULL) {
        return false;
    }
    ae += 17;
    size_t id_len = 0;
    size_t sec_len = 0;
    size_t ks_len = 0;
    const char *id = between(&id_len, as, (size_t)(ae - as), "AssertionID=\"", "\"");
    const char *rest = ae;
    size_t rest_len = len - (size_t)(ae - b);
    const char *sec = between(&sec_len, rest, rest_len, "<BinarySecret", "</BinarySecret>");
    const char *ks = between(&ks_len, rest, rest_len, "<KeySize>", "</KeySize>");
    const char *gt = sec != NULL ? memchr(sec, '>', sec_len) : NULL;
    uint8_t server[64];
    size_t server_len = 0;
    size_t key_len = ks != NULL ? strtoul(ks, NULL, 10) / 8 : 32;
    if (id == NULL || id_len == 0 || id_len > 200 || gt == NULL || key_len < 16 || key_len > 64 ||
        !EVP_DecodeBase64(server, &server_len, sizeof(server), (const uint8_t *)gt + 1,
                          sec_len - (size_t)(gt + 1 - sec))) {
        return false;
    }
    const struct req *r = &l->reqs[c->req_idx];
    uint8_t key[64];
    p_sha1(key, key_len, r->entropy, sizeof(r->entropy), server, server_len);
    char created[32];
    char expires[32];
    time_t t = time(NULL);
    struct tm tm;
    ASSERT(gmtime_r(&t, &tm) != NULL);
    strftime(created, sizeof(created), "%Y-%m-%dT%H:%M:%SZ", &tm);
    t += 300;
    ASSERT(gmtime_r(&t, &tm) != NULL);
    strftime(expires, sizeof(expires), "%Y-%m-%dT%H:%M:%SZ", &tm);
    char ts[400];
    int n = snprintf(ts, sizeof(ts),
                     "<wsu:Timestamp xmlns:wsu=\"" NS_WSU "\" wsu:Id=\"timestamp\"><wsu:Created>%s"
                     "</wsu:Created><wsu:Expires>%s</wsu:Expires></wsu:Timestamp>",
                     created, expires);
    ASSERT(n > 0 && (size_t)n < sizeof(ts));
    uint8_t d[SHA_DIGEST_LENGTH];
    SHA1((const uint8_t *)ts, (size_t)n, d);
    char d64[BASE_B64_LEN(SHA_DIGEST_LENGTH) + 1];
    b64(d64, d, sizeof(d));
    char si[900];
    n = snprintf(si, sizeof(si),
                 "<SignedInfo xmlns=\"" NS_DS "\"><CanonicalizationMethod Algorithm=\"" NS_EXC
                 "\"></CanonicalizationMethod><SignatureMethod Algorithm=\"" NS_DS
                 "hmac-sha1\"></SignatureMethod><Reference URI=\"#timestamp\"><Transforms>"
                 "<Transform Algorithm=\"" NS_EXC "\"></Transform></Transforms><DigestMethod "
                 "Algorithm=\"" NS_DS "sha1\"></DigestMethod><DigestValue>%s</DigestValue>"
                 "</Reference></SignedInfo>",
                 d64);
    ASSERT(n > 0 && (size_t)n < sizeof(si));
    uint8_t mac[SHA_DIGEST_LENGTH];
    unsigned int mac_len = 0;
    ASSERT(HMAC(EVP_sha1(), key, key_len, (const uint8_t *)si, (size_t)n, mac, &mac_len) != NULL);
    char mac64[BASE_B64_LEN(SHA_DIGEST_LENGTH) + 1];
    b64(mac64, mac, mac_len);
    char name[64];
    char ext[16];
    char pin[16];
    bench_user_fill(c->req_idx % l->opt->num_users, name, ext, pin);
    const struct bench_csr *csr = &l->opt->csrs[c->req_idx];
    char csr64[BENCH_CSR_DER_MAX * 2];
    b64(csr64, csr->der, csr->der_len);
    /* The body after the head: the head's Content-Length is written once the body's size is
     * known, so the body goes at a fixed offset and the head is moved before it. */
    char *out = (char *)c->buf2;
    const size_t head_max = 512;
    int bl = snprintf(
        out + head_max, LOAD_REQ2_MAX - head_max,
        "<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\"><s:Header>"
        "<wsse:Security xmlns:wsse=\"" NS_WSSE "\">%s%.*s<Signature xmlns=\"" NS_DS "\">%s"
        "<SignatureValue>%s</SignatureValue><KeyInfo><wsse:SecurityTokenReference>"
        "<wsse:KeyIdentifier ValueType=\"http://docs.oasis-open.org/wss/"
        "oasis-wss-saml-token-profile-1.0#SAMLAssertionID\">%.*s</wsse:KeyIdentifier>"
        "</wsse:SecurityTokenReference></KeyInfo></Signature></wsse:Security></s:Header>"
        "<s:Body><GetAndPublishCert xmlns=\"http://schemas.microsoft.com/OCS/AuthWebServices/\""
        " DeviceId=\"{2C9F6F43-8B0A-4E5D-9E0B-%012X}\" Entity=\"%s\">"
        "<wst:RequestSecurityToken xmlns:wst=\"http://docs.oasis-open.org/ws-sx/ws-trust/"
        "200512\"><wst:TokenType>http://docs.oasis-open.org/wss/2004/01/"
        "oasis-200401-wss-x509-token-profile-1.0#X509v3</wst:TokenType>"
        "<wst:RequestType>http://docs.oasis-open.org/ws-sx/ws-trust/200512/Issue"
        "</wst:RequestType><wsse:BinarySecurityToken xmlns:wsse=\"" NS_WSSE "\" ValueType=\""
        "http://schemas.microsoft.com/OCS/AuthWebServices.xsd#PKCS10\">%s"
        "</wsse:BinarySecurityToken></wst:RequestSecurityToken></GetAndPublishCert></s:Body>"
        "</s:Envelope>",
        ts, (int)(ae - as), as, si, mac64, (int)id_len, id, c->req_idx % l->opt->num_users, name,
        csr64);
    if (bl <= 0 || (size_t)bl >= LOAD_REQ2_MAX - head_max) {
        return false;
    }
    char head[512];
    int hl = snprintf(head, sizeof(head),
                      "POST " PROOF_PATH " HTTP/1.1\r\nHost: %s\r\n"
                      "Content-Type: text/xml; charset=utf-8\r\nSOAPAction: \"http://"
                      "schemas.microsoft.com/OCS/AuthWebServices/GetAndPublishCert\"\r\n"
                      "Content-Length: %d\r\n\r\n",
                      BENCH_TLS_NAME, bl);
    ASSERT(hl > 0 && (size_t)hl <= head_max);
    memcpy(out + head_max - (size_t)hl, head, (size_t)hl);
    c->out = c->buf2 + head_max - (size_t)hl;
    c->out_len = (size_t)hl + (size_t)bl;
    c->out_off = 0;
    c->rlen = 0;
    c->state = CONN_SENDING;
    conn_flush(l, c, now);
    return true;
}

/* conn_answer looks at what was read: returns false while the answer is incomplete; else it is
 * accounted and the connection is idle (or closed when the server said Connection: close). */
static bool conn_answer(struct load *l, struct conn *c, uint64_t now)
{
    const uint8_t *hend = memmem(c->rbuf, c->rlen, "\r\n\r\n", 4);
    if (hend == NULL) {
        if (c->rlen == LOAD_RBUF_LEN) {
            conn_fail(l, c, "answer too large", now);
            return true;
        }
        return false;
    }
    size_t hlen = (size_t)(hend - c->rbuf) + 4;
    const char *h = (const char *)c->rbuf;
    const char *cl = header_value(h, hlen, "Content-Length");
    if (c->rlen < 12 || memcmp(h, "HTTP/1.1 ", 9) != 0 || cl == NULL) {
        conn_fail(l, c, "bad answer", now);
        return true;
    }
    size_t body_len = strtoul(cl, NULL, 10);
    if (hlen + body_len > LOAD_RBUF_LEN) {
        conn_fail(l, c, "answer too large", now);
        return true;
    }
    if (c->rlen < hlen + body_len) {
        return false;
    }
    int status = atoi(h + 9);
    const char *conn_hdr = header_value(h, hlen, "Connection");
    bool close_after = conn_hdr != NULL && strncasecmp(conn_hdr, "close", 5) == 0;
    const char *phase = "";
    if (c->ticket_phase) {
        /* The phone's ticket: GetAndPublishCert follows on this connection, the same request
         * still in flight; a refused or unusable ticket is this request's error. */
        c->ticket_phase = false;
        if (status == 200 && !close_after && c->rlen == hlen + body_len &&
            phone_enroll(l, c, c->rbuf + hlen, body_len, now)) {
            return true;
        }
        phase = "ticket ";
        status = status == 200 ? 297 : status; /* 297: a 200 without a usable ticket */
    }
    ASSERT(l->inflight > 0);
    l->inflight--;
    l->last_done_ns = now;
    if (status == 200 && l->opt->proto == BENCH_PROTO_OCSP &&
        !ocsp_successful(c->rbuf + hlen, body_len)) {
        status = 299; /* an OCSP error status in a 200: counted as an error, not an answer */
    }
    if (status == 200 && body_len > 0) {
        l->res->requests++;
        l->res->enrollments++;
        bench_hist_add(l->res->hist, now - c->start_ns);
    } else {
        char code[32];
        char name[BENCH_ERROR_NAME_MAX];
        parse_code(code, sizeof(code), c->rbuf + hlen, body_len);
        snprintf(name, sizeof(name), "%s%d %s", phase, status, code);
        count_error(l->res, name);
    }
    bool extra = c->rlen > hlen + body_len; /* we never pipeline: bytes nobody asked for */
    c->state = CONN_IDLE;
    c->rlen = 0;
    if (close_after || extra || l->opt->new_conn) {
        conn_close(l, c, now);
        return true;
    }
    dispatch(l, c, now);
    return true;
}

/* conn_recv reads until the socket (and TLS's buffer) is empty or an answer is complete. TLS
 * may hold decrypted bytes that epoll cannot see, hence the loop; bounded by rbuf. */
static void conn_recv(struct load *l, struct conn *c, uint64_t now)
{
    for (;;) {
        int err = SSL_ERROR_NONE;
        ssize_t n = conn_read(l, c, &err);
        if (n == -EAGAIN) {
            return;
        }
        if (n <= 0 || c->state != CONN_WAITING) {
            if (c->ssl != NULL && n < 0) {
                tls_fail(l, c, "tls recv", err, now);
            } else {
                conn_fail(l, c, n == 0 ? "conn closed" : "conn reset", now);
            }
            return;
        }
        c->rlen += (size_t)n;
        if (conn_answer(l, c, now)) {
            return;
        }
    }
}

static void on_event(struct load *l, struct conn *c, uint32_t events, uint64_t now)
{
    if (c->state == CONN_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof(err);
        if ((events & (EPOLLERR | EPOLLHUP)) != 0 ||
            getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1 || err != 0) {
            conn_fail(l, c, "conn refused", now);
            return;
        }
        if (c->ssl != NULL) {
            c->state = CONN_HANDSHAKE;
            conn_handshake(l, c, now);
            return;
        }
        c->state = CONN_IDLE;
        conn_want_out(l, c, false);
        dispatch(l, c, now);
        return;
    }
    if (c->state == CONN_HANDSHAKE) {
        conn_handshake(l, c, now);
        return;
    }
    if (c->state == CONN_SENDING && (events & EPOLLOUT) != 0) {
        conn_flush(l, c, now);
    }
    if (c->state != CONN_DOWN && (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) != 0) {
        conn_recv(l, c, now);
    }
}

/* ---- the run ---- */

/* tls_ctx_new makes the client context of a run: TLS 1.2 and 1.3, the server's chain verified
 * against the store's chain.pem and its certificate against the name, ALPN http/1.1, and with
 * resumption a client session cache of our own (one session per slot, new_session_cb). */
static SSL_CTX *tls_ctx_new(const struct bench_load_options *opt)
{
    static const uint8_t alpn[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
    SSL_CTX *ctx = SSL_CTX_new(TLS_method());
    if (ctx == NULL || SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
        SSL_CTX_set_max_proto_version(ctx, opt->tls12 ? TLS1_2_VERSION : TLS1_3_VERSION) != 1 ||
        SSL_CTX_load_verify_locations(ctx, opt->tls_ca_file, NULL) != 1 ||
        X509_VERIFY_PARAM_set1_host(SSL_CTX_get0_param(ctx), opt->tls_name,
                                    strlen(opt->tls_name)) != 1 ||
        SSL_CTX_set_alpn_protos(ctx, alpn, sizeof(alpn)) != 0) {
        fprintf(stderr, "certprov-bench: TLS client context (CA file %s): %s\n", opt->tls_ca_file,
                ERR_reason_error_string(ERR_peek_error()));
        ERR_clear_error();
        SSL_CTX_free(ctx);
        return NULL;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (opt->resume) {
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL);
        SSL_CTX_sess_set_new_cb(ctx, new_session_cb);
    } else {
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    }
    return ctx;
}

static int load_init(struct load *l, const struct bench_load_options *opt,
                     struct bench_load_result *res)
{
    *l = (struct load){.opt = opt, .res = res, .ep = -1};
    l->addr.sin_family = AF_INET;
    l->addr.sin_port = htons(opt->port);
    if (inet_pton(AF_INET, opt->host, &l->addr.sin_addr) != 1) {
        return -EINVAL;
    }
    res->hist = calloc(1, sizeof(*res->hist));
    l->conns = calloc(opt->concurrency, sizeof(*l->conns));
    l->reqs = calloc(opt->num_csrs, sizeof(*l->reqs));
    size_t conn_len = LOAD_RBUF_LEN + (opt->proto == BENCH_PROTO_PHONE ? LOAD_REQ2_MAX : 0);
    l->arena = malloc((size_t)opt->num_csrs * LOAD_REQ_MAX + (size_t)opt->concurrency * conn_len);
    if (res->hist == NULL || l->conns == NULL || l->reqs == NULL || l->arena == NULL) {
        return -ENOMEM;
    }
    for (uint32_t i = 0; i < opt->num_csrs; i++) {
        int rc = build_req(&l->reqs[i], l->arena + (size_t)i * LOAD_REQ_MAX, opt->proto,
                           &opt->csrs[i], i % opt->num_users, opt->new_conn);
        if (rc != 0) {
            return rc;
        }
    }
    uint8_t *rbufs = l->arena + (size_t)opt->num_csrs * LOAD_REQ_MAX;
    for (uint32_t i = 0; i < opt->concurrency; i++) {
        uint8_t *cb = rbufs + (size_t)i * conn_len;
        l->conns[i] = (struct conn){.fd = -1, .rbuf = cb};
        if (opt->proto == BENCH_PROTO_PHONE) {
            l->conns[i].buf2 = cb + LOAD_RBUF_LEN;
        }
        if (opt->num_idents > 0) {
            l->conns[i].ident = &opt->idents[i % opt->num_idents];
        }
    }
    if (opt->tls_ca_file != NULL && (l->tls = tls_ctx_new(opt)) == NULL) {
        return -EINVAL;
    }
    l->num_down = opt->concurrency;
    l->ep = epoll_create1(EPOLL_CLOEXEC);
    if (l->ep == -1) {
        return -errno;
    }
    if (opt->rate > 0) {
        l->period_ns = (uint64_t)(1e9 / opt->rate);
        l->period_ns = l->period_ns == 0 ? 1 : l->period_ns;
    }
    return 0;
}

static void load_cleanup(struct load *l)
{
    for (uint32_t i = 0; l->conns != NULL && i < l->opt->concurrency; i++) {
        SSL_free(l->conns[i].ssl);
        SSL_SESSION_free(l->conns[i].sess);
        if (l->conns[i].fd >= 0) {
            (void)close(l->conns[i].fd);
        }
    }
    SSL_CTX_free(l->tls);
    if (l->ep >= 0) {
        (void)close(l->ep);
    }
    free(l->conns);
    free(l->reqs);
    free(l->arena);
}

static uint64_t next_wake_ns(const struct load *l, uint64_t now, uint64_t deadline_ns,
                             uint64_t end_ns)
{
    uint64_t wake = l->stopping ? end_ns : deadline_ns;
    if (!l->stopping && l->opt->rate > 0) {
        uint64_t due = l->t0_ns + l->issued * l->period_ns;
        wake = due < wake ? due : wake;
    }
    if (!l->stopping && l->num_down > 0) {
        wake = now + 10000000u < wake ? now + 10000000u : wake;
    }
    return wake;
}

static double thread_cpu_s(void)
{
    struct rusage ru;
    int rc = getrusage(RUSAGE_THREAD, &ru);
    ASSERT(rc == 0);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
           ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) / 1e6;
}

/* load_wait waits at most wait_ns for events and handles them: 0, or -errno of the wait. */
static int load_wait(struct load *l, uint64_t wait_ns)
{
    struct epoll_event evs[LOAD_EVENTS_MAX];
    struct timespec ts = {.tv_sec = (time_t)(wait_ns / 1000000000u),
                          .tv_nsec = (long)(wait_ns % 1000000000u)};
    int n = epoll_pwait2(l->ep, evs, LOAD_EVENTS_MAX, &ts, NULL);
    if (n == -1) {
        return errno == EINTR ? 0 : -errno;
    }
    uint64_t now = clock_mono_ns();
    for (int i = 0; i < n; i++) {
        on_event(l, evs[i].data.ptr, evs[i].events, now);
    }
    return 0;
}

/* warm_up opens every connection of a keep-alive run and lets it connect (and finish its TLS
 * handshake) before the clock starts, at most LOAD_WARM_NS: the runs measure established
 * connections (the handshakes are soap-tls's and tls-full's subject); an open loop's first
 * requests otherwise waited behind 256 handshakes, its p99 up to ~75 ms (est-tls at 6,700/s).
 * A connection that fails here counts its error and retries in the run, as any other. */
static void warm_up(struct load *l)
{
    if (l->opt->new_conn) {
        return;
    }
    l->warming = true;
    uint64_t until = clock_mono_ns() + LOAD_WARM_NS;
    for (;;) {
        uint64_t now = clock_mono_ns();
        uint32_t idle = 0;
        for (uint32_t i = 0; i < l->opt->concurrency; i++) {
            struct conn *c = &l->conns[i];
            if (c->state == CONN_DOWN && c->retry_at_ns <= now) {
                conn_open(l, c, now);
            }
            idle += c->state == CONN_IDLE ? 1 : 0;
        }
        if (idle == l->opt->concurrency || now >= until || load_wait(l, 10000000u) != 0) {
            break;
        }
    }
    l->warming = false;
}

int bench_load_run(struct bench_load_result *out, const struct bench_load_options *opt)
{
    ASSERT(opt->concurrency > 0 && opt->concurrency <= BENCH_CONNS_MAX);
    ASSERT(opt->num_csrs > 0 && opt->num_users > 0);
    ASSERT(opt->duration_s > 0);
    ASSERT(opt->num_idents == 0 || opt->tls_ca_file != NULL);
    for (uint32_t i = 0; i < opt->num_idents; i++) {
        ASSERT(opt->idents[i].user < opt->num_csrs && opt->idents[i].user < opt->num_users);
    }
    memset(out, 0, sizeof(*out));
    struct load l;
    int rc = load_init(&l, opt, out);
    if (rc != 0) {
        load_cleanup(&l);
        free(out->hist);
        out->hist = NULL;
        return rc;
    }
    warm_up(&l);
    double cpu0 = thread_cpu_s();
    l.t0_ns = clock_mono_ns();
    l.last_done_ns = l.t0_ns;
    uint64_t deadline_ns = l.t0_ns + (uint64_t)(opt->duration_s * 1e9);
    uint64_t end_ns = deadline_ns + (uint64_t)(opt->drain_s * 1e9);
    for (uint32_t i = 0; i < opt->concurrency; i++) {
        dispatch(&l, &l.conns[i], l.t0_ns); /* closed loop: the warmed-up connections start */
    }
    /* The event loop: bounded by end_ns (the duration plus the drain), checked every turn. */
    for (;;) {
        uint64_t now = clock_mono_ns();
        if (!l.stopping && (now >= deadline_ns || (opt->max_enrollments > 0 &&
                                                   out->enrollments >= opt->max_enrollments))) {
            l.stopping = true;
        }
        if (l.stopping && (l.inflight == 0 || now >= end_ns)) {
            break;
        }
        for (uint32_t i = 0; !l.stopping && l.num_down > 0 && i < opt->concurrency; i++) {
            struct conn *c = &l.conns[i];
            if (c->state != CONN_DOWN || c->retry_at_ns > now) {
                continue;
            }
            if (opt->rate > 0 && opt->new_conn) {
                /* Open loop with a new connection per request: open one when one is due. */
                uint64_t due = l.t0_ns + l.issued * l.period_ns;
                if (due > now) {
                    break;
                }
                l.issued++;
                conn_open(&l, c, now);
                c->due_ns = c->state == CONN_DOWN ? 0 : due;
                continue;
            }
            conn_open(&l, c, now);
        }
        for (uint32_t i = 0; opt->rate > 0 && !l.stopping && i < opt->concurrency; i++) {
            dispatch(&l, &l.conns[i], now); /* open loop: what fell due while all were busy */
        }
        uint64_t wake = next_wake_ns(&l, now, deadline_ns, end_ns);
        rc = load_wait(&l, wake > now ? wake - now : 0);
        if (rc != 0) {
            break;
        }
    }
    for (uint32_t i = 0; i < l.inflight; i++) {
        count_error(out, "timeout (drain)");
    }
    for (uint32_t i = 0; i < opt->concurrency; i++) {
        l.issued -= l.conns[i].due_ns != 0 ? 1 : 0; /* still connecting when the run stopped */
    }
    if (opt->rate > 0) {
        uint64_t due = (uint64_t)(opt->duration_s * opt->rate);
        out->backlog_max = due > l.issued ? due - l.issued : 0; /* never sent: generator bound */
    }
    out->elapsed_s = (double)(l.last_done_ns - l.t0_ns) / 1e9;
    out->client_cpu_s = thread_cpu_s() - cpu0;
    load_cleanup(&l);
    return rc;
}

/* ---- idle connections ---- */

uint32_t bench_idle_open(int *fds, uint32_t num, const char *host, uint16_t port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    if (inet_pton(AF_INET, host, &a.sin_addr) != 1) {
        return 0;
    }
    static const char get[] = "GET /healthz HTTP/1.1\r\nHost: certprov\r\n\r\n";
    struct timeval tv = {.tv_sec = 2};
    uint32_t open = 0;
    for (uint32_t i = 0; i < num; i++) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        char buf[512];
        if (fd == -1) {
            break;
        }
        (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        if (connect(fd, (const struct sockaddr *)&a, sizeof(a)) == -1 ||
            send(fd, get, sizeof(get) - 1, MSG_NOSIGNAL) != (ssize_t)(sizeof(get) - 1) ||
            recv(fd, buf, sizeof(buf), 0) <= 0) {
            (void)close(fd);
            break;
        }
        fds[open++] = fd;
    }
    return open;
}

void bench_idle_close(int *fds, uint32_t num)
{
    for (uint32_t i = 0; i < num; i++) {
        (void)close(fds[i]);
        fds[i] = -1;
    }
}
