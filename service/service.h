/* service: the appliance's request path, what certprovd runs on the io_uring engine.
 *
 * It owns the routes (CertProv SOAP, EST, the CA chain, /healthz, /readyz, /metrics), the
 * sign-in and lockout decisions, the per-ring batch, the group-commit writer thread, readiness,
 * metrics, the per-request log line and the configuration of the whole appliance. The domain
 * (CSR intake, identity, profile, CA, PIN verifiers, the SOAP and EST codecs) is signer/'s; the
 * engine is ioring/'s, the replica and the publisher store/'s, the CA key hsm/'s.
 *
 * One enrollment: on its ring thread the request is parsed, the PIN checked against every user
 * of the login (read-only LMDB lookups and a fixed number of HMACs whatever the number matched)
 * and, for a user whose committed lockout state lets it in, the CSR checked. At the end of each
 * ring loop turn (service_turn_end) the oldest requests the ring gathered, a bounded slice, are
 * signed in one hsm_key_sign_batch call and queued to the writer; the ring sends the answers
 * that became durable before it signs the next slice. The writer judges every sign-in in queue
 * order against the pending lockout state (the one decision that counts: a burst of guesses gets
 * no more than the window's failures judged), commits all waiting groups (certificates, outbox
 * entries, lockout updates) in one LMDB transaction and answers them only once it is durable
 * (durable before visible); a failed sign-in is answered after the record of its failure is
 * durable too, an unknown number's included, so that it costs what a wrong PIN costs. Every
 * queue is bounded by the per-ring item slots: a ring without a free slot answers 503
 * Overloaded with Retry-After.
 *
 * Errors on the wire: each refusal is an HTTP status, an X-Ms-diagnostics header and, for SOAP,
 * an ErrorInfo body with its Code (enum signer_code); EST errors are text/plain "CODE: reason". */
#ifndef CERTPROV_SERVICE_H
#define CERTPROV_SERVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "signer/signer.h"
#include "store/store.h"

/* ---- configuration: the INI file of the appliance ---- */

#define SERVICE_CONFIG_ERR_MAX 256
#define SERVICE_NAME_MAX 253
#define SERVICE_ALT_NAMES_MAX (SIGNER_TLS_NAMES_MAX - 1) /* [server] alt_names: 16 */
#define SERVICE_PATH_MAX 1024
#define SERVICE_PROXY_FROM_MAX 1024 /* bytes of [server] proxy_from */

struct service_pool_config {
    char name[STORE_POOL_MAX + 1];
    char store[SERVICE_PATH_MAX]; /* "embedded" or a libpq connection string */
};

struct service_config {
    char path[SERVICE_PATH_MAX]; /* the file itself, as given */
    char dir[SERVICE_PATH_MAX];  /* its directory, absolute: relative paths are resolved here */
    char name[SERVICE_NAME_MAX + 1];
    char alt_names[SERVICE_ALT_NAMES_MAX][SERVICE_NAME_MAX + 1]; /* [server] alt_names, in order */
    uint32_t num_alt_names;
    char listen[128];
    char tls_listen[128];
    /* [server] external_base_url: the base URL clients reach ("https://certprov.example.com"),
     * named in the service metadata; "" = built from name and the listener (svc_mex_base_url) */
    char external_base_url[SIGNER_BASE_URL_MAX + 1];
    uint32_t workers;
    uint32_t max_connections;
    uint32_t max_request_bytes;
    uint32_t max_header_bytes;           /* request target, field names and values of one request */
    uint32_t max_inflight;               /* requests in flight per worker (ring) */
    uint32_t max_connections_per_client; /* default: a quarter of max_connections */
    uint32_t max_inflight_per_client;    /* per ring; default: half of max_inflight */
    uint32_t inflight_reserve;           /* per ring, for requests without a body; default 1/16 */
    uint32_t header_timeout_s;           /* slow clients: first byte to end of headers */
    uint32_t body_timeout_s;             /* end of headers to end of body */
    uint32_t idle_timeout_s;             /* idle keep-alive connection */
    bool proxy_protocol;
    char proxy_from[SERVICE_PROXY_FROM_MAX]; /* CIDR list: the peers a PROXY header is read from */
    char device_trust[SERVICE_PATH_MAX];
    uint32_t handshake_timeout_s;       /* TLS: accept to the end of the handshake */
    uint32_t max_handshakes;            /* TLS handshakes in progress, whole engine */
    char ticket_keys[SERVICE_PATH_MAX]; /* shared ticket-key file; "" = keys in memory */
    uint32_t ticket_key_rotate_h;       /* in-memory keys: rotation period, ticket lifetime */
    char ca_backend[16];                /* "soft" or "pkcs11" */
    char ca_key[SERVICE_PATH_MAX];
    char ca_module[SERVICE_PATH_MAX];
    uint32_t ca_sessions;              /* pkcs11: sessions, one signing thread (cp-hsmN) each */
    uint32_t ca_sign_timeout_ms;       /* pkcs11: a batch waits at most this to be signed */
    char store_path[SERVICE_PATH_MAX]; /* absolute: a relative one is resolved against dir */
    bool store_path_relative;          /* it was relative in the file (or the default) */
    uint64_t map_size;
    struct signer_profile profile;
    /* [profile] max_certs_per_user_per_day: online enrollments of one user in any 24 hours
     * (the writer's judgement, service/writer.c rate_limit); 0 = no limit. certprovctl cert
     * issue is not limited. */
    uint32_t user_certs_per_day_max;
    struct signer_pin_policy pin;
    size_t num_pools;
    struct service_pool_config pools[STORE_POOLS_MAX];
    /* [revocation] (README, Revocation) */
    uint32_t crl_validity_h;     /* nextUpdate - thisUpdate of the CRL, hours; default 24 */
    uint32_t crl_min_interval_s; /* rebuilds after revocations at most this often; default 10 */
    uint32_t ocsp_cache_s;       /* OCSP responses cached per serial; default 300 */
    char crl_url[SIGNER_URL_MAX + 1];  /* default http://<name>/CertProv/crl */
    char ocsp_url[SIGNER_URL_MAX + 1]; /* "" (default): no AIA in issued certificates */
    /* [webticket] (README, Web tickets) */
    uint32_t webticket_lifetime_h; /* a ticket's validity, hours; default 8 */
    uint32_t webticket_replay_max; /* (assertion, Timestamp) pairs remembered; default 1048576 */
    /* [directory] (README, The fleet directory): "" (default) = no directory, the appliance's
     * users are its own; else a libpq connection string (postgresql://...) */
    char directory[SERVICE_PATH_MAX];
    uint32_t directory_poll_ms; /* polling fallback of the directory thread; default 5000 */
};

/* service_config_defaults fills *out with the built-in defaults. */
void service_config_defaults(struct service_config *out);

#define SERVICE_CONFIG_FILE_MAX (1 << 20) /* bytes of a configuration file */

/* service_config_load reads the INI file at `path` (at most SERVICE_CONFIG_FILE_MAX bytes, no NUL
 * byte) and parses it with service_config_parse. Returns 0, -ENOMEM, the negative errno of
 * reading it (-ENOENT, -EACCES, -EISDIR, ...: "cannot open" in `err`), or -EINVAL with a message
 * naming the file, line and key in `err` (SERVICE_CONFIG_ERR_MAX bytes). */
int service_config_load(struct service_config *out, char *err, const char *path);

/* service_config_store_origin writes, for a message about the store directory, where its path
 * came from: " (the [store] path of FILE is relative to that file's directory, DIR)" when it was
 * relative, else "" (an absolute path speaks for itself). Cut to `cap` bytes (> 0). */
void service_config_store_origin(const struct service_config *cfg, char *out, size_t cap);

/* service_config_parse reads the INI text `text` (NUL-terminated: a file's contents) over the
 * defaults into *out. `path` names the file in messages, and its directory is where relative
 * paths are resolved (the current directory when it has no '/'). Unknown sections or keys, bad
 * values and impossible combinations are errors. Returns 0, -ENOMEM, -ENAMETOOLONG (`path` or
 * the current directory too long), or -EINVAL with a message naming the file, line and key in
 * `err`; *out is written only on success. Thread-safe. */
int service_config_parse(struct service_config *out, char *err, const char *path, const char *text);

/* service_config_tls_names fills out[0..*out_num) with the names of the TLS server certificate:
 * [server] name, then alt_names (borrowed from `cfg`). `out` has SIGNER_TLS_NAMES_MAX slots. */
void service_config_tls_names(const struct service_config *cfg,
                              const char *out[SIGNER_TLS_NAMES_MAX], size_t *out_num);

/* service_config_find_pool returns the pool named `name` or NULL. Borrowed from `cfg`. */
const struct service_pool_config *service_config_find_pool(const struct service_config *cfg,
                                                           const char *name);

/* ---- user import files (certprovctl user import) ----
 *
 * A CSV file of users: the header line "uri,phone,ext,pool,pin", exactly (a UTF-8 byte order mark
 * before it is skipped: spreadsheet programs write one), then one user per line: five fields
 * separated by commas, without quotes (no field may hold a comma or a quote); blank lines are
 * skipped. A line ends at its first '\r' or '\n'. The parser sees one line at a time: the caller
 * reads the lines (certprovctl: at most SERVICE_IMPORT_LINE_MAX bytes each) and owns the
 * buffer. The values are checked by certprovctl, not here. */

#define SERVICE_IMPORT_LINE_MAX 1024
#define SERVICE_IMPORT_HEADER "uri,phone,ext,pool,pin"

/* service_import_row is one user of an import file. Every field borrows from the line given to
 * service_import_row_parse; `pin` is a secret (wipe the line after use). */
struct service_import_row {
    const char *uri;
    const char *phone;
    const char *ext;
    const char *pool;
    const char *pin;
};

/* service_import_header_check checks the first line of an import file (its line end, and a UTF-8
 * byte order mark before it, allowed). Returns 0 or -EBADMSG. Thread-safe. */
int service_import_header_check(const char *line);

/* service_import_row_parse splits the data line `line` in place (its end is cut off, the commas
 * become NULs) into *out, whose fields then borrow from `line`. Returns 0; -ENODATA for a blank
 * line (nothing but spaces, tabs and its end: skip it; `line` is untouched); or -EBADMSG (a quote,
 * or not exactly five fields; `line` may be cut). On failure *out is untouched. Thread-safe. */
int service_import_row_parse(struct service_import_row *out, char *line);

/* ---- the audit log of administration (certprovctl) ----
 *
 * SERVICE_AUDIT_FILE in the store directory, append-only, one JSON object per line:
 *   {"seq":1,"time":"2026-12-05T06:40:00Z","prev":"<64 hex>","uid":0,"user":"root",
 *    "command":"user add","target":"sip:alice@example.com","outcome":"ok","detail":""}
 * `prev` is the SHA-256 (lower-case hex) of the previous line as written (without its newline),
 * 64 zeros for the first: editing or removing a line breaks the chain at the line after it, and
 * a removed line also breaks `seq`. The fixed fields come first, in this order, so that a reader
 * finds them from the start of the line whatever the strings hold. Writers serialise with
 * flock(2) on the file; each record is one write(2) followed by fdatasync. Nothing in it is a
 * secret (never a PIN). */

#define SERVICE_AUDIT_FILE "audit.log"
#define SERVICE_AUDIT_LINE_MAX 4096 /* bytes of one record, newline included */
#define SERVICE_AUDIT_FIELD_MAX                                                                    \
    512 /* bytes of a string field as written, escaped (longer: cut)                               \
         */

struct service_audit_entry {
    int64_t time_s;
    uint32_t uid;
    const char *user;    /* the operating-system user ("" if unknown) */
    const char *command; /* "user add" */
    const char *target;  /* what it acted on: a URI, a serial, a pool, a file ("" if none) */
    const char *outcome; /* "ok", "failed", ... */
    const char *detail;  /* more ("serial=..."), "" if none */
};

/* service_audit_append appends `e` to the audit log of `store_dir` (created 0600 when missing),
 * chained to its last record. Waits at most about 2 s for another writer's lock. Returns 0;
 * -EBUSY (the lock was not granted in time); -EBADMSG (the log does not end in a whole record:
 * `audit verify` says where); -ENAMETOOLONG; or a negative errno of open/read/write/fdatasync.
 * Nothing is appended on failure (a write cut short is undone with ftruncate). */
int service_audit_append(const char *store_dir, const struct service_audit_entry *e);

/* service_audit_fn is called with each record (line without its newline, NUL-terminated) and its
 * time; a non-zero return stops the walk and is returned. */
typedef int (*service_audit_fn)(void *ctx, const char *line, int64_t time_s);

/* service_audit_verify walks the audit log of `store_dir`, checking each record's form, `seq`
 * (1, 2, ...) and `prev` against the line before it, and calls `fn` (may be NULL) with each record
 * whose time is at or after since_s. Returns 0 (*out_records and out_last_hash, 65 bytes: the
 * chain's head, 64 zeros for an empty or missing log); -EBADMSG with `err` (err_cap bytes) naming
 * the first line that breaks the chain and how; fn's return; or a negative errno. */
int service_audit_verify(const char *store_dir, int64_t since_s, service_audit_fn fn, void *ctx,
                         uint64_t *out_records, char *out_last_hash, char *err, size_t err_cap);

/* ---- the enrollment service ---- */

struct ioring_engine;
struct ioring_request;
struct service;

struct service_options {
    const struct service_config *cfg; /* borrowed: outlives the service */
    struct store *st;                 /* borrowed */
    struct signer_ca *ca;             /* borrowed */
    struct signer_pin_key *pin_key;   /* borrowed */
    uint32_t rings;                   /* ring threads of the engine */
    uint32_t items_per_ring;     /* enrollments in flight per ring (the engine's max_inflight) */
    struct store_publisher *pub; /* borrowed, may be NULL: woken after each commit; readyz */
    struct store_directory *dir; /* borrowed, may be NULL ([directory] absent): readyz, metrics */
    uint32_t store_probe_ms;     /* while the store is full or unwritable, the writer tries a
                                  * write (store_probe) this often; 0 = 5000 */
};

/* service_new allocates every item slot, reads the CA certificates it serves and starts the
 * writer thread. Returns 0 (*out owned; free with service_free), -EINVAL (no rings, or
 * items_per_ring is 0 or over 4096), -ENOMEM, -E2BIG (the CA chain does not fit), or a negative
 * errno from reading the CA certificates or from pthread_create. Not thread-safe. */
int service_new(struct service **out, const struct service_options *opt);

/* service_set_engine gives the service the engine, for its statistics (metrics). Thread-safe
 * (the rings may already run). */
void service_set_engine(struct service *svc, struct ioring_engine *eng);

/* service_handle is the engine's ioring_handler_fn (ctx = the service): it answers `req` at once
 * or, for an enrollment, once its certificate is durable. Runs on the request's ring thread. */
void service_handle(void *ctx, struct ioring_request *req);

/* service_turn_end is the engine's ioring_turn_end_fn (ctx = the service): signs the oldest
 * SVC_TURN_SLICE items ring `ring` gathered and queues them to the writer; true while items are
 * left. Runs on that ring's thread. */
bool service_turn_end(void *ctx, uint32_t ring);

/* service_classify is the engine's ioring_classify_fn: the route of a refused request, so that
 * its answer has the route's format. Thread-safe. */
uint8_t service_classify(void *ctx, const char *target, size_t target_len);

/* service_canned is the engine's ioring_canned_fn: the engine's own refusals (400, 413, 414,
 * 431, 503) answered with their Code (BadRequest, TooLarge, Overloaded), the X-Ms-diagnostics
 * header and, on the SOAP route, the ErrorInfo body, written into `out` (cap bytes). Returns the
 * length of the whole response, or 0 when `status` is not one of these or it does not fit (the
 * engine then sends its plain answer). Thread-safe. */
size_t service_canned(void *ctx, char *out, size_t cap, uint16_t status, uint8_t hint, bool close,
                      uint32_t retry_after_s);

/* service_free stops the writer thread once it has answered everything queued, then frees the
 * service. Call after ioring_engine_stop and BEFORE ioring_engine_free: the writer's last
 * answers still wake the rings. NULL is a no-op. */
/* service_webticket_fleet_cas hands the fleet's issuing CAs (the directory's registry) to the
 * Web ticket checks: tickets of the other appliances' signers are then accepted (README, Web
 * tickets). Any thread; svc may be NULL (not made yet). */
void service_webticket_fleet_cas(struct service *svc, const uint8_t *const *ders,
                                 const size_t *lens, size_t num);

void service_free(struct service *svc);

#endif
