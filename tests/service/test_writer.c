/* Tests of the writer's group commit against a real temporary store: every answer goes out only
 * once what it reports is durable (checked inside the answer, on the writer thread), a failed
 * commit answers every certificate of its group with the commit's Code while the group's failed
 * sign-ins are still recorded, and the lockout bookkeeping of failed sign-ins is exact. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "base/base.h"
#include "service/internal.h"
#include "tests/service/fixture.h"

#define GROUP 6
#define EST_TYPE "application/pkcs7-mime; smime-type=certs-only"
#define SOAP_TYPE "text/xml; charset=utf-8"

static const char *const auth_failed_reason =
    "The phone number or extension and PIN do not match a user";
static const char *const store_full_reason =
    "The certificate store is full; the operator must raise its size";
static const char *const disk_full_reason = "The certificate store's disk is full; try again later";
static const char *const unwritable_reason =
    "The certificate store cannot be written now; try again later";

#define PROBE_MS 50 /* the writer's probe of a full or unwritable store, in these tests */

static void setup_writer(void)
{
    fx_setup_opts(&(struct fx_options){.items_per_ring = 16});
}

static void setup_two_rings(void)
{
    fx_setup_opts(&(struct fx_options){.rings = 2, .items_per_ring = 16});
}

static void setup_no_defer(void)
{
    fx_setup_opts(&(struct fx_options){.items_per_ring = 16, .no_defer = true});
}

static void setup_full(void)
{
    fx_setup_opts(&(struct fx_options){
        .items_per_ring = 16, .map_size = 1u << 20, .store_probe_ms = PROBE_MS});
}

static void setup_read_only(void)
{
    fx_setup_opts(
        &(struct fx_options){.items_per_ring = 16, .read_only = true, .store_probe_ms = PROBE_MS});
}

static void setup_probe(void)
{
    fx_setup_opts(&(struct fx_options){.items_per_ring = 16, .store_probe_ms = PROBE_MS});
}

static void setup_lockout(void)
{
    fx_setup_opts(&(struct fx_options){.items_per_ring = 16, .window_failures_max = 3});
}

/* What a test expects of the answers to the items it pushed (items are gone once answered). */
struct expect {
    enum svc_route route;
    char uri[STORE_URI_MAX + 1];
    char request_id[SIGNER_SOAP_REQUEST_ID_MAX + 1];
    bool matched;
};

static void expect_from(struct expect *e, const struct svc_item *it)
{
    memset(e, 0, sizeof(*e));
    e->route = it->route;
    memcpy(e->uri, it->user.uri, sizeof(e->uri));
    memcpy(e->request_id, it->request_id, sizeof(e->request_id));
}

/* expect_certificate checks a 200 answer: its body parses in the route's format, and its
 * certificate was in the store, with its outbox entry durable, when the answer went out. */
static void expect_certificate(const struct fx_answer *a)
{
    cr_assert_eq(a->status, 200, "status %d: %s", a->status, a->reason);
    cr_assert(a->req_null);
    cr_assert(a->cert_parsed, "the body does not parse: %.200s", a->body);
    cr_assert(a->store_has_cert, "answered before the certificate was in the store");
    cr_assert(a->store_outbox_lists, "answered before the certificate's commit was durable");
    cr_assert_eq(memcmp(a->meta.serial, a->serial, sizeof(a->serial)), 0);
    cr_assert_eq(a->meta.not_after_s - a->meta.not_before_s,
                 (int64_t)FX_HOURS * 3600 + SIGNER_BACKDATE_S);
}

/* match_answers pairs each certificate answer with an expectation of the same user and route. */
static void match_answers(struct expect *e, size_t n, size_t first)
{
    for (size_t i = first; i < first + n; i++) {
        const struct fx_answer *a = fx_answer(i);
        expect_certificate(a);
        bool soap = strcmp(a->type, SOAP_TYPE) == 0;
        cr_assert(soap || strcmp(a->type, EST_TYPE) == 0, "type %s", a->type);
        size_t k = 0;
        while (k < n && (e[k].matched || strcmp(e[k].uri, a->meta.uri) != 0 ||
                         (e[k].route == SVC_ROUTE_SOAP) != soap ||
                         (soap && strstr(a->body, e[k].request_id) == NULL))) {
            k++;
        }
        cr_assert_lt(k, n, "answer %zu (%s, %s) matches no item", i, a->meta.uri, a->type);
        e[k].matched = true;
        if (soap) {
            cr_assert_not_null(strstr(a->body, "BinarySecurityToken"));
        }
        for (size_t j = first; j < i; j++) {
            cr_assert_neq(memcmp(fx_answer(j)->serial, a->serial, SIGNER_SERIAL_LEN), 0,
                          "serial answered twice");
        }
    }
}

static uint64_t outbox_depth(const char *pool)
{
    uint64_t depth = 0;
    int64_t oldest = 0;
    cr_assert_eq(store_outbox_depth(g_fx.st, pool, &depth, &oldest), 0);
    return depth;
}

static int count_cert(void *ctx, const struct store_cert_meta *meta, const uint8_t *der,
                      size_t der_len)
{
    (void)meta;
    (void)der;
    (void)der_len;
    (*(size_t *)ctx)++;
    return 0;
}

static size_t certs_of(enum fx_user_id u)
{
    size_t n = 0;
    cr_assert_eq(store_cert_foreach_by_uri(g_fx.st, fx_users[u].uri, count_cert, &n), 0);
    return n;
}

static uint64_t cert_count(void)
{
    uint64_t n = 0;
    cr_assert_eq(store_cert_count(g_fx.st, &n), 0);
    return n;
}

static void expect_error(const struct fx_answer *a, enum signer_code code, const char *reason)
{
    cr_assert_eq(a->code, (int)code, "Code %d, want %s (status %d: %s)", a->code,
                 signer_code_name(code), a->status, a->reason);
    cr_assert_eq(a->status, (int)signer_error_status(code));
    cr_assert(a->req_null);
    if (reason != NULL) {
        cr_assert_str_eq(a->reason, reason);
    }
    char want[160];
    if (strcmp(a->type, SOAP_TYPE) == 0) {
        (void)snprintf(want, sizeof(want), "<Code>%s</Code>", signer_code_name(code));
        cr_assert_not_null(strstr(a->body, want), "SOAP body: %s", a->body);
    } else {
        (void)snprintf(want, sizeof(want), "%s: ", signer_code_name(code));
        cr_assert_eq(strncmp(a->body, want, strlen(want)), 0, "EST body: %s", a->body);
    }
    cr_assert_eq(a->retry_after,
                 signer_error_status(code) == 503 || signer_error_status(code) == 429);
    if (code == SIGNER_CODE_STORE_UNAVAILABLE) {
        cr_assert_eq(a->retry_after_s, SVC_STORE_RETRY_AFTER_S);
    }
    cr_assert_eq(a->www_authenticate, code == SIGNER_CODE_AUTHENTICATION_FAILED);
}

static enum store_fault store_fault(void)
{
    return (enum store_fault)atomic_load(&g_fx.svc->store_fault);
}

/* expect_readyz checks /readyz: ready, or not ready with "store":`state` and its reason. */
static void expect_readyz(bool ready, const char *state, const char *reason)
{
    char json[SVC_RESPONSE_MAX];
    cr_assert_eq(fx_readyz(json, sizeof(json)), ready, "%s", json);
    char want[96];
    (void)snprintf(want, sizeof(want), "\"store\":\"%s\",", state);
    cr_assert_not_null(strstr(json, want), "%s", json);
    if (reason == NULL) {
        cr_assert_null(strstr(json, "store_reason"), "%s", json);
    } else {
        (void)snprintf(want, sizeof(want), "\"store_reason\":\"%s\",\"store_since_s\":", reason);
        cr_assert_not_null(strstr(json, want), "%s", json);
    }
}

/* sleep_ms sleeps `ms` milliseconds (the writer's probes run meanwhile). */
static void sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

/* ---- certificates ---- */

Test(service_writer, group_is_answered_only_once_durable, .init = setup_writer, .fini = fx_teardown)
{
    static const struct {
        enum fx_user_id user;
        enum svc_route route;
    } plan[GROUP] = {{FX_ALICE, SVC_ROUTE_EST_ENROLL}, {FX_BOB, SVC_ROUTE_SOAP},
                     {FX_CAROL, SVC_ROUTE_EST_ENROLL}, {FX_DAVE, SVC_ROUTE_SOAP},
                     {FX_ALICE, SVC_ROUTE_SOAP},       {FX_BOB, SVC_ROUTE_EST_ENROLL}};
    struct svc_item *items[GROUP];
    struct expect e[GROUP];
    for (size_t i = 0; i < GROUP; i++) {
        items[i] = fx_enroll(0, plan[i].route, plan[i].user);
        expect_from(&e[i], items[i]);
    }
    fx_turn(0, items, GROUP);
    fx_wait_answers(GROUP);
    match_answers(e, GROUP, 0);

    /* One group: one commit of all six. */
    struct svc_metrics *m = &g_fx.svc->metrics;
    cr_assert_eq(atomic_load(&m->commit_size.count), 1);
    cr_assert_eq(atomic_load(&m->commit_size.sum), GROUP);
    cr_assert_eq(atomic_load(&m->certificates), GROUP);
    cr_assert_eq(atomic_load(&m->batch_size.sum), GROUP);
    cr_assert_eq(atomic_load(&m->requests[SVC_ROUTE_EST_ENROLL][SVC_RESULT_OK]), 3);
    cr_assert_eq(atomic_load(&m->requests[SVC_ROUTE_SOAP][SVC_RESULT_OK]), 3);
    cr_assert_eq(cert_count(), GROUP);
    cr_assert_eq(certs_of(FX_ALICE), 2);
    cr_assert_eq(certs_of(FX_BOB), 2);
    cr_assert_eq(certs_of(FX_CAROL), 1);
    cr_assert_eq(certs_of(FX_DAVE), 1);
    /* Each certificate waits in the outbox of its user's home pool. */
    cr_assert_eq(outbox_depth("pool-a"), 3);
    cr_assert_eq(outbox_depth("pool-b"), 3);
    for (size_t i = 0; i < GROUP; i++) {
        const struct fx_answer *a = fx_answer(i);
        struct store_user u;
        cr_assert_eq(store_user_get(g_fx.st, &u, a->meta.uri), 0);
        cr_assert_str_eq(a->meta.pool, u.pool);
    }
    fx_wait_items_free(0, 16);
    cr_assert_eq(store_fault(), STORE_FAULT_NONE);
    expect_readyz(true, "ok", NULL);
}

Test(service_writer, pipelined_groups_of_two_rings_are_durable_when_answered,
     .init = setup_two_rings, .fini = fx_teardown)
{
    /* Turns follow each other without waiting: the writer pipelines their syncs, and no group
     * may be answered before the commit after it (or a sync) made it durable. */
    enum { TURNS = 5, PER_TURN = 3 };
    struct expect e[TURNS * PER_TURN];
    for (size_t t = 0; t < TURNS; t++) {
        uint32_t ring = (uint32_t)(t % 2);
        struct svc_item *items[PER_TURN];
        for (size_t i = 0; i < PER_TURN; i++) {
            enum fx_user_id u = (enum fx_user_id)((t + i) % FX_USERS_MAX_);
            items[i] = fx_enroll(ring, i % 2 == 0 ? SVC_ROUTE_EST_ENROLL : SVC_ROUTE_SOAP, u);
            expect_from(&e[t * PER_TURN + i], items[i]);
        }
        fx_turn(ring, items, PER_TURN);
    }
    fx_wait_answers(TURNS * PER_TURN);
    match_answers(e, TURNS * PER_TURN, 0);
    cr_assert_eq(atomic_load(&g_fx.svc->metrics.commit_size.sum), TURNS * PER_TURN);
    cr_assert_eq(cert_count(), TURNS * PER_TURN);
    cr_assert_eq(outbox_depth(NULL), TURNS * PER_TURN);
    fx_wait_items_free(0, 16);
    fx_wait_items_free(1, 16);
}

static void setup_big_ring(void)
{
    fx_setup_opts(&(struct fx_options){.items_per_ring = 128});
}

Test(service_writer, a_turn_signs_one_slice_and_keeps_the_rest_in_order, .init = setup_big_ring,
     .fini = fx_teardown)
{
    /* 2.5 slices gathered in one turn: each call signs the oldest SVC_TURN_SLICE, says that
     * work is left (fx_turn checks the count and the order kept), and every item is answered
     * once durable, whatever group the writer made of the slices. */
    enum { N = SVC_TURN_SLICE * 2 + SVC_TURN_SLICE / 2 };
    struct svc_item *items[N];
    struct expect e[N];
    for (size_t i = 0; i < N; i++) {
        items[i] = fx_enroll(0, i % 3 == 0 ? SVC_ROUTE_SOAP : SVC_ROUTE_EST_ENROLL,
                             (enum fx_user_id)(i % FX_USERS_MAX_));
        expect_from(&e[i], items[i]);
    }
    fx_turn(0, items, N);
    fx_wait_answers(N);
    match_answers(e, N, 0);
    cr_assert_eq(cert_count(), N);
    cr_assert_eq(atomic_load(&g_fx.svc->metrics.commit_size.sum), N);
    fx_wait_items_free(0, 128);
}

static void setup_batch_ring(void)
{
    fx_setup_opts(&(struct fx_options){.items_per_ring = STORE_BATCH_MAX + 1});
    g_fx.cfg.user_certs_per_day_max = 0; /* alice and bob store them all */
}

Test(service_writer, one_group_holds_a_full_batch_of_pin_sign_ins, .init = setup_batch_ring,
     .fini = fx_teardown)
{
    /* A PIN sign-in has one candidate and adds at most one lockout entry: STORE_BATCH_MAX of
     * them queued while the writer is held (in the answer of the first) make ONE group, not two
     * halves of lockout room reserved and never used. */
    fx_hold_answers();
    struct svc_item *first = fx_enroll(0, SVC_ROUTE_EST_ENROLL, FX_ALICE);
    fx_turn(0, &first, 1);
    fx_wait_arrived(1); /* the writer waits in the first answer */
    static struct svc_item *items[STORE_BATCH_MAX];
    for (size_t i = 0; i < STORE_BATCH_MAX; i++) {
        items[i] = fx_enroll(0, i % 2 == 0 ? SVC_ROUTE_EST_ENROLL : SVC_ROUTE_SOAP,
                             i % 2 == 0 ? FX_ALICE : FX_BOB); /* one candidate each */
    }
    fx_turn(0, items, STORE_BATCH_MAX);
    fx_release_answers();
    fx_wait_items_free(0, STORE_BATCH_MAX + 1);
    struct svc_metrics *m = &g_fx.svc->metrics;
    cr_assert_eq(atomic_load(&m->commit_size.sum), STORE_BATCH_MAX + 1);
    cr_assert_eq(atomic_load(&m->commit_size.count), 2,
                 "%llu commits: want the first alone, then one full group",
                 (unsigned long long)atomic_load(&m->commit_size.count));
    cr_assert_eq(atomic_load(&m->certificates), STORE_BATCH_MAX + 1);
    cr_assert_eq(cert_count(), STORE_BATCH_MAX + 1);
}

Test(service_writer, store_without_deferred_sync, .init = setup_no_defer, .fini = fx_teardown)
{
    struct svc_item *items[3];
    struct expect e[3];
    for (size_t i = 0; i < 3; i++) {
        items[i] = fx_enroll(0, i == 1 ? SVC_ROUTE_SOAP : SVC_ROUTE_EST_ENROLL, (enum fx_user_id)i);
        expect_from(&e[i], items[i]);
    }
    fx_turn(0, items, 3);
    fx_wait_answers(3);
    match_answers(e, 3, 0);
    cr_assert_eq(cert_count(), 3);
}

Test(service_writer, stop_answers_everything_queued, .init = setup_writer, .fini = fx_teardown)
{
    struct svc_item *items[4];
    for (size_t i = 0; i < 4; i++) {
        items[i] = fx_enroll(0, SVC_ROUTE_EST_ENROLL, (enum fx_user_id)i);
    }
    fx_turn(0, items, 4);
    fx_service_stop(); /* joins the writer: every queued item is answered first */
    cr_assert_eq(fx_answers_count(), 4);
    for (size_t i = 0; i < 4; i++) {
        expect_certificate(fx_answer(i));
    }
    cr_assert_eq(cert_count(), 4);
}

Test(service_writer, an_item_that_cannot_be_signed_fails_alone, .init = setup_writer,
     .fini = fx_teardown)
{
    /* A real user whose URI no certificate can carry (not printable ASCII): signing refuses it
     * (-EINVAL); the rest of its batch and group is signed, stored and answered. */
    struct store_user u;
    memset(&u, 0, sizeof(u));
    (void)base_str_copy(u.uri, sizeof(u.uri), "sip:j\xc3\xb6rg@example.com");
    (void)base_str_copy(u.pool, sizeof(u.pool), "pool-a");
    (void)base_str_copy(u.ext, sizeof(u.ext), "1199");
    signer_pin_verifier(g_fx.pin_key, u.pin_verifier, u.uri, "271828");
    u.pin_len = 6;
    cr_assert_eq(store_user_add(g_fx.st, &u), 0);
    struct svc_item *items[3];
    items[0] = fx_enroll(0, SVC_ROUTE_EST_ENROLL, FX_ALICE);
    items[1] = fx_signin(0, SVC_ROUTE_SOAP, "1199", "271828");
    fx_attach_csr(items[1]);
    items[2] = fx_enroll(0, SVC_ROUTE_SOAP, FX_BOB);
    fx_turn(0, items, 3);
    fx_wait_answers(3);
    expect_certificate(fx_answer(0));
    cr_assert_str_eq(fx_answer(0)->meta.uri, fx_users[FX_ALICE].uri);
    expect_error(fx_answer(1), SIGNER_CODE_INTERNAL_ERROR, "Signing failed");
    /* [MS-OCAUTHWS] §3.2.4.1's internal error: 28001, no fault (README, Errors). */
    cr_assert(strncmp(fx_answer(1)->diag, "28001;source=\"", 14) == 0, "%s", fx_answer(1)->diag);
    cr_assert_null(strstr(fx_answer(1)->diag, "fault="), "%s", fx_answer(1)->diag);
    expect_certificate(fx_answer(2));
    cr_assert_str_eq(fx_answer(2)->meta.uri, fx_users[FX_BOB].uri);
    cr_assert_eq(cert_count(), 2);
    cr_assert_eq(outbox_depth("pool-a"), 1);
    struct svc_metrics *m = &g_fx.svc->metrics;
    cr_assert_eq(atomic_load(&m->requests[SVC_ROUTE_EST_ENROLL][SVC_RESULT_OK]), 1);
    cr_assert_eq(atomic_load(&m->requests[SVC_ROUTE_SOAP][SVC_RESULT_OK]), 1);
    cr_assert_eq(atomic_load(&m->requests[SVC_ROUTE_SOAP][SIGNER_CODE_INTERNAL_ERROR]), 1);
}

/* ---- failed commits ---- */

/* failed_group pushes three enrollments and a wrong PIN (dave's extension) in one group and
 * checks that every certificate is answered `code` with `reason`, that nothing was stored, and
 * that the wrong PIN is answered `wrong_code`: 401 when its failure could be recorded alone
 * (dave_total 1, stored before the answer), the certificates' failure when it could not (its
 * answer must not say whether the PIN was right while no guess is counted). */
static void failed_group(enum signer_code code, const char *reason, enum signer_code wrong_code,
                         uint64_t dave_total)
{
    uint64_t before = cert_count();
    struct svc_item *items[4];
    items[0] = fx_enroll(0, SVC_ROUTE_EST_ENROLL, FX_ALICE);
    items[1] = fx_enroll(0, SVC_ROUTE_SOAP, FX_BOB);
    items[2] = fx_enroll(0, SVC_ROUTE_EST_ENROLL, FX_CAROL);
    items[3] = fx_signin(0, SVC_ROUTE_SOAP, fx_users[FX_DAVE].ext, FX_WRONG_PIN);
    cr_assert_not(items[3]->proceed);
    fx_watch(fx_users[FX_DAVE].uri);
    fx_turn(0, items, 4);
    fx_wait_answers(4);
    for (size_t i = 0; i < 4; i++) {
        const struct fx_answer *a = fx_answer(i);
        cr_assert_str_eq(a->type, i % 2 == 1 ? SOAP_TYPE : "text/plain; charset=utf-8");
        if (i < 3) {
            expect_error(a, code, reason);
        } else {
            expect_error(a, wrong_code, NULL);
        }
        cr_assert(a->lockout_read);
        cr_assert_eq(a->lockout.total_failures, dave_total);
    }
    cr_assert_eq(cert_count(), before, "a failed commit stores no certificate");
    cr_assert_eq(fx_lockout(fx_users[FX_DAVE].uri).total_failures, dave_total);
    cr_assert_eq(atomic_load(&g_fx.svc->metrics.certificates), 0);
    fx_wait_items_free(0, 16);
}

/* A full map is StoreUnavailable (API.md: disk or map full, I/O error; it was Overloaded, which
 * says "a bound of this appliance was hit, retry in a second", while nothing is stored until
 * the operator raises map_size or the publisher frees pages). /readyz says full and why, and
 * stays so: a commit without certificates succeeds (the reserve), and so does nothing that
 * tells certificates fit; the writer's probes keep failing. */
Test(service_writer, full_store_answers_the_certificates_store_unavailable, .init = setup_full,
     .fini = fx_teardown)
{
    uint64_t filled = fx_fill_store();
    cr_assert_gt(filled, 0);
    cr_assert_eq(cert_count(), filled);
    cr_assert_eq(store_fault(), STORE_FAULT_NONE);
    char json[SVC_RESPONSE_MAX];
    cr_assert(fx_readyz(json, sizeof(json)), "%s", json);
    failed_group(SIGNER_CODE_STORE_UNAVAILABLE, store_full_reason,
                 SIGNER_CODE_AUTHENTICATION_FAILED, 1);
    cr_assert_eq(store_fault(), STORE_FAULT_MAP_FULL);
    expect_readyz(false, "full", "map_full");
    /* A group of wrong PINs commits (lockout updates only): the store stays full. */
    struct svc_item *wrong =
        fx_signin(0, SVC_ROUTE_EST_ENROLL, fx_users[FX_DAVE].ext, FX_WRONG_PIN);
    fx_turn(0, &wrong, 1);
    fx_wait_answers(5);
    expect_error(fx_answer(4), SIGNER_CODE_AUTHENTICATION_FAILED, auth_failed_reason);
    cr_assert_eq(fx_lockout(fx_users[FX_DAVE].uri).total_failures, 2, "committed");
    sleep_ms(5 * PROBE_MS);
    cr_assert_eq(store_fault(), STORE_FAULT_MAP_FULL, "no flapping while full");
    expect_readyz(false, "full", "map_full");
    struct svc_item *again = fx_enroll(0, SVC_ROUTE_SOAP, FX_BOB);
    fx_turn(0, &again, 1);
    fx_wait_answers(6);
    expect_error(fx_answer(5), SIGNER_CODE_STORE_UNAVAILABLE, store_full_reason);
    cr_assert_eq(cert_count(), filled);
}

Test(service_writer, read_only_store_answers_the_certificates_store_unavailable,
     .init = setup_read_only, .fini = fx_teardown)
{
    /* The store refuses writes (-EROFS: a file system remounted read-only after errors looks
     * the same), the lockout updates alone too: every item gets StoreUnavailable, and the store
     * is unwritable (it was InternalError with ready true: the appliance could issue nothing). */
    failed_group(SIGNER_CODE_STORE_UNAVAILABLE, unwritable_reason, SIGNER_CODE_STORE_UNAVAILABLE,
                 0);
    cr_assert_eq(store_fault(), STORE_FAULT_READ_ONLY);
    expect_readyz(false, "unwritable", "read_only");
    sleep_ms(3 * PROBE_MS);
    expect_readyz(false, "unwritable", "read_only");
}

/* fsize_limit makes every write of the process at or past `bytes` fail with EFBIG, as a full
 * file system or quota does (the store: -ENOSPC, disk full); RLIM_INFINITY lifts it. 8192 lets
 * LMDB write its two meta pages and no data page. Criterion runs each test in its own process. */
static void fsize_limit(rlim_t bytes)
{
    cr_assert_neq(signal(SIGXFSZ, SIG_IGN), SIG_ERR);
    struct rlimit rl;
    cr_assert_eq(getrlimit(RLIMIT_FSIZE, &rl), 0);
    rl.rlim_cur = bytes;
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &rl), 0);
}

/* A full disk (hardening item 9): certificates get 503 StoreUnavailable with Retry-After (it was
 * Overloaded), /readyz says full, disk_full, and stays so while the disk is full. When space
 * returns, /readyz is ready again without any enrollment (the writer's probe), and the next
 * enrollment is stored. */
Test(service_writer, full_disk_answers_store_unavailable_and_recovers_by_itself,
     .init = setup_probe, .fini = fx_teardown)
{
    struct svc_item *it = fx_enroll(0, SVC_ROUTE_EST_ENROLL, FX_ALICE);
    fx_turn(0, &it, 1);
    fx_wait_answers(1);
    expect_certificate(fx_answer(0));
    fsize_limit(8192);
    struct svc_item *items[2] = {fx_enroll(0, SVC_ROUTE_EST_ENROLL, FX_BOB),
                                 fx_enroll(0, SVC_ROUTE_SOAP, FX_CAROL)};
    fx_turn(0, items, 2);
    fx_wait_answers(3);
    expect_error(fx_answer(1), SIGNER_CODE_STORE_UNAVAILABLE, disk_full_reason);
    expect_error(fx_answer(2), SIGNER_CODE_STORE_UNAVAILABLE, disk_full_reason);
    cr_assert_eq(store_fault(), STORE_FAULT_DISK_FULL);
    expect_readyz(false, "full", "disk_full");
    sleep_ms(5 * PROBE_MS);
    expect_readyz(false, "full", "disk_full");
    fsize_limit(RLIM_INFINITY);
    bool ready = false;
    char json[SVC_RESPONSE_MAX];
    for (int i = 0; i < 400 && !ready; i++) { /* bounded: 20 s */
        sleep_ms(PROBE_MS);
        ready = fx_readyz(json, sizeof(json));
    }
    cr_assert(ready, "not ready again once the disk has room: %s", json);
    expect_readyz(true, "ok", NULL);
    cr_assert_eq(fx_answers_count(), 3, "ready again without an enrollment");
    it = fx_enroll(0, SVC_ROUTE_EST_ENROLL, FX_BOB);
    fx_turn(0, &it, 1);
    fx_wait_answers(4);
    expect_certificate(fx_answer(3));
    cr_assert_eq(cert_count(), 2);
}

/* ---- lockout bookkeeping ---- */

static struct svc_item *wrong_pin(enum fx_user_id u)
{
    struct svc_item *it = fx_signin(0, SVC_ROUTE_EST_ENROLL, fx_users[u].phone, FX_WRONG_PIN);
    cr_assert(it->signin);
    cr_assert_not(it->proceed);
    return it;
}

Test(service_writer, failures_in_one_group_each_count_before_the_answer, .init = setup_lockout,
     .fini = fx_teardown)
{
    const char *alice = fx_users[FX_ALICE].uri;
    fx_watch(alice);
    int64_t t0 = clock_real_s();
    struct svc_item *items[3] = {
        wrong_pin(FX_ALICE), wrong_pin(FX_ALICE),
        fx_signin(0, SVC_ROUTE_EST_ENROLL, FX_UNKNOWN_PHONE, fx_users[FX_ALICE].pin)};
    fx_turn(0, items, 3);
    fx_wait_answers(3);
    for (size_t i = 0; i < 3; i++) {
        const struct fx_answer *a = fx_answer(i);
        /* An unknown number is answered like a wrong PIN. */
        expect_error(a, SIGNER_CODE_AUTHENTICATION_FAILED, auth_failed_reason);
        cr_assert_str_eq(a->body, fx_answer(0)->body);
        /* Answered only after both failures of the group were stored. */
        cr_assert(a->lockout_read);
        cr_assert_eq(a->lockout.window_failures, 2, "answer %zu saw %u failures", i,
                     a->lockout.window_failures);
        cr_assert_eq(a->lockout.total_failures, 2);
    }
    struct store_lockout l = fx_lockout(alice);
    cr_assert_eq(l.window_failures, 2);
    cr_assert_eq(l.total_failures, 2);
    cr_assert_geq(l.window_start_s, t0);
    cr_assert_geq(l.last_failure_s, t0);
    cr_assert_eq(l.locked_until_s, 0);
    cr_assert_eq(atomic_load(&g_fx.svc->metrics.commit_size.count), 1);
    cr_assert_eq(atomic_load(&g_fx.svc->metrics.lockouts), 0);
    /* Nobody else was touched. */
    cr_assert_eq(fx_lockout(fx_users[FX_BOB].uri).total_failures, 0);
}

Test(service_writer, failures_in_separate_groups_count_once_each, .init = setup_lockout,
     .fini = fx_teardown)
{
    const char *bob = fx_users[FX_BOB].uri;
    fx_watch(bob);
    for (uint32_t g = 1; g <= 2; g++) {
        struct svc_item *it = wrong_pin(FX_BOB);
        fx_turn(0, &it, 1);
        fx_wait_answers(g);
        const struct fx_answer *a = fx_answer(g - 1);
        expect_error(a, SIGNER_CODE_AUTHENTICATION_FAILED, auth_failed_reason);
        cr_assert_eq(a->lockout.window_failures, g);
        cr_assert_eq(a->lockout.total_failures, g);
    }
    fx_service_stop(); /* nothing left to count twice */
    cr_assert_eq(fx_lockout(bob).total_failures, 2);
    cr_assert_eq(fx_lockout(bob).window_failures, 2);
}

Test(service_writer, shared_phone_failure_counts_for_each_user, .init = setup_lockout,
     .fini = fx_teardown)
{
    struct svc_item *it = fx_signin(0, SVC_ROUTE_EST_ENROLL, FX_SHARED_PHONE, FX_WRONG_PIN);
    cr_assert_eq(it->num_candidates, 2);
    fx_turn(0, &it, 1);
    fx_wait_answers(1);
    expect_error(fx_answer(0), SIGNER_CODE_AUTHENTICATION_FAILED, auth_failed_reason);
    cr_assert_eq(fx_lockout(fx_users[FX_CAROL].uri).window_failures, 1);
    cr_assert_eq(fx_lockout(fx_users[FX_DAVE].uri).window_failures, 1);
}

Test(service_writer, lockout_window_reset_lock_and_refusal, .init = setup_lockout,
     .fini = fx_teardown)
{
    const struct fx_user *alice = &fx_users[FX_ALICE];
    fx_watch(alice->uri);
    size_t answered = 0;

    /* Two failures, then the right PIN: the window is reset before the certificate goes out,
     * the total is kept. */
    struct svc_item *fails[3] = {wrong_pin(FX_ALICE), wrong_pin(FX_ALICE)};
    fx_turn(0, fails, 2);
    answered += 2;
    fx_wait_answers(answered);
    struct svc_item *ok = fx_enroll(0, SVC_ROUTE_EST_ENROLL, FX_ALICE);
    fx_turn(0, &ok, 1);
    fx_wait_answers(++answered);
    const struct fx_answer *a = fx_answer(answered - 1);
    expect_certificate(a);
    cr_assert_eq(a->lockout.window_failures, 0, "reset stored before the answer");
    cr_assert_eq(a->lockout.window_start_s, 0);
    cr_assert_eq(a->lockout.total_failures, 2);

    /* A clean record: nothing to reset (test_signin.c: nothing is written for it). */
    ok = fx_enroll(0, SVC_ROUTE_SOAP, FX_ALICE);
    fx_turn(0, &ok, 1);
    fx_wait_answers(++answered);
    expect_certificate(fx_answer(answered - 1));

    /* Three failures in one group reach the window maximum (3): locked. All three were
     * sign-ins decided before the lock, so all three are AuthenticationFailed. */
    int64_t t0 = clock_real_s();
    for (size_t i = 0; i < 3; i++) {
        fails[i] = wrong_pin(FX_ALICE);
    }
    fx_turn(0, fails, 3);
    answered += 3;
    fx_wait_answers(answered);
    for (size_t i = answered - 3; i < answered; i++) {
        a = fx_answer(i);
        expect_error(a, SIGNER_CODE_AUTHENTICATION_FAILED, auth_failed_reason);
        cr_assert_gt(a->lockout.locked_until_s, t0, "the lock was stored before the answer");
        cr_assert_eq(a->lockout.total_failures, 5);
    }
    cr_assert_eq(atomic_load(&g_fx.svc->metrics.lockouts), 1);
    struct store_lockout l = fx_lockout(alice->uri);
    cr_assert_geq(l.locked_until_s, t0 + (int64_t)g_fx.cfg.pin.lock_s);
    cr_assert_not(l.admin_locked);

    /* Locked: the right PIN and a wrong one both get PinLocked, through the writer; the wrong
     * one counts toward the total, the right one does not, and neither locks anew. */
    struct svc_item *right = fx_signin(0, SVC_ROUTE_EST_ENROLL, alice->phone, alice->pin);
    struct svc_item *wrong = fx_signin(0, SVC_ROUTE_EST_ENROLL, alice->ext, FX_WRONG_PIN);
    cr_assert_not(right->proceed, "the ring goes on with no locked user");
    cr_assert_not(wrong->proceed);
    struct svc_item *locked[2] = {right, wrong};
    fx_turn(0, locked, 2);
    answered += 2;
    fx_wait_answers(answered);
    expect_error(fx_answer(answered - 2), SIGNER_CODE_PIN_LOCKED, NULL);
    expect_error(fx_answer(answered - 1), SIGNER_CODE_PIN_LOCKED, NULL);
    cr_assert_str_eq(fx_answer(answered - 2)->body, fx_answer(answered - 1)->body,
                     "a locked account must not tell a right PIN from a wrong one");
    cr_assert_str_eq(fx_answer(answered - 2)->reason, fx_answer(answered - 1)->reason);
    cr_assert_str_eq(fx_answer(answered - 2)->diag, fx_answer(answered - 1)->diag);
    l = fx_lockout(alice->uri);
    cr_assert_eq(l.total_failures, 6);
    cr_assert_geq(l.locked_until_s, t0 + (int64_t)g_fx.cfg.pin.lock_s, "the lock is not moved");
    cr_assert_eq(atomic_load(&g_fx.svc->metrics.lockouts), 1);
    cr_assert_eq(cert_count(), 2);
}
