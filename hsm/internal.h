/* hsm/internal.h: what a key backend implements. Private to hsm/.
 *
 * Every backend embeds `struct hsm_key` as the FIRST member of its own key struct and points
 * `ops` at a static table; hsm.c checks the arguments and dispatches through the table, so
 * callers never see which backend they talk to: soft.c and pkcs11.c (a pool of sessions, each with
 * its worker thread) each fill one. */
#ifndef CERTPROV_HSM_INTERNAL_H
#define CERTPROV_HSM_INTERNAL_H

#include "hsm/hsm.h"

/* Longest label ("soft:" + a path, or a PKCS#11 URI without PIN), NUL included. */
#define HSM_LABEL_MAX 4200

/* hsm_key_ops is a backend's table. Each function may assume hsm.c already checked the
 * arguments documented in hsm.h (non-NULL key, num_items bounds, item buffers). */
struct hsm_key_ops {
    /* public_der: as hsm_key_public_der. */
    int (*public_der)(const struct hsm_key *key, uint8_t *out, size_t cap, size_t *out_len);
    /* sign_batch: as hsm_key_sign_batch; sets every item's rc and sig_len. */
    int (*sign_batch)(struct hsm_key *key, struct hsm_sign_item *items, size_t num_items);
    /* free: wipes and releases the backend's key (never NULL). */
    void (*free)(struct hsm_key *key);
    /* status, probe: as hsm_key_status and hsm_key_probe; NULL: always up, nothing to probe. */
    int (*status)(const struct hsm_key *key, const char **out_reason);
    void (*probe)(struct hsm_key *key);
};

/* hsm_key is the common head of every backend's key. */
struct hsm_key {
    const struct hsm_key_ops *ops;
    enum hsm_key_type type;
    uint32_t sessions; /* hsm_key_get_sessions: 0 for a key that never blocks (soft) */
    char label[HSM_LABEL_MAX];
};

/* hsm_key_validate asserts the invariants of the common head. */
void hsm_key_validate(const struct hsm_key *key);

#endif
