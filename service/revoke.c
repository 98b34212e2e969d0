/* revoke.c: revocation on the request path: a renewal with a revoked certificate or by a
 * disabled user is refused, and a disabled user's PIN does not sign in (README, Revocation). Both
 * checks are one LMDB lookup each in small trees (`revoked` holds only the revoked serials,
 * `disabled` only the disabled users), on the ring, beside the renewal's store_user_get: a read
 * transaction of LMDB is lock-free and its pages of these trees stay in memory, a fraction of the
 * certificate's signature the renewal then costs. The CRL: built and signed by the thread
 * cp-crl (never on a ring) when the store's revocation generation changed (coalesced) or half
 * its validity passed, and served from memory. Calls item.c and metrics.c. */
#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/base.h"
#include "ioring/ioring.h"
#include "service/internal.h"

bool svc_revoke_refuses(struct service *svc, struct svc_item *it, const uint8_t *der, size_t len)
{
    uint8_t serial[SIGNER_SERIAL_LEN];
    if (signer_cert_serial(serial, der, len) != 0) {
        svc_item_fail(it, SIGNER_REASON_CLIENT_CERT_UNTRUSTED,
                      "The client certificate was not issued by this appliance's CA");
        return true;
    }
    struct store_revocation rev;
    int rc = store_cert_revocation_get(svc->st, &rev, serial);
    if (rc == 0) {
        svc_item_fail(it, SIGNER_REASON_CLIENT_CERT_REVOKED,
                      "The client certificate has been revoked: enroll with the PIN");
        return true;
    }
    int64_t since = 0;
    if (rc == -ENOENT) {
        rc = store_user_disabled(svc->st, &since, it->user.uri);
    }
    if (rc != 0) {
        svc_item_fail(it, SIGNER_REASON_STORE_FAILED, "the revocation list cannot be read");
        return true;
    }
    if (since != 0) {
        svc_item_fail(it, SIGNER_REASON_USER_DISABLED,
                      "User is not SIP enabled: the user of the client certificate is disabled");
        return true;
    }
    return false;
}

bool svc_user_disabled(struct service *svc, const char *uri)
{
    int64_t since = 0;
    /* Unreadable counts as disabled: this only decides whether the ring goes on with a user (the
     * writer's judgement then refuses the sign-in), never lets anybody in. */
    return store_user_disabled(svc->st, &since, uri) != 0 || since != 0;
}

/* ---- the CRL: built off the rings by the thread cp-crl, served from memory ---- */

#define CRL_POLL_MS 1000 /* how often cp-crl reads the revocation generation */
/* struct crl_body is one built CRL as the engine sends it: shared by the answers in flight
 * (ioring_body: reference-counted, sent in place without a copy into a request's slot, so its
 * size is not bounded by max_response_bytes) and freed by the last of them or by the next build.
 */
struct crl_body {
    struct ioring_body body;
    uint8_t *der; /* signer_crl_free */
};

static void crl_body_free(struct ioring_body *b)
{
    struct crl_body *cb = (struct crl_body *)b;
    signer_crl_free(cb->der);
    free(cb);
}

struct svc_revoke {
    pthread_t thread;
    bool started;
    pthread_mutex_t lock; /* guards everything below; held by a ring only to copy the bytes */
    pthread_cond_t cond;  /* CLOCK_MONOTONIC */
    bool stopping;
    struct crl_body *crl; /* one reference held here; NULL until the first build */
    /* cp-crl only: */
    int64_t built_s;     /* thisUpdate of the current CRL; 0 = none */
    uint64_t built_gen;  /* the generation it was built from */
    uint64_t crl_number; /* the last one used: CRL numbers only grow (RFC 5280 §5.2.3) */
    struct signer_crl_entry *entries;
    size_t num_entries;
    size_t cap_entries;
    int64_t now_s;
};

static int collect_entry(void *ctx, const struct store_revocation *rev)
{
    struct svc_revoke *rv = ctx;
    if (rev->not_after_s < rv->now_s) {
        return 0; /* expired: RFC 5280 §5 lets a CRL leave it out, and it keeps the CRL small */
    }
    if (rv->num_entries == rv->cap_entries) {
        size_t cap = rv->cap_entries == 0 ? 1024 : rv->cap_entries * 2;
        struct signer_crl_entry *e = realloc(rv->entries, cap * sizeof(*e));
        if (e == NULL) {
            return -ENOMEM;
        }
        rv->entries = e;
        rv->cap_entries = cap;
    }
    struct signer_crl_entry *e = &rv->entries[rv->num_entries++];
    static_assert(SIGNER_SERIAL_LEN == STORE_SERIAL_LEN, "serial sizes");
    memcpy(e->serial, rev->serial, sizeof(e->serial));
    e->revoked_at_s = rev->revoked_at_s;
    e->reason = rev->reason;
    return 0;
}

/* crl_build reads every revocation in one snapshot and builds, signs and installs the CRL. */
static int crl_build(struct service *svc, struct svc_revoke *rv)
{
    uint64_t t0 = clock_mono_ns();
    rv->now_s = clock_real_s();
    rv->num_entries = 0;
    uint64_t gen = 0;
    int rc = store_revoked_foreach(svc->st, &gen, collect_entry, rv);
    if (rc != 0) {
        log_err("service: crl_build_failed step=read rc=%d", rc);
        return rc;
    }
    /* CRL numbers grow with the clock (seconds), and at least by one: also across restarts,
     * unless the clock steps back further than the CRLs were apart. */
    uint64_t number =
        (uint64_t)rv->now_s > rv->crl_number ? (uint64_t)rv->now_s : rv->crl_number + 1;
    int64_t next = rv->now_s + (int64_t)svc->cfg->crl_validity_h * 3600;
    uint8_t *der = NULL;
    size_t len = 0;
    rc = signer_crl_build(svc->ca, &der, &len, rv->entries, rv->num_entries, number, rv->now_s,
                          next);
    if (rc != 0) {
        log_err("service: crl_build_failed step=sign rc=%d", rc);
        return rc;
    }
    struct crl_body *cb = calloc(1, sizeof(*cb));
    if (cb == NULL) {
        signer_crl_free(der);
        log_err("service: crl_build_failed step=memory");
        return -ENOMEM;
    }
    cb->der = der;
    atomic_init(&cb->body.refs, 1);
    cb->body.data = der;
    cb->body.len = len;
    cb->body.free_fn = crl_body_free;
    rv->crl_number = number;
    rv->built_s = rv->now_s;
    rv->built_gen = gen;
    base_mutex_lock(&rv->lock);
    struct crl_body *old = rv->crl;
    rv->crl = cb;
    base_mutex_unlock(&rv->lock);
    if (old != NULL) {
        ioring_body_put(&old->body); /* freed now, or by the last answer that sends it */
    }
    log_info("service: crl_built entries=%zu bytes=%zu number=%llu generation=%llu ms=%llu",
             rv->num_entries, len, (unsigned long long)number, (unsigned long long)gen,
             (unsigned long long)((clock_mono_ns() - t0) / 1000000u));
    return 0;
}

/* crl_due: a revocation changed the generation (and crl_min_interval_s has passed since the last
 * build: coalesced), or half the CRL's validity has passed, or there is none. */
static bool crl_due(struct service *svc, struct svc_revoke *rv, int64_t now)
{
    if (rv->built_s == 0) {
        return true;
    }
    if (now - rv->built_s >= (int64_t)svc->cfg->crl_validity_h * 1800 || now < rv->built_s) {
        return true;
    }
    uint64_t gen = 0;
    if (store_revoke_generation(svc->st, &gen) != 0 || gen == rv->built_gen) {
        return false;
    }
    return now - rv->built_s >= (int64_t)svc->cfg->crl_min_interval_s;
}

static void *crl_main(void *arg)
{
    struct service *svc = arg;
    struct svc_revoke *rv = svc->revoke;
    base_thread_name("cp-crl");
    base_mutex_lock(&rv->lock);
    /* The thread's loop: unbounded by design, ends at svc_revoke_stop. */
    while (!rv->stopping) {
        base_mutex_unlock(&rv->lock);
        int64_t now = clock_real_s();
        if (crl_due(svc, rv, now)) {
            (void)crl_build(svc, rv); /* a failure is logged and tried again at the next poll */
        }
        uint64_t until = clock_mono_ns() + CRL_POLL_MS * 1000000ull;
        base_mutex_lock(&rv->lock);
        if (!rv->stopping) {
            (void)base_cond_wait_until(&rv->cond, &rv->lock, until);
        }
    }
    base_mutex_unlock(&rv->lock);
    return NULL;
}

int svc_revoke_start(struct service *svc)
{
    struct svc_revoke *rv = calloc(1, sizeof(*rv));
    if (rv == NULL) {
        return -ENOMEM;
    }
    svc->revoke = rv;
    rv->lock = (pthread_mutex_t)PTHREAD_MUTEX_INITIALIZER;
    base_cond_init_mono(&rv->cond);
    /* The first CRL before the rings start: served from the first request on. A failure (the
     * key backend down) is retried by the thread. */
    (void)crl_build(svc, rv);
    int rc = pthread_create(&rv->thread, NULL, crl_main, svc);
    if (rc != 0) {
        return -rc;
    }
    rv->started = true;
    return 0;
}

void svc_revoke_stop(struct service *svc)
{
    struct svc_revoke *rv = svc->revoke;
    if (rv == NULL) {
        return;
    }
    if (rv->started) {
        base_mutex_lock(&rv->lock);
        rv->stopping = true;
        base_cond_signal(&rv->cond);
        base_mutex_unlock(&rv->lock);
        int rc = pthread_join(rv->thread, NULL);
        ASSERT(rc == 0);
    }
    int rc = pthread_cond_destroy(&rv->cond);
    ASSERT(rc == 0);
    if (rv->crl != NULL) {
        ioring_body_put(&rv->crl->body); /* answers still in flight hold their own */
    }
    free(rv->entries);
    free(rv);
    svc->revoke = NULL;
}

void svc_revoke_crl(struct service *svc, struct ioring_request *req)
{
    struct svc_revoke *rv = svc->revoke;
    /* A reference under the lock, then the engine sends the bytes in place: cp-crl only swaps
     * the pointer under it, so a ring never waits for a build, nor copies the CRL. */
    base_mutex_lock(&rv->lock);
    struct crl_body *cb = rv->crl;
    if (cb != NULL) {
        ioring_body_get(&cb->body);
    }
    base_mutex_unlock(&rv->lock);
    if (cb == NULL) {
        svc_log_simple(req, SVC_ROUTE_CRL, 503);
        svc_metrics_request(svc, SVC_ROUTE_CRL, SVC_RESULT_NOT_FOUND);
        static const char msg[] = "the CRL is not built yet (the CA key backend is unavailable)\n";
        svc_respond(svc, req, 503, "text/plain", "Retry-After: 10\r\n", msg, sizeof(msg) - 1);
        return;
    }
    svc_respond_body(svc, req, 200, "application/pkix-crl", &cb->body);
    svc_log_simple(req, SVC_ROUTE_CRL, 200);
    svc_metrics_request(svc, SVC_ROUTE_CRL, SVC_RESULT_OK);
}

/* ---- OCSP (RFC 6960): answered on the ring, from a per-serial cache when it can be ---- */

#define OCSP_CACHE_SLOTS 2048 /* responses kept: single-certificate requests without a nonce */
#define OCSP_CACHED_MAX 1536  /* bytes of a cached response (one certificate: RSA-3072 fits) */
#define OCSP_PATH "/CertProv/ocsp/"

struct ocsp_slot {
    bool used;
    uint8_t serial[SIGNER_SERIAL_LEN];
    uint64_t gen;       /* the revocation generation it was answered under */
    int64_t expires_s;  /* ocsp_cache_s after it was made */
    uint8_t certid_len; /* the CertID it answers (hash algorithm and issuer hashes included) */
    uint8_t certid[128];
    uint16_t len;
    uint8_t der[OCSP_CACHED_MAX];
};

struct svc_ocsp {
    struct signer_ocsp_signer *signer; /* the delegated signer, or NULL: the CA signs */
    pthread_mutex_t lock;
    struct ocsp_slot *slots; /* OCSP_CACHE_SLOTS, allocated at start */
};

/* 2048 slots of about 1.7 KiB: 3.5 MiB, allocated once. */
int svc_ocsp_init(struct service *svc)
{
    struct svc_ocsp *o = calloc(1, sizeof(*o));
    if (o == NULL) {
        return -ENOMEM;
    }
    o->lock = (pthread_mutex_t)PTHREAD_MUTEX_INITIALIZER;
    o->slots = calloc(OCSP_CACHE_SLOTS, sizeof(*o->slots));
    if (o->slots == NULL) {
        free(o);
        return -ENOMEM;
    }
    svc->ocsp = o;
    /* The delegated signer (certprovctl ca ocsp-signer), read at start: a new one takes effect
     * at the next start. Without a usable one the CA's key signs. */
    int rc = signer_ocsp_signer_open(&o->signer, svc->ca, svc->cfg->store_path);
    if (rc == 0 && signer_ocsp_signer_not_after(o->signer) <= clock_real_s()) {
        log_warn("service: ocsp_signer_expired action=\"certprovctl ca ocsp-signer\" "
                 "fallback=ca");
        signer_ocsp_signer_free(o->signer);
        o->signer = NULL;
    } else if (rc == 0) {
        log_info("service: ocsp_signer loaded=delegated");
    } else if (rc != -ENOENT) {
        log_warn("service: ocsp_signer_unusable rc=%d action=\"certprovctl ca ocsp-signer\" "
                 "fallback=ca",
                 rc);
    }
    return 0;
}

void svc_ocsp_free(struct service *svc)
{
    if (svc->ocsp != NULL) {
        signer_ocsp_signer_free(svc->ocsp->signer);
        free(svc->ocsp->slots);
        free(svc->ocsp);
        svc->ocsp = NULL;
    }
}

static struct ocsp_slot *slot_of(struct svc_ocsp *o, const uint8_t serial[SIGNER_SERIAL_LEN])
{
    return &o->slots[base_fnv1a(serial, SIGNER_SERIAL_LEN) % OCSP_CACHE_SLOTS]; /* any spread */
}

static bool cacheable(const struct signer_ocsp_request *req)
{
    return req->num_certs == 1 && req->nonce == NULL && req->certs[0].certid_len <= 128;
}

/* cache_get copies a fresh cached response for the request into out. */
static bool cache_get(struct service *svc, uint8_t *out, size_t *out_len,
                      const struct signer_ocsp_request *req, uint64_t gen, int64_t now)
{
    const struct signer_ocsp_cert *c = &req->certs[0];
    struct svc_ocsp *o = svc->ocsp;
    struct ocsp_slot *s = slot_of(o, c->serial);
    bool hit = false;
    base_mutex_lock(&o->lock);
    if (s->used && s->gen == gen && now < s->expires_s &&
        memcmp(s->serial, c->serial, SIGNER_SERIAL_LEN) == 0 && s->certid_len == c->certid_len &&
        memcmp(s->certid, c->certid, c->certid_len) == 0) {
        memcpy(out, s->der, s->len);
        *out_len = s->len;
        hit = true;
    }
    base_mutex_unlock(&o->lock);
    return hit;
}

static void cache_put(struct service *svc, const uint8_t *der, size_t len,
                      const struct signer_ocsp_request *req, uint64_t gen, int64_t now)
{
    const struct signer_ocsp_cert *c = &req->certs[0];
    struct svc_ocsp *o = svc->ocsp;
    struct ocsp_slot *s = slot_of(o, c->serial);
    ASSERT(len <= sizeof(s->der));
    base_mutex_lock(&o->lock);
    s->used = true;
    memcpy(s->serial, c->serial, SIGNER_SERIAL_LEN);
    s->gen = gen;
    s->expires_s = now + (int64_t)svc->cfg->ocsp_cache_s;
    s->certid_len = (uint8_t)c->certid_len;
    memcpy(s->certid, c->certid, c->certid_len);
    s->len = (uint16_t)len;
    memcpy(s->der, der, len);
    base_mutex_unlock(&o->lock);
}

/* answer_cert looks up one certificate: revoked, issued (good) or never issued (unknown). */
static int answer_cert(struct service *svc, struct signer_ocsp_answer *a,
                       const struct signer_ocsp_cert *c)
{
    memset(a, 0, sizeof(*a));
    a->status = SIGNER_OCSP_UNKNOWN;
    if (!c->serial_ok) {
        return 0;
    }
    struct store_revocation rev;
    int rc = store_cert_revocation_get(svc->st, &rev, c->serial);
    if (rc == 0 && rev.seq == 0) {
        return 0; /* another appliance's certificate, revoked through the directory: unknown */
    }
    if (rc == 0) {
        a->status = SIGNER_OCSP_REVOKED;
        a->revoked_at_s = rev.revoked_at_s;
        a->reason = rev.reason;
        return 0;
    }
    if (rc != -ENOENT) {
        return rc;
    }
    struct store_cert_meta meta;
    static _Thread_local uint8_t der[STORE_CERT_DER_MAX];
    size_t len = 0;
    rc = store_cert_get(svc->st, &meta, der, sizeof(der), &len, c->serial);
    if (rc == 0) {
        a->status = SIGNER_OCSP_GOOD;
    }
    return rc == -ENOENT ? 0 : rc;
}

static void ocsp_send(struct service *svc, struct ioring_request *req, const uint8_t *der,
                      size_t len, enum signer_ocsp_status status)
{
    svc_log_simple(req, SVC_ROUTE_OCSP, 200);
    svc_metrics_request(svc, SVC_ROUTE_OCSP,
                        status == SIGNER_OCSP_SUCCESSFUL ? SVC_RESULT_OK : SVC_RESULT_NOT_FOUND);
    /* RFC 6960 Appendix A.1: every answer is HTTP 200; the status is inside. */
    svc_respond(svc, req, 200, "application/ocsp-response", NULL, (const char *)der, len);
}

static void ocsp_fail(struct service *svc, struct ioring_request *req,
                      enum signer_ocsp_status status)
{
    uint8_t err[SIGNER_OCSP_ERROR_LEN];
    size_t n = signer_ocsp_error(err, status);
    ocsp_send(svc, req, err, n, status);
}

/* get_request decodes the request of GET /CertProv/ocsp/{url-encoded base64} (RFC 6960 A.1). */
static int get_request(uint8_t *out, size_t cap, size_t *out_len, const char *target, size_t len)
{
    size_t plen = sizeof(OCSP_PATH) - 1;
    ASSERT(len >= plen);
    char b64[SIGNER_OCSP_REQUEST_MAX * 4 / 3 + 8];
    size_t n = 0;
    /* Bounded by the target's length. */
    for (size_t i = plen; i < len; i++) {
        char ch = target[i];
        if (ch == '?') {
            break;
        }
        if (ch == '%') {
            unsigned v = 0;
            if (i + 2 >= len || sscanf(target + i + 1, "%2x", &v) != 1 ||
                strchr("0123456789abcdefABCDEF", target[i + 2]) == NULL) {
                return -EBADMSG;
            }
            ch = (char)v;
            i += 2;
        }
        if (n == sizeof(b64)) {
            return -E2BIG;
        }
        b64[n++] = ch;
    }
    return signer_base64_decode(out, cap, out_len, b64, n, SIGNER_BASE64_STRICT) == 0 ? 0
                                                                                      : -EBADMSG;
}

void svc_revoke_ocsp(struct service *svc, struct ioring_request *req, bool post)
{
    static _Thread_local uint8_t get_buf[SIGNER_OCSP_REQUEST_MAX];
    static _Thread_local uint8_t out[SIGNER_OCSP_RESPONSE_MAX];
    static _Thread_local struct signer_ocsp_request parsed;
    const uint8_t *der = NULL;
    size_t len = 0;
    if (post) {
        der = ioring_request_body(req, &len);
    } else {
        size_t tlen = 0;
        const char *target = ioring_request_target(req, &tlen);
        if (tlen <= sizeof(OCSP_PATH) - 1 ||
            get_request(get_buf, sizeof(get_buf), &len, target, tlen) != 0) {
            ocsp_fail(svc, req, SIGNER_OCSP_MALFORMED);
            return;
        }
        der = get_buf;
    }
    enum signer_ocsp_status status = SIGNER_OCSP_MALFORMED;
    if (signer_ocsp_parse(svc->ca, &parsed, &status, der, len) != 0) {
        ocsp_fail(svc, req, status);
        return;
    }
    int64_t now = clock_real_s();
    uint64_t gen = 0;
    if (store_revoke_generation(svc->st, &gen) != 0) {
        ocsp_fail(svc, req, SIGNER_OCSP_INTERNAL_ERROR);
        return;
    }
    size_t out_len = 0;
    bool cache = cacheable(&parsed) && svc->cfg->ocsp_cache_s > 0;
    if (cache && cache_get(svc, out, &out_len, &parsed, gen, now)) {
        ocsp_send(svc, req, out, out_len, SIGNER_OCSP_SUCCESSFUL);
        return;
    }
    struct signer_ocsp_answer answers[SIGNER_OCSP_CERTS_MAX];
    for (size_t i = 0; i < parsed.num_certs; i++) {
        if (answer_cert(svc, &answers[i], &parsed.certs[i]) != 0) {
            ocsp_fail(svc, req, SIGNER_OCSP_INTERNAL_ERROR);
            return;
        }
    }
    /* nextUpdate: when the next CRL is due at the latest; a client may cache until then. */
    int64_t next = now + (int64_t)svc->cfg->crl_validity_h * 3600;
    int rc = signer_ocsp_respond(svc->ca, svc->ocsp->signer, out, sizeof(out), &out_len, &parsed,
                                 answers, now, next);
    if (rc != 0) {
        ocsp_fail(svc, req, rc == -EAGAIN ? SIGNER_OCSP_TRY_LATER : SIGNER_OCSP_INTERNAL_ERROR);
        return;
    }
    if (cache && out_len <= OCSP_CACHED_MAX) {
        cache_put(svc, out, out_len, &parsed, gen, now);
    }
    ocsp_send(svc, req, out, out_len, SIGNER_OCSP_SUCCESSFUL);
}
