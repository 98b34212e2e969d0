/* certprov-bench: OCSP requests (RFC 6960 §4.1.1) for the `ocsp` scenario, one certificate
 * each and no nonce: what a relying party asks again and again, and what the appliance answers
 * from its per-serial cache. The CertIDs name certificates the spawned certprovd issued (their
 * serials from `certprovctl cert list --json`) and its issuing CA (SHA-1 of its subject and of
 * its public key, the hash clients use by default). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bytestring.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include "base/base.h"
#include "cmd/certprov-bench/bench.h"

/* ocsp_issuer_hashes reads the first certificate of `chain_pem` (the issuing CA) and hashes its
 * subject and public key for a CertID. Returns 0 or -EBADMSG / a negative errno. */
static int ocsp_issuer_hashes(uint8_t name_hash[SHA_DIGEST_LENGTH],
                              uint8_t key_hash[SHA_DIGEST_LENGTH], const char *chain_pem)
{
    FILE *f = fopen(chain_pem, "re");
    if (f == NULL) {
        return -errno;
    }
    X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
    (void)fclose(f);
    if (x == NULL) {
        return -EBADMSG;
    }
    uint8_t *der = NULL;
    int len = i2d_X509_NAME(X509_get_subject_name(x), &der);
    const ASN1_BIT_STRING *key = X509_get0_pubkey_bitstr(x);
    int rc = len > 0 && key != NULL ? 0 : -EBADMSG;
    if (rc == 0) {
        SHA1(der, (size_t)len, name_hash);
        SHA1(ASN1_STRING_get0_data(key), (size_t)ASN1_STRING_length(key), key_hash);
    }
    OPENSSL_free(der);
    X509_free(x);
    return rc;
}

/* request_build writes the DER OCSPRequest for `serial` (big-endian magnitude) into *out. */
static int request_build(struct bench_csr *out, const uint8_t *name_hash, const uint8_t *key_hash,
                         const uint8_t *serial, size_t serial_len)
{
    static const uint8_t sha1_oid[] = {0x2b, 0x0e, 0x03, 0x02, 0x1a};
    CBB cbb, req, tbs, list, one, certid, alg, oid, null, nh, kh, sn;
    if (!CBB_init_fixed(&cbb, out->der, sizeof(out->der))) {
        return -ENOMEM;
    }
    int ok = CBB_add_asn1(&cbb, &req, CBS_ASN1_SEQUENCE) &&
             CBB_add_asn1(&req, &tbs, CBS_ASN1_SEQUENCE) &&
             CBB_add_asn1(&tbs, &list, CBS_ASN1_SEQUENCE) &&
             CBB_add_asn1(&list, &one, CBS_ASN1_SEQUENCE) &&
             CBB_add_asn1(&one, &certid, CBS_ASN1_SEQUENCE) &&
             CBB_add_asn1(&certid, &alg, CBS_ASN1_SEQUENCE) &&
             CBB_add_asn1(&alg, &oid, CBS_ASN1_OBJECT) &&
             CBB_add_bytes(&oid, sha1_oid, sizeof(sha1_oid)) &&
             CBB_add_asn1(&alg, &null, CBS_ASN1_NULL) &&
             CBB_add_asn1(&certid, &nh, CBS_ASN1_OCTETSTRING) &&
             CBB_add_bytes(&nh, name_hash, SHA_DIGEST_LENGTH) &&
             CBB_add_asn1(&certid, &kh, CBS_ASN1_OCTETSTRING) &&
             CBB_add_bytes(&kh, key_hash, SHA_DIGEST_LENGTH) &&
             CBB_add_asn1(&certid, &sn, CBS_ASN1_INTEGER) &&
             ((serial[0] & 0x80) == 0 || CBB_add_u8(&sn, 0)) && /* a positive INTEGER */
             CBB_add_bytes(&sn, serial, serial_len);
    size_t len = 0;
    if (!ok || !CBB_finish(&cbb, NULL, &len)) {
        CBB_cleanup(&cbb);
        return -E2BIG;
    }
    out->der_len = (uint16_t)len;
    return 0;
}

static int hex_val(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

int bench_ocsp_requests(struct bench_csr *out, uint32_t cap, uint32_t *out_num, const char *bin,
                        const char *config, const char *chain_pem)
{
    uint8_t name_hash[SHA_DIGEST_LENGTH];
    uint8_t key_hash[SHA_DIGEST_LENGTH];
    int rc = ocsp_issuer_hashes(name_hash, key_hash, chain_pem);
    if (rc != 0) {
        return rc;
    }
    char cmd[3 * BENCH_PATH_MAX];
    snprintf(cmd, sizeof(cmd), "'%s/certprovctl' -c '%s' cert list --limit %u --json", bin, config,
             cap);
    FILE *p = popen(cmd, "r");
    if (p == NULL) {
        return -errno;
    }
    char line[4096];
    uint32_t n = 0;
    while (n < cap && fgets(line, sizeof(line), p) != NULL) { /* bounded: --limit lines */
        const char *s = strstr(line, "\"serial\":\"");
        if (s == NULL) {
            continue;
        }
        s += 10;
        size_t hex = strspn(s, "0123456789ABCDEF");
        uint8_t serial[32];
        size_t len = (hex + 1) / 2;
        if (hex == 0 || len > sizeof(serial)) {
            continue;
        }
        for (size_t i = 0; i < len; i++) { /* an odd number of digits: a leading 0 */
            size_t at = hex % 2 == 0 ? 2 * i : (i == 0 ? 0 : 2 * i - 1);
            int hi = hex % 2 == 1 && i == 0 ? 0 : hex_val(s[at]);
            int lo = hex_val(s[hex % 2 == 1 && i == 0 ? 0 : at + 1]);
            serial[i] = (uint8_t)(hi << 4 | lo);
        }
        if (request_build(&out[n], name_hash, key_hash, serial, len) == 0) {
            n++;
        }
    }
    if (pclose(p) != 0 && n == 0) {
        return -EIO;
    }
    *out_num = n;
    return n > 0 ? 0 : -ENOENT;
}
