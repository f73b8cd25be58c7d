/* resp: RESP2 commands in, replies out. The parser re-reads the command
 * from its first byte on every call (a command is at most a few MiB and
 * usually arrives whole), which keeps it stateless: the caller owns the
 * only state, its buffer. */
#include "resp.h"

#include <stdlib.h>
#include <string.h>

static const char E_MBULK[]  = "Protocol error: invalid multibulk length";
static const char E_BULK[]   = "Protocol error: invalid bulk length";
static const char E_DOLLAR[] = "Protocol error: expected '$'";
static const char E_CRLF[]   = "Protocol error: expected CRLF after bulk data";
static const char E_BIG[]    = "Protocol error: command too big";
static const char E_INLINE[] = "Protocol error: too big inline request";
static const char E_QUOTE[]  = "Protocol error: unbalanced quotes in request";
static const char E_CTL[]    = "Protocol error: control character in inline request";

/* Reads a length line "<digits>\r\n" at buf[*pos..len) (after its type
 * byte). Returns 1 with *out, 0 if the line has not ended, -1 if it is not
 * a number or over max. A line of more than 18 digits is an error
 * at once (RESP_MAX_BULK has 7), so a run of digits is never buffered. */
static int read_len(const char *buf, size_t len, size_t *pos, int64_t max, int64_t *out)
{
    size_t i = *pos;
    bool neg = false;
    int64_t v = 0;
    size_t digits = 0;
    if (i < len && buf[i] == '-') {
        neg = true;
        i++;
    }
    for (; i < len; i++) {
        char c = buf[i];
        if (c >= '0' && c <= '9') {
            if (++digits > 18) /* 18 digits fit in an int64 */
                return -1;
            v = v * 10 + (c - '0');
            continue;
        }
        if (c != '\r' || digits == 0)
            return -1;
        if (i + 1 >= len)
            return 0;
        if (buf[i + 1] != '\n')
            return -1;
        if (neg) {
            if (v != 1) /* only -1 is a valid negative length */
                return -1;
            v = -1;
        }
        if (v > max)
            return -1;
        *out = v;
        *pos = i + 2;
        return 1;
    }
    return 0;
}

static ssize_t parse_array(const char *buf, size_t len, resp_arg *argv, size_t *argc,
                           const char **err)
{
    size_t pos = 1;
    int64_t n;
    int rc = read_len(buf, len, &pos, RESP_MAX_ARGS, &n);
    if (rc < 0) {
        *err = E_MBULK;
        return -1;
    }
    if (rc == 0)
        return 0;
    if (n <= 0) { /* *0 and *-1: nothing to do, as Redis treats them */
        *argc = 0;
        return (ssize_t)pos;
    }
    for (int64_t k = 0; k < n; k++) {
        if (pos >= len)
            return 0;
        if (buf[pos] != '$') {
            *err = E_DOLLAR;
            return -1;
        }
        pos++;
        int64_t bl;
        rc = read_len(buf, len, &pos, RESP_MAX_BULK, &bl);
        if (rc < 0 || (rc > 0 && bl < 0)) {
            *err = E_BULK;
            return -1;
        }
        if (rc == 0)
            return 0;
        if (pos + (size_t)bl + 2 > RESP_MAX_COMMAND) {
            *err = E_BIG;
            return -1;
        }
        if (len - pos < (size_t)bl + 2)
            return 0;
        if (buf[pos + (size_t)bl] != '\r' || buf[pos + (size_t)bl + 1] != '\n') {
            *err = E_CRLF;
            return -1;
        }
        argv[k].p = buf + pos;
        argv[k].len = (size_t)bl;
        pos += (size_t)bl + 2;
    }
    *argc = (size_t)n;
    return (ssize_t)pos;
}

/* An inline command: words separated by spaces or tabs up to LF (an
 * optional CR before it). Double quotes group a word with spaces (no
 * escapes); control characters other than the line end are refused. */
static ssize_t parse_inline(const char *buf, size_t len, resp_arg *argv, size_t *argc,
                            const char **err)
{
    const char *nl = memchr(buf, '\n', len < RESP_MAX_INLINE ? len : RESP_MAX_INLINE);
    if (!nl) {
        if (len >= RESP_MAX_INLINE) {
            *err = E_INLINE;
            return -1;
        }
        return 0;
    }
    size_t end = (size_t)(nl - buf);
    if (end > 0 && buf[end - 1] == '\r')
        end--;
    size_t n = 0, i = 0;
    while (i < end) {
        while (i < end && (buf[i] == ' ' || buf[i] == '\t'))
            i++;
        if (i >= end)
            break;
        if (n == RESP_MAX_ARGS) {
            *err = E_MBULK;
            return -1;
        }
        if (buf[i] == '"') {
            size_t s = ++i;
            while (i < end && buf[i] != '"')
                i++;
            if (i >= end) {
                *err = E_QUOTE;
                return -1;
            }
            argv[n].p = buf + s;
            argv[n].len = i - s;
            i++;
            if (i < end && buf[i] != ' ' && buf[i] != '\t') {
                *err = E_QUOTE;
                return -1;
            }
        } else {
            size_t s = i;
            while (i < end && buf[i] != ' ' && buf[i] != '\t') {
                if ((unsigned char)buf[i] < 0x20 || buf[i] == '"') {
                    *err = buf[i] == '"' ? E_QUOTE : E_CTL;
                    return -1;
                }
                i++;
            }
            argv[n].p = buf + s;
            argv[n].len = i - s;
        }
        n++;
    }
    *argc = n;
    return (ssize_t)(nl - buf) + 1;
}

ssize_t resp_parse(const char *buf, size_t len, resp_arg *argv, size_t *argc,
                   const char **err)
{
    *argc = 0;
    if (len == 0)
        return 0;
    if (buf[0] == '*')
        return parse_array(buf, len, argv, argc, err);
    return parse_inline(buf, len, argv, argc, err);
}

bool resp_to_i64(const char *p, size_t len, int64_t *out)
{
    size_t i = 0;
    bool neg = false;
    if (len == 0 || len > 20)
        return false;
    if (p[0] == '-') {
        neg = true;
        i = 1;
        if (len == 1)
            return false;
    }
    uint64_t v = 0;
    uint64_t lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (; i < len; i++) {
        if (p[i] < '0' || p[i] > '9')
            return false;
        uint64_t d = (uint64_t)(p[i] - '0');
        if (v > (lim - d) / 10)
            return false;
        v = v * 10 + d;
    }
    if (p[neg] == '0' && (len > 1 + (size_t)neg || neg))
        return false; /* "007" and "-0" are not numbers to Redis either */
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return true;
}

/* ------------------------------------------------------------------ */
/* replies */

static bool reserve(resp_out *o, size_t n)
{
    if (o->oom)
        return false;
    if (o->cap - o->len >= n)
        return true;
    size_t cap = o->cap ? o->cap : 256;
    while (cap - o->len < n)
        cap *= 2;
    char *p = realloc(o->p, cap);
    if (!p) {
        o->oom = true;
        return false;
    }
    o->p = p;
    o->cap = cap;
    return true;
}

void resp_out_free(resp_out *o)
{
    free(o->p);
    *o = (resp_out){ 0 };
}

void resp_out_reset(resp_out *o)
{
    o->len = 0;
    o->oom = false;
}

void resp_add_raw(resp_out *o, const void *p, size_t n)
{
    if (!reserve(o, n))
        return;
    memcpy(o->p + o->len, p, n);
    o->len += n;
}

/* type byte, decimal v, CRLF */
static void add_num_line(resp_out *o, char type, int64_t v)
{
    char tmp[24];
    size_t k = sizeof tmp;
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    tmp[--k] = '\n';
    tmp[--k] = '\r';
    do {
        tmp[--k] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        tmp[--k] = '-';
    tmp[--k] = type;
    resp_add_raw(o, tmp + k, sizeof tmp - k);
}

static void add_line(resp_out *o, char type, const char *s)
{
    size_t n = strlen(s);
    if (!reserve(o, n + 3))
        return;
    o->p[o->len++] = type;
    /* a status or error line cannot hold CR or LF: they become spaces */
    for (size_t i = 0; i < n; i++)
        o->p[o->len++] = (s[i] == '\r' || s[i] == '\n') ? ' ' : s[i];
    o->p[o->len++] = '\r';
    o->p[o->len++] = '\n';
}

void resp_add_simple(resp_out *o, const char *s) { add_line(o, '+', s); }
void resp_add_error(resp_out *o, const char *s)  { add_line(o, '-', s); }
void resp_add_int(resp_out *o, int64_t v)        { add_num_line(o, ':', v); }
void resp_add_null(resp_out *o)                  { resp_add_raw(o, "$-1\r\n", 5); }
void resp_add_array(resp_out *o, size_t n)       { add_num_line(o, '*', (int64_t)n); }

void resp_add_bulk(resp_out *o, const void *p, size_t n)
{
    add_num_line(o, '$', (int64_t)n);
    resp_add_raw(o, p, n);
    resp_add_raw(o, "\r\n", 2);
}
