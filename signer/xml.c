/* XML for Web tickets: libxml2 parsing with safe options, element lookup and exclusive c14n.
 *
 * Why libxml2: verifying an XML signature a client made needs exclusive canonicalization (W3C
 * xml-exc-c14n 1.0) of the elements exactly as they were received: namespace context, attribute
 * order, escaping. libxml2 (Debian libxml2) has the reference implementation, xmlC14NExecute, and
 * is what xmlsec1 itself uses; an expat-based c14n of our own would be one more canonicalizer to
 * get wrong. It links no OpenSSL (tests/check-symbols.sh). Only the Web ticket paths use it: the
 * CertProv body keeps the expat parser (soap.c). libxml2 allocates per parse: bounded by the
 * request size (max_request_bytes) and its own depth limit (256). */
#include <errno.h>
#include <string.h>
#include <time.h>

#include <libxml/c14n.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xmlIO.h>
#include <libxml/xmlerror.h>
#include <openssl/digest.h>

#include "signer/internal.h"

/* quiet drops libxml2's messages: a client's bad bytes must not write lines to our log (the
 * parse fails and the request is refused with a reason of ours). */
static void quiet(void *ctx, const char *msg, ...)
{
    (void)ctx;
    (void)msg;
}

static void quiet_structured(void *ctx, xmlErrorPtr err)
{
    (void)ctx;
    (void)err;
}

void signer_xml_init(void)
{
    xmlInitParser();
    /* libxml2 keeps error handlers per thread: set them here and as the default of threads made
     * later (the rings). */
    xmlSetGenericErrorFunc(NULL, quiet);
    xmlThrDefSetGenericErrorFunc(NULL, quiet);
    xmlSetStructuredErrorFunc(NULL, quiet_structured);
    xmlThrDefSetStructuredErrorFunc(NULL, quiet_structured);
}

xmlDocPtr sx_parse(const uint8_t *body, size_t len, size_t max, int *rc)
{
    ASSERT(rc != NULL);
    if (len > max || len > INT32_MAX) {
        *rc = -E2BIG;
        return NULL;
    }
    /* No DTD at all: no entity expansion, no external subset, no billion laughs. */
    if (memmem(body, len, "<!DOCTYPE", 9) != NULL || memmem(body, len, "<!ENTITY", 8) != NULL) {
        *rc = -EBADMSG;
        return NULL;
    }
    /* UTF-8 only, whatever the document declares: so the byte scan above sees every DOCTYPE (a
     * UTF-16 one would pass it), and SOAP clients send UTF-8 (WS-I Basic Profile 1.1 R4003). */
    xmlDocPtr doc = xmlReadMemory((const char *)body, (int)len, "request.xml", "UTF-8",
                                  XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
    if (doc == NULL || xmlDocGetRootElement(doc) == NULL || doc->intSubset != NULL) {
        xmlFreeDoc(doc);
        *rc = -EBADMSG;
        return NULL;
    }
    *rc = 0;
    return doc;
}

void sx_free(xmlDocPtr doc)
{
    if (doc != NULL) {
        xmlFreeDoc(doc);
    }
}

xmlNodePtr sx_root(xmlDocPtr doc)
{
    return xmlDocGetRootElement(doc);
}

bool sx_is(const xmlNode *n, const char *ns, const char *local)
{
    if (n == NULL || n->type != XML_ELEMENT_NODE || strcmp((const char *)n->name, local) != 0) {
        return false;
    }
    if (ns == NULL) {
        return true;
    }
    return n->ns != NULL && n->ns->href != NULL && strcmp((const char *)n->ns->href, ns) == 0;
}

xmlNodePtr sx_child(xmlNodePtr p, const char *ns, const char *local)
{
    for (xmlNodePtr c = p != NULL ? p->children : NULL; c != NULL; c = c->next) {
        if (sx_is(c, ns, local)) {
            return c;
        }
    }
    return NULL;
}

size_t sx_count(xmlNodePtr p, const char *ns, const char *local)
{
    size_t n = 0;
    for (xmlNodePtr c = p != NULL ? p->children : NULL; c != NULL; c = c->next) {
        n += sx_is(c, ns, local) ? 1 : 0;
    }
    return n;
}

xmlNodePtr sx_soap_part(xmlDocPtr doc, const char *part, bool *soap12)
{
    xmlNodePtr env = sx_root(doc);
    *soap12 = sx_is(env, SX_NS_SOAP12, "Envelope");
    if (!*soap12 && !sx_is(env, SX_NS_SOAP11, "Envelope")) {
        return NULL;
    }
    return sx_child(env, *soap12 ? SX_NS_SOAP12 : SX_NS_SOAP11, part);
}

static bool space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

int sx_text(xmlNodePtr n, char *out, size_t cap)
{
    ASSERT(cap > 0);
    out[0] = '\0';
    if (n == NULL) {
        return -ENOENT;
    }
    size_t len = 0;
    for (xmlNodePtr c = n->children; c != NULL; c = c->next) {
        if (c->type != XML_TEXT_NODE && c->type != XML_CDATA_SECTION_NODE) {
            continue;
        }
        size_t l = strlen((const char *)c->content);
        if (len + l >= cap) {
            out[0] = '\0';
            return -E2BIG;
        }
        memcpy(out + len, c->content, l);
        len += l;
    }
    out[len] = '\0';
    size_t start = 0;
    while (start < len && space(out[start])) {
        start++;
    }
    while (len > start && space(out[len - 1])) {
        len--;
    }
    memmove(out, out + start, len - start);
    out[len - start] = '\0';
    return 0;
}

int sx_attr(xmlNodePtr n, const char *ns, const char *name, char *out, size_t cap)
{
    ASSERT(cap > 0);
    out[0] = '\0';
    if (n == NULL) {
        return -ENOENT;
    }
    xmlChar *v = ns != NULL ? xmlGetNsProp(n, (const xmlChar *)name, (const xmlChar *)ns)
                            : xmlGetNoNsProp(n, (const xmlChar *)name);
    if (v == NULL) {
        return -ENOENT;
    }
    int rc = base_str_copy(out, cap, (const char *)v);
    xmlFree(v);
    return rc;
}

struct scope {
    xmlNodePtr root;
    xmlNodePtr exclude;
};

/* visible: the node set of the c14n is the subtree at root less the subtree at exclude. A
 * namespace node is judged by its element (libxml2 passes it as `parent`); an attribute's parent
 * is its element. */
static int visible(void *ud, xmlNodePtr node, xmlNodePtr parent)
{
    const struct scope *s = ud;
    xmlNodePtr n = node == NULL || node->type == XML_NAMESPACE_DECL ? parent : node;
    for (; n != NULL; n = n->parent) {
        if (n == s->exclude) {
            return 0;
        }
        if (n == s->root) {
            return 1;
        }
    }
    return 0;
}

uint8_t *sx_c14n_bytes(xmlDocPtr doc, xmlNodePtr root, xmlNodePtr exclude, size_t *out_len)
{
    struct scope s = {.root = root, .exclude = exclude};
    xmlOutputBufferPtr buf = xmlAllocOutputBuffer(NULL);
    if (buf == NULL) {
        return NULL;
    }
    /* W3C xml-exc-c14n 1.0, without comments, no InclusiveNamespaces PrefixList. */
    int rc = xmlC14NExecute(doc, visible, &s, XML_C14N_EXCLUSIVE_1_0, NULL, 0, buf);
    uint8_t *out = NULL;
    if (rc >= 0 && xmlOutputBufferGetContent(buf) != NULL) {
        size_t len = xmlOutputBufferGetSize(buf);
        out = xmlMalloc(len + 1);
        if (out != NULL) {
            memcpy(out, xmlOutputBufferGetContent(buf), len);
            out[len] = 0;
            *out_len = len;
        }
    }
    (void)xmlOutputBufferClose(buf);
    return out;
}

void sx_bytes_free(uint8_t *p)
{
    if (p != NULL) {
        xmlFree(p);
    }
}

int sx_c14n_digest(xmlDocPtr doc, xmlNodePtr root, xmlNodePtr exclude, const void *md, uint8_t *out,
                   unsigned *out_len)
{
    size_t len = 0;
    uint8_t *c = sx_c14n_bytes(doc, root, exclude, &len);
    if (c == NULL) {
        return -EIO;
    }
    int ok = EVP_Digest(c, len, out, out_len, md, NULL);
    sx_bytes_free(c);
    return ok ? 0 : -EIO;
}

int sx_time_parse(int64_t *out, const char *s)
{
    int y, mo, d, h, mi, se, n = 0;
    if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &se, &n) != 6 || n != 19) {
        return -EBADMSG;
    }
    const char *p = s + n;
    if (*p == '.') {
        p++;
        while (*p >= '0' && *p <= '9') {
            p++;
        }
    }
    if (strcmp(p, "Z") != 0 || y < 1970 || y > 9999 || mo < 1 || mo > 12 || d < 1 || d > 31 ||
        h > 23 || mi > 59 || se > 60) {
        return -EBADMSG;
    }
    struct tm tm = {.tm_year = y - 1900,
                    .tm_mon = mo - 1,
                    .tm_mday = d,
                    .tm_hour = h,
                    .tm_min = mi,
                    .tm_sec = se};
    *out = (int64_t)timegm(&tm);
    return 0;
}

void sx_time_format(char out[32], int64_t t)
{
    time_t tt = (time_t)t;
    struct tm tm;
    ASSERT(gmtime_r(&tt, &tm) != NULL);
    size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
    ASSERT(n == 20);
}
