/*
 * libFuzzer target for the bodies of Triton's trace and logging
 * extensions (POST /v2[/models/m]/trace/setting, POST /v2/logging):
 * ngx_module/ksv_trace.c and ngx_module/ksv_logging.c.
 *
 * The first byte picks the endpoint (trace for every model, trace for
 * one, logging); the rest is the body.  A refused body changes nothing;
 * whatever the settings become, the JSON answered for them is valid
 * JSON, and sampling never takes a count below -1.  A fourth choice
 * renders the rest as a tensor of the datatype the second byte picks
 * (trace_level TENSORS: an output as an instance sent it), which must
 * be valid JSON too.
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "ksv_datatype.h"
#include "ksv_logging.h"
#include "ksv_trace.h"


#define FUZZ_CHECK(cond)                                                     \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, "%s:%d: invariant failed: %s\n",                 \
                    __FILE__, __LINE__, #cond);                              \
            abort();                                                         \
        }                                                                    \
    } while (0)


static void
check_json(ksv_writer_t *w)
{
    json_t  *doc;

    FUZZ_CHECK(!w->failed);
    doc = json_loadb((const char *) w->buf, w->len, 0, NULL);
    FUZZ_CHECK(doc != NULL && json_is_object(doc));
    json_decref(doc);
    ksv_writer_free(w);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int                        status, rc, i;
    char                       err[512];
    uint32_t                   nlen;
    const char                *name;
    ksv_writer_t               w;
    ksv_trace_view_t           v;
    ksv_log_settings_t         ls, before_ls;
    ksv_trace_setting_t        initial;
    static ksv_trace_table_t   t, before;

    if (size < 1) {
        return 0;
    }

    if (data[0] % 4 == 3) {
        ksv_tensor_t  tensor;
        json_t       *doc;

        memset(&tensor, 0, sizeof(tensor));
        tensor.name = ksv_str_lit("OUTPUT0");
        tensor.datatype = (size > 1) ? data[1] % KSV_TYPE_COUNT : 0;
        tensor.ndims = 1;
        tensor.dims[0] = (int64_t) size;

        ksv_writer_init(&w);
        ksv_put_u8(&w, '[');
        ksv_trace_tensor_json(&w, 1, "TENSOR_BACKEND_OUTPUT", &tensor,
                              data + 1, size - 1);
        w.buf[1] = ' ';                 /* the leading ',' */
        ksv_put_u8(&w, ']');
        FUZZ_CHECK(!w.failed);
        doc = json_loadb((const char *) w.buf, w.len, JSON_ALLOW_NUL, NULL);
        FUZZ_CHECK(doc != NULL && json_is_array(doc));
        json_decref(doc);
        ksv_writer_free(&w);
        return 0;
    }

    if (data[0] % 4 == 2) {
        ksv_log_settings_default(&ls);
        before_ls = ls;
        rc = ksv_logging_update(&ls, data + 1, size - 1, err, sizeof(err),
                                &status);
        if (rc != 0) {
            FUZZ_CHECK(memcmp(&ls, &before_ls, sizeof(ls)) == 0);
            FUZZ_CHECK(status >= 400 && status < 600 && err[0] != '\0');
        }
        ksv_writer_init(&w);
        ksv_logging_json(&w, &ls);
        check_json(&w);
        return 0;
    }

    memset(&initial, 0, sizeof(initial));
    initial.level = KSV_TRACE_TIMESTAMPS;
    initial.rate = 1;
    initial.count = -1;
    ksv_trace_table_init(&t, &initial);

    name = (data[0] % 4 == 1) ? "simple" : "";
    nlen = (uint32_t) strlen(name);

    before = t;
    rc = ksv_trace_update(&t, name, nlen, data + 1, size - 1, err,
                          sizeof(err), &status);
    if (rc != 0) {
        FUZZ_CHECK(memcmp(&t, &before, sizeof(t)) == 0);
        FUZZ_CHECK(status == 400 || status == 501);
    }

    for (i = 0; i < 4; i++) {
        (void) ksv_trace_sample(&t, name, nlen, &v);
        FUZZ_CHECK(v.count >= -1);
    }

    ksv_writer_init(&w);
    ksv_trace_settings_json(&w, &t, name, nlen, "/tmp/trace.json");
    check_json(&w);

    return 0;
}
