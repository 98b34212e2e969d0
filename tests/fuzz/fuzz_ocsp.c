/* fuzz_ocsp: libFuzzer harness for the OCSP responder's codec. The input goes through
 * signer_ocsp_parse (for a CA made once in a temporary directory); a request that parses (or
 * names another issuer: the seed corpus was made for another CA) is then answered with
 * signer_ocsp_respond, every status in turn, its nonce echoed. Any crash, sanitizer report,
 * leak or ASSERT is a finding. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "signer/signer.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct signer_ca *the_ca;

/* free_ca runs at exit: the soft key lives in a MADV_DONTDUMP mapping, which LeakSanitizer
 * does not scan for pointers, so a CA kept to the end would be reported. */
static void free_ca(void)
{
    signer_ca_free(the_ca);
    the_ca = NULL;
}

/* The CA is made before the first input: libFuzzer counts what an input leaves allocated as a
 * leak. */
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    {
        char dir[] = "/tmp/fuzz-ocsp-XXXXXX";
        ASSERT(mkdtemp(dir) != NULL);
        char store[64];
        snprintf(store, sizeof(store), "%s/store", dir);
        ASSERT(signer_ca_init(store, HSM_KEY_P256, "fuzz.example.com") == 0);
        ASSERT(signer_ca_open(&the_ca, NULL, store) == 0);
        /* The CA's key is in memory now: the files can go. */
        char cmd[96];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        ASSERT(system(cmd) == 0);
        ASSERT(atexit(free_ca) == 0);
    }
    return 0;
}

static struct signer_ca *ca(void)
{
    return the_ca;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct signer_ocsp_request req; /* libFuzzer runs inputs one at a time */
    static uint8_t out[SIGNER_OCSP_RESPONSE_MAX];
    enum signer_ocsp_status status = SIGNER_OCSP_SUCCESSFUL;
    int rc = signer_ocsp_parse(ca(), &req, &status, data, size);
    if (rc != 0 && rc != -EPERM) {
        ASSERT(status == SIGNER_OCSP_MALFORMED || status == SIGNER_OCSP_INTERNAL_ERROR);
        uint8_t err[SIGNER_OCSP_ERROR_LEN];
        ASSERT(signer_ocsp_error(err, status) == SIGNER_OCSP_ERROR_LEN);
        return 0;
    }
    ASSERT(rc == 0 ? status == SIGNER_OCSP_SUCCESSFUL : status == SIGNER_OCSP_UNAUTHORIZED);
    ASSERT(req.num_certs >= 1 && req.num_certs <= SIGNER_OCSP_CERTS_MAX);
    ASSERT(req.nonce == NULL || (req.nonce >= data && req.nonce + req.nonce_len <= data + size));
    struct signer_ocsp_answer answers[SIGNER_OCSP_CERTS_MAX];
    for (size_t i = 0; i < req.num_certs; i++) {
        const struct signer_ocsp_cert *c = &req.certs[i];
        ASSERT(c->certid >= data && c->certid + c->certid_len <= data + size);
        answers[i] = (struct signer_ocsp_answer){.status = (enum signer_ocsp_cert_status)(i % 3),
                                                 .revoked_at_s = 1764070245,
                                                 .reason = (uint8_t)(i % 2 ? 1 : 6)};
    }
    size_t len = 0;
    rc = signer_ocsp_respond(ca(), NULL, out, sizeof(out), &len, &req, answers, 1764070245,
                             1764070245 + 86400);
    ASSERT(rc == 0 || rc == -E2BIG);
    ASSERT(rc != 0 || (len > 0 && len <= sizeof(out)));
    return 0;
}
