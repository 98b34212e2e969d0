/* Tests of the tests' own scratch-directory helper (tests/util/tmpdir.h). */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/base.h"
#include "tests/util/tmpdir.h"

static void write_file(const char *dir, const char *name)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    cr_assert_eq(base_file_write_atomic(path, "x", 1, 0600, false), 0);
}

Test(tests_tmpdir, creates_fresh_private_directories)
{
    char a[TMPDIR_PATH_MAX];
    char b[TMPDIR_PATH_MAX];
    tmpdir_create(a, sizeof(a), "certprov-tmpdir");
    tmpdir_create(b, sizeof(b), "certprov-tmpdir");
    cr_expect_str_neq(a, b);
    cr_expect_eq(strncmp(a, "/tmp/certprov-tmpdir-", 21), 0, "%s", a);
    struct stat st;
    cr_assert_eq(stat(a, &st), 0);
    cr_expect(S_ISDIR(st.st_mode));
    cr_expect_eq(st.st_mode & 0777, 0700);
    tmpdir_remove(a);
    tmpdir_remove(b);
    cr_expect_eq(stat(a, &st), -1);
    cr_expect_eq(errno, ENOENT);
}

/* A tree with files, nested directories and a symbolic link to a directory outside it: the tree
 * goes, the link's target stays. */
Test(tests_tmpdir, removes_a_tree_without_following_links)
{
    char dir[TMPDIR_PATH_MAX];
    char outside[TMPDIR_PATH_MAX];
    tmpdir_create(dir, sizeof(dir), "certprov-tmpdir");
    tmpdir_create(outside, sizeof(outside), "certprov-tmpdir");
    write_file(outside, "keep");
    char path[256];
    snprintf(path, sizeof(path), "%s/a", dir);
    cr_assert_eq(mkdir(path, 0700), 0);
    snprintf(path, sizeof(path), "%s/a/b", dir);
    cr_assert_eq(mkdir(path, 0700), 0);
    write_file(dir, "f");
    write_file(dir, "a/g");
    write_file(dir, "a/b/h");
    snprintf(path, sizeof(path), "%s/a/link", dir);
    cr_assert_eq(symlink(outside, path), 0);

    tmpdir_remove(dir);
    struct stat st;
    cr_expect_eq(lstat(dir, &st), -1);
    snprintf(path, sizeof(path), "%s/keep", outside);
    cr_expect_eq(stat(path, &st), 0, "the link's target is untouched");
    tmpdir_remove(outside);
}

Test(tests_tmpdir, empty_path_is_a_no_op)
{
    tmpdir_remove("");
}

Test(tests_tmpdir, refuses_paths_outside_tmp, .signal = SIGABRT)
{
    tmpdir_remove("/var/lib/certprov");
}

Test(tests_tmpdir, refuses_dot_dot, .signal = SIGABRT)
{
    tmpdir_remove("/tmp/../etc");
}
