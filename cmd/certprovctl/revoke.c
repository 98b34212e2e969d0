/* certprovctl cert revoke | unrevoke, user revoke-certs | disable | enable: revocation (README,
 * Revocation). Every change is one synced store transaction with its outbox entry, durable
 * before the command returns; certprovd notices it through the store's revocation generation. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "cmd/certprovctl/ctl.h"

enum {
    CMD_REVOKE,
    CMD_UNREVOKE,
    CMD_USER_REVOKE,
    CMD_DISABLE,
    CMD_ENABLE,
    CMD_OCSP_SIGNER,
    CMD_WT_SIGNER
};

#define OCSP_SIGNER_DAYS 30
#define CTL_USER_REVOKED_MAX 65536u /* a user's revoked certificates sent to the directory */

#define REASONS_TEXT                                                                               \
    "keyCompromise, affiliationChanged, superseded, cessationOfOperation or certificateHold"

static const char *revoke_error(int rc)
{
    switch (rc) {
    case -ENOENT:
        return "no such certificate";
    case -ENOSPC:
        return "the store is full: raise [store] map_size";
    case -EROFS:
        return "the store is read-only";
    default:
        return strerror(-rc);
    }
}

/* parse_reason reads the value of --reason: a name of REASONS_TEXT ("unspecified" is the
 * default when none is given). */
static int parse_reason(uint8_t *out, const struct ctl_cmd *cmd, const char *text)
{
    if (store_revoke_reason_parse(out, text) != 0 || *out == STORE_REASON_UNSPECIFIED) {
        return ctl_usage(cmd, "--reason must be one of " REASONS_TEXT ", not '%s'", text);
    }
    return CTL_OK;
}

/* parse_args reads "ARG [--reason R] [FLAG]": the one positional argument, the reason when
 * `reason` is not NULL, and `flag` (e.g. "--revoke") when not NULL. */
static int parse_args(const struct ctl_cmd *cmd, int argc, char **argv, const char **out_arg,
                      uint8_t *reason, const char *flag, bool *out_flag)
{
    *out_arg = NULL;
    for (int i = 1; i < argc; i++) {
        if (reason != NULL && strcmp(argv[i], "--reason") == 0 && i + 1 < argc) {
            int rc = parse_reason(reason, cmd, argv[++i]);
            if (rc != CTL_OK) {
                return rc;
            }
        } else if (reason != NULL && strncmp(argv[i], "--reason=", 9) == 0) {
            int rc = parse_reason(reason, cmd, argv[i] + 9);
            if (rc != CTL_OK) {
                return rc;
            }
        } else if (flag != NULL && strcmp(argv[i], flag) == 0) {
            *out_flag = true;
        } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            return ctl_usage(cmd, "unknown or incomplete option '%s'", argv[i]);
        } else if (*out_arg == NULL) {
            *out_arg = argv[i];
        } else {
            return ctl_usage(cmd, "unexpected argument '%s'", argv[i]);
        }
    }
    if (*out_arg == NULL) {
        return ctl_usage(cmd, "%s %s needs %s", cmd->group, cmd->name,
                         strcmp(cmd->group, "cert") == 0 ? "a serial" : "a URI");
    }
    return CTL_OK;
}

static int parse_serial(uint8_t serial[SIGNER_SERIAL_LEN], const struct ctl_cmd *cmd,
                        const char *text)
{
    if (signer_serial_parse(serial, text) != 0) {
        return ctl_usage(cmd, "'%s' is not a serial (hex digits)", text);
    }
    return CTL_OK;
}

/* cert_revoke_fleet: cert revoke with [directory]. The directory decides first (nothing changes
 * here when it refuses or cannot be reached), then the replica takes the same record the
 * directory thread applies: a certificate this appliance does not hold is recorded by serial. */
static int cert_revoke_fleet(struct ctl *ctl, const uint8_t serial[SIGNER_SERIAL_LEN],
                             uint8_t reason, const char *arg)
{
    char text[2 * SIGNER_SERIAL_LEN + 1];
    char at[CLOCK_UTC_LEN];
    signer_serial_format(text, serial);
    uint8_t one[1][STORE_SERIAL_LEN];
    memcpy(one[0], serial, STORE_SERIAL_LEN);
    struct store_revocation rev;
    int rc = store_cert_revocation_get(ctl->st, &rev, serial);
    if (rc != 0 && rc != -ENOENT) {
        return ctl_fail("cert revoke %s: %s", arg, revoke_error(rc));
    }
    if (rc == 0 &&
        (rev.reason != STORE_REASON_CERTIFICATE_HOLD || reason == STORE_REASON_CERTIFICATE_HOLD)) {
        /* Revoked here (perhaps before the directory): the fleet gets it too. */
        if (ctl_dir_revocations_put(ctl, one, 1, rev.reason, rev.revoked_at_s, false, NULL,
                                    "cert revoke") != CTL_OK) {
            return CTL_FAIL;
        }
        ctl_time(at, rev.revoked_at_s);
        printf("serial %s was already revoked at %s (reason %s); nothing changed\n", text, at,
               store_revoke_reason_name(rev.reason));
        return CTL_OK;
    }
    int64_t now = clock_real_s();
    size_t changed = 0;
    if (ctl_dir_revocations_put(ctl, one, 1, reason, now, false, &changed, "cert revoke") !=
        CTL_OK) {
        return CTL_FAIL;
    }
    if (changed == 0) {
        printf("serial %s was already revoked in the fleet directory; nothing changed\n", text);
        return CTL_OK;
    }
    rc = store_revocation_replica(ctl->st, serial, reason, now, false);
    if (rc != 0) {
        return ctl_fail("cert revoke %s: in the directory, but this replica failed (certprovd's "
                        "directory thread applies it): %s",
                        arg, revoke_error(rc));
    }
    rc = store_cert_revocation_get(ctl->st, &rev, serial);
    if (rc != 0) {
        return ctl_fail("cert revoke %s: %s", arg, revoke_error(rc));
    }
    ctl_time(at, rev.revoked_at_s);
    printf("revoked serial %s at %s (reason %s) through the fleet directory; %s\n", text, at,
           store_revoke_reason_name(rev.reason),
           rev.seq == 0 ? "not a certificate of this appliance: its issuing appliance lists it"
                        : "queued for its pool store");
    return CTL_OK;
}

static int cert_revoke(struct ctl *ctl, int argc, char **argv)
{
    const struct ctl_cmd *cmd = &ctl_revoke_cmds[CMD_REVOKE];
    const char *arg = NULL;
    uint8_t reason = STORE_REASON_UNSPECIFIED;
    uint8_t serial[SIGNER_SERIAL_LEN];
    int rc = parse_args(cmd, argc, argv, &arg, &reason, NULL, NULL);
    if (rc == CTL_OK) {
        rc = parse_serial(serial, cmd, arg);
    }
    if (rc == CTL_OK) {
        rc = ctl_store(ctl);
    }
    if (rc != CTL_OK) {
        return rc;
    }
    if (ctl->cfg.directory[0] != '\0') {
        return cert_revoke_fleet(ctl, serial, reason, arg);
    }
    struct store_revocation rev;
    rc = store_cert_revoke(ctl->st, &rev, serial, reason, clock_real_s());
    char text[2 * SIGNER_SERIAL_LEN + 1];
    char at[CLOCK_UTC_LEN];
    signer_serial_format(text, serial);
    if (rc == -EALREADY) {
        ctl_time(at, rev.revoked_at_s);
        printf("serial %s was already revoked at %s (reason %s); nothing changed\n", text, at,
               store_revoke_reason_name(rev.reason));
        return CTL_OK;
    }
    if (rc != 0) {
        return ctl_fail("cert revoke %s: %s", arg, revoke_error(rc));
    }
    ctl_time(at, rev.revoked_at_s);
    printf("revoked serial %s at %s (reason %s); queued for its pool store\n", text, at,
           store_revoke_reason_name(rev.reason));
    return CTL_OK;
}

static int cert_unrevoke(struct ctl *ctl, int argc, char **argv)
{
    const struct ctl_cmd *cmd = &ctl_revoke_cmds[CMD_UNREVOKE];
    const char *arg = NULL;
    uint8_t serial[SIGNER_SERIAL_LEN];
    int rc = parse_args(cmd, argc, argv, &arg, NULL, NULL, NULL);
    if (rc == CTL_OK) {
        rc = parse_serial(serial, cmd, arg);
    }
    if (rc == CTL_OK) {
        rc = ctl_store(ctl);
    }
    if (rc != CTL_OK) {
        return rc;
    }
    char text[2 * SIGNER_SERIAL_LEN + 1];
    signer_serial_format(text, serial);
    if (ctl->cfg.directory[0] != '\0') {
        /* The directory first (a final revocation here is refused before it is asked). */
        struct store_revocation rev;
        int have = store_cert_revocation_get(ctl->st, &rev, serial);
        if (have == 0 && rev.reason != STORE_REASON_CERTIFICATE_HOLD) {
            return ctl_fail("cert unrevoke %s: only a certificateHold can be lifted; this "
                            "revocation is final",
                            arg);
        }
        size_t changed = 0;
        uint8_t one[1][STORE_SERIAL_LEN];
        memcpy(one[0], serial, STORE_SERIAL_LEN);
        if (ctl_dir_revocations_put(ctl, one, 1, STORE_REASON_CERTIFICATE_HOLD, 0, true, &changed,
                                    "cert unrevoke") != CTL_OK) {
            return CTL_FAIL;
        }
        rc = store_revocation_replica(ctl->st, serial, STORE_REASON_CERTIFICATE_HOLD, 0, true);
        if (rc == 0 && have != 0 && changed == 0) {
            rc = -ENOENT;
        }
    } else {
        rc = store_cert_unrevoke(ctl->st, serial);
    }
    if (rc == -ENOENT) {
        return ctl_fail("cert unrevoke %s: serial %s is not revoked", arg, text);
    }
    if (rc == -EPERM) {
        return ctl_fail("cert unrevoke %s: only a certificateHold can be lifted; this revocation "
                        "is final",
                        arg);
    }
    if (rc != 0) {
        return ctl_fail("cert unrevoke %s: %s", arg, revoke_error(rc));
    }
    printf("lifted the hold of serial %s; queued for its pool store\n", text);
    return CTL_OK;
}

int ctl_revoke_user_certs(struct ctl *ctl, const char *uri, uint8_t reason, const char *what)
{
    uint32_t num = 0;
    int rc = store_user_revoke_certs(ctl->st, &num, uri, reason, clock_real_s());
    if (rc != 0) {
        return ctl_fail("%s %s: revoking its certificates failed after %u: %s", what, uri, num,
                        revoke_error(rc));
    }
    if (ctl->cfg.directory[0] != '\0') {
        /* Every revoked certificate of the user this appliance holds goes to the fleet (again:
         * idempotent, so that running the command again repairs a refused write). */
        uint8_t(*serials)[STORE_SERIAL_LEN] = calloc(CTL_USER_REVOKED_MAX, STORE_SERIAL_LEN);
        size_t n = 0;
        rc = serials == NULL ? -ENOMEM
                             : store_user_revoked_serials(ctl->st, serials, CTL_USER_REVOKED_MAX,
                                                          &n, uri, clock_real_s());
        int crc = rc == 0
                      ? ctl_dir_revocations_put(ctl, (const uint8_t(*)[STORE_SERIAL_LEN])serials, n,
                                                reason, clock_real_s(), false, NULL, what)
                      : CTL_FAIL;
        free(serials);
        if (rc != 0) {
            return ctl_fail("%s %s: reading its revoked certificates: %s", what, uri,
                            revoke_error(rc));
        }
        /* ... and the certificates other appliances issued to the user (the fleet's serial
         * index): their appliances revoke them as they apply the rows. */
        size_t others = 0;
        if (crc == CTL_OK) {
            crc = ctl_dir_user_revoke(ctl, uri, reason, clock_real_s(), &others, what);
        }
        if (crc != CTL_OK) {
            return ctl_fail("%s %s: revoked %u here, not yet through the fleet directory: run "
                            "it again",
                            what, uri, num);
        }
        if (others > 0) {
            printf("revoked %zu certificate%s of %s that other appliances issued, through the "
                   "fleet directory\n",
                   others, others == 1 ? "" : "s", uri);
        }
    }
    printf("revoked %u certificate%s of %s (reason %s)\n", num, num == 1 ? "" : "s", uri,
           store_revoke_reason_name(reason));
    return CTL_OK;
}

/* user_of finds the user `arg` names (ctl_user_get) and says so when there is none. */
static int user_of(struct ctl *ctl, struct store_user *u, const char *what, const char *arg)
{
    int rc = ctl_store(ctl);
    if (rc != CTL_OK) {
        return rc;
    }
    rc = ctl_user_get(ctl, u, arg);
    if (rc != 0) {
        return ctl_fail("%s %s: %s", what, arg, rc == -ENOENT ? "no such user" : strerror(-rc));
    }
    return CTL_OK;
}

static int user_revoke_certs(struct ctl *ctl, int argc, char **argv)
{
    const struct ctl_cmd *cmd = &ctl_revoke_cmds[CMD_USER_REVOKE];
    const char *arg = NULL;
    uint8_t reason = STORE_REASON_UNSPECIFIED;
    struct store_user u;
    int rc = parse_args(cmd, argc, argv, &arg, &reason, NULL, NULL);
    if (rc == CTL_OK) {
        rc = user_of(ctl, &u, "user revoke-certs", arg);
    }
    return rc != CTL_OK ? rc : ctl_revoke_user_certs(ctl, u.uri, reason, "user revoke-certs");
}

static int user_disable(struct ctl *ctl, int argc, char **argv)
{
    const struct ctl_cmd *cmd = &ctl_revoke_cmds[CMD_DISABLE];
    const char *arg = NULL;
    bool revoke = false;
    uint8_t reason = STORE_REASON_UNSPECIFIED;
    struct store_user u;
    int rc = parse_args(cmd, argc, argv, &arg, &reason, "--revoke", &revoke);
    if (rc == CTL_OK) {
        rc = user_of(ctl, &u, "user disable", arg);
    }
    if (rc != CTL_OK) {
        return rc;
    }
    /* Disabled first: no renewal can slip in between the two. */
    int64_t now = clock_real_s();
    rc = store_user_disable(ctl->st, u.uri, now);
    if (rc != 0) {
        return ctl_fail("user disable %s: %s", u.uri, revoke_error(rc));
    }
    if (ctl_dir_user_disable(ctl, u.uri, now, "user disable") != CTL_OK) {
        (void)store_user_enable(ctl->st, u.uri); /* the directory decides: undone here */
        return CTL_FAIL;
    }
    printf("disabled %s: it can neither sign in nor renew\n", u.uri);
    return revoke ? ctl_revoke_user_certs(ctl, u.uri, reason, "user disable") : CTL_OK;
}

static int user_enable(struct ctl *ctl, int argc, char **argv)
{
    const struct ctl_cmd *cmd = &ctl_revoke_cmds[CMD_ENABLE];
    const char *arg = NULL;
    struct store_user u;
    int rc = parse_args(cmd, argc, argv, &arg, NULL, NULL, NULL);
    if (rc == CTL_OK) {
        rc = user_of(ctl, &u, "user enable", arg);
    }
    if (rc != CTL_OK) {
        return rc;
    }
    rc = store_user_enable(ctl->st, u.uri);
    /* The directory too, whatever the replica said: it may not hold the mark yet. */
    if ((rc == 0 || rc == -ENOENT) &&
        ctl_dir_user_disable(ctl, u.uri, 0, "user enable") != CTL_OK) {
        if (rc == 0) {
            (void)store_user_disable(ctl->st, u.uri, clock_real_s()); /* undone here */
        }
        return CTL_FAIL;
    }
    if (rc == -ENOENT) {
        printf("%s was not disabled; nothing changed\n", u.uri);
        return CTL_OK;
    }
    if (rc != 0) {
        return ctl_fail("user enable %s: %s", u.uri, revoke_error(rc));
    }
    printf("enabled %s (revoked certificates stay revoked)\n", u.uri);
    return CTL_OK;
}

/* A delegated signer of the issuing CA that certprovctl issues (signer/delegate.c). */
struct delegate {
    const char *name;  /* the command, for messages: "ca ocsp-signer" */
    const char *what;  /* "OCSP signing" */
    const char *files; /* "ocsp": ca/ocsp.crt and ca/ocsp.key */
    uint32_t days;     /* default of --days */
    int (*issue)(struct signer_ca *ca, const char *dir, uint32_t days, int64_t now_s,
                 int64_t *out_not_after_s);
};

/* delegate_issue runs `ca ocsp-signer` and `ca webticket-signer`: [--days N], then the issue. */
static int delegate_issue(struct ctl *ctl, const struct ctl_cmd *cmd, const struct delegate *g,
                          int argc, char **argv)
{
    uint32_t days = g->days;
    for (int i = 1; i < argc; i++) {
        char *end = NULL;
        if (strcmp(argv[i], "--days") == 0 && i + 1 < argc) {
            unsigned long v = strtoul(argv[++i], &end, 10);
            if (end == argv[i] || *end != '\0' || v < 1 || v > 3650) {
                return ctl_usage(cmd, "--days must be a whole number from 1 to 3650, not '%s'",
                                 argv[i]);
            }
            days = (uint32_t)v;
        } else {
            return ctl_usage(cmd, "unexpected argument '%s'", argv[i]);
        }
    }
    char prefix[64];
    (void)snprintf(prefix, sizeof(prefix), "%s: ", g->name);
    struct signer_ca *ca = NULL;
    int rc = ctl_ca_open(ctl, &ca, prefix);
    if (rc != CTL_OK) {
        return rc;
    }
    int64_t until = 0;
    rc = g->issue(ca, ctl->cfg.store_path, days, clock_real_s(), &until);
    signer_ca_free(ca);
    if (rc != 0) {
        return ctl_fail("%s: %s", g->name,
                        rc == -EAGAIN ? "the key backend is unavailable" : strerror(-rc));
    }
    char at[CLOCK_UTC_LEN];
    ctl_time(at, until);
    printf("issued the %s certificate %s/ca/%s.crt (key ca/%s.key), valid until %s; certprovd "
           "uses it from its next start\n",
           g->what, ctl->cfg.store_path, g->files, g->files, at);
    return CTL_OK;
}

static int ca_ocsp_signer(struct ctl *ctl, int argc, char **argv)
{
    static const struct delegate g = {"ca ocsp-signer", "OCSP signing", "ocsp", OCSP_SIGNER_DAYS,
                                      signer_ocsp_signer_issue};
    return delegate_issue(ctl, &ctl_revoke_cmds[CMD_OCSP_SIGNER], &g, argc, argv);
}

/* ca_wt_signer issues the dedicated Web ticket signer (README, Web tickets). */
static int ca_wt_signer(struct ctl *ctl, int argc, char **argv)
{
    static const struct delegate g = {"ca webticket-signer", "Web ticket signing", "webticket", 365,
                                      signer_wt_signer_issue};
    return delegate_issue(ctl, &ctl_revoke_cmds[CMD_WT_SIGNER], &g, argc, argv);
}

const struct ctl_cmd ctl_revoke_cmds[] = {
    [CMD_REVOKE] =
        {"cert", "revoke", cert_revoke, "SERIAL [--reason REASON]",
         "Revokes a certificate: durable before the command returns, published to\n"
         "the user's pool store (revoked_at, revocation_reason), listed in the CRL\n"
         "and answered 'revoked' by OCSP; a renewal with it is refused. REASON: " REASONS_TEXT
         "\n(default: unspecified). A certificateHold can be lifted (cert unrevoke)\n"
         "or made final by revoking again with another reason. Revoking a revoked\n"
         "certificate changes nothing (exit 0). With [directory] the revocation goes\n"
         "through the fleet directory first (refused or unreachable: nothing changes,\n"
         "exit 1) and reaches every appliance; a serial another appliance issued is\n"
         "accepted and refused for renewal everywhere."},
    [CMD_UNREVOKE] = {"cert", "unrevoke", cert_unrevoke, "SERIAL",
                      "Lifts a certificateHold: the certificate is good again (pool store, CRL,\n"
                      "OCSP). Any other revocation is final (exit 1). With [directory], on every\n"
                      "appliance."},
    [CMD_USER_REVOKE] = {"user", "revoke-certs", user_revoke_certs, "URI [--reason REASON]",
                         "Revokes every unexpired certificate of the user that is not revoked\n"
                         "yet (REASON as for cert revoke). With [directory] also, through the\n"
                         "fleet directory, every one that the fleet's serial index lists as\n"
                         "issued to the user by another appliance."},
    [CMD_DISABLE] = {"user", "disable", user_disable, "URI [--revoke [--reason REASON]]",
                     "Disables a user: it can no longer sign in with its PIN nor renew with its\n"
                     "certificate (401 AuthenticationFailed). With --revoke its unexpired\n"
                     "certificates are revoked too."},
    [CMD_ENABLE] = {"user", "enable", user_enable, "URI",
                    "Lets a disabled user sign in again. Revoked certificates stay revoked."},
    [CMD_OCSP_SIGNER] = {"ca", "ocsp-signer", ca_ocsp_signer, "[--days N]",
                         "Issues (or replaces) the delegated OCSP signer: a P-256 key and a\n"
                         "certificate from the issuing CA with id-kp-OCSPSigning and\n"
                         "id-pkix-ocsp-nocheck, valid N days (default 30, never past the CA).\n"
                         "certprovd signs OCSP responses with it from its next start, so that\n"
                         "the CA key is not used per request; reissue it before it expires (an\n"
                         "expired one is not used: the CA signs)."},
    [CMD_WT_SIGNER] = {"ca", "webticket-signer", ca_wt_signer, "[--days N]",
                       "Issues (or replaces) the dedicated Web ticket signer: a P-256 key and a\n"
                       "certificate from the issuing CA with keyUsage digitalSignature, valid N\n"
                       "days (default 365, never past the CA). certprovd signs Web tickets with\n"
                       "it from its next start instead of the CA key; an expired or damaged one\n"
                       "is not used (the CA key signs, and the log says so)."},
    {NULL, NULL, NULL, NULL, NULL},
};
