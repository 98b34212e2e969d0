/* fuzz_base64: libFuzzer harness for signer_base64_decode. The first byte picks the flags (low
 * two bits) and the cap (the rest, 0..63 bytes); the others are the text. Checked: the result is
 * 0, -EBADMSG or -E2BIG; a success fits in cap; STRICT agrees with EVP_DecodeBase64 called
 * directly whenever the cap leaves it room; whatever decodes decodes again to the same bytes from
 * its canonical (padded, unspaced) encoding. Any crash, sanitizer report or ASSERT is a finding. */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include <openssl/base64.h>

#include "base/base.h"
#include "signer/signer.h"

#define FUZZ_TEXT_MAX 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t out[FUZZ_TEXT_MAX];
    static uint8_t again[FUZZ_TEXT_MAX];
    static uint8_t evp[FUZZ_TEXT_MAX];
    static char canon[BASE_B64_LEN(FUZZ_TEXT_MAX) + 1];
    if (size == 0 || size > FUZZ_TEXT_MAX) {
        return 0;
    }
    unsigned flags = data[0] & 3u;
    size_t cap = (data[0] >> 2) == 63 ? sizeof(out) : (size_t)(data[0] >> 2);
    const char *text = (const char *)data + 1;
    size_t text_len = size - 1;
    size_t len = 0;
    int rc = signer_base64_decode(out, cap, &len, text, text_len, flags);
    ASSERT(rc == 0 || rc == -EBADMSG || rc == -E2BIG);
    if (flags == SIGNER_BASE64_STRICT && cap >= text_len / 4 * 3) {
        size_t evp_len = 0;
        int ok = EVP_DecodeBase64(evp, &evp_len, sizeof(evp), data + 1, text_len);
        ASSERT((rc == 0) == (ok == 1));
        ASSERT(rc != 0 || (evp_len == len && memcmp(evp, out, len) == 0));
    }
    if (rc != 0) {
        return 0;
    }
    ASSERT(len <= cap);
    size_t canon_len = base_b64_encode(canon, sizeof(canon), out, len);
    size_t again_len = 0;
    rc = signer_base64_decode(again, len, &again_len, canon, canon_len, SIGNER_BASE64_STRICT);
    ASSERT(rc == 0);
    ASSERT(again_len == len);
    ASSERT(memcmp(again, out, len) == 0);
    return 0;
}
