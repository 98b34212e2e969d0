/* fuzz_chain: libFuzzer harness for the chain checker's inputs (a chain.pem, a device_trust file,
 * the files of ca import). The input goes through signer_cert_set_parse; what parses is checked
 * as a chain against its own last certificate, as an issuing and as a TLS chain, and the result
 * is formatted; the raw input is also checked as one DER certificate. Any crash, sanitizer
 * report, leak or ASSERT is a finding. */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "base/base.h"
#include "signer/signer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const struct signer_der *chain, size_t num, const struct signer_der *anchor,
                  bool target_is_ca)
{
    struct signer_chain_result r;
    int rc = signer_chain_check(&r, chain, num, anchor, 1, 1800000000, target_is_ca);
    ASSERT(rc == 0 || rc == -EPERM || rc == -EBADMSG || rc == -E2BIG || rc == -ENOMEM);
    ASSERT((rc == 0) == (r.fault == SIGNER_CHAIN_OK));
    ASSERT(r.num_path <= SIGNER_CHAIN_MAX);
    char text[1024];
    (void)signer_chain_result_format(text, sizeof(text), &r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct signer_cert_set set; /* libFuzzer runs inputs one at a time */
    if (signer_cert_set_parse(&set, (const char *)data, size) == 0) {
        ASSERT(set.num > 0);
        ASSERT(set.num <= SIGNER_CHAIN_MAX);
        for (size_t i = 0; i < set.num; i++) {
            ASSERT(set.certs[i].der_len <= SIGNER_CERT_DER_MAX);
            (void)signer_cert_self_signed(&set.certs[i]);
        }
        check(set.certs, set.num, &set.certs[set.num - 1], true);
        check(set.certs, set.num, &set.certs[set.num - 1], false);
    }
    struct signer_der raw = {.der = data, .der_len = size};
    if (size > 0) {
        check(&raw, 1, &raw, false);
    }
    return 0;
}
