/* tmpdir: test helper for scratch directories. A test (or its .init fixture) makes a fresh
 * directory under /tmp with tmpdir_create and removes the whole tree with tmpdir_remove (in .fini),
 * instead of each file carrying its own mkdtemp template and rm -rf. */
#ifndef CERTPROV_TESTS_TMPDIR_H
#define CERTPROV_TESTS_TMPDIR_H

#include <stddef.h>

#define TMPDIR_PATH_MAX 64 /* enough for "/tmp/" + a short prefix + "-XXXXXX" */

/* tmpdir_create makes a fresh directory "/tmp/<prefix>-XXXXXX" (mkdtemp: mode 0700, a unique
 * name) and writes its path into `out` (cap bytes, TMPDIR_PATH_MAX is enough for a prefix of up to
 * 40 bytes). Fails the test (cr_assert) when the path does not fit or mkdtemp fails. */
void tmpdir_create(char *out, size_t cap, const char *prefix);

/* tmpdir_remove removes `path` and everything below it, depth first and without following
 * symbolic links (nftw with FTW_DEPTH | FTW_PHYS). "" is a no-op (a fixture whose .init did not
 * get that far). Only paths under /tmp/ are accepted (ASSERTed): a wrong argument must not delete
 * anything else. Fails the test (cr_assert) when something cannot be removed. */
void tmpdir_remove(const char *path);

#endif
