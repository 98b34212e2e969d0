/* lock.c: the daemon lock of a store directory: one store, one certprovd. It calls nothing else
 * in store/.
 *
 * An open-file-description lock (F_OFD_SETLK) on <dir>/certprovd.lock, not flock(2) and not a
 * classic POSIX lock: F_OFD_GETLK asks whether the lock is held without taking it, so a check
 * (certprovd --check, certprovctl) can never make a daemon that starts at that instant fail; and,
 * unlike a POSIX lock, it does not vanish when some other descriptor of the file in the process
 * is closed, and two opens in one process conflict (the unit tests rely on it). The kernel drops
 * it when the process ends, kill -9 included. The file holds the PID of the last holder, for the
 * messages and for a human with cat. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/base.h"
#include "store/store.h"

#define LOCK_PID_TEXT_MAX 24 /* "2147483647\n" and room */

struct store_lock {
    int fd;
};

static int lock_path(char out[PATH_MAX], const char *dir)
{
    int n = snprintf(out, PATH_MAX, "%s/%s", dir, STORE_LOCK_FILE);
    return n < 0 || n >= PATH_MAX ? -EINVAL : 0;
}

/* whole_file fills `fl` for a write lock of the whole file. */
static void whole_file(struct flock *fl)
{
    memset(fl, 0, sizeof(*fl));
    fl->l_type = F_WRLCK;
    fl->l_whence = SEEK_SET; /* l_start = l_len = 0: the whole file, however long */
}

/* write_pid records this process's PID in the locked file. */
static int write_pid(int fd)
{
    char text[LOCK_PID_TEXT_MAX];
    int n = snprintf(text, sizeof(text), "%ld\n", (long)getpid());
    ASSERT(n > 0);
    ASSERT((size_t)n < sizeof(text));
    if (ftruncate(fd, 0) == -1) {
        return -errno;
    }
    ssize_t w = pwrite(fd, text, (size_t)n, 0);
    if (w == -1) {
        return -errno;
    }
    return w == n ? 0 : -EIO;
}

int store_lock_open(struct store_lock **out, const char *dir)
{
    ASSERT(out != NULL);
    ASSERT(dir != NULL);
    char path[PATH_MAX];
    int rc = lock_path(path, dir);
    if (rc != 0) {
        return rc;
    }
    struct store_lock *lock = calloc(1, sizeof(*lock));
    if (lock == NULL) {
        return -ENOMEM;
    }
    /* 0644: it holds nothing but a PID, and whoever may read the store may learn who holds it. */
    lock->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (lock->fd == -1) {
        rc = -errno;
        goto out;
    }
    struct flock fl;
    whole_file(&fl);
    if (fcntl(lock->fd, F_OFD_SETLK, &fl) == -1) {
        rc = errno == EAGAIN || errno == EACCES ? -EBUSY : -errno;
        goto out;
    }
    rc = write_pid(lock->fd);
    if (rc != 0) {
        goto out;
    }
    *out = lock;
    lock = NULL;
out:
    store_lock_close(lock);
    return rc;
}

void store_lock_close(struct store_lock *lock)
{
    if (lock == NULL) {
        return;
    }
    /* Closing the only descriptor of the open file description releases the lock; the file and
     * the PID in it stay (a stale PID is harmless: the lock, not the file, says who holds it). */
    if (lock->fd >= 0 && close(lock->fd) == -1) {
        log_warn("store: lock_close_failed errno=%d", errno);
    }
    lock->fd = -1;
    free(lock);
}

/* read_pid reads the PID recorded in the lock file: 0 when it is empty or not a number. */
static pid_t read_pid(int fd)
{
    char text[LOCK_PID_TEXT_MAX];
    ssize_t r = pread(fd, text, sizeof(text) - 1, 0);
    if (r <= 0) {
        return 0;
    }
    text[r] = '\0';
    char *end = NULL;
    errno = 0;
    long pid = strtol(text, &end, 10);
    if (errno != 0 || end == text || (*end != '\n' && *end != '\0') || pid <= 0 || pid > INT_MAX) {
        return 0;
    }
    return (pid_t)pid;
}

int store_lock_holder(bool *out_held, pid_t *out_pid, const char *dir)
{
    ASSERT(out_held != NULL);
    ASSERT(out_pid != NULL);
    ASSERT(dir != NULL);
    char path[PATH_MAX];
    int rc = lock_path(path, dir);
    if (rc != 0) {
        return rc;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd == -1 && errno == ENOENT) {
        *out_held = false; /* no daemon has ever run on this store (or no directory at all) */
        *out_pid = 0;
        return 0;
    }
    if (fd == -1) {
        return -errno;
    }
    struct flock fl;
    whole_file(&fl);
    bool held = false;
    pid_t pid = 0;
    if (fcntl(fd, F_OFD_GETLK, &fl) == -1) {
        rc = -errno;
    } else {
        held = fl.l_type != F_UNLCK; /* F_UNLCK: the lock could be taken now */
        pid = held ? read_pid(fd) : 0;
    }
    if (close(fd) == -1 && rc == 0) {
        rc = -errno;
    }
    if (rc == 0) {
        *out_held = held;
        *out_pid = pid;
    }
    return rc;
}
