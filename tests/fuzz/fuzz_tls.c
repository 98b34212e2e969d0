/* fuzz_tls: libFuzzer harness for the TLS transport (ioring/tls.c) on a connection in memory, as
 * fuzz_http drives the HTTP input path. data[0] picks how the server's input is cut into reads
 * (1..256 bytes), data[1] the mode:
 *   even: the rest is raw wire bytes from a client (ClientHellos, records, garbage);
 *   odd:  a real handshake with an in-process BoringSSL client first (TLS 1.2 or 1.3 by bit 1),
 *         then the rest is plaintext the client sends through the session (HTTP requests), its
 *         records cut into reads and, with bit 2, one byte of them flipped (data[2] picks which).
 * Answers are taken out of the pipeline and encrypted as the ring's sends would, and the client
 * reads them. Checked: no crash, sanitizer report, leak or ASSERT; a completed handshake with a
 * good client; every slot and client count back when the connection goes. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/ec_key.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/nid.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "base/base.h"
#include "ioring/internal.h"
#include "tests/fuzz/fuzz_ring.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_ROUNDS_MAX 64 /* handshake round trips */

static struct ioring_engine eng;
static struct ring ring;
static struct conn conn;
static SSL_CTX *client_ctx;

static void handler(void *ctx, struct ioring_request *req)
{
    (void)ctx;
    size_t blen = 0;
    const uint8_t *body = ioring_request_body(req, &blen);
    ASSERT(ioring_request_tls(req) != IORING_TLS_NONE);
    const uint8_t *der = NULL;
    size_t len = 0;
    ASSERT(ioring_request_client_cert(req, &der, &len) == IORING_CERT_NONE);
    ASSERT(ioring_request_respond(req, 200, "text/plain", NULL, body, blen) == 0);
}

/* make_files writes a P-256 key and a self-signed certificate for the server into a new
 * directory; returns its path (static). */
static const char *make_files(void)
{
    static char dir[] = "/tmp/fuzz-tls-XXXXXX";
    ASSERT(mkdtemp(dir) != NULL);
    EC_KEY *ec = EC_KEY_new_by_curve_name(NID_X9_62_prime256v1);
    ASSERT(ec != NULL && EC_KEY_generate_key(ec) == 1);
    EVP_PKEY *key = EVP_PKEY_new();
    ASSERT(key != NULL && EVP_PKEY_assign_EC_KEY(key, ec) == 1);
    X509 *x = X509_new();
    ASSERT(x != NULL && X509_set_version(x, X509_VERSION_3) == 1);
    ASSERT(ASN1_INTEGER_set(X509_get_serialNumber(x), 1) == 1);
    X509_NAME *name = X509_get_subject_name(x);
    ASSERT(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const uint8_t *)"fuzz", -1, -1,
                                      0) == 1);
    ASSERT(X509_set_issuer_name(x, name) == 1);
    ASSERT(X509_gmtime_adj(X509_getm_notBefore(x), -3600) != NULL);
    ASSERT(X509_gmtime_adj(X509_getm_notAfter(x), 86400) != NULL);
    ASSERT(X509_set_pubkey(x, key) == 1 && X509_sign(x, key, EVP_sha256()) > 0);
    char path[64];
    snprintf(path, sizeof(path), "%s/crt.pem", dir);
    FILE *f = fopen(path, "w");
    ASSERT(f != NULL && PEM_write_X509(f, x) == 1 && fclose(f) == 0);
    snprintf(path, sizeof(path), "%s/key.pem", dir);
    f = fopen(path, "w");
    ASSERT(f != NULL && PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL) == 1);
    ASSERT(fclose(f) == 0);
    X509_free(x);
    EVP_PKEY_free(key);
    return dir;
}

static void setup(void)
{
    log_setup("fuzz_tls", LOG_LEVEL_ERR);
    const char *dir = make_files();
    char crt[64], key[64], err[IORING_TLS_ERR_MAX];
    snprintf(crt, sizeof(crt), "%s/crt.pem", dir);
    snprintf(key, sizeof(key), "%s/key.pem", dir);
    struct ioring_tls_options to = {.cert_file = crt, .key_file = key, .client_ca_file = crt};
    struct ioring_tls *tls = NULL;
    ASSERT(ioring_tls_new(&tls, err, &to) == 0);
    fuzz_ring_setup(&eng, &ring, &conn, handler, tls);
    client_ctx = SSL_CTX_new(TLS_method());
    ASSERT(client_ctx != NULL);
}

static void conn_start(void)
{
    ring.slot_free_len = 0;
    for (uint32_t i = 0; i < FUZZ_INFLIGHT; i++) {
        ASSERT(ring.slots[i].state == SLOT_FREE);
        ring.slot_free[ring.slot_free_len++] = FUZZ_INFLIGHT - 1 - i;
    }
    ring.done_head = 0;
    ring.done_count = 0;
    uint8_t *buf = conn.head.buf;
    memset(&conn, 0, sizeof(conn));
    conn.head.buf = buf;
    conn.ring = &ring;
    conn.state = CONN_OPEN;
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
    conn.tp = &transport_tls;
    ASSERT(conn.tp->open(&conn) == 0);
    ASSERT(conn.tls != NULL);
}

/* answers_out gives every ready answer to the transport in order, as conn_pump and the send
 * completions would (the sends themselves are wire_to_client). */
static void answers_out(void)
{
    while (ring.done_count > 0) {
        struct ioring_request *s = &ring.slots[ring.done[ring.done_head]];
        ring.done_head = (ring.done_head + 1) % FUZZ_INFLIGHT;
        ring.done_count--;
        ASSERT(s->state == SLOT_HANDLER);
        s->state = SLOT_DONE;
    }
    while (conn.pipe_count > 0 && conn.tp->ready(&conn)) {
        struct pipe_entry e = conn.pipe[conn.pipe_head];
        static char canned[CANNED_MAX];
        int rc = 0;
        if (e.slot != SLOT_NONE) {
            struct ioring_request *s = &ring.slots[e.slot];
            if (s->state != SLOT_DONE) {
                return;
            }
            rc = conn.tp->output(&conn, s->resp, s->resp_len, e.close);
        } else {
            size_t len = http_canned_format(canned, sizeof(canned), e.status, e.close, 1);
            rc = conn.tp->output(&conn, (const uint8_t *)canned, len, e.close);
        }
        conn.pipe_head = (conn.pipe_head + 1) % IORING_PIPELINE_MAX;
        conn.pipe_count--;
        if (e.slot != SLOT_NONE) {
            slot_put(&ring, &ring.slots[e.slot]);
        }
        if (rc != 0 || e.close) {
            conn.stop_parsing = true;
            return;
        }
    }
}

/* wire_to_client takes what the server queued, as completed sends would, and gives it to the
 * client (NULL: dropped). Bounded: each pass consumes what wire returned. */
static void wire_to_client(BIO *client_in)
{
    for (;;) {
        const uint8_t *p = NULL;
        size_t n = conn.tp->wire(&conn, &p);
        if (n == 0) {
            return;
        }
        if (client_in != NULL) {
            ASSERT(BIO_write(client_in, p, (int)n) == (int)n);
        }
        conn.tp->sent(&conn, n);
    }
}

/* server_in feeds `len` bytes to the server in reads of `cut`. Returns false once it failed
 * (the ring would close the connection). */
static bool server_in(const uint8_t *p, size_t len, size_t cut, BIO *client_in)
{
    for (size_t off = 0; off < len; off += cut) {
        size_t n = len - off < cut ? len - off : cut;
        if (conn.stop_parsing) {
            return false;
        }
        int rc = conn.tp->input(&conn, p + off, n);
        answers_out();
        wire_to_client(client_in);
        if (rc != 0) {
            return false;
        }
    }
    return true;
}

static void conn_end(void)
{
    for (uint32_t i = 0; i < conn.pipe_count; i++) {
        struct pipe_entry *e = &conn.pipe[(conn.pipe_head + i) % IORING_PIPELINE_MAX];
        if (e->slot != SLOT_NONE) {
            slot_put(&ring, &ring.slots[e->slot]); /* the handler answers at once */
        }
    }
    conn.pipe_count = 0;
    if (conn.cur_slot != SLOT_NONE) {
        slot_put(&ring, &ring.slots[conn.cur_slot]);
        conn.cur_slot = SLOT_NONE;
    }
    conn.tp->close(&conn);
    wire_to_client(NULL);
    conn.tp->release(&conn);
    ASSERT(conn.tls == NULL);
    ASSERT(ring.slot_free_len == FUZZ_INFLIGHT);
    ERR_clear_error();
}

/* run_client does a handshake with a BoringSSL client, then sends `len` bytes of plaintext. */
static void run_client(const uint8_t *p, size_t len, size_t cut, uint8_t mode, uint8_t flip)
{
    SSL *c = SSL_new(client_ctx);
    BIO *in = BIO_new(BIO_s_mem());
    BIO *out = BIO_new(BIO_s_mem());
    ASSERT(c != NULL && in != NULL && out != NULL);
    SSL_set_bio(c, in, out);
    SSL_set_connect_state(c);
    if ((mode & 2) != 0) {
        ASSERT(SSL_set_max_proto_version(c, TLS1_2_VERSION) == 1);
    }
    bool done = false;
    bool alive = true;
    for (int i = 0; i < FUZZ_ROUNDS_MAX && alive && !done; i++) {
        done = SSL_do_handshake(c) == 1;
        const uint8_t *w = NULL;
        size_t wlen = 0;
        ASSERT(BIO_mem_contents(out, &w, &wlen) == 1);
        alive = server_in(w, wlen, cut, in);
        ASSERT(BIO_reset(out) == 1);
    }
    ASSERT(!alive || done); /* a good client always completes its handshake */
    ASSERT(!alive || conn.tls != NULL);
    if (done && alive && len > 0 && SSL_write(c, p, (int)len) == (int)len) {
        const uint8_t *w = NULL;
        size_t wlen = 0;
        ASSERT(BIO_mem_contents(out, &w, &wlen) == 1);
        uint8_t *copy = malloc(wlen + 1);
        ASSERT(copy != NULL);
        memcpy(copy, w, wlen);
        if ((mode & 4) != 0 && wlen > 0) {
            copy[flip % wlen] ^= 0x5a; /* a record the server must refuse, not trust */
        }
        (void)server_in(copy, wlen, cut, in);
        free(copy);
        uint8_t sink[4096];
        for (int i = 0; i < 1024 && SSL_read(c, sink, sizeof(sink)) > 0; i++) { /* bounded */
        }
    }
    SSL_free(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool ready;
    if (!ready) {
        setup();
        ready = true;
    }
    if (size < 3) {
        return 0;
    }
    size_t cut = (size_t)data[0] + 1;
    uint8_t mode = data[1];
    uint8_t flip = data[2];
    conn_start();
    if ((mode & 1) == 0) {
        (void)server_in(data + 3, size - 3, cut, NULL);
    } else {
        run_client(data + 3, size - 3, cut, mode, flip);
    }
    conn_end();
    ERR_clear_error();
    return 0;
}
