#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "store/internal.h"
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

/* Hardening item 6: identities that differ only in case were all added, while every identity
 * check (signer_identity_check, the SOAP Entity) ignores ASCII case: the store compares URIs
 * ignoring ASCII case. */
Test(store_user, uri_differing_only_in_case_is_eexist)
{
    struct store_user u;
    make_user(&u, "sip:alice@example.com", "+4930123456", "100");
    cr_assert_eq(store_user_add(g_st, &u), 0);
    static const char *const variants[] = {"sip:ALICE@example.com", "SIP:Alice@Example.com",
                                           "sip:alice@EXAMPLE.COM", "Sip:aLiCe@eXaMpLe.CoM"};
    for (size_t i = 0; i < sizeof(variants) / sizeof(variants[0]); i++) {
        char ext[8];
        snprintf(ext, sizeof(ext), "%zu", 200 + i);
        make_user(&u, variants[i], "", ext);
        cr_assert_eq(store_user_add(g_st, &u), -EEXIST, "%s was added", variants[i]);
    }
    make_user(&u, "sip:alice2@example.com", "", "300"); /* not a variant */
    cr_assert_eq(store_user_add(g_st, &u), 0);
    size_t n = 9;
    struct store_user out[2];
    cr_assert_eq(store_user_lookup(g_st, out, 2, &n, "200"), 0);
    cr_assert_eq(n, 0, "the refused add left no index entry");
}

/* Hardening item 6: a second user with the same extension (another phone number or none) made
 * sign-in by extension ambiguous; only the phone+extension pair was unique. */
Test(store_user, same_extension_is_enotuniq)
{
    struct store_user u;
    make_user(&u, "sip:alice@example.com", "+4930123456", "100");
    cr_assert_eq(store_user_add(g_st, &u), 0);
    make_user(&u, "sip:bob@example.com", "+4930999999", "100");
    cr_assert_eq(store_user_add(g_st, &u), -ENOTUNIQ);
    make_user(&u, "sip:carol@example.com", "", "100");
    cr_assert_eq(store_user_add(g_st, &u), -ENOTUNIQ);
    struct store_user users[2];
    make_user(&users[0], "sip:dave@example.com", "", "400");
    make_user(&users[1], "sip:erin@example.com", "+4930777777", "400"); /* clashes with [0] */
    size_t failed = 99;
    cr_assert_eq(store_user_add_many(g_st, users, 2, &failed), -ENOTUNIQ);
    cr_assert_eq(failed, 1);
    struct store_user got;
    cr_assert_eq(store_user_get(g_st, &got, "sip:dave@example.com"), -ENOENT, "all or nothing");
    size_t n = 9;
    struct store_user out[2];
    cr_assert_eq(store_user_lookup(g_st, out, 2, &n, "100"), 0);
    cr_assert_eq(n, 1);
    cr_assert_str_eq(out[0].uri, "sip:alice@example.com");
}

Test(store_user, refusal_names_the_rule_and_the_other_user)
{
    struct store_user users[2];
    make_user(&users[0], "sip:alice@example.com", "+4930123456", "100");
    struct store_user_refusal ref;
    memset(&ref, 0xAA, sizeof(ref));
    cr_assert_eq(store_user_add_checked(g_st, &ref, users, 1, NULL, NULL), 0);
    cr_assert_not(ref.refused);
    cr_assert_eq(ref.clash, STORE_CLASH_NONE);
    make_user(&users[0], "sip:bob@example.com", "", "200");
    make_user(&users[1], "sip:ALICE@EXAMPLE.com", "", "201");
    cr_assert_eq(store_user_add_checked(g_st, &ref, users, 2, NULL, NULL), -EEXIST);
    cr_assert(ref.refused);
    cr_assert_eq(ref.index, 1);
    cr_assert_eq(ref.clash, STORE_CLASH_URI);
    cr_assert_str_eq(ref.uri, "sip:alice@example.com");
    make_user(&users[1], "sip:carol@example.com", "+4930123456", "100");
    cr_assert_eq(store_user_add_checked(g_st, &ref, users, 2, NULL, NULL), -ENOTUNIQ);
    cr_assert_eq(ref.index, 1);
    cr_assert_eq(ref.clash, STORE_CLASH_PHONE_EXT);
    cr_assert_str_eq(ref.uri, "sip:alice@example.com");
    make_user(&users[1], "sip:carol@example.com", "+4930999999", "200"); /* users[0]'s */
    cr_assert_eq(store_user_add_checked(g_st, &ref, users, 2, NULL, NULL), -ENOTUNIQ);
    cr_assert_eq(ref.index, 1);
    cr_assert_eq(ref.clash, STORE_CLASH_EXT);
    cr_assert_str_eq(ref.uri, "sip:bob@example.com", "the user earlier in the same call");
    make_user(&users[1], "", "", "300");
    cr_assert_eq(store_user_add_checked(g_st, &ref, users, 2, NULL, NULL), -EINVAL);
    cr_assert(ref.refused);
    cr_assert_eq(ref.index, 1);
    cr_assert_eq(ref.clash, STORE_CLASH_NONE);
    cr_assert_str_eq(ref.uri, "");
    struct store_user got;
    cr_assert_eq(store_user_get(g_st, &got, "sip:bob@example.com"), -ENOENT, "all or nothing");
}

/* The test's PIN rule: a "PIN" is the first byte of a verifier. */
struct fake_pins {
    uint8_t pins[4];
    unsigned calls;
};

static bool fake_pin_same(void *ctx, size_t index, const struct store_user *other)
{
    struct fake_pins *f = ctx;
    cr_assert_lt(index, 4);
    f->calls++;
    return other->pin_verifier[0] == f->pins[index];
}

static void make_user_pin(struct store_user *u, const char *uri, const char *phone, const char *ext,
                          uint8_t pin)
{
    make_user(u, uri, phone, ext);
    u->pin_verifier[0] = pin;
}

/* Hardening item 6: two users of one phone number with the same PIN made sign-in ambiguous. The
 * store asks the caller's store_pin_same_fn about every other user of the phone number, inside
 * the write transaction (users earlier in the same call included). */
Test(store_user, same_phone_and_pin_is_enotuniq)
{
    struct store_user users[3];
    make_user_pin(&users[0], "sip:alice@example.com", "+4930123456", "100", 1);
    make_user_pin(&users[1], "sip:bob@example.com", "+4930123456", "101", 2);
    struct fake_pins f = {.pins = {1, 2}};
    struct store_user_refusal ref;
    cr_assert_eq(store_user_add_checked(g_st, &ref, users, 2, fake_pin_same, &f), 0);
    cr_assert_eq(f.calls, 1, "bob was compared with alice");
    make_user_pin(&users[0], "sip:carol@example.com", "+4930999999", "102", 1); /* other phone */
    make_user_pin(&users[1], "sip:dave@example.com", "", "103", 2);             /* no phone */
    make_user_pin(&users[2], "sip:erin@example.com", "+4930123456", "104", 2);  /* bob's PIN */
    f = (struct fake_pins){.pins = {1, 2, 2}};
    cr_assert_eq(store_user_add_checked(g_st, &ref, users, 3, fake_pin_same, &f), -ENOTUNIQ);
    cr_assert(ref.refused);
    cr_assert_eq(ref.index, 2);
    cr_assert_eq(ref.clash, STORE_CLASH_PHONE_PIN);
    cr_assert_str_eq(ref.uri, "sip:bob@example.com");
    struct store_user got;
    cr_assert_eq(store_user_get(g_st, &got, "sip:carol@example.com"), -ENOENT);
    /* Without the PIN rule (store_user_add), the store cannot compare PINs. */
    cr_assert_eq(store_user_add(g_st, &users[2]), 0);
    /* Within one call: the second user of a new phone number with the first one's PIN. */
    make_user_pin(&users[0], "sip:f1@example.com", "+4930555555", "200", 7);
    make_user_pin(&users[1], "sip:f2@example.com", "+4930555555", "201", 7);
    f = (struct fake_pins){.pins = {7, 7}};
    cr_assert_eq(store_user_add_checked(g_st, &ref, users, 2, fake_pin_same, &f), -ENOTUNIQ);
    cr_assert_eq(ref.index, 1);
    cr_assert_str_eq(ref.uri, "sip:f1@example.com");

    /* set-pin: the new PIN is compared with every OTHER user of the phone number. */
    uint8_t v[STORE_VERIFIER_LEN] = {2};
    f = (struct fake_pins){.pins = {2}};
    cr_assert_eq(
        store_user_set_pin_checked(g_st, &ref, "sip:alice@example.com", v, 5, fake_pin_same, &f),
        -ENOTUNIQ);
    cr_assert(ref.refused);
    cr_assert_eq(ref.clash, STORE_CLASH_PHONE_PIN);
    cr_assert_str_eq(ref.uri, "sip:bob@example.com");
    cr_assert_eq(store_user_get(g_st, &got, "sip:alice@example.com"), 0);
    cr_assert_eq(got.pin_verifier[0], 1, "unchanged");
    v[0] = 1; /* its own PIN again: only the user itself has it */
    f = (struct fake_pins){.pins = {1}};
    cr_assert_eq(
        store_user_set_pin_checked(g_st, &ref, "sip:alice@example.com", v, 5, fake_pin_same, &f),
        0);
    cr_assert_not(ref.refused);
    v[0] = 9;
    f = (struct fake_pins){.pins = {9}};
    cr_assert_eq(
        store_user_set_pin_checked(g_st, &ref, "sip:alice@example.com", v, 6, fake_pin_same, &f),
        0);
    cr_assert_eq(store_user_get(g_st, &got, "sip:alice@example.com"), 0);
    cr_assert_eq(got.pin_verifier[0], 9);
    cr_assert_eq(got.pin_len, 6);
    cr_assert_eq(
        store_user_set_pin_checked(g_st, &ref, "sip:nobody@example.com", v, 6, fake_pin_same, &f),
        -ENOENT);
    cr_assert_not(ref.refused);
}

static int collect_uris(void *ctx, const struct store_user *u)
{
    char(*seen)[STORE_URI_MAX + 1] = ctx;
    for (int i = 0; i < 4; i++) {
        if (seen[i][0] == '\0') {
            strcpy(seen[i], u->uri);
            return 0;
        }
    }
    return -ERANGE;
}

/* put_legacy_user writes a user as a version without the uniqueness rules could have: its record
 * and its phone and extension index entries, nothing else. */
static void put_legacy_user(MDB_txn *txn, const struct user_rec *model, const char *uri,
                            const char *phone, const char *ext)
{
    struct user_rec r = *model;
    memset(r.phone, 0, sizeof(r.phone));
    memset(r.ext, 0, sizeof(r.ext));
    strcpy(r.phone, phone);
    strcpy(r.ext, ext);
    MDB_val key = {.mv_size = strlen(uri), .mv_data = (void *)(uintptr_t)uri};
    MDB_val val = {.mv_size = sizeof(r), .mv_data = &r};
    cr_assert_eq(mdb_put(txn, g_st->users, &key, &val, MDB_NOOVERWRITE), 0);
    if (phone[0] != '\0') {
        MDB_val pk = {.mv_size = strlen(phone), .mv_data = r.phone};
        cr_assert_eq(mdb_put(txn, g_st->phone, &pk, &key, 0), 0);
    }
    char buf[64];
    size_t plen = strlen(phone);
    memcpy(buf, phone, plen + 1);
    strcpy(buf + plen + 1, ext);
    MDB_val phk = {.mv_size = plen + 1 + strlen(ext), .mv_data = buf};
    MDB_val pv = key;
    cr_assert_eq(mdb_put(txn, g_st->phext, &phk, &pv, MDB_NOOVERWRITE), 0);
    MDB_val ek = {.mv_size = strlen(ext), .mv_data = r.ext};
    cr_assert_eq(mdb_put(txn, g_st->ext, &ek, &key, 0), 0);
}

/* A store written before URIs were compared ignoring case, and extensions were unique, may hold
 * users that clash: it still opens (read-only too), lists and looks them up; its first writable
 * open indexes the URIs, and from then on no new twin gets in. */
Test(store_user, legacy_store_with_clashing_users)
{
    struct store_user u;
    make_user(&u, "sip:alice@example.com", "+4930123456", "100");
    cr_assert_eq(store_user_add(g_st, &u), 0);
    MDB_txn *txn = NULL;
    cr_assert_eq(mdb_txn_begin(g_st->env, NULL, 0, &txn), 0);
    MDB_val key = {.mv_size = strlen(u.uri), .mv_data = u.uri};
    MDB_val val = {0};
    cr_assert_eq(mdb_get(txn, g_st->users, &key, &val), 0);
    struct user_rec model;
    memcpy(&model, val.mv_data, sizeof(model));
    put_legacy_user(txn, &model, "sip:ALICE@example.com", "+4930123456", "101");
    put_legacy_user(txn, &model, "sip:Alice@Example.com", "", "100"); /* alice's extension */
    cr_assert_eq(mdb_drop(txn, g_st->urifold, 1), 0); /* as before "urifold" existed */
    cr_assert_eq(mdb_txn_commit(txn), 0);
    store_close(g_st);

    g_st = fixture_open(0, true); /* read-only: no "urifold", nothing written */
    char seen[4][STORE_URI_MAX + 1] = {{0}};
    cr_assert_eq(store_user_foreach(g_st, collect_uris, seen), 0);
    cr_assert_str_eq(seen[0], "sip:ALICE@example.com");
    cr_assert_str_eq(seen[1], "sip:Alice@Example.com");
    cr_assert_str_eq(seen[2], "sip:alice@example.com");
    cr_assert_str_eq(seen[3], "");
    cr_assert_eq(store_user_add(g_st, &u), -EROFS);
    store_close(g_st);

    g_st = fixture_open(0, false); /* indexes the URIs */
    memset(seen, 0, sizeof(seen));
    cr_assert_eq(store_user_foreach(g_st, collect_uris, seen), 0);
    cr_assert_str_eq(seen[2], "sip:alice@example.com");
    struct store_user out[4];
    size_t n = 0;
    cr_assert_eq(store_user_lookup(g_st, out, 4, &n, "100"), 0);
    cr_assert_eq(n, 2, "both users of extension 100 still sign in");
    struct store_user_refusal ref;
    make_user(&u, "sip:aLiCe@example.com", "", "300");
    cr_assert_eq(store_user_add_checked(g_st, &ref, &u, 1, NULL, NULL), -EEXIST);
    cr_assert_str_eq(ref.uri, "sip:ALICE@example.com");
    cr_assert_eq(store_user_del(g_st, "sip:ALICE@example.com"), 0);
    cr_assert_eq(store_user_del(g_st, "sip:Alice@Example.com"), 0);
    cr_assert_eq(store_user_add_checked(g_st, &ref, &u, 1, NULL, NULL), -EEXIST);
    cr_assert_str_eq(ref.uri, "sip:alice@example.com");
    cr_assert_eq(store_user_del(g_st, "sip:alice@example.com"), 0);
    cr_assert_eq(store_user_add(g_st, &u), 0, "the last twin is gone");
    MDB_stat ms;
    cr_assert_eq(mdb_txn_begin(g_st->env, NULL, MDB_RDONLY, &txn), 0);
    cr_assert_eq(mdb_stat(txn, g_st->urifold, &ms), 0);
    mdb_txn_abort(txn);
    cr_assert_eq(ms.ms_entries, 1, "one entry per user");
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

Test(store_user, lockout_keeps_the_last_refusal)
{
    struct store_user u;
    make_user(&u, "sip:alice@example.com", "+4930123456", "100");
    cr_assert_eq(store_user_add(g_st, &u), 0);
    struct store_lockout put = {.total_failures = 2,
                                .last_refusal_s = 1700000000,
                                .last_refusal_code = 2,
                                .last_refusal_reason = 22};
    (void)snprintf(put.last_refusal_client, sizeof(put.last_refusal_client), "%s",
                   "[2001:db8::1]:40000");
    cr_assert_eq(store_lockout_put(g_st, u.uri, &put), 0);
    struct store_lockout lk;
    cr_assert_eq(store_lockout_get(g_st, &lk, u.uri), 0);
    cr_assert_eq(memcmp(&lk, &put, sizeof(lk)), 0, "every field comes back");
    /* a client address of the longest length fits and comes back whole */
    memset(put.last_refusal_client, 'a', STORE_CLIENT_MAX);
    put.last_refusal_client[STORE_CLIENT_MAX] = '\0';
    cr_assert_eq(store_lockout_put(g_st, u.uri, &put), 0);
    cr_assert_eq(store_lockout_get(g_st, &lk, u.uri), 0);
    cr_assert_eq(strlen(lk.last_refusal_client), STORE_CLIENT_MAX);
}

/* A lockout record of an older version (LCK1, 48 bytes) is read, as one without a refusal. */
Test(store_user, lockout_record_of_an_older_version_is_read)
{
    struct store_user u;
    make_user(&u, "sip:alice@example.com", "+4930123456", "100");
    cr_assert_eq(store_user_add(g_st, &u), 0);
    struct lockout_rec old;
    memset(&old, 0, sizeof(old));
    old.magic = STORE_MAGIC_LOCKOUT;
    old.window_failures = 3;
    old.window_start_s = 100;
    old.total_failures = 9;
    old.locked_until_s = 200;
    old.last_failure_s = 150;
    MDB_txn *txn = NULL;
    cr_assert_eq(mdb_txn_begin(g_st->env, NULL, 0, &txn), 0);
    MDB_val key = {.mv_size = strlen(u.uri), .mv_data = u.uri};
    MDB_val val = {.mv_size = sizeof(old), .mv_data = &old};
    cr_assert_eq(mdb_put(txn, g_st->lockout, &key, &val, 0), 0);
    cr_assert_eq(mdb_txn_commit(txn), 0);
    struct store_lockout lk;
    cr_assert_eq(store_lockout_get(g_st, &lk, u.uri), 0);
    cr_assert_eq(lk.window_failures, 3);
    cr_assert_eq(lk.total_failures, 9);
    cr_assert_eq(lk.locked_until_s, 200);
    cr_assert_eq(lk.last_failure_s, 150);
    cr_assert_eq(lk.last_refusal_s, 0);
    cr_assert_str_empty(lk.last_refusal_client);
    /* written again, it is the new version */
    cr_assert_eq(store_lockout_put(g_st, u.uri, &lk), 0);
    cr_assert_eq(mdb_txn_begin(g_st->env, NULL, MDB_RDONLY, &txn), 0);
    cr_assert_eq(mdb_get(txn, g_st->lockout, &key, &val), 0);
    cr_assert_eq(val.mv_size, sizeof(struct lockout_rec2));
    mdb_txn_abort(txn);
}
