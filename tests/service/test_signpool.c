/* The signing pool (service/signpool.c) with a PKCS#11 CA key in a real SoftHSM2 token: the
 * ring's turn hands the batch over and returns at once, the pool's threads sign and the writer
 * answers; a token whose C_Sign hangs (tests/p11shim in front of SoftHSM2) gets 503
 * SigningUnavailable at sign_timeout_ms with no certificate stored, /readyz says the key is down
 * with its reason, and the key comes back by itself (cp-hsm-probe) once the token answers. */
#include <criterion/criterion.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/base.h"
#include "tests/service/fixture.h"

static char shim[PATH_MAX];
static char ctl[TMPDIR_PATH_MAX + 16];

static void setup_softhsm(void)
{
    fx_setup_opts(&(struct fx_options){.pkcs11_module = FX_SOFTHSM});
}

/* setup_shim loads the key through tests/p11shim (beside this binary), C_Sign faults from ctl. */
static void setup_shim(void)
{
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    cr_assert(n > 0);
    self[n] = '\0';
    (void)snprintf(shim, sizeof(shim), "%s/libp11shim.so", dirname(self));
    cr_assert_eq(access(shim, R_OK), 0, "%s missing: make tests builds it", shim);
    (void)snprintf(ctl, sizeof(ctl), "/tmp/certprov-shim-%ld.ctl", (long)getpid());
    cr_assert_eq(setenv("P11SHIM_CTL", ctl, 1), 0);
    cr_assert_eq(setenv("P11SHIM_MODULE", FX_SOFTHSM, 1), 0);
    fx_setup_opts(&(struct fx_options){.pkcs11_module = shim, .sign_timeout_ms = 300});
}

static void teardown_shim(void)
{
    (void)unlink(ctl);
    fx_teardown();
}

TestSuite(signpool, .timeout = 60);

Test(signpool, pkcs11_key_enrolls_through_the_pool, .init = setup_softhsm, .fini = fx_teardown)
{
    cr_assert(svc_signpool_active(g_fx.svc));
    struct svc_item *items[3];
    for (size_t i = 0; i < 3; i++) {
        items[i] = fx_enroll(0, SVC_ROUTE_EST_ENROLL, (enum fx_user_id)i);
    }
    fx_turn(0, items, 3);
    fx_wait_answers(3);
    for (size_t i = 0; i < 3; i++) {
        const struct fx_answer *a = fx_answer(i);
        cr_assert_eq(a->status, 200, "answer %zu: %d %s", i, a->status, a->reason);
        cr_assert(a->cert_parsed);
        cr_assert(a->store_has_cert);
    }
    char json[1024];
    cr_assert(fx_readyz(json, sizeof(json)), "%s", json);
    cr_assert_not_null(strstr(json, "\"key_backend\":\"pkcs11\""), "%s", json);
}

Test(signpool, a_hung_token_is_503_at_the_deadline_and_recovers, .init = setup_shim,
     .fini = teardown_shim)
{
    FILE *f = fopen(ctl, "w");
    cr_assert_not_null(f);
    fputs("slow 3000", f);
    cr_assert_eq(fclose(f), 0);
    struct svc_item *items[2] = {fx_enroll(0, SVC_ROUTE_EST_ENROLL, FX_ALICE),
                                 fx_enroll(0, SVC_ROUTE_EST_ENROLL, FX_BOB)};
    uint64_t t0 = clock_mono_ns();
    fx_turn(0, items, 2);
    uint64_t turn_ns = clock_mono_ns() - t0;
    cr_assert_lt(turn_ns, 50000000u, "the ring's turn took %llu ms: it waited for the token",
                 (unsigned long long)(turn_ns / 1000000));
    fx_wait_answers(2);
    uint64_t answer_ms = (clock_mono_ns() - t0) / 1000000;
    cr_assert_lt(answer_ms, 1500u, "answered after %llu ms (sign_timeout_ms 300, C_Sign 3000)",
                 (unsigned long long)answer_ms);
    for (size_t i = 0; i < 2; i++) {
        const struct fx_answer *a = fx_answer(i);
        cr_assert_eq(a->status, 503);
        cr_assert_eq(a->code, SIGNER_CODE_SIGNING_UNAVAILABLE);
        cr_assert(a->retry_after);
        cr_assert_not(a->store_has_cert);
    }
    char json[1024];
    cr_assert_not(fx_readyz(json, sizeof(json)), "%s", json);
    cr_assert_not_null(strstr(json, "\"key_backend\":\"down\""), "%s", json);
    cr_assert_not_null(strstr(json, "\"key_reason\":\"sign_timeout\""), "%s", json);
    cr_assert_eq(unlink(ctl), 0);
    bool ready = false;
    for (int i = 0; i < 100 && !ready; i++) { /* the prober reconnects (backoff from 100 ms) */
        usleep(50000);
        ready = fx_readyz(json, sizeof(json));
    }
    cr_assert(ready, "not ready again: %s", json);
    struct svc_item *again = fx_enroll(0, SVC_ROUTE_EST_ENROLL, FX_ALICE);
    fx_turn(0, &again, 1);
    fx_wait_answers(3);
    cr_assert_eq(fx_answer(2)->status, 200, "%s", fx_answer(2)->reason);
    cr_assert(fx_answer(2)->store_has_cert);
    usleep(2800000); /* the hung call returns before the teardown frees the key */
}
