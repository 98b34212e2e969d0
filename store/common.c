/* common.c: what every file of store/ uses: LMDB error conversion (store_err), transactions,
 * string and key helpers, and the pool id lookup. It calls nothing else in store/. */
#include <errno.h>
#include <string.h>
#include <sys/statvfs.h>

#include "base/base.h"
#include "store/internal.h"

/* The fault of the last store call of this thread that met one (store_fault_take): a write's
 * condition is known where LMDB's or the system's code is mapped, deep below the call that
 * reports it, on the same thread. */
static _Thread_local enum store_fault last_fault;

/* fault_of classifies a raw LMDB code or errno that maps to -ENOSPC, -EIO or -EROFS. */
static enum store_fault fault_of(int rc)
{
    switch (rc) {
    case MDB_MAP_FULL:
    case MDB_TXN_FULL:
        return STORE_FAULT_MAP_FULL;
    case ENOSPC:
    case EDQUOT:
    case EFBIG:
        return STORE_FAULT_DISK_FULL;
    case EROFS:
        return STORE_FAULT_READ_ONLY;
    default:
        return STORE_FAULT_IO;
    }
}

void store_fault_note(enum store_fault fault)
{
    ASSERT((unsigned)fault < STORE_FAULT_MAX_);
    last_fault = fault;
}

enum store_fault store_fault_take(void)
{
    enum store_fault f = last_fault;
    last_fault = STORE_FAULT_NONE;
    return f;
}

/* A short write (EIO from LMDB) counts as a full file system while less than this is free. */
#define FAULT_DISK_FREE_MIN (1u << 20)

enum store_fault store_fault_settle(struct store *st, int rc)
{
    store_validate(st);
    enum store_fault f = store_fault_take();
    if (rc != -ENOSPC && rc != -EIO && rc != -EROFS) {
        return STORE_FAULT_NONE;
    }
    if (f == STORE_FAULT_NONE) { /* not noted: the code alone says it */
        f = rc == -ENOSPC  ? STORE_FAULT_DISK_FULL
            : rc == -EROFS ? STORE_FAULT_READ_ONLY
                           : STORE_FAULT_IO;
    }
    int fd = -1;
    struct statvfs vfs;
    if (f == STORE_FAULT_IO && mdb_env_get_fd(st->env, &fd) == MDB_SUCCESS &&
        fstatvfs(fd, &vfs) == 0 && (uint64_t)vfs.f_bavail * vfs.f_frsize < FAULT_DISK_FREE_MIN) {
        f = STORE_FAULT_DISK_FULL;
    }
    return f;
}

int store_err_map(int rc)
{
    int err = store_err_map_quiet(rc);
    if (err == -ENOSPC || err == -EIO || err == -EROFS) {
        store_fault_note(fault_of(rc));
    }
    return err;
}

int store_err_map_quiet(int rc)
{
    switch (rc) {
    case MDB_SUCCESS:
        return 0;
    case MDB_NOTFOUND:
    case ENOENT: /* the environment's directory or an embedded pool store does not exist */
        return -ENOENT;
    case MDB_KEYEXIST:
        return -EEXIST;
    case MDB_MAP_FULL:
    case MDB_TXN_FULL: /* one transaction outgrew LMDB's dirty-page limit: as full for it */
    case ENOSPC:
    case EDQUOT:
    case EFBIG:
        return -ENOSPC;
    case MDB_READERS_FULL: /* every reader slot taken: free again when readers finish */
    case EAGAIN:           /* mdb_env_open: the environment is locked by another process */
    case EBUSY:
        return -EBUSY;
    case ENOMEM:
        return -ENOMEM;
    case EROFS:
        return -EROFS;
    case EACCES:
    case EPERM:
        return -EACCES;
    default:
        /* Damaged or unexpected: MDB_CORRUPTED, MDB_PAGE_NOTFOUND, MDB_PANIC,
         * MDB_VERSION_MISMATCH, MDB_INVALID, MDB_MAP_RESIZED, every other MDB_* code (bad handles,
         * value sizes, full tables: our bugs), EIO, EINVAL and any other system error. Retrying
         * does not help; the log has the library's text. */
        return -EIO;
    }
}

int store_err(const struct store *st, int rc, const char *op)
{
    ASSERT(st != NULL);
    ASSERT(op != NULL);
    if (rc == MDB_SUCCESS || rc == MDB_NOTFOUND || rc == MDB_KEYEXIST) {
        return store_err_map(rc); /* expected: the caller decides */
    }
    if (rc == MDB_MAP_FULL) {
        log_err("store: map_full path=%s map_size=%llu op=%s action=\"raise [store] map_size in "
                "the configuration\"",
                st->path, (unsigned long long)st->map_size, op);
    } else {
        log_err("store: lmdb_error path=%s op=%s rc=%d error=\"%s\"", st->path, op, rc,
                mdb_strerror(rc));
    }
    int err = store_err_map(rc);
    ASSERT(err < 0);
    return err;
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

int store_write(struct store *st, store_write_fn fn, void *arg)
{
    store_validate(st);
    ASSERT(fn != NULL);
    if (st->read_only) {
        store_fault_note(STORE_FAULT_READ_ONLY);
        return -EROFS;
    }
    MDB_txn *txn = NULL;
    int rc = store_err(st, mdb_txn_begin(st->env, NULL, 0, &txn), "txn_begin");
    if (rc != 0) {
        goto out;
    }
    rc = fn(st, txn, arg);
    if (rc != 0) {
        goto out;
    }
    rc = store_err(st, mdb_txn_commit(txn), "txn_commit"); /* frees txn on every path */
    txn = NULL;
out:
    if (txn != NULL) {
        mdb_txn_abort(txn); /* fn failed: never reused */
    }
    return rc;
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
