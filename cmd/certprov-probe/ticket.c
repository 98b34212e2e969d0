/* certprov-probe: the phone's path as wire text ([MS-OCAUTHWS] §3.1, §3.2; PROTOCOL-NOTES §2.1,
 * §2.5; issue 18 §5), written from the spec and the notes, sharing nothing with certprovd: the
 * ports read from the metadata (mex) the way pidgin-sipe reads them, the RST to the Web Ticket
 * Service's PIN port, the RSTR's assertion (kept byte for byte), server entropy and KeySize, the
 * proof key P_SHA1(client entropy, server entropy) (WS-Trust 1.3 §4.4.5), and the wsse:Security
 * header of GetAndPublishCert: a Timestamp, the assertion and the HMAC-SHA1 signature over the
 * Timestamp. No XML library: the probe reads the few elements it needs by local name (any
 * prefix), and writes the Timestamp and SignedInfo already in their exclusive-c14n form (XML-DSig
 * §4.3.3: the bytes signed are the canonical ones; the server canonicalizes what it receives and
 * must get the same bytes), so it needs no canonicalizer of its own. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/base64.h>
#include <openssl/digest.h>
#include <openssl/hmac.h>
#include <openssl/mem.h>
#include <openssl/sha.h>

#include "base/base.h"
#include "cmd/certprov-probe/probe.h"

#define NS_SOAP11 "http://schemas.xmlsoap.org/soap/envelope/"
#define NS_WSA "http://www.w3.org/2005/08/addressing"
#define NS_WSSE "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
#define NS_WSU "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
#define NS_WST05 "http://schemas.xmlsoap.org/ws/2005/02/trust"
#define NS_WST13 "http://docs.oasis-open.org/ws-sx/ws-trust/200512"
#define NS_WSP "http://schemas.xmlsoap.org/ws/2004/09/policy"
#define NS_DS "http://www.w3.org/2000/09/xmldsig#"
#define NS_EXC "http://www.w3.org/2001/10/xml-exc-c14n#"
#define SAML11_TOKEN "http://docs.oasis-open.org/wss/oasis-wss-saml-token-profile-1.1#SAMLV1.1"
#define SAML_KEYID "http://docs.oasis-open.org/wss/oasis-wss-saml-token-profile-1.0#SAMLAssertionID"
#define AUTHCLAIMS "urn:component:Microsoft.Rtc.WebAuthentication.2010:authclaims"

/* ---- reading: elements by local name, any prefix ---- */

/* find_el returns the '<' of the first start tag at or after `from` (before `end`) whose local
 * name is `local`, or NULL. */
static const char *find_el(const char *from, const char *end, const char *local)
{
    size_t ll = strlen(local);
    for (const char *p = from; p != NULL && p < end; p++) {
        p = memchr(p, '<', (size_t)(end - p));
        if (p == NULL) {
            return NULL;
        }
        const char *n = p + 1;
        if (*n == '/' || *n == '?' || *n == '!') {
            continue;
        }
        size_t nl = strcspn(n, " \t\r\n/>");
        const char *colon = memchr(n, ':', nl);
        const char *lname = colon != NULL ? colon + 1 : n;
        size_t lnl = nl - (size_t)(lname - n);
        if (lnl == ll && memcmp(lname, local, ll) == 0) {
            return p;
        }
    }
    return NULL;
}

/* tag_end returns the '>' closing the start tag at `el`, or NULL. */
static const char *tag_end(const char *el, const char *end)
{
    bool quote = false;
    char q = 0;
    for (const char *p = el; p < end && *p != '\0'; p++) {
        if (quote) {
            quote = *p != q;
        } else if (*p == '"' || *p == '\'') {
            quote = true;
            q = *p;
        } else if (*p == '>') {
            return p;
        }
    }
    return NULL;
}

/* unescape copies text[0..len) into out with the five predefined entities decoded; -E2BIG if it
 * does not fit. */
static int unescape(char *out, size_t cap, const char *text, size_t len)
{
    static const struct {
        const char *ent;
        char ch;
    } ents[] = {{"&lt;", '<'}, {"&gt;", '>'}, {"&amp;", '&'}, {"&quot;", '"'}, {"&apos;", '\''}};
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        if (n + 1 >= cap) {
            return -E2BIG;
        }
        char ch = text[i];
        size_t step = 1;
        if (ch == '&') {
            for (size_t k = 0; k < ARRAY_LEN(ents); k++) {
                size_t el = strlen(ents[k].ent);
                if (len - i >= el && memcmp(text + i, ents[k].ent, el) == 0) {
                    ch = ents[k].ch;
                    step = el;
                    break;
                }
            }
        }
        out[n++] = ch;
        i += step;
    }
    out[n] = '\0';
    return 0;
}

/* el_text copies the text of the element at `el` (up to its first child or end tag), trimmed. */
static int el_text(char *out, size_t cap, const char *el, const char *end)
{
    const char *gt = el != NULL ? tag_end(el, end) : NULL;
    if (gt == NULL || gt[-1] == '/') {
        return -ENOENT;
    }
    const char *s = gt + 1;
    const char *e = memchr(s, '<', (size_t)(end - s));
    if (e == NULL) {
        return -ENOENT;
    }
    while (s < e && strchr(" \t\r\n", *s) != NULL) {
        s++;
    }
    while (e > s && strchr(" \t\r\n", e[-1]) != NULL) {
        e--;
    }
    return unescape(out, cap, s, (size_t)(e - s));
}

/* el_attr copies the value of the attribute of local name `local` (any prefix, as elements) of
 * the start tag at `el`. */
static int el_attr(char *out, size_t cap, const char *el, const char *end, const char *local)
{
    const char *gt = el != NULL ? tag_end(el, end) : NULL;
    if (gt == NULL) {
        return -ENOENT;
    }
    size_t ll = strlen(local);
    const char *p = el + 1 + strcspn(el + 1, " \t\r\n/>"); /* past the element's name */
    while (p < gt) {
        while (p < gt && strchr(" \t\r\n", *p) != NULL) {
            p++;
        }
        const char *name = p;
        while (p < gt && *p != '=' && strchr(" \t\r\n/>", *p) == NULL) {
            p++;
        }
        size_t nl = (size_t)(p - name);
        const char *colon = memchr(name, ':', nl);
        const char *lname = colon != NULL ? colon + 1 : name;
        size_t lnl = nl - (size_t)(lname - name);
        while (p < gt && strchr(" \t\r\n", *p) != NULL) {
            p++;
        }
        if (p >= gt || *p != '=') {
            if (p < gt) {
                p++; /* a stray byte ('/'): step over it */
            }
            continue;
        }
        p++;
        while (p < gt && strchr(" \t\r\n", *p) != NULL) {
            p++;
        }
        if (p >= gt || (*p != '"' && *p != '\'')) {
            return -ENOENT;
        }
        char q = *p++;
        const char *ve = memchr(p, q, (size_t)(gt - p));
        if (ve == NULL) {
            return -ENOENT;
        }
        if (lnl == ll && memcmp(lname, local, ll) == 0) {
            return unescape(out, cap, p, (size_t)(ve - p));
        }
        p = ve + 1;
    }
    return -ENOENT;
}

/* url_ok: an http(s) URL of printable ASCII without what would need escaping in XML. */
static bool url_ok(const char *u)
{
    if (strncmp(u, "https://", 8) != 0 && strncmp(u, "http://", 7) != 0) {
        return false;
    }
    for (const unsigned char *p = (const unsigned char *)u; *p != '\0'; p++) {
        if (*p <= 0x20 || *p >= 0x7f || strchr("<>&\"'", *p) != NULL) {
            return false;
        }
    }
    return true;
}

int probe_mex_certprov(struct probe_metadata *out, char *err, size_t err_len, const char *xml,
                       size_t len)
{
    const char *end = xml + len;
    /* The policy of the Web ticket port: ExactlyOne/All/EndorsingSupportingTokens/Policy/
     * IssuedToken/Issuer/Address (PROTOCOL-NOTES §2.1, pidgin-sipe certprov_metadata()). */
    const char *pol = NULL;
    char v[PROBE_URI_MAX];
    for (const char *p = find_el(xml, end, "Policy"); p != NULL;
         p = find_el(p + 1, end, "Policy")) {
        if (el_attr(v, sizeof(v), p, end, "Id") == 0 &&
            strcmp(v, PROBE_PROOF_PORT "_policy") == 0) {
            pol = p;
            break;
        }
    }
    if (pol == NULL) {
        probe_fmt(err, err_len, "no wsp:Policy %s_policy in the metadata", PROBE_PROOF_PORT);
        return -ENOENT;
    }
    const char *it = find_el(pol, end, "IssuedToken");
    const char *iss = it != NULL ? find_el(it, end, "Issuer") : NULL;
    const char *addr = iss != NULL ? find_el(iss, end, "Address") : NULL;
    if (addr == NULL || el_text(out->webticket_url, sizeof(out->webticket_url), addr, end) != 0 ||
        !url_ok(out->webticket_url)) {
        probe_fmt(err, err_len,
                  "the policy %s_policy names no IssuedToken/Issuer/Address (the Web Ticket "
                  "Service URL) that is an http(s) URL",
                  PROBE_PROOF_PORT);
        return -ENOENT;
    }
    int rc = probe_mex_port(out->proof_url, sizeof(out->proof_url), xml, len, PROBE_PROOF_PORT);
    if (rc != 0) {
        probe_fmt(err, err_len, "no wsdl:port %s with an http(s) soap:address in the metadata",
                  PROBE_PROOF_PORT);
        return rc;
    }
    return 0;
}

int probe_mex_port(char *out, size_t cap, const char *xml, size_t len, const char *port)
{
    const char *end = xml + len;
    char v[PROBE_URI_MAX];
    for (const char *p = find_el(xml, end, "port"); p != NULL; p = find_el(p + 1, end, "port")) {
        if (el_attr(v, sizeof(v), p, end, "name") != 0 || strcmp(v, port) != 0) {
            continue;
        }
        const char *a = find_el(p, end, "address");
        const char *next = find_el(p + 1, end, "port");
        if (a == NULL || (next != NULL && next < a) || el_attr(out, cap, a, end, "location") != 0 ||
            !url_ok(out)) {
            return -ENOENT;
        }
        return 0;
    }
    return -ENOENT;
}

/* ---- the RST ---- */

int probe_rst_new(char *out, size_t cap, size_t *out_len, const char *to, const char *applies_to,
                  const char *login, const char *pin, const char *claim_uri, const uint8_t *entropy,
                  size_t entropy_len, const char *context)
{
    char e64[BASE_B64_LEN(PROBE_ENTROPY_MAX) + 1];
    ASSERT(entropy_len <= PROBE_ENTROPY_MAX);
    (void)base_b64_encode(e64, sizeof(e64), entropy, entropy_len);
    char claims[PROBE_URI_MAX + 512] = "";
    if (claim_uri != NULL) {
        /* The user URI claim (PROTOCOL-NOTES §2.5): the server checks it names the user the PIN
         * signed in. */
        probe_fmt(claims, sizeof(claims),
                  "<wst:Claims Dialect=\"" AUTHCLAIMS "\" xmlns:auth=\""
                  "http://schemas.xmlsoap.org/ws/2006/12/authorization\"><auth:ClaimType Uri=\""
                  "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/uri\" Optional=\"false\">"
                  "<auth:Value>%s%s</auth:Value></auth:ClaimType></wst:Claims>",
                  strncasecmp(claim_uri, "sip:", 4) == 0 ? "" : "sip:", claim_uri);
    }
    /* WS-Trust 2005/02 RequestType and namespace, as pidgin-sipe sends (PROTOCOL-NOTES §2.5);
     * the PIN as a WS-Security UsernameToken to the WebTicketServicePin port. */
    int n = snprintf(
        out, cap,
        "<s:Envelope xmlns:s=\"" NS_SOAP11 "\" xmlns:wsa=\"" NS_WSA "\"><s:Header>"
        "<wsa:Action>" NS_WST13 "/RST/Issue</wsa:Action><wsa:To>%s</wsa:To>"
        "<wsse:Security xmlns:wsse=\"" NS_WSSE "\"><wsse:UsernameToken><wsse:Username>%s"
        "</wsse:Username><wsse:Password>%s</wsse:Password></wsse:UsernameToken></wsse:Security>"
        "</s:Header><s:Body><wst:RequestSecurityToken xmlns:wst=\"" NS_WST05 "\" Context=\"%s\">"
        "<wst:TokenType>" SAML11_TOKEN "</wst:TokenType>"
        "<wst:RequestType>" NS_WST05 "/Issue</wst:RequestType>"
        "<wsp:AppliesTo xmlns:wsp=\"" NS_WSP "\"><wsa:EndpointReference><wsa:Address>%s"
        "</wsa:Address></wsa:EndpointReference></wsp:AppliesTo>%s"
        "<wst:Entropy><wst:BinarySecret>%s</wst:BinarySecret></wst:Entropy>"
        "<wst:KeyType>" NS_WST13 "/SymmetricKey</wst:KeyType>"
        "</wst:RequestSecurityToken></s:Body></s:Envelope>",
        to, login, pin, context, applies_to, claims, e64);
    if (n <= 0 || (size_t)n >= cap) {
        OPENSSL_cleanse(out, cap);
        return -E2BIG;
    }
    *out_len = (size_t)n;
    return 0;
}

/* ---- the RSTR ---- */

void probe_p_sha1(uint8_t *out, size_t out_len, const uint8_t *secret, size_t secret_len,
                  const uint8_t *seed, size_t seed_len)
{
    /* RFC 2246 §5: A(0) = seed, A(i) = HMAC(secret, A(i-1)); output HMAC(secret, A(i) + seed). */
    uint8_t a[SHA_DIGEST_LENGTH];
    uint8_t block[SHA_DIGEST_LENGTH];
    unsigned int alen = 0;
    ASSERT(HMAC(EVP_sha1(), secret, secret_len, seed, seed_len, a, &alen) != NULL);
    for (size_t done = 0; done < out_len;) {
        HMAC_CTX h;
        HMAC_CTX_init(&h);
        unsigned int blen = 0;
        ASSERT(HMAC_Init_ex(&h, secret, secret_len, EVP_sha1(), NULL) &&
               HMAC_Update(&h, a, sizeof(a)) && HMAC_Update(&h, seed, seed_len) &&
               HMAC_Final(&h, block, &blen));
        HMAC_CTX_cleanup(&h);
        size_t take = out_len - done < blen ? out_len - done : blen;
        memcpy(out + done, block, take);
        done += take;
        ASSERT(HMAC(EVP_sha1(), secret, secret_len, a, sizeof(a), a, &alen) != NULL);
    }
    OPENSSL_cleanse(a, sizeof(a));
    OPENSSL_cleanse(block, sizeof(block));
}

int probe_rstr_parse(struct probe_ticket *t, char *err, size_t err_len, const char *xml, size_t len,
                     const uint8_t *entropy, size_t entropy_len, const char *context)
{
    const char *end = xml + len;
    memset(t, 0, sizeof(*t));
    const char *rstr = find_el(xml, end, "RequestSecurityTokenResponse");
    if (rstr == NULL) {
        probe_fmt(err, err_len, "200 without a RequestSecurityTokenResponse");
        return -EBADMSG;
    }
    char v[PROBE_URI_MAX];
    if (el_attr(v, sizeof(v), rstr, end, "Context") != 0 || strcmp(v, context) != 0) {
        probe_fmt(err, err_len,
                  "the RSTR does not echo the request's Context \"%s\" "
                  "([MS-OCAUTHWS] §3.2.4.1)",
                  context);
        return -EBADMSG;
    }
    /* The assertion, verbatim from its start tag to its end tag (it is signed: not a byte may
     * change), as pidgin-sipe keeps it. */
    const char *as = find_el(rstr, end, "Assertion");
    const char *gt = as != NULL ? tag_end(as, end) : NULL;
    if (gt == NULL) {
        probe_fmt(err, err_len, "the RSTR holds no saml:Assertion");
        return -EBADMSG;
    }
    size_t qn = strcspn(as + 1, " \t\r\n/>");
    char close[80];
    probe_fmt(close, sizeof(close), "</%.*s>", (int)(qn < 60 ? qn : 60), as + 1);
    const char *ae = strstr(gt, close);
    if (ae == NULL || ae >= end) {
        probe_fmt(err, err_len, "the saml:Assertion is not closed");
        return -EBADMSG;
    }
    ae += strlen(close);
    size_t alen = (size_t)(ae - as);
    if (alen >= sizeof(t->assertion)) {
        probe_fmt(err, err_len, "the saml:Assertion is over %zu bytes", sizeof(t->assertion));
        return -E2BIG;
    }
    memcpy(t->assertion, as, alen);
    t->assertion[alen] = '\0';
    t->assertion_len = alen;
    if (el_attr(t->assertion_id, sizeof(t->assertion_id), as, ae, "AssertionID") != 0 ||
        t->assertion_id[0] == '\0' || strpbrk(t->assertion_id, "<>&\"'") != NULL) {
        probe_fmt(err, err_len, "the saml:Assertion has no AssertionID");
        return -EBADMSG;
    }
    if (el_text(t->subject, sizeof(t->subject), find_el(as, ae, "NameIdentifier"), ae) != 0 ||
        t->subject[0] == '\0' || strpbrk(t->subject, "<>&\"' ") != NULL) {
        probe_fmt(err, err_len, "the saml:Assertion names no Subject/NameIdentifier (the user)");
        return -EBADMSG;
    }
    (void)el_attr(t->not_on_or_after, sizeof(t->not_on_or_after), find_el(as, ae, "Conditions"), ae,
                  "NotOnOrAfter");
    /* The rest of the RSTR, after the assertion: the proof key's recipe. */
    const char *ck = find_el(ae, end, "ComputedKey");
    if (el_text(v, sizeof(v), ck, end) != 0 || strlen(v) < 9 ||
        strcmp(v + strlen(v) - 9, "/CK/PSHA1") != 0) {
        probe_fmt(err, err_len, "the RSTR's RequestedProofToken/ComputedKey is not .../CK/PSHA1");
        return -EBADMSG;
    }
    const char *ent = find_el(ae, end, "Entropy");
    const char *bs = ent != NULL ? find_el(ent, end, "BinarySecret") : NULL;
    char b64[BASE_B64_LEN(PROBE_ENTROPY_MAX) + 8];
    uint8_t server[PROBE_ENTROPY_MAX];
    size_t server_len = 0;
    if (el_text(b64, sizeof(b64), bs, end) != 0 ||
        !EVP_DecodeBase64(server, &server_len, sizeof(server), (const uint8_t *)b64, strlen(b64)) ||
        server_len < 16) {
        probe_fmt(err, err_len,
                  "the RSTR's Entropy/BinarySecret (the server entropy) is missing or not 16 to "
                  "%u bytes of base64",
                  PROBE_ENTROPY_MAX);
        return -EBADMSG;
    }
    unsigned long bits = 256; /* WS-Trust 1.3 §3.2: KeySize in bits; the request asked none */
    if (el_text(v, sizeof(v), find_el(ae, end, "KeySize"), end) == 0) {
        char *e = NULL;
        bits = strtoul(v, &e, 10);
        if (e == v || *e != '\0' || bits < 128 || bits > 8 * PROBE_PROOF_MAX || bits % 8 != 0) {
            probe_fmt(err, err_len, "the RSTR's KeySize \"%s\" is not 128 to %u bits", v,
                      8 * PROBE_PROOF_MAX);
            return -EBADMSG;
        }
    }
    (void)el_text(t->lifetime_expires, sizeof(t->lifetime_expires),
                  find_el(find_el(ae, end, "Lifetime"), end, "Expires"), end);
    t->proof_len = bits / 8;
    probe_p_sha1(t->proof, t->proof_len, entropy, entropy_len, server, server_len);
    OPENSSL_cleanse(server, sizeof(server));
    return 0;
}

/* ---- the Security header of GetAndPublishCert ---- */

static void utc(char *out, size_t cap, time_t t)
{
    struct tm tm;
    ASSERT(gmtime_r(&t, &tm) != NULL);
    ASSERT(strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm) > 0);
}

int probe_proof_security(char *out, size_t cap, size_t *out_len, const struct probe_ticket *t,
                         time_t now)
{
    char created[32];
    char expires[32];
    utc(created, sizeof(created), now);
    utc(expires, sizeof(expires), now + 300);
    /* The Timestamp in exclusive c14n form (Exclusive XML Canonicalization §3, C14N §2.3): the
     * one namespace it uses declared on it, before its attribute; no whitespace, no empty-element
     * tags. The server canonicalizes it inside the envelope and gets these bytes. */
    char ts[512];
    probe_fmt(ts, sizeof(ts),
              "<wsu:Timestamp xmlns:wsu=\"" NS_WSU "\" wsu:Id=\"timestamp\"><wsu:Created>%s"
              "</wsu:Created><wsu:Expires>%s</wsu:Expires></wsu:Timestamp>",
              created, expires);
    uint8_t d[SHA_DIGEST_LENGTH];
    SHA1((const uint8_t *)ts, strlen(ts), d);
    char d64[BASE_B64_LEN(SHA_DIGEST_LENGTH) + 1];
    (void)base_b64_encode(d64, sizeof(d64), d, sizeof(d));
    /* SignedInfo, canonical too: the HMAC-SHA1 (XML-DSig §6.3.1) is over these bytes. */
    char si[1024];
    probe_fmt(si, sizeof(si),
              "<SignedInfo xmlns=\"" NS_DS "\"><CanonicalizationMethod Algorithm=\"" NS_EXC
              "\"></CanonicalizationMethod><SignatureMethod Algorithm=\"" NS_DS
              "hmac-sha1\"></SignatureMethod><Reference URI=\"#timestamp\"><Transforms>"
              "<Transform Algorithm=\"" NS_EXC "\"></Transform></Transforms><DigestMethod "
              "Algorithm=\"" NS_DS "sha1\"></DigestMethod><DigestValue>%s</DigestValue>"
              "</Reference></SignedInfo>",
              d64);
    uint8_t mac[SHA_DIGEST_LENGTH];
    unsigned int mac_len = 0;
    ASSERT(HMAC(EVP_sha1(), t->proof, t->proof_len, (const uint8_t *)si, strlen(si), mac,
                &mac_len) != NULL);
    char mac64[BASE_B64_LEN(SHA_DIGEST_LENGTH) + 1];
    (void)base_b64_encode(mac64, sizeof(mac64), mac, mac_len);
    int n = snprintf(out, cap,
                     "<wsse:Security xmlns:wsse=\"" NS_WSSE "\">%s%s<Signature xmlns=\"" NS_DS
                     "\">%s<SignatureValue>%s</SignatureValue><KeyInfo>"
                     "<wsse:SecurityTokenReference><wsse:KeyIdentifier ValueType=\"" SAML_KEYID
                     "\">%s</wsse:KeyIdentifier></wsse:SecurityTokenReference></KeyInfo>"
                     "</Signature></wsse:Security>",
                     ts, t->assertion, si, mac64, t->assertion_id);
    if (n <= 0 || (size_t)n >= cap) {
        return -E2BIG;
    }
    *out_len = (size_t)n;
    return 0;
}

void probe_soap_fault(char *out, size_t cap, const char *xml, size_t len)
{
    const char *end = xml + len;
    char id[32] = "";
    char reason[PROBE_TEXT_MAX / 2] = "";
    out[0] = '\0';
    /* [MS-OCAUTHWS] §2.2.4.1: detail/OCSDiagnosticsFault/Ms-Diagnostics-Fault (ErrorId, Reason);
     * else the SOAP 1.1 faultstring or the SOAP 1.2 Reason/Text. */
    const char *df = find_el(xml, end, "Ms-Diagnostics-Fault");
    if (df != NULL) {
        (void)el_text(id, sizeof(id), find_el(df, end, "ErrorId"), end);
        (void)el_text(reason, sizeof(reason), find_el(df, end, "Reason"), end);
    }
    if (reason[0] == '\0' &&
        el_text(reason, sizeof(reason), find_el(xml, end, "faultstring"), end) != 0) {
        (void)el_text(reason, sizeof(reason), find_el(find_el(xml, end, "Fault"), end, "Text"),
                      end);
    }
    if (reason[0] != '\0') {
        probe_fmt(out, cap, "SOAP fault%s%s: %s", id[0] != '\0' ? " " : "", id, reason);
    }
}
