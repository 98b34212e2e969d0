/* body: the reference count of shared response bodies (struct ioring_body), below every other
 * file of ioring/: the handler takes references, http.c hands one to a slot, ring.c drops it
 * once the answer is sent. */
#include "ioring/internal.h"

void ioring_body_get(struct ioring_body *body)
{
    ASSERT(body != NULL);
    uint32_t before = atomic_fetch_add(&body->refs, 1);
    ASSERT(before > 0); /* only a held body is shared further */
}

void ioring_body_put(struct ioring_body *body)
{
    if (body == NULL) {
        return;
    }
    uint32_t before = atomic_fetch_sub(&body->refs, 1);
    ASSERT(before > 0);
    if (before == 1) {
        body->free_fn(body);
    }
}
