/* The Web Ticket Service ([MS-OCAUTHWS] §3.2) and CertProv's side of Web tickets (§3.1, the
 * WebTicket_Proof port): ports, sign-in, the replay set, the RSTR. The XML and the cryptography
 * are signer/'s (webticket.c, wsse.c).
 *
 * Ports (PROTOCOL-NOTES §2.5; the port URLs are ours, the mex WSDL names them):
 *   /WebTicket/WebTicketService.svc/Auth   PIN: a WS-Security UsernameToken, phone number or
 *                                          extension + PIN (WebTicketServicePin)
 *   /WebTicket/WebTicketService.svc/Cert   a client certificate this appliance issued, over TLS
 *                                          (WebTicketServiceCert)
 *   /WebTicket/WebTicketService.svc        either, by what the request carries
 *   anything else (Anon, WinNegotiate, ...) refused: webticket_port_refused.
 * A PIN sign-in goes the way of every PIN sign-in: svc_authenticate on the ring, then the writer's
 * judgement (lockout, same answers, nothing answered before it is judged); the item is a
 * `ticket` item: it is never signed by the batch, and once judged the writer answers it with the
 * ticket (svc_webticket_respond) instead of a certificate. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/base.h"
#include "ioring/ioring.h"
#include "service/internal.h"

#define WT_PATH "/WebTicket/WebTicketService.svc"
#define REPLAY_PROBE 32 /* slots looked at per insert: a full neighbourhood is a 503 */

struct replay_slot {
    uint8_t key[16];
    int64_t until_s; /* 0: free */
};

struct svc_wt {
    struct signer_wt_issuer *iss; /* NULL: no tickets (an Ed25519 CA key) */
    const char *names[SIGNER_TLS_NAMES_MAX];
    size_t num_names;
    char url[SIGNER_WT_URL_MAX + 1];
    pthread_mutex_t mu; /* the replay set: every ring */
    bool mu_init;
    struct replay_slot *slots;
    size_t mask; /* slots - 1, a power of two >= 2 x replay_max */
};

static void make_url(struct svc_wt *wt, const struct service_config *cfg)
{
    bool tls = cfg->tls_listen[0] != '\0';
    const char *l = tls ? cfg->tls_listen : cfg->listen;
    const char *colon = strrchr(l, ':');
    const char *port = colon != NULL ? colon + 1 : "";
    bool dflt = port[0] == '\0' || strcmp(port, tls ? "443" : "80") == 0;
    (void)snprintf(wt->url, sizeof(wt->url), "%s://%s%s%s" WT_PATH, tls ? "https" : "http",
                   cfg->name, dflt ? "" : ":", dflt ? "" : port);
}

int svc_webticket_init(struct service *svc)
{
    struct svc_wt *wt = calloc(1, sizeof(*wt));
    if (wt == NULL) {
        return -ENOMEM;
    }
    svc->wt = wt;
    signer_xml_init(); /* libxml2, once, before the rings start */
    service_config_tls_names(svc->cfg, wt->names, &wt->num_names);
    make_url(wt, svc->cfg);
    size_t n = 1024;
    while (n < 2 * (size_t)svc->cfg->webticket_replay_max) {
        n *= 2;
    }
    wt->slots = calloc(n, sizeof(*wt->slots));
    if (wt->slots == NULL) {
        return -ENOMEM;
    }
    wt->mask = n - 1;
    int rc = pthread_mutex_init(&wt->mu, NULL);
    if (rc != 0) {
        return -rc;
    }
    wt->mu_init = true;
    if (svc->ca == NULL || svc->pin_key == NULL) {
        return 0; /* tests without a CA: no tickets */
    }
    rc = signer_wt_issuer_new(&wt->iss, svc->ca, svc->pin_key, wt->url);
    if (rc == -ENOTSUP) {
        log_warn("service: webticket_unavailable reason=ca_key_type");
        rc = 0;
    }
    return rc;
}

void svc_webticket_free(struct service *svc)
{
    struct svc_wt *wt = svc->wt;
    if (wt == NULL) {
        return;
    }
    signer_wt_issuer_free(wt->iss);
    if (wt->mu_init) {
        int rc = pthread_mutex_destroy(&wt->mu);
        ASSERT(rc == 0);
    }
    free(wt->slots);
    free(wt);
    svc->wt = NULL;
}

const char *svc_webticket_url(const struct service *svc)
{
    return svc->wt != NULL ? svc->wt->url : "";
}

/* replay_add remembers (key) until `until_s`. Returns 0, -EEXIST (seen and still live) or -EBUSY
 * (the slots it may use are all live: the set is full there). Any ring. */
static int replay_add(struct svc_wt *wt, const uint8_t key[16], int64_t until_s, int64_t now)
{
    uint64_t h = 0;
    memcpy(&h, key, sizeof(h));
    size_t free_at = SIZE_MAX;
    int rc = -EBUSY;
    base_mutex_lock(&wt->mu);
    for (size_t i = 0; i < REPLAY_PROBE; i++) {
        struct replay_slot *s = &wt->slots[(h + i) & wt->mask];
        bool live = s->until_s > now;
        if (live && memcmp(s->key, key, 16) == 0) {
            rc = -EEXIST;
            break;
        }
        if (!live && free_at == SIZE_MAX) {
            free_at = (h + i) & wt->mask;
        }
    }
    if (rc != -EEXIST && free_at != SIZE_MAX) {
        memcpy(wt->slots[free_at].key, key, 16);
        wt->slots[free_at].until_s = until_s;
        rc = 0;
    }
    base_mutex_unlock(&wt->mu);
    return rc;
}

bool svc_webticket_signin(struct service *svc, struct svc_item *it, const uint8_t *body,
                          size_t len)
{
    struct svc_wt *wt = svc->wt;
    if (wt == NULL || wt->iss == NULL || memmem(body, len, "Assertion", 9) == NULL) {
        return false; /* cheap: no assertion, no ticket (signer_wt_verify says the same) */
    }
    struct signer_wt_proof p;
    char reason[SIGNER_REASON_MAX];
    int64_t now = clock_real_s();
    int rc = signer_wt_verify(wt->iss, &p, reason, body, len, svc->cfg->max_request_bytes, now,
                              wt->names, wt->num_names);
    if (rc == -ENOENT) {
        return false;
    }
    if (rc != 0) {
        svc_item_fail(it, rc == -EPERM ? SIGNER_REASON_TICKET_INVALID
                                       : SIGNER_REASON_REQUEST_MALFORMED,
                      reason);
        return true;
    }
    /* The identity is the ticket's; the user must still exist and not be disabled. */
    rc = store_user_get(svc->st, &it->user, p.uri);
    if (rc != 0) {
        svc_item_fail(it,
                      rc == -ENOENT ? SIGNER_REASON_TICKET_INVALID
                                    : SIGNER_REASON_DIRECTORY_UNREADABLE,
                      rc == -ENOENT ? "The ticket's user no longer exists"
                                    : "the user directory cannot be read");
        return true;
    }
    if (svc_user_disabled(svc, it->user.uri)) {
        svc_item_fail(it, SIGNER_REASON_USER_DISABLED, "The ticket's user is disabled");
        return true;
    }
    rc = replay_add(wt, p.replay_key, p.replay_until_s, now);
    if (rc == -EEXIST) {
        svc_item_fail(it, SIGNER_REASON_TICKET_REPLAYED,
                      "This ticket and Timestamp were already used: sign a new Timestamp");
        return true;
    }
    if (rc == -EBUSY) {
        svc_item_fail(it, SIGNER_REASON_OVERLOADED,
                      "Too many recent ticket sign-ins to remember; retry after the Retry-After "
                      "delay");
        return true;
    }
    (void)base_str_copy(it->login, sizeof(it->login), "ticket");
    it->signin = true;
    it->cert_auth = true; /* no PIN: nothing for the writer to judge */
    it->proceed = true;
    return true;
}

enum port {
    PORT_ANY,
    PORT_PIN,
    PORT_CERT,
    PORT_OTHER,
};

static enum port port_of(struct ioring_request *req)
{
    size_t len = 0;
    const char *t = ioring_request_target(req, &len);
    const char *q = memchr(t, '?', len);
    size_t path_len = q != NULL ? (size_t)(q - t) : len;
    size_t base = sizeof(WT_PATH) - 1;
    ASSERT(path_len >= base);
    const char *rest = t + base;
    size_t rest_len = path_len - base;
    if (rest_len == 0) {
        return PORT_ANY;
    }
    if (rest_len == 5 && strncasecmp(rest, "/Auth", 5) == 0) {
        return PORT_PIN;
    }
    if (rest_len == 5 && strncasecmp(rest, "/Cert", 5) == 0) {
        return PORT_CERT;
    }
    return PORT_OTHER;
}

/* claim_check: the user URI claim, when present, must be the signed-in user ("The SIP URI in the
 * claim type requirements ... does not match the SIP URI associated with the presented
 * credentials", PROTOCOL-NOTES §4). After a right PIN it is answered by the writer. */
static void claim_check(struct svc_item *it)
{
    if (it->wt.claim_uri[0] == '\0') {
        return;
    }
    if (strcasecmp(signer_uri_sign_in_name(it->wt.claim_uri),
                   signer_uri_sign_in_name(it->user.uri)) != 0) {
        svc_item_fail(it, SIGNER_REASON_ENTITY_MISMATCH,
                      "The SIP URI in the ticket request's claims does not match the user of the "
                      "presented credentials");
    }
}

static void answer_at_once(struct service *svc, struct svc_item *it)
{
    char scratch[2048];
    svc_log_request(svc, it, NULL);
    svc_respond_error(svc, it->req, it->route, it->why, it->reason, it->retry_after_s, NULL,
                      scratch, sizeof(scratch));
    svc_item_release(svc, it);
}

/* signin_by_port signs the ticket request in by its port's credential. */
static void signin_by_port(struct service *svc, struct svc_item *it, struct ioring_request *req,
                           struct svc_credentials *c, enum port port)
{
    bool tls = ioring_request_tls(req) != IORING_TLS_NONE;
    if (port == PORT_OTHER) {
        svc_item_fail(it, SIGNER_REASON_WEBTICKET_PORT,
                      "This Web Ticket Service port is not offered: use " WT_PATH
                      "/Auth (phone number or extension + PIN) or " WT_PATH
                      "/Cert (client certificate)");
    } else if (c->present && port != PORT_CERT) {
        svc_authenticate(svc, it, c->user, c->pin);
    } else if (tls && port != PORT_PIN) {
        svc_cert_signin(svc, it, req);
    } else {
        svc_item_fail(it, SIGNER_REASON_CREDENTIALS_MISSING,
                      port == PORT_CERT ? "No client certificate: this port signs in with a TLS "
                                          "client certificate this appliance issued"
                                        : "Anonymous requests get no ticket: send a WS-Security "
                                          "UsernameToken (phone number or extension + PIN)");
    }
}

void svc_webticket(struct service *svc, struct ioring_request *req)
{
    uint32_t ring = ioring_request_ring(req);
    ASSERT(ring < svc->num_rings);
    struct svc_ring *r = &svc->rings[ring];
    struct svc_item *it = svc_item_take(svc, ring);
    if (it == NULL) {
        char scratch[2048];
        svc_log_refusal(req, SVC_ROUTE_WEBTICKET, SIGNER_REASON_OVERLOADED);
        svc_respond_error(svc, req, SVC_ROUTE_WEBTICKET, SIGNER_REASON_OVERLOADED,
                          "Too many requests in flight; retry after the Retry-After delay", 0,
                          NULL, scratch, sizeof(scratch));
        return;
    }
    it->req = req;
    it->route = SVC_ROUTE_WEBTICKET;
    it->ticket = true;
    it->tls = ioring_request_tls(req);
    it->start_ns = clock_mono_ns();
    if (ioring_request_client_format(req, it->client, sizeof(it->client)) != 0) {
        (void)base_str_copy(it->client, sizeof(it->client), "-");
    }
    struct svc_credentials c = {0};
    size_t len = 0;
    const uint8_t *body = ioring_request_body(req, &len);
    char reason[SIGNER_REASON_MAX];
    uint64_t t0 = clock_mono_ns();
    int rc = signer_wt_request_parse(&it->wt, c.user, sizeof(c.user), c.pin, sizeof(c.pin),
                                     &c.present, reason, body, len, svc->cfg->max_request_bytes);
    svc_item_stage(svc, it, SVC_STAGE_PARSE, clock_mono_ns() - t0);
    if (rc != 0) {
        svc_item_fail(it, rc == -E2BIG ? SIGNER_REASON_TOO_LARGE : SIGNER_REASON_REQUEST_MALFORMED,
                      reason);
    } else if (svc->wt->iss == NULL) {
        svc_item_fail(it, SIGNER_REASON_INTERNAL,
                      "This appliance cannot sign Web tickets with its CA key type (Ed25519)");
    } else {
        t0 = clock_mono_ns();
        signin_by_port(svc, it, req, &c, port_of(req));
        svc_item_stage(svc, it, SVC_STAGE_AUTH, clock_mono_ns() - t0);
    }
    signer_secret_wipe(&c, sizeof(c));
    if (it->proceed && !it->failed) {
        claim_check(it);
    }
    if (!it->signin) {
        answer_at_once(svc, it);
        return;
    }
    /* A sign-in: the writer judges it first, in queue order (like every enrollment). */
    ASSERT(r->num_pending < r->cap);
    r->pending[r->num_pending++] = it;
}

void svc_webticket_respond(struct service *svc, struct svc_item *it)
{
    ASSERT(it->ticket);
    ASSERT(!it->failed);
    ASSERT(it->proceed);
    size_t len = 0;
    uint64_t t0 = clock_mono_ns();
    int rc = signer_wt_issue(svc->wt->iss, svc->scratch, SVC_RESPONSE_MAX, &len, &it->wt,
                             it->user.uri, it->cert_auth, clock_real_s(),
                             svc->cfg->webticket_lifetime_h * 3600u);
    svc_item_stage(svc, it, SVC_STAGE_SIGN, clock_mono_ns() - t0);
    if (rc != 0) {
        svc_item_fail(it,
                      rc == -EAGAIN ? SIGNER_REASON_SIGNING_UNAVAILABLE
                                    : SIGNER_REASON_SIGNING_FAILED,
                      rc == -EAGAIN ? "The key backend cannot sign now" : "Signing failed");
        svc_log_request(svc, it, NULL);
        svc_respond_error(svc, it->req, it->route, it->why, it->reason, it->retry_after_s, NULL,
                          svc->scratch, SVC_RESPONSE_MAX);
        return;
    }
    svc_log_request(svc, it, NULL);
    svc_metrics_request(svc, it->route, SVC_RESULT_OK);
    svc_respond(svc, it->req, 200,
                it->wt.soap12 ? "application/soap+xml; charset=utf-8" : "text/xml; charset=utf-8",
                NULL, svc->scratch, len);
}
