/* mex: the service metadata on the wire (README, Endpoints): GET <service>/mex and <service>?wsdl
 * answer the WSDL, a POST to <service>/mex (WS-MetadataExchange GetMetadata, or WS-Transfer Get)
 * the WSDL inside mex:Metadata, in the request's SOAP version. The documents are built once at
 * start for each base URL clients reach (svc_mex_base_url: per [server] name and alt_name, the
 * request's Host picks) and sent from memory (ioring_body), never formatted per request. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/base.h"
#include "ioring/ioring.h"
#include "service/internal.h"

enum { MEX_CERTPROV = 0, MEX_WEBTICKET, MEX_SERVICES_ };
enum { MEX_WSDL = 0, MEX_SOAP11, MEX_SOAP12, MEX_FORMS_ };

/* One document: referenced by the answers in flight; the service holds one reference until
 * svc_mex_free. */
struct mex_doc {
    struct ioring_body body;
    char *text;
};

/* One set of documents per name clients may reach the appliance by: [server] name, then each
 * alt_name (picked by the request's Host); only the first with external_base_url. */
#define MEX_NAMES_MAX (1 + SERVICE_ALT_NAMES_MAX)

struct svc_mex {
    size_t num_names;
    char names[MEX_NAMES_MAX][SERVICE_NAME_MAX + 1];
    char base_url[MEX_NAMES_MAX][SIGNER_BASE_URL_MAX + 1];
    struct mex_doc *docs[MEX_NAMES_MAX][MEX_SERVICES_][MEX_FORMS_];
};

static void doc_free(struct ioring_body *b)
{
    struct mex_doc *d = (struct mex_doc *)b;
    free(d->text);
    free(d);
}

static struct mex_doc *doc_new(const char *text, size_t len)
{
    struct mex_doc *d = calloc(1, sizeof(*d));
    char *copy = malloc(len + 1);
    if (d == NULL || copy == NULL) {
        free(d);
        free(copy);
        return NULL;
    }
    memcpy(copy, text, len + 1);
    d->text = copy;
    d->body.data = (const uint8_t *)copy;
    d->body.len = len;
    d->body.free_fn = doc_free;
    atomic_init(&d->body.refs, 1);
    return d;
}

/* port_of returns the port of a listen address ("127.0.0.1:8080", "[::1]:8443"), 0 if none. */
static unsigned port_of(const char *listen)
{
    const char *c = strrchr(listen, ':');
    if (c == NULL || c[1] == '\0' || strchr(listen, ']') > c) {
        return 0;
    }
    unsigned long p = strtoul(c + 1, NULL, 10);
    return p <= 65535 ? (unsigned)p : 0;
}

int svc_mex_base_url(char *out, size_t cap, const struct service_config *cfg, const char *name)
{
    if (cfg->external_base_url[0] != '\0') {
        return base_str_copy(out, cap, cfg->external_base_url) == 0 ? 0 : -E2BIG;
    }
    bool tls = cfg->tls_listen[0] != '\0';
    unsigned port = port_of(tls ? cfg->tls_listen : cfg->listen);
    unsigned dflt = tls ? 443 : 80;
    int n = port != 0 && port != dflt
                ? snprintf(out, cap, "%s://%s:%u", tls ? "https" : "http", name, port)
                : snprintf(out, cap, "%s://%s", tls ? "https" : "http", name);
    return n > 0 && (size_t)n < cap ? 0 : -E2BIG;
}

/* build_docs builds the documents of one base URL into docs. Returns 0 or -ENOMEM. */
static int build_docs(struct mex_doc *docs[MEX_SERVICES_][MEX_FORMS_], const char *base_url)
{
    static char wsdl[SIGNER_WSDL_MAX]; /* start-up only, one thread */
    static char env[SIGNER_WSDL_MAX + 1024];
    for (int s = 0; s < MEX_SERVICES_; s++) {
        size_t len = 0;
        int rc = s == MEX_CERTPROV ? signer_wsdl_certprov(wsdl, sizeof(wsdl), &len, base_url)
                                   : signer_wsdl_webticket(wsdl, sizeof(wsdl), &len, base_url);
        ASSERT(rc == 0); /* SIGNER_WSDL_MAX holds the longest base URL (tests/signer) */
        docs[s][MEX_WSDL] = doc_new(wsdl, len);
        for (int v = 0; v < 2; v++) {
            size_t env_len = 0;
            rc = signer_mex_response(env, sizeof(env), &env_len, wsdl, v == 1);
            ASSERT(rc == 0);
            docs[s][MEX_SOAP11 + v] = doc_new(env, env_len);
        }
        for (int f = 0; f < MEX_FORMS_; f++) {
            if (docs[s][f] == NULL) {
                return -ENOMEM;
            }
        }
    }
    return 0;
}

int svc_mex_init(struct service *svc)
{
    const struct service_config *cfg = svc->cfg;
    struct svc_mex *m = calloc(1, sizeof(*m));
    if (m == NULL) {
        return -ENOMEM;
    }
    svc->mex = m;
    m->num_names = cfg->external_base_url[0] != '\0' ? 1 : 1 + cfg->num_alt_names;
    ASSERT(m->num_names <= MEX_NAMES_MAX);
    for (size_t i = 0; i < m->num_names; i++) {
        const char *name = i == 0 ? cfg->name : cfg->alt_names[i - 1];
        (void)base_str_copy(m->names[i], sizeof(m->names[i]), name);
        int rc = svc_mex_base_url(m->base_url[i], sizeof(m->base_url[i]), cfg, name);
        if (rc != 0 || !signer_base_url_valid(m->base_url[i])) {
            log_err("service: mex_base_url_invalid url=%s", m->base_url[i]);
            return -EINVAL;
        }
        rc = build_docs(m->docs[i], m->base_url[i]);
        if (rc != 0) {
            return rc;
        }
        log_info("service: metadata base_url=%s", m->base_url[i]);
    }
    return 0;
}

void svc_mex_free(struct service *svc)
{
    struct svc_mex *m = svc->mex;
    if (m == NULL) {
        return;
    }
    for (size_t i = 0; i < MEX_NAMES_MAX; i++) {
        for (int s = 0; s < MEX_SERVICES_; s++) {
            for (int f = 0; f < MEX_FORMS_; f++) {
                if (m->docs[i][s][f] != NULL) {
                    ioring_body_put(&m->docs[i][s][f]->body); /* answers in flight keep theirs */
                }
            }
        }
    }
    free(m);
    svc->mex = NULL;
}

/* soap12_body tells whether a GetMetadata request is SOAP 1.2: its Content-Type, or its
 * envelope's namespace anywhere in the body (the request is not otherwise read: any POST to
 * /mex is asking for the metadata). */
static bool soap12_body(struct ioring_request *req)
{
    static const char ns12[] = "http://www.w3.org/2003/05/soap-envelope";
    if (svc_soap12_requested(req)) {
        return true;
    }
    size_t len = 0;
    const uint8_t *body = ioring_request_body(req, &len);
    return body != NULL && memmem(body, len, ns12, sizeof(ns12) - 1) != NULL;
}

/* name_index picks the documents of the name the request's Host names (without its port,
 * ASCII case ignored), or [server] name's. */
static size_t name_index(const struct svc_mex *m, struct ioring_request *req)
{
    size_t len = 0;
    const char *host = ioring_request_header_get(req, "Host", &len);
    if (host == NULL || m->num_names == 1) {
        return 0;
    }
    const char *colon = memchr(host, ':', len);
    size_t n = colon != NULL ? (size_t)(colon - host) : len;
    for (size_t i = 0; i < m->num_names; i++) {
        if (strlen(m->names[i]) == n && strncasecmp(m->names[i], host, n) == 0) {
            return i;
        }
    }
    return 0;
}

void svc_mex_serve(struct service *svc, struct ioring_request *req, bool post)
{
    struct svc_mex *m = svc->mex;
    ASSERT(m != NULL);
    size_t target_len = 0;
    const char *target = ioring_request_target(req, &target_len);
    static const char cp[] = SIGNER_CERTPROV_PATH;
    int s = target_len >= sizeof(cp) - 1 && strncasecmp(target, cp, sizeof(cp) - 1) == 0
                ? MEX_CERTPROV
                : MEX_WEBTICKET;
    int f = MEX_WSDL;
    if (post) {
        f = soap12_body(req) ? MEX_SOAP12 : MEX_SOAP11;
    }
    struct mex_doc *d = m->docs[name_index(m, req)][s][f];
    ioring_body_get(&d->body);
    svc_respond_body(svc, req, 200,
                     f == MEX_WSDL ? "text/xml; charset=utf-8"
                                   : signer_soap_content_type(f == MEX_SOAP12),
                     &d->body);
    svc_log_simple(req, SVC_ROUTE_MEX, 200);
    svc_metrics_request(svc, SVC_ROUTE_MEX, SVC_RESULT_OK);
}
