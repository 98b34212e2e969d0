/* svc_basic_auth: the Authorization header of HTTP Basic (RFC 7617), parsed from copies that end
 * at a PROT_NONE page. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "base/base.h"
#include "service/internal.h"
#include "tests/util/guard.h"

static int basic(struct svc_credentials *c, const char *value)
{
    size_t len = strlen(value);
    uint8_t *g = guard_copy(value, len); /* no NUL after it: the length is the end */
    memset(c, 0, sizeof(*c));
    int rc = svc_basic_auth(c, (const char *)g, len);
    guard_free(g, len);
    return rc;
}

/* header builds "Basic " + base64(`userpass`, `len` bytes) into `out`. */
static const char *header(char *out, size_t cap, const char *userpass, size_t len)
{
    char b64[512];
    base_b64_encode(b64, sizeof(b64), (const uint8_t *)userpass, len);
    snprintf(out, cap, "Basic %s", b64);
    return out;
}

Test(service_basic, accepts_user_and_pin)
{
    struct svc_credentials c;
    char h[600];
    cr_assert_eq(basic(&c, header(h, sizeof(h), "1001:27182", 10)), 0);
    cr_assert(c.present);
    cr_assert_str_eq(c.user, "1001");
    cr_assert_str_eq(c.pin, "27182");
    cr_assert_eq(basic(&c, "basic MTAwMToyNzE4Mg=="), 0, "the scheme in any case");
    cr_assert_eq(basic(&c, "BASIC    MTAwMToyNzE4Mg=="), 0, "spaces after it");
    cr_assert_str_eq(c.user, "1001");
    cr_assert_eq(basic(&c, header(h, sizeof(h), "+14255550100:", 13)), 0, "an empty PIN");
    cr_assert_str_eq(c.pin, "");
    cr_assert_eq(basic(&c, header(h, sizeof(h), "1001:27:182", 11)), 0, "':' in the PIN");
    cr_assert_str_eq(c.pin, "27:182");
}

Test(service_basic, refuses_malformed_values)
{
    struct svc_credentials c;
    char h[600];
    static const char *const bad[] = {
        "",
        "Basic",
        "Basic ",
        "Bearer MTAwMToyNzE4Mg==",
        "BasicMTAwMToyNzE4Mg==",
        "Basic\tMTAwMToyNzE4Mg==",
        "Basic MTAwMToyNzE4Mg",     /* unpadded */
        "Basic MTAwMToyNzE4Mg== ",  /* trailing space */
        "Basic MTAwMToy NzE4Mg==",  /* space inside */
        "Basic MTAwMToyNzE4Mg==\r", /* control character */
        "Basic !!!!",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cr_assert_eq(basic(&c, bad[i]), -EBADMSG, "%s", bad[i]);
        cr_assert_not(c.present);
    }
    cr_assert_eq(basic(&c, header(h, sizeof(h), "100127182", 9)), -EBADMSG, "no colon");
    cr_assert_eq(basic(&c, header(h, sizeof(h), ":27182", 6)), -EBADMSG, "no user");
    cr_assert_eq(basic(&c, header(h, sizeof(h),
                                  "10\x00"
                                  "1:27182",
                                  8)),
                 -EBADMSG, "NUL");
    char long_user[SIGNER_SOAP_USERNAME_MAX + 8];
    memset(long_user, '1', sizeof(long_user));
    long_user[SIGNER_SOAP_USERNAME_MAX] = ':';
    cr_assert_eq(basic(&c, header(h, sizeof(h), long_user, SIGNER_SOAP_USERNAME_MAX + 3)), 0,
                 "a user of the most bytes");
    long_user[SIGNER_SOAP_USERNAME_MAX] = '1';
    long_user[SIGNER_SOAP_USERNAME_MAX + 1] = ':';
    cr_assert_eq(basic(&c, header(h, sizeof(h), long_user, SIGNER_SOAP_USERNAME_MAX + 4)), -EBADMSG,
                 "a user one byte longer");
    char long_pin[4 + SIGNER_PIN_MAX + 2];
    memcpy(long_pin, "100:", 4);
    memset(long_pin + 4, '7', sizeof(long_pin) - 4);
    cr_assert_eq(basic(&c, header(h, sizeof(h), long_pin, sizeof(long_pin) - 1)), 0);
    cr_assert_eq(strlen(c.pin), SIGNER_PIN_MAX + 1);
    cr_assert_eq(basic(&c, header(h, sizeof(h), long_pin, sizeof(long_pin))), -EBADMSG);
    char big[SVC_BASIC_MAX + 1];
    memset(big, '1', sizeof(big));
    big[1] = ':';
    cr_assert_eq(basic(&c, header(h, sizeof(h), big, sizeof(big))), -EBADMSG, "over the max");
    /* Truncated at every length: malformed, or (cut after a whole quantum past the colon) the
     * same user with a prefix of the PIN, which the PIN check then refuses. */
    const char *full = "Basic MTAwMToyNzE4Mg==";
    size_t ok = 0;
    for (size_t n = 0; n < strlen(full); n++) {
        char cut[32];
        memcpy(cut, full, n);
        cut[n] = '\0';
        int rc = basic(&c, cut);
        cr_assert(rc == 0 || rc == -EBADMSG, "%zu: %s", n, cut);
        if (rc == 0) {
            ok++;
            cr_assert_str_eq(c.user, "1001");
            cr_assert_eq(strncmp(c.pin, "27182", strlen(c.pin)), 0, "%s", c.pin);
            cr_assert_lt(strlen(c.pin), 5);
        }
    }
    cr_assert_eq(ok, 2, "MTAwMToy (1001:2) and MTAwMToyNzE4 (1001:2718)");
}
