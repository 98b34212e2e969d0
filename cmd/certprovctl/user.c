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

/* refusal_text says why the store refused `u`, naming the rule it broke and, except for a PIN,
 * the user it clashes with (naming whose PIN it is would tell the administrator that user's
 * PIN). Static storage: certprovctl is single-threaded. */
static const char *refusal_text(int rc, const struct store_user_refusal *ref,
                                const struct store_user *u)
{
    static char text[STORE_URI_MAX + STORE_PHONE_MAX + 160];
    switch (ref->clash) {
    case STORE_CLASH_URI:
        (void)snprintf(text, sizeof(text),
                       "a user with this URI already exists: %s (URIs are compared ignoring "
                       "case)",
                       ref->uri);
        break;
    case STORE_CLASH_PHONE_EXT:
        (void)snprintf(text, sizeof(text),
                       "another user has the same phone number and extension: %s", ref->uri);
        break;
    case STORE_CLASH_EXT:
        (void)snprintf(text, sizeof(text), "another user has the same extension %s: %s", u->ext,
                       ref->uri);
        break;
    case STORE_CLASH_PHONE_PIN:
        (void)snprintf(text, sizeof(text),
                       "another user of the phone number %s has the same PIN; choose another "
                       "(the PIN tells the users of one phone number apart at sign-in)",
                       u->phone);
        break;
    case STORE_CLASH_NONE:
    default:
        return store_error(rc);
    }
    return text;
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
    char pin[CTL_PIN_CAP];
    rc = ctl_read_pin(pin, sizeof(pin));
    if (rc != 0) {
        return rc;
    }
    struct store_user user;
    struct store_user_refusal ref = {0};
    const char *why = ctl_user_make(ctl, &user, uri, pool, phone, ext, pin);
    if (why == NULL) {
        struct ctl_pins pins = {.key = ctl->pin_key, .pins = pin};
        rc = store_user_add_checked(ctl->st, &ref, &user, 1, ctl_pin_same, &pins);
    }
    OPENSSL_cleanse(pin, sizeof(pin));
    if (why != NULL) {
        return ctl_fail("user add %s: %s", uri, why);
    }
    if (rc != 0) {
        return ctl_fail("user add %s: %s", user.uri, refusal_text(rc, &ref, &user));
    }
    if (ctl_dir_users_put(ctl, &user, 1, false, "user add") != CTL_OK) {
        (void)store_user_del(ctl->st, user.uri); /* the directory decides: undone here */
        return CTL_FAIL;
    }
    printf("added %s (pool %s)\n", user.uri, user.pool);
    return CTL_OK;
}

struct import {
    struct store_user *users;
    size_t num;
    size_t *lines; /* line number of each user, for messages */
    char *pins;    /* PIN of each user (CTL_PIN_CAP bytes each; ctl_secret_alloc), for the rule
                    * that users of one phone number have different PINs */
};

/* import_row turns the parsed row of line `lineno` into the next user of `imp`. */
static int import_row(struct ctl *ctl, struct import *imp, const struct service_import_row *row,
                      const char *path, size_t lineno)
{
    if (imp->num == CTL_IMPORT_ROWS_MAX) {
        return ctl_fail("%s: more than %d users; split the file", path, CTL_IMPORT_ROWS_MAX);
    }
    const char *why = ctl_user_make(ctl, &imp->users[imp->num], row->uri, row->pool, row->phone,
                                    row->ext, row->pin);
    if (why != NULL) {
        return ctl_fail("%s:%zu: %s: %s", path, lineno, row->uri, why);
    }
    /* The policy accepted the PIN: at most SIGNER_PIN_MAX digits. */
    int rc = base_str_copy(imp->pins + imp->num * CTL_PIN_CAP, CTL_PIN_CAP, row->pin);
    ASSERT(rc == 0);
    imp->lines[imp->num++] = lineno;
    return CTL_OK;
}

static int import_read(struct ctl *ctl, struct import *imp, FILE *f, const char *path)
{
    char line[SERVICE_IMPORT_LINE_MAX];
    size_t lineno = 0;
    int rc = CTL_OK;
    while (rc == CTL_OK && fgets(line, sizeof(line), f) != NULL) {
        lineno++;
        struct service_import_row row;
        int prc = 0;
        if (strchr(line, '\n') == NULL && !feof(f)) {
            rc = ctl_fail("%s:%zu: line longer than %d bytes", path, lineno,
                          SERVICE_IMPORT_LINE_MAX);
        } else if (lineno == 1) {
            if (service_import_header_check(line) != 0) {
                rc = ctl_fail("%s:1: the header must be exactly: " SERVICE_IMPORT_HEADER, path);
            }
        } else if ((prc = service_import_row_parse(&row, line)) == -EBADMSG) {
            rc = ctl_fail("%s:%zu: expected 5 comma-separated fields without quotes", path, lineno);
        } else if (prc == 0) {
            rc = import_row(ctl, imp, &row, path, lineno);
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
        .pins = ctl_secret_alloc((size_t)CTL_IMPORT_ROWS_MAX * CTL_PIN_CAP),
    };
    if (imp.users == NULL || imp.lines == NULL || imp.pins == NULL) {
        rc = ctl_fail("out of memory");
    } else {
        rc = import_read(ctl, &imp, f, path);
    }
    if (f != stdin) {
        fclose(f);
    }
    if (rc == CTL_OK && imp.num > 0) {
        struct store_user_refusal ref = {0};
        struct ctl_pins pins = {.key = ctl->pin_key, .pins = imp.pins};
        int src = store_user_add_checked(ctl->st, &ref, imp.users, imp.num, ctl_pin_same, &pins);
        if (src != 0 && ref.refused) {
            const struct store_user *u = &imp.users[ref.index];
            rc = ctl_fail("%s:%zu: %s: %s; nothing was imported", path, imp.lines[ref.index],
                          u->uri, refusal_text(src, &ref, u));
        } else if (src != 0) {
            rc = ctl_fail("%s: %s; nothing was imported", path, store_error(src));
        } else if (ctl_dir_users_put(ctl, imp.users, imp.num, false, "user import") != CTL_OK) {
            for (size_t i = 0; i < imp.num; i++) { /* the directory refused: undone here */
                (void)store_user_del(ctl->st, imp.users[i].uri);
            }
            rc = ctl_fail("%s: nothing was imported", path);
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
    ctl_secret_free(imp.pins, (size_t)CTL_IMPORT_ROWS_MAX * CTL_PIN_CAP);
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

/* The user's certificates: how many, and the newest (the last successful enrollment, read from
 * the by-user index: a success writes nothing else). */
struct cert_scan {
    size_t num;
    struct store_cert_meta last;
};

static int cert_count_fn(void *ctx, const struct store_cert_meta *meta, const uint8_t *der,
                         size_t der_len)
{
    (void)der;
    (void)der_len;
    struct cert_scan *cs = ctx;
    cs->num++;
    cs->last = *meta; /* oldest first: the last one called is the newest */
    return 0;
}

static void show_json(const struct store_user *u, const struct store_lockout *l, int64_t now,
                      const struct cert_scan *cs, uint32_t day, uint32_t day_max)
{
    char serial[2 * STORE_SERIAL_LEN + 1];
    const char *code = NULL;
    const char *reason = NULL;
    ctl_refusal_names(l, &code, &reason);
    putchar('{');
    ctl_json_kv(true, "uri", u->uri);
    ctl_json_kv(false, "pool", u->pool);
    ctl_json_kv(false, "phone", u->phone);
    ctl_json_kv(false, "extension", u->ext);
    printf(",\"pin_digits\":%u", u->pin_len);
    ctl_json_time("created", u->created_s);
    ctl_json_kv(false, "state",
                l->admin_locked           ? "locked"
                : l->locked_until_s > now ? "locked-temp"
                                          : "active");
    ctl_json_time("locked_until", l->locked_until_s);
    printf(",\"window_failures\":%u", l->window_failures);
    ctl_json_time("window_start", l->window_start_s);
    printf(",\"total_failures\":%llu", (unsigned long long)l->total_failures);
    ctl_json_time("last_failure", l->last_failure_s);
    printf(",\"certificates\":%zu,\"last_24h\":%u,\"limit_per_day\":%u", cs->num, day, day_max);
    fputs(",\"last_success\":", stdout);
    if (cs->num == 0) {
        fputs("null", stdout);
    } else {
        base_serial_hex(serial, sizeof(serial), cs->last.serial, sizeof(cs->last.serial));
        putchar('{');
        ctl_json_kv(true, "serial", serial);
        ctl_json_kv(false, "device_id", cs->last.device_id);
        ctl_json_time("time", cs->last.issued_at_s);
        putchar('}');
    }
    fputs(",\"last_refusal\":", stdout);
    if (l->last_refusal_s == 0) {
        fputs("null", stdout);
    } else {
        putchar('{');
        ctl_json_kv(true, "code", code);
        ctl_json_kv(false, "reason", reason);
        ctl_json_kv(false, "client", l->last_refusal_client);
        ctl_json_time("time", l->last_refusal_s);
        putchar('}');
    }
    fputs("}\n", stdout);
}

static int user_show(struct ctl *ctl, int argc, char **argv)
{
    bool json = false;
    if (argc == 3 && strcmp(argv[2], "--json") == 0) {
        json = true;
        argc--;
    } else if (argc == 3 && strcmp(argv[1], "--json") == 0) {
        json = true;
        argv[1] = argv[2];
        argc--;
    }
    if (argc != 2) {
        return ctl_usage(&ctl_user_cmds[CMD_SHOW], "user show takes one URI");
    }
    int rc = ctl_store(ctl);
    if (rc != 0) {
        return rc;
    }
    struct store_user u;
    rc = ctl_user_get(ctl, &u, argv[1]);
    if (rc != 0) {
        return ctl_fail("user show %s: %s", argv[1], store_error(rc));
    }
    struct store_lockout l;
    struct cert_scan cs = {0};
    uint32_t day = 0; /* certificates of the last 24 hours, what the limit counts */
    int64_t day_last_s = 0;
    int64_t now = clock_real_s();
    if (store_lockout_get(ctl->st, &l, u.uri) != 0 ||
        store_cert_foreach_by_uri(ctl->st, u.uri, cert_count_fn, &cs) != 0 ||
        store_cert_recent_by_uri(ctl->st, u.uri, now - 86400 + 1, UINT32_MAX, &day, &day_last_s) !=
            0) {
        return ctl_fail("user show %s: the store cannot be read", u.uri);
    }
    if (json) {
        show_json(&u, &l, now, &cs, day, ctl->cfg.user_certs_per_day_max);
        return CTL_OK;
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
           last, cs.num, day, limit);
    if (cs.num == 0) {
        printf("last_success:   -\n");
    } else {
        char when[CLOCK_UTC_LEN];
        char serial[2 * STORE_SERIAL_LEN + 1];
        char device[3 * STORE_DEVICE_ID_MAX + 1];
        ctl_time(when, cs.last.issued_at_s);
        base_serial_hex(serial, sizeof(serial), cs.last.serial, sizeof(cs.last.serial));
        printf("last_success:   %s serial=%s device_id=%s\n", when, serial,
               log_value(device, sizeof(device), cs.last.device_id));
    }
    if (l.last_refusal_s == 0) {
        printf("last_refusal:   -\n");
    } else {
        char when[CLOCK_UTC_LEN];
        const char *code = NULL;
        const char *reason = NULL;
        ctl_time(when, l.last_refusal_s);
        ctl_refusal_names(&l, &code, &reason);
        printf("last_refusal:   %s code=%s reason=%s client=%s\n", when, code, reason,
               l.last_refusal_client[0] != '\0' ? l.last_refusal_client : "-");
    }
    return CTL_OK;
}

struct list_ctx {
    int64_t now;
    struct store *st;
    bool json;
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
    if (lc->json) {
        putchar('{');
        ctl_json_kv(true, "uri", u->uri);
        ctl_json_kv(false, "pool", u->pool);
        ctl_json_kv(false, "phone", u->phone);
        ctl_json_kv(false, "extension", u->ext);
        ctl_json_kv(false, "state", state);
        fputs("}\n", stdout);
        return 0;
    }
    printf("%s pool=%s phone=%s ext=%s state=%s\n", u->uri, u->pool, u->phone[0] ? u->phone : "-",
           u->ext[0] ? u->ext : "-", state);
    return 0;
}

static int user_list(struct ctl *ctl, int argc, char **argv)
{
    bool json = argc == 2 && strcmp(argv[1], "--json") == 0;
    if (argc != 1 && !json) {
        return ctl_usage(&ctl_user_cmds[CMD_LIST], "user list takes no arguments but --json");
    }
    int rc = ctl_store(ctl);
    if (rc != 0) {
        return rc;
    }
    struct list_ctx lc = {.now = clock_real_s(), .st = ctl->st, .json = json};
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
    struct store_user u;
    rc = ctl_user_get(ctl, &u, argv[1]);
    struct store_lockout l = {0};
    if (rc == 0) {
        rc = store_lockout_get(ctl->st, &l, u.uri);
    }
    if (rc == 0) {
        /* the counters go; the last refusal stays, for the next "why did it fail" */
        struct store_lockout clear = {.last_refusal_s = l.last_refusal_s,
                                      .last_refusal_code = l.last_refusal_code,
                                      .last_refusal_reason = l.last_refusal_reason};
        memcpy(clear.last_refusal_client, l.last_refusal_client, sizeof(clear.last_refusal_client));
        rc = store_lockout_put(ctl->st, u.uri, &clear);
    }
    if (rc != 0) {
        return ctl_fail("user unlock %s: %s", argv[1], store_error(rc));
    }
    if (ctl_dir_lockout_reset(ctl, u.uri, "user unlock") != CTL_OK) {
        return CTL_FAIL;
    }
    printf("unlocked %s\n", u.uri);
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
    rc = ctl_user_get(ctl, &u, argv[1]);
    if (rc != 0) {
        return ctl_fail("user set-pin %s: %s", argv[1], store_error(rc));
    }
    char pin[CTL_PIN_CAP];
    rc = ctl_read_pin(pin, sizeof(pin));
    if (rc != 0) {
        return rc;
    }
    struct store_user fresh;
    struct store_user_refusal ref = {0};
    const char *why = ctl_user_make(ctl, &fresh, u.uri, u.pool, u.phone, u.ext, pin);
    if (why == NULL) {
        /* The verifier is bound to the URI as stored (a user from before URIs were canonical
         * keeps its spelling). */
        signer_pin_verifier(ctl->pin_key, fresh.pin_verifier, u.uri, pin);
        struct ctl_pins pins = {.key = ctl->pin_key, .pins = pin};
        rc = store_user_set_pin_checked(ctl->st, &ref, u.uri, fresh.pin_verifier, fresh.pin_len,
                                        ctl_pin_same, &pins);
    }
    OPENSSL_cleanse(pin, sizeof(pin));
    if (why != NULL) {
        return ctl_fail("user set-pin %s: %s", u.uri, why);
    }
    if (rc != 0) {
        return ctl_fail("user set-pin %s: %s", u.uri, refusal_text(rc, &ref, &u));
    }
    struct store_user next = u;
    memcpy(next.pin_verifier, fresh.pin_verifier, sizeof(next.pin_verifier));
    next.pin_len = fresh.pin_len;
    if (ctl_dir_users_put(ctl, &next, 1, true, "user set-pin") != CTL_OK) {
        (void)store_user_set_pin(ctl->st, u.uri, u.pin_verifier, u.pin_len); /* the old PIN */
        return CTL_FAIL;
    }
    printf("new PIN set for %s; lockout cleared\n", u.uri);
    return CTL_OK;
}

static int user_del(struct ctl *ctl, int argc, char **argv)
{
    bool keep = argc == 3 && strcmp(argv[2], "--keep-certs") == 0;
    if (argc != 2 && !keep) {
        return ctl_usage(&ctl_user_cmds[CMD_DEL], "user del takes one URI [--keep-certs]");
    }
    int rc = ctl_store(ctl);
    if (rc != 0) {
        return rc;
    }
    struct store_user u;
    rc = ctl_user_get(ctl, &u, argv[1]);
    if (rc != 0) {
        return ctl_fail("user del %s: %s", argv[1], store_error(rc));
    }
    /* Revoked before the user goes: a failure leaves the user, and the command can be rerun. */
    if (!keep && ctl_revoke_user_certs(ctl, u.uri, STORE_REASON_CESSATION_OF_OPERATION,
                                       "user del") != CTL_OK) {
        return CTL_FAIL;
    }
    if (ctl_dir_user_del(ctl, u.uri, "user del") != CTL_OK) {
        return CTL_FAIL;
    }
    rc = store_user_del(ctl->st, u.uri);
    if (rc == -ENOENT && ctl->cfg.directory[0] != '\0') {
        rc = 0; /* the daemon's directory thread applied the deletion first */
    }
    if (rc == 0) {
        rc = store_user_enable(ctl->st, u.uri); /* a later user of that URI starts enabled */
        rc = rc == -ENOENT ? 0 : rc;
    }
    if (rc != 0) {
        return ctl_fail("user del %s: %s", argv[1], store_error(rc));
    }
    printf("deleted %s (%s)\n", u.uri,
           keep ? "its certificates stay valid" : "its certificates are revoked");
    return CTL_OK;
}

const struct ctl_cmd ctl_user_cmds[] = {
    [CMD_ADD] = {"user", "add", user_add,
                 "--uri URI --pool NAME [--phone NUMBER] [--ext DIGITS] --pin-stdin",
                 "Adds a user who signs in with the phone number or extension and the PIN read\n"
                 "from the first line of standard input. The phone number is stored in E.164:\n"
                 "+14255550100, tel:+14255550100 and +1 (425) 555-0100 are one number; a\n"
                 "number without + needs [pin] default_country_code, and is then national\n"
                 "(4255550100, 030 1234567) or already starts with that code (14255550100).\n"
                 "The extension is kept as given. The sign-in reads phone numbers the same\n"
                 "way. The PIN must have at least [pin] min_length digits and must not be a\n"
                 "repeated or consecutive run (11111, 12345) or the user's own extension or\n"
                 "phone digits. The scheme and domain of URI are stored in lower case. Refused\n"
                 "(exit 1, the message names the clash): a URI that differs from a user's only\n"
                 "in case, a user's extension, or a user's phone number with that user's PIN."},
    [CMD_IMPORT] = {"user", "import", user_import, "FILE.csv",
                    "Adds the users of a CSV file (header: uri,phone,ext,pool,pin; '-' reads\n"
                    "standard input) in one transaction: all of them, or none when a row is\n"
                    "wrong (the message names the line). At most 200000 rows a file. The rules\n"
                    "of user add apply between the rows too (phone numbers are stored in E.164\n"
                    "as by user add). A UTF-8 byte order mark before the\n"
                    "header (spreadsheets write one) is skipped; lines may end in CRLF."},
    [CMD_SHOW] = {"user", "show", user_show, "URI [--json]",
                  "Shows a user: pool, phone, extension, lockout state, certificate count and\n"
                  "the certificates of the last 24 hours, which [profile]\n"
                  "max_certs_per_user_per_day limits (never the PIN); the last success (time,\n"
                  "serial, device id: the newest certificate) and the last refused enrollment\n"
                  "(time, Code, reason token of README Reasons, client address). --json: one\n"
                  "JSON object."},
    [CMD_LIST] = {"user", "list", user_list, "[--json]",
                  "Lists every user, one line each: URI pool phone extension state. --json: one\n"
                  "JSON object a line."},
    [CMD_UNLOCK] = {"user", "unlock", user_unlock, "URI",
                    "Clears a user's PIN lockout and failure counters."},
    [CMD_SET_PIN] = {"user", "set-pin", user_set_pin, "URI --pin-stdin",
                     "Replaces a user's PIN (read from standard input) and clears the lockout.\n"
                     "Refused (exit 1) when another user of the same phone number has that PIN."},
    [CMD_DEL] = {"user", "del", user_del, "URI [--keep-certs]",
                 "Deletes a user. Its unexpired certificates are revoked first (reason\n"
                 "cessationOfOperation) unless --keep-certs; they all stay on record."},
    {NULL, NULL, NULL, NULL, NULL},
};
