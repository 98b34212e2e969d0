/* Tests of signer_base64_decode and signer_secret_wipe. Every input ends at a PROT_NONE guard
 * page, and so does every output buffer, so that a read past the text or a write past `cap`
 * faults at once. */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include <openssl/base64.h>

#include "base/base.h"
#include "signer/signer.h"
#include "tests/util/guard.h"

#define LENIENT (SIGNER_BASE64_SKIP_SPACE | SIGNER_BASE64_UNPADDED) /* how CSRs are read */
#define UNTOUCHED ((size_t)0x5a5a5a5a)
#define OUT_MAX 1024

/* Every mode twice: constant time (EVP_DecodeBase64) and by the lookup table (PUBLIC). */
static const unsigned modes[] = {SIGNER_BASE64_STRICT,
                                 SIGNER_BASE64_SKIP_SPACE,
                                 SIGNER_BASE64_UNPADDED,
                                 LENIENT,
                                 SIGNER_BASE64_PUBLIC,
                                 SIGNER_BASE64_SKIP_SPACE | SIGNER_BASE64_PUBLIC,
                                 SIGNER_BASE64_UNPADDED | SIGNER_BASE64_PUBLIC,
                                 LENIENT | SIGNER_BASE64_PUBLIC};
static const char spaces[] = " \t\r\n\v\f";

struct res {
    int rc;
    size_t len; /* UNTOUCHED unless the decode succeeded */
    uint8_t out[OUT_MAX];
};

/* dec decodes a guarded copy of text[0..len) into a guarded buffer of exactly `cap` bytes. */
static void dec(struct res *r, const char *text, size_t len, size_t cap, unsigned flags)
{
    static const uint8_t zeros[OUT_MAX];
    cr_assert_leq(cap, sizeof(r->out));
    uint8_t *in = guard_copy(text, len);
    uint8_t *out = guard_copy(zeros, cap);
    r->len = UNTOUCHED;
    r->rc = signer_base64_decode(out, cap, &r->len, (const char *)in, len, flags);
    memcpy(r->out, out, cap);
    guard_free(out, cap);
    guard_free(in, len);
}

static void dec_str(struct res *r, const char *text, unsigned flags)
{
    dec(r, text, strlen(text), OUT_MAX, flags);
}

/* fill writes `len` pseudo-random bytes (a fixed sequence per seed). */
static void fill(uint8_t *out, size_t len, uint32_t seed)
{
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        out[i] = (uint8_t)x;
    }
}

/* encode writes the padded base64 of data[0..len); with `unpadded`, without its '='. */
static size_t encode(char *out, const uint8_t *data, size_t len, bool unpadded)
{
    size_t n = EVP_EncodeBlock((uint8_t *)out, data, len);
    while (unpadded && n > 0 && out[n - 1] == '=') {
        n--;
    }
    return n;
}

/* spaced copies text with whitespace (every kind, in turn) after every `every` characters. */
static size_t spaced(char *out, size_t cap, const char *text, size_t len, size_t every)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        cr_assert_leq(n + 2, cap);
        out[n++] = text[i];
        if ((i + 1) % every == 0) {
            out[n++] = spaces[i % (sizeof(spaces) - 1)];
        }
    }
    return n;
}

Test(signer_base64, rfc4648_vectors_in_every_mode)
{
    static const char *const text[] = {"",         "Zg==",     "Zm8=",    "Zm9v",
                                       "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    static struct res r;
    for (size_t m = 0; m < ARRAY_LEN(modes); m++) {
        for (size_t len = 0; len <= 6; len++) {
            dec_str(&r, text[len], modes[m]);
            cr_assert_eq(r.rc, 0, "%s mode %u", text[len], modes[m]);
            cr_assert_eq(r.len, len);
            cr_assert_eq(memcmp(r.out, "foobar", len), 0, "%s", text[len]);
        }
    }
}

/* Every length from 0 to 600 bytes (text across several 256-character gathering blocks), with
 * exactly enough room: padded in every mode, spaced and unpadded where the flags allow. */
Test(signer_base64, round_trip_at_every_length)
{
    static uint8_t data[600];
    static char text[1024], text2[2048];
    static struct res r;
    for (size_t len = 0; len <= sizeof(data); len++) {
        fill(data, len, (uint32_t)len);
        size_t n = encode(text, data, len, false);
        for (size_t m = 0; m < ARRAY_LEN(modes); m++) {
            dec(&r, text, n, len, modes[m]);
            cr_assert_eq(r.rc, 0, "len %zu mode %u", len, modes[m]);
            cr_assert_eq(r.len, len);
            cr_assert_eq(memcmp(r.out, data, len), 0, "len %zu", len);
        }
        size_t n2 = spaced(text2, sizeof(text2), text, n, 1 + len % 7);
        dec(&r, text2, n2, len, SIGNER_BASE64_SKIP_SPACE);
        cr_assert_eq(r.rc, 0, "spaced, len %zu", len);
        cr_assert_eq(memcmp(r.out, data, len), 0, "spaced, len %zu", len);
        n = encode(text, data, len, true);
        dec(&r, text, n, len, SIGNER_BASE64_UNPADDED);
        cr_assert_eq(r.rc, 0, "unpadded, len %zu", len);
        cr_assert_eq(memcmp(r.out, data, len), 0, "unpadded, len %zu", len);
        n2 = spaced(text2, sizeof(text2), text, n, 2 + len % 5);
        dec(&r, text2, n2, len, LENIENT);
        cr_assert_eq(r.rc, 0, "unpadded and spaced, len %zu", len);
        cr_assert_eq(r.len, len);
        cr_assert_eq(memcmp(r.out, data, len), 0, "unpadded and spaced, len %zu", len);
    }
}

Test(signer_base64, whitespace_only_where_skipped)
{
    static const char *const texts[] = {" Zm9v", "Zm9v ",    "Zm 9v",         "Zm9v\n",
                                        "Zg= =", "Zg=\r\n=", "\tZ\vm\f9\nv\r"};
    static struct res r;
    for (size_t i = 0; i < ARRAY_LEN(texts); i++) {
        dec_str(&r, texts[i], SIGNER_BASE64_STRICT);
        cr_expect_eq(r.rc, -EBADMSG, "text %zu strict", i);
        cr_expect_eq(r.len, UNTOUCHED);
        dec_str(&r, texts[i], SIGNER_BASE64_UNPADDED);
        cr_expect_eq(r.rc, -EBADMSG, "text %zu unpadded", i);
        dec_str(&r, texts[i], SIGNER_BASE64_SKIP_SPACE);
        cr_expect_eq(r.rc, 0, "text %zu skipping", i);
        cr_expect(r.len == 1 || r.len == 3, "text %zu", i);
    }
    /* Only whitespace is no text at all. */
    dec_str(&r, " \r\n\t\v\f ", SIGNER_BASE64_SKIP_SPACE);
    cr_expect_eq(r.rc, 0);
    cr_expect_eq(r.len, 0);
}

static bool in_alphabet(int c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '/';
}

/* Every byte outside the alphabet, at every position of two quanta, in every mode (whitespace
 * excepted where it is skipped). */
Test(signer_base64, refuses_every_bad_character_everywhere)
{
    static struct res r;
    for (int c = 0; c < 256; c++) {
        if (in_alphabet(c) || c == '=') {
            continue;
        }
        bool space = c != 0 && strchr(spaces, c) != NULL;
        for (size_t pos = 0; pos < 8; pos++) {
            char text[] = "Zm9vYmFy";
            text[pos] = (char)c;
            for (size_t m = 0; m < ARRAY_LEN(modes); m++) {
                if (space && (modes[m] & SIGNER_BASE64_SKIP_SPACE) != 0) {
                    continue;
                }
                dec(&r, text, 8, OUT_MAX, modes[m]);
                cr_assert_eq(r.rc, -EBADMSG, "byte %#x at %zu, mode %u", c, pos, modes[m]);
                cr_assert_eq(r.len, UNTOUCHED);
            }
        }
    }
}

Test(signer_base64, padding_rules)
{
    static const struct {
        const char *text;
        int strict;  /* rc without flags */
        int lenient; /* rc with LENIENT */
    } cases[] = {
        {"Zg", -EBADMSG, 0},           /* unpadded 2 */
        {"Zm8", -EBADMSG, 0},          /* unpadded 3 */
        {"Z", -EBADMSG, -EBADMSG},     /* one character left over */
        {"Zm9vY", -EBADMSG, -EBADMSG}, /* ... after a whole quantum */
        {"Zg=", -EBADMSG, -EBADMSG},   /* half the padding */
        {"Z===", -EBADMSG, -EBADMSG},  /* too much padding */
        {"====", -EBADMSG, -EBADMSG},  /* padding only */
        {"Zm9v=", -EBADMSG, -EBADMSG}, /* padding after a whole quantum */
        {"Zm9v====", -EBADMSG, -EBADMSG},
        {"Zg===", -EBADMSG, -EBADMSG},    /* one '=' too many */
        {"Zg==Zg==", -EBADMSG, -EBADMSG}, /* padding in the middle */
        {"Zm=vYmFy", -EBADMSG, -EBADMSG},
        {"Zg==Z", -EBADMSG, -EBADMSG}, /* text after the padding */
        {"Zm8=Zm8", -EBADMSG, -EBADMSG},
        {"=Zm9", -EBADMSG, -EBADMSG},
        {"Zm9vYg==", 0, 0},
    };
    static struct res r;
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        dec_str(&r, cases[i].text, SIGNER_BASE64_STRICT);
        cr_expect_eq(r.rc, cases[i].strict, "%s strict: %d", cases[i].text, r.rc);
        dec_str(&r, cases[i].text, LENIENT);
        cr_expect_eq(r.rc, cases[i].lenient, "%s lenient: %d", cases[i].text, r.rc);
        cr_expect_eq(r.len == UNTOUCHED, cases[i].lenient != 0, "%s", cases[i].text);
    }
    /* Padding split by whitespace is still padding; 1 byte then "==" or 2 then "=". */
    dec_str(&r, "Zg\n=\n=\n", LENIENT);
    cr_expect_eq(r.rc, 0);
    cr_expect_eq(r.len, 1);
    dec_str(&r, "Zm8 = ", SIGNER_BASE64_SKIP_SPACE);
    cr_expect_eq(r.rc, 0);
    cr_expect_eq(r.len, 2);
}

/* next_cap steps through the caps tested below `len`: every one when len <= 72; above, 0, len / 2
 * and the last 7. */
static size_t next_cap(size_t cap, size_t len)
{
    if (len <= 72 || cap + 1 >= len - 7) {
        return cap + 1;
    }
    return cap < len / 2 ? len / 2 : len - 7;
}

/* For every decoded length up to 200 bytes (past the first 256-character block), a smaller cap
 * is -E2BIG and leaves *out_len alone (the guard page catches any write past cap), and the exact
 * cap is enough: padded, unpadded and spaced, so that the overflow falls in every place of a
 * quantum and of a block. Every cap up to 72 bytes; above, 0, half and the last 7. */
Test(signer_base64, over_the_cap_at_every_length)
{
    static uint8_t data[200];
    static char text[300], text2[400];
    static struct res r;
    for (size_t len = 1; len <= sizeof(data); len++) {
        fill(data, len, (uint32_t)len + 1000);
        for (int variant = 0; variant < 3; variant++) {
            size_t n = encode(text, data, len, variant == 1);
            unsigned flags = variant == 0 ? SIGNER_BASE64_STRICT : LENIENT;
            const char *t = text;
            if (variant == 2) {
                n = spaced(text2, sizeof(text2), text, n, 3);
                t = text2;
            }
            for (size_t cap = 0; cap < len; cap = next_cap(cap, len)) {
                dec(&r, t, n, cap, flags);
                cr_assert_eq(r.rc, -E2BIG, "len %zu cap %zu variant %d: %d", len, cap, variant,
                             r.rc);
                cr_assert_eq(r.len, UNTOUCHED);
            }
            dec(&r, t, n, len, flags);
            cr_assert_eq(r.rc, 0, "len %zu variant %d", len, variant);
            cr_assert_eq(r.len, len);
        }
    }
}

/* Of an overflow and a malformed character, the one earlier in the text is reported; an overflow
 * in the padded last quantum counts as at the end. */
Test(signer_base64, first_problem_in_the_text_wins)
{
    static struct res r;
    dec(&r, "Zm9vYmFy!!!!", 12, 3, SIGNER_BASE64_STRICT); /* overflow in quantum 2, junk in 3 */
    cr_expect_eq(r.rc, -E2BIG);
    dec(&r, "Zm9v!!!!YmFy", 12, 3, SIGNER_BASE64_STRICT); /* junk before the overflow */
    cr_expect_eq(r.rc, -EBADMSG);
    dec(&r, "Zm9vYm!y", 8, 3, SIGNER_BASE64_STRICT); /* junk in the overflowing quantum */
    cr_expect_eq(r.rc, -EBADMSG);
    dec(&r, "Zm9vYg==", 8, 3, LENIENT); /* padded last quantum over the cap */
    cr_expect_eq(r.rc, -E2BIG);
    dec(&r, "Zm9vYg==Zg", 10, 3, LENIENT); /* ... then text after the padding */
    cr_expect_eq(r.rc, -EBADMSG);
    dec(&r, "Zm9vYg== !", 10, 3, LENIENT);
    cr_expect_eq(r.rc, -EBADMSG);
}

/* ---- the same answers as the decoders it replaced ---- */

/* old_decode is the CSR decoder that signer/csr.c had before signer_base64_decode (whitespace
 * anywhere, padding optional), kept here as the reference for LENIENT. */
static int old_value(uint8_t c)
{
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }
    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }
    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }
    return c == '+' ? 62 : c == '/' ? 63 : -1;
}

static int old_decode(uint8_t *out, size_t cap, size_t *out_len, const uint8_t *in, size_t in_len)
{
    uint32_t acc = 0;
    size_t num_chars = 0, num_pad = 0, len = 0;
    for (size_t i = 0; i < in_len; i++) {
        if (in[i] != 0 && strchr(spaces, in[i]) != NULL) {
            continue;
        }
        if (in[i] == '=') {
            num_pad++;
            continue;
        }
        int v = old_value(in[i]);
        if (v < 0 || num_pad > 0) {
            return -EBADMSG;
        }
        acc = (acc << 6) | (uint32_t)v;
        if (++num_chars < 4) {
            continue;
        }
        if (cap - len < 3) {
            return -E2BIG;
        }
        out[len++] = (uint8_t)(acc >> 16);
        out[len++] = (uint8_t)(acc >> 8);
        out[len++] = (uint8_t)acc;
        acc = 0;
        num_chars = 0;
    }
    if (num_chars == 1 || num_pad > 2 || (num_pad > 0 && num_chars + num_pad != 4)) {
        return -EBADMSG;
    }
    size_t tail = num_chars == 0 ? 0 : num_chars - 1;
    if (cap - len < tail) {
        return -E2BIG;
    }
    if (num_chars == 2) {
        out[len++] = (uint8_t)(acc >> 4);
    } else if (num_chars == 3) {
        out[len++] = (uint8_t)(acc >> 10);
        out[len++] = (uint8_t)(acc >> 2);
    }
    *out_len = len;
    return 0;
}

/* Random texts over a small alphabet that makes every kind of mistake likely, random caps: the
 * same result code, length and bytes as the old CSR decoder (LENIENT) and as EVP_DecodeBase64
 * called directly with room for 3 bytes a quantum (STRICT, which the SOAP and Basic paths used). */
Test(signer_base64, same_answers_as_the_decoders_it_replaced)
{
    static const char alphabet[] = "AQZgz09+/====  \n\r!";
    static struct res r;
    uint8_t rnd[80];
    char text[64];
    uint8_t want[64];
    for (uint32_t round = 0; round < 10000; round++) {
        fill(rnd, sizeof(rnd), round);
        size_t len = rnd[0] % 40;
        for (size_t i = 0; i < len; i++) {
            /* mostly letters, so that long valid stretches occur */
            text[i] = rnd[1 + i] < 160 ? "ABCDabcd0189+/"[rnd[1 + i] % 14]
                                       : alphabet[rnd[1 + i] % (sizeof(alphabet) - 1)];
        }
        size_t cap = rnd[79] % 32;
        size_t want_len = UNTOUCHED;
        int want_rc = old_decode(want, cap, &want_len, (const uint8_t *)text, len);
        dec(&r, text, len, cap, LENIENT);
        cr_assert_eq(r.rc, want_rc, "round %u '%.*s' cap %zu", round, (int)len, text, cap);
        cr_assert_eq(r.len, want_len, "round %u", round);
        cr_assert(want_rc != 0 || memcmp(r.out, want, want_len) == 0, "round %u", round);

        size_t evp_len = 0;
        int evp_ok = EVP_DecodeBase64(want, &evp_len, sizeof(want), (const uint8_t *)text, len);
        dec(&r, text, len, sizeof(want), SIGNER_BASE64_STRICT);
        cr_assert_eq(r.rc == 0, evp_ok == 1, "round %u '%.*s'", round, (int)len, text);
        cr_assert(!evp_ok || (r.len == evp_len && memcmp(r.out, want, evp_len) == 0));
    }
}

/* The lookup table against EVP_DecodeBase64: random texts over every byte, over the alphabet
 * with '=' and whitespace, and valid base64 with one character changed, at random caps, in
 * every mode: the same result code, length and bytes with SIGNER_BASE64_PUBLIC as without. */
Test(signer_base64, public_text_same_answers_as_constant_time)
{
    static const char near[] = "AQZgz09+/=====  \n\r!\x80";
    static struct res r, want;
    uint8_t rnd[160];
    char text[96];
    for (uint32_t round = 0; round < 30000; round++) {
        fill(rnd, sizeof(rnd), round + 77u);
        size_t len = rnd[0] % 64;
        for (size_t i = 0; i < len; i++) {
            uint8_t x = rnd[1 + i];
            switch (round % 3) {
            case 0:
                text[i] = (char)x;
                break;
            case 1:
                text[i] = near[x % (sizeof(near) - 1)];
                break;
            default:
                text[i] =
                    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"[x % 64];
                break;
            }
        }
        if (round % 3 == 2 && len > 0) {
            size_t pad = rnd[100] % 3;
            for (size_t k = 0; k < pad && k < len; k++) {
                text[len - 1 - k] = '='; /* padding of every length, not always well placed */
            }
            text[rnd[101] % len] = (char)rnd[102]; /* one character anything */
        }
        size_t cap = rnd[150] % 60;
        for (size_t m = 0; m < ARRAY_LEN(modes) / 2; m++) {
            dec(&want, text, len, cap, modes[m]);
            dec(&r, text, len, cap, modes[m] | SIGNER_BASE64_PUBLIC);
            cr_assert_eq(r.rc, want.rc, "round %u mode %u '%.*s' cap %zu: %d, want %d", round,
                         modes[m], (int)len, text, cap, r.rc, want.rc);
            cr_assert_eq(r.len, want.len, "round %u mode %u", round, modes[m]);
            cr_assert(want.rc != 0 || memcmp(r.out, want.out, want.len) == 0, "round %u", round);
        }
    }
}

Test(signer_base64, unknown_flag_asserts, .signal = SIGABRT)
{
    uint8_t out[4];
    size_t len = 0;
    (void)signer_base64_decode(out, sizeof(out), &len, "Zm9v", 4, 1u << 7);
}

Test(signer_secret_wipe, zeroes_every_byte)
{
    uint8_t buf[37];
    memset(buf, 0xa5, sizeof(buf));
    signer_secret_wipe(buf + 1, sizeof(buf) - 2);
    cr_assert_eq(buf[0], 0xa5);
    cr_assert_eq(buf[sizeof(buf) - 1], 0xa5);
    for (size_t i = 1; i + 1 < sizeof(buf); i++) {
        cr_assert_eq(buf[i], 0, "byte %zu", i);
    }
    signer_secret_wipe(NULL, 0);
}
