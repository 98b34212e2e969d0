/* Tests of the replay set of Web tickets (service/ticket.c): a pair seen twice is a replay while
 * it lives, an expired slot is taken again, and a full neighbourhood is -EBUSY (503), never a
 * growing table. The whole ticket flow runs in tests/integration/test_webticket.sh. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "service/internal.h"
#include "tests/service/fixture.h"

TestSuite(service_webticket, .init = fx_setup, .fini = fx_teardown);

static void key_of(uint8_t key[16], uint8_t n)
{
    memset(key, 0x5a, 16); /* the same first 8 bytes: the same slots to probe */
    key[15] = n;
}

Test(service_webticket, replay_refused_while_live)
{
    uint8_t k[16];
    key_of(k, 1);
    cr_assert_eq(svc_webticket_replay_add(g_fx.svc, k, 1000, 100), 0);
    cr_assert_eq(svc_webticket_replay_add(g_fx.svc, k, 1000, 500), -EEXIST);
    cr_assert_eq(svc_webticket_replay_add(g_fx.svc, k, 2000, 1000), 0, "expired: taken again");
    cr_assert_eq(svc_webticket_replay_add(g_fx.svc, k, 2000, 1500), -EEXIST);
}

Test(service_webticket, full_neighbourhood_is_busy_then_frees)
{
    uint8_t k[16];
    for (uint8_t i = 0; i < 32; i++) {
        key_of(k, i);
        cr_assert_eq(svc_webticket_replay_add(g_fx.svc, k, 1000, 100), 0, "slot %u", i);
    }
    key_of(k, 32);
    cr_assert_eq(svc_webticket_replay_add(g_fx.svc, k, 1000, 100), -EBUSY);
    key_of(k, 5);
    cr_assert_eq(svc_webticket_replay_add(g_fx.svc, k, 1000, 100), -EEXIST, "a replay, not busy");
    key_of(k, 32);
    cr_assert_eq(svc_webticket_replay_add(g_fx.svc, k, 3000, 1000), 0, "the others expired");
}
