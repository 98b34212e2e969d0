/* user.c: users, their phone/extension indexes and lockout state. */
#include <errno.h>
#include <string.h>

#include "base/base.h"
#include "store/internal.h"

static bool digits_ok(const char *s, size_t from)
{
    for (size_t i = from; s[i] != '\0'; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return false;
        }
    }
    return true;
}

/* user_check validates a user given by a caller: 0 or -EINVAL. */
static int user_check(const struct store_user *u)
{
    if (!store_str_ok(u->uri, STORE_URI_MAX) || u->uri[0] == '\0' || u->uri[0] == '~') {
        return -EINVAL; /* '~': reserved for records that are no user's (STORE_UNKNOWN_KEY) */
    }
    if (!store_str_ok(u->pool, STORE_POOL_MAX) || u->pool[0] == '\0') {
        return -EINVAL;
    }
    if (!store_str_ok(u->phone, STORE_PHONE_MAX) || !store_str_ok(u->ext, STORE_EXT_MAX)) {
        return -EINVAL;
    }
    if (u->phone[0] == '\0' && u->ext[0] == '\0') {
        return -EINVAL;
    }
    /* E.164: an optional "+" and at most 15 digits; an extension is digits. */
    size_t plus = u->phone[0] == '+' ? 1 : 0;
    if (!digits_ok(u->phone, plus) || (plus == 1 && u->phone[1] == '\0')) {
        return -EINVAL;
    }
    if (strlen(u->phone) - plus > 15 || !digits_ok(u->ext, 0)) {
        return -EINVAL;
    }
    return 0;
}

static bool zero_bytes(const uint8_t *p, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (p[i] != 0) {
            return false;
        }
    }
    return true;
}

static bool user_rec_ok(const struct user_rec *r)
{
    return r->magic == STORE_MAGIC_USER && zero_bytes(r->pad0, sizeof(r->pad0)) &&
           zero_bytes(r->pad1, sizeof(r->pad1)) && store_str_ok(r->pool, STORE_POOL_MAX) &&
           r->pool[0] != '\0' && store_str_ok(r->phone, STORE_PHONE_MAX) &&
           store_str_ok(r->ext, STORE_EXT_MAX) && (r->phone[0] != '\0' || r->ext[0] != '\0');
}

static void user_to_rec(struct user_rec *r, const struct store_user *u)
{
    memset(r, 0, sizeof(*r));
    r->magic = STORE_MAGIC_USER;
    r->pin_len = u->pin_len;
    r->created_s = u->created_s;
    memcpy(r->pin_verifier, u->pin_verifier, sizeof(r->pin_verifier));
    /* user_check accepted the lengths: every copy fits. */
    int rc = base_str_copy(r->pool, sizeof(r->pool), u->pool);
    ASSERT(rc == 0);
    rc = base_str_copy(r->phone, sizeof(r->phone), u->phone);
    ASSERT(rc == 0);
    rc = base_str_copy(r->ext, sizeof(r->ext), u->ext);
    ASSERT(rc == 0);
    ASSERT(user_rec_ok(r)); /* paired with the ASSERT in user_read */
}

/* user_read decodes the users value `val` of `key` into *out (either may be NULL). */
static void user_read(struct store_user *out, struct user_rec *out_rec, const MDB_val *key,
                      const MDB_val *val)
{
    struct user_rec r;
    ASSERT(val->mv_size == sizeof(r));
    ASSERT(key->mv_size >= 1);
    ASSERT(key->mv_size <= STORE_URI_MAX);
    memcpy(&r, val->mv_data, sizeof(r));
    ASSERT(user_rec_ok(&r));
    if (out_rec != NULL) {
        *out_rec = r;
    }
    if (out == NULL) {
        return;
    }
    memset(out, 0, sizeof(*out));
    memcpy(out->uri, key->mv_data, key->mv_size);
    memcpy(out->pool, r.pool, sizeof(out->pool));
    memcpy(out->phone, r.phone, sizeof(out->phone));
    memcpy(out->ext, r.ext, sizeof(out->ext));
    memcpy(out->pin_verifier, r.pin_verifier, sizeof(out->pin_verifier));
    out->pin_len = r.pin_len;
    out->created_s = r.created_s;
}

static MDB_val phext_key(char buf[STORE_PHEXT_KEY_MAX + 1], const char *phone, const char *ext)
{
    size_t plen = strlen(phone);
    size_t elen = strlen(ext);
    ASSERT(plen <= STORE_PHONE_MAX);
    ASSERT(elen <= STORE_EXT_MAX);
    memcpy(buf, phone, plen);
    buf[plen] = '\0';
    memcpy(buf + plen + 1, ext, elen);
    MDB_val v = {.mv_size = plen + 1 + elen, .mv_data = buf};
    return v;
}

/* fold_key writes `uri` with its ASCII letters in lower case into `buf`: the key of "urifold",
 * under which URIs that the identity checks cannot tell apart meet. */
static MDB_val fold_key(char buf[STORE_URI_MAX + 1], const char *uri)
{
    size_t len = strlen(uri);
    ASSERT(len >= 1);
    ASSERT(len <= STORE_URI_MAX);
    for (size_t i = 0; i < len; i++) {
        char c = uri[i];
        buf[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
    }
    buf[len] = '\0';
    MDB_val v = {.mv_size = len, .mv_data = buf};
    return v;
}

/* pin_check is the caller's PIN rule (store_pin_same_fn) for the user being stored. */
struct pin_check {
    store_pin_same_fn fn; /* NULL: no PIN rule */
    void *ctx;
    size_t index;
};

static int refuse(struct store_user_refusal *ref, int rc, enum store_clash clash,
                  const MDB_val *other)
{
    ASSERT(other->mv_size >= 1);
    ASSERT(other->mv_size <= STORE_URI_MAX);
    ref->clash = clash;
    memcpy(ref->uri, other->mv_data, other->mv_size);
    ref->uri[other->mv_size] = '\0';
    return rc;
}

/* uri_clash refuses `uri` (-EEXIST) when a user's URI equals it ignoring ASCII case. */
static int uri_clash(struct store *st, MDB_txn *txn, struct store_user_refusal *ref,
                     const char *uri)
{
    ASSERT(st->has_urifold); /* only a read-only open lacks it, and that writes nothing */
    char buf[STORE_URI_MAX + 1];
    MDB_val key = fold_key(buf, uri);
    MDB_val other = {0};
    int rc = store_err(st, mdb_get(txn, st->urifold, &key, &other), "get_urifold");
    if (rc == 0) {
        return refuse(ref, -EEXIST, STORE_CLASH_URI, &other);
    }
    return rc == -ENOENT ? 0 : rc;
}

/* ext_clash refuses `u` (-ENOTUNIQ) when another user has its phone number and extension, or its
 * extension: sign-in by extension must find one user. */
static int ext_clash(struct store *st, MDB_txn *txn, struct store_user_refusal *ref,
                     const struct store_user *u)
{
    ASSERT(u->ext[0] != '\0');
    MDB_val other = {0};
    int rc = 0;
    if (u->phone[0] != '\0') {
        char buf[STORE_PHEXT_KEY_MAX + 1];
        MDB_val pk = phext_key(buf, u->phone, u->ext);
        rc = store_err(st, mdb_get(txn, st->phext, &pk, &other), "get_phext");
        if (rc == 0) {
            return refuse(ref, -ENOTUNIQ, STORE_CLASH_PHONE_EXT, &other);
        }
        if (rc != -ENOENT) {
            return rc;
        }
    }
    MDB_val ek = store_val_str(u->ext);
    rc = store_err(st, mdb_get(txn, st->ext, &ek, &other), "get_ext");
    if (rc == 0) {
        return refuse(ref, -ENOTUNIQ, STORE_CLASH_EXT, &other);
    }
    return rc == -ENOENT ? 0 : rc;
}

/* pin_clash asks pc->fn about every user listed under `phone` but `self` (set-pin: the user
 * itself; "" for a new user) and refuses (-ENOTUNIQ) the first whose PIN it says is the same. */
static int pin_clash(struct store *st, MDB_txn *txn, struct store_user_refusal *ref,
                     const char *phone, const char *self, const struct pin_check *pc)
{
    ASSERT(pc->fn != NULL);
    ASSERT(phone[0] != '\0');
    MDB_cursor *cur = NULL;
    int rc = store_err(st, mdb_cursor_open(txn, st->phone, &cur), "cursor_open");
    if (rc != 0) {
        return rc;
    }
    MDB_val key = store_val_str(phone);
    MDB_val uri = {0};
    rc = store_err(st, mdb_cursor_get(cur, &key, &uri, MDB_SET_KEY), "cursor_get");
    for (unsigned scanned = 0; rc == 0 && scanned < STORE_LOOKUP_SCAN_MAX; scanned++) {
        if (uri.mv_size != strlen(self) || memcmp(uri.mv_data, self, uri.mv_size) != 0) {
            MDB_val val = {0};
            rc = store_err(st, mdb_get(txn, st->users, &uri, &val), "get_user");
            ASSERT(rc != -ENOENT); /* index entries always name an existing user */
            if (rc != 0) {
                goto out;
            }
            struct store_user other;
            user_read(&other, NULL, &uri, &val);
            if (pc->fn(pc->ctx, pc->index, &other)) {
                rc = refuse(ref, -ENOTUNIQ, STORE_CLASH_PHONE_PIN, &uri);
                goto out;
            }
        }
        rc = store_err(st, mdb_cursor_get(cur, &key, &uri, MDB_NEXT_DUP), "cursor_next_dup");
    }
    if (rc == -ENOENT) {
        rc = 0; /* no (more) users of the phone number */
    }
out:
    mdb_cursor_close(cur);
    return rc;
}

/* user_clash applies the uniqueness rules of store.h to the new user `u` (nothing is written). */
static int user_clash(struct store *st, MDB_txn *txn, struct store_user_refusal *ref,
                      const struct store_user *u, const struct pin_check *pc)
{
    int rc = uri_clash(st, txn, ref, u->uri);
    if (rc == 0 && u->ext[0] != '\0') {
        rc = ext_clash(st, txn, ref, u);
    }
    if (rc == 0 && u->phone[0] != '\0' && pc->fn != NULL) {
        rc = pin_clash(st, txn, ref, u->phone, "", pc);
    }
    return rc;
}

static int user_put_new(struct store *st, MDB_txn *txn, struct store_user_refusal *ref,
                        const struct store_user *u, const struct pin_check *pc)
{
    int rc = user_check(u);
    if (rc != 0) {
        return rc;
    }
    rc = user_clash(st, txn, ref, u, pc);
    if (rc != 0) {
        return rc;
    }
    struct user_rec rec;
    user_to_rec(&rec, u);
    MDB_val key = store_val_str(u->uri);
    MDB_val val = {.mv_size = sizeof(rec), .mv_data = &rec};
    /* user_clash found no such URI and no such pair, unless a version from before "urifold"
     * added the user after it was built: then the puts still refuse. */
    rc = store_err(st, mdb_put(txn, st->users, &key, &val, MDB_NOOVERWRITE), "put_user");
    if (rc == -EEXIST) {
        MDB_val self = store_val_str(u->uri);
        return refuse(ref, -EEXIST, STORE_CLASH_URI, &self);
    }
    if (rc != 0) {
        return rc;
    }
    if (u->ext[0] != '\0') {
        char buf[STORE_PHEXT_KEY_MAX + 1];
        MDB_val pk = phext_key(buf, u->phone, u->ext);
        MDB_val other = key; /* on -EEXIST, mdb_put points it at the existing value */
        rc = store_err(st, mdb_put(txn, st->phext, &pk, &other, MDB_NOOVERWRITE), "put_phext");
        if (rc == -EEXIST) {
            return refuse(ref, -ENOTUNIQ, STORE_CLASH_PHONE_EXT, &other);
        }
        if (rc != 0) {
            return rc;
        }
    }
    if (u->phone[0] != '\0') {
        MDB_val pk = store_val_str(u->phone);
        rc = store_err(st, mdb_put(txn, st->phone, &pk, &key, 0), "put_phone");
        if (rc != 0) {
            return rc;
        }
    }
    if (u->ext[0] != '\0') {
        MDB_val ek = store_val_str(u->ext);
        rc = store_err(st, mdb_put(txn, st->ext, &ek, &key, 0), "put_ext");
        if (rc != 0) {
            return rc;
        }
    }
    char buf[STORE_URI_MAX + 1];
    MDB_val fk = fold_key(buf, u->uri);
    return store_err(st, mdb_put(txn, st->urifold, &fk, &key, 0), "put_urifold");
}

struct add_arg {
    const struct store_user *users;
    size_t num;
    struct pin_check pin;
    struct store_user_refusal *ref;
};

static int add_many_txn(struct store *st, MDB_txn *txn, void *arg)
{
    struct add_arg *a = arg;
    for (size_t i = 0; i < a->num; i++) {
        a->pin.index = i;
        int rc = user_put_new(st, txn, a->ref, &a->users[i], &a->pin);
        if (rc != 0) {
            a->ref->refused = true;
            a->ref->index = i;
            return rc;
        }
    }
    return 0;
}

int store_user_add_checked(struct store *st, struct store_user_refusal *out_refusal,
                           const struct store_user *users, size_t num, store_pin_same_fn pin_same,
                           void *ctx)
{
    store_validate(st);
    ASSERT(users != NULL || num == 0);
    struct store_user_refusal ref;
    memset(&ref, 0, sizeof(ref));
    struct add_arg a = {
        .users = users, .num = num, .pin = {.fn = pin_same, .ctx = ctx}, .ref = &ref};
    int rc = store_write(st, add_many_txn, &a);
    ASSERT(rc != 0 || !ref.refused);
    ASSERT(ref.clash == STORE_CLASH_NONE || ref.refused);
    if (out_refusal != NULL) {
        *out_refusal = ref;
    }
    store_validate(st);
    return rc;
}

int store_user_add_many(struct store *st, const struct store_user *users, size_t num,
                        size_t *out_failed)
{
    struct store_user_refusal ref;
    int rc = store_user_add_checked(st, &ref, users, num, NULL, NULL);
    if (rc != 0 && ref.refused && out_failed != NULL) {
        *out_failed = ref.index;
    }
    return rc;
}

int store_user_add(struct store *st, const struct store_user *user)
{
    ASSERT(user != NULL);
    return store_user_add_many(st, user, 1, NULL);
}

int store_user_fold_init(struct store *st, MDB_txn *txn)
{
    ASSERT(!st->read_only);
    ASSERT(st->has_urifold);
    MDB_stat fs;
    MDB_stat us;
    int rc = store_err(st, mdb_stat(txn, st->urifold, &fs), "stat_urifold");
    if (rc != 0) {
        return rc;
    }
    rc = store_err(st, mdb_stat(txn, st->users, &us), "stat_users");
    if (rc != 0 || fs.ms_entries != 0 || us.ms_entries == 0) {
        return rc; /* built already (every user has its entry), or nothing to build */
    }
    MDB_cursor *cur = NULL;
    rc = store_err(st, mdb_cursor_open(txn, st->users, &cur), "cursor_open");
    if (rc != 0) {
        return rc;
    }
    MDB_val key = {0};
    MDB_val val = {0};
    size_t n = 0;
    /* Bounded by the number of users; twins in case (allowed then) become duplicates. */
    rc = store_err(st, mdb_cursor_get(cur, &key, &val, MDB_FIRST), "cursor_first");
    while (rc == 0) {
        ASSERT(key.mv_size >= 1);
        ASSERT(key.mv_size <= STORE_URI_MAX);
        char uri[STORE_URI_MAX + 1];
        memcpy(uri, key.mv_data, key.mv_size);
        uri[key.mv_size] = '\0';
        char buf[STORE_URI_MAX + 1];
        MDB_val fk = fold_key(buf, uri);
        MDB_val uv = {.mv_size = key.mv_size, .mv_data = uri};
        rc = store_err(st, mdb_put(txn, st->urifold, &fk, &uv, 0), "put_urifold");
        if (rc != 0) {
            goto out;
        }
        n++;
        rc = store_err(st, mdb_cursor_get(cur, &key, &val, MDB_NEXT), "cursor_next");
    }
    if (rc == -ENOENT) {
        rc = 0; /* past the last user */
        ASSERT(n == us.ms_entries);
        log_info("store: uri_index_built path=%s users=%zu", st->path, n);
    }
out:
    mdb_cursor_close(cur);
    return rc;
}

int store_user_get(struct store *st, struct store_user *out, const char *uri)
{
    store_validate(st);
    ASSERT(out != NULL);
    ASSERT(uri != NULL);
    if (!store_str_ok(uri, STORE_URI_MAX) || uri[0] == '\0') {
        return -ENOENT;
    }
    MDB_txn *txn = NULL;
    int rc = store_txn_begin(st, &txn, false);
    if (rc != 0) {
        return rc;
    }
    MDB_val key = store_val_str(uri);
    MDB_val val = {0};
    rc = store_err(st, mdb_get(txn, st->users, &key, &val), "get_user");
    if (rc == 0) {
        user_read(out, NULL, &key, &val);
        ASSERT(strcmp(out->uri, uri) == 0);
    }
    mdb_txn_abort(txn);
    return rc;
}

int store_user_exists(struct store *st, MDB_txn *txn, const char *uri)
{
    ASSERT(txn != NULL);
    if (!store_str_ok(uri, STORE_URI_MAX) || uri[0] == '\0') {
        return -ENOENT;
    }
    MDB_val key = store_val_str(uri);
    MDB_val val = {0};
    int rc = store_err(st, mdb_get(txn, st->users, &key, &val), "get_user");
    if (rc == 0) {
        ASSERT(val.mv_size == sizeof(struct user_rec));
    }
    return rc;
}

static int lockout_del(struct store *st, MDB_txn *txn, MDB_val *key)
{
    int rc = store_err(st, mdb_del(txn, st->lockout, key, NULL), "del_lockout");
    return rc == -ENOENT ? 0 : rc;
}

/* urifold_del removes the case-folded entry of the user `uri`. One that is missing is no error:
 * a version from before the entries may have added the user after they were built. */
static int urifold_del(struct store *st, MDB_txn *txn, const MDB_val *uri)
{
    char text[STORE_URI_MAX + 1];
    ASSERT(uri->mv_size >= 1);
    ASSERT(uri->mv_size <= STORE_URI_MAX);
    memcpy(text, uri->mv_data, uri->mv_size);
    text[uri->mv_size] = '\0';
    char buf[STORE_URI_MAX + 1];
    MDB_val fk = fold_key(buf, text);
    MDB_val uv = *uri;
    int rc = store_err(st, mdb_del(txn, st->urifold, &fk, &uv), "del_urifold");
    return rc == -ENOENT ? 0 : rc;
}

/* user_del_txn removes the user `arg` (its URI) and its index entries inside `txn`. */
static int user_del_txn(struct store *st, MDB_txn *txn, void *arg)
{
    const char *uri = arg;
    MDB_val key = store_val_str(uri);
    MDB_val val = {0};
    struct user_rec rec;
    int rc = store_err(st, mdb_get(txn, st->users, &key, &val), "get_user");
    if (rc != 0) {
        return rc;
    }
    user_read(NULL, &rec, &key, &val);
    /* The index entries always match the user record: none is missing (-ENOENT ASSERTed). */
    rc = store_err(st, mdb_del(txn, st->users, &key, NULL), "del_user");
    if (rc != 0) {
        goto out;
    }
    if (rec.phone[0] != '\0') {
        MDB_val pk = store_val_str(rec.phone);
        rc = store_err(st, mdb_del(txn, st->phone, &pk, &key), "del_phone");
        if (rc != 0) {
            goto out;
        }
    }
    if (rec.ext[0] != '\0') {
        MDB_val ek = store_val_str(rec.ext);
        rc = store_err(st, mdb_del(txn, st->ext, &ek, &key), "del_ext");
        if (rc != 0) {
            goto out;
        }
        char buf[STORE_PHEXT_KEY_MAX + 1];
        MDB_val pk = phext_key(buf, rec.phone, rec.ext);
        rc = store_err(st, mdb_del(txn, st->phext, &pk, NULL), "del_phext");
        if (rc != 0) {
            goto out;
        }
    }
    rc = urifold_del(st, txn, &key);
    if (rc != 0) {
        goto out;
    }
    rc = lockout_del(st, txn, &key);
out:
    ASSERT(rc != -ENOENT);
    return rc;
}

int store_user_del(struct store *st, const char *uri)
{
    store_validate(st);
    ASSERT(uri != NULL);
    if (st->read_only) {
        return -EROFS;
    }
    if (!store_str_ok(uri, STORE_URI_MAX) || uri[0] == '\0') {
        return -ENOENT;
    }
    return store_write(st, user_del_txn, (void *)(uintptr_t)uri);
}

int store_user_replica_put(struct store *st, MDB_txn *txn, struct store_user_refusal *out_refusal,
                           const struct store_user *u)
{
    ASSERT(txn != NULL);
    ASSERT(u != NULL);
    struct store_lockout lk;
    int rc = store_lockout_rec_get(st, txn, &lk, u->uri);
    bool keep = rc == 0 && (lk.total_failures != 0 || lk.locked_until_s != 0 || lk.admin_locked ||
                            lk.last_refusal_s != 0);
    rc = rc != 0 ? rc : user_del_txn(st, txn, (void *)(uintptr_t)u->uri);
    if (rc != 0 && rc != -ENOENT) {
        return rc;
    }
    struct pin_check pc = {0};
    memset(out_refusal, 0, sizeof(*out_refusal));
    rc = user_put_new(st, txn, out_refusal, u, &pc);
    if (rc == 0 && keep) { /* a changed PIN or number keeps the user's lockout state */
        rc = store_lockout_rec_put(st, txn, u->uri, &lk);
    }
    return rc;
}

int store_user_replica_del(struct store *st, MDB_txn *txn, const char *uri)
{
    ASSERT(txn != NULL);
    if (!store_str_ok(uri, STORE_URI_MAX) || uri[0] == '\0') {
        return -ENOENT;
    }
    return user_del_txn(st, txn, (void *)(uintptr_t)uri);
}

struct pin_arg {
    const char *uri;
    const uint8_t *verifier;
    uint8_t pin_len;
    struct pin_check pin;
    struct store_user_refusal *ref;
};

static int set_pin_txn(struct store *st, MDB_txn *txn, void *arg)
{
    const struct pin_arg *a = arg;
    MDB_val key = store_val_str(a->uri);
    MDB_val val = {0};
    struct user_rec rec;
    int rc = store_err(st, mdb_get(txn, st->users, &key, &val), "get_user");
    if (rc != 0) {
        return rc;
    }
    user_read(NULL, &rec, &key, &val);
    if (rec.phone[0] != '\0' && a->pin.fn != NULL) {
        rc = pin_clash(st, txn, a->ref, rec.phone, a->uri, &a->pin);
        if (rc != 0) {
            a->ref->refused = true;
            return rc;
        }
    }
    memcpy(rec.pin_verifier, a->verifier, sizeof(rec.pin_verifier));
    rec.pin_len = a->pin_len;
    ASSERT(user_rec_ok(&rec));
    val.mv_size = sizeof(rec);
    val.mv_data = &rec;
    rc = store_err(st, mdb_put(txn, st->users, &key, &val, 0), "put_user");
    if (rc != 0) {
        return rc;
    }
    return lockout_del(st, txn, &key);
}

int store_user_set_pin_checked(struct store *st, struct store_user_refusal *out_refusal,
                               const char *uri, const uint8_t *verifier, uint8_t pin_len,
                               store_pin_same_fn pin_same, void *ctx)
{
    store_validate(st);
    ASSERT(uri != NULL);
    ASSERT(verifier != NULL);
    struct store_user_refusal ref;
    memset(&ref, 0, sizeof(ref));
    struct pin_arg a = {.uri = uri,
                        .verifier = verifier,
                        .pin_len = pin_len,
                        .pin = {.fn = pin_same, .ctx = ctx},
                        .ref = &ref};
    int rc = 0;
    if (st->read_only) {
        rc = -EROFS;
    } else if (!store_str_ok(uri, STORE_URI_MAX) || uri[0] == '\0') {
        rc = -ENOENT;
    } else {
        rc = store_write(st, set_pin_txn, &a);
    }
    ASSERT(rc != 0 || !ref.refused);
    if (out_refusal != NULL) {
        *out_refusal = ref;
    }
    return rc;
}

int store_user_set_pin(struct store *st, const char *uri, const uint8_t *verifier, uint8_t pin_len)
{
    return store_user_set_pin_checked(st, NULL, uri, verifier, pin_len, NULL, NULL);
}

static bool already_out(const struct store_user *out, size_t n, const MDB_val *uri)
{
    for (size_t i = 0; i < n; i++) {
        if (strlen(out[i].uri) == uri->mv_size &&
            memcmp(out[i].uri, uri->mv_data, uri->mv_size) == 0) {
            return true;
        }
    }
    return false;
}

/* lookup_index appends to out[*n..cap) the users listed under `key` in the DUPSORT `dbi`. */
static int lookup_index(struct store *st, MDB_txn *txn, MDB_dbi dbi, MDB_val key,
                        struct store_user *out, size_t cap, size_t *n)
{
    MDB_cursor *cur = NULL;
    int rc = store_err(st, mdb_cursor_open(txn, dbi, &cur), "cursor_open");
    if (rc != 0) {
        goto out;
    }
    MDB_val uri = {0};
    rc = store_err(st, mdb_cursor_get(cur, &key, &uri, MDB_SET_KEY), "cursor_get");
    for (unsigned scanned = 0; rc == 0 && *n < cap && scanned < STORE_LOOKUP_SCAN_MAX; scanned++) {
        if (!already_out(out, *n, &uri)) {
            MDB_val val = {0};
            rc = store_err(st, mdb_get(txn, st->users, &uri, &val), "get_user");
            ASSERT(rc != -ENOENT); /* index entries always name an existing user */
            if (rc != 0) {
                goto out;
            }
            user_read(&out[*n], NULL, &uri, &val);
            (*n)++;
        }
        rc = store_err(st, mdb_cursor_get(cur, &key, &uri, MDB_NEXT_DUP), "cursor_next_dup");
    }
    if (rc == -ENOENT) {
        rc = 0; /* no (more) entries under the key */
    }
out:
    if (cur != NULL) {
        mdb_cursor_close(cur);
    }
    return rc;
}

int store_user_lookup(struct store *st, struct store_user *out, size_t cap, size_t *out_num,
                      const char *phone_or_ext)
{
    store_validate(st);
    ASSERT(out != NULL || cap == 0);
    ASSERT(out_num != NULL);
    ASSERT(phone_or_ext != NULL);
    size_t n = 0;
    if (!store_str_ok(phone_or_ext, STORE_PHONE_MAX) || phone_or_ext[0] == '\0' || cap == 0) {
        *out_num = 0;
        return 0;
    }
    MDB_txn *txn = NULL;
    int rc = store_txn_begin(st, &txn, false);
    if (rc != 0) {
        goto out;
    }
    MDB_val key = store_val_str(phone_or_ext);
    rc = lookup_index(st, txn, st->phone, key, out, cap, &n);
    if (rc != 0) {
        goto out;
    }
    if (strlen(phone_or_ext) <= STORE_EXT_MAX) {
        rc = lookup_index(st, txn, st->ext, key, out, cap, &n);
        if (rc != 0) {
            goto out;
        }
    }
    ASSERT(n <= cap);
    *out_num = n;
out:
    if (txn != NULL) {
        mdb_txn_abort(txn);
    }
    return rc;
}

int store_user_foreach(struct store *st, store_user_fn fn, void *ctx)
{
    store_validate(st);
    ASSERT(fn != NULL);
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    int rc = store_txn_begin(st, &txn, false);
    if (rc != 0) {
        return rc;
    }
    rc = store_err(st, mdb_cursor_open(txn, st->users, &cur), "cursor_open");
    if (rc != 0) {
        goto out;
    }
    MDB_val key = {0};
    MDB_val val = {0};
    /* Bounded by the number of users in this snapshot. */
    rc = store_err(st, mdb_cursor_get(cur, &key, &val, MDB_FIRST), "cursor_first");
    while (rc == 0) {
        struct store_user u;
        user_read(&u, NULL, &key, &val);
        rc = fn(ctx, &u);
        if (rc != 0) {
            goto out;
        }
        rc = store_err(st, mdb_cursor_get(cur, &key, &val, MDB_NEXT), "cursor_next");
    }
    if (rc == -ENOENT) {
        rc = 0; /* past the last user */
    }
out:
    if (cur != NULL) {
        mdb_cursor_close(cur);
    }
    mdb_txn_abort(txn);
    return rc;
}

/* ---- lockout ---- */

static bool lockout_rec_ok(const struct lockout_rec *r, uint32_t magic)
{
    return r->magic == magic && r->admin_locked <= 1 && zero_bytes(r->pad, sizeof(r->pad));
}

static bool lockout_rec2_ok(const struct lockout_rec2 *r)
{
    return lockout_rec_ok(&r->base, STORE_MAGIC_LOCKOUT2) && r->client_len <= STORE_CLIENT_MAX &&
           zero_bytes(r->pad, sizeof(r->pad)) &&
           zero_bytes((const uint8_t *)r->client + r->client_len,
                      sizeof(r->client) - r->client_len);
}

int store_lockout_rec_put(struct store *st, MDB_txn *txn, const char *uri,
                          const struct store_lockout *lk)
{
    ASSERT(txn != NULL);
    ASSERT(lk != NULL);
    struct lockout_rec2 r;
    memset(&r, 0, sizeof(r));
    r.base.magic = STORE_MAGIC_LOCKOUT2;
    r.base.window_failures = lk->window_failures;
    r.base.window_start_s = lk->window_start_s;
    r.base.total_failures = lk->total_failures;
    r.base.locked_until_s = lk->locked_until_s;
    r.base.last_failure_s = lk->last_failure_s;
    r.base.admin_locked = lk->admin_locked ? 1 : 0;
    r.last_refusal_s = lk->last_refusal_s;
    r.last_refusal_code = lk->last_refusal_code;
    r.last_refusal_reason = lk->last_refusal_reason;
    size_t client_len = strnlen(lk->last_refusal_client, sizeof(lk->last_refusal_client));
    ASSERT(client_len <= STORE_CLIENT_MAX);
    r.client_len = (uint8_t)client_len;
    memcpy(r.client, lk->last_refusal_client, client_len);
    ASSERT(lockout_rec2_ok(&r)); /* paired with store_lockout_rec_get */
    MDB_val key = store_val_str(uri);
    MDB_val val = {.mv_size = sizeof(r), .mv_data = &r};
    return store_err(st, mdb_put(txn, st->lockout, &key, &val, 0), "put_lockout");
}

int store_lockout_rec_get(struct store *st, MDB_txn *txn, struct store_lockout *out,
                          const char *uri)
{
    ASSERT(txn != NULL);
    ASSERT(out != NULL);
    memset(out, 0, sizeof(*out));
    MDB_val key = store_val_str(uri);
    MDB_val val = {0};
    int rc = store_err(st, mdb_get(txn, st->lockout, &key, &val), "get_lockout");
    if (rc == 0) {
        /* LCK1 (48 bytes, older versions) or LCK2 (128 bytes, with the last refusal) */
        struct lockout_rec2 r2;
        memset(&r2, 0, sizeof(r2));
        struct lockout_rec r;
        ASSERT(val.mv_size == sizeof(r) || val.mv_size == sizeof(r2));
        if (val.mv_size == sizeof(r2)) {
            memcpy(&r2, val.mv_data, sizeof(r2));
            ASSERT(lockout_rec2_ok(&r2)); /* paired with store_lockout_rec_put */
            r = r2.base;
        } else {
            memcpy(&r, val.mv_data, sizeof(r));
            ASSERT(lockout_rec_ok(&r, STORE_MAGIC_LOCKOUT));
        }
        out->last_refusal_s = r2.last_refusal_s;
        out->last_refusal_code = r2.last_refusal_code;
        out->last_refusal_reason = r2.last_refusal_reason;
        memcpy(out->last_refusal_client, r2.client, r2.client_len);
        out->last_refusal_client[r2.client_len] = '\0';
        out->window_failures = r.window_failures;
        out->window_start_s = r.window_start_s;
        out->total_failures = r.total_failures;
        out->locked_until_s = r.locked_until_s;
        out->last_failure_s = r.last_failure_s;
        out->admin_locked = r.admin_locked == 1;
    }
    return rc == -ENOENT ? 0 : rc;
}

int store_lockout_get(struct store *st, struct store_lockout *out, const char *uri)
{
    store_validate(st);
    ASSERT(out != NULL);
    ASSERT(uri != NULL);
    memset(out, 0, sizeof(*out));
    if (!store_str_ok(uri, STORE_URI_MAX) || uri[0] == '\0') {
        return 0;
    }
    MDB_txn *txn = NULL;
    int rc = store_txn_begin(st, &txn, false);
    if (rc != 0) {
        return rc;
    }
    rc = store_lockout_rec_get(st, txn, out, uri);
    mdb_txn_abort(txn);
    return rc;
}

struct lockout_arg {
    const char *uri;
    const struct store_lockout *lockout;
};

static int lockout_put_txn(struct store *st, MDB_txn *txn, void *arg)
{
    const struct lockout_arg *a = arg;
    int rc = store_user_exists(st, txn, a->uri);
    if (rc != 0) {
        return rc;
    }
    return store_lockout_rec_put(st, txn, a->uri, a->lockout);
}

int store_lockout_put(struct store *st, const char *uri, const struct store_lockout *lockout)
{
    store_validate(st);
    ASSERT(uri != NULL);
    ASSERT(lockout != NULL);
    struct lockout_arg a = {.uri = uri, .lockout = lockout};
    return store_write(st, lockout_put_txn, &a);
}
