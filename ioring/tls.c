/* tls: HTTPS on the rings with BoringSSL, the one file of ioring/ that sees BoringSSL types.
 *
 * The context (struct ioring_tls): certificate, key, client CA, policy, session tickets. The
 * transport (transport_tls): one SSL object per connection, driven from the ring's receive and
 * send completions through a BIO of our own: its read side hands BoringSSL the bytes of the
 * receive buffer being processed (no copy into a memory BIO), its write side appends to the
 * connection's output queue. Nothing here blocks: SSL_do_handshake and SSL_read run only when
 * bytes arrived and stop at SSL_ERROR_WANT_READ.
 *
 * Output: two buffers per connection, `tx` (handed to the kernel by a send: never written or
 * moved until it completes) and `q` (what BoringSSL wrote since: handshake flights, responses,
 * alerts). A send takes `q` when `tx` is empty. They are allocated when there is something to
 * send and freed once it is sent, so that an idle connection holds only its SSL object: this is
 * the one place where the engine allocates per request, beside BoringSSL's own allocations
 * (records, handshake state), which a TLS engine cannot avoid; both are bounded per connection
 * (TLS_OUT_MAX) and connections are bounded (max_connections). */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/mem.h>
#include <openssl/pem.h>
#include <openssl/pool.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "ioring/internal.h"

#define TICKET_NAME_LEN 16
#define TICKET_HMAC_LEN 32
#define TICKET_AES_LEN 32
#define TICKET_KEY_LEN (TICKET_NAME_LEN + TICKET_HMAC_LEN + TICKET_AES_LEN)
#define TICKET_FILE_MAX 4096 /* bytes of a ticket-key file */
#define TICKET_FILE_MAGIC "certprov-ticket-keys v1"
#define TLS_OUT_CHUNK 16384 /* first size of an output buffer: a record and its overhead fit */
#define TLS_READ_SPARE 64   /* SSL_read calls beyond one per input byte (empty records) */

static_assert(TICKET_NAME_LEN == SSL_TICKET_KEY_NAME_LEN, "BoringSSL's ticket key name");

/* struct ticket_key is one session-ticket key: its public name, HMAC-SHA256 and AES-256 keys. */
struct ticket_key {
    uint8_t name[TICKET_NAME_LEN];
    uint8_t hmac[TICKET_HMAC_LEN];
    uint8_t aes[TICKET_AES_LEN];
};

/* struct ctx_ref is a context with the connections made with it, counted under the ioring_tls
 * mutex: a context replaced by ioring_tls_reload is freed by whoever drops its last user, after
 * the last SSL of it is freed, in an order the mutex makes visible (BoringSSL's own reference
 * counts are atomics that ThreadSanitizer cannot see in the uninstrumented library). */
struct ctx_ref {
    SSL_CTX *ctx;
    uint32_t users;
    bool retired;
};

struct ioring_tls {
    struct ctx_ref *cur;       /* for new connections: swapped by ioring_tls_reload (under mu) */
    pthread_mutex_t mu;        /* guards ctx and the keys below (the ticket callback runs on every
                                  ring) */
    struct ticket_key keys[2]; /* [0] current: seals and opens; [1] previous: opens */
    uint32_t num_keys;
    uint64_t made_s; /* when keys[0] was made (in-memory keys: rotated after rotate_s) */
    uint32_t rotate_s;
    bool client_auth;
    char ticket_file[BASE_PATH_MAX]; /* "" = in-memory keys */
    char cert_file[BASE_PATH_MAX];
    char key_file[BASE_PATH_MAX];
    char client_ca_file[BASE_PATH_MAX]; /* "" = no client certificates */
};

struct tls_buf {
    uint8_t *data;
    size_t len; /* bytes in data */
    size_t off; /* bytes of data already sent (tx only) */
    size_t cap;
};

/* struct tls_conn is the TLS state of one connection (allocated when it is accepted). */
struct tls_conn {
    SSL *ssl;
    struct ctx_ref *ref; /* the context it was made with (one of its users) */
    const uint8_t *in;   /* the receive buffer being processed, what the BIO reads */
    size_t in_len;
    struct tls_buf tx;
    struct tls_buf q;
    bool done;     /* handshake complete: application data flows */
    bool failed;   /* a fatal error: nothing more is read */
    bool shutdown; /* close_notify queued */
    bool overflow; /* the output queue hit TLS_OUT_MAX */
};

static void err_set(char *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void err_set(char *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    (void)vsnprintf(err, IORING_TLS_ERR_MAX, fmt, ap);
    va_end(ap);
}

/* tls_err_reason is the text of BoringSSL's oldest queued error, and clears the queue. */
static const char *tls_err_reason(void)
{
    uint32_t e = ERR_get_error();
    ERR_clear_error();
    const char *r = e != 0 ? ERR_reason_error_string(e) : NULL;
    return r != NULL ? r : "unknown reason";
}

/* ---- the BIO between BoringSSL and the ring ---- */

static size_t out_max(const struct conn *c)
{
    /* A response (or a chunk of a shared body) and its record overhead, plus a handshake flight
     * and alerts. */
    size_t resp = c->ring->eng->opts.max_response_bytes;
    return (resp > BODY_CHUNK_BYTES ? resp : BODY_CHUNK_BYTES) + 32768;
}

static int bio_write(BIO *b, const char *in, int len)
{
    struct conn *c = BIO_get_data(b);
    struct tls_conn *t = c->tls;
    ASSERT(len >= 0);
    BIO_clear_retry_flags(b);
    struct tls_buf *q = &t->q;
    size_t n = (size_t)len;
    if (q->len + n > out_max(c)) {
        t->overflow = true; /* cannot happen with one response at a time: ASSERTed by output */
        return -1;
    }
    if (q->len + n > q->cap) {
        size_t cap = q->cap > 0 ? q->cap : TLS_OUT_CHUNK;
        while (cap < q->len + n) {
            cap *= 2;
        }
        uint8_t *data = realloc(q->data, cap);
        if (data == NULL) {
            return -1;
        }
        q->data = data;
        q->cap = cap;
    }
    memcpy(q->data + q->len, in, n);
    q->len += n;
    return len;
}

static int bio_read(BIO *b, char *out, int len)
{
    struct conn *c = BIO_get_data(b);
    struct tls_conn *t = c->tls;
    ASSERT(len >= 0);
    BIO_clear_retry_flags(b);
    if (t->in_len == 0) {
        BIO_set_retry_read(b); /* SSL_ERROR_WANT_READ: the next receive continues */
        return -1;
    }
    size_t n = t->in_len < (size_t)len ? t->in_len : (size_t)len;
    memcpy(out, t->in, n);
    t->in += n;
    t->in_len -= n;
    return (int)n;
}

static long bio_ctrl(BIO *b, int cmd, long larg, void *parg)
{
    (void)b;
    (void)larg;
    (void)parg;
    return cmd == BIO_CTRL_FLUSH ? 1 : 0; /* written bytes are queued already */
}

static BIO_METHOD *bio_method;
static pthread_once_t bio_once = PTHREAD_ONCE_INIT;

static void bio_method_init(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "certprov-ring");
    if (m != NULL && (BIO_meth_set_write(m, bio_write) != 1 ||
                      BIO_meth_set_read(m, bio_read) != 1 || BIO_meth_set_ctrl(m, bio_ctrl) != 1)) {
        BIO_meth_free(m);
        m = NULL;
    }
    bio_method = m;
}

/* ---- session tickets ---- */

static int key_make(struct ticket_key *k)
{
    return RAND_bytes((uint8_t *)k, sizeof(*k)) == 1 ? 0 : -EIO;
}

/* keys_rotate_memory makes a new current key when the in-memory one is due. Under t->mu. */
static void keys_rotate_memory(struct ioring_tls *t)
{
    uint64_t now = (uint64_t)clock_real_s();
    if (t->ticket_file[0] != '\0' || now < t->made_s + t->rotate_s) {
        return;
    }
    struct ticket_key k;
    if (key_make(&k) != 0) {
        return; /* keep the old key: tickets still work */
    }
    t->keys[1] = t->keys[0];
    t->keys[0] = k;
    t->num_keys = 2;
    t->made_s = now;
    OPENSSL_cleanse(&k, sizeof(k));
    log_info("ioring: tls_ticket_key_rotated source=memory");
}

/* ticket_cb seals and opens session tickets (SSL_CTX_set_tlsext_ticket_key_cb: 1 sealed or
 * opened, 2 opened with the previous key (renew it), 0 unknown key: a full handshake). */
static int ticket_cb(SSL *ssl, uint8_t *name, uint8_t *iv, EVP_CIPHER_CTX *cctx, HMAC_CTX *hctx,
                     int encrypt)
{
    struct ioring_tls *t = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
    struct ticket_key k;
    int rc = 0;
    base_mutex_lock(&t->mu);
    if (encrypt) {
        keys_rotate_memory(t);
        k = t->keys[0];
        rc = 1;
    } else {
        for (uint32_t i = 0; i < t->num_keys; i++) {
            if (CRYPTO_memcmp(name, t->keys[i].name, TICKET_NAME_LEN) == 0) {
                k = t->keys[i];
                rc = i == 0 ? 1 : 2;
                break;
            }
        }
    }
    base_mutex_unlock(&t->mu);
    if (rc == 0) {
        return 0;
    }
    if (encrypt) {
        memcpy(name, k.name, TICKET_NAME_LEN);
        if (RAND_bytes(iv, 16) != 1) {
            rc = -1;
        }
    }
    if (rc > 0 && (HMAC_Init_ex(hctx, k.hmac, TICKET_HMAC_LEN, EVP_sha256(), NULL) != 1 ||
                   (encrypt ? EVP_EncryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, k.aes, iv)
                            : EVP_DecryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, k.aes, iv)) != 1)) {
        rc = -1;
    }
    OPENSSL_cleanse(&k, sizeof(k));
    return rc;
}

static int hex_nibble(char ch)
{
    if (ch >= '0' && ch <= '9') {
        return ch - '0';
    }
    if (ch >= 'a' && ch <= 'f') {
        return ch - 'a' + 10;
    }
    return -1;
}

/* keys_parse reads a ticket-key file: the magic line, then one or two lines "CREATED HEX" (the
 * current key first; HEX is 2 x TICKET_KEY_LEN lower-case digits). Returns 0 or -EBADMSG. */
static int keys_parse(struct ticket_key out[2], uint32_t *out_num, uint64_t *out_made,
                      const char *text)
{
    const char *p = text;
    size_t magic = strlen(TICKET_FILE_MAGIC);
    if (strncmp(p, TICKET_FILE_MAGIC, magic) != 0 || p[magic] != '\n') {
        return -EBADMSG;
    }
    p += magic + 1;
    uint32_t n = 0;
    uint64_t made = 0;
    while (*p != '\0') {
        if (n == 2) {
            return -EBADMSG;
        }
        char *end = NULL;
        unsigned long long created = strtoull(p, &end, 10);
        if (end == p || *end != ' ') {
            return -EBADMSG;
        }
        p = end + 1;
        uint8_t *k = (uint8_t *)&out[n];
        for (size_t i = 0; i < TICKET_KEY_LEN; i++) {
            int hi = hex_nibble(p[2 * i]);
            int lo = hi < 0 ? -1 : hex_nibble(p[2 * i + 1]);
            if (lo < 0) {
                return -EBADMSG;
            }
            k[i] = (uint8_t)(hi << 4 | lo);
        }
        p += 2 * TICKET_KEY_LEN;
        if (*p != '\n') {
            return -EBADMSG;
        }
        p++;
        if (n == 0) {
            made = created;
        }
        n++;
    }
    if (n == 0) {
        return -EBADMSG;
    }
    *out_num = n;
    *out_made = made;
    return 0;
}

/* keys_read loads the ticket-key file at `path`. Returns 0, -EBADMSG or a negative errno. */
static int keys_read(struct ticket_key out[2], uint32_t *out_num, uint64_t *out_made,
                     const char *path, char *err)
{
    char text[TICKET_FILE_MAX + 1];
    size_t len = 0;
    int rc = base_file_read((uint8_t *)text, &len, TICKET_FILE_MAX, path);
    if (rc != 0) {
        err_set(err, "the TLS ticket-key file %s cannot be read: %s%s", path, strerror(-rc),
                rc == -ENOENT ? " (make it with: certprovctl tls ticket-key rotate)" : "");
        return rc;
    }
    text[len] = '\0';
    struct stat sb;
    if (stat(path, &sb) == 0 && (sb.st_mode & 077) != 0) {
        err_set(err, "the TLS ticket-key file %s is readable by others: run chmod 600 %s", path,
                path);
        OPENSSL_cleanse(text, sizeof(text));
        return -EACCES;
    }
    rc = strlen(text) != len ? -EBADMSG : keys_parse(out, out_num, out_made, text);
    OPENSSL_cleanse(text, sizeof(text));
    if (rc != 0) {
        err_set(err,
                "the TLS ticket-key file %s is damaged (not a ticket-key file written by "
                "certprovctl tls ticket-key rotate)",
                path);
    }
    return rc;
}

static int keys_load(struct ioring_tls *t, char *err)
{
    struct ticket_key keys[2];
    uint32_t num = 0;
    uint64_t made = 0;
    int rc = 0;
    if (t->ticket_file[0] == '\0') {
        num = 1;
        made = (uint64_t)clock_real_s();
        rc = key_make(&keys[0]);
        if (rc != 0) {
            err_set(err, "cannot make a TLS ticket key: the random generator failed");
        }
    } else {
        rc = keys_read(keys, &num, &made, t->ticket_file, err);
    }
    if (rc == 0) {
        base_mutex_lock(&t->mu);
        memcpy(t->keys, keys, sizeof(keys));
        t->num_keys = num;
        t->made_s = made;
        base_mutex_unlock(&t->mu);
    }
    OPENSSL_cleanse(keys, sizeof(keys));
    return rc;
}

int ioring_tls_ticket_file_rotate(const char *path, char *err)
{
    ASSERT(path != NULL);
    ASSERT(err != NULL);
    struct ticket_key keys[2];
    uint32_t num = 0;
    uint64_t made = 0;
    int rc = keys_read(keys, &num, &made, path, err);
    if (rc == -ENOENT) {
        num = 0;
        rc = 0;
    }
    if (rc == 0) {
        keys[1] = keys[0];
        rc = key_make(&keys[0]);
        num = num > 0 ? 2 : 1;
    }
    char text[TICKET_FILE_MAX];
    size_t len = 0;
    if (rc == 0) {
        len = (size_t)snprintf(text, sizeof(text), "%s\n", TICKET_FILE_MAGIC);
        uint64_t now = (uint64_t)clock_real_s();
        for (uint32_t i = 0; i < num; i++) {
            len += (size_t)snprintf(text + len, sizeof(text) - len, "%llu ",
                                    (unsigned long long)(i == 0 ? now : made));
            const uint8_t *k = (const uint8_t *)&keys[i];
            for (size_t j = 0; j < TICKET_KEY_LEN; j++) {
                len += (size_t)snprintf(text + len, sizeof(text) - len, "%02x", k[j]);
            }
            text[len++] = '\n';
        }
        ASSERT(len < sizeof(text));
        rc = base_file_write_atomic(path, text, len, 0600, false);
        if (rc != 0) {
            err_set(err, "cannot write the TLS ticket-key file %s: %s", path, strerror(-rc));
        }
    }
    OPENSSL_cleanse(keys, sizeof(keys));
    OPENSSL_cleanse(text, sizeof(text));
    return rc;
}

/* ---- the context ---- */

/* verify_cb lets the handshake go on whatever the client certificate is worth: the verdict is
 * kept (SSL_get_verify_result) and the handler answers 401 for a certificate it cannot use, as
 * it does for a missing one (RFC 7030 §3.3.2: the server decides, in HTTP). */
static int verify_cb(int ok, X509_STORE_CTX *store)
{
    (void)ok;
    (void)store;
    return 1;
}

/* alpn_cb chooses http/1.1 (RFC 7301 §3.2: a client that offers ALPN without it gets the
 * no_application_protocol alert). */
static int alpn_cb(SSL *ssl, const uint8_t **out, uint8_t *out_len, const uint8_t *in,
                   unsigned in_len, void *arg)
{
    (void)ssl;
    (void)arg;
    static const uint8_t h11[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
    uint8_t *sel = NULL;
    uint8_t sel_len = 0;
    if (SSL_select_next_proto(&sel, &sel_len, h11, sizeof(h11), in, in_len) !=
        OPENSSL_NPN_NEGOTIATED) {
        return SSL_TLSEXT_ERR_ALERT_FATAL;
    }
    *out = sel;
    *out_len = sel_len;
    return SSL_TLSEXT_ERR_OK;
}

/* ECDHE with an AEAD only, for TLS 1.2 (TLS 1.3's suites are all AEAD, fixed in BoringSSL). */
#define TLS12_CIPHERS                                                                              \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"                                   \
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"                                   \
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

static int file_check(const char *path, const char *what, char *err)
{
    if (path == NULL || path[0] == '\0') {
        err_set(err, "no %s file given", what);
        return -EINVAL;
    }
    if (access(path, R_OK) == -1) {
        int rc = -errno;
        err_set(err, "the %s %s cannot be read: %s", what, path, strerror(errno));
        return rc;
    }
    return 0;
}

/* key_read reads a private key file: PEM, or DER PKCS#8 as the appliance writes its keys
 * (hsm/soft.c). Returns the key (owned) or NULL. */
static EVP_PKEY *key_read(const char *file)
{
    BIO *bio = BIO_new_file(file, "rb");
    EVP_PKEY *key = bio != NULL ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
    if (bio != NULL && key == NULL && BIO_reset(bio) == 0) {
        key = d2i_PrivateKey_bio(bio, NULL);
    }
    BIO_free(bio);
    ERR_clear_error();
    return key;
}

static int ctx_load_cert(SSL_CTX *ctx, const struct ioring_tls *o, char *err)
{
    int rc = file_check(o->cert_file, "TLS certificate file", err);
    rc = rc != 0 ? rc : file_check(o->key_file, "TLS key file", err);
    if (rc != 0) {
        return rc;
    }
    if (SSL_CTX_use_certificate_chain_file(ctx, o->cert_file) != 1) {
        err_set(err, "the TLS certificate file %s is damaged: %s", o->cert_file, tls_err_reason());
        return -EBADMSG;
    }
    EVP_PKEY *key = key_read(o->key_file);
    if (key == NULL) {
        err_set(err, "the TLS key file %s is damaged (not a PEM or DER private key)", o->key_file);
        return -EBADMSG;
    }
    int ok = X509_check_private_key(SSL_CTX_get0_certificate(ctx), key) == 1 &&
             SSL_CTX_use_PrivateKey(ctx, key) == 1;
    EVP_PKEY_free(key);
    ERR_clear_error();
    if (!ok) {
        err_set(err, "the TLS key %s is not the key of the certificate %s", o->key_file,
                o->cert_file);
        return -EINVAL;
    }
    return 0;
}

static int ctx_load_client_ca(SSL_CTX *ctx, const char *file, char *err)
{
    int rc = file_check(file, "client CA file", err);
    if (rc != 0) {
        return rc;
    }
    STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(file);
    if (names == NULL || SSL_CTX_load_verify_locations(ctx, file, NULL) != 1) {
        sk_X509_NAME_pop_free(names, X509_NAME_free);
        err_set(err, "the client CA file %s is damaged: %s", file, tls_err_reason());
        return -EBADMSG;
    }
    SSL_CTX_set_client_CA_list(ctx, names); /* named in the CertificateRequest */
    X509_VERIFY_PARAM *param = SSL_CTX_get0_param(ctx);
    /* The issuing CA is the anchor, not a root (RFC 5280 §6.1: any trusted CA may anchor). */
    if (X509_VERIFY_PARAM_set_flags(param, X509_V_FLAG_PARTIAL_CHAIN) != 1 ||
        X509_VERIFY_PARAM_set_purpose(param, X509_PURPOSE_SSL_CLIENT) != 1) {
        err_set(err, "cannot set the client certificate policy: %s", tls_err_reason());
        return -ENOMEM;
    }
    /* The client's CertificateVerify: BoringSSL's default list lacks Ed25519, so a phone whose
     * certificate has the Ed25519 key we issue for (README, keys accepted) could never renew
     * over mTLS (the handshake fails with NO_COMMON_SIGNATURE_ALGORITHMS; found by
     * certprov-probe). The default list otherwise, without SHA-1. */
    static const uint16_t verify_algs[] = {
        SSL_SIGN_ECDSA_SECP256R1_SHA256, SSL_SIGN_RSA_PSS_RSAE_SHA256, SSL_SIGN_RSA_PKCS1_SHA256,
        SSL_SIGN_ECDSA_SECP384R1_SHA384, SSL_SIGN_RSA_PSS_RSAE_SHA384, SSL_SIGN_RSA_PKCS1_SHA384,
        SSL_SIGN_RSA_PSS_RSAE_SHA512,    SSL_SIGN_RSA_PKCS1_SHA512,    SSL_SIGN_ED25519,
    };
    if (SSL_CTX_set_verify_algorithm_prefs(ctx, verify_algs, ARRAY_LEN(verify_algs)) != 1) {
        err_set(err, "cannot set the client signature algorithms: %s", tls_err_reason());
        return -ENOMEM;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, verify_cb);
    return 0;
}

static int ctx_policy(SSL_CTX *ctx, struct ioring_tls *t, char *err)
{
    static const uint8_t sid_ctx[] = "certprov";
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
        SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) != 1 ||
        SSL_CTX_set_strict_cipher_list(ctx, TLS12_CIPHERS) != 1 ||
        SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof(sid_ctx) - 1) != 1 ||
        SSL_CTX_set_tlsext_ticket_key_cb(ctx, ticket_cb) != 1 ||
        SSL_CTX_set_num_tickets(ctx, 1) != 1 || SSL_CTX_set_app_data(ctx, t) != 1) {
        err_set(err, "cannot set the TLS policy: %s", tls_err_reason());
        return -ENOMEM;
    }
    /* Tickets only: a server-side cache would be per process and grow with the clients. */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_timeout(ctx, t->rotate_s);
    SSL_CTX_set_session_psk_dhe_timeout(ctx, t->rotate_s);
    SSL_CTX_set_alpn_select_cb(ctx, alpn_cb, NULL);
    return 0;
}

/* ctx_build makes a context from t's files: the policy, the certificate and key, the client
 * CA. Returns 0 (*out owned) or an error as ioring_tls_new. */
static int ctx_build(SSL_CTX **out, struct ioring_tls *t, char *err)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_method());
    if (ctx == NULL) {
        err_set(err, "out of memory");
        return -ENOMEM;
    }
    int rc = ctx_policy(ctx, t, err);
    rc = rc != 0 ? rc : ctx_load_cert(ctx, t, err);
    if (rc == 0 && t->client_ca_file[0] != '\0') {
        rc = ctx_load_client_ca(ctx, t->client_ca_file, err);
    }
    if (rc != 0) {
        SSL_CTX_free(ctx);
        return rc;
    }
    *out = ctx;
    return 0;
}

int ioring_tls_new(struct ioring_tls **out, char *err, const struct ioring_tls_options *opts)
{
    ASSERT(out != NULL);
    ASSERT(err != NULL);
    ASSERT(opts != NULL);
    err[0] = '\0';
    if (pthread_once(&bio_once, bio_method_init) != 0 || bio_method == NULL) {
        err_set(err, "cannot make the TLS BIO method");
        return -ENOMEM;
    }
    struct ioring_tls *t = calloc(1, sizeof(*t));
    if (t == NULL) {
        err_set(err, "out of memory");
        return -ENOMEM;
    }
    int rc = pthread_mutex_init(&t->mu, NULL);
    ASSERT(rc == 0); /* default attributes: glibc's init cannot fail */
    t->rotate_s =
        opts->ticket_rotate_s != 0 ? opts->ticket_rotate_s : IORING_TICKET_ROTATE_S_DEFAULT;
    if (base_str_copy(t->ticket_file, sizeof(t->ticket_file),
                      opts->ticket_file != NULL ? opts->ticket_file : "") != 0 ||
        base_str_copy(t->cert_file, sizeof(t->cert_file),
                      opts->cert_file != NULL ? opts->cert_file : "") != 0 ||
        base_str_copy(t->key_file, sizeof(t->key_file),
                      opts->key_file != NULL ? opts->key_file : "") != 0 ||
        base_str_copy(t->client_ca_file, sizeof(t->client_ca_file),
                      opts->client_ca_file != NULL ? opts->client_ca_file : "") != 0) {
        err_set(err, "a TLS file name is too long");
        rc = -ENAMETOOLONG;
        goto out;
    }
    t->client_auth = t->client_ca_file[0] != '\0';
    t->cur = calloc(1, sizeof(*t->cur));
    rc = t->cur == NULL ? -ENOMEM : ctx_build(&t->cur->ctx, t, err);
    rc = rc != 0 ? rc : keys_load(t, err);
out:
    if (rc != 0) {
        ioring_tls_free(t);
        return rc;
    }
    *out = t;
    return 0;
}

int ioring_tls_reload(struct ioring_tls *tls, char *err)
{
    ASSERT(tls != NULL);
    ASSERT(err != NULL);
    err[0] = '\0';
    SSL_CTX *ctx = NULL;
    int rc = ctx_build(&ctx, tls, err);
    if (rc != 0) {
        return rc;
    }
    if (tls->ticket_file[0] != '\0') {
        rc = keys_load(tls, err);
        if (rc != 0) {
            SSL_CTX_free(ctx);
            return rc;
        }
        log_info("ioring: tls_ticket_keys_loaded file=%s", tls->ticket_file);
    }
    struct ctx_ref *ref = calloc(1, sizeof(*ref));
    if (ref == NULL) {
        SSL_CTX_free(ctx);
        err_set(err, "out of memory");
        return -ENOMEM;
    }
    ref->ctx = ctx;
    /* New connections take the new context; a connection keeps the one it was made with, so
     * the old one goes when its last connection does (tls_release), or now without any. */
    base_mutex_lock(&tls->mu);
    struct ctx_ref *old = tls->cur;
    tls->cur = ref;
    old->retired = true;
    bool unused = old->users == 0;
    base_mutex_unlock(&tls->mu);
    if (unused) {
        SSL_CTX_free(old->ctx);
        free(old);
    }
    log_info("ioring: tls_certificate_loaded file=%s", tls->cert_file);
    return 0;
}

void ioring_tls_free(struct ioring_tls *tls)
{
    if (tls == NULL) {
        return;
    }
    if (tls->cur != NULL) { /* after the engine: no connection uses it any more */
        ASSERT(tls->cur->users == 0);
        SSL_CTX_free(tls->cur->ctx);
        free(tls->cur);
    }
    OPENSSL_cleanse(tls->keys, sizeof(tls->keys));
    int rc = pthread_mutex_destroy(&tls->mu);
    ASSERT(rc == 0);
    free(tls);
}

/* ---- the transport ---- */

static void buf_free(struct tls_buf *b)
{
    free(b->data);
    memset(b, 0, sizeof(*b));
}

/* ref_put drops a connection's use of its context, and frees a replaced context at its last. */
static void ref_put(struct ioring_tls *tls, struct ctx_ref *ref)
{
    base_mutex_lock(&tls->mu);
    ASSERT(ref->users > 0);
    ref->users--;
    bool last = ref->retired && ref->users == 0;
    base_mutex_unlock(&tls->mu);
    if (last) {
        SSL_CTX_free(ref->ctx);
        free(ref);
    }
}

static int tls_conn_start(struct conn *c)
{
    struct ioring_tls *ctx = c->ring->eng->opts.tls;
    ASSERT(ctx != NULL);
    ASSERT(c->tls == NULL);
    struct tls_conn *t = calloc(1, sizeof(*t));
    if (t == NULL) {
        return -ENOMEM;
    }
    base_mutex_lock(&ctx->mu);
    struct ctx_ref *ref = ctx->cur;
    ref->users++;
    base_mutex_unlock(&ctx->mu);
    t->ref = ref;
    SSL *ssl = SSL_new(ref->ctx);
    BIO *bio = BIO_new(bio_method);
    if (ssl == NULL || bio == NULL) {
        SSL_free(ssl);
        BIO_free(bio);
        ERR_clear_error();
        ref_put(ctx, ref);
        free(t);
        return -ENOMEM;
    }
    BIO_set_data(bio, c);
    BIO_set_init(bio, 1);
    SSL_set_bio(ssl, bio, bio); /* the same BIO both ways: ssl takes our one reference */
    SSL_set_accept_state(ssl);
    t->ssl = ssl;
    c->tls = t;
    return 0;
}

static void tls_release(struct conn *c)
{
    struct tls_conn *t = c->tls;
    ASSERT(t != NULL);
    SSL_free(t->ssl);
    ref_put(c->ring->eng->opts.tls, t->ref);
    buf_free(&t->tx);
    buf_free(&t->q);
    free(t);
    c->tls = NULL;
}

/* handshake_done records a finished handshake: metrics, and the request deadline starts. */
static void handshake_done(struct conn *c)
{
    struct tls_conn *t = c->tls;
    struct ring *r = c->ring;
    t->done = true;
    ring_handshake_end(c);
    /* BoringSSL holds a TLS 1.3 NewSessionTicket until the server writes (so that a client that
     * does not read cannot stall a small write buffer): ours is unbounded for it, flush now, so
     * that a client that reads no answer (a probe, a health check) can resume too. */
    if (SSL_write(t->ssl, NULL, 0) < 0) {
        ERR_clear_error();
    }
    bool resumed = SSL_session_reused(t->ssl) == 1;
    atomic_fetch_add_explicit(resumed ? &r->stats.tls_resumed : &r->stats.tls_full, 1,
                              memory_order_relaxed);
    if (SSL_get0_peer_certificates(t->ssl) != NULL) {
        atomic_fetch_add_explicit(&r->stats.tls_client_certs, 1, memory_order_relaxed);
    }
}

static int handshake_step(struct conn *c)
{
    struct tls_conn *t = c->tls;
    int rc = SSL_do_handshake(t->ssl);
    if (rc == 1) {
        handshake_done(c);
        return 0;
    }
    int e = SSL_get_error(t->ssl, rc);
    if (e == SSL_ERROR_WANT_READ) {
        return 0;
    }
    t->failed = true;
    log_debug("ioring: tls_handshake_failed ring=%u reason=%s", c->ring->index, tls_err_reason());
    ERR_clear_error();
    return -EPROTO;
}

/* read_app decrypts what arrived and gives it to the HTTP parser. */
static int read_app(struct conn *c, size_t wire_len)
{
    struct tls_conn *t = c->tls;
    uint8_t *buf = c->ring->tls_plain;
    size_t cap = c->ring->tls_plain_len;
    for (size_t i = 0; i < wire_len + TLS_READ_SPARE; i++) { /* bounded: see TLS_READ_SPARE */
        if (c->stop_parsing) {
            return 0; /* the last answer is queued: what follows is not read */
        }
        int n = SSL_read(t->ssl, buf, (int)cap);
        if (n > 0) {
            (void)http_input(c, buf, (size_t)n);
            continue;
        }
        int e = SSL_get_error(t->ssl, n);
        if (e == SSL_ERROR_WANT_READ) {
            return 0;
        }
        if (e == SSL_ERROR_ZERO_RETURN) { /* close_notify: answer what was asked, then close */
            c->peer_eof = true;
            c->stop_parsing = true;
            return c->pipe_count > 0 ? 0 : -ECONNRESET;
        }
        t->failed = true;
        log_debug("ioring: tls_read_failed ring=%u reason=%s", c->ring->index, tls_err_reason());
        ERR_clear_error();
        return -EPROTO;
    }
    return -EPROTO; /* a peer that makes BoringSSL spin: not a client we serve */
}

static int tls_input(struct conn *c, const uint8_t *wire, size_t len)
{
    struct tls_conn *t = c->tls;
    ASSERT(t != NULL);
    if (t->failed) {
        return -EPROTO;
    }
    t->in = wire;
    t->in_len = len;
    int rc = t->done ? 0 : handshake_step(c);
    if (rc == 0 && t->done) {
        rc = read_app(c, len);
    }
    t->in = NULL;
    t->in_len = 0;
    return rc;
}

static int tls_output(struct conn *c, const uint8_t *plain, size_t len, bool last)
{
    struct tls_conn *t = c->tls;
    ASSERT(t->done);
    ASSERT(len > 0);
    ASSERT(len <= INT32_MAX);
    int n = SSL_write(t->ssl, plain, (int)len);
    if (n != (int)len) {
        log_debug("ioring: tls_write_failed ring=%u overflow=%d reason=%s", c->ring->index,
                  t->overflow, tls_err_reason());
        ERR_clear_error();
        return -EPROTO;
    }
    if (last && !t->shutdown) { /* close_notify (RFC 8446 §6.1) in the same flight */
        t->shutdown = true;
        (void)SSL_shutdown(t->ssl);
        ERR_clear_error();
    }
    return 0;
}

static size_t tls_wire(struct conn *c, const uint8_t **out)
{
    struct tls_conn *t = c->tls;
    if (t->tx.off == t->tx.len && t->q.len > 0) { /* tx is free: the queue becomes it */
        struct tls_buf b = t->tx;
        t->tx = t->q;
        t->q = b;
        t->q.len = 0;
        t->q.off = 0;
    }
    size_t n = t->tx.len - t->tx.off;
    *out = n > 0 ? t->tx.data + t->tx.off : NULL; /* no arithmetic on a NULL buffer (UBSan) */
    return n;
}

static void tls_sent(struct conn *c, size_t n)
{
    struct tls_conn *t = c->tls;
    ASSERT(n <= t->tx.len - t->tx.off);
    t->tx.off += n;
    if (t->tx.off == t->tx.len) {
        buf_free(&t->tx); /* an idle connection holds no buffer */
        if (t->q.len == 0) {
            buf_free(&t->q);
        }
    }
}

static bool tls_ready(const struct conn *c)
{
    return c->tls->done;
}

static void tls_close(struct conn *c)
{
    struct tls_conn *t = c->tls;
    if (t->done && !t->shutdown && !t->failed) {
        t->shutdown = true;
        (void)SSL_shutdown(t->ssl);
        ERR_clear_error();
    }
}

/* ---- what requests carry ---- */

static void peer_free(void *peer_cert)
{
    CRYPTO_BUFFER_free(peer_cert);
}

static void tls_slot_fill(struct ioring_request *s, const struct conn *c)
{
    ASSERT(s->peer_cert == NULL);
    s->tls = IORING_TLS_NONE;
    s->cert_state = IORING_CERT_NONE;
    const struct tls_conn *t = c->tls;
    if (t == NULL) {
        return;
    }
    ASSERT(t->done);
    s->tls = SSL_session_reused(t->ssl) == 1 ? IORING_TLS_RESUMED : IORING_TLS_FULL;
    const STACK_OF(CRYPTO_BUFFER) *chain = SSL_get0_peer_certificates(t->ssl);
    if (chain == NULL || sk_CRYPTO_BUFFER_num(chain) == 0) {
        return;
    }
    CRYPTO_BUFFER *leaf = sk_CRYPTO_BUFFER_value(chain, 0);
    CRYPTO_BUFFER_up_ref(leaf);
    s->peer_cert = leaf;
    s->peer_free = peer_free;
    long v = SSL_get_verify_result(t->ssl);
    s->cert_state = v == X509_V_OK ? IORING_CERT_OK
                    : v == X509_V_ERR_CERT_HAS_EXPIRED || v == X509_V_ERR_CERT_NOT_YET_VALID
                        ? IORING_CERT_EXPIRED
                        : IORING_CERT_UNTRUSTED;
}

const struct transport_ops transport_tls = {
    .name = "tls",
    .input = tls_input,
    .output = tls_output,
    .wire = tls_wire,
    .sent = tls_sent,
    .ready = tls_ready,
    .close = tls_close,
    .release = tls_release,
    .open = tls_conn_start,
    .slot_fill = tls_slot_fill,
};

enum ioring_tls_kind ioring_request_tls(const struct ioring_request *req)
{
    ASSERT(req != NULL);
    return req->tls;
}

enum ioring_cert_state ioring_request_client_cert(const struct ioring_request *req,
                                                  const uint8_t **out_der, size_t *out_len)
{
    ASSERT(req != NULL);
    ASSERT(out_der != NULL);
    ASSERT(out_len != NULL);
    if (req->peer_cert == NULL) {
        return IORING_CERT_NONE;
    }
    *out_der = CRYPTO_BUFFER_data(req->peer_cert);
    *out_len = CRYPTO_BUFFER_len(req->peer_cert);
    return req->cert_state;
}
