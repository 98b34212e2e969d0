/* The per-ring batch: every enrollment a ring gathered in one loop turn is signed in one
 * signer_issue_batch call (one hsm_key_sign_batch). Used by the ring at the end of its turn and
 * by the writer to re-sign after a serial clash. */
#include <errno.h>
#include <string.h>

#include "base/base.h"
#include "service/internal.h"

/* svc_sign_items signs `items` in one batch, using `scratch` (HSM_BATCH_MAX issues) because
 * signer_issue_batch wants them side by side; the results are copied back into the items. */
void svc_sign_items(struct service *svc, struct signer_issue *scratch, struct svc_item **items,
                    size_t n)
{
    ASSERT(n <= HSM_BATCH_MAX);
    struct svc_item *signing[HSM_BATCH_MAX];
    size_t m = 0;
    int64_t now = clock_real_s();
    for (size_t i = 0; i < n; i++) {
        if (items[i]->failed || !items[i]->proceed || items[i]->ticket) {
            continue; /* a sign-in the writer refuses, a refused CSR, or a Web ticket request */
        }
        signing[m] = items[i];
        scratch[m++] = (struct signer_issue){.csr = &items[i]->csr,
                                             .uri = items[i]->user.uri,
                                             .hours = items[i]->hours,
                                             .now_s = now};
    }
    if (m == 0) {
        return;
    }
    int rc = signer_issue_batch(svc->ca, &svc->cfg->profile, scratch, m);
    for (size_t i = 0; i < m; i++) {
        struct svc_item *it = signing[i];
        it->sign_rc = rc == -EAGAIN ? -EAGAIN : scratch[i].rc;
        if (it->sign_rc != 0) {
            continue;
        }
        memcpy(it->serial, scratch[i].serial, sizeof(it->serial));
        it->not_before_s = scratch[i].not_before_s;
        it->not_after_s = scratch[i].not_after_s;
        it->issued_at_s = scratch[i].now_s;
        it->der_len = scratch[i].der_len;
        memcpy(it->der, scratch[i].der, scratch[i].der_len);
    }
}

void svc_sign_fail(struct svc_item **items, size_t n, int rc)
{
    ASSERT(rc < 0);
    for (size_t i = 0; i < n; i++) {
        if (!items[i]->failed && items[i]->proceed) {
            items[i]->sign_rc = rc;
        }
    }
}
