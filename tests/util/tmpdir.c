#include <criterion/criterion.h>
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "tests/util/tmpdir.h"

#define TMPDIR_FDS_MAX 16 /* directory descriptors nftw keeps open at once */

void tmpdir_create(char *out, size_t cap, const char *prefix)
{
    ASSERT(out != NULL);
    ASSERT(prefix != NULL);
    int n = snprintf(out, cap, "/tmp/%s-XXXXXX", prefix);
    cr_assert(n > 0 && (size_t)n < cap, "tmpdir: /tmp/%s-XXXXXX does not fit in %zu bytes", prefix,
              cap);
    char *made = mkdtemp(out);
    cr_assert_not_null(made, "tmpdir: mkdtemp %s: %s", out, strerror(errno));
}

static int remove_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path) == -1 ? -1 : 0;
}

void tmpdir_remove(const char *path)
{
    ASSERT(path != NULL);
    if (path[0] == '\0') {
        return;
    }
    ASSERT(strncmp(path, "/tmp/", 5) == 0);
    ASSERT(path[5] != '\0');
    ASSERT(strstr(path, "/..") == NULL);
    int rc = nftw(path, remove_one, TMPDIR_FDS_MAX, FTW_DEPTH | FTW_PHYS);
    cr_assert_eq(rc, 0, "tmpdir: cannot remove %s: %s", path, strerror(errno));
}
