/* store: the LMDB replica of users, PIN verifiers, lockout state, issued certificates and the
 * per-pool outboxes.
 *
 * One LMDB environment lives in the directory given to store_open. Readers are lock-free (LMDB
 * MVCC); writes are serialised by LMDB's writer lock and every write transaction is committed
 * with sync before the call returns, so that a caller who returns a certificate to a client after
 * store_batch_commit() returned 0 keeps invariant 1 (durable before visible). A handle opened
 * with defer_meta_sync pipelines durability instead: a commit is durable when the NEXT commit
 * (or store_sync) returned, which halves the syncs of a writer that always has the next group
 * ready; its caller answers a group only then.
 *
 * The store knows nothing about cryptography: PIN verifiers and certificate DER are opaque bytes
 * to it. Strings are NUL-terminated UTF-8 and are compared byte-wise. All functions are
 * thread-safe unless stated otherwise; a `struct store_batch` belongs to one thread at a time.
 * Every function that writes returns -EROFS on a store opened with `read_only`.
 *
 * Errors. A fallible function returns 0 or a negative errno, and its comment lists every code it
 * can return. LMDB's codes and system errors are converted in one place (store_err_map) to this
 * fixed set, and the library's own text is logged there once (the embedded pool stores hand it
 * to the publisher, which logs it once per outage):
 *   -ENOENT  not found: a key (MDB_NOTFOUND), or the environment's directory (ENOENT)
 *   -EEXIST  the key exists (MDB_KEYEXIST): a user's URI, a certificate's serial
 *   -ENOSPC  no room: the map is full (MDB_MAP_FULL: raise [store] map_size), the disk or quota
 *            is (ENOSPC, EDQUOT, EFBIG), or one transaction outgrew LMDB's dirty-page limit
 *            (MDB_TXN_FULL). Nothing of the call was stored; the same call fails again until
 *            there is room. Only calls that write return it
 *   -EBUSY   every LMDB reader slot is taken (MDB_READERS_FULL), or another process holds the
 *            environment's lock (EAGAIN, EBUSY): may succeed later. Reads and opens return it
 *   -ENOMEM  out of memory (ENOMEM, or the store's own caches)
 *   -EROFS   the file system is read-only (EROFS); also a write on a store opened `read_only`
 *   -EACCES  no permission on the environment's directory or files (EACCES, EPERM)
 *   -EIO     anything damaged or unexpected: MDB_CORRUPTED, MDB_PAGE_NOTFOUND, MDB_PANIC,
 *            MDB_VERSION_MISMATCH, MDB_INVALID, MDB_MAP_RESIZED, every other MDB_* code, EIO,
 *            EINVAL (an argument LMDB refused) and every other system error. Retrying does not
 *            help; the log has the library's text
 * and, from the store's own checks: -EPROTO (data written by a version this one cannot read:
 * meta "index", or an embedded pool store of the first layout), -EINVAL (an argument the caller
 * got wrong: a bad option, an over-long string; misuse that only a bug of ours could cause
 * ASSERTs instead), and the codes a function explains itself (-E2BIG, -ENOTUNIQ, -EHOSTUNREACH,
 * -EAGAIN, -EBUSY for a full batch). */
#ifndef CERTPROV_STORE_H
#define CERTPROV_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define STORE_URI_MAX 255       /* bytes of a SIP URI, NUL excluded */
#define STORE_POOL_MAX 63       /* bytes of a pool name, NUL excluded */
#define STORE_PHONE_MAX 16      /* "+" and up to 15 digits (E.164) */
#define STORE_EXT_MAX 15        /* digits of an extension */
#define STORE_DEVICE_ID_MAX 63  /* "{GUID}" fits with room */
#define STORE_CLIENT_MAX 63     /* bytes of a client address text ("[v6]:port") */
#define STORE_VERIFIER_LEN 32   /* HMAC-SHA-256 */
#define STORE_SERIAL_LEN 16     /* certificate serial, big-endian, top bit clear */
#define STORE_CERT_DER_MAX 4096 /* largest certificate DER stored */
#define STORE_ERROR_MAX 127     /* bytes of an outbox entry's last error */
#define STORE_BATCH_MAX 512     /* certificates (and lockout updates) in one group commit */
#define STORE_POOLS_MAX 64      /* distinct home pools */

struct store;

struct store_options {
    const char *path;  /* directory of the environment; created 0700 if missing */
    uint64_t map_size; /* LMDB map size in bytes; 0 = 4 GiB */
    bool read_only;    /* open for reading only (admin listing while the daemon runs) */
    /* Deferred durability, for a process whose one writer thread pipelines its commits
     * (certprovd): every commit of this handle syncs its data pages but not LMDB's meta page
     * (MDB_NOMETASYNC), so it costs ONE sync instead of two. A commit is durable once a later
     * commit of this handle has returned 0, or store_sync() has. Until then its outbox entries
     * are hidden from store_outbox_foreach(), so that nothing is published that a system crash
     * could still undo. Atomicity and consistency are LMDB's as always. */
    bool defer_meta_sync;
    /* The serial and by-user indexes are brought up to date in bulk: the newest certificates
     * (about this many, up to twice while a segment is indexed) are found by scanning the
     * sequence-ordered certificate table instead (a serial clash is checked against them
     * through an in-memory set), and once there are more, they are indexed slice by slice
     * (index.c store_index_step). A commit then dirties no random index page per certificate, and a
     * longer tail puts more entries on each index page a slice writes: fewer page writes per
     * certificate. Lookups by serial of a tail certificate scan it (certprovctl; the enrollment
     * path never does). 0 = STORE_INDEX_TAIL_DEFAULT (32768). */
    uint32_t index_tail_max;
};

struct store_user {
    char uri[STORE_URI_MAX + 1];     /* "sip:alice@example.com": the key */
    char pool[STORE_POOL_MAX + 1];   /* home pool name */
    char phone[STORE_PHONE_MAX + 1]; /* E.164 or "" */
    char ext[STORE_EXT_MAX + 1];     /* digits or "" */
    uint8_t pin_verifier[STORE_VERIFIER_LEN];
    uint8_t pin_len;   /* number of digits of the PIN (policy for 4-digit PINs) */
    int64_t created_s; /* Unix seconds */
};

struct store_lockout {
    uint32_t window_failures; /* failures since window_start_s */
    int64_t window_start_s;   /* start of the current failure window; 0 = none */
    uint64_t total_failures;  /* failures since the last success or admin unlock */
    int64_t locked_until_s;   /* temporary lock end; 0 = none */
    bool admin_locked;        /* locked until an administrator unlocks */
    int64_t last_failure_s;
    /* The user's last refused enrollment (certprovctl user show), kept with the lockout state and
     * written only with it or on a refusal: 0 / "" when none was recorded (records of older
     * versions hold none). The code and reason are opaque small numbers to the store (service/
     * stores an enum signer_code and an enum signer_reason, each + 1 so that 0 means none). */
    int64_t last_refusal_s;
    uint8_t last_refusal_code;
    uint8_t last_refusal_reason;
    char last_refusal_client[STORE_CLIENT_MAX + 1]; /* the client's address text */
};

struct store_cert_meta {
    uint8_t serial[STORE_SERIAL_LEN];
    char uri[STORE_URI_MAX + 1];
    char pool[STORE_POOL_MAX + 1];
    char device_id[STORE_DEVICE_ID_MAX + 1]; /* "" if none */
    int64_t not_before_s;
    int64_t not_after_s;
    int64_t issued_at_s;
    uint64_t seq; /* set by the store: commit order, strictly increasing */
};

struct store_outbox_entry {
    char pool[STORE_POOL_MAX + 1];
    uint8_t serial[STORE_SERIAL_LEN];
    uint64_t seq;        /* the certificate's seq: publication order within a pool */
    int64_t enqueued_ms; /* Unix ms when the certificate was committed */
    uint32_t attempts;
    int64_t next_attempt_ms; /* Unix ms; 0 = due now */
    bool parked;             /* a permanent error; waits for `outbox retry` */
    char last_error[STORE_ERROR_MAX + 1];
};

struct store_batch_item {
    struct store_cert_meta meta;
    const uint8_t *der; /* borrowed until store_batch_commit returns */
    size_t der_len;
    int rc; /* after commit: 0, or -EEXIST when this serial already exists */
};

/* store_fault says why a write failed, in the terms the operator acts on (README, /readyz):
 * which of the store's "no room" and "cannot write" conditions it met. */
enum store_fault {
    STORE_FAULT_NONE = 0,  /* no such condition: the write succeeded, or failed for a reason of
                            * its own (-EEXIST, -E2BIG, -EINVAL, -ENOMEM, -EPROTO, -EBUSY) */
    STORE_FAULT_MAP_FULL,  /* -ENOSPC: the map is full (MDB_MAP_FULL, MDB_TXN_FULL, or a batch
                            * of certificates that would take the reserve): raise map_size */
    STORE_FAULT_DISK_FULL, /* -ENOSPC: the file system or quota is full (ENOSPC, EDQUOT,
                            * EFBIG); also -EIO from a short write (LMDB reports one as EIO)
                            * while the file system under the store has under 1 MiB free */
    STORE_FAULT_IO,        /* -EIO: a write or sync failed (EIO), or the environment is damaged */
    STORE_FAULT_READ_ONLY, /* -EROFS: the file system, or the handle, is read-only */
    STORE_FAULT_MAX_,
};

struct store_batch_lockout {
    char uri[STORE_URI_MAX + 1];
    struct store_lockout lockout;
};

/* STORE_UNKNOWN_KEY is the key of the decoy lockout record (store_batch_add_unknown). No user
 * can take it: a URI never starts with '~' (store_user_add refuses one). */
#define STORE_UNKNOWN_KEY "~unknown"

/* store_batch is one group commit: certificates with their outbox entries, lockout updates and
 * the count of failed sign-ins of no known user. Caller-owned storage (large: allocate it once
 * and reuse it); all-zero is a valid empty batch. */
struct store_batch {
    size_t num_items;
    struct store_batch_item items[STORE_BATCH_MAX];
    size_t num_lockouts;
    struct store_batch_lockout lockouts[STORE_BATCH_MAX];
    size_t num_unknown;     /* store_batch_add_unknown calls, <= STORE_BATCH_MAX */
    enum store_fault fault; /* set by store_batch_commit: why it failed (NONE when it did not) */
};

/* store_open opens (creating if needed) the environment described by `opt` and clears stale
 * reader slots left by crashed processes; a writable open of an environment without index state
 * indexes its certificates first. Returns 0 with *out owned by the caller, -EINVAL (no path, a
 * path longer than 4095 bytes, map_size under 64 KiB), -ENOENT (read-only: no environment there;
 * or a missing parent directory), -EACCES, -EROFS (writable open on a read-only file system),
 * -EBUSY (another process holds the environment's lock, or no reader slot is free), -ENOSPC (a
 * full disk, or a map too small to index an older environment), -ENOMEM or -EIO. */
int store_open(struct store **out, const struct store_options *opt);

/* store_sync makes every commit of this handle durable (one sync) and returns 0, -ENOSPC (the
 * file system could not write back: full disk or quota) or -EIO. Returns 0 at once without
 * defer_meta_sync, where every commit already is, and on a read-only store. */
int store_sync(struct store *st);

/* store_defers_sync tells whether `st` was opened with defer_meta_sync. */
bool store_defers_sync(const struct store *st);

/* store_close closes the environment. No transaction of this store may be running. NULL is a
 * no-op. */
void store_close(struct store *st);

/* The daemon lock: one certprovd per store directory. certprovd takes it before it opens
 * anything, for the life of the process; certprovctl never takes it (LMDB serialises its writes
 * with the daemon's) and only asks who holds it, for the commands that must not run beside a
 * daemon. The file is <dir>/certprovd.lock and holds the holder's PID. */
#define STORE_LOCK_FILE "certprovd.lock"

struct store_lock;

/* store_lock_open takes the daemon lock of the store directory `dir`, creating the lock file
 * (0644) but never the directory, and writes this process's PID into it. The lock lasts until
 * store_lock_close or the end of the process (kill -9 too). A second open conflicts with it, in
 * another process or in this one. Returns 0 (*out owned), -EBUSY (held: store_lock_holder says
 * by which PID), -ENOENT (no directory `dir`), -EINVAL (path too long), -EACCES, -EROFS, -ENOMEM,
 * or another negative errno from the file system. */
int store_lock_open(struct store_lock **out, const char *dir);

/* store_lock_close releases the lock; the file stays. NULL is a no-op. */
void store_lock_close(struct store_lock *lock);

/* store_lock_holder tells, without taking the lock, whether a process holds the daemon lock of
 * `dir`: *out_held, and in *out_pid the PID recorded in the lock file (0 when not held, or when
 * the holder has not written it yet). No lock file or no directory: not held. Returns 0,
 * -EINVAL (path too long), -EACCES or another negative errno from opening the lock file. The
 * answer may be out of date the moment it is given (a daemon may start or stop). Thread-safe. */
int store_lock_holder(bool *out_held, pid_t *out_pid, const char *dir);

/* ---- users ---- */

/* Uniqueness. A new user is refused when another user (stored, or earlier in the same call) has
 *   - the same URI, compared ignoring ASCII case (-EEXIST, STORE_CLASH_URI): every identity check
 *     (signer_identity_check, the SOAP Entity) ignores ASCII case, so "sip:Alice@example.com" and
 *     "sip:alice@example.com" would be one identity with two PINs. The store keeps the URI as
 *     given; its caller stores one canonical spelling (certprovctl: scheme and host in lower
 *     case, the user part as typed);
 *   - the same phone number and extension (-ENOTUNIQ, STORE_CLASH_PHONE_EXT), or the same
 *     extension (-ENOTUNIQ, STORE_CLASH_EXT): an extension signs in exactly one user;
 *   - the same phone number and PIN (-ENOTUNIQ, STORE_CLASH_PHONE_PIN), checked only when the
 *     caller gives a store_pin_same_fn: the PIN is what picks among the users of one phone number
 *     at sign-in. The store holds verifiers, not PINs, and knows no PIN key: the caller compares
 *     (certprovctl computes the new PIN's verifier under each other user's URI). At most
 *     STORE_LOOKUP_SCAN_MAX users of one phone number are compared, the bound of every lookup.
 * The rules are checked inside the write transaction that stores the user, so that two processes
 * cannot both add clashing users. A store written before these rules may hold users that clash:
 * it opens (a writable open indexes its URIs once), lists and signs them in as before; only new
 * users and new PINs are checked, also against those users. */
#define STORE_LOOKUP_SCAN_MAX 4096u /* index entries one lookup (or clash check) visits */

enum store_clash {
    STORE_CLASH_NONE = 0,  /* refused for another reason (-EINVAL, or an error while storing) */
    STORE_CLASH_URI,       /* -EEXIST: the same URI ignoring ASCII case */
    STORE_CLASH_PHONE_EXT, /* -ENOTUNIQ: the same phone number and extension */
    STORE_CLASH_EXT,       /* -ENOTUNIQ: the same extension (another phone number, or none) */
    STORE_CLASH_PHONE_PIN, /* -ENOTUNIQ: the same phone number and PIN */
};

/* store_user_refusal says which user a call refused and why, for the caller's message. */
struct store_user_refusal {
    bool refused;                /* a user was refused; false: the transaction itself failed */
    size_t index;                /* the refused user: users[index] (0 for set-pin) */
    enum store_clash clash;      /* the rule it broke, or STORE_CLASH_NONE */
    char uri[STORE_URI_MAX + 1]; /* the user it clashes with ("" for STORE_CLASH_NONE) */
};

/* store_pin_same_fn tells whether the PIN of users[index] of the call (known only to the caller)
 * is the PIN of `other`, a user with the same phone number, whose verifier is
 * other->pin_verifier. It runs inside the store's write transaction: it must not call the
 * store. `other` is valid only during the call. */
typedef bool (*store_pin_same_fn)(void *ctx, size_t index, const struct store_user *other);

/* store_user_add stores a new user: store_user_add_checked without the PIN rule. Returns 0,
 * -EEXIST (the URI exists, ignoring ASCII case), -ENOTUNIQ (another user has the same extension,
 * or the same phone number and extension), -EINVAL (empty URI or pool, a URI that starts with '~'
 * (reserved: STORE_UNKNOWN_KEY), over-long field, neither phone nor extension, a phone or extension
 * that is not digits), -EROFS, -ENOSPC, -ENOMEM or -EIO. */
int store_user_add(struct store *st, const struct store_user *user);

/* store_user_add_many stores `num` users in one transaction, all or nothing, without the PIN rule.
 * Returns 0 or one of store_user_add's codes. When a user was refused (-EEXIST, -ENOTUNIQ,
 * -EINVAL, or an error while storing it), *out_failed (if not NULL) is its index; a failure of the
 * transaction itself (-EROFS, or -ENOSPC, -ENOMEM or -EIO at begin or commit) leaves *out_failed
 * unset. */
int store_user_add_many(struct store *st, const struct store_user *users, size_t num,
                        size_t *out_failed);

/* store_user_add_checked stores `num` users in one transaction, all or nothing, with every
 * uniqueness rule above; the PIN rule only when `pin_same` is not NULL (called with `ctx`).
 * Returns 0 or one of store_user_add's codes (-ENOTUNIQ also for the same phone number and PIN).
 * *out_refusal (if not NULL) is always written: on a refused user it names the user, the rule and
 * the user it clashes with. */
int store_user_add_checked(struct store *st, struct store_user_refusal *out_refusal,
                           const struct store_user *users, size_t num, store_pin_same_fn pin_same,
                           void *ctx);

/* store_user_get copies the user with `uri` into *out. Returns 0, -ENOENT (no such user, or an
 * empty or over-long `uri`), -EBUSY (no reader slot), -ENOMEM or -EIO. */
int store_user_get(struct store *st, struct store_user *out, const char *uri);

/* store_user_set_pin replaces the user's PIN verifier and length and clears its lockout state.
 * Returns 0, -ENOENT, -EROFS, -ENOSPC, -ENOMEM or -EIO. */
int store_user_set_pin(struct store *st, const char *uri, const uint8_t *verifier, uint8_t pin_len);

/* store_user_set_pin_checked is store_user_set_pin with the PIN rule: in the same transaction,
 * `pin_same` (index 0) is asked about every other user with the user's phone number, and a match
 * refuses the new PIN with -ENOTUNIQ (STORE_CLASH_PHONE_PIN; nothing changed). Returns 0,
 * -ENOTUNIQ or store_user_set_pin's codes. *out_refusal (if not NULL) is always written. */
int store_user_set_pin_checked(struct store *st, struct store_user_refusal *out_refusal,
                               const char *uri, const uint8_t *verifier, uint8_t pin_len,
                               store_pin_same_fn pin_same, void *ctx);

/* store_user_del removes the user, its phone/extension index entries and lockout state. Its
 * certificates stay. Returns 0, -ENOENT, -EROFS, -ENOSPC (a delete may need a page), -ENOMEM or
 * -EIO. */
int store_user_del(struct store *st, const char *uri);

/* store_user_lookup finds the users whose phone number or extension equals `phone_or_ext`
 * (several users may share a phone number). Copies up to `cap` of them into `out` and sets
 * *out_num to how many were copied. Returns 0 (also when none match: *out_num = 0), -EBUSY (no
 * reader slot), -ENOMEM or -EIO. */
int store_user_lookup(struct store *st, struct store_user *out, size_t cap, size_t *out_num,
                      const char *phone_or_ext);

/* store_user_fn is called once per user; a non-zero return stops the iteration and is returned
 * by the iterating function. The pointer is only valid during the call. */
typedef int (*store_user_fn)(void *ctx, const struct store_user *user);

/* store_user_foreach calls fn for every user in URI order. Returns 0, fn's non-zero return,
 * -EBUSY (no reader slot), -ENOMEM or -EIO. */
int store_user_foreach(struct store *st, store_user_fn fn, void *ctx);

/* store_lockout_get copies the user's lockout state into *out (all zero if it has none, or if
 * `uri` is empty or over-long). Returns 0, -EBUSY (no reader slot), -ENOMEM or -EIO. */
int store_lockout_get(struct store *st, struct store_lockout *out, const char *uri);

/* store_lockout_put replaces the user's lockout state in its own synced transaction (admin
 * unlock; online updates go through store_batch). Returns 0, -ENOENT (no such user), -EROFS,
 * -ENOSPC, -ENOMEM or -EIO. */
int store_lockout_put(struct store *st, const char *uri, const struct store_lockout *lockout);

/* ---- certificates: group commit ---- */

/* store_batch_clear empties the batch. */
void store_batch_clear(struct store_batch *batch);

/* store_batch_add_cert appends a certificate (and implicitly its outbox entry for meta->pool).
 * `der` is borrowed until the commit returns. Returns 0, -EBUSY (batch full), -E2BIG
 * (der_len > STORE_CERT_DER_MAX) or -EINVAL (empty DER; empty uri or pool; over-long uri, pool
 * or device_id: strings are never truncated). */
int store_batch_add_cert(struct store_batch *batch, const struct store_cert_meta *meta,
                         const uint8_t *der, size_t der_len);

/* store_batch_add_lockout appends a lockout update. Returns 0, -EBUSY (batch full) or -EINVAL
 * (empty, over-long or reserved uri: one that starts with '~'). At commit, an update for a user
 * deleted meanwhile is skipped. */
int store_batch_add_lockout(struct store_batch *batch, const char *uri,
                            const struct store_lockout *lockout);

/* store_batch_add_unknown counts one failed sign-in that records no user's failure (an unknown
 * phone number or extension; a locked user's right PIN). At commit the batch's count is added to
 * the total of the decoy lockout record STORE_UNKNOWN_KEY, written and synced in the commit's
 * transaction like a user's lockout update, so that such a failure costs the writer what a wrong
 * PIN of a known user costs (no existence oracle by timing). Returns 0 or -EBUSY (this batch
 * counted STORE_BATCH_MAX already). */
int store_batch_add_unknown(struct store_batch *batch);

/* store_unknown_get sets *out to the failures counted by store_batch_add_unknown in committed
 * batches (0 when none). Returns 0 or -EIO. */
int store_unknown_get(struct store *st, uint64_t *out);

/* store_batch_commit stores every certificate of the batch (by serial, by user, with its outbox
 * entry), every lockout update and the count of unknown failures in ONE write transaction
 * committed with sync (with defer_meta_sync: durable once the next commit or store_sync
 * returned): all or nothing. Returns 0 (items' meta.seq set, the batch is cleared), -EEXIST (some
 * serials already exist: those items have rc == -EEXIST, nothing was stored, the batch is kept so
 * the caller can re-sign those items and commit again), -ENOSPC (the map or disk is full: nothing
 * stored; the log says which setting to raise; a batch with certificates is refused while it
 * could take the map's last pages, up to 1 MiB or an eighth of a small map, so that a batch
 * without certificates still commits then), -E2BIG (a new pool beyond STORE_POOLS_MAX: nothing
 * stored), -EROFS, -EPROTO (index state of another version), -ENOMEM or -EIO. On every error
 * nothing was stored and the batch is kept; batch->fault says which condition of the store an
 * -ENOSPC, -EIO or -EROFS met (STORE_FAULT_NONE after a success and for the other codes). */
int store_batch_commit(struct store *st, struct store_batch *batch);

/* store_probe tells whether a batch of certificates would find room and be written now, for a
 * caller that saw commits fail with a fault and waits for the store to recover without
 * enrolling anybody: in one synced write transaction (under the lock of store_batch_commit) it
 * checks the map's room for one certificate of STORE_CERT_DER_MAX bytes beside the reserve that
 * store_batch_commit keeps, writes the zeros ahead of the data file that a commit of
 * certificates writes (the file system's room: here a failure fails the probe) and rewrites a
 * probe record of 8 bytes (meta "probe"). Returns 0 (*out_fault = STORE_FAULT_NONE), -ENOSPC,
 * -EIO or -EROFS (*out_fault says which condition, as for store_batch_commit), or -ENOMEM
 * (*out_fault = STORE_FAULT_NONE). */
int store_probe(struct store *st, enum store_fault *out_fault);

/* store_cert_get copies the metadata of the certificate with `serial` into *out_meta and its DER
 * into `der` (cap bytes). Returns 0 with *out_len set, -ENOENT, -E2BIG (cap too small), -EPROTO
 * (index state of another version), -EBUSY (no reader slot), -ENOMEM or -EIO. */
int store_cert_get(struct store *st, struct store_cert_meta *out_meta, uint8_t *der, size_t cap,
                   size_t *out_len, const uint8_t serial[STORE_SERIAL_LEN]);

/* store_cert_fn is called once per certificate; the pointers are valid only during the call; a
 * non-zero return stops the iteration and is returned. */
typedef int (*store_cert_fn)(void *ctx, const struct store_cert_meta *meta, const uint8_t *der,
                             size_t der_len);

/* store_cert_foreach_by_uri calls fn for each certificate issued to `uri`, oldest first (none
 * for an empty or over-long `uri`). Returns 0, fn's non-zero return, -EPROTO (index state of
 * another version), -EBUSY (no reader slot), -ENOMEM or -EIO. */
int store_cert_foreach_by_uri(struct store *st, const char *uri, store_cert_fn fn, void *ctx);

/* store_cert_foreach_newest calls fn for each stored certificate, newest first (commit order,
 * which issue times follow), in one read transaction: fn's non-zero return stops the walk (the
 * caller's bound: certprovctl cert list --limit, --since). Returns 0, fn's non-zero return, -EBUSY
 * (no reader slot), -ENOMEM or -EIO. */
int store_cert_foreach_newest(struct store *st, store_cert_fn fn, void *ctx);

/* store_cert_recent_by_uri counts the certificates issued to `uri` at or after since_s (their
 * issued_at_s), newest first, up to `max` (>= 1): *out_num is the count (at most max) and
 * *out_last_s the issue time of the last one counted, the max-th newest when *out_num == max (0
 * when none). Certificates are stored in commit order and their issue times follow it, so the
 * walk stops at the user's first certificate issued before since_s (a clock stepped back can
 * hide older ones behind it). It reads at most max + 1 of the user's records (and, from a hash
 * chain in memory, about one record of another user), plus, once per call, the certificates
 * committed since the last call (by any process) and, once per index_tail_max certificates, the
 * tail: the per-user rate limit can ask it for every enrollment. Returns 0 (also for an empty
 * or over-long `uri`: none), -EPROTO (index state of another version), -EBUSY (no reader slot),
 * -ENOMEM or -EIO. Thread-safe (calls are serialized on the handle). */
int store_cert_recent_by_uri(struct store *st, const char *uri, int64_t since_s, uint32_t max,
                             uint32_t *out_num, int64_t *out_last_s);

/* store_cert_count sets *out to the number of stored certificates. Returns 0, -EBUSY (no reader
 * slot), -ENOMEM or -EIO. */
int store_cert_count(struct store *st, uint64_t *out);

/* ---- outbox (drained by the publisher) ---- */

/* store_outbox_fn is called once per outbox entry; see store_cert_fn for the rules. */
typedef int (*store_outbox_fn)(void *ctx, const struct store_outbox_entry *entry);

/* store_outbox_foreach calls fn for each waiting or parked entry of `pool` (NULL: every pool),
 * pool by pool in name order, oldest first within a pool, leaving out the entries of commits
 * that are not durable yet (defer_meta_sync). A pool without entries (or unknown) is empty.
 * Returns 0, fn's non-zero return, -EBUSY (no reader slot), -ENOMEM or -EIO. */
int store_outbox_foreach(struct store *st, const char *pool, store_outbox_fn fn, void *ctx);

/* store_outbox_depth sets *out_depth to the number of entries of `pool` (NULL: all pools) and
 * *out_oldest_ms to the enqueue time of the oldest (0 if empty). Returns 0, -EBUSY (no reader
 * slot), -ENOMEM or -EIO. */
int store_outbox_depth(struct store *st, const char *pool, uint64_t *out_depth,
                       int64_t *out_oldest_ms);

/* store_outbox_retry makes every entry of `pool` (NULL: all) due now and unparks parked ones.
 * Sets *out_num to how many entries it changed. Returns 0, -EROFS, -ENOSPC, -ENOMEM or -EIO. */
int store_outbox_retry(struct store *st, const char *pool, uint64_t *out_num);

/* store_outbox_fail records a failed publication attempt of the entry (`pool`, `seq`): attempts
 * is incremented, next_attempt_ms and parked are set, and last_error is replaced by `error`
 * (NUL-terminated, at most STORE_ERROR_MAX bytes; never truncated). Added for the publisher.
 * Returns 0, -ENOENT (no such entry), -EINVAL (`error` too long), -EROFS (read-only store),
 * -ENOSPC, -ENOMEM or -EIO. */
int store_outbox_fail(struct store *st, const char *pool, uint64_t seq, int64_t next_attempt_ms,
                      bool parked, const char *error);

/* store_outbox_remove deletes the entry (`pool`, `seq`) once the pool store has acknowledged the
 * certificate (invariant 2). Added for the publisher. Returns 0, -ENOENT (no such entry), -EROFS
 * (read-only store), -ENOSPC, -ENOMEM or -EIO. */
int store_outbox_remove(struct store *st, const char *pool, uint64_t seq);

/* store_outbox_remove_many deletes the entries (`pool`, seqs[i]) for i < num in ONE synced
 * transaction (the publisher's acknowledged batch); entries already gone are skipped. Returns 0,
 * -ENOENT (num > 0 and `pool` never had an entry), -EINVAL (num > STORE_PUBLISH_BATCH_MAX),
 * -EROFS, -ENOSPC, -ENOMEM or -EIO. */
int store_outbox_remove_many(struct store *st, const char *pool, const uint64_t *seqs, size_t num);

/* ---- store space ---- */

/* store_space_get sets *out_used to the bytes of the map in use and *out_map to the map size.
 * Returns 0 or -EIO. */
int store_space_get(struct store *st, uint64_t *out_used, uint64_t *out_map);

/* ---- pool state (written by the publisher, read by certprovctl pool status) ---- */

struct store_pool_state {
    bool up;                 /* the last attempt reached the pool store */
    int64_t since_ms;        /* Unix ms since when `up` has had its value; 0 = never tried */
    int64_t last_success_ms; /* Unix ms of the last acknowledged batch; 0 = none */
    int64_t last_error_ms;   /* Unix ms of the last failure; 0 = none */
    char last_error[STORE_ERROR_MAX + 1];
};

/* store_pool_state_put replaces the durable state record of `pool` in its own synced
 * transaction. Returns 0, -EINVAL (bad pool name or over-long error), -EROFS, -ENOSPC, -ENOMEM or
 * -EIO. */
int store_pool_state_put(struct store *st, const char *pool, const struct store_pool_state *state);

/* store_pool_state_get copies the state record of `pool` into *out. Returns 0, -ENOENT (never
 * written, an empty or over-long name, or a read-only store created before pool states existed),
 * -EBUSY (no reader slot), -ENOMEM or -EIO. */
int store_pool_state_get(struct store *st, struct store_pool_state *out, const char *pool);

/* ---- the publisher: one thread per home pool drains its outbox into the pool store ----
 *
 * Each pool has a driver: "embedded" (an LMDB environment per pool at <embedded_dir>/<NAME>/,
 * table `user_certificates` in issue order, pool_embedded.c) or a libpq connection string
 * (PostgreSQL, the table of README, Home pool stores, created when missing; pipeline mode; connect
 * and statement timeouts). A pool's thread publishes the oldest waiting entries in batches of at
 * most `batch_max`; an entry leaves the outbox only after the pool store acknowledged it
 * (store_outbox_remove_many, synced), so a crash causes at most a replay, which the stores ignore
 * (PostgreSQL: idempotent by serial; embedded: by the certificate's place in the issue order,
 * which never changes: invariant 2). A failed batch is retried after store_backoff_ms of the head
 * entry's attempts; the due time is kept on the head entry, so `certprovctl outbox retry` (another
 * process) takes effect within `poll_ms`. A permanent error for one certificate (SQLSTATE class 22
 * or 23) parks that entry. One log line when a pool goes down ("data store unavailable pool=NAME
 * cause=...") and one when its backlog has drained ("data store available pool=NAME outage_s=...
 * drained=..."). */

#define STORE_PUBLISH_BATCH_MAX 256
#define STORE_LAG_BUCKETS 14
#define STORE_CONNINFO_MAX 1023

/* store_lag_bounds_ms are the upper bounds (ms) of the lag and latency histogram buckets. */
extern const uint64_t store_lag_bounds_ms[STORE_LAG_BUCKETS];

struct store_publisher;

struct store_pool_spec {
    const char *name;     /* the pool name (outbox key) */
    const char *conninfo; /* "embedded" or a libpq connection string */
};

/* store_publish_fault_fn is a fault-injection hook for tests: called for each certificate before
 * it is published; return 0 to publish, -EINVAL for a permanent error or -EAGAIN for a transient
 * one (the message goes to `err`, cap bytes). */
typedef int (*store_publish_fault_fn)(void *ctx, const char *pool,
                                      const uint8_t serial[STORE_SERIAL_LEN], char *err,
                                      size_t cap);

struct store_publisher_options {
    const char *issued_by;        /* the appliance's name ([server] name); copied */
    const char *embedded_dir;     /* parent directory of embedded pool stores; copied */
    uint32_t batch_max;           /* certificates per round trip; 0 = STORE_PUBLISH_BATCH_MAX */
    uint32_t backoff_min_ms;      /* first retry ceiling; 0 = 1000 */
    uint32_t backoff_max_ms;      /* largest retry ceiling; 0 = 300000 */
    uint32_t poll_ms;             /* longest sleep between looks at the outbox; 0 = 1000 */
    uint32_t coalesce_ms;         /* after a partial batch, gather this long before the next
                                   * (fewer synced commits under load); 0 = 25 */
    store_publish_fault_fn fault; /* NULL in production */
    void *fault_ctx;
};

/* store_pool_stats is a snapshot of one pool's publisher. */
struct store_pool_stats {
    struct store_pool_state state;
    uint64_t depth;                              /* outbox entries, parked included */
    int64_t oldest_ms;                           /* enqueue time of the oldest entry; 0 = empty */
    uint64_t published;                          /* certificates acknowledged since start */
    uint64_t failures;                           /* failed batches since start */
    uint64_t parked;                             /* entries parked since start */
    uint64_t lag_buckets[STORE_LAG_BUCKETS + 1]; /* enqueue -> ack, ms; the last is +Inf */
    uint64_t lag_sum_ms;
    uint64_t lag_count;
    uint64_t latency_buckets[STORE_LAG_BUCKETS + 1]; /* batch round trip, ms */
    uint64_t latency_sum_ms;
    uint64_t latency_count;
};

/* store_publisher_start starts one thread per pool of `pools` (num_pools <= STORE_POOLS_MAX,
 * names unique). `st` is borrowed and must outlive the publisher. Returns 0 (*out owned: stop it
 * with store_publisher_stop), -EINVAL (bad options or pool), -ENOMEM or -EAGAIN (no thread). */
int store_publisher_start(struct store_publisher **out, struct store *st,
                          const struct store_pool_spec *pools, size_t num_pools,
                          const struct store_publisher_options *opt);

/* store_publisher_wake tells the thread of `pool` (NULL: every pool) that new entries are
 * waiting. Cheap and non-blocking apart from a short mutex; any thread. NULL pub is a no-op. */
void store_publisher_wake(struct store_publisher *pub, const char *pool);

/* store_publisher_stats copies a snapshot of `pool` into *out. Returns 0 or -ENOENT (not a pool
 * of this publisher). Thread-safe. */
int store_publisher_stats(struct store_publisher *pub, struct store_pool_stats *out,
                          const char *pool);

/* store_publisher_stop stops every thread (an attempt in flight finishes or times out first) and
 * frees the publisher. NULL is a no-op. */
void store_publisher_stop(struct store_publisher *pub);

/* store_backoff_ms is the delay before retry number `attempts` (>= 1): uniform in
 * [min(100, ceiling), ceiling] with ceiling = min(max_ms, min_ms * 2^(attempts-1)), drawn with
 * `rnd`. Pure. */
uint64_t store_backoff_ms(uint32_t attempts, uint32_t min_ms, uint32_t max_ms, uint64_t rnd);

/* store_pool_check tries to reach the pool store `conninfo` once (PostgreSQL: connect with a
 * 2 s timeout; embedded: always reachable). Returns 0, or -EHOSTUNREACH with the reason in `err`
 * (cap bytes, NUL-terminated). Blocking: not for ring threads. */
int store_pool_check(const char *conninfo, char *err, size_t cap);

/* store_embedded_count sets *out to the number of certificates in the embedded pool store of
 * `pool` under `dir`. Returns 0, -ENOENT (no such store), -EINVAL (path too long), -EPROTO (the
 * store has the layout of an earlier version), -EACCES, -EBUSY (locked by another process, or
 * no reader slot), -ENOMEM or -EIO. LMDB's text is not logged. */
int store_embedded_count(const char *dir, const char *pool, uint64_t *out);

/* store_embedded_get reads the certificate `serial_hex` (upper-case, no leading zeros) from the
 * embedded pool store: metadata into *out_meta (serial and seq zero), issued_by into `issued_by`
 * (cap bytes) and, when out_published_s is not NULL, the time it was published into it. Returns
 * 0, -ENOENT (no such store or certificate), or one of the other codes of store_embedded_count. */
int store_embedded_get(const char *dir, const char *pool, const char *serial_hex,
                       struct store_cert_meta *out_meta, char *issued_by, size_t cap,
                       int64_t *out_published_s);

/* ---- revocation (revoke.c) ----
 *
 * A revocation is a record in the named database `revoked` (serial -> time, reason, the
 * certificate's seq), written in ONE synced transaction with an outbox entry (the certificate's
 * pool and seq) so that the publisher makes the pool store's row of that certificate equal to the
 * replica's again (revoked_at and revocation_reason; a lifted certificateHold clears them). An
 * entry already queued for the certificate is kept and re-armed (its enqueue time moves on, so
 * that a publication in flight that read the row before the revocation does not remove it). Users
 * are disabled in the database `disabled` (URI -> time), so the user record keeps its layout.
 * Every revoke, unrevoke, disable and enable bumps a generation counter (meta "revgen"): another
 * process (certprovd) notices a change with one read (store_revoke_generation). */

/* RFC 5280 §5.3.1 CRLReason codes the appliance records (removeFromCRL 8 only on the wire). */
#define STORE_REASON_UNSPECIFIED 0
#define STORE_REASON_KEY_COMPROMISE 1
#define STORE_REASON_AFFILIATION_CHANGED 3
#define STORE_REASON_SUPERSEDED 4
#define STORE_REASON_CESSATION_OF_OPERATION 5
#define STORE_REASON_CERTIFICATE_HOLD 6
#define STORE_REVOKE_USER_ROUND_MAX 4096u /* certificates revoked per transaction of a user's */

struct store_revocation {
    uint8_t serial[STORE_SERIAL_LEN];
    int64_t revoked_at_s; /* Unix seconds */
    uint8_t reason;       /* STORE_REASON_* */
    uint64_t seq;         /* the certificate's seq */
    int64_t not_after_s;  /* the certificate's, for the CRL (kept until it expires) */
};

/* store_revoke_reason_name returns the RFC 5280 name of `reason` ("keyCompromise", ...), or NULL
 * for a code the appliance does not record. Pure. */
const char *store_revoke_reason_name(uint8_t reason);

/* store_revoke_reason_parse sets *out to the code of the RFC 5280 name `name` (case-sensitive;
 * "unspecified" too). Returns 0 or -EINVAL. Pure. */
int store_revoke_reason_parse(uint8_t *out, const char *name);

/* store_cert_revoke revokes the certificate `serial` at now_s for `reason` (a STORE_REASON_*):
 * the record, the outbox entry and the generation in one synced transaction. A certificate on
 * certificateHold may be revoked again with another reason (RFC 5280 §5.3.1: the hold becomes
 * final; the time stays the hold's). Sets *out (may be NULL) to the record as stored. Returns 0,
 * -ENOENT (no certificate with that serial), -EALREADY (already revoked: *out is the existing
 * record), -EINVAL (unknown reason), -EROFS, -ENOSPC, -EPROTO, -EBUSY, -ENOMEM or -EIO. */
int store_cert_revoke(struct store *st, struct store_revocation *out,
                      const uint8_t serial[STORE_SERIAL_LEN], uint8_t reason, int64_t now_s);

/* store_cert_unrevoke lifts the certificateHold of `serial` (record removed, outbox entry and
 * generation as for store_cert_revoke). Returns 0, -ENOENT (not revoked: also no such
 * certificate), -EPERM (revoked for another reason: final), -EROFS, -ENOSPC, -EPROTO, -EBUSY,
 * -ENOMEM or -EIO. */
int store_cert_unrevoke(struct store *st, const uint8_t serial[STORE_SERIAL_LEN]);

/* store_cert_revocation_get copies the revocation of `serial` into *out. One read transaction and
 * one lookup in a tree of the revoked certificates only (a few pages, cached): cheap enough for
 * every renewal. Returns 0, -ENOENT (not revoked, or an older store opened read-only), -EBUSY,
 * -ENOMEM or -EIO. */
int store_cert_revocation_get(struct store *st, struct store_revocation *out,
                              const uint8_t serial[STORE_SERIAL_LEN]);

/* store_revocation_fn is called once per revocation; see store_cert_fn for the rules. */
typedef int (*store_revocation_fn)(void *ctx, const struct store_revocation *rev);

/* store_revoked_foreach calls fn for every revocation, by serial, in one snapshot, and sets
 * *out_generation (may be NULL) to that snapshot's generation. Returns 0, fn's non-zero return,
 * -EBUSY, -ENOMEM or -EIO. */
int store_revoked_foreach(struct store *st, uint64_t *out_generation, store_revocation_fn fn,
                          void *ctx);

/* store_user_revoke_certs revokes every certificate of `uri` that is not expired at now_s and not
 * revoked yet, in transactions of at most STORE_REVOKE_USER_ROUND_MAX certificates each (each
 * as store_cert_revoke: durable before the next starts). *out_num (may be NULL) counts the
 * certificates revoked, also when a later transaction failed. Returns 0 (also for a URI without
 * certificates), -EINVAL (unknown reason), or an error of store_cert_revoke. */
int store_user_revoke_certs(struct store *st, uint32_t *out_num, const char *uri, uint8_t reason,
                            int64_t now_s);

/* store_revocation_replica applies one revocation of the fleet directory in its own synced
 * transaction (certprovctl with [directory]; the directory thread does the same per batch): a
 * certificate of this appliance is revoked as by store_cert_revoke (at revoked_at_s), one this
 * appliance does not hold is recorded by serial (a renewal with it is refused here; it is in no
 * CRL of this appliance; store_cert_revocation_get returns it with seq 0); `lifted` lifts a
 * certificateHold. Already revoked (or not revoked, for lifted): 0, nothing changed. Returns 0,
 * -EINVAL (unknown reason) or a store error. */
int store_revocation_replica(struct store *st, const uint8_t serial[STORE_SERIAL_LEN],
                             uint8_t reason, int64_t revoked_at_s, bool lifted);

/* store_user_revoked_serials copies the serials of `uri`'s unexpired (at now_s) revoked
 * certificates, up to `cap`, into serials[0..*out_num). Returns 0 or a store error. */
int store_user_revoked_serials(struct store *st, uint8_t (*serials)[STORE_SERIAL_LEN], size_t cap,
                               size_t *out_num, const char *uri, int64_t now_s);

/* store_user_disable marks `uri` disabled since now_s (no sign-in, no renewal); a user already
 * disabled keeps its time. The user need not exist (user del leaves no trace: it enables). Returns
 * 0, -EINVAL (empty or over-long URI), -EROFS, -ENOSPC, -ENOMEM or -EIO. */
int store_user_disable(struct store *st, const char *uri, int64_t now_s);

/* store_user_enable removes the mark. Returns 0, -ENOENT (not disabled), -EINVAL, -EROFS,
 * -ENOSPC, -ENOMEM or -EIO. */
int store_user_enable(struct store *st, const char *uri);

/* store_user_disabled sets *out_since_s to the time `uri` was disabled, 0 when it is not. One read
 * transaction and one lookup. Returns 0, -EBUSY, -ENOMEM or -EIO. */
int store_user_disabled(struct store *st, int64_t *out_since_s, const char *uri);

/* store_revoke_generation sets *out to the revocation generation (0 for a store never revoked).
 * Returns 0, -EBUSY, -ENOMEM or -EIO. */
int store_revoke_generation(struct store *st, uint64_t *out);

/* store_embedded_revocation reads the revocation columns of the row `serial_hex` of the embedded
 * pool store: *out_revoked_at_s (0: not revoked) and *out_reason (STORE_REASON_*). Returns as
 * store_embedded_get. */
int store_embedded_revocation(const char *dir, const char *pool, const char *serial_hex,
                              int64_t *out_revoked_at_s, uint8_t *out_reason);

/* ---- The fleet directory (README, The fleet directory): users kept in PostgreSQL, this store
 * their replica. dirpg.c: the SQL, blocking (certprovctl, certprovd before it starts);
 * directory.c: certprovd's directory thread. ---- */

#define STORE_PIN_KEY_ID_LEN 8 /* bytes of the PIN key's id (signer_pin_key_id) */
#define STORE_PIN_KEY_ID_HEX (2 * STORE_PIN_KEY_ID_LEN + 1)

/* One blocking connection to the directory (certprovctl). Not thread-safe. */
struct store_dir;

/* store_dir_connect connects to `conninfo` (postgresql://...). Returns 0, -EHOSTUNREACH (the
 * reason in `err`, cap bytes) or -ENOMEM. */
int store_dir_connect(struct store_dir **out, const char *conninfo, char *err, size_t cap);

/* store_dir_close disconnects and frees. NULL is a no-op. */
void store_dir_close(struct store_dir *d);

/* store_dir_init creates the directory's tables when missing and records `key_id` (hex) as the
 * fleet's PIN key id, in one transaction. Idempotent. Returns 0, -EKEYREJECTED (another key's id
 * is recorded) or -EIO, the reason in `err`. */
int store_dir_init(struct store_dir *d, const char *key_id, char *err, size_t cap);

/* store_dir_key_check compares `key_id` with the directory's. Returns 0, -EKEYREJECTED (another
 * key: err says both ids and what to do), -ENOENT (not initialized) or -EIO. */
int store_dir_key_check(struct store_dir *d, const char *key_id, char *err, size_t cap);

/* store_dir_users_put writes users[0..num) in one transaction (COPY into a temporary table, then
 * one INSERT): each gets a new change seq; replicas are told (NOTIFY certprov_directory). Without
 * `replace`, a live user of the same URI refuses the whole (-EEXIST); with it (a new PIN) it is
 * overwritten. Returns 0, -EEXIST (a URI, ignoring case), -ENOTUNIQ (an extension),
 * -EKEYREJECTED, -ENOENT (not initialized) or -EIO, the reason in `err`. */
int store_dir_users_put(struct store_dir *d, const struct store_user *users, size_t num,
                        const char *key_id, bool replace, char *err, size_t cap);

/* store_dir_user_del deletes `uri` (a tombstone row with a new seq). Returns 0, -ENOENT (no such
 * live user, or not initialized) or -EIO. */
int store_dir_user_del(struct store_dir *d, const char *uri, char *err, size_t cap);

/* store_dir_user_disable marks `uri` disabled since since_s on every appliance, or enabled with
 * since_s = 0 (a new seq). Returns 0, -ENOENT (no such live user, or not initialized) or -EIO. */
int store_dir_user_disable(struct store_dir *d, const char *uri, int64_t since_s, char *err,
                           size_t cap);

/* store_dir_revocations_put writes the revocations of serials[0..num) (reason, revoked_at_s) to
 * certprov_revocations in one transaction, or with `lifted` lifts their certificateHold. A row that
 * is already so is left alone; *out_changed (may be NULL) counts the rows written. Returns 0,
 * -ENOENT (not initialized) or -EIO, with the text in err. */
int store_dir_revocations_put(struct store_dir *d, const uint8_t (*serials)[STORE_SERIAL_LEN],
                              size_t num, uint8_t reason, int64_t revoked_at_s, bool lifted,
                              size_t *out_changed, char *err, size_t cap);

/* store_dir_user_revoke revokes (reason, revoked_at_s) in certprov_revocations, in one
 * transaction, every certificate of `uri` that certprov_serials lists as issued by another
 * appliance than `except_appliance`; their appliances revoke them when their directory threads
 * apply the rows, like any revocation by serial. A serial shipped after this ran is not reached
 * (the index is written asynchronously, within about a second of the issue). *out_changed (may be
 * NULL) counts the rows written. Returns 0, -EINVAL, -ENOENT (not initialized) or -EIO. */
int store_dir_user_revoke(struct store_dir *d, const char *uri, const char *except_appliance,
                          uint8_t reason, int64_t revoked_at_s, size_t *out_changed, char *err,
                          size_t cap);

/* store_dir_status counts the live users and reads the highest change seq. Returns 0, -ENOENT or
 * -EIO. */
int store_dir_status(struct store_dir *d, uint64_t *out_users, uint64_t *out_seq, char *err,
                     size_t cap);

/* certprovd's directory thread ("cp-directory"). */
struct store_directory;

struct store_directory_options {
    const char *conninfo;  /* postgresql://...; copied */
    const char *key_id;    /* this appliance's PIN key id (hex); copied */
    const char *appliance; /* this appliance's name, written with its lockout rows; copied */
    uint32_t poll_ms;      /* polling fallback besides LISTEN; 0 = 5000 */
    uint32_t window_s;     /* [pin] window_s: lockout windows begun less than this apart overlap
                            * (their counts merge by maximum); 0: only the same window does */
    uint32_t batch_max;    /* rows per LMDB transaction; 0 = 10000 */
    /* The fleet's issuing CAs (certprov_cas): this appliance's CA certificate (DER, copied; NULL:
     * none registered) and its id (the SHA-256 of the DER in hex) are registered on every
     * connection (idempotent); the thread keeps the set (at most STORE_DIRECTORY_CAS_MAX, this
     * appliance's first) and calls cas_changed(cas_ctx, ders, lens, num) from the thread
     * whenever it differs from the last one passed (also at the first pull). */
    const uint8_t *ca_der;
    size_t ca_der_len;
    const char *ca_id;
    void (*cas_changed)(void *ctx, const uint8_t *const *ders, const size_t *lens, size_t num);
    void *cas_ctx;
};
#define STORE_DIRECTORY_CAS_MAX 64u
#define STORE_DIRECTORY_CA_DER_MAX 16384u

struct store_directory_stats {
    bool up;                  /* connected, key accepted, the last pull succeeded */
    bool loaded;              /* the replica holds a complete load (now or from an earlier run) */
    bool key_refused;         /* the directory's PIN key id is not this appliance's */
    uint64_t seq;             /* the last change seq applied to the replica */
    uint64_t applied;         /* rows applied since start */
    uint64_t conflicts;       /* rows the replica refused (a local user clashes): logged */
    uint64_t lockout_seq;     /* the last lockout change applied */
    uint64_t lockout_shipped; /* lockout notes written to the directory */
    uint64_t lockout_dropped; /* lockout notes dropped: the queue was full */
    uint64_t revocation_seq;  /* the last revocation change applied */
    uint64_t revocations_applied; /* revocation rows applied since start */
    uint32_t fleet_cas;           /* issuing CAs in the set (this appliance's included) */
    uint64_t serials_shipped;     /* issued serials written to certprov_serials */
    uint64_t serials_dropped;     /* issued serials not shipped: the queue was full */
    uint64_t serial_clashes;      /* issued serials another appliance had issued: logged */
    uint64_t cas_dropped;         /* rows of certprov_cas left out: over the bound or too large */
    int64_t current_ms; /* realtime: when the replica was last known to hold every change */
    char error[STORE_ERROR_MAX + 1]; /* the last failure, "" if none */
};

/* store_directory_start starts the directory thread over `st` (borrowed: outlives the thread):
 * the first run loads every user, later runs the changes after the seq kept in the replica (meta
 * "dirseq"); woken by LISTEN/NOTIFY, polling every poll_ms. Never blocks a caller on
 * PostgreSQL. Returns 0, -EINVAL, -ENOMEM or a negative errno of the thread's start. */
int store_directory_start(struct store_directory **out, struct store *st,
                          const struct store_directory_options *opt);

/* store_directory_stats copies the thread's state. Thread-safe (a mutex held for the copy). */
void store_directory_stats(struct store_directory *d, struct store_directory_stats *out);

/* store_directory_lockout_note queues the lockout state the writer just committed for `uri`,
 * to be shipped to the directory by the directory thread (never on the answer's path): a copy
 * under a mutex and a wake-up, nothing else. The queue holds STORE_DIRECTORY_NOTES_MAX entries; a
 * note that finds it full is dropped and counted (lockout_dropped). NULL `d` is a no-op.
 * Thread-safe. */
#define STORE_DIRECTORY_NOTES_MAX 4096u
void store_directory_lockout_note(struct store_directory *d, const char *uri,
                                  const struct store_lockout *l);

/* store_directory_serials_note queues the serials of items[0..num) (the items of a batch
 * store_batch_commit stored: it returned 0, and its counters are cleared, not its items) for the
 * fleet-wide serial index (certprov_serials, a unique index): shipped by the directory thread,
 * never on the answer's path; a serial another appliance issued is logged and counted
 * (serial_clashes). The queue holds STORE_DIRECTORY_SERIALS_MAX; what finds it full is dropped and
 * counted. NULL `d` is a no-op. Thread-safe. */
#define STORE_DIRECTORY_SERIALS_MAX 65536u
void store_directory_serials_note(struct store_directory *d, const struct store_batch_item *items,
                                  size_t num);

/* store_dir_lockout_reset clears `uri`'s lockout on every appliance (certprovctl user unlock):
 * a reset row with a new seq, written as `appliance`'s (the one whose replica the command cleared
 * itself: its directory thread does not apply the row again, which would clear the failures it
 * judged since). Returns 0, -ENOENT (not initialized) or -EIO. */
int store_dir_lockout_reset(struct store_dir *d, const char *uri, const char *appliance, char *err,
                            size_t cap);

/* store_directory_stop stops and joins the thread (a libpq call in flight is bounded by the
 * connection's timeouts) and frees. NULL is a no-op. */
void store_directory_stop(struct store_directory *d);

#endif
