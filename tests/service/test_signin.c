/* Tests of the sign-in decisions (svc_authenticate) against real users in a real store: unknown
 * numbers and wrong PINs look the same, phone and extension both sign in, locked users are
 * refused whatever the PIN, and users sharing a phone number are told apart by their PIN. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "base/base.h"
#include "service/internal.h"
#include "tests/service/fixture.h"

static const char *const auth_failed_reason =
    "The phone number or extension and PIN do not match a user";

static void expect_failed(const struct svc_item *it, enum signer_code code)
{
    cr_assert(it->failed);
    cr_assert_eq(it->fail, code, "%s, want %s: %s", signer_code_name(it->fail),
                 signer_code_name(code), it->reason);
    cr_assert_str_empty(it->user.uri, "a failed sign-in names no user");
    cr_assert_not(it->pin_success);
}

static void expect_user(const struct svc_item *it, enum fx_user_id u)
{
    cr_assert_not(it->failed, "%s: %s", fx_users[u].uri, it->reason);
    cr_assert_eq(it->num_pin_failures, 0);
    struct store_user want;
    cr_assert_eq(store_user_get(g_fx.st, &want, fx_users[u].uri), 0);
    cr_assert_eq(memcmp(&it->user, &want, sizeof(want)), 0, "it->user is the stored %s",
                 fx_users[u].uri);
}

static void expect_failure_listed(const struct svc_item *it, size_t i, enum fx_user_id u)
{
    cr_assert_lt(i, it->num_pin_failures);
    cr_assert_str_eq(it->pin_failures[i].uri, fx_users[u].uri);
    cr_assert_eq(it->pin_failures[i].pin_len, strlen(fx_users[u].pin));
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
    struct svc_item *unknown = fx_signin(0, SVC_ROUTE_EST_ENROLL, FX_UNKNOWN_PHONE, alice->pin);
    struct svc_item *unknown_ext = fx_signin(0, SVC_ROUTE_SOAP, "9999", alice->pin);
    struct svc_item *wrong = fx_signin(0, SVC_ROUTE_EST_ENROLL, alice->phone, FX_WRONG_PIN);
    struct svc_item *wrong_ext = fx_signin(0, SVC_ROUTE_SOAP, alice->ext, FX_WRONG_PIN);
    struct svc_item *all[] = {unknown, unknown_ext, wrong, wrong_ext};
    for (size_t i = 0; i < 4; i++) {
        expect_failed(all[i], SIGNER_CODE_AUTHENTICATION_FAILED);
        cr_assert_str_eq(all[i]->reason, auth_failed_reason, "item %zu", i);
    }
    /* Only a known user's wrong PIN is a failure to record. */
    cr_assert_eq(unknown->num_pin_failures, 0);
    cr_assert_eq(unknown_ext->num_pin_failures, 0);
    cr_assert_eq(wrong->num_pin_failures, 1);
    expect_failure_listed(wrong, 0, FX_ALICE);
    cr_assert_eq(wrong_ext->num_pin_failures, 1);
    expect_failure_listed(wrong_ext, 0, FX_ALICE);
    cr_assert_eq(atomic_load(&g_fx.svc->metrics.pin_failures), 4);
    /* Deciding wrote nothing: the writer records failures. */
    struct store_lockout l = fx_lockout(alice->uri);
    cr_assert_eq(l.total_failures, 0);
    for (size_t i = 0; i < 4; i++) {
        svc_item_release(g_fx.svc, all[i]);
    }
}

Test(service_signin, wrong_pin_of_every_kind, .init = fx_setup, .fini = fx_teardown)
{
    const struct fx_user *bob = &fx_users[FX_BOB];
    /* Another user's PIN, an empty PIN, a longer PIN that starts with the right one. */
    char longer[32];
    (void)snprintf(longer, sizeof(longer), "%s0", bob->pin);
    const char *pins[] = {fx_users[FX_ALICE].pin, "", longer, "48291"};
    for (size_t i = 0; i < sizeof(pins) / sizeof(pins[0]); i++) {
        struct svc_item *it = fx_signin(0, SVC_ROUTE_EST_ENROLL, bob->phone, pins[i]);
        expect_failed(it, SIGNER_CODE_AUTHENTICATION_FAILED);
        cr_assert_str_eq(it->reason, auth_failed_reason);
        cr_assert_eq(it->num_pin_failures, 1, "PIN '%s'", pins[i]);
        expect_failure_listed(it, 0, FX_BOB);
        svc_item_release(g_fx.svc, it);
    }
}

Test(service_signin, right_pin_by_phone_and_by_extension, .init = fx_setup, .fini = fx_teardown)
{
    for (int u = FX_ALICE; u < FX_USERS_MAX_; u++) {
        const struct fx_user *user = &fx_users[u];
        struct svc_item *by_ext = fx_signin(0, SVC_ROUTE_SOAP, user->ext, user->pin);
        expect_user(by_ext, (enum fx_user_id)u);
        cr_assert_not(by_ext->pin_success, "nothing to reset on a clean record");
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

Test(service_signin, right_pin_after_failures_resets_the_window, .init = fx_setup,
     .fini = fx_teardown)
{
    const struct fx_user *alice = &fx_users[FX_ALICE];
    struct store_lockout l = {.window_failures = 2,
                              .window_start_s = clock_real_s() - 10,
                              .total_failures = 2,
                              .last_failure_s = clock_real_s() - 5};
    cr_assert_eq(store_lockout_put(g_fx.st, alice->uri, &l), 0);
    struct svc_item *it = fx_signin(0, SVC_ROUTE_EST_ENROLL, alice->phone, alice->pin);
    expect_user(it, FX_ALICE);
    cr_assert(it->pin_success, "the writer must reset the failure window");
    svc_item_release(g_fx.svc, it);
}

static void locked_whatever_the_pin(bool admin)
{
    const struct fx_user *alice = &fx_users[FX_ALICE];
    put_lock(FX_ALICE, admin);
    struct svc_item *right = fx_signin(0, SVC_ROUTE_EST_ENROLL, alice->phone, alice->pin);
    struct svc_item *right_ext = fx_signin(0, SVC_ROUTE_SOAP, alice->ext, alice->pin);
    struct svc_item *wrong = fx_signin(0, SVC_ROUTE_EST_ENROLL, alice->phone, FX_WRONG_PIN);
    expect_failed(right, SIGNER_CODE_PIN_LOCKED);
    expect_failed(right_ext, SIGNER_CODE_PIN_LOCKED);
    expect_failed(wrong, SIGNER_CODE_PIN_LOCKED);
    /* While locked, a guess is not counted (nothing more to lock) ... */
    cr_assert_eq(right->num_pin_failures, 0);
    cr_assert_eq(wrong->num_pin_failures, 0);
    /* ... so the answer must not tell a right PIN from a wrong one, or a locked account could
     * be guessed without limit. */
    cr_assert_str_eq(right->reason, wrong->reason);
    cr_assert_str_eq(right_ext->reason, wrong->reason);
    svc_item_release(g_fx.svc, right);
    svc_item_release(g_fx.svc, right_ext);
    svc_item_release(g_fx.svc, wrong);
    /* Bob is not affected. */
    struct svc_item *bob =
        fx_signin(0, SVC_ROUTE_EST_ENROLL, fx_users[FX_BOB].phone, fx_users[FX_BOB].pin);
    expect_user(bob, FX_BOB);
    svc_item_release(g_fx.svc, bob);
}

Test(service_signin, locked_user_gets_pin_locked_whatever_the_pin, .init = fx_setup,
     .fini = fx_teardown)
{
    locked_whatever_the_pin(false);
}

Test(service_signin, admin_locked_user_gets_pin_locked_whatever_the_pin, .init = fx_setup,
     .fini = fx_teardown)
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
    expect_failed(it, SIGNER_CODE_AUTHENTICATION_FAILED);
    cr_assert_eq(it->num_pin_failures, 1);
    svc_item_release(g_fx.svc, it);
}

Test(service_signin, shared_phone_the_pin_picks_the_user, .init = fx_setup, .fini = fx_teardown)
{
    struct svc_item *carol =
        fx_signin(0, SVC_ROUTE_EST_ENROLL, FX_SHARED_PHONE, fx_users[FX_CAROL].pin);
    expect_user(carol, FX_CAROL);
    struct svc_item *dave = fx_signin(0, SVC_ROUTE_SOAP, FX_SHARED_PHONE, fx_users[FX_DAVE].pin);
    expect_user(dave, FX_DAVE);
    /* A wrong PIN on the shared number counts against every user who has it. */
    struct svc_item *wrong = fx_signin(0, SVC_ROUTE_EST_ENROLL, FX_SHARED_PHONE, FX_WRONG_PIN);
    expect_failed(wrong, SIGNER_CODE_AUTHENTICATION_FAILED);
    cr_assert_str_eq(wrong->reason, auth_failed_reason);
    cr_assert_eq(wrong->num_pin_failures, 2);
    bool seen_carol = false;
    bool seen_dave = false;
    for (size_t i = 0; i < 2; i++) {
        seen_carol |= strcmp(wrong->pin_failures[i].uri, fx_users[FX_CAROL].uri) == 0;
        seen_dave |= strcmp(wrong->pin_failures[i].uri, fx_users[FX_DAVE].uri) == 0;
    }
    cr_assert(seen_carol && seen_dave);
    /* An extension is one user's: dave's PIN on carol's extension is wrong. */
    struct svc_item *cross =
        fx_signin(0, SVC_ROUTE_EST_ENROLL, fx_users[FX_CAROL].ext, fx_users[FX_DAVE].pin);
    expect_failed(cross, SIGNER_CODE_AUTHENTICATION_FAILED);
    cr_assert_eq(cross->num_pin_failures, 1);
    expect_failure_listed(cross, 0, FX_CAROL);
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
    struct svc_item *carol =
        fx_signin(0, SVC_ROUTE_EST_ENROLL, FX_SHARED_PHONE, fx_users[FX_CAROL].pin);
    expect_failed(carol, SIGNER_CODE_PIN_LOCKED);
    /* A wrong PIN counts only against the user who is not locked, and is an ordinary failure. */
    struct svc_item *wrong = fx_signin(0, SVC_ROUTE_EST_ENROLL, FX_SHARED_PHONE, FX_WRONG_PIN);
    expect_failed(wrong, SIGNER_CODE_AUTHENTICATION_FAILED);
    cr_assert_eq(wrong->num_pin_failures, 1);
    expect_failure_listed(wrong, 0, FX_DAVE);
    svc_item_release(g_fx.svc, dave);
    svc_item_release(g_fx.svc, carol);
    svc_item_release(g_fx.svc, wrong);
}
