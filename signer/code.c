/* code: the README, Errors error Codes, their HTTP statuses and X-Ms-diagnostics IDs. */
#include <assert.h>
#include <errno.h>
#include <string.h>

#include "base/base.h"
#include "signer/signer.h"

struct code_entry {
    const char *name;
    unsigned status;
    unsigned diag_id;  /* X-Ms-diagnostics errorId */
    const char *fault; /* X-Ms-diagnostics fault ("prefix:code"), or NULL */
};

/* The fault of a refused sign-in, as [MS-OCAUTHWS] §3.2.4.1 gives it for 28000. */
#define FAULT_AUTH "wsse:FailedAuthentication"

/* Indexed by enum signer_code; the static_assert and the test looping over the enum catch a
 * missing entry. IDs ([MS-OCAUTHWS] §3.2.4.1, README, Errors): the spec's own where it defines
 * the condition (28000 "User is not SIP enabled", 403; 28001 internal error, 500), every other
 * Code 28900 + its enum value, a block the spec does not use. IDs are stable: never renumber. */
static const struct code_entry code_table[] = {
    [SIGNER_CODE_BAD_REQUEST] = {"BadRequest", 400, 28900, NULL},
    [SIGNER_CODE_BAD_CSR] = {"BadCsr", 400, 28901, NULL},
    [SIGNER_CODE_CSR_SIGNATURE_INVALID] = {"CsrSignatureInvalid", 400, 28902, NULL},
    [SIGNER_CODE_AUTHENTICATION_FAILED] = {"AuthenticationFailed", 401, 28903, FAULT_AUTH},
    [SIGNER_CODE_PIN_LOCKED] = {"PinLocked", 403, 28904, FAULT_AUTH},
    [SIGNER_CODE_IDENTITY_MISMATCH] = {"IdentityMismatch", 403, 28905, NULL},
    [SIGNER_CODE_TOO_LARGE] = {"TooLarge", 413, 28906, NULL},
    [SIGNER_CODE_OVERLOADED] = {"Overloaded", 503, 28907, NULL},
    [SIGNER_CODE_SIGNING_UNAVAILABLE] = {"SigningUnavailable", 503, 28908, NULL},
    [SIGNER_CODE_INTERNAL_ERROR] = {"InternalError", 500, 28001, NULL},
    [SIGNER_CODE_STORE_UNAVAILABLE] = {"StoreUnavailable", 503, 28910, NULL},
    [SIGNER_CODE_RATE_LIMITED] = {"RateLimited", 429, 28911, NULL},
    [SIGNER_CODE_USER_DISABLED] = {"UserDisabled", 403, 28000, FAULT_AUTH},
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
    return code_entry_get(code)->diag_id;
}

const char *signer_code_fault(enum signer_code code)
{
    return code_entry_get(code)->fault;
}

int signer_code_of_diag_id(enum signer_code *out, unsigned id)
{
    ASSERT(out != NULL);
    for (size_t i = 0; i < ARRAY_LEN(code_table); i++) {
        if (code_table[i].diag_id == id) {
            *out = (enum signer_code)i;
            return 0;
        }
    }
    return -EINVAL;
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
