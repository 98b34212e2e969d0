#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "base/base.h"

static const char *log_program = "certprov";
static atomic_int log_max_level = LOG_LEVEL_INFO;
static atomic_int log_fd = STDERR_FILENO;
static const char *const level_names[] = {"err", "warn", "info", "debug"};

void log_setup(const char *program, enum log_level level)
{
    ASSERT(program != NULL);
    ASSERT(level <= LOG_LEVEL_DEBUG);
    log_program = program;
    atomic_store(&log_max_level, (int)level);
}

int log_level_parse(enum log_level *out, const char *name)
{
    ASSERT(out != NULL);
    for (size_t i = 0; i < ARRAY_LEN(level_names); i++) {
        if (name != NULL && strcasecmp(name, level_names[i]) == 0) {
            *out = (enum log_level)i;
            return 0;
        }
    }
    return -EINVAL;
}

int log_open(const char *path)
{
    ASSERT(path != NULL);
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd == -1) {
        return -errno;
    }
    int old = atomic_exchange(&log_fd, fd);
    if (old != STDERR_FILENO && close(old) == -1) {
        return -errno;
    }
    return 0;
}

/* The held lines of this thread (log_hold_begin). */
static _Thread_local struct {
    char *buf;
    size_t cap;
    size_t len;
} tl_hold;

/* The date and time to the second of this thread's last line: formatted once a second. */
static _Thread_local struct {
    time_t sec;
    char text[sizeof("YYYY-MM-DDTHH:MM:SS")];
} tl_stamp = {.sec = -1};

static void write_all(const char *p, size_t len)
{
    ssize_t w = write(atomic_load(&log_fd), p, len);
    (void)w; /* Nowhere left to report a failed log write. */
}

void log_hold_begin(char *buf, size_t cap)
{
    ASSERT(buf != NULL);
    ASSERT(cap >= LOG_LINE_MAX);
    ASSERT(tl_hold.buf == NULL);
    tl_hold.buf = buf;
    tl_hold.cap = cap;
    tl_hold.len = 0;
}

void log_hold_end(void)
{
    ASSERT(tl_hold.buf != NULL);
    if (tl_hold.len > 0) {
        write_all(tl_hold.buf, tl_hold.len);
    }
    tl_hold.buf = NULL;
    tl_hold.len = 0;
}

void log_vwrite(enum log_level level, const char *fmt, va_list ap)
{
    ASSERT(level <= LOG_LEVEL_DEBUG);
    if ((int)level > atomic_load(&log_max_level)) {
        return;
    }
    char line[LOG_LINE_MAX];
    struct timespec ts = {0};
    clock_gettime(CLOCK_REALTIME, &ts);
    if (ts.tv_sec != tl_stamp.sec) {
        struct tm tm = {0};
        gmtime_r(&ts.tv_sec, &tm);
        int k = snprintf(tl_stamp.text, sizeof(tl_stamp.text), "%04d-%02d-%02dT%02d:%02d:%02d",
                         tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                         tm.tm_sec);
        ASSERT(k == (int)sizeof(tl_stamp.text) - 1);
        tl_stamp.sec = ts.tv_sec;
    }
    int n = snprintf(line, sizeof(line), "%s.%03ldZ %s %s ", tl_stamp.text, ts.tv_nsec / 1000000,
                     log_program, level_names[level]);
    ASSERT(n > 0 && (size_t)n < sizeof(line));
    size_t len = (size_t)n;
    int m = vsnprintf(line + len, sizeof(line) - len - 1, fmt, ap);
    if (m < 0) {
        m = 0;
    }
    if ((size_t)m >= sizeof(line) - len - 1) {
        len = sizeof(line) - 5;
        memcpy(line + len, "...", 3);
        len += 3;
    } else {
        len += (size_t)m;
    }
    /* One line is one record: control characters from callers cannot forge extra lines. */
    for (size_t i = 0; i < len; i++) {
        if (line[i] == '\n' || line[i] == '\r') {
            line[i] = ' ';
        }
    }
    line[len++] = '\n';
    if (tl_hold.buf == NULL) {
        write_all(line, len);
        return;
    }
    if (tl_hold.len + len > tl_hold.cap) {
        write_all(tl_hold.buf, tl_hold.len);
        tl_hold.len = 0;
    }
    memcpy(tl_hold.buf + tl_hold.len, line, len);
    tl_hold.len += len;
}

void log_write(enum log_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vwrite(level, fmt, ap);
    va_end(ap);
}
