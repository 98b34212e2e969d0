/* reason: the stable reason tokens of refusals (README, Reasons) and the one Code of each. */
#include <assert.h>
#include <errno.h>
#include <string.h>

#include "base/base.h"
#include "signer/signer.h"

struct reason_entry {
    const char *token;
    enum signer_code code;
};

/* Indexed by enum signer_reason; the static_assert, reason_entry_get and the test looping over
 * the enum (and over the README's table) catch a missing or undocumented entry. */
static const struct reason_entry reason_table[] = {
    [SIGNER_REASON_INTERNAL] = {"internal_error", SIGNER_CODE_INTERNAL_ERROR},
    [SIGNER_REASON_REQUEST_MALFORMED] = {"request_malformed", SIGNER_CODE_BAD_REQUEST},
    [SIGNER_REASON_DEVICE_ID_INVALID] = {"device_id_invalid", SIGNER_CODE_BAD_REQUEST},
    [SIGNER_REASON_CREDENTIALS_MISSING] = {"credentials_missing",
                                           SIGNER_CODE_AUTHENTICATION_FAILED},
    [SIGNER_REASON_CREDENTIALS_MALFORMED] = {"credentials_malformed",
                                             SIGNER_CODE_AUTHENTICATION_FAILED},
    [SIGNER_REASON_CLIENT_CERT_REQUIRED] = {"client_cert_required",
                                            SIGNER_CODE_AUTHENTICATION_FAILED},
    [SIGNER_REASON_PIN_WRONG_OR_UNKNOWN] = {"pin_wrong_or_unknown",
                                            SIGNER_CODE_AUTHENTICATION_FAILED},
    [SIGNER_REASON_PIN_LOCKED] = {"pin_locked", SIGNER_CODE_PIN_LOCKED},
    [SIGNER_REASON_ENTITY_MISMATCH] = {"entity_mismatch", SIGNER_CODE_IDENTITY_MISMATCH},
    [SIGNER_REASON_SUBJECT_MISMATCH] = {"subject_mismatch", SIGNER_CODE_IDENTITY_MISMATCH},
    [SIGNER_REASON_SAN_MISMATCH] = {"san_mismatch", SIGNER_CODE_IDENTITY_MISMATCH},
    [SIGNER_REASON_CSR_UNPARSEABLE] = {"csr_unparseable", SIGNER_CODE_BAD_CSR},
    [SIGNER_REASON_CSR_ENCODING] = {"csr_encoding", SIGNER_CODE_BAD_CSR},
    [SIGNER_REASON_CSR_VERSION] = {"csr_version", SIGNER_CODE_BAD_CSR},
    [SIGNER_REASON_CSR_TOO_LARGE] = {"csr_too_large", SIGNER_CODE_BAD_CSR},
    [SIGNER_REASON_CSR_TOO_COMPLEX] = {"csr_too_complex", SIGNER_CODE_BAD_CSR},
    [SIGNER_REASON_CSR_KEY_UNSUPPORTED] = {"csr_key_unsupported", SIGNER_CODE_BAD_CSR},
    [SIGNER_REASON_CSR_RSA_KEY_TOO_SMALL] = {"csr_rsa_key_too_small", SIGNER_CODE_BAD_CSR},
    [SIGNER_REASON_CSR_RSA_KEY_TOO_LARGE] = {"csr_rsa_key_too_large", SIGNER_CODE_BAD_CSR},
    [SIGNER_REASON_CSR_RSA_EXPONENT] = {"csr_rsa_exponent", SIGNER_CODE_BAD_CSR},
    [SIGNER_REASON_CSR_KEY_INVALID] = {"csr_key_invalid", SIGNER_CODE_BAD_CSR},
    [SIGNER_REASON_CSR_WEAK_HASH] = {"csr_weak_hash", SIGNER_CODE_BAD_CSR},
    [SIGNER_REASON_CSR_SIGNATURE_ALG] = {"csr_signature_algorithm", SIGNER_CODE_BAD_CSR},
    [SIGNER_REASON_CSR_SIGNATURE] = {"csr_signature", SIGNER_CODE_CSR_SIGNATURE_INVALID},
    [SIGNER_REASON_PIN_POLICY] = {"pin_policy", SIGNER_CODE_BAD_REQUEST},
    [SIGNER_REASON_TOO_LARGE] = {"too_large", SIGNER_CODE_TOO_LARGE},
    [SIGNER_REASON_OVERLOADED] = {"overloaded", SIGNER_CODE_OVERLOADED},
    [SIGNER_REASON_SIGNING_UNAVAILABLE] = {"signing_unavailable", SIGNER_CODE_SIGNING_UNAVAILABLE},
    [SIGNER_REASON_SIGNING_FAILED] = {"signing_failed", SIGNER_CODE_INTERNAL_ERROR},
    [SIGNER_REASON_STORE_UNAVAILABLE] = {"store_unavailable", SIGNER_CODE_STORE_UNAVAILABLE},
    [SIGNER_REASON_STORE_FAILED] = {"store_failed", SIGNER_CODE_INTERNAL_ERROR},
    [SIGNER_REASON_DIRECTORY_UNREADABLE] = {"directory_unreadable", SIGNER_CODE_INTERNAL_ERROR},
    [SIGNER_REASON_RATE_LIMITED] = {"rate_limited", SIGNER_CODE_RATE_LIMITED},
    [SIGNER_REASON_CLIENT_CERT_EXPIRED] = {"client_cert_expired",
                                           SIGNER_CODE_AUTHENTICATION_FAILED},
    [SIGNER_REASON_CLIENT_CERT_UNTRUSTED] = {"client_cert_untrusted",
                                             SIGNER_CODE_AUTHENTICATION_FAILED},
    [SIGNER_REASON_CLIENT_CERT_NO_USER] = {"client_cert_user_unknown",
                                           SIGNER_CODE_AUTHENTICATION_FAILED},
    [SIGNER_REASON_CLIENT_CERT_REVOKED] = {"cert_revoked", SIGNER_CODE_AUTHENTICATION_FAILED},
    [SIGNER_REASON_USER_DISABLED] = {"user_disabled", SIGNER_CODE_USER_DISABLED},
    [SIGNER_REASON_TICKET_INVALID] = {"ticket_invalid", SIGNER_CODE_AUTHENTICATION_FAILED},
    [SIGNER_REASON_TICKET_REPLAYED] = {"ticket_replayed", SIGNER_CODE_AUTHENTICATION_FAILED},
    [SIGNER_REASON_WEBTICKET_PORT] = {"webticket_port_refused", SIGNER_CODE_AUTHENTICATION_FAILED},
    /* issue 18: a ticket for a user disabled since is a 401, not the 403 UserDisabled of a
     * client certificate (the client's remedy is the same as for any refused ticket) */
    [SIGNER_REASON_TICKET_USER_DISABLED] = {"ticket_user_disabled",
                                            SIGNER_CODE_AUTHENTICATION_FAILED},
};

static_assert(ARRAY_LEN(reason_table) == SIGNER_REASON_MAX_,
              "every enum signer_reason needs a token and a Code");

static const struct reason_entry *reason_entry_get(enum signer_reason reason)
{
    ASSERT((unsigned)reason < ARRAY_LEN(reason_table));
    const struct reason_entry *e = &reason_table[reason];
    ASSERT(e->token != NULL);
    ASSERT(strlen(e->token) <= SIGNER_REASON_TOKEN_MAX);
    ASSERT((unsigned)e->code < SIGNER_CODE_MAX_);
    return e;
}

const char *signer_reason_token(enum signer_reason reason)
{
    return reason_entry_get(reason)->token;
}

enum signer_code signer_reason_code(enum signer_reason reason)
{
    return reason_entry_get(reason)->code;
}

int signer_reason_parse(enum signer_reason *out, const char *token)
{
    ASSERT(out != NULL);
    ASSERT(token != NULL);
    for (size_t i = 0; i < ARRAY_LEN(reason_table); i++) {
        if (strcmp(reason_table[i].token, token) == 0) {
            *out = (enum signer_reason)i;
            return 0;
        }
    }
    return -EINVAL;
}

enum signer_reason signer_code_reason(enum signer_code code)
{
    switch (code) {
    case SIGNER_CODE_BAD_REQUEST:
        return SIGNER_REASON_REQUEST_MALFORMED;
    case SIGNER_CODE_BAD_CSR:
        return SIGNER_REASON_CSR_ENCODING;
    case SIGNER_CODE_CSR_SIGNATURE_INVALID:
        return SIGNER_REASON_CSR_SIGNATURE;
    case SIGNER_CODE_AUTHENTICATION_FAILED:
        return SIGNER_REASON_CREDENTIALS_MALFORMED;
    case SIGNER_CODE_PIN_LOCKED:
        return SIGNER_REASON_PIN_LOCKED;
    case SIGNER_CODE_IDENTITY_MISMATCH:
        return SIGNER_REASON_ENTITY_MISMATCH;
    case SIGNER_CODE_TOO_LARGE:
        return SIGNER_REASON_TOO_LARGE;
    case SIGNER_CODE_OVERLOADED:
        return SIGNER_REASON_OVERLOADED;
    case SIGNER_CODE_SIGNING_UNAVAILABLE:
        return SIGNER_REASON_SIGNING_UNAVAILABLE;
    case SIGNER_CODE_STORE_UNAVAILABLE:
        return SIGNER_REASON_STORE_UNAVAILABLE;
    case SIGNER_CODE_RATE_LIMITED:
        return SIGNER_REASON_RATE_LIMITED;
    case SIGNER_CODE_USER_DISABLED:
        return SIGNER_REASON_USER_DISABLED;
    case SIGNER_CODE_INTERNAL_ERROR:
    case SIGNER_CODE_MAX_:
        break;
    }
    return SIGNER_REASON_INTERNAL;
}
