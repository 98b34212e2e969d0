/* ca.c: creation (root, issuing and TLS server certificates) and loading of the CA directory.
 * Runs at start-up or from certprovctl: it may allocate. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/bytestring.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/mem.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "base/base.h"
#include "signer/internal.h"

#define CA_PATH_MAX 4096
#define CA_FQDN_MAX 253
#define CA_LABEL_MAX 63
#define DAY_S (24 * 3600)
#define ROOT_DAYS (20 * 365 + 5)    /* 20 years */
#define ISSUING_DAYS (10 * 365 + 3) /* 10 years */
#define SERVER_DAYS 397             /* CA/Browser Forum limit for TLS server certificates */
#define CA_PEM_MAX 8192             /* one certificate as PEM */

static const char *const ca_files[SIGNER_FILE_MAX_] = {
    [SIGNER_FILE_ROOT_KEY] = "ca/root.key",
    [SIGNER_FILE_ISSUING_KEY] = "ca/issuing.key",
    [SIGNER_FILE_SERVER_KEY] = "tls/server.key",
    [SIGNER_FILE_ROOT_CRT] = "ca/root.crt",
    [SIGNER_FILE_ISSUING_CRT] = "ca/issuing.crt",
    [SIGNER_FILE_SERVER_CRT] = "tls/server.crt",
    [SIGNER_FILE_CHAIN] = "chain.pem",
    [SIGNER_FILE_ISSUING_CSR] = "ca/issuing.csr",
    [SIGNER_FILE_PIN_KEY] = "pin.key",
};

int signer_file_path(char *out, size_t cap, const char *dir, enum signer_file f)
{
    ASSERT(out != NULL);
    ASSERT(dir != NULL);
    ASSERT((unsigned)f < SIGNER_FILE_MAX_);
    int n = snprintf(out, cap, "%s/%s", dir, ca_files[f]);
    if (n < 0 || (size_t)n >= cap) {
        return -ENAMETOOLONG;
    }
    return 0;
}

static int ca_path(char out[CA_PATH_MAX], const char *dir, const char *rel)
{
    int n = snprintf(out, CA_PATH_MAX, "%s/%s", dir, rel);
    return n < 0 || n >= CA_PATH_MAX ? -ENAMETOOLONG : 0;
}

/* fqdn_ok accepts a DNS host name (RFC 1123 §2.1): dot-separated labels of 1..63 letters,
 * digits and hyphens, not starting or ending with a hyphen, at most 253 characters. */
static bool fqdn_ok(const char *fqdn)
{
    size_t len = strnlen(fqdn, CA_FQDN_MAX + 1);
    if (len == 0 || len > CA_FQDN_MAX) {
        return false;
    }
    size_t label = 0;
    for (size_t i = 0; i <= len; i++) {
        char c = fqdn[i];
        if (c == '.' || c == '\0') {
            if (label == 0 || fqdn[i - 1] == '-') {
                return false;
            }
            label = 0;
            continue;
        }
        bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if ((!alnum && c != '-') || (c == '-' && label == 0) || ++label > CA_LABEL_MAX) {
            return false;
        }
    }
    return true;
}

bool signer_dns_name_ok(const char *name)
{
    ASSERT(name != NULL);
    return fqdn_ok(name);
}

static int mkdir_ok(const char *path)
{
    if (mkdir(path, 0700) == -1 && errno != EEXIST) {
        return -errno;
    }
    return 0;
}

/* one certificate being made by ca_init */
struct ca_made {
    struct hsm_key *key;
    uint8_t spki[HSM_SPKI_MAX];
    size_t spki_len;
    uint8_t ski[CERT_KEY_ID_LEN];
    uint8_t name[CERT_NAME_DER_MAX]; /* subject Name DER */
    size_t name_len;
    uint8_t der[SIGNER_CERT_DER_MAX];
    size_t der_len;
    char pem[CA_PEM_MAX];
    size_t pem_len;
};

/* make_cert builds, signs with `signer` and PEM-encodes the certificate of `spec` into `m`
 * (whose key, spki and name are already set). */
static int make_cert(struct ca_made *m, struct hsm_key *signer, struct cert_spec *spec)
{
    uint8_t serial[SIGNER_SERIAL_LEN];
    cert_serial_random(serial);
    spec->serial = serial;
    spec->sig_type = hsm_key_get_type(signer);
    spec->spki = m->spki;
    spec->spki_len = m->spki_len;
    size_t tbs_len = 0;
    int rc = cert_tbs_build(m->der, &tbs_len, spec);
    if (rc != 0) {
        return rc;
    }
    struct hsm_sign_item item;
    cert_sign_item_init(&item, m->der, tbs_len);
    rc = hsm_key_sign_batch(signer, &item, 1);
    if (rc != 0) {
        return rc;
    }
    rc = cert_assemble(m->der, &m->der_len, tbs_len, spec->sig_type, item.sig_len);
    if (rc != 0) {
        return rc;
    }
    return cert_pem_encode(m->pem, sizeof(m->pem), &m->pem_len, m->der, m->der_len);
}

/* new_key generates the key at rel and fills m's public key, SKI and subject name. */
static int new_key(struct ca_made *m, bool *created, const char *dir, enum signer_file f,
                   enum hsm_key_type type, const char *cn, const char *o)
{
    char path[CA_PATH_MAX];
    int rc = ca_path(path, dir, ca_files[f]);
    if (rc != 0) {
        return rc;
    }
    if (m->key == NULL) { /* else a key given by the caller (a PKCS#11 token's) */
        rc = hsm_soft_generate(&m->key, path, type);
        if (rc != 0) {
            return rc;
        }
        created[f] = true;
    }
    rc = hsm_key_public_der(m->key, m->spki, sizeof(m->spki), &m->spki_len);
    if (rc != 0) {
        return rc;
    }
    rc = cert_key_id(m->ski, m->spki, m->spki_len);
    if (rc != 0) {
        return rc;
    }
    return cert_name_build(m->name, sizeof(m->name), &m->name_len, cn, strlen(cn), o,
                           o == NULL ? 0 : strlen(o));
}

static int write_pem(bool *created, const char *dir, enum signer_file f, const char *a,
                     size_t a_len, const char *b, size_t b_len)
{
    char path[CA_PATH_MAX];
    char buf[2 * CA_PEM_MAX];
    ASSERT(a_len + b_len <= sizeof(buf));
    memcpy(buf, a, a_len);
    memcpy(buf + a_len, b, b_len);
    int rc = ca_path(path, dir, ca_files[f]);
    if (rc != 0) {
        return rc;
    }
    rc = base_file_write_atomic(path, buf, a_len + b_len, 0644, true);
    if (rc != 0) {
        return rc;
    }
    created[f] = true;
    return 0;
}

/* make_root makes the root CA's key pair and self-signed certificate. */
static int make_root(struct ca_made *root, bool *created, const char *dir, enum hsm_key_type type,
                     const char *fqdn, int64_t now)
{
    int rc = new_key(root, created, dir, SIGNER_FILE_ROOT_KEY, type, "certprov Root CA", fqdn);
    if (rc != 0) {
        return rc;
    }
    struct cert_spec spec = {
        .kind = CERT_KIND_ROOT,
        .issuer = root->name,
        .issuer_len = root->name_len,
        .subject_cn = "certprov Root CA",
        .subject_cn_len = 16,
        .subject_o = fqdn,
        .subject_o_len = strlen(fqdn),
        .not_before_s = now - SIGNER_BACKDATE_S,
        .not_after_s = now + (int64_t)ROOT_DAYS * DAY_S,
    };
    return make_cert(root, root->key, &spec);
}

/* make_issuing makes the issuing CA's key pair and its certificate, signed by `root`. */
static int make_issuing(struct ca_made *iss, struct ca_made *root, bool *created, const char *dir,
                        enum hsm_key_type type, const char *fqdn, int64_t now)
{
    int rc = new_key(iss, created, dir, SIGNER_FILE_ISSUING_KEY, type, "certprov Issuing CA", fqdn);
    if (rc != 0) {
        return rc;
    }
    struct cert_spec spec = {
        .kind = CERT_KIND_ISSUING,
        .issuer = root->name,
        .issuer_len = root->name_len,
        .subject_cn = "certprov Issuing CA",
        .subject_cn_len = 19,
        .subject_o = fqdn,
        .subject_o_len = strlen(fqdn),
        .not_before_s = now - SIGNER_BACKDATE_S,
        .not_after_s = now + (int64_t)ISSUING_DAYS * DAY_S,
        .aki = root->ski,
        .aki_len = CERT_KEY_ID_LEN,
    };
    return make_cert(iss, root->key, &spec);
}

/* make_server makes the TLS server's P-256 key pair and its certificate, signed by `iss`. */
static int make_server(struct ca_made *srv, struct ca_made *iss, bool *created, const char *dir,
                       const char *fqdn, int64_t now)
{
    int rc = new_key(srv, created, dir, SIGNER_FILE_SERVER_KEY, HSM_KEY_P256, fqdn, NULL);
    if (rc != 0) {
        return rc;
    }
    struct cert_spec spec = {
        .kind = CERT_KIND_SERVER,
        .issuer = iss->name,
        .issuer_len = iss->name_len,
        .subject_cn = fqdn,
        .subject_cn_len = strlen(fqdn),
        .not_before_s = now - SIGNER_BACKDATE_S,
        .not_after_s = now + (int64_t)SERVER_DAYS * DAY_S,
        .aki = iss->ski,
        .aki_len = CERT_KEY_ID_LEN,
        .san = fqdn,
        .san_len = strlen(fqdn),
    };
    return make_cert(srv, iss->key, &spec);
}

/* write_certs writes the certificate files of root, issuing and server CA; chain.pem last:
 * ca_open needs it, so a CA without it was never complete. */
static int write_certs(bool *created, const char *dir, const struct ca_made *root,
                       const struct ca_made *iss, const struct ca_made *srv)
{
    int rc = write_pem(created, dir, SIGNER_FILE_ROOT_CRT, root->pem, root->pem_len, "", 0);
    if (rc != 0) {
        return rc;
    }
    rc = write_pem(created, dir, SIGNER_FILE_ISSUING_CRT, iss->pem, iss->pem_len, "", 0);
    if (rc != 0) {
        return rc;
    }
    rc = write_pem(created, dir, SIGNER_FILE_SERVER_CRT, srv->pem, srv->pem_len, iss->pem,
                   iss->pem_len);
    if (rc != 0) {
        return rc;
    }
    return write_pem(created, dir, SIGNER_FILE_CHAIN, iss->pem, iss->pem_len, root->pem,
                     root->pem_len);
}

/* init_all makes the three key pairs and certificates and writes the certificate files. */
static int init_all(struct ca_made *m, bool *created, const char *dir, enum hsm_key_type type,
                    const char *fqdn, int64_t now)
{
    struct ca_made *root = &m[0], *iss = &m[1], *srv = &m[2];
    int rc = make_root(root, created, dir, type, fqdn, now);
    if (rc != 0) {
        return rc;
    }
    rc = make_issuing(iss, root, created, dir, type, fqdn, now);
    if (rc != 0) {
        return rc;
    }
    rc = make_server(srv, iss, created, dir, fqdn, now);
    if (rc != 0) {
        return rc;
    }
    return write_certs(created, dir, root, iss, srv);
}

/* ca_absent returns 0 when none of the CA's files exists under `dir`, -EEXIST when one does (then
 * ca_init touches nothing), or another negative errno. */
static int ca_absent(const char *dir)
{
    char path[CA_PATH_MAX];
    for (size_t f = 0; f < SIGNER_FILE_CA_MAX_; f++) {
        int rc = ca_path(path, dir, ca_files[f]);
        if (rc != 0) {
            return rc;
        }
        if (access(path, F_OK) == 0) {
            return -EEXIST;
        }
        if (errno != ENOENT) {
            return -errno;
        }
    }
    return 0;
}

/* ca_dirs_make makes `dir` and its ca/ and tls/ (0700; existing ones are fine). */
static int ca_dirs_make(const char *dir)
{
    static const char *const subdirs[] = {"ca", "tls"};
    char path[CA_PATH_MAX];
    int rc = mkdir_ok(dir);
    if (rc != 0) {
        return rc;
    }
    for (size_t i = 0; i < ARRAY_LEN(subdirs); i++) {
        rc = ca_path(path, dir, subdirs[i]);
        if (rc != 0) {
            return rc;
        }
        rc = mkdir_ok(path);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

/* ca_rollback removes the files a failed ca_init created, so that it can simply be run again. */
static void ca_rollback(const bool *created, const char *dir)
{
    char path[CA_PATH_MAX];
    for (size_t f = 0; f < SIGNER_FILE_CA_MAX_; f++) {
        if (created[f] && ca_path(path, dir, ca_files[f]) == 0) {
            (void)unlink(path);
        }
    }
}

/* ca_init is signer_ca_init, with the issuing CA's key given (`issuing`, borrowed) or made. */
static int ca_create(const char *dir, enum hsm_key_type type, const char *fqdn,
                     struct hsm_key *issuing)
{
    ASSERT(dir != NULL);
    ASSERT(fqdn != NULL);
    if (!fqdn_ok(fqdn) || type <= HSM_KEY_NONE || type > HSM_KEY_ED25519) {
        return -EINVAL;
    }
    int rc = ca_absent(dir);
    if (rc != 0) {
        return rc;
    }
    bool created[SIGNER_FILE_CA_MAX_] = {false};
    struct ca_made *m = NULL;
    rc = ca_dirs_make(dir);
    if (rc != 0) {
        goto out;
    }
    m = calloc(3, sizeof(*m));
    if (m == NULL) {
        rc = -ENOMEM;
        goto out;
    }
    m[1].key = issuing;
    rc = init_all(m, created, dir, type, fqdn, clock_real_s());
    if (issuing != NULL) {
        m[1].key = NULL; /* the caller's */
    }
out:
    if (rc != 0) {
        log_err("signer: ca_init_failed dir=%s rc=%d", dir, rc);
        ca_rollback(created, dir);
    }
    for (size_t i = 0; m != NULL && i < 3; i++) {
        hsm_key_free(m[i].key);
        m[i].key = NULL;
    }
    free(m);
    return rc;
}

int signer_ca_init(const char *dir, enum hsm_key_type type, const char *fqdn)
{
    return ca_create(dir, type, fqdn, NULL);
}

int signer_ca_init_with_key(const char *dir, struct hsm_key *issuing, const char *fqdn)
{
    ASSERT(issuing != NULL);
    return ca_create(dir, hsm_key_get_type(issuing), fqdn, issuing);
}

/* ---- open ---- */

/* struct ca_bad is what ca_open learns about a failure on the way: the file and, where the errno
 * alone does not say it, why (static text). */
struct ca_bad {
    enum signer_file file;
    const char *why;
};

static int ca_bad_set(struct ca_bad *bad, int rc, enum signer_file f, const char *why)
{
    bad->file = f;
    bad->why = why;
    return rc;
}

static int read_issuing(X509 **out, struct ca_bad *bad, const char *dir)
{
    char path[CA_PATH_MAX];
    uint8_t pem[CA_PEM_MAX];
    size_t len = 0;
    bad->file = SIGNER_FILE_ISSUING_CRT;
    int rc = ca_path(path, dir, ca_files[SIGNER_FILE_ISSUING_CRT]);
    if (rc != 0) {
        return rc;
    }
    rc = base_file_read(pem, &len, sizeof(pem), path);
    if (rc == -E2BIG) {
        return ca_bad_set(bad, -EBADMSG, SIGNER_FILE_ISSUING_CRT,
                          "damaged (larger than any certificate)");
    }
    if (rc != 0) {
        return rc;
    }
    ASSERT(len <= sizeof(pem));
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    X509 *x = bio != NULL ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    if (x == NULL) {
        ERR_clear_error();
        log_err("signer: ca_cert_damaged path=%s", path);
        return ca_bad_set(bad, -EBADMSG, SIGNER_FILE_ISSUING_CRT,
                          "damaged (not a PEM certificate)");
    }
    *out = x;
    return 0;
}

/* open_key loads the issuing CA's key. A symbolic link is refused by the backend as -EPERM, like
 * a key that others may read; here it becomes -EBADMSG, so that -EPERM means `chmod 600`. */
static int open_key(struct signer_ca *ca, struct ca_bad *bad, const char *dir)
{
    char path[CA_PATH_MAX];
    bad->file = SIGNER_FILE_ISSUING_KEY;
    int rc = ca_path(path, dir, ca_files[SIGNER_FILE_ISSUING_KEY]);
    if (rc != 0) {
        return rc;
    }
    rc = hsm_soft_open(&ca->key, path);
    struct stat st;
    if (rc == -EPERM && lstat(path, &st) == 0 && S_ISLNK(st.st_mode)) {
        return ca_bad_set(bad, -EBADMSG, SIGNER_FILE_ISSUING_KEY,
                          "a symbolic link (a key must be a regular file)");
    }
    if (rc == -EBADMSG) {
        return ca_bad_set(bad, rc, SIGNER_FILE_ISSUING_KEY,
                          "damaged (not a private key this build can use)");
    }
    return rc;
}

/* load_issuing copies the issuing CA's subject Name and SKI and checks that the key matches. */
static int load_issuing(struct signer_ca *ca, struct ca_bad *bad, X509 *x)
{
    uint8_t spki[HSM_SPKI_MAX];
    size_t spki_len = 0;
    const ASN1_OCTET_STRING *ski = X509_get0_subject_key_id(x);
    X509_NAME *name = X509_get_subject_name(x);
    int name_len = i2d_X509_NAME(name, NULL);
    if (ski == NULL || ASN1_STRING_length(ski) <= 0 ||
        (size_t)ASN1_STRING_length(ski) > sizeof(ca->ski) || name_len <= 0 ||
        (size_t)name_len > sizeof(ca->issuer)) {
        return ca_bad_set(bad, -EBADMSG, SIGNER_FILE_ISSUING_CRT,
                          "damaged (no key identifier, or a subject too long)");
    }
    int64_t not_after_s = 0;
    if (!signer_asn1_time_unix(X509_get0_notAfter(x), &not_after_s) || not_after_s < DAY_S) {
        ERR_clear_error();
        return ca_bad_set(bad, -EBADMSG, SIGNER_FILE_ISSUING_CRT, "damaged (no usable notAfter)");
    }
    ca->not_after_s = not_after_s;
    uint8_t *p = ca->issuer;
    int written = i2d_X509_NAME(name, &p);
    ASSERT(written == name_len);
    ca->issuer_len = (size_t)name_len;
    ca->ski_len = (size_t)ASN1_STRING_length(ski);
    memcpy(ca->ski, ASN1_STRING_get0_data(ski), ca->ski_len);

    int rc = hsm_key_public_der(ca->key, spki, sizeof(spki), &spki_len);
    ASSERT(rc == 0); /* spki has room for any key the backend holds */
    CBS cbs;
    CBS_init(&cbs, spki, spki_len);
    EVP_PKEY *mine = EVP_parse_public_key(&cbs);
    EVP_PKEY *theirs = X509_get_pubkey(x);
    int match = mine != NULL && theirs != NULL ? EVP_PKEY_cmp(mine, theirs) : 0;
    EVP_PKEY_free(mine);
    EVP_PKEY_free(theirs);
    ERR_clear_error();
    if (match != 1) {
        log_err("signer: ca_key_mismatch key=%s", hsm_key_get_label(ca->key));
        return ca_bad_set(bad, -EBADMSG, SIGNER_FILE_ISSUING_KEY, "not the key of ca/issuing.crt");
    }
    return 0;
}

static int read_chain(struct signer_ca *ca, struct ca_bad *bad, const char *dir)
{
    char path[CA_PATH_MAX];
    size_t len = 0;
    bad->file = SIGNER_FILE_CHAIN;
    int rc = ca_path(path, dir, ca_files[SIGNER_FILE_CHAIN]);
    if (rc != 0) {
        return rc;
    }
    rc = base_file_read((uint8_t *)ca->chain_pem, &len, sizeof(ca->chain_pem) - 1, path);
    if (rc != 0 && rc != -E2BIG) {
        return rc;
    }
    if (rc == -E2BIG || memchr(ca->chain_pem, '\0', len) != NULL ||
        strncmp(ca->chain_pem, "-----BEGIN CERTIFICATE-----\n", 28) != 0) {
        log_err("signer: ca_chain_damaged path=%s", path);
        return ca_bad_set(bad, -EBADMSG, SIGNER_FILE_CHAIN, "damaged (not PEM certificates)");
    }
    ca->chain_pem[len] = '\0';
    ca->chain_pem_len = len;
    return 0;
}

/* ca_open loads the CA; on failure `bad` names the file that failed. */
static int ca_load(struct signer_ca *ca, struct ca_bad *bad, const char *dir)
{
    X509 *x = NULL;
    int rc = read_issuing(&x, bad, dir);
    if (rc != 0) {
        goto out;
    }
    rc = ca->key != NULL ? 0 : open_key(ca, bad, dir); /* a given key: signer_ca_open_with_key */
    if (rc != 0) {
        goto out;
    }
    rc = load_issuing(ca, bad, x);
    if (rc != 0) {
        goto out;
    }
    rc = read_chain(ca, bad, dir);
out:
    X509_free(x);
    return rc;
}

/* fault_fill tells the caller of signer_ca_open what failed. */
static void fault_fill(struct signer_ca_fault *fault, int rc, const struct ca_bad *bad,
                       const char *dir)
{
    fault->file = bad->file;
    fault->why = bad->why;
    if (fault->why == NULL && rc == -ENOENT) {
        fault->why = "missing";
    } else if (fault->why == NULL && rc == -EPERM) {
        fault->why = "readable or writable by group or others";
    }
    /* Only a store without any of the CA's files is one where `ca init` is the advice. */
    fault->no_ca = rc == -ENOENT && ca_absent(dir) == 0;
}

/* ca_open_key is signer_ca_open, with the issuing key given (owned) or NULL (the soft file). */
static int ca_open_key(struct signer_ca **out, struct signer_ca_fault *out_fault, const char *dir,
                       struct hsm_key *key)
{
    ASSERT(out != NULL);
    ASSERT(dir != NULL);
    struct ca_bad bad = {.file = SIGNER_FILE_ISSUING_CRT, .why = NULL};
    int rc = 0;
    struct signer_ca *ca = calloc(1, sizeof(*ca));
    if (ca == NULL) {
        hsm_key_free(key);
        rc = -ENOMEM;
        goto out;
    }
    ca->key = key;
    rc = ca_load(ca, &bad, dir);
    if (rc != 0) {
        goto out;
    }
    ASSERT(ca->issuer_len > 0);
    ASSERT(ca->ski_len > 0);
    *out = ca;
    ca = NULL; /* now the caller's */
out:
    if (rc != 0 && out_fault != NULL) {
        fault_fill(out_fault, rc, &bad, dir);
    }
    signer_ca_free(ca);
    return rc;
}

int signer_ca_open(struct signer_ca **out, struct signer_ca_fault *out_fault, const char *dir)
{
    return ca_open_key(out, out_fault, dir, NULL);
}

int signer_ca_open_with_key(struct signer_ca **out, struct signer_ca_fault *out_fault,
                            const char *dir, struct hsm_key *key)
{
    ASSERT(key != NULL);
    return ca_open_key(out, out_fault, dir, key);
}

int signer_ca_self_test(struct signer_ca *ca)
{
    ASSERT(ca != NULL);
    uint8_t msg[64];
    uint8_t sig[HSM_SIG_MAX];
    RAND_bytes(msg, sizeof(msg));
    struct hsm_sign_item item = {.tbs = msg, .tbs_len = sizeof(msg), .sig = sig};
    int rc = hsm_key_sign_batch(ca->key, &item, 1);
    if (rc != 0) {
        return rc;
    }
    uint8_t spki[HSM_SPKI_MAX];
    size_t spki_len = 0;
    rc = hsm_key_public_der(ca->key, spki, sizeof(spki), &spki_len);
    ASSERT(rc == 0);
    CBS cbs;
    CBS_init(&cbs, spki, spki_len);
    EVP_PKEY *pub = EVP_parse_public_key(&cbs); /* the certificate's key: load_issuing */
    enum hsm_key_type t = hsm_key_get_type(ca->key);
    const EVP_MD *md = t == HSM_KEY_P384      ? EVP_sha384()
                       : t == HSM_KEY_ED25519 ? NULL
                                              : EVP_sha256();
    EVP_MD_CTX ctx;
    EVP_MD_CTX_init(&ctx);
    int ok = pub != NULL && EVP_DigestVerifyInit(&ctx, NULL, md, NULL, pub) &&
             EVP_DigestVerify(&ctx, sig, item.sig_len, msg, sizeof(msg));
    EVP_MD_CTX_cleanup(&ctx);
    EVP_PKEY_free(pub);
    ERR_clear_error();
    return ok ? 0 : -EBADMSG;
}

int signer_ca_fault_format(char *out, size_t cap, int rc, const struct signer_ca_fault *fault,
                           const char *dir)
{
    ASSERT(out != NULL);
    ASSERT(fault != NULL);
    ASSERT(dir != NULL);
    ASSERT(rc < 0);
    ASSERT((unsigned)fault->file < SIGNER_FILE_CA_MAX_);
    const char *rel = ca_files[fault->file];
    int n = 0;
    if (rc == -EPERM) {
        n = snprintf(out, cap, "%s/%s is %s; run: chmod 600 %s/%s", dir, rel, fault->why, dir, rel);
    } else if (fault->why != NULL) {
        n = snprintf(out, cap, "%s/%s is %s", dir, rel, fault->why);
    } else {
        n = snprintf(out, cap, "%s/%s cannot be read: %s", dir, rel, strerror(-rc));
    }
    return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

void signer_ca_free(struct signer_ca *ca)
{
    if (ca == NULL) {
        return;
    }
    hsm_key_free(ca->key);
    ca->key = NULL;
    free(ca);
}

const char *signer_ca_get_chain_pem(const struct signer_ca *ca, size_t *out_len)
{
    ASSERT(ca != NULL);
    ASSERT(out_len != NULL);
    *out_len = ca->chain_pem_len;
    return ca->chain_pem;
}

struct hsm_key *signer_ca_get_key(struct signer_ca *ca)
{
    ASSERT(ca != NULL);
    ASSERT(ca->key != NULL);
    return ca->key;
}
