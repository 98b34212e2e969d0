#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "service/service.h"
#include "tests/util/tmpdir.h"

static char dir[TMPDIR_PATH_MAX];
static char path[128];
static struct service_config cfg;
static char err[SERVICE_CONFIG_ERR_MAX];

static void setup(void)
{
    tmpdir_create(dir, sizeof(dir), "certprov-cfg");
    snprintf(path, sizeof(path), "%s/certprov.ini", dir);
}

static void teardown(void)
{
    tmpdir_remove(dir);
}

static int load(const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
    memset(&cfg, 0xAA, sizeof(cfg));
    return service_config_load(&cfg, err, path);
}

static const char *const api_example =
    "[server]\n"
    "name = certprov1.example.com     ; this appliance\n"
    "listen = 127.0.0.1:8080          ; plain HTTP\n"
    "tls_listen = 127.0.0.1:8443      ; HTTPS; empty disables\n"
    "workers = 0\n"
    "max_connections = 10000\n"
    "max_request_bytes = 65536\n"
    "proxy_protocol = off\n"
    "device_trust =\n"
    "[ca]\n"
    "backend = soft\n"
    "key = pkcs11:token=certprov;object=issuing-ca\n"
    "module = /usr/lib/softhsm/libsofthsm2.so\n"
    "[store]\n"
    "path = var/lib/certprov\n"
    "map_size = 4GiB\n"
    "[profile]\n"
    "default_hours = 4320\n"
    "min_hours = 8\n"
    "max_hours = 8760\n"
    "max_certs_per_user_per_day = 20  ; online enrollments; 0 = no limit\n"
    "[pool.pool1]\n"
    "store = embedded\n"
    "[pool.pool2]\n"
    "store = postgresql://certprov@127.0.0.1/pool2?connect_timeout=2\n";

Test(service_config, loads_the_api_example, .init = setup, .fini = teardown)
{
    cr_assert_eq(load(api_example), 0, "%s", err);
    cr_assert_str_eq(cfg.name, "certprov1.example.com");
    cr_assert_str_eq(cfg.listen, "127.0.0.1:8080");
    cr_assert_str_eq(cfg.tls_listen, "127.0.0.1:8443");
    cr_assert_eq(cfg.max_connections, 10000);
    cr_assert_eq(cfg.max_request_bytes, 65536);
    cr_assert_not(cfg.proxy_protocol);
    cr_assert_str_eq(cfg.device_trust, "");
    cr_assert_str_eq(cfg.ca_backend, "soft");
    cr_assert_eq(cfg.map_size, 4ull << 30);
    char want[256];
    snprintf(want, sizeof(want), "%s/var/lib/certprov", dir);
    cr_assert_str_eq(cfg.store_path, want);
    cr_assert_eq(cfg.profile.default_hours, 4320);
    cr_assert_eq(cfg.user_certs_per_day_max, 20);
    cr_assert_eq(cfg.num_pools, 2);
    cr_assert_str_eq(cfg.pools[0].name, "pool1");
    cr_assert_str_eq(cfg.pools[0].store, "embedded");
    cr_assert_str_eq(cfg.pools[1].store, "postgresql://certprov@127.0.0.1/pool2?connect_timeout=2");
    cr_assert_not_null(service_config_find_pool(&cfg, "pool2"));
    cr_assert_null(service_config_find_pool(&cfg, "pool3"));
    cr_assert_eq(cfg.pin.min_len, 5);
}

Test(service_config, defaults_with_one_pool, .init = setup, .fini = teardown)
{
    cr_assert_eq(load("[pool.p]\n"
                      "store = embedded\n"
                      "[store]\n"
                      "path = /abs/store\n"),
                 0, "%s", err);
    cr_assert_str_eq(cfg.store_path, "/abs/store");
    cr_assert_eq(cfg.profile.max_hours, 8760);
    cr_assert_eq(cfg.map_size, 4ull << 30);
    cr_assert_eq(cfg.user_certs_per_day_max, 20);
    cr_assert_eq(cfg.ca_sessions, 4);
    cr_assert_eq(cfg.ca_sign_timeout_ms, 2000);
}

/* Hardening item 16: a relative [store] path is taken from the file's directory, made absolute
 * also when the file itself was given by a relative path, and messages can say so. */
Test(service_config, relative_store_path_is_absolute_and_says_where_from, .init = setup,
     .fini = teardown)
{
    char origin[SERVICE_PATH_MAX * 2 + 96];
    cr_assert_eq(load("[pool.p]\n[store]\npath = /abs/store\n"), 0, "%s", err);
    cr_assert_not(cfg.store_path_relative);
    service_config_store_origin(&cfg, origin, sizeof(origin));
    cr_assert_str_eq(origin, "");

    cr_assert_eq(load("[pool.p]\n[store]\npath = stor\n"), 0, "%s", err);
    char cwd[SERVICE_PATH_MAX];
    cr_assert_not_null(getcwd(cwd, sizeof(cwd)));
    cr_assert_eq(chdir("/tmp"), 0);
    char rel[128];
    snprintf(rel, sizeof(rel), "./%s/certprov.ini", dir + strlen("/tmp/"));
    memset(&cfg, 0xAA, sizeof(cfg));
    int rc = service_config_load(&cfg, err, rel);
    cr_assert_eq(chdir(cwd), 0);
    cr_assert_eq(rc, 0, "%s", err);
    char want[256];
    snprintf(want, sizeof(want), "%s/stor", dir);
    cr_assert_str_eq(cfg.store_path, want, "not %s", want);
    cr_assert_str_eq(cfg.dir, dir);
    cr_assert(cfg.store_path_relative);
    service_config_store_origin(&cfg, origin, sizeof(origin));
    snprintf(want, sizeof(want),
             " (the [store] path of %s is relative to that file's directory, %s)", rel, dir);
    cr_assert_str_eq(origin, want);
    char tiny[8];
    service_config_store_origin(&cfg, tiny, sizeof(tiny));
    cr_assert_eq(strlen(tiny), sizeof(tiny) - 1, "cut to fit");
}

static void expect_error(const char *text, const char *needle)
{
    cr_assert_eq(load(text), -EINVAL, "accepted: %s", text);
    cr_assert_not_null(strstr(err, needle), "error '%s' lacks '%s'", err, needle);
    cr_assert_not_null(strstr(err, path), "error '%s' does not name the file", err);
}

Test(service_config, errors_name_line_and_key, .init = setup, .fini = teardown)
{
    expect_error("[pool.p]\nstore = embedded\n[server]\nnmae = x\n", ":4: unknown key 'nmae'");
    expect_error("[pool.p]\nstore = embedded\n[srever]\nname = x\n", "unknown section [srever]");
    expect_error("[server]\nworkers = lots\n[pool.p]\n", "workers must be a whole number");
    expect_error("[server]\nmax_connections = 0\n", "max_connections");
    expect_error("[server]\nworkers = 99999999999999999999999\n", "workers");
    expect_error("[server]\nproxy_protocol = maybe\n", "on or off");
    expect_error("[store]\nmap_size = 4 GB\n", "map_size");
    expect_error("[store]\nmap_size = 20TiB\n", "map_size");
    expect_error("[ca]\nbackend = magic\n", "soft or pkcs11");
    expect_error("[pool.p]\nstore = mysql://x\n", "embedded or postgresql");
    expect_error("[pool.bad name]\nstore = embedded\n", "bad pool name");
    expect_error("[pool.p]\nstore = embedded\n[profile]\nmin_hours = 100\ndefault_hours = 10\n",
                 "min_hours <= default_hours");
    expect_error("[server]\nname = x\n", "no [pool.NAME] section");
    expect_error("[pool.p]\nstore = embedded\n[ca]\nbackend = pkcs11\n", "needs key and module");
    expect_error("this is not ini\n", "syntax error");
}

Test(service_config, missing_file, .init = setup, .fini = teardown)
{
    cr_assert_eq(service_config_load(&cfg, err, "/nonexistent/certprov.ini"), -ENOENT);
    cr_assert_not_null(strstr(err, "cannot open"));
}

Test(service_config, map_size_units, .init = setup, .fini = teardown)
{
    cr_assert_eq(load("[pool.p]\n[store]\nmap_size = 64MiB\n"), 0, "%s", err);
    cr_assert_eq(cfg.map_size, 64ull << 20);
    cr_assert_eq(load("[pool.p]\n[store]\nmap_size = 1073741824\n"), 0, "%s", err);
    cr_assert_eq(cfg.map_size, 1ull << 30);
}

Test(service_config, engine_bounds, .init = setup, .fini = teardown)
{
    cr_assert_eq(load("[pool.p]\n[server]\nmax_inflight = 8\nheader_timeout_s = 3\n"
                      "body_timeout_s = 4\nidle_timeout_s = 5\n"),
                 0, "%s", err);
    cr_assert_eq(cfg.max_inflight, 8);
    cr_assert_eq(cfg.header_timeout_s, 3);
    cr_assert_eq(cfg.body_timeout_s, 4);
    cr_assert_eq(cfg.idle_timeout_s, 5);
    expect_error("[pool.p]\n[server]\nmax_inflight = 0\n", "max_inflight");
    expect_error("[pool.p]\n[server]\nheader_timeout_s = 0\n", "header_timeout_s");
    cr_assert_eq(load("[pool.p]\n"), 0, "%s", err);
    cr_assert_eq(cfg.max_inflight, 256);
    cr_assert_eq(cfg.header_timeout_s, 10);
    cr_assert_eq(cfg.idle_timeout_s, 60);
}

/* max_request_bytes is what the SOAP parser is handed as its limit: a value over what the parser
 * takes (SIGNER_SOAP_BODY_MAX) aborted certprovd on the first SOAP request. The configuration
 * refuses it and names the key and the maximum. */
Test(service_config, max_request_bytes_within_the_soap_parser, .init = setup, .fini = teardown)
{
    cr_assert_eq(load("[pool.p]\n[server]\nmax_request_bytes = 1048576\n"), 0, "%s", err);
    cr_assert_eq(cfg.max_request_bytes, SIGNER_SOAP_BODY_MAX);
    expect_error("[pool.p]\n[server]\nmax_request_bytes = 1048577\n", "max_request_bytes");
    cr_assert_not_null(strstr(err, "1048576"), "%s", err);
    expect_error("[pool.p]\n[server]\nmax_request_bytes = 16777216\n", "max_request_bytes");
}

Test(service_config, proxy_from, .init = setup, .fini = teardown)
{
    cr_assert_eq(load("[pool.p]\n"), 0, "%s", err);
    cr_assert_str_eq(cfg.proxy_from, "127.0.0.0/8, ::1/128");
    cr_assert_eq(load("[pool.p]\n[server]\nproxy_protocol = on\n"
                      "proxy_from = 10.0.0.0/8, 192.0.2.7, 2001:db8::/32\n"),
                 0, "%s", err);
    cr_assert_str_eq(cfg.proxy_from, "10.0.0.0/8, 192.0.2.7, 2001:db8::/32");
    expect_error("[server]\nproxy_from = 10.0.0.0/33\n[pool.p]\n",
                 ":2: [server] proxy_from must be");
    expect_error("[server]\nproxy_from = balancer.example.com\n[pool.p]\n", "proxy_from must be");
    /* More than IORING_PROXY_FROM_MAX blocks do not fit on one line of the INI reader (200
     * bytes): test_hardening.c checks that bound. */
    expect_error("[server]\nproxy_from = 10.0.0.0/8,\n[pool.p]\n", "proxy_from must be");
}

Test(service_config, header_bytes_shares_and_reserve, .init = setup, .fini = teardown)
{
    cr_assert_eq(load("[pool.p]\n"), 0, "%s", err);
    cr_assert_eq(cfg.max_header_bytes, 8192);
    cr_assert_eq(cfg.max_connections_per_client, 2500);
    cr_assert_eq(cfg.max_inflight_per_client, 128);
    cr_assert_eq(cfg.inflight_reserve, 16);
    /* The defaults follow max_connections and max_inflight wherever they are set. */
    cr_assert_eq(load("[pool.p]\n[server]\nmax_connections = 400\nmax_inflight = 8\n"), 0, "%s",
                 err);
    cr_assert_eq(cfg.max_connections_per_client, 100);
    cr_assert_eq(cfg.max_inflight_per_client, 4);
    cr_assert_eq(cfg.inflight_reserve, 0);
    cr_assert_eq(
        load("[server]\nmax_connections_per_client = 7\nmax_inflight_per_client = 3\n"
             "inflight_reserve = 0\nmax_header_bytes = 4096\nmax_inflight = 4\n[pool.p]\n"),
        0, "%s", err);
    cr_assert_eq(cfg.max_connections_per_client, 7);
    cr_assert_eq(cfg.max_inflight_per_client, 3);
    cr_assert_eq(cfg.inflight_reserve, 0);
    cr_assert_eq(cfg.max_header_bytes, 4096);
    expect_error("[server]\nmax_inflight = 4\ninflight_reserve = 4\n[pool.p]\n",
                 "inflight_reserve (4) must be below max_inflight (4)");
    expect_error("[server]\nmax_header_bytes = 100\n[pool.p]\n", "max_header_bytes");
    expect_error("[server]\nmax_connections_per_client = 0\n[pool.p]\n",
                 "max_connections_per_client");
    expect_error("[server]\nmax_inflight_per_client = 0\n[pool.p]\n", "max_inflight_per_client");
}

/* Hardening item 18: "listen = 8080" and "listen = localhost:8080" passed the load (and
 * certprovd --check) and only the engine's start failed, with "Invalid argument". The load
 * refuses what the engine would refuse, with the accepted forms in the message. */
Test(service_config, listen_forms_the_engine_refuses, .init = setup, .fini = teardown)
{
    static const char *const good[] = {"127.0.0.1:8080", "0.0.0.0:0", "[::1]:8443", "[::]:65535"};
    static const char *const other[] = {"127.0.0.1:8081", "0.0.0.0:0", "[::1]:443", "[::]:65534"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        char text[256];
        snprintf(text, sizeof(text), "[pool.p]\n[server]\nlisten = %s\ntls_listen = %s\n", good[i],
                 other[i]);
        cr_assert_eq(load(text), 0, "%s: %s", good[i], err);
        cr_assert_str_eq(cfg.listen, good[i]);
        cr_assert_str_eq(cfg.tls_listen, other[i]);
    }
    /* The TLS listener may not share the plain one's port: SO_REUSEPORT would let it and split
     * the clients between HTTP and HTTPS. Port 0 (any) never clashes. */
    static const char *const clash[][2] = {{"127.0.0.1:8080", "127.0.0.1:8080"},
                                           {"0.0.0.0:8080", "127.0.0.1:8080"},
                                           {"127.0.0.1:8443", "0.0.0.0:8443"},
                                           {"[::1]:8443", "[::]:8443"}};
    for (size_t i = 0; i < sizeof(clash) / sizeof(clash[0]); i++) {
        char text[256];
        snprintf(text, sizeof(text), "[pool.p]\n[server]\nlisten = %s\ntls_listen = %s\n",
                 clash[i][0], clash[i][1]);
        expect_error(text, "must not share the port of listen");
    }
    cr_assert_eq(load("[pool.p]\n[server]\nlisten = 127.0.0.1:8080\ntls_listen = 10.0.0.1:8080\n"),
                 0, "%s", err);
    static const char *const bad[] = {"8080",      "localhost:8080",  ":8080",
                                      "127.0.0.1", "127.0.0.1:",      "127.0.0.1:65536",
                                      "[::1]",     "[::1]:x",         "127.0.0.1:80x",
                                      "*:8080",    "[localhost]:8080"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char text[256];
        snprintf(text, sizeof(text), "[pool.p]\n[server]\nlisten = %s\n", bad[i]);
        expect_error(text, ":3: [server] listen must be");
        cr_assert_not_null(strstr(err, "IPv4:PORT or [IPv6]:PORT"), "%s", err);
        cr_assert_not_null(strstr(err, bad[i]), "%s", err);
        snprintf(text, sizeof(text), "[pool.p]\n[server]\ntls_listen = %s\n", bad[i]);
        expect_error(text, ":3: [server] tls_listen must be");
    }
    /* An empty tls_listen is allowed (no TLS listener); an empty listen is not. */
    cr_assert_eq(load("[pool.p]\n[server]\ntls_listen =\n"), 0, "%s", err);
    cr_assert_str_eq(cfg.tls_listen, "");
    expect_error("[pool.p]\n[server]\nlisten =\n", "[server] listen must be");
}

/* service_config_load is service_config_parse of the file's text: the fuzzer (fuzz_config)
 * parses buffers, and the file adds only reading it. */
Test(service_config, parse_a_buffer, .init = setup, .fini = teardown)
{
    memset(&cfg, 0xAA, sizeof(cfg));
    cr_assert_eq(
        service_config_parse(&cfg, err, "/etc/certprov/x.ini", "[pool.p]\n[store]\npath = store\n"),
        0, "%s", err);
    cr_assert_str_eq(cfg.store_path, "/etc/certprov/store");
    cr_assert_str_eq(cfg.pools[0].name, "p");
    cr_assert_eq(service_config_parse(&cfg, err, "/etc/x.ini", "[pool.p]\n[server]\nworkers = x\n"),
                 -EINVAL);
    cr_assert_not_null(strstr(err, "/etc/x.ini:3: [server] workers"), "%s", err);
    cr_assert_eq(service_config_parse(&cfg, err, "/etc/x.ini", ""), -EINVAL);
    cr_assert_not_null(strstr(err, "no [pool.NAME] section"), "%s", err);
}

Test(service_config, file_that_is_not_text, .init = setup, .fini = teardown)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fwrite("[pool.p]\n\0[server]\nworkers = x\n", 1, 31, f);
    fclose(f);
    cr_assert_eq(service_config_load(&cfg, err, path), -EINVAL);
    cr_assert_not_null(strstr(err, "NUL byte"), "%s", err);
    f = fopen(path, "w");
    cr_assert_not_null(f);
    for (size_t i = 0; i <= SERVICE_CONFIG_FILE_MAX / 16; i++) {
        fputs(";;;;;;;;;;;;;;;\n", f);
    }
    fclose(f);
    cr_assert_eq(service_config_load(&cfg, err, path), -EINVAL);
    cr_assert_not_null(strstr(err, "larger than"), "%s", err);
    cr_assert_eq(service_config_load(&cfg, err, dir), -EISDIR);
    cr_assert_not_null(strstr(err, "cannot open"), "%s", err);
}

/* Found by fuzz_config: "[store] path =" was accepted, and certprovd --check and certprovctl
 * then failed with "cannot open the store at : Invalid argument". */
Test(service_config, empty_store_path, .init = setup, .fini = teardown)
{
    expect_error("[pool.p]\n[store]\npath =\n", ":3: [store] path must not be empty");
}

/* [server] workers: the engine runs at most IORING_WORKERS_MAX rings and silently ran that many
 * when more were configured; the configuration refuses what the engine cannot take and names the
 * maximum. */
Test(service_config, workers_within_the_engine, .init = setup, .fini = teardown)
{
    cr_assert_eq(load("[pool.p]\n[server]\nworkers = 64\n"), 0, "%s", err);
    cr_assert_eq(cfg.workers, 64);
    expect_error("[pool.p]\n[server]\nworkers = 65\n", "[server] workers");
    cr_assert_not_null(strstr(err, "0 to 64"), "%s", err);
}

Test(service_config, max_certs_per_user_per_day, .init = setup, .fini = teardown)
{
    cr_assert_eq(load("[pool.p]\n[profile]\nmax_certs_per_user_per_day = 0\n"), 0, "%s", err);
    cr_assert_eq(cfg.user_certs_per_day_max, 0, "0: no limit");
    cr_assert_eq(load("[pool.p]\n[profile]\nmax_certs_per_user_per_day = 100000\n"), 0, "%s", err);
    cr_assert_eq(cfg.user_certs_per_day_max, 100000);
    expect_error(
        "[pool.p]\n[profile]\nmax_certs_per_user_per_day = 100001\n",
        ":3: [profile] max_certs_per_user_per_day must be a whole number from 0 to 100000");
    expect_error("[pool.p]\n[profile]\nmax_certs_per_user_per_day = -1\n",
                 "max_certs_per_user_per_day");
    expect_error("[pool.p]\n[profile]\nmax_certs_per_user_per_day = many\n",
                 "max_certs_per_user_per_day");
}

/* The TLS keys of [server]: defaults, ranges, and the ticket-key file taken relative to the
 * configuration file's directory like every other path. */
Test(service_config, tls_keys, .init = setup, .fini = teardown)
{
    cr_assert_eq(load("[pool.p]\n"), 0, "%s", err);
    cr_assert_str_eq(cfg.tls_listen, "", "no TLS listener unless configured");
    cr_assert_eq(cfg.handshake_timeout_s, 10);
    cr_assert_eq(cfg.max_handshakes, 512);
    cr_assert_eq(cfg.ticket_key_rotate_h, 12);
    cr_assert_str_eq(cfg.ticket_keys, "");
    cr_assert_eq(load("[pool.p]\n[server]\nhandshake_timeout_s = 3\nmax_handshakes = 64\n"
                      "ticket_key_rotate_h = 24\nticket_keys = keys/t.keys\n"),
                 0, "%s", err);
    cr_assert_eq(cfg.handshake_timeout_s, 3);
    cr_assert_eq(cfg.max_handshakes, 64);
    cr_assert_eq(cfg.ticket_key_rotate_h, 24);
    cr_assert_eq(cfg.ticket_keys[0], '/', "resolved: %s", cfg.ticket_keys);
    cr_assert_not_null(strstr(cfg.ticket_keys, "/keys/t.keys"), "%s", cfg.ticket_keys);
    expect_error("[pool.p]\n[server]\nhandshake_timeout_s = 0\n", "handshake_timeout_s");
    expect_error("[pool.p]\n[server]\nhandshake_timeout_s = 301\n", "handshake_timeout_s");
    expect_error("[pool.p]\n[server]\nmax_handshakes = 0\n", "max_handshakes");
    expect_error("[pool.p]\n[server]\nticket_key_rotate_h = 169\n", "ticket_key_rotate_h");
}

Test(service_config, alt_names, .init = setup, .fini = teardown)
{
    cr_assert_eq(load("[pool.p]\n"), 0, "%s", err);
    cr_assert_eq(cfg.num_alt_names, 0);
    const char *names[SIGNER_TLS_NAMES_MAX];
    size_t num = 0;
    service_config_tls_names(&cfg, names, &num);
    cr_assert_eq(num, 1);
    cr_assert_str_eq(names[0], "certprov1.example.com");
    cr_assert_eq(load("[pool.p]\n[server]\nname = cp1.example.com\n"
                      "alt_names = pool.example.com,lb.example.com  cp1  ; comment\n"),
                 0, "%s", err);
    cr_assert_eq(cfg.num_alt_names, 3);
    service_config_tls_names(&cfg, names, &num);
    cr_assert_eq(num, 4);
    cr_assert_str_eq(names[0], "cp1.example.com");
    cr_assert_str_eq(names[1], "pool.example.com");
    cr_assert_str_eq(names[2], "lb.example.com");
    cr_assert_str_eq(names[3], "cp1");
    cr_assert_eq(load("[pool.p]\n[server]\nalt_names =\n"), 0, "%s", err);
    cr_assert_eq(cfg.num_alt_names, 0);
    expect_error("[pool.p]\n[server]\nalt_names = a.example.com, b_c.example.com\n",
                 ":3: [server] alt_names: 'b_c.example.com' is not a DNS host name");
    expect_error("[pool.p]\n[server]\nalt_names = -a.example.com\n", "is not a DNS host name");
    expect_error("[pool.p]\n[server]\nalt_names = a..example.com\n", "is not a DNS host name");
    expect_error("[pool.p]\n[server]\nalt_names = a.example.com A.EXAMPLE.com\n",
                 "'A.EXAMPLE.com' is given twice");
    expect_error("[pool.p]\n[server]\nname = cp.example.com\nalt_names = CP.example.com\n",
                 "'cp.example.com' is [server] name already");
    expect_error("[pool.p]\n[server]\nalt_names = a b c d e f g h i j k l m n o p q\n",
                 "more than 16 names");
    cr_assert_eq(load("[pool.p]\n[server]\nalt_names = a b c d e f g h i j k l m n o p\n"), 0, "%s",
                 err);
    cr_assert_eq(cfg.num_alt_names, 16);
    expect_error("[pool.p]\n[server]\nname = not a name\n",
                 "[server] name 'not a name' is not a DNS");
    expect_error("[pool.p]\n[server]\nname = x_y.example.com\n", "is not a DNS host name");
}

/* Issue 13: the pkcs11 backend's keys, and their bounds. */
Test(service_config, pkcs11_keys, .init = setup, .fini = teardown)
{
    cr_assert_eq(load("[pool.p]\n[ca]\nbackend = pkcs11\nkey = pkcs11:object=a?pin-value=1\n"
                      "module = /m.so\nsessions = 64\nsign_timeout_ms = 10\n"),
                 0, "%s", err);
    cr_assert_str_eq(cfg.ca_backend, "pkcs11");
    cr_assert_eq(cfg.ca_sessions, 64);
    cr_assert_eq(cfg.ca_sign_timeout_ms, 10);
    expect_error("[ca]\nsessions = 0\n", "[ca] sessions must be a whole number from 1 to 64");
    expect_error("[ca]\nsessions = 65\n", "[ca] sessions");
    expect_error("[ca]\nsign_timeout_ms = 9\n", "[ca] sign_timeout_ms must be");
    expect_error("[ca]\nsign_timeout_ms = 60001\n", "[ca] sign_timeout_ms");
}

/* [revocation] (issue 15): defaults, the default CRL URL from [server] name, and refusals. */
Test(service_config, revocation_keys, .init = setup, .fini = teardown)
{
    cr_assert_eq(load("[pool.p]\n[server]\nname = ca.example.com\n"), 0, "%s", err);
    cr_assert_eq(cfg.crl_validity_h, 24);
    cr_assert_eq(cfg.crl_min_interval_s, 10);
    cr_assert_eq(cfg.ocsp_cache_s, 300);
    cr_assert_str_eq(cfg.crl_url, "http://ca.example.com/CertProv/crl");
    cr_assert_str_eq(cfg.ocsp_url, "");
    cr_assert_eq(load("[pool.p]\n[revocation]\ncrl_validity_h = 48\ncrl_min_interval_s = 0\n"
                      "ocsp_cache_s = 60\ncrl_url = https://pki.example.com/a.crl\n"
                      "ocsp_url = http://ocsp.example.com/\n"),
                 0, "%s", err);
    cr_assert_eq(cfg.crl_validity_h, 48);
    cr_assert_eq(cfg.crl_min_interval_s, 0);
    cr_assert_eq(cfg.ocsp_cache_s, 60);
    cr_assert_str_eq(cfg.crl_url, "https://pki.example.com/a.crl");
    cr_assert_str_eq(cfg.ocsp_url, "http://ocsp.example.com/");
    expect_error("[pool.p]\n[revocation]\ncrl_url = ldap://x/crl\n", "crl_url");
    expect_error("[pool.p]\n[revocation]\nocsp_url = http://x/a b\n", "ocsp_url");
    expect_error("[pool.p]\n[revocation]\ncrl_validity_h = 0\n", "crl_validity_h");
    expect_error("[pool.p]\n[revocation]\nocsp_cache_s = 100000\n", "ocsp_cache_s");
    expect_error("[pool.p]\n[revocation]\ncrl_lifetime = 3\n", "unknown key 'crl_lifetime'");
}

/* [directory] (README, The fleet directory): absent means none; store must be PostgreSQL;
 * poll_ms is bounded. */
Test(service_config, directory_keys, .init = setup, .fini = teardown)
{
    cr_assert_eq(service_config_parse(&cfg, err, "/etc/x.ini", "[pool.p]\n"), 0, "%s", err);
    cr_assert_str_eq(cfg.directory, "");
    cr_assert_eq(cfg.directory_poll_ms, 5000);
    cr_assert_eq(service_config_parse(&cfg, err, "/etc/x.ini",
                                      "[pool.p]\n[directory]\nstore = postgresql://u@h/db\n"
                                      "poll_ms = 250\n"),
                 0, "%s", err);
    cr_assert_str_eq(cfg.directory, "postgresql://u@h/db");
    cr_assert_eq(cfg.directory_poll_ms, 250);
    cr_assert_eq(
        service_config_parse(&cfg, err, "/etc/x.ini", "[pool.p]\n[directory]\nstore = embedded\n"),
        -EINVAL);
    cr_assert_not_null(strstr(err, "[directory] store must be postgresql://"), "%s", err);
    cr_assert_eq(
        service_config_parse(&cfg, err, "/etc/x.ini", "[pool.p]\n[directory]\npoll_ms = 10\n"),
        -EINVAL);
    cr_assert_not_null(strstr(err, "[directory] poll_ms"), "%s", err);
    cr_assert_eq(service_config_parse(&cfg, err, "/etc/x.ini", "[pool.p]\n[directory]\nx = 1\n"),
                 -EINVAL);
    cr_assert_not_null(strstr(err, "unknown key 'x' in [directory]"), "%s", err);
}
