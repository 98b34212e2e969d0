/* certprovd: the appliance. Loads the configuration, the store, the CA and the PIN key, starts
 * the enrollment service on the io_uring engine, and runs until SIGTERM/SIGINT (drain, exit 0).
 * SIGHUP reopens the log file given with --log and reads the TLS ticket-key file again. Under
 * systemd (Type=notify, $NOTIFY_SOCKET) it says READY=1 once the store, the key backend and the
 * listeners are up, RELOADING=1 and READY=1 around SIGHUP, and STOPPING=1 when it stops. */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "base/base.h"
#include "ioring/ioring.h"
#include "service/service.h"

#define DAEMON_DRAIN_MS 10000   /* SIGTERM: in-flight requests get this long to finish */
#define DAEMON_TLS_CHECK_S 3600 /* the TLS server certificate is checked this often */

struct daemon {
    const char *config_path;
    const char *log_path;
    bool check;
    enum log_level level;
    enum log_format log_format;
    struct service_config cfg;
    struct store_lock *lock; /* held for the life of the process: one store, one daemon */
    struct store *st;
    struct signer_ca *ca;
    struct signer_pin_key *pin_key;
    struct service *svc;
    struct ioring_engine *eng;
    struct ioring_tls *tls; /* NULL without [server] tls_listen */
    bool tls_reissued;      /* tls_leaf made a new TLS server certificate */
    struct store_publisher *pub;
    struct store_directory *dir; /* [directory] only */
    /* With [directory] and tls_listen: the client CA file of the TLS listener, the fleet's
     * issuing CAs as the directory thread last passed them on (fleet_cas_changed). */
    char fleet_cas[SERVICE_PATH_MAX + 32];
    /* The fleet's CAs for the Web ticket checks: the directory thread may pass them on before
     * the service exists; kept here (DER copies) and handed over when it does (fleet_svc). */
    pthread_mutex_t fleet_mu;
    struct service *fleet_svc; /* d->svc once made; under fleet_mu */
    uint8_t *fleet_der[STORE_DIRECTORY_CAS_MAX];
    size_t fleet_len[STORE_DIRECTORY_CAS_MAX];
    size_t fleet_num;
};

static void usage(FILE *out)
{
    fprintf(
        out,
        "usage: certprovd -c FILE [--check] [--log FILE] [--log-level LEVEL] [--log-format F]\n"
        "\n"
        "Runs the certprov appliance in the foreground: CertProv SOAP and EST enrollment,\n"
        "the service metadata (<service>/mex, ?wsdl: its URLs from [server] external_base_url,\n"
        "or name and the listener), /CertProv/chain.pem, /.well-known/est/cacerts,\n"
        "/healthz, /readyz and /metrics on [server] listen (plain HTTP: IPv4:PORT or\n"
        "[IPv6]:PORT, no host names) and, when set, [server] tls_listen (HTTPS, TLS\n"
        "1.2/1.3; renewal by client certificate).\n"
        "\n"
        "  -c, --config FILE    configuration file (INI; every key, its default and range:\n"
        "                       README.md, Configuration; example: deploy/certprov.ini);\n"
        "                       a relative path in it is taken from the file's directory\n"
        "      --check          validate the configuration, the store, the CA and its key,\n"
        "                       the PIN key, the TLS server certificate (one that start\n"
        "                       would reissue is reported, nothing is written) and that the\n"
        "                       TLS and issuing chains lead to [server] device_trust; say\n"
        "                       whether a certprovd holds the store and which pool stores\n"
        "                       can be reached (neither fails the check), then exit (0 if\n"
        "                       all is well)\n"
        "      --log FILE       append log lines to FILE instead of stderr (SIGHUP reopens)\n"
        "      --log-level L    err, warn, info (default) or debug (debug adds each\n"
        "                       request's stage timings to its line)\n"
        "      --log-format F   text (default: 'TIME PROGRAM LEVEL module: event k=v ...')\n"
        "                       or json (one JSON object per line: ts, program, level,\n"
        "                       module, event and each key; for journald, Loki, ELK)\n"
        "  -h, --help           this text\n"
        "\n"
        "One store, one daemon: certprovd holds a lock on <store>/certprovd.lock (with its\n"
        "PID in it) for its whole life; a second certprovd on the same store refuses to start\n"
        "and names the PID that holds it. certprovctl works beside the daemon, except\n"
        "'ca init', which refuses.\n"
        "One port, one daemon: a [server] listen address that another process already holds\n"
        "is refused, never shared (the rings of one certprovd share its port).\n"
        "At start, before serving, a TLS server certificate that is not right (issuer, names\n"
        "[server] name + alt_names, key, 30 days left, chain) is reissued (one log line), and\n"
        "the TLS and issuing chains must lead to a root of [server] device_trust (empty: the\n"
        "store's own root), else certprovd refuses to start and names the broken link.\n"
        "A store directory that does not exist is refused; a damaged store names the file\n"
        "and what is wrong with it ('FILE is missing', 'run: chmod 600 FILE'); 'certprovctl\n"
        "ca init' is the advice only when the store directory holds none of the CA's files.\n"
        "\n"
        "Signals: SIGTERM or SIGINT stop accepting, finish in-flight requests (at most %d s)\n"
        "and exit 0; SIGHUP reopens the log file and reads the [server] ticket_keys file\n"
        "again.\n"
        "systemd: with $NOTIFY_SOCKET set (Type=notify, deploy/certprovd.service) it sends\n"
        "READY=1 once the store, the key backend and the listeners are up, RELOADING=1 and\n"
        "READY=1 around SIGHUP, and STOPPING=1 on SIGTERM/SIGINT.\n"
        "Exit status: 0 success, 1 failure, 2 usage error.\n",
        DAEMON_DRAIN_MS / 1000);
}

static int parse_args(struct daemon *d, int argc, char **argv)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"check", no_argument, NULL, 'k'},
                                         {"log", required_argument, NULL, 'l'},
                                         {"log-level", required_argument, NULL, 'v'},
                                         {"log-format", required_argument, NULL, 'f'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        if (c == 'c') {
            d->config_path = optarg;
        } else if (c == 'k') {
            d->check = true;
        } else if (c == 'l') {
            d->log_path = optarg;
        } else if (c == 'v' && log_level_parse(&d->level, optarg) != 0) {
            fprintf(stderr, "certprovd: --log-level must be err, warn, info or debug\n");
            return 2;
        } else if (c == 'f' && log_format_parse(&d->log_format, optarg) != 0) {
            fprintf(stderr, "certprovd: --log-format must be text or json\n");
            return 2;
        } else if (c == 'h') {
            usage(stdout);
            return -1;
        } else if (c == '?') {
            fprintf(stderr, "certprovd: unknown or incomplete option '%s'\n", argv[optind - 1]);
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc || d->config_path == NULL) {
        fprintf(stderr, "certprovd: %s\n",
                d->config_path == NULL ? "-c FILE is required" : "unexpected argument");
        usage(stderr);
        return 2;
    }
    return 0;
}

/* pin_key_open loads the PIN key that lives beside the store, or says what is wrong with it. */
static int pin_key_open(struct daemon *d)
{
    char path[SERVICE_PATH_MAX + 16];
    int rc = signer_file_path(path, sizeof(path), d->cfg.store_path, SIGNER_FILE_PIN_KEY);
    if (rc == 0) {
        rc = signer_pin_key_load(&d->pin_key, path, false);
    }
    if (rc == 0) {
        return 0;
    }
    if (rc == -EPERM) {
        fprintf(stderr,
                "certprovd: the PIN key %s is readable or writable by group or others; run: "
                "chmod 600 %s\n",
                path, path);
    } else if (rc == -ENOENT || rc == -EBADMSG) {
        /* Never a new key: it would not match the PIN verifiers of the stored users. */
        fprintf(stderr,
                "certprovd: the PIN key %s is %s; restore it from a backup of the store (the "
                "PINs of the users are checked with it)\n",
                path, rc == -ENOENT ? "missing" : "damaged (not 32 bytes)");
    } else {
        fprintf(stderr, "certprovd: cannot load the PIN key %s: %s\n", path, strerror(-rc));
    }
    return 1;
}

/* store_dir_check refuses a store directory that is not there (a mistyped [store] path must not
 * become a new, empty store), naming the absolute path and where it came from. */
static int store_dir_check(const struct daemon *d)
{
    char origin[SERVICE_PATH_MAX * 2 + 96];
    service_config_store_origin(&d->cfg, origin, sizeof(origin));
    struct stat st;
    if (stat(d->cfg.store_path, &st) == -1) {
        int err = errno;
        if (err == ENOENT) {
            fprintf(stderr,
                    "certprovd: the store directory %s does not exist%s; fix [store] path, or, if "
                    "this is a new appliance, create it with: certprovctl -c %s ca init\n",
                    d->cfg.store_path, origin, d->config_path);
        } else {
            fprintf(stderr, "certprovd: cannot reach the store directory %s%s: %s\n",
                    d->cfg.store_path, origin, strerror(err));
        }
        return 1;
    }
    if (!S_ISDIR(st.st_mode)) {
        fprintf(stderr, "certprovd: the store path %s is not a directory%s\n", d->cfg.store_path,
                origin);
        return 1;
    }
    return 0;
}

/* lock_store takes the daemon lock of the store (store.h): a second certprovd on the same store
 * would run a second publisher over the same outbox. */
static int lock_store(struct daemon *d)
{
    int rc = store_lock_open(&d->lock, d->cfg.store_path);
    if (rc == -EBUSY) {
        bool held = false;
        pid_t pid = 0;
        (void)store_lock_holder(&held, &pid, d->cfg.store_path);
        char who[32] = "(PID unknown)";
        if (pid > 0) {
            snprintf(who, sizeof(who), "PID %ld", (long)pid);
        }
        fprintf(stderr,
                "certprovd: the store %s is in use by certprovd %s (it holds %s/" STORE_LOCK_FILE
                "); stop that daemon first, or give this one a [store] path of its own\n",
                d->cfg.store_path, who, d->cfg.store_path);
        return 1;
    }
    if (rc != 0) {
        fprintf(stderr, "certprovd: cannot lock the store %s (%s/" STORE_LOCK_FILE "): %s\n",
                d->cfg.store_path, d->cfg.store_path, strerror(-rc));
        return 1;
    }
    return 0;
}

/* ca_open loads the CA, or says which file is wrong and how; `ca init` is the advice only for a
 * store without any of the CA's files (it never replaces a CA). */
/* key_open_pkcs11 opens the issuing CA's key in its token ([ca] backend = pkcs11): the module,
 * the token, the PIN and the key each fail with a sentence of their own (never the PIN). */
static int key_open_pkcs11(struct daemon *d, struct hsm_key **out)
{
    char err[512];
    struct hsm_pkcs11_options o = {.module = d->cfg.ca_module,
                                   .uri = d->cfg.ca_key,
                                   .sessions = d->cfg.ca_sessions,
                                   .sign_timeout_ms = d->cfg.ca_sign_timeout_ms};
    int rc = hsm_pkcs11_open(out, err, sizeof(err), &o);
    if (rc != 0) {
        fprintf(stderr, "certprovd: the CA key ([ca] key, backend pkcs11) cannot be used: %s\n",
                err);
        return 1;
    }
    return 0;
}

static int ca_open(struct daemon *d)
{
    struct signer_ca_fault f;
    int rc = 0;
    if (strcmp(d->cfg.ca_backend, "pkcs11") == 0) {
        struct hsm_key *key = NULL;
        if (key_open_pkcs11(d, &key) != 0) {
            return 1;
        }
        static char label[3 * HSM_P11_URI_MAX + 64]; /* the URI without PIN */
        (void)base_str_copy(label, sizeof(label), hsm_key_get_label(key));
        rc = signer_ca_open_with_key(&d->ca, &f, d->cfg.store_path, key); /* owns key */
        /* The key holds what it needs: a pin-value in the URI is not kept twice. */
        signer_secret_wipe(d->cfg.ca_key, sizeof(d->cfg.ca_key));
        if (rc == -EBADMSG && f.file == SIGNER_FILE_ISSUING_KEY) {
            fprintf(stderr,
                    "certprovd: the token's key (%s) is not the key of %s/ca/issuing.crt; "
                    "check [ca] key\n",
                    label, d->cfg.store_path);
            return 1;
        }
    } else {
        rc = signer_ca_open(&d->ca, &f, d->cfg.store_path);
    }
    if (rc == 0) {
        rc = signer_ca_set_urls(d->ca, d->cfg.crl_url, d->cfg.ocsp_url);
        ASSERT(rc == 0); /* service_config_parse checked them */
        return 0;
    }
    if (rc == -ENOENT && f.no_ca) {
        char origin[SERVICE_PATH_MAX * 2 + 96];
        service_config_store_origin(&d->cfg, origin, sizeof(origin));
        fprintf(stderr,
                "certprovd: no CA in %s%s; if this is a new appliance, create one with: "
                "certprovctl -c %s ca init\n",
                d->cfg.store_path, origin, d->config_path);
        return 1;
    }
    if (rc == -ENOENT && signer_ca_pending(d->cfg.store_path) == 0) {
        fprintf(stderr,
                "certprovd: the CA in %s is a pending request (ca/issuing.csr): have the "
                "enterprise's CA sign it, then run: certprovctl -c %s ca import --cert FILE "
                "--chain FILE\n",
                d->cfg.store_path, d->config_path);
        return 1;
    }
    char text[SERVICE_PATH_MAX * 2 + 128];
    (void)signer_ca_fault_format(text, sizeof(text), rc, &f, d->cfg.store_path);
    fprintf(stderr, "certprovd: the CA in %s cannot be loaded: %s%s\n", d->cfg.store_path, text,
            rc == -ENOENT || rc == -EBADMSG ? "; restore it from a backup of the store" : "");
    return 1;
}

static int open_parts(struct daemon *d)
{
    char err[SERVICE_CONFIG_ERR_MAX];
    if (service_config_load(&d->cfg, err, d->config_path) != 0) {
        fprintf(stderr, "certprovd: %s\n", err);
        return 1;
    }
    /* The CA and the PIN key first, which are only read: a store directory that lacks them
     * gets nothing written into it (no LMDB files, no lock file). */
    if (store_dir_check(d) != 0 || ca_open(d) != 0 || pin_key_open(d) != 0) {
        return 1;
    }
    /* --check only asks who holds the lock (check_daemon): it runs beside a daemon. */
    if (!d->check && lock_store(d) != 0) {
        return 1;
    }
    /* defer_meta_sync: the writer thread pipelines durability (one sync per group, store.h). */
    struct store_options so = {
        .path = d->cfg.store_path, .map_size = d->cfg.map_size, .defer_meta_sync = true};
    int rc = store_open(&d->st, &so);
    if (rc != 0) {
        fprintf(stderr, "certprovd: cannot open the store %s: %s\n", d->cfg.store_path,
                strerror(-rc));
        return 1;
    }
    return 0;
}

static int check_chain(const struct daemon *d)
{
    char path[SERVICE_PATH_MAX + 32];
    uint8_t der[SIGNER_CERT_DER_MAX];
    size_t len = 0;
    struct signer_cert_info info;
    if (signer_file_path(path, sizeof(path), d->cfg.store_path, SIGNER_FILE_SERVER_CRT) != 0 ||
        signer_pem_read_cert(der, sizeof(der), &len, path, 0) != 0 ||
        signer_cert_info_der(&info, der, len) != 0) {
        printf("config: %s ok\nstore: %s ok\nca: %s key %s ok\ntls: %s is missing or damaged\n",
               d->config_path, d->cfg.store_path, d->cfg.ca_backend,
               hsm_key_type_name(hsm_key_get_type(signer_ca_get_key(d->ca))), path);
        return 0;
    }
    /* Sign a test message with the CA key and verify it with the certificate's key: a token
     * that logs in but cannot sign fails here, not at the first enrollment. */
    struct hsm_key *key = signer_ca_get_key(d->ca);
    int rc = signer_ca_self_test(d->ca);
    if (rc != 0) {
        fprintf(stderr, "certprovd: --check: the CA key %s cannot sign: %s\n",
                hsm_key_get_label(key),
                rc == -EAGAIN    ? "the key backend is unavailable"
                : rc == -EBADMSG ? "the signature does not verify with ca/issuing.crt's key"
                                 : "signing failed");
        return 1;
    }
    printf("config: %s ok\nstore: %s ok\nca: %s key %s ok (%s; signed and verified a test "
           "message)\ntls: %s, valid until %lld\n",
           d->config_path, d->cfg.store_path, d->cfg.ca_backend,
           hsm_key_type_name(hsm_key_get_type(key)), hsm_key_get_label(key), info.subject,
           (long long)info.not_after_s);
    return 0;
}

/* tls_leaf keeps the TLS server certificate right by itself (README, The TLS server
 * certificate): issued by the current issuing CA, for [server] name and alt_names, the key's,
 * with time left, followed by the current chain. With --check it only says what it would do. */
static int tls_leaf(struct daemon *d, bool *out_ok)
{
    const char *names[SIGNER_TLS_NAMES_MAX];
    size_t num = 0;
    service_config_tls_names(&d->cfg, names, &num);
    enum signer_tls_state state = SIGNER_TLS_OK;
    int64_t not_after = 0;
    int64_t now = clock_real_s();
    int rc = signer_tls_check(&state, &not_after, d->ca, d->cfg.store_path, names, num, now);
    if (rc == -EPERM) {
        fprintf(stderr,
                "certprovd: %s/tls/server.key is readable or writable by group or others; run: "
                "chmod 600 %s/tls/server.key\n",
                d->cfg.store_path, d->cfg.store_path);
        return 1;
    }
    if (rc != 0) {
        fprintf(stderr, "certprovd: cannot read the TLS server certificate in %s/tls: %s\n",
                d->cfg.store_path, strerror(-rc));
        return 1;
    }
    *out_ok = state == SIGNER_TLS_OK;
    if (state == SIGNER_TLS_OK) {
        return 0;
    }
    if (d->check) {
        printf("tls: tls/server.crt will be reissued at start: %s\n", signer_tls_state_text(state));
        return 0;
    }
    rc = signer_tls_issue(d->ca, d->cfg.store_path, names, num, now);
    if (rc != 0) {
        fprintf(stderr, "certprovd: cannot issue a new TLS server certificate (%s): %s\n",
                signer_tls_state_text(state), strerror(-rc));
        return 1;
    }
    log_info("certprovd: tls_reissued reason=\"%s\" names=%zu name=%s",
             signer_tls_state_text(state), num, d->cfg.name);
    *out_ok = true;
    d->tls_reissued = true;
    return 0;
}

/* chain_files reads the store's chain (chain.pem) and the TLS server certificate's file. */
static int chain_files(const struct daemon *d, struct signer_cert_set *chain,
                       struct signer_cert_set *tls)
{
    size_t len = 0;
    const char *pem = signer_ca_get_chain_pem(d->ca, &len);
    int rc = signer_cert_set_parse(chain, pem, len);
    if (rc != 0) {
        fprintf(stderr, "certprovd: %s/chain.pem is damaged: %s\n", d->cfg.store_path,
                strerror(-rc));
        return 1;
    }
    char path[SERVICE_PATH_MAX + 32];
    rc = signer_file_path(path, sizeof(path), d->cfg.store_path, SIGNER_FILE_SERVER_CRT);
    if (rc == 0) {
        rc = signer_cert_set_read(tls, path);
    }
    if (rc != 0) {
        fprintf(stderr, "certprovd: %s cannot be read: %s\n", path, strerror(-rc));
        return 1;
    }
    return 0;
}

/* trust_anchors reads [server] device_trust, or, when it is empty, takes the store's own root
 * (the last certificate of chain.pem, when it is self-signed). */
static int trust_anchors(const struct daemon *d, struct signer_cert_set *anchors,
                         const struct signer_cert_set *chain)
{
    if (d->cfg.device_trust[0] != '\0') {
        int rc = signer_cert_set_read(anchors, d->cfg.device_trust);
        if (rc != 0) {
            fprintf(stderr,
                    "certprovd: [server] device_trust %s cannot be read as PEM certificates: %s\n",
                    d->cfg.device_trust,
                    rc == -EBADMSG ? "no CERTIFICATE block, or a damaged one" : strerror(-rc));
            return 1;
        }
        return 0;
    }
    anchors->num = 0;
    const struct signer_der *last = &chain->certs[chain->num - 1];
    if (signer_cert_self_signed(last)) {
        memcpy(anchors->der[0], last->der, last->der_len);
        anchors->certs[0] = (struct signer_der){.der = anchors->der[0], .der_len = last->der_len};
        anchors->num = 1;
    }
    return 0;
}

/* chain_one checks one chain against the anchors: refuses with the broken link, warns when a
 * certificate of it expires within 30 days. */
static int chain_one(const struct daemon *d, const char *what, const struct signer_der *certs,
                     size_t num, const struct signer_cert_set *anchors, bool target_is_ca)
{
    struct signer_chain_result r;
    int64_t now = clock_real_s();
    int rc = signer_chain_check(&r, certs, num, anchors->certs, anchors->num, now, target_is_ca);
    if (rc != 0) {
        char text[1024];
        (void)signer_chain_result_format(text, sizeof(text), &r);
        if (d->cfg.device_trust[0] != '\0') {
            fprintf(stderr,
                    "certprovd: the %s chain does not lead to a root of [server] device_trust "
                    "(%s): %s\n",
                    what, d->cfg.device_trust, text);
        } else {
            fprintf(stderr,
                    "certprovd: the %s chain does not lead to the store's own root (chain.pem): "
                    "%s\n",
                    what, text);
        }
        return 1;
    }
    if (r.first_expiry_s - now < SIGNER_TLS_RENEW_S) {
        char t[CLOCK_UTC_LEN];
        clock_format_utc(t, r.first_expiry_s);
        log_warn("certprovd: ca_chain_expires_soon chain=%s subject=\"%s\" not_after=%s", what,
                 r.first_expiry_subject, t);
    }
    if (d->check) {
        printf("trust: the %s chain leads to %s\n", what,
               d->cfg.device_trust[0] != '\0' ? d->cfg.device_trust : "the store's own root");
    }
    return 0;
}

/* trust_check: the TLS chain (leaf .. root) and the issuing chain must each lead to one of the
 * roots the devices trust (README, device_trust). tls_ok: the TLS leaf is current (with --check
 * a leaf that start would reissue is not checked). */
static int trust_check(const struct daemon *d, bool tls_ok)
{
    struct signer_cert_set *sets = calloc(3, sizeof(*sets));
    if (sets == NULL) {
        fprintf(stderr, "certprovd: out of memory\n");
        return 1;
    }
    struct signer_cert_set *chain = &sets[0], *tls = &sets[1], *anchors = &sets[2];
    int rc = chain_files(d, chain, tls);
    if (rc == 0) {
        rc = trust_anchors(d, anchors, chain);
    }
    if (rc == 0) {
        rc = chain_one(d, "issuing", chain->certs, chain->num, anchors, true);
    }
    if (rc == 0 && tls_ok) {
        /* What a device sees: the handshake's certificates, then the root of chain.pem. */
        struct signer_der all[SIGNER_CHAIN_MAX];
        size_t n = 0;
        for (size_t i = 0; i < tls->num && n < SIGNER_CHAIN_MAX; i++) {
            all[n++] = tls->certs[i];
        }
        if (n < SIGNER_CHAIN_MAX) {
            all[n++] = chain->certs[chain->num - 1];
        }
        rc = chain_one(d, "TLS", all, n, anchors, false);
    }
    free(sets);
    return rc;
}

/* check_daemon says whether a certprovd holds the store; neither answer fails --check. */
static void check_daemon(const struct daemon *d)
{
    bool held = false;
    pid_t pid = 0;
    int rc = store_lock_holder(&held, &pid, d->cfg.store_path);
    if (rc != 0) {
        printf("daemon: unknown (cannot read %s/" STORE_LOCK_FILE ": %s)\n", d->cfg.store_path,
               strerror(-rc));
    } else if (!held) {
        printf("daemon: none holds the store\n");
    } else if (pid > 0) {
        printf("daemon: certprovd PID %ld holds the store\n", (long)pid);
    } else {
        printf("daemon: a certprovd (PID unknown) holds the store\n");
    }
}

/* check_pools says which pool stores can be reached; an unreachable one does not fail --check
 * (its certificates wait in the outbox: invariant 6). */
static void check_pools(const struct daemon *d)
{
    for (size_t i = 0; i < d->cfg.num_pools; i++) {
        char err[256];
        const struct service_pool_config *p = &d->cfg.pools[i];
        if (store_pool_check(p->store, err, sizeof(err)) == 0) {
            printf("pool %s: %s reachable\n", p->name,
                   strcmp(p->store, "embedded") == 0 ? "embedded" : "postgresql");
        } else {
            printf("pool %s: unreachable: %s\n", p->name, err);
        }
    }
}

/* directory_key_check, with [directory]: the PIN key must be the fleet's (the verifiers are
 * keyed). -EKEYREJECTED refuses the start, saying both ids; an unreachable or uninitialized
 * directory is a warning (the replica serves; the directory thread checks again on each connect
 * and applies nothing from another key). */
static int directory_key_check(const struct daemon *d, const char *key_id)
{
    struct store_dir *dc = NULL;
    char err[512] = "";
    int rc = store_dir_connect(&dc, d->cfg.directory, err, sizeof(err));
    rc = rc != 0 ? rc : store_dir_key_check(dc, key_id, err, sizeof(err));
    store_dir_close(dc);
    if (rc == -EKEYREJECTED) {
        fprintf(stderr, "certprovd: [directory] %s\n", err);
        return 1;
    }
    if (rc != 0) {
        log_warn("certprovd: directory_unchecked error=\"%s\"", err);
        if (d->check) {
            printf("directory: unreachable: %s\n", err);
        }
    } else if (d->check) {
        printf("directory: reachable, PIN key id %s\n", key_id);
    }
    return 0;
}

/* fleet_keep keeps a copy of the fleet's CAs and hands them to the service's Web ticket checks
 * when it exists (else service_made does). Any thread. */
static void fleet_keep(struct daemon *d, const uint8_t *const *ders, const size_t *lens, size_t num)
{
    base_mutex_lock(&d->fleet_mu);
    for (size_t i = 0; i < d->fleet_num; i++) {
        free(d->fleet_der[i]);
    }
    d->fleet_num = 0;
    for (size_t i = 0; i < num && d->fleet_num < STORE_DIRECTORY_CAS_MAX; i++) {
        uint8_t *c = malloc(lens[i]);
        if (c != NULL) {
            memcpy(c, ders[i], lens[i]);
            d->fleet_der[d->fleet_num] = c;
            d->fleet_len[d->fleet_num++] = lens[i];
        }
    }
    service_webticket_fleet_cas(d->fleet_svc, (const uint8_t *const *)d->fleet_der, d->fleet_len,
                                d->fleet_num);
    base_mutex_unlock(&d->fleet_mu);
}

/* fleet_service_made hands the CAs the directory thread passed on before the service existed. */
static void fleet_service_made(struct daemon *d)
{
    base_mutex_lock(&d->fleet_mu);
    d->fleet_svc = d->svc;
    service_webticket_fleet_cas(d->fleet_svc, (const uint8_t *const *)d->fleet_der, d->fleet_len,
                                d->fleet_num);
    base_mutex_unlock(&d->fleet_mu);
}

/* fleet_cas_changed (the directory thread) writes the fleet's issuing CAs into the TLS
 * listener's client CA file and reloads the listener: renewal by a certificate of any of them. */
static void fleet_cas_changed(void *ctx, const uint8_t *const *ders, const size_t *lens, size_t num)
{
    struct daemon *d = ctx;
    fleet_keep(d, ders, lens, num); /* for the Web ticket checks */
    if (d->tls == NULL || d->fleet_cas[0] == '\0') {
        return;
    }
    size_t cap = 1;
    for (size_t i = 0; i < num; i++) {
        cap += 2 * lens[i] + 128;
    }
    char *pem = malloc(cap);
    if (pem == NULL) {
        log_err("certprovd: fleet_cas_write_failed reason=\"out of memory\"");
        return;
    }
    size_t at = 0;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < num; i++) {
        size_t len = 0;
        rc = signer_pem_encode(pem + at, cap - at, &len, "CERTIFICATE", ders[i], lens[i]);
        at += len;
    }
    rc = rc != 0 ? rc : base_file_write_atomic(d->fleet_cas, pem, at, 0644, false);
    free(pem);
    char err[IORING_TLS_ERR_MAX] = "";
    if (rc == 0 && ioring_tls_reload(d->tls, err) != 0) {
        log_err("certprovd: tls_reload_failed reason=\"%s\" action=\"the fleet's CAs in use are "
                "kept\"",
                err);
        return;
    }
    if (rc != 0) {
        log_err("certprovd: fleet_cas_write_failed path=%s errno=%d", d->fleet_cas, -rc);
        return;
    }
    log_info("certprovd: fleet_cas_loaded num=%zu file=%s", num, d->fleet_cas);
}

/* start_directory starts the cp-directory thread (README, The fleet directory). */
static int start_directory(struct daemon *d)
{
    if (d->cfg.directory[0] == '\0') {
        return 0;
    }
    char key_id[STORE_PIN_KEY_ID_HEX];
    signer_pin_key_id(d->pin_key, key_id);
    if (directory_key_check(d, key_id) != 0) {
        return 1;
    }
    if (d->check) {
        return 0;
    }
    struct store_directory_options o = {.conninfo = d->cfg.directory,
                                        .key_id = key_id,
                                        .appliance = d->cfg.name,
                                        .poll_ms = d->cfg.directory_poll_ms,
                                        .window_s = d->cfg.pin.window_s,
                                        .cas_changed = fleet_cas_changed,
                                        .cas_ctx = d};
    /* This appliance's issuing CA, registered as one of the fleet's. */
    char ca[SERVICE_PATH_MAX + 32];
    static uint8_t der[STORE_DIRECTORY_CA_DER_MAX];
    size_t len = 0;
    char ca_id[65];
    if (signer_file_path(ca, sizeof(ca), d->cfg.store_path, SIGNER_FILE_ISSUING_CRT) == 0 &&
        signer_pem_read_cert(der, sizeof(der), &len, ca, 0) == 0) {
        signer_sha256_hex(ca_id, der, len);
        o.ca_der = der;
        o.ca_der_len = len;
        o.ca_id = ca_id;
    } else {
        log_warn("certprovd: fleet_ca_not_registered reason=\"ca/issuing.crt cannot be read\"");
    }
    int rc = store_directory_start(&d->dir, d->st, &o);
    if (rc != 0) {
        fprintf(stderr, "certprovd: cannot start the directory thread: %s\n", strerror(-rc));
        return 1;
    }
    return 0;
}

/* start_publisher starts one publisher thread per [pool.NAME] (issue 4). */
static int start_publisher(struct daemon *d)
{
    struct store_pool_spec specs[STORE_POOLS_MAX];
    for (size_t i = 0; i < d->cfg.num_pools; i++) {
        specs[i].name = d->cfg.pools[i].name;
        specs[i].conninfo = d->cfg.pools[i].store;
    }
    char dir[SERVICE_PATH_MAX + 16];
    snprintf(dir, sizeof(dir), "%s/pools", d->cfg.store_path);
    struct store_publisher_options po = {.issued_by = d->cfg.name, .embedded_dir = dir};
    int rc = store_publisher_start(&d->pub, d->st, specs, d->cfg.num_pools, &po);
    if (rc != 0) {
        fprintf(stderr, "certprovd: cannot start the publisher: %s\n", strerror(-rc));
        return 1;
    }
    return 0;
}

/* raise_nofile lifts the soft descriptor limit to what max_connections needs (the default soft
 * limit of 1024 would cap the engine silently), within the hard limit. */
static void raise_nofile(uint32_t max_connections)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        return;
    }
    rlim_t want = (rlim_t)max_connections + 256; /* listeners, LMDB, eventfds, logs */
    if (rl.rlim_max != RLIM_INFINITY && want > rl.rlim_max) {
        log_warn("certprovd: nofile_limit hard=%llu needed=%llu action=\"raise LimitNOFILE or "
                 "lower [server] max_connections\"",
                 (unsigned long long)rl.rlim_max, (unsigned long long)want);
        want = rl.rlim_max;
    }
    if (rl.rlim_cur < want) {
        rl.rlim_cur = want;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
            log_warn("certprovd: setrlimit_nofile_failed errno=%d", errno);
        }
    }
}

/* tls_open loads the TLS server certificate and key, the issuing CA (client certificates for
 * renewal must chain to it) and the ticket keys, when [server] tls_listen is set. */
static int tls_open(struct daemon *d)
{
    if (d->cfg.tls_listen[0] == '\0') {
        return 0;
    }
    char crt[SERVICE_PATH_MAX + 32];
    char key[SERVICE_PATH_MAX + 32];
    char ca[SERVICE_PATH_MAX + 32];
    if (signer_file_path(crt, sizeof(crt), d->cfg.store_path, SIGNER_FILE_SERVER_CRT) != 0 ||
        signer_file_path(key, sizeof(key), d->cfg.store_path, SIGNER_FILE_SERVER_KEY) != 0 ||
        signer_file_path(ca, sizeof(ca), d->cfg.store_path, SIGNER_FILE_ISSUING_CRT) != 0) {
        fprintf(stderr, "certprovd: the store path %s is too long\n", d->cfg.store_path);
        return 1;
    }
    /* With [directory], the client CA file is the fleet's issuing CAs (README, The fleet
     * directory): this appliance's until the directory thread has read the others. */
    if (d->cfg.directory[0] != '\0' && !d->check) {
        uint8_t der[STORE_DIRECTORY_CA_DER_MAX];
        size_t len = 0;
        char pem[2 * STORE_DIRECTORY_CA_DER_MAX + 128];
        size_t pem_len = 0;
        int n = snprintf(d->fleet_cas, sizeof(d->fleet_cas), "%s/fleet-cas.pem", d->cfg.store_path);
        int rc = n < 0 || (size_t)n >= sizeof(d->fleet_cas) ? -ENAMETOOLONG : 0;
        rc = rc != 0 ? rc : signer_pem_read_cert(der, sizeof(der), &len, ca, 0);
        rc = rc != 0 ? rc : signer_pem_encode(pem, sizeof(pem), &pem_len, "CERTIFICATE", der, len);
        rc = rc != 0 ? rc : base_file_write_atomic(d->fleet_cas, pem, pem_len, 0644, false);
        if (rc != 0) {
            fprintf(stderr, "certprovd: cannot write %s/fleet-cas.pem: %s\n", d->cfg.store_path,
                    strerror(-rc));
            return 1;
        }
        memcpy(ca, d->fleet_cas, strlen(d->fleet_cas) + 1);
    }
    struct ioring_tls_options to = {.cert_file = crt,
                                    .key_file = key,
                                    .client_ca_file = ca,
                                    .ticket_file = d->cfg.ticket_keys,
                                    .ticket_rotate_s = d->cfg.ticket_key_rotate_h * 3600u};
    char err[IORING_TLS_ERR_MAX];
    int rc = ioring_tls_new(&d->tls, err, &to);
    if (rc != 0) {
        fprintf(stderr, "certprovd: [server] tls_listen = %s: %s\n", d->cfg.tls_listen, err);
        return 1;
    }
    return 0;
}

/* tls_refresh keeps the running listener's certificate right: tls_leaf reissues it when it is
 * due (30 days before it expires, or when it no longer fits the CA or the names), and the
 * listener then takes it for new connections. `always`: load the files again anyway (SIGHUP: an
 * operator replaced them, or the ticket keys). */
static void tls_refresh(struct daemon *d, bool always)
{
    if (d->tls == NULL) {
        return;
    }
    bool ok = false;
    d->tls_reissued = false;
    if (tls_leaf(d, &ok) != 0) {
        log_err("certprovd: tls_refresh_failed action=\"the certificate in use is kept\"");
    }
    if (!always && !d->tls_reissued) {
        return;
    }
    char err[IORING_TLS_ERR_MAX];
    if (ioring_tls_reload(d->tls, err) != 0) {
        log_err("certprovd: tls_reload_failed reason=\"%s\" action=\"the certificate and keys in "
                "use are kept\"",
                err);
    }
}

/* notify tells the service manager how the daemon stands (sd_notify(3): Type=notify units); it
 * does nothing without $NOTIFY_SOCKET. A failure is logged and never stops the daemon: systemd
 * then times the start out, which says more than we could. */
static void notify(const char *state)
{
    int rc = sd_notify(0, state);
    if (rc < 0) {
        log_warn("certprovd: sd_notify_failed state=%.*s errno=%d", (int)strcspn(state, "\n"),
                 state, -rc);
    }
}

/* reload does what SIGHUP asks: the log file opened again, the TLS certificate checked (and
 * reissued when due) and, with the ticket keys, read again. */
static void reload(struct daemon *d)
{
    if (d->log_path != NULL && log_open(d->log_path) != 0) {
        fprintf(stderr, "certprovd: cannot reopen %s\n", d->log_path);
    }
    tls_refresh(d, true);
}

static int serve(struct daemon *d, const sigset_t *set)
{
    raise_nofile(d->cfg.max_connections);
    struct ioring_options io;
    ioring_options_default(&io);
    io.listen = d->cfg.listen;
    io.workers = d->cfg.workers;
    io.max_connections = d->cfg.max_connections;
    io.max_request_bytes = d->cfg.max_request_bytes;
    io.max_header_bytes = d->cfg.max_header_bytes;
    io.max_inflight = d->cfg.max_inflight;
    io.max_connections_per_client = d->cfg.max_connections_per_client;
    io.max_inflight_per_client = d->cfg.max_inflight_per_client;
    io.inflight_reserve = d->cfg.inflight_reserve;
    io.header_timeout_ms = d->cfg.header_timeout_s * 1000;
    io.body_timeout_ms = d->cfg.body_timeout_s * 1000;
    io.idle_timeout_ms = d->cfg.idle_timeout_s * 1000;
    io.proxy_protocol = d->cfg.proxy_protocol;
    io.proxy_from = d->cfg.proxy_from;
    io.tls_listen = d->cfg.tls_listen;
    io.tls = d->tls;
    io.handshake_timeout_ms = d->cfg.handshake_timeout_s * 1000;
    io.max_handshakes = d->cfg.max_handshakes;
    io.on_turn_end = service_turn_end;
    io.on_classify = service_classify;
    io.on_canned = service_canned;
    uint32_t rings = d->cfg.workers != 0 ? d->cfg.workers : (uint32_t)sysconf(_SC_NPROCESSORS_ONLN);
    struct service_options so = {.cfg = &d->cfg,
                                 .st = d->st,
                                 .ca = d->ca,
                                 .pin_key = d->pin_key,
                                 .rings = rings,
                                 .items_per_ring = io.max_inflight,
                                 .pub = d->pub,
                                 .dir = d->dir};
    int rc = service_new(&d->svc, &so);
    if (rc == 0) {
        fleet_service_made(d);
    }
    if (rc != 0) {
        fprintf(stderr, "certprovd: cannot start the service: %s\n", strerror(-rc));
        return 1;
    }
    io.workers = rings;
    rc = ioring_engine_new(&d->eng, &io, service_handle, d->svc);
    const char *both = d->cfg.tls_listen[0] != '\0' ? " or [server] tls_listen " : "";
    if (rc == -EADDRINUSE) {
        fprintf(stderr,
                "certprovd: cannot listen on %s%s%s: the address is already in use by another "
                "process (another certprovd?); stop it, or set another [server] listen%s\n",
                d->cfg.listen, both[0] != '\0' ? " or " : "", d->cfg.tls_listen,
                both[0] != '\0' ? " or tls_listen" : "");
        return 1;
    }
    if (rc != 0) {
        fprintf(stderr, "certprovd: cannot listen on %s%s%s: %s\n", d->cfg.listen,
                both[0] != '\0' ? " or " : "", d->cfg.tls_listen, strerror(-rc));
        return 1;
    }
    service_set_engine(d->svc, d->eng);
    log_info("certprovd: ready listen=%s port=%u tls_listen=%s tls_port=%u rings=%u name=%s",
             d->cfg.listen, ioring_engine_port(d->eng),
             d->cfg.tls_listen[0] != '\0' ? d->cfg.tls_listen : "-", ioring_engine_tls_port(d->eng),
             rings, d->cfg.name);
    /* The store, the key, the publisher and every ring's listener are up. */
    notify("READY=1");
    for (;;) { /* until SIGTERM or SIGINT */
        struct timespec ts = {.tv_sec = DAEMON_TLS_CHECK_S, .tv_nsec = 0};
        int sig = sigtimedwait(set, NULL, &ts);
        if (sig == -1) {
            if (errno == EAGAIN) {
                tls_refresh(d, false); /* hourly: a long-running appliance renews its leaf */
            }
            continue;
        }
        if (sig == SIGHUP) {
            /* systemd >= 253 wants the reload's start time with RELOADING=1 (older ones
             * ignore it): CLOCK_MONOTONIC in microseconds. */
            char state[64];
            snprintf(state, sizeof(state), "RELOADING=1\nMONOTONIC_USEC=%llu",
                     (unsigned long long)(clock_mono_ns() / 1000u));
            notify(state);
            reload(d);
            notify("READY=1");
            continue;
        }
        notify("STOPPING=1");
        log_info("certprovd: stopping signal=%d", sig);
        break;
    }
    rc = ioring_engine_stop(d->eng, DAEMON_DRAIN_MS);
    if (rc != 0) {
        log_warn("certprovd: drain_deadline_passed rc=%d", rc);
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct daemon d = {.level = LOG_LEVEL_INFO};
    int mrc = pthread_mutex_init(&d.fleet_mu, NULL);
    ASSERT(mrc == 0);
    int rc = parse_args(&d, argc, argv);
    if (rc != 0) {
        return rc < 0 ? 0 : rc;
    }
    log_setup("certprovd", d.level);
    log_format_set(d.log_format);
    if (d.log_path != NULL && log_open(d.log_path) != 0) {
        fprintf(stderr, "certprovd: cannot open the log file %s\n", d.log_path);
        return 1;
    }
    /* Signals are taken synchronously by the main thread; every other thread blocks them. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    /* A file size limit (ulimit -f, systemd LimitFSIZE=) is then a write failing with EFBIG,
     * which the store reports as full (503 StoreUnavailable, /readyz), not a killed daemon. */
    signal(SIGXFSZ, SIG_IGN);
    rc = open_parts(&d);
    if (rc != 0) {
        goto out;
    }
    bool tls_ok = false;
    if (d.check) {
        rc = check_chain(&d);
        rc = rc != 0 ? rc : tls_leaf(&d, &tls_ok);
        rc = rc != 0 ? rc : trust_check(&d, tls_ok);
        /* The listener's context as the server would load it (ticket keys included), unless
         * the certificate is reissued at start anyway. */
        rc = rc != 0 || !tls_ok ? rc : tls_open(&d);
        check_daemon(&d);
        check_pools(&d);
        rc = rc != 0 ? rc : start_directory(&d);
        goto out;
    }
    /* Before the engine: the handshake's certificate and the chains it leads to are right,
     * then the TLS listener's context is loaded from them. */
    rc = tls_leaf(&d, &tls_ok);
    rc = rc != 0 ? rc : trust_check(&d, tls_ok);
    rc = rc != 0 ? rc : tls_open(&d);
    if (rc != 0) {
        goto out;
    }
    rc = start_directory(&d);
    rc = rc != 0 ? rc : start_publisher(&d);
    if (rc != 0) {
        goto out;
    }
    rc = serve(&d, &set);
out:
    /* The writer may still be answering the last requests (they wake their ring): join it
     * before the engine and its rings go away. */
    base_mutex_lock(&d.fleet_mu); /* the directory thread no longer hands the service anything */
    d.fleet_svc = NULL;
    base_mutex_unlock(&d.fleet_mu);
    service_free(d.svc);
    ioring_engine_free(d.eng);
    store_directory_stop(d.dir); /* after the service (/readyz reads its stats), before the TLS
                                    context its fleet_cas_changed reloads */
    for (size_t i = 0; i < d.fleet_num; i++) {
        free(d.fleet_der[i]);
    }
    ioring_tls_free(d.tls);      /* after the engine: its rings use it */
    store_publisher_stop(d.pub); /* after the writer: nothing wakes it any more */
    signer_pin_key_free(d.pin_key);
    signer_ca_free(d.ca);
    store_close(d.st);
    store_lock_close(d.lock); /* last: the store is closed, another daemon may have it */
    if (rc == 0 && !d.check) {
        log_info("certprovd: stopped");
    }
    return rc;
}
