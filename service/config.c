/* The configuration file (README, Configuration), parsed with inih. Every key is checked: unknown
 * sections and keys, bad numbers and impossible combinations are errors that name the file, line
 * and key, because a typo that silently falls back to a default is how appliances end up
 * misconfigured. */
#include <errno.h>
#include <ini.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "base/base.h"
#include "ioring/ioring.h"
#include "service/service.h"

/* err_set writes a message that may be cut at SERVICE_CONFIG_ERR_MAX: it still names the file
 * and line first, which is what the operator needs. */
__attribute__((format(printf, 2, 3))) static void err_set(char *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, SERVICE_CONFIG_ERR_MAX, fmt, ap);
    va_end(ap);
}

struct config_ctx {
    struct service_config *cfg;
    char *err;
    bool failed;
    /* keys whose default follows another key unless the file sets them */
    bool set_conns_per_client, set_inflight_per_client, set_reserve;
};

/* shares_default derives the per-client shares and the reserve from max_connections and
 * max_inflight (the three keys the file does not set). */
static void shares_default(struct service_config *c, const struct config_ctx *ctx)
{
    if (ctx == NULL || !ctx->set_conns_per_client) {
        c->max_connections_per_client = c->max_connections / 4 > 0 ? c->max_connections / 4 : 1;
    }
    if (ctx == NULL || !ctx->set_inflight_per_client) {
        c->max_inflight_per_client = c->max_inflight / 2 > 0 ? c->max_inflight / 2 : 1;
    }
    if (ctx == NULL || !ctx->set_reserve) {
        c->inflight_reserve = c->max_inflight / 16;
    }
}

void service_config_defaults(struct service_config *out)
{
    ASSERT(out != NULL);
    memset(out, 0, sizeof(*out));
    (void)base_str_copy(out->name, sizeof(out->name), "certprov1.example.com");
    (void)base_str_copy(out->listen, sizeof(out->listen), "127.0.0.1:8080");
    out->tls_listen[0] = '\0'; /* no TLS listener unless configured (deploy/certprov.ini has one) */
    out->handshake_timeout_s = 10;
    out->max_handshakes = 512;
    out->ticket_key_rotate_h = 12;
    out->workers = 0;
    out->max_connections = 10000;
    out->max_request_bytes = 65536;
    out->max_header_bytes = 8192;
    out->max_inflight = 256;
    shares_default(out, NULL);
    out->header_timeout_s = 10;
    out->body_timeout_s = 30;
    out->idle_timeout_s = 60;
    (void)base_str_copy(out->proxy_from, sizeof(out->proxy_from), IORING_PROXY_FROM_DEFAULT);
    (void)base_str_copy(out->ca_backend, sizeof(out->ca_backend), "soft");
    out->ca_sessions = 4;
    out->ca_sign_timeout_ms = 2000;
    (void)base_str_copy(out->store_path, sizeof(out->store_path), "var/lib/certprov");
    out->map_size = 4ull << 30;
    out->directory_poll_ms = 5000;
    out->profile =
        (struct signer_profile){.default_hours = 4320, .min_hours = 8, .max_hours = 8760};
    out->user_certs_per_day_max = 20;
    signer_pin_policy_default(&out->pin);
    out->crl_validity_h = 24;
    out->crl_min_interval_s = 10;
    out->ocsp_cache_s = 300;
    out->webticket_lifetime_h = 8;
    out->webticket_replay_max = 1048576; /* ~3,500 ticket enrollments/s, 48 MiB (README) */
}

__attribute__((format(printf, 2, 3))) static int config_fail(struct config_ctx *ctx,
                                                             const char *fmt, ...)
{
    if (!ctx->failed) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(ctx->err, SERVICE_CONFIG_ERR_MAX, fmt, ap);
        va_end(ap);
        ctx->failed = true;
    }
    return 0; /* inih: 0 = error on this line */
}

/* parse_u64 accepts decimal digits with an optional binary unit suffix (KiB, MiB, GiB, TiB). */
static int parse_u64(uint64_t *out, const char *v, bool units, uint64_t min, uint64_t max)
{
    if (v[0] < '0' || v[0] > '9') {
        return -EINVAL;
    }
    errno = 0;
    char *end = NULL;
    unsigned long long n = strtoull(v, &end, 10);
    if (errno != 0) {
        return -EINVAL;
    }
    unsigned shift = 0;
    if (units && *end != '\0') {
        static const char *const names[] = {"KiB", "MiB", "GiB", "TiB"};
        for (unsigned i = 0; i < ARRAY_LEN(names); i++) {
            if (strcasecmp(end, names[i]) == 0) {
                shift = 10 * (i + 1);
                end += strlen(names[i]);
            }
        }
    }
    if (*end != '\0' || n > (UINT64_MAX >> shift)) {
        return -EINVAL;
    }
    uint64_t value = (uint64_t)n << shift;
    if (value < min || value > max) {
        return -ERANGE;
    }
    *out = value;
    return 0;
}

static int set_u32(struct config_ctx *ctx, uint32_t *dst, const char *key, const char *v,
                   uint32_t min, uint32_t max)
{
    uint64_t n = 0;
    if (parse_u64(&n, v, false, min, max) != 0) {
        return config_fail(ctx, "%s must be a whole number from %u to %u, not '%s'", key, min, max,
                           v);
    }
    *dst = (uint32_t)n;
    return 1;
}

static int set_str(struct config_ctx *ctx, char *dst, size_t cap, const char *key, const char *v)
{
    if (base_str_copy(dst, cap, v) != 0) {
        return config_fail(ctx, "%s is too long (at most %zu bytes)", key, cap - 1);
    }
    return 1;
}

static int set_bool(struct config_ctx *ctx, bool *dst, const char *key, const char *v)
{
    if (strcasecmp(v, "on") == 0 || strcasecmp(v, "true") == 0 || strcmp(v, "1") == 0 ||
        strcasecmp(v, "yes") == 0) {
        *dst = true;
    } else if (strcasecmp(v, "off") == 0 || strcasecmp(v, "false") == 0 || strcmp(v, "0") == 0 ||
               strcasecmp(v, "no") == 0) {
        *dst = false;
    } else {
        return config_fail(ctx, "%s must be on or off, not '%s'", key, v);
    }
    return 1;
}

/* set_listen checks an address with the engine's own parser (ioring_listen_check), so that what
 * the load accepts the engine binds: a host name or a bare port used to pass the load and
 * certprovd --check and fail only at start. `may_be_empty`: tls_listen = (no TLS listener). */
static int set_listen(struct config_ctx *ctx, char *dst, size_t cap, const char *key, const char *v,
                      bool may_be_empty)
{
    if (!(may_be_empty && v[0] == '\0') && ioring_listen_check(v) != 0) {
        return config_fail(ctx,
                           "%s must be IPv4:PORT or [IPv6]:PORT with a numeric address, e.g. "
                           "127.0.0.1:8080, 0.0.0.0:8080 or [::]:8080 (no host names), not '%s'",
                           key, v);
    }
    return set_str(ctx, dst, cap, key, v);
}

/* section_server_tls reads the [server] keys of TLS other than tls_listen and device_trust. */
static int section_server_tls(struct config_ctx *ctx, const char *k, const char *v)
{
    struct service_config *c = ctx->cfg;
    if (strcmp(k, "handshake_timeout_s") == 0) {
        return set_u32(ctx, &c->handshake_timeout_s, "[server] handshake_timeout_s", v, 1, 300);
    } else if (strcmp(k, "max_handshakes") == 0) {
        return set_u32(ctx, &c->max_handshakes, "[server] max_handshakes", v, 1, 1000000);
    } else if (strcmp(k, "ticket_keys") == 0) {
        return set_str(ctx, c->ticket_keys, sizeof(c->ticket_keys), "[server] ticket_keys", v);
    } else if (strcmp(k, "ticket_key_rotate_h") == 0) {
        return set_u32(ctx, &c->ticket_key_rotate_h, "[server] ticket_key_rotate_h", v, 1, 168);
    }
    return config_fail(ctx, "unknown key '%s' in [%s]", k, "server");
}

/* set_alt_names reads [server] alt_names: DNS names separated by commas and/or spaces, each a
 * host name like [server] name, none twice (ASCII case ignored), at most SERVICE_ALT_NAMES_MAX.
 * The file's last alt_names line wins, as for every key. */
static int set_alt_names(struct config_ctx *ctx, const char *v)
{
    struct service_config *c = ctx->cfg;
    c->num_alt_names = 0;
    const char *sep = ", \t";
    for (const char *p = v + strspn(v, sep); *p != '\0'; p += strspn(p, sep)) {
        size_t len = strcspn(p, sep);
        if (c->num_alt_names == SERVICE_ALT_NAMES_MAX) {
            return config_fail(ctx, "[server] alt_names has more than %d names",
                               SERVICE_ALT_NAMES_MAX);
        }
        char *dst = c->alt_names[c->num_alt_names];
        if (len > SERVICE_NAME_MAX) {
            return config_fail(ctx, "[server] alt_names: a name is longer than %d bytes",
                               SERVICE_NAME_MAX);
        }
        memcpy(dst, p, len);
        dst[len] = '\0';
        if (!signer_dns_name_ok(dst)) {
            return config_fail(ctx,
                               "[server] alt_names: '%s' is not a DNS host name (letters, digits, "
                               "hyphens and dots)",
                               dst);
        }
        for (uint32_t i = 0; i < c->num_alt_names; i++) {
            if (strcasecmp(c->alt_names[i], dst) == 0) {
                return config_fail(ctx, "[server] alt_names: '%s' is given twice", dst);
            }
        }
        c->num_alt_names++;
        p += len;
    }
    return 1;
}

static int section_server(struct config_ctx *ctx, const char *k, const char *v)
{
    struct service_config *c = ctx->cfg;
    if (strcmp(k, "name") == 0) {
        return set_str(ctx, c->name, sizeof(c->name), "[server] name", v);
    } else if (strcmp(k, "alt_names") == 0) {
        return set_alt_names(ctx, v);
    } else if (strcmp(k, "listen") == 0) {
        return set_listen(ctx, c->listen, sizeof(c->listen), "[server] listen", v, false);
    } else if (strcmp(k, "external_base_url") == 0) {
        if (v[0] != '\0' && !signer_base_url_valid(v)) {
            return config_fail(
                ctx,
                "[server] external_base_url must be http:// or https://, a host and an "
                "optional :port, no path nor trailing '/' (e.g. "
                "https://certprov.example.com), got '%s'",
                v);
        }
        return set_str(ctx, c->external_base_url, sizeof(c->external_base_url),
                       "[server] external_base_url", v);
    } else if (strcmp(k, "tls_listen") == 0) {
        return set_listen(ctx, c->tls_listen, sizeof(c->tls_listen), "[server] tls_listen", v,
                          true);
    } else if (strcmp(k, "workers") == 0) {
        /* The engine runs at most IORING_WORKERS_MAX rings: more cannot be configured. */
        return set_u32(ctx, &c->workers, "[server] workers", v, 0, IORING_WORKERS_MAX);
    } else if (strcmp(k, "max_connections") == 0) {
        return set_u32(ctx, &c->max_connections, "[server] max_connections", v, 1, 1000000);
    } else if (strcmp(k, "max_request_bytes") == 0) {
        /* The SOAP parser takes at most SIGNER_SOAP_BODY_MAX: the limit cannot be larger. */
        return set_u32(ctx, &c->max_request_bytes, "[server] max_request_bytes", v, 1024,
                       SIGNER_SOAP_BODY_MAX);
    } else if (strcmp(k, "max_header_bytes") == 0) {
        return set_u32(ctx, &c->max_header_bytes, "[server] max_header_bytes", v, 256,
                       SIGNER_SOAP_BODY_MAX);
    } else if (strcmp(k, "max_inflight") == 0) {
        return set_u32(ctx, &c->max_inflight, "[server] max_inflight", v, 1, 4096);
    } else if (strcmp(k, "max_connections_per_client") == 0) {
        ctx->set_conns_per_client = true;
        return set_u32(ctx, &c->max_connections_per_client, "[server] max_connections_per_client",
                       v, 1, 1000000);
    } else if (strcmp(k, "max_inflight_per_client") == 0) {
        ctx->set_inflight_per_client = true;
        return set_u32(ctx, &c->max_inflight_per_client, "[server] max_inflight_per_client", v, 1,
                       4096);
    } else if (strcmp(k, "inflight_reserve") == 0) {
        ctx->set_reserve = true;
        return set_u32(ctx, &c->inflight_reserve, "[server] inflight_reserve", v, 0, 4095);
    } else if (strcmp(k, "header_timeout_s") == 0) {
        return set_u32(ctx, &c->header_timeout_s, "[server] header_timeout_s", v, 1, 3600);
    } else if (strcmp(k, "body_timeout_s") == 0) {
        return set_u32(ctx, &c->body_timeout_s, "[server] body_timeout_s", v, 1, 3600);
    } else if (strcmp(k, "idle_timeout_s") == 0) {
        return set_u32(ctx, &c->idle_timeout_s, "[server] idle_timeout_s", v, 1, 86400);
    } else if (strcmp(k, "proxy_protocol") == 0) {
        return set_bool(ctx, &c->proxy_protocol, "[server] proxy_protocol", v);
    } else if (strcmp(k, "proxy_from") == 0) {
        int rc = ioring_cidr_list_check(v);
        if (rc == -E2BIG) {
            return config_fail(ctx, "[server] proxy_from has more than %d blocks",
                               IORING_PROXY_FROM_MAX);
        } else if (rc != 0) {
            return config_fail(ctx,
                               "[server] proxy_from must be comma-separated IPv4 or IPv6 "
                               "addresses or CIDR blocks (e.g. 10.0.0.0/8, ::1/128), not '%s'",
                               v);
        }
        return set_str(ctx, c->proxy_from, sizeof(c->proxy_from), "[server] proxy_from", v);
    } else if (strcmp(k, "device_trust") == 0) {
        return set_str(ctx, c->device_trust, sizeof(c->device_trust), "[server] device_trust", v);
    }
    return section_server_tls(ctx, k, v);
}

static int section_ca(struct config_ctx *ctx, const char *k, const char *v)
{
    struct service_config *c = ctx->cfg;
    if (strcmp(k, "backend") == 0) {
        if (strcmp(v, "soft") != 0 && strcmp(v, "pkcs11") != 0) {
            return config_fail(ctx, "[ca] backend must be soft or pkcs11, not '%s'", v);
        }
        return set_str(ctx, c->ca_backend, sizeof(c->ca_backend), "[ca] backend", v);
    } else if (strcmp(k, "key") == 0) {
        return set_str(ctx, c->ca_key, sizeof(c->ca_key), "[ca] key", v);
    } else if (strcmp(k, "module") == 0) {
        return set_str(ctx, c->ca_module, sizeof(c->ca_module), "[ca] module", v);
    } else if (strcmp(k, "sessions") == 0) {
        return set_u32(ctx, &c->ca_sessions, "[ca] sessions", v, 1, HSM_P11_SESSIONS_MAX);
    } else if (strcmp(k, "sign_timeout_ms") == 0) {
        return set_u32(ctx, &c->ca_sign_timeout_ms, "[ca] sign_timeout_ms", v, 10, 60000);
    }
    return config_fail(ctx, "unknown key '%s' in [%s]", k, "ca");
}

static int section_store(struct config_ctx *ctx, const char *k, const char *v)
{
    struct service_config *c = ctx->cfg;
    if (strcmp(k, "path") == 0) {
        if (v[0] == '\0') {
            /* Found by fuzz_config: it failed later, as "cannot open the store at : ...". */
            return config_fail(ctx, "[store] path must not be empty (the store directory, e.g. "
                                    "var/lib/certprov)");
        }
        return set_str(ctx, c->store_path, sizeof(c->store_path), "[store] path", v);
    } else if (strcmp(k, "map_size") == 0) {
        if (parse_u64(&c->map_size, v, true, 1ull << 20, 1ull << 44) != 0) {
            return config_fail(ctx,
                               "[store] map_size must be a size from 1MiB to 16TiB, e.g. "
                               "4GiB, not '%s'",
                               v);
        }
        return 1;
    }
    return config_fail(ctx, "unknown key '%s' in [%s]", k, "store");
}

static int section_profile(struct config_ctx *ctx, const char *k, const char *v)
{
    struct signer_profile *p = &ctx->cfg->profile;
    if (strcmp(k, "default_hours") == 0) {
        return set_u32(ctx, &p->default_hours, "[profile] default_hours", v, 1, 87600);
    } else if (strcmp(k, "min_hours") == 0) {
        return set_u32(ctx, &p->min_hours, "[profile] min_hours", v, 1, 87600);
    } else if (strcmp(k, "max_hours") == 0) {
        return set_u32(ctx, &p->max_hours, "[profile] max_hours", v, 1, 87600);
    } else if (strcmp(k, "max_certs_per_user_per_day") == 0) {
        return set_u32(ctx, &ctx->cfg->user_certs_per_day_max,
                       "[profile] max_certs_per_user_per_day", v, 0, 100000);
    }
    return config_fail(ctx, "unknown key '%s' in [%s]", k, "profile");
}

static int section_revocation(struct config_ctx *ctx, const char *k, const char *v)
{
    struct service_config *c = ctx->cfg;
    if (strcmp(k, "crl_validity_h") == 0) {
        return set_u32(ctx, &c->crl_validity_h, "[revocation] crl_validity_h", v, 1, 8760);
    } else if (strcmp(k, "crl_min_interval_s") == 0) {
        return set_u32(ctx, &c->crl_min_interval_s, "[revocation] crl_min_interval_s", v, 0, 3600);
    } else if (strcmp(k, "ocsp_cache_s") == 0) {
        return set_u32(ctx, &c->ocsp_cache_s, "[revocation] ocsp_cache_s", v, 0, 86400);
    } else if (strcmp(k, "crl_url") == 0 || strcmp(k, "ocsp_url") == 0) {
        bool crl = k[0] == 'c';
        if (v[0] != '\0' && strncmp(v, "http://", 7) != 0 && strncmp(v, "https://", 8) != 0) {
            return config_fail(ctx, "[revocation] %s must be an http:// or https:// URL, not '%s'",
                               k, v);
        }
        for (const char *p = v; *p != '\0'; p++) {
            if (*p <= 0x20 || *p >= 0x7f) {
                return config_fail(ctx, "[revocation] %s must be printable ASCII without spaces",
                                   k);
            }
        }
        return set_str(ctx, crl ? c->crl_url : c->ocsp_url, sizeof(c->crl_url),
                       crl ? "[revocation] crl_url" : "[revocation] ocsp_url", v);
    }
    return config_fail(ctx, "unknown key '%s' in [%s]", k, "revocation");
}

static int section_pin(struct config_ctx *ctx, const char *k, const char *v)
{
    struct signer_pin_policy *p = &ctx->cfg->pin;
    if (strcmp(k, "min_length") == 0) {
        return set_u32(ctx, &p->min_len, "[pin] min_length", v, 4, SIGNER_PIN_MAX);
    } else if (strcmp(k, "window_s") == 0) {
        return set_u32(ctx, &p->window_s, "[pin] window_s", v, 1, 86400 * 30);
    } else if (strcmp(k, "window_failures") == 0) {
        return set_u32(ctx, &p->window_failures_max, "[pin] window_failures", v, 1, 100000);
    } else if (strcmp(k, "window_failures_4digit") == 0) {
        return set_u32(ctx, &p->window_failures_max_short, "[pin] window_failures_4digit", v, 1,
                       100000);
    } else if (strcmp(k, "lock_s") == 0) {
        return set_u32(ctx, &p->lock_s, "[pin] lock_s", v, 1, 86400 * 30);
    } else if (strcmp(k, "total_failures") == 0) {
        return set_u32(ctx, &p->total_failures_max, "[pin] total_failures", v, 1, 10000000);
    } else if (strcmp(k, "total_failures_4digit") == 0) {
        return set_u32(ctx, &p->total_failures_max_short, "[pin] total_failures_4digit", v, 1,
                       10000000);
    } else if (strcmp(k, "default_country_code") == 0) {
        const char *cc = v[0] == '+' ? v + 1 : v; /* "+1" reads as "1" */
        if (cc[0] != '\0' && !signer_country_code_valid(cc)) {
            return config_fail(ctx,
                               "[pin] default_country_code must be a country calling code: 1 to 3 "
                               "digits, not starting with 0 (e.g. 1 or 49), got '%s'",
                               v);
        }
        memcpy(p->default_country_code, cc, strlen(cc) + 1);
        return 1; /* inih: 1 = this line is good */
    }
    return config_fail(ctx, "unknown key '%s' in [%s]", k, "pin");
}

static bool pool_name_valid(const char *name)
{
    size_t len = strlen(name);
    return len > 0 && len <= STORE_POOL_MAX &&
           strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") == len;
}

static struct service_pool_config *pool_get(struct config_ctx *ctx, const char *name)
{
    struct service_config *c = ctx->cfg;
    for (size_t i = 0; i < c->num_pools; i++) {
        if (strcmp(c->pools[i].name, name) == 0) {
            return &c->pools[i];
        }
    }
    if (c->num_pools == STORE_POOLS_MAX) {
        return NULL;
    }
    struct service_pool_config *p = &c->pools[c->num_pools++];
    memset(p, 0, sizeof(*p));
    (void)base_str_copy(p->name, sizeof(p->name), name);
    (void)base_str_copy(p->store, sizeof(p->store), "embedded");
    return p;
}

static int section_pool(struct config_ctx *ctx, const char *name, const char *k, const char *v)
{
    if (!pool_name_valid(name)) {
        return config_fail(ctx, "bad pool name '%s': use 1-63 letters, digits, '-', '_', '.'",
                           name);
    }
    struct service_pool_config *p = pool_get(ctx, name);
    if (p == NULL) {
        return config_fail(ctx, "too many [pool.*] sections (at most %d)", STORE_POOLS_MAX);
    }
    if (strcmp(k, "store") == 0) {
        if (strcmp(v, "embedded") != 0 && strncmp(v, "postgresql://", 13) != 0 &&
            strncmp(v, "postgres://", 11) != 0) {
            return config_fail(ctx,
                               "[pool.%s] store must be embedded or postgresql://..., "
                               "not '%s'",
                               name, v);
        }
        return set_str(ctx, p->store, sizeof(p->store), "[pool.NAME] store", v);
    }
    return config_fail(ctx, "unknown key '%s' in [pool.%s]", k, name);
}

/* section_webticket reads [webticket] ([MS-OCAUTHWS] §3.2: the Web Ticket Service). */
static int section_webticket(struct config_ctx *ctx, const char *k, const char *v)
{
    struct service_config *c = ctx->cfg;
    if (strcmp(k, "lifetime_h") == 0) {
        return set_u32(ctx, &c->webticket_lifetime_h, "[webticket] lifetime_h", v, 1, 168);
    }
    if (strcmp(k, "replay_max") == 0) {
        return set_u32(ctx, &c->webticket_replay_max, "[webticket] replay_max", v, 1024, 16777216);
    }
    return config_fail(ctx, "unknown key '%s' in [%s]", k, "webticket");
}

static int section_directory(struct config_ctx *ctx, const char *k, const char *v)
{
    struct service_config *c = ctx->cfg;
    if (strcmp(k, "store") == 0) {
        if (strncmp(v, "postgresql://", 13) != 0 && strncmp(v, "postgres://", 11) != 0) {
            return config_fail(ctx, "[directory] store must be postgresql://..., not '%s'", v);
        }
        return set_str(ctx, c->directory, sizeof(c->directory), "[directory] store", v);
    } else if (strcmp(k, "poll_ms") == 0) {
        return set_u32(ctx, &c->directory_poll_ms, "[directory] poll_ms", v, 100, 60000);
    }
    return config_fail(ctx, "unknown key '%s' in [%s]", k, "directory");
}

static int config_handler(void *user, const char *section, const char *k, const char *v)
{
    struct config_ctx *ctx = user;
    if (ctx->failed) {
        return 1; /* Report only the first error; inih returns its line. */
    }
    if (strcmp(section, "server") == 0) {
        return section_server(ctx, k, v);
    } else if (strcmp(section, "ca") == 0) {
        return section_ca(ctx, k, v);
    } else if (strcmp(section, "store") == 0) {
        return section_store(ctx, k, v);
    } else if (strcmp(section, "profile") == 0) {
        return section_profile(ctx, k, v);
    } else if (strcmp(section, "pin") == 0) {
        return section_pin(ctx, k, v);
    } else if (strcmp(section, "revocation") == 0) {
        return section_revocation(ctx, k, v);
    } else if (strcmp(section, "webticket") == 0) {
        return section_webticket(ctx, k, v);
    } else if (strcmp(section, "directory") == 0) {
        return section_directory(ctx, k, v);
    } else if (strncmp(section, "pool.", 5) == 0) {
        return section_pool(ctx, section + 5, k, v);
    }
    return config_fail(ctx, "unknown section [%s] (key '%s')", section, k);
}

/* next_chunk copies the next line of `text` from *pos into `line` as fgets would: up to and
 * including its '\n', at most CONFIG_SCAN_LINE - 1 bytes. Returns false at the end of the text. */
#define CONFIG_SCAN_LINE 512
static bool next_chunk(char line[CONFIG_SCAN_LINE], const char *text, size_t *pos)
{
    const char *p = text + *pos;
    if (*p == '\0') {
        return false;
    }
    size_t len = 0;
    while (p[len] != '\0' && len < CONFIG_SCAN_LINE - 1) {
        len++;
        if (p[len - 1] == '\n') {
            break;
        }
    }
    memcpy(line, p, len);
    line[len] = '\0';
    *pos += len;
    return true;
}

/* inih reports only keys, so a bare "[pool.NAME]" (embedded by default) would vanish: find the
 * pool headers first. Lines are bounded by inih's own limit; longer ones are not headers. */
static void config_scan_pools(struct config_ctx *ctx, const char *text)
{
    char line[CONFIG_SCAN_LINE];
    size_t pos = 0;
    /* Bounded: every chunk consumes at least one byte of the text. */
    while (!ctx->failed && next_chunk(line, text, &pos)) {
        const char *p = line + strspn(line, " \t");
        if (strncmp(p, "[pool.", 6) != 0) {
            continue;
        }
        char *end = strchr(p, ']');
        if (end != NULL) {
            *end = '\0';
            if (!pool_name_valid(p + 6)) {
                (void)config_fail(
                    ctx, "bad pool name '%s': use 1-63 letters, digits, '-', '_', '.'", p + 6);
            } else if (pool_get(ctx, p + 6) == NULL) {
                (void)config_fail(ctx, "too many [pool.*] sections (at most %d)", STORE_POOLS_MAX);
            }
        }
    }
}

/* Whole-file checks that no single line can make. */
/* listens_clash is true when two listen addresses (checked by ioring_listen_check) would share a
 * port: the same address, or either one a wildcard. Port 0 (any free one) never clashes. */
static bool listens_clash(const char *a, const char *b)
{
    const char *pa = strrchr(a, ':');
    const char *pb = strrchr(b, ':');
    if (pa == NULL || pb == NULL || strcmp(pa, pb) != 0 || strcmp(pa, ":0") == 0) {
        return false;
    }
    size_t la = (size_t)(pa - a);
    size_t lb = (size_t)(pb - b);
    bool wild_a = strncmp(a, "0.0.0.0:", 8) == 0 || strncmp(a, "[::]:", 5) == 0;
    bool wild_b = strncmp(b, "0.0.0.0:", 8) == 0 || strncmp(b, "[::]:", 5) == 0;
    return wild_a || wild_b || (la == lb && strncmp(a, b, la) == 0);
}

static int config_check(const struct service_config *c, char *err)
{
    const char *path = c->path;
    const struct signer_profile *p = &c->profile;
    if (!(p->min_hours <= p->default_hours && p->default_hours <= p->max_hours)) {
        err_set(err,
                "%s: [profile] needs min_hours <= default_hours <= max_hours (have %u, %u, %u)",
                path, p->min_hours, p->default_hours, p->max_hours);
        return -EINVAL;
    }
    if (c->name[0] == '\0') {
        err_set(err, "%s: [server] name must not be empty", path);
        return -EINVAL;
    }
    /* The TLS server certificate names it: it must be a DNS name, like alt_names. */
    if (!signer_dns_name_ok(c->name)) {
        err_set(err,
                "%s: [server] name '%s' is not a DNS host name (letters, digits, hyphens and dots)",
                path, c->name);
        return -EINVAL;
    }
    for (uint32_t i = 0; i < c->num_alt_names; i++) {
        if (strcasecmp(c->alt_names[i], c->name) == 0) {
            err_set(err, "%s: [server] alt_names: '%s' is [server] name already", path, c->name);
            return -EINVAL;
        }
    }
    if (c->inflight_reserve >= c->max_inflight) {
        err_set(err, "%s: [server] inflight_reserve (%u) must be below max_inflight (%u)", path,
                c->inflight_reserve, c->max_inflight);
        return -EINVAL;
    }
    if (listens_clash(c->listen, c->tls_listen)) {
        err_set(err, "%s: [server] tls_listen (%s) must not share the port of listen (%s)", path,
                c->tls_listen, c->listen);
        return -EINVAL;
    }
    if (c->num_pools == 0) {
        err_set(err,
                "%s: no [pool.NAME] section: every user needs a home pool (e.g. "
                "[pool.pool1] store = embedded)",
                path);
        return -EINVAL;
    }
    if (strcmp(c->ca_backend, "pkcs11") == 0 && (c->ca_key[0] == '\0' || c->ca_module[0] == '\0')) {
        err_set(err, "%s: [ca] backend = pkcs11 needs key and module", path);
        return -EINVAL;
    }
    return 0;
}

/* Relative paths in the file are relative to the file's own directory. */
static int config_resolve(char *path, size_t cap, const char *dir)
{
    if (path[0] == '\0' || path[0] == '/') {
        return 0;
    }
    char joined[SERVICE_PATH_MAX];
    int n = snprintf(joined, sizeof(joined), "%s/%s", dir, path);
    if (n < 0 || (size_t)n >= sizeof(joined)) {
        return -ENAMETOOLONG;
    }
    return base_str_copy(path, cap, joined);
}

/* dir_absolute makes the relative directory `dir` (cap bytes) absolute: the working directory
 * joined with it, resolved (realpath) when it exists, so that paths taken from it, and the
 * messages that name them, do not depend on where the program was started. */
static int dir_absolute(char *dir, size_t cap)
{
    char cwd[SERVICE_PATH_MAX];
    char joined[SERVICE_PATH_MAX];
    if (getcwd(cwd, sizeof(cwd)) == NULL) {
        return -errno;
    }
    int n = snprintf(joined, sizeof(joined), "%s/%s", cwd, dir);
    if (n < 0 || (size_t)n >= sizeof(joined)) {
        return -ENAMETOOLONG;
    }
    char *real = realpath(joined, NULL);
    int rc = base_str_copy(dir, cap, real != NULL ? real : joined);
    free(real);
    return rc != 0 ? -ENAMETOOLONG : 0;
}

static int config_locate(struct service_config *out, const char *path)
{
    if (base_str_copy(out->path, sizeof(out->path), path) != 0) {
        return -ENAMETOOLONG;
    }
    const char *slash = strrchr(path, '/');
    if (slash == NULL) {
        if (getcwd(out->dir, sizeof(out->dir)) == NULL) {
            return -errno;
        }
    } else if (slash == path) {
        (void)base_str_copy(out->dir, sizeof(out->dir), "/");
    } else {
        size_t len = (size_t)(slash - path);
        if (len >= sizeof(out->dir)) {
            return -ENAMETOOLONG;
        }
        memcpy(out->dir, path, len);
        out->dir[len] = '\0';
        if (path[0] != '/') {
            return dir_absolute(out->dir, sizeof(out->dir));
        }
    }
    return 0;
}

/* config_parse runs inih over `text` once config_scan_pools has read its pool sections, and
 * puts the file name (and line) in front of the first error. */
static int config_parse(struct config_ctx *ctx, char *err, const char *path, const char *text)
{
    char msg[SERVICE_CONFIG_ERR_MAX];
    if (ctx->failed) {
        (void)base_str_copy(msg, sizeof(msg), err);
        err_set(err, "%s: %s", path, msg);
        return -EINVAL;
    }
    int line = ini_parse_string(text, config_handler, ctx);
    ASSERT(line >= 0); /* -1 is a file that did not open, -2 an allocation: neither here */
    if (line != 0) {
        (void)base_str_copy(msg, sizeof(msg), ctx->failed ? err : "syntax error");
        err_set(err, "%s:%d: %s", path, line, msg);
        return -EINVAL;
    }
    return 0;
}

/* config_read reads the file at `path` into *out_text (NUL-terminated, owned: free it). */
static int config_read(char **out_text, char *err, const char *path)
{
    char *text = malloc(SERVICE_CONFIG_FILE_MAX + 1);
    if (text == NULL) {
        return -ENOMEM;
    }
    size_t len = 0;
    int rc = base_file_read((uint8_t *)text, &len, SERVICE_CONFIG_FILE_MAX, path);
    if (rc == -E2BIG) {
        err_set(err, "%s: larger than %d bytes: not a configuration file", path,
                SERVICE_CONFIG_FILE_MAX);
        rc = -EINVAL;
    } else if (rc != 0) {
        err_set(err, "%s: cannot open: %s", path, strerror(-rc));
    } else if (memchr(text, '\0', len) != NULL) {
        /* inih would stop at it: what follows would be ignored without a word. */
        err_set(err, "%s: holds a NUL byte: not a text file", path);
        rc = -EINVAL;
    }
    if (rc != 0) {
        free(text);
        return rc;
    }
    text[len] = '\0';
    *out_text = text;
    return 0;
}

int service_config_load(struct service_config *out, char *err, const char *path)
{
    ASSERT(out != NULL);
    ASSERT(err != NULL);
    ASSERT(path != NULL);
    err[0] = '\0';
    char *text = NULL;
    int rc = config_read(&text, err, path);
    if (rc != 0) {
        return rc;
    }
    rc = service_config_parse(out, err, path, text);
    free(text);
    return rc;
}

int service_config_parse(struct service_config *out, char *err, const char *path, const char *text)
{
    ASSERT(out != NULL);
    ASSERT(err != NULL);
    ASSERT(path != NULL);
    ASSERT(text != NULL);
    err[0] = '\0';
    struct service_config *cfg = calloc(1, sizeof(*cfg));
    if (cfg == NULL) {
        return -ENOMEM;
    }
    service_config_defaults(cfg);
    struct config_ctx ctx = {.cfg = cfg, .err = err};
    int rc = config_locate(cfg, path);
    if (rc != 0) {
        goto out;
    }
    config_scan_pools(&ctx, text);
    rc = config_parse(&ctx, err, path, text);
    if (rc != 0) {
        goto out;
    }
    shares_default(cfg, &ctx);
    if (cfg->crl_url[0] == '\0' &&
        snprintf(cfg->crl_url, sizeof(cfg->crl_url), "http://%s/CertProv/crl", cfg->name) >=
            (int)sizeof(cfg->crl_url)) {
        err_set(err, "%s: [server] name is too long for the default [revocation] crl_url", path);
        rc = -EINVAL;
        goto out;
    }
    rc = config_check(cfg, err);
    if (rc != 0) {
        goto out;
    }
    cfg->store_path_relative = cfg->store_path[0] != '\0' && cfg->store_path[0] != '/';
    if (config_resolve(cfg->store_path, sizeof(cfg->store_path), cfg->dir) != 0 ||
        config_resolve(cfg->device_trust, sizeof(cfg->device_trust), cfg->dir) != 0 ||
        config_resolve(cfg->ticket_keys, sizeof(cfg->ticket_keys), cfg->dir) != 0) {
        err_set(err, "%s: a path is too long", path);
        rc = -EINVAL;
        goto out;
    }
    *out = *cfg;
out:
    free(cfg);
    return rc;
}

void service_config_store_origin(const struct service_config *cfg, char *out, size_t cap)
{
    ASSERT(cfg != NULL);
    ASSERT(out != NULL);
    ASSERT(cap > 0);
    out[0] = '\0';
    if (cfg->store_path_relative) {
        (void)snprintf(out, cap,
                       " (the [store] path of %s is relative to that file's directory, %s)",
                       cfg->path, cfg->dir);
    }
}

void service_config_tls_names(const struct service_config *cfg,
                              const char *out[SIGNER_TLS_NAMES_MAX], size_t *out_num)
{
    ASSERT(cfg != NULL);
    ASSERT(cfg->num_alt_names <= SERVICE_ALT_NAMES_MAX);
    out[0] = cfg->name;
    for (uint32_t i = 0; i < cfg->num_alt_names; i++) {
        out[1 + i] = cfg->alt_names[i];
    }
    *out_num = 1 + (size_t)cfg->num_alt_names;
}

const struct service_pool_config *service_config_find_pool(const struct service_config *cfg,
                                                           const char *name)
{
    ASSERT(cfg != NULL);
    ASSERT(name != NULL);
    for (size_t i = 0; i < cfg->num_pools; i++) {
        if (strcmp(cfg->pools[i].name, name) == 0) {
            return &cfg->pools[i];
        }
    }
    return NULL;
}
