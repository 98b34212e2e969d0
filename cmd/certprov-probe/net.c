/* certprov-probe: the target URL, DNS, connect with a deadline, the TLS client (BoringSSL on a
 * blocking socket with SO_RCVTIMEO/SO_SNDTIMEO) and one HTTP/1.1 exchange per connection. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/mem.h>
#include <openssl/ssl.h>

#include "base/base.h"
#include "cmd/certprov-probe/probe.h"

#define NET_HEAD_MAX (16u * 1024u) /* the answer's status line and header fields */

int probe_url_parse(struct probe_url *out, char *err, size_t err_len, const char *text,
                    const char *default_path)
{
    struct probe_url u = {0};
    const char *p = NULL;
    if (strncasecmp(text, "https://", 8) == 0) {
        u.tls = true;
        u.port = 443;
        p = text + 8;
    } else if (strncasecmp(text, "http://", 7) == 0) {
        u.port = 80;
        p = text + 7;
    } else {
        probe_fmt(err, err_len, "'%s' is not an http:// or https:// URL", text);
        return -EINVAL;
    }
    const char *slash = strchr(p, '/');
    size_t auth_len = slash != NULL ? (size_t)(slash - p) : strlen(p);
    if (memchr(p, '@', auth_len) != NULL || strchr(p, '#') != NULL) {
        probe_fmt(err, err_len, "'%s': user information and fragments are not taken", text);
        return -EINVAL;
    }
    const char *host = p;
    size_t host_len = auth_len;
    const char *port = NULL;
    if (auth_len > 0 && p[0] == '[') {
        const char *close = memchr(p, ']', auth_len);
        if (close == NULL) {
            probe_fmt(err, err_len, "'%s': an IPv6 literal lacks its ']'", text);
            return -EINVAL;
        }
        host = p + 1;
        host_len = (size_t)(close - host);
        port = close + 1 < p + auth_len && close[1] == ':' ? close + 2 : NULL;
    } else {
        const char *colon = memchr(p, ':', auth_len);
        if (colon != NULL) {
            host_len = (size_t)(colon - p);
            port = colon + 1;
        }
    }
    if (host_len == 0 || host_len >= sizeof(u.host)) {
        probe_fmt(err, err_len, "'%s': the host is empty or too long", text);
        return -EINVAL;
    }
    memcpy(u.host, host, host_len);
    if (port != NULL) {
        char *end = NULL;
        unsigned long v = strtoul(port, &end, 10);
        if (end == port || end != p + auth_len || v == 0 || v > 65535) {
            probe_fmt(err, err_len, "'%s': the port is not a number from 1 to 65535", text);
            return -EINVAL;
        }
        u.port = (uint16_t)v;
    }
    const char *path = slash != NULL && slash[1] != '\0' ? slash : default_path;
    if (base_str_copy(u.path, sizeof(u.path), path) != 0) {
        probe_fmt(err, err_len, "'%s': the path is too long", text);
        return -EINVAL;
    }
    for (const char *c = u.path; *c != '\0'; c++) {
        if ((unsigned char)*c <= 0x20 || *c == 0x7f) {
            probe_fmt(err, err_len, "'%s': the path holds a space or a control character", text);
            return -EINVAL;
        }
    }
    *out = u;
    return 0;
}

void probe_url_format(char *out, size_t cap, const struct probe_url *u)
{
    bool v6 = strchr(u->host, ':') != NULL;
    probe_fmt(out, cap, "%s://%s%s%s:%u%s", u->tls ? "https" : "http", v6 ? "[" : "", u->host,
              v6 ? "]" : "", u->port, u->path);
}

int probe_resolve(void *out, uint32_t *out_len, char *err, size_t err_len, const char *host,
                  uint16_t port)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    char port_text[8];
    probe_fmt(port_text, sizeof(port_text), "%u", port);
    /* getaddrinfo has no deadline of its own: the resolver's (resolv.conf timeout, attempts). */
    int rc = getaddrinfo(host, port_text, &hints, &res);
    if (rc != 0) {
        probe_fmt(err, err_len, "cannot resolve '%s': %s", host, gai_strerror(rc));
        return -ENOENT;
    }
    ASSERT(res != NULL);
    ASSERT(res->ai_addrlen <= sizeof(struct sockaddr_storage));
    memcpy(out, res->ai_addr, res->ai_addrlen);
    *out_len = (uint32_t)res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

static void set_timeouts(int fd, uint32_t timeout_ms)
{
    struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    (void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

int probe_tcp_connect(struct probe_conn *c, const void *addr, uint32_t addr_len,
                      uint32_t timeout_ms)
{
    ASSERT(c->fd <= 0);
    ASSERT(timeout_ms > 0);
    const struct sockaddr *sa = addr;
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd == -1) {
        return -errno;
    }
    int rc = 0;
    if (connect(fd, sa, addr_len) == -1) {
        if (errno != EINPROGRESS) {
            rc = -errno;
            goto out;
        }
        struct pollfd pfd = {.fd = fd, .events = POLLOUT};
        int n = poll(&pfd, 1, (int)timeout_ms);
        if (n == 0) {
            rc = -ETIMEDOUT;
            goto out;
        }
        int soerr = 0;
        socklen_t len = sizeof(soerr);
        if (n == -1 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) == -1) {
            rc = -errno;
            goto out;
        }
        if (soerr != 0) {
            rc = -soerr;
            goto out;
        }
    }
    int flags = fcntl(fd, F_GETFL);
    if (flags == -1 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) == -1) {
        rc = -errno;
        goto out;
    }
    set_timeouts(fd, timeout_ms);
    c->fd = fd;
    c->timeout_ms = timeout_ms;
    fd = -1;
out:
    if (fd != -1) {
        close(fd);
    }
    return rc;
}

/* ssl_reason writes BoringSSL's first queued error, or the socket's, into `err`. */
static void ssl_reason(char *err, size_t err_len, const char *what, SSL *ssl, int ret)
{
    int e = SSL_get_error(ssl, ret);
    uint32_t packed = ERR_peek_error();
    if (e == SSL_ERROR_SYSCALL || (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)) {
        int sys = errno;
        bool timed_out = sys == EAGAIN || sys == EWOULDBLOCK || e != SSL_ERROR_SYSCALL;
        probe_fmt(err, err_len, "%s: %s", what,
                  timed_out  ? "no answer within the timeout"
                  : sys != 0 ? strerror(sys)
                             : "the server closed the connection");
    } else if (packed != 0) {
        char buf[256];
        ERR_error_string_n(packed, buf, sizeof(buf));
        probe_fmt(err, err_len, "%s: %s (%s)", what, ERR_reason_error_string(packed), buf);
    } else {
        probe_fmt(err, err_len, "%s: TLS error %d", what, e);
    }
    ERR_clear_error();
}

int probe_tls_handshake(struct probe_conn *c, char *err, size_t err_len, const char *host,
                        X509 *cert, EVP_PKEY *key)
{
    ASSERT(c->fd > 0);
    ASSERT(c->ssl == NULL);
    c->ctx = SSL_CTX_new(TLS_method());
    if (c->ctx == NULL || !SSL_CTX_set_min_proto_version(c->ctx, TLS1_2_VERSION) ||
        !SSL_CTX_set_max_proto_version(c->ctx, TLS1_3_VERSION)) {
        probe_fmt(err, err_len, "cannot create a TLS context");
        return -EPROTO;
    }
    /* The chain is checked by the caller against the trust it chose (probe_chain_check), which
     * can say what is missing; the handshake itself only completes. Nothing is sent before that
     * check has passed. */
    SSL_CTX_set_verify(c->ctx, SSL_VERIFY_NONE, NULL);
    static const uint8_t alpn[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
    c->ssl = SSL_new(c->ctx);
    if (c->ssl == NULL || SSL_set_alpn_protos(c->ssl, alpn, sizeof(alpn)) != 0 ||
        !SSL_set_fd(c->ssl, c->fd) || !SSL_set_tlsext_host_name(c->ssl, host)) {
        probe_fmt(err, err_len, "cannot create a TLS connection");
        return -EPROTO;
    }
    if (cert != NULL && (!SSL_use_certificate(c->ssl, cert) || !SSL_use_PrivateKey(c->ssl, key))) {
        ssl_reason(err, err_len, "the client certificate and key do not go together", c->ssl, 0);
        return -EPROTO;
    }
    ERR_clear_error();
    errno = 0;
    int ret = SSL_connect(c->ssl);
    if (ret != 1) {
        ssl_reason(err, err_len, "TLS handshake failed", c->ssl, ret);
        return -EPROTO;
    }
    return 0;
}

void probe_conn_close(struct probe_conn *c)
{
    if (c->ssl != NULL) {
        (void)SSL_shutdown(c->ssl); /* close_notify; the answer is not awaited */
        SSL_free(c->ssl);
        c->ssl = NULL;
    }
    SSL_CTX_free(c->ctx);
    c->ctx = NULL;
    if (c->fd > 0) {
        close(c->fd);
    }
    c->fd = 0;
}

static int conn_write(struct probe_conn *c, char *err, size_t err_len, const void *p, size_t len)
{
    const uint8_t *b = p;
    while (len > 0) {
        size_t chunk = len > (1u << 30) ? (1u << 30) : len;
        ssize_t n = 0;
        if (c->ssl != NULL) {
            errno = 0;
            int r = SSL_write(c->ssl, b, (int)chunk);
            if (r <= 0) {
                ssl_reason(err, err_len, "sending the request", c->ssl, r);
                return -EIO;
            }
            n = r;
        } else {
            n = send(c->fd, b, chunk, MSG_NOSIGNAL);
            if (n == -1) {
                bool to = errno == EAGAIN || errno == EWOULDBLOCK;
                probe_fmt(err, err_len, "sending the request: %s",
                          to ? "no progress within the timeout" : strerror(errno));
                return to ? -ETIMEDOUT : -EIO;
            }
        }
        b += n;
        len -= (size_t)n;
    }
    return 0;
}

/* conn_read reads what is there (at most cap). Returns bytes, 0 at the end, or a negative errno
 * with the reason in err. */
static ssize_t conn_read(struct probe_conn *c, char *err, size_t err_len, uint8_t *p, size_t cap)
{
    if (c->ssl != NULL) {
        errno = 0;
        int r = SSL_read(c->ssl, p, cap > INT32_MAX ? INT32_MAX : (int)cap);
        if (r > 0) {
            return r;
        }
        int e = SSL_get_error(c->ssl, r);
        if (e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && errno == 0)) {
            ERR_clear_error();
            return 0; /* close_notify, or a close without one after Connection: close */
        }
        ssl_reason(err, err_len, "reading the answer", c->ssl, r);
        return errno == EAGAIN || errno == EWOULDBLOCK ? -ETIMEDOUT : -EIO;
    }
    ssize_t n = recv(c->fd, p, cap, 0);
    if (n == -1) {
        bool to = errno == EAGAIN || errno == EWOULDBLOCK;
        probe_fmt(err, err_len, "reading the answer: %s",
                  to ? "no answer within the timeout" : strerror(errno));
        return to ? -ETIMEDOUT : -EIO;
    }
    return n;
}

/* header_value copies the value of header `name` from the header block into out ("" if absent). */
static void header_value(char *out, size_t cap, const char *head, const char *name)
{
    size_t nlen = strlen(name);
    out[0] = '\0';
    for (const char *line = strstr(head, "\r\n"); line != NULL; line = strstr(line, "\r\n")) {
        line += 2;
        if (strncasecmp(line, name, nlen) == 0 && line[nlen] == ':') {
            const char *v = line + nlen + 1;
            while (*v == ' ' || *v == '\t') {
                v++;
            }
            const char *end = strstr(v, "\r\n");
            size_t len = end != NULL ? (size_t)(end - v) : strlen(v);
            len = len < cap - 1 ? len : cap - 1;
            memcpy(out, v, len);
            out[len] = '\0';
            return;
        }
    }
}

/* read_answer reads until the end of the connection or Content-Length into buf (cap bytes). */
static int read_answer(struct probe_conn *c, char *err, size_t err_len, uint8_t *buf, size_t cap,
                       size_t *out_len, size_t *out_head_len, long *out_clen)
{
    size_t len = 0;
    size_t head_len = 0;
    long clen = -1;
    for (;;) { /* bounded by cap: every turn reads at least one byte or ends */
        if (len == cap) {
            probe_fmt(err, err_len, "the answer exceeds %zu bytes", cap);
            return -E2BIG;
        }
        ssize_t n = conn_read(c, err, err_len, buf + len, cap - len);
        if (n < 0) {
            return (int)n;
        }
        if (n == 0) {
            break;
        }
        len += (size_t)n;
        if (head_len == 0) {
            uint8_t *end = memmem(buf, len, "\r\n\r\n", 4);
            if (end == NULL && len > NET_HEAD_MAX) {
                probe_fmt(err, err_len, "the answer's header exceeds %u bytes", NET_HEAD_MAX);
                return -EBADMSG;
            }
            if (end != NULL) {
                head_len = (size_t)(end - buf) + 4;
                char cl[32];
                end[2] = '\0'; /* temporarily: the header block as a string */
                header_value(cl, sizeof(cl), (const char *)buf, "Content-Length");
                end[2] = '\r';
                clen = cl[0] != '\0' ? strtol(cl, NULL, 10) : -1;
            }
        }
        if (head_len > 0 && clen >= 0 && len - head_len >= (size_t)clen) {
            break;
        }
    }
    if (head_len == 0) {
        probe_fmt(err, err_len, "%s",
                  len == 0 ? "the server closed the connection without answering"
                           : "the answer is not HTTP (no end of header)");
        return -EBADMSG;
    }
    *out_len = len;
    *out_head_len = head_len;
    *out_clen = clen;
    return 0;
}

int probe_http_exchange(struct probe_conn *c, struct probe_http *resp, char *err, size_t err_len,
                        const char *method, const char *host, const char *path,
                        const char *content_type, const char *auth, const char *body,
                        size_t body_len)
{
    ASSERT(resp->body != NULL);
    ASSERT(c->fd > 0);
    static char head[NET_HEAD_MAX];
    bool v6 = strchr(host, ':') != NULL;
    int n = snprintf(head, sizeof(head),
                     "%s %s HTTP/1.1\r\nHost: %s%s%s\r\nUser-Agent: certprov-probe\r\n"
                     "Connection: close\r\n%s%s%s%s%s",
                     method, path, v6 ? "[" : "", host, v6 ? "]" : "", auth != NULL ? auth : "",
                     auth != NULL ? "\r\n" : "", content_type != NULL ? "Content-Type: " : "",
                     content_type != NULL ? content_type : "", content_type != NULL ? "\r\n" : "");
    ASSERT(n > 0 && (size_t)n < sizeof(head) - 64);
    n += snprintf(head + n, sizeof(head) - (size_t)n,
                  body != NULL ? "Content-Length: %zu\r\n\r\n" : "\r\n", body_len);
    int rc = conn_write(c, err, err_len, head, (size_t)n);
    OPENSSL_cleanse(head, sizeof(head)); /* it may hold Basic credentials: the PIN */
    if (rc == 0 && body != NULL) {
        rc = conn_write(c, err, err_len, body, body_len);
    }
    if (rc != 0) {
        return rc;
    }
    /* The whole answer goes into the caller's body buffer, then the body is moved to its start. */
    uint8_t *buf = resp->body;
    size_t len = 0;
    size_t head_len = 0;
    long clen = -1;
    rc = read_answer(c, err, err_len, buf, PROBE_BODY_MAX, &len, &head_len, &clen);
    if (rc != 0) {
        return rc;
    }
    buf[head_len - 2] = '\0';
    int major = 0;
    int minor = 0;
    int status = 0;
    if (sscanf((const char *)buf, "HTTP/%d.%d %d", &major, &minor, &status) != 3 || major != 1 ||
        status < 100 || status > 999) {
        probe_fmt(err, err_len, "the answer is not HTTP/1.x");
        return -EBADMSG;
    }
    resp->status = status;
    header_value(resp->diagnostics, sizeof(resp->diagnostics), (const char *)buf,
                 "X-Ms-diagnostics");
    header_value(resp->content_type, sizeof(resp->content_type), (const char *)buf, "Content-Type");
    size_t blen = len - head_len;
    if (clen >= 0 && (size_t)clen < blen) {
        blen = (size_t)clen;
    }
    if (clen >= 0 && (size_t)clen > blen) {
        probe_fmt(err, err_len, "the answer ended after %zu of its %ld bytes", blen, clen);
        return -EBADMSG;
    }
    memmove(buf, buf + head_len, blen);
    buf[blen] = '\0';
    resp->body_len = blen;
    return 0;
}
