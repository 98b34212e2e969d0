/* pool_embedded.c: the embedded pool store, the single-box default. One LMDB environment per pool
 * at <dir>/<NAME>/ with one table, `user_certificates`: serial (upper-case hex) -> struct
 * embed_rec + sip_uri + device_id + issued_by + DER, the columns of API.md §8. A put never
 * overwrites: an existing serial is an acknowledgement (replays are harmless). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/base.h"
#include "store/internal.h"

#define EMBED_MAP_SIZE (1ull << 30)
#define EMBED_BY_MAX 255

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
    uint8_t pad[7];
};
static_assert(sizeof(struct embed_rec) == 48, "embed_rec on-disk size");

struct pool_embedded {
    MDB_env *env;
    MDB_dbi dbi;
    char issued_by[EMBED_BY_MAX + 1];
};

static bool embed_rec_ok(const struct embed_rec *r, size_t total)
{
    return r->magic == STORE_MAGIC_EMBED && r->der_len >= 1 && r->uri_len >= 1 &&
           r->device_id_len <= STORE_DEVICE_ID_MAX &&
           total == sizeof(*r) + r->uri_len + r->device_id_len + r->issued_by_len + r->der_len;
}

static int embed_err(int mrc, const char *op, char *err, size_t cap)
{
    if (mrc == MDB_SUCCESS) {
        return 0;
    }
    snprintf(err, cap, "embedded store: %s: %s", op, mdb_strerror(mrc));
    return mrc == MDB_NOTFOUND || mrc == ENOENT ? -ENOENT : -EIO;
}

/* env_open opens <dir>/<name>/ (creating it when `create`). */
static int env_open(MDB_env **out, MDB_dbi *out_dbi, const char *dir, const char *name, bool create,
                    char *err, size_t cap)
{
    char path[4096];
    if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path)) {
        snprintf(err, cap, "embedded store: path too long");
        return -EINVAL;
    }
    if (create && ((mkdir(dir, 0700) == -1 && errno != EEXIST) ||
                   (mkdir(path, 0700) == -1 && errno != EEXIST))) {
        snprintf(err, cap, "embedded store: mkdir %s: %s", path, strerror(errno));
        return -EIO;
    }
    MDB_env *env = NULL;
    MDB_txn *txn = NULL;
    int rc = embed_err(mdb_env_create(&env), "env_create", err, cap);
    rc = rc != 0 ? rc : embed_err(mdb_env_set_mapsize(env, EMBED_MAP_SIZE), "mapsize", err, cap);
    rc = rc != 0 ? rc : embed_err(mdb_env_set_maxdbs(env, 1), "maxdbs", err, cap);
    unsigned flags = MDB_NOTLS | (create ? 0u : (unsigned)MDB_RDONLY);
    rc = rc != 0 ? rc : embed_err(mdb_env_open(env, path, flags, 0600), "env_open", err, cap);
    rc = rc != 0
             ? rc
             : embed_err(mdb_txn_begin(env, NULL, create ? 0 : MDB_RDONLY, &txn), "txn", err, cap);
    rc = rc != 0
             ? rc
             : embed_err(mdb_dbi_open(txn, "user_certificates", create ? MDB_CREATE : 0, out_dbi),
                         "dbi_open", err, cap);
    if (rc == 0) {
        rc = embed_err(mdb_txn_commit(txn), "commit", err, cap);
        txn = NULL;
    }
    if (txn != NULL) {
        mdb_txn_abort(txn);
    }
    if (rc != 0) {
        mdb_env_close(env);
        return rc;
    }
    *out = env;
    return 0;
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
    int rc = env_open(&e->env, &e->dbi, dir, name, true, err, cap);
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
    size_t uri_len = strlen(row->meta.uri);
    size_t dev_len = strlen(row->meta.device_id);
    size_t by_len = strlen(by);
    r.not_before_s = row->meta.not_before_s;
    r.not_after_s = row->meta.not_after_s;
    r.issued_at_s = row->meta.issued_at_s;
    r.published_at_s = now_s;
    r.magic = STORE_MAGIC_EMBED;
    r.der_len = (uint16_t)row->der_len;
    r.uri_len = (uint8_t)uri_len;
    r.device_id_len = (uint8_t)dev_len;
    r.issued_by_len = (uint8_t)by_len;
    size_t total = sizeof(r) + uri_len + dev_len + by_len + row->der_len;
    ASSERT(total <= cap);
    ASSERT(embed_rec_ok(&r, total)); /* paired with store_embedded_get */
    uint8_t *p = buf;
    memcpy(p, &r, sizeof(r));
    p += sizeof(r);
    memcpy(p, row->meta.uri, uri_len);
    p += uri_len;
    memcpy(p, row->meta.device_id, dev_len);
    p += dev_len;
    memcpy(p, by, by_len);
    p += by_len;
    memcpy(p, row->der, row->der_len);
    return total;
}

int pool_embedded_publish(struct pool_embedded *e, struct pool_row *rows, size_t n, char *err,
                          size_t cap)
{
    ASSERT(e != NULL);
    ASSERT(n <= STORE_PUBLISH_BATCH_MAX);
    static _Thread_local uint8_t buf[sizeof(struct embed_rec) + STORE_URI_MAX +
                                     STORE_DEVICE_ID_MAX + EMBED_BY_MAX + STORE_CERT_DER_MAX];
    MDB_txn *txn = NULL;
    int rc = embed_err(mdb_txn_begin(e->env, NULL, 0, &txn), "txn_begin", err, cap);
    int64_t now_s = clock_real_s();
    for (size_t i = 0; rc == 0 && i < n; i++) {
        size_t len = row_encode(buf, sizeof(buf), &rows[i], e->issued_by, now_s);
        MDB_val key = {.mv_size = strlen(rows[i].serial), .mv_data = rows[i].serial};
        MDB_val val = {.mv_size = len, .mv_data = buf};
        int mrc = mdb_put(txn, e->dbi, &key, &val, MDB_NOOVERWRITE);
        rc = mrc == MDB_KEYEXIST ? 0 : embed_err(mrc, "put", err, cap); /* a replay */
        rows[i].rc = 0;
    }
    if (rc == 0) {
        rc = embed_err(mdb_txn_commit(txn), "commit", err, cap); /* synced */
    } else if (txn != NULL) {
        mdb_txn_abort(txn);
    }
    return rc == 0 ? 0 : -EAGAIN;
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
    char err[128];
    MDB_env *env = NULL;
    MDB_dbi dbi = 0;
    int rc = env_open(&env, &dbi, dir, pool, false, err, sizeof(err));
    if (rc != 0) {
        return rc;
    }
    MDB_txn *txn = NULL;
    MDB_stat s = {0};
    rc = embed_err(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), "txn", err, sizeof(err));
    rc = rc != 0 ? rc : embed_err(mdb_stat(txn, dbi, &s), "stat", err, sizeof(err));
    if (txn != NULL) {
        mdb_txn_abort(txn);
    }
    if (rc == 0) {
        *out = s.ms_entries;
    }
    mdb_env_close(env);
    return rc;
}

int store_embedded_get(const char *dir, const char *pool, const char *serial_hex,
                       struct store_cert_meta *out_meta, char *issued_by, size_t cap)
{
    ASSERT(out_meta != NULL);
    ASSERT(issued_by != NULL);
    char err[128];
    MDB_env *env = NULL;
    MDB_dbi dbi = 0;
    int rc = env_open(&env, &dbi, dir, pool, false, err, sizeof(err));
    if (rc != 0) {
        return rc;
    }
    MDB_txn *txn = NULL;
    MDB_val key = {.mv_size = strlen(serial_hex), .mv_data = (void *)(uintptr_t)serial_hex};
    MDB_val val = {0};
    rc = embed_err(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), "txn", err, sizeof(err));
    rc = rc != 0 ? rc : embed_err(mdb_get(txn, dbi, &key, &val), "get", err, sizeof(err));
    if (rc == 0) {
        struct embed_rec r;
        ASSERT(val.mv_size >= sizeof(r));
        memcpy(&r, val.mv_data, sizeof(r));
        ASSERT(embed_rec_ok(&r, val.mv_size));
        const char *p = (const char *)val.mv_data + sizeof(r);
        memset(out_meta, 0, sizeof(*out_meta));
        memcpy(out_meta->uri, p, r.uri_len);
        memcpy(out_meta->device_id, p + r.uri_len, r.device_id_len);
        out_meta->not_before_s = r.not_before_s;
        out_meta->not_after_s = r.not_after_s;
        out_meta->issued_at_s = r.issued_at_s;
        size_t by = r.issued_by_len < cap ? r.issued_by_len : cap - 1;
        memcpy(issued_by, p + r.uri_len + r.device_id_len, by);
        issued_by[by] = '\0';
    }
    if (txn != NULL) {
        mdb_txn_abort(txn);
    }
    mdb_env_close(env);
    return rc;
}
