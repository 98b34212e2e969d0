/* catls.c: the TLS server certificate (tls/server.crt, tls/server.key): is it still right for
 * the CA, the names and the date (signer_tls_check), and a new one (signer_tls_issue). Start-up
 * and certprovctl only: it allocates. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bytestring.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "base/base.h"
#include "signer/internal.h"

#define DAY_S (24 * 3600)
#define SERVER_DAYS 397 /* CA/Browser Forum limit for TLS server certificates */
#define SHORT_LIFE_S (90 * DAY_S)
#define TLS_PATH_MAX 4096
#define TLS_PEM_MAX (SIGNER_CHAIN_PEM_MAX + 2 * SIGNER_CERT_DER_MAX)

const char *signer_tls_state_text(enum signer_tls_state state)
{
    switch (state) {
    case SIGNER_TLS_OK:
        return "good";
    case SIGNER_TLS_MISSING:
        return "tls/server.crt or tls/server.key is missing";
    case SIGNER_TLS_DAMAGED:
        return "tls/server.crt or tls/server.key is damaged";
    case SIGNER_TLS_NOT_ISSUED:
        return "not issued by the current issuing CA";
    case SIGNER_TLS_NAMES:
        return "its names are not [server] name and alt_names";
    case SIGNER_TLS_KEY:
        return "it is not the certificate of tls/server.key";
    case SIGNER_TLS_EXPIRING:
        return "expired, not yet valid, or expires in less than 30 days (or a third of its life)";
    case SIGNER_TLS_CHAIN:
        return "the CA certificates after it are not the current chain";
    }
    return "unknown";
}

/* key_public returns the public key of a backend's key (the CA's: never its private key). */
static EVP_PKEY *key_public(struct hsm_key *key)
{
    uint8_t spki[HSM_SPKI_MAX];
    size_t len = 0;
    if (hsm_key_public_der(key, spki, sizeof(spki), &len) != 0) {
        return NULL;
    }
    CBS cbs;
    CBS_init(&cbs, spki, len);
    return EVP_parse_public_key(&cbs);
}

/* handshake_cas fills `out` with the CA certificates sent after the leaf: chain.pem less its
 * root (the last certificate, when it is self-signed). */
static int handshake_cas(struct signer_cert_set *out, const struct signer_ca *ca)
{
    int rc = signer_cert_set_parse(out, ca->chain_pem, ca->chain_pem_len);
    if (rc != 0) {
        return rc;
    }
    if (out->num > 1 && signer_cert_self_signed(&out->certs[out->num - 1])) {
        out->num--;
    }
    return 0;
}

/* names_match: the leaf's SANs are dNSNames, and exactly `names` (ASCII case ignored). */
static bool names_match(X509 *x, const char *const *names, size_t num_names)
{
    GENERAL_NAMES *gns = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    if (gns == NULL) {
        ERR_clear_error();
        return false;
    }
    bool ok = true;
    bool seen[SIGNER_TLS_NAMES_MAX] = {false};
    for (size_t i = 0; ok && i < sk_GENERAL_NAME_num(gns); i++) {
        const GENERAL_NAME *gn = sk_GENERAL_NAME_value(gns, i);
        ok = gn->type == GEN_DNS;
        bool found = false;
        for (size_t j = 0; ok && j < num_names; j++) {
            const ASN1_IA5STRING *s = gn->d.ia5;
            size_t len = (size_t)ASN1_STRING_length(s);
            if (strlen(names[j]) == len &&
                strncasecmp((const char *)ASN1_STRING_get0_data(s), names[j], len) == 0) {
                found = seen[j] = true;
            }
        }
        ok = ok && found;
    }
    for (size_t j = 0; ok && j < num_names; j++) {
        ok = seen[j];
    }
    GENERAL_NAMES_free(gns);
    return ok;
}

static bool time_ok(const struct signer_cert_info *info, int64_t now_s)
{
    int64_t life = info->not_after_s - info->not_before_s;
    int64_t margin = life < SHORT_LIFE_S ? life / 3 : SIGNER_TLS_RENEW_S;
    return now_s >= info->not_before_s && info->not_after_s - now_s > margin;
}

static bool chain_same(const struct signer_cert_set *file, const struct signer_cert_set *cas)
{
    if (file->num != cas->num + 1) {
        return false;
    }
    for (size_t i = 0; i < cas->num; i++) {
        const struct signer_der *a = &file->certs[i + 1], *b = &cas->certs[i];
        if (a->der_len != b->der_len || memcmp(a->der, b->der, a->der_len) != 0) {
            return false;
        }
    }
    return true;
}

/* judge decides the state of a readable leaf `x` (file[0]) with its key `key`. */
static enum signer_tls_state judge(X509 *x, const struct signer_cert_set *file, struct hsm_key *key,
                                   struct signer_ca *ca, const char *const *names, size_t num_names,
                                   int64_t now_s)
{
    struct signer_cert_info info;
    if (signer_cert_info_der(&info, file->certs[0].der, file->certs[0].der_len) != 0) {
        return SIGNER_TLS_DAMAGED;
    }
    EVP_PKEY *ca_pub = key_public(ca->key);
    EVP_PKEY *mine = key_public(key);
    EVP_PKEY *in_cert = X509_get_pubkey(x);
    bool issued = ca_pub != NULL && X509_verify(x, ca_pub) == 1;
    bool key_ok = mine != NULL && in_cert != NULL && EVP_PKEY_cmp(mine, in_cert) == 1;
    EVP_PKEY_free(ca_pub);
    EVP_PKEY_free(mine);
    EVP_PKEY_free(in_cert);
    ERR_clear_error();
    if (!issued) {
        return SIGNER_TLS_NOT_ISSUED;
    }
    if (!key_ok) {
        return SIGNER_TLS_KEY;
    }
    if (!names_match(x, names, num_names)) {
        return SIGNER_TLS_NAMES;
    }
    if (!time_ok(&info, now_s)) {
        return SIGNER_TLS_EXPIRING;
    }
    struct signer_cert_set *cas = malloc(sizeof(*cas));
    bool same = cas != NULL && handshake_cas(cas, ca) == 0 && chain_same(file, cas);
    free(cas);
    return same ? SIGNER_TLS_OK : SIGNER_TLS_CHAIN;
}

/* load reads tls/server.crt into `file` and opens tls/server.key; a missing or damaged one is a
 * state (*out_state), anything else an error. */
static int load(enum signer_tls_state *out_state, struct signer_cert_set *file,
                struct hsm_key **key, const char *dir)
{
    char path[TLS_PATH_MAX];
    int rc = signer_file_path(path, sizeof(path), dir, SIGNER_FILE_SERVER_CRT);
    if (rc == 0) {
        rc = signer_cert_set_read(file, path);
    }
    if (rc == -ENOENT || rc == -EBADMSG || rc == -E2BIG) {
        *out_state = rc == -ENOENT ? SIGNER_TLS_MISSING : SIGNER_TLS_DAMAGED;
        return 0;
    }
    if (rc == 0) {
        rc = signer_file_path(path, sizeof(path), dir, SIGNER_FILE_SERVER_KEY);
    }
    if (rc == 0) {
        rc = hsm_soft_open(key, path);
    }
    if (rc == -ENOENT || rc == -EBADMSG) {
        *out_state = rc == -ENOENT ? SIGNER_TLS_MISSING : SIGNER_TLS_DAMAGED;
        return 0;
    }
    return rc;
}

int signer_tls_check(enum signer_tls_state *out_state, int64_t *out_not_after_s,
                     struct signer_ca *ca, const char *dir, const char *const *names,
                     size_t num_names, int64_t now_s)
{
    ASSERT(out_state != NULL);
    ASSERT(ca != NULL);
    ASSERT(num_names > 0);
    ASSERT(num_names <= SIGNER_TLS_NAMES_MAX);
    enum signer_tls_state state = SIGNER_TLS_OK;
    struct hsm_key *key = NULL;
    struct signer_cert_set *file = malloc(sizeof(*file));
    if (file == NULL) {
        return -ENOMEM;
    }
    int64_t not_after = 0;
    int rc = load(&state, file, &key, dir);
    if (rc == 0 && state == SIGNER_TLS_OK) {
        const uint8_t *p = file->certs[0].der;
        X509 *x = d2i_X509(NULL, &p, (long)file->certs[0].der_len);
        struct signer_cert_info info;
        if (signer_cert_info_der(&info, file->certs[0].der, file->certs[0].der_len) == 0) {
            not_after = info.not_after_s;
        }
        state = x == NULL ? SIGNER_TLS_DAMAGED : judge(x, file, key, ca, names, num_names, now_s);
        X509_free(x);
        ERR_clear_error();
    }
    hsm_key_free(key);
    free(file);
    if (rc == 0) {
        *out_state = state;
        if (out_not_after_s != NULL) {
            *out_not_after_s = not_after;
        }
    }
    return rc;
}

/* ---- issue ---- */

static bool names_ok(const char *const *names, size_t num_names)
{
    if (num_names == 0 || num_names > SIGNER_TLS_NAMES_MAX) {
        return false;
    }
    for (size_t i = 0; i < num_names; i++) {
        if (!signer_dns_name_ok(names[i])) {
            return false;
        }
    }
    return true;
}

/* leaf_pem builds the leaf for `key` and writes the file's PEM: the leaf, then the handshake's
 * CA certificates. */
static int leaf_pem(char *out, size_t cap, size_t *out_len, struct signer_ca *ca,
                    struct hsm_key *key, const char *const *names, size_t num_names, int64_t now_s)
{
    uint8_t spki[HSM_SPKI_MAX];
    size_t spki_len = 0;
    uint8_t serial[SIGNER_SERIAL_LEN];
    uint8_t der[SIGNER_CERT_DER_MAX];
    size_t der_len = 0;
    int rc = hsm_key_public_der(key, spki, sizeof(spki), &spki_len);
    if (rc != 0) {
        return rc;
    }
    int64_t not_after = now_s + (int64_t)SERVER_DAYS * DAY_S;
    not_after = not_after > ca->not_after_s ? ca->not_after_s : not_after;
    if (not_after <= now_s) {
        return -EINVAL; /* the issuing CA has expired */
    }
    cert_serial_random(serial);
    struct cert_spec spec = {
        .kind = CERT_KIND_SERVER,
        .sig_type = hsm_key_get_type(ca->key),
        .serial = serial,
        .issuer = ca->issuer,
        .issuer_len = ca->issuer_len,
        .subject_cn = names[0],
        .subject_cn_len = strlen(names[0]),
        .not_before_s = now_s - SIGNER_BACKDATE_S,
        .not_after_s = not_after,
        .spki = spki,
        .spki_len = spki_len,
        .aki = ca->ski,
        .aki_len = ca->ski_len,
        .san = names[0],
        .san_len = strlen(names[0]),
        .more_dns = num_names > 1 ? names + 1 : NULL,
        .num_more_dns = num_names - 1,
    };
    rc = cert_sign_one(der, &der_len, ca->key, &spec);
    if (rc != 0) {
        return rc;
    }
    struct signer_cert_set *cas = malloc(sizeof(*cas));
    rc = cas == NULL ? -ENOMEM : handshake_cas(cas, ca);
    size_t n = 0;
    if (rc == 0) {
        rc = cert_pem_encode(out, cap, &n, der, der_len);
    }
    for (size_t i = 0; rc == 0 && cas != NULL && i < cas->num; i++) {
        size_t m = 0;
        rc = cert_pem_encode(out + n, cap - n, &m, cas->certs[i].der, cas->certs[i].der_len);
        n += m;
    }
    free(cas);
    if (rc == 0) {
        *out_len = n;
    }
    return rc;
}

/* tls_dir_make makes the directory of `file` (0700) when it is missing (an operator removed
 * tls/ to get a new certificate). */
static int tls_dir_make(const char *file)
{
    char d[TLS_PATH_MAX];
    (void)base_str_copy(d, sizeof(d), file);
    char *slash = strrchr(d, '/');
    ASSERT(slash != NULL);
    *slash = '\0';
    if (mkdir(d, 0700) == -1 && errno != EEXIST) {
        return -errno;
    }
    return 0;
}

int signer_tls_issue(struct signer_ca *ca, const char *dir, const char *const *names,
                     size_t num_names, int64_t now_s)
{
    ASSERT(ca != NULL);
    ASSERT(dir != NULL);
    if (!names_ok(names, num_names)) {
        return -EINVAL;
    }
    char key_path[TLS_PATH_MAX];
    char tmp_path[TLS_PATH_MAX + 8];
    char crt_path[TLS_PATH_MAX];
    int rc = signer_file_path(key_path, sizeof(key_path), dir, SIGNER_FILE_SERVER_KEY);
    if (rc == 0) {
        rc = signer_file_path(crt_path, sizeof(crt_path), dir, SIGNER_FILE_SERVER_CRT);
    }
    if (rc != 0) {
        return rc;
    }
    snprintf(tmp_path, sizeof(tmp_path), "%s.new", key_path);
    if (unlink(tmp_path) == -1 && errno != ENOENT) { /* left by a crash: never used */
        return -errno;
    }
    rc = tls_dir_make(crt_path);
    if (rc != 0) {
        return rc;
    }
    struct hsm_key *key = NULL;
    char *pem = malloc(TLS_PEM_MAX);
    size_t pem_len = 0;
    bool made = false;
    rc = pem == NULL ? -ENOMEM : hsm_soft_generate(&key, tmp_path, HSM_KEY_P256);
    made = rc == 0;
    if (rc == 0) {
        rc = leaf_pem(pem, TLS_PEM_MAX, &pem_len, ca, key, names, num_names, now_s);
    }
    /* The key first (hsm_soft_generate fsynced it); the certificate's atomic write fsyncs their
     * common directory, which makes both renames durable. */
    if (rc == 0 && rename(tmp_path, key_path) == -1) {
        rc = -errno;
    }
    if (rc == 0) {
        made = false;
        rc = base_file_write_atomic(crt_path, pem, pem_len, 0644, false);
    }
    if (made) {
        (void)unlink(tmp_path);
    }
    hsm_key_free(key);
    free(pem);
    return rc;
}

int signer_cert_sans_format(char *out, size_t cap, const uint8_t *der, size_t der_len)
{
    ASSERT(out != NULL);
    ASSERT(cap > 0);
    const uint8_t *p = der;
    X509 *x = d2i_X509(NULL, &p, (long)der_len);
    if (x == NULL) {
        ERR_clear_error();
        return -EBADMSG;
    }
    GENERAL_NAMES *gns = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    X509_free(x);
    ERR_clear_error();
    if (gns == NULL) {
        return -ENOENT;
    }
    size_t n = 0;
    out[0] = '\0';
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < sk_GENERAL_NAME_num(gns); i++) {
        const GENERAL_NAME *gn = sk_GENERAL_NAME_value(gns, i);
        const char *prefix = gn->type == GEN_URI     ? "URI:"
                             : gn->type == GEN_DNS   ? "DNS:"
                             : gn->type == GEN_EMAIL ? "email:"
                                                     : NULL;
        int m = prefix == NULL ? snprintf(out + n, cap - n, "%sother", n > 0 ? ", " : "")
                               : snprintf(out + n, cap - n, "%s%s%.*s", n > 0 ? ", " : "", prefix,
                                          ASN1_STRING_length(gn->d.ia5),
                                          (const char *)ASN1_STRING_get0_data(gn->d.ia5));
        if (m < 0 || (size_t)m >= cap - n) {
            rc = -E2BIG;
        } else {
            n += (size_t)m;
        }
    }
    GENERAL_NAMES_free(gns);
    return rc;
}
