/* Tests of the per-user issuance limit ([profile] max_certs_per_user_per_day, hardening item 11),
 * decided by the writer in queue order: a burst of one user's enrollments in one group, and
 * groups one after another, get exactly the limit; certificates older than 24 hours do not count
 * and Retry-After says when the oldest counted one leaves the window; other users are not
 * touched; 0 is no limit. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "base/base.h"
#include "service/internal.h"
#include "tests/service/fixture.h"

#define LIMIT 3
#define DAY_S 86400

/* set_limit sets the limit the writer reads at each group (before any item is queued: the queue's
 * mutex orders it before the writer's read). */
static void set_limit(uint32_t max)
{
    g_fx.cfg.user_certs_per_day_max = max;
}

static void setup_limit(void)
{
    fx_setup_opts(&(struct fx_options){.items_per_ring = 32});
    set_limit(LIMIT);
}

static size_t certs_of(enum fx_user_id u)
{
    uint32_t num = 0;
    int64_t last = 0;
    cr_assert_eq(store_cert_recent_by_uri(g_fx.st, fx_users[u].uri, 0, 100000, &num, &last), 0);
    return num;
}

static void expect_ok(const struct fx_answer *a, enum fx_user_id u)
{
    cr_assert_eq(a->status, 200, "status %d: %s", a->status, a->reason);
    cr_assert(a->store_has_cert);
    cr_assert_str_eq(a->meta.uri, fx_users[u].uri);
}

/* expect_limited checks a 429 RateLimited answer whose Retry-After lies in [lo, hi]. */
static void expect_limited(const struct fx_answer *a, uint32_t lo, uint32_t hi)
{
    cr_assert_eq(a->status, 429, "status %d: %s", a->status, a->reason);
    cr_assert_eq(a->code, (int)SIGNER_CODE_RATE_LIMITED);
    char want[96];
    (void)snprintf(want, sizeof(want), "The user has had %u certificates in the last 24 hours",
                   g_fx.cfg.user_certs_per_day_max);
    cr_assert_eq(strncmp(a->reason, want, strlen(want)), 0, "%s", a->reason);
    cr_assert(a->retry_after);
    cr_assert(a->retry_after_s >= lo && a->retry_after_s <= hi, "Retry-After %u, want %u-%u",
              a->retry_after_s, lo, hi);
    cr_assert(strncmp(a->body, "RateLimited: ", 13) == 0 ||
                  strstr(a->body, "<Code>RateLimited</Code>") != NULL,
              "%s", a->body);
    cr_assert_not(a->store_has_cert);
}

/* One group: alice 8 times and bob twice, interleaved. In queue order alice's first LIMIT get
 * certificates, the rest 429 with Retry-After of about a day (the oldest counted was issued
 * now); bob is not touched. */
Test(service_ratelimit, burst_in_one_group_gets_exactly_the_limit, .init = setup_limit,
     .fini = fx_teardown)
{
    enum { N = 10 };
    enum fx_user_id who[N] = {FX_ALICE, FX_ALICE, FX_BOB,   FX_ALICE, FX_ALICE,
                              FX_ALICE, FX_BOB,   FX_ALICE, FX_ALICE, FX_ALICE};
    struct svc_item *items[N];
    for (size_t i = 0; i < N; i++) {
        items[i] = fx_enroll(0, i % 2 ? SVC_ROUTE_SOAP : SVC_ROUTE_EST_ENROLL, who[i]);
    }
    fx_turn(0, items, N);
    fx_wait_answers(N);
    cr_assert_eq(atomic_load(&g_fx.svc->metrics.commit_size.count), 1, "one group");
    size_t alice = 0;
    for (size_t i = 0; i < N; i++) {
        const struct fx_answer *a = fx_answer(i);
        if (who[i] == FX_BOB || ++alice <= LIMIT) {
            expect_ok(a, who[i]);
        } else {
            expect_limited(a, DAY_S - 60, DAY_S);
        }
    }
    cr_assert_eq(certs_of(FX_ALICE), LIMIT);
    cr_assert_eq(certs_of(FX_BOB), 2);
    cr_assert_eq(
        atomic_load(&g_fx.svc->metrics.requests[SVC_ROUTE_SOAP][SIGNER_CODE_RATE_LIMITED]) +
            atomic_load(
                &g_fx.svc->metrics.requests[SVC_ROUTE_EST_ENROLL][SIGNER_CODE_RATE_LIMITED]),
        8 - LIMIT);
}

/* Groups one after another: what earlier groups stored counts (committed, durable or not yet). */
Test(service_ratelimit, across_groups, .init = setup_limit, .fini = fx_teardown)
{
    struct svc_item *g1[2] = {fx_enroll(0, SVC_ROUTE_EST_ENROLL, FX_ALICE),
                              fx_enroll(0, SVC_ROUTE_SOAP, FX_ALICE)};
    fx_turn(0, g1, 2);
    struct svc_item *g2[3] = {fx_enroll(0, SVC_ROUTE_EST_ENROLL, FX_ALICE),
                              fx_enroll(0, SVC_ROUTE_EST_ENROLL, FX_ALICE),
                              fx_enroll(0, SVC_ROUTE_EST_ENROLL, FX_CAROL)};
    fx_turn(0, g2, 3); /* queued at once: the writer's next group, before g1 is answered */
    fx_wait_answers(5);
    for (size_t i = 0; i < 3; i++) {
        expect_ok(fx_answer(i), FX_ALICE);
    }
    expect_limited(fx_answer(3), DAY_S - 60, DAY_S);
    expect_ok(fx_answer(4), FX_CAROL);
    for (int g = 0; g < 2; g++) { /* and each later one alone */
        struct svc_item *it = fx_enroll(0, SVC_ROUTE_SOAP, FX_ALICE);
        fx_turn(0, &it, 1);
        fx_wait_answers(6 + (size_t)g);
        expect_limited(fx_answer(5 + (size_t)g), DAY_S - 60, DAY_S);
    }
    cr_assert_eq(certs_of(FX_ALICE), LIMIT);
    /* A wrong PIN of a limited user is still a wrong PIN (the limit is decided after the
     * sign-in, for certificates only). */
    struct svc_item *wrong =
        fx_signin(0, SVC_ROUTE_EST_ENROLL, fx_users[FX_ALICE].ext, FX_WRONG_PIN);
    fx_turn(0, &wrong, 1);
    fx_wait_answers(8);
    cr_assert_eq(fx_answer(7)->code, (int)SIGNER_CODE_AUTHENTICATION_FAILED);
}

/* store_past commits a certificate of `u` issued `age_s` seconds ago, as an earlier enrollment
 * (or certprovctl cert issue) would have. */
static void store_past(enum fx_user_id u, int64_t age_s, uint32_t n)
{
    static struct store_batch b;
    static const uint8_t der[64] = {0x30, 0x3e};
    struct store_cert_meta m;
    memset(&m, 0, sizeof(m));
    m.serial[0] = 0x5e;
    m.serial[15] = (uint8_t)n;
    (void)base_str_copy(m.uri, sizeof(m.uri), fx_users[u].uri);
    (void)base_str_copy(m.pool, sizeof(m.pool), fx_users[u].pool);
    m.issued_at_s = clock_real_s() - age_s;
    m.not_before_s = m.issued_at_s;
    m.not_after_s = m.issued_at_s + DAY_S;
    store_batch_clear(&b);
    cr_assert_eq(store_batch_add_cert(&b, &m, der, sizeof(der)), 0);
    cr_assert_eq(store_batch_commit(g_fx.st, &b), 0);
}

/* The window is the last 24 hours: older certificates do not count, and Retry-After is the time
 * until the oldest counted one is 24 hours old. */
Test(service_ratelimit, the_window_and_retry_after, .init = setup_limit, .fini = fx_teardown)
{
    store_past(FX_ALICE, DAY_S + 10, 1);   /* out of the window */
    store_past(FX_ALICE, DAY_S - 100, 2);  /* in it: leaves it in 100 s */
    store_past(FX_ALICE, DAY_S - 5000, 3); /* in it */
    struct svc_item *it = fx_enroll(0, SVC_ROUTE_EST_ENROLL, FX_ALICE);
    fx_turn(0, &it, 1);
    fx_wait_answers(1);
    expect_ok(fx_answer(0), FX_ALICE); /* 2 in the window: the third is allowed */
    it = fx_enroll(0, SVC_ROUTE_SOAP, FX_ALICE);
    fx_turn(0, &it, 1);
    fx_wait_answers(2);
    expect_limited(fx_answer(1), 90, 100);
    cr_assert_eq(certs_of(FX_ALICE), 4);
}

/* A certificate that leaves the window makes room: Retry-After is at least 1 and the retry then
 * succeeds. */
Test(service_ratelimit, retry_after_the_oldest_left_the_window, .init = setup_limit,
     .fini = fx_teardown)
{
    store_past(FX_BOB, DAY_S - 2, 1);
    store_past(FX_BOB, 60, 2);
    store_past(FX_BOB, 30, 3);
    struct svc_item *it = fx_enroll(0, SVC_ROUTE_EST_ENROLL, FX_BOB);
    fx_turn(0, &it, 1);
    fx_wait_answers(1);
    expect_limited(fx_answer(0), 1, 2);
    struct timespec ts = {.tv_sec = (time_t)fx_answer(0)->retry_after_s, .tv_nsec = 100000000};
    while (nanosleep(&ts, &ts) != 0) {
    }
    it = fx_enroll(0, SVC_ROUTE_EST_ENROLL, FX_BOB);
    fx_turn(0, &it, 1);
    fx_wait_answers(2);
    expect_ok(fx_answer(1), FX_BOB);
}

static void setup_unlimited(void)
{
    fx_setup_opts(&(struct fx_options){.items_per_ring = 32});
    set_limit(0);
}

Test(service_ratelimit, zero_is_no_limit, .init = setup_unlimited, .fini = fx_teardown)
{
    enum { N = 25 };
    struct svc_item *items[N];
    for (size_t i = 0; i < N; i++) {
        items[i] = fx_enroll(0, SVC_ROUTE_EST_ENROLL, FX_CAROL);
    }
    fx_turn(0, items, N);
    fx_wait_answers(N);
    for (size_t i = 0; i < N; i++) {
        expect_ok(fx_answer(i), FX_CAROL);
    }
    cr_assert_eq(certs_of(FX_CAROL), N);
}

/* The default is 20 a day (README, Configuration). */
Test(service_ratelimit, default_is_twenty)
{
    struct service_config cfg;
    service_config_defaults(&cfg);
    cr_assert_eq(cfg.user_certs_per_day_max, 20);
}
