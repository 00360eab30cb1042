/*
 * libFuzzer target for common/ksv_json_read.c: the body of a load
 * request (POST /v2/repository/models/{m}/load) as any client may send
 * it, forwarded by nginx to the worker untouched.
 *
 * A parse either fails with an "offset N: message" error or yields a
 * tree; the worker then reads "parameters", decodes every "file:" value
 * as base64 and turns the "config" string, itself JSON, into protobuf
 * text that the config.pbtxt parser must take or refuse, never crash
 * on.  Then the whole input is tried as a model configuration directly.
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ksv_json_read.h"
#include "ksv_pbtxt.h"


#define FUZZ_CHECK(cond)                                                     \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, "%s:%d: invariant failed: %s\n",                 \
                    __FILE__, __LINE__, #cond);                              \
            abort();                                                         \
        }                                                                    \
    } while (0)


static void
fuzz_config(const char *text, size_t len)
{
    char                 err[256];
    ksv_arena_t          arena, parsed;
    ksv_writer_t         w;
    ksv_jnode_t         *tree;
    ksv_model_config_t   config;

    ksv_arena_init(&arena);
    ksv_writer_init(&w);
    if (ksv_json_parse(text, len, &arena, &tree, err, sizeof(err)) == 0) {
        FUZZ_CHECK(tree != NULL);
        if (ksv_json_to_pbtxt(tree, &w, err, sizeof(err)) == 0) {
            ksv_arena_init(&parsed);
            if (ksv_pbtxt_parse(w.buf ? (const char *) w.buf : "", w.len,
                                "override", &parsed, &config, err,
                                sizeof(err), NULL, NULL) == 0)
            {
                (void) ksv_pbtxt_defaults(&config, "m", &parsed, err,
                                          sizeof(err));
            }
            ksv_arena_free(&parsed);
        }
    } else {
        FUZZ_CHECK(strncmp(err, "offset ", 7) == 0);
    }
    ksv_writer_free(&w);
    ksv_arena_free(&arena);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    long                 n;
    char                 err[256];
    uint8_t             *out;
    ksv_arena_t          arena;
    ksv_jnode_t         *tree, *params, *c;

    ksv_arena_init(&arena);
    if (ksv_json_parse((const char *) data, size, &arena, &tree, err,
                       sizeof(err)) == 0)
    {
        params = ksv_json_get(tree, "parameters");
        for (c = params != NULL ? params->child : NULL; c != NULL;
             c = c->next)
        {
            FUZZ_CHECK(params->type == KSV_JSON_OBJECT);
            if (c->type != KSV_JSON_STRING) {
                continue;
            }
            FUZZ_CHECK(c->text[c->len] == '\0');
            if (c->keylen > 5 && memcmp(c->key, "file:", 5) == 0) {
                out = malloc(c->len * 3 / 4 + 3);
                FUZZ_CHECK(out != NULL);
                n = ksv_base64_decode(c->text, c->len, out);
                FUZZ_CHECK(n <= (long) (c->len * 3 / 4 + 3));
                free(out);
            } else if (c->keylen == 6 && memcmp(c->key, "config", 6) == 0) {
                fuzz_config(c->text, c->len);
            }
        }
    }
    ksv_arena_free(&arena);

    fuzz_config((const char *) data, size);
    return 0;
}
