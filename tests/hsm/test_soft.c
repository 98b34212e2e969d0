/* Tests of the soft key backend: generate, open, sign batches, file policy, type names. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bytestring.h>
#include <openssl/evp.h>

#include "base/base.h"
#include "hsm/hsm.h"
#include "tests/util/tmpdir.h"

static char tmpdir[TMPDIR_PATH_MAX];
static char keypath[128];

static void setup(void)
{
    tmpdir_create(tmpdir, sizeof(tmpdir), "certprov-hsm");
    snprintf(keypath, sizeof(keypath), "%s/key.der", tmpdir);
}

static void teardown(void)
{
    tmpdir_remove(tmpdir);
}

static const enum hsm_key_type all_types[] = {HSM_KEY_P256, HSM_KEY_P384, HSM_KEY_RSA2048,
                                              HSM_KEY_RSA3072, HSM_KEY_ED25519};

static const EVP_MD *md_of(enum hsm_key_type t)
{
    return t == HSM_KEY_P384 ? EVP_sha384() : t == HSM_KEY_ED25519 ? NULL : EVP_sha256();
}

static void check_sign_verify(struct hsm_key *key)
{
    enum { N = 7 };
    uint8_t msgs[N][64];
    uint8_t sigs[N][HSM_SIG_MAX];
    struct hsm_sign_item items[N];
    for (size_t i = 0; i < N; i++) {
        memset(msgs[i], (int)i, sizeof(msgs[i]));
        items[i] = (struct hsm_sign_item){.tbs = msgs[i], .tbs_len = 10 + i, .sig = sigs[i]};
    }
    cr_assert_eq(hsm_key_sign_batch(key, items, N), 0);

    uint8_t spki[HSM_SPKI_MAX];
    size_t spki_len = 0;
    cr_assert_eq(hsm_key_public_der(key, spki, sizeof(spki), &spki_len), 0);
    CBS cbs;
    CBS_init(&cbs, spki, spki_len);
    EVP_PKEY *pub = EVP_parse_public_key(&cbs);
    cr_assert_not_null(pub);
    cr_assert_eq(CBS_len(&cbs), 0);
    for (size_t i = 0; i < N; i++) {
        cr_assert_eq(items[i].rc, 0);
        cr_assert_gt(items[i].sig_len, 0);
        EVP_MD_CTX ctx;
        EVP_MD_CTX_init(&ctx);
        cr_assert(EVP_DigestVerifyInit(&ctx, NULL, md_of(hsm_key_get_type(key)), NULL, pub));
        cr_assert(EVP_DigestVerify(&ctx, sigs[i], items[i].sig_len, msgs[i], items[i].tbs_len),
                  "item %zu does not verify", i);
        /* and not for another message */
        cr_assert(
            !EVP_DigestVerify(&ctx, sigs[i], items[i].sig_len, msgs[i], items[i].tbs_len + 1));
        EVP_MD_CTX_cleanup(&ctx);
    }
    EVP_PKEY_free(pub);
    cr_assert_eq(hsm_key_public_der(key, spki, spki_len - 1, &spki_len), -E2BIG);
}

Test(hsm_soft, every_type_generates_opens_and_signs, .init = setup, .fini = teardown)
{
    for (size_t t = 0; t < ARRAY_LEN(all_types); t++) {
        char path[160];
        snprintf(path, sizeof(path), "%s/%s.der", tmpdir, hsm_key_type_name(all_types[t]));
        struct hsm_key *gen = NULL;
        cr_assert_eq(hsm_soft_generate(&gen, path, all_types[t]), 0);
        cr_assert_eq(hsm_key_get_type(gen), all_types[t]);
        struct stat st;
        cr_assert_eq(stat(path, &st), 0);
        cr_assert_eq(st.st_mode & 07777, 0600);

        struct hsm_key *key = NULL;
        cr_assert_eq(hsm_soft_open(&key, path), 0);
        cr_assert_eq(hsm_key_get_type(key), all_types[t]);
        char want[200];
        snprintf(want, sizeof(want), "soft:%s", path);
        cr_assert_str_eq(hsm_key_get_label(key), want);

        /* the public key of the loaded key is the generated one */
        uint8_t a[HSM_SPKI_MAX], b[HSM_SPKI_MAX];
        size_t a_len = 0, b_len = 0;
        cr_assert_eq(hsm_key_public_der(gen, a, sizeof(a), &a_len), 0);
        cr_assert_eq(hsm_key_public_der(key, b, sizeof(b), &b_len), 0);
        cr_assert_eq(a_len, b_len);
        cr_assert_eq(memcmp(a, b, a_len), 0);

        check_sign_verify(key);
        check_sign_verify(gen);
        hsm_key_free(gen);
        hsm_key_free(key);
    }
}

Test(hsm_soft, empty_batch_and_free_null)
{
    hsm_key_free(NULL);
}

Test(hsm_soft, generate_refuses_existing_file, .init = setup, .fini = teardown)
{
    struct hsm_key *key = NULL;
    cr_assert_eq(hsm_soft_generate(&key, keypath, HSM_KEY_P256), 0);
    cr_assert_eq(hsm_key_sign_batch(key, NULL, 0), 0);
    hsm_key_free(key);
    uint8_t before[4096], after[4096];
    size_t before_len = 0, after_len = 0;
    cr_assert_eq(base_file_read(before, &before_len, sizeof(before), keypath), 0);
    key = NULL;
    cr_assert_eq(hsm_soft_generate(&key, keypath, HSM_KEY_ED25519), -EEXIST);
    cr_assert_null(key);
    cr_assert_eq(base_file_read(after, &after_len, sizeof(after), keypath), 0);
    cr_assert_eq(before_len, after_len);
    cr_assert_eq(memcmp(before, after, before_len), 0);
}

Test(hsm_soft, generate_refuses_bad_type, .init = setup, .fini = teardown)
{
    struct hsm_key *key = NULL;
    cr_assert_eq(hsm_soft_generate(&key, keypath, HSM_KEY_NONE), -EINVAL);
    cr_assert_eq(hsm_soft_generate(&key, keypath, (enum hsm_key_type)99), -EINVAL);
    cr_assert_null(key);
    cr_assert_eq(access(keypath, F_OK), -1);
}

Test(hsm_soft, open_refuses_group_or_other_access, .init = setup, .fini = teardown)
{
    struct hsm_key *key = NULL;
    cr_assert_eq(hsm_soft_generate(&key, keypath, HSM_KEY_P256), 0);
    hsm_key_free(key);
    const mode_t bad[] = {0644, 0640, 0604, 0602, 0620, 0660};
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        cr_assert_eq(chmod(keypath, bad[i]), 0);
        key = NULL;
        cr_assert_eq(hsm_soft_open(&key, keypath), -EPERM, "mode %o", (unsigned)bad[i]);
        cr_assert_null(key);
    }
    cr_assert_eq(chmod(keypath, 0400), 0);
    cr_assert_eq(hsm_soft_open(&key, keypath), 0);
    hsm_key_free(key);
}

Test(hsm_soft, open_missing_is_enoent, .init = setup, .fini = teardown)
{
    struct hsm_key *key = NULL;
    cr_assert_eq(hsm_soft_open(&key, keypath), -ENOENT);
    cr_assert_null(key);
}

static void write_file(const char *path, const void *data, size_t len)
{
    (void)unlink(path);
    cr_assert_eq(base_file_write_atomic(path, data, len, 0600, false), 0);
}

Test(hsm_soft, open_damaged_is_ebadmsg, .init = setup, .fini = teardown)
{
    struct hsm_key *key = NULL;
    cr_assert_eq(hsm_soft_generate(&key, keypath, HSM_KEY_P256), 0);
    hsm_key_free(key);
    uint8_t der[4096];
    size_t len = 0;
    cr_assert_eq(base_file_read(der, &len, sizeof(der), keypath), 0);

    /* every truncation */
    for (size_t cut = 0; cut < len; cut++) {
        write_file(keypath, der, cut);
        key = NULL;
        cr_assert_eq(hsm_soft_open(&key, keypath), -EBADMSG, "cut at %zu", cut);
        cr_assert_null(key);
    }
    /* trailing garbage */
    uint8_t longer[4097];
    memcpy(longer, der, len);
    longer[len] = 0;
    write_file(keypath, longer, len + 1);
    cr_assert_eq(hsm_soft_open(&key, keypath), -EBADMSG);
    /* oversized file */
    memset(longer, 0x30, sizeof(longer));
    write_file(keypath, longer, sizeof(longer));
    cr_assert_eq(hsm_soft_open(&key, keypath), -EBADMSG);
    /* a flipped tag byte */
    der[0] ^= 0x01;
    write_file(keypath, der, len);
    cr_assert_eq(hsm_soft_open(&key, keypath), -EBADMSG);
}

Test(hsm_soft, open_refuses_directory_and_symlink, .init = setup, .fini = teardown)
{
    struct hsm_key *key = NULL;
    cr_assert_lt(hsm_soft_open(&key, tmpdir), 0);
    cr_assert_eq(hsm_soft_generate(&key, keypath, HSM_KEY_ED25519), 0);
    hsm_key_free(key);
    char link_path[160];
    snprintf(link_path, sizeof(link_path), "%s/link", tmpdir);
    cr_assert_eq(symlink(keypath, link_path), 0);
    key = NULL;
    cr_assert_eq(hsm_soft_open(&key, link_path), -EPERM);
    cr_assert_null(key);
}

Test(hsm_type, names_round_trip)
{
    for (size_t t = 0; t < ARRAY_LEN(all_types); t++) {
        enum hsm_key_type out = HSM_KEY_NONE;
        cr_assert_eq(hsm_key_type_parse(&out, hsm_key_type_name(all_types[t])), 0);
        cr_assert_eq(out, all_types[t]);
    }
    cr_assert_str_eq(hsm_key_type_name(HSM_KEY_RSA3072), "rsa3072");
    cr_assert_str_eq(hsm_key_type_name(HSM_KEY_NONE), "none");
    cr_assert_str_eq(hsm_key_type_name((enum hsm_key_type)42), "none");
}

Test(hsm_type, parse_refuses_unknown)
{
    const char *bad[] = {"", "none", "P256", "p-256", "rsa4096", "ed448", "p2566", "rsa"};
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        enum hsm_key_type out = HSM_KEY_P384;
        cr_assert_eq(hsm_key_type_parse(&out, bad[i]), -EINVAL, "%s", bad[i]);
        cr_assert_eq(out, HSM_KEY_P384);
    }
}

Test(hsm_key, sign_batch_over_max_asserts, .signal = SIGABRT, .init = setup, .fini = teardown)
{
    struct hsm_key *key = NULL;
    cr_assert_eq(hsm_soft_generate(&key, keypath, HSM_KEY_P256), 0);
    static struct hsm_sign_item items[HSM_BATCH_MAX + 1];
    teardown(); /* .fini does not run after the abort */
    (void)hsm_key_sign_batch(key, items, HSM_BATCH_MAX + 1);
}

/* ---- several threads signing with one key ---- */

#define THREADS 4
#define ROUNDS 8

static void *sign_rounds(void *arg)
{
    struct hsm_key *key = arg;
    for (int r = 0; r < ROUNDS; r++) {
        check_sign_verify(key);
    }
    return NULL;
}

Test(hsm_soft, concurrent_batches_share_one_key, .init = setup, .fini = teardown)
{
    const enum hsm_key_type types[] = {HSM_KEY_P256, HSM_KEY_RSA2048, HSM_KEY_ED25519};
    for (size_t t = 0; t < ARRAY_LEN(types); t++) {
        char path[160];
        snprintf(path, sizeof(path), "%s/%zu.der", tmpdir, t);
        struct hsm_key *key = NULL;
        cr_assert_eq(hsm_soft_generate(&key, path, types[t]), 0);
        pthread_t th[THREADS];
        for (int i = 0; i < THREADS; i++) {
            cr_assert_eq(pthread_create(&th[i], NULL, sign_rounds, key), 0);
        }
        for (int i = 0; i < THREADS; i++) {
            cr_assert_eq(pthread_join(th[i], NULL), 0);
        }
        hsm_key_free(key);
    }
}
