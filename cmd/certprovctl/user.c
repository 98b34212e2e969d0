/* certprovctl user add | import | show | list | unlock | set-pin | del */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/mem.h>

#include "base/base.h"
#include "cmd/certprovctl/ctl.h"

/* Most rows one `user import` file may hold: they are committed in one transaction. */
#define CTL_IMPORT_ROWS_MAX 200000
#define CTL_IMPORT_LINE_MAX 1024

enum { CMD_ADD, CMD_IMPORT, CMD_SHOW, CMD_LIST, CMD_UNLOCK, CMD_SET_PIN, CMD_DEL };

static const char *store_error(int rc)
{
    switch (rc) {
    case -EEXIST:
        return "a user with this URI already exists";
    case -ENOTUNIQ:
        return "another user has the same phone number and extension";
    case -ENOENT:
        return "no such user";
    case -EINVAL:
        return "a field is empty or too long";
    case -ENOSPC:
        return "the store is full: raise [store] map_size";
    default:
        return strerror(-rc);
    }
}

static int user_add(struct ctl *ctl, int argc, char **argv)
{
    static const struct option opts[] = {
        {"uri", required_argument, NULL, 'u'},   {"pool", required_argument, NULL, 'p'},
        {"phone", required_argument, NULL, 'n'}, {"ext", required_argument, NULL, 'e'},
        {"pin-stdin", no_argument, NULL, 's'},   {NULL, 0, NULL, 0}};
    const struct ctl_cmd *cmd = &ctl_user_cmds[CMD_ADD];
    const char *uri = NULL;
    const char *pool = NULL;
    const char *phone = "";
    const char *ext = "";
    bool pin_stdin = false;
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'u':
            uri = optarg;
            break;
        case 'p':
            pool = optarg;
            break;
        case 'n':
            phone = optarg;
            break;
        case 'e':
            ext = optarg;
            break;
        case 's':
            pin_stdin = true;
            break;
        default:
            return ctl_usage(cmd, "unknown or incomplete option '%s'", argv[optind - 1]);
        }
    }
    if (optind != argc) {
        return ctl_usage(cmd, "unexpected argument '%s' (PINs are read with --pin-stdin)",
                         argv[optind]);
    }
    if (uri == NULL || pool == NULL || !pin_stdin) {
        return ctl_usage(cmd, "--uri, --pool and --pin-stdin are required");
    }
    int rc = ctl_pin_key(ctl);
    if (rc != 0) {
        return rc;
    }
    char pin[SIGNER_PIN_MAX + 2];
    rc = ctl_read_pin(pin, sizeof(pin));
    if (rc != 0) {
        return rc;
    }
    struct store_user user;
    const char *why = ctl_user_make(ctl, &user, uri, pool, phone, ext, pin);
    OPENSSL_cleanse(pin, sizeof(pin));
    if (why != NULL) {
        return ctl_fail("user add %s: %s", uri, why);
    }
    rc = store_user_add(ctl->st, &user);
    if (rc != 0) {
        return ctl_fail("user add %s: %s", uri, store_error(rc));
    }
    printf("added %s (pool %s)\n", user.uri, user.pool);
    return CTL_OK;
}

/* split_csv splits `line` in place into exactly `num` comma-separated fields (no quoting:
 * none of the fields may contain a comma). Returns 0 or -EINVAL. */
static int split_csv(char *line, char **fields, size_t num)
{
    line[strcspn(line, "\r\n")] = '\0';
    if (strchr(line, '"') != NULL) {
        return -EINVAL;
    }
    size_t n = 0;
    char *p = line;
    for (;;) {
        if (n == num) {
            return -EINVAL;
        }
        fields[n++] = p;
        char *comma = strchr(p, ',');
        if (comma == NULL) {
            break;
        }
        *comma = '\0';
        p = comma + 1;
    }
    return n == num ? 0 : -EINVAL;
}

struct import {
    struct store_user *users;
    size_t num;
    size_t *lines; /* line number of each user, for messages */
};

static int import_read(struct ctl *ctl, struct import *imp, FILE *f, const char *path)
{
    char line[CTL_IMPORT_LINE_MAX];
    char *fields[5];
    size_t lineno = 0;
    int rc = CTL_OK;
    while (rc == CTL_OK && fgets(line, sizeof(line), f) != NULL) {
        lineno++;
        if (strchr(line, '\n') == NULL && !feof(f)) {
            rc = ctl_fail("%s:%zu: line longer than %d bytes", path, lineno, CTL_IMPORT_LINE_MAX);
        } else if (lineno == 1) {
            line[strcspn(line, "\r\n")] = '\0';
            if (strcmp(line, "uri,phone,ext,pool,pin") != 0) {
                rc = ctl_fail("%s:1: the header must be exactly: uri,phone,ext,pool,pin", path);
            }
        } else if (line[strspn(line, " \t\r\n")] == '\0') {
            continue;
        } else if (split_csv(line, fields, 5) != 0) {
            rc = ctl_fail("%s:%zu: expected 5 comma-separated fields without quotes", path, lineno);
        } else if (imp->num == CTL_IMPORT_ROWS_MAX) {
            rc = ctl_fail("%s: more than %d users; split the file", path, CTL_IMPORT_ROWS_MAX);
        } else {
            const char *why = ctl_user_make(ctl, &imp->users[imp->num], fields[0], fields[3],
                                            fields[1], fields[2], fields[4]);
            if (why != NULL) {
                rc = ctl_fail("%s:%zu: %s: %s", path, lineno, fields[0], why);
            }
            imp->lines[imp->num++] = lineno;
        }
        OPENSSL_cleanse(line, sizeof(line)); /* it held a PIN */
    }
    if (rc == CTL_OK && ferror(f)) {
        rc = ctl_fail("%s: read error", path);
    }
    if (rc == CTL_OK && lineno == 0) {
        rc = ctl_fail("%s: empty file; the header must be: uri,phone,ext,pool,pin", path);
    }
    return rc;
}

static int user_import(struct ctl *ctl, int argc, char **argv)
{
    const struct ctl_cmd *cmd = &ctl_user_cmds[CMD_IMPORT];
    if (argc != 2) {
        return ctl_usage(cmd, "user import takes one file");
    }
    const char *path = argv[1];
    int rc = ctl_pin_key(ctl);
    if (rc != 0) {
        return rc;
    }
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "re");
    if (f == NULL) {
        return ctl_fail("%s: %s", path, strerror(errno));
    }
    struct import imp = {
        .users = calloc(CTL_IMPORT_ROWS_MAX, sizeof(struct store_user)),
        .lines = calloc(CTL_IMPORT_ROWS_MAX, sizeof(size_t)),
    };
    if (imp.users == NULL || imp.lines == NULL) {
        rc = ctl_fail("out of memory");
    } else {
        rc = import_read(ctl, &imp, f, path);
    }
    if (f != stdin) {
        fclose(f);
    }
    if (rc == CTL_OK && imp.num > 0) {
        size_t failed = 0;
        int src = store_user_add_many(ctl->st, imp.users, imp.num, &failed);
        if (src != 0) {
            rc = ctl_fail("%s:%zu: %s: %s; nothing was imported", path, imp.lines[failed],
                          imp.users[failed].uri, store_error(src));
        }
    }
    if (rc == CTL_OK) {
        printf("imported %zu users from %s\n", imp.num, path);
    }
    if (imp.users != NULL) {
        OPENSSL_cleanse(imp.users, CTL_IMPORT_ROWS_MAX * sizeof(struct store_user));
    }
    free(imp.users);
    free(imp.lines);
    return rc;
}

static const char *lock_state(const struct store_lockout *l, int64_t now)
{
    if (l->admin_locked) {
        return "locked (until an administrator unlocks: certprovctl user unlock)";
    }
    if (l->locked_until_s > now) {
        return "locked (temporarily)";
    }
    return "unlocked";
}

static int cert_count_fn(void *ctx, const struct store_cert_meta *meta, const uint8_t *der,
                         size_t der_len)
{
    (void)meta;
    (void)der;
    (void)der_len;
    (*(size_t *)ctx)++;
    return 0;
}

static int user_show(struct ctl *ctl, int argc, char **argv)
{
    if (argc != 2) {
        return ctl_usage(&ctl_user_cmds[CMD_SHOW], "user show takes one URI");
    }
    int rc = ctl_store(ctl);
    if (rc != 0) {
        return rc;
    }
    struct store_user u;
    rc = store_user_get(ctl->st, &u, argv[1]);
    if (rc != 0) {
        return ctl_fail("user show %s: %s", argv[1], store_error(rc));
    }
    struct store_lockout l;
    size_t certs = 0;
    uint32_t day = 0; /* certificates of the last 24 hours, what the limit counts */
    int64_t day_last_s = 0;
    int64_t now = clock_real_s();
    if (store_lockout_get(ctl->st, &l, u.uri) != 0 ||
        store_cert_foreach_by_uri(ctl->st, u.uri, cert_count_fn, &certs) != 0 ||
        store_cert_recent_by_uri(ctl->st, u.uri, now - 86400 + 1, UINT32_MAX, &day, &day_last_s) !=
            0) {
        return ctl_fail("user show %s: the store cannot be read", u.uri);
    }
    char limit[64];
    if (ctl->cfg.user_certs_per_day_max == 0) {
        (void)base_str_copy(limit, sizeof(limit), "no limit");
    } else {
        (void)snprintf(limit, sizeof(limit), "limit %u a day", ctl->cfg.user_certs_per_day_max);
    }
    char created[CLOCK_UTC_LEN];
    char until[CLOCK_UTC_LEN];
    char last[CLOCK_UTC_LEN];
    ctl_time(created, u.created_s);
    ctl_time(until, l.locked_until_s);
    ctl_time(last, l.last_failure_s);
    printf("uri:            %s\npool:           %s\nphone:          %s\nextension:      %s\n"
           "pin:            set (%u digits)\ncreated:        %s\nstate:          %s\n"
           "locked_until:   %s\nfailures:       %u in the current window, %llu in total\n"
           "last_failure:   %s\ncertificates:   %zu\nlast_24h:       %u (%s)\n",
           u.uri, u.pool, u.phone[0] ? u.phone : "-", u.ext[0] ? u.ext : "-", u.pin_len, created,
           lock_state(&l, now), until, l.window_failures, (unsigned long long)l.total_failures,
           last, certs, day, limit);
    return CTL_OK;
}

struct list_ctx {
    int64_t now;
    struct store *st;
};

static int list_fn(void *ctx, const struct store_user *u)
{
    struct list_ctx *lc = ctx;
    struct store_lockout l;
    if (store_lockout_get(lc->st, &l, u->uri) != 0) {
        return -EIO;
    }
    const char *state = l.admin_locked               ? "locked"
                        : l.locked_until_s > lc->now ? "locked-temp"
                                                     : "active";
    printf("%s pool=%s phone=%s ext=%s state=%s\n", u->uri, u->pool, u->phone[0] ? u->phone : "-",
           u->ext[0] ? u->ext : "-", state);
    return 0;
}

static int user_list(struct ctl *ctl, int argc, char **argv)
{
    (void)argv;
    if (argc != 1) {
        return ctl_usage(&ctl_user_cmds[CMD_LIST], "user list takes no arguments");
    }
    int rc = ctl_store(ctl);
    if (rc != 0) {
        return rc;
    }
    struct list_ctx lc = {.now = clock_real_s(), .st = ctl->st};
    if (store_user_foreach(ctl->st, list_fn, &lc) != 0) {
        return ctl_fail("user list: the store cannot be read");
    }
    return CTL_OK;
}

static int user_unlock(struct ctl *ctl, int argc, char **argv)
{
    if (argc != 2) {
        return ctl_usage(&ctl_user_cmds[CMD_UNLOCK], "user unlock takes one URI");
    }
    int rc = ctl_store(ctl);
    if (rc != 0) {
        return rc;
    }
    const struct store_lockout clear = {0};
    rc = store_lockout_put(ctl->st, argv[1], &clear);
    if (rc != 0) {
        return ctl_fail("user unlock %s: %s", argv[1], store_error(rc));
    }
    printf("unlocked %s\n", argv[1]);
    return CTL_OK;
}

static int user_set_pin(struct ctl *ctl, int argc, char **argv)
{
    const struct ctl_cmd *cmd = &ctl_user_cmds[CMD_SET_PIN];
    if (argc != 3 || strcmp(argv[2], "--pin-stdin") != 0) {
        return ctl_usage(cmd, "user set-pin takes one URI and --pin-stdin");
    }
    int rc = ctl_pin_key(ctl);
    if (rc != 0) {
        return rc;
    }
    struct store_user u;
    rc = store_user_get(ctl->st, &u, argv[1]);
    if (rc != 0) {
        return ctl_fail("user set-pin %s: %s", argv[1], store_error(rc));
    }
    char pin[SIGNER_PIN_MAX + 2];
    rc = ctl_read_pin(pin, sizeof(pin));
    if (rc != 0) {
        return rc;
    }
    struct store_user fresh;
    const char *why = ctl_user_make(ctl, &fresh, u.uri, u.pool, u.phone, u.ext, pin);
    OPENSSL_cleanse(pin, sizeof(pin));
    if (why != NULL) {
        return ctl_fail("user set-pin %s: %s", u.uri, why);
    }
    rc = store_user_set_pin(ctl->st, u.uri, fresh.pin_verifier, fresh.pin_len);
    if (rc != 0) {
        return ctl_fail("user set-pin %s: %s", u.uri, store_error(rc));
    }
    printf("new PIN set for %s; lockout cleared\n", u.uri);
    return CTL_OK;
}

static int user_del(struct ctl *ctl, int argc, char **argv)
{
    if (argc != 2) {
        return ctl_usage(&ctl_user_cmds[CMD_DEL], "user del takes one URI");
    }
    int rc = ctl_store(ctl);
    if (rc != 0) {
        return rc;
    }
    rc = store_user_del(ctl->st, argv[1]);
    if (rc != 0) {
        return ctl_fail("user del %s: %s", argv[1], store_error(rc));
    }
    printf("deleted %s (its certificates stay on record)\n", argv[1]);
    return CTL_OK;
}

const struct ctl_cmd ctl_user_cmds[] = {
    [CMD_ADD] = {"user", "add", user_add,
                 "--uri URI --pool NAME [--phone E164] [--ext DIGITS] --pin-stdin",
                 "Adds a user who signs in with the phone number or extension and the PIN read\n"
                 "from the first line of standard input. The PIN must have at least [pin]\n"
                 "min_length digits and must not be a repeated or consecutive run (11111, 12345)\n"
                 "or the user's own extension or phone digits."},
    [CMD_IMPORT] = {"user", "import", user_import, "FILE.csv",
                    "Adds the users of a CSV file (header: uri,phone,ext,pool,pin; '-' reads\n"
                    "standard input) in one transaction: all of them, or none when a row is\n"
                    "wrong (the message names the line). At most 200000 rows a file."},
    [CMD_SHOW] = {"user", "show", user_show, "URI",
                  "Shows a user: pool, phone, extension, lockout state, certificate count and\n"
                  "the certificates of the last 24 hours, which [profile]\n"
                  "max_certs_per_user_per_day limits (never the PIN)."},
    [CMD_LIST] = {"user", "list", user_list, "",
                  "Lists every user, one line each: URI pool phone extension state."},
    [CMD_UNLOCK] = {"user", "unlock", user_unlock, "URI",
                    "Clears a user's PIN lockout and failure counters."},
    [CMD_SET_PIN] = {"user", "set-pin", user_set_pin, "URI --pin-stdin",
                     "Replaces a user's PIN (read from standard input) and clears the lockout."},
    [CMD_DEL] = {"user", "del", user_del, "URI",
                 "Deletes a user. Certificates already issued stay on record."},
    {NULL, NULL, NULL, NULL, NULL},
};
