/*
 * Unit tests for common/ksv_status.c: error codes, their HTTP statuses,
 * and the one text of an unknown model.
 */

#include <string.h>

#include "ksv_status.h"
#include "ksv_test.h"


static void
test_http_statuses(void)
{
    CHECK(ksv_status_http(KSV_ERR_INVALID_ARG) == 400);
    CHECK(ksv_status_http(KSV_ERR_NOT_FOUND) == 404);
    CHECK(ksv_status_http(KSV_ERR_UNAVAILABLE) == 503);
    CHECK(ksv_status_http(KSV_ERR_COUNT) == 500);
    CHECK(strcmp(ksv_status_name(KSV_ERR_UNSUPPORTED), "UNSUPPORTED") == 0);
}


static void
test_unknown_model_in_tritons_words(void)
{
    char    buf[KSV_UNKNOWN_MODEL_LEN], name[400];
    size_t  n;

    n = ksv_unknown_model(buf, sizeof(buf), "nope", 4, NULL, 0);
    CHECK(strcmp(buf, "Request for unknown model: 'nope' is not found") == 0);
    CHECK(n == strlen(buf));

    n = ksv_unknown_model(buf, sizeof(buf), "simple", 6, "7", 1);
    CHECK(strcmp(buf, "Request for unknown model: 'simple' version 7 is "
                      "not found") == 0);

    /* names need no NUL; long ones are cut, the text still whole */
    memset(name, 'a', sizeof(name));
    n = ksv_unknown_model(buf, sizeof(buf), name, sizeof(name), name, 300);
    CHECK(n < sizeof(buf) && strstr(buf, " is not found") != NULL);

    /* a short buffer truncates, NUL-terminated */
    n = ksv_unknown_model(buf, 10, "simple", 6, NULL, 0);
    CHECK(n == 9 && strcmp(buf, "Request f") == 0);
}


int
main(void)
{
    test_http_statuses();
    test_unknown_model_in_tritons_words();

    KSV_TEST_END();
}
