/* est: the EST (RFC 7030) wire codec. /cacerts and simpleenroll answer with a certs-only CMS
 * message: a degenerate SignedData without signers (RFC 5652 §5, RFC 2315 §9.1), built with CBB,
 * sent as base64 (RFC 7030 §4.1.3 and §4.2.3). Errors are text/plain "CODE: reason" (README,
 * Endpoints). */
#include <errno.h>
#include <string.h>

#include <openssl/bytestring.h>

#include "base/base.h"
#include "signer/signer.h"

#define EST_LINE_DER 48 /* DER bytes per base64 line: 64 characters */
#define EST_LINE_TEXT 65

/* 1.2.840.113549.1.7.2 signedData and 1.2.840.113549.1.7.1 data (RFC 5652 §5.1, §4). */
static const uint8_t oid_signed_data[] = {0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02};
static const uint8_t oid_data[] = {0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01};

static int add_oid(CBB *cbb, const uint8_t *oid, size_t len)
{
    CBB c;
    return CBB_add_asn1(cbb, &c, CBS_ASN1_OBJECT) && CBB_add_bytes(&c, oid, len) && CBB_flush(cbb);
}

/* cert_is_sequence checks that `der` is exactly one DER SEQUENCE, nothing after it. */
static bool cert_is_sequence(const struct signer_est_cert *cert)
{
    CBS in, seq;
    if (cert->der == NULL || cert->der_len == 0) {
        return false;
    }
    CBS_init(&in, cert->der, cert->der_len);
    return CBS_get_asn1(&in, &seq, CBS_ASN1_SEQUENCE) && CBS_len(&in) == 0;
}

/* add_signed_data writes SignedData: version 1, no digestAlgorithms, encapContentInfo of type data
 * without content, certificates [0] IMPLICIT in the given order, no signerInfos. The certificates
 * are written as given, not sorted as DER's SET OF would want: every reader (and OpenSSL, which
 * writes them the same way) keeps the order, and EST clients expect the issuing CA first. */
static int add_signed_data(CBB *cbb, const struct signer_est_cert *certs, size_t num_certs)
{
    CBB sd, digests, content, set, signers;
    if (!CBB_add_asn1(cbb, &sd, CBS_ASN1_SEQUENCE) || !CBB_add_asn1_uint64(&sd, 1) ||
        !CBB_add_asn1(&sd, &digests, CBS_ASN1_SET) ||
        !CBB_add_asn1(&sd, &content, CBS_ASN1_SEQUENCE) ||
        !add_oid(&content, oid_data, sizeof(oid_data)) ||
        !CBB_add_asn1(&sd, &set, CBS_ASN1_CONTEXT_SPECIFIC | CBS_ASN1_CONSTRUCTED | 0)) {
        return 0;
    }
    for (size_t i = 0; i < num_certs; i++) {
        if (!CBB_add_bytes(&set, certs[i].der, certs[i].der_len)) {
            return 0;
        }
    }
    return CBB_add_asn1(&sd, &signers, CBS_ASN1_SET) && CBB_flush(cbb);
}

int signer_est_certs_only_der(uint8_t *out, size_t cap, size_t *out_len,
                              const struct signer_est_cert *certs, size_t num_certs)
{
    ASSERT(out != NULL);
    ASSERT(out_len != NULL);
    ASSERT(certs != NULL);
    ASSERT(num_certs >= 1 && num_certs <= SIGNER_EST_CERTS_MAX);
    for (size_t i = 0; i < num_certs; i++) {
        if (!cert_is_sequence(&certs[i])) {
            return -EBADMSG;
        }
    }
    CBB cbb, ci, explicit;
    size_t len = 0;
    if (!CBB_init_fixed(&cbb, out, cap)) {
        return -E2BIG;
    }
    /* ContentInfo ::= SEQUENCE { contentType, [0] EXPLICIT content } (RFC 5652 §3) */
    if (!CBB_add_asn1(&cbb, &ci, CBS_ASN1_SEQUENCE) ||
        !add_oid(&ci, oid_signed_data, sizeof(oid_signed_data)) ||
        !CBB_add_asn1(&ci, &explicit, CBS_ASN1_CONTEXT_SPECIFIC | CBS_ASN1_CONSTRUCTED | 0) ||
        !add_signed_data(&explicit, certs, num_certs) || !CBB_finish(&cbb, NULL, &len)) {
        CBB_cleanup(&cbb);
        return -E2BIG; /* the only way a fixed CBB fails with valid arguments */
    }
    ASSERT(len > 0 && len <= cap);
    *out_len = len;
    return 0;
}

int signer_est_certs_only(char *out, size_t cap, size_t *out_len,
                          const struct signer_est_cert *certs, size_t num_certs)
{
    ASSERT(out != NULL);
    ASSERT(out_len != NULL);
    size_t der_len = 0;
    int rc = signer_est_certs_only_der((uint8_t *)out, cap, &der_len, certs, num_certs);
    if (rc != 0) {
        return rc;
    }
    size_t lines = (der_len + EST_LINE_DER - 1) / EST_LINE_DER;
    if (lines > (cap - 1) / EST_LINE_TEXT) {
        return -E2BIG;
    }
    /* Encode in place. The DER moves to the tail of `out`; line k (48 bytes in, 65 out) is copied
     * to `chunk` before it is overwritten. With D = cap - der_len, line k's output ends at
     * 65 (k + 1) and the next unread byte is D + 48 (k + 1); since cap >= 65 * lines + 1 and
     * der_len <= 48 * lines, D >= 17 * lines + 1 > 17 (k + 1), so output never passes input. */
    size_t d = cap - der_len;
    memmove(out + d, out, der_len);
    size_t n = 0;
    for (size_t off = 0; off < der_len; off += EST_LINE_DER) {
        uint8_t chunk[EST_LINE_DER];
        size_t take = der_len - off < EST_LINE_DER ? der_len - off : EST_LINE_DER;
        memcpy(chunk, out + d + off, take);
        ASSERT(n + EST_LINE_TEXT <= d + off + take || off + take == der_len);
        char line[EST_LINE_TEXT + 1];
        size_t m = base_b64_encode(line, sizeof(line), chunk, take);
        memcpy(out + n, line, m);
        n += m;
        out[n++] = '\n';
    }
    ASSERT(n <= lines * EST_LINE_TEXT);
    ASSERT(n < cap);
    out[n] = '\0';
    *out_len = n;
    return 0;
}

int signer_est_error_body(char *out, size_t cap, size_t *out_len, enum signer_code code,
                          const char *reason)
{
    ASSERT(out != NULL && cap > 0);
    ASSERT(out_len != NULL);
    ASSERT(reason != NULL);
    const char *name = signer_code_name(code);
    size_t name_len = strlen(name);
    if (cap < name_len + 4) { /* "CODE: \n" and the NUL */
        out[0] = '\0';
        return -E2BIG;
    }
    memcpy(out, name, name_len);
    memcpy(out + name_len, ": ", 2);
    size_t n = name_len + 2;
    for (const char *s = reason; *s != '\0' && n + 2 < cap; s++) { /* leaves "\n" and NUL */
        unsigned char u = (unsigned char)*s;
        out[n++] = u < 0x20 || u == 0x7f ? ' ' : *s;
    }
    out[n++] = '\n';
    out[n] = '\0';
    ASSERT(n < cap);
    *out_len = n;
    return 0;
}
