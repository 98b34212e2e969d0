/* certprovctl audit list | audit verify, and the record every change appends (ctl_audit). */
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/base.h"
#include "cmd/certprovctl/ctl.h"

enum { CMD_LIST, CMD_VERIFY };

/* The commands that change something, recorded by ctl_audit_command. */
static const char *const audited[] = {
    "user add",     "user import", "user del",   "user set-pin", "user unlock",    "cert issue",
    "outbox retry", "ca init",     "ca request", "ca import",    "directory init",
};

void ctl_audit_note(struct ctl *ctl, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    (void)vsnprintf(ctl->audit_detail, sizeof(ctl->audit_detail), fmt, ap);
    va_end(ap);
}

int ctl_audit(struct ctl *ctl, const char *command, const char *target, const char *outcome)
{
    char user[64] = "";
    struct passwd pw;
    struct passwd *res = NULL;
    char pwbuf[1024];
    uid_t uid = getuid();
    if (getpwuid_r(uid, &pw, pwbuf, sizeof(pwbuf), &res) == 0 && res != NULL) {
        (void)base_str_copy(user, sizeof(user), pw.pw_name);
    }
    const char *sudo = getenv("SUDO_USER"); /* who ran sudo: the person, not root */
    if (uid == 0 && sudo != NULL && sudo[0] != '\0') {
        char both[160];
        (void)snprintf(both, sizeof(both), "%s (sudo by %s)", user, sudo);
        (void)base_str_copy(user, sizeof(user), both);
    }
    struct service_audit_entry e = {.time_s = clock_real_s(),
                                    .uid = (uint32_t)uid,
                                    .user = user,
                                    .command = command,
                                    .target = target,
                                    .outcome = outcome,
                                    .detail = ctl->audit_detail};
    int rc = service_audit_append(ctl->cfg.store_path, &e);
    if (rc != 0) {
        /* Never blocks what was done: the command's result stands, the operator is told. */
        fprintf(stderr, "certprovctl: warning: the audit log %s/%s could not be appended (%s)%s\n",
                ctl->cfg.store_path, SERVICE_AUDIT_FILE,
                rc == -EBADMSG ? "it does not end in a whole record" : strerror(-rc),
                rc == -EBADMSG ? ": run certprovctl audit verify" : "");
    }
    return rc;
}

/* target_of finds what a command acted on: --uri VALUE, --pool VALUE, else its first argument
 * that is no option ("" if none). Never a PIN: PINs come from standard input only. */
static const char *target_of(int argc, char **argv)
{
    for (int i = 1; i + 1 < argc; i++) {
        if (strcmp(argv[i], "--uri") == 0 || strcmp(argv[i], "--pool") == 0) {
            return argv[i + 1];
        }
    }
    for (int i = 1; i < argc; i++) {
        if (argv[i][0] != '-') {
            return argv[i];
        }
    }
    return "";
}

void ctl_audit_command(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv, int rc)
{
    char name[64];
    (void)snprintf(name, sizeof(name), "%s %s", cmd->group, cmd->name);
    bool changes = false;
    for (size_t i = 0; i < ARRAY_LEN(audited); i++) {
        changes = changes || strcmp(audited[i], name) == 0;
    }
    if (!changes || rc == CTL_USAGE) { /* a usage error changed nothing */
        return;
    }
    (void)ctl_audit(ctl, name, target_of(argc, argv), rc == CTL_OK ? "ok" : "failed");
}

/* ---- audit list | audit verify ---- */

struct list_ctx {
    bool json;
};

/* print_field prints the JSON string value of "key" in `line` (our own format: the key is found
 * after a '"' that is not escaped), unescaped, or "-". */
static void print_field(const char *line, const char *key)
{
    char pat[32];
    (void)snprintf(pat, sizeof(pat), ",\"%s\":\"", key);
    const char *p = strstr(line, pat);
    while (p != NULL && p > line && p[-1] == '\\') {
        p = strstr(p + 1, pat);
    }
    if (p == NULL) {
        fputs("-", stdout);
        return;
    }
    p += strlen(pat);
    bool any = false;
    for (; *p != '\0' && *p != '"'; p++) {
        any = true;
        if (*p == '\\' && p[1] == 'u') { /* a control character: shown as '?' */
            putchar('?');
            p += 5;
        } else if (*p == '\\' && p[1] != '\0') {
            putchar(*++p);
        } else {
            putchar(*p == ' ' && strcmp(key, "target") == 0 ? '_' : *p);
        }
    }
    if (!any) {
        fputs("-", stdout);
    }
}

static int list_fn(void *ctx, const char *line, int64_t time_s)
{
    const struct list_ctx *lc = ctx;
    if (lc->json) {
        puts(line);
        return 0;
    }
    char when[CLOCK_UTC_LEN];
    clock_format_utc(when, time_s);
    printf("%s ", when);
    print_field(line, "user");
    fputs(" ", stdout);
    print_field(line, "command");
    fputs(" target=", stdout);
    print_field(line, "target");
    fputs(" outcome=", stdout);
    print_field(line, "outcome");
    fputs(" detail=", stdout);
    print_field(line, "detail");
    putchar('\n');
    return 0;
}

static int audit_list(struct ctl *ctl, int argc, char **argv)
{
    struct list_ctx lc = {0};
    int64_t since = INT64_MIN;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            lc.json = true;
        } else if (strcmp(argv[i], "--since") == 0 && i + 1 < argc) {
            if (ctl_parse_since(&since, argv[++i]) != 0) {
                return ctl_usage(&ctl_audit_cmds[CMD_LIST],
                                 "--since takes a UTC time (2026-12-05T06:00:00Z or 2026-12-05) "
                                 "or an age (90m, 24h, 7d)");
            }
        } else {
            return ctl_usage(&ctl_audit_cmds[CMD_LIST], "unknown argument '%s'", argv[i]);
        }
    }
    uint64_t n = 0;
    char head[65];
    char err[256];
    int rc =
        service_audit_verify(ctl->cfg.store_path, since, list_fn, &lc, &n, head, err, sizeof(err));
    if (rc == -EBADMSG) {
        return ctl_fail("audit list: the audit log is damaged: %s", err);
    }
    if (rc != 0) {
        return ctl_fail("audit list: %s/%s: %s", ctl->cfg.store_path, SERVICE_AUDIT_FILE,
                        strerror(-rc));
    }
    return CTL_OK;
}

static int audit_verify(struct ctl *ctl, int argc, char **argv)
{
    (void)argv;
    if (argc != 1) {
        return ctl_usage(&ctl_audit_cmds[CMD_VERIFY], "audit verify takes no arguments");
    }
    uint64_t n = 0;
    char head[65];
    char err[256];
    int rc = service_audit_verify(ctl->cfg.store_path, INT64_MIN, NULL, NULL, &n, head, err,
                                  sizeof(err));
    if (rc == -EBADMSG) {
        return ctl_fail("audit verify: %s/%s: %s", ctl->cfg.store_path, SERVICE_AUDIT_FILE, err);
    }
    if (rc != 0) {
        return ctl_fail("audit verify: %s/%s: %s", ctl->cfg.store_path, SERVICE_AUDIT_FILE,
                        strerror(-rc));
    }
    printf("ok: %llu records, chain head %s\n", (unsigned long long)n, head);
    return CTL_OK;
}

const struct ctl_cmd ctl_audit_cmds[] = {
    [CMD_LIST] = {"audit", "list", audit_list, "[--since T] [--json]",
                  "Prints the audit log of administration, oldest first, one line a record:\n"
                  "time, operating-system user, command, target, outcome, detail. --since: a\n"
                  "UTC time (2026-12-05T06:00:00Z, 2026-12-05) or an age (90m, 24h, 7d).\n"
                  "--json: the records as stored, one JSON object a line. Checks the chain as\n"
                  "it goes: a damaged log fails (exit 1) at the line that breaks it."},
    [CMD_VERIFY] = {"audit", "verify", audit_verify, "",
                    "Checks the audit log's hash chain: each record's seq and the SHA-256 of the\n"
                    "record before it. Prints the number of records and the chain head (note it\n"
                    "elsewhere: removing records from the end is found only against it); a\n"
                    "damaged log exits 1 naming the line that was edited or removed."},
    {NULL, NULL, NULL, NULL, NULL},
};
