/* certprovctl directory init | status, and the writes of the user commands to the fleet
 * directory when [directory] store is set (README, The fleet directory). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "base/base.h"
#include "cmd/certprovctl/ctl.h"

enum { CMD_INIT, CMD_STATUS };

/* dir_open connects to [directory] store after loading the PIN key (its id goes with every
 * write). Returns 0 or CTL_FAIL after saying why. */
static int dir_open(struct ctl *ctl, struct store_dir **out, char key_id[STORE_PIN_KEY_ID_HEX],
                    const char *what)
{
    if (ctl->cfg.directory[0] == '\0') {
        return ctl_fail("%s: %s has no [directory] store = postgresql://...", what, ctl->cfg.path);
    }
    int rc = ctl_pin_key(ctl);
    if (rc != 0) {
        return rc;
    }
    signer_pin_key_id(ctl->pin_key, key_id);
    char err[512] = "";
    rc = store_dir_connect(out, ctl->cfg.directory, err, sizeof(err));
    if (rc != 0) {
        return ctl_fail("%s: cannot reach the directory: %s", what, err);
    }
    return 0;
}

static int dir_init(struct ctl *ctl, int argc, char **argv)
{
    (void)argv;
    if (argc != 1) {
        return ctl_usage(&ctl_directory_cmds[CMD_INIT], "directory init takes no argument");
    }
    struct store_dir *d = NULL;
    char key_id[STORE_PIN_KEY_ID_HEX];
    int rc = dir_open(ctl, &d, key_id, "directory init");
    if (rc != 0) {
        return rc;
    }
    char err[512] = "";
    rc = store_dir_init(d, key_id, err, sizeof(err));
    store_dir_close(d);
    if (rc != 0) {
        return ctl_fail("directory init: %s", err);
    }
    ctl_audit_note(ctl, "pin_key_id=%s", key_id);
    printf("directory ready (PIN key id %s)\n", key_id);
    return CTL_OK;
}

static int dir_status(struct ctl *ctl, int argc, char **argv)
{
    (void)argv;
    if (argc != 1) {
        return ctl_usage(&ctl_directory_cmds[CMD_STATUS], "directory status takes no argument");
    }
    struct store_dir *d = NULL;
    char key_id[STORE_PIN_KEY_ID_HEX];
    int rc = dir_open(ctl, &d, key_id, "directory status");
    if (rc != 0) {
        return rc;
    }
    char err[512] = "";
    uint64_t users = 0;
    uint64_t seq = 0;
    rc = store_dir_key_check(d, key_id, err, sizeof(err));
    rc = rc != 0 ? rc : store_dir_status(d, &users, &seq, err, sizeof(err));
    store_dir_close(d);
    if (rc != 0) {
        return ctl_fail("directory status: %s", err);
    }
    printf("users: %llu\nseq: %llu\npin_key_id: %s (this appliance's)\n", (unsigned long long)users,
           (unsigned long long)seq, key_id);
    return CTL_OK;
}

/* One write to the directory: what it needs beside the connection and the PIN key id. */
struct dir_write {
    int (*fn)(struct store_dir *d, const char *key_id, const struct dir_write *w, char *err,
              size_t cap);
    const struct store_user *users;
    size_t num;
    bool replace;
    const char *uri;
    int64_t time_s;
    const uint8_t (*serials)[STORE_SERIAL_LEN];
    uint8_t reason;
    bool lifted;
    size_t *out_changed;
    bool absent_ok;        /* -ENOENT is not a refusal: a user of this replica only */
    const char *appliance; /* this appliance's name ([server] name) */
};

/* dir_write connects, runs w->fn and closes: the one place where a write's connection, PIN key
 * and refusal are handled. Returns CTL_OK or CTL_FAIL after saying why. */
static int dir_write(struct ctl *ctl, const struct dir_write *w, const char *what)
{
    struct store_dir *d = NULL;
    char key_id[STORE_PIN_KEY_ID_HEX];
    int rc = dir_open(ctl, &d, key_id, what);
    if (rc != 0) {
        return rc;
    }
    char err[512] = "";
    rc = w->fn(d, key_id, w, err, sizeof(err));
    store_dir_close(d);
    if (rc != 0 && !(w->absent_ok && rc == -ENOENT)) {
        return ctl_fail("%s: the directory refused: %s", what, err);
    }
    return CTL_OK;
}

static int users_put(struct store_dir *d, const char *key_id, const struct dir_write *w, char *err,
                     size_t cap)
{
    return store_dir_users_put(d, w->users, w->num, key_id, w->replace, err, cap);
}

int ctl_dir_users_put(struct ctl *ctl, const struct store_user *users, size_t num, bool replace,
                      const char *what)
{
    if (ctl->cfg.directory[0] == '\0' || num == 0) {
        return CTL_OK;
    }
    struct dir_write w = {.fn = users_put, .users = users, .num = num, .replace = replace};
    return dir_write(ctl, &w, what);
}

static int user_del(struct store_dir *d, const char *key_id, const struct dir_write *w, char *err,
                    size_t cap)
{
    (void)key_id;
    return store_dir_user_del(d, w->uri, err, cap);
}

int ctl_dir_user_del(struct ctl *ctl, const char *uri, const char *what)
{
    if (ctl->cfg.directory[0] == '\0') {
        return CTL_OK;
    }
    struct dir_write w = {.fn = user_del, .uri = uri, .absent_ok = true};
    return dir_write(ctl, &w, what);
}

static int lockout_reset(struct store_dir *d, const char *key_id, const struct dir_write *w,
                         char *err, size_t cap)
{
    (void)key_id;
    return store_dir_lockout_reset(d, w->uri, w->appliance, err, cap);
}

int ctl_dir_lockout_reset(struct ctl *ctl, const char *uri, const char *what)
{
    if (ctl->cfg.directory[0] == '\0') {
        return CTL_OK;
    }
    struct dir_write w = {.fn = lockout_reset, .uri = uri, .appliance = ctl->cfg.name};
    return dir_write(ctl, &w, what);
}

static int user_disable(struct store_dir *d, const char *key_id, const struct dir_write *w,
                        char *err, size_t cap)
{
    (void)key_id;
    return store_dir_user_disable(d, w->uri, w->time_s, err, cap);
}

int ctl_dir_user_disable(struct ctl *ctl, const char *uri, int64_t since_s, const char *what)
{
    if (ctl->cfg.directory[0] == '\0') {
        return CTL_OK;
    }
    struct dir_write w = {.fn = user_disable, .uri = uri, .time_s = since_s, .absent_ok = true};
    return dir_write(ctl, &w, what);
}

static int revocations_put(struct store_dir *d, const char *key_id, const struct dir_write *w,
                           char *err, size_t cap)
{
    int rc = store_dir_key_check(d, key_id, err, cap);
    return rc != 0 ? rc
                   : store_dir_revocations_put(d, w->serials, w->num, w->reason, w->time_s,
                                               w->lifted, w->out_changed, err, cap);
}

int ctl_dir_revocations_put(struct ctl *ctl, const uint8_t (*serials)[STORE_SERIAL_LEN], size_t num,
                            uint8_t reason, int64_t at_s, bool lifted, size_t *out_changed,
                            const char *what)
{
    if (out_changed != NULL) {
        *out_changed = 0;
    }
    if (ctl->cfg.directory[0] == '\0' || num == 0) {
        return CTL_OK;
    }
    struct dir_write w = {.fn = revocations_put,
                          .serials = serials,
                          .num = num,
                          .reason = reason,
                          .time_s = at_s,
                          .lifted = lifted,
                          .out_changed = out_changed};
    return dir_write(ctl, &w, what);
}

static int user_revoke(struct store_dir *d, const char *key_id, const struct dir_write *w,
                       char *err, size_t cap)
{
    int rc = store_dir_key_check(d, key_id, err, cap);
    return rc != 0 ? rc
                   : store_dir_user_revoke(d, w->uri, w->appliance, w->reason, w->time_s,
                                           w->out_changed, err, cap);
}

int ctl_dir_user_revoke(struct ctl *ctl, const char *uri, uint8_t reason, int64_t at_s,
                        size_t *out_changed, const char *what)
{
    if (out_changed != NULL) {
        *out_changed = 0;
    }
    if (ctl->cfg.directory[0] == '\0') {
        return CTL_OK;
    }
    struct dir_write w = {.fn = user_revoke,
                          .uri = uri,
                          .appliance = ctl->cfg.name,
                          .reason = reason,
                          .time_s = at_s,
                          .out_changed = out_changed};
    return dir_write(ctl, &w, what);
}

const struct ctl_cmd ctl_directory_cmds[] = {
    [CMD_INIT] = {"directory", "init", dir_init, "",
                  "Creates the fleet directory's tables in [directory] store (PostgreSQL) when\n"
                  "missing and records this store's PIN key id as the fleet's. Idempotent;\n"
                  "refused (exit 1) when the directory holds another PIN key's id."},
    [CMD_STATUS] = {"directory", "status", dir_status, "",
                    "Shows the directory's users and its last change seq, and checks that its\n"
                    "PIN key id is this store's."},
    {NULL, NULL, NULL, NULL, NULL},
};
