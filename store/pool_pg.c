/* pool_pg.c: the PostgreSQL pool store driver (libpq, blocking: it runs on its pool's publisher
 * thread only). On connect it creates the table of README, Home pool stores when missing, adds
 * the revocation columns to a table of an earlier version (ALTER TABLE ... ADD COLUMN IF NOT
 * EXISTS: the migration), prepares the idempotent INSERT ... ON CONFLICT (serial) DO UPDATE of
 * the revocation columns only when they differ (a replay, and entries in any order, converge on
 * the replica's row) and enters pipeline mode; a batch is
 * then one round trip: every INSERT, one Sync. The statements up to the Sync form one implicit
 * transaction, so a permanent error in one row rolls the others back: they are reported as not
 * done (-EAGAIN) and go out again in the next round, while the failing row is parked.
 * Bounds: connect_timeout=2 s, statement_timeout=5 s, tcp_user_timeout=10 s on every connection,
 * and each wait for a result polls the socket with a deadline. */
#include <errno.h>
#include <libpq-fe.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "store/internal.h"

#define PG_RESULT_DEADLINE_MS 15000
#define PG_STMT "certprov_publish"

static const char pg_create[] =
    "CREATE TABLE IF NOT EXISTS user_certificates ("
    " serial text PRIMARY KEY, sip_uri text NOT NULL, device_id text,"
    " not_before timestamptz NOT NULL, not_after timestamptz NOT NULL, der bytea NOT NULL,"
    " issued_by text NOT NULL, issued_at timestamptz NOT NULL,"
    " published_at timestamptz NOT NULL DEFAULT now(),"
    " revoked_at timestamptz, revocation_reason text)";
/* The migration of a table created before revocation (README, Home pool stores). */
static const char pg_migrate[] =
    "ALTER TABLE user_certificates ADD COLUMN IF NOT EXISTS revoked_at timestamptz,"
    " ADD COLUMN IF NOT EXISTS revocation_reason text";
static const char pg_insert[] =
    "INSERT INTO user_certificates"
    " (serial, sip_uri, device_id, not_before, not_after, der, issued_by, issued_at, revoked_at,"
    " revocation_reason)"
    " VALUES ($1, $2, $3, to_timestamp($4::bigint), to_timestamp($5::bigint), $6::bytea, $7,"
    " to_timestamp($8::bigint), to_timestamp($9::bigint), $10)"
    " ON CONFLICT (serial) DO UPDATE SET revoked_at = EXCLUDED.revoked_at,"
    " revocation_reason = EXCLUDED.revocation_reason"
    " WHERE (user_certificates.revoked_at, user_certificates.revocation_reason)"
    " IS DISTINCT FROM (EXCLUDED.revoked_at, EXCLUDED.revocation_reason)";

struct pool_pg {
    PGconn *conn;
    char issued_by[256];
    char conninfo[STORE_CONNINFO_MAX + 1];
};

static PGconn *pg_connect_raw(const char *conninfo)
{
    /* expand_dbname: the pool's string is expanded in place of dbname, so what it sets wins over
     * the bounds before it. */
    static const char *const keys[] = {
        "connect_timeout", "options", "tcp_user_timeout", "keepalives_idle", "application_name",
        "dbname",          NULL};
    const char *vals[] = {"2", "-c statement_timeout=5000", "10000", "5", "certprov", conninfo,
                          NULL};
    return PQconnectdbParams(keys, vals, 1);
}

static void pg_drop(struct pool_pg *p)
{
    if (p->conn != NULL) {
        PQfinish(p->conn);
        p->conn = NULL;
    }
}

/* exec_ok runs one statement outside pipeline mode and checks it succeeded. */
static int exec_ok(struct pool_pg *p, PGresult *res, char *err, size_t cap)
{
    int ok = res != NULL && PQresultStatus(res) == PGRES_COMMAND_OK;
    if (!ok) {
        store_err_copy(err, cap, res != NULL ? PQresultErrorMessage(res) : PQerrorMessage(p->conn));
    }
    PQclear(res);
    return ok ? 0 : -EAGAIN;
}

static int pg_connect(struct pool_pg *p, char *err, size_t cap)
{
    ASSERT(p->conn == NULL);
    p->conn = pg_connect_raw(p->conninfo);
    if (p->conn == NULL) {
        store_err_copy(err, cap, "out of memory");
        return -EAGAIN;
    }
    if (PQstatus(p->conn) != CONNECTION_OK) {
        store_err_copy(err, cap, PQerrorMessage(p->conn));
        pg_drop(p);
        return -EAGAIN;
    }
    int rc = exec_ok(p, PQexec(p->conn, pg_create), err, cap);
    if (rc != 0) {
        goto out;
    }
    rc = exec_ok(p, PQexec(p->conn, pg_migrate), err, cap);
    if (rc != 0) {
        goto out;
    }
    rc = exec_ok(p, PQprepare(p->conn, PG_STMT, pg_insert, 10, NULL), err, cap);
    if (rc != 0) {
        goto out;
    }
    if (PQenterPipelineMode(p->conn) != 1) {
        store_err_copy(err, cap, PQerrorMessage(p->conn));
        rc = -EAGAIN;
    }
out:
    if (rc != 0) {
        pg_drop(p);
    }
    return rc;
}

int pool_pg_new(struct pool_pg **out, const char *conninfo, const char *issued_by)
{
    ASSERT(out != NULL);
    struct pool_pg *p = calloc(1, sizeof(*p));
    if (p == NULL) {
        return -ENOMEM;
    }
    if (base_str_copy(p->conninfo, sizeof(p->conninfo), conninfo) != 0 ||
        base_str_copy(p->issued_by, sizeof(p->issued_by), issued_by) != 0) {
        free(p);
        return -EINVAL;
    }
    *out = p;
    return 0;
}

void pool_pg_free(struct pool_pg *p)
{
    if (p == NULL) {
        return;
    }
    pg_drop(p);
    free(p);
}

/* get_result waits (until `deadline_ms`, monotonic) for the next result. NULL with *out_dead
 * set means the connection failed or timed out; NULL without it ends one query's results. */
static PGresult *get_result(PGconn *c, uint64_t deadline_ms, bool *out_dead, char *err, size_t cap)
{
    /* Bounded by the deadline. */
    while (PQisBusy(c)) {
        uint64_t now = clock_mono_ns() / 1000000u;
        if (now >= deadline_ms) {
            store_err_copy(err, cap, "timed out waiting for the server");
            *out_dead = true;
            return NULL;
        }
        struct pollfd pfd = {.fd = PQsocket(c), .events = POLLIN};
        int n = poll(&pfd, 1, (int)(deadline_ms - now));
        if (n == -1 && errno != EINTR) {
            store_err_copy(err, cap, strerror(errno));
            *out_dead = true;
            return NULL;
        }
        if (n > 0 && PQconsumeInput(c) == 0) {
            store_err_copy(err, cap, PQerrorMessage(c));
            *out_dead = true;
            return NULL;
        }
    }
    return PQgetResult(c);
}

static bool sqlstate_permanent(const PGresult *res)
{
    const char *s = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    /* Class 22 (data exception) and 23 (integrity constraint violation): this row will never
     * be accepted as it is. Everything else (08 connection, 57 operator intervention, 53
     * resources, ...) is the store's state and passes. */
    return s != NULL && (strncmp(s, "22", 2) == 0 || strncmp(s, "23", 2) == 0);
}

static int send_rows(struct pool_pg *p, struct pool_row *rows, size_t n, char *err, size_t cap)
{
    for (size_t i = 0; i < n; i++) {
        char nb[24];
        char na[24];
        char ia[24];
        char ra[24];
        snprintf(nb, sizeof(nb), "%lld", (long long)rows[i].meta.not_before_s);
        snprintf(na, sizeof(na), "%lld", (long long)rows[i].meta.not_after_s);
        snprintf(ia, sizeof(ia), "%lld", (long long)rows[i].meta.issued_at_s);
        snprintf(ra, sizeof(ra), "%lld", (long long)rows[i].revoked_at_s);
        bool revoked = rows[i].revoked_at_s != 0;
        const char *vals[10] = {rows[i].serial,
                                rows[i].meta.uri,
                                rows[i].meta.device_id[0] != '\0' ? rows[i].meta.device_id : NULL,
                                nb,
                                na,
                                (const char *)rows[i].der,
                                p->issued_by,
                                ia,
                                revoked ? ra : NULL,
                                revoked ? store_revoke_reason_name(rows[i].reason) : NULL};
        int lens[10] = {0, 0, 0, 0, 0, (int)rows[i].der_len, 0, 0, 0, 0};
        int fmts[10] = {0, 0, 0, 0, 0, 1, 0, 0, 0, 0};
        if (PQsendQueryPrepared(p->conn, PG_STMT, 10, vals, lens, fmts, 0) != 1) {
            store_err_copy(err, cap, PQerrorMessage(p->conn));
            return -EAGAIN;
        }
    }
    if (PQpipelineSync(p->conn) != 1) { /* also flushes */
        store_err_copy(err, cap, PQerrorMessage(p->conn));
        return -EAGAIN;
    }
    return 0;
}

/* read_row reads the result of one row (and the NULL after it). Returns 0 or -EAGAIN (dead). */
static int read_row(struct pool_pg *p, struct pool_row *row, uint64_t deadline, bool *aborted,
                    char *err, size_t cap)
{
    bool dead = false;
    PGresult *res = get_result(p->conn, deadline, &dead, err, cap);
    if (res == NULL) {
        if (!dead) {
            store_err_copy(err, cap, "no result from the server");
        }
        return -EAGAIN;
    }
    int rc = 0;
    ExecStatusType stt = PQresultStatus(res);
    if (stt == PGRES_COMMAND_OK) {
        row->rc = 0;
    } else if (stt == PGRES_PIPELINE_ABORTED) {
        row->rc = -EAGAIN;
    } else if (stt == PGRES_FATAL_ERROR && sqlstate_permanent(res)) {
        row->rc = -EINVAL;
        store_err_copy(row->error, sizeof(row->error), PQresultErrorMessage(res));
        *aborted = true;
    } else {
        store_err_copy(err, cap, PQresultErrorMessage(res));
        rc = -EAGAIN;
    }
    PQclear(res);
    if (rc == 0) {
        res = get_result(p->conn, deadline, &dead, err, cap);
        if (res != NULL || dead) {
            PQclear(res);
            store_err_copy(err, cap, "protocol: unexpected result");
            rc = -EAGAIN;
        }
    }
    return rc;
}

/* read_sync reads the result of the batch's Sync. Returns 0 or -EAGAIN (cause in `err`). */
static int read_sync(struct pool_pg *p, uint64_t deadline, char *err, size_t cap)
{
    bool dead = false;
    PGresult *res = get_result(p->conn, deadline, &dead, err, cap);
    int rc = 0;
    if (res == NULL || PQresultStatus(res) != PGRES_PIPELINE_SYNC) {
        if (res != NULL) {
            store_err_copy(err, cap, "protocol: no sync");
        }
        rc = -EAGAIN;
    }
    PQclear(res);
    return rc;
}

int pool_pg_publish(struct pool_pg *p, struct pool_row *rows, size_t n, char *err, size_t cap)
{
    ASSERT(p != NULL);
    ASSERT(n <= STORE_PUBLISH_BATCH_MAX);
    uint64_t deadline = 0;
    bool aborted = false;
    int rc = 0;
    if (p->conn == NULL) {
        rc = pg_connect(p, err, cap);
        if (rc != 0) {
            goto out;
        }
    }
    rc = send_rows(p, rows, n, err, cap);
    if (rc != 0) {
        goto out;
    }
    deadline = clock_mono_ns() / 1000000u + PG_RESULT_DEADLINE_MS;
    for (size_t i = 0; i < n; i++) {
        rc = read_row(p, &rows[i], deadline, &aborted, err, cap);
        if (rc != 0) {
            goto out;
        }
    }
    rc = read_sync(p, deadline, err, cap);
    if (rc != 0) {
        goto out;
    }
    for (size_t i = 0; aborted && i < n; i++) {
        rows[i].rc = rows[i].rc == 0 ? -EAGAIN : rows[i].rc; /* rolled back with the bad row */
    }
out:
    if (rc != 0) {
        pg_drop(p); /* the next attempt starts with a fresh connection */
        return -EAGAIN;
    }
    return 0;
}

int pool_pg_check(const char *conninfo, char *err, size_t cap)
{
    PGconn *c = pg_connect_raw(conninfo);
    int rc = 0;
    if (c == NULL || PQstatus(c) != CONNECTION_OK) {
        store_err_copy(err, cap, c != NULL ? PQerrorMessage(c) : "out of memory");
        rc = -EHOSTUNREACH;
    }
    PQfinish(c);
    return rc;
}
