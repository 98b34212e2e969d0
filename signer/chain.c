/* chain.c: the chain checker (does a certificate lead, by signatures, through CA certificates
 * that are valid now, to one of a set of trusted roots?) and sets of PEM certificates. Pure:
 * no files except signer_cert_set_read, no clock (the caller gives `now`). Start-up and
 * certprovctl only: it allocates (BoringSSL's X509). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "base/base.h"
#include "signer/internal.h"

#define CHAIN_FILE_MAX (SIGNER_CHAIN_MAX * 2 * SIGNER_CERT_DER_MAX) /* PEM bytes of a set */

/* one parsed certificate of the checker */
struct node {
    X509 *x;
    EVP_PKEY *key;
    int64_t not_before_s;
    int64_t not_after_s;
};

static int64_t time_unix(const ASN1_TIME *t)
{
    int64_t s = 0;
    return signer_asn1_time_unix(t, &s) ? s : INT64_MIN;
}

static int node_parse(struct node *n, const struct signer_der *d)
{
    const uint8_t *p = d->der;
    n->x = d2i_X509(NULL, &p, (long)d->der_len);
    if (n->x == NULL || p != d->der + d->der_len) {
        ERR_clear_error();
        return -EBADMSG;
    }
    n->key = X509_get_pubkey(n->x);
    n->not_before_s = time_unix(X509_get0_notBefore(n->x));
    n->not_after_s = time_unix(X509_get0_notAfter(n->x));
    /* Computes the extension flags once; EXFLAG_INVALID marks a malformed extension. */
    uint32_t flags = X509_get_extension_flags(n->x);
    if (n->key == NULL || n->not_before_s == INT64_MIN || n->not_after_s == INT64_MIN ||
        (flags & EXFLAG_INVALID) != 0) {
        ERR_clear_error();
        return -EBADMSG;
    }
    return 0;
}

static void node_free(struct node *n)
{
    X509_free(n->x);
    EVP_PKEY_free(n->key);
    n->x = NULL;
    n->key = NULL;
}

/* signed_by: `issuer`'s subject is `n`'s issuer (1 name match and signature; 0 name only;
 * -1 other name). */
static int signed_by(const struct node *n, const struct node *issuer)
{
    if (X509_NAME_cmp(X509_get_issuer_name(n->x), X509_get_subject_name(issuer->x)) != 0) {
        return -1;
    }
    int ok = X509_verify(n->x, issuer->key) == 1;
    ERR_clear_error();
    return ok ? 1 : 0;
}

static bool same_der(const struct node *a, const struct node *b)
{
    return X509_cmp(a->x, b->x) == 0;
}

/* fault records what is wrong with `n` (chain[index], or anchors[index] when at_anchor). */
static int fault(struct signer_chain_result *r, enum signer_chain_fault f, const struct node *n,
                 const struct signer_der *d, size_t index, bool at_anchor)
{
    r->fault = f;
    r->index = index;
    r->at_anchor = at_anchor;
    struct signer_cert_info info;
    if (signer_cert_info_der(&info, d->der, d->der_len) == 0) {
        memcpy(r->subject, info.subject, sizeof(r->subject));
        memcpy(r->issuer, info.issuer, sizeof(r->issuer));
    }
    if (n != NULL) {
        r->not_before_s = n->not_before_s;
        r->not_after_s = n->not_after_s;
    }
    return f == SIGNER_CHAIN_MALFORMED ? -EBADMSG : -EPERM;
}

/* ca_fault says why `n` cannot be a CA with `below` CA certificates under it, or OK. A trusted
 * root (`anchor`) may be a v1 certificate and may lack keyUsage (RFC 5280 §6.1: a trust anchor
 * is a name and a key); every other CA needs basicConstraints CA:TRUE and keyCertSign. */
static enum signer_chain_fault ca_fault(const struct node *n, size_t below, bool anchor)
{
    uint32_t flags = X509_get_extension_flags(n->x);
    bool is_ca = anchor ? X509_check_ca(n->x) != 0 : (flags & EXFLAG_CA) != 0;
    if (!is_ca) {
        return SIGNER_CHAIN_NOT_CA;
    }
    /* Without the extension X509_get_key_usage allows everything: test its presence first. */
    bool has_ku = (flags & EXFLAG_KUSAGE) != 0;
    if ((!has_ku && !anchor) || (has_ku && (X509_get_key_usage(n->x) & KU_KEY_CERT_SIGN) == 0)) {
        return SIGNER_CHAIN_NO_KEY_CERT_SIGN;
    }
    long pathlen = X509_get_pathlen(n->x);
    if (pathlen >= 0 && (size_t)pathlen < below) {
        return SIGNER_CHAIN_PATHLEN;
    }
    return SIGNER_CHAIN_OK;
}

static enum signer_chain_fault time_fault(const struct node *n, int64_t now_s)
{
    if (now_s < n->not_before_s) {
        return SIGNER_CHAIN_NOT_YET_VALID;
    }
    if (now_s > n->not_after_s) {
        return SIGNER_CHAIN_EXPIRED;
    }
    return SIGNER_CHAIN_OK;
}

static void note_expiry(struct signer_chain_result *r, const struct node *n,
                        const struct signer_der *d)
{
    if (r->first_expiry_s != 0 && r->first_expiry_s <= n->not_after_s) {
        return;
    }
    r->first_expiry_s = n->not_after_s;
    struct signer_cert_info info;
    if (signer_cert_info_der(&info, d->der, d->der_len) == 0) {
        memcpy(r->first_expiry_subject, info.subject, sizeof(r->first_expiry_subject));
    }
}

/* the parsed input of one check */
struct walk {
    struct node chain[SIGNER_CHAIN_MAX];
    struct node anchors[SIGNER_CHAIN_MAX];
    const struct signer_der *chain_der;
    const struct signer_der *anchors_der;
    size_t num_chain;
    size_t num_anchors;
    int64_t now_s;
    bool target_is_ca;
};

/* end_at_anchor checks the trusted root `a` that ends the path above chain[path[num_path-1]]. */
static int end_at_anchor(struct signer_chain_result *r, const struct walk *w, size_t a)
{
    const struct node *n = &w->anchors[a];
    enum signer_chain_fault f = time_fault(n, w->now_s);
    if (f == SIGNER_CHAIN_OK) {
        f = ca_fault(n, r->num_path - 1 + (w->target_is_ca ? 1u : 0u), true);
    }
    if (f != SIGNER_CHAIN_OK) {
        return fault(r, f, n, &w->anchors_der[a], a, true);
    }
    note_expiry(r, n, &w->anchors_der[a]);
    r->anchor = a;
    return 0;
}

/* find_anchor returns the trusted root that is `n` itself or signed it, or SIZE_MAX; *named is
 * set when one has its issuer's name but not the key. */
static size_t find_anchor(const struct walk *w, const struct node *n, bool *named)
{
    for (size_t a = 0; a < w->num_anchors; a++) {
        if (same_der(n, &w->anchors[a])) {
            return a;
        }
    }
    for (size_t a = 0; a < w->num_anchors; a++) {
        int s = signed_by(n, &w->anchors[a]);
        if (s == 1) {
            return a;
        }
        *named = *named || s == 0;
    }
    return SIZE_MAX;
}

static size_t find_issuer(const struct walk *w, const struct signer_chain_result *r,
                          const struct node *n, bool *named)
{
    for (size_t i = 0; i < w->num_chain; i++) {
        bool used = false;
        for (size_t j = 0; j < r->num_path; j++) {
            used = used || r->path[j] == i;
        }
        int s = used ? -1 : signed_by(n, &w->chain[i]);
        if (s == 1) {
            return i;
        }
        *named = *named || s == 0;
    }
    return SIZE_MAX;
}

/* step checks chain[i], the next certificate of the path: 0 when it is fine, else the fault. */
static int step(struct signer_chain_result *r, const struct walk *w, size_t i)
{
    const struct node *n = &w->chain[i];
    size_t pos = r->num_path;
    ASSERT(pos < SIGNER_CHAIN_MAX); /* each step takes a certificate not on the path yet */
    ASSERT(i < w->num_chain);
    r->path[r->num_path++] = (uint8_t)i;
    enum signer_chain_fault f = time_fault(n, w->now_s);
    if (f == SIGNER_CHAIN_OK && (pos > 0 || w->target_is_ca)) {
        f = ca_fault(n, pos - (w->target_is_ca ? 0u : 1u), false);
    }
    if (f != SIGNER_CHAIN_OK) {
        return fault(r, f, n, &w->chain_der[i], i, false);
    }
    note_expiry(r, n, &w->chain_der[i]);
    return 0;
}

static int walk_path(struct signer_chain_result *r, const struct walk *w)
{
    size_t cur = 0;
    for (;;) { /* at most num_chain steps: each takes an unused certificate */
        int rc = step(r, w, cur);
        if (rc != 0) {
            return rc;
        }
        const struct node *n = &w->chain[cur];
        bool named = false;
        size_t a = find_anchor(w, n, &named);
        if (a != SIZE_MAX && same_der(n, &w->anchors[a])) {
            r->anchor = a; /* the path reached a trusted root itself: checked as a step */
            return 0;
        }
        if (a != SIZE_MAX) {
            return end_at_anchor(r, w, a);
        }
        size_t next = find_issuer(w, r, n, &named);
        if (next != SIZE_MAX) {
            cur = next;
            continue;
        }
        enum signer_chain_fault f = SIGNER_CHAIN_ISSUER_NOT_FOUND;
        if (signed_by(n, n) == 1) {
            f = SIGNER_CHAIN_UNTRUSTED_ROOT;
        } else if (named) {
            f = SIGNER_CHAIN_BAD_SIGNATURE;
        }
        return fault(r, f, n, &w->chain_der[cur], cur, false);
    }
}

int signer_chain_check(struct signer_chain_result *out, const struct signer_der *chain,
                       size_t num_chain, const struct signer_der *anchors, size_t num_anchors,
                       int64_t now_s, bool target_is_ca)
{
    ASSERT(out != NULL);
    ASSERT(chain != NULL);
    ASSERT(anchors != NULL || num_anchors == 0);
    memset(out, 0, sizeof(*out));
    out->anchor = SIZE_MAX;
    if (num_chain == 0 || num_chain > SIGNER_CHAIN_MAX || num_anchors > SIGNER_CHAIN_MAX) {
        out->fault = SIGNER_CHAIN_TOO_LONG;
        return -E2BIG;
    }
    struct walk *w = calloc(1, sizeof(*w));
    if (w == NULL) {
        return -ENOMEM;
    }
    *w = (struct walk){.chain_der = chain,
                       .anchors_der = anchors,
                       .num_chain = num_chain,
                       .num_anchors = num_anchors,
                       .now_s = now_s,
                       .target_is_ca = target_is_ca};
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < num_chain; i++) {
        rc = node_parse(&w->chain[i], &chain[i]) != 0
                 ? fault(out, SIGNER_CHAIN_MALFORMED, NULL, &chain[i], i, false)
                 : 0;
    }
    for (size_t i = 0; rc == 0 && i < num_anchors; i++) {
        rc = node_parse(&w->anchors[i], &anchors[i]) != 0
                 ? fault(out, SIGNER_CHAIN_MALFORMED, NULL, &anchors[i], i, true)
                 : 0;
    }
    if (rc == 0) {
        rc = walk_path(out, w);
    }
    for (size_t i = 0; i < SIGNER_CHAIN_MAX; i++) {
        node_free(&w->chain[i]);
        node_free(&w->anchors[i]);
    }
    free(w);
    ASSERT(rc != 0 || out->fault == SIGNER_CHAIN_OK);
    ASSERT(rc != 0 || out->anchor < num_anchors);
    return rc;
}

int signer_chain_result_format(char *out, size_t cap, const struct signer_chain_result *r)
{
    ASSERT(out != NULL);
    ASSERT(r != NULL);
    char t[CLOCK_UTC_LEN];
    const char *who = r->at_anchor ? "the trusted root" : "the certificate";
    int n = 0;
    switch (r->fault) {
    case SIGNER_CHAIN_OK:
        n = snprintf(out, cap, "the chain is good");
        break;
    case SIGNER_CHAIN_MALFORMED:
        n = snprintf(out, cap, "%s number %zu is not a DER certificate this build can read", who,
                     r->index + 1);
        break;
    case SIGNER_CHAIN_EXPIRED:
        clock_format_utc(t, r->not_after_s);
        n = snprintf(out, cap, "%s '%s' expired at %s", who, r->subject, t);
        break;
    case SIGNER_CHAIN_NOT_YET_VALID:
        clock_format_utc(t, r->not_before_s);
        n = snprintf(out, cap, "%s '%s' is not valid before %s", who, r->subject, t);
        break;
    case SIGNER_CHAIN_ISSUER_NOT_FOUND:
        n = snprintf(out, cap,
                     "the issuer '%s' of '%s' is found neither in the chain nor among the "
                     "trusted roots",
                     r->issuer, r->subject);
        break;
    case SIGNER_CHAIN_BAD_SIGNATURE:
        n = snprintf(out, cap,
                     "'%s' is not signed by the key of any certificate named '%s' (its issuer)",
                     r->subject, r->issuer);
        break;
    case SIGNER_CHAIN_UNTRUSTED_ROOT:
        n = snprintf(out, cap, "the chain ends at the root '%s', which is not a trusted root",
                     r->subject);
        break;
    case SIGNER_CHAIN_NOT_CA:
        n = snprintf(out, cap, "%s '%s' is not a CA (no basicConstraints CA:TRUE)", who,
                     r->subject);
        break;
    case SIGNER_CHAIN_NO_KEY_CERT_SIGN:
        n = snprintf(out, cap, "%s '%s' lacks keyUsage keyCertSign", who, r->subject);
        break;
    case SIGNER_CHAIN_PATHLEN:
        n = snprintf(out, cap, "%s '%s' has a pathlen that does not allow the CAs below it", who,
                     r->subject);
        break;
    case SIGNER_CHAIN_TOO_LONG:
        n = snprintf(out, cap, "more than %d certificates", SIGNER_CHAIN_MAX);
        break;
    }
    return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

/* ---- sets of PEM certificates ---- */

int signer_cert_set_parse(struct signer_cert_set *out, const char *pem, size_t pem_len)
{
    ASSERT(out != NULL);
    ASSERT(pem != NULL || pem_len == 0);
    out->num = 0;
    if (pem_len > INT32_MAX) {
        return -E2BIG;
    }
    BIO *bio = BIO_new_mem_buf(pem, (int)pem_len);
    if (bio == NULL) {
        return -ENOMEM;
    }
    int rc = 0;
    for (;;) { /* at most SIGNER_CHAIN_MAX + 1 rounds */
        X509 *x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
        if (x == NULL) {
            uint32_t e = ERR_peek_last_error();
            bool end = ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE;
            rc = end && out->num > 0 ? 0 : -EBADMSG;
            break;
        }
        int len = i2d_X509(x, NULL);
        if (out->num == SIGNER_CHAIN_MAX || len <= 0 || (size_t)len > SIGNER_CERT_DER_MAX) {
            X509_free(x);
            rc = -E2BIG;
            break;
        }
        uint8_t *p = out->der[out->num];
        (void)i2d_X509(x, &p);
        X509_free(x);
        out->certs[out->num] =
            (struct signer_der){.der = out->der[out->num], .der_len = (size_t)len};
        out->num++;
    }
    ERR_clear_error();
    BIO_free(bio);
    if (rc != 0) {
        out->num = 0;
    }
    return rc;
}

int signer_cert_set_read(struct signer_cert_set *out, const char *path)
{
    ASSERT(out != NULL);
    ASSERT(path != NULL);
    out->num = 0;
    char *pem = malloc(CHAIN_FILE_MAX);
    if (pem == NULL) {
        return -ENOMEM;
    }
    size_t len = 0;
    int rc = base_file_read((uint8_t *)pem, &len, CHAIN_FILE_MAX, path);
    if (rc == 0) {
        rc = signer_cert_set_parse(out, pem, len);
    }
    free(pem);
    return rc;
}

bool signer_cert_self_signed(const struct signer_der *d)
{
    ASSERT(d != NULL);
    struct node n = {0};
    bool self = node_parse(&n, d) == 0 && signed_by(&n, &n) == 1;
    node_free(&n);
    return self;
}
