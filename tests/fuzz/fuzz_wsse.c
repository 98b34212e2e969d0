/* fuzz_wsse: libFuzzer harness for the Web ticket XML paths (signer/webticket.c, wsse.c, xml.c).
 * The first byte picks the parser, the rest is the request body:
 *   even: signer_wt_request_parse (the RST of the Web Ticket Service); a request that parses is
 *         answered with a ticket (signer_wt_issue, a real soft P-256 CA key), whose RSTR must parse
 *         again with the same safe options;
 *   odd:  signer_wt_verify (the wsse:Security header of a GetAndPublishCert with a ticket).
 * Every result must be one of the documented return codes with a reason for a refusal; any
 * crash, sanitizer report, leak or ASSERT is a finding. The CA and PIN key are made once, in a
 * temporary directory. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "signer/internal.h"
#include "signer/signer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_MAX_LEN 65536

static struct signer_wt_issuer *g_iss;
static struct signer_ca *g_ca;
static struct signer_pin_key *g_pin;

/* release frees what issuer() made, before LeakSanitizer's check at exit: the soft key lives in
 * a page of its own (mmap, MADV_DONTDUMP) that LeakSanitizer does not scan. */
static void release(void)
{
    signer_wt_issuer_free(g_iss);
    signer_pin_key_free(g_pin);
    signer_ca_free(g_ca);
}

static struct signer_wt_issuer *issuer(void)
{
    if (g_iss != NULL) {
        return g_iss;
    }
    char dir[] = "/tmp/certprov-fuzz-wsse-XXXXXX";
    ASSERT(mkdtemp(dir) != NULL);
    char store[64];
    char pin_path[64];
    (void)snprintf(store, sizeof(store), "%s/store", dir);
    (void)snprintf(pin_path, sizeof(pin_path), "%s/pin.key", dir);
    signer_xml_init();
    ASSERT(signer_ca_init(store, HSM_KEY_P256, "certprov.example.com") == 0);
    ASSERT(signer_ca_open(&g_ca, NULL, store) == 0);
    ASSERT(signer_pin_key_load(&g_pin, pin_path, true) == 0);
    ASSERT(signer_wt_issuer_new(&g_iss, g_ca, g_pin,
                                "https://certprov.example.com/WebTicket/"
                                "WebTicketService.svc",
                                NULL) == 0);
    ASSERT(atexit(release) == 0);
    return g_iss;
}

static void rst(const uint8_t *data, size_t size)
{
    static struct signer_wt_request rq;
    static char out[SIGNER_WT_RESPONSE_MAX];
    char user[SIGNER_SOAP_USERNAME_MAX + 1];
    char pin[SIGNER_PIN_MAX + 2];
    char reason[SIGNER_REASON_MAX];
    bool token = false;
    int rc = signer_wt_request_parse(&rq, user, sizeof(user), pin, sizeof(pin), &token, reason,
                                     data, size, FUZZ_MAX_LEN);
    if (rc != 0) {
        ASSERT(rc == -EBADMSG || rc == -E2BIG || rc == -EPROTO);
        ASSERT(reason[0] != '\0');
        ASSERT(!token);
        return;
    }
    ASSERT(rq.entropy_len >= SIGNER_WT_ENTROPY_MIN && rq.entropy_len <= SIGNER_WT_ENTROPY_MAX);
    ASSERT(rq.key_len >= SIGNER_WT_KEY_MIN && rq.key_len <= SIGNER_WT_KEY_MAX);
    size_t len = 0;
    rc = signer_wt_issue(issuer(), out, sizeof(out), &len, &rq, "sip:fuzz@example.com", false,
                         1767225600, 8 * 3600);
    ASSERT(rc == 0);
    int prc = 0;
    struct _xmlDoc *doc = sx_parse((const uint8_t *)out, len, sizeof(out), &prc);
    ASSERT(doc != NULL); /* what we answer is well-formed, whatever was asked */
    sx_free(doc);
}

static void security(const uint8_t *data, size_t size)
{
    static const char *const names[] = {"certprov.example.com"};
    struct signer_wt_proof p;
    char reason[SIGNER_REASON_MAX];
    int rc = signer_wt_verify(issuer(), &p, reason, data, size, FUZZ_MAX_LEN, 1767225600, names, 1);
    ASSERT(rc == 0 || rc == -ENOENT || rc == -EPERM || rc == -EBADMSG || rc == -E2BIG);
    ASSERT(rc == -ENOENT || rc == 0 || reason[0] != '\0');
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) {
        return 0;
    }
    if (data[0] % 2 == 0) {
        rst(data + 1, size - 1);
    } else {
        security(data + 1, size - 1);
    }
    return 0;
}
