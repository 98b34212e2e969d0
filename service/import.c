/* The user import file of certprovctl (service.h, "user import files"), line by line: a parser
 * of its own so that unit tests and a fuzzer (tests/fuzz/fuzz_import.c) can reach it. */
#include <errno.h>
#include <string.h>

#include "base/base.h"
#include "service/service.h"

#define IMPORT_FIELDS 5

/* The UTF-8 encoding of U+FEFF, which spreadsheet programs put before the first line. */
static const char utf8_bom[] = "\xef\xbb\xbf";

int service_import_header_check(const char *line)
{
    ASSERT(line != NULL);
    if (strncmp(line, utf8_bom, strlen(utf8_bom)) == 0) {
        line += strlen(utf8_bom);
    }
    size_t len = strcspn(line, "\r\n");
    size_t want = strlen(SERVICE_IMPORT_HEADER);
    return len == want && memcmp(line, SERVICE_IMPORT_HEADER, want) == 0 ? 0 : -EBADMSG;
}

int service_import_row_parse(struct service_import_row *out, char *line)
{
    ASSERT(out != NULL);
    ASSERT(line != NULL);
    if (line[strspn(line, " \t\r\n")] == '\0') {
        return -ENODATA;
    }
    line[strcspn(line, "\r\n")] = '\0';
    if (strchr(line, '"') != NULL) {
        return -EBADMSG;
    }
    char *fields[IMPORT_FIELDS];
    size_t n = 0;
    char *p = line;
    /* Bounded: each round consumes a comma of the line, or ends it. */
    for (;;) {
        if (n == IMPORT_FIELDS) {
            return -EBADMSG; /* a sixth field */
        }
        fields[n++] = p;
        char *comma = strchr(p, ',');
        if (comma == NULL) {
            break;
        }
        *comma = '\0';
        p = comma + 1;
    }
    if (n != IMPORT_FIELDS) {
        return -EBADMSG;
    }
    *out = (struct service_import_row){.uri = fields[0],
                                       .phone = fields[1],
                                       .ext = fields[2],
                                       .pool = fields[3],
                                       .pin = fields[4]};
    ASSERT(strchr(out->pin, ',') == NULL);
    return 0;
}
