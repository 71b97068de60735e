/*
 * Unit tests for hg_api's description: the routes served and the
 * OpenAPI document built in (api/openapi.json) say the same, and the
 * document is valid JSON with what clients need (paths, roles, the error
 * shape). The routes themselves are tried over HTTP in tests/t/test_api.py.
 */

#include "hg_core.h"

#include <setjmp.h>
#include <cmocka.h>

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

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_description_matches_the_routes),
        cmocka_unit_test(test_description_is_openapi),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
