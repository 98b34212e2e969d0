/* fuzz_csr: libFuzzer harness for CSR intake. The input goes through signer_csr_decode (as text
 * or DER), then signer_csr_parse, signer_csr_verify and signer_identity_check; the raw input is
 * also parsed directly as DER. Any crash, sanitizer report, leak or ASSERT is a finding. */
#include <stddef.h>
#include <stdint.h>

#include "base/base.h"
#include "signer/signer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const uint8_t *der, size_t len)
{
    struct signer_csr csr = {0};
    enum signer_reject reason = SIGNER_REJECT_NONE;
    int rc = signer_csr_parse(&csr, &reason, der, len);
    if (rc != 0) {
        ASSERT(reason != SIGNER_REJECT_NONE);
        ASSERT(csr.der == NULL);
        return;
    }
    ASSERT(csr.num_sans <= SIGNER_CSR_SANS_MAX);
    ASSERT(csr.spki >= der);
    ASSERT(csr.spki + csr.spki_len <= der + len);
    rc = signer_csr_verify(&csr, &reason);
    ASSERT(rc == 0 || reason == SIGNER_REJECT_CSR_SIGNATURE || reason == SIGNER_REJECT_KEY_INVALID);
    rc = signer_identity_check(&csr, &reason, "sip:alice@example.com");
    ASSERT(rc == 0 || reason == SIGNER_REJECT_IDENTITY_SUBJECT ||
           reason == SIGNER_REJECT_IDENTITY_SAN);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t der[SIGNER_CSR_DER_MAX]; /* libFuzzer runs inputs one at a time */
    size_t len = 0;
    enum signer_reject reason = SIGNER_REJECT_NONE;
    if (signer_csr_decode(der, sizeof(der), &len, &reason, data, size) == 0) {
        ASSERT(len <= sizeof(der));
        check(der, len);
    } else {
        ASSERT(reason == SIGNER_REJECT_CSR_ENCODING || reason == SIGNER_REJECT_CSR_TOO_LARGE);
    }
    check(data, size);
    return 0;
}
