/* Tests of the CA (init, open) and of batch issuance: every certificate is parsed back and
 * verified with BoringSSL's X509 code against the chain the CA wrote. */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/bytestring.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "base/base.h"
#include "signer/internal.h" /* ca->not_after_s, to test the clamp to the CA */
#include "signer/signer.h"
#include "tests/util/tmpdir.h"

#define FQDN "certprov.example.com"
#define N_ITEMS 5

static char tmpdir[TMPDIR_PATH_MAX];
static char cadir[128];

static void setup(void)
{
    tmpdir_create(tmpdir, sizeof(tmpdir), "certprov-cert");
    snprintf(cadir, sizeof(cadir), "%s/store", tmpdir);
}

static void teardown(void)
{
    tmpdir_remove(tmpdir);
}

static const struct signer_profile profile = {
    .default_hours = 4320, .min_hours = 8, .max_hours = 8760};

/* a client key pair standing in for a parsed CSR */
struct client {
    struct hsm_key *key;
    uint8_t spki[HSM_SPKI_MAX];
    struct signer_csr csr;
};

static void client_make(struct client *c, enum hsm_key_type type, int n)
{
    char path[200];
    snprintf(path, sizeof(path), "%s/client-%d.der", tmpdir, n);
    cr_assert_eq(hsm_soft_generate(&c->key, path, type), 0);
    memset(&c->csr, 0, sizeof(c->csr));
    cr_assert_eq(hsm_key_public_der(c->key, c->spki, sizeof(c->spki), &c->csr.spki_len), 0);
    c->csr.spki = c->spki;
    c->csr.key_type = type == HSM_KEY_P256      ? SIGNER_KEY_P256
                      : type == HSM_KEY_P384    ? SIGNER_KEY_P384
                      : type == HSM_KEY_ED25519 ? SIGNER_KEY_ED25519
                                                : SIGNER_KEY_RSA;
}

static X509 *read_cert(const char *rel, int index)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", cadir, rel);
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "%s", path);
    X509 *x = NULL;
    for (int i = 0; i <= index; i++) {
        X509_free(x);
        x = PEM_read_X509(f, NULL, NULL, NULL);
        cr_assert_not_null(x, "%s #%d", path, i);
    }
    fclose(f);
    return x;
}

static void check_mode(const char *rel, mode_t want)
{
    char path[256];
    struct stat st;
    snprintf(path, sizeof(path), "%s/%s", cadir, rel);
    cr_assert_eq(stat(path, &st), 0, "%s", path);
    cr_assert_eq(st.st_mode & 07777, want, "%s mode %o", rel, (unsigned)(st.st_mode & 07777));
}

static void check_ext_critical(X509 *x, int nid, int want)
{
    int pos = X509_get_ext_by_NID(x, nid, -1);
    cr_assert_geq(pos, 0, "extension %d missing", nid);
    cr_assert_eq(X509_EXTENSION_get_critical(X509_get_ext(x, pos)), want, "nid %d", nid);
    cr_assert_lt(X509_get_ext_by_NID(x, nid, pos), 0, "extension %d twice", nid);
}

static void check_time(const ASN1_TIME *got, int64_t want)
{
    ASN1_TIME *t = ASN1_TIME_set(NULL, (time_t)want);
    int days = -1, secs = -1;
    cr_assert(ASN1_TIME_diff(&days, &secs, t, got));
    cr_assert_eq(days, 0);
    cr_assert_eq(secs, 0);
    ASN1_TIME_free(t);
}

static void check_ski(X509 *x)
{
    const ASN1_OCTET_STRING *ski = X509_get0_subject_key_id(x);
    cr_assert_not_null(ski);
    const ASN1_BIT_STRING *key = X509_get0_pubkey_bitstr(x);
    uint8_t want[SHA_DIGEST_LENGTH];
    SHA1(ASN1_STRING_get0_data(key), (size_t)ASN1_STRING_length(key), want);
    cr_assert_eq(ASN1_STRING_length(ski), SHA_DIGEST_LENGTH);
    cr_assert_eq(memcmp(ASN1_STRING_get0_data(ski), want, sizeof(want)), 0);
    check_ext_critical(x, NID_subject_key_identifier, 0);
}

/* verify_chain runs X509_verify_cert on `leaf` with root trusted and issuing untrusted. */
static void verify_chain(X509 *leaf, X509 *root, X509 *issuing, int purpose, int64_t at)
{
    X509_STORE *store = X509_STORE_new();
    cr_assert(X509_STORE_add_cert(store, root));
    STACK_OF(X509) *untrusted = sk_X509_new_null();
    cr_assert(sk_X509_push(untrusted, issuing));
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    cr_assert(X509_STORE_CTX_init(ctx, store, leaf, untrusted));
    cr_assert(X509_STORE_CTX_set_purpose(ctx, purpose));
    /* X509_V_FLAG_X509_STRICT is 0 in BoringSSL, which is always strict; kept for OpenSSL. */
    X509_STORE_CTX_set_flags(ctx, X509_V_FLAG_X509_STRICT);
    if (at != 0) {
        X509_STORE_CTX_set_time(ctx, 0, (time_t)at);
    }
    int ok = X509_verify_cert(ctx);
    cr_assert_eq(ok, 1, "verify: %s", X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)));
    X509_STORE_CTX_free(ctx);
    sk_X509_free(untrusted);
    X509_STORE_free(store);
}

static void check_leaf(const struct signer_issue *it, const struct client *c, X509 *root,
                       X509 *issuing, uint32_t hours)
{
    const uint8_t *p = it->der;
    X509 *x = d2i_X509(NULL, &p, (long)it->der_len);
    cr_assert_not_null(x);
    cr_assert_eq(p, it->der + it->der_len, "trailing bytes");
    cr_assert_eq(X509_get_version(x), X509_VERSION_3);

    /* serial: positive, at most 16 bytes, the item's */
    BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
    cr_assert_not_null(bn);
    cr_assert(!BN_is_negative(bn));
    cr_assert(!BN_is_zero(bn));
    cr_assert_leq(BN_num_bytes(bn), SIGNER_SERIAL_LEN);
    uint8_t serial[SIGNER_SERIAL_LEN];
    cr_assert(BN_bn2bin_padded(serial, sizeof(serial), bn));
    cr_assert_eq(memcmp(serial, it->serial, sizeof(serial)), 0);
    BN_free(bn);

    char cn[256];
    cr_assert_gt(
        X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, sizeof(cn)), 0);
    cr_assert_str_eq(cn, it->uri + 4);
    cr_assert_eq(X509_NAME_cmp(X509_get_issuer_name(x), X509_get_subject_name(issuing)), 0);

    /* SAN: exactly URI:sip:... */
    int crit = -1;
    GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, &crit, NULL);
    cr_assert_not_null(gens);
    cr_assert_eq(crit, 0);
    cr_assert_eq(sk_GENERAL_NAME_num(gens), 1);
    const GENERAL_NAME *gn = sk_GENERAL_NAME_value(gens, 0);
    cr_assert_eq(gn->type, GEN_URI);
    cr_assert_eq((size_t)ASN1_STRING_length(gn->d.uniformResourceIdentifier), strlen(it->uri));
    cr_assert_eq(
        memcmp(ASN1_STRING_get0_data(gn->d.uniformResourceIdentifier), it->uri, strlen(it->uri)),
        0);
    GENERAL_NAMES_free(gens);

    uint32_t flags = X509_get_extension_flags(x);
    cr_assert(flags & EXFLAG_XKUSAGE);
    cr_assert_eq(X509_get_extended_key_usage(x), XKU_SSL_CLIENT);
    check_ext_critical(x, NID_ext_key_usage, 0);
    uint32_t want_ku =
        KU_DIGITAL_SIGNATURE | (c->csr.key_type == SIGNER_KEY_RSA ? KU_KEY_ENCIPHERMENT : 0);
    cr_assert(flags & EXFLAG_KUSAGE);
    cr_assert_eq(X509_get_key_usage(x), want_ku);
    check_ext_critical(x, NID_key_usage, 1);
    cr_assert(flags & EXFLAG_BCONS);
    cr_assert(!(flags & EXFLAG_CA));
    cr_assert_eq(X509_check_ca(x), 0);
    check_ext_critical(x, NID_basic_constraints, 1);
    check_ski(x);
    const ASN1_OCTET_STRING *aki = X509_get0_authority_key_id(x);
    cr_assert_not_null(aki);
    cr_assert_eq(ASN1_OCTET_STRING_cmp(aki, X509_get0_subject_key_id(issuing)), 0);
    check_ext_critical(x, NID_authority_key_identifier, 0);
    cr_assert_eq(X509_get_ext_count(x), 6);

    /* SPKI is the CSR's, byte for byte */
    uint8_t *spki = NULL;
    int spki_len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), &spki);
    cr_assert_eq((size_t)spki_len, c->csr.spki_len);
    cr_assert_eq(memcmp(spki, c->csr.spki, c->csr.spki_len), 0);
    OPENSSL_free(spki);

    cr_assert_eq(it->not_before_s, it->now_s - SIGNER_BACKDATE_S);
    cr_assert_eq(it->not_after_s, it->now_s + (int64_t)hours * 3600);
    check_time(X509_get0_notBefore(x), it->not_before_s);
    check_time(X509_get0_notAfter(x), it->not_after_s);

    cr_assert_eq(X509_get_signature_nid(x), X509_get_signature_nid(issuing));
    verify_chain(x, root, issuing, X509_PURPOSE_SSL_CLIENT, 0);
    X509_free(x);
}

static void check_ca_certs(X509 *root, X509 *issuing)
{
    cr_assert_eq(X509_check_ca(root), 1);
    cr_assert_eq(X509_check_ca(issuing), 1);
    cr_assert_eq(X509_get_pathlen(issuing), 0);
    cr_assert_eq(X509_get_key_usage(root), KU_KEY_CERT_SIGN | KU_CRL_SIGN);
    cr_assert_eq(X509_get_key_usage(issuing), KU_KEY_CERT_SIGN | KU_CRL_SIGN);
    check_ext_critical(root, NID_basic_constraints, 1);
    check_ext_critical(issuing, NID_key_usage, 1);
    check_ski(root);
    check_ski(issuing);
    cr_assert_eq(
        ASN1_OCTET_STRING_cmp(X509_get0_authority_key_id(issuing), X509_get0_subject_key_id(root)),
        0);
    char cn[64];
    cr_assert_gt(
        X509_NAME_get_text_by_NID(X509_get_subject_name(root), NID_commonName, cn, sizeof(cn)), 0);
    cr_assert_str_eq(cn, "certprov Root CA");
    cr_assert_gt(
        X509_NAME_get_text_by_NID(X509_get_subject_name(issuing), NID_commonName, cn, sizeof(cn)),
        0);
    cr_assert_str_eq(cn, "certprov Issuing CA");
    EVP_PKEY *pub = X509_get_pubkey(root);
    cr_assert_eq(X509_verify(root, pub), 1);
    cr_assert_eq(X509_verify(issuing, pub), 1);
    EVP_PKEY_free(pub);
}

static void check_server(X509 *root, X509 *issuing)
{
    X509 *srv = read_cert("tls/server.crt", 0);
    X509 *second = read_cert("tls/server.crt", 1);
    cr_assert_eq(X509_cmp(second, issuing), 0);
    X509_free(second);
    cr_assert_eq(X509_get_extended_key_usage(srv), XKU_SSL_SERVER);
    cr_assert_eq(X509_check_host(srv, FQDN, strlen(FQDN), 0, NULL), 1);
    cr_assert_eq(X509_check_ca(srv), 0);
    check_ski(srv);
    verify_chain(srv, root, issuing, X509_PURPOSE_SSL_SERVER, 0);
    X509_free(srv);
    struct hsm_key *k = NULL;
    char path[256];
    snprintf(path, sizeof(path), "%s/tls/server.key", cadir);
    cr_assert_eq(hsm_soft_open(&k, path), 0);
    cr_assert_eq(hsm_key_get_type(k), HSM_KEY_P256);
    hsm_key_free(k);
}

static void run_ca(enum hsm_key_type type)
{
    cr_assert_eq(signer_ca_init(cadir, type, FQDN), 0);
    check_mode("ca/root.key", 0600);
    check_mode("ca/issuing.key", 0600);
    check_mode("tls/server.key", 0600);
    check_mode("chain.pem", 0644);
    X509 *root = read_cert("ca/root.crt", 0);
    X509 *issuing = read_cert("ca/issuing.crt", 0);
    X509 *chain0 = read_cert("chain.pem", 0);
    X509 *chain1 = read_cert("chain.pem", 1);
    cr_assert_eq(X509_cmp(chain0, issuing), 0);
    cr_assert_eq(X509_cmp(chain1, root), 0);
    X509_free(chain0);
    X509_free(chain1);
    check_ca_certs(root, issuing);
    check_server(root, issuing);

    struct signer_ca *ca = NULL;
    cr_assert_eq(signer_ca_open(&ca, NULL, cadir), 0);
    cr_assert_eq(hsm_key_get_type(signer_ca_get_key(ca)), type);
    size_t chain_len = 0;
    const char *chain = signer_ca_get_chain_pem(ca, &chain_len);
    cr_assert_eq(strlen(chain), chain_len);
    cr_assert_not_null(strstr(chain, "-----END CERTIFICATE-----\n-----BEGIN CERTIFICATE-----"));

    static const enum hsm_key_type client_types[N_ITEMS] = {
        HSM_KEY_P256, HSM_KEY_P384, HSM_KEY_RSA2048, HSM_KEY_ED25519, HSM_KEY_RSA3072};
    static const uint32_t hours[N_ITEMS] = {0, 1, 9000, 24, 8760};
    struct client clients[N_ITEMS];
    static struct signer_issue items[N_ITEMS];
    char uris[N_ITEMS][64];
    int64_t now = clock_real_s();
    for (int i = 0; i < N_ITEMS; i++) {
        client_make(&clients[i], client_types[i], i);
        snprintf(uris[i], sizeof(uris[i]), "sip:user%d@example.com", i);
        memset(&items[i], 0, sizeof(items[i]));
        items[i].csr = &clients[i].csr;
        items[i].uri = uris[i];
        items[i].hours = hours[i];
        items[i].now_s = now;
    }
    cr_assert_eq(signer_issue_batch(ca, &profile, items, N_ITEMS), 0);
    for (int i = 0; i < N_ITEMS; i++) {
        cr_assert_eq(items[i].rc, 0);
        check_leaf(&items[i], &clients[i], root, issuing, signer_profile_clamp(&profile, hours[i]));
        for (int j = 0; j < i; j++) {
            cr_assert_neq(memcmp(items[i].serial, items[j].serial, SIGNER_SERIAL_LEN), 0);
        }
        hsm_key_free(clients[i].key);
    }
    signer_ca_free(ca);
    X509_free(root);
    X509_free(issuing);
}

Test(signer_ca, p256, .init = setup, .fini = teardown)
{
    run_ca(HSM_KEY_P256);
}
Test(signer_ca, p384, .init = setup, .fini = teardown)
{
    run_ca(HSM_KEY_P384);
}
Test(signer_ca, rsa2048, .init = setup, .fini = teardown)
{
    run_ca(HSM_KEY_RSA2048);
}
Test(signer_ca, rsa3072, .init = setup, .fini = teardown)
{
    run_ca(HSM_KEY_RSA3072);
}
Test(signer_ca, ed25519, .init = setup, .fini = teardown)
{
    run_ca(HSM_KEY_ED25519);
}

static size_t read_rel(uint8_t *buf, size_t cap, const char *rel)
{
    char path[256];
    size_t len = 0;
    snprintf(path, sizeof(path), "%s/%s", cadir, rel);
    cr_assert_eq(base_file_read(buf, &len, cap, path), 0, "%s", path);
    return len;
}

Test(signer_ca, init_twice_is_eexist_and_touches_nothing, .init = setup, .fini = teardown)
{
    static uint8_t a[16384], b[16384];
    cr_assert_eq(signer_ca_init(cadir, HSM_KEY_P256, FQDN), 0);
    size_t a_len = read_rel(a, sizeof(a), "chain.pem");
    cr_assert_eq(signer_ca_init(cadir, HSM_KEY_P256, FQDN), -EEXIST);
    cr_assert_eq(signer_ca_init(cadir, HSM_KEY_ED25519, "other.example.com"), -EEXIST);
    size_t b_len = read_rel(b, sizeof(b), "chain.pem");
    cr_assert_eq(a_len, b_len);
    cr_assert_eq(memcmp(a, b, a_len), 0);
    /* a single leftover file counts as an existing CA */
    char path[256];
    snprintf(path, sizeof(path), "%s/chain.pem", cadir);
    cr_assert_eq(unlink(path), 0);
    cr_assert_eq(signer_ca_init(cadir, HSM_KEY_P256, FQDN), -EEXIST);
}

Test(signer_ca, init_refuses_bad_fqdn_and_type, .init = setup, .fini = teardown)
{
    char long_name[300];
    memset(long_name, 'a', sizeof(long_name));
    for (int i = 60; i < 299; i += 61) {
        long_name[i] = '.';
    }
    long_name[254] = '\0'; /* 254 characters */
    char long_label[80];
    memset(long_label, 'b', sizeof(long_label));
    memcpy(long_label + 64, ".com", 5); /* a 64-character label */
    const char *bad[] = {"",        ".",        "a..b",         "-a.com",         "a-.com",
                         "a.com.",  "a_b.com",  "a b.com",      "caf\xc3\xa9.fr", "a/b",
                         long_name, long_label, "*.example.com"};
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        cr_assert_eq(signer_ca_init(cadir, HSM_KEY_P256, bad[i]), -EINVAL, "%s", bad[i]);
    }
    cr_assert_eq(signer_ca_init(cadir, HSM_KEY_NONE, FQDN), -EINVAL);
    cr_assert_eq(access(cadir, F_OK), -1, "nothing created");
    long_name[253] = '\0';
    cr_assert_eq(signer_ca_init(cadir, HSM_KEY_ED25519, long_name), 0, "253 characters");
}

Test(signer_ca, open_empty_dir_is_enoent, .init = setup, .fini = teardown)
{
    struct signer_ca *ca = NULL;
    cr_assert_eq(signer_ca_open(&ca, NULL, tmpdir), -ENOENT);
    cr_assert_eq(signer_ca_open(&ca, NULL, cadir), -ENOENT);
    cr_assert_null(ca);
    signer_ca_free(NULL);
}

Test(signer_ca, open_swapped_key_is_ebadmsg, .init = setup, .fini = teardown)
{
    cr_assert_eq(signer_ca_init(cadir, HSM_KEY_P256, FQDN), 0);
    char path[256];
    snprintf(path, sizeof(path), "%s/ca/issuing.key", cadir);
    cr_assert_eq(unlink(path), 0);
    struct hsm_key *other = NULL;
    cr_assert_eq(hsm_soft_generate(&other, path, HSM_KEY_P256), 0);
    hsm_key_free(other);
    struct signer_ca *ca = NULL;
    cr_assert_eq(signer_ca_open(&ca, NULL, cadir), -EBADMSG);
    cr_assert_null(ca);
    /* the root key is a real CA key, but not the issuing one */
    char root[256];
    snprintf(root, sizeof(root), "%s/ca/root.key", cadir);
    cr_assert_eq(unlink(path), 0);
    cr_assert_eq(link(root, path), 0);
    cr_assert_eq(signer_ca_open(&ca, NULL, cadir), -EBADMSG);
}

Test(signer_ca, open_damaged_files, .init = setup, .fini = teardown)
{
    static uint8_t buf[16384];
    char path[256];
    cr_assert_eq(signer_ca_init(cadir, HSM_KEY_ED25519, FQDN), 0);
    struct signer_ca *ca = NULL;

    snprintf(path, sizeof(path), "%s/chain.pem", cadir);
    cr_assert_eq(base_file_write_atomic(path, "garbage\n", 8, 0644, false), 0);
    cr_assert_eq(signer_ca_open(&ca, NULL, cadir), -EBADMSG);
    cr_assert_eq(unlink(path), 0);
    cr_assert_eq(signer_ca_open(&ca, NULL, cadir), -ENOENT);

    size_t len = read_rel(buf, sizeof(buf), "ca/issuing.crt");
    snprintf(path, sizeof(path), "%s/ca/issuing.crt", cadir);
    buf[len / 2] = buf[len / 2] == 'A' ? 'B' : 'A';
    cr_assert_eq(base_file_write_atomic(path, buf, len, 0644, false), 0);
    cr_assert_eq(signer_ca_open(&ca, NULL, cadir), -EBADMSG);
    cr_assert_eq(base_file_write_atomic(path, buf, 10, 0644, false), 0);
    cr_assert_eq(signer_ca_open(&ca, NULL, cadir), -EBADMSG);
    cr_assert_null(ca);
}

/* expect_fault opens the CA in cadir and checks the code, the file, the reason and the
 * sentence signer_ca_fault_format makes of them (each @ in `sentence` stands for cadir). */
static void expect_fault(int rc, enum signer_file file, bool no_ca, const char *sentence)
{
    struct signer_ca *ca = NULL;
    struct signer_ca_fault f = {.file = SIGNER_FILE_MAX_, .why = "unset", .no_ca = !no_ca};
    cr_assert_eq(signer_ca_open(&ca, &f, cadir), rc, "%s", sentence);
    cr_assert_null(ca);
    cr_assert_eq(f.file, file, "%s: file %d", sentence, f.file);
    cr_assert_eq(f.no_ca, no_ca, "%s", sentence);
    char text[512];
    char want[512];
    cr_assert_eq(signer_ca_fault_format(text, sizeof(text), rc, &f, cadir), 0);
    size_t n = 0;
    for (const char *p = sentence; *p != '\0' && n + sizeof(cadir) < sizeof(want); p++) {
        if (*p == '@') {
            n += (size_t)snprintf(want + n, sizeof(want) - n, "%s", cadir);
        } else {
            want[n++] = *p;
        }
    }
    want[n] = '\0';
    cr_assert_str_eq(text, want);
}

static void path_of(char *out, size_t cap, const char *rel)
{
    snprintf(out, cap, "%s/%s", cadir, rel);
}

/* Hardening item 16: a damaged CA names the file that failed and why; "no CA" (where
 * `certprovctl ca init` is the advice) only when none of the CA's files is there. */
Test(signer_ca, open_names_the_file_and_why, .init = setup, .fini = teardown)
{
    char path[256];
    char other[256];
    expect_fault(-ENOENT, SIGNER_FILE_ISSUING_CRT, true, "@/ca/issuing.crt is missing");
    cr_assert_eq(signer_ca_init(cadir, HSM_KEY_P256, FQDN), 0);

    path_of(path, sizeof(path), "ca/issuing.key");
    path_of(other, sizeof(other), "ca/issuing.key.saved");
    cr_assert_eq(rename(path, other), 0);
    expect_fault(-ENOENT, SIGNER_FILE_ISSUING_KEY, false, "@/ca/issuing.key is missing");
    cr_assert_eq(rename(other, path), 0);

    cr_assert_eq(chmod(path, 0644), 0);
    expect_fault(-EPERM, SIGNER_FILE_ISSUING_KEY, false,
                 "@/ca/issuing.key is readable or writable by group or others; run: chmod 600 "
                 "@/ca/issuing.key");
    cr_assert_eq(chmod(path, 0600), 0);

    cr_assert_eq(rename(path, other), 0);
    cr_assert_eq(symlink(other, path), 0);
    expect_fault(-EBADMSG, SIGNER_FILE_ISSUING_KEY, false,
                 "@/ca/issuing.key is a symbolic link (a key must be a regular file)");
    cr_assert_eq(unlink(path), 0);
    path_of(other, sizeof(other), "ca/root.key");
    cr_assert_eq(link(other, path), 0);
    expect_fault(-EBADMSG, SIGNER_FILE_ISSUING_KEY, false,
                 "@/ca/issuing.key is not the key of ca/issuing.crt");
    cr_assert_eq(unlink(path), 0);
    cr_assert_eq(base_file_write_atomic(path, "junk", 4, 0600, false), 0);
    expect_fault(-EBADMSG, SIGNER_FILE_ISSUING_KEY, false,
                 "@/ca/issuing.key is damaged (not a private key this build can use)");
    cr_assert_eq(unlink(path), 0);
    path_of(other, sizeof(other), "ca/issuing.key.saved");
    cr_assert_eq(rename(other, path), 0);

    path_of(path, sizeof(path), "chain.pem");
    path_of(other, sizeof(other), "chain.pem.saved");
    cr_assert_eq(rename(path, other), 0);
    expect_fault(-ENOENT, SIGNER_FILE_CHAIN, false, "@/chain.pem is missing");
    cr_assert_eq(base_file_write_atomic(path, "garbage\n", 8, 0644, false), 0);
    expect_fault(-EBADMSG, SIGNER_FILE_CHAIN, false,
                 "@/chain.pem is damaged (not PEM certificates)");
    cr_assert_eq(rename(other, path), 0);

    path_of(path, sizeof(path), "ca/issuing.crt");
    path_of(other, sizeof(other), "ca/issuing.crt.saved");
    cr_assert_eq(rename(path, other), 0);
    cr_assert_eq(base_file_write_atomic(path, "garbage\n", 8, 0644, false), 0);
    expect_fault(-EBADMSG, SIGNER_FILE_ISSUING_CRT, false,
                 "@/ca/issuing.crt is damaged (not a PEM certificate)");
    cr_assert_eq(rename(other, path), 0);
    if (geteuid() != 0) { /* root reads any file */
        cr_assert_eq(chmod(path, 0), 0);
        expect_fault(-EACCES, SIGNER_FILE_ISSUING_CRT, false,
                     "@/ca/issuing.crt cannot be read: Permission denied");
        cr_assert_eq(chmod(path, 0644), 0);
    }

    /* A lone leftover file is a CA that exists, not an empty store. */
    static const char *const all[] = {"ca/root.key", "ca/issuing.key", "tls/server.key",
                                      "ca/root.crt", "ca/issuing.crt", "tls/server.crt"};
    for (size_t i = 0; i < ARRAY_LEN(all); i++) {
        path_of(path, sizeof(path), all[i]);
        cr_assert_eq(unlink(path), 0);
    }
    expect_fault(-ENOENT, SIGNER_FILE_ISSUING_CRT, false, "@/ca/issuing.crt is missing");
    path_of(path, sizeof(path), "chain.pem");
    cr_assert_eq(unlink(path), 0);
    expect_fault(-ENOENT, SIGNER_FILE_ISSUING_CRT, true, "@/ca/issuing.crt is missing");
    struct signer_ca *ca = NULL;
    cr_assert_eq(signer_ca_open(&ca, NULL, cadir), -ENOENT, "the fault is optional");
}

Test(signer_issue, reissue_bad_uri_bad_key_and_2049, .init = setup, .fini = teardown)
{
    cr_assert_eq(signer_ca_init(cadir, HSM_KEY_P256, FQDN), 0);
    struct signer_ca *ca = NULL;
    cr_assert_eq(signer_ca_open(&ca, NULL, cadir), 0);
    struct client c;
    client_make(&c, HSM_KEY_P256, 0);
    static struct signer_issue items[4];
    struct signer_csr bad_csr = c.csr;
    bad_csr.spki_len--;
    const char *uris[4] = {"SIP:alice@example.com", "alice@example.com", "sip:a b@example.com",
                           "sip:bob@example.com"};
    for (int i = 0; i < 4; i++) {
        items[i] = (struct signer_issue){
            .csr = i == 3 ? &bad_csr : &c.csr, .uri = uris[i], .now_s = 2524607999 /* 2049 */};
    }
    /* the issuing CA is valid for 10 years: an item in 2049 is refused... */
    cr_assert_eq(signer_issue_batch(ca, &profile, items, 1), -EIO);
    cr_assert_eq(items[0].rc, -EINVAL);
    /* ...unless the CA outlives it */
    int64_t ca_not_after = ca->not_after_s;
    cr_assert_gt(ca_not_after, clock_real_s() + 9 * 365 * 86400);
    ca->not_after_s = 4102444800; /* 2100 */
    cr_assert_eq(signer_issue_batch(ca, &profile, items, 4), -EIO);
    cr_assert_eq(items[0].rc, 0);
    cr_assert_eq(items[1].rc, -EINVAL);
    cr_assert_eq(items[2].rc, -EINVAL);
    cr_assert_eq(items[3].rc, -EBADMSG);

    /* notBefore in 2049 is UTCTime, notAfter in 2050 GeneralizedTime (RFC 5280 §4.1.2.5) */
    const uint8_t *p = items[0].der;
    X509 *x = d2i_X509(NULL, &p, (long)items[0].der_len);
    cr_assert_not_null(x);
    cr_assert_eq(ASN1_STRING_type(X509_get0_notBefore(x)), V_ASN1_UTCTIME);
    cr_assert_eq(ASN1_STRING_type(X509_get0_notAfter(x)), V_ASN1_GENERALIZEDTIME);
    check_time(X509_get0_notAfter(x), items[0].not_after_s);
    char cn[64];
    cr_assert_gt(
        X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, sizeof(cn)), 0);
    cr_assert_str_eq(cn, "alice@example.com");
    X509 *root = read_cert("ca/root.crt", 0);
    X509 *issuing = read_cert("ca/issuing.crt", 0);
    /* the issuing CA expires before 2049: check the signature only */
    EVP_PKEY *pub = X509_get_pubkey(issuing);
    cr_assert_eq(X509_verify(x, pub), 1);
    EVP_PKEY_free(pub);
    X509_free(x);

    /* issuing again draws a new serial */
    uint8_t first[SIGNER_SERIAL_LEN];
    memcpy(first, items[0].serial, sizeof(first));
    cr_assert_eq(signer_issue_batch(ca, &profile, items, 1), 0);
    cr_assert_neq(memcmp(first, items[0].serial, sizeof(first)), 0);
    cr_assert_eq(signer_issue_batch(ca, &profile, items, 0), 0);

    /* a leaf never outlives the issuing CA */
    ca->not_after_s = ca_not_after;
    items[0].now_s = ca_not_after - 100 * 3600;
    items[0].hours = 200;
    cr_assert_eq(signer_issue_batch(ca, &profile, items, 1), 0);
    cr_assert_eq(items[0].not_after_s, ca_not_after);
    p = items[0].der;
    x = d2i_X509(NULL, &p, (long)items[0].der_len);
    cr_assert_not_null(x);
    check_time(X509_get0_notAfter(x), ca_not_after);
    X509 *iss_again = read_cert("ca/issuing.crt", 0);
    check_time(X509_get0_notAfter(iss_again), ca_not_after);
    X509_free(iss_again);
    verify_chain(x, root, issuing, X509_PURPOSE_SSL_CLIENT, ca_not_after - 3600);
    X509_free(x);

    X509_free(root);
    X509_free(issuing);
    hsm_key_free(c.key);
    signer_ca_free(ca);
}

Test(signer_issue, batch_over_max_asserts, .signal = SIGABRT, .init = setup, .fini = teardown)
{
    cr_assert_eq(signer_ca_init(cadir, HSM_KEY_P256, FQDN), 0);
    struct signer_ca *ca = NULL;
    cr_assert_eq(signer_ca_open(&ca, NULL, cadir), 0);
    static struct signer_issue items[HSM_BATCH_MAX + 1];
    teardown(); /* .fini does not run after the abort */
    (void)signer_issue_batch(ca, &profile, items, HSM_BATCH_MAX + 1);
}

Test(signer_profile, clamp)
{
    cr_assert_eq(signer_profile_clamp(&profile, 0), 4320);
    cr_assert_eq(signer_profile_clamp(&profile, 1), 8);
    cr_assert_eq(signer_profile_clamp(&profile, 7), 8);
    cr_assert_eq(signer_profile_clamp(&profile, 8), 8);
    cr_assert_eq(signer_profile_clamp(&profile, 100), 100);
    cr_assert_eq(signer_profile_clamp(&profile, 8760), 8760);
    cr_assert_eq(signer_profile_clamp(&profile, 8761), 8760);
    cr_assert_eq(signer_profile_clamp(&profile, UINT32_MAX), 8760);
    const struct signer_profile odd = {.default_hours = 1, .min_hours = 24, .max_hours = 48};
    cr_assert_eq(signer_profile_clamp(&odd, 0), 24);
    const struct signer_profile big = {.default_hours = 99, .min_hours = 1, .max_hours = 48};
    cr_assert_eq(signer_profile_clamp(&big, 0), 48);
}

Test(signer_profile, clamp_asserts_on_inverted_bounds, .signal = SIGABRT)
{
    const struct signer_profile bad = {.default_hours = 10, .min_hours = 48, .max_hours = 24};
    (void)signer_profile_clamp(&bad, 0);
}

Test(signer_serial, format_and_parse_round_trip)
{
    char text[2 * SIGNER_SERIAL_LEN + 1];
    uint8_t s[SIGNER_SERIAL_LEN] = {0};
    signer_serial_format(text, s);
    cr_assert_str_eq(text, "0");
    s[15] = 0x0a;
    signer_serial_format(text, s);
    cr_assert_str_eq(text, "A");
    s[14] = 0x01;
    signer_serial_format(text, s);
    cr_assert_str_eq(text, "10A");
    for (size_t i = 0; i < SIGNER_SERIAL_LEN; i++) {
        s[i] = (uint8_t)(0x7f - i * 7);
    }
    signer_serial_format(text, s);
    cr_assert_str_eq(text, "7F78716A635C554E474039322B241D16");
    uint8_t back[SIGNER_SERIAL_LEN];
    cr_assert_eq(signer_serial_parse(back, text), 0);
    cr_assert_eq(memcmp(back, s, sizeof(s)), 0);
    cr_assert_eq(signer_serial_parse(back, "7f78716a635c554e474039322b241d16"), 0);
    cr_assert_eq(memcmp(back, s, sizeof(s)), 0);
    cr_assert_eq(signer_serial_parse(back, "7F:78:71:6A:63:5C:55:4E:47:40:39:32:2B:24:1D:16"), 0);
    cr_assert_eq(memcmp(back, s, sizeof(s)), 0);
    cr_assert_eq(signer_serial_parse(back, "00007F78716A635C554E474039322B241D16"), 0);
    cr_assert_eq(memcmp(back, s, sizeof(s)), 0);
    /* the full 16 bytes, top bit set */
    cr_assert_eq(signer_serial_parse(back, "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF"), 0);
    signer_serial_format(text, back);
    cr_assert_str_eq(text, "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF");
    /* short ones are right-aligned */
    cr_assert_eq(signer_serial_parse(back, "0:0a:BC"), 0);
    signer_serial_format(text, back);
    cr_assert_str_eq(text, "ABC");
    cr_assert_eq(signer_serial_parse(back, "0"), 0);
    signer_serial_format(text, back);
    cr_assert_str_eq(text, "0");
    /* random serials round-trip */
    for (int i = 0; i < 100; i++) {
        uint8_t r[SIGNER_SERIAL_LEN];
        cr_assert(RAND_bytes(r, sizeof(r)));
        r[0] = (uint8_t)(i < 50 ? 0 : r[0]);
        signer_serial_format(text, r);
        cr_assert_eq(signer_serial_parse(back, text), 0);
        cr_assert_eq(memcmp(back, r, sizeof(r)), 0);
    }
}

Test(signer_serial, parse_refuses_bad_input)
{
    const char *bad[] = {"",
                         ":",
                         "AB:",
                         ":AB",
                         "A::B",
                         "0x1F",
                         "12G4",
                         " 12",
                         "12 ",
                         "-1",
                         "1FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF", /* 33 significant digits */
                         "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF"};
    uint8_t out[SIGNER_SERIAL_LEN];
    memset(out, 0x5a, sizeof(out));
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        cr_assert_eq(signer_serial_parse(out, bad[i]), -EINVAL, "%s", bad[i]);
    }
    char many_zeros[200];
    memset(many_zeros, '0', sizeof(many_zeros));
    many_zeros[199] = '\0';
    cr_assert_eq(signer_serial_parse(out, many_zeros), -EINVAL, "over the text limit");
    for (size_t i = 0; i < sizeof(out); i++) {
        cr_assert_eq(out[i], 0x5a, "out untouched");
    }
}
