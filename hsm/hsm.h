/* hsm: key backends behind one small interface that signs a batch of to-be-signed messages.
 *
 * A `struct hsm_key` is one private key held by a backend: `soft` (a BoringSSL key loaded from a
 * 0600 file and kept in memory marked MADV_DONTDUMP) now, `pkcs11` (a PKCS#11 module, key chosen
 * by an RFC 7512 URI) later. The private key never leaves its backend: callers only get the
 * public key (SubjectPublicKeyInfo DER) and signatures.
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

#endif
