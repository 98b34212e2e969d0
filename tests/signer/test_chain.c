/* Tests of the chain checker (signer_chain_check) over certificates made here with BoringSSL: a
 * root, an intermediate, an issuing CA and a leaf, each broken in one way at a time; and of the
 * TLS server certificate's check and reissue (signer_tls_check, signer_tls_issue) on a real CA
 * made by signer_ca_init. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/ec_key.h>
#include <openssl/evp.h>
#include <openssl/nid.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "base/base.h"
#include "signer/signer.h"
#include "tests/util/tmpdir.h"

#define NOW 1800000000 /* 2027-01-15 */
#define DAY (24 * 3600)

struct tcert {
    EVP_PKEY *key;
    X509 *x;
    uint8_t der[4096];
    size_t len;
};

static EVP_PKEY *new_key(void)
{
    EC_KEY *ec = EC_KEY_new_by_curve_name(NID_X9_62_prime256v1);
    cr_assert(ec != NULL);
    cr_assert_eq(EC_KEY_generate_key(ec), 1);
    EVP_PKEY *k = EVP_PKEY_new();
    cr_assert_eq(EVP_PKEY_assign_EC_KEY(k, ec), 1);
    return k;
}

static void add_ext(X509 *x, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
    X509_EXTENSION *e = X509V3_EXT_nconf_nid(NULL, &ctx, nid, value);
    cr_assert(e != NULL, "extension %d=%s", nid, value);
    cr_assert_eq(X509_add_ext(x, e, -1), 1);
    X509_EXTENSION_free(e);
}

/* spec of one test certificate */
struct tspec {
    const char *cn;
    struct tcert *issuer; /* NULL: self-signed */
    EVP_PKEY *sign_key;   /* NULL: the issuer's (or its own) key */
    int64_t not_before;
    int64_t not_after;
    const char *bc;        /* basicConstraints, or NULL */
    const char *ku;        /* keyUsage, or NULL */
    EVP_PKEY *subject_key; /* NULL: a new key (owned by the tcert) */
    bool ski;              /* add subjectKeyIdentifier */
};

static void make(struct tcert *c, const struct tspec *s)
{
    c->key = s->subject_key != NULL ? (EVP_PKEY_up_ref(s->subject_key), s->subject_key) : new_key();
    c->x = X509_new();
    X509 *x = c->x;
    cr_assert_eq(X509_set_version(x, X509_VERSION_3), 1);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 42);
    X509_NAME *name = X509_get_subject_name(x);
    cr_assert_eq(
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const uint8_t *)s->cn, -1, -1, 0),
        1);
    cr_assert_eq(
        X509_set_issuer_name(x, s->issuer != NULL ? X509_get_subject_name(s->issuer->x) : name), 1);
    cr_assert(ASN1_TIME_set(X509_getm_notBefore(x), (time_t)s->not_before) != NULL);
    cr_assert(ASN1_TIME_set(X509_getm_notAfter(x), (time_t)s->not_after) != NULL);
    cr_assert_eq(X509_set_pubkey(x, c->key), 1);
    if (s->bc != NULL) {
        add_ext(x, NID_basic_constraints, s->bc);
    }
    if (s->ku != NULL) {
        add_ext(x, NID_key_usage, s->ku);
    }
    if (s->ski) {
        add_ext(x, NID_subject_key_identifier, "hash");
    }
    EVP_PKEY *signer = s->sign_key != NULL ? s->sign_key
                       : s->issuer != NULL ? s->issuer->key
                                           : c->key;
    cr_assert(X509_sign(x, signer, EVP_sha256()) > 0);
    uint8_t *p = c->der;
    int len = i2d_X509(x, NULL);
    cr_assert(len > 0 && (size_t)len <= sizeof(c->der));
    cr_assert_eq(i2d_X509(x, &p), len);
    c->len = (size_t)len;
}

static void tcert_free(struct tcert *c)
{
    X509_free(c->x);
    EVP_PKEY_free(c->key);
    c->x = NULL;
    c->key = NULL;
}

static struct signer_der der_of(const struct tcert *c)
{
    return (struct signer_der){.der = c->der, .der_len = c->len};
}

/* the good hierarchy: root -> inter -> issuing (pathlen 0) -> leaf */
static struct tcert root, inter, issuing, leaf;

#define CA_BC "critical,CA:TRUE"
#define CA_KU "critical,keyCertSign,cRLSign"

static void setup(void)
{
    make(&root, &(struct tspec){"Root", NULL, NULL, NOW - 100 * DAY, NOW + 3000 * DAY, CA_BC, CA_KU,
                                NULL, false});
    make(&inter, &(struct tspec){"Inter", &root, NULL, NOW - 50 * DAY, NOW + 2000 * DAY,
                                 "critical,CA:TRUE,pathlen:1", CA_KU, NULL, false});
    make(&issuing, &(struct tspec){"Issuing", &inter, NULL, NOW - 10 * DAY, NOW + 1000 * DAY,
                                   "critical,CA:TRUE,pathlen:0", CA_KU, NULL, false});
    make(&leaf, &(struct tspec){"leaf.example.com", &issuing, NULL, NOW - DAY, NOW + 300 * DAY,
                                "critical,CA:FALSE", "critical,digitalSignature", NULL, false});
}

static void teardown(void)
{
    tcert_free(&root);
    tcert_free(&inter);
    tcert_free(&issuing);
    tcert_free(&leaf);
}

TestSuite(signer_chain, .init = setup, .fini = teardown);

static int check4(struct signer_chain_result *r, const struct tcert *a, const struct tcert *b,
                  const struct tcert *c, const struct tcert *d, const struct tcert *anchor,
                  bool target_is_ca)
{
    struct signer_der chain[4];
    size_t n = 0;
    const struct tcert *in[4] = {a, b, c, d};
    for (size_t i = 0; i < 4; i++) {
        if (in[i] != NULL) {
            chain[n++] = der_of(in[i]);
        }
    }
    struct signer_der anchors[1] = {der_of(anchor)};
    return signer_chain_check(r, chain, n, anchors, 1, NOW, target_is_ca);
}

Test(signer_chain, good_chain_to_a_root_in_the_chain)
{
    struct signer_chain_result r;
    cr_assert_eq(check4(&r, &leaf, &issuing, &inter, &root, &root, false), 0);
    cr_assert_eq(r.fault, SIGNER_CHAIN_OK);
    /* the root is reached as the trusted root (its key signed Inter): not a step of the path */
    cr_assert_eq(r.num_path, 3);
    cr_assert_eq(r.path[1], 1);
    cr_assert_eq(r.path[2], 2);
    cr_assert_eq(r.anchor, 0);
    cr_assert_eq(r.first_expiry_s, NOW + 300 * DAY, "the leaf expires first");
    cr_assert_str_eq(r.first_expiry_subject, "CN=leaf.example.com");
}

Test(signer_chain, good_chain_to_an_anchor_outside_it_in_any_order)
{
    struct signer_chain_result r;
    cr_assert_eq(check4(&r, &leaf, &inter, &issuing, NULL, &root, false), 0);
    cr_assert_eq(r.num_path, 3);
    cr_assert_eq(r.path[1], 2, "issuing is chain[2]");
    cr_assert_eq(r.path[2], 1);
    cr_assert_eq(r.anchor, 0);
}

Test(signer_chain, issuing_ca_as_target)
{
    struct signer_chain_result r;
    cr_assert_eq(check4(&r, &issuing, &inter, &root, NULL, &root, true), 0);
    cr_assert_eq(r.num_path, 2);
    /* the trusted root itself as the target */
    cr_assert_eq(check4(&r, &root, NULL, NULL, NULL, &root, true), 0);
    cr_assert_eq(r.num_path, 1);
    /* a leaf as a target that must be a CA is refused */
    cr_assert_eq(check4(&r, &leaf, &issuing, &inter, &root, &root, true), -EPERM);
    cr_assert_eq(r.fault, SIGNER_CHAIN_NOT_CA);
    cr_assert_eq(r.index, 0);
    cr_assert_str_eq(r.subject, "CN=leaf.example.com");
}

Test(signer_chain, expired)
{
    struct tcert old;
    make(&old, &(struct tspec){"Old Inter", &root, NULL, NOW - 900 * DAY, NOW - DAY,
                               "critical,CA:TRUE", CA_KU, NULL, false});
    struct tcert iss2;
    make(&iss2,
         &(struct tspec){"Issuing2", &old, NULL, NOW - DAY, NOW + DAY, CA_BC, CA_KU, NULL, false});
    struct signer_chain_result r;
    cr_assert_eq(check4(&r, &iss2, &old, &root, NULL, &root, true), -EPERM);
    cr_assert_eq(r.fault, SIGNER_CHAIN_EXPIRED);
    cr_assert_eq(r.index, 1);
    cr_assert_not(r.at_anchor);
    cr_assert_str_eq(r.subject, "CN=Old Inter");
    cr_assert_eq(r.not_after_s, NOW - DAY);
    char text[512];
    cr_assert_eq(signer_chain_result_format(text, sizeof(text), &r), 0);
    cr_assert(strstr(text, "'CN=Old Inter' expired at 2027-01-14") != NULL, "%s", text);
    tcert_free(&old);
    tcert_free(&iss2);
}

Test(signer_chain, expired_trusted_root)
{
    struct tcert old_root, child;
    make(&old_root, &(struct tspec){"Old Root", NULL, NULL, NOW - 900 * DAY, NOW - 1, CA_BC, CA_KU,
                                    NULL, false});
    make(&child, &(struct tspec){"Child", &old_root, NULL, NOW - DAY, NOW + DAY, CA_BC, CA_KU, NULL,
                                 false});
    struct signer_chain_result r;
    cr_assert_eq(check4(&r, &child, NULL, NULL, NULL, &old_root, true), -EPERM);
    cr_assert_eq(r.fault, SIGNER_CHAIN_EXPIRED);
    cr_assert(r.at_anchor);
    cr_assert_str_eq(r.subject, "CN=Old Root");
    tcert_free(&old_root);
    tcert_free(&child);
}

Test(signer_chain, not_yet_valid)
{
    struct tcert future;
    make(&future, &(struct tspec){"Future Issuing", &inter, NULL, NOW + 10, NOW + 100 * DAY, CA_BC,
                                  CA_KU, NULL, false});
    struct signer_chain_result r;
    cr_assert_eq(check4(&r, &future, &inter, &root, NULL, &root, true), -EPERM);
    cr_assert_eq(r.fault, SIGNER_CHAIN_NOT_YET_VALID);
    cr_assert_eq(r.index, 0);
    cr_assert_str_eq(r.subject, "CN=Future Issuing");
    char text[512];
    cr_assert_eq(signer_chain_result_format(text, sizeof(text), &r), 0);
    cr_assert(strstr(text, "is not valid before") != NULL, "%s", text);
    tcert_free(&future);
}

Test(signer_chain, missing_issuer)
{
    struct signer_chain_result r;
    cr_assert_eq(check4(&r, &leaf, &issuing, NULL, NULL, &root, false), -EPERM);
    cr_assert_eq(r.fault, SIGNER_CHAIN_ISSUER_NOT_FOUND);
    cr_assert_eq(r.index, 1);
    cr_assert_str_eq(r.subject, "CN=Issuing");
    cr_assert_str_eq(r.issuer, "CN=Inter");
    char text[512];
    cr_assert_eq(signer_chain_result_format(text, sizeof(text), &r), 0);
    cr_assert_str_eq(text, "the issuer 'CN=Inter' of 'CN=Issuing' is found neither in the chain "
                           "nor among the trusted roots");
}

Test(signer_chain, untrusted_root)
{
    struct tcert other;
    make(&other, &(struct tspec){"Other Root", NULL, NULL, NOW - DAY, NOW + DAY, CA_BC, CA_KU, NULL,
                                 false});
    struct signer_chain_result r;
    cr_assert_eq(check4(&r, &leaf, &issuing, &inter, &root, &other, false), -EPERM);
    cr_assert_eq(r.fault, SIGNER_CHAIN_UNTRUSTED_ROOT);
    cr_assert_eq(r.index, 3);
    cr_assert_str_eq(r.subject, "CN=Root");
    /* without the root in the chain: its name is not found among the trusted roots */
    cr_assert_eq(check4(&r, &leaf, &issuing, &inter, NULL, &other, false), -EPERM);
    cr_assert_eq(r.fault, SIGNER_CHAIN_ISSUER_NOT_FOUND);
    cr_assert_str_eq(r.issuer, "CN=Root");
    tcert_free(&other);
}

Test(signer_chain, non_ca)
{
    struct tcert notca, iss2;
    make(&notca, &(struct tspec){"Not A CA", &root, NULL, NOW - DAY, NOW + DAY, "critical,CA:FALSE",
                                 CA_KU, NULL, false});
    make(&iss2, &(struct tspec){"Issuing2", &notca, NULL, NOW - DAY, NOW + DAY, CA_BC, CA_KU, NULL,
                                false});
    struct signer_chain_result r;
    cr_assert_eq(check4(&r, &iss2, &notca, &root, NULL, &root, true), -EPERM);
    cr_assert_eq(r.fault, SIGNER_CHAIN_NOT_CA);
    cr_assert_str_eq(r.subject, "CN=Not A CA");
    char text[512];
    cr_assert_eq(signer_chain_result_format(text, sizeof(text), &r), 0);
    cr_assert(strstr(text, "'CN=Not A CA' is not a CA") != NULL, "%s", text);
    tcert_free(&notca);
    tcert_free(&iss2);
    /* no basicConstraints at all is not a CA either */
    struct tcert bare, iss3;
    make(&bare,
         &(struct tspec){"Bare", &root, NULL, NOW - DAY, NOW + DAY, NULL, CA_KU, NULL, false});
    make(&iss3,
         &(struct tspec){"Issuing3", &bare, NULL, NOW - DAY, NOW + DAY, CA_BC, CA_KU, NULL, false});
    cr_assert_eq(check4(&r, &iss3, &bare, &root, NULL, &root, true), -EPERM);
    cr_assert_eq(r.fault, SIGNER_CHAIN_NOT_CA);
    tcert_free(&bare);
    tcert_free(&iss3);
}

Test(signer_chain, no_key_cert_sign)
{
    struct tcert noku, iss2;
    make(&noku, &(struct tspec){"No KeyCertSign", &root, NULL, NOW - DAY, NOW + DAY, CA_BC,
                                "critical,digitalSignature,cRLSign", NULL, false});
    make(&iss2,
         &(struct tspec){"Issuing2", &noku, NULL, NOW - DAY, NOW + DAY, CA_BC, CA_KU, NULL, false});
    struct signer_chain_result r;
    cr_assert_eq(check4(&r, &iss2, &noku, &root, NULL, &root, true), -EPERM);
    cr_assert_eq(r.fault, SIGNER_CHAIN_NO_KEY_CERT_SIGN);
    cr_assert_str_eq(r.subject, "CN=No KeyCertSign");
    tcert_free(&noku);
    tcert_free(&iss2);
    /* a CA that is not a trusted root needs keyUsage at all */
    struct tcert nokux, iss3;
    make(&nokux,
         &(struct tspec){"No KU", &root, NULL, NOW - DAY, NOW + DAY, CA_BC, NULL, NULL, false});
    make(&iss3, &(struct tspec){"Issuing3", &nokux, NULL, NOW - DAY, NOW + DAY, CA_BC, CA_KU, NULL,
                                false});
    cr_assert_eq(check4(&r, &iss3, &nokux, &root, NULL, &root, true), -EPERM);
    cr_assert_eq(r.fault, SIGNER_CHAIN_NO_KEY_CERT_SIGN);
    tcert_free(&nokux);
    tcert_free(&iss3);
}

Test(signer_chain, wrong_key)
{
    /* "Issuing" under Inter's name, but signed by another key */
    EVP_PKEY *other = new_key();
    struct tcert forged;
    make(&forged,
         &(struct tspec){"Forged", &inter, other, NOW - DAY, NOW + DAY, CA_BC, CA_KU, NULL, false});
    struct signer_chain_result r;
    cr_assert_eq(check4(&r, &forged, &inter, &root, NULL, &root, true), -EPERM);
    cr_assert_eq(r.fault, SIGNER_CHAIN_BAD_SIGNATURE);
    cr_assert_eq(r.index, 0);
    cr_assert_str_eq(r.subject, "CN=Forged");
    cr_assert_str_eq(r.issuer, "CN=Inter");
    EVP_PKEY_free(other);
    tcert_free(&forged);
}

Test(signer_chain, pathlen)
{
    /* issuing has pathlen 0: a CA below it (and a leaf under that) is refused at issuing */
    struct tcert sub, leaf2;
    make(&sub,
         &(struct tspec){"Sub", &issuing, NULL, NOW - DAY, NOW + DAY, CA_BC, CA_KU, NULL, false});
    make(&leaf2,
         &(struct tspec){"leaf2", &sub, NULL, NOW - DAY, NOW + DAY, NULL, NULL, NULL, false});
    struct signer_chain_result r;
    struct signer_der chain[5] = {der_of(&leaf2), der_of(&sub), der_of(&issuing), der_of(&inter),
                                  der_of(&root)};
    struct signer_der anchors[1] = {der_of(&root)};
    cr_assert_eq(signer_chain_check(&r, chain, 5, anchors, 1, NOW, false), -EPERM);
    cr_assert_eq(r.fault, SIGNER_CHAIN_PATHLEN);
    cr_assert_str_eq(r.subject, "CN=Issuing");
    tcert_free(&sub);
    tcert_free(&leaf2);
}

Test(signer_chain, malformed_and_limits)
{
    struct signer_chain_result r;
    uint8_t junk[16] = {0x30, 0x03, 0x02, 0x01, 0x01};
    struct signer_der chain[SIGNER_CHAIN_MAX + 1];
    struct signer_der anchors[1] = {der_of(&root)};
    chain[0] = der_of(&leaf);
    chain[1] = (struct signer_der){.der = junk, .der_len = sizeof(junk)};
    cr_assert_eq(signer_chain_check(&r, chain, 2, anchors, 1, NOW, false), -EBADMSG);
    cr_assert_eq(r.fault, SIGNER_CHAIN_MALFORMED);
    cr_assert_eq(r.index, 1);
    /* truncated at every length: never a crash, always malformed */
    for (size_t n = 0; n < leaf.len; n += 7) {
        chain[0] = (struct signer_der){.der = leaf.der, .der_len = n};
        cr_assert_eq(signer_chain_check(&r, chain, 1, anchors, 1, NOW, false), -EBADMSG);
    }
    for (size_t i = 0; i < ARRAY_LEN(chain); i++) {
        chain[i] = der_of(&leaf);
    }
    cr_assert_eq(signer_chain_check(&r, chain, SIGNER_CHAIN_MAX + 1, anchors, 1, NOW, false),
                 -E2BIG);
    cr_assert_eq(signer_chain_check(&r, chain, 0, anchors, 1, NOW, false), -E2BIG);
    /* no anchors: nothing is trusted */
    cr_assert_eq(check4(&r, &leaf, &issuing, &inter, &root, &root, false), 0);
    struct signer_der full[4] = {der_of(&leaf), der_of(&issuing), der_of(&inter), der_of(&root)};
    cr_assert_eq(signer_chain_check(&r, full, 4, NULL, 0, NOW, false), -EPERM);
    cr_assert_eq(r.fault, SIGNER_CHAIN_UNTRUSTED_ROOT);
}

Test(signer_chain, cert_set_parse)
{
    struct signer_cert_set *set = malloc(sizeof(*set));
    char pem[8192];
    size_t n = 0, m = 0;
    cr_assert_eq(signer_pem_encode(pem, sizeof(pem), &n, "CERTIFICATE", leaf.der, leaf.len), 0);
    cr_assert_eq(signer_pem_encode(pem + n, sizeof(pem) - n, &m, "CERTIFICATE", root.der, root.len),
                 0);
    cr_assert_eq(signer_cert_set_parse(set, pem, n + m), 0);
    cr_assert_eq(set->num, 2);
    cr_assert_eq(set->certs[1].der_len, root.len);
    cr_assert_eq(memcmp(set->certs[1].der, root.der, root.len), 0);
    cr_assert(signer_cert_self_signed(&set->certs[1]));
    cr_assert_not(signer_cert_self_signed(&set->certs[0]));
    cr_assert_eq(signer_cert_set_parse(set, "hello\n", 6), -EBADMSG);
    cr_assert_eq(set->num, 0);
    cr_assert_eq(signer_cert_set_parse(set, pem, n - 40), -EBADMSG, "a cut block");
    free(set);
}

/* ---- the TLS server certificate ---- */

static char tmpdir[TMPDIR_PATH_MAX];
static char cadir[160];

static void tls_setup(void)
{
    tmpdir_create(tmpdir, sizeof(tmpdir), "certprov-chain");
    snprintf(cadir, sizeof(cadir), "%s/store", tmpdir);
    cr_assert_eq(signer_ca_init(cadir, HSM_KEY_P256, "cp.example.com"), 0);
}

static void tls_teardown(void)
{
    tmpdir_remove(tmpdir);
}

TestSuite(signer_tls, .init = tls_setup, .fini = tls_teardown);

static enum signer_tls_state tls_state(struct signer_ca *ca, const char *const *names, size_t n,
                                       int64_t now)
{
    enum signer_tls_state st = SIGNER_TLS_OK;
    int64_t na = 0;
    cr_assert_eq(signer_tls_check(&st, &na, ca, cadir, names, n, now), 0);
    return st;
}

Test(signer_tls, init_leaf_is_good_and_names_change_reissues)
{
    struct signer_ca *ca = NULL;
    cr_assert_eq(signer_ca_open(&ca, NULL, cadir), 0);
    int64_t now = clock_real_s();
    const char *one[] = {"cp.example.com"};
    const char *three[] = {"cp.example.com", "lb.example.com", "CP2.example.com"};
    cr_assert_eq(tls_state(ca, one, 1, now), SIGNER_TLS_OK);
    cr_assert_eq(tls_state(ca, three, 3, now), SIGNER_TLS_NAMES);
    cr_assert_eq(signer_tls_issue(ca, cadir, three, 3, now), 0);
    cr_assert_eq(tls_state(ca, three, 3, now), SIGNER_TLS_OK);
    const char *three_cased[] = {"cp2.EXAMPLE.com", "cp.example.com", "lb.example.com"};
    cr_assert_eq(tls_state(ca, three_cased, 3, now), SIGNER_TLS_OK, "order and case ignored");
    cr_assert_eq(tls_state(ca, one, 1, now), SIGNER_TLS_NAMES, "one name less");
    char path[256];
    snprintf(path, sizeof(path), "%s/tls/server.key", cadir);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0600);
    snprintf(path, sizeof(path), "%s/tls/server.key.new", cadir);
    cr_assert_eq(access(path, F_OK), -1, "no temporary key left");
    /* an operator removed tls/ to get a new certificate */
    snprintf(path, sizeof(path), "rm -rf %s/tls", cadir);
    cr_assert_eq(system(path), 0);
    cr_assert_eq(tls_state(ca, one, 1, now), SIGNER_TLS_MISSING);
    cr_assert_eq(signer_tls_issue(ca, cadir, one, 1, now), 0);
    cr_assert_eq(tls_state(ca, one, 1, now), SIGNER_TLS_OK);
    const char *bad[] = {"cp.example.com", "-bad-.example.com"};
    cr_assert_eq(signer_tls_issue(ca, cadir, bad, 2, now), -EINVAL);
    signer_ca_free(ca);
}

Test(signer_tls, expiring_and_other_key_and_missing)
{
    struct signer_ca *ca = NULL;
    cr_assert_eq(signer_ca_open(&ca, NULL, cadir), 0);
    int64_t now = clock_real_s();
    const char *one[] = {"cp.example.com"};
    /* 397 days: good at 366 days from now, expiring at 368 (less than 30 left) */
    cr_assert_eq(tls_state(ca, one, 1, now + 366 * (int64_t)DAY), SIGNER_TLS_OK);
    cr_assert_eq(tls_state(ca, one, 1, now + 368 * (int64_t)DAY), SIGNER_TLS_EXPIRING);
    cr_assert_eq(tls_state(ca, one, 1, now + 400 * (int64_t)DAY), SIGNER_TLS_EXPIRING);
    cr_assert_eq(tls_state(ca, one, 1, now - 3600), SIGNER_TLS_EXPIRING, "not yet valid");
    /* a key that is not the certificate's */
    char path[256], keep[256];
    snprintf(path, sizeof(path), "%s/tls/server.key", cadir);
    snprintf(keep, sizeof(keep), "%s/keep.key", tmpdir);
    cr_assert_eq(rename(path, keep), 0);
    cr_assert_eq(tls_state(ca, one, 1, now), SIGNER_TLS_MISSING);
    struct hsm_key *k = NULL;
    cr_assert_eq(hsm_soft_generate(&k, path, HSM_KEY_P256), 0);
    hsm_key_free(k);
    cr_assert_eq(tls_state(ca, one, 1, now), SIGNER_TLS_KEY);
    cr_assert_eq(signer_tls_issue(ca, cadir, one, 1, now), 0);
    cr_assert_eq(tls_state(ca, one, 1, now), SIGNER_TLS_OK);
    signer_ca_free(ca);
}

Test(signer_tls, leaf_of_another_ca_is_not_issued)
{
    /* a second CA's leaf copied over ours: same names, its own key, another issuer */
    char other[200];
    snprintf(other, sizeof(other), "%s/other", tmpdir);
    cr_assert_eq(signer_ca_init(other, HSM_KEY_P256, "cp.example.com"), 0);
    char from[256], to[256];
    for (int i = 0; i < 2; i++) {
        const char *f = i == 0 ? "tls/server.crt" : "tls/server.key";
        snprintf(from, sizeof(from), "%s/%s", other, f);
        snprintf(to, sizeof(to), "%s/%s", cadir, f);
        cr_assert_eq(rename(from, to), 0);
    }
    struct signer_ca *ca = NULL;
    cr_assert_eq(signer_ca_open(&ca, NULL, cadir), 0);
    const char *one[] = {"cp.example.com"};
    cr_assert_eq(tls_state(ca, one, 1, clock_real_s()), SIGNER_TLS_NOT_ISSUED);
    signer_ca_free(ca);
}

/* ---- the enterprise's CA: request and import, with the hierarchy above as the enterprise ---- */

TestSuite(signer_enterprise, .init = tls_setup, .fini = tls_teardown);

/* pending_key reads the public key of the request in `dir` back through the CSR parser. */
static EVP_PKEY *request_key(const char *pem, size_t len)
{
    uint8_t der[SIGNER_CSR_DER_MAX];
    size_t der_len = 0;
    enum signer_reject why;
    cr_assert_eq(signer_csr_decode(der, sizeof(der), &der_len, &why, (const uint8_t *)pem, len), 0);
    struct signer_csr csr;
    cr_assert_eq(signer_csr_parse(&csr, &why, der, der_len), 0);
    cr_assert_eq(signer_csr_verify(&csr, &why), 0, "the request's self-signature verifies");
    cr_assert_eq(csr.subject_cn_len, 11);
    cr_assert_eq(memcmp(csr.subject_cn, "Acme Issuer", 11), 0);
    const uint8_t *p = csr.spki;
    EVP_PKEY *k = d2i_PUBKEY(NULL, &p, (long)csr.spki_len);
    cr_assert(k != NULL);
    return k;
}

static void set_of(struct signer_cert_set *set, const struct tcert *const *certs, size_t n)
{
    set->num = n;
    for (size_t i = 0; i < n; i++) {
        memcpy(set->der[i], certs[i]->der, certs[i]->len);
        set->certs[i] = (struct signer_der){.der = set->der[i], .der_len = certs[i]->len};
    }
}

Test(signer_enterprise, request_then_import)
{
    setup();                      /* the hierarchy: root -> inter, valid from before the real now */
    int64_t now = clock_real_s(); /* the TLS leaf is issued now: `good` must cover it */
    char pem[8192];
    size_t len = 0;
    char dir[200];
    snprintf(dir, sizeof(dir), "%s/ent", tmpdir);
    cr_assert_eq(signer_ca_request(pem, sizeof(pem), &len, cadir, HSM_KEY_P256, "x", NULL), -EEXIST,
                 "a CA made by ca init is there");
    cr_assert_eq(signer_ca_pending(dir), -ENOENT);
    cr_assert_eq(signer_ca_request(pem, sizeof(pem), &len, dir, HSM_KEY_P256, "", NULL), -EINVAL);
    cr_assert_eq(signer_ca_request(pem, sizeof(pem), &len, dir, HSM_KEY_P256, "bad\n", NULL),
                 -EINVAL);
    cr_assert_eq(signer_ca_request(pem, sizeof(pem), &len, dir, HSM_KEY_P256, "First", "Acme"), 0);
    cr_assert_eq(signer_ca_pending(dir), 0);
    cr_assert_eq(
        signer_ca_request(pem, sizeof(pem), &len, dir, HSM_KEY_P384, "Acme Issuer", "Acme"), 0,
        "a pending request is replaced");
    EVP_PKEY *pending = request_key(pem, len);
    cr_assert_eq(EVP_PKEY_bits(pending), 384);

    struct signer_cert_set *sets = calloc(2, sizeof(*sets));
    const char *names[] = {"cp.example.com", "lb.example.com"};
    char why[1024];
    /* a certificate for another key */
    struct tcert wrong;
    make(&wrong, &(struct tspec){"Acme Issuer", &inter, NULL, NOW - DAY, NOW + 500 * DAY,
                                 "critical,CA:TRUE,pathlen:0", CA_KU, NULL, true});
    const struct tcert *chain[] = {&inter, &root};
    set_of(&sets[1], chain, 2);
    set_of(&sets[0], (const struct tcert *const[]){&wrong}, 1);
    cr_assert_eq(signer_ca_import(why, sizeof(why), dir, &sets[0], &sets[1], names, 2, NOW),
                 -EPERM);
    cr_assert(strstr(why, "'CN=Acme Issuer' is not for the pending key") != NULL, "%s", why);
    /* without an SKI */
    struct tcert noski;
    make(&noski, &(struct tspec){"Acme Issuer", &inter, NULL, NOW - DAY, NOW + 500 * DAY,
                                 "critical,CA:TRUE,pathlen:0", CA_KU, pending, false});
    set_of(&sets[0], (const struct tcert *const[]){&noski}, 1);
    cr_assert_eq(signer_ca_import(why, sizeof(why), dir, &sets[0], &sets[1], names, 2, NOW),
                 -EPERM);
    cr_assert(strstr(why, "has no subjectKeyIdentifier") != NULL, "%s", why);
    /* the right one, but the chain lacks the intermediate */
    struct tcert good;
    make(&good, &(struct tspec){"Acme Issuer", &inter, NULL, now - DAY, now + 500 * DAY,
                                "critical,CA:TRUE,pathlen:0", CA_KU, pending, true});
    set_of(&sets[0], (const struct tcert *const[]){&good}, 1);
    set_of(&sets[1], (const struct tcert *const[]){&root}, 1);
    cr_assert_eq(signer_ca_import(why, sizeof(why), dir, &sets[0], &sets[1], names, 2, now),
                 -EPERM);
    cr_assert(strstr(why, "the issuer 'CN=Inter' of 'CN=Acme Issuer'") != NULL, "%s", why);
    cr_assert_eq(signer_ca_pending(dir), 0, "a refusal changes nothing");
    /* good: the chain in any order, the issuing certificate in it too */
    set_of(&sets[1], (const struct tcert *const[]){&root, &good, &inter}, 3);
    cr_assert_eq(signer_ca_import(why, sizeof(why), dir, &sets[0], &sets[1], names, 2, now), 0,
                 "%s", why);
    cr_assert_eq(signer_ca_pending(dir), -EEXIST);
    cr_assert_eq(signer_ca_import(why, sizeof(why), dir, &sets[0], &sets[1], names, 2, now),
                 -EEXIST);
    /* chain.pem: issuing, inter, root in path order */
    char path[256];
    snprintf(path, sizeof(path), "%s/chain.pem", dir);
    cr_assert_eq(signer_cert_set_read(&sets[1], path), 0);
    cr_assert_eq(sets[1].num, 3);
    cr_assert_eq(sets[1].certs[0].der_len, good.len);
    cr_assert_eq(memcmp(sets[1].certs[1].der, inter.der, inter.len), 0);
    cr_assert_eq(memcmp(sets[1].certs[2].der, root.der, root.len), 0);
    struct signer_ca *ca = NULL;
    cr_assert_eq(signer_ca_open(&ca, NULL, dir), 0);
    enum signer_tls_state st = SIGNER_TLS_DAMAGED;
    cr_assert_eq(signer_tls_check(&st, NULL, ca, dir, names, 2, now), 0);
    cr_assert_eq(st, SIGNER_TLS_OK);
    snprintf(path, sizeof(path), "%s/tls/server.crt", dir);
    cr_assert_eq(signer_cert_set_read(&sets[0], path), 0);
    cr_assert_eq(sets[0].num, 3, "leaf, issuing, intermediate: no root");
    snprintf(path, sizeof(path), "%s/ca/root.key", dir);
    cr_assert_eq(access(path, F_OK), -1, "no root key in this mode");
    signer_ca_free(ca);
    free(sets);
    EVP_PKEY_free(pending);
    tcert_free(&wrong);
    tcert_free(&noski);
    tcert_free(&good);
    teardown();
}
