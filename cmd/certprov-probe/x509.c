/* certprov-probe: certificates with BoringSSL: trust files, the chain check that names the
 * missing link, keys and CSRs, the issued certificate's checks, and the answers that carry a
 * certificate (SOAP BinarySecurityToken, EST certs-only PKCS#7). */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <openssl/base64.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/bytestring.h>
#include <openssl/ec_key.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/mem.h>
#include <openssl/nid.h>
#include <openssl/pem.h>
#include <openssl/pkcs7.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "base/base.h"
#include "cmd/certprov-probe/probe.h"
#include "signer/signer.h"

#define X_FILE_MAX (256u * 1024u) /* a trust file */
#define X_DER_MAX (16u * 1024u)   /* one certificate */
#define X_NAME_MAX 256u

int probe_certs_read_pem(STACK_OF(X509) * *out, const uint8_t *pem, size_t len)
{
    ASSERT(len <= INT32_MAX);
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    STACK_OF(X509) *sk = sk_X509_new_null();
    int rc = -EBADMSG;
    if (bio == NULL || sk == NULL) {
        rc = -ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < PROBE_CERTS_MAX; i++) {
        X509 *x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
        if (x == NULL) {
            break;
        }
        if (!sk_X509_push(sk, x)) {
            X509_free(x);
            rc = -ENOMEM;
            goto out;
        }
    }
    /* The end of the input reads as "no start line"; anything else is a damaged block. */
    uint32_t e = ERR_peek_last_error();
    bool clean_end =
        e == 0 || (ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE);
    ERR_clear_error();
    if (sk_X509_num(sk) > 0 && clean_end) {
        *out = sk;
        sk = NULL;
        rc = 0;
    }
out:
    sk_X509_pop_free(sk, X509_free);
    BIO_free(bio);
    return rc;
}

int probe_certs_read_file(STACK_OF(X509) * *out, const char *path)
{
    static uint8_t buf[X_FILE_MAX];
    size_t len = 0;
    int rc = base_file_read(buf, &len, sizeof(buf), path);
    if (rc != 0) {
        return rc;
    }
    return probe_certs_read_pem(out, buf, len);
}

void probe_name(char *out, size_t cap, const X509_NAME *name)
{
    ASSERT(cap > 0);
    out[0] = '\0';
    BIO *bio = BIO_new(BIO_s_mem());
    if (bio == NULL) {
        return;
    }
    if (X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253) >= 0) {
        const uint8_t *p = NULL;
        size_t len = 0;
        if (BIO_mem_contents(bio, &p, &len)) {
            len = len < cap - 1 ? len : cap - 1;
            memcpy(out, p, len);
            out[len] = '\0';
        }
    }
    BIO_free(bio);
}

/* time_text writes an ASN1_TIME as "YYYY-MM-DDTHH:MM:SSZ". */
static void time_text(char out[CLOCK_UTC_LEN], const ASN1_TIME *t)
{
    int64_t s = 0;
    if (!signer_asn1_time_unix(t, &s)) {
        (void)base_str_copy(out, CLOCK_UTC_LEN, "(unreadable)");
        return;
    }
    clock_format_utc(out, s);
}

static void fingerprint(char *out, size_t cap, X509 *x)
{
    uint8_t md[EVP_MAX_MD_SIZE];
    unsigned len = 0;
    if (!X509_digest(x, EVP_sha256(), md, &len)) {
        (void)base_str_copy(out, cap, "?");
        return;
    }
    base_hex_encode(out, cap, md, len > 8 ? 8 : len); /* enough to tell two apart */
}

static bool self_signed(X509 *x)
{
    return X509_NAME_cmp(X509_get_subject_name(x), X509_get_issuer_name(x)) == 0 &&
           X509_check_issued(x, x) == X509_V_OK;
}

STACK_OF(X509) * probe_self_signed_only(STACK_OF(X509) * in)
{
    STACK_OF(X509) *out = sk_X509_new_null();
    for (size_t i = 0; out != NULL && i < sk_X509_num(in); i++) {
        X509 *x = sk_X509_value(in, i);
        if (self_signed(x) && sk_X509_push(out, x)) {
            X509_up_ref(x);
        }
    }
    return out;
}

/* role names a certificate of a chain by its place. */
static const char *role(X509 *x, int depth)
{
    if (depth == 0) {
        return "the server's certificate";
    }
    return self_signed(x) ? "the root CA" : "the issuing CA";
}

/* san_list writes the DNS and IP subjectAltNames of x ("DNS:a, IP:b") into out. */
static void san_list(char *out, size_t cap, X509 *x)
{
    out[0] = '\0';
    GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    size_t len = 0;
    for (size_t i = 0; gens != NULL && i < sk_GENERAL_NAME_num(gens); i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
        char one[X_NAME_MAX] = "";
        if (g->type == GEN_DNS) {
            probe_fmt(one, sizeof(one), "DNS:%.*s", (int)ASN1_STRING_length(g->d.dNSName),
                      (const char *)ASN1_STRING_get0_data(g->d.dNSName));
        } else if (g->type == GEN_IPADD && ASN1_STRING_length(g->d.iPAddress) == 4) {
            const uint8_t *a = ASN1_STRING_get0_data(g->d.iPAddress);
            probe_fmt(one, sizeof(one), "IP:%u.%u.%u.%u", a[0], a[1], a[2], a[3]);
        } else if (g->type == GEN_IPADD) {
            probe_fmt(one, sizeof(one), "IP:(IPv6)");
        }
        if (one[0] != '\0' && len + strlen(one) + 3 < cap) {
            len += (size_t)snprintf(out + len, cap - len, "%s%s", len > 0 ? ", " : "", one);
        }
    }
    GENERAL_NAMES_free(gens);
    if (out[0] == '\0') {
        (void)base_str_copy(out, cap, "no DNS or IP name");
    }
}

/* missing_issuer explains X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT*: x's issuer was found neither in
 * what the server sent nor in the trust. A trusted certificate of the issuer's name but another
 * key (another CA that took the same name: a re-initialised appliance) is named. */
static void missing_issuer(char *why, size_t why_len, X509 *x, int depth, STACK_OF(X509) * roots,
                           const char *trust_label)
{
    char subj[X_NAME_MAX];
    char iss[X_NAME_MAX];
    probe_name(subj, sizeof(subj), X509_get_subject_name(x));
    probe_name(iss, sizeof(iss), X509_get_issuer_name(x));
    X509 *same_name = NULL;
    for (size_t i = 0; i < sk_X509_num(roots); i++) {
        X509 *r = sk_X509_value(roots, i);
        if (X509_NAME_cmp(X509_get_subject_name(r), X509_get_issuer_name(x)) == 0) {
            same_name = r;
            break;
        }
    }
    int n = snprintf(why, why_len,
                     "the issuer \"%s\" of %s \"%s\" is missing: the server did not send it and "
                     "%s does not hold it",
                     iss, role(x, depth), subj, trust_label);
    if (same_name != NULL && n > 0 && (size_t)n < why_len) {
        char fp[40];
        fingerprint(fp, sizeof(fp), same_name);
        probe_fmt(why + n, why_len - (size_t)n,
                  "; %s holds a certificate of that name (SHA-256 %s...) with another key: "
                  "another CA of the same name (a re-initialised appliance?)",
                  trust_label, fp);
    }
}

/* explain writes the verification failure `err` at `x` (depth) in words. */
static void explain(char *why, size_t why_len, int err, X509 *x, int depth, STACK_OF(X509) * roots,
                    const char *host, const char *trust_label)
{
    char subj[X_NAME_MAX] = "?";
    char when[CLOCK_UTC_LEN];
    if (x != NULL) {
        probe_name(subj, sizeof(subj), X509_get_subject_name(x));
    }
    switch (err) {
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
        if (x != NULL) {
            missing_issuer(why, why_len, x, depth, roots, trust_label);
            return;
        }
        break;
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT: {
        char fp[40] = "?";
        if (x != NULL) {
            fingerprint(fp, sizeof(fp), x);
        }
        probe_fmt(why, why_len,
                  "the root \"%s\" (SHA-256 %s...) that the server sent is not in %s: not a root "
                  "this client trusts",
                  subj, fp, trust_label);
        return;
    }
    case X509_V_ERR_CERT_HAS_EXPIRED:
        time_text(when, x != NULL ? X509_get0_notAfter(x) : NULL);
        probe_fmt(why, why_len, "%s \"%s\" expired at %s", role(x, depth), subj, when);
        return;
    case X509_V_ERR_CERT_NOT_YET_VALID:
        time_text(when, x != NULL ? X509_get0_notBefore(x) : NULL);
        probe_fmt(why, why_len,
                  "%s \"%s\" is not valid before %s (or this machine's clock is behind)",
                  role(x, depth), subj, when);
        return;
    case X509_V_ERR_HOSTNAME_MISMATCH:
    case X509_V_ERR_IP_ADDRESS_MISMATCH: {
        char sans[PROBE_TEXT_MAX / 2];
        san_list(sans, sizeof(sans), x);
        probe_fmt(why, why_len, "the server's certificate \"%s\" names %s, not %s", subj, sans,
                  host != NULL ? host : "?");
        return;
    }
    case X509_V_ERR_CERT_SIGNATURE_FAILURE:
        probe_fmt(why, why_len,
                  "the signature on %s \"%s\" does not verify with its issuer's key (a CA of the "
                  "same name but another key?)",
                  role(x, depth), subj);
        return;
    default:
        break;
    }
    probe_fmt(why, why_len, "%s \"%s\": %s", x != NULL ? role(x, depth) : "the chain", subj,
              X509_verify_cert_error_string(err));
}

static bool is_ip_literal(const char *host)
{
    return strchr(host, ':') != NULL || strspn(host, "0123456789.") == strlen(host);
}

/* verify runs X509_verify_cert of `leaf` with `untrusted` against `roots` for `purpose`. */
static int verify(char *why, size_t why_len, int *out_err, X509 *leaf, STACK_OF(X509) * untrusted,
                  STACK_OF(X509) * roots, int purpose, const char *host, const char *trust_label)
{
    X509_STORE *store = X509_STORE_new();
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    int rc = -EPERM;
    if (store == NULL || ctx == NULL) {
        probe_fmt(why, why_len, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < sk_X509_num(roots); i++) {
        if (!X509_STORE_add_cert(store, sk_X509_value(roots, i))) {
            ERR_clear_error(); /* a duplicate */
        }
    }
    if (!X509_STORE_CTX_init(ctx, store, leaf, untrusted)) {
        probe_fmt(why, why_len, "cannot start the chain check");
        goto out;
    }
    X509_VERIFY_PARAM *param = X509_STORE_CTX_get0_param(ctx);
    if (host != NULL) {
        int ok = is_ip_literal(host) ? X509_VERIFY_PARAM_set1_ip_asc(param, host)
                                     : X509_VERIFY_PARAM_set1_host(param, host, strlen(host));
        if (!ok) {
            probe_fmt(why, why_len, "'%s' is not a host name or IP address", host);
            goto out;
        }
    }
    if (!X509_STORE_CTX_set_purpose(ctx, purpose)) {
        probe_fmt(why, why_len, "cannot set the purpose");
        goto out;
    }
    if (X509_verify_cert(ctx) == 1) {
        rc = 0;
        goto out;
    }
    int err = X509_STORE_CTX_get_error(ctx);
    *out_err = err;
    int depth = X509_STORE_CTX_get_error_depth(ctx);
    X509 *cur = X509_STORE_CTX_get_current_cert(ctx);
    STACK_OF(X509) *built = X509_STORE_CTX_get0_chain(ctx);
    if (cur == NULL && built != NULL && depth >= 0 && (size_t)depth < sk_X509_num(built)) {
        cur = sk_X509_value(built, (size_t)depth);
    }
    if (cur == NULL && depth == 0) {
        cur = leaf;
    }
    explain(why, why_len, err, cur, depth, roots, host, trust_label);
out:
    ERR_clear_error();
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(store);
    return rc;
}

int probe_chain_check(char *why, size_t why_len, int *out_x509_err, STACK_OF(X509) * chain,
                      STACK_OF(X509) * roots, const char *host, const char *trust_label)
{
    ASSERT(why_len > 0);
    *out_x509_err = X509_V_OK;
    if (chain == NULL || sk_X509_num(chain) == 0) {
        probe_fmt(why, why_len, "the server sent no certificate");
        return -EPERM;
    }
    why[0] = '\0';
    return verify(why, why_len, out_x509_err, sk_X509_value(chain, 0), chain, roots,
                  X509_PURPOSE_SSL_SERVER, host, trust_label);
}

int probe_key_type_parse(enum probe_key_type *out, const char *name)
{
    static const struct {
        const char *name;
        enum probe_key_type type;
    } types[] = {
        {"p256", PROBE_KEY_P256},       {"p384", PROBE_KEY_P384},
        {"rsa2048", PROBE_KEY_RSA2048}, {"rsa1024", PROBE_KEY_RSA1024},
        {"ed25519", PROBE_KEY_ED25519},
    };
    for (size_t i = 0; i < ARRAY_LEN(types); i++) {
        if (strcmp(name, types[i].name) == 0) {
            *out = types[i].type;
            return 0;
        }
    }
    return -EINVAL;
}

static EVP_PKEY *key_ec(int nid)
{
    EVP_PKEY *pkey = EVP_PKEY_new();
    EC_KEY *ec = EC_KEY_new_by_curve_name(nid);
    if (pkey == NULL || ec == NULL || !EC_KEY_generate_key(ec) ||
        !EVP_PKEY_assign_EC_KEY(pkey, ec)) {
        EC_KEY_free(ec);
        EVP_PKEY_free(pkey);
        return NULL;
    }
    return pkey;
}

static EVP_PKEY *key_rsa(unsigned bits)
{
    EVP_PKEY *pkey = EVP_PKEY_new();
    RSA *rsa = RSA_new();
    BIGNUM *e = BN_new();
    if (pkey == NULL || rsa == NULL || e == NULL || !BN_set_word(e, RSA_F4) ||
        !RSA_generate_key_ex(rsa, (int)bits, e, NULL) || !EVP_PKEY_assign_RSA(pkey, rsa)) {
        BN_free(e);
        RSA_free(rsa);
        EVP_PKEY_free(pkey);
        return NULL;
    }
    BN_free(e);
    return pkey;
}

EVP_PKEY *probe_key_new(enum probe_key_type type)
{
    switch (type) {
    case PROBE_KEY_P256:
        return key_ec(NID_X9_62_prime256v1);
    case PROBE_KEY_P384:
        return key_ec(NID_secp384r1);
    case PROBE_KEY_RSA2048:
        return key_rsa(2048);
    case PROBE_KEY_RSA1024:
        return key_rsa(1024);
    case PROBE_KEY_ED25519: {
        EVP_PKEY *pkey = NULL;
        EVP_PKEY_CTX *kctx = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, NULL);
        if (kctx == NULL || !EVP_PKEY_keygen_init(kctx) || !EVP_PKEY_keygen(kctx, &pkey)) {
            pkey = NULL;
        }
        EVP_PKEY_CTX_free(kctx);
        return pkey;
    }
    }
    ASSERT(!"unknown key type");
    return NULL;
}

int probe_csr_new(uint8_t *out, size_t *out_len, size_t cap, EVP_PKEY *key, const char *cn)
{
    int rc = -EIO;
    X509_REQ *req = X509_REQ_new();
    X509_NAME *name = X509_NAME_new();
    uint8_t *der = NULL;
    const EVP_MD *md = EVP_PKEY_id(key) == EVP_PKEY_ED25519 ? NULL : EVP_sha256();
    if (req == NULL || name == NULL) {
        goto out;
    }
    if (cn != NULL &&
        !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const uint8_t *)cn, -1, -1, 0)) {
        goto out;
    }
    if (!X509_REQ_set_version(req, X509_REQ_VERSION_1) || !X509_REQ_set_subject_name(req, name) ||
        !X509_REQ_set_pubkey(req, key) || !X509_REQ_sign(req, key, md)) {
        goto out;
    }
    int len = i2d_X509_REQ(req, &der);
    if (len <= 0) {
        goto out;
    }
    if ((size_t)len > cap) {
        rc = -E2BIG;
        goto out;
    }
    memcpy(out, der, (size_t)len);
    *out_len = (size_t)len;
    rc = 0;
out:
    ERR_clear_error();
    OPENSSL_free(der);
    X509_NAME_free(name);
    X509_REQ_free(req);
    return rc;
}

/* b64_decode decodes base64 text with whitespace anywhere into out (cap bytes). */
static int b64_decode(uint8_t *out, size_t *out_len, size_t cap, const char *text, size_t len)
{
    static char clean[X_DER_MAX * 2];
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        char ch = text[i];
        if (ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n') {
            continue;
        }
        if (n == sizeof(clean)) {
            return -E2BIG;
        }
        clean[n++] = ch;
    }
    size_t max = 0;
    if (!EVP_DecodedLength(&max, n) || max > cap ||
        !EVP_DecodeBase64(out, out_len, cap, (const uint8_t *)clean, n)) {
        return -EBADMSG;
    }
    return 0;
}

X509 *probe_soap_cert(const char *xml)
{
    const char *el = strstr(xml, "BinarySecurityToken");
    if (el == NULL || strstr(el, "#X509v3") == NULL) {
        return NULL;
    }
    const char *start = strchr(el, '>');
    const char *end = start != NULL ? strchr(start, '<') : NULL;
    if (end == NULL) {
        return NULL;
    }
    static uint8_t der[X_DER_MAX];
    size_t len = 0;
    if (b64_decode(der, &len, sizeof(der), start + 1, (size_t)(end - start - 1)) != 0) {
        return NULL;
    }
    const uint8_t *p = der;
    X509 *x = d2i_X509(NULL, &p, (long)len);
    ERR_clear_error();
    return x;
}

/* xml_text copies the text of the first <tag>...</tag> into out, XML entities decoded. */
static void xml_text(char *out, size_t cap, const char *xml, const char *tag)
{
    char open[40];
    char close[40];
    probe_fmt(open, sizeof(open), "<%s>", tag);
    probe_fmt(close, sizeof(close), "</%s>", tag);
    out[0] = '\0';
    const char *s = strstr(xml, open);
    const char *e = s != NULL ? strstr(s, close) : NULL;
    if (e == NULL) {
        return;
    }
    static const struct {
        const char *ent;
        char ch;
    } ents[] = {{"&lt;", '<'}, {"&gt;", '>'}, {"&amp;", '&'}, {"&quot;", '"'}, {"&apos;", '\''}};
    size_t n = 0;
    for (const char *p = s + strlen(open); p < e && n + 1 < cap;) {
        char ch = *p++;
        for (size_t i = 0; ch == '&' && i < ARRAY_LEN(ents); i++) {
            size_t l = strlen(ents[i].ent);
            if (strncmp(p - 1, ents[i].ent, l) == 0) {
                ch = ents[i].ch;
                p += l - 1;
                break;
            }
        }
        out[n++] = ch;
    }
    out[n] = '\0';
}

void probe_soap_error(char *code, size_t code_len, char *reason, size_t reason_len, const char *xml)
{
    xml_text(code, code_len, xml, "Code");
    xml_text(reason, reason_len, xml, "Reason");
}

X509 *probe_est_cert(const uint8_t *b64, size_t len)
{
    static uint8_t der[X_DER_MAX * 2];
    size_t der_len = 0;
    if (b64_decode(der, &der_len, sizeof(der), (const char *)b64, len) != 0) {
        return NULL;
    }
    STACK_OF(X509) *sk = sk_X509_new_null();
    CBS cbs;
    CBS_init(&cbs, der, der_len);
    X509 *x = NULL;
    if (sk != NULL && PKCS7_get_certificates(sk, &cbs) && sk_X509_num(sk) > 0) {
        x = sk_X509_shift(sk);
    }
    sk_X509_pop_free(sk, X509_free);
    ERR_clear_error();
    return x;
}

int probe_cert_uri(char *out, size_t cap, X509 *cert)
{
    GENERAL_NAMES *gens = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    int rc = -ENOENT;
    for (size_t i = 0; gens != NULL && i < sk_GENERAL_NAME_num(gens); i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
        if (g->type == GEN_URI) {
            int len = ASN1_STRING_length(g->d.uniformResourceIdentifier);
            if (len > 0 && (size_t)len < cap) {
                memcpy(out, ASN1_STRING_get0_data(g->d.uniformResourceIdentifier), (size_t)len);
                out[len] = '\0';
                rc = 0;
            }
            break;
        }
    }
    GENERAL_NAMES_free(gens);
    return rc;
}

static const char *without_sip(const char *uri)
{
    return strncasecmp(uri, "sip:", 4) == 0 ? uri + 4 : uri;
}

int probe_cert_check(char *why, size_t why_len, char *serial, size_t serial_len, X509 *cert,
                     EVP_PKEY *key, STACK_OF(X509) * roots, STACK_OF(X509) * intermediates,
                     const char *want_uri)
{
    ASSERT(cert != NULL);
    ASSERT(serial_len >= 2);
    uint8_t sbuf[64];
    const ASN1_INTEGER *ai = X509_get0_serialNumber(cert);
    size_t slen = (size_t)ASN1_STRING_length(ai);
    if (slen > sizeof(sbuf) || 2 * slen + 1 > serial_len) {
        probe_fmt(why, why_len, "the serial number is longer than 64 bytes");
        return -EPERM;
    }
    memcpy(sbuf, ASN1_STRING_get0_data(ai), slen);
    (void)base_serial_hex(serial, serial_len, sbuf, slen);
    char uri[PROBE_URI_MAX] = "";
    bool has_uri = probe_cert_uri(uri, sizeof(uri), cert) == 0;
    if (key != NULL && !X509_check_private_key(cert, key)) {
        ERR_clear_error();
        probe_fmt(why, why_len, "the certificate %s does not carry the key the probe sent", serial);
        return -EPERM;
    }
    if ((X509_get_extension_flags(cert) & EXFLAG_XKUSAGE) == 0 ||
        (X509_get_extended_key_usage(cert) & XKU_SSL_CLIENT) == 0) {
        probe_fmt(why, why_len, "the certificate %s lacks extendedKeyUsage clientAuth", serial);
        return -EPERM;
    }
    if (want_uri != NULL &&
        (!has_uri || strcasecmp(without_sip(uri), without_sip(want_uri)) != 0)) {
        probe_fmt(why, why_len, "the certificate %s names %s%s, not %s", serial,
                  has_uri ? "URI:" : "", has_uri ? uri : "no URI", want_uri);
        return -EPERM;
    }
    char sub[PROBE_TEXT_MAX / 2];
    int err = X509_V_OK;
    if (verify(sub, sizeof(sub), &err, cert, intermediates, roots, X509_PURPOSE_SSL_CLIENT, NULL,
               "the trusted roots") != 0) {
        probe_fmt(why, why_len, "the certificate %s does not verify: %s", serial, sub);
        return -EPERM;
    }
    char nb[CLOCK_UTC_LEN];
    char na[CLOCK_UTC_LEN];
    time_text(nb, X509_get0_notBefore(cert));
    time_text(na, X509_get0_notAfter(cert));
    probe_fmt(why, why_len, "serial %s, URI:%s, valid %s .. %s, clientAuth, verifies to the root",
              serial, has_uri ? uri : "(none)", nb, na);
    return 0;
}
