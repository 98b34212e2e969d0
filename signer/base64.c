/* base64.c: the one base64 decoder (RFC 4648 §4) of the appliance, for CSR text, the SOAP
 * BinarySecurityToken and HTTP Basic credentials, and the wipe of secrets held outside signer/.
 * Every quantum goes through BoringSSL's EVP_DecodeBase64, which decodes in constant time: Basic
 * credentials carry a PIN. Public text (SIGNER_BASE64_PUBLIC: CSRs, certificates) goes through
 * decode_public instead, a lookup table with the same answers, several times faster. */
#include <assert.h>
#include <errno.h>
#include <string.h>

#include <openssl/base64.h>
#include <openssl/mem.h>

#include "base/base.h"
#include "signer/signer.h"

#define B64_BLOCK 256 /* characters gathered per EVP_DecodeBase64 call when skipping whitespace */
#define B64_FLAGS (SIGNER_BASE64_SKIP_SPACE | SIGNER_BASE64_UNPADDED | SIGNER_BASE64_PUBLIC)
#define B64_PAD 64u /* b64_value of '=' */

static_assert(B64_BLOCK % 4 == 0, "a block holds whole quanta");

/* b64 is one decode in progress. Checks run in text order, so that of a malformed character and
 * an overflow, whichever comes first in the text is reported. */
struct b64 {
    uint8_t *out;
    size_t cap;
    size_t len;       /* bytes written to out */
    bool padded;      /* a quantum with '=' was decoded: the text must end there */
    bool over;        /* that padded quantum did not fit: -E2BIG if the text ends there */
    bool public_text; /* SIGNER_BASE64_PUBLIC: decode_public, not EVP_DecodeBase64 */
};

/* Each character's 6 bits, B64_PAD for '=' and 255 for a character outside the alphabet. */
static const uint8_t b64_value[256] = {
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, /* 0x00 */
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, /* 0x10 */
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 62,  255, 255, 255, 63,  /* 0x20 */
    52,  53,  54,  55,  56,  57,  58,  59,  60,  61,  255, 255, 255, 64,  255, 255, /* 0x30 */
    255, 0,   1,   2,   3,   4,   5,   6,   7,   8,   9,   10,  11,  12,  13,  14,  /* 0x40 */
    15,  16,  17,  18,  19,  20,  21,  22,  23,  24,  25,  255, 255, 255, 255, 255, /* 0x50 */
    255, 26,  27,  28,  29,  30,  31,  32,  33,  34,  35,  36,  37,  38,  39,  40,  /* 0x60 */
    41,  42,  43,  44,  45,  46,  47,  48,  49,  50,  51,  255, 255, 255, 255, 255, /* 0x70 */
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, /* 0x80 */
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, /* 0x90 */
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, /* 0xa0 */
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, /* 0xb0 */
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, /* 0xc0 */
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, /* 0xd0 */
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, /* 0xe0 */
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, /* 0xf0 */
};

/* decode_public is EVP_DecodeBase64 for public text: the same bytes and the same refusals (a
 * character outside the alphabet; '=' other than "xx==" or "xxx=" ending the last quantum; no
 * room for 3 bytes a quantum), by table lookups that branch on the characters. */
static bool decode_public(uint8_t *out, size_t *out_len, size_t max_out, const uint8_t *in,
                          size_t in_len)
{
    *out_len = 0;
    if (in_len % 4 != 0 || max_out < in_len / 4 * 3) {
        return false;
    }
    size_t n = 0;
    for (size_t i = 0; i < in_len; i += 4) {
        unsigned a = b64_value[in[i]];
        unsigned b = b64_value[in[i + 1]];
        unsigned c = b64_value[in[i + 2]];
        unsigned e = b64_value[in[i + 3]];
        if (((a | b | c | e) & ~63u) == 0) {
            uint32_t v = (uint32_t)(a << 18 | b << 12 | c << 6 | e);
            out[n] = (uint8_t)(v >> 16);
            out[n + 1] = (uint8_t)(v >> 8);
            out[n + 2] = (uint8_t)v;
            n += 3;
            continue;
        }
        /* '=' or a bad character: only the two padded forms, and only as the last quantum */
        bool last = i + 4 == in_len;
        if (!last || a > 63 || b > 63 || e != B64_PAD || (c > 63 && c != B64_PAD)) {
            return false;
        }
        uint32_t v = (uint32_t)(a << 18 | b << 12 | (c & 63u) << 6);
        out[n++] = (uint8_t)(v >> 16);
        if (c != B64_PAD) {
            out[n++] = (uint8_t)(v >> 8);
        }
    }
    *out_len = n;
    return true;
}

/* quanta_decode decodes whole quanta as the text's kind asks. */
static bool quanta_decode(const struct b64 *d, uint8_t *out, size_t *out_len, size_t max_out,
                          const uint8_t *in, size_t in_len)
{
    return d->public_text ? decode_public(out, out_len, max_out, in, in_len)
                          : EVP_DecodeBase64(out, out_len, max_out, in, in_len) == 1;
}

static bool b64_space(uint8_t c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

/* decode_aside decodes the one quantum q[0..4) that may not fit in d->out through `tmp`: a
 * whole quantum (3 bytes) is -E2BIG, a padded one ends the text and is judged at its end. */
static int decode_aside(struct b64 *d, const uint8_t *q, uint8_t tmp[3])
{
    size_t got = 0;
    if (!quanta_decode(d, tmp, &got, 3, q, 4)) {
        return -EBADMSG;
    }
    if (got == 3) {
        return -E2BIG; /* decode_quanta decodes aside only when fewer than 3 bytes are left */
    }
    ASSERT(got > 0);
    d->padded = true;
    d->over = got > d->cap - d->len;
    if (!d->over) {
        memcpy(d->out + d->len, tmp, got);
        d->len += got;
    }
    return 0;
}

/* decode_quanta decodes the whole quanta q[0..q_len) (q_len a multiple of 4) into d. */
static int decode_quanta(struct b64 *d, const uint8_t *q, size_t q_len)
{
    ASSERT(q_len % 4 == 0);
    if (q_len == 0) {
        return 0;
    }
    if (d->padded) {
        return -EBADMSG; /* text after the padding */
    }
    size_t num = q_len / 4;
    size_t fit = (d->cap - d->len) / 3; /* quanta that fit whatever their padding */
    size_t head = num < fit ? num : fit;
    size_t got = 0;
    if (head > 0 && !quanta_decode(d, d->out + d->len, &got, 3 * head, q, 4 * head)) {
        return -EBADMSG;
    }
    ASSERT(got <= 3 * head);
    d->len += got;
    if (got < 3 * head) {
        d->padded = true; /* EVP_DecodeBase64 accepts '=' in the last quantum only */
        return head < num ? -EBADMSG : 0;
    }
    if (head == num) {
        return 0;
    }
    uint8_t tmp[3];
    int rc = decode_aside(d, q + 4 * head, tmp);
    OPENSSL_cleanse(tmp, sizeof(tmp));
    if (rc != 0) {
        return rc;
    }
    return head + 1 < num ? -EBADMSG : 0; /* 0 from decode_aside: it was padded, the last */
}

/* decode_tail decodes the last 0..3 characters, which are not a whole quantum. */
static int decode_tail(struct b64 *d, const uint8_t *t, size_t t_len, unsigned flags)
{
    ASSERT(t_len < 4);
    if (t_len == 0) {
        return 0;
    }
    if (d->padded || t_len == 1 || (flags & SIGNER_BASE64_UNPADDED) == 0 ||
        memchr(t, '=', t_len) != NULL) {
        return -EBADMSG;
    }
    uint8_t q[4] = {'=', '=', '=', '='};
    memcpy(q, t, t_len);
    int rc = decode_quanta(d, q, sizeof(q));
    OPENSSL_cleanse(q, sizeof(q));
    return rc;
}

/* decode_spaced gathers the characters other than whitespace into blocks of whole quanta. */
static int decode_spaced(struct b64 *d, const uint8_t *in, size_t in_len, unsigned flags)
{
    uint8_t block[B64_BLOCK] = {0};
    size_t n = 0;
    int rc = 0;
    for (size_t i = 0; i < in_len; i++) {
        if (b64_space(in[i])) {
            continue;
        }
        block[n++] = in[i];
        if (n == sizeof(block)) {
            rc = decode_quanta(d, block, n);
            if (rc != 0) {
                goto out;
            }
            n = 0;
        }
    }
    rc = decode_quanta(d, block, n - n % 4);
    if (rc != 0) {
        goto out;
    }
    rc = decode_tail(d, block + n - n % 4, n % 4, flags);
out:
    OPENSSL_cleanse(block, sizeof(block));
    return rc;
}

/* decode_plain decodes text without whitespace: whole quanta straight from `in`, then the tail. */
static int decode_plain(struct b64 *d, const uint8_t *in, size_t in_len, unsigned flags)
{
    size_t whole = in_len - in_len % 4;
    int rc = decode_quanta(d, in, whole);
    if (rc != 0) {
        return rc;
    }
    return decode_tail(d, in + whole, in_len % 4, flags);
}

int signer_base64_decode(uint8_t *out, size_t cap, size_t *out_len, const char *in, size_t in_len,
                         unsigned flags)
{
    ASSERT(out != NULL || cap == 0);
    ASSERT(out_len != NULL);
    ASSERT(in != NULL || in_len == 0);
    ASSERT((flags & ~(unsigned)B64_FLAGS) == 0);
    struct b64 d = {.out = out, .cap = cap, .public_text = (flags & SIGNER_BASE64_PUBLIC) != 0};
    const uint8_t *text = (const uint8_t *)in;
    int rc = (flags & SIGNER_BASE64_SKIP_SPACE) != 0 ? decode_spaced(&d, text, in_len, flags)
                                                     : decode_plain(&d, text, in_len, flags);
    if (rc != 0) {
        return rc;
    }
    if (d.over) {
        return -E2BIG; /* the padded last quantum, judged once the text had ended */
    }
    ASSERT(d.len <= cap);
    ASSERT(d.len <= in_len / 4 * 3 + 2);
    *out_len = d.len;
    return 0;
}

void signer_secret_wipe(void *p, size_t len)
{
    ASSERT(p != NULL || len == 0);
    OPENSSL_cleanse(p, len);
}
