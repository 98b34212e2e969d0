#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/base64.h>

#include "base/base.h"
#include "tests/util/tmpdir.h"

Test(base_assert, fires_on_false, .signal = SIGABRT)
{
    volatile int x = 1;
    ASSERT(x == 2);
}

Test(base_assert, passes_on_true)
{
    volatile int x = 2;
    ASSERT(x == 2);
}

Test(base_hex, encodes_upper_case)
{
    const uint8_t in[] = {0x00, 0x7f, 0xab, 0xff};
    char out[9];
    base_hex_encode(out, sizeof(out), in, sizeof(in));
    cr_assert_str_eq(out, "007FABFF");
}

Test(base_hex, asserts_on_small_buffer, .signal = SIGABRT)
{
    const uint8_t in[] = {1, 2};
    char out[4];
    base_hex_encode(out, sizeof(out), in, sizeof(in));
}

Test(base_serial_hex, drops_leading_zeros)
{
    static const struct {
        uint8_t in[4];
        const char *want;
    } cases[] = {
        {{0, 0, 0, 0}, "0"},
        {{0, 0, 0, 1}, "1"},
        {{0, 0, 0, 0x0f}, "F"},
        {{0, 0, 0, 0x10}, "10"},
        {{0, 0, 0x0a, 0}, "A00"},
        {{0, 0x01, 0x00, 0x0b}, "1000B"},
        {{0x7f, 0xab, 0x00, 0x01}, "7FAB0001"},
        {{0xff, 0xff, 0xff, 0xff}, "FFFFFFFF"},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        char out[2 * 4 + 1];
        memset(out, 'x', sizeof(out));
        size_t n = base_serial_hex(out, sizeof(out), cases[i].in, sizeof(cases[i].in));
        cr_expect_str_eq(out, cases[i].want, "case %zu", i);
        cr_expect_eq(n, strlen(cases[i].want), "case %zu", i);
    }
}

/* Every 64-bit value spelled as printf's %llX spells it, in every width it fits. */
Test(base_serial_hex, same_as_printf_for_any_width)
{
    uint64_t v = 0x9e3779b97f4a7c15u;
    for (size_t round = 0; round < 2000; round++) {
        uint64_t x = round < 64 ? (uint64_t)1 << round : v >> (round % 64);
        v = v * 6364136223846793005u + 1442695040888963407u;
        char want[17];
        (void)snprintf(want, sizeof(want), "%llX", (unsigned long long)x);
        uint8_t in[16] = {0};
        for (size_t k = 0; k < 8; k++) {
            in[15 - k] = (uint8_t)(x >> (8 * k));
        }
        for (size_t width = 8; width <= 16; width++) {
            char out[2 * 16 + 1];
            size_t n = base_serial_hex(out, 2 * width + 1, in + 16 - width, width);
            cr_assert_str_eq(out, want, "x %llx width %zu", (unsigned long long)x, width);
            cr_assert_eq(n, strlen(want));
        }
    }
}

Test(base_serial_hex, asserts_on_small_buffer, .signal = SIGABRT)
{
    const uint8_t in[16] = {0, 1};
    char out[2 * 16];
    (void)base_serial_hex(out, sizeof(out), in, sizeof(in)); /* one short of 2*len+1 */
}

Test(base_str, copy_fits_and_overflows)
{
    char buf[4];
    cr_assert_eq(base_str_copy(buf, sizeof(buf), "abc"), 0);
    cr_assert_str_eq(buf, "abc");
    cr_assert_eq(base_str_copy(buf, sizeof(buf), "abcd"), -E2BIG);
    cr_assert_str_eq(buf, "");
}

Test(base_str, fnv1a_is_the_published_function)
{
    /* FNV-1a 32-bit test vectors (draft-eastlake-fnv): the store's by-user index keys begin with
     * this hash, so it may never change. */
    cr_assert_eq(base_fnv1a("", 0), 0x811c9dc5u);
    cr_assert_eq(base_fnv1a("a", 1), 0xe40c292cu);
    cr_assert_eq(base_fnv1a("foobar", 6), 0xbf9cf968u);
}

Test(base_clock, utc_format)
{
    char out[CLOCK_UTC_LEN];
    clock_format_utc(out, 0);
    cr_assert_str_eq(out, "1970-01-01T00:00:00Z");
    clock_format_utc(out, 1764070245);
    cr_assert_str_eq(out, "2025-11-25T11:30:45Z");
    cr_assert_gt(clock_real_s(), 1700000000);
    uint64_t a = clock_mono_ns();
    cr_assert_geq(clock_mono_ns(), a);
}

/* tmp is the scratch directory of the tests that write files: made by .init, removed by .fini. */
static char tmp[TMPDIR_PATH_MAX];

static void tmp_init(void)
{
    tmpdir_create(tmp, sizeof(tmp), "certprov-base");
}

static void tmp_fini(void)
{
    tmpdir_remove(tmp);
}

/* log_to_temp_file sends the log to a new file in `tmp` and writes its path into `path`. */
static void log_to_temp_file(char *path, size_t cap)
{
    snprintf(path, cap, "%s/log", tmp);
    log_setup("t", LOG_LEVEL_INFO);
    cr_assert_eq(log_open(path), 0);
}

/* log_file_lines reads `path` and returns its number of lines (checking each is whole). */
static size_t log_file_lines(const char *path, uint8_t *buf, size_t cap, size_t *len)
{
    cr_assert_eq(base_file_read(buf, len, cap, path), 0);
    size_t lines = 0;
    for (size_t i = 0; i < *len; i++) {
        lines += buf[i] == '\n';
    }
    cr_assert(*len == 0 || buf[*len - 1] == '\n', "whole lines only");
    return lines;
}

/* A failed assertion writes the lines its thread held before it aborts: they explain it. */
Test(base_log, held_lines_reach_the_log_when_an_assertion_fails, .init = tmp_init, .fini = tmp_fini)
{
    char path[256];
    log_to_temp_file(path, sizeof(path));
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        static char hold[LOG_LINE_MAX];
        log_hold_begin(hold, sizeof(hold));
        log_info("base: before_the_failure n=%d", 1);
        volatile int x = 1;
        ASSERT(x == 2);
    }
    int status = 0;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
    static uint8_t buf[4096];
    size_t len = 0;
    cr_assert_eq(log_file_lines(path, buf, sizeof(buf), &len), 1, "the held line was lost");
    cr_assert_not_null(memmem(buf, len, "before_the_failure n=1", 22));
}

Test(base_log, held_lines_written_together_in_order, .init = tmp_init, .fini = tmp_fini)
{
    char path[256];
    log_to_temp_file(path, sizeof(path));
    static uint8_t buf[65536];
    size_t len = 0;
    static char hold[LOG_LINE_MAX];
    log_hold_begin(hold, sizeof(hold));
    log_info("base: held n=%d", 0);
    log_info("base: held n=%d", 1);
    cr_assert_eq(log_file_lines(path, buf, sizeof(buf), &len), 0, "nothing written while held");
    for (int i = 2; i < 100; i++) { /* ~50 bytes each: the buffer fills and is written */
        log_info("base: held n=%d", i);
    }
    size_t mid = log_file_lines(path, buf, sizeof(buf), &len);
    cr_assert_gt(mid, 0, "a full buffer is written");
    cr_assert_lt(mid, 100);
    log_hold_end();
    log_info("base: after n=%d", 100);
    cr_assert_eq(log_file_lines(path, buf, sizeof(buf), &len), 101);
    const char *p = (const char *)buf;
    for (int i = 0; i < 100; i++) { /* in order */
        char want[32];
        snprintf(want, sizeof(want), "held n=%d\n", i);
        const char *q = memmem(p, len - (size_t)(p - (const char *)buf), want, strlen(want));
        cr_assert_not_null(q, "line %d", i);
        p = q + strlen(want);
    }
    cr_assert_not_null(memmem(buf, len, "after n=100\n", 12));
}

Test(base_log, level_parse)
{
    enum log_level l = LOG_LEVEL_ERR;
    cr_assert_eq(log_level_parse(&l, "debug"), 0);
    cr_assert_eq(l, LOG_LEVEL_DEBUG);
    cr_assert_eq(log_level_parse(&l, "WARN"), 0);
    cr_assert_eq(l, LOG_LEVEL_WARN);
    cr_assert_eq(log_level_parse(&l, "loud"), -EINVAL);
    cr_assert_eq(l, LOG_LEVEL_WARN);
}

Test(base_log, one_line_per_record_even_with_newlines, .init = tmp_init, .fini = tmp_fini)
{
    char path[256];
    log_to_temp_file(path, sizeof(path));
    log_info("base: test evil=%s", "a\nforged line");
    log_debug("base: hidden");
    char big[LOG_LINE_MAX * 2];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    log_err("base: big v=%s", big);
    uint8_t buf[8192];
    size_t len = 0;
    cr_assert_eq(log_file_lines(path, buf, sizeof(buf), &len), 2);
    cr_assert_leq(len, 2 * LOG_LINE_MAX);
    cr_assert_not_null(memmem(buf, len, "info base: test evil=a forged line", 34));
    cr_assert_not_null(memmem(buf, len, "...\n", 4));
}

Test(base_file, atomic_write_read_exclusive, .init = tmp_init, .fini = tmp_fini)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/f", tmp);
    cr_assert_eq(base_file_write_atomic(path, "secret", 6, 0600, true), 0);
    cr_assert_eq(base_file_write_atomic(path, "other", 5, 0600, true), -EEXIST);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0600);
    uint8_t buf[6];
    size_t len = 0;
    cr_assert_eq(base_file_read(buf, &len, sizeof(buf), path), 0);
    cr_assert_eq(len, 6);
    cr_assert_eq(memcmp(buf, "secret", 6), 0);
    cr_assert_eq(base_file_read(buf, &len, 5, path), -E2BIG);
    cr_assert_eq(base_file_write_atomic(path, "new", 3, 0600, false), 0);
    cr_assert_eq(base_file_read(buf, &len, sizeof(buf), path), 0);
    cr_assert_eq(len, 3);
    cr_assert_eq(base_file_read(buf, &len, sizeof(buf), "/nonexistent/x"), -ENOENT);
}

/* The two-phase atomic write (hardening item 17: certprovctl cert issue --out checks that it can
 * write the file before it issues): open fails at once where the commit would fail, and nothing
 * is left behind by an abort. */
Test(base_file, atomic_open_commit_abort, .init = tmp_init, .fini = tmp_fini)
{
    char path[256];
    char bad[256];
    snprintf(path, sizeof(path), "%s/f", tmp);
    struct base_file_atomic f = {0};
    base_file_atomic_abort(&f); /* all-zero: a no-op */
    snprintf(bad, sizeof(bad), "%s/missing/f", tmp);
    cr_assert_eq(base_file_atomic_open(&f, bad, 0644, false), -ENOENT);
    cr_assert_eq(base_file_atomic_open(&f, tmp, 0644, false), -EISDIR);
    base_file_atomic_abort(&f); /* a failed open leaves nothing to abort */
    cr_assert_eq(base_file_atomic_open(&f, path, 0644, false), 0);
    base_file_atomic_abort(&f);
    cr_assert_eq(access(path, F_OK), -1, "an abort leaves no file");
    cr_assert_eq(rmdir(tmp), 0, "nor a temporary one");
    cr_assert_eq(mkdir(tmp, 0700), 0);
    cr_assert_eq(base_file_atomic_open(&f, path, 0640, false), 0);
    cr_assert_eq(base_file_atomic_commit(&f, "pem", 3), 0);
    base_file_atomic_abort(&f); /* after a commit: a no-op */
    uint8_t buf[8];
    size_t len = 0;
    cr_assert_eq(base_file_read(buf, &len, sizeof(buf), path), 0);
    cr_assert_eq(len, 3);
    cr_assert_eq(memcmp(buf, "pem", 3), 0);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0640);
    cr_assert_eq(base_file_atomic_open(&f, path, 0600, true), -EEXIST);
    cr_assert_eq(base_file_atomic_open(&f, path, 0600, false), 0, "replaces");
    cr_assert_eq(base_file_atomic_commit(&f, "x", 1), 0);
    cr_assert_eq(base_file_read(buf, &len, sizeof(buf), path), 0);
    cr_assert_eq(len, 1);
    cr_assert_eq(unlink(path), 0);
    cr_assert_eq(rmdir(tmp), 0, "only the file was there");
    cr_assert_eq(mkdir(tmp, 0700), 0);
}

Test(base_b64, rfc4648_vectors)
{
    static const char *const want[] = {"",         "Zg==",     "Zm8=",    "Zm9v",
                                       "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    char out[16];
    for (size_t len = 0; len <= 6; len++) {
        memset(out, 'x', sizeof(out));
        size_t n = base_b64_encode(out, BASE_B64_LEN(len) + 1, (const uint8_t *)"foobar", len);
        cr_assert_eq(n, strlen(want[len]));
        cr_assert_str_eq(out, want[len]);
    }
}

Test(base_b64, same_as_boringssl_for_every_length_and_byte)
{
    uint8_t in[700];
    for (size_t i = 0; i < sizeof(in); i++) {
        in[i] = (uint8_t)(i * 151 + (i >> 3)); /* every byte value, in shifting neighbours */
    }
    static char ours[1000];
    static uint8_t ref[1000];
    for (size_t len = 0; len + 4 <= sizeof(in); len++) {
        const uint8_t *p = in + len % 5; /* unaligned starts too */
        size_t n = base_b64_encode(ours, BASE_B64_LEN(len) + 1, p, len);
        size_t m = EVP_EncodeBlock(ref, p, len);
        cr_assert_eq(n, m, "len %zu", len);
        cr_assert_eq(n, BASE_B64_LEN(len));
        cr_assert_eq(memcmp(ours, ref, n + 1), 0, "len %zu", len); /* NUL included */
    }
}

Test(base_b64, short_buffer_asserts, .signal = SIGABRT)
{
    char out[8];
    (void)base_b64_encode(out, sizeof(out), (const uint8_t *)"foobar", 6); /* needs 9 */
}

static void *name_thread(void *arg)
{
    base_thread_name("cp-pub-%s", (const char *)arg);
    char path[64];
    snprintf(path, sizeof(path), "/proc/self/task/%d/comm", (int)gettid());
    static char comm[32];
    FILE *f = fopen(path, "re");
    cr_assert_not_null(f);
    cr_assert_not_null(fgets(comm, sizeof(comm), f));
    fclose(f);
    return comm;
}

struct waiters {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool go;
    int woken;
};

static void *wait_for_go(void *arg)
{
    struct waiters *w = arg;
    base_mutex_lock(&w->mu);
    while (!w->go) {
        base_cond_wait(&w->cv, &w->mu);
    }
    w->woken++;
    base_mutex_unlock(&w->mu);
    return NULL;
}

Test(base_mutex, broadcast_wakes_every_waiter)
{
    static struct waiters w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, 0};
    pthread_t t[3];
    for (size_t i = 0; i < ARRAY_LEN(t); i++) {
        cr_assert_eq(pthread_create(&t[i], NULL, wait_for_go, &w), 0);
    }
    base_mutex_lock(&w.mu);
    w.go = true;
    base_cond_broadcast(&w.cv);
    base_mutex_unlock(&w.mu);
    for (size_t i = 0; i < ARRAY_LEN(t); i++) {
        cr_assert_eq(pthread_join(t[i], NULL), 0);
    }
    cr_assert_eq(w.woken, 3);
}

static void *signal_go(void *arg)
{
    struct waiters *w = arg;
    base_mutex_lock(&w->mu);
    w->go = true;
    base_cond_signal(&w->cv);
    base_mutex_unlock(&w->mu);
    return NULL;
}

/* base_cond_wait_until: false once the monotonic deadline passed (not before it), true when
 * signalled (here long before the deadline). */
Test(base_mutex, wait_until_a_monotonic_deadline)
{
    static struct waiters w = {.mu = PTHREAD_MUTEX_INITIALIZER};
    base_cond_init_mono(&w.cv);
    base_mutex_lock(&w.mu);
    uint64_t t0 = clock_mono_ns();
    uint64_t until = t0 + 30000000u; /* 30 ms */
    bool woken = true;
    while (woken && clock_mono_ns() < until) { /* spurious wake-ups */
        woken = base_cond_wait_until(&w.cv, &w.mu, until);
    }
    cr_assert(!woken);
    cr_assert_geq(clock_mono_ns(), until);
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, signal_go, &w), 0);
    until = clock_mono_ns() + 60000000000u; /* 60 s: the signal comes first */
    while (!w.go) {
        cr_assert(base_cond_wait_until(&w.cv, &w.mu, until));
    }
    base_mutex_unlock(&w.mu);
    cr_assert_eq(pthread_join(t, NULL), 0);
    cr_assert_eq(pthread_cond_destroy(&w.cv), 0);
}

/* An unlock of a mutex this thread does not hold is a bug: with an error-checking mutex,
 * pthread_mutex_unlock says so (EPERM) and base_mutex_unlock ASSERTs. */
Test(base_mutex, unlock_not_held_asserts, .signal = SIGABRT)
{
    pthread_mutexattr_t attr;
    pthread_mutex_t mu;
    cr_assert_eq(pthread_mutexattr_init(&attr), 0);
    cr_assert_eq(pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ERRORCHECK), 0);
    cr_assert_eq(pthread_mutex_init(&mu, &attr), 0);
    base_mutex_unlock(&mu);
}

Test(base_thread, name_is_cut_to_15_bytes)
{
    pthread_t t;
    void *comm = NULL;
    cr_assert_eq(pthread_create(&t, NULL, name_thread, "a-long-pool-name"), 0);
    cr_assert_eq(pthread_join(t, &comm), 0);
    cr_assert_str_eq(comm, "cp-pub-a-long-p\n");
}

/* ---- log formats ---- */

/* log_json_line logs the message `msg` in the JSON format and returns the line (without its
 * newline). */
static const char *log_json_line(const char *msg)
{
    static char path[256];
    static uint8_t buf[8192];
    size_t len = 0;
    log_to_temp_file(path, sizeof(path));
    log_format_set(LOG_FORMAT_JSON);
    log_info("%s", msg);
    log_format_set(LOG_FORMAT_TEXT);
    cr_assert_eq(log_file_lines(path, buf, sizeof(buf) - 1, &len), 1);
    buf[len - 1] = '\0';
    return (const char *)buf;
}

/* json_ok checks that `s` is one flat JSON object of string (or true) values: every string is
 * closed, escapes are valid, no raw control character. */
static bool json_ok(const char *s)
{
    size_t n = strlen(s);
    if (n < 2 || s[0] != '{' || s[n - 1] != '}') {
        return false;
    }
    bool in = false;
    for (size_t i = 1; i < n - 1; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20) {
            return false;
        }
        if (in && c == '\\') {
            char e = s[++i];
            if (e == 'u') {
                i += 4;
            } else if (strchr("\"\\/bfnrt", e) == NULL) {
                return false;
            }
        } else if (c == '"') {
            in = !in;
        }
    }
    return !in;
}

Test(base_log, json_fields_and_escaping, .init = tmp_init, .fini = tmp_fini)
{
    const char *l = log_json_line("store: map_full path=/var/a\"b\\c\x01 op=put "
                                  "action=\"raise [store] map_size\" level=x stray words");
    cr_assert(json_ok(l), "%s", l);
    cr_assert(strncmp(l, "{\"ts\":\"", 7) == 0, "%s", l);
    cr_assert(strstr(l, "Z\",\"program\":\"t\",\"level\":\"info\",\"module\":\"store\","
                        "\"event\":\"map_full\",\"path\":\"/var/a\\\"b\\\\c\\u0001\","
                        "\"op\":\"put\",\"action\":\"raise [store] map_size\","
                        "\"_level\":\"x\",\"msg\":\"stray words\"}") != NULL,
              "%s", l);
}

Test(base_log, json_keeps_utf8_and_replaces_other_bytes, .init = tmp_init, .fini = tmp_fini)
{
    /* é (2 bytes), € (3), 😀 (4) kept; a lone continuation byte, an overlong '/', a surrogate
     * and a truncated sequence at the end become U+FFFD */
    const char *l = log_json_line("base: utf8 a=\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80 "
                                  "b=\x80\xc0\xaf\xed\xa0\x80 c=\xe2\x82");
    cr_assert(json_ok(l), "%s", l);
    cr_assert(strstr(l, "\"a\":\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"") != NULL, "%s", l);
    cr_assert(strstr(l, "\"b\":\"\\ufffd\\ufffd\\ufffd\\ufffd\\ufffd\\ufffd\"") != NULL, "%s", l);
    cr_assert(strstr(l, "\"c\":\"\\ufffd\\ufffd\"") != NULL, "%s", l);
}

Test(base_log, json_without_module_is_msg, .init = tmp_init, .fini = tmp_fini)
{
    const char *l = log_json_line("just some text");
    cr_assert(json_ok(l), "%s", l);
    cr_assert(strstr(l, ",\"msg\":\"just some text\"}") != NULL, "%s", l);
}

Test(base_log, json_long_line_is_cut_whole, .init = tmp_init, .fini = tmp_fini)
{
    static char big[3 * LOG_LINE_MAX];
    size_t off = (size_t)snprintf(big, sizeof(big), "base: big");
    for (int i = 0; off + 16 < sizeof(big); i++) {
        off += (size_t)snprintf(big + off, sizeof(big) - off, " k%d=\x02\"", i);
    }
    const char *l = log_json_line(big);
    cr_assert_lt(strlen(l), LOG_LINE_MAX);
    cr_assert(json_ok(l), "%s", l);
    cr_assert(strstr(l, ",\"truncated\":true}") != NULL, "%s", l);
}

Test(base_log, format_parse_and_enabled)
{
    enum log_format f = LOG_FORMAT_TEXT;
    cr_assert_eq(log_format_parse(&f, "json"), 0);
    cr_assert_eq(f, LOG_FORMAT_JSON);
    cr_assert_eq(log_format_parse(&f, "text"), 0);
    cr_assert_eq(f, LOG_FORMAT_TEXT);
    cr_assert_eq(log_format_parse(&f, "JSON "), -EINVAL);
    cr_assert_eq(log_format_parse(&f, NULL), -EINVAL);
    log_setup("t", LOG_LEVEL_INFO);
    cr_assert(log_enabled(LOG_LEVEL_INFO));
    cr_assert_not(log_enabled(LOG_LEVEL_DEBUG));
    log_setup("t", LOG_LEVEL_DEBUG);
    cr_assert(log_enabled(LOG_LEVEL_DEBUG));
}

Test(base_log, value_escapes_what_could_forge_keys)
{
    char out[32];
    cr_assert_str_eq(log_value(out, sizeof(out), "+14155550100"), "+14155550100");
    cr_assert_str_eq(log_value(out, sizeof(out), "a b=c\"d%\\\n\xc3"), "a%20b%3Dc%22d%25%5C%0A%C3");
    cr_assert_str_eq(log_value(out, sizeof(out), ""), "-");
    char small[6];
    cr_assert_str_eq(log_value(small, sizeof(small), "abc d"), "abc"); /* never half a %XX */
    cr_assert_str_eq(log_value(small, sizeof(small), "abcdefgh"), "abcde");
}

/* Any message, whatever its bytes, is one valid JSON object on one line. */
Test(base_log, json_any_message_is_one_valid_object, .init = tmp_init, .fini = tmp_fini)
{
    static const char alphabet[] = "ab =\"\\:-_.\x01\n\r\t\x7f\xc3\xa9\x80\xff";
    char path[256];
    static uint8_t buf[8192];
    log_to_temp_file(path, sizeof(path));
    srand(14);
    for (int round = 0; round < 500; round++) {
        char msg[600];
        size_t n = (size_t)(rand() % (int)(sizeof(msg) - 1));
        for (size_t i = 0; i < n; i++) {
            msg[i] = alphabet[rand() % (int)(sizeof(alphabet) - 1)];
        }
        msg[n] = '\0';
        cr_assert_eq(truncate(path, 0), 0);
        log_format_set(LOG_FORMAT_JSON);
        log_info("%s", msg);
        log_format_set(LOG_FORMAT_TEXT);
        size_t len = 0;
        cr_assert_eq(log_file_lines(path, buf, sizeof(buf) - 1, &len), 1, "round %d", round);
        buf[len - 1] = '\0';
        cr_assert(json_ok((const char *)buf), "round %d: %s", round, buf);
    }
}

/* A device is written in place, never replaced: `certprovctl cert issue --out /dev/null` (or
 * /dev/stdout) used to rename a temporary regular file over the device node (found the hard
 * way: /dev/null became a file). Checked on a private null device (mknod: root only, else
 * skipped) so that a regression cannot break the machine's /dev/null. */
Test(base_file, atomic_write_to_a_device_writes_in_place)
{
    char dir[] = "/tmp/certprov-dev-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char dev[64];
    snprintf(dev, sizeof(dev), "%s/null", dir);
    if (mknod(dev, S_IFCHR | 0666, makedev(1, 3)) == -1) {
        rmdir(dir);
        cr_skip_test("mknod needs root");
    }
    struct stat st;
    cr_assert_eq(base_file_write_atomic(dev, "x", 1, 0600, false), 0);
    cr_assert_eq(stat(dev, &st), 0);
    cr_assert(S_ISCHR(st.st_mode), "the device node was replaced by a file");
    struct base_file_atomic f = {0};
    cr_assert_eq(base_file_atomic_open(&f, dev, 0600, false), 0);
    cr_assert_eq(base_file_atomic_commit(&f, "abc", 3), 0);
    cr_assert_eq(stat(dev, &st), 0);
    cr_assert(S_ISCHR(st.st_mode));
    cr_assert_eq(base_file_atomic_open(&f, dev, 0600, false), 0);
    base_file_atomic_abort(&f);
    cr_assert_eq(stat(dev, &st), 0);
    cr_assert(S_ISCHR(st.st_mode));
    /* exclusive: a device that exists is refused like a file that exists */
    struct base_file_atomic g = {0};
    cr_assert_eq(base_file_atomic_open(&g, dev, 0600, true), -EEXIST);
    cr_assert_eq(unlink(dev), 0, "only the node itself is in the directory");
    cr_assert_eq(rmdir(dir), 0, "no temporary file was left beside it");
}
