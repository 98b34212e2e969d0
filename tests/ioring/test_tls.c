/* The TLS context (ioring/tls.c): loading the certificate, key and client CA, and the ticket-key
 * file (rotation, damaged and unsafe files). Handshakes against real clients are in
 * tests/integration/test_tls.sh. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ioring/ioring.h"
#include "tests/util/tmpdir.h"

static char dir[TMPDIR_PATH_MAX];
static char path[256];
static char err[IORING_TLS_ERR_MAX];

static const char *at(const char *name)
{
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    return path;
}

static void sh(const char *cmd)
{
    cr_assert_eq(system(cmd), 0, "%s", cmd);
}

static void setup(void)
{
    tmpdir_create(dir, sizeof(dir), "certprov-tls");
    /* A P-256 server certificate and key (PEM), and a second key that does not match. */
    char cmd[1024];
    snprintf(cmd, sizeof(cmd),
             "cd %s && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
             "-keyout key.pem -subj /CN=localhost -days 2 -out crt.pem 2>/dev/null && "
             "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out other.pem "
             "2>/dev/null && openssl pkey -in key.pem -outform DER -out key.der && "
             "printf 'not pem' > junk.pem",
             dir);
    sh(cmd);
}

static void teardown(void)
{
    tmpdir_remove(dir);
}

TestSuite(ioring_tls, .init = setup, .fini = teardown);

static int tls_new(const char *crt, const char *key, const char *ca, const char *tickets)
{
    char c[256], k[256], a[256], t[256];
    snprintf(c, sizeof(c), "%s/%s", dir, crt);
    snprintf(k, sizeof(k), "%s/%s", dir, key);
    snprintf(a, sizeof(a), "%s/%s", dir, ca != NULL ? ca : "");
    snprintf(t, sizeof(t), "%s/%s", dir, tickets != NULL ? tickets : "");
    struct ioring_tls_options o = {.cert_file = c,
                                   .key_file = k,
                                   .client_ca_file = ca != NULL ? a : NULL,
                                   .ticket_file = tickets != NULL ? t : NULL};
    struct ioring_tls *tls = NULL;
    int rc = ioring_tls_new(&tls, err, &o);
    cr_assert_eq(rc != 0, tls == NULL);
    if (rc == 0) {
        cr_assert_eq(ioring_tls_reload(tls, err), 0, "%s", err);
    }
    ioring_tls_free(tls);
    return rc;
}

Test(ioring_tls, loads_pem_and_der_keys)
{
    cr_assert_eq(tls_new("crt.pem", "key.pem", NULL, NULL), 0, "%s", err);
    cr_assert_eq(tls_new("crt.pem", "key.der", "crt.pem", NULL), 0, "%s", err);
}

Test(ioring_tls, says_which_file_is_wrong)
{
    cr_assert_eq(tls_new("missing.pem", "key.pem", NULL, NULL), -ENOENT);
    cr_assert(strstr(err, "missing.pem") != NULL, "%s", err);
    cr_assert_eq(tls_new("crt.pem", "other.pem", NULL, NULL), -EINVAL);
    cr_assert(strstr(err, "is not the key of the certificate") != NULL, "%s", err);
    cr_assert_eq(tls_new("junk.pem", "key.pem", NULL, NULL), -EBADMSG);
    cr_assert(strstr(err, "junk.pem is damaged") != NULL, "%s", err);
    cr_assert_eq(tls_new("crt.pem", "junk.pem", NULL, NULL), -EBADMSG);
    cr_assert_eq(tls_new("crt.pem", "key.pem", "junk.pem", NULL), -EBADMSG);
    cr_assert(strstr(err, "client CA file") != NULL, "%s", err);
}

static size_t lines(const char *file)
{
    FILE *f = fopen(file, "r");
    cr_assert(f != NULL);
    size_t n = 0;
    int ch;
    while ((ch = fgetc(f)) != EOF) {
        n += ch == '\n';
    }
    fclose(f);
    return n;
}

static void read_line(char *out, size_t cap, const char *file, size_t index)
{
    FILE *f = fopen(file, "r");
    cr_assert(f != NULL);
    for (size_t i = 0; i <= index; i++) {
        cr_assert(fgets(out, (int)cap, f) != NULL);
    }
    fclose(f);
}

Test(ioring_tls, ticket_file_rotates_current_into_previous)
{
    char file[256];
    snprintf(file, sizeof(file), "%s", at("t.keys"));
    cr_assert_eq(tls_new("crt.pem", "key.pem", NULL, "t.keys"), -ENOENT);
    cr_assert(strstr(err, "certprovctl tls ticket-key rotate") != NULL, "%s", err);
    cr_assert_eq(ioring_tls_ticket_file_rotate(file, err), 0, "%s", err);
    struct stat sb;
    cr_assert_eq(stat(file, &sb), 0);
    cr_assert_eq(sb.st_mode & 0777, 0600);
    cr_assert_eq(lines(file), 2); /* the magic line and one key */
    char first[256], again[256];
    read_line(first, sizeof(first), file, 1);
    cr_assert_eq(ioring_tls_ticket_file_rotate(file, err), 0, "%s", err);
    cr_assert_eq(lines(file), 3);
    read_line(again, sizeof(again), file, 2); /* the old current is now the previous */
    cr_assert_str_eq(strchr(again, ' '), strchr(first, ' '));
    read_line(again, sizeof(again), file, 1);
    cr_assert_str_neq(strchr(again, ' '), strchr(first, ' '));
    cr_assert_eq(ioring_tls_ticket_file_rotate(file, err), 0, "%s", err);
    cr_assert_eq(lines(file), 3); /* never more than two keys */
    cr_assert_eq(tls_new("crt.pem", "key.pem", NULL, "t.keys"), 0, "%s", err);
}

Test(ioring_tls, ticket_file_refused_when_damaged_or_shared)
{
    char file[256];
    snprintf(file, sizeof(file), "%s", at("t.keys"));
    cr_assert_eq(ioring_tls_ticket_file_rotate(file, err), 0, "%s", err);
    cr_assert_eq(chmod(file, 0640), 0);
    cr_assert_eq(tls_new("crt.pem", "key.pem", NULL, "t.keys"), -EACCES);
    cr_assert(strstr(err, "chmod 600") != NULL, "%s", err);
    /* Damaged: each a refusal, and rotate leaves such a file alone. */
    static const char *const bad[] = {
        "",
        "certprov-ticket-keys v1\n",
        "certprov-ticket-keys v2\n1 00\n",
        "certprov-ticket-keys v1\n1 0011\n",
        "certprov-ticket-keys v1\nx "
        "00000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
        "000000000000000000000000000000000000000000000000000000000000000000000000\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        FILE *f = fopen(file, "w");
        cr_assert(f != NULL);
        fputs(bad[i], f);
        fclose(f);
        cr_assert_eq(chmod(file, 0600), 0);
        cr_assert_eq(tls_new("crt.pem", "key.pem", NULL, "t.keys"), -EBADMSG, "case %zu", i);
        cr_assert(strstr(err, "damaged") != NULL, "%s", err);
        cr_assert_eq(ioring_tls_ticket_file_rotate(file, err), -EBADMSG, "case %zu", i);
        struct stat sb;
        cr_assert_eq(stat(file, &sb), 0);
        cr_assert_eq((size_t)sb.st_size, strlen(bad[i]), "case %zu: the file was rewritten", i);
    }
}
