/* Tests of revocation in signer/: the CRL (built, signed through the key backend, parsed back and
 * verified with BoringSSL's X509_CRL code), the serial of a presented certificate, and the CRL
 * and OCSP URLs of issued certificates. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bytestring.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "base/base.h"
#include "signer/internal.h"
#include "signer/signer.h"
#include "tests/util/tmpdir.h"

static char tmpdir[TMPDIR_PATH_MAX];
static char cadir[128];
static struct signer_ca *g_ca;

static void setup_type(enum hsm_key_type type)
{
    tmpdir_create(tmpdir, sizeof(tmpdir), "certprov-crl");
    snprintf(cadir, sizeof(cadir), "%s/store", tmpdir);
    cr_assert_eq(signer_ca_init(cadir, type, "certprov.example.com"), 0);
    cr_assert_eq(signer_ca_open(&g_ca, NULL, cadir), 0);
}

static void setup(void)
{
    setup_type(HSM_KEY_P256);
}

static void teardown(void)
{
    signer_ca_free(g_ca);
    g_ca = NULL;
    tmpdir_remove(tmpdir);
}

TestSuite(signer_crl, .init = setup, .fini = teardown);

static X509 *issuing_cert(void)
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

/* This BoringSSL has no time_posix: the distance from the epoch. */
static int time_posix(const ASN1_TIME *t, int64_t *out)
{
    ASN1_TIME *epoch = ASN1_TIME_set(NULL, 0);
    int days = 0;
    int secs = 0;
    int ok = epoch != NULL && ASN1_TIME_diff(&days, &secs, epoch, t) == 1;
    ASN1_TIME_free(epoch);
    *out = (int64_t)days * 86400 + secs;
    return ok;
}

static X509_CRL *build(const struct signer_crl_entry *e, size_t n, uint64_t number, int64_t t)
{
    uint8_t *der = NULL;
    size_t len = 0;
    cr_assert_eq(signer_crl_build(g_ca, &der, &len, e, n, number, t, t + 86400), 0);
    const uint8_t *p = der;
    X509_CRL *crl = d2i_X509_CRL(NULL, &p, (long)len);
    cr_assert_not_null(crl);
    cr_assert_eq(p, der + len, "no trailing bytes");
    signer_crl_free(der);
    return crl;
}

static void check_signed_by_issuing(X509_CRL *crl)
{
    X509 *issuing = issuing_cert();
    EVP_PKEY *pk = X509_get_pubkey(issuing);
    cr_assert_eq(X509_CRL_verify(crl, pk), 1, "the CRL verifies with the issuing CA's key");
    cr_assert_eq(X509_NAME_cmp(X509_CRL_get_issuer(crl), X509_get_subject_name(issuing)), 0);
    /* AKI = the issuing CA's SKI. */
    AUTHORITY_KEYID *aki = X509_CRL_get_ext_d2i(crl, NID_authority_key_identifier, NULL, NULL);
    cr_assert_not_null(aki);
    const ASN1_OCTET_STRING *ski = X509_get0_subject_key_id(issuing);
    cr_assert_not_null(ski);
    cr_assert_eq(ASN1_OCTET_STRING_cmp(aki->keyid, ski), 0);
    AUTHORITY_KEYID_free(aki);
    EVP_PKEY_free(pk);
    X509_free(issuing);
}

static long crl_number(X509_CRL *crl)
{
    ASN1_INTEGER *n = X509_CRL_get_ext_d2i(crl, NID_crl_number, NULL, NULL);
    cr_assert_not_null(n);
    long v = ASN1_INTEGER_get(n);
    ASN1_INTEGER_free(n);
    return v;
}

Test(signer_crl, entries_reasons_number_and_times)
{
    struct signer_crl_entry e[3] = {
        {.serial = {0x00, 0x11}, .revoked_at_s = 1764070245, .reason = STORE_REASON_UNSPECIFIED},
        {.serial = {0x7f, [15] = 0x01},
         .revoked_at_s = 1764070300,
         .reason = STORE_REASON_KEY_COMPROMISE},
        {.serial = {[15] = 0x80},
         .revoked_at_s = 2600000000 /* 2052: GeneralizedTime */,
         .reason = STORE_REASON_CERTIFICATE_HOLD},
    };
    int64_t t = 1764070400;
    X509_CRL *crl = build(e, 3, 1764070400, t);
    check_signed_by_issuing(crl);
    cr_assert_eq(X509_CRL_get_version(crl), 1, "v2");
    cr_assert_eq(crl_number(crl), 1764070400);
    int64_t got = 0;
    cr_assert_eq(time_posix(X509_CRL_get0_lastUpdate(crl), &got), 1);
    cr_assert_eq(got, t);
    cr_assert_eq(time_posix(X509_CRL_get0_nextUpdate(crl), &got), 1);
    cr_assert_eq(got, t + 86400);
    STACK_OF(X509_REVOKED) *revs = X509_CRL_get_REVOKED(crl);
    cr_assert_eq(sk_X509_REVOKED_num(revs), 3);
    static const long want_serial_len[3] = {15, 16, 2}; /* minimal DER: 0x80 needs a 0x00 */
    static const int want_reason[3] = {-1, 1, 6};
    for (size_t i = 0; i < 3; i++) {
        X509_REVOKED *r = sk_X509_REVOKED_value(revs, i);
        const ASN1_INTEGER *sn = X509_REVOKED_get0_serialNumber(r);
        int enc_len = i2c_ASN1_INTEGER((ASN1_INTEGER *)(uintptr_t)sn, NULL);
        cr_assert_eq(enc_len, want_serial_len[i], "entry %zu", i);
        cr_assert_eq(time_posix(X509_REVOKED_get0_revocationDate(r), &got), 1);
        cr_assert_eq(got, e[i].revoked_at_s);
        int crit = 0;
        ASN1_ENUMERATED *reason = X509_REVOKED_get_ext_d2i(r, NID_crl_reason, &crit, NULL);
        if (want_reason[i] < 0) {
            cr_assert_null(reason, "unspecified: no reasonCode (RFC 5280 §5.3.1)");
        } else {
            cr_assert_not_null(reason);
            cr_assert_eq(ASN1_ENUMERATED_get(reason), want_reason[i]);
            cr_assert_eq(crit, 0);
            ASN1_ENUMERATED_free(reason);
        }
    }
    X509_CRL_free(crl);
}

Test(signer_crl, empty_has_no_revoked_list)
{
    X509_CRL *crl = build(NULL, 0, 7, 1764070400);
    check_signed_by_issuing(crl);
    cr_assert_eq(sk_X509_REVOKED_num(X509_CRL_get_REVOKED(crl)), 0);
    cr_assert_eq(crl_number(crl), 7);
    X509_CRL_free(crl);
}

Test(signer_crl, many_entries)
{
    size_t n = 20000;
    struct signer_crl_entry *e = calloc(n, sizeof(*e));
    cr_assert_not_null(e);
    for (size_t i = 0; i < n; i++) {
        e[i].serial[0] = 0x40;
        e[i].serial[14] = (uint8_t)(i >> 8);
        e[i].serial[15] = (uint8_t)i;
        e[i].revoked_at_s = 1764070245 + (int64_t)i;
        e[i].reason = (uint8_t)(i % 2 ? STORE_REASON_SUPERSEDED : STORE_REASON_KEY_COMPROMISE);
    }
    X509_CRL *crl = build(e, n, 42, 1764170245);
    check_signed_by_issuing(crl);
    cr_assert_eq((size_t)sk_X509_REVOKED_num(X509_CRL_get_REVOKED(crl)), n);
    X509_CRL_free(crl);
    free(e);
}

Test(signer_crl, ed25519_ca)
{
    teardown(); /* the suite's P-256 CA */
    setup_type(HSM_KEY_ED25519);
    struct signer_crl_entry e = {.serial = {1}, .revoked_at_s = 1764070245, .reason = 4};
    X509_CRL *crl = build(&e, 1, 1, 1764070400);
    check_signed_by_issuing(crl);
    X509_CRL_free(crl);
}

/* issue_one issues a certificate for a fresh P-256 key into *it. */
static void issue_one(struct signer_issue *it)
{
    static int n;
    char path[200];
    snprintf(path, sizeof(path), "%s/client-%d.der", tmpdir, n++);
    struct hsm_key *k = NULL;
    cr_assert_eq(hsm_soft_generate(&k, path, HSM_KEY_P256), 0);
    static uint8_t spki[HSM_SPKI_MAX];
    static struct signer_csr csr;
    memset(&csr, 0, sizeof(csr));
    cr_assert_eq(hsm_key_public_der(k, spki, sizeof(spki), &csr.spki_len), 0);
    csr.spki = spki;
    csr.key_type = SIGNER_KEY_P256;
    hsm_key_free(k);
    *it =
        (struct signer_issue){.csr = &csr, .uri = "sip:alice@example.com", .now_s = clock_real_s()};
    struct signer_profile profile = {.default_hours = 24, .min_hours = 1, .max_hours = 48};
    cr_assert_eq(signer_issue_batch(g_ca, &profile, it, 1), 0);
}

static X509 *parse(const struct signer_issue *it)
{
    const uint8_t *p = it->der;
    X509 *x = d2i_X509(NULL, &p, (long)it->der_len);
    cr_assert_not_null(x);
    return x;
}

Test(signer_crl, issued_certificates_carry_the_urls)
{
    static struct signer_issue it;
    issue_one(&it);
    X509 *x = parse(&it);
    cr_assert_null(X509_get_ext_d2i(x, NID_crl_distribution_points, NULL, NULL), "none by default");
    cr_assert_null(X509_get_ext_d2i(x, NID_info_access, NULL, NULL));
    X509_free(x);

    cr_assert_eq(signer_ca_set_urls(g_ca, "http://certprov.example.com/CertProv/crl",
                                    "http://certprov.example.com/CertProv/ocsp"),
                 0);
    issue_one(&it);
    x = parse(&it);
    STACK_OF(DIST_POINT) *dps = X509_get_ext_d2i(x, NID_crl_distribution_points, NULL, NULL);
    cr_assert_not_null(dps);
    cr_assert_eq(sk_DIST_POINT_num(dps), 1);
    DIST_POINT *dp = sk_DIST_POINT_value(dps, 0);
    cr_assert_eq(dp->distpoint->type, 0, "fullName");
    GENERAL_NAME *gn = sk_GENERAL_NAME_value(dp->distpoint->name.fullname, 0);
    cr_assert_eq(gn->type, GEN_URI);
    cr_assert_str_eq((const char *)ASN1_STRING_get0_data(gn->d.uniformResourceIdentifier),
                     "http://certprov.example.com/CertProv/crl");
    sk_DIST_POINT_pop_free(dps, DIST_POINT_free);
    AUTHORITY_INFO_ACCESS *aia = X509_get_ext_d2i(x, NID_info_access, NULL, NULL);
    cr_assert_not_null(aia);
    ACCESS_DESCRIPTION *ad = sk_ACCESS_DESCRIPTION_value(aia, 0);
    cr_assert_eq(OBJ_obj2nid(ad->method), NID_ad_OCSP);
    cr_assert_str_eq((const char *)ASN1_STRING_get0_data(ad->location->d.uniformResourceIdentifier),
                     "http://certprov.example.com/CertProv/ocsp");
    AUTHORITY_INFO_ACCESS_free(aia);
    X509_free(x);

    cr_assert_eq(signer_ca_set_urls(g_ca, "http://c/crl", NULL), 0);
    issue_one(&it);
    x = parse(&it);
    cr_assert_null(X509_get_ext_d2i(x, NID_info_access, NULL, NULL), "no OCSP URL: no AIA");
    X509_free(x);
}

Test(signer_crl, bad_urls_refused)
{
    cr_assert_eq(signer_ca_set_urls(g_ca, "ftp://x/crl", NULL), -EINVAL);
    cr_assert_eq(signer_ca_set_urls(g_ca, "http://x/a b", NULL), -EINVAL);
    cr_assert_eq(signer_ca_set_urls(g_ca, NULL, "http://x/\x7f"), -EINVAL);
    char longurl[SIGNER_URL_MAX + 2];
    memset(longurl, 'a', sizeof(longurl) - 1);
    memcpy(longurl, "http://", 7);
    longurl[sizeof(longurl) - 1] = '\0';
    cr_assert_eq(signer_ca_set_urls(g_ca, longurl, NULL), -EINVAL);
    cr_assert_eq(signer_ca_set_urls(g_ca, "", ""), 0);
    cr_assert_eq(signer_ca_set_urls(g_ca, NULL, NULL), 0);
}

Test(signer_crl, cert_serial_of_issued_and_bad_input)
{
    static struct signer_issue it;
    issue_one(&it);
    uint8_t serial[SIGNER_SERIAL_LEN];
    cr_assert_eq(signer_cert_serial(serial, it.der, it.der_len), 0);
    cr_assert_eq(memcmp(serial, it.serial, sizeof(serial)), 0);
    cr_assert_eq(signer_cert_serial(serial, it.der, it.der_len - 1), -EBADMSG, "truncated");
    cr_assert_eq(signer_cert_serial(serial, it.der, 0), -EBADMSG);
    static const uint8_t junk[] = {0x30, 0x03, 0x02, 0x01, 0x05};
    cr_assert_eq(signer_cert_serial(serial, junk, sizeof(junk)), -EBADMSG, "no TBS");
    /* Certificate { TBS { INTEGER } } with a negative, a 17-byte and a short serial. */
    static const uint8_t neg[] = {0x30, 0x05, 0x30, 0x03, 0x02, 0x01, 0x85};
    cr_assert_eq(signer_cert_serial(serial, neg, sizeof(neg)), -EBADMSG);
    uint8_t big[4 + 2 + 17] = {0x30, 21, 0x30, 19, 0x02, 17, 0x01};
    cr_assert_eq(signer_cert_serial(serial, big, sizeof(big)), -EBADMSG);
    static const uint8_t small[] = {0x30, 0x07, 0x30, 0x05, 0xa0, 0x00, 0x02, 0x01, 0x2a};
    cr_assert_eq(signer_cert_serial(serial, small, sizeof(small)), 0);
    static const uint8_t want[SIGNER_SERIAL_LEN] = {[15] = 0x2a};
    cr_assert_eq(memcmp(serial, want, sizeof(want)), 0);
}
