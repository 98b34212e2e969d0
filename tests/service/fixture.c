#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/base64.h>
#include <openssl/bn.h>
#include <openssl/bytestring.h>
#include <openssl/ec_key.h>
#include <openssl/evp.h>
#include <openssl/nid.h>
#include <openssl/pkcs7.h>
#include <openssl/pool.h>
#include <openssl/x509.h>

#include "base/base.h"
#include "tests/service/fixture.h"
#include "tests/util/tmpdir.h"

struct fx g_fx;
static uint64_t fill_serial; /* fx_fill_store's last serial: a later fill goes on from it */

const struct fx_user fx_users[FX_USERS_MAX_] = {
    [FX_ALICE] = {"sip:alice@example.com", "pool-a", "+14155550101", "1101", "482916"},
    [FX_BOB] = {"sip:bob@example.com", "pool-b", "+14155550102", "1102", "739251"},
    [FX_CAROL] = {"sip:carol@example.com", "pool-a", FX_SHARED_PHONE, "1103", "615283"},
    [FX_DAVE] = {"sip:dave@example.com", "pool-b", FX_SHARED_PHONE, "1104", "907364"},
};

/* ---- the recorder: svc->respond ---- */

static struct {
    pthread_mutex_t lock;
    pthread_cond_t cond; /* CLOCK_MONOTONIC */
    size_t n;
    size_t dropped; /* answers past FX_ANSWERS_MAX */
    char watch[STORE_URI_MAX + 1];
    struct fx_answer a[FX_ANSWERS_MAX];
    /* scratch of the callback (called with `lock` held) */
    char text[FX_BODY_MAX + 1];
    uint8_t der[FX_BODY_MAX];
} rec = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* The gate every answer passes first (fx_hold_answers): a test holds the writer in an answer
 * while it queues the next items. `arrived` counts the answers that reached it. */
static pthread_mutex_t gate = PTHREAD_MUTEX_INITIALIZER;
static atomic_size_t arrived;

/* b64_decode decodes base64 text that may hold line breaks. */
static bool b64_decode(uint8_t *out, size_t cap, size_t *out_len, const char *in, size_t in_len)
{
    size_t m = 0;
    for (size_t i = 0; i < in_len && m < sizeof(rec.text); i++) {
        if (in[i] != '\n' && in[i] != '\r' && in[i] != ' ') {
            rec.text[m++] = in[i];
        }
    }
    size_t max = 0;
    return EVP_DecodedLength(&max, m) == 1 && max <= cap &&
           EVP_DecodeBase64(out, out_len, cap, (const uint8_t *)rec.text, m) == 1;
}

/* est_cert reads the one certificate of an EST certs-only body. */
static bool est_cert(struct fx_answer *a)
{
    size_t len = 0;
    if (!b64_decode(rec.der, sizeof(rec.der), &len, a->body, a->body_len)) {
        return false;
    }
    CBS cbs;
    CBS_init(&cbs, rec.der, len);
    STACK_OF(CRYPTO_BUFFER) *certs = sk_CRYPTO_BUFFER_new_null();
    bool ok = certs != NULL && PKCS7_get_raw_certificates(certs, &cbs, NULL) == 1 &&
              CBS_len(&cbs) == 0 && sk_CRYPTO_BUFFER_num(certs) == 1;
    if (ok) {
        const CRYPTO_BUFFER *b = sk_CRYPTO_BUFFER_value(certs, 0);
        ok = CRYPTO_BUFFER_len(b) <= sizeof(a->cert);
        if (ok) {
            a->cert_len = CRYPTO_BUFFER_len(b);
            memcpy(a->cert, CRYPTO_BUFFER_data(b), a->cert_len);
        }
    }
    sk_CRYPTO_BUFFER_pop_free(certs, CRYPTO_BUFFER_free);
    return ok;
}

/* soap_cert reads the BinarySecurityToken of a SOAP success body. */
static bool soap_cert(struct fx_answer *a)
{
    static const char open[] = "<wsse:BinarySecurityToken ";
    static const char close[] = "</wsse:BinarySecurityToken>";
    const char *p = strstr(a->body, open);
    const char *start = p != NULL ? strchr(p, '>') : NULL;
    const char *end = start != NULL ? strstr(start, close) : NULL;
    if (end == NULL) {
        return false;
    }
    start++;
    return b64_decode(a->cert, sizeof(a->cert), &a->cert_len, start, (size_t)(end - start));
}

static int outbox_find(void *ctx, const struct store_outbox_entry *e)
{
    const uint8_t *serial = ctx;
    return memcmp(e->serial, serial, SIGNER_SERIAL_LEN) == 0 ? 1 : 0;
}

/* check_cert parses the answered certificate and looks it up in the store. */
static void check_cert(struct fx_answer *a)
{
    bool soap = strncmp(a->type, "text/xml", 8) == 0;
    a->cert_parsed = soap ? soap_cert(a) : est_cert(a);
    if (!a->cert_parsed) {
        return;
    }
    const uint8_t *p = a->cert;
    X509 *x = d2i_X509(NULL, &p, (long)a->cert_len);
    BIGNUM *bn = x != NULL ? ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL) : NULL;
    a->cert_parsed = bn != NULL && p == a->cert + a->cert_len &&
                     BN_bn2bin_padded(a->serial, sizeof(a->serial), bn) == 1;
    BN_free(bn);
    X509_free(x);
    if (!a->cert_parsed) {
        return;
    }
    size_t len = 0;
    a->store_has_cert =
        store_cert_get(g_fx.st, &a->meta, rec.der, sizeof(rec.der), &len, a->serial) == 0 &&
        len == a->cert_len && memcmp(rec.der, a->cert, len) == 0;
    a->store_outbox_lists = a->store_has_cert && store_outbox_foreach(g_fx.st, a->meta.pool,
                                                                      outbox_find, a->serial) == 1;
}

/* diag_parse reads the Code and the reason of "X-Ms-diagnostics: 28903;source=...;reason=..." */
static void diag_parse(struct fx_answer *a, const char *headers)
{
    static const char name[] = "X-Ms-diagnostics: ";
    const char *d = headers != NULL ? strstr(headers, name) : NULL;
    if (d == NULL) {
        return;
    }
    const char *end = strstr(d, "\r\n");
    size_t diag_len = end != NULL ? (size_t)(end - d) - strlen(name) : 0;
    if (diag_len < sizeof(a->diag)) {
        memcpy(a->diag, d + strlen(name), diag_len);
        a->diag[diag_len] = '\0';
    }
    unsigned long id = strtoul(d + strlen(name), NULL, 10);
    enum signer_code code = SIGNER_CODE_MAX_;
    if (id <= UINT_MAX && signer_code_of_diag_id(&code, (unsigned)id) == 0) {
        a->code = (int)code;
    }
    const char *t = strstr(d, "\";token=\"");
    if (t != NULL && (end == NULL || t < end)) {
        t += strlen("\";token=\"");
        size_t n = strcspn(t, "\"\r\n");
        if (n < sizeof(a->token)) {
            memcpy(a->token, t, n);
            a->token[n] = '\0';
        }
    }
    const char *r = strstr(d, ";reason=\"");
    const char *eol = strstr(d, "\r\n");
    if (r != NULL && eol != NULL && r < eol) {
        r += strlen(";reason=\"");
        const char *q = memchr(r, '"', (size_t)(eol - r));
        size_t len = q != NULL ? (size_t)(q - r) : 0;
        if (len < sizeof(a->reason)) {
            memcpy(a->reason, r, len);
            a->reason[len] = '\0';
        }
    }
}

static void fx_respond(void *ctx, struct ioring_request *req, int status, const char *type,
                       const char *headers, const char *body, size_t len)
{
    (void)ctx;
    atomic_fetch_add(&arrived, 1);
    pthread_mutex_lock(&gate);
    pthread_mutex_unlock(&gate);
    pthread_mutex_lock(&rec.lock);
    if (rec.n == FX_ANSWERS_MAX) {
        rec.dropped++;
        pthread_mutex_unlock(&rec.lock);
        return;
    }
    struct fx_answer *a = &rec.a[rec.n];
    memset(a, 0, sizeof(*a));
    a->req_null = req == NULL;
    a->status = status;
    a->code = status == 200 ? SVC_RESULT_OK : -1;
    (void)snprintf(a->type, sizeof(a->type), "%s", type != NULL ? type : "");
    a->body_len = len < FX_BODY_MAX ? len : FX_BODY_MAX;
    memcpy(a->body, body, a->body_len);
    a->body[a->body_len] = '\0';
    const char *ra = headers != NULL ? strstr(headers, "Retry-After: ") : NULL;
    a->retry_after = ra != NULL;
    a->retry_after_s = ra != NULL ? (uint32_t)strtoul(ra + strlen("Retry-After: "), NULL, 10) : 0;
    a->www_authenticate = headers != NULL && strstr(headers, "WWW-Authenticate: ") != NULL;
    diag_parse(a, headers);
    if (status == 200) {
        check_cert(a);
    }
    if (rec.watch[0] != '\0') {
        a->lockout_read = store_lockout_get(g_fx.st, &a->lockout, rec.watch) == 0;
    }
    rec.n++;
    pthread_cond_broadcast(&rec.cond);
    pthread_mutex_unlock(&rec.lock);
}

void fx_hold_answers(void)
{
    pthread_mutex_lock(&gate);
}

void fx_release_answers(void)
{
    pthread_mutex_unlock(&gate);
}

void fx_wait_arrived(size_t n)
{
    uint64_t end = clock_mono_ns() + (uint64_t)FX_WAIT_MS * 1000000u;
    while (atomic_load(&arrived) < n && clock_mono_ns() < end) {
        (void)sched_yield();
    }
    cr_assert_geq(atomic_load(&arrived), n, "%zu answers arrived after %d ms, want %zu",
                  atomic_load(&arrived), FX_WAIT_MS, n);
}

void fx_watch(const char *uri)
{
    pthread_mutex_lock(&rec.lock);
    (void)snprintf(rec.watch, sizeof(rec.watch), "%s", uri);
    pthread_mutex_unlock(&rec.lock);
}

static struct timespec deadline_after_ms(uint32_t ms)
{
    struct timespec t;
    cr_assert_eq(clock_gettime(CLOCK_MONOTONIC, &t), 0);
    t.tv_sec += ms / 1000;
    t.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (t.tv_nsec >= 1000000000L) {
        t.tv_sec++;
        t.tv_nsec -= 1000000000L;
    }
    return t;
}

void fx_wait_answers(size_t n)
{
    cr_assert_leq(n, FX_ANSWERS_MAX);
    struct timespec deadline = deadline_after_ms(FX_WAIT_MS);
    pthread_mutex_lock(&rec.lock);
    int rc = 0;
    while (rec.n < n && rc != ETIMEDOUT) {
        rc = pthread_cond_timedwait(&rec.cond, &rec.lock, &deadline);
        cr_assert(rc == 0 || rc == ETIMEDOUT, "pthread_cond_timedwait: %d", rc);
    }
    size_t got = rec.n;
    pthread_mutex_unlock(&rec.lock);
    cr_assert_geq(got, n, "%zu answers after %d ms, want %zu", got, FX_WAIT_MS, n);
}

size_t fx_answers_count(void)
{
    pthread_mutex_lock(&rec.lock);
    size_t n = rec.n;
    size_t dropped = rec.dropped;
    pthread_mutex_unlock(&rec.lock);
    cr_assert_eq(dropped, 0, "more than FX_ANSWERS_MAX answers");
    return n;
}

const struct fx_answer *fx_answer(size_t i)
{
    cr_assert_lt(i, fx_answers_count());
    return &rec.a[i];
}

void fx_wait_items_free(uint32_t ring, uint32_t want)
{
    /* Items go back to their pool right after their answer, with no signal to wait on: a
     * bounded poll. */
    uint64_t end = clock_mono_ns() + (uint64_t)FX_WAIT_MS * 1000000u;
    uint32_t got = svc_items_free(g_fx.svc, ring);
    while (got != want && clock_mono_ns() < end) {
        (void)sched_yield();
        got = svc_items_free(g_fx.svc, ring);
    }
    cr_assert_eq(got, want, "ring %u: %u items free, want %u", ring, got, want);
}

/* ---- set-up ---- */

static void open_store(const struct fx_options *o, bool read_only)
{
    struct store_options so = {.path = g_fx.store_dir,
                               .map_size = o->map_size,
                               .defer_meta_sync = !o->no_defer,
                               .read_only = read_only};
    int rc = store_open(&g_fx.st, &so);
    cr_assert_eq(rc, 0, "store_open: %d", rc);
}

static void add_users(void)
{
    struct store_user users[FX_USERS_MAX_];
    memset(users, 0, sizeof(users));
    for (size_t i = 0; i < FX_USERS_MAX_; i++) {
        const struct fx_user *u = &fx_users[i];
        struct store_user *s = &users[i];
        cr_assert_eq(base_str_copy(s->uri, sizeof(s->uri), u->uri), 0);
        cr_assert_eq(base_str_copy(s->pool, sizeof(s->pool), u->pool), 0);
        cr_assert_eq(base_str_copy(s->phone, sizeof(s->phone), u->phone), 0);
        cr_assert_eq(base_str_copy(s->ext, sizeof(s->ext), u->ext), 0);
        signer_pin_verifier(g_fx.pin_key, s->pin_verifier, u->uri, u->pin);
        s->pin_len = (uint8_t)strlen(u->pin);
        s->created_s = clock_real_s();
    }
    size_t failed = 0;
    int rc = store_user_add_many(g_fx.st, users, FX_USERS_MAX_, &failed);
    cr_assert_eq(rc, 0, "store_user_add_many: %d (user %zu)", rc, failed);
}

/* ca_pkcs11 makes a SoftHSM2 token in the test's directory, generates the issuing key in it and
 * the CA around it, then opens the CA with the key through o->pkcs11_module (2 sessions). */
static void ca_pkcs11(const struct fx_options *o)
{
    char conf[TMPDIR_PATH_MAX + 32], tokens[TMPDIR_PATH_MAX + 16], cmd[256];
    (void)snprintf(tokens, sizeof(tokens), "%s/tokens", g_fx.dir);
    (void)snprintf(conf, sizeof(conf), "%s/softhsm2.conf", g_fx.dir);
    cr_assert_eq(mkdir(tokens, 0700), 0);
    FILE *f = fopen(conf, "w");
    cr_assert_not_null(f);
    fprintf(f, "directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n",
            tokens);
    cr_assert_eq(fclose(f), 0);
    cr_assert_eq(setenv("SOFTHSM2_CONF", conf, 1), 0);
    (void)snprintf(cmd, sizeof(cmd),
                   "softhsm2-util --init-token --free --label fx --pin 1234 --so-pin 12345678 "
                   ">/dev/null");
    cr_assert_eq(system(cmd), 0);
    static const char uri[] = "pkcs11:token=fx;object=ca?pin-value=1234";
    struct hsm_pkcs11_options po = {
        .module = FX_SOFTHSM, .uri = uri, .sessions = 1, .sign_timeout_ms = 5000};
    struct hsm_key *key = NULL;
    char err[256];
    cr_assert_eq(hsm_pkcs11_generate(&key, err, sizeof(err), &po, HSM_KEY_P256), 0, "%s", err);
    cr_assert_eq(signer_ca_init_with_key(g_fx.store_dir, key, "certprov1.example.com"), 0);
    hsm_key_free(key);
    key = NULL;
    po.module = o->pkcs11_module;
    po.sessions = 2;
    po.sign_timeout_ms = o->sign_timeout_ms != 0 ? o->sign_timeout_ms : 2000;
    cr_assert_eq(hsm_pkcs11_open(&key, err, sizeof(err), &po), 0, "%s", err);
    cr_assert_eq(signer_ca_open_with_key(&g_fx.ca, NULL, g_fx.store_dir, key), 0);
}

void fx_setup_opts(const struct fx_options *o)
{
    memset(&g_fx, 0, sizeof(g_fx));
    fill_serial = 0;
    pthread_mutex_lock(&rec.lock);
    rec.n = 0;
    rec.dropped = 0;
    atomic_store(&arrived, 0);
    rec.watch[0] = '\0';
    pthread_mutex_unlock(&rec.lock);
    pthread_condattr_t attr;
    cr_assert_eq(pthread_condattr_init(&attr), 0);
    cr_assert_eq(pthread_condattr_setclock(&attr, CLOCK_MONOTONIC), 0);
    cr_assert_eq(pthread_cond_init(&rec.cond, &attr), 0);
    cr_assert_eq(pthread_condattr_destroy(&attr), 0);

    tmpdir_create(g_fx.dir, sizeof(g_fx.dir), "certprov-svc");
    (void)snprintf(g_fx.store_dir, sizeof(g_fx.store_dir), "%s/store", g_fx.dir);
    if (o->pkcs11_module != NULL) {
        ca_pkcs11(o);
    } else {
        cr_assert_eq(signer_ca_init(g_fx.store_dir, HSM_KEY_P256, "certprov1.example.com"), 0);
        cr_assert_eq(signer_ca_open(&g_fx.ca, NULL, g_fx.store_dir), 0);
    }
    char path[200];
    cr_assert_eq(signer_file_path(path, sizeof(path), g_fx.store_dir, SIGNER_FILE_PIN_KEY), 0);
    cr_assert_eq(signer_pin_key_load(&g_fx.pin_key, path, true), 0);

    open_store(o, false);
    add_users();
    if (o->read_only) {
        store_close(g_fx.st);
        g_fx.st = NULL;
        open_store(o, true);
    }

    service_config_defaults(&g_fx.cfg);
    cr_assert_eq(base_str_copy(g_fx.cfg.store_path, sizeof(g_fx.cfg.store_path), g_fx.store_dir),
                 0);
    g_fx.cfg.map_size = o->map_size;
    if (o->pkcs11_module != NULL) {
        cr_assert_eq(base_str_copy(g_fx.cfg.ca_backend, sizeof(g_fx.cfg.ca_backend), "pkcs11"), 0);
        if (o->sign_timeout_ms != 0) {
            g_fx.cfg.ca_sign_timeout_ms = o->sign_timeout_ms;
        }
    }
    if (o->window_failures_max != 0) {
        g_fx.cfg.pin.window_failures_max = o->window_failures_max;
    }
    struct service_options so = {.cfg = &g_fx.cfg,
                                 .st = g_fx.st,
                                 .ca = g_fx.ca,
                                 .pin_key = g_fx.pin_key,
                                 .rings = o->rings != 0 ? o->rings : 1,
                                 .items_per_ring = o->items_per_ring != 0 ? o->items_per_ring : 8,
                                 .store_probe_ms = o->store_probe_ms};
    int rc = service_new(&g_fx.svc, &so);
    cr_assert_eq(rc, 0, "service_new: %d", rc);
    /* Before any item runs: the writer reads these only when it answers. */
    g_fx.svc->respond = fx_respond;
    g_fx.svc->respond_ctx = &rec;
}

void fx_setup(void)
{
    fx_setup_opts(&(struct fx_options){0});
}

void fx_service_stop(void)
{
    service_free(g_fx.svc);
    g_fx.svc = NULL;
}

void fx_teardown(void)
{
    fx_service_stop();
    store_close(g_fx.st);
    g_fx.st = NULL;
    signer_ca_free(g_fx.ca);
    g_fx.ca = NULL;
    signer_pin_key_free(g_fx.pin_key);
    g_fx.pin_key = NULL;
    (void)pthread_cond_destroy(&rec.cond);
    tmpdir_remove(g_fx.dir);
}

/* ---- requests ---- */

size_t fx_csr(uint8_t *out, size_t cap, const char *cn)
{
    EC_KEY *ec = EC_KEY_new_by_curve_name(NID_X9_62_prime256v1);
    cr_assert_not_null(ec);
    cr_assert(EC_KEY_generate_key(ec));
    EVP_PKEY *key = EVP_PKEY_new();
    cr_assert(EVP_PKEY_assign_EC_KEY(key, ec)); /* key owns ec */
    X509_REQ *req = X509_REQ_new();
    cr_assert_not_null(req);
    cr_assert(X509_REQ_set_version(req, X509_REQ_VERSION_1));
    cr_assert(X509_NAME_add_entry_by_NID(X509_REQ_get_subject_name(req), NID_commonName,
                                         MBSTRING_UTF8, (const uint8_t *)cn, -1, -1, 0));
    cr_assert(X509_REQ_set_pubkey(req, key));
    cr_assert(X509_REQ_sign(req, key, EVP_sha256()) > 0);
    int len = i2d_X509_REQ(req, NULL);
    cr_assert(len > 0 && (size_t)len <= cap, "CSR of %d bytes", len);
    uint8_t *p = out;
    cr_assert_eq(i2d_X509_REQ(req, &p), len);
    X509_REQ_free(req);
    EVP_PKEY_free(key);
    return (size_t)len;
}

struct svc_item *fx_signin(uint32_t ring, enum svc_route route, const char *login, const char *pin)
{
    static unsigned seq;
    struct svc_item *it = svc_item_take(g_fx.svc, ring);
    cr_assert_not_null(it, "ring %u has no free item", ring);
    it->route = route;
    it->start_ns = clock_mono_ns();
    (void)base_str_copy(it->client, sizeof(it->client), "192.0.2.1:40000");
    if (route == SVC_ROUTE_SOAP) {
        seq++;
        (void)snprintf(it->request_id, sizeof(it->request_id), "req-%u", seq);
        (void)snprintf(it->device_id, sizeof(it->device_id), "{DEV-%u}", seq);
    }
    svc_authenticate(g_fx.svc, it, login, pin);
    svc_item_validate(g_fx.svc, it);
    return it;
}

void fx_attach_csr(struct svc_item *it)
{
    cr_assert(it->proceed, "the ring did not go on with a user");
    cr_assert_not(it->failed, "%s", it->reason);
    cr_assert_neq(it->user.uri[0], '\0');
    it->csr_der_len =
        fx_csr(it->csr_der, sizeof(it->csr_der), signer_uri_sign_in_name(it->user.uri));
    enum signer_reject reject = SIGNER_REJECT_NONE;
    cr_assert_eq(signer_csr_parse(&it->csr, &reject, it->csr_der, it->csr_der_len), 0, "%s",
                 signer_reject_text(reject));
    cr_assert_eq(signer_csr_verify(&it->csr, &reject), 0);
    cr_assert_eq(signer_identity_check(&it->csr, &reject, it->user.uri), 0);
    it->hours = FX_HOURS;
    svc_item_validate(g_fx.svc, it);
}

struct svc_item *fx_signin_csr(uint32_t ring, enum svc_route route, const char *login,
                               const char *pin)
{
    struct svc_item *it = fx_signin(ring, route, login, pin);
    if (it->proceed) {
        fx_attach_csr(it);
    }
    return it;
}

struct svc_item *fx_enroll(uint32_t ring, enum svc_route route, enum fx_user_id u)
{
    struct svc_item *it = fx_signin(ring, route, fx_users[u].phone, fx_users[u].pin);
    cr_assert(it->proceed, "%s: the ring did not go on", fx_users[u].uri);
    cr_assert_str_eq(it->user.uri, fx_users[u].uri);
    fx_attach_csr(it);
    return it;
}

void fx_turn(uint32_t ring, struct svc_item **items, size_t n)
{
    struct svc_ring *r = &g_fx.svc->rings[ring];
    cr_assert_eq(r->num_pending, 0);
    cr_assert_leq(n, r->cap);
    for (size_t i = 0; i < n; i++) {
        r->pending[r->num_pending++] = items[i];
    }
    /* A turn signs a slice, the oldest first; the ring calls again while items are left. */
    for (size_t left = n; left > 0;) {
        bool more = service_turn_end(g_fx.svc, ring);
        left -= left < SVC_TURN_SLICE ? left : SVC_TURN_SLICE;
        cr_assert_eq(r->num_pending, left);
        cr_assert_eq(more, left > 0);
        for (size_t i = 0; i < left; i++) { /* the rest kept, in arrival order */
            cr_assert_eq(r->pending[i], items[n - left + i]);
        }
    }
}

bool fx_readyz(char *out, size_t cap)
{
    bool ready = false;
    size_t len = svc_readyz(g_fx.svc, out, cap, &ready);
    cr_assert_lt(len, cap);
    cr_assert_not_null(strstr(out, ready ? "{\"ready\":true," : "{\"ready\":false,"), "%s", out);
    return ready;
}

struct store_lockout fx_lockout(const char *uri)
{
    struct store_lockout l;
    cr_assert_eq(store_lockout_get(g_fx.st, &l, uri), 0);
    return l;
}

/* ---- a full store ---- */

#define FILL_COMMITS_MAX 100000 /* bounds the fill loop: a 1 MiB map takes a few hundred */

/* fill_commit commits `num` synthetic certificates of der_len bytes; returns the commit's rc. */
static int fill_commit(struct store_batch *b, uint64_t *serial, size_t num, size_t der_len)
{
    static uint8_t der[1024];
    for (size_t i = 0; i < sizeof(der); i++) {
        der[i] = (uint8_t)(i * 7 + 3);
    }
    cr_assert_leq(der_len, sizeof(der));
    store_batch_clear(b);
    for (size_t i = 0; i < num; i++) {
        struct store_cert_meta m;
        memset(&m, 0, sizeof(m));
        uint64_t s = ++*serial;
        m.serial[0] = 0x5f; /* positive, and never a CSPRNG serial of ours by chance */
        for (size_t k = 0; k < 8; k++) {
            m.serial[15 - k] = (uint8_t)(s >> (8 * k));
        }
        (void)base_str_copy(m.uri, sizeof(m.uri), "sip:filler@example.com");
        (void)base_str_copy(m.pool, sizeof(m.pool), "pool-fill");
        m.not_before_s = clock_real_s();
        m.not_after_s = m.not_before_s + 86400;
        m.issued_at_s = m.not_before_s;
        cr_assert_eq(store_batch_add_cert(b, &m, der, der_len), 0);
    }
    return store_batch_commit(g_fx.st, b);
}

uint64_t fx_fill_store(void)
{
    static const struct {
        size_t num;
        size_t der_len;
    } steps[] = {{64, 1024}, {8, 1024}, {1, 1024}, {1, 64}};
    struct store_batch *b = calloc(1, sizeof(*b));
    cr_assert_not_null(b);
    uint64_t stored = 0;
    size_t commits = 0;
    for (size_t s = 0; s < sizeof(steps) / sizeof(steps[0]); s++) {
        int rc = 0;
        while ((rc = fill_commit(b, &fill_serial, steps[s].num, steps[s].der_len)) == 0) {
            stored += steps[s].num;
            cr_assert_lt(++commits, FILL_COMMITS_MAX);
        }
        cr_assert_eq(rc, -ENOSPC, "filling the store: %d", rc);
    }
    free(b);
    return stored;
}
