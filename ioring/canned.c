/* canned: the status reason phrases and the engine's own plain responses (100 Continue and the
 * refusals a handler did not word itself). The bottom of ioring/: it calls no other file. */
#include <stdio.h>
#include <string.h>

#include "ioring/internal.h"

const char *ioring_status_reason(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 304:
        return "Not Modified";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 415:
        return "Unsupported Media Type";
    case 422:
        return "Unprocessable Content";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        return "";
    }
}

size_t http_canned_format(char *out, size_t cap, uint16_t status, bool close,
                          uint32_t retry_after_s)
{
    int n = 0;
    if (status == 100) {
        n = snprintf(out, cap, "HTTP/1.1 100 Continue\r\n\r\n");
    } else {
        char retry[48] = "";
        if (status == 503) {
            (void)snprintf(retry, sizeof(retry), "Retry-After: %u\r\n", retry_after_s);
        }
        n = snprintf(out, cap,
                     "HTTP/1.1 %u %s\r\n%sContent-Type: text/plain\r\nContent-Length: %zu\r\n"
                     "Connection: %s\r\n\r\n%s\n",
                     status, ioring_status_reason(status), retry,
                     strlen(ioring_status_reason(status)) + 1, close ? "close" : "keep-alive",
                     ioring_status_reason(status));
    }
    ASSERT(n > 0);
    ASSERT((size_t)n < cap);
    return (size_t)n;
}
