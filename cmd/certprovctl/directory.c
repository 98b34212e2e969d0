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

int ctl_dir_users_put(struct ctl *ctl, const struct store_user *users, size_t num, bool replace,
                      const char *what)
{
    if (ctl->cfg.directory[0] == '\0' || num == 0) {
        return CTL_OK;
    }
    struct store_dir *d = NULL;
    char key_id[STORE_PIN_KEY_ID_HEX];
    int rc = dir_open(ctl, &d, key_id, what);
    if (rc != 0) {
        return rc;
    }
    char err[512] = "";
    rc = store_dir_users_put(d, users, num, key_id, replace, err, sizeof(err));
    store_dir_close(d);
    if (rc != 0) {
        return ctl_fail("%s: the directory refused: %s", what, err);
    }
    return CTL_OK;
}

int ctl_dir_user_del(struct ctl *ctl, const char *uri, const char *what)
{
    if (ctl->cfg.directory[0] == '\0') {
        return CTL_OK;
    }
    struct store_dir *d = NULL;
    char key_id[STORE_PIN_KEY_ID_HEX];
    int rc = dir_open(ctl, &d, key_id, what);
    if (rc != 0) {
        return rc;
    }
    char err[512] = "";
    rc = store_dir_user_del(d, uri, err, sizeof(err));
    store_dir_close(d);
    if (rc != 0 && rc != -ENOENT) { /* -ENOENT: a user of this replica only */
        return ctl_fail("%s: the directory refused: %s", what, err);
    }
    return CTL_OK;
}

int ctl_dir_lockout_reset(struct ctl *ctl, const char *uri, const char *what)
{
    if (ctl->cfg.directory[0] == '\0') {
        return CTL_OK;
    }
    struct store_dir *d = NULL;
    char key_id[STORE_PIN_KEY_ID_HEX];
    int rc = dir_open(ctl, &d, key_id, what);
    if (rc != 0) {
        return rc;
    }
    char err[512] = "";
    rc = store_dir_lockout_reset(d, uri, err, sizeof(err));
    store_dir_close(d);
    if (rc != 0) {
        return ctl_fail("%s: the directory refused: %s", what, err);
    }
    return CTL_OK;
}

int ctl_dir_user_disable(struct ctl *ctl, const char *uri, int64_t since_s, const char *what)
{
    if (ctl->cfg.directory[0] == '\0') {
        return CTL_OK;
    }
    struct store_dir *d = NULL;
    char key_id[STORE_PIN_KEY_ID_HEX];
    int rc = dir_open(ctl, &d, key_id, what);
    if (rc != 0) {
        return rc;
    }
    char err[512] = "";
    rc = store_dir_user_disable(d, uri, since_s, err, sizeof(err));
    store_dir_close(d);
    if (rc != 0 && rc != -ENOENT) { /* -ENOENT: a user of this replica only */
        return ctl_fail("%s: the directory refused: %s", what, err);
    }
    return CTL_OK;
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
    struct store_dir *d = NULL;
    char key_id[STORE_PIN_KEY_ID_HEX];
    int rc = dir_open(ctl, &d, key_id, what);
    if (rc != 0) {
        return rc;
    }
    char err[512] = "";
    rc = store_dir_key_check(d, key_id, err, sizeof(err));
    rc = rc != 0 ? rc
                 : store_dir_revocations_put(d, serials, num, reason, at_s, lifted, out_changed,
                                             err, sizeof(err));
    store_dir_close(d);
    if (rc != 0) {
        return ctl_fail("%s: the directory refused: %s", what, err);
    }
    return CTL_OK;
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
