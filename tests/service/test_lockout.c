/* Tests of the PIN lockout as an attacker sees it, through the writer's answers and the store's
 * lockout state: a locked user's right and wrong PINs cannot be told apart and every wrong one
 * counts; a burst of guesses judged against a committed state that is already stale gets no more
 * than the window's failures judged and no certificate; failures survive a failed certificate
 * commit, and when they cannot be recorded no answer tells a right PIN from a wrong one; a locked
 * user on a shared phone number is neither revealed nor tested; an unknown number costs the writer
 * what a wrong PIN costs. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "base/base.h"
#include "service/internal.h"
#include "tests/service/fixture.h"

#define WINDOW 3 /* [pin] window_failures of these tests */
#define EST_TYPE "application/pkcs7-mime; smime-type=certs-only"

static const char *const auth_failed_reason =
    "The phone number or extension and PIN do not match a user";
static const char *const store_full_reason =
    "The certificate store is full; the operator must raise its size";

static void setup_lockout(void)
{
    fx_setup_opts(&(struct fx_options){.items_per_ring = 32, .window_failures_max = WINDOW});
}

static void setup_full(void)
{
    fx_setup_opts(&(struct fx_options){
        .items_per_ring = 32, .window_failures_max = WINDOW, .map_size = 1u << 20});
}

static void setup_read_only(void)
{
    fx_setup_opts(&(struct fx_options){
        .items_per_ring = 32, .window_failures_max = WINDOW, .read_only = true});
}

static uint64_t cert_count(void)
{
    uint64_t n = 0;
    cr_assert_eq(store_cert_count(g_fx.st, &n), 0);
    return n;
}

/* put_lock locks `u` (temporarily or for an administrator) with `total` failures so far. */
static void put_lock(enum fx_user_id u, bool admin, uint64_t total)
{
    struct store_lockout l = {.total_failures = total, .last_failure_s = clock_real_s()};
    if (admin) {
        l.admin_locked = true;
    } else {
        l.locked_until_s = clock_real_s() + 3600;
    }
    cr_assert_eq(store_lockout_put(g_fx.st, fx_users[u].uri, &l), 0);
}

static void expect_refused(const struct fx_answer *a, enum signer_code code)
{
    cr_assert_eq(a->code, (int)code, "Code %d, want %s (status %d: %s)", a->code,
                 signer_code_name(code), a->status, a->reason);
    cr_assert_eq(a->status, (int)signer_error_status(code));
    cr_assert_not(a->cert_parsed, "a refused sign-in got a certificate");
    if (code == SIGNER_CODE_AUTHENTICATION_FAILED) {
        cr_assert_str_eq(a->reason, auth_failed_reason);
    }
}

/* expect_alike: two answers an attacker must not tell apart (same route). */
static void expect_alike(const struct fx_answer *a, const struct fx_answer *b)
{
    cr_assert_eq(a->status, b->status);
    cr_assert_eq(a->code, b->code);
    cr_assert_str_eq(a->reason, b->reason);
    cr_assert_str_eq(a->diag, b->diag, "X-Ms-diagnostics differ");
    cr_assert_str_eq(a->type, b->type);
    cr_assert_eq(a->www_authenticate, b->www_authenticate);
    /* The bodies, but for the RequestID a SOAP answer echoes (each request has its own). */
    const char *ra = strstr(a->body, "<RequestID");
    const char *rb = strstr(b->body, "<RequestID");
    size_t la = ra != NULL ? (size_t)(ra - a->body) : a->body_len;
    size_t lb = rb != NULL ? (size_t)(rb - b->body) : b->body_len;
    cr_assert_eq(la, lb);
    cr_assert_eq(memcmp(a->body, b->body, la), 0, "bodies differ: %s | %s", a->body, b->body);
}

static void expect_certificate(const struct fx_answer *a)
{
    cr_assert_eq(a->status, 200, "status %d: %s", a->status, a->reason);
    cr_assert(a->store_has_cert);
}

/* ---- item 1: locked, right and wrong PIN alike; wrong ones still count ---- */

static void locked_right_and_wrong_pin(bool admin)
{
    const struct fx_user *alice = &fx_users[FX_ALICE];
    put_lock(FX_ALICE, admin, 7);
    struct store_lockout before = fx_lockout(alice->uri);
    struct svc_item *items[4] = {
        fx_signin_csr(0, SVC_ROUTE_EST_ENROLL, alice->phone, alice->pin),
        fx_signin_csr(0, SVC_ROUTE_EST_ENROLL, alice->phone, FX_WRONG_PIN),
        fx_signin_csr(0, SVC_ROUTE_SOAP, alice->ext, alice->pin),
        fx_signin_csr(0, SVC_ROUTE_SOAP, alice->ext, FX_WRONG_PIN),
    };
    fx_turn(0, items, 4);
    fx_wait_answers(4);
    for (size_t i = 0; i < 4; i++) {
        expect_refused(fx_answer(i), SIGNER_CODE_PIN_LOCKED);
    }
    expect_alike(fx_answer(0), fx_answer(1));
    expect_alike(fx_answer(2), fx_answer(3));
    cr_assert_str_eq(fx_answer(0)->diag, fx_answer(2)->diag);
    /* The two wrong PINs counted toward the total; the right ones did not; the window and the
     * lock's end stay. */
    struct store_lockout l = fx_lockout(alice->uri);
    cr_assert_eq(l.total_failures, 9, "total %llu, want 9", (unsigned long long)l.total_failures);
    cr_assert_eq(l.window_failures, before.window_failures);
    cr_assert_eq(l.window_start_s, before.window_start_s);
    cr_assert_eq(l.locked_until_s, before.locked_until_s);
    cr_assert_eq(l.admin_locked, admin);
    cr_assert_eq(cert_count(), 0);
}

Test(service_lockout, temporarily_locked_right_and_wrong_pin_alike_wrong_ones_count,
     .init = setup_lockout, .fini = fx_teardown)
{
    locked_right_and_wrong_pin(false);
}

Test(service_lockout, admin_locked_right_and_wrong_pin_alike_wrong_ones_count,
     .init = setup_lockout, .fini = fx_teardown)
{
    locked_right_and_wrong_pin(true);
}

Test(service_lockout, guesses_while_locked_reach_the_admin_lock, .init = setup_lockout,
     .fini = fx_teardown)
{
    const struct fx_user *bob = &fx_users[FX_BOB];
    put_lock(FX_BOB, false, g_fx.cfg.pin.total_failures_max - 2);
    struct svc_item *items[2] = {
        fx_signin_csr(0, SVC_ROUTE_EST_ENROLL, bob->phone, FX_WRONG_PIN),
        fx_signin_csr(0, SVC_ROUTE_EST_ENROLL, bob->phone, "602817"),
    };
    fx_turn(0, items, 2);
    fx_wait_answers(2);
    expect_refused(fx_answer(0), SIGNER_CODE_PIN_LOCKED);
    expect_alike(fx_answer(0), fx_answer(1));
    struct store_lockout l = fx_lockout(bob->uri);
    cr_assert(l.admin_locked, "the total maximum was reached while locked");
    cr_assert_eq(l.total_failures, g_fx.cfg.pin.total_failures_max);
    cr_assert_eq(atomic_load(&g_fx.svc->metrics.lockouts), 1);
}

/* ---- item 2: bursts judged in the writer, in queue order ---- */

/* A burst signed in on the ring while the committed state was still open: the writer judges it
 * in order; past the window's limit the guesses are PinLocked and the right PIN gets nothing. */
Test(service_lockout, burst_then_right_pin_in_one_group, .init = setup_lockout, .fini = fx_teardown)
{
    const struct fx_user *alice = &fx_users[FX_ALICE];
    enum { WRONG = 20 };
    struct svc_item *items[WRONG + 2];
    for (size_t i = 0; i < WRONG; i++) {
        items[i] = fx_signin_csr(0, SVC_ROUTE_EST_ENROLL, alice->phone, FX_WRONG_PIN);
    }
    items[WRONG] = fx_signin_csr(0, SVC_ROUTE_EST_ENROLL, alice->phone, alice->pin);
    items[WRONG + 1] = fx_signin_csr(0, SVC_ROUTE_SOAP, alice->ext, alice->pin);
    int64_t t0 = clock_real_s();
    fx_turn(0, items, WRONG + 2);
    fx_wait_answers(WRONG + 2);
    for (size_t i = 0; i < WRONG + 2; i++) {
        expect_refused(fx_answer(i),
                       i < WINDOW ? SIGNER_CODE_AUTHENTICATION_FAILED : SIGNER_CODE_PIN_LOCKED);
    }
    expect_alike(fx_answer(WINDOW), fx_answer(WRONG));
    cr_assert_eq(cert_count(), 0, "a certificate for a locked user");
    struct store_lockout l = fx_lockout(alice->uri);
    cr_assert_eq(l.total_failures, WRONG, "every wrong guess counts");
    cr_assert_geq(l.locked_until_s, t0 + (int64_t)g_fx.cfg.pin.lock_s);
    cr_assert_eq(l.window_failures, 0, "the window ended with the lock");
    cr_assert_eq(atomic_load(&g_fx.svc->metrics.lockouts), 1);
}

/* The right PIN signed in on the ring before the guesses that lock were committed, queued after
 * them in another turn: refused. */
Test(service_lockout, right_pin_queued_after_the_locking_group, .init = setup_lockout,
     .fini = fx_teardown)
{
    const struct fx_user *alice = &fx_users[FX_ALICE];
    struct svc_item *wrong[WINDOW];
    for (size_t i = 0; i < WINDOW; i++) {
        wrong[i] = fx_signin_csr(0, SVC_ROUTE_EST_ENROLL, alice->ext, FX_WRONG_PIN);
    }
    struct svc_item *right = fx_signin_csr(0, SVC_ROUTE_EST_ENROLL, alice->phone, alice->pin);
    fx_turn(0, wrong, WINDOW);
    fx_wait_answers(WINDOW);
    fx_turn(0, &right, 1);
    fx_wait_answers(WINDOW + 1);
    for (size_t i = 0; i < WINDOW; i++) {
        expect_refused(fx_answer(i), SIGNER_CODE_AUTHENTICATION_FAILED);
    }
    expect_refused(fx_answer(WINDOW), SIGNER_CODE_PIN_LOCKED);
    cr_assert_eq(cert_count(), 0);
    cr_assert_eq(fx_lockout(alice->uri).total_failures, WINDOW, "a right PIN is not counted");
}

/* ---- item 3: failures survive a failed certificate commit ---- */

/* Each group: an enrollment and a wrong PIN of dave's, on a store filled until not even a small
 * certificate fits. The group's commit fails and the failure is committed alone (the store keeps
 * the map's last pages from certificates for this): dave locks at the limit as if nothing had
 * failed, and his right PIN is refused afterwards. */
Test(service_lockout, full_store_still_counts_failures_and_locks, .init = setup_full,
     .fini = fx_teardown)
{
    cr_assert_gt(fx_fill_store(), 0);
    const struct fx_user *dave = &fx_users[FX_DAVE];
    size_t answered = 0;
    int64_t t0 = clock_real_s();
    for (uint32_t g = 1; g <= WINDOW + 2; g++) {
        struct svc_item *items[2] = {
            fx_enroll(0, g % 2 ? SVC_ROUTE_EST_ENROLL : SVC_ROUTE_SOAP,
                      (enum fx_user_id)(g % 3)), /* alice, bob, carol */
            fx_signin_csr(0, SVC_ROUTE_EST_ENROLL, dave->ext, FX_WRONG_PIN),
        };
        fx_turn(0, items, 2);
        answered += 2;
        fx_wait_answers(answered);
        const struct fx_answer *cert = fx_answer(answered - 2);
        cr_assert_eq(cert->code, SIGNER_CODE_STORE_UNAVAILABLE, "group %u: Code %d", g, cert->code);
        cr_assert_str_eq(cert->reason, store_full_reason);
        expect_refused(fx_answer(answered - 1),
                       g <= WINDOW ? SIGNER_CODE_AUTHENTICATION_FAILED : SIGNER_CODE_PIN_LOCKED);
        cr_assert_eq(fx_lockout(dave->uri).total_failures, g, "group %u's failure was lost", g);
    }
    struct store_lockout l = fx_lockout(dave->uri);
    cr_assert_geq(l.locked_until_s, t0 + (int64_t)g_fx.cfg.pin.lock_s, "dave is locked");
    struct svc_item *right = fx_signin_csr(0, SVC_ROUTE_EST_ENROLL, dave->ext, dave->pin);
    fx_turn(0, &right, 1);
    fx_wait_answers(answered + 1);
    expect_refused(fx_answer(answered), SIGNER_CODE_PIN_LOCKED);
    cr_assert_eq(atomic_load(&g_fx.svc->store_fault), STORE_FAULT_MAP_FULL);
}

/* Nothing can be written, not even the failures alone: every sign-in of the group gets the
 * commit's failure, a right PIN and a wrong one alike (answered otherwise, PINs could be guessed
 * without limit while no guess is counted). */
Test(service_lockout, unrecordable_failures_answer_every_sign_in_alike, .init = setup_read_only,
     .fini = fx_teardown)
{
    const struct fx_user *bob = &fx_users[FX_BOB];
    struct svc_item *items[4] = {
        fx_enroll(0, SVC_ROUTE_EST_ENROLL, FX_ALICE),
        fx_signin_csr(0, SVC_ROUTE_EST_ENROLL, bob->phone, FX_WRONG_PIN),
        fx_signin_csr(0, SVC_ROUTE_EST_ENROLL, FX_UNKNOWN_PHONE, bob->pin),
        fx_signin_csr(0, SVC_ROUTE_EST_ENROLL, bob->phone, bob->pin),
    };
    /* bob's right PIN with a CSR the ring refused: its own answer would be BadCsr. */
    items[3]->failed = true;
    items[3]->fail = SIGNER_CODE_BAD_CSR;
    items[3]->why = SIGNER_REASON_CSR_WEAK_HASH;
    (void)base_str_copy(items[3]->reason, sizeof(items[3]->reason), "weak key");
    fx_turn(0, items, 4);
    fx_wait_answers(4);
    cr_assert_eq(fx_answer(0)->code, SIGNER_CODE_STORE_UNAVAILABLE);
    cr_assert_str_eq(fx_answer(0)->reason,
                     "The certificate store cannot be written now; try again later");
    for (size_t i = 1; i < 4; i++) {
        expect_alike(fx_answer(0), fx_answer(i));
    }
    cr_assert_eq(fx_lockout(bob->uri).total_failures, 0);
}

/* ---- item 4: shared phone numbers ---- */

/* carol is locked, dave (same phone number) is not: carol's right PIN is answered like a wrong
 * one (401: a candidate is open), is not tested against her, and counts a failure for dave. */
Test(service_lockout, shared_phone_locked_users_pin_neither_revealed_nor_tested,
     .init = setup_lockout, .fini = fx_teardown)
{
    const struct fx_user *carol = &fx_users[FX_CAROL];
    const struct fx_user *dave = &fx_users[FX_DAVE];
    put_lock(FX_CAROL, false, 7);
    struct svc_item *items[3] = {
        fx_signin_csr(0, SVC_ROUTE_EST_ENROLL, FX_SHARED_PHONE, carol->pin),
        fx_signin_csr(0, SVC_ROUTE_EST_ENROLL, FX_SHARED_PHONE, FX_WRONG_PIN),
        fx_signin_csr(0, SVC_ROUTE_EST_ENROLL, FX_SHARED_PHONE, dave->pin),
    };
    fx_turn(0, items, 3);
    fx_wait_answers(3);
    expect_refused(fx_answer(0), SIGNER_CODE_AUTHENTICATION_FAILED);
    expect_alike(fx_answer(0), fx_answer(1));
    expect_certificate(fx_answer(2));
    cr_assert_str_eq(fx_answer(2)->meta.uri, dave->uri);
    /* carol: the wrong PIN counted (total only, she is locked), her right one did not. dave:
     * both failed sign-ins could have been his; his own sign-in then ended the window. */
    struct store_lockout c = fx_lockout(carol->uri);
    cr_assert_eq(c.total_failures, 8);
    struct store_lockout d = fx_lockout(dave->uri);
    cr_assert_eq(d.total_failures, 2);
    cr_assert_eq(d.window_failures, 0);
    cr_assert_eq(cert_count(), 1);
}

/* Every user of the number locked: PinLocked whatever the PIN, and each wrong one counts. */
Test(service_lockout, shared_phone_all_locked_pin_locked_whatever_the_pin, .init = setup_lockout,
     .fini = fx_teardown)
{
    put_lock(FX_CAROL, false, 7);
    put_lock(FX_DAVE, true, 7);
    struct svc_item *items[3] = {
        fx_signin_csr(0, SVC_ROUTE_EST_ENROLL, FX_SHARED_PHONE, fx_users[FX_CAROL].pin),
        fx_signin_csr(0, SVC_ROUTE_EST_ENROLL, FX_SHARED_PHONE, fx_users[FX_DAVE].pin),
        fx_signin_csr(0, SVC_ROUTE_EST_ENROLL, FX_SHARED_PHONE, FX_WRONG_PIN),
    };
    fx_turn(0, items, 3);
    fx_wait_answers(3);
    expect_refused(fx_answer(0), SIGNER_CODE_PIN_LOCKED);
    expect_alike(fx_answer(0), fx_answer(1));
    expect_alike(fx_answer(0), fx_answer(2));
    cr_assert_eq(fx_lockout(fx_users[FX_CAROL].uri).total_failures, 9);
    cr_assert_eq(fx_lockout(fx_users[FX_DAVE].uri).total_failures, 9);
}

/* ---- item 5: an unknown number costs what a wrong PIN costs ---- */

Test(service_lockout, unknown_number_writes_and_syncs_like_a_wrong_pin, .init = setup_lockout,
     .fini = fx_teardown)
{
    struct svc_metrics *m = &g_fx.svc->metrics;
    struct svc_item *it = fx_signin_csr(0, SVC_ROUTE_EST_ENROLL, FX_UNKNOWN_PHONE, FX_WRONG_PIN);
    fx_turn(0, &it, 1);
    fx_wait_answers(1);
    expect_refused(fx_answer(0), SIGNER_CODE_AUTHENTICATION_FAILED);
    cr_assert_eq(atomic_load(&m->commit_us.count), 1, "an unknown number's failure commits");
    uint64_t unknown = 0;
    cr_assert_eq(store_unknown_get(g_fx.st, &unknown), 0);
    cr_assert_eq(unknown, 1);
    /* A wrong PIN of a known user: one commit too, and the user's failure, not the decoy. */
    it = fx_signin_csr(0, SVC_ROUTE_EST_ENROLL, fx_users[FX_BOB].phone, FX_WRONG_PIN);
    fx_turn(0, &it, 1);
    fx_wait_answers(2);
    expect_alike(fx_answer(0), fx_answer(1));
    cr_assert_eq(atomic_load(&m->commit_us.count), 2);
    cr_assert_eq(store_unknown_get(g_fx.st, &unknown), 0);
    cr_assert_eq(unknown, 1);
    cr_assert_eq(fx_lockout(fx_users[FX_BOB].uri).total_failures, 1);
}
