/* The enrollment service: routes, authentication, the per-ring batch and the group-commit writer.
 * See the "enrollment service" section of signer.h for the flow and its invariants. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/base64.h>
#include <openssl/mem.h>

#include "base/base.h"
#include "ioring/ioring.h"
#include "signer/internal.h"

/* ---- item slots ---- */

struct svc_item *svc_item_take(struct svc_ring *r)
{
    pthread_mutex_lock(&r->lock);
    struct svc_item *it = r->num_free > 0 ? r->free[--r->num_free] : NULL;
    pthread_mutex_unlock(&r->lock);
    if (it != NULL) {
        ASSERT(it->req == NULL);
    }
    return it;
}

void svc_item_release(struct signer_service *svc, struct svc_item *it)
{
    ASSERT(it->ring < svc->num_rings);
    struct svc_ring *r = &svc->rings[it->ring];
    it->req = NULL;
    pthread_mutex_lock(&r->lock);
    ASSERT(r->num_free < r->cap);
    r->free[r->num_free++] = it;
    pthread_mutex_unlock(&r->lock);
}

/* ---- responses ---- */

/* svc_respond_error answers `req` with the error `code` and `reason` in the route's format:
 * SOAP (ErrorInfo body + X-Ms-diagnostics), EST (text/plain "CODE: reason"), or plain text. */
void svc_respond_error(struct signer_service *svc, struct ioring_request *req, enum svc_route route,
                       enum signer_code code, const char *reason, const char *request_id,
                       char *scratch, size_t scratch_cap)
{
    char headers[768];
    char diag[512];
    size_t diag_len = 0;
    size_t body_len = 0;
    unsigned status = signer_error_status(code);
    int rc = signer_diagnostics_format(diag, sizeof(diag), &diag_len, code, svc->cfg->name, reason);
    ASSERT(rc == 0);
    int n = snprintf(headers, sizeof(headers), "X-Ms-diagnostics: %s\r\n%s%s", diag,
                     code == SIGNER_CODE_AUTHENTICATION_FAILED
                         ? "WWW-Authenticate: Basic realm=\"certprov\"\r\n"
                         : "",
                     status == 503 ? "Retry-After: 1\r\n" : "");
    ASSERT(n > 0 && (size_t)n < sizeof(headers));
    const char *type = "text/plain; charset=utf-8";
    if (route == SVC_ROUTE_SOAP) {
        rc = signer_soap_error_response(scratch, scratch_cap, &body_len, code, reason, request_id);
        type = "text/xml; charset=utf-8";
    } else {
        rc = signer_est_error_body(scratch, scratch_cap, &body_len, code, reason);
    }
    ASSERT(rc == 0);
    svc_metrics_request(svc, route, (int)code);
    (void)ioring_request_respond(req, (int)status, type, headers, scratch, body_len);
}

static void respond_text(struct signer_service *svc, struct ioring_request *req,
                         enum svc_route route, int status, const char *type, const char *body,
                         size_t len)
{
    svc_log_simple(req, route, status);
    svc_metrics_request(svc, route, status == 200 ? SVC_RESULT_OK : SVC_RESULT_NOT_FOUND);
    (void)ioring_request_respond(req, status, type, NULL, body, len);
}

/* ---- routes ---- */

static enum svc_route route_of(const char *method, const char *target, size_t len, bool *post)
{
    static const struct {
        const char *path;
        enum svc_route route;
    } routes[] = {
        {"/CertProv/CertProvisioningService.svc", SVC_ROUTE_SOAP},
        {"/CertProv/CertProvisioningService.svc/WebTicket_Proof", SVC_ROUTE_SOAP},
        {"/.well-known/est/simpleenroll", SVC_ROUTE_EST_ENROLL},
        {"/.well-known/est/simplereenroll", SVC_ROUTE_EST_REENROLL},
        {"/.well-known/est/cacerts", SVC_ROUTE_EST_CACERTS},
        {"/CertProv/chain.pem", SVC_ROUTE_CHAIN},
        {"/healthz", SVC_ROUTE_HEALTHZ},
        {"/readyz", SVC_ROUTE_READYZ},
        {"/metrics", SVC_ROUTE_METRICS},
    };
    const char *q = memchr(target, '?', len);
    size_t path_len = q != NULL ? (size_t)(q - target) : len;
    *post = strcmp(method, "POST") == 0;
    for (size_t i = 0; i < ARRAY_LEN(routes); i++) {
        if (strlen(routes[i].path) == path_len &&
            strncasecmp(routes[i].path, target, path_len) == 0) {
            return routes[i].route;
        }
    }
    return SVC_ROUTE_OTHER;
}

static bool route_wants_post(enum svc_route route)
{
    return route == SVC_ROUTE_SOAP || route == SVC_ROUTE_EST_ENROLL ||
           route == SVC_ROUTE_EST_REENROLL;
}

void signer_service_handle(void *ctx, struct ioring_request *req)
{
    struct signer_service *svc = ctx;
    size_t target_len = 0;
    const char *target = ioring_request_target(req, &target_len);
    const char *method = ioring_request_method(req);
    bool post = false;
    enum svc_route route = route_of(method, target, target_len, &post);
    bool get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
    if (route == SVC_ROUTE_OTHER) {
        respond_text(svc, req, route, 404, "text/plain", "not found\n", 10);
    } else if (route_wants_post(route) ? !post : !get) {
        respond_text(svc, req, route, 405, "text/plain", "method not allowed\n", 19);
    } else if (route == SVC_ROUTE_SOAP || route == SVC_ROUTE_EST_ENROLL) {
        svc_enroll(svc, req, route);
    } else if (route == SVC_ROUTE_EST_REENROLL) {
        /* Renewal is authenticated by the client certificate, which needs TLS (a later issue):
         * on plain HTTP there is none. */
        char scratch[512];
        svc_respond_error(svc, req, route, SIGNER_CODE_AUTHENTICATION_FAILED,
                          "simplereenroll needs a TLS client certificate issued by this "
                          "appliance",
                          NULL, scratch, sizeof(scratch));
    } else if (route == SVC_ROUTE_CHAIN) {
        respond_text(svc, req, route, 200, "application/x-pem-file", svc->chain_pem,
                     svc->chain_pem_len);
    } else if (route == SVC_ROUTE_EST_CACERTS) {
        respond_text(svc, req, route, 200, "application/pkcs7-mime", svc->cacerts,
                     svc->cacerts_len);
    } else if (route == SVC_ROUTE_HEALTHZ) {
        respond_text(svc, req, route, 200, "text/plain", "ok\n", 3);
    } else {
        svc_respond_status(svc, req, route);
    }
}

/* ---- the engine's own refusals ---- */

uint8_t signer_service_classify(void *ctx, const char *target, size_t target_len)
{
    (void)ctx;
    if (target == NULL) {
        return 0;
    }
    bool post = false;
    /* Route + 1: hint 0 means the target was not read yet. */
    return (uint8_t)(route_of("POST", target, target_len, &post) + 1);
}

size_t signer_service_canned(void *ctx, char *out, size_t cap, uint16_t status, uint8_t hint,
                             bool close, uint32_t retry_after_s)
{
    struct signer_service *svc = ctx;
    enum signer_code code;
    const char *reason;
    if (status == 400) {
        code = SIGNER_CODE_BAD_REQUEST;
        reason = "The HTTP request is malformed";
    } else if (status == 413 || status == 414 || status == 431) {
        code = SIGNER_CODE_TOO_LARGE;
        reason = "The request is larger than this appliance accepts (max_request_bytes)";
    } else if (status == 503) {
        code = SIGNER_CODE_OVERLOADED;
        reason = "The appliance is at capacity; retry after the Retry-After delay";
    } else {
        return 0;
    }
    enum svc_route route =
        hint == 0 || hint > SVC_ROUTE_MAX_ ? SVC_ROUTE_OTHER : (enum svc_route)(hint - 1);
    char body[1536];
    char diag[400];
    size_t body_len = 0;
    size_t diag_len = 0;
    int rc = route == SVC_ROUTE_SOAP
                 ? signer_soap_error_response(body, sizeof(body), &body_len, code, reason, NULL)
                 : signer_est_error_body(body, sizeof(body), &body_len, code, reason);
    if (rc != 0 || signer_diagnostics_format(diag, sizeof(diag), &diag_len, code, svc->cfg->name,
                                             reason) != 0) {
        return 0;
    }
    char retry[40] = "";
    if (status == 503) {
        (void)snprintf(retry, sizeof(retry), "Retry-After: %u\r\n", retry_after_s);
    }
    int n =
        snprintf(out, cap,
                 "HTTP/1.1 %u %s\r\nContent-Type: %s\r\nX-Ms-diagnostics: %s\r\n%s"
                 "Content-Length: %zu\r\nConnection: %s\r\n\r\n",
                 status, ioring_status_reason(status),
                 route == SVC_ROUTE_SOAP ? "text/xml; charset=utf-8" : "text/plain; charset=utf-8",
                 diag, retry, body_len, close ? "close" : "keep-alive");
    if (n < 0 || (size_t)n + body_len > cap) {
        return 0;
    }
    memcpy(out + n, body, body_len);
    svc_metrics_request(svc, route, (int)code);
    return (size_t)n + body_len;
}

/* ---- the batch: sign at the end of each ring loop turn ---- */

void signer_service_turn_end(void *ctx, uint32_t ring_index)
{
    struct signer_service *svc = ctx;
    ASSERT(ring_index < svc->num_rings);
    struct svc_ring *r = &svc->rings[ring_index];
    while (r->num_pending > 0) {
        size_t n = r->num_pending < HSM_BATCH_MAX ? r->num_pending : HSM_BATCH_MAX;
        struct svc_item **items = r->pending + (r->num_pending - n);
        uint64_t t0 = clock_mono_ns();
        svc_sign_items(svc, r->issue, items, n);
        svc_metrics_stage(svc, SVC_STAGE_SIGN, clock_mono_ns() - t0);
        svc_metrics_batch(svc, n);
        svc_writer_push(svc, items, n);
        r->num_pending -= n;
    }
}

/* svc_sign_items signs `items` in one batch, using `scratch` (HSM_BATCH_MAX issues) because
 * signer_issue_batch wants them side by side; the results are copied back into the items. */
void svc_sign_items(struct signer_service *svc, struct signer_issue *scratch,
                    struct svc_item **items, size_t n)
{
    ASSERT(n <= HSM_BATCH_MAX);
    struct svc_item *signing[HSM_BATCH_MAX];
    size_t m = 0;
    int64_t now = clock_real_s();
    for (size_t i = 0; i < n; i++) {
        if (items[i]->failed) {
            continue; /* a failed sign-in waiting for its lockout update */
        }
        signing[m] = items[i];
        scratch[m++] = (struct signer_issue){.csr = &items[i]->csr,
                                             .uri = items[i]->user.uri,
                                             .hours = items[i]->hours,
                                             .now_s = now};
    }
    if (m == 0) {
        return;
    }
    int rc = signer_issue_batch(svc->ca, &svc->cfg->profile, scratch, m);
    for (size_t i = 0; i < m; i++) {
        struct svc_item *it = signing[i];
        it->sign_rc = rc == -EAGAIN ? -EAGAIN : scratch[i].rc;
        if (it->sign_rc != 0) {
            continue;
        }
        memcpy(it->serial, scratch[i].serial, sizeof(it->serial));
        it->not_before_s = scratch[i].not_before_s;
        it->not_after_s = scratch[i].not_after_s;
        it->issued_at_s = scratch[i].now_s;
        it->der_len = scratch[i].der_len;
        memcpy(it->der, scratch[i].der, scratch[i].der_len);
    }
}

/* ---- lifecycle ---- */

static int load_ca_material(struct signer_service *svc)
{
    const char *dir = svc->cfg->store_path;
    size_t pem_len = 0;
    const char *pem = signer_ca_get_chain_pem(svc->ca, &pem_len);
    if (pem_len >= sizeof(svc->chain_pem)) {
        return -E2BIG;
    }
    memcpy(svc->chain_pem, pem, pem_len);
    svc->chain_pem_len = pem_len;
    static const char *const files[] = {"ca/issuing.crt", "ca/root.crt"};
    uint8_t der[2][SIGNER_CERT_DER_MAX];
    struct signer_est_cert certs[2];
    for (size_t i = 0; i < 2; i++) {
        char path[SIGNER_PATH_MAX + 32];
        size_t len = 0;
        snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
        int rc = signer_pem_read_cert(der[i], sizeof(der[i]), &len, path, 0);
        if (rc != 0) {
            log_err("signer: ca_read_failed path=%s rc=%d", path, rc);
            return rc;
        }
        certs[i] = (struct signer_est_cert){.der = der[i], .der_len = len};
    }
    return signer_est_certs_only(svc->cacerts, sizeof(svc->cacerts), &svc->cacerts_len, certs, 2);
}

static int rings_init(struct signer_service *svc, uint32_t rings, uint32_t per_ring)
{
    svc->rings = calloc(rings, sizeof(*svc->rings));
    svc->num_rings = rings;
    if (svc->rings == NULL) {
        return -ENOMEM;
    }
    for (uint32_t i = 0; i < rings; i++) {
        struct svc_ring *r = &svc->rings[i];
        r->cap = per_ring;
        r->items = calloc(per_ring, sizeof(*r->items));
        r->free = calloc(per_ring, sizeof(*r->free));
        r->pending = calloc(per_ring, sizeof(*r->pending));
        r->issue = calloc(HSM_BATCH_MAX, sizeof(*r->issue));
        r->soap = calloc(1, sizeof(*r->soap));
        if (r->items == NULL || r->free == NULL || r->pending == NULL || r->issue == NULL ||
            r->soap == NULL) {
            return -ENOMEM;
        }
        pthread_mutex_init(&r->lock, NULL);
        for (uint32_t j = 0; j < per_ring; j++) {
            r->items[j].ring = i;
            r->free[r->num_free++] = &r->items[per_ring - 1 - j];
        }
    }
    return 0;
}

int signer_service_new(struct signer_service **out, const struct signer_service_options *opt)
{
    ASSERT(out != NULL);
    ASSERT(opt != NULL);
    if (opt->rings == 0 || opt->items_per_ring == 0 || opt->items_per_ring > SVC_ITEMS_MAX) {
        return -EINVAL;
    }
    struct signer_service *svc = calloc(1, sizeof(*svc));
    if (svc == NULL) {
        return -ENOMEM;
    }
    svc_metrics_init(&svc->metrics);
    svc->cfg = opt->cfg;
    svc->st = opt->st;
    svc->ca = opt->ca;
    svc->pin_key = opt->pin_key;
    svc->pub = opt->pub;
    int rc = rings_init(svc, opt->rings, opt->items_per_ring);
    if (rc == 0) {
        rc = load_ca_material(svc);
    }
    if (rc == 0) {
        rc = svc_writer_start(svc, opt->rings * opt->items_per_ring);
    }
    if (rc != 0) {
        signer_service_free(svc);
        return rc;
    }
    *out = svc;
    return 0;
}

void signer_service_set_engine(struct signer_service *svc, struct ioring_engine *eng)
{
    ASSERT(svc != NULL);
    atomic_store(&svc->eng, eng);
}

void signer_service_free(struct signer_service *svc)
{
    if (svc == NULL) {
        return;
    }
    svc_writer_stop(svc);
    for (uint32_t i = 0; svc->rings != NULL && i < svc->num_rings; i++) {
        struct svc_ring *r = &svc->rings[i];
        if (r->items != NULL) {
            OPENSSL_cleanse(r->items, r->cap * sizeof(*r->items));
            pthread_mutex_destroy(&r->lock);
        }
        free(r->items);
        free(r->free);
        free(r->pending);
        free(r->issue);
        free(r->soap);
    }
    free(svc->rings);
    free(svc);
}
