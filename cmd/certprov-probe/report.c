/* certprov-probe: the report being filled, step by step (at the bottom: flow.c, net.c, x509.c
 * and main.c write into it). main.c prints it. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/base.h"
#include "cmd/certprov-probe/probe.h"

/* ---- the report ---- */

void probe_fmt(char *out, size_t cap, const char *fmt, ...)
{
    ASSERT(cap > 0);
    va_list ap;
    va_start(ap, fmt);
    (void)vsnprintf(out, cap, fmt, ap);
    va_end(ap);
}

void probe_report_init(struct probe_report *rep, const char *target_uri, const char *fqdn)
{
    memset(rep, 0, sizeof(*rep));
    (void)base_str_copy(rep->target_uri, sizeof(rep->target_uri), target_uri);
    (void)base_str_copy(rep->fqdn, sizeof(rep->fqdn), fqdn);
    rep->start_ns = clock_mono_ns();
}

size_t probe_step_begin(struct probe_report *rep, const char *name)
{
    ASSERT(!rep->done);
    ASSERT(rep->num_steps < PROBE_STEPS_MAX);
    size_t i = rep->num_steps++;
    rep->steps[i] = (struct probe_step){.name = name};
    /* ms holds the start until the step ends. */
    rep->steps[i].ms = (double)(clock_mono_ns() - rep->start_ns) / 1e6;
    return i;
}

static void step_end(struct probe_report *rep, size_t i, bool ok)
{
    ASSERT(i < rep->num_steps);
    double now = (double)(clock_mono_ns() - rep->start_ns) / 1e6;
    rep->steps[i].ms = now - rep->steps[i].ms;
    rep->steps[i].ok = ok;
}

void probe_step_ok(struct probe_report *rep, size_t i, const char *fmt, ...)
{
    step_end(rep, i, true);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rep->steps[i].detail, sizeof(rep->steps[i].detail), fmt, ap);
    va_end(ap);
}

static void verdict(struct probe_report *rep, bool success)
{
    ASSERT(!rep->done);
    rep->done = true;
    rep->success = success;
    rep->latency_ms = (double)(clock_mono_ns() - rep->start_ns) / 1e6;
}

/* step_label is the step's name in the Diagnosis, in API.md §6's words ("TLS chain", "CSR"). */
static const char *step_label(const char *name)
{
    static const struct {
        const char *name;
        const char *label;
    } labels[] = {
        {"dns", "DNS"},
        {"chain-download", "chain download"},
        {"tls", "TLS chain"},
        {"csr", "CSR"},
        {"enroll", "enrollment"},
        {"clientauth", "client certificate"},
        {"webticket", "Web ticket"},
        {"certprov", "CertProv"},
    };
    for (size_t i = 0; i < ARRAY_LEN(labels); i++) {
        if (strcmp(name, labels[i].name) == 0) {
            return labels[i].label;
        }
    }
    return name;
}

int probe_step_fail(struct probe_report *rep, size_t i, const char *blame, const char *error,
                    const char *fmt, ...)
{
    step_end(rep, i, false);
    (void)base_str_copy(rep->steps[i].detail, sizeof(rep->steps[i].detail), "");
    snprintf(rep->steps[i].detail, sizeof(rep->steps[i].detail), "%s", error);
    rep->failed = blame != NULL ? blame : rep->steps[i].name;
    snprintf(rep->error, sizeof(rep->error), "%s", error);
    int n = snprintf(rep->diagnosis, sizeof(rep->diagnosis), "%s: ", step_label(rep->failed));
    ASSERT(n > 0 && (size_t)n < sizeof(rep->diagnosis));
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rep->diagnosis + n, sizeof(rep->diagnosis) - (size_t)n, fmt, ap);
    va_end(ap);
    verdict(rep, false);
    return -1;
}

void probe_note(struct probe_report *rep, const char *fmt, ...)
{
    if (rep->num_notes == PROBE_NOTES_MAX) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rep->notes[rep->num_notes++], PROBE_TEXT_MAX, fmt, ap);
    va_end(ap);
}

void probe_report_success(struct probe_report *rep)
{
    verdict(rep, true);
}
