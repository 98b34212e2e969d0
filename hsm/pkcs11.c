/* pkcs11.c: the `pkcs11` key backend (hsm.h, "PKCS#11"). A module loaded with dlopen, one token,
 * one private key, a fixed pool of sessions.
 *
 * Locking: `mu` guards the connection (slot, key handle, generation, down state, backoff) and the
 * session table; PKCS#11 calls that open, log in or find run under it (one reconnect at a time),
 * signing runs outside it on a session its caller holds alone. `down` and `reason` are atomics
 * as well, so that hsm_key_status never waits (a ring reads it for /readyz).
 *
 * Generations: every fault bumps `gen`; a session opened under an older generation is closed and
 * opened again before its next use, so a fault seen by one caller retires every session without
 * pulling one out from under another caller (C_CloseAllSessions would). */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/bytestring.h>
#include <openssl/ec.h>
#include <openssl/ec_key.h>
#include <openssl/ecdsa.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/mem.h>
#include <openssl/nid.h>
#include <openssl/rsa.h>
#include <openssl/sha.h>

#include <p11-kit/pkcs11.h>

#include "base/base.h"
#include "hsm/internal.h"

#define P11_SLOTS_MAX 256   /* slots looked at when finding the token */
#define P11_RAW_SIG_MAX 512 /* raw signature from the token (r||s, RSA, Ed25519) */
#define P11_ATTR_MAX 1024   /* largest public attribute read (modulus, EC point) */
#define P11_BACKOFF_MIN_MS 100
#define P11_RSA_E 65537
#define P11_LIVE_MS 250       /* p11_probe reads the token's object this often (live_check) */
#define P11_STOP_WAIT_MS 2000 /* a worker inside a module call gets this long at free */

/* A job: one batch a caller hands to a session's worker thread. The TBS bytes are copied in, so
 * that a caller that gave up (sign_timeout_ms) may reuse its buffers while the worker is still
 * inside the module; the worker's results are copied out only by a caller that still waits. */
struct p11_job {
    size_t num;
    size_t off[HSM_BATCH_MAX];
    size_t len[HSM_BATCH_MAX];
    size_t sig_len[HSM_BATCH_MAX];
    int rc[HSM_BATCH_MAX];
    const char *fault; /* a session or device fault the worker met, else NULL */
    uint8_t tbs[HSM_BATCH_MAX * HSM_P11_TBS_MAX];
    uint8_t sig[HSM_BATCH_MAX][HSM_SIG_MAX];
};

enum p11_state { P11_IDLE = 0, P11_JOB, P11_DONE };

struct p11_session {
    /* under mu */
    CK_SESSION_HANDLE h;
    CK_OBJECT_HANDLE priv; /* the key's handle when the session was taken (k->priv may change) */
    bool open;
    bool busy;    /* taken by a caller, or its worker still inside the module */
    uint64_t gen; /* the generation it was opened under */
    enum p11_state state;
    bool abandoned; /* the caller gave up: the worker frees the session when it returns */
    bool quit;
    bool exited;         /* the worker left its loop: a join returns at once */
    pthread_cond_t cond; /* CLOCK_MONOTONIC: the worker waits for a job, the caller for DONE */
    pthread_t thread;
    bool started;
    struct p11_job *job; /* calloc'd at open (not secret) */
};

struct p11_key {
    struct hsm_key base; /* first: hsm.c casts between the two */
    size_t map_len;
    void *dl;
    CK_FUNCTION_LIST_PTR f;
    bool finalize; /* we initialized the module: C_Finalize on free */
    struct hsm_pkcs11_uri uri;
    char pin[HSM_P11_PIN_MAX + 1];
    uint32_t timeout_ms;
    CK_MECHANISM_TYPE mech;
    size_t ec_half; /* bytes of r (and s) for ECDSA */
    size_t spki_len;
    uint8_t spki[HSM_SPKI_MAX];
    /* cmu: one connect at a time; held across its module calls, never by a caller that holds a
     * batch (only hsm_key_probe and the open take it), so a hung login blocks no batch. */
    pthread_mutex_t cmu;
    pthread_mutex_t mu;  /* held briefly, never across a module call */
    pthread_cond_t cond; /* CLOCK_MONOTONIC: a session became free */
    /* under mu */
    CK_SLOT_ID slot;
    CK_OBJECT_HANDLE priv;  /* what the sessions sign with: the session copy, or the token's */
    CK_OBJECT_HANDLE token; /* the token's object (priv when no copy was made) */
    uint64_t live_at_ns;    /* when p11_probe last saw the token's object (cmu) */
    uint64_t gen;
    bool connected;
    uint64_t retry_at_ns;
    uint32_t backoff_ms;
    /* The session connect logged in with, kept open while connected: closing a token's last
     * session logs it out and (SoftHSM2) invalidates the key's handle. */
    CK_SESSION_HANDLE anchor;
    bool anchor_open;
    struct p11_session sess[HSM_P11_SESSIONS_MAX];
    /* lock-free for hsm_key_status */
    atomic_bool down;
    _Atomic(const char *) reason;
};

static const struct hsm_key_ops p11_ops;

static struct p11_key *p11_of(const struct hsm_key *key)
{
    ASSERT(key->ops == &p11_ops);
    return (struct p11_key *)(uintptr_t)key;
}

/* ckr_name is the CKR_ name of the faults we tell apart, else "CKR_other". Static. */
static const char *ckr_name(CK_RV rv)
{
    switch (rv) {
    case CKR_OK:
        return "CKR_OK";
    case CKR_SESSION_HANDLE_INVALID:
        return "CKR_SESSION_HANDLE_INVALID";
    case CKR_SESSION_CLOSED:
        return "CKR_SESSION_CLOSED";
    case CKR_USER_NOT_LOGGED_IN:
        return "CKR_USER_NOT_LOGGED_IN";
    case CKR_DEVICE_REMOVED:
        return "CKR_DEVICE_REMOVED";
    case CKR_TOKEN_NOT_PRESENT:
        return "CKR_TOKEN_NOT_PRESENT";
    case CKR_TOKEN_NOT_RECOGNIZED:
        return "CKR_TOKEN_NOT_RECOGNIZED";
    case CKR_DEVICE_ERROR:
        return "CKR_DEVICE_ERROR";
    case CKR_DEVICE_MEMORY:
        return "CKR_DEVICE_MEMORY";
    case CKR_GENERAL_ERROR:
        return "CKR_GENERAL_ERROR";
    case CKR_KEY_HANDLE_INVALID:
        return "CKR_KEY_HANDLE_INVALID";
    case CKR_OBJECT_HANDLE_INVALID:
        return "CKR_OBJECT_HANDLE_INVALID";
    case CKR_SLOT_ID_INVALID:
        return "CKR_SLOT_ID_INVALID";
    case CKR_PIN_INCORRECT:
        return "CKR_PIN_INCORRECT";
    case CKR_PIN_LOCKED:
        return "CKR_PIN_LOCKED";
    case CKR_MECHANISM_INVALID:
        return "CKR_MECHANISM_INVALID";
    case CKR_FUNCTION_FAILED:
        return "CKR_FUNCTION_FAILED";
    case CKR_CRYPTOKI_NOT_INITIALIZED:
        return "CKR_CRYPTOKI_NOT_INITIALIZED";
    default:
        return "CKR_other";
    }
}

/* errf writes one sentence for the operator into err. */
static int errf(char *err, size_t cap, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int errf(char *err, size_t cap, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    (void)vsnprintf(err, cap, fmt, ap);
    va_end(ap);
    return rc;
}

/* ---- connecting: slot, session, login, key ---- */

/* label_eq compares a blank-padded CK_UTF8CHAR[32] with a NUL-terminated label. */
static bool label_eq(const CK_UTF8CHAR *padded, const char *label)
{
    size_t n = strlen(label);
    if (n > 32 || memcmp(padded, label, n) != 0) {
        return false;
    }
    for (size_t i = n; i < 32; i++) {
        if (padded[i] != ' ') {
            return false;
        }
    }
    return true;
}

/* find_slot finds the slot whose token matches the URI (token label, slot-id). */
static CK_RV find_slot(struct p11_key *k, CK_SLOT_ID *out)
{
    CK_SLOT_ID slots[P11_SLOTS_MAX];
    CK_ULONG n = P11_SLOTS_MAX;
    CK_RV rv = k->f->C_GetSlotList(CK_TRUE, slots, &n);
    if (rv == CKR_BUFFER_TOO_SMALL) {
        n = P11_SLOTS_MAX; /* bounded: the first P11_SLOTS_MAX slots */
        rv = CKR_OK;
    }
    if (rv != CKR_OK) {
        return rv;
    }
    for (CK_ULONG i = 0; i < n && i < P11_SLOTS_MAX; i++) {
        if (k->uri.has_slot_id && slots[i] != k->uri.slot_id) {
            continue;
        }
        CK_TOKEN_INFO ti;
        if (k->f->C_GetTokenInfo(slots[i], &ti) != CKR_OK) {
            continue;
        }
        if (k->uri.has_token && !label_eq(ti.label, k->uri.token)) {
            continue;
        }
        if (!(ti.flags & CKF_TOKEN_INITIALIZED)) {
            continue;
        }
        *out = slots[i];
        return CKR_OK;
    }
    return CKR_TOKEN_NOT_PRESENT;
}

/* login logs the session's token in (once per token: already logged in is fine). */
static CK_RV login(struct p11_key *k, CK_SESSION_HANDLE h)
{
    CK_RV rv = k->f->C_Login(h, CKU_USER, (CK_UTF8CHAR_PTR)k->pin, strlen(k->pin));
    return rv == CKR_USER_ALREADY_LOGGED_IN ? CKR_OK : rv;
}

/* find_objects finds at most `cap` token objects of `cls` named by the URI's label and id. */
static CK_RV find_objects(struct p11_key *k, CK_SESSION_HANDLE h, CK_OBJECT_CLASS cls,
                          CK_OBJECT_HANDLE *out, CK_ULONG cap, CK_ULONG *out_n)
{
    CK_ATTRIBUTE tmpl[4];
    CK_ULONG t = 0;
    CK_BBOOL yes = CK_TRUE; /* the token's objects: never our session copy (session_copy) */
    tmpl[t++] = (CK_ATTRIBUTE){CKA_CLASS, &cls, sizeof(cls)};
    tmpl[t++] = (CK_ATTRIBUTE){CKA_TOKEN, &yes, sizeof(yes)};
    if (k->uri.has_object) {
        tmpl[t++] = (CK_ATTRIBUTE){CKA_LABEL, k->uri.object, strlen(k->uri.object)};
    }
    if (k->uri.has_id) {
        tmpl[t++] = (CK_ATTRIBUTE){CKA_ID, k->uri.id, k->uri.id_len};
    }
    CK_RV rv = k->f->C_FindObjectsInit(h, tmpl, t);
    if (rv != CKR_OK) {
        return rv;
    }
    rv = k->f->C_FindObjects(h, out, cap, out_n);
    CK_RV fin = k->f->C_FindObjectsFinal(h);
    return rv != CKR_OK ? rv : fin;
}

/* get_attr reads one attribute of at most cap bytes. */
static CK_RV get_attr(struct p11_key *k, CK_SESSION_HANDLE h, CK_OBJECT_HANDLE o,
                      CK_ATTRIBUTE_TYPE type, void *buf, size_t cap, size_t *out_len)
{
    CK_ATTRIBUTE a = {type, buf, cap};
    CK_RV rv = k->f->C_GetAttributeValue(h, o, &a, 1);
    if (rv == CKR_OK && (a.ulValueLen == CK_UNAVAILABLE_INFORMATION || a.ulValueLen > cap)) {
        rv = CKR_ATTRIBUTE_TYPE_INVALID;
    }
    if (rv == CKR_OK) {
        *out_len = a.ulValueLen;
    }
    return rv;
}

static const uint8_t oid_p256[] = {0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07};
static const uint8_t oid_p384[] = {0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22};
static const uint8_t oid_ed25519[] = {0x06, 0x03, 0x2b, 0x65, 0x70};
static const uint8_t name_ed25519[] = {0x13, 0x0c, 'e', 'd', 'w', 'a', 'r',
                                       'd',  's',  '2', '5', '5', '1', '9'};

/* point_of unwraps CKA_EC_POINT: a DER OCTET STRING (PKCS#11 2.40), or the raw point. */
static void point_of(CBS *out, const uint8_t *p, size_t len)
{
    CBS cbs, inner;
    CBS_init(&cbs, p, len);
    if (CBS_get_asn1(&cbs, &inner, CBS_ASN1_OCTETSTRING) && CBS_len(&cbs) == 0) {
        *out = inner;
        return;
    }
    CBS_init(out, p, len);
}

/* pkey_ec builds the public key of an EC or EdDSA key from its params and point. */
static EVP_PKEY *pkey_ec(enum hsm_key_type *type, const uint8_t *params, size_t params_len,
                         const uint8_t *point, size_t point_len)
{
    CBS pt;
    point_of(&pt, point, point_len);
    if ((params_len == sizeof(oid_ed25519) && memcmp(params, oid_ed25519, params_len) == 0) ||
        (params_len == sizeof(name_ed25519) && memcmp(params, name_ed25519, params_len) == 0)) {
        *type = HSM_KEY_ED25519;
        return EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, CBS_data(&pt), CBS_len(&pt));
    }
    int nid = NID_undef;
    if (params_len == sizeof(oid_p256) && memcmp(params, oid_p256, params_len) == 0) {
        nid = NID_X9_62_prime256v1;
        *type = HSM_KEY_P256;
    } else if (params_len == sizeof(oid_p384) && memcmp(params, oid_p384, params_len) == 0) {
        nid = NID_secp384r1;
        *type = HSM_KEY_P384;
    } else {
        return NULL;
    }
    EC_KEY *ec = EC_KEY_new_by_curve_name(nid);
    EC_POINT *p = ec != NULL ? EC_POINT_new(EC_KEY_get0_group(ec)) : NULL;
    EVP_PKEY *pkey = NULL;
    if (p != NULL &&
        EC_POINT_oct2point(EC_KEY_get0_group(ec), p, CBS_data(&pt), CBS_len(&pt), NULL) &&
        EC_KEY_set_public_key(ec, p)) {
        pkey = EVP_PKEY_new();
        if (pkey != NULL && !EVP_PKEY_assign_EC_KEY(pkey, ec)) {
            EVP_PKEY_free(pkey);
            pkey = NULL;
        } else if (pkey != NULL) {
            ec = NULL; /* owned by pkey */
        }
    }
    EC_POINT_free(p);
    EC_KEY_free(ec);
    return pkey;
}

static EVP_PKEY *pkey_rsa(enum hsm_key_type *type, const uint8_t *n, size_t n_len, const uint8_t *e,
                          size_t e_len)
{
    BIGNUM *bn = BN_bin2bn(n, n_len, NULL);
    BIGNUM *be = BN_bin2bn(e, e_len, NULL);
    RSA *rsa = NULL;
    EVP_PKEY *pkey = NULL;
    if (bn == NULL || be == NULL || !BN_is_word(be, P11_RSA_E)) {
        goto out;
    }
    unsigned bits = BN_num_bits(bn);
    *type = bits == 2048 ? HSM_KEY_RSA2048 : bits == 3072 ? HSM_KEY_RSA3072 : HSM_KEY_NONE;
    if (*type == HSM_KEY_NONE) {
        goto out;
    }
    rsa = RSA_new();
    if (rsa == NULL || !RSA_set0_key(rsa, bn, be, NULL)) {
        goto out;
    }
    bn = be = NULL; /* owned by rsa */
    pkey = EVP_PKEY_new();
    if (pkey != NULL && !EVP_PKEY_assign_RSA(pkey, rsa)) {
        EVP_PKEY_free(pkey);
        pkey = NULL;
    } else if (pkey != NULL) {
        rsa = NULL;
    }
out:
    RSA_free(rsa);
    BN_free(bn);
    BN_free(be);
    return pkey;
}

/* read_public reads the key's public half (the public key object for EC/EdDSA, whose private
 * object holds no point; the private object's modulus and exponent for RSA) into spki. */
static int read_public(struct p11_key *k, CK_SESSION_HANDLE h, CK_OBJECT_HANDLE priv, char *err,
                       size_t cap, enum hsm_key_type *out_type, uint8_t *spki, size_t *spki_len)
{
    CK_KEY_TYPE kt = 0;
    size_t len = 0;
    uint8_t a[P11_ATTR_MAX], b[P11_ATTR_MAX];
    size_t a_len = 0, b_len = 0;
    CK_RV rv = get_attr(k, h, priv, CKA_KEY_TYPE, &kt, sizeof(kt), &len);
    if (rv != CKR_OK) {
        return errf(err, cap, -EIO, "the key's type cannot be read (%s)", ckr_name(rv));
    }
    EVP_PKEY *pkey = NULL;
    enum hsm_key_type type = HSM_KEY_NONE;
    if (kt == CKK_RSA) {
        rv = get_attr(k, h, priv, CKA_MODULUS, a, sizeof(a), &a_len);
        if (rv == CKR_OK) {
            rv = get_attr(k, h, priv, CKA_PUBLIC_EXPONENT, b, sizeof(b), &b_len);
        }
        pkey = rv == CKR_OK ? pkey_rsa(&type, a, a_len, b, b_len) : NULL;
    } else if (kt == CKK_EC || kt == CKK_EC_EDWARDS) {
        CK_OBJECT_HANDLE pub[2];
        CK_ULONG n = 0;
        rv = find_objects(k, h, CKO_PUBLIC_KEY, pub, 2, &n);
        if (rv == CKR_OK && n != 1) {
            return errf(err, cap, -ENOENT,
                        "the token holds %s public key for the URI (one is needed to read the "
                        "key's point)",
                        n == 0 ? "no" : "more than one");
        }
        if (rv == CKR_OK) {
            rv = get_attr(k, h, pub[0], CKA_EC_PARAMS, a, sizeof(a), &a_len);
        }
        if (rv == CKR_OK) {
            rv = get_attr(k, h, pub[0], CKA_EC_POINT, b, sizeof(b), &b_len);
        }
        pkey = rv == CKR_OK ? pkey_ec(&type, a, a_len, b, b_len) : NULL;
    }
    if (rv != CKR_OK) {
        return errf(err, cap, -EIO, "the public key cannot be read from the token (%s)",
                    ckr_name(rv));
    }
    CBB cbb;
    int ok = pkey != NULL && CBB_init_fixed(&cbb, spki, HSM_SPKI_MAX) &&
             EVP_marshal_public_key(&cbb, pkey) && CBB_finish(&cbb, NULL, spki_len);
    EVP_PKEY_free(pkey);
    ERR_clear_error();
    if (!ok) {
        return errf(err, cap, -EBADMSG,
                    "the key is of a type this build does not use (P-256, P-384, RSA-2048/3072 "
                    "with e=65537, Ed25519)");
    }
    *out_type = type;
    return 0;
}

/* pick_mech chooses the signing mechanism of `type` among what the token offers. */
static int pick_mech(struct p11_key *k, enum hsm_key_type type, char *err, size_t cap)
{
    CK_MECHANISM_INFO mi;
    switch (type) {
    case HSM_KEY_P256:
    case HSM_KEY_P384:
        k->mech = CKM_ECDSA;
        k->ec_half = type == HSM_KEY_P256 ? 32 : 48;
        break;
    case HSM_KEY_RSA2048:
    case HSM_KEY_RSA3072:
        k->mech = CKM_SHA256_RSA_PKCS;
        if (k->f->C_GetMechanismInfo(k->slot, CKM_SHA256_RSA_PKCS, &mi) != CKR_OK) {
            k->mech = CKM_RSA_PKCS; /* over a DigestInfo built here */
        }
        break;
    case HSM_KEY_ED25519:
        k->mech = CKM_EDDSA;
        break;
    case HSM_KEY_NONE:
        ASSERT(false && "unreachable key type");
    }
    CK_RV rv = k->f->C_GetMechanismInfo(k->slot, k->mech, &mi);
    if (rv != CKR_OK || !(mi.flags & CKF_SIGN)) {
        return errf(err, cap, -EBADMSG, "the token cannot sign with the key's mechanism (%s: %s)",
                    type == HSM_KEY_ED25519 ? "CKM_EDDSA"
                    : k->mech == CKM_ECDSA  ? "CKM_ECDSA"
                                            : "CKM_RSA_PKCS",
                    ckr_name(rv));
    }
    return 0;
}

/* find_key finds the one private key of the URI on a logged-in session. */
static int find_key(struct p11_key *k, CK_SESSION_HANDLE h, char *err, size_t cap,
                    CK_OBJECT_HANDLE *out)
{
    CK_OBJECT_HANDLE objs[2];
    CK_ULONG n = 0;
    CK_RV rv = find_objects(k, h, CKO_PRIVATE_KEY, objs, 2, &n);
    if (rv != CKR_OK) {
        return errf(err, cap, -EIO, "finding the key failed (%s)", ckr_name(rv));
    }
    if (n != 1) {
        return errf(err, cap, n == 0 ? -ENOENT : -EINVAL,
                    n == 0 ? "no private key in the token matches the URI"
                           : "more than one private key in the token matches the URI");
    }
    *out = objs[0];
    return 0;
}

/* reinit finalizes and initializes the module again, when no caller is inside it: a token that
 * went away is not always found again by the module otherwise (SoftHSM2 keeps it invalid until
 * C_Initialize). Every session is gone with it. cmu held, and no session busy. */
static bool reinit(struct p11_key *k)
{
    if (!k->finalize) {
        return false; /* someone else initialized the module in this process: not ours */
    }
    (void)k->f->C_Finalize(NULL);
    CK_C_INITIALIZE_ARGS args;
    memset(&args, 0, sizeof(args));
    args.flags = CKF_OS_LOCKING_OK;
    CK_RV rv = k->f->C_Initialize(&args);
    if (rv != CKR_OK) {
        log_err("hsm: reinitialize_failed key=%s rv=%s", k->base.label, ckr_name(rv));
        k->finalize = rv == CKR_CRYPTOKI_ALREADY_INITIALIZED ? false : k->finalize;
    }
    return rv == CKR_OK;
}

/* set_down marks the key down for `reason` (static), once per fault; mu held. Sessions of the
 * old generation are closed by the next connect. */
static void set_down(struct p11_key *k, const char *reason)
{
    k->gen++;
    k->connected = false;
    k->backoff_ms = k->backoff_ms == 0                            ? P11_BACKOFF_MIN_MS
                    : k->backoff_ms >= HSM_P11_BACKOFF_MAX_MS / 2 ? HSM_P11_BACKOFF_MAX_MS
                                                                  : k->backoff_ms * 2;
    k->retry_at_ns = clock_mono_ns() + (uint64_t)k->backoff_ms * 1000000u;
    if (!atomic_load(&k->down)) {
        log_err("hsm: key_down key=%s reason=%s", k->base.label, reason);
    }
    atomic_store(&k->reason, reason);
    atomic_store(&k->down, true);
}

/* open_session opens a session on the slot and logs in (already logged in is fine). */
static CK_RV open_session(struct p11_key *k, CK_SLOT_ID slot, CK_SESSION_HANDLE *out)
{
    CK_SESSION_HANDLE h = CK_INVALID_HANDLE;
    CK_RV rv = k->f->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &h);
    if (rv == CKR_OK) {
        rv = login(k, h);
        if (rv != CKR_OK) {
            (void)k->f->C_CloseSession(h);
        }
    }
    if (rv == CKR_OK) {
        *out = h;
    }
    return rv;
}

/* session_copy copies the token's private key into a session object of the anchor session h
 * (C_CopyObject with CKA_TOKEN false; PKCS#11 3.0 §5.7: the copy keeps CKA_SENSITIVE and
 * CKA_EXTRACTABLE false, a sensitive key cannot be made less so) and returns its handle, or
 * `priv` when the token refuses (CKA_COPYABLE false, no room): the key never leaves the token
 * either way. Why: SoftHSM2 checks a token object against its file on every use (a lock, a
 * stat and a read of the object's generation: about 40 % of a C_SignInit + C_Sign of a P-256
 * key), a session object lives in the module's memory. The copy goes when the anchor session
 * is closed (every reconnect makes a new one). */
static CK_OBJECT_HANDLE session_copy(struct p11_key *k, CK_SESSION_HANDLE h, CK_OBJECT_HANDLE priv)
{
    CK_BBOOL no = CK_FALSE;
    CK_ATTRIBUTE tmpl[] = {{CKA_TOKEN, &no, sizeof(no)}};
    CK_OBJECT_HANDLE copy = CK_INVALID_HANDLE;
    CK_RV rv = k->f->C_CopyObject(h, priv, tmpl, ARRAY_LEN(tmpl), &copy);
    if (rv != CKR_OK || copy == CK_INVALID_HANDLE) {
        log_info("hsm: session_copy_refused key=%s rv=%s (signing uses the token object)",
                 k->base.label, ckr_name(rv));
        return priv;
    }
    return copy;
}

/* connect (re)connects: closes the sessions of the old connection that no worker is inside,
 * finds the slot, opens the anchor session and logs in, finds the key, checks that its public
 * key is the one of the first connect, and opens a session for every idle slot; then publishes
 * all of it under mu and the key is up. The module calls run under cmu only. A fault seen while
 * it ran (the generation moved) makes it fail. On failure the key is (or stays) down. */
static int connect(struct p11_key *k, char *err, size_t cap)
{
    CK_SESSION_HANDLE old[HSM_P11_SESSIONS_MAX + 1];
    CK_SESSION_HANDLE fresh[HSM_P11_SESSIONS_MAX];
    bool want[HSM_P11_SESSIONS_MAX] = {false};
    size_t num_old = 0;
    uint32_t n = k->base.sessions;
    bool idle = true;
    base_mutex_lock(&k->mu);
    uint64_t gen = k->gen;
    for (uint32_t i = 0; i < n; i++) {
        struct p11_session *s = &k->sess[i];
        idle = idle && !s->busy;
        if (!s->busy && s->open) {
            old[num_old++] = s->h;
            s->open = false;
        }
        want[i] = !s->busy;
    }
    if (k->anchor_open) {
        old[num_old++] = k->anchor;
        k->anchor_open = false;
    }
    base_mutex_unlock(&k->mu);
    bool any = false;
    for (uint32_t i = 0; i < n; i++) {
        any = any || want[i];
    }
    for (size_t i = 0; i < num_old; i++) {
        (void)k->f->C_CloseSession(old[i]); /* of an earlier connection: may be gone */
    }
    if (!any) { /* every worker is still inside a call that timed out: no capacity yet */
        base_mutex_lock(&k->mu);
        set_down(k, "sign_timeout");
        base_mutex_unlock(&k->mu);
        return errf(err, cap, -EAGAIN, "every session is still inside a call that timed out");
    }
    for (uint32_t i = 0; i < n; i++) {
        fresh[i] = CK_INVALID_HANDLE;
    }
    CK_SESSION_HANDLE h = CK_INVALID_HANDLE;
    CK_SLOT_ID slot = 0;
    CK_OBJECT_HANDLE priv = CK_INVALID_HANDLE;
    CK_OBJECT_HANDLE token = CK_INVALID_HANDLE;
    const char *reason = NULL;
    int rc = 0;
    CK_RV rv = find_slot(k, &slot);
    if (rv != CKR_OK && k->spki_len != 0 && idle && reinit(k)) {
        rv = find_slot(k, &slot);
    }
    if (rv != CKR_OK) {
        reason = ckr_name(rv);
        rc = errf(err, cap, -ENOENT, "no token%s%s%s is present (%s)",
                  k->uri.has_token ? " labelled '" : "", k->uri.has_token ? k->uri.token : "",
                  k->uri.has_token ? "'" : "", ckr_name(rv));
        goto out;
    }
    rv = k->f->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &h);
    if (rv != CKR_OK) {
        reason = ckr_name(rv);
        rc = errf(err, cap, -EIO, "opening a session failed (%s)", ckr_name(rv));
        goto out;
    }
    rv = login(k, h);
    if (rv != CKR_OK) {
        reason = ckr_name(rv);
        bool pin = rv == CKR_PIN_INCORRECT || rv == CKR_PIN_LOCKED || rv == CKR_PIN_LEN_RANGE;
        rc = errf(err, cap, pin ? -EPERM : -EIO, "the token refused the login (%s%s)", ckr_name(rv),
                  rv == CKR_PIN_INCORRECT ? ": wrong token PIN" : "");
        goto out;
    }
    rc = find_key(k, h, err, cap, &priv);
    if (rc != 0) {
        reason = "key_not_found";
        goto out;
    }
    enum hsm_key_type type = HSM_KEY_NONE;
    uint8_t spki[HSM_SPKI_MAX];
    size_t spki_len = 0;
    rc = read_public(k, h, priv, err, cap, &type, spki, &spki_len);
    if (rc != 0) {
        reason = "public_key_unreadable";
        goto out;
    }
    if (k->spki_len == 0) { /* the first connect, before any other thread uses the key */
        memcpy(k->spki, spki, spki_len);
        k->spki_len = spki_len;
        k->base.type = type;
        k->slot = slot;
        rc = pick_mech(k, type, err, cap);
        if (rc != 0) {
            reason = "mechanism_missing";
            goto out;
        }
    } else if (spki_len != k->spki_len || memcmp(spki, k->spki, spki_len) != 0) {
        reason = "key_changed";
        rc = errf(err, cap, -EBADMSG, "the token's key is not the one loaded at start");
        goto out;
    }
    token = priv;
    priv = session_copy(k, h, priv);
    for (uint32_t i = 0; i < n && rc == 0; i++) {
        if (want[i]) {
            rv = open_session(k, slot, &fresh[i]);
            if (rv != CKR_OK) {
                reason = ckr_name(rv);
                rc =
                    errf(err, cap, -EIO, "opening signing session %u failed (%s)", i, ckr_name(rv));
            }
        }
    }
out:
    base_mutex_lock(&k->mu);
    if (rc == 0 && k->gen != gen) {
        reason = atomic_load(&k->reason);
        rc = errf(err, cap, -EAGAIN, "a fault while connecting (%s)", reason);
    }
    if (rc == 0) {
        k->slot = slot;
        k->priv = priv;
        k->token = token;
        k->anchor = h;
        k->anchor_open = true;
        for (uint32_t i = 0; i < n; i++) {
            if (want[i]) {
                ASSERT(!k->sess[i].busy); /* nobody takes a session while not connected */
                k->sess[i].h = fresh[i];
                k->sess[i].open = true;
                k->sess[i].gen = k->gen;
            }
        }
        if (atomic_load(&k->down)) {
            log_info("hsm: key_up key=%s", k->base.label);
        }
        k->connected = true;
        k->backoff_ms = 0;
        atomic_store(&k->reason, (const char *)NULL);
        atomic_store(&k->down, false);
        base_cond_broadcast(&k->cond);
    } else if (k->spki_len != 0 && reason != NULL) {
        if (k->connected || k->gen == gen) {
            set_down(k, reason);
        }
    }
    base_mutex_unlock(&k->mu);
    if (rc != 0) {
        for (uint32_t i = 0; i < n; i++) {
            if (fresh[i] != CK_INVALID_HANDLE) {
                (void)k->f->C_CloseSession(fresh[i]);
            }
        }
        if (h != CK_INVALID_HANDLE) {
            (void)k->f->C_CloseSession(h);
        }
    }
    return rc;
}

/* ---- the session pool ---- */

/* abs_mono turns a CLOCK_MONOTONIC deadline in ns into a timespec. */
static struct timespec abs_mono(uint64_t ns)
{
    return (struct timespec){.tv_sec = (time_t)(ns / 1000000000u),
                             .tv_nsec = (long)(ns % 1000000000u)};
}

/* session_get takes a free session of the current connection, waiting at most until
 * deadline_ns (for mu too: pthread_mutex_timedlock). No module call. Returns its index, or
 * -EAGAIN (down, or no session in time). */
static int session_get(struct p11_key *k, uint64_t deadline_ns)
{
    struct timespec ts = abs_mono(deadline_ns);
    /* pthread_mutex_timedlock takes CLOCK_REALTIME (pthread_mutex_clocklock would take the
     * monotonic one, but TSan does not know it): the same distance from now on that clock. */
    uint64_t now = clock_mono_ns();
    uint64_t left = deadline_ns > now ? deadline_ns - now : 0;
    struct timespec rt;
    clock_gettime(CLOCK_REALTIME, &rt);
    uint64_t rt_ns = (uint64_t)rt.tv_sec * 1000000000u + (uint64_t)rt.tv_nsec + left;
    rt = (struct timespec){.tv_sec = (time_t)(rt_ns / 1000000000u),
                           .tv_nsec = (long)(rt_ns % 1000000000u)};
    int lrc = pthread_mutex_timedlock(&k->mu, &rt);
    if (lrc == ETIMEDOUT) {
        return -EAGAIN;
    }
    ASSERT(lrc == 0);
    int idx = -EAGAIN;
    uint32_t n = k->base.sessions;
    while (k->connected) { /* bounded by the deadline */
        uint32_t i = 0;
        while (i < n && (k->sess[i].busy || !k->sess[i].open || k->sess[i].gen != k->gen)) {
            i++;
        }
        if (i < n) {
            k->sess[i].busy = true;
            k->sess[i].priv = k->priv;
            idx = (int)i;
            break;
        }
        int w = pthread_cond_timedwait(&k->cond, &k->mu, &ts);
        ASSERT(w == 0 || w == ETIMEDOUT);
        if (w == ETIMEDOUT) {
            break;
        }
    }
    base_mutex_unlock(&k->mu);
    return idx;
}

/* is_fault: the call failed because of the session, the login or the device, not the item. */
static bool is_fault(CK_RV rv)
{
    switch (rv) {
    case CKR_SESSION_HANDLE_INVALID:
    case CKR_SESSION_CLOSED:
    case CKR_USER_NOT_LOGGED_IN:
    case CKR_DEVICE_REMOVED:
    case CKR_TOKEN_NOT_PRESENT:
    case CKR_TOKEN_NOT_RECOGNIZED:
    case CKR_DEVICE_ERROR:
    case CKR_DEVICE_MEMORY:
    case CKR_GENERAL_ERROR:
    case CKR_KEY_HANDLE_INVALID:
    case CKR_OBJECT_HANDLE_INVALID:
    case CKR_CRYPTOKI_NOT_INITIALIZED:
    case CKR_FUNCTION_FAILED:
        return true;
    default:
        return false;
    }
}

/* DigestInfo prefix of SHA-256 (RFC 8017 §9.2, note 1), for CKM_RSA_PKCS. */
static const uint8_t sha256_prefix[] = {0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
                                        0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20};

/* sign_one signs one item on session h. Returns CKR_OK, a PKCS#11 error, or CKR_FUNCTION_FAILED
 * for a signature we cannot convert. */
static CK_RV sign_one(const struct p11_key *k, CK_SESSION_HANDLE h, CK_OBJECT_HANDLE priv,
                      struct hsm_sign_item *it)
{
    uint8_t in[sizeof(sha256_prefix) + SHA384_DIGEST_LENGTH];
    const uint8_t *msg = it->tbs;
    size_t msg_len = it->tbs_len;
    if (k->mech == CKM_ECDSA && k->ec_half == 48) {
        SHA384(it->tbs, it->tbs_len, in);
        msg = in;
        msg_len = SHA384_DIGEST_LENGTH;
    } else if (k->mech == CKM_ECDSA) {
        SHA256(it->tbs, it->tbs_len, in);
        msg = in;
        msg_len = SHA256_DIGEST_LENGTH;
    } else if (k->mech == CKM_RSA_PKCS) {
        memcpy(in, sha256_prefix, sizeof(sha256_prefix));
        SHA256(it->tbs, it->tbs_len, in + sizeof(sha256_prefix));
        msg = in;
        msg_len = sizeof(sha256_prefix) + SHA256_DIGEST_LENGTH;
    }
    CK_MECHANISM mech = {k->mech, NULL, 0};
    CK_RV rv = k->f->C_SignInit(h, &mech, priv);
    if (rv != CKR_OK) {
        return rv;
    }
    uint8_t raw[P11_RAW_SIG_MAX];
    CK_ULONG raw_len = sizeof(raw);
    rv = k->f->C_Sign(h, (CK_BYTE_PTR)(uintptr_t)msg, msg_len, raw, &raw_len);
    if (rv != CKR_OK) {
        return rv;
    }
    if (k->mech != CKM_ECDSA) {
        if (raw_len == 0 || raw_len > HSM_SIG_MAX) {
            return CKR_FUNCTION_FAILED;
        }
        memcpy(it->sig, raw, raw_len);
        it->sig_len = raw_len;
        return CKR_OK;
    }
    /* CKM_ECDSA gives r||s, each the field size (PKCS#11 3.0 §2.3.1); X.509 wants the DER
     * ECDSA-Sig-Value (RFC 5480 §2.2... RFC 3279 §2.2.3). */
    if (raw_len != 2 * k->ec_half) {
        return CKR_FUNCTION_FAILED;
    }
    ECDSA_SIG *sig = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(raw, k->ec_half, NULL);
    BIGNUM *s = BN_bin2bn(raw + k->ec_half, k->ec_half, NULL);
    int ok = sig != NULL && r != NULL && s != NULL && ECDSA_SIG_set0(sig, r, s);
    if (ok) {
        r = s = NULL; /* owned by sig */
    }
    CBB cbb;
    size_t len = 0;
    ok = ok && CBB_init_fixed(&cbb, it->sig, HSM_SIG_MAX) && ECDSA_SIG_marshal(&cbb, sig) &&
         CBB_finish(&cbb, NULL, &len);
    BN_free(r);
    BN_free(s);
    ECDSA_SIG_free(sig);
    if (!ok) {
        ERR_clear_error();
        return CKR_FUNCTION_FAILED;
    }
    it->sig_len = len;
    return CKR_OK;
}

/* worker_run signs the job of session i on its thread (no lock held). */
static void worker_run(struct p11_key *k, struct p11_job *job, CK_SESSION_HANDLE h,
                       CK_OBJECT_HANDLE priv)
{
    job->fault = NULL;
    for (size_t j = 0; j < job->num; j++) {
        job->rc[j] = -EIO;
        if (job->len[j] == 0 && job->off[j] == SIZE_MAX) {
            continue; /* longer than HSM_P11_TBS_MAX: refused by the caller */
        }
        struct hsm_sign_item it = {
            .tbs = job->tbs + job->off[j], .tbs_len = job->len[j], .sig = job->sig[j]};
        CK_RV rv = sign_one(k, h, priv, &it);
        if (is_fault(rv)) {
            job->fault = ckr_name(rv);
            break;
        }
        if (rv != CKR_OK) {
            log_err("hsm: sign_failed key=%s rv=%s(0x%lx)", k->base.label, ckr_name(rv),
                    (unsigned long)rv);
            continue;
        }
        job->rc[j] = 0;
        job->sig_len[j] = it.sig_len;
    }
}

/* reopen_retired gives a session whose caller gave up a new handle when the key reconnected
 * while the worker was still inside the module (that connect skipped the busy session): else
 * the pool would stay one session short until the next fault. While the key is still down the
 * next connect does it. mu held (released around the module calls); s is busy. */
static void reopen_retired(struct p11_key *k, struct p11_session *s)
{
    if (!k->connected || s->gen == k->gen) {
        return;
    }
    uint64_t gen = k->gen;
    CK_SLOT_ID slot = k->slot;
    CK_SESSION_HANDLE old = s->h;
    bool was_open = s->open;
    s->open = false;
    base_mutex_unlock(&k->mu);
    if (was_open) {
        (void)k->f->C_CloseSession(old);
    }
    CK_SESSION_HANDLE h = CK_INVALID_HANDLE;
    CK_RV rv = open_session(k, slot, &h);
    base_mutex_lock(&k->mu);
    if (rv == CKR_OK && k->connected && k->gen == gen) {
        s->h = h;
        s->open = true;
        s->gen = gen;
    } else if (rv == CKR_OK) {
        base_mutex_unlock(&k->mu);
        (void)k->f->C_CloseSession(h);
        base_mutex_lock(&k->mu);
    }
}

struct worker_arg {
    struct p11_key *k;
    uint32_t index;
};

/* worker_main is the thread of one session (cp-p11N): it runs the jobs callers hand it, so that
 * a caller can stop waiting for a module call that does not return. */
static void *worker_main(void *arg)
{
    struct p11_key *k = ((struct worker_arg *)arg)->k;
    uint32_t i = ((struct worker_arg *)arg)->index;
    free(arg);
    base_thread_name("cp-p11-%u", i);
    struct p11_session *s = &k->sess[i];
    base_mutex_lock(&k->mu);
    for (;;) { /* until quit */
        while (!s->quit && s->state != P11_JOB) {
            base_cond_wait(&s->cond, &k->mu);
        }
        if (s->quit) {
            s->exited = true;
            base_cond_broadcast(&s->cond);
            break;
        }
        CK_SESSION_HANDLE h = s->h;
        CK_OBJECT_HANDLE priv = s->priv;
        base_mutex_unlock(&k->mu);
        worker_run(k, s->job, h, priv);
        base_mutex_lock(&k->mu);
        s->state = P11_DONE;
        if (s->abandoned) { /* the caller is gone: the session goes back to the pool itself */
            s->abandoned = false;
            s->state = P11_IDLE;
            reopen_retired(k, s);
            s->busy = false;
            base_cond_broadcast(&k->cond);
        }
        base_cond_broadcast(&s->cond);
    }
    base_mutex_unlock(&k->mu);
    return NULL;
}

static int p11_sign_batch(struct hsm_key *key, struct hsm_sign_item *items, size_t num_items)
{
    struct p11_key *k = p11_of(key);
    uint64_t deadline = clock_mono_ns() + (uint64_t)k->timeout_ms * 1000000u;
    int i = session_get(k, deadline);
    if (i < 0) {
        return -EAGAIN;
    }
    struct p11_session *s = &k->sess[i];
    struct p11_job *job = s->job;
    size_t off = 0;
    for (size_t j = 0; j < num_items; j++) { /* the worker is idle: the job is ours */
        if (items[j].tbs_len > HSM_P11_TBS_MAX) {
            job->off[j] = SIZE_MAX;
            job->len[j] = 0;
            continue;
        }
        memcpy(job->tbs + off, items[j].tbs, items[j].tbs_len);
        job->off[j] = off;
        job->len[j] = items[j].tbs_len;
        off += items[j].tbs_len;
    }
    job->num = num_items;
    struct timespec ts = abs_mono(deadline);
    base_mutex_lock(&k->mu);
    s->state = P11_JOB;
    base_cond_broadcast(&s->cond);
    while (s->state != P11_DONE) { /* bounded by the deadline */
        int w = pthread_cond_timedwait(&s->cond, &k->mu, &ts);
        ASSERT(w == 0 || w == ETIMEDOUT);
        if (w == ETIMEDOUT && s->state != P11_DONE) {
            break;
        }
    }
    if (s->state != P11_DONE) { /* a slow or hung token: give up, the worker frees it */
        s->abandoned = true;
        if (s->gen == k->gen && k->connected) {
            set_down(k, "sign_timeout");
        }
        base_mutex_unlock(&k->mu);
        return -EAGAIN;
    }
    int rc = 0;
    for (size_t j = 0; j < num_items; j++) {
        items[j].rc = job->fault != NULL ? -EIO : job->rc[j];
        if (items[j].rc == 0) {
            items[j].sig_len = job->sig_len[j];
            memcpy(items[j].sig, job->sig[j], job->sig_len[j]);
        } else {
            rc = -EIO;
        }
    }
    if (job->fault != NULL) {
        rc = -EAGAIN;
        if (s->gen == k->gen && k->connected) {
            set_down(k, job->fault);
        }
    }
    s->state = P11_IDLE;
    s->busy = false;
    base_cond_broadcast(&k->cond);
    base_mutex_unlock(&k->mu);
    return rc;
}

static int p11_public_der(const struct hsm_key *key, uint8_t *out, size_t cap, size_t *out_len)
{
    const struct p11_key *k = p11_of(key);
    if (cap < k->spki_len) {
        return -E2BIG;
    }
    memcpy(out, k->spki, k->spki_len);
    *out_len = k->spki_len;
    return 0;
}

static int p11_status(const struct hsm_key *key, const char **out_reason)
{
    struct p11_key *k = p11_of(key);
    if (!atomic_load(&k->down)) {
        return 0;
    }
    const char *r = atomic_load(&k->reason);
    *out_reason = r != NULL ? r : "down";
    return -EAGAIN;
}

/* live_check, for a key that is up and signs through a session copy: the copy lives in the
 * module's memory and signs on when the token's storage goes away, which the token's object
 * tells (SoftHSM2 checks it against its file; a device's module fails the call). So at most
 * every P11_LIVE_MS the token's object is read on the anchor session; an error takes the key
 * down like a failed signature would. cmu held. */
static void live_check(struct p11_key *k)
{
    uint64_t now = clock_mono_ns();
    base_mutex_lock(&k->mu);
    bool due = k->connected && k->anchor_open && k->priv != k->token &&
               now - k->live_at_ns >= P11_LIVE_MS * 1000000ull;
    CK_SESSION_HANDLE h = k->anchor;
    CK_OBJECT_HANDLE token = k->token;
    uint64_t gen = k->gen;
    base_mutex_unlock(&k->mu);
    if (!due) {
        return;
    }
    CK_OBJECT_CLASS cls = 0;
    CK_ATTRIBUTE a = {CKA_CLASS, &cls, sizeof(cls)};
    CK_RV rv = k->f->C_GetAttributeValue(h, token, &a, 1);
    base_mutex_lock(&k->mu);
    k->live_at_ns = now;
    if (rv != CKR_OK && k->gen == gen) {
        log_warn("hsm: token_object_lost key=%s rv=%s", k->base.label, ckr_name(rv));
        set_down(k, ckr_name(rv));
    }
    base_mutex_unlock(&k->mu);
}

static void p11_probe(struct hsm_key *key)
{
    struct p11_key *k = p11_of(key);
    if (pthread_mutex_trylock(&k->cmu) != 0) {
        return; /* another thread is connecting */
    }
    if (!atomic_load(&k->down)) {
        live_check(k);
        base_mutex_unlock(&k->cmu);
        return;
    }
    base_mutex_lock(&k->mu);
    bool due = !k->connected && clock_mono_ns() >= k->retry_at_ns;
    base_mutex_unlock(&k->mu);
    char err[256];
    if (due && connect(k, err, sizeof(err)) != 0) {
        base_mutex_lock(&k->mu);
        uint32_t retry_ms = k->backoff_ms;
        base_mutex_unlock(&k->mu);
        log_warn("hsm: reconnect_failed key=%s err=\"%s\" retry_ms=%u", k->base.label, err,
                 retry_ms);
    }
    base_mutex_unlock(&k->cmu);
}

/* workers_stop asks every worker to quit and joins it, giving one that is inside a module call
 * P11_STOP_WAIT_MS. Returns false when one did not return: then the module and the key's memory
 * must stay (the process is on its way out). */
static bool workers_stop(struct p11_key *k)
{
    bool all = true;
    uint64_t deadline = clock_mono_ns() + P11_STOP_WAIT_MS * 1000000ull;
    struct timespec ts = abs_mono(deadline);
    base_mutex_lock(&k->mu);
    for (uint32_t i = 0; i < k->base.sessions; i++) {
        k->sess[i].quit = true;
        base_cond_broadcast(&k->sess[i].cond);
    }
    for (uint32_t i = 0; i < k->base.sessions; i++) {
        struct p11_session *s = &k->sess[i];
        while (s->started && !s->exited) { /* bounded by the deadline */
            int w = pthread_cond_timedwait(&s->cond, &k->mu, &ts);
            ASSERT(w == 0 || w == ETIMEDOUT);
            if (w == ETIMEDOUT) {
                break;
            }
        }
        if (!s->started) {
            continue;
        }
        if (!s->exited) {
            log_err("hsm: worker_stuck key=%s session=%u (a module call did not return)",
                    k->base.label, i);
            all = false;
            continue;
        }
        base_mutex_unlock(&k->mu);
        int rc = pthread_join(s->thread, NULL); /* it has left its loop */
        ASSERT(rc == 0);
        base_mutex_lock(&k->mu);
        s->started = false;
    }
    base_mutex_unlock(&k->mu);
    return all;
}

static void p11_free(struct hsm_key *key)
{
    struct p11_key *k = p11_of(key);
    if (!workers_stop(k)) {
        return; /* left as it is: a worker still uses the module, the session and the key */
    }
    if (k->f != NULL) {
        for (uint32_t i = 0; i < k->base.sessions; i++) {
            ASSERT(!k->sess[i].busy);
            if (k->sess[i].open) {
                (void)k->f->C_CloseSession(k->sess[i].h);
            }
        }
        if (k->anchor_open) {
            (void)k->f->C_CloseSession(k->anchor);
        }
        if (k->finalize) {
            (void)k->f->C_Finalize(NULL);
        }
    }
    if (k->dl != NULL) {
        /* Not dlclose'd: a module may keep threads or atexit handlers that outlive C_Finalize
         * (SoftHSM2 does); unloading under them would crash at exit. */
        k->dl = NULL;
    }
    for (uint32_t i = 0; i < k->base.sessions; i++) {
        free(k->sess[i].job);
        k->sess[i].job = NULL;
        int rc = pthread_cond_destroy(&k->sess[i].cond);
        ASSERT(rc == 0);
    }
    int rc = pthread_cond_destroy(&k->cond);
    ASSERT(rc == 0);
    rc = pthread_mutex_destroy(&k->mu);
    ASSERT(rc == 0);
    rc = pthread_mutex_destroy(&k->cmu);
    ASSERT(rc == 0);
    size_t len = k->map_len;
    OPENSSL_cleanse(k, len);
    rc = munmap(k, len);
    ASSERT(rc == 0);
}

static const struct hsm_key_ops p11_ops = {
    .public_der = p11_public_der,
    .sign_batch = p11_sign_batch,
    .free = p11_free,
    .status = p11_status,
    .probe = p11_probe,
};

/* ---- open ---- */

/* read_pin reads the PIN from pin-source (first line), or takes pin-value. */
static int token_pin_read(struct p11_key *k, char *err, size_t cap)
{
    if (k->uri.has_pin_value) {
        memcpy(k->pin, k->uri.pin_value, sizeof(k->pin));
        OPENSSL_cleanse(k->uri.pin_value, sizeof(k->uri.pin_value));
        return 0;
    }
    if (!k->uri.has_pin_source) {
        return errf(err, cap, -EINVAL, "the URI gives no PIN (pin-source=file:... or pin-value=)");
    }
    uint8_t buf[HSM_P11_PIN_MAX + 2];
    size_t len = 0;
    int rc = base_file_read(buf, &len, sizeof(buf), k->uri.pin_source);
    if (rc != 0) {
        OPENSSL_cleanse(buf, sizeof(buf));
        return errf(err, cap, rc == -E2BIG ? -EINVAL : rc, "the PIN file %s cannot be read: %s",
                    k->uri.pin_source, rc == -E2BIG ? "longer than a PIN" : strerror(-rc));
    }
    while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r')) {
        len--;
    }
    if (len == 0 || len > HSM_P11_PIN_MAX || memchr(buf, '\0', len) != NULL) {
        OPENSSL_cleanse(buf, sizeof(buf));
        return errf(err, cap, -EINVAL, "the PIN file %s holds no usable PIN", k->uri.pin_source);
    }
    memcpy(k->pin, buf, len);
    k->pin[len] = '\0';
    OPENSSL_cleanse(buf, sizeof(buf));
    return 0;
}

/* p11_alloc maps the key (MADV_DONTDUMP: it holds the PIN) and parses the options. */
static int p11_alloc(struct p11_key **out, char *err, size_t cap,
                     const struct hsm_pkcs11_options *opt)
{
    if (opt->sessions == 0 || opt->sessions > HSM_P11_SESSIONS_MAX || opt->sign_timeout_ms == 0) {
        return errf(err, cap, -EINVAL, "sessions must be 1..%d and sign_timeout_ms above 0",
                    HSM_P11_SESSIONS_MAX);
    }
    long page = sysconf(_SC_PAGESIZE);
    ASSERT(page > 0);
    size_t len = (sizeof(struct p11_key) + (size_t)page - 1) & ~((size_t)page - 1);
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        return errf(err, cap, -errno, "out of memory");
    }
    (void)madvise(p, len, MADV_DONTDUMP);
    struct p11_key *k = p;
    k->map_len = len;
    k->base.ops = &p11_ops;
    k->base.sessions = opt->sessions; /* before the conditions: p11_free destroys that many */
    k->timeout_ms = opt->sign_timeout_ms;
    int rc = pthread_mutex_init(&k->mu, NULL);
    ASSERT(rc == 0);
    rc = pthread_mutex_init(&k->cmu, NULL);
    ASSERT(rc == 0);
    pthread_condattr_t ca;
    rc = pthread_condattr_init(&ca);
    ASSERT(rc == 0);
    rc = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* the deadlines */
    ASSERT(rc == 0);
    rc = pthread_cond_init(&k->cond, &ca);
    ASSERT(rc == 0);
    bool nomem = false;
    for (uint32_t i = 0; i < opt->sessions; i++) {
        rc = pthread_cond_init(&k->sess[i].cond, &ca);
        ASSERT(rc == 0);
        k->sess[i].job = calloc(1, sizeof(struct p11_job));
        nomem = nomem || k->sess[i].job == NULL;
    }
    rc = pthread_condattr_destroy(&ca);
    ASSERT(rc == 0);
    *out = k;
    if (nomem) {
        return errf(err, cap, -ENOMEM, "out of memory");
    }
    const char *why = NULL;
    rc = hsm_pkcs11_uri_parse(&k->uri, &why, opt->uri, strlen(opt->uri));
    if (rc != 0) {
        return errf(err, cap, -EINVAL, "[ca] key is not a usable pkcs11: URI: %s", why);
    }
    if (hsm_pkcs11_uri_format(k->base.label, sizeof(k->base.label), &k->uri) != 0) {
        return errf(err, cap, -EINVAL, "[ca] key is too long");
    }
    return token_pin_read(k, err, cap);
}

/* load_module dlopens the module and initializes it with OS locking. */
static int load_module(struct p11_key *k, char *err, size_t cap, const char *module)
{
    struct stat st;
    if (stat(module, &st) == -1) {
        return errf(err, cap, -ENOENT, "the PKCS#11 module %s cannot be loaded: %s", module,
                    strerror(errno));
    }
    k->dl = dlopen(module, RTLD_NOW | RTLD_LOCAL);
    if (k->dl == NULL) {
        const char *e = dlerror();
        return errf(err, cap, -ENOENT, "the PKCS#11 module %s cannot be loaded: %s", module,
                    e != NULL ? e : "dlopen failed");
    }
    CK_C_GetFunctionList get = (CK_C_GetFunctionList)dlsym(k->dl, "C_GetFunctionList");
    if (get == NULL || get(&k->f) != CKR_OK || k->f == NULL) {
        k->f = NULL;
        return errf(err, cap, -ENOENT, "%s is not a PKCS#11 module (no C_GetFunctionList)", module);
    }
    CK_C_INITIALIZE_ARGS args;
    memset(&args, 0, sizeof(args));
    args.flags = CKF_OS_LOCKING_OK;
    CK_RV rv = k->f->C_Initialize(&args);
    if (rv != CKR_OK && rv != CKR_CRYPTOKI_ALREADY_INITIALIZED) {
        return errf(err, cap, -EIO, "C_Initialize of %s failed (%s, 0x%lx)", module, ckr_name(rv),
                    (unsigned long)rv);
    }
    k->finalize = rv == CKR_OK;
    return 0;
}

static int open_common(struct p11_key **out, char *err, size_t cap,
                       const struct hsm_pkcs11_options *opt)
{
    ASSERT(out != NULL);
    ASSERT(err != NULL && cap > 0);
    ASSERT(opt != NULL && opt->module != NULL && opt->uri != NULL);
    err[0] = '\0';
    struct p11_key *k = NULL;
    int rc = p11_alloc(&k, err, cap, opt);
    if (rc == 0) {
        rc = load_module(k, err, cap, opt->module);
    }
    if (rc != 0 && k != NULL) {
        p11_free(&k->base);
        k = NULL;
    }
    *out = k;
    return rc;
}

/* connect_open makes the first connection and starts one worker per session. */
static int connect_open(struct p11_key *k, char *err, size_t cap)
{
    base_mutex_lock(&k->cmu);
    int rc = connect(k, err, cap);
    base_mutex_unlock(&k->cmu);
    for (uint32_t i = 0; rc == 0 && i < k->base.sessions; i++) {
        struct worker_arg *a = malloc(sizeof(*a));
        if (a == NULL) {
            return errf(err, cap, -ENOMEM, "out of memory");
        }
        *a = (struct worker_arg){.k = k, .index = i};
        int prc = pthread_create(&k->sess[i].thread, NULL, worker_main, a);
        if (prc != 0) {
            free(a);
            return errf(err, cap, -prc, "cannot start a signing thread: %s", strerror(prc));
        }
        k->sess[i].started = true;
    }
    return rc;
}

int hsm_pkcs11_open(struct hsm_key **out, char *err, size_t cap,
                    const struct hsm_pkcs11_options *opt)
{
    struct p11_key *k = NULL;
    int rc = open_common(&k, err, cap, opt);
    if (rc != 0) {
        return rc;
    }
    rc = connect_open(k, err, cap);
    if (rc != 0) {
        p11_free(&k->base);
        return rc;
    }
    hsm_key_validate(&k->base);
    log_info("hsm: pkcs11_open key=%s type=%s sessions=%u", k->base.label,
             hsm_key_type_name(k->base.type), k->base.sessions);
    *out = &k->base;
    return 0;
}

/* ---- generate ---- */

static int generate_pair(struct p11_key *k, char *err, size_t cap, CK_SESSION_HANDLE h,
                         enum hsm_key_type type)
{
    CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
    CK_ULONG bits = type == HSM_KEY_RSA3072 ? 3072 : 2048;
    uint8_t e[] = {0x01, 0x00, 0x01};
    CK_MECHANISM mech = {CKM_EC_KEY_PAIR_GEN, NULL, 0};
    CK_ATTRIBUTE pub[8], priv[10];
    CK_ULONG np = 0, nv = 0;
    const char *label = k->uri.has_object ? k->uri.object : NULL;
    pub[np++] = (CK_ATTRIBUTE){CKA_TOKEN, &yes, sizeof(yes)};
    pub[np++] = (CK_ATTRIBUTE){CKA_VERIFY, &yes, sizeof(yes)};
    switch (type) {
    case HSM_KEY_P256:
        pub[np++] = (CK_ATTRIBUTE){CKA_EC_PARAMS, (void *)(uintptr_t)oid_p256, sizeof(oid_p256)};
        break;
    case HSM_KEY_P384:
        pub[np++] = (CK_ATTRIBUTE){CKA_EC_PARAMS, (void *)(uintptr_t)oid_p384, sizeof(oid_p384)};
        break;
    case HSM_KEY_ED25519:
        mech.mechanism = CKM_EC_EDWARDS_KEY_PAIR_GEN;
        pub[np++] =
            (CK_ATTRIBUTE){CKA_EC_PARAMS, (void *)(uintptr_t)oid_ed25519, sizeof(oid_ed25519)};
        break;
    case HSM_KEY_RSA2048:
    case HSM_KEY_RSA3072:
        mech.mechanism = CKM_RSA_PKCS_KEY_PAIR_GEN;
        pub[np++] = (CK_ATTRIBUTE){CKA_MODULUS_BITS, &bits, sizeof(bits)};
        pub[np++] = (CK_ATTRIBUTE){CKA_PUBLIC_EXPONENT, e, sizeof(e)};
        break;
    case HSM_KEY_NONE:
        return errf(err, cap, -EINVAL, "no key type");
    }
    priv[nv++] = (CK_ATTRIBUTE){CKA_TOKEN, &yes, sizeof(yes)};
    priv[nv++] = (CK_ATTRIBUTE){CKA_PRIVATE, &yes, sizeof(yes)};
    priv[nv++] = (CK_ATTRIBUTE){CKA_SENSITIVE, &yes, sizeof(yes)};
    priv[nv++] = (CK_ATTRIBUTE){CKA_EXTRACTABLE, &no, sizeof(no)};
    priv[nv++] = (CK_ATTRIBUTE){CKA_SIGN, &yes, sizeof(yes)};
    if (label != NULL) {
        pub[np++] = (CK_ATTRIBUTE){CKA_LABEL, (void *)(uintptr_t)label, strlen(label)};
        priv[nv++] = (CK_ATTRIBUTE){CKA_LABEL, (void *)(uintptr_t)label, strlen(label)};
    }
    if (k->uri.has_id) {
        pub[np++] = (CK_ATTRIBUTE){CKA_ID, k->uri.id, k->uri.id_len};
        priv[nv++] = (CK_ATTRIBUTE){CKA_ID, k->uri.id, k->uri.id_len};
    }
    CK_OBJECT_HANDLE hpub = CK_INVALID_HANDLE, hpriv = CK_INVALID_HANDLE;
    CK_RV rv = k->f->C_GenerateKeyPair(h, &mech, pub, np, priv, nv, &hpub, &hpriv);
    if (rv != CKR_OK) {
        return errf(err, cap, rv == CKR_MECHANISM_INVALID ? -EBADMSG : -EIO,
                    "the token cannot generate a %s key pair (%s, 0x%lx)", hsm_key_type_name(type),
                    ckr_name(rv), (unsigned long)rv);
    }
    return 0;
}

int hsm_pkcs11_generate(struct hsm_key **out, char *err, size_t cap,
                        const struct hsm_pkcs11_options *opt, enum hsm_key_type type)
{
    if (type <= HSM_KEY_NONE || type > HSM_KEY_ED25519) {
        return errf(err, cap, -EINVAL, "no such key type");
    }
    struct p11_key *k = NULL;
    int rc = open_common(&k, err, cap, opt);
    if (rc != 0) {
        return rc;
    }
    CK_SESSION_HANDLE h = CK_INVALID_HANDLE;
    CK_SLOT_ID slot = 0;
    CK_RV rv = find_slot(k, &slot);
    if (rv != CKR_OK) {
        rc = errf(err, cap, -ENOENT, "no token%s%s%s is present", k->uri.has_token ? " '" : "",
                  k->uri.has_token ? k->uri.token : "", k->uri.has_token ? "'" : "");
        goto out;
    }
    rv = k->f->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &h);
    if (rv == CKR_OK) {
        rv = login(k, h);
    }
    if (rv != CKR_OK) {
        rc = errf(err, cap, rv == CKR_PIN_INCORRECT ? -EPERM : -EIO,
                  "the token refused the session or login (%s%s)", ckr_name(rv),
                  rv == CKR_PIN_INCORRECT ? ": wrong token PIN" : "");
        goto out;
    }
    CK_OBJECT_HANDLE objs[1];
    CK_ULONG n = 0;
    rv = find_objects(k, h, CKO_PRIVATE_KEY, objs, 1, &n);
    if (rv != CKR_OK || n != 0) {
        rc = errf(err, cap, -EEXIST,
                  "the token already holds a private key for %s; nothing was "
                  "generated",
                  k->base.label);
        goto out;
    }
    rc = generate_pair(k, err, cap, h, type);
out:
    if (h != CK_INVALID_HANDLE) {
        (void)k->f->C_CloseSession(h);
    }
    if (rc == 0) {
        rc = connect_open(k, err, cap);
    }
    if (rc != 0) {
        p11_free(&k->base);
        return rc;
    }
    ASSERT(k->base.type == type);
    *out = &k->base;
    return 0;
}
