/* certprov-probe: the synthetic phone sign-in (API.md §6; Test-CsPhoneBootstrap and
 * Test-CsClientAuth of the service it replaces).
 *
 * An independent client of the appliance: it includes nothing of ours but base/ and calls
 * BoringSSL directly (TLS client, keys, CSRs, certificate checks), so that a defect shared with
 * certprovd cannot hide itself. Parts: net.c (the target URL, DNS, connect with a deadline, the
 * TLS client, one HTTP/1.1 exchange per connection), x509.c (trust files, the chain check that
 * names the missing link, keys and CSRs, the issued certificate's checks, PKCS#7 and SOAP
 * answers), flow.c (the bootstrap, clientauth and chain commands as steps), main.c (options, the
 * report as text or JSON, --repeat).
 *
 * One thread; every buffer has a fixed size, every network call a deadline (--timeout). The PIN
 * lives in one buffer that is wiped at exit and is never printed. */
#ifndef CERTPROV_PROBE_H
#define CERTPROV_PROBE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <openssl/base.h>
#include <openssl/x509.h>

#define PROBE_HOST_MAX 256u
#define PROBE_PATH_MAX 1024u
#define PROBE_URI_MAX 1400u
#define PROBE_TEXT_MAX 1024u
#define PROBE_STEPS_MAX 16u
#define PROBE_NOTES_MAX 8u
#define PROBE_BODY_MAX (256u * 1024u) /* an answer: a certificate, a chain, an error */
#define PROBE_REQ_MAX (64u * 1024u)   /* a request: the SOAP envelope with the CSR */
#define PROBE_CERTS_MAX 16u           /* certificates read from one file or answer */
#define PROBE_PIN_MAX 32u
#define PROBE_LOGIN_MAX 32u
#define PROBE_REPEAT_MAX 1000000u

#define PROBE_SOAP_PATH "/CertProv/CertProvisioningService.svc"
#define PROBE_CHAIN_PATH "/CertProv/chain.pem"
/* The port names of the metadata ([MS-OCAUTHWS] §3.1.4.1, §3.2.4.1; PROTOCOL-NOTES §2.1, §2.5). */
#define PROBE_PROOF_PORT "CertProvisioningServiceWebTicketProof_SHA1"
#define PROBE_WT_PIN_PORT "WebTicketServicePin"
#define PROBE_ENTROPY_MAX 64u /* bytes of client or server entropy */
#define PROBE_PROOF_MAX 64u   /* bytes of proof key (KeySize up to 512 bits) */
#define PROBE_ASSERTION_MAX 16384u

/* ---- the report (main.c prints it) ---- */
struct probe_step {
    const char *name; /* "dns", "connect", "tls", ... (stable: JSON and tests) */
    double ms;
    bool ok;
    char detail[PROBE_TEXT_MAX];
};

struct probe_report {
    char target_uri[PROBE_URI_MAX];
    char fqdn[PROBE_HOST_MAX];
    bool done;          /* a verdict was given */
    bool success;       /* every step passed */
    const char *failed; /* the failed step's name, or NULL */
    uint64_t start_ns;  /* clock_mono_ns at the start */
    double latency_ms;  /* start to verdict */
    char error[PROBE_TEXT_MAX];
    char diagnosis[PROBE_TEXT_MAX];
    char serial[80]; /* the certificate issued (bootstrap) or renewed (clientauth) */
    struct probe_step steps[PROBE_STEPS_MAX];
    size_t num_steps;
    char notes[PROBE_NOTES_MAX][PROBE_TEXT_MAX];
    size_t num_notes;
};

/* probe_fmt is snprintf for messages, which are cut at their buffer's end by design (and which
 * -Wformat-truncation would otherwise flag at every call). */
void probe_fmt(char *out, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* probe_report_init zeroes `rep`, sets the target and starts its clock. */
void probe_report_init(struct probe_report *rep, const char *target_uri, const char *fqdn);
/* probe_step_begin starts a step named `name` (a string literal) and returns its index. */
size_t probe_step_begin(struct probe_report *rep, const char *name);
/* probe_step_ok ends step `i` as passed with a detail line. */
void probe_step_ok(struct probe_report *rep, size_t i, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* probe_step_fail ends step `i` as failed and gives the verdict: `error` (what happened) and the
 * diagnosis (what the operator does), prefixed with `blame` (the step the failure belongs to:
 * "authentication" for an enrollment refused at sign-in; NULL: the step's own name). Returns -1. */
int probe_step_fail(struct probe_report *rep, size_t i, const char *blame, const char *error,
                    const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* probe_note adds a line the operator should read even on success (PIN in clear, ...). */
void probe_note(struct probe_report *rep, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* probe_report_success ends the run as a success. */
void probe_report_success(struct probe_report *rep);

/* ---- the target (net.c) ---- */
struct probe_url {
    bool tls;
    uint16_t port;
    char host[PROBE_HOST_MAX]; /* without brackets for an IPv6 literal */
    char path[PROBE_PATH_MAX];
};

/* probe_url_parse reads "http[s]://HOST[:PORT][/PATH]" (no user info, no fragment). An empty
 * path becomes `default_path`. Returns 0, or -EINVAL with the reason in `err`. */
int probe_url_parse(struct probe_url *out, char *err, size_t err_len, const char *text,
                    const char *default_path);
/* probe_url_format writes the URL back ("https://host:port/path"). */
void probe_url_format(char *out, size_t cap, const struct probe_url *u);

/* A connection: a socket and, for https, its TLS client. */
struct probe_conn {
    int fd;
    SSL_CTX *ctx;
    SSL *ssl;
    uint32_t timeout_ms;
};

/* probe_resolve resolves host:port into `out` (a struct sockaddr_storage). Returns 0 or -ENOENT
 * with getaddrinfo's reason in `err`. */
int probe_resolve(void *out, uint32_t *out_len, char *err, size_t err_len, const char *host,
                  uint16_t port);
/* probe_tcp_connect connects to the resolved address within timeout_ms. Returns 0 (c->fd set)
 * or a negative errno (-ETIMEDOUT, -ECONNREFUSED, ...). */
int probe_tcp_connect(struct probe_conn *c, const void *addr, uint32_t addr_len,
                      uint32_t timeout_ms);
/* probe_tls_handshake runs a TLS 1.2/1.3 client handshake on c->fd with SNI `host`, without
 * verifying the server (the caller checks the chain itself, to say what is wrong); with `cert`
 * and `key` it offers them as client certificate. Returns 0 or -EPROTO with the reason in `err`. */
int probe_tls_handshake(struct probe_conn *c, char *err, size_t err_len, const char *host,
                        X509 *cert, EVP_PKEY *key);
/* probe_conn_close closes `c` (an all-zero or closed one too). */
void probe_conn_close(struct probe_conn *c);

struct probe_http {
    int status;
    char diagnostics[PROBE_TEXT_MAX]; /* X-Ms-diagnostics, "" if absent */
    char content_type[128];
    uint8_t *body; /* PROBE_BODY_MAX + 1 bytes, owned by the caller; NUL-terminated */
    size_t body_len;
};

/* probe_http_exchange sends one request (Connection: close) and reads the whole answer into
 * `resp` (whose body buffer the caller gave). `auth` is a full header line or NULL. Returns 0,
 * -ETIMEDOUT, -E2BIG (answer over PROBE_BODY_MAX), -EBADMSG (not HTTP/1.x), or -EIO; the reason
 * is in `err`. */
int probe_http_exchange(struct probe_conn *c, struct probe_http *resp, char *err, size_t err_len,
                        const char *method, const char *host, const char *path,
                        const char *content_type, const char *auth, const char *body,
                        size_t body_len);

/* ---- certificates (x509.c) ---- */
/* probe_certs_read_pem reads up to PROBE_CERTS_MAX PEM certificates from `pem` into `out`
 * (owned, free with sk_X509_pop_free). Returns 0 or -EBADMSG (none, or a damaged one). */
int probe_certs_read_pem(STACK_OF(X509) * *out, const uint8_t *pem, size_t len);
/* probe_certs_read_file is probe_certs_read_pem of a file; -ENOENT etc. if unreadable. */
int probe_certs_read_file(STACK_OF(X509) * *out, const char *path);
/* probe_name writes a certificate's subject (one line, RFC 2253) into `out`. */
void probe_name(char *out, size_t cap, const X509_NAME *name);

/* probe_chain_check verifies `chain` (leaf first, as the server sent it) against the trusted
 * `roots`, for TLS server use with the name `host` (NULL: no name check; an IP literal is checked
 * as an IP). Returns 0, or -EPERM with the missing link in words in `why` (which issuer is absent
 * and whether a certificate of that name but another key is trusted, which certificate expired
 * or is not yet valid, what names the leaf carries) and the X509_V_ERR_* in *out_x509_err.
 * `trust_label` names the trust in `why`. */
int probe_chain_check(char *why, size_t why_len, int *out_x509_err, STACK_OF(X509) * chain,
                      STACK_OF(X509) * roots, const char *host, const char *trust_label);

/* probe_self_signed_only returns a new stack holding the self-signed certificates of `in`. */
STACK_OF(X509) * probe_self_signed_only(STACK_OF(X509) * in);

enum probe_key_type {
    PROBE_KEY_P256,
    PROBE_KEY_P384,
    PROBE_KEY_RSA2048,
    PROBE_KEY_RSA1024, /* refused by the appliance's policy: to test that refusal */
    PROBE_KEY_ED25519,
};
/* probe_key_type_parse maps "p256", "p384", "rsa2048", "rsa1024", "ed25519". -EINVAL otherwise. */
int probe_key_type_parse(enum probe_key_type *out, const char *name);
/* probe_key_new generates a fresh key. Returns it (owned) or NULL. */
EVP_PKEY *probe_key_new(enum probe_key_type type);
/* probe_csr_new writes the DER CSR signed by `key` with subject CN=`cn` (none if cn is NULL)
 * into `out` (cap bytes). Returns 0 (*out_len set) or -EIO/-E2BIG. */
int probe_csr_new(uint8_t *out, size_t *out_len, size_t cap, EVP_PKEY *key, const char *cn);

/* probe_soap_cert extracts the certificate of a GetAndPublishCertResponse (BinarySecurityToken
 * of ValueType ...#X509v3). Returns it (owned) or NULL. */
X509 *probe_soap_cert(const char *xml);
/* probe_soap_error copies ErrorInfo's Code and Reason ("" when absent). */
void probe_soap_error(char *code, size_t code_len, char *reason, size_t reason_len,
                      const char *xml);
/* probe_est_cert extracts the first certificate of a base64 certs-only PKCS#7 (RFC 7030 §4.2.3).
 * Returns it (owned) or NULL. */
X509 *probe_est_cert(const uint8_t *b64, size_t len);

/* probe_cert_check checks an issued client certificate: it verifies against `roots` through
 * `intermediates` for clientAuth now, carries `key`'s public key, has extendedKeyUsage
 * clientAuth, and (want_uri not NULL) a URI subjectAltName equal to want_uri ("sip:" optional,
 * any case). Returns 0 with a summary in `why` (serial, SAN, validity), or -EPERM with the
 * failure. The serial goes to `serial` (upper-case hex). */
int probe_cert_check(char *why, size_t why_len, char *serial, size_t serial_len, X509 *cert,
                     EVP_PKEY *key, STACK_OF(X509) * roots, STACK_OF(X509) * intermediates,
                     const char *want_uri);
/* probe_cert_uri copies the first URI subjectAltName of `cert` into `out`; -ENOENT if none. */
int probe_cert_uri(char *out, size_t cap, X509 *cert);

/* ---- the phone's path as wire text (ticket.c) ---- */
struct probe_metadata {
    char proof_url[PROBE_URI_MAX];     /* the CertProvisioningServiceWebTicketProof_SHA1 port */
    char webticket_url[PROBE_URI_MAX]; /* its policy's IssuedToken/Issuer/Address */
};

/* probe_mex_certprov reads the CertProv WSDL xml[0..len): the Web ticket port's address and the
 * Web Ticket Service URL of its policy (PROTOCOL-NOTES §2.1). Returns 0, or -ENOENT with what is
 * missing in `err`. */
int probe_mex_certprov(struct probe_metadata *out, char *err, size_t err_len, const char *xml,
                       size_t len);
/* probe_mex_port copies the soap:address location of the wsdl:port named `port` of xml[0..len)
 * into `out`. Returns 0, or -ENOENT (no such port, or no http(s) address). */
int probe_mex_port(char *out, size_t cap, const char *xml, size_t len, const char *port);

/* probe_rst_new writes the WS-Trust RST for a SAML 1.1 ticket to `to` for `applies_to`, with the
 * login and PIN as a UsernameToken (the buffer then holds a secret: the caller wipes it), the
 * user URI claim when claim_uri is not NULL, the client entropy and the Context. The inputs are
 * written as given: the caller passes only XML-safe text. Returns 0 or -E2BIG. */
int probe_rst_new(char *out, size_t cap, size_t *out_len, const char *to, const char *applies_to,
                  const char *login, const char *pin, const char *claim_uri, const uint8_t *entropy,
                  size_t entropy_len, const char *context);

/* A Web ticket as the probe keeps it. */
struct probe_ticket {
    char assertion[PROBE_ASSERTION_MAX]; /* the saml:Assertion, verbatim */
    size_t assertion_len;
    char assertion_id[256];
    char subject[PROBE_URI_MAX]; /* the NameIdentifier: the user's sip: URI */
    char not_on_or_after[40];
    char lifetime_expires[40];
    uint8_t proof[PROBE_PROOF_MAX]; /* secret: the caller wipes it */
    size_t proof_len;
};

/* probe_p_sha1 writes out_len bytes of P_SHA1(secret, seed) (RFC 2246 §5; WS-Trust 1.3 §4.4.5
 * CK/PSHA1: the secret is the client entropy, the seed the server's). */
void probe_p_sha1(uint8_t *out, size_t out_len, const uint8_t *secret, size_t secret_len,
                  const uint8_t *seed, size_t seed_len);
/* probe_rstr_parse reads a 200 RSTR xml[0..len): the Context echoed, the assertion (verbatim),
 * its AssertionID and subject, ComputedKey CK/PSHA1, the server entropy and KeySize, and derives
 * the proof key from `entropy`. Returns 0, or -EBADMSG/-E2BIG with what is wrong in `err`. */
int probe_rstr_parse(struct probe_ticket *t, char *err, size_t err_len, const char *xml, size_t len,
                     const uint8_t *entropy, size_t entropy_len, const char *context);
/* probe_proof_security writes GetAndPublishCert's wsse:Security header: a Timestamp (Created =
 * now, Expires = now + 5 minutes, Id "timestamp"), the assertion, and the HMAC-SHA1 signature
 * over the Timestamp with the proof key (exclusive c14n; KeyIdentifier = AssertionID). Returns 0
 * or -E2BIG. */
int probe_proof_security(char *out, size_t cap, size_t *out_len, const struct probe_ticket *t,
                         time_t now);

/* probe_soap_fault writes "SOAP fault ERRORID: REASON" of a SOAP 1.1 or 1.2 fault in
 * xml[0..len) (the OCSDiagnosticsFault detail when there, [MS-OCAUTHWS] §2.2.4.1), or "". */
void probe_soap_fault(char *out, size_t cap, const char *xml, size_t len);

/* ---- the commands (flow.c) ---- */
struct probe_options {
    const char *target;
    const char *login; /* --phone-or-ext */
    const char *sip;   /* --user-sip-address */
    const char *trust;
    const char *chain_url;
    const char *cert;
    const char *key;
    enum probe_key_type key_type;
    uint32_t timeout_ms;
    bool direct;                 /* --direct: the PIN on CertProv, not the phone's path */
    char pin[PROBE_PIN_MAX + 1]; /* secret: wiped at exit, never printed */
};

/* probe_bootstrap, probe_clientauth and probe_chain run one repetition of their command and
 * fill `rep`. They return 0 on success, -1 when a step failed (the report says which). `body`
 * is a caller-owned buffer of PROBE_BODY_MAX + 1 bytes. */
int probe_bootstrap(struct probe_report *rep, const struct probe_options *o, uint8_t *body);
int probe_clientauth(struct probe_report *rep, const struct probe_options *o, uint8_t *body);
int probe_chain(struct probe_report *rep, const struct probe_options *o, uint8_t *body);

#endif
