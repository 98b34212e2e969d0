/* Item slots and answers: the bottom of service/. An enrollment in flight is one struct
 * svc_item, taken from its ring's fixed pool and reset as a whole, so that nothing of one
 * request can carry into the next; it changes hands from the ring to the writer and back to
 * the pool, and svc_item_validate is asserted at each hand-over. Every answer the service sends
 * goes through svc_respond, the one place that talks to the engine's request. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/base.h"
#include "ioring/ioring.h"
#include "service/internal.h"

/* ---- item slots ---- */

void svc_item_validate(const struct service *svc, const struct svc_item *it)
{
    ASSERT(it != NULL);
    ASSERT(it->ring < svc->num_rings);
    ASSERT((unsigned)it->route < SVC_ROUTE_MAX_);
    ASSERT(it->num_candidates <= SVC_CANDIDATES_MAX);
    for (size_t i = 0; i < it->num_candidates; i++) {
        ASSERT(memchr(it->candidates[i].uri, '\0', sizeof(it->candidates[i].uri)) != NULL);
        ASSERT(it->candidates[i].uri[0] != '\0');
    }
    if (!it->signin) {
        ASSERT(it->num_candidates == 0);
        ASSERT(!it->proceed);
    }
    if (it->cert_auth) {
        ASSERT(it->signin);
        ASSERT(it->num_candidates == 0);
    }
    if (it->proceed) {
        ASSERT(it->signin);
        ASSERT(it->user.uri[0] != '\0');
    }
    if (it->sign_rc != -1) {
        ASSERT(it->proceed); /* only a sign-in that proceeds is signed */
    }
    ASSERT(it->csr_der_len <= sizeof(it->csr_der));
    ASSERT(it->der_len <= sizeof(it->der));
    ASSERT(memchr(it->reason, '\0', sizeof(it->reason)) != NULL);
    ASSERT(memchr(it->user.uri, '\0', sizeof(it->user.uri)) != NULL);
    ASSERT(memchr(it->client, '\0', sizeof(it->client)) != NULL);
    ASSERT(memchr(it->login, '\0', sizeof(it->login)) != NULL);
    ASSERT(memchr(it->device_id, '\0', sizeof(it->device_id)) != NULL);
    if (it->failed) {
        ASSERT((unsigned)it->fail < SIGNER_CODE_MAX_);
        ASSERT((unsigned)it->why < SIGNER_REASON_MAX_);
        ASSERT(it->fail == signer_reason_code(it->why));
    }
    if (it->sign_rc == 0) {
        ASSERT(it->der_len > 0);
    }
}

void svc_item_reset(struct svc_item *it, uint32_t ring)
{
    ASSERT(it != NULL);
    /* Every field before the buffers at once (a field added later is reset too); the buffers,
     * 20 KiB read only up to their lengths (reset here), are not: zeroing them was 1 % of a
     * ring's time. */
    memset(it, 0, offsetof(struct svc_item, csr_der));
    it->ring = ring;
    it->route = SVC_ROUTE_OTHER;
    it->sign_rc = -1;
}

struct svc_item *svc_item_take(struct service *svc, uint32_t ring)
{
    ASSERT(ring < svc->num_rings);
    struct svc_ring *r = &svc->rings[ring];
    base_mutex_lock(&r->lock);
    struct svc_item *it = r->num_free > 0 ? r->free[--r->num_free] : NULL;
    base_mutex_unlock(&r->lock);
    if (it != NULL) {
        ASSERT(it->ring == ring);
        svc_item_reset(it, ring);
    }
    return it;
}

void svc_item_release(struct service *svc, struct svc_item *it)
{
    svc_item_validate(svc, it);
    struct svc_ring *r = &svc->rings[it->ring];
    it->req = NULL;
    base_mutex_lock(&r->lock);
    ASSERT(r->num_free < r->cap);
    r->free[r->num_free++] = it;
    base_mutex_unlock(&r->lock);
}

uint32_t svc_items_free(struct service *svc, uint32_t ring)
{
    ASSERT(ring < svc->num_rings);
    struct svc_ring *r = &svc->rings[ring];
    base_mutex_lock(&r->lock);
    uint32_t n = r->num_free;
    base_mutex_unlock(&r->lock);
    return n;
}

void svc_item_stage(struct service *svc, struct svc_item *it, enum svc_stage stage, uint64_t ns)
{
    ASSERT((unsigned)stage < SVC_STAGE_MAX_);
    uint64_t us = ns / 1000;
    it->stage_us[stage] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
    svc_metrics_stage(svc, stage, ns);
}

void svc_item_fail(struct svc_item *it, enum signer_reason why, const char *text)
{
    ASSERT(text != NULL);
    it->failed = true;
    it->why = why;
    it->fail = signer_reason_code(why);
    (void)base_str_copy(it->reason, sizeof(it->reason), text); /* cut to fit: a text */
}

/* ---- answers ---- */

void svc_respond(struct service *svc, struct ioring_request *req, int status, const char *type,
                 const char *headers, const char *body, size_t len)
{
    ASSERT(status >= 100 && status <= 599);
    if (svc->respond != NULL) {
        svc->respond(svc->respond_ctx, req, status, type, headers, body, len);
        return;
    }
    (void)ioring_request_respond(req, status, type, headers, body, len);
}

void svc_respond_body(struct service *svc, struct ioring_request *req, int status, const char *type,
                      struct ioring_body *body)
{
    ASSERT(status >= 100 && status <= 599);
    ASSERT(body != NULL);
    if (svc->respond != NULL) { /* the tests' seam takes bytes */
        svc->respond(svc->respond_ctx, req, status, type, NULL, (const char *)body->data,
                     body->len);
        ioring_body_put(body);
        return;
    }
    (void)ioring_request_respond_body(req, status, type, NULL, body);
}

void svc_item_soap_reply(struct signer_soap_reply *out, const struct svc_item *it)
{
    *out = (struct signer_soap_reply){
        .request_id = it->request_id, .context = it->context, .soap12 = it->soap12};
}

bool svc_soap12_requested(struct ioring_request *req)
{
    static const char want[] = "application/soap+xml";
    size_t len = 0;
    const char *h = ioring_request_header_get(req, "Content-Type", &len);
    while (h != NULL && len > 0 && (*h == ' ' || *h == '\t')) {
        h++, len--;
    }
    return h != NULL && len >= strlen(want) && strncasecmp(h, want, strlen(want)) == 0 &&
           (len == strlen(want) || h[strlen(want)] == ';' || h[strlen(want)] == ' ');
}

void svc_respond_error(struct service *svc, struct ioring_request *req, enum svc_route route,
                       enum signer_reason why, const char *reason, uint32_t retry_after_s,
                       const struct signer_soap_reply *soap, char *scratch, size_t scratch_cap)
{
    char headers[768];
    char retry[48] = "";
    char diag[512];
    size_t diag_len = 0;
    size_t body_len = 0;
    enum signer_code code = signer_reason_code(why);
    unsigned status = signer_error_status(code);
    int rc = signer_diagnostics_format(diag, sizeof(diag), &diag_len, why, svc->cfg->name, reason);
    ASSERT(rc == 0);
    if (retry_after_s == 0 && status == 503) {
        retry_after_s = 1;
    }
    if (retry_after_s != 0) {
        (void)snprintf(retry, sizeof(retry), "Retry-After: %u\r\n", retry_after_s);
    }
    /* [MS-OCAUTHWS] §1.5: a CertProv 401 names the Web Ticket Service, so that a client that
     * skipped the metadata finds it. */
    bool wt_url = route == SVC_ROUTE_SOAP && status == 401;
    int n = snprintf(headers, sizeof(headers), "X-Ms-diagnostics: %s\r\n%s%s%s%s%s", diag,
                     code == SIGNER_CODE_AUTHENTICATION_FAILED
                         ? "WWW-Authenticate: Basic realm=\"certprov\"\r\n"
                         : "",
                     wt_url ? "X-MS-WebTicketURL: " : "", wt_url ? svc->wt_url : "",
                     wt_url ? "\r\n" : "", retry);
    ASSERT(n > 0);
    ASSERT((size_t)n < sizeof(headers));
    const char *type = "text/plain; charset=utf-8";
    if (route == SVC_ROUTE_SOAP) {
        struct signer_soap_reply none = {0};
        const struct signer_soap_reply *reply = soap != NULL ? soap : &none;
        rc = signer_soap_reply_error(scratch, scratch_cap, &body_len, code, reason, reply);
        type = signer_soap_content_type(reply->soap12);
    } else if (route == SVC_ROUTE_WEBTICKET) {
        /* [MS-OCAUTHWS] §2.2.4.1: a SOAP fault with OCSDiagnosticsFaultType; the ErrorId is the
         * X-Ms-diagnostics one. */
        size_t ct_len = 0;
        const char *ct = ioring_request_header_get(req, "Content-Type", &ct_len);
        bool soap12 = ct != NULL && memmem(ct, ct_len, "soap+xml", 8) != NULL;
        rc = signer_wt_fault(scratch, scratch_cap, &body_len, soap12, status,
                             (unsigned)strtoul(diag, NULL, 10), reason);
        type = soap12 ? "application/soap+xml; charset=utf-8" : "text/xml; charset=utf-8";
    } else {
        rc = signer_est_error_body(scratch, scratch_cap, &body_len, code, reason);
    }
    ASSERT(rc == 0);
    svc_metrics_request(svc, route, (int)code);
    svc_respond(svc, req, (int)status, type, headers, scratch, body_len);
}
