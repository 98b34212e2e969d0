/* fuzz_soap: libFuzzer harness for signer_soap_parse. Every input either parses, and then the
 * success response built from it (its CSR DER standing in for the certificate, its RequestID
 * echoed) must be well-formed enough to name the same RequestID, or fails with -EBADMSG, a Code
 * and a reason, the output wiped. The error response and X-Ms-diagnostics of the reason are built
 * too. Any crash, sanitizer report, leak or ASSERT is a finding. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "base/base.h"
#include "signer/signer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_MAX_LEN 65536

static bool all_zero(const void *p, size_t len)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < len; i++) {
        if (b[i] != 0) {
            return false;
        }
    }
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* libFuzzer runs inputs one at a time: static buffers keep the stack small. */
    static struct signer_soap_request req;
    static char out[4 * SIGNER_CSR_DER_MAX];
    char reason[SIGNER_REASON_MAX];
    enum signer_code code = SIGNER_CODE_MAX_;
    size_t len = 0;
    int rc = signer_soap_parse(&req, &code, reason, data, size, FUZZ_MAX_LEN);
    if (rc != 0) {
        ASSERT(rc == -EBADMSG || rc == -E2BIG);
        ASSERT(code < SIGNER_CODE_MAX_);
        ASSERT(memchr(reason, '\0', sizeof(reason)) != NULL);
        ASSERT(reason[0] != '\0');
        ASSERT(all_zero(&req, sizeof(req)));
        ASSERT(signer_soap_error_response(out, sizeof(out), &len, code, reason, NULL) == 0);
        ASSERT(signer_soap_fault(out, sizeof(out), &len, signer_code_reason(code), reason,
                                 (size & 1) != 0) == 0);
        ASSERT(signer_diagnostics_format(out, sizeof(out), &len, signer_code_reason(code),
                                         "fuzz.example.com", reason) == 0);
        for (size_t i = 0; i < len; i++) {
            ASSERT(out[i] >= 0x20 && out[i] < 0x7f);
        }
        return 0;
    }
    ASSERT(req.entity[0] != '\0');
    ASSERT(req.csr_der_len > 0 && req.csr_der_len <= sizeof(req.csr_der));
    ASSERT(strlen(req.request_id) <= SIGNER_SOAP_REQUEST_ID_MAX);
    ASSERT(strlen(req.password) <= SIGNER_SOAP_PASSWORD_MAX);
    ASSERT(strlen(req.context) <= SIGNER_SOAP_CONTEXT_MAX);
    /* Answered in the request's SOAP version, its Context echoed (issue 18 §4). */
    struct signer_soap_reply reply = {
        .request_id = req.request_id, .context = req.context, .soap12 = req.soap12};
    ASSERT(signer_soap_reply_response(out, sizeof(out), &len, req.csr_der, req.csr_der_len,
                                      &reply) == 0);
    ASSERT(len == strlen(out));
    ASSERT(req.request_id[0] == '\0' || strstr(out, "</RequestID>") != NULL);
    ASSERT(req.context[0] == '\0' ||
           strstr(out, "RequestSecurityTokenResponse Context=\"") != NULL);
    ASSERT((strstr(out, "http://www.w3.org/2003/05/soap-envelope") != NULL) == req.soap12);
    /* The login read as a phone number, as the sign-in does: E.164 or refused, never more. */
    char e164[STORE_PHONE_MAX + 1];
    if (signer_phone_e164(e164, sizeof(e164), req.username, "1") == 0) {
        ASSERT(e164[0] == '+' && strspn(e164 + 1, "0123456789") == strlen(e164) - 1);
        ASSERT(strlen(e164) >= 8 && strlen(e164) <= 16);
    }
    signer_soap_request_cleanup(&req);
    ASSERT(all_zero(&req, sizeof(req)));
    return 0;
}
