/* store.c: the environment: open (with the first indexing of an environment, index.c), sync and
 * close. It calls index.c and common.c. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/base.h"
#include "store/internal.h"

/* The named databases, and the old "byuser" that store_index_init drops. */
#define STORE_MAX_DBS 16

/* dbis_open opens (or, when writable, creates) every named database in `txn`, and gives a
 * writable environment without index state its indexes (store_index_init) and one without the
 * case-folded URIs of its users those (store_user_fold_init). */
static int dbis_open(struct store *st, MDB_txn *txn, void *arg)
{
    (void)arg;
    struct {
        const char *name;
        unsigned flags;
        MDB_dbi *dbi;
    } dbs[] = {
        {"users", 0, &st->users},
        {"phone", MDB_DUPSORT, &st->phone},
        {"ext", MDB_DUPSORT, &st->ext},
        {"phext", 0, &st->phext},
        {"lockout", 0, &st->lockout},
        {"certs", 0, &st->certs},
        {"serials", 0, &st->serials},
        {"useridx", MDB_DUPSORT | MDB_DUPFIXED, &st->byuser},
        {"outbox", 0, &st->outbox},
        {"pools", 0, &st->pools},
        {"poolstate", 0, &st->poolstate},
        {"meta", 0, &st->meta},
        {"urifold", MDB_DUPSORT, &st->urifold},
        {"revoked", 0, &st->revoked},
        {"disabled", 0, &st->disabled},
    };
    static_assert(ARRAY_LEN(dbs) <= STORE_MAX_DBS, "raise STORE_MAX_DBS");
    for (size_t i = 0; i < ARRAY_LEN(dbs); i++) {
        unsigned flags = dbs[i].flags | (st->read_only ? 0u : (unsigned)MDB_CREATE);
        int mrc = mdb_dbi_open(txn, dbs[i].name, flags, dbs[i].dbi);
        if (mrc == MDB_NOTFOUND && st->read_only &&
            (dbs[i].dbi == &st->poolstate || dbs[i].dbi == &st->meta || dbs[i].dbi == &st->byuser ||
             dbs[i].dbi == &st->urifold || dbs[i].dbi == &st->revoked ||
             dbs[i].dbi == &st->disabled)) {
            continue; /* an environment from before them: they read as absent */
        }
        int rc = store_err(st, mrc, "dbi_open");
        if (rc != 0) {
            return rc;
        }
        st->has_poolstate = st->has_poolstate || dbs[i].dbi == &st->poolstate;
        st->has_meta = st->has_meta || dbs[i].dbi == &st->meta;
        st->has_useridx = st->has_useridx || dbs[i].dbi == &st->byuser;
        st->has_urifold = st->has_urifold || dbs[i].dbi == &st->urifold;
        st->has_revoked = st->has_revoked || dbs[i].dbi == &st->disabled;
    }
    if (st->read_only) {
        return 0; /* a store of an older version reads as before; it writes nothing */
    }
    int rc = store_index_init(st, txn);
    if (rc != 0) {
        return rc;
    }
    return store_user_fold_init(st, txn);
}

/* open_dbis runs dbis_open in one transaction, committed also when it only read: a commit keeps
 * the database handles open. */
static int open_dbis(struct store *st)
{
    if (!st->read_only) {
        return store_write(st, dbis_open, NULL);
    }
    MDB_txn *txn = NULL;
    int rc = store_txn_begin(st, &txn, false);
    if (rc != 0) {
        return rc;
    }
    rc = dbis_open(st, txn, NULL);
    if (rc != 0) {
        mdb_txn_abort(txn);
        return rc; /* -ENOENT: read-only open of an environment never created */
    }
    return store_txn_commit(st, txn);
}

static int env_setup(struct store *st)
{
    int rc = store_err(st, mdb_env_create(&st->env), "env_create");
    if (rc != 0) {
        return rc;
    }
    rc = store_err(st, mdb_env_set_maxdbs(st->env, STORE_MAX_DBS), "env_set_maxdbs");
    if (rc != 0) {
        return rc;
    }
    rc = store_err(st, mdb_env_set_mapsize(st->env, (size_t)st->map_size), "env_set_mapsize");
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
    if (rc != 0) {
        return rc;
    }
    if (dead > 0) {
        log_warn("store: stale_readers_cleared path=%s num=%d", st->path, dead);
    }
    return 0;
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
    st->state = STORE_STATE_OPEN; /* so that store_err/store_validate accept it while opening */
    st->read_only = opt->read_only;
    st->defer_meta_sync = opt->defer_meta_sync && !opt->read_only;
    st->index_tail_max = opt->index_tail_max == 0 ? STORE_INDEX_TAIL_DEFAULT : opt->index_tail_max;
    st->filter_min_bits = STORE_FILTER_MIN_BITS;
    st->filter_scan_step = STORE_FILTER_SCAN_STEP;
    int rc = pthread_mutex_init(&st->commit_lock, NULL);
    ASSERT(rc == 0); /* a default mutex: glibc's init cannot fail */
    rc = pthread_mutex_init(&st->recent_lock, NULL);
    ASSERT(rc == 0);
    rc = pthread_mutex_init(&st->ack_lock, NULL);
    ASSERT(rc == 0);
    base_cond_init_mono(&st->ack_cond);
    atomic_init(&st->nondurable_seq, UINT64_MAX);
    st->ack_wait_ns = STORE_ACK_WAIT_MS * 1000000ull;
    atomic_init(&st->last_commit_ns, 0);
    atomic_init(&st->acks_carried, 0);
    atomic_init(&st->acks_waited, 0);
    atomic_init(&st->acks_alone, 0);
    st->map_size = map_size;
    if (base_str_copy(st->path, sizeof(st->path), opt->path) != 0) {
        rc = -EINVAL; /* longer than a path */
        goto out;
    }
    if (!st->read_only && mkdir(st->path, 0700) == -1 && errno != EEXIST) {
        int err = errno;
        log_err("store: mkdir_failed path=%s error=\"%s\"", st->path, strerror(err));
        rc = store_err_map(err);
        goto out;
    }
    rc = env_setup(st);
    if (rc != 0) {
        goto out;
    }
    rc = open_dbis(st);
    if (rc != 0) {
        goto out;
    }
    store_validate(st);
    *out = st;
    st = NULL;
out:
    store_close(st); /* NULL: a no-op */
    return rc;
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
    store_index_free(st);
    int rc = pthread_mutex_destroy(&st->commit_lock);
    ASSERT(rc == 0); /* no transaction of this store is running (the caller's promise) */
    rc = pthread_mutex_destroy(&st->recent_lock);
    ASSERT(rc == 0);
    ASSERT(st->acks == NULL); /* no store_outbox_remove_acked is running (the same promise) */
    rc = pthread_mutex_destroy(&st->ack_lock);
    ASSERT(rc == 0);
    rc = pthread_cond_destroy(&st->ack_cond);
    ASSERT(rc == 0);
    st->state = STORE_STATE_CLOSED;
    free(st);
}
