/* certprov-probe: options, the report (text or JSON) and --repeat. See probe.h for the parts. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/mem.h>

#include "base/base.h"
#include "cmd/certprov-probe/probe.h"

#define MAIN_SIP_MAX 256u
#define MAIN_TIMEOUT_DEFAULT_MS 10000u

static void print_text(const struct probe_report *rep, uint32_t rep_no, uint32_t num_reps)
{
    if (num_reps > 1) {
        printf("Repetition : %u of %u\n", rep_no, num_reps);
    }
    printf("TargetUri  : %s\nTargetFqdn : %s\nResult     : %s\nLatency    : %.1f ms\n"
           "Error      : %s\nDiagnosis  : %s\n",
           rep->target_uri, rep->fqdn, rep->success ? "Success" : "Failure", rep->latency_ms,
           rep->error, rep->diagnosis);
    if (rep->serial[0] != '\0') {
        printf("Serial     : %s\n", rep->serial);
    }
    printf("Steps      :\n");
    for (size_t i = 0; i < rep->num_steps; i++) {
        const struct probe_step *s = &rep->steps[i];
        printf("  %-15s %9.1f ms  %-7s %s\n", s->name, s->ms, s->ok ? "ok" : "FAILED", s->detail);
    }
    if (rep->num_notes > 0) {
        printf("Notes      :\n");
        for (size_t i = 0; i < rep->num_notes; i++) {
            printf("  - %s\n", rep->notes[i]);
        }
    }
}

static void json_str(const char *s)
{
    putchar('"');
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        if (*p == '"' || *p == '\\') {
            printf("\\%c", *p);
        } else if (*p < 0x20 || *p == 0x7f) {
            printf("\\u%04x", *p);
        } else {
            putchar(*p);
        }
    }
    putchar('"');
}

static void print_json(const struct probe_report *rep, uint32_t rep_no)
{
    printf("{\"TargetUri\":");
    json_str(rep->target_uri);
    printf(",\"TargetFqdn\":");
    json_str(rep->fqdn);
    printf(",\"Result\":\"%s\",\"Latency\":%.3f,\"Error\":", rep->success ? "Success" : "Failure",
           rep->latency_ms);
    json_str(rep->error);
    printf(",\"Diagnosis\":");
    json_str(rep->diagnosis);
    printf(",\"FailedStep\":");
    if (rep->failed != NULL) {
        json_str(rep->failed);
    } else {
        printf("null");
    }
    printf(",\"Serial\":");
    json_str(rep->serial);
    printf(",\"Repetition\":%u,\"Steps\":[", rep_no);
    for (size_t i = 0; i < rep->num_steps; i++) {
        const struct probe_step *s = &rep->steps[i];
        printf("%s{\"Name\":", i > 0 ? "," : "");
        json_str(s->name);
        printf(",\"Latency\":%.3f,\"Result\":\"%s\",\"Detail\":", s->ms,
               s->ok ? "Success" : "Failure");
        json_str(s->detail);
        putchar('}');
    }
    printf("],\"Notes\":[");
    for (size_t i = 0; i < rep->num_notes; i++) {
        if (i > 0) {
            putchar(',');
        }
        json_str(rep->notes[i]);
    }
    printf("]}\n");
}

/* ---- options ---- */

enum command { CMD_NONE, CMD_BOOTSTRAP, CMD_CLIENTAUTH, CMD_CHAIN };

static void usage(FILE *out)
{
    fprintf(
        out,
        "usage: certprov-probe bootstrap --target-uri URL --phone-or-ext X --pin-stdin\n"
        "                      [--user-sip-address URI] [--trust FILE] [--chain-url URL]\n"
        "                      [--key-type TYPE] [--direct] [COMMON]\n"
        "       certprov-probe clientauth --target-uri URL --cert FILE --key FILE\n"
        "                      [--user-sip-address URI] [--trust FILE] [--chain-url URL] [COMMON]\n"
        "       certprov-probe chain --target-uri URL --trust FILE [COMMON]\n"
        "       COMMON: [--json] [--repeat N [--interval S]] [--timeout S]\n"
        "\n"
        "The synthetic phone sign-in against a certprov appliance (Test-CsPhoneBootstrap and\n"
        "Test-CsClientAuth): each command runs as steps and says which one failed and what to do.\n"
        "\n"
        "bootstrap   a phone's first sign-in, the phone's path ([MS-OCAUTHWS]): DNS, trust,\n"
        "            connect, TLS chain; metadata: GET <target>/mex, the Web ticket port\n"
        "            (CertProvisioningServiceWebTicketProof_SHA1) and the Web Ticket Service its\n"
        "            policy names, then that service's /mex for its PIN port\n"
        "            (WebTicketServicePin); webticket: a WS-Trust RST there with the phone number\n"
        "            or extension and PIN (UsernameToken), client entropy and Context, the SAML\n"
        "            ticket and the proof key P_SHA1(client, server entropy); a fresh key and CSR\n"
        "            (CN = the ticket's user); certprov: GetAndPublishCert to the Web ticket port\n"
        "            with the ticket and an HMAC-SHA1 proof over a fresh Timestamp; the\n"
        "            certificate returned (chain, SAN, validity, clientAuth), then a renewal over\n"
        "            mTLS with it (SOAP without a PIN: Test-CsClientAuth). With\n"
        "            --user-sip-address the ticket is asked for that user (its URI claim).\n"
        "            Against http:// it works too (the metadata names the URLs it goes to; the\n"
        "            PIN travels in clear to a plain http:// PIN port, said so) and skips mTLS.\n"
        "clientauth  the client-certificate sign-in with --cert/--key: a renewal over mTLS.\n"
        "chain       the server's TLS chain against --trust; names the missing link.\n"
        "\n"
        "  --target-uri URL        https://POOL[:PORT][/PATH] or http://...; the path defaults to\n"
        "                          " PROBE_SOAP_PATH "\n"
        "  --phone-or-ext X        the phone number (+E.164) or extension to sign in with\n"
        "  --pin-stdin             read the PIN (digits) from the first line of stdin; it is\n"
        "                          never printed\n"
        "  --user-sip-address URI  the user's sip: URI: the SAN the certificate must carry; on\n"
        "                          the phone's path the ticket's URI claim, with --direct the\n"
        "                          Entity and the CSR's CN\n"
        "  --direct                bootstrap without metadata nor ticket (this appliance's\n"
        "                          shortcut, not the phones' path): the PIN in a WS-Security\n"
        "                          UsernameToken of GetAndPublishCert to --target-uri (step\n"
        "                          enroll), or without --user-sip-address EST simpleenroll\n"
        "                          with HTTP Basic (no Entity)\n"
        "  --trust FILE            PEM roots to check the TLS chain and the certificates against;\n"
        "                          without it the probe downloads the chain the appliance serves\n"
        "                          at " PROBE_CHAIN_PATH " over plain HTTP (as a phone does) and\n"
        "                          trusts its root, and says so\n"
        "  --chain-url URL         where to download that chain (default: the target's host on\n"
        "                          port 80, or 8080 when the target's port is 8443); with\n"
        "                          --trust, the chain downloaded from it must end in a root\n"
        "                          of --trust (what phones that ship with that root see)\n"
        "  --cert FILE, --key FILE the client certificate and its key (PEM), for clientauth\n"
        "  --key-type TYPE         the CSR's key: p256 (default), p384, rsa2048, ed25519, or\n"
        "                          rsa1024 (which the appliance must refuse: a policy test)\n"
        "  --json                  one JSON object per repetition and line, for monitoring\n"
        "  --repeat N              run N times (a synthetic monitor); --interval S between runs\n"
        "  --timeout S             each connect, send and receive (default 10 s)\n"
        "  --help                  this text\n"
        "\n"
        "Output: TargetUri, TargetFqdn, Result (Success/Failure), Latency, Error, Diagnosis\n"
        "(\"STEP: what happened; what to do\"), the certificate's Serial, each step with its\n"
        "latency, and notes. Steps: dns, trust or chain-download, credentials, connect, tls,\n"
        "metadata, webticket, csr, certprov (or enroll with --direct), certificate, clientauth;\n"
        "a failure names the server's answer (status, X-Ms-diagnostics, the SOAP fault or the\n"
        "ErrorInfo Code); a certprov or enroll refusal is blamed on CSR or signing by the Code,\n"
        "and otherwise on CertProv (the ticket refused) or authentication (--direct). The\n"
        "Diagnosis names the step in words (DNS, TLS chain, metadata, Web ticket, CertProv,\n"
        "CSR, ...), --json's FailedStep by name.\n"
        "\n"
        "Exit status: 0 success (every repetition), 1 a step failed, 2 usage error.\n");
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "certprov-probe: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, " (certprov-probe --help)\n");
    va_end(ap);
    return 2;
}

static int parse_seconds(double *out, const char *text, double min, double max)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(text, &end);
    if (errno != 0 || end == text || *end != '\0' || !isfinite(v) || v < min || v > max) {
        return -EINVAL;
    }
    *out = v;
    return 0;
}

/* read_pin reads the first line of stdin into o->pin: 1 to PROBE_PIN_MAX digits. */
static int read_pin(struct probe_options *o)
{
    char line[PROBE_PIN_MAX + 8];
    size_t n = 0;
    int ch = 0;
    /* Byte by byte: nothing beyond the first line is read (or buffered) from stdin. */
    while (n < sizeof(line) - 1 && (ch = getchar()) != EOF && ch != '\n') {
        line[n++] = (char)ch;
    }
    line[n] = '\0';
    if (n > 0 && line[n - 1] == '\r') {
        line[--n] = '\0';
    }
    bool ok = n > 0 && n <= PROBE_PIN_MAX && strspn(line, "0123456789") == n;
    if (ok) {
        memcpy(o->pin, line, n + 1);
    }
    OPENSSL_cleanse(line, sizeof(line));
    return ok ? 0 : -EINVAL;
}

static bool login_ok(const char *s)
{
    size_t len = strlen(s);
    const char *d = s[0] == '+' ? s + 1 : s;
    return len > 0 && len <= PROBE_LOGIN_MAX && d[0] != '\0' &&
           strspn(d, "0123456789") == strlen(d);
}

static bool sip_ok(const char *s)
{
    size_t len = strlen(s);
    if (len == 0 || len >= MAIN_SIP_MAX) {
        return false;
    }
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        if (*p <= 0x20 || *p >= 0x7f || strchr("<>&\"'", *p) != NULL) {
            return false;
        }
    }
    return strchr(s, '@') != NULL;
}

struct main_args {
    enum command cmd;
    bool pin_stdin;
    bool json;
    uint32_t repeat;
    double interval_s;
};

static int parse(struct probe_options *o, struct main_args *a, int argc, char **argv)
{
    enum {
        O_TARGET = 256,
        O_LOGIN,
        O_PIN,
        O_SIP,
        O_TRUST,
        O_CHAIN_URL,
        O_CERT,
        O_KEY,
        O_KEY_TYPE,
        O_JSON,
        O_REPEAT,
        O_INTERVAL,
        O_TIMEOUT,
        O_DIRECT,
        O_HELP
    };
    static const struct option longopts[] = {
        {"target-uri", required_argument, NULL, O_TARGET},
        {"phone-or-ext", required_argument, NULL, O_LOGIN},
        {"pin-stdin", no_argument, NULL, O_PIN},
        {"user-sip-address", required_argument, NULL, O_SIP},
        {"trust", required_argument, NULL, O_TRUST},
        {"chain-url", required_argument, NULL, O_CHAIN_URL},
        {"cert", required_argument, NULL, O_CERT},
        {"key", required_argument, NULL, O_KEY},
        {"key-type", required_argument, NULL, O_KEY_TYPE},
        {"json", no_argument, NULL, O_JSON},
        {"repeat", required_argument, NULL, O_REPEAT},
        {"interval", required_argument, NULL, O_INTERVAL},
        {"timeout", required_argument, NULL, O_TIMEOUT},
        {"direct", no_argument, NULL, O_DIRECT},
        {"help", no_argument, NULL, O_HELP},
        {NULL, 0, NULL, 0},
    };
    double timeout_s = MAIN_TIMEOUT_DEFAULT_MS / 1000.0;
    bool interval_set = false;
    int c = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "+", longopts, NULL)) != -1) {
        char *end = NULL;
        switch (c) {
        case O_TARGET:
            o->target = optarg;
            break;
        case O_LOGIN:
            o->login = optarg;
            break;
        case O_PIN:
            a->pin_stdin = true;
            break;
        case O_SIP:
            o->sip = optarg;
            break;
        case O_TRUST:
            o->trust = optarg;
            break;
        case O_CHAIN_URL:
            o->chain_url = optarg;
            break;
        case O_CERT:
            o->cert = optarg;
            break;
        case O_KEY:
            o->key = optarg;
            break;
        case O_KEY_TYPE:
            if (probe_key_type_parse(&o->key_type, optarg) != 0) {
                return usage_error("--key-type '%s': not p256, p384, rsa2048, rsa1024 or ed25519",
                                   optarg);
            }
            break;
        case O_JSON:
            a->json = true;
            break;
        case O_REPEAT: {
            unsigned long v = strtoul(optarg, &end, 10);
            if (end == optarg || *end != '\0' || v == 0 || v > PROBE_REPEAT_MAX) {
                return usage_error("--repeat '%s': a number from 1 to %u", optarg,
                                   PROBE_REPEAT_MAX);
            }
            a->repeat = (uint32_t)v;
            break;
        }
        case O_INTERVAL:
            if (parse_seconds(&a->interval_s, optarg, 0, 86400) != 0) {
                return usage_error("--interval '%s': seconds from 0 to 86400", optarg);
            }
            interval_set = true;
            break;
        case O_TIMEOUT:
            if (parse_seconds(&timeout_s, optarg, 0.1, 600) != 0) {
                return usage_error("--timeout '%s': seconds from 0.1 to 600", optarg);
            }
            break;
        case O_DIRECT:
            o->direct = true;
            break;
        case O_HELP:
            usage(stdout);
            exit(0);
        default:
            return usage_error("unknown option or missing value: '%s'", argv[optind - 1]);
        }
    }
    o->timeout_ms = (uint32_t)(timeout_s * 1000);
    if (optind < argc) {
        return usage_error("unexpected argument '%s'", argv[optind]);
    }
    if (o->target == NULL) {
        return usage_error("--target-uri is required");
    }
    char err[PROBE_TEXT_MAX];
    struct probe_url u;
    if (probe_url_parse(&u, err, sizeof(err), o->target, PROBE_SOAP_PATH) != 0) {
        return usage_error("--target-uri: %s", err);
    }
    if (o->chain_url != NULL &&
        probe_url_parse(&u, err, sizeof(err), o->chain_url, PROBE_CHAIN_PATH) != 0) {
        return usage_error("--chain-url: %s", err);
    }
    if (o->sip != NULL && !sip_ok(o->sip)) {
        return usage_error("--user-sip-address '%s': a sip: URI like sip:alice@example.com "
                           "(no spaces, quotes or <>&)",
                           o->sip);
    }
    if (interval_set && a->repeat == 0) {
        return usage_error("--interval goes with --repeat");
    }
    if (a->repeat == 0) {
        a->repeat = 1;
    }
    if (a->cmd == CMD_BOOTSTRAP) {
        if (o->login == NULL || !a->pin_stdin) {
            return usage_error("bootstrap needs --phone-or-ext and --pin-stdin");
        }
        if (!login_ok(o->login)) {
            return usage_error("--phone-or-ext '%s': digits, with a leading + for a phone number",
                               o->login);
        }
        if (o->cert != NULL || o->key != NULL) {
            return usage_error("--cert and --key are for clientauth");
        }
    } else if (o->login != NULL || a->pin_stdin || o->key_type != PROBE_KEY_P256 || o->direct) {
        return usage_error("--phone-or-ext, --pin-stdin, --key-type and --direct are for "
                           "bootstrap");
    }
    if (a->cmd == CMD_CLIENTAUTH && (o->cert == NULL || o->key == NULL)) {
        return usage_error("clientauth needs --cert and --key");
    }
    if (a->cmd == CMD_CHAIN && o->trust == NULL) {
        return usage_error("chain needs --trust");
    }
    if (a->cmd != CMD_CLIENTAUTH && (o->cert != NULL || o->key != NULL)) {
        return usage_error("--cert and --key are for clientauth");
    }
    return 0;
}

static void sleep_s(double s)
{
    struct timespec ts = {.tv_sec = (time_t)s, .tv_nsec = (long)((s - floor(s)) * 1e9)};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
    }
}

int main(int argc, char **argv)
{
    static struct probe_options o;
    static uint8_t body[PROBE_BODY_MAX + 1];
    static struct probe_report rep;
    struct main_args a = {0};
    log_setup("certprov-probe", LOG_LEVEL_WARN);
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    static const char *const names[] = {
        [CMD_BOOTSTRAP] = "bootstrap", [CMD_CLIENTAUTH] = "clientauth", [CMD_CHAIN] = "chain"};
    for (size_t i = CMD_BOOTSTRAP; i < ARRAY_LEN(names); i++) {
        if (strcmp(argv[1], names[i]) == 0) {
            a.cmd = (enum command)i;
        }
    }
    if (a.cmd == CMD_NONE) {
        return usage_error("unknown command '%s': bootstrap, clientauth or chain", argv[1]);
    }
    int rc = parse(&o, &a, argc - 1, argv + 1);
    if (rc != 0) {
        return rc;
    }
    if (a.pin_stdin && read_pin(&o) != 0) {
        return usage_error("--pin-stdin: the first line of stdin must be a PIN of 1 to %u digits",
                           PROBE_PIN_MAX);
    }
    bool all_ok = true;
    for (uint32_t i = 1; i <= a.repeat; i++) {
        int r = a.cmd == CMD_BOOTSTRAP    ? probe_bootstrap(&rep, &o, body)
                : a.cmd == CMD_CLIENTAUTH ? probe_clientauth(&rep, &o, body)
                                          : probe_chain(&rep, &o, body);
        ASSERT(rep.done);
        ASSERT((r == 0) == rep.success);
        all_ok = all_ok && r == 0;
        if (a.json) {
            print_json(&rep, i);
        } else {
            print_text(&rep, i, a.repeat);
            if (i < a.repeat) {
                putchar('\n');
            }
        }
        fflush(stdout);
        if (i < a.repeat && a.interval_s > 0) {
            sleep_s(a.interval_s);
        }
    }
    OPENSSL_cleanse(o.pin, sizeof(o.pin));
    OPENSSL_cleanse(body, sizeof(body));
    return all_ok ? 0 : 1;
}
