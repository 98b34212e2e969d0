/* The service's counters and histograms, and the per-request log line. Counters are relaxed
 * atomics updated on the rings and the writer; a scrape (status.c) reads them without locks. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "base/base.h"
#include "ioring/ioring.h"
#include "service/internal.h"

/* Upper bounds of the latency buckets, in microseconds, and of the size buckets, in items. */
static const uint64_t latency_bounds_us[SVC_BUCKETS] = {
    50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000};
static const uint64_t size_bounds[SVC_BUCKETS] = {1,   2,   4,   8,    16,   32,   64,
                                                  128, 256, 512, 1024, 2048, 4096, 8192};

static const char *const route_names[SVC_ROUTE_MAX_] = {"soap",
                                                        "est_simpleenroll",
                                                        "est_simplereenroll",
                                                        "est_cacerts",
                                                        "chain",
                                                        "healthz",
                                                        "readyz",
                                                        "metrics",
                                                        "crl",
                                                        "ocsp",
                                                        "mex",
                                                        "webticket",
                                                        "other"};
static const char *const stage_names[SVC_STAGE_MAX_] = {"parse", "auth",   "verify",
                                                        "sign",  "commit", "total"};

const char *svc_route_name(enum svc_route route)
{
    ASSERT((unsigned)route < SVC_ROUTE_MAX_);
    return route_names[route];
}

const char *svc_stage_name(enum svc_stage stage)
{
    ASSERT((unsigned)stage < SVC_STAGE_MAX_);
    return stage_names[stage];
}

void svc_metrics_init(struct svc_metrics *m)
{
    for (size_t s = 0; s < SVC_STAGE_MAX_; s++) {
        m->stage_us[s].bounds = latency_bounds_us;
    }
    m->commit_us.bounds = latency_bounds_us;
    m->batch_size.bounds = size_bounds;
    m->commit_size.bounds = size_bounds;
}

void svc_histogram_add(struct svc_histogram *h, uint64_t v)
{
    ASSERT(h->bounds != NULL); /* svc_metrics_init */
    size_t i = 0;
    while (i < SVC_BUCKETS && v > h->bounds[i]) {
        i++;
    }
    atomic_fetch_add_explicit(&h->buckets[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum, v, memory_order_relaxed);
}

void svc_metrics_stage(struct service *svc, enum svc_stage stage, uint64_t ns)
{
    ASSERT(stage < SVC_STAGE_MAX_);
    svc_histogram_add(&svc->metrics.stage_us[stage], ns / 1000);
}

void svc_metrics_batch(struct service *svc, size_t n)
{
    svc_histogram_add(&svc->metrics.batch_size, n);
}

void svc_metrics_request(struct service *svc, enum svc_route route, int result)
{
    ASSERT(route < SVC_ROUTE_MAX_);
    ASSERT(result >= 0 && result < SVC_RESULT_MAX_);
    atomic_fetch_add_explicit(&svc->metrics.requests[route][result], 1, memory_order_relaxed);
}

/* tls_name is the log's tls= value: how the request's connection was secured. */
static const char *tls_name(enum ioring_tls_kind kind, bool cert_auth)
{
    if (kind == IORING_TLS_NONE) {
        return "none";
    }
    if (cert_auth) {
        return "mtls"; /* signed in by its client certificate */
    }
    return kind == IORING_TLS_RESUMED ? "resumed" : "full";
}

void svc_log_request(struct service *svc, const struct svc_item *it, const uint8_t *serial)
{
    (void)svc;
    char hex[2 * SIGNER_SERIAL_LEN + 1] = "-";
    if (serial != NULL) {
        signer_serial_format(hex, serial);
    }
    uint64_t us = (clock_mono_ns() - it->start_ns) / 1000;
    char login[3 * SIGNER_SOAP_USERNAME_MAX + 1];
    char device[3 * STORE_DEVICE_ID_MAX + 1];
    char user[3 * STORE_URI_MAX + 1];
    char stages[160] = "";
    if (log_enabled(LOG_LEVEL_DEBUG)) { /* at debug level: where the time went */
        (void)snprintf(stages, sizeof(stages),
                       " parse_us=%u auth_us=%u verify_us=%u sign_us=%u commit_us=%u",
                       it->stage_us[SVC_STAGE_PARSE], it->stage_us[SVC_STAGE_AUTH],
                       it->stage_us[SVC_STAGE_VERIFY], it->stage_us[SVC_STAGE_SIGN],
                       it->stage_us[SVC_STAGE_COMMIT]);
    }
    /* user= is the signed-in user only: a refused sign-in names none (login= is what was tried,
     * never the PIN). Values from the request are escaped (log_value): no forged keys. */
    log_info("signer: request route=%s code=%s reason=%s user=%s login=%s device_id=%s serial=%s "
             "latency_us=%llu client=%s tls=%s%s",
             route_names[it->route], it->failed ? signer_code_name(it->fail) : "OK",
             it->failed ? signer_reason_token(it->why) : "-",
             log_value(user, sizeof(user), it->user.uri),
             log_value(login, sizeof(login), it->login),
             log_value(device, sizeof(device), it->device_id), hex, (unsigned long long)us,
             it->client, tls_name(it->tls, it->cert_auth), stages);
}

void svc_log_refusal(struct ioring_request *req, enum svc_route route, enum signer_reason why)
{
    char client[64];
    if (req == NULL || ioring_request_client_format(req, client, sizeof(client)) != 0) {
        (void)base_str_copy(client, sizeof(client), "-");
    }
    log_info("signer: request route=%s code=%s reason=%s user=- login=- device_id=- serial=- "
             "client=%s tls=%s",
             route_names[route], signer_code_name(signer_reason_code(why)),
             signer_reason_token(why), client,
             tls_name(req != NULL ? ioring_request_tls(req) : IORING_TLS_NONE, false));
}

void svc_log_simple(struct ioring_request *req, enum svc_route route, int status)
{
    char client[64];
    if (ioring_request_client_format(req, client, sizeof(client)) != 0) {
        (void)base_str_copy(client, sizeof(client), "-");
    }
    log_info("signer: request route=%s status=%d client=%s tls=%s", route_names[route], status,
             client, tls_name(ioring_request_tls(req), false));
}
