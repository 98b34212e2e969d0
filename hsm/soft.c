/* soft.c: the `soft` key backend. A BoringSSL private key loaded from a PKCS#8 DER file of mode
 * 0600.
 *
 * The key struct (and the scratch buffer that holds the PKCS#8 DER while it is written or read)
 * lives in its own anonymous mapping marked MADV_DONTDUMP, and the DER is wiped as soon as the
 * key is parsed. BoringSSL's own copy of the key material (inside EVP_PKEY) is on its heap: we
 * cannot mark that without replacing BoringSSL's allocator for the whole process. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/bytestring.h>
#include <openssl/ec_key.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/mem.h>
#include <openssl/nid.h>
#include <openssl/rsa.h>

#include "base/base.h"
#include "hsm/internal.h"

/* Largest PKCS#8 file we read or write (RSA-3072 is about 1.8 KB). */
#define SOFT_DER_MAX 4096
#define SOFT_RSA_E 65537

struct soft_key {
    struct hsm_key base; /* first: hsm.c casts between the two */
    EVP_PKEY *pkey;
    size_t map_len;
    size_t spki_len;
    uint8_t spki[HSM_SPKI_MAX];
    uint8_t der[SOFT_DER_MAX]; /* scratch for the PKCS#8 DER; all zero outside load/generate */
};

static const struct hsm_key_ops soft_ops;

static struct soft_key *soft_of(const struct hsm_key *key)
{
    ASSERT(key->ops == &soft_ops);
    /* base is the first member, so the cast is exact; the const goes back on in callers. */
    return (struct soft_key *)(uintptr_t)key;
}

static void soft_validate(const struct soft_key *sk)
{
    hsm_key_validate(&sk->base);
    ASSERT(sk->pkey != NULL);
    ASSERT(sk->spki_len > 0);
    ASSERT(sk->spki_len <= sizeof(sk->spki));
}

/* log_bssl logs and clears BoringSSL's error queue: the one place its codes become ours. */
static void log_bssl(const char *event, const char *path)
{
    char buf[256] = "unknown";
    uint32_t e = ERR_get_error();
    if (e != 0) {
        ERR_error_string_n(e, buf, sizeof(buf));
    }
    ERR_clear_error();
    log_err("hsm: %s path=%s err=%s", event, path, buf);
}

static int soft_alloc(struct soft_key **out, const char *path)
{
    long page = sysconf(_SC_PAGESIZE);
    ASSERT(page > 0);
    size_t len = (sizeof(struct soft_key) + (size_t)page - 1) & ~((size_t)page - 1);
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        return -errno;
    }
    struct soft_key *sk = p; /* mmap returns zeroed pages */
    int rc = 0;
    /* Keep the key out of core dumps (STYLE §4). */
    if (madvise(p, len, MADV_DONTDUMP) == -1) {
        rc = -errno;
        goto out;
    }
    sk->map_len = len;
    int n = snprintf(sk->base.label, sizeof(sk->base.label), "soft:%s", path);
    if (n < 0 || (size_t)n >= sizeof(sk->base.label)) {
        rc = -ENAMETOOLONG;
        goto out;
    }
    sk->base.ops = &soft_ops;
    *out = sk;
    p = NULL; /* now the caller's */
out:
    if (p != NULL) {
        int unmapped = munmap(p, len);
        ASSERT(unmapped == 0);
    }
    return rc;
}

static void soft_free(struct hsm_key *key)
{
    struct soft_key *sk = soft_of(key);
    EVP_PKEY_free(sk->pkey); /* BoringSSL wipes key material on free */
    sk->pkey = NULL;
    size_t len = sk->map_len;
    ASSERT(len >= sizeof(*sk));
    OPENSSL_cleanse(sk, len);
    int rc = munmap(sk, len);
    ASSERT(rc == 0);
}

/* type_of maps a parsed key to our type; HSM_KEY_NONE for anything we do not support. */
static enum hsm_key_type type_of(const EVP_PKEY *pkey)
{
    switch (EVP_PKEY_id(pkey)) {
    case EVP_PKEY_EC: {
        const EC_GROUP *g = EC_KEY_get0_group(EVP_PKEY_get0_EC_KEY(pkey));
        int nid = g != NULL ? EC_GROUP_get_curve_name(g) : NID_undef;
        return nid == NID_X9_62_prime256v1 ? HSM_KEY_P256
               : nid == NID_secp384r1      ? HSM_KEY_P384
                                           : HSM_KEY_NONE;
    }
    case EVP_PKEY_RSA: {
        const RSA *rsa = EVP_PKEY_get0_RSA(pkey);
        if (!BN_is_word(RSA_get0_e(rsa), SOFT_RSA_E)) {
            return HSM_KEY_NONE;
        }
        unsigned bits = RSA_bits(rsa);
        return bits == 2048 ? HSM_KEY_RSA2048 : bits == 3072 ? HSM_KEY_RSA3072 : HSM_KEY_NONE;
    }
    case EVP_PKEY_ED25519:
        return HSM_KEY_ED25519;
    default:
        return HSM_KEY_NONE;
    }
}

/* finish_load fills the public half of a key whose pkey is set. 0 or -EBADMSG. */
static int finish_load(struct soft_key *sk)
{
    ASSERT(sk->pkey != NULL);
    sk->base.type = type_of(sk->pkey);
    if (sk->base.type == HSM_KEY_NONE) {
        log_err("hsm: key_unsupported label=%s", sk->base.label);
        return -EBADMSG;
    }
    CBB cbb;
    size_t len = 0;
    if (!CBB_init_fixed(&cbb, sk->spki, sizeof(sk->spki)) ||
        !EVP_marshal_public_key(&cbb, sk->pkey) || !CBB_finish(&cbb, NULL, &len)) {
        log_bssl("public_key_marshal", sk->base.label);
        return -EBADMSG;
    }
    sk->spki_len = len;
    soft_validate(sk);
    return 0;
}

static EVP_PKEY *keygen_ec(int nid)
{
    EVP_PKEY *pkey = EVP_PKEY_new();
    EC_KEY *ec = EC_KEY_new_by_curve_name(nid);
    if (pkey == NULL || ec == NULL || !EC_KEY_generate_key(ec) ||
        !EVP_PKEY_assign_EC_KEY(pkey, ec)) {
        EC_KEY_free(ec);
        EVP_PKEY_free(pkey);
        return NULL;
    }
    return pkey; /* owns ec */
}

static EVP_PKEY *keygen_rsa(int bits)
{
    EVP_PKEY *pkey = EVP_PKEY_new();
    RSA *rsa = RSA_new();
    BIGNUM *e = BN_new();
    int ok = pkey != NULL && rsa != NULL && e != NULL && BN_set_word(e, SOFT_RSA_E) &&
             RSA_generate_key_ex(rsa, bits, e, NULL) && EVP_PKEY_assign_RSA(pkey, rsa);
    BN_free(e);
    if (!ok) {
        RSA_free(rsa);
        EVP_PKEY_free(pkey);
        return NULL;
    }
    return pkey; /* owns rsa */
}

static EVP_PKEY *keygen_ed25519(void)
{
    EVP_PKEY *pkey = NULL;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, NULL);
    if (ctx == NULL || !EVP_PKEY_keygen_init(ctx) || !EVP_PKEY_keygen(ctx, &pkey)) {
        EVP_PKEY_free(pkey);
        pkey = NULL;
    }
    EVP_PKEY_CTX_free(ctx);
    return pkey;
}

static EVP_PKEY *keygen(enum hsm_key_type type)
{
    switch (type) {
    case HSM_KEY_P256:
        return keygen_ec(NID_X9_62_prime256v1);
    case HSM_KEY_P384:
        return keygen_ec(NID_secp384r1);
    case HSM_KEY_RSA2048:
        return keygen_rsa(2048);
    case HSM_KEY_RSA3072:
        return keygen_rsa(3072);
    case HSM_KEY_ED25519:
        return keygen_ed25519();
    case HSM_KEY_NONE:
        break;
    }
    ASSERT(false && "unreachable key type");
    return NULL;
}

int hsm_soft_generate(struct hsm_key **out, const char *path, enum hsm_key_type type)
{
    ASSERT(out != NULL);
    ASSERT(path != NULL);
    if (type <= HSM_KEY_NONE || type > HSM_KEY_ED25519) {
        return -EINVAL;
    }
    struct soft_key *sk = NULL;
    int rc = soft_alloc(&sk, path);
    if (rc != 0) {
        goto out;
    }
    sk->pkey = keygen(type);
    if (sk->pkey == NULL) {
        log_bssl("keygen", path);
        rc = -EIO;
        goto out;
    }
    CBB cbb;
    size_t len = 0;
    if (!CBB_init_fixed(&cbb, sk->der, sizeof(sk->der)) ||
        !EVP_marshal_private_key(&cbb, sk->pkey) || !CBB_finish(&cbb, NULL, &len)) {
        log_bssl("private_key_marshal", path);
        rc = -EIO;
        goto out;
    }
    rc = base_file_write_atomic(path, sk->der, len, 0600, true);
    OPENSSL_cleanse(sk->der, sizeof(sk->der));
    if (rc != 0) {
        goto out;
    }
    rc = finish_load(sk);
    ASSERT(rc != 0 || sk->base.type == type);
out:
    if (rc != 0 && sk != NULL) {
        soft_free(&sk->base);
        sk = NULL;
    }
    if (rc == 0) {
        *out = &sk->base;
    }
    return rc;
}

/* read_key reads the 0600 file at `path` into sk->der. 0, -ENOENT, -EPERM, -EBADMSG, -errno. */
static int read_key(struct soft_key *sk, size_t *out_len, const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd == -1) {
        return errno == ELOOP ? -EPERM : -errno;
    }
    struct stat st;
    int rc = 0;
    size_t len = 0;
    if (fstat(fd, &st) == -1) {
        rc = -errno;
    } else if (!S_ISREG(st.st_mode)) {
        rc = -EBADMSG;
    } else if ((st.st_mode & 077) != 0) {
        log_err("hsm: key_file_mode path=%s mode=%04o want=0600", path,
                (unsigned)(st.st_mode & 07777));
        rc = -EPERM;
    }
    while (rc == 0) {
        if (len == sizeof(sk->der)) {
            rc = -EBADMSG; /* larger than any key we write */
            break;
        }
        ssize_t r = read(fd, sk->der + len, sizeof(sk->der) - len);
        if (r == -1 && errno == EINTR) {
            continue;
        }
        if (r == -1) {
            rc = -errno;
        } else if (r == 0) {
            break;
        } else {
            len += (size_t)r;
        }
    }
    if (close(fd) == -1 && rc == 0) {
        rc = -errno;
    }
    if (rc == 0) {
        *out_len = len;
    }
    return rc;
}

/* parse_key parses the PKCS#8 key that read_key left in sk->der, and wipes sk->der whatever the
 * outcome. 0 or -EBADMSG. */
static int parse_key(struct soft_key *sk, size_t len, const char *path)
{
    CBS cbs;
    CBS_init(&cbs, sk->der, len);
    sk->pkey = EVP_parse_private_key(&cbs);
    int rc = 0;
    if (sk->pkey == NULL || CBS_len(&cbs) != 0) {
        log_bssl("private_key_parse", path);
        rc = -EBADMSG;
    }
    OPENSSL_cleanse(sk->der, sizeof(sk->der));
    return rc;
}

int hsm_soft_open(struct hsm_key **out, const char *path)
{
    ASSERT(out != NULL);
    ASSERT(path != NULL);
    struct soft_key *sk = NULL;
    size_t len = 0;
    int rc = soft_alloc(&sk, path);
    if (rc != 0) {
        goto out;
    }
    rc = read_key(sk, &len, path);
    if (rc != 0) {
        goto out; /* soft_free wipes what was read */
    }
    rc = parse_key(sk, len, path);
    if (rc != 0) {
        goto out;
    }
    rc = finish_load(sk);
out:
    if (rc != 0 && sk != NULL) {
        soft_free(&sk->base);
        sk = NULL;
    }
    if (rc == 0) {
        *out = &sk->base;
    }
    return rc;
}

static int soft_public_der(const struct hsm_key *key, uint8_t *out, size_t cap, size_t *out_len)
{
    const struct soft_key *sk = soft_of(key);
    soft_validate(sk);
    if (cap < sk->spki_len) {
        return -E2BIG;
    }
    memcpy(out, sk->spki, sk->spki_len);
    *out_len = sk->spki_len;
    return 0;
}

/* sign_one signs one item. Thread-safe: the EVP_PKEY is only read (BoringSSL's RSA caches lock
 * internally), and each call has its own EVP_MD_CTX. */
static int sign_one(const struct soft_key *sk, struct hsm_sign_item *it)
{
    const EVP_MD *md = sk->base.type == HSM_KEY_P384      ? EVP_sha384()
                       : sk->base.type == HSM_KEY_ED25519 ? NULL /* PureEdDSA */
                                                          : EVP_sha256();
    EVP_MD_CTX ctx;
    EVP_MD_CTX_init(&ctx);
    size_t len = HSM_SIG_MAX;
    int ok = EVP_DigestSignInit(&ctx, NULL, md, NULL, sk->pkey) &&
             EVP_DigestSign(&ctx, it->sig, &len, it->tbs, it->tbs_len);
    EVP_MD_CTX_cleanup(&ctx);
    if (!ok) {
        log_bssl("sign", sk->base.label);
        return -EIO;
    }
    ASSERT(len > 0);
    ASSERT(len <= HSM_SIG_MAX);
    it->sig_len = len;
    return 0;
}

static int soft_sign_batch(struct hsm_key *key, struct hsm_sign_item *items, size_t num_items)
{
    const struct soft_key *sk = soft_of(key);
    soft_validate(sk);
    int rc = 0;
    for (size_t i = 0; i < num_items; i++) {
        items[i].rc = sign_one(sk, &items[i]);
        if (items[i].rc != 0) {
            rc = -EIO;
        }
    }
    return rc;
}

static const struct hsm_key_ops soft_ops = {
    .public_der = soft_public_der,
    .sign_batch = soft_sign_batch,
    .free = soft_free,
};
