/* base: assertions, one-line key=value logging, clocks and small byte helpers.
 *
 * base/ depends on nothing of ours and is the only module every other module may include.
 * Everything here is thread-safe unless its comment says otherwise. */
#ifndef CERTPROV_BASE_H
#define CERTPROV_BASE_H

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ASSERT checks an invariant that only our own code could break. It is on in every build and
 * aborts with file, line, function and expression: a bug crashes, it is never an error code. */
#define ASSERT(expr) ((expr) ? (void)0 : base_assert_fail(#expr, __FILE__, __LINE__, __func__))

/* DASSERT is ASSERT for hot paths: checked in debug builds (-DCERTPROV_DEBUG) only. */
#ifdef CERTPROV_DEBUG
#define DASSERT(expr) ASSERT(expr)
#else
#define DASSERT(expr) ((void)sizeof((expr) ? 1 : 0))
#endif

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* base_assert_fail writes one line to stderr and aborts. Never returns. */
_Noreturn void base_assert_fail(const char *expr, const char *file, int line, const char *func);

/* Logging: each call writes exactly one line to stderr (or the file given to log_open):
 *   2026-11-25T11:30:00.123Z certprovctl err store: map_full path=/var/lib/certprov
 * The message is "module: event key=value ...". Lines longer than LOG_LINE_MAX are cut and end
 * in "...". Never pass keys, PINs or whole CSRs. */
#define LOG_LINE_MAX 2048

enum log_level {
    LOG_LEVEL_ERR = 0,
    LOG_LEVEL_WARN = 1,
    LOG_LEVEL_INFO = 2,
    LOG_LEVEL_DEBUG = 3,
};

/* log_setup sets the program name shown on each line and the most verbose level written.
 * Call once at start-up, before other threads run. `program` must outlive all logging. */
void log_setup(const char *program, enum log_level level);

/* log_level_parse maps "err", "warn", "info", "debug" to *out. Returns 0 or -EINVAL. */
int log_level_parse(enum log_level *out, const char *name);

/* log_format is how a line is written: text (the default, above) or one JSON object per line
 * (for journald, Loki, ELK):
 *   {"ts":"2026-11-25T11:30:00.123Z","program":"certprovctl","level":"err","module":"store",
 *    "event":"map_full","path":"/var/lib/certprov"}
 * The message is split into "module: event key=value ..."; a value may be "quoted"; a key that
 * would clash with the fixed fields gets a '_' in front; words that are not key=value go into
 * "msg". Strings are JSON-escaped (RFC 8259 §7; bytes that are not UTF-8 become U+FFFD); a line
 * longer than LOG_LINE_MAX ends its object early with "truncated":true. */
enum log_format {
    LOG_FORMAT_TEXT = 0,
    LOG_FORMAT_JSON = 1,
};

/* log_format_set chooses the format of every later line. Call at start-up, like log_setup. */
void log_format_set(enum log_format format);

/* log_format_parse maps "text" or "json" to *out. Returns 0 or -EINVAL. */
int log_format_parse(enum log_format *out, const char *name);

/* log_enabled tells whether lines of `level` are written (log_setup's level). Any thread. */
bool log_enabled(enum log_level level);

/* log_value copies `in` into `out` (cap >= 4 bytes, NUL-terminated) as one safe value of a
 * key=value line: bytes outside printable ASCII, space, '"', '%', '=' and '\' become %XX (the
 * line cannot be forged into more keys or lines), "" becomes "-"; cut (at a whole %XX) to fit.
 * Returns `out`. */
char *log_value(char *out, size_t cap, const char *in);

/* log_open sends lines to `path` (appended, created 0640) instead of stderr; called again (on
 * SIGHUP) it reopens the file for log rotation. Returns 0 or a negative errno. */
int log_open(const char *path);

/* log_write formats and writes one line at `level` (see above). Thread-safe: one write(2). */
void log_write(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_vwrite(enum log_level level, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

/* log_hold_begin gathers the lines this thread writes, until log_hold_end, in `buf` (cap >=
 * LOG_LINE_MAX), and writes them with one write(2) when it is full and at log_hold_end: a thread
 * that logs a line per item of a batch (the enrollment writer) makes one syscall a batch. Lines
 * stay whole and in order; other threads' lines fall between held batches. Not nested. */
void log_hold_begin(char *buf, size_t cap);
void log_hold_end(void);
/* log_hold_spill writes this thread's held lines now, if any (base_assert_fail: the lines before
 * a failed assertion are the ones that explain it). Async-signal-safe: one write(2). */
void log_hold_spill(void);

#define log_err(...) log_write(LOG_LEVEL_ERR, __VA_ARGS__)
#define log_warn(...) log_write(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_info(...) log_write(LOG_LEVEL_INFO, __VA_ARGS__)
#ifdef CERTPROV_DEBUG
#define log_debug(...) log_write(LOG_LEVEL_DEBUG, __VA_ARGS__)
#else
#define log_debug(...) ((void)0)
#endif

/* clock_mono_ns returns CLOCK_MONOTONIC in nanoseconds. */
uint64_t clock_mono_ns(void);
/* clock_real_s returns the wall-clock time in seconds since the Unix epoch. */
int64_t clock_real_s(void);
/* clock_real_ms returns the wall-clock time in milliseconds since the Unix epoch. */
int64_t clock_real_ms(void);
/* clock_format_utc writes `t` (Unix seconds) as "YYYY-MM-DDTHH:MM:SSZ" into `out` (at least
 * CLOCK_UTC_LEN bytes, NUL included). */
#define CLOCK_UTC_LEN 21
void clock_format_utc(char *out, int64_t t);

/* base_hex_encode writes 2*len upper-case hex digits and a NUL into `out` (cap >= 2*len+1). */
void base_hex_encode(char *out, size_t cap, const uint8_t *in, size_t len);

/* base_serial_hex writes the big-endian unsigned integer in[0..len) (a certificate serial) as
 * upper-case hex without leading zeros or separators ("0" for zero) and a NUL into `out` (cap >=
 * 2*len+1, and >= 2); returns the text's length. The one spelling of a serial (README, certprovctl)
 * in logs, the CLI and the publisher's rows. */
size_t base_serial_hex(char *out, size_t cap, const uint8_t *in, size_t len);

/* BASE_B64_LEN is the length of the base64 text of `len` bytes (padded, no line breaks). */
#define BASE_B64_LEN(len) (((len) + 2) / 3 * 4)
/* base_b64_encode writes the base64 text of in[0..len) (RFC 4648 §4, padded, no line breaks) and
 * a NUL into `out` (cap >= BASE_B64_LEN(len) + 1); returns the text's length. For public data
 * (certificates): unlike BoringSSL's EVP_EncodeBlock it is not constant-time, which makes it
 * faster. Secrets are never base64-encoded by the appliance. */
size_t base_b64_encode(char *out, size_t cap, const uint8_t *in, size_t len);

/* base_fnv1a is the 32-bit FNV-1a hash of p[0..len): for spreading keys over slots and ranges,
 * never against an adversary's choice of keys. Stable: the store's by-user index keys start with
 * it. */
uint32_t base_fnv1a(const void *p, size_t len);

/* base_str_copy copies the NUL-terminated `src` into `dst` of `cap` bytes. Returns 0, or
 * -E2BIG (dst then holds "") when src does not fit. */
int base_str_copy(char *dst, size_t cap, const char *src);

/* base_mutex_lock, base_mutex_unlock, base_cond_wait, base_cond_signal and base_cond_broadcast
 * are the pthread calls with their result checked: on a default mutex they fail only through a
 * bug (a lock not initialised, a deadlock with ourselves, an unlock we do not hold), so a failure
 * ASSERTs. */
void base_mutex_lock(pthread_mutex_t *m);
void base_mutex_unlock(pthread_mutex_t *m);
void base_cond_wait(pthread_cond_t *c, pthread_mutex_t *m);
void base_cond_signal(pthread_cond_t *c);
void base_cond_broadcast(pthread_cond_t *c);
/* base_cond_init_mono initialises `c` to time its waits by CLOCK_MONOTONIC (clock_mono_ns), for
 * base_cond_wait_until. */
void base_cond_init_mono(pthread_cond_t *c);
/* base_cond_wait_until waits on `c` (initialised by base_cond_init_mono) until signalled or until
 * clock_mono_ns() reaches deadline_ns: false once the deadline passed, true otherwise (which may
 * be a spurious wake-up, as with pthread_cond_wait). */
bool base_cond_wait_until(pthread_cond_t *c, pthread_mutex_t *m, uint64_t deadline_ns);

/* base_thread_name names the calling thread (top -H, perf, /proc/PID/task/TID/comm): the
 * formatted name cut to the 15 bytes Linux keeps. Best effort. */
void base_thread_name(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* base_file_write_atomic writes `len` bytes to `path` with `mode` via a temporary file, fsync
 * and rename, then fsyncs the directory. With `exclusive`, fails with -EEXIST if `path` exists.
 * Returns 0 or a negative errno. It is base_file_atomic_open + base_file_atomic_commit. */
int base_file_write_atomic(const char *path, const void *data, size_t len, unsigned mode,
                           bool exclusive);

#define BASE_PATH_MAX 4096

/* base_file_atomic is a file written in two steps, for a caller who must know that it can write
 * the file BEFORE it does something it cannot undo (certprovctl cert issue --out): open creates
 * the temporary file "<path>.tmp.<pid>" beside `path`, so that a missing directory, a directory
 * at `path`, a lack of permission or a read-only file system fail then; commit writes, fsyncs and
 * renames it over `path`. Caller-owned storage; all zero is the closed state. One thread. */
struct base_file_atomic {
    bool is_open;
    bool exclusive;
    bool direct; /* `path` is a device or a FIFO: written in place, no temporary file */
    int fd;
    unsigned mode;
    char path[BASE_PATH_MAX];
    char tmp[BASE_PATH_MAX];
};

/* base_file_atomic_open prepares `f` (closed) to write `path` with `mode`. A `path` that is a
 * character device or a FIFO (/dev/null, /dev/stdout) is opened and written in place instead
 * (a rename would replace the node with a file; nothing to fsync). With `exclusive`, the
 * commit will not replace an existing file. Returns 0 (f open), -ENAMETOOLONG, -EEXIST
 * (exclusive and `path` exists), -EISDIR (`path` is a directory), or the negative errno of
 * creating the temporary file (-ENOENT, -EACCES, -EROFS, ...); on failure f stays closed. */
int base_file_atomic_open(struct base_file_atomic *f, const char *path, unsigned mode,
                          bool exclusive);

/* base_file_atomic_commit writes `len` bytes into the open `f`, gives the file its mode, fsyncs
 * it, renames it over the path (exclusive: links it, -EEXIST if the path appeared meanwhile) and
 * fsyncs the directory. Closes `f` on every path and removes the temporary file on failure.
 * Returns 0 or a negative errno (-ENOSPC, -EIO, ...). */
int base_file_atomic_commit(struct base_file_atomic *f, const void *data, size_t len);

/* base_file_atomic_abort closes `f` and removes its temporary file; the path is untouched. A
 * closed (or all-zero) `f` is a no-op. */
void base_file_atomic_abort(struct base_file_atomic *f);

/* base_file_read reads a whole regular file of at most `cap` bytes into `out`. Returns 0 (length
 * in *out_len), -E2BIG if larger than cap, or a negative errno. */
int base_file_read(uint8_t *out, size_t *out_len, size_t cap, const char *path);

#endif
