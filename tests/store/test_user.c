#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <string.h>

#include "tests/store/fixture.h"

TestSuite(store_user, .init = fixture_init, .fini = fixture_fini);

Test(store_user, add_get_del)
{
    struct store_user u, got;
    make_user(&u, "sip:alice@example.com", "+4930123456", "100");
    cr_assert_eq(store_user_add(g_st, &u), 0);
    cr_assert_eq(store_user_get(g_st, &got, "sip:alice@example.com"), 0);
    cr_assert_str_eq(got.uri, u.uri);
    cr_assert_str_eq(got.pool, "pool-a");
    cr_assert_str_eq(got.phone, "+4930123456");
    cr_assert_str_eq(got.ext, "100");
    cr_assert_eq(memcmp(got.pin_verifier, u.pin_verifier, sizeof(u.pin_verifier)), 0);
    cr_assert_eq(got.pin_len, 4);
    cr_assert_eq(got.created_s, u.created_s);
    cr_assert_eq(store_user_del(g_st, "sip:alice@example.com"), 0);
    cr_assert_eq(store_user_get(g_st, &got, "sip:alice@example.com"), -ENOENT);
    cr_assert_eq(store_user_del(g_st, "sip:alice@example.com"), -ENOENT);
    size_t n = 9;
    struct store_user out[2];
    cr_assert_eq(store_user_lookup(g_st, out, 2, &n, "+4930123456"), 0);
    cr_assert_eq(n, 0);
    /* The phone+extension pair is free again. */
    make_user(&u, "sip:bob@example.com", "+4930123456", "100");
    cr_assert_eq(store_user_add(g_st, &u), 0);
}

Test(store_user, get_unknown_is_enoent)
{
    struct store_user got;
    cr_assert_eq(store_user_get(g_st, &got, "sip:nobody@example.com"), -ENOENT);
    cr_assert_eq(store_user_get(g_st, &got, ""), -ENOENT);
}

Test(store_user, duplicate_uri_is_eexist)
{
    struct store_user u;
    make_user(&u, "sip:alice@example.com", "+4930123456", "100");
    cr_assert_eq(store_user_add(g_st, &u), 0);
    make_user(&u, "sip:alice@example.com", "+4930999999", "200");
    cr_assert_eq(store_user_add(g_st, &u), -EEXIST);
    size_t n = 9;
    struct store_user out[2];
    cr_assert_eq(store_user_lookup(g_st, out, 2, &n, "200"), 0);
    cr_assert_eq(n, 0, "the failed add left no index entry");
}

Test(store_user, same_phone_and_ext_is_enotuniq)
{
    struct store_user u;
    make_user(&u, "sip:alice@example.com", "+4930123456", "100");
    cr_assert_eq(store_user_add(g_st, &u), 0);
    make_user(&u, "sip:bob@example.com", "+4930123456", "100");
    cr_assert_eq(store_user_add(g_st, &u), -ENOTUNIQ);
    make_user(&u, "sip:carol@example.com", "", "300");
    cr_assert_eq(store_user_add(g_st, &u), 0);
    make_user(&u, "sip:dave@example.com", "", "300");
    cr_assert_eq(store_user_add(g_st, &u), -ENOTUNIQ);
    struct store_user got;
    cr_assert_eq(store_user_get(g_st, &got, "sip:bob@example.com"), -ENOENT);
}

Test(store_user, shared_phone_lookup_returns_both)
{
    struct store_user u;
    make_user(&u, "sip:alice@example.com", "+4930123456", "100");
    cr_assert_eq(store_user_add(g_st, &u), 0);
    make_user(&u, "sip:bob@example.com", "+4930123456", "101");
    cr_assert_eq(store_user_add(g_st, &u), 0);
    make_user(&u, "sip:carol@example.com", "+4930123456", "");
    cr_assert_eq(store_user_add(g_st, &u), 0);
    struct store_user out[4];
    size_t n = 0;
    cr_assert_eq(store_user_lookup(g_st, out, 4, &n, "+4930123456"), 0);
    cr_assert_eq(n, 3);
    cr_assert_str_eq(out[0].uri, "sip:alice@example.com");
    cr_assert_str_eq(out[1].uri, "sip:bob@example.com");
    cr_assert_str_eq(out[2].uri, "sip:carol@example.com");
    cr_assert_eq(store_user_lookup(g_st, out, 2, &n, "+4930123456"), 0);
    cr_assert_eq(n, 2, "capped at cap");
    cr_assert_eq(store_user_lookup(g_st, out, 4, &n, "101"), 0);
    cr_assert_eq(n, 1);
    cr_assert_str_eq(out[0].uri, "sip:bob@example.com");
    cr_assert_eq(store_user_lookup(g_st, out, 4, &n, "999"), 0);
    cr_assert_eq(n, 0);
}

Test(store_user, over_long_and_invalid_fields_are_einval)
{
    struct store_user u;
    make_user(&u, "sip:a@example.com", "+4930123456", "100");
    memset(u.uri, 'x', sizeof(u.uri)); /* no NUL at all */
    cr_assert_eq(store_user_add(g_st, &u), -EINVAL);
    make_user(&u, "sip:a@example.com", "+4930123456", "100");
    memset(u.pool, 'p', sizeof(u.pool));
    cr_assert_eq(store_user_add(g_st, &u), -EINVAL);
    make_user(&u, "sip:a@example.com", "+4930123456", "100");
    memset(u.phone, '1', sizeof(u.phone));
    cr_assert_eq(store_user_add(g_st, &u), -EINVAL);
    make_user(&u, "sip:a@example.com", "1234567890123456", "100"); /* 16 digits */
    cr_assert_eq(store_user_add(g_st, &u), -EINVAL);
    make_user(&u, "sip:a@example.com", "+4930123456", "100");
    memset(u.ext, '1', sizeof(u.ext));
    cr_assert_eq(store_user_add(g_st, &u), -EINVAL);
    make_user(&u, "sip:a@example.com", "+49-30", "100");
    cr_assert_eq(store_user_add(g_st, &u), -EINVAL);
    make_user(&u, "sip:a@example.com", "", "");
    cr_assert_eq(store_user_add(g_st, &u), -EINVAL);
    make_user(&u, "", "+4930123456", "100");
    cr_assert_eq(store_user_add(g_st, &u), -EINVAL);
    make_user(&u, "sip:a@example.com", "+4930123456", "100");
    u.pool[0] = '\0';
    cr_assert_eq(store_user_add(g_st, &u), -EINVAL);
    /* The longest valid values fit. */
    make_user(&u, "", "+123456789012345", "123456789012345");
    memset(u.uri, 'u', STORE_URI_MAX);
    u.uri[STORE_URI_MAX] = '\0';
    memset(u.pool, 'p', STORE_POOL_MAX);
    u.pool[STORE_POOL_MAX] = '\0';
    cr_assert_eq(store_user_add(g_st, &u), 0);
    struct store_user got;
    cr_assert_eq(store_user_get(g_st, &got, u.uri), 0);
    cr_assert_str_eq(got.pool, u.pool);
}

Test(store_user, add_many_is_all_or_nothing)
{
    struct store_user users[3];
    make_user(&users[0], "sip:a@example.com", "+4930000001", "1");
    make_user(&users[1], "sip:b@example.com", "+4930000002", "");
    make_user(&users[2], "sip:c@example.com", "+4930000003", "3");
    users[1].ext[0] = '\0';
    users[1].phone[0] = '\0'; /* neither phone nor extension */
    size_t failed = 99;
    cr_assert_eq(store_user_add_many(g_st, users, 3, &failed), -EINVAL);
    cr_assert_eq(failed, 1);
    struct store_user got;
    cr_assert_eq(store_user_get(g_st, &got, "sip:a@example.com"), -ENOENT);
    cr_assert_eq(store_user_get(g_st, &got, "sip:c@example.com"), -ENOENT);
    make_user(&users[1], "sip:a@example.com", "+4930000002", "2"); /* duplicate of [0] */
    cr_assert_eq(store_user_add_many(g_st, users, 3, &failed), -EEXIST);
    cr_assert_eq(failed, 1);
    cr_assert_eq(store_user_get(g_st, &got, "sip:a@example.com"), -ENOENT);
    make_user(&users[1], "sip:b@example.com", "+4930000002", "2");
    cr_assert_eq(store_user_add_many(g_st, users, 3, &failed), 0);
    cr_assert_eq(store_user_get(g_st, &got, "sip:c@example.com"), 0);
}

static int count_users(void *ctx, const struct store_user *u)
{
    char(*seen)[STORE_URI_MAX + 1] = ctx;
    for (int i = 0; i < 3; i++) {
        if (seen[i][0] == '\0') {
            strcpy(seen[i], u->uri);
            return 0;
        }
    }
    return -ERANGE;
}

Test(store_user, foreach_in_uri_order)
{
    struct store_user u;
    make_user(&u, "sip:c@example.com", "", "3");
    cr_assert_eq(store_user_add(g_st, &u), 0);
    make_user(&u, "sip:a@example.com", "", "1");
    cr_assert_eq(store_user_add(g_st, &u), 0);
    make_user(&u, "sip:b@example.com", "", "2");
    cr_assert_eq(store_user_add(g_st, &u), 0);
    char seen[3][STORE_URI_MAX + 1] = {{0}};
    cr_assert_eq(store_user_foreach(g_st, count_users, seen), 0);
    cr_assert_str_eq(seen[0], "sip:a@example.com");
    cr_assert_str_eq(seen[1], "sip:b@example.com");
    cr_assert_str_eq(seen[2], "sip:c@example.com");
    make_user(&u, "sip:d@example.com", "", "4");
    cr_assert_eq(store_user_add(g_st, &u), 0);
    memset(seen, 0, sizeof(seen));
    cr_assert_eq(store_user_foreach(g_st, count_users, seen), -ERANGE, "fn's return stops");
}

Test(store_user, lockout_get_put_and_set_pin_clears)
{
    struct store_user u;
    make_user(&u, "sip:alice@example.com", "+4930123456", "100");
    cr_assert_eq(store_user_add(g_st, &u), 0);
    struct store_lockout lk = {0};
    cr_assert_eq(store_lockout_get(g_st, &lk, "sip:alice@example.com"), 0);
    cr_assert_eq(lk.total_failures, 0);
    cr_assert_eq(lk.admin_locked, false);
    struct store_lockout put = {.window_failures = 3,
                                .window_start_s = 100,
                                .total_failures = 7,
                                .locked_until_s = 200,
                                .admin_locked = true,
                                .last_failure_s = 150};
    cr_assert_eq(store_lockout_put(g_st, "sip:alice@example.com", &put), 0);
    cr_assert_eq(store_lockout_get(g_st, &lk, "sip:alice@example.com"), 0);
    cr_assert_eq(lk.window_failures, 3);
    cr_assert_eq(lk.window_start_s, 100);
    cr_assert_eq(lk.total_failures, 7);
    cr_assert_eq(lk.locked_until_s, 200);
    cr_assert_eq(lk.admin_locked, true);
    cr_assert_eq(lk.last_failure_s, 150);
    cr_assert_eq(store_lockout_put(g_st, "sip:nobody@example.com", &put), -ENOENT);

    uint8_t verifier[STORE_VERIFIER_LEN];
    memset(verifier, 0xa5, sizeof(verifier));
    cr_assert_eq(store_user_set_pin(g_st, "sip:alice@example.com", verifier, 6), 0);
    cr_assert_eq(store_lockout_get(g_st, &lk, "sip:alice@example.com"), 0);
    cr_assert_eq(lk.total_failures, 0);
    cr_assert_eq(lk.admin_locked, false);
    struct store_user got;
    cr_assert_eq(store_user_get(g_st, &got, "sip:alice@example.com"), 0);
    cr_assert_eq(memcmp(got.pin_verifier, verifier, sizeof(verifier)), 0);
    cr_assert_eq(got.pin_len, 6);
    cr_assert_eq(store_user_set_pin(g_st, "sip:nobody@example.com", verifier, 6), -ENOENT);
}

Test(store_user, del_removes_lockout)
{
    struct store_user u;
    make_user(&u, "sip:alice@example.com", "+4930123456", "100");
    cr_assert_eq(store_user_add(g_st, &u), 0);
    struct store_lockout put = {.total_failures = 5};
    cr_assert_eq(store_lockout_put(g_st, "sip:alice@example.com", &put), 0);
    cr_assert_eq(store_user_del(g_st, "sip:alice@example.com"), 0);
    cr_assert_eq(store_user_add(g_st, &u), 0);
    struct store_lockout lk;
    cr_assert_eq(store_lockout_get(g_st, &lk, "sip:alice@example.com"), 0);
    cr_assert_eq(lk.total_failures, 0);
}

Test(store_assert, null_store_aborts, .signal = SIGABRT)
{
    struct store_user u;
    make_user(&u, "sip:alice@example.com", "+4930123456", "100");
    store_user_add(NULL, &u);
}
