/* test_phone: signer_phone_e164, the one reading of phone numbers shared by the sign-in and the
 * import (README, Authentication), and signer_country_code_valid. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "base/base.h"
#include "signer/signer.h"

static const char *e164(const char *in, const char *cc)
{
    static char out[STORE_PHONE_MAX + 1];
    int rc = signer_phone_e164(out, sizeof(out), in, cc);
    return rc == 0 ? out : rc == -EINVAL ? "EINVAL" : "E2BIG";
}

Test(signer_phone, one_number_many_spellings)
{
    static const char *const forms[] = {
        "+14255550100",      "14255550100",      "tel:+14255550100", "TEL:+14255550100",
        "+1 (425) 555-0100", "+1-425-555-0100",  "+1.425.555.0100",  "tel:+1-425-555-0100",
        " +1 425 555 0100 ", "1 (425) 555-0100",
    };
    for (size_t i = 0; i < ARRAY_LEN(forms); i++) {
        cr_assert_str_eq(e164(forms[i], ""), "+14255550100", "%s", forms[i]);
        cr_assert_str_eq(e164(forms[i], "1"), "+14255550100", "%s with cc 1", forms[i]);
    }
}

Test(signer_phone, default_country_code)
{
    /* A national number gets the country code; one that already starts with it stays. */
    cr_assert_str_eq(e164("4255550100", "1"), "+14255550100");
    cr_assert_str_eq(e164("(425) 555-0100", "1"), "+14255550100");
    cr_assert_str_eq(e164("14255550100", "1"), "+14255550100");
    /* The trunk prefix 0 goes, the international prefix 00 means '+'. */
    cr_assert_str_eq(e164("030 1234567", "49"), "+49301234567");
    cr_assert_str_eq(e164("301234567", "49"), "+49301234567");
    cr_assert_str_eq(e164("49301234567", "49"), "+49301234567");
    cr_assert_str_eq(e164("0049 30 1234567", "49"), "+49301234567");
    cr_assert_str_eq(e164("0014255550100", "49"), "+14255550100");
    /* '+' wins over the default. */
    cr_assert_str_eq(e164("+44 20 7946 0958", "1"), "+442079460958");
    /* Without a default, digits are read as international without '+'. */
    cr_assert_str_eq(e164("4255550100", ""), "+4255550100");
}

Test(signer_phone, not_phone_numbers)
{
    static const char *const bad[] = {
        "",
        "+",
        "tel:",
        "1234",              /* an extension: too short for E.164 */
        "+123456",           /* 6 digits */
        "+1234567890123456", /* 16 digits */
        "+0123456789",       /* no country code starts with 0 */
        "0123456789",        /* the same without a default country code */
        "+1425555010x",
        "tel:+14255550100;ext=123", /* URI parameters are not read */
        "1+4255550100",
        "++14255550100",
        "+1 425 555 0100\n",
        "sip:+14255550100",
        "\xef\xbc\x91\xef\xbc\x94", /* full-width digits */
        "00000000000000000000000000000000000000000000000000000000000000000001",
    };
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        cr_assert_str_eq(e164(bad[i], ""), "EINVAL", "'%s'", bad[i]);
    }
    cr_assert_str_eq(e164("1234", "1"), "EINVAL", "an extension is no national number");
    cr_assert_str_eq(e164("0", "49"), "EINVAL");
    cr_assert_str_eq(e164("00", "49"), "EINVAL");
    cr_assert_str_eq(e164("000123456789", "49"), "EINVAL", "00 then a 0 country code");
    char small[12];
    cr_assert_eq(signer_phone_e164(small, sizeof(small), "+14255550100", ""), -E2BIG);
    cr_assert_str_eq(small, "");
    char exact[13];
    cr_assert_eq(signer_phone_e164(exact, sizeof(exact), "+14255550100", ""), 0);
}

Test(signer_phone, country_codes)
{
    cr_assert(signer_country_code_valid("1"));
    cr_assert(signer_country_code_valid("49"));
    cr_assert(signer_country_code_valid("358"));
    cr_assert_not(signer_country_code_valid(""));
    cr_assert_not(signer_country_code_valid("0"));
    cr_assert_not(signer_country_code_valid("01"));
    cr_assert_not(signer_country_code_valid("1234"));
    cr_assert_not(signer_country_code_valid("+1"));
    cr_assert_not(signer_country_code_valid("1a"));
}
