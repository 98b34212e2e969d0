/* signer/internal.h: shared between the files of signer/. Private to signer/.
 *
 * Certificate building (cert.c) and the CA (ca.c). A certificate is built in one fixed buffer of
 * SIGNER_CERT_DER_MAX bytes, in three steps so that a whole batch can be signed by one
 * hsm_key_sign_batch call without extra buffers:
 *   1. cert_tbs_build writes the TBSCertificate at der + CERT_TBS_OFF;
 *   2. cert_sign_item_init points an hsm_sign_item at it, with the signature going to the last
 *      HSM_SIG_MAX bytes of the buffer;
 *   3. cert_assemble wraps TBS, AlgorithmIdentifier and signature into the Certificate at der. */
#ifndef CERTPROV_SIGNER_INTERNAL_H
#define CERTPROV_SIGNER_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "signer/signer.h"

/* Where the TBS is built: room for the Certificate SEQUENCE header written in front of it. */
#define CERT_TBS_OFF 4
/* Where the signature lands, and the most TBS bytes that leave room for it (the AlgorithmIdentifier
 * and BIT STRING header, at most 24 bytes, go between TBS and signature during assembly). */
#define CERT_SIG_OFF (SIGNER_CERT_DER_MAX - HSM_SIG_MAX)
#define CERT_TBS_MAX (CERT_SIG_OFF - CERT_TBS_OFF - 32)
#define CERT_KEY_ID_LEN 20 /* SHA-1, RFC 5280 §4.2.1.2 method 1 */
#define CERT_NAME_DER_MAX 1024
#define CERT_CHAIN_PEM_MAX 16384

enum cert_kind {
    CERT_KIND_ROOT = 1,    /* self-signed CA: CA:TRUE, keyCertSign+cRLSign, SKI */
    CERT_KIND_ISSUING = 2, /* CA:TRUE pathlen 0, keyCertSign+cRLSign, SKI, AKI */
    CERT_KIND_CLIENT = 3,  /* API.md §4: clientAuth, SAN URI */
    CERT_KIND_SERVER = 4,  /* TLS server: serverAuth, SAN DNS */
};

/* cert_spec says what goes into one TBSCertificate. Every pointer is borrowed for the call. */
struct cert_spec {
    enum cert_kind kind;
    enum hsm_key_type sig_type; /* the issuer's key type: signature algorithm */
    const uint8_t *serial;      /* SIGNER_SERIAL_LEN bytes, top bit clear, not all zero */
    const uint8_t *issuer;      /* issuer Name, DER, copied as-is */
    size_t issuer_len;
    const char *subject_cn; /* subject commonName (UTF8String) */
    size_t subject_cn_len;
    const char *subject_o; /* subject organizationName, or NULL */
    size_t subject_o_len;
    int64_t not_before_s;
    int64_t not_after_s;
    const uint8_t *spki; /* SubjectPublicKeyInfo DER, copied as-is */
    size_t spki_len;
    const uint8_t *aki; /* authority key identifier, or NULL (root) */
    size_t aki_len;
    bool key_encipherment; /* KU keyEncipherment too (RSA end-entity keys) */
    const char *san;       /* SAN URI (client) or dNSName (server); IA5 */
    size_t san_len;
};

/* signer_ca is the loaded issuing CA. */
struct signer_ca {
    struct hsm_key *key;
    size_t issuer_len;
    uint8_t issuer[CERT_NAME_DER_MAX]; /* the issuing CA's subject Name, DER */
    int64_t not_after_s;               /* the issuing CA's notAfter: no leaf outlives it */
    size_t ski_len;
    uint8_t ski[64]; /* the issuing CA's subject key identifier: our leaves' AKI */
    size_t chain_pem_len;
    char chain_pem[CERT_CHAIN_PEM_MAX]; /* NUL-terminated */
};

/* cert_serial_random draws a fresh serial: CSPRNG bytes, top bit cleared (a positive INTEGER),
 * never all zero. */
void cert_serial_random(uint8_t out[SIGNER_SERIAL_LEN]);

/* cert_key_id computes the RFC 5280 §4.2.1.2 method 1 key identifier (SHA-1 of the
 * subjectPublicKey BIT STRING content) of a SubjectPublicKeyInfo. Returns 0 or -EBADMSG. */
int cert_key_id(uint8_t out[CERT_KEY_ID_LEN], const uint8_t *spki, size_t spki_len);

/* cert_name_build writes the Name (O, then CN; O omitted when NULL) as DER into `out`. Returns 0
 * with *out_len set, or -E2BIG. */
int cert_name_build(uint8_t *out, size_t cap, size_t *out_len, const char *cn, size_t cn_len,
                    const char *o, size_t o_len);

/* cert_tbs_build writes the TBSCertificate of `spec` at der + CERT_TBS_OFF. Returns 0 with
 * *out_tbs_len set, -E2BIG when it exceeds CERT_TBS_MAX, or -EBADMSG when spec->spki does not
 * parse. */
int cert_tbs_build(uint8_t der[SIGNER_CERT_DER_MAX], size_t *out_tbs_len,
                   const struct cert_spec *spec);

/* cert_sign_item_init points `item` at the TBS in `der` and its signature output at
 * der + CERT_SIG_OFF. */
void cert_sign_item_init(struct hsm_sign_item *item, uint8_t der[SIGNER_CERT_DER_MAX],
                         size_t tbs_len);

/* cert_assemble turns der (TBS at CERT_TBS_OFF, signature of sig_len bytes at CERT_SIG_OFF) into
 * the Certificate DER at der. Returns 0 with *out_len set, or -E2BIG. */
int cert_assemble(uint8_t der[SIGNER_CERT_DER_MAX], size_t *out_len, size_t tbs_len,
                  enum hsm_key_type sig_type, size_t sig_len);

/* cert_pem_encode writes the certificate as PEM ("-----BEGIN CERTIFICATE-----", 64-column base64)
 * into `out`, NUL-terminated. Returns 0 with *out_len (without the NUL) set, or -E2BIG. */
int cert_pem_encode(char *out, size_t cap, size_t *out_len, const uint8_t *der, size_t der_len);

/* ---- the enrollment service (service.c, enroll.c, writer.c, metrics.c) ---- */

#include <pthread.h>
#include <stdatomic.h>

#define SVC_ITEMS_MAX 4096     /* enrollments in flight per ring, at most */
#define SVC_CANDIDATES_MAX 4   /* users sharing one phone number checked per sign-in */
#define SVC_RESPONSE_MAX 65536 /* largest response body the service builds */
#define SVC_COMMIT_TRIES_MAX 4 /* re-signs after serial clashes before giving up */
#define SVC_LOG_HOLD 32768     /* the writer's log lines of a group, written at once */

enum svc_route {
    SVC_ROUTE_SOAP = 0,
    SVC_ROUTE_EST_ENROLL,
    SVC_ROUTE_EST_REENROLL,
    SVC_ROUTE_EST_CACERTS,
    SVC_ROUTE_CHAIN,
    SVC_ROUTE_HEALTHZ,
    SVC_ROUTE_READYZ,
    SVC_ROUTE_METRICS,
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

struct svc_pin_failure {
    char uri[STORE_URI_MAX + 1];
    uint8_t pin_len;
};

/* One enrollment in flight. Owned by its ring until queued to the writer, then by the writer
 * until it is answered and released. */
struct svc_item {
    struct ioring_request *req;
    uint32_t ring;
    enum svc_route route;
    uint64_t start_ns;
    bool failed; /* answered with `fail` after the commit */
    enum signer_code fail;
    char reason[SIGNER_REASON_MAX];
    size_t num_pin_failures; /* lockout failures to record */
    struct svc_pin_failure pin_failures[SVC_CANDIDATES_MAX];
    bool pin_success;       /* reset the user's failure window */
    struct store_user user; /* the authenticated user */
    char request_id[SIGNER_SOAP_REQUEST_ID_MAX + 1];
    char device_id[STORE_DEVICE_ID_MAX + 1];
    char client[64];
    uint32_t hours;
    size_t csr_der_len;
    uint8_t csr_der[SIGNER_CSR_DER_MAX];
    struct signer_csr csr; /* borrows csr_der */
    int sign_rc;           /* -1: not signed (an auth failure) */
    uint8_t serial[SIGNER_SERIAL_LEN];
    int64_t not_before_s;
    int64_t not_after_s;
    int64_t issued_at_s;
    size_t der_len;
    uint8_t der[SIGNER_CERT_DER_MAX];
};

struct svc_ring {
    pthread_mutex_t lock; /* guards free/num_free (the writer releases items) */
    uint32_t cap;
    struct svc_item *items;
    struct svc_item **free;
    uint32_t num_free;
    struct svc_item **pending; /* ring thread only: gathered this loop turn */
    size_t num_pending;
    struct signer_issue *issue;       /* ring thread only: HSM_BATCH_MAX */
    struct signer_soap_request *soap; /* ring thread only: parse scratch */
};

struct signer_service {
    const struct signer_config *cfg;
    struct store *st;
    struct signer_ca *ca;
    struct signer_pin_key *pin_key;
    struct store_publisher *pub;         /* borrowed, may be NULL (the publisher, issue 4) */
    _Atomic(struct ioring_engine *) eng; /* set after the rings start: read atomically */
    struct svc_ring *rings;
    uint32_t num_rings;
    char chain_pem[CERT_CHAIN_PEM_MAX];
    size_t chain_pem_len;
    char cacerts[CERT_CHAIN_PEM_MAX];
    size_t cacerts_len;
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
    struct signer_issue *reissue; /* writer only: re-signs after a serial clash */
    char *scratch;                /* writer only: response bodies, SVC_RESPONSE_MAX */
    char *log_hold;               /* writer only: a group's log lines, SVC_LOG_HOLD */
    atomic_bool store_full;       /* the last commit hit the map size */
    atomic_uint_fast64_t queued;  /* gauge: items waiting for the writer */
    struct svc_metrics metrics;
};

struct svc_item *svc_item_take(struct svc_ring *r);
void svc_item_release(struct signer_service *svc, struct svc_item *it);
void svc_respond_error(struct signer_service *svc, struct ioring_request *req, enum svc_route route,
                       enum signer_code code, const char *reason, const char *request_id,
                       char *scratch, size_t scratch_cap);
void svc_enroll(struct signer_service *svc, struct ioring_request *req, enum svc_route route);
void svc_sign_items(struct signer_service *svc, struct signer_issue *scratch,
                    struct svc_item **items, size_t n);
int svc_writer_start(struct signer_service *svc, size_t cap);
void svc_writer_push(struct signer_service *svc, struct svc_item **items, size_t n);
void svc_writer_stop(struct signer_service *svc);
void svc_respond_status(struct signer_service *svc, struct ioring_request *req,
                        enum svc_route route);
void svc_metrics_request(struct signer_service *svc, enum svc_route route, int result);
void svc_metrics_stage(struct signer_service *svc, enum svc_stage stage, uint64_t ns);
void svc_metrics_batch(struct signer_service *svc, size_t n);
/* svc_metrics_init gives each histogram the bucket bounds of its kind (latency in us, or sizes
 * in items); adding and printing both use them. */
void svc_metrics_init(struct svc_metrics *m);
void svc_histogram_add(struct svc_histogram *h, uint64_t value);
/* svc_log_simple writes the one log line of a request that is not an enrollment. */
void svc_log_simple(struct ioring_request *req, enum svc_route route, int status);
/* svc_log_request writes the one log line of an answered enrollment (never a PIN). */
void svc_log_request(struct signer_service *svc, const struct svc_item *it, const uint8_t *serial);

#endif
