/* reject: the README, Errors error Code and the human-readable reason of every signer refusal. */
#include <assert.h>

#include "base/base.h"
#include "signer/signer.h"

struct reject_entry {
    const char *code;
    const char *text;
};

/* Indexed by enum signer_reject. Designated initializers keep each line next to its value; the
 * static_assert below and the test that loops over the enum catch a missing entry. */
static const struct reject_entry reject_table[] = {
    [SIGNER_REJECT_NONE] = {"InternalError", "No refusal was recorded for this request"},
    [SIGNER_REJECT_CSR_MALFORMED] = {"BadCsr", "The CSR is not a DER PKCS#10 certificate request"},
    [SIGNER_REJECT_CSR_ENCODING] = {"BadCsr",
                                    "The CSR must be DER, PEM (BEGIN CERTIFICATE REQUEST) or "
                                    "base64 of the DER"},
    [SIGNER_REJECT_CSR_VERSION] = {"BadCsr", "The CSR version must be v1 (0)"},
    [SIGNER_REJECT_CSR_TOO_LARGE] = {"BadCsr", "The CSR must be at most 16384 bytes of DER"},
    [SIGNER_REJECT_CSR_TOO_COMPLEX] = {"BadCsr", "The CSR has too many subject RDNs (16 at most), "
                                                 "attributes (16), extensions (16) or SANs (8)"},
    [SIGNER_REJECT_KEY_UNSUPPORTED] = {"BadCsr",
                                       "The key type is not accepted: use RSA 2048 to 4096 bits, "
                                       "ECDSA P-256 or P-384, or Ed25519"},
    [SIGNER_REJECT_KEY_RSA_SIZE] = {"BadCsr", "RSA key size must be 2048 to 4096 bits"},
    [SIGNER_REJECT_KEY_RSA_EXPONENT] = {"BadCsr", "RSA public exponent must be 65537"},
    [SIGNER_REJECT_KEY_INVALID] = {"BadCsr",
                                   "The public key does not decode or its point is not on the "
                                   "curve"},
    [SIGNER_REJECT_SIG_WEAK] = {"BadCsr",
                                "The CSR signature uses a weak hash (MD5, SHA-1 or SHA-224): "
                                "sign with SHA-256 or stronger, or Ed25519"},
    [SIGNER_REJECT_SIG_UNSUPPORTED] = {"BadCsr",
                                       "The CSR signature algorithm is not accepted or does not "
                                       "match the key: use RSA PKCS#1 v1.5 or ECDSA with "
                                       "SHA-256/384/512, or Ed25519"},
    [SIGNER_REJECT_CSR_SIGNATURE] = {"CsrSignatureInvalid",
                                     "The CSR self-signature does not verify with its public key"},
    [SIGNER_REJECT_IDENTITY_SUBJECT] = {"IdentityMismatch",
                                        "The CSR subject CN must be the user's sign-in name or "
                                        "SIP URI, or absent"},
    [SIGNER_REJECT_IDENTITY_SAN] = {"IdentityMismatch",
                                    "The CSR subjectAltName may only hold the user's SIP URI or "
                                    "sign-in name as email"},
    [SIGNER_REJECT_IDENTITY_ENTITY] = {"IdentityMismatch",
                                       "The Entity names a different user than the one "
                                       "authenticated"},
    [SIGNER_REJECT_PIN_LENGTH] = {"BadRequest",
                                  "The PIN is too short or too long for the PIN policy"},
    [SIGNER_REJECT_PIN_DIGITS] = {"BadRequest", "The PIN must contain digits only"},
    [SIGNER_REJECT_PIN_PATTERN] = {"BadRequest",
                                   "The PIN must not be a repeated or consecutive digit run "
                                   "such as 11111 or 12345"},
    [SIGNER_REJECT_PIN_EXTENSION] = {"BadRequest",
                                     "The PIN must not be the user's extension or phone number"},
};

static_assert(ARRAY_LEN(reject_table) == SIGNER_REJECT_MAX_,
              "every enum signer_reject value needs a code and a text");

static const struct reject_entry *reject_entry_get(enum signer_reject reason)
{
    ASSERT((unsigned)reason < ARRAY_LEN(reject_table));
    const struct reject_entry *e = &reject_table[reason];
    ASSERT(e->code != NULL);
    ASSERT(e->text != NULL);
    return e;
}

const char *signer_reject_code(enum signer_reject reason)
{
    return reject_entry_get(reason)->code;
}

const char *signer_reject_text(enum signer_reject reason)
{
    return reject_entry_get(reason)->text;
}
