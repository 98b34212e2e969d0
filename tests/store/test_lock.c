#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "store/store.h"
#include "tests/util/tmpdir.h"

static char dir[TMPDIR_PATH_MAX];
static char lock_file[TMPDIR_PATH_MAX + 32];

static void setup(void)
{
    tmpdir_create(dir, sizeof(dir), "certprov-lock");
    snprintf(lock_file, sizeof(lock_file), "%s/%s", dir, STORE_LOCK_FILE);
}

static void teardown(void)
{
    tmpdir_remove(dir);
}

TestSuite(store_lock, .init = setup, .fini = teardown);

static void expect_holder(bool held, pid_t pid)
{
    bool got_held = !held;
    pid_t got_pid = -1;
    cr_assert_eq(store_lock_holder(&got_held, &got_pid, dir), 0);
    cr_assert_eq(got_held, held);
    cr_assert_eq(got_pid, pid);
}

Test(store_lock, one_holder_with_its_pid)
{
    expect_holder(false, 0); /* no lock file yet */
    struct store_lock *a = NULL;
    cr_assert_eq(store_lock_open(&a, dir), 0);
    cr_assert_not_null(a);
    expect_holder(true, getpid());
    struct store_lock *b = NULL;
    cr_assert_eq(store_lock_open(&b, dir), -EBUSY, "a second open conflicts, in one process too");
    cr_assert_null(b);
    expect_holder(true, getpid()); /* asking never takes it, nor disturbs the holder */
    cr_assert_eq(store_lock_open(&b, dir), -EBUSY);
    store_lock_close(a);
    expect_holder(false, 0);
    cr_assert_eq(access(lock_file, F_OK), 0, "the file stays");
    cr_assert_eq(store_lock_open(&b, dir), 0, "free again once closed");
    store_lock_close(b);
    store_lock_close(NULL);
}

Test(store_lock, never_creates_the_directory)
{
    char missing[TMPDIR_PATH_MAX + 16];
    snprintf(missing, sizeof(missing), "%s/none", dir);
    struct store_lock *l = NULL;
    cr_assert_eq(store_lock_open(&l, missing), -ENOENT);
    cr_assert_null(l);
    cr_assert_eq(access(missing, F_OK), -1);
    bool held = true;
    pid_t pid = -1;
    cr_assert_eq(store_lock_holder(&held, &pid, missing), 0);
    cr_assert_not(held);
    cr_assert_eq(pid, 0);
}

/* A held lock whose file lost its PID (or holds garbage) is still held: the lock, not the file,
 * says who holds it; the PID is then unknown (0). */
Test(store_lock, garbage_pid_is_unknown)
{
    struct store_lock *l = NULL;
    cr_assert_eq(store_lock_open(&l, dir), 0);
    FILE *f = fopen(lock_file, "w");
    cr_assert_not_null(f);
    fputs("not a pid\n", f);
    cr_assert_eq(fclose(f), 0);
    expect_holder(true, 0);
    store_lock_close(l);
}

/* The kernel drops the lock of a process that dies, kill -9 included; the stale PID in the file
 * does not make the store look held. */
Test(store_lock, released_by_kill_9)
{
    int ready[2];
    cr_assert_eq(pipe(ready), 0);
    pid_t child = fork();
    cr_assert_neq(child, -1);
    if (child == 0) {
        struct store_lock *l = NULL;
        char c = store_lock_open(&l, dir) == 0 ? 'y' : 'n';
        (void)!write(ready[1], &c, 1);
        pause();
        _exit(0);
    }
    char c = 0;
    cr_assert_eq(read(ready[0], &c, 1), 1);
    cr_assert_eq(c, 'y');
    expect_holder(true, child);
    struct store_lock *l = NULL;
    cr_assert_eq(store_lock_open(&l, dir), -EBUSY);
    cr_assert_eq(kill(child, SIGKILL), 0);
    cr_assert_eq(waitpid(child, NULL, 0), child);
    expect_holder(false, 0);
    cr_assert_eq(store_lock_open(&l, dir), 0);
    expect_holder(true, getpid());
    store_lock_close(l);
    close(ready[0]);
    close(ready[1]);
}

Test(store_lock, unreadable_lock_file_is_an_error)
{
    if (geteuid() == 0) {
        cr_skip_test("root reads any file");
    }
    struct store_lock *l = NULL;
    cr_assert_eq(store_lock_open(&l, dir), 0);
    store_lock_close(l);
    cr_assert_eq(chmod(lock_file, 0), 0);
    bool held = false;
    pid_t pid = 0;
    cr_assert_eq(store_lock_holder(&held, &pid, dir), -EACCES);
    cr_assert_eq(store_lock_open(&l, dir), -EACCES);
}
