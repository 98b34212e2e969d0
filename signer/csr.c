/* csr: CSR intake. Decodes DER, PEM or base64 text; walks the PKCS#10 CertificationRequest
 * (RFC 2986 §4) with CBS, never by hand; applies the key and signature-algorithm policy of
 * README, The certificate; checks proof of possession and the identity named by the request.
 *
 * Nothing here allocates except BoringSSL while it decodes one public key, and every object it
 * makes is freed before return. Every loop is bounded by its input, which is bounded by
 * SIGNER_CSR_TEXT_MAX or SIGNER_CSR_DER_MAX, and by the SIGNER_CSR_*_MAX counts. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/bytestring.h>
#include <openssl/digest.h>
#include <openssl/ec.h>
#include <openssl/ec_key.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/nid.h>
#include <openssl/obj.h>
#include <openssl/rsa.h>

#include "base/base.h"
#include "signer/signer.h"

#define RSA_BITS_MIN 2048
#define RSA_BITS_MAX 4096
#define RSA_EXPONENT 65537

/* [0] IMPLICIT Attributes of the CertificationRequestInfo (RFC 2986 §4.1). */
#define TAG_ATTRIBUTES (CBS_ASN1_CONTEXT_SPECIFIC | CBS_ASN1_CONSTRUCTED | 0)

/* ---- helpers ---- */

static int refuse(enum signer_reject *out_reason, int rc, enum signer_reject reason)
{
    ASSERT(rc < 0);
    ASSERT(reason != SIGNER_REJECT_NONE);
    *out_reason = reason;
    return rc;
}

static int malformed(enum signer_reject *out_reason)
{
    return refuse(out_reason, -EBADMSG, SIGNER_REJECT_CSR_MALFORMED);
}

static int too_complex(enum signer_reject *out_reason)
{
    return refuse(out_reason, -E2BIG, SIGNER_REJECT_CSR_TOO_COMPLEX);
}

static bool ascii_space(uint8_t c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

static uint8_t ascii_lower(uint8_t c)
{
    return (c >= 'A' && c <= 'Z') ? (uint8_t)(c - 'A' + 'a') : c;
}

/* ascii_case_equal compares two byte strings, ignoring ASCII case only (no locale). */
static bool ascii_case_equal(const uint8_t *a, size_t a_len, const char *b)
{
    size_t b_len = strlen(b);
    if (a_len != b_len) {
        return false;
    }
    for (size_t i = 0; i < a_len; i++) {
        if (ascii_lower(a[i]) != ascii_lower((uint8_t)b[i])) {
            return false;
        }
    }
    return true;
}

static bool has_prefix(const uint8_t *p, size_t len, const char *prefix)
{
    size_t n = strlen(prefix);
    return len >= n && memcmp(p, prefix, n) == 0;
}

/* ---- decode ---- */

/* pem_body finds the base64 body of a PEM CERTIFICATE REQUEST (RFC 7468 §7; the "NEW" label is
 * what old Microsoft tools and phones write). Only whitespace may surround the block. Returns 0
 * with the body in *out_body, or -EBADMSG. */
static int pem_body(CBS *out_body, const uint8_t *in, size_t in_len)
{
    static const char *const labels[] = {"CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST"};
    static const char begin[] = "-----BEGIN ";
    static const char dashes[] = "-----";
    ASSERT(has_prefix(in, in_len, begin));
    const uint8_t *p = in + strlen(begin);
    size_t len = in_len - strlen(begin);
    for (size_t i = 0; i < ARRAY_LEN(labels); i++) {
        size_t label_len = strlen(labels[i]);
        if (!has_prefix(p, len, labels[i]) || !has_prefix(p + label_len, len - label_len, dashes)) {
            continue;
        }
        const uint8_t *body = p + label_len + strlen(dashes);
        size_t body_max = len - label_len - strlen(dashes);
        char end[64]; /* "-----END NEW CERTIFICATE REQUEST-----" */
        int n = snprintf(end, sizeof(end), "-----END %s-----", labels[i]);
        ASSERT(n > 0);
        ASSERT((size_t)n < sizeof(end));
        const uint8_t *e = memmem(body, body_max, end, (size_t)n);
        if (e == NULL) {
            return -EBADMSG;
        }
        const uint8_t *after = e + n;
        for (const uint8_t *q = after; q < in + in_len; q++) {
            if (!ascii_space(*q)) {
                return -EBADMSG;
            }
        }
        CBS_init(out_body, body, (size_t)(e - body));
        return 0;
    }
    return -EBADMSG;
}

int signer_csr_decode(uint8_t *out, size_t cap, size_t *out_len, enum signer_reject *out_reason,
                      const uint8_t *in, size_t in_len)
{
    ASSERT(out != NULL);
    ASSERT(out_len != NULL);
    ASSERT(out_reason != NULL);
    ASSERT(in != NULL || in_len == 0);
    if (in_len > SIGNER_CSR_TEXT_MAX) {
        return refuse(out_reason, -E2BIG, SIGNER_REJECT_CSR_TOO_LARGE);
    }
    if (in_len == 0) {
        return refuse(out_reason, -EBADMSG, SIGNER_REJECT_CSR_ENCODING); /* `in` may be NULL */
    }
    CBS text;
    CBS_init(&text, in, in_len);
    if (CBS_peek_asn1_tag(&text, CBS_ASN1_SEQUENCE)) {
        /* DER passes through; signer_csr_parse judges it. */
        if (in_len > cap) {
            return refuse(out_reason, -E2BIG, SIGNER_REJECT_CSR_TOO_LARGE);
        }
        memcpy(out, in, in_len);
        *out_len = in_len;
        *out_reason = SIGNER_REJECT_NONE;
        return 0;
    }
    size_t skip = 0;
    while (skip < in_len && ascii_space(in[skip])) {
        skip++;
    }
    if (has_prefix(in + skip, in_len - skip, "-----BEGIN ") &&
        pem_body(&text, in + skip, in_len - skip) != 0) {
        return refuse(out_reason, -EBADMSG, SIGNER_REJECT_CSR_ENCODING);
    }
    size_t len = 0;
    int rc = signer_base64_decode(out, cap, &len, (const char *)CBS_data(&text), CBS_len(&text),
                                  SIGNER_BASE64_SKIP_SPACE | SIGNER_BASE64_UNPADDED |
                                      SIGNER_BASE64_PUBLIC);
    if (rc == -E2BIG) {
        return refuse(out_reason, rc, SIGNER_REJECT_CSR_TOO_LARGE);
    }
    CBS der;
    CBS_init(&der, out, len);
    if (rc != 0 || !CBS_peek_asn1_tag(&der, CBS_ASN1_SEQUENCE)) {
        return refuse(out_reason, -EBADMSG, SIGNER_REJECT_CSR_ENCODING);
    }
    ASSERT(len <= cap);
    *out_len = len;
    *out_reason = SIGNER_REJECT_NONE;
    return 0;
}

/* ---- parse: the walk ---- */

/* directory_string reports whether `tag` is a DirectoryString choice (RFC 5280 §4.1.2.4) or the
 * IA5String some encoders use for CN. */
static bool directory_string(unsigned tag)
{
    return tag == CBS_ASN1_UTF8STRING || tag == CBS_ASN1_PRINTABLESTRING ||
           tag == CBS_ASN1_IA5STRING || tag == CBS_ASN1_T61STRING || tag == CBS_ASN1_BMPSTRING ||
           tag == CBS_ASN1_UNIVERSALSTRING;
}

/* parse_subject walks Name ::= SEQUENCE OF RelativeDistinguishedName (RFC 5280 §4.1.2.4).
 * SIGNER_CSR_RDNS_MAX bounds both the RDNs and the attribute values in them. */
static int parse_subject(struct signer_csr *csr, enum signer_reject *out_reason, CBS *info)
{
    ASSERT(csr->num_subject_rdns == 0);
    ASSERT(csr->subject_cn == NULL);
    CBS rdns;
    if (!CBS_get_asn1(info, &rdns, CBS_ASN1_SEQUENCE)) {
        return malformed(out_reason);
    }
    size_t num_avas = 0;
    while (CBS_len(&rdns) > 0) {
        CBS rdn;
        if (!CBS_get_asn1(&rdns, &rdn, CBS_ASN1_SET) || CBS_len(&rdn) == 0) {
            return malformed(out_reason);
        }
        if (++csr->num_subject_rdns > SIGNER_CSR_RDNS_MAX) {
            return too_complex(out_reason);
        }
        while (CBS_len(&rdn) > 0) {
            CBS ava, oid, value;
            unsigned tag = 0;
            if (!CBS_get_asn1(&rdn, &ava, CBS_ASN1_SEQUENCE) ||
                !CBS_get_asn1(&ava, &oid, CBS_ASN1_OBJECT) ||
                !CBS_get_any_asn1(&ava, &value, &tag) || CBS_len(&ava) != 0) {
                return malformed(out_reason);
            }
            if (++num_avas > SIGNER_CSR_RDNS_MAX) {
                return too_complex(out_reason);
            }
            if (OBJ_cbs2nid(&oid) != NID_commonName) {
                continue;
            }
            if (!directory_string(tag)) {
                return malformed(out_reason);
            }
            if (csr->num_subject_cns++ == 0) {
                csr->subject_cn = CBS_data(&value);
                csr->subject_cn_len = CBS_len(&value);
            }
        }
    }
    ASSERT(csr->num_subject_rdns <= SIGNER_CSR_RDNS_MAX);
    ASSERT(csr->num_subject_cns <= num_avas);
    return 0;
}

/* san_type maps a GeneralName tag (RFC 5280 §4.2.1.6) to our type. Returns -1 for a tag that is
 * not a GeneralName or has the wrong form: [0], [3], [4] and [5] are constructed, the rest
 * primitive. */
static int san_type(unsigned tag)
{
    if ((tag & CBS_ASN1_CLASS_MASK) != CBS_ASN1_CONTEXT_SPECIFIC) {
        return -1;
    }
    unsigned number = tag & CBS_ASN1_TAG_NUMBER_MASK;
    bool constructed = (tag & CBS_ASN1_CONSTRUCTED) != 0;
    bool want_constructed = number == 0 || number == 3 || number == 4 || number == 5;
    if (number > 8 || constructed != want_constructed) {
        return -1;
    }
    switch (number) {
    case 1:
        return SIGNER_SAN_EMAIL;
    case 2:
        return SIGNER_SAN_DNS;
    case 6:
        return SIGNER_SAN_URI;
    default:
        return SIGNER_SAN_OTHER;
    }
}

/* parse_san walks the subjectAltName extension value: GeneralNames ::= SEQUENCE SIZE (1..MAX)
 * OF GeneralName. */
static int parse_san(struct signer_csr *csr, enum signer_reject *out_reason, CBS *value)
{
    ASSERT(csr->num_sans == 0); /* parse_extensions lets one subjectAltName through */
    CBS names;
    if (!CBS_get_asn1(value, &names, CBS_ASN1_SEQUENCE) || CBS_len(value) != 0 ||
        CBS_len(&names) == 0) {
        return malformed(out_reason);
    }
    while (CBS_len(&names) > 0) {
        CBS name;
        unsigned tag = 0;
        if (!CBS_get_any_asn1(&names, &name, &tag)) {
            return malformed(out_reason);
        }
        int type = san_type(tag);
        if (type < 0) {
            return malformed(out_reason);
        }
        if (csr->num_sans == SIGNER_CSR_SANS_MAX) {
            return too_complex(out_reason);
        }
        csr->sans[csr->num_sans++] = (struct signer_san){
            .type = (enum signer_san_type)type,
            .value = CBS_data(&name),
            .value_len = CBS_len(&name),
        };
    }
    ASSERT(csr->num_sans > 0);
    ASSERT(csr->num_sans <= SIGNER_CSR_SANS_MAX);
    return 0;
}

/* parse_extensions walks Extensions ::= SEQUENCE OF Extension (RFC 5280 §4.1). The same
 * extension twice is malformed (§4.2): two SANs must not hide one another. */
static int parse_extensions(struct signer_csr *csr, enum signer_reject *out_reason, CBS *exts)
{
    ASSERT(csr->num_sans == 0);
    CBS seen[SIGNER_CSR_EXTS_MAX];
    size_t num_seen = 0;
    while (CBS_len(exts) > 0) {
        CBS ext, oid, value;
        if (!CBS_get_asn1(exts, &ext, CBS_ASN1_SEQUENCE) ||
            !CBS_get_asn1(&ext, &oid, CBS_ASN1_OBJECT)) {
            return malformed(out_reason);
        }
        int critical = 0;
        if (CBS_peek_asn1_tag(&ext, CBS_ASN1_BOOLEAN) && !CBS_get_asn1_bool(&ext, &critical)) {
            return malformed(out_reason);
        }
        if (!CBS_get_asn1(&ext, &value, CBS_ASN1_OCTETSTRING) || CBS_len(&ext) != 0) {
            return malformed(out_reason);
        }
        if (num_seen == SIGNER_CSR_EXTS_MAX) {
            return too_complex(out_reason);
        }
        for (size_t i = 0; i < num_seen; i++) {
            if (CBS_mem_equal(&seen[i], CBS_data(&oid), CBS_len(&oid))) {
                return malformed(out_reason);
            }
        }
        ASSERT(num_seen < ARRAY_LEN(seen));
        seen[num_seen++] = oid;
        if (OBJ_cbs2nid(&oid) == NID_subject_alt_name) {
            int rc = parse_san(csr, out_reason, &value);
            if (rc != 0) {
                return rc;
            }
        }
    }
    return 0;
}

/* parse_attributes walks [0] Attributes (RFC 2986 §4.1); the one PKCS#9 extensionRequest
 * (RFC 2985 §5.4.2) holds the extensions. Encoders that leave out an empty [0] are tolerated. */
static int parse_attributes(struct signer_csr *csr, enum signer_reject *out_reason, CBS *info)
{
    ASSERT(csr->spki != NULL);
    CBS attrs;
    int present = 0;
    if (!CBS_get_optional_asn1(info, &attrs, &present, TAG_ATTRIBUTES)) {
        return malformed(out_reason);
    }
    size_t num_attrs = 0;
    bool seen_ext_req = false;
    while (present && CBS_len(&attrs) > 0) {
        CBS attr, oid, values;
        if (!CBS_get_asn1(&attrs, &attr, CBS_ASN1_SEQUENCE) ||
            !CBS_get_asn1(&attr, &oid, CBS_ASN1_OBJECT) ||
            !CBS_get_asn1(&attr, &values, CBS_ASN1_SET) || CBS_len(&attr) != 0 ||
            CBS_len(&values) == 0) {
            return malformed(out_reason);
        }
        if (++num_attrs > SIGNER_CSR_ATTRS_MAX) {
            return too_complex(out_reason);
        }
        if (OBJ_cbs2nid(&oid) != NID_ext_req) {
            while (CBS_len(&values) > 0) { /* bounded by the DER: each pass eats >= 2 bytes */
                if (!CBS_get_any_asn1_element(&values, NULL, NULL, NULL)) {
                    return malformed(out_reason);
                }
            }
            continue;
        }
        CBS exts;
        if (seen_ext_req || !CBS_get_asn1(&values, &exts, CBS_ASN1_SEQUENCE) ||
            CBS_len(&values) != 0) {
            return malformed(out_reason);
        }
        seen_ext_req = true;
        int rc = parse_extensions(csr, out_reason, &exts);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

/* parse_info walks CertificationRequestInfo (RFC 2986 §4.1): version, subject, subjectPKInfo,
 * attributes. The version is checked first, before anything else is believed. */
static int parse_info(struct signer_csr *csr, enum signer_reject *out_reason, CBS info_element)
{
    CBS info, version, spki;
    uint8_t v = 0;
    if (!CBS_get_asn1(&info_element, &info, CBS_ASN1_SEQUENCE) ||
        !CBS_get_asn1(&info, &version, CBS_ASN1_INTEGER)) {
        return malformed(out_reason);
    }
    if (CBS_len(&version) == 0) {
        return malformed(out_reason); /* an INTEGER has at least one content byte (X.690 8.3.1) */
    }
    if (CBS_len(&version) != 1 || !CBS_get_u8(&version, &v) || v != 0) {
        return refuse(out_reason, -EBADMSG, SIGNER_REJECT_CSR_VERSION);
    }
    int rc = parse_subject(csr, out_reason, &info);
    if (rc != 0) {
        return rc;
    }
    if (!CBS_get_asn1_element(&info, &spki, CBS_ASN1_SEQUENCE)) {
        return malformed(out_reason);
    }
    csr->spki = CBS_data(&spki);
    csr->spki_len = CBS_len(&spki);
    rc = parse_attributes(csr, out_reason, &info);
    if (rc != 0) {
        return rc;
    }
    return CBS_len(&info) == 0 ? 0 : malformed(out_reason);
}

/* ---- parse: policy ---- */

/* key_algorithm reads the SPKI's AlgorithmIdentifier (RFC 5480 §2.1, RFC 8410 §3) and returns
 * the key type we accept, or a refusal. Done before BoringSSL sees the key so that an unknown
 * curve is KEY_UNSUPPORTED rather than KEY_INVALID. */
static int key_algorithm(enum signer_key_type *out, enum signer_reject *out_reason, CBS spki)
{
    CBS body, alg, oid, curve;
    if (!CBS_get_asn1(&spki, &body, CBS_ASN1_SEQUENCE) ||
        !CBS_get_asn1(&body, &alg, CBS_ASN1_SEQUENCE) ||
        !CBS_get_asn1(&alg, &oid, CBS_ASN1_OBJECT)) {
        return malformed(out_reason);
    }
    switch (OBJ_cbs2nid(&oid)) {
    case NID_rsaEncryption:
        *out = SIGNER_KEY_RSA;
        return 0;
    case NID_ED25519:
        *out = SIGNER_KEY_ED25519;
        return 0;
    case NID_X9_62_id_ecPublicKey:
        break;
    default:
        return refuse(out_reason, -EPERM, SIGNER_REJECT_KEY_UNSUPPORTED);
    }
    /* namedCurve only: explicit parameters are not accepted (RFC 5480 §2.1.1). */
    if (!CBS_get_asn1(&alg, &curve, CBS_ASN1_OBJECT) || CBS_len(&alg) != 0) {
        return refuse(out_reason, -EPERM, SIGNER_REJECT_KEY_UNSUPPORTED);
    }
    switch (OBJ_cbs2nid(&curve)) {
    case NID_X9_62_prime256v1:
        *out = SIGNER_KEY_P256;
        return 0;
    case NID_secp384r1:
        *out = SIGNER_KEY_P384;
        return 0;
    default:
        return refuse(out_reason, -EPERM, SIGNER_REJECT_KEY_UNSUPPORTED);
    }
}

/* key_check decodes the key with BoringSSL (which checks that an EC point is on its curve) and
 * applies the size and exponent policy. Sets csr->key_type and csr->key_bits. */
static int key_check(struct signer_csr *csr, enum signer_reject *out_reason)
{
    ASSERT(csr->spki != NULL);
    ASSERT(csr->key_type == SIGNER_KEY_NONE);
    enum signer_key_type type = SIGNER_KEY_NONE;
    CBS spki;
    CBS_init(&spki, csr->spki, csr->spki_len);
    int rc = key_algorithm(&type, out_reason, spki);
    if (rc != 0) {
        return rc;
    }
    EVP_PKEY *pkey = EVP_parse_public_key(&spki);
    if (pkey == NULL || CBS_len(&spki) != 0) {
        rc = refuse(out_reason, -EPERM, SIGNER_REJECT_KEY_INVALID);
        goto out;
    }
    unsigned bits = 0;
    if (type == SIGNER_KEY_RSA && EVP_PKEY_id(pkey) == EVP_PKEY_RSA) {
        const RSA *rsa = EVP_PKEY_get0_RSA(pkey);
        bits = RSA_bits(rsa);
        if (bits < RSA_BITS_MIN) {
            rc = refuse(out_reason, -EPERM, SIGNER_REJECT_KEY_RSA_SMALL);
        } else if (bits > RSA_BITS_MAX) {
            rc = refuse(out_reason, -EPERM, SIGNER_REJECT_KEY_RSA_LARGE);
        } else if (!BN_is_word(RSA_get0_e(rsa), RSA_EXPONENT)) {
            rc = refuse(out_reason, -EPERM, SIGNER_REJECT_KEY_RSA_EXPONENT);
        }
    } else if ((type == SIGNER_KEY_P256 || type == SIGNER_KEY_P384) &&
               EVP_PKEY_id(pkey) == EVP_PKEY_EC) {
        int curve = EC_GROUP_get_curve_name(EC_KEY_get0_group(EVP_PKEY_get0_EC_KEY(pkey)));
        bits = type == SIGNER_KEY_P256 ? 256 : 384;
        if (curve != (type == SIGNER_KEY_P256 ? NID_X9_62_prime256v1 : NID_secp384r1)) {
            rc = refuse(out_reason, -EPERM, SIGNER_REJECT_KEY_INVALID);
        }
    } else if (type == SIGNER_KEY_ED25519 && EVP_PKEY_id(pkey) == EVP_PKEY_ED25519) {
        bits = 255;
    } else {
        rc = refuse(out_reason, -EPERM, SIGNER_REJECT_KEY_INVALID);
    }
    if (rc == 0) {
        csr->key_type = type;
        csr->key_bits = bits;
    }
out:
    EVP_PKEY_free(pkey);
    ERR_clear_error(); /* the reason says it all; do not leave BoringSSL's queue behind */
    return rc;
}

/* sig_key_type returns the key type a signature algorithm needs (RSA; P256 standing for any
 * accepted EC curve; ED25519), or NONE for algorithms we do not take. */
static enum signer_key_type sig_key_type(int nid)
{
    switch (nid) {
    case NID_sha256WithRSAEncryption:
    case NID_sha384WithRSAEncryption:
    case NID_sha512WithRSAEncryption:
        return SIGNER_KEY_RSA;
    case NID_ecdsa_with_SHA256:
    case NID_ecdsa_with_SHA384:
    case NID_ecdsa_with_SHA512:
        return SIGNER_KEY_P256;
    case NID_ED25519:
        return SIGNER_KEY_ED25519;
    default:
        return SIGNER_KEY_NONE;
    }
}

static bool sig_weak(int nid)
{
    return nid == NID_md2WithRSAEncryption || nid == NID_md4WithRSAEncryption ||
           nid == NID_md5WithRSAEncryption || nid == NID_md5WithRSA ||
           nid == NID_sha1WithRSAEncryption || nid == NID_sha1WithRSA ||
           nid == NID_ecdsa_with_SHA1 || nid == NID_dsaWithSHA1 ||
           nid == NID_sha224WithRSAEncryption || nid == NID_ecdsa_with_SHA224;
}

/* sig_check reads signatureAlgorithm and checks that it is one we accept for the key. RSA
 * PKCS#1 v1.5 takes NULL (or, leniently, absent) parameters (RFC 4055 §5); ECDSA and Ed25519
 * take none (RFC 5758 §3.2, RFC 8410 §3). RSA-PSS is not accepted. */
static int sig_check(struct signer_csr *csr, enum signer_reject *out_reason, CBS alg)
{
    ASSERT(csr->key_type != SIGNER_KEY_NONE);
    ASSERT(csr->sig_nid == 0);
    CBS oid, null;
    if (!CBS_get_asn1(&alg, &oid, CBS_ASN1_OBJECT)) {
        return malformed(out_reason);
    }
    int nid = OBJ_cbs2nid(&oid);
    if (sig_weak(nid)) {
        return refuse(out_reason, -EPERM, SIGNER_REJECT_SIG_WEAK);
    }
    enum signer_key_type want = sig_key_type(nid);
    if (want == SIGNER_KEY_RSA && CBS_len(&alg) > 0 &&
        (!CBS_get_asn1(&alg, &null, CBS_ASN1_NULL) || CBS_len(&null) != 0)) {
        return malformed(out_reason);
    }
    if (CBS_len(&alg) != 0 && want != SIGNER_KEY_NONE) {
        return malformed(out_reason);
    }
    enum signer_key_type have = csr->key_type == SIGNER_KEY_P384 ? SIGNER_KEY_P256 : csr->key_type;
    if (want == SIGNER_KEY_NONE || want != have) {
        return refuse(out_reason, -EPERM, SIGNER_REJECT_SIG_UNSUPPORTED);
    }
    csr->sig_nid = nid;
    return 0;
}

int signer_csr_parse(struct signer_csr *out, enum signer_reject *out_reason, const uint8_t *der,
                     size_t der_len)
{
    ASSERT(out != NULL);
    ASSERT(out_reason != NULL);
    ASSERT(der != NULL || der_len == 0);
    ASSERT(out->der == NULL);
    if (der_len > SIGNER_CSR_DER_MAX) {
        return refuse(out_reason, -E2BIG, SIGNER_REJECT_CSR_TOO_LARGE);
    }
    struct signer_csr csr = {.der = der, .der_len = der_len};
    CBS in, req, info, alg, sig;
    uint8_t unused_bits = 0;
    CBS_init(&in, der, der_len);
    /* CertificationRequest (RFC 2986 §4.2), exactly one, nothing after it. */
    if (!CBS_get_asn1(&in, &req, CBS_ASN1_SEQUENCE) || CBS_len(&in) != 0 ||
        !CBS_get_asn1_element(&req, &info, CBS_ASN1_SEQUENCE)) {
        return malformed(out_reason);
    }
    csr.info = CBS_data(&info);
    csr.info_len = CBS_len(&info);
    int rc = parse_info(&csr, out_reason, info);
    if (rc != 0) {
        return rc;
    }
    if (!CBS_get_asn1(&req, &alg, CBS_ASN1_SEQUENCE) ||
        !CBS_get_asn1(&req, &sig, CBS_ASN1_BITSTRING) || CBS_len(&req) != 0 ||
        !CBS_get_u8(&sig, &unused_bits) || unused_bits != 0 || CBS_len(&sig) == 0) {
        return malformed(out_reason);
    }
    csr.sig = CBS_data(&sig);
    csr.sig_len = CBS_len(&sig);
    rc = key_check(&csr, out_reason);
    if (rc != 0) {
        return rc;
    }
    rc = sig_check(&csr, out_reason, alg);
    if (rc != 0) {
        return rc;
    }
    ASSERT(csr.key_type != SIGNER_KEY_NONE);
    ASSERT(csr.num_sans <= SIGNER_CSR_SANS_MAX);
    *out = csr;
    *out_reason = SIGNER_REJECT_NONE;
    return 0;
}

/* ---- verify ---- */

/* sig_digest returns the digest of an accepted signature algorithm; NULL for Ed25519, which
 * hashes internally (RFC 8032 §5.1). */
static const EVP_MD *sig_digest(int nid)
{
    switch (nid) {
    case NID_sha256WithRSAEncryption:
    case NID_ecdsa_with_SHA256:
        return EVP_sha256();
    case NID_sha384WithRSAEncryption:
    case NID_ecdsa_with_SHA384:
        return EVP_sha384();
    case NID_sha512WithRSAEncryption:
    case NID_ecdsa_with_SHA512:
        return EVP_sha512();
    default:
        ASSERT(nid == NID_ED25519); /* signer_csr_parse accepted nothing else */
        return NULL;
    }
}

int signer_csr_verify(const struct signer_csr *csr, enum signer_reject *out_reason)
{
    ASSERT(csr != NULL);
    ASSERT(out_reason != NULL);
    ASSERT(csr->key_type != SIGNER_KEY_NONE);
    ASSERT(csr->info != NULL);
    ASSERT(csr->sig != NULL);
    const EVP_MD *md = sig_digest(csr->sig_nid);
    EVP_MD_CTX ctx;
    EVP_MD_CTX_init(&ctx);
    CBS spki;
    CBS_init(&spki, csr->spki, csr->spki_len);
    int rc = 0;
    EVP_PKEY *pkey = EVP_parse_public_key(&spki);
    if (pkey == NULL) {
        rc = refuse(out_reason, -EPERM, SIGNER_REJECT_KEY_INVALID);
        goto out;
    }
    if (!EVP_DigestVerifyInit(&ctx, NULL, md, NULL, pkey) ||
        !EVP_DigestVerify(&ctx, csr->sig, csr->sig_len, csr->info, csr->info_len)) {
        rc = refuse(out_reason, -EPERM, SIGNER_REJECT_CSR_SIGNATURE);
        goto out;
    }
    *out_reason = SIGNER_REJECT_NONE;
out:
    EVP_MD_CTX_cleanup(&ctx);
    EVP_PKEY_free(pkey);
    ERR_clear_error();
    return rc;
}

/* ---- identity ---- */

const char *signer_uri_sign_in_name(const char *uri)
{
    ASSERT(uri != NULL);
    size_t len = strlen(uri);
    if (len >= 4 && ascii_case_equal((const uint8_t *)uri, 4, "sip:")) {
        return uri + 4;
    }
    return uri;
}

int signer_identity_check(const struct signer_csr *csr, enum signer_reject *out_reason,
                          const char *uri)
{
    ASSERT(csr != NULL);
    ASSERT(out_reason != NULL);
    ASSERT(uri != NULL);
    ASSERT(csr->num_sans <= SIGNER_CSR_SANS_MAX);
    const char *name = signer_uri_sign_in_name(uri);
    if (csr->num_subject_cns > 1) {
        return refuse(out_reason, -EPERM, SIGNER_REJECT_IDENTITY_SUBJECT);
    }
    if (csr->subject_cn != NULL && !ascii_case_equal(csr->subject_cn, csr->subject_cn_len, name) &&
        !ascii_case_equal(csr->subject_cn, csr->subject_cn_len, uri)) {
        return refuse(out_reason, -EPERM, SIGNER_REJECT_IDENTITY_SUBJECT);
    }
    for (size_t i = 0; i < csr->num_sans; i++) {
        const struct signer_san *san = &csr->sans[i];
        bool ok =
            (san->type == SIGNER_SAN_URI && ascii_case_equal(san->value, san->value_len, uri)) ||
            (san->type == SIGNER_SAN_EMAIL && ascii_case_equal(san->value, san->value_len, name));
        if (!ok) {
            return refuse(out_reason, -EPERM, SIGNER_REJECT_IDENTITY_SAN);
        }
    }
    *out_reason = SIGNER_REJECT_NONE;
    return 0;
}
