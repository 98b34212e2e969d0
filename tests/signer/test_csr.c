/* Tests of CSR intake: signer_csr_decode, _parse, _verify, signer_identity_check and the refusal
 * table. Vectors come from tests/data/csr/ (see tests/data/README.md); the tests run from the
 * repository root. Every parser input ends at a PROT_NONE guard page. */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include <openssl/base64.h>
#include <openssl/bytestring.h>
#include <openssl/nid.h>

#include "base/base.h"
#include "signer/signer.h"
#include "tests/util/guard.h"

#define ALICE "sip:alice@example.com"

/* ---- helpers ---- */

static size_t vector_read(uint8_t *out, size_t cap, const char *name)
{
    char path[256];
    int n = snprintf(path, sizeof(path), "tests/data/csr/%s", name);
    cr_assert(n > 0 && (size_t)n < sizeof(path));
    size_t len = 0;
    int rc = base_file_read(out, &len, cap, path);
    cr_assert_eq(rc, 0, "reading %s: %d (run the tests from the repository root)", path, rc);
    return len;
}

/* A vector (or a built DER) parsed from a guarded copy. */
struct parsed {
    uint8_t *der;
    size_t len;
    int rc;
    enum signer_reject reason;
    struct signer_csr csr;
};

static void parsed_bytes(struct parsed *p, const uint8_t *der, size_t len)
{
    memset(p, 0, sizeof(*p));
    p->der = guard_copy(der, len);
    p->len = len;
    p->reason = SIGNER_REJECT_MAX_;
    p->rc = signer_csr_parse(&p->csr, &p->reason, p->der, len);
}

static void parsed_vector(struct parsed *p, const char *name)
{
    static uint8_t buf[SIGNER_CSR_DER_MAX];
    size_t len = vector_read(buf, sizeof(buf), name);
    parsed_bytes(p, buf, len);
}

static void parsed_free(struct parsed *p)
{
    guard_free(p->der, p->len);
    p->der = NULL;
}

static bool csr_is_zero(const struct signer_csr *csr)
{
    static const struct signer_csr zero;
    return memcmp(csr, &zero, sizeof(zero)) == 0;
}

static bool span_equal(const uint8_t *p, size_t len, const char *s)
{
    return len == strlen(s) && memcmp(p, s, len) == 0;
}

/* The three parts of a CertificationRequest, as elements (tag and length included). */
struct parts {
    CBS info, alg, sig;
};

static void split(struct parts *out, const uint8_t *der, size_t len)
{
    CBS in, req;
    CBS_init(&in, der, len);
    cr_assert(CBS_get_asn1(&in, &req, CBS_ASN1_SEQUENCE));
    cr_assert(CBS_get_asn1_element(&req, &out->info, CBS_ASN1_SEQUENCE));
    cr_assert(CBS_get_asn1_element(&req, &out->alg, CBS_ASN1_SEQUENCE));
    cr_assert(CBS_get_asn1_element(&req, &out->sig, CBS_ASN1_BITSTRING));
    cr_assert_eq(CBS_len(&req), 0);
}

/* assemble writes SEQUENCE { info, alg, sig } (each already DER elements) into out. */
static size_t assemble(uint8_t *out, size_t cap, const CBS *info, const CBS *alg, const CBS *sig)
{
    CBB cbb, req;
    size_t len = 0;
    cr_assert(CBB_init_fixed(&cbb, out, cap));
    cr_assert(CBB_add_asn1(&cbb, &req, CBS_ASN1_SEQUENCE));
    cr_assert(CBB_add_bytes(&req, CBS_data(info), CBS_len(info)));
    cr_assert(CBB_add_bytes(&req, CBS_data(alg), CBS_len(alg)));
    cr_assert(CBB_add_bytes(&req, CBS_data(sig), CBS_len(sig)));
    cr_assert(CBB_finish(&cbb, NULL, &len));
    return len;
}

static void expect_refused(const char *name, int rc, enum signer_reject reason)
{
    struct parsed p;
    parsed_vector(&p, name);
    cr_expect_eq(p.rc, rc, "%s: rc %d, want %d", name, p.rc, rc);
    cr_expect_eq(p.reason, reason, "%s: reason %d (%s), want %d", name, p.reason,
                 signer_reject_text(p.reason), reason);
    cr_expect(csr_is_zero(&p.csr), "%s: out must stay zeroed on failure", name);
    parsed_free(&p);
}

/* ---- accepted keys ---- */

struct accepted {
    const char *name;
    enum signer_key_type type;
    unsigned bits;
    int sig_nid;
};

static const struct accepted accepted[] = {
    {"rsa2048-sha256.der", SIGNER_KEY_RSA, 2048, NID_sha256WithRSAEncryption},
    {"rsa3072-sha256.der", SIGNER_KEY_RSA, 3072, NID_sha256WithRSAEncryption},
    {"rsa4096-sha256.der", SIGNER_KEY_RSA, 4096, NID_sha256WithRSAEncryption},
    {"p256-sha256.der", SIGNER_KEY_P256, 256, NID_ecdsa_with_SHA256},
    {"p384-sha256.der", SIGNER_KEY_P384, 384, NID_ecdsa_with_SHA256},
    {"p384-sha384.der", SIGNER_KEY_P384, 384, NID_ecdsa_with_SHA384},
    {"ed25519.der", SIGNER_KEY_ED25519, 255, NID_ED25519},
};

Test(csr_parse, accepts_each_key_and_verifies)
{
    for (size_t i = 0; i < ARRAY_LEN(accepted); i++) {
        const struct accepted *a = &accepted[i];
        struct parsed p;
        parsed_vector(&p, a->name);
        cr_assert_eq(p.rc, 0, "%s: rc %d reason %s", a->name, p.rc, signer_reject_text(p.reason));
        cr_expect_eq(p.reason, SIGNER_REJECT_NONE);
        cr_expect_eq(p.csr.key_type, a->type, "%s", a->name);
        cr_expect_eq(p.csr.key_bits, a->bits, "%s", a->name);
        cr_expect_eq(p.csr.sig_nid, a->sig_nid, "%s", a->name);
        cr_expect(p.csr.der == p.der && p.csr.der_len == p.len);
        cr_expect(p.csr.info > p.der && p.csr.info + p.csr.info_len < p.der + p.len);
        cr_expect(p.csr.spki > p.csr.info && p.csr.spki_len > 32);
        cr_expect(p.csr.sig + p.csr.sig_len == p.der + p.len, "%s: sig ends the DER", a->name);
        cr_expect(span_equal(p.csr.subject_cn, p.csr.subject_cn_len, "alice@example.com"));
        cr_expect_eq(p.csr.num_subject_cns, 1);
        cr_expect_eq(p.csr.num_subject_rdns, 1);
        cr_expect_eq(p.csr.num_sans, 0);

        enum signer_reject reason = SIGNER_REJECT_MAX_;
        cr_expect_eq(signer_csr_verify(&p.csr, &reason), 0, "%s: verify", a->name);
        cr_expect_eq(reason, SIGNER_REJECT_NONE);
        reason = SIGNER_REJECT_MAX_;
        cr_expect_eq(signer_identity_check(&p.csr, &reason, ALICE), 0);
        cr_expect_eq(reason, SIGNER_REJECT_NONE);
        parsed_free(&p);
    }
}

/* ---- refused keys and signatures ---- */

Test(csr_parse, refuses_small_rsa)
{
    expect_refused("rsa1024-sha256.der", -EPERM, SIGNER_REJECT_KEY_RSA_SMALL);
}

Test(csr_parse, refuses_rsa_exponent_3)
{
    expect_refused("rsa-e3-sha256.der", -EPERM, SIGNER_REJECT_KEY_RSA_EXPONENT);
}

Test(csr_parse, refuses_p192_and_secp256k1)
{
    expect_refused("p192-sha256.der", -EPERM, SIGNER_REJECT_KEY_UNSUPPORTED);
    expect_refused("secp256k1-sha256.der", -EPERM, SIGNER_REJECT_KEY_UNSUPPORTED);
}

Test(csr_parse, refuses_sha1_and_md5)
{
    expect_refused("rsa2048-sha1.der", -EPERM, SIGNER_REJECT_SIG_WEAK);
    expect_refused("rsa2048-md5.der", -EPERM, SIGNER_REJECT_SIG_WEAK);
}

Test(csr_parse, refuses_rsa_pss)
{
    expect_refused("rsa2048-pss.der", -EPERM, SIGNER_REJECT_SIG_UNSUPPORTED);
}

Test(csr_parse, refuses_too_many_extensions_sans_rdns)
{
    expect_refused("many-extensions.der", -E2BIG, SIGNER_REJECT_CSR_TOO_COMPLEX);
    expect_refused("many-sans.der", -E2BIG, SIGNER_REJECT_CSR_TOO_COMPLEX);
    expect_refused("many-rdns.der", -E2BIG, SIGNER_REJECT_CSR_TOO_COMPLEX);
}

Test(csr_verify, refuses_bad_signature)
{
    struct parsed p;
    parsed_vector(&p, "bad-signature.der");
    cr_assert_eq(p.rc, 0, "a bad signature still parses");
    enum signer_reject reason = SIGNER_REJECT_NONE;
    cr_expect_eq(signer_csr_verify(&p.csr, &reason), -EPERM);
    cr_expect_eq(reason, SIGNER_REJECT_CSR_SIGNATURE);
    parsed_free(&p);
}

/* A signature algorithm of the wrong family for the key: the RSA CSR relabelled ECDSA, and the
 * P-256 CSR relabelled RSA. */
Test(csr_parse, refuses_sig_algorithm_key_mismatch)
{
    static const uint8_t ecdsa_sha256[] = {0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86,
                                           0x48, 0xce, 0x3d, 0x04, 0x03, 0x02};
    static const uint8_t rsa_sha256[] = {0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86,
                                         0xf7, 0x0d, 0x01, 0x01, 0x0b, 0x05, 0x00};
    const char *names[] = {"rsa2048-sha256.der", "p256-sha256.der"};
    const uint8_t *algs[] = {ecdsa_sha256, rsa_sha256};
    const size_t alg_lens[] = {sizeof(ecdsa_sha256), sizeof(rsa_sha256)};
    for (size_t i = 0; i < 2; i++) {
        uint8_t in[SIGNER_CSR_DER_MAX], out[SIGNER_CSR_DER_MAX];
        size_t in_len = vector_read(in, sizeof(in), names[i]);
        struct parts parts;
        split(&parts, in, in_len);
        CBS alg;
        CBS_init(&alg, algs[i], alg_lens[i]);
        size_t len = assemble(out, sizeof(out), &parts.info, &alg, &parts.sig);
        struct parsed p;
        parsed_bytes(&p, out, len);
        cr_expect_eq(p.rc, -EPERM, "%s", names[i]);
        cr_expect_eq(p.reason, SIGNER_REJECT_SIG_UNSUPPORTED, "%s", names[i]);
        parsed_free(&p);
    }
}

/* ---- structure ---- */

/* The version INTEGER is found with CBS in a valid CSR and rewritten in place. */
Test(csr_parse, refuses_wrong_version)
{
    uint8_t der[SIGNER_CSR_DER_MAX];
    size_t len = vector_read(der, sizeof(der), "p256-sha256.der");
    CBS in, req, info, version;
    CBS_init(&in, der, len);
    cr_assert(CBS_get_asn1(&in, &req, CBS_ASN1_SEQUENCE));
    cr_assert(CBS_get_asn1(&req, &info, CBS_ASN1_SEQUENCE));
    cr_assert(CBS_get_asn1(&info, &version, CBS_ASN1_INTEGER));
    cr_assert_eq(CBS_len(&version), 1);
    size_t off = (size_t)(CBS_data(&version) - der);
    cr_assert_eq(der[off], 0x00);
    const uint8_t versions[] = {0x01, 0x02, 0x7f, 0xff};
    for (size_t i = 0; i < sizeof(versions); i++) {
        der[off] = versions[i];
        struct parsed p;
        parsed_bytes(&p, der, len);
        cr_expect_eq(p.rc, -EBADMSG, "version byte %#x", versions[i]);
        cr_expect_eq(p.reason, SIGNER_REJECT_CSR_VERSION, "version byte %#x", versions[i]);
        cr_expect(csr_is_zero(&p.csr));
        parsed_free(&p);
    }
}

/* Every prefix of every vector, each ending at a guard page: an error, never a crash. */
Test(csr_parse, truncation_at_every_length)
{
    static const char *const names[] = {"rsa4096-sha256.der", "p384-sha384.der", "ed25519.der",
                                        "alice-san-mixed.der", "no-cn-no-san.der"};
    for (size_t i = 0; i < ARRAY_LEN(names); i++) {
        uint8_t der[SIGNER_CSR_DER_MAX];
        size_t len = vector_read(der, sizeof(der), names[i]);
        for (size_t n = 0; n < len; n++) {
            struct parsed p;
            parsed_bytes(&p, der, n);
            cr_assert_eq(p.rc, -EBADMSG, "%s cut at %zu: rc %d", names[i], n, p.rc);
            cr_assert_eq(p.reason, SIGNER_REJECT_CSR_MALFORMED, "%s cut at %zu", names[i], n);
            cr_assert(csr_is_zero(&p.csr));
            parsed_free(&p);
        }
    }
}

/* cut_elements copies the DER elements of `in` into `out`, dropping every byte at or after
 * `cut` and fixing the lengths of the elements around it: a truncation that keeps every
 * enclosing length right, so the walk meets each inner element cut short. */
static void cut_elements(CBB *out, CBS in, const uint8_t *cut)
{
    while (CBS_len(&in) > 0 && CBS_data(&in) < cut) {
        CBS el;
        unsigned tag = 0;
        size_t header_len = 0;
        cr_assert(CBS_get_any_asn1_element(&in, &el, &tag, &header_len));
        if (CBS_data(&el) + CBS_len(&el) <= cut) {
            cr_assert(CBB_add_bytes(out, CBS_data(&el), CBS_len(&el)));
            continue;
        }
        if (CBS_data(&el) + header_len >= cut) {
            return; /* the cut falls in the header: the element goes */
        }
        CBS contents;
        CBB child;
        CBS_init(&contents, CBS_data(&el) + header_len, CBS_len(&el) - header_len);
        cr_assert(CBB_add_asn1(out, &child, tag));
        if ((tag & CBS_ASN1_CONSTRUCTED) != 0) {
            cut_elements(&child, contents, cut);
        } else {
            cr_assert(
                CBB_add_bytes(&child, CBS_data(&contents), (size_t)(cut - CBS_data(&contents))));
        }
        cr_assert(CBB_flush(out));
        return;
    }
}

/* Truncation at every length with the enclosing lengths fixed up. Everything after the cut goes,
 * so the signature always suffers: malformed until at least one signature byte survives, after
 * which the request parses and its (shortened) signature fails to verify. */
Test(csr_parse, nested_truncation_at_every_length)
{
    static const char *const names[] = {"rsa2048-sha256.der", "p384-sha384.der", "ed25519.der",
                                        "alice-san-mixed.der", "no-cn-no-san.der"};
    for (size_t i = 0; i < ARRAY_LEN(names); i++) {
        uint8_t der[SIGNER_CSR_DER_MAX], out[SIGNER_CSR_DER_MAX];
        size_t len = vector_read(der, sizeof(der), names[i]);
        struct parts parts;
        split(&parts, der, len);
        CBS sig = parts.sig, sig_contents;
        cr_assert(CBS_get_asn1(&sig, &sig_contents, CBS_ASN1_BITSTRING));
        size_t first_sig_byte = (size_t)(CBS_data(&sig_contents) - der) + 1;
        for (size_t k = 0; k < len; k++) {
            CBB cbb;
            CBS all;
            size_t out_len = 0;
            CBS_init(&all, der, len);
            cr_assert(CBB_init_fixed(&cbb, out, sizeof(out)));
            cut_elements(&cbb, all, der + k);
            cr_assert(CBB_finish(&cbb, NULL, &out_len));
            struct parsed p;
            parsed_bytes(&p, out, out_len);
            if (k <= first_sig_byte) {
                cr_assert_eq(p.rc, -EBADMSG, "%s cut at %zu: rc %d", names[i], k, p.rc);
                cr_assert_eq(p.reason, SIGNER_REJECT_CSR_MALFORMED, "%s cut at %zu: %d", names[i],
                             k, p.reason);
                cr_assert(csr_is_zero(&p.csr));
            } else {
                cr_assert_eq(p.rc, 0, "%s cut in the signature at %zu", names[i], k);
                enum signer_reject reason = SIGNER_REJECT_NONE;
                cr_assert_eq(signer_csr_verify(&p.csr, &reason), -EPERM);
                cr_assert_eq(reason, SIGNER_REJECT_CSR_SIGNATURE);
            }
            parsed_free(&p);
        }
    }
}

Test(csr_parse, refuses_trailing_garbage)
{
    uint8_t der[SIGNER_CSR_DER_MAX + 1];
    size_t len = vector_read(der, sizeof(der) - 1, "p256-sha256.der");
    const uint8_t tails[] = {0x00, 0x30, 0xff};
    for (size_t i = 0; i < sizeof(tails); i++) {
        der[len] = tails[i];
        struct parsed p;
        parsed_bytes(&p, der, len + 1);
        cr_expect_eq(p.rc, -EBADMSG);
        cr_expect_eq(p.reason, SIGNER_REJECT_CSR_MALFORMED);
        parsed_free(&p);
    }
}

Test(csr_parse, refuses_over_limit_size)
{
    static uint8_t big[SIGNER_CSR_DER_MAX + 1];
    memset(big, 0x30, sizeof(big));
    struct parsed p;
    parsed_bytes(&p, big, sizeof(big));
    cr_expect_eq(p.rc, -E2BIG);
    cr_expect_eq(p.reason, SIGNER_REJECT_CSR_TOO_LARGE);
    parsed_free(&p);
}

/* xorshift64: a fixed, reproducible stream for the garbage tests. */
static uint64_t rng_next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *s = x;
    return x;
}

Test(csr_parse, refuses_garbage_and_random_bytes)
{
    static const char *const garbage[] = {"",
                                          "\x30",
                                          "\x30\x00",
                                          "\x30\x80\x00\x00",
                                          "\x30\x03\x02\x01\x00",
                                          "hello",
                                          "\x30\x84\xff\xff"};
    for (size_t i = 0; i < ARRAY_LEN(garbage); i++) {
        struct parsed p;
        parsed_bytes(&p, (const uint8_t *)garbage[i], strlen(garbage[i]));
        cr_expect_eq(p.rc, -EBADMSG, "garbage %zu", i);
        cr_expect_eq(p.reason, SIGNER_REJECT_CSR_MALFORMED, "garbage %zu", i);
        parsed_free(&p);
    }
    uint64_t seed = 0x9e3779b97f4a7c15u;
    for (size_t i = 0; i < 2000; i++) {
        uint8_t buf[512];
        size_t len = (size_t)(rng_next(&seed) % sizeof(buf));
        for (size_t j = 0; j < len; j++) {
            buf[j] = (uint8_t)rng_next(&seed);
        }
        if (len > 0 && i % 2 == 0) {
            buf[0] = 0x30; /* a SEQUENCE tag, to get past the first check */
        }
        struct parsed p;
        parsed_bytes(&p, buf, len);
        cr_assert(p.rc < 0, "random input %zu parsed", i);
        cr_assert_neq(p.reason, SIGNER_REJECT_NONE);
        parsed_free(&p);
    }
}

/* Random byte flips in valid CSRs: any answer but a crash; whatever parses also verifies or
 * fails cleanly. */
Test(csr_parse, survives_mutations)
{
    static const char *const names[] = {"rsa2048-sha256.der", "p256-sha256.der", "ed25519.der",
                                        "alice-san-mixed.der"};
    uint64_t seed = 0x243f6a8885a308d3u;
    for (size_t i = 0; i < ARRAY_LEN(names); i++) {
        uint8_t der[SIGNER_CSR_DER_MAX];
        size_t len = vector_read(der, sizeof(der), names[i]);
        for (size_t k = 0; k < 500; k++) {
            uint8_t m[SIGNER_CSR_DER_MAX];
            memcpy(m, der, len);
            size_t flips = 1 + (size_t)(rng_next(&seed) % 3);
            for (size_t f = 0; f < flips; f++) {
                m[rng_next(&seed) % len] ^= (uint8_t)(1u << (rng_next(&seed) % 8));
            }
            struct parsed p;
            parsed_bytes(&p, m, len);
            if (p.rc == 0) {
                enum signer_reject reason = SIGNER_REJECT_MAX_;
                int rc = signer_csr_verify(&p.csr, &reason);
                cr_assert(rc == 0 || reason == SIGNER_REJECT_CSR_SIGNATURE ||
                          reason == SIGNER_REJECT_KEY_INVALID);
            } else {
                cr_assert_neq(p.reason, SIGNER_REJECT_NONE);
            }
            parsed_free(&p);
        }
    }
}

/* build_with_attributes splices `attrs` (the contents of [0] Attributes) into the info of a
 * valid P-256 CSR, keeping its signature (parse does not verify it). */
static size_t build_with_attributes(uint8_t *out, size_t cap, const uint8_t *attrs,
                                    size_t attrs_len)
{
    uint8_t der[SIGNER_CSR_DER_MAX], info_buf[SIGNER_CSR_DER_MAX];
    size_t len = vector_read(der, sizeof(der), "p256-sha256.der");
    struct parts parts;
    split(&parts, der, len);
    CBS info = parts.info, body, version, subject, spki;
    cr_assert(CBS_get_asn1(&info, &body, CBS_ASN1_SEQUENCE));
    cr_assert(CBS_get_asn1_element(&body, &version, CBS_ASN1_INTEGER));
    cr_assert(CBS_get_asn1_element(&body, &subject, CBS_ASN1_SEQUENCE));
    cr_assert(CBS_get_asn1_element(&body, &spki, CBS_ASN1_SEQUENCE));

    CBB cbb, seq, a;
    size_t info_len = 0;
    cr_assert(CBB_init_fixed(&cbb, info_buf, sizeof(info_buf)));
    cr_assert(CBB_add_asn1(&cbb, &seq, CBS_ASN1_SEQUENCE));
    cr_assert(CBB_add_bytes(&seq, CBS_data(&version), CBS_len(&version)));
    cr_assert(CBB_add_bytes(&seq, CBS_data(&subject), CBS_len(&subject)));
    cr_assert(CBB_add_bytes(&seq, CBS_data(&spki), CBS_len(&spki)));
    cr_assert(CBB_add_asn1(&seq, &a, CBS_ASN1_CONTEXT_SPECIFIC | CBS_ASN1_CONSTRUCTED | 0));
    cr_assert(CBB_add_bytes(&a, attrs, attrs_len));
    cr_assert(CBB_finish(&cbb, NULL, &info_len));
    CBS new_info;
    CBS_init(&new_info, info_buf, info_len);
    return assemble(out, cap, &new_info, &parts.alg, &parts.sig);
}

/* OIDs under the RFC 5612 example enterprise number 1.3.6.1.4.1.32473, plus one arc. */
static const uint8_t example_oid[] = {0x2b, 0x06, 0x01, 0x04, 0x01, 0x81, 0xfd, 0x59, 0x02};
static const uint8_t oid_ext_req[] = {0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x0e};
static const uint8_t oid_san[] = {0x55, 0x1d, 0x11};

static void add_oid(CBB *cbb, const uint8_t *oid, size_t oid_len, int arc)
{
    CBB o;
    cr_assert(CBB_add_asn1(cbb, &o, CBS_ASN1_OBJECT));
    cr_assert(CBB_add_bytes(&o, oid, oid_len));
    if (arc >= 0) {
        cr_assert(CBB_add_u8(&o, (uint8_t)arc));
    }
    cr_assert(CBB_flush(cbb));
}

/* add_ext_req adds an extensionRequest attribute whose Extensions contents are `exts`. */
static void add_ext_req(CBB *attrs, const uint8_t *exts, size_t exts_len)
{
    CBB attr, set, seq;
    cr_assert(CBB_add_asn1(attrs, &attr, CBS_ASN1_SEQUENCE));
    add_oid(&attr, oid_ext_req, sizeof(oid_ext_req), -1);
    cr_assert(CBB_add_asn1(&attr, &set, CBS_ASN1_SET));
    cr_assert(CBB_add_asn1(&set, &seq, CBS_ASN1_SEQUENCE));
    cr_assert(CBB_add_bytes(&seq, exts, exts_len));
    cr_assert(CBB_flush(attrs));
}

/* add_ext adds an Extension with `oid` (plus `arc` unless negative) and `value`. */
static void add_ext(CBB *exts, const uint8_t *oid, size_t oid_len, int arc, const uint8_t *value,
                    size_t value_len)
{
    CBB ext, octets;
    cr_assert(CBB_add_asn1(exts, &ext, CBS_ASN1_SEQUENCE));
    add_oid(&ext, oid, oid_len, arc);
    cr_assert(CBB_add_asn1(&ext, &octets, CBS_ASN1_OCTETSTRING));
    cr_assert(CBB_add_bytes(&octets, value, value_len));
    cr_assert(CBB_flush(exts));
}

struct built {
    uint8_t buf[SIGNER_CSR_DER_MAX];
    CBB cbb;
};

static CBB *built_start(struct built *b)
{
    cr_assert(CBB_init_fixed(&b->cbb, b->buf, sizeof(b->buf)));
    return &b->cbb;
}

static void built_parse(struct built *b, struct parsed *p)
{
    uint8_t der[SIGNER_CSR_DER_MAX];
    size_t len = 0;
    cr_assert(CBB_finish(&b->cbb, NULL, &len));
    size_t der_len = build_with_attributes(der, sizeof(der), b->buf, len);
    parsed_bytes(p, der, der_len);
}

static void parse_with_attributes(struct parsed *p, size_t num_attrs)
{
    static struct built b;
    CBB *attrs = built_start(&b);
    for (size_t i = 0; i < num_attrs; i++) {
        CBB attr, set, null;
        cr_assert(CBB_add_asn1(attrs, &attr, CBS_ASN1_SEQUENCE));
        add_oid(&attr, example_oid, sizeof(example_oid), (int)i + 1);
        cr_assert(CBB_add_asn1(&attr, &set, CBS_ASN1_SET));
        cr_assert(CBB_add_asn1(&set, &null, CBS_ASN1_NULL));
        cr_assert(CBB_flush(attrs));
    }
    built_parse(&b, p);
}

Test(csr_parse, bounds_attributes)
{
    struct parsed p;
    parse_with_attributes(&p, SIGNER_CSR_ATTRS_MAX);
    cr_expect_eq(p.rc, 0, "16 attributes are fine (reason %d)", p.reason);
    parsed_free(&p);
    parse_with_attributes(&p, SIGNER_CSR_ATTRS_MAX + 1);
    cr_expect_eq(p.rc, -E2BIG);
    cr_expect_eq(p.reason, SIGNER_REJECT_CSR_TOO_COMPLEX);
    parsed_free(&p);
}

/* An extensionRequest with `num_exts` extensions, the first `num_sans` names in a SAN. */
static void parse_with_extensions(struct parsed *p, size_t num_exts, size_t num_sans)
{
    static struct built b;
    uint8_t exts_buf[SIGNER_CSR_DER_MAX], san_buf[1024];
    size_t exts_len = 0, san_len = 0;
    CBB exts, san, names;
    cr_assert(CBB_init_fixed(&san, san_buf, sizeof(san_buf)));
    cr_assert(CBB_add_asn1(&san, &names, CBS_ASN1_SEQUENCE));
    for (size_t i = 0; i < num_sans; i++) {
        CBB name;
        cr_assert(CBB_add_asn1(&names, &name, CBS_ASN1_CONTEXT_SPECIFIC | 6));
        cr_assert(CBB_add_bytes(&name, (const uint8_t *)ALICE, strlen(ALICE)));
        cr_assert(CBB_flush(&names));
    }
    cr_assert(CBB_finish(&san, NULL, &san_len));
    cr_assert(CBB_init_fixed(&exts, exts_buf, sizeof(exts_buf)));
    if (num_sans > 0) {
        add_ext(&exts, oid_san, sizeof(oid_san), -1, san_buf, san_len);
    }
    for (size_t i = num_sans > 0 ? 1 : 0; i < num_exts; i++) {
        static const uint8_t null[] = {0x05, 0x00};
        add_ext(&exts, example_oid, sizeof(example_oid), (int)i + 1, null, sizeof(null));
    }
    cr_assert(CBB_finish(&exts, NULL, &exts_len));
    add_ext_req(built_start(&b), exts_buf, exts_len);
    built_parse(&b, p);
}

Test(csr_parse, bounds_extensions_and_sans)
{
    struct parsed p;
    parse_with_extensions(&p, SIGNER_CSR_EXTS_MAX, SIGNER_CSR_SANS_MAX);
    cr_expect_eq(p.rc, 0, "at the limits (reason %d)", p.reason);
    cr_expect_eq(p.csr.num_sans, SIGNER_CSR_SANS_MAX);
    parsed_free(&p);
    parse_with_extensions(&p, SIGNER_CSR_EXTS_MAX + 1, 1);
    cr_expect_eq(p.rc, -E2BIG);
    cr_expect_eq(p.reason, SIGNER_REJECT_CSR_TOO_COMPLEX);
    parsed_free(&p);
    parse_with_extensions(&p, 1, SIGNER_CSR_SANS_MAX + 1);
    cr_expect_eq(p.rc, -E2BIG);
    cr_expect_eq(p.reason, SIGNER_REJECT_CSR_TOO_COMPLEX);
    parsed_free(&p);
}

static void expect_malformed_exts(const char *what, const uint8_t *exts, size_t exts_len,
                                  bool twice)
{
    static struct built b;
    CBB *attrs = built_start(&b);
    add_ext_req(attrs, exts, exts_len);
    if (twice) {
        add_ext_req(attrs, exts, exts_len);
    }
    struct parsed p;
    built_parse(&b, &p);
    cr_expect_eq(p.rc, -EBADMSG, "%s: rc %d", what, p.rc);
    cr_expect_eq(p.reason, SIGNER_REJECT_CSR_MALFORMED, "%s: reason %d", what, p.reason);
    parsed_free(&p);
}

Test(csr_parse, refuses_bad_extensions)
{
    /* SAN { URI "sip:bob@example.com" } */
    static const uint8_t san_bob[] = {0x30, 0x15, 0x86, 0x13, 's', 'i', 'p', ':',
                                      'b',  'o',  'b',  '@',  'e', 'x', 'a', 'm',
                                      'p',  'l',  'e',  '.',  'c', 'o', 'm'};
    static const uint8_t san_empty[] = {0x30, 0x00};
    static const uint8_t san_universal[] = {0x30, 0x03, 0x16, 0x01, 'x'}; /* IA5String */
    static const uint8_t san_constructed_uri[] = {0x30, 0x04, 0xa6, 0x02, 0x05, 0x00};
    static const uint8_t san_trailing[] = {0x30, 0x03, 0x82, 0x01, 'x', 0x00};
    uint8_t buf[256];
    size_t len = 0;
    CBB exts;

    cr_assert(CBB_init_fixed(&exts, buf, sizeof(buf)));
    add_ext(&exts, oid_san, sizeof(oid_san), -1, san_bob, sizeof(san_bob));
    add_ext(&exts, oid_san, sizeof(oid_san), -1, san_bob, sizeof(san_bob));
    cr_assert(CBB_finish(&exts, NULL, &len));
    expect_malformed_exts("duplicate SAN", buf, len, false);

    cr_assert(CBB_init_fixed(&exts, buf, sizeof(buf)));
    add_ext(&exts, oid_san, sizeof(oid_san), -1, san_bob, sizeof(san_bob));
    cr_assert(CBB_finish(&exts, NULL, &len));
    expect_malformed_exts("two extensionRequests", buf, len, true);

    const uint8_t *bad[] = {san_empty, san_universal, san_constructed_uri, san_trailing};
    const size_t bad_lens[] = {sizeof(san_empty), sizeof(san_universal),
                               sizeof(san_constructed_uri), sizeof(san_trailing)};
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        cr_assert(CBB_init_fixed(&exts, buf, sizeof(buf)));
        add_ext(&exts, oid_san, sizeof(oid_san), -1, bad[i], bad_lens[i]);
        cr_assert(CBB_finish(&exts, NULL, &len));
        expect_malformed_exts("bad SAN", buf, len, false);
    }
}

Test(csr_parse, reads_every_san)
{
    struct parsed p;
    parsed_vector(&p, "alice-san-mixed.der");
    cr_assert_eq(p.rc, 0);
    cr_assert_eq(p.csr.num_sans, 3);
    cr_expect_eq(p.csr.sans[0].type, SIGNER_SAN_EMAIL);
    cr_expect(span_equal(p.csr.sans[0].value, p.csr.sans[0].value_len, "alice@example.com"));
    cr_expect_eq(p.csr.sans[1].type, SIGNER_SAN_URI);
    cr_expect(span_equal(p.csr.sans[1].value, p.csr.sans[1].value_len, ALICE));
    cr_expect_eq(p.csr.sans[2].type, SIGNER_SAN_DNS);
    cr_expect(span_equal(p.csr.sans[2].value, p.csr.sans[2].value_len, "phone.example.com"));
    parsed_free(&p);
}

Test(csr_parse, asserts_on_dirty_out, .signal = SIGABRT)
{
    struct signer_csr csr = {.der = (const uint8_t *)"x"};
    enum signer_reject reason;
    (void)signer_csr_parse(&csr, &reason, (const uint8_t *)"", 0);
}

/* ---- decode ---- */

struct decoded {
    int rc;
    enum signer_reject reason;
    size_t len;
    uint8_t out[SIGNER_CSR_DER_MAX];
};

static void decode(struct decoded *d, size_t cap, const void *in, size_t in_len)
{
    ASSERT(cap <= sizeof(d->out));
    uint8_t *g = guard_copy(in, in_len);
    d->len = 0;
    d->reason = SIGNER_REJECT_MAX_;
    d->rc = signer_csr_decode(d->out, cap, &d->len, &d->reason, g, in_len);
    guard_free(g, in_len);
}

Test(csr_decode, passes_der_through)
{
    static struct decoded d;
    uint8_t der[SIGNER_CSR_DER_MAX];
    size_t len = vector_read(der, sizeof(der), "p256-sha256.der");
    decode(&d, sizeof(d.out), der, len);
    cr_assert_eq(d.rc, 0);
    cr_expect_eq(d.reason, SIGNER_REJECT_NONE);
    cr_assert_eq(d.len, len);
    cr_expect_arr_eq(d.out, der, len);
}

Test(csr_decode, reads_pem_with_both_labels)
{
    static struct decoded d;
    uint8_t der[SIGNER_CSR_DER_MAX], pem[SIGNER_CSR_DER_MAX];
    char alt[SIGNER_CSR_DER_MAX];
    size_t der_len = vector_read(der, sizeof(der), "p256-sha256.der");
    size_t pem_len = vector_read(pem, sizeof(pem) - 1, "p256-sha256.pem");
    decode(&d, sizeof(d.out), pem, pem_len);
    cr_assert_eq(d.rc, 0, "reason %d", d.reason);
    cr_assert_eq(d.len, der_len);
    cr_expect_arr_eq(d.out, der, der_len);

    /* The same body under the NEW CERTIFICATE REQUEST label, with leading blank lines. */
    pem[pem_len] = '\0';
    const char *body = strstr((const char *)pem, "REQUEST-----") + strlen("REQUEST-----");
    const char *end = strstr(body, "-----END");
    int n = snprintf(alt, sizeof(alt),
                     "\r\n\n-----BEGIN NEW CERTIFICATE REQUEST-----%.*s"
                     "-----END NEW CERTIFICATE REQUEST-----\r\n",
                     (int)(end - body), body);
    cr_assert(n > 0 && (size_t)n < sizeof(alt));
    decode(&d, sizeof(d.out), alt, (size_t)n);
    cr_assert_eq(d.rc, 0, "reason %d", d.reason);
    cr_expect_eq(d.len, der_len);
    cr_expect_arr_eq(d.out, der, der_len);
}

/* Base64 of the DER with whitespace after every character, as some phones send it. */
Test(csr_decode, reads_base64_with_whitespace_everywhere)
{
    static struct decoded d;
    static const char *const ws[] = {" ", "\n", "\r\n", "\t", "  \n "};
    uint8_t der[SIGNER_CSR_DER_MAX], b64[2 * SIGNER_CSR_DER_MAX];
    static char spaced[SIGNER_CSR_TEXT_MAX];
    size_t der_len = vector_read(der, sizeof(der), "rsa2048-sha256.der");
    size_t b64_len = EVP_EncodeBlock(b64, der, der_len);
    size_t n = 0;
    for (size_t i = 0; i < b64_len; i++) {
        const char *w = ws[i % ARRAY_LEN(ws)];
        cr_assert(n + 1 + strlen(w) < sizeof(spaced));
        spaced[n++] = (char)b64[i];
        memcpy(spaced + n, w, strlen(w));
        n += strlen(w);
    }
    decode(&d, sizeof(d.out), spaced, n);
    cr_assert_eq(d.rc, 0, "reason %d", d.reason);
    cr_assert_eq(d.len, der_len);
    cr_expect_arr_eq(d.out, der, der_len);

    /* Without padding and without whitespace. */
    size_t unpadded = b64_len;
    while (unpadded > 0 && b64[unpadded - 1] == '=') {
        unpadded--;
    }
    decode(&d, sizeof(d.out), b64, unpadded);
    cr_assert_eq(d.rc, 0);
    cr_expect_eq(d.len, der_len);
}

Test(csr_decode, refuses_junk)
{
    static struct decoded d;
    static const char *const junk[] = {
        "",
        "   \n",
        "hello world!",
        "%%%%",
        "aGVsbG8=", /* base64 of "hello": not DER */
        "MIIB=AAA", /* padding in the middle */
        "MIIBx",    /* one character left over */
        "MIIB====", /* too much padding */
        "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
        "-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n",
        "-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END NEW CERTIFICATE REQUEST-----\n",
        "-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----\nmore",
        "-----BEGIN CERTIFICATE REQUEST-----\nMI*B\n-----END CERTIFICATE REQUEST-----\n",
    };
    for (size_t i = 0; i < ARRAY_LEN(junk); i++) {
        decode(&d, sizeof(d.out), junk[i], strlen(junk[i]));
        cr_expect_eq(d.rc, -EBADMSG, "junk %zu: rc %d", i, d.rc);
        cr_expect_eq(d.reason, SIGNER_REJECT_CSR_ENCODING, "junk %zu", i);
        cr_expect_eq(d.len, 0, "junk %zu: out_len untouched", i);
    }
}

Test(csr_decode, refuses_over_limit)
{
    static struct decoded d;
    static char text[SIGNER_CSR_TEXT_MAX + 1];
    memset(text, 'A', sizeof(text));
    decode(&d, sizeof(d.out), text, sizeof(text));
    cr_expect_eq(d.rc, -E2BIG);
    cr_expect_eq(d.reason, SIGNER_REJECT_CSR_TOO_LARGE);

    /* Under the text limit, but the DER would not fit in `cap`. */
    uint8_t der[SIGNER_CSR_DER_MAX], b64[2 * SIGNER_CSR_DER_MAX];
    size_t der_len = vector_read(der, sizeof(der), "p256-sha256.der");
    size_t b64_len = EVP_EncodeBlock(b64, der, der_len);
    for (size_t cap = 0; cap < der_len; cap += 7) {
        decode(&d, cap, b64, b64_len);
        cr_expect_eq(d.rc, -E2BIG, "base64, cap %zu", cap);
        cr_expect_eq(d.reason, SIGNER_REJECT_CSR_TOO_LARGE);
        decode(&d, cap, der, der_len);
        cr_expect_eq(d.rc, -E2BIG, "DER, cap %zu", cap);
        cr_expect_eq(d.reason, SIGNER_REJECT_CSR_TOO_LARGE);
    }
    decode(&d, der_len, b64, b64_len);
    cr_expect_eq(d.rc, 0, "exactly enough room");
}

/* ---- identity ---- */

static void expect_identity(const char *name, const char *uri, int rc, enum signer_reject reason)
{
    struct parsed p;
    parsed_vector(&p, name);
    cr_assert_eq(p.rc, 0, "%s: parse", name);
    enum signer_reject got = SIGNER_REJECT_MAX_;
    cr_expect_eq(signer_identity_check(&p.csr, &got, uri), rc, "%s for %s", name, uri);
    cr_expect_eq(got, reason, "%s for %s: reason %d", name, uri, got);
    parsed_free(&p);
}

Test(csr_identity, accepts_own_name)
{
    expect_identity("p256-sha256.der", ALICE, 0, SIGNER_REJECT_NONE);
    expect_identity("p256-sha256.der", "SIP:Alice@Example.COM", 0, SIGNER_REJECT_NONE);
    expect_identity("cn-sip-alice.der", ALICE, 0, SIGNER_REJECT_NONE);
    expect_identity("alice-san-alice.der", ALICE, 0, SIGNER_REJECT_NONE);
    expect_identity("no-cn-no-san.der", ALICE, 0, SIGNER_REJECT_NONE);
}

Test(csr_identity, refuses_someone_else)
{
    expect_identity("cn-bob.der", ALICE, -EPERM, SIGNER_REJECT_IDENTITY_SUBJECT);
    expect_identity("p256-sha256.der", "sip:bob@example.com", -EPERM,
                    SIGNER_REJECT_IDENTITY_SUBJECT);
    expect_identity("p256-sha256.der", "sip:alice@example.com.evil", -EPERM,
                    SIGNER_REJECT_IDENTITY_SUBJECT);
    expect_identity("alice-san-bob.der", ALICE, -EPERM, SIGNER_REJECT_IDENTITY_SAN);
    expect_identity("alice-san-mixed.der", ALICE, -EPERM, SIGNER_REJECT_IDENTITY_SAN);
}

/* The identity check works on the parsed struct: SAN types and a second CN. */
Test(csr_identity, checks_san_types_and_cn_count)
{
    static const char email[] = "alice@example.com";
    struct signer_csr csr = {.key_type = SIGNER_KEY_P256};
    enum signer_reject reason = SIGNER_REJECT_MAX_;
    csr.num_sans = 1;
    csr.sans[0] = (struct signer_san){SIGNER_SAN_EMAIL, (const uint8_t *)email, strlen(email)};
    cr_expect_eq(signer_identity_check(&csr, &reason, ALICE), 0);
    csr.sans[0].type = SIGNER_SAN_URI; /* a URI must be the whole sip: URI */
    cr_expect_eq(signer_identity_check(&csr, &reason, ALICE), -EPERM);
    cr_expect_eq(reason, SIGNER_REJECT_IDENTITY_SAN);
    csr.sans[0].type = SIGNER_SAN_OTHER;
    cr_expect_eq(signer_identity_check(&csr, &reason, ALICE), -EPERM);
    cr_expect_eq(reason, SIGNER_REJECT_IDENTITY_SAN);

    csr.num_sans = 0;
    csr.subject_cn = (const uint8_t *)email;
    csr.subject_cn_len = strlen(email);
    csr.num_subject_cns = 2;
    cr_expect_eq(signer_identity_check(&csr, &reason, ALICE), -EPERM);
    cr_expect_eq(reason, SIGNER_REJECT_IDENTITY_SUBJECT);
}

Test(csr_identity, sign_in_name)
{
    cr_expect_str_eq(signer_uri_sign_in_name(ALICE), "alice@example.com");
    cr_expect_str_eq(signer_uri_sign_in_name("SIP:bob@example.com"), "bob@example.com");
    cr_expect_str_eq(signer_uri_sign_in_name("alice@example.com"), "alice@example.com");
    cr_expect_str_eq(signer_uri_sign_in_name("sip"), "sip");
    cr_expect_str_eq(signer_uri_sign_in_name(""), "");
}

/* ---- refusal table ---- */

Test(signer_reject, every_value_has_code_and_text)
{
    for (int r = 0; r < SIGNER_REJECT_MAX_; r++) {
        const char *code = signer_reject_code((enum signer_reject)r);
        const char *text = signer_reject_text((enum signer_reject)r);
        cr_assert(code != NULL && code[0] != '\0', "code of %d", r);
        cr_assert(text != NULL && strlen(text) > 10, "text of %d", r);
    }
}

Test(signer_reject, maps_to_api_codes)
{
    cr_expect_str_eq(signer_reject_code(SIGNER_REJECT_CSR_MALFORMED), "BadCsr");
    cr_expect_str_eq(signer_reject_code(SIGNER_REJECT_KEY_RSA_SMALL), "BadCsr");
    cr_expect_str_eq(signer_reject_code(SIGNER_REJECT_SIG_WEAK), "BadCsr");
    cr_expect_str_eq(signer_reject_code(SIGNER_REJECT_CSR_SIGNATURE), "CsrSignatureInvalid");
    cr_expect_str_eq(signer_reject_code(SIGNER_REJECT_IDENTITY_SUBJECT), "IdentityMismatch");
    cr_expect_str_eq(signer_reject_code(SIGNER_REJECT_IDENTITY_SAN), "IdentityMismatch");
    cr_expect_str_eq(signer_reject_code(SIGNER_REJECT_IDENTITY_ENTITY), "IdentityMismatch");
    cr_expect_str_eq(signer_reject_code(SIGNER_REJECT_PIN_LENGTH), "BadRequest");
    cr_expect_str_eq(signer_reject_code(SIGNER_REJECT_PIN_DIGITS), "BadRequest");
    cr_expect_str_eq(signer_reject_code(SIGNER_REJECT_PIN_PATTERN), "BadRequest");
    cr_expect_str_eq(signer_reject_code(SIGNER_REJECT_PIN_EXTENSION), "BadRequest");
    cr_expect_str_eq(signer_reject_text(SIGNER_REJECT_KEY_RSA_SMALL),
                     "The RSA key is too small: use 2048 to 4096 bits");
    cr_expect_str_eq(signer_reject_code(SIGNER_REJECT_KEY_RSA_LARGE), "BadCsr");
}

/* ---- reason tokens (README, Reasons) ---- */

/* token_of parses vector `name` (and verifies it when it parses) and returns the token of the
 * refusal, "" when accepted. */
static const char *token_of(const char *name)
{
    struct parsed p;
    parsed_vector(&p, name);
    enum signer_reject r = p.reason;
    if (p.rc == 0) {
        (void)signer_csr_verify(&p.csr, &r);
    }
    parsed_free(&p);
    return r == SIGNER_REJECT_NONE ? "" : signer_reason_token(signer_reject_reason(r));
}

Test(signer_reason, csr_vectors_name_their_token)
{
    cr_expect_str_eq(token_of("rsa1024-sha256.der"), "csr_rsa_key_too_small");
    cr_expect_str_eq(token_of("rsa2048-sha1.der"), "csr_weak_hash");
    cr_expect_str_eq(token_of("rsa2048-md5.der"), "csr_weak_hash");
    cr_expect_str_eq(token_of("rsa-e3-sha256.der"), "csr_rsa_exponent");
    cr_expect_str_eq(token_of("p192-sha256.der"), "csr_key_unsupported");
    cr_expect_str_eq(token_of("rsa2048-pss.der"), "csr_signature_algorithm");
    cr_expect_str_eq(token_of("bad-signature.der"), "csr_signature");
    cr_expect_str_eq(token_of("many-sans.der"), "csr_too_complex");
    cr_expect_str_eq(token_of("p256-sha256.der"), "");
    /* the field's complaint: an RSA-1024 CSR and a SHA-1 CSR have the same Code, not the same
     * reason */
    cr_expect_str_neq(token_of("rsa1024-sha256.der"), token_of("rsa2048-sha1.der"));
}

Test(signer_reason, every_reason_has_a_unique_token_and_code)
{
    for (int r = 0; r < SIGNER_REASON_MAX_; r++) {
        const char *t = signer_reason_token((enum signer_reason)r);
        cr_assert(t[0] != '\0');
        cr_assert(strlen(t) <= SIGNER_REASON_TOKEN_MAX);
        cr_assert_eq(strspn(t, "abcdefghijklmnopqrstuvwxyz0123456789_"), strlen(t), "%s", t);
        enum signer_reason back = SIGNER_REASON_MAX_;
        cr_assert_eq(signer_reason_parse(&back, t), 0);
        cr_assert_eq((int)back, r, "%s is not unique", t);
        cr_assert((unsigned)signer_reason_code((enum signer_reason)r) < SIGNER_CODE_MAX_);
    }
    enum signer_reason x = SIGNER_REASON_INTERNAL;
    cr_assert_eq(signer_reason_parse(&x, "nope"), -EINVAL);
}

Test(signer_reason, every_reject_maps_to_a_reason_of_its_code)
{
    for (int r = 0; r < SIGNER_REJECT_MAX_; r++) {
        enum signer_reason why = signer_reject_reason((enum signer_reject)r);
        cr_assert_eq(signer_reject_to_code((enum signer_reject)r), signer_reason_code(why),
                     "reject %d", r);
        cr_assert(r == SIGNER_REJECT_NONE || why != SIGNER_REASON_INTERNAL, "reject %d", r);
    }
    for (int c = 0; c < SIGNER_CODE_MAX_; c++) {
        cr_assert_eq(signer_reason_code(signer_code_reason((enum signer_code)c)), c, "code %d", c);
    }
}

/* The README's Reasons table lists every token (the operator's page must stay true). */
Test(signer_reason, readme_lists_every_token)
{
    FILE *f = fopen("README.md", "r");
    cr_assert(f != NULL, "run from the repository root");
    static char text[1 << 17];
    size_t n = fread(text, 1, sizeof(text) - 1, f);
    text[n] = '\0';
    fclose(f);
    for (int r = 0; r < SIGNER_REASON_MAX_; r++) {
        char cell[64];
        snprintf(cell, sizeof(cell), "| `%s` |", signer_reason_token((enum signer_reason)r));
        cr_expect(strstr(text, cell) != NULL, "README lacks %s", cell);
    }
}

Test(signer_reject, asserts_out_of_range, .signal = SIGABRT)
{
    (void)signer_reject_code(SIGNER_REJECT_MAX_);
}
