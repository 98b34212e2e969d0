/* hsm: key backends behind one small interface that signs a batch of to-be-signed messages.
 *
 * A `struct hsm_key` is one private key held by a backend: `soft` (a BoringSSL key loaded from a
 * 0600 file and kept in memory marked MADV_DONTDUMP) or `pkcs11` (a key in a token of a PKCS#11
 * module, chosen by an RFC 7512 URI; see "PKCS#11" below). The private key never leaves its
 * backend: callers only get the public key (SubjectPublicKeyInfo DER) and signatures.
 *
 * Signature algorithms are fixed by the key type, so callers can build the X.509
 * AlgorithmIdentifier from hsm_key_get_type() alone:
 *   P-256   ecdsa-with-SHA256        (signature: DER ECDSA-Sig-Value)
 *   P-384   ecdsa-with-SHA384        (signature: DER ECDSA-Sig-Value)
 *   RSA-*   sha256WithRSAEncryption  (PKCS #1 v1.5)
 *   Ed25519 Ed25519 (PureEdDSA, RFC 8410)
 * The backend hashes the message itself (Ed25519 signs the message, not a digest), so the same
 * call works for every key type and for PKCS#11 mechanisms that hash or not. */
#ifndef CERTPROV_HSM_H
#define CERTPROV_HSM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum hsm_key_type {
    HSM_KEY_NONE = 0,
    HSM_KEY_P256 = 1,
    HSM_KEY_P384 = 2,
    HSM_KEY_RSA2048 = 3,
    HSM_KEY_RSA3072 = 4,
    HSM_KEY_ED25519 = 5,
};

/* Largest signature any key type produces (RSA-3072: 384 bytes). */
#define HSM_SIG_MAX 512
/* Largest SubjectPublicKeyInfo DER of any key type (RSA-3072: 422 bytes). */
#define HSM_SPKI_MAX 600
/* Most items one hsm_key_sign_batch call accepts. */
#define HSM_BATCH_MAX 256

struct hsm_key;

/* hsm_sign_item is one signature request in a batch. The caller fills `tbs`/`tbs_len` (borrowed
 * for the duration of the call) and points `sig` at HSM_SIG_MAX bytes it owns; the backend writes
 * `sig_len` and `rc` (0, -EIO if the backend failed to sign this item). */
struct hsm_sign_item {
    const uint8_t *tbs;
    size_t tbs_len;
    uint8_t *sig;
    size_t sig_len;
    int rc;
};

/* hsm_key_type_parse maps "p256", "p384", "rsa2048", "rsa3072", "ed25519" to *out.
 * Returns 0 or -EINVAL (then *out is untouched). */
int hsm_key_type_parse(enum hsm_key_type *out, const char *name);

/* hsm_key_type_name returns the name hsm_key_type_parse accepts, or "none". Static storage. */
const char *hsm_key_type_name(enum hsm_key_type type);

/* hsm_soft_generate creates a new key of `type`, writes it as PKCS#8 DER to `path` with mode
 * 0600 (refusing to overwrite: -EEXIST), fsyncs it, and returns the loaded key in *out (owned;
 * free with hsm_key_free). Returns 0, -EEXIST, -EINVAL (bad type), -EIO or a negative errno from
 * the file system. Thread-safe. */
int hsm_soft_generate(struct hsm_key **out, const char *path, enum hsm_key_type type);

/* hsm_soft_open loads the key at `path` (PKCS#8 DER written by hsm_soft_generate). Refuses a file
 * readable or writable by group or others (-EPERM) and a key of an unsupported type (-EBADMSG).
 * Returns 0 (key owned by the caller in *out), -ENOENT, -EPERM, -EBADMSG or a negative errno. */
int hsm_soft_open(struct hsm_key **out, const char *path);

/* hsm_key_free wipes and frees the key. NULL is a no-op. */
void hsm_key_free(struct hsm_key *key);

/* hsm_key_get_type returns the key's type (never HSM_KEY_NONE). */
enum hsm_key_type hsm_key_get_type(const struct hsm_key *key);

/* hsm_key_get_label returns a printable label for logs ("soft:/path" or a PKCS#11 URI without
 * PIN). Borrowed: lives as long as the key. */
const char *hsm_key_get_label(const struct hsm_key *key);

/* hsm_key_public_der writes the SubjectPublicKeyInfo DER of the key into `out` (cap bytes;
 * HSM_SPKI_MAX is always enough). Returns 0 with *out_len set, or -E2BIG. Thread-safe. */
int hsm_key_public_der(const struct hsm_key *key, uint8_t *out, size_t cap, size_t *out_len);

/* hsm_key_sign_batch signs every item of `items[0..num_items)` (num_items <= HSM_BATCH_MAX) and
 * sets each item's `rc` and `sig_len`. Returns 0 when every item was signed, -EIO when at least
 * one item failed (see the items' rc), -EAGAIN when the backend is unavailable (HSM gone; nothing
 * signed). Thread-safe: a soft key may be used by several threads at once. */
int hsm_key_sign_batch(struct hsm_key *key, struct hsm_sign_item *items, size_t num_items);

/* ---- PKCS#11 (hsm/pkcs11.c, hsm/uri.c) ----
 *
 * A `pkcs11` key lives in a token of a PKCS#11 module loaded in-process with dlopen (the static,
 * hidden BoringSSL build keeps the module's own libcrypto apart). C_Initialize is called with OS
 * locking; the key owns a pool of `sessions` sessions, each used by one caller at a time (a
 * caller waits at most sign_timeout_ms for one). The token is logged in once, the private key is
 * found once by label and/or id and its handle cached; the public key is read from the token.
 * Each session has a worker thread (cp-p11-N) that makes the sign calls: a caller hands it the
 * batch (the messages copied) and waits at most sign_timeout_ms; a caller that gives up leaves
 * the worker in the module, the key goes down, and the worker frees its session when the call
 * returns. ECDSA signs a digest computed here with CKM_ECDSA (the raw r||s becomes a DER
 * ECDSA-Sig-Value), RSA uses CKM_SHA256_RSA_PKCS, Ed25519 CKM_EDDSA (refused when the token lacks
 * it).
 *
 * Faults (a closed or invalid session, a logged-out user, a removed token, a device error, a sign
 * call slower than sign_timeout_ms) make the key DOWN: hsm_key_sign_batch returns -EAGAIN at once
 * while down, and a later call (or hsm_key_probe) reconnects -- find the token, open sessions,
 * log in, find the key, check that its public key did not change -- with a backoff of 100 ms
 * doubling to HSM_P11_BACKOFF_MAX_MS. Reconnecting runs only in hsm_key_probe and at open, and
 * holds no lock a signing caller waits for, so no caller of hsm_key_sign_batch waits longer than
 * sign_timeout_ms, whatever the module does. A module call that never returns keeps its worker
 * (and session) until it does. Messages longer than HSM_P11_TBS_MAX fail (-EIO). */

#define HSM_P11_TOKEN_MAX 32        /* CK_TOKEN_INFO label: 32 bytes, blank padded */
#define HSM_P11_OBJECT_MAX 128      /* longest object label accepted */
#define HSM_P11_ID_MAX 64           /* longest CKA_ID accepted, bytes */
#define HSM_P11_PIN_MAX 64          /* longest token PIN accepted */
#define HSM_P11_PATH_MAX 1024       /* longest pin-source file path */
#define HSM_P11_URI_MAX 2048        /* longest pkcs11: URI accepted */
#define HSM_P11_SESSIONS_MAX 64     /* [ca] sessions, at most */
#define HSM_P11_BACKOFF_MAX_MS 5000 /* longest wait between two reconnects */
#define HSM_P11_TBS_MAX 4096        /* longest message a pkcs11 key signs (a TBSCertificate) */

/* hsm_pkcs11_uri is a parsed RFC 7512 URI: the attributes this backend uses. Path attributes
 * token, object, id, slot-id (and type, which must be private when given); query attributes
 * pin-source (a file:  URI or an absolute path) and pin-value. A flag says whether each was
 * present. pin_value is a secret: wipe the struct with hsm_pkcs11_uri_wipe. */
struct hsm_pkcs11_uri {
    bool has_token, has_object, has_id, has_slot_id, has_pin_source, has_pin_value;
    char token[HSM_P11_TOKEN_MAX + 1];
    char object[HSM_P11_OBJECT_MAX + 1];
    uint8_t id[HSM_P11_ID_MAX];
    size_t id_len;
    uint64_t slot_id;
    char pin_source[HSM_P11_PATH_MAX + 1];
    char pin_value[HSM_P11_PIN_MAX + 1];
};

/* hsm_pkcs11_uri_parse parses `len` bytes of `text` (no NUL needed) as a pkcs11: URI into *out:
 * scheme "pkcs11:" (any case), path attributes separated by ';', an optional '?' and query
 * attributes separated by '&', values percent-encoded (RFC 3986 §2.1). Refuses (-EINVAL, with
 * *out_why a static sentence) a longer text than HSM_P11_URI_MAX, a repeated attribute, an
 * unknown standard attribute (vendor "x-" ones are ignored), a bad %-escape, a NUL in a textual
 * value, a value over its bound, a slot-id that is not a decimal number, pin-source and pin-value
 * together, and a URI that names neither object nor id. Returns 0 or -EINVAL; *out is written
 * in both cases (wipe it). Thread-safe, no allocation. */
int hsm_pkcs11_uri_parse(struct hsm_pkcs11_uri *out, const char **out_why, const char *text,
                         size_t len);

/* hsm_pkcs11_uri_format writes the URI of `uri` WITHOUT its pin-value into `out` (cap bytes,
 * NUL-terminated; attributes in a fixed order, values percent-encoded). Returns 0 or -E2BIG
 * (out holds an empty string). */
int hsm_pkcs11_uri_format(char *out, size_t cap, const struct hsm_pkcs11_uri *uri);

/* hsm_pkcs11_uri_wipe wipes *uri (its PIN) with OPENSSL_cleanse. */
void hsm_pkcs11_uri_wipe(struct hsm_pkcs11_uri *uri);

struct hsm_pkcs11_options {
    const char *module;       /* path of the PKCS#11 module (borrowed for the call) */
    const char *uri;          /* the key's pkcs11: URI, may hold the PIN (borrowed) */
    uint32_t sessions;        /* 1..HSM_P11_SESSIONS_MAX */
    uint32_t sign_timeout_ms; /* a caller waits at most this for a session, a batch at most this */
};

/* hsm_pkcs11_open loads the module, logs in, finds the private key of opt->uri and reads its
 * public key. On failure `err` (cap bytes) gets one sentence for the operator (never the PIN):
 * the module cannot be loaded, no token has the label, the PIN is wrong, no key matches, the
 * key type is not supported, the token lacks the mechanism. Returns 0 (*out owned), -EINVAL (bad
 * URI or options), -ENOENT (module, token or key missing), -EPERM (PIN refused), -EBADMSG
 * (unsupported key or mechanism) or -EIO. Thread-safe; the key is used by many threads. */
int hsm_pkcs11_open(struct hsm_key **out, char *err, size_t cap,
                    const struct hsm_pkcs11_options *opt);

/* hsm_pkcs11_generate creates a key pair of `type` in the token of opt->uri with the URI's label
 * and id (private key CKA_TOKEN, CKA_PRIVATE, CKA_SENSITIVE, not CKA_EXTRACTABLE; Ed25519 only
 * with CKM_EC_EDWARDS_KEY_PAIR_GEN), then opens it as hsm_pkcs11_open does. Refuses (-EEXIST) a
 * URI that already names a private key. Returns as hsm_pkcs11_open, or -EEXIST. */
int hsm_pkcs11_generate(struct hsm_key **out, char *err, size_t cap,
                        const struct hsm_pkcs11_options *opt, enum hsm_key_type type);

/* hsm_key_get_sessions returns how many signing sessions the key has: 0 for a key that signs on
 * the caller's thread without blocking on a device (soft), >0 for a PKCS#11 key, whose callers
 * should be threads of their own (one per session). */
uint32_t hsm_key_get_sessions(const struct hsm_key *key);

/* hsm_key_status returns 0 when the key can sign, -EAGAIN when it is down; then *out_reason (if
 * not NULL) is a static word for /readyz and logs ("CKR_DEVICE_REMOVED", "sign_timeout", ...).
 * Lock-free: any thread, the rings included. */
int hsm_key_status(const struct hsm_key *key, const char **out_reason);

/* hsm_key_probe tries to reconnect a key that is down, when its backoff allows; for a key that
 * is up and signs through a session copy of the token's key, it checks (at most every 250 ms)
 * that the token's object still answers, and takes the key down when not. A no-op for a soft
 * key. Call it every ~100 ms. May block in the module: never call it on a ring. */
void hsm_key_probe(struct hsm_key *key);

#endif
