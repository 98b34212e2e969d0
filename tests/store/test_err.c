#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/internal.h"
#include "tests/store/fixture.h"

TestSuite(store_err, .init = fixture_init, .fini = fixture_fini);

/* The fixed set of store.h ("Errors"): every LMDB code and system errno lands on one of them. */
Test(store_err, maps_to_the_fixed_set)
{
    static const struct {
        int in;
        int out;
    } cases[] = {
        {MDB_SUCCESS, 0},
        {MDB_NOTFOUND, -ENOENT},
        {ENOENT, -ENOENT},
        {MDB_KEYEXIST, -EEXIST},
        {MDB_MAP_FULL, -ENOSPC},
        {MDB_TXN_FULL, -ENOSPC},
        {ENOSPC, -ENOSPC},
        {EDQUOT, -ENOSPC},
        {EFBIG, -ENOSPC},
        {MDB_READERS_FULL, -EBUSY},
        {EAGAIN, -EBUSY},
        {EBUSY, -EBUSY},
        {ENOMEM, -ENOMEM},
        {EROFS, -EROFS},
        {EACCES, -EACCES},
        {EPERM, -EACCES},
        {MDB_CORRUPTED, -EIO},
        {MDB_PAGE_NOTFOUND, -EIO},
        {MDB_PANIC, -EIO},
        {MDB_VERSION_MISMATCH, -EIO},
        {MDB_INVALID, -EIO},
        {MDB_MAP_RESIZED, -EIO},
        {MDB_DBS_FULL, -EIO},
        {MDB_BAD_TXN, -EIO},
        {MDB_BAD_VALSIZE, -EIO},
        {MDB_BAD_DBI, -EIO},
        {EIO, -EIO},
        {EINVAL, -EIO}, /* LMDB refusing an argument is unexpected, not the caller's -EINVAL */
        {EEXIST, -EIO}, /* only a key exists (MDB_KEYEXIST) */
        {ENOTDIR, -EIO},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        cr_assert_eq(store_err_map(cases[i].in), cases[i].out, "%d", cases[i].in);
        cr_assert_eq(store_err(g_st, cases[i].in, "test"), cases[i].out, "%d", cases[i].in);
    }
}

/* A code that means "no room" or "cannot write" is noted as the thread's fault, for
 * store_batch_commit and store_probe to report (README, /readyz): which setting or condition. */
Test(store_err, notes_the_fault_of_a_write)
{
    static const struct {
        int in;
        enum store_fault fault;
    } cases[] = {
        {MDB_MAP_FULL, STORE_FAULT_MAP_FULL}, {MDB_TXN_FULL, STORE_FAULT_MAP_FULL},
        {ENOSPC, STORE_FAULT_DISK_FULL},      {EDQUOT, STORE_FAULT_DISK_FULL},
        {EFBIG, STORE_FAULT_DISK_FULL},       {EIO, STORE_FAULT_IO},
        {MDB_PANIC, STORE_FAULT_IO},          {MDB_CORRUPTED, STORE_FAULT_IO},
        {EROFS, STORE_FAULT_READ_ONLY},       {MDB_NOTFOUND, STORE_FAULT_NONE},
        {MDB_KEYEXIST, STORE_FAULT_NONE},     {ENOMEM, STORE_FAULT_NONE},
        {MDB_READERS_FULL, STORE_FAULT_NONE}, {EACCES, STORE_FAULT_NONE},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        (void)store_fault_take();
        int rc = store_err(g_st, cases[i].in, "test");
        cr_assert_eq(store_fault_take(), cases[i].fault, "%d", cases[i].in);
        cr_assert_eq(store_fault_take(), STORE_FAULT_NONE, "taken once");
        (void)store_err_map(cases[i].in);
        cr_assert_eq(store_fault_settle(g_st, rc), cases[i].fault, "%d", cases[i].in);
    }
    /* An EIO while the file system has room stays an I/O fault (a full one: test_storefull.sh). */
    (void)store_err_map(EIO);
    cr_assert_eq(store_fault_settle(g_st, -EIO), STORE_FAULT_IO);
    /* Codes that are not about the store's condition carry none, whatever was noted before. */
    (void)store_err_map(ENOSPC);
    cr_assert_eq(store_fault_settle(g_st, -EEXIST), STORE_FAULT_NONE);
    cr_assert_eq(store_fault_take(), STORE_FAULT_NONE);
}

/* store_open reports a directory it may not create as -EACCES and one under a regular file as
 * -EIO, both from the fixed set (not any errno). */
Test(store_err, open_failures_are_in_the_fixed_set)
{
    char path[400];
    snprintf(path, sizeof(path), "%s/file", g_dir);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    cr_assert_eq(fclose(f), 0);
    snprintf(path, sizeof(path), "%s/file/env", g_dir);
    struct store *st = NULL;
    struct store_options opt = {.path = path};
    cr_assert_eq(store_open(&st, &opt), -EIO, "ENOTDIR");
    if (geteuid() != 0) { /* root may write anywhere */
        snprintf(path, sizeof(path), "%s/closed", g_dir);
        cr_assert_eq(mkdir(path, 0500), 0);
        snprintf(path, sizeof(path), "%s/closed/env", g_dir);
        cr_assert_eq(store_open(&st, &opt), -EACCES);
    }
    opt.read_only = true;
    snprintf(path, sizeof(path), "%s/never-created", g_dir);
    cr_assert_eq(store_open(&st, &opt), -ENOENT);
}
