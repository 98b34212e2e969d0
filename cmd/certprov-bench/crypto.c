/* certprov-bench: the CSR pool (P-256 keys, CN = the user's sign-in name, cached in a file so that
 * key generation is never part of a run and runs repeat exactly) and the crypto ceiling. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bytestring.h>
#include <openssl/curve25519.h>
#include <openssl/ec.h>
#include <openssl/ec_key.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/mem.h>
#include <openssl/nid.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include "base/base.h"
#include "cmd/certprov-bench/bench.h"

#define CACHE_MAGIC "certprov-bench-csrs v1"
#define CEILING_THREADS_MAX 256u
#define CEILING_CHECK_EVERY 32u   /* operations between two clock reads */
#define CEILING_CERT_TBS_LEN 560u /* about the TBSCertificate certprovd signs for a P-256 key */
/* The handshake messages a TLS 1.3 server's CertificateVerify covers (ClientHello, ServerHello,
 * EncryptedExtensions, CertificateRequest, its two-certificate chain): about 2 KiB. BoringSSL
 * hashes them as they pass; one SHA-256 over as many bytes is that cost. */
#define CEILING_TRANSCRIPT_LEN 2048u

void bench_user_fill(uint32_t i, char name[64], char ext[16], char pin[16])
{
    ASSERT(i < BENCH_USERS_MAX);
    snprintf(name, 64, "b%06u@%s", i, BENCH_SIGN_IN_DOMAIN);
    snprintf(ext, 16, "7%06u", i);
    /* 9, two digits, 0, two digits: never a run of one digit or a sequence, never the
     * extension (which starts with 7); distinct for i < 10000, which is plenty for a bench. */
    snprintf(pin, 16, "9%02u0%02u%u", (i / 100) % 100, i % 100, i / 10000);
}

int bench_csr_make(EVP_PKEY **out_key, struct bench_csr *out, const char *cn)
{
    int rc = -EIO;
    EVP_PKEY *pkey = EVP_PKEY_new();
    EC_KEY *ec = EC_KEY_new_by_curve_name(NID_X9_62_prime256v1);
    X509_REQ *req = X509_REQ_new();
    X509_NAME *name = X509_NAME_new();
    uint8_t *der = NULL;
    if (pkey == NULL || ec == NULL || req == NULL || name == NULL || !EC_KEY_generate_key(ec) ||
        !EVP_PKEY_assign_EC_KEY(pkey, ec)) {
        goto out;
    }
    ec = NULL; /* owned by pkey */
    if (!X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const uint8_t *)cn, -1, -1, 0) ||
        !X509_REQ_set_version(req, X509_REQ_VERSION_1) || !X509_REQ_set_subject_name(req, name) ||
        !X509_REQ_set_pubkey(req, pkey) || !X509_REQ_sign(req, pkey, EVP_sha256())) {
        goto out;
    }
    int len = i2d_X509_REQ(req, &der);
    if (len <= 0 || (size_t)len > sizeof(out->der)) {
        goto out;
    }
    memcpy(out->der, der, (size_t)len);
    out->der_len = (uint16_t)len;
    if (out_key != NULL) {
        *out_key = pkey;
        pkey = NULL;
    }
    rc = 0;
out:
    OPENSSL_free(der);
    X509_NAME_free(name);
    X509_REQ_free(req);
    EC_KEY_free(ec);
    EVP_PKEY_free(pkey);
    return rc;
}

static int cache_read(struct bench_csr *out, uint32_t num, uint32_t num_users, const char *path)
{
    FILE *f = fopen(path, "rbe");
    if (f == NULL) {
        return -ENOENT;
    }
    char want[96];
    char got[96];
    snprintf(want, sizeof(want), "%s num=%u users=%u\n", CACHE_MAGIC, num, num_users);
    int rc = 0;
    if (fgets(got, sizeof(got), f) == NULL || strcmp(got, want) != 0) {
        rc = -EBADMSG;
    }
    for (uint32_t i = 0; rc == 0 && i < num; i++) {
        uint8_t len_be[2];
        if (fread(len_be, 1, 2, f) != 2) {
            rc = -EBADMSG;
            break;
        }
        uint16_t len = (uint16_t)((len_be[0] << 8) | len_be[1]);
        if (len == 0 || len > BENCH_CSR_DER_MAX || fread(out[i].der, 1, len, f) != len) {
            rc = -EBADMSG;
            break;
        }
        out[i].der_len = len;
    }
    fclose(f);
    return rc;
}

static int cache_write(const struct bench_csr *csrs, uint32_t num, uint32_t num_users,
                       const char *path)
{
    char tmp[BENCH_PATH_MAX + 16];
    snprintf(tmp, sizeof(tmp), "%s.%d", path, (int)getpid());
    FILE *f = fopen(tmp, "wbe");
    if (f == NULL) {
        return -errno;
    }
    bool ok = fprintf(f, "%s num=%u users=%u\n", CACHE_MAGIC, num, num_users) > 0;
    for (uint32_t i = 0; ok && i < num; i++) {
        uint8_t len_be[2] = {(uint8_t)(csrs[i].der_len >> 8), (uint8_t)csrs[i].der_len};
        ok = fwrite(len_be, 1, 2, f) == 2 &&
             fwrite(csrs[i].der, 1, csrs[i].der_len, f) == csrs[i].der_len;
    }
    ok = fclose(f) == 0 && ok;
    if (!ok || rename(tmp, path) == -1) {
        (void)unlink(tmp);
        return -EIO;
    }
    return 0;
}

int bench_csr_pool_load(struct bench_csr *out, uint32_t num, uint32_t num_users,
                        const char *cache_path)
{
    ASSERT(num > 0 && num <= BENCH_CSRS_MAX);
    ASSERT(num_users > 0 && num_users <= BENCH_USERS_MAX);
    if (cache_path != NULL && cache_read(out, num, num_users, cache_path) == 0) {
        return 0;
    }
    /* Single-threaded: 1000 P-256 keys and CSRs take about 0.1 s; the cache makes it once. */
    for (uint32_t i = 0; i < num; i++) {
        char name[64];
        char ext[16];
        char pin[16];
        bench_user_fill(i % num_users, name, ext, pin);
        int rc = bench_csr_make(NULL, &out[i], name);
        if (rc != 0) {
            return rc;
        }
    }
    if (cache_path != NULL && cache_write(out, num, num_users, cache_path) != 0) {
        fprintf(stderr, "certprov-bench: warning: cannot write the CSR cache %s\n", cache_path);
    }
    return 0;
}

/* ---- the ceiling ---- */

enum ceiling_op {
    CEILING_ENROLL,
    CEILING_SIGN,
    CEILING_VERIFY,
    CEILING_HS_FULL,
    CEILING_HS_RESUMED
};

struct ceiling_thread {
    pthread_t tid;
    enum ceiling_op op;
    uint64_t deadline_ns;
    uint64_t ops;
    uint64_t cpu_ns;
    int rc;
};

static uint64_t thread_cpu_ns(void)
{
    struct timespec ts;
    int rc = clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    ASSERT(rc == 0);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ecdhe_server does the server's part of an X25519 key exchange: its key share and the shared
 * secret with the client's share (what BoringSSL's server computes for a TLS 1.3 key_share or
 * a TLS 1.2 ECDHE ServerKeyExchange). */
static void ecdhe_server(const uint8_t client_pub[32])
{
    uint8_t pub[32];
    uint8_t priv[32];
    uint8_t secret[32];
    X25519_keypair(pub, priv);
    int ok = X25519(secret, priv, client_pub);
    ASSERT(ok == 1);
    OPENSSL_cleanse(priv, sizeof(priv));
}

/* One enrollment's crypto: hash the CSR and verify its self-signature with the device's key,
 * hash a certificate-sized TBS and sign it with the CA key. Keys are per thread. A handshake's
 * server crypto (CEILING_HS_*): the ECDHE, and for a full one the CertificateVerify signature
 * (SHA-256 transcript hash, ECDSA P-256 with the server key). */
static void *ceiling_main(void *arg)
{
    struct ceiling_thread *t = arg;
    t->rc = -EIO;
    EC_KEY *dev = EC_KEY_new_by_curve_name(NID_X9_62_prime256v1);
    EC_KEY *ca = EC_KEY_new_by_curve_name(NID_X9_62_prime256v1);
    uint8_t csr_tbs[200];
    uint8_t cert_tbs[CEILING_CERT_TBS_LEN];
    uint8_t transcript[CEILING_TRANSCRIPT_LEN];
    uint8_t client_pub[32];
    uint8_t client_priv[32];
    uint8_t csr_sig[80]; /* ECDSA_size of P-256 is 72 */
    uint8_t sig[80];
    unsigned csr_sig_len = 0;
    uint8_t digest[SHA256_DIGEST_LENGTH];
    if (dev == NULL || ca == NULL || !EC_KEY_generate_key(dev) || !EC_KEY_generate_key(ca)) {
        goto out;
    }
    RAND_bytes(csr_tbs, sizeof(csr_tbs));
    RAND_bytes(cert_tbs, sizeof(cert_tbs));
    RAND_bytes(transcript, sizeof(transcript));
    X25519_keypair(client_pub, client_priv);
    SHA256(csr_tbs, sizeof(csr_tbs), digest);
    if (!ECDSA_sign(0, digest, sizeof(digest), csr_sig, &csr_sig_len, dev)) {
        goto out;
    }
    uint64_t cpu0 = thread_cpu_ns();
    uint64_t ops = 0;
    for (;;) {
        for (uint32_t k = 0; k < CEILING_CHECK_EVERY; k++) {
            if (t->op == CEILING_HS_FULL || t->op == CEILING_HS_RESUMED) {
                ecdhe_server(client_pub);
                if (t->op == CEILING_HS_FULL) {
                    unsigned sig_len = 0;
                    transcript[0] = (uint8_t)ops; /* a new ClientHello random each time */
                    SHA256(transcript, sizeof(transcript), digest);
                    int ok = ECDSA_sign(0, digest, sizeof(digest), sig, &sig_len, ca);
                    ASSERT(ok == 1);
                }
                ops++;
                continue;
            }
            if (t->op != CEILING_SIGN) {
                SHA256(csr_tbs, sizeof(csr_tbs), digest);
                int ok = ECDSA_verify(0, digest, sizeof(digest), csr_sig, csr_sig_len, dev);
                ASSERT(ok == 1);
            }
            if (t->op != CEILING_VERIFY) {
                unsigned sig_len = 0;
                cert_tbs[0] = (uint8_t)ops; /* a different serial each time */
                SHA256(cert_tbs, sizeof(cert_tbs), digest);
                int ok = ECDSA_sign(0, digest, sizeof(digest), sig, &sig_len, ca);
                ASSERT(ok == 1);
            }
            ops++;
        }
        if (clock_mono_ns() >= t->deadline_ns) {
            break;
        }
    }
    t->cpu_ns = thread_cpu_ns() - cpu0;
    t->ops = ops;
    t->rc = 0;
out:
    EC_KEY_free(dev);
    EC_KEY_free(ca);
    return NULL;
}

/* run_ops runs `n` threads of `op` for `ms`; returns ops per second of wall time (all threads)
 * and thread CPU per op. */
static int run_ops(double *out_per_s, double *out_cpu_us, enum ceiling_op op, uint32_t n,
                   uint32_t ms)
{
    struct ceiling_thread th[CEILING_THREADS_MAX];
    ASSERT(n > 0 && n <= CEILING_THREADS_MAX);
    uint64_t t0 = clock_mono_ns();
    for (uint32_t i = 0; i < n; i++) {
        th[i] = (struct ceiling_thread){.op = op, .deadline_ns = t0 + (uint64_t)ms * 1000000ull};
        if (pthread_create(&th[i].tid, NULL, ceiling_main, &th[i]) != 0) {
            ASSERT(!"pthread_create failed");
        }
    }
    uint64_t ops = 0;
    uint64_t cpu = 0;
    int rc = 0;
    for (uint32_t i = 0; i < n; i++) {
        int joined = pthread_join(th[i].tid, NULL);
        ASSERT(joined == 0);
        if (th[i].rc != 0) {
            rc = th[i].rc;
        }
        ops += th[i].ops;
        cpu += th[i].cpu_ns;
    }
    double wall_s = (double)(clock_mono_ns() - t0) / 1e9;
    if (rc != 0) {
        return rc;
    }
    if (ops == 0) {
        return -EIO;
    }
    *out_per_s = (double)ops / wall_s;
    *out_cpu_us = (double)cpu / 1e3 / (double)ops;
    return 0;
}

int bench_ceiling_measure(struct bench_ceiling *out, uint32_t threads, uint32_t ms, bool tls)
{
    ASSERT(threads > 0 && threads <= CEILING_THREADS_MAX);
    ASSERT(ms >= 100);
    double cpu_us = 0;
    struct bench_ceiling c = {.threads = threads};
    int rc = run_ops(&c.sign_per_s_core, &cpu_us, CEILING_SIGN, 1, ms / 5);
    if (rc != 0) {
        return rc;
    }
    rc = run_ops(&c.verify_per_s_core, &cpu_us, CEILING_VERIFY, 1, ms / 5);
    if (rc != 0) {
        return rc;
    }
    rc = run_ops(&c.ops_per_s, &c.cpu_us_per_op, CEILING_ENROLL, threads, ms);
    if (rc != 0) {
        return rc;
    }
    if (tls) {
        double per_s = 0;
        rc = run_ops(&per_s, &c.hs_full_cpu_us, CEILING_HS_FULL, threads, ms / 2);
        if (rc != 0) {
            return rc;
        }
        rc = run_ops(&per_s, &c.hs_resumed_cpu_us, CEILING_HS_RESUMED, threads, ms / 4);
        if (rc != 0) {
            return rc;
        }
        c.tls = true;
    }
    *out = c;
    return 0;
}
