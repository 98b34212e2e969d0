#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/store/fixture.h"
#include "tests/util/tmpdir.h"

struct store *g_st;
char g_dir[256];
char g_env[300];
uint8_t fixture_der[FIXTURE_DER_LEN];

struct store *fixture_open(uint64_t map_size, bool read_only)
{
    struct store *st = NULL;
    struct store_options opt = {.path = g_env, .map_size = map_size, .read_only = read_only};
    int rc = store_open(&st, &opt);
    cr_assert_eq(rc, 0, "store_open: %d", rc);
    return st;
}

void fixture_init(void)
{
    tmpdir_create(g_dir, sizeof(g_dir), "store-test");
    snprintf(g_env, sizeof(g_env), "%s/env", g_dir);
    for (size_t i = 0; i < sizeof(fixture_der); i++) {
        fixture_der[i] = (uint8_t)(i * 7 + 3);
    }
    g_st = fixture_open(0, false);
}

void fixture_fini(void)
{
    store_close(g_st);
    g_st = NULL;
    tmpdir_remove(g_dir); /* "" when fixture_init did not get that far */
}

void make_user(struct store_user *u, const char *uri, const char *phone, const char *ext)
{
    memset(u, 0, sizeof(*u));
    snprintf(u->uri, sizeof(u->uri), "%s", uri);
    snprintf(u->pool, sizeof(u->pool), "pool-a");
    snprintf(u->phone, sizeof(u->phone), "%s", phone);
    snprintf(u->ext, sizeof(u->ext), "%s", ext);
    memset(u->pin_verifier, 0x5a, sizeof(u->pin_verifier));
    u->pin_len = 4;
    u->created_s = 1764070245;
}

void make_meta(struct store_cert_meta *m, const char *uri, const char *pool, uint32_t n)
{
    memset(m, 0, sizeof(*m));
    m->serial[0] = 0x11;
    m->serial[12] = (uint8_t)(n >> 24);
    m->serial[13] = (uint8_t)(n >> 16);
    m->serial[14] = (uint8_t)(n >> 8);
    m->serial[15] = (uint8_t)n;
    snprintf(m->uri, sizeof(m->uri), "%s", uri);
    snprintf(m->pool, sizeof(m->pool), "%s", pool);
    snprintf(m->device_id, sizeof(m->device_id), "{DEV-%u}", n);
    m->not_before_s = 1764070245;
    m->not_after_s = 1764070245 + 86400;
    m->issued_at_s = 1764070245;
}
