#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/base.h"

uint64_t clock_mono_ns(void)
{
    struct timespec ts = {0};
    int rc = clock_gettime(CLOCK_MONOTONIC, &ts);
    ASSERT(rc == 0);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int64_t clock_real_s(void)
{
    struct timespec ts = {0};
    int rc = clock_gettime(CLOCK_REALTIME, &ts);
    ASSERT(rc == 0);
    return (int64_t)ts.tv_sec;
}

int64_t clock_real_ms(void)
{
    struct timespec ts = {0};
    int rc = clock_gettime(CLOCK_REALTIME, &ts);
    ASSERT(rc == 0);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void clock_format_utc(char *out, int64_t t)
{
    ASSERT(out != NULL);
    struct tm tm = {0};
    time_t tt = (time_t)t;
    const struct tm *utc = gmtime_r(&tt, &tm);
    ASSERT(utc != NULL); /* fails only past year 2^31 */
    int n = snprintf(out, CLOCK_UTC_LEN, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    ASSERT(n == CLOCK_UTC_LEN - 1);
}

static const char hex_digits[] = "0123456789ABCDEF";

void base_hex_encode(char *out, size_t cap, const uint8_t *in, size_t len)
{
    ASSERT(out != NULL);
    ASSERT(cap >= 2 * len + 1);
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = hex_digits[in[i] >> 4];
        out[2 * i + 1] = hex_digits[in[i] & 15];
    }
    out[2 * len] = '\0';
}

size_t base_serial_hex(char *out, size_t cap, const uint8_t *in, size_t len)
{
    ASSERT(out != NULL);
    ASSERT(in != NULL || len == 0);
    ASSERT(cap >= 2 * len + 1);
    ASSERT(cap >= 2);
    size_t skip = 0;
    while (skip < len && in[skip] == 0) {
        skip++;
    }
    if (skip == len) {
        out[0] = '0';
        out[1] = '\0';
        return 1;
    }
    size_t n = 0;
    if (in[skip] < 0x10) {
        out[n++] = hex_digits[in[skip++]]; /* no leading zero digit either */
    }
    base_hex_encode(out + n, cap - n, in + skip, len - skip);
    n += 2 * (len - skip);
    ASSERT(out[0] != '0');
    ASSERT(out[n] == '\0');
    return n;
}

size_t base_b64_encode(char *out, size_t cap, const uint8_t *in, size_t len)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    ASSERT(out != NULL);
    ASSERT(len <= (SIZE_MAX - 1) / 4 * 3 - 2);
    ASSERT(cap >= BASE_B64_LEN(len) + 1);
    size_t n = 0;
    size_t i = 0;
    for (; i + 3 <= len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[n++] = alphabet[v >> 18];
        out[n++] = alphabet[(v >> 12) & 63];
        out[n++] = alphabet[(v >> 6) & 63];
        out[n++] = alphabet[v & 63];
    }
    if (i < len) {
        uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < len ? (uint32_t)in[i + 1] << 8 : 0);
        out[n++] = alphabet[v >> 18];
        out[n++] = alphabet[(v >> 12) & 63];
        out[n++] = i + 1 < len ? alphabet[(v >> 6) & 63] : '=';
        out[n++] = '=';
    }
    out[n] = '\0';
    return n;
}

void base_thread_name(const char *fmt, ...)
{
    char name[16]; /* TASK_COMM_LEN: 15 bytes and the NUL */
    va_list ap;
    va_start(ap, fmt);
    (void)vsnprintf(name, sizeof(name), fmt, ap); /* cut, not refused */
    va_end(ap);
    (void)pthread_setname_np(pthread_self(), name);
}

uint32_t base_fnv1a(const void *p, size_t len)
{
    const uint8_t *b = p;
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++) {
        h = (h ^ b[i]) * 16777619u;
    }
    return h;
}

int base_str_copy(char *dst, size_t cap, const char *src)
{
    ASSERT(dst != NULL);
    ASSERT(cap > 0);
    size_t len = strnlen(src, cap);
    if (len == cap) {
        dst[0] = '\0';
        return -E2BIG;
    }
    memcpy(dst, src, len + 1);
    return 0;
}

static int fsync_dir_of(const char *path)
{
    char buf[4096];
    if (base_str_copy(buf, sizeof(buf), path) != 0) {
        return -ENAMETOOLONG;
    }
    int fd = open(dirname(buf), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd == -1) {
        return -errno;
    }
    int rc = fsync(fd) == -1 ? -errno : 0;
    if (close(fd) == -1 && rc == 0) {
        rc = -errno;
    }
    return rc;
}

/* write_all writes p[0..left) to fd, retrying short writes and EINTR. */
static int write_all(int fd, const uint8_t *p, size_t left)
{
    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w == -1 && errno == EINTR) {
            continue;
        }
        if (w == -1) {
            return -errno;
        }
        p += w;
        left -= (size_t)w;
    }
    return 0;
}

/* write_synced writes `len` bytes to the new file `fd`, gives it `mode`, fsyncs it and closes it
 * (on every path). */
static int write_synced(int fd, const void *data, size_t len, unsigned mode)
{
    int rc = write_all(fd, data, len);
    if (rc != 0) {
        goto out;
    }
    if (fchmod(fd, (mode_t)mode) == -1) {
        rc = -errno;
        goto out;
    }
    if (fsync(fd) == -1) {
        rc = -errno;
    }
out:
    if (close(fd) == -1 && rc == 0) {
        rc = -errno;
    }
    return rc;
}

int base_file_atomic_open(struct base_file_atomic *f, const char *path, unsigned mode,
                          bool exclusive)
{
    ASSERT(f != NULL);
    ASSERT(!f->is_open);
    ASSERT(path != NULL);
    int n = snprintf(f->tmp, sizeof(f->tmp), "%s.tmp.%d", path, (int)getpid());
    if (n < 0 || (size_t)n >= sizeof(f->tmp)) {
        return -ENAMETOOLONG;
    }
    if (exclusive && access(path, F_OK) == 0) {
        return -EEXIST;
    }
    struct stat st;
    bool exists = stat(path, &st) == 0;
    if (exists && S_ISDIR(st.st_mode)) {
        return -EISDIR; /* the rename would fail, after the caller did its work */
    }
    /* A device or a FIFO (/dev/null, /dev/stdout) is written in place: a rename would replace
     * the node with a regular file. */
    f->direct = exists && (S_ISCHR(st.st_mode) || S_ISFIFO(st.st_mode));
    int fd = f->direct ? open(path, O_WRONLY | O_CLOEXEC | O_NOCTTY)
                       : open(f->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
                              (mode_t)mode);
    if (fd == -1) {
        return -errno;
    }
    int rc = base_str_copy(f->path, sizeof(f->path), path);
    ASSERT(rc == 0); /* shorter than tmp */
    f->fd = fd;
    f->mode = mode;
    f->exclusive = exclusive;
    f->is_open = true;
    return 0;
}

int base_file_atomic_commit(struct base_file_atomic *f, const void *data, size_t len)
{
    ASSERT(f != NULL);
    ASSERT(f->is_open);
    ASSERT(data != NULL || len == 0);
    f->is_open = false;
    if (f->direct) {
        int rc = write_all(f->fd, data, len);
        if (close(f->fd) == -1 && rc == 0) {
            rc = -errno;
        }
        f->fd = -1;
        return rc;
    }
    int rc = write_synced(f->fd, data, len, f->mode); /* closes fd */
    f->fd = -1;
    if (rc != 0) {
        goto out;
    }
    if (f->exclusive) {
        /* link() fails if the target appeared meanwhile: no silent overwrite of a key. */
        rc = link(f->tmp, f->path) == -1 ? -errno : 0;
        if (unlink(f->tmp) == -1 && rc == 0) {
            rc = -errno;
        }
    } else {
        rc = rename(f->tmp, f->path) == -1 ? -errno : 0;
    }
out:
    if (rc != 0) {
        (void)unlink(f->tmp);
        return rc;
    }
    return fsync_dir_of(f->path);
}

void base_file_atomic_abort(struct base_file_atomic *f)
{
    ASSERT(f != NULL);
    if (!f->is_open) {
        return;
    }
    f->is_open = false;
    if (close(f->fd) == -1) {
        log_warn("base: close_failed path=%s errno=%d", f->tmp, errno);
    }
    f->fd = -1;
    if (!f->direct && unlink(f->tmp) == -1) {
        log_warn("base: unlink_failed path=%s errno=%d", f->tmp, errno);
    }
}

int base_file_write_atomic(const char *path, const void *data, size_t len, unsigned mode,
                           bool exclusive)
{
    ASSERT(path != NULL);
    ASSERT(data != NULL || len == 0);
    struct base_file_atomic f = {0};
    int rc = base_file_atomic_open(&f, path, mode, exclusive);
    if (rc != 0) {
        return rc;
    }
    return base_file_atomic_commit(&f, data, len);
}

int base_file_read(uint8_t *out, size_t *out_len, size_t cap, const char *path)
{
    ASSERT(out != NULL);
    ASSERT(out_len != NULL);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd == -1) {
        return -errno;
    }
    int rc = 0;
    size_t len = 0;
    for (;;) {
        if (len == cap) {
            uint8_t extra;
            ssize_t r = read(fd, &extra, 1);
            rc = r == 0 ? 0 : (r == -1 ? -errno : -E2BIG);
            break;
        }
        ssize_t r = read(fd, out + len, cap - len);
        if (r == -1 && errno == EINTR) {
            continue;
        }
        if (r == -1) {
            rc = -errno;
            break;
        }
        if (r == 0) {
            break;
        }
        len += (size_t)r;
    }
    if (close(fd) == -1 && rc == 0) {
        rc = -errno;
    }
    if (rc == 0) {
        *out_len = len;
    }
    return rc;
}

void base_mutex_lock(pthread_mutex_t *m)
{
    int rc = pthread_mutex_lock(m);
    ASSERT(rc == 0);
}

void base_mutex_unlock(pthread_mutex_t *m)
{
    int rc = pthread_mutex_unlock(m);
    ASSERT(rc == 0);
}

void base_cond_wait(pthread_cond_t *c, pthread_mutex_t *m)
{
    int rc = pthread_cond_wait(c, m);
    ASSERT(rc == 0);
}

void base_cond_signal(pthread_cond_t *c)
{
    int rc = pthread_cond_signal(c);
    ASSERT(rc == 0);
}

void base_cond_init_mono(pthread_cond_t *c)
{
    /* With these attributes the calls cannot fail (glibc; POSIX allows ENOMEM/EAGAIN for the
     * inits, which Linux never returns): a failure is a bug. */
    pthread_condattr_t ca;
    int rc = pthread_condattr_init(&ca);
    ASSERT(rc == 0);
    rc = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    ASSERT(rc == 0);
    rc = pthread_cond_init(c, &ca);
    ASSERT(rc == 0);
    rc = pthread_condattr_destroy(&ca);
    ASSERT(rc == 0);
}

bool base_cond_wait_until(pthread_cond_t *c, pthread_mutex_t *m, uint64_t deadline_ns)
{
    struct timespec ts = {.tv_sec = (time_t)(deadline_ns / 1000000000u),
                          .tv_nsec = (long)(deadline_ns % 1000000000u)};
    int rc = pthread_cond_timedwait(c, m, &ts);
    ASSERT(rc == 0 || rc == ETIMEDOUT);
    return rc == 0;
}

void base_cond_broadcast(pthread_cond_t *c)
{
    int rc = pthread_cond_broadcast(c);
    ASSERT(rc == 0);
}
