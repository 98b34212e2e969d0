/* The wsse:Security header of a GetAndPublishCert that presents a Web ticket ([MS-OCAUTHWS]
 * §3.1, the CertProvisioningServiceWebTicketProof_SHA1 port; PROTOCOL-NOTES §2.5): a
 * wsu:Timestamp, the saml:Assertion the Web Ticket Service issued, and an XML-DSig Signature
 * (exclusive c14n, HMAC-SHA1 keyed with the proof key) over the Timestamp whose KeyInfo names the
 * assertion by its AssertionID (WSS SAML Token Profile 1.1 §3.4.2, SAMLAssertionID).
 *
 * Signature wrapping: every element is found by its place (Security's children, the assertion's
 * own Signature child), never by an ID lookup; the references must name exactly those elements. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <libxml/tree.h>
#include <openssl/bn.h>
#include <openssl/digest.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <openssl/mem.h>
#include <openssl/sha.h>

#include "signer/internal.h"

#define HMAC_SHA1 "http://www.w3.org/2000/09/xmldsig#hmac-sha1"
#define SHA1_URI "http://www.w3.org/2000/09/xmldsig#sha1"
#define SHA256_URI "http://www.w3.org/2001/04/xmlenc#sha256"
#define ENVELOPED "http://www.w3.org/2000/09/xmldsig#enveloped-signature"

#define REFUSE(code, ...)                                                                          \
    do {                                                                                           \
        (void)snprintf(reason, SIGNER_REASON_MAX, __VA_ARGS__);                                    \
        return (code);                                                                             \
    } while (0)

struct sig_parts {
    xmlNodePtr signed_info;
    char method[128];
    char uri[SIGNER_WT_ID_MAX + 2];
    char digest_method[128];
    uint8_t digest[EVP_MAX_MD_SIZE];
    size_t digest_len;
    uint8_t value[HSM_SIG_MAX];
    size_t value_len;
    char transforms[2][128];
    size_t num_transforms;
};

/* sig_read reads one ds:Signature: its SignedInfo (exclusive c14n), SignatureMethod, its one
 * Reference (URI, up to two Transforms, DigestMethod, DigestValue) and SignatureValue. */
static int sig_read(struct sig_parts *p, xmlNodePtr sig, char *reason, const char *what)
{
    char v[BASE_B64_LEN(HSM_SIG_MAX) + 64];
    *p = (struct sig_parts){0};
    p->signed_info = sx_child(sig, SX_NS_DS, "SignedInfo");
    xmlNodePtr si = p->signed_info;
    xmlNodePtr ref = sx_child(si, SX_NS_DS, "Reference");
    if (si == NULL || sx_count(si, SX_NS_DS, "Reference") != 1 ||
        sx_attr(sx_child(si, SX_NS_DS, "CanonicalizationMethod"), NULL, "Algorithm", v,
                sizeof(v)) != 0 ||
        strcmp(v, SX_EXC_C14N) != 0 ||
        sx_attr(sx_child(si, SX_NS_DS, "SignatureMethod"), NULL, "Algorithm", p->method,
                sizeof(p->method)) != 0 ||
        sx_attr(ref, NULL, "URI", p->uri, sizeof(p->uri)) != 0 ||
        sx_attr(sx_child(ref, SX_NS_DS, "DigestMethod"), NULL, "Algorithm", p->digest_method,
                sizeof(p->digest_method)) != 0) {
        REFUSE(-EBADMSG, "%s: SignedInfo needs exclusive c14n, a SignatureMethod and one Reference",
               what);
    }
    xmlNodePtr tr = sx_child(ref, SX_NS_DS, "Transforms");
    for (xmlNodePtr t = tr != NULL ? tr->children : NULL; t != NULL; t = t->next) {
        if (!sx_is(t, SX_NS_DS, "Transform")) {
            continue;
        }
        if (p->num_transforms == 2 ||
            sx_attr(t, NULL, "Algorithm", p->transforms[p->num_transforms],
                    sizeof(p->transforms[0])) != 0) {
            REFUSE(-EBADMSG, "%s: at most two Transforms, each with an Algorithm", what);
        }
        p->num_transforms++;
    }
    if (sx_text(sx_child(ref, SX_NS_DS, "DigestValue"), v, sizeof(v)) != 0 ||
        signer_base64_decode(p->digest, sizeof(p->digest), &p->digest_len, v, strlen(v),
                             SIGNER_BASE64_SKIP_SPACE) != 0 ||
        sx_text(sx_child(sig, SX_NS_DS, "SignatureValue"), v, sizeof(v)) != 0 ||
        signer_base64_decode(p->value, sizeof(p->value), &p->value_len, v, strlen(v),
                             SIGNER_BASE64_SKIP_SPACE) != 0) {
        REFUSE(-EBADMSG, "%s: DigestValue and SignatureValue must be base64", what);
    }
    return 0;
}

/* digest_ok: the Reference's digest of `target` (less `exclude`) matches. */
static bool digest_ok(xmlDocPtr doc, const struct sig_parts *p, xmlNodePtr target,
                      xmlNodePtr exclude, const EVP_MD *md)
{
    uint8_t d[EVP_MAX_MD_SIZE];
    unsigned n = 0;
    return sx_c14n_digest(doc, target, exclude, md, d, &n) == 0 && n == p->digest_len &&
           CRYPTO_memcmp(d, p->digest, n) == 0;
}

/* pk_verify verifies the XML-DSig signature value (r||s for ECDSA) over msg with the issuer's key.
 */
static bool pk_verify(enum hsm_key_type type, EVP_PKEY *pkey, const uint8_t *msg, size_t len,
                      const uint8_t *sig, size_t sig_len)
{
    uint8_t der[HSM_SIG_MAX];
    const uint8_t *s = sig;
    size_t s_len = sig_len;
    uint8_t *owned = NULL;
    if (type == HSM_KEY_P256 || type == HSM_KEY_P384) {
        size_t n = type == HSM_KEY_P256 ? 32 : 48;
        if (sig_len != 2 * n) {
            return false;
        }
        ECDSA_SIG *es = ECDSA_SIG_new();
        BIGNUM *r = BN_bin2bn(sig, n, NULL);
        BIGNUM *ss = BN_bin2bn(sig + n, n, NULL);
        if (es == NULL || r == NULL || ss == NULL || !ECDSA_SIG_set0(es, r, ss)) {
            BN_free(r);
            BN_free(ss);
            ECDSA_SIG_free(es);
            return false;
        }
        int ok = ECDSA_SIG_to_bytes(&owned, &s_len, es);
        ECDSA_SIG_free(es);
        if (!ok || s_len > sizeof(der)) {
            OPENSSL_free(owned);
            return false;
        }
        memcpy(der, owned, s_len);
        OPENSSL_free(owned);
        s = der;
    }
    EVP_MD_CTX ctx;
    EVP_MD_CTX_init(&ctx);
    bool ok = EVP_DigestVerifyInit(&ctx, NULL, wt_sig_md(type), NULL, pkey) &&
              EVP_DigestVerify(&ctx, s, s_len, msg, len);
    EVP_MD_CTX_cleanup(&ctx);
    return ok;
}

/* fleet_signer: the certificate in KeyInfo (der) is not this appliance's signer's. It is trusted
 * when it is another appliance's dedicated Web ticket signer of the same issuing CA (a fleet that
 * shares its CA, README "Web tickets"): signed by the issuing CA's key, not a CA, subject CN
 * WT_SIGNER_CN, valid at now_s, a P-256 key (what ca_delegate_issue makes). Each certificate is
 * checked once and then remembered (WT_FLEET_SIGNERS). Returns its public key (owned: one
 * reference) or NULL. */
static EVP_PKEY *fleet_signer(const struct signer_wt_issuer *iss, const uint8_t *der,
                              size_t der_len, int64_t now_s)
{
    struct signer_wt_issuer *mut = (struct signer_wt_issuer *)(uintptr_t)iss; /* the cache only */
    uint8_t h[SHA256_DIGEST_LENGTH];
    SHA256(der, der_len, h);
    EVP_PKEY *found = NULL;
    base_mutex_lock(&mut->fleet_mu);
    for (size_t i = 0; i < WT_FLEET_SIGNERS && found == NULL; i++) {
        if (mut->fleet[i].pkey != NULL && memcmp(mut->fleet[i].sha256, h, sizeof(h)) == 0 &&
            now_s < mut->fleet[i].not_after_s) {
            found = mut->fleet[i].pkey;
            EVP_PKEY_up_ref(found);
        }
    }
    base_mutex_unlock(&mut->fleet_mu);
    if (found != NULL) {
        return found;
    }
    struct signer_cert_info info;
    const uint8_t *p = der;
    X509 *x =
        signer_cert_info_der(&info, der, der_len) == 0 ? d2i_X509(NULL, &p, (long)der_len) : NULL;
    EVP_PKEY *pk = x != NULL ? X509_get_pubkey(x) : NULL;
    int64_t na = x != NULL ? info.not_after_s : 0;
    bool ok = pk != NULL && p == der + der_len && X509_check_ca(x) == 0 &&
              strcmp(info.subject, "CN=" WT_SIGNER_CN) == 0 && strcmp(info.key, "EC P-256") == 0 &&
              info.not_before_s <= now_s && now_s < na;
    bool by_ca = ok && X509_verify(x, mut->ca_pkey) == 1;
    if (ok && !by_ca) {              /* another CA of the fleet (the directory's registry) */
        EVP_PKEY *cas[WT_FLEET_CAS]; /* references taken under the lock, verified outside it */
        size_t n = 0;
        base_mutex_lock(&mut->fleet_mu);
        for (; n < mut->num_fleet_cas; n++) {
            cas[n] = mut->fleet_cas[n].pkey;
            EVP_PKEY_up_ref(cas[n]);
        }
        base_mutex_unlock(&mut->fleet_mu);
        for (size_t i = 0; i < n; i++) {
            by_ca = by_ca || X509_verify(x, cas[i]) == 1;
            EVP_PKEY_free(cas[i]);
        }
    }
    ok = ok && by_ca;
    X509_free(x);
    ERR_clear_error();
    if (!ok) {
        EVP_PKEY_free(pk);
        return NULL;
    }
    base_mutex_lock(&mut->fleet_mu);
    unsigned i = mut->fleet_next++ % WT_FLEET_SIGNERS;
    EVP_PKEY_free(mut->fleet[i].pkey);
    memcpy(mut->fleet[i].sha256, h, sizeof(h));
    mut->fleet[i].not_after_s = na;
    mut->fleet[i].pkey = pk;
    EVP_PKEY_up_ref(pk); /* one for the cache, one for the caller */
    base_mutex_unlock(&mut->fleet_mu);
    return pk;
}

/* fleet_ca_key: KeyInfo (der) is one of the fleet's issuing CAs (an appliance that signs
 * tickets with its CA key): its public key (owned: one reference) and *type, or NULL. */
static EVP_PKEY *fleet_ca_key(const struct signer_wt_issuer *iss, const uint8_t *der,
                              size_t der_len, enum hsm_key_type *type)
{
    struct signer_wt_issuer *mut = (struct signer_wt_issuer *)(uintptr_t)iss; /* the lock only */
    uint8_t h[SHA256_DIGEST_LENGTH];
    SHA256(der, der_len, h);
    EVP_PKEY *found = NULL;
    base_mutex_lock(&mut->fleet_mu);
    for (size_t i = 0; i < mut->num_fleet_cas && found == NULL; i++) {
        if (memcmp(mut->fleet_cas[i].sha256, h, sizeof(h)) == 0) {
            found = mut->fleet_cas[i].pkey;
            EVP_PKEY_up_ref(found);
        }
    }
    base_mutex_unlock(&mut->fleet_mu);
    if (found == NULL) {
        return NULL;
    }
    int bits = EVP_PKEY_bits(found);
    *type = EVP_PKEY_id(found) == EVP_PKEY_RSA ? (bits > 2048 ? HSM_KEY_RSA3072 : HSM_KEY_RSA2048)
            : EVP_PKEY_id(found) == EVP_PKEY_EC && bits == 384 ? HSM_KEY_P384
            : EVP_PKEY_id(found) == EVP_PKEY_EC && bits == 256 ? HSM_KEY_P256
                                                               : HSM_KEY_NONE;
    if (*type == HSM_KEY_NONE) {
        EVP_PKEY_free(found);
        return NULL;
    }
    return found;
}

void signer_wt_issuer_fleet_cas(struct signer_wt_issuer *iss, const uint8_t *const *ders,
                                const size_t *lens, size_t num)
{
    ASSERT(iss != NULL);
    EVP_PKEY *keys[WT_FLEET_CAS];
    uint8_t sums[WT_FLEET_CAS][SHA256_DIGEST_LENGTH];
    size_t n = 0;
    for (size_t i = 0; i < num && n < WT_FLEET_CAS; i++) {
        const uint8_t *p = ders[i];
        X509 *x = d2i_X509(NULL, &p, (long)lens[i]);
        EVP_PKEY *pk = x != NULL ? X509_get_pubkey(x) : NULL;
        X509_free(x);
        if (pk != NULL) {
            SHA256(ders[i], lens[i], sums[n]);
            keys[n++] = pk;
        }
    }
    ERR_clear_error();
    base_mutex_lock(&iss->fleet_mu);
    for (size_t i = 0; i < iss->num_fleet_cas; i++) {
        EVP_PKEY_free(iss->fleet_cas[i].pkey);
    }
    for (size_t i = 0; i < n; i++) {
        memcpy(iss->fleet_cas[i].sha256, sums[i], SHA256_DIGEST_LENGTH);
        iss->fleet_cas[i].pkey = keys[i];
    }
    iss->num_fleet_cas = n;
    for (size_t i = 0; i < WT_FLEET_SIGNERS; i++) { /* checked against the old set: again */
        EVP_PKEY_free(iss->fleet[i].pkey);
        iss->fleet[i].pkey = NULL;
    }
    base_mutex_unlock(&iss->fleet_mu);
}

/* assertion_sig verifies the assertion's enveloped signature: SignedInfo by the key of the
 * certificate in KeyInfo, which is this appliance's signer's or another appliance's of the same
 * issuing CA (fleet_signer); the Reference to this very assertion (#AssertionID) with the
 * enveloped-signature and exclusive c14n transforms and a SHA-256 digest. A fleet with an issuing
 * CA per appliance needs the directory's registry of the fleet's CAs (issue 16): not yet. */
static int assertion_sig(const struct signer_wt_issuer *iss, xmlDocPtr doc, xmlNodePtr as,
                         const char *id, int64_t now_s, char *reason)
{
    xmlNodePtr sig = sx_child(as, SX_NS_DS, "Signature");
    if (sig == NULL || sx_count(as, SX_NS_DS, "Signature") != 1) {
        REFUSE(-EPERM, "The ticket's assertion is not signed");
    }
    struct sig_parts p;
    int rc = sig_read(&p, sig, reason, "The assertion's signature");
    if (rc != 0) {
        return rc;
    }
    char want[SIGNER_WT_ID_MAX + 2];
    (void)snprintf(want, sizeof(want), "#%s", id);
    if (strcmp(p.uri, want) != 0 || strcmp(p.digest_method, SHA256_URI) != 0 ||
        p.num_transforms != 2 || strcmp(p.transforms[0], ENVELOPED) != 0 ||
        strcmp(p.transforms[1], SX_EXC_C14N) != 0) {
        REFUSE(-EPERM, "The assertion's signature does not follow this appliance's profile");
    }
    enum { CERT_B64_MAX = BASE_B64_LEN(SIGNER_CERT_DER_MAX) + 256 };
    uint8_t der[SIGNER_CERT_DER_MAX];
    size_t der_len = 0;
    xmlNodePtr x509 = sx_child(sx_child(sx_child(sig, SX_NS_DS, "KeyInfo"), SX_NS_DS, "X509Data"),
                               SX_NS_DS, "X509Certificate");
    char *cbuf = OPENSSL_malloc(CERT_B64_MAX);
    bool ours = cbuf != NULL && sx_text(x509, cbuf, CERT_B64_MAX) == 0 &&
                signer_base64_decode(der, sizeof(der), &der_len, cbuf, strlen(cbuf),
                                     SIGNER_BASE64_SKIP_SPACE) == 0 &&
                der_len == iss->cert_der_len && memcmp(der, iss->cert_der, der_len) == 0;
    bool decoded = cbuf != NULL && der_len > 0;
    OPENSSL_free(cbuf);
    enum hsm_key_type type = iss->type;
    EVP_PKEY *pkey = ours ? iss->pkey : NULL;
    EVP_PKEY *other = !ours && decoded ? fleet_signer(iss, der, der_len, now_s) : NULL;
    if (other != NULL) {
        pkey = other;
        type = HSM_KEY_P256;
    } else if (!ours && decoded) {
        other = fleet_ca_key(iss, der, der_len, &type);
        pkey = other;
    }
    if (pkey == NULL) {
        REFUSE(-EPERM, "The ticket was not signed by a ticket-signing certificate this appliance "
                       "trusts");
    }
    if (strcmp(p.method, wt_sig_method(type)) != 0) {
        EVP_PKEY_free(other);
        REFUSE(-EPERM, "The assertion's signature does not follow this appliance's profile");
    }
    if (!digest_ok(doc, &p, as, sig, EVP_sha256())) {
        EVP_PKEY_free(other);
        REFUSE(-EPERM, "The ticket's assertion was altered (its digest does not match)");
    }
    size_t len = 0;
    uint8_t *c = sx_c14n_bytes(doc, p.signed_info, NULL, &len);
    bool ok = c != NULL && pk_verify(type, pkey, c, len, p.value, p.value_len);
    sx_bytes_free(c);
    EVP_PKEY_free(other);
    if (!ok) {
        REFUSE(-EPERM, "The ticket's signature does not verify");
    }
    return 0;
}

/* assertion_claims reads and checks what the assertion says: validity, audience, subject. */
static int assertion_claims(struct signer_wt_proof *out, xmlNodePtr as, int64_t now,
                            const char *const *names, size_t num_names, char *reason)
{
    char v[SIGNER_WT_URL_MAX + 1];
    int64_t nb = 0;
    int64_t na = 0;
    xmlNodePtr cond = sx_child(as, SX_NS_SAML, "Conditions");
    if (sx_attr(cond, NULL, "NotBefore", v, sizeof(v)) != 0 || sx_time_parse(&nb, v) != 0 ||
        sx_attr(cond, NULL, "NotOnOrAfter", v, sizeof(v)) != 0 || sx_time_parse(&na, v) != 0) {
        REFUSE(-EPERM, "The ticket has no validity (Conditions NotBefore/NotOnOrAfter)");
    }
    if (now < nb - SIGNER_WT_SKEW_S || now >= na) {
        REFUSE(-EPERM, "The ticket has expired or is not valid yet: get a new Web ticket");
    }
    xmlNodePtr arc = sx_child(cond, SX_NS_SAML, "AudienceRestrictionCondition");
    if (sx_count(cond, SX_NS_SAML, "AudienceRestrictionCondition") != 1 ||
        sx_count(arc, SX_NS_SAML, "Audience") != 1 ||
        sx_text(sx_child(arc, SX_NS_SAML, "Audience"), v, sizeof(v)) != 0 ||
        !signer_wt_audience_ours(v, names, num_names)) {
        REFUSE(-EPERM, "The ticket was issued for another audience, not this CertProv service");
    }
    xmlNodePtr st = sx_child(as, SX_NS_SAML, "AuthenticationStatement");
    xmlNodePtr nid = sx_child(sx_child(st, SX_NS_SAML, "Subject"), SX_NS_SAML, "NameIdentifier");
    if (sx_count(as, SX_NS_SAML, "AuthenticationStatement") != 1 ||
        sx_text(nid, out->uri, sizeof(out->uri)) != 0 || strncmp(out->uri, "sip:", 4) != 0) {
        REFUSE(-EPERM, "The ticket names no user (AuthenticationStatement/Subject/NameIdentifier)");
    }
    return 0;
}

/* proof checks the client's signature over the Timestamp: HMAC-SHA1 with the proof key recovered
 * from the AssertionID its KeyIdentifier names, SHA-1 digest of the Timestamp (PROTOCOL-NOTES
 * §2.5; the CertProvisioningServiceWebTicketProof_SHA1 policy). */
static int proof(const struct signer_wt_issuer *iss, xmlDocPtr doc, xmlNodePtr sec, xmlNodePtr ts,
                 const char *id, char *reason)
{
    xmlNodePtr sig = sx_child(sec, SX_NS_DS, "Signature");
    if (sig == NULL || sx_count(sec, SX_NS_DS, "Signature") != 1) {
        REFUSE(-EPERM, "No proof signature: the Security header needs one ds:Signature over the "
                       "Timestamp");
    }
    struct sig_parts p;
    int rc = sig_read(&p, sig, reason, "The proof signature");
    if (rc != 0) {
        return rc;
    }
    char kid[SIGNER_WT_ID_MAX + 1];
    xmlNodePtr str =
        sx_child(sx_child(sig, SX_NS_DS, "KeyInfo"), SX_NS_WSSE, "SecurityTokenReference");
    if (sx_text(sx_child(str, SX_NS_WSSE, "KeyIdentifier"), kid, sizeof(kid)) != 0 ||
        strcmp(kid, id) != 0) {
        REFUSE(-EPERM, "The proof signature's KeyIdentifier names no assertion of this request");
    }
    char tsid[SIGNER_WT_ID_MAX + 1];
    char want[SIGNER_WT_ID_MAX + 2];
    if (sx_attr(ts, SX_NS_WSU, "Id", tsid, sizeof(tsid)) != 0) {
        REFUSE(-EPERM, "The Timestamp has no wsu:Id for the proof signature to name");
    }
    (void)snprintf(want, sizeof(want), "#%s", tsid);
    if (strcmp(p.uri, want) != 0 || strcmp(p.method, HMAC_SHA1) != 0 ||
        strcmp(p.digest_method, SHA1_URI) != 0 || p.num_transforms != 1 ||
        strcmp(p.transforms[0], SX_EXC_C14N) != 0) {
        REFUSE(-EPERM, "The proof signature must be HMAC-SHA1 over #Timestamp with exclusive c14n "
                       "and a SHA-1 digest");
    }
    if (!digest_ok(doc, &p, ts, NULL, EVP_sha1())) {
        REFUSE(-EPERM, "The Timestamp was altered (its digest does not match)");
    }
    uint8_t key[SIGNER_WT_KEY_MAX];
    size_t key_len = 0;
    if (wt_unseal(iss, key, sizeof(key), &key_len, id) != 0) {
        REFUSE(-EPERM, "The ticket's proof key cannot be recovered");
    }
    size_t len = 0;
    uint8_t *c = sx_c14n_bytes(doc, p.signed_info, NULL, &len);
    uint8_t mac[SHA_DIGEST_LENGTH];
    unsigned mac_len = 0;
    bool ok = c != NULL && HMAC(EVP_sha1(), key, key_len, c, len, mac, &mac_len) != NULL &&
              p.value_len == mac_len && CRYPTO_memcmp(mac, p.value, mac_len) == 0;
    sx_bytes_free(c);
    OPENSSL_cleanse(key, sizeof(key));
    if (!ok) {
        REFUSE(-EPERM, "The proof signature does not verify with the ticket's proof key");
    }
    return 0;
}

/* timestamp checks wsu:Created (within SIGNER_WT_SKEW_S of now) and wsu:Expires (not passed), and
 * derives the replay key of (AssertionID, Created, Expires). */
static int timestamp(struct signer_wt_proof *out, xmlNodePtr ts, int64_t now, char *reason)
{
    char created[64];
    char expires[64] = "";
    int64_t c = 0;
    int64_t e = 0;
    if (sx_text(sx_child(ts, SX_NS_WSU, "Created"), created, sizeof(created)) != 0 ||
        sx_time_parse(&c, created) != 0) {
        REFUSE(-EPERM, "The Timestamp needs a wsu:Created in UTC");
    }
    xmlNodePtr ex = sx_child(ts, SX_NS_WSU, "Expires");
    if (ex != NULL &&
        (sx_text(ex, expires, sizeof(expires)) != 0 || sx_time_parse(&e, expires) != 0)) {
        REFUSE(-EPERM, "The Timestamp's wsu:Expires is not a UTC time");
    }
    if (c > now + SIGNER_WT_SKEW_S || c < now - SIGNER_WT_SKEW_S) {
        REFUSE(-EPERM, "The Timestamp is not fresh (Created must be within 5 minutes of now)");
    }
    if (ex != NULL && e <= now) {
        REFUSE(-EPERM, "The Timestamp has expired");
    }
    uint8_t d[SHA256_DIGEST_LENGTH];
    SHA256_CTX h;
    SHA256_Init(&h);
    SHA256_Update(&h, out->assertion_id, strlen(out->assertion_id) + 1);
    SHA256_Update(&h, created, strlen(created) + 1);
    SHA256_Update(&h, expires, strlen(expires) + 1);
    SHA256_Final(d, &h);
    memcpy(out->replay_key, d, sizeof(out->replay_key));
    out->replay_until_s = c + SIGNER_WT_SKEW_S + 1; /* after this the Created check refuses it */
    return 0;
}

int signer_wt_verify(struct signer_wt_issuer *iss, struct signer_wt_proof *out, char *reason,
                     const uint8_t *body, size_t len, size_t max, int64_t now_s,
                     const char *const *names, size_t num_names)
{
    ASSERT(iss != NULL);
    ASSERT(out != NULL);
    *out = (struct signer_wt_proof){0};
    reason[0] = '\0';
    int rc = 0;
    xmlDocPtr doc = sx_parse(body, len, max, &rc);
    if (doc == NULL) {
        (void)snprintf(reason, SIGNER_REASON_MAX, "Not well-formed XML, or it has a DOCTYPE");
        return rc == -E2BIG ? -E2BIG : -EBADMSG;
    }
    bool soap12 = false;
    xmlNodePtr sec = sx_child(sx_soap_part(doc, "Header", &soap12), SX_NS_WSSE, "Security");
    xmlNodePtr as = sx_child(sec, SX_NS_SAML, "Assertion");
    xmlNodePtr ts = sx_child(sec, SX_NS_WSU, "Timestamp");
    if (as == NULL) {
        rc = -ENOENT;
    } else if (sx_count(sec, SX_NS_SAML, "Assertion") != 1 || ts == NULL ||
               sx_count(sec, SX_NS_WSU, "Timestamp") != 1) {
        (void)snprintf(reason, SIGNER_REASON_MAX,
                       "The Security header needs one wsu:Timestamp and one saml:Assertion");
        rc = -EPERM;
    } else if (sx_attr(as, NULL, "AssertionID", out->assertion_id, sizeof(out->assertion_id)) !=
               0) {
        (void)snprintf(reason, SIGNER_REASON_MAX, "The assertion has no AssertionID");
        rc = -EPERM;
    } else {
        rc = assertion_sig(iss, doc, as, out->assertion_id, now_s, reason);
        rc = rc != 0 ? rc : assertion_claims(out, as, now_s, names, num_names, reason);
        rc = rc != 0 ? rc : proof(iss, doc, sec, ts, out->assertion_id, reason);
        rc = rc != 0 ? rc : timestamp(out, ts, now_s, reason);
    }
    sx_free(doc);
    if (rc != 0) {
        *out = (struct signer_wt_proof){0};
    }
    return rc;
}
