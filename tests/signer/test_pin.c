#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "signer/signer.h"
#include "tests/util/tmpdir.h"

static struct signer_pin_policy policy;

static void setup(void)
{
    signer_pin_policy_default(&policy);
}

static enum signer_reject check(const char *pin, const char *ext, const char *phone)
{
    enum signer_reject r = SIGNER_REJECT_NONE;
    int rc = signer_pin_policy_check(&policy, &r, pin, ext, phone);
    cr_assert_eq(rc == 0, r == SIGNER_REJECT_NONE, "rc=%d reason=%d for %s", rc, r, pin);
    if (rc != 0) {
        cr_assert_eq(rc, -EPERM);
    }
    return r;
}

Test(signer_pin_policy, accepts_good_pins, .init = setup)
{
    cr_assert_eq(check("27182", "", ""), SIGNER_REJECT_NONE);
    cr_assert_eq(check("31415926", "1234", "+14255550100"), SIGNER_REJECT_NONE);
    cr_assert_eq(check("13579", NULL, NULL), SIGNER_REJECT_NONE);
}

Test(signer_pin_policy, refuses_length, .init = setup)
{
    cr_assert_eq(check("", "", ""), SIGNER_REJECT_PIN_LENGTH);
    cr_assert_eq(check("2718", "", ""), SIGNER_REJECT_PIN_LENGTH);
    cr_assert_eq(check("271828182845904523536028747135266", "", ""), SIGNER_REJECT_PIN_LENGTH);
    policy.min_len = 4;
    cr_assert_eq(check("2718", "", ""), SIGNER_REJECT_NONE);
}

Test(signer_pin_policy, refuses_non_digits, .init = setup)
{
    cr_assert_eq(check("2718a", "", ""), SIGNER_REJECT_PIN_DIGITS);
    cr_assert_eq(check("27 182", "", ""), SIGNER_REJECT_PIN_DIGITS);
    cr_assert_eq(check("-27182", "", ""), SIGNER_REJECT_PIN_DIGITS);
}

Test(signer_pin_policy, refuses_runs, .init = setup)
{
    cr_assert_eq(check("11111", "", ""), SIGNER_REJECT_PIN_PATTERN);
    cr_assert_eq(check("12345", "", ""), SIGNER_REJECT_PIN_PATTERN);
    cr_assert_eq(check("54321", "", ""), SIGNER_REJECT_PIN_PATTERN);
    cr_assert_eq(check("67890", "", ""), SIGNER_REJECT_PIN_PATTERN);
    cr_assert_eq(check("09876", "", ""), SIGNER_REJECT_PIN_PATTERN);
    cr_assert_eq(check("123456789", "", ""), SIGNER_REJECT_PIN_PATTERN);
    cr_assert_eq(check("12346", "", ""), SIGNER_REJECT_NONE);
}

Test(signer_pin_policy, refuses_own_numbers, .init = setup)
{
    cr_assert_eq(check("40571", "40571", ""), SIGNER_REJECT_PIN_EXTENSION);
    cr_assert_eq(check("50100", "", "+14255550100"), SIGNER_REJECT_PIN_EXTENSION);
    cr_assert_eq(check("4255550100", "", "+14255550100"), SIGNER_REJECT_PIN_EXTENSION);
    cr_assert_eq(check("50101", "40571", "+14255550100"), SIGNER_REJECT_NONE);
}

static char dir[TMPDIR_PATH_MAX];
static char keypath[128];

static void key_setup(void)
{
    tmpdir_create(dir, sizeof(dir), "certprov-pin");
    snprintf(keypath, sizeof(keypath), "%s/pin.key", dir);
}

static void key_teardown(void)
{
    tmpdir_remove(dir);
}

Test(signer_pin_key, create_load_and_verify, .init = key_setup, .fini = key_teardown)
{
    struct signer_pin_key *key = NULL;
    cr_assert_eq(signer_pin_key_load(&key, keypath, false), -ENOENT);
    cr_assert_null(key);
    cr_assert_eq(signer_pin_key_load(&key, keypath, true), 0);
    struct stat st;
    cr_assert_eq(stat(keypath, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0600);
    cr_assert_eq(st.st_size, SIGNER_PIN_KEY_LEN);

    uint8_t v[STORE_VERIFIER_LEN];
    uint8_t w[STORE_VERIFIER_LEN];
    signer_pin_verifier(key, v, "sip:alice@example.com", "27182");
    cr_assert(signer_pin_matches(key, v, "sip:alice@example.com", "27182"));
    cr_assert_not(signer_pin_matches(key, v, "sip:alice@example.com", "27183"));
    cr_assert_not(signer_pin_matches(key, v, "sip:bob@example.com", "27182"));
    /* The verifier is keyed: the same PIN of another user gives another value. */
    signer_pin_verifier(key, w, "sip:bob@example.com", "27182");
    cr_assert_neq(memcmp(v, w, sizeof(v)), 0);

    /* Reloading gives the same key (same verifier); a fresh key gives another one. */
    struct signer_pin_key *again = NULL;
    cr_assert_eq(signer_pin_key_load(&again, keypath, true), 0);
    cr_assert(signer_pin_matches(again, v, "sip:alice@example.com", "27182"));
    signer_pin_key_free(again);
    signer_pin_key_free(key);
    signer_pin_key_free(NULL);
}

Test(signer_pin_key, refuses_exposed_or_damaged_file, .init = key_setup, .fini = key_teardown)
{
    struct signer_pin_key *key = NULL;
    cr_assert_eq(signer_pin_key_load(&key, keypath, true), 0);
    signer_pin_key_free(key);
    key = NULL;
    cr_assert_eq(chmod(keypath, 0644), 0);
    cr_assert_eq(signer_pin_key_load(&key, keypath, false), -EPERM);
    cr_assert_eq(chmod(keypath, 0600), 0);
    FILE *f = fopen(keypath, "a");
    cr_assert_not_null(f);
    fputc('x', f);
    fclose(f);
    cr_assert_eq(signer_pin_key_load(&key, keypath, false), -EBADMSG);
    cr_assert_eq(truncate(keypath, 5), 0);
    cr_assert_eq(signer_pin_key_load(&key, keypath, false), -EBADMSG);
    cr_assert_null(key);
}

Test(signer_lockout, window_locks_temporarily, .init = setup)
{
    struct store_lockout l = {0};
    int64_t now = 1000000;
    for (uint32_t i = 1; i < policy.window_failures_max; i++) {
        cr_assert_not(signer_lockout_fail(&policy, &l, 5, now + i));
        cr_assert_eq(signer_lockout_check(&l, now + i), SIGNER_LOCKOUT_OPEN);
    }
    cr_assert(signer_lockout_fail(&policy, &l, 5, now + 100));
    cr_assert_eq(signer_lockout_check(&l, now + 100), SIGNER_LOCKOUT_TEMPORARY);
    cr_assert_eq(l.locked_until_s, now + 100 + policy.lock_s);
    cr_assert_eq(signer_lockout_check(&l, now + 100 + policy.lock_s), SIGNER_LOCKOUT_OPEN);
    cr_assert_eq(l.total_failures, policy.window_failures_max);
}

Test(signer_lockout, four_digit_pins_lock_sooner, .init = setup)
{
    struct store_lockout l = {0};
    for (uint32_t i = 1; i < policy.window_failures_max_short; i++) {
        cr_assert_not(signer_lockout_fail(&policy, &l, 4, 500));
    }
    cr_assert(signer_lockout_fail(&policy, &l, 4, 500));
    cr_assert_eq(policy.window_failures_max_short, 10);
}

Test(signer_lockout, window_expires_and_success_resets_it, .init = setup)
{
    struct store_lockout l = {0};
    int64_t now = 5000;
    for (int i = 0; i < 20; i++) {
        signer_lockout_fail(&policy, &l, 6, now);
    }
    cr_assert_eq(l.window_failures, 20);
    /* 30 minutes later a new window starts: 24 more failures do not lock. */
    now += policy.window_s;
    for (int i = 0; i < 24; i++) {
        cr_assert_not(signer_lockout_fail(&policy, &l, 6, now));
    }
    cr_assert_eq(l.window_failures, 24);
    cr_assert(signer_lockout_success(&l));
    cr_assert_eq(l.window_failures, 0);
    cr_assert_eq(l.total_failures, 44);
    cr_assert_not(signer_lockout_success(&l));
    for (int i = 0; i < 24; i++) {
        cr_assert_not(signer_lockout_fail(&policy, &l, 6, now));
    }
}

Test(signer_lockout, total_failures_lock_until_admin, .init = setup)
{
    struct store_lockout l = {.total_failures = policy.total_failures_max - 1};
    cr_assert(signer_lockout_fail(&policy, &l, 6, 77));
    cr_assert_eq(signer_lockout_check(&l, 77 + 365 * 86400), SIGNER_LOCKOUT_ADMIN);
    struct store_lockout s = {.total_failures = policy.total_failures_max_short - 1};
    cr_assert(signer_lockout_fail(&policy, &s, 4, 77));
    cr_assert_eq(signer_lockout_check(&s, 78), SIGNER_LOCKOUT_ADMIN);
}

/* While a user is locked every wrong PIN still counts toward the total (a locked account must not
 * be a free oracle: guesses are limited by total_failures_max whatever the lock), but the window
 * and the lock's end stay as they are: guessing does not extend a temporary lock. */
Test(signer_lockout, locked_users_failure_counts_toward_the_total_only, .init = setup)
{
    int64_t now = 2000000;
    struct store_lockout l = {
        .total_failures = 25, .locked_until_s = now + 3600, .last_failure_s = now - 5};
    for (uint32_t i = 1; i <= 3; i++) {
        cr_assert_not(signer_lockout_fail(&policy, &l, 6, now + i), "already locked");
        cr_assert_eq(l.total_failures, 25 + i);
        cr_assert_eq(l.window_failures, 0);
        cr_assert_eq(l.window_start_s, 0);
        cr_assert_eq(l.locked_until_s, now + 3600, "the lock is not extended");
        cr_assert_eq(l.last_failure_s, now + i);
        cr_assert_not(l.admin_locked);
        cr_assert_eq(signer_lockout_check(&l, now + i), SIGNER_LOCKOUT_TEMPORARY);
    }
    /* A window open at the time of the lock is kept as it is too. */
    struct store_lockout w = {.window_failures = 4,
                              .window_start_s = now - 100,
                              .total_failures = 9,
                              .locked_until_s = now + 60};
    cr_assert_not(signer_lockout_fail(&policy, &w, 6, now));
    cr_assert_eq(w.window_failures, 4);
    cr_assert_eq(w.window_start_s, now - 100);
    cr_assert_eq(w.total_failures, 10);
}

Test(signer_lockout, locked_users_failures_reach_the_admin_lock, .init = setup)
{
    int64_t now = 3000000;
    struct store_lockout l = {.total_failures = policy.total_failures_max - 1,
                              .locked_until_s = now + 3600};
    /* The temporary lock becomes an administrator's: that is a new lock, reported as one. */
    cr_assert(signer_lockout_fail(&policy, &l, 6, now));
    cr_assert(l.admin_locked);
    cr_assert_eq(l.total_failures, policy.total_failures_max);
    cr_assert_eq(l.locked_until_s, now + 3600);
    cr_assert_eq(signer_lockout_check(&l, now + 7200), SIGNER_LOCKOUT_ADMIN);
    /* Admin-locked: counted, nothing else changes, no new lock. */
    cr_assert_not(signer_lockout_fail(&policy, &l, 6, now + 1));
    cr_assert_eq(l.total_failures, policy.total_failures_max + 1);
    cr_assert_eq(l.window_failures, 0);
    cr_assert(l.admin_locked);
    /* The short maximum for 4-digit PINs. */
    struct store_lockout s = {.total_failures = policy.total_failures_max_short - 1,
                              .locked_until_s = now + 10};
    cr_assert(signer_lockout_fail(&policy, &s, 4, now));
    cr_assert(s.admin_locked);
}

/* The lock ends: the next failure opens a new window, as before. */
Test(signer_lockout, failure_after_the_lock_ended_opens_a_new_window, .init = setup)
{
    int64_t now = 4000000;
    struct store_lockout l = {.total_failures = 25, .locked_until_s = now};
    cr_assert_not(signer_lockout_fail(&policy, &l, 6, now));
    cr_assert_eq(l.window_failures, 1);
    cr_assert_eq(l.window_start_s, now);
    cr_assert_eq(l.total_failures, 26);
}
