/* The signing pool: when the CA key blocks (a PKCS#11 token), the rings never call it (invariant
 * 7: the rings never block). A ring hands its batch to this pool at the end of its loop turn and
 * goes on; one thread per session of the key (cp-hsmN) takes up to HSM_BATCH_MAX queued items,
 * signs them in one signer_issue_batch (one hsm_key_sign_batch on the thread's session), and
 * pushes them to the writer itself, which judges and answers them as it does every item.
 *
 * Items queued longer than [ca] sign_timeout_ms are not signed: they go to the writer with
 * sign_rc -EAGAIN (503 SigningUnavailable), so a slow or absent token bounds every answer by the
 * timeout (the key itself gives up on a batch that takes longer). While the key is down, the
 * prober thread (cp-hsm-probe) calls hsm_key_probe (reconnect with the key's backoff), so that
 * /readyz turns ready again without any enrollment coming in.
 *
 * Ownership: an item is its ring's until svc_signpool_push, then the pool's until the pool
 * thread's svc_writer_push, then the writer's (service/internal.h, struct svc_item). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/base.h"
#include "service/internal.h"

#define SIGNPOOL_PROBE_MS 100 /* an idle thread looks at a key that is down this often */

bool svc_signpool_active(const struct service *svc)
{
    return svc->pool.num_threads > 0;
}

void svc_signpool_push(struct service *svc, struct svc_item **items, size_t n)
{
    struct svc_signpool *p = &svc->pool;
    ASSERT(p->num_threads > 0);
    uint64_t now = clock_mono_ns();
    base_mutex_lock(&p->mu);
    ASSERT(p->q_len + n <= p->q_cap); /* every item is in one queue at most */
    for (size_t i = 0; i < n; i++) {
        svc_item_validate(svc, items[i]);
        items[i]->sign_queued_ns = now;
        p->q[(p->q_head + p->q_len) % p->q_cap] = items[i];
        p->q_len++;
    }
    base_cond_signal(&p->cond);
    base_mutex_unlock(&p->mu);
}

/* wait_idle waits SIGNPOOL_PROBE_MS (or until woken), mu held. */
static void wait_idle(struct svc_signpool *p)
{
    (void)base_cond_wait_until(&p->pcond, &p->mu, clock_mono_ns() + SIGNPOOL_PROBE_MS * 1000000ull);
}

/* sign_taken signs what is still in time of items[0..n) and pushes all n to the writer, in the
 * order the rings queued them. */
static void sign_taken(struct service *svc, struct signer_issue *scratch, struct svc_item **items,
                       size_t n)
{
    uint64_t t0 = clock_mono_ns();
    size_t late = 0; /* queued in order: the late ones are a prefix */
    while (late < n && t0 - items[late]->sign_queued_ns > svc->pool.timeout_ns) {
        late++;
    }
    if (late > 0) {
        svc_sign_fail(items, late, -EAGAIN);
    }
    if (late < n) {
        svc_sign_items(svc, scratch, items + late, n - late);
        svc_metrics_stage(svc, SVC_STAGE_SIGN, clock_mono_ns() - t0);
        svc_metrics_batch(svc, n - late);
    }
    svc_writer_push(svc, items, n);
}

/* probe_main is the prober (cp-hsm-probe): it calls hsm_key_probe every SIGNPOOL_PROBE_MS, so
 * that a key that is down comes back without an enrollment, and one that signs through a
 * session copy notices its token going away. A thread of its own: a
 * reconnect that hangs in the module (a login that does not return) holds no batch. */
static void *probe_main(void *arg)
{
    struct service *svc = arg;
    base_thread_name("cp-hsm-probe");
    struct svc_signpool *p = &svc->pool;
    struct hsm_key *key = signer_ca_get_key(svc->ca);
    base_mutex_lock(&p->mu);
    while (!p->stopping) { /* the prober's loop: until stopping */
        wait_idle(p);
        if (!p->stopping) { /* down: reconnect; up: is the token still there (pkcs11.c) */
            base_mutex_unlock(&p->mu);
            hsm_key_probe(key);
            base_mutex_lock(&p->mu);
        }
    }
    base_mutex_unlock(&p->mu);
    return NULL;
}

struct thread_arg {
    struct service *svc;
    uint32_t index;
};

static void *pool_main(void *arg)
{
    struct service *svc = ((struct thread_arg *)arg)->svc;
    uint32_t index = ((struct thread_arg *)arg)->index;
    free(arg);
    base_thread_name("cp-hsm%u", index);
    struct svc_signpool *p = &svc->pool;
    struct signer_issue *scratch = p->scratch + (size_t)index * HSM_BATCH_MAX;
    struct svc_item *items[HSM_BATCH_MAX];
    base_mutex_lock(&p->mu);
    for (;;) { /* the thread's loop: until stopping and the queue is empty */
        if (p->q_len == 0 && p->stopping) {
            break;
        }
        if (p->q_len == 0) {
            base_cond_wait(&p->cond, &p->mu);
            continue;
        }
        size_t n = p->q_len < HSM_BATCH_MAX ? p->q_len : HSM_BATCH_MAX;
        for (size_t i = 0; i < n; i++) {
            items[i] = p->q[p->q_head];
            p->q_head = (p->q_head + 1) % p->q_cap;
        }
        p->q_len -= n;
        base_mutex_unlock(&p->mu);
        sign_taken(svc, scratch, items, n);
        base_mutex_lock(&p->mu);
    }
    base_mutex_unlock(&p->mu);
    return NULL;
}

int svc_signpool_start(struct service *svc, size_t cap)
{
    struct svc_signpool *p = &svc->pool;
    uint32_t n = hsm_key_get_sessions(signer_ca_get_key(svc->ca));
    ASSERT(n <= HSM_P11_SESSIONS_MAX);
    if (n == 0) {
        return 0;
    }
    p->q = calloc(cap, sizeof(*p->q));
    p->scratch = calloc((size_t)n * HSM_BATCH_MAX, sizeof(*p->scratch));
    if (p->q == NULL || p->scratch == NULL) {
        return -ENOMEM;
    }
    p->q_cap = cap;
    p->timeout_ns = (uint64_t)svc->cfg->ca_sign_timeout_ms * 1000000u;
    int rc = pthread_mutex_init(&p->mu, NULL);
    ASSERT(rc == 0);
    base_cond_init_mono(&p->cond);
    base_cond_init_mono(&p->pcond);
    p->init = true;
    p->num_threads = n;
    for (uint32_t i = 0; i < n; i++) {
        struct thread_arg *a = malloc(sizeof(*a));
        if (a == NULL) {
            return -ENOMEM;
        }
        *a = (struct thread_arg){.svc = svc, .index = i};
        rc = pthread_create(&p->threads[i], NULL, pool_main, a);
        if (rc != 0) {
            free(a);
            return -rc;
        }
        p->num_started++;
    }
    rc = pthread_create(&p->prober, NULL, probe_main, svc);
    if (rc != 0) {
        return -rc;
    }
    p->prober_started = true;
    return 0;
}

void svc_signpool_stop(struct service *svc)
{
    struct svc_signpool *p = &svc->pool;
    if (p->init) {
        base_mutex_lock(&p->mu);
        p->stopping = true;
        base_cond_broadcast(&p->cond);
        base_cond_broadcast(&p->pcond);
        base_mutex_unlock(&p->mu);
    }
    for (uint32_t i = 0; i < p->num_started; i++) {
        int rc = pthread_join(p->threads[i], NULL);
        ASSERT(rc == 0);
    }
    if (p->prober_started) { /* waits for a probe in progress (a connect: bounded by the module) */
        int rc = pthread_join(p->prober, NULL);
        ASSERT(rc == 0);
        p->prober_started = false;
    }
    p->num_started = 0;
    ASSERT(p->q_len == 0 || p->num_threads == 0);
    if (p->init) {
        int rc = pthread_cond_destroy(&p->cond);
        ASSERT(rc == 0);
        rc = pthread_cond_destroy(&p->pcond);
        ASSERT(rc == 0);
        rc = pthread_mutex_destroy(&p->mu);
        ASSERT(rc == 0);
        p->init = false;
    }
    free(p->q);
    p->q = NULL;
    if (p->scratch != NULL) {
        signer_secret_wipe(p->scratch,
                           (size_t)p->num_threads * HSM_BATCH_MAX * sizeof(*p->scratch));
    }
    free(p->scratch);
    p->scratch = NULL;
    p->num_threads = 0;
}
