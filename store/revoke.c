/* revoke.c: revocations and disabled users (store.h, "revocation"). A revocation is one synced
 * transaction: the record in `revoked`, an outbox entry for the certificate's pool and seq (the
 * publisher then makes the pool store's row equal to the replica's: publish.c), and the
 * generation in meta "revgen". Calls index.c (the certificate by serial and by user) and
 * common.c. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "store/internal.h"

static const struct {
    uint8_t code;
    const char *name;
} reasons[] = {
    {STORE_REASON_UNSPECIFIED, "unspecified"},
    {STORE_REASON_KEY_COMPROMISE, "keyCompromise"},
    {STORE_REASON_AFFILIATION_CHANGED, "affiliationChanged"},
    {STORE_REASON_SUPERSEDED, "superseded"},
    {STORE_REASON_CESSATION_OF_OPERATION, "cessationOfOperation"},
    {STORE_REASON_CERTIFICATE_HOLD, "certificateHold"},
};

const char *store_revoke_reason_name(uint8_t reason)
{
    for (size_t i = 0; i < ARRAY_LEN(reasons); i++) {
        if (reasons[i].code == reason) {
            return reasons[i].name;
        }
    }
    return NULL;
}

int store_revoke_reason_parse(uint8_t *out, const char *name)
{
    ASSERT(out != NULL);
    for (size_t i = 0; name != NULL && i < ARRAY_LEN(reasons); i++) {
        if (strcmp(reasons[i].name, name) == 0) {
            *out = reasons[i].code;
            return 0;
        }
    }
    return -EINVAL;
}

static bool revoked_rec_ok(const struct revoked_rec *r)
{
    static const uint8_t zero[sizeof(r->pad)] = {0};
    /* seq 0: a certificate of another appliance, revoked through the fleet directory (recorded
     * by serial so that a renewal with it is refused here too; never in this CRL). */
    return r->magic == STORE_MAGIC_REVOKED && store_revoke_reason_name(r->reason) != NULL &&
           r->revoked_at_s > 0 && memcmp(r->pad, zero, sizeof(zero)) == 0;
}

static void revoked_decode(struct store_revocation *out, const MDB_val *key, const MDB_val *val)
{
    struct revoked_rec r;
    ASSERT(key->mv_size == STORE_SERIAL_LEN);
    ASSERT(val->mv_size == sizeof(r));
    memcpy(&r, val->mv_data, sizeof(r));
    ASSERT(revoked_rec_ok(&r));
    memset(out, 0, sizeof(*out));
    memcpy(out->serial, key->mv_data, STORE_SERIAL_LEN);
    out->revoked_at_s = r.revoked_at_s;
    out->not_after_s = r.not_after_s;
    out->reason = r.reason;
    out->seq = r.seq;
}

/* revoked_get reads the revocation of `serial` in `txn`: 0, -ENOENT or an error. */
static int revoked_get(struct store *st, MDB_txn *txn, struct store_revocation *out,
                       const uint8_t serial[STORE_SERIAL_LEN])
{
    if (!st->has_revoked) {
        return -ENOENT; /* an older environment opened read-only: nothing revoked */
    }
    MDB_val key = {.mv_size = STORE_SERIAL_LEN, .mv_data = (void *)(uintptr_t)serial};
    MDB_val val = {0};
    int rc = store_err(st, mdb_get(txn, st->revoked, &key, &val), "get_revoked");
    if (rc == 0) {
        revoked_decode(out, &key, &val);
    }
    return rc;
}

static int generation_get(struct store *st, MDB_txn *txn, uint64_t *out)
{
    *out = 0;
    if (!st->has_meta) {
        return 0;
    }
    MDB_val key = store_val_str(STORE_META_REVGEN);
    MDB_val val = {0};
    int rc = store_err(st, mdb_get(txn, st->meta, &key, &val), "get_revgen");
    if (rc == -ENOENT) {
        return 0;
    }
    if (rc == 0) {
        ASSERT(val.mv_size == STORE_SEQ_KEY_LEN);
        *out = store_seq_decode(val.mv_data);
    }
    return rc;
}

static int generation_bump(struct store *st, MDB_txn *txn)
{
    uint64_t gen = 0;
    int rc = generation_get(st, txn, &gen);
    if (rc != 0) {
        return rc;
    }
    uint8_t buf[STORE_SEQ_KEY_LEN];
    store_seq_encode(buf, gen + 1);
    MDB_val key = store_val_str(STORE_META_REVGEN);
    MDB_val val = {.mv_size = sizeof(buf), .mv_data = buf};
    return store_err(st, mdb_put(txn, st->meta, &key, &val, 0), "put_revgen");
}

/* outbox_rearm puts the outbox entry (pool, seq) of a certificate whose revocation changed: a new
 * entry, or the waiting one with its enqueue time moved on (strictly: the publisher removes an
 * acknowledged entry only while it still has the time it read, store_outbox_remove_acked), due
 * now; attempts, parked and the last error stay. */
static int outbox_rearm(struct store *st, MDB_txn *txn, const char *pool, uint64_t seq,
                        const uint8_t serial[STORE_SERIAL_LEN])
{
    uint32_t id = 0;
    int rc = store_pool_find(st, txn, &id, pool);
    if (rc != 0) {
        return rc == -ENOENT ? -EIO : rc; /* a stored certificate's pool always has an id */
    }
    uint8_t k[STORE_OUTBOX_KEY_LEN];
    for (size_t i = 0; i < 4; i++) {
        k[i] = (uint8_t)(id >> (8 * (3 - i)));
    }
    store_seq_encode(k + 4, seq);
    MDB_val key = {.mv_size = sizeof(k), .mv_data = k};
    MDB_val val = {0};
    int64_t now_ms = clock_real_ms();
    uint8_t buf[STORE_OUTBOX_REC_MAX];
    struct outbox_rec r;
    size_t len = sizeof(r);
    rc = store_err(st, mdb_get(txn, st->outbox, &key, &val), "get_outbox");
    if (rc == 0) {
        ASSERT(val.mv_size >= sizeof(r) && val.mv_size <= sizeof(buf));
        memcpy(buf, val.mv_data, val.mv_size);
        memcpy(&r, buf, sizeof(r));
        ASSERT(r.magic == STORE_MAGIC_OUTBOX);
        len = val.mv_size;
        r.enqueued_ms = now_ms > r.enqueued_ms ? now_ms : r.enqueued_ms + 1;
        r.next_attempt_ms = 0;
    } else if (rc == -ENOENT) {
        memset(&r, 0, sizeof(r));
        r.magic = STORE_MAGIC_OUTBOX;
        r.enqueued_ms = now_ms;
        memcpy(r.serial, serial, sizeof(r.serial));
    } else {
        return rc;
    }
    ASSERT(memcmp(r.serial, serial, sizeof(r.serial)) == 0);
    memcpy(buf, &r, sizeof(r));
    MDB_val nv = {.mv_size = len, .mv_data = buf};
    return store_err(st, mdb_put(txn, st->outbox, &key, &nv, 0), "put_outbox");
}

/* cert_find reads the pool, seq and expiry of the certificate `serial` in `txn`. */
static int cert_find(struct store *st, MDB_txn *txn, char pool[STORE_POOL_MAX + 1],
                     uint64_t *out_seq, int64_t *out_not_after_s,
                     const uint8_t serial[STORE_SERIAL_LEN])
{
    uint8_t seq[STORE_SEQ_KEY_LEN];
    int rc = store_index_find_serial(st, txn, seq, serial);
    if (rc != 0) {
        return rc;
    }
    MDB_val skey = {.mv_size = sizeof(seq), .mv_data = seq};
    MDB_val val = {0};
    rc = store_cert_rec_get(st, txn, &skey, &val);
    if (rc != 0) {
        return rc;
    }
    struct cert_rec r;
    ASSERT(val.mv_size >= sizeof(r));
    memcpy(&r, val.mv_data, sizeof(r));
    ASSERT(store_cert_rec_ok(&r, val.mv_size));
    ASSERT(memcmp(r.serial, serial, STORE_SERIAL_LEN) == 0);
    memset(pool, 0, STORE_POOL_MAX + 1);
    memcpy(pool, (const uint8_t *)val.mv_data + sizeof(r) + r.uri_len, r.pool_len);
    *out_seq = store_seq_decode(seq);
    *out_not_after_s = r.not_after_s;
    return 0;
}

struct revoke_one {
    const uint8_t *serial;
    uint8_t reason;
    int64_t now_s;
    struct store_revocation rev; /* out */
};

/* revoke_in revokes one certificate inside the write txn `txn` (no generation bump). */
static int revoke_in(struct store *st, MDB_txn *txn, struct revoke_one *a)
{
    char pool[STORE_POOL_MAX + 1];
    uint64_t seq = 0;
    int64_t not_after = 0;
    int rc = cert_find(st, txn, pool, &seq, &not_after, a->serial);
    if (rc != 0) {
        return rc;
    }
    struct store_revocation old;
    rc = revoked_get(st, txn, &old, a->serial);
    int64_t at = a->now_s > 0 ? a->now_s : 1;
    if (rc == 0) {
        if (old.reason != STORE_REASON_CERTIFICATE_HOLD ||
            a->reason == STORE_REASON_CERTIFICATE_HOLD) {
            a->rev = old;
            return -EALREADY;
        }
        at = old.revoked_at_s; /* the hold becomes final: RFC 5280 §5.3.1 */
    } else if (rc != -ENOENT) {
        return rc;
    }
    struct revoked_rec r;
    memset(&r, 0, sizeof(r));
    r.revoked_at_s = at;
    r.not_after_s = not_after;
    r.seq = seq;
    r.magic = STORE_MAGIC_REVOKED;
    r.reason = a->reason;
    ASSERT(revoked_rec_ok(&r)); /* paired with revoked_decode */
    MDB_val key = {.mv_size = STORE_SERIAL_LEN, .mv_data = (void *)(uintptr_t)a->serial};
    MDB_val val = {.mv_size = sizeof(r), .mv_data = &r};
    rc = store_err(st, mdb_put(txn, st->revoked, &key, &val, 0), "put_revoked");
    if (rc != 0) {
        return rc;
    }
    rc = outbox_rearm(st, txn, pool, seq, a->serial);
    if (rc != 0) {
        return rc;
    }
    revoked_decode(&a->rev, &key, &val);
    return 0;
}

static int revoke_txn(struct store *st, MDB_txn *txn, void *arg)
{
    int rc = revoke_in(st, txn, arg);
    return rc != 0 ? rc : generation_bump(st, txn);
}

int store_cert_revoke(struct store *st, struct store_revocation *out,
                      const uint8_t serial[STORE_SERIAL_LEN], uint8_t reason, int64_t now_s)
{
    store_validate(st);
    ASSERT(serial != NULL);
    if (store_revoke_reason_name(reason) == NULL) {
        return -EINVAL;
    }
    struct revoke_one a = {.serial = serial, .reason = reason, .now_s = now_s};
    int rc = store_write(st, revoke_txn, &a);
    if ((rc == 0 || rc == -EALREADY) && out != NULL) {
        *out = a.rev;
    }
    return rc;
}

static int unrevoke_txn(struct store *st, MDB_txn *txn, void *arg)
{
    const uint8_t *serial = arg;
    struct store_revocation old;
    int rc = revoked_get(st, txn, &old, serial);
    if (rc != 0) {
        return rc;
    }
    if (old.reason != STORE_REASON_CERTIFICATE_HOLD) {
        return -EPERM;
    }
    char pool[STORE_POOL_MAX + 1];
    uint64_t seq = 0;
    int64_t not_after = 0;
    MDB_val key = {.mv_size = STORE_SERIAL_LEN, .mv_data = (void *)(uintptr_t)serial};
    if (old.seq == 0) { /* another appliance's certificate: only the record */
        rc = store_err(st, mdb_del(txn, st->revoked, &key, NULL), "del_revoked");
        return rc != 0 ? rc : generation_bump(st, txn);
    }
    rc = cert_find(st, txn, pool, &seq, &not_after, serial);
    if (rc != 0) {
        return rc == -ENOENT ? -EIO : rc; /* a revocation of seq >= 1 names a stored certificate */
    }
    rc = store_err(st, mdb_del(txn, st->revoked, &key, NULL), "del_revoked");
    if (rc != 0) {
        return rc;
    }
    rc = outbox_rearm(st, txn, pool, seq, serial);
    return rc != 0 ? rc : generation_bump(st, txn);
}

int store_cert_unrevoke(struct store *st, const uint8_t serial[STORE_SERIAL_LEN])
{
    store_validate(st);
    ASSERT(serial != NULL);
    return store_write(st, unrevoke_txn, (void *)(uintptr_t)serial);
}

int store_cert_revocation_get(struct store *st, struct store_revocation *out,
                              const uint8_t serial[STORE_SERIAL_LEN])
{
    store_validate(st);
    ASSERT(out != NULL);
    ASSERT(serial != NULL);
    MDB_txn *txn = NULL;
    int rc = store_txn_begin(st, &txn, false);
    if (rc != 0) {
        return rc;
    }
    rc = revoked_get(st, txn, out, serial);
    mdb_txn_abort(txn);
    return rc;
}

int store_revoked_foreach(struct store *st, uint64_t *out_generation, store_revocation_fn fn,
                          void *ctx)
{
    store_validate(st);
    ASSERT(fn != NULL);
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    int rc = store_txn_begin(st, &txn, false);
    if (rc != 0) {
        return rc;
    }
    uint64_t gen = 0;
    rc = generation_get(st, txn, &gen);
    if (rc != 0 || !st->has_revoked) {
        goto out;
    }
    rc = store_err(st, mdb_cursor_open(txn, st->revoked, &cur), "cursor_open");
    if (rc != 0) {
        goto out;
    }
    MDB_val key = {0};
    MDB_val val = {0};
    /* Bounded by the revocations in the snapshot. */
    rc = store_err(st, mdb_cursor_get(cur, &key, &val, MDB_FIRST), "cursor_first");
    while (rc == 0) {
        struct store_revocation rev;
        revoked_decode(&rev, &key, &val);
        rc = rev.seq == 0 ? 0 : fn(ctx, &rev); /* another appliance's: not in this CRL */
        if (rc != 0) {
            goto out;
        }
        rc = store_err(st, mdb_cursor_get(cur, &key, &val, MDB_NEXT), "cursor_next");
    }
    rc = rc == -ENOENT ? 0 : rc;
out:
    if (cur != NULL) {
        mdb_cursor_close(cur);
    }
    mdb_txn_abort(txn);
    if (rc == 0 && out_generation != NULL) {
        *out_generation = gen;
    }
    return rc;
}

/* ---- a user's certificates ---- */

struct user_round {
    int64_t now_s;
    uint8_t reason;
    size_t num;
    uint8_t (*serials)[STORE_SERIAL_LEN]; /* STORE_REVOKE_USER_ROUND_MAX */
    uint32_t revoked;                     /* out: in this round */
};

/* visit_user collects the user's certificates that are unexpired and not revoked (or on hold,
 * when the reason is final), up to a round. */
static int visit_user(struct store *st, MDB_txn *txn, const MDB_val *key, const MDB_val *val,
                      const struct cert_rec *r, void *arg)
{
    (void)key;
    (void)val;
    struct user_round *u = arg;
    if (r->not_after_s < u->now_s) {
        return 0;
    }
    struct store_revocation old;
    int rc = revoked_get(st, txn, &old, r->serial);
    if (rc == 0 && (old.reason != STORE_REASON_CERTIFICATE_HOLD ||
                    u->reason == STORE_REASON_CERTIFICATE_HOLD)) {
        return 0;
    }
    if (rc != 0 && rc != -ENOENT) {
        return rc;
    }
    memcpy(u->serials[u->num++], r->serial, STORE_SERIAL_LEN);
    return u->num == STORE_REVOKE_USER_ROUND_MAX ? 1 : 0;
}

static int user_round_txn(struct store *st, MDB_txn *txn, void *arg)
{
    struct user_round *u = arg;
    u->revoked = 0;
    for (size_t i = 0; i < u->num; i++) {
        struct revoke_one a = {.serial = u->serials[i], .reason = u->reason, .now_s = u->now_s};
        int rc = revoke_in(st, txn, &a);
        if (rc == -EALREADY) {
            continue; /* another process was first */
        }
        if (rc != 0) {
            return rc;
        }
        u->revoked++;
    }
    return u->revoked == 0 ? 0 : generation_bump(st, txn);
}

/* user_rounds runs the rounds of store_user_revoke_certs, adding to *total. */
static int user_rounds(struct store *st, struct user_round *u, uint32_t *total, const char *uri)
{
    /* Each round revokes up to STORE_REVOKE_USER_ROUND_MAX certificates that were not revoked
     * before it: the rounds end, bounded by the user's certificates. */
    for (;;) {
        u->num = 0;
        MDB_txn *txn = NULL;
        int rc = store_txn_begin(st, &txn, false);
        if (rc != 0) {
            return rc;
        }
        rc = store_index_foreach_uri(st, txn, uri, visit_user, u);
        mdb_txn_abort(txn);
        if (rc < 0) {
            return rc;
        }
        if (u->num == 0) {
            return 0;
        }
        rc = store_write(st, user_round_txn, u);
        if (rc != 0) {
            return rc;
        }
        *total += u->revoked;
        if (u->num < STORE_REVOKE_USER_ROUND_MAX) {
            return 0;
        }
    }
}

int store_user_revoke_certs(struct store *st, uint32_t *out_num, const char *uri, uint8_t reason,
                            int64_t now_s)
{
    store_validate(st);
    ASSERT(uri != NULL);
    if (store_revoke_reason_name(reason) == NULL) {
        return -EINVAL;
    }
    uint32_t total = 0;
    int rc = 0;
    if (store_str_ok(uri, STORE_URI_MAX) && uri[0] != '\0') { /* else: no certificates */
        struct user_round u = {.now_s = now_s, .reason = reason};
        u.serials = calloc(STORE_REVOKE_USER_ROUND_MAX, STORE_SERIAL_LEN);
        if (u.serials == NULL) {
            return -ENOMEM;
        }
        rc = user_rounds(st, &u, &total, uri);
        free(u.serials);
    }
    if (out_num != NULL) {
        *out_num = total;
    }
    return rc;
}

/* ---- disabled users ---- */

struct disable_arg {
    const char *uri;
    int64_t now_s;
    bool enable;
};

static int disable_txn(struct store *st, MDB_txn *txn, void *arg)
{
    const struct disable_arg *a = arg;
    MDB_val key = store_val_str(a->uri);
    int rc = 0;
    if (a->enable) {
        rc = store_err(st, mdb_del(txn, st->disabled, &key, NULL), "del_disabled");
    } else {
        int64_t since = a->now_s > 0 ? a->now_s : 1;
        MDB_val val = {.mv_size = sizeof(since), .mv_data = &since};
        rc = store_err(st, mdb_put(txn, st->disabled, &key, &val, MDB_NOOVERWRITE), "put_disabled");
        if (rc == -EEXIST) {
            return 0; /* already disabled: keeps its time, nothing to write */
        }
    }
    return rc != 0 ? rc : generation_bump(st, txn);
}

int store_user_disabled_put(struct store *st, MDB_txn *txn, const char *uri, int64_t since_s)
{
    ASSERT(txn != NULL);
    struct disable_arg a = {.uri = uri, .now_s = since_s, .enable = since_s == 0};
    int rc = disable_txn(st, txn, &a);
    return rc == -ENOENT ? 0 : rc;
}

int store_user_disable(struct store *st, const char *uri, int64_t now_s)
{
    store_validate(st);
    if (!store_str_ok(uri, STORE_URI_MAX) || uri[0] == '\0') {
        return -EINVAL;
    }
    struct disable_arg a = {.uri = uri, .now_s = now_s};
    return store_write(st, disable_txn, &a);
}

int store_user_enable(struct store *st, const char *uri)
{
    store_validate(st);
    if (!store_str_ok(uri, STORE_URI_MAX) || uri[0] == '\0') {
        return -EINVAL;
    }
    struct disable_arg a = {.uri = uri, .enable = true};
    return store_write(st, disable_txn, &a);
}

int store_user_disabled(struct store *st, int64_t *out_since_s, const char *uri)
{
    store_validate(st);
    ASSERT(out_since_s != NULL);
    *out_since_s = 0;
    if (!st->has_revoked || !store_str_ok(uri, STORE_URI_MAX) || uri[0] == '\0') {
        return 0;
    }
    MDB_txn *txn = NULL;
    int rc = store_txn_begin(st, &txn, false);
    if (rc != 0) {
        return rc;
    }
    MDB_val key = store_val_str(uri);
    MDB_val val = {0};
    rc = store_err(st, mdb_get(txn, st->disabled, &key, &val), "get_disabled");
    if (rc == 0) {
        ASSERT(val.mv_size == sizeof(int64_t));
        memcpy(out_since_s, val.mv_data, sizeof(int64_t));
        ASSERT(*out_since_s > 0);
    }
    mdb_txn_abort(txn);
    return rc == -ENOENT ? 0 : rc;
}

int store_revoke_generation(struct store *st, uint64_t *out)
{
    store_validate(st);
    ASSERT(out != NULL);
    MDB_txn *txn = NULL;
    int rc = store_txn_begin(st, &txn, false);
    if (rc != 0) {
        return rc;
    }
    rc = generation_get(st, txn, out);
    mdb_txn_abort(txn);
    return rc;
}

/* ---- revocations of the fleet directory (directory.c, certprovctl with [directory]) ---- */

int store_revocation_replica_put(struct store *st, MDB_txn *txn,
                                 const uint8_t serial[STORE_SERIAL_LEN], uint8_t reason,
                                 int64_t revoked_at_s, bool lifted)
{
    ASSERT(txn != NULL);
    ASSERT(serial != NULL);
    if (store_revoke_reason_name(reason) == NULL) {
        return -EINVAL;
    }
    if (lifted) {
        int rc = unrevoke_txn(st, txn, (void *)(uintptr_t)serial);
        return rc == -ENOENT || rc == -EPERM ? 0 : rc; /* not revoked here, or final here */
    }
    struct revoke_one a = {.serial = serial, .reason = reason, .now_s = revoked_at_s};
    int rc = revoke_in(st, txn, &a);
    if (rc == -EALREADY) {
        return 0;
    }
    if (rc == -ENOENT) { /* not a certificate of this appliance: recorded by serial (seq 0) */
        struct store_revocation old;
        rc = revoked_get(st, txn, &old, serial);
        if (rc == 0 && (old.reason != STORE_REASON_CERTIFICATE_HOLD ||
                        reason == STORE_REASON_CERTIFICATE_HOLD)) {
            return 0;
        }
        if (rc != 0 && rc != -ENOENT) {
            return rc;
        }
        struct revoked_rec r;
        memset(&r, 0, sizeof(r));
        r.revoked_at_s = revoked_at_s > 0 ? revoked_at_s : 1;
        r.magic = STORE_MAGIC_REVOKED;
        r.reason = reason;
        ASSERT(revoked_rec_ok(&r));
        MDB_val key = {.mv_size = STORE_SERIAL_LEN, .mv_data = (void *)(uintptr_t)serial};
        MDB_val val = {.mv_size = sizeof(r), .mv_data = &r};
        rc = store_err(st, mdb_put(txn, st->revoked, &key, &val, 0), "put_revoked");
    }
    return rc != 0 ? rc : generation_bump(st, txn);
}

struct replica_one {
    const uint8_t *serial;
    uint8_t reason;
    int64_t at_s;
    bool lifted;
};

static int replica_one_txn(struct store *st, MDB_txn *txn, void *arg)
{
    const struct replica_one *a = arg;
    return store_revocation_replica_put(st, txn, a->serial, a->reason, a->at_s, a->lifted);
}

int store_revocation_replica(struct store *st, const uint8_t serial[STORE_SERIAL_LEN],
                             uint8_t reason, int64_t revoked_at_s, bool lifted)
{
    store_validate(st);
    ASSERT(serial != NULL);
    struct replica_one a = {
        .serial = serial, .reason = reason, .at_s = revoked_at_s, .lifted = lifted};
    return store_write(st, replica_one_txn, &a);
}

struct user_list {
    int64_t now_s;
    uint8_t (*serials)[STORE_SERIAL_LEN];
    size_t cap;
    size_t num;
};

static int visit_revoked(struct store *st, MDB_txn *txn, const MDB_val *key, const MDB_val *val,
                         const struct cert_rec *r, void *arg)
{
    (void)key;
    (void)val;
    struct user_list *u = arg;
    if (r->not_after_s < u->now_s) {
        return 0;
    }
    struct store_revocation old;
    int rc = revoked_get(st, txn, &old, r->serial);
    if (rc == -ENOENT) {
        return 0;
    }
    if (rc != 0) {
        return rc;
    }
    memcpy(u->serials[u->num++], r->serial, STORE_SERIAL_LEN);
    return u->num == u->cap ? 1 : 0;
}

int store_user_revoked_serials(struct store *st, uint8_t (*serials)[STORE_SERIAL_LEN], size_t cap,
                               size_t *out_num, const char *uri, int64_t now_s)
{
    store_validate(st);
    ASSERT(serials != NULL && cap > 0);
    ASSERT(out_num != NULL);
    *out_num = 0;
    if (!store_str_ok(uri, STORE_URI_MAX) || uri[0] == '\0') {
        return 0;
    }
    MDB_txn *txn = NULL;
    int rc = store_txn_begin(st, &txn, false);
    if (rc != 0) {
        return rc;
    }
    struct user_list u = {.now_s = now_s, .serials = serials, .cap = cap};
    rc = store_index_foreach_uri(st, txn, uri, visit_revoked, &u);
    mdb_txn_abort(txn);
    *out_num = u.num;
    return rc < 0 ? rc : 0;
}
