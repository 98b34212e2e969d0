/* fuzz_audit: libFuzzer harness for the audit log reader and writer (service/audit.c). The input
 * is a whole audit.log in a private directory. Checked: service_audit_verify returns only its
 * documented codes (a damaged log: -EBADMSG naming a line); every record it hands out is a line
 * that starts with the fixed fields; an append succeeds exactly when the log verified (or ends in
 * a whole record that parses: then the new record chains to it), and a log that verified still
 * verifies after the append, one record longer. Any crash, sanitizer report, leak or ASSERT is a
 * finding. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/base.h"
#include "service/service.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[64];
static char path[128];

static int each(void *ctx, const char *line, int64_t time_s)
{
    (void)time_s;
    (*(uint64_t *)ctx)++;
    ASSERT(strncmp(line, "{\"seq\":", 7) == 0);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (dir[0] == '\0') {
        (void)snprintf(dir, sizeof(dir), "/tmp/fuzz-audit-XXXXXX");
        ASSERT(mkdtemp(dir) != NULL);
        (void)snprintf(path, sizeof(path), "%s/%s", dir, SERVICE_AUDIT_FILE);
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    ASSERT(fd != -1);
    ASSERT(write(fd, data, size) == (ssize_t)size);
    ASSERT(close(fd) == 0);
    uint64_t n = 0;
    uint64_t seen = 0;
    char head[65];
    char err[256];
    int rc = service_audit_verify(dir, INT64_MIN, each, &seen, &n, head, err, sizeof(err));
    ASSERT(rc == 0 || rc == -EBADMSG);
    if (rc == -EBADMSG) {
        ASSERT(strncmp(err, "line ", 5) == 0);
    } else {
        ASSERT(seen == n);
        ASSERT(strlen(head) == 64);
    }
    struct service_audit_entry e = {.time_s = 1764900000,
                                    .uid = 0,
                                    .user = "fuzz",
                                    .command = "user add",
                                    .target = "sip:a@example.com",
                                    .outcome = "ok",
                                    .detail = ""};
    int arc = service_audit_append(dir, &e);
    ASSERT(arc == 0 || arc == -EBADMSG);
    if (rc == 0) {
        ASSERT(arc == 0); /* a log that verifies always takes a record */
        uint64_t n2 = 0;
        int rc2 = service_audit_verify(dir, INT64_MIN, NULL, NULL, &n2, head, err, sizeof(err));
        ASSERT(rc2 == 0);
        ASSERT(n2 == n + 1);
    }
    return 0;
}
