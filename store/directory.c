/* directory.c: certprovd's directory thread, cp-directory (README, The fleet directory). The
 * replica follows the directory by change seq: it asks for the rows after the last seq it applied
 * (meta "dirseq", written in the same LMDB transaction as the rows), DIR_BATCH_MAX at a time, one
 * LMDB transaction per batch; the first run (no "dirseq") is therefore the full load, in batches,
 * with its progress in the log. It then waits on its connection's socket (LISTEN
 * certprov_directory: every writer NOTIFYs in its transaction) or poll_ms, whichever comes first,
 * and asks again. A failure drops the connection and reconnects with backoff (1 s to 30 s, full
 * jitter); meanwhile the rings serve from the replica as it is, and /readyz shows the lag.
 *
 * The thread is the only place libpq runs for the directory inside certprovd (the rings never
 * wait for it: they only read the replica). A row whose PIN key id is not this appliance's is
 * skipped (its verifier would never match); a row the replica refuses (a local user that clashes)
 * is skipped and counted, logged once each. */
#include <errno.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <poll.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/base.h"
#include "store/internal.h"

#define DIR_META_SEQ "dirseq"
#define DIR_META_LOCKSEQ "dirlockseq"
#define DIR_META_REVSEQ "dirrevseq"
#define DIR_SHIP_MAX 256u /* lockout notes per directory transaction */
#define DIR_BATCH_DEFAULT 10000u
#define DIR_BATCH_MAX 100000u
#define DIR_POLL_DEFAULT_MS 5000u
#define DIR_BACKOFF_MIN_MS 1000u
#define DIR_BACKOFF_MAX_MS 30000u
#define DIR_STMT_TIMEOUT_MS 30000u

struct dir_row {
    struct store_user user;
    bool deleted;
    bool foreign_key;   /* another PIN key's verifier */
    int64_t disabled_s; /* 0: enabled */
    uint64_t seq;
};

struct dir_note {
    char uri[STORE_URI_MAX + 1];
    struct store_lockout l;
};

struct dir_lockrow {
    char uri[STORE_URI_MAX + 1];
    struct store_lockout l;
    bool reset;
    bool own_reset; /* a reset this appliance's certprovctl wrote, after clearing this replica */
    uint64_t seq;
};

struct dir_serial {
    uint8_t serial[STORE_SERIAL_LEN];
    int64_t issued_s;
    char uri[STORE_URI_MAX + 1]; /* its user: `user revoke-certs` through another appliance */
};

struct dir_revrow {
    uint8_t serial[STORE_SERIAL_LEN];
    uint8_t reason;
    bool lifted;
    int64_t revoked_at_s;
};

struct store_directory {
    struct store *st; /* borrowed */
    char appliance[STORE_POOL_MAX + 1 + 192];
    char conninfo[STORE_CONNINFO_MAX + 1];
    char key_id[STORE_PIN_KEY_ID_HEX];
    uint32_t poll_ms;
    uint32_t batch_max;
    uint32_t window_s; /* [pin] window_s: how far apart two overlapping windows begin */
    pthread_t thread;
    bool started;
    int wake[2]; /* stop: a byte written to wake[1] */
    _Atomic bool stop;
    PGconn *conn; /* the thread's */
    uint32_t attempts;
    uint64_t rnd;
    struct dir_row *rows;         /* batch_max */
    uint64_t seq;                 /* the thread's copy of meta "dirseq" */
    uint64_t lockseq;             /* meta "dirlockseq" */
    struct dir_lockrow *lockrows; /* batch_max */
    uint64_t revseq;              /* meta "dirrevseq" */
    struct dir_revrow *revrows;   /* batch_max */
    uint8_t *ca_der;              /* this appliance's CA (NULL: none) */
    size_t ca_der_len;
    char ca_id[65];
    void (*cas_changed)(void *ctx, const uint8_t *const *ders, const size_t *lens, size_t num);
    void *cas_ctx;
    uint64_t cas_seq;  /* max(seq) of certprov_cas when the set was last passed on */
    uint64_t cas_rows; /* count(*) then */
    bool cas_known;
    struct dir_note ship[DIR_SHIP_MAX]; /* the thread's: notes being shipped */
    pthread_mutex_t lock;               /* guards stats and the notes queue */
    struct store_directory_stats stats;
    struct dir_serial *serials; /* ring of STORE_DIRECTORY_SERIALS_MAX (under lock) */
    uint32_t serials_head;
    uint32_t serials_len;
    struct dir_serial sship[DIR_SHIP_MAX]; /* the thread's: serials being shipped */
    /* The thread's: "{HEX,HEX,...}", a text[] literal of their hex serials (no quoting needed),
     * "{T,T,...}", their issue times, and {"URI",...}, their users (quoted, \ and " escaped). */
    char ship_list[DIR_SHIP_MAX * (2 * STORE_SERIAL_LEN + 1) + 3];
    char ship_times[DIR_SHIP_MAX * 22 + 3];
    char ship_uris[DIR_SHIP_MAX * (2 * STORE_URI_MAX + 3) + 3];
    struct dir_note *notes; /* ring of STORE_DIRECTORY_NOTES_MAX */
    uint32_t notes_head;
    uint32_t notes_len;
};

static int meta_seq_get(struct store *st, const char *name, bool *out_have, uint64_t *out)
{
    MDB_txn *txn = NULL;
    int rc = store_txn_begin(st, &txn, false);
    if (rc != 0) {
        return rc;
    }
    MDB_val key = store_val_str(name);
    MDB_val val = {0};
    rc = store_err(st, mdb_get(txn, st->meta, &key, &val), "get_dirseq");
    *out_have = rc == 0;
    if (rc == 0) {
        ASSERT(val.mv_size == STORE_SEQ_KEY_LEN);
        *out = store_seq_decode(val.mv_data);
    }
    mdb_txn_abort(txn);
    return rc == -ENOENT ? 0 : rc;
}

static void set_error(struct store_directory *d, const char *err)
{
    base_mutex_lock(&d->lock);
    d->stats.up = false;
    store_err_copy(d->stats.error, sizeof(d->stats.error), err);
    base_mutex_unlock(&d->lock);
}

static void drop(struct store_directory *d)
{
    if (d->conn != NULL) {
        PQfinish(d->conn);
        d->conn = NULL;
    }
}

static int register_ca(struct store_directory *d);

/* connect_dir connects, checks the PIN key id, LISTENs and registers this appliance's issuing CA. 0
 * or -EAGAIN (the cause set). */
static int connect_dir(struct store_directory *d)
{
    char err[STORE_ERROR_MAX + 1] = "";
    char have[64] = "";
    ASSERT(d->conn == NULL);
    d->conn = store_dir_conn_raw(d->conninfo, DIR_STMT_TIMEOUT_MS);
    int rc = 0;
    if (d->conn == NULL || PQstatus(d->conn) != CONNECTION_OK) {
        store_err_copy(err, sizeof(err), d->conn != NULL ? PQerrorMessage(d->conn) : "no memory");
        rc = -EAGAIN;
    }
    rc = rc != 0 ? rc : store_dir_key_get(d->conn, have, sizeof(have), err, sizeof(err));
    bool refused = rc == 0 && strcmp(have, d->key_id) != 0;
    if (refused) {
        snprintf(err, sizeof(err),
                 "the directory's PIN key id %.16s is not this appliance's (%.16s)", have,
                 d->key_id);
        rc = -EKEYREJECTED;
    }
    rc = rc != 0 ? rc : store_dir_exec(d->conn, "LISTEN certprov_directory", err, sizeof(err));
    if (rc == 0 && register_ca(d) != 0) {
        drop(d);
        return -EAGAIN;
    }
    if (rc != 0) {
        drop(d);
        set_error(d, err);
        base_mutex_lock(&d->lock);
        d->stats.key_refused = refused;
        base_mutex_unlock(&d->lock);
        return -EAGAIN;
    }
    return 0;
}

static int hex_to(uint8_t *out, size_t len, const char *hex)
{
    if (strlen(hex) != 2 * len) {
        return -EBADMSG;
    }
    for (size_t i = 0; i < 2 * len; i++) {
        char c = hex[i];
        int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (v < 0) {
            return -EBADMSG;
        }
        out[i / 2] = (uint8_t)(i % 2 == 0 ? v << 4 : out[i / 2] | v);
    }
    return 0;
}

/* meta_seq_put records in the replica's meta the seq up to which a table was applied. */
static int meta_seq_put(struct store *st, MDB_txn *txn, const char *name, uint64_t seq,
                        const char *what)
{
    uint8_t v[STORE_SEQ_KEY_LEN];
    store_seq_encode(v, seq);
    MDB_val key = store_val_str(name);
    MDB_val val = {.mv_size = sizeof(v), .mv_data = v};
    return store_err(st, mdb_put(txn, st->meta, &key, &val, 0), what);
}

/* rows_after runs `sql` (a SELECT ending "WHERE seq > $1::bigint ORDER BY seq LIMIT
 * $2::bigint") for the rows after `after`, at most batch_max. Returns the result, or NULL with
 * the cause set (the connection failed). */
static PGresult *rows_after(struct store_directory *d, const char *sql, uint64_t after)
{
    char a[24];
    char limit[16];
    snprintf(a, sizeof(a), "%llu", (unsigned long long)after);
    snprintf(limit, sizeof(limit), "%u", d->batch_max);
    const char *vals[2] = {a, limit};
    PGresult *res = PQexecParams(d->conn, sql, 2, NULL, vals, NULL, NULL, 0);
    if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK) {
        set_error(d, res != NULL ? PQresultErrorMessage(res) : PQerrorMessage(d->conn));
        PQclear(res);
        return NULL;
    }
    return res;
}

/* parse_row reads row `i` of `res` (the columns of pull's SELECT). -EBADMSG: a field does not
 * fit the replica (over-long, a bad verifier): the row is skipped. */
static int parse_row(struct dir_row *r, PGresult *res, int i, const char *key_id)
{
    memset(r, 0, sizeof(*r));
    r->seq = strtoull(PQgetvalue(res, i, 8), NULL, 10);
    r->deleted = strcmp(PQgetvalue(res, i, 7), "t") == 0;
    r->foreign_key = strcmp(PQgetvalue(res, i, 9), key_id) != 0;
    r->disabled_s = strtoll(PQgetvalue(res, i, 10), NULL, 10);
    struct store_user *u = &r->user;
    if (base_str_copy(u->uri, sizeof(u->uri), PQgetvalue(res, i, 0)) != 0 ||
        base_str_copy(u->pool, sizeof(u->pool), PQgetvalue(res, i, 1)) != 0 ||
        base_str_copy(u->phone, sizeof(u->phone), PQgetvalue(res, i, 2)) != 0 ||
        base_str_copy(u->ext, sizeof(u->ext), PQgetvalue(res, i, 3)) != 0) {
        return -EBADMSG;
    }
    if (r->deleted) {
        return 0;
    }
    unsigned long len = strtoul(PQgetvalue(res, i, 5), NULL, 10);
    if (len > 255 || hex_to(u->pin_verifier, sizeof(u->pin_verifier), PQgetvalue(res, i, 4)) != 0) {
        return -EBADMSG;
    }
    u->pin_len = (uint8_t)len;
    u->created_s = strtoll(PQgetvalue(res, i, 6), NULL, 10);
    return 0;
}

/* ---- the feeds: the rows of a table after a seq, applied to the replica batch by batch ----
 *
 * certprov_users, certprov_lockouts and certprov_revocations are read the same way: at most
 * batch_max rows after the last seq applied, each read into the feed's array (or skipped when
 * it does not fit the replica), then all of them and the new seq in one replica transaction, so
 * that a crash replays a whole batch or none of it. */

struct feed_batch {
    struct store_directory *d;
    const struct feed *f;
    size_t num;         /* rows read into the feed's array */
    uint64_t last_seq;  /* the highest seq read, skipped rows included */
    uint64_t conflicts; /* rows skipped or refused that the stats count */
};

struct feed {
    const char *sql; /* SELECT ... WHERE seq > $1::bigint ORDER BY seq LIMIT $2::bigint */
    size_t seq_off;  /* offsetof the feed's last applied seq in the directory */
    const char *meta_key, *meta_op; /* where the replica keeps that seq */
    /* parse reads row i of res into array slot b->num (b->num++), or skips it; either way
     * b->last_seq becomes the row's seq. */
    void (*parse)(struct feed_batch *b, PGresult *res, int i);
    /* apply puts the b->num rows inside txn: 0 or a store error (the batch is then not
     * applied). */
    int (*apply)(struct store *st, MDB_txn *txn, struct feed_batch *b);
    void (*note)(struct store_directory *d, const struct feed_batch *b); /* stats; d->lock held */
};

static int feed_txn(struct store *st, MDB_txn *txn, void *arg)
{
    struct feed_batch *b = arg;
    int rc = b->f->apply(st, txn, b);
    return rc != 0 ? rc : meta_seq_put(st, txn, b->f->meta_key, b->last_seq, b->f->meta_op);
}

/* feed_batch_pull applies the next batch of `f`: 0 with *out_rows rows read (fewer than
 * batch_max: the feed is drained), -EAGAIN (the connection failed: cause set) or a store error. */
static int feed_batch_pull(struct store_directory *d, const struct feed *f, size_t *out_rows)
{
    uint64_t *seq = (uint64_t *)(void *)((char *)d + f->seq_off);
    PGresult *res = rows_after(d, f->sql, *seq);
    if (res == NULL) {
        return -EAGAIN;
    }
    int n = PQntuples(res);
    ASSERT(n >= 0 && (uint32_t)n <= d->batch_max);
    struct feed_batch b = {.d = d, .f = f, .last_seq = *seq};
    for (int i = 0; i < n; i++) {
        f->parse(&b, res, i);
    }
    PQclear(res);
    int rc = n == 0 ? 0 : store_write(d->st, feed_txn, &b);
    if (rc != 0) {
        set_error(d, "the replica refused the write (see the store's log line)");
        return rc;
    }
    *seq = b.last_seq;
    base_mutex_lock(&d->lock);
    f->note(d, &b);
    base_mutex_unlock(&d->lock);
    *out_rows = (size_t)n;
    return 0;
}

/* feed_pull applies every batch of `f`. 0, -EAGAIN or a store error. */
static int feed_pull(struct store_directory *d, const struct feed *f)
{
    for (;;) { /* bounded by the rows after the seq: each batch advances it */
        size_t n = 0;
        int rc = feed_batch_pull(d, f, &n);
        if (rc != 0 || n < d->batch_max) {
            return rc;
        }
    }
}

/* ---- certprov_users ---- */

static void user_parse(struct feed_batch *b, PGresult *res, int i)
{
    struct dir_row *r = &b->d->rows[b->num];
    if (parse_row(r, res, i, b->d->key_id) != 0) {
        log_warn("directory: skipped row seq=%s reason=does_not_fit", PQgetvalue(res, i, 8));
        b->last_seq = strtoull(PQgetvalue(res, i, 8), NULL, 10);
        return;
    }
    ASSERT(r->seq > b->last_seq);
    b->last_seq = r->seq;
    b->num++;
}

static int user_apply_row(struct store *st, MDB_txn *txn, struct feed_batch *b,
                          const struct dir_row *r)
{
    if (r->deleted) {
        int rc = store_user_replica_del(st, txn, r->user.uri);
        rc = rc == -ENOENT ? 0 : rc;
        return rc != 0 ? rc : store_user_disabled_put(st, txn, r->user.uri, 0);
    }
    if (r->foreign_key) {
        log_warn("directory: skipped user=%s seq=%llu reason=another_pin_key", r->user.uri,
                 (unsigned long long)r->seq);
        b->conflicts++;
        return 0;
    }
    struct store_user_refusal ref;
    int rc = store_user_replica_put(st, txn, &ref, &r->user);
    if (rc == -EEXIST || rc == -ENOTUNIQ || rc == -EINVAL) {
        log_warn("directory: skipped user=%s seq=%llu reason=%s clashes_with=%s", r->user.uri,
                 (unsigned long long)r->seq, rc == -EINVAL ? "invalid" : "clash",
                 rc == -EINVAL ? "-" : ref.uri);
        b->conflicts++;
        return 0;
    }
    /* Disabled users (README, Revocation) are the fleet's too: no sign-in, no renewal. */
    return rc != 0 ? rc : store_user_disabled_put(st, txn, r->user.uri, r->disabled_s);
}

static int user_apply(struct store *st, MDB_txn *txn, struct feed_batch *b)
{
    for (size_t i = 0; i < b->num; i++) {
        int rc = user_apply_row(st, txn, b, &b->d->rows[i]);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

static void user_note(struct store_directory *d, const struct feed_batch *b)
{
    d->stats.seq = b->last_seq;
    d->stats.applied += (uint64_t)b->num;
    d->stats.conflicts += b->conflicts;
}

static const struct feed user_feed = {
    .sql = "SELECT uri, pool, phone, extension, encode(pin_verifier, 'hex'), pin_len,"
           " created_at, deleted, seq, pin_key_id, disabled_at FROM certprov_users"
           " WHERE seq > $1::bigint ORDER BY seq LIMIT $2::bigint",
    .seq_off = offsetof(struct store_directory, seq),
    .meta_key = DIR_META_SEQ,
    .meta_op = "put_dirseq",
    .parse = user_parse,
    .apply = user_apply,
    .note = user_note,
};

void store_directory_lockout_note(struct store_directory *d, const char *uri,
                                  const struct store_lockout *l)
{
    if (d == NULL) {
        return;
    }
    ASSERT(uri != NULL);
    ASSERT(l != NULL);
    base_mutex_lock(&d->lock);
    if (d->notes_len == STORE_DIRECTORY_NOTES_MAX) {
        d->stats.lockout_dropped++;
        base_mutex_unlock(&d->lock);
        return;
    }
    struct dir_note *n = &d->notes[(d->notes_head + d->notes_len) % STORE_DIRECTORY_NOTES_MAX];
    (void)base_str_copy(n->uri, sizeof(n->uri), uri); /* a stored user's URI: it fits */
    n->l = *l;
    d->notes_len++;
    base_mutex_unlock(&d->lock);
    char b = 1;
    ssize_t w = write(d->wake[1], &b, 1);
    (void)w; /* a full pipe wakes the thread already */
}

void store_directory_serials_note(struct store_directory *d, const struct store_batch_item *items,
                                  size_t num)
{
    if (d == NULL) {
        return;
    }
    ASSERT(items != NULL || num == 0);
    ASSERT(num <= STORE_BATCH_MAX);
    bool any = false;
    base_mutex_lock(&d->lock);
    for (size_t i = 0; i < num; i++) {
        if (items[i].rc != 0) {
            continue;
        }
        if (d->serials_len == STORE_DIRECTORY_SERIALS_MAX) {
            d->stats.serials_dropped++;
            continue;
        }
        struct dir_serial *n =
            &d->serials[(d->serials_head + d->serials_len) % STORE_DIRECTORY_SERIALS_MAX];
        memcpy(n->serial, items[i].meta.serial, STORE_SERIAL_LEN);
        n->issued_s = items[i].meta.issued_at_s;
        memcpy(n->uri, items[i].meta.uri, sizeof(n->uri));
        d->serials_len++;
        any = true;
    }
    base_mutex_unlock(&d->lock);
    if (any) {
        char c = 1;
        ssize_t w = write(d->wake[1], &c, 1);
        (void)w; /* a full pipe wakes the thread already */
    }
}

/* ship_serials writes the queued issued serials to certprov_serials, DIR_SHIP_MAX per
 * transaction (two statements: the INSERT of the new ones, then the ones another appliance
 * holds), and removes them from the queue only once committed. A clash is logged (error) and
 * counted, never silent. 0 or -EAGAIN (the cause set). */
/* array_text appends `s` to a PostgreSQL array literal at out + *at as a quoted element. */
static void array_text(char *out, size_t *at, const char *s)
{
    out[(*at)++] = '"';
    for (; *s != '\0'; s++) {
        if (*s == '"' || *s == '\\') {
            out[(*at)++] = '\\';
        }
        out[(*at)++] = *s;
    }
    out[(*at)++] = '"';
}

static int ship_serials(struct store_directory *d)
{
    char *list = d->ship_list;
    char *times = d->ship_times;
    char *uris = d->ship_uris;
    for (;;) { /* bounded: the queue only shrinks here, new serials wait for the next round */
        base_mutex_lock(&d->lock);
        uint32_t n = d->serials_len < DIR_SHIP_MAX ? d->serials_len : DIR_SHIP_MAX;
        for (uint32_t i = 0; i < n; i++) {
            d->sship[i] = d->serials[(d->serials_head + i) % STORE_DIRECTORY_SERIALS_MAX];
        }
        base_mutex_unlock(&d->lock);
        if (n == 0) {
            return 0;
        }
        size_t at = 0;
        size_t tat = 0;
        size_t uat = 0;
        list[at++] = '{';
        times[tat++] = '{';
        uris[uat++] = '{';
        for (uint32_t i = 0; i < n; i++) {
            ASSERT(strlen(d->sship[i].uri) <= STORE_URI_MAX);
            array_text(uris, &uat, d->sship[i].uri);
            uris[uat++] = i + 1 < n ? ',' : '}';
            char hex[2 * STORE_SERIAL_LEN + 1];
            store_serial_hex(hex, d->sship[i].serial);
            size_t len = strlen(hex);
            memcpy(list + at, hex, len);
            at += len;
            list[at++] = i + 1 < n ? ',' : '}';
            int w = snprintf(times + tat, sizeof(d->ship_times) - tat, "%lld%c",
                             (long long)d->sship[i].issued_s, i + 1 < n ? ',' : '}');
            ASSERT(w > 0 && (size_t)w < sizeof(d->ship_times) - tat);
            tat += (size_t)w;
        }
        list[at] = '\0';
        uris[uat] = '\0';
        char err[STORE_ERROR_MAX + 1] = "";
        const char *vals[4] = {list, d->appliance, times, uris};
        int rc = store_dir_exec(d->conn, "BEGIN", err, sizeof(err));
        PGresult *res = NULL;
        if (rc == 0) {
            res = PQexecParams(d->conn,
                               "INSERT INTO certprov_serials (serial, appliance, issued_at, uri)"
                               " SELECT s, $2, t, u FROM"
                               " unnest($1::text[], $3::bigint[], $4::text[]) AS x(s, t, u)"
                               " ON CONFLICT (serial) DO NOTHING",
                               4, NULL, vals, NULL, NULL, 0);
            if (res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK) {
                store_err_copy(err, sizeof(err),
                               res != NULL ? PQresultErrorMessage(res) : PQerrorMessage(d->conn));
                rc = -EIO;
            }
            PQclear(res);
            res = NULL;
        }
        uint64_t clashes = 0;
        if (rc == 0) {
            res = PQexecParams(d->conn,
                               "SELECT serial, appliance FROM certprov_serials"
                               " WHERE serial = ANY($1::text[]) AND appliance <> $2",
                               2, NULL, vals, NULL, NULL, 0);
            if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK) {
                store_err_copy(err, sizeof(err),
                               res != NULL ? PQresultErrorMessage(res) : PQerrorMessage(d->conn));
                rc = -EIO;
            } else {
                for (int i = 0; i < PQntuples(res); i++) {
                    log_err("directory: serial_clash serial=%s other_appliance=\"%s\" "
                            "action=\"the serial is in two certificates: revoke this "
                            "appliance's\"",
                            PQgetvalue(res, i, 0), PQgetvalue(res, i, 1));
                    clashes++;
                }
            }
            PQclear(res);
        }
        rc = rc != 0 ? rc : store_dir_exec(d->conn, "COMMIT", err, sizeof(err));
        if (rc != 0) {
            PQclear(PQexec(d->conn, "ROLLBACK"));
            set_error(d, err);
            return -EAGAIN;
        }
        base_mutex_lock(&d->lock);
        ASSERT(d->serials_len >= n);
        d->serials_head = (d->serials_head + n) % STORE_DIRECTORY_SERIALS_MAX;
        d->serials_len -= n;
        d->stats.serials_shipped += n;
        d->stats.serial_clashes += clashes;
        base_mutex_unlock(&d->lock);
    }
}

/* ship_notes writes the queued lockout notes to the directory, DIR_SHIP_MAX per transaction,
 * and removes them from the queue only once committed. 0 or -EAGAIN (the cause set). */
static int ship_notes(struct store_directory *d)
{
    for (;;) { /* bounded: the queue only shrinks here, new notes wait for the next round */
        base_mutex_lock(&d->lock);
        uint32_t n = d->notes_len < DIR_SHIP_MAX ? d->notes_len : DIR_SHIP_MAX;
        for (uint32_t i = 0; i < n; i++) {
            d->ship[i] = d->notes[(d->notes_head + i) % STORE_DIRECTORY_NOTES_MAX];
        }
        base_mutex_unlock(&d->lock);
        if (n == 0) {
            return 0;
        }
        char err[STORE_ERROR_MAX + 1] = "";
        int rc = store_dir_exec(d->conn, "BEGIN", err, sizeof(err));
        rc = rc != 0 ? rc : store_dir_exec(d->conn, STORE_DIR_LOCKOUT_LOCK, err, sizeof(err));
        char win[16];
        snprintf(win, sizeof(win), "%u", d->window_s);
        for (uint32_t i = 0; rc == 0 && i < n; i++) {
            const struct store_lockout *l = &d->ship[i].l;
            char wf[16], ws[24], tf[24], lu[24];
            snprintf(wf, sizeof(wf), "%u", l->window_failures);
            snprintf(ws, sizeof(ws), "%lld", (long long)l->window_start_s);
            snprintf(tf, sizeof(tf), "%llu", (unsigned long long)l->total_failures);
            snprintf(lu, sizeof(lu), "%lld", (long long)l->locked_until_s);
            const char *vals[9] = {
                d->ship[i].uri, wf,           ws, tf, lu, l->admin_locked ? "true" : "false",
                "false",        d->appliance, win};
            PGresult *res =
                PQexecParams(d->conn, store_dir_lockout_upsert, 9, NULL, vals, NULL, NULL, 0);
            if (res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK) {
                store_err_copy(err, sizeof(err),
                               res != NULL ? PQresultErrorMessage(res) : PQerrorMessage(d->conn));
                rc = -EIO;
            }
            PQclear(res);
        }
        rc = rc != 0 ? rc : store_dir_exec(d->conn, STORE_DIR_NOTIFY, err, sizeof(err));
        rc = rc != 0 ? rc : store_dir_exec(d->conn, "COMMIT", err, sizeof(err));
        if (rc != 0) {
            set_error(d, err);
            return -EAGAIN;
        }
        base_mutex_lock(&d->lock);
        ASSERT(d->notes_len >= n);
        d->notes_head = (d->notes_head + n) % STORE_DIRECTORY_NOTES_MAX;
        d->notes_len -= n;
        d->stats.lockout_shipped += n;
        base_mutex_unlock(&d->lock);
    }
}

/* windows_overlap: two windows begun at a and b (0: none) are one window of the fleet, counted
 * by maximum: the same one, or two that appliances began before each saw the other's (begun less
 * than window_s apart). Else the newer window is the current one. */
static bool windows_overlap(int64_t a, int64_t b, uint32_t window_s)
{
    if (a == b) {
        return true;
    }
    if (a == 0 || b == 0) {
        return false;
    }
    return (a > b ? a - b : b - a) < (int64_t)window_s;
}

/* lockout_merge makes `cur` (the replica's state) take in `r` (the fleet's): as the directory's
 * own merge (dirpg.c store_dir_lockout_upsert); a reset clears the counters and locks and keeps
 * the user's last refusal. Overlapping windows keep the later start and the larger count: taking
 * the newer window's smaller count would forget failures this appliance judged, and let it judge
 * more than window_failures before it locks. */
static void lockout_merge(struct store_lockout *cur, const struct dir_lockrow *r, uint32_t window_s)
{
    if (r->reset) {
        cur->window_failures = 0;
        cur->window_start_s = 0;
        cur->total_failures = 0;
        cur->locked_until_s = 0;
        cur->admin_locked = false;
        return;
    }
    if (windows_overlap(cur->window_start_s, r->l.window_start_s, window_s)) {
        if (r->l.window_start_s > cur->window_start_s) {
            cur->window_start_s = r->l.window_start_s;
        }
        if (r->l.window_failures > cur->window_failures) {
            cur->window_failures = r->l.window_failures;
        }
    } else if (r->l.window_start_s > cur->window_start_s) {
        cur->window_start_s = r->l.window_start_s;
        cur->window_failures = r->l.window_failures;
    }
    if (r->l.total_failures > cur->total_failures) {
        cur->total_failures = r->l.total_failures;
    }
    if (r->l.locked_until_s > cur->locked_until_s) {
        cur->locked_until_s = r->l.locked_until_s;
    }
    cur->admin_locked = cur->admin_locked || r->l.admin_locked;
}

static void lock_parse(struct feed_batch *b, PGresult *res, int i)
{
    struct dir_lockrow *r = &b->d->lockrows[b->num];
    memset(r, 0, sizeof(*r));
    b->last_seq = strtoull(PQgetvalue(res, i, 7), NULL, 10);
    if (base_str_copy(r->uri, sizeof(r->uri), PQgetvalue(res, i, 0)) != 0) {
        return; /* no user of the replica has such a URI */
    }
    r->l.window_failures = (uint32_t)strtoul(PQgetvalue(res, i, 1), NULL, 10);
    r->l.window_start_s = strtoll(PQgetvalue(res, i, 2), NULL, 10);
    r->l.total_failures = strtoull(PQgetvalue(res, i, 3), NULL, 10);
    r->l.locked_until_s = strtoll(PQgetvalue(res, i, 4), NULL, 10);
    r->l.admin_locked = strcmp(PQgetvalue(res, i, 5), "t") == 0;
    r->reset = strcmp(PQgetvalue(res, i, 6), "t") == 0;
    r->own_reset = r->reset && b->d->appliance[0] != '\0' &&
                   strcmp(PQgetvalue(res, i, 8), b->d->appliance) == 0;
    r->seq = b->last_seq;
    b->num++;
}

static int lock_apply(struct store *st, MDB_txn *txn, struct feed_batch *b)
{
    for (size_t i = 0; i < b->num; i++) {
        const struct dir_lockrow *r = &b->d->lockrows[i];
        if (r->own_reset) {
            /* `user unlock` through this appliance cleared this replica before it wrote the
             * row: applied now, the row would also clear the failures judged since. */
            continue;
        }
        int rc = store_user_exists(st, txn, r->uri);
        if (rc == -ENOENT) {
            continue; /* not (yet) a user here: its state comes with the next change */
        }
        struct store_lockout cur;
        rc = rc != 0 ? rc : store_lockout_rec_get(st, txn, &cur, r->uri);
        if (rc != 0) {
            return rc;
        }
        lockout_merge(&cur, r, b->d->window_s);
        rc = store_lockout_rec_put(st, txn, r->uri, &cur);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

static void lock_note(struct store_directory *d, const struct feed_batch *b)
{
    d->stats.lockout_seq = b->last_seq;
}

/* The lockout rows after d->lockseq. */
static const struct feed lock_feed = {
    .sql = "SELECT uri, window_failures, window_start, total_failures, locked_until,"
           " admin_locked, reset, seq, appliance FROM certprov_lockouts WHERE seq > $1::bigint"
           " ORDER BY seq LIMIT $2::bigint",
    .seq_off = offsetof(struct store_directory, lockseq),
    .meta_key = DIR_META_LOCKSEQ,
    .meta_op = "put_dirlockseq",
    .parse = lock_parse,
    .apply = lock_apply,
    .note = lock_note,
};

/* serial_from_hex reads a serial as store_serial_hex writes it (hex, no leading zeros, at most
 * 16 bytes), right-aligned. -EBADMSG: not one. */
static int serial_from_hex(uint8_t out[STORE_SERIAL_LEN], const char *hex)
{
    size_t n = strlen(hex);
    if (n == 0 || n > 2 * STORE_SERIAL_LEN) {
        return -EBADMSG;
    }
    memset(out, 0, STORE_SERIAL_LEN);
    for (size_t i = 0; i < n; i++) {
        char c = hex[n - 1 - i];
        int v = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                       : -1;
        if (v < 0) {
            return -EBADMSG;
        }
        out[STORE_SERIAL_LEN - 1 - i / 2] |= (uint8_t)(i % 2 == 0 ? v : v << 4);
    }
    return 0;
}

static void rev_parse(struct feed_batch *b, PGresult *res, int i)
{
    struct dir_revrow *r = &b->d->revrows[b->num];
    memset(r, 0, sizeof(*r));
    b->last_seq = strtoull(PQgetvalue(res, i, 4), NULL, 10);
    if (serial_from_hex(r->serial, PQgetvalue(res, i, 0)) != 0 ||
        store_revoke_reason_parse(&r->reason, PQgetvalue(res, i, 1)) != 0) {
        log_warn("directory: skipped revocation seq=%llu reason=does_not_fit",
                 (unsigned long long)b->last_seq);
        b->conflicts++;
        return;
    }
    r->revoked_at_s = strtoll(PQgetvalue(res, i, 2), NULL, 10);
    r->lifted = strcmp(PQgetvalue(res, i, 3), "t") == 0;
    b->num++;
}

static int rev_apply(struct store *st, MDB_txn *txn, struct feed_batch *b)
{
    for (size_t i = 0; i < b->num; i++) {
        const struct dir_revrow *r = &b->d->revrows[i];
        int rc =
            store_revocation_replica_put(st, txn, r->serial, r->reason, r->revoked_at_s, r->lifted);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

static void rev_note(struct store_directory *d, const struct feed_batch *b)
{
    d->stats.revocation_seq = b->last_seq;
    d->stats.revocations_applied += (uint64_t)b->num;
    d->stats.conflicts += b->conflicts;
}

/* The revocation rows after d->revseq (README, The fleet directory): this appliance's
 * certificates are revoked as by certprovctl (CRL, OCSP, the pool store), others' recorded by
 * serial. */
static const struct feed rev_feed = {
    .sql = "SELECT serial, reason, revoked_at, lifted, seq FROM certprov_revocations"
           " WHERE seq > $1::bigint ORDER BY seq LIMIT $2::bigint",
    .seq_off = offsetof(struct store_directory, revseq),
    .meta_key = DIR_META_REVSEQ,
    .meta_op = "put_dirrevseq",
    .parse = rev_parse,
    .apply = rev_apply,
    .note = rev_note,
};

/* register_ca puts this appliance's issuing CA into certprov_cas (idempotent, by its id). 0 or
 * -EAGAIN (the cause set). */
static int register_ca(struct store_directory *d)
{
    if (d->ca_der == NULL) {
        return 0;
    }
    char err[STORE_ERROR_MAX + 1] = "";
    int rc = store_dir_exec(d->conn, "BEGIN", err, sizeof(err));
    rc = rc != 0 ? rc : store_dir_exec(d->conn, STORE_DIR_CAS_LOCK, err, sizeof(err));
    if (rc == 0) {
        const char *vals[3] = {d->ca_id, (const char *)d->ca_der, d->appliance};
        int lens[3] = {0, (int)d->ca_der_len, 0};
        int fmts[3] = {0, 1, 0};
        PGresult *res = PQexecParams(d->conn,
                                     "INSERT INTO certprov_cas (issuer, der, appliance, seq)"
                                     " VALUES ($1, $2, $3, nextval('certprov_seq'))"
                                     " ON CONFLICT (issuer) DO NOTHING",
                                     3, NULL, vals, lens, fmts, 0);
        if (res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK) {
            store_err_copy(err, sizeof(err),
                           res != NULL ? PQresultErrorMessage(res) : PQerrorMessage(d->conn));
            rc = -EIO;
        }
        PQclear(res);
    }
    rc = rc != 0 ? rc : store_dir_exec(d->conn, STORE_DIR_NOTIFY, err, sizeof(err));
    rc = rc != 0 ? rc : store_dir_exec(d->conn, "COMMIT", err, sizeof(err));
    if (rc != 0) {
        PQclear(PQexec(d->conn, "ROLLBACK"));
        set_error(d, err);
        return -EAGAIN;
    }
    return 0;
}

/* pull_cas reads the fleet's issuing CAs when certprov_cas changed (its highest seq or its row
 * count) and passes the set on: this appliance's CA first, then the others by seq, at most
 * STORE_DIRECTORY_CAS_MAX (the rest left out, logged and counted). 0 or -EAGAIN. */
static int pull_cas(struct store_directory *d)
{
    if (d->cas_changed == NULL) {
        return 0;
    }
    PGresult *res = PQexec(d->conn, "SELECT coalesce(max(seq), 0), count(*) FROM certprov_cas");
    if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
        set_error(d, res != NULL ? PQresultErrorMessage(res) : PQerrorMessage(d->conn));
        PQclear(res);
        return -EAGAIN;
    }
    uint64_t seq = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
    uint64_t rows = strtoull(PQgetvalue(res, 0, 1), NULL, 10);
    PQclear(res);
    if (d->cas_known && seq == d->cas_seq && rows == d->cas_rows) {
        return 0;
    }
    char limit[16];
    snprintf(limit, sizeof(limit), "%u", STORE_DIRECTORY_CAS_MAX + 1);
    const char *vals[1] = {limit};
    /* Binary results: the certificates as bytes. */
    res =
        PQexecParams(d->conn, "SELECT issuer, der FROM certprov_cas ORDER BY seq LIMIT $1::bigint",
                     1, NULL, vals, NULL, NULL, 1);
    if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK) {
        set_error(d, res != NULL ? PQresultErrorMessage(res) : PQerrorMessage(d->conn));
        PQclear(res);
        return -EAGAIN;
    }
    const uint8_t *ders[STORE_DIRECTORY_CAS_MAX];
    size_t lens[STORE_DIRECTORY_CAS_MAX];
    size_t num = 0;
    uint64_t dropped = rows > STORE_DIRECTORY_CAS_MAX ? rows - STORE_DIRECTORY_CAS_MAX : 0;
    if (d->ca_der != NULL) {
        ders[num] = d->ca_der;
        lens[num++] = d->ca_der_len;
    }
    int n = PQntuples(res);
    for (int i = 0; i < n; i++) {
        size_t len = (size_t)PQgetlength(res, i, 1);
        if (strcmp(PQgetvalue(res, i, 0), d->ca_id) == 0) {
            continue; /* this appliance's, first already */
        }
        if (num == STORE_DIRECTORY_CAS_MAX || len == 0 || len > STORE_DIRECTORY_CA_DER_MAX) {
            dropped += num == STORE_DIRECTORY_CAS_MAX ? 0 : 1;
            continue;
        }
        ders[num] = (const uint8_t *)PQgetvalue(res, i, 1);
        lens[num++] = len;
    }
    if (dropped != 0) {
        log_warn("directory: fleet_cas_left_out num=%llu bound=%u", (unsigned long long)dropped,
                 STORE_DIRECTORY_CAS_MAX);
    }
    log_info("directory: fleet_cas num=%zu seq=%llu", num, (unsigned long long)seq);
    d->cas_changed(d->cas_ctx, ders, lens, num);
    PQclear(res);
    d->cas_known = true;
    d->cas_seq = seq;
    d->cas_rows = rows;
    base_mutex_lock(&d->lock);
    d->stats.fleet_cas = (uint32_t)num;
    d->stats.cas_dropped += dropped;
    base_mutex_unlock(&d->lock);
    return 0;
}

/* pull applies every change after d->seq; the full load of a first start logs its progress. */
static int pull(struct store_directory *d)
{
    bool loading = !d->stats.loaded;
    uint64_t total = 0;
    uint64_t t0 = clock_mono_ns();
    int src = ship_notes(d);
    src = src != 0 ? src : ship_serials(d);
    if (src != 0) {
        return src;
    }
    for (;;) {
        size_t n = 0;
        int rc = feed_batch_pull(d, &user_feed, &n);
        if (rc != 0) {
            return rc;
        }
        total += n;
        if (loading && n != 0) {
            log_info("directory: loading rows=%llu seq=%llu", (unsigned long long)total,
                     (unsigned long long)d->seq);
        }
        if (n < d->batch_max || atomic_load(&d->stop)) {
            break;
        }
    }
    int lrc = feed_pull(d, &lock_feed);
    lrc = lrc != 0 ? lrc : feed_pull(d, &rev_feed);
    lrc = lrc != 0 ? lrc : pull_cas(d);
    if (lrc != 0) {
        return lrc;
    }
    base_mutex_lock(&d->lock);
    d->stats.up = true;
    d->stats.loaded = true;
    d->stats.key_refused = false;
    d->stats.current_ms = clock_real_ms();
    d->stats.error[0] = '\0';
    base_mutex_unlock(&d->lock);
    if (loading) {
        log_info("directory: loaded rows=%llu seq=%llu ms=%llu", (unsigned long long)total,
                 (unsigned long long)d->seq,
                 (unsigned long long)((clock_mono_ns() - t0) / 1000000u));
    }
    return 0;
}

/* wait_change sleeps until a NOTIFY, poll_ms, or stop. -EAGAIN: the connection failed. */
static int wait_change(struct store_directory *d, uint32_t ms)
{
    struct pollfd pfd[2] = {{.fd = d->wake[0], .events = POLLIN}, {.fd = -1, .events = POLLIN}};
    if (d->conn != NULL) {
        pfd[1].fd = PQsocket(d->conn);
    }
    int n = poll(pfd, 2, (int)ms);
    if (n > 0 && (pfd[0].revents & POLLIN) != 0) {
        char buf[64];
        ssize_t r = read(d->wake[0], buf, sizeof(buf)); /* lockout notes (or stop) woke it */
        (void)r;
    }
    if (n <= 0 || d->conn == NULL || (pfd[1].revents & (POLLIN | POLLERR | POLLHUP)) == 0) {
        return 0;
    }
    if (PQconsumeInput(d->conn) == 0) {
        set_error(d, PQerrorMessage(d->conn));
        return -EAGAIN;
    }
    PGnotify *nt = NULL;
    while ((nt = PQnotifies(d->conn)) != NULL) { /* bounded by what one read brought */
        PQfreemem(nt);
    }
    return 0;
}

/* backoff sleeps the backoff of the attempts so far: lockout notes that arrive meanwhile wait
 * (they would otherwise make a connection attempt each while PostgreSQL is down). */
static void backoff(struct store_directory *d)
{
    uint64_t ms = store_backoff_ms(d->attempts, DIR_BACKOFF_MIN_MS, DIR_BACKOFF_MAX_MS,
                                   d->rnd++ * 0x9e3779b97f4a7c15ull);
    uint64_t end = clock_mono_ns() / 1000000u + ms;
    for (;;) { /* bounded by `end`; ends early on stop */
        uint64_t now = clock_mono_ns() / 1000000u;
        if (now >= end || atomic_load(&d->stop)) {
            return;
        }
        (void)wait_change(d, (uint32_t)(end - now));
    }
}

static void *dir_main(void *arg)
{
    struct store_directory *d = arg;
    base_thread_name("cp-directory");
    while (!atomic_load(&d->stop)) { /* the thread's loop: until store_directory_stop */
        int rc = d->conn == NULL ? connect_dir(d) : 0;
        rc = rc != 0 ? rc : pull(d);
        if (rc != 0) {
            if (d->attempts++ == 0) {
                log_warn("directory: down error=\"%s\"", d->stats.error);
            }
            drop(d);
            backoff(d);
            continue;
        }
        if (d->attempts != 0) {
            log_info("directory: up seq=%llu", (unsigned long long)d->seq);
            d->attempts = 0;
        }
        if (wait_change(d, d->poll_ms) != 0) {
            drop(d);
        }
    }
    drop(d);
    return NULL;
}

int store_directory_start(struct store_directory **out, struct store *st,
                          const struct store_directory_options *opt)
{
    ASSERT(out != NULL);
    ASSERT(opt != NULL);
    store_validate(st);
    struct store_directory *d = calloc(1, sizeof(*d));
    if (d == NULL) {
        return -ENOMEM;
    }
    d->st = st;
    d->wake[0] = d->wake[1] = -1;
    d->poll_ms = opt->poll_ms != 0 ? opt->poll_ms : DIR_POLL_DEFAULT_MS;
    d->window_s = opt->window_s;
    d->batch_max = opt->batch_max != 0 ? opt->batch_max : DIR_BATCH_DEFAULT;
    d->rnd = (uint64_t)clock_mono_ns();
    int rc = 0;
    if (d->batch_max > DIR_BATCH_MAX ||
        base_str_copy(d->conninfo, sizeof(d->conninfo), opt->conninfo) != 0 ||
        base_str_copy(d->key_id, sizeof(d->key_id), opt->key_id) != 0 ||
        base_str_copy(d->appliance, sizeof(d->appliance),
                      opt->appliance != NULL ? opt->appliance : "") != 0) {
        rc = -EINVAL;
        goto out;
    }
    pthread_mutex_init(&d->lock, NULL);
    d->rows = calloc(d->batch_max, sizeof(*d->rows));
    d->lockrows = calloc(d->batch_max, sizeof(*d->lockrows));
    d->revrows = calloc(d->batch_max, sizeof(*d->revrows));
    d->cas_changed = opt->cas_changed;
    d->cas_ctx = opt->cas_ctx;
    if (opt->ca_der != NULL) {
        if (opt->ca_der_len == 0 || opt->ca_der_len > STORE_DIRECTORY_CA_DER_MAX ||
            opt->ca_id == NULL || base_str_copy(d->ca_id, sizeof(d->ca_id), opt->ca_id) != 0) {
            rc = -EINVAL;
            goto out;
        }
        d->ca_der = malloc(opt->ca_der_len);
        if (d->ca_der == NULL) {
            rc = -ENOMEM;
            goto out;
        }
        memcpy(d->ca_der, opt->ca_der, opt->ca_der_len);
        d->ca_der_len = opt->ca_der_len;
    }
    d->notes = calloc(STORE_DIRECTORY_NOTES_MAX, sizeof(*d->notes));
    d->serials = calloc(STORE_DIRECTORY_SERIALS_MAX, sizeof(*d->serials));
    if (d->rows == NULL || d->lockrows == NULL || d->revrows == NULL || d->notes == NULL ||
        d->serials == NULL) {
        rc = -ENOMEM;
        goto out;
    }
    bool have = false;
    bool have_lock = false;
    rc = meta_seq_get(st, DIR_META_SEQ, &have, &d->seq);
    rc = rc != 0 ? rc : meta_seq_get(st, DIR_META_LOCKSEQ, &have_lock, &d->lockseq);
    rc = rc != 0 ? rc : meta_seq_get(st, DIR_META_REVSEQ, &have_lock, &d->revseq);
    if (rc != 0) {
        goto out;
    }
    d->stats.loaded = have;
    d->stats.seq = d->seq;
    d->stats.lockout_seq = d->lockseq;
    d->stats.revocation_seq = d->revseq;
    if (pipe2(d->wake, O_CLOEXEC | O_NONBLOCK) == -1) {
        rc = -errno;
        goto out;
    }
    rc = -pthread_create(&d->thread, NULL, dir_main, d);
    d->started = rc == 0;
out:
    if (rc != 0) {
        store_directory_stop(d);
        return rc;
    }
    *out = d;
    return 0;
}

void store_directory_stats(struct store_directory *d, struct store_directory_stats *out)
{
    ASSERT(d != NULL);
    ASSERT(out != NULL);
    base_mutex_lock(&d->lock);
    *out = d->stats;
    base_mutex_unlock(&d->lock);
}

void store_directory_stop(struct store_directory *d)
{
    if (d == NULL) {
        return;
    }
    if (d->started) {
        atomic_store(&d->stop, true);
        char b = 1;
        ssize_t w = write(d->wake[1], &b, 1);
        (void)w; /* a full pipe already wakes the thread */
        int rc = pthread_join(d->thread, NULL);
        ASSERT(rc == 0);
        pthread_mutex_destroy(&d->lock);
    }
    if (d->wake[0] != -1) {
        (void)close(d->wake[0]);
        (void)close(d->wake[1]);
    }
    free(d->rows);
    free(d->lockrows);
    free(d->revrows);
    free(d->ca_der);
    free(d->notes);
    free(d->serials);
    free(d);
}
