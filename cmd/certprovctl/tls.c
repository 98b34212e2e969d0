/* certprovctl tls ticket-key rotate */
#include <stdio.h>
#include <string.h>

#include "base/base.h"
#include "cmd/certprovctl/ctl.h"
#include "ioring/ioring.h"

static int ticket_key(struct ctl *ctl, int argc, char **argv)
{
    if (argc != 2 || strcmp(argv[1], "rotate") != 0) {
        return ctl_usage(&ctl_tls_cmds[0], "tls ticket-key takes one word: rotate");
    }
    const char *path = ctl->cfg.ticket_keys;
    if (path[0] == '\0') {
        return ctl_fail("tls ticket-key rotate: %s sets no [server] ticket_keys file (without "
                        "one, certprovd makes and rotates its keys in memory)",
                        ctl->config_path);
    }
    char err[IORING_TLS_ERR_MAX];
    if (ioring_tls_ticket_file_rotate(path, err) != 0) {
        return ctl_fail("tls ticket-key rotate: %s", err);
    }
    printf("rotated the TLS ticket keys in %s: send SIGHUP to every certprovd that reads it "
           "(systemctl reload certprovd)\n",
           path);
    return CTL_OK;
}

const struct ctl_cmd ctl_tls_cmds[] = {
    {"tls", "ticket-key", ticket_key, "rotate",
     "Writes a new current session-ticket key into the [server] ticket_keys file (0600,\n"
     "atomically; created if missing) and keeps the old current one as the previous, which\n"
     "certprovd still accepts: a ticket lives at most two rotations. Every appliance behind\n"
     "one balancer reads the same file: copy it to each, then SIGHUP them. Rotate at least\n"
     "every ticket_key_rotate_h hours (e.g. from cron)."},
    {NULL, NULL, NULL, NULL, NULL},
};
