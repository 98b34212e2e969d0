/* Tests of the pkcs11 key backend on a real SoftHSM2 token (a fresh token directory per test,
 * SOFTHSM2_CONF pointing at it), and of the pkcs11: URI parser. */
#include <criterion/criterion.h>
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bytestring.h>
#include <openssl/evp.h>

#include "base/base.h"
#include "hsm/hsm.h"
#include "tests/util/tmpdir.h"

#define MODULE "/usr/lib/softhsm/libsofthsm2.so"
#define PIN "123456"

/* SoftHSM2 2.6 leaks a few bytes of the system OpenSSL's ASN.1 objects when it makes Ed25519
 * keys: not ours to fix, and not to hide ours (BoringSSL is linked statically, not this .so). */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
    return "leak:libcrypto.so.3\nleak:libsofthsm2.so\n";
}

static char tmpdir[TMPDIR_PATH_MAX];
static char tokdir[TMPDIR_PATH_MAX + 16];
static char uri[512];

/* token_setup makes a SoftHSM2 config with its own token directory and a token "certprov". */
static void token_setup(void)
{
    tmpdir_create(tmpdir, sizeof(tmpdir), "certprov-p11");
    snprintf(tokdir, sizeof(tokdir), "%s/tokens", tmpdir);
    cr_assert_eq(mkdir(tokdir, 0700), 0);
    char conf[TMPDIR_PATH_MAX + 32];
    snprintf(conf, sizeof(conf), "%s/softhsm2.conf", tmpdir);
    FILE *f = fopen(conf, "w");
    cr_assert_not_null(f);
    fprintf(f, "directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n",
            tokdir);
    cr_assert_eq(fclose(f), 0);
    cr_assert_eq(setenv("SOFTHSM2_CONF", conf, 1), 0);
    char cmd[512];
    snprintf(cmd, sizeof(cmd),
             "softhsm2-util --init-token --free --label certprov --pin " PIN
             " --so-pin 12345678 >/dev/null");
    cr_assert_eq(system(cmd), 0);
    snprintf(uri, sizeof(uri), "pkcs11:token=certprov;object=ca;id=%%01?pin-value=" PIN);
}

static void token_teardown(void)
{
    tmpdir_remove(tmpdir);
}

static struct hsm_key *generate(enum hsm_key_type type)
{
    struct hsm_pkcs11_options o = {
        .module = MODULE, .uri = uri, .sessions = 4, .sign_timeout_ms = 5000};
    struct hsm_key *k = NULL;
    char err[256];
    int rc = hsm_pkcs11_generate(&k, err, sizeof(err), &o, type);
    cr_assert_eq(rc, 0, "generate %s: %d %s", hsm_key_type_name(type), rc, err);
    cr_assert_eq(hsm_key_get_type(k), type);
    cr_assert_eq(hsm_key_get_sessions(k), 4);
    return k;
}

static int open_key(struct hsm_key **k, char *err, size_t cap, const char *u)
{
    struct hsm_pkcs11_options o = {
        .module = MODULE, .uri = u, .sessions = 2, .sign_timeout_ms = 2000};
    return hsm_pkcs11_open(k, err, cap, &o);
}

/* sign_verify signs n messages in one batch and verifies each with the key's public half. */
static void sign_verify(struct hsm_key *k, size_t n)
{
    uint8_t spki[HSM_SPKI_MAX];
    size_t spki_len = 0;
    cr_assert_eq(hsm_key_public_der(k, spki, sizeof(spki), &spki_len), 0);
    CBS cbs;
    CBS_init(&cbs, spki, spki_len);
    EVP_PKEY *pub = EVP_parse_public_key(&cbs);
    cr_assert_not_null(pub);
    enum hsm_key_type t = hsm_key_get_type(k);
    const EVP_MD *md = t == HSM_KEY_P384      ? EVP_sha384()
                       : t == HSM_KEY_ED25519 ? NULL
                                              : EVP_sha256();
    static uint8_t msgs[8][100];
    static uint8_t sigs[8][HSM_SIG_MAX];
    struct hsm_sign_item items[8];
    cr_assert(n <= 8);
    for (size_t i = 0; i < n; i++) {
        memset(msgs[i], (int)('a' + i), sizeof(msgs[i]));
        items[i] =
            (struct hsm_sign_item){.tbs = msgs[i], .tbs_len = sizeof(msgs[i]), .sig = sigs[i]};
    }
    cr_assert_eq(hsm_key_sign_batch(k, items, n), 0);
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(items[i].rc, 0);
        EVP_MD_CTX ctx;
        EVP_MD_CTX_init(&ctx);
        int ok = EVP_DigestVerifyInit(&ctx, NULL, md, NULL, pub) &&
                 EVP_DigestVerify(&ctx, sigs[i], items[i].sig_len, msgs[i], sizeof(msgs[i]));
        EVP_MD_CTX_cleanup(&ctx);
        cr_assert(ok, "signature %zu of a %s key does not verify", i, hsm_key_type_name(t));
        /* a different message must not verify with the same signature */
        msgs[i][0] ^= 1;
        EVP_MD_CTX_init(&ctx);
        ok = EVP_DigestVerifyInit(&ctx, NULL, md, NULL, pub) &&
             EVP_DigestVerify(&ctx, sigs[i], items[i].sig_len, msgs[i], sizeof(msgs[i]));
        EVP_MD_CTX_cleanup(&ctx);
        cr_assert(!ok);
    }
    EVP_PKEY_free(pub);
}

TestSuite(pkcs11, .init = token_setup, .fini = token_teardown, .timeout = 60);

Test(pkcs11, p256_sign_verify)
{
    struct hsm_key *k = generate(HSM_KEY_P256);
    sign_verify(k, 8);
    cr_assert_eq(hsm_key_status(k, NULL), 0);
    hsm_key_free(k);
}

Test(pkcs11, p384_sign_verify)
{
    struct hsm_key *k = generate(HSM_KEY_P384);
    sign_verify(k, 3);
    hsm_key_free(k);
}

Test(pkcs11, rsa2048_sign_verify)
{
    struct hsm_key *k = generate(HSM_KEY_RSA2048);
    sign_verify(k, 2);
    hsm_key_free(k);
}

Test(pkcs11, ed25519_sign_verify_or_refused_clearly)
{
    struct hsm_pkcs11_options o = {
        .module = MODULE, .uri = uri, .sessions = 1, .sign_timeout_ms = 5000};
    struct hsm_key *k = NULL;
    char err[256];
    int rc = hsm_pkcs11_generate(&k, err, sizeof(err), &o, HSM_KEY_ED25519);
    if (rc == 0) {
        cr_assert_eq(hsm_key_get_type(k), HSM_KEY_ED25519);
        sign_verify(k, 2);
        hsm_key_free(k);
    } else { /* a token without EdDSA: a sentence that says so */
        cr_assert_eq(rc, -EBADMSG, "%d %s", rc, err);
        cr_assert(strstr(err, "CKM_EDDSA") != NULL || strstr(err, "cannot generate") != NULL, "%s",
                  err);
    }
}

Test(pkcs11, reopen_finds_same_key_and_label_has_no_pin)
{
    struct hsm_key *k = generate(HSM_KEY_P256);
    uint8_t a[HSM_SPKI_MAX], b[HSM_SPKI_MAX];
    size_t a_len = 0, b_len = 0;
    cr_assert_eq(hsm_key_public_der(k, a, sizeof(a), &a_len), 0);
    hsm_key_free(k);
    k = NULL;
    char err[256];
    cr_assert_eq(open_key(&k, err, sizeof(err), uri), 0, "%s", err);
    cr_assert_eq(hsm_key_public_der(k, b, sizeof(b), &b_len), 0);
    cr_assert_eq(a_len, b_len);
    cr_assert_eq(memcmp(a, b, a_len), 0);
    cr_assert_null(strstr(hsm_key_get_label(k), PIN));
    cr_assert_str_eq(hsm_key_get_label(k), "pkcs11:token=certprov;object=ca;id=%01");
    sign_verify(k, 1);
    hsm_key_free(k);
}

Test(pkcs11, pin_source_file)
{
    struct hsm_key *k = generate(HSM_KEY_P256);
    hsm_key_free(k);
    char pinfile[TMPDIR_PATH_MAX + 16];
    snprintf(pinfile, sizeof(pinfile), "%s/pin", tmpdir);
    FILE *f = fopen(pinfile, "w");
    cr_assert_not_null(f);
    fputs(PIN "\n", f);
    cr_assert_eq(fclose(f), 0);
    char u[512];
    snprintf(u, sizeof(u), "pkcs11:token=certprov;object=ca?pin-source=file:%s", pinfile);
    char err[256];
    cr_assert_eq(open_key(&k, err, sizeof(err), u), 0, "%s", err);
    sign_verify(k, 1);
    hsm_key_free(k);
}

Test(pkcs11, errors_are_clear)
{
    struct hsm_key *k = generate(HSM_KEY_P256);
    hsm_key_free(k);
    k = NULL;
    char err[256];
    int rc = open_key(&k, err, sizeof(err), "pkcs11:token=certprov;object=ca?pin-value=999999");
    cr_assert_eq(rc, -EPERM);
    cr_assert_not_null(strstr(err, "CKR_PIN_INCORRECT"), "%s", err);
    cr_assert_null(strstr(err, "999999"));
    rc = open_key(&k, err, sizeof(err), "pkcs11:token=certprov;object=nokey?pin-value=" PIN);
    cr_assert_eq(rc, -ENOENT);
    cr_assert_not_null(strstr(err, "no private key"), "%s", err);
    rc = open_key(&k, err, sizeof(err), "pkcs11:token=other;object=ca?pin-value=" PIN);
    cr_assert_eq(rc, -ENOENT);
    cr_assert_not_null(strstr(err, "no token labelled 'other'"), "%s", err);
    rc = open_key(&k, err, sizeof(err), "pkcs11:token=certprov;object=ca");
    cr_assert_eq(rc, -EINVAL);
    cr_assert_not_null(strstr(err, "no PIN"), "%s", err);
    struct hsm_pkcs11_options o = {
        .module = "/nonexistent/module.so", .uri = uri, .sessions = 1, .sign_timeout_ms = 100};
    rc = hsm_pkcs11_open(&k, err, sizeof(err), &o);
    cr_assert_eq(rc, -ENOENT);
    cr_assert_not_null(strstr(err, "/nonexistent/module.so cannot be loaded"), "%s", err);
    o.module = "/usr/lib/x86_64-linux-gnu/libz.so.1"; /* a library, not a module */
    rc = hsm_pkcs11_open(&k, err, sizeof(err), &o);
    cr_assert_eq(rc, -ENOENT, "%d %s", rc, err);
    cr_assert_not_null(strstr(err, "not a PKCS#11 module"), "%s", err);
    cr_assert_null(k);
}

Test(pkcs11, generate_refuses_existing_key)
{
    struct hsm_key *k = generate(HSM_KEY_P256);
    hsm_key_free(k);
    k = NULL;
    struct hsm_pkcs11_options o = {
        .module = MODULE, .uri = uri, .sessions = 1, .sign_timeout_ms = 1000};
    char err[256];
    cr_assert_eq(hsm_pkcs11_generate(&k, err, sizeof(err), &o, HSM_KEY_P384), -EEXIST);
    cr_assert_null(k);
}

/* The token's directory moved away: the key goes down within a few probes (the session copy
 * it signs with lives in the module's memory: the probe reads the token's object) and signing
 * fails at once with -EAGAIN; moved back: the key reconnects (probe) and signs again, without a
 * new open. */
Test(pkcs11, token_gone_and_back)
{
    struct hsm_key *k = generate(HSM_KEY_P256);
    sign_verify(k, 2);
    char away[TMPDIR_PATH_MAX + 16];
    snprintf(away, sizeof(away), "%s/away", tmpdir);
    cr_assert_eq(rename(tokdir, away), 0);
    static uint8_t msg[32], sig[HSM_SIG_MAX];
    struct hsm_sign_item it = {.tbs = msg, .tbs_len = sizeof(msg), .sig = sig};
    int rc = 0;
    for (int i = 0; i < 50 && rc == 0; i++) { /* the probe's next look, at most 250 ms */
        rc = hsm_key_sign_batch(k, &it, 1);
        if (rc == 0) {
            usleep(20000);
            hsm_key_probe(k);
        }
    }
    cr_assert_eq(rc, -EAGAIN);
    const char *why = NULL;
    cr_assert_eq(hsm_key_status(k, &why), -EAGAIN);
    cr_assert_not_null(why);
    cr_assert_eq(rename(away, tokdir), 0);
    for (int i = 0; i < 100 && hsm_key_status(k, NULL) != 0; i++) {
        usleep(50000);
        hsm_key_probe(k);
    }
    cr_assert_eq(hsm_key_status(k, NULL), 0, "not back up");
    sign_verify(k, 2);
    hsm_key_free(k);
}

/* ---- faults injected by tests/p11shim (a module that forwards to SoftHSM2) ---- */

static char shim[PATH_MAX];
static char ctl[TMPDIR_PATH_MAX + 16];

/* shim_key reopens the generated key through the shim with `timeout_ms` and `sessions`. */
static struct hsm_key *shim_key(uint32_t sessions, uint32_t timeout_ms)
{
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    cr_assert(n > 0);
    self[n] = '\0';
    snprintf(shim, sizeof(shim), "%s/libp11shim.so", dirname(self));
    cr_assert_eq(access(shim, R_OK), 0, "%s missing: make tests builds it", shim);
    snprintf(ctl, sizeof(ctl), "%s/shim.ctl", tmpdir);
    cr_assert_eq(setenv("P11SHIM_CTL", ctl, 1), 0);
    cr_assert_eq(setenv("P11SHIM_MODULE", MODULE, 1), 0);
    hsm_key_free(generate(HSM_KEY_P256));
    struct hsm_pkcs11_options o = {
        .module = shim, .uri = uri, .sessions = sessions, .sign_timeout_ms = timeout_ms};
    struct hsm_key *k = NULL;
    char err[256];
    cr_assert_eq(hsm_pkcs11_open(&k, err, sizeof(err), &o), 0, "%s", err);
    return k;
}

static void shim_ctl(const char *line)
{
    if (line == NULL) {
        cr_assert_eq(unlink(ctl), 0);
        return;
    }
    FILE *f = fopen(ctl, "w");
    cr_assert_not_null(f);
    fputs(line, f);
    cr_assert_eq(fclose(f), 0);
}

static int sign_once(struct hsm_key *k)
{
    static uint8_t msg[32], sig[HSM_SIG_MAX];
    struct hsm_sign_item it = {.tbs = msg, .tbs_len = sizeof(msg), .sig = sig};
    return hsm_key_sign_batch(k, &it, 1);
}

/* wait_up probes the key until it is up (its backoff starts at 100 ms). */
static void wait_up(struct hsm_key *k)
{
    for (int i = 0; i < 100 && hsm_key_status(k, NULL) != 0; i++) {
        usleep(20000);
        hsm_key_probe(k);
    }
    cr_assert_eq(hsm_key_status(k, NULL), 0, "the key did not come back");
}

Test(pkcs11, each_token_fault_makes_the_key_down_until_it_recovers)
{
    static const struct {
        const char *line;
        const char *reason;
    } faults[] = {
        {"fail 0xB3", "CKR_SESSION_HANDLE_INVALID"}, {"fail 0x101", "CKR_USER_NOT_LOGGED_IN"},
        {"fail 0x32", "CKR_DEVICE_REMOVED"},         {"fail 0xE0", "CKR_TOKEN_NOT_PRESENT"},
        {"fail 0x30", "CKR_DEVICE_ERROR"},           {"fail 0xB0", "CKR_SESSION_CLOSED"},
    };
    struct hsm_key *k = shim_key(2, 2000);
    cr_assert_eq(sign_once(k), 0);
    for (size_t i = 0; i < ARRAY_LEN(faults); i++) {
        shim_ctl(faults[i].line);
        cr_assert_eq(sign_once(k), -EAGAIN, "%s", faults[i].reason);
        const char *why = NULL;
        cr_assert_eq(hsm_key_status(k, &why), -EAGAIN);
        cr_assert_str_eq(why, faults[i].reason);
        uint64_t t0 = clock_mono_ns();
        cr_assert_eq(sign_once(k), -EAGAIN); /* down: refused at once, no module call */
        cr_assert_lt(clock_mono_ns() - t0, 50000000u);
        shim_ctl(NULL);
        wait_up(k);
        cr_assert_eq(sign_once(k), 0, "%s: no signature after recovery", faults[i].reason);
    }
    hsm_key_free(k);
}

/* A sign call slower than sign_timeout_ms: the caller gets -EAGAIN at the deadline, not when the
 * module returns; the key is down until the worker is back and a probe reconnects. */
Test(pkcs11, a_slow_token_is_cut_off_at_sign_timeout)
{
    struct hsm_key *k = shim_key(2, 300);
    shim_ctl("slow 1500");
    uint64_t t0 = clock_mono_ns();
    cr_assert_eq(sign_once(k), -EAGAIN);
    uint64_t dt = clock_mono_ns() - t0;
    cr_assert_geq(dt, 300000000u);
    cr_assert_lt(dt, 700000000u, "the caller waited %llu ms", (unsigned long long)(dt / 1000000));
    const char *why = NULL;
    cr_assert_eq(hsm_key_status(k, &why), -EAGAIN);
    cr_assert_str_eq(why, "sign_timeout");
    t0 = clock_mono_ns();
    cr_assert_eq(sign_once(k), -EAGAIN); /* down: at once */
    cr_assert_lt(clock_mono_ns() - t0, 50000000u);
    shim_ctl(NULL);
    wait_up(k); /* reconnects with the other session while the worker is still inside */
    cr_assert_eq(sign_once(k), 0);
    usleep(1300000); /* the stuck call returns; its session is reopened and used again */
    cr_assert_eq(sign_once(k), 0);
    cr_assert_eq(sign_once(k), 0);
    hsm_key_free(k);
}

/* A module call that does not return before free: free gives up on that worker after 2 s and
 * leaves the key (the process is exiting) rather than hang or unload the module under it. */
Test(pkcs11, free_does_not_hang_on_a_stuck_call)
{
    struct hsm_key *k = shim_key(1, 200);
    shim_ctl("slow 4000");
    cr_assert_eq(sign_once(k), -EAGAIN);
    uint64_t t0 = clock_mono_ns();
    hsm_key_free(k);
    uint64_t dt = clock_mono_ns() - t0;
    cr_assert_lt(dt, 3000000000u, "free took %llu ms", (unsigned long long)(dt / 1000000));
}

struct slow_arg {
    struct hsm_key *k;
    int rc;
};

static void *slow_signer(void *arg)
{
    struct slow_arg *a = arg;
    a->rc = sign_once(a->k);
    return NULL;
}

/* With every session busy in a slow call, another caller waits at most sign_timeout_ms. */
Test(pkcs11, a_caller_waits_for_a_session_at_most_sign_timeout)
{
    struct hsm_key *k = shim_key(1, 300);
    shim_ctl("slow 1500");
    struct slow_arg a = {.k = k, .rc = 1};
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, slow_signer, &a), 0);
    usleep(100000); /* the thread holds the one session */
    uint64_t t0 = clock_mono_ns();
    cr_assert_eq(sign_once(k), -EAGAIN);
    uint64_t dt = clock_mono_ns() - t0;
    cr_assert_lt(dt, 600000000u, "waited %llu ms", (unsigned long long)(dt / 1000000));
    cr_assert_eq(pthread_join(t, NULL), 0);
    cr_assert_eq(a.rc, -EAGAIN);
    shim_ctl(NULL);
    usleep(300000);
    hsm_key_probe(k); /* the one session is still inside the module: no capacity, still down */
    cr_assert_eq(hsm_key_status(k, NULL), -EAGAIN);
    wait_up(k); /* once the call returned */
    cr_assert_eq(sign_once(k), 0);
    hsm_key_free(k);
}

/* ---- the URI parser ---- */

static int parse(struct hsm_pkcs11_uri *u, const char *s)
{
    const char *why = NULL;
    int rc = hsm_pkcs11_uri_parse(u, &why, s, strlen(s));
    cr_assert(rc == 0 || why != NULL);
    return rc;
}

Test(pkcs11_uri, parses_the_attributes)
{
    struct hsm_pkcs11_uri u;
    cr_assert_eq(parse(&u, "PKCS11:token=My%20Token;object=issuing-ca;id=%01%AB;slot-id=7;"
                           "type=private;manufacturer=SoftHSM;x-vendor=1?pin-value=12%2634"),
                 0);
    cr_assert(u.has_token && u.has_object && u.has_id && u.has_slot_id && u.has_pin_value);
    cr_assert_str_eq(u.token, "My Token");
    cr_assert_str_eq(u.object, "issuing-ca");
    cr_assert_eq(u.id_len, 2);
    cr_assert_eq(u.id[0], 0x01);
    cr_assert_eq(u.id[1], 0xab);
    cr_assert_eq(u.slot_id, 7);
    cr_assert_str_eq(u.pin_value, "12&34");
    char out[256];
    cr_assert_eq(hsm_pkcs11_uri_format(out, sizeof(out), &u), 0);
    cr_assert_str_eq(out, "pkcs11:token=My%20Token;object=issuing-ca;id=%01%AB;slot-id=7");
    hsm_pkcs11_uri_wipe(&u);
    cr_assert_eq(u.pin_value[0], '\0');
    cr_assert_eq(parse(&u, "pkcs11:object=a?pin-source=file:///etc/pin"), 0);
    cr_assert_str_eq(u.pin_source, "/etc/pin");
    cr_assert_eq(hsm_pkcs11_uri_format(out, sizeof(out), &u), 0);
    cr_assert_str_eq(out, "pkcs11:object=a?pin-source=/etc/pin");
    cr_assert_eq(parse(&u, "pkcs11:id=%02?pin-source=/p"), 0);
}

Test(pkcs11_uri, refuses_bad_uris)
{
    static const char *const bad[] = {
        "",
        "pkcs11",
        "http:object=a",
        "pkcs11:",                                         /* no key named */
        "pkcs11:token=t",                                  /* no key named */
        "pkcs11:object=a;object=b",                        /* repeated */
        "pkcs11:object=a;colour=red",                      /* unknown */
        "pkcs11:object=a%2",                               /* short escape */
        "pkcs11:object=a%zz",                              /* bad escape */
        "pkcs11:object=a%00b",                             /* NUL in text */
        "pkcs11:object=a b",                               /* space */
        "pkcs11:object=a;",                                /* trailing separator */
        "pkcs11:object",                                   /* no '=' */
        "pkcs11:=a",                                       /* no name */
        "pkcs11:object=a;slot-id=x",                       /* not a number */
        "pkcs11:object=a;slot-id=99999999999999999999999", /* too long */
        "pkcs11:object=a;type=public",
        "pkcs11:id=",
        "pkcs11:object=a?pin-source=relative/pin",
        "pkcs11:object=a?pin-value=1&pin-source=/p",
        "pkcs11:object=a?pin-value=1&pin-value=2",
        "pkcs11:object=a?colour=red",
        "pkcs11:token=123456789012345678901234567890123;object=a", /* token label > 32 */
    };
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        struct hsm_pkcs11_uri u;
        cr_assert_eq(parse(&u, bad[i]), -EINVAL, "accepted: %s", bad[i]);
    }
    static char longer[HSM_P11_URI_MAX + 16];
    memset(longer, 'a', sizeof(longer) - 1);
    memcpy(longer, "pkcs11:object=", 14);
    struct hsm_pkcs11_uri u;
    cr_assert_eq(parse(&u, longer), -EINVAL);
}
