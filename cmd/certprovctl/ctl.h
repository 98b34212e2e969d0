/* certprovctl: the administrator's tool. Shared context and helpers of its commands. */
#ifndef CERTPROV_CTL_H
#define CERTPROV_CTL_H

#include <stdbool.h>
#include <stdio.h>

#include "service/service.h"

/* Exit codes (README, certprovctl). */
#define CTL_OK 0
#define CTL_FAIL 1
#define CTL_USAGE 2

struct ctl {
    const char *config_path;
    struct service_config cfg;
    struct store *st;
    struct signer_pin_key *pin_key;
    char audit_detail[SERVICE_AUDIT_FIELD_MAX]; /* ctl_audit_note: the audit record's detail */
};

/* A command: `argv[0]` is the command's last word ("add" of "user add"). */
typedef int (*ctl_cmd_fn)(struct ctl *ctl, int argc, char **argv);

struct ctl_cmd {
    const char *group; /* "user" */
    const char *name;  /* "add" */
    ctl_cmd_fn fn;
    const char *usage; /* options after "certprovctl -c FILE user add" */
    const char *help;  /* one paragraph */
};

extern const struct ctl_cmd ctl_ca_cmds[];
extern const struct ctl_cmd ctl_user_cmds[];
extern const struct ctl_cmd ctl_cert_cmds[];
extern const struct ctl_cmd ctl_outbox_cmds[];
extern const struct ctl_cmd ctl_tls_cmds[];
extern const struct ctl_cmd ctl_audit_cmds[];
extern const struct ctl_cmd ctl_directory_cmds[];

/* ctl_dir_users_put writes users[0..num) to the fleet directory when [directory] store is set
 * (store_dir_users_put; `replace` for a new PIN); `what` names the command in a failure. Returns
 * CTL_OK (also without a directory) or CTL_FAIL after saying why. */
int ctl_dir_users_put(struct ctl *ctl, const struct store_user *users, size_t num, bool replace,
                      const char *what);

/* ctl_dir_user_del deletes `uri` from the fleet directory when [directory] store is set (a URI
 * the directory does not hold is no failure). Returns CTL_OK or CTL_FAIL after saying why. */
int ctl_dir_user_del(struct ctl *ctl, const char *uri, const char *what);

/* ctl_dir_lockout_reset clears `uri`'s lockout on every appliance through the fleet directory
 * when [directory] store is set. Returns CTL_OK or CTL_FAIL after saying why. */
int ctl_dir_lockout_reset(struct ctl *ctl, const char *uri, const char *what);

/* ctl_dir_user_disable marks `uri` disabled since since_s (0: enabled) on every appliance
 * through the fleet directory when [directory] store is set. Returns CTL_OK or CTL_FAIL after
 * saying why. */
int ctl_dir_user_disable(struct ctl *ctl, const char *uri, int64_t since_s, const char *what);

/* ctl_dir_revocations_put writes the revocations of serials[0..num) (or, `lifted`, the lifting of
 * their holds) to the fleet directory when [directory] store is set; *out_changed (may be NULL)
 * counts the rows the directory changed. Returns CTL_OK, or CTL_FAIL after saying why. */
int ctl_dir_revocations_put(struct ctl *ctl, const uint8_t (*serials)[STORE_SERIAL_LEN], size_t num,
                            uint8_t reason, int64_t at_s, bool lifted, size_t *out_changed,
                            const char *what);

/* ctl_dir_user_revoke revokes through the fleet directory every certificate of `uri` that other
 * appliances issued (certprov_serials), when [directory] store is set; *out_changed (may be NULL)
 * counts them. Returns CTL_OK, or CTL_FAIL after saying why. */
int ctl_dir_user_revoke(struct ctl *ctl, const char *uri, uint8_t reason, int64_t at_s,
                        size_t *out_changed, const char *what);

/* ctl_audit appends a record of `command` ("ca import") on `target` with `outcome` ("ok",
 * "failed") and the detail noted with ctl_audit_note to the store's audit log (service.h). A
 * failure is a warning on stderr, never the command's failure; returns service_audit_append's
 * code. The commands of the `audited` table (audit.c) are recorded by the dispatcher
 * (ctl_audit_command); a command recorded otherwise calls this itself. */
int ctl_audit(struct ctl *ctl, const char *command, const char *target, const char *outcome);

/* ctl_audit_note sets the detail of the command's audit record ("serial=..."; never a secret). */
void ctl_audit_note(struct ctl *ctl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ctl_audit_command records `cmd` run with argv (its target: --uri, --pool or the first
 * argument) when it is one that changes something and was no usage error (rc: its exit code). */
void ctl_audit_command(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv, int rc);

/* ctl_parse_since parses a point in time: "YYYY-MM-DDTHH:MM:SSZ", "YYYY-MM-DD" (UTC midnight) or
 * an age "N" + s|m|h|d before now. Returns 0 or -EINVAL. */
int ctl_parse_since(int64_t *out, const char *text);

/* ctl_parse_duration parses "N" + s|m|h|d into seconds (N >= 1, at most 100 years). Returns 0 or
 * -EINVAL. */
int ctl_parse_duration(int64_t *out, const char *text);

extern const struct ctl_cmd ctl_revoke_cmds[];

/* ctl_revoke_user_certs revokes every unexpired certificate of `uri` for `reason`
 * (store_user_revoke_certs) and prints how many; `what` names the command in a failure. Returns
 * CTL_OK or CTL_FAIL. */
int ctl_revoke_user_certs(struct ctl *ctl, const char *uri, uint8_t reason, const char *what);

/* ctl_usage prints "usage: ..." for `cmd` to stderr and returns CTL_USAGE. */
int ctl_usage(const struct ctl_cmd *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* ctl_fail prints "certprovctl: ..." to stderr and returns CTL_FAIL. */
int ctl_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* ctl_print_cmd_help prints the usage and help of one command to `out`. */
void ctl_print_cmd_help(FILE *out, const struct ctl_cmd *cmd);

/* ctl_store opens the replica (once) for writing. Returns 0 or CTL_FAIL after saying why. */
int ctl_store(struct ctl *ctl);
/* ctl_ca_open loads the CA into *out (owned: signer_ca_free), or returns CTL_FAIL after saying,
 * after the prefix `what` ("" or "cert issue: "), which file is wrong and how; `ca init` is the
 * advice only for a store without any of the CA's files. */
int ctl_ca_open(struct ctl *ctl, struct signer_ca **out, const char *what);
/* ctl_no_daemon returns 0 when no certprovd holds the store (store_lock_holder), else CTL_FAIL
 * after saying which PID does and that `what` must wait for it to stop, because `why`. For the
 * commands that must not run beside a daemon; the others never look (LMDB serialises writers). */
int ctl_no_daemon(struct ctl *ctl, const char *what, const char *why);
/* ctl_pin_key loads the PIN key, creating a missing one only for a store without users and
 * without a running certprovd. Returns 0 or CTL_FAIL. */
int ctl_pin_key(struct ctl *ctl);
/* ctl_read_pin reads a PIN from the first line of stdin into `pin` (SIGNER_PIN_MAX + 2 bytes).
 * Returns 0 or CTL_FAIL after saying why. */
int ctl_read_pin(char *pin, size_t cap);

/* Validators: return NULL when valid, or a sentence saying what is wrong. */
const char *ctl_check_uri(const char *uri);
/* ctl_check_phone reads `phone` ("" for none) as the sign-in does (signer_phone_e164 with [pin]
 * default_country_code `cc`) and writes its E.164 form into `out` ("" for none). */
const char *ctl_check_phone(char out[STORE_PHONE_MAX + 1], const char *phone, const char *cc);
const char *ctl_check_ext(const char *ext);

/* ctl_user_make validates the fields, the pool (against the configuration) and the PIN policy
 * and fills *out with the URI's canonical spelling (ctl_uri_canonical) and the PIN's verifier.
 * Returns NULL or the reason. `pin` is not kept. */
const char *ctl_user_make(struct ctl *ctl, struct store_user *out, const char *uri,
                          const char *pool, const char *phone, const char *ext, const char *pin);

/* ctl_uri_canonical writes the one spelling a URI is stored in into `out` (STORE_URI_MAX + 1
 * bytes): the "sip:" scheme and the host (after the last '@') in ASCII lower case, the user part
 * as given: the identity checks ignore ASCII case, so the store compares URIs ignoring it and
 * keeps one spelling. Returns 0, or -E2BIG when `uri` is longer than STORE_URI_MAX. */
int ctl_uri_canonical(char *out, const char *uri);

/* ctl_user_get finds the user that `uri` names: by `uri` as given (also a user stored before
 * URIs were canonical), else by its canonical spelling (ctl_uri_canonical). Returns 0 or
 * store_user_get's code. */
int ctl_user_get(struct ctl *ctl, struct store_user *out, const char *uri);

/* The PINs of the users given to store_user_add_checked or store_user_set_pin_checked, PIN i at
 * pins + i * CTL_PIN_CAP, and the key their verifiers are made with: the context of ctl_pin_same.
 */
#define CTL_PIN_CAP (SIGNER_PIN_MAX + 2)
struct ctl_pins {
    const struct signer_pin_key *key;
    const char *pins;
};

/* ctl_pin_same is the store_pin_same_fn of certprovctl (ctx: struct ctl_pins): whether PIN
 * `index` is the PIN of `other`, by computing its verifier under other's URI and comparing in
 * constant time (signer_pin_matches). */
bool ctl_pin_same(void *ctx, size_t index, const struct store_user *other);

/* ctl_secret_alloc returns `len` zeroed bytes for secrets (PINs), kept out of core dumps
 * (MADV_DONTDUMP), or NULL. ctl_secret_free wipes and frees them; NULL is a no-op. */
void *ctl_secret_alloc(size_t len);
void ctl_secret_free(void *p, size_t len);

/* ctl_parse_hours parses --hours (1..87600). Returns 0 or -EINVAL. */
int ctl_parse_hours(uint32_t *out, const char *text);

/* ctl_time writes a Unix time as UTC text, or "-" for 0. */
void ctl_time(char out[CLOCK_UTC_LEN], int64_t t);

/* ctl_json_str prints `s` as a JSON string (RFC 8259 §7: '"', '\\' and control characters
 * escaped) to stdout. */
void ctl_json_str(const char *s);

/* ctl_json_kv prints ,"key":"value" (first: without the comma) to stdout. */
void ctl_json_kv(bool first, const char *key, const char *value);

/* ctl_json_time prints ,"key":"UTC text" or ,"key":null for 0. */
void ctl_json_time(const char *key, int64_t t);

/* ctl_refusal_names gives the Code and reason token of a stored refusal (store_lockout's
 * last_refusal_code and _reason, each + 1) or "-" for none / "unknown" for a value of a newer
 * version. */
void ctl_refusal_names(const struct store_lockout *l, const char **out_code,
                       const char **out_reason);

#endif
