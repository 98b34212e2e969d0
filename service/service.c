/* The top of service/: routes, the engine's callbacks (handle, turn end, classify, canned
 * refusals) and the service's lifecycle. service.h describes the flow and its invariants. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/base.h"
#include "ioring/ioring.h"
#include "service/internal.h"

static void respond_text(struct service *svc, struct ioring_request *req, enum svc_route route,
                         int status, const char *type, const char *body, size_t len)
{
    svc_log_simple(req, route, status);
    svc_metrics_request(svc, route, status == 200 ? SVC_RESULT_OK : SVC_RESULT_NOT_FOUND);
    svc_respond(svc, req, status, type, NULL, body, len);
}

/* ---- routes ---- */

enum svc_route svc_route_of(const char *method, const char *target, size_t len, bool *post)
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
        {"/CertProv/crl", SVC_ROUTE_CRL},
        {"/CertProv/ocsp", SVC_ROUTE_OCSP},
    };
    const char *q = memchr(target, '?', len);
    size_t path_len = q != NULL ? (size_t)(q - target) : len;
    *post = strcmp(method, "POST") == 0;
    /* Service metadata: <service>/mex, and GET <service>?wsdl (README, Endpoints); before the
     * paths below, which ignore the query. */
    static const char *const services[] = {SIGNER_CERTPROV_PATH, SIGNER_WEBTICKET_PATH};
    for (size_t i = 0; i < ARRAY_LEN(services); i++) {
        size_t n = strlen(services[i]);
        if (path_len < n || strncasecmp(target, services[i], n) != 0) {
            continue;
        }
        if ((path_len == n + 4 && strncasecmp(target + n, "/mex", 4) == 0) ||
            (!*post && path_len == n && q != NULL && len - path_len == 5 &&
             strncasecmp(q, "?wsdl", 5) == 0)) {
            return SVC_ROUTE_MEX;
        }
    }
    for (size_t i = 0; i < ARRAY_LEN(routes); i++) {
        if (strlen(routes[i].path) == path_len &&
            strncasecmp(routes[i].path, target, path_len) == 0) {
            return routes[i].route;
        }
    }
    static const char ocsp_get[] = "/CertProv/ocsp/"; /* + the request: RFC 6960 A.1 */
    if (path_len > sizeof(ocsp_get) - 1 &&
        strncasecmp(target, ocsp_get, sizeof(ocsp_get) - 1) == 0) {
        return SVC_ROUTE_OCSP;
    }
    /* The Web Ticket Service and every port under it ([MS-OCAUTHWS] §3.2; webticket.c tells the
     * ports apart and refuses the ones it does not serve). */
    static const char wt[] = "/WebTicket/WebTicketService.svc";
    if (path_len >= sizeof(wt) - 1 && strncasecmp(target, wt, sizeof(wt) - 1) == 0 &&
        (path_len == sizeof(wt) - 1 || target[sizeof(wt) - 1] == '/')) {
        return SVC_ROUTE_WEBTICKET;
    }
    return SVC_ROUTE_OTHER;
}

static bool route_wants_post(enum svc_route route)
{
    return route == SVC_ROUTE_SOAP || route == SVC_ROUTE_EST_ENROLL ||
           route == SVC_ROUTE_EST_REENROLL || route == SVC_ROUTE_WEBTICKET;
}

void service_handle(void *ctx, struct ioring_request *req)
{
    struct service *svc = ctx;
    size_t target_len = 0;
    const char *target = ioring_request_target(req, &target_len);
    const char *method = ioring_request_method(req);
    bool post = false;
    enum svc_route route = svc_route_of(method, target, target_len, &post);
    bool get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
    if (route == SVC_ROUTE_OTHER) {
        respond_text(svc, req, route, 404, "text/plain", "not found\n", 10);
    } else if (route == SVC_ROUTE_OCSP && (get || post)) {
        svc_revoke_ocsp(svc, req, post);
    } else if (route == SVC_ROUTE_MEX && (get || post)) {
        svc_mex_serve(svc, req, post);
    } else if (route_wants_post(route) ? !post : !get) {
        respond_text(svc, req, route, 405, "text/plain", "method not allowed\n", 19);
    } else if (route == SVC_ROUTE_SOAP || route == SVC_ROUTE_EST_ENROLL ||
               route == SVC_ROUTE_EST_REENROLL) {
        svc_enroll(svc, req, route);
    } else if (route == SVC_ROUTE_WEBTICKET) {
        svc_webticket(svc, req);
    } else if (route == SVC_ROUTE_CHAIN) {
        respond_text(svc, req, route, 200, "application/x-pem-file", svc->chain_pem,
                     svc->chain_pem_len);
    } else if (route == SVC_ROUTE_EST_CACERTS) {
        respond_text(svc, req, route, 200, "application/pkcs7-mime", svc->cacerts,
                     svc->cacerts_len);
    } else if (route == SVC_ROUTE_HEALTHZ) {
        respond_text(svc, req, route, 200, "text/plain", "ok\n", 3);
    } else if (route == SVC_ROUTE_CRL) {
        svc_revoke_crl(svc, req);
    } else {
        svc_respond_status(svc, req, route);
    }
}

/* ---- the engine's own refusals ---- */

uint8_t service_classify(void *ctx, const char *target, size_t target_len)
{
    (void)ctx;
    if (target == NULL) {
        return 0;
    }
    bool post = false;
    /* Route + 1: hint 0 means the target was not read yet. */
    return (uint8_t)(svc_route_of("POST", target, target_len, &post) + 1);
}

size_t service_canned(void *ctx, char *out, size_t cap, uint16_t status, uint8_t hint, bool close,
                      uint32_t retry_after_s)
{
    struct service *svc = ctx;
    enum signer_reason why;
    const char *reason;
    if (status == 400) {
        why = SIGNER_REASON_REQUEST_MALFORMED;
        reason = "The HTTP request is malformed";
    } else if (status == 413 || status == 414 || status == 431) {
        why = SIGNER_REASON_TOO_LARGE;
        reason = "The request is larger than this appliance accepts (max_request_bytes)";
    } else if (status == 503) {
        why = SIGNER_REASON_OVERLOADED;
        reason = "The appliance is at capacity; retry after the Retry-After delay";
    } else {
        return 0;
    }
    enum signer_code code = signer_reason_code(why);
    enum svc_route route =
        hint == 0 || hint > SVC_ROUTE_MAX_ ? SVC_ROUTE_OTHER : (enum svc_route)(hint - 1);
    /* The engine's refusals are counted (/metrics); a line each only at debug level: at info a
     * flood of bad requests would be a flood of lines. The engine does not say the client here. */
    log_write(LOG_LEVEL_DEBUG, "signer: engine_refusal route=%s status=%u code=%s reason=%s",
              svc_route_name(route), (unsigned)status, signer_code_name(code),
              signer_reason_token(why));
    char body[1536];
    char diag[400];
    size_t body_len = 0;
    size_t diag_len = 0;
    int rc = route == SVC_ROUTE_SOAP
                 ? signer_soap_error_response(body, sizeof(body), &body_len, code, reason, NULL)
                 : signer_est_error_body(body, sizeof(body), &body_len, code, reason);
    if (rc != 0 || signer_diagnostics_format(diag, sizeof(diag), &diag_len, why, svc->cfg->name,
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

bool service_turn_end(void *ctx, uint32_t ring_index)
{
    struct service *svc = ctx;
    ASSERT(ring_index < svc->num_rings);
    struct svc_ring *r = &svc->rings[ring_index];
    if (svc_signpool_active(svc)) {
        /* A key that blocks (PKCS#11): the pool's threads sign and push to the writer. */
        if (r->num_pending > 0) {
            svc_signpool_push(svc, r->pending, r->num_pending);
            r->num_pending = 0;
        }
        return false;
    }
    if (r->num_pending == 0) {
        return false;
    }
    /* One slice, the oldest first: the writer judges sign-ins in queue order (invariant 8), so a
     * guess that arrived first is judged first. The rest waits for the next turn, after the ring
     * has sent the answers that became durable meanwhile. */
    size_t n = r->num_pending < SVC_TURN_SLICE ? r->num_pending : SVC_TURN_SLICE;
    struct svc_item **items = r->pending;
    uint64_t t0 = clock_mono_ns();
    svc_sign_items(svc, r->issue, items, n);
    uint64_t dt = clock_mono_ns() - t0;
    svc_metrics_stage(svc, SVC_STAGE_SIGN, dt);
    for (size_t i = 0; i < n; i++) { /* the batch's time is each item's: they wait for it */
        items[i]->stage_us[SVC_STAGE_SIGN] =
            (uint32_t)(dt / 1000 > UINT32_MAX ? UINT32_MAX : dt / 1000);
    }
    svc_metrics_batch(svc, n);
    svc_writer_push(svc, items, n);
    r->num_pending -= n;
    memmove(r->pending, r->pending + n, r->num_pending * sizeof(r->pending[0]));
    return r->num_pending > 0;
}

/* ---- lifecycle ---- */

/* ca_cert_note records one certificate of the chain for /metrics (certprov_ca_expiry_seconds). */
static void ca_cert_note(struct service *svc, const char *role, const struct signer_der *d)
{
    struct signer_cert_info info;
    if (svc->num_ca_certs == ARRAY_LEN(svc->ca_certs) ||
        signer_cert_info_der(&info, d->der, d->der_len) != 0) {
        return;
    }
    struct svc_ca_cert *c = &svc->ca_certs[svc->num_ca_certs++];
    c->role = role;
    memcpy(c->subject, info.subject, sizeof(c->subject));
    c->not_after_s = info.not_after_s;
}

/* load_tls_leaf notes the TLS server certificate (the first of tls/server.crt) for /metrics; a
 * store without one (tests) is not an error here: certprovd checked it before. */
static void load_tls_leaf(struct service *svc, struct signer_cert_set *set)
{
    char path[SERVICE_PATH_MAX + 32];
    if (signer_file_path(path, sizeof(path), svc->cfg->store_path, SIGNER_FILE_SERVER_CRT) == 0 &&
        signer_cert_set_read(set, path) == 0) {
        ca_cert_note(svc, "tls", &set->certs[0]);
    }
}

/* load_ca_material points at the CA chain (chain.pem: issuing, the enterprise's intermediates,
 * root), served as /CertProv/chain.pem, and builds the EST cacerts answer from the same
 * certificates, so that both serve exactly the chain that goes with the handshake. */
static int load_ca_material(struct service *svc)
{
    svc->chain_pem = signer_ca_get_chain_pem(svc->ca, &svc->chain_pem_len);
    struct signer_cert_set *set = malloc(sizeof(*set));
    if (set == NULL) {
        return -ENOMEM;
    }
    load_tls_leaf(svc, set);
    int rc = signer_cert_set_parse(set, svc->chain_pem, svc->chain_pem_len);
    if (rc != 0) {
        log_err("service: ca_chain_damaged rc=%d", rc);
        free(set);
        return rc;
    }
    struct signer_est_cert certs[SIGNER_CHAIN_MAX];
    for (size_t i = 0; i < set->num; i++) {
        certs[i] =
            (struct signer_est_cert){.der = set->certs[i].der, .der_len = set->certs[i].der_len};
        bool root = i + 1 == set->num && i > 0 && signer_cert_self_signed(&set->certs[i]);
        ca_cert_note(svc, i == 0 ? "issuing" : root ? "root" : "intermediate", &set->certs[i]);
    }
    rc = signer_est_certs_only(svc->cacerts, sizeof(svc->cacerts), &svc->cacerts_len, certs,
                               set->num);
    /* Kept for the SOAP answers' PKCS#7 of the chain (the issued certificate goes first). */
    svc->chain_set = set;
    if (set->num <= ARRAY_LEN(svc->chain_certs)) {
        memcpy(svc->chain_certs, certs, set->num * sizeof(certs[0]));
        svc->num_chain = set->num;
    }
    return rc;
}

static int rings_init(struct service *svc, uint32_t rings, uint32_t per_ring)
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
        int rc = pthread_mutex_init(&r->lock, NULL);
        if (rc != 0) {
            return -rc;
        }
        r->lock_init = true;
        for (uint32_t j = 0; j < per_ring; j++) {
            svc_item_reset(&r->items[j], i);
            r->free[r->num_free++] = &r->items[per_ring - 1 - j];
        }
    }
    return 0;
}

int service_new(struct service **out, const struct service_options *opt)
{
    ASSERT(out != NULL);
    ASSERT(opt != NULL);
    if (opt->rings == 0 || opt->items_per_ring == 0 || opt->items_per_ring > SVC_ITEMS_MAX) {
        return -EINVAL;
    }
    struct service *svc = calloc(1, sizeof(*svc));
    if (svc == NULL) {
        return -ENOMEM;
    }
    svc_metrics_init(&svc->metrics);
    svc->cfg = opt->cfg;
    svc->st = opt->st;
    svc->start_s = clock_real_s();
    svc->ca = opt->ca;
    svc->pin_key = opt->pin_key;
    svc->pub = opt->pub;
    svc->dir = opt->dir;
    svc->probe_ms = opt->store_probe_ms != 0 ? opt->store_probe_ms : SVC_STORE_PROBE_MS;
    int rc = rings_init(svc, opt->rings, opt->items_per_ring);
    if (rc == 0) {
        rc = load_ca_material(svc);
    }
    if (rc == 0) {
        rc = svc_webticket_init(svc);
    }
    if (rc == 0) {
        rc = svc_ocsp_init(svc);
    }
    if (rc == 0) {
        rc = svc_mex_init(svc);
    }
    if (rc == 0) {
        rc = svc_revoke_start(svc);
    }
    if (rc == 0) {
        rc = svc_writer_start(svc, opt->rings * opt->items_per_ring);
    }
    if (rc == 0) {
        rc = svc_signpool_start(svc, opt->rings * opt->items_per_ring);
    }
    if (rc != 0) {
        service_free(svc);
        return rc;
    }
    *out = svc;
    return 0;
}

void service_set_engine(struct service *svc, struct ioring_engine *eng)
{
    ASSERT(svc != NULL);
    atomic_store(&svc->eng, eng);
}

void service_free(struct service *svc)
{
    if (svc == NULL) {
        return;
    }
    svc_signpool_stop(svc); /* first: its threads push to the writer */
    svc_writer_stop(svc);
    svc_revoke_stop(svc);
    svc_ocsp_free(svc);
    svc_mex_free(svc);
    svc_webticket_free(svc);
    for (uint32_t i = 0; svc->rings != NULL && i < svc->num_rings; i++) {
        struct svc_ring *r = &svc->rings[i];
        if (r->items != NULL) {
            signer_secret_wipe(r->items, r->cap * sizeof(*r->items));
        }
        if (r->lock_init) {
            int rc = pthread_mutex_destroy(&r->lock);
            ASSERT(rc == 0);
        }
        free(r->items);
        free(r->free);
        free(r->pending);
        free(r->issue);
        free(r->soap);
    }
    free(svc->rings);
    free(svc->chain_set);
    free(svc);
}
