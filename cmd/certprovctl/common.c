#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <sys/mman.h>

#include "base/base.h"

#include "cmd/certprovctl/ctl.h"

/* ---- messages: at the bottom of certprovctl, every command file prints through them ---- */

void ctl_print_cmd_help(FILE *out, const struct ctl_cmd *cmd)
{
    fprintf(out, "usage: certprovctl [-c FILE] %s %s %s\n\n%s\n", cmd->group, cmd->name, cmd->usage,
            cmd->help);
}

int ctl_usage(const struct ctl_cmd *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "certprovctl: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\nusage: certprovctl [-c FILE] %s %s %s\n", cmd->group, cmd->name, cmd->usage);
    va_end(ap);
    return CTL_USAGE;
}

int ctl_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "certprovctl: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    return CTL_FAIL;
}

int ctl_store(struct ctl *ctl)
{
    if (ctl->st != NULL) {
        return 0;
    }
    struct store_options opt = {.path = ctl->cfg.store_path, .map_size = ctl->cfg.map_size};
    int rc = store_open(&ctl->st, &opt);
    if (rc != 0) {
        return ctl_fail("cannot open the store at %s: %s", ctl->cfg.store_path, strerror(-rc));
    }
    return 0;
}

/* ca_open_pkcs11 opens the CA with its key in a token ([ca] backend = pkcs11); *rc and *f as
 * signer_ca_open's, or returns CTL_FAIL after saying what is wrong with the key. */
static int ca_open_pkcs11(struct ctl *ctl, struct signer_ca **out, int *rc,
                          struct signer_ca_fault *f, const char *what)
{
    char err[512];
    struct hsm_pkcs11_options o = {.module = ctl->cfg.ca_module,
                                   .uri = ctl->cfg.ca_key,
                                   .sessions = 1,
                                   .sign_timeout_ms = ctl->cfg.ca_sign_timeout_ms};
    struct hsm_key *key = NULL;
    if (hsm_pkcs11_open(&key, err, sizeof(err), &o) != 0) {
        return ctl_fail("%sthe CA key ([ca] key, backend pkcs11) cannot be used: %s", what, err);
    }
    *rc = signer_ca_open_with_key(out, f, ctl->cfg.store_path, key); /* owns key */
    if (*rc == -EBADMSG && f->file == SIGNER_FILE_ISSUING_KEY) {
        return ctl_fail("%sthe token's key is not the key of %s/ca/issuing.crt; check [ca] key",
                        what, ctl->cfg.store_path);
    }
    return CTL_OK;
}

int ctl_ca_open(struct ctl *ctl, struct signer_ca **out, const char *what)
{
    const char *dir = ctl->cfg.store_path;
    struct signer_ca_fault f;
    int rc = 0;
    if (strcmp(ctl->cfg.ca_backend, "pkcs11") == 0) {
        if (ca_open_pkcs11(ctl, out, &rc, &f, what) != CTL_OK) {
            return CTL_FAIL;
        }
    } else {
        rc = signer_ca_open(out, &f, dir);
    }
    if (rc == 0) {
        rc = signer_ca_set_urls(*out, ctl->cfg.crl_url, ctl->cfg.ocsp_url);
        ASSERT(rc == 0); /* service_config_parse checked them */
        return 0;
    }
    if (rc == -ENOENT && f.no_ca) {
        char origin[SERVICE_PATH_MAX * 2 + 96];
        service_config_store_origin(&ctl->cfg, origin, sizeof(origin));
        return ctl_fail("%sno CA in %s (%s)%s; create one with: certprovctl -c %s ca init", what,
                        dir,
                        access(dir, F_OK) == 0 ? "it holds none of the CA's files"
                                               : "the directory does not exist",
                        origin, ctl->config_path);
    }
    if (rc == -ENOENT && signer_ca_pending(dir) == 0) {
        return ctl_fail("%sthe CA in %s is a pending request (ca/issuing.csr): have the "
                        "enterprise's CA sign it, then run: certprovctl -c %s ca import --cert "
                        "FILE --chain FILE",
                        what, dir, ctl->config_path);
    }
    char text[SERVICE_PATH_MAX * 2 + 128];
    (void)signer_ca_fault_format(text, sizeof(text), rc, &f, dir);
    return ctl_fail("%sthe CA in %s cannot be loaded: %s%s", what, dir, text,
                    rc == -ENOENT || rc == -EBADMSG ? "; restore it from a backup of the store"
                                                    : "");
}

int ctl_no_daemon(struct ctl *ctl, const char *what, const char *why)
{
    bool held = false;
    pid_t pid = 0;
    int rc = store_lock_holder(&held, &pid, ctl->cfg.store_path);
    if (rc != 0) {
        return ctl_fail("%s: cannot tell whether certprovd holds the store %s: %s/" STORE_LOCK_FILE
                        ": %s",
                        what, ctl->cfg.store_path, ctl->cfg.store_path, strerror(-rc));
    }
    if (!held) {
        return 0;
    }
    char who[32] = "(PID unknown)";
    if (pid > 0) {
        snprintf(who, sizeof(who), "PID %ld", (long)pid);
    }
    return ctl_fail("certprovd %s holds the store %s; stop it before %s: %s", who,
                    ctl->cfg.store_path, what, why);
}

static int first_user(void *ctx, const struct store_user *user)
{
    (void)ctx;
    (void)user;
    return 1; /* one is enough: stop */
}

/* pin_key_may_create returns 0 when a missing PIN key may be made anew: only for a store without
 * users (their PIN verifiers are keyed by the lost key: a new one would turn every one of them
 * away) and without a daemon (which goes on with the key it loaded). Else CTL_FAIL, said. */
static int pin_key_may_create(struct ctl *ctl, const char *path)
{
    int rc = store_user_foreach(ctl->st, first_user, NULL);
    if (rc < 0) {
        return ctl_fail("cannot read the users of the store %s: %s", ctl->cfg.store_path,
                        strerror(-rc));
    }
    if (rc > 0) {
        return ctl_fail("the PIN key %s is missing, but the store holds users whose PINs only that "
                        "key can check; restore it from a backup of the store",
                        path);
    }
    return ctl_no_daemon(ctl, "creating the PIN key",
                         "the daemon verifies PINs with the key it loaded, which is gone from "
                         "disk; restore pin.key from a backup of the store instead");
}

int ctl_pin_key(struct ctl *ctl)
{
    if (ctl->pin_key != NULL) {
        return 0;
    }
    int rc = ctl_store(ctl); /* creates the store directory the key lives in */
    if (rc != 0) {
        return rc;
    }
    char path[SERVICE_PATH_MAX + 16];
    rc = signer_file_path(path, sizeof(path), ctl->cfg.store_path, SIGNER_FILE_PIN_KEY);
    if (rc != 0) {
        return ctl_fail("the store path %s is too long", ctl->cfg.store_path);
    }
    if (access(path, F_OK) == -1 && errno == ENOENT) {
        rc = pin_key_may_create(ctl, path);
        if (rc != 0) {
            return rc;
        }
    }
    rc = signer_pin_key_load(&ctl->pin_key, path, true);
    if (rc == -EPERM) {
        return ctl_fail("%s is readable by other users; run: chmod 600 %s", path, path);
    }
    if (rc != 0) {
        return ctl_fail("cannot load the PIN key %s: %s", path,
                        rc == -EBADMSG ? "damaged (not 32 bytes)" : strerror(-rc));
    }
    return 0;
}

int ctl_read_pin(char *pin, size_t cap)
{
    if (fgets(pin, (int)cap, stdin) == NULL) {
        return ctl_fail("--pin-stdin: no PIN on standard input");
    }
    size_t len = strcspn(pin, "\r\n");
    if (len == cap - 1 && pin[len] == '\0') {
        return ctl_fail("--pin-stdin: the PIN is longer than %d digits", SIGNER_PIN_MAX);
    }
    pin[len] = '\0';
    return 0;
}

const char *ctl_check_uri(const char *uri)
{
    size_t len = strlen(uri);
    if (strncasecmp(uri, "sip:", 4) != 0) {
        return "the URI must start with sip: (e.g. sip:alice@example.com)";
    }
    if (len > STORE_URI_MAX) {
        return "the URI is longer than 255 bytes";
    }
    const char *at = strchr(uri + 4, '@');
    if (at == NULL || at == uri + 4 || at[1] == '\0' || strchr(at + 1, '@') != NULL) {
        return "the URI must be sip:user@domain with one @";
    }
    if (len - 4 > 64) {
        /* The sign-in name becomes the certificate's CN: RFC 5280 ub-common-name is 64. */
        return "the sign-in name (the URI without sip:) is longer than 64 characters";
    }
    for (const char *p = uri; *p != '\0'; p++) {
        unsigned char c = (unsigned char)*p;
        if (c <= 0x20 || c == 0x7f || c == ',' || c == '"' || c == '<' || c == '>') {
            return "the URI has a space, control character, comma, quote or angle bracket";
        }
    }
    return NULL;
}

const char *ctl_check_phone(char out[STORE_PHONE_MAX + 1], const char *phone, const char *cc)
{
    out[0] = '\0';
    if (phone[0] == '\0') {
        return NULL;
    }
    /* The same reading as the sign-in's (signer_phone_e164), so stored and typed forms meet; but
     * without [pin] default_country_code a number without '+' is refused here (the sign-in would
     * read it as international; stored, a national number would become another one). */
    const char *p = strncasecmp(phone, "tel:", 4) == 0 ? phone + 4 : phone;
    p += strspn(p, " ");
    if ((cc[0] == '\0' && *p != '+') ||
        signer_phone_e164(out, STORE_PHONE_MAX + 1, phone, cc) != 0) {
        return cc[0] != '\0'
                   ? "the phone number must be E.164 (+ then 7 to 15 digits, e.g. +14255550100; "
                     "spaces, '-', '.', '(', ')' and a tel: prefix are allowed) or a national "
                     "number of [pin] default_country_code"
                   : "the phone number must be E.164: + then 7 to 15 digits (e.g. +14255550100; "
                     "spaces, '-', '.', '(', ')' and a tel: prefix are allowed)";
    }
    return NULL;
}

const char *ctl_check_ext(const char *ext)
{
    size_t len = strlen(ext);
    if (len > STORE_EXT_MAX || strspn(ext, "0123456789") != len) {
        return "the extension must be 1 to 15 digits";
    }
    return NULL;
}

/* pin_length_text says which bound a PIN of the wrong length missed, with the number: the policy's
 * own text cannot know [pin] min_length. Static storage: certprovctl is single-threaded. */
static const char *pin_length_text(const struct signer_pin_policy *policy, const char *pin)
{
    static char text[96];
    if (strlen(pin) < policy->min_len) {
        (void)snprintf(text, sizeof(text), "the PIN is too short: it must have at least %u digits",
                       policy->min_len);
    } else {
        (void)snprintf(text, sizeof(text), "the PIN is too long: it must have at most %d digits",
                       SIGNER_PIN_MAX);
    }
    return text;
}

const char *ctl_user_make(struct ctl *ctl, struct store_user *out, const char *uri,
                          const char *pool, const char *phone, const char *ext, const char *pin)
{
    char e164[STORE_PHONE_MAX + 1] = "";
    const char *why = ctl_check_uri(uri);
    if (why == NULL) {
        why = ctl_check_phone(e164, phone, ctl->cfg.pin.default_country_code);
        phone = e164;
    }
    if (why == NULL) {
        why = ctl_check_ext(ext);
    }
    if (why == NULL && phone[0] == '\0' && ext[0] == '\0') {
        why = "a user needs a phone number or an extension to sign in with";
    }
    if (why == NULL && service_config_find_pool(&ctl->cfg, pool) == NULL) {
        why = "the pool is not configured (add a [pool.NAME] section to the configuration)";
    }
    enum signer_reject reason = SIGNER_REJECT_NONE;
    if (why == NULL && signer_pin_policy_check(&ctl->cfg.pin, &reason, pin, ext, phone) != 0) {
        why = reason == SIGNER_REJECT_PIN_LENGTH ? pin_length_text(&ctl->cfg.pin, pin)
                                                 : signer_reject_text(reason);
    }
    if (why != NULL) {
        return why;
    }
    memset(out, 0, sizeof(*out));
    int rc = ctl_uri_canonical(out->uri, uri); /* one spelling per user */
    ASSERT(rc == 0);                           /* ctl_check_uri bounded its length */
    (void)base_str_copy(out->pool, sizeof(out->pool), pool);
    (void)base_str_copy(out->phone, sizeof(out->phone), phone);
    (void)base_str_copy(out->ext, sizeof(out->ext), ext);
    out->pin_len = (uint8_t)strlen(pin);
    out->created_s = clock_real_s();
    signer_pin_verifier(ctl->pin_key, out->pin_verifier, out->uri, pin);
    return NULL;
}

static char ascii_lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

int ctl_uri_canonical(char *out, const char *uri)
{
    ASSERT(out != NULL);
    ASSERT(uri != NULL);
    if (base_str_copy(out, STORE_URI_MAX + 1, uri) != 0) {
        return -E2BIG;
    }
    if (strncasecmp(out, "sip:", 4) == 0) {
        memcpy(out, "sip:", 4);
    }
    char *at = strrchr(out, '@');
    for (char *p = at != NULL ? at + 1 : out + strlen(out); *p != '\0'; p++) {
        *p = ascii_lower(*p);
    }
    ASSERT(strlen(out) == strlen(uri));
    return 0;
}

int ctl_user_get(struct ctl *ctl, struct store_user *out, const char *uri)
{
    char canonical[STORE_URI_MAX + 1];
    /* As given first: of two users an older version let differ only in case, the one named
     * exactly is meant. */
    int rc = store_user_get(ctl->st, out, uri);
    if (rc == -ENOENT && ctl_uri_canonical(canonical, uri) == 0 && strcmp(canonical, uri) != 0) {
        rc = store_user_get(ctl->st, out, canonical);
    }
    return rc;
}

bool ctl_pin_same(void *ctx, size_t index, const struct store_user *other)
{
    const struct ctl_pins *p = ctx;
    ASSERT(p->key != NULL);
    ASSERT(p->pins != NULL);
    const char *pin = p->pins + index * CTL_PIN_CAP;
    ASSERT(memchr(pin, '\0', CTL_PIN_CAP) != NULL);
    return signer_pin_matches(p->key, other->pin_verifier, other->uri, pin);
}

void *ctl_secret_alloc(size_t len)
{
    ASSERT(len > 0);
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        return NULL;
    }
    if (madvise(p, len, MADV_DONTDUMP) == -1) {
        log_warn("certprovctl: madvise_failed errno=%d", errno);
    }
    return p; /* anonymous pages are zero */
}

void ctl_secret_free(void *p, size_t len)
{
    if (p == NULL) {
        return;
    }
    signer_secret_wipe(p, len);
    int rc = munmap(p, len);
    ASSERT(rc == 0);
}

int ctl_parse_hours(uint32_t *out, const char *text)
{
    char *end = NULL;
    errno = 0;
    unsigned long v = strtoul(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || text[0] == '-' || v < 1 || v > 87600) {
        return -EINVAL;
    }
    *out = (uint32_t)v;
    return 0;
}

void ctl_json_str(const char *s)
{
    putchar('"');
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        if (*p == '"' || *p == '\\') {
            printf("\\%c", *p);
        } else if (*p < 0x20 || *p == 0x7f) {
            printf("\\u%04x", *p);
        } else {
            putchar(*p);
        }
    }
    putchar('"');
}

void ctl_json_kv(bool first, const char *key, const char *value)
{
    if (!first) {
        putchar(',');
    }
    ctl_json_str(key);
    putchar(':');
    ctl_json_str(value);
}

void ctl_json_time(const char *key, int64_t t)
{
    putchar(',');
    ctl_json_str(key);
    putchar(':');
    if (t == 0) {
        fputs("null", stdout);
        return;
    }
    char text[CLOCK_UTC_LEN];
    clock_format_utc(text, t);
    ctl_json_str(text);
}

void ctl_refusal_names(const struct store_lockout *l, const char **out_code,
                       const char **out_reason)
{
    *out_code = "-";
    *out_reason = "-";
    if (l->last_refusal_code != 0) {
        unsigned c = l->last_refusal_code - 1u;
        *out_code = c < SIGNER_CODE_MAX_ ? signer_code_name((enum signer_code)c) : "unknown";
    }
    if (l->last_refusal_reason != 0) {
        unsigned r = l->last_refusal_reason - 1u;
        *out_reason =
            r < SIGNER_REASON_MAX_ ? signer_reason_token((enum signer_reason)r) : "unknown";
    }
}

int ctl_parse_duration(int64_t *out, const char *text)
{
    char *end = NULL;
    errno = 0;
    long long n = strtoll(text, &end, 10);
    if (errno != 0 || end == text || n < 1 || text[0] == '+' || end[0] == '\0' || end[1] != '\0') {
        return -EINVAL;
    }
    long long unit = end[0] == 's'   ? 1
                     : end[0] == 'm' ? 60
                     : end[0] == 'h' ? 3600
                     : end[0] == 'd' ? 86400
                                     : 0;
    if (unit == 0 || n > 100LL * 366 * 86400 / unit) {
        return -EINVAL;
    }
    *out = (int64_t)(n * unit);
    return 0;
}

int ctl_parse_since(int64_t *out, const char *text)
{
    struct tm tm = {0};
    int n = 0;
    int64_t age = 0;
    if (ctl_parse_duration(&age, text) == 0) {
        *out = clock_real_s() - age;
        return 0;
    }
    if (sscanf(text, "%4d-%2d-%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &n) != 3 || n != 10) {
        return -EINVAL;
    }
    if (text[10] == 'T') {
        int m = 0;
        if (sscanf(text + 11, "%2d:%2d:%2dZ%n", &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &m) != 3 ||
            m != 9 || text[20] != '\0') {
            return -EINVAL;
        }
    } else if (text[10] != '\0') {
        return -EINVAL;
    }
    if (tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 ||
        tm.tm_min > 59 || tm.tm_sec > 60) {
        return -EINVAL;
    }
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    *out = (int64_t)timegm(&tm);
    return 0;
}

void ctl_time(char out[CLOCK_UTC_LEN], int64_t t)
{
    if (t == 0) {
        (void)base_str_copy(out, CLOCK_UTC_LEN, "-");
        return;
    }
    clock_format_utc(out, t);
}
