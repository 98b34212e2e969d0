/* fuzz_import: libFuzzer harness for the user import file of certprovctl (service/import.c). The
 * input is a whole file, cut into lines as certprovctl's fgets does (at most
 * SERVICE_IMPORT_LINE_MAX - 1 bytes, ending at '\n'); the first goes to
 * service_import_header_check, the others to service_import_row_parse, each from a heap copy of
 * exactly its size so that ASan sees any read past it. Checked: only the documented codes; a
 * header that passes is the header (after one optional BOM); a blank line is left as it was; a
 * row has five fields inside the line, none holding a comma, quote, CR or LF, and joined with
 * commas they are the line up to its end. Any crash, sanitizer report, leak or ASSERT is a
 * finding. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "service/service.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_header(const char *line)
{
    int rc = service_import_header_check(line);
    ASSERT(rc == 0 || rc == -EBADMSG);
    if (rc != 0) {
        return;
    }
    if (strncmp(line, "\xef\xbb\xbf", 3) == 0) {
        line += 3;
    }
    size_t len = strlen(SERVICE_IMPORT_HEADER);
    ASSERT(strncmp(line, SERVICE_IMPORT_HEADER, len) == 0);
    ASSERT(line[len] == '\0' || line[len] == '\r' || line[len] == '\n');
}

static void check_field(const char *field, const char *line, size_t size)
{
    ASSERT(field >= line);
    ASSERT(field + strlen(field) < line + size);
    ASSERT(strpbrk(field, ",\"\r\n") == NULL);
}

static void check_row(char *line, size_t size)
{
    static char before[SERVICE_IMPORT_LINE_MAX];
    static char joined[SERVICE_IMPORT_LINE_MAX];
    ASSERT(size <= sizeof(before));
    memcpy(before, line, size);
    struct service_import_row row = {0};
    int rc = service_import_row_parse(&row, line);
    ASSERT(rc == 0 || rc == -ENODATA || rc == -EBADMSG);
    if (rc == -ENODATA) {
        ASSERT(before[strspn(before, " \t\r\n")] == '\0');
        ASSERT(memcmp(before, line, size) == 0);
        return;
    }
    if (rc != 0) {
        ASSERT(row.uri == NULL);
        return;
    }
    const char *fields[] = {row.uri, row.phone, row.ext, row.pool, row.pin};
    size_t n = 0;
    for (size_t i = 0; i < 5; i++) {
        check_field(fields[i], line, size);
        ASSERT(i == 0 || fields[i] > fields[i - 1]);
        size_t len = strlen(fields[i]);
        memcpy(joined + n, fields[i], len);
        n += len;
        joined[n++] = ',';
    }
    joined[n - 1] = '\0';
    before[strcspn(before, "\r\n")] = '\0';
    ASSERT(strcmp(joined, before) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t off = 0;
    /* Bounded: every round consumes at least one byte of the input. */
    for (size_t lineno = 1; off < size; lineno++) {
        size_t len = 0;
        while (off + len < size && len < SERVICE_IMPORT_LINE_MAX - 1) {
            len++;
            if (data[off + len - 1] == '\n') {
                break;
            }
        }
        char *line = malloc(len + 1);
        ASSERT(line != NULL);
        memcpy(line, data + off, len);
        line[len] = '\0';
        size_t clen = strlen(line) + 1; /* a NUL in the line ends it, as for fgets' caller */
        if (lineno == 1) {
            check_header(line);
        } else {
            check_row(line, clen);
        }
        free(line);
        off += len;
    }
    return 0;
}
