/* Tests of the EST codec: certs-only PKCS#7 (checked with BoringSSL and the openssl CLI), its
 * base64 wire form and the text/plain error body. The certificates come from a CA made by
 * signer_ca_init in a fresh temporary directory. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/base64.h>
#include <openssl/bytestring.h>
#include <openssl/pkcs7.h>
#include <openssl/stack.h>
#include <openssl/x509.h>

#include "base/base.h"
#include "signer/signer.h"
#include "tests/util/tmpdir.h"

static char tmpdir[TMPDIR_PATH_MAX];
static uint8_t certs_der[2][SIGNER_CERT_DER_MAX];
static struct signer_est_cert certs[2]; /* issuing CA, root */

static void setup(void)
{
    tmpdir_create(tmpdir, sizeof(tmpdir), "certprov-est");
    char dir[128];
    snprintf(dir, sizeof(dir), "%s/store", tmpdir);
    cr_assert_eq(signer_ca_init(dir, HSM_KEY_P256, "certprov1.example.com"), 0);
    char chain[160];
    snprintf(chain, sizeof(chain), "%s/chain.pem", dir);
    for (size_t i = 0; i < 2; i++) {
        size_t len = 0;
        cr_assert_eq(signer_pem_read_cert(certs_der[i], sizeof(certs_der[i]), &len, chain, i), 0);
        certs[i] = (struct signer_est_cert){.der = certs_der[i], .der_len = len};
    }
}

static void teardown(void)
{
    tmpdir_remove(tmpdir);
}

/* check_pkcs7 parses `der` with BoringSSL and compares the certificates with certs[0..n). */
static void check_pkcs7(const uint8_t *der, size_t len, size_t n)
{
    CBS cbs;
    CBS_init(&cbs, der, len);
    STACK_OF(CRYPTO_BUFFER) *raw = sk_CRYPTO_BUFFER_new_null();
    cr_assert_not_null(raw);
    cr_assert_eq(PKCS7_get_raw_certificates(raw, &cbs, NULL), 1);
    cr_assert_eq(CBS_len(&cbs), 0, "trailing bytes");
    cr_assert_eq(sk_CRYPTO_BUFFER_num(raw), n);
    for (size_t i = 0; i < n; i++) {
        CRYPTO_BUFFER *b = sk_CRYPTO_BUFFER_value(raw, i);
        cr_assert_eq(CRYPTO_BUFFER_len(b), certs[i].der_len);
        cr_assert(memcmp(CRYPTO_BUFFER_data(b), certs[i].der, certs[i].der_len) == 0);
    }
    sk_CRYPTO_BUFFER_pop_free(raw, CRYPTO_BUFFER_free);

    CBS_init(&cbs, der, len);
    STACK_OF(X509) *x509s = sk_X509_new_null();
    cr_assert_eq(PKCS7_get_certificates(x509s, &cbs), 1);
    cr_assert_eq(sk_X509_num(x509s), n);
    sk_X509_pop_free(x509s, X509_free);
}

/* decode_lines decodes the EST base64 (64-character lines) into `out`. */
static size_t decode_lines(uint8_t *out, size_t cap, const char *text, size_t len)
{
    static char joined[65536];
    size_t n = 0;
    size_t col = 0;
    for (size_t i = 0; i < len; i++) {
        if (text[i] == '\n') {
            cr_assert(col > 0 && col <= 64, "line of %zu characters", col);
            cr_assert(col == 64 || i == len - 1, "short line before the last");
            col = 0;
            continue;
        }
        col++;
        joined[n++] = text[i];
    }
    cr_assert_eq(col, 0, "the text must end in a newline");
    size_t out_len = 0;
    cr_assert(EVP_DecodeBase64(out, &out_len, cap, (const uint8_t *)joined, n));
    return out_len;
}

Test(signer_est, certs_only_one_and_two, .init = setup, .fini = teardown)
{
    static uint8_t der[16384];
    static char text[32768];
    static uint8_t back[16384];
    for (size_t n = 1; n <= 2; n++) {
        size_t der_len = 0;
        cr_assert_eq(signer_est_certs_only_der(der, sizeof(der), &der_len, certs, n), 0);
        check_pkcs7(der, der_len, n);
        size_t text_len = 0;
        cr_assert_eq(signer_est_certs_only(text, sizeof(text), &text_len, certs, n), 0);
        cr_assert_eq(text_len, strlen(text));
        size_t back_len = decode_lines(back, sizeof(back), text, text_len);
        cr_assert_eq(back_len, der_len);
        cr_assert(memcmp(back, der, der_len) == 0);
    }
}

Test(signer_est, openssl_lists_two_certificates, .init = setup, .fini = teardown)
{
    static uint8_t der[16384];
    size_t der_len = 0;
    cr_assert_eq(signer_est_certs_only_der(der, sizeof(der), &der_len, certs, 2), 0);
    char path[128];
    snprintf(path, sizeof(path), "%s/certs.p7b", tmpdir);
    cr_assert_eq(base_file_write_atomic(path, der, der_len, 0600, false), 0);
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "openssl pkcs7 -print_certs -inform DER -in '%s'", path);
    FILE *f = popen(cmd, "r");
    cr_assert_not_null(f);
    char line[1024];
    int subjects = 0, begins = 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        subjects += strncmp(line, "subject=", 8) == 0;
        begins += strcmp(line, "-----BEGIN CERTIFICATE-----\n") == 0;
    }
    cr_assert_eq(pclose(f), 0);
    cr_assert_eq(subjects, 2);
    cr_assert_eq(begins, 2);
}

Test(signer_est, exact_buffer_sizes, .init = setup, .fini = teardown)
{
    static uint8_t der[16384];
    static char text[32768];
    size_t der_len = 0, text_len = 0;
    cr_assert_eq(signer_est_certs_only_der(der, sizeof(der), &der_len, certs, 2), 0);
    cr_assert_eq(signer_est_certs_only(text, sizeof(text), &text_len, certs, 2), 0);
    for (size_t cap = der_len - 16; cap < der_len; cap++) {
        cr_assert_eq(signer_est_certs_only_der(der, cap, &der_len, certs, 2), -E2BIG);
    }
    cr_assert_eq(signer_est_certs_only_der(der, der_len, &der_len, certs, 2), 0);
    /* The in-place encoding works with exactly the documented room, and not with less. */
    size_t need = (der_len + 47) / 48 * 65 + 1;
    cr_assert_eq(signer_est_certs_only(text, need, &text_len, certs, 2), 0);
    check_pkcs7(der, der_len, 2);
    size_t back_len = 0;
    static uint8_t back[16384];
    back_len = decode_lines(back, sizeof(back), text, text_len);
    cr_assert_eq(back_len, der_len);
    cr_assert(memcmp(back, der, der_len) == 0);
    cr_assert_eq(signer_est_certs_only(text, need - 1, &text_len, certs, 2), -E2BIG);
    cr_assert_eq(signer_est_certs_only(text, 10, &text_len, certs, 2), -E2BIG);
}

Test(signer_est, rejects_non_certificates)
{
    static const uint8_t junk[] = {0x04, 0x01, 0x00};
    static const uint8_t trailing[] = {0x30, 0x00, 0x00};
    uint8_t out[256];
    size_t len = 0;
    struct signer_est_cert c = {.der = junk, .der_len = sizeof(junk)};
    cr_assert_eq(signer_est_certs_only_der(out, sizeof(out), &len, &c, 1), -EBADMSG);
    c = (struct signer_est_cert){.der = trailing, .der_len = sizeof(trailing)};
    cr_assert_eq(signer_est_certs_only_der(out, sizeof(out), &len, &c, 1), -EBADMSG);
    c = (struct signer_est_cert){.der = trailing, .der_len = 0};
    cr_assert_eq(signer_est_certs_only((char *)out, sizeof(out), &len, &c, 1), -EBADMSG);
}

Test(signer_est, error_body)
{
    char out[128];
    size_t len = 0;
    cr_assert_eq(signer_est_error_body(out, sizeof(out), &len, SIGNER_CODE_BAD_CSR,
                                       "RSA key size must be 2048 to 4096 bits"),
                 0);
    cr_assert_str_eq(out, "BadCsr: RSA key size must be 2048 to 4096 bits\n");
    cr_assert_eq(len, strlen(out));
    cr_assert_eq(
        signer_est_error_body(out, sizeof(out), &len, SIGNER_CODE_OVERLOADED, "busy\r\nnow"), 0);
    cr_assert_str_eq(out, "Overloaded: busy  now\n");
    cr_assert_eq(signer_est_error_body(out, 12, &len, SIGNER_CODE_BAD_CSR, "abcdefgh"), 0);
    cr_assert_str_eq(out, "BadCsr: ab\n");
    cr_assert_eq(signer_est_error_body(out, 10, &len, SIGNER_CODE_BAD_CSR, "x"), 0);
    cr_assert_str_eq(out, "BadCsr: \n");
    cr_assert_eq(signer_est_error_body(out, 9, &len, SIGNER_CODE_BAD_CSR, "x"), -E2BIG);
}
