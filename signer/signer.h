/* signer: the domain of certprov. CSR intake (decode, parse with CBS, key policy, proof of
 * possession), identity checks, the certificate profile and batch issuance with CBB, the CA
 * (creation of root, issuing and TLS server certificates; loading; its file layout), PIN policy,
 * verifiers and lockout arithmetic, the CertProv SOAP and EST codecs, the one base64 decoder.
 * It has no threads and does no I/O of its own besides reading and writing the CA's files; the
 * request path that uses it is service/'s.
 *
 * BoringSSL types never appear in this header. Every refusal of the signer carries an
 * `enum signer_reject`, which maps to a reason token (`enum signer_reason`, README, Reasons), an
 * error Code (README, Errors) and a human-readable text. */
#ifndef CERTPROV_SIGNER_H
#define CERTPROV_SIGNER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hsm/hsm.h"
#include "store/store.h"

/* ---- refusals ---- */

enum signer_reject {
    SIGNER_REJECT_NONE = 0,
    SIGNER_REJECT_CSR_MALFORMED,    /* BadCsr: not a DER PKCS#10 CertificationRequest */
    SIGNER_REJECT_CSR_ENCODING,     /* BadCsr: not DER, PEM or base64 */
    SIGNER_REJECT_CSR_VERSION,      /* BadCsr: version is not v1 (0) */
    SIGNER_REJECT_CSR_TOO_LARGE,    /* BadCsr: over SIGNER_CSR_DER_MAX bytes */
    SIGNER_REJECT_CSR_TOO_COMPLEX,  /* BadCsr: too many attributes, extensions, SANs or RDNs */
    SIGNER_REJECT_KEY_UNSUPPORTED,  /* BadCsr: key algorithm or curve not accepted */
    SIGNER_REJECT_KEY_RSA_SMALL,    /* BadCsr: RSA modulus under 2048 bits */
    SIGNER_REJECT_KEY_RSA_EXPONENT, /* BadCsr: RSA public exponent is not 65537 */
    SIGNER_REJECT_KEY_INVALID,      /* BadCsr: public key does not decode or is not on curve */
    SIGNER_REJECT_SIG_WEAK,         /* BadCsr: MD2/4/5, SHA-1 or SHA-224 signature */
    SIGNER_REJECT_SIG_UNSUPPORTED,  /* BadCsr: unknown signature algorithm or key mismatch */
    SIGNER_REJECT_CSR_SIGNATURE,    /* CsrSignatureInvalid: self-signature does not verify */
    SIGNER_REJECT_IDENTITY_SUBJECT, /* IdentityMismatch: subject CN names someone else */
    SIGNER_REJECT_IDENTITY_SAN,     /* IdentityMismatch: a SAN names someone else */
    SIGNER_REJECT_IDENTITY_ENTITY,  /* IdentityMismatch: SOAP Entity names someone else */
    SIGNER_REJECT_PIN_LENGTH,       /* PIN shorter than the policy minimum or too long */
    SIGNER_REJECT_PIN_DIGITS,       /* PIN has a character that is not a digit */
    SIGNER_REJECT_PIN_PATTERN,      /* PIN is a repeated or consecutive digit run */
    SIGNER_REJECT_PIN_EXTENSION,    /* PIN equals the user's extension or phone digits */
    SIGNER_REJECT_KEY_RSA_LARGE,    /* BadCsr: RSA modulus over 4096 bits */
    SIGNER_REJECT_MAX_,
};

/* signer_reason is the stable reason token of a refusal (README, Reasons): finer than the Code,
 * carried in the request's log line (`reason=`) and in X-Ms-diagnostics (`;token="..."`). Each
 * maps to exactly one Code. A token never tells a wrong PIN from an unknown login
 * (SIGNER_REASON_PIN_WRONG_OR_UNKNOWN covers both). The names are a contract with operators'
 * tooling: never rename one; a new reason goes before SIGNER_REASON_MAX_. Zero is the reason of a
 * failure that recorded none (internal_error), so a zeroed struct is valid. */
enum signer_reason {
    SIGNER_REASON_INTERNAL = 0,          /* InternalError: anything else (the log says what) */
    SIGNER_REASON_REQUEST_MALFORMED,     /* BadRequest: not a well-formed HTTP/SOAP request */
    SIGNER_REASON_DEVICE_ID_INVALID,     /* BadRequest: DeviceId too long */
    SIGNER_REASON_CREDENTIALS_MISSING,   /* AuthenticationFailed: no Basic, no UsernameToken */
    SIGNER_REASON_CREDENTIALS_MALFORMED, /* AuthenticationFailed: unreadable credentials */
    SIGNER_REASON_CLIENT_CERT_REQUIRED,  /* AuthenticationFailed: renewal without certificate */
    SIGNER_REASON_PIN_WRONG_OR_UNKNOWN,  /* AuthenticationFailed: wrong PIN or unknown login */
    SIGNER_REASON_PIN_LOCKED,            /* PinLocked */
    SIGNER_REASON_ENTITY_MISMATCH,       /* IdentityMismatch: SOAP Entity */
    SIGNER_REASON_SUBJECT_MISMATCH,      /* IdentityMismatch: CSR subject CN */
    SIGNER_REASON_SAN_MISMATCH,          /* IdentityMismatch: CSR subjectAltName */
    SIGNER_REASON_CSR_UNPARSEABLE,       /* BadCsr: not DER PKCS#10 */
    SIGNER_REASON_CSR_ENCODING,          /* BadCsr: not DER, PEM or base64 */
    SIGNER_REASON_CSR_VERSION,           /* BadCsr */
    SIGNER_REASON_CSR_TOO_LARGE,         /* BadCsr */
    SIGNER_REASON_CSR_TOO_COMPLEX,       /* BadCsr */
    SIGNER_REASON_CSR_KEY_UNSUPPORTED,   /* BadCsr */
    SIGNER_REASON_CSR_RSA_KEY_TOO_SMALL, /* BadCsr */
    SIGNER_REASON_CSR_RSA_KEY_TOO_LARGE, /* BadCsr */
    SIGNER_REASON_CSR_RSA_EXPONENT,      /* BadCsr */
    SIGNER_REASON_CSR_KEY_INVALID,       /* BadCsr */
    SIGNER_REASON_CSR_WEAK_HASH,         /* BadCsr: MD5, SHA-1, SHA-224 */
    SIGNER_REASON_CSR_SIGNATURE_ALG,     /* BadCsr: algorithm not accepted */
    SIGNER_REASON_CSR_SIGNATURE,         /* CsrSignatureInvalid */
    SIGNER_REASON_PIN_POLICY,            /* BadRequest: a new PIN breaks the PIN policy */
    SIGNER_REASON_TOO_LARGE,             /* TooLarge */
    SIGNER_REASON_OVERLOADED,            /* Overloaded */
    SIGNER_REASON_SIGNING_UNAVAILABLE,   /* SigningUnavailable */
    SIGNER_REASON_SIGNING_FAILED,        /* InternalError: the key backend failed */
    SIGNER_REASON_STORE_UNAVAILABLE,     /* StoreUnavailable */
    SIGNER_REASON_STORE_FAILED,          /* InternalError: the store failed otherwise */
    SIGNER_REASON_DIRECTORY_UNREADABLE,  /* InternalError: the users could not be read */
    SIGNER_REASON_RATE_LIMITED,          /* RateLimited */
    SIGNER_REASON_CLIENT_CERT_EXPIRED,   /* AuthenticationFailed: renewal, certificate expired */
    SIGNER_REASON_CLIENT_CERT_UNTRUSTED, /* AuthenticationFailed: renewal, another CA's */
    SIGNER_REASON_CLIENT_CERT_NO_USER,   /* AuthenticationFailed: renewal, its user is gone */
    SIGNER_REASON_CLIENT_CERT_REVOKED,   /* AuthenticationFailed: renewal, certificate revoked */
    SIGNER_REASON_USER_DISABLED,         /* AuthenticationFailed: renewal, its user is disabled */
    SIGNER_REASON_TICKET_INVALID,        /* AuthenticationFailed: a Web ticket or proof refused */
    SIGNER_REASON_TICKET_REPLAYED,       /* AuthenticationFailed: (assertion, Timestamp) seen */
    SIGNER_REASON_WEBTICKET_PORT,        /* AuthenticationFailed: anonymous or unknown port */
    SIGNER_REASON_TICKET_USER_DISABLED,  /* AuthenticationFailed: a ticket's user disabled since */
    SIGNER_REASON_MAX_,
};

/* signer_reason_token returns the token of `reason` ("csr_weak_hash", ...): lower case ASCII
 * letters, digits and '_', at most SIGNER_REASON_TOKEN_MAX bytes. Static storage. */
const char *signer_reason_token(enum signer_reason reason);
#define SIGNER_REASON_TOKEN_MAX 32

/* signer_reason_parse finds the reason of a token (exact). Returns 0 with *out set, or -EINVAL. */
int signer_reason_parse(enum signer_reason *out, const char *token);

/* signer_reject_reason returns the reason token of a signer refusal; SIGNER_REJECT_NONE (no
 * refusal recorded) is SIGNER_REASON_INTERNAL. */
enum signer_reason signer_reject_reason(enum signer_reject reject);

/* signer_reject_code returns the error Code (README, Errors) of a refusal ("BadCsr",
 * "CsrSignatureInvalid", "IdentityMismatch", "BadRequest" for PIN policy). Static storage. */
const char *signer_reject_code(enum signer_reject reason);

/* signer_reject_text returns a one-sentence human-readable reason that says what was wrong and,
 * where it helps, what is accepted. Static storage. */
const char *signer_reject_text(enum signer_reject reason);

/* ---- base64 and secrets ---- */

#define SIGNER_BASE64_STRICT 0u            /* RFC 4648 §4 exactly: whole quanta, no whitespace */
#define SIGNER_BASE64_SKIP_SPACE (1u << 0) /* skip whitespace anywhere */
#define SIGNER_BASE64_UNPADDED (1u << 1)   /* the last quantum may leave out its '=' */
#define SIGNER_BASE64_PUBLIC (1u << 2)     /* public text: a lookup table, not constant time */

/* signer_base64_decode decodes the base64 text in[0..in_len) (RFC 4648 §4: A-Z a-z 0-9 + /, '='
 * only to pad the last 4-character quantum, no line length) into `out` (cap bytes). Each quantum
 * goes through BoringSSL's EVP_DecodeBase64, which is constant-time in the characters, so the
 * text may be a secret (HTTP Basic credentials); the decoder's scratch copies are wiped.
 * `flags` is SIGNER_BASE64_STRICT or an OR of:
 *   SIGNER_BASE64_SKIP_SPACE  skip ' ', '\t', '\r', '\n', '\v' and '\f' anywhere, even between
 *                             '=' (phones break CSR lines where they like); without it whitespace
 *                             is malformed. The skipping branches on each character: public text
 *                             (CSRs) only.
 *   SIGNER_BASE64_UNPADDED    accept a last quantum of 2 or 3 characters without its '='.
 *   SIGNER_BASE64_PUBLIC      the text is public (a CSR, a certificate): the same answers by a
 *                             lookup table that branches on the characters, about six times
 *                             faster; never for a secret.
 * Returns 0 with *out_len set (empty text is 0 bytes); -EBADMSG when the text is malformed (a
 * character outside the alphabet, '=' anywhere but the end of the last quantum, anything after
 * it, a last quantum of 1 character, or of 2-3 without UNPADDED); -E2BIG when the decoded bytes
 * do not fit in `cap` (the exact count: padding is not counted). Of a malformed character and
 * an overflow, the earlier in the text is reported (one in a padded last quantum counts as at the
 * end of the text). On failure *out_len is untouched and `out` may hold
 * part of the output: wipe it if the text was secret. `in` is not limited in length (callers
 * bound their text); it is borrowed for the call. Thread-safe, no allocation, about 300 bytes of
 * stack. */
int signer_base64_decode(uint8_t *out, size_t cap, size_t *out_len, const char *in, size_t in_len,
                         unsigned flags);

/* signer_secret_wipe overwrites len bytes at `p` with zeros in a way the compiler may not drop
 * (BoringSSL's OPENSSL_cleanse), for secrets held outside signer/: PINs, Basic credentials, items
 * of requests. `p` may be NULL only when len is 0. Thread-safe. */
void signer_secret_wipe(void *p, size_t len);

/* ---- CSR intake ---- */

#define SIGNER_CSR_DER_MAX 16384  /* bytes of DER */
#define SIGNER_CSR_TEXT_MAX 32768 /* bytes of PEM or base64 text accepted by decode */
#define SIGNER_CSR_ATTRS_MAX 16   /* attributes in the CertificationRequestInfo */
#define SIGNER_CSR_EXTS_MAX 16    /* extensions in an extensionRequest */
#define SIGNER_CSR_SANS_MAX 8     /* GeneralNames in a subjectAltName */
#define SIGNER_CSR_RDNS_MAX 16    /* RDNs in the subject */

enum signer_key_type {
    SIGNER_KEY_NONE = 0,
    SIGNER_KEY_RSA = 1,
    SIGNER_KEY_P256 = 2,
    SIGNER_KEY_P384 = 3,
    SIGNER_KEY_ED25519 = 4,
};

enum signer_san_type {
    SIGNER_SAN_OTHER = 0, /* otherName, x400, directoryName, ediParty, IP, RID */
    SIGNER_SAN_EMAIL = 1, /* rfc822Name */
    SIGNER_SAN_DNS = 2,   /* dNSName */
    SIGNER_SAN_URI = 3,   /* uniformResourceIdentifier */
};

struct signer_san {
    enum signer_san_type type;
    const uint8_t *value; /* borrowed from the CSR DER; not NUL-terminated */
    size_t value_len;
};

/* signer_csr is a parsed PKCS#10 request. Every pointer borrows from the DER given to
 * signer_csr_parse, which must outlive it. */
struct signer_csr {
    const uint8_t *der;
    size_t der_len;
    const uint8_t *info; /* CertificationRequestInfo: what the signature covers */
    size_t info_len;
    const uint8_t *spki; /* SubjectPublicKeyInfo DER, copied as-is into the certificate */
    size_t spki_len;
    enum signer_key_type key_type;
    unsigned key_bits;  /* RSA modulus bits; 256/384 for EC; 255 for Ed25519 */
    int sig_nid;        /* BoringSSL NID of the signature algorithm */
    const uint8_t *sig; /* signature bytes (BIT STRING content without the unused-bits byte) */
    size_t sig_len;
    const uint8_t *subject_cn; /* first commonName value of the subject, or NULL */
    size_t subject_cn_len;
    size_t num_subject_cns;  /* commonNames in the subject: more than one fails identity */
    size_t num_subject_rdns; /* RDNs in the subject (CN included) */
    size_t num_sans;
    struct signer_san sans[SIGNER_CSR_SANS_MAX];
};

/* signer_csr_decode turns a CSR given as DER, PEM ("-----BEGIN CERTIFICATE REQUEST-----" or
 * "NEW CERTIFICATE REQUEST") or bare base64 (whitespace and line breaks anywhere) into DER in
 * `out` (cap bytes; SIGNER_CSR_DER_MAX is enough for any accepted CSR). Returns 0 with *out_len
 * set; -EBADMSG (*out_reason = SIGNER_REJECT_CSR_ENCODING) when it is none of these; -E2BIG
 * (SIGNER_REJECT_CSR_TOO_LARGE) when the input exceeds SIGNER_CSR_TEXT_MAX or the DER exceeds
 * cap. Decoded text must start with a DER SEQUENCE; only whitespace may surround a PEM block. On
 * success *out_reason = SIGNER_REJECT_NONE; on failure `out` may hold partial output and *out_len
 * is untouched. Thread-safe, no allocation. */
int signer_csr_decode(uint8_t *out, size_t cap, size_t *out_len, enum signer_reject *out_reason,
                      const uint8_t *in, size_t in_len);

/* signer_csr_parse parses one DER PKCS#10 request into the zeroed `out`, which borrows from
 * `der`, and applies the key and signature-algorithm policy of README, The certificate. It does NOT
 * verify the signature (signer_csr_verify does). Returns 0; -EBADMSG if malformed (reason
 * CSR_MALFORMED or CSR_VERSION); -E2BIG if a limit is exceeded (CSR_TOO_LARGE, CSR_TOO_COMPLEX);
 * -EPERM if the policy refuses it (KEY_*, SIG_*). On failure *out_reason is set and `out` stays
 * zeroed; on success it is SIGNER_REJECT_NONE. Subject values (RDNs and attribute values together)
 * are bounded by SIGNER_CSR_RDNS_MAX; a repeated extension is malformed. BoringSSL allocates only
 * while it decodes the key and everything is freed before return. Thread-safe. */
int signer_csr_parse(struct signer_csr *out, enum signer_reject *out_reason, const uint8_t *der,
                     size_t der_len);

/* signer_csr_verify checks the request's self-signature with its own public key (proof of
 * possession). `csr` must come from a successful signer_csr_parse (ASSERTed). Returns 0
 * (*out_reason = SIGNER_REJECT_NONE), or -EPERM with *out_reason = SIGNER_REJECT_CSR_SIGNATURE
 * (or KEY_INVALID when the key does not decode). Thread-safe. */
int signer_csr_verify(const struct signer_csr *csr, enum signer_reject *out_reason);

/* signer_identity_check refuses a CSR that names someone other than the user `uri`
 * ("sip:alice@example.com"): a subject CN must be absent or equal to the sign-in name
 * ("alice@example.com") or the URI (case-insensitive); every SAN must be the URI itself
 * (type URI), or the sign-in name (type email). Comparisons ignore ASCII case. A subject with more
 * than one CN is refused. Returns 0 (*out_reason = SIGNER_REJECT_NONE) or -EPERM with
 * *out_reason = SIGNER_REJECT_IDENTITY_SUBJECT or _SAN. Thread-safe. */
int signer_identity_check(const struct signer_csr *csr, enum signer_reject *out_reason,
                          const char *uri);

/* signer_uri_sign_in_name returns a pointer into `uri` past a leading "sip:" (case-insensitive),
 * i.e. the sign-in name "alice@example.com". Borrowed from `uri`. */
const char *signer_uri_sign_in_name(const char *uri);

/* ---- the CA and issuance ---- */

#define SIGNER_CERT_DER_MAX 4096 /* largest certificate we issue (== STORE_CERT_DER_MAX) */
#define SIGNER_SERIAL_LEN 16
#define SIGNER_BACKDATE_S 300      /* notBefore is back-dated 5 minutes for clock skew */
#define SIGNER_CHAIN_PEM_MAX 16384 /* bytes of the CA chain in PEM, NUL included */

struct signer_profile {
    uint32_t default_hours; /* 4320 */
    uint32_t min_hours;     /* 8 */
    uint32_t max_hours;     /* 8760 */
};

/* signer_profile_clamp returns the validity in hours for a request of `hours` (0 = default),
 * clamped to [min_hours, max_hours]. */
uint32_t signer_profile_clamp(const struct signer_profile *p, uint32_t hours);

/* signer_file names the files of the signer under the store directory:
 *   ca/root.crt ca/root.key        self-signed root CA (key 0600)
 *   ca/issuing.crt ca/issuing.key  issuing CA, signed by the root (key 0600)
 *   ca/root.crt ca/root.key are made by `ca init` only: an enterprise CA (`ca import`) has
 *   neither (its root is the last certificate of chain.pem, and its key is the enterprise's)
 *   tls/server.crt tls/server.key  TLS server certificate for [server] name and alt_names, signed
 *                                  by the issuing CA (tls/server.crt holds the leaf, then every
 *                                  certificate of chain.pem but the root: the handshake's chain)
 *   chain.pem                      issuing CA, the enterprise's intermediates (if any), then the
 *                                  root, PEM: what /CertProv/chain.pem and EST cacerts serve
 *   ca/issuing.csr                 the request of `certprovctl ca request`, while it is pending
 *                                  (ca/issuing.key made, ca/issuing.crt not imported yet)
 *   pin.key                        the 32-byte PIN key (0600)
 * This is the one place that knows the layout: everyone else asks signer_file_path. */
enum signer_file {
    SIGNER_FILE_ROOT_KEY,
    SIGNER_FILE_ISSUING_KEY,
    SIGNER_FILE_SERVER_KEY,
    SIGNER_FILE_ROOT_CRT,
    SIGNER_FILE_ISSUING_CRT,
    SIGNER_FILE_SERVER_CRT,
    SIGNER_FILE_CHAIN,
    SIGNER_FILE_ISSUING_CSR,
    SIGNER_FILE_CA_MAX_, /* the CA's files are the ones before this */
    SIGNER_FILE_PIN_KEY = SIGNER_FILE_CA_MAX_,
    SIGNER_FILE_MAX_,
};

/* signer_file_path writes "<dir>/<file>" into `out` (cap bytes, NUL-terminated). Returns 0, or
 * -ENAMETOOLONG when it does not fit (out then holds a cut path). Thread-safe. */
int signer_file_path(char *out, size_t cap, const char *dir, enum signer_file f);

struct signer_ca;

/* signer_ca_init creates the root CA, the issuing CA and the TLS server certificate for `fqdn`
 * under `dir`, with CA keys of `type` (the TLS server key is always P-256). Refuses to overwrite
 * an existing CA (-EEXIST). Returns 0, -EEXIST, -EINVAL (bad fqdn), -EIO or a negative errno. */
int signer_ca_init(const char *dir, enum hsm_key_type type, const char *fqdn);

/* struct signer_ca_fault says what signer_ca_open found wrong. */
struct signer_ca_fault {
    enum signer_file file; /* the file that failed: ISSUING_CRT, ISSUING_KEY or CHAIN */
    const char *why;       /* static text ("missing", "damaged (not a PEM certificate)", "not the
                            * key of ca/issuing.crt", ...), or NULL: the errno says it */
    bool no_ca;            /* -ENOENT and none of the CA's files (SIGNER_FILE_CA_MAX_) is in the
                            * directory: a store without a CA. The only case where creating one
                            * (`certprovctl ca init`) is the advice: otherwise a CA exists */
};

/* signer_ca_open loads the issuing CA certificate, its key and the chain from `dir`. Returns 0
 * (*out owned; free with signer_ca_free), -ENOENT (a file is missing; out_fault->no_ca tells
 * whether the directory has no CA at all), -EPERM (the key file is readable or writable by group
 * or others: `chmod 600` it), -EBADMSG (a file is damaged, or the key does not match the
 * certificate), -ENOMEM, or another negative errno from reading a file (-EACCES, -EIO, ...). On
 * failure *out_fault, when not NULL, says which file failed and why (signer_ca_fault_format). */
int signer_ca_open(struct signer_ca **out, struct signer_ca_fault *out_fault, const char *dir);

/* signer_ca_init_with_key is signer_ca_init with the issuing CA's key given (`issuing`, borrowed:
 * a key generated in a PKCS#11 token); no ca/issuing.key file is written, the root key is soft
 * and of the same type. Returns as signer_ca_init. */
int signer_ca_init_with_key(const char *dir, struct hsm_key *issuing, const char *fqdn);

/* signer_ca_open_with_key is signer_ca_open with the issuing CA's key given (`key`, owned by the
 * CA from the call on, freed on failure): a PKCS#11 key instead of ca/issuing.key. A key that is
 * not the key of ca/issuing.crt is -EBADMSG with out_fault->file SIGNER_FILE_ISSUING_KEY. */
int signer_ca_open_with_key(struct signer_ca **out, struct signer_ca_fault *out_fault,
                            const char *dir, struct hsm_key *key);

/* signer_ca_self_test signs a random message with the CA's key and verifies the signature with
 * the public key of ca/issuing.crt (checked equal to the key's at open). Returns 0, -EAGAIN (the
 * backend is down), -EIO (signing failed) or -EBADMSG (the signature does not verify). May block
 * in a PKCS#11 module: never on a ring. */
int signer_ca_self_test(struct signer_ca *ca);

/* signer_ca_fault_format writes one sentence about the failure `rc` of signer_ca_open on `dir`
 * with `fault` into `out` (cap bytes): "<dir>/ca/issuing.key is missing", "<dir>/chain.pem is
 * damaged (...)", "<dir>/ca/issuing.key is readable or writable by group or others; run: chmod
 * 600 <dir>/ca/issuing.key", "<dir>/... cannot be read: <strerror>". Returns 0, or
 * -ENAMETOOLONG when it was cut to fit. Thread-safe. */
int signer_ca_fault_format(char *out, size_t cap, int rc, const struct signer_ca_fault *fault,
                           const char *dir);

/* signer_ca_free frees the CA and its key. NULL is a no-op. */
void signer_ca_free(struct signer_ca *ca);

/* signer_ca_get_chain_pem returns the issuing CA and root certificates as PEM (borrowed; lives
 * as long as `ca`) and sets *out_len. */
const char *signer_ca_get_chain_pem(const struct signer_ca *ca, size_t *out_len);

/* signer_ca_get_key returns the issuing CA's key (borrowed). */
struct hsm_key *signer_ca_get_key(struct signer_ca *ca);

/* signer_issue is one certificate to issue in a batch. The caller fills the inputs; the signer
 * fills the outputs. */
struct signer_issue {
    /* inputs */
    const struct signer_csr *csr; /* parsed and verified; borrowed */
    const char *uri;              /* the authenticated user's URI; borrowed */
    uint32_t hours;               /* requested validity; 0 = profile default */
    int64_t now_s;                /* issuance time (Unix seconds) */
    /* outputs */
    int rc; /* 0, -E2BIG (certificate too large), -EINVAL (uri is not a printable-ASCII
             * "sip:" URI, or the issuing CA has expired), -EBADMSG (csr->spki does not parse),
             * -EIO (signing failed), -EAGAIN (key backend unavailable) */
    uint8_t serial[SIGNER_SERIAL_LEN];
    int64_t not_before_s;
    int64_t not_after_s;
    size_t der_len;
    uint8_t der[SIGNER_CERT_DER_MAX];
};

/* signer_issue_batch builds the TBSCertificate of each item per README, The certificate (subject CN
 * = sign-in name, SAN URI, EKU clientAuth, KU, basicConstraints, SKI/AKI, validity clamped by
 * `profile` and back-dated SIGNER_BACKDATE_S, never past the issuing CA's notAfter, a fresh 16-byte
 * positive CSPRNG serial), signs all of them in one hsm_key_sign_batch call and assembles the
 * certificates. Calling it again on an item draws a new serial (used after a serial clash in the
 * store). Returns 0 when every item succeeded, -EIO when some failed (see items' rc), -EAGAIN when
 * the key backend is unavailable. num_items <= HSM_BATCH_MAX. Thread-safe for distinct item arrays.
 */
int signer_issue_batch(struct signer_ca *ca, const struct signer_profile *profile,
                       struct signer_issue *items, size_t num_items);

/* signer_serial_parse reads a serial as printed by certprovctl (hex, any case, optional leading
 * zeros and colons) into `out`, big-endian, left-padded with zeros. Returns 0 or -EINVAL. */
int signer_serial_parse(uint8_t out[SIGNER_SERIAL_LEN], const char *text);

/* signer_serial_format writes the serial as upper-case hex of the positive integer, without
 * leading zeros or separators ("0" for zero) into `out` (at least 2*SIGNER_SERIAL_LEN+1 bytes):
 * base_serial_hex of the SIGNER_SERIAL_LEN bytes. */
void signer_serial_format(char *out, const uint8_t serial[SIGNER_SERIAL_LEN]);

/* signer_cert_serial reads the serial number of the DER certificate der[0..der_len) into `out`,
 * big-endian, left-padded with zeros (a renewal's client certificate, for the revocation check).
 * Returns 0, or -EBADMSG (not a certificate, a negative serial, or one longer than
 * SIGNER_SERIAL_LEN bytes: never one of ours). */
int signer_cert_serial(uint8_t out[SIGNER_SERIAL_LEN], const uint8_t *der, size_t der_len);

/* ---- revocation: CRL (crl.c) ---- */

#define SIGNER_URL_MAX 255 /* bytes of a CRL or OCSP URL */

/* signer_ca_set_urls sets the URLs that certificates issued from now on carry: the CRL
 * Distribution Point `crl_url` and, when `ocsp_url` is not NULL or "", the OCSP responder in
 * Authority Information Access. Either may be NULL or "" (none). Call before the CA is shared
 * between threads. Returns 0 or -EINVAL (longer than SIGNER_URL_MAX, or not an http:// or
 * https:// URL of printable ASCII). */
int signer_ca_set_urls(struct signer_ca *ca, const char *crl_url, const char *ocsp_url);

/* signer_crl_entry is one revoked certificate of a CRL. */
struct signer_crl_entry {
    uint8_t serial[SIGNER_SERIAL_LEN];
    int64_t revoked_at_s;
    uint8_t reason; /* STORE_REASON_*: unspecified (0) is written without a reasonCode */
};

/* signer_crl_build builds and signs (through the CA's key backend: one signature) the v2 CRL of
 * the issuing CA (RFC 5280 §5): issuer, thisUpdate, nextUpdate, the entries in the given order
 * with their revocation date and reasonCode, the CRL extensions authorityKeyIdentifier and
 * cRLNumber `crl_number` (callers keep it increasing). *out_der is owned by the caller (free
 * with signer_crl_free). Allocates about 60 bytes per entry: not for a ring thread. Returns 0,
 * -ENOMEM, -EAGAIN (the key backend is unavailable) or -EIO (it failed to sign). */
int signer_crl_build(struct signer_ca *ca, uint8_t **out_der, size_t *out_len,
                     const struct signer_crl_entry *entries, size_t num_entries,
                     uint64_t crl_number, int64_t this_update_s, int64_t next_update_s);

/* signer_crl_free frees a CRL of signer_crl_build. NULL is a no-op. */
void signer_crl_free(uint8_t *der);

/* ---- revocation: OCSP (ocsp.c, RFC 6960) ---- */

#define SIGNER_OCSP_REQUEST_MAX 4096  /* bytes of a DER OCSPRequest */
#define SIGNER_OCSP_CERTS_MAX 16      /* certificates asked about in one request */
#define SIGNER_OCSP_NONCE_MAX 64      /* bytes of the nonce extension's value (RFC 8954: 32) */
#define SIGNER_OCSP_RESPONSE_MAX 8192 /* bytes of any response to a request within the bounds */
#define SIGNER_OCSP_ERROR_LEN 5       /* bytes of an error response */

/* signer_ocsp_status is OCSPResponseStatus (RFC 6960 §4.2.1). */
enum signer_ocsp_status {
    SIGNER_OCSP_SUCCESSFUL = 0,
    SIGNER_OCSP_MALFORMED = 1,      /* malformedRequest: not DER, bounds exceeded */
    SIGNER_OCSP_INTERNAL_ERROR = 2, /* internalError: the store or the key backend failed */
    SIGNER_OCSP_TRY_LATER = 3,      /* tryLater: the key backend is unavailable */
    SIGNER_OCSP_UNAUTHORIZED = 6,   /* unauthorized: a certificate of another CA (RFC 5019) */
};

/* signer_ocsp_signer is a delegated OCSP signing key and its certificate (ocsp.c). */
struct signer_ocsp_signer;

/* signer_ocsp_cert is one CertID of a request; the pointers borrow the request's bytes. */
struct signer_ocsp_cert {
    const uint8_t *certid; /* the CertID's DER, echoed in the response */
    size_t certid_len;
    bool ours;      /* issuerNameHash and issuerKeyHash (SHA-1 or SHA-256) name this CA */
    bool serial_ok; /* the serial is positive and fits SIGNER_SERIAL_LEN: could be ours */
    uint8_t serial[SIGNER_SERIAL_LEN];
};

/* signer_ocsp_request is a parsed OCSPRequest; it borrows the DER it was parsed from. */
struct signer_ocsp_request {
    size_t num_certs;
    struct signer_ocsp_cert certs[SIGNER_OCSP_CERTS_MAX];
    const uint8_t *nonce; /* the nonce extension's extnValue contents, or NULL */
    size_t nonce_len;
};

/* signer_ocsp_parse parses the DER OCSPRequest der[0..len) with CBS, for the CA `ca`. Returns 0
 * (*out_status SUCCESSFUL), -E2BIG (over SIGNER_OCSP_REQUEST_MAX bytes or SIGNER_OCSP_CERTS_MAX
 * certificates: MALFORMED), -EBADMSG (not an OCSPRequest, a version other than v1, a critical
 * extension not understood, a nonce of 0 or more than SIGNER_OCSP_NONCE_MAX bytes: MALFORMED),
 * -EPERM (a certificate of another issuer, or an unsupported hash: UNAUTHORIZED) or -EIO (the
 * CA's public key cannot be read: INTERNAL_ERROR). Pure apart from reading the CA's key. */
int signer_ocsp_parse(struct signer_ca *ca, struct signer_ocsp_request *out,
                      enum signer_ocsp_status *out_status, const uint8_t *der, size_t len);

/* signer_ocsp_error writes the OCSPResponse of an error `status` (not SUCCESSFUL) into `out`
 * and returns its length, SIGNER_OCSP_ERROR_LEN. */
size_t signer_ocsp_error(uint8_t out[SIGNER_OCSP_ERROR_LEN], enum signer_ocsp_status status);

enum signer_ocsp_cert_status {
    SIGNER_OCSP_GOOD = 0,
    SIGNER_OCSP_REVOKED = 1,
    SIGNER_OCSP_UNKNOWN = 2, /* never issued by this CA */
};

/* signer_ocsp_answer is what the responder says about req->certs[i]. */
struct signer_ocsp_answer {
    enum signer_ocsp_cert_status status;
    int64_t revoked_at_s; /* REVOKED */
    uint8_t reason;       /* REVOKED: STORE_REASON_*; unspecified is written without a reason */
};

/* signer_ocsp_respond builds the successful OCSPResponse (id-pkix-ocsp-basic) for `req` with
 * answers[i] for req->certs[i]: producedAt and thisUpdate now_s, nextUpdate next_s (not for
 * unknown), the request's nonce echoed, signed by `signer` (its certificate included) or, when
 * NULL, by the issuing CA's key (one signature, through its backend). Returns 0 with *out_len set,
 * -E2BIG (cap too small), -EAGAIN (the key backend is unavailable) or -EIO (it failed to sign). */
int signer_ocsp_respond(struct signer_ca *ca, const struct signer_ocsp_signer *signer, uint8_t *out,
                        size_t cap, size_t *out_len, const struct signer_ocsp_request *req,
                        const struct signer_ocsp_answer *answers, int64_t now_s, int64_t next_s);

/* signer_ocsp_signer_issue makes the delegated OCSP signer of the CA under the store directory
 * `dir`: a new P-256 key (<dir>/ca/ocsp.key, 0600) and its certificate (<dir>/ca/ocsp.crt),
 * issued by the CA for `days` days (never past the CA's notAfter) with keyUsage
 * digitalSignature, extendedKeyUsage id-kp-OCSPSigning and id-pkix-ocsp-nocheck (RFC 6960
 * §4.2.2.2), replacing the previous pair (written beside it, then renamed: key, then
 * certificate). Sets *out_not_after_s (may be NULL). Returns 0, -EINVAL (days outside 1..3650,
 * a path too long, or the CA has expired), -EAGAIN or -EIO (signing), or a negative errno of
 * writing the files. */
int signer_ocsp_signer_issue(struct signer_ca *ca, const char *dir, uint32_t days, int64_t now_s,
                             int64_t *out_not_after_s);

/* signer_ocsp_signer_open loads the delegated signer of `dir` for `ca`. Returns 0 (*out owned:
 * signer_ocsp_signer_free), -ENOENT (none: the CA signs), -EBADMSG (the certificate was not
 * issued by this CA, or does not hold the key), -ENOMEM or another negative errno of reading
 * the files. Its validity is not checked here: the caller compares signer_ocsp_signer_not_after. */
int signer_ocsp_signer_open(struct signer_ocsp_signer **out, struct signer_ca *ca, const char *dir);

/* signer_ocsp_signer_not_after returns the notAfter of the signer's certificate (Unix s). */
int64_t signer_ocsp_signer_not_after(const struct signer_ocsp_signer *s);

/* signer_ocsp_signer_free frees a signer. NULL is a no-op. */
void signer_ocsp_signer_free(struct signer_ocsp_signer *s);

/* ---- PINs ---- */

#define SIGNER_PIN_MAX 32 /* digits */
#define SIGNER_PIN_KEY_LEN 32

#define SIGNER_COUNTRY_CODE_MAX 3 /* digits of a country calling code */

struct signer_pin_policy {
    uint32_t min_len;             /* 5 */
    uint32_t window_s;            /* 1800 */
    uint32_t window_failures_max; /* 25 (10 for 4-digit PINs) */
    uint32_t window_failures_max_short;
    uint32_t lock_s;             /* 3600 */
    uint32_t total_failures_max; /* 1000 (100 for 4-digit PINs) */
    uint32_t total_failures_max_short;
    /* [pin] default_country_code: "" or 1..3 digits (signer_country_code_valid); a national
     * number (no '+') is read with it (signer_phone_e164) at sign-in and import */
    char default_country_code[SIGNER_COUNTRY_CODE_MAX + 1];
};

/* ---- phone numbers (phone.c) ---- */

#define SIGNER_PHONE_DIGITS_MIN 7  /* digits of an E.164 number, country code included */
#define SIGNER_PHONE_DIGITS_MAX 15 /* ITU-T E.164 */

/* signer_country_code_valid tells whether `cc` is a country calling code: 1 to 3 digits, the
 * first not 0 ("1", "49", "358"). */
bool signer_country_code_valid(const char *cc);

/* signer_phone_e164 reads the phone number `in` as people and phones write it and writes its
 * E.164 form ("+14255550100") into `out` (cap bytes, NUL-terminated; 17 always suffice):
 *   - an optional "tel:" (any case) is dropped; RFC 3966 visual separators (space, '-', '.', '(',
 *     ')') anywhere are dropped; anything else but digits and one leading '+' is refused (no URI
 *     parameters: ";ext=" is not read);
 *   - "+DIGITS": international already;
 *   - DIGITS without '+', and `default_cc` "" (no [pin] default_country_code): "+" DIGITS (taken
 *     as international without its '+': "14255550100");
 *   - DIGITS with `default_cc` CC: "00REST" -> "+REST"; "0REST" (national with its trunk prefix)
 *     -> "+CC" REST; DIGITS starting with CC -> "+" DIGITS; otherwise (national) "+CC" DIGITS.
 * The result must have 7 to 15 digits, the first not 0. `default_cc` is "" or valid
 * (signer_country_code_valid, ASSERTed). Returns 0, -EINVAL (not a phone number) or -E2BIG.
 * Extensions are never passed through this: they are matched as typed. Thread-safe. */
int signer_phone_e164(char *out, size_t cap, const char *in, const char *default_cc);

/* signer_pin_policy_default fills *out with the defaults of README, PINs and lockout. */
void signer_pin_policy_default(struct signer_pin_policy *out);

/* signer_pin_policy_check applies the PIN policy to a new PIN for a user with extension `ext`
 * and phone `phone` (either may be ""): length, digits only, no repeated or consecutive digit run
 * (11111, 12345, 54321), not the extension or the phone's trailing digits. Returns 0 or -EPERM
 * with *out_reason set. */
int signer_pin_policy_check(const struct signer_pin_policy *policy, enum signer_reject *out_reason,
                            const char *pin, const char *ext, const char *phone);

/* signer_pin_key_load reads the 32-byte PIN key from `path`, creating it (0600, random) when
 * `create` and it does not exist. The key is kept in memory marked MADV_DONTDUMP. Returns 0,
 * -ENOENT, -EPERM (file readable by others), -EBADMSG (wrong size) or a negative errno. */
struct signer_pin_key;
int signer_pin_key_load(struct signer_pin_key **out, const char *path, bool create);

/* signer_pin_key_free wipes and frees the key. NULL is a no-op. */
void signer_pin_key_free(struct signer_pin_key *key);

/* signer_pin_verifier computes HMAC-SHA-256(key, uri || 0 || pin) into `out`. */
void signer_pin_verifier(const struct signer_pin_key *key, uint8_t out[STORE_VERIFIER_LEN],
                         const char *uri, const char *pin);

/* signer_pin_key_id writes the PIN key's id: the first STORE_PIN_KEY_ID_LEN bytes of
 * HMAC-SHA-256(key, "~certprov pin key id" || 0), as lower-case hex (NUL-terminated). The id
 * tells keys apart without revealing them (the fleet directory stores it: README, The fleet
 * directory); no user's verifier has that input, since no URI starts with '~'. */
void signer_pin_key_id(const struct signer_pin_key *key, char out[2 * STORE_PIN_KEY_ID_LEN + 1]);

/* signer_pin_matches compares the verifier of `pin` with `verifier` in constant time. */
bool signer_pin_matches(const struct signer_pin_key *key, const uint8_t *verifier, const char *uri,
                        const char *pin);

/* signer_lockout_state says whether a user may try a PIN now. */
enum signer_lockout_state {
    SIGNER_LOCKOUT_OPEN = 0,      /* may try */
    SIGNER_LOCKOUT_TEMPORARY = 1, /* locked until lockout->locked_until_s */
    SIGNER_LOCKOUT_ADMIN = 2,     /* locked until an administrator unlocks */
};

/* signer_lockout_check returns the lockout state of `l` at `now_s`. */
enum signer_lockout_state signer_lockout_check(const struct store_lockout *l, int64_t now_s);

/* signer_lockout_fail records one wrong PIN at `now_s` for a user whose PIN has `pin_len` digits
 * (README, PINs and lockout). An open user: a new window starts when the last one is older than
 * policy->window_s; reaching the window maximum (the _short one for 4-digit PINs) locks for
 * lock_s; reaching the total maximum locks until an administrator unlocks. A locked user (a
 * guess while locked still counts): only the total and last_failure_s change, the window and the
 * lock's end stay, and reaching the total maximum makes the lock an administrator's. Returns true
 * when this failure locked the user or made its temporary lock an administrator's. Pure. */
bool signer_lockout_fail(const struct signer_pin_policy *policy, struct store_lockout *l,
                         uint8_t pin_len, int64_t now_s);

/* signer_lockout_success records a right PIN: the failure window is reset (README, PINs and
 * lockout); the total count is kept (only an administrator's unlock or set-pin clears it). Returns
 * true when `l` changed (so the caller need not write an unchanged state). */
bool signer_lockout_success(struct store_lockout *l);

/* ---- chains: checked by signatures to trusted roots ---- */

#define SIGNER_CHAIN_MAX 8 /* certificates in a chain or a set of trusted roots */

/* signer_der is one DER certificate, borrowed. */
struct signer_der {
    const uint8_t *der;
    size_t der_len;
};

/* signer_cert_set is up to SIGNER_CHAIN_MAX certificates read from PEM, in file order. About
 * 33 KiB: callers keep it on the heap or in static storage. */
struct signer_cert_set {
    size_t num;
    struct signer_der certs[SIGNER_CHAIN_MAX]; /* point into der */
    uint8_t der[SIGNER_CHAIN_MAX][SIGNER_CERT_DER_MAX];
};

/* signer_cert_set_parse reads every CERTIFICATE block of pem[0..pem_len) into `out` (whose
 * certs then point into itself: do not copy it). Returns 0 (at least one certificate), -EBADMSG
 * (no certificate, or a damaged block), -E2BIG (more than SIGNER_CHAIN_MAX, or one larger than
 * SIGNER_CERT_DER_MAX), -ENOMEM; on failure out->num is 0. */
int signer_cert_set_parse(struct signer_cert_set *out, const char *pem, size_t pem_len);

/* signer_cert_set_read is signer_cert_set_parse of the file at `path`; also -ENOENT and the
 * errors of base_file_read (-E2BIG for a file larger than a set can be). */
int signer_cert_set_read(struct signer_cert_set *out, const char *path);

/* signer_cert_self_signed tells whether `d` parses and is signed by its own key under its own
 * name (a root). */
bool signer_cert_self_signed(const struct signer_der *d);

/* signer_chain_fault is the broken link that signer_chain_check found. */
enum signer_chain_fault {
    SIGNER_CHAIN_OK = 0,
    SIGNER_CHAIN_MALFORMED,        /* a certificate does not parse */
    SIGNER_CHAIN_EXPIRED,          /* now is after its notAfter */
    SIGNER_CHAIN_NOT_YET_VALID,    /* now is before its notBefore */
    SIGNER_CHAIN_ISSUER_NOT_FOUND, /* no certificate (chain or trusted roots) has its issuer name */
    SIGNER_CHAIN_BAD_SIGNATURE,    /* some have its issuer's name, none has the key that signed */
    SIGNER_CHAIN_UNTRUSTED_ROOT,   /* the path ends at a self-signed certificate not trusted */
    SIGNER_CHAIN_NOT_CA,           /* a certificate above the leaf lacks basicConstraints CA:TRUE */
    SIGNER_CHAIN_NO_KEY_CERT_SIGN, /* ... or keyUsage keyCertSign */
    SIGNER_CHAIN_PATHLEN,          /* ... or its pathLenConstraint forbids the CAs below it */
    SIGNER_CHAIN_TOO_LONG,         /* more than SIGNER_CHAIN_MAX certificates given */
};

/* signer_chain_result says which certificate broke the chain and why, or how it ended. */
struct signer_chain_result {
    enum signer_chain_fault fault;
    size_t index; /* the faulty certificate: chain[index], or anchors[index] if at_anchor */
    bool at_anchor;
    char subject[256]; /* its subject and issuer, RFC 2253 one-line */
    char issuer[256];
    int64_t not_before_s; /* its validity (EXPIRED, NOT_YET_VALID) */
    int64_t not_after_s;
    size_t num_path;                /* chain certificates on the path so far, leaf first */
    uint8_t path[SIGNER_CHAIN_MAX]; /* their indexes into chain; path[0] is 0 */
    size_t anchor;                  /* OK: the trusted root that ends the path; else SIZE_MAX */
    int64_t first_expiry_s;         /* OK: the earliest notAfter on the path, root included */
    char first_expiry_subject[256]; /* ... and whose it is */
};

/* signer_chain_check checks that chain[0] (the target) leads, by signatures, through CA
 * certificates of `chain` (any order; unused ones are ignored) to one of `anchors` (the trusted
 * roots: a root of the chain that is byte for byte an anchor, or a certificate signed by an
 * anchor's key under its name, ends the path). Every certificate of the path, anchor included,
 * must be valid at now_s; every one above the target must be a CA (CA:TRUE, keyCertSign, a
 * pathlen that allows the CAs below it; an anchor needs keyCertSign only if it has keyUsage).
 * With target_is_ca the target itself must be a CA too (an issuing CA, which will sign leaves).
 * Returns 0 (out->fault OK, out->anchor, out->path, out->first_expiry_s set), -EPERM (a broken
 * link: out says which certificate and why), -EBADMSG (MALFORMED), -E2BIG (TOO_LONG: num_chain
 * is 0 or over SIGNER_CHAIN_MAX, or num_anchors over it) or -ENOMEM. Pure (no clock, no files);
 * allocates while it runs. Thread-safe. */
int signer_chain_check(struct signer_chain_result *out, const struct signer_der *chain,
                       size_t num_chain, const struct signer_der *anchors, size_t num_anchors,
                       int64_t now_s, bool target_is_ca);

/* signer_chain_result_format writes one sentence about `r` into `out` (cap bytes) that names the
 * certificate (subject) and the broken link: "the issuer 'CN=X' of 'CN=Y' is found neither in
 * the chain nor among the trusted roots", "the certificate 'CN=Y' expired at <UTC>", ...
 * Returns 0, or -ENAMETOOLONG when it was cut to fit. */
int signer_chain_result_format(char *out, size_t cap, const struct signer_chain_result *r);

/* ---- the TLS server certificate (tls/server.crt, tls/server.key) ---- */

#define SIGNER_TLS_NAMES_MAX 17             /* [server] name and up to 16 alt_names */
#define SIGNER_TLS_RENEW_S (30 * 24 * 3600) /* reissued with less than this left ... */
/* ... or, for a certificate whose whole life is shorter than 90 days, with less than a third of
 * its life left */

/* signer_dns_name_ok tells whether `name` is a DNS host name (RFC 1123 §2.1: dot-separated
 * labels of 1..63 letters, digits and hyphens, neither starting nor ending with a hyphen; at most
 * 253 characters), as [server] name and alt_names must be. */
bool signer_dns_name_ok(const char *name);

enum signer_tls_state {
    SIGNER_TLS_OK = 0,
    SIGNER_TLS_MISSING,    /* tls/server.crt or tls/server.key does not exist */
    SIGNER_TLS_DAMAGED,    /* tls/server.crt or tls/server.key does not parse */
    SIGNER_TLS_NOT_ISSUED, /* the leaf is not signed by the current issuing CA's key */
    SIGNER_TLS_NAMES,      /* its dNSNames are not exactly the configured names */
    SIGNER_TLS_KEY,        /* it is not the certificate of tls/server.key */
    SIGNER_TLS_EXPIRING,   /* expired, not yet valid, or too little time left (above) */
    SIGNER_TLS_CHAIN,      /* the certificates after the leaf are not chain.pem less its root */
};

/* signer_tls_state_text says what is wrong in a few words ("expires in less than 30 days").
 * Static storage. */
const char *signer_tls_state_text(enum signer_tls_state state);

/* signer_tls_check looks at tls/server.crt and tls/server.key under `dir` against the loaded CA
 * `ca` and names[0..num_names) (name first; compared ignoring ASCII case and order), at now_s.
 * Writes nothing. Returns 0 with *out_state (the first thing found wrong, or OK) and, when not
 * NULL, *out_not_after_s (the leaf's notAfter, or 0 when unreadable) set, or a negative errno from
 * reading a file (-EACCES, -EIO, ...; -EPERM: tls/server.key is readable by others). */
int signer_tls_check(enum signer_tls_state *out_state, int64_t *out_not_after_s,
                     struct signer_ca *ca, const char *dir, const char *const *names,
                     size_t num_names, int64_t now_s);

/* signer_tls_issue makes a fresh P-256 key (written 0600 to a temporary file and renamed over
 * tls/server.key) and a TLS server certificate for names[0..num_names) signed through the CA's
 * key backend (the CA key is never read here: hsm_key_sign_batch), valid 397 days from now_s
 * (never past the issuing CA), and writes tls/server.crt (the leaf, then chain.pem less its
 * root) atomically. The key is renamed first: a crash in between leaves a certificate that
 * signer_tls_check finds not matching, and the next start reissues it. Returns 0, -EINVAL (a name
 * is not a DNS name, num_names is 0 or over SIGNER_TLS_NAMES_MAX, or the issuing CA has expired),
 * -E2BIG, -EIO, -EAGAIN (key backend) or a negative errno from the file system. */
int signer_tls_issue(struct signer_ca *ca, const char *dir, const char *const *names,
                     size_t num_names, int64_t now_s);

/* signer_cert_sans_format writes every subjectAltName of the certificate `der` as "DNS:a, DNS:b,
 * URI:..." into `out` (cap bytes). Returns 0, -EBADMSG (does not parse), -ENOENT (no SAN) or
 * -E2BIG (cut). */
int signer_cert_sans_format(char *out, size_t cap, const uint8_t *der, size_t der_len);

/* ---- the enterprise's own CA: request and import ---- */

#define SIGNER_SUBJECT_MAX 128 /* bytes of a CN or O given to signer_ca_request */

/* signer_ca_pending tells whether `dir` holds a pending request of signer_ca_request
 * (ca/issuing.csr, with ca/issuing.key unless the key is in a token; no ca/issuing.crt, no other
 * CA file but chain.pem) and nothing else of a CA. Returns 0 (pending), -ENOENT (no CA file at
 * all), -EEXIST (a CA, or files that are not only a request), or a negative errno. */
int signer_ca_pending(const char *dir);

/* signer_ca_request makes the issuing CA's key of `type` in its usual file (ca/issuing.key,
 * 0600, soft backend) and a PKCS#10 request for it with the subject O=`o` (may be NULL), CN=`cn`,
 * signed with that key; writes the request as PEM to ca/issuing.csr and into `out` (cap bytes,
 * NUL-terminated; 8192 is enough) with *out_len. Refuses (-EEXIST) when `dir` holds any CA file,
 * unless it is a pending request (signer_ca_pending), which is replaced. Returns 0, -EEXIST,
 * -EINVAL (empty cn, or a subject value longer than SIGNER_SUBJECT_MAX or not printable), -E2BIG,
 * -EIO or a negative errno; on failure the files it made are removed. */
int signer_ca_request(char *out, size_t cap, size_t *out_len, const char *dir,
                      enum hsm_key_type type, const char *cn, const char *o);

/* signer_ca_request_with_key is signer_ca_request with the issuing key given (`key`, borrowed:
 * a key pair generated in a PKCS#11 token, of any type signer_ca_request takes): no
 * ca/issuing.key is written; ca/issuing.csr alone is the pending request. Returns as
 * signer_ca_request. */
int signer_ca_request_with_key(char *out, size_t cap, size_t *out_len, const char *dir,
                               struct hsm_key *key, const char *cn, const char *o);

/* signer_ca_import installs the issuing certificate `issuing` (its first certificate) that the
 * enterprise's CA returned for the pending request in `dir`, with `chain` (the enterprise's
 * intermediates and its self-signed root, any order). Checks: the certificate's key is the
 * pending key; it is valid at now_s, a CA (CA:TRUE, a pathlen that allows 0 more), with
 * keyCertSign and a subject key identifier; it chains by signatures through `chain` to a
 * self-signed root of `chain` (signer_chain_check). Then writes ca/issuing.crt and chain.pem
 * (issuing, the intermediates in path order, the root), removes ca/issuing.csr and issues the TLS
 * server certificate for names[0..num_names) from it (signer_tls_issue). Returns 0; -ENOENT (no
 * pending request); -EEXIST (a CA is installed); -EPERM (refused: `why` names the certificate and
 * the broken link); or a negative errno (`why` says what failed). `why` (cap bytes) is written
 * on failure. */
int signer_ca_import(char *why, size_t why_cap, const char *dir,
                     const struct signer_cert_set *issuing, const struct signer_cert_set *chain,
                     const char *const *names, size_t num_names, int64_t now_s);

/* signer_ca_import_with_key is signer_ca_import for a request made by
 * signer_ca_request_with_key: the pending key is `key` (owned: freed on every path; NULL: the
 * soft file ca/issuing.key), which also signs the TLS server certificate. */
int signer_ca_import_with_key(char *why, size_t why_cap, const char *dir, struct hsm_key *key,
                              const struct signer_cert_set *issuing,
                              const struct signer_cert_set *chain, const char *const *names,
                              size_t num_names, int64_t now_s);

/* ---- certificate text (admin tools) ---- */

struct signer_cert_info {
    char subject[256]; /* one-line RFC 2253-style, e.g. "CN=alice@example.com" */
    char issuer[256];
    char serial[41]; /* upper-case hex without leading zeros */
    int64_t not_before_s;
    int64_t not_after_s;
    char key[32];    /* "P-256", "RSA-2048", "Ed25519", ... */
    char sha256[65]; /* upper-case hex fingerprint of the DER */
    char san[256];   /* first subjectAltName, e.g. "URI:sip:alice@example.com" or "" */
};

/* signer_asn1_time_unix sets *out to the Unix seconds of the ASN1_TIME `t` (BoringSSL's type,
 * declared here by its struct) and returns true; false, with *out = 0, when it is NULL or
 * unreadable. This BoringSSL has no ASN1_TIME_to_posix: the distance from the epoch, so that no
 * second reading of the clock can differ from the one the library took. */
struct asn1_string_st;
bool signer_asn1_time_unix(const struct asn1_string_st *t, int64_t *out);

/* signer_cert_info_der describes the certificate `der`. Returns 0 or -EBADMSG. */
int signer_cert_info_der(struct signer_cert_info *out, const uint8_t *der, size_t der_len);

/* signer_client_cert_identity reads who a client certificate (renewal over TLS) names: the URI of
 * its one subjectAltName of type URI ("sip:alice@example.com", as build_leaf writes it) into
 * `out_uri` (cap bytes), and checks that `now_s` lies within its validity. It does not check
 * who issued it: the TLS layer verified its chain to the issuing CA (ioring_request_client_cert).
 * Returns 0, -EBADMSG (not one DER certificate, no URI SAN or more than one, or it does not
 * fit), or -EKEYEXPIRED (expired, or not yet valid). Thread-safe. */
int signer_client_cert_identity(char *out_uri, size_t cap, const uint8_t *der, size_t der_len,
                                int64_t now_s);

/* signer_pem_read_cert reads the `index`th (from 0) CERTIFICATE block of the PEM file at `path`
 * as DER into `out` (cap bytes). Returns 0 with *out_len set, -ENOENT (no such file or block),
 * -EBADMSG, -E2BIG, or a negative errno. */
int signer_pem_read_cert(uint8_t *out, size_t cap, size_t *out_len, const char *path, size_t index);

/* signer_crypto_version names the BoringSSL this was built with ("API 17", and the Debian
 * source's version when the Makefile passed it). Static storage. */
const char *signer_crypto_version(void);

/* signer_sha256_hex writes the SHA-256 of data[0..len) as 64 lower-case hex digits and a NUL
 * into `out` (the audit log's hash chain). Thread-safe. */
void signer_sha256_hex(char out[65], const void *data, size_t len);

/* signer_pem_encode writes `der` as a PEM block with `label` ("CERTIFICATE") into `out` (cap
 * bytes, NUL-terminated; 2 * der_len + 128 is always enough). Returns 0 with *out_len (NUL
 * excluded) set, or -E2BIG. */
int signer_pem_encode(char *out, size_t cap, size_t *out_len, const char *label, const uint8_t *der,
                      size_t der_len);

/* ---- wire codecs: CertProv SOAP and EST ---- */

/* signer_code is an README, Errors error Code. Each has an HTTP status (signer_error_status) and a
 * stable X-Ms-diagnostics ID (signer_code_diag_id: [MS-OCAUTHWS] §3.2.4.1's 28000 and 28001 where
 * the spec defines the condition, else 28900 + the enum value): a new Code goes at the end. */
enum signer_code {
    SIGNER_CODE_BAD_REQUEST = 0,           /* 400 */
    SIGNER_CODE_BAD_CSR = 1,               /* 400 */
    SIGNER_CODE_CSR_SIGNATURE_INVALID = 2, /* 400 */
    SIGNER_CODE_AUTHENTICATION_FAILED = 3, /* 401 */
    SIGNER_CODE_PIN_LOCKED = 4,            /* 403 */
    SIGNER_CODE_IDENTITY_MISMATCH = 5,     /* 403 */
    SIGNER_CODE_TOO_LARGE = 6,             /* 413 */
    SIGNER_CODE_OVERLOADED = 7,            /* 503 */
    SIGNER_CODE_SIGNING_UNAVAILABLE = 8,   /* 503 */
    SIGNER_CODE_INTERNAL_ERROR = 9,        /* 500 */
    SIGNER_CODE_STORE_UNAVAILABLE = 10,    /* 503: the store cannot take a write */
    SIGNER_CODE_RATE_LIMITED = 11,         /* 429: the user's certificates per day */
    SIGNER_CODE_USER_DISABLED = 12,        /* 403: the spec's 28000 "User is not SIP enabled" */
    SIGNER_CODE_MAX_,
};

#define SIGNER_REASON_MAX 128 /* bytes of a parse failure reason, NUL included */

/* signer_code_name returns the Code (README, Errors) of `code` ("BadRequest", ...). Static storage.
 * An out-of-range value is a bug (ASSERT). */
const char *signer_code_name(enum signer_code code);

/* signer_code_parse finds the enum of a Code name (README, Errors) (exact, case-sensitive), e.g.
 * one from signer_reject_code. Returns 0 with *out set, or -EINVAL for an unknown name. */
int signer_code_parse(enum signer_code *out, const char *name);

/* signer_error_status returns the HTTP status of `code` per the README, Errors table (400, 401,
 * 403, 413, 429, 500 or 503). */
unsigned signer_error_status(enum signer_code code);

/* signer_code_diag_id returns the X-Ms-diagnostics errorId of `code` (README, Errors): 28000
 * UserDisabled, 28001 InternalError (the spec's), 28900 + the enum value for the others. */
unsigned signer_code_diag_id(enum signer_code code);

/* signer_code_fault returns the X-Ms-diagnostics `fault` of `code` ("wsse:FailedAuthentication"
 * for the refused sign-ins: AuthenticationFailed, PinLocked, UserDisabled), or NULL. */
const char *signer_code_fault(enum signer_code code);

/* signer_code_of_diag_id finds the Code of an X-Ms-diagnostics errorId. Returns 0 with *out set,
 * or -EINVAL for an ID that is none of ours. */
int signer_code_of_diag_id(enum signer_code *out, unsigned id);

/* signer_reject_to_code maps a refusal to its Code; the same as parsing signer_reject_code. */
enum signer_code signer_reject_to_code(enum signer_reject reason);

/* signer_reason_code returns the one Code of a reason token. */
enum signer_code signer_reason_code(enum signer_reason reason);

/* signer_code_reason returns the general reason of a Code, for a failure that knows only its Code
 * (a SOAP parse failure: BadRequest -> request_malformed, BadCsr -> csr_encoding, TooLarge ->
 * too_large, anything else -> the Code's own or internal_error). */
enum signer_reason signer_code_reason(enum signer_code code);

/* Limits of the fields of a GetAndPublishCert request, in bytes without the NUL. A longer field
 * is a BadRequest, never truncated. */
#define SIGNER_SOAP_DEVICE_ID_MAX 64
#define SIGNER_SOAP_ENTITY_MAX 256
#define SIGNER_SOAP_REQUEST_ID_MAX 128
#define SIGNER_SOAP_USERNAME_MAX 64
#define SIGNER_SOAP_PASSWORD_MAX 64
#define SIGNER_SOAP_ACTION_MAX 256
#define SIGNER_SOAP_CONTEXT_MAX 256  /* the RST's Context attribute (WS-Trust 1.3 §3.1) */
#define SIGNER_SOAP_DEPTH_MAX 32     /* element nesting */
#define SIGNER_SOAP_ELEMENTS_MAX 512 /* elements in one request */
#define SIGNER_SOAP_BODY_MAX 1048576 /* the largest max_len signer_soap_parse accepts */

/* signer_soap_request is a parsed [MS-OCAUTHWS] §3.1 GetAndPublishCert request. Every field is
 * a copy (NUL-terminated; "" when absent): nothing borrows from the input. `password` is a
 * secret: wipe it with signer_soap_request_cleanup as soon as the PIN has been checked. */
struct signer_soap_request {
    char device_id[SIGNER_SOAP_DEVICE_ID_MAX + 1];   /* "{GUID}" attribute, or "" */
    char entity[SIGNER_SOAP_ENTITY_MAX + 1];         /* "alice@example.com" or "sip:..." */
    char request_id[SIGNER_SOAP_REQUEST_ID_MAX + 1]; /* enrollment RequestID, or "" */
    char username[SIGNER_SOAP_USERNAME_MAX + 1];     /* UsernameToken: phone or extension */
    char password[SIGNER_SOAP_PASSWORD_MAX + 1];     /* UsernameToken: the PIN (secret) */
    char action[SIGNER_SOAP_ACTION_MAX + 1];         /* wsa:Action, or "" */
    char context[SIGNER_SOAP_CONTEXT_MAX + 1];       /* RequestSecurityToken/@Context, or "" */
    bool has_username_token;                         /* a UsernameToken was present */
    bool soap12; /* the envelope is SOAP 1.2 (http://www.w3.org/2003/05/soap-envelope) */
    uint32_t lifetime_hours; /* ceil((Expires - Created) / 1 h); 0 when no Lifetime */
    size_t csr_der_len;
    uint8_t csr_der[SIGNER_CSR_DER_MAX]; /* the BinarySecurityToken, decoded: PKCS#10 DER */
};

/* signer_soap_parse parses the body of a CertProv request (`body`, `body_len` bytes, no NUL
 * needed) with expat into `out`. Matching is by namespace URI and local name, never by prefix;
 * SOAP 1.1 and 1.2 envelopes are accepted; the WS-Trust namespace may end in '/' or not; unknown
 * elements are skipped. Any DOCTYPE or entity declaration stops the parse at once (no entity is
 * ever expanded). Nesting is bounded by SIGNER_SOAP_DEPTH_MAX, elements by
 * SIGNER_SOAP_ELEMENTS_MAX and every field by its limit above.
 *
 * Returns 0 on success (*out_code and `reason` untouched). Otherwise `out` is wiped (all zero),
 * `reason` (SIGNER_REASON_MAX bytes) says what was wrong in one sentence and:
 *   -E2BIG    body_len > max_len: *out_code = SIGNER_CODE_TOO_LARGE;
 *   -EBADMSG  anything else: *out_code = SIGNER_CODE_BAD_CSR when the CSR text is not base64 of
 *             a DER SEQUENCE or is too large, SIGNER_CODE_BAD_REQUEST otherwise (not XML, DTD,
 *             limits, missing or misplaced elements, bad ValueType, DeviceId or Lifetime).
 * The CSR is only decoded here: run signer_csr_parse and signer_csr_verify on out->csr_der.
 * `max_len` is the configured max_request_bytes (1..SIGNER_SOAP_BODY_MAX, ASSERTed). Expat's
 * allocations are bounded by the input, wiped and freed before return; about 40 KiB of stack.
 * -ENOMEM (*out_code = SIGNER_CODE_INTERNAL_ERROR) when expat cannot allocate. Thread-safe. */
int signer_soap_parse(struct signer_soap_request *out, enum signer_code *out_code, char *reason,
                      const uint8_t *body, size_t body_len, size_t max_len);

/* signer_soap_request_cleanup wipes the request (the password above all) with OPENSSL_cleanse:
 * every field and the csr_der_len bytes of the CSR (signer_soap_parse writes no more of csr_der,
 * and wipes it whole when it fails). Call it on every path once the request has been used. */
void signer_soap_request_cleanup(struct signer_soap_request *req);

/* signer_soap_response writes the success body (XML declaration, SOAP 1.1 envelope,
 * GetAndPublishCertResponse / RequestSecurityTokenResponse / RequestedSecurityToken /
 * BinarySecurityToken #X509v3 holding base64 of `cert_der`, then the RequestID when
 * `request_id` is neither NULL nor "") into `out` (cap bytes, NUL-terminated). Every echoed
 * string is XML-escaped. Returns 0 with *out_len (NUL excluded) set, or -E2BIG (out then holds
 * ""); 2 * cert_len + 6 * strlen(request_id) + 2048 bytes are always enough. Thread-safe. */
int signer_soap_response(char *out, size_t cap, size_t *out_len, const uint8_t *cert_der,
                         size_t cert_len, const char *request_id);

struct signer_est_cert;

/* signer_soap_reply is what a CertProv answer echoes of its request, and the CA chain it carries
 * beside the certificate. */
struct signer_soap_reply {
    const char *request_id; /* RequestID, or NULL / "" for none */
    const char *context; /* the RST's Context, echoed on the RSTR (WS-Trust 1.3 §3.2), or NULL */
    bool soap12;         /* answer in SOAP 1.2 (the request's envelope was 1.2) */
    /* The CA certificates (issuing first), 0 to SIGNER_EST_CERTS_MAX - 1 of them: with any, the
     * RSTR also holds, after RequestedSecurityToken, a wsse:BinarySecurityToken of ValueType
     * SIGNER_SOAP_PKCS7 (the [MS-WSTEP] RSTR's element) with a certs-only PKCS#7 of the issued
     * certificate and these, base64 in 64-character lines ([MS-OCAUTHWS] §1.3.2: PKCS#7 carries
     * "the certificate chain and the certificate"). Clients read the certificate at
     * RequestedSecurityToken/BinarySecurityToken, which stays as it was. */
    const struct signer_est_cert *chain;
    size_t num_chain;
};

#define SIGNER_SOAP_PKCS7 "http://schemas.microsoft.com/windows/pki/2009/01/enrollment#PKCS7"

/* signer_soap_reply_response is signer_soap_response with what `reply` says: the SOAP 1.2
 * envelope namespace when reply->soap12, `Context="..."` on the RequestSecurityTokenResponse when
 * reply->context is neither NULL nor "" (XML-escaped), the chain's PKCS#7, the RequestID. With
 * soap12 false, no context and no chain the bytes are signer_soap_response's. 6 *
 * strlen(context) + 2 * (the chain's DER + cert_len) + 2048 more bytes than signer_soap_response's
 * bound are always enough. Returns 0, -E2BIG, or -EBADMSG (with a chain: a certificate that is
 * not a DER SEQUENCE). */
int signer_soap_reply_response(char *out, size_t cap, size_t *out_len, const uint8_t *cert_der,
                               size_t cert_len, const struct signer_soap_reply *reply);

/* signer_soap_reply_error is signer_soap_error_response in the SOAP version of `reply` (an
 * ErrorInfo holds no RSTR: the context is not echoed). */
int signer_soap_reply_error(char *out, size_t cap, size_t *out_len, enum signer_code code,
                            const char *reason, const struct signer_soap_reply *reply);

/* signer_soap_fault writes a SOAP fault for the refusal `why` in SOAP 1.1 or, when `soap12`,
 * SOAP 1.2 form (SOAP 1.2 Part 1 §5.4: Code/Value, Subcode, Reason/Text, Detail), for the
 * services that answer with faults (the Web Ticket Service, [MS-OCAUTHWS] §3.2.4.1; CertProv
 * answers with ErrorInfo, §3.1.4.1): the code is the Code's fault ("wsse:FailedAuthentication",
 * signer_code_fault) as 1.1 faultcode or 1.2 Subcode under Sender, else Client/Sender for 4xx
 * and Server/Receiver for 5xx; the detail is an OCSDiagnosticsFault ([MS-OCAUTHWS] §2.2.4.1:
 * Ms-Diagnostics-Fault/ErrorId = signer_code_diag_id, Reason = `reason`; its namespace is
 * inferred: AuthWebServices). `reason` is XML-escaped. Returns 0 with *out_len or -E2BIG;
 * 6 * strlen(reason) + 1536 bytes always suffice. */
int signer_soap_fault(char *out, size_t cap, size_t *out_len, enum signer_reason why,
                      const char *reason, bool soap12);

/* signer_soap_content_type returns the Content-Type of an answer: "text/xml; charset=utf-8"
 * (SOAP 1.1) or "application/soap+xml; charset=utf-8" (SOAP 1.2, RFC 3902). Static storage. */
const char *signer_soap_content_type(bool soap12);

/* signer_soap_error_response writes the failure body: a GetAndPublishCertResponse holding
 * <ErrorInfo><Code>CODE</Code><Reason>reason</Reason></ErrorInfo> and the RequestID when
 * `request_id` is neither NULL nor "" (no SOAP fault), into `out` (cap bytes, NUL-terminated).
 * `reason` and `request_id` are XML-escaped. Returns 0 with *out_len set, or -E2BIG (out then
 * holds ""); 6 * (strlen(reason) + strlen(request_id)) + 1024 bytes are always enough. */
int signer_soap_error_response(char *out, size_t cap, size_t *out_len, enum signer_code code,
                               const char *reason, const char *request_id);

/* signer_diagnostics_format writes the X-Ms-diagnostics header value ([MS-OCAUTHWS] §3.2.4.1
 * `errorId;source="...";reason="..."[;fault="..."]`, then our extension parameter `token`)
 *   28901;source="certprov1.example.com";reason="The CSR ...";token="csr_weak_hash"
 *   28903;source="h";reason="...";fault="wsse:FailedAuthentication";token="pin_wrong_or_unknown"
 * into `out` (cap bytes, NUL-terminated): the ID of the Code of `why`, this appliance, the
 * human-readable `reason`, the Code's fault (signer_code_fault) when it has one and, last, the
 * stable reason token of `why` (README, Reasons). In `fqdn` and `reason`, '"' and '\' become '\'',
 * control characters (CR, LF,
 * ...) become ' ' and non-ASCII bytes become '?', so the value is always one printable-ASCII
 * header line. A reason that does not fit is cut (and ends in "..."); the fault and the token
 * are never cut. Returns 0 with *out_len set, or -E2BIG when not even the ID, source, fault and
 * token fit (out holds ""). */
int signer_diagnostics_format(char *out, size_t cap, size_t *out_len, enum signer_reason why,
                              const char *fqdn, const char *reason);

/* ---- service metadata (wsdl.c): GET <service>/mex, WS-MetadataExchange GetMetadata ---- */

/* The services' paths and ports (README, Endpoints; PROTOCOL-NOTES §2.1, §2.5). */
#define SIGNER_CERTPROV_PATH "/CertProv/CertProvisioningService.svc"
#define SIGNER_CERTPROV_PROOF_PORT "CertProvisioningServiceWebTicketProof_SHA1"
#define SIGNER_CERTPROV_PROOF_SUFFIX "/WebTicket_Proof"
#define SIGNER_CERTPROV_PIN_PORT "CertProvisioningServicePin" /* ours: PIN or client cert */
#define SIGNER_WEBTICKET_PATH "/WebTicket/WebTicketService.svc"
#define SIGNER_WEBTICKET_PIN_PORT "WebTicketServicePin"
#define SIGNER_WEBTICKET_PIN_SUFFIX "/Auth"
#define SIGNER_WEBTICKET_CERT_PORT "WebTicketServiceCert"
#define SIGNER_WEBTICKET_CERT_SUFFIX "/Cert"
#define SIGNER_BASE_URL_MAX 300 /* "https://host[:port]" */
#define SIGNER_WSDL_MAX 16384   /* bytes of one document: the tests check the real ones fit */

/* signer_base_url_valid tells whether `url` is a base URL the metadata can name: "http://" or
 * "https://", then a host (letters, digits, '-', '.', an IPv6 literal in brackets) and an
 * optional ":port", no path, no trailing '/', at most SIGNER_BASE_URL_MAX bytes. */
bool signer_base_url_valid(const char *url);

/* signer_wsdl_certprov writes the CertProv WSDL for clients that reach this appliance at
 * `base_url` (signer_base_url_valid, ASSERTed) into `out` (cap bytes, NUL-terminated): the port
 * CertProvisioningServiceWebTicketProof_SHA1 at base_url + SIGNER_CERTPROV_PATH +
 * "/WebTicket_Proof" with the policy <port>_policy whose ExactlyOne/All/EndorsingSupportingTokens/
 * Policy/IssuedToken/Issuer/Address is base_url + SIGNER_WEBTICKET_PATH, and the port
 * CertProvisioningServicePin at the plain service URL. Returns 0 with *out_len, or -E2BIG. */
int signer_wsdl_certprov(char *out, size_t cap, size_t *out_len, const char *base_url);

/* signer_wsdl_webticket writes the Web Ticket Service WSDL: IWebTicketService/IssueToken with the
 * ports WebTicketServicePin (UsernameToken) at base_url + SIGNER_WEBTICKET_PATH + "/Auth" and
 * WebTicketServiceCert (TLS client certificate) at ... + "/Cert". As signer_wsdl_certprov. */
int signer_wsdl_webticket(char *out, size_t cap, size_t *out_len, const char *base_url);

/* signer_mex_response wraps the WSDL document `wsdl` as the answer to a WS-MetadataExchange
 * GetMetadata (or WS-Transfer Get) request: a SOAP envelope (1.2 when `soap12`) whose Body holds
 * mex:Metadata / mex:MetadataSection (Dialect WSDL) / wsdl:definitions. Returns 0 or -E2BIG. */
int signer_mex_response(char *out, size_t cap, size_t *out_len, const char *wsdl, bool soap12);

/* EST (RFC 7030) answers are certs-only CMS: a degenerate SignedData (RFC 5652 §5, no signers)
 * whose certificates [0] holds 1..SIGNER_EST_CERTS_MAX certificates, in the order given. */
#define SIGNER_EST_CERTS_MAX 8

struct signer_est_cert {
    const uint8_t *der; /* one DER Certificate; borrowed for the call */
    size_t der_len;
};

/* signer_est_certs_only_der writes the certs-only ContentInfo as DER into `out` (cap bytes),
 * built with CBB. Each certificate must be exactly one DER SEQUENCE (not parsed further). Returns
 * 0 with *out_len set, -EBADMSG when a certificate is not a SEQUENCE, or -E2BIG (total + 64
 * bytes always suffice). num_certs in 1..SIGNER_EST_CERTS_MAX (ASSERTed). */
int signer_est_certs_only_der(uint8_t *out, size_t cap, size_t *out_len,
                              const struct signer_est_cert *certs, size_t num_certs);

/* signer_est_certs_only writes the same certs-only as EST's wire format, base64 of the DER in
 * 64-character lines each ending in "\n" (RFC 7030 §4.1.3), into `out` (cap bytes,
 * NUL-terminated). `out` is also the scratch for the DER: no other buffer is needed. Returns 0
 * with *out_len set, -EBADMSG, or -E2BIG; 65 * (total + 64) / 48 + 66 bytes suffice. */
int signer_est_certs_only(char *out, size_t cap, size_t *out_len,
                          const struct signer_est_cert *certs, size_t num_certs);

/* signer_est_error_body writes the text/plain EST error body "CODE: reason\n" into `out` (cap
 * bytes, NUL-terminated); control characters in `reason` become ' ', and a reason that does not
 * fit is cut. Returns 0 with *out_len set, or -E2BIG when not even "CODE: \n" fits. */
int signer_est_error_body(char *out, size_t cap, size_t *out_len, enum signer_code code,
                          const char *reason);

/* ---- Web tickets: [MS-OCAUTHWS] §3.2 (the Web Ticket Service), WS-Trust 1.3, SAML 1.1 ----
 *
 * signer/webticket.c parses a WS-Trust RequestSecurityToken (RST) and answers it with an RSTR
 * holding a SAML 1.1 assertion signed (XML-DSig, exclusive c14n) by the issuing CA's key through
 * the key backend (hsm/: soft or PKCS#11), the server entropy and Lifetime; the proof key is
 * P_SHA1(client entropy, server entropy) (WS-Trust 1.3 §4.4.5, CK/PSHA1). signer/wsse.c verifies
 * the wsse:Security header of a GetAndPublishCert that presents such a ticket: the assertion's
 * signature, validity and audience, the Timestamp's freshness and the HMAC-SHA1 proof signature
 * over it. XML that clients sign is canonicalized with libxml2 (exclusive c14n 1.0); libxml2
 * parses with XML_PARSE_NONET, no entity substitution, and a DOCTYPE is refused before parsing.
 *
 * The proof key is kept statelessly: it is sealed (AES-256-GCM) into the AssertionID with a key
 * derived from the PIN key (HMAC-SHA256 with a label of its own), so every appliance of a fleet
 * that shares pin.key (it must, for the PIN verifiers) recovers it; nothing is stored per ticket.
 */
#define SIGNER_WT_URL_MAX 512        /* bytes of AppliesTo / Audience */
#define SIGNER_WT_CONTEXT_MAX 128    /* bytes of the RST's Context attribute */
#define SIGNER_WT_ENTROPY_MIN 16     /* bytes of client entropy, at least */
#define SIGNER_WT_ENTROPY_MAX 64     /* and at most */
#define SIGNER_WT_KEY_MIN 16         /* proof key bytes (KeySize 128 bits) */
#define SIGNER_WT_KEY_MAX 64         /* KeySize 512 bits */
#define SIGNER_WT_KEY_DEFAULT 32     /* 256 bits when the RST names no KeySize */
#define SIGNER_WT_ID_MAX 160         /* bytes of an AssertionID */
#define SIGNER_WT_SKEW_S 300         /* Timestamp freshness and NotBefore tolerance: 5 minutes */
#define SIGNER_WT_RESPONSE_MAX 16384 /* bytes of an RSTR */

/* An RST, parsed ([MS-OCAUTHWS] §3.2.4.1; WS-Trust 1.3 §4.1; WS-Trust 2005/02). */
struct signer_wt_request {
    bool soap12;  /* answer in SOAP 1.2 */
    bool trust13; /* the 200512 namespace (RSTRC); else 2005/02 (a bare RSTR) */
    char context[SIGNER_WT_CONTEXT_MAX + 1]; /* "" = none; echoed on the RSTR */
    char applies_to[SIGNER_WT_URL_MAX + 1];
    char claim_uri[STORE_URI_MAX + 1]; /* "" = no user URI claim */
    uint8_t entropy[SIGNER_WT_ENTROPY_MAX];
    size_t entropy_len;
    uint32_t key_len;  /* proof key bytes */
    int64_t expires_s; /* the requested Lifetime/Expires, 0 = none */
};

/* signer_wt_request_parse parses the RST in body[0..len) (at most `max` bytes) into *out and, when
 * its SOAP header carries a WS-Security UsernameToken, copies Username and Password into `user`
 * (user_cap) and `pin` (pin_cap) and sets *out_token. Returns 0, -E2BIG (over `max`), -EBADMSG
 * (malformed; `reason`, SIGNER_REASON_MAX bytes, says what) or -EPROTO (well-formed but asks for
 * what this service does not issue: another TokenType, RequestType or KeyType; `reason` says).
 * The password is a secret: the caller wipes it. Thread-safe (after signer_xml_init). */
int signer_wt_request_parse(struct signer_wt_request *out, char *user, size_t user_cap, char *pin,
                            size_t pin_cap, bool *out_token, char *reason, const uint8_t *body,
                            size_t len, size_t max);

/* signer_xml_init initializes libxml2 once for every thread (call before threads start). */
void signer_xml_init(void);

/* signer_p_sha1 writes out_len bytes of P_SHA1(secret, seed) (RFC 2246 §5; WS-Trust 1.3 §4.4.5
 * CK/PSHA1: secret = the client's entropy, seed = the server's). out_len <= 1024. */
void signer_p_sha1(uint8_t *out, size_t out_len, const uint8_t *secret, size_t secret_len,
                   const uint8_t *seed, size_t seed_len);

/* The ticket issuer: the signing key and certificate, the seal key. */
struct signer_wt_issuer;

/* signer_wt_issuer_new makes the issuer of tickets signed by the dedicated Web ticket signer
 * under the store directory `dir` when there is a usable one (signer_wt_signer_issue; `dir` NULL:
 * none), else by the issuing CA's key of `ca` (the signing certificate travels in KeyInfo), and
 * sealed with a key derived from `pin_key`; `issuer_url` is the Issuer attribute (the Web Ticket
 * Service URL). A signer that is there but unusable (damaged, expired, another CA's) is logged
 * and not used. Returns 0, -ENOMEM, -EBADMSG (the chain has
 * no certificate) or -ENOTSUP (an Ed25519 key: XML-DSig verifiers do not take it). `ca` and
 * `pin_key` must outlive the issuer. */
int signer_wt_issuer_new(struct signer_wt_issuer **out, struct signer_ca *ca,
                         const struct signer_pin_key *pin_key, const char *issuer_url,
                         const char *dir);

/* signer_wt_issuer_dedicated tells whether the issuer signs with the dedicated Web ticket signer
 * (signer_wt_signer_issue; read by signer_wt_issuer_new from the store directory `dir` when it
 * is there, valid and the issuing CA's) rather than the issuing CA's key. */
bool signer_wt_issuer_dedicated(const struct signer_wt_issuer *iss);

/* signer_wt_issuer_fleet_cas replaces the fleet's issuing CAs the issuer trusts besides its own
 * (the directory's registry, issue 16): `num` certificates (DER; at most 64 are taken, one that
 * does not parse is skipped). Then CertProv accepts a ticket whose KeyInfo is one of them (signed
 * by that CA's key) or a Web ticket signer one of them issued. Any thread. */
void signer_wt_issuer_fleet_cas(struct signer_wt_issuer *iss, const uint8_t *const *ders,
                                const size_t *lens, size_t num);

/* signer_wt_signer_issue makes the dedicated Web ticket signer under the store directory `dir`:
 * a new P-256 key (<dir>/ca/webticket.key, 0600; a soft key whatever the CA's backend) and its
 * certificate (<dir>/ca/webticket.crt) from the issuing CA, valid `days` days (never past the
 * CA), keyUsage digitalSignature, no extendedKeyUsage; replacing the previous pair (written
 * beside it, then renamed). Sets *out_not_after_s (may be NULL). Returns 0, -EINVAL (days
 * outside 1..3650, a path too long, the CA expired), -EAGAIN or -EIO (signing), or a negative
 * errno of writing the files. */
int signer_wt_signer_issue(struct signer_ca *ca, const char *dir, uint32_t days, int64_t now_s,
                           int64_t *out_not_after_s);
void signer_wt_issuer_free(struct signer_wt_issuer *iss);

/* signer_wt_issue writes the whole SOAP response (RSTR) of the ticket for `uri` asked for by
 * `rq` into out (cap bytes, NUL-terminated): Lifetime [now_s, now_s + lifetime_s) (or shorter when
 * the RST asked), the signed assertion, the server entropy. `auth_cert` names the
 * AuthenticationMethod (X.509 or password). Returns 0 with *out_len, -E2BIG, -EAGAIN (the key
 * backend cannot sign now) or -EIO. Any thread; one signature. */
int signer_wt_issue(struct signer_wt_issuer *iss, char *out, size_t cap, size_t *out_len,
                    const struct signer_wt_request *rq, const char *uri, bool auth_cert,
                    int64_t now_s, uint32_t lifetime_s);

/* signer_wt_fault writes a SOAP fault (soap12: SOAP 1.2) for a refused RST: faultcode
 * wsse:FailedAuthentication (or s:Client / s:Server by `status`), the reason, and the
 * [MS-OCAUTHWS] §2.2.4.1 OCSDiagnosticsFaultType detail with `error_id`. Returns 0 or -E2BIG. */
int signer_wt_fault(char *out, size_t cap, size_t *out_len, bool soap12, unsigned status,
                    unsigned error_id, const char *reason);

/* signer_wt_audience_ours tells whether `url` is this appliance's CertProv URL: http(s), a host
 * among names[0..n) (ASCII case ignored, any port), the path /CertProv/CertProvisioningService.svc
 * with or without /WebTicket_Proof. */
bool signer_wt_audience_ours(const char *url, const char *const *names, size_t n);

/* What a verified ticket proved. */
struct signer_wt_proof {
    char uri[STORE_URI_MAX + 1]; /* the assertion's subject: the user */
    char assertion_id[SIGNER_WT_ID_MAX + 1];
    uint8_t replay_key[16]; /* the (assertion, Timestamp) pair */
    int64_t replay_until_s; /* the pair cannot pass the checks after this */
};

/* signer_wt_verify checks the ticket in the wsse:Security header of the SOAP request
 * body[0..len) (at most `max` bytes) at now_s: the assertion's XML-DSig (exclusive c14n, SHA-256,
 * signed by this issuer's key; KeyInfo must carry its certificate -- the hook for a fleet's other
 * appliances' certificates), NotBefore/NotOnOrAfter, the audience (signer_wt_audience_ours), the
 * wsu:Timestamp (Created within SIGNER_WT_SKEW_S, Expires not passed) and the proof signature
 * (HMAC-SHA1 with the proof key over the Timestamp, KeyIdentifier = the AssertionID). Returns 0
 * with *out filled; -ENOENT when the header holds no saml:Assertion (not a ticket: other
 * credentials may follow); -EPERM (refused) or -EBADMSG (malformed) with `reason`
 * (SIGNER_REASON_MAX bytes) saying which check failed. Thread-safe (after signer_xml_init). */
int signer_wt_verify(struct signer_wt_issuer *iss, struct signer_wt_proof *out, char *reason,
                     const uint8_t *body, size_t len, size_t max, int64_t now_s,
                     const char *const *names, size_t num_names);

/* signer_pin_key_derive writes HMAC-SHA256(pin key, label) into out: a key of its own for another
 * purpose (the web ticket seal), shared by a fleet with pin.key. */
void signer_pin_key_derive(const struct signer_pin_key *key, uint8_t out[32], const char *label);

#endif
