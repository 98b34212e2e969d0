/* Tests of the routing: svc_route_of (every route, ASCII case, query strings, unknown paths,
 * the POST flag) and service_classify, the engine's view of the same table. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "service/internal.h"
#include "tests/util/guard.h"

struct route_case {
    const char *target;
    enum svc_route route;
};

static const struct route_case known[] = {
    {"/CertProv/CertProvisioningService.svc", SVC_ROUTE_SOAP},
    {"/CertProv/CertProvisioningService.svc/WebTicket_Proof", SVC_ROUTE_SOAP},
    {"/.well-known/est/simpleenroll", SVC_ROUTE_EST_ENROLL},
    {"/.well-known/est/simplereenroll", SVC_ROUTE_EST_REENROLL},
    {"/.well-known/est/cacerts", SVC_ROUTE_EST_CACERTS},
    {"/CertProv/chain.pem", SVC_ROUTE_CHAIN},
    {"/healthz", SVC_ROUTE_HEALTHZ},
    {"/readyz", SVC_ROUTE_READYZ},
    {"/metrics", SVC_ROUTE_METRICS},
    {"/CertProv/crl", SVC_ROUTE_CRL},
    {"/CertProv/ocsp", SVC_ROUTE_OCSP},
    {"/CertProv/ocsp/MEIwQDA%2BMDwwOjAJBgUrDgMCGgUA", SVC_ROUTE_OCSP},
    {"/CertProv/CertProvisioningService.svc/mex", SVC_ROUTE_MEX},
    {"/WebTicket/WebTicketService.svc/mex", SVC_ROUTE_MEX},
    {"/WebTicket/WebTicketService.svc", SVC_ROUTE_WEBTICKET},
    {"/WebTicket/WebTicketService.svc/Auth", SVC_ROUTE_WEBTICKET},
    {"/WebTicket/WebTicketService.svc/Cert", SVC_ROUTE_WEBTICKET},
    {"/WebTicket/WebTicketService.svc/WebTicketServiceAnon", SVC_ROUTE_WEBTICKET},
};

/* A path that only starts like the Web Ticket Service is not it. */
Test(service_routes, webticket_prefix_is_a_path_segment)
{
    bool post = false;
    const char *t = "/WebTicket/WebTicketService.svcX";
    cr_expect_eq(svc_route_of("POST", t, strlen(t), &post), SVC_ROUTE_OTHER);
    t = "/WebTicket/WebTicketService.sv";
    cr_expect_eq(svc_route_of("POST", t, strlen(t), &post), SVC_ROUTE_OTHER);
}

/* route_of calls svc_route_of on a copy of the target that ends at a guard page, so a read past
 * `len` faults. */
static enum svc_route route_of(const char *method, const char *target, size_t len, bool *post)
{
    uint8_t *g = guard_copy(target, len);
    enum svc_route r = svc_route_of(method, (const char *)g, len, post);
    guard_free(g, len);
    return r;
}

static void expect_route(const char *target, enum svc_route want)
{
    bool post = true;
    enum svc_route got = route_of("GET", target, strlen(target), &post);
    cr_expect_eq(got, want, "'%s': route %d, want %d", target, (int)got, (int)want);
    cr_expect_not(post, "'%s': GET counted as POST", target);
}

Test(service_routes, every_route)
{
    bool seen[SVC_ROUTE_MAX_] = {false};
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
        expect_route(known[i].target, known[i].route);
        seen[known[i].route] = true;
    }
    for (int r = 0; r < SVC_ROUTE_OTHER; r++) {
        cr_expect(seen[r], "route %d (%s) has no case here", r, svc_route_name((enum svc_route)r));
    }
}

/* GET <service>?wsdl is the metadata (README, Endpoints); any other query, or a POST, is not. */
Test(service_routes, wsdl_query)
{
    expect_route("/CertProv/CertProvisioningService.svc?wsdl", SVC_ROUTE_MEX);
    expect_route("/CertProv/CertProvisioningService.svc?WSDL", SVC_ROUTE_MEX);
    expect_route("/WebTicket/WebTicketService.svc?wsdl", SVC_ROUTE_MEX);
    expect_route("/CertProv/CertProvisioningService.svc?wsdl2", SVC_ROUTE_SOAP);
    expect_route("/CertProv/CertProvisioningService.svc?xsd=1", SVC_ROUTE_SOAP);
    expect_route("/CertProv/CertProvisioningService.svc/WebTicket_Proof?wsdl", SVC_ROUTE_SOAP);
    expect_route("/CertProv/CertProvisioningService.svc/mex/x", SVC_ROUTE_OTHER);
    bool post = false;
    const char *t = "/CertProv/CertProvisioningService.svc?wsdl";
    cr_expect_eq(route_of("POST", t, strlen(t), &post), SVC_ROUTE_SOAP);
    cr_expect(post);
    t = "/CertProv/CertProvisioningService.svc/mex";
    cr_expect_eq(route_of("POST", t, strlen(t), &post), SVC_ROUTE_MEX);
}

Test(service_routes, ignores_ascii_case)
{
    char up[128];
    char mixed[128];
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
        size_t len = strlen(known[i].target);
        cr_assert_lt(len, sizeof(up));
        for (size_t k = 0; k <= len; k++) {
            char c = known[i].target[k];
            up[k] = c >= 'a' && c <= 'z' ? (char)(c - 'a' + 'A') : c;
            mixed[k] = k % 2 == 0 ? up[k] : (c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c);
        }
        expect_route(up, known[i].route);
        expect_route(mixed, known[i].route);
    }
}

Test(service_routes, query_string_is_not_the_path)
{
    char t[256];
    static const char *const queries[] = {"?", "?a=1", "?a=1&b=/healthz", "??", "?x#frag"};
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
        for (size_t q = 0; q < sizeof(queries) / sizeof(queries[0]); q++) {
            (void)snprintf(t, sizeof(t), "%s%s", known[i].target, queries[q]);
            expect_route(t, known[i].route);
        }
    }
    /* The path ends at the first '?': a route name in the query is not the path. */
    expect_route("/?/healthz", SVC_ROUTE_OTHER);
    expect_route("/x?/metrics", SVC_ROUTE_OTHER);
}

Test(service_routes, unknown_paths_are_other)
{
    static const char *const unknown[] = {
        "",
        "/",
        "healthz",
        "/healthz/",
        "/healthzz",
        "/health",
        "//healthz",
        "/healthz%00",
        "/readyz/x",
        "/metric",
        "/CertProv/CertProvisioningService.svc/",
        "/CertProv/CertProvisioningService.svcx",
        "/CertProv/CertProvisioningService.svc/WebTicket_Proof/x",
        "/CertProv/CertProvisioningService",
        "/CertProv/chain.pem.bak",
        "/CertProv/chain",
        "/.well-known/est/",
        "/.well-known/est/simpleenroll/",
        "/.well-known/est/simpleenrol",
        "/.well-known/est/arbitrarylabel/simpleenroll",
        "/.well-known/est/serverkeygen",
        "/.well-known/est/csrattrs",
        "*",
        "http://certprov1.example.com/healthz",
    };
    for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
        expect_route(unknown[i], SVC_ROUTE_OTHER);
    }
}

Test(service_routes, target_is_bounded_by_len)
{
    /* The target is not NUL-terminated: only `len` bytes count. */
    static const char t[] = "/healthzXYZ";
    bool post = true;
    cr_expect_eq(route_of("GET", t, 8, &post), SVC_ROUTE_HEALTHZ);
    cr_expect_eq(route_of("GET", t, 7, &post), SVC_ROUTE_OTHER);
    cr_expect_eq(route_of("GET", t, 11, &post), SVC_ROUTE_OTHER);
    cr_expect_eq(route_of("GET", t, 0, &post), SVC_ROUTE_OTHER);
    static const char nul[] = "/healthz\0";
    cr_expect_eq(route_of("GET", nul, 9, &post), SVC_ROUTE_OTHER, "a NUL inside the target");
}

Test(service_routes, post_only_for_post)
{
    /* Methods are case-sensitive (RFC 9110 §9.1): "post" is not POST. */
    static const struct {
        const char *method;
        bool post;
    } methods[] = {{"POST", true},  {"GET", false},  {"HEAD", false},  {"PUT", false},
                   {"post", false}, {"Post", false}, {"POSTX", false}, {"", false}};
    for (size_t m = 0; m < sizeof(methods) / sizeof(methods[0]); m++) {
        for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
            bool post = !methods[m].post;
            size_t len = strlen(known[i].target);
            cr_expect_eq(route_of(methods[m].method, known[i].target, len, &post), known[i].route);
            cr_expect_eq(post, methods[m].post, "method '%s'", methods[m].method);
        }
        bool post = !methods[m].post;
        (void)route_of(methods[m].method, "/nowhere", 8, &post);
        cr_expect_eq(post, methods[m].post, "method '%s' on an unknown path", methods[m].method);
    }
}

Test(service_routes, classify_is_route_plus_one)
{
    cr_expect_eq(service_classify(NULL, NULL, 0), 0, "target not read yet");
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
        size_t len = strlen(known[i].target);
        uint8_t *g = guard_copy(known[i].target, len);
        cr_expect_eq(service_classify(NULL, (const char *)g, len), (uint8_t)(known[i].route + 1),
                     "%s", known[i].target);
        guard_free(g, len);
    }
    cr_expect_eq(service_classify(NULL, "/nowhere", 8), (uint8_t)(SVC_ROUTE_OTHER + 1));
}
