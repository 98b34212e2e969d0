/* ocsp.c: the OCSP responder's codec (RFC 6960): the request parsed with CBS, bounded (size,
 * number of certificates, nonce), and the BasicOCSPResponse built with CBB and signed by the
 * issuing CA's key (through its backend). Responses name the responder by key hash (the CA's
 * subject key identifier, RFC 5280 §4.2.1.2 method 1 = the SHA-1 of its public key). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bytestring.h>
#include <openssl/digest.h>
#include <openssl/err.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include "base/base.h"
#include "signer/internal.h"

struct signer_ocsp_signer {
    struct hsm_key *key;
    uint8_t key_id[CERT_KEY_ID_LEN]; /* SHA-1 of its public key: the responder's KeyHash */
    size_t der_len;
    uint8_t der[SIGNER_CERT_DER_MAX]; /* its certificate, sent in every response */
    int64_t not_after_s;
};

static const uint8_t oid_sha1[] = {0x2b, 0x0e, 0x03, 0x02, 0x1a};
static const uint8_t oid_sha256[] = {0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01};
static const uint8_t oid_nonce[] = {0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x01, 0x02};
static const uint8_t oid_basic[] = {0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x01, 0x01};

/* issuer_hashes computes the issuer's name and key hashes with `md` (RFC 6960 §4.1.1). */
static int issuer_hashes(struct signer_ca *ca, const EVP_MD *md, uint8_t name_hash[32],
                         uint8_t key_hash[32])
{
    uint8_t spki[HSM_SPKI_MAX];
    size_t spki_len = 0;
    if (hsm_key_public_der(ca->key, spki, sizeof(spki), &spki_len) != 0) {
        return -EIO;
    }
    CBS cbs, seq, alg, key;
    uint8_t unused = 0;
    CBS_init(&cbs, spki, spki_len);
    if (!CBS_get_asn1(&cbs, &seq, CBS_ASN1_SEQUENCE) ||
        !CBS_get_asn1(&seq, &alg, CBS_ASN1_SEQUENCE) ||
        !CBS_get_asn1(&seq, &key, CBS_ASN1_BITSTRING) || !CBS_get_u8(&key, &unused)) {
        return -EIO;
    }
    unsigned n = 0;
    if (!EVP_Digest(ca->issuer, ca->issuer_len, name_hash, &n, md, NULL) ||
        !EVP_Digest(CBS_data(&key), CBS_len(&key), key_hash, &n, md, NULL)) {
        return -EIO;
    }
    return 0;
}

/* parse_certid reads a CertID and says whether it names a certificate of this CA. */
static int parse_certid(struct signer_ca *ca, struct signer_ocsp_cert *out, CBS *req)
{
    CBS id, alg, oid, name_hash, key_hash, serial;
    const uint8_t *start = CBS_data(req);
    if (!CBS_get_asn1(req, &id, CBS_ASN1_SEQUENCE)) {
        return -EBADMSG;
    }
    out->certid = start;
    out->certid_len = (size_t)(CBS_data(req) - start);
    if (!CBS_get_asn1(&id, &alg, CBS_ASN1_SEQUENCE) || !CBS_get_asn1(&alg, &oid, CBS_ASN1_OBJECT) ||
        !CBS_get_asn1(&id, &name_hash, CBS_ASN1_OCTETSTRING) ||
        !CBS_get_asn1(&id, &key_hash, CBS_ASN1_OCTETSTRING) ||
        !CBS_get_asn1(&id, &serial, CBS_ASN1_INTEGER) || CBS_len(&id) != 0 ||
        CBS_len(&serial) == 0) {
        return -EBADMSG;
    }
    /* AlgorithmIdentifier parameters: absent or NULL. */
    if (CBS_len(&alg) != 0) {
        CBS null;
        if (!CBS_get_asn1(&alg, &null, CBS_ASN1_NULL) || CBS_len(&null) != 0 ||
            CBS_len(&alg) != 0) {
            return -EBADMSG;
        }
    }
    const EVP_MD *md = NULL;
    if (CBS_mem_equal(&oid, oid_sha1, sizeof(oid_sha1))) {
        md = EVP_sha1();
    } else if (CBS_mem_equal(&oid, oid_sha256, sizeof(oid_sha256))) {
        md = EVP_sha256();
    }
    out->ours = false;
    if (md != NULL) {
        uint8_t nh[32];
        uint8_t kh[32];
        if (issuer_hashes(ca, md, nh, kh) != 0) {
            return -EIO;
        }
        size_t len = EVP_MD_size(md);
        out->ours = CBS_len(&name_hash) == len && CBS_len(&key_hash) == len &&
                    CBS_mem_equal(&name_hash, nh, len) && CBS_mem_equal(&key_hash, kh, len);
    }
    /* A serial of ours: positive, at most SIGNER_SERIAL_LEN bytes after its sign byte. Any other
     * is never one this CA issued: "unknown" (when the issuer is ours). */
    const uint8_t *p = CBS_data(&serial);
    size_t n = CBS_len(&serial);
    out->serial_ok = (p[0] & 0x80) == 0;
    while (n > 1 && p[0] == 0) {
        p++;
        n--;
    }
    out->serial_ok = out->serial_ok && n <= SIGNER_SERIAL_LEN;
    memset(out->serial, 0, sizeof(out->serial));
    if (out->serial_ok) {
        memcpy(out->serial + SIGNER_SERIAL_LEN - n, p, n);
    }
    return 0;
}

/* parse_nonce looks through requestExtensions for the nonce (RFC 6960 §4.4.1) and keeps its
 * extnValue (echoed as it is). */
static int parse_nonce(struct signer_ocsp_request *out, CBS *exts_wrap)
{
    CBS exts;
    if (!CBS_get_asn1(exts_wrap, &exts, CBS_ASN1_SEQUENCE) || CBS_len(exts_wrap) != 0) {
        return -EBADMSG;
    }
    /* Bounded by the request's size. */
    while (CBS_len(&exts) > 0) {
        CBS ext, oid, val;
        int critical = 0;
        if (!CBS_get_asn1(&exts, &ext, CBS_ASN1_SEQUENCE) ||
            !CBS_get_asn1(&ext, &oid, CBS_ASN1_OBJECT)) {
            return -EBADMSG;
        }
        if (CBS_peek_asn1_tag(&ext, CBS_ASN1_BOOLEAN)) {
            CBS b;
            if (!CBS_get_asn1(&ext, &b, CBS_ASN1_BOOLEAN) || CBS_len(&b) != 1) {
                return -EBADMSG;
            }
            critical = CBS_data(&b)[0] != 0;
        }
        if (!CBS_get_asn1(&ext, &val, CBS_ASN1_OCTETSTRING) || CBS_len(&ext) != 0) {
            return -EBADMSG;
        }
        if (CBS_mem_equal(&oid, oid_nonce, sizeof(oid_nonce))) {
            if (CBS_len(&val) == 0 || CBS_len(&val) > SIGNER_OCSP_NONCE_MAX) {
                return -EBADMSG; /* RFC 8954 §2.1: 1..32 bytes; we take up to the bound */
            }
            out->nonce = CBS_data(&val);
            out->nonce_len = CBS_len(&val);
        } else if (critical) {
            return -EBADMSG; /* a critical extension we do not understand */
        }
    }
    return 0;
}

int signer_ocsp_parse(struct signer_ca *ca, struct signer_ocsp_request *out,
                      enum signer_ocsp_status *out_status, const uint8_t *der, size_t len)
{
    ASSERT(ca != NULL);
    ASSERT(out != NULL);
    ASSERT(out_status != NULL);
    ASSERT(der != NULL || len == 0);
    memset(out, 0, sizeof(*out));
    *out_status = SIGNER_OCSP_MALFORMED;
    if (len > SIGNER_OCSP_REQUEST_MAX) {
        return -E2BIG;
    }
    CBS cbs, ocsp, tbs, list;
    CBS_init(&cbs, der, len);
    if (!CBS_get_asn1(&cbs, &ocsp, CBS_ASN1_SEQUENCE) || CBS_len(&cbs) != 0 ||
        !CBS_get_asn1(&ocsp, &tbs, CBS_ASN1_SEQUENCE)) {
        return -EBADMSG;
    }
    /* optionalSignature [0]: a signed request is accepted; its signature is not needed. */
    if (!CBS_get_optional_asn1(&ocsp, NULL, NULL,
                               CBS_ASN1_CONTEXT_SPECIFIC | CBS_ASN1_CONSTRUCTED | 0) ||
        CBS_len(&ocsp) != 0) {
        return -EBADMSG;
    }
    CBS version;
    int has_version = 0;
    if (!CBS_get_optional_asn1(&tbs, &version, &has_version,
                               CBS_ASN1_CONTEXT_SPECIFIC | CBS_ASN1_CONSTRUCTED | 0)) {
        return -EBADMSG;
    }
    uint64_t v = 0;
    if (has_version && (!CBS_get_asn1_uint64(&version, &v) || v != 0 || CBS_len(&version) != 0)) {
        return -EBADMSG; /* v1 (0) is the only version */
    }
    if (!CBS_get_optional_asn1(&tbs, NULL, NULL,
                               CBS_ASN1_CONTEXT_SPECIFIC | CBS_ASN1_CONSTRUCTED | 1) ||
        !CBS_get_asn1(&tbs, &list, CBS_ASN1_SEQUENCE) || CBS_len(&list) == 0) {
        return -EBADMSG;
    }
    /* Bounded by SIGNER_OCSP_CERTS_MAX. */
    while (CBS_len(&list) > 0) {
        if (out->num_certs == SIGNER_OCSP_CERTS_MAX) {
            return -E2BIG;
        }
        CBS one;
        if (!CBS_get_asn1(&list, &one, CBS_ASN1_SEQUENCE)) {
            return -EBADMSG;
        }
        int rc = parse_certid(ca, &out->certs[out->num_certs], &one);
        if (rc == -EIO) {
            *out_status = SIGNER_OCSP_INTERNAL_ERROR;
            return rc;
        }
        /* singleRequestExtensions [0]: none is understood, none needed. */
        if (rc != 0 ||
            !CBS_get_optional_asn1(&one, NULL, NULL,
                                   CBS_ASN1_CONTEXT_SPECIFIC | CBS_ASN1_CONSTRUCTED | 0) ||
            CBS_len(&one) != 0) {
            return -EBADMSG;
        }
        out->num_certs++;
    }
    CBS exts;
    int has_exts = 0;
    if (!CBS_get_optional_asn1(&tbs, &exts, &has_exts,
                               CBS_ASN1_CONTEXT_SPECIFIC | CBS_ASN1_CONSTRUCTED | 2) ||
        CBS_len(&tbs) != 0) {
        return -EBADMSG;
    }
    if (has_exts && parse_nonce(out, &exts) != 0) {
        return -EBADMSG;
    }
    for (size_t i = 0; i < out->num_certs; i++) {
        if (!out->certs[i].ours) {
            *out_status = SIGNER_OCSP_UNAUTHORIZED; /* RFC 5019 §2.2.3: not this responder's */
            return -EPERM;
        }
    }
    *out_status = SIGNER_OCSP_SUCCESSFUL;
    return 0;
}

size_t signer_ocsp_error(uint8_t out[SIGNER_OCSP_ERROR_LEN], enum signer_ocsp_status status)
{
    ASSERT(status != SIGNER_OCSP_SUCCESSFUL);
    /* OCSPResponse { responseStatus ENUMERATED } without responseBytes (RFC 6960 §4.2.1). */
    out[0] = 0x30;
    out[1] = 0x03;
    out[2] = 0x0a;
    out[3] = 0x01;
    out[4] = (uint8_t)status;
    return SIGNER_OCSP_ERROR_LEN;
}

/* add_gentime writes a GeneralizedTime: OCSP's times are always GeneralizedTime (RFC 6960
 * §4.2.1, from RFC 5280 §4.1.2.5.2). */
static int add_gentime(CBB *cbb, int64_t t)
{
    struct tm tm = {0};
    time_t tt = (time_t)t;
    if (gmtime_r(&tt, &tm) == NULL) {
        return 0;
    }
    char buf[16];
    int n = snprintf(buf, sizeof(buf), "%04d%02d%02d%02d%02d%02dZ", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    CBB c;
    return n == 15 && CBB_add_asn1(cbb, &c, CBS_ASN1_GENERALIZEDTIME) &&
           CBB_add_bytes(&c, (const uint8_t *)buf, 15) && CBB_flush(cbb);
}

static int add_single(CBB *list, const struct signer_ocsp_cert *c,
                      const struct signer_ocsp_answer *a, int64_t now_s, int64_t next_s)
{
    CBB single, st, wrap, en;
    int ok = CBB_add_asn1(list, &single, CBS_ASN1_SEQUENCE) &&
             CBB_add_bytes(&single, c->certid, c->certid_len);
    switch (a->status) {
    case SIGNER_OCSP_GOOD:
        ok = ok && CBB_add_asn1(&single, &st, CBS_ASN1_CONTEXT_SPECIFIC | 0);
        break;
    case SIGNER_OCSP_REVOKED:
        ok = ok &&
             CBB_add_asn1(&single, &st, CBS_ASN1_CONTEXT_SPECIFIC | CBS_ASN1_CONSTRUCTED | 1) &&
             add_gentime(&st, a->revoked_at_s);
        if (a->reason != STORE_REASON_UNSPECIFIED) {
            ok = ok &&
                 CBB_add_asn1(&st, &wrap, CBS_ASN1_CONTEXT_SPECIFIC | CBS_ASN1_CONSTRUCTED | 0) &&
                 CBB_add_asn1(&wrap, &en, CBS_ASN1_ENUMERATED) && CBB_add_u8(&en, a->reason);
        }
        break;
    case SIGNER_OCSP_UNKNOWN:
        ok = ok && CBB_add_asn1(&single, &st, CBS_ASN1_CONTEXT_SPECIFIC | 2);
        break;
    }
    ok = ok && CBB_flush(&single) && add_gentime(&single, now_s);
    if (a->status != SIGNER_OCSP_UNKNOWN) {
        ok = ok &&
             CBB_add_asn1(&single, &wrap, CBS_ASN1_CONTEXT_SPECIFIC | CBS_ASN1_CONSTRUCTED | 0) &&
             add_gentime(&wrap, next_s);
    }
    return ok && CBB_flush(list);
}

int signer_ocsp_respond(struct signer_ca *ca, const struct signer_ocsp_signer *signer, uint8_t *out,
                        size_t cap, size_t *out_len, const struct signer_ocsp_request *req,
                        const struct signer_ocsp_answer *answers, int64_t now_s, int64_t next_s)
{
    ASSERT(ca != NULL);
    ASSERT(out != NULL);
    ASSERT(req != NULL);
    ASSERT(answers != NULL);
    ASSERT(req->num_certs >= 1 && req->num_certs <= SIGNER_OCSP_CERTS_MAX);
    /* ResponseData, built on the stack and signed, then wrapped into `out`. */
    uint8_t tbs[SIGNER_OCSP_RESPONSE_MAX];
    CBB cbb, data, rid, list, wrap, exts, ext, val;
    size_t tbs_len = 0;
    if (!CBB_init_fixed(&cbb, tbs, sizeof(tbs)) || !CBB_add_asn1(&cbb, &data, CBS_ASN1_SEQUENCE) ||
        !CBB_add_asn1(&data, &rid, CBS_ASN1_CONTEXT_SPECIFIC | CBS_ASN1_CONSTRUCTED | 2) ||
        !CBB_add_asn1_octet_string(&rid, signer != NULL ? signer->key_id : ca->ski,
                                   signer != NULL ? sizeof(signer->key_id) : ca->ski_len) ||
        !CBB_flush(&data) || !add_gentime(&data, now_s) ||
        !CBB_add_asn1(&data, &list, CBS_ASN1_SEQUENCE)) {
        return -E2BIG;
    }
    for (size_t i = 0; i < req->num_certs; i++) {
        if (!add_single(&list, &req->certs[i], &answers[i], now_s, next_s)) {
            return -E2BIG;
        }
    }
    if (!CBB_flush(&data)) {
        return -E2BIG;
    }
    if (req->nonce != NULL &&
        (!CBB_add_asn1(&data, &wrap, CBS_ASN1_CONTEXT_SPECIFIC | CBS_ASN1_CONSTRUCTED | 1) ||
         !CBB_add_asn1(&wrap, &exts, CBS_ASN1_SEQUENCE) ||
         !CBB_add_asn1(&exts, &ext, CBS_ASN1_SEQUENCE) ||
         !cert_add_oid(&ext, oid_nonce, sizeof(oid_nonce)) ||
         !CBB_add_asn1(&ext, &val, CBS_ASN1_OCTETSTRING) ||
         !CBB_add_bytes(&val, req->nonce, req->nonce_len))) {
        return -E2BIG;
    }
    if (!CBB_finish(&cbb, NULL, &tbs_len)) {
        return -E2BIG;
    }
    uint8_t sig[HSM_SIG_MAX];
    struct hsm_sign_item item = {.tbs = tbs, .tbs_len = tbs_len, .sig = sig};
    struct hsm_key *key = signer != NULL ? signer->key : ca->key;
    int src = hsm_key_sign_batch(key, &item, 1);
    if (src != 0 || item.rc != 0) {
        return src == -EAGAIN ? -EAGAIN : -EIO;
    }
    CBB resp, en, bytes, rb, octets, basic, bits, certs, certlist;
    size_t len = 0;
    /* OCSPResponse { successful, [0] ResponseBytes { id-pkix-ocsp-basic, OCTET STRING {
     * BasicOCSPResponse { tbsResponseData, signatureAlgorithm, signature } } } } */
    if (!CBB_init_fixed(&cbb, out, cap) || !CBB_add_asn1(&cbb, &resp, CBS_ASN1_SEQUENCE) ||
        !CBB_add_asn1(&resp, &en, CBS_ASN1_ENUMERATED) || !CBB_add_u8(&en, 0) ||
        !CBB_add_asn1(&resp, &bytes, CBS_ASN1_CONTEXT_SPECIFIC | CBS_ASN1_CONSTRUCTED | 0) ||
        !CBB_add_asn1(&bytes, &rb, CBS_ASN1_SEQUENCE) ||
        !cert_add_oid(&rb, oid_basic, sizeof(oid_basic)) ||
        !CBB_add_asn1(&rb, &octets, CBS_ASN1_OCTETSTRING) ||
        !CBB_add_asn1(&octets, &basic, CBS_ASN1_SEQUENCE) || !CBB_add_bytes(&basic, tbs, tbs_len) ||
        !cert_add_sigalg(&basic, hsm_key_get_type(key)) ||
        !CBB_add_asn1(&basic, &bits, CBS_ASN1_BITSTRING) || !CBB_add_u8(&bits, 0) ||
        !CBB_add_bytes(&bits, sig, item.sig_len)) {
        return -E2BIG;
    }
    /* certs [0]: the delegated signer's certificate, so that a client can check it was issued
     * by the CA for OCSPSigning (RFC 6960 §4.2.2.2). */
    if (signer != NULL &&
        (!CBB_add_asn1(&basic, &certs, CBS_ASN1_CONTEXT_SPECIFIC | CBS_ASN1_CONSTRUCTED | 0) ||
         !CBB_add_asn1(&certs, &certlist, CBS_ASN1_SEQUENCE) ||
         !CBB_add_bytes(&certlist, signer->der, signer->der_len))) {
        return -E2BIG;
    }
    if (!CBB_finish(&cbb, NULL, &len)) {
        return -E2BIG;
    }
    *out_len = len;
    return 0;
}

/* ---- the delegated OCSP signer (RFC 6960 §4.2.2.2) ---- */

#define OCSP_SIGNER_CN "certprov OCSP signer"

/* signer_paths writes <dir>/ca/ocsp.key and <dir>/ca/ocsp.crt (suffix: ".new" or ""). */
static int signer_paths(char key[4200], char crt[4200], const char *dir, const char *suffix)
{
    int a = snprintf(key, 4200, "%s/ca/ocsp.key%s", dir, suffix);
    int b = snprintf(crt, 4200, "%s/ca/ocsp.crt%s", dir, suffix);
    return a >= 4200 || b >= 4200 ? -EINVAL : 0;
}

int signer_ocsp_signer_issue(struct signer_ca *ca, const char *dir, uint32_t days, int64_t now_s,
                             int64_t *out_not_after_s)
{
    ASSERT(ca != NULL);
    ASSERT(dir != NULL);
    char key_path[4200];
    char crt_path[4200];
    if (signer_paths(key_path, crt_path, dir, "") != 0) {
        return -EINVAL;
    }
    return ca_delegate_issue(ca, CERT_KIND_OCSP, OCSP_SIGNER_CN, key_path, crt_path, days, now_s,
                             out_not_after_s);
}

int signer_ocsp_signer_open(struct signer_ocsp_signer **out, struct signer_ca *ca, const char *dir)
{
    ASSERT(out != NULL);
    char key_path[4200];
    char crt_path[4200];
    if (signer_paths(key_path, crt_path, dir, "") != 0) {
        return -EINVAL;
    }
    struct signer_ocsp_signer *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        return -ENOMEM;
    }
    int rc = signer_pem_read_cert(s->der, sizeof(s->der), &s->der_len, crt_path, 0);
    if (rc == 0) {
        rc = hsm_soft_open(&s->key, key_path);
    }
    uint8_t spki[HSM_SPKI_MAX];
    size_t spki_len = 0;
    if (rc == 0) {
        rc = hsm_key_public_der(s->key, spki, sizeof(spki), &spki_len);
    }
    if (rc == 0) {
        rc = cert_key_id(s->key_id, spki, spki_len);
    }
    /* The certificate must hold this key and be the issuing CA's: CBS walk to its SPKI. */
    CBS cbs, cert, tbs, iss;
    CBS_init(&cbs, s->der, s->der_len);
    if (rc == 0 && (!CBS_get_asn1(&cbs, &cert, CBS_ASN1_SEQUENCE) ||
                    !CBS_get_asn1(&cert, &tbs, CBS_ASN1_SEQUENCE) ||
                    !CBS_get_optional_asn1(&tbs, NULL, NULL,
                                           CBS_ASN1_CONSTRUCTED | CBS_ASN1_CONTEXT_SPECIFIC | 0) ||
                    !CBS_get_asn1(&tbs, NULL, CBS_ASN1_INTEGER) ||
                    !CBS_get_asn1(&tbs, NULL, CBS_ASN1_SEQUENCE) ||
                    !CBS_get_asn1_element(&tbs, &iss, CBS_ASN1_SEQUENCE) ||
                    !CBS_mem_equal(&iss, ca->issuer, ca->issuer_len))) {
        rc = -EBADMSG; /* not issued by this CA (issuer Name differs) */
    }
    if (rc == 0) {
        CBS validity, subject, key;
        if (!CBS_get_asn1(&tbs, &validity, CBS_ASN1_SEQUENCE) ||
            !CBS_get_asn1(&tbs, &subject, CBS_ASN1_SEQUENCE) ||
            !CBS_get_asn1_element(&tbs, &key, CBS_ASN1_SEQUENCE) ||
            !CBS_mem_equal(&key, spki, spki_len)) {
            rc = -EBADMSG; /* the key is not the certificate's */
        }
    }
    if (rc == 0) {
        /* Its notAfter, through BoringSSL's X509. */
        const uint8_t *p = s->der;
        X509 *x = d2i_X509(NULL, &p, (long)s->der_len);
        if (x == NULL || !signer_asn1_time_unix(X509_get0_notAfter(x), &s->not_after_s)) {
            rc = -EBADMSG;
        }
        X509_free(x);
        ERR_clear_error();
    }
    if (rc != 0) {
        signer_ocsp_signer_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

int64_t signer_ocsp_signer_not_after(const struct signer_ocsp_signer *s)
{
    ASSERT(s != NULL);
    return s->not_after_s;
}

void signer_ocsp_signer_free(struct signer_ocsp_signer *s)
{
    if (s == NULL) {
        return;
    }
    hsm_key_free(s->key);
    free(s);
}
