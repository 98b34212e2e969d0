/* PIN policy and verifiers (README, PINs and lockout). PINs are never stored: the store keeps
 * HMAC-SHA-256(pin key, uri || 0 || pin), keyed by a 32-byte secret that lives in a 0600 file
 * beside the LMDB environment, never in LMDB, so a copy of the database alone does not allow an
 * offline guess of 5-digit PINs. */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/digest.h>
#include <openssl/hmac.h>
#include <openssl/mem.h>
#include <openssl/rand.h>

#include "base/base.h"
#include "signer/signer.h"

struct signer_pin_key {
    uint8_t key[SIGNER_PIN_KEY_LEN];
};

void signer_pin_policy_default(struct signer_pin_policy *out)
{
    ASSERT(out != NULL);
    *out = (struct signer_pin_policy){
        .min_len = 5,
        .window_s = 30 * 60,
        .window_failures_max = 25,
        .window_failures_max_short = 10,
        .lock_s = 60 * 60,
        .total_failures_max = 1000,
        .total_failures_max_short = 100,
    };
}

/* A run of one repeated digit, or digits that go up or down by one (with 9->0 and 0->9 wrap, as
 * "67890" is typed like a run on a keypad). */
static bool pin_is_trivial_run(const char *pin, size_t len)
{
    bool same = true;
    bool up = true;
    bool down = true;
    for (size_t i = 1; i < len; i++) {
        int prev = pin[i - 1] - '0';
        int cur = pin[i] - '0';
        same = same && cur == prev;
        up = up && cur == (prev + 1) % 10;
        down = down && cur == (prev + 9) % 10;
    }
    return same || up || down;
}

/* The PIN equals the extension, or the last digits of the phone number. */
static bool pin_matches_number(const char *pin, size_t len, const char *ext, const char *phone)
{
    if (ext != NULL && ext[0] != '\0' && strcmp(pin, ext) == 0) {
        return true;
    }
    size_t phone_len = phone != NULL ? strlen(phone) : 0;
    return phone_len >= len && memcmp(phone + phone_len - len, pin, len) == 0;
}

int signer_pin_policy_check(const struct signer_pin_policy *policy, enum signer_reject *out_reason,
                            const char *pin, const char *ext, const char *phone)
{
    ASSERT(policy != NULL);
    ASSERT(out_reason != NULL);
    ASSERT(pin != NULL);
    size_t len = strnlen(pin, SIGNER_PIN_MAX + 1);
    enum signer_reject reason = SIGNER_REJECT_NONE;
    if (len < policy->min_len || len > SIGNER_PIN_MAX) {
        reason = SIGNER_REJECT_PIN_LENGTH;
    } else if (strspn(pin, "0123456789") != len) {
        reason = SIGNER_REJECT_PIN_DIGITS;
    } else if (pin_is_trivial_run(pin, len)) {
        reason = SIGNER_REJECT_PIN_PATTERN;
    } else if (pin_matches_number(pin, len, ext, phone)) {
        reason = SIGNER_REJECT_PIN_EXTENSION;
    }
    if (reason != SIGNER_REJECT_NONE) {
        *out_reason = reason;
        return -EPERM;
    }
    return 0;
}

static struct signer_pin_key *pin_key_alloc(void)
{
    /* A page of its own, so it can be excluded from core dumps and locked in memory. */
    void *p = mmap(NULL, sizeof(struct signer_pin_key), PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        return NULL;
    }
    if (madvise(p, sizeof(struct signer_pin_key), MADV_DONTDUMP) == -1) {
        log_warn("signer: pin_key_madvise_failed errno=%d", errno);
    }
    return p;
}

void signer_pin_key_free(struct signer_pin_key *key)
{
    if (key == NULL) {
        return;
    }
    OPENSSL_cleanse(key, sizeof(*key));
    int rc = munmap(key, sizeof(*key));
    ASSERT(rc == 0);
}

static int pin_key_create(const char *path)
{
    uint8_t fresh[SIGNER_PIN_KEY_LEN];
    RAND_bytes(fresh, sizeof(fresh));
    int rc = base_file_write_atomic(path, fresh, sizeof(fresh), 0600, true);
    OPENSSL_cleanse(fresh, sizeof(fresh));
    if (rc == 0) {
        log_info("signer: pin_key_created path=%s", path);
    }
    return rc == -EEXIST ? 0 : rc; /* Another process created it first: use theirs. */
}

int signer_pin_key_load(struct signer_pin_key **out, const char *path, bool create)
{
    ASSERT(out != NULL);
    ASSERT(path != NULL);
    struct stat st;
    if (stat(path, &st) == -1) {
        if (errno != ENOENT || !create) {
            return -errno;
        }
        int rc = pin_key_create(path);
        if (rc != 0) {
            return rc;
        }
        if (stat(path, &st) == -1) {
            return -errno;
        }
    }
    if ((st.st_mode & 077) != 0) {
        log_err("signer: pin_key_exposed path=%s mode=%o action=\"chmod 600 the file\"", path,
                st.st_mode & 0777);
        return -EPERM;
    }
    struct signer_pin_key *key = pin_key_alloc();
    if (key == NULL) {
        return -ENOMEM;
    }
    size_t len = 0;
    int rc = base_file_read(key->key, &len, sizeof(key->key), path);
    if (rc == 0 && len != sizeof(key->key)) {
        rc = -EBADMSG;
    }
    if (rc == -E2BIG) {
        rc = -EBADMSG;
    }
    if (rc != 0) {
        signer_pin_key_free(key);
        return rc;
    }
    *out = key;
    return 0;
}

void signer_pin_verifier(const struct signer_pin_key *key, uint8_t out[STORE_VERIFIER_LEN],
                         const char *uri, const char *pin)
{
    ASSERT(key != NULL);
    ASSERT(uri != NULL);
    ASSERT(pin != NULL);
    HMAC_CTX ctx;
    HMAC_CTX_init(&ctx);
    unsigned out_len = 0;
    /* The URI binds the verifier to its user: equal PINs of two users give unrelated values.
     * The NUL separates the fields so ("ab","1") and ("a","b1") cannot collide. */
    int ok = HMAC_Init_ex(&ctx, key->key, sizeof(key->key), EVP_sha256(), NULL) &&
             HMAC_Update(&ctx, (const uint8_t *)uri, strlen(uri) + 1) &&
             HMAC_Update(&ctx, (const uint8_t *)pin, strlen(pin)) &&
             HMAC_Final(&ctx, out, &out_len);
    HMAC_CTX_cleanup(&ctx);
    ASSERT(ok == 1);
    ASSERT(out_len == STORE_VERIFIER_LEN);
}

void signer_pin_key_id(const struct signer_pin_key *key, char out[2 * STORE_PIN_KEY_ID_LEN + 1])
{
    ASSERT(key != NULL);
    ASSERT(out != NULL);
    uint8_t mac[STORE_VERIFIER_LEN];
    static_assert(STORE_PIN_KEY_ID_LEN <= STORE_VERIFIER_LEN, "the id is a prefix of the MAC");
    signer_pin_verifier(key, mac, "~certprov pin key id", "");
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < STORE_PIN_KEY_ID_LEN; i++) {
        out[2 * i] = hex[mac[i] >> 4];
        out[2 * i + 1] = hex[mac[i] & 15];
    }
    out[2 * STORE_PIN_KEY_ID_LEN] = '\0';
    OPENSSL_cleanse(mac, sizeof(mac));
}

bool signer_pin_matches(const struct signer_pin_key *key, const uint8_t *verifier, const char *uri,
                        const char *pin)
{
    ASSERT(verifier != NULL);
    uint8_t computed[STORE_VERIFIER_LEN];
    signer_pin_verifier(key, computed, uri, pin);
    bool match = CRYPTO_memcmp(computed, verifier, sizeof(computed)) == 0;
    OPENSSL_cleanse(computed, sizeof(computed));
    return match;
}

enum signer_lockout_state signer_lockout_check(const struct store_lockout *l, int64_t now_s)
{
    ASSERT(l != NULL);
    if (l->admin_locked) {
        return SIGNER_LOCKOUT_ADMIN;
    }
    return l->locked_until_s > now_s ? SIGNER_LOCKOUT_TEMPORARY : SIGNER_LOCKOUT_OPEN;
}

/* locked_fail counts a wrong PIN of a user who is locked already: toward the total only, so
 * that guesses while locked are bounded by total_failures_max, and without touching the window or
 * the lock's end (guessing neither extends nor shortens a lock). */
static void locked_fail(struct store_lockout *l, uint32_t total_max, int64_t now_s)
{
    l->total_failures++;
    l->last_failure_s = now_s;
    if (l->total_failures >= total_max) {
        l->admin_locked = true;
    }
}

bool signer_lockout_fail(const struct signer_pin_policy *policy, struct store_lockout *l,
                         uint8_t pin_len, int64_t now_s)
{
    ASSERT(policy != NULL);
    ASSERT(l != NULL);
    bool short_pin = pin_len <= 4;
    uint32_t window_max =
        short_pin ? policy->window_failures_max_short : policy->window_failures_max;
    uint32_t total_max = short_pin ? policy->total_failures_max_short : policy->total_failures_max;
    enum signer_lockout_state before = signer_lockout_check(l, now_s);
    if (before != SIGNER_LOCKOUT_OPEN) {
        locked_fail(l, total_max, now_s);
        return before != SIGNER_LOCKOUT_ADMIN && l->admin_locked;
    }
    if (l->window_start_s == 0 || now_s - l->window_start_s >= (int64_t)policy->window_s) {
        l->window_start_s = now_s;
        l->window_failures = 0;
    }
    l->window_failures++;
    l->total_failures++;
    l->last_failure_s = now_s;
    if (l->total_failures >= total_max) {
        l->admin_locked = true;
    } else if (l->window_failures >= window_max) {
        l->locked_until_s = now_s + (int64_t)policy->lock_s;
        /* A new window after the lock: the next failure does not re-lock at once. */
        l->window_failures = 0;
        l->window_start_s = 0;
    }
    ASSERT(l->window_failures <= window_max);
    return signer_lockout_check(l, now_s) != SIGNER_LOCKOUT_OPEN;
}

bool signer_lockout_success(struct store_lockout *l)
{
    ASSERT(l != NULL);
    if (l->window_failures == 0 && l->window_start_s == 0) {
        return false;
    }
    l->window_failures = 0;
    l->window_start_s = 0;
    return true;
}

void signer_pin_key_derive(const struct signer_pin_key *key, uint8_t out[32], const char *label)
{
    ASSERT(key != NULL);
    ASSERT(label != NULL);
    unsigned len = 0;
    uint8_t *r = HMAC(EVP_sha256(), key->key, sizeof(key->key), (const uint8_t *)label,
                      strlen(label), out, &len);
    ASSERT(r != NULL);
    ASSERT(len == 32);
}
