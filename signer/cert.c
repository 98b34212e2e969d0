/* cert.c: X.509 certificates built with CBB into fixed buffers (RFC 5280, README, The certificate),
 * batch issuance, the validity profile and serial numbers. */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/base64.h>
#include <openssl/bytestring.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "base/base.h"
#include "signer/internal.h"

/* OID contents (RFC 5280 §4.2.1, RFC 5758 §3.2, RFC 4055 §5, RFC 8410 §3). */
static const uint8_t oid_ecdsa_sha256[] = {0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02};
static const uint8_t oid_ecdsa_sha384[] = {0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03};
static const uint8_t oid_rsa_sha256[] = {0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b};
static const uint8_t oid_ed25519[] = {0x2b, 0x65, 0x70};
static const uint8_t oid_cn[] = {0x55, 0x04, 0x03};
static const uint8_t oid_o[] = {0x55, 0x04, 0x0a};
static const uint8_t oid_ski[] = {0x55, 0x1d, 0x0e};
static const uint8_t oid_ku[] = {0x55, 0x1d, 0x0f};
static const uint8_t oid_san[] = {0x55, 0x1d, 0x11};
static const uint8_t oid_bc[] = {0x55, 0x1d, 0x13};
static const uint8_t oid_aki[] = {0x55, 0x1d, 0x23};
static const uint8_t oid_eku[] = {0x55, 0x1d, 0x25};
static const uint8_t oid_client_auth[] = {0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x02};
static const uint8_t oid_server_auth[] = {0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x01};
static const uint8_t oid_crl_dp[] = {0x55, 0x1d, 0x1f};
static const uint8_t oid_ocsp_signing[] = {0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x09};
static const uint8_t oid_ocsp_nocheck[] = {0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x01, 0x05};
static const uint8_t oid_aia[] = {0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x01, 0x01};
static const uint8_t oid_ad_ocsp[] = {0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x01};

/* keyUsage bits, first byte of the BIT STRING (RFC 5280 §4.2.1.3: bit 0 is the MSB). */
#define KU_DIGITAL_SIGNATURE 0x80u
#define KU_KEY_ENCIPHERMENT 0x20u
#define KU_KEY_CERT_SIGN 0x04u
#define KU_CRL_SIGN 0x02u

#define SERIAL_DRAWS_MAX 8

void cert_serial_random(uint8_t out[SIGNER_SERIAL_LEN])
{
    static const uint8_t zero[SIGNER_SERIAL_LEN];
    for (int i = 0; i < SERIAL_DRAWS_MAX; i++) {
        int ok = RAND_bytes(out, SIGNER_SERIAL_LEN);
        ASSERT(ok == 1); /* BoringSSL's RAND_bytes aborts rather than fail */
        out[0] &= 0x7f;  /* positive: RFC 5280 §4.1.2.2 */
        if (memcmp(out, zero, SIGNER_SERIAL_LEN) != 0) {
            return;
        }
    }
    ASSERT(false && "CSPRNG returned zeros");
}

static int add_oid(CBB *cbb, const uint8_t *oid, size_t len)
{
    CBB c;
    return CBB_add_asn1(cbb, &c, CBS_ASN1_OBJECT) && CBB_add_bytes(&c, oid, len) && CBB_flush(cbb);
}

/* add_serial writes the positive INTEGER in its minimal DER form (X.690 §8.3.2). */
static int add_serial(CBB *cbb, const uint8_t serial[SIGNER_SERIAL_LEN])
{
    ASSERT((serial[0] & 0x80) == 0);
    size_t i = 0;
    while (i + 1 < SIGNER_SERIAL_LEN && serial[i] == 0 && (serial[i + 1] & 0x80) == 0) {
        i++;
    }
    CBB c;
    return CBB_add_asn1(cbb, &c, CBS_ASN1_INTEGER) &&
           CBB_add_bytes(&c, serial + i, SIGNER_SERIAL_LEN - i) && CBB_flush(cbb);
}

/* add_sigalg writes the AlgorithmIdentifier of the key type's signature: no parameters for
 * ECDSA (RFC 5758 §3.2) and Ed25519 (RFC 8410 §3), NULL for RSA (RFC 4055 §5). */
static int add_sigalg(CBB *cbb, enum hsm_key_type type)
{
    CBB seq, null;
    int ok = CBB_add_asn1(cbb, &seq, CBS_ASN1_SEQUENCE);
    switch (type) {
    case HSM_KEY_P256:
        ok = ok && add_oid(&seq, oid_ecdsa_sha256, sizeof(oid_ecdsa_sha256));
        break;
    case HSM_KEY_P384:
        ok = ok && add_oid(&seq, oid_ecdsa_sha384, sizeof(oid_ecdsa_sha384));
        break;
    case HSM_KEY_RSA2048:
    case HSM_KEY_RSA3072:
        ok = ok && add_oid(&seq, oid_rsa_sha256, sizeof(oid_rsa_sha256)) &&
             CBB_add_asn1(&seq, &null, CBS_ASN1_NULL);
        break;
    case HSM_KEY_ED25519:
        ok = ok && add_oid(&seq, oid_ed25519, sizeof(oid_ed25519));
        break;
    case HSM_KEY_NONE:
        ASSERT(false && "signature key type");
    }
    return ok && CBB_flush(cbb);
}

/* add_time writes UTCTime through 2049 and GeneralizedTime from 2050 (RFC 5280 §4.1.2.5). */
static int add_time(CBB *cbb, int64_t t)
{
    struct tm tm = {0};
    time_t tt = (time_t)t;
    const struct tm *utc = gmtime_r(&tt, &tm);
    ASSERT(utc != NULL); /* callers pass times of years 1950..9999 */
    int year = tm.tm_year + 1900;
    ASSERT(year >= 1950);
    ASSERT(year <= 9999);
    char buf[16];
    int n;
    unsigned tag;
    if (year < 2050) {
        tag = CBS_ASN1_UTCTIME;
        n = snprintf(buf, sizeof(buf), "%02d%02d%02d%02d%02d%02dZ", year % 100, tm.tm_mon + 1,
                     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    } else {
        tag = CBS_ASN1_GENERALIZEDTIME;
        n = snprintf(buf, sizeof(buf), "%04d%02d%02d%02d%02d%02dZ", year, tm.tm_mon + 1, tm.tm_mday,
                     tm.tm_hour, tm.tm_min, tm.tm_sec);
    }
    ASSERT(n == (year < 2050 ? 13 : 15));
    CBB c;
    return CBB_add_asn1(cbb, &c, tag) && CBB_add_bytes(&c, (const uint8_t *)buf, (size_t)n) &&
           CBB_flush(cbb);
}

static int add_rdn(CBB *name, const uint8_t *oid, size_t oid_len, const char *v, size_t v_len)
{
    CBB set, atv, str;
    return CBB_add_asn1(name, &set, CBS_ASN1_SET) && CBB_add_asn1(&set, &atv, CBS_ASN1_SEQUENCE) &&
           add_oid(&atv, oid, oid_len) && CBB_add_asn1(&atv, &str, CBS_ASN1_UTF8STRING) &&
           CBB_add_bytes(&str, (const uint8_t *)v, v_len) && CBB_flush(name);
}

static int add_name(CBB *cbb, const char *cn, size_t cn_len, const char *o, size_t o_len)
{
    CBB name;
    return CBB_add_asn1(cbb, &name, CBS_ASN1_SEQUENCE) &&
           (o == NULL || add_rdn(&name, oid_o, sizeof(oid_o), o, o_len)) &&
           add_rdn(&name, oid_cn, sizeof(oid_cn), cn, cn_len) && CBB_flush(cbb);
}

int cert_name_build(uint8_t *out, size_t cap, size_t *out_len, const char *cn, size_t cn_len,
                    const char *o, size_t o_len)
{
    ASSERT(out != NULL);
    ASSERT(cn != NULL);
    CBB cbb;
    size_t len = 0;
    if (!CBB_init_fixed(&cbb, out, cap) || !add_name(&cbb, cn, cn_len, o, o_len) ||
        !CBB_finish(&cbb, NULL, &len)) {
        return -E2BIG;
    }
    ASSERT(len <= cap);
    *out_len = len;
    return 0;
}

int cert_key_id(uint8_t out[CERT_KEY_ID_LEN], const uint8_t *spki, size_t spki_len)
{
    ASSERT(out != NULL);
    ASSERT(spki != NULL || spki_len == 0);
    CBS cbs, seq, alg, key;
    uint8_t unused = 0;
    CBS_init(&cbs, spki, spki_len);
    if (!CBS_get_asn1(&cbs, &seq, CBS_ASN1_SEQUENCE) || CBS_len(&cbs) != 0 ||
        !CBS_get_asn1(&seq, &alg, CBS_ASN1_SEQUENCE) ||
        !CBS_get_asn1(&seq, &key, CBS_ASN1_BITSTRING) || CBS_len(&seq) != 0 ||
        !CBS_get_u8(&key, &unused) || unused != 0 || CBS_len(&key) == 0) {
        return -EBADMSG;
    }
    static_assert(SHA_DIGEST_LENGTH == CERT_KEY_ID_LEN, "SHA-1 key identifier");
    SHA1(CBS_data(&key), CBS_len(&key), out);
    return 0;
}

/* ext_begin opens Extension { extnID, critical, extnValue OCTET STRING }: the caller writes the
 * value into *val; the next write to `exts` closes it. */
static int ext_begin(CBB *exts, CBB *ext, CBB *val, const uint8_t *oid, size_t oid_len,
                     bool critical)
{
    return CBB_add_asn1(exts, ext, CBS_ASN1_SEQUENCE) && add_oid(ext, oid, oid_len) &&
           (!critical || CBB_add_asn1_bool(ext, 1)) && CBB_add_asn1(ext, val, CBS_ASN1_OCTETSTRING);
}

static int add_ku(CBB *exts, unsigned bits)
{
    ASSERT(bits != 0);
    ASSERT(bits <= 0xff);
    uint8_t unused = 0; /* DER: trailing zero bits are dropped (X.690 §11.2.2) */
    while (((bits >> unused) & 1u) == 0) {
        unused++;
    }
    CBB ext, val, bs;
    return ext_begin(exts, &ext, &val, oid_ku, sizeof(oid_ku), true) &&
           CBB_add_asn1(&val, &bs, CBS_ASN1_BITSTRING) && CBB_add_u8(&bs, unused) &&
           CBB_add_u8(&bs, (uint8_t)bits) && CBB_flush(exts);
}

/* add_bc writes basicConstraints, critical; pathlen < 0 means none. */
static int add_bc(CBB *exts, bool ca, int pathlen)
{
    ASSERT(ca || pathlen < 0);
    CBB ext, val, seq;
    return ext_begin(exts, &ext, &val, oid_bc, sizeof(oid_bc), true) &&
           CBB_add_asn1(&val, &seq, CBS_ASN1_SEQUENCE) && (!ca || CBB_add_asn1_bool(&seq, 1)) &&
           (pathlen < 0 || CBB_add_asn1_uint64(&seq, (uint64_t)pathlen)) && CBB_flush(exts);
}

static int add_eku(CBB *exts, const uint8_t *oid, size_t oid_len)
{
    CBB ext, val, seq;
    return ext_begin(exts, &ext, &val, oid_eku, sizeof(oid_eku), false) &&
           CBB_add_asn1(&val, &seq, CBS_ASN1_SEQUENCE) && add_oid(&seq, oid, oid_len) &&
           CBB_flush(exts);
}

static int add_ski(CBB *exts, const uint8_t ski[CERT_KEY_ID_LEN])
{
    CBB ext, val;
    return ext_begin(exts, &ext, &val, oid_ski, sizeof(oid_ski), false) &&
           CBB_add_asn1_octet_string(&val, ski, CERT_KEY_ID_LEN) && CBB_flush(exts);
}

/* add_aki writes AuthorityKeyIdentifier { keyIdentifier [0] } (RFC 5280 §4.2.1.1). */
static int add_aki(CBB *exts, const uint8_t *aki, size_t aki_len)
{
    CBB ext, val, seq, id;
    return ext_begin(exts, &ext, &val, oid_aki, sizeof(oid_aki), false) &&
           CBB_add_asn1(&val, &seq, CBS_ASN1_SEQUENCE) &&
           CBB_add_asn1(&seq, &id, CBS_ASN1_CONTEXT_SPECIFIC | 0) &&
           CBB_add_bytes(&id, aki, aki_len) && CBB_flush(exts);
}

/* add_san writes subjectAltName with the GeneralName URI [6] or dNSName [2] `v`, and for a
 * server the further dNSNames of s->more_dns (RFC 5280 §4.2.1.6). */
static int add_san(CBB *exts, unsigned tag, const struct cert_spec *s)
{
    CBB ext, val, seq, gn;
    int ok = ext_begin(exts, &ext, &val, oid_san, sizeof(oid_san), false) &&
             CBB_add_asn1(&val, &seq, CBS_ASN1_SEQUENCE) &&
             CBB_add_asn1(&seq, &gn, CBS_ASN1_CONTEXT_SPECIFIC | tag) &&
             CBB_add_bytes(&gn, (const uint8_t *)s->san, s->san_len);
    for (size_t i = 0; ok && i < s->num_more_dns; i++) {
        ok = CBB_add_asn1(&seq, &gn, CBS_ASN1_CONTEXT_SPECIFIC | 2) &&
             CBB_add_bytes(&gn, (const uint8_t *)s->more_dns[i], strlen(s->more_dns[i]));
    }
    return ok && CBB_flush(exts);
}

/* add_crl_dp writes cRLDistributionPoints with one fullName URI (RFC 5280 §4.2.1.13). */
static int add_crl_dp(CBB *exts, const char *url)
{
    CBB ext, val, dps, dp, name, full, uri;
    return ext_begin(exts, &ext, &val, oid_crl_dp, sizeof(oid_crl_dp), false) &&
           CBB_add_asn1(&val, &dps, CBS_ASN1_SEQUENCE) &&
           CBB_add_asn1(&dps, &dp, CBS_ASN1_SEQUENCE) &&
           CBB_add_asn1(&dp, &name, CBS_ASN1_CONTEXT_SPECIFIC | CBS_ASN1_CONSTRUCTED | 0) &&
           CBB_add_asn1(&name, &full, CBS_ASN1_CONTEXT_SPECIFIC | CBS_ASN1_CONSTRUCTED | 0) &&
           CBB_add_asn1(&full, &uri, CBS_ASN1_CONTEXT_SPECIFIC | 6) &&
           CBB_add_bytes(&uri, (const uint8_t *)url, strlen(url)) && CBB_flush(exts);
}

/* add_aia_ocsp writes authorityInfoAccess with one id-ad-ocsp URI (RFC 5280 §4.2.2.1). */
static int add_aia_ocsp(CBB *exts, const char *url)
{
    CBB ext, val, seq, ad, uri;
    return ext_begin(exts, &ext, &val, oid_aia, sizeof(oid_aia), false) &&
           CBB_add_asn1(&val, &seq, CBS_ASN1_SEQUENCE) &&
           CBB_add_asn1(&seq, &ad, CBS_ASN1_SEQUENCE) &&
           add_oid(&ad, oid_ad_ocsp, sizeof(oid_ad_ocsp)) &&
           CBB_add_asn1(&ad, &uri, CBS_ASN1_CONTEXT_SPECIFIC | 6) &&
           CBB_add_bytes(&uri, (const uint8_t *)url, strlen(url)) && CBB_flush(exts);
}

static int add_extensions(CBB *tbs, const struct cert_spec *s, const uint8_t ski[CERT_KEY_ID_LEN])
{
    CBB wrap, exts;
    int ok = CBB_add_asn1(tbs, &wrap, CBS_ASN1_CONTEXT_SPECIFIC | CBS_ASN1_CONSTRUCTED | 3) &&
             CBB_add_asn1(&wrap, &exts, CBS_ASN1_SEQUENCE);
    bool leaf = s->kind == CERT_KIND_CLIENT || s->kind == CERT_KIND_SERVER ||
                s->kind == CERT_KIND_OCSP || s->kind == CERT_KIND_WEBTICKET;
    if (leaf) {
        unsigned ku = KU_DIGITAL_SIGNATURE | (s->key_encipherment ? KU_KEY_ENCIPHERMENT : 0u);
        bool client = s->kind == CERT_KIND_CLIENT;
        bool ocsp = s->kind == CERT_KIND_OCSP;
        bool wt = s->kind == CERT_KIND_WEBTICKET; /* XML-DSig of SAML assertions: no EKU */
        ok = ok && add_ku(&exts, ku) &&
             (wt       ? 1
              : client ? add_eku(&exts, oid_client_auth, sizeof(oid_client_auth))
              : ocsp   ? add_eku(&exts, oid_ocsp_signing, sizeof(oid_ocsp_signing))
                       : add_eku(&exts, oid_server_auth, sizeof(oid_server_auth))) &&
             add_bc(&exts, false, -1);
        if (ocsp) { /* RFC 6960 §4.2.2.2.1: clients need not check the signer's revocation */
            CBB ext, val, null;
            ok = ok &&
                 ext_begin(&exts, &ext, &val, oid_ocsp_nocheck, sizeof(oid_ocsp_nocheck), false) &&
                 CBB_add_asn1(&val, &null, CBS_ASN1_NULL) && CBB_flush(&exts);
        }
    } else {
        ok = ok && add_bc(&exts, true, s->kind == CERT_KIND_ISSUING ? 0 : -1) &&
             add_ku(&exts, KU_KEY_CERT_SIGN | KU_CRL_SIGN);
    }
    ok = ok && add_ski(&exts, ski);
    if (s->aki != NULL) {
        ok = ok && add_aki(&exts, s->aki, s->aki_len);
    }
    if (s->san != NULL) {
        ok = ok && add_san(&exts, s->kind == CERT_KIND_CLIENT ? 6 : 2, s);
    }
    if (s->crl_url != NULL) {
        ok = ok && add_crl_dp(&exts, s->crl_url);
    }
    if (s->ocsp_url != NULL) {
        ok = ok && add_aia_ocsp(&exts, s->ocsp_url);
    }
    return ok && CBB_flush(tbs);
}

static void spec_validate(const struct cert_spec *s)
{
    ASSERT(s->kind >= CERT_KIND_ROOT);
    ASSERT(s->kind <= CERT_KIND_WEBTICKET);
    ASSERT(s->serial != NULL);
    ASSERT(s->issuer != NULL);
    ASSERT(s->subject_cn != NULL);
    ASSERT(s->spki != NULL);
    ASSERT(s->not_before_s < s->not_after_s);
    ASSERT((s->aki == NULL) == (s->kind == CERT_KIND_ROOT));
    ASSERT((s->san != NULL) == (s->kind == CERT_KIND_CLIENT || s->kind == CERT_KIND_SERVER));
    ASSERT(s->num_more_dns == 0 || s->kind == CERT_KIND_SERVER);
    ASSERT((s->more_dns != NULL) == (s->num_more_dns > 0));
}

int cert_tbs_build(uint8_t der[SIGNER_CERT_DER_MAX], size_t *out_tbs_len,
                   const struct cert_spec *spec)
{
    ASSERT(der != NULL);
    ASSERT(out_tbs_len != NULL);
    spec_validate(spec);
    uint8_t ski[CERT_KEY_ID_LEN];
    if (cert_key_id(ski, spec->spki, spec->spki_len) != 0) {
        return -EBADMSG;
    }
    CBB cbb, tbs, ver, validity;
    size_t len = 0;
    if (!CBB_init_fixed(&cbb, der + CERT_TBS_OFF, CERT_TBS_MAX) ||
        !CBB_add_asn1(&cbb, &tbs, CBS_ASN1_SEQUENCE) ||
        !CBB_add_asn1(&tbs, &ver, CBS_ASN1_CONTEXT_SPECIFIC | CBS_ASN1_CONSTRUCTED | 0) ||
        !CBB_add_asn1_uint64(&ver, 2) /* v3 */ || !add_serial(&tbs, spec->serial) ||
        !add_sigalg(&tbs, spec->sig_type) || !CBB_add_bytes(&tbs, spec->issuer, spec->issuer_len) ||
        !CBB_add_asn1(&tbs, &validity, CBS_ASN1_SEQUENCE) ||
        !add_time(&validity, spec->not_before_s) || !add_time(&validity, spec->not_after_s) ||
        !add_name(&tbs, spec->subject_cn, spec->subject_cn_len, spec->subject_o,
                  spec->subject_o_len) ||
        !CBB_add_bytes(&tbs, spec->spki, spec->spki_len) || !add_extensions(&tbs, spec, ski) ||
        !CBB_finish(&cbb, NULL, &len)) {
        return -E2BIG;
    }
    ASSERT(len > 0);
    ASSERT(len <= CERT_TBS_MAX);
    *out_tbs_len = len;
    return 0;
}

int cert_add_oid(CBB *cbb, const uint8_t *oid, size_t len)
{
    return add_oid(cbb, oid, len);
}

int cert_add_serial(CBB *cbb, const uint8_t serial[SIGNER_SERIAL_LEN])
{
    return add_serial(cbb, serial);
}

int cert_add_sigalg(CBB *cbb, enum hsm_key_type type)
{
    return add_sigalg(cbb, type);
}

int cert_add_time(CBB *cbb, int64_t t)
{
    return add_time(cbb, t);
}

int cert_add_aki(CBB *exts, const uint8_t *aki, size_t aki_len)
{
    return add_aki(exts, aki, aki_len);
}

void cert_sign_item_init(struct hsm_sign_item *item, uint8_t der[SIGNER_CERT_DER_MAX],
                         size_t tbs_len)
{
    ASSERT(tbs_len > 0);
    ASSERT(tbs_len <= CERT_TBS_MAX);
    *item = (struct hsm_sign_item){
        .tbs = der + CERT_TBS_OFF,
        .tbs_len = tbs_len,
        .sig = der + CERT_SIG_OFF,
    };
}

int cert_assemble(uint8_t der[SIGNER_CERT_DER_MAX], size_t *out_len, size_t tbs_len,
                  enum hsm_key_type sig_type, size_t sig_len)
{
    ASSERT(tbs_len <= CERT_TBS_MAX);
    ASSERT(sig_len > 0);
    ASSERT(sig_len <= HSM_SIG_MAX);
    CBB cbb, cert, bits;
    uint8_t *p = NULL;
    size_t len = 0;
    /* The Certificate header starts 2 bytes long, so the TBS moves down from CERT_TBS_OFF, then
     * AlgorithmIdentifier and BIT STRING header (< 32 bytes) fill the gap CERT_TBS_MAX leaves
     * before the signature, which moves down next; CBB_finish then widens the header, moving
     * everything up again. memmove because source and destination may overlap. */
    if (!CBB_init_fixed(&cbb, der, SIGNER_CERT_DER_MAX) ||
        !CBB_add_asn1(&cbb, &cert, CBS_ASN1_SEQUENCE) || !CBB_add_space(&cert, &p, tbs_len)) {
        return -E2BIG;
    }
    ASSERT(p < der + CERT_TBS_OFF);
    memmove(p, der + CERT_TBS_OFF, tbs_len);
    if (!add_sigalg(&cert, sig_type) || !CBB_add_asn1(&cert, &bits, CBS_ASN1_BITSTRING) ||
        !CBB_add_u8(&bits, 0) || !CBB_add_space(&bits, &p, sig_len)) {
        return -E2BIG;
    }
    ASSERT(p <= der + CERT_SIG_OFF);
    memmove(p, der + CERT_SIG_OFF, sig_len);
    if (!CBB_finish(&cbb, NULL, &len)) {
        return -E2BIG;
    }
    ASSERT(len > tbs_len + sig_len);
    *out_len = len;
    return 0;
}

int cert_pem_encode(char *out, size_t cap, size_t *out_len, const uint8_t *der, size_t der_len)
{
    static const char begin[] = "-----BEGIN CERTIFICATE-----\n";
    static const char end[] = "-----END CERTIFICATE-----\n";
    ASSERT(out != NULL);
    ASSERT(der != NULL);
    size_t lines = (der_len + 47) / 48;
    if (cap < sizeof(begin) + sizeof(end) + lines * 65 + 1) {
        return -E2BIG;
    }
    size_t n = sizeof(begin) - 1;
    memcpy(out, begin, n);
    for (size_t off = 0; off < der_len; off += 48) {
        size_t chunk = der_len - off < 48 ? der_len - off : 48;
        n += EVP_EncodeBlock((uint8_t *)out + n, der + off, chunk); /* writes a NUL too */
        out[n++] = '\n';
    }
    memcpy(out + n, end, sizeof(end)); /* with its NUL */
    n += sizeof(end) - 1;
    ASSERT(n < cap);
    *out_len = n;
    return 0;
}

int cert_sign_one(uint8_t der[SIGNER_CERT_DER_MAX], size_t *out_len, struct hsm_key *signer,
                  const struct cert_spec *spec)
{
    ASSERT(signer != NULL);
    ASSERT(spec->sig_type == hsm_key_get_type(signer));
    size_t tbs_len = 0;
    int rc = cert_tbs_build(der, &tbs_len, spec);
    if (rc != 0) {
        return rc;
    }
    struct hsm_sign_item item;
    cert_sign_item_init(&item, der, tbs_len);
    rc = hsm_key_sign_batch(signer, &item, 1);
    if (rc == 0 && item.rc != 0) {
        rc = -EIO;
    }
    if (rc != 0) {
        return rc;
    }
    return cert_assemble(der, out_len, tbs_len, spec->sig_type, item.sig_len);
}

/* ---- issuance ---- */

uint32_t signer_profile_clamp(const struct signer_profile *p, uint32_t hours)
{
    ASSERT(p != NULL);
    ASSERT(p->min_hours > 0);
    ASSERT(p->min_hours <= p->max_hours);
    uint32_t h = hours == 0 ? p->default_hours : hours;
    h = h < p->min_hours ? p->min_hours : h;
    h = h > p->max_hours ? p->max_hours : h;
    ASSERT(h >= p->min_hours);
    ASSERT(h <= p->max_hours);
    return h;
}

/* uri_sign_in_name strips a leading "sip:" (any case): "sip:alice@example.com" ->
 * "alice@example.com". Local twin of signer_uri_sign_in_name (csr.c), so that cert.c does not
 * depend on the CSR parser. */
static const char *uri_sign_in_name(const char *uri)
{
    return strncasecmp(uri, "sip:", 4) == 0 ? uri + 4 : uri;
}

/* uri_ok accepts what an IA5String URI and a UTF8String CN can carry: printable ASCII. */
static bool uri_ok(const char *uri, size_t len)
{
    if (len <= 4 || strncasecmp(uri, "sip:", 4) != 0) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if (uri[i] <= 0x20 || uri[i] >= 0x7f) {
            return false;
        }
    }
    return true;
}

/* build_leaf fills the item's serial and validity and writes its TBS. 0, -EINVAL, -EBADMSG,
 * -E2BIG. */
static int build_leaf(const struct signer_ca *ca, const struct signer_profile *profile,
                      struct signer_issue *it, size_t *out_tbs_len)
{
    ASSERT(it->csr != NULL);
    ASSERT(it->uri != NULL);
    size_t uri_len = strnlen(it->uri, SIGNER_CERT_DER_MAX);
    if (!uri_ok(it->uri, uri_len)) {
        return -EINVAL;
    }
    const char *name = uri_sign_in_name(it->uri);
    uint32_t hours = signer_profile_clamp(profile, it->hours);
    cert_serial_random(it->serial);
    it->not_before_s = it->now_s - SIGNER_BACKDATE_S;
    it->not_after_s = it->now_s + (int64_t)hours * 3600;
    if (it->not_after_s > ca->not_after_s) {
        it->not_after_s = ca->not_after_s; /* a leaf that outlives its CA fails validation */
    }
    if (it->not_after_s <= it->not_before_s) {
        return -EINVAL; /* the issuing CA has expired */
    }
    struct cert_spec spec = {
        .kind = CERT_KIND_CLIENT,
        .sig_type = hsm_key_get_type(ca->key),
        .serial = it->serial,
        .issuer = ca->issuer,
        .issuer_len = ca->issuer_len,
        .subject_cn = name,
        .subject_cn_len = uri_len - (size_t)(name - it->uri),
        .not_before_s = it->not_before_s,
        .not_after_s = it->not_after_s,
        .spki = it->csr->spki,
        .spki_len = it->csr->spki_len,
        .aki = ca->ski,
        .aki_len = ca->ski_len,
        .key_encipherment = it->csr->key_type == SIGNER_KEY_RSA,
        .san = it->uri,
        .san_len = uri_len,
        .crl_url = ca->crl_url[0] != '\0' ? ca->crl_url : NULL,
        .ocsp_url = ca->ocsp_url[0] != '\0' ? ca->ocsp_url : NULL,
    };
    return cert_tbs_build(it->der, out_tbs_len, &spec);
}

int signer_issue_batch(struct signer_ca *ca, const struct signer_profile *profile,
                       struct signer_issue *items, size_t num_items)
{
    ASSERT(ca != NULL);
    ASSERT(ca->key != NULL);
    ASSERT(num_items <= HSM_BATCH_MAX);
    ASSERT(items != NULL || num_items == 0);
    struct hsm_sign_item sign[HSM_BATCH_MAX];
    uint16_t which[HSM_BATCH_MAX]; /* sign[j] belongs to items[which[j]] */
    size_t num_sign = 0;
    int rc = 0;
    for (size_t i = 0; i < num_items; i++) {
        struct signer_issue *it = &items[i];
        size_t tbs_len = 0;
        it->der_len = 0;
        it->rc = build_leaf(ca, profile, it, &tbs_len);
        if (it->rc != 0) {
            rc = -EIO;
            continue;
        }
        cert_sign_item_init(&sign[num_sign], it->der, tbs_len);
        which[num_sign++] = (uint16_t)i;
    }
    int sign_rc = hsm_key_sign_batch(ca->key, sign, num_sign);
    for (size_t j = 0; j < num_sign; j++) {
        struct signer_issue *it = &items[which[j]];
        if (sign_rc == -EAGAIN || sign[j].rc != 0) {
            it->rc = sign_rc == -EAGAIN ? -EAGAIN : -EIO;
            rc = rc == 0 ? -EIO : rc;
            continue;
        }
        it->rc = cert_assemble(it->der, &it->der_len, sign[j].tbs_len, hsm_key_get_type(ca->key),
                               sign[j].sig_len);
        rc = it->rc != 0 && rc == 0 ? -EIO : rc;
    }
    if (sign_rc == -EAGAIN) {
        rc = -EAGAIN;
    }
    for (size_t i = 0; i < num_items; i++) {
        ASSERT(items[i].rc != 0 || items[i].der_len > 0);
        ASSERT(rc != 0 || items[i].rc == 0);
    }
    return rc;
}

/* ---- serial numbers (README, certprovctl) ---- */

static int hex_value(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

/* Longest serial text accepted (leading zeros and colons included): bounds the scan. */
#define SERIAL_TEXT_MAX 128

int signer_serial_parse(uint8_t out[SIGNER_SERIAL_LEN], const char *text)
{
    ASSERT(out != NULL);
    ASSERT(text != NULL);
    size_t len = strnlen(text, SERIAL_TEXT_MAX + 1);
    if (len == 0 || len > SERIAL_TEXT_MAX) {
        return -EINVAL;
    }
    uint8_t tmp[SIGNER_SERIAL_LEN] = {0};
    size_t digits = 0;      /* significant digits: after leading zeros */
    bool any = false;       /* at least one hex digit */
    bool prev_colon = true; /* no colon first, last or doubled */
    for (size_t i = 0; i < len; i++) {
        if (text[i] == ':') {
            if (prev_colon) {
                return -EINVAL;
            }
            prev_colon = true;
            continue;
        }
        int v = hex_value(text[i]);
        if (v < 0) {
            return -EINVAL;
        }
        any = true;
        prev_colon = false;
        if (digits == 0 && v == 0) {
            continue;
        }
        if (++digits > 2 * SIGNER_SERIAL_LEN) {
            return -EINVAL;
        }
        /* shift the big-endian number left by one hex digit and add v */
        for (size_t k = 0; k + 1 < SIGNER_SERIAL_LEN; k++) {
            tmp[k] = (uint8_t)((tmp[k] << 4) | (tmp[k + 1] >> 4));
        }
        tmp[SIGNER_SERIAL_LEN - 1] = (uint8_t)((tmp[SIGNER_SERIAL_LEN - 1] << 4) | v);
    }
    if (!any || prev_colon) {
        return -EINVAL;
    }
    memcpy(out, tmp, SIGNER_SERIAL_LEN);
    return 0;
}

void signer_serial_format(char *out, const uint8_t serial[SIGNER_SERIAL_LEN])
{
    ASSERT(serial != NULL);
    (void)base_serial_hex(out, 2 * SIGNER_SERIAL_LEN + 1, serial, SIGNER_SERIAL_LEN);
}
