/* The Web Ticket Service's tokens ([MS-OCAUTHWS] §3.2.4.1 IssueToken): the RST parser, the SAML
 * 1.1 assertion (signed with XML-DSig, exclusive c14n, by the issuing CA's key through hsm/), the
 * RSTR, P_SHA1 (WS-Trust 1.3 §4.4.5 CK/PSHA1) and the stateless proof key (sealed into the
 * AssertionID). Wire details: ../shared/PROTOCOL-NOTES.md §2.5 (pidgin-sipe as the reference
 * client: it copies the RSTR's Lifetime children into its wsu:Timestamp and the raw
 * saml:Assertion into its wsse:Security, so both are self-contained here). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <libxml/tree.h>
#include <openssl/aead.h>
#include <openssl/bn.h>
#include <openssl/bytestring.h>
#include <openssl/digest.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/mem.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include "signer/internal.h"

#define NS_TRUST13 "http://docs.oasis-open.org/ws-sx/ws-trust/200512"
#define NS_TRUST05 "http://schemas.xmlsoap.org/ws/2005/02/trust"
#define TOKEN_SAML11 "http://docs.oasis-open.org/wss/oasis-wss-saml-token-profile-1.1#SAMLV1.1"
#define CLAIMS_DIALECT "urn:component:Microsoft.Rtc.WebAuthentication.2010:authclaims"
#define CLAIM_URI "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/uri"
#define SEAL_LABEL "certprov webticket proof-key seal v1"
#define SEAL_NONCE 12
#define SEAL_TAG 16

/* ---- P_SHA1 (RFC 2246 §5) ---- */

void signer_p_sha1(uint8_t *out, size_t out_len, const uint8_t *secret, size_t secret_len,
                   const uint8_t *seed, size_t seed_len)
{
    ASSERT(out_len <= 1024);
    ASSERT(seed_len <= 1024);
    uint8_t a[SHA_DIGEST_LENGTH]; /* A(i) */
    uint8_t buf[SHA_DIGEST_LENGTH + 1024];
    uint8_t block[SHA_DIGEST_LENGTH];
    unsigned n = 0;
    /* A(1) = HMAC(secret, A(0) = seed) */
    ASSERT(HMAC(EVP_sha1(), secret, secret_len, seed, seed_len, a, &n) != NULL);
    for (size_t done = 0; done < out_len;) {
        memcpy(buf, a, sizeof(a));
        memcpy(buf + sizeof(a), seed, seed_len);
        ASSERT(HMAC(EVP_sha1(), secret, secret_len, buf, sizeof(a) + seed_len, block, &n) != NULL);
        size_t take = out_len - done < sizeof(block) ? out_len - done : sizeof(block);
        memcpy(out + done, block, take);
        done += take;
        ASSERT(HMAC(EVP_sha1(), secret, secret_len, a, sizeof(a), a, &n) != NULL);
    }
    OPENSSL_cleanse(a, sizeof(a));
    OPENSSL_cleanse(block, sizeof(block));
    OPENSSL_cleanse(buf, sizeof(buf));
}

/* ---- the sealed proof key: AssertionID = "_" base64url(nonce || AES-256-GCM(key) || tag) ---- */

static size_t b64url(char *out, size_t cap, const uint8_t *in, size_t len)
{
    size_t n = base_b64_encode(out, cap, in, len);
    while (n > 0 && out[n - 1] == '=') {
        out[--n] = '\0';
    }
    for (size_t i = 0; i < n; i++) {
        out[i] = out[i] == '+' ? '-' : out[i] == '/' ? '_' : out[i];
    }
    return n;
}

static int seal(const struct signer_wt_issuer *iss, char *id, size_t cap, const uint8_t *key,
                size_t key_len)
{
    uint8_t blob[SEAL_NONCE + SIGNER_WT_KEY_MAX + SEAL_TAG];
    EVP_AEAD_CTX ctx;
    size_t n = 0;
    ASSERT(key_len <= SIGNER_WT_KEY_MAX);
    RAND_bytes(blob, SEAL_NONCE);
    if (!EVP_AEAD_CTX_init(&ctx, EVP_aead_aes_256_gcm(), iss->seal_key, sizeof(iss->seal_key),
                           SEAL_TAG, NULL)) {
        return -EIO;
    }
    int ok =
        EVP_AEAD_CTX_seal(&ctx, blob + SEAL_NONCE, &n, sizeof(blob) - SEAL_NONCE, blob, SEAL_NONCE,
                          key, key_len, (const uint8_t *)SEAL_LABEL, sizeof(SEAL_LABEL) - 1);
    EVP_AEAD_CTX_cleanup(&ctx);
    if (!ok || cap < 2 + BASE_B64_LEN(SEAL_NONCE + n)) {
        return -EIO;
    }
    id[0] = '_'; /* an NCName (SAML 1.1 AssertionID is xsd:ID) may not start with a digit */
    (void)b64url(id + 1, cap - 1, blob, SEAL_NONCE + n);
    return 0;
}

int wt_unseal(const struct signer_wt_issuer *iss, uint8_t *out, size_t cap, size_t *out_len,
              const char *assertion_id)
{
    char b64[SIGNER_WT_ID_MAX + 4];
    size_t len = strlen(assertion_id);
    if (len < 2 || len > SIGNER_WT_ID_MAX || assertion_id[0] != '_') {
        return -EPERM;
    }
    size_t i = 0;
    for (; i < len - 1; i++) {
        char c = assertion_id[i + 1];
        b64[i] = c == '-' ? '+' : c == '_' ? '/' : c;
    }
    b64[i] = '\0';
    uint8_t blob[SEAL_NONCE + SIGNER_WT_KEY_MAX + SEAL_TAG];
    size_t blob_len = 0;
    if (signer_base64_decode(blob, sizeof(blob), &blob_len, b64, i, SIGNER_BASE64_UNPADDED) != 0 ||
        blob_len < SEAL_NONCE + SEAL_TAG + SIGNER_WT_KEY_MIN) {
        return -EPERM;
    }
    EVP_AEAD_CTX ctx;
    if (!EVP_AEAD_CTX_init(&ctx, EVP_aead_aes_256_gcm(), iss->seal_key, sizeof(iss->seal_key),
                           SEAL_TAG, NULL)) {
        return -EPERM;
    }
    int ok = EVP_AEAD_CTX_open(&ctx, out, out_len, cap, blob, SEAL_NONCE, blob + SEAL_NONCE,
                               blob_len - SEAL_NONCE, (const uint8_t *)SEAL_LABEL,
                               sizeof(SEAL_LABEL) - 1);
    EVP_AEAD_CTX_cleanup(&ctx);
    return ok ? 0 : -EPERM;
}

/* ---- the issuer ---- */

const char *wt_sig_method(enum hsm_key_type type)
{
    switch (type) {
    case HSM_KEY_P256:
        return "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256";
    case HSM_KEY_P384:
        return "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384";
    case HSM_KEY_RSA2048:
    case HSM_KEY_RSA3072:
        return "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256";
    default:
        return NULL;
    }
}

const void *wt_sig_md(enum hsm_key_type type)
{
    return type == HSM_KEY_P384 ? EVP_sha384() : EVP_sha256();
}

/* first_cert decodes the first PEM certificate of the chain (the issuing CA's). */
static int first_cert(struct signer_wt_issuer *iss, const char *pem)
{
    static const char begin[] = "-----BEGIN CERTIFICATE-----";
    static const char end[] = "-----END CERTIFICATE-----";
    const char *b = strstr(pem, begin);
    const char *e = b != NULL ? strstr(b, end) : NULL;
    if (e == NULL) {
        return -EBADMSG;
    }
    b += sizeof(begin) - 1;
    if (signer_base64_decode(iss->cert_der, sizeof(iss->cert_der), &iss->cert_der_len, b,
                             (size_t)(e - b), SIGNER_BASE64_SKIP_SPACE) != 0) {
        return -EBADMSG;
    }
    (void)base_b64_encode(iss->cert_b64, sizeof(iss->cert_b64), iss->cert_der, iss->cert_der_len);
    return 0;
}

/* ---- the dedicated Web ticket signer (ca/webticket.key, ca/webticket.crt) ---- */

static int wt_paths(char key[4200], char crt[4200], const char *dir, const char *suffix)
{
    int a = snprintf(key, 4200, "%s/ca/webticket.key%s", dir, suffix);
    int b = snprintf(crt, 4200, "%s/ca/webticket.crt%s", dir, suffix);
    return a >= 4200 || b >= 4200 ? -EINVAL : 0;
}

int signer_wt_signer_issue(struct signer_ca *ca, const char *dir, uint32_t days, int64_t now_s,
                           int64_t *out_not_after_s)
{
    ASSERT(ca != NULL);
    ASSERT(dir != NULL);
    char key_path[4200], crt_path[4200];
    if (wt_paths(key_path, crt_path, dir, "") != 0) {
        return -EINVAL;
    }
    return ca_delegate_issue(ca, CERT_KIND_WEBTICKET, WT_SIGNER_CN, key_path, crt_path, days, now_s,
                             out_not_after_s);
}

/* load_dedicated reads the Web ticket signer under `dir`: its certificate must hold its key, be
 * signed by the issuing CA and be valid now. Returns 0, -ENOENT (none) or another negative errno
 * (unusable). */
static int load_dedicated(struct signer_wt_issuer *iss, const char *dir)
{
    char key_path[4200], crt_path[4200];
    if (wt_paths(key_path, crt_path, dir, "") != 0) {
        return -EINVAL;
    }
    int rc =
        signer_pem_read_cert(iss->cert_der, sizeof(iss->cert_der), &iss->cert_der_len, crt_path, 0);
    if (rc != 0) {
        return rc;
    }
    rc = hsm_soft_open(&iss->own_key, key_path);
    if (rc != 0) {
        return rc;
    }
    uint8_t spki[HSM_SPKI_MAX], ca_spki[HSM_SPKI_MAX];
    size_t spki_len = 0, ca_spki_len = 0;
    const uint8_t *p = iss->cert_der;
    X509 *x = d2i_X509(NULL, &p, (long)iss->cert_der_len);
    EVP_PKEY *ca_key = NULL;
    if (x == NULL || hsm_key_public_der(iss->own_key, spki, sizeof(spki), &spki_len) != 0 ||
        hsm_key_public_der(iss->ca->key, ca_spki, sizeof(ca_spki), &ca_spki_len) != 0) {
        rc = -EBADMSG;
    } else {
        CBS cbs;
        CBS_init(&cbs, ca_spki, ca_spki_len);
        ca_key = EVP_parse_public_key(&cbs);
        uint8_t *cert_spki = NULL;
        int n = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), &cert_spki);
        bool same = n > 0 && (size_t)n == spki_len && memcmp(cert_spki, spki, spki_len) == 0;
        OPENSSL_free(cert_spki);
        time_t now = (time_t)clock_real_s();
        rc = !same                                             ? -EBADMSG
             : ca_key == NULL || X509_verify(x, ca_key) != 1   ? -EPERM
             : X509_cmp_time(X509_get0_notAfter(x), &now) <= 0 ? -EKEYEXPIRED
                                                               : 0;
    }
    EVP_PKEY_free(ca_key);
    X509_free(x);
    if (rc == 0) {
        iss->key = iss->own_key;
        iss->type = hsm_key_get_type(iss->own_key);
    }
    return rc;
}

int signer_wt_issuer_new(struct signer_wt_issuer **out, struct signer_ca *ca,
                         const struct signer_pin_key *pin_key, const char *issuer_url,
                         const char *dir)
{
    ASSERT(out != NULL);
    ASSERT(ca != NULL);
    struct signer_wt_issuer *iss = calloc(1, sizeof(*iss));
    if (iss == NULL) {
        return -ENOMEM;
    }
    iss->ca = ca;
    int rc = dir != NULL ? load_dedicated(iss, dir) : -ENOENT;
    if (rc != 0 && rc != -ENOENT) {
        log_warn("signer: webticket_signer_unusable dir=%s rc=%d action=\"certprovctl ca "
                 "webticket-signer\" using=ca_key",
                 dir, rc);
    }
    if (rc != 0) {
        hsm_key_free(iss->own_key);
        iss->own_key = NULL;
        iss->key = signer_ca_get_key(ca);
        iss->type = hsm_key_get_type(iss->key);
        size_t pem_len = 0;
        rc = wt_sig_method(iss->type) == NULL ? -ENOTSUP : 0;
        if (rc == 0) {
            rc = first_cert(iss, signer_ca_get_chain_pem(ca, &pem_len));
        }
    } else {
        (void)base_b64_encode(iss->cert_b64, sizeof(iss->cert_b64), iss->cert_der,
                              iss->cert_der_len);
    }
    uint8_t spki[HSM_SPKI_MAX];
    size_t spki_len = 0;
    if (rc == 0 && hsm_key_public_der(iss->key, spki, sizeof(spki), &spki_len) != 0) {
        rc = -EBADMSG;
    }
    if (rc == 0) {
        CBS cbs;
        CBS_init(&cbs, spki, spki_len);
        iss->pkey = EVP_parse_public_key(&cbs);
        rc = iss->pkey == NULL ? -EBADMSG : 0;
    }
    if (rc == 0 && base_str_copy(iss->issuer_url, sizeof(iss->issuer_url), issuer_url) != 0) {
        rc = -E2BIG;
    }
    if (rc == 0 && hsm_key_public_der(signer_ca_get_key(ca), spki, sizeof(spki), &spki_len) != 0) {
        rc = -EBADMSG;
    }
    if (rc == 0) {
        CBS cbs;
        CBS_init(&cbs, spki, spki_len);
        iss->ca_pkey = EVP_parse_public_key(&cbs);
        rc = iss->ca_pkey == NULL ? -EBADMSG : 0;
    }
    if (rc == 0) {
        rc = -pthread_mutex_init(&iss->fleet_mu, NULL);
        iss->fleet_mu_init = rc == 0;
    }
    if (rc != 0) {
        signer_wt_issuer_free(iss);
        return rc;
    }
    signer_pin_key_derive(pin_key, iss->seal_key, SEAL_LABEL);
    *out = iss;
    return 0;
}

bool signer_wt_issuer_dedicated(const struct signer_wt_issuer *iss)
{
    return iss->own_key != NULL;
}

void signer_wt_issuer_free(struct signer_wt_issuer *iss)
{
    if (iss == NULL) {
        return;
    }
    EVP_PKEY_free(iss->pkey);
    EVP_PKEY_free(iss->ca_pkey);
    for (size_t i = 0; i < WT_FLEET_SIGNERS; i++) {
        EVP_PKEY_free(iss->fleet[i].pkey);
    }
    for (size_t i = 0; i < iss->num_fleet_cas; i++) {
        EVP_PKEY_free(iss->fleet_cas[i].pkey);
    }
    if (iss->fleet_mu_init) {
        int rc = pthread_mutex_destroy(&iss->fleet_mu);
        ASSERT(rc == 0);
    }
    hsm_key_free(iss->own_key);
    OPENSSL_cleanse(iss->seal_key, sizeof(iss->seal_key));
    free(iss);
}

/* ---- the RST ---- */

/* plain: printable ASCII without the XML specials, so that it can be echoed unescaped. */
static bool plain(const char *s)
{
    for (; *s != '\0'; s++) {
        if (*s < 0x21 || *s > 0x7e || strchr("<>&\"'", *s) != NULL) {
            return false;
        }
    }
    return true;
}

static bool trust_ns(const xmlNode *n)
{
    if (n == NULL || n->ns == NULL || n->ns->href == NULL) {
        return false;
    }
    const char *h = (const char *)n->ns->href;
    return strcmp(h, NS_TRUST13) == 0 || strcmp(h, NS_TRUST13 "/") == 0 ||
           strcmp(h, NS_TRUST05) == 0;
}

/* tchild: a WS-Trust child of the RST (either namespace spelling). */
static xmlNodePtr tchild(xmlNodePtr p, const char *local)
{
    for (xmlNodePtr c = p != NULL ? p->children : NULL; c != NULL; c = c->next) {
        if (sx_is(c, NULL, local) && trust_ns(c)) {
            return c;
        }
    }
    return NULL;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s);
    size_t b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

#define FAIL(code, ...)                                                                            \
    do {                                                                                           \
        (void)snprintf(reason, SIGNER_REASON_MAX, __VA_ARGS__);                                    \
        rc = (code);                                                                               \
        goto out;                                                                                  \
    } while (0)

/* rst_token reads the header's WS-Security UsernameToken (the PIN port: phone number or extension
 * + PIN). */
static int rst_token(xmlNodePtr header, char *user, size_t user_cap, char *pin, size_t pin_cap,
                     bool *out_token)
{
    xmlNodePtr tok =
        sx_child(sx_child(header, SX_NS_WSSE, "Security"), SX_NS_WSSE, "UsernameToken");
    *out_token = false;
    if (tok == NULL) {
        return 0;
    }
    if (sx_text(sx_child(tok, SX_NS_WSSE, "Username"), user, user_cap) != 0 || user[0] == '\0' ||
        sx_text(sx_child(tok, SX_NS_WSSE, "Password"), pin, pin_cap) != 0) {
        return -EBADMSG;
    }
    *out_token = true;
    return 0;
}

/* rst_claims reads the user URI claim (the authclaims dialect, PROTOCOL-NOTES §2.5). */
static int rst_claims(struct signer_wt_request *out, xmlNodePtr claims, char *reason)
{
    char v[SIGNER_WT_URL_MAX + 1];
    if (claims == NULL) {
        return 0;
    }
    if (sx_attr(claims, NULL, "Dialect", v, sizeof(v)) != 0 || strcmp(v, CLAIMS_DIALECT) != 0) {
        (void)snprintf(reason, SIGNER_REASON_MAX, "Claims: the Dialect must be %s", CLAIMS_DIALECT);
        return -EPROTO;
    }
    for (xmlNodePtr c = claims->children; c != NULL; c = c->next) {
        if (!sx_is(c, NULL, "ClaimType") || sx_attr(c, NULL, "Uri", v, sizeof(v)) != 0 ||
            strcmp(v, CLAIM_URI) != 0) {
            continue;
        }
        if (sx_text(sx_child(c, NULL, "Value"), out->claim_uri, sizeof(out->claim_uri)) != 0 ||
            out->claim_uri[0] == '\0') {
            (void)snprintf(reason, SIGNER_REASON_MAX, "Claims: the user URI claim has no Value");
            return -EBADMSG;
        }
    }
    return 0;
}

static int rst_body(struct signer_wt_request *out, xmlNodePtr rst, char *reason)
{
    char v[SIGNER_WT_URL_MAX + 1];
    int rc = 0;
    out->trust13 = !sx_is(rst, NS_TRUST05, "RequestSecurityToken");
    if (sx_attr(rst, NULL, "Context", out->context, sizeof(out->context)) == -E2BIG ||
        !plain(out->context)) {
        FAIL(-EBADMSG, "RequestSecurityToken: Context must be at most %d printable characters",
             SIGNER_WT_CONTEXT_MAX);
    }
    if (sx_text(tchild(rst, "TokenType"), v, sizeof(v)) == 0 && strcmp(v, TOKEN_SAML11) != 0 &&
        strcmp(v, SX_NS_SAML) != 0) {
        FAIL(-EPROTO, "TokenType: only SAML 1.1 (%s) is issued", TOKEN_SAML11);
    }
    /* WS-Trust 2005/02 (what pidgin-sipe sends) and 1.3 (200512) both name Issue. */
    if (sx_text(tchild(rst, "RequestType"), v, sizeof(v)) != 0 ||
        (strcmp(v, NS_TRUST05 "/Issue") != 0 && strcmp(v, NS_TRUST13 "/Issue") != 0)) {
        FAIL(-EPROTO, "RequestType must be %s/Issue or %s/Issue", NS_TRUST05, NS_TRUST13);
    }
    xmlNodePtr at = NULL;
    for (xmlNodePtr c = rst->children; c != NULL && at == NULL; c = c->next) {
        at = sx_is(c, NULL, "AppliesTo") ? c : NULL;
    }
    xmlNodePtr addr = sx_child(sx_child(at, NULL, "EndpointReference"), NULL, "Address");
    if (sx_text(addr, out->applies_to, sizeof(out->applies_to)) != 0 || !plain(out->applies_to) ||
        (strncasecmp(out->applies_to, "https://", 8) != 0 &&
         strncasecmp(out->applies_to, "http://", 7) != 0)) {
        FAIL(-EBADMSG,
             "AppliesTo: EndpointReference/Address must be an http(s) URL of at most "
             "%d characters",
             SIGNER_WT_URL_MAX);
    }
    if (sx_text(tchild(rst, "KeyType"), v, sizeof(v)) == 0 && !ends_with(v, "/SymmetricKey")) {
        FAIL(-EPROTO, "KeyType: only SymmetricKey (a proof key by CK/PSHA1) is issued");
    }
    out->key_len = SIGNER_WT_KEY_DEFAULT;
    if (sx_text(tchild(rst, "KeySize"), v, sizeof(v)) == 0) {
        char *end = NULL;
        unsigned long bits = strtoul(v, &end, 10);
        if (*end != '\0' || bits % 8 != 0 || bits < SIGNER_WT_KEY_MIN * 8 ||
            bits > SIGNER_WT_KEY_MAX * 8) {
            FAIL(-EBADMSG, "KeySize must be %d to %d bits, a multiple of 8", SIGNER_WT_KEY_MIN * 8,
                 SIGNER_WT_KEY_MAX * 8);
        }
        out->key_len = (uint32_t)(bits / 8);
    }
    char b64[BASE_B64_LEN(SIGNER_WT_ENTROPY_MAX) + 64];
    if (sx_text(tchild(tchild(rst, "Entropy"), "BinarySecret"), b64, sizeof(b64)) != 0 ||
        signer_base64_decode(out->entropy, sizeof(out->entropy), &out->entropy_len, b64,
                             strlen(b64), SIGNER_BASE64_SKIP_SPACE) != 0 ||
        out->entropy_len < SIGNER_WT_ENTROPY_MIN) {
        FAIL(-EBADMSG, "Entropy/BinarySecret must be %d to %d bytes in base64",
             SIGNER_WT_ENTROPY_MIN, SIGNER_WT_ENTROPY_MAX);
    }
    xmlNodePtr life = tchild(rst, "Lifetime");
    if (life != NULL) {
        if (sx_text(sx_child(life, SX_NS_WSU, "Expires"), v, sizeof(v)) != 0 ||
            sx_time_parse(&out->expires_s, v) != 0) {
            FAIL(-EBADMSG, "Lifetime: wsu:Expires must be an xsd:dateTime in UTC");
        }
    }
    rc = rst_claims(out, tchild(rst, "Claims"), reason);
out:
    return rc;
}

int signer_wt_request_parse(struct signer_wt_request *out, char *user, size_t user_cap, char *pin,
                            size_t pin_cap, bool *out_token, char *reason, const uint8_t *body,
                            size_t len, size_t max)
{
    ASSERT(out != NULL);
    ASSERT(reason != NULL);
    *out = (struct signer_wt_request){0};
    *out_token = false;
    reason[0] = '\0';
    int rc = 0;
    xmlDocPtr doc = sx_parse(body, len, max, &rc);
    if (doc == NULL) {
        (void)snprintf(reason, SIGNER_REASON_MAX, "%s",
                       rc == -E2BIG ? "The request is too large"
                                    : "Not well-formed XML, or it has a DOCTYPE");
        return rc;
    }
    xmlNodePtr b = sx_soap_part(doc, "Body", &out->soap12);
    xmlNodePtr rst = NULL;
    for (xmlNodePtr c = b != NULL ? b->children : NULL; c != NULL && rst == NULL; c = c->next) {
        rst = sx_is(c, NULL, "RequestSecurityToken") && trust_ns(c) ? c : NULL;
    }
    if (rst == NULL) {
        FAIL(-EBADMSG, "Not a SOAP envelope whose Body holds a WS-Trust RequestSecurityToken");
    }
    rc = rst_body(out, rst, reason);
    if (rc == 0 && rst_token(sx_soap_part(doc, "Header", &out->soap12), user, user_cap, pin,
                             pin_cap, out_token) != 0) {
        FAIL(-EBADMSG, "The UsernameToken needs a Username and a Password that fit");
    }
out:
    sx_free(doc);
    if (rc != 0) {
        *out_token = false;
        OPENSSL_cleanse(pin, pin_cap);
    }
    return rc;
}

/* ---- the assertion and the RSTR ---- */

struct sbuf {
    char *p;
    size_t cap;
    size_t len;
    bool over;
};

__attribute__((format(printf, 2, 3))) static void put(struct sbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    size_t room = b->over ? 0 : b->cap - b->len;
    int n = vsnprintf(b->p + b->len, room, fmt, ap);
    va_end(ap);
    if (b->over || n < 0 || (size_t)n >= room) {
        b->over = true;
        return;
    }
    b->len += (size_t)n;
}

/* esc writes `s` XML-escaped (a user URI comes from the directory). */
static void put_esc(struct sbuf *b, const char *s)
{
    for (; *s != '\0'; s++) {
        switch (*s) {
        case '<':
            put(b, "&lt;");
            break;
        case '>':
            put(b, "&gt;");
            break;
        case '&':
            put(b, "&amp;");
            break;
        case '"':
            put(b, "&quot;");
            break;
        default:
            put(b, "%c", *s);
        }
    }
}

/* der_to_raw turns a DER ECDSA-Sig-Value into the r||s XML-DSig wants (RFC 4050 §3.3, RFC 6931
 * §2.3.6); an RSA signature is copied. */
static int sig_to_xml(enum hsm_key_type type, uint8_t *out, size_t *out_len, const uint8_t *sig,
                      size_t sig_len)
{
    if (type != HSM_KEY_P256 && type != HSM_KEY_P384) {
        memcpy(out, sig, sig_len);
        *out_len = sig_len;
        return 0;
    }
    size_t n = type == HSM_KEY_P256 ? 32 : 48;
    ECDSA_SIG *s = ECDSA_SIG_from_bytes(sig, sig_len);
    if (s == NULL) {
        return -EIO;
    }
    const BIGNUM *r = NULL;
    const BIGNUM *ss = NULL;
    ECDSA_SIG_get0(s, &r, &ss);
    int ok = BN_bn2bin_padded(out, n, r) && BN_bn2bin_padded(out + n, n, ss);
    ECDSA_SIG_free(s);
    *out_len = 2 * n;
    return ok ? 0 : -EIO;
}

/* c14n_of parses `xml` and returns the exclusive c14n of its root (what a verifier computes). */
static uint8_t *c14n_of(const char *xml, size_t len, size_t *out_len)
{
    int rc = 0;
    xmlDocPtr doc = sx_parse((const uint8_t *)xml, len, len, &rc);
    if (doc == NULL) {
        return NULL;
    }
    uint8_t *c = sx_c14n_bytes(doc, sx_root(doc), NULL, out_len);
    sx_free(doc);
    return c;
}

/* assertion_body writes the unsigned SAML 1.1 assertion ([SAML 1.1 core] §2.3.2): subject = the
 * user's URI, audience = AppliesTo, validity [created, expires). */
static void assertion_body(struct sbuf *b, const struct signer_wt_issuer *iss, const char *id,
                           const char *uri, const char *audience, bool auth_cert,
                           const char *created, const char *expires)
{
    put(b,
        "<saml:Assertion xmlns:saml=\"" SX_NS_SAML "\" AssertionID=\"%s\" IssueInstant=\"%s\" "
        "Issuer=\"%s\" MajorVersion=\"1\" MinorVersion=\"1\">"
        "<saml:Conditions NotBefore=\"%s\" NotOnOrAfter=\"%s\"><saml:AudienceRestrictionCondition>"
        "<saml:Audience>%s</saml:Audience></saml:AudienceRestrictionCondition></saml:Conditions>"
        "<saml:AuthenticationStatement AuthenticationInstant=\"%s\" AuthenticationMethod=\"%s\">"
        "<saml:Subject><saml:NameIdentifier>",
        id, created, iss->issuer_url, created, expires, audience, created,
        auth_cert ? "urn:ietf:rfc:2246" : "urn:oasis:names:tc:SAML:1.0:am:password");
    put_esc(b, uri);
    put(b, "</saml:NameIdentifier></saml:Subject></saml:AuthenticationStatement>");
}

/* sign_assertion appends the enveloped ds:Signature (XML-DSig §6.6.4 enveloped-signature, then
 * exclusive c14n; SHA-256 digest) to the assertion in `a` (whose closing tag is not written yet),
 * signed by the issuing CA's key with its certificate in KeyInfo. */
static int sign_assertion(struct signer_wt_issuer *iss, struct sbuf *a, const char *id)
{
    size_t start = a->len;
    put(a, "</saml:Assertion>");
    if (a->over) {
        return -E2BIG;
    }
    size_t clen = 0;
    uint8_t *c = c14n_of(a->p, a->len, &clen);
    a->len = start;
    a->p[start] = '\0';
    if (c == NULL) {
        return -EIO;
    }
    uint8_t dig[EVP_MAX_MD_SIZE];
    unsigned dlen = 0;
    int ok = EVP_Digest(c, clen, dig, &dlen, EVP_sha256(), NULL);
    sx_bytes_free(c);
    if (!ok) {
        return -EIO;
    }
    char dig64[BASE_B64_LEN(EVP_MAX_MD_SIZE) + 1];
    (void)base_b64_encode(dig64, sizeof(dig64), dig, dlen);
    char si[2048];
    struct sbuf s = {.p = si, .cap = sizeof(si)};
    put(&s,
        "<ds:SignedInfo xmlns:ds=\"" SX_NS_DS
        "\"><ds:CanonicalizationMethod Algorithm=\"" SX_EXC_C14N
        "\"></ds:CanonicalizationMethod><ds:SignatureMethod Algorithm=\"%s\"></ds:SignatureMethod>"
        "<ds:Reference URI=\"#%s\"><ds:Transforms><ds:Transform Algorithm=\"" SX_NS_DS
        "enveloped-signature\"></ds:Transform><ds:Transform Algorithm=\"" SX_EXC_C14N
        "\"></ds:Transform></ds:Transforms><ds:DigestMethod Algorithm=\"http://www.w3.org/2001/04/"
        "xmlenc#sha256\"></ds:DigestMethod><ds:DigestValue>%s</ds:DigestValue></ds:Reference>"
        "</ds:SignedInfo>",
        wt_sig_method(iss->type), id, dig64);
    ASSERT(!s.over);
    size_t silen = 0;
    uint8_t *sic = c14n_of(si, s.len, &silen);
    if (sic == NULL) {
        return -EIO;
    }
    uint8_t sig[HSM_SIG_MAX];
    struct hsm_sign_item item = {.tbs = sic, .tbs_len = silen, .sig = sig};
    int src = hsm_key_sign_batch(iss->key, &item, 1);
    sx_bytes_free(sic);
    if (src != 0 || item.rc != 0) {
        return src == -EAGAIN || item.rc == -EAGAIN ? -EAGAIN : -EIO;
    }
    uint8_t raw[HSM_SIG_MAX];
    size_t raw_len = 0;
    if (sig_to_xml(iss->type, raw, &raw_len, item.sig, item.sig_len) != 0) {
        return -EIO;
    }
    char sig64[BASE_B64_LEN(HSM_SIG_MAX) + 1];
    (void)base_b64_encode(sig64, sizeof(sig64), raw, raw_len);
    /* The SignedInfo inside the Signature inherits xmlns:ds from it: its exclusive c14n is the
     * standalone one signed above. */
    const char *inner = strchr(si, '>') + 1;
    put(a,
        "<ds:Signature xmlns:ds=\"" SX_NS_DS "\"><ds:SignedInfo>%s<ds:SignatureValue>%s"
        "</ds:SignatureValue><ds:KeyInfo><ds:X509Data><ds:X509Certificate>%s"
        "</ds:X509Certificate></ds:X509Data></ds:KeyInfo></ds:Signature></saml:Assertion>",
        inner, sig64, iss->cert_b64);
    return a->over ? -E2BIG : 0;
}

static const char *soap_ns(bool soap12)
{
    return soap12 ? SX_NS_SOAP12 : SX_NS_SOAP11;
}

int signer_wt_issue(struct signer_wt_issuer *iss, char *out, size_t cap, size_t *out_len,
                    const struct signer_wt_request *rq, const char *uri, bool auth_cert,
                    int64_t now_s, uint32_t lifetime_s)
{
    ASSERT(iss != NULL);
    ASSERT(rq->key_len >= SIGNER_WT_KEY_MIN && rq->key_len <= SIGNER_WT_KEY_MAX);
    int64_t exp_s = now_s + lifetime_s;
    if (rq->expires_s > now_s && rq->expires_s < exp_s) {
        exp_s = rq->expires_s; /* WS-Trust 1.3 §4.1: a requested Lifetime, never a longer one */
    }
    char created[32];
    char expires[32];
    sx_time_format(created, now_s);
    sx_time_format(expires, exp_s);
    uint8_t server[SIGNER_WT_KEY_DEFAULT];
    uint8_t key[SIGNER_WT_KEY_MAX];
    RAND_bytes(server, sizeof(server));
    signer_p_sha1(key, rq->key_len, rq->entropy, rq->entropy_len, server, sizeof(server));
    char id[SIGNER_WT_ID_MAX + 1];
    int rc = seal(iss, id, sizeof(id), key, rq->key_len);
    OPENSSL_cleanse(key, sizeof(key));
    if (rc != 0) {
        return rc;
    }
    struct sbuf b = {.p = out, .cap = cap};
    const char *tns = rq->trust13 ? NS_TRUST13 : NS_TRUST05;
    put(&b,
        "<s:Envelope xmlns:s=\"%s\"><s:Body>%s<RequestSecurityTokenResponse xmlns=\"%s\" "
        "xmlns:wsu=\"" SX_NS_WSU "\"",
        soap_ns(rq->soap12),
        rq->trust13 ? "<RequestSecurityTokenResponseCollection xmlns=\"" NS_TRUST13 "\">" : "",
        tns);
    if (rq->context[0] != '\0') {
        put(&b, " Context=\"%s\"", rq->context); /* echoed ([MS-OCAUTHWS] §3.2.4.1) */
    }
    put(&b, "><TokenType>" TOKEN_SAML11 "</TokenType><RequestedSecurityToken>");
    size_t a_start = b.len;
    assertion_body(&b, iss, id, uri, rq->applies_to, auth_cert, created, expires);
    if (b.over) {
        return -E2BIG;
    }
    struct sbuf a = {.p = out + a_start, .cap = cap - a_start, .len = b.len - a_start};
    rc = sign_assertion(iss, &a, id);
    if (rc != 0) {
        return rc;
    }
    b.len = a_start + a.len;
    char server64[BASE_B64_LEN(sizeof(server)) + 1];
    (void)base_b64_encode(server64, sizeof(server64), server, sizeof(server));
    /* Lifetime's children are copied by the client into its wsu:Timestamp (PROTOCOL-NOTES §2.5):
     * wsu-prefixed, no declaration of their own, no whitespace. */
    put(&b,
        "</RequestedSecurityToken><Lifetime><wsu:Created>%s</wsu:Created><wsu:Expires>%s"
        "</wsu:Expires></Lifetime><wsp:AppliesTo xmlns:wsp=\"http://schemas.xmlsoap.org/ws/2004/"
        "09/policy\"><wsa:EndpointReference xmlns:wsa=\"http://www.w3.org/2005/08/addressing\">"
        "<wsa:Address>%s</wsa:Address></wsa:EndpointReference></wsp:AppliesTo>"
        "<RequestedProofToken><ComputedKey>%s/CK/PSHA1</ComputedKey></RequestedProofToken>"
        "<Entropy><BinarySecret Type=\"%s/Nonce\">%s</BinarySecret></Entropy>"
        "<KeySize>%u</KeySize></RequestSecurityTokenResponse>%s</s:Body></s:Envelope>",
        created, expires, rq->applies_to, tns, tns, server64, rq->key_len * 8,
        rq->trust13 ? "</RequestSecurityTokenResponseCollection>" : "");
    if (b.over) {
        return -E2BIG;
    }
    *out_len = b.len;
    return 0;
}

int signer_wt_fault(char *out, size_t cap, size_t *out_len, bool soap12, unsigned status,
                    unsigned error_id, const char *reason)
{
    struct sbuf b = {.p = out, .cap = cap};
    const char *code = status == 401 || status == 403 ? "wsse:FailedAuthentication"
                       : status >= 500                ? (soap12 ? "s:Receiver" : "s:Server")
                                                      : (soap12 ? "s:Sender" : "s:Client");
    put(&b, "<s:Envelope xmlns:s=\"%s\" xmlns:wsse=\"" SX_NS_WSSE "\"><s:Body><s:Fault>",
        soap_ns(soap12));
    if (soap12) {
        put(&b, "<s:Code><s:Value>%s</s:Value></s:Code><s:Reason><s:Text xml:lang=\"en\">",
            status >= 500 ? "s:Receiver" : "s:Sender");
        put_esc(&b, reason);
        put(&b, "</s:Text></s:Reason><s:Detail>");
    } else {
        put(&b, "<faultcode>%s</faultcode><faultstring xml:lang=\"en\">", code);
        put_esc(&b, reason);
        put(&b, "</faultstring><detail>");
    }
    /* [MS-OCAUTHWS] §2.2.4.1 af:OCSDiagnosticsFaultType */
    put(&b,
        "<af:OCSDiagnosticsFault xmlns:af=\"http://schemas.microsoft.com/OCS/AuthWebServices/\">"
        "<af:Ms-Diagnostics-Fault><af:ErrorId>%u</af:ErrorId><af:Reason>",
        error_id);
    put_esc(&b, reason);
    put(&b,
        "</af:Reason></af:Ms-Diagnostics-Fault></af:OCSDiagnosticsFault>%s</s:Fault></s:Body>"
        "</s:Envelope>",
        soap12 ? "</s:Detail>" : "</detail>");
    if (b.over) {
        return -E2BIG;
    }
    *out_len = b.len;
    return 0;
}

bool signer_wt_audience_ours(const char *url, const char *const *names, size_t n)
{
    const char *p = strncasecmp(url, "https://", 8) == 0  ? url + 8
                    : strncasecmp(url, "http://", 7) == 0 ? url + 7
                                                          : NULL;
    if (p == NULL) {
        return false;
    }
    const char *slash = strchr(p, '/');
    if (slash == NULL) {
        return false;
    }
    const char *colon = memchr(p, ':', (size_t)(slash - p));
    size_t host_len = (size_t)((colon != NULL ? colon : slash) - p);
    bool host = false;
    for (size_t i = 0; i < n && !host; i++) {
        host = strlen(names[i]) == host_len && strncasecmp(names[i], p, host_len) == 0;
    }
    return host &&
           (strcasecmp(slash, "/CertProv/CertProvisioningService.svc") == 0 ||
            strcasecmp(slash, "/CertProv/CertProvisioningService.svc/WebTicket_Proof") == 0);
}
