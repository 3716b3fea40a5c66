/* test_api_router.c - the API router's pure parts: query and cookie
 * parsing, URL encoding, route matching (404 / 405 / Allow), the route table
 * as JSON, answers and error JSON, and a request refused before any store
 * is touched (no session: 401; a tampered cookie: 401). The checks that need
 * PostgreSQL and Redis are covered by test/integration/api_*.test.mjs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "api/api.h"
#include "api/internal.h"
#include "core/config.h"
#include "core/ctx.h"
#include "core/err.h"
#include "core/log.h"
#include "core/str.h"
#include "web/http.h"

static struct gh_log_sink sink;
static struct gh_config cfg;

static int setup(void **state)
{
    (void)state;
    if (gh_log_sink_init(&sink, "test_api_router", GH_LOG_CRIT, NULL, 0, 0) != GH_OK)
        return -1;
    memset(&cfg, 0, sizeof(cfg));
    snprintf(cfg.session_secret, sizeof(cfg.session_secret), "%s", "0123456789abcdef0123456789abcdef-test");
    snprintf(cfg.public_url, sizeof(cfg.public_url), "%s", "https://bot.example");
    snprintf(cfg.api_rate_profile, sizeof(cfg.api_rate_profile), "%s", "default");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    gh_log_sink_cleanup(&sink);
    return 0;
}

static void req_init(struct gh_http_req *req, const char *method, const char *path, const char *query)
{
    memset(req, 0, sizeof(*req));
    req->method = method;
    req->path = path;
    req->query = query;
    req->remote_addr = "10.0.0.1";
}

static json_object *dispatch(struct gh_http_req *req, struct gh_http_resp *resp)
{
    struct gh_ctx ctx;
    memset(&ctx, 0, sizeof(ctx));
    ctx.cfg = &cfg;
    gh_logger_init(&ctx.log, &sink, "api");
    gh_http_resp_init(resp, 1 << 16);
    gh_api_dispatch(&ctx, req, resp);
    return json_tokener_parse(gh_buf_cstr(&resp->body));
}

static const char *err_code(json_object *o)
{
    json_object *e = NULL;
    json_object *c = NULL;
    if (!json_object_object_get_ex(o, "error", &e) || !json_object_object_get_ex(e, "code", &c))
        return "";
    return json_object_get_string(c);
}

static void test_query(void **state)
{
    struct gh_http_req req;
    char out[64];
    (void)state;
    req_init(&req, "GET", "/x", "a=1&next=%2F%23%2Fguilds&q=b+o%zz&empty&long=0123456789");
    assert_int_equal(gh_api_query(&req, "a", out, sizeof(out)), 1);
    assert_string_equal(out, "1");
    assert_int_equal(gh_api_query(&req, "next", out, sizeof(out)), 1);
    assert_string_equal(out, "/#/guilds");
    assert_int_equal(gh_api_query(&req, "q", out, sizeof(out)), 1);
    assert_string_equal(out, "b o%zz"); /* a bad escape stays as it is */
    assert_int_equal(gh_api_query(&req, "empty", out, sizeof(out)), 1);
    assert_string_equal(out, "");
    assert_int_equal(gh_api_query(&req, "long", out, 5), 1);
    assert_string_equal(out, "0123"); /* cut to the buffer */
    assert_int_equal(gh_api_query(&req, "missing", out, sizeof(out)), 0);
    assert_string_equal(out, "");
    assert_int_equal(gh_api_query(&req, "nex", out, sizeof(out)), 0); /* a prefix is not a name */
}

static void test_cookies(void **state)
{
    struct gh_http_req req;
    char out[32];
    (void)state;
    req_init(&req, "GET", "/x", "");
    req.headers[0].name = "cookie";
    req.headers[0].value =
        "a=1; gh_session=abc.def.ghi;gh_csrf=tok;  long=0123456789012345678901234567890123456789";
    req.n_headers = 1;
    assert_int_equal(gh_api_cookie(&req, "gh_session", out, sizeof(out)), 1);
    assert_string_equal(out, "abc.def.ghi");
    assert_int_equal(gh_api_cookie(&req, "gh_csrf", out, sizeof(out)), 1);
    assert_string_equal(out, "tok");
    assert_int_equal(gh_api_cookie(&req, "gh", out, sizeof(out)), 0);
    assert_int_equal(gh_api_cookie(&req, "long", out, sizeof(out)), 0); /* too long to be ours */
    req.n_headers = 0;
    assert_int_equal(gh_api_cookie(&req, "a", out, sizeof(out)), 0);
}

static void test_urlencode(void **state)
{
    char out[64];
    (void)state;
    assert_int_equal(gh_api_urlencode("http://a b/c?d=é~_.-", out, sizeof(out)), GH_OK);
    assert_string_equal(out, "http%3A%2F%2Fa%20b%2Fc%3Fd%3D%C3%A9~_.-");
    assert_int_equal(gh_api_urlencode("abc/", out, 6), GH_ETOOBIG);
    assert_int_equal(gh_api_urlencode("abc", out, 4), GH_OK);
}

static void test_not_found_and_method(void **state)
{
    struct gh_http_req req;
    struct gh_http_resp resp;
    json_object *o;
    (void)state;

    req_init(&req, "GET", "/elsewhere", "");
    o = dispatch(&req, &resp);
    assert_int_equal(resp.status, 404);
    json_object_put(o);
    gh_http_resp_cleanup(&resp);

    req_init(&req, "GET", "/api/v1/nope/nothing", "");
    o = dispatch(&req, &resp);
    assert_int_equal(resp.status, 404);
    assert_string_equal(err_code(o), "not_found");
    assert_non_null(strstr(resp.extra_headers, "X-Request-Id:"));
    assert_non_null(strstr(resp.extra_headers, "Cache-Control: no-store"));
    json_object_put(o);
    gh_http_resp_cleanup(&resp);

    req_init(&req, "PATCH", "/api/v1/guilds/123/settings/core", "");
    o = dispatch(&req, &resp);
    assert_int_equal(resp.status, 405);
    assert_string_equal(err_code(o), "method_not_allowed");
    assert_non_null(strstr(resp.extra_headers, "Allow: GET, PUT"));
    json_object_put(o);
    gh_http_resp_cleanup(&resp);
}

static void test_refused_before_stores(void **state)
{
    struct gh_http_req req;
    struct gh_http_resp resp;
    json_object *o;
    (void)state;

    /* no cookie: 401 (no store is touched: the ctx has none) */
    req_init(&req, "GET", "/api/v1/guilds", "");
    o = dispatch(&req, &resp);
    assert_int_equal(resp.status, 401);
    assert_string_equal(err_code(o), "unauthorized");
    json_object_put(o);
    gh_http_resp_cleanup(&resp);

    /* a cookie that is not a JWT signed with our secret: 401 */
    req_init(&req, "GET", "/api/v1/auth/me", "");
    req.headers[0].name = "cookie";
    req.headers[0].value = "gh_session=eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0.";
    req.n_headers = 1;
    o = dispatch(&req, &resp);
    assert_int_equal(resp.status, 401);
    json_object_put(o);
    gh_http_resp_cleanup(&resp);
}

static void test_routes_table(void **state)
{
    struct gh_buf b;
    json_object *arr;
    size_t n;
    int saw_guild = 0;
    (void)state;
    gh_buf_init(&b, 1 << 20);
    assert_int_equal(gh_api_routes_json(&b), GH_OK);
    arr = json_tokener_parse(gh_buf_cstr(&b));
    assert_non_null(arr);
    n = json_object_array_length(arr);
    assert_int_equal(n, gh_api_route_count());
    assert_non_null(gh_api_route_at(n - 1));
    assert_null(gh_api_route_at(n));
    for (size_t i = 0; i < n; i++) {
        json_object *r = json_object_array_get_idx(arr, i);
        const char *path = json_object_get_string(json_object_object_get(r, "path"));
        assert_int_equal(strncmp(path, "/api/v1/", 8), 0);
        if (strstr(path, "{id}"))
            saw_guild = 1;
    }
    assert_true(saw_guild);
    json_object_put(arr);
    gh_buf_cleanup(&b);
}

static void test_helpers(void **state)
{
    json_object *o;
    (void)state;
    o = gh_api_snowflake(1234567890123456789ull);
    assert_string_equal(json_object_get_string(o), "1234567890123456789");
    json_object_put(o);
    assert_null(gh_api_iso_or_null(0));
    o = gh_api_iso_or_null(1000);
    assert_string_equal(json_object_get_string(o), "1970-01-01T00:00:01.000Z");
    json_object_put(o);
    assert_null(gh_api_str_or_null(NULL));
    assert_int_equal(gh_access_from_entry(NULL), GH_ACCESS_NONE);
    o = json_tokener_parse("{\"owner\":false,\"permissions\":\"32\"}");
    assert_int_equal(gh_access_from_entry(o), GH_ACCESS_ADMIN);
    json_object_put(o);
    o = json_tokener_parse("{\"owner\":true,\"permissions\":\"0\"}");
    assert_int_equal(gh_access_from_entry(o), GH_ACCESS_OWNER);
    json_object_put(o);
    o = json_tokener_parse("{\"permissions\":\"2048\"}");
    assert_int_equal(gh_access_from_entry(o), GH_ACCESS_NONE);
    json_object_put(o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_query),
        cmocka_unit_test(test_cookies),
        cmocka_unit_test(test_urlencode),
        cmocka_unit_test(test_not_found_and_method),
        cmocka_unit_test(test_refused_before_stores),
        cmocka_unit_test(test_routes_table),
        cmocka_unit_test(test_helpers),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
