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
static atomic_int log_fmt = LOG_FORMAT_TEXT;
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

void log_format_set(enum log_format format)
{
    ASSERT(format == LOG_FORMAT_TEXT || format == LOG_FORMAT_JSON);
    atomic_store(&log_fmt, (int)format);
}

int log_format_parse(enum log_format *out, const char *name)
{
    ASSERT(out != NULL);
    if (name != NULL && strcmp(name, "text") == 0) {
        *out = LOG_FORMAT_TEXT;
        return 0;
    }
    if (name != NULL && strcmp(name, "json") == 0) {
        *out = LOG_FORMAT_JSON;
        return 0;
    }
    return -EINVAL;
}

bool log_enabled(enum log_level level)
{
    ASSERT(level <= LOG_LEVEL_DEBUG);
    return (int)level <= atomic_load(&log_max_level);
}

char *log_value(char *out, size_t cap, const char *in)
{
    static const char hex[] = "0123456789ABCDEF";
    ASSERT(out != NULL);
    ASSERT(cap >= 4);
    ASSERT(in != NULL);
    size_t len = 0;
    for (const unsigned char *p = (const unsigned char *)in; *p != '\0'; p++) {
        bool plain = *p > 0x20 && *p < 0x7f && *p != '"' && *p != '%' && *p != '=' && *p != '\\';
        size_t need = plain ? 1 : 3;
        if (len + need >= cap) {
            break;
        }
        if (plain) {
            out[len++] = (char)*p;
        } else {
            out[len++] = '%';
            out[len++] = hex[*p >> 4];
            out[len++] = hex[*p & 15];
        }
    }
    if (len == 0) {
        out[len++] = '-';
    }
    out[len] = '\0';
    return out;
}

/* ---- JSON lines ---- */

/* A bounded JSON writer: `over` once something did not fit; `mark` is the length after the last
 * whole field, where an object cut short ends. */
struct jbuf {
    char *p;
    size_t cap;
    size_t len;
    size_t mark;
    bool over;
};

static void jput(struct jbuf *j, const char *s, size_t n)
{
    if (j->over || j->len + n > j->cap) {
        j->over = true;
        return;
    }
    memcpy(j->p + j->len, s, n);
    j->len += n;
}

/* utf8_len returns the length of the well-formed UTF-8 sequence at s[0..n) (RFC 3629 §4: no
 * overlong forms, no surrogates, at most U+10FFFF), or 0 when it is not one. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    size_t len = s[0] >= 0xf0 ? 4 : s[0] >= 0xe0 ? 3 : 2;
    if (s[0] < 0xc2 || s[0] > 0xf4 || len > n) {
        return 0;
    }
    for (size_t k = 1; k < len; k++) {
        if ((s[k] & 0xc0) != 0x80) {
            return 0;
        }
    }
    if ((s[0] == 0xe0 && s[1] < 0xa0) || (s[0] == 0xed && s[1] > 0x9f) ||
        (s[0] == 0xf0 && s[1] < 0x90) || (s[0] == 0xf4 && s[1] > 0x8f)) {
        return 0;
    }
    return len;
}

/* jstr writes s[0..n) as a JSON string (RFC 8259 §7: '"', '\\' and control characters escaped;
 * well-formed UTF-8 as it is; any other byte as U+FFFD, so that the line is valid UTF-8 JSON). */
static void jstr(struct jbuf *j, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    jput(j, "\"", 1);
    for (size_t i = 0; i < n && !j->over; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x80) {
            size_t u = utf8_len((const unsigned char *)s + i, n - i);
            if (u == 0) {
                jput(j, "\\ufffd", 6);
            } else {
                jput(j, s + i, u);
                i += u - 1;
            }
        } else if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            jput(j, e, 2);
        } else if (c < 0x20 || c == 0x7f) {
            char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            jput(j, e, 6);
        } else {
            jput(j, (const char *)&c, 1);
        }
    }
    jput(j, "\"", 1);
}

/* jfield writes ,"key":"value" (key k[0..kn), prefixed by '_' when `clash`), or nothing at all
 * when it does not fit whole. */
static void jfield(struct jbuf *j, const char *k, size_t kn, bool clash, const char *v, size_t vn)
{
    if (j->over) {
        return;
    }
    jput(j, ",", 1);
    if (clash) {
        char key[64];
        size_t n = kn < sizeof(key) - 2 ? kn : sizeof(key) - 2;
        key[0] = '_';
        memcpy(key + 1, k, n);
        jstr(j, key, n + 1);
    } else {
        jstr(j, k, kn);
    }
    jput(j, ":", 1);
    jstr(j, v, vn);
    if (!j->over) {
        j->mark = j->len;
    }
}

static bool key_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '-';
}

static bool key_clashes(const char *k, size_t n)
{
    static const char *const fixed[] = {"ts", "program", "level", "module", "event", "msg"};
    for (size_t i = 0; i < ARRAY_LEN(fixed); i++) {
        if (strlen(fixed[i]) == n && memcmp(fixed[i], k, n) == 0) {
            return true;
        }
    }
    return false;
}

/* json_fields writes the fields of the message m[0..n): "module: event key=value ...". */
static void json_fields(struct jbuf *j, const char *m, size_t n)
{
    char msg[LOG_LINE_MAX];
    size_t msg_len = 0;
    size_t i = 0;
    size_t k = 0;
    while (k < n && key_char(m[k])) {
        k++;
    }
    if (k > 0 && k + 1 < n && m[k] == ':' && m[k + 1] == ' ') {
        jfield(j, "module", 6, false, m, k);
        i = k + 2;
        size_t e = i;
        while (e < n && m[e] != ' ') {
            e++;
        }
        jfield(j, "event", 5, false, m + i, e - i);
        i = e;
    }
    while (i < n) { /* bounded by n: every step moves i forward */
        while (i < n && m[i] == ' ') {
            i++;
        }
        size_t ks = i;
        while (i < n && key_char(m[i])) {
            i++;
        }
        size_t kn = i - ks;
        if (kn > 0 && i < n && m[i] == '=') {
            size_t vs = ++i;
            size_t ve;
            if (i < n && m[i] == '"') {
                vs = ++i;
                while (i < n && m[i] != '"') {
                    i++;
                }
                ve = i;
                i += i < n ? 1 : 0;
            } else {
                while (i < n && m[i] != ' ') {
                    i++;
                }
                ve = i;
            }
            jfield(j, m + ks, kn, key_clashes(m + ks, kn), m + vs, ve - vs);
            continue;
        }
        while (i < n && m[i] != ' ') { /* a word that is not key=value */
            i++;
        }
        if (i > ks && msg_len + (i - ks) + 1 < sizeof(msg)) {
            if (msg_len > 0) {
                msg[msg_len++] = ' ';
            }
            memcpy(msg + msg_len, m + ks, i - ks);
            msg_len += i - ks;
        }
    }
    if (msg_len > 0) {
        jfield(j, "msg", 3, false, msg, msg_len);
    }
}

/* json_line writes the JSON object of one line into out (cap bytes, room for '}' kept) and
 * returns its length. */
static size_t json_line(char *out, size_t cap, const char *stamp, long ms, enum log_level level,
                        const char *m, size_t n)
{
    ASSERT(cap > 64);
    struct jbuf j = {.p = out, .cap = cap - 32}; /* room for ,"truncated":true} */
    char ts[48];
    int k = snprintf(ts, sizeof(ts), "%s.%03ldZ", stamp, ms);
    ASSERT(k > 0 && (size_t)k < sizeof(ts));
    jput(&j, "{\"ts\":", 6);
    jstr(&j, ts, (size_t)k);
    j.mark = j.len;
    jfield(&j, "program", 7, false, log_program, strlen(log_program));
    jfield(&j, "level", 5, false, level_names[level], strlen(level_names[level]));
    json_fields(&j, m, n);
    ASSERT(!j.over || j.mark <= j.len);
    size_t len = j.over ? j.mark : j.len;
    static const char cut[] = ",\"truncated\":true}";
    const char *end = j.over ? cut : "}";
    size_t end_len = strlen(end);
    ASSERT(len + end_len <= cap);
    memcpy(out + len, end, end_len);
    return len + end_len;
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

void log_hold_spill(void)
{
    if (tl_hold.buf != NULL && tl_hold.len > 0) {
        write_all(tl_hold.buf, tl_hold.len);
        tl_hold.len = 0;
    }
}

void log_hold_end(void)
{
    ASSERT(tl_hold.buf != NULL);
    log_hold_spill();
    tl_hold.buf = NULL;
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
    if (atomic_load(&log_fmt) == LOG_FORMAT_JSON) {
        char json[LOG_LINE_MAX];
        size_t head = (size_t)n; /* the text line's prefix, left out: the fields carry it */
        len = json_line(json, sizeof(json) - 1, tl_stamp.text, ts.tv_nsec / 1000000, level,
                        line + head, len - head);
        memcpy(line, json, len);
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
