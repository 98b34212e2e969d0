/* certprovctl outbox list | outbox retry | pool status */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "base/base.h"
#include "cmd/certprovctl/ctl.h"

enum { CMD_LIST, CMD_RETRY, CMD_STATUS };

/* take_json removes a "--json" argument (any place), telling whether there was one. */
static bool take_json(int *argc, char **argv)
{
    for (int i = 1; i < *argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            memmove(&argv[i], &argv[i + 1], (size_t)(*argc - i - 1) * sizeof(*argv));
            (*argc)--;
            return true;
        }
    }
    return false;
}

/* parse_pool reads an optional "--pool NAME" and checks NAME is configured. */
static int parse_pool(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv,
                      const char **out)
{
    *out = NULL;
    if (argc == 1) {
        return CTL_OK;
    }
    if (argc != 3 || strcmp(argv[1], "--pool") != 0) {
        return ctl_usage(cmd, "the only option is --pool NAME");
    }
    if (service_config_find_pool(&ctl->cfg, argv[2]) == NULL) {
        return ctl_fail("pool '%s' is not configured in %s", argv[2], ctl->config_path);
    }
    *out = argv[2];
    return CTL_OK;
}

static int entry_fn(void *ctx, const struct store_outbox_entry *e)
{
    bool json = ctx != NULL;
    char serial[2 * SIGNER_SERIAL_LEN + 1];
    char next[CLOCK_UTC_LEN];
    signer_serial_format(serial, e->serial);
    if (e->next_attempt_ms == 0) {
        (void)base_str_copy(next, sizeof(next), "now");
    } else {
        clock_format_utc(next, e->next_attempt_ms / 1000);
    }
    if (json) {
        putchar('{');
        ctl_json_kv(true, "pool", e->pool);
        ctl_json_kv(false, "serial", serial);
        printf(",\"attempts\":%u", e->attempts);
        ctl_json_kv(false, "next_attempt", next);
        ctl_json_kv(false, "state", e->parked ? "parked" : "waiting");
        ctl_json_kv(false, "last_error", e->last_error);
        fputs("}\n", stdout);
        return 0;
    }
    printf("pool=%s serial=%s attempts=%u next_attempt=%s state=%s last_error=\"%s\"\n", e->pool,
           serial, e->attempts, next, e->parked ? "parked" : "waiting", e->last_error);
    return 0;
}

static int outbox_list(struct ctl *ctl, int argc, char **argv)
{
    const char *pool = NULL;
    static bool json_mark;
    bool json = take_json(&argc, argv);
    int rc = parse_pool(ctl, &ctl_outbox_cmds[CMD_LIST], argc, argv, &pool);
    if (rc == CTL_OK) {
        rc = ctl_store(ctl);
    }
    if (rc != CTL_OK) {
        return rc;
    }
    if (store_outbox_foreach(ctl->st, pool, entry_fn, json ? &json_mark : NULL) != 0) {
        return ctl_fail("outbox list: the store cannot be read");
    }
    return CTL_OK;
}

static int outbox_retry(struct ctl *ctl, int argc, char **argv)
{
    const char *pool = NULL;
    int rc = parse_pool(ctl, &ctl_outbox_cmds[CMD_RETRY], argc, argv, &pool);
    if (rc == CTL_OK) {
        rc = ctl_store(ctl);
    }
    if (rc != CTL_OK) {
        return rc;
    }
    uint64_t num = 0;
    rc = store_outbox_retry(ctl->st, pool, &num);
    if (rc != 0) {
        return ctl_fail("outbox retry: %s", strerror(-rc));
    }
    printf("%llu outbox entries%s%s are due now\n", (unsigned long long)num, pool ? " of " : "",
           pool ? pool : "");
    return CTL_OK;
}

static int pool_status(struct ctl *ctl, int argc, char **argv)
{
    bool json = take_json(&argc, argv);
    if (argc != 1) {
        return ctl_usage(&ctl_outbox_cmds[CMD_STATUS], "pool status takes no arguments but --json");
    }
    int rc = ctl_store(ctl);
    if (rc != CTL_OK) {
        return rc;
    }
    int64_t now_ms = clock_real_ms();
    for (size_t i = 0; i < ctl->cfg.num_pools; i++) {
        const struct service_pool_config *p = &ctl->cfg.pools[i];
        uint64_t depth = 0;
        int64_t oldest = 0;
        if (store_outbox_depth(ctl->st, p->name, &depth, &oldest) != 0) {
            return ctl_fail("pool status: the store cannot be read");
        }
        struct store_pool_state ps = {0};
        bool have = store_pool_state_get(ctl->st, &ps, p->name) == 0 && ps.since_ms != 0;
        char since[CLOCK_UTC_LEN] = "-";
        char ok[CLOCK_UTC_LEN] = "-";
        char bad[CLOCK_UTC_LEN] = "-";
        if (have) {
            clock_format_utc(since, ps.since_ms / 1000);
        }
        if (ps.last_success_ms != 0) {
            clock_format_utc(ok, ps.last_success_ms / 1000);
        }
        if (ps.last_error_ms != 0) {
            clock_format_utc(bad, ps.last_error_ms / 1000);
        }
        /* The connection string may hold a password: show only its kind. */
        const char *kind = strcmp(p->store, "embedded") == 0 ? "embedded" : "postgresql";
        long long age_s = oldest == 0 ? 0 : (now_ms - oldest) / 1000;
        const char *state = !have ? "unknown" : (ps.up ? "up" : "down");
        if (json) {
            putchar('{');
            ctl_json_kv(true, "pool", p->name);
            ctl_json_kv(false, "store", kind);
            printf(",\"outbox_depth\":%llu,\"oldest_age_s\":%lld", (unsigned long long)depth,
                   age_s);
            ctl_json_kv(false, "state", state);
            ctl_json_time("since", have ? ps.since_ms / 1000 : 0);
            ctl_json_time("last_success", ps.last_success_ms / 1000);
            ctl_json_time("last_error_at", ps.last_error_ms / 1000);
            ctl_json_kv(false, "last_error", ps.last_error);
            fputs("}\n", stdout);
            continue;
        }
        printf("pool=%s store=%s outbox_depth=%llu oldest_age_s=%lld state=%s since=%s "
               "last_success=%s last_error_at=%s last_error=\"%s\"\n",
               p->name, strcmp(p->store, "embedded") == 0 ? "embedded" : "postgresql",
               (unsigned long long)depth, (long long)(oldest == 0 ? 0 : (now_ms - oldest) / 1000),
               !have ? "unknown" : (ps.up ? "up" : "down"), since, ok, bad, ps.last_error);
    }
    return CTL_OK;
}

const struct ctl_cmd ctl_outbox_cmds[] = {
    [CMD_LIST] = {"outbox", "list", outbox_list, "[--pool NAME] [--json]",
                  "Prints one line per certificate waiting to be published (or parked after a\n"
                  "permanent error): pool, serial, attempts, next attempt, state, last error.\n"
                  "An empty outbox prints nothing. --json: one JSON object a line."},
    [CMD_RETRY] = {"outbox", "retry", outbox_retry, "[--pool NAME]",
                   "Makes every waiting entry due now and re-queues parked entries."},
    [CMD_STATUS] = {"pool", "status", pool_status, "[--json]",
                    "Shows each configured pool: store kind, state (up/down, as the daemon last\n"
                    "recorded it) and since when, outbox depth, oldest entry age, last success,\n"
                    "last error. --json: one JSON object a line."},
    {NULL, NULL, NULL, NULL, NULL},
};
