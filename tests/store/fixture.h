/* fixture: shared set-up for the store tests. Each test gets a fresh mkdtemp directory with an
 * environment in <dir>/env, opened into g_st; fixture_fini closes it and removes the directory. */
#ifndef CERTPROV_TESTS_STORE_FIXTURE_H
#define CERTPROV_TESTS_STORE_FIXTURE_H

#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

extern struct store *g_st;
extern char g_dir[256];
extern char g_env[300];

/* fixture_init creates the directory and opens g_st with the default options. */
void fixture_init(void);
/* fixture_fini closes g_st (if open) and removes the directory tree. */
void fixture_fini(void);
/* fixture_open opens g_env with `map_size` and `read_only`; asserts success. */
struct store *fixture_open(uint64_t map_size, bool read_only);

/* make_user fills *u with a valid user. */
void make_user(struct store_user *u, const char *uri, const char *phone, const char *ext);
/* make_meta fills *m for `uri` in `pool` with serial bytes derived from `n`. */
void make_meta(struct store_cert_meta *m, const char *uri, const char *pool, uint32_t n);

#define FIXTURE_DER_LEN 1024
/* fixture_der is a 1 KiB DER-sized buffer whose bytes depend on nothing. */
extern uint8_t fixture_der[FIXTURE_DER_LEN];

#endif
