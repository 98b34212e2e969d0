/* Certificate descriptions and PEM for the admin tools. Not on the request path: allocating
 * BoringSSL objects here is fine. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/base64.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec_key.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/mem.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "base/base.h"
#include "signer/signer.h"

static void name_line(char *out, size_t cap, X509_NAME *name)
{
    BIO *bio = BIO_new(BIO_s_mem());
    out[0] = '\0';
    if (bio == NULL) {
        return;
    }
    if (X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253) >= 0) {
        const uint8_t *p = NULL;
        size_t len = 0;
        if (BIO_mem_contents(bio, &p, &len) == 1) {
            len = len < cap - 1 ? len : cap - 1;
            memcpy(out, p, len);
            out[len] = '\0';
        }
    }
    BIO_free(bio);
}

bool signer_asn1_time_unix(const ASN1_TIME *t, int64_t *out)
{
    ASN1_TIME *epoch = ASN1_TIME_set(NULL, 0);
    int days = 0;
    int secs = 0;
    bool ok = t != NULL && epoch != NULL && ASN1_TIME_diff(&days, &secs, epoch, t) == 1;
    ASN1_TIME_free(epoch);
    *out = ok ? (int64_t)days * 86400 + secs : 0;
    return ok;
}

static void key_name(char *out, size_t cap, EVP_PKEY *pkey)
{
    switch (EVP_PKEY_id(pkey)) {
    case EVP_PKEY_RSA:
        snprintf(out, cap, "RSA-%u", EVP_PKEY_bits(pkey));
        break;
    case EVP_PKEY_EC:
        snprintf(out, cap, "EC P-%u", EVP_PKEY_bits(pkey));
        break;
    case EVP_PKEY_ED25519:
        snprintf(out, cap, "Ed25519");
        break;
    default:
        snprintf(out, cap, "unknown");
        break;
    }
}

static void first_san(char *out, size_t cap, X509 *x)
{
    out[0] = '\0';
    GENERAL_NAMES *names = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    if (names == NULL) {
        return;
    }
    if (sk_GENERAL_NAME_num(names) > 0) {
        const GENERAL_NAME *gn = sk_GENERAL_NAME_value(names, 0);
        const char *prefix = gn->type == GEN_URI     ? "URI:"
                             : gn->type == GEN_DNS   ? "DNS:"
                             : gn->type == GEN_EMAIL ? "email:"
                                                     : NULL;
        if (prefix != NULL) {
            const ASN1_IA5STRING *s = gn->d.ia5;
            snprintf(out, cap, "%s%.*s", prefix, (int)ASN1_STRING_length(s),
                     (const char *)ASN1_STRING_get0_data(s));
        }
    }
    GENERAL_NAMES_free(names);
}

int signer_cert_info_der(struct signer_cert_info *out, const uint8_t *der, size_t der_len)
{
    ASSERT(out != NULL);
    ASSERT(der != NULL);
    const uint8_t *p = der;
    X509 *x = d2i_X509(NULL, &p, (long)der_len);
    if (x == NULL || p != der + der_len) {
        X509_free(x);
        return -EBADMSG;
    }
    memset(out, 0, sizeof(*out));
    name_line(out->subject, sizeof(out->subject), X509_get_subject_name(x));
    name_line(out->issuer, sizeof(out->issuer), X509_get_issuer_name(x));
    BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
    char *hex = bn != NULL ? BN_bn2hex(bn) : NULL;
    const char *digits = hex != NULL ? hex : "?";
    while (digits[0] == '0' && digits[1] != '\0') { /* no leading zeros (README, serials) */
        digits++;
    }
    (void)base_str_copy(out->serial, sizeof(out->serial), digits);
    for (char *c = out->serial; *c != '\0'; c++) { /* BoringSSL writes lower case */
        *c = *c >= 'a' && *c <= 'f' ? (char)(*c - 'a' + 'A') : *c;
    }
    OPENSSL_free(hex);
    BN_free(bn);
    (void)signer_asn1_time_unix(X509_get0_notBefore(x), &out->not_before_s); /* 0: unreadable */
    (void)signer_asn1_time_unix(X509_get0_notAfter(x), &out->not_after_s);
    EVP_PKEY *pkey = X509_get_pubkey(x);
    if (pkey != NULL) {
        key_name(out->key, sizeof(out->key), pkey);
    }
    EVP_PKEY_free(pkey);
    first_san(out->san, sizeof(out->san), x);
    uint8_t md[SHA256_DIGEST_LENGTH];
    SHA256(der, der_len, md);
    base_hex_encode(out->sha256, sizeof(out->sha256), md, sizeof(md));
    X509_free(x);
    return 0;
}

int signer_pem_read_cert(uint8_t *out, size_t cap, size_t *out_len, const char *path, size_t index)
{
    ASSERT(out != NULL);
    ASSERT(out_len != NULL);
    BIO *bio = BIO_new_file(path, "r");
    if (bio == NULL) {
        return -ENOENT;
    }
    int rc = -ENOENT;
    for (size_t i = 0; i <= index; i++) {
        X509 *x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
        if (x == NULL) {
            break;
        }
        if (i == index) {
            int len = i2d_X509(x, NULL);
            if (len <= 0) {
                rc = -EBADMSG;
            } else if ((size_t)len > cap) {
                rc = -E2BIG;
            } else {
                uint8_t *w = out;
                int written = i2d_X509(x, &w);
                ASSERT(written == len);
                *out_len = (size_t)len;
                rc = 0;
            }
        }
        X509_free(x);
    }
    BIO_free(bio);
    return rc;
}

int signer_pem_encode(char *out, size_t cap, size_t *out_len, const char *label, const uint8_t *der,
                      size_t der_len)
{
    ASSERT(out != NULL);
    ASSERT(label != NULL);
    size_t b64_len = 0;
    if (EVP_EncodedLength(&b64_len, der_len) != 1) {
        return -E2BIG;
    }
    /* 64 characters a line (RFC 7468), one newline each, header and footer. */
    size_t need = b64_len + b64_len / 64 + 2 + 2 * (strlen(label) + 17) + 1;
    if (need > cap) {
        return -E2BIG;
    }
    size_t pos = (size_t)snprintf(out, cap, "-----BEGIN %s-----\n", label);
    for (size_t off = 0; off < der_len; off += 48) {
        size_t chunk = der_len - off < 48 ? der_len - off : 48;
        pos += EVP_EncodeBlock((uint8_t *)out + pos, der + off, chunk);
        out[pos++] = '\n';
    }
    pos += (size_t)snprintf(out + pos, cap - pos, "-----END %s-----\n", label);
    ASSERT(pos < cap);
    *out_len = pos;
    return 0;
}

/* uri_san copies the one subjectAltName of type URI of `x` into `out`. Returns 0 or -EBADMSG
 * (none, more than one, empty, too long, or a NUL in it). */
static int uri_san(char *out, size_t cap, X509 *x)
{
    GENERAL_NAMES *names = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    if (names == NULL) {
        return -EBADMSG;
    }
    int rc = -EBADMSG;
    size_t found = 0;
    for (size_t i = 0; i < sk_GENERAL_NAME_num(names); i++) {
        const GENERAL_NAME *gn = sk_GENERAL_NAME_value(names, i);
        if (gn->type != GEN_URI) {
            continue;
        }
        found++;
        const ASN1_IA5STRING *s = gn->d.uniformResourceIdentifier;
        size_t len = (size_t)ASN1_STRING_length(s);
        const uint8_t *data = ASN1_STRING_get0_data(s);
        rc = len > 0 && len < cap && memchr(data, '\0', len) == NULL ? 0 : -EBADMSG;
        if (rc == 0) {
            memcpy(out, data, len);
            out[len] = '\0';
        }
    }
    GENERAL_NAMES_free(names);
    return found == 1 ? rc : -EBADMSG;
}

int signer_client_cert_identity(char *out_uri, size_t cap, const uint8_t *der, size_t der_len,
                                int64_t now_s)
{
    ASSERT(out_uri != NULL);
    ASSERT(cap > 0);
    ASSERT(der != NULL);
    const uint8_t *p = der;
    X509 *x = d2i_X509(NULL, &p, (long)der_len);
    int rc = x != NULL && p == der + der_len ? 0 : -EBADMSG;
    char uri[STORE_URI_MAX + 1];
    rc = rc != 0 ? rc : uri_san(uri, sizeof(uri), x);
    if (rc == 0) {
        int64_t nb = 0;
        int64_t na = 0;
        (void)signer_asn1_time_unix(X509_get0_notBefore(x), &nb); /* 0: unreadable */
        (void)signer_asn1_time_unix(X509_get0_notAfter(x), &na);
        rc = now_s < nb || now_s > na ? -EKEYEXPIRED : 0;
    }
    X509_free(x);
    ERR_clear_error();
    if (rc == 0 && base_str_copy(out_uri, cap, uri) != 0) {
        rc = -EBADMSG;
    }
    ASSERT(rc != 0 || out_uri[0] != '\0');
    return rc;
}

void signer_sha256_hex(char out[65], const void *data, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    ASSERT(out != NULL);
    ASSERT(data != NULL || len == 0);
    uint8_t md[SHA256_DIGEST_LENGTH];
    SHA256(data, len, md);
    for (size_t i = 0; i < sizeof(md); i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[64] = '\0';
}

#ifndef CERTPROV_BORINGSSL_SOURCE
#define CERTPROV_BORINGSSL_SOURCE "" /* the Makefile passes debian/changelog's version */
#endif
#define CP_STR2(x) #x
#define CP_STR(x) CP_STR2(x)

const char *signer_crypto_version(void)
{
    return CERTPROV_BORINGSSL_SOURCE[0] != '\0'
               ? "API " CP_STR(BORINGSSL_API_VERSION) " (" CERTPROV_BORINGSSL_SOURCE ")"
               : "API " CP_STR(BORINGSSL_API_VERSION);
}
