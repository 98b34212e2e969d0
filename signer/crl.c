/* crl.c: revocation on the signer's side: the serial of a presented certificate (renewal) and
 * the CRL (RFC 5280 §5), built with CBB and signed through the CA's key backend. */
#include <errno.h>
#include <string.h>

#include <openssl/bytestring.h>
#include <openssl/mem.h>

#include "base/base.h"
#include "signer/internal.h"

int signer_cert_serial(uint8_t out[SIGNER_SERIAL_LEN], const uint8_t *der, size_t der_len)
{
    ASSERT(out != NULL);
    ASSERT(der != NULL || der_len == 0);
    CBS cbs;
    CBS cert;
    CBS tbs;
    CBS serial;
    CBS_init(&cbs, der, der_len);
    /* Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { [0] version OPTIONAL, serialNumber
     * INTEGER, ... } ... } (RFC 5280 §4.1). */
    if (!CBS_get_asn1(&cbs, &cert, CBS_ASN1_SEQUENCE) || CBS_len(&cbs) != 0 ||
        !CBS_get_asn1(&cert, &tbs, CBS_ASN1_SEQUENCE) ||
        !CBS_get_optional_asn1(&tbs, NULL, NULL,
                               CBS_ASN1_CONSTRUCTED | CBS_ASN1_CONTEXT_SPECIFIC | 0) ||
        !CBS_get_asn1(&tbs, &serial, CBS_ASN1_INTEGER) || CBS_len(&serial) == 0) {
        return -EBADMSG;
    }
    const uint8_t *p = CBS_data(&serial);
    size_t n = CBS_len(&serial);
    if ((p[0] & 0x80) != 0) {
        return -EBADMSG; /* negative: never ours */
    }
    while (n > 1 && p[0] == 0) {
        p++;
        n--;
    }
    if (n > SIGNER_SERIAL_LEN) {
        return -EBADMSG;
    }
    memset(out, 0, SIGNER_SERIAL_LEN);
    memcpy(out + SIGNER_SERIAL_LEN - n, p, n);
    return 0;
}

static const uint8_t oid_crl_number[] = {0x55, 0x1d, 0x14};
static const uint8_t oid_crl_reason[] = {0x55, 0x1d, 0x15};

static bool url_ok(const char *url)
{
    size_t n = strnlen(url, SIGNER_URL_MAX + 1);
    if (n > SIGNER_URL_MAX ||
        (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0)) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (url[i] <= 0x20 || url[i] >= 0x7f) {
            return false; /* IA5String, no spaces: a URI (RFC 3986) */
        }
    }
    return true;
}

int signer_ca_set_urls(struct signer_ca *ca, const char *crl_url, const char *ocsp_url)
{
    ASSERT(ca != NULL);
    bool crl = crl_url != NULL && crl_url[0] != '\0';
    bool ocsp = ocsp_url != NULL && ocsp_url[0] != '\0';
    if ((crl && !url_ok(crl_url)) || (ocsp && !url_ok(ocsp_url))) {
        return -EINVAL;
    }
    (void)base_str_copy(ca->crl_url, sizeof(ca->crl_url), crl ? crl_url : "");
    (void)base_str_copy(ca->ocsp_url, sizeof(ca->ocsp_url), ocsp ? ocsp_url : "");
    return 0;
}

/* add_entry writes one revokedCertificates entry (RFC 5280 §5.1.2.6, §5.3.1). */
static int add_entry(CBB *list, const struct signer_crl_entry *e)
{
    CBB ent, exts, ext, val, en;
    int ok = CBB_add_asn1(list, &ent, CBS_ASN1_SEQUENCE) && cert_add_serial(&ent, e->serial) &&
             cert_add_time(&ent, e->revoked_at_s);
    if (e->reason != STORE_REASON_UNSPECIFIED) { /* §5.3.1: unspecified SHOULD be absent */
        ok = ok && CBB_add_asn1(&ent, &exts, CBS_ASN1_SEQUENCE) &&
             CBB_add_asn1(&exts, &ext, CBS_ASN1_SEQUENCE) &&
             cert_add_oid(&ext, oid_crl_reason, sizeof(oid_crl_reason)) &&
             CBB_add_asn1(&ext, &val, CBS_ASN1_OCTETSTRING) &&
             CBB_add_asn1(&val, &en, CBS_ASN1_ENUMERATED) && CBB_add_u8(&en, e->reason);
        ASSERT(e->reason < 0x80); /* one content byte: a positive ENUMERATED */
    }
    return ok && CBB_flush(list);
}

/* build_tbs writes the TBSCertList into `cbb` (growing). */
static int build_tbs(CBB *cbb, const struct signer_ca *ca, const struct signer_crl_entry *entries,
                     size_t num, uint64_t crl_number, int64_t this_update_s, int64_t next_update_s)
{
    CBB tbs, list, wrap, exts, ext, val;
    int ok = CBB_add_asn1(cbb, &tbs, CBS_ASN1_SEQUENCE) && CBB_add_asn1_uint64(&tbs, 1) /* v2 */ &&
             cert_add_sigalg(&tbs, hsm_key_get_type(ca->key)) &&
             CBB_add_bytes(&tbs, ca->issuer, ca->issuer_len) &&
             cert_add_time(&tbs, this_update_s) && cert_add_time(&tbs, next_update_s);
    if (ok && num > 0) { /* §5.1.2.6: absent when there are none */
        ok = CBB_add_asn1(&tbs, &list, CBS_ASN1_SEQUENCE);
        for (size_t i = 0; ok && i < num; i++) {
            ok = add_entry(&list, &entries[i]);
        }
    }
    ok = ok && CBB_add_asn1(&tbs, &wrap, CBS_ASN1_CONTEXT_SPECIFIC | CBS_ASN1_CONSTRUCTED | 0) &&
         CBB_add_asn1(&wrap, &exts, CBS_ASN1_SEQUENCE) &&
         cert_add_aki(&exts, ca->ski, ca->ski_len) &&
         CBB_add_asn1(&exts, &ext, CBS_ASN1_SEQUENCE) &&
         cert_add_oid(&ext, oid_crl_number, sizeof(oid_crl_number)) &&
         CBB_add_asn1(&ext, &val, CBS_ASN1_OCTETSTRING) && CBB_add_asn1_uint64(&val, crl_number);
    return ok && CBB_flush(cbb);
}

int signer_crl_build(struct signer_ca *ca, uint8_t **out_der, size_t *out_len,
                     const struct signer_crl_entry *entries, size_t num_entries,
                     uint64_t crl_number, int64_t this_update_s, int64_t next_update_s)
{
    ASSERT(ca != NULL);
    ASSERT(out_der != NULL);
    ASSERT(out_len != NULL);
    ASSERT(entries != NULL || num_entries == 0);
    ASSERT(this_update_s < next_update_s);
    CBB tbs_cbb;
    CBB cbb;
    CBB crl;
    CBB bits;
    uint8_t *tbs = NULL;
    size_t tbs_len = 0;
    uint8_t *der = NULL;
    size_t der_len = 0;
    int rc = -ENOMEM;
    CBB_zero(&tbs_cbb);
    CBB_zero(&cbb);
    if (!CBB_init(&tbs_cbb, 256 + 64 * num_entries) ||
        !build_tbs(&tbs_cbb, ca, entries, num_entries, crl_number, this_update_s, next_update_s) ||
        !CBB_finish(&tbs_cbb, &tbs, &tbs_len)) {
        goto out;
    }
    uint8_t sig[HSM_SIG_MAX];
    struct hsm_sign_item item = {.tbs = tbs, .tbs_len = tbs_len, .sig = sig};
    int src = hsm_key_sign_batch(ca->key, &item, 1);
    if (src != 0 || item.rc != 0) {
        rc = src == -EAGAIN ? -EAGAIN : -EIO;
        goto out;
    }
    if (!CBB_init(&cbb, tbs_len + item.sig_len + 64) ||
        !CBB_add_asn1(&cbb, &crl, CBS_ASN1_SEQUENCE) || !CBB_add_bytes(&crl, tbs, tbs_len) ||
        !cert_add_sigalg(&crl, hsm_key_get_type(ca->key)) ||
        !CBB_add_asn1(&crl, &bits, CBS_ASN1_BITSTRING) || !CBB_add_u8(&bits, 0) ||
        !CBB_add_bytes(&bits, sig, item.sig_len) || !CBB_finish(&cbb, &der, &der_len)) {
        goto out;
    }
    *out_der = der;
    *out_len = der_len;
    der = NULL;
    rc = 0;
out:
    CBB_cleanup(&tbs_cbb);
    CBB_cleanup(&cbb);
    OPENSSL_free(tbs);
    OPENSSL_free(der);
    return rc;
}

void signer_crl_free(uint8_t *der)
{
    OPENSSL_free(der);
}
