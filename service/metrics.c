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

void svc_log_request(struct service *svc, const struct svc_item *it, const uint8_t *serial)
{
    (void)svc;
    char hex[2 * SIGNER_SERIAL_LEN + 1] = "-";
    if (serial != NULL) {
        signer_serial_format(hex, serial);
    }
    uint64_t us = (clock_mono_ns() - it->start_ns) / 1000;
    log_info("signer: request route=%s code=%s user=%s serial=%s latency_us=%llu client=%s",
             route_names[it->route], it->failed ? signer_code_name(it->fail) : "OK",
             it->user.uri[0] != '\0' ? it->user.uri : "-", hex, (unsigned long long)us, it->client);
}

void svc_log_simple(struct ioring_request *req, enum svc_route route, int status)
{
    char client[64];
    if (ioring_request_client_format(req, client, sizeof(client)) != 0) {
        (void)base_str_copy(client, sizeof(client), "-");
    }
    log_info("signer: request route=%s status=%d client=%s", route_names[route], status, client);
}
