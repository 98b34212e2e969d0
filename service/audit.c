/* The audit log of administration: an append-only file of JSON lines in the store directory,
 * each carrying the SHA-256 of the line before it (service.h has the format). Written by
 * certprovctl only, never on the request path: an enrollment never waits for it. */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/base.h"
#include "service/internal.h"

#define AUDIT_LOCK_TRIES 200 /* x 10 ms: how long an append waits for another writer */
#define AUDIT_ZERO_HASH "0000000000000000000000000000000000000000000000000000000000000000"

static int audit_path(char *out, size_t cap, const char *dir)
{
    int n = snprintf(out, cap, "%s/%s", dir, SERVICE_AUDIT_FILE);
    return n > 0 && (size_t)n < cap ? 0 : -ENAMETOOLONG;
}

/* ---- writing a line ---- */

struct line {
    char p[SERVICE_AUDIT_LINE_MAX];
    size_t len;
    bool over;
};

static void put(struct line *l, const char *s, size_t n)
{
    if (l->over || l->len + n >= sizeof(l->p)) {
        l->over = true;
        return;
    }
    memcpy(l->p + l->len, s, n);
    l->len += n;
}

static void put_str(struct line *l, const char *s)
{
    put(l, s, strlen(s));
}

/* put_json writes ,"key":"value" with `value` JSON-escaped, cut where its escaped text would pass
 * SERVICE_AUDIT_FIELD_MAX bytes (never inside an escape): 5 such fields and the fixed ones always
 * fit in a line. */
static void put_json(struct line *l, const char *key, const char *value)
{
    static const char hex[] = "0123456789abcdef";
    put_str(l, ",\"");
    put_str(l, key);
    put_str(l, "\":\"");
    size_t start = l->len;
    for (size_t i = 0; value[i] != '\0' && l->len - start + 6 <= SERVICE_AUDIT_FIELD_MAX; i++) {
        unsigned char c = (unsigned char)value[i];
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            put(l, e, 2);
        } else if (c < 0x20 || c == 0x7f) {
            char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            put(l, e, 6);
        } else {
            put(l, (const char *)&c, 1);
        }
    }
    put_str(l, "\"");
}

/* ---- reading a line's fixed fields ---- */

struct head {
    uint64_t seq;
    int64_t time_s;
    char prev[65];
};

/* head_parse reads {"seq":N,"time":"YYYY-MM-DDTHH:MM:SSZ","prev":"64 hex" from the start of
 * `line` and checks that it ends in '}'. Returns 0 or -EBADMSG. */
static int head_parse(struct head *h, const char *line)
{
    static const char a[] = "{\"seq\":";
    static const char b[] = ",\"time\":\"";
    static const char c[] = "\",\"prev\":\"";
    size_t len = strlen(line);
    if (len < 2 || line[len - 1] != '}' || strncmp(line, a, sizeof(a) - 1) != 0) {
        return -EBADMSG;
    }
    const char *p = line + sizeof(a) - 1;
    if (*p < '1' || *p > '9') {
        return -EBADMSG;
    }
    char *end = NULL;
    errno = 0;
    unsigned long long seq = strtoull(p, &end, 10);
    if (errno != 0 || strncmp(end, b, sizeof(b) - 1) != 0) {
        return -EBADMSG;
    }
    p = end + sizeof(b) - 1;
    struct tm tm = {0};
    char z = 0;
    int n = 0;
    if (sscanf(p, "%4d-%2d-%2dT%2d:%2d:%2d%c%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
               &tm.tm_min, &tm.tm_sec, &z, &n) != 7 ||
        n != 20 || z != 'Z') {
        return -EBADMSG;
    }
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    p += 20;
    if (strncmp(p, c, sizeof(c) - 1) != 0) {
        return -EBADMSG;
    }
    p += sizeof(c) - 1;
    if (strspn(p, "0123456789abcdef") != 64 || p[64] != '"') {
        return -EBADMSG;
    }
    h->seq = seq;
    h->time_s = (int64_t)timegm(&tm);
    memcpy(h->prev, p, 64);
    h->prev[64] = '\0';
    return 0;
}

/* ---- append ---- */

static int lock_file(int fd)
{
    for (int i = 0; i < AUDIT_LOCK_TRIES; i++) {
        if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
            return 0;
        }
        if (errno != EWOULDBLOCK) {
            return -errno;
        }
        struct timespec ts = {.tv_nsec = 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return -EBUSY;
}

/* last_head reads the last record of the open log of `size` bytes: its seq and its hash. */
static int last_head(int fd, off_t size, uint64_t *out_seq, char out_hash[65])
{
    *out_seq = 0;
    memcpy(out_hash, AUDIT_ZERO_HASH, 65);
    if (size == 0) {
        return 0;
    }
    static _Thread_local char buf[SERVICE_AUDIT_LINE_MAX + 1];
    size_t want = (size_t)size < sizeof(buf) ? (size_t)size : sizeof(buf);
    ssize_t got = pread(fd, buf, want, size - (off_t)want);
    if (got == -1) {
        return -errno;
    }
    if ((size_t)got != want || buf[want - 1] != '\n') {
        return -EBADMSG; /* a record cut short: audit verify names the line */
    }
    buf[want - 1] = '\0';
    const char *start = strrchr(buf, '\n');
    if (start == NULL && (size_t)size > want) {
        return -EBADMSG; /* a line longer than any record */
    }
    start = start != NULL ? start + 1 : buf;
    struct head h;
    if (head_parse(&h, start) != 0) {
        return -EBADMSG;
    }
    *out_seq = h.seq;
    signer_sha256_hex(out_hash, start, strlen(start));
    return 0;
}

static int append_locked(int fd, const struct service_audit_entry *e)
{
    struct stat sb;
    if (fstat(fd, &sb) == -1) {
        return -errno;
    }
    uint64_t seq = 0;
    char prev[65];
    int rc = last_head(fd, sb.st_size, &seq, prev);
    if (rc != 0) {
        return rc;
    }
    static _Thread_local struct line l;
    l.len = 0;
    l.over = false;
    char head[160];
    char when[CLOCK_UTC_LEN];
    clock_format_utc(when, e->time_s);
    int n = snprintf(head, sizeof(head), "{\"seq\":%" PRIu64 ",\"time\":\"%s\",\"prev\":\"%s\"",
                     seq + 1, when, prev);
    ASSERT(n > 0 && (size_t)n < sizeof(head));
    put(&l, head, (size_t)n);
    n = snprintf(head, sizeof(head), ",\"uid\":%" PRIu32, e->uid);
    ASSERT(n > 0 && (size_t)n < sizeof(head));
    put(&l, head, (size_t)n);
    put_json(&l, "user", e->user);
    put_json(&l, "command", e->command);
    put_json(&l, "target", e->target);
    put_json(&l, "outcome", e->outcome);
    put_json(&l, "detail", e->detail);
    put_str(&l, "}\n");
    static_assert(5 * (SERVICE_AUDIT_FIELD_MAX + 16) + 256 < SERVICE_AUDIT_LINE_MAX, "fits");
    ASSERT(!l.over);
    ssize_t w = write(fd, l.p, l.len);
    if (w != (ssize_t)l.len) {
        rc = w == -1 ? -errno : -EIO;
        if (ftruncate(fd, sb.st_size) == -1) { /* undo a record cut short */
            log_err("service: audit_truncate_failed errno=%d", errno);
        }
        return rc;
    }
    return fdatasync(fd) == -1 ? -errno : 0;
}

int service_audit_append(const char *store_dir, const struct service_audit_entry *e)
{
    ASSERT(store_dir != NULL);
    ASSERT(e != NULL && e->user != NULL && e->command != NULL && e->target != NULL);
    ASSERT(e->outcome != NULL && e->detail != NULL);
    char path[SERVICE_PATH_MAX + 32];
    int rc = audit_path(path, sizeof(path), store_dir);
    if (rc != 0) {
        return rc;
    }
    int fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd == -1) {
        return -errno;
    }
    rc = lock_file(fd);
    if (rc == 0) {
        rc = append_locked(fd, e);
    }
    if (close(fd) == -1 && rc == 0) { /* releases the lock */
        rc = -errno;
    }
    return rc;
}

/* ---- verify and list ---- */

static int verify_line(const char *line, uint64_t lineno, uint64_t want_seq, const char *prev,
                       struct head *h, char *err, size_t err_cap)
{
    if (head_parse(h, line) != 0) {
        snprintf(err, err_cap, "line %" PRIu64 ": not an audit record (edited, or cut short)",
                 lineno);
        return -EBADMSG;
    }
    if (h->seq != want_seq) {
        snprintf(err, err_cap,
                 "line %" PRIu64 ": seq %" PRIu64 " where %" PRIu64
                 " was due: a record was removed or inserted before it",
                 lineno, h->seq, want_seq);
        return -EBADMSG;
    }
    if (strcmp(h->prev, prev) != 0) {
        if (lineno == 1) {
            snprintf(err, err_cap,
                     "line 1: prev is not the start of a chain: records were "
                     "removed from the start");
        } else {
            snprintf(err, err_cap,
                     "line %" PRIu64 ": prev does not match the SHA-256 of line %" PRIu64
                     ": line %" PRIu64 " was edited",
                     lineno, lineno - 1, lineno - 1);
        }
        return -EBADMSG;
    }
    return 0;
}

int service_audit_verify(const char *store_dir, int64_t since_s, service_audit_fn fn, void *ctx,
                         uint64_t *out_records, char *out_last_hash, char *err, size_t err_cap)
{
    ASSERT(store_dir != NULL);
    ASSERT(out_records != NULL && out_last_hash != NULL);
    ASSERT(err != NULL && err_cap > 0);
    err[0] = '\0';
    char path[SERVICE_PATH_MAX + 32];
    int rc = audit_path(path, sizeof(path), store_dir);
    if (rc != 0) {
        return rc;
    }
    char prev[65] = AUDIT_ZERO_HASH;
    uint64_t n = 0;
    FILE *f = fopen(path, "re");
    if (f == NULL) {
        if (errno != ENOENT) {
            return -errno;
        }
        *out_records = 0;
        memcpy(out_last_hash, prev, sizeof(prev));
        return 0;
    }
    static _Thread_local char line[SERVICE_AUDIT_LINE_MAX + 1];
    while (rc == 0 && fgets(line, sizeof(line), f) != NULL) { /* bounded by the file */
        n++;
        size_t len = strlen(line);
        if (len == 0 || line[len - 1] != '\n') {
            snprintf(err, err_cap, "line %" PRIu64 ": %s", n,
                     len + 1 == sizeof(line) ? "longer than any record"
                                             : "cut short (no line end)");
            rc = -EBADMSG;
            break;
        }
        line[len - 1] = '\0';
        struct head h;
        rc = verify_line(line, n, n, prev, &h, err, err_cap);
        if (rc == 0) {
            signer_sha256_hex(prev, line, len - 1);
            if (fn != NULL && h.time_s >= since_s) {
                rc = fn(ctx, line, h.time_s);
            }
        }
    }
    if (rc == 0 && ferror(f)) {
        rc = -EIO;
    }
    fclose(f);
    if (rc == 0) {
        *out_records = n;
        memcpy(out_last_hash, prev, sizeof(prev));
    }
    return rc;
}
