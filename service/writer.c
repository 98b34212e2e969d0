/* The writer thread: sign-in judgement and group commit. It takes every item the rings queued
 * (up to what one store batch holds), judges each sign-in in queue order against the group's
 * pending lockout state (the only decision that counts: invariant 8), stores the certificates of
 * the successful ones, their outbox entries and the lockout updates in ONE LMDB transaction, and
 * answers them only once that transaction is durable (invariant 1: durable before visible; see
 * writer_main for the pipelining). When that commit fails, the lockout updates are committed
 * alone, so that no failure is lost. While it commits, the rings keep queueing, so the next group
 * is as large as the load made it. */
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

/* One reason for a wrong PIN and an unknown number, and one for every PinLocked answer, whatever
 * the PIN: an answer that differed would tell a right PIN from a wrong one. */
static const char auth_failed_reason[] =
    "The phone number or extension and PIN do not match a user";
static const char pin_locked_reason[] =
    "The PIN is locked after too many failures; try later or ask an administrator";

/* lockout_find returns the batch's pending lockout state for `uri`, or NULL. */
static struct store_lockout *lockout_find(struct store_batch *b, const char *uri)
{
    for (size_t i = 0; i < b->num_lockouts; i++) {
        if (strcmp(b->lockouts[i].uri, uri) == 0) {
            return &b->lockouts[i].lockout;
        }
    }
    return NULL;
}

/* lockout_read copies the group's pending lockout state of `uri` into *out: the batch's entry,
 * else the store's committed state. Adds nothing to the batch. Returns 0 or -EIO. */
static int lockout_read(struct service *svc, struct store_lockout *out, const char *uri)
{
    const struct store_lockout *l = lockout_find(svc->batch, uri);
    if (l != NULL) {
        *out = *l;
        return 0;
    }
    int rc = store_lockout_get(svc->st, out, uri);
    if (rc != 0) {
        log_err("service: lockout_read_failed rc=%d uri=%s", rc, uri);
    }
    return rc;
}

/* lockout_write makes `l` the group's pending lockout state of `uri`. take_group left room for
 * every entry a group's items can add. */
static void lockout_write(struct service *svc, const char *uri, const struct store_lockout *l)
{
    struct store_lockout *found = lockout_find(svc->batch, uri);
    if (found != NULL) {
        *found = *l;
        return;
    }
    int rc = store_batch_add_lockout(svc->batch, uri, l);
    ASSERT(rc == 0);
}

/* note_refusal records in `l` the refusal `why` of the item's request at `now` (certprovctl user
 * show: the user's last failure and the client's address). */
static void note_refusal(struct store_lockout *l, const struct svc_item *it, enum signer_reason why,
                         int64_t now)
{
    ASSERT((unsigned)why < SIGNER_REASON_MAX_);
    static_assert(SIGNER_CODE_MAX_ < 255 && SIGNER_REASON_MAX_ < 255, "stored as a byte + 1");
    l->last_refusal_s = now;
    l->last_refusal_code = (uint8_t)(signer_reason_code(why) + 1);
    l->last_refusal_reason = (uint8_t)(why + 1);
    (void)base_str_copy(l->last_refusal_client, sizeof(l->last_refusal_client), it->client);
}

/* note_user_refusal records the refusal of a signed-in user's request (a CSR, Entity or rate
 * limit refusal after a right PIN) in the user's pending lockout state: one entry of the batch,
 * for a user who is one of the item's candidates (take_group's room). */
static void note_user_refusal(struct service *svc, const struct svc_item *it, int64_t now)
{
    ASSERT(it->failed);
    struct store_lockout l;
    if (lockout_read(svc, &l, it->user.uri) == 0) {
        note_refusal(&l, it, it->why, now);
        lockout_write(svc, it->user.uri, &l);
    }
}

/* count_failure counts a wrong PIN against candidate `c`, locked or not (signer_lockout_fail), and
 * records the refusal `why` the request gets. */
static void count_failure(struct service *svc, const struct svc_item *it,
                          const struct svc_candidate *c, struct store_lockout *l,
                          enum signer_reason why, int64_t now)
{
    note_refusal(l, it, why, now);
    if (signer_lockout_fail(&svc->cfg->pin, l, c->pin_len, now)) {
        atomic_fetch_add(&svc->metrics.lockouts, 1);
        log_warn("service: pin_locked uri=%s admin=%d client=%s", c->uri, (int)l->admin_locked,
                 it->client);
    }
    lockout_write(svc, c->uri, l);
}

/* refuse answers a sign-in with `code`: no user (its log line names none, for a right and a
 * wrong PIN alike) and no certificate (a signed one is dropped, never stored). */
static void refuse(struct svc_item *it, enum signer_reason why)
{
    svc_item_fail(it, why,
                  why == SIGNER_REASON_PIN_LOCKED ? pin_locked_reason : auth_failed_reason);
    it->proceed = false;
    memset(&it->user, 0, sizeof(it->user));
    it->sign_rc = -1;
    it->der_len = 0;
}

/* judge decides a sign-in against the group's pending lockout state, in queue order: the winner
 * is the first candidate whose PIN matched and whose pending state is open. The sign-in succeeds
 * only when the winner is the user the ring went on with; the window is then reset (written only
 * when it changed: a clean sign-in writes no lockout record). Otherwise it is refused: a failure
 * counts for every candidate whose PIN did not match (open or locked; a locked candidate's PIN is
 * never tested: its match neither counts nor shows), or, when none could be counted (an unknown
 * number, a locked user's right PIN), for the decoy record, so that every refusal writes one
 * record; 401 if any candidate is open or there is none, PinLocked if all are locked. */
static void judge(struct service *svc, struct svc_item *it, int64_t now)
{
    ASSERT(it->signin);
    ASSERT(it->num_candidates <= SVC_CANDIDATES_MAX);
    if (it->cert_auth) {
        return; /* a client certificate, checked on the ring: no PIN, no lockout state */
    }
    struct store_lockout st[SVC_CANDIDATES_MAX];
    bool readable[SVC_CANDIDATES_MAX];
    bool any_open = false;
    size_t winner = SVC_CANDIDATES_MAX;
    for (size_t i = 0; i < it->num_candidates; i++) {
        readable[i] = lockout_read(svc, &st[i], it->candidates[i].uri) == 0;
        bool open = readable[i] && signer_lockout_check(&st[i], now) == SIGNER_LOCKOUT_OPEN;
        any_open = any_open || open;
        if (open && it->candidates[i].pin_ok && winner == SVC_CANDIDATES_MAX) {
            winner = i;
        }
    }
    if (winner < it->num_candidates && it->proceed &&
        strcmp(it->candidates[winner].uri, it->user.uri) == 0) {
        bool changed = signer_lockout_success(&st[winner]);
        if (it->failed) { /* refused after the sign-in (CSR, Entity): the user's last failure */
            note_refusal(&st[winner], it, it->why, now);
            changed = true;
        }
        if (changed) {
            lockout_write(svc, it->user.uri, &st[winner]);
        }
        return;
    }
    enum signer_reason why = any_open || it->num_candidates == 0
                                 ? SIGNER_REASON_PIN_WRONG_OR_UNKNOWN
                                 : SIGNER_REASON_PIN_LOCKED;
    size_t counted = 0;
    for (size_t i = 0; i < it->num_candidates; i++) {
        if (!it->candidates[i].pin_ok && readable[i]) {
            count_failure(svc, it, &it->candidates[i], &st[i], why, now);
            counted++;
        }
    }
    if (counted == 0) {
        int rc = store_batch_add_unknown(svc->batch);
        ASSERT(rc == 0); /* take_group's bound */
    }
    atomic_fetch_add(&svc->metrics.pin_failures, 1);
    refuse(it, why);
}

/* has_cert: the item's sign-in succeeded and it holds a certificate to store. */
static bool has_cert(const struct svc_item *it)
{
    return it->proceed && !it->failed && !it->ticket && it->sign_rc == 0;
}

/* ---- the per-user issuance limit (hardening item 11) ---- */

#define DAY_S 86400

/* drop_cert answers a signed-in item with `why` and `text` instead of its certificate, which is
 * never stored. */
static void drop_cert(struct svc_item *it, enum signer_reason why, const char *text)
{
    svc_item_fail(it, why, text);
    it->sign_rc = -1;
    it->der_len = 0;
}

/* rate_limit decides, in queue order, whether the certificate of items[i] may be stored: its
 * user must have had fewer than max_certs_per_user_per_day certificates in the last 24 hours,
 * counting the stored ones (store_cert_recent_by_uri: every committed one, online or offline,
 * durable or not yet) and the group's items before it that keep theirs. The writer is the only
 * online writer of certificates and decides one group after the other, so a burst of one user's
 * enrollments, in one group or across groups, gets no more than the limit, whatever the rings
 * saw. Over it: 429 RateLimited with Retry-After the seconds until the oldest of the user's
 * newest `max` certificates is 24 h old (at least 1; with exactly `max` in the window, the
 * oldest of them); the certificate is dropped. When the store cannot be read, InternalError. */
static void rate_limit(struct service *svc, struct svc_item **items, const uint32_t *uri_hash,
                       size_t i, int64_t now)
{
    struct svc_item *it = items[i];
    uint32_t max = svc->cfg->user_certs_per_day_max;
    ASSERT(max > 0);
    ASSERT(has_cert(it));
    uint32_t in_group = 0;
    int64_t first_s = 0; /* issue time of the group's first certificate of the user */
    /* Bounded by the group (STORE_BATCH_MAX); the hashes keep the square of a large group to
     * integer compares. */
    for (size_t j = 0; j < i; j++) {
        if (uri_hash[j] == uri_hash[i] && has_cert(items[j]) &&
            strcmp(items[j]->user.uri, it->user.uri) == 0) {
            first_s = in_group == 0 ? items[j]->issued_at_s : first_s;
            in_group++;
        }
    }
    ASSERT(in_group <= max);    /* each was admitted below the limit */
    int64_t oldest_s = first_s; /* the max-th newest, when that many are in the window */
    bool over = in_group == max;
    if (!over) {
        uint32_t num = 0;
        int64_t last_s = 0;
        int rc = store_cert_recent_by_uri(svc->st, it->user.uri, now - DAY_S + 1, max - in_group,
                                          &num, &last_s);
        if (rc != 0) {
            log_err("service: rate_count_failed rc=%d uri=%s", rc, it->user.uri);
            drop_cert(it, SIGNER_REASON_STORE_FAILED,
                      "The user's certificates could not be counted");
            return;
        }
        over = num == max - in_group;
        oldest_s = last_s;
    }
    if (!over) {
        return;
    }
    int64_t wait_s = oldest_s + DAY_S - now;
    drop_cert(it, SIGNER_REASON_RATE_LIMITED, "");
    note_user_refusal(svc, it, now);
    it->retry_after_s = (uint32_t)(wait_s < 1 ? 1 : wait_s > DAY_S ? DAY_S : wait_s);
    (void)snprintf(it->reason, sizeof(it->reason),
                   "The user has had %u certificates in the last 24 hours; retry after the "
                   "Retry-After delay",
                   max);
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
        svc_item_fail(it, SIGNER_REASON_STORE_FAILED, "the certificate could not be stored");
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

/* ---- the store's condition (README, /readyz) ---- */

/* store_condition records what a write found: `fault` (a store fault) makes the store full or
 * unwritable from now on, STORE_FAULT_NONE makes it writable again. Callers pass NONE only for
 * a commit that stored certificates or a successful probe: a commit without certificates (the
 * store keeps room for lockout updates) or an empty one says nothing about certificates. */
static void store_condition(struct service *svc, enum store_fault fault)
{
    ASSERT((unsigned)fault < STORE_FAULT_MAX_);
    enum store_fault old = (enum store_fault)atomic_load(&svc->store_fault);
    if (fault == old) {
        return;
    }
    int64_t now = clock_real_s();
    if (fault == STORE_FAULT_NONE) {
        log_info("service: store_available was=%s unavailable_s=%lld", svc_store_reason_name(old),
                 (long long)(now - atomic_load(&svc->store_fault_since_s)));
    } else {
        log_err("service: store_unavailable store=%s reason=%s", svc_store_condition_name(fault),
                svc_store_reason_name(fault));
        if (old == STORE_FAULT_NONE) {
            atomic_store(&svc->store_fault_since_s, now);
            svc->probe_at_ns = clock_mono_ns() + (uint64_t)svc->probe_ms * 1000000u;
        }
    }
    atomic_store(&svc->store_fault, (int)fault);
}

/* store_fault_of_sync is the fault of a failed store_sync (which touches no map page). */
static enum store_fault store_fault_of_sync(int rc)
{
    return rc == -ENOSPC  ? STORE_FAULT_DISK_FULL
           : rc == -EROFS ? STORE_FAULT_READ_ONLY
           : rc == -EIO   ? STORE_FAULT_IO
                          : STORE_FAULT_NONE;
}

/* probe tries a write (store_probe) once the store has been full or unwritable for probe_ms, and
 * every probe_ms after that, so that the store is seen writable again when space returns even
 * while no enrollment comes in (a balancer sends none to an appliance that is not ready). Only
 * with nothing pending: then every earlier commit is durable and answered. */
static void probe(struct service *svc)
{
    if (atomic_load(&svc->store_fault) == STORE_FAULT_NONE || clock_mono_ns() < svc->probe_at_ns) {
        return;
    }
    enum store_fault fault = STORE_FAULT_NONE;
    int rc = store_probe(svc->st, &fault);
    if (rc == 0 || fault != STORE_FAULT_NONE) {
        store_condition(svc, fault);
    }
    svc->probe_at_ns = clock_mono_ns() + (uint64_t)svc->probe_ms * 1000000u;
}

/* commit stores the group's batch (re-signing the items whose serials clashed) and records the
 * store's condition: a commit that stored certificates shows the store writable, a fault shows
 * it full or unwritable. Returns the commit's result; *out_fault is its fault. */
static int commit(struct service *svc, struct svc_item **items, size_t n,
                  enum store_fault *out_fault)
{
    bool certs = svc->batch->num_items > 0;
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
        for (size_t i = 0; i < n; i++) { /* each item waited for the group's commits */
            uint64_t us = items[i]->stage_us[SVC_STAGE_COMMIT] + dt / 1000;
            items[i]->stage_us[SVC_STAGE_COMMIT] = (uint32_t)(us > UINT32_MAX ? UINT32_MAX : us);
        }
    }
    *out_fault = svc->batch->fault;
    if (rc == 0 ? certs : *out_fault != STORE_FAULT_NONE) {
        store_condition(svc, *out_fault);
    }
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
        struct signer_soap_reply reply;
        svc_item_soap_reply(&reply, it);
        reply.chain = svc->chain_certs;
        reply.num_chain = svc->num_chain;
        rc = signer_soap_reply_response(svc->scratch, SVC_RESPONSE_MAX, &len, it->der, it->der_len,
                                        &reply);
        type = signer_soap_content_type(reply.soap12);
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

/* fail_stored answers an item with the failure of the commit (or sync) that returned `rc` and
 * met `fault`: StoreUnavailable (503, Retry-After) when the store is full or cannot be written
 * (API.md: disk or map full, I/O error), InternalError for the rest. */
static void fail_stored(struct svc_item *it, int rc, enum store_fault fault)
{
    ASSERT(rc != 0);
    if (rc != -ENOSPC && rc != -EIO && rc != -EROFS) {
        svc_item_fail(it, SIGNER_REASON_STORE_FAILED, "The certificate could not be stored");
        return;
    }
    it->retry_after_s = SVC_STORE_RETRY_AFTER_S;
    svc_item_fail(it, SIGNER_REASON_STORE_UNAVAILABLE,
                  fault == STORE_FAULT_MAP_FULL
                      ? "The certificate store is full; the operator must raise its size"
                  : fault == STORE_FAULT_DISK_FULL
                      ? "The certificate store's disk is full; try again later"
                      : "The certificate store cannot be written now; try again later");
}

/* settle fixes an item's outcome once its group's commit returned `rc` and, when that failed,
 * the commit of the group's lockout updates alone returned `lrc` (rc and lrc are both a sync's
 * result when the sync after them failed). While the group's failures are recorded (lrc == 0),
 * a refused sign-in keeps its answer, a certificate gets the commit's failure and any other
 * outcome stays (a CSR error, a signing error). When they cannot be recorded, EVERY item of the
 * group gets the commit's failure: a refused sign-in answered otherwise than a right PIN (whose
 * certificate failed, or whose CSR was refused) would let PINs be guessed without limit while no
 * guess is counted. `fault` is the failed commit's (or sync's). */
static void settle(struct svc_item *it, int rc, int lrc, enum store_fault fault)
{
    if (lrc != 0) {
        fail_stored(it, rc != 0 ? rc : lrc, fault);
    } else if (has_cert(it) && rc != 0) {
        fail_stored(it, rc, fault);
    } else if (!it->failed && !it->ticket && it->sign_rc != 0) {
        svc_item_fail(it,
                      it->sign_rc == -EAGAIN ? SIGNER_REASON_SIGNING_UNAVAILABLE
                                             : SIGNER_REASON_SIGNING_FAILED,
                      it->sign_rc == -EAGAIN ? "The CA key backend cannot sign now"
                                             : "Signing failed");
    }
    ASSERT(it->failed || has_cert(it) || (it->ticket && it->proceed));
}

/* answer sends an item's settled outcome and releases it. */
static void answer(struct service *svc, struct svc_item *it)
{
    svc_item_stage(svc, it, SVC_STAGE_TOTAL, clock_mono_ns() - it->start_ns);
    if (it->ticket && !it->failed) {
        svc_webticket_respond(svc, it); /* a judged Web ticket sign-in: the RSTR */
    } else if (it->failed) {
        svc_log_request(svc, it, NULL);
        struct signer_soap_reply reply;
        svc_item_soap_reply(&reply, it);
        svc_respond_error(svc, it->req, it->route, it->why, it->reason, it->retry_after_s, &reply,
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
        if (has_cert(items[i]) && (last == NULL || strcmp(last, pool) != 0)) {
            store_publisher_wake(svc->pub, pool);
            last = pool;
        }
    }
}

/* finish answers a settled group once what it committed is durable (sync_rc == 0), or applies
 * the failure of the sync that was to make it so. */
static void finish(struct service *svc, struct svc_item **items, size_t n, int sync_rc)
{
    if (sync_rc != 0 && store_fault_of_sync(sync_rc) != STORE_FAULT_NONE) {
        store_condition(svc, store_fault_of_sync(sync_rc));
    }
    for (size_t i = 0; sync_rc != 0 && i < n; i++) {
        settle(items[i], sync_rc, sync_rc, store_fault_of_sync(sync_rc));
    }
    if (sync_rc == 0) {
        wake_publisher(svc, items, n);
    }
    log_hold_begin(svc->log_hold, SVC_LOG_HOLD); /* one write(2) for the group's lines */
    for (size_t i = 0; i < n; i++) {
        answer(svc, items[i]);
    }
    log_hold_end();
}

/* commit_lockouts commits the lockout updates and unknown failures of a group whose commit
 * failed, without its certificates: failure bookkeeping survives a full map, a read-only store,
 * a disk error or serial clashes. Returns the commit's result; *out_stored tells whether it
 * wrote anything. */
static int commit_lockouts(struct service *svc, bool *out_stored)
{
    const struct store_batch *from = svc->batch;
    struct store_batch *to = svc->lockouts;
    store_batch_clear(to);
    for (size_t i = 0; i < from->num_lockouts; i++) {
        int rc = store_batch_add_lockout(to, from->lockouts[i].uri, &from->lockouts[i].lockout);
        ASSERT(rc == 0);
    }
    for (size_t i = 0; i < from->num_unknown; i++) {
        int rc = store_batch_add_unknown(to);
        ASSERT(rc == 0);
    }
    *out_stored = false;
    if (to->num_lockouts == 0 && to->num_unknown == 0) {
        return 0;
    }
    int rc = store_batch_commit(svc->st, to);
    if (rc != 0) {
        log_err("service: lockout_commit_failed rc=%d lockouts=%zu unknown=%zu", rc,
                to->num_lockouts, to->num_unknown);
        if (to->fault != STORE_FAULT_NONE) {
            store_condition(svc, to->fault);
        }
    }
    *out_stored = rc == 0;
    return rc;
}

/* commit_group judges the group's sign-ins in queue order, then each successful one's
 * certificate against its user's limit (rate_limit), stores the certificates that pass with the
 * lockout updates (or, when that fails, the lockout updates alone) and
 * settles every item's outcome. *out_stored tells whether anything was committed (and so waits
 * to become durable). */
static void commit_group(struct service *svc, struct svc_item **items, size_t n, bool *out_stored)
{
    struct store_batch *b = svc->batch;
    store_batch_clear(b);
    int64_t now = clock_real_s();
    for (size_t i = 0; i < n; i++) {
        judge(svc, items[i], now);
    }
    if (svc->cfg->user_certs_per_day_max != 0) {
        uint32_t uri_hash[STORE_BATCH_MAX];
        for (size_t i = 0; i < n; i++) {
            uri_hash[i] = base_fnv1a(items[i]->user.uri, strlen(items[i]->user.uri));
        }
        for (size_t i = 0; i < n; i++) {
            if (has_cert(items[i])) {
                rate_limit(svc, items, uri_hash, i, now);
            }
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (has_cert(items[i])) {
            add_cert(svc, items[i]);
        }
    }
    int rc = 0;
    int lrc = 0;
    enum store_fault fault = STORE_FAULT_NONE;
    *out_stored = false;
    /* The fleet directory learns the group's lockout states (queued, never waited for; before
     * the commit, which empties the batch: a state the commit then fails to store only adds
     * failures the fleet counts). */
    for (size_t i = 0; svc->dir != NULL && i < b->num_lockouts; i++) {
        store_directory_lockout_note(svc->dir, b->lockouts[i].uri, &b->lockouts[i].lockout);
    }
    if (b->num_items > 0 || b->num_lockouts > 0 || b->num_unknown > 0) {
        size_t certs = b->num_items; /* a commit clears the counters, not the items */
        rc = commit(svc, items, n, &fault);
        *out_stored = rc == 0;
        if (rc == 0 && svc->dir != NULL) { /* the fleet-wide serial index, queued */
            store_directory_serials_note(svc->dir, b->items, certs);
        }
    }
    if (rc != 0) {
        lrc = commit_lockouts(svc, out_stored);
    }
    for (size_t i = 0; i < n; i++) {
        settle(items[i], rc, lrc, fault);
    }
    svc_histogram_add(&svc->metrics.commit_size, n);
}

/* take_group moves queued items into `items`: at most STORE_BATCH_MAX, and no more than the
 * batch's lockout slots can hold. An item adds at most max(candidates, 1) entries: a failure one
 * per candidate whose PIN did not match, a success one for its user (the same entry as a later
 * refusal of that user's certificate, note_user_refusal; a client certificate's item has no
 * candidate and adds at most that one), and a failure that no candidate counts adds no entry but
 * one unknown failure (at most one per item: the batch's count holds STORE_BATCH_MAX). Called
 * locked. */
static size_t take_group(struct service *svc, struct svc_item **items)
{
    size_t n = 0;
    size_t lockouts = 0;
    while (svc->q_len > 0 && n < STORE_BATCH_MAX) {
        struct svc_item *it = svc->queue[svc->q_head];
        svc_item_validate(svc, it);
        size_t need = it->num_candidates > 1 ? it->num_candidates : 1;
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

/* writer_wait waits (called locked) until items are queued or the writer stops, and, while the
 * store is full or unwritable, at most until the next probe is due. */
static void writer_wait(struct service *svc)
{
    if (atomic_load(&svc->store_fault) == STORE_FAULT_NONE) {
        base_cond_wait(&svc->wcond, &svc->wlock);
        return;
    }
    uint64_t now = clock_mono_ns();
    if (now >= svc->probe_at_ns) {
        return;
    }
    (void)base_cond_wait_until(&svc->wcond, &svc->wlock, svc->probe_at_ns);
}

/* probe_due: the store is full or unwritable and its next probe is due. */
static bool probe_due(const struct service *svc)
{
    return atomic_load(&svc->store_fault) != STORE_FAULT_NONE &&
           clock_mono_ns() >= svc->probe_at_ns;
}

/* writer_main pipelines durability (store.h, defer_meta_sync): a group whose commit returned is
 * answered when the NEXT commit has returned (that commit's data sync also made the group's
 * meta page durable), or, when no next group is waiting, after one explicit sync. Under load
 * every group then costs one disk sync instead of two. With nothing pending, it probes a full or
 * unwritable store when the probe is due. */
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
        while (svc->q_len == 0 && num_pending == 0 && !svc->stopping && !probe_due(svc)) {
            writer_wait(svc);
        }
        size_t n = take_group(svc, items);
        bool done = n == 0 && num_pending == 0 && svc->stopping;
        base_mutex_unlock(&svc->wlock);
        if (done) {
            break;
        }
        bool stored = false;
        if (n > 0) {
            commit_group(svc, items, n, &stored); /* every outcome settled */
        }
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
            finish(svc, items, n, 0);
        }
        if (num_pending == 0) {
            probe(svc);
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
    svc->lockouts = calloc(1, sizeof(*svc->lockouts));
    svc->reissue = calloc(1, sizeof(*svc->reissue));
    svc->scratch = malloc(SVC_RESPONSE_MAX);
    svc->log_hold = malloc(SVC_LOG_HOLD);
    if (svc->queue == NULL || svc->batch == NULL || svc->lockouts == NULL || svc->reissue == NULL ||
        svc->scratch == NULL || svc->log_hold == NULL) {
        return -ENOMEM;
    }
    svc->q_cap = cap;
    /* A default mutex cannot fail to initialise; nor can the condition with these attributes
     * (glibc; POSIX allows ENOMEM/EAGAIN, which Linux never returns): a failure is a bug. Its
     * clock is the monotonic one of the probe's deadline (writer_wait). */
    svc->wlock = (pthread_mutex_t)PTHREAD_MUTEX_INITIALIZER;
    base_cond_init_mono(&svc->wcond);
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
    free(svc->lockouts);
    free(svc->reissue);
    free(svc->scratch);
    free(svc->log_hold);
    svc->log_hold = NULL;
    svc->queue = NULL;
    svc->batch = NULL;
    svc->lockouts = NULL;
    svc->reissue = NULL;
    svc->scratch = NULL;
}
