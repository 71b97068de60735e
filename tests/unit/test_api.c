/*
 * Unit tests for hg_api's description: the routes served and the
 * OpenAPI document built in (api/openapi.json) say the same, and the
 * document is valid JSON with what clients need (paths, roles, the error
 * shape). The routes themselves are tried over HTTP in tests/t/test_api.py.
 */

#include "hg_core.h"

#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "hg_api.h"
#include "hg_openapi.h"

static void
test_description_matches_the_routes(void **state)
{
    char err[256] = "";

    HG_UNUSED(state);
    if (hg_api_check_description(err, sizeof(err)) != HG_OK) {
        fail_msg("%s", err);
    }
}

static void
test_description_is_openapi(void **state)
{
    json_error_t jerr;
    json_t *doc = json_loads(hg_openapi_text, 0, &jerr);
    const char *path, *method;
    json_t *ops, *op;

    HG_UNUSED(state);
    assert_non_null(doc);
    assert_string_equal(json_string_value(json_object_get(doc, "openapi")),
                        "3.0.3");
    assert_non_null(json_object_get(json_object_get(json_object_get(
        doc, "components"), "schemas"), "Error"));
    json_object_foreach(json_object_get(doc, "paths"), path, ops) {
        json_object_foreach(ops, method, op) {
            assert_true(json_is_string(json_object_get(op,
                                                       "x-hourglass-role")));
            assert_true(json_is_object(json_object_get(op, "responses")));
        }
    }
    json_decref(doc);
}

/* The description held against the routes, with what a bad one says. */
static void
expect_bad_description(const char *text, const char *says)
{
    char err[256] = "";

    assert_int_equal(hg_api_check_description_of(text, err, sizeof(err)),
                     HG_ERROR);
    if (strstr(err, says) == NULL) {
        fail_msg("\"%s\" does not say \"%s\"", err, says);
    }
}

static void
test_a_description_that_differs_is_named(void **state)
{
    json_t *doc, *paths;
    char *text;

    HG_UNUSED(state);
    expect_bad_description("not json", "no paths");
    expect_bad_description("{\"paths\": []}", "no paths");
    expect_bad_description("{\"paths\": {}}", "is served but not described");

    /* a role that differs */
    doc = json_loads(hg_openapi_text, 0, NULL);
    paths = json_object_get(doc, "paths");
    json_object_set_new(json_object_get(json_object_get(paths,
                                                        "/api/v1/jobs"),
                                        "post"),
                        "x-hourglass-role", json_string("read"));
    text = json_dumps(doc, 0);
    expect_bad_description(text, "POST /api/v1/jobs: described with role "
                           "read, served with write");
    free(text);
    json_object_del(json_object_get(json_object_get(paths, "/api/v1/jobs"),
                                    "post"), "x-hourglass-role");
    text = json_dumps(doc, 0);
    expect_bad_description(text, "described with role none");
    free(text);
    json_decref(doc);

    /* a route described that is not served */
    doc = json_loads(hg_openapi_text, 0, NULL);
    paths = json_object_get(doc, "paths");
    json_object_set_new(json_object_get(paths, "/api/v1/jobs"), "delete",
                        json_pack("{s:s}", "x-hourglass-role", "admin"));
    text = json_dumps(doc, 0);
    expect_bad_description(text, "delete /api/v1/jobs is described but not "
                           "served");
    free(text);
    json_decref(doc);
}

static void
test_listen(void **state)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    char err[256] = "", host[300];
    int fd;

    HG_UNUSED(state);
    fd = hg_api_listen("127.0.0.1:0", err, sizeof(err));
    assert_true(fd >= 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *) &ss, &len), 0);
    assert_int_equal(ss.ss_family, AF_INET);
    /* the same port again: in use, and said */
    snprintf(host, sizeof(host), "127.0.0.1:%d",
             ntohs(((struct sockaddr_in *) &ss)->sin_port));
    assert_int_equal(hg_api_listen(host, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "Address already in use"));
    close(fd);

    fd = hg_api_listen("[::1]:0", err, sizeof(err));
    if (fd >= 0) {                      /* a host without IPv6 says so */
        len = sizeof(ss);
        assert_int_equal(getsockname(fd, (struct sockaddr *) &ss, &len), 0);
        assert_int_equal(ss.ss_family, AF_INET6);
        close(fd);
    }
    assert_int_equal(hg_api_listen("8080", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "HOST:PORT expected"));
    assert_int_equal(hg_api_listen("localhost:8080", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "IPv4 or IPv6 address"));
    memset(host, 'a', sizeof(host));
    memcpy(host + 70, ":80", 4);
    assert_int_equal(hg_api_listen(host, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "host too long"));
}

static struct sockaddr_storage
addr_of(const char *text)
{
    struct sockaddr_storage ss;

    memset(&ss, 0, sizeof(ss));
    if (strchr(text, ':') != NULL) {
        ss.ss_family = AF_INET6;
        assert_int_equal(inet_pton(AF_INET6, text,
                         &((struct sockaddr_in6 *) &ss)->sin6_addr), 1);
    } else {
        ss.ss_family = AF_INET;
        assert_int_equal(inet_pton(AF_INET, text,
                         &((struct sockaddr_in *) &ss)->sin_addr), 1);
    }
    return ss;
}

static void
expect_in(const char *cidr, const char *addr, bool want)
{
    struct sockaddr_storage ss = addr_of(addr);

    if (hg_api_cidr_has(cidr, (struct sockaddr *) &ss) != want) {
        fail_msg("%s should %sbe in %s", addr, want ? "" : "not ", cidr);
    }
}

static void
test_allow_lists(void **state)
{
    HG_UNUSED(state);
    expect_in("127.0.0.0/8", "127.1.2.3", true);
    expect_in("127.0.0.0/8", "128.0.0.1", false);
    expect_in("10.1.2.3", "10.1.2.3", true);        /* no prefix: the host */
    expect_in("10.1.2.3", "10.1.2.4", false);
    expect_in("0.0.0.0/0", "203.0.113.9", true);
    expect_in("192.168.1.0/23", "192.168.0.77", true);
    expect_in("192.168.1.0/23", "192.168.2.1", false);
    expect_in("10.0.0.0/13", "10.7.255.255", true);
    expect_in("10.0.0.0/13", "10.8.0.0", false);
    expect_in("::1/128", "::1", true);
    expect_in("::1/128", "::2", false);
    expect_in("2001:db8::/32", "2001:db8:ffff::1", true);
    expect_in("2001:db8::/32", "2001:db9::1", false);
    expect_in("::/0", "fe80::1", true);
    /* IPv4 through a v4-mapped IPv6 socket */
    expect_in("127.0.0.0/8", "::ffff:127.0.0.1", true);
    expect_in("10.0.0.0/8", "::ffff:127.0.0.1", false);
    /* families do not mix otherwise */
    expect_in("::1/128", "127.0.0.1", false);
    expect_in("127.0.0.0/8", "::1", false);
    /* what is no network matches nothing */
    expect_in("127.0.0.0/33", "127.0.0.1", false);
    expect_in("127.0.0.0/-1", "127.0.0.1", false);
    expect_in("::1/129", "::1", false);
    expect_in("not an address", "127.0.0.1", false);
    expect_in("1234567890123456789012345678901234567890123456789012345678901"
              "234567890/8", "127.0.0.1", false);
}

static void
expect_tls(hg_conf_t *conf, const char *cert, const char *key, int want,
           const char *says)
{
    char err[512] = "";

    conf->api.tls_cert = (char *) cert;
    conf->api.tls_key = (char *) key;
    assert_int_equal(hg_api_check_tls(conf, err, sizeof(err)), want);
    if (says != NULL && strstr(err, says) == NULL) {
        fail_msg("\"%s\" does not say \"%s\"", err, says);
    }
}

/* -t's look at api.tls: files that can be read and look like PEM. */
static void
test_tls_files(void **state)
{
    char dir[] = "/tmp/hg_test_api.XXXXXX", pem[64], text[64];
    hg_conf_t conf;
    FILE *f;

    HG_UNUSED(state);
    assert_non_null(mkdtemp(dir));
    snprintf(pem, sizeof(pem), "%s/a.pem", dir);
    snprintf(text, sizeof(text), "%s/a.txt", dir);
    f = fopen(pem, "w");
    assert_non_null(f);
    fputs("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
          f);
    fclose(f);
    f = fopen(text, "w");
    assert_non_null(f);
    fputs("not a certificate\n", f);
    fclose(f);

    memset(&conf, 0, sizeof(conf));
    expect_tls(&conf, "/nope", "/nope", HG_OK, NULL);   /* no api */
    conf.api.enabled = true;
    expect_tls(&conf, "/nope", "/nope", HG_OK, NULL);   /* no tls */
    conf.api.tls = true;
    expect_tls(&conf, pem, pem, HG_OK, NULL);
    expect_tls(&conf, "/nope/c.pem", pem, HG_ERROR,
               "api.tls.cert /nope/c.pem: No such file");
    expect_tls(&conf, pem, "/nope/k.pem", HG_ERROR,
               "api.tls.key /nope/k.pem: No such file");
    expect_tls(&conf, pem, text, HG_ERROR, "not a PEM file");
    expect_tls(&conf, dir, pem, HG_ERROR, "api.tls.cert");  /* a folder */
    unlink(pem);
    unlink(text);
    rmdir(dir);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_description_matches_the_routes),
        cmocka_unit_test(test_description_is_openapi),
        cmocka_unit_test(test_a_description_that_differs_is_named),
        cmocka_unit_test(test_listen),
        cmocka_unit_test(test_allow_lists),
        cmocka_unit_test(test_tls_files),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
