/* certprovctl: administration of a certprov appliance's store, CA, users, certificates and
 * outbox. Works on the store directly (LMDB allows it while certprovd runs). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/base.h"
#include "cmd/certprovctl/ctl.h"

#define CTL_DEFAULT_CONFIG "/etc/certprov/certprov.ini"

static const struct ctl_cmd *const groups[] = {ctl_ca_cmds,     ctl_user_cmds,     ctl_cert_cmds,
                                               ctl_revoke_cmds, ctl_outbox_cmds,   ctl_tls_cmds,
                                               ctl_audit_cmds,  ctl_directory_cmds};

static void print_help(FILE *out)
{
    fprintf(out,
            "usage: certprovctl [-c FILE] [--log-format text|json] COMMAND [OPTIONS]\n"
            "\n"
            "Administers a certprov appliance: its CA, users and PINs, issued certificates and\n"
            "the per-pool outbox of certificates waiting to be published.\n"
            "\n"
            "  -c, --config FILE   configuration file (default: $CERTPROV_CONFIG, else\n"
            "                      " CTL_DEFAULT_CONFIG ")\n"
            "      --log-format F  text (default) or json: the format of log lines (warnings\n"
            "                      and errors of the store) on standard error\n"
            "  -h, --help          this text; 'certprovctl COMMAND --help' for one command\n"
            "\n"
            "Commands:\n");
    for (size_t g = 0; g < ARRAY_LEN(groups); g++) {
        for (const struct ctl_cmd *c = groups[g]; c->name != NULL; c++) {
            fprintf(out, "  %s %s %s\n", c->group, c->name, c->usage);
        }
    }
    fprintf(out, "\n"
                 "PINs are read from standard input (--pin-stdin) or the import file, never from\n"
                 "the command line. Serials print as upper-case hex; commands also accept lower\n"
                 "case, leading zeros and colons.\n"
                 "Works beside a running certprovd (LMDB serialises the writers); only 'ca init'\n"
                 "refuses while a certprovd holds the store. A missing PIN key is made anew only\n"
                 "for a store without users. A relative [store] path is taken from the\n"
                 "configuration file's directory. Every change is recorded in the store's\n"
                 "audit.log (certprovctl audit list | verify).\n"
                 "Exit status: 0 success, 1 failure, 2 usage error.\n");
}

static const struct ctl_cmd *find_cmd(const char *group, const char *name, bool *group_found)
{
    *group_found = false;
    for (size_t g = 0; g < ARRAY_LEN(groups); g++) {
        for (const struct ctl_cmd *c = groups[g]; c->name != NULL; c++) {
            if (strcmp(c->group, group) != 0) {
                continue;
            }
            *group_found = true;
            if (name != NULL && strcmp(c->name, name) == 0) {
                return c;
            }
        }
    }
    return NULL;
}

static bool is_help(const char *arg)
{
    return strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0 || strcmp(arg, "help") == 0;
}

static int run(struct ctl *ctl, int argc, char **argv)
{
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (is_help(argv[i])) {
            print_help(stdout);
            return CTL_OK;
        }
        if ((strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) && i + 1 < argc) {
            ctl->config_path = argv[++i];
        } else if (strncmp(argv[i], "--config=", 9) == 0) {
            ctl->config_path = argv[i] + 9;
        } else if (strcmp(argv[i], "--log-format") == 0 && i + 1 < argc) {
            enum log_format f = LOG_FORMAT_TEXT;
            if (log_format_parse(&f, argv[++i]) != 0) {
                fprintf(stderr, "certprovctl: --log-format must be text or json\n");
                return CTL_USAGE;
            }
            log_format_set(f);
        } else {
            fprintf(stderr, "certprovctl: unknown option '%s'\n", argv[i]);
            print_help(stderr);
            return CTL_USAGE;
        }
    }
    if (i >= argc) {
        fprintf(stderr, "certprovctl: no command given\n");
        print_help(stderr);
        return CTL_USAGE;
    }
    bool group_found = false;
    const struct ctl_cmd *cmd = find_cmd(argv[i], i + 1 < argc ? argv[i + 1] : NULL, &group_found);
    if (cmd == NULL) {
        if (group_found && (i + 1 >= argc || is_help(argv[i + 1]))) {
            print_help(i + 1 >= argc ? stderr : stdout);
            return i + 1 >= argc ? CTL_USAGE : CTL_OK;
        }
        fprintf(stderr, "certprovctl: unknown command '%s%s%s'; see certprovctl --help\n", argv[i],
                group_found ? " " : "", group_found ? argv[i + 1] : "");
        return CTL_USAGE;
    }
    int sub_argc = argc - (i + 1);
    char **sub_argv = argv + i + 1;
    for (int j = 1; j < sub_argc; j++) {
        if (is_help(sub_argv[j]) && strcmp(sub_argv[j], "help") != 0) {
            ctl_print_cmd_help(stdout, cmd);
            return CTL_OK;
        }
    }
    if (ctl->config_path == NULL) {
        const char *env = getenv("CERTPROV_CONFIG");
        ctl->config_path = env != NULL && env[0] != '\0' ? env : CTL_DEFAULT_CONFIG;
    }
    char err[SERVICE_CONFIG_ERR_MAX];
    if (service_config_load(&ctl->cfg, err, ctl->config_path) != 0) {
        return ctl_fail("%s", err);
    }
    int rc = cmd->fn(ctl, sub_argc, sub_argv);
    ctl_audit_command(ctl, cmd, sub_argc, sub_argv, rc);
    return rc;
}

int main(int argc, char **argv)
{
    log_setup("certprovctl", LOG_LEVEL_WARN);
    struct ctl *ctl = calloc(1, sizeof(*ctl));
    if (ctl == NULL) {
        return ctl_fail("out of memory");
    }
    int rc = run(ctl, argc, argv);
    store_close(ctl->st);
    signer_pin_key_free(ctl->pin_key);
    free(ctl);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "certprovctl: writing standard output failed: %s\n", strerror(errno));
        return CTL_FAIL;
    }
    return rc;
}
