/* delegate.c: the issuing CA's delegated signers (the OCSP signer, the Web ticket signer): a soft
 * P-256 key and a certificate of their kind from the CA, written so that a crash never leaves a
 * certificate beside a key it does not certify. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "base/base.h"
#include "signer/internal.h"

#define DELEGATE_PATH_MAX 4200

/* delegate_cert builds the certificate of `kind` for `key` (subject CN=cn) signed by the CA. */
static int delegate_cert(struct signer_ca *ca, struct hsm_key *key, enum cert_kind kind,
                         const char *cn, int64_t now_s, int64_t not_after, uint8_t *der,
                         size_t *der_len)
{
    uint8_t spki[HSM_SPKI_MAX];
    size_t spki_len = 0;
    uint8_t serial[SIGNER_SERIAL_LEN];
    cert_serial_random(serial);
    int rc = hsm_key_public_der(key, spki, sizeof(spki), &spki_len);
    if (rc != 0) {
        return rc;
    }
    struct cert_spec spec = {
        .kind = kind,
        .sig_type = hsm_key_get_type(ca->key),
        .serial = serial,
        .issuer = ca->issuer,
        .issuer_len = ca->issuer_len,
        .subject_cn = cn,
        .subject_cn_len = strlen(cn),
        .not_before_s = now_s - SIGNER_BACKDATE_S,
        .not_after_s = not_after,
        .spki = spki,
        .spki_len = spki_len,
        .aki = ca->ski,
        .aki_len = ca->ski_len,
    };
    return cert_sign_one(der, der_len, ca->key, &spec);
}

int ca_delegate_issue(struct signer_ca *ca, enum cert_kind kind, const char *cn,
                      const char *key_path, const char *crt_path, uint32_t days, int64_t now_s,
                      int64_t *out_not_after_s)
{
    ASSERT(ca != NULL);
    char key_new[DELEGATE_PATH_MAX];
    char crt_new[DELEGATE_PATH_MAX];
    int a = snprintf(key_new, sizeof(key_new), "%s.new", key_path);
    int b = snprintf(crt_new, sizeof(crt_new), "%s.new", crt_path);
    if (days < 1 || days > 3650 || a < 0 || b < 0 || (size_t)a >= sizeof(key_new) ||
        (size_t)b >= sizeof(crt_new)) {
        return -EINVAL;
    }
    int64_t not_after = now_s + (int64_t)days * 86400;
    not_after = not_after > ca->not_after_s ? ca->not_after_s : not_after;
    if (not_after <= now_s) {
        return -EINVAL; /* the issuing CA has expired */
    }
    (void)unlink(key_new); /* a left-over of an interrupted run */
    struct hsm_key *key = NULL;
    int rc = hsm_soft_generate(&key, key_new, HSM_KEY_P256);
    if (rc != 0) {
        return rc;
    }
    static uint8_t der[SIGNER_CERT_DER_MAX]; /* an admin command's, one thread */
    static char pem[2 * SIGNER_CERT_DER_MAX + 128];
    size_t der_len = 0;
    size_t pem_len = 0;
    rc = delegate_cert(ca, key, kind, cn, now_s, not_after, der, &der_len);
    if (rc == 0) {
        rc = cert_pem_encode(pem, sizeof(pem), &pem_len, der, der_len);
    }
    if (rc == 0) {
        rc = base_file_write_atomic(crt_new, pem, pem_len, 0644, false);
    }
    /* The key first, then its certificate: a crash between leaves a pair that does not match,
     * which the signer's loader refuses (the CA then signs). */
    if (rc == 0 && rename(key_new, key_path) == -1) {
        rc = -errno;
    }
    if (rc == 0 && rename(crt_new, crt_path) == -1) {
        rc = -errno;
    }
    if (rc == 0 && out_not_after_s != NULL) {
        *out_not_after_s = not_after;
    }
    hsm_key_free(key);
    if (rc != 0) {
        (void)unlink(key_new);
        (void)unlink(crt_new);
    }
    return rc;
}
