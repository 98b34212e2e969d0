/* Tests of the item slots: svc_item_take hands out an item reset up to its buffers (which are
 * read only up to their lengths, reset to 0), the pool of a ring runs
 * out (NULL) and refills, and svc_item_validate aborts on an item whose lengths or counts are
 * out of bounds. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "service/internal.h"
#include "tests/service/fixture.h"

#define ITEMS 4

static void setup_two_rings(void)
{
    fx_setup_opts(&(struct fx_options){.rings = 2, .items_per_ring = ITEMS});
}

/* scribble fills every byte of the item with 0xA5, then makes the fields svc_item_validate
 * checks (and the bools, whose other values are undefined) valid but still not their defaults. */
static void scribble(struct svc_item *it, uint32_t ring)
{
    memset(it, 0xA5, sizeof(*it));
    it->ring = ring;
    it->route = SVC_ROUTE_EST_ENROLL;
    it->failed = true;
    it->fail = SIGNER_CODE_BAD_CSR;
    it->why = SIGNER_REASON_CSR_WEAK_HASH;
    it->signin = true;
    it->cert_auth = false; /* a PIN sign-in: candidates */
    it->proceed = true;
    it->num_candidates = SVC_CANDIDATES_MAX;
    for (size_t i = 0; i < SVC_CANDIDATES_MAX; i++) {
        it->candidates[i].uri[sizeof(it->candidates[i].uri) - 1] = '\0';
        it->candidates[i].pin_ok = true;
    }
    it->reason[sizeof(it->reason) - 1] = '\0';
    it->user.uri[sizeof(it->user.uri) - 1] = '\0';
    it->client[sizeof(it->client) - 1] = '\0';
    it->login[sizeof(it->login) - 1] = '\0';
    it->device_id[sizeof(it->device_id) - 1] = '\0';
    it->csr_der_len = sizeof(it->csr_der);
    it->sign_rc = 0;
    it->der_len = sizeof(it->der);
}

static void expect_reset(const struct svc_item *it, uint32_t ring)
{
    struct svc_item want;
    memset(&want, 0, sizeof(want));
    want.ring = ring;
    want.route = SVC_ROUTE_OTHER;
    want.sign_rc = -1;
    const uint8_t *got = (const uint8_t *)it;
    const uint8_t *exp = (const uint8_t *)&want;
    size_t diffs = 0;
    size_t first = 0;
    /* Every byte before the buffers, padding included; the buffers come last. */
    cr_assert_eq(offsetof(struct svc_item, der) + sizeof(it->der), sizeof(*it));
    cr_assert_eq(offsetof(struct svc_item, csr_der) + sizeof(it->csr_der),
                 offsetof(struct svc_item, der));
    cr_assert_eq(it->csr_der_len, 0);
    cr_assert_eq(it->der_len, 0);
    for (size_t i = 0; i < offsetof(struct svc_item, csr_der); i++) {
        if (got[i] != exp[i] && diffs++ == 0) {
            first = i;
        }
    }
    cr_assert_eq(diffs, 0, "%zu bytes of a taken item keep old values, the first at offset %zu",
                 diffs, first);
}

Test(service_items, take_resets_the_whole_item, .init = setup_two_rings, .fini = fx_teardown)
{
    struct service *svc = g_fx.svc;
    for (uint32_t ring = 0; ring < 2; ring++) {
        struct svc_item *it = svc_item_take(svc, ring);
        cr_assert_not_null(it);
        expect_reset(it, ring);
        scribble(it, ring);
        svc_item_validate(svc, it); /* the scribbled item is a valid one */
        svc_item_release(svc, it);
        cr_assert_null(it->req, "release drops the request");
        struct svc_item *again = svc_item_take(svc, ring);
        cr_assert_eq(again, it, "the pool hands the released item out again");
        expect_reset(again, ring);
        svc_item_release(svc, again);
    }
}

Test(service_items, take_returns_null_when_the_ring_is_empty, .init = setup_two_rings,
     .fini = fx_teardown)
{
    struct service *svc = g_fx.svc;
    struct svc_item *taken[ITEMS];
    cr_assert_eq(svc_items_free(svc, 0), ITEMS);
    for (size_t i = 0; i < ITEMS; i++) {
        taken[i] = svc_item_take(svc, 0);
        cr_assert_not_null(taken[i], "item %zu", i);
        cr_assert_eq(taken[i]->ring, 0);
        cr_assert(taken[i] >= svc->rings[0].items && taken[i] < svc->rings[0].items + ITEMS,
                  "an item of ring 0's own slots");
        for (size_t k = 0; k < i; k++) {
            cr_assert_neq(taken[k], taken[i], "item %zu handed out twice", i);
        }
        cr_assert_eq(svc_items_free(svc, 0), ITEMS - 1 - i);
    }
    cr_assert_null(svc_item_take(svc, 0));
    cr_assert_null(svc_item_take(svc, 0), "still none");
    cr_assert_eq(svc_items_free(svc, 0), 0);

    /* The other ring's pool is its own. */
    cr_assert_eq(svc_items_free(svc, 1), ITEMS);
    struct svc_item *other = svc_item_take(svc, 1);
    cr_assert_not_null(other);
    cr_assert_eq(other->ring, 1);
    svc_item_release(svc, other);

    svc_item_release(svc, taken[2]);
    cr_assert_eq(svc_items_free(svc, 0), 1);
    struct svc_item *again = svc_item_take(svc, 0);
    cr_assert_eq(again, taken[2]);
    cr_assert_null(svc_item_take(svc, 0));
    for (size_t i = 0; i < ITEMS; i++) {
        svc_item_release(svc, taken[i]);
    }
    cr_assert_eq(svc_items_free(svc, 0), ITEMS);
}

/* The abort tests need no store: svc_item_validate reads only the number of rings. A crashing
 * test runs no .fini, so it must leave nothing behind. */
static struct service bare = {.num_rings = 1};
static struct svc_item item;

Test(service_items, validate_accepts_the_bounds)
{
    svc_item_reset(&item, 0);
    item.csr_der_len = sizeof(item.csr_der);
    item.der_len = sizeof(item.der);
    item.signin = true;
    item.proceed = true;
    (void)snprintf(item.user.uri, sizeof(item.user.uri), "sip:a@example.com");
    item.num_candidates = SVC_CANDIDATES_MAX;
    for (size_t i = 0; i < SVC_CANDIDATES_MAX; i++) {
        memset(item.candidates[i].uri, 'u', sizeof(item.candidates[i].uri) - 1);
    }
    item.sign_rc = 0;
    item.failed = true;
    item.fail = SIGNER_CODE_INTERNAL_ERROR;
    item.route = SVC_ROUTE_EST_ENROLL;
    svc_item_validate(&bare, &item);
}

Test(service_items, validate_aborts_on_csr_der_len, .signal = SIGABRT)
{
    svc_item_reset(&item, 0);
    item.csr_der_len = sizeof(item.csr_der) + 1;
    svc_item_validate(&bare, &item);
}

Test(service_items, validate_aborts_on_der_len, .signal = SIGABRT)
{
    svc_item_reset(&item, 0);
    item.der_len = sizeof(item.der) + 1;
    svc_item_validate(&bare, &item);
}

Test(service_items, validate_aborts_on_num_candidates, .signal = SIGABRT)
{
    svc_item_reset(&item, 0);
    item.signin = true;
    item.num_candidates = SVC_CANDIDATES_MAX + 1;
    svc_item_validate(&bare, &item);
}

Test(service_items, validate_aborts_on_unterminated_candidate, .signal = SIGABRT)
{
    svc_item_reset(&item, 0);
    item.signin = true;
    item.num_candidates = 1;
    memset(item.candidates[0].uri, 'u', sizeof(item.candidates[0].uri));
    svc_item_validate(&bare, &item);
}

Test(service_items, validate_aborts_on_candidates_without_sign_in, .signal = SIGABRT)
{
    svc_item_reset(&item, 0);
    item.num_candidates = 1;
    (void)snprintf(item.candidates[0].uri, sizeof(item.candidates[0].uri), "sip:a@example.com");
    svc_item_validate(&bare, &item);
}

Test(service_items, validate_aborts_on_proceed_without_user, .signal = SIGABRT)
{
    svc_item_reset(&item, 0);
    item.signin = true;
    item.proceed = true;
    svc_item_validate(&bare, &item);
}

Test(service_items, validate_aborts_on_signed_item_that_does_not_proceed, .signal = SIGABRT)
{
    svc_item_reset(&item, 0);
    item.sign_rc = 0;
    item.der_len = 100;
    svc_item_validate(&bare, &item);
}

Test(service_items, validate_aborts_on_unterminated_reason, .signal = SIGABRT)
{
    svc_item_reset(&item, 0);
    memset(item.reason, 'x', sizeof(item.reason));
    svc_item_validate(&bare, &item);
}

Test(service_items, validate_aborts_on_signed_item_without_der, .signal = SIGABRT)
{
    svc_item_reset(&item, 0);
    item.signin = true;
    item.proceed = true;
    (void)snprintf(item.user.uri, sizeof(item.user.uri), "sip:a@example.com");
    item.sign_rc = 0;
    svc_item_validate(&bare, &item);
}

Test(service_items, validate_aborts_on_ring, .signal = SIGABRT)
{
    svc_item_reset(&item, 1);
    svc_item_validate(&bare, &item);
}

Test(service_items, release_validates_the_hand_over, .signal = SIGABRT)
{
    svc_item_reset(&item, 0);
    item.csr_der_len = sizeof(item.csr_der) + 1;
    svc_item_release(&bare, &item);
}
