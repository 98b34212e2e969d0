/* bench_hsm: signing throughput of the key backends alone (no network, no store), to tell the
 * token's own cost from the signing pool's (issue 13's bar compares enrollments through both).
 *
 * For a P-256 key it signs 64-byte messages in batches of 16 from 2 threads for about
 * BENCH_CASE_NS each and prints one line per case:
 *   hsm_soft_p256 <signatures_per_s> <p50_us> <p99_us>      (BoringSSL, in process)
 *   hsm_pkcs11_p256 <signatures_per_s> <p50_us> <p99_us>    (SoftHSM2, 4 sessions)
 * (latency per batch). The SoftHSM2 case makes a token of its own under /var/tmp and is skipped
 * (a line "hsm_pkcs11_p256 skipped: ...") when SoftHSM2 is not installed. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/base.h"
#include "hsm/hsm.h"

#define BENCH_CASE_NS 3000000000ull
#define BENCH_THREADS 2
#define BENCH_BATCH 16
#define BENCH_LAT_MAX 200000
#define SOFTHSM_MODULE "/usr/lib/softhsm/libsofthsm2.so"

struct worker {
    struct hsm_key *key;
    uint64_t until_ns;
    uint64_t signed_ok;
    uint64_t failed;
    uint32_t num_lat;
    uint32_t *lat_us;
};

static void *sign_worker_main(void *arg)
{
    struct worker *w = arg;
    uint8_t msg[BENCH_BATCH][64];
    uint8_t sig[BENCH_BATCH][HSM_SIG_MAX];
    struct hsm_sign_item items[BENCH_BATCH];
    for (uint32_t i = 0; i < BENCH_BATCH; i++) {
        memset(msg[i], (int)i, sizeof(msg[i]));
    }
    for (;;) { /* bounded by until_ns */
        uint64_t t0 = clock_mono_ns();
        if (t0 >= w->until_ns) {
            break;
        }
        for (uint32_t i = 0; i < BENCH_BATCH; i++) {
            items[i] = (struct hsm_sign_item){
                .tbs = msg[i], .tbs_len = sizeof(msg[i]), .sig = sig[i], .sig_len = sizeof(sig[i])};
        }
        int rc = hsm_key_sign_batch(w->key, items, BENCH_BATCH);
        for (uint32_t i = 0; i < BENCH_BATCH; i++) {
            if (rc == 0 && items[i].rc == 0) {
                w->signed_ok++;
            } else {
                w->failed++;
            }
        }
        if (w->num_lat < BENCH_LAT_MAX) {
            w->lat_us[w->num_lat++] = (uint32_t)((clock_mono_ns() - t0) / 1000);
        }
    }
    return NULL;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a;
    uint32_t y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static int run_case(const char *name, struct hsm_key *key)
{
    struct worker w[BENCH_THREADS];
    pthread_t t[BENCH_THREADS];
    uint64_t start = clock_mono_ns();
    for (int i = 0; i < BENCH_THREADS; i++) {
        w[i] = (struct worker){.key = key, .until_ns = start + BENCH_CASE_NS};
        w[i].lat_us = calloc(BENCH_LAT_MAX, sizeof(uint32_t));
        if (w[i].lat_us == NULL || pthread_create(&t[i], NULL, sign_worker_main, &w[i]) != 0) {
            return -ENOMEM;
        }
    }
    uint64_t ok = 0, failed = 0;
    uint32_t n = 0;
    uint32_t *all = calloc((size_t)BENCH_THREADS * BENCH_LAT_MAX, sizeof(uint32_t));
    for (int i = 0; i < BENCH_THREADS; i++) {
        (void)pthread_join(t[i], NULL);
        ok += w[i].signed_ok;
        failed += w[i].failed;
        if (all != NULL) {
            memcpy(all + n, w[i].lat_us, w[i].num_lat * sizeof(uint32_t));
            n += w[i].num_lat;
        }
        free(w[i].lat_us);
    }
    double s = (double)(clock_mono_ns() - start) / 1e9;
    if (all != NULL && n > 0) {
        qsort(all, n, sizeof(uint32_t), cmp_u32);
        printf("%s %.0f %u %u%s\n", name, (double)ok / s, all[n / 2], all[n * 99 / 100],
               failed > 0 ? " (some signatures failed)" : "");
    }
    free(all);
    return failed > 0 ? -EIO : 0;
}

/* token_make initialises a SoftHSM2 token in a directory of its own (SOFTHSM2_CONF). */
static int token_make(char *dir, size_t cap)
{
    snprintf(dir, cap, "/var/tmp/bench-hsm-XXXXXX");
    if (mkdtemp(dir) == NULL) {
        return -errno;
    }
    char cmd[2048];
    snprintf(cmd, sizeof(cmd),
             "mkdir -p %s/tokens && printf 'directories.tokendir = %s/tokens\\n"
             "objectstore.backend = file\\nlog.level = ERROR\\n' > %s/softhsm2.conf && "
             "SOFTHSM2_CONF=%s/softhsm2.conf softhsm2-util --init-token --free --label bench "
             "--pin 1234 --so-pin 12345678 >/dev/null",
             dir, dir, dir, dir);
    if (system(cmd) != 0) {
        return -EIO;
    }
    char conf[320];
    snprintf(conf, sizeof(conf), "%s/softhsm2.conf", dir);
    return setenv("SOFTHSM2_CONF", conf, 1) == 0 ? 0 : -errno;
}

int main(void)
{
    log_setup("bench_hsm", LOG_LEVEL_ERR);
    char dir[256];
    snprintf(dir, sizeof(dir), "/var/tmp/bench-hsm-soft-%d.key", (int)getpid());
    struct hsm_key *soft = NULL;
    int rc = hsm_soft_generate(&soft, dir, HSM_KEY_P256);
    (void)unlink(dir);
    if (rc != 0) {
        fprintf(stderr, "bench_hsm: cannot make a soft key: %s\n", strerror(-rc));
        return 1;
    }
    rc = run_case("hsm_soft_p256", soft);
    hsm_key_free(soft);
    if (access(SOFTHSM_MODULE, R_OK) != 0 || system("command -v softhsm2-util >/dev/null") != 0) {
        printf("hsm_pkcs11_p256 skipped: SoftHSM2 is not installed\n");
        return rc == 0 ? 0 : 1;
    }
    if (token_make(dir, sizeof(dir)) != 0) {
        fprintf(stderr, "bench_hsm: cannot make a SoftHSM2 token\n");
        return 1;
    }
    struct hsm_pkcs11_options o = {.module = SOFTHSM_MODULE,
                                   .uri = "pkcs11:token=bench;object=k?pin-value=1234",
                                   .sessions = 4,
                                   .sign_timeout_ms = 5000};
    char err[256];
    struct hsm_key *p11 = NULL;
    rc = hsm_pkcs11_generate(&p11, err, sizeof(err), &o, HSM_KEY_P256);
    if (rc != 0) {
        fprintf(stderr, "bench_hsm: cannot make the token's key: %s\n", err);
    } else {
        rc = run_case("hsm_pkcs11_p256", p11);
        hsm_key_free(p11);
    }
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "bench_hsm: cannot remove %s\n", dir);
    }
    return rc == 0 ? 0 : 1;
}
