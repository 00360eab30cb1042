/*
 * Unit tests for ngx_module/ksv_prometheus.c: the Prometheus text the
 * kserve_metrics endpoint renders from the worker's statistics.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ksv_prometheus.h"
#include "ksv_test.h"


static ksv_writer_t  w;


static const char *
text(void)
{
    ksv_put_u8(&w, '\0');
    w.len--;
    return (const char *) w.buf;
}


/* The number of lines of s that start with prefix. */

static int
lines(const char *s, const char *prefix)
{
    int          n;
    size_t       len;
    const char  *p;

    n = 0;
    len = strlen(prefix);

    for (p = s; *p; p++) {
        if ((p == s || p[-1] == '\n') && strncmp(p, prefix, len) == 0) {
            n++;
        }
    }

    return n;
}


static void
test_family_and_labels(void)
{
    ksv_writer_init(&w);
    ksv_prom_family(&w, "x_total", "counter", "Things.");
    CHECK(strcmp(text(), "# HELP x_total Things.\n# TYPE x_total counter\n")
          == 0);
    ksv_writer_free(&w);

    /* backslash, double quote and newline are the escapes; UTF-8 stays */
    ksv_writer_init(&w);
    ksv_prom_label_value(&w, "a\\b\"c\nd\xc3\xa9", 9);
    CHECK(strcmp(text(), "\"a\\\\b\\\"c\\nd\xc3\xa9\"") == 0);
    ksv_writer_free(&w);

    ksv_writer_init(&w);
    ksv_prom_label_value(&w, "", 0);
    ksv_prom_escape(&w, "plain", 5);
    CHECK(strcmp(text(), "\"\"plain") == 0);
    ksv_writer_free(&w);
}


static void
test_model_stats(void)
{
    const char         *t;
    ksv_stats_t         st;
    ksv_model_stats_t   models[2];

    memset(models, 0, sizeof(models));

    models[0].name = ksv_str_c("simple");
    models[0].version = ksv_str_c("1");
    models[0].inference_count = 12;
    models[0].execution_count = 4;
    models[0].success = (ksv_stat_duration_t) { 6, 1999999 };
    models[0].fail = (ksv_stat_duration_t) { 2, 5000 };
    models[0].queue = (ksv_stat_duration_t) { 6, 999 };
    models[0].compute_input = (ksv_stat_duration_t) { 6, 3000 };
    models[0].compute_infer = (ksv_stat_duration_t) { 6, UINT64_MAX };
    models[0].compute_output = (ksv_stat_duration_t) { 6, 7000 };

    models[1].name = ksv_str_c("we\"ird");
    models[1].version = ksv_str_c("3");

    st.nmodels = 2;
    st.models = models;

    ksv_writer_init(&w);
    ksv_prom_model_stats(&w, &st);
    t = text();

    /* each family once, its samples right after its TYPE line */
    CHECK(lines(t, "# HELP ") == 9);
    CHECK(lines(t, "# TYPE ") == 9);
    CHECK(lines(t, "nv_") == 18);

    CHECK(strstr(t,
          "# HELP nv_inference_request_success Number of successful "
          "inference requests, all batch sizes\n"
          "# TYPE nv_inference_request_success counter\n"
          "nv_inference_request_success{model=\"simple\",version=\"1\"} 6\n"
          "nv_inference_request_success{model=\"we\\\"ird\",version=\"3\"} 0\n"
          "# HELP nv_inference_request_failure ") != NULL);

    CHECK(strstr(t, "\nnv_inference_request_failure{model=\"simple\","
                    "version=\"1\"} 2\n") != NULL);
    CHECK(strstr(t, "\nnv_inference_count{model=\"simple\",version=\"1\"} "
                    "12\n") != NULL);
    CHECK(strstr(t, "\nnv_inference_exec_count{model=\"simple\","
                    "version=\"1\"} 4\n") != NULL);

    /* nanoseconds to whole microseconds, as Triton counts them */
    CHECK(strstr(t, "\nnv_inference_request_duration_us{model=\"simple\","
                    "version=\"1\"} 1999\n") != NULL);
    CHECK(strstr(t, "\nnv_inference_queue_duration_us{model=\"simple\","
                    "version=\"1\"} 0\n") != NULL);
    CHECK(strstr(t, "\nnv_inference_compute_input_duration_us{model="
                    "\"simple\",version=\"1\"} 3\n") != NULL);
    CHECK(strstr(t, "\nnv_inference_compute_infer_duration_us{model="
                    "\"simple\",version=\"1\"} 18446744073709551\n")
          != NULL);
    CHECK(strstr(t, "\nnv_inference_compute_output_duration_us{model="
                    "\"simple\",version=\"1\"} 7\n") != NULL);
    ksv_writer_free(&w);

    /* no model: the families are still declared */
    st.nmodels = 0;
    ksv_writer_init(&w);
    ksv_prom_model_stats(&w, &st);
    t = text();
    CHECK(lines(t, "# TYPE ") == 9);
    CHECK(lines(t, "nv_") == 0);
    ksv_writer_free(&w);
}


int
main(void)
{
    test_family_and_labels();
    test_model_stats();

    KSV_TEST_END();
}
