/* caimport.c: the enterprise's own CA. `certprovctl ca request` makes the issuing key and a
 * PKCS#10 request (signer_ca_request); the enterprise's CA signs it; `certprovctl ca import`
 * checks and installs what came back (signer_ca_import). No root key exists in this mode. Runs
 * from certprovctl: it may allocate. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bytestring.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "base/base.h"
#include "signer/internal.h"

#define IMP_PATH_MAX 4096
#define IMP_PEM_MAX 8192 /* one certificate or request as PEM */

static bool file_exists(int *err, const char *dir, enum signer_file f)
{
    char path[IMP_PATH_MAX];
    if (signer_file_path(path, sizeof(path), dir, f) != 0) {
        *err = -ENAMETOOLONG;
        return false;
    }
    if (access(path, F_OK) == 0) {
        return true;
    }
    if (errno != ENOENT) {
        *err = -errno;
    }
    return false;
}

int signer_ca_pending(const char *dir)
{
    ASSERT(dir != NULL);
    int err = 0;
    bool any = false, other = false;
    bool have[SIGNER_FILE_CA_MAX_] = {false};
    for (size_t f = 0; f < SIGNER_FILE_CA_MAX_; f++) {
        have[f] = file_exists(&err, dir, (enum signer_file)f);
        any = any || have[f];
        bool part = f == SIGNER_FILE_ISSUING_KEY || f == SIGNER_FILE_ISSUING_CSR ||
                    f == SIGNER_FILE_CHAIN; /* chain.pem: an import stopped half-way */
        other = other || (have[f] && !part);
    }
    if (err != 0) {
        return err;
    }
    if (!any) {
        return -ENOENT;
    }
    /* ca/issuing.key is absent when the request's key is in a PKCS#11 token
     * (signer_ca_request_with_key). */
    return !other && have[SIGNER_FILE_ISSUING_CSR] ? 0 : -EEXIST;
}

static int unlink_file(const char *dir, enum signer_file f)
{
    char path[IMP_PATH_MAX];
    int rc = signer_file_path(path, sizeof(path), dir, f);
    if (rc == 0 && unlink(path) == -1 && errno != ENOENT) {
        rc = -errno;
    }
    return rc;
}

static int dirs_make(const char *dir)
{
    static const char *const subs[] = {"", "/ca", "/tls"};
    for (size_t i = 0; i < ARRAY_LEN(subs); i++) {
        char path[IMP_PATH_MAX];
        int n = snprintf(path, sizeof(path), "%s%s", dir, subs[i]);
        if (n < 0 || (size_t)n >= sizeof(path)) {
            return -ENAMETOOLONG;
        }
        if (mkdir(path, 0700) == -1 && errno != EEXIST) {
            return -errno;
        }
    }
    return 0;
}

static bool value_ok(const char *v)
{
    size_t len = v == NULL ? 0 : strnlen(v, SIGNER_SUBJECT_MAX + 1);
    if (len == 0 || len > SIGNER_SUBJECT_MAX) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if (v[i] < 0x20 || v[i] > 0x7e) {
            return false;
        }
    }
    return true;
}

/* csr_build writes the request (RFC 2986 §4: version 0, subject, SPKI, no attributes) signed with
 * `key` into `der`. */
static int csr_build(uint8_t der[SIGNER_CERT_DER_MAX], size_t *out_len, struct hsm_key *key,
                     const char *cn, const char *o)
{
    uint8_t spki[HSM_SPKI_MAX];
    size_t spki_len = 0;
    uint8_t name[CERT_NAME_DER_MAX];
    size_t name_len = 0;
    int rc = hsm_key_public_der(key, spki, sizeof(spki), &spki_len);
    if (rc == 0) {
        rc = cert_name_build(name, sizeof(name), &name_len, cn, strlen(cn), o,
                             o == NULL ? 0 : strlen(o));
    }
    if (rc != 0) {
        return rc;
    }
    CBB cbb, info, attrs;
    size_t info_len = 0;
    if (!CBB_init_fixed(&cbb, der + CERT_TBS_OFF, CERT_TBS_MAX) ||
        !CBB_add_asn1(&cbb, &info, CBS_ASN1_SEQUENCE) || !CBB_add_asn1_uint64(&info, 0) ||
        !CBB_add_bytes(&info, name, name_len) || !CBB_add_bytes(&info, spki, spki_len) ||
        !CBB_add_asn1(&info, &attrs, CBS_ASN1_CONTEXT_SPECIFIC | CBS_ASN1_CONSTRUCTED | 0) ||
        !CBB_finish(&cbb, NULL, &info_len)) {
        return -E2BIG;
    }
    struct hsm_sign_item item;
    cert_sign_item_init(&item, der, info_len);
    rc = hsm_key_sign_batch(key, &item, 1);
    if (rc == 0 && item.rc != 0) {
        rc = -EIO;
    }
    if (rc != 0) {
        return rc;
    }
    /* A CertificationRequest has the Certificate's shape: SEQUENCE { info, alg, BIT STRING }. */
    return cert_assemble(der, out_len, info_len, hsm_key_get_type(key), item.sig_len);
}

/* request_write builds the request signed with `key` and writes it (PEM) into `out` and to
 * ca/issuing.csr. */
static int request_write(char *out, size_t cap, size_t *out_len, const char *dir,
                         struct hsm_key *key, const char *cn, const char *o)
{
    char path[IMP_PATH_MAX];
    uint8_t der[SIGNER_CERT_DER_MAX];
    size_t der_len = 0;
    int rc = csr_build(der, &der_len, key, cn, o);
    if (rc == 0) {
        rc = signer_pem_encode(out, cap, out_len, "CERTIFICATE REQUEST", der, der_len);
    }
    if (rc == 0) {
        rc = signer_file_path(path, sizeof(path), dir, SIGNER_FILE_ISSUING_CSR);
    }
    if (rc == 0) {
        rc = base_file_write_atomic(path, out, *out_len, 0644, false);
    }
    return rc;
}

static int request_make(char *out, size_t cap, size_t *out_len, const char *dir,
                        enum hsm_key_type type, struct hsm_key *given, const char *cn,
                        const char *o)
{
    if (given != NULL) {
        return request_write(out, cap, out_len, dir, given, cn, o);
    }
    char path[IMP_PATH_MAX];
    struct hsm_key *key = NULL;
    int rc = signer_file_path(path, sizeof(path), dir, SIGNER_FILE_ISSUING_KEY);
    if (rc == 0) {
        rc = hsm_soft_generate(&key, path, type);
    }
    if (rc == 0) {
        rc = request_write(out, cap, out_len, dir, key, cn, o);
    }
    hsm_key_free(key);
    return rc;
}

static int ca_request(char *out, size_t cap, size_t *out_len, const char *dir,
                      enum hsm_key_type type, struct hsm_key *key, const char *cn, const char *o)
{
    if (key != NULL) {
        type = hsm_key_get_type(key);
    }
    if (!value_ok(cn) || (o != NULL && !value_ok(o)) || type <= HSM_KEY_NONE ||
        type > HSM_KEY_ED25519) {
        return -EINVAL;
    }
    int rc = signer_ca_pending(dir);
    if (rc == -ENOENT) {
        rc = 0; /* no CA file at all */
    } else if (rc == 0) {
        /* A pending request of ours is replaced as a whole: its key, its request, and a
         * chain.pem that an interrupted import may have left. */
        static const enum signer_file parts[] = {SIGNER_FILE_ISSUING_CSR, SIGNER_FILE_CHAIN,
                                                 SIGNER_FILE_ISSUING_KEY};
        for (size_t i = 0; rc == 0 && i < ARRAY_LEN(parts); i++) {
            rc = unlink_file(dir, parts[i]);
        }
    }
    if (rc == 0) {
        rc = dirs_make(dir);
    }
    if (rc != 0) {
        return rc;
    }
    rc = request_make(out, cap, out_len, dir, type, key, cn, o);
    if (rc != 0) {
        log_err("signer: ca_request_failed dir=%s rc=%d", dir, rc);
        (void)unlink_file(dir, SIGNER_FILE_ISSUING_CSR);
        (void)unlink_file(dir, SIGNER_FILE_ISSUING_KEY);
    }
    return rc;
}

int signer_ca_request(char *out, size_t cap, size_t *out_len, const char *dir,
                      enum hsm_key_type type, const char *cn, const char *o)
{
    ASSERT(out != NULL);
    ASSERT(out_len != NULL);
    ASSERT(dir != NULL);
    return ca_request(out, cap, out_len, dir, type, NULL, cn, o);
}

int signer_ca_request_with_key(char *out, size_t cap, size_t *out_len, const char *dir,
                               struct hsm_key *key, const char *cn, const char *o)
{
    ASSERT(out != NULL);
    ASSERT(out_len != NULL);
    ASSERT(dir != NULL);
    ASSERT(key != NULL);
    return ca_request(out, cap, out_len, dir, HSM_KEY_NONE, key, cn, o);
}

/* ---- import ---- */

__attribute__((format(printf, 4, 5))) static int refuse(char *why, size_t cap, int rc,
                                                        const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, cap, fmt, ap);
    va_end(ap);
    return rc;
}

/* key_check: the certificate `x` certifies the pending key (`given`, a token's; or NULL:
 * ca/issuing.key) and has an SKI. */
static int key_check(char *why, size_t cap, const char *dir, struct hsm_key *given, X509 *x,
                     const char *subject)
{
    char path[IMP_PATH_MAX];
    struct hsm_key *key = given;
    uint8_t spki[HSM_SPKI_MAX];
    size_t spki_len = 0;
    int rc = signer_file_path(path, sizeof(path), dir, SIGNER_FILE_ISSUING_KEY);
    if (given != NULL) {
        (void)base_str_copy(path, sizeof(path), hsm_key_get_label(given));
    } else if (rc == 0) {
        rc = hsm_soft_open(&key, path);
    }
    if (rc == 0) {
        rc = hsm_key_public_der(key, spki, sizeof(spki), &spki_len);
    }
    if (given == NULL) {
        hsm_key_free(key);
    }
    if (rc == -ENOENT && given == NULL) {
        return refuse(why, cap, rc,
                      "the pending key %s is missing (a request made with 'ca request --pkcs11' "
                      "is imported with [ca] backend = pkcs11 and key = the key's URI)",
                      path);
    }
    if (rc != 0) {
        return refuse(why, cap, rc, "the pending key %s cannot be loaded: %s", path, strerror(-rc));
    }
    CBS cbs;
    CBS_init(&cbs, spki, spki_len);
    EVP_PKEY *mine = EVP_parse_public_key(&cbs);
    EVP_PKEY *theirs = X509_get_pubkey(x);
    bool match = mine != NULL && theirs != NULL && EVP_PKEY_cmp(mine, theirs) == 1;
    EVP_PKEY_free(mine);
    EVP_PKEY_free(theirs);
    ERR_clear_error();
    if (!match) {
        return refuse(why, cap, -EPERM,
                      "the certificate '%s' is not for the pending key %s (it certifies another "
                      "key: was it issued for this appliance's request?)",
                      subject, path);
    }
    if (X509_get0_subject_key_id(x) == NULL) {
        return refuse(why, cap, -EPERM,
                      "the certificate '%s' has no subjectKeyIdentifier (the certificates it "
                      "issues need it as their authorityKeyIdentifier)",
                      subject);
    }
    return 0;
}

/* the certificates of one import: the chain to check (issuing first) and the trusted roots */
struct import {
    struct signer_der chain[SIGNER_CHAIN_MAX];
    size_t num_chain;
    struct signer_der roots[SIGNER_CHAIN_MAX];
    size_t num_roots;
    struct signer_chain_result result;
    char pem[(SIGNER_CHAIN_MAX + 1) * IMP_PEM_MAX];
    size_t pem_len;
};

static bool der_same(const struct signer_der *a, const struct signer_der *b)
{
    return a->der_len == b->der_len && memcmp(a->der, b->der, a->der_len) == 0;
}

/* gather puts the issuing certificate, then every other certificate of `chain`, into imp->chain,
 * and chain's self-signed ones into imp->roots. */
static int gather(struct import *imp, char *why, size_t cap, const struct signer_der *issuing,
                  const struct signer_cert_set *chain)
{
    imp->chain[imp->num_chain++] = *issuing;
    for (size_t i = 0; i < chain->num; i++) {
        if (der_same(&chain->certs[i], issuing)) {
            continue;
        }
        if (imp->num_chain == SIGNER_CHAIN_MAX) {
            return refuse(why, cap, -E2BIG, "the chain has more than %d certificates",
                          SIGNER_CHAIN_MAX);
        }
        imp->chain[imp->num_chain++] = chain->certs[i];
        if (signer_cert_self_signed(&chain->certs[i])) {
            imp->roots[imp->num_roots++] = chain->certs[i];
        }
    }
    if (imp->num_roots == 0) {
        return refuse(why, cap, -EPERM,
                      "the chain file holds no self-signed root certificate (give the "
                      "enterprise's root, and its intermediates, with --chain)");
    }
    return 0;
}

static int pem_add(struct import *imp, const struct signer_der *d)
{
    size_t n = 0;
    int rc = cert_pem_encode(imp->pem + imp->pem_len, sizeof(imp->pem) - imp->pem_len, &n, d->der,
                             d->der_len);
    imp->pem_len += rc == 0 ? n : 0;
    return rc;
}

/* install writes chain.pem (issuing, the path's intermediates, the root), then ca/issuing.crt,
 * then removes the request: only then is the CA complete (signer_ca_open needs both files). */
static int install(struct import *imp, const char *dir)
{
    const struct signer_chain_result *r = &imp->result;
    char path[IMP_PATH_MAX];
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < r->num_path; i++) {
        rc = pem_add(imp, &imp->chain[r->path[i]]);
    }
    if (rc == 0) {
        rc = pem_add(imp, &imp->roots[r->anchor]);
    }
    if (rc == 0) {
        rc = signer_file_path(path, sizeof(path), dir, SIGNER_FILE_CHAIN);
    }
    if (rc == 0) {
        rc = base_file_write_atomic(path, imp->pem, imp->pem_len, 0644, false);
    }
    size_t issuing_len = 0;
    if (rc == 0) {
        /* the issuing certificate is the first block written */
        const char *end = strstr(imp->pem, "-----END CERTIFICATE-----\n");
        ASSERT(end != NULL);
        issuing_len = (size_t)(end - imp->pem) + 26;
        rc = signer_file_path(path, sizeof(path), dir, SIGNER_FILE_ISSUING_CRT);
    }
    if (rc == 0) {
        rc = base_file_write_atomic(path, imp->pem, issuing_len, 0644, false);
    }
    if (rc == 0) {
        rc = unlink_file(dir, SIGNER_FILE_ISSUING_CSR);
    }
    return rc;
}

static int import_checked(struct import *imp, char *why, size_t cap, const char *dir,
                          struct hsm_key *key, const struct signer_cert_set *issuing,
                          const struct signer_cert_set *chain, int64_t now_s)
{
    struct signer_cert_info info;
    const struct signer_der *target = &issuing->certs[0];
    if (signer_cert_info_der(&info, target->der, target->der_len) != 0) {
        return refuse(why, cap, -EBADMSG, "the issuing certificate does not parse");
    }
    const uint8_t *p = target->der;
    X509 *x = d2i_X509(NULL, &p, (long)target->der_len);
    int rc = x == NULL ? refuse(why, cap, -EBADMSG, "the issuing certificate does not parse")
                       : key_check(why, cap, dir, key, x, info.subject);
    X509_free(x);
    ERR_clear_error();
    if (rc == 0) {
        rc = gather(imp, why, cap, target, chain);
    }
    if (rc != 0) {
        return rc;
    }
    rc = signer_chain_check(&imp->result, imp->chain, imp->num_chain, imp->roots, imp->num_roots,
                            now_s, true);
    if (rc != 0) {
        char text[768];
        (void)signer_chain_result_format(text, sizeof(text), &imp->result);
        return refuse(why, cap, rc == -ENOMEM ? rc : -EPERM, "%s", text);
    }
    rc = install(imp, dir);
    return rc != 0 ? refuse(why, cap, rc, "writing the CA into %s failed: %s", dir, strerror(-rc))
                   : 0;
}

static int tls_from_new_ca(char *why, size_t cap, const char *dir, struct hsm_key *key,
                           const char *const *names, size_t num_names, int64_t now_s)
{
    struct signer_ca *ca = NULL;
    struct signer_ca_fault fault;
    int rc = key != NULL ? signer_ca_open_with_key(&ca, &fault, dir, key) /* owns key */
                         : signer_ca_open(&ca, &fault, dir);
    if (rc != 0) {
        char text[IMP_PATH_MAX + 128];
        (void)signer_ca_fault_format(text, sizeof(text), rc, &fault, dir);
        return refuse(why, cap, rc, "the imported CA cannot be loaded: %s", text);
    }
    rc = signer_tls_issue(ca, dir, names, num_names, now_s);
    signer_ca_free(ca);
    if (rc != 0) {
        return refuse(why, cap, rc,
                      "the CA was installed, but the TLS server certificate could not be issued "
                      "(%s); certprovd issues it at start",
                      strerror(-rc));
    }
    return 0;
}

/* ca_import is signer_ca_import_with_key without its `key` (freed by the caller on failure);
 * on success the key went to the CA that issued the TLS server certificate. */
static int ca_import(char *why, size_t why_cap, const char *dir, struct hsm_key **key,
                     const struct signer_cert_set *issuing, const struct signer_cert_set *chain,
                     const char *const *names, size_t num_names, int64_t now_s)
{
    int rc = signer_ca_pending(dir);
    if (rc == -ENOENT) {
        return refuse(why, why_cap, rc,
                      "no pending request in %s: run 'certprovctl ca request' first", dir);
    }
    if (rc == -EEXIST) {
        return refuse(why, why_cap, rc, "a CA is already installed in %s; nothing was changed",
                      dir);
    }
    if (rc != 0) {
        return refuse(why, why_cap, rc, "cannot look at %s: %s", dir, strerror(-rc));
    }
    struct import *imp = calloc(1, sizeof(*imp));
    if (imp == NULL) {
        return refuse(why, why_cap, -ENOMEM, "out of memory");
    }
    rc = import_checked(imp, why, why_cap, dir, *key, issuing, chain, now_s);
    free(imp);
    if (rc != 0) {
        return rc;
    }
    struct hsm_key *given = *key;
    *key = NULL; /* tls_from_new_ca's CA owns it from here on */
    return tls_from_new_ca(why, why_cap, dir, given, names, num_names, now_s);
}

int signer_ca_import(char *why, size_t why_cap, const char *dir,
                     const struct signer_cert_set *issuing, const struct signer_cert_set *chain,
                     const char *const *names, size_t num_names, int64_t now_s)
{
    return signer_ca_import_with_key(why, why_cap, dir, NULL, issuing, chain, names, num_names,
                                     now_s);
}

int signer_ca_import_with_key(char *why, size_t why_cap, const char *dir, struct hsm_key *key,
                              const struct signer_cert_set *issuing,
                              const struct signer_cert_set *chain, const char *const *names,
                              size_t num_names, int64_t now_s)
{
    ASSERT(why != NULL);
    ASSERT(dir != NULL);
    ASSERT(issuing != NULL);
    ASSERT(chain != NULL);
    ASSERT(issuing->num > 0);
    int rc = ca_import(why, why_cap, dir, &key, issuing, chain, names, num_names, now_s);
    hsm_key_free(key); /* NULL when it was handed on */
    return rc;
}
