/* store/internal.h: private to store/. The environment handle, the named databases, the on-disk
 * record layouts and the functions the files of store/ share, grouped by the file that defines
 * them. Files call only files below them, never in a circle:
 *   publish.c -> pool_embedded.c, pool_pg.c, poolstate.c, outbox.c, cert.c, revoke.c
 *   revoke.c  -> index.c (revocations, disabled users, the revocation generation)
 *   pool_pg.c, pool_embedded.c -> revoke.c (the reason names)
 *   store.c   -> index.c, user.c
 *   cert.c    -> index.c, user.c, grow.c
 *   pool_embedded.c -> grow.c;  pool_pg.c -> poolstate.c
 *   every file -> common.c (which calls nothing else in store/), but lock.c (the daemon lock,
 *   no LMDB), which calls nothing in store/
 *
 * Databases (all in one environment):
 *   users    uri                      -> struct user_rec
 *   phone    phone                    -> uri            (DUPSORT: several users per phone)
 *   ext      ext                      -> uri            (DUPSORT)
 *   phext    phone "\0" ext           -> uri            (unique pair; only when ext != "")
 *   urifold  uri, ASCII lower case    -> uri            (DUPSORT: a store written before URIs
 *                                        were compared ignoring case may hold such twins; built
 *                                        by the first writable open, store_user_fold_init)
 *   lockout  uri                      -> struct lockout_rec2 (struct lockout_rec: older versions)
 *   certs    seq (u64 big-endian)     -> struct cert_rec + uri + pool + device_id + DER
 *                                        (MDB_APPEND: the hot write is a sequential append)
 *   serials  serial (16 bytes)        -> seq (u64 big-endian)
 *   useridx  hash32(uri) BE + uri     -> seq (DUPSORT|DUPFIXED, so oldest first)
 *            Both indexes hold the certificates up to meta "index" .upto; the newer ones (the
 *            tail) are found by scanning certs. When the tail grows longer than index_tail_max,
 *            the segment (upto, target = last] is indexed in STORE_INDEX_SLICES slices of
 *            each key order (serial: by its first 15 bits; user: by the hash that starts its
 *            key), so each dirties about 1/STORE_INDEX_SLICES of the index pages the segment
 *            needs, not one random page per certificate. Slice k comes once
 *            k x index_tail_max / STORE_INDEX_SLICES certificates followed the segment (a commit
 *            does every slice that is due), so the work is spread over the next tail's growth
 *            in proportion to it (store_index_step). Slices below .progress are indexed; when
 *            all are, upto = target.
 *   meta     name                     -> value ("index": struct index_state, 4 x u64 BE: upto,
 *                                        target, progress, slices; 3 x u64 when written with
 *                                        16 slices)
 *   outbox   pool id (u32 BE) + seq   -> struct outbox_rec + last_error
 *   pools    pool name                -> pool id (u32 little-endian, 1..STORE_POOLS_MAX)
 *   poolstate pool name               -> struct pool_state_rec + last_error (the publisher's)
 *   revoked  serial (16 bytes)        -> struct revoked_rec (revoke.c)
 *   disabled uri                      -> int64 LE: disabled since (revoke.c)
 *   meta "revgen"                     -> u64 BE: the revocation generation (revoke.c)
 *
 * Records are fixed-layout structs of fixed-width integers with explicit padding, little-endian
 * (static_assert below), copied with memcpy because LMDB values are not aligned. Every record
 * is checked by a *_rec_check before it is written and ASSERTed again after it is read. */
#ifndef CERTPROV_STORE_INTERNAL_H
#define CERTPROV_STORE_INTERNAL_H

#include <assert.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "records are stored little-endian");

#define STORE_MAGIC_USER 0x31525355u     /* "USR1" */
#define STORE_MAGIC_LOCKOUT 0x314b434cu  /* "LCK1": struct lockout_rec alone (read only) */
#define STORE_MAGIC_LOCKOUT2 0x324b434cu /* "LCK2": struct lockout_rec2 */
#define STORE_MAGIC_CERT 0x31545243u     /* "CRT1" */
#define STORE_MAGIC_OUTBOX 0x3158424fu   /* "OBX1" */
#define STORE_MAGIC_POOLST 0x31534c50u   /* "PLS1" */
#define STORE_MAGIC_EMBED 0x32424d45u    /* "EMB2": issue-ordered (pool_embedded.c) */
#define STORE_MAGIC_REVOKED 0x31564552u  /* "REV1" */
#define STORE_MAGIC_EMBREV 0x31525645u   /* "EVR1": an embedded pool store's revocation */

#define STORE_MAP_SIZE_DEFAULT (4ull << 30)
#define STORE_SEQ_KEY_LEN 8
#define STORE_OUTBOX_KEY_LEN 12
#define STORE_PHEXT_KEY_MAX (STORE_PHONE_MAX + 1 + STORE_EXT_MAX)
#define STORE_INDEX_TAIL_DEFAULT 32768u
/* The serial filter (index.c): its smallest size (65,536 serials), the serials its scan reads a
 * commit (~1 ms with 1,000,000 indexed). */
#define STORE_FILTER_MIN_BITS (1u << 20)
#define STORE_FILTER_SCAN_STEP 8192u
#define STORE_META_INDEX "index"
/* Slices of the key space a segment is indexed in (meta "index" records it; environments written
 * before it was recorded used 16: their progress is converted). */
#define STORE_INDEX_SLICES 512u
#define STORE_INDEX_SLICES_V1 16u
static_assert(STORE_INDEX_SLICES >= 1 && STORE_INDEX_SLICES <= 32768 &&
                  32768 % STORE_INDEX_SLICES == 0,
              "serial slices: ranges of the serial's first 15 bits");
static_assert(STORE_INDEX_SLICES % STORE_INDEX_SLICES_V1 == 0, "a v1 slice is whole slices");

/* The bulk indexing state (meta "index"). */
struct store_index_state {
    uint64_t upto;     /* every certificate up to it is in both indexes */
    uint64_t target;   /* 0, or the end of the segment being indexed slice by slice */
    uint64_t progress; /* slices of (upto, target] indexed so far: 0..STORE_INDEX_SLICES-1 */
};

enum store_state {
    STORE_STATE_CLOSED = 0,
    STORE_STATE_OPEN = 1,
};

struct store {
    enum store_state state;
    bool read_only;
    MDB_env *env;
    uint64_t map_size;
    MDB_dbi users;
    MDB_dbi phone;
    MDB_dbi ext;
    MDB_dbi phext;
    MDB_dbi urifold;
    MDB_dbi lockout;
    MDB_dbi certs;
    MDB_dbi serials;
    MDB_dbi byuser;
    MDB_dbi outbox;
    MDB_dbi pools;
    MDB_dbi poolstate;
    MDB_dbi meta;
    MDB_dbi revoked;    /* revoke.c */
    MDB_dbi disabled;   /* revoke.c */
    bool has_revoked;   /* false only for a read-only open of an older environment */
    bool has_poolstate; /* false only for a read-only open of an older environment */
    bool has_meta;      /* false only for a read-only open of an older environment */
    bool has_useridx;   /* false only for a read-only open of an older environment */
    bool has_urifold;   /* false only for a read-only open of an older environment */
    uint64_t index_tail_max;
    /* Serializes store_batch_commit on this handle, which owns `tail`. */
    pthread_mutex_t commit_lock;
    struct tail_set *tail;   /* the tail's serials, for the clash check (index.c); lazily built */
    struct segment *segment; /* the keys of the segment being indexed (index.c); lazily built */
    struct serial_filter *filter; /* the indexed serials, a Bloom filter (index.c); lazily built */
    /* Its smallest size in bits and the serials its scan reads a commit (index.c); tests make
     * them small (store_filter_tune). */
    uint64_t filter_min_bits;
    uint32_t filter_scan_step;
    /* Serializes store_cert_recent_by_uri on this handle, which owns `recent`. */
    pthread_mutex_t recent_lock;
    struct recent *recent; /* the tail by user, for counting recent certificates (index.c) */
    bool defer_meta_sync;
    /* With defer_meta_sync: the lowest certificate seq whose commit may not be durable yet
     * (every higher seq is either in such a commit or not committed); UINT64_MAX when everything
     * is durable. Written only by the thread that commits certificates, before and after each
     * commit; read by store_outbox_foreach after it took its snapshot. */
    _Atomic uint64_t nondurable_seq;
    /* With defer_meta_sync: the publisher's acknowledgements wait here for the next certificate
     * commit and ride it (store_acks_take, poolstate.c) instead of taking LMDB's writer lock for
     * a commit and a sync of their own, which the writer would wait for. */
    pthread_mutex_t ack_lock;
    pthread_cond_t ack_cond;                                /* CLOCK_MONOTONIC */
    struct ack_slot *acks;                                  /* waiting, not taken; newest first */
    uint64_t ack_wait_ns;                                   /* STORE_ACK_WAIT_MS (tests set more) */
    _Atomic uint64_t last_commit_ns;                        /* when store_batch_commit last ended */
    _Atomic uint64_t acks_carried, acks_waited, acks_alone; /* how removals went (tests) */
    char path[4096];
};

struct user_rec {
    uint32_t magic;
    uint8_t pin_len;
    uint8_t pad0[3];
    int64_t created_s;
    uint8_t pin_verifier[STORE_VERIFIER_LEN];
    char pool[STORE_POOL_MAX + 1];
    char phone[STORE_PHONE_MAX + 1];
    char ext[STORE_EXT_MAX + 1];
    uint8_t pad1[7];
};
static_assert(sizeof(struct user_rec) == 152, "user_rec on-disk size");
static_assert(offsetof(struct user_rec, pool) == 48, "user_rec layout");

struct lockout_rec {
    uint32_t magic;
    uint32_t window_failures;
    int64_t window_start_s;
    uint64_t total_failures;
    int64_t locked_until_s;
    int64_t last_failure_s;
    uint8_t admin_locked;
    uint8_t pad[7];
};
static_assert(sizeof(struct lockout_rec) == 48, "lockout_rec on-disk size");

/* lockout_rec2 (magic LCK2, what this version writes) adds the user's last refused enrollment to
 * lockout_rec (whose magic is then LCK2); a record of 48 bytes with magic LCK1 (older versions)
 * is read as one without a refusal. */
struct lockout_rec2 {
    struct lockout_rec base;
    int64_t last_refusal_s;
    uint8_t last_refusal_code;   /* opaque, 0 = none */
    uint8_t last_refusal_reason; /* opaque, 0 = none */
    uint8_t client_len;
    uint8_t pad[5];
    char client[STORE_CLIENT_MAX + 1]; /* client_len bytes, zero after */
};
static_assert(sizeof(struct lockout_rec2) == 128, "lockout_rec2 on-disk size");

/* cert_rec is followed by uri_len + pool_len + device_id_len + der_len bytes. */
struct cert_rec {
    int64_t not_before_s;
    int64_t not_after_s;
    int64_t issued_at_s;
    uint8_t serial[STORE_SERIAL_LEN];
    uint32_t magic;
    uint16_t der_len;
    uint8_t uri_len;
    uint8_t pool_len;
    uint8_t device_id_len;
    uint8_t pad[7];
};
static_assert(sizeof(struct cert_rec) == 56, "cert_rec on-disk size");
static_assert(STORE_CERT_DER_MAX <= UINT16_MAX, "der_len fits u16");
static_assert(STORE_URI_MAX <= UINT8_MAX, "uri_len fits u8");
#define STORE_CERT_REC_MAX                                                                         \
    (sizeof(struct cert_rec) + STORE_URI_MAX + STORE_POOL_MAX + STORE_DEVICE_ID_MAX +              \
     STORE_CERT_DER_MAX)

/* outbox_rec is followed by error_len bytes of last_error. */
struct outbox_rec {
    int64_t enqueued_ms;
    int64_t next_attempt_ms;
    uint8_t serial[STORE_SERIAL_LEN];
    uint32_t magic;
    uint32_t attempts;
    uint8_t parked;
    uint8_t error_len;
    uint8_t pad[6];
};
static_assert(sizeof(struct outbox_rec) == 48, "outbox_rec on-disk size");
#define STORE_OUTBOX_REC_MAX (sizeof(struct outbox_rec) + STORE_ERROR_MAX)

/* revoked_rec: the value of a revoked serial (revoke.c). */
struct revoked_rec {
    int64_t revoked_at_s;
    int64_t not_after_s;
    uint64_t seq;
    uint32_t magic;
    uint8_t reason;
    uint8_t pad[3];
};
static_assert(sizeof(struct revoked_rec) == 32, "revoked_rec on-disk size");
#define STORE_META_REVGEN "revgen"

/* ---- common.c (calls nothing else in store/) ---- */

#define STORE_MAP_SIZE_MIN (64u * 1024u)

/* store_err_map maps an LMDB return code or a system errno to 0 or one of the fixed negative
 * errnos of store.h ("Errors"), without logging: the one table of store/. A code that maps to
 * -ENOSPC, -EIO or -EROFS is noted as the calling thread's fault (store_fault_note). */
int store_err_map(int rc);
/* store_err_map_quiet is store_err_map without the note (the table itself). */
int store_err_map_quiet(int rc);
/* store_fault_note records `fault` as the calling thread's last fault: store_err_map does for the
 * codes it maps, the store's own refusals (the reserve, a read-only handle) do explicitly. */
void store_fault_note(enum store_fault fault);
/* store_fault_take returns the calling thread's last noted fault and forgets it. A public call
 * that reports a fault takes it before it starts (stale) and after it failed. */
enum store_fault store_fault_take(void);
/* store_fault_settle turns `rc`, the result of a write of `st` that began after a
 * store_fault_take, into its fault: the thread's noted fault for -ENOSPC, -EIO and -EROFS (an
 * -EIO while the file system under the store has under 1 MiB free is DISK_FULL: LMDB reports a
 * short write as EIO), STORE_FAULT_NONE for every other result. */
enum store_fault store_fault_settle(struct store *st, int rc);
/* store_err is store_err_map for a call on `st`'s environment, and the one place that logs the
 * library's text (mdb_strerror; for MDB_MAP_FULL the setting to raise), except for the expected
 * MDB_NOTFOUND (-ENOENT) and MDB_KEYEXIST (-EEXIST). `op` names the failed call for the log. */
int store_err(const struct store *st, int rc, const char *op);
/* store_validate ASSERTs the invariants of an open store. */
void store_validate(const struct store *st);
/* store_txn_begin starts a read (write == false) or write transaction: 0 or store_err's code. */
int store_txn_begin(struct store *st, MDB_txn **out, bool write);
/* store_txn_commit commits (and syncs) `txn`, freed on every path: 0 or store_err's code. */
int store_txn_commit(struct store *st, MDB_txn *txn);
/* store_write_fn does the work of one write transaction in `txn`: 0 commits it, a negative errno
 * aborts it and is returned by store_write. */
typedef int (*store_write_fn)(struct store *st, MDB_txn *txn, void *arg);
/* store_write runs fn in one write transaction, committed (synced) when fn returned 0 and aborted
 * otherwise: 0, -EROFS, fn's error, or store_err's code of the begin or the commit. */
int store_write(struct store *st, store_write_fn fn, void *arg);
/* store_str_ok reports whether `s` is non-NULL with at most `max` bytes before its NUL. */
bool store_str_ok(const char *s, size_t max);
/* store_val_str makes an MDB_val of the bytes of `s` without its NUL. */
MDB_val store_val_str(const char *s);
/* store_seq_encode writes `seq` big-endian into 8 bytes (so byte order is numeric order). */
void store_seq_encode(uint8_t out[STORE_SEQ_KEY_LEN], uint64_t seq);
/* store_seq_decode reads a big-endian u64 from 8 bytes. */
uint64_t store_seq_decode(const uint8_t in[STORE_SEQ_KEY_LEN]);
/* store_pool_find sets *out_id to the id of the pool named `pool`: 0, -ENOENT or an error. */
int store_pool_find(struct store *st, MDB_txn *txn, uint32_t *out_id, const char *pool);

/* ---- grow.c (calls common.c), for cert.c and pool_embedded.c ---- */

/* store_env_grow keeps the data file of `env` written (zeros) a little past LMDB's last page, so
 * that a commit's fdatasync overwrites blocks instead of growing the file. Call it with the write
 * lock held, inside a write transaction before its commit. Returns 0 or a negative errno: a
 * failure only costs speed, and the commit's own write reports a full disk. */
int store_env_grow(MDB_env *env);

/* ---- user.c (calls common.c), for cert.c and store.c ---- */

/* store_user_fold_init fills "urifold" from "users" when it is empty and there are users (the
 * first writable open of an environment written before it existed; store_open, write txn). */
int store_user_fold_init(struct store *st, MDB_txn *txn);

/* store_user_replica_put stores `u` inside the write txn `txn` in place of the user of the same
 * URI, if any (the fleet directory's row wins: directory.c), keeping its lockout state; every
 * uniqueness rule but the PIN rule holds: -EEXIST, -ENOTUNIQ (with *out_refusal naming the other
 * user, and nothing of `u` written: the clash checks come before the puts), -EINVAL, or an LMDB
 * error (then the txn must be aborted). */
int store_user_replica_put(struct store *st, MDB_txn *txn, struct store_user_refusal *out_refusal,
                           const struct store_user *u);
/* store_user_replica_del removes `uri` and its index entries inside `txn`: 0, -ENOENT or an LMDB
 * error. */
int store_user_replica_del(struct store *st, MDB_txn *txn, const char *uri);
/* store_lockout_rec_get reads the lockout state of `uri` inside `txn` into *out (all zero when it
 * has none). Returns 0 or -EIO. */
int store_lockout_rec_get(struct store *st, MDB_txn *txn, struct store_lockout *out,
                          const char *uri);
/* store_lockout_rec_put writes `lk` as the lockout state of `uri` inside the write txn `txn`. */
int store_lockout_rec_put(struct store *st, MDB_txn *txn, const char *uri,
                          const struct store_lockout *lk);
/* store_user_exists checks inside `txn` whether `uri` is a user: 0, -ENOENT or an error. */
int store_user_exists(struct store *st, MDB_txn *txn, const char *uri);

/* ---- index.c: the bulk index (calls common.c), for cert.c and store.c ---- */

/* store_record_fn is called for a certificate record: its key (the seq), its value, and the
 * value's fixed header (copied out). The URI is the r->uri_len bytes after the header, in the
 * map: it is not to be read after a put. A non-zero return stops the walk and is returned. */
typedef int (*store_record_fn)(struct store *st, MDB_txn *txn, const MDB_val *key,
                               const MDB_val *val, const struct cert_rec *r, void *arg);
/* store_cert_rec_ok checks a certificate record's header against its value's `total` bytes. */
bool store_cert_rec_ok(const struct cert_rec *r, size_t total);
/* store_cert_rec_get reads the record under `skey`, a seq that is known to exist (ASSERTed). */
int store_cert_rec_get(struct store *st, MDB_txn *txn, MDB_val *skey, MDB_val *val);
/* store_last_seq sets *out to the highest certificate seq in `txn`'s snapshot (0: none). */
int store_last_seq(struct store *st, MDB_txn *txn, uint64_t *out);
/* store_index_init indexes every certificate of an environment without index state (store_open,
 * write txn); a no-op when the state exists. */
int store_index_init(struct store *st, MDB_txn *txn);
/* store_index_get reads the index state of `txn`'s snapshot (an environment from before it,
 * opened read-only, reads as nothing indexed: upto = 0, everything is scanned). */
int store_index_get(struct store *st, MDB_txn *txn, struct store_index_state *out);
/* store_index_check_serials marks the batch's items whose serial is taken; see index.c. */
/* store_filter_tune sets the serial filter's smallest size (a power of two, at least 64 bits)
 * and the serials its scan reads a commit, before the handle's first commit (tests). */
void store_filter_tune(struct store *st, uint64_t min_bits, uint32_t scan_step);
int store_index_check_serials(struct store *st, MDB_txn *txn, struct store_batch *b,
                              const struct store_index_state *ix, uint64_t last);
/* store_index_step advances the bulk indexing by the slices that are due after a batch up to
 * `last`. */
int store_index_step(struct store *st, MDB_txn *txn, struct store_index_state ix, uint64_t last);
/* store_index_discard marks the handle's caches stale after a failed commit. */
void store_index_discard(struct store *st);
/* store_index_free frees the handle's caches (store_close). */
void store_index_free(struct store *st);
/* store_index_find_serial puts the seq key of `serial` in seq_out: 0, -ENOENT or an error. */
int store_index_find_serial(struct store *st, MDB_txn *txn, uint8_t seq_out[STORE_SEQ_KEY_LEN],
                            const uint8_t serial[STORE_SERIAL_LEN]);
/* store_index_foreach_uri calls fn for each certificate of `uri`, oldest first. */
int store_index_foreach_uri(struct store *st, MDB_txn *txn, const char *uri, store_record_fn fn,
                            void *arg);
/* store_index_recent_uri counts the certificates of `uri` in `txn`'s snapshot, newest first,
 * that were issued at or after since_s, at most `max` (store_cert_recent_by_uri). Called with
 * recent_lock held. */
int store_index_recent_uri(struct store *st, MDB_txn *txn, const char *uri, int64_t since_s,
                           uint32_t max, uint32_t *out_num, int64_t *out_last_s);

/* ---- cert.c (calls index.c, user.c, grow.c, common.c), for publish.c ---- */

/* store_cert_get_seq is store_cert_get by sequence number (the outbox entry's), without the
 * serial index; `serial` is what the record must hold (ASSERTed). */
int store_cert_get_seq(struct store *st, struct store_cert_meta *out_meta, uint8_t *der, size_t cap,
                       size_t *out_len, uint64_t seq, const uint8_t serial[STORE_SERIAL_LEN]);

/* pool_state_rec is followed by error_len bytes of last_error. */
struct pool_state_rec {
    int64_t since_ms;
    int64_t last_success_ms;
    int64_t last_error_ms;
    uint32_t magic;
    uint8_t up;
    uint8_t error_len;
    uint8_t pad[2];
};
static_assert(sizeof(struct pool_state_rec) == 32, "pool_state_rec on-disk size");

/* ---- pool store drivers (publish.c defines pool_driver_* and calls them from the pool's own
 * thread) ---- */

/* pool_row is one certificate of a publication batch. */
struct pool_row {
    char serial[2 * STORE_SERIAL_LEN + 1]; /* upper-case hex, no leading zeros */
    struct store_cert_meta meta;
    size_t der_len;
    uint8_t der[STORE_CERT_DER_MAX];
    int64_t revoked_at_s; /* 0: not revoked (or a lifted hold): the row's columns are NULL */
    uint8_t reason;       /* STORE_REASON_*, when revoked_at_s != 0 */
    int rc; /* set by the driver: 0 acknowledged, -EINVAL permanent (error), -EAGAIN not done */
    char error[STORE_ERROR_MAX + 1];
};

struct pool_driver; /* embedded or PostgreSQL */

/* pool_driver_new prepares (does not connect) the driver of `conninfo` for pool `name`. Returns
 * 0, -EINVAL or -ENOMEM. */
int pool_driver_new(struct pool_driver **out, const char *name, const char *conninfo,
                    const char *embedded_dir, const char *issued_by);
/* pool_driver_publish stores rows[0..n) (connecting first if needed). Returns 0 with every
 * rows[i].rc set, or -EAGAIN (the store is unreachable: nothing can be assumed stored) with the
 * cause in `err` (cap bytes). */
int pool_driver_publish(struct pool_driver *d, struct pool_row *rows, size_t n, char *err,
                        size_t cap);
/* pool_driver_free disconnects and frees. NULL is a no-op. */
void pool_driver_free(struct pool_driver *d);

/* The two drivers behind pool_driver (pool_embedded.c, pool_pg.c). */
struct pool_embedded;
/* pool_embedded_open opens (creating) the embedded store of pool `name` under `dir`: 0 or an
 * error, with the cause in `err`. */
int pool_embedded_open(struct pool_embedded **out, const char *dir, const char *name,
                       const char *issued_by, char *err, size_t cap);
/* pool_embedded_publish stores rows[0..n) in one synced commit: as pool_driver_publish. */
int pool_embedded_publish(struct pool_embedded *e, struct pool_row *rows, size_t n, char *err,
                          size_t cap);
/* pool_embedded_close closes the environment and frees. NULL is a no-op. */
void pool_embedded_close(struct pool_embedded *e);
struct pool_pg;
/* pool_pg_new prepares (does not connect) the PostgreSQL driver: 0, -EINVAL or -ENOMEM. */
int pool_pg_new(struct pool_pg **out, const char *conninfo, const char *issued_by);
/* pool_pg_publish stores rows[0..n) in one pipelined round trip: as pool_driver_publish. */
int pool_pg_publish(struct pool_pg *p, struct pool_row *rows, size_t n, char *err, size_t cap);
/* pool_pg_free disconnects and frees. NULL is a no-op. */
void pool_pg_free(struct pool_pg *p);
/* pool_pg_check connects once: 0 or -EHOSTUNREACH with the reason in `err` (store_pool_check). */
int pool_pg_check(const char *conninfo, char *err, size_t cap);

/* ---- poolstate.c (calls common.c), for publish.c and the drivers ---- */

/* store_outbox_remove_acked deletes the entries (`pool`, entries[i].seq) for i < num in ONE synced
 * transaction, each only while its enqueue time is still entries[i].enqueued_ms: an entry that a
 * revocation re-armed after the publisher read it stays (store_cert_revoke). Returns as
 * store_outbox_remove_many. */
int store_outbox_remove_acked(struct store *st, const char *pool,
                              const struct store_outbox_entry *entries, size_t num);

/* With defer_meta_sync, while certificates are being committed (one ended within the last
 * STORE_ACK_WAIT_MS), store_outbox_remove_acked hands its removals to the next certificate
 * commit of the handle (store_batch_commit) and waits for it, up to STORE_ACK_WAIT_MS; if none
 * took them by then, or the commit that took them failed, it commits them itself as before (an
 * idle writer, e.g. a backlog drained after an outage, is never waited for).
 * store_batch_commit takes the waiting ones (store_acks_take, under commit_lock, before its write
 * transaction), deletes them inside that transaction (store_acks_apply: 0, or an LMDB error that
 * fails the transaction) and tells their callers the commit's result (store_acks_done, on every
 * path). Same durability as a transaction of their own: both are NOMETASYNC commits. */
#define STORE_ACK_WAIT_MS 20
struct ack_slot {
    const char *pool; /* the removals: as store_outbox_remove_acked's arguments */
    const struct store_outbox_entry *entries;
    size_t num;
    struct ack_slot *next;
    int rc;     /* what the commit that took it did with it */
    bool taken; /* by store_acks_take: it will be done */
    bool done;
};
struct ack_slot *store_acks_take(struct store *st);
int store_acks_apply(struct store *st, MDB_txn *txn, struct ack_slot *list);
void store_acks_done(struct store *st, struct ack_slot *list, int rc);

/* store_user_disabled_put marks `uri` disabled since since_s (kept when it already is), or, with
 * since_s = 0, enabled, inside `txn` (revoke.c; the directory thread). 0 or an LMDB error. */
int store_user_disabled_put(struct store *st, MDB_txn *txn, const char *uri, int64_t since_s);

/* ---- dirpg.c (the fleet directory's SQL; calls common.c), for directory.c ---- */

typedef struct pg_conn PGconn;
/* store_dir_conn_raw connects with the bounds of dirpg.c (NULL only without memory). */
PGconn *store_dir_conn_raw(const char *conninfo, uint32_t statement_timeout_ms);
/* store_dir_exec runs one statement: 0, or -EEXIST/-ENOTUNIQ/-ENOENT/-EIO with the text in err. */
int store_dir_exec(PGconn *c, const char *sql, char *err, size_t cap);
/* store_dir_key_get reads the directory's PIN key id into `out`: 0, -ENOENT (not initialized) or
 * -EIO, with the text in err. */
int store_dir_key_get(PGconn *c, char *out, size_t out_cap, char *err, size_t cap);

/* store_dir_lockout_upsert: the merging INSERT of a lockout row ($1 uri, $2 window failures, $3
 * window start, $4 total, $5 locked until, $6 admin locked, $7 reset, $8 appliance, $9 the
 * writer's [pin] window_s: two windows begun less than that apart overlap). */
extern const char store_dir_lockout_upsert[];
/* DIR_WRITE_LOCK / DIR_NOTIFY: what every writing transaction of the directory does first and
 * last (dirpg.c, the overview). */
#define STORE_DIR_WRITE_LOCK "SELECT pg_advisory_xact_lock(7393726218537156)"
#define STORE_DIR_NOTIFY "NOTIFY certprov_directory"
/* The lockout rows are a stream of their own (the replica keeps its own seq of them), so they take
 * another lock: a long user import never holds up lockout shipping. */
#define STORE_DIR_LOCKOUT_LOCK "SELECT pg_advisory_xact_lock(7393726218537157)"
/* The revocation rows too (certprov_revocations): their own lock and their own seq in a replica. */
#define STORE_DIR_REVOKE_LOCK "SELECT pg_advisory_xact_lock(7393726218537158)"
#define STORE_DIR_CAS_LOCK "SELECT pg_advisory_xact_lock(7393726218537159)"

/* store_revocation_replica_put applies one revocation row of the fleet directory in `txn`
 * (revoke.c): a certificate of this appliance is revoked as by store_cert_revoke (its outbox
 * entry, the CRL) with the directory's time; another's is recorded by serial (seq 0: renewal
 * refused, never in this CRL); `lifted` lifts a hold. Already so: 0. Bumps the generation. */
int store_revocation_replica_put(struct store *st, MDB_txn *txn,
                                 const uint8_t serial[STORE_SERIAL_LEN], uint8_t reason,
                                 int64_t revoked_at_s, bool lifted);

/* store_serial_hex writes `serial` as upper-case hex without leading zeros (README, certprovctl).
 */
void store_serial_hex(char out[2 * STORE_SERIAL_LEN + 1], const uint8_t serial[STORE_SERIAL_LEN]);

/* store_err_copy copies the first line of `msg` into `out` (cap bytes), cut to fit and without
 * control characters. */
void store_err_copy(char *out, size_t cap, const char *msg);

#endif
