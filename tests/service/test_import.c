/* The lines of a certprovctl user import file (service/import.c). Every line is parsed from a
 * copy that ends, NUL included, at a PROT_NONE page. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "service/service.h"
#include "tests/util/guard.h"

static int header(const char *line)
{
    size_t len = strlen(line) + 1;
    uint8_t *g = guard_copy(line, len);
    int rc = service_import_header_check((const char *)g);
    guard_free(g, len);
    return rc;
}

Test(service_import, header)
{
    cr_assert_eq(header("uri,phone,ext,pool,pin"), 0);
    cr_assert_eq(header("uri,phone,ext,pool,pin\n"), 0);
    cr_assert_eq(header("uri,phone,ext,pool,pin\r\n"), 0);
    /* Hardening item 18: a spreadsheet's UTF-8 byte order mark made the header "wrong". */
    cr_assert_eq(header("\xef\xbb\xbfuri,phone,ext,pool,pin\r\n"), 0);
    cr_assert_eq(header("\xef\xbb\xbf\xef\xbb\xbfuri,phone,ext,pool,pin\n"), -EBADMSG, "one BOM");
    cr_assert_eq(header("\xef\xbburi,phone,ext,pool,pin\n"), -EBADMSG, "a cut BOM");
    cr_assert_eq(header("\xef\xbb\xbf"), -EBADMSG);
    cr_assert_eq(header(""), -EBADMSG);
    cr_assert_eq(header("uri,phone,ext,pool"), -EBADMSG);
    cr_assert_eq(header("uri,phone,ext,pool,pin,"), -EBADMSG);
    cr_assert_eq(header("URI,phone,ext,pool,pin"), -EBADMSG);
    cr_assert_eq(header(" uri,phone,ext,pool,pin"), -EBADMSG);
    cr_assert_eq(header("uri,pin"), -EBADMSG);
    /* Truncated at every length: never the header. */
    const char *full = "uri,phone,ext,pool,pin";
    for (size_t n = 0; n < strlen(full); n++) {
        char cut[32];
        memcpy(cut, full, n);
        cut[n] = '\0';
        cr_assert_eq(header(cut), -EBADMSG, "%s", cut);
    }
}

/* row parses `text` from a guarded copy into the five fields joined by '|' in `out`. */
static int row(char *out, size_t cap, const char *text)
{
    size_t len = strlen(text) + 1;
    uint8_t *g = guard_copy(text, len);
    struct service_import_row r = {0};
    int rc = service_import_row_parse(&r, (char *)g);
    if (rc == 0) {
        snprintf(out, cap, "%s|%s|%s|%s|%s", r.uri, r.phone, r.ext, r.pool, r.pin);
        cr_assert(r.uri >= (const char *)g && r.pin < (const char *)g + len, "borrowed");
    } else {
        cr_assert_null(r.uri, "untouched on failure");
        snprintf(out, cap, "-");
    }
    guard_free(g, len);
    return rc;
}

Test(service_import, rows)
{
    char out[256];
    cr_assert_eq(row(out, sizeof(out), "sip:a@example.com,+4930123456,100,pool1,24680\n"), 0);
    cr_assert_str_eq(out, "sip:a@example.com|+4930123456|100|pool1|24680");
    cr_assert_eq(row(out, sizeof(out), "sip:a@example.com,,100,pool1,24680\r\n"), 0);
    cr_assert_str_eq(out, "sip:a@example.com||100|pool1|24680");
    cr_assert_eq(row(out, sizeof(out), ",,,,"), 0, "empty fields are the checker's business");
    cr_assert_str_eq(out, "||||");
    cr_assert_eq(row(out, sizeof(out), "a,b,c,d,e\rtrailing"), 0, "a line ends at its first CR");
    cr_assert_str_eq(out, "a|b|c|d|e");
    cr_assert_eq(row(out, sizeof(out), "a,b,c,d"), -EBADMSG);
    cr_assert_eq(row(out, sizeof(out), "a,b,c,d,e,f"), -EBADMSG);
    cr_assert_eq(row(out, sizeof(out), "a,b,c,d,e,"), -EBADMSG);
    cr_assert_eq(row(out, sizeof(out), "\"a\",b,c,d,e"), -EBADMSG);
    cr_assert_eq(row(out, sizeof(out), "a,b,c,d,\"1,2\""), -EBADMSG);
    cr_assert_eq(row(out, sizeof(out), "a"), -EBADMSG);
    cr_assert_eq(row(out, sizeof(out), ""), -ENODATA);
    cr_assert_eq(row(out, sizeof(out), "\n"), -ENODATA);
    cr_assert_eq(row(out, sizeof(out), " \t \r\n"), -ENODATA);
    cr_assert_eq(row(out, sizeof(out), " x \n"), -EBADMSG, "not blank");
    /* Truncated at every length: five fields only once the fourth comma is in. */
    const char *full = "sip:a@example.com,+4930123456,100,pool1,24680";
    size_t fourth = (size_t)(strrchr(full, ',') - full);
    for (size_t n = 0; n <= strlen(full); n++) {
        char cut[64];
        memcpy(cut, full, n);
        cut[n] = '\0';
        int want = n == 0 ? -ENODATA : (n > fourth ? 0 : -EBADMSG);
        cr_assert_eq(row(out, sizeof(out), cut), want, "%zu: %s", n, cut);
    }
}
