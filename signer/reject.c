/* reject: the reason token (README, Reasons), hence the error Code, and the human-readable text of
 * every signer refusal. */
#include <assert.h>

#include "base/base.h"
#include "signer/signer.h"

struct reject_entry {
    enum signer_reason reason; /* which gives the Code */
    const char *text;
};

/* Indexed by enum signer_reject. Designated initializers keep each line next to its value; the
 * static_assert below and the test that loops over the enum catch a missing entry. */
static const struct reject_entry reject_table[] = {
    [SIGNER_REJECT_NONE] = {SIGNER_REASON_INTERNAL, "No refusal was recorded for this request"},
    [SIGNER_REJECT_CSR_MALFORMED] = {SIGNER_REASON_CSR_UNPARSEABLE,
                                     "The CSR is not a DER PKCS#10 certificate request"},
    [SIGNER_REJECT_CSR_ENCODING] = {SIGNER_REASON_CSR_ENCODING,
                                    "The CSR must be DER, PEM (BEGIN CERTIFICATE REQUEST) or "
                                    "base64 of the DER"},
    [SIGNER_REJECT_CSR_VERSION] = {SIGNER_REASON_CSR_VERSION, "The CSR version must be v1 (0)"},
    [SIGNER_REJECT_CSR_TOO_LARGE] = {SIGNER_REASON_CSR_TOO_LARGE,
                                     "The CSR must be at most 16384 bytes of DER"},
    [SIGNER_REJECT_CSR_TOO_COMPLEX] = {SIGNER_REASON_CSR_TOO_COMPLEX,
                                       "The CSR has too many subject RDNs (16 at most), "
                                       "attributes (16), extensions (16) or SANs (8)"},
    [SIGNER_REJECT_KEY_UNSUPPORTED] = {SIGNER_REASON_CSR_KEY_UNSUPPORTED,
                                       "The key type is not accepted: use RSA 2048 to 4096 bits, "
                                       "ECDSA P-256 or P-384, or Ed25519"},
    [SIGNER_REJECT_KEY_RSA_SMALL] = {SIGNER_REASON_CSR_RSA_KEY_TOO_SMALL,
                                     "The RSA key is too small: use 2048 to 4096 bits"},
    [SIGNER_REJECT_KEY_RSA_EXPONENT] = {SIGNER_REASON_CSR_RSA_EXPONENT,
                                        "RSA public exponent must be 65537"},
    [SIGNER_REJECT_KEY_INVALID] = {SIGNER_REASON_CSR_KEY_INVALID,
                                   "The public key does not decode or its point is not on the "
                                   "curve"},
    [SIGNER_REJECT_SIG_WEAK] = {SIGNER_REASON_CSR_WEAK_HASH,
                                "The CSR signature uses a weak hash (MD5, SHA-1 or SHA-224): "
                                "sign with SHA-256 or stronger, or Ed25519"},
    [SIGNER_REJECT_SIG_UNSUPPORTED] = {SIGNER_REASON_CSR_SIGNATURE_ALG,
                                       "The CSR signature algorithm is not accepted or does not "
                                       "match the key: use RSA PKCS#1 v1.5 or ECDSA with "
                                       "SHA-256/384/512, or Ed25519"},
    [SIGNER_REJECT_CSR_SIGNATURE] = {SIGNER_REASON_CSR_SIGNATURE,
                                     "The CSR self-signature does not verify with its public key"},
    [SIGNER_REJECT_IDENTITY_SUBJECT] = {SIGNER_REASON_SUBJECT_MISMATCH,
                                        "The CSR subject CN must be the user's sign-in name or "
                                        "SIP URI, or absent"},
    [SIGNER_REJECT_IDENTITY_SAN] = {SIGNER_REASON_SAN_MISMATCH,
                                    "The CSR subjectAltName may only hold the user's SIP URI or "
                                    "sign-in name as email"},
    [SIGNER_REJECT_IDENTITY_ENTITY] = {SIGNER_REASON_ENTITY_MISMATCH,
                                       "The Entity names a different user than the one "
                                       "authenticated"},
    [SIGNER_REJECT_PIN_LENGTH] = {SIGNER_REASON_PIN_POLICY,
                                  "The PIN is too short or too long for the PIN policy"},
    [SIGNER_REJECT_PIN_DIGITS] = {SIGNER_REASON_PIN_POLICY, "The PIN must contain digits only"},
    [SIGNER_REJECT_PIN_PATTERN] = {SIGNER_REASON_PIN_POLICY,
                                   "The PIN must not be a repeated or consecutive digit run "
                                   "such as 11111 or 12345"},
    [SIGNER_REJECT_PIN_EXTENSION] = {SIGNER_REASON_PIN_POLICY,
                                     "The PIN must not be the user's extension or phone number"},
    [SIGNER_REJECT_KEY_RSA_LARGE] = {SIGNER_REASON_CSR_RSA_KEY_TOO_LARGE,
                                     "The RSA key is too large: use 2048 to 4096 bits"},
};

static_assert(ARRAY_LEN(reject_table) == SIGNER_REJECT_MAX_,
              "every enum signer_reject value needs a code and a text");

static const struct reject_entry *reject_entry_get(enum signer_reject reason)
{
    ASSERT((unsigned)reason < ARRAY_LEN(reject_table));
    const struct reject_entry *e = &reject_table[reason];
    ASSERT(e->text != NULL);
    ASSERT(reason == SIGNER_REJECT_NONE || e->reason != SIGNER_REASON_INTERNAL);
    return e;
}

const char *signer_reject_code(enum signer_reject reason)
{
    return signer_code_name(signer_reason_code(reject_entry_get(reason)->reason));
}

enum signer_code signer_reject_to_code(enum signer_reject reason)
{
    return signer_reason_code(reject_entry_get(reason)->reason);
}

enum signer_reason signer_reject_reason(enum signer_reject reject)
{
    return reject_entry_get(reject)->reason;
}

const char *signer_reject_text(enum signer_reject reason)
{
    return reject_entry_get(reason)->text;
}
