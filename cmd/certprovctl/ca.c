/* certprovctl ca init | ca show */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "base/base.h"
#include "cmd/certprovctl/ctl.h"

static void show_cert(const char *title, const char *path, size_t index)
{
    uint8_t der[8192];
    size_t len = 0;
    struct signer_cert_info info;
    if (signer_pem_read_cert(der, sizeof(der), &len, path, index) != 0 ||
        signer_cert_info_der(&info, der, len) != 0) {
        printf("%s: missing or unreadable (%s)\n", title, path);
        return;
    }
    char nb[CLOCK_UTC_LEN];
    char na[CLOCK_UTC_LEN];
    ctl_time(nb, info.not_before_s);
    ctl_time(na, info.not_after_s);
    printf("%s:\n  subject:  %s\n  issuer:   %s\n  serial:   %s\n  validity: %s .. %s\n"
           "  key:      %s\n  sha256:   %s\n",
           title, info.subject, info.issuer, info.serial, nb, na, info.key, info.sha256);
    if (info.san[0] != '\0') {
        printf("  san:      %s\n", info.san);
    }
    printf("  file:     %s\n", path);
}

static int ca_show(struct ctl *ctl, int argc, char **argv)
{
    (void)argv;
    if (argc > 1) {
        return ctl_usage(&ctl_ca_cmds[1], "ca show takes no arguments");
    }
    const char *dir = ctl->cfg.store_path;
    struct signer_ca *ca = NULL;
    int rc = ctl_ca_open(ctl, &ca, "");
    if (rc != 0) {
        return rc;
    }
    char path[SERVICE_PATH_MAX + 32];
    (void)signer_file_path(path, sizeof(path), dir, SIGNER_FILE_ROOT_CRT);
    show_cert("root CA", path, 0);
    (void)signer_file_path(path, sizeof(path), dir, SIGNER_FILE_ISSUING_CRT);
    show_cert("issuing CA", path, 0);
    printf("  signing key: %s (%s)\n", hsm_key_get_label(signer_ca_get_key(ca)),
           hsm_key_type_name(hsm_key_get_type(signer_ca_get_key(ca))));
    (void)signer_file_path(path, sizeof(path), dir, SIGNER_FILE_SERVER_CRT);
    show_cert("TLS server", path, 0);
    (void)signer_file_path(path, sizeof(path), dir, SIGNER_FILE_CHAIN);
    printf("chain served at /CertProv/chain.pem: %s\n", path);
    signer_ca_free(ca);
    return CTL_OK;
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
    char err[512];
    struct hsm_pkcs11_options o = {.module = ctl->cfg.ca_module,
                                   .uri = uri,
                                   .sessions = 1,
                                   .sign_timeout_ms = ctl->cfg.ca_sign_timeout_ms};
    struct hsm_key *key = NULL;
    int rc = hsm_pkcs11_generate(&key, err, sizeof(err), &o, type);
    if (rc != 0) {
        return ctl_fail("--pkcs11: no key was generated: %s", err);
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
    {"ca", "show", ca_show, "",
     "Shows the root CA, the issuing CA and its key backend, and the TLS server certificate.\n"
     "A CA that cannot be loaded is named by its file and what is wrong ('FILE is missing',\n"
     "'run: chmod 600 FILE'); 'ca init' is the advice only for a store without CA files."},
    {NULL, NULL, NULL, NULL, NULL},
};
