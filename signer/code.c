/* code: the README, Errors error Codes, their HTTP statuses and X-Ms-diagnostics IDs. */
#include <assert.h>
#include <errno.h>
#include <string.h>

#include "base/base.h"
#include "signer/signer.h"

struct code_entry {
    const char *name;
    unsigned status;
};

/* Indexed by enum signer_code; the static_assert and the test looping over the enum catch a
 * missing entry. The diagnostics ID is SIGNER_DIAG_ID_BASE + the enum value, so the values of
 * enum signer_code must never be renumbered. */
static const struct code_entry code_table[] = {
    [SIGNER_CODE_BAD_REQUEST] = {"BadRequest", 400},
    [SIGNER_CODE_BAD_CSR] = {"BadCsr", 400},
    [SIGNER_CODE_CSR_SIGNATURE_INVALID] = {"CsrSignatureInvalid", 400},
    [SIGNER_CODE_AUTHENTICATION_FAILED] = {"AuthenticationFailed", 401},
    [SIGNER_CODE_PIN_LOCKED] = {"PinLocked", 403},
    [SIGNER_CODE_IDENTITY_MISMATCH] = {"IdentityMismatch", 403},
    [SIGNER_CODE_TOO_LARGE] = {"TooLarge", 413},
    [SIGNER_CODE_OVERLOADED] = {"Overloaded", 503},
    [SIGNER_CODE_SIGNING_UNAVAILABLE] = {"SigningUnavailable", 503},
    [SIGNER_CODE_INTERNAL_ERROR] = {"InternalError", 500},
    [SIGNER_CODE_STORE_UNAVAILABLE] = {"StoreUnavailable", 503},
    [SIGNER_CODE_RATE_LIMITED] = {"RateLimited", 429},
};

static_assert(ARRAY_LEN(code_table) == SIGNER_CODE_MAX_, "every enum signer_code needs an entry");

static const struct code_entry *code_entry_get(enum signer_code code)
{
    ASSERT((unsigned)code < ARRAY_LEN(code_table));
    const struct code_entry *e = &code_table[code];
    ASSERT(e->name != NULL);
    ASSERT(e->status >= 400 && e->status < 600);
    return e;
}

const char *signer_code_name(enum signer_code code)
{
    return code_entry_get(code)->name;
}

unsigned signer_error_status(enum signer_code code)
{
    return code_entry_get(code)->status;
}

unsigned signer_code_diag_id(enum signer_code code)
{
    ASSERT((unsigned)code < SIGNER_CODE_MAX_);
    return SIGNER_DIAG_ID_BASE + (unsigned)code;
}

int signer_code_parse(enum signer_code *out, const char *name)
{
    ASSERT(out != NULL);
    ASSERT(name != NULL);
    for (size_t i = 0; i < ARRAY_LEN(code_table); i++) {
        if (strcmp(code_table[i].name, name) == 0) {
            *out = (enum signer_code)i;
            return 0;
        }
    }
    return -EINVAL;
}
