/* soap: the CertProv wire codec ([MS-OCAUTHWS] §3.1 GetAndPublishCert, README, Errors). Requests
 * are parsed with expat in namespace mode: every element is matched by namespace URI and local
 * name, never by prefix. A DOCTYPE (and so any entity declaration) stops the parse at once, so no
 * entity is ever expanded; nesting, element count and every field are bounded. Responses are
 * written into caller buffers, every echoed string XML-escaped. */
#include <assert.h>
#include <errno.h>
#include <stdalign.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <expat.h>
#include <openssl/mem.h>
#include <openssl/rand.h>

#include "base/base.h"
#include "signer/signer.h"

/* ---- namespaces and elements ---- */

/* Expat joins namespace URI and local name with this byte. It cannot occur in an XML 1.0
 * document (not even as a character reference), so it cannot occur inside a URI either. */
#define NS_SEP '\x01'

enum ns {
    NS_NONE = 0, /* no namespace, or one we do not know */
    NS_SOAP,     /* SOAP 1.1 or 1.2 envelope */
    NS_AUTH,     /* [MS-OCAUTHWS] AuthWebServices */
    NS_WST,      /* WS-Trust 1.3, with or without the trailing '/' */
    NS_WSSE,     /* WS-Security secext 1.0 */
    NS_WSU,      /* WS-Security utility 1.0 */
    NS_ENR,      /* Windows PKI enrollment (RequestID) */
    NS_WSA,      /* WS-Addressing 1.0 */
};

#define NS_SOAP12_URI "http://www.w3.org/2003/05/soap-envelope"

static const struct {
    const char *uri;
    enum ns ns;
} ns_table[] = {
    {"http://schemas.xmlsoap.org/soap/envelope/", NS_SOAP},
    {NS_SOAP12_URI, NS_SOAP},
    {"http://schemas.microsoft.com/OCS/AuthWebServices/", NS_AUTH},
    {"http://docs.oasis-open.org/ws-sx/ws-trust/200512", NS_WST},
    {"http://docs.oasis-open.org/ws-sx/ws-trust/200512/", NS_WST},
    {"http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd", NS_WSSE},
    {"http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd", NS_WSU},
    {"http://schemas.microsoft.com/windows/pki/2009/01/enrollment", NS_ENR},
    {"http://www.w3.org/2005/08/addressing", NS_WSA},
};

enum el {
    EL_OTHER = 0, /* anything we skip (its whole subtree is skipped too) */
    EL_ROOT,      /* the parent of the document element */
    EL_ENVELOPE,
    EL_HEADER,
    EL_BODY,
    EL_SECURITY,
    EL_USERNAME_TOKEN,
    EL_USERNAME,
    EL_PASSWORD,
    EL_ACTION,
    EL_GAPC, /* GetAndPublishCert */
    EL_RST,  /* RequestSecurityToken */
    EL_TOKEN_TYPE,
    EL_REQUEST_TYPE,
    EL_BST, /* BinarySecurityToken */
    EL_REQUEST_ID,
    EL_LIFETIME,
    EL_CREATED,
    EL_EXPIRES,
    EL_MAX_,
};

/* Where each element we know may appear. `strict`: the local name in any other namespace is an
 * error rather than an unknown element to skip. */
struct rule {
    enum el parent;
    enum ns ns;
    const char *local;
    enum el el;
    const char *ns_label; /* for the reason text of a strict mismatch */
};

static const struct rule rules[] = {
    {EL_ROOT, NS_SOAP, "Envelope", EL_ENVELOPE, "SOAP envelope"},
    {EL_ENVELOPE, NS_SOAP, "Header", EL_HEADER, NULL},
    {EL_ENVELOPE, NS_SOAP, "Body", EL_BODY, NULL},
    {EL_HEADER, NS_WSSE, "Security", EL_SECURITY, NULL},
    {EL_HEADER, NS_WSA, "Action", EL_ACTION, NULL},
    {EL_SECURITY, NS_WSSE, "UsernameToken", EL_USERNAME_TOKEN, NULL},
    {EL_USERNAME_TOKEN, NS_WSSE, "Username", EL_USERNAME, NULL},
    {EL_USERNAME_TOKEN, NS_WSSE, "Password", EL_PASSWORD, NULL},
    {EL_BODY, NS_AUTH, "GetAndPublishCert", EL_GAPC, "AuthWebServices"},
    {EL_GAPC, NS_WST, "RequestSecurityToken", EL_RST, "WS-Trust 1.3"},
    {EL_GAPC, NS_ENR, "RequestID", EL_REQUEST_ID, NULL},
    {EL_RST, NS_WST, "TokenType", EL_TOKEN_TYPE, NULL},
    {EL_RST, NS_WST, "RequestType", EL_REQUEST_TYPE, NULL},
    {EL_RST, NS_WSSE, "BinarySecurityToken", EL_BST, "WS-Security secext"},
    {EL_RST, NS_ENR, "RequestID", EL_REQUEST_ID, NULL},
    {EL_RST, NS_WST, "Lifetime", EL_LIFETIME, NULL},
    {EL_LIFETIME, NS_WSU, "Created", EL_CREATED, NULL},
    {EL_LIFETIME, NS_WSU, "Expires", EL_EXPIRES, NULL},
};

static const char *const el_names[EL_MAX_] = {
    [EL_OTHER] = "?",
    [EL_ROOT] = "?",
    [EL_ENVELOPE] = "Envelope",
    [EL_HEADER] = "Header",
    [EL_BODY] = "Body",
    [EL_SECURITY] = "Security",
    [EL_USERNAME_TOKEN] = "UsernameToken",
    [EL_USERNAME] = "Username",
    [EL_PASSWORD] = "Password",
    [EL_ACTION] = "Action",
    [EL_GAPC] = "GetAndPublishCert",
    [EL_RST] = "RequestSecurityToken",
    [EL_TOKEN_TYPE] = "TokenType",
    [EL_REQUEST_TYPE] = "RequestType",
    [EL_BST] = "BinarySecurityToken",
    [EL_REQUEST_ID] = "RequestID",
    [EL_LIFETIME] = "Lifetime",
    [EL_CREATED] = "Created",
    [EL_EXPIRES] = "Expires",
};

#define WST_ISSUE "http://docs.oasis-open.org/ws-sx/ws-trust/200512/Issue"
#define TIME_TEXT_MAX 64
#define REQUEST_TYPE_MAX 128

/* ---- parse state ---- */

struct text_field {
    char *buf;  /* NUL-terminated: buf[len] == 0 always (the buffers start zeroed) */
    size_t max; /* bytes without the NUL */
    size_t *len;
};

struct soap_ctx {
    XML_Parser parser;
    struct signer_soap_request *out;
    char *reason;
    enum signer_code code;
    bool failed;
    bool has_device_id;
    unsigned depth;
    unsigned num_elements;
    uint32_t seen; /* bit (1 << enum el) per element met */
    enum el stack[SIGNER_SOAP_DEPTH_MAX];
    size_t lens[EL_MAX_]; /* text bytes collected per element */
    char password_type[8];
    char request_type[REQUEST_TYPE_MAX + 1];
    char created[TIME_TEXT_MAX + 1];
    char expires[TIME_TEXT_MAX + 1];
    size_t csr_text_len;
    char csr_text[SIGNER_CSR_TEXT_MAX]; /* base64, whitespace already removed */
};

static_assert(EL_MAX_ <= 32, "seen is a 32-bit mask");

/* fail records the first failure and stops expat: after XML_StopParser no handler runs again. */
__attribute__((format(printf, 3, 4))) static void fail(struct soap_ctx *c, enum signer_code code,
                                                       const char *fmt, ...)
{
    if (c->failed) {
        return;
    }
    c->failed = true;
    c->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->reason, SIGNER_REASON_MAX, fmt, ap); /* cut, never overflows */
    va_end(ap);
    if (c->parser != NULL) {
        XML_StopParser(c->parser, XML_FALSE);
    }
}

static bool xml_space(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r';
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s);
    size_t m = strlen(suffix);
    return n >= m && memcmp(s + n - m, suffix, m) == 0;
}

/* ends_with_nocase: Microsoft's own [MS-OCAUTHWS] examples spell the EncodingType fragment
 * "#base64binary", WS-Security "#Base64Binary": phones send either. */
static bool ends_with_nocase(const char *s, const char *suffix)
{
    size_t n = strlen(s);
    size_t m = strlen(suffix);
    return n >= m && strcasecmp(s + n - m, suffix) == 0;
}

/* split_name splits expat's "uri\x01local" (or "local") into a namespace and a local name. */
static enum ns split_name(const char **out_local, const XML_Char *name)
{
    const char *sep = strchr(name, NS_SEP);
    if (sep == NULL) {
        *out_local = name;
        return NS_NONE;
    }
    *out_local = sep + 1;
    size_t uri_len = (size_t)(sep - name);
    for (size_t i = 0; i < ARRAY_LEN(ns_table); i++) {
        if (strlen(ns_table[i].uri) == uri_len && memcmp(ns_table[i].uri, name, uri_len) == 0) {
            return ns_table[i].ns;
        }
    }
    return NS_NONE;
}

/* classify names the element `name` met under `parent`, or fails the parse. */
static enum el classify(struct soap_ctx *c, enum el parent, const XML_Char *name)
{
    const char *local = NULL;
    enum ns ns = split_name(&local, name);
    for (size_t i = 0; i < ARRAY_LEN(rules); i++) {
        const struct rule *r = &rules[i];
        if (r->parent != parent || strcmp(r->local, local) != 0) {
            continue;
        }
        if (r->ns == ns) {
            return r->el;
        }
        if (r->ns_label != NULL) {
            fail(c, SIGNER_CODE_BAD_REQUEST, "%s is not in the %s namespace", r->local,
                 r->ns_label);
            return EL_OTHER;
        }
    }
    if (parent == EL_ROOT) {
        fail(c, SIGNER_CODE_BAD_REQUEST, "the root element is not a SOAP Envelope");
    } else if (parent == EL_BODY) {
        fail(c, SIGNER_CODE_BAD_REQUEST, "no GetAndPublishCert element: the Body holds another");
    }
    return EL_OTHER;
}

/* text_field_of says where the text of `el` goes; false for elements whose text we ignore. */
static bool text_field_of(struct soap_ctx *c, enum el el, struct text_field *f)
{
    struct signer_soap_request *o = c->out;
    f->len = &c->lens[el];
    switch (el) {
    case EL_USERNAME:
        f->buf = o->username, f->max = SIGNER_SOAP_USERNAME_MAX;
        return true;
    case EL_PASSWORD:
        f->buf = o->password, f->max = SIGNER_SOAP_PASSWORD_MAX;
        return true;
    case EL_ACTION:
        f->buf = o->action, f->max = SIGNER_SOAP_ACTION_MAX;
        return true;
    case EL_REQUEST_ID:
        f->buf = o->request_id, f->max = SIGNER_SOAP_REQUEST_ID_MAX;
        return true;
    case EL_REQUEST_TYPE:
        f->buf = c->request_type, f->max = REQUEST_TYPE_MAX;
        return true;
    case EL_CREATED:
        f->buf = c->created, f->max = TIME_TEXT_MAX;
        return true;
    case EL_EXPIRES:
        f->buf = c->expires, f->max = TIME_TEXT_MAX;
        return true;
    default:
        return false;
    }
}

/* copy_attr copies an attribute value into `dst` (max bytes + NUL); control characters and
 * over-long values fail the parse. */
static void copy_attr(struct soap_ctx *c, char *dst, size_t max, const char *what,
                      const XML_Char *value)
{
    size_t n = strlen(value);
    if (n > max) {
        fail(c, SIGNER_CODE_BAD_REQUEST, "%s is longer than %zu bytes", what, max);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)value[i] < 0x20 || value[i] == 0x7f) {
            fail(c, SIGNER_CODE_BAD_REQUEST, "%s has a control character", what);
            return;
        }
    }
    memcpy(dst, value, n + 1);
}

/* Attributes come in name/value pairs; unqualified ones carry no namespace, so their expat name
 * is the bare local name. */
static void gapc_attrs(struct soap_ctx *c, const XML_Char **atts)
{
    for (size_t i = 0; atts[i] != NULL && atts[i + 1] != NULL; i += 2) {
        if (strcmp(atts[i], "Entity") == 0) {
            copy_attr(c, c->out->entity, SIGNER_SOAP_ENTITY_MAX, "Entity", atts[i + 1]);
        } else if (strcmp(atts[i], "DeviceId") == 0) {
            c->has_device_id = true;
            copy_attr(c, c->out->device_id, SIGNER_SOAP_DEVICE_ID_MAX, "DeviceId", atts[i + 1]);
        }
    }
}

static void bst_attrs(struct soap_ctx *c, const XML_Char **atts)
{
    bool pkcs10 = false;
    for (size_t i = 0; atts[i] != NULL && atts[i + 1] != NULL; i += 2) {
        if (strcmp(atts[i], "ValueType") == 0) {
            pkcs10 = ends_with(atts[i + 1], "#PKCS10");
        } else if (strcmp(atts[i], "EncodingType") == 0 &&
                   !ends_with_nocase(atts[i + 1], "#Base64Binary")) {
            fail(c, SIGNER_CODE_BAD_REQUEST,
                 "BinarySecurityToken EncodingType is not "
                 "Base64Binary");
        }
    }
    if (!pkcs10) {
        fail(c, SIGNER_CODE_BAD_REQUEST, "BinarySecurityToken ValueType is not PKCS10");
    }
}

/* WS-Trust 1.3 §3.1: RequestSecurityToken/@Context, an optional URI echoed on the response. */
static void rst_attrs(struct soap_ctx *c, const XML_Char **atts)
{
    for (size_t i = 0; atts[i] != NULL && atts[i + 1] != NULL; i += 2) {
        if (strcmp(atts[i], "Context") == 0) {
            copy_attr(c, c->out->context, SIGNER_SOAP_CONTEXT_MAX, "Context", atts[i + 1]);
        }
    }
}

static void password_attrs(struct soap_ctx *c, const XML_Char **atts)
{
    for (size_t i = 0; atts[i] != NULL && atts[i + 1] != NULL; i += 2) {
        if (strcmp(atts[i], "Type") == 0 && !ends_with(atts[i + 1], "#PasswordText")) {
            fail(c, SIGNER_CODE_BAD_REQUEST, "UsernameToken Password Type is not PasswordText");
        }
    }
}

/* ---- expat handlers ---- */

static void XMLCALL on_start(void *ud, const XML_Char *name, const XML_Char **atts)
{
    struct soap_ctx *c = ud;
    if (c->failed) {
        return;
    }
    if (c->depth >= SIGNER_SOAP_DEPTH_MAX) {
        fail(c, SIGNER_CODE_BAD_REQUEST, "element nesting deeper than %d", SIGNER_SOAP_DEPTH_MAX);
        return;
    }
    if (++c->num_elements > SIGNER_SOAP_ELEMENTS_MAX) {
        fail(c, SIGNER_CODE_BAD_REQUEST, "more than %d elements", SIGNER_SOAP_ELEMENTS_MAX);
        return;
    }
    enum el parent = c->depth == 0 ? EL_ROOT : c->stack[c->depth - 1];
    enum el el = parent == EL_OTHER ? EL_OTHER : classify(c, parent, name);
    if (c->failed) {
        return;
    }
    ASSERT(el != EL_ROOT);
    ASSERT((unsigned)el < EL_MAX_);
    if (el != EL_OTHER) {
        if ((c->seen & (1u << el)) != 0) {
            fail(c, SIGNER_CODE_BAD_REQUEST, "more than one %s element", el_names[el]);
            return;
        }
        c->seen |= 1u << el;
    }
    c->stack[c->depth++] = el;
    if (el == EL_ENVELOPE) {
        /* Both versions' namespaces classify as NS_SOAP; the answer follows the request's. */
        c->out->soap12 = strncmp(name, NS_SOAP12_URI "\x01", strlen(NS_SOAP12_URI) + 1) == 0;
    } else if (el == EL_GAPC) {
        gapc_attrs(c, atts);
    } else if (el == EL_RST) {
        rst_attrs(c, atts);
    } else if (el == EL_BST) {
        bst_attrs(c, atts);
    } else if (el == EL_PASSWORD) {
        password_attrs(c, atts);
    }
}

static void XMLCALL on_end(void *ud, const XML_Char *name)
{
    struct soap_ctx *c = ud;
    (void)name;
    if (c->failed) {
        return;
    }
    ASSERT(c->depth > 0); /* expat pairs end tags with start tags */
    c->depth--;
}

static void append_csr_text(struct soap_ctx *c, const XML_Char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (xml_space(s[i])) {
            continue;
        }
        if (c->csr_text_len == sizeof(c->csr_text)) {
            fail(c, SIGNER_CODE_BAD_CSR, "the CSR text is longer than %d bytes",
                 SIGNER_CSR_TEXT_MAX);
            return;
        }
        c->csr_text[c->csr_text_len++] = s[i];
    }
}

static void XMLCALL on_text(void *ud, const XML_Char *s, int len)
{
    struct soap_ctx *c = ud;
    if (c->failed || c->depth == 0 || len <= 0) {
        return;
    }
    enum el el = c->stack[c->depth - 1];
    if (el == EL_BST) {
        append_csr_text(c, s, (size_t)len);
        return;
    }
    struct text_field f;
    if (!text_field_of(c, el, &f)) {
        return;
    }
    if ((size_t)len > f.max - *f.len) {
        fail(c, SIGNER_CODE_BAD_REQUEST, "%s is longer than %zu bytes", el_names[el], f.max);
        return;
    }
    memcpy(f.buf + *f.len, s, (size_t)len);
    *f.len += (size_t)len;
    ASSERT(*f.len <= f.max);
    ASSERT(f.buf[*f.len] == '\0');
}

static void XMLCALL on_doctype(void *ud, const XML_Char *doctype_name, const XML_Char *sysid,
                               const XML_Char *pubid, int has_internal_subset)
{
    (void)doctype_name, (void)sysid, (void)pubid, (void)has_internal_subset;
    fail(ud, SIGNER_CODE_BAD_REQUEST, "DTDs are not allowed");
}

/* Unreachable while on_doctype stops every DTD; kept as a second lock on the same door. */
static void XMLCALL on_entity_decl(void *ud, const XML_Char *entity_name, int is_parameter,
                                   const XML_Char *value, int value_len, const XML_Char *base,
                                   const XML_Char *sysid, const XML_Char *pubid,
                                   const XML_Char *notation)
{
    (void)entity_name, (void)is_parameter, (void)value, (void)value_len, (void)base;
    (void)sysid, (void)pubid, (void)notation;
    fail(ud, SIGNER_CODE_BAD_REQUEST, "entity declarations are not allowed");
}

/* ---- after the parse: checks and conversions ---- */

static void trim(char *s, size_t *len)
{
    size_t a = 0;
    size_t b = *len;
    while (a < b && xml_space(s[a])) {
        a++;
    }
    while (b > a && xml_space(s[b - 1])) {
        b--;
    }
    memmove(s, s + a, b - a);
    memset(s + (b - a), 0, *len - (b - a)); /* wipes the tail too (the password) */
    *len = b - a;
}

static bool is_hex(char ch)
{
    return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F');
}

/* guid_valid accepts "{xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx}" with or without the braces. */
static bool guid_valid(const char *s)
{
    static const char shape[] = "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx";
    size_t n = strlen(s);
    if (n == sizeof(shape) + 1 && s[0] == '{' && s[n - 1] == '}') {
        s++;
        n -= 2;
    }
    if (n != sizeof(shape) - 1) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (shape[i] == '-' ? s[i] != '-' : !is_hex(s[i])) {
            return false;
        }
    }
    return true;
}

/* digits reads exactly `n` decimal digits at *p. */
static bool digits(const char **p, unsigned n, unsigned *out)
{
    unsigned v = 0;
    for (unsigned i = 0; i < n; i++) {
        char ch = (*p)[i];
        if (ch < '0' || ch > '9') {
            return false;
        }
        v = v * 10 + (unsigned)(ch - '0');
    }
    *p += n;
    *out = v;
    return true;
}

static bool expect(const char **p, char ch)
{
    if (**p != ch) {
        return false;
    }
    (*p)++;
    return true;
}

/* days_from_civil counts days from 1970-01-01 to y-m-d of the proleptic Gregorian calendar
 * (H. Hinnant's algorithm), independent of the process time zone. */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

/* iso8601_ms parses "YYYY-MM-DDTHH:MM:SS[.fff...][Z|+HH:MM|-HH:MM]" (xsd:dateTime; no zone means
 * UTC) into milliseconds since the epoch. */
static bool iso8601_ms(const char *s, int64_t *out)
{
    unsigned y, mo, d, h, mi, sec, ms = 0;
    if (!digits(&s, 4, &y) || !expect(&s, '-') || !digits(&s, 2, &mo) || !expect(&s, '-') ||
        !digits(&s, 2, &d) || !expect(&s, 'T') || !digits(&s, 2, &h) || !expect(&s, ':') ||
        !digits(&s, 2, &mi) || !expect(&s, ':') || !digits(&s, 2, &sec)) {
        return false;
    }
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60) {
        return false;
    }
    if (*s == '.') {
        s++;
        unsigned scale = 100;
        if (*s < '0' || *s > '9') {
            return false;
        }
        for (; *s >= '0' && *s <= '9'; s++) {
            ms += scale * (unsigned)(*s - '0');
            scale /= 10;
        }
    }
    int64_t offset_min = 0;
    if (*s == 'Z') {
        s++;
    } else if (*s == '+' || *s == '-') {
        int sign = *s == '-' ? -1 : 1;
        unsigned oh, om;
        s++;
        if (!digits(&s, 2, &oh) || !expect(&s, ':') || !digits(&s, 2, &om) || oh > 14 || om > 59) {
            return false;
        }
        offset_min = sign * (int64_t)(oh * 60 + om);
    }
    if (*s != '\0') {
        return false;
    }
    int64_t days = days_from_civil(y, mo, d);
    int64_t secs = days * 86400 + h * 3600 + mi * 60 + sec - offset_min * 60;
    *out = secs * 1000 + ms;
    return true;
}

static void finish_lifetime(struct soap_ctx *c)
{
    if ((c->seen & (1u << EL_LIFETIME)) == 0) {
        return; /* lifetime_hours stays 0: the profile default */
    }
    trim(c->created, &c->lens[EL_CREATED]);
    trim(c->expires, &c->lens[EL_EXPIRES]);
    int64_t created = 0;
    int64_t expires = 0;
    if (c->lens[EL_CREATED] == 0 || c->lens[EL_EXPIRES] == 0) {
        fail(c, SIGNER_CODE_BAD_REQUEST, "Lifetime needs both Created and Expires");
    } else if (!iso8601_ms(c->created, &created) || !iso8601_ms(c->expires, &expires)) {
        fail(c, SIGNER_CODE_BAD_REQUEST, "Lifetime Created or Expires is not an ISO 8601 time");
    } else if (expires <= created) {
        fail(c, SIGNER_CODE_BAD_REQUEST, "Lifetime Expires is not after Created");
    } else {
        /* Both lie in years 0000..9999: the difference fits in far fewer than 32 bits of hours. */
        int64_t hours = (expires - created + 3600000 - 1) / 3600000;
        ASSERT(hours > 0 && hours <= UINT32_MAX);
        c->out->lifetime_hours = (uint32_t)hours;
    }
}

/* pem_strip finds the base64 body of a PEM CERTIFICATE REQUEST (RFC 7468 §7, or the "NEW ..."
 * label old Microsoft tools write) in the CSR text, whose whitespace append_csr_text already
 * dropped ("-----BEGINCERTIFICATEREQUEST-----MIIB...-----ENDCERTIFICATEREQUEST-----"). Returns
 * true with the body in [*body, *body + *len), false when the armour is not that. */
static bool pem_strip(const char *text, size_t text_len, const char **body, size_t *len)
{
    static const char *const labels[] = {"CERTIFICATEREQUEST", "NEWCERTIFICATEREQUEST"};
    for (size_t i = 0; i < ARRAY_LEN(labels); i++) {
        char begin[48];
        char end[48];
        int nb = snprintf(begin, sizeof(begin), "-----BEGIN%s-----", labels[i]);
        int ne = snprintf(end, sizeof(end), "-----END%s-----", labels[i]);
        ASSERT(nb > 0 && (size_t)nb < sizeof(begin) && ne > 0 && (size_t)ne < sizeof(end));
        if (text_len < (size_t)nb + (size_t)ne || memcmp(text, begin, (size_t)nb) != 0 ||
            memcmp(text + text_len - (size_t)ne, end, (size_t)ne) != 0) {
            continue;
        }
        *body = text + nb;
        *len = text_len - (size_t)nb - (size_t)ne;
        return true;
    }
    return false;
}

/* finish_csr decodes the BinarySecurityToken: base64 of the DER CSR (EncodingType Base64Binary,
 * [MS-OCAUTHWS] §3.1.4.1; padded or not: the last quantum may leave out its '='), or the same
 * inside PEM armour (what some provisioning tools paste). */
static void finish_csr(struct soap_ctx *c)
{
    struct signer_soap_request *o = c->out;
    if (c->csr_text_len == 0) {
        fail(c, SIGNER_CODE_BAD_REQUEST, "the BinarySecurityToken holds no CSR");
        return;
    }
    const char *text = c->csr_text;
    size_t text_len = c->csr_text_len;
    if (text_len >= 5 && memcmp(text, "-----", 5) == 0 &&
        !pem_strip(c->csr_text, c->csr_text_len, &text, &text_len)) {
        fail(c, SIGNER_CODE_BAD_CSR,
             "the BinarySecurityToken is not a PEM CERTIFICATE REQUEST (or base64 of a DER CSR)");
        return;
    }
    size_t len = 0;
    int rc = signer_base64_decode(o->csr_der, sizeof(o->csr_der), &len, text, text_len,
                                  SIGNER_BASE64_UNPADDED | SIGNER_BASE64_PUBLIC);
    if (rc == -E2BIG) {
        fail(c, SIGNER_CODE_BAD_CSR, "%s", signer_reject_text(SIGNER_REJECT_CSR_TOO_LARGE));
        return;
    }
    if (rc != 0 || len < 2 || o->csr_der[0] != 0x30) {
        fail(c, SIGNER_CODE_BAD_CSR, "the BinarySecurityToken is not base64 of a DER CSR");
        return;
    }
    ASSERT(len <= sizeof(o->csr_der));
    o->csr_der_len = len;
}

static bool seen(const struct soap_ctx *c, enum el el)
{
    return (c->seen & (1u << el)) != 0;
}

/* finish checks what the handlers could not (presence, values) once the document is complete. */
static void finish(struct soap_ctx *c)
{
    struct signer_soap_request *o = c->out;
    ASSERT(!c->failed);
    ASSERT(seen(c, EL_ENVELOPE));
    for (enum el el = EL_USERNAME; el <= EL_REQUEST_ID; el++) {
        struct text_field f;
        if (text_field_of(c, el, &f)) {
            trim(f.buf, f.len);
        }
    }
    if (!seen(c, EL_GAPC)) {
        fail(c, SIGNER_CODE_BAD_REQUEST, "no GetAndPublishCert element in the SOAP Body");
    } else if (o->entity[0] == '\0') {
        fail(c, SIGNER_CODE_BAD_REQUEST, "GetAndPublishCert has no Entity attribute");
    } else if (c->has_device_id && !guid_valid(o->device_id)) {
        fail(c, SIGNER_CODE_BAD_REQUEST, "DeviceId is not a GUID in braces");
    } else if (!seen(c, EL_RST)) {
        fail(c, SIGNER_CODE_BAD_REQUEST, "GetAndPublishCert holds no RequestSecurityToken");
    } else if (!seen(c, EL_BST)) {
        fail(c, SIGNER_CODE_BAD_REQUEST, "no BinarySecurityToken with the CSR");
    } else if (!seen(c, EL_REQUEST_TYPE) || strcmp(c->request_type, WST_ISSUE) != 0) {
        fail(c, SIGNER_CODE_BAD_REQUEST, "RequestType is not " WST_ISSUE);
    } else if (seen(c, EL_USERNAME_TOKEN) && (!seen(c, EL_USERNAME) || !seen(c, EL_PASSWORD))) {
        fail(c, SIGNER_CODE_BAD_REQUEST, "UsernameToken needs both Username and Password");
    }
    if (c->failed) {
        return;
    }
    o->has_username_token = seen(c, EL_USERNAME_TOKEN);
    finish_lifetime(c);
    if (!c->failed) {
        finish_csr(c);
    }
}

/* ---- expat memory: every block is wiped ----
 *
 * Expat copies input (the PIN among it) into blocks of its own. A parse takes them from its
 * thread's arena (ARENA_SIZE bytes: the bench's 1.5 KiB request takes 11 KiB of it, the 2.6 KiB
 * phone request of tests/data/soap 15 KiB) by bumping a pointer, and wipes what it used once at
 * the end: malloc and free for each block, each wiped on its own, were a tenth of the parse. A
 * block that does not fit comes from malloc with its size in a header, and is wiped when freed. */

#define WIPE_HDR alignof(max_align_t)
#define ARENA_SIZE 65536

struct arena {
    alignas(max_align_t) uint8_t mem[ARENA_SIZE];
    size_t used; /* bytes handed out (each block after a WIPE_HDR header holding its size) */
    bool busy;   /* a parse of this thread is using it */
};

static _Thread_local struct arena tl_arena; /* thread storage: freed with the thread */

static bool in_arena(const struct arena *a, const void *ptr)
{
    return (const uint8_t *)ptr >= a->mem && (const uint8_t *)ptr < a->mem + ARENA_SIZE;
}

static void *wipe_malloc(size_t n)
{
    if (n > SIZE_MAX - 2 * WIPE_HDR) {
        return NULL;
    }
    struct arena *a = &tl_arena;
    size_t need = WIPE_HDR + (n + WIPE_HDR - 1) / WIPE_HDR * WIPE_HDR;
    uint8_t *p = NULL;
    if (a->busy && need <= ARENA_SIZE - a->used) {
        p = a->mem + a->used;
        a->used += need;
    } else if ((p = malloc(n + WIPE_HDR)) == NULL) {
        return NULL;
    }
    memcpy(p, &n, sizeof(n));
    return p + WIPE_HDR;
}

static size_t wipe_size(const void *ptr)
{
    size_t n = 0;
    memcpy(&n, (const uint8_t *)ptr - WIPE_HDR, sizeof(n));
    return n;
}

static void wipe_free(void *ptr)
{
    if (ptr == NULL || in_arena(&tl_arena, ptr)) {
        return; /* an arena block is wiped with the rest when the parse ends */
    }
    uint8_t *p = (uint8_t *)ptr - WIPE_HDR;
    OPENSSL_cleanse(p, wipe_size(ptr) + WIPE_HDR);
    free(p);
}

static void *wipe_realloc(void *ptr, size_t n)
{
    if (ptr == NULL) {
        return wipe_malloc(n);
    }
    void *q = wipe_malloc(n);
    if (q == NULL) {
        return NULL; /* like realloc: the old block stays valid */
    }
    size_t old = wipe_size(ptr);
    memcpy(q, ptr, old < n ? old : n);
    wipe_free(ptr);
    return q;
}

static const XML_Memory_Handling_Suite wipe_suite = {
    .malloc_fcn = wipe_malloc,
    .realloc_fcn = wipe_realloc,
    .free_fcn = wipe_free,
};

/* arena_take makes this thread's arena the parse's. */
static struct arena *arena_take(void)
{
    struct arena *a = &tl_arena;
    ASSERT(!a->busy); /* one parse at a time per thread: no handler parses */
    ASSERT(a->used == 0);
    a->busy = true;
    return a;
}

/* arena_wipe wipes what the parse used, once expat has freed everything. */
static void arena_wipe(struct arena *a)
{
    OPENSSL_cleanse(a->mem, a->used);
    a->used = 0;
    a->busy = false;
}

/* ---- parse ---- */

/* hash_salt is the key of expat's hash tables (SipHash: no crafted names collide without it),
 * drawn once per thread: expat draws its own per parser otherwise (arc4random, 0.4 us). */
static unsigned long hash_salt(void)
{
    static _Thread_local unsigned long salt;
    while (salt == 0) {
        int ok = RAND_bytes((uint8_t *)&salt, sizeof(salt));
        ASSERT(ok == 1); /* BoringSSL's RAND_bytes aborts rather than fail */
    }
    return salt;
}

static int parse_run(struct soap_ctx *c, const uint8_t *body, size_t body_len)
{
    static const XML_Char sep[] = {NS_SEP, '\0'};
    struct arena *a = arena_take();
    XML_Parser p = XML_ParserCreate_MM(NULL, &wipe_suite, sep);
    if (p == NULL) {
        arena_wipe(a);
        fail(c, SIGNER_CODE_INTERNAL_ERROR, "out of memory for the XML parser");
        return -ENOMEM;
    }
    c->parser = p;
    XML_SetUserData(p, c);
    XML_SetElementHandler(p, on_start, on_end);
    XML_SetCharacterDataHandler(p, on_text);
    XML_SetStartDoctypeDeclHandler(p, on_doctype);
    XML_SetEntityDeclHandler(p, on_entity_decl);
    XML_SetParamEntityParsing(p, XML_PARAM_ENTITY_PARSING_NEVER);
    (void)XML_SetHashSalt(p, hash_salt()); /* before the parse starts: it cannot fail here */
    static const char empty[1] = "";
    const char *text = body_len == 0 ? empty : (const char *)body;
    /* body_len <= SIGNER_SOAP_BODY_MAX fits in an int (ASSERTed by the caller). */
    enum XML_Status st = XML_Parse(p, text, (int)body_len, XML_TRUE);
    if (st != XML_STATUS_OK && !c->failed) {
        c->parser = NULL; /* the parse is over: nothing to stop */
        fail(c, SIGNER_CODE_BAD_REQUEST, "not well-formed XML: %s at line %lu column %lu",
             XML_ErrorString(XML_GetErrorCode(p)), (unsigned long)XML_GetCurrentLineNumber(p),
             (unsigned long)XML_GetCurrentColumnNumber(p));
    }
    c->parser = NULL;
    XML_ParserFree(p);
    arena_wipe(a);
    if (!c->failed) {
        finish(c);
    }
    return c->failed ? -EBADMSG : 0;
}

int signer_soap_parse(struct signer_soap_request *out, enum signer_code *out_code, char *reason,
                      const uint8_t *body, size_t body_len, size_t max_len)
{
    ASSERT(out != NULL);
    ASSERT(out_code != NULL);
    ASSERT(reason != NULL);
    ASSERT(body != NULL || body_len == 0);
    ASSERT(max_len > 0 && max_len <= SIGNER_SOAP_BODY_MAX);
    static_assert(SIGNER_SOAP_BODY_MAX <= INT32_MAX, "expat takes an int length");
    /* csr_der, 16 KiB, is written only up to csr_der_len: zeroing and wiping it whole was most of
     * the parse's memset (with csr_text below: 4 x 16-32 KiB a request) */
    memset(out, 0, offsetof(struct signer_soap_request, csr_der));
    if (body_len > max_len) {
        *out_code = SIGNER_CODE_TOO_LARGE;
        snprintf(reason, SIGNER_REASON_MAX, "the request is larger than %zu bytes", max_len);
        return -E2BIG;
    }
    struct soap_ctx c;
    memset(&c, 0, offsetof(struct soap_ctx, csr_text)); /* csr_text: up to csr_text_len */
    c.out = out;
    c.reason = reason;
    int rc = parse_run(&c, body, body_len);
    if (rc != 0) {
        ASSERT(c.failed);
        OPENSSL_cleanse(out, sizeof(*out));
        *out_code = c.code;
        rc = c.code == SIGNER_CODE_INTERNAL_ERROR ? rc : -EBADMSG;
    } else {
        ASSERT(out->entity[0] != '\0');
        ASSERT(out->csr_der_len > 0);
    }
    OPENSSL_cleanse(c.csr_text, c.csr_text_len);
    OPENSSL_cleanse(&c, offsetof(struct soap_ctx, csr_text));
    return rc;
}

void signer_soap_request_cleanup(struct signer_soap_request *req)
{
    if (req != NULL) {
        size_t der =
            req->csr_der_len < sizeof(req->csr_der) ? req->csr_der_len : sizeof(req->csr_der);
        OPENSSL_cleanse(req->csr_der, der);
        OPENSSL_cleanse(req, offsetof(struct signer_soap_request, csr_der));
    }
}

/* ---- responses ---- */

#define NS_SOAP11 "http://schemas.xmlsoap.org/soap/envelope/"
#define NS_AUTH_URI "http://schemas.microsoft.com/OCS/AuthWebServices/"
#define NS_WST_URI "http://docs.oasis-open.org/ws-sx/ws-trust/200512"
#define NS_WSSE_URI                                                                                \
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
#define NS_ENR_URI "http://schemas.microsoft.com/windows/pki/2009/01/enrollment"
#define X509V3                                                                                     \
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-x509-token-profile-1.0#X509v3"
#define BASE64BINARY                                                                               \
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0"            \
    "#Base64Binary"

#define XML_DECL "<?xml version=\"1.0\" encoding=\"utf-8\"?>"
#define XML_HEAD_REST "\"><s:Body><GetAndPublishCertResponse xmlns=\"" NS_AUTH_URI "\">"
#define XML_TAIL "</GetAndPublishCertResponse></s:Body></s:Envelope>"

/* wbuf writes into a caller buffer; once something does not fit, it stays failed. */
struct wbuf {
    char *p;
    size_t cap;
    size_t len;
    bool over;
};

static void put_bytes(struct wbuf *w, const char *s, size_t n)
{
    if (w->over || n >= w->cap - w->len) { /* keep room for the NUL */
        w->over = true;
        return;
    }
    memcpy(w->p + w->len, s, n);
    w->len += n;
    w->p[w->len] = '\0';
}

static void put(struct wbuf *w, const char *s)
{
    put_bytes(w, s, strlen(s));
}

/* put_escaped writes `s` as XML character data or attribute value. Characters XML 1.0 cannot
 * carry at all (C0 controls other than tab, LF and CR) become '?'. */
static void put_escaped(struct wbuf *w, const char *s)
{
    for (; *s != '\0' && !w->over; s++) {
        switch (*s) {
        case '&':
            put(w, "&amp;");
            break;
        case '<':
            put(w, "&lt;");
            break;
        case '>':
            put(w, "&gt;");
            break;
        case '"':
            put(w, "&quot;");
            break;
        case '\'':
            put(w, "&apos;");
            break;
        case '\r':
            put(w, "&#13;"); /* a literal CR would be normalised away by the reader */
            break;
        default:
            put_bytes(w, (unsigned char)*s < 0x20 && *s != '\t' && *s != '\n' ? "?" : s, 1);
            break;
        }
    }
}

static void put_base64(struct wbuf *w, const uint8_t *der, size_t len)
{
    if (w->over || len > w->cap || BASE_B64_LEN(len) + 1 > w->cap - w->len) { /* NUL included */
        w->over = true;
        return;
    }
    w->len += base_b64_encode(w->p + w->len, w->cap - w->len, der, len);
    ASSERT(w->len < w->cap);
    ASSERT(w->p[w->len] == '\0');
}

static void put_request_id(struct wbuf *w, const char *request_id)
{
    if (request_id != NULL && request_id[0] != '\0') {
        put(w, "<RequestID xmlns=\"" NS_ENR_URI "\">");
        put_escaped(w, request_id);
        put(w, "</RequestID>");
    }
}

static int wbuf_end(struct wbuf *w, size_t *out_len)
{
    if (w->over) {
        w->p[0] = '\0';
        return -E2BIG;
    }
    ASSERT(w->len < w->cap);
    ASSERT(w->p[w->len] == '\0');
    *out_len = w->len;
    return 0;
}

/* put_chain writes the [MS-WSTEP] RSTR's PKCS#7 element: a certs-only PKCS#7 of the issued
 * certificate and the CA chain, written straight into the buffer (signer_est_certs_only uses the
 * room left as its scratch). Returns 0 (w->over set when it did not fit) or -EBADMSG. */
static int put_chain(struct wbuf *w, const uint8_t *cert_der, size_t cert_len,
                     const struct signer_soap_reply *reply)
{
    ASSERT(reply->chain != NULL);
    ASSERT(reply->num_chain < SIGNER_EST_CERTS_MAX);
    struct signer_est_cert certs[SIGNER_EST_CERTS_MAX];
    certs[0] = (struct signer_est_cert){.der = cert_der, .der_len = cert_len};
    for (size_t i = 0; i < reply->num_chain; i++) {
        certs[i + 1] = reply->chain[i];
    }
    put(w, "<wsse:BinarySecurityToken xmlns:wsse=\"" NS_WSSE_URI "\" ValueType=\"" SIGNER_SOAP_PKCS7
           "\" EncodingType=\"" BASE64BINARY "\">");
    if (w->over) {
        return 0;
    }
    size_t n = 0;
    int rc = signer_est_certs_only(w->p + w->len, w->cap - w->len, &n, certs, reply->num_chain + 1);
    if (rc == -E2BIG) {
        w->over = true;
        return 0;
    }
    if (rc != 0) {
        return rc;
    }
    ASSERT(n < w->cap - w->len);
    w->len += n;
    put(w, "</wsse:BinarySecurityToken>");
    return 0;
}

/* put_head writes the XML declaration, the envelope of the reply's SOAP version (1.1, or 1.2 per
 * the SOAP 1.2 Part 1 §5.1 namespace) and the GetAndPublishCertResponse start tag. */
static void put_head(struct wbuf *w, const struct signer_soap_reply *reply)
{
    put(w, XML_DECL "<s:Envelope xmlns:s=\"");
    put(w, reply->soap12 ? NS_SOAP12_URI : NS_SOAP11);
    put(w, XML_HEAD_REST);
}

int signer_soap_reply_response(char *out, size_t cap, size_t *out_len, const uint8_t *cert_der,
                               size_t cert_len, const struct signer_soap_reply *reply)
{
    ASSERT(out != NULL && cap > 0);
    ASSERT(out_len != NULL);
    ASSERT(cert_der != NULL && cert_len > 0);
    ASSERT(reply != NULL);
    struct wbuf w = {.p = out, .cap = cap};
    out[0] = '\0';
    put_head(&w, reply);
    put(&w, "<wst:RequestSecurityTokenResponse ");
    if (reply->context != NULL && reply->context[0] != '\0') {
        put(&w, "Context=\""); /* WS-Trust 1.3 §3.2: the RST's Context, unchanged */
        put_escaped(&w, reply->context);
        put(&w, "\" ");
    }
    put(&w, "xmlns:wst=\"" NS_WST_URI "\">"
            "<wst:TokenType>" X509V3 "</wst:TokenType>"
            "<wst:RequestedSecurityToken>"
            "<wsse:BinarySecurityToken xmlns:wsse=\"" NS_WSSE_URI "\" ValueType=\"" X509V3
            "\" EncodingType=\"" BASE64BINARY "\">");
    put_base64(&w, cert_der, cert_len);
    put(&w, "</wsse:BinarySecurityToken></wst:RequestedSecurityToken>");
    if (reply->num_chain > 0) {
        int rc = put_chain(&w, cert_der, cert_len, reply);
        if (rc == -EBADMSG) {
            out[0] = '\0';
            return rc;
        }
    }
    put_request_id(&w, reply->request_id);
    put(&w, "</wst:RequestSecurityTokenResponse>" XML_TAIL);
    return wbuf_end(&w, out_len);
}

int signer_soap_response(char *out, size_t cap, size_t *out_len, const uint8_t *cert_der,
                         size_t cert_len, const char *request_id)
{
    struct signer_soap_reply reply = {.request_id = request_id};
    return signer_soap_reply_response(out, cap, out_len, cert_der, cert_len, &reply);
}

int signer_soap_reply_error(char *out, size_t cap, size_t *out_len, enum signer_code code,
                            const char *reason, const struct signer_soap_reply *reply)
{
    ASSERT(out != NULL && cap > 0);
    ASSERT(out_len != NULL);
    ASSERT(reason != NULL);
    ASSERT(reply != NULL);
    struct wbuf w = {.p = out, .cap = cap};
    out[0] = '\0';
    put_head(&w, reply);
    put(&w, "<ErrorInfo><Code>");
    put(&w, signer_code_name(code));
    put(&w, "</Code><Reason>");
    put_escaped(&w, reason);
    put(&w, "</Reason></ErrorInfo>");
    put_request_id(&w, reply->request_id);
    put(&w, XML_TAIL);
    return wbuf_end(&w, out_len);
}

int signer_soap_error_response(char *out, size_t cap, size_t *out_len, enum signer_code code,
                               const char *reason, const char *request_id)
{
    struct signer_soap_reply reply = {.request_id = request_id};
    return signer_soap_reply_error(out, cap, out_len, code, reason, &reply);
}

int signer_soap_fault(char *out, size_t cap, size_t *out_len, enum signer_reason why,
                      const char *reason, bool soap12)
{
    ASSERT(out != NULL && cap > 0);
    ASSERT(out_len != NULL);
    ASSERT(reason != NULL);
    enum signer_code code = signer_reason_code(why);
    const char *fault = signer_code_fault(code); /* "wsse:Name" */
    bool server = signer_error_status(code) >= 500;
    char id[16];
    snprintf(id, sizeof(id), "%u", signer_code_diag_id(code));
    struct wbuf w = {.p = out, .cap = cap};
    out[0] = '\0';
    put(&w, XML_DECL "<s:Envelope xmlns:s=\"");
    put(&w, soap12 ? NS_SOAP12_URI : NS_SOAP11);
    put(&w, "\" xmlns:wsse=\"" NS_WSSE_URI "\"><s:Body><s:Fault>");
    if (soap12) {
        put(&w, server ? "<s:Code><s:Value>s:Receiver</s:Value>"
                       : "<s:Code><s:Value>s:Sender</s:Value>");
        if (fault != NULL) {
            put(&w, "<s:Subcode><s:Value>");
            put(&w, fault);
            put(&w, "</s:Value></s:Subcode>");
        }
        put(&w, "</s:Code><s:Reason><s:Text xml:lang=\"en-US\">");
        put_escaped(&w, reason);
        put(&w, "</s:Text></s:Reason><s:Detail>");
    } else {
        put(&w, "<faultcode>");
        put(&w, fault != NULL ? fault : server ? "s:Server" : "s:Client");
        put(&w, "</faultcode><faultstring xml:lang=\"en-US\">");
        put_escaped(&w, reason);
        put(&w, "</faultstring><detail>");
    }
    put(&w, "<af:OCSDiagnosticsFault xmlns:af=\"" NS_AUTH_URI "\"><af:Ms-Diagnostics-Fault>"
            "<af:ErrorId>");
    put(&w, id);
    put(&w, "</af:ErrorId><af:Reason>");
    put_escaped(&w, reason);
    put(&w, "</af:Reason></af:Ms-Diagnostics-Fault></af:OCSDiagnosticsFault>");
    put(&w, soap12 ? "</s:Detail>" : "</detail>");
    put(&w, "</s:Fault></s:Body></s:Envelope>");
    return wbuf_end(&w, out_len);
}

const char *signer_soap_content_type(bool soap12)
{
    return soap12 ? "application/soap+xml; charset=utf-8" : "text/xml; charset=utf-8";
}

/* header_char maps one byte to what may stand inside a quoted header parameter. */
static char header_char(char ch)
{
    unsigned char u = (unsigned char)ch;
    if (ch == '"' || ch == '\\') {
        return '\'';
    }
    if (u < 0x20 || u == 0x7f) {
        return ' ';
    }
    return u >= 0x80 ? '?' : ch;
}

int signer_diagnostics_format(char *out, size_t cap, size_t *out_len, enum signer_reason why,
                              const char *fqdn, const char *reason)
{
    static const char cut[] = "...\"";
    ASSERT(out != NULL && cap > 0);
    ASSERT(fqdn != NULL);
    ASSERT(reason != NULL);
    const char *token = signer_reason_token(why); /* letters, digits, '_': never escaped */
    enum signer_code code = signer_reason_code(why);
    const char *fault = signer_code_fault(code); /* "prefix:Name": never escaped */
    char tail[SIGNER_REASON_TOKEN_MAX + 80];
    int tail_len =
        snprintf(tail, sizeof(tail), "%s%s%s;token=\"%s\"", fault != NULL ? ";fault=\"" : "",
                 fault != NULL ? fault : "", fault != NULL ? "\"" : "", token);
    ASSERT(tail_len > 0 && (size_t)tail_len < sizeof(tail));
    struct wbuf w = {.p = out, .cap = cap};
    out[0] = '\0';
    char id[16];
    snprintf(id, sizeof(id), "%u", signer_code_diag_id(code));
    put(&w, id);
    put(&w, ";source=\"");
    for (const char *s = fqdn; *s != '\0'; s++) {
        char ch = header_char(*s);
        put_bytes(&w, &ch, 1);
    }
    put(&w, "\";reason=\"");
    /* The closing quote, or "..." and the quote when the reason is cut, and the token must still
     * fit. */
    size_t keep = sizeof(cut) + (size_t)tail_len;
    if (w.over || cap - w.len < keep) {
        out[0] = '\0';
        return -E2BIG;
    }
    size_t room = cap - w.len - keep; /* bytes of reason that always leave room for cut */
    size_t n = strlen(reason);
    size_t take = n <= room + 3 ? n : room; /* the whole reason may use the room "..." needs */
    for (size_t i = 0; i < take; i++) {
        char ch = header_char(reason[i]);
        put_bytes(&w, &ch, 1);
    }
    put(&w, take == n ? "\"" : cut);
    put(&w, tail);
    ASSERT(!w.over);
    return wbuf_end(&w, out_len);
}
