/* dirpg.c: the fleet directory's SQL (README, The fleet directory), spoken through libpq with
 * blocking calls: by certprovctl (`directory init`, the user commands with [directory]), by
 * certprovd before it starts (the PIN key's id) and by the directory thread (directory.c).
 *
 * Tables (all prefixed certprov_, so that they can share a database with a pool store's
 * user_certificates): certprov_meta (name -> value: "pin_key_id"), certprov_users (one row per
 * URI ever stored; a deleted user stays as a tombstone, deleted = true, so that replicas see the
 * deletion as a change), certprov_lockouts, certprov_revocations (serial -> reason, time; a
 * lifted hold stays as a row with lifted = true), certprov_cas (the fleet's issuing CAs, by the
 * SHA-256 of their DER; written by the directory thread) and certprov_serials (the fleet-wide
 * unique index of issued serials, written by the directory thread; not replicated, no seq). Every
 * other row carries `seq`, taken from the one sequence certprov_seq by the statement that writes
 * it.
 *
 * Why the replicas can read "everything after seq S" and miss nothing: every writing
 * transaction first takes the transaction-scoped advisory lock DIR_WRITE_LOCK, then its
 * nextval()s, so writers commit one after the other in the order of their sequence numbers: a
 * reader's snapshot never holds seq S+1 without every committed seq up to S (a sequence value of a
 * transaction that rolled back is only a gap). Writers are administrators' commands, rare: the
 * serialisation costs nothing that matters.
 *
 * Bounds: connect_timeout=2 s, statement_timeout (5 s; 10 min for a bulk import),
 * tcp_user_timeout=10 s on every connection. */
#include <errno.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "store/internal.h"

#define DIR_WRITE_LOCK STORE_DIR_WRITE_LOCK
#define DIR_NOTIFY STORE_DIR_NOTIFY

static const char dir_schema[] =
    "CREATE SEQUENCE IF NOT EXISTS certprov_seq;"
    "CREATE TABLE IF NOT EXISTS certprov_meta (name text PRIMARY KEY, value text NOT NULL);"
    "CREATE TABLE IF NOT EXISTS certprov_users ("
    " uri text PRIMARY KEY, pool text NOT NULL, phone text NOT NULL DEFAULT '',"
    " extension text NOT NULL DEFAULT '', pin_verifier bytea NOT NULL,"
    " pin_len smallint NOT NULL, pin_key_id text NOT NULL, created_at bigint NOT NULL,"
    " deleted boolean NOT NULL DEFAULT false, seq bigint NOT NULL);"
    "ALTER TABLE certprov_users ADD COLUMN IF NOT EXISTS disabled_at bigint NOT NULL DEFAULT 0;"
    "CREATE UNIQUE INDEX IF NOT EXISTS certprov_users_fold ON certprov_users (lower(uri))"
    " WHERE NOT deleted;"
    "CREATE UNIQUE INDEX IF NOT EXISTS certprov_users_ext ON certprov_users (extension)"
    " WHERE extension <> '' AND NOT deleted;"
    "CREATE INDEX IF NOT EXISTS certprov_users_seq ON certprov_users (seq);"
    "CREATE TABLE IF NOT EXISTS certprov_lockouts ("
    " uri text PRIMARY KEY, window_failures integer NOT NULL, window_start bigint NOT NULL,"
    " total_failures bigint NOT NULL, locked_until bigint NOT NULL,"
    " admin_locked boolean NOT NULL, reset boolean NOT NULL DEFAULT false,"
    " appliance text NOT NULL, seq bigint NOT NULL);"
    "CREATE INDEX IF NOT EXISTS certprov_lockouts_seq ON certprov_lockouts (seq);"
    "CREATE TABLE IF NOT EXISTS certprov_revocations ("
    " serial text PRIMARY KEY, reason text NOT NULL, revoked_at bigint NOT NULL,"
    " issuer text NOT NULL, seq bigint NOT NULL);"
    "ALTER TABLE certprov_revocations ADD COLUMN IF NOT EXISTS lifted boolean NOT NULL"
    " DEFAULT false;"
    "CREATE INDEX IF NOT EXISTS certprov_revocations_seq ON certprov_revocations (seq);"
    "CREATE TABLE IF NOT EXISTS certprov_cas ("
    " issuer text PRIMARY KEY, der bytea NOT NULL, appliance text NOT NULL, seq bigint NOT NULL);"
    "CREATE TABLE IF NOT EXISTS certprov_serials ("
    " serial text PRIMARY KEY, appliance text NOT NULL, issued_at bigint NOT NULL, uri text);"
    "ALTER TABLE certprov_serials ADD COLUMN IF NOT EXISTS uri text;"
    "CREATE INDEX IF NOT EXISTS certprov_serials_uri ON certprov_serials (uri)";

struct store_dir {
    PGconn *conn;
};

PGconn *store_dir_conn_raw(const char *conninfo, uint32_t statement_timeout_ms)
{
    ASSERT(conninfo != NULL);
    char opt[64];
    snprintf(opt, sizeof(opt), "-c statement_timeout=%u", statement_timeout_ms);
    /* expand_dbname: what the connection string sets wins over the bounds before it. */
    static const char *const keys[] = {
        "connect_timeout", "options", "tcp_user_timeout", "keepalives_idle", "application_name",
        "dbname",          NULL};
    const char *vals[] = {"2", opt, "10000", "5", "certprov", conninfo, NULL};
    return PQconnectdbParams(keys, vals, 1);
}

int store_dir_connect(struct store_dir **out, const char *conninfo, char *err, size_t cap)
{
    ASSERT(out != NULL);
    struct store_dir *d = calloc(1, sizeof(*d));
    if (d == NULL) {
        return -ENOMEM;
    }
    /* certprovctl: a bulk import may take minutes (10 min bound). */
    d->conn = store_dir_conn_raw(conninfo, 600000);
    if (d->conn == NULL || PQstatus(d->conn) != CONNECTION_OK) {
        store_err_copy(err, cap, d->conn != NULL ? PQerrorMessage(d->conn) : "out of memory");
        store_dir_close(d);
        return -EHOSTUNREACH;
    }
    *out = d;
    return 0;
}

void store_dir_close(struct store_dir *d)
{
    if (d == NULL) {
        return;
    }
    PQfinish(d->conn);
    free(d);
}

/* sql_rc maps a failed result: a unique violation is -EEXIST (-ENOTUNIQ for the extension
 * index), a missing table -ENOENT (not initialized), anything else -EIO; the text goes to err. */
static int sql_rc(PGconn *c, PGresult *res, char *err, size_t cap)
{
    const char *state = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *cons = res != NULL ? PQresultErrorField(res, PG_DIAG_CONSTRAINT_NAME) : NULL;
    store_err_copy(err, cap, res != NULL ? PQresultErrorMessage(res) : PQerrorMessage(c));
    if (state != NULL && strcmp(state, "23505") == 0) {
        return cons != NULL && strcmp(cons, "certprov_users_ext") == 0 ? -ENOTUNIQ : -EEXIST;
    }
    if (state != NULL && strcmp(state, "42P01") == 0) {
        store_err_copy(err, cap,
                       "the directory has no certprov tables: run 'certprovctl directory init'");
        return -ENOENT;
    }
    return -EIO;
}

int store_dir_exec(PGconn *c, const char *sql, char *err, size_t cap)
{
    PGresult *res = PQexec(c, sql);
    ExecStatusType s = res != NULL ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    int rc = s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK ? 0 : sql_rc(c, res, err, cap);
    PQclear(res);
    return rc;
}

/* rollback ends a failed transaction; the connection stays usable. */
static int rollback(PGconn *c, int rc)
{
    PQclear(PQexec(c, "ROLLBACK"));
    return rc;
}

int store_dir_key_get(PGconn *c, char *out, size_t out_cap, char *err, size_t cap)
{
    PGresult *res = PQexec(c, "SELECT value FROM certprov_meta WHERE name = 'pin_key_id'");
    int rc = 0;
    if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK) {
        rc = sql_rc(c, res, err, cap);
    } else if (PQntuples(res) != 1) {
        store_err_copy(err, cap,
                       "the directory has no PIN key id: run 'certprovctl directory init'");
        rc = -ENOENT;
    } else if (base_str_copy(out, out_cap, PQgetvalue(res, 0, 0)) != 0) {
        store_err_copy(err, cap, "the directory's PIN key id is too long");
        rc = -EIO;
    }
    PQclear(res);
    return rc;
}

int store_dir_key_check(struct store_dir *d, const char *key_id, char *err, size_t cap)
{
    ASSERT(d != NULL);
    ASSERT(key_id != NULL);
    char have[64];
    int rc = store_dir_key_get(d->conn, have, sizeof(have), err, cap);
    if (rc == 0 && strcmp(have, key_id) != 0) {
        snprintf(err, cap,
                 "this appliance's PIN key (id %s) is not the fleet's (id %s in the directory): "
                 "copy the fleet's pin.key into the store directory",
                 key_id, have);
        rc = -EKEYREJECTED;
    }
    return rc;
}

int store_dir_init(struct store_dir *d, const char *key_id, char *err, size_t cap)
{
    ASSERT(d != NULL);
    ASSERT(key_id != NULL);
    int rc = store_dir_exec(d->conn, "BEGIN", err, cap);
    rc = rc != 0 ? rc : store_dir_exec(d->conn, DIR_WRITE_LOCK, err, cap);
    rc = rc != 0 ? rc : store_dir_exec(d->conn, dir_schema, err, cap);
    if (rc != 0) {
        return rollback(d->conn, rc);
    }
    const char *vals[1] = {key_id};
    PGresult *res = PQexecParams(d->conn,
                                 "INSERT INTO certprov_meta VALUES ('pin_key_id', $1)"
                                 " ON CONFLICT (name) DO NOTHING",
                                 1, NULL, vals, NULL, NULL, 0);
    rc =
        res != NULL && PQresultStatus(res) == PGRES_COMMAND_OK ? 0 : sql_rc(d->conn, res, err, cap);
    PQclear(res);
    rc = rc != 0 ? rc : store_dir_key_check(d, key_id, err, cap);
    if (rc != 0) {
        return rollback(d->conn, rc);
    }
    return store_dir_exec(d->conn, "COMMIT", err, cap);
}

/* copy_field appends `s` to `buf` in COPY's text format (backslash escapes), then `end`. */
static size_t copy_field(char *buf, size_t at, size_t cap, const char *s, char end)
{
    for (; *s != '\0'; s++) {
        char c = *s;
        const char *esc = c == '\\'   ? "\\\\"
                          : c == '\t' ? "\\t"
                          : c == '\n' ? "\\n"
                          : c == '\r' ? "\\r"
                                      : NULL;
        size_t n = esc != NULL ? 2 : 1;
        ASSERT(at + n < cap);
        memcpy(buf + at, esc != NULL ? esc : &c, n);
        at += n;
    }
    ASSERT(at + 1 < cap);
    buf[at++] = end;
    return at;
}

static int copy_users(PGconn *c, const struct store_user *users, size_t num, char *err, size_t cap)
{
    PGresult *res = PQexec(c, "COPY certprov_in FROM STDIN");
    bool ok = res != NULL && PQresultStatus(res) == PGRES_COPY_IN;
    PQclear(res);
    if (!ok) {
        store_err_copy(err, cap, PQerrorMessage(c));
        return -EIO;
    }
    /* Each row: uri, pool, phone, ext (escaped: at most twice their bytes), the verifier in hex
     * with bytea's \\x prefix, two numbers. */
    char row[2 * (STORE_URI_MAX + STORE_POOL_MAX + STORE_PHONE_MAX + STORE_EXT_MAX) +
             2 * STORE_VERIFIER_LEN + 96];
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; ok && i < num; i++) {
        const struct store_user *u = &users[i];
        size_t at = copy_field(row, 0, sizeof(row), u->uri, '\t');
        at = copy_field(row, at, sizeof(row), u->pool, '\t');
        at = copy_field(row, at, sizeof(row), u->phone, '\t');
        at = copy_field(row, at, sizeof(row), u->ext, '\t');
        memcpy(row + at, "\\\\x", 3);
        at += 3;
        for (size_t j = 0; j < STORE_VERIFIER_LEN; j++) {
            row[at++] = hex[u->pin_verifier[j] >> 4];
            row[at++] = hex[u->pin_verifier[j] & 15];
        }
        int n = snprintf(row + at, sizeof(row) - at, "\t%u\t%lld\n", (unsigned)u->pin_len,
                         (long long)u->created_s);
        ASSERT(n > 0 && (size_t)n < sizeof(row) - at);
        at += (size_t)n;
        ok = PQputCopyData(c, row, (int)at) == 1;
    }
    ok = PQputCopyEnd(c, ok ? NULL : "certprov: aborted") == 1 && ok;
    res = PQgetResult(c);
    int rc =
        res != NULL && PQresultStatus(res) == PGRES_COMMAND_OK && ok ? 0 : sql_rc(c, res, err, cap);
    PQclear(res);
    while ((res = PQgetResult(c)) != NULL) {
        PQclear(res);
    }
    return rc;
}

int store_dir_users_put(struct store_dir *d, const struct store_user *users, size_t num,
                        const char *key_id, bool replace, char *err, size_t cap)
{
    ASSERT(d != NULL);
    ASSERT(users != NULL || num == 0);
    int rc = store_dir_exec(d->conn, "BEGIN", err, cap);
    rc = rc != 0 ? rc : store_dir_exec(d->conn, DIR_WRITE_LOCK, err, cap);
    rc = rc != 0 ? rc : store_dir_key_check(d, key_id, err, cap);
    rc = rc != 0 ? rc
                 : store_dir_exec(d->conn,
                                  "CREATE TEMP TABLE certprov_in (uri text, pool text, phone text,"
                                  " extension text, pin_verifier bytea, pin_len smallint,"
                                  " created_at bigint) ON COMMIT DROP",
                                  err, cap);
    rc = rc != 0 ? rc : copy_users(d->conn, users, num, err, cap);
    if (rc != 0) {
        return rollback(d->conn, rc);
    }
    /* A new user may take the URI of a deleted one (its tombstone); `replace` (a changed PIN)
     * overwrites a live one too. Every row written takes a new seq. */
    const char *vals[1] = {key_id};
    PGresult *res = PQexecParams(
        d->conn,
        replace ? "INSERT INTO certprov_users SELECT uri, pool, phone, extension, pin_verifier,"
                  " pin_len, $1, created_at, false, nextval('certprov_seq') FROM certprov_in"
                  " ON CONFLICT (uri) DO UPDATE SET pool = EXCLUDED.pool, phone = EXCLUDED.phone,"
                  " extension = EXCLUDED.extension, pin_verifier = EXCLUDED.pin_verifier,"
                  " pin_len = EXCLUDED.pin_len, pin_key_id = EXCLUDED.pin_key_id,"
                  " deleted = false, seq = EXCLUDED.seq"
                : "INSERT INTO certprov_users SELECT uri, pool, phone, extension, pin_verifier,"
                  " pin_len, $1, created_at, false, nextval('certprov_seq') FROM certprov_in"
                  " ON CONFLICT (uri) DO UPDATE SET pool = EXCLUDED.pool, phone = EXCLUDED.phone,"
                  " extension = EXCLUDED.extension, pin_verifier = EXCLUDED.pin_verifier,"
                  " pin_len = EXCLUDED.pin_len, pin_key_id = EXCLUDED.pin_key_id,"
                  " created_at = EXCLUDED.created_at, deleted = false, disabled_at = 0,"
                  " seq = EXCLUDED.seq WHERE certprov_users.deleted",
        1, NULL, vals, NULL, NULL, 0);
    rc =
        res != NULL && PQresultStatus(res) == PGRES_COMMAND_OK ? 0 : sql_rc(d->conn, res, err, cap);
    if (rc == 0 && strtoull(PQcmdTuples(res), NULL, 10) != num) {
        store_err_copy(err, cap, "a user with this URI already exists in the directory");
        rc = -EEXIST;
    }
    PQclear(res);
    rc = rc != 0 ? rc : store_dir_exec(d->conn, DIR_NOTIFY, err, cap);
    if (rc != 0) {
        return rollback(d->conn, rc);
    }
    return store_dir_exec(d->conn, "COMMIT", err, cap);
}

/* user_row_update runs `sql` (an UPDATE of one live user's row that takes a new seq) with its
 * `num` parameters in a write transaction of its own, then NOTIFY. -ENOENT when no live user has
 * the URI. */
static int user_row_update(struct store_dir *d, const char *sql, const char *const *vals, int num,
                           char *err, size_t cap)
{
    int rc = store_dir_exec(d->conn, "BEGIN", err, cap);
    rc = rc != 0 ? rc : store_dir_exec(d->conn, DIR_WRITE_LOCK, err, cap);
    if (rc != 0) {
        return rollback(d->conn, rc);
    }
    PGresult *res = PQexecParams(d->conn, sql, num, NULL, vals, NULL, NULL, 0);
    rc =
        res != NULL && PQresultStatus(res) == PGRES_COMMAND_OK ? 0 : sql_rc(d->conn, res, err, cap);
    if (rc == 0 && strcmp(PQcmdTuples(res), "1") != 0) {
        store_err_copy(err, cap, "no such user in the directory");
        rc = -ENOENT;
    }
    PQclear(res);
    rc = rc != 0 ? rc : store_dir_exec(d->conn, DIR_NOTIFY, err, cap);
    if (rc != 0) {
        return rollback(d->conn, rc);
    }
    return store_dir_exec(d->conn, "COMMIT", err, cap);
}

int store_dir_user_del(struct store_dir *d, const char *uri, char *err, size_t cap)
{
    ASSERT(d != NULL);
    ASSERT(uri != NULL);
    const char *vals[1] = {uri};
    return user_row_update(d,
                           "UPDATE certprov_users SET deleted = true,"
                           " seq = nextval('certprov_seq') WHERE uri = $1 AND NOT deleted",
                           vals, 1, err, cap);
}

/* The fleet's lockout state of a user: two windows that overlap (begun less than window_s apart:
 * appliances that began one each before they saw the other's) take the later start and the larger
 * count, else the newer window wins; the totals take the larger count, a lock the later end, an
 * administrator's lock stays until a reset (user unlock) replaces the whole row. Each replica
 * merges a row the same way into its own state (directory.c lockout_merge). */
const char store_dir_lockout_upsert[] =
    "INSERT INTO certprov_lockouts AS l (uri, window_failures, window_start, total_failures,"
    " locked_until, admin_locked, reset, appliance, seq) VALUES ($1, $2::integer, $3::bigint,"
    " $4::bigint, $5::bigint, $6::boolean, $7::boolean, $8, nextval('certprov_seq'))"
    " ON CONFLICT (uri) DO UPDATE SET"
    " window_failures = CASE WHEN EXCLUDED.reset THEN EXCLUDED.window_failures"
    "  WHEN EXCLUDED.window_start = l.window_start OR (EXCLUDED.window_start > 0"
    "   AND l.window_start > 0 AND abs(EXCLUDED.window_start - l.window_start) < $9::bigint)"
    "  THEN GREATEST(l.window_failures, EXCLUDED.window_failures)"
    "  WHEN EXCLUDED.window_start > l.window_start THEN EXCLUDED.window_failures"
    "  ELSE l.window_failures END,"
    " window_start = CASE WHEN EXCLUDED.reset THEN EXCLUDED.window_start"
    "  ELSE GREATEST(l.window_start, EXCLUDED.window_start) END,"
    " total_failures = CASE WHEN EXCLUDED.reset THEN EXCLUDED.total_failures"
    "  ELSE GREATEST(l.total_failures, EXCLUDED.total_failures) END,"
    " locked_until = CASE WHEN EXCLUDED.reset THEN EXCLUDED.locked_until"
    "  ELSE GREATEST(l.locked_until, EXCLUDED.locked_until) END,"
    " admin_locked = EXCLUDED.admin_locked OR (l.admin_locked AND NOT EXCLUDED.reset),"
    " reset = EXCLUDED.reset, appliance = EXCLUDED.appliance, seq = EXCLUDED.seq";

int store_dir_lockout_reset(struct store_dir *d, const char *uri, const char *appliance, char *err,
                            size_t cap)
{
    ASSERT(d != NULL);
    ASSERT(uri != NULL);
    ASSERT(appliance != NULL);
    int rc = store_dir_exec(d->conn, "BEGIN", err, cap);
    rc = rc != 0 ? rc : store_dir_exec(d->conn, STORE_DIR_LOCKOUT_LOCK, err, cap);
    if (rc != 0) {
        return rollback(d->conn, rc);
    }
    const char *vals[9] = {uri, "0", "0", "0", "0", "false", "true", appliance, "0"};
    PGresult *res = PQexecParams(d->conn, store_dir_lockout_upsert, 9, NULL, vals, NULL, NULL, 0);
    rc =
        res != NULL && PQresultStatus(res) == PGRES_COMMAND_OK ? 0 : sql_rc(d->conn, res, err, cap);
    PQclear(res);
    rc = rc != 0 ? rc : store_dir_exec(d->conn, DIR_NOTIFY, err, cap);
    if (rc != 0) {
        return rollback(d->conn, rc);
    }
    return store_dir_exec(d->conn, "COMMIT", err, cap);
}

int store_dir_user_disable(struct store_dir *d, const char *uri, int64_t since_s, char *err,
                           size_t cap)
{
    ASSERT(d != NULL);
    ASSERT(uri != NULL);
    char since[24];
    snprintf(since, sizeof(since), "%lld", (long long)since_s);
    const char *vals[2] = {uri, since};
    return user_row_update(d,
                           "UPDATE certprov_users SET disabled_at = $2::bigint,"
                           " seq = nextval('certprov_seq') WHERE uri = $1 AND NOT deleted",
                           vals, 2, err, cap);
}

/* A revocation replaces a lifted hold, and a hold becomes final with another reason (RFC 5280
 * §5.3.1, as store_cert_revoke); anything else already revoked stays as it is. */
#define REVOKE_CONFLICT                                                                            \
    " ON CONFLICT (serial) DO UPDATE SET reason = EXCLUDED.reason,"                                \
    " revoked_at = CASE WHEN r.lifted THEN EXCLUDED.revoked_at ELSE r.revoked_at END,"             \
    " lifted = false, seq = EXCLUDED.seq WHERE r.lifted OR (r.reason ="                            \
    " 'certificateHold' AND EXCLUDED.reason <> 'certificateHold')"

/* revoke_exec runs one statement of a revocation transaction and adds the rows it changed to
 * *changed. */
static int revoke_exec(struct store_dir *d, const char *sql, int num_vals, const char *const *vals,
                       size_t *changed, char *err, size_t cap)
{
    PGresult *res = PQexecParams(d->conn, sql, num_vals, NULL, vals, NULL, NULL, 0);
    int rc =
        res != NULL && PQresultStatus(res) == PGRES_COMMAND_OK ? 0 : sql_rc(d->conn, res, err, cap);
    if (rc == 0) {
        *changed += strtoull(PQcmdTuples(res), NULL, 10);
    }
    PQclear(res);
    return rc;
}

/* revoke_commit ends a revocation transaction that is at `rc`: NOTIFY and COMMIT (then
 * *out_changed, may be NULL, is `changed`), or ROLLBACK. */
static int revoke_commit(struct store_dir *d, int rc, size_t changed, size_t *out_changed,
                         char *err, size_t cap)
{
    rc = rc != 0 ? rc : store_dir_exec(d->conn, DIR_NOTIFY, err, cap);
    if (rc != 0) {
        return rollback(d->conn, rc);
    }
    rc = store_dir_exec(d->conn, "COMMIT", err, cap);
    if (rc == 0 && out_changed != NULL) {
        *out_changed = changed;
    }
    return rc;
}

int store_dir_revocations_put(struct store_dir *d, const uint8_t (*serials)[STORE_SERIAL_LEN],
                              size_t num, uint8_t reason, int64_t revoked_at_s, bool lifted,
                              size_t *out_changed, char *err, size_t cap)
{
    ASSERT(d != NULL);
    ASSERT(serials != NULL || num == 0);
    const char *name = store_revoke_reason_name(reason);
    if (name == NULL) {
        store_err_copy(err, cap, "unknown revocation reason");
        return -EINVAL;
    }
    size_t changed = 0;
    int rc = store_dir_exec(d->conn, "BEGIN", err, cap);
    rc = rc != 0 ? rc : store_dir_exec(d->conn, STORE_DIR_REVOKE_LOCK, err, cap);
    char at[24];
    snprintf(at, sizeof(at), "%lld", (long long)revoked_at_s);
    const char *sql =
        lifted ? "UPDATE certprov_revocations SET lifted = true, seq = nextval('certprov_seq')"
                 " WHERE serial = $1 AND NOT lifted AND reason = 'certificateHold'"
               : "INSERT INTO certprov_revocations AS r (serial, reason, revoked_at, issuer, seq)"
                 " VALUES ($1, $2, $3::bigint, '', nextval('certprov_seq'))" REVOKE_CONFLICT;
    for (size_t i = 0; rc == 0 && i < num; i++) {
        char hex[2 * STORE_SERIAL_LEN + 1];
        store_serial_hex(hex, serials[i]);
        const char *vals[3] = {hex, name, at};
        rc = revoke_exec(d, sql, lifted ? 1 : 3, vals, &changed, err, cap);
    }
    return revoke_commit(d, rc, changed, out_changed, err, cap);
}

int store_dir_user_revoke(struct store_dir *d, const char *uri, const char *except_appliance,
                          uint8_t reason, int64_t revoked_at_s, size_t *out_changed, char *err,
                          size_t cap)
{
    ASSERT(d != NULL && uri != NULL && except_appliance != NULL);
    const char *name = store_revoke_reason_name(reason);
    if (name == NULL) {
        store_err_copy(err, cap, "unknown revocation reason");
        return -EINVAL;
    }
    char at[24];
    snprintf(at, sizeof(at), "%lld", (long long)revoked_at_s);
    const char *vals[4] = {uri, name, at, except_appliance};
    int rc = store_dir_exec(d->conn, "BEGIN", err, cap);
    rc = rc != 0 ? rc : store_dir_exec(d->conn, STORE_DIR_REVOKE_LOCK, err, cap);
    size_t changed = 0;
    if (rc == 0) {
        rc = revoke_exec(
            d,
            "INSERT INTO certprov_revocations AS r (serial, reason, revoked_at, issuer, seq)"
            " SELECT serial, $2, $3::bigint, '', nextval('certprov_seq') FROM certprov_serials"
            " WHERE uri = $1 AND appliance <> $4" REVOKE_CONFLICT,
            4, vals, &changed, err, cap);
    }
    return revoke_commit(d, rc, changed, out_changed, err, cap);
}

int store_dir_status(struct store_dir *d, uint64_t *out_users, uint64_t *out_seq, char *err,
                     size_t cap)
{
    ASSERT(d != NULL);
    PGresult *res = PQexec(d->conn, "SELECT count(*) FILTER (WHERE NOT deleted),"
                                    " coalesce(max(seq), 0) FROM certprov_users");
    int rc = 0;
    if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
        rc = sql_rc(d->conn, res, err, cap);
    } else {
        *out_users = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
        *out_seq = strtoull(PQgetvalue(res, 0, 1), NULL, 10);
    }
    PQclear(res);
    return rc;
}
