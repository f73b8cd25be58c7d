/* resp: RESP2 for kv — the command parser and the reply writer.
 *
 * The parser is pure and allocation-free: it reads the bytes received so
 * far and finds one command at their start, as an array of arguments that
 * point into the caller's buffer. It takes what redis-cli and
 * redis-benchmark send (arrays of bulk strings) and inline commands
 * (words separated by spaces, as typed into telnet). Its limits bound what
 * a server must buffer for one command: RESP_MAX_ARGS arguments,
 * RESP_MAX_BULK bytes per argument, RESP_MAX_COMMAND bytes per array (as
 * its lengths declare it, so refused before the bytes arrive),
 * RESP_MAX_INLINE bytes per inline line.
 *
 * The writer appends replies to a growable buffer (struct resp_out); it is
 * the only part that allocates.
 */
#ifndef HIVE_EXAMPLES_RESP_H
#define HIVE_EXAMPLES_RESP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define RESP_MAX_ARGS   1024
#define RESP_MAX_BULK   (1u << 20)
#define RESP_MAX_INLINE (64u << 10)
#define RESP_MAX_COMMAND (4u << 20)  /* an array's declared size, all of it */

typedef struct resp_arg {
    const char *p;
    size_t      len;
} resp_arg;

/* Parses the command at the start of buf[0..len). Returns the bytes it
 * takes (> 0) with argv[0..*argc) filled (*argc may be 0: an empty inline
 * line or an empty array, which a server skips), 0 when every byte so far
 * is valid but the command has not ended, or -1 with *err set to the
 * reason (a static string, "Protocol error: ...", to be sent as an error
 * reply before the connection is closed: the stream cannot be resynced).
 * argv must hold RESP_MAX_ARGS entries. */
ssize_t resp_parse(const char *buf, size_t len, resp_arg *argv, size_t *argc,
                   const char **err);

/* Strict decimal int64, as Redis reads numbers in arguments: an optional
 * '-', digits, no spaces, no leading '+', no overflow. */
bool resp_to_i64(const char *p, size_t len, int64_t *out);

typedef struct resp_out {
    char  *p;
    size_t len, cap;
    bool   oom;   /* an append failed for want of memory; the content is cut */
} resp_out;

void resp_out_free(resp_out *o);
void resp_out_reset(resp_out *o);            /* len = 0, keeps the memory */
void resp_add_raw(resp_out *o, const void *p, size_t n);
void resp_add_simple(resp_out *o, const char *s);          /* +s\r\n */
void resp_add_error(resp_out *o, const char *s);           /* -s\r\n */
void resp_add_int(resp_out *o, int64_t v);                 /* :v\r\n */
void resp_add_bulk(resp_out *o, const void *p, size_t n);  /* $n\r\n...\r\n */
void resp_add_null(resp_out *o);                           /* $-1\r\n */
void resp_add_array(resp_out *o, size_t n);                /* *n\r\n */

#endif
