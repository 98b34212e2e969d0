/* hsm.c: key type names and dispatch to the backend's ops table (hsm/internal.h). */
#include <errno.h>
#include <string.h>

#include "base/base.h"
#include "hsm/internal.h"

static const char *const type_names[] = {
    [HSM_KEY_NONE] = "none",       [HSM_KEY_P256] = "p256",       [HSM_KEY_P384] = "p384",
    [HSM_KEY_RSA2048] = "rsa2048", [HSM_KEY_RSA3072] = "rsa3072", [HSM_KEY_ED25519] = "ed25519",
};

int hsm_key_type_parse(enum hsm_key_type *out, const char *name)
{
    ASSERT(out != NULL);
    ASSERT(name != NULL);
    for (size_t i = HSM_KEY_P256; i < ARRAY_LEN(type_names); i++) {
        if (strcmp(name, type_names[i]) == 0) {
            *out = (enum hsm_key_type)i;
            return 0;
        }
    }
    return -EINVAL;
}

const char *hsm_key_type_name(enum hsm_key_type type)
{
    if ((size_t)type >= ARRAY_LEN(type_names)) {
        return type_names[HSM_KEY_NONE];
    }
    return type_names[type];
}

void hsm_key_validate(const struct hsm_key *key)
{
    ASSERT(key != NULL);
    ASSERT(key->ops != NULL);
    ASSERT(key->type > HSM_KEY_NONE);
    ASSERT(key->type <= HSM_KEY_ED25519);
    ASSERT(memchr(key->label, '\0', sizeof(key->label)) != NULL);
}

void hsm_key_free(struct hsm_key *key)
{
    if (key == NULL) {
        return;
    }
    hsm_key_validate(key);
    key->ops->free(key);
}

enum hsm_key_type hsm_key_get_type(const struct hsm_key *key)
{
    hsm_key_validate(key);
    return key->type;
}

const char *hsm_key_get_label(const struct hsm_key *key)
{
    hsm_key_validate(key);
    return key->label;
}

int hsm_key_public_der(const struct hsm_key *key, uint8_t *out, size_t cap, size_t *out_len)
{
    hsm_key_validate(key);
    ASSERT(out != NULL);
    ASSERT(out_len != NULL);
    size_t len = 0;
    int rc = key->ops->public_der(key, out, cap, &len);
    if (rc == 0) {
        ASSERT(len > 0);
        ASSERT(len <= cap);
        *out_len = len;
    }
    return rc;
}

int hsm_key_sign_batch(struct hsm_key *key, struct hsm_sign_item *items, size_t num_items)
{
    hsm_key_validate(key);
    ASSERT(num_items <= HSM_BATCH_MAX);
    ASSERT(items != NULL || num_items == 0);
    for (size_t i = 0; i < num_items; i++) {
        ASSERT(items[i].tbs != NULL || items[i].tbs_len == 0);
        ASSERT(items[i].sig != NULL);
        items[i].sig_len = 0;
        items[i].rc = -EIO;
    }
    if (num_items == 0) {
        return 0;
    }
    int rc = key->ops->sign_batch(key, items, num_items);
    ASSERT(rc == 0 || rc == -EIO || rc == -EAGAIN);
    for (size_t i = 0; i < num_items; i++) {
        ASSERT(items[i].rc != 0 || (items[i].sig_len > 0 && items[i].sig_len <= HSM_SIG_MAX));
        ASSERT(rc != 0 || items[i].rc == 0);
    }
    return rc;
}

uint32_t hsm_key_get_sessions(const struct hsm_key *key)
{
    hsm_key_validate(key);
    return key->sessions;
}

int hsm_key_status(const struct hsm_key *key, const char **out_reason)
{
    hsm_key_validate(key);
    if (key->ops->status == NULL) {
        return 0;
    }
    const char *reason = NULL;
    int rc = key->ops->status(key, &reason);
    ASSERT(rc == 0 || rc == -EAGAIN);
    ASSERT(rc == 0 || reason != NULL);
    if (rc != 0 && out_reason != NULL) {
        *out_reason = reason;
    }
    return rc;
}

void hsm_key_probe(struct hsm_key *key)
{
    hsm_key_validate(key);
    if (key->ops->probe != NULL) {
        key->ops->probe(key);
    }
}
