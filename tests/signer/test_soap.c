/* Tests of the CertProv SOAP codec: signer_soap_parse on the requests in tests/data/soap/ (see
 * tests/data/README.md) and on broken variants built from them, the success and error responses,
 * X-Ms-diagnostics and the Code table. Every parser input ends at a PROT_NONE guard page. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <expat.h>
#include <openssl/base64.h>

#include "base/base.h"
#include "signer/signer.h"
#include "tests/util/guard.h"

#define MAX_LEN 65536
#define BIG (4 * MAX_LEN)

/* ---- helpers ---- */

static size_t read_data(char *out, size_t cap, const char *rel)
{
    char path[256];
    snprintf(path, sizeof(path), "tests/data/%s", rel);
    size_t len = 0;
    int rc = base_file_read((uint8_t *)out, &len, cap - 1, path);
    cr_assert_eq(rc, 0, "reading %s: %d (run the tests from the repository root)", path, rc);
    out[len] = '\0';
    return len;
}

struct result {
    int rc;
    enum signer_code code;
    char reason[SIGNER_REASON_MAX];
    struct signer_soap_request req;
};

static struct result res; /* 17 KiB: kept off the stack */

static struct result *parse_bytes(const char *body, size_t len)
{
    memset(&res, 0, sizeof(res));
    res.code = SIGNER_CODE_MAX_;
    uint8_t *g = guard_copy(body, len);
    res.rc = signer_soap_parse(&res.req, &res.code, res.reason, g, len, MAX_LEN);
    guard_free(g, len);
    return &res;
}

static struct result *parse_str(const char *body)
{
    return parse_bytes(body, strlen(body));
}

static struct result *parse_file(const char *name)
{
    static char buf[MAX_LEN];
    char rel[128];
    snprintf(rel, sizeof(rel), "soap/%s", name);
    size_t len = read_data(buf, sizeof(buf), rel);
    return parse_bytes(buf, len);
}

static bool all_zero(const void *p, size_t len)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < len; i++) {
        if (b[i] != 0) {
            return false;
        }
    }
    return true;
}

/* expect_fail asserts -EBADMSG, the Code, a zeroed output and that the reason holds `needle`. */
static void expect_fail(const struct result *r, enum signer_code code, const char *needle)
{
    cr_assert_eq(r->rc, -EBADMSG, "rc %d, reason '%s'", r->rc, r->reason);
    cr_assert_eq(r->code, code, "code %s, reason '%s'", signer_code_name(r->code), r->reason);
    cr_assert(strstr(r->reason, needle) != NULL, "reason '%s' lacks '%s'", r->reason, needle);
    cr_assert(all_zero(&r->req, sizeof(r->req)), "output not wiped on failure");
}

static void expect_csr_p256(const struct result *r)
{
    static uint8_t der[SIGNER_CSR_DER_MAX];
    size_t len = 0;
    cr_assert_eq(base_file_read(der, &len, sizeof(der), "tests/data/csr/p256-sha256.der"), 0);
    cr_assert_eq(r->req.csr_der_len, len);
    cr_assert(memcmp(r->req.csr_der, der, len) == 0);
    struct signer_csr csr = {0};
    enum signer_reject reason = SIGNER_REJECT_MAX_;
    cr_assert_eq(signer_csr_parse(&csr, &reason, r->req.csr_der, r->req.csr_der_len), 0);
    cr_assert_eq(csr.key_type, SIGNER_KEY_P256);
    cr_assert_eq(signer_csr_verify(&csr, &reason), 0);
}

/* A minimal valid request with two holes: `%s` for extra GetAndPublishCert attributes... built by
 * build(): head attributes, then inner RST content before the BinarySecurityToken. */
static const char *csr_b64(void)
{
    static char b64[1024];
    if (b64[0] == '\0') {
        static char pem[4096];
        read_data(pem, sizeof(pem), "csr/p256-sha256.pem");
        char *p = strchr(pem, '\n') + 1;
        char *end = strstr(p, "-----END");
        size_t n = 0;
        for (; p < end; p++) {
            if (*p != '\n') {
                b64[n++] = *p;
            }
        }
        b64[n] = '\0';
    }
    return b64;
}

#define XML_DECL "<?xml version=\"1.0\"?>"
#define ENV_HEAD "<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\">"
#define GAPC_NS "http://schemas.microsoft.com/OCS/AuthWebServices/"
#define WST_NS "http://docs.oasis-open.org/ws-sx/ws-trust/200512/"
#define WSSE_NS "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
#define ISSUE                                                                                      \
    "<t:RequestType>http://docs.oasis-open.org/ws-sx/ws-trust/200512/Issue</t:RequestType>"
#define PKCS10 "http://schemas.microsoft.com/OCS/AuthWebServices.xsd#PKCS10"

static char built[BIG];

/* build writes a request: `header` inside s:Header (omitted when NULL), `gapc_attrs` on
 * GetAndPublishCert, `rst` inside the RequestSecurityToken after RequestType, and a
 * BinarySecurityToken of ValueType `vt` holding `csr` (omitted when csr is NULL). */
static const char *build(const char *header, const char *gapc_attrs, const char *rst,
                         const char *vt, const char *csr)
{
    char bst[2048] = "";
    if (csr != NULL) {
        snprintf(bst, sizeof(bst),
                 "<w:BinarySecurityToken ValueType=\"%s\">%s</w:BinarySecurityToken>", vt, csr);
    }
    char hdr[BIG / 2] = "";
    if (header != NULL) {
        snprintf(hdr, sizeof(hdr), "<s:Header>%s</s:Header>", header);
    }
    int n = snprintf(built, sizeof(built),
                     XML_DECL ENV_HEAD "%s<s:Body><GetAndPublishCert xmlns=\"" GAPC_NS
                                       "\" %s><t:RequestSecurityToken xmlns:t=\"" WST_NS
                                       "\" xmlns:w=\"" WSSE_NS "\">" ISSUE
                                       "%s%s</t:RequestSecurityToken></GetAndPublishCert></s:Body>"
                                       "</s:Envelope>",
                     hdr, gapc_attrs, rst, bst);
    cr_assert(n > 0 && (size_t)n < sizeof(built));
    return built;
}

/* after_decl skips the XML declaration of a built request, so that a DOCTYPE can go after it. */
static const char *after_decl(const char *s)
{
    cr_assert(strncmp(s, XML_DECL, strlen(XML_DECL)) == 0);
    return s + strlen(XML_DECL);
}

static const char *build_ok(const char *rst)
{
    return build(NULL, "Entity=\"alice@example.com\"", rst, PKCS10, csr_b64());
}

static char *repeat(char *out, size_t cap, const char *s, size_t times)
{
    size_t n = strlen(s);
    cr_assert(n * times < cap);
    for (size_t i = 0; i < times; i++) {
        memcpy(out + i * n, s, n);
    }
    out[n * times] = '\0';
    return out;
}

/* ---- successes ---- */

Test(signer_soap_parse, lync_phone_request)
{
    struct result *r = parse_file("lync-phone.xml");
    cr_assert_eq(r->rc, 0, "reason: %s", r->reason);
    cr_assert_str_eq(r->req.device_id, "{2C9F6F43-8B0A-4E5D-9E0B-7C1A33D2B6F1}");
    cr_assert_str_eq(r->req.entity, "alice@example.com");
    cr_assert_str_eq(r->req.request_id, "req-4711");
    cr_assert(r->req.has_username_token);
    cr_assert_str_eq(r->req.username, "+14255550100");
    cr_assert_str_eq(r->req.password, "50321");
    cr_assert_str_eq(r->req.action,
                     "http://schemas.microsoft.com/OCS/AuthWebServices/GetAndPublishCert");
    cr_assert_eq(r->req.lifetime_hours, 180 * 24);
    expect_csr_p256(r);
    signer_soap_request_cleanup(&r->req);
    cr_assert(all_zero(&r->req, sizeof(r->req)));
}

Test(signer_soap_parse, wst_namespace_without_slash)
{
    struct result *r = parse_file("wst-no-slash.xml");
    cr_assert_eq(r->rc, 0, "reason: %s", r->reason);
    cr_assert_str_eq(r->req.device_id, "{00000000-0000-0000-0000-000000000001}");
    cr_assert_str_eq(r->req.entity, "sip:alice@example.com");
    cr_assert_str_eq(r->req.request_id, "");
    cr_assert_not(r->req.has_username_token);
    cr_assert_str_eq(r->req.username, "");
    cr_assert_str_eq(r->req.password, "");
    cr_assert_str_eq(r->req.action, "");
    cr_assert_eq(r->req.lifetime_hours, 0);
    expect_csr_p256(r);
}

Test(signer_soap_parse, prefixes_do_not_matter)
{
    struct result *r = parse_file("prefixes.xml");
    cr_assert_eq(r->rc, 0, "reason: %s", r->reason);
    cr_assert_str_eq(r->req.device_id, "");
    cr_assert_str_eq(r->req.entity, "bob@example.com");
    cr_assert_str_eq(r->req.request_id, "r<1>");
    cr_assert(r->req.has_username_token);
    cr_assert_str_eq(r->req.username, "4711");
    cr_assert_str_eq(r->req.password, "86420");
    cr_assert_str_eq(r->req.action,
                     "http://schemas.microsoft.com/OCS/AuthWebServices/GetAndPublishCert");
    cr_assert_eq(r->req.lifetime_hours, 9, "8 h and half a second round up to 9 h");
    expect_csr_p256(r);
}

Test(signer_soap_parse, csr_whitespace_everywhere)
{
    struct result *r = parse_file("whitespace.xml");
    cr_assert_eq(r->rc, 0, "reason: %s", r->reason);
    cr_assert_str_eq(r->req.entity, "alice@example.com");
    expect_csr_p256(r);
}

/* Expat's blocks come from a per-thread arena of 64 KiB and from malloc past it: a request whose
 * buffer alone outgrows the arena (60,000 bytes of whitespace in the Body) parses as the plain one
 * does, and so does the plain one again after it, three times over (the arena is reset each time).
 */
Test(signer_soap_parse, requests_larger_than_the_arena)
{
    static char plain[MAX_LEN], big[MAX_LEN];
    size_t len = read_data(plain, sizeof(plain), "soap/lync-phone.xml");
    const char *body = strstr(plain, "Body>");
    cr_assert_not_null(body);
    size_t head = (size_t)(body - plain) + strlen("Body>");
    size_t pad = 60000;
    cr_assert_lt(len + pad, MAX_LEN);
    memcpy(big, plain, head);
    memset(big + head, ' ', pad);
    memcpy(big + head + pad, plain + head, len - head);
    for (int round = 0; round < 3; round++) {
        struct result *r = parse_bytes(big, len + pad);
        cr_assert_eq(r->rc, 0, "round %d: %s", round, r->reason);
        cr_assert_str_eq(r->req.entity, "alice@example.com");
        cr_assert_str_eq(r->req.password, "50321");
        expect_csr_p256(r);
        signer_soap_request_cleanup(&r->req);
        r = parse_bytes(plain, len);
        cr_assert_eq(r->rc, 0, "round %d: %s", round, r->reason);
        cr_assert_str_eq(r->req.username, "+14255550100");
        expect_csr_p256(r);
        signer_soap_request_cleanup(&r->req);
        cr_assert(all_zero(&r->req, sizeof(r->req)));
    }
}

Test(signer_soap_parse, soap12_envelope_and_lifetime_rounding)
{
    char body[4096];
    snprintf(
        body, sizeof(body), "%s",
        build_ok(
            "<t:Lifetime><u:Created xmlns:u=\"http://docs.oasis-open.org/wss/2004/01/"
            "oasis-200401-wss-wssecurity-utility-1.0.xsd\">2026-01-01T00:00:00Z</u:Created>"
            "<u:Expires xmlns:u=\"http://docs.oasis-open.org/wss/2004/01/"
            "oasis-200401-wss-wssecurity-utility-1.0.xsd\">2026-01-01T08:00:00.001Z</u:Expires>"
            "</t:Lifetime>"));
    char *env = strstr(body, "http://schemas.xmlsoap.org/soap/envelope/");
    cr_assert_not_null(env);
    char soap12[8192];
    snprintf(soap12, sizeof(soap12), "%.*shttp://www.w3.org/2003/05/soap-envelope%s",
             (int)(env - body), body, env + strlen("http://schemas.xmlsoap.org/soap/envelope/"));
    struct result *r = parse_str(soap12);
    cr_assert_eq(r->rc, 0, "reason: %s", r->reason);
    cr_assert_eq(r->req.lifetime_hours, 9);
}

/* The CSR as PEM (RFC 7468, both labels), or base64 without its '=' padding: accepted, the same
 * DER as the padded base64 (issue 18 §4). */
Test(signer_soap_parse, csr_unpadded_and_pem)
{
    const char *b64 = csr_b64();
    size_t n = strlen(b64);
    cr_assert(n >= 2 && b64[n - 1] == '=', "the vector needs padding for this test");
    char unpadded[1024];
    snprintf(unpadded, sizeof(unpadded), "%.*s", (int)(b64[n - 2] == '=' ? n - 2 : n - 1), b64);
    struct result *r = parse_str(build(NULL, "Entity=\"alice@example.com\"", "", PKCS10, unpadded));
    cr_assert_eq(r->rc, 0, "reason: %s", r->reason);
    expect_csr_p256(r);
    static const char *const labels[] = {"CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST"};
    for (size_t i = 0; i < ARRAY_LEN(labels); i++) {
        char pem[1536];
        snprintf(pem, sizeof(pem), "\r\n-----BEGIN %s-----\r\n%.64s\r\n%s\r\n-----END %s-----\r\n",
                 labels[i], b64, b64 + 64, labels[i]);
        r = parse_str(build(NULL, "Entity=\"alice@example.com\"", "", PKCS10, pem));
        cr_assert_eq(r->rc, 0, "%s: %s", labels[i], r->reason);
        expect_csr_p256(r);
    }
}

/* A CSR text that is not a CSR says so, not that it is too large. */
Test(signer_soap_parse, csr_refusals_say_the_true_reason)
{
    /* Not whole quanta and short: it was "must be at most 16384 bytes of DER". */
    expect_fail(parse_str(build(NULL, "Entity=\"a\"", "", PKCS10, "bm90IGEgQ1NSxy")),
                SIGNER_CODE_BAD_CSR, "not base64 of a DER CSR");
    expect_fail(parse_str(build(NULL, "Entity=\"a\"", "", PKCS10, "M")), SIGNER_CODE_BAD_CSR,
                "not base64 of a DER CSR");
    /* PEM with another label, or without its END line. */
    char pem[1536];
    snprintf(pem, sizeof(pem), "-----BEGIN CERTIFICATE-----\n%s\n-----END CERTIFICATE-----",
             csr_b64());
    expect_fail(parse_str(build(NULL, "Entity=\"a\"", "", PKCS10, pem)), SIGNER_CODE_BAD_CSR,
                "not a PEM CERTIFICATE REQUEST");
    snprintf(pem, sizeof(pem), "-----BEGIN CERTIFICATE REQUEST-----\n%s\n", csr_b64());
    expect_fail(parse_str(build(NULL, "Entity=\"a\"", "", PKCS10, pem)), SIGNER_CODE_BAD_CSR,
                "not a PEM CERTIFICATE REQUEST");
    /* Truly too large: over 16384 bytes of DER, padded or not. */
    static char big[SIGNER_CSR_TEXT_MAX];
    size_t len = (SIGNER_CSR_DER_MAX / 3 + 2) * 4;
    memset(big, 'A', len);
    big[0] = 'M';
    big[len] = '\0';
    static char body[SIGNER_CSR_TEXT_MAX + 4096];
    snprintf(body, sizeof(body), "%s", build(NULL, "Entity=\"a\"", "", PKCS10, "@"));
    char *at = strchr(body, '@');
    static char whole[SIGNER_CSR_TEXT_MAX + 8192];
    snprintf(whole, sizeof(whole), "%.*s%s%s", (int)(at - body), body, big, at + 1);
    expect_fail(parse_str(whole), SIGNER_CODE_BAD_CSR, "16384");
    big[len - 1] = '\0'; /* not whole quanta: still too large, and said so */
    snprintf(whole, sizeof(whole), "%.*s%s%s", (int)(at - body), body, big, at + 1);
    expect_fail(parse_str(whole), SIGNER_CODE_BAD_CSR, "16384");
}

/* WS-Trust 1.3 §3.1: the RST's Context attribute is kept for the RSTR; the envelope's SOAP
 * version is told apart (issue 18 §4). */
Test(signer_soap_parse, context_and_soap_version)
{
    char body[BIG];
    snprintf(body, sizeof(body), "%s", build_ok(""));
    struct result *r = parse_str(body);
    cr_assert_eq(r->rc, 0, "reason: %s", r->reason);
    cr_assert_str_eq(r->req.context, "");
    cr_assert_not(r->req.soap12);
    char *rst = strstr(body, "<t:RequestSecurityToken ");
    cr_assert_not_null(rst);
    char with[BIG];
    snprintf(with, sizeof(with), "%.*s<t:RequestSecurityToken Context=\"urn:uuid:1&amp;2\" %s",
             (int)(rst - body), body, rst + strlen("<t:RequestSecurityToken "));
    r = parse_str(with);
    cr_assert_eq(r->rc, 0, "reason: %s", r->reason);
    cr_assert_str_eq(r->req.context, "urn:uuid:1&2");
    char *env = strstr(with, "http://schemas.xmlsoap.org/soap/envelope/");
    char soap12[BIG];
    snprintf(soap12, sizeof(soap12), "%.*shttp://www.w3.org/2003/05/soap-envelope%s",
             (int)(env - with), with, env + strlen("http://schemas.xmlsoap.org/soap/envelope/"));
    r = parse_str(soap12);
    cr_assert_eq(r->rc, 0, "reason: %s", r->reason);
    cr_assert(r->req.soap12);
    cr_assert_str_eq(r->req.context, "urn:uuid:1&2");
    /* Bounded like every field, and no control characters. */
    char longctx[SIGNER_SOAP_CONTEXT_MAX + 2];
    memset(longctx, 'c', sizeof(longctx) - 1);
    longctx[sizeof(longctx) - 1] = '\0';
    snprintf(with, sizeof(with), "%.*s<t:RequestSecurityToken Context=\"%s\" %s", (int)(rst - body),
             body, longctx, rst + strlen("<t:RequestSecurityToken "));
    expect_fail(parse_str(with), SIGNER_CODE_BAD_REQUEST, "Context is longer than");
    longctx[sizeof(longctx) - 2] = '\0';
    snprintf(with, sizeof(with), "%.*s<t:RequestSecurityToken Context=\"%s\" %s", (int)(rst - body),
             body, longctx, rst + strlen("<t:RequestSecurityToken "));
    r = parse_str(with);
    cr_assert_eq(r->rc, 0, "reason: %s", r->reason);
    cr_assert_eq(strlen(r->req.context), SIGNER_SOAP_CONTEXT_MAX);
    snprintf(with, sizeof(with), "%.*s<t:RequestSecurityToken Context=\"a&#1;b\" %s",
             (int)(rst - body), body, rst + strlen("<t:RequestSecurityToken "));
    r = parse_str(with);
    cr_assert_neq(r->rc, 0); /* XML 1.0 has no &#1; at all */
}

/* ---- failures ---- */

Test(signer_soap_parse, not_xml)
{
    expect_fail(parse_str("GET / HTTP/1.1\r\n\r\n"), SIGNER_CODE_BAD_REQUEST, "not well-formed");
    expect_fail(parse_str(""), SIGNER_CODE_BAD_REQUEST, "not well-formed");
    expect_fail(parse_str("{\"Entity\": \"alice\"}"), SIGNER_CODE_BAD_REQUEST, "not well-formed");
    expect_fail(parse_bytes("\0<a/>", 5), SIGNER_CODE_BAD_REQUEST, "not well-formed");
    expect_fail(parse_str("<x/>"), SIGNER_CODE_BAD_REQUEST, "not a SOAP Envelope");
}

Test(signer_soap_parse, truncated_at_every_length)
{
    static char full[MAX_LEN];
    size_t len = read_data(full, sizeof(full), "soap/lync-phone.xml");
    const char *end = strstr(full, "</s:Envelope>");
    cr_assert_not_null(end);
    size_t complete = (size_t)(end - full) + strlen("</s:Envelope>");
    for (size_t n = 0; n < len; n++) {
        struct result *r = parse_bytes(full, n);
        if (n >= complete) {
            cr_assert_eq(r->rc, 0, "at %zu: %s", n, r->reason);
            continue;
        }
        cr_assert_eq(r->rc, -EBADMSG, "prefix of %zu bytes: rc %d", n, r->rc);
        cr_assert(r->reason[0] != '\0');
        cr_assert(all_zero(&r->req, sizeof(r->req)));
    }
}

Test(signer_soap_parse, doctype_refused)
{
    char body[BIG];
    snprintf(body, sizeof(body), XML_DECL "<!DOCTYPE s:Envelope>%s", after_decl(build_ok("")));
    expect_fail(parse_str(body), SIGNER_CODE_BAD_REQUEST, "DTDs are not allowed");
}

Test(signer_soap_parse, internal_entity_refused)
{
    char body[BIG];
    snprintf(body, sizeof(body), XML_DECL "<!DOCTYPE e [<!ENTITY who \"alice@example.com\">]>%s",
             after_decl(build(NULL, "Entity=\"&who;\"", "", PKCS10, csr_b64())));
    expect_fail(parse_str(body), SIGNER_CODE_BAD_REQUEST, "DTDs are not allowed");
}

Test(signer_soap_parse, external_entity_refused)
{
    char body[BIG];
    snprintf(body, sizeof(body),
             XML_DECL "<!DOCTYPE e [<!ENTITY x SYSTEM \"file:///etc/passwd\">]>%s",
             after_decl(build(NULL, "Entity=\"a\"",
                              "<RequestID xmlns=\"http://schemas.microsoft.com/"
                              "windows/pki/2009/01/enrollment\">&x;</RequestID>",
                              PKCS10, csr_b64())));
    expect_fail(parse_str(body), SIGNER_CODE_BAD_REQUEST, "DTDs are not allowed");
    /* Without a DTD an entity reference is simply undefined. */
    expect_fail(parse_str(build(NULL, "Entity=\"&x;\"", "", PKCS10, csr_b64())),
                SIGNER_CODE_BAD_REQUEST, "not well-formed");
}

Test(signer_soap_parse, billion_laughs_fails_fast)
{
    char body[8192];
    int n = snprintf(body, sizeof(body),
                     "<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol0 "
                     "\"lol\">");
    for (int i = 1; i < 10; i++) {
        n += snprintf(body + n, sizeof(body) - (size_t)n, "<!ENTITY lol%d \"", i);
        for (int j = 0; j < 10; j++) {
            n += snprintf(body + n, sizeof(body) - (size_t)n, "&lol%d;", i - 1);
        }
        n += snprintf(body + n, sizeof(body) - (size_t)n, "\">");
    }
    n += snprintf(body + n, sizeof(body) - (size_t)n,
                  "]>" ENV_HEAD "<s:Body>&lol9;</s:Body>"
                  "</s:Envelope>");
    cr_assert(n > 0 && (size_t)n < sizeof(body));
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    struct result *r = parse_str(body);
    clock_gettime(CLOCK_MONOTONIC, &b);
    expect_fail(r, SIGNER_CODE_BAD_REQUEST, "DTDs are not allowed");
    double ms = (double)(b.tv_sec - a.tv_sec) * 1e3 + (double)(b.tv_nsec - a.tv_nsec) / 1e6;
    cr_assert_lt(ms, 100.0, "took %.1f ms", ms);
}

Test(signer_soap_parse, too_deep)
{
    static char open_tags[1024], close_tags[1024], rst[4096];
    repeat(open_tags, sizeof(open_tags), "<x>", 40);
    repeat(close_tags, sizeof(close_tags), "</x>", 40);
    snprintf(rst, sizeof(rst), "%s%s", open_tags, close_tags);
    expect_fail(parse_str(build_ok(rst)), SIGNER_CODE_BAD_REQUEST, "nesting deeper than 32");
    /* 32 levels in all is fine: Envelope, Body, GetAndPublishCert, RST and 28 more. */
    repeat(open_tags, sizeof(open_tags), "<x>", 28);
    repeat(close_tags, sizeof(close_tags), "</x>", 28);
    snprintf(rst, sizeof(rst), "%s%s", open_tags, close_tags);
    cr_assert_eq(parse_str(build_ok(rst))->rc, 0, "%s", res.reason);
}

Test(signer_soap_parse, too_many_elements)
{
    static char many[BIG];
    repeat(many, sizeof(many), "<x/>", 600);
    expect_fail(parse_str(build(many, "Entity=\"a\"", "", PKCS10, csr_b64())),
                SIGNER_CODE_BAD_REQUEST, "more than 512 elements");
}

Test(signer_soap_parse, wrong_body_element)
{
    expect_fail(
        parse_str(ENV_HEAD "<s:Body><GetCert xmlns=\"" GAPC_NS "\"/></s:Body></s:Envelope>"),
        SIGNER_CODE_BAD_REQUEST, "no GetAndPublishCert");
    expect_fail(parse_str(ENV_HEAD "<s:Body/></s:Envelope>"), SIGNER_CODE_BAD_REQUEST,
                "no GetAndPublishCert");
    expect_fail(parse_str(ENV_HEAD "</s:Envelope>"), SIGNER_CODE_BAD_REQUEST,
                "no GetAndPublishCert");
}

Test(signer_soap_parse, wrong_namespace)
{
    expect_fail(parse_str(ENV_HEAD "<s:Body><GetAndPublishCert xmlns=\"urn:other\" "
                                   "Entity=\"a\"/></s:Body></s:Envelope>"),
                SIGNER_CODE_BAD_REQUEST, "not in the AuthWebServices namespace");
    expect_fail(parse_str("<s:Envelope xmlns:s=\"urn:soap\"><s:Body/></s:Envelope>"),
                SIGNER_CODE_BAD_REQUEST, "Envelope is not in the SOAP envelope namespace");
    /* WS-Trust 1.2 (2005/02) is not WS-Trust 1.3. */
    char body[BIG];
    snprintf(body, sizeof(body), "%s", build_ok(""));
    char *ns = strstr(body, "ws-sx/ws-trust/200512/\" xmlns:w");
    cr_assert_not_null(ns);
    memcpy(ns, "ws-sx/ws-trust/200502/", 22);
    expect_fail(parse_str(body), SIGNER_CODE_BAD_REQUEST,
                "RequestSecurityToken is not in the WS-Trust 1.3 namespace");
    /* A BinarySecurityToken of the wrong namespace, and one by the prefix only. */
    expect_fail(parse_str(build_ok("<BinarySecurityToken xmlns=\"urn:x\"/>")),
                SIGNER_CODE_BAD_REQUEST, "BinarySecurityToken is not in the WS-Security");
}

Test(signer_soap_parse, missing_entity)
{
    expect_fail(parse_str(build(NULL, "DeviceId=\"{00000000-0000-0000-0000-000000000001}\"", "",
                                PKCS10, csr_b64())),
                SIGNER_CODE_BAD_REQUEST, "no Entity");
    expect_fail(parse_str(build(NULL, "Entity=\"\"", "", PKCS10, csr_b64())),
                SIGNER_CODE_BAD_REQUEST, "no Entity");
    /* An Entity in some other namespace is not the Entity. */
    expect_fail(parse_str(build(NULL, "xmlns:z=\"urn:z\" z:Entity=\"a\"", "", PKCS10, csr_b64())),
                SIGNER_CODE_BAD_REQUEST, "no Entity");
}

Test(signer_soap_parse, missing_csr)
{
    expect_fail(parse_str(build(NULL, "Entity=\"a\"", "", PKCS10, NULL)), SIGNER_CODE_BAD_REQUEST,
                "no BinarySecurityToken");
    expect_fail(parse_str(build(NULL, "Entity=\"a\"", "", PKCS10, " \n ")), SIGNER_CODE_BAD_REQUEST,
                "holds no CSR");
    expect_fail(parse_str(build(NULL, "Entity=\"a\"", "", PKCS10, "bm90IGEgQ1NS")),
                SIGNER_CODE_BAD_CSR, "not base64 of a DER CSR");
    expect_fail(parse_str(build(NULL, "Entity=\"a\"", "", PKCS10, "MIIB!!!!")), SIGNER_CODE_BAD_CSR,
                "not base64 of a DER CSR");
}

Test(signer_soap_parse, wrong_value_type)
{
    const char *x509 =
        "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-x509-token-profile-1.0#X509v3";
    expect_fail(parse_str(build(NULL, "Entity=\"a\"", "", x509, csr_b64())),
                SIGNER_CODE_BAD_REQUEST, "ValueType is not PKCS10");
    expect_fail(parse_str(build(NULL, "Entity=\"a\"", "", "#PKCS10x", csr_b64())),
                SIGNER_CODE_BAD_REQUEST, "ValueType is not PKCS10");
}

Test(signer_soap_parse, oversize_fields)
{
    static char big[BIG], attr[BIG], rst[BIG], hdr[BIG];
    snprintf(attr, sizeof(attr), "Entity=\"%s\"", repeat(big, sizeof(big), "a", 257));
    expect_fail(parse_str(build(NULL, attr, "", PKCS10, csr_b64())), SIGNER_CODE_BAD_REQUEST,
                "Entity is longer than 256 bytes");
    snprintf(attr, sizeof(attr), "Entity=\"%s\"", repeat(big, sizeof(big), "a", 256));
    cr_assert_eq(parse_str(build(NULL, attr, "", PKCS10, csr_b64()))->rc, 0, "%s", res.reason);

    snprintf(rst, sizeof(rst),
             "<RequestID xmlns=\"http://schemas.microsoft.com/windows/pki/2009/01/enrollment\">"
             "%s</RequestID>",
             repeat(big, sizeof(big), "7", 129));
    expect_fail(parse_str(build_ok(rst)), SIGNER_CODE_BAD_REQUEST,
                "RequestID is longer than 128 bytes");

    snprintf(hdr, sizeof(hdr),
             "<w:Security xmlns:w=\"" WSSE_NS "\"><w:UsernameToken><w:Username>1</w:Username>"
             "<w:Password>%s</w:Password></w:UsernameToken></w:Security>",
             repeat(big, sizeof(big), "9", 65));
    expect_fail(parse_str(build(hdr, "Entity=\"a\"", "", PKCS10, csr_b64())),
                SIGNER_CODE_BAD_REQUEST, "Password is longer than 64 bytes");

    snprintf(attr, sizeof(attr), "Entity=\"a\" DeviceId=\"%s\"", repeat(big, sizeof(big), "f", 65));
    expect_fail(parse_str(build(NULL, attr, "", PKCS10, csr_b64())), SIGNER_CODE_BAD_REQUEST,
                "DeviceId is longer than 64 bytes");

    /* CSR text over SIGNER_CSR_TEXT_MAX: BadCsr. */
    repeat(big, sizeof(big), "QUFB", SIGNER_CSR_TEXT_MAX / 4 + 1);
    char *body = malloc(BIG);
    cr_assert_not_null(body);
    snprintf(body, BIG, "%s", build(NULL, "Entity=\"a\"", "", PKCS10, "X"));
    char *x = strstr(body, ">X<");
    cr_assert_not_null(x);
    char *tail = strdup(x + 2);
    snprintf(x + 1, BIG - (size_t)(x + 1 - body), "%s%s", big, tail);
    free(tail);
    expect_fail(parse_str(body), SIGNER_CODE_BAD_CSR, "CSR text is longer than 32768");
    free(body);
}

Test(signer_soap_parse, too_large_body)
{
    static char body[MAX_LEN + 2];
    memset(body, ' ', sizeof(body) - 1);
    body[sizeof(body) - 1] = '\0';
    struct result *r = parse_bytes(body, MAX_LEN + 1);
    cr_assert_eq(r->rc, -E2BIG);
    cr_assert_eq(r->code, SIGNER_CODE_TOO_LARGE);
    cr_assert(strstr(r->reason, "larger than 65536") != NULL);
}

Test(signer_soap_parse, bad_values)
{
    expect_fail(
        parse_str(build(NULL, "Entity=\"a\" DeviceId=\"not-a-guid\"", "", PKCS10, csr_b64())),
        SIGNER_CODE_BAD_REQUEST, "DeviceId is not a GUID");
    expect_fail(parse_str(build(NULL, "Entity=\"a&#10;b\"", "", PKCS10, csr_b64())),
                SIGNER_CODE_BAD_REQUEST, "Entity has a control character");
    const char *u = "xmlns:u=\"http://docs.oasis-open.org/wss/2004/01/"
                    "oasis-200401-wss-wssecurity-utility-1.0.xsd\"";
    char rst[1024];
    snprintf(rst, sizeof(rst),
             "<t:Lifetime %s><u:Created>2026-01-01T08:00:00Z</u:Created>"
             "<u:Expires>2026-01-01T08:00:00Z</u:Expires></t:Lifetime>",
             u);
    expect_fail(parse_str(build_ok(rst)), SIGNER_CODE_BAD_REQUEST, "Expires is not after");
    snprintf(rst, sizeof(rst),
             "<t:Lifetime %s><u:Created>yesterday</u:Created>"
             "<u:Expires>2026-01-01T08:00:00Z</u:Expires></t:Lifetime>",
             u);
    expect_fail(parse_str(build_ok(rst)), SIGNER_CODE_BAD_REQUEST, "not an ISO 8601 time");
    snprintf(rst, sizeof(rst),
             "<t:Lifetime %s><u:Expires>2026-01-01T08:00:00Z</u:Expires>"
             "</t:Lifetime>",
             u);
    expect_fail(parse_str(build_ok(rst)), SIGNER_CODE_BAD_REQUEST, "needs both");
    /* Two CSRs are one too many. */
    char two[2048];
    snprintf(two, sizeof(two), "<w:BinarySecurityToken ValueType=\"%s\">%s</w:BinarySecurityToken>",
             PKCS10, csr_b64());
    expect_fail(parse_str(build_ok(two)), SIGNER_CODE_BAD_REQUEST,
                "more than one BinarySecurityToken");
    /* RequestType must be Issue. */
    char body[BIG];
    snprintf(body, sizeof(body), "%s", build_ok(""));
    char *issue = strstr(body, "/Issue<");
    cr_assert_not_null(issue);
    memcpy(issue, "/Renew", 6);
    expect_fail(parse_str(body), SIGNER_CODE_BAD_REQUEST, "RequestType is not");
    /* A digest password cannot be checked against a PIN. */
    expect_fail(parse_str(build("<w:Security xmlns:w=\"" WSSE_NS "\"><w:UsernameToken>"
                                "<w:Username>1</w:Username><w:Password Type=\"x#PasswordDigest\">"
                                "abc</w:Password></w:UsernameToken></w:Security>",
                                "Entity=\"a\"", "", PKCS10, csr_b64())),
                SIGNER_CODE_BAD_REQUEST, "not PasswordText");
}

/* ---- responses ---- */

static bool well_formed(const char *xml)
{
    XML_Parser p = XML_ParserCreateNS(NULL, '|');
    cr_assert_not_null(p);
    bool ok = XML_Parse(p, xml, (int)strlen(xml), XML_TRUE) == XML_STATUS_OK;
    XML_ParserFree(p);
    return ok;
}

/* between returns the text between `a` and the next `b` (static buffer). */
static const char *between(const char *s, const char *a, const char *b)
{
    static char out[8192];
    const char *p = strstr(s, a);
    cr_assert_not_null(p, "no '%s' in %s", a, s);
    p += strlen(a);
    const char *q = strstr(p, b);
    cr_assert_not_null(q);
    cr_assert_lt((size_t)(q - p), sizeof(out));
    memcpy(out, p, (size_t)(q - p));
    out[q - p] = '\0';
    return out;
}

Test(signer_soap_response, certificate_round_trips_and_request_id_escaped)
{
    uint8_t cert[700];
    for (size_t i = 0; i < sizeof(cert); i++) {
        cert[i] = (uint8_t)(i * 7 + 3);
    }
    static char out[4096];
    size_t len = 0;
    cr_assert_eq(signer_soap_response(out, sizeof(out), &len, cert, sizeof(cert), "a<b"), 0);
    cr_assert_eq(len, strlen(out));
    cr_assert(well_formed(out), "%s", out);
    cr_assert(strncmp(out, "<?xml ", 6) == 0);
    cr_assert(strstr(out, "<RequestID xmlns=\"http://schemas.microsoft.com/windows/pki/2009/01/"
                          "enrollment\">a&lt;b</RequestID>") != NULL);
    cr_assert(strstr(out, "<GetAndPublishCertResponse xmlns=\"http://schemas.microsoft.com/OCS/"
                          "AuthWebServices/\">") != NULL);
    cr_assert(strstr(out, "ValueType=\"http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-"
                          "x509-token-profile-1.0#X509v3\"") != NULL);
    const char *b64 = between(out, "#Base64Binary\">", "</wsse:BinarySecurityToken>");
    uint8_t back[1024];
    size_t back_len = 0;
    cr_assert(EVP_DecodeBase64(back, &back_len, sizeof(back), (const uint8_t *)b64, strlen(b64)));
    cr_assert_eq(back_len, sizeof(cert));
    cr_assert(memcmp(back, cert, sizeof(cert)) == 0);

    /* Without a RequestID there is none in the answer; too small a buffer is -E2BIG. */
    cr_assert_eq(signer_soap_response(out, sizeof(out), &len, cert, sizeof(cert), NULL), 0);
    cr_assert_null(strstr(out, "RequestID"));
    cr_assert(well_formed(out));
    size_t full = len;
    cr_assert_eq(signer_soap_response(out, full + 1, &len, cert, sizeof(cert), ""), 0);
    for (size_t cap = 1; cap <= full; cap++) {
        cr_assert_eq(signer_soap_response(out, cap, &len, cert, sizeof(cert), ""), -E2BIG);
        cr_assert_str_eq(out, "");
    }
}

/* A SOAP 1.2 request is answered in SOAP 1.2; the Context is echoed on the RSTR (WS-Trust 1.3
 * §3.2); the certificate element is the same either way. */
Test(signer_soap_response, soap12_and_context)
{
    uint8_t cert[300];
    for (size_t i = 0; i < sizeof(cert); i++) {
        cert[i] = (uint8_t)(i * 5 + 1);
    }
    static char v11[4096];
    static char v12[4096];
    size_t len11 = 0;
    size_t len12 = 0;
    cr_assert_eq(signer_soap_response(v11, sizeof(v11), &len11, cert, sizeof(cert), "r1"), 0);
    struct signer_soap_reply reply = {.request_id = "r1", .context = "ctx\"<1>", .soap12 = true};
    cr_assert_eq(signer_soap_reply_response(v12, sizeof(v12), &len12, cert, sizeof(cert), &reply),
                 0);
    cr_assert_eq(len12, strlen(v12));
    cr_assert(well_formed(v12), "%s", v12);
    cr_assert(strstr(v12, "<s:Envelope xmlns:s=\"http://www.w3.org/2003/05/soap-envelope\">") !=
              NULL);
    cr_assert_null(strstr(v12, "http://schemas.xmlsoap.org/soap/envelope/"));
    cr_assert(strstr(v12, "<wst:RequestSecurityTokenResponse Context=\"ctx&quot;&lt;1&gt;\" ") !=
                  NULL,
              "%s", v12);
    cr_assert_str_eq(between(v12, "<wsse:BinarySecurityToken", "</wsse:BinarySecurityToken>"),
                     between(v11, "<wsse:BinarySecurityToken", "</wsse:BinarySecurityToken>"));
    cr_assert_null(strstr(v11, "Context="));
    /* The 1.1 answer through the new call is byte for byte the old one. */
    static char again[4096];
    size_t again_len = 0;
    struct signer_soap_reply plain = {.request_id = "r1"};
    cr_assert_eq(
        signer_soap_reply_response(again, sizeof(again), &again_len, cert, sizeof(cert), &plain),
        0);
    cr_assert_str_eq(again, v11);
    /* Errors too. */
    cr_assert_eq(
        signer_soap_reply_error(v12, sizeof(v12), &len12, SIGNER_CODE_BAD_CSR, "bad", &reply), 0);
    cr_assert(well_formed(v12), "%s", v12);
    cr_assert(strstr(v12, "http://www.w3.org/2003/05/soap-envelope") != NULL);
    cr_assert(strstr(v12, "<Code>BadCsr</Code>") != NULL);
    cr_assert_str_eq(signer_soap_content_type(false), "text/xml; charset=utf-8");
    cr_assert_str_eq(signer_soap_content_type(true), "application/soap+xml; charset=utf-8");
}

/* fake_der fills a DER SEQUENCE of `len` bytes (len 4..65535 + 4): what certs-only PKCS#7 needs. */
static void fake_der(uint8_t *der, size_t len, uint8_t seed)
{
    der[0] = 0x30;
    der[1] = 0x82;
    der[2] = (uint8_t)((len - 4) >> 8);
    der[3] = (uint8_t)(len - 4);
    for (size_t i = 4; i < len; i++) {
        der[i] = (uint8_t)(i * 13 + seed);
    }
}

/* The chain rides in its own [MS-WSTEP] PKCS#7 element after RequestedSecurityToken; the element
 * clients read (RequestedSecurityToken/BinarySecurityToken, X509v3) is byte for byte unchanged. */
Test(signer_soap_response, chain_beside_the_certificate)
{
    static uint8_t leaf[600];
    static uint8_t ca[2][500];
    fake_der(leaf, sizeof(leaf), 1);
    fake_der(ca[0], sizeof(ca[0]), 2);
    fake_der(ca[1], sizeof(ca[1]), 3);
    struct signer_est_cert chain[2] = {{ca[0], sizeof(ca[0])}, {ca[1], sizeof(ca[1])}};
    static char plain[8192];
    static char with[16384];
    size_t plain_len = 0;
    size_t with_len = 0;
    cr_assert_eq(signer_soap_response(plain, sizeof(plain), &plain_len, leaf, sizeof(leaf), "r"),
                 0);
    struct signer_soap_reply reply = {.request_id = "r", .chain = chain, .num_chain = 2};
    cr_assert_eq(
        signer_soap_reply_response(with, sizeof(with), &with_len, leaf, sizeof(leaf), &reply), 0);
    cr_assert_eq(with_len, strlen(with));
    cr_assert(well_formed(with), "%s", with);
    static char x509_plain[8192];
    snprintf(x509_plain, sizeof(x509_plain), "%s",
             between(plain, "<wst:RequestedSecurityToken>", "</wst:RequestedSecurityToken>"));
    cr_assert_str_eq(between(with, "<wst:RequestedSecurityToken>", "</wst:RequestedSecurityToken>"),
                     x509_plain);
    /* After RequestedSecurityToken, before the RequestID. */
    const char *p7 = strstr(with, "ValueType=\"" SIGNER_SOAP_PKCS7 "\"");
    cr_assert_not_null(p7);
    cr_assert(p7 > strstr(with, "</wst:RequestedSecurityToken>"));
    cr_assert(p7 < strstr(with, "<RequestID "));
    /* The certs-only PKCS#7 of the certificate and the chain, as EST writes it. */
    struct signer_est_cert all[3] = {{leaf, sizeof(leaf)}, chain[0], chain[1]};
    static char est[8192];
    size_t est_len = 0;
    cr_assert_eq(signer_est_certs_only(est, sizeof(est), &est_len, all, 3), 0);
    cr_assert_str_eq(between(p7, "#Base64Binary\">", "</wsse:BinarySecurityToken>"), est);
    /* Too small for the chain: -E2BIG, nothing half-written. */
    cr_assert_eq(signer_soap_reply_response(with, with_len, &with_len, leaf, sizeof(leaf), &reply),
                 -E2BIG);
    cr_assert_str_eq(with, "");
    /* A certificate that is no DER SEQUENCE cannot go into the PKCS#7. */
    uint8_t junk[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    cr_assert_eq(
        signer_soap_reply_response(with, sizeof(with), &with_len, junk, sizeof(junk), &reply),
        -EBADMSG);
}

/* Faults for the services that use them, in the request's SOAP version. */
Test(signer_soap_response, faults_in_both_versions)
{
    static char out[4096];
    size_t len = 0;
    cr_assert_eq(signer_soap_fault(out, sizeof(out), &len, SIGNER_REASON_USER_DISABLED,
                                   "User is not SIP enabled <x>", true),
                 0);
    cr_assert_eq(len, strlen(out));
    cr_assert(well_formed(out), "%s", out);
    cr_assert(strstr(out, "<s:Envelope xmlns:s=\"http://www.w3.org/2003/05/soap-envelope\"") !=
              NULL);
    cr_assert(strstr(out, "<s:Code><s:Value>s:Sender</s:Value><s:Subcode><s:Value>"
                          "wsse:FailedAuthentication</s:Value></s:Subcode></s:Code>") != NULL,
              "%s", out);
    cr_assert(strstr(out, "<s:Reason><s:Text xml:lang=\"en-US\">User is not SIP enabled "
                          "&lt;x&gt;</s:Text></s:Reason><s:Detail>") != NULL);
    cr_assert(strstr(out, "<af:ErrorId>28000</af:ErrorId>") != NULL);
    cr_assert_eq(signer_soap_fault(out, sizeof(out), &len, SIGNER_REASON_INTERNAL, "boom", false),
                 0);
    cr_assert(well_formed(out), "%s", out);
    cr_assert(strstr(out, "http://schemas.xmlsoap.org/soap/envelope/") != NULL);
    cr_assert(strstr(out, "<faultcode>s:Server</faultcode><faultstring xml:lang=\"en-US\">boom"
                          "</faultstring><detail>") != NULL,
              "%s", out);
    cr_assert(strstr(out, "<af:ErrorId>28001</af:ErrorId><af:Reason>boom</af:Reason>") != NULL);
    cr_assert_eq(
        signer_soap_fault(out, sizeof(out), &len, SIGNER_REASON_REQUEST_MALFORMED, "x", true), 0);
    cr_assert(strstr(out, "<s:Code><s:Value>s:Sender</s:Value></s:Code>") != NULL, "%s", out);
    cr_assert_eq(signer_soap_fault(out, 200, &len, SIGNER_REASON_INTERNAL, "x", true), -E2BIG);
    cr_assert_str_eq(out, "");
}

Test(signer_soap_response, error_holds_code_and_reason)
{
    static char out[4096];
    size_t len = 0;
    cr_assert_eq(signer_soap_error_response(out, sizeof(out), &len, SIGNER_CODE_BAD_CSR,
                                            "key <weak> & \"old\"\r\n", "id'1"),
                 0);
    cr_assert(well_formed(out), "%s", out);
    cr_assert(strstr(out, "<ErrorInfo><Code>BadCsr</Code><Reason>key &lt;weak&gt; &amp; "
                          "&quot;old&quot;&#13;\n</Reason></ErrorInfo>") != NULL,
              "%s", out);
    cr_assert(strstr(out, ">id&apos;1</RequestID>") != NULL);
    cr_assert_null(strstr(out, "Fault"));
    cr_assert_eq(signer_soap_error_response(out, sizeof(out), &len, SIGNER_CODE_PIN_LOCKED,
                                            "locked\x01", NULL),
                 0);
    cr_assert(strstr(out, "<Code>PinLocked</Code><Reason>locked?</Reason>") != NULL);
    cr_assert_null(strstr(out, "RequestID"));
    cr_assert(well_formed(out));
    cr_assert_eq(signer_soap_error_response(out, 100, &len, SIGNER_CODE_BAD_CSR, "x", NULL),
                 -E2BIG);
    cr_assert_str_eq(out, "");
}

Test(signer_soap_response, diagnostics_sanitised)
{
    char out[256];
    size_t len = 0;
    /* [MS-OCAUTHWS] §3.2.4.1: errorId;source="...";reason="..."[;fault="..."], our token last. */
    cr_assert_eq(signer_diagnostics_format(out, sizeof(out), &len, SIGNER_REASON_REQUEST_MALFORMED,
                                           "certprov1.example.com", "DTDs are not allowed"),
                 0);
    cr_assert_str_eq(out, "28900;source=\"certprov1.example.com\";reason=\"DTDs are not "
                          "allowed\";token=\"request_malformed\"");
    cr_assert_eq(len, strlen(out));
    /* The spec's 28001: internal error (500). */
    cr_assert_eq(signer_diagnostics_format(out, sizeof(out), &len, SIGNER_REASON_INTERNAL, "h\"x",
                                           "say \"hi\"\r\nX-Evil: 1\\ \xc3\xa9"),
                 0);
    cr_assert_str_eq(out, "28001;source=\"h'x\";reason=\"say 'hi'  X-Evil: 1' ??\";token=\""
                          "internal_error\"");
    /* Cut to fit, ending in "...": the token is never cut. */
    const char *prefix = "28901;source=\"h\";reason=\"";
    const char *tail = ";token=\"csr_weak_hash\"";
    size_t cap = strlen(prefix) + strlen(tail) + 10;
    cr_assert_eq(signer_diagnostics_format(out, cap, &len, SIGNER_REASON_CSR_WEAK_HASH, "h",
                                           "abcdefghijklmnop"),
                 0);
    cr_assert_str_eq(out, "28901;source=\"h\";reason=\"abcde...\";token=\"csr_weak_hash\"");
    cr_assert_lt(len, cap);
    /* The whole reason when it fits exactly. */
    cr_assert_eq(
        signer_diagnostics_format(out, cap, &len, SIGNER_REASON_CSR_WEAK_HASH, "h", "abcdefgh"), 0);
    cr_assert_str_eq(out, "28901;source=\"h\";reason=\"abcdefgh\";token=\"csr_weak_hash\"");
    /* The Code follows the reason: RSA-1024 and SHA-1 share 28901 and differ in the token. */
    cr_assert_eq(signer_diagnostics_format(out, sizeof(out), &len,
                                           SIGNER_REASON_CSR_RSA_KEY_TOO_SMALL, "h", "r"),
                 0);
    cr_assert_str_eq(out, "28901;source=\"h\";reason=\"r\";token=\"csr_rsa_key_too_small\"");
    cr_assert_eq(signer_diagnostics_format(out, 30, &len, SIGNER_REASON_CSR_WEAK_HASH, "h", "x"),
                 -E2BIG);
    cr_assert_str_eq(out, "");
}

Test(signer_soap_response, diagnostics_spec_fault)
{
    char out[256];
    size_t len = 0;
    /* A refused sign-in carries the spec's fault (wsse:FailedAuthentication) before the token. */
    cr_assert_eq(signer_diagnostics_format(out, sizeof(out), &len,
                                           SIGNER_REASON_PIN_WRONG_OR_UNKNOWN, "h", "wrong"),
                 0);
    cr_assert_str_eq(out, "28903;source=\"h\";reason=\"wrong\";fault=\"wsse:FailedAuthentication\";"
                          "token=\"pin_wrong_or_unknown\"");
    /* The spec's 28000 "User is not SIP enabled" (403): a disabled user. */
    cr_assert_eq(signer_diagnostics_format(out, sizeof(out), &len, SIGNER_REASON_USER_DISABLED, "h",
                                           "User is not SIP enabled"),
                 0);
    cr_assert_str_eq(out, "28000;source=\"h\";reason=\"User is not SIP enabled\";fault=\""
                          "wsse:FailedAuthentication\";token=\"user_disabled\"");
    cr_assert_eq(signer_error_status(signer_reason_code(SIGNER_REASON_USER_DISABLED)), 403);
    /* The fault, like the token, is never cut: only the reason is. */
    const char *fixed = "28904;source=\"h\";reason=\"...\";fault=\"wsse:FailedAuthentication\";"
                        "token=\"pin_locked\"";
    cr_assert_eq(signer_diagnostics_format(out, strlen(fixed) + 3, &len, SIGNER_REASON_PIN_LOCKED,
                                           "h", "abcdefghijklmnop"),
                 0);
    cr_assert_str_eq(out, "28904;source=\"h\";reason=\"ab...\";fault=\"wsse:FailedAuthentication\";"
                          "token=\"pin_locked\"");
}

/* ---- codes ---- */

Test(signer_code, status_for_every_code)
{
    static const struct {
        const char *name;
        unsigned status;
    } want[] = {
        {"BadRequest", 400},
        {"BadCsr", 400},
        {"CsrSignatureInvalid", 400},
        {"AuthenticationFailed", 401},
        {"PinLocked", 403},
        {"IdentityMismatch", 403},
        {"TooLarge", 413},
        {"Overloaded", 503},
        {"SigningUnavailable", 503},
        {"InternalError", 500},
        {"StoreUnavailable", 503},
        {"RateLimited", 429},
        {"UserDisabled", 403},
    };
    /* [MS-OCAUTHWS] §3.2.4.1 defines 28000 (User is not SIP enabled, 403) and 28001 (internal
     * error, 500); every other Code has an ID of ours, 28900 + its enum value (README, Errors). */
    static const unsigned ids[] = {28900, 28901, 28902, 28903, 28904, 28905, 28906,
                                   28907, 28908, 28001, 28910, 28911, 28000};
    cr_assert_eq(ARRAY_LEN(want), SIGNER_CODE_MAX_);
    cr_assert_eq(ARRAY_LEN(ids), SIGNER_CODE_MAX_);
    for (size_t i = 0; i < ARRAY_LEN(want); i++) {
        enum signer_code code = SIGNER_CODE_MAX_;
        cr_assert_eq(signer_code_parse(&code, want[i].name), 0, "%s", want[i].name);
        cr_assert_str_eq(signer_code_name(code), want[i].name);
        cr_assert_eq(signer_error_status(code), want[i].status, "%s", want[i].name);
        cr_assert_eq(signer_code_diag_id(code), ids[i], "%s", want[i].name);
        for (size_t j = 0; j < i; j++) {
            cr_assert_neq(ids[j], ids[i], "IDs are unique");
        }
    }
    enum signer_code code = SIGNER_CODE_BAD_CSR;
    cr_assert_eq(signer_code_parse(&code, "badrequest"), -EINVAL);
    cr_assert_eq(code, SIGNER_CODE_BAD_CSR);
}

Test(signer_code, every_reject_maps_to_its_code)
{
    for (int i = 0; i < SIGNER_REJECT_MAX_; i++) {
        enum signer_reject r = (enum signer_reject)i;
        enum signer_code c = signer_reject_to_code(r);
        cr_assert_str_eq(signer_code_name(c), signer_reject_code(r));
    }
    cr_assert_eq(signer_reject_to_code(SIGNER_REJECT_CSR_SIGNATURE),
                 SIGNER_CODE_CSR_SIGNATURE_INVALID);
    cr_assert_eq(signer_reject_to_code(SIGNER_REJECT_IDENTITY_ENTITY),
                 SIGNER_CODE_IDENTITY_MISMATCH);
}

/* Microsoft's [MS-OCAUTHWS] examples write the EncodingType fragment "#base64binary". */
Test(soap_parse, encoding_type_fragment_is_case_insensitive)
{
    static char buf[MAX_LEN];
    size_t len = read_data(buf, sizeof(buf), "soap/lync-phone.xml");
    char *p = strstr(buf, "#Base64Binary");
    cr_assert_not_null(p);
    memcpy(p, "#base64binary", 13);
    struct result *r = parse_bytes(buf, len);
    cr_assert_eq(r->rc, 0, "%s", r->reason);
    memcpy(p, "#Base64Binarx", 13);
    r = parse_bytes(buf, len);
    expect_fail(r, SIGNER_CODE_BAD_REQUEST, "EncodingType");
}
