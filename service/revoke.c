/* revoke.c: revocation on the request path: a renewal with a revoked certificate or by a
 * disabled user is refused, and a disabled user's PIN does not sign in (README, Revocation). Both
 * checks are one LMDB lookup each in small trees (`revoked` holds only the revoked serials,
 * `disabled` only the disabled users), on the ring, beside the renewal's store_user_get: a read
 * transaction of LMDB is lock-free and its pages of these trees stay in memory, a fraction of the
 * certificate's signature the renewal then costs. Calls nothing else in service/. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

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
