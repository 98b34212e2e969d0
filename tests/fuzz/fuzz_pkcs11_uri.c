/* libFuzzer harness for hsm_pkcs11_uri_parse: any bytes either fail with -EINVAL and a reason,
 * or parse to a URI whose printed form (without the PIN) parses back to the same attributes. */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "base/base.h"
#include "hsm/hsm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct hsm_pkcs11_uri u, again;
    static char out[3 * HSM_P11_URI_MAX + 64];
    const char *why = NULL;
    int rc = hsm_pkcs11_uri_parse(&u, &why, (const char *)data, size);
    ASSERT(rc == 0 || rc == -EINVAL);
    ASSERT(rc == 0 || why != NULL);
    if (rc != 0) {
        return 0;
    }
    ASSERT(u.has_object || u.has_id);
    ASSERT(!(u.has_pin_value && u.has_pin_source));
    ASSERT(memchr(u.token, '\0', sizeof(u.token)) != NULL);
    ASSERT(memchr(u.object, '\0', sizeof(u.object)) != NULL);
    ASSERT(u.id_len <= sizeof(u.id));
    bool had_pin = u.has_pin_value;
    if (hsm_pkcs11_uri_format(out, sizeof(out), &u) != 0) {
        return 0;
    }
    ASSERT(strncmp(out, "pkcs11:", 7) == 0);
    rc = hsm_pkcs11_uri_parse(&again, &why, out, strlen(out));
    ASSERT(rc == 0 || (rc == -EINVAL && strlen(out) > HSM_P11_URI_MAX));
    if (rc == 0) {
        ASSERT(!again.has_pin_value); /* the printed URI never holds the PIN */
        ASSERT(again.has_token == u.has_token && strcmp(again.token, u.token) == 0);
        ASSERT(again.has_object == u.has_object && strcmp(again.object, u.object) == 0);
        ASSERT(again.id_len == u.id_len && memcmp(again.id, u.id, u.id_len) == 0);
        ASSERT(again.has_slot_id == u.has_slot_id && again.slot_id == u.slot_id);
        ASSERT(strcmp(again.pin_source, u.pin_source) == 0);
    }
    (void)had_pin;
    hsm_pkcs11_uri_wipe(&u);
    hsm_pkcs11_uri_wipe(&again);
    return 0;
}
