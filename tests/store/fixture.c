#include <criterion/criterion.h>
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/store/fixture.h"

struct store *g_st;
char g_dir[256];
char g_env[300];
uint8_t fixture_der[FIXTURE_DER_LEN];

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

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
    snprintf(g_dir, sizeof(g_dir), "/tmp/store-test-XXXXXX");
    cr_assert_not_null(mkdtemp(g_dir));
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
    if (g_dir[0] != '\0') {
        nftw(g_dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    }
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
