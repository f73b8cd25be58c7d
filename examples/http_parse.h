/* http_parse: an HTTP/1.1 request-head parser for http_hello.
 *
 * Pure and allocation-free: it reads the bytes received so far and either
 * finds one complete request head at their start, says it needs more, or
 * says why the request is refused. Everything it returns points into the
 * caller's buffer. Heads longer than HTTP_MAX_HEAD bytes or with more than
 * HTTP_MAX_HEADERS fields are refused, so a server never buffers more than
 * HTTP_MAX_HEAD bytes of a head.
 *
 * Accepted: RFC 9112 request lines (token SP target SP HTTP/1.d) and
 * header fields (token ":" OWS value OWS), lines ended by CRLF or a bare LF.
 * Refused with HTTP_BAD (a 400): any other byte where it does not belong,
 * obsolete line folding, a missing Host in HTTP/1.1, a bad or conflicting
 * Content-Length. HTTP_UNSUPPORTED (a 501): Transfer-Encoding (request
 * bodies are only taken with Content-Length). HTTP_TOO_LARGE (a 431): a head
 * past the limits, a body over HTTP_MAX_BODY.
 */
#ifndef HIVE_EXAMPLES_HTTP_PARSE_H
#define HIVE_EXAMPLES_HTTP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define HTTP_MAX_HEAD    8192
#define HTTP_MAX_HEADERS 64
#define HTTP_MAX_BODY    (1u << 20)

enum http_status {
    HTTP_NEED_MORE   = 0,
    HTTP_BAD         = -1,
    HTTP_TOO_LARGE   = -2,
    HTTP_UNSUPPORTED = -3,
};

typedef struct http_req {
    const char *method;
    size_t      method_len;
    const char *target;
    size_t      target_len;
    int         minor;           /* HTTP/1.<minor> */
    bool        keep_alive;      /* after the version's default and Connection */
    bool        head;            /* method HEAD: the response carries no body */
    size_t      headers;         /* header fields seen */
    uint64_t    content_length;  /* body bytes that follow the head */
} http_req;

/* Parses the head at the start of buf[0..len). Returns its length (> 0)
 * and fills *req when it is complete, HTTP_NEED_MORE (0) when every byte so
 * far is valid but the head has not ended, or a negative enum http_status.
 * A verdict never changes as more bytes arrive: an error is reported at
 * the first byte that makes it one. */
ssize_t http_parse_request(const char *buf, size_t len, http_req *req);

#endif
