/* Tests of the reason of every refusal (README, Reasons) and of the request's log line: the
 * token in X-Ms-diagnostics and in the log line (an RSA-1024 CSR and a SHA-1 CSR share the Code
 * BadCsr, not the reason), a wrong PIN and an unknown login share one token, a refused sign-in's
 * line names the login tried but no user and never the PIN, and --log-format json writes one
 * parseable object per line. Real users, CA and store (fixture.c); the lines go to a real file. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "base/base.h"
#include "service/internal.h"
#include "tests/service/fixture.h"

static char log_path[TMPDIR_PATH_MAX + 16];

static void setup_log(void)
{
    fx_setup();
    (void)snprintf(log_path, sizeof(log_path), "%s/log", g_fx.dir);
    cr_assert_eq(log_open(log_path), 0);
}

static void teardown_log(void)
{
    log_format_set(LOG_FORMAT_TEXT);
    log_setup("certprov", LOG_LEVEL_INFO);
    fx_teardown();
}

/* read_log waits (bounded) until the log holds `want` request lines and returns the text. */
static const char *read_log(size_t want)
{
    static char text[1 << 16];
    for (int tries = 0; tries < 2000; tries++) {
        FILE *f = fopen(log_path, "r");
        cr_assert(f != NULL);
        size_t n = fread(text, 1, sizeof(text) - 1, f);
        fclose(f);
        text[n] = '\0';
        size_t lines = 0;
        for (const char *p = text; (p = strstr(p, "request")) != NULL; p++) {
            lines++;
        }
        if (lines >= want) {
            return text;
        }
        usleep(10000);
    }
    cr_assert_fail("the log has fewer than %zu request lines: %s", want, text);
    return NULL;
}

/* line_with returns the log line holding `needle` ("" if none), in a static buffer that the next
 * call overwrites. */
static const char *line_with(const char *text, const char *needle)
{
    static char line[LOG_LINE_MAX + 1];
    const char *p = strstr(text, needle);
    line[0] = '\0';
    if (p == NULL) {
        return line;
    }
    const char *b = p;
    while (b > text && b[-1] != '\n') {
        b--;
    }
    size_t n = strcspn(b, "\n");
    cr_assert_lt(n, sizeof(line));
    memcpy(line, b, n);
    line[n] = '\0';
    return line;
}

/* attach_vector gives a signed-in item the CSR of tests/data/csr/NAME and checks it as the ring
 * does (svc_check_csr). */
static void attach_vector(struct svc_item *it, const char *name)
{
    char path[128];
    (void)snprintf(path, sizeof(path), "tests/data/csr/%s", name);
    cr_assert(it->proceed, "the ring did not go on with a user");
    cr_assert_eq(base_file_read(it->csr_der, &it->csr_der_len, sizeof(it->csr_der), path), 0,
                 "read %s (run from the repository root)", path);
    it->hours = FX_HOURS;
    svc_check_csr(g_fx.svc, it);
}

Test(service_reasons, rsa1024_and_sha1_csrs_differ_in_the_token, .init = setup_log,
     .fini = teardown_log)
{
    const struct fx_user *alice = &fx_users[FX_ALICE];
    const struct fx_user *bob = &fx_users[FX_BOB];
    struct svc_item *items[2] = {
        fx_signin(0, SVC_ROUTE_EST_ENROLL, alice->phone, alice->pin),
        fx_signin(0, SVC_ROUTE_SOAP, bob->ext, bob->pin),
    };
    attach_vector(items[0], "rsa1024-sha256.der");
    attach_vector(items[1], "rsa2048-sha1.der");
    cr_assert(items[0]->failed);
    cr_assert_eq(items[0]->why, SIGNER_REASON_CSR_RSA_KEY_TOO_SMALL);
    cr_assert_eq(items[1]->why, SIGNER_REASON_CSR_WEAK_HASH);
    fx_turn(0, items, 2);
    fx_wait_answers(2);
    const struct fx_answer *a = fx_answer(0);
    const struct fx_answer *b = fx_answer(1);
    cr_assert_eq(a->code, SIGNER_CODE_BAD_CSR);
    cr_assert_eq(b->code, SIGNER_CODE_BAD_CSR);
    cr_assert_str_eq(a->token, "csr_rsa_key_too_small", "%s", a->diag);
    cr_assert_str_eq(b->token, "csr_weak_hash", "%s", b->diag);
    /* The header keeps its ID;source;reason start: the token comes last. */
    cr_assert(strncmp(a->diag, "28901;source=\"", 14) == 0, "%s", a->diag);
    cr_assert(strstr(a->diag, "\";reason=\"") != NULL, "%s", a->diag);
    const char *log = read_log(2);
    char la[LOG_LINE_MAX + 1];
    char lb[LOG_LINE_MAX + 1];
    (void)base_str_copy(la, sizeof(la), line_with(log, "reason=csr_rsa_key_too_small"));
    (void)base_str_copy(lb, sizeof(lb), line_with(log, "reason=csr_weak_hash"));
    cr_assert(strstr(la, " code=BadCsr ") != NULL, "%s", log);
    cr_assert(strstr(lb, " code=BadCsr ") != NULL, "%s", log);
    cr_assert(strstr(la, " user=sip:alice@example.com ") != NULL, "%s", la);
    cr_assert(strstr(la, " route=est_simpleenroll ") != NULL, "%s", la);
    cr_assert(strstr(lb, " route=soap ") != NULL, "%s", lb);
    char want[64];
    (void)snprintf(want, sizeof(want), " login=%s ", alice->phone);
    cr_assert(strstr(la, want) != NULL, "%s in %s", want, la);
    (void)snprintf(want, sizeof(want), " login=%s ", bob->ext);
    cr_assert(strstr(lb, want) != NULL, "%s in %s", want, lb);
    cr_assert(strstr(la, " tls=none") != NULL, "%s", la);
    cr_assert(strstr(la, " device_id=") != NULL, "%s", la);
    cr_assert_null(strstr(la, "parse_us="), "stage timings only at debug level: %s", la);
}

Test(service_reasons, wrong_pin_and_unknown_login_share_a_token_and_name_no_user, .init = setup_log,
     .fini = teardown_log)
{
    const struct fx_user *alice = &fx_users[FX_ALICE];
    struct svc_item *items[2] = {
        fx_signin(0, SVC_ROUTE_EST_ENROLL, FX_UNKNOWN_PHONE, alice->pin),
        fx_signin(0, SVC_ROUTE_EST_ENROLL, alice->ext, FX_WRONG_PIN),
    };
    fx_turn(0, items, 2);
    fx_wait_answers(2);
    for (size_t i = 0; i < 2; i++) {
        cr_assert_eq(fx_answer(i)->code, SIGNER_CODE_AUTHENTICATION_FAILED);
        cr_assert_str_eq(fx_answer(i)->token, "pin_wrong_or_unknown");
    }
    cr_assert_str_eq(fx_answer(0)->diag, fx_answer(1)->diag, "the answer reveals nothing");
    const char *log = read_log(2);
    char want[64];
    (void)snprintf(want, sizeof(want), " login=%s ", alice->ext);
    const char *l = line_with(log, want);
    cr_assert(strstr(l, " reason=pin_wrong_or_unknown ") != NULL, "%s", log);
    cr_assert(strstr(l, " user=- ") != NULL, "a refused sign-in names no user: %s", l);
    cr_assert(strstr(line_with(log, "login=" FX_UNKNOWN_PHONE " "), " user=- ") != NULL, "%s", log);
    cr_assert_null(strstr(log, FX_WRONG_PIN), "no PIN in the log: %s", log);
    cr_assert_null(strstr(log, alice->pin), "no PIN in the log: %s", log);
    cr_assert_null(strstr(log, alice->uri), "no user in the log: %s", log);
}

Test(service_reasons, locked_user_gets_pin_locked, .init = setup_log, .fini = teardown_log)
{
    const struct fx_user *bob = &fx_users[FX_BOB];
    struct store_lockout l = {.total_failures = 3,
                              .last_failure_s = clock_real_s(),
                              .locked_until_s = clock_real_s() + 3600};
    cr_assert_eq(store_lockout_put(g_fx.st, bob->uri, &l), 0);
    struct svc_item *it = fx_signin(0, SVC_ROUTE_EST_ENROLL, bob->phone, bob->pin);
    fx_turn(0, &it, 1);
    fx_wait_answers(1);
    cr_assert_eq(fx_answer(0)->code, SIGNER_CODE_PIN_LOCKED);
    cr_assert_str_eq(fx_answer(0)->token, "pin_locked");
    cr_assert(strstr(read_log(1), " reason=pin_locked ") != NULL);
}

Test(service_reasons, success_line_has_no_reason_and_debug_adds_stages, .init = setup_log,
     .fini = teardown_log)
{
    log_setup("certprov", LOG_LEVEL_DEBUG);
    struct svc_item *it = fx_enroll(0, SVC_ROUTE_EST_ENROLL, FX_CAROL);
    (void)base_str_copy(it->device_id, sizeof(it->device_id), "{0A1B} x=1");
    fx_turn(0, &it, 1);
    fx_wait_answers(1);
    cr_assert_eq(fx_answer(0)->status, 200);
    const char *l = line_with(read_log(1), "signer: request");
    cr_assert(strstr(l, " code=OK reason=- user=sip:carol@example.com ") != NULL, "%s", l);
    /* a request's value cannot forge keys: space and '=' are escaped */
    cr_assert(strstr(l, " device_id={0A1B}%20x%3D1 ") != NULL, "%s", l);
    cr_assert(strstr(l, " parse_us=") != NULL, "%s", l);
    cr_assert(strstr(l, " commit_us=") != NULL, "%s", l);
}

Test(service_reasons, json_log_line, .init = setup_log, .fini = teardown_log)
{
    log_format_set(LOG_FORMAT_JSON);
    const struct fx_user *alice = &fx_users[FX_ALICE];
    struct svc_item *it = fx_signin(0, SVC_ROUTE_SOAP, alice->phone, alice->pin);
    attach_vector(it, "rsa2048-sha1.der");
    fx_turn(0, &it, 1);
    fx_wait_answers(1);
    const char *l = line_with(read_log(1), "\"event\":\"request\"");
    cr_assert(l[0] == '{', "%s", l);
    cr_assert(l[strlen(l) - 1] == '}', "%s", l);
    cr_assert(strstr(l, "\"module\":\"signer\"") != NULL, "%s", l);
    cr_assert(strstr(l, "\"code\":\"BadCsr\",\"reason\":\"csr_weak_hash\"") != NULL, "%s", l);
    char want[64];
    (void)snprintf(want, sizeof(want), "\"login\":\"%s\"", alice->phone);
    cr_assert(strstr(l, want) != NULL, "%s in %s", want, l);
    cr_assert(strstr(l, "\"level\":\"info\"") != NULL, "%s", l);
}

/* ---- the user's last refusal, kept with the lockout record (certprovctl user show) ---- */

Test(service_reasons, last_refusal_is_kept_with_the_lockout_record, .init = setup_log,
     .fini = teardown_log)
{
    const struct fx_user *alice = &fx_users[FX_ALICE];
    const struct fx_user *bob = &fx_users[FX_BOB];
    struct svc_item *items[3] = {
        fx_signin(0, SVC_ROUTE_EST_ENROLL, alice->phone, alice->pin),
        fx_signin(0, SVC_ROUTE_EST_ENROLL, bob->phone, FX_WRONG_PIN),
        fx_signin(0, SVC_ROUTE_EST_ENROLL, FX_UNKNOWN_PHONE, FX_WRONG_PIN),
    };
    attach_vector(items[0], "rsa2048-sha1.der");
    int64_t t0 = clock_real_s();
    fx_turn(0, items, 3);
    fx_wait_answers(3);
    struct store_lockout a = fx_lockout(alice->uri);
    cr_assert_geq(a.last_refusal_s, t0);
    cr_assert_eq(a.last_refusal_code, SIGNER_CODE_BAD_CSR + 1);
    cr_assert_eq(a.last_refusal_reason, SIGNER_REASON_CSR_WEAK_HASH + 1);
    cr_assert_str_eq(a.last_refusal_client, "192.0.2.1:40000");
    cr_assert_eq(a.total_failures, 0, "a CSR refusal is no PIN failure");
    struct store_lockout b = fx_lockout(bob->uri);
    cr_assert_eq(b.last_refusal_code, SIGNER_CODE_AUTHENTICATION_FAILED + 1);
    cr_assert_eq(b.last_refusal_reason, SIGNER_REASON_PIN_WRONG_OR_UNKNOWN + 1);
    cr_assert_eq(b.total_failures, 1);
    /* A success afterwards writes nothing: the refusal stays, the state is clean. */
    struct svc_item *ok = fx_enroll(0, SVC_ROUTE_EST_ENROLL, FX_ALICE);
    fx_turn(0, &ok, 1);
    fx_wait_answers(4);
    cr_assert_eq(fx_answer(3)->status, 200);
    struct store_lockout after = fx_lockout(alice->uri);
    cr_assert_eq(memcmp(&after, &a, sizeof(a)), 0, "a clean success wrote the lockout record");
}
