/* An enrollment on its ring thread: parse, look up the sign-in's candidates, check the CSR,
 * then wait in the ring's batch (service_turn_end) for signing and the writer's group commit.
 * Requests that fail before credentials are read are answered at once; every sign-in goes to the
 * writer, which judges it against the pending lockout state before anything about it is
 * answered (a CSR error too: answered at once it would reveal a right PIN unchecked). */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "base/base.h"
#include "ioring/ioring.h"
#include "service/internal.h"

int svc_basic_auth(struct svc_credentials *c, const char *h, size_t len)
{
    ASSERT(c != NULL);
    ASSERT(h != NULL || len == 0);
    ASSERT(!c->present);
    if (len < 6 || strncasecmp(h, "Basic ", 6) != 0) {
        return -EBADMSG;
    }
    const char *b64 = h + 6;
    size_t b64_len = len - 6;
    while (b64_len > 0 && b64[0] == ' ') {
        b64++;
        b64_len--;
    }
    uint8_t dec[SVC_BASIC_MAX];
    size_t dec_len = 0;
    /* Over SVC_BASIC_MAX bytes (-E2BIG) is as malformed as bad base64: either way -EBADMSG. */
    bool decoded =
        signer_base64_decode(dec, sizeof(dec), &dec_len, b64, b64_len, SIGNER_BASE64_STRICT) == 0;
    int rc = -EBADMSG;
    if (decoded) {
        const uint8_t *colon = memchr(dec, ':', dec_len);
        size_t ulen = colon != NULL ? (size_t)(colon - dec) : 0;
        size_t plen = colon != NULL ? dec_len - ulen - 1 : 0;
        if (colon != NULL && ulen > 0 && ulen < sizeof(c->user) && plen < sizeof(c->pin) &&
            memchr(dec, '\0', dec_len) == NULL) {
            memcpy(c->user, dec, ulen);
            c->user[ulen] = '\0';
            memcpy(c->pin, colon + 1, plen);
            c->pin[plen] = '\0';
            c->present = true;
            rc = 0;
        }
    }
    signer_secret_wipe(dec, sizeof(dec));
    ASSERT(rc != 0 || c->present);
    return rc;
}

/* basic_auth reads "Authorization: Basic base64(user:pin)" of `req`. Returns 0 (absent:
 * !present) or -EBADMSG for a malformed header. */
static int basic_auth(struct svc_credentials *c, struct ioring_request *req)
{
    size_t len = 0;
    const char *h = ioring_request_header_get(req, "Authorization", &len);
    if (h == NULL) {
        return 0;
    }
    return svc_basic_auth(c, h, len);
}

/* lookup_login finds the users of the login `user`: as typed (an extension, or a phone number
 * in its stored form) and, when it reads as a phone number in another form ("tel:+1...",
 * "+1 (425) 555-0100", a national number with [pin] default_country_code), in its E.164 form
 * (signer_phone_e164, README, Authentication). Whether the second lookup runs depends on the
 * login's text alone, never on who exists. Returns store_user_lookup's code. */
static int lookup_login(struct service *svc, struct store_user *cands, size_t *n, const char *user)
{
    int rc = store_user_lookup(svc->st, cands, SVC_CANDIDATES_MAX, n, user);
    char e164[STORE_PHONE_MAX + 1];
    if (rc != 0 ||
        signer_phone_e164(e164, sizeof(e164), user, svc->cfg->pin.default_country_code) != 0 ||
        strcmp(e164, user) == 0) {
        return rc;
    }
    struct store_user more[SVC_CANDIDATES_MAX];
    size_t m = 0;
    rc = store_user_lookup(svc->st, more, SVC_CANDIDATES_MAX, &m, e164);
    for (size_t i = 0; rc == 0 && i < m && *n < SVC_CANDIDATES_MAX; i++) {
        bool dup = false;
        for (size_t j = 0; j < *n && !dup; j++) {
            dup = strcmp(cands[j].uri, more[i].uri) == 0;
        }
        if (!dup) {
            cands[(*n)++] = more[i];
        }
    }
    signer_secret_wipe(more, sizeof(more)); /* PIN verifiers */
    return rc;
}

/* svc_authenticate records the candidates of the login `user` and whether `pin` matched each. It
 * always computes SVC_CANDIDATES_MAX verifiers (dummies for missing candidates), so an unknown
 * number costs what a wrong PIN costs, and it reads lockout state only for a matching PIN. Going
 * on with a user whose committed state is open is an optimisation (no CSR check nor signature for
 * the rest): the writer's judgement decides. */
void svc_authenticate(struct service *svc, struct svc_item *it, const char *user, const char *pin)
{
    static const uint8_t dummy[STORE_VERIFIER_LEN];
    struct store_user cands[SVC_CANDIDATES_MAX];
    size_t n = 0;
    ASSERT(!it->signin);
    (void)base_str_copy(it->login, sizeof(it->login), user); /* the log line's login= */
    if (lookup_login(svc, cands, &n, user) != 0) {
        svc_item_fail(it, SIGNER_REASON_DIRECTORY_UNREADABLE, "the user directory cannot be read");
        return;
    }
    ASSERT(n <= SVC_CANDIDATES_MAX);
    it->signin = true;
    it->num_candidates = n;
    for (size_t i = 0; i < SVC_CANDIDATES_MAX; i++) {
        bool ok = i < n ? signer_pin_matches(svc->pin_key, cands[i].pin_verifier, cands[i].uri, pin)
                        : signer_pin_matches(svc->pin_key, dummy, "sip:", pin);
        if (i < n) {
            struct svc_candidate *c = &it->candidates[i];
            memcpy(c->uri, cands[i].uri, sizeof(c->uri));
            c->pin_len = cands[i].pin_len;
            c->pin_ok = ok;
        }
    }
    int64_t now = clock_real_s();
    for (size_t i = 0; i < n && !it->proceed; i++) {
        struct store_lockout l;
        if (it->candidates[i].pin_ok && store_lockout_get(svc->st, &l, cands[i].uri) == 0 &&
            signer_lockout_check(&l, now) == SIGNER_LOCKOUT_OPEN &&
            !svc_user_disabled(svc, cands[i].uri)) {
            it->user = cands[i];
            it->proceed = true;
        }
    }
}

/* cert_reason says why a client certificate cannot sign in (README, TLS and renewal). */
static enum signer_reason cert_reason(enum ioring_cert_state st)
{
    switch (st) {
    case IORING_CERT_NONE:
        return SIGNER_REASON_CLIENT_CERT_REQUIRED;
    case IORING_CERT_EXPIRED:
        return SIGNER_REASON_CLIENT_CERT_EXPIRED;
    default:
        return SIGNER_REASON_CLIENT_CERT_UNTRUSTED;
    }
}

static const char *cert_text(enum ioring_cert_state st)
{
    switch (st) {
    case IORING_CERT_NONE:
        return "No credentials: send a TLS client certificate this appliance issued, HTTP Basic "
               "or a UsernameToken";
    case IORING_CERT_EXPIRED:
        return "The client certificate has expired or is not yet valid: enroll with the PIN";
    default:
        return "The client certificate was not issued by this appliance's CA";
    }
}

/* cert_signin signs the request in with its TLS client certificate (API.md §1 way 3, RFC 7030
 * §4.2.2): one this appliance's issuing CA issued (verified in the handshake), within its
 * validity now (a resumed session keeps the first handshake's verdict), naming a user that still
 * exists. The identity is the certificate's URI, never the CSR's. A refusal costs no PIN and
 * counts toward no lockout: it is answered at once (it->signin stays false). */
void svc_cert_signin(struct service *svc, struct svc_item *it, struct ioring_request *req)
{
    const uint8_t *der = NULL;
    size_t len = 0;
    enum ioring_cert_state st = ioring_request_client_cert(req, &der, &len);
    if (st != IORING_CERT_OK) {
        svc_item_fail(it, cert_reason(st), cert_text(st));
        return;
    }
    char uri[STORE_URI_MAX + 1];
    int rc = signer_client_cert_identity(uri, sizeof(uri), der, len, clock_real_s());
    if (rc == -EKEYEXPIRED) {
        svc_item_fail(it, SIGNER_REASON_CLIENT_CERT_EXPIRED, cert_text(IORING_CERT_EXPIRED));
        return;
    }
    if (rc != 0) {
        svc_item_fail(it, SIGNER_REASON_CLIENT_CERT_NO_USER,
                      "The client certificate names no user (one URI subjectAltName)");
        return;
    }
    rc = store_user_get(svc->st, &it->user, uri);
    if (rc != 0) {
        svc_item_fail(it,
                      rc == -ENOENT ? SIGNER_REASON_CLIENT_CERT_NO_USER
                                    : SIGNER_REASON_DIRECTORY_UNREADABLE,
                      rc == -ENOENT ? "The user of the client certificate no longer exists"
                                    : "the user directory cannot be read");
        return;
    }
    if (svc_revoke_refuses(svc, it, der, len)) {
        return;
    }
    it->signin = true;
    it->cert_auth = true;
    it->proceed = true;
}

/* parse_soap fills the item and the credentials from a CertProv request. On failure the item is
 * failed (answered at once by the caller). */
static void parse_soap(struct service *svc, struct svc_ring *r, struct svc_item *it,
                       struct svc_credentials *c, const uint8_t *body, size_t len)
{
    struct signer_soap_request *s = r->soap;
    enum signer_code code = SIGNER_CODE_BAD_REQUEST;
    char reason[SIGNER_REASON_MAX];
    if (signer_soap_parse(s, &code, reason, body, len, svc->cfg->max_request_bytes) != 0) {
        svc_item_fail(it, signer_code_reason(code), reason);
        return;
    }
    (void)base_str_copy(it->request_id, sizeof(it->request_id), s->request_id);
    (void)base_str_copy(it->context, sizeof(it->context), s->context);
    it->soap12 = s->soap12; /* the envelope's version, whatever the Content-Type said */
    if (base_str_copy(it->device_id, sizeof(it->device_id), s->device_id) != 0) {
        svc_item_fail(it, SIGNER_REASON_DEVICE_ID_INVALID, "DeviceId is too long");
        return;
    }
    it->hours = s->lifetime_hours;
    memcpy(it->csr_der, s->csr_der, s->csr_der_len);
    it->csr_der_len = s->csr_der_len;
    if (!c->present && s->has_username_token) {
        if (base_str_copy(c->user, sizeof(c->user), s->username) != 0 ||
            base_str_copy(c->pin, sizeof(c->pin), s->password) != 0) {
            svc_item_fail(it, SIGNER_REASON_CREDENTIALS_MALFORMED, "UsernameToken is too long");
            return;
        }
        c->present = true;
    }
}

static void parse_est(struct svc_item *it, const uint8_t *body, size_t len)
{
    enum signer_reject reject = SIGNER_REJECT_NONE;
    if (signer_csr_decode(it->csr_der, sizeof(it->csr_der), &it->csr_der_len, &reject, body, len) !=
        0) {
        svc_item_fail(it, signer_reject_reason(reject), signer_reject_text(reject));
    }
}

/* check_entity: the SOAP Entity must name the authenticated user (invariant 3). */
static void check_entity(struct svc_item *it, const char *entity)
{
    const char *want = signer_uri_sign_in_name(it->user.uri);
    const char *got = signer_uri_sign_in_name(entity);
    if (strcasecmp(want, got) != 0) {
        svc_item_fail(it, SIGNER_REASON_ENTITY_MISMATCH,
                      signer_reject_text(SIGNER_REJECT_IDENTITY_ENTITY));
    }
}

void svc_check_csr(struct service *svc, struct svc_item *it)
{
    enum signer_reject reject = SIGNER_REJECT_NONE;
    uint64_t t0 = clock_mono_ns();
    if (signer_csr_parse(&it->csr, &reject, it->csr_der, it->csr_der_len) != 0 ||
        signer_csr_verify(&it->csr, &reject) != 0 ||
        signer_identity_check(&it->csr, &reject, it->user.uri) != 0) {
        svc_item_fail(it, signer_reject_reason(reject), signer_reject_text(reject));
    }
    svc_item_stage(svc, it, SVC_STAGE_VERIFY, clock_mono_ns() - t0);
}

/* item_start fills what the item knows of its request; svc_item_take reset the rest. */
static void item_start(struct svc_item *it, struct ioring_request *req, enum svc_route route)
{
    it->req = req;
    it->route = route;
    it->tls = ioring_request_tls(req);
    it->start_ns = clock_mono_ns();
    if (ioring_request_client_format(req, it->client, sizeof(it->client)) != 0) {
        (void)base_str_copy(it->client, sizeof(it->client), "-");
    }
}

/* answer_now answers a failed item at once and releases it. */
static void answer_now(struct service *svc, struct svc_item *it)
{
    char scratch[2048];
    svc_log_request(svc, it, NULL);
    struct signer_soap_reply reply;
    svc_item_soap_reply(&reply, it);
    svc_respond_error(svc, it->req, it->route, it->why, it->reason, it->retry_after_s, &reply,
                      scratch, sizeof(scratch));
    svc_item_release(svc, it);
}

void svc_enroll(struct service *svc, struct ioring_request *req, enum svc_route route)
{
    uint32_t ring = ioring_request_ring(req);
    ASSERT(ring < svc->num_rings);
    struct svc_ring *r = &svc->rings[ring];
    struct svc_item *it = svc_item_take(svc, ring);
    if (it == NULL) {
        char scratch[2048];
        struct signer_soap_reply reply = {.soap12 = svc_soap12_requested(req)};
        svc_log_refusal(req, route, SIGNER_REASON_OVERLOADED);
        svc_respond_error(svc, req, route, SIGNER_REASON_OVERLOADED,
                          "Too many enrollments in flight; retry after the Retry-After delay", 0,
                          &reply, scratch, sizeof(scratch));
        return;
    }
    item_start(it, req, route);
    it->soap12 = route == SVC_ROUTE_SOAP && svc_soap12_requested(req); /* until the envelope says */
    struct svc_credentials c = {0};
    size_t len = 0;
    const uint8_t *body = ioring_request_body(req, &len);
    uint64_t t0 = clock_mono_ns();
    /* simplereenroll is the client certificate's alone (RFC 7030 §4.2.2); elsewhere a PIN wins
     * over a certificate presented beside it. */
    bool reenroll = route == SVC_ROUTE_EST_REENROLL;
    /* A Web ticket in the wsse:Security header ([MS-OCAUTHWS] §3.1, webticket.c) is the
     * credential: Basic or a UsernameToken beside it is not read. */
    if (route == SVC_ROUTE_SOAP && svc_webticket_signin(svc, it, body, len)) {
        c.present = true;
        if (!it->failed) {
            parse_soap(svc, r, it, &c, body, len);
        }
    } else if (!reenroll && basic_auth(&c, req) != 0) {
        svc_item_fail(it, SIGNER_REASON_CREDENTIALS_MALFORMED,
                      "The Authorization header is malformed");
    } else if (route == SVC_ROUTE_SOAP) {
        parse_soap(svc, r, it, &c, body, len);
    } else {
        parse_est(it, body, len);
    }
    if (!it->failed && !c.present) {
        bool cert = reenroll || ioring_request_tls(req) != IORING_TLS_NONE;
        if (cert) {
            svc_cert_signin(svc, it, req);
        } else {
            svc_item_fail(it, SIGNER_REASON_CREDENTIALS_MISSING,
                          "No credentials: send HTTP Basic or a WS-Security UsernameToken");
        }
    }
    svc_item_stage(svc, it, SVC_STAGE_PARSE, clock_mono_ns() - t0);
    if (!it->failed && !it->cert_auth) {
        t0 = clock_mono_ns();
        svc_authenticate(svc, it, c.user, c.pin);
        svc_item_stage(svc, it, SVC_STAGE_AUTH, clock_mono_ns() - t0);
    }
    signer_secret_wipe(&c, sizeof(c));
    if (it->proceed && route == SVC_ROUTE_SOAP) {
        check_entity(it, r->soap->entity);
    }
    signer_soap_request_cleanup(r->soap);
    if (it->proceed && !it->failed) {
        svc_check_csr(svc, it);
    }
    /* RFC 7030 §4.2.2: a renewal's CSR carries the certificate's subject (check_csr made sure it
     * names no one else). */
    if (reenroll && it->proceed && !it->failed && it->csr.num_subject_cns == 0) {
        svc_item_fail(
            it, SIGNER_REASON_SUBJECT_MISMATCH,
            "simplereenroll: the CSR's subject must be the certificate's (CN=sign-in name)");
    }
    if (!it->signin) {
        answer_now(svc, it); /* failed before any credentials were checked */
        return;
    }
    /* A sign-in, whatever the ring found: the writer judges it first, in queue order. */
    ASSERT(r->num_pending < r->cap);
    r->pending[r->num_pending++] = it;
}
