/* store.c: the environment (open, close), LMDB error conversion and small shared helpers. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/base.h"
#include "store/internal.h"

#define STORE_MAX_DBS 13 /* the named databases, and the old "byuser" that index_init drops */
#define STORE_MAP_SIZE_MIN (64u * 1024u)

int store_err(const struct store *st, int mdb_rc, const char *op)
{
    ASSERT(st != NULL);
    ASSERT(op != NULL);
    switch (mdb_rc) {
    case MDB_SUCCESS:
        return 0;
    case MDB_NOTFOUND:
        return -ENOENT;
    case MDB_KEYEXIST:
        return -EEXIST;
    case MDB_MAP_FULL:
        log_err("store: map_full path=%s map_size=%llu op=%s action=\"raise [store] map_size in "
                "the configuration\"",
                st->path, (unsigned long long)st->map_size, op);
        return -ENOSPC;
    default:
        break;
    }
    log_err("store: lmdb_error path=%s op=%s rc=%d error=\"%s\"", st->path, op, mdb_rc,
            mdb_strerror(mdb_rc));
    if (mdb_rc > 0) {
        return -mdb_rc; /* a system errno (EACCES, ENOMEM, ENOSPC, EROFS, ...) */
    }
    switch (mdb_rc) {
    case MDB_TXN_FULL:
        return -ENOSPC;
    case MDB_READERS_FULL:
        return -EBUSY;
    default:
        return -EIO; /* corruption, panic, version mismatch, bad handles: never retryable */
    }
}

void store_validate(const struct store *st)
{
    ASSERT(st != NULL);
    ASSERT(st->state == STORE_STATE_OPEN);
    ASSERT(st->env != NULL);
    ASSERT(st->map_size >= STORE_MAP_SIZE_MIN);
    ASSERT(memchr(st->path, '\0', sizeof(st->path)) != NULL);
}

int store_txn_begin(struct store *st, MDB_txn **out, bool write)
{
    store_validate(st);
    ASSERT(out != NULL);
    ASSERT(!write || !st->read_only);
    return store_err(st, mdb_txn_begin(st->env, NULL, write ? 0 : MDB_RDONLY, out), "txn_begin");
}

int store_txn_commit(struct store *st, MDB_txn *txn)
{
    store_validate(st);
    ASSERT(txn != NULL);
    return store_err(st, mdb_txn_commit(txn), "txn_commit");
}

bool store_str_ok(const char *s, size_t max)
{
    return s != NULL && strnlen(s, max + 1) <= max;
}

MDB_val store_val_str(const char *s)
{
    ASSERT(s != NULL);
    MDB_val v = {.mv_size = strlen(s), .mv_data = (void *)(uintptr_t)s};
    return v;
}

void store_seq_encode(uint8_t out[STORE_SEQ_KEY_LEN], uint64_t seq)
{
    for (size_t i = 0; i < STORE_SEQ_KEY_LEN; i++) {
        out[i] = (uint8_t)(seq >> (8 * (STORE_SEQ_KEY_LEN - 1 - i)));
    }
}

uint64_t store_seq_decode(const uint8_t in[STORE_SEQ_KEY_LEN])
{
    uint64_t seq = 0;
    for (size_t i = 0; i < STORE_SEQ_KEY_LEN; i++) {
        seq = (seq << 8) | in[i];
    }
    return seq;
}

int store_pool_find(struct store *st, MDB_txn *txn, uint32_t *out_id, const char *pool)
{
    ASSERT(txn != NULL);
    ASSERT(out_id != NULL);
    if (!store_str_ok(pool, STORE_POOL_MAX) || pool[0] == '\0') {
        return -ENOENT;
    }
    MDB_val key = store_val_str(pool);
    MDB_val val = {0};
    int rc = store_err(st, mdb_get(txn, st->pools, &key, &val), "get_pool");
    if (rc != 0) {
        return rc;
    }
    uint32_t id = 0;
    ASSERT(val.mv_size == sizeof(id));
    memcpy(&id, val.mv_data, sizeof(id));
    ASSERT(id >= 1);
    ASSERT(id <= STORE_POOLS_MAX);
    *out_id = id;
    return 0;
}

/* index_init gives an environment without index state (new, or from before it: its by-user
 * index had another layout) indexes that are complete up to its last certificate: it drops the
 * old ones and indexes every certificate (bounded by their number; once). */
static int index_init(struct store *st, MDB_txn *txn)
{
    MDB_val key = store_val_str(STORE_META_INDEX);
    MDB_val val = {0};
    int rc = store_err(st, mdb_get(txn, st->meta, &key, &val), "get_meta");
    if (rc != -ENOENT) {
        return rc;
    }
    MDB_dbi old = 0;
    int mrc = mdb_dbi_open(txn, "byuser", 0, &old);
    if (mrc == MDB_SUCCESS) {
        rc = store_err(st, mdb_drop(txn, old, 1), "drop_byuser");
    } else if (mrc != MDB_NOTFOUND) {
        rc = store_err(st, mrc, "dbi_open");
    } else {
        rc = 0;
    }
    struct store_index_state ix = {0};
    rc = rc != 0 ? rc : store_err(st, mdb_drop(txn, st->serials, 0), "drop_serials");
    rc = rc != 0 ? rc : store_err(st, mdb_drop(txn, st->byuser, 0), "drop_useridx");
    rc = rc != 0 ? rc : store_last_seq(st, txn, &ix.upto);
    rc = rc != 0 ? rc : store_index_all(st, txn, ix.upto);
    if (rc == 0 && ix.upto > 0) {
        log_info("store: indexes_rebuilt path=%s certificates=%llu", st->path,
                 (unsigned long long)ix.upto);
    }
    return rc != 0 ? rc : store_index_put(st, txn, &ix);
}

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

int store_index_put(struct store *st, MDB_txn *txn, const struct store_index_state *in)
{
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

/* Slices are contiguous ranges of each index's key order, so that a slice step dirties only
 * the index pages of its range; both are uniform, whatever the users' names. */
unsigned store_slice_serial(const uint8_t serial[STORE_SERIAL_LEN])
{
    /* positive serials: the first byte is a CSPRNG 0..127 */
    return (serial[0] & 0x7fu) * STORE_INDEX_SLICES / 128u;
}

static uint32_t uri_hash(const char *uri, size_t len)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < len; i++) {
        h = (h ^ (uint8_t)uri[i]) * 16777619u;
    }
    return h;
}

unsigned store_slice_uri(const char *uri, size_t len)
{
    /* the by-user key starts with the hash (big-endian): its top bits are contiguous ranges */
    return (unsigned)(((uint64_t)uri_hash(uri, len) * STORE_INDEX_SLICES) >> 32);
}

size_t store_useridx_key(uint8_t out[STORE_USERIDX_KEY_MAX], const char *uri, size_t len)
{
    ASSERT(len <= STORE_URI_MAX);
    uint32_t h = uri_hash(uri, len);
    for (size_t i = 0; i < 4; i++) {
        out[i] = (uint8_t)(h >> (8 * (3 - i)));
    }
    memcpy(out + 4, uri, len);
    return 4 + len;
}

uint64_t store_index_watermark(const struct store_index_state *ix, unsigned slice)
{
    return ix->target != 0 && slice < ix->progress ? ix->target : ix->upto;
}

/* open_dbis opens (or, when writable, creates) every named database in one transaction. */
static int open_dbis(struct store *st)
{
    struct {
        const char *name;
        unsigned flags;
        MDB_dbi *dbi;
    } dbs[] = {
        {"users", 0, &st->users},         {"phone", MDB_DUPSORT, &st->phone},
        {"ext", MDB_DUPSORT, &st->ext},   {"phext", 0, &st->phext},
        {"lockout", 0, &st->lockout},     {"certs", 0, &st->certs},
        {"serials", 0, &st->serials},     {"useridx", MDB_DUPSORT | MDB_DUPFIXED, &st->byuser},
        {"outbox", 0, &st->outbox},       {"pools", 0, &st->pools},
        {"poolstate", 0, &st->poolstate}, {"meta", 0, &st->meta},
    };
    static_assert(ARRAY_LEN(dbs) <= STORE_MAX_DBS, "raise STORE_MAX_DBS");
    MDB_txn *txn = NULL;
    int rc = store_txn_begin(st, &txn, !st->read_only);
    for (size_t i = 0; rc == 0 && i < ARRAY_LEN(dbs); i++) {
        unsigned flags = dbs[i].flags | (st->read_only ? 0u : (unsigned)MDB_CREATE);
        int mrc = mdb_dbi_open(txn, dbs[i].name, flags, dbs[i].dbi);
        if (mrc == MDB_NOTFOUND && st->read_only &&
            (dbs[i].dbi == &st->poolstate || dbs[i].dbi == &st->meta ||
             dbs[i].dbi == &st->byuser)) {
            continue; /* an environment from before them: they read as absent */
        }
        rc = store_err(st, mrc, "dbi_open");
        st->has_poolstate = st->has_poolstate || (rc == 0 && dbs[i].dbi == &st->poolstate);
        st->has_meta = st->has_meta || (rc == 0 && dbs[i].dbi == &st->meta);
        st->has_useridx = st->has_useridx || (rc == 0 && dbs[i].dbi == &st->byuser);
    }
    if (rc == 0 && !st->read_only) {
        rc = index_init(st, txn);
    }
    if (rc != 0) {
        if (txn != NULL) {
            mdb_txn_abort(txn);
        }
        return rc; /* -ENOENT: read-only open of an environment never created */
    }
    return store_txn_commit(st, txn); /* also for a read txn: keeps the handles open */
}

static int env_setup(struct store *st)
{
    int rc = store_err(st, mdb_env_create(&st->env), "env_create");
    if (rc != 0) {
        return rc;
    }
    rc = store_err(st, mdb_env_set_maxdbs(st->env, STORE_MAX_DBS), "env_set_maxdbs");
    if (rc == 0) {
        rc = store_err(st, mdb_env_set_mapsize(st->env, (size_t)st->map_size), "env_set_mapsize");
    }
    if (rc != 0) {
        return rc;
    }
    /* Default sync flags: every commit is durable (invariant 1); with defer_meta_sync, durable
     * once the next commit or store_sync returned (store.h). MDB_NOTLS: read transactions are
     * not tied to threads. */
    unsigned flags = MDB_NOTLS | (st->read_only ? (unsigned)MDB_RDONLY : 0u) |
                     (st->defer_meta_sync ? (unsigned)MDB_NOMETASYNC : 0u);
    rc = store_err(st, mdb_env_open(st->env, st->path, flags, 0600), "env_open");
    if (rc != 0) {
        return rc;
    }
    MDB_envinfo info = {0};
    rc = store_err(st, mdb_env_info(st->env, &info), "env_info");
    if (rc != 0) {
        return rc;
    }
    st->map_size = info.me_mapsize; /* LMDB raises it to the size of existing data */
    int dead = 0;
    rc = store_err(st, mdb_reader_check(st->env, &dead), "reader_check");
    if (rc == 0 && dead > 0) {
        log_warn("store: stale_readers_cleared path=%s num=%d", st->path, dead);
    }
    return rc;
}

int store_open(struct store **out, const struct store_options *opt)
{
    ASSERT(out != NULL);
    ASSERT(opt != NULL);
    if (opt->path == NULL || opt->path[0] == '\0') {
        return -EINVAL;
    }
    uint64_t map_size = opt->map_size == 0 ? STORE_MAP_SIZE_DEFAULT : opt->map_size;
    if (map_size < STORE_MAP_SIZE_MIN || map_size > SIZE_MAX) {
        return -EINVAL;
    }
    struct store *st = calloc(1, sizeof(*st));
    if (st == NULL) {
        return -ENOMEM;
    }
    int rc = base_str_copy(st->path, sizeof(st->path), opt->path) == 0 ? 0 : -EINVAL;
    st->state = STORE_STATE_OPEN; /* so that store_err/store_validate accept it while opening */
    st->read_only = opt->read_only;
    st->defer_meta_sync = opt->defer_meta_sync && !opt->read_only;
    st->index_tail_max = opt->index_tail_max == 0 ? STORE_INDEX_TAIL_DEFAULT : opt->index_tail_max;
    pthread_mutex_init(&st->commit_lock, NULL);
    atomic_init(&st->nondurable_seq, UINT64_MAX);
    st->map_size = map_size;
    if (rc == 0 && !st->read_only && mkdir(st->path, 0700) == -1 && errno != EEXIST) {
        rc = -errno;
        log_err("store: mkdir_failed path=%s error=\"%s\"", st->path, strerror(errno));
    }
    if (rc == 0) {
        rc = env_setup(st);
    }
    if (rc == 0) {
        rc = open_dbis(st);
    }
    if (rc != 0) {
        store_close(st);
        return rc;
    }
    store_validate(st);
    *out = st;
    return 0;
}

bool store_defers_sync(const struct store *st)
{
    ASSERT(st != NULL);
    return st->defer_meta_sync;
}

int store_sync(struct store *st)
{
    store_validate(st);
    if (st->read_only || !st->defer_meta_sync) {
        return 0;
    }
    int rc = store_err(st, mdb_env_sync(st->env, 1), "env_sync");
    if (rc == 0) {
        atomic_store(&st->nondurable_seq, UINT64_MAX);
    }
    return rc;
}

void store_close(struct store *st)
{
    if (st == NULL) {
        return;
    }
    ASSERT(st->state == STORE_STATE_OPEN);
    if (st->env != NULL && st->defer_meta_sync && store_sync(st) != 0) {
        log_err("store: close_sync_failed path=%s", st->path);
    }
    if (st->env != NULL) {
        mdb_env_close(st->env); /* every commit is durable by now */
        st->env = NULL;
    }
    store_tail_free(st);
    store_segment_free(st);
    pthread_mutex_destroy(&st->commit_lock);
    st->state = STORE_STATE_CLOSED;
    free(st);
}
