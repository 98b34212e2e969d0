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
                          "Too many requests in flight; retry after the Retry-After delay", 0, NULL,
                          scratch, sizeof(scratch));
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
    } else if (!svc_webticket_available(svc)) {
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
