/* Tests of Web tickets (signer/webticket.c, wsse.c, xml.c): P_SHA1 against a vector computed by
 * another implementation, exclusive c14n, the RST parser, and the round trip: a ticket issued,
 * then presented with a proof built here the way a client builds it (pidgin-sipe: the Timestamp
 * is the ticket's Lifetime, the SignedInfo written in canonical form), verified; and every
 * refusal. A real CA (soft P-256 key) and PIN key in a temporary directory. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/digest.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include "base/base.h"
#include "signer/internal.h"
#include "signer/signer.h"
#include "tests/util/tmpdir.h"

static char tmpdir[TMPDIR_PATH_MAX];
static struct signer_ca *g_ca;
static struct signer_pin_key *g_pin;
static struct signer_wt_issuer *g_iss;
static const char *const names[] = {"certprov.example.com", "pool.example.com"};
#define CP "https://certprov.example.com/CertProv/CertProvisioningService.svc"

static void setup(void)
{
    char dir[TMPDIR_PATH_MAX + 32];
    char pin[TMPDIR_PATH_MAX + 32];
    tmpdir_create(tmpdir, sizeof(tmpdir), "certprov-wt");
    snprintf(dir, sizeof(dir), "%s/store", tmpdir);
    snprintf(pin, sizeof(pin), "%s/pin.key", tmpdir);
    signer_xml_init();
    cr_assert_eq(signer_ca_init(dir, HSM_KEY_P256, "certprov.example.com"), 0);
    cr_assert_eq(signer_ca_open(&g_ca, NULL, dir), 0);
    cr_assert_eq(signer_pin_key_load(&g_pin, pin, true), 0);
    cr_assert_eq(signer_wt_issuer_new(&g_iss, g_ca, g_pin,
                                      "https://certprov.example.com/WebTicket/WebTicketService.svc",
                                      NULL),
                 0);
}

static void teardown(void)
{
    signer_wt_issuer_free(g_iss);
    signer_pin_key_free(g_pin);
    signer_ca_free(g_ca);
    tmpdir_remove(tmpdir);
}

TestSuite(signer_webticket, .init = setup, .fini = teardown);

/* Vectors computed with Python's hmac module (an independent P_hash, RFC 2246 §5):
 *   p(bytes(range(32)), bytes(range(32, 64)), 64) and p(bytes(range(16)), bytes(range(100, 132)),
 * 16) with p = A(i) = HMAC-SHA1(secret, A(i-1)), out += HMAC-SHA1(secret, A(i) + seed). */
Test(signer_webticket, p_sha1_vector)
{
    uint8_t secret[32], seed[32], out[64];
    for (int i = 0; i < 32; i++) {
        secret[i] = (uint8_t)i;
        seed[i] = (uint8_t)(32 + i);
    }
    signer_p_sha1(out, sizeof(out), secret, 32, seed, 32);
    char hex[129];
    base_hex_encode(hex, sizeof(hex), out, sizeof(out));
    cr_assert_str_eq(hex, "DF59132C2AF6D230E4337732076A14561694BE12838CC00203D63C816653D75B"
                          "A7C59CEAF7B96BBF2B9501FAE4833DDE8FE860B1299AE3704B19940EFB8104F9");
    for (int i = 0; i < 32; i++) {
        seed[i] = (uint8_t)(100 + i);
    }
    signer_p_sha1(out, 16, secret, 16, seed, 32);
    base_hex_encode(hex, sizeof(hex), out, 16);
    cr_assert_str_eq(hex, "D4C5F8D3528DCE2A0E58B1BD401C42C0");
}

static char *c14n_str(const char *xml, const char *sub, const char *skip)
{
    int rc = 0;
    struct _xmlDoc *doc = sx_parse((const uint8_t *)xml, strlen(xml), 4096, &rc);
    cr_assert_not_null(doc);
    struct _xmlNode *root = sx_root(doc);
    struct _xmlNode *target = sub != NULL ? sx_child(root, "urn:a", sub) : root;
    struct _xmlNode *ex = skip != NULL ? sx_child(root, "urn:a", skip) : NULL;
    size_t len = 0;
    uint8_t *c = sx_c14n_bytes(doc, target, ex, &len);
    cr_assert_not_null(c);
    char *out = strndup((const char *)c, len);
    sx_bytes_free(c);
    sx_free(doc);
    return out;
}

Test(signer_webticket, exclusive_c14n)
{
    const char *xml = "<?xml version=\"1.0\"?>\n<a:r xmlns:a=\"urn:a\" xmlns:b=\"urn:b\" z=\"1\" "
                      "y='2'>\n  <a:e   x=\"&lt;&amp;\"/><a:s>t</a:s><!-- c --></a:r>";
    char *all = c14n_str(xml, NULL, NULL);
    /* unused xmlns:b dropped, attributes sorted, empty element expanded, comment gone */
    cr_assert_str_eq(all, "<a:r xmlns:a=\"urn:a\" y=\"2\" z=\"1\">\n  <a:e x=\"&lt;&amp;\"></a:e>"
                          "<a:s>t</a:s></a:r>");
    free(all);
    char *sub = c14n_str(xml, "e", NULL); /* the inherited prefix is declared on the apex */
    cr_assert_str_eq(sub, "<a:e xmlns:a=\"urn:a\" x=\"&lt;&amp;\"></a:e>");
    free(sub);
    char *less = c14n_str(xml, NULL, "s"); /* the enveloped-signature transform */
    cr_assert_str_eq(less, "<a:r xmlns:a=\"urn:a\" y=\"2\" z=\"1\">\n  <a:e x=\"&lt;&amp;\"></a:e>"
                           "</a:r>");
    free(less);
}

Test(signer_webticket, parse_refuses_doctype_and_bounds)
{
    int rc = 0;
    const char *dt = "<!DOCTYPE r [<!ENTITY e \"x\">]><r>&e;</r>";
    cr_assert_null(sx_parse((const uint8_t *)dt, strlen(dt), 4096, &rc));
    cr_assert_eq(rc, -EBADMSG);
    cr_assert_null(sx_parse((const uint8_t *)"<r/>", 4, 3, &rc));
    cr_assert_eq(rc, -E2BIG);
    cr_assert_null(sx_parse((const uint8_t *)"<r>", 3, 4096, &rc));
    cr_assert_eq(rc, -EBADMSG);
    /* a DOCTYPE in UTF-16 does not pass the byte scan: UTF-8 only */
    static const char u16[] = "\xff\xfe<\0!\0D\0O\0C\0T\0Y\0P\0E\0 \0r\0>\0<\0r\0/\0>\0";
    cr_assert_null(sx_parse((const uint8_t *)u16, sizeof(u16) - 1, 4096, &rc));
    cr_assert_eq(rc, -EBADMSG);
}

static const uint8_t entropy[32] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15, 16,
                                    17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};

static size_t rst(char *out, size_t cap, const char *ns, const char *applies, const char *extra)
{
    char b64[64];
    base_b64_encode(b64, sizeof(b64), entropy, sizeof(entropy));
    int n = snprintf(
        out, cap,
        "<s:Envelope xmlns:s=\"" SX_NS_SOAP11 "\"><s:Header><wsse:Security xmlns:wsse=\"" SX_NS_WSSE
        "\"><wsse:UsernameToken><wsse:Username>+14255550100</wsse:Username><wsse:Password>27182"
        "</wsse:Password></wsse:UsernameToken></wsse:Security></s:Header><s:Body>"
        "<wst:RequestSecurityToken xmlns:wst=\"%s\" Context=\"c-1\"><wst:TokenType>http://docs."
        "oasis-open.org/wss/oasis-wss-saml-token-profile-1.1#SAMLV1.1</wst:TokenType>"
        "<wst:RequestType>%s/Issue</wst:RequestType><wsp:AppliesTo xmlns:wsp=\"http://schemas."
        "xmlsoap.org/ws/2004/09/policy\"><wsa:EndpointReference xmlns:wsa=\"http://www.w3.org/"
        "2005/08/addressing\"><wsa:Address>%s</wsa:Address></wsa:EndpointReference></wsp:AppliesTo>"
        "<wst:Entropy><wst:BinarySecret>%s</wst:BinarySecret></wst:Entropy><wst:KeyType>http://"
        "docs.oasis-open.org/ws-sx/ws-trust/200512/SymmetricKey</wst:KeyType>%s"
        "</wst:RequestSecurityToken></s:Body></s:Envelope>",
        ns, ns, applies, b64, extra);
    cr_assert(n > 0 && (size_t)n < cap);
    return (size_t)n;
}

static void parse_ok(struct signer_wt_request *rq, const char *xml, size_t len)
{
    char user[65], pin[34], reason[SIGNER_REASON_MAX];
    bool token = false;
    int rc = signer_wt_request_parse(rq, user, sizeof(user), pin, sizeof(pin), &token, reason,
                                     (const uint8_t *)xml, len, 65536);
    cr_assert_eq(rc, 0, "%s", reason);
    cr_assert(token);
    cr_assert_str_eq(user, "+14255550100");
    cr_assert_str_eq(pin, "27182");
}

Test(signer_webticket, rst_parse)
{
    static char xml[8192];
    struct signer_wt_request rq;
    size_t len = rst(xml, sizeof(xml), "http://schemas.xmlsoap.org/ws/2005/02/trust", CP, "");
    parse_ok(&rq, xml, len);
    cr_assert_str_eq(rq.context, "c-1");
    cr_assert_str_eq(rq.applies_to, CP);
    cr_assert_eq(rq.entropy_len, 32);
    cr_assert_eq(rq.key_len, 32);
    cr_assert(!rq.trust13);
    len = rst(xml, sizeof(xml), "http://docs.oasis-open.org/ws-sx/ws-trust/200512", CP,
              "<wst:KeySize>128</wst:KeySize>");
    parse_ok(&rq, xml, len);
    cr_assert(rq.trust13);
    cr_assert_eq(rq.key_len, 16);
    /* every truncation is refused, never a crash */
    char user[65], pin[34], reason[SIGNER_REASON_MAX];
    bool token = false;
    for (size_t n = 0; n < len; n += 7) {
        cr_assert_neq(signer_wt_request_parse(&rq, user, sizeof(user), pin, sizeof(pin), &token,
                                              reason, (const uint8_t *)xml, n, 65536),
                      0);
    }
    len = rst(xml, sizeof(xml), "http://docs.oasis-open.org/ws-sx/ws-trust/200512", CP,
              "<wst:KeySize>1024</wst:KeySize>");
    cr_assert_eq(signer_wt_request_parse(&rq, user, sizeof(user), pin, sizeof(pin), &token, reason,
                                         (const uint8_t *)xml, len, 65536),
                 -EBADMSG);
    cr_assert(strstr(reason, "KeySize") != NULL);
}

static const char *between(const char *s, const char *a, const char *b, size_t *len)
{
    const char *p = strstr(s, a);
    cr_assert_not_null(p, "%s", a);
    p += strlen(a);
    const char *q = strstr(p, b);
    cr_assert_not_null(q);
    *len = (size_t)(q - p);
    return p;
}

/* present builds the GetAndPublishCert Security header from an RSTR the way a client does. */
static size_t present(char *out, size_t cap, const char *rstr, bool bad_key)
{
    size_t alen = 0, llen = 0, slen = 0;
    const char *a = between(rstr, "<RequestedSecurityToken>", "</RequestedSecurityToken>", &alen);
    const char *l = between(rstr, "<Lifetime>", "</Lifetime>", &llen);
    const char *s = between(rstr, "/Nonce\">", "</BinarySecret>", &slen);
    uint8_t server[64];
    size_t server_len = 0;
    cr_assert_eq(signer_base64_decode(server, sizeof(server), &server_len, s, slen, 0), 0);
    uint8_t key[32];
    signer_p_sha1(key, sizeof(key), entropy, sizeof(entropy), server, server_len);
    key[0] ^= bad_key ? 1 : 0;
    char ts[512];
    snprintf(ts, sizeof(ts),
             "<wsu:Timestamp xmlns:wsu=\"" SX_NS_WSU "\" wsu:Id=\"timestamp\">%.*s</wsu:Timestamp>",
             (int)llen, l);
    uint8_t d[SHA_DIGEST_LENGTH];
    SHA1((const uint8_t *)ts, strlen(ts), d);
    char d64[64];
    base_b64_encode(d64, sizeof(d64), d, sizeof(d));
    char si[1024];
    snprintf(si, sizeof(si),
             "<SignedInfo xmlns=\"" SX_NS_DS "\"><CanonicalizationMethod Algorithm=\"" SX_EXC_C14N
             "\"></CanonicalizationMethod><SignatureMethod Algorithm=\"" SX_NS_DS
             "hmac-sha1\"></SignatureMethod><Reference URI=\"#timestamp\"><Transforms><Transform "
             "Algorithm=\"" SX_EXC_C14N
             "\"></Transform></Transforms><DigestMethod Algorithm=\"" SX_NS_DS
             "sha1\"></DigestMethod><DigestValue>%s</DigestValue></Reference></SignedInfo>",
             d64);
    uint8_t mac[20];
    unsigned mlen = 0;
    HMAC(EVP_sha1(), key, sizeof(key), (const uint8_t *)si, strlen(si), mac, &mlen);
    char m64[64];
    base_b64_encode(m64, sizeof(m64), mac, mlen);
    char id[SIGNER_WT_ID_MAX + 1];
    size_t idlen = 0;
    const char *idp = between(a, "AssertionID=\"", "\"", &idlen);
    snprintf(id, sizeof(id), "%.*s", (int)idlen, idp);
    int n =
        snprintf(out, cap,
                 "<s:Envelope xmlns:s=\"" SX_NS_SOAP11 "\" xmlns:wsse=\"" SX_NS_WSSE
                 "\"><s:Header><wsse:Security>%s%.*s<Signature xmlns=\"" SX_NS_DS
                 "\">%s<SignatureValue>%s</SignatureValue><KeyInfo><wsse:SecurityTokenReference>"
                 "<wsse:KeyIdentifier>%s</wsse:KeyIdentifier></wsse:SecurityTokenReference>"
                 "</KeyInfo></Signature></wsse:Security></s:Header><s:Body/></s:Envelope>",
                 ts, (int)alen, a, si, m64, id);
    cr_assert(n > 0 && (size_t)n < cap);
    return (size_t)n;
}

Test(signer_webticket, round_trip_and_refusals)
{
    static char xml[8192], rstr[SIGNER_WT_RESPONSE_MAX], req[SIGNER_WT_RESPONSE_MAX];
    struct signer_wt_request rq;
    size_t len = rst(xml, sizeof(xml), "http://schemas.xmlsoap.org/ws/2005/02/trust", CP, "");
    parse_ok(&rq, xml, len);
    int64_t now = clock_real_s();
    size_t rlen = 0;
    cr_assert_eq(signer_wt_issue(g_iss, rstr, sizeof(rstr), &rlen, &rq, "sip:alice@example.com",
                                 false, now, 8 * 3600),
                 0);
    cr_assert_eq(strlen(rstr), rlen);
    cr_assert(strstr(rstr, "Context=\"c-1\"") != NULL);
    cr_assert(strstr(rstr, "ecdsa-sha256") != NULL);
    size_t qlen = present(req, sizeof(req), rstr, false);
    struct signer_wt_proof p;
    char reason[SIGNER_REASON_MAX];
    int rc = signer_wt_verify(g_iss, &p, reason, (const uint8_t *)req, qlen, 65536, now, names, 2);
    cr_assert_eq(rc, 0, "%s", reason);
    cr_assert_str_eq(p.uri, "sip:alice@example.com");
    cr_assert_gt(p.replay_until_s, now);
    struct signer_wt_proof p2;
    cr_assert_eq(
        signer_wt_verify(g_iss, &p2, reason, (const uint8_t *)req, qlen, 65536, now + 10, names, 2),
        0);
    cr_assert_eq(memcmp(p.replay_key, p2.replay_key, sizeof(p.replay_key)), 0, "same pair");
    /* expired, another audience (names), Timestamp stale */
    cr_assert_eq(signer_wt_verify(g_iss, &p, reason, (const uint8_t *)req, qlen, 65536,
                                  now + 8 * 3600, names, 2),
                 -EPERM);
    cr_assert(strstr(reason, "expired") != NULL, "%s", reason);
    cr_assert_eq(
        signer_wt_verify(g_iss, &p, reason, (const uint8_t *)req, qlen, 65536, now, names + 1, 1),
        -EPERM);
    cr_assert(strstr(reason, "audience") != NULL, "%s", reason);
    cr_assert_eq(
        signer_wt_verify(g_iss, &p, reason, (const uint8_t *)req, qlen, 65536, now + 400, names, 2),
        -EPERM);
    cr_assert(strstr(reason, "fresh") != NULL, "%s", reason);
    /* a wrong proof key */
    qlen = present(req, sizeof(req), rstr, true);
    cr_assert_eq(
        signer_wt_verify(g_iss, &p, reason, (const uint8_t *)req, qlen, 65536, now, names, 2),
        -EPERM);
    cr_assert(strstr(reason, "proof key") != NULL, "%s", reason);
    /* the assertion altered: one character of the subject */
    qlen = present(req, sizeof(req), rstr, false);
    char *sub = strstr(req, "sip:alice");
    cr_assert_not_null(sub);
    sub[4] = 'm';
    cr_assert_eq(
        signer_wt_verify(g_iss, &p, reason, (const uint8_t *)req, qlen, 65536, now, names, 2),
        -EPERM);
    cr_assert(strstr(reason, "altered") != NULL, "%s", reason);
    /* no ticket at all */
    const char *none = "<s:Envelope xmlns:s=\"" SX_NS_SOAP11 "\"><s:Body/></s:Envelope>";
    cr_assert_eq(signer_wt_verify(g_iss, &p, reason, (const uint8_t *)none, strlen(none), 65536,
                                  now, names, 2),
                 -ENOENT);
}

Test(signer_webticket, audience)
{
    cr_assert(signer_wt_audience_ours(CP, names, 2));
    cr_assert(signer_wt_audience_ours("http://POOL.example.com:8080/CertProv/"
                                      "CertProvisioningService.svc/WebTicket_Proof",
                                      names, 2));
    cr_assert(!signer_wt_audience_ours("https://other.example.com/CertProv/"
                                       "CertProvisioningService.svc",
                                       names, 2));
    cr_assert(!signer_wt_audience_ours("https://certprov.example.com/Autodiscover", names, 2));
    cr_assert(!signer_wt_audience_ours("ftp://certprov.example.com/CertProv/"
                                       "CertProvisioningService.svc",
                                       names, 2));
}

Test(signer_webticket, dedicated_signer)
{
    char dir[TMPDIR_PATH_MAX + 32];
    snprintf(dir, sizeof(dir), "%s/store", tmpdir);
    cr_assert(!signer_wt_issuer_dedicated(g_iss));
    struct signer_wt_issuer *none = NULL; /* no signer yet: the CA key */
    cr_assert_eq(signer_wt_issuer_new(&none, g_ca, g_pin, "https://x/", dir), 0);
    cr_assert(!signer_wt_issuer_dedicated(none));
    signer_wt_issuer_free(none);
    int64_t now = clock_real_s();
    cr_assert_eq(signer_wt_signer_issue(g_ca, dir, 0, now, NULL), -EINVAL);
    int64_t until = 0;
    cr_assert_eq(signer_wt_signer_issue(g_ca, dir, 30, now, &until), 0);
    cr_assert_eq(until, now + 30 * 86400);
    struct signer_wt_issuer *iss = NULL;
    cr_assert_eq(signer_wt_issuer_new(&iss, g_ca, g_pin, "https://x/", dir), 0);
    cr_assert(signer_wt_issuer_dedicated(iss));
    static char xml[8192], rstr[SIGNER_WT_RESPONSE_MAX], req[SIGNER_WT_RESPONSE_MAX];
    struct signer_wt_request rq;
    size_t len = rst(xml, sizeof(xml), "http://schemas.xmlsoap.org/ws/2005/02/trust", CP, "");
    parse_ok(&rq, xml, len);
    size_t rlen = 0;
    cr_assert_eq(signer_wt_issue(iss, rstr, sizeof(rstr), &rlen, &rq, "sip:bob@example.com", true,
                                 now, 3600),
                 0);
    size_t qlen = present(req, sizeof(req), rstr, false);
    struct signer_wt_proof p;
    char reason[SIGNER_REASON_MAX];
    cr_assert_eq(
        signer_wt_verify(iss, &p, reason, (const uint8_t *)req, qlen, 65536, now, names, 2), 0,
        "%s", reason);
    cr_assert_str_eq(p.uri, "sip:bob@example.com");
    /* another issuer of the same CA (another appliance of a fleet that shares its CA) takes the
     * dedicated signer's tickets: KeyInfo is a Web ticket signer the CA issued (fleet_signer);
     * twice, the second from its cache. A signer of another CA: test_webticket.sh. */
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(
            signer_wt_verify(g_iss, &p, reason, (const uint8_t *)req, qlen, 65536, now, names, 2),
            0, "%s", reason);
    }
    /* ... but not after the signer's certificate expired */
    cr_assert_eq(signer_wt_verify(g_iss, &p, reason, (const uint8_t *)req, qlen, 65536,
                                  now + 31 * 86400, names, 2),
                 -EPERM);
    signer_wt_issuer_free(iss);
    /* a damaged certificate is not used: the CA key signs */
    char crt[TMPDIR_PATH_MAX + 64];
    snprintf(crt, sizeof(crt), "%s/ca/webticket.crt", dir);
    FILE *f = fopen(crt, "w");
    cr_assert_not_null(f);
    fputs("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", f);
    fclose(f);
    cr_assert_eq(signer_wt_issuer_new(&iss, g_ca, g_pin, "https://x/", dir), 0);
    cr_assert(!signer_wt_issuer_dedicated(iss));
    signer_wt_issuer_free(iss);
}
