/* phone: phone numbers as people and phones write them, read into the one form the store keeps
 * (E.164, README, Authentication), so that stored and looked-up forms meet ([MS-OCAUTHWS] leaves
 * the form of the PIN sign-in's phone number to the deployment; Lync's LineUri is a tel: URI). */
#include <errno.h>
#include <string.h>
#include <strings.h>

#include "base/base.h"
#include "signer/signer.h"

/* RFC 3966 §3 visual separators, and the space people type. */
static bool visual_separator(char ch)
{
    return ch == ' ' || ch == '-' || ch == '.' || ch == '(' || ch == ')';
}

static bool is_digit(char ch)
{
    return ch >= '0' && ch <= '9';
}

bool signer_country_code_valid(const char *cc)
{
    ASSERT(cc != NULL);
    size_t n = strlen(cc);
    return n >= 1 && n <= SIGNER_COUNTRY_CODE_MAX && strspn(cc, "0123456789") == n && cc[0] != '0';
}

int signer_phone_e164(char *out, size_t cap, const char *in, const char *default_cc)
{
    ASSERT(out != NULL && cap > 0);
    ASSERT(in != NULL);
    ASSERT(default_cc != NULL);
    ASSERT(default_cc[0] == '\0' || signer_country_code_valid(default_cc));
    out[0] = '\0';
    if (strncasecmp(in, "tel:", 4) == 0) {
        in += 4;
    }
    /* The digits, without separators; '+' only first. Bounded: at most 2 * the E.164 maximum of
     * digits are kept, a longer number is refused. */
    char digits[SIGNER_PHONE_DIGITS_MAX * 2 + 1];
    size_t nd = 0;
    bool plus = false;
    bool any = false;
    for (const char *p = in; *p != '\0'; p++) {
        if (is_digit(*p)) {
            if (nd == sizeof(digits) - 1) {
                return -EINVAL;
            }
            digits[nd++] = *p;
            any = true;
        } else if (*p == '+' && !any && !plus) {
            plus = true;
        } else if (!visual_separator(*p)) {
            return -EINVAL; /* letters, ';' parameters, a second '+', ... */
        }
    }
    digits[nd] = '\0';
    if (nd == 0) {
        return -EINVAL;
    }
    const char *cc = "";
    const char *rest = digits;
    if (!plus && default_cc[0] != '\0') {
        size_t ccl = strlen(default_cc);
        if (strncmp(digits, "00", 2) == 0) {
            rest = digits + 2; /* the international call prefix of most countries */
        } else if (digits[0] == '0') {
            cc = default_cc; /* a national number with its trunk prefix: 030 1234567 */
            rest = digits + 1;
        } else if (strncmp(digits, default_cc, ccl) == 0) {
            rest = digits; /* already international, without its '+': 14255550100 */
        } else {
            cc = default_cc; /* a national number without trunk prefix: 4255550100 */
        }
    }
    size_t total = strlen(cc) + strlen(rest);
    if (total < SIGNER_PHONE_DIGITS_MIN || total > SIGNER_PHONE_DIGITS_MAX) {
        return -EINVAL;
    }
    if ((cc[0] != '\0' ? cc[0] : rest[0]) == '0') {
        return -EINVAL; /* no country code starts with 0 */
    }
    if (total + 2 > cap) {
        return -E2BIG;
    }
    out[0] = '+';
    memcpy(out + 1, cc, strlen(cc));
    memcpy(out + 1 + strlen(cc), rest, strlen(rest) + 1);
    return 0;
}
