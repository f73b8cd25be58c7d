/* libFuzzer target for examples/http_parse.c: parse the input the way
 * http_hello does (request after request, bodies skipped) and check what
 * the parser promises: lengths inside the input, pointers inside it, and a
 * verdict that never changes as more bytes arrive. */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "examples/http_parse.h"

static void inside(const char *p, size_t n, const char *buf, size_t len)
{
    assert(p >= buf && p + n <= buf + len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* a copy of exactly size bytes, so ASan sees any read past the end */
    char *buf = malloc(size ? size : 1);
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    size_t pos = 0;
    while (pos < size) {
        http_req r;
        ssize_t n = http_parse_request(buf + pos, size - pos, &r);
        if (n <= 0) {
            assert(n >= HTTP_UNSUPPORTED);
            /* a prefix of a refused head is refused too, or still incomplete */
            if (size - pos > 1) {
                ssize_t m = http_parse_request(buf + pos, (size - pos) / 2, &(http_req){ 0 });
                assert(m == n || m == HTTP_NEED_MORE);
            }
            break;
        }
        assert((size_t)n <= size - pos && (size_t)n <= HTTP_MAX_HEAD);
        inside(r.method, r.method_len, buf + pos, (size_t)n);
        inside(r.target, r.target_len, buf + pos, (size_t)n);
        assert(r.method_len > 0 && r.target_len > 0);
        assert(r.minor >= 0 && r.minor <= 9);
        assert(r.headers <= HTTP_MAX_HEADERS);
        assert(r.content_length <= HTTP_MAX_BODY);
        /* the head alone parses to the same length; one byte less is incomplete */
        http_req r2;
        assert(http_parse_request(buf + pos, (size_t)n, &r2) == n);
        assert(r2.keep_alive == r.keep_alive && r2.content_length == r.content_length);
        assert(http_parse_request(buf + pos, (size_t)n - 1, &r2) == HTTP_NEED_MORE);
        pos += (size_t)n;
        if (r.content_length > size - pos)
            break;
        pos += r.content_length;
    }
    free(buf);
    return 0;
}
