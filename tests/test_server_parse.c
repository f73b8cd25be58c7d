/* The servers' protocol parsers on their own: examples/http_parse.c
 * (http_hello) and examples/resp.c (kv). No runtime involved. */
#include <check.h>
#include <stdio.h>
#include <string.h>

#include "examples/http_parse.h"
#include "examples/resp.h"

static ssize_t http(const char *s, http_req *r)
{
    return http_parse_request(s, strlen(s), r);
}

START_TEST(http_complete_head_returns_its_length)
{
    http_req r;
    const char *s = "GET /x HTTP/1.1\r\nHost: a\r\n\r\nGET";
    ck_assert_int_eq(http(s, &r), (ssize_t)strlen(s) - 3);
    ck_assert_int_eq(r.method_len, 3);
    ck_assert_int_eq(r.target_len, 2);
    ck_assert(memcmp(r.target, "/x", 2) == 0);
    ck_assert_int_eq(r.minor, 1);
    ck_assert(r.keep_alive);
    ck_assert(!r.head);
}
END_TEST

START_TEST(http_every_prefix_needs_more)
{
    const char *s = "POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\n";
    http_req r;
    for (size_t k = 0; k < strlen(s); k++)
        ck_assert_int_eq(http_parse_request(s, k, &r), HTTP_NEED_MORE);
    ck_assert_int_eq(http(s, &r), (ssize_t)strlen(s));
    ck_assert_int_eq(r.content_length, 3);
}
END_TEST

START_TEST(http_keep_alive_follows_version_and_connection)
{
    http_req r;
    ck_assert_int_gt(http("GET / HTTP/1.1\r\nHost: a\r\nConnection: Close\r\n\r\n", &r), 0);
    ck_assert(!r.keep_alive);
    ck_assert_int_gt(http("GET / HTTP/1.0\r\n\r\n", &r), 0);
    ck_assert(!r.keep_alive);
    ck_assert_int_gt(http("HEAD / HTTP/1.0\nConnection: x, keep-alive\n\n", &r), 0);
    ck_assert(r.keep_alive);
    ck_assert(r.head);
}
END_TEST

START_TEST(http_malformed_heads_are_bad_at_the_first_wrong_byte)
{
    http_req r;
    ck_assert_int_eq(http("GET  / HTTP/1.1\r\n", &r), HTTP_BAD);
    ck_assert_int_eq(http("GET / HTTP/2.0\r\n", &r), HTTP_BAD);
    ck_assert_int_eq(http("GET / HTTP/1.1\rX", &r), HTTP_BAD);
    ck_assert_int_eq(http("G(T / HTTP/1.1\r\n", &r), HTTP_BAD);
    ck_assert_int_eq(http("GET / HTTP/1.1\r\nHost : a\r\n", &r), HTTP_BAD);
    ck_assert_int_eq(http("GET / HTTP/1.1\r\nHost: a\r\n folded\r\n", &r), HTTP_BAD);
    ck_assert_int_eq(http("GET / HTTP/1.1\r\nX: a\001b", &r), HTTP_BAD);
    ck_assert_int_eq(http("GET / HTTP/1.1\r\n\r\n", &r), HTTP_BAD);          /* no Host */
    ck_assert_int_eq(http("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", &r), HTTP_BAD);
    ck_assert_int_eq(http("GET / HTTP/1.1\r\nContent-Length: 1x\r\n", &r), HTTP_BAD);
    ck_assert_int_eq(http("GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n", &r),
                     HTTP_BAD);
    ck_assert_int_eq(http("\x16\x03\x01\x02", &r), HTTP_BAD);                  /* TLS hello */
}
END_TEST

START_TEST(http_limits_and_unsupported)
{
    http_req r;
    ck_assert_int_eq(http("GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n", &r),
                     HTTP_UNSUPPORTED);
    ck_assert_int_eq(http("GET / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n", &r),
                     HTTP_TOO_LARGE);
    static char big[HTTP_MAX_HEAD + 100];
    memset(big, 'a', sizeof big);
    memcpy(big, "GET /", 5);
    ck_assert_int_eq(http_parse_request(big, HTTP_MAX_HEAD - 1, &r), HTTP_NEED_MORE);
    ck_assert_int_eq(http_parse_request(big, sizeof big, &r), HTTP_TOO_LARGE);
    char many[HTTP_MAX_HEADERS * 8 + 64];
    size_t n = (size_t)sprintf(many, "GET / HTTP/1.1\r\n");
    for (int i = 0; i <= HTTP_MAX_HEADERS; i++)
        n += (size_t)sprintf(many + n, "A: b\r\n");
    ck_assert_int_eq(http_parse_request(many, n, &r), HTTP_TOO_LARGE);
}
END_TEST

static resp_arg av[RESP_MAX_ARGS];

static ssize_t resp(const char *s, size_t *argc, const char **err)
{
    return resp_parse(s, strlen(s), av, argc, err);
}

START_TEST(resp_array_of_bulks)
{
    size_t argc;
    const char *err = NULL;
    const char *s = "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n*1\r\n";
    ck_assert_int_eq(resp(s, &argc, &err), (ssize_t)strlen(s) - 4);
    ck_assert_int_eq(argc, 3);
    ck_assert(av[0].len == 3 && memcmp(av[0].p, "SET", 3) == 0);
    ck_assert(av[2].len == 0);
    for (size_t k = 0; k < strlen(s) - 4; k++)
        ck_assert_int_eq(resp_parse(s, k, av, &argc, &err), 0);
}
END_TEST

START_TEST(resp_inline_and_empty)
{
    size_t argc;
    const char *err = NULL;
    ck_assert_int_eq(resp("SET \"a b\"  1\r\n", &argc, &err), 14);
    ck_assert_int_eq(argc, 3);
    ck_assert(av[1].len == 3 && memcmp(av[1].p, "a b", 3) == 0);
    ck_assert_int_eq(resp("\r\n", &argc, &err), 2);
    ck_assert_int_eq(argc, 0);
    ck_assert_int_eq(resp("*0\r\n", &argc, &err), 4);
    ck_assert_int_eq(argc, 0);
    ck_assert_int_eq(resp("PING", &argc, &err), 0);
}
END_TEST

START_TEST(resp_protocol_errors)
{
    size_t argc;
    const char *err = NULL;
    ck_assert_int_eq(resp("*x\r\n", &argc, &err), -1);
    ck_assert(strstr(err, "multibulk"));
    ck_assert_int_eq(resp("*2000\r\n", &argc, &err), -1);
    ck_assert_int_eq(resp("*1\r\n:1\r\n", &argc, &err), -1);
    ck_assert(strstr(err, "'$'"));
    ck_assert_int_eq(resp("*1\r\n$-1\r\n", &argc, &err), -1);
    ck_assert_int_eq(resp("*1\r\n$2000000\r\n", &argc, &err), -1);
    ck_assert_int_eq(resp("*1\r\n$1\r\nab\r\n", &argc, &err), -1);
    ck_assert_int_eq(resp("*1\r\n$99999999999999999999999", &argc, &err), -1);
    ck_assert_int_eq(resp("GET \"k\r\n", &argc, &err), -1);
    static char big[RESP_MAX_INLINE + 1];
    memset(big, 'a', sizeof big);
    ck_assert_int_eq(resp_parse(big, sizeof big, av, &argc, &err), -1);
}
END_TEST

START_TEST(resp_numbers_and_replies)
{
    int64_t v;
    ck_assert(resp_to_i64("-9223372036854775808", 20, &v) && v == INT64_MIN);
    ck_assert(resp_to_i64("9223372036854775807", 19, &v) && v == INT64_MAX);
    ck_assert(!resp_to_i64("9223372036854775808", 19, &v));
    ck_assert(!resp_to_i64("007", 3, &v));
    ck_assert(!resp_to_i64("-0", 2, &v));
    ck_assert(!resp_to_i64("+1", 2, &v));
    ck_assert(!resp_to_i64("", 0, &v));
    ck_assert(resp_to_i64("0", 1, &v) && v == 0);
    resp_out o = { 0 };
    resp_add_array(&o, 2);
    resp_add_bulk(&o, "ab", 2);
    resp_add_int(&o, -12);
    resp_add_null(&o);
    resp_add_simple(&o, "OK");
    resp_add_error(&o, "ERR a\r\nb");
    const char *want = "*2\r\n$2\r\nab\r\n:-12\r\n$-1\r\n+OK\r\n-ERR a  b\r\n";
    ck_assert_int_eq(o.len, strlen(want));
    ck_assert(memcmp(o.p, want, o.len) == 0);
    resp_out_free(&o);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("server_parse");
    TCase *tc = tcase_create("http");
    tcase_add_test(tc, http_complete_head_returns_its_length);
    tcase_add_test(tc, http_every_prefix_needs_more);
    tcase_add_test(tc, http_keep_alive_follows_version_and_connection);
    tcase_add_test(tc, http_malformed_heads_are_bad_at_the_first_wrong_byte);
    tcase_add_test(tc, http_limits_and_unsupported);
    suite_add_tcase(s, tc);
    tc = tcase_create("resp");
    tcase_add_test(tc, resp_array_of_bulks);
    tcase_add_test(tc, resp_inline_and_empty);
    tcase_add_test(tc, resp_protocol_errors);
    tcase_add_test(tc, resp_numbers_and_replies);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed != 0;
}
