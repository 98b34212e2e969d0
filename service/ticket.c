/* Web tickets on CertProv's side ([MS-OCAUTHWS] §3.1, the WebTicket_Proof port): the ticket
 * issuer and the replay set, the sign-in of a GetAndPublishCert that presents a ticket
 * (svc_webticket_signin, called by enroll.c), and the RSTR the writer sends once a ticket
 * request's sign-in is judged (svc_webticket_respond). The Web Ticket Service's handler is
 * webticket.c; the XML and the cryptography are signer/'s (webticket.c, wsse.c). */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/base.h"
#include "ioring/ioring.h"
#include "service/internal.h"

#define WT_PATH "/WebTicket/WebTicketService.svc"
#define REPLAY_PROBE 32 /* slots looked at per insert: a full neighbourhood is a 503 */

struct replay_slot {
    uint8_t key[16];
    int64_t until_s; /* 0: free */
};

struct svc_wt {
    struct signer_wt_issuer *iss;                /* NULL: no tickets (an Ed25519 CA key) */
    const char *names[SIGNER_TLS_NAMES_MAX + 1]; /* the audiences' hosts, external_base_url's too */
    size_t num_names;
    char ext_host[256]; /* [server] external_base_url's host */
    char url[SIGNER_WT_URL_MAX + 1];
    pthread_mutex_t mu; /* the replay set: every ring */
    bool mu_init;
    struct replay_slot *slots;
    size_t mask; /* slots - 1, a power of two >= 2 x replay_max */
};

/* make_url builds the Web Ticket Service's URL as clients reach it: the metadata's base URL
 * (svc_mex_base_url: [server] external_base_url, or the name and the listener), so that the URL a
 * 401 names, the one in the WSDL and the audiences agree; external_base_url's host joins the
 * audiences' hosts. */
static void make_url(struct svc_wt *wt, const struct service_config *cfg)
{
    char base[SIGNER_BASE_URL_MAX + 1];
    int rc = svc_mex_base_url(base, sizeof(base), cfg, cfg->name);
    ASSERT(rc == 0); /* service_config_parse bounds external_base_url and name */
    _Static_assert(SIGNER_BASE_URL_MAX + sizeof(WT_PATH) <= SIGNER_WT_URL_MAX, "WT URL");
    int n = snprintf(wt->url, sizeof(wt->url), "%s" WT_PATH, base);
    ASSERT(n > 0 && (size_t)n < sizeof(wt->url));
    if (cfg->external_base_url[0] == '\0') {
        return;
    }
    const char *h = strstr(cfg->external_base_url, "://");
    h = h != NULL ? h + 3 : cfg->external_base_url;
    size_t len = strcspn(h, ":/");
    if (len > 0 && len < sizeof(wt->ext_host)) {
        memcpy(wt->ext_host, h, len);
        wt->ext_host[len] = '\0';
        wt->names[wt->num_names++] = wt->ext_host;
    }
}

int svc_webticket_init(struct service *svc)
{
    struct svc_wt *wt = calloc(1, sizeof(*wt));
    if (wt == NULL) {
        return -ENOMEM;
    }
    svc->wt = wt;
    signer_xml_init(); /* libxml2, once, before the rings start */
    service_config_tls_names(svc->cfg, wt->names, &wt->num_names);
    make_url(wt, svc->cfg);
    (void)base_str_copy(svc->wt_url, sizeof(svc->wt_url), wt->url);
    size_t n = 1024;
    while (n < 2 * (size_t)svc->cfg->webticket_replay_max) {
        n *= 2;
    }
    wt->slots = calloc(n, sizeof(*wt->slots));
    if (wt->slots == NULL) {
        return -ENOMEM;
    }
    wt->mask = n - 1;
    int rc = pthread_mutex_init(&wt->mu, NULL);
    if (rc != 0) {
        return -rc;
    }
    wt->mu_init = true;
    if (svc->ca == NULL || svc->pin_key == NULL) {
        return 0; /* tests without a CA: no tickets */
    }
    rc = signer_wt_issuer_new(&wt->iss, svc->ca, svc->pin_key, wt->url, svc->cfg->store_path);
    if (rc == 0) {
        log_info("service: webticket_signer key=%s",
                 signer_wt_issuer_dedicated(wt->iss) ? "dedicated" : "ca");
    }
    if (rc == -ENOTSUP) {
        log_warn("service: webticket_unavailable reason=ca_key_type");
        rc = 0;
    }
    return rc;
}

void svc_webticket_free(struct service *svc)
{
    struct svc_wt *wt = svc->wt;
    if (wt == NULL) {
        return;
    }
    signer_wt_issuer_free(wt->iss);
    if (wt->mu_init) {
        int rc = pthread_mutex_destroy(&wt->mu);
        ASSERT(rc == 0);
    }
    free(wt->slots);
    free(wt);
    svc->wt = NULL;
}

bool svc_webticket_available(const struct service *svc)
{
    return svc->wt != NULL && svc->wt->iss != NULL;
}

int svc_webticket_replay_add(struct service *svc, const uint8_t key[16], int64_t until_s,
                             int64_t now)
{
    struct svc_wt *wt = svc->wt;
    ASSERT(wt != NULL);
    uint64_t h = 0;
    memcpy(&h, key, sizeof(h));
    size_t free_at = SIZE_MAX;
    int rc = -EBUSY;
    base_mutex_lock(&wt->mu);
    for (size_t i = 0; i < REPLAY_PROBE; i++) {
        struct replay_slot *s = &wt->slots[(h + i) & wt->mask];
        bool live = s->until_s > now;
        if (live && memcmp(s->key, key, 16) == 0) {
            rc = -EEXIST;
            break;
        }
        if (!live && free_at == SIZE_MAX) {
            free_at = (h + i) & wt->mask;
        }
    }
    if (rc != -EEXIST && free_at != SIZE_MAX) {
        memcpy(wt->slots[free_at].key, key, 16);
        wt->slots[free_at].until_s = until_s;
        rc = 0;
    }
    base_mutex_unlock(&wt->mu);
    return rc;
}

bool svc_webticket_signin(struct service *svc, struct svc_item *it, const uint8_t *body, size_t len)
{
    struct svc_wt *wt = svc->wt;
    if (wt == NULL || wt->iss == NULL || memmem(body, len, "Assertion", 9) == NULL) {
        return false; /* cheap: no assertion, no ticket (signer_wt_verify says the same) */
    }
    struct signer_wt_proof p;
    char reason[SIGNER_REASON_MAX];
    int64_t now = clock_real_s();
    int rc = signer_wt_verify(wt->iss, &p, reason, body, len, svc->cfg->max_request_bytes, now,
                              wt->names, wt->num_names);
    if (rc == -ENOENT) {
        return false;
    }
    if (rc != 0) {
        svc_item_fail(it,
                      rc == -EPERM ? SIGNER_REASON_TICKET_INVALID : SIGNER_REASON_REQUEST_MALFORMED,
                      reason);
        return true;
    }
    /* The identity is the ticket's; the user must still exist and not be disabled. */
    rc = store_user_get(svc->st, &it->user, p.uri);
    if (rc != 0) {
        svc_item_fail(
            it, rc == -ENOENT ? SIGNER_REASON_TICKET_INVALID : SIGNER_REASON_DIRECTORY_UNREADABLE,
            rc == -ENOENT ? "The ticket's user no longer exists"
                          : "the user directory cannot be read");
        return true;
    }
    if (svc_user_disabled(svc, it->user.uri)) {
        svc_item_fail(it, SIGNER_REASON_TICKET_USER_DISABLED, "The ticket's user is disabled");
        return true;
    }
    rc = svc_webticket_replay_add(svc, p.replay_key, p.replay_until_s, now);
    if (rc == -EEXIST) {
        svc_item_fail(it, SIGNER_REASON_TICKET_REPLAYED,
                      "This ticket and Timestamp were already used: sign a new Timestamp");
        return true;
    }
    if (rc == -EBUSY) {
        svc_item_fail(it, SIGNER_REASON_OVERLOADED,
                      "Too many recent ticket sign-ins to remember; retry after the Retry-After "
                      "delay");
        return true;
    }
    (void)base_str_copy(it->login, sizeof(it->login), "ticket");
    it->signin = true;
    it->cert_auth = true; /* no PIN: nothing for the writer to judge */
    it->proceed = true;
    return true;
}

void svc_webticket_respond(struct service *svc, struct svc_item *it)
{
    ASSERT(it->ticket);
    ASSERT(!it->failed);
    ASSERT(it->proceed);
    size_t len = 0;
    uint64_t t0 = clock_mono_ns();
    int rc =
        signer_wt_issue(svc->wt->iss, svc->scratch, SVC_RESPONSE_MAX, &len, &it->wt, it->user.uri,
                        it->cert_auth, clock_real_s(), svc->cfg->webticket_lifetime_h * 3600u);
    svc_item_stage(svc, it, SVC_STAGE_SIGN, clock_mono_ns() - t0);
    if (rc != 0) {
        svc_item_fail(
            it, rc == -EAGAIN ? SIGNER_REASON_SIGNING_UNAVAILABLE : SIGNER_REASON_SIGNING_FAILED,
            rc == -EAGAIN ? "The key backend cannot sign now" : "Signing failed");
        svc_log_request(svc, it, NULL);
        svc_respond_error(svc, it->req, it->route, it->why, it->reason, it->retry_after_s, NULL,
                          svc->scratch, SVC_RESPONSE_MAX);
        return;
    }
    svc_log_request(svc, it, NULL);
    svc_metrics_request(svc, it->route, SVC_RESULT_OK);
    svc_respond(svc, it->req, 200,
                it->wt.soap12 ? "application/soap+xml; charset=utf-8" : "text/xml; charset=utf-8",
                NULL, svc->scratch, len);
}

void service_webticket_fleet_cas(struct service *svc, const uint8_t *const *ders,
                                 const size_t *lens, size_t num)
{
    if (svc != NULL && svc->wt != NULL && svc->wt->iss != NULL) {
        signer_wt_issuer_fleet_cas(svc->wt->iss, ders, lens, num);
    }
}
