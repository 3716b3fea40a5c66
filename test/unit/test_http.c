/* test_http.c - request/response helpers and the FastCGI parameter reader. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "core/arena.h"
#include "core/err.h"
#include "web/fcgi.h"
#include "web/http.h"

static void test_header_lookup_is_case_insensitive(void **state)
{
    (void)state;
    struct gh_http_req req;
    memset(&req, 0, sizeof(req));
    req.headers[0].name = "content-type";
    req.headers[0].value = "application/json";
    req.headers[1].name = "x-signature-ed25519";
    req.headers[1].value = "abcd";
    req.n_headers = 2;

    assert_string_equal(gh_http_header(&req, "X-Signature-Ed25519"), "abcd");
    assert_string_equal(gh_http_header(&req, "content-type"), "application/json");
    assert_null(gh_http_header(&req, "x-signature-timestamp"));
    assert_null(gh_http_header(&req, NULL));
    assert_null(gh_http_header(NULL, "content-type"));
    /* n_headers bounds the search: an entry past it is not seen. */
    req.n_headers = 1;
    assert_null(gh_http_header(&req, "x-signature-ed25519"));
}

static void test_resp_defaults_and_json(void **state)
{
    (void)state;
    struct gh_http_resp resp;
    gh_http_resp_init(&resp, 1024);
    assert_int_equal(resp.status, 200);
    assert_string_equal(resp.content_type, "application/json");
    assert_string_equal(resp.extra_headers, "");
    assert_int_equal(resp.body.len, 0);

    gh_http_json(&resp, 201, "{\"ok\":true}");
    assert_int_equal(resp.status, 201);
    assert_string_equal(gh_buf_cstr(&resp.body), "{\"ok\":true}");

    /* A second call replaces the body, it does not append. */
    gh_http_json(&resp, 200, "{}");
    assert_string_equal(gh_buf_cstr(&resp.body), "{}");
    gh_http_resp_cleanup(&resp);
}

static void test_resp_json_too_large_becomes_500(void **state)
{
    (void)state;
    struct gh_http_resp resp;
    char big[300];
    gh_http_resp_init(&resp, 128);
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    gh_http_json(&resp, 200, big);
    assert_int_equal(resp.status, 500);
    assert_non_null(strstr(gh_buf_cstr(&resp.body), "response_too_large"));
    gh_http_resp_cleanup(&resp);
}

static void test_error_json_is_escaped_and_parses(void **state)
{
    (void)state;
    struct gh_http_resp resp;
    gh_http_resp_init(&resp, 4096);
    gh_http_error(&resp, 400, "invalid_interaction", "field \"token\" is\nmissing");
    assert_int_equal(resp.status, 400);
    assert_string_equal(resp.content_type, "application/json");

    json_object *root = json_tokener_parse(gh_buf_cstr(&resp.body));
    assert_non_null(root);
    json_object *err = NULL, *code = NULL, *msg = NULL;
    assert_true(json_object_object_get_ex(root, "error", &err));
    assert_true(json_object_object_get_ex(err, "code", &code));
    assert_true(json_object_object_get_ex(err, "message", &msg));
    assert_string_equal(json_object_get_string(code), "invalid_interaction");
    assert_string_equal(json_object_get_string(msg), "field \"token\" is\nmissing");
    json_object_put(root);

    /* NULL message: the reason phrase. */
    gh_http_error(&resp, 404, "not_found", NULL);
    assert_non_null(strstr(gh_buf_cstr(&resp.body), "\"message\":\"Not Found\""));
    gh_http_resp_cleanup(&resp);
}

static void test_resp_headers(void **state)
{
    (void)state;
    struct gh_http_resp resp;
    gh_http_resp_init(&resp, 64);
    assert_int_equal(gh_http_resp_header(&resp, "Allow", "POST"), GH_OK);
    assert_int_equal(gh_http_resp_header(&resp, "Retry-After", "3"), GH_OK);
    assert_string_equal(resp.extra_headers, "Allow: POST\r\nRetry-After: 3\r\n");

    /* Header injection is refused and leaves the block unchanged. */
    assert_int_equal(gh_http_resp_header(&resp, "X-Evil", "a\r\nSet-Cookie: x=1"), GH_EINVAL);
    assert_int_equal(gh_http_resp_header(&resp, "Bad Name", "v"), GH_EINVAL);
    assert_int_equal(gh_http_resp_header(&resp, "", "v"), GH_EINVAL);
    assert_string_equal(resp.extra_headers, "Allow: POST\r\nRetry-After: 3\r\n");

    /* Full: GH_ETOOBIG and nothing half-written. */
    char value[600];
    memset(value, 'v', sizeof(value) - 1);
    value[sizeof(value) - 1] = '\0';
    assert_int_equal(gh_http_resp_header(&resp, "X-A", value), GH_OK);
    size_t before = strlen(resp.extra_headers);
    assert_int_equal(gh_http_resp_header(&resp, "X-B", value), GH_ETOOBIG);
    assert_int_equal(strlen(resp.extra_headers), before);
    gh_http_resp_cleanup(&resp);
}

static void test_reason_phrases(void **state)
{
    (void)state;
    assert_string_equal(gh_http_reason(200), "OK");
    assert_string_equal(gh_http_reason(401), "Unauthorized");
    assert_string_equal(gh_http_reason(413), "Payload Too Large");
    assert_string_equal(gh_http_reason(503), "Service Unavailable");
    assert_string_equal(gh_http_reason(799), "Unknown");
}

static void test_resp_set_clears_body(void **state)
{
    (void)state;
    struct gh_http_resp resp;
    gh_http_resp_init(&resp, 64);
    gh_buf_puts(&resp.body, "old");
    gh_http_resp_set(&resp, 202, "text/plain");
    assert_int_equal(resp.status, 202);
    assert_string_equal(resp.content_type, "text/plain");
    assert_int_equal(resp.body.len, 0);
    gh_http_resp_cleanup(&resp);
}

static void test_fcgi_params(void **state)
{
    (void)state;
    struct gh_arena arena;
    struct gh_http_req req;
    long long clen = 0;
    char *envp[] = {
        "REQUEST_METHOD=POST",
        "DOCUMENT_URI=/interactions",
        "SCRIPT_NAME=/ignored",
        "QUERY_STRING=a=1&b=2",
        "REMOTE_ADDR=127.0.0.1",
        "CONTENT_LENGTH=42",
        "CONTENT_TYPE=application/json",
        "HTTP_X_SIGNATURE_ED25519=deadbeef",
        "HTTP_USER_AGENT=Discord-Interactions/1.0",
        "HTTP_=empty-name-ignored",
        "SERVER_PORT=8080",
        NULL,
    };
    gh_arena_init(&arena, 1024, 65536);
    assert_int_equal(gh_fcgi_parse_params(envp, &arena, &req, &clen), GH_OK);
    assert_string_equal(req.method, "POST");
    assert_string_equal(req.path, "/interactions");
    assert_string_equal(req.query, "a=1&b=2");
    assert_string_equal(req.remote_addr, "127.0.0.1");
    assert_int_equal(clen, 42);
    assert_ptr_equal(req.arena, &arena);
    assert_string_equal(gh_http_header(&req, "x-signature-ed25519"), "deadbeef");
    assert_string_equal(gh_http_header(&req, "user-agent"), "Discord-Interactions/1.0");
    assert_string_equal(gh_http_header(&req, "content-type"), "application/json");
    assert_string_equal(gh_http_header(&req, "content-length"), "42");
    assert_int_equal(req.n_headers, 4);
    assert_int_equal(req.body_len, 0);
    assert_int_equal(req.body_too_large, 0);
    gh_arena_cleanup(&arena);
}

static void test_fcgi_params_path_fallbacks(void **state)
{
    (void)state;
    struct gh_arena arena;
    struct gh_http_req req;
    long long clen = 0;
    gh_arena_init(&arena, 1024, 65536);

    char *a[] = {"SCRIPT_NAME=/api", "PATH_INFO=/v1/health", "CONTENT_LENGTH=abc", NULL};
    assert_int_equal(gh_fcgi_parse_params(a, &arena, &req, &clen), GH_OK);
    assert_string_equal(req.path, "/api/v1/health");
    assert_string_equal(req.method, "GET"); /* default */
    assert_int_equal(clen, -1);             /* not a number */

    char *b[] = {"REQUEST_URI=/metrics?x=1", NULL};
    assert_int_equal(gh_fcgi_parse_params(b, &arena, &req, &clen), GH_OK);
    assert_string_equal(req.path, "/metrics");
    assert_string_equal(req.query, "");
    assert_int_equal(clen, -1);

    char *c[] = {NULL};
    assert_int_equal(gh_fcgi_parse_params(c, &arena, &req, &clen), GH_OK);
    assert_string_equal(req.path, "/");
    assert_int_equal(gh_fcgi_parse_params(NULL, &arena, &req, &clen), GH_OK);
    gh_arena_cleanup(&arena);
}

static void test_fcgi_params_header_limit(void **state)
{
    (void)state;
    struct gh_arena arena;
    struct gh_http_req req;
    long long clen = 0;
    char storage[GH_HTTP_MAX_HEADERS + 8][32];
    char *envp[GH_HTTP_MAX_HEADERS + 9];
    int n = GH_HTTP_MAX_HEADERS + 8;
    for (int i = 0; i < n; i++) {
        snprintf(storage[i], sizeof(storage[i]), "HTTP_X_H%d=%d", i, i);
        envp[i] = storage[i];
    }
    envp[n] = NULL;
    gh_arena_init(&arena, 1024, 65536);
    assert_int_equal(gh_fcgi_parse_params(envp, &arena, &req, &clen), GH_OK);
    assert_int_equal(req.n_headers, GH_HTTP_MAX_HEADERS);
    assert_string_equal(gh_http_header(&req, "x-h0"), "0");
    assert_null(gh_http_header(&req, "x-h40"));
    gh_arena_cleanup(&arena);

    /* An arena too small for the names: GH_ENOMEM, not a crash. */
    gh_arena_init(&arena, 64, 128);
    assert_int_equal(gh_fcgi_parse_params(envp, &arena, &req, &clen), GH_ENOMEM);
    gh_arena_cleanup(&arena);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_header_lookup_is_case_insensitive),
        cmocka_unit_test(test_resp_defaults_and_json),
        cmocka_unit_test(test_resp_json_too_large_becomes_500),
        cmocka_unit_test(test_error_json_is_escaped_and_parses),
        cmocka_unit_test(test_resp_headers),
        cmocka_unit_test(test_reason_phrases),
        cmocka_unit_test(test_resp_set_clears_body),
        cmocka_unit_test(test_fcgi_params),
        cmocka_unit_test(test_fcgi_params_path_fallbacks),
        cmocka_unit_test(test_fcgi_params_header_limit),
    };
    return cmocka_run_group_tests_name("http", tests, NULL, NULL);
}
