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
#include "service/internal.h"

static void refuse(struct svc_item *it, enum signer_code code, const char *reason)
{
    it->failed = true;
    it->fail = code;
    (void)snprintf(it->reason, sizeof(it->reason), "%s", reason);
}

bool svc_revoke_refuses(struct service *svc, struct svc_item *it, const uint8_t *der, size_t len)
{
    uint8_t serial[SIGNER_SERIAL_LEN];
    if (signer_cert_serial(serial, der, len) != 0) {
        refuse(it, SIGNER_CODE_AUTHENTICATION_FAILED,
               "The client certificate was not issued by this appliance's CA");
        return true;
    }
    struct store_revocation rev;
    int rc = store_cert_revocation_get(svc->st, &rev, serial);
    if (rc == 0) {
        refuse(it, SIGNER_CODE_AUTHENTICATION_FAILED,
               "The client certificate has been revoked (cert_revoked): enroll with the PIN");
        return true;
    }
    int64_t since = 0;
    if (rc == -ENOENT) {
        rc = store_user_disabled(svc->st, &since, it->user.uri);
    }
    if (rc != 0) {
        refuse(it, SIGNER_CODE_INTERNAL_ERROR, "the revocation list cannot be read");
        return true;
    }
    if (since != 0) {
        refuse(it, SIGNER_CODE_AUTHENTICATION_FAILED,
               "The user of the client certificate is disabled (user_disabled)");
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

struct svc_revoke {
    pthread_t thread;
    bool started;
    pthread_mutex_t lock; /* guards everything below; held by a ring only to copy the bytes */
    pthread_cond_t cond;  /* CLOCK_MONOTONIC */
    bool stopping;
    uint8_t *crl; /* signer_crl_free; NULL until the first build */
    size_t crl_len;
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
    rv->crl_number = number;
    rv->built_s = rv->now_s;
    rv->built_gen = gen;
    base_mutex_lock(&rv->lock);
    uint8_t *old = rv->crl;
    rv->crl = der;
    rv->crl_len = len;
    base_mutex_unlock(&rv->lock);
    signer_crl_free(old);
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
        struct timespec ts;
        int rc = clock_gettime(CLOCK_MONOTONIC, &ts);
        ASSERT(rc == 0);
        ts.tv_sec += CRL_POLL_MS / 1000;
        base_mutex_lock(&rv->lock);
        if (!rv->stopping) {
            rc = pthread_cond_timedwait(&rv->cond, &rv->lock, &ts);
            ASSERT(rc == 0 || rc == ETIMEDOUT);
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
    pthread_condattr_t ca;
    int rc = pthread_condattr_init(&ca);
    ASSERT(rc == 0);
    rc = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    ASSERT(rc == 0);
    rc = pthread_cond_init(&rv->cond, &ca);
    ASSERT(rc == 0);
    rc = pthread_condattr_destroy(&ca);
    ASSERT(rc == 0);
    /* The first CRL before the rings start: served from the first request on. A failure (the
     * key backend down) is retried by the thread. */
    (void)crl_build(svc, rv);
    rc = pthread_create(&rv->thread, NULL, crl_main, svc);
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
    signer_crl_free(rv->crl);
    free(rv->entries);
    free(rv);
    svc->revoke = NULL;
}

void svc_revoke_crl(struct service *svc, struct ioring_request *req)
{
    struct svc_revoke *rv = svc->revoke;
    base_mutex_lock(&rv->lock);
    if (rv->crl == NULL) {
        base_mutex_unlock(&rv->lock);
        svc_log_simple(req, SVC_ROUTE_CRL, 503);
        svc_metrics_request(svc, SVC_ROUTE_CRL, SVC_RESULT_NOT_FOUND);
        static const char msg[] = "the CRL is not built yet (the CA key backend is unavailable)\n";
        svc_respond(svc, req, 503, "text/plain", "Retry-After: 10\r\n", msg, sizeof(msg) - 1);
        return;
    }
    /* The bytes are copied into the request's slot under the lock: cp-crl only swaps the
     * pointer under it, so a ring never waits for a build. */
    svc_respond(svc, req, 200, "application/pkix-crl", NULL, (const char *)rv->crl, rv->crl_len);
    base_mutex_unlock(&rv->lock);
    svc_log_simple(req, SVC_ROUTE_CRL, 200);
    svc_metrics_request(svc, SVC_ROUTE_CRL, SVC_RESULT_OK);
}
