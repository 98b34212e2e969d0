/* certprov-probe: the commands as steps. bootstrap is a phone's first sign-in
 * (Test-CsPhoneBootstrap): DNS, trust (the --trust file, or the chain the appliance serves over
 * plain HTTP), connect, the TLS chain, a fresh key and CSR, SOAP enrollment with the PIN, the
 * certificate returned, and a renewal over mTLS with it (Test-CsClientAuth). clientauth is that
 * last part with a certificate the operator gives; chain is the TLS chain alone. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <openssl/base64.h>
#include <openssl/err.h>
#include <openssl/mem.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "base/base.h"
#include "cmd/certprov-probe/probe.h"

#define FLOW_CSR_MAX 4096u
/* The probe's DeviceId ("PROBE" in hex), so that its enrollments are told apart in the log. */
#define FLOW_DEVICE_ID "{50524F42-4500-4000-8000-000000000001}"
#define NS_WSSE "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"

/* One repetition's state. */
struct run {
    struct probe_report *rep;
    const struct probe_options *o;
    uint8_t *body;
    struct probe_url url;
    struct sockaddr_storage addr;
    uint32_t addr_len;
    STACK_OF(X509) * roots;     /* trusted */
    STACK_OF(X509) * untrusted; /* intermediates seen: the chain downloaded, the TLS chain */
    char trust_label[PROBE_PATH_MAX + 64];
    char err[PROBE_TEXT_MAX];
    char renewed[80]; /* the serial of the renewal's certificate */
};

static void run_cleanup(struct run *r)
{
    sk_X509_pop_free(r->roots, X509_free);
    r->roots = NULL;
    sk_X509_pop_free(r->untrusted, X509_free);
    r->untrusted = NULL;
}

static void add_untrusted(struct run *r, STACK_OF(X509) * certs)
{
    if (r->untrusted == NULL) {
        r->untrusted = sk_X509_new_null();
    }
    for (size_t i = 0; r->untrusted != NULL && i < sk_X509_num(certs); i++) {
        X509 *x = sk_X509_value(certs, i);
        if (sk_X509_num(r->untrusted) < 4 * PROBE_CERTS_MAX && sk_X509_push(r->untrusted, x)) {
            X509_up_ref(x);
        }
    }
}

static const char *sign_in_name(const char *uri)
{
    return strncasecmp(uri, "sip:", 4) == 0 ? uri + 4 : uri;
}

/* ---- steps shared by the commands ---- */

static int step_dns(struct run *r)
{
    size_t s = probe_step_begin(r->rep, "dns");
    if (probe_resolve(&r->addr, &r->addr_len, r->err, sizeof(r->err), r->url.host, r->url.port) !=
        0) {
        return probe_step_fail(r->rep, s, NULL, r->err,
                               "check the name in --target-uri and this machine's DNS (the pool's "
                               "FQDN must resolve to the appliance or its balancer)");
    }
    char ip[INET6_ADDRSTRLEN] = "?";
    const struct sockaddr *sa = (const struct sockaddr *)&r->addr;
    const void *a = sa->sa_family == AF_INET6
                        ? (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr
                        : (const void *)&((const struct sockaddr_in *)sa)->sin_addr;
    (void)inet_ntop(sa->sa_family, a, ip, sizeof(ip));
    probe_step_ok(r->rep, s, "%s is %s", r->url.host, ip);
    return 0;
}

static int connect_to(struct run *r, struct probe_conn *c, size_t s, const struct probe_url *u,
                      const void *addr, uint32_t addr_len)
{
    int rc = probe_tcp_connect(c, addr, addr_len, r->o->timeout_ms);
    if (rc == 0) {
        return 0;
    }
    probe_fmt(r->err, sizeof(r->err), "cannot connect to %s port %u: %s", u->host, u->port,
              rc == -ETIMEDOUT ? "no answer within the timeout" : strerror(-rc));
    return probe_step_fail(r->rep, s, NULL, r->err, "%s",
                           rc == -ECONNREFUSED
                               ? "nothing listens there: is certprovd running (systemctl status "
                                 "certprovd) and is the port its [server] listen or tls_listen?"
                               : "the appliance or its balancer cannot be reached: check the "
                                 "address, the port and the firewalls on the way");
}

/* root_known is true when a self-signed certificate of `certs` is one of `roots` (same DER). */
static bool root_known(STACK_OF(X509) * certs, STACK_OF(X509) * roots)
{
    for (size_t i = 0; i < sk_X509_num(certs); i++) {
        for (size_t j = 0; j < sk_X509_num(roots); j++) {
            if (X509_cmp(sk_X509_value(certs, i), sk_X509_value(roots, j)) == 0) {
                return true;
            }
        }
    }
    return false;
}

/* chain_download fetches the chain the appliance serves over plain HTTP, as a phone does before
 * it can check TLS, and trusts its root (trust on first use). With --trust as well (`check`),
 * the downloaded chain must end in one of --trust's roots instead: what a phone provisioned with
 * the enterprise's root sees. */
static int step_chain_download(struct run *r, bool check)
{
    size_t s = probe_step_begin(r->rep, "chain-download");
    struct probe_url cu = {0};
    if (r->o->chain_url != NULL) {
        if (probe_url_parse(&cu, r->err, sizeof(r->err), r->o->chain_url, PROBE_CHAIN_PATH) != 0) {
            return probe_step_fail(r->rep, s, NULL, r->err, "give --chain-url as http://HOST:PORT");
        }
    } else {
        cu = r->url;
        cu.tls = false;
        /* A phone fetches http://POOL/CertProv/chain.pem: port 80, or 8080 beside 8443 (the
         * ports of `make run`); anything else needs --chain-url. */
        cu.port = r->url.tls ? (r->url.port == 8443 ? 8080 : 80) : r->url.port;
        (void)base_str_copy(cu.path, sizeof(cu.path), PROBE_CHAIN_PATH);
    }
    char text[PROBE_URI_MAX];
    probe_url_format(text, sizeof(text), &cu);
    struct sockaddr_storage addr;
    uint32_t addr_len = 0;
    struct probe_conn c = {0};
    struct probe_http resp = {.body = r->body};
    int rc = -1;
    if (probe_resolve(&addr, &addr_len, r->err, sizeof(r->err), cu.host, cu.port) != 0) {
        rc = probe_step_fail(r->rep, s, NULL, r->err, "check the host of --chain-url");
        goto out;
    }
    if (connect_to(r, &c, s, &cu, &addr, addr_len) != 0) {
        goto out;
    }
    if (cu.tls && probe_tls_handshake(&c, r->err, sizeof(r->err), cu.host, NULL, NULL) != 0) {
        rc = probe_step_fail(r->rep, s, NULL, r->err, "give --chain-url the plain http:// URL");
        goto out;
    }
    if (probe_http_exchange(&c, &resp, r->err, sizeof(r->err), "GET", cu.host, cu.path, NULL, NULL,
                            NULL, 0) != 0) {
        rc = probe_step_fail(r->rep, s, NULL, r->err, "%s did not answer with the chain", text);
        goto out;
    }
    STACK_OF(X509) *certs = NULL;
    if (resp.status != 200 || probe_certs_read_pem(&certs, resp.body, resp.body_len) != 0) {
        probe_fmt(r->err, sizeof(r->err), "GET %s answered %d without a PEM chain", text,
                  resp.status);
        rc = probe_step_fail(r->rep, s, NULL, r->err,
                             "the appliance serves its chain at %s on its plain listen; give "
                             "--chain-url, or --trust with the root the phones trust",
                             PROBE_CHAIN_PATH);
        goto out;
    }
    if (check) {
        STACK_OF(X509) *own = probe_self_signed_only(certs);
        bool known = own != NULL && root_known(own, r->roots);
        char root[256] = "none";
        if (own != NULL && sk_X509_num(own) > 0) {
            probe_name(root, sizeof(root), X509_get_subject_name(sk_X509_value(own, 0)));
        }
        sk_X509_pop_free(own, X509_free);
        add_untrusted(r, certs);
        sk_X509_pop_free(certs, X509_free);
        if (!known) {
            probe_fmt(r->err, sizeof(r->err),
                      "the chain at %s ends in the root \"%s\", which is not in --trust %s", text,
                      root, r->o->trust);
            rc = probe_step_fail(r->rep, s, NULL, r->err,
                                 "the phones would not trust what the appliance serves: import the "
                                 "issuing CA signed by the root they ship with (certprovctl ca "
                                 "request, ca import), or give --trust the right root");
            goto out;
        }
        probe_step_ok(r->rep, s, "root \"%s\" of %s is in --trust", root, text);
        rc = 0;
        goto out;
    }
    r->roots = probe_self_signed_only(certs);
    add_untrusted(r, certs);
    sk_X509_pop_free(certs, X509_free);
    if (r->roots == NULL || sk_X509_num(r->roots) == 0) {
        probe_fmt(r->err, sizeof(r->err), "the chain at %s holds no root (self-signed) certificate",
                  text);
        rc = probe_step_fail(r->rep, s, NULL, r->err,
                             "the appliance's chain.pem must end in its root: see certprovctl ca "
                             "show; or give --trust");
        goto out;
    }
    char root[256];
    probe_name(root, sizeof(root), X509_get_subject_name(sk_X509_value(r->roots, 0)));
    probe_fmt(r->trust_label, sizeof(r->trust_label), "the chain downloaded from %s", text);
    probe_step_ok(r->rep, s, "root \"%s\" from %s", root, text);
    probe_note(r->rep,
               "no --trust: the root \"%s\" of the chain downloaded over plain HTTP from %s was "
               "trusted, as a phone does (give --trust with the root you know to check it)",
               root, text);
    rc = 0;
out:
    probe_conn_close(&c);
    return rc;
}

static int step_trust(struct run *r)
{
    if (r->o->trust == NULL) {
        return step_chain_download(r, false);
    }
    size_t s = probe_step_begin(r->rep, "trust");
    STACK_OF(X509) *certs = NULL;
    int rc = probe_certs_read_file(&certs, r->o->trust);
    if (rc != 0) {
        probe_fmt(r->err, sizeof(r->err), "cannot read --trust %s: %s", r->o->trust,
                  rc == -EBADMSG ? "no PEM certificate in it, or a damaged one" : strerror(-rc));
        return probe_step_fail(r->rep, s, NULL, r->err,
                               "give --trust a PEM file with the root (e.g. the appliance's "
                               "<store>/chain.pem)");
    }
    r->roots = certs;
    probe_fmt(r->trust_label, sizeof(r->trust_label), "--trust %s", r->o->trust);
    probe_step_ok(r->rep, s, "%zu certificate(s) from %s", sk_X509_num(certs), r->o->trust);
    /* --chain-url too: the chain served over plain HTTP is checked against --trust. */
    return r->o->chain_url != NULL ? step_chain_download(r, true) : 0;
}

/* chain_advice says what to do about a chain failure of kind `err`. */
static const char *chain_advice(int err)
{
    switch (err) {
    case X509_V_ERR_CERT_HAS_EXPIRED:
    case X509_V_ERR_CERT_NOT_YET_VALID:
        return "replace the TLS server certificate (<store>/tls/server.crt and server.key, "
               "signed by the issuing CA) and restart certprovd; certprovd --check says when it "
               "expires";
    case X509_V_ERR_HOSTNAME_MISMATCH:
    case X509_V_ERR_IP_ADDRESS_MISMATCH:
        return "use the name the certificate carries in --target-uri, or issue the server "
               "certificate for this name ([server] name)";
    default:
        return "give --trust the root the phones trust (the appliance's <store>/chain.pem), or "
               "make the server send a chain that leads to it (<store>/tls/server.crt holds the "
               "server certificate and the issuing CA)";
    }
}

/* step_connect_tls connects (step "connect") and, for https, runs the handshake with the client
 * certificate if any and checks the chain (step "tls"). */
static int step_connect_tls(struct run *r, struct probe_conn *c, X509 *cert, EVP_PKEY *key)
{
    size_t s = probe_step_begin(r->rep, "connect");
    if (connect_to(r, c, s, &r->url, &r->addr, r->addr_len) != 0) {
        return -1;
    }
    probe_step_ok(r->rep, s, "%s port %u", r->url.host, r->url.port);
    if (!r->url.tls) {
        return 0;
    }
    s = probe_step_begin(r->rep, "tls");
    if (probe_tls_handshake(c, r->err, sizeof(r->err), r->url.host, cert, key) != 0) {
        if (cert != NULL && strstr(r->err, "NO_COMMON_SIGNATURE_ALGORITHMS") != NULL) {
            return probe_step_fail(r->rep, s, NULL, r->err,
                                   "the appliance accepts no signature algorithm of the client "
                                   "certificate's key type: such phones cannot renew over mTLS");
        }
        return probe_step_fail(r->rep, s, NULL, r->err,
                               "is this port the appliance's tls_listen (not its plain listen)? "
                               "certprovd's log says why a handshake failed");
    }
    STACK_OF(X509) *chain = SSL_get_peer_full_cert_chain(c->ssl);
    char why[PROBE_TEXT_MAX];
    int x509_err = 0;
    if (probe_chain_check(why, sizeof(why), &x509_err, chain, r->roots, r->url.host,
                          r->trust_label) != 0) {
        probe_fmt(r->err, sizeof(r->err), "TLS chain: %s", why);
        return probe_step_fail(r->rep, s, NULL, r->err, "%s; %s", why, chain_advice(x509_err));
    }
    add_untrusted(r, chain);
    char leaf[256];
    probe_name(leaf, sizeof(leaf), X509_get_subject_name(sk_X509_value(chain, 0)));
    probe_step_ok(r->rep, s, "%s, %s, \"%s\" verifies against %s", SSL_get_version(c->ssl),
                  SSL_get_cipher_name(c->ssl), leaf, r->trust_label);
    return 0;
}

/* ---- enrollment ---- */

/* soap_envelope writes GetAndPublishCert for `entity` with the CSR, and a WS-Security
 * UsernameToken when `login` is given (the PIN: the buffer holds a secret then), or the
 * wsse:Security header `security` (a Web ticket and its proof) when that is given. */
static int soap_envelope(char *out, size_t cap, size_t *out_len, const char *entity,
                         const uint8_t *csr, size_t csr_len, const char *login, const char *pin,
                         const char *security)
{
    ASSERT(login == NULL || security == NULL);
    char b64[FLOW_CSR_MAX * 2];
    size_t b64_len = base_b64_encode(b64, sizeof(b64), csr, csr_len);
    ASSERT(b64_len > 0);
    int n = snprintf(
        out, cap,
        "<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\">%s%s%s%s%s%s%s%s"
        "<s:Body><GetAndPublishCert xmlns=\"http://schemas.microsoft.com/OCS/AuthWebServices/\" "
        "DeviceId=\"" FLOW_DEVICE_ID "\" Entity=\"%s\">"
        "<wst:RequestSecurityToken xmlns:wst=\"http://docs.oasis-open.org/ws-sx/ws-trust/200512\">"
        "<wst:TokenType>http://docs.oasis-open.org/wss/2004/01/"
        "oasis-200401-wss-x509-token-profile-1.0#X509v3</wst:TokenType>"
        "<wst:RequestType>http://docs.oasis-open.org/ws-sx/ws-trust/200512/Issue</wst:RequestType>"
        "<wsse:BinarySecurityToken xmlns:wsse=\"" NS_WSSE "\" "
        "ValueType=\"http://schemas.microsoft.com/OCS/AuthWebServices.xsd#PKCS10\">%s"
        "</wsse:BinarySecurityToken></wst:RequestSecurityToken></GetAndPublishCert></s:Body>"
        "</s:Envelope>",
        login != NULL ? "<s:Header><wsse:Security xmlns:wsse=\"" NS_WSSE "\"><wsse:UsernameToken>"
                        "<wsse:Username>"
                      : "",
        login != NULL ? login : "", login != NULL ? "</wsse:Username><wsse:Password>" : "",
        login != NULL ? pin : "",
        login != NULL ? "</wsse:Password></wsse:UsernameToken></wsse:Security></s:Header>" : "",
        security != NULL ? "<s:Header>" : "", security != NULL ? security : "",
        security != NULL ? "</s:Header>" : "", entity, b64);
    if (n <= 0 || (size_t)n >= cap) {
        return -E2BIG;
    }
    *out_len = (size_t)n;
    return 0;
}

/* code_advice: the step a refusal belongs to and what the operator does about it. */
static const char *code_blame(const char *code)
{
    if (strcmp(code, "AuthenticationFailed") == 0 || strcmp(code, "PinLocked") == 0) {
        return "authentication";
    }
    if (strcmp(code, "BadCsr") == 0 || strcmp(code, "CsrSignatureInvalid") == 0 ||
        strcmp(code, "IdentityMismatch") == 0) {
        return "csr";
    }
    return "signing";
}

static void code_advice(char *out, size_t cap, const char *code, const char *uri, bool mtls)
{
    char u[PROBE_URI_MAX];
    if (uri == NULL) {
        (void)base_str_copy(u, sizeof(u), "<the user's sip: URI>");
    } else {
        probe_fmt(u, sizeof(u), "%s%s", strncasecmp(uri, "sip:", 4) == 0 ? "" : "sip:", uri);
    }
    if (strcmp(code, "PinLocked") == 0) {
        probe_fmt(out, cap, "unlock with certprovctl user unlock %s (or wait for the lock to end)",
                  u);
    } else if (strcmp(code, "AuthenticationFailed") == 0 && mtls) {
        probe_fmt(out, cap,
                  "the client certificate must come from this appliance's issuing CA, be valid "
                  "now, and name a user that exists (certprovctl user show %s)",
                  u);
    } else if (strcmp(code, "AuthenticationFailed") == 0) {
        probe_fmt(out, cap,
                  "check the phone number or extension and the PIN: certprovctl user show %s "
                  "shows the user, certprovctl user set-pin sets a new PIN",
                  u);
    } else if (strcmp(code, "IdentityMismatch") == 0) {
        probe_fmt(out, cap,
                  "--user-sip-address (the Entity and the CSR's CN) must be the URI of the user "
                  "of that phone number or extension: certprovctl user list");
    } else if (strcmp(code, "BadCsr") == 0 || strcmp(code, "CsrSignatureInvalid") == 0) {
        probe_fmt(out, cap,
                  "the appliance's policy refused the CSR (README: The certificate, keys "
                  "accepted); phones of this model need a key and hash it accepts");
    } else if (strcmp(code, "RateLimited") == 0) {
        probe_fmt(out, cap,
                  "the user had [profile] max_certs_per_user_per_day certificates in 24 hours: "
                  "wait for Retry-After, or raise the limit");
    } else if (strcmp(code, "StoreUnavailable") == 0 || strcmp(code, "SigningUnavailable") == 0) {
        probe_fmt(out, cap, "GET /readyz on the appliance says why; then its log");
    } else if (strcmp(code, "Overloaded") == 0) {
        probe_fmt(out, cap, "the appliance is at a bound (max_inflight): retry, then add capacity");
    } else {
        probe_fmt(out, cap, "the appliance's log (journalctl -u certprovd) says what happened");
    }
}

/* refused turns a non-200 answer into the verdict of step s. `ticket`: the request carried a Web
 * ticket (the phone's path): an authentication refusal is CertProv refusing the ticket. */
static int refused(struct run *r, size_t s, const struct probe_http *resp, const char *what,
                   const char *uri, bool mtls, bool ticket)
{
    char code[64] = "";
    char reason[PROBE_TEXT_MAX / 2] = "";
    probe_soap_error(code, sizeof(code), reason, sizeof(reason), (const char *)resp->body);
    if (code[0] == '\0') {
        /* EST and other routes answer "CODE: TEXT" as text/plain. */
        const char *colon = strstr((const char *)resp->body, ": ");
        size_t len = colon != NULL ? (size_t)(colon - (const char *)resp->body) : 0;
        if (len > 0 && len < sizeof(code) &&
            strspn((const char *)resp->body,
                   "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") == len) {
            memcpy(code, resp->body, len);
            code[len] = '\0';
            probe_fmt(reason, sizeof(reason), "%.*s", (int)strcspn(colon + 2, "\r\n"), colon + 2);
        }
    }
    if (code[0] == '\0') {
        probe_fmt(code, sizeof(code), "HTTP%d", resp->status);
        probe_fmt(reason, sizeof(reason), "no ErrorInfo in the answer");
    }
    probe_fmt(r->err, sizeof(r->err), "%s: %d %s: %s%s%s", what, resp->status, code, reason,
              resp->diagnostics[0] != '\0' ? " (X-Ms-diagnostics: " : "",
              resp->diagnostics[0] != '\0' ? resp->diagnostics : "");
    if (resp->diagnostics[0] != '\0') {
        size_t l = strlen(r->err);
        probe_fmt(r->err + l, sizeof(r->err) - l, ")");
    }
    char advice[PROBE_TEXT_MAX / 2];
    const char *blame = mtls ? "clientauth" : code_blame(code);
    if (ticket && strcmp(blame, "authentication") == 0) {
        blame = "certprov";
        probe_fmt(advice, sizeof(advice),
                  "CertProv refused the Web ticket its metadata's Web Ticket Service issued; "
                  "X-Ms-diagnostics names the check (README, Web tickets): a clock off by more "
                  "than 5 minutes, or a balancer that sends the Web Ticket Service and CertProv "
                  "to appliances that do not share their CA and pin.key");
    } else {
        code_advice(advice, sizeof(advice), code, uri, mtls);
    }
    return probe_step_fail(r->rep, s, blame, r->err, "the appliance answered %d %s: %s; %s",
                           resp->status, code, reason, advice);
}

/* step_csr makes a fresh key and its CSR (CN = the sign-in name when known). */
static int step_csr(struct run *r, EVP_PKEY **out_key, uint8_t *csr, size_t *csr_len,
                    enum probe_key_type type, const char *cn)
{
    static const char *const names[] = {"P-256", "P-384", "RSA-2048", "RSA-1024", "Ed25519"};
    size_t s = probe_step_begin(r->rep, "csr");
    EVP_PKEY *key = probe_key_new(type);
    if (key == NULL || probe_csr_new(csr, csr_len, FLOW_CSR_MAX, key, cn) != 0) {
        EVP_PKEY_free(key);
        ERR_clear_error();
        return probe_step_fail(r->rep, s, NULL, "cannot generate a key and CSR",
                               "a fault of this machine's BoringSSL (out of memory?)");
    }
    *out_key = key;
    probe_step_ok(r->rep, s, "fresh %s key, CSR of %zu bytes, %s%s", names[type], *csr_len,
                  cn != NULL ? "CN=" : "no CN", cn != NULL ? cn : "");
    return 0;
}

/* enroll sends the CSR (SOAP with `entity`, or EST simpleenroll when entity is NULL) on the open
 * connection `c` and returns the certificate of a 200 answer in *out. */
static int enroll(struct run *r, struct probe_conn *c, size_t s, X509 **out, const char *entity,
                  const uint8_t *csr, size_t csr_len, bool with_pin, const char *what)
{
    static char req[PROBE_REQ_MAX];
    size_t req_len = 0;
    struct probe_http resp = {.body = r->body};
    char auth[160] = "";
    int rc = 0;
    if (entity != NULL) {
        rc = soap_envelope(req, sizeof(req), &req_len, entity, csr, csr_len,
                           with_pin ? r->o->login : NULL, r->o->pin, NULL);
        ASSERT(rc == 0);
        rc = probe_http_exchange(c, &resp, r->err, sizeof(r->err), "POST", r->url.host, r->url.path,
                                 "text/xml; charset=utf-8", NULL, req, req_len);
    } else {
        /* No Entity known: EST simpleenroll with HTTP Basic (RFC 7030 §3.2.3). */
        char cred[PROBE_LOGIN_MAX + PROBE_PIN_MAX + 2];
        int n = snprintf(cred, sizeof(cred), "%s:%s", r->o->login, r->o->pin);
        ASSERT(n > 0 && (size_t)n < sizeof(cred));
        n = snprintf(auth, sizeof(auth), "Authorization: Basic ");
        base_b64_encode(auth + n, sizeof(auth) - (size_t)n, (const uint8_t *)cred, strlen(cred));
        OPENSSL_cleanse(cred, sizeof(cred));
        req_len = base_b64_encode(req, sizeof(req), csr, csr_len);
        rc = probe_http_exchange(c, &resp, r->err, sizeof(r->err), "POST", r->url.host,
                                 "/.well-known/est/simpleenroll", "application/pkcs10", auth, req,
                                 req_len);
    }
    OPENSSL_cleanse(req, sizeof(req));
    OPENSSL_cleanse(auth, sizeof(auth));
    if (rc != 0) {
        return probe_step_fail(r->rep, s, NULL, r->err,
                               "%s: the appliance took the connection but gave no answer (a "
                               "timeout: raise --timeout, or see the appliance's log)",
                               what);
    }
    if (resp.status != 200) {
        return refused(r, s, &resp, what, r->o->sip != NULL ? r->o->sip : entity, !with_pin, false);
    }
    X509 *x = entity != NULL ? probe_soap_cert((const char *)resp.body)
                             : probe_est_cert(resp.body, resp.body_len);
    if (x == NULL) {
        probe_fmt(r->err, sizeof(r->err), "%s: 200 without a readable certificate (%s)", what,
                  resp.content_type);
        return probe_step_fail(r->rep, s, "signing", r->err,
                               "the answer is not a GetAndPublishCertResponse with a certificate: "
                               "is --target-uri the CertProv service of a certprov appliance?");
    }
    *out = x;
    return 0;
}

/* step_certificate checks what enrollment returned. */
static int step_certificate(struct run *r, char *serial, size_t serial_len, X509 *cert,
                            EVP_PKEY *key, const char *want_uri)
{
    size_t s = probe_step_begin(r->rep, "certificate");
    char why[PROBE_TEXT_MAX];
    if (probe_cert_check(why, sizeof(why), serial, serial_len, cert, key, r->roots, r->untrusted,
                         want_uri) != 0) {
        return probe_step_fail(r->rep, s, NULL, why,
                               "the appliance issued a certificate the phone cannot use: %s; "
                               "check its CA (certprovctl ca show) against the trusted root",
                               why);
    }
    probe_step_ok(r->rep, s, "%s", why);
    return 0;
}

/* step_renew: a client-certificate request with `cert`/`key` on a new connection (SOAP
 * GetAndPublishCert without a PIN), and the certificate it returns. */
static int step_renew(struct run *r, X509 *cert, EVP_PKEY *key, const char *entity,
                      const char *old_serial)
{
    struct probe_conn c = {0};
    EVP_PKEY *nkey = NULL;
    X509 *renewed = NULL;
    uint8_t csr[FLOW_CSR_MAX];
    size_t csr_len = 0;
    int rc = -1;
    if (step_connect_tls(r, &c, cert, key) != 0 ||
        step_csr(r, &nkey, csr, &csr_len, PROBE_KEY_P256, entity) != 0) {
        goto out;
    }
    size_t s = probe_step_begin(r->rep, "clientauth");
    if (enroll(r, &c, s, &renewed, entity, csr, csr_len, false, "renewal by client certificate") !=
        0) {
        goto out;
    }
    char serial[80];
    char why[PROBE_TEXT_MAX];
    if (probe_cert_check(why, sizeof(why), serial, sizeof(serial), renewed, nkey, r->roots,
                         r->untrusted, entity) != 0) {
        rc =
            probe_step_fail(r->rep, s, NULL, why, "the renewed certificate is not usable: %s", why);
        goto out;
    }
    if (old_serial != NULL && strcmp(serial, old_serial) == 0) {
        rc = probe_step_fail(r->rep, s, NULL, "the renewal returned the old certificate",
                             "the appliance must issue a new certificate on renewal");
        goto out;
    }
    if (r->rep->serial[0] == '\0') { /* bootstrap keeps the serial it enrolled */
        (void)base_str_copy(r->rep->serial, sizeof(r->rep->serial), serial);
    }
    (void)base_str_copy(r->renewed, sizeof(r->renewed), serial);
    probe_step_ok(r->rep, s, "SOAP GetAndPublishCert without a PIN over mTLS: %s", why);
    rc = 0;
out:
    X509_free(renewed);
    EVP_PKEY_free(nkey);
    probe_conn_close(&c);
    return rc;
}

static int run_start(struct run *r, struct probe_report *rep, const struct probe_options *o,
                     uint8_t *body)
{
    *r = (struct run){.rep = rep, .o = o, .body = body};
    char err[PROBE_TEXT_MAX];
    int rc = probe_url_parse(&r->url, err, sizeof(err), o->target, PROBE_SOAP_PATH);
    ASSERT(rc == 0); /* main checked it */
    char uri[PROBE_URI_MAX];
    probe_url_format(uri, sizeof(uri), &r->url);
    probe_report_init(rep, uri, r->url.host);
    return 0;
}

/* ---- the phone's path: metadata, Web ticket, GetAndPublishCert with the ticket ---- */

/* answered turns a non-200 answer of the metadata or Web ticket step into its verdict: the
 * status, X-Ms-diagnostics and the SOAP fault, then `advice`. */
static int answered(struct run *r, size_t s, const char *what, const struct probe_http *resp,
                    const char *advice)
{
    char fault[PROBE_TEXT_MAX / 2];
    probe_soap_fault(fault, sizeof(fault), (const char *)resp->body, resp->body_len);
    probe_fmt(r->err, sizeof(r->err), "%s: %d%s%s%s%s%s", what, resp->status,
              fault[0] != '\0' ? ", " : "", fault,
              resp->diagnostics[0] != '\0' ? " (X-Ms-diagnostics: " : "",
              resp->diagnostics[0] != '\0' ? resp->diagnostics : "",
              resp->diagnostics[0] != '\0' ? ")" : "");
    return probe_step_fail(r->rep, s, NULL, r->err, "%s answered %d%s%s; %s", what, resp->status,
                           fault[0] != '\0' ? ", " : "", fault, advice);
}

/* url_exchange sends one request to `url` (read from the metadata) on a connection of its own:
 * DNS (the target's address when it is the target's host and port), connect, and for https the
 * handshake and the chain checked against the trust as for the target. A failure ends step s,
 * naming `what`. */
static int url_exchange(struct run *r, size_t s, const char *what, const char *url,
                        const char *method, const char *extra, const char *body, size_t body_len,
                        struct probe_http *resp)
{
    struct probe_url u;
    if (probe_url_parse(&u, r->err, sizeof(r->err), url, "/") != 0) {
        char why[PROBE_TEXT_MAX];
        probe_fmt(why, sizeof(why), "%s: the metadata names %s: %s", what, url, r->err);
        return probe_step_fail(r->rep, s, NULL, why,
                               "the appliance's metadata is damaged: see its [server] "
                               "external_base_url and name");
    }
    struct sockaddr_storage addr;
    uint32_t addr_len = 0;
    struct probe_conn c = {0};
    int rc = -1;
    if (strcasecmp(u.host, r->url.host) == 0 && u.port == r->url.port) {
        memcpy(&addr, &r->addr, sizeof(addr));
        addr_len = r->addr_len;
    } else if (probe_resolve(&addr, &addr_len, r->err, sizeof(r->err), u.host, u.port) != 0) {
        char why[PROBE_TEXT_MAX];
        probe_fmt(why, sizeof(why), "%s: %s", what, r->err);
        return probe_step_fail(r->rep, s, NULL, why,
                               "the metadata names %s, which this machine cannot resolve: set "
                               "[server] external_base_url to the name phones reach",
                               u.host);
    }
    if (connect_to(r, &c, s, &u, &addr, addr_len) != 0) {
        goto out;
    }
    if (u.tls) {
        if (probe_tls_handshake(&c, r->err, sizeof(r->err), u.host, NULL, NULL) != 0) {
            char why[PROBE_TEXT_MAX];
            probe_fmt(why, sizeof(why), "%s: %s", what, r->err);
            rc = probe_step_fail(r->rep, s, NULL, why,
                                 "the metadata names %s, which does not answer TLS: set "
                                 "[server] external_base_url to the URL phones reach",
                                 url);
            goto out;
        }
        char why[PROBE_TEXT_MAX];
        int x509_err = 0;
        if (probe_chain_check(why, sizeof(why), &x509_err, SSL_get_peer_full_cert_chain(c.ssl),
                              r->roots, u.host, r->trust_label) != 0) {
            probe_fmt(r->err, sizeof(r->err), "%s: TLS chain of %s: %s", what, u.host, why);
            rc = probe_step_fail(r->rep, s, NULL, r->err, "%s; %s", why, chain_advice(x509_err));
            goto out;
        }
    }
    if (probe_http_exchange(&c, resp, r->err, sizeof(r->err), method, u.host, u.path,
                            body != NULL ? "text/xml; charset=utf-8" : NULL, extra, body,
                            body_len) != 0) {
        char why[PROBE_TEXT_MAX];
        probe_fmt(why, sizeof(why), "%s: %s", what, r->err);
        rc = probe_step_fail(r->rep, s, NULL, why,
                             "%s took the connection but gave no answer (raise --timeout, or see "
                             "the appliance's log)",
                             url);
        goto out;
    }
    rc = 0;
out:
    probe_conn_close(&c);
    return rc;
}

/* step_metadata reads the CertProv metadata (GET <target>/mex on the open connection `c`) for
 * the Web ticket port and the Web Ticket Service, then the Web Ticket Service's metadata for its
 * PIN port (PROTOCOL-NOTES §2.1, §2.5: how pidgin-sipe finds them). */
static int step_metadata(struct run *r, struct probe_conn *c, struct probe_metadata *md,
                         char *pin_url, size_t pin_url_len)
{
    size_t s = probe_step_begin(r->rep, "metadata");
    struct probe_http resp = {.body = r->body};
    char path[PROBE_PATH_MAX + 8];
    size_t pl = strlen(r->url.path);
    probe_fmt(path, sizeof(path), "%.*s/mex",
              (int)(pl > 0 && r->url.path[pl - 1] == '/' ? pl - 1 : pl), r->url.path);
    char what[PROBE_URI_MAX + 16];
    struct probe_url mu = r->url;
    (void)base_str_copy(mu.path, sizeof(mu.path), path);
    char text[PROBE_URI_MAX];
    probe_url_format(text, sizeof(text), &mu);
    probe_fmt(what, sizeof(what), "GET %s", text);
    if (probe_http_exchange(c, &resp, r->err, sizeof(r->err), "GET", r->url.host, path, NULL, NULL,
                            NULL, 0) != 0) {
        char why[PROBE_TEXT_MAX];
        probe_fmt(why, sizeof(why), "%s: %s", what, r->err);
        return probe_step_fail(r->rep, s, NULL, why,
                               "the appliance took the connection but gave no metadata (raise "
                               "--timeout, or see its log)");
    }
    if (resp.status != 200) {
        return answered(r, s, what, &resp,
                        "--target-uri must be the CertProv service URL whose /mex serves the "
                        "metadata (https://POOL/CertProv/CertProvisioningService.svc); "
                        "--direct skips the metadata and the Web ticket");
    }
    if (probe_mex_certprov(md, r->err, sizeof(r->err), (const char *)resp.body, resp.body_len) !=
        0) {
        char why[PROBE_TEXT_MAX];
        probe_fmt(why, sizeof(why), "%s: %s", what, r->err);
        return probe_step_fail(r->rep, s, NULL, why,
                               "this is not a certprov (or Lync) CertProv metadata document: "
                               "check --target-uri");
    }
    char wt_mex[PROBE_URI_MAX + 8];
    probe_fmt(wt_mex, sizeof(wt_mex), "%s/mex", md->webticket_url);
    probe_fmt(what, sizeof(what), "GET %s", wt_mex);
    if (url_exchange(r, s, what, wt_mex, "GET", NULL, NULL, 0, &resp) != 0) {
        return -1;
    }
    if (resp.status != 200) {
        return answered(r, s, what, &resp,
                        "the CertProv metadata names this Web Ticket Service, which serves no "
                        "metadata: check [server] external_base_url");
    }
    if (probe_mex_port(pin_url, pin_url_len, (const char *)resp.body, resp.body_len,
                       PROBE_WT_PIN_PORT) != 0) {
        probe_fmt(r->err, sizeof(r->err),
                  "%s: no wsdl:port " PROBE_WT_PIN_PORT " with an http(s) "
                  "soap:address",
                  what);
        return probe_step_fail(r->rep, s, NULL, r->err,
                               "the Web Ticket Service offers no PIN sign-in: --direct signs in "
                               "with the PIN on CertProv");
    }
    probe_step_ok(r->rep, s, "GetAndPublishCert at %s; Web Ticket Service %s, PIN port %s",
                  md->proof_url, md->webticket_url, pin_url);
    return 0;
}

/* step_webticket asks the PIN port for a ticket for the Web ticket port (WS-Trust RST with the
 * UsernameToken, client entropy, Context) and derives the proof key from the RSTR. */
static int step_webticket(struct run *r, struct probe_ticket *t, const struct probe_metadata *md,
                          const char *pin_url)
{
    size_t s = probe_step_begin(r->rep, "webticket");
    static char req[PROBE_REQ_MAX];
    size_t req_len = 0;
    uint8_t entropy[32];
    uint8_t ctx_raw[16];
    char context[2 * sizeof(ctx_raw) + 8];
    RAND_bytes(entropy, sizeof(entropy));
    RAND_bytes(ctx_raw, sizeof(ctx_raw));
    size_t n = (size_t)snprintf(context, sizeof(context), "probe-");
    for (size_t i = 0; i < sizeof(ctx_raw); i++) {
        n += (size_t)snprintf(context + n, sizeof(context) - n, "%02x", ctx_raw[i]);
    }
    int rc = probe_rst_new(req, sizeof(req), &req_len, pin_url, md->proof_url, r->o->login,
                           r->o->pin, r->o->sip, entropy, sizeof(entropy), context);
    ASSERT(rc == 0); /* URLs, login, PIN and URI are bounded */
    struct probe_http resp = {.body = r->body};
    char what[PROBE_URI_MAX + 16];
    probe_fmt(what, sizeof(what), "RST to %s", pin_url);
    rc = url_exchange(r, s, what, pin_url, "POST",
                      "SOAPAction: \"http://docs.oasis-open.org/ws-sx/ws-trust/200512/RST/Issue\"",
                      req, req_len, &resp);
    OPENSSL_cleanse(req, sizeof(req));
    if (rc != 0) {
        goto out;
    }
    if (resp.status != 200) {
        char advice[PROBE_TEXT_MAX / 2];
        if (strstr(resp.diagnostics, "pin_locked") != NULL) {
            probe_fmt(advice, sizeof(advice),
                      "the user is locked out: certprovctl user unlock (or wait for the lock to "
                      "end)");
        } else if (strstr(resp.diagnostics, "entity_mismatch") != NULL) {
            probe_fmt(advice, sizeof(advice),
                      "--user-sip-address must be the URI of the user of that phone number or "
                      "extension: certprovctl user list");
        } else if (resp.status == 401 || resp.status == 403) {
            probe_fmt(advice, sizeof(advice),
                      "check the phone number or extension and the PIN: certprovctl user show "
                      "shows the user, certprovctl user set-pin sets a new PIN");
        } else {
            probe_fmt(advice, sizeof(advice),
                      "the appliance's log (journalctl -u certprovd) says what happened");
        }
        rc = answered(r, s, what, &resp, advice);
        goto out;
    }
    if (probe_rstr_parse(t, r->err, sizeof(r->err), (const char *)resp.body, resp.body_len, entropy,
                         sizeof(entropy), context) != 0) {
        char why[PROBE_TEXT_MAX];
        probe_fmt(why, sizeof(why), "%s: %s", what, r->err);
        rc = probe_step_fail(r->rep, s, NULL, why,
                             "the Web Ticket Service answered 200 with a ticket a phone cannot "
                             "use: a defect of the appliance (its log, then a bug report)");
        goto out;
    }
    if (strncmp(pin_url, "http://", 7) == 0) {
        probe_note(r->rep, "the Web Ticket Service's PIN port is plain http://: the PIN "
                           "travelled in clear");
    }
    probe_step_ok(r->rep, s,
                  "a ticket for %s by the PIN of %s, valid until %s, proof key of %zu "
                  "bits",
                  t->subject, r->o->login, t->not_on_or_after, t->proof_len * 8);
    rc = 0;
out:
    OPENSSL_cleanse(entropy, sizeof(entropy));
    return rc;
}

/* step_certprov sends GetAndPublishCert to the Web ticket port with the ticket and its proof. */
static int step_certprov(struct run *r, X509 **out, const struct probe_ticket *t,
                         const struct probe_metadata *md, const uint8_t *csr, size_t csr_len)
{
    size_t s = probe_step_begin(r->rep, "certprov");
    static char sec[PROBE_ASSERTION_MAX + 4096];
    static char req[PROBE_REQ_MAX];
    size_t sec_len = 0;
    size_t req_len = 0;
    const char *entity = sign_in_name(t->subject);
    if (probe_proof_security(sec, sizeof(sec), &sec_len, t, time(NULL)) != 0 ||
        soap_envelope(req, sizeof(req), &req_len, entity, csr, csr_len, NULL, NULL, sec) != 0) {
        return probe_step_fail(r->rep, s, NULL, "the ticket does not fit the request buffer",
                               "the appliance's assertion is over %u bytes", PROBE_ASSERTION_MAX);
    }
    struct probe_http resp = {.body = r->body};
    char what[PROBE_URI_MAX + 40];
    probe_fmt(what, sizeof(what), "GetAndPublishCert with the ticket to %s", md->proof_url);
    int rc = url_exchange(
        r, s, what, md->proof_url, "POST",
        "SOAPAction: \"http://schemas.microsoft.com/OCS/AuthWebServices/GetAndPublishCert\"", req,
        req_len, &resp);
    if (rc != 0) {
        return -1;
    }
    if (resp.status != 200) {
        return refused(r, s, &resp, what, t->subject, false, true);
    }
    X509 *x = probe_soap_cert((const char *)resp.body);
    if (x == NULL) {
        probe_fmt(r->err, sizeof(r->err), "%s: 200 without a readable certificate (%s)", what,
                  resp.content_type);
        return probe_step_fail(r->rep, s, "signing", r->err,
                               "the answer is not a GetAndPublishCertResponse with a certificate");
    }
    *out = x;
    probe_step_ok(r->rep, s, "%s (Entity %s, the proof over a fresh Timestamp): 200", what, entity);
    return 0;
}

/* phone_path: metadata, Web ticket, CSR and GetAndPublishCert; the URI the certificate must name
 * goes to want_uri (--user-sip-address, else the ticket's subject). */
static int phone_path(struct run *r, struct probe_conn *c, EVP_PKEY **key, X509 **cert,
                      char *want_uri, size_t want_uri_len)
{
    static struct probe_metadata md;
    static struct probe_ticket t;
    char pin_url[PROBE_URI_MAX];
    uint8_t csr[FLOW_CSR_MAX];
    size_t csr_len = 0;
    int rc = -1;
    if (step_metadata(r, c, &md, pin_url, sizeof(pin_url)) != 0) {
        goto out;
    }
    probe_conn_close(c);
    if (step_webticket(r, &t, &md, pin_url) != 0 ||
        step_csr(r, key, csr, &csr_len, r->o->key_type, sign_in_name(t.subject)) != 0 ||
        step_certprov(r, cert, &t, &md, csr, csr_len) != 0) {
        goto out;
    }
    (void)base_str_copy(want_uri, want_uri_len, r->o->sip != NULL ? r->o->sip : t.subject);
    rc = 0;
out:
    OPENSSL_cleanse(&t, sizeof(t));
    return rc;
}

int probe_bootstrap(struct probe_report *rep, const struct probe_options *o, uint8_t *body)
{
    struct run r;
    (void)run_start(&r, rep, o, body);
    struct probe_conn c = {0};
    EVP_PKEY *key = NULL;
    X509 *cert = NULL;
    uint8_t csr[FLOW_CSR_MAX];
    size_t csr_len = 0;
    int rc = -1;
    const char *cn = o->sip != NULL ? sign_in_name(o->sip) : NULL;
    char want[PROBE_URI_MAX] = "";
    if (step_dns(&r) != 0 || step_trust(&r) != 0 || step_connect_tls(&r, &c, NULL, NULL) != 0) {
        goto out;
    }
    if (!o->direct) {
        if (phone_path(&r, &c, &key, &cert, want, sizeof(want)) != 0) {
            goto out;
        }
    } else {
        if (step_csr(&r, &key, csr, &csr_len, o->key_type, cn) != 0) {
            goto out;
        }
        if (!r.url.tls) {
            probe_note(rep, "the target is plain http://: the PIN travelled in clear");
        }
        if (cn == NULL) {
            probe_note(rep, "no --user-sip-address: enrolled over EST simpleenroll with HTTP "
                            "Basic (SOAP needs the Entity); the CSR carries no CN");
        }
        size_t s = probe_step_begin(rep, "enroll");
        if (enroll(&r, &c, s, &cert, cn, csr, csr_len, true,
                   cn != NULL ? "SOAP GetAndPublishCert" : "EST simpleenroll") != 0) {
            goto out;
        }
        probe_step_ok(rep, s, "%s with the PIN of %s: 200",
                      cn != NULL ? "SOAP GetAndPublishCert" : "EST simpleenroll", o->login);
        if (o->sip != NULL) {
            (void)base_str_copy(want, sizeof(want), o->sip);
        }
    }
    probe_conn_close(&c);
    char serial[80] = "";
    if (step_certificate(&r, serial, sizeof(serial), cert, key, want[0] != '\0' ? want : NULL) !=
        0) {
        goto out;
    }
    (void)base_str_copy(rep->serial, sizeof(rep->serial), serial);
    if (!r.url.tls) {
        probe_note(rep, "the client-certificate step (renewal over mTLS) was skipped: the target "
                        "is plain http://, and client certificates need TLS (give the tls_listen "
                        "https:// URL)");
        probe_report_success(rep);
        rc = 0;
        goto out;
    }
    char uri[PROBE_URI_MAX];
    if (probe_cert_uri(uri, sizeof(uri), cert) != 0) {
        (void)base_str_copy(uri, sizeof(uri), cn != NULL ? cn : "");
    }
    if (step_renew(&r, cert, key, sign_in_name(uri), serial) != 0) {
        goto out;
    }
    probe_note(rep,
               "renewal over mTLS: SOAP GetAndPublishCert without a PIN, authenticated by "
               "the certificate %s just issued; the new one is %s",
               serial, r.renewed);
    probe_report_success(rep);
    rc = 0;
out:
    X509_free(cert);
    EVP_PKEY_free(key);
    probe_conn_close(&c);
    run_cleanup(&r);
    return rc;
}

/* load_credentials reads --cert (PEM, the first certificate) and --key (PEM). */
static int load_credentials(struct run *r, X509 **out_cert, EVP_PKEY **out_key)
{
    size_t s = probe_step_begin(r->rep, "credentials");
    STACK_OF(X509) *certs = NULL;
    int rc = probe_certs_read_file(&certs, r->o->cert);
    if (rc != 0) {
        probe_fmt(r->err, sizeof(r->err), "cannot read --cert %s: %s", r->o->cert,
                  rc == -EBADMSG ? "no PEM certificate in it" : strerror(-rc));
        return probe_step_fail(r->rep, s, NULL, r->err, "give --cert a PEM certificate");
    }
    *out_cert = sk_X509_shift(certs);
    sk_X509_pop_free(certs, X509_free);
    FILE *f = fopen(r->o->key, "re");
    EVP_PKEY *key = f != NULL ? PEM_read_PrivateKey(f, NULL, NULL, NULL) : NULL;
    int sys = errno;
    if (f != NULL) {
        fclose(f);
    }
    ERR_clear_error();
    if (key == NULL) {
        probe_fmt(r->err, sizeof(r->err), "cannot read --key %s: %s", r->o->key,
                  f == NULL ? strerror(sys) : "not a PEM private key (or an encrypted one)");
        return probe_step_fail(r->rep, s, NULL, r->err, "give --key the certificate's PEM key");
    }
    if (!X509_check_private_key(*out_cert, key)) {
        ERR_clear_error();
        EVP_PKEY_free(key);
        probe_fmt(r->err, sizeof(r->err), "--key %s is not the key of --cert %s", r->o->key,
                  r->o->cert);
        return probe_step_fail(r->rep, s, NULL, r->err,
                               "give the key the certificate was issued for");
    }
    *out_key = key;
    char subj[256];
    probe_name(subj, sizeof(subj), X509_get_subject_name(*out_cert));
    probe_step_ok(r->rep, s, "\"%s\" and its key", subj);
    return 0;
}

int probe_clientauth(struct probe_report *rep, const struct probe_options *o, uint8_t *body)
{
    struct run r;
    (void)run_start(&r, rep, o, body);
    X509 *cert = NULL;
    EVP_PKEY *key = NULL;
    int rc = -1;
    if (load_credentials(&r, &cert, &key) != 0 || step_dns(&r) != 0 || step_trust(&r) != 0) {
        goto out;
    }
    char uri[PROBE_URI_MAX];
    if (o->sip != NULL) {
        (void)base_str_copy(uri, sizeof(uri), o->sip);
    } else if (probe_cert_uri(uri, sizeof(uri), cert) != 0) {
        size_t s = probe_step_begin(rep, "clientauth");
        probe_step_fail(rep, s, NULL, "--cert carries no URI subjectAltName (the user)",
                        "give --user-sip-address, or a certificate this appliance issued");
        goto out;
    }
    if (step_renew(&r, cert, key, sign_in_name(uri), NULL) != 0) {
        goto out;
    }
    probe_note(rep,
               "renewal over mTLS: SOAP GetAndPublishCert without a PIN; the new certificate "
               "is %s",
               rep->serial);
    probe_report_success(rep);
    rc = 0;
out:
    X509_free(cert);
    EVP_PKEY_free(key);
    run_cleanup(&r);
    return rc;
}

int probe_chain(struct probe_report *rep, const struct probe_options *o, uint8_t *body)
{
    struct run r;
    (void)run_start(&r, rep, o, body);
    struct probe_conn c = {0};
    int rc = -1;
    if (step_dns(&r) != 0 || step_trust(&r) != 0) {
        goto out;
    }
    if (!r.url.tls) {
        size_t s = probe_step_begin(rep, "tls");
        probe_step_fail(rep, s, NULL, "the target is plain http://: there is no TLS chain",
                        "give the https:// URL of the appliance's tls_listen");
        goto out;
    }
    if (step_connect_tls(&r, &c, NULL, NULL) != 0) {
        goto out;
    }
    probe_report_success(rep);
    rc = 0;
out:
    probe_conn_close(&c);
    run_cleanup(&r);
    return rc;
}
