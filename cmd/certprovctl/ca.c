/* certprovctl ca init | ca show | ca request | ca import */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "base/base.h"
#include "cmd/certprovctl/ctl.h"

/* show_der prints one certificate of the chain: role, subject, issuer, validity, fingerprint. */
static void show_der(const char *title, const struct signer_der *d, bool all_sans)
{
    struct signer_cert_info info;
    if (signer_cert_info_der(&info, d->der, d->der_len) != 0) {
        printf("%s: damaged\n", title);
        return;
    }
    char nb[CLOCK_UTC_LEN];
    char na[CLOCK_UTC_LEN];
    ctl_time(nb, info.not_before_s);
    ctl_time(na, info.not_after_s);
    printf("%s:\n  subject:  %s\n  issuer:   %s\n  serial:   %s\n  validity: %s .. %s\n"
           "  key:      %s\n  sha256:   %s\n",
           title, info.subject, info.issuer, info.serial, nb, na, info.key, info.sha256);
    char sans[SIGNER_TLS_NAMES_MAX * 260];
    if (all_sans && signer_cert_sans_format(sans, sizeof(sans), d->der, d->der_len) == 0) {
        printf("  san:      %s\n", sans);
    } else if (info.san[0] != '\0') {
        printf("  san:      %s\n", info.san);
    }
}

/* show_chain prints chain.pem, certificate by certificate, with its role. */
static void show_chain(struct signer_ca *ca, const char *dir, struct signer_cert_set *set)
{
    size_t len = 0;
    const char *pem = signer_ca_get_chain_pem(ca, &len);
    if (signer_cert_set_parse(set, pem, len) != 0) {
        printf("chain: %s/chain.pem is damaged\n", dir);
        return;
    }
    for (size_t i = 0; i < set->num; i++) {
        bool root = i > 0 && i + 1 == set->num && signer_cert_self_signed(&set->certs[i]);
        show_der(i == 0 ? "issuing CA"
                 : root ? "root CA"
                        : "intermediate CA",
                 &set->certs[i], false);
        if (i == 0) {
            printf("  signing key: %s (%s)\n", hsm_key_get_label(signer_ca_get_key(ca)),
                   hsm_key_type_name(hsm_key_get_type(signer_ca_get_key(ca))));
        }
    }
}

/* json_cert prints one certificate as a JSON object (the fields of show_der). */
static void json_cert(const char *role, const struct signer_der *d, bool all_sans)
{
    struct signer_cert_info info;
    printf("{");
    ctl_json_kv(true, "role", role);
    if (signer_cert_info_der(&info, d->der, d->der_len) != 0) {
        ctl_json_kv(false, "error", "damaged");
        printf("}");
        return;
    }
    ctl_json_kv(false, "subject", info.subject);
    ctl_json_kv(false, "issuer", info.issuer);
    ctl_json_kv(false, "serial", info.serial);
    ctl_json_time("not_before", info.not_before_s);
    ctl_json_time("not_after", info.not_after_s);
    ctl_json_kv(false, "key", info.key);
    ctl_json_kv(false, "sha256", info.sha256);
    char sans[SIGNER_TLS_NAMES_MAX * 260];
    if (all_sans && signer_cert_sans_format(sans, sizeof(sans), d->der, d->der_len) == 0) {
        ctl_json_kv(false, "san", sans);
    } else {
        ctl_json_kv(false, "san", info.san);
    }
    printf("}");
}

/* ca_show_json prints what ca_show prints as one JSON object. */
static void ca_show_json(struct signer_ca *ca, const char *dir, bool own_root,
                         struct signer_cert_set *set)
{
    printf("{");
    ctl_json_kv(true, "ca", own_root ? "own" : "enterprise");
    printf(",\"chain\":[");
    size_t len = 0;
    const char *pem = signer_ca_get_chain_pem(ca, &len);
    if (signer_cert_set_parse(set, pem, len) == 0) {
        for (size_t i = 0; i < set->num; i++) {
            bool root = i > 0 && i + 1 == set->num && signer_cert_self_signed(&set->certs[i]);
            printf("%s", i > 0 ? "," : "");
            json_cert(i == 0 ? "issuing" : root ? "root" : "intermediate", &set->certs[i], false);
        }
    }
    printf("]");
    ctl_json_kv(false, "signing_key", hsm_key_get_label(signer_ca_get_key(ca)));
    ctl_json_kv(false, "signing_key_type",
                hsm_key_type_name(hsm_key_get_type(signer_ca_get_key(ca))));
    char path[SERVICE_PATH_MAX + 32];
    (void)signer_file_path(path, sizeof(path), dir, SIGNER_FILE_SERVER_CRT);
    printf(",\"tls\":");
    if (signer_cert_set_read(set, path) == 0) {
        json_cert("tls", &set->certs[0], true);
    } else {
        printf("null");
    }
    (void)signer_file_path(path, sizeof(path), dir, SIGNER_FILE_CHAIN);
    ctl_json_kv(false, "chain_file", path);
    printf("}\n");
}

static int ca_show(struct ctl *ctl, int argc, char **argv)
{
    bool json = argc == 2 && strcmp(argv[1], "--json") == 0;
    if (argc > 1 && !json) {
        return ctl_usage(&ctl_ca_cmds[1], "ca show takes only --json");
    }
    const char *dir = ctl->cfg.store_path;
    struct signer_ca *ca = NULL;
    int rc = ctl_ca_open(ctl, &ca, "");
    if (rc != 0) {
        return rc;
    }
    struct signer_cert_set *set = malloc(sizeof(*set));
    if (set == NULL) {
        signer_ca_free(ca);
        return ctl_fail("out of memory");
    }
    char path[SERVICE_PATH_MAX + 32];
    (void)signer_file_path(path, sizeof(path), dir, SIGNER_FILE_ROOT_KEY);
    bool own_root = access(path, F_OK) == 0;
    if (json) {
        ca_show_json(ca, dir, own_root, set);
        free(set);
        signer_ca_free(ca);
        return CTL_OK;
    }
    printf("CA: %s\n", own_root ? "this appliance's own root (ca init)"
                                : "the enterprise's (ca import): no root key here");
    show_chain(ca, dir, set);
    (void)signer_file_path(path, sizeof(path), dir, SIGNER_FILE_SERVER_CRT);
    if (signer_cert_set_read(set, path) == 0) {
        show_der("TLS server", &set->certs[0], true);
        printf("  file:     %s (leaf and %zu CA certificate%s)\n", path, set->num - 1,
               set->num == 2 ? "" : "s");
    } else {
        printf("TLS server: missing or unreadable (%s); certprovd issues one at start\n", path);
    }
    (void)signer_file_path(path, sizeof(path), dir, SIGNER_FILE_CHAIN);
    printf("chain served at /CertProv/chain.pem and EST cacerts: %s\n", path);
    free(set);
    signer_ca_free(ca);
    return CTL_OK;
}

/* pkcs11_key generates a key pair of `type` in the token of `uri` ([ca] module), or opens the
 * key of `uri` when type is HSM_KEY_NONE; a failure is printed. */
static int pkcs11_key(struct ctl *ctl, struct hsm_key **key, const char *uri,
                      enum hsm_key_type type)
{
    char err[512];
    struct hsm_pkcs11_options o = {.module = ctl->cfg.ca_module,
                                   .uri = uri,
                                   .sessions = 1,
                                   .sign_timeout_ms = ctl->cfg.ca_sign_timeout_ms};
    if (type == HSM_KEY_NONE) {
        return hsm_pkcs11_open(key, err, sizeof(err), &o) != 0
                   ? ctl_fail("the key of [ca] key (backend pkcs11) cannot be used: %s", err)
                   : 0;
    }
    return hsm_pkcs11_generate(key, err, sizeof(err), &o, type) != 0
               ? ctl_fail("--pkcs11: no key was generated: %s", err)
               : 0;
}

/* ca_init_pkcs11 generates the issuing CA's key pair in the token of `uri` ([ca] module) and
 * creates the CA with it (the root key is soft, in the store, of the same type). */
static int ca_init_pkcs11(struct ctl *ctl, const char *uri, enum hsm_key_type type,
                          const char *fqdn)
{
    if (ctl->cfg.ca_module[0] == '\0') {
        return ctl_fail("--pkcs11 needs [ca] module (the PKCS#11 module's path) in %s",
                        ctl->config_path);
    }
    /* Before the token gets a key pair: a store with a CA refuses (signer_ca_init_with_key
     * would too, but only after the key was made). */
    char path[SERVICE_PATH_MAX + 32];
    if (signer_file_path(path, sizeof(path), ctl->cfg.store_path, SIGNER_FILE_ISSUING_CRT) == 0 &&
        access(path, F_OK) == 0) {
        return ctl_fail("a CA already exists in %s; nothing was changed", ctl->cfg.store_path);
    }
    struct hsm_key *key = NULL;
    int rc = pkcs11_key(ctl, &key, uri, type);
    if (rc != 0) {
        return rc;
    }
    rc = signer_ca_init_with_key(ctl->cfg.store_path, key, fqdn);
    if (rc != 0) {
        hsm_key_free(key);
        return ctl_fail("creating the CA in %s failed: %s (the key pair stays in the token; "
                        "delete it there before trying again)",
                        ctl->cfg.store_path,
                        rc == -EEXIST   ? "a CA already exists"
                        : rc == -EINVAL ? "--fqdn is not a DNS name"
                                        : strerror(-rc));
    }
    printf("created a %s CA for %s in %s; the issuing key is in the token: %s\n"
           "certprovd uses it with [ca] backend = pkcs11 and key = that URI (with its PIN)\n",
           hsm_key_type_name(type), fqdn, ctl->cfg.store_path, hsm_key_get_label(key));
    hsm_key_free(key);
    return CTL_OK;
}

static int ca_init(struct ctl *ctl, int argc, char **argv)
{
    static const struct option opts[] = {{"key-type", required_argument, NULL, 't'},
                                         {"pkcs11", required_argument, NULL, 'p'},
                                         {"fqdn", required_argument, NULL, 'f'},
                                         {NULL, 0, NULL, 0}};
    const struct ctl_cmd *cmd = &ctl_ca_cmds[0];
    enum hsm_key_type type = HSM_KEY_P256;
    const char *fqdn = ctl->cfg.name;
    const char *pkcs11 = NULL;
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 't' && hsm_key_type_parse(&type, optarg) != 0) {
            return ctl_usage(cmd, "--key-type must be p256, p384, rsa2048, rsa3072 or ed25519");
        } else if (c == 'p') {
            pkcs11 = optarg;
        } else if (c == 'f') {
            fqdn = optarg;
        } else if (c == '?') {
            return ctl_usage(cmd, "unknown or incomplete option '%s'", argv[optind - 1]);
        }
    }
    if (optind != argc) {
        return ctl_usage(cmd, "unexpected argument '%s'", argv[optind]);
    }
    /* Refused beside a daemon: it keeps the CA and the PIN key it loaded at start, so it would
     * go on serving the old chain and checking PINs with the old key (a missing pin.key made
     * anew would turn away every user added from then on). */
    int rc = ctl_no_daemon(
        ctl, "ca init", "the daemon keeps the CA and PIN key it loaded and would not see new ones");
    if (rc != 0) {
        return rc;
    }
    rc = ctl_pin_key(ctl); /* also creates the store directory */
    if (rc != 0) {
        return rc;
    }
    if (pkcs11 != NULL) {
        rc = ca_init_pkcs11(ctl, pkcs11, type, fqdn);
        return rc != CTL_OK || strcmp(ctl->cfg.ca_backend, "pkcs11") != 0 ? rc
                                                                          : ca_show(ctl, 1, argv);
    }
    rc = signer_ca_init(ctl->cfg.store_path, type, fqdn);
    if (rc == -EEXIST) {
        return ctl_fail("a CA already exists in %s; nothing was changed", ctl->cfg.store_path);
    }
    if (rc == -EINVAL) {
        return ctl_fail("--fqdn '%s' is not a DNS name", fqdn);
    }
    if (rc != 0) {
        return ctl_fail("creating the CA in %s failed: %s", ctl->cfg.store_path, strerror(-rc));
    }
    printf("created a %s CA for %s in %s\n", hsm_key_type_name(type), fqdn, ctl->cfg.store_path);
    return ca_show(ctl, 1, argv);
}

/* parse_subject reads --subject "CN=name,O=org" (CN required, O optional, in any order; a value
 * may not hold ',' or '='): the two attributes our CA names are built from. */
static int subject_parse(char *cn, char *o, size_t cap, const char *text)
{
    cn[0] = o[0] = '\0';
    const char *p = text;
    while (*p != '\0') { /* at most strlen(text) rounds: each consumes a pair */
        while (*p == ' ' || *p == '/') {
            p++;
        }
        char *dst = strncasecmp(p, "CN=", 3) == 0 ? cn : strncasecmp(p, "O=", 2) == 0 ? o : NULL;
        if (dst == NULL || dst[0] != '\0') {
            return -EINVAL;
        }
        p += dst == cn ? 3 : 2;
        size_t len = strcspn(p, ",/=");
        if (len == 0 || len >= cap || p[len] == '=') {
            return -EINVAL;
        }
        memcpy(dst, p, len);
        dst[len] = '\0';
        p += len;
        p += *p != '\0' ? 1 : 0;
    }
    return cn[0] == '\0' ? -EINVAL : 0;
}

/* request_key_pkcs11 generates the pending request's key pair in the token of `uri` ([ca]
 * module), after checking that the store may take a request (no key is made for nothing). */
static int request_key_pkcs11(struct ctl *ctl, struct hsm_key **key, const char *uri,
                              enum hsm_key_type type)
{
    int rc = signer_ca_pending(ctl->cfg.store_path);
    if (rc == -EEXIST) {
        return ctl_fail("a CA already exists in %s; nothing was changed", ctl->cfg.store_path);
    }
    return pkcs11_key(ctl, key, uri, type);
}

/* import_key opens the pending request's key for `ca import`: the token's ([ca] backend =
 * pkcs11, key = its URI), or NULL for the soft file. */
static int import_key(struct ctl *ctl, struct hsm_key **key)
{
    *key = NULL;
    if (strcmp(ctl->cfg.ca_backend, "pkcs11") != 0) {
        return 0;
    }
    return pkcs11_key(ctl, key, ctl->cfg.ca_key, HSM_KEY_NONE);
}

static int ca_request(struct ctl *ctl, int argc, char **argv)
{
    static const struct option opts[] = {{"out", required_argument, NULL, 'o'},
                                         {"key-type", required_argument, NULL, 't'},
                                         {"subject", required_argument, NULL, 's'},
                                         {"pkcs11", required_argument, NULL, 'p'},
                                         {NULL, 0, NULL, 0}};
    const struct ctl_cmd *cmd = &ctl_ca_cmds[2];
    enum hsm_key_type type = HSM_KEY_P256;
    const char *out = NULL;
    const char *pkcs11 = NULL;
    char cn[SIGNER_SUBJECT_MAX + 1] = "certprov Issuing CA";
    char o[SIGNER_SUBJECT_MAX + 1];
    (void)base_str_copy(o, sizeof(o), ctl->cfg.name);
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 't' && hsm_key_type_parse(&type, optarg) != 0) {
            return ctl_usage(cmd, "--key-type must be p256, p384, rsa2048, rsa3072 or ed25519");
        } else if (c == 'o') {
            out = optarg;
        } else if (c == 'p') {
            pkcs11 = optarg;
        } else if (c == 's' && subject_parse(cn, o, sizeof(cn), optarg) != 0) {
            return ctl_usage(cmd,
                             "--subject must be 'CN=NAME' or 'CN=NAME,O=ORG' (values of at "
                             "most %d printable characters, without ',' '/' '=')",
                             SIGNER_SUBJECT_MAX);
        } else if (c == '?') {
            return ctl_usage(cmd, "unknown or incomplete option '%s'", argv[optind - 1]);
        }
    }
    if (optind != argc || out == NULL) {
        return ctl_usage(cmd, optind != argc ? "unexpected argument" : "--out FILE is required");
    }
    if (pkcs11 != NULL && ctl->cfg.ca_module[0] == '\0') {
        return ctl_fail("--pkcs11 needs [ca] module (the PKCS#11 module's path) in %s",
                        ctl->config_path);
    }
    int rc = ctl_no_daemon(ctl, "ca request", "the daemon keeps the CA it loaded");
    if (rc != 0) {
        return rc;
    }
    rc = ctl_pin_key(ctl); /* also creates the store directory */
    if (rc != 0) {
        return rc;
    }
    struct base_file_atomic f = {0};
    rc = base_file_atomic_open(&f, out, 0644, false); /* --out is writable before the key exists */
    if (rc != 0) {
        return ctl_fail("cannot write %s: %s", out, strerror(-rc));
    }
    char pem[8192];
    size_t len = 0;
    struct hsm_key *key = NULL;
    if (pkcs11 != NULL) {
        rc = request_key_pkcs11(ctl, &key, pkcs11, type);
        if (rc != 0) {
            base_file_atomic_abort(&f);
            return rc;
        }
        rc = signer_ca_request_with_key(pem, sizeof(pem), &len, ctl->cfg.store_path, key, cn,
                                        o[0] != '\0' ? o : NULL);
    } else {
        rc = signer_ca_request(pem, sizeof(pem), &len, ctl->cfg.store_path, type, cn,
                               o[0] != '\0' ? o : NULL);
    }
    char label[3 * HSM_P11_URI_MAX + 64] = "";
    if (key != NULL) {
        (void)base_str_copy(label, sizeof(label), hsm_key_get_label(key));
        hsm_key_free(key);
    }
    if (rc != 0) {
        base_file_atomic_abort(&f);
        if (rc == -EEXIST) {
            return ctl_fail("a CA already exists in %s; nothing was changed", ctl->cfg.store_path);
        }
        return ctl_fail("making the request in %s failed: %s%s", ctl->cfg.store_path,
                        rc == -EINVAL ? "a --subject value is not printable" : strerror(-rc),
                        label[0] != '\0' ? " (the key pair stays in the token; delete it there "
                                           "before trying again)"
                                         : "");
    }
    rc = base_file_atomic_commit(&f, pem, len);
    if (rc != 0) {
        return ctl_fail("cannot write %s: %s (the request is also in %s/ca/issuing.csr)", out,
                        strerror(-rc), ctl->cfg.store_path);
    }
    printf("made a %s issuing key and its request (CN=%s%s%s) in %s; have the enterprise's CA "
           "sign %s (a CA certificate: basicConstraints CA:TRUE, keyUsage keyCertSign), then run: "
           "certprovctl -c %s ca import --cert ISSUING.pem --chain CHAIN.pem\n",
           hsm_key_type_name(type), cn, o[0] != '\0' ? ", O=" : "", o, ctl->cfg.store_path, out,
           ctl->config_path);
    if (label[0] != '\0') {
        printf("the issuing key is in the token: %s\nbefore 'ca import', set [ca] backend = "
               "pkcs11 and key = that URI (with its PIN)\n",
               label);
    }
    return CTL_OK;
}

static int read_set(struct signer_cert_set *set, const char *opt, const char *path)
{
    int rc = signer_cert_set_read(set, path);
    if (rc == 0) {
        return 0;
    }
    return ctl_fail("%s %s: %s", opt, path,
                    rc == -EBADMSG ? "no PEM certificate in it, or a damaged one"
                    : rc == -E2BIG ? "more certificates than a chain may have, or one too large"
                                   : strerror(-rc));
}

static int ca_import(struct ctl *ctl, int argc, char **argv)
{
    static const struct option opts[] = {{"cert", required_argument, NULL, 'c'},
                                         {"chain", required_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const struct ctl_cmd *cmd = &ctl_ca_cmds[3];
    const char *cert = NULL, *chain = NULL;
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'c') {
            cert = optarg;
        } else if (c == 'h') {
            chain = optarg;
        } else if (c == '?') {
            return ctl_usage(cmd, "unknown or incomplete option '%s'", argv[optind - 1]);
        }
    }
    if (optind != argc || cert == NULL || chain == NULL) {
        return ctl_usage(cmd, optind != argc ? "unexpected argument"
                                             : "--cert FILE and --chain FILE are required");
    }
    int rc = ctl_no_daemon(ctl, "ca import", "the daemon keeps the CA it loaded");
    if (rc != 0) {
        return rc;
    }
    struct signer_cert_set *sets = calloc(2, sizeof(*sets));
    if (sets == NULL) {
        return ctl_fail("out of memory");
    }
    rc = read_set(&sets[0], "--cert", cert);
    rc = rc != 0 ? rc : read_set(&sets[1], "--chain", chain);
    if (rc == 0) {
        const char *names[SIGNER_TLS_NAMES_MAX];
        size_t num = 0;
        service_config_tls_names(&ctl->cfg, names, &num);
        char why[1024];
        struct hsm_key *key = NULL;
        rc = import_key(ctl, &key);
        int irc = rc != 0
                      ? 0
                      : signer_ca_import_with_key(why, sizeof(why), ctl->cfg.store_path, key,
                                                  &sets[0], &sets[1], names, num, clock_real_s());
        rc = irc != 0 ? ctl_fail("ca import: %s", why) : rc;
    }
    free(sets);
    if (rc != 0) {
        return rc;
    }
    printf("installed the enterprise's issuing CA from %s in %s\n", cert, ctl->cfg.store_path);
    return ca_show(ctl, 1, argv);
}

const struct ctl_cmd ctl_ca_cmds[] = {
    {"ca", "init", ca_init,
     "[--key-type p256|p384|rsa2048|rsa3072|ed25519] [--pkcs11 URI] "
     "[--fqdn NAME]",
     "Creates the root CA, the issuing CA (key type --key-type, default p256) and the TLS\n"
     "server certificate for --fqdn (default: [server] name) in the store directory, and the\n"
     "PIN key. Refuses to overwrite an existing CA. With --pkcs11 URI the issuing CA's key pair\n"
     "is generated in the token of the pkcs11: URI (module: [ca] module; the private key\n"
     "sensitive and not extractable; refused when the URI already names a key); then set\n"
     "[ca] backend = pkcs11 and key = URI. Refused while a certprovd holds the store (it keeps\n"
     "the CA and PIN key it loaded): stop it first."},
    {"ca", "show", ca_show, "[--json]",
     "Shows the chain (issuing CA and its key backend, intermediates, root: subject, issuer,\n"
     "validity, SHA-256 fingerprint) and the TLS server certificate with all its names.\n"
     "A CA that cannot be loaded is named by its file and what is wrong ('FILE is missing',\n"
     "'run: chmod 600 FILE'); 'ca init' is the advice only for a store without CA files."},
    {"ca", "request", ca_request,
     "--out FILE [--key-type p256|p384|rsa2048|rsa3072|ed25519] [--subject 'CN=NAME,O=ORG'] "
     "[--pkcs11 URI]",
     "For an issuing CA that the enterprise's own CA signs (its root is what the devices\n"
     "already trust): makes the issuing key (soft backend, ca/issuing.key, 0600) and a PKCS#10\n"
     "request for it, written to --out and to ca/issuing.csr. Subject default: CN=certprov\n"
     "Issuing CA, O=[server] name. Refuses when the store holds a CA; a pending request (of an\n"
     "earlier 'ca request') is replaced, key file included. With --pkcs11 URI the key pair is\n"
     "generated in the token of the pkcs11: URI instead (module: [ca] module; no key file):\n"
     "set [ca] backend = pkcs11 and key = URI before 'ca import'. Refused while a certprovd\n"
     "holds the store."},
    {"ca", "import", ca_import, "--cert ISSUING.pem --chain CHAIN.pem",
     "Installs the certificate the enterprise's CA returned for the pending request. Checks that\n"
     "it certifies the pending key (ca/issuing.key; with [ca] backend = pkcs11 the token's key\n"
     "of [ca] key), is a CA (basicConstraints CA:TRUE, a pathlen that allows\n"
     "0 more), has keyUsage keyCertSign and a subjectKeyIdentifier, is valid now, and chains by\n"
     "signatures through the intermediates of --chain to a self-signed root in --chain; a\n"
     "refusal names the certificate (subject) and the broken link. Then writes ca/issuing.crt,\n"
     "chain.pem (issuing, intermediates, root) and issues the TLS server certificate from it.\n"
     "No root key exists in this mode. Refused while a certprovd holds the store."},
    {NULL, NULL, NULL, NULL, NULL},
};
