/* fuzz_est: libFuzzer harness for the body of an EST simpleenroll (RFC 7030 §4.2.1), which the
 * service hands to signer_csr_decode with its item's buffer (SIGNER_CSR_DER_MAX bytes): base64 of
 * DER with line breaks anywhere, PEM, or raw DER. fuzz_csr also decodes its input, and parses and
 * verifies what decodes; this harness checks the decoder's own promises, from a heap copy of
 * exactly the body's size: only the documented codes and reasons; *out_len written only on
 * success; a success is one DER SEQUENCE start within the cap, which the same call refuses with
 * -E2BIG one byte short of it; and the DER decodes to itself again as raw DER, as base64 in 64-
 * column CRLF lines (what EST clients send) and as PEM. Any crash, sanitizer report, leak or
 * ASSERT is a finding. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "signer/signer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_SENTINEL ((size_t)0x5a5a5a5a)

static uint8_t der[SIGNER_CSR_DER_MAX];
static uint8_t again[SIGNER_CSR_DER_MAX];
static char b64[BASE_B64_LEN(SIGNER_CSR_DER_MAX) + 1];
static char text[SIGNER_CSR_TEXT_MAX];

static int decode(uint8_t *out, size_t cap, size_t *out_len, const void *in, size_t in_len)
{
    enum signer_reject reason = SIGNER_REJECT_MAX_;
    *out_len = FUZZ_SENTINEL;
    int rc = signer_csr_decode(out, cap, out_len, &reason, in, in_len);
    ASSERT(rc == 0 || rc == -EBADMSG || rc == -E2BIG);
    ASSERT(rc != 0 || reason == SIGNER_REJECT_NONE);
    ASSERT(rc != -EBADMSG || reason == SIGNER_REJECT_CSR_ENCODING);
    ASSERT(rc != -E2BIG || reason == SIGNER_REJECT_CSR_TOO_LARGE);
    ASSERT(rc == 0 || *out_len == FUZZ_SENTINEL);
    ASSERT(rc != 0 || (*out_len >= 1 && *out_len <= cap && out[0] == 0x30));
    return rc;
}

/* same_again decodes `in` and checks that it gives the `len` bytes of der. */
static void same_again(const char *in, size_t in_len, size_t len)
{
    size_t n = 0;
    ASSERT(in_len <= sizeof(text));
    ASSERT(decode(again, sizeof(again), &n, in, in_len) == 0);
    ASSERT(n == len);
    ASSERT(memcmp(again, der, len) == 0);
}

/* lines writes b64 (b64_len bytes) in 64-column lines ending in CRLF into text. */
static size_t lines(size_t at, size_t b64_len)
{
    for (size_t i = 0; i < b64_len; i += 64) {
        size_t n = b64_len - i < 64 ? b64_len - i : 64;
        memcpy(text + at, b64 + i, n);
        memcpy(text + at + n, "\r\n", 2);
        at += n + 2;
    }
    return at;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *body = malloc(size > 0 ? size : 1); /* exactly: ASan sees a read past it */
    ASSERT(body != NULL);
    memcpy(body, data, size);
    size_t len = 0;
    int rc = decode(der, sizeof(der), &len, size > 0 ? body : NULL, size);
    if (rc == 0) {
        size_t n = 0;
        ASSERT(decode(again, len - 1, &n, body, size) == -E2BIG);
        same_again((const char *)der, len, len);
        size_t b64_len = base_b64_encode(b64, sizeof(b64), der, len);
        if (b64_len + 2 * (b64_len / 64 + 1) <= sizeof(text)) {
            same_again(text, lines(0, b64_len), len);
        }
        static const char begin[] = "-----BEGIN CERTIFICATE REQUEST-----\r\n";
        static const char end[] = "-----END CERTIFICATE REQUEST-----\r\n";
        if (strlen(begin) + b64_len + 2 * (b64_len / 64 + 1) + strlen(end) <= sizeof(text)) {
            memcpy(text, begin, strlen(begin));
            size_t at = lines(strlen(begin), b64_len);
            memcpy(text + at, end, strlen(end));
            same_again(text, at + strlen(end), len);
        }
    }
    free(body);
    return 0;
}
