/* outbox.c: reading and re-arming the per-pool outboxes. Entries are keyed by pool id (u32
 * big-endian) and certificate seq (u64 big-endian), so one pool's entries are contiguous and in
 * publication order. */
#include <errno.h>
#include <string.h>

#include "base/base.h"
#include "store/internal.h"

static bool outbox_rec_ok(const struct outbox_rec *r, size_t total)
{
    static const uint8_t zero[sizeof(r->pad)] = {0};
    return r->magic == STORE_MAGIC_OUTBOX && r->parked <= 1 && r->error_len <= STORE_ERROR_MAX &&
           memcmp(r->pad, zero, sizeof(zero)) == 0 && total == sizeof(*r) + r->error_len;
}

static uint32_t key_pool_id(const MDB_val *key)
{
    ASSERT(key->mv_size == STORE_OUTBOX_KEY_LEN);
    const uint8_t *p = key->mv_data;
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void outbox_decode(struct store_outbox_entry *out, struct outbox_rec *out_rec,
                          const char *pool, const MDB_val *key, const MDB_val *val)
{
    struct outbox_rec r;
    ASSERT(val->mv_size >= sizeof(r));
    memcpy(&r, val->mv_data, sizeof(r));
    ASSERT(outbox_rec_ok(&r, val->mv_size));
    memset(out, 0, sizeof(*out));
    int rc = base_str_copy(out->pool, sizeof(out->pool), pool);
    ASSERT(rc == 0); /* a pool name read from the pools table or checked by store_pool_find */
    memcpy(out->serial, r.serial, sizeof(out->serial));
    out->seq = store_seq_decode((const uint8_t *)key->mv_data + 4);
    out->enqueued_ms = r.enqueued_ms;
    out->attempts = r.attempts;
    out->next_attempt_ms = r.next_attempt_ms;
    out->parked = r.parked == 1;
    memcpy(out->last_error, (const uint8_t *)val->mv_data + sizeof(r), r.error_len);
    ASSERT(out->seq >= 1);
    *out_rec = r;
}

/* pool_visit_fn is called for each entry of one pool, with the cursor positioned on it. */
typedef int (*pool_visit_fn)(struct store *st, MDB_cursor *cur, void *arg,
                             const struct store_outbox_entry *e, const MDB_val *key,
                             const MDB_val *val);

static int scan_pool(struct store *st, MDB_cursor *cur, uint32_t id, const char *pool,
                     pool_visit_fn visit, void *arg)
{
    uint8_t start[STORE_OUTBOX_KEY_LEN] = {0};
    for (size_t i = 0; i < 4; i++) {
        start[i] = (uint8_t)(id >> (8 * (3 - i)));
    }
    MDB_val key = {.mv_size = sizeof(start), .mv_data = start};
    MDB_val val = {0};
    /* Bounded by the entries of this pool in the snapshot. */
    int rc = store_err(st, mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE), "cursor_set_range");
    while (rc == 0 && key_pool_id(&key) == id) {
        struct store_outbox_entry e;
        struct outbox_rec r;
        outbox_decode(&e, &r, pool, &key, &val);
        rc = visit(st, cur, arg, &e, &key, &val);
        if (rc != 0) {
            return rc;
        }
        rc = store_err(st, mdb_cursor_get(cur, &key, &val, MDB_NEXT), "cursor_next");
    }
    return rc == -ENOENT ? 0 : rc;
}

/* scan_all runs `visit` over the entries of every pool, in name order. */
static int scan_all(struct store *st, MDB_txn *txn, MDB_cursor *cur, pool_visit_fn visit, void *arg)
{
    MDB_cursor *pools = NULL;
    int rc = store_err(st, mdb_cursor_open(txn, st->pools, &pools), "cursor_open");
    if (rc != 0) {
        goto out;
    }
    MDB_val name = {0};
    MDB_val idv = {0};
    rc = store_err(st, mdb_cursor_get(pools, &name, &idv, MDB_FIRST), "pool_first");
    /* Bounded by STORE_POOLS_MAX. */
    for (size_t n = 0; rc == 0 && n < STORE_POOLS_MAX; n++) {
        char pname[STORE_POOL_MAX + 1] = {0};
        uint32_t id = 0;
        ASSERT(name.mv_size >= 1);
        ASSERT(name.mv_size <= STORE_POOL_MAX);
        ASSERT(idv.mv_size == sizeof(id));
        memcpy(pname, name.mv_data, name.mv_size);
        memcpy(&id, idv.mv_data, sizeof(id));
        rc = scan_pool(st, cur, id, pname, visit, arg);
        if (rc != 0) {
            goto out; /* an error, or visit's return as it is */
        }
        rc = store_err(st, mdb_cursor_get(pools, &name, &idv, MDB_NEXT), "pool_next");
    }
    if (rc == -ENOENT) {
        rc = 0; /* past the last pool */
    }
out:
    if (pools != NULL) {
        mdb_cursor_close(pools);
    }
    return rc;
}

/* scan runs `visit` over the entries of `pool` (NULL: every pool in name order). */
static int scan(struct store *st, MDB_txn *txn, const char *pool, pool_visit_fn visit, void *arg)
{
    MDB_cursor *cur = NULL;
    int rc = store_err(st, mdb_cursor_open(txn, st->outbox, &cur), "cursor_open");
    if (rc != 0) {
        goto out;
    }
    if (pool == NULL) {
        rc = scan_all(st, txn, cur, visit, arg);
        goto out;
    }
    uint32_t id = 0;
    rc = store_pool_find(st, txn, &id, pool);
    if (rc == -ENOENT) {
        rc = 0; /* a pool that never had a certificate is empty */
        goto out;
    }
    if (rc != 0) {
        goto out;
    }
    rc = scan_pool(st, cur, id, pool, visit, arg);
out:
    if (cur != NULL) {
        mdb_cursor_close(cur);
    }
    return rc;
}

struct foreach_arg {
    store_outbox_fn fn;
    void *ctx;
    uint64_t nondurable_seq; /* entries from this seq on may not be durable yet: hidden */
};

static int visit_foreach(struct store *st, MDB_cursor *cur, void *arg,
                         const struct store_outbox_entry *e, const MDB_val *key, const MDB_val *val)
{
    (void)st;
    (void)cur;
    (void)key;
    (void)val;
    struct foreach_arg *a = arg;
    return e->seq >= a->nondurable_seq ? 0 : a->fn(a->ctx, e);
}

int store_outbox_foreach(struct store *st, const char *pool, store_outbox_fn fn, void *ctx)
{
    store_validate(st);
    ASSERT(fn != NULL);
    MDB_txn *txn = NULL;
    int rc = store_txn_begin(st, &txn, false);
    if (rc != 0) {
        return rc;
    }
    /* Read after the snapshot was taken: a commit visible in it was marked before it. */
    struct foreach_arg a = {
        .fn = fn, .ctx = ctx, .nondurable_seq = atomic_load(&st->nondurable_seq)};
    rc = scan(st, txn, pool, visit_foreach, &a);
    mdb_txn_abort(txn);
    return rc;
}

struct depth_arg {
    uint64_t depth;
    int64_t oldest_ms;
};

static int visit_depth(struct store *st, MDB_cursor *cur, void *arg,
                       const struct store_outbox_entry *e, const MDB_val *key, const MDB_val *val)
{
    (void)st;
    (void)cur;
    (void)key;
    (void)val;
    struct depth_arg *a = arg;
    if (a->depth == 0 || e->enqueued_ms < a->oldest_ms) {
        a->oldest_ms = e->enqueued_ms;
    }
    a->depth++;
    return 0;
}

int store_outbox_depth(struct store *st, const char *pool, uint64_t *out_depth,
                       int64_t *out_oldest_ms)
{
    store_validate(st);
    ASSERT(out_depth != NULL);
    ASSERT(out_oldest_ms != NULL);
    MDB_txn *txn = NULL;
    int rc = store_txn_begin(st, &txn, false);
    if (rc != 0) {
        return rc;
    }
    struct depth_arg a = {0};
    rc = scan(st, txn, pool, visit_depth, &a);
    mdb_txn_abort(txn);
    if (rc == 0) {
        *out_depth = a.depth;
        *out_oldest_ms = a.oldest_ms;
    }
    return rc;
}

static int visit_retry(struct store *st, MDB_cursor *cur, void *arg,
                       const struct store_outbox_entry *e, const MDB_val *key, const MDB_val *val)
{
    uint64_t *num = arg;
    if (e->next_attempt_ms == 0 && !e->parked) {
        return 0;
    }
    uint8_t buf[STORE_OUTBOX_REC_MAX];
    struct outbox_rec r;
    ASSERT(val->mv_size <= sizeof(buf));
    memcpy(buf, val->mv_data, val->mv_size);
    memcpy(&r, buf, sizeof(r));
    r.next_attempt_ms = 0;
    r.parked = 0;
    ASSERT(outbox_rec_ok(&r, val->mv_size));
    memcpy(buf, &r, sizeof(r));
    MDB_val k = *key;
    MDB_val v = {.mv_size = val->mv_size, .mv_data = buf};
    int rc = store_err(st, mdb_cursor_put(cur, &k, &v, MDB_CURRENT), "cursor_put_outbox");
    if (rc == 0) {
        (*num)++;
    }
    return rc;
}

struct retry_arg {
    const char *pool;
    uint64_t num;
};

static int retry_txn(struct store *st, MDB_txn *txn, void *arg)
{
    struct retry_arg *a = arg;
    return scan(st, txn, a->pool, visit_retry, &a->num);
}

int store_outbox_retry(struct store *st, const char *pool, uint64_t *out_num)
{
    store_validate(st);
    ASSERT(out_num != NULL);
    /* When nothing changed, the commit writes nothing and does not sync (LMDB). */
    struct retry_arg a = {.pool = pool};
    int rc = store_write(st, retry_txn, &a);
    if (rc == 0) {
        *out_num = a.num;
    }
    return rc;
}

/* entry_key builds the outbox key of (`pool`, `seq`) inside `txn`. Returns 0 or -ENOENT. */
static int entry_key(struct store *st, MDB_txn *txn, uint8_t key[STORE_OUTBOX_KEY_LEN],
                     const char *pool, uint64_t seq)
{
    uint32_t id = 0;
    int rc = store_pool_find(st, txn, &id, pool);
    if (rc != 0) {
        return rc;
    }
    for (size_t i = 0; i < 4; i++) {
        key[i] = (uint8_t)(id >> (8 * (3 - i)));
    }
    store_seq_encode(key + 4, seq);
    return 0;
}

struct fail_arg {
    const char *pool;
    uint64_t seq;
    int64_t next_attempt_ms;
    bool parked;
    const char *error;
};

static int fail_txn(struct store *st, MDB_txn *txn, void *arg)
{
    const struct fail_arg *a = arg;
    uint8_t kbuf[STORE_OUTBOX_KEY_LEN];
    int rc = entry_key(st, txn, kbuf, a->pool, a->seq);
    if (rc != 0) {
        return rc;
    }
    MDB_val key = {.mv_size = sizeof(kbuf), .mv_data = kbuf};
    MDB_val val = {0};
    rc = store_err(st, mdb_get(txn, st->outbox, &key, &val), "get_outbox");
    if (rc != 0) {
        return rc;
    }
    struct outbox_rec r;
    ASSERT(val.mv_size >= sizeof(r));
    memcpy(&r, val.mv_data, sizeof(r));
    ASSERT(outbox_rec_ok(&r, val.mv_size));
    size_t err_len = strlen(a->error);
    r.attempts = r.attempts == UINT32_MAX ? r.attempts : r.attempts + 1;
    r.next_attempt_ms = a->next_attempt_ms;
    r.parked = a->parked ? 1 : 0;
    r.error_len = (uint8_t)err_len;
    uint8_t buf[STORE_OUTBOX_REC_MAX];
    memcpy(buf, &r, sizeof(r));
    memcpy(buf + sizeof(r), a->error, err_len);
    ASSERT(outbox_rec_ok(&r, sizeof(r) + err_len)); /* paired with outbox_decode */
    MDB_val nv = {.mv_size = sizeof(r) + err_len, .mv_data = buf};
    return store_err(st, mdb_put(txn, st->outbox, &key, &nv, 0), "put_outbox");
}

int store_outbox_fail(struct store *st, const char *pool, uint64_t seq, int64_t next_attempt_ms,
                      bool parked, const char *error)
{
    store_validate(st);
    ASSERT(pool != NULL);
    ASSERT(error != NULL);
    if (st->read_only) {
        return -EROFS;
    }
    if (!store_str_ok(error, STORE_ERROR_MAX)) {
        return -EINVAL;
    }
    struct fail_arg a = {.pool = pool,
                         .seq = seq,
                         .next_attempt_ms = next_attempt_ms,
                         .parked = parked,
                         .error = error};
    return store_write(st, fail_txn, &a);
}

struct remove_arg {
    const char *pool;
    uint64_t seq;
};

static int remove_txn(struct store *st, MDB_txn *txn, void *arg)
{
    const struct remove_arg *a = arg;
    uint8_t kbuf[STORE_OUTBOX_KEY_LEN];
    int rc = entry_key(st, txn, kbuf, a->pool, a->seq);
    if (rc != 0) {
        return rc;
    }
    MDB_val key = {.mv_size = sizeof(kbuf), .mv_data = kbuf};
    return store_err(st, mdb_del(txn, st->outbox, &key, NULL), "del_outbox");
}

int store_outbox_remove(struct store *st, const char *pool, uint64_t seq)
{
    store_validate(st);
    ASSERT(pool != NULL);
    struct remove_arg a = {.pool = pool, .seq = seq};
    return store_write(st, remove_txn, &a);
}
