/* certprov-bench: the renewal identities of renew-mtls. Each user the run renews gets a key and a
 * certificate from the appliance before the run, the way a phone gets its first one: EST
 * simpleenroll with the PIN (plain HTTP on one keep-alive connection: the setup is not
 * measured, and a fresh P-256 key takes microseconds, so nothing is cached). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <openssl/base64.h>
#include <openssl/bytestring.h>
#include <openssl/ec.h>
#include <openssl/ec_key.h>
#include <openssl/evp.h>
#include <openssl/mem.h>
#include <openssl/nid.h>
#include <openssl/pkcs7.h>
#include <openssl/x509.h>

#include "base/base.h"
#include "cmd/certprov-bench/bench.h"

#define IDENT_TIMEOUT_S 10    /* one enrollment's answer */
#define IDENT_ANSWER_MAX 8192 /* an EST answer (base64 PKCS#7 of one certificate) is ~1 KiB */
#define IDENT_REQ_MAX 4096

/* key_csr makes a P-256 key and a CSR for it naming `cn`, base64 DER into csr64 (NUL-ended). */
static int key_csr(EVP_PKEY **out_key, char *csr64, size_t cap, const char *cn)
{
    struct bench_csr csr;
    size_t b64_len = 0;
    if (bench_csr_make(out_key, &csr, cn) != 0) {
        return -EIO;
    }
    if (!EVP_EncodedLength(&b64_len, csr.der_len) || b64_len > cap) {
        EVP_PKEY_free(*out_key);
        *out_key = NULL;
        return -EIO;
    }
    EVP_EncodeBlock((uint8_t *)csr64, csr.der, csr.der_len);
    return 0;
}

static int tcp_open(const char *host, uint16_t port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    if (inet_pton(AF_INET, host, &a.sin_addr) != 1) {
        return -EINVAL;
    }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd == -1) {
        return -errno;
    }
    struct timeval tv = {.tv_sec = IDENT_TIMEOUT_S};
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    (void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (connect(fd, (const struct sockaddr *)&a, sizeof(a)) == -1) {
        int rc = -errno;
        (void)close(fd);
        return rc;
    }
    return fd;
}

/* exchange sends `req` and reads one answer (Content-Length framed) into buf; returns the HTTP
 * status with *out_body and *out_body_len set, or a negative errno. *out_close: the server closes.
 */
static int exchange(int fd, const char *req, size_t req_len, char *buf, size_t cap,
                    const char **out_body, size_t *out_body_len, bool *out_close)
{
    if (send(fd, req, req_len, MSG_NOSIGNAL) != (ssize_t)req_len) {
        return -EIO;
    }
    size_t len = 0;
    for (;;) {
        if (len + 1 >= cap) {
            return -E2BIG;
        }
        ssize_t n = recv(fd, buf + len, cap - 1 - len, 0);
        if (n <= 0) {
            return n == 0 ? -ECONNRESET : -errno;
        }
        len += (size_t)n;
        buf[len] = '\0';
        const char *hend = strstr(buf, "\r\n\r\n");
        const char *cl = strcasestr(buf, "\r\nContent-Length:");
        if (hend == NULL || cl == NULL || cl > hend) {
            continue;
        }
        size_t hlen = (size_t)(hend - buf) + 4;
        size_t body_len = strtoul(cl + 17, NULL, 10);
        if (len < hlen + body_len) {
            continue;
        }
        *out_body = buf + hlen;
        *out_body_len = body_len;
        *out_close = strcasestr(buf, "\r\nConnection: close") != NULL &&
                     strcasestr(buf, "\r\nConnection: close") < hend;
        return memcmp(buf, "HTTP/1.1 ", 9) == 0 ? atoi(buf + 9) : -EBADMSG;
    }
}

/* cert_from_p7 decodes the base64 PKCS#7 of an EST answer and returns the certificate of `key`. */
static X509 *cert_from_p7(const char *b64, size_t len, EVP_PKEY *key)
{
    uint8_t *clean = malloc(len + 1);
    uint8_t *der = malloc(len);
    STACK_OF(X509) *certs = sk_X509_new_null();
    X509 *found = NULL;
    size_t n = 0;
    size_t der_len = 0;
    if (clean == NULL || der == NULL || certs == NULL) {
        goto out;
    }
    for (size_t i = 0; i < len; i++) {
        if (b64[i] != '\r' && b64[i] != '\n' && b64[i] != ' ') {
            clean[n++] = (uint8_t)b64[i];
        }
    }
    CBS cbs;
    if (!EVP_DecodeBase64(der, &der_len, len, clean, n)) {
        goto out;
    }
    CBS_init(&cbs, der, der_len);
    if (!PKCS7_get_certificates(certs, &cbs)) {
        goto out;
    }
    for (size_t i = 0; i < sk_X509_num(certs) && found == NULL; i++) {
        X509 *c = sk_X509_value(certs, i);
        if (X509_check_private_key(c, key) == 1) {
            found = X509_up_ref(c) ? c : NULL;
        }
    }
out:
    sk_X509_pop_free(certs, X509_free);
    free(der);
    free(clean);
    return found;
}

int bench_idents_enroll(struct bench_ident *out, uint32_t num, const char *host, uint16_t port)
{
    ASSERT(num > 0 && num <= BENCH_USERS_MAX);
    memset(out, 0, (size_t)num * sizeof(*out));
    char *buf = malloc(IDENT_ANSWER_MAX);
    char *req = malloc(IDENT_REQ_MAX);
    int fd = -1;
    int rc = buf != NULL && req != NULL ? 0 : -ENOMEM;
    for (uint32_t u = 0; rc == 0 && u < num; u++) {
        char name[64];
        char ext[16];
        char pin[16];
        char cred[40];
        char auth[64];
        char csr64[1024];
        bench_user_fill(u, name, ext, pin);
        rc = key_csr(&out[u].key, csr64, sizeof(csr64), name);
        if (rc != 0) {
            fprintf(stderr, "certprov-bench: cannot make a key and CSR for %s\n", name);
            break;
        }
        out[u].user = u;
        int n = snprintf(cred, sizeof(cred), "%s:%s", ext, pin);
        ASSERT(n > 0 && (size_t)n < sizeof(cred));
        EVP_EncodeBlock((uint8_t *)auth, (const uint8_t *)cred, (size_t)n);
        size_t csr_len = strlen(csr64);
        n = snprintf(req, IDENT_REQ_MAX,
                     "POST /.well-known/est/simpleenroll HTTP/1.1\r\nHost: %s\r\n"
                     "Authorization: Basic %s\r\nContent-Type: application/pkcs10\r\n"
                     "Content-Length: %zu\r\n\r\n%s",
                     BENCH_TLS_NAME, auth, csr_len, csr64);
        ASSERT(n > 0 && n < IDENT_REQ_MAX);
        if (fd < 0 && (fd = tcp_open(host, port)) < 0) {
            rc = fd;
            fprintf(stderr, "certprov-bench: renewal setup: cannot connect to %s:%u: %s\n", host,
                    port, strerror(-rc));
            break;
        }
        const char *body = NULL;
        size_t body_len = 0;
        bool close_after = false;
        int status =
            exchange(fd, req, (size_t)n, buf, IDENT_ANSWER_MAX, &body, &body_len, &close_after);
        if (status != 200) {
            fprintf(stderr, "certprov-bench: renewal setup: enrolling %s: %s\n", name,
                    status < 0 ? strerror(-status) : buf);
            rc = status < 0 ? status : -EIO;
            break;
        }
        out[u].cert = cert_from_p7(body, body_len, out[u].key);
        if (out[u].cert == NULL) {
            fprintf(stderr,
                    "certprov-bench: renewal setup: no certificate for %s's key in the "
                    "answer\n",
                    name);
            rc = -EBADMSG;
            break;
        }
        if (close_after) {
            (void)close(fd);
            fd = -1;
        }
    }
    if (fd >= 0) {
        (void)close(fd);
    }
    free(req);
    free(buf);
    if (rc != 0) {
        bench_idents_free(out, num);
    }
    return rc;
}

void bench_idents_free(struct bench_ident *ids, uint32_t num)
{
    for (uint32_t i = 0; i < num; i++) {
        X509_free(ids[i].cert);
        EVP_PKEY_free(ids[i].key);
        ids[i].cert = NULL;
        ids[i].key = NULL;
    }
}
