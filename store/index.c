/* index.c: the bulk index. The serial index (serial -> seq) and the by-user index (hash + uri
 * -> seq) hold the certificates up to a watermark (meta "index", struct store_index_state); the
 * newer ones, the tail, are found by scanning the sequence-ordered certificate table, and a new
 * serial is checked against the tail's serials in an in-memory set. Once the tail is longer than
 * index_tail_max, the segment up to the last certificate is indexed slice by slice, the slices of
 * each key order that are due at each commit (store_index_step), from its keys read once into
 * memory (segment_load).
 *
 * Everything that knows this layout is here: the index state, the tail set, the segment, the
 * lookups by serial and by user, and the first indexing of an environment (store_index_init).
 * It calls only common.c. The caches (tail set, segment) belong to the handle and are used
 * under its commit_lock, inside a write transaction. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "base/base.h"
#include "store/internal.h"

#define USERIDX_KEY_MAX (4 + STORE_URI_MAX)

/* ---- keys and slices ----
 *
 * Slices are contiguous ranges of each index's key order, so that a slice step dirties only
 * the index pages of its range; both are uniform, whatever the users' names. */

/* slice_serial is the slice of the serial index `serial` belongs to. */
static unsigned slice_serial(const uint8_t serial[STORE_SERIAL_LEN])
{
    /* positive serials: the first 15 bits are a CSPRNG's (the top bit is clear); a slice is a
     * range of them, so that the slices of a version with fewer are unions of these */
    unsigned top = (serial[0] & 0x7fu) << 8 | serial[1];
    return top / (32768u / STORE_INDEX_SLICES);
}

/* slice_uri is the slice of the by-user index the `len` bytes of `uri` belong to. */
static unsigned slice_uri(const char *uri, size_t len)
{
    /* the by-user key starts with the hash (big-endian): its top bits are contiguous ranges */
    return (unsigned)(((uint64_t)base_fnv1a(uri, len) * STORE_INDEX_SLICES) >> 32);
}

/* useridx_key writes the by-user index key of `uri` (len bytes) and returns its length. */
static size_t useridx_key(uint8_t out[USERIDX_KEY_MAX], const char *uri, size_t len)
{
    ASSERT(len <= STORE_URI_MAX);
    uint32_t h = base_fnv1a(uri, len);
    for (size_t i = 0; i < 4; i++) {
        out[i] = (uint8_t)(h >> (8 * (3 - i)));
    }
    memcpy(out + 4, uri, len);
    return 4 + len;
}

/* watermark is the seq up to which the indexes hold the keys of `slice`. */
static uint64_t watermark(const struct store_index_state *ix, unsigned slice)
{
    return ix->target != 0 && slice < ix->progress ? ix->target : ix->upto;
}

/* ---- the index state (meta "index") ---- */

int store_index_get(struct store *st, MDB_txn *txn, struct store_index_state *out)
{
    memset(out, 0, sizeof(*out));
    if (!st->has_meta || !st->has_useridx) {
        return 0; /* read-only view of an environment from before the state: scan it all */
    }
    MDB_val key = store_val_str(STORE_META_INDEX);
    MDB_val val = {0};
    int rc = store_err(st, mdb_get(txn, st->meta, &key, &val), "get_meta");
    if (rc == -ENOENT && st->read_only) {
        return 0; /* never opened for writing since: scan it all */
    }
    if (rc != 0) {
        return rc;
    }
    ASSERT(val.mv_size == 3 * STORE_SEQ_KEY_LEN || val.mv_size == 4 * STORE_SEQ_KEY_LEN);
    const uint8_t *p = val.mv_data;
    out->upto = store_seq_decode(p);
    out->target = store_seq_decode(p + STORE_SEQ_KEY_LEN);
    out->progress = store_seq_decode(p + 2 * STORE_SEQ_KEY_LEN);
    uint64_t slices = val.mv_size == 4 * STORE_SEQ_KEY_LEN
                          ? store_seq_decode(p + 3 * STORE_SEQ_KEY_LEN)
                          : STORE_INDEX_SLICES_V1;
    /* Slices are contiguous ranges: the first k of s slices are the first k x S/s of S. */
    if (slices == 0 || slices > STORE_INDEX_SLICES || STORE_INDEX_SLICES % slices != 0) {
        log_err("store: index_state_unknown path=%s slices=%llu action=\"use the version that "
                "wrote this store\"",
                st->path, (unsigned long long)slices);
        return -EPROTO;
    }
    out->progress *= STORE_INDEX_SLICES / slices;
    ASSERT(out->target == 0 || out->target > out->upto);
    ASSERT(out->progress < STORE_INDEX_SLICES);
    ASSERT(out->target != 0 || out->progress == 0);
    return 0;
}

/* ---- the filter of the indexed serials ----
 *
 * A new serial is checked against the serial index by a B-tree walk that ends on a cold leaf
 * (the pages a slice rewrote are new pages): 22 % of a commit's time at 256 certificates. A Bloom
 * filter over every serial in the index answers "not there" for almost all of them in memory;
 * only a hit (a real clash, or about 1 in 200) walks the tree. It must never miss a serial of the
 * index: every serial this handle puts is added (those of a commit that then failed too: an
 * extra bit costs a walk, never a wrong answer), and it is made anew from the index when the
 * index state is not the one this handle last wrote (another process indexed, a commit failed)
 * or when it holds more serials than it was sized for.
 *
 * Made anew by a scan of the serial index, but never in one commit: a scan of 262,144 serials
 * took 34 ms of one commit (and grows with the index), and every enrollment waiting for that
 * commit waited as long (the p99 of an open-loop run that met it). The new filter is filled
 * STORE_FILTER_SCAN_STEP serials a commit, in key order, resumed after the last key read; the
 * serials indexed meanwhile are added to it as to the filter in use. Until it is complete the
 * old one answers (more than its size: a few more false hits), or, when there is none (a new
 * handle, or the old one stood for another index state), the tree does. */

#define FILTER_BITS_PER_SERIAL 16u /* with 3 probes: about 0.5 % false hits */

struct filter_bits {
    uint64_t bits_mask; /* bits - 1, bits a power of two */
    uint64_t num, cap;  /* serials added; made anew larger past cap */
    uint64_t *words;
};

struct serial_filter {
    struct store_index_state ix; /* the index state both stand for */
    bool ready;                  /* `cur` holds every serial of the index */
    struct filter_bits cur;
    bool building; /* `next` holds the serials up to `after` in key order, and those added */
    bool started;  /* its scan has read a key: `after` is set */
    uint8_t after[STORE_SERIAL_LEN];
    struct filter_bits next;
};

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 33; /* murmur3's finaliser: serials imported from elsewhere need not be random */
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    return x ^ (x >> 33);
}

static void filter_hashes(const uint8_t serial[STORE_SERIAL_LEN], uint64_t *h1, uint64_t *h2)
{
    uint64_t lo = 0;
    uint64_t hi = 0;
    memcpy(&hi, serial, 8);
    memcpy(&lo, serial + 8, 8);
    *h1 = mix64(lo ^ mix64(hi));
    *h2 = mix64(*h1 ^ 0x9e3779b97f4a7c15ull) | 1u;
}

static void bits_add(struct filter_bits *f, const uint8_t serial[STORE_SERIAL_LEN])
{
    uint64_t h1 = 0;
    uint64_t h2 = 0;
    filter_hashes(serial, &h1, &h2);
    for (uint64_t k = 0; k < 3; k++) {
        uint64_t bit = (h1 + k * h2) & f->bits_mask;
        f->words[bit / 64] |= 1ull << (bit % 64);
    }
    f->num++;
}

static bool filter_may_hold(const struct filter_bits *f, const uint8_t serial[STORE_SERIAL_LEN])
{
    uint64_t h1 = 0;
    uint64_t h2 = 0;
    filter_hashes(serial, &h1, &h2);
    for (uint64_t k = 0; k < 3; k++) {
        uint64_t bit = (h1 + k * h2) & f->bits_mask;
        if ((f->words[bit / 64] & (1ull << (bit % 64))) == 0) {
            return false;
        }
    }
    return true;
}

/* filter_add adds a serial this handle puts in the index to the filter in use and the one being
 * made. */
static void filter_add(struct serial_filter *f, const uint8_t serial[STORE_SERIAL_LEN])
{
    if (f->ready) {
        bits_add(&f->cur, serial);
    }
    if (f->building) {
        bits_add(&f->next, serial);
    }
}

/* table_alloc maps `bytes` of zeroed memory for a table read at random (the filter's words, the
 * tail set's slots), its pages present and, where the kernel gives them, 2 MiB pages. Touching a
 * new page costs a fault, and a fault costs 11-14 us on this VM against about 1 us a page when
 * populated at once (2026-12-05): the 2 MiB of a filter for 1,000,000 serials, touched at random
 * by its first serials, took 8 ms of one commit's CPU in faults alone. And a lookup at random in
 * megabytes of 4 KiB pages misses the TLB nearly every time. Returns NULL when out of memory. */
static void *table_alloc(size_t bytes)
{
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        return NULL;
    }
    (void)madvise(p, bytes, MADV_HUGEPAGE);       /* a hint: 4 KiB pages without it */
    (void)madvise(p, bytes, MADV_POPULATE_WRITE); /* a hint: faulted in when touched without it */
    return p;
}

static void table_free(void *p, size_t bytes)
{
    if (p != NULL) {
        (void)munmap(p, bytes);
    }
}

static void bits_free(struct filter_bits *b)
{
    table_free(b->words, (b->bits_mask + 1) / 8);
    b->words = NULL;
    b->bits_mask = 0;
}

static void filter_free(struct store *st)
{
    if (st->filter != NULL) {
        bits_free(&st->filter->cur);
        bits_free(&st->filter->next);
        free(st->filter);
        st->filter = NULL;
    }
}

/* filter_start begins a new filter for the serial index in `txn`, sized for twice its entries.
 * Returns 0 or an error (then none is being made). */
static int filter_start(struct store *st, MDB_txn *txn, struct serial_filter *f)
{
    MDB_stat ms;
    int rc = store_err(st, mdb_stat(txn, st->serials, &ms), "stat_serials");
    if (rc != 0) {
        return rc;
    }
    uint64_t want = (uint64_t)ms.ms_entries * 2 * FILTER_BITS_PER_SERIAL;
    uint64_t bits = st->filter_min_bits;
    while (bits < want) {
        bits *= 2;
    }
    struct filter_bits *n = &f->next;
    if (bits - 1 != n->bits_mask || n->words == NULL) {
        bits_free(n);
        n->words = table_alloc(bits / 8); /* zeroed */
        if (n->words == NULL) {
            return -ENOMEM;
        }
        n->bits_mask = bits - 1;
    } else {
        memset(n->words, 0, bits / 8); /* 2 MiB with 1,000,000 serials: ~0.2 ms */
    }
    n->num = 0;
    n->cap = bits / FILTER_BITS_PER_SERIAL;
    f->building = true;
    f->started = false;
    return 0;
}

/* filter_step adds the next filter_scan_step serials of the index in `txn` to the filter being
 * made, and makes it the one in use once the scan reaches the end. Returns 0 or an error (then
 * none is being made). */
static int filter_step(struct store *st, MDB_txn *txn, struct serial_filter *f)
{
    MDB_cursor *cur = NULL;
    int rc = store_err(st, mdb_cursor_open(txn, st->serials, &cur), "cursor_serials");
    if (rc != 0) {
        return rc;
    }
    MDB_val key = {.mv_size = STORE_SERIAL_LEN, .mv_data = f->after};
    MDB_val val = {0};
    int mrc = mdb_cursor_get(cur, &key, &val, f->started ? MDB_SET_RANGE : MDB_FIRST);
    if (mrc == 0 && f->started && memcmp(key.mv_data, f->after, STORE_SERIAL_LEN) == 0) {
        mrc = mdb_cursor_get(cur, &key, &val, MDB_NEXT); /* read by the step before */
    }
    for (uint32_t n = 0; mrc == 0 && n < st->filter_scan_step; n++) {
        ASSERT(key.mv_size == STORE_SERIAL_LEN);
        bits_add(&f->next, key.mv_data);
        memcpy(f->after, key.mv_data, STORE_SERIAL_LEN);
        f->started = true;
        mrc = mdb_cursor_get(cur, &key, &val, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    if (mrc == 0) {
        return 0; /* more to read at the next commit */
    }
    f->building = false;
    if (mrc != MDB_NOTFOUND) {
        return store_err(st, mrc, "scan_serials");
    }
    struct filter_bits old = f->cur; /* its words are reused by the next one of that size */
    f->cur = f->next;
    f->next = old;
    f->ready = true;
    return 0;
}

void store_filter_tune(struct store *st, uint64_t min_bits, uint32_t scan_step)
{
    ASSERT(st->filter == NULL && min_bits >= 64 && (min_bits & (min_bits - 1)) == 0);
    ASSERT(scan_step > 0);
    st->filter_min_bits = min_bits;
    st->filter_scan_step = scan_step;
}

/* filter_for returns the filter of the index in `txn` (state `ix`), or NULL when there is none
 * complete (then every serial is looked up in the tree). It starts a new filter when the one in
 * use stands for another state or is full, and takes a step of the one being made. */
static const struct filter_bits *filter_for(struct store *st, MDB_txn *txn,
                                            const struct store_index_state *ix)
{
    if (st->filter == NULL && (st->filter = calloc(1, sizeof(*st->filter))) == NULL) {
        return NULL;
    }
    struct serial_filter *f = st->filter;
    if (f->ix.upto != ix->upto || f->ix.target != ix->target || f->ix.progress != ix->progress) {
        f->ready = false; /* another process indexed, or a commit failed: neither stands */
        f->building = false;
        f->ix = *ix;
    }
    bool ok = true;
    if (!f->building && (!f->ready || f->cur.num > f->cur.cap)) {
        ok = filter_start(st, txn, f) == 0;
    }
    if (ok && f->building) {
        (void)filter_step(st, txn, f); /* a failure: started again at the next commit */
    }
    return f->ready ? &f->cur : NULL;
}

/* index_put records the index state (write txn). */
static int index_put(struct store *st, MDB_txn *txn, const struct store_index_state *in)
{
    if (st->filter != NULL) {
        st->filter->ix = *in; /* what it stands for once this commits; else rebuilt */
    }
    ASSERT(in->target == 0 || in->target > in->upto);
    ASSERT(in->progress < STORE_INDEX_SLICES);
    uint8_t buf[4 * STORE_SEQ_KEY_LEN];
    store_seq_encode(buf, in->upto);
    store_seq_encode(buf + STORE_SEQ_KEY_LEN, in->target);
    store_seq_encode(buf + 2 * STORE_SEQ_KEY_LEN, in->progress);
    store_seq_encode(buf + 3 * STORE_SEQ_KEY_LEN, STORE_INDEX_SLICES);
    MDB_val key = store_val_str(STORE_META_INDEX);
    MDB_val val = {.mv_size = sizeof(buf), .mv_data = buf};
    return store_err(st, mdb_put(txn, st->meta, &key, &val, 0), "put_meta");
}

/* ---- the certificate table, read in place ---- */

bool store_cert_rec_ok(const struct cert_rec *r, size_t total)
{
    static const uint8_t zero[sizeof(r->pad)] = {0};
    return r->magic == STORE_MAGIC_CERT && r->der_len >= 1 && r->der_len <= STORE_CERT_DER_MAX &&
           r->uri_len >= 1 && r->pool_len >= 1 && r->pool_len <= STORE_POOL_MAX &&
           r->device_id_len <= STORE_DEVICE_ID_MAX && memcmp(r->pad, zero, sizeof(zero)) == 0 &&
           total == sizeof(*r) + r->uri_len + r->pool_len + r->device_id_len + r->der_len;
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

int store_cert_rec_get(struct store *st, MDB_txn *txn, MDB_val *skey, MDB_val *val)
{
    int rc = store_err(st, mdb_get(txn, st->certs, skey, val), "get_cert");
    ASSERT(rc != -ENOENT); /* every index entry names a stored certificate */
    return rc;
}

/* rec_read reads the header of the stored certificate `seq_num` into *r and its whole value
 * into *val (borrowed from the map until the next write in `txn`), checked. Returns 0 or -EIO. */
static int rec_read(struct store *st, MDB_txn *txn, uint64_t seq_num, struct cert_rec *r,
                    MDB_val *val)
{
    uint8_t seq[STORE_SEQ_KEY_LEN];
    store_seq_encode(seq, seq_num);
    MDB_val skey = {.mv_size = sizeof(seq), .mv_data = seq};
    int rc = store_cert_rec_get(st, txn, &skey, val);
    if (rc != 0) {
        return rc;
    }
    ASSERT(val->mv_size >= sizeof(*r));
    memcpy(r, val->mv_data, sizeof(*r));
    ASSERT(store_cert_rec_ok(r, val->mv_size)); /* paired with the check before the put */
    return 0;
}

/* record_scan calls fn for the certificates in (upto, target], in seq order, reading their
 * headers in place (UINT64_MAX: to the end: the tail). 0 at the end, or fn's return. */
static int record_scan(struct store *st, MDB_txn *txn, uint64_t upto, uint64_t target,
                       store_record_fn fn, void *arg)
{
    MDB_cursor *cur = NULL;
    int rc = store_err(st, mdb_cursor_open(txn, st->certs, &cur), "cursor_open");
    if (rc != 0) {
        goto out;
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
        ASSERT(store_cert_rec_ok(&r, val.mv_size));
        rc = fn(st, txn, &key, &val, &r, arg);
        if (rc != 0) {
            goto out; /* fn's return, as it is */
        }
        rc = store_err(st, mdb_cursor_get(cur, &key, &val, MDB_NEXT), "cursor_next");
    }
    if (rc == -ENOENT) {
        rc = 0; /* the end of the table */
    }
out:
    if (cur != NULL) {
        mdb_cursor_close(cur);
    }
    return rc;
}

/* ---- writing index entries ---- */

/* index_entry puts both index entries of one certificate. */
static int index_entry(struct store *st, MDB_txn *txn, const uint8_t serial[STORE_SERIAL_LEN],
                       const char *uri, size_t uri_len, uint64_t seq_num)
{
    uint8_t seq[STORE_SEQ_KEY_LEN]; /* big-endian: DUPSORT keeps a user's oldest first */
    store_seq_encode(seq, seq_num);
    MDB_val skey = {.mv_size = sizeof(seq), .mv_data = seq};
    if (serial != NULL) {
        MDB_val sv = {.mv_size = STORE_SERIAL_LEN, .mv_data = (void *)(uintptr_t)serial};
        int rc =
            store_err(st, mdb_put(txn, st->serials, &sv, &skey, MDB_NOOVERWRITE), "put_serial");
        ASSERT(rc != -EEXIST); /* every serial of the tail was checked at its commit */
        if (rc != 0) {
            return rc;
        }
        if (st->filter != NULL) {
            filter_add(st->filter, serial);
        }
    }
    if (uri == NULL) {
        return 0;
    }
    uint8_t ukey_buf[USERIDX_KEY_MAX]; /* copied: the map is not read after a put */
    MDB_val ukey = {.mv_size = useridx_key(ukey_buf, uri, uri_len), .mv_data = ukey_buf};
    return store_err(st, mdb_put(txn, st->byuser, &ukey, &skey, 0), "put_useridx");
}

static int visit_index_all(struct store *st, MDB_txn *txn, const MDB_val *key, const MDB_val *val,
                           const struct cert_rec *r, void *arg)
{
    (void)arg;
    char uri[STORE_URI_MAX];
    memcpy(uri, (const uint8_t *)val->mv_data + sizeof(*r), r->uri_len);
    return index_entry(st, txn, r->serial, uri, r->uri_len, store_seq_decode(key->mv_data));
}

/* index_all indexes every certificate in (0, last] (store_index_init). */
static int index_all(struct store *st, MDB_txn *txn, uint64_t last)
{
    return last == 0 ? 0 : record_scan(st, txn, 0, last, visit_index_all, NULL);
}

/* store_index_init gives an environment without index state (new, or from before it: its by-user
 * index had another layout) indexes that are complete up to its last certificate: it drops the
 * old ones and indexes every certificate (bounded by their number; once). */
int store_index_init(struct store *st, MDB_txn *txn)
{
    MDB_val key = store_val_str(STORE_META_INDEX);
    MDB_val val = {0};
    int rc = store_err(st, mdb_get(txn, st->meta, &key, &val), "get_meta");
    if (rc != -ENOENT) {
        return rc;
    }
    MDB_dbi old = 0;
    rc = store_err(st, mdb_dbi_open(txn, "byuser", 0, &old), "dbi_open");
    if (rc == 0) {
        rc = store_err(st, mdb_drop(txn, old, 1), "drop_byuser");
        if (rc != 0) {
            return rc;
        }
    } else if (rc != -ENOENT) { /* -ENOENT: there is no old by-user index */
        return rc;
    }
    rc = store_err(st, mdb_drop(txn, st->serials, 0), "drop_serials");
    if (rc != 0) {
        return rc;
    }
    rc = store_err(st, mdb_drop(txn, st->byuser, 0), "drop_useridx");
    if (rc != 0) {
        return rc;
    }
    struct store_index_state ix = {0};
    rc = store_last_seq(st, txn, &ix.upto);
    if (rc != 0) {
        return rc;
    }
    rc = index_all(st, txn, ix.upto);
    if (rc != 0) {
        return rc;
    }
    if (ix.upto > 0) {
        log_info("store: indexes_rebuilt path=%s certificates=%llu", st->path,
                 (unsigned long long)ix.upto);
    }
    return index_put(st, txn, &ix);
}

/* ---- the tail's serials ----
 *
 * The serial index holds the certificates up to the watermark; a new serial must also differ
 * from every serial in the tail. The tail's serials are kept in open-addressing sets owned by
 * the handle (under commit_lock, used only inside a write transaction), built from the tail by
 * a scan when missing or stale (another process committed or indexed), and thrown away when a
 * commit fails. Nothing in them is authoritative: LMDB is.
 *
 * Two generations: while a segment (upto, target] is indexed, the old one holds its serials and
 * the current one those after it; a segment starts with the current generation (the whole tail
 * then) becoming the old one, and once it is indexed the old one is emptied. Both in O(1): a
 * slot belongs to its generation when it carries the generation's stamp, and emptying a
 * generation changes its stamp. One set rebuilt without the indexed segment re-hashed the rest
 * of the tail into a cleared 4.5 MiB table: 5-10 ms of CPU of one commit in 32,768 (2026-12-05).
 * Beside each set, its certificates' serials and URIs in seq order: the old generation is the
 * segment's keys (segment_from_tail), read from no record. */

struct tail_slot {
    uint8_t serial[STORE_SERIAL_LEN];
    uint32_t stamp; /* the slot is its generation's when this is the generation's stamp */
};

struct tail_entry {
    uint8_t serial[STORE_SERIAL_LEN];
    uint32_t uri_off; /* in the generation's `uris` */
    uint16_t uri_len;
};

struct tail_gen {
    uint32_t stamp; /* never 0: zeroed slots belong to no generation */
    size_t num;
    size_t cap; /* a power of two, at least twice num (gen_add grows it) */
    struct tail_slot *slots;
    /* The certificates added, in the order added (seq order); their URIs one after the other. */
    struct tail_entry *order;
    size_t order_num, order_cap;
    char *uris;
    size_t uris_len, uris_cap;
};

struct tail_set {
    bool valid;
    uint64_t base; /* the watermark it was built for */
    uint64_t cut;  /* gen[!cur] holds (base, cut] (the segment being indexed; cut == base: none) */
    uint64_t last; /* gen[cur] holds (cut, last] */
    unsigned cur;
    struct tail_gen gen[2];
};

static void tail_free(struct store *st)
{
    if (st->tail != NULL) {
        for (size_t i = 0; i < 2; i++) {
            table_free(st->tail->gen[i].slots, st->tail->gen[i].cap * sizeof(struct tail_slot));
            free(st->tail->gen[i].order);
            free(st->tail->gen[i].uris);
        }
        free(st->tail);
        st->tail = NULL;
    }
}

static size_t tail_hash(const uint8_t serial[STORE_SERIAL_LEN], size_t cap)
{
    /* All 16 bytes, and the product's top bits (Fibonacci hashing): serials imported from
     * elsewhere need not be random, and n in the low bytes (a sequential serial) took the
     * product's middle bits from n's lowest few alone: every such serial in a handful of slots,
     * each lookup a walk of the whole cluster. */
    ASSERT(cap >= 2 && (cap & (cap - 1)) == 0);
    uint64_t hi = 0;
    uint64_t lo = 0;
    memcpy(&hi, serial, sizeof(hi));
    memcpy(&lo, serial + sizeof(hi), sizeof(lo));
    uint64_t h = (lo ^ hi * 0xff51afd7ed558ccdull) * 0x9E3779B97F4A7C15ull;
    return (size_t)(h >> (64 - __builtin_ctzll((unsigned long long)cap)));
}

/* gen_find returns the slot of `serial` in `g`, or the free slot where it would go. */
static struct tail_slot *gen_find(struct tail_gen *g, const uint8_t serial[STORE_SERIAL_LEN])
{
    size_t i = tail_hash(serial, g->cap);
    /* Bounded: the set is at most half full, so a free slot comes within cap probes. */
    for (size_t n = 0; n < g->cap; n++) {
        struct tail_slot *sl = &g->slots[(i + n) & (g->cap - 1)];
        if (sl->stamp != g->stamp || memcmp(sl->serial, serial, STORE_SERIAL_LEN) == 0) {
            return sl;
        }
    }
    ASSERT(false && "tail set full");
    return NULL;
}

static bool gen_has(struct tail_gen *g, const uint8_t serial[STORE_SERIAL_LEN])
{
    return g->num > 0 && gen_find(g, serial)->stamp == g->stamp;
}

/* gen_clear empties `g` in O(1), keeping its memory. */
static void gen_clear(struct tail_gen *g)
{
    g->num = 0;
    g->order_num = 0;
    g->uris_len = 0;
    if (++g->stamp == 0) { /* after 2^32 clears: every slot must be freed once */
        memset(g->slots, 0, g->cap * sizeof(g->slots[0]));
        g->stamp = 1;
    }
}

/* gen_grow doubles the set's capacity, keeping it at most half full whatever the tail (an
 * environment written with a larger index_tail_max). Returns 0 or -ENOMEM. */
static int gen_grow(struct tail_gen *g)
{
    size_t old_cap = g->cap;
    struct tail_slot *old = g->slots;
    struct tail_slot *slots = table_alloc(2 * old_cap * sizeof(*slots));
    if (slots == NULL) {
        return -ENOMEM;
    }
    g->slots = slots;
    g->cap = 2 * old_cap;
    for (size_t i = 0; i < old_cap; i++) {
        if (old[i].stamp == g->stamp) {
            *gen_find(g, old[i].serial) = old[i];
        }
    }
    table_free(old, old_cap * sizeof(*old));
    return 0;
}

/* uris_reserve makes room for `more` bytes after `len` in the buffer *buf of *cap bytes (first:
 * its first capacity), doubling. Returns 0 or -ENOMEM (the buffer as it was). */
static int uris_reserve(char **buf, size_t *cap, size_t len, size_t more, size_t first)
{
    if (*cap - len >= more) {
        return 0;
    }
    size_t c = *cap > 0 ? 2 * *cap : first;
    while (c - len < more) {
        c *= 2;
    }
    ASSERT(c <= UINT32_MAX); /* offsets are u32: bounded by a segment and its tail */
    char *p = realloc(*buf, c);
    if (p == NULL) {
        return -ENOMEM;
    }
    *buf = p;
    *cap = c;
    return 0;
}

/* gen_add adds `serial` and, when new, the certificate (its serial and `uri`) to the order of
 * `g`. Returns 1 (added), 0 (there already) or -ENOMEM (the set is then to be rebuilt: the
 * caller's commit fails). */
static int gen_add(struct tail_gen *g, const uint8_t serial[STORE_SERIAL_LEN], const char *uri,
                   size_t uri_len)
{
    ASSERT(uri_len <= STORE_URI_MAX);
    struct tail_slot *sl = gen_find(g, serial);
    if (sl->stamp == g->stamp) {
        return 0;
    }
    if (g->num + 1 > g->cap / 2) {
        int rc = gen_grow(g);
        if (rc != 0) {
            return rc;
        }
        sl = gen_find(g, serial);
    }
    /* Both bounded like the set: a segment and the tail after it. */
    if (g->order_num == g->order_cap) {
        size_t cap = g->order_cap > 0 ? 2 * g->order_cap : 4096;
        void *p = realloc(g->order, cap * sizeof(g->order[0]));
        if (p == NULL) {
            return -ENOMEM;
        }
        g->order = p;
        g->order_cap = cap;
    }
    int rc = uris_reserve(&g->uris, &g->uris_cap, g->uris_len, uri_len, 4096 * 32);
    if (rc != 0) {
        return rc;
    }
    memcpy(sl->serial, serial, STORE_SERIAL_LEN);
    sl->stamp = g->stamp;
    g->num++;
    struct tail_entry *e = &g->order[g->order_num++];
    memcpy(e->serial, serial, STORE_SERIAL_LEN);
    e->uri_off = (uint32_t)g->uris_len;
    e->uri_len = (uint16_t)uri_len;
    memcpy(g->uris + g->uris_len, uri, uri_len);
    g->uris_len += uri_len;
    return 1;
}

static struct tail_gen *tail_old(struct tail_set *t)
{
    return &t->gen[1 - t->cur];
}

/* tail_add adds `serial` (certificate `uri`) to the current generation unless the tail holds it.
 * Returns 1 (added), 0 (there already) or -ENOMEM. */
static int tail_add(struct tail_set *t, const uint8_t serial[STORE_SERIAL_LEN], const char *uri,
                    size_t uri_len)
{
    if (gen_has(tail_old(t), serial)) {
        return 0;
    }
    return gen_add(&t->gen[t->cur], serial, uri, uri_len);
}

/* tail_reset empties both generations for the watermark `base`, the segment (base, cut]. */
static void tail_reset(struct tail_set *t, uint64_t base, uint64_t cut)
{
    gen_clear(&t->gen[0]);
    gen_clear(&t->gen[1]);
    t->base = base;
    t->cut = cut;
    t->last = base;
    t->valid = true;
}

/* tail_freeze starts the segment (base, last]: the current generation, the whole tail, becomes
 * the old one; the next certificates go to the other, empty since the last segment ended. */
static void tail_freeze(struct tail_set *t)
{
    ASSERT(t->cut == t->base); /* no segment */
    t->cur = 1 - t->cur;
    gen_clear(&t->gen[t->cur]);
    t->cut = t->last;
}

/* tail_drop ends the segment: the watermark moves to its end, its serials are dropped. */
static void tail_drop(struct tail_set *t)
{
    gen_clear(tail_old(t));
    t->base = t->cut;
}

/* tail_whole says that each generation holds one entry per certificate of its seqs (the tail
 * held no serial twice): the orders are the tail's certificates. */
static bool tail_whole(struct tail_set *t)
{
    return tail_old(t)->order_num == t->cut - t->base &&
           t->gen[t->cur].order_num == t->last - t->cut;
}

static int visit_tail_serial(struct store *st, MDB_txn *txn, const MDB_val *key, const MDB_val *val,
                             const struct cert_rec *r, void *arg)
{
    (void)st;
    (void)txn;
    struct tail_set *t = arg;
    uint64_t seq = store_seq_decode(key->mv_data);
    const char *uri = (const char *)val->mv_data + sizeof(*r);
    int rc = seq <= t->cut ? gen_add(tail_old(t), r->serial, uri, r->uri_len)
                           : tail_add(t, r->serial, uri, r->uri_len);
    t->last = seq;
    return rc < 0 ? rc : 0;
}

/* tail_gen_init gives a generation its first table. Returns 0 or -ENOMEM. */
static int tail_gen_init(struct tail_gen *g, size_t cap)
{
    g->slots = table_alloc(cap * sizeof(g->slots[0]));
    if (g->slots == NULL) {
        return -ENOMEM;
    }
    g->cap = cap;
    g->stamp = 1;
    return 0;
}

/* tail_sync brings the set up to date with `txn`: the index state `ix`, the tail after ix->upto
 * up to `last`. */
static int tail_sync(struct store *st, MDB_txn *txn, const struct store_index_state *ix,
                     uint64_t last)
{
    if (st->tail == NULL) {
        /* Sized at once for the longest generation, at most half full: a segment, or the tail
         * after it while the segment's slices are paced (store_index_step, which does every
         * slice that is due): index_tail_max and a batch, and a batch (gen_add still grows it
         * past that: an environment written with a longer tail). Growing it from small
         * re-hashed it five times in the first 65,536 certificates, the last two 37 and 55 ms
         * of one commit on this VM. */
        size_t longest = (size_t)st->index_tail_max + STORE_BATCH_MAX;
        size_t cap = 4096;
        while (cap < 2 * (longest + STORE_BATCH_MAX)) {
            cap *= 2;
        }
        struct tail_set *t = calloc(1, sizeof(*t));
        if (t == NULL) {
            return -ENOMEM;
        }
        st->tail = t;
        if (tail_gen_init(&t->gen[0], cap) != 0 || tail_gen_init(&t->gen[1], cap) != 0) {
            tail_free(st);
            return -ENOMEM;
        }
    }
    struct tail_set *t = st->tail;
    uint64_t cut = ix->target != 0 ? ix->target : ix->upto;
    if (!t->valid || t->base != ix->upto || t->cut != cut || t->last > last || t->last < cut) {
        tail_reset(t, ix->upto, cut); /* first use, a failed commit, or another process indexed */
    }
    if (t->last == last) {
        return 0;
    }
    /* Certificates committed by another process since (or all of them): read them in. */
    int rc = record_scan(st, txn, t->last, UINT64_MAX, visit_tail_serial, t);
    ASSERT(rc != 0 || t->last == last);
    return rc;
}

/* store_index_check_serials marks (it->rc = -EEXIST) every item whose serial is taken: by the
 * serial index, by the tail, or by an earlier item of the batch. Returns 0, -EEXIST or another
 * error. It adds the batch's serials to the tail set; the caller discards the caches
 * (store_index_discard) if the commit fails. */
int store_index_check_serials(struct store *st, MDB_txn *txn, struct store_batch *b,
                              const struct store_index_state *ix, uint64_t last)
{
    int rc = tail_sync(st, txn, ix, last);
    if (rc != 0) {
        return rc;
    }
    const struct filter_bits *f = filter_for(st, txn, ix);
    bool clash = false;
    for (size_t i = 0; i < b->num_items; i++) {
        struct store_batch_item *it = &b->items[i];
        MDB_val key = {.mv_size = STORE_SERIAL_LEN, .mv_data = it->meta.serial};
        MDB_val seq = {0};
        rc = f != NULL && !filter_may_hold(f, it->meta.serial)
                 ? -ENOENT /* not in the index: the filter misses none of its serials */
                 : store_err(st, mdb_get(txn, st->serials, &key, &seq), "get_serial");
        bool taken = rc == 0; /* in the serial index */
        if (rc == -ENOENT) {
            int added = tail_add(st->tail, it->meta.serial, it->meta.uri, strlen(it->meta.uri));
            if (added < 0) {
                return added;
            }
            taken = added == 0; /* in the tail, or an earlier item of the batch */
        } else if (rc != 0) {
            return rc;
        }
        if (taken) {
            it->rc = -EEXIST;
            clash = true; /* keep going: mark every clashing item */
        }
    }
    return clash ? -EEXIST : 0;
}

/* ---- the segment being indexed ----
 *
 * Each of the STORE_INDEX_SLICES steps needs the keys of its slice among the segment's
 * certificates. Reading the whole segment at every step would walk tens of megabytes of records
 * STORE_INDEX_SLICES times; instead its seqs, serials, URIs and slices are read once into memory
 * (owned by the handle, under commit_lock, rebuilt when the segment in `txn` is another one or a
 * commit failed), sorted by slice in both key orders (a stable counting sort: seq order within a
 * slice), and a step touches only its slice's entries and reads no record. */

struct segment_entry {
    uint64_t seq;
    uint8_t serial[STORE_SERIAL_LEN];
    uint16_t serial_slice; /* 0..STORE_INDEX_SLICES-1 */
    uint16_t uri_slice;
    uint16_t uri_len;
    uint32_t uri_off; /* the URI in the segment's `uris` */
};

struct segment {
    bool valid;
    uint64_t upto, target; /* the segment (upto, target] it holds */
    size_t num, cap;       /* entries, and the room of e, by_serial and by_uri */
    struct segment_entry *e;
    /* Indexes into e sorted by serial_slice and by uri_slice; slice k's are
     * [start[k], start[k + 1]). */
    uint32_t *by_serial, *by_uri;
    uint32_t serial_start[STORE_INDEX_SLICES + 1];
    uint32_t uri_start[STORE_INDEX_SLICES + 1];
    /* The entries' URIs, read with their keys: a by-user slice reads no record again (each
     * such read was a B-tree walk over cold pages: 13 % of a commit's time at 256 per commit). */
    char *uris;
    size_t uris_len, uris_cap;
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

/* entry_set fills a segment entry: the certificate `seq`, its serial and URI (at uri_off). */
static void entry_set(struct segment_entry *x, uint64_t seq, const uint8_t serial[STORE_SERIAL_LEN],
                      const char *uri, size_t uri_len, size_t uri_off)
{
    x->seq = seq;
    memcpy(x->serial, serial, sizeof(x->serial));
    x->serial_slice = (uint16_t)slice_serial(serial);
    x->uri_slice = (uint16_t)slice_uri(uri, uri_len);
    x->uri_len = (uint16_t)uri_len;
    x->uri_off = (uint32_t)uri_off;
}

static int visit_segment_add(struct store *st, MDB_txn *txn, const MDB_val *key, const MDB_val *val,
                             const struct cert_rec *r, void *arg)
{
    (void)st;
    (void)txn;
    struct segment *g = arg;
    ASSERT(g->num < g->target - g->upto); /* seqs are dense: certificates are never deleted */
    ASSERT(r->uri_len <= STORE_URI_MAX);
    const char *uri = (const char *)val->mv_data + sizeof(*r);
    /* About 32 bytes a certificate; at most STORE_URI_MAX each: bounded by the segment. */
    int rc = uris_reserve(&g->uris, &g->uris_cap, g->uris_len, r->uri_len,
                          (size_t)(g->target - g->upto) * 32);
    if (rc != 0) {
        return rc;
    }
    entry_set(&g->e[g->num++], store_seq_decode(key->mv_data), r->serial, uri, r->uri_len,
              g->uris_len);
    memcpy(g->uris + g->uris_len, uri, r->uri_len);
    g->uris_len += r->uri_len;
    return 0;
}

static void segment_free(struct segment *g)
{
    free(g->e);
    free(g->by_serial);
    free(g->by_uri);
    free(g->uris);
    free(g);
}

/* segment_reserve makes room for `n` entries, keeping the buffers of the segments before: made
 * anew for each segment they were ~1.5 MiB of new pages, ~400 faults of 11-14 us each on this
 * VM, 5-7 ms of the commit that started a segment. Returns 0 or -ENOMEM. */
static int segment_reserve(struct segment *g, size_t n)
{
    if (n <= g->cap) {
        return 0;
    }
    void *p = realloc(g->e, n * sizeof(g->e[0]));
    if (p == NULL) {
        return -ENOMEM;
    }
    g->e = p;
    p = realloc(g->by_serial, n * sizeof(g->by_serial[0]));
    if (p == NULL) {
        return -ENOMEM;
    }
    g->by_serial = p;
    p = realloc(g->by_uri, n * sizeof(g->by_uri[0]));
    if (p == NULL) {
        return -ENOMEM;
    }
    g->by_uri = p;
    g->cap = n;
    return 0;
}

/* segment_from_tail fills g->e and g->uris for the segment (g->upto, g->target] from the tail
 * set's old generation, which holds it when this handle committed (or scanned) every certificate
 * of it since the watermark: no record is read. Returns false when it does not (g untouched but
 * for its URIs' buffer), -ENOMEM as false. */
static bool segment_from_tail(struct tail_set *t, struct segment *g)
{
    if (t == NULL || !t->valid || t->base != g->upto || t->cut != g->target || !tail_whole(t)) {
        return false;
    }
    const struct tail_gen *old = tail_old(t);
    size_t n = (size_t)(g->target - g->upto);
    ASSERT(old->order_num == n);
    if (uris_reserve(&g->uris, &g->uris_cap, 0, old->uris_len, old->uris_len) != 0) {
        return false;
    }
    memcpy(g->uris, old->uris, old->uris_len);
    g->uris_len = old->uris_len;
    for (size_t i = 0; i < n; i++) {
        const struct tail_entry *e = &old->order[i];
        entry_set(&g->e[i], g->upto + 1 + i, e->serial, old->uris + e->uri_off, e->uri_len,
                  e->uri_off);
    }
    g->num = n;
    return true;
}

static int segment_load(struct store *st, MDB_txn *txn, struct segment *g, uint64_t upto,
                        uint64_t target)
{
    g->valid = false;
    g->num = 0;
    g->upto = upto;
    g->target = target;
    ASSERT(target - upto <= UINT32_MAX); /* a segment is about index_tail_max certificates */
    int rc = segment_reserve(g, (size_t)(target - upto)); /* every entry is written before use */
    if (rc != 0) {
        return rc;
    }
    if (!segment_from_tail(st->tail, g)) {
        g->uris_len = 0;
        rc = record_scan(st, txn, upto, target, visit_segment_add, g);
        if (rc != 0) {
            return rc; /* g stays invalid */
        }
    }
    slice_sort(g, false, g->by_serial, g->serial_start);
    slice_sort(g, true, g->by_uri, g->uri_start);
    g->valid = true;
    return 0;
}

/* segment_slice puts the index entries of slice `slice` of the segment of `ix`. */
static int segment_slice(struct store *st, MDB_txn *txn, const struct store_index_state *ix,
                         unsigned slice)
{
    ASSERT(slice < STORE_INDEX_SLICES);
    if (st->segment == NULL && (st->segment = calloc(1, sizeof(*st->segment))) == NULL) {
        return -ENOMEM;
    }
    struct segment *g = st->segment;
    if (!g->valid || g->upto != ix->upto || g->target != ix->target) {
        int rc = segment_load(st, txn, g, ix->upto, ix->target);
        if (rc != 0) {
            return rc;
        }
    }
    for (uint32_t k = g->serial_start[slice]; k < g->serial_start[slice + 1]; k++) {
        const struct segment_entry *x = &g->e[g->by_serial[k]];
        int rc = index_entry(st, txn, x->serial, NULL, 0, x->seq);
        if (rc != 0) {
            return rc;
        }
    }
    for (uint32_t k = g->uri_start[slice]; k < g->uri_start[slice + 1]; k++) {
        const struct segment_entry *x = &g->e[g->by_uri[k]];
        int rc = index_entry(st, txn, NULL, g->uris + x->uri_off, x->uri_len, x->seq);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

/* slice_due: slice ix->progress of the segment being indexed is due once
 * progress x index_tail_max / STORE_INDEX_SLICES certificates followed the segment (up to
 * `last`): in exact proportion, also for a tail shorter than the slices (several a certificate). */
static bool slice_due(const struct store *st, const struct store_index_state *ix, uint64_t last)
{
    ASSERT(ix->target != 0 && last >= ix->target);
    return (last - ix->target) * STORE_INDEX_SLICES >= ix->progress * st->index_tail_max;
}

/* store_index_step advances the bulk indexing by the slices that are due. Once the tail after the
 * watermark is longer than index_tail_max, the segment up to the last certificate is indexed
 * slice by slice: every slice dirties about 1/STORE_INDEX_SLICES of the index pages the segment
 * needs (each page once for all its new entries), instead of two random index pages per
 * certificate, and no commit carries the whole segment. The slices are paced by the
 * certificates that follow: slice k waits until k x index_tail_max / STORE_INDEX_SLICES have
 * been stored after the segment, so the segment is indexed while the next tail grows, and a
 * commit does every slice that is due: a few certificates a commit make a small slice now and
 * then, a full batch several. Done in 16 consecutive commits, the slices made ~100 ms of slow
 * commits every 1.6 s at 5,000 enrollments/s, and 20-30 % of the enrollments of those moments
 * took over 10 ms (2026-12-01). With 880,000 certificates a slice of 16 still took 5-10 ms (its
 * pages grow with the index), and 128 slices of the default tail (256 certificates, 512
 * entries) still made 4 ms commits among commits of 0.2 ms at 8,500 enrollments/s, 1.4 % of
 * the commits and two thirds of those over 1.5 ms (2026-12-06). 512 slices make each 128
 * entries; 1024 (64) cost more page writes from an empty store (each slice also rewrites the
 * branch pages above its leaves) for no gain the benchmarks could tell. And one slice a commit
 * kept the tail growing under full batches (65,536 certificates at 512) where taking every due
 * slice keeps it near index_tail_max. `ix` is the state in this transaction, `last` its highest
 * seq. */
int store_index_step(struct store *st, MDB_txn *txn, struct store_index_state ix, uint64_t last)
{
    ASSERT(st->tail != NULL); /* store_index_check_serials built it in this transaction */
    st->tail->last = last;    /* the batch's serials are in it (store_index_check_serials) */
    if (ix.target == 0) {
        if (last <= ix.upto || last - ix.upto <= st->index_tail_max) {
            return 0;
        }
        ix.target = last;
        ix.progress = 0;
        tail_freeze(st->tail); /* the segment's serials: the old generation */
    } else if (!slice_due(st, &ix, last)) {
        return 0;
    }
    /* Bounded: at most the STORE_INDEX_SLICES - progress slices left of the segment. */
    do {
        int rc = segment_slice(st, txn, &ix, (unsigned)ix.progress);
        if (rc != 0) {
            return rc;
        }
        ix.progress++;
        if (ix.progress == STORE_INDEX_SLICES) {
            ix.upto = ix.target;
            ix.target = 0;
            ix.progress = 0;
            st->segment->valid = false;
            tail_drop(st->tail); /* indexed: the serial index holds them now */
            break;
        }
    } while (slice_due(st, &ix, last));
    return index_put(st, txn, &ix);
}

void store_index_discard(struct store *st)
{
    if (st->tail != NULL) {
        st->tail->valid = false; /* it may hold serials that were not stored */
    }
    if (st->segment != NULL) {
        st->segment->valid = false;
    }
}

static void recent_free(struct store *st);

void store_index_free(struct store *st)
{
    tail_free(st);
    filter_free(st);
    recent_free(st);
    if (st->segment != NULL) {
        segment_free(st->segment);
        st->segment = NULL;
    }
}

/* ---- lookups ---- */

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

int store_index_find_serial(struct store *st, MDB_txn *txn, uint8_t seq_out[STORE_SEQ_KEY_LEN],
                            const uint8_t serial[STORE_SERIAL_LEN])
{
    ASSERT(seq_out != NULL);
    ASSERT(serial != NULL);
    MDB_val skey = {.mv_size = STORE_SERIAL_LEN, .mv_data = (void *)(uintptr_t)serial};
    MDB_val seq = {0};
    int rc = store_err(st, mdb_get(txn, st->serials, &skey, &seq), "get_serial");
    if (rc == 0) {
        ASSERT(seq.mv_size == STORE_SEQ_KEY_LEN);
        memcpy(seq_out, seq.mv_data, STORE_SEQ_KEY_LEN);
        return 0;
    }
    if (rc != -ENOENT) {
        return rc;
    }
    /* Not indexed yet: in the tail after the watermark of its slice, or nowhere. */
    struct store_index_state ix;
    rc = store_index_get(st, txn, &ix);
    if (rc != 0) {
        return rc;
    }
    struct find_arg a = {.serial = serial, .seq_out = seq_out};
    rc = record_scan(st, txn, watermark(&ix, slice_serial(serial)), UINT64_MAX, visit_find, &a);
    if (rc == 1) {
        return 0;
    }
    return rc == 0 ? -ENOENT : rc;
}

struct uri_arg {
    const char *uri;
    size_t uri_len;
    store_record_fn fn;
    void *arg;
};

/* visit_uri passes the tail's certificates of a->uri on to a->fn. */
static int visit_uri(struct store *st, MDB_txn *txn, const MDB_val *key, const MDB_val *val,
                     const struct cert_rec *r, void *arg)
{
    const struct uri_arg *a = arg;
    if (r->uri_len != a->uri_len ||
        memcmp((const uint8_t *)val->mv_data + sizeof(*r), a->uri, r->uri_len) != 0) {
        return 0;
    }
    return a->fn(st, txn, key, val, r, a->arg);
}

/* foreach_indexed calls a->fn for the certificates of a->uri in the by-user index (all of them
 * up to `upto`), oldest first. */
static int foreach_indexed(struct store *st, MDB_txn *txn, MDB_cursor *cur, uint64_t upto,
                           const struct uri_arg *a)
{
    uint8_t key_buf[USERIDX_KEY_MAX];
    MDB_val key = {.mv_size = useridx_key(key_buf, a->uri, a->uri_len), .mv_data = key_buf};
    MDB_val seq = {0};
    int rc = store_err(st, mdb_cursor_get(cur, &key, &seq, MDB_SET_KEY), "cursor_set");
    /* Bounded by the number of this user's certificates in the snapshot. */
    while (rc == 0) {
        ASSERT(seq.mv_size == STORE_SEQ_KEY_LEN);
        ASSERT(store_seq_decode(seq.mv_data) <= upto);
        MDB_val val = {0};
        rc = store_cert_rec_get(st, txn, &seq, &val);
        if (rc != 0) {
            return rc;
        }
        struct cert_rec r;
        ASSERT(val.mv_size >= sizeof(r));
        memcpy(&r, val.mv_data, sizeof(r));
        ASSERT(store_cert_rec_ok(&r, val.mv_size));
        ASSERT(r.uri_len == a->uri_len);
        ASSERT(memcmp((const uint8_t *)val.mv_data + sizeof(r), a->uri, a->uri_len) == 0);
        rc = a->fn(st, txn, &seq, &val, &r, a->arg);
        if (rc != 0) {
            return rc;
        }
        rc = store_err(st, mdb_cursor_get(cur, &key, &seq, MDB_NEXT_DUP), "cursor_next_dup");
    }
    return rc == -ENOENT ? 0 : rc;
}

int store_index_foreach_uri(struct store *st, MDB_txn *txn, const char *uri, store_record_fn fn,
                            void *arg)
{
    ASSERT(uri != NULL);
    ASSERT(fn != NULL);
    MDB_cursor *cur = NULL;
    struct uri_arg a = {.uri = uri, .uri_len = strlen(uri), .fn = fn, .arg = arg};
    ASSERT(a.uri_len <= STORE_URI_MAX);
    struct store_index_state ix;
    int rc = store_index_get(st, txn, &ix);
    if (rc != 0) {
        goto out;
    }
    uint64_t upto = watermark(&ix, slice_uri(uri, a.uri_len));
    if (st->has_useridx) { /* else an older environment, read-only: no index, upto is 0 */
        rc = store_err(st, mdb_cursor_open(txn, st->byuser, &cur), "cursor_open");
        if (rc != 0) {
            goto out;
        }
        rc = foreach_indexed(st, txn, cur, upto, &a);
        if (rc != 0) {
            goto out;
        }
    }
    /* The certificates after the watermark: found by scanning the tail. */
    rc = record_scan(st, txn, upto, UINT64_MAX, visit_uri, &a);
out:
    if (cur != NULL) {
        mdb_cursor_close(cur);
    }
    return rc;
}

/* ---- the tail by user: recent certificates of one user ----
 *
 * A user's newest certificates are in the tail (after the watermark of the user's slice), which
 * only a scan of every user's records there would find: up to twice index_tail_max of them, far
 * too many to read for each enrollment. So the handle keeps, for each certificate of the tail
 * in seq order, the hash of its URI and its issue time, with a chain through the entries of
 * each hash bucket, newest first. It is built from the tail once, then reads in only what was
 * committed since (by this process or another) whenever it is asked; when the watermark moves
 * (once per index_tail_max certificates) it drops the indexed entries and relinks the rest in
 * memory (a rebuild read the whole tail back: a 40-80 ms stall of the writer on this VM): O(1)
 * records read per certificate.
 * Owned by the handle under recent_lock; a hint, never authoritative: every hit is checked
 * against its record. */

struct recent_entry {
    int64_t issued_at_s;
    uint32_t hash; /* base_fnv1a of the certificate's URI */
    uint32_t prev; /* index + 1 of the previous entry in the same bucket; 0: none */
};

struct recent {
    bool valid;
    uint64_t base; /* the watermark (ix.upto) it was built for: entry i is seq base + 1 + i */
    size_t num;
    size_t cap;             /* entries and buckets: a power of two, at least num */
    struct recent_entry *e; /* cap entries */
    uint32_t *head;         /* cap buckets: index + 1 of the newest entry; 0: none */
};

static void recent_free(struct store *st)
{
    if (st->recent != NULL) {
        free(st->recent->e);
        free(st->recent->head);
        free(st->recent);
        st->recent = NULL;
    }
}

/* recent_link puts entry i at the head of its bucket's chain. */
static void recent_link(struct recent *r, size_t i)
{
    uint32_t *h = &r->head[r->e[i].hash & (r->cap - 1)];
    r->e[i].prev = *h;
    *h = (uint32_t)(i + 1);
}

/* recent_relink rebuilds every bucket's chain from the entries. */
static void recent_relink(struct recent *r)
{
    memset(r->head, 0, r->cap * sizeof(r->head[0]));
    for (size_t i = 0; i < r->num; i++) { /* oldest first: each chain ends newest first */
        recent_link(r, i);
    }
}

/* recent_grow doubles the capacity and relinks every entry. Returns 0 or -ENOMEM. */
static int recent_grow(struct recent *r)
{
    ASSERT(r->cap <= UINT32_MAX / 2);
    size_t cap = 2 * r->cap;
    struct recent_entry *e = realloc(r->e, cap * sizeof(*e));
    if (e == NULL) {
        return -ENOMEM;
    }
    r->e = e;
    uint32_t *head = malloc(cap * sizeof(*head)); /* cleared by recent_relink */
    if (head == NULL) {
        return -ENOMEM;
    }
    free(r->head);
    r->head = head;
    r->cap = cap;
    recent_relink(r);
    return 0;
}

static int visit_recent_add(struct store *st, MDB_txn *txn, const MDB_val *key, const MDB_val *val,
                            const struct cert_rec *r, void *arg)
{
    (void)st;
    (void)txn;
    struct recent *rc = arg;
    /* Seqs are dense (certificates are never deleted): entry num is seq base + num + 1. */
    ASSERT(store_seq_decode(key->mv_data) == rc->base + rc->num + 1);
    if (rc->num == rc->cap) {
        int err = recent_grow(rc);
        if (err != 0) {
            return err;
        }
    }
    struct recent_entry *x = &rc->e[rc->num];
    x->issued_at_s = r->issued_at_s;
    x->hash = base_fnv1a((const char *)val->mv_data + sizeof(*r), r->uri_len);
    recent_link(rc, rc->num);
    rc->num++;
    return 0;
}

/* recent_sync brings the handle's tail by user up to `txn`'s snapshot: the certificates after
 * ix.upto up to `last`. Returns 0, -ENOMEM (the cache is dropped) or an error of the scan. */
static int recent_sync(struct store *st, MDB_txn *txn, uint64_t upto, uint64_t last)
{
    if (st->recent == NULL) {
        struct recent *r = calloc(1, sizeof(*r));
        size_t cap = 4096; /* grows with the tail (recent_grow) */
        if (r == NULL || (r->e = calloc(cap, sizeof(r->e[0]))) == NULL ||
            (r->head = calloc(cap, sizeof(r->head[0]))) == NULL) {
            if (r != NULL) {
                free(r->e);
            }
            free(r);
            return -ENOMEM;
        }
        r->cap = cap;
        st->recent = r;
    }
    struct recent *r = st->recent;
    if (r->valid && r->base < upto && upto <= r->base + r->num && r->base + r->num <= last) {
        /* the watermark moved past a segment: drop its entries in memory, relink the rest */
        size_t drop = (size_t)(upto - r->base);
        memmove(r->e, r->e + drop, (r->num - drop) * sizeof(r->e[0]));
        r->num -= drop;
        r->base = upto;
        recent_relink(r);
    }
    if (!r->valid || r->base != upto || r->base + r->num > last) {
        /* first use, or the watermark moved (the rest is in the indexes now): rebuild */
        memset(r->head, 0, r->cap * sizeof(r->head[0]));
        r->num = 0;
        r->base = upto;
        r->valid = true;
    }
    /* Bounded by the tail: read only what was committed since the last call. */
    int rc = record_scan(st, txn, r->base + r->num, UINT64_MAX, visit_recent_add, r);
    if (rc != 0) {
        r->valid = false;
        return rc;
    }
    ASSERT(r->base + r->num == (last > upto ? last : upto));
    return 0;
}

struct recent_count {
    const char *uri;
    size_t uri_len;
    int64_t since_s;
    uint32_t max;
    uint32_t num;
    int64_t last_s;
    bool done; /* max reached, or a certificate of the user issued before since_s */
};

/* recent_take counts the record `val` (of seq `seq`) when it is the user's and recent enough. */
static int recent_take(struct store *st, MDB_txn *txn, uint64_t seq_num, struct recent_count *c,
                       bool indexed)
{
    MDB_val val = {0};
    struct cert_rec r;
    int rc = rec_read(st, txn, seq_num, &r, &val);
    if (rc != 0) {
        return rc;
    }
    bool same = r.uri_len == c->uri_len &&
                memcmp((const uint8_t *)val.mv_data + sizeof(r), c->uri, c->uri_len) == 0;
    ASSERT(same || !indexed); /* the by-user index names only the user's certificates */
    if (!same) {
        return 0; /* another URI with the same hash */
    }
    if (r.issued_at_s < c->since_s) {
        c->done = true;
        return 0;
    }
    c->num++;
    c->last_s = r.issued_at_s;
    c->done = c->num == c->max;
    return 0;
}

/* recent_indexed counts the user's certificates of the by-user index, newest first. */
static int recent_indexed(struct store *st, MDB_txn *txn, uint64_t upto, struct recent_count *c)
{
    MDB_cursor *cur = NULL;
    int rc = store_err(st, mdb_cursor_open(txn, st->byuser, &cur), "cursor_open");
    if (rc != 0) {
        return rc;
    }
    uint8_t key_buf[USERIDX_KEY_MAX];
    MDB_val key = {.mv_size = useridx_key(key_buf, c->uri, c->uri_len), .mv_data = key_buf};
    MDB_val seq = {0};
    rc = store_err(st, mdb_cursor_get(cur, &key, &seq, MDB_SET_KEY), "cursor_set");
    if (rc == 0) {
        rc = store_err(st, mdb_cursor_get(cur, &key, &seq, MDB_LAST_DUP), "cursor_last_dup");
    }
    /* Bounded by max, and by the user's certificates. */
    while (rc == 0 && !c->done) {
        ASSERT(seq.mv_size == STORE_SEQ_KEY_LEN);
        uint64_t s = store_seq_decode(seq.mv_data);
        ASSERT(s <= upto);
        rc = recent_take(st, txn, s, c, true);
        if (rc == 0 && !c->done) {
            rc = store_err(st, mdb_cursor_get(cur, &key, &seq, MDB_PREV_DUP), "cursor_prev_dup");
        }
    }
    mdb_cursor_close(cur);
    return rc == -ENOENT ? 0 : rc;
}

int store_index_recent_uri(struct store *st, MDB_txn *txn, const char *uri, int64_t since_s,
                           uint32_t max, uint32_t *out_num, int64_t *out_last_s)
{
    ASSERT(uri != NULL);
    ASSERT(max > 0);
    struct recent_count c = {.uri = uri, .uri_len = strlen(uri), .since_s = since_s, .max = max};
    ASSERT(c.uri_len <= STORE_URI_MAX);
    struct store_index_state ix;
    uint64_t last = 0;
    int rc = store_index_get(st, txn, &ix);
    if (rc == 0) {
        rc = store_last_seq(st, txn, &last);
    }
    if (rc == 0) {
        rc = recent_sync(st, txn, ix.upto, last);
    }
    if (rc != 0) {
        return rc;
    }
    uint64_t upto = watermark(&ix, slice_uri(uri, c.uri_len));
    const struct recent *r = st->recent;
    uint32_t hash = base_fnv1a(uri, c.uri_len);
    /* The tail after the user's watermark, newest first: bounded by the bucket's chain, whose
     * other entries are expected to be about one (as many buckets as entries). */
    for (uint32_t i = r->head[hash & (r->cap - 1)]; rc == 0 && i != 0 && !c.done;
         i = r->e[i - 1].prev) {
        uint64_t s = r->base + i;
        if (s <= upto) {
            break; /* this one and every older one are in the by-user index */
        }
        if (r->e[i - 1].hash == hash) {
            rc = recent_take(st, txn, s, &c, false);
        }
    }
    if (rc == 0 && !c.done && st->has_useridx) { /* else an older environment, read-only */
        rc = recent_indexed(st, txn, upto, &c);
    }
    if (rc == 0) {
        *out_num = c.num;
        *out_last_s = c.last_s;
    }
    return rc;
}
