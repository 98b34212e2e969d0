/* cert.c: the group commit of certificates (with their outbox entries and lockout updates) and
 * certificate reads.
 *
 * Layout for the write rate: a certificate is appended under the next sequence number
 * (big-endian key, MDB_APPEND: only the right-most leaf of `certs` is dirtied) with its outbox
 * entry (pool id + seq: appends too). The random-key indexes (serial -> seq, uri -> seq) are
 * written in bulk once the tail of certificates after their watermark is long enough (see
 * index_step); until then the tail is scanned, and a new serial is checked against the tail's
 * serials in memory (see serials_check). */
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
    ASSERT(base_str_copy(l->uri, sizeof(l->uri), uri) == 0);
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

static bool cert_rec_ok(const struct cert_rec *r, size_t total)
{
    static const uint8_t zero[sizeof(r->pad)] = {0};
    return r->magic == STORE_MAGIC_CERT && r->der_len >= 1 && r->der_len <= STORE_CERT_DER_MAX &&
           r->uri_len >= 1 && r->pool_len >= 1 && r->pool_len <= STORE_POOL_MAX &&
           r->device_id_len <= STORE_DEVICE_ID_MAX && memcmp(r->pad, zero, sizeof(zero)) == 0 &&
           total == sizeof(*r) + r->uri_len + r->pool_len + r->device_id_len + r->der_len;
}

/* cert_encode writes the record of `it` into `buf` and returns its length. */
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
    ASSERT(cert_rec_ok(&r, total)); /* paired with cert_decode */
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
    ASSERT(cert_rec_ok(&r, val->mv_size));
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
    MDB_txn *txn;
    uint64_t first_seq;
    int64_t now_ms;
    size_t num_pools;
    uint32_t pool_ids[STORE_POOLS_MAX];
    const char *pool_names[STORE_POOLS_MAX];
    uint8_t buf[STORE_CERT_REC_MAX];
};

/* pool_resolve finds or creates the id of `pool` (ids are 1.. in creation order). */
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
        MDB_stat ms = {0};
        rc = store_err(st, mdb_stat(c->txn, st->pools, &ms), "stat_pools");
        if (rc == 0 && ms.ms_entries >= STORE_POOLS_MAX) {
            log_err("store: too_many_pools pool=%s max=%d", pool, STORE_POOLS_MAX);
            return -E2BIG;
        }
        id = (uint32_t)ms.ms_entries + 1;
        MDB_val key = store_val_str(pool);
        MDB_val val = {.mv_size = sizeof(id), .mv_data = &id};
        rc = rc != 0 ? rc
                     : store_err(st, mdb_put(c->txn, st->pools, &key, &val, MDB_NOOVERWRITE),
                                 "put_pool");
    }
    if (rc != 0) {
        return rc;
    }
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

/* record_fn is called for each record of a scan: its key (the seq), its value, and the value's
 * fixed header (copied out). The URI is the r->uri_len bytes after the header, in the map: it
 * is not to be read after a put. A non-zero return stops the scan and is returned. */
typedef int (*record_fn)(struct store *st, MDB_txn *txn, const MDB_val *key, const MDB_val *val,
                         const struct cert_rec *r, void *arg);

/* record_scan calls fn for the certificates in (upto, target], in seq order, reading their
 * headers in place (UINT64_MAX: to the end: the tail). 0 at the end, or fn's return. */
static int record_scan(struct store *st, MDB_txn *txn, uint64_t upto, uint64_t target, record_fn fn,
                       void *arg)
{
    MDB_cursor *cur = NULL;
    int rc = store_err(st, mdb_cursor_open(txn, st->certs, &cur), "cursor_open");
    if (rc != 0) {
        return rc;
    }
    uint8_t start[STORE_SEQ_KEY_LEN];
    store_seq_encode(start, upto + 1);
    MDB_val key = {.mv_size = sizeof(start), .mv_data = start};
    MDB_val val = {0};
    rc = store_err(st, mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE), "cursor_set_range");
    /* Bounded by target - upto records, or by the tail (see tail_sync). */
    while (rc == 0 && store_seq_decode(key.mv_data) <= target) {
        struct cert_rec r;
        ASSERT(val.mv_size >= sizeof(r));
        memcpy(&r, val.mv_data, sizeof(r));
        ASSERT(cert_rec_ok(&r, val.mv_size));
        rc = fn(st, txn, &key, &val, &r, arg);
        rc = rc != 0 ? rc : store_err(st, mdb_cursor_get(cur, &key, &val, MDB_NEXT), "cursor_next");
    }
    mdb_cursor_close(cur);
    return rc == -ENOENT ? 0 : rc;
}

/* ---- the tail's serials ----
 *
 * The serial index holds the certificates up to the watermark; a new serial must also differ
 * from every serial in the tail. The tail's serials are kept in an open-addressing set owned by
 * the handle (under commit_lock, used only inside a write transaction), built from the tail by
 * a scan when missing or stale (another process committed or indexed), and thrown away when a
 * commit fails. Nothing in it is authoritative: LMDB is. */

struct tail_slot {
    uint8_t serial[STORE_SERIAL_LEN];
    bool used;
};

struct tail_set {
    bool valid;
    uint64_t base; /* the watermark it was built for */
    uint64_t last; /* the highest seq whose serial it holds (base when none) */
    size_t num;
    size_t cap; /* a power of two, at least twice num (tail_add grows it) */
    struct tail_slot *slots;
};

void store_tail_free(struct store *st)
{
    if (st->tail != NULL) {
        free(st->tail->slots);
        free(st->tail);
        st->tail = NULL;
    }
}

static size_t tail_hash(const uint8_t serial[STORE_SERIAL_LEN], size_t cap)
{
    uint64_t h = 0;
    memcpy(&h, serial + STORE_SERIAL_LEN - sizeof(h), sizeof(h)); /* CSPRNG bytes */
    return (size_t)(h * 0x9E3779B97F4A7C15ull >> 17) & (cap - 1);
}

/* tail_find returns the slot of `serial`, or the empty slot where it would go. */
static struct tail_slot *tail_find(struct tail_set *t, const uint8_t serial[STORE_SERIAL_LEN])
{
    size_t i = tail_hash(serial, t->cap);
    /* Bounded: the set is at most half full, so an empty slot comes within cap probes. */
    for (size_t n = 0; n < t->cap; n++) {
        struct tail_slot *sl = &t->slots[(i + n) & (t->cap - 1)];
        if (!sl->used || memcmp(sl->serial, serial, STORE_SERIAL_LEN) == 0) {
            return sl;
        }
    }
    ASSERT(false && "tail set full");
    return NULL;
}

/* tail_grow doubles the set's capacity, keeping it at most half full whatever the tail (an
 * environment written with a larger index_tail_max, or a segment still being indexed). Returns 0
 * or -ENOMEM. */
static int tail_grow(struct tail_set *t)
{
    size_t old_cap = t->cap;
    struct tail_slot *old = t->slots;
    struct tail_slot *slots = calloc(2 * old_cap, sizeof(*slots));
    if (slots == NULL) {
        return -ENOMEM;
    }
    t->slots = slots;
    t->cap = 2 * old_cap;
    for (size_t i = 0; i < old_cap; i++) {
        if (old[i].used) {
            *tail_find(t, old[i].serial) = old[i];
        }
    }
    free(old);
    return 0;
}

/* tail_add adds `serial`. Returns 1 (added), 0 (there already) or -ENOMEM. */
static int tail_add(struct tail_set *t, const uint8_t serial[STORE_SERIAL_LEN])
{
    struct tail_slot *sl = tail_find(t, serial);
    if (sl->used) {
        return 0;
    }
    if (t->num + 1 > t->cap / 2) {
        int rc = tail_grow(t);
        if (rc != 0) {
            return rc;
        }
        sl = tail_find(t, serial);
    }
    memcpy(sl->serial, serial, STORE_SERIAL_LEN);
    sl->used = true;
    t->num++;
    return 1;
}

static void tail_reset(struct tail_set *t, uint64_t base)
{
    memset(t->slots, 0, t->cap * sizeof(t->slots[0]));
    t->num = 0;
    t->base = base;
    t->last = base;
    t->valid = true;
}

static int visit_tail_serial(struct store *st, MDB_txn *txn, const MDB_val *key, const MDB_val *val,
                             const struct cert_rec *r, void *arg)
{
    (void)st;
    (void)txn;
    (void)val;
    struct tail_set *t = arg;
    int rc = tail_add(t, r->serial);
    t->last = store_seq_decode(key->mv_data);
    return rc < 0 ? rc : 0;
}

/* tail_sync brings the set up to date with `txn`: the tail after `upto` up to `last`. */
static int tail_sync(struct store *st, MDB_txn *txn, uint64_t upto, uint64_t last)
{
    if (st->tail == NULL) {
        struct tail_set *t = calloc(1, sizeof(*t));
        /* It grows with the tail (tail_add): up to a segment (index_tail_max and a batch) plus
         * the next tail of about as much while the segment's slices are paced (index_step).
         * Starting small keeps a new handle's first commit cheap (a 6 MiB set took tens of ms
         * to clear under TSan). */
        size_t cap = 4096;
        if (t == NULL || (t->slots = calloc(cap, sizeof(t->slots[0]))) == NULL) {
            free(t);
            return -ENOMEM;
        }
        t->cap = cap;
        st->tail = t;
    }
    struct tail_set *t = st->tail;
    if (!t->valid || t->base != upto || t->last > last) {
        tail_reset(t, upto); /* first use, or another process indexed: rebuild */
    }
    if (t->last == last) {
        return 0;
    }
    /* Certificates committed by another process since: read them in. */
    int rc = record_scan(st, txn, t->last, UINT64_MAX, visit_tail_serial, t);
    ASSERT(rc != 0 || t->last == last);
    return rc;
}

/* serials_check marks (it->rc = -EEXIST) every item whose serial is taken: by the serial index,
 * by the tail, or by an earlier item of the batch. Returns 0, -EEXIST or another error. It adds
 * the batch's serials to the tail set; the caller invalidates the set if the commit fails. */
static int serials_check(struct store *st, MDB_txn *txn, struct store_batch *b, uint64_t upto,
                         uint64_t last)
{
    int rc = tail_sync(st, txn, upto, last);
    bool clash = false;
    for (size_t i = 0; rc == 0 && i < b->num_items; i++) {
        struct store_batch_item *it = &b->items[i];
        MDB_val key = {.mv_size = STORE_SERIAL_LEN, .mv_data = it->meta.serial};
        MDB_val seq = {0};
        rc = store_err(st, mdb_get(txn, st->serials, &key, &seq), "get_serial");
        bool taken = rc == 0;
        if (rc == -ENOENT) {
            int added = tail_add(st->tail, it->meta.serial);
            taken = added == 0;
            rc = added < 0 ? added : 0;
        }
        if (taken) {
            it->rc = -EEXIST;
            clash = true; /* keep going: mark every clashing item */
        }
    }
    return rc != 0 ? rc : (clash ? -EEXIST : 0);
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

int store_last_seq(struct store *st, MDB_txn *txn, uint64_t *out)
{
    MDB_cursor *cur = NULL;
    int rc = store_err(st, mdb_cursor_open(txn, st->certs, &cur), "cursor_open");
    if (rc != 0) {
        return rc;
    }
    MDB_val key = {0};
    MDB_val val = {0};
    rc = store_err(st, mdb_cursor_get(cur, &key, &val, MDB_LAST), "cursor_last");
    mdb_cursor_close(cur);
    if (rc == -ENOENT) {
        *out = 0;
        return 0;
    }
    if (rc == 0) {
        ASSERT(key.mv_size == STORE_SEQ_KEY_LEN);
        *out = store_seq_decode(key.mv_data);
    }
    return rc;
}

static int next_seq(struct store *st, MDB_txn *txn, uint64_t *out)
{
    uint64_t last = 0;
    int rc = store_last_seq(st, txn, &last);
    *out = last + 1;
    return rc;
}

/* cert_get_seq reads the record under `skey` (a seq that an index entry or the segment names:
 * it exists). */
static int cert_get_seq(struct store *st, MDB_txn *txn, MDB_val *skey, MDB_val *val)
{
    int rc = store_err(st, mdb_get(txn, st->certs, skey, val), "get_cert");
    ASSERT(rc != -ENOENT); /* every index entry names a stored certificate */
    return rc;
}

/* index_entry puts both index entries of one certificate. */
static int index_entry(struct store *st, MDB_txn *txn, const uint8_t serial[STORE_SERIAL_LEN],
                       const char *uri, size_t uri_len, uint64_t seq_num)
{
    uint8_t seq[STORE_SEQ_KEY_LEN]; /* big-endian: DUPSORT keeps a user's oldest first */
    store_seq_encode(seq, seq_num);
    MDB_val skey = {.mv_size = sizeof(seq), .mv_data = seq};
    int rc = 0;
    if (serial != NULL) {
        MDB_val sv = {.mv_size = STORE_SERIAL_LEN, .mv_data = (void *)(uintptr_t)serial};
        rc = store_err(st, mdb_put(txn, st->serials, &sv, &skey, MDB_NOOVERWRITE), "put_serial");
        ASSERT(rc != -EEXIST); /* every serial of the tail was checked at its commit */
    }
    if (rc == 0 && uri != NULL) {
        uint8_t ukey_buf[STORE_USERIDX_KEY_MAX]; /* copied: the map is not read after a put */
        MDB_val ukey = {.mv_size = store_useridx_key(ukey_buf, uri, uri_len), .mv_data = ukey_buf};
        rc = store_err(st, mdb_put(txn, st->byuser, &ukey, &skey, 0), "put_useridx");
    }
    return rc;
}

static int visit_index_all(struct store *st, MDB_txn *txn, const MDB_val *key, const MDB_val *val,
                           const struct cert_rec *r, void *arg)
{
    (void)arg;
    char uri[STORE_URI_MAX];
    memcpy(uri, (const uint8_t *)val->mv_data + sizeof(*r), r->uri_len);
    return index_entry(st, txn, r->serial, uri, r->uri_len, store_seq_decode(key->mv_data));
}

int store_index_all(struct store *st, MDB_txn *txn, uint64_t last)
{
    return last == 0 ? 0 : record_scan(st, txn, 0, last, visit_index_all, NULL);
}

/* ---- the segment being indexed ----
 *
 * Each of the STORE_INDEX_SLICES steps needs the keys of its slice among the segment's
 * certificates. Reading the whole segment at every step would walk tens of megabytes of records
 * STORE_INDEX_SLICES times; instead its seqs, serials and slices are read once into memory (owned
 * by the handle, under commit_lock, rebuilt when the segment in `txn` is another one or a commit
 * failed), sorted by slice in both key orders (a stable counting sort: seq order within a
 * slice), and a step touches only its slice's entries and reads only the records whose URI falls
 * in it. */

struct segment_entry {
    uint64_t seq;
    uint8_t serial[STORE_SERIAL_LEN];
    uint8_t serial_slice;
    uint8_t uri_slice;
};

struct segment {
    bool valid;
    uint64_t upto, target; /* the segment (upto, target] it holds */
    size_t num;
    struct segment_entry *e;
    /* Indexes into e sorted by serial_slice and by uri_slice; slice k's are
     * [start[k], start[k + 1]). */
    uint32_t *by_serial, *by_uri;
    uint32_t serial_start[STORE_INDEX_SLICES + 1];
    uint32_t uri_start[STORE_INDEX_SLICES + 1];
};

static unsigned entry_slice(const struct segment_entry *x, bool by_uri)
{
    return by_uri ? x->uri_slice : x->serial_slice;
}

/* slice_sort puts the indexes of g->e into `out` ordered by slice (by URI or by serial), stable,
 * and the first position of each slice into start. */
static void slice_sort(const struct segment *g, bool by_uri, uint32_t *out,
                       uint32_t start[STORE_INDEX_SLICES + 1])
{
    memset(start, 0, (STORE_INDEX_SLICES + 1) * sizeof(start[0]));
    for (size_t i = 0; i < g->num; i++) {
        start[entry_slice(&g->e[i], by_uri) + 1]++;
    }
    for (size_t k = 0; k < STORE_INDEX_SLICES; k++) {
        start[k + 1] += start[k];
    }
    uint32_t next[STORE_INDEX_SLICES];
    memcpy(next, start, sizeof(next));
    for (size_t i = 0; i < g->num; i++) {
        out[next[entry_slice(&g->e[i], by_uri)]++] = (uint32_t)i;
    }
    ASSERT(start[STORE_INDEX_SLICES] == g->num);
}

static int visit_segment_add(struct store *st, MDB_txn *txn, const MDB_val *key, const MDB_val *val,
                             const struct cert_rec *r, void *arg)
{
    (void)st;
    (void)txn;
    struct segment *g = arg;
    ASSERT(g->num < g->target - g->upto); /* seqs are dense: certificates are never deleted */
    struct segment_entry *x = &g->e[g->num++];
    x->seq = store_seq_decode(key->mv_data);
    memcpy(x->serial, r->serial, sizeof(x->serial));
    x->serial_slice = (uint8_t)store_slice_serial(r->serial);
    x->uri_slice = (uint8_t)store_slice_uri((const char *)val->mv_data + sizeof(*r), r->uri_len);
    return 0;
}

static void segment_clear(struct segment *g)
{
    free(g->e);
    free(g->by_serial);
    free(g->by_uri);
    g->e = NULL;
    g->by_serial = NULL;
    g->by_uri = NULL;
    g->valid = false;
    g->num = 0;
}

static int segment_load(struct store *st, MDB_txn *txn, struct segment *g, uint64_t upto,
                        uint64_t target)
{
    segment_clear(g);
    g->upto = upto;
    g->target = target;
    ASSERT(target - upto <= UINT32_MAX); /* a segment is about index_tail_max certificates */
    g->e = calloc(target - upto, sizeof(g->e[0]));
    g->by_serial = calloc(target - upto, sizeof(g->by_serial[0]));
    g->by_uri = calloc(target - upto, sizeof(g->by_uri[0]));
    if (g->e == NULL || g->by_serial == NULL || g->by_uri == NULL) {
        return -ENOMEM;
    }
    int rc = record_scan(st, txn, upto, target, visit_segment_add, g);
    if (rc == 0) {
        slice_sort(g, false, g->by_serial, g->serial_start);
        slice_sort(g, true, g->by_uri, g->uri_start);
    }
    g->valid = rc == 0;
    return rc;
}

/* segment_slice puts the index entries of slice `slice` of the segment of `ix`. */
static int segment_slice(struct store *st, MDB_txn *txn, const struct store_index_state *ix,
                         unsigned slice)
{
    if (st->segment == NULL && (st->segment = calloc(1, sizeof(*st->segment))) == NULL) {
        return -ENOMEM;
    }
    struct segment *g = st->segment;
    int rc = 0;
    if (!g->valid || g->upto != ix->upto || g->target != ix->target) {
        rc = segment_load(st, txn, g, ix->upto, ix->target);
    }
    for (uint32_t k = g->serial_start[slice]; rc == 0 && k < g->serial_start[slice + 1]; k++) {
        const struct segment_entry *x = &g->e[g->by_serial[k]];
        rc = index_entry(st, txn, x->serial, NULL, 0, x->seq);
    }
    /* The URI is read from the record: only this slice's records are touched. */
    for (uint32_t k = g->uri_start[slice]; rc == 0 && k < g->uri_start[slice + 1]; k++) {
        const struct segment_entry *x = &g->e[g->by_uri[k]];
        uint8_t seq[STORE_SEQ_KEY_LEN];
        store_seq_encode(seq, x->seq);
        MDB_val skey = {.mv_size = sizeof(seq), .mv_data = seq};
        MDB_val val = {0};
        rc = cert_get_seq(st, txn, &skey, &val);
        struct cert_rec r;
        char uri[STORE_URI_MAX];
        if (rc == 0) {
            memcpy(&r, val.mv_data, sizeof(r));
            ASSERT(cert_rec_ok(&r, val.mv_size));
            memcpy(uri, (const uint8_t *)val.mv_data + sizeof(r), r.uri_len);
            rc = index_entry(st, txn, NULL, uri, r.uri_len, x->seq);
        }
    }
    return rc;
}

void store_segment_free(struct store *st)
{
    if (st->segment != NULL) {
        segment_clear(st->segment);
        free(st->segment);
        st->segment = NULL;
    }
}

/* index_step advances the bulk indexing by one slice. Once the tail after the watermark is
 * longer than index_tail_max, the segment up to the last certificate is indexed slice by slice,
 * one slice of the key space per commit: every such commit dirties about 1/STORE_INDEX_SLICES
 * of the index pages the segment needs (each page once for all its new entries), instead of two
 * random index pages per certificate, and no commit carries the whole segment. The slices are paced
 * by the certificates that follow: slice k waits until k x index_tail_max / STORE_INDEX_SLICES have
 * been stored after the segment, so the segment is indexed while the next tail grows, one
 * heavier commit at a time. Done in 16 consecutive commits, the slices made ~100 ms of slow
 * commits every 1.6 s at 5,000 enrollments/s, and 20-30 % of the enrollments of those moments
 * took over 10 ms (2026-12-01). With 880,000 certificates a slice of 16 still took 5-10 ms (its
 * pages grow with the index): 128 slices make each an eighth of that. `ix` is the state in this
 * transaction, `last` its highest seq. */
static int index_step(struct store *st, MDB_txn *txn, struct store_index_state ix, uint64_t last)
{
    if (ix.target == 0) {
        if (last <= ix.upto || last - ix.upto <= st->index_tail_max) {
            return 0;
        }
        ix.target = last;
        ix.progress = 0;
    } else if (last - ix.target < ix.progress * (st->index_tail_max / STORE_INDEX_SLICES)) {
        return 0; /* not due yet */
    }
    int rc = segment_slice(st, txn, &ix, (unsigned)ix.progress);
    if (rc != 0) {
        return rc;
    }
    ix.progress++;
    if (ix.progress == STORE_INDEX_SLICES) {
        ix.upto = ix.target;
        ix.target = 0;
        ix.progress = 0;
        st->tail->valid = false; /* rebuilt for the new watermark at the next commit */
        st->segment->valid = false;
    }
    return store_index_put(st, txn, &ix);
}

static int lockouts_put(struct store *st, MDB_txn *txn, const struct store_batch *b)
{
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < b->num_lockouts; i++) {
        const struct store_batch_lockout *l = &b->lockouts[i];
        rc = store_user_exists(st, txn, l->uri);
        if (rc == -ENOENT) {
            /* Deleted since it authenticated: its lockout state went with it. */
            log_info("store: lockout_skipped_no_user uri=%s", l->uri);
            rc = 0;
            continue;
        }
        if (rc == 0) {
            rc = store_lockout_rec_put(st, txn, l->uri, &l->lockout);
        }
    }
    return rc;
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
    rc = rc != 0 ? rc : store_index_get(st, c->txn, &ix);
    if (rc == 0 && b->num_items > 0) {
        rc = serials_check(st, c->txn, b, ix.upto, c->first_seq - 1);
    }
    for (size_t i = 0; rc == 0 && i < b->num_items; i++) {
        rc = cert_put(st, c, &b->items[i], c->first_seq + i);
    }
    for (size_t i = 0; rc == 0 && i < b->num_items; i++) {
        rc = outbox_put_new(st, c, &b->items[i], c->first_seq + i);
    }
    if (rc == 0 && b->num_items > 0) {
        uint64_t last = c->first_seq + b->num_items - 1;
        st->tail->last = last;
        rc = index_step(st, c->txn, ix, last);
    }
    if (rc == 0) {
        rc = lockouts_put(st, c->txn, b);
    }
    if (rc == 0 && b->num_unknown > 0) {
        rc = unknown_put(st, c->txn, b, c->now_ms / 1000);
    }
    return rc;
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
                            st->poolstate,    st->meta};
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

/* reserve_check refuses a batch of certificates that could take the map's reserve: -ENOSPC
 * (logged like a full map), 0, or -EIO. Costs one mdb_env_info unless the map's high-water mark
 * is near its end; then a stat of each tree. */
static int reserve_check(struct store *st, MDB_txn *txn, const struct store_batch *b)
{
    ASSERT(b->num_items > 0);
    MDB_envinfo info;
    MDB_stat env;
    int rc = store_err(st, mdb_env_info(st->env, &info), "env_info");
    rc = rc != 0 ? rc : store_err(st, mdb_env_stat(st->env, &env), "env_stat");
    if (rc != 0) {
        return rc;
    }
    uint64_t max_pages = info.me_mapsize / env.ms_psize;
    uint64_t reserve = max_pages / RESERVE_MAP_SHARE;
    reserve = reserve < RESERVE_PAGES_MAX ? reserve : RESERVE_PAGES_MAX;
    /* What the certificates may take: their records, outbox and index entries, twice for the
     * pages copied on write, and the paths of the trees they touch. */
    uint64_t bytes = 0;
    for (size_t i = 0; i < b->num_items; i++) {
        bytes += b->items[i].der_len + 512;
    }
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
        rc = -ENOSPC;
    }
    return rc;
}

int store_batch_commit(struct store *st, struct store_batch *batch)
{
    store_validate(st);
    batch_validate(batch);
    if (st->read_only) {
        return -EROFS;
    }
    if (batch->num_items == 0 && batch->num_lockouts == 0 && batch->num_unknown == 0) {
        return 0;
    }
    for (size_t i = 0; i < batch->num_items; i++) {
        batch->items[i].rc = 0;
    }
    struct commit_ctx c;
    c.txn = NULL;
    c.first_seq = 0;
    c.now_ms = clock_real_ms();
    c.num_pools = 0;
    pthread_mutex_lock(&st->commit_lock);
    int rc = store_txn_begin(st, &c.txn, true);
    if (rc == 0 && batch->num_items > 0) {
        rc = reserve_check(st, c.txn, batch);
    }
    if (rc == 0) {
        (void)store_env_grow(st->env);
        rc = batch_put_all(st, &c, batch);
    }
    if (rc != 0) {
        goto out;
    }
    if (st->defer_meta_sync && batch->num_items > 0) {
        /* Marked before the commit makes them visible: a reader never sees them unmarked. */
        uint64_t nd = atomic_load(&st->nondurable_seq);
        atomic_store(&st->nondurable_seq, nd < c.first_seq ? nd : c.first_seq);
    }
    rc = store_txn_commit(st, c.txn);
    c.txn = NULL;
    if (rc == 0 && st->defer_meta_sync) {
        /* This commit synced its data pages, and with them the meta pages of every earlier
         * commit: only this one can still be undone by a system crash. */
        atomic_store(&st->nondurable_seq, batch->num_items > 0 ? c.first_seq : UINT64_MAX);
    }
    if (rc == 0) {
        for (size_t i = 0; i < batch->num_items; i++) {
            batch->items[i].meta.seq = c.first_seq + i;
        }
        store_batch_clear(batch);
    }
out:
    if (rc != 0 && st->tail != NULL) {
        st->tail->valid = false; /* it may hold serials that were not stored */
    }
    if (rc != 0 && st->segment != NULL) {
        st->segment->valid = false;
    }
    if (c.txn != NULL) {
        mdb_txn_abort(c.txn);
    }
    pthread_mutex_unlock(&st->commit_lock);
    batch_validate(batch);
    return rc;
}

/* ---- reads ---- */

struct find_arg {
    const uint8_t *serial;
    uint8_t *seq_out;
};

static int visit_find(struct store *st, MDB_txn *txn, const MDB_val *key, const MDB_val *val,
                      const struct cert_rec *r, void *arg)
{
    (void)st;
    (void)txn;
    (void)val;
    const struct find_arg *a = arg;
    if (memcmp(r->serial, a->serial, STORE_SERIAL_LEN) != 0) {
        return 0;
    }
    memcpy(a->seq_out, key->mv_data, STORE_SEQ_KEY_LEN);
    return 1; /* found: stop */
}

/* tail_find_serial looks for `serial` among the certificates after the index watermark. Returns
 * 0 with its seq key in seq_out, -ENOENT or another error. */
static int tail_find_serial(struct store *st, MDB_txn *txn, uint8_t seq_out[STORE_SEQ_KEY_LEN],
                            const uint8_t serial[STORE_SERIAL_LEN])
{
    struct store_index_state ix;
    int rc = store_index_get(st, txn, &ix);
    if (rc != 0) {
        return rc;
    }
    struct find_arg a = {.serial = serial, .seq_out = seq_out};
    rc = record_scan(st, txn, store_index_watermark(&ix, store_slice_serial(serial)), UINT64_MAX,
                     visit_find, &a);
    return rc == 1 ? 0 : (rc == 0 ? -ENOENT : rc);
}

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
    MDB_val skey = {.mv_size = STORE_SERIAL_LEN, .mv_data = (void *)(uintptr_t)serial};
    MDB_val seq = {0};
    uint8_t seq_buf[STORE_SEQ_KEY_LEN];
    rc = store_err(st, mdb_get(txn, st->serials, &skey, &seq), "get_serial");
    if (rc == -ENOENT) { /* not indexed yet: in the tail, or nowhere */
        rc = tail_find_serial(st, txn, seq_buf, serial);
        seq.mv_size = sizeof(seq_buf);
        seq.mv_data = seq_buf;
    }
    if (rc == 0) {
        ASSERT(seq.mv_size == STORE_SEQ_KEY_LEN);
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

struct tail_arg {
    const char *uri;
    size_t uri_len;
    store_cert_fn fn;
    void *ctx;
};

static int visit_uri(struct store *st, MDB_txn *txn, const MDB_val *key, const MDB_val *val,
                     const struct cert_rec *r, void *arg)
{
    (void)st;
    (void)txn;
    const struct tail_arg *a = arg;
    if (r->uri_len != a->uri_len ||
        memcmp((const uint8_t *)val->mv_data + sizeof(*r), a->uri, r->uri_len) != 0) {
        return 0;
    }
    struct store_cert_meta m;
    const uint8_t *der = NULL;
    size_t der_len = 0;
    cert_decode(&m, &der, &der_len, key, val);
    return a->fn(a->ctx, &m, der, der_len);
}

static int foreach_uri_txn(struct store *st, MDB_txn *txn, MDB_cursor *cur, const char *uri,
                           store_cert_fn fn, void *ctx)
{
    struct store_index_state ix;
    int rc = store_index_get(st, txn, &ix);
    if (rc != 0) {
        return rc;
    }
    uint64_t upto = store_index_watermark(&ix, store_slice_uri(uri, strlen(uri)));
    uint8_t key_buf[STORE_USERIDX_KEY_MAX];
    MDB_val key = {.mv_size = store_useridx_key(key_buf, uri, strlen(uri)), .mv_data = key_buf};
    MDB_val seq = {0};
    /* Bounded by the number of this user's certificates in the snapshot. */
    rc = cur == NULL ? -ENOENT /* an older environment, read-only: no index */
                     : store_err(st, mdb_cursor_get(cur, &key, &seq, MDB_SET_KEY), "cursor_set");
    while (rc == 0) {
        MDB_val val = {0};
        ASSERT(seq.mv_size == STORE_SEQ_KEY_LEN);
        ASSERT(store_seq_decode(seq.mv_data) <= upto);
        rc = cert_get_seq(st, txn, &seq, &val);
        if (rc != 0) {
            return rc;
        }
        struct store_cert_meta m;
        const uint8_t *der = NULL;
        size_t der_len = 0;
        cert_decode(&m, &der, &der_len, &seq, &val);
        ASSERT(strcmp(m.uri, uri) == 0);
        rc = fn(ctx, &m, der, der_len);
        if (rc != 0) {
            return rc;
        }
        rc = store_err(st, mdb_cursor_get(cur, &key, &seq, MDB_NEXT_DUP), "cursor_next_dup");
    }
    if (rc != -ENOENT) {
        return rc;
    }
    /* The certificates after the watermark: found by scanning the tail. */
    struct tail_arg a = {.uri = uri, .uri_len = strlen(uri), .fn = fn, .ctx = ctx};
    return record_scan(st, txn, upto, UINT64_MAX, visit_uri, &a);
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
    MDB_cursor *cur = NULL;
    int rc = store_txn_begin(st, &txn, false);
    if (rc != 0) {
        return rc;
    }
    if (st->has_useridx) {
        rc = store_err(st, mdb_cursor_open(txn, st->byuser, &cur), "cursor_open");
    }
    if (rc == 0) {
        rc = foreach_uri_txn(st, txn, cur, uri, fn, ctx);
    }
    if (cur != NULL) {
        mdb_cursor_close(cur);
    }
    mdb_txn_abort(txn);
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
