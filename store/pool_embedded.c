/* pool_embedded.c: the embedded pool store, the single-box default. One LMDB environment per pool
 * at <dir>/<NAME>/ with one table, `user_certificates`, holding the columns of README, Home pool
 * stores: issued_at (u64 BE seconds) + seq (u64 BE) -> struct embed_rec + serial + sip_uri +
 * device_id
 *                                                + issued_by + DER
 * The key is the certificate's place in the appliance's issue order, not its serial: serials are
 * random (invariant 4), and a table keyed by them takes one random leaf page per certificate,
 * about four times the certificate's size in page writes, which made the publisher the
 * appliance's biggest disk writer. In issue order a batch fills pages at the end of the table
 * (MDB_APPEND when its keys are past the last one). A replay of a certificate has the same key
 * (its issue time and replica seq never change): an existing key with the same serial is an
 * acknowledgement, never an overwrite; a different serial there is a permanent error of that
 * row. The table is a log for other servers to read, not a lookup structure: a lookup by
 * serial (store_embedded_get: tests and diagnostics) scans it.
 * Revocation: a second table, `revocations`, under the same key -> struct embrev_rec (the row's
 * revoked_at and revocation_reason, README); absent = not revoked. Each published row makes it
 * equal to the replica's (put when different, deleted for a lifted hold), so replays converge
 * and the issue-ordered table keeps its layout. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/base.h"
#include "store/internal.h"

#define EMBED_MAP_SIZE (1ull << 30)
#define EMBED_BY_MAX 255
#define EMBED_KEY_LEN (2 * STORE_SEQ_KEY_LEN)
#define EMBED_SERIAL_HEX_MAX (2 * STORE_SERIAL_LEN)

struct embed_rec {
    int64_t not_before_s;
    int64_t not_after_s;
    int64_t issued_at_s;
    int64_t published_at_s;
    uint32_t magic;
    uint16_t der_len;
    uint8_t uri_len;
    uint8_t device_id_len;
    uint8_t issued_by_len;
    uint8_t serial_len;
    uint8_t pad[6];
};
static_assert(sizeof(struct embed_rec) == 48, "embed_rec on-disk size");

/* embrev_rec: a row's revocation (table `revocations`). */
struct embrev_rec {
    int64_t revoked_at_s;
    uint32_t magic;
    uint8_t reason;
    uint8_t pad[3];
};
static_assert(sizeof(struct embrev_rec) == 16, "embrev_rec on-disk size");

struct pool_embedded {
    MDB_env *env;
    MDB_dbi dbi;
    MDB_dbi rev;
    uint8_t last_key[EMBED_KEY_LEN]; /* the table's last key (zero when empty) */
    char issued_by[EMBED_BY_MAX + 1];
};

static bool embed_rec_ok(const struct embed_rec *r, size_t total)
{
    return r->magic == STORE_MAGIC_EMBED && r->der_len >= 1 && r->uri_len >= 1 &&
           r->serial_len >= 1 && r->serial_len <= EMBED_SERIAL_HEX_MAX &&
           r->device_id_len <= STORE_DEVICE_ID_MAX &&
           total == sizeof(*r) + r->serial_len + r->uri_len + r->device_id_len + r->issued_by_len +
                        r->der_len;
}

/* embed_err converts an LMDB return code (or errno) with store_err_map and puts the library's
 * text in `err`: the publisher logs it once per outage, so it is not logged here. */
static int embed_err(int mrc, const char *op, char *err, size_t cap)
{
    if (mrc == MDB_SUCCESS) {
        return 0;
    }
    snprintf(err, cap, "embedded store: %s: %s", op, mdb_strerror(mrc));
    return store_err_map(mrc);
}

static void key_encode(uint8_t key[EMBED_KEY_LEN], const struct store_cert_meta *m)
{
    store_seq_encode(key, (uint64_t)m->issued_at_s);
    store_seq_encode(key + STORE_SEQ_KEY_LEN, m->seq);
}

/* last_key reads the table's last key into `out` (zeros when empty). A key of another length is
 * a table of the first layout (keyed by serial): -EPROTO, named in `err`. */
static int last_key(MDB_txn *txn, MDB_dbi dbi, uint8_t out[EMBED_KEY_LEN], const char *path,
                    char *err, size_t cap)
{
    MDB_cursor *cur = NULL;
    int rc = embed_err(mdb_cursor_open(txn, dbi, &cur), "cursor", err, cap);
    if (rc != 0) {
        return rc;
    }
    MDB_val key = {0};
    MDB_val val = {0};
    int mrc = mdb_cursor_get(cur, &key, &val, MDB_LAST);
    mdb_cursor_close(cur);
    memset(out, 0, EMBED_KEY_LEN);
    if (mrc == MDB_NOTFOUND) {
        return 0;
    }
    if (mrc != MDB_SUCCESS) {
        return embed_err(mrc, "last", err, cap);
    }
    if (key.mv_size != EMBED_KEY_LEN) {
        snprintf(err, cap,
                 "embedded store: %s has the layout of an earlier version (keyed by serial); move "
                 "it away: its certificates are in the replica",
                 path);
        return -EPROTO;
    }
    memcpy(out, key.mv_data, EMBED_KEY_LEN);
    return 0;
}

/* env_open opens <dir>/<name>/ (creating it when `create`) and reads its last key. */
static int env_open(MDB_env **out, MDB_dbi *out_dbi, MDB_dbi *out_rev, bool *out_has_rev,
                    uint8_t out_last[EMBED_KEY_LEN], const char *dir, const char *name, bool create,
                    char *err, size_t cap)
{
    char path[4096];
    if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path)) {
        snprintf(err, cap, "embedded store: path too long");
        return -EINVAL;
    }
    if (create && ((mkdir(dir, 0700) == -1 && errno != EEXIST) ||
                   (mkdir(path, 0700) == -1 && errno != EEXIST))) {
        int e = errno;
        snprintf(err, cap, "embedded store: mkdir %s: %s", path, strerror(e));
        return store_err_map(e);
    }
    MDB_env *env = NULL;
    MDB_txn *txn = NULL;
    int rc = embed_err(mdb_env_create(&env), "env_create", err, cap);
    if (rc != 0) {
        goto out;
    }
    rc = embed_err(mdb_env_set_mapsize(env, EMBED_MAP_SIZE), "mapsize", err, cap);
    if (rc != 0) {
        goto out;
    }
    rc = embed_err(mdb_env_set_maxdbs(env, 2), "maxdbs", err, cap);
    if (rc != 0) {
        goto out;
    }
    unsigned flags = MDB_NOTLS | (create ? 0u : (unsigned)MDB_RDONLY);
    rc = embed_err(mdb_env_open(env, path, flags, 0600), "env_open", err, cap);
    if (rc != 0) {
        goto out;
    }
    /* A write transaction when creating: the table is created in it. */
    rc = embed_err(mdb_txn_begin(env, NULL, create ? 0 : MDB_RDONLY, &txn), "txn", err, cap);
    if (rc != 0) {
        goto out;
    }
    rc = embed_err(mdb_dbi_open(txn, "user_certificates", create ? MDB_CREATE : 0, out_dbi),
                   "dbi_open", err, cap);
    if (rc != 0) {
        goto out;
    }
    rc = last_key(txn, *out_dbi, out_last, path, err, cap);
    if (rc != 0) {
        goto out;
    }
    int mrc = mdb_dbi_open(txn, "revocations", create ? MDB_CREATE : 0, out_rev);
    *out_has_rev = mrc == MDB_SUCCESS;
    if (mrc != MDB_NOTFOUND || create) { /* read-only, a store from before: none revoked */
        rc = embed_err(mrc, "dbi_open", err, cap);
        if (rc != 0) {
            goto out;
        }
    }
    rc = embed_err(mdb_txn_commit(txn), "commit", err, cap); /* frees txn on every path */
    txn = NULL;
    if (rc != 0) {
        goto out;
    }
    *out = env;
    env = NULL;
out:
    if (txn != NULL) {
        mdb_txn_abort(txn);
    }
    if (env != NULL) {
        mdb_env_close(env); /* also after a failed mdb_env_open, as LMDB requires */
    }
    return rc;
}

int pool_embedded_open(struct pool_embedded **out, const char *dir, const char *name,
                       const char *issued_by, char *err, size_t cap)
{
    ASSERT(out != NULL);
    ASSERT(dir != NULL);
    struct pool_embedded *e = calloc(1, sizeof(*e));
    if (e == NULL) {
        return -ENOMEM;
    }
    if (base_str_copy(e->issued_by, sizeof(e->issued_by), issued_by) != 0) {
        free(e);
        return -EINVAL;
    }
    bool has_rev = false;
    int rc = env_open(&e->env, &e->dbi, &e->rev, &has_rev, e->last_key, dir, name, true, err, cap);
    if (rc != 0) {
        free(e);
        return rc;
    }
    *out = e;
    return 0;
}

static size_t row_encode(uint8_t *buf, size_t cap, const struct pool_row *row, const char *by,
                         int64_t now_s)
{
    struct embed_rec r;
    memset(&r, 0, sizeof(r));
    size_t serial_len = strlen(row->serial);
    size_t uri_len = strlen(row->meta.uri);
    size_t dev_len = strlen(row->meta.device_id);
    size_t by_len = strlen(by);
    r.not_before_s = row->meta.not_before_s;
    r.not_after_s = row->meta.not_after_s;
    r.issued_at_s = row->meta.issued_at_s;
    r.published_at_s = now_s;
    r.magic = STORE_MAGIC_EMBED;
    r.der_len = (uint16_t)row->der_len;
    r.serial_len = (uint8_t)serial_len;
    r.uri_len = (uint8_t)uri_len;
    r.device_id_len = (uint8_t)dev_len;
    r.issued_by_len = (uint8_t)by_len;
    size_t total = sizeof(r) + serial_len + uri_len + dev_len + by_len + row->der_len;
    ASSERT(total <= cap);
    ASSERT(embed_rec_ok(&r, total)); /* paired with rec_decode */
    uint8_t *p = buf;
    memcpy(p, &r, sizeof(r));
    p += sizeof(r);
    memcpy(p, row->serial, serial_len);
    p += serial_len;
    memcpy(p, row->meta.uri, uri_len);
    p += uri_len;
    memcpy(p, row->meta.device_id, dev_len);
    p += dev_len;
    memcpy(p, by, by_len);
    p += by_len;
    memcpy(p, row->der, row->der_len);
    return total;
}

/* rec_serial points *out at the record's serial (not NUL-terminated) and returns its length. */
static size_t rec_serial(const MDB_val *val, const char **out)
{
    struct embed_rec r;
    ASSERT(val->mv_size >= sizeof(r));
    memcpy(&r, val->mv_data, sizeof(r));
    ASSERT(embed_rec_ok(&r, val->mv_size));
    *out = (const char *)val->mv_data + sizeof(r);
    return r.serial_len;
}

/* put_row stores one row after `last` (MDB_APPEND when its key is past it). An existing key is a
 * replay when it holds the same serial (acknowledged, not overwritten) and a permanent error of
 * the row otherwise. Returns 0 (row->rc set) or the LMDB error. */
static int put_row(struct pool_embedded *e, MDB_txn *txn, struct pool_row *row, uint8_t *buf,
                   size_t len, uint8_t last[EMBED_KEY_LEN])
{
    uint8_t k[EMBED_KEY_LEN];
    key_encode(k, &row->meta);
    MDB_val key = {.mv_size = EMBED_KEY_LEN, .mv_data = k};
    MDB_val val = {.mv_size = len, .mv_data = buf};
    bool after = memcmp(k, last, EMBED_KEY_LEN) > 0;
    int mrc = mdb_put(txn, e->dbi, &key, &val, after ? MDB_APPEND : MDB_NOOVERWRITE);
    if (mrc == MDB_KEYEXIST && after) { /* the table ends past `last`: an ordinary insert */
        val = (MDB_val){.mv_size = len, .mv_data = buf};
        mrc = mdb_put(txn, e->dbi, &key, &val, MDB_NOOVERWRITE);
        after = false;
    }
    row->rc = 0;
    if (mrc == MDB_SUCCESS && after) {
        memcpy(last, k, EMBED_KEY_LEN);
    }
    if (mrc != MDB_KEYEXIST) {
        return mrc;
    }
    const char *serial = NULL;
    size_t n = rec_serial(&val, &serial); /* MDB_NOOVERWRITE returned the existing value */
    if (n != strlen(row->serial) || memcmp(serial, row->serial, n) != 0) {
        row->rc = -EINVAL;
        snprintf(row->error, sizeof(row->error),
                 "embedded store: key issued_at=%lld seq=%llu holds serial %.*s, not %s",
                 (long long)row->meta.issued_at_s, (unsigned long long)row->meta.seq, (int)n,
                 serial, row->serial);
    }
    return MDB_SUCCESS;
}

/* put_revocation makes the row's revocation in `revocations` equal to the replica's: written when
 * it differs, deleted when the row is not revoked. Returns an LMDB code. */
static int put_revocation(struct pool_embedded *e, MDB_txn *txn, const struct pool_row *row)
{
    uint8_t k[EMBED_KEY_LEN];
    key_encode(k, &row->meta);
    MDB_val key = {.mv_size = EMBED_KEY_LEN, .mv_data = k};
    if (row->revoked_at_s == 0) {
        int mrc = mdb_del(txn, e->rev, &key, NULL);
        return mrc == MDB_NOTFOUND ? MDB_SUCCESS : mrc;
    }
    struct embrev_rec r;
    memset(&r, 0, sizeof(r));
    r.revoked_at_s = row->revoked_at_s;
    r.magic = STORE_MAGIC_EMBREV;
    r.reason = row->reason;
    MDB_val val = {0};
    int mrc = mdb_get(txn, e->rev, &key, &val);
    if (mrc == MDB_SUCCESS && val.mv_size == sizeof(r) && memcmp(val.mv_data, &r, sizeof(r)) == 0) {
        return MDB_SUCCESS; /* a replay: unchanged */
    }
    if (mrc != MDB_SUCCESS && mrc != MDB_NOTFOUND) {
        return mrc;
    }
    val = (MDB_val){.mv_size = sizeof(r), .mv_data = &r};
    return mdb_put(txn, e->rev, &key, &val, 0);
}

int pool_embedded_publish(struct pool_embedded *e, struct pool_row *rows, size_t n, char *err,
                          size_t cap)
{
    ASSERT(e != NULL);
    ASSERT(n <= STORE_PUBLISH_BATCH_MAX);
    static _Thread_local uint8_t buf[sizeof(struct embed_rec) + EMBED_SERIAL_HEX_MAX +
                                     STORE_URI_MAX + STORE_DEVICE_ID_MAX + EMBED_BY_MAX +
                                     STORE_CERT_DER_MAX];
    uint8_t last[EMBED_KEY_LEN];
    memcpy(last, e->last_key, sizeof(last));
    MDB_txn *txn = NULL;
    int rc = embed_err(mdb_txn_begin(e->env, NULL, 0, &txn), "txn_begin", err, cap);
    if (rc != 0) {
        goto out;
    }
    (void)store_env_grow(e->env); /* a failure only costs speed */
    int64_t now_s = clock_real_s();
    for (size_t i = 0; i < n; i++) {
        size_t len = row_encode(buf, sizeof(buf), &rows[i], e->issued_by, now_s);
        rc = embed_err(put_row(e, txn, &rows[i], buf, len, last), "put", err, cap);
        if (rc == 0 && rows[i].rc == 0) {
            rc = embed_err(put_revocation(e, txn, &rows[i]), "put_revocation", err, cap);
        }
        if (rc != 0) {
            goto out;
        }
    }
    rc = embed_err(mdb_txn_commit(txn), "commit", err, cap); /* synced; frees txn */
    txn = NULL;
    if (rc != 0) {
        goto out;
    }
    memcpy(e->last_key, last, sizeof(last));
out:
    if (txn != NULL) {
        mdb_txn_abort(txn);
    }
    return rc == 0 ? 0 : -EAGAIN; /* the cause is in `err` */
}

void pool_embedded_close(struct pool_embedded *e)
{
    if (e == NULL) {
        return;
    }
    mdb_env_close(e->env);
    e->env = NULL;
    free(e);
}

int store_embedded_count(const char *dir, const char *pool, uint64_t *out)
{
    ASSERT(out != NULL);
    char err[256];
    MDB_env *env = NULL;
    MDB_dbi dbi = 0;
    uint8_t last[EMBED_KEY_LEN];
    MDB_dbi rev = 0;
    bool has_rev = false;
    int rc = env_open(&env, &dbi, &rev, &has_rev, last, dir, pool, false, err, sizeof(err));
    if (rc != 0) {
        return rc;
    }
    MDB_txn *txn = NULL;
    MDB_stat s = {0};
    rc = embed_err(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), "txn", err, sizeof(err));
    if (rc != 0) {
        goto out;
    }
    rc = embed_err(mdb_stat(txn, dbi, &s), "stat", err, sizeof(err));
    if (rc != 0) {
        goto out;
    }
    *out = s.ms_entries;
out:
    if (txn != NULL) {
        mdb_txn_abort(txn);
    }
    mdb_env_close(env);
    return rc;
}

/* rec_decode fills the metadata and issued_by of a record. */
static void rec_decode(const MDB_val *val, struct store_cert_meta *m, char *issued_by, size_t cap)
{
    struct embed_rec r;
    memcpy(&r, val->mv_data, sizeof(r));
    const char *p = (const char *)val->mv_data + sizeof(r) + r.serial_len;
    memset(m, 0, sizeof(*m));
    memcpy(m->uri, p, r.uri_len);
    memcpy(m->device_id, p + r.uri_len, r.device_id_len);
    m->not_before_s = r.not_before_s;
    m->not_after_s = r.not_after_s;
    m->issued_at_s = r.issued_at_s;
    size_t by = r.issued_by_len < cap ? r.issued_by_len : cap - 1;
    memcpy(issued_by, p + r.uri_len + r.device_id_len, by);
    issued_by[by] = '\0';
}

/* embedded_find reads the row `serial_hex`, when it was published (out_published_s may be NULL)
 * and its revocation (*out_revoked_at_s 0: none). */
static int embedded_find(const char *dir, const char *pool, const char *serial_hex,
                         struct store_cert_meta *out_meta, char *issued_by, size_t cap,
                         int64_t *out_published_s, int64_t *out_revoked_at_s, uint8_t *out_reason)
{
    ASSERT(out_meta != NULL);
    ASSERT(issued_by != NULL);
    char err[256];
    MDB_env *env = NULL;
    MDB_dbi dbi = 0;
    uint8_t last[EMBED_KEY_LEN];
    MDB_dbi rev = 0;
    bool has_rev = false;
    int rc = env_open(&env, &dbi, &rev, &has_rev, last, dir, pool, false, err, sizeof(err));
    if (rc != 0) {
        return rc;
    }
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    rc = embed_err(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), "txn", err, sizeof(err));
    if (rc != 0) {
        goto out;
    }
    rc = embed_err(mdb_cursor_open(txn, dbi, &cur), "cursor", err, sizeof(err));
    if (rc != 0) {
        goto out;
    }
    size_t want = strlen(serial_hex);
    MDB_val key = {0};
    MDB_val val = {0};
    /* Newest first: the certificates asked about are usually recent. A scan, bounded by the
     * table (the map size). */
    int mrc = mdb_cursor_get(cur, &key, &val, MDB_LAST);
    for (; mrc == MDB_SUCCESS; mrc = mdb_cursor_get(cur, &key, &val, MDB_PREV)) {
        const char *serial = NULL;
        size_t n = rec_serial(&val, &serial);
        if (n == want && memcmp(serial, serial_hex, n) == 0) {
            rec_decode(&val, out_meta, issued_by, cap);
            if (out_published_s != NULL) {
                struct embed_rec er;
                memcpy(&er, val.mv_data, sizeof(er));
                *out_published_s = er.published_at_s;
            }
            *out_revoked_at_s = 0;
            *out_reason = 0;
            MDB_val rv = {0};
            if (has_rev && mdb_get(txn, rev, &key, &rv) == MDB_SUCCESS) {
                struct embrev_rec r;
                ASSERT(rv.mv_size == sizeof(r));
                memcpy(&r, rv.mv_data, sizeof(r));
                ASSERT(r.magic == STORE_MAGIC_EMBREV);
                *out_revoked_at_s = r.revoked_at_s;
                *out_reason = r.reason;
            }
            goto out; /* rc is 0 */
        }
    }
    rc = embed_err(mrc, "scan", err, sizeof(err)); /* MDB_NOTFOUND: -ENOENT, not in the store */
out:
    if (cur != NULL) {
        mdb_cursor_close(cur);
    }
    if (txn != NULL) {
        mdb_txn_abort(txn);
    }
    mdb_env_close(env);
    return rc;
}

int store_embedded_get(const char *dir, const char *pool, const char *serial_hex,
                       struct store_cert_meta *out_meta, char *issued_by, size_t cap,
                       int64_t *out_published_s)
{
    int64_t at = 0;
    uint8_t reason = 0;
    return embedded_find(dir, pool, serial_hex, out_meta, issued_by, cap, out_published_s, &at,
                         &reason);
}

int store_embedded_revocation(const char *dir, const char *pool, const char *serial_hex,
                              int64_t *out_revoked_at_s, uint8_t *out_reason)
{
    ASSERT(out_revoked_at_s != NULL);
    ASSERT(out_reason != NULL);
    struct store_cert_meta meta;
    char by[8];
    return embedded_find(dir, pool, serial_hex, &meta, by, sizeof(by), NULL, out_revoked_at_s,
                         out_reason);
}
