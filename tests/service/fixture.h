/* fixture: the set-up of the service tests. Each test gets a fresh tmpdir_create directory holding
 * a real CA (signer_ca_init, P-256 keys), the PIN key, the LMDB store with four users and the
 * service with its writer thread. The service answers through svc->respond into a recorder
 * instead of the engine (no network): each answer's status, Code, reason and body, and what the
 * store held at that moment (checked on the writer thread, inside the answer). Tests play the
 * ring: they take items, sign users in, attach CSRs built here with BoringSSL, and end the ring's
 * turn (service_turn_end). Waits are bounded and fail the test on timeout. */
#ifndef CERTPROV_TESTS_SERVICE_FIXTURE_H
#define CERTPROV_TESTS_SERVICE_FIXTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "service/internal.h"
#include "tests/util/tmpdir.h"

#define FX_WAIT_MS 20000  /* the longest a test waits for answers */
#define FX_ANSWERS_MAX 96 /* answers recorded per test */
#define FX_BODY_MAX 8192  /* bytes of a recorded body */
#define FX_HOURS 24
#define FX_SOFTHSM "/usr/lib/softhsm/libsofthsm2.so"

/* The users of every test. carol and dave share a phone number (not an extension). */
enum fx_user_id { FX_ALICE, FX_BOB, FX_CAROL, FX_DAVE, FX_USERS_MAX_ };

struct fx_user {
    const char *uri;
    const char *pool;
    const char *phone;
    const char *ext;
    const char *pin;
};

extern const struct fx_user fx_users[FX_USERS_MAX_];

#define FX_SHARED_PHONE "+14155550100"
#define FX_UNKNOWN_PHONE "+14155550199"
#define FX_WRONG_PIN "504231"

struct fx_options {
    uint64_t map_size;            /* the store's LMDB map; 0 = the default */
    bool no_defer;                /* open the store without defer_meta_sync */
    bool read_only;               /* reopen the store read-only before the service starts */
    uint32_t rings;               /* 0 = 1 */
    uint32_t items_per_ring;      /* 0 = 8 */
    uint32_t window_failures_max; /* 0 = the default policy's */
    uint32_t store_probe_ms;      /* 0 = the service's default */
    /* A PKCS#11 CA key: the issuing key generated in a SoftHSM2 token made under the test's
     * directory, loaded through this module (SoftHSM2's, or tests/p11shim in front of it);
     * NULL = the soft key. */
    const char *pkcs11_module;
    uint32_t sign_timeout_ms; /* with pkcs11_module; 0 = the default */
};

struct fx {
    char dir[TMPDIR_PATH_MAX];
    char store_dir[96];
    struct service_config cfg;
    struct store *st;
    struct signer_ca *ca;
    struct signer_pin_key *pin_key;
    struct service *svc;
};

extern struct fx g_fx;

/* One recorded answer. The store_ fields were read on the writer thread while it answered. */
struct fx_answer {
    bool req_null; /* the service passed req == NULL through */
    int status;
    int code; /* SVC_RESULT_OK (200), the Code of X-Ms-diagnostics, or -1 without one */
    char reason[SIGNER_REASON_MAX + 64];
    char diag[SIGNER_REASON_MAX + 256];      /* the whole X-Ms-diagnostics value, "" without one */
    char token[SIGNER_REASON_TOKEN_MAX + 1]; /* its token="..." (README, Reasons), "" without */
    char type[64];
    bool retry_after;
    uint32_t retry_after_s; /* its value */
    bool www_authenticate;
    size_t body_len;
    char body[FX_BODY_MAX + 1];
    /* 200: the certificate in the body */
    bool cert_parsed; /* the body parsed (EST certs-only, or SOAP BinarySecurityToken) */
    size_t cert_len;
    uint8_t cert[SIGNER_CERT_DER_MAX];
    uint8_t serial[SIGNER_SERIAL_LEN];
    bool store_has_cert;     /* store_cert_get found it, with these bytes */
    bool store_outbox_lists; /* store_outbox_foreach (durable entries only) lists it */
    struct store_cert_meta meta;
    /* the lockout state of the watched user (fx_watch) when the answer went out */
    bool lockout_read;
    struct store_lockout lockout;
};

/* fx_setup / fx_setup_opts build everything; fx_teardown frees it and removes the directory. */
void fx_setup(void);
void fx_setup_opts(const struct fx_options *o);
void fx_teardown(void);

/* fx_service_stop frees the service (the writer answers what is queued first). */
void fx_service_stop(void);

/* fx_watch makes the recorder read `uri`'s lockout state with every answer. */
void fx_watch(const char *uri);

/* fx_hold_answers stops every answer at a gate before it is recorded (the writer thread waits
 * there) until fx_release_answers; fx_wait_arrived waits until `n` answers reached the gate since
 * fx_setup. Fails the test after FX_WAIT_MS. */
void fx_hold_answers(void);
void fx_release_answers(void);
void fx_wait_arrived(size_t n);

/* fx_wait_answers waits until `n` answers were recorded; fails the test after FX_WAIT_MS. */
void fx_wait_answers(size_t n);
/* fx_answers_count returns how many answers were recorded so far. */
size_t fx_answers_count(void);
/* fx_answer returns recorded answer `i` (< the count a wait returned). */
const struct fx_answer *fx_answer(size_t i);
/* fx_wait_items_free waits until ring `ring` has `want` free items (they are released just after
 * their answer); fails the test after FX_WAIT_MS. */
void fx_wait_items_free(uint32_t ring, uint32_t want);

/* fx_csr builds a P-256/SHA-256 PKCS#10 request with subject CN `cn` into `out`. */
size_t fx_csr(uint8_t *out, size_t cap, const char *cn);

/* fx_signin takes an item of `ring` for `route` and signs `login` in with `pin`, as the ring
 * does after parsing. */
struct svc_item *fx_signin(uint32_t ring, enum svc_route route, const char *login, const char *pin);
/* fx_attach_csr gives a signed-in item a CSR for its user, checked as the ring checks it. */
void fx_attach_csr(struct svc_item *it);
/* fx_signin_csr is fx_signin, then fx_attach_csr when the ring went on with a user (as the ring
 * checks a CSR only then): what the ring does with a request that carries a good CSR. */
struct svc_item *fx_signin_csr(uint32_t ring, enum svc_route route, const char *login,
                               const char *pin);
/* fx_enroll is fx_signin by phone with the user's PIN, then fx_attach_csr. */
struct svc_item *fx_enroll(uint32_t ring, enum svc_route route, enum fx_user_id u);

/* fx_turn ends the ring loop turns that gathered `items`: service_turn_end signs them, a slice
 * of SVC_TURN_SLICE per turn in arrival order, and queues each slice to the writer (one group
 * when n <= SVC_TURN_SLICE). */
void fx_turn(uint32_t ring, struct svc_item **items, size_t n);

/* fx_readyz fills `out` (cap bytes) with the /readyz JSON and returns whether it says ready. */
bool fx_readyz(char *out, size_t cap);

/* fx_lockout reads `uri`'s lockout state (asserts success). */
struct store_lockout fx_lockout(const char *uri);

/* fx_fill_store commits synthetic certificates until not even a small one fits. Returns how
 * many it stored (a later call fills what commits since have freed). */
uint64_t fx_fill_store(void);

#endif
