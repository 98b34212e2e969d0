/* poolstate.c: the publisher's durable pool state records, batch removal of acknowledged outbox
 * entries, the map usage and small helpers shared by the publisher and its drivers. */
#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "base/base.h"
#include "store/internal.h"

static bool state_rec_ok(const struct pool_state_rec *r, size_t total)
{
    return r->magic == STORE_MAGIC_POOLST && r->up <= 1 && r->error_len <= STORE_ERROR_MAX &&
           r->pad[0] == 0 && r->pad[1] == 0 && total == sizeof(*r) + r->error_len;
}

struct state_arg {
    const char *pool;
    MDB_val val;
};

static int state_put_txn(struct store *st, MDB_txn *txn, void *arg)
{
    struct state_arg *a = arg;
    MDB_val key = store_val_str(a->pool);
    return store_err(st, mdb_put(txn, st->poolstate, &key, &a->val, 0), "put_poolstate");
}

int store_pool_state_put(struct store *st, const char *pool, const struct store_pool_state *state)
{
    store_validate(st);
    ASSERT(state != NULL);
    if (st->read_only) {
        return -EROFS;
    }
    if (!store_str_ok(pool, STORE_POOL_MAX) || pool[0] == '\0' ||
        !store_str_ok(state->last_error, STORE_ERROR_MAX)) {
        return -EINVAL;
    }
    ASSERT(st->has_poolstate);
    struct pool_state_rec r;
    memset(&r, 0, sizeof(r));
    size_t err_len = strlen(state->last_error);
    r.since_ms = state->since_ms;
    r.last_success_ms = state->last_success_ms;
    r.last_error_ms = state->last_error_ms;
    r.magic = STORE_MAGIC_POOLST;
    r.up = state->up ? 1 : 0;
    r.error_len = (uint8_t)err_len;
    uint8_t buf[sizeof(r) + STORE_ERROR_MAX];
    memcpy(buf, &r, sizeof(r));
    memcpy(buf + sizeof(r), state->last_error, err_len);
    ASSERT(state_rec_ok(&r, sizeof(r) + err_len)); /* paired with store_pool_state_get */
    struct state_arg a = {.pool = pool, .val = {.mv_size = sizeof(r) + err_len, .mv_data = buf}};
    return store_write(st, state_put_txn, &a);
}

int store_pool_state_get(struct store *st, struct store_pool_state *out, const char *pool)
{
    store_validate(st);
    ASSERT(out != NULL);
    if (!st->has_poolstate || !store_str_ok(pool, STORE_POOL_MAX) || pool[0] == '\0') {
        return -ENOENT;
    }
    MDB_txn *txn = NULL;
    int rc = store_txn_begin(st, &txn, false);
    if (rc != 0) {
        return rc;
    }
    MDB_val key = store_val_str(pool);
    MDB_val val = {0};
    rc = store_err(st, mdb_get(txn, st->poolstate, &key, &val), "get_poolstate");
    if (rc == 0) {
        struct pool_state_rec r;
        ASSERT(val.mv_size >= sizeof(r));
        memcpy(&r, val.mv_data, sizeof(r));
        ASSERT(state_rec_ok(&r, val.mv_size));
        memset(out, 0, sizeof(*out));
        out->up = r.up == 1;
        out->since_ms = r.since_ms;
        out->last_success_ms = r.last_success_ms;
        out->last_error_ms = r.last_error_ms;
        memcpy(out->last_error, (const uint8_t *)val.mv_data + sizeof(r), r.error_len);
    }
    mdb_txn_abort(txn);
    return rc;
}

struct remove_many_arg {
    const char *pool;
    const uint64_t *seqs;
    size_t num;
};

static int remove_many_txn(struct store *st, MDB_txn *txn, void *arg)
{
    const struct remove_many_arg *a = arg;
    uint32_t id = 0;
    int rc = store_pool_find(st, txn, &id, a->pool);
    if (rc != 0) {
        return rc;
    }
    for (size_t i = 0; i < a->num; i++) {
        uint8_t k[STORE_OUTBOX_KEY_LEN];
        for (size_t j = 0; j < 4; j++) {
            k[j] = (uint8_t)(id >> (8 * (3 - j)));
        }
        store_seq_encode(k + 4, a->seqs[i]);
        MDB_val key = {.mv_size = sizeof(k), .mv_data = k};
        rc = store_err(st, mdb_del(txn, st->outbox, &key, NULL), "del_outbox");
        if (rc != 0 && rc != -ENOENT) { /* -ENOENT: removed meanwhile, the goal is reached */
            return rc;
        }
    }
    return 0;
}

int store_outbox_remove_many(struct store *st, const char *pool, const uint64_t *seqs, size_t num)
{
    store_validate(st);
    ASSERT(pool != NULL);
    ASSERT(num == 0 || seqs != NULL);
    if (st->read_only) {
        return -EROFS;
    }
    if (num > STORE_PUBLISH_BATCH_MAX) {
        return -EINVAL;
    }
    if (num == 0) {
        return 0;
    }
    struct remove_many_arg a = {.pool = pool, .seqs = seqs, .num = num};
    return store_write(st, remove_many_txn, &a);
}

static int remove_acked_txn(struct store *st, MDB_txn *txn, void *arg)
{
    const struct ack_slot *a = arg; /* only its removals: pool, entries, num */
    uint32_t id = 0;
    int rc = store_pool_find(st, txn, &id, a->pool);
    if (rc != 0) {
        return rc;
    }
    for (size_t i = 0; i < a->num; i++) {
        uint8_t k[STORE_OUTBOX_KEY_LEN];
        for (size_t j = 0; j < 4; j++) {
            k[j] = (uint8_t)(id >> (8 * (3 - j)));
        }
        store_seq_encode(k + 4, a->entries[i].seq);
        MDB_val key = {.mv_size = sizeof(k), .mv_data = k};
        MDB_val val = {0};
        rc = store_err(st, mdb_get(txn, st->outbox, &key, &val), "get_outbox");
        if (rc == -ENOENT) {
            continue; /* removed meanwhile: the goal is reached */
        }
        if (rc != 0) {
            return rc;
        }
        struct outbox_rec r;
        ASSERT(val.mv_size >= sizeof(r));
        memcpy(&r, val.mv_data, sizeof(r));
        ASSERT(r.magic == STORE_MAGIC_OUTBOX);
        if (r.enqueued_ms != a->entries[i].enqueued_ms) {
            continue; /* re-armed by a revocation after it was read: published again */
        }
        rc = store_err(st, mdb_del(txn, st->outbox, &key, NULL), "del_outbox");
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

static bool carried(struct store *st, struct ack_slot *s);

int store_outbox_remove_acked(struct store *st, const char *pool,
                              const struct store_outbox_entry *entries, size_t num)
{
    store_validate(st);
    ASSERT(pool != NULL);
    ASSERT(num == 0 || entries != NULL);
    if (st->read_only) {
        return -EROFS;
    }
    if (num > STORE_PUBLISH_BATCH_MAX) {
        return -EINVAL;
    }
    if (num == 0) {
        return 0;
    }
    struct ack_slot a = {.pool = pool, .entries = entries, .num = num};
    if (st->defer_meta_sync &&
        clock_mono_ns() - atomic_load(&st->last_commit_ns) < st->ack_wait_ns) {
        if (carried(st, &a)) {
            return 0;
        }
        atomic_fetch_add(&st->acks_waited, 1);
    }
    atomic_fetch_add(&st->acks_alone, 1);
    return store_write(st, remove_acked_txn, &a);
}

/* ---- acknowledgements that ride the next certificate commit ----
 *
 * A commit of its own for every batch the publisher settles took LMDB's writer lock for a
 * commit and its sync (1.5 ms on average, up to 8 ms, at 7,000 enrollments/s on this VM's
 * disk), and certprovd's writer waited behind it with its group. */

/* carried hands `s` (its removals set, the rest zero) to the next certificate commit: true once
 * one committed it, false when none took it within st->ack_wait_ns or the one that took it
 * failed (the caller then commits it). */
static bool carried(struct store *st, struct ack_slot *s)
{
    uint64_t until = clock_mono_ns() + st->ack_wait_ns;
    base_mutex_lock(&st->ack_lock);
    s->next = st->acks;
    st->acks = s;
    while (!s->done) {
        if (!s->taken) {
            bool timed_out = !base_cond_wait_until(&st->ack_cond, &st->ack_lock, until);
            if (timed_out && !s->taken) {
                struct ack_slot **pp = &st->acks;
                while (*pp != s) {
                    pp = &(*pp)->next; /* s is in the list: not taken */
                }
                *pp = s->next;
                break;
            }
        } else {
            base_cond_wait(&st->ack_cond, &st->ack_lock); /* its commit is running */
        }
    }
    bool ok = s->done && s->rc == 0;
    base_mutex_unlock(&st->ack_lock);
    if (ok) {
        atomic_fetch_add(&st->acks_carried, 1);
    }
    return ok;
}

struct ack_slot *store_acks_take(struct store *st)
{
    base_mutex_lock(&st->ack_lock);
    struct ack_slot *list = st->acks;
    st->acks = NULL;
    for (struct ack_slot *s = list; s != NULL; s = s->next) {
        s->taken = true;
    }
    base_mutex_unlock(&st->ack_lock);
    return list;
}

int store_acks_apply(struct store *st, MDB_txn *txn, struct ack_slot *list)
{
    for (struct ack_slot *s = list; s != NULL; s = s->next) {
        s->rc = remove_acked_txn(st, txn, s);
        if (s->rc != 0 && s->rc != -ENOENT) {
            return s->rc; /* LMDB failed: the transaction is lost */
        }
    }
    return 0;
}

void store_acks_done(struct store *st, struct ack_slot *list, int rc)
{
    if (list == NULL) {
        return;
    }
    base_mutex_lock(&st->ack_lock);
    for (struct ack_slot *s = list; s != NULL;) {
        struct ack_slot *next = s->next; /* s belongs to its caller again once done */
        s->rc = rc != 0 ? rc : s->rc;
        s->done = true;
        s = next;
    }
    base_cond_broadcast(&st->ack_cond);
    base_mutex_unlock(&st->ack_lock);
}

int store_space_get(struct store *st, uint64_t *out_used, uint64_t *out_map)
{
    store_validate(st);
    ASSERT(out_used != NULL);
    ASSERT(out_map != NULL);
    MDB_envinfo info = {0};
    MDB_stat stat = {0};
    int rc = store_err(st, mdb_env_info(st->env, &info), "env_info");
    if (rc != 0) {
        return rc;
    }
    rc = store_err(st, mdb_env_stat(st->env, &stat), "env_stat");
    if (rc != 0) {
        return rc;
    }
    *out_used = ((uint64_t)info.me_last_pgno + 1) * stat.ms_psize;
    *out_map = info.me_mapsize;
    return 0;
}

void store_serial_hex(char out[2 * STORE_SERIAL_LEN + 1], const uint8_t serial[STORE_SERIAL_LEN])
{
    (void)base_serial_hex(out, 2 * STORE_SERIAL_LEN + 1, serial, STORE_SERIAL_LEN);
}

void store_err_copy(char *out, size_t cap, const char *msg)
{
    ASSERT(out != NULL);
    ASSERT(cap >= 1);
    size_t n = 0;
    for (; msg != NULL && msg[n] != '\0' && msg[n] != '\n' && n + 1 < cap; n++) {
        unsigned char c = (unsigned char)msg[n];
        out[n] = c < 0x20 || c == '"' || c == '\\' || c == 0x7f ? ' ' : (char)c;
    }
    while (n > 0 && out[n - 1] == ' ') {
        n--;
    }
    out[n] = '\0';
}
