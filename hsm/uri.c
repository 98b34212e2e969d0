/* uri.c: RFC 7512 pkcs11: URIs, parsed into fixed buffers and printed without the PIN.
 *
 *   pk11-URI   = "pkcs11:" pk11-path [ "?" pk11-query ]
 *   pk11-path  = [ pk11-pattr *( ";" pk11-pattr ) ]
 *   pk11-query = [ pk11-qattr *( "&" pk11-qattr ) ]
 * Values are percent-encoded (RFC 7512 §2.3, RFC 3986 §2.1). Only the attributes this backend
 * needs are kept; the other standard ones are recognised and ignored, vendor ones ("x-") too. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/mem.h>

#include "base/base.h"
#include "hsm/hsm.h"

/* hexval returns the value of one hex digit, or -1. */
static int hexval(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

/* unescape decodes v[0..len) into out (cap bytes); *out_len the decoded length. With `text`,
 * a NUL is refused and out is NUL-terminated (cap counts the NUL). 0 or -EINVAL (*why). */
static int unescape(uint8_t *out, size_t cap, size_t *out_len, const char *v, size_t len, bool text,
                    const char **why)
{
    size_t n = 0;
    size_t room = text ? cap - 1 : cap;
    for (size_t i = 0; i < len; i++) {
        uint8_t c = (uint8_t)v[i];
        if (c == '%') {
            if (i + 2 >= len || hexval(v[i + 1]) < 0 || hexval(v[i + 2]) < 0) {
                *why = "a '%' escape is not followed by two hex digits";
                return -EINVAL;
            }
            c = (uint8_t)(hexval(v[i + 1]) * 16 + hexval(v[i + 2]));
            i += 2;
            if (c == 0 && text) {
                *why = "a text attribute holds a NUL byte (%00)";
                return -EINVAL;
            }
        } else if (c < 0x21 || c > 0x7e) {
            *why = "a value holds a space, control or non-ASCII byte (percent-encode it)";
            return -EINVAL;
        }
        if (n == room) {
            *why = "a value is longer than this backend accepts";
            return -EINVAL;
        }
        out[n++] = c;
    }
    if (text) {
        out[n] = '\0';
    }
    *out_len = n;
    return 0;
}

static bool name_is(const char *name, size_t name_len, const char *want)
{
    return strlen(want) == name_len && memcmp(name, want, name_len) == 0;
}

/* Standard attributes this backend recognises but does not use (RFC 7512 §2.3). */
static const char *const ignored_path[] = {
    "library-description",
    "library-manufacturer",
    "library-version",
    "manufacturer",
    "model",
    "serial",
    "slot-description",
    "slot-manufacturer",
};
static const char *const ignored_query[] = {"module-name", "module-path"};

static bool in_list(const char *const *list, size_t n, const char *name, size_t name_len)
{
    for (size_t i = 0; i < n; i++) {
        if (name_is(name, name_len, list[i])) {
            return true;
        }
    }
    return false;
}

/* text_attr decodes a textual value into dst (cap bytes with the NUL), once. */
static int text_attr(char *dst, size_t cap, bool *has, const char *v, size_t len, const char **why)
{
    if (*has) {
        *why = "an attribute is repeated";
        return -EINVAL;
    }
    size_t n = 0;
    int rc = unescape((uint8_t *)dst, cap, &n, v, len, true, why);
    *has = rc == 0;
    return rc;
}

static int slot_attr(struct hsm_pkcs11_uri *u, const char *v, size_t len, const char **why)
{
    if (u->has_slot_id) {
        *why = "an attribute is repeated";
        return -EINVAL;
    }
    if (len == 0 || len > 20) {
        *why = "slot-id must be a decimal number";
        return -EINVAL;
    }
    uint64_t x = 0;
    for (size_t i = 0; i < len; i++) {
        if (v[i] < '0' || v[i] > '9' || x > (UINT64_MAX - 9) / 10) {
            *why = "slot-id must be a decimal number";
            return -EINVAL;
        }
        x = x * 10 + (uint64_t)(v[i] - '0');
    }
    u->slot_id = x;
    u->has_slot_id = true;
    return 0;
}

static int path_attr(struct hsm_pkcs11_uri *u, const char *name, size_t name_len, const char *v,
                     size_t len, const char **why)
{
    if (name_is(name, name_len, "token")) {
        return text_attr(u->token, sizeof(u->token), &u->has_token, v, len, why);
    }
    if (name_is(name, name_len, "object")) {
        return text_attr(u->object, sizeof(u->object), &u->has_object, v, len, why);
    }
    if (name_is(name, name_len, "id")) {
        if (u->has_id) {
            *why = "an attribute is repeated";
            return -EINVAL;
        }
        int rc = unescape(u->id, sizeof(u->id), &u->id_len, v, len, false, why);
        u->has_id = rc == 0 && u->id_len > 0;
        if (rc == 0 && u->id_len == 0) {
            *why = "id is empty";
            return -EINVAL;
        }
        return rc;
    }
    if (name_is(name, name_len, "slot-id")) {
        return slot_attr(u, v, len, why);
    }
    if (name_is(name, name_len, "type")) {
        if (!(len == 7 && memcmp(v, "private", 7) == 0)) {
            *why = "type must be private (the CA's private key)";
            return -EINVAL;
        }
        return 0;
    }
    if (in_list(ignored_path, ARRAY_LEN(ignored_path), name, name_len) ||
        (name_len > 2 && memcmp(name, "x-", 2) == 0)) {
        return 0;
    }
    *why = "unknown path attribute (token, object, id, slot-id, type are used)";
    return -EINVAL;
}

static int query_attr(struct hsm_pkcs11_uri *u, const char *name, size_t name_len, const char *v,
                      size_t len, const char **why)
{
    if (name_is(name, name_len, "pin-value")) {
        return text_attr(u->pin_value, sizeof(u->pin_value), &u->has_pin_value, v, len, why);
    }
    if (name_is(name, name_len, "pin-source")) {
        int rc = text_attr(u->pin_source, sizeof(u->pin_source), &u->has_pin_source, v, len, why);
        if (rc != 0) {
            return rc;
        }
        /* A file: URI (RFC 8089, local: "file:/p" or "file:///p") or an absolute path. */
        const char *p = u->pin_source;
        if (strncmp(p, "file://", 7) == 0) {
            p += 7;
        } else if (strncmp(p, "file:", 5) == 0) {
            p += 5;
        }
        if (p[0] != '/') {
            *why = "pin-source must be a file: URI or an absolute path";
            return -EINVAL;
        }
        memmove(u->pin_source, p, strlen(p) + 1);
        return 0;
    }
    if (in_list(ignored_query, ARRAY_LEN(ignored_query), name, name_len) ||
        (name_len > 2 && memcmp(name, "x-", 2) == 0)) {
        return 0;
    }
    *why = "unknown query attribute (pin-source and pin-value are used)";
    return -EINVAL;
}

/* attrs parses the attributes of s[0..len) separated by `sep`. */
static int attrs(struct hsm_pkcs11_uri *u, const char *s, size_t len, char sep, bool query,
                 const char **why)
{
    size_t i = 0;
    while (i < len) {
        const char *a = s + i;
        const char *end = memchr(a, sep, len - i);
        size_t alen = end != NULL ? (size_t)(end - a) : len - i;
        const char *eq = memchr(a, '=', alen);
        if (eq == NULL || eq == a) {
            *why = "an attribute is not NAME=VALUE";
            return -EINVAL;
        }
        size_t nlen = (size_t)(eq - a);
        const char *v = eq + 1;
        size_t vlen = alen - nlen - 1;
        int rc = query ? query_attr(u, a, nlen, v, vlen, why) : path_attr(u, a, nlen, v, vlen, why);
        if (rc != 0) {
            return rc;
        }
        i += alen + 1;
        if (end != NULL && i == len) {
            *why = "the URI ends with a separator";
            return -EINVAL;
        }
    }
    return 0;
}

int hsm_pkcs11_uri_parse(struct hsm_pkcs11_uri *out, const char **out_why, const char *text,
                         size_t len)
{
    ASSERT(out != NULL);
    ASSERT(out_why != NULL);
    ASSERT(text != NULL || len == 0);
    memset(out, 0, sizeof(*out));
    *out_why = NULL;
    static const char scheme[] = "pkcs11:";
    if (len > HSM_P11_URI_MAX) {
        *out_why = "the URI is longer than 2048 bytes";
        return -EINVAL;
    }
    if (len < sizeof(scheme) - 1 || strncasecmp(text, scheme, sizeof(scheme) - 1) != 0) {
        *out_why = "the key is not a pkcs11: URI";
        return -EINVAL;
    }
    const char *s = text + sizeof(scheme) - 1;
    size_t n = len - (sizeof(scheme) - 1);
    const char *q = memchr(s, '?', n);
    size_t plen = q != NULL ? (size_t)(q - s) : n;
    int rc = attrs(out, s, plen, ';', false, out_why);
    if (rc == 0 && q != NULL) {
        rc = attrs(out, q + 1, n - plen - 1, '&', true, out_why);
    }
    if (rc == 0 && out->has_pin_source && out->has_pin_value) {
        *out_why = "pin-source and pin-value are both given";
        rc = -EINVAL;
    }
    if (rc == 0 && !out->has_object && !out->has_id) {
        *out_why = "the URI names no key (object= or id=)";
        rc = -EINVAL;
    }
    ASSERT(rc == 0 || *out_why != NULL);
    return rc;
}

/* escape appends `len` bytes of v, percent-encoding all but RFC 3986 unreserved bytes. */
static bool escape(char *out, size_t cap, size_t *pos, const uint8_t *v, size_t len, bool all)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < len; i++) {
        uint8_t c = v[i];
        bool plain =
            !all && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                     c == '-' || c == '.' || c == '_' || c == '~' || c == '/');
        size_t need = plain ? 1 : 3;
        if (*pos + need >= cap) {
            return false;
        }
        if (plain) {
            out[(*pos)++] = (char)c;
        } else {
            out[(*pos)++] = '%';
            out[(*pos)++] = hex[c >> 4];
            out[(*pos)++] = hex[c & 15];
        }
    }
    return true;
}

static bool put(char *out, size_t cap, size_t *pos, const char *s)
{
    size_t len = strlen(s);
    if (*pos + len >= cap) {
        return false;
    }
    memcpy(out + *pos, s, len);
    *pos += len;
    return true;
}

int hsm_pkcs11_uri_format(char *out, size_t cap, const struct hsm_pkcs11_uri *uri)
{
    ASSERT(out != NULL);
    ASSERT(cap > 0);
    ASSERT(uri != NULL);
    size_t pos = 0;
    bool ok = put(out, cap, &pos, "pkcs11:");
    const char *sep = "";
    if (ok && uri->has_token) {
        ok = put(out, cap, &pos, "token=") &&
             escape(out, cap, &pos, (const uint8_t *)uri->token, strlen(uri->token), false);
        sep = ";";
    }
    if (ok && uri->has_object) {
        ok = put(out, cap, &pos, sep) && put(out, cap, &pos, "object=") &&
             escape(out, cap, &pos, (const uint8_t *)uri->object, strlen(uri->object), false);
        sep = ";";
    }
    if (ok && uri->has_id) {
        ok = put(out, cap, &pos, sep) && put(out, cap, &pos, "id=") &&
             escape(out, cap, &pos, uri->id, uri->id_len, true);
        sep = ";";
    }
    if (ok && uri->has_slot_id) {
        char num[32];
        snprintf(num, sizeof(num), "slot-id=%llu", (unsigned long long)uri->slot_id);
        ok = put(out, cap, &pos, sep) && put(out, cap, &pos, num);
    }
    if (ok && uri->has_pin_source) { /* a file name, not the PIN */
        /* The path alone (RFC 7512 §2.4 takes a URI reference): the shortest form, so that a
         * printed URI parses back whatever form it was given in (fuzz_pkcs11_uri found that
         * "file://" + a path at the bound no longer fit it). */
        ok = put(out, cap, &pos, "?pin-source=") &&
             escape(out, cap, &pos, (const uint8_t *)uri->pin_source, strlen(uri->pin_source),
                    false);
    }
    if (!ok) {
        out[0] = '\0';
        return -E2BIG;
    }
    out[pos] = '\0';
    return 0;
}

void hsm_pkcs11_uri_wipe(struct hsm_pkcs11_uri *uri)
{
    ASSERT(uri != NULL);
    OPENSSL_cleanse(uri, sizeof(*uri));
}
