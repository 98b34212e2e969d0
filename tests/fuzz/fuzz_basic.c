/* fuzz_basic: libFuzzer harness for the HTTP Basic credentials of an enrollment
 * (svc_basic_auth, service/enroll.c): the input is an Authorization header value, from a heap
 * copy of exactly its size (no NUL after it), so ASan sees any read past it. Checked: the result
 * is 0 or -EBADMSG; a failure leaves the credentials untouched; a success has a user of 1 to
 * SIGNER_SOAP_USERNAME_MAX bytes without ':' or NUL, a PIN within its buffer, and the canonical
 * header built from them ("Basic " + base64 of "user:pin") parses to the same credentials; the
 * value parsed has the "Basic " prefix (any case). The UsernameToken, the other credentials,
 * arrive through signer_soap_parse, which fuzz_soap covers. Any crash, sanitizer report, leak or
 * ASSERT is a finding. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/base.h"
#include "service/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

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

static void check_round_trip(const struct svc_credentials *c)
{
    static uint8_t plain[SVC_BASIC_MAX + 2];
    static char header[6 + BASE_B64_LEN(sizeof(plain)) + 1];
    size_t ulen = strlen(c->user);
    size_t plen = strlen(c->pin);
    ASSERT(ulen >= 1 && ulen <= SIGNER_SOAP_USERNAME_MAX);
    ASSERT(plen <= SIGNER_PIN_MAX + 1);
    ASSERT(strchr(c->user, ':') == NULL);
    ASSERT(ulen + 1 + plen <= SVC_BASIC_MAX);
    memcpy(plain, c->user, ulen);
    plain[ulen] = ':';
    memcpy(plain + ulen + 1, c->pin, plen);
    memcpy(header, "Basic ", 6);
    size_t n = base_b64_encode(header + 6, sizeof(header) - 6, plain, ulen + 1 + plen);
    struct svc_credentials again = {0};
    ASSERT(svc_basic_auth(&again, header, 6 + n) == 0);
    ASSERT(again.present);
    ASSERT(strcmp(again.user, c->user) == 0);
    ASSERT(strcmp(again.pin, c->pin) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *h = malloc(size > 0 ? size : 1);
    ASSERT(h != NULL);
    memcpy(h, data, size);
    struct svc_credentials c = {0};
    int rc = svc_basic_auth(&c, h, size);
    ASSERT(rc == 0 || rc == -EBADMSG);
    if (rc != 0) {
        ASSERT(all_zero(&c, sizeof(c)));
    } else {
        ASSERT(c.present);
        ASSERT(size > 6 && strncasecmp(h, "Basic ", 6) == 0);
        check_round_trip(&c);
    }
    free(h);
    return 0;
}
