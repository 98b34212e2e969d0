/* The writer thread: group commit. It takes every item the rings queued (up to what one store
 * batch holds), stores their certificates, outbox entries and lockout updates in ONE LMDB
 * transaction, and answers them only once that transaction is durable (invariant 1: durable
 * before visible; see writer_main for the pipelining). While it commits, the rings keep
 * queueing, so the next group is as large as the load made it. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "ioring/ioring.h"
#include "service/internal.h"

/* lockout_find returns the batch's pending lockout state for `uri`, or NULL. */
static struct store_lockout *lockout_find(struct service *svc, const char *uri)
{
    struct store_batch *b = svc->batch;
    for (size_t i = 0; i < b->num_lockouts; i++) {
        if (strcmp(b->lockouts[i].uri, uri) == 0) {
            return &b->lockouts[i].lockout;
        }
    }
    return NULL;
}

/* lockout_slot returns the batch's pending lockout state for `uri`, adding it (read from the
 * store) when absent. NULL when the batch has no room or the store cannot be read. */
static struct store_lockout *lockout_slot(struct service *svc, const char *uri)
{
    struct store_lockout *found = lockout_find(svc, uri);
    if (found != NULL) {
        return found;
    }
    struct store_batch *b = svc->batch;
    struct store_lockout l;
    if (store_lockout_get(svc->st, &l, uri) != 0 || store_batch_add_lockout(b, uri, &l) != 0) {
        return NULL;
    }
    return &b->lockouts[b->num_lockouts - 1].lockout;
}

/* lockout_success clears the user's failure window. A record with nothing to clear (nearly every
 * sign-in) is not rewritten: the commit then touches no lockout page for it. */
static void lockout_success(struct service *svc, const char *uri)
{
    struct store_lockout *l = lockout_find(svc, uri);
    if (l != NULL) {
        (void)signer_lockout_success(l);
        return;
    }
    struct store_lockout cur;
    if (store_lockout_get(svc->st, &cur, uri) == 0 && signer_lockout_success(&cur) &&
        store_batch_add_lockout(svc->batch, uri, &cur) != 0) {
        log_err("service: lockout_update_dropped uri=%s", uri);
    }
}

/* add_lockouts applies the item's PIN outcome to the batch, in commit order: concurrent failures
 * for one user each count (the writer is the only one that writes lockout state). */
static void add_lockouts(struct service *svc, struct svc_item *it, int64_t now)
{
    for (size_t i = 0; i < it->num_pin_failures; i++) {
        struct store_lockout *l = lockout_slot(svc, it->pin_failures[i].uri);
        if (l != NULL && signer_lockout_fail(&svc->cfg->pin, l, it->pin_failures[i].pin_len, now)) {
            atomic_fetch_add(&svc->metrics.lockouts, 1);
            log_warn("service: pin_locked uri=%s admin=%d client=%s", it->pin_failures[i].uri,
                     (int)l->admin_locked, it->client);
        }
    }
    if (it->pin_success) {
        lockout_success(svc, it->user.uri);
    }
}

static void add_cert(struct service *svc, struct svc_item *it)
{
    struct store_cert_meta meta = {.not_before_s = it->not_before_s,
                                   .not_after_s = it->not_after_s,
                                   .issued_at_s = it->issued_at_s};
    memcpy(meta.serial, it->serial, sizeof(meta.serial));
    memcpy(meta.uri, it->user.uri, sizeof(meta.uri));
    memcpy(meta.pool, it->user.pool, sizeof(meta.pool));
    memcpy(meta.device_id, it->device_id, sizeof(meta.device_id));
    int rc = store_batch_add_cert(svc->batch, &meta, it->der, it->der_len);
    if (rc != 0) {
        log_err("service: batch_add_failed rc=%d uri=%s", rc, it->user.uri);
        it->failed = true;
        it->fail = SIGNER_CODE_INTERNAL_ERROR;
        (void)base_str_copy(it->reason, sizeof(it->reason), "the certificate could not be stored");
    }
}

/* resign re-signs the items whose serial clashed (invariant 4: never stored twice) and updates
 * their batch entries. */
static void resign(struct service *svc, struct svc_item **items, size_t n)
{
    struct store_batch *b = svc->batch;
    for (size_t j = 0; j < b->num_items; j++) {
        if (b->items[j].rc != -EEXIST) {
            continue;
        }
        atomic_fetch_add(&svc->metrics.serial_clashes, 1);
        for (size_t i = 0; i < n; i++) {
            struct svc_item *it = items[i];
            if (it->der == b->items[j].der) {
                svc_sign_items(svc, svc->reissue, &it, 1);
                memcpy(b->items[j].meta.serial, it->serial, sizeof(it->serial));
                b->items[j].meta.not_before_s = it->not_before_s;
                b->items[j].meta.not_after_s = it->not_after_s;
                b->items[j].der_len = it->der_len;
            }
        }
        b->items[j].rc = 0;
    }
}

static int commit(struct service *svc, struct svc_item **items, size_t n)
{
    int rc = -EEXIST;
    for (int tries = 0; rc == -EEXIST && tries < SVC_COMMIT_TRIES_MAX; tries++) {
        if (tries > 0) {
            resign(svc, items, n);
        }
        uint64_t t0 = clock_mono_ns();
        rc = store_batch_commit(svc->st, svc->batch);
        uint64_t dt = clock_mono_ns() - t0;
        svc_histogram_add(&svc->metrics.commit_us, dt / 1000);
        svc_metrics_stage(svc, SVC_STAGE_COMMIT, dt);
    }
    atomic_store(&svc->store_full, rc == -ENOSPC);
    if (rc != 0) {
        log_err("service: group_commit_failed rc=%d items=%zu", rc, n);
    }
    return rc;
}

static void respond_success(struct service *svc, struct svc_item *it)
{
    size_t len = 0;
    int rc;
    const char *type;
    const char *headers = NULL;
    if (it->route == SVC_ROUTE_SOAP) {
        rc = signer_soap_response(svc->scratch, SVC_RESPONSE_MAX, &len, it->der, it->der_len,
                                  it->request_id);
        type = "text/xml; charset=utf-8";
    } else {
        struct signer_est_cert cert = {.der = it->der, .der_len = it->der_len};
        rc = signer_est_certs_only(svc->scratch, SVC_RESPONSE_MAX, &len, &cert, 1);
        type = "application/pkcs7-mime; smime-type=certs-only";
        headers = "Content-Transfer-Encoding: base64\r\n";
    }
    ASSERT(rc == 0);
    svc_metrics_request(svc, it->route, SVC_RESULT_OK);
    atomic_fetch_add(&svc->metrics.certificates, 1);
    svc_respond(svc, it->req, 200, type, headers, svc->scratch, len);
}

/* answer answers one item after its group's commit returned `rc`. A failed sign-in whose
 * failures that commit was to record gets the commit's failure too: answered with its own, it
 * would tell a wrong PIN from a right one while no guess is counted. */
static void answer(struct service *svc, struct svc_item *it, int rc)
{
    bool needs_commit = (!it->failed && it->sign_rc == 0) || it->num_pin_failures > 0;
    if (needs_commit && rc == -ENOSPC) {
        it->failed = true;
        it->fail = SIGNER_CODE_OVERLOADED;
        (void)base_str_copy(it->reason, sizeof(it->reason),
                            "The certificate store is full; the operator must raise its size");
    } else if (needs_commit && rc != 0) {
        it->failed = true;
        it->fail = SIGNER_CODE_INTERNAL_ERROR;
        (void)base_str_copy(it->reason, sizeof(it->reason), "The certificate could not be stored");
    } else if (!it->failed && it->sign_rc != 0) {
        it->failed = true;
        it->fail =
            it->sign_rc == -EAGAIN ? SIGNER_CODE_SIGNING_UNAVAILABLE : SIGNER_CODE_INTERNAL_ERROR;
        (void)base_str_copy(it->reason, sizeof(it->reason),
                            it->sign_rc == -EAGAIN ? "The CA key backend cannot sign now"
                                                   : "Signing failed");
    }
    svc_metrics_stage(svc, SVC_STAGE_TOTAL, clock_mono_ns() - it->start_ns);
    if (it->failed) {
        svc_log_request(svc, it, NULL);
        svc_respond_error(svc, it->req, it->route, it->fail, it->reason, it->request_id,
                          svc->scratch, SVC_RESPONSE_MAX);
    } else {
        svc_log_request(svc, it, it->serial);
        respond_success(svc, it);
    }
    svc_item_release(svc, it);
}

/* wake_publisher tells the publisher of each pool that got a certificate in this commit
 * (issue 4: publication starts at once, not at a polling interval). */
static void wake_publisher(struct service *svc, struct svc_item **items, size_t n)
{
    const char *last = NULL;
    for (size_t i = 0; svc->pub != NULL && i < n; i++) {
        const char *pool = items[i]->user.pool;
        if (!items[i]->failed && items[i]->sign_rc == 0 &&
            (last == NULL || strcmp(last, pool) != 0)) {
            store_publisher_wake(svc->pub, pool);
            last = pool;
        }
    }
}

/* finish answers a group whose commit returned `rc`; when rc == 0 the group is durable. */
static void finish(struct service *svc, struct svc_item **items, size_t n, int rc)
{
    if (rc == 0) {
        wake_publisher(svc, items, n);
    }
    log_hold_begin(svc->log_hold, SVC_LOG_HOLD); /* one write(2) for the group's lines */
    for (size_t i = 0; i < n; i++) {
        answer(svc, items[i], rc);
    }
    log_hold_end();
}

/* commit_group stores the group's certificates and lockout updates. Returns the commit's result;
 * *out_stored tells whether anything was committed (and so waits to become durable). */
static int commit_group(struct service *svc, struct svc_item **items, size_t n, bool *out_stored)
{
    store_batch_clear(svc->batch);
    int64_t now = clock_real_s();
    for (size_t i = 0; i < n; i++) {
        if (!items[i]->failed && items[i]->sign_rc == 0) {
            add_cert(svc, items[i]);
        }
        add_lockouts(svc, items[i], now);
    }
    int rc = 0;
    *out_stored = false;
    if (svc->batch->num_items > 0 || svc->batch->num_lockouts > 0) {
        rc = commit(svc, items, n);
        *out_stored = rc == 0;
    }
    svc_histogram_add(&svc->metrics.commit_size, n);
    return rc;
}

/* take_group moves queued items into `items`: at most STORE_BATCH_MAX, and no more than the
 * batch's lockout slots can hold (each item needs up to SVC_CANDIDATES_MAX). Called locked. */
static size_t take_group(struct service *svc, struct svc_item **items)
{
    size_t n = 0;
    size_t lockouts = 0;
    while (svc->q_len > 0 && n < STORE_BATCH_MAX) {
        struct svc_item *it = svc->queue[svc->q_head];
        svc_item_validate(svc, it);
        size_t need = it->num_pin_failures + (it->pin_success ? 1 : 0);
        if (lockouts + need > STORE_BATCH_MAX) {
            break;
        }
        lockouts += need;
        items[n++] = it;
        svc->q_head = (svc->q_head + 1) % svc->q_cap;
        svc->q_len--;
    }
    atomic_store(&svc->queued, svc->q_len);
    return n;
}

/* writer_main pipelines durability (store.h, defer_meta_sync): a group whose commit returned is
 * answered when the NEXT commit has returned (that commit's data sync also made the group's
 * meta page durable), or, when no next group is waiting, after one explicit sync. Under load
 * every group then costs one disk sync instead of two. */
static void *writer_main(void *arg)
{
    struct service *svc = arg;
    base_thread_name("cp-writer");
    struct svc_item *items[STORE_BATCH_MAX];
    struct svc_item *pending[STORE_BATCH_MAX]; /* committed, not yet known durable */
    size_t num_pending = 0;
    bool deferred = store_defers_sync(svc->st);
    for (;;) { /* the writer's loop ends only when stopped with nothing queued or pending */
        base_mutex_lock(&svc->wlock);
        while (svc->q_len == 0 && num_pending == 0 && !svc->stopping) {
            base_cond_wait(&svc->wcond, &svc->wlock);
        }
        size_t n = take_group(svc, items);
        bool done = n == 0 && num_pending == 0 && svc->stopping;
        base_mutex_unlock(&svc->wlock);
        if (done) {
            break;
        }
        bool stored = false;
        int rc = n > 0 ? commit_group(svc, items, n, &stored) : 0;
        if (num_pending > 0) {
            int prc = stored ? 0 : store_sync(svc->st);
            if (prc != 0) {
                log_err("service: sync_failed rc=%d items=%zu", prc, num_pending);
            }
            finish(svc, pending, num_pending, prc);
            num_pending = 0;
        }
        if (stored && deferred) {
            memcpy(pending, items, n * sizeof(items[0]));
            num_pending = n;
        } else {
            finish(svc, items, n, rc);
        }
    }
    return NULL;
}

void svc_writer_push(struct service *svc, struct svc_item **items, size_t n)
{
    base_mutex_lock(&svc->wlock);
    /* The queue holds every item slot of every ring: it cannot overflow. */
    ASSERT(svc->q_len + n <= svc->q_cap);
    for (size_t i = 0; i < n; i++) {
        svc_item_validate(svc, items[i]);
        svc->queue[(svc->q_head + svc->q_len) % svc->q_cap] = items[i];
        svc->q_len++;
    }
    atomic_store(&svc->queued, svc->q_len);
    base_cond_signal(&svc->wcond);
    base_mutex_unlock(&svc->wlock);
}

int svc_writer_start(struct service *svc, size_t cap)
{
    svc->queue = calloc(cap, sizeof(*svc->queue));
    svc->batch = calloc(1, sizeof(*svc->batch));
    svc->reissue = calloc(1, sizeof(*svc->reissue));
    svc->scratch = malloc(SVC_RESPONSE_MAX);
    svc->log_hold = malloc(SVC_LOG_HOLD);
    if (svc->queue == NULL || svc->batch == NULL || svc->reissue == NULL || svc->scratch == NULL ||
        svc->log_hold == NULL) {
        return -ENOMEM;
    }
    svc->q_cap = cap;
    /* Static initialisers: a default mutex and condition cannot fail to initialise. */
    svc->wlock = (pthread_mutex_t)PTHREAD_MUTEX_INITIALIZER;
    svc->wcond = (pthread_cond_t)PTHREAD_COND_INITIALIZER;
    int rc = pthread_create(&svc->writer, NULL, writer_main, svc);
    if (rc != 0) {
        return -rc;
    }
    svc->writer_started = true;
    return 0;
}

void svc_writer_stop(struct service *svc)
{
    if (svc->writer_started) {
        base_mutex_lock(&svc->wlock);
        svc->stopping = true;
        base_cond_signal(&svc->wcond);
        base_mutex_unlock(&svc->wlock);
        int rc = pthread_join(svc->writer, NULL);
        ASSERT(rc == 0);
        svc->writer_started = false;
        rc = pthread_mutex_destroy(&svc->wlock);
        ASSERT(rc == 0);
        rc = pthread_cond_destroy(&svc->wcond);
        ASSERT(rc == 0);
    }
    free(svc->queue);
    free(svc->batch);
    free(svc->reissue);
    free(svc->scratch);
    free(svc->log_hold);
    svc->log_hold = NULL;
    svc->queue = NULL;
    svc->batch = NULL;
    svc->reissue = NULL;
    svc->scratch = NULL;
}
