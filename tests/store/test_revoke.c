#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/base.h"
#include "store/internal.h"
#include "tests/store/fixture.h"

TestSuite(store_revoke, .init = fixture_init, .fini = fixture_fini);

#define URI_A "sip:alice@example.com"
#define URI_B "sip:bob@example.com"
#define T0 1764070245 /* make_meta's issue time: its certificates are valid for a day from it */

/* commit_certs stores certificates n = from..from+num-1 of `uri` in pool-a. */
static void commit_certs(const char *uri, uint32_t from, uint32_t num)
{
    static struct store_batch b;
    store_batch_clear(&b);
    for (uint32_t i = from; i < from + num; i++) {
        struct store_cert_meta m;
        make_meta(&m, uri, "pool-a", i);
        cr_assert_eq(store_batch_add_cert(&b, &m, fixture_der, 500), 0);
    }
    cr_assert_eq(store_batch_commit(g_st, &b), 0);
}

static void serial_of(uint8_t out[STORE_SERIAL_LEN], uint32_t n)
{
    struct store_cert_meta m;
    make_meta(&m, URI_A, "pool-a", n);
    memcpy(out, m.serial, STORE_SERIAL_LEN);
}

struct collected {
    size_t num;
    struct store_outbox_entry e[64];
};

static int collect(void *ctx, const struct store_outbox_entry *e)
{
    struct collected *c = ctx;
    cr_assert_lt(c->num, 64);
    c->e[c->num++] = *e;
    return 0;
}

static uint64_t generation(void)
{
    uint64_t g = 99;
    cr_assert_eq(store_revoke_generation(g_st, &g), 0);
    return g;
}

Test(store_revoke, reason_names_round_trip)
{
    const char *names[] = {"unspecified", "keyCompromise",        "affiliationChanged",
                           "superseded",  "cessationOfOperation", "certificateHold"};
    for (size_t i = 0; i < ARRAY_LEN(names); i++) {
        uint8_t code = 0xff;
        cr_assert_eq(store_revoke_reason_parse(&code, names[i]), 0);
        cr_assert_str_eq(store_revoke_reason_name(code), names[i]);
    }
    uint8_t code = 0;
    cr_assert_eq(store_revoke_reason_parse(&code, "keycompromise"), -EINVAL);
    cr_assert_eq(store_revoke_reason_parse(&code, "removeFromCRL"), -EINVAL);
    cr_assert_eq(store_revoke_reason_parse(&code, NULL), -EINVAL);
    cr_assert_null(store_revoke_reason_name(2)); /* cACompromise: not the appliance's */
    cr_assert_null(store_revoke_reason_name(8));
}

Test(store_revoke, revoke_writes_record_outbox_and_generation)
{
    commit_certs(URI_A, 0, 3);
    uint8_t s1[STORE_SERIAL_LEN];
    serial_of(s1, 1);
    /* The issuance entries are published and gone. */
    struct collected c = {0};
    cr_assert_eq(store_outbox_foreach(g_st, "pool-a", collect, &c), 0);
    cr_assert_eq(c.num, 3);
    for (size_t i = 0; i < c.num; i++) {
        cr_assert_eq(store_outbox_remove(g_st, "pool-a", c.e[i].seq), 0);
    }
    cr_assert_eq(generation(), 0);
    struct store_revocation rev;
    cr_assert_eq(store_cert_revocation_get(g_st, &rev, s1), -ENOENT);
    cr_assert_eq(store_cert_revoke(g_st, &rev, s1, STORE_REASON_KEY_COMPROMISE, T0 + 100), 0);
    cr_assert_eq(rev.revoked_at_s, T0 + 100);
    cr_assert_eq(rev.reason, STORE_REASON_KEY_COMPROMISE);
    cr_assert_eq(rev.not_after_s, T0 + 86400);
    cr_assert_eq(memcmp(rev.serial, s1, sizeof(s1)), 0);
    cr_assert_eq(generation(), 1);
    /* One outbox entry again, for that certificate's seq. */
    c.num = 0;
    cr_assert_eq(store_outbox_foreach(g_st, "pool-a", collect, &c), 0);
    cr_assert_eq(c.num, 1);
    cr_assert_eq(c.e[0].seq, rev.seq);
    cr_assert_eq(memcmp(c.e[0].serial, s1, sizeof(s1)), 0);
    struct store_revocation got;
    cr_assert_eq(store_cert_revocation_get(g_st, &got, s1), 0);
    cr_assert_eq(memcmp(&got, &rev, sizeof(got)), 0);
    /* Durable: a reopened store has it. */
    store_close(g_st);
    g_st = fixture_open(0, true);
    cr_assert_eq(store_cert_revocation_get(g_st, &got, s1), 0);
    cr_assert_eq(got.reason, STORE_REASON_KEY_COMPROMISE);
    cr_assert_eq(store_cert_revoke(g_st, &rev, s1, STORE_REASON_SUPERSEDED, T0), -EROFS);
}

Test(store_revoke, unknown_serial_and_reason)
{
    commit_certs(URI_A, 0, 1);
    uint8_t s[STORE_SERIAL_LEN];
    serial_of(s, 7);
    cr_assert_eq(store_cert_revoke(g_st, NULL, s, STORE_REASON_SUPERSEDED, T0), -ENOENT);
    serial_of(s, 0);
    cr_assert_eq(store_cert_revoke(g_st, NULL, s, 2, T0), -EINVAL);
    cr_assert_eq(store_cert_revoke(g_st, NULL, s, 99, T0), -EINVAL);
    cr_assert_eq(generation(), 0);
    cr_assert_eq(store_cert_unrevoke(g_st, s), -ENOENT);
}

Test(store_revoke, twice_is_already_and_changes_nothing)
{
    commit_certs(URI_A, 0, 1);
    uint8_t s[STORE_SERIAL_LEN];
    serial_of(s, 0);
    cr_assert_eq(store_cert_revoke(g_st, NULL, s, STORE_REASON_SUPERSEDED, T0 + 5), 0);
    struct store_revocation rev;
    cr_assert_eq(store_cert_revoke(g_st, &rev, s, STORE_REASON_KEY_COMPROMISE, T0 + 9), -EALREADY);
    cr_assert_eq(rev.reason, STORE_REASON_SUPERSEDED);
    cr_assert_eq(rev.revoked_at_s, T0 + 5);
    cr_assert_eq(generation(), 1);
    cr_assert_eq(store_cert_unrevoke(g_st, s), -EPERM); /* final */
}

Test(store_revoke, hold_lifted_or_made_final)
{
    commit_certs(URI_A, 0, 2);
    uint8_t s0[STORE_SERIAL_LEN];
    uint8_t s1[STORE_SERIAL_LEN];
    serial_of(s0, 0);
    serial_of(s1, 1);
    cr_assert_eq(store_cert_revoke(g_st, NULL, s0, STORE_REASON_CERTIFICATE_HOLD, T0 + 1), 0);
    cr_assert_eq(store_cert_revoke(g_st, NULL, s0, STORE_REASON_CERTIFICATE_HOLD, T0 + 2),
                 -EALREADY);
    cr_assert_eq(store_cert_unrevoke(g_st, s0), 0);
    struct store_revocation rev;
    cr_assert_eq(store_cert_revocation_get(g_st, &rev, s0), -ENOENT);
    cr_assert_eq(store_cert_unrevoke(g_st, s0), -ENOENT);
    /* A hold made final keeps the hold's time (RFC 5280 §5.3.1). */
    cr_assert_eq(store_cert_revoke(g_st, NULL, s1, STORE_REASON_CERTIFICATE_HOLD, T0 + 3), 0);
    cr_assert_eq(store_cert_revoke(g_st, &rev, s1, STORE_REASON_KEY_COMPROMISE, T0 + 50), 0);
    cr_assert_eq(rev.revoked_at_s, T0 + 3);
    cr_assert_eq(rev.reason, STORE_REASON_KEY_COMPROMISE);
    cr_assert_eq(store_cert_unrevoke(g_st, s1), -EPERM);
    cr_assert_eq(generation(), 4);
}

/* An entry already queued is kept (one entry per certificate) but re-armed: its enqueue time
 * moves on, so a publisher that read it before the revocation cannot remove it. */
Test(store_revoke, queued_entry_rearmed_not_removed_by_stale_ack)
{
    commit_certs(URI_A, 0, 1);
    struct collected before = {0};
    cr_assert_eq(store_outbox_foreach(g_st, "pool-a", collect, &before), 0);
    cr_assert_eq(before.num, 1);
    cr_assert_eq(
        store_outbox_fail(g_st, "pool-a", before.e[0].seq, clock_real_ms() + 60000, false, "down"),
        0);
    uint8_t s[STORE_SERIAL_LEN];
    serial_of(s, 0);
    cr_assert_eq(store_cert_revoke(g_st, NULL, s, STORE_REASON_SUPERSEDED, T0), 0);
    struct collected after = {0};
    cr_assert_eq(store_outbox_foreach(g_st, "pool-a", collect, &after), 0);
    cr_assert_eq(after.num, 1);
    cr_assert_eq(after.e[0].seq, before.e[0].seq);
    cr_assert_gt(after.e[0].enqueued_ms, before.e[0].enqueued_ms);
    cr_assert_eq(after.e[0].next_attempt_ms, 0); /* due now */
    cr_assert_eq(after.e[0].attempts, 1);
    /* The stale acknowledgement (the issuance's) leaves it; the fresh one removes it. */
    cr_assert_eq(store_outbox_remove_acked(g_st, "pool-a", before.e, 1), 0);
    uint64_t depth = 0;
    int64_t oldest = 0;
    cr_assert_eq(store_outbox_depth(g_st, "pool-a", &depth, &oldest), 0);
    cr_assert_eq(depth, 1);
    cr_assert_eq(store_outbox_remove_acked(g_st, "pool-a", after.e, 1), 0);
    cr_assert_eq(store_outbox_depth(g_st, "pool-a", &depth, &oldest), 0);
    cr_assert_eq(depth, 0);
}

struct revs {
    size_t num;
    struct store_revocation r[64];
};

static int collect_rev(void *ctx, const struct store_revocation *rev)
{
    struct revs *c = ctx;
    cr_assert_lt(c->num, 64);
    c->r[c->num++] = *rev;
    return 0;
}

Test(store_revoke, user_revoke_certs_unexpired_only)
{
    commit_certs(URI_A, 0, 5);
    commit_certs(URI_B, 10, 2);
    uint8_t s2[STORE_SERIAL_LEN];
    serial_of(s2, 2);
    cr_assert_eq(store_cert_revoke(g_st, NULL, s2, STORE_REASON_KEY_COMPROMISE, T0 + 1), 0);
    uint32_t num = 99;
    /* After their expiry: nothing to revoke. */
    cr_assert_eq(store_user_revoke_certs(g_st, &num, URI_A, STORE_REASON_SUPERSEDED, T0 + 90000),
                 0);
    cr_assert_eq(num, 0);
    cr_assert_eq(
        store_user_revoke_certs(g_st, &num, URI_A, STORE_REASON_AFFILIATION_CHANGED, T0 + 10), 0);
    cr_assert_eq(num, 4); /* the fifth was revoked already */
    struct revs c = {0};
    uint64_t gen = 0;
    cr_assert_eq(store_revoked_foreach(g_st, &gen, collect_rev, &c), 0);
    cr_assert_eq(c.num, 5);
    cr_assert_eq(gen, 2);
    for (size_t i = 0; i < c.num; i++) {
        bool first = c.r[i].serial[15] == 2;
        cr_assert_eq(c.r[i].reason,
                     first ? STORE_REASON_KEY_COMPROMISE : STORE_REASON_AFFILIATION_CHANGED);
        cr_assert_lt(c.r[i].serial[15], 5); /* none of bob's */
    }
    cr_assert_eq(store_user_revoke_certs(g_st, &num, URI_A, STORE_REASON_SUPERSEDED, T0 + 10), 0);
    cr_assert_eq(num, 0);
    cr_assert_eq(generation(), 2); /* nothing changed, no bump */
    cr_assert_eq(
        store_user_revoke_certs(g_st, &num, "sip:nobody@example.com", STORE_REASON_SUPERSEDED, T0),
        0);
    cr_assert_eq(num, 0);
    cr_assert_eq(store_user_revoke_certs(g_st, &num, URI_A, 2, T0), -EINVAL);
}

Test(store_revoke, user_revoke_certs_in_rounds)
{
    uint32_t total = STORE_REVOKE_USER_ROUND_MAX + 5;
    for (uint32_t from = 0; from < total; from += STORE_BATCH_MAX) {
        uint32_t n = total - from < STORE_BATCH_MAX ? total - from : STORE_BATCH_MAX;
        commit_certs(URI_A, from, n);
    }
    uint32_t num = 0;
    cr_assert_eq(store_user_revoke_certs(g_st, &num, URI_A, STORE_REASON_SUPERSEDED, T0 + 1), 0);
    cr_assert_eq(num, total);
    cr_assert_eq(generation(), 2); /* two rounds */
}

Test(store_revoke, disable_enable)
{
    int64_t since = 99;
    cr_assert_eq(store_user_disabled(g_st, &since, URI_A), 0);
    cr_assert_eq(since, 0);
    cr_assert_eq(store_user_disable(g_st, URI_A, T0 + 7), 0);
    cr_assert_eq(store_user_disable(g_st, URI_A, T0 + 9), 0); /* keeps its time */
    cr_assert_eq(store_user_disabled(g_st, &since, URI_A), 0);
    cr_assert_eq(since, T0 + 7);
    cr_assert_eq(store_user_disabled(g_st, &since, URI_B), 0);
    cr_assert_eq(since, 0);
    cr_assert_eq(generation(), 1);
    cr_assert_eq(store_user_enable(g_st, URI_A), 0);
    cr_assert_eq(store_user_enable(g_st, URI_A), -ENOENT);
    cr_assert_eq(store_user_disabled(g_st, &since, URI_A), 0);
    cr_assert_eq(since, 0);
    cr_assert_eq(generation(), 2);
    cr_assert_eq(store_user_disable(g_st, "", T0), -EINVAL);
    char longuri[STORE_URI_MAX + 2];
    memset(longuri, 'a', sizeof(longuri) - 1);
    longuri[sizeof(longuri) - 1] = '\0';
    cr_assert_eq(store_user_disable(g_st, longuri, T0), -EINVAL);
    cr_assert_eq(store_user_disabled(g_st, &since, longuri), 0);
    cr_assert_eq(since, 0);
}

/* The publisher carries a revocation into the embedded pool store, and a lifted hold out of it.
 * The publisher is stopped before the test reads the pool store: LMDB forbids one environment
 * open twice in a process. */
static void publish_all(const char *dir)
{
    struct store_pool_spec spec = {"pool-a", "embedded"};
    struct store_publisher_options o = {
        .issued_by = "me.example.com", .embedded_dir = dir, .poll_ms = 50};
    struct store_publisher *pub = NULL;
    cr_assert_eq(store_publisher_start(&pub, g_st, &spec, 1, &o), 0);
    uint64_t depth = 1;
    for (int i = 0; i < 100 && depth != 0; i++) {
        int64_t oldest = 0;
        cr_assert_eq(store_outbox_depth(g_st, "pool-a", &depth, &oldest), 0);
        if (depth != 0) {
            usleep(50000);
        }
    }
    store_publisher_stop(pub);
    cr_assert_eq(depth, 0);
}

static void embedded_revoked_is(const char *dir, const char *serial_hex, int64_t want_at,
                                uint8_t want_reason)
{
    int64_t at = -1;
    uint8_t reason = 0xff;
    cr_assert_eq(store_embedded_revocation(dir, "pool-a", serial_hex, &at, &reason), 0);
    cr_assert_eq(at, want_at);
    if (want_at != 0) {
        cr_assert_eq(reason, want_reason);
    }
}

Test(store_revoke, published_to_embedded_pool)
{
    commit_certs(URI_A, 0, 2);
    char dir[400];
    snprintf(dir, sizeof(dir), "%s/pools", g_dir);
    uint8_t s[STORE_SERIAL_LEN];
    serial_of(s, 1);
    char hex[2 * STORE_SERIAL_LEN + 1];
    (void)base_serial_hex(hex, sizeof(hex), s, sizeof(s));
    publish_all(dir);
    embedded_revoked_is(dir, hex, 0, 0);
    cr_assert_eq(store_cert_revoke(g_st, NULL, s, STORE_REASON_CERTIFICATE_HOLD, T0 + 60), 0);
    publish_all(dir);
    embedded_revoked_is(dir, hex, T0 + 60, STORE_REASON_CERTIFICATE_HOLD);
    publish_all(dir); /* nothing queued: unchanged */
    embedded_revoked_is(dir, hex, T0 + 60, STORE_REASON_CERTIFICATE_HOLD);
    cr_assert_eq(store_cert_unrevoke(g_st, s), 0);
    publish_all(dir);
    embedded_revoked_is(dir, hex, 0, 0);
    cr_assert_eq(store_cert_revoke(g_st, NULL, s, STORE_REASON_KEY_COMPROMISE, T0 + 70), 0);
    publish_all(dir);
    embedded_revoked_is(dir, hex, T0 + 70, STORE_REASON_KEY_COMPROMISE);
    uint8_t s0[STORE_SERIAL_LEN];
    serial_of(s0, 0);
    (void)base_serial_hex(hex, sizeof(hex), s0, sizeof(s0));
    embedded_revoked_is(dir, hex, 0, 0);
    uint64_t n = 0;
    cr_assert_eq(store_embedded_count(dir, "pool-a", &n), 0);
    cr_assert_eq(n, 2); /* rows updated, never added */
}

/* The fleet directory's revocations (store_revocation_replica): this appliance's certificate is
 * revoked as by store_cert_revoke (outbox, CRL) at the directory's time; another appliance's is
 * recorded by serial only (seq 0: refused for renewal, in no CRL here); holds lift either way. */
Test(store_revoke, replica_own_and_foreign)
{
    commit_certs(URI_A, 0, 3);
    uint8_t own[STORE_SERIAL_LEN];
    serial_of(own, 1);
    uint8_t foreign[STORE_SERIAL_LEN];
    memset(foreign, 0, sizeof(foreign));
    foreign[0] = 0x7a;
    foreign[15] = 0x42;
    cr_assert_eq(store_revocation_replica(g_st, own, STORE_REASON_KEY_COMPROMISE, T0 + 7, false),
                 0);
    cr_assert_eq(store_revocation_replica(g_st, foreign, STORE_REASON_SUPERSEDED, T0 + 8, false),
                 0);
    cr_assert_eq(generation(), 2);
    struct store_revocation got;
    cr_assert_eq(store_cert_revocation_get(g_st, &got, own), 0);
    cr_assert_eq(got.revoked_at_s, T0 + 7);
    cr_assert_gt(got.seq, 0);
    cr_assert_eq(store_cert_revocation_get(g_st, &got, foreign), 0);
    cr_assert_eq(got.seq, 0);
    cr_assert_eq(got.reason, STORE_REASON_SUPERSEDED);
    cr_assert_eq(got.revoked_at_s, T0 + 8);
    /* The CRL's view: this appliance's certificates only. */
    struct revs c = {0};
    uint64_t gen = 0;
    cr_assert_eq(store_revoked_foreach(g_st, &gen, collect_rev, &c), 0);
    cr_assert_eq(c.num, 1);
    cr_assert_eq(memcmp(c.r[0].serial, own, sizeof(own)), 0);
    /* Again: nothing changes, no bump; a lift of a final revocation is left alone. */
    cr_assert_eq(store_revocation_replica(g_st, own, STORE_REASON_SUPERSEDED, T0 + 9, false), 0);
    cr_assert_eq(store_revocation_replica(g_st, foreign, STORE_REASON_KEY_COMPROMISE, T0, false),
                 0);
    cr_assert_eq(store_revocation_replica(g_st, own, STORE_REASON_CERTIFICATE_HOLD, 0, true), 0);
    cr_assert_eq(generation(), 2);
    cr_assert_eq(store_cert_revocation_get(g_st, &got, own), 0);
    cr_assert_eq(got.reason, STORE_REASON_KEY_COMPROMISE);
    /* A foreign hold is lifted; a lift of what is not revoked is nothing. */
    uint8_t hold[STORE_SERIAL_LEN];
    memcpy(hold, foreign, sizeof(hold));
    hold[15] = 0x43;
    cr_assert_eq(store_revocation_replica(g_st, hold, STORE_REASON_CERTIFICATE_HOLD, T0, false), 0);
    cr_assert_eq(store_cert_revocation_get(g_st, &got, hold), 0);
    cr_assert_eq(store_revocation_replica(g_st, hold, STORE_REASON_CERTIFICATE_HOLD, 0, true), 0);
    cr_assert_eq(store_cert_revocation_get(g_st, &got, hold), -ENOENT);
    cr_assert_eq(store_revocation_replica(g_st, hold, STORE_REASON_CERTIFICATE_HOLD, 0, true), 0);
    cr_assert_eq(generation(), 4);
    cr_assert_eq(store_revocation_replica(g_st, hold, 2, T0, false), -EINVAL);
    /* A user's revoked serials: the one revoked. */
    uint8_t list[4][STORE_SERIAL_LEN];
    size_t n = 9;
    cr_assert_eq(store_user_revoked_serials(g_st, list, 4, &n, URI_A, T0 + 10), 0);
    cr_assert_eq(n, 1);
    cr_assert_eq(memcmp(list[0], own, sizeof(own)), 0);
    cr_assert_eq(store_user_revoked_serials(g_st, list, 4, &n, URI_A, T0 + 90000), 0);
    cr_assert_eq(n, 0); /* expired */
}
