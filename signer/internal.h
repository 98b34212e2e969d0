/* signer/internal.h: shared between the files of signer/. Private to signer/.
 *
 * Certificate building (cert.c) and the CA (ca.c). A certificate is built in one fixed buffer of
 * SIGNER_CERT_DER_MAX bytes, in three steps so that a whole batch can be signed by one
 * hsm_key_sign_batch call without extra buffers:
 *   1. cert_tbs_build writes the TBSCertificate at der + CERT_TBS_OFF;
 *   2. cert_sign_item_init points an hsm_sign_item at it, with the signature going to the last
 *      HSM_SIG_MAX bytes of the buffer;
 *   3. cert_assemble wraps TBS, AlgorithmIdentifier and signature into the Certificate at der. */
#ifndef CERTPROV_SIGNER_INTERNAL_H
#define CERTPROV_SIGNER_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/base.h"
#include "signer/signer.h"

/* Where the TBS is built: room for the Certificate SEQUENCE header written in front of it. */
#define CERT_TBS_OFF 4
/* Where the signature lands, and the most TBS bytes that leave room for it (the AlgorithmIdentifier
 * and BIT STRING header, at most 24 bytes, go between TBS and signature during assembly). */
#define CERT_SIG_OFF (SIGNER_CERT_DER_MAX - HSM_SIG_MAX)
#define CERT_TBS_MAX (CERT_SIG_OFF - CERT_TBS_OFF - 32)
#define CERT_KEY_ID_LEN 20 /* SHA-1, RFC 5280 §4.2.1.2 method 1 */
#define CERT_NAME_DER_MAX 1024

enum cert_kind {
    CERT_KIND_ROOT = 1,      /* self-signed CA: CA:TRUE, keyCertSign+cRLSign, SKI */
    CERT_KIND_ISSUING = 2,   /* CA:TRUE pathlen 0, keyCertSign+cRLSign, SKI, AKI */
    CERT_KIND_CLIENT = 3,    /* README, The certificate: clientAuth, SAN URI */
    CERT_KIND_SERVER = 4,    /* TLS server: serverAuth, SAN DNS */
    CERT_KIND_OCSP = 5,      /* delegated OCSP signer: OCSPSigning, id-pkix-ocsp-nocheck (ocsp.c) */
    CERT_KIND_WEBTICKET = 6, /* Web ticket signer: digitalSignature, no EKU (webticket.c) */
};

/* cert_spec says what goes into one TBSCertificate. Every pointer is borrowed for the call. */
struct cert_spec {
    enum cert_kind kind;
    enum hsm_key_type sig_type; /* the issuer's key type: signature algorithm */
    const uint8_t *serial;      /* SIGNER_SERIAL_LEN bytes, top bit clear, not all zero */
    const uint8_t *issuer;      /* issuer Name, DER, copied as-is */
    size_t issuer_len;
    const char *subject_cn; /* subject commonName (UTF8String) */
    size_t subject_cn_len;
    const char *subject_o; /* subject organizationName, or NULL */
    size_t subject_o_len;
    int64_t not_before_s;
    int64_t not_after_s;
    const uint8_t *spki; /* SubjectPublicKeyInfo DER, copied as-is */
    size_t spki_len;
    const uint8_t *aki; /* authority key identifier, or NULL (root) */
    size_t aki_len;
    bool key_encipherment; /* KU keyEncipherment too (RSA end-entity keys) */
    const char *san;       /* SAN URI (client) or dNSName (server); IA5 */
    size_t san_len;
    const char *const *more_dns; /* server: further dNSNames after san (NUL-terminated), or NULL */
    size_t num_more_dns;
    const char *crl_url;  /* client: CRL Distribution Point URI, or NULL (RFC 5280 §4.2.1.13) */
    const char *ocsp_url; /* client: Authority Information Access OCSP URI, or NULL */
};

/* signer_ca is the loaded issuing CA. */
struct signer_ca {
    struct hsm_key *key;
    size_t issuer_len;
    uint8_t issuer[CERT_NAME_DER_MAX]; /* the issuing CA's subject Name, DER */
    int64_t not_after_s;               /* the issuing CA's notAfter: no leaf outlives it */
    size_t ski_len;
    uint8_t ski[64]; /* the issuing CA's subject key identifier: our leaves' AKI */
    size_t chain_pem_len;
    char chain_pem[SIGNER_CHAIN_PEM_MAX]; /* NUL-terminated */
    char crl_url[SIGNER_URL_MAX + 1];     /* "" = none: signer_ca_set_urls (crl.c) */
    char ocsp_url[SIGNER_URL_MAX + 1];
};

/* The DER pieces cert.c writes, for crl.c and ocsp.c (CBB is BoringSSL's struct cbb_st): each
 * returns 1 on success, 0 when the CBB refused. */
struct cbb_st;
int cert_add_oid(struct cbb_st *cbb, const uint8_t *oid, size_t len);
int cert_add_serial(struct cbb_st *cbb, const uint8_t serial[SIGNER_SERIAL_LEN]);
int cert_add_sigalg(struct cbb_st *cbb, enum hsm_key_type type);
int cert_add_time(struct cbb_st *cbb, int64_t t);
int cert_add_aki(struct cbb_st *exts, const uint8_t *aki, size_t aki_len);

/* cert_serial_random draws a fresh serial: CSPRNG bytes, top bit cleared (a positive INTEGER),
 * never all zero. */
void cert_serial_random(uint8_t out[SIGNER_SERIAL_LEN]);

/* cert_key_id computes the RFC 5280 §4.2.1.2 method 1 key identifier (SHA-1 of the
 * subjectPublicKey BIT STRING content) of a SubjectPublicKeyInfo. Returns 0 or -EBADMSG. */
int cert_key_id(uint8_t out[CERT_KEY_ID_LEN], const uint8_t *spki, size_t spki_len);

/* cert_name_build writes the Name (O, then CN; O omitted when NULL) as DER into `out`. Returns 0
 * with *out_len set, or -E2BIG. */
int cert_name_build(uint8_t *out, size_t cap, size_t *out_len, const char *cn, size_t cn_len,
                    const char *o, size_t o_len);

/* cert_tbs_build writes the TBSCertificate of `spec` at der + CERT_TBS_OFF. Returns 0 with
 * *out_tbs_len set, -E2BIG when it exceeds CERT_TBS_MAX, or -EBADMSG when spec->spki does not
 * parse. */
int cert_tbs_build(uint8_t der[SIGNER_CERT_DER_MAX], size_t *out_tbs_len,
                   const struct cert_spec *spec);

/* cert_sign_item_init points `item` at the TBS in `der` and its signature output at
 * der + CERT_SIG_OFF. */
void cert_sign_item_init(struct hsm_sign_item *item, uint8_t der[SIGNER_CERT_DER_MAX],
                         size_t tbs_len);

/* cert_assemble turns der (TBS at CERT_TBS_OFF, signature of sig_len bytes at CERT_SIG_OFF) into
 * the Certificate DER at der. Returns 0 with *out_len set, or -E2BIG. */
int cert_assemble(uint8_t der[SIGNER_CERT_DER_MAX], size_t *out_len, size_t tbs_len,
                  enum hsm_key_type sig_type, size_t sig_len);

/* cert_sign_one builds the TBS of `spec` in `der`, signs it with `signer` (one
 * hsm_key_sign_batch) and assembles the certificate. spec->sig_type must be the signer's type.
 * Returns 0 with *out_len set, or the errors of cert_tbs_build, hsm_key_sign_batch (-EIO,
 * -EAGAIN) and cert_assemble. */
int cert_sign_one(uint8_t der[SIGNER_CERT_DER_MAX], size_t *out_len, struct hsm_key *signer,
                  const struct cert_spec *spec);

/* ca_delegate_issue makes a delegated signer of the issuing CA (delegate.c): a P-256 key in
 * key_path (0600) and its certificate of `kind` (subject CN=cn, valid `days`, 1..3650, cut at the
 * CA's end) in crt_path, each written as PATH.new first and renamed, the key first. Returns 0
 * (*out_not_after_s set when not NULL), -EINVAL (days, a path too long, the CA expired), -EAGAIN
 * (the CA key is down), -EIO (signing failed) or a negative errno. */
int ca_delegate_issue(struct signer_ca *ca, enum cert_kind kind, const char *cn,
                      const char *key_path, const char *crt_path, uint32_t days, int64_t now_s,
                      int64_t *out_not_after_s);

/* cert_pem_encode writes the certificate as PEM ("-----BEGIN CERTIFICATE-----", 64-column base64)
 * into `out`, NUL-terminated. Returns 0 with *out_len (without the NUL) set, or -E2BIG. */
int cert_pem_encode(char *out, size_t cap, size_t *out_len, const uint8_t *der, size_t der_len);

/* ---- XML for Web tickets (xml.c, over libxml2; webticket.c and wsse.c) ----
 * libxml2's types stay behind these forward declarations. */
struct _xmlDoc;
struct _xmlNode;

#define SX_NS_SOAP11 "http://schemas.xmlsoap.org/soap/envelope/"
#define SX_NS_SOAP12 "http://www.w3.org/2003/05/soap-envelope"
#define SX_NS_WSSE                                                                                 \
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
#define SX_NS_WSU                                                                                  \
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
#define SX_NS_SAML "urn:oasis:names:tc:SAML:1.0:assertion"
#define SX_NS_DS "http://www.w3.org/2000/09/xmldsig#"
#define SX_EXC_C14N "http://www.w3.org/2001/10/xml-exc-c14n#"

/* sx_parse parses body[0..len) (at most `max` bytes; -E2BIG beyond) with XML_PARSE_NONET and no
 * entity substitution; a DOCTYPE or ENTITY declaration is refused before parsing (-EBADMSG), as
 * is anything libxml2 does not take. Returns the document (free with sx_free) or NULL with *rc. */
struct _xmlDoc *sx_parse(const uint8_t *body, size_t len, size_t max, int *rc);
void sx_free(struct _xmlDoc *doc);
/* sx_root returns the document's root element. */
struct _xmlNode *sx_root(struct _xmlDoc *doc);
/* sx_is tells whether `n` is an element named `local` in namespace `ns` (NULL: any). */
bool sx_is(const struct _xmlNode *n, const char *ns, const char *local);
/* sx_child returns the first element child of `p` that sx_is(ns, local), or NULL; sx_count counts
 * them. */
struct _xmlNode *sx_child(struct _xmlNode *p, const char *ns, const char *local);
size_t sx_count(struct _xmlNode *p, const char *ns, const char *local);
/* sx_soap_header and sx_soap_body return the SOAP 1.1 or 1.2 Envelope's Header or Body (NULL when
 * absent or not an Envelope); *soap12 tells which. */
struct _xmlNode *sx_soap_part(struct _xmlDoc *doc, const char *part, bool *soap12);
/* sx_text copies the text of `n` (its text and CDATA children), without leading and trailing
 * whitespace, into out (cap bytes). Returns 0, -ENOENT (n NULL) or -E2BIG. */
int sx_text(struct _xmlNode *n, char *out, size_t cap);
/* sx_attr copies the attribute `name` (in namespace `ns`, NULL: none) of `n`. Returns 0, -ENOENT
 * or -E2BIG. */
int sx_attr(struct _xmlNode *n, const char *ns, const char *name, char *out, size_t cap);
/* sx_c14n writes the exclusive c14n 1.0 (no comments, no inclusive prefixes; W3C xml-exc-c14n)
 * of the subtree at `root` less the subtree at `exclude` (NULL: none; the enveloped-signature
 * transform) and returns its digest by `md` (an EVP_MD) into out (*out_len). Returns 0 or -EIO.
 * sx_c14n_bytes returns the bytes themselves (free with sx_bytes_free) or NULL. */
int sx_c14n_digest(struct _xmlDoc *doc, struct _xmlNode *root, struct _xmlNode *exclude,
                   const void *md, uint8_t *out, unsigned *out_len);
uint8_t *sx_c14n_bytes(struct _xmlDoc *doc, struct _xmlNode *root, struct _xmlNode *exclude,
                       size_t *out_len);
void sx_bytes_free(uint8_t *p);
/* sx_time_parse reads an xsd:dateTime in UTC ("2026-12-05T09:31:58Z", optional fraction).
 * Returns 0 or -EBADMSG. sx_time_format writes one (21 bytes with the NUL). */
int sx_time_parse(int64_t *out, const char *s);
void sx_time_format(char out[32], int64_t t);

/* The ticket issuer (webticket.c), also used by wsse.c to verify. */
#define WT_FLEET_CAS 64                           /* the directory's set, at most */
#define WT_FLEET_SIGNERS 8                        /* other appliances' signers remembered */
#define WT_SIGNER_CN "certprov Web ticket signer" /* the dedicated signer's subject CN */

struct signer_wt_issuer {
    struct hsm_key *key;
    enum hsm_key_type type;
    const struct signer_ca *ca;
    uint8_t seal_key[32];
    size_t cert_der_len;
    uint8_t cert_der[SIGNER_CERT_DER_MAX];
    char cert_b64[BASE_B64_LEN(SIGNER_CERT_DER_MAX) + 1];
    char issuer_url[SIGNER_WT_URL_MAX + 1];
    void *pkey;              /* EVP_PKEY of the key, for verification */
    struct hsm_key *own_key; /* the dedicated Web ticket signer's (ca/webticket.key), or NULL */
    /* Another appliance's ticket signer (a fleet sharing the issuing CA): its certificate must be
     * a Web ticket signer's issued by the issuing CA (wsse.c fleet_signer); the last ones
     * checked are kept so that each is verified once. */
    void *ca_pkey; /* EVP_PKEY of the issuing CA */
    pthread_mutex_t fleet_mu;
    bool fleet_mu_init;
    struct {
        uint8_t sha256[32];
        int64_t not_after_s;
        void *pkey; /* EVP_PKEY; NULL: a free entry */
    } fleet[WT_FLEET_SIGNERS];
    unsigned fleet_next;
    /* The fleet's issuing CAs from the directory (signer_wt_issuer_fleet_cas), under fleet_mu:
     * a signer certificate issued by any of them is trusted like one of the own CA's, and a
     * ticket signed by one of those CA keys itself (an appliance without a dedicated signer). */
    size_t num_fleet_cas;
    struct {
        uint8_t sha256[32]; /* of the CA certificate's DER */
        void *pkey;         /* EVP_PKEY */
    } fleet_cas[WT_FLEET_CAS];
};

/* wt_sig_method is the XML-DSig SignatureMethod URI of the issuer's key type; wt_sig_md its
 * digest (EVP_MD). */
const char *wt_sig_method(enum hsm_key_type type);
const void *wt_sig_md(enum hsm_key_type type);
/* wt_unseal recovers the proof key from an AssertionID. Returns 0 with *out_len, or -EPERM. */
int wt_unseal(const struct signer_wt_issuer *iss, uint8_t *out, size_t cap, size_t *out_len,
              const char *assertion_id);

#endif
