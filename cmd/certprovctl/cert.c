/* certprovctl cert issue | show | list: offline issuance goes through the same signer, the same
 * store transaction and the same outbox entry as an online enrollment. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "cmd/certprovctl/ctl.h"

/* Serial clashes are 2^-127 events; a few re-signs bound the loop. */
#define CTL_ISSUE_TRIES_MAX 4

enum { CMD_ISSUE, CMD_SHOW, CMD_LIST };

struct issue_args {
    const char *uri;
    const char *csr_path;
    const char *out_path;
    uint32_t hours;
};

static int issue_parse_args(struct issue_args *a, const struct signer_profile *profile, int argc,
                            char **argv)
{
    static const struct option opts[] = {{"uri", required_argument, NULL, 'u'},
                                         {"csr", required_argument, NULL, 'c'},
                                         {"hours", required_argument, NULL, 'h'},
                                         {"out", required_argument, NULL, 'o'},
                                         {NULL, 0, NULL, 0}};
    const struct ctl_cmd *cmd = &ctl_cert_cmds[CMD_ISSUE];
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'u') {
            a->uri = optarg;
        } else if (c == 'c') {
            a->csr_path = optarg;
        } else if (c == 'o') {
            a->out_path = optarg;
        } else if (c == 'h' && ctl_parse_hours(&a->hours, optarg) != 0) {
            return ctl_usage(cmd,
                             "--hours must be a whole number of hours from %u to %u (the "
                             "profile's range: [profile] min_hours and max_hours), not '%s'",
                             profile->min_hours, profile->max_hours, optarg);
        } else if (c == '?') {
            return ctl_usage(cmd, "unknown or incomplete option '%s'", argv[optind - 1]);
        }
    }
    if (optind != argc) {
        return ctl_usage(cmd, "unexpected argument '%s'", argv[optind]);
    }
    if (a->uri == NULL || a->csr_path == NULL) {
        return ctl_usage(cmd, "--uri and --csr are required");
    }
    /* Refused, not clamped: an operator who asks for 1 hour and silently gets 8 has a
     * certificate that lives longer than they think. */
    if (a->hours != 0 && (a->hours < profile->min_hours || a->hours > profile->max_hours)) {
        return ctl_usage(cmd,
                         "--hours %u is outside the profile's range: from %u to %u hours "
                         "([profile] min_hours and max_hours)",
                         a->hours, profile->min_hours, profile->max_hours);
    }
    return CTL_OK;
}

static int csr_fail(const char *path, enum signer_reject reason)
{
    return ctl_fail("%s: %s: %s", path, signer_reject_code(reason), signer_reject_text(reason));
}

/* read_csr loads, decodes, parses and verifies the CSR and checks it names the user. */
static int read_csr(struct signer_csr *csr, uint8_t *der, size_t der_cap, const char *path,
                    const char *uri)
{
    static uint8_t text[SIGNER_CSR_TEXT_MAX];
    size_t text_len = 0;
    size_t der_len = 0;
    enum signer_reject reason = SIGNER_REJECT_NONE;
    int rc = base_file_read(text, &text_len, sizeof(text), path);
    if (rc == -E2BIG) {
        return csr_fail(path, SIGNER_REJECT_CSR_TOO_LARGE);
    }
    if (rc != 0) {
        return ctl_fail("%s: %s", path, strerror(-rc));
    }
    if (signer_csr_decode(der, der_cap, &der_len, &reason, text, text_len) != 0 ||
        signer_csr_parse(csr, &reason, der, der_len) != 0 || signer_csr_verify(csr, &reason) != 0 ||
        signer_identity_check(csr, &reason, uri) != 0) {
        return csr_fail(path, reason);
    }
    return CTL_OK;
}

/* write_pem writes the certificate as PEM to `out` (opened with base_file_atomic_open before the
 * certificate was issued), or to standard output when `out` is NULL. */
static int pem_file_write(struct base_file_atomic *out, const uint8_t *der, size_t der_len)
{
    char pem[2 * SIGNER_CERT_DER_MAX + 128];
    size_t pem_len = 0;
    int rc = signer_pem_encode(pem, sizeof(pem), &pem_len, "CERTIFICATE", der, der_len);
    ASSERT(rc == 0);
    if (out == NULL) {
        fwrite(pem, 1, pem_len, stdout);
        return CTL_OK;
    }
    ASSERT(out->is_open);
    rc = base_file_atomic_commit(out, pem, pem_len);
    if (rc != 0) {
        return ctl_fail("--out %s: %s (the certificate is stored: certprovctl cert show SERIAL "
                        "prints it)",
                        out->path, strerror(-rc));
    }
    return CTL_OK;
}

/* issue_commit signs and stores one certificate, re-signing on a serial clash. */
static int issue_commit(struct ctl *ctl, struct signer_ca *ca, struct signer_issue *item,
                        const struct store_user *user)
{
    static struct store_batch batch;
    for (int attempt = 0; attempt < CTL_ISSUE_TRIES_MAX; attempt++) {
        int rc = signer_issue_batch(ca, &ctl->cfg.profile, item, 1);
        if (rc != 0) {
            return ctl_fail("signing failed: %s", rc == -EAGAIN ? "the key backend is unavailable"
                                                                : "the key backend refused");
        }
        struct store_cert_meta meta = {.not_before_s = item->not_before_s,
                                       .not_after_s = item->not_after_s,
                                       .issued_at_s = item->now_s};
        memcpy(meta.serial, item->serial, sizeof(meta.serial));
        (void)base_str_copy(meta.uri, sizeof(meta.uri), user->uri);
        (void)base_str_copy(meta.pool, sizeof(meta.pool), user->pool);
        store_batch_clear(&batch);
        rc = store_batch_add_cert(&batch, &meta, item->der, item->der_len);
        ASSERT(rc == 0);
        rc = store_batch_commit(ctl->st, &batch);
        if (rc == 0) {
            return CTL_OK;
        }
        if (rc != -EEXIST) {
            return ctl_fail("storing the certificate failed: %s",
                            rc == -ENOSPC ? "the store is full: raise [store] map_size"
                                          : strerror(-rc));
        }
    }
    return ctl_fail("serial clashed %d times in a row: the CSPRNG is broken", CTL_ISSUE_TRIES_MAX);
}

static int cert_issue(struct ctl *ctl, int argc, char **argv)
{
    struct issue_args a = {0};
    int rc = issue_parse_args(&a, &ctl->cfg.profile, argc, argv);
    if (rc != CTL_OK) {
        return rc;
    }
    rc = ctl_store(ctl);
    if (rc != CTL_OK) {
        return rc;
    }
    struct store_user user;
    rc = ctl_user_get(ctl, &user, a.uri);
    if (rc != 0) {
        return ctl_fail("cert issue: no user %s (add it with certprovctl user add)", a.uri);
    }
    static uint8_t der[SIGNER_CSR_DER_MAX];
    struct signer_csr csr = {0};
    rc = read_csr(&csr, der, sizeof(der), a.csr_path, user.uri);
    if (rc != CTL_OK) {
        return rc;
    }
    /* --out is opened before anything is issued: a path that cannot be written used to fail
     * after the certificate was stored and queued, and a retry issued a second one. */
    static struct base_file_atomic out;
    if (a.out_path != NULL) {
        rc = base_file_atomic_open(&out, a.out_path, 0644, false);
        if (rc != 0) {
            return ctl_fail("--out %s: %s; nothing was issued", a.out_path, strerror(-rc));
        }
    }
    struct signer_ca *ca = NULL;
    rc = ctl_ca_open(ctl, &ca, "cert issue: ");
    if (rc != 0) {
        base_file_atomic_abort(&out);
        return rc;
    }
    static struct signer_issue item;
    item = (struct signer_issue){
        .csr = &csr, .uri = user.uri, .hours = a.hours, .now_s = clock_real_s()};
    rc = issue_commit(ctl, ca, &item, &user);
    signer_ca_free(ca);
    if (rc != CTL_OK) {
        base_file_atomic_abort(&out);
        return rc;
    }
    char serial[2 * SIGNER_SERIAL_LEN + 1];
    char until[CLOCK_UTC_LEN];
    signer_serial_format(serial, item.serial);
    ctl_audit_note(ctl, "serial=%s", serial);
    ctl_time(until, item.not_after_s);
    fprintf(stderr, "certprovctl: issued serial %s to %s, valid until %s, queued for pool %s\n",
            serial, user.uri, until, user.pool);
    return pem_file_write(a.out_path != NULL ? &out : NULL, item.der, item.der_len);
}

/* The publication state of a certificate: its outbox entry in its pool, if any. */
struct pub_find {
    const uint8_t *serial;
    bool found;
    struct store_outbox_entry entry;
    int64_t published_s; /* an embedded pool store's published_at; 0: unknown (PostgreSQL) */
};

/* published_at reads when an embedded pool store took the certificate (0 when the pool is not
 * embedded or it cannot be read: the pool store's own published_at says). */
static int64_t published_at(struct ctl *ctl, const struct store_cert_meta *meta)
{
    const struct service_pool_config *p = service_config_find_pool(&ctl->cfg, meta->pool);
    if (p == NULL || strcmp(p->store, "embedded") != 0) {
        return 0;
    }
    char dir[SERVICE_PATH_MAX + 16];
    char serial[2 * SIGNER_SERIAL_LEN + 1];
    char by[64];
    struct store_cert_meta m;
    int64_t at = 0;
    (void)snprintf(dir, sizeof(dir), "%s/pools", ctl->cfg.store_path);
    signer_serial_format(serial, meta->serial);
    if (store_embedded_get(dir, meta->pool, serial, &m, by, sizeof(by), &at) != 0) {
        return 0;
    }
    return at;
}

static int pub_find_fn(void *ctx, const struct store_outbox_entry *e)
{
    struct pub_find *pf = ctx;
    if (memcmp(e->serial, pf->serial, STORE_SERIAL_LEN) != 0) {
        return 0;
    }
    pf->found = true;
    pf->entry = *e;
    return 1;
}

static const char *pub_state(const struct pub_find *pf)
{
    if (!pf->found) {
        return "published";
    }
    return pf->entry.parked ? "parked" : "pending";
}

/* revocation_line gives the certificate's revocation state for cert show: "good", or "revoked
 * at TIME (reason R)"; `rev` is NULL when it is not revoked. */
static void revocation_line(char *out, size_t cap, const struct store_revocation *rev)
{
    if (rev == NULL) {
        (void)snprintf(out, cap, "good (not revoked)");
        return;
    }
    char at[CLOCK_UTC_LEN];
    ctl_time(at, rev->revoked_at_s);
    const char *why = store_revoke_reason_name(rev->reason);
    (void)snprintf(out, cap, "revoked at %s (reason %s)", at, why != NULL ? why : "unknown");
}

static void show_text(const struct store_cert_meta *meta, const struct signer_cert_info *info,
                      const struct pub_find *pf, const struct store_revocation *rev)
{
    char state[96];
    revocation_line(state, sizeof(state), rev);
    char text[2 * SIGNER_SERIAL_LEN + 1];
    char nb[CLOCK_UTC_LEN];
    char na[CLOCK_UTC_LEN];
    char at[CLOCK_UTC_LEN];
    signer_serial_format(text, meta->serial);
    ctl_time(nb, meta->not_before_s);
    ctl_time(na, meta->not_after_s);
    ctl_time(at, meta->issued_at_s);
    printf("serial:      %s\nuri:         %s\nsubject:     %s\nsan:         %s\nkey:         %s\n"
           "issuer:      %s\nnot_before:  %s\nnot_after:   %s\nissued_at:   %s\n"
           "sha256:      %s\ndevice_id:   %s\npool:        %s\n",
           text, meta->uri, info->subject, info->san[0] ? info->san : "-", info->key, info->issuer,
           nb, na, at, info->sha256, meta->device_id[0] ? meta->device_id : "-", meta->pool);
    printf("revocation:  %s\n", state);
    if (!pf->found) {
        char when[CLOCK_UTC_LEN];
        ctl_time(when, pf->published_s);
        printf("publication: published to %s%s%s (acknowledged by the pool store: no longer in "
               "the outbox)\n",
               meta->pool, pf->published_s != 0 ? " at " : "", pf->published_s != 0 ? when : "");
        return;
    }
    char next[CLOCK_UTC_LEN];
    ctl_time(next, pf->entry.next_attempt_ms / 1000);
    printf("publication: %s in the outbox of %s (attempts=%u next_attempt=%s last_error=\"%s\")\n",
           pub_state(pf), meta->pool, pf->entry.attempts,
           pf->entry.next_attempt_ms == 0 ? "now" : next, pf->entry.last_error);
}

static void show_json(const struct store_cert_meta *meta, const struct signer_cert_info *info,
                      const struct pub_find *pf, const struct store_revocation *rev,
                      const char *pem)
{
    char text[2 * SIGNER_SERIAL_LEN + 1];
    signer_serial_format(text, meta->serial);
    putchar('{');
    ctl_json_kv(true, "serial", text);
    ctl_json_kv(false, "uri", meta->uri);
    ctl_json_kv(false, "subject", info->subject);
    ctl_json_kv(false, "san", info->san);
    ctl_json_kv(false, "key", info->key);
    ctl_json_kv(false, "issuer", info->issuer);
    ctl_json_time("not_before", meta->not_before_s);
    ctl_json_time("not_after", meta->not_after_s);
    ctl_json_time("issued_at", meta->issued_at_s);
    ctl_json_kv(false, "sha256", info->sha256);
    ctl_json_kv(false, "device_id", meta->device_id);
    ctl_json_kv(false, "pool", meta->pool);
    ctl_json_kv(false, "revocation", rev != NULL ? "revoked" : "good");
    if (rev != NULL) {
        ctl_json_time("revoked_at", rev->revoked_at_s);
        const char *why = store_revoke_reason_name(rev->reason);
        ctl_json_kv(false, "revocation_reason", why != NULL ? why : "unknown");
    }
    ctl_json_kv(false, "publication", pub_state(pf));
    if (pf->found) {
        printf(",\"attempts\":%u", pf->entry.attempts);
        ctl_json_kv(false, "last_error", pf->entry.last_error);
    } else {
        ctl_json_time("published_at", pf->published_s);
    }
    ctl_json_kv(false, "pem", pem);
    fputs("}\n", stdout);
}

static int cert_show(struct ctl *ctl, int argc, char **argv)
{
    bool json = false;
    const char *arg = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            json = true;
        } else if (arg == NULL) {
            arg = argv[i];
        } else {
            arg = NULL;
            break;
        }
    }
    if (arg == NULL || argc > 3) {
        return ctl_usage(&ctl_cert_cmds[CMD_SHOW], "cert show takes one serial");
    }
    uint8_t serial[SIGNER_SERIAL_LEN];
    if (signer_serial_parse(serial, arg) != 0) {
        return ctl_usage(&ctl_cert_cmds[CMD_SHOW], "'%s' is not a serial (hex digits)", arg);
    }
    int rc = ctl_store(ctl);
    if (rc != CTL_OK) {
        return rc;
    }
    struct store_cert_meta meta;
    static uint8_t der[STORE_CERT_DER_MAX];
    size_t der_len = 0;
    rc = store_cert_get(ctl->st, &meta, der, sizeof(der), &der_len, serial);
    if (rc == -ENOENT) {
        return ctl_fail("no certificate with serial %s", arg);
    }
    if (rc != 0) {
        return ctl_fail("cert show: the store cannot be read: %s", strerror(-rc));
    }
    struct signer_cert_info info;
    if (signer_cert_info_der(&info, der, der_len) != 0) {
        return ctl_fail("cert show: the stored certificate %s does not decode", arg);
    }
    struct pub_find pf = {.serial = meta.serial};
    rc = store_outbox_foreach(ctl->st, meta.pool, pub_find_fn, &pf);
    if (rc < 0) {
        return ctl_fail("cert show: the outbox cannot be read: %s", strerror(-rc));
    }
    if (!pf.found) {
        pf.published_s = published_at(ctl, &meta);
    }
    struct store_revocation revocation;
    rc = store_cert_revocation_get(ctl->st, &revocation, meta.serial);
    if (rc != 0 && rc != -ENOENT) {
        return ctl_fail("cert show: the revocations cannot be read: %s", strerror(-rc));
    }
    const struct store_revocation *rev = rc == 0 ? &revocation : NULL;
    if (!json) {
        show_text(&meta, &info, &pf, rev);
        return pem_file_write(NULL, der, der_len);
    }
    static char pem[2 * STORE_CERT_DER_MAX + 128];
    size_t pem_len = 0;
    if (signer_pem_encode(pem, sizeof(pem), &pem_len, "CERTIFICATE", der, der_len) != 0) {
        return ctl_fail("cert show: the certificate does not fit in PEM");
    }
    show_json(&meta, &info, &pf, rev, pem);
    return CTL_OK;
}

#define CTL_LIST_LIMIT_DEFAULT 1000
#define CTL_LIST_LIMIT_MAX 1000000

struct list_args {
    const char *uri;
    const char *pool;
    int64_t since_s;    /* INT64_MIN: all */
    int64_t expiring_s; /* not_after before this; INT64_MAX: all */
    uint64_t limit;
    bool json;
    uint64_t printed;
    bool newest_first;
};

static int list_fn(void *ctx, const struct store_cert_meta *meta, const uint8_t *der,
                   size_t der_len)
{
    (void)der;
    (void)der_len;
    struct list_args *a = ctx;
    if (meta->issued_at_s < a->since_s) {
        return a->newest_first ? 1 : 0; /* newest first: all the rest are older */
    }
    if (meta->not_after_s >= a->expiring_s ||
        (a->pool != NULL && strcmp(meta->pool, a->pool) != 0)) {
        return 0;
    }
    if (a->printed == a->limit) {
        return 2; /* more than --limit */
    }
    a->printed++;
    char text[2 * SIGNER_SERIAL_LEN + 1];
    signer_serial_format(text, meta->serial);
    if (a->json) {
        putchar('{');
        ctl_json_kv(true, "serial", text);
        ctl_json_kv(false, "uri", meta->uri);
        ctl_json_kv(false, "pool", meta->pool);
        ctl_json_kv(false, "device_id", meta->device_id);
        ctl_json_time("not_before", meta->not_before_s);
        ctl_json_time("not_after", meta->not_after_s);
        ctl_json_time("issued_at", meta->issued_at_s);
        fputs("}\n", stdout);
        return 0;
    }
    char nb[CLOCK_UTC_LEN];
    char na[CLOCK_UTC_LEN];
    ctl_time(nb, meta->not_before_s);
    ctl_time(na, meta->not_after_s);
    if (a->uri != NULL) {
        printf("%s not_before=%s not_after=%s device_id=%s\n", text, nb, na,
               meta->device_id[0] ? meta->device_id : "-");
    } else {
        printf("%s uri=%s pool=%s not_before=%s not_after=%s device_id=%s\n", text, meta->uri,
               meta->pool, nb, na, meta->device_id[0] ? meta->device_id : "-");
    }
    return 0;
}

static int list_parse(struct ctl *ctl, struct list_args *a, int argc, char **argv)
{
    const struct ctl_cmd *cmd = &ctl_cert_cmds[CMD_LIST];
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        int64_t d = 0;
        char *end = NULL;
        if (strcmp(o, "--json") == 0) {
            a->json = true;
            continue;
        }
        if (v == NULL) {
            return ctl_usage(cmd, "'%s' needs a value, or is unknown", o);
        }
        i++;
        if (strcmp(o, "--uri") == 0) {
            a->uri = v;
        } else if (strcmp(o, "--pool") == 0) {
            if (service_config_find_pool(&ctl->cfg, v) == NULL) {
                return ctl_fail("pool '%s' is not configured in %s", v, ctl->config_path);
            }
            a->pool = v;
        } else if (strcmp(o, "--since") == 0) {
            if (ctl_parse_since(&a->since_s, v) != 0) {
                return ctl_usage(cmd, "--since takes a UTC time (2026-12-05T06:00:00Z or "
                                      "2026-12-05) or an age (90m, 24h, 7d)");
            }
        } else if (strcmp(o, "--expiring-within") == 0) {
            if (ctl_parse_duration(&d, v) != 0) {
                return ctl_usage(cmd, "--expiring-within takes a duration (12h, 30d)");
            }
            a->expiring_s = clock_real_s() + d;
        } else if (strcmp(o, "--limit") == 0) {
            errno = 0;
            unsigned long long n = strtoull(v, &end, 10);
            if (errno != 0 || end == v || *end != '\0' || v[0] == '-' || n < 1 ||
                n > CTL_LIST_LIMIT_MAX) {
                return ctl_usage(cmd, "--limit takes 1 to %d", CTL_LIST_LIMIT_MAX);
            }
            a->limit = n;
        } else {
            return ctl_usage(cmd, "unknown option '%s'", o);
        }
    }
    return CTL_OK;
}

static int cert_list(struct ctl *ctl, int argc, char **argv)
{
    struct list_args a = {
        .since_s = INT64_MIN, .expiring_s = INT64_MAX, .limit = CTL_LIST_LIMIT_DEFAULT};
    int rc = list_parse(ctl, &a, argc, argv);
    if (rc != CTL_OK) {
        return rc;
    }
    rc = ctl_store(ctl);
    if (rc != CTL_OK) {
        return rc;
    }
    a.newest_first = a.uri == NULL;
    rc = a.uri != NULL ? store_cert_foreach_by_uri(ctl->st, a.uri, list_fn, &a)
                       : store_cert_foreach_newest(ctl->st, list_fn, &a);
    if (rc < 0) {
        return ctl_fail("cert list: the store cannot be read: %s", strerror(-rc));
    }
    if (rc == 2) {
        fprintf(stderr,
                "certprovctl: cert list: more than %llu certificates match; the first %llu "
                "are shown (--limit N for more)\n",
                (unsigned long long)a.limit, (unsigned long long)a.limit);
    }
    return CTL_OK;
}

const struct ctl_cmd ctl_cert_cmds[] = {
    [CMD_ISSUE] = {"cert", "issue", cert_issue, "--uri URI --csr FILE [--hours N] [--out FILE]",
                   "Issues a certificate offline (e.g. over a cable) for the user URI from the\n"
                   "CSR in FILE (DER, PEM or base64). The CSR is checked exactly like an online\n"
                   "one; the certificate is stored and queued for the user's pool store like an\n"
                   "online one. Writes the PEM to --out (or standard output); --out is checked\n"
                   "before anything is issued (a missing directory, a directory, no permission:\n"
                   "exit 1, nothing issued). --hours must lie within the profile's range\n"
                   "([profile] min_hours..max_hours; default: default_hours): it is refused,\n"
                   "never clamped."},
    [CMD_SHOW] = {"cert", "show", cert_show, "SERIAL [--json]",
                  "Decodes a stored certificate: subject, SAN, key type and size, issuer,\n"
                  "validity, SHA-256 fingerprint, device id, home pool and its publication\n"
                  "state (pending or parked in the outbox, with attempts and last error, or\n"
                  "published: acknowledged by the pool store), then its PEM. --json: one JSON\n"
                  "object (the PEM in \"pem\")."},
    [CMD_LIST] = {"cert", "list", cert_list,
                  "[--uri URI] [--since T] [--expiring-within D] [--pool NAME] [--limit N] "
                  "[--json]",
                  "Lists certificates, one line each: a user's (--uri), oldest first, or every\n"
                  "one, newest first. --since: issued at or after a UTC time\n"
                  "(2026-12-05T06:00:00Z, 2026-12-05) or within an age (24h, 7d);\n"
                  "--expiring-within: whose notAfter is within the duration (30d), expired\n"
                  "ones included; --pool: of that home pool; --limit: at most N lines (default\n"
                  "1000, at most 1000000; more are said on stderr). --json: one JSON object a\n"
                  "line. --expiring-within and --pool read every certificate."},
    {NULL, NULL, NULL, NULL, NULL},
};
