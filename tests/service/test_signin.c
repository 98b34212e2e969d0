/* Tests of the ring's half of a sign-in (svc_authenticate) against real users in a real store:
 * every candidate of the login is recorded with whether the PIN matched it, the ring goes on
 * (CSR checks, signing) only with a matching user whose committed lockout state is open, and it
 * writes nothing; then the writer's judgement of the same items: unknown numbers and wrong PINs
 * look the same, phone and extension both sign in, users sharing a phone number are told apart
 * by their PIN, and a clean sign-in writes no lockout record. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "base/base.h"
#include "service/internal.h"
#include "tests/service/fixture.h"

static const char *const auth_failed_reason =
    "The phone number or extension and PIN do not match a user";

/* expect_held: the ring recorded the sign-in for the writer and did not go on with anyone. */
static void expect_held(const struct svc_item *it, size_t num_candidates)
{
    cr_assert(it->signin);
    cr_assert_not(it->failed, "the ring answers no sign-in: %s", it->reason);
    cr_assert_not(it->proceed);
    cr_assert_str_empty(it->user.uri, "a sign-in that does not go on names no user");
    cr_assert_eq(it->num_candidates, num_candidates);
}

static void expect_user(const struct svc_item *it, enum fx_user_id u)
{
    cr_assert(it->signin);
    cr_assert(it->proceed, "%s: the ring did not go on", fx_users[u].uri);
    cr_assert_not(it->failed, "%s: %s", fx_users[u].uri, it->reason);
    struct store_user want;
    cr_assert_eq(store_user_get(g_fx.st, &want, fx_users[u].uri), 0);
    cr_assert_eq(memcmp(&it->user, &want, sizeof(want)), 0, "it->user is the stored %s",
                 fx_users[u].uri);
}

/* expect_candidate: candidate i is user u, and the PIN matched it or not. */
static void expect_candidate(const struct svc_item *it, size_t i, enum fx_user_id u, bool pin_ok)
{
    cr_assert_lt(i, it->num_candidates);
    cr_assert_str_eq(it->candidates[i].uri, fx_users[u].uri);
    cr_assert_eq(it->candidates[i].pin_len, strlen(fx_users[u].pin));
    cr_assert_eq(it->candidates[i].pin_ok, pin_ok, "candidate %zu (%s)", i, fx_users[u].uri);
}

static void put_lock(enum fx_user_id u, bool admin)
{
    struct store_lockout l = {.total_failures = 7, .last_failure_s = clock_real_s()};
    if (admin) {
        l.admin_locked = true;
    } else {
        l.locked_until_s = clock_real_s() + 3600;
    }
    cr_assert_eq(store_lockout_put(g_fx.st, fx_users[u].uri, &l), 0);
}

Test(service_signin, unknown_number_and_wrong_pin_look_the_same, .init = fx_setup,
     .fini = fx_teardown)
{
    const struct fx_user *alice = &fx_users[FX_ALICE];
    struct svc_item *all[] = {
        fx_signin(0, SVC_ROUTE_EST_ENROLL, FX_UNKNOWN_PHONE, alice->pin),
        fx_signin(0, SVC_ROUTE_SOAP, "9999", alice->pin),
        fx_signin(0, SVC_ROUTE_EST_ENROLL, alice->phone, FX_WRONG_PIN),
        fx_signin(0, SVC_ROUTE_SOAP, alice->ext, FX_WRONG_PIN),
    };
    expect_held(all[0], 0);
    expect_held(all[1], 0);
    expect_held(all[2], 1);
    expect_candidate(all[2], 0, FX_ALICE, false);
    expect_held(all[3], 1);
    expect_candidate(all[3], 0, FX_ALICE, false);
    /* Deciding wrote nothing: the writer records failures. */
    cr_assert_eq(fx_lockout(alice->uri).total_failures, 0);
    fx_turn(0, all, 4);
    fx_wait_answers(4);
    for (size_t i = 0; i < 4; i++) {
        const struct fx_answer *a = fx_answer(i);
        cr_assert_eq(a->code, SIGNER_CODE_AUTHENTICATION_FAILED, "answer %zu", i);
        cr_assert_str_eq(a->reason, auth_failed_reason, "answer %zu", i);
        cr_assert_str_eq(a->diag, fx_answer(i % 2)->diag);
        cr_assert(a->www_authenticate);
    }
    /* Only a known user's wrong PIN is the user's failure; the unknown ones count as decoys. */
    cr_assert_eq(fx_lockout(alice->uri).total_failures, 2);
    uint64_t unknown = 0;
    cr_assert_eq(store_unknown_get(g_fx.st, &unknown), 0);
    cr_assert_eq(unknown, 2);
    cr_assert_eq(atomic_load(&g_fx.svc->metrics.pin_failures), 4);
}

Test(service_signin, wrong_pin_of_every_kind, .init = fx_setup, .fini = fx_teardown)
{
    const struct fx_user *bob = &fx_users[FX_BOB];
    /* Another user's PIN, an empty PIN, a longer PIN that starts with the right one. */
    char longer[32];
    (void)snprintf(longer, sizeof(longer), "%s0", bob->pin);
    const char *pins[] = {fx_users[FX_ALICE].pin, "", longer, "48291"};
    struct svc_item *items[4];
    for (size_t i = 0; i < 4; i++) {
        items[i] = fx_signin(0, SVC_ROUTE_EST_ENROLL, bob->phone, pins[i]);
        expect_held(items[i], 1);
        expect_candidate(items[i], 0, FX_BOB, false);
    }
    fx_turn(0, items, 4);
    fx_wait_answers(4);
    for (size_t i = 0; i < 4; i++) {
        cr_assert_eq(fx_answer(i)->code, SIGNER_CODE_AUTHENTICATION_FAILED, "PIN '%s'", pins[i]);
    }
    cr_assert_eq(fx_lockout(bob->uri).total_failures, 4);
}

Test(service_signin, right_pin_by_phone_and_by_extension, .init = fx_setup, .fini = fx_teardown)
{
    for (int u = FX_ALICE; u < FX_USERS_MAX_; u++) {
        const struct fx_user *user = &fx_users[u];
        struct svc_item *by_ext = fx_signin(0, SVC_ROUTE_SOAP, user->ext, user->pin);
        expect_user(by_ext, (enum fx_user_id)u);
        expect_candidate(by_ext, 0, (enum fx_user_id)u, true);
        svc_item_release(g_fx.svc, by_ext);
    }
    for (int u = FX_ALICE; u <= FX_BOB; u++) {
        const struct fx_user *user = &fx_users[u];
        struct svc_item *by_phone = fx_signin(0, SVC_ROUTE_EST_ENROLL, user->phone, user->pin);
        expect_user(by_phone, (enum fx_user_id)u);
        svc_item_release(g_fx.svc, by_phone);
    }
    cr_assert_eq(atomic_load(&g_fx.svc->metrics.pin_failures), 0);
}

/* A right PIN whose CSR the ring refused: the writer judges the sign-in first and answers the
 * CSR's error after it. The refusal is recorded as the user's last refusal (certprovctl user
 * show), with the window's reset when there were failures, in one commit before the answer. (A
 * clean success writes nothing: test_reasons.c last_refusal_is_kept_with_the_lockout_record.) */
static void right_pin_bad_csr(bool failures_before)
{
    const struct fx_user *alice = &fx_users[FX_ALICE];
    struct store_lockout l = {0};
    if (failures_before) {
        l = (struct store_lockout){.window_failures = 2,
                                   .window_start_s = clock_real_s() - 10,
                                   .total_failures = 2,
                                   .last_failure_s = clock_real_s() - 5};
        cr_assert_eq(store_lockout_put(g_fx.st, alice->uri, &l), 0);
    }
    fx_watch(alice->uri);
    struct svc_item *it = fx_signin(0, SVC_ROUTE_EST_ENROLL, alice->phone, alice->pin);
    expect_user(it, FX_ALICE);
    it->failed = true; /* what check_csr does with a weak key */
    it->fail = SIGNER_CODE_BAD_CSR;
    it->why = SIGNER_REASON_CSR_WEAK_HASH;
    (void)base_str_copy(it->reason, sizeof(it->reason), "weak key");
    fx_turn(0, &it, 1);
    fx_wait_answers(1);
    const struct fx_answer *a = fx_answer(0);
    cr_assert_eq(a->code, SIGNER_CODE_BAD_CSR);
    cr_assert_str_eq(a->reason, "weak key");
    cr_assert_eq(a->lockout.window_failures, 0, "reset before the answer");
    cr_assert_eq(a->lockout.window_start_s, 0);
    cr_assert_eq(a->lockout.total_failures, l.total_failures, "the total is kept");
    cr_assert_eq(a->lockout.last_refusal_reason, SIGNER_REASON_CSR_WEAK_HASH + 1);
    cr_assert_eq(a->lockout.last_refusal_code, SIGNER_CODE_BAD_CSR + 1);
    cr_assert_eq(atomic_load(&g_fx.svc->metrics.commit_us.count), 1,
                 "one commit: the refusal (and the reset)");
}

Test(service_signin, right_pin_bad_csr_records_the_refusal, .init = fx_setup, .fini = fx_teardown)
{
    right_pin_bad_csr(false);
}

Test(service_signin, right_pin_after_failures_resets_the_window, .init = fx_setup,
     .fini = fx_teardown)
{
    right_pin_bad_csr(true);
}

static void locked_whatever_the_pin(bool admin)
{
    const struct fx_user *alice = &fx_users[FX_ALICE];
    put_lock(FX_ALICE, admin);
    struct svc_item *right = fx_signin(0, SVC_ROUTE_EST_ENROLL, alice->phone, alice->pin);
    struct svc_item *right_ext = fx_signin(0, SVC_ROUTE_SOAP, alice->ext, alice->pin);
    struct svc_item *wrong = fx_signin(0, SVC_ROUTE_EST_ENROLL, alice->phone, FX_WRONG_PIN);
    /* The ring goes on with no locked user (no CSR check, no signature) and answers nothing: the
     * writer refuses all three alike (test_lockout.c). */
    expect_held(right, 1);
    expect_candidate(right, 0, FX_ALICE, true);
    expect_held(right_ext, 1);
    expect_held(wrong, 1);
    expect_candidate(wrong, 0, FX_ALICE, false);
    svc_item_release(g_fx.svc, right);
    svc_item_release(g_fx.svc, right_ext);
    svc_item_release(g_fx.svc, wrong);
    /* Bob is not affected. */
    struct svc_item *bob =
        fx_signin(0, SVC_ROUTE_EST_ENROLL, fx_users[FX_BOB].phone, fx_users[FX_BOB].pin);
    expect_user(bob, FX_BOB);
    svc_item_release(g_fx.svc, bob);
}

Test(service_signin, locked_user_is_not_gone_on_with, .init = fx_setup, .fini = fx_teardown)
{
    locked_whatever_the_pin(false);
}

Test(service_signin, admin_locked_user_is_not_gone_on_with, .init = fx_setup, .fini = fx_teardown)
{
    locked_whatever_the_pin(true);
}

Test(service_signin, expired_lock_lets_the_right_pin_in, .init = fx_setup, .fini = fx_teardown)
{
    const struct fx_user *alice = &fx_users[FX_ALICE];
    struct store_lockout l = {.total_failures = 25, .locked_until_s = clock_real_s() - 1};
    cr_assert_eq(store_lockout_put(g_fx.st, alice->uri, &l), 0);
    struct svc_item *it = fx_signin(0, SVC_ROUTE_EST_ENROLL, alice->phone, alice->pin);
    expect_user(it, FX_ALICE);
    svc_item_release(g_fx.svc, it);
    it = fx_signin(0, SVC_ROUTE_EST_ENROLL, alice->phone, FX_WRONG_PIN);
    expect_held(it, 1);
    expect_candidate(it, 0, FX_ALICE, false);
    svc_item_release(g_fx.svc, it);
}

Test(service_signin, shared_phone_the_pin_picks_the_user, .init = fx_setup, .fini = fx_teardown)
{
    struct svc_item *carol =
        fx_signin(0, SVC_ROUTE_EST_ENROLL, FX_SHARED_PHONE, fx_users[FX_CAROL].pin);
    expect_user(carol, FX_CAROL);
    cr_assert_eq(carol->num_candidates, 2);
    struct svc_item *dave = fx_signin(0, SVC_ROUTE_SOAP, FX_SHARED_PHONE, fx_users[FX_DAVE].pin);
    expect_user(dave, FX_DAVE);
    /* A wrong PIN on the shared number could have been either user's. */
    struct svc_item *wrong = fx_signin(0, SVC_ROUTE_EST_ENROLL, FX_SHARED_PHONE, FX_WRONG_PIN);
    expect_held(wrong, 2);
    bool seen_carol = false;
    bool seen_dave = false;
    for (size_t i = 0; i < 2; i++) {
        cr_assert_not(wrong->candidates[i].pin_ok);
        seen_carol |= strcmp(wrong->candidates[i].uri, fx_users[FX_CAROL].uri) == 0;
        seen_dave |= strcmp(wrong->candidates[i].uri, fx_users[FX_DAVE].uri) == 0;
    }
    cr_assert(seen_carol && seen_dave);
    /* An extension is one user's: dave's PIN on carol's extension is wrong. */
    struct svc_item *cross =
        fx_signin(0, SVC_ROUTE_EST_ENROLL, fx_users[FX_CAROL].ext, fx_users[FX_DAVE].pin);
    expect_held(cross, 1);
    expect_candidate(cross, 0, FX_CAROL, false);
    svc_item_release(g_fx.svc, carol);
    svc_item_release(g_fx.svc, dave);
    svc_item_release(g_fx.svc, wrong);
    svc_item_release(g_fx.svc, cross);
}

Test(service_signin, shared_phone_with_one_user_locked, .init = fx_setup, .fini = fx_teardown)
{
    put_lock(FX_CAROL, false);
    struct svc_item *dave =
        fx_signin(0, SVC_ROUTE_EST_ENROLL, FX_SHARED_PHONE, fx_users[FX_DAVE].pin);
    expect_user(dave, FX_DAVE);
    /* carol's right PIN: recorded as such for the writer, but the ring goes on with nobody. */
    struct svc_item *carol =
        fx_signin(0, SVC_ROUTE_EST_ENROLL, FX_SHARED_PHONE, fx_users[FX_CAROL].pin);
    expect_held(carol, 2);
    struct svc_item *wrong = fx_signin(0, SVC_ROUTE_EST_ENROLL, FX_SHARED_PHONE, FX_WRONG_PIN);
    expect_held(wrong, 2);
    svc_item_release(g_fx.svc, dave);
    svc_item_release(g_fx.svc, carol);
    svc_item_release(g_fx.svc, wrong);
}
