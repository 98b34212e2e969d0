/* cert.c: the group commit of certificates (with their outbox entries and lockout updates) and
 * certificate reads.
 *
 * Layout for the write rate: a certificate is appended under the next sequence number
 * (big-endian key, MDB_APPEND: only the right-most leaf of `certs` is dirtied) with its outbox
 * entry (pool id + seq: appends too). The random-key indexes (serial -> seq, uri -> seq) are
 * written in bulk by index.c once the tail of certificates after their watermark is long enough
 * (store_index_step); until then the tail is scanned, and a new serial is checked against the
 * tail's serials in memory (store_index_check_serials). This file calls index.c, user.c, grow.c
 * and common.c. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "store/internal.h"

static bool meta_ok(const struct store_cert_meta *m)
{
    return store_str_ok(m->uri, STORE_URI_MAX) && m->uri[0] != '\0' &&
           store_str_ok(m->pool, STORE_POOL_MAX) && m->pool[0] != '\0' &&
           store_str_ok(m->device_id, STORE_DEVICE_ID_MAX);
}

static void batch_validate(const struct store_batch *b)
{
    ASSERT(b != NULL);
    ASSERT(b->num_items <= STORE_BATCH_MAX);
    ASSERT(b->num_lockouts <= STORE_BATCH_MAX);
    ASSERT(b->num_unknown <= STORE_BATCH_MAX);
}

void store_batch_clear(struct store_batch *batch)
{
    batch_validate(batch);
    batch->num_items = 0;
    batch->num_lockouts = 0;
    batch->num_unknown = 0;
    batch_validate(batch);
}

int store_batch_add_cert(struct store_batch *batch, const struct store_cert_meta *meta,
                         const uint8_t *der, size_t der_len)
{
    batch_validate(batch);
    ASSERT(meta != NULL);
    ASSERT(der != NULL);
    if (der_len > STORE_CERT_DER_MAX) {
        return -E2BIG;
    }
    if (der_len == 0 || !meta_ok(meta)) {
        return -EINVAL;
    }
    if (batch->num_items == STORE_BATCH_MAX) {
        return -EBUSY;
    }
    struct store_batch_item *it = &batch->items[batch->num_items];
    it->meta = *meta;
    it->meta.seq = 0;
    it->der = der;
    it->der_len = der_len;
    it->rc = 0;
    batch->num_items++;
    batch_validate(batch);
    return 0;
}

int store_batch_add_lockout(struct store_batch *batch, const char *uri,
                            const struct store_lockout *lockout)
{
    batch_validate(batch);
    ASSERT(uri != NULL);
    ASSERT(lockout != NULL);
    if (!store_str_ok(uri, STORE_URI_MAX) || uri[0] == '\0' || uri[0] == '~') {
        return -EINVAL;
    }
    if (batch->num_lockouts == STORE_BATCH_MAX) {
        return -EBUSY;
    }
    struct store_batch_lockout *l = &batch->lockouts[batch->num_lockouts];
    int rc = base_str_copy(l->uri, sizeof(l->uri), uri);
    ASSERT(rc == 0); /* store_str_ok above */
    l->lockout = *lockout;
    batch->num_lockouts++;
    batch_validate(batch);
    return 0;
}

int store_batch_add_unknown(struct store_batch *batch)
{
    batch_validate(batch);
    if (batch->num_unknown == STORE_BATCH_MAX) {
        return -EBUSY;
    }
    batch->num_unknown++;
    batch_validate(batch);
    return 0;
}

int store_unknown_get(struct store *st, uint64_t *out)
{
    ASSERT(out != NULL);
    struct store_lockout l;
    int rc = store_lockout_get(st, &l, STORE_UNKNOWN_KEY);
    if (rc == 0) {
        *out = l.total_failures;
    }
    return rc;
}

/* ---- records ---- */

static size_t cert_encode(uint8_t buf[STORE_CERT_REC_MAX], const struct store_batch_item *it)
{
    struct cert_rec r;
    memset(&r, 0, sizeof(r));
    size_t uri_len = strlen(it->meta.uri);
    size_t pool_len = strlen(it->meta.pool);
    size_t dev_len = strlen(it->meta.device_id);
    r.not_before_s = it->meta.not_before_s;
    r.not_after_s = it->meta.not_after_s;
    r.issued_at_s = it->meta.issued_at_s;
    memcpy(r.serial, it->meta.serial, sizeof(r.serial));
    r.magic = STORE_MAGIC_CERT;
    r.der_len = (uint16_t)it->der_len;
    r.uri_len = (uint8_t)uri_len;
    r.pool_len = (uint8_t)pool_len;
    r.device_id_len = (uint8_t)dev_len;
    size_t total = sizeof(r) + uri_len + pool_len + dev_len + it->der_len;
    ASSERT(store_cert_rec_ok(&r, total)); /* paired with cert_decode */
    ASSERT(total <= STORE_CERT_REC_MAX);
    uint8_t *p = buf;
    memcpy(p, &r, sizeof(r));
    p += sizeof(r);
    memcpy(p, it->meta.uri, uri_len);
    p += uri_len;
    memcpy(p, it->meta.pool, pool_len);
    p += pool_len;
    memcpy(p, it->meta.device_id, dev_len);
    p += dev_len;
    memcpy(p, it->der, it->der_len);
    return total;
}

/* cert_decode fills *out (seq included) and points *out_der into `val`. */
static void cert_decode(struct store_cert_meta *out, const uint8_t **out_der, size_t *out_der_len,
                        const MDB_val *key, const MDB_val *val)
{
    struct cert_rec r;
    ASSERT(key->mv_size == STORE_SEQ_KEY_LEN);
    ASSERT(val->mv_size >= sizeof(r));
    memcpy(&r, val->mv_data, sizeof(r));
    ASSERT(store_cert_rec_ok(&r, val->mv_size));
    const uint8_t *p = (const uint8_t *)val->mv_data + sizeof(r);
    memset(out, 0, sizeof(*out));
    memcpy(out->serial, r.serial, sizeof(out->serial));
    out->not_before_s = r.not_before_s;
    out->not_after_s = r.not_after_s;
    out->issued_at_s = r.issued_at_s;
    out->seq = store_seq_decode(key->mv_data);
    memcpy(out->uri, p, r.uri_len);
    p += r.uri_len;
    memcpy(out->pool, p, r.pool_len);
    p += r.pool_len;
    memcpy(out->device_id, p, r.device_id_len);
    p += r.device_id_len;
    ASSERT(out->seq >= 1);
    *out_der = p;
    *out_der_len = r.der_len;
}

/* ---- commit ---- */

/* commit_ctx carries what one group commit resolves once: the pools seen and the time. */
struct commit_ctx {
    struct store_batch *batch;
    MDB_txn *txn;
    uint64_t first_seq;
    int64_t now_ms;
    size_t num_pools;
    struct ack_slot *acks; /* the publisher's removals that ride this commit (poolstate.c) */
    uint32_t pool_ids[STORE_POOLS_MAX];
    const char *pool_names[STORE_POOLS_MAX];
    uint8_t buf[STORE_CERT_REC_MAX];
};

/* pool_create gives the new pool `pool` the next id (ids are 1.. in creation order). Returns 0,
 * -E2BIG (STORE_POOLS_MAX pools exist) or store_err's code. */
static int pool_create(struct store *st, MDB_txn *txn, uint32_t *out_id, const char *pool)
{
    MDB_stat ms = {0};
    int rc = store_err(st, mdb_stat(txn, st->pools, &ms), "stat_pools");
    if (rc != 0) {
        return rc;
    }
    if (ms.ms_entries >= STORE_POOLS_MAX) {
        log_err("store: too_many_pools pool=%s max=%d", pool, STORE_POOLS_MAX);
        return -E2BIG;
    }
    uint32_t id = (uint32_t)ms.ms_entries + 1;
    MDB_val key = store_val_str(pool);
    MDB_val val = {.mv_size = sizeof(id), .mv_data = &id};
    rc = store_err(st, mdb_put(txn, st->pools, &key, &val, MDB_NOOVERWRITE), "put_pool");
    if (rc != 0) {
        return rc;
    }
    *out_id = id;
    return 0;
}

/* pool_resolve finds or creates the id of `pool`, remembered for the rest of the batch. */
static int pool_resolve(struct store *st, struct commit_ctx *c, uint32_t *out_id, const char *pool)
{
    for (size_t i = 0; i < c->num_pools; i++) {
        if (strcmp(c->pool_names[i], pool) == 0) {
            *out_id = c->pool_ids[i];
            return 0;
        }
    }
    uint32_t id = 0;
    int rc = store_pool_find(st, c->txn, &id, pool);
    if (rc == -ENOENT) {
        rc = pool_create(st, c->txn, &id, pool);
    }
    if (rc != 0) {
        return rc;
    }
    ASSERT(id >= 1);
    ASSERT(c->num_pools < STORE_POOLS_MAX);
    c->pool_ids[c->num_pools] = id;
    c->pool_names[c->num_pools] = pool;
    c->num_pools++;
    *out_id = id;
    return 0;
}

static int outbox_put_new(struct store *st, struct commit_ctx *c, const struct store_batch_item *it,
                          uint64_t seq)
{
    uint32_t pool_id = 0;
    int rc = pool_resolve(st, c, &pool_id, it->meta.pool);
    if (rc != 0) {
        return rc;
    }
    uint8_t key_buf[STORE_OUTBOX_KEY_LEN];
    for (size_t i = 0; i < 4; i++) {
        key_buf[i] = (uint8_t)(pool_id >> (8 * (3 - i)));
    }
    store_seq_encode(key_buf + 4, seq);
    struct outbox_rec r;
    memset(&r, 0, sizeof(r));
    r.enqueued_ms = c->now_ms;
    memcpy(r.serial, it->meta.serial, sizeof(r.serial));
    r.magic = STORE_MAGIC_OUTBOX;
    MDB_val key = {.mv_size = sizeof(key_buf), .mv_data = key_buf};
    MDB_val val = {.mv_size = sizeof(r), .mv_data = &r};
    return store_err(st, mdb_put(c->txn, st->outbox, &key, &val, MDB_NOOVERWRITE), "put_outbox");
}

/* cert_put appends the record of `it` under `seq` (MDB_APPEND: seq only grows). */
static int cert_put(struct store *st, struct commit_ctx *c, const struct store_batch_item *it,
                    uint64_t seq)
{
    uint8_t seq_key[STORE_SEQ_KEY_LEN];
    store_seq_encode(seq_key, seq);
    MDB_val skey = {.mv_size = STORE_SEQ_KEY_LEN, .mv_data = seq_key};
    MDB_val val = {.mv_size = cert_encode(c->buf, it), .mv_data = c->buf};
    return store_err(st, mdb_put(c->txn, st->certs, &skey, &val, MDB_APPEND), "put_cert");
}

static int next_seq(struct store *st, MDB_txn *txn, uint64_t *out)
{
    uint64_t last = 0;
    int rc = store_last_seq(st, txn, &last);
    if (rc != 0) {
        return rc;
    }
    *out = last + 1;
    return 0;
}

static int lockouts_put(struct store *st, MDB_txn *txn, const struct store_batch *b)
{
    for (size_t i = 0; i < b->num_lockouts; i++) {
        const struct store_batch_lockout *l = &b->lockouts[i];
        int rc = store_user_exists(st, txn, l->uri);
        if (rc == -ENOENT) {
            /* Deleted since it authenticated: its lockout state went with it. */
            log_info("store: lockout_skipped_no_user uri=%s", l->uri);
            continue;
        }
        if (rc != 0) {
            return rc;
        }
        /* A lock another appliance decided may have reached the replica (the fleet directory,
         * directory.c) since the writer read the state it judged with: it stays. No judgement
         * of the writer lowers a lock's end or lifts an administrator's lock. */
        struct store_lockout next = l->lockout;
        struct store_lockout cur;
        rc = store_lockout_rec_get(st, txn, &cur, l->uri);
        if (rc != 0) {
            return rc;
        }
        next.locked_until_s =
            cur.locked_until_s > next.locked_until_s ? cur.locked_until_s : next.locked_until_s;
        next.admin_locked = next.admin_locked || cur.admin_locked;
        rc = store_lockout_rec_put(st, txn, l->uri, &next);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

/* unknown_put adds the batch's unknown failures to the decoy record: one read and one write of a
 * lockout record, what lockouts_put costs for one user. */
static int unknown_put(struct store *st, MDB_txn *txn, const struct store_batch *b, int64_t now_s)
{
    ASSERT(b->num_unknown > 0);
    struct store_lockout l;
    int rc = store_lockout_rec_get(st, txn, &l, STORE_UNKNOWN_KEY);
    if (rc == 0) {
        l.total_failures += b->num_unknown;
        l.last_failure_s = now_s;
        rc = store_lockout_rec_put(st, txn, STORE_UNKNOWN_KEY, &l);
    }
    return rc;
}

/* batch_put_all writes the whole batch in passes: first every serial is checked (so that all
 * clashes are found and marked before anything is written), then the records (consecutive
 * appends, so their pages are allocated together), then the outbox entries, the indexes when the
 * tail is long enough, the lockout updates and the unknown failures. */
static int batch_put_all(struct store *st, struct commit_ctx *c, struct store_batch *b)
{
    struct store_index_state ix;
    int rc = next_seq(st, c->txn, &c->first_seq);
    if (rc != 0) {
        return rc;
    }
    rc = store_index_get(st, c->txn, &ix);
    if (rc != 0) {
        return rc;
    }
    if (b->num_items > 0) {
        rc = store_index_check_serials(st, c->txn, b, &ix, c->first_seq - 1);
        if (rc != 0) {
            return rc;
        }
    }
    for (size_t i = 0; i < b->num_items; i++) {
        rc = cert_put(st, c, &b->items[i], c->first_seq + i);
        if (rc != 0) {
            return rc;
        }
    }
    for (size_t i = 0; i < b->num_items; i++) {
        rc = outbox_put_new(st, c, &b->items[i], c->first_seq + i);
        if (rc != 0) {
            return rc;
        }
    }
    if (b->num_items > 0) {
        rc = store_index_step(st, c->txn, ix, c->first_seq + b->num_items - 1);
        if (rc != 0) {
            return rc;
        }
    }
    rc = lockouts_put(st, c->txn, b);
    if (rc != 0 || b->num_unknown == 0) {
        return rc;
    }
    return unknown_put(st, c->txn, b, c->now_ms / 1000);
}

/* The map's last pages are kept from certificates so that the small writes that must not fail
 * with them (lockout updates, the unknown-failure count, the publisher's removals) still commit
 * once certificates no longer fit: LMDB reuses a freed page only two commits later, and a full
 * map otherwise soon holds not one page any write transaction could take. 256 pages (1 MiB of 4
 * KiB pages) hold a lockout-only commit of a whole batch; a small map keeps an eighth. */
#define RESERVE_PAGES_MAX 256u
#define RESERVE_MAP_SHARE 8u

/* pages_used counts the pages `txn` sees in use: both meta pages and every page of every tree,
 * the free list's own included; the rest of the map is free or reusable. Returns 0 or -EIO. */
static int pages_used(struct store *st, MDB_txn *txn, uint64_t *out)
{
    const MDB_dbi dbis[] = {0 /* FREE_DBI */, 1 /* MAIN_DBI */, st->users,   st->phone,
                            st->ext,          st->phext,        st->lockout, st->certs,
                            st->serials,      st->byuser,       st->outbox,  st->pools,
                            st->poolstate,    st->meta,         st->revoked, st->disabled};
    uint64_t used = 2;
    for (size_t i = 0; i < ARRAY_LEN(dbis); i++) {
        MDB_stat s;
        int rc = store_err(st, mdb_stat(txn, dbis[i], &s), "stat");
        if (rc != 0) {
            return rc;
        }
        used += (uint64_t)s.ms_branch_pages + s.ms_leaf_pages + s.ms_overflow_pages;
    }
    *out = used;
    return 0;
}

/* batch_bytes is what reserve_check counts for the certificates of `b`: their DER and 512 bytes
 * each for the record's other fields and the outbox and index entries. */
static uint64_t batch_bytes(const struct store_batch *b)
{
    uint64_t bytes = 0;
    for (size_t i = 0; i < b->num_items; i++) {
        bytes += b->items[i].der_len + 512;
    }
    return bytes;
}

/* reserve_check refuses certificates of `bytes` (batch_bytes) that could take the map's reserve:
 * -ENOSPC (logged like a full map, noted as STORE_FAULT_MAP_FULL), 0, or -EIO. Costs one
 * mdb_env_info unless the map's high-water mark is near its end; then a stat of each tree. */
static int reserve_check(struct store *st, MDB_txn *txn, uint64_t bytes)
{
    ASSERT(bytes > 0);
    MDB_envinfo info;
    MDB_stat env;
    int rc = store_err(st, mdb_env_info(st->env, &info), "env_info");
    if (rc != 0) {
        return rc;
    }
    rc = store_err(st, mdb_env_stat(st->env, &env), "env_stat");
    if (rc != 0) {
        return rc;
    }
    uint64_t max_pages = info.me_mapsize / env.ms_psize;
    uint64_t reserve = max_pages / RESERVE_MAP_SHARE;
    reserve = reserve < RESERVE_PAGES_MAX ? reserve : RESERVE_PAGES_MAX;
    /* What the certificates may take: their records, outbox and index entries, twice for the
     * pages copied on write, and the paths of the trees they touch. */
    uint64_t need = 2 * (bytes / env.ms_psize + 1) + 32;
    if ((uint64_t)info.me_last_pgno + 1 + need + reserve <= max_pages) {
        return 0; /* far from the end: nothing to count */
    }
    uint64_t used = 0;
    rc = pages_used(st, txn, &used);
    if (rc == 0 && used + need + reserve > max_pages) {
        log_err("store: map_full path=%s map_size=%llu op=reserve used_pages=%llu "
                "reserve_pages=%llu action=\"raise [store] map_size in the configuration\"",
                st->path, (unsigned long long)st->map_size, (unsigned long long)used,
                (unsigned long long)reserve);
        store_fault_note(STORE_FAULT_MAP_FULL);
        rc = -ENOSPC;
    }
    return rc;
}

/* batch_txn is the write transaction of store_batch_commit (under commit_lock). */
static int batch_txn(struct store *st, MDB_txn *txn, void *arg)
{
    struct commit_ctx *c = arg;
    c->txn = txn;
    if (c->batch->num_items > 0) {
        int rc = reserve_check(st, txn, batch_bytes(c->batch));
        if (rc != 0) {
            return rc;
        }
    }
    (void)store_env_grow(st->env); /* a failure only costs speed */
    int rc = batch_put_all(st, c, c->batch);
    if (rc != 0) {
        return rc;
    }
    rc = store_acks_apply(st, txn, c->acks);
    if (rc != 0) {
        return rc;
    }
    if (st->defer_meta_sync && c->batch->num_items > 0) {
        /* Marked before the commit makes them visible: a reader never sees them unmarked. */
        uint64_t nd = atomic_load(&st->nondurable_seq);
        atomic_store(&st->nondurable_seq, nd < c->first_seq ? nd : c->first_seq);
    }
    return 0;
}

int store_batch_commit(struct store *st, struct store_batch *batch)
{
    store_validate(st);
    batch_validate(batch);
    batch->fault = STORE_FAULT_NONE;
    if (st->read_only) {
        batch->fault = STORE_FAULT_READ_ONLY;
        return -EROFS;
    }
    if (batch->num_items == 0 && batch->num_lockouts == 0 && batch->num_unknown == 0) {
        return 0;
    }
    for (size_t i = 0; i < batch->num_items; i++) {
        batch->items[i].rc = 0;
    }
    struct commit_ctx c; /* not zeroed as a whole: buf is large and written before it is read */
    c.batch = batch;
    c.txn = NULL;
    c.first_seq = 0;
    c.now_ms = clock_real_ms();
    c.num_pools = 0;
    base_mutex_lock(&st->commit_lock);
    c.acks = st->defer_meta_sync ? store_acks_take(st) : NULL;
    (void)store_fault_take(); /* a fault noted before this commit is not its own */
    int rc = store_write(st, batch_txn, &c);
    c.txn = NULL; /* ended by store_write */
    store_acks_done(st, c.acks, rc);
    atomic_store(&st->last_commit_ns, clock_mono_ns());
    if (rc != 0) {
        batch->fault = store_fault_settle(st, rc);
        store_index_discard(st);
        goto out;
    }
    if (st->defer_meta_sync) {
        /* This commit synced its data pages, and with them the meta pages of every earlier
         * commit: only this one can still be undone by a system crash. */
        atomic_store(&st->nondurable_seq, batch->num_items > 0 ? c.first_seq : UINT64_MAX);
    }
    for (size_t i = 0; i < batch->num_items; i++) {
        batch->items[i].meta.seq = c.first_seq + i;
    }
    store_batch_clear(batch);
out:
    base_mutex_unlock(&st->commit_lock);
    batch_validate(batch);
    return rc;
}

/* ---- the probe ---- */

#define PROBE_KEY "probe"

/* probe_txn is the write transaction of store_probe (under commit_lock). */
static int probe_txn(struct store *st, MDB_txn *txn, void *arg)
{
    const int64_t *now_s = arg;
    int rc = reserve_check(st, txn, STORE_CERT_DER_MAX + 512);
    if (rc != 0) {
        return rc;
    }
    rc = store_env_grow(st->env); /* the file system's room: noted by store_err_map */
    if (rc != 0) {
        log_err("store: probe_grow_failed path=%s rc=%d", st->path, rc);
        return rc;
    }
    MDB_val key = store_val_str(PROBE_KEY);
    MDB_val val = {.mv_size = sizeof(*now_s), .mv_data = (void *)(uintptr_t)now_s};
    return store_err(st, mdb_put(txn, st->meta, &key, &val, 0), "put_probe");
}

int store_probe(struct store *st, enum store_fault *out_fault)
{
    store_validate(st);
    ASSERT(out_fault != NULL);
    if (st->read_only) {
        *out_fault = STORE_FAULT_READ_ONLY;
        return -EROFS;
    }
    ASSERT(st->has_meta); /* a writable open creates it */
    int64_t now_s = clock_real_s();
    base_mutex_lock(&st->commit_lock);
    (void)store_fault_take();
    int rc = store_write(st, probe_txn, &now_s);
    *out_fault = store_fault_settle(st, rc);
    base_mutex_unlock(&st->commit_lock);
    return rc;
}

/* ---- reads ---- */

/* cert_copy_out decodes the certificate at `seq` (its key) into the caller's buffers. */
static int cert_copy_out(struct store *st, MDB_txn *txn, MDB_val *seq,
                         struct store_cert_meta *out_meta, uint8_t *der, size_t cap,
                         size_t *out_len, const uint8_t serial[STORE_SERIAL_LEN])
{
    MDB_val val = {0};
    int rc = store_err(st, mdb_get(txn, st->certs, seq, &val), "get_cert");
    if (rc != 0) {
        return rc;
    }
    struct store_cert_meta m;
    const uint8_t *p = NULL;
    size_t len = 0;
    cert_decode(&m, &p, &len, seq, &val);
    ASSERT(memcmp(m.serial, serial, STORE_SERIAL_LEN) == 0);
    if (len > cap) {
        return -E2BIG;
    }
    memcpy(der, p, len);
    *out_meta = m;
    *out_len = len;
    return 0;
}

int store_cert_get(struct store *st, struct store_cert_meta *out_meta, uint8_t *der, size_t cap,
                   size_t *out_len, const uint8_t serial[STORE_SERIAL_LEN])
{
    store_validate(st);
    ASSERT(out_meta != NULL);
    ASSERT(der != NULL || cap == 0);
    ASSERT(out_len != NULL);
    ASSERT(serial != NULL);
    MDB_txn *txn = NULL;
    int rc = store_txn_begin(st, &txn, false);
    if (rc != 0) {
        return rc;
    }
    uint8_t seq_buf[STORE_SEQ_KEY_LEN];
    rc = store_index_find_serial(st, txn, seq_buf, serial);
    if (rc == 0) {
        MDB_val seq = {.mv_size = sizeof(seq_buf), .mv_data = seq_buf};
        rc = cert_copy_out(st, txn, &seq, out_meta, der, cap, out_len, serial);
        ASSERT(rc != -ENOENT); /* every index entry names a stored certificate */
    }
    mdb_txn_abort(txn);
    return rc;
}

int store_cert_get_seq(struct store *st, struct store_cert_meta *out_meta, uint8_t *der, size_t cap,
                       size_t *out_len, uint64_t seq, const uint8_t serial[STORE_SERIAL_LEN])
{
    store_validate(st);
    MDB_txn *txn = NULL;
    int rc = store_txn_begin(st, &txn, false);
    if (rc != 0) {
        return rc;
    }
    uint8_t seq_buf[STORE_SEQ_KEY_LEN];
    store_seq_encode(seq_buf, seq);
    MDB_val key = {.mv_size = sizeof(seq_buf), .mv_data = seq_buf};
    rc = cert_copy_out(st, txn, &key, out_meta, der, cap, out_len, serial);
    mdb_txn_abort(txn);
    return rc;
}

struct visit_cert_arg {
    store_cert_fn fn;
    void *ctx;
};

/* visit_cert decodes one certificate of the user and passes it to the caller's fn. */
static int visit_cert(struct store *st, MDB_txn *txn, const MDB_val *key, const MDB_val *val,
                      const struct cert_rec *r, void *arg)
{
    (void)st;
    (void)txn;
    (void)r;
    const struct visit_cert_arg *a = arg;
    struct store_cert_meta m;
    const uint8_t *der = NULL;
    size_t der_len = 0;
    cert_decode(&m, &der, &der_len, key, val);
    return a->fn(a->ctx, &m, der, der_len);
}

int store_cert_foreach_newest(struct store *st, store_cert_fn fn, void *ctx)
{
    store_validate(st);
    ASSERT(fn != NULL);
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    int rc = store_txn_begin(st, &txn, false);
    if (rc != 0) {
        return rc;
    }
    rc = store_err(st, mdb_cursor_open(txn, st->certs, &cur), "cursor_certs");
    MDB_val key = {0};
    MDB_val val = {0};
    MDB_cursor_op op = MDB_LAST;
    while (rc == 0) { /* bounded by the certificates stored, and fn stops it */
        int mrc = mdb_cursor_get(cur, &key, &val, op);
        if (mrc == MDB_NOTFOUND) {
            break;
        }
        rc = store_err(st, mrc, "walk_certs");
        if (rc == 0) {
            struct store_cert_meta m;
            const uint8_t *der = NULL;
            size_t der_len = 0;
            cert_decode(&m, &der, &der_len, &key, &val);
            rc = fn(ctx, &m, der, der_len);
        }
        op = MDB_PREV;
    }
    if (cur != NULL) {
        mdb_cursor_close(cur);
    }
    mdb_txn_abort(txn);
    return rc;
}

int store_cert_foreach_by_uri(struct store *st, const char *uri, store_cert_fn fn, void *ctx)
{
    store_validate(st);
    ASSERT(uri != NULL);
    ASSERT(fn != NULL);
    if (!store_str_ok(uri, STORE_URI_MAX) || uri[0] == '\0') {
        return 0;
    }
    MDB_txn *txn = NULL;
    int rc = store_txn_begin(st, &txn, false);
    if (rc != 0) {
        return rc;
    }
    struct visit_cert_arg a = {.fn = fn, .ctx = ctx};
    rc = store_index_foreach_uri(st, txn, uri, visit_cert, &a);
    mdb_txn_abort(txn);
    return rc;
}

int store_cert_recent_by_uri(struct store *st, const char *uri, int64_t since_s, uint32_t max,
                             uint32_t *out_num, int64_t *out_last_s)
{
    store_validate(st);
    ASSERT(uri != NULL);
    ASSERT(max >= 1);
    ASSERT(out_num != NULL);
    ASSERT(out_last_s != NULL);
    if (!store_str_ok(uri, STORE_URI_MAX) || uri[0] == '\0') {
        *out_num = 0;
        *out_last_s = 0;
        return 0;
    }
    MDB_txn *txn = NULL;
    int rc = store_txn_begin(st, &txn, false);
    if (rc != 0) {
        return rc;
    }
    uint32_t num = 0;
    int64_t last_s = 0;
    base_mutex_lock(&st->recent_lock);
    rc = store_index_recent_uri(st, txn, uri, since_s, max, &num, &last_s);
    base_mutex_unlock(&st->recent_lock);
    mdb_txn_abort(txn);
    if (rc == 0) {
        ASSERT(num <= max);
        ASSERT(num == 0 || last_s >= since_s);
        *out_num = num;
        *out_last_s = last_s;
    }
    return rc;
}

int store_cert_count(struct store *st, uint64_t *out)
{
    store_validate(st);
    ASSERT(out != NULL);
    MDB_txn *txn = NULL;
    int rc = store_txn_begin(st, &txn, false);
    if (rc != 0) {
        return rc;
    }
    MDB_stat ms = {0};
    rc = store_err(st, mdb_stat(txn, st->certs, &ms), "stat_certs");
    mdb_txn_abort(txn);
    if (rc == 0) {
        *out = ms.ms_entries;
    }
    return rc;
}
