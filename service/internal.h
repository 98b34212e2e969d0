/* service/internal.h: shared between the files of service/. Private to service/ (and its tests).
 *
 * The files call one way only, from the top down:
 *   service.c  routes, the engine's callbacks, lifecycle
 *   webticket.c the Web Ticket Service: ports, the sign-in of a ticket request
 *   enroll.c   an enrollment on its ring: parse, sign-in, CSR checks
 *   signpool.c the signing threads of a key that blocks (PKCS#11): batch.c, then writer.c
 *   writer.c   the group-commit writer thread
 *   ticket.c   Web tickets on CertProv: issuer, replay set, ticket sign-in, the RSTR
 *   revoke.c   revocation: the renewal and sign-in refusals
 *   status.c   /readyz and /metrics
 *   batch.c    signing a batch of items
 *   item.c     item slots, svc_respond and the error answer
 *   metrics.c  counters, histograms and the per-request log line
 *   config.c   the configuration file (used by the programs, calls nothing here)
 *   import.c   the lines of a user import file (used by certprovctl, calls nothing here)
 *   audit.c    the audit log of administration (used by certprovctl, calls nothing here)
 * A file calls only files below it in this list (service.c all of them, metrics.c none). */
#ifndef CERTPROV_SERVICE_INTERNAL_H
#define CERTPROV_SERVICE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ioring/ioring.h"
#include "service/service.h"

#define SVC_ITEMS_MAX 4096         /* enrollments in flight per ring, at most */
#define SVC_TURN_SLICE 32          /* items a ring signs per loop turn (~2 ms) before its answers */
#define SVC_CANDIDATES_MAX 4       /* users sharing one phone number checked per sign-in */
#define SVC_RESPONSE_MAX 65536     /* largest response body the service builds */
#define SVC_COMMIT_TRIES_MAX 4     /* re-signs after serial clashes before giving up */
#define SVC_LOG_HOLD 32768         /* the writer's log lines of a group, written at once */
#define SVC_STORE_RETRY_AFTER_S 10 /* Retry-After of StoreUnavailable: the store needs room */
#define SVC_STORE_PROBE_MS 5000    /* while the store is full or unwritable, a probe this often */

enum svc_route {
    SVC_ROUTE_SOAP = 0,
    SVC_ROUTE_EST_ENROLL,
    SVC_ROUTE_EST_REENROLL,
    SVC_ROUTE_EST_CACERTS,
    SVC_ROUTE_CHAIN,
    SVC_ROUTE_HEALTHZ,
    SVC_ROUTE_READYZ,
    SVC_ROUTE_METRICS,
    SVC_ROUTE_CRL,
    SVC_ROUTE_OCSP,
    SVC_ROUTE_MEX,       /* GET <service>/mex or ?wsdl, POST <service>/mex (mex.c) */
    SVC_ROUTE_WEBTICKET, /* /WebTicket/WebTicketService.svc and its ports (webticket.c) */
    SVC_ROUTE_OTHER,
    SVC_ROUTE_MAX_,
};

/* Results counted per route: the error Codes, then these. */
#define SVC_RESULT_OK ((int)SIGNER_CODE_MAX_)
#define SVC_RESULT_NOT_FOUND ((int)SIGNER_CODE_MAX_ + 1)
#define SVC_RESULT_MAX_ ((int)SIGNER_CODE_MAX_ + 2)

enum svc_stage {
    SVC_STAGE_PARSE = 0,
    SVC_STAGE_AUTH,
    SVC_STAGE_VERIFY,
    SVC_STAGE_SIGN,
    SVC_STAGE_COMMIT,
    SVC_STAGE_TOTAL,
    SVC_STAGE_MAX_,
};

#define SVC_BUCKETS 14

struct svc_histogram {
    atomic_uint_fast64_t buckets[SVC_BUCKETS + 1]; /* the last one is +Inf */
    atomic_uint_fast64_t count;
    atomic_uint_fast64_t sum; /* microseconds (or items for size histograms) */
    const uint64_t *bounds;   /* SVC_BUCKETS upper bounds, in the unit of sum: one per kind */
};

struct svc_metrics {
    atomic_uint_fast64_t requests[SVC_ROUTE_MAX_][SVC_RESULT_MAX_];
    struct svc_histogram stage_us[SVC_STAGE_MAX_];
    struct svc_histogram batch_size;  /* certificates signed per ring batch */
    struct svc_histogram commit_size; /* items per LMDB group commit */
    struct svc_histogram commit_us;   /* LMDB commit latency */
    atomic_uint_fast64_t pin_failures;
    atomic_uint_fast64_t lockouts;
    atomic_uint_fast64_t certificates;
    atomic_uint_fast64_t serial_clashes;
};

/* One user a sign-in could be: its phone number or extension is the login. */
struct svc_candidate {
    char uri[STORE_URI_MAX + 1];
    uint8_t pin_len; /* digits of the user's PIN (the lockout policy of short PINs) */
    bool pin_ok;     /* the PIN presented matched this user's verifier */
};

/* One enrollment in flight. Owned by its ring until queued to the writer, then by the writer
 * until it is answered and released. Reset as a whole (svc_item_reset) when it is taken.
 *
 * A sign-in is decided in two places. The ring (svc_authenticate) records every candidate and
 * whether the PIN matched it, and goes on (`proceed`: CSR checks, signing) only with a candidate
 * whose PIN matched and whose COMMITTED lockout state is open. The writer judges every sign-in
 * again, in queue order, against the group's pending lockout state; only that decision counts
 * (invariant 8): it refuses an item that proceeded (clearing `proceed` and dropping any
 * certificate) and counts the failures. */
struct svc_item {
    struct ioring_request *req;
    uint32_t ring;
    enum svc_route route;
    uint64_t start_ns;
    bool failed; /* answered with `fail` */
    enum signer_code fail;
    enum signer_reason why; /* with `fail`: its reason token; fail = signer_reason_code(why) */
    char reason[SIGNER_REASON_MAX];
    uint32_t retry_after_s; /* with `fail`: Retry-After to send; 0 = the status's default */
    bool signin;            /* credentials were presented: the writer judges the sign-in */
    bool cert_auth;         /* signed in by a client certificate (renewal over TLS) or a Web ticket:
                               no PIN, nothing for the writer to judge */
    bool ticket;            /* a Web ticket request (SVC_ROUTE_WEBTICKET): once judged, the writer
                               answers with a ticket (svc_webticket_respond), never a certificate */
    struct signer_wt_request wt; /* with `ticket`: the RST */
    enum ioring_tls_kind tls;    /* how its connection was secured (the log's tls=) */
    bool proceed; /* signed in so far: the ring's guess, cleared by the writer's refusal */
    size_t num_candidates;
    struct svc_candidate candidates[SVC_CANDIDATES_MAX];
    struct store_user user; /* the user the ring went on with (proceed) */
    char request_id[SIGNER_SOAP_REQUEST_ID_MAX + 1];
    char context[SIGNER_SOAP_CONTEXT_MAX + 1]; /* SOAP: the RST's Context, echoed on the RSTR */
    bool soap12;                               /* SOAP: answer in SOAP 1.2 */
    char device_id[STORE_DEVICE_ID_MAX + 1];
    char login[SIGNER_SOAP_USERNAME_MAX + 1]; /* the phone number or extension tried (no PIN) */
    char client[64];
    uint32_t stage_us[SVC_STAGE_MAX_]; /* this request's time in each stage (the log line) */
    uint32_t hours;
    size_t csr_der_len;
    struct signer_csr csr;   /* borrows csr_der */
    int sign_rc;             /* -1: not signed (no sign-in, or its certificate was dropped) */
    uint64_t sign_queued_ns; /* when the ring handed it to the signing pool (signpool.c) */
    uint8_t serial[SIGNER_SERIAL_LEN];
    int64_t not_before_s;
    int64_t not_after_s;
    int64_t issued_at_s;
    size_t der_len;
    /* The buffers last: svc_item_reset resets everything before them, and they are read only
     * up to csr_der_len and der_len. */
    uint8_t csr_der[SIGNER_CSR_DER_MAX];
    uint8_t der[SIGNER_CERT_DER_MAX];
};

struct svc_ring {
    pthread_mutex_t lock; /* guards free/num_free (the writer releases items) */
    bool lock_init;
    uint32_t cap;
    struct svc_item *items;
    struct svc_item **free;
    uint32_t num_free;
    struct svc_item **pending; /* ring thread only: gathered this loop turn */
    size_t num_pending;
    struct signer_issue *issue;       /* ring thread only: HSM_BATCH_MAX */
    struct signer_soap_request *soap; /* ring thread only: parse scratch */
};

/* svc_respond_fn sends one answer; the default is ioring_request_respond. Tests put their own
 * here to drive the service without a network. */
typedef void (*svc_respond_fn)(void *ctx, struct ioring_request *req, int status, const char *type,
                               const char *headers, const char *body, size_t len);

/* svc_ca_cert is one certificate of the served chain, for certprov_ca_expiry_seconds. */
struct svc_ca_cert {
    const char *role; /* "tls", "issuing", "intermediate" or "root" (static) */
    char subject[256];
    int64_t not_after_s;
};

/* The signing pool of a key that blocks (hsm_key_get_sessions > 0): one thread per session,
 * fed by the rings through a queue of item pointers. */
struct svc_signpool {
    pthread_t threads[HSM_P11_SESSIONS_MAX];
    uint32_t num_threads; /* 0: no pool, the rings sign inline (soft) */
    uint32_t num_started;
    pthread_t prober; /* cp-hsm-probe: hsm_key_probe while the key is down */
    bool prober_started;
    pthread_mutex_t mu;
    pthread_cond_t cond;  /* the signing threads wait for items */
    pthread_cond_t pcond; /* CLOCK_MONOTONIC: the prober's pace (and stop) */
    bool init;
    struct svc_item **q; /* ring buffer of q_cap = every item slot: cannot overflow */
    size_t q_cap;
    size_t q_head;
    size_t q_len;
    bool stopping;
    struct signer_issue *scratch; /* HSM_BATCH_MAX per thread */
    uint64_t timeout_ns;          /* [ca] sign_timeout_ms: queued longer, not signed */
};

struct service {
    const struct service_config *cfg;
    struct store *st;
    struct signer_ca *ca;
    struct store_directory *dir; /* borrowed, NULL without [directory] */
    struct signer_pin_key *pin_key;
    struct store_publisher *pub;         /* borrowed, may be NULL */
    _Atomic(struct ioring_engine *) eng; /* set after the rings start: read atomically */
    svc_respond_fn respond;              /* NULL: ioring_request_respond */
    void *respond_ctx;
    struct svc_ring *rings;
    uint32_t num_rings;
    const char *chain_pem; /* borrowed from the CA */
    size_t chain_pem_len;
    char cacerts[SIGNER_CHAIN_PEM_MAX];
    size_t cacerts_len;
    /* The CA chain of chain.pem as DER (into chain_set), carried beside a SOAP answer's
     * certificate (signer_soap_reply.chain); num_chain 0 when it does not fit a PKCS#7 answer */
    struct signer_cert_set *chain_set;
    struct signer_est_cert chain_certs[SIGNER_EST_CERTS_MAX - 1];
    size_t num_chain;
    struct svc_ca_cert ca_certs[SIGNER_CHAIN_MAX + 1]; /* the TLS leaf, then chain.pem's */
    size_t num_ca_certs;
    /* the writer */
    pthread_t writer;
    bool writer_started;
    pthread_mutex_t wlock;
    pthread_cond_t wcond;
    struct svc_item **queue; /* ring buffer of q_cap = every item slot: cannot overflow */
    size_t q_cap;
    size_t q_head;
    size_t q_len;
    bool stopping;
    struct store_batch *batch;    /* writer only */
    struct store_batch *lockouts; /* writer only: a failed group's lockout updates, alone */
    struct signer_issue *reissue; /* writer only: re-signs after a serial clash */
    char *scratch;                /* writer only: response bodies, SVC_RESPONSE_MAX */
    char *log_hold;               /* writer only: a group's log lines, SVC_LOG_HOLD */
    /* The store's condition, written by the writer: an enum store_fault (NONE: writable) and
     * since when (Unix s). Set by a write that met a fault; cleared only by a commit that stored
     * certificates or by a successful store_probe, so that a commit without certificates (the
     * reserve keeps room for lockout updates) does not make a full store look ready. */
    atomic_int store_fault;
    atomic_int_fast64_t store_fault_since_s;
    uint32_t probe_ms;           /* while store_fault is set, the writer probes this often */
    uint64_t probe_at_ns;        /* writer only: monotonic time of the next probe */
    atomic_uint_fast64_t queued; /* gauge: items waiting for the writer */
    struct svc_signpool pool;
    int64_t start_s; /* process_start_time_seconds: when the service was made */
    struct svc_metrics metrics;
    struct svc_mex *mex;                /* the service metadata documents (mex.c) */
    struct svc_revoke *revoke;          /* the CRL (revoke.c) */
    struct svc_ocsp *ocsp;              /* the OCSP response cache (revoke.c) */
    struct svc_wt *wt;                  /* the ticket issuer and the replay set (ticket.c) */
    char wt_url[SIGNER_WT_URL_MAX + 1]; /* X-MS-WebTicketURL ([MS-OCAUTHWS] §1.5): ticket.c */
};

/* ---- webticket.c ---- */

/* svc_webticket answers POST /WebTicket/WebTicketService.svc[/PORT] on its ring: parses the RST
 * and signs in by the port's credential (PIN: the writer judges it like every PIN sign-in; a
 * client certificate: as a renewal); anonymous and unknown ports are refused. Ring thread. */
void svc_webticket(struct service *svc, struct ioring_request *req);

/* ---- ticket.c ---- */

/* svc_webticket_init makes the ticket issuer (the issuing CA's key; none with an Ed25519 key:
 * tickets are then refused with InternalError) and the replay set ([webticket] replay_max).
 * Returns 0 or -ENOMEM. svc_webticket_free frees them (also after a failed init). */
int svc_webticket_init(struct service *svc);
void svc_webticket_free(struct service *svc);

/* svc_webticket_available tells whether tickets can be signed (not with an Ed25519 CA key). */
bool svc_webticket_available(const struct service *svc);

/* svc_webticket_signin signs a CertProv request in with the Web ticket its wsse:Security header
 * presents. Returns false when it presents none (other credentials apply); true when it does:
 * then the item is signed in (user, cert_auth, proceed) or failed (401, answered at once). Ring. */
bool svc_webticket_signin(struct service *svc, struct svc_item *it, const uint8_t *body,
                          size_t len);

/* svc_webticket_replay_add remembers the (assertion, Timestamp) pair `key` until `until_s`:
 * REPLAY_PROBE (32) slots from its hash are looked at, and a free or expired one taken. Returns 0,
 * -EEXIST (seen and still live: a replay) or -EBUSY (those slots are all live: the set is full
 * there; 503). Any ring (a mutex). */
int svc_webticket_replay_add(struct service *svc, const uint8_t key[16], int64_t until_s,
                             int64_t now);

/* svc_webticket_respond answers a judged ticket item that did not fail: signs the ticket and
 * sends the RSTR (or SigningUnavailable / InternalError). Writer thread. */
void svc_webticket_respond(struct service *svc, struct svc_item *it);

/* ---- revoke.c ---- */

/* svc_revoke_refuses checks a renewal by the client certificate der[0..len) of it->user: the
 * certificate is not revoked and the user not disabled. On a refusal it fails the item (401
 * AuthenticationFailed; InternalError when the store cannot be read) and returns true. Ring
 * thread; two LMDB lookups. */
bool svc_revoke_refuses(struct service *svc, struct svc_item *it, const uint8_t *der, size_t len);

/* svc_user_disabled tells whether `uri` is disabled (also when that cannot be read). */
bool svc_user_disabled(struct service *svc, const char *uri);

/* svc_revoke_start builds the first CRL and starts the thread cp-crl that rebuilds it. Returns 0,
 * -ENOMEM or -EAGAIN (no thread); svc_revoke_stop cleans up after a failure too. */
int svc_revoke_start(struct service *svc);
/* svc_revoke_stop stops cp-crl and frees the CRL. A service without one: a no-op. */
void svc_revoke_stop(struct service *svc);
/* svc_revoke_crl answers GET /CertProv/crl with the current CRL (503 before the first). Ring. */
void svc_revoke_crl(struct service *svc, struct ioring_request *req);

/* svc_ocsp_init allocates the OCSP response cache (ocsp_cache_s; 2048 slots): 0 or -ENOMEM.
 * svc_ocsp_free frees it (also after a failed init). */
int svc_ocsp_init(struct service *svc);
void svc_ocsp_free(struct service *svc);
/* svc_revoke_ocsp answers an OCSP request: POST /CertProv/ocsp (the DER body) or GET
 * /CertProv/ocsp/{url-encoded base64} (RFC 6960 Appendix A). A single-certificate request
 * without a nonce is answered from the cache while it is younger than ocsp_cache_s and no
 * revocation changed the store's generation; else one signature by the CA's key, on the ring. */
void svc_revoke_ocsp(struct service *svc, struct ioring_request *req, bool post);

/* ---- service.c ---- */

/* svc_route_of maps a request target (path, optional query) to its route; *post tells whether
 * `method` is POST. Matching ignores ASCII case. */
enum svc_route svc_route_of(const char *method, const char *target, size_t len, bool *post);

/* ---- enroll.c ---- */

/* svc_enroll starts the enrollment `req` on its ring: answers a refusal at once, or leaves the
 * item in the ring's pending list for service_turn_end. Ring thread. */
void svc_enroll(struct service *svc, struct ioring_request *req, enum svc_route route);

/* svc_check_csr checks the item's CSR (csr_der) for its user: key and signature policy, proof of
 * possession, identity; a refusal fails the item with its reason. Ring thread. */
void svc_check_csr(struct service *svc, struct svc_item *it);

/* svc_cert_signin signs the item in with its TLS client certificate this appliance issued (not
 * revoked, its user existing and not disabled); a refusal fails the item. Ring thread. */
void svc_cert_signin(struct service *svc, struct svc_item *it, struct ioring_request *req);

#define SVC_BASIC_MAX 256 /* bytes of a decoded "user:pin" */

/* svc_credentials are the sign-in of a request: phone number or extension, and PIN (a secret:
 * wipe with signer_secret_wipe). */
struct svc_credentials {
    char user[SIGNER_SOAP_USERNAME_MAX + 1];
    char pin[SIGNER_PIN_MAX + 2];
    bool present;
};

/* svc_basic_auth reads the value of an Authorization header, `h` (`len` bytes, no NUL needed),
 * as "Basic" (any case), one space, any further spaces, then strict base64 (RFC 4648 §4,
 * constant-time) of "user:pin": a user of 1 to SIGNER_SOAP_USERNAME_MAX bytes without ':', a PIN
 * of at most SIGNER_PIN_MAX + 1 bytes, no NUL in either, at most SVC_BASIC_MAX bytes decoded.
 * Returns 0 with *c filled (c->present) or -EBADMSG with *c untouched; `c` must not be present
 * yet. The decoded bytes are wiped. Thread-safe. */
int svc_basic_auth(struct svc_credentials *c, const char *h, size_t len);

/* svc_authenticate looks up the users whose phone number or extension is `user` (at most
 * SVC_CANDIDATES_MAX) and records each in the item with whether `pin` matched it, for the
 * writer's judgement (it->signin). When a candidate's PIN matched and its committed lockout state
 * is open it sets it->user and it->proceed (the first such candidate). Fails the item only when
 * the directory cannot be read (InternalError; it->signin stays false). Costs
 * SVC_CANDIDATES_MAX HMACs whatever matched, and reads lockout state only for a matching PIN.
 * Ring thread; writes nothing. */
void svc_authenticate(struct service *svc, struct svc_item *it, const char *user, const char *pin);

/* ---- signpool.c ---- */

/* svc_signpool_start starts one signing thread (cp-hsmN) per session of the CA key when the key
 * blocks (hsm_key_get_sessions > 0); with a soft key it starts nothing. `cap` is every item slot
 * of every ring. Returns 0, -ENOMEM or a negative errno of pthread_create. */
int svc_signpool_start(struct service *svc, size_t cap);

/* svc_signpool_active tells whether the rings hand their batches to the pool. */
bool svc_signpool_active(const struct service *svc);

/* svc_signpool_push hands n items of a ring's batch to the pool (they become the pool's until it
 * pushes them to the writer, signed or with sign_rc -EAGAIN). Never blocks beyond the queue's
 * mutex. Ring thread. */
void svc_signpool_push(struct service *svc, struct svc_item **items, size_t n);

/* svc_signpool_stop lets the threads sign (or fail) what is queued and push it to the writer,
 * joins them and frees the pool. Before svc_writer_stop. Accepts a pool that never started. */
void svc_signpool_stop(struct service *svc);

/* ---- writer.c ---- */

/* svc_writer_start allocates the writer's queue (cap items) and scratch and starts its thread.
 * Returns 0, -ENOMEM or a negative errno of pthread_create. */
int svc_writer_start(struct service *svc, size_t cap);

/* svc_writer_push queues n items (sign-ins to judge, signed or not) for the next group commit.
 * Any thread. */
void svc_writer_push(struct service *svc, struct svc_item **items, size_t n);

/* svc_writer_stop lets the writer answer everything queued, joins it and frees its memory.
 * Accepts a writer that never started. */
void svc_writer_stop(struct service *svc);

/* ---- status.c ---- */

/* svc_respond_status answers /readyz or /metrics. Ring thread. */
void svc_respond_status(struct service *svc, struct ioring_request *req, enum svc_route route);

/* svc_readyz writes the /readyz JSON into `out` (cap bytes, NUL-terminated; SVC_RESPONSE_MAX
 * always holds it) and returns its length; *out_ready is the `ready` it reports. Any thread. */
size_t svc_readyz(struct service *svc, char *out, size_t cap, bool *out_ready);

/* svc_store_condition_name is /readyz's "store" word of a store fault ("full", "unwritable";
 * "ok" for none) and svc_store_reason_name its "store_reason" ("disk_full", ...). Static. */
const char *svc_store_condition_name(enum store_fault fault);
const char *svc_store_reason_name(enum store_fault fault);

/* ---- batch.c ---- */

/* svc_sign_items signs the items that proceed and did not fail, in one batch, using `scratch`
 * (HSM_BATCH_MAX issues); each item's sign_rc, serial, validity and der are set. n <=
 * HSM_BATCH_MAX. */
void svc_sign_items(struct service *svc, struct signer_issue *scratch, struct svc_item **items,
                    size_t n);

/* svc_sign_fail marks the items that would be signed as not signed with `rc` (-EAGAIN: the key
 * backend could not sign in time: SigningUnavailable). */
void svc_sign_fail(struct svc_item **items, size_t n, int rc);

/* ---- item.c ---- */

/* svc_item_reset resets the whole item for ring `ring`: no field keeps an earlier request's. */
void svc_item_reset(struct svc_item *it, uint32_t ring);

/* svc_item_validate ASSERTs the item's invariants (bounds of every length and count). */
void svc_item_validate(const struct service *svc, const struct svc_item *it);

/* svc_item_take takes a free item of ring `ring`, reset; NULL when the ring has none. */
struct svc_item *svc_item_take(struct service *svc, uint32_t ring);

/* svc_item_release gives an answered item back to its ring's pool. Any thread. */
void svc_item_release(struct service *svc, struct svc_item *it);

/* svc_items_free returns how many items ring `ring` has free now. Any thread. */
uint32_t svc_items_free(struct service *svc, uint32_t ring);

/* svc_item_stage records `ns` spent in `stage` in the item (for its log line) and the stage's
 * histogram. */
void svc_item_stage(struct service *svc, struct svc_item *it, enum svc_stage stage, uint64_t ns);

/* svc_item_fail fails the item with `why` (its Code follows) and the human-readable `text`. */
void svc_item_fail(struct svc_item *it, enum signer_reason why, const char *text);

/* svc_respond_body answers `req` with a shared body (ioring_request_respond_body): it takes over
 * the caller's reference to `body`. */
void svc_respond_body(struct service *svc, struct ioring_request *req, int status, const char *type,
                      struct ioring_body *body);

/* svc_respond sends one answer to `req` (through svc->respond when set). */
void svc_respond(struct service *svc, struct ioring_request *req, int status, const char *type,
                 const char *headers, const char *body, size_t len);

/* svc_respond_error answers `req` with the Code of `why` and `reason` in the route's format: SOAP
 * (ErrorInfo body, in the SOAP version and with the RequestID of `soap`; NULL: 1.1, none), EST or
 * plain text ("CODE: reason"), with X-Ms-diagnostics (and its token) and, when retry_after_s is
 * not 0 or the status is 503 (then 1), Retry-After; `scratch` (scratch_cap bytes) holds the body.
 */
void svc_respond_error(struct service *svc, struct ioring_request *req, enum svc_route route,
                       enum signer_reason why, const char *reason, uint32_t retry_after_s,
                       const struct signer_soap_reply *soap, char *scratch, size_t scratch_cap);

/* svc_item_soap_reply fills *out with what the SOAP answer of `it` echoes (it borrows from it). */
void svc_item_soap_reply(struct signer_soap_reply *out, const struct svc_item *it);

/* svc_soap12_requested tells whether the request's Content-Type is SOAP 1.2's
 * (application/soap+xml, RFC 3902): the version of an answer to a request whose envelope could
 * not be read. */
bool svc_soap12_requested(struct ioring_request *req);

/* ---- metrics.c ---- */

/* svc_metrics_init gives each histogram the bucket bounds of its kind (latency in us, or sizes
 * in items); adding and printing both use them. */
void svc_metrics_init(struct svc_metrics *m);

/* svc_histogram_add counts `value` in its bucket. Any thread, lock-free. */
void svc_histogram_add(struct svc_histogram *h, uint64_t value);

/* svc_metrics_request counts one answer of `route` with `result` (a Code or SVC_RESULT_*). */
void svc_metrics_request(struct service *svc, enum svc_route route, int result);

/* svc_metrics_stage adds `ns` to the latency histogram of `stage`. */
void svc_metrics_stage(struct service *svc, enum svc_stage stage, uint64_t ns);

/* svc_metrics_batch counts one ring batch of n certificates. */
void svc_metrics_batch(struct service *svc, size_t n);

/* svc_route_name returns the route's label in metrics and logs ("soap", ...). Static storage. */
const char *svc_route_name(enum svc_route route);

/* svc_stage_name returns the stage's label in metrics ("parse", ...). Static storage. */
const char *svc_stage_name(enum svc_stage stage);

/* ---- mex.c ---- */

/* svc_mex_base_url writes the base URL of the metadata: [server] external_base_url, or
 * "https://NAME[:PORT]" with tls_listen (the port left out when 443), else "http://NAME[:PORT]"
 * of listen, NAME being `name` ([server] name or one of alt_names). Returns 0 or -E2BIG. */
int svc_mex_base_url(char *out, size_t cap, const struct service_config *cfg, const char *name);

/* svc_mex_init builds the CertProv and Web Ticket Service metadata documents (signer/wsdl.c) for
 * the base URL. Returns 0, -EINVAL (not a valid base URL: logged) or -ENOMEM. svc_mex_free drops
 * them (answers in flight keep theirs). */
int svc_mex_init(struct service *svc);
void svc_mex_free(struct service *svc);

/* svc_mex_serve answers a SVC_ROUTE_MEX request: the WSDL of the service its path names (GET),
 * or the GetMetadata answer in the request's SOAP version (POST). */
void svc_mex_serve(struct service *svc, struct ioring_request *req, bool post);

/* svc_log_simple writes the one log line of a request that is not an enrollment. */
void svc_log_simple(struct ioring_request *req, enum svc_route route, int status);

/* svc_log_refusal writes the log line of a request refused before it had an item (`why`). */
void svc_log_refusal(struct ioring_request *req, enum svc_route route, enum signer_reason why);

/* svc_log_request writes the one log line of an answered enrollment (never a PIN). */
void svc_log_request(struct service *svc, const struct svc_item *it, const uint8_t *serial);

#endif
