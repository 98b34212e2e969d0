/* Tests of the OCSP codec (RFC 6960): requests built by hand with CBB for this CA (SHA-1 and
 * SHA-256 CertIDs, nonces, bounds, other issuers), responses parsed back with CBS and their
 * signatures verified with the issuing CA's public key. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bytestring.h>
#include <openssl/digest.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "base/base.h"
#include "signer/internal.h"
#include "signer/signer.h"
#include "tests/util/tmpdir.h"

static char tmpdir[TMPDIR_PATH_MAX];
static char cadir[128];
static struct signer_ca *g_ca;

static void setup(void)
{
    tmpdir_create(tmpdir, sizeof(tmpdir), "certprov-ocsp");
    snprintf(cadir, sizeof(cadir), "%s/store", tmpdir);
    cr_assert_eq(signer_ca_init(cadir, HSM_KEY_P256, "certprov.example.com"), 0);
    cr_assert_eq(signer_ca_open(&g_ca, NULL, cadir), 0);
}

static void teardown(void)
{
    signer_ca_free(g_ca);
    tmpdir_remove(tmpdir);
}

TestSuite(signer_ocsp, .init = setup, .fini = teardown);

static X509 *issuing(void)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/ca/issuing.crt", cadir);
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f);
    X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    cr_assert_not_null(x);
    return x;
}

/* certid appends a CertID of `md` for the issuing CA (or garbage hashes when !ours). */
static void certid(CBB *list, const EVP_MD *md, bool ours, const uint8_t *serial, size_t len)
{
    X509 *x = issuing();
    uint8_t nh[32];
    uint8_t kh[32];
    unsigned n = 0;
    uint8_t *name = NULL;
    int name_len = i2d_X509_NAME(X509_get_subject_name(x), &name);
    cr_assert_gt(name_len, 0);
    cr_assert(EVP_Digest(name, (size_t)name_len, nh, &n, md, NULL));
    const ASN1_BIT_STRING *key = X509_get0_pubkey_bitstr(x);
    cr_assert(EVP_Digest(key->data, (size_t)key->length, kh, &n, md, NULL));
    OPENSSL_free(name);
    X509_free(x);
    if (!ours) {
        kh[0] ^= 1;
    }
    static const uint8_t sha1[] = {0x2b, 0x0e, 0x03, 0x02, 0x1a};
    static const uint8_t sha256[] = {0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01};
    bool is1 = md == EVP_sha1();
    CBB req, id, alg, oid, v;
    cr_assert(CBB_add_asn1(list, &req, CBS_ASN1_SEQUENCE));
    cr_assert(CBB_add_asn1(&req, &id, CBS_ASN1_SEQUENCE));
    cr_assert(CBB_add_asn1(&id, &alg, CBS_ASN1_SEQUENCE));
    cr_assert(CBB_add_asn1(&alg, &oid, CBS_ASN1_OBJECT));
    cr_assert(CBB_add_bytes(&oid, is1 ? sha1 : sha256, is1 ? sizeof(sha1) : sizeof(sha256)));
    cr_assert(CBB_add_asn1(&alg, &v, CBS_ASN1_NULL));
    cr_assert(CBB_add_asn1_octet_string(&id, nh, n));
    cr_assert(CBB_add_asn1_octet_string(&id, kh, n));
    cr_assert(CBB_add_asn1(&id, &v, CBS_ASN1_INTEGER));
    cr_assert(CBB_add_bytes(&v, serial, len));
    cr_assert(CBB_flush(list));
}

/* request builds an OCSPRequest of `num` CertIDs (serial i+1 each) and an optional nonce. */
static size_t request(uint8_t *out, size_t cap, size_t num, const EVP_MD *md, bool ours,
                      const uint8_t *nonce, size_t nonce_len)
{
    CBB cbb, ocsp, tbs, list, w, exts, ext, oid, val;
    static const uint8_t oid_nonce[] = {0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x01, 0x02};
    cr_assert(CBB_init_fixed(&cbb, out, cap));
    cr_assert(CBB_add_asn1(&cbb, &ocsp, CBS_ASN1_SEQUENCE));
    cr_assert(CBB_add_asn1(&ocsp, &tbs, CBS_ASN1_SEQUENCE));
    cr_assert(CBB_add_asn1(&tbs, &list, CBS_ASN1_SEQUENCE));
    for (size_t i = 0; i < num; i++) {
        uint8_t serial[2] = {0x01, (uint8_t)(i + 1)};
        certid(&list, md, ours, serial, sizeof(serial));
    }
    cr_assert(CBB_flush(&tbs));
    if (nonce != NULL) {
        cr_assert(CBB_add_asn1(&tbs, &w, CBS_ASN1_CONTEXT_SPECIFIC | CBS_ASN1_CONSTRUCTED | 2));
        cr_assert(CBB_add_asn1(&w, &exts, CBS_ASN1_SEQUENCE));
        cr_assert(CBB_add_asn1(&exts, &ext, CBS_ASN1_SEQUENCE));
        cr_assert(CBB_add_asn1(&ext, &oid, CBS_ASN1_OBJECT));
        cr_assert(CBB_add_bytes(&oid, oid_nonce, sizeof(oid_nonce)));
        cr_assert(CBB_add_asn1(&ext, &val, CBS_ASN1_OCTETSTRING));
        cr_assert(CBB_add_bytes(&val, nonce, nonce_len));
    }
    size_t len = 0;
    cr_assert(CBB_finish(&cbb, NULL, &len));
    return len;
}

Test(signer_ocsp, parse_sha1_and_sha256_with_nonce)
{
    static uint8_t der[SIGNER_OCSP_REQUEST_MAX];
    static const uint8_t nonce[] = {0x04, 0x04, 1, 2, 3, 4};
    const EVP_MD *mds[2] = {EVP_sha1(), EVP_sha256()};
    for (size_t m = 0; m < 2; m++) {
        size_t len = request(der, sizeof(der), 3, mds[m], true, nonce, sizeof(nonce));
        struct signer_ocsp_request req;
        enum signer_ocsp_status st = SIGNER_OCSP_MALFORMED;
        cr_assert_eq(signer_ocsp_parse(g_ca, &req, &st, der, len), 0);
        cr_assert_eq(st, SIGNER_OCSP_SUCCESSFUL);
        cr_assert_eq(req.num_certs, 3);
        for (size_t i = 0; i < 3; i++) {
            cr_assert(req.certs[i].ours);
            cr_assert(req.certs[i].serial_ok);
            cr_assert_eq(req.certs[i].serial[14], 0x01);
            cr_assert_eq(req.certs[i].serial[15], i + 1);
            cr_assert(req.certs[i].certid > der && req.certs[i].certid < der + len);
        }
        cr_assert_eq(req.nonce_len, sizeof(nonce));
        cr_assert_eq(memcmp(req.nonce, nonce, sizeof(nonce)), 0);
    }
}

Test(signer_ocsp, refusals)
{
    static uint8_t der[SIGNER_OCSP_REQUEST_MAX + 16];
    struct signer_ocsp_request req;
    enum signer_ocsp_status st = SIGNER_OCSP_SUCCESSFUL;
    size_t len = request(der, sizeof(der), 1, EVP_sha1(), false, NULL, 0);
    cr_assert_eq(signer_ocsp_parse(g_ca, &req, &st, der, len), -EPERM, "another issuer");
    cr_assert_eq(st, SIGNER_OCSP_UNAUTHORIZED);
    len = request(der, sizeof(der), SIGNER_OCSP_CERTS_MAX + 1, EVP_sha1(), true, NULL, 0);
    cr_assert_eq(signer_ocsp_parse(g_ca, &req, &st, der, len), -E2BIG, "too many");
    cr_assert_eq(st, SIGNER_OCSP_MALFORMED);
    len = request(der, sizeof(der), SIGNER_OCSP_CERTS_MAX, EVP_sha1(), true, NULL, 0);
    cr_assert_eq(signer_ocsp_parse(g_ca, &req, &st, der, len), 0, "the bound itself");
    cr_assert_eq(signer_ocsp_parse(g_ca, &req, &st, der, len - 1), -EBADMSG, "truncated");
    cr_assert_eq(st, SIGNER_OCSP_MALFORMED);
    cr_assert_eq(signer_ocsp_parse(g_ca, &req, &st, der, 0), -EBADMSG);
    memset(der, 0x30, sizeof(der));
    cr_assert_eq(signer_ocsp_parse(g_ca, &req, &st, der, SIGNER_OCSP_REQUEST_MAX + 1), -E2BIG);
    uint8_t big_nonce[SIGNER_OCSP_NONCE_MAX + 1] = {0};
    len = request(der, sizeof(der), 1, EVP_sha1(), true, big_nonce, sizeof(big_nonce));
    cr_assert_eq(signer_ocsp_parse(g_ca, &req, &st, der, len), -EBADMSG, "nonce too long");
    len = request(der, sizeof(der), 1, EVP_sha1(), true, big_nonce, 0);
    cr_assert_eq(signer_ocsp_parse(g_ca, &req, &st, der, len), -EBADMSG, "empty nonce");
    uint8_t err[SIGNER_OCSP_ERROR_LEN];
    cr_assert_eq(signer_ocsp_error(err, SIGNER_OCSP_UNAUTHORIZED), 5);
    static const uint8_t want[] = {0x30, 0x03, 0x0a, 0x01, 0x06};
    cr_assert_eq(memcmp(err, want, sizeof(want)), 0);
}

/* expect_single reads one SingleResponse and checks its status tag. */
static void expect_single(CBS *list, unsigned tag, int reason)
{
    CBS single, id, st;
    unsigned got = 0;
    cr_assert(CBS_get_asn1(list, &single, CBS_ASN1_SEQUENCE));
    cr_assert(CBS_get_asn1(&single, &id, CBS_ASN1_SEQUENCE));
    cr_assert(CBS_get_any_asn1(&single, &st, &got));
    cr_assert_eq(got, tag);
    if (reason >= 0) {
        CBS t, w, en;
        cr_assert(CBS_get_asn1(&st, &t, CBS_ASN1_GENERALIZEDTIME));
        cr_assert_eq(CBS_len(&t), 15);
        cr_assert(CBS_get_asn1(&st, &w, CBS_ASN1_CONTEXT_SPECIFIC | CBS_ASN1_CONSTRUCTED | 0));
        cr_assert(CBS_get_asn1(&w, &en, CBS_ASN1_ENUMERATED));
        cr_assert_eq(CBS_data(&en)[0], reason);
    }
    CBS this_update;
    cr_assert(CBS_get_asn1(&single, &this_update, CBS_ASN1_GENERALIZEDTIME));
}

Test(signer_ocsp, respond_signed_with_statuses_and_nonce)
{
    static uint8_t der[SIGNER_OCSP_REQUEST_MAX];
    static const uint8_t nonce[] = {0x04, 0x02, 0xca, 0xfe};
    size_t len = request(der, sizeof(der), 3, EVP_sha1(), true, nonce, sizeof(nonce));
    struct signer_ocsp_request req;
    enum signer_ocsp_status st = SIGNER_OCSP_MALFORMED;
    cr_assert_eq(signer_ocsp_parse(g_ca, &req, &st, der, len), 0);
    struct signer_ocsp_answer a[3] = {
        {.status = SIGNER_OCSP_GOOD},
        {.status = SIGNER_OCSP_REVOKED, .revoked_at_s = 1764070245, .reason = 1},
        {.status = SIGNER_OCSP_UNKNOWN},
    };
    static uint8_t out[SIGNER_OCSP_RESPONSE_MAX];
    size_t out_len = 0;
    cr_assert_eq(signer_ocsp_respond(g_ca, NULL, out, sizeof(out), &out_len, &req, a, 1764070300,
                                     1764156700),
                 0);
    CBS cbs, resp, status, bytes, rb, oid, octets, basic, tbs, alg, sig;
    CBS_init(&cbs, out, out_len);
    cr_assert(CBS_get_asn1(&cbs, &resp, CBS_ASN1_SEQUENCE));
    cr_assert_eq(CBS_len(&cbs), 0);
    cr_assert(CBS_get_asn1(&resp, &status, CBS_ASN1_ENUMERATED));
    cr_assert_eq(CBS_data(&status)[0], 0);
    cr_assert(CBS_get_asn1(&resp, &bytes, CBS_ASN1_CONTEXT_SPECIFIC | CBS_ASN1_CONSTRUCTED | 0));
    cr_assert(CBS_get_asn1(&bytes, &rb, CBS_ASN1_SEQUENCE));
    cr_assert(CBS_get_asn1(&rb, &oid, CBS_ASN1_OBJECT));
    cr_assert(CBS_get_asn1(&rb, &octets, CBS_ASN1_OCTETSTRING));
    cr_assert(CBS_get_asn1(&octets, &basic, CBS_ASN1_SEQUENCE));
    const uint8_t *tbs_start = CBS_data(&basic);
    cr_assert(CBS_get_asn1(&basic, &tbs, CBS_ASN1_SEQUENCE));
    size_t tbs_len = (size_t)(CBS_data(&basic) - tbs_start);
    cr_assert(CBS_get_asn1(&basic, &alg, CBS_ASN1_SEQUENCE));
    cr_assert(CBS_get_asn1(&basic, &sig, CBS_ASN1_BITSTRING));
    /* The signature verifies with the issuing CA's key over the whole ResponseData. */
    X509 *x = issuing();
    EVP_PKEY *pk = X509_get_pubkey(x);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    cr_assert(EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, pk));
    cr_assert_eq(EVP_DigestVerify(ctx, CBS_data(&sig) + 1, CBS_len(&sig) - 1, tbs_start, tbs_len),
                 1);
    EVP_MD_CTX_free(ctx);
    EVP_PKEY_free(pk);
    X509_free(x);
    /* ResponseData: responderID byKey = the CA's SKI, producedAt, 3 responses, the nonce. */
    CBS rid, key, produced, list, wrap;
    cr_assert(CBS_get_asn1(&tbs, &rid, CBS_ASN1_CONTEXT_SPECIFIC | CBS_ASN1_CONSTRUCTED | 2));
    cr_assert(CBS_get_asn1(&rid, &key, CBS_ASN1_OCTETSTRING));
    cr_assert(CBS_mem_equal(&key, g_ca->ski, g_ca->ski_len));
    cr_assert(CBS_get_asn1(&tbs, &produced, CBS_ASN1_GENERALIZEDTIME));
    cr_assert(CBS_mem_equal(&produced, (const uint8_t *)"20251125113140Z", 15));
    cr_assert(CBS_get_asn1(&tbs, &list, CBS_ASN1_SEQUENCE));
    expect_single(&list, CBS_ASN1_CONTEXT_SPECIFIC | 0, -1);
    expect_single(&list, CBS_ASN1_CONTEXT_SPECIFIC | CBS_ASN1_CONSTRUCTED | 1, 1);
    expect_single(&list, CBS_ASN1_CONTEXT_SPECIFIC | 2, -1);
    cr_assert_eq(CBS_len(&list), 0);
    cr_assert(CBS_get_asn1(&tbs, &wrap, CBS_ASN1_CONTEXT_SPECIFIC | CBS_ASN1_CONSTRUCTED | 1));
    cr_assert(CBS_len(&wrap) > sizeof(nonce));
    cr_assert(memmem(CBS_data(&wrap), CBS_len(&wrap), nonce, sizeof(nonce)) != NULL, "echoed");
}

Test(signer_ocsp, delegated_signer_issue_open_and_mismatch)
{
    struct signer_ocsp_signer *s = NULL;
    cr_assert_eq(signer_ocsp_signer_open(&s, g_ca, cadir), -ENOENT, "none yet");
    int64_t now = clock_real_s();
    int64_t until = 0;
    cr_assert_eq(signer_ocsp_signer_issue(g_ca, cadir, 0, now, &until), -EINVAL);
    cr_assert_eq(signer_ocsp_signer_issue(g_ca, cadir, 7, now, &until), 0);
    cr_assert_eq(until, now + 7 * 86400);
    cr_assert_eq(signer_ocsp_signer_open(&s, g_ca, cadir), 0);
    cr_assert_eq(signer_ocsp_signer_not_after(s), until);
    /* A response signed by it carries its certificate and verifies with its key. */
    static uint8_t der[SIGNER_OCSP_REQUEST_MAX];
    size_t len = request(der, sizeof(der), 1, EVP_sha1(), true, NULL, 0);
    struct signer_ocsp_request req;
    enum signer_ocsp_status st = SIGNER_OCSP_MALFORMED;
    cr_assert_eq(signer_ocsp_parse(g_ca, &req, &st, der, len), 0);
    struct signer_ocsp_answer a = {.status = SIGNER_OCSP_GOOD};
    static uint8_t out[SIGNER_OCSP_RESPONSE_MAX];
    size_t out_len = 0;
    cr_assert_eq(signer_ocsp_respond(g_ca, s, out, sizeof(out), &out_len, &req, &a, now, now + 60),
                 0);
    char crt[300];
    snprintf(crt, sizeof(crt), "%s/ca/ocsp.crt", cadir);
    static uint8_t cert_der[SIGNER_CERT_DER_MAX];
    size_t cert_len = 0;
    cr_assert_eq(signer_pem_read_cert(cert_der, sizeof(cert_der), &cert_len, crt, 0), 0);
    cr_assert(memmem(out, out_len, cert_der, cert_len) != NULL, "the signer's certificate");
    signer_ocsp_signer_free(s);
    /* A new key with the old certificate (a crash between the renames) is refused. */
    char saved[300];
    snprintf(saved, sizeof(saved), "%s/ocsp.crt.saved", tmpdir);
    cr_assert_eq(rename(crt, saved), 0);
    cr_assert_eq(signer_ocsp_signer_issue(g_ca, cadir, 7, now, NULL), 0);
    cr_assert_eq(rename(saved, crt), 0);
    cr_assert_eq(signer_ocsp_signer_open(&s, g_ca, cadir), -EBADMSG);
}
