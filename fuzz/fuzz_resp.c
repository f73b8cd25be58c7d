/* libFuzzer target for examples/resp.c: parse the input the way kv does
 * (command after command until one is incomplete or refused), check that
 * every argument lies inside the command that carried it and that a
 * verdict never changes as more bytes arrive; write replies from the
 * arguments and check their framing. */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "examples/resp.h"

static resp_arg argv[RESP_MAX_ARGS];
static resp_arg argv2[RESP_MAX_ARGS];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = malloc(size ? size : 1);
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    resp_out out = { 0 };
    size_t pos = 0;
    while (pos < size) {
        size_t argc, argc2;
        const char *err = NULL, *err2 = NULL;
        ssize_t n = resp_parse(buf + pos, size - pos, argv, &argc, &err);
        if (n < 0) {
            assert(n == -1 && err && strncmp(err, "Protocol error", 14) == 0);
            break;
        }
        if (n == 0) {
            /* incomplete: so is every prefix */
            assert(resp_parse(buf + pos, (size - pos) / 2, argv2, &argc2, &err2) == 0);
            break;
        }
        assert((size_t)n <= size - pos && argc <= RESP_MAX_ARGS);
        for (size_t i = 0; i < argc; i++) {
            assert(argv[i].p >= buf + pos && argv[i].p + argv[i].len <= buf + pos + (size_t)n);
            assert(argv[i].len <= RESP_MAX_BULK);
        }
        /* the command alone parses the same; one byte less does not complete */
        assert(resp_parse(buf + pos, (size_t)n, argv2, &argc2, &err2) == n && argc2 == argc);
        ssize_t m = resp_parse(buf + pos, (size_t)n - 1, argv2, &argc2, &err2);
        assert(m == 0);
        /* replies built from the arguments */
        resp_out_reset(&out);
        resp_add_array(&out, argc);
        for (size_t i = 0; i < argc; i++) {
            int64_t v;
            if (resp_to_i64(argv[i].p, argv[i].len, &v))
                resp_add_int(&out, v);
            else
                resp_add_bulk(&out, argv[i].p, argv[i].len);
        }
        if (argc)
            resp_add_error(&out, "ERR x\r\ny");
        assert(out.oom || (out.len >= 4 && out.p[0] == '*' && out.p[out.len - 1] == '\n'));
        pos += (size_t)n;
    }
    resp_out_free(&out);
    free(buf);
    return 0;
}
