/* http_parse: one pass over the bytes received so far, a state per
 * position in the grammar. Each complete header line is judged when its
 * line ends; a partial line is checked byte by byte, so garbage is refused
 * as soon as it arrives rather than when the head would have ended. */
#include "http_parse.h"

#include <string.h>

/* RFC 9110 tchar: the characters of a method or a field name. */
static bool is_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* field-vchar, SP and HTAB: what a field value may hold. */
static bool is_value_char(unsigned char c)
{
    return c == '\t' || (c >= 0x20 && c != 0x7f);
}

static bool ieq(const char *a, size_t alen, const char *lit)
{
    size_t n = strlen(lit);
    if (alen != n)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)a[i];
        if (c >= 'A' && c <= 'Z')
            c += 'a' - 'A';
        if (c != (unsigned char)lit[i])
            return false;
    }
    return true;
}

enum state {
    S_START,       /* before the method; empty lines are skipped */
    S_START_LF,    /* CR of an empty leading line seen */
    S_METHOD,
    S_TARGET,
    S_VERSION,     /* inside "HTTP/1.d" */
    S_LINE_CR,     /* CR at the end of a non-empty line seen */
    S_FIELD_START, /* at the start of a header line */
    S_NAME,
    S_VALUE,
    S_END_LF,      /* CR of the final empty line seen */
};

struct fields {
    int      hosts;
    bool     have_length;
    uint64_t length;
    bool     conn_close, conn_keep_alive;
};

/* Connection: a comma-separated list of tokens. */
static void connection_tokens(const char *v, size_t n, struct fields *f)
{
    size_t i = 0;
    while (i < n) {
        while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        size_t s = i;
        while (i < n && v[i] != ',')
            i++;
        size_t e = i;
        while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
            e--;
        if (ieq(v + s, e - s, "close"))
            f->conn_close = true;
        else if (ieq(v + s, e - s, "keep-alive"))
            f->conn_keep_alive = true;
    }
}

/* Judges one complete header field. value is trimmed of OWS. */
static int field(const char *name, size_t nlen, const char *v, size_t vlen, struct fields *f)
{
    if (ieq(name, nlen, "host")) {
        if (++f->hosts > 1)
            return HTTP_BAD;
    } else if (ieq(name, nlen, "content-length")) {
        if (vlen == 0)
            return HTTP_BAD;
        uint64_t x = 0;
        for (size_t i = 0; i < vlen; i++) {
            if (v[i] < '0' || v[i] > '9')
                return HTTP_BAD;
            if (x > HTTP_MAX_BODY)
                return HTTP_TOO_LARGE; /* before it can overflow */
            x = x * 10 + (uint64_t)(v[i] - '0');
        }
        if (f->have_length && f->length != x)
            return HTTP_BAD;
        if (x > HTTP_MAX_BODY)
            return HTTP_TOO_LARGE;
        f->have_length = true;
        f->length = x;
    } else if (ieq(name, nlen, "transfer-encoding")) {
        return HTTP_UNSUPPORTED;
    } else if (ieq(name, nlen, "connection")) {
        connection_tokens(v, vlen, f);
    }
    return 0;
}

ssize_t http_parse_request(const char *buf, size_t len, http_req *req)
{
    enum state st = S_START;
    enum state after_cr = S_FIELD_START; /* where S_LINE_CR's LF leads */
    struct fields f = { 0 };
    http_req r = { 0 };
    size_t vpos = 0;                      /* position inside "HTTP/1.d" */
    size_t name_at = 0, name_len = 0, value_at = 0, value_end = 0;
    size_t headers = 0;
    size_t lim = len < HTTP_MAX_HEAD ? len : HTTP_MAX_HEAD;
    static const char version[] = "HTTP/1.";
    int rc;

    for (size_t i = 0; i < lim; i++) {
        unsigned char c = (unsigned char)buf[i];
        switch (st) {
        case S_START:
            if (c == '\r') {
                st = S_START_LF;
            } else if (c == '\n') {
                /* a bare empty line before the request: skipped */
            } else if (is_tchar(c)) {
                r.method = buf + i;
                st = S_METHOD;
            } else {
                return HTTP_BAD;
            }
            break;
        case S_START_LF:
            if (c != '\n')
                return HTTP_BAD;
            st = S_START;
            break;
        case S_METHOD:
            if (c == ' ') {
                r.method_len = (size_t)(buf + i - r.method);
                r.target = buf + i + 1;
                st = S_TARGET;
            } else if (!is_tchar(c)) {
                return HTTP_BAD;
            }
            break;
        case S_TARGET:
            if (c == ' ') {
                r.target_len = (size_t)(buf + i - r.target);
                if (r.target_len == 0)
                    return HTTP_BAD;
                vpos = 0;
                st = S_VERSION;
            } else if (c < 0x21 || c > 0x7e) {
                return HTTP_BAD;
            }
            break;
        case S_VERSION:
            if (vpos < sizeof version - 1) {
                if (c != (unsigned char)version[vpos])
                    return HTTP_BAD;
                vpos++;
            } else if (vpos == sizeof version - 1) {
                if (c < '0' || c > '9')
                    return HTTP_BAD;
                r.minor = c - '0';
                vpos++;
            } else if (c == '\r') {
                after_cr = S_FIELD_START;
                st = S_LINE_CR;
            } else if (c == '\n') {
                st = S_FIELD_START;
            } else {
                return HTTP_BAD;
            }
            break;
        case S_LINE_CR:
            if (c != '\n')
                return HTTP_BAD;
            st = after_cr;
            break;
        case S_FIELD_START:
            if (c == '\r') {
                st = S_END_LF;
            } else if (c == '\n') {
                goto done;
            } else if (is_tchar(c)) {
                if (++headers > HTTP_MAX_HEADERS)
                    return HTTP_TOO_LARGE;
                name_at = i;
                st = S_NAME;
            } else {
                return HTTP_BAD; /* includes obs-fold: a line starting with SP/HTAB */
            }
            break;
        case S_NAME:
            if (c == ':') {
                name_len = i - name_at;
                value_at = value_end = i + 1;
                st = S_VALUE;
            } else if (!is_tchar(c)) {
                return HTTP_BAD; /* also a space before the colon */
            }
            break;
        case S_VALUE:
            if (c == '\r' || c == '\n') {
                /* trim OWS on both sides */
                size_t s = value_at, e = value_end;
                while (s < e && (buf[s] == ' ' || buf[s] == '\t'))
                    s++;
                rc = field(buf + name_at, name_len, buf + s, e - s, &f);
                if (rc)
                    return rc;
                if (c == '\r') {
                    after_cr = S_FIELD_START;
                    st = S_LINE_CR;
                } else {
                    st = S_FIELD_START;
                }
            } else if (!is_value_char(c)) {
                return HTTP_BAD;
            } else if (c != ' ' && c != '\t') {
                value_end = i + 1;
            }
            break;
        case S_END_LF:
            if (c != '\n')
                return HTTP_BAD;
            goto done;
        }
        continue;
    done:
        if (r.minor >= 1 && f.hosts == 0)
            return HTTP_BAD;
        r.headers = headers;
        r.content_length = f.have_length ? f.length : 0;
        if (r.minor >= 1)
            r.keep_alive = !f.conn_close;
        else
            r.keep_alive = f.conn_keep_alive && !f.conn_close;
        r.head = r.method_len == 4 && memcmp(r.method, "HEAD", 4) == 0;
        *req = r;
        return (ssize_t)(i + 1);
    }
    return len >= HTTP_MAX_HEAD ? HTTP_TOO_LARGE : HTTP_NEED_MORE;
}
