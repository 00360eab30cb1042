/*
 * ngx_kserve: a KServe v2 request's own fields as text, without parsing
 * its tensors (nginx-free, so it can be unit-tested and fuzzed on its
 * own).
 *
 * Routing rules, sticky keys, log lines and conditions look at a few
 * top-level members of a request ("id", "parameters") before the model
 * that will parse it is even chosen, so ksv_infer_parse() cannot serve
 * them: it needs the model's configuration.  These functions only scan:
 * they find a member's value as a span of the JSON text, skipping the
 * others (the "inputs" data) byte by byte, and build nothing.  They check
 * the structure they walk (strings end, brackets match, at most
 * KSV_FIELDS_MAX_DEPTH deep) but not every detail of the grammar: the
 * full parse that follows rejects what is not JSON.
 *
 * A member that appears twice: the first is taken here, and the full
 * parse rejects the request.
 */

#ifndef KSV_REQUEST_FIELDS_H
#define KSV_REQUEST_FIELDS_H

#include <stddef.h>
#include <stdint.h>


#define KSV_FIELDS_MAX_DEPTH  128


typedef struct {
    const char  *id;                /* raw JSON value of "id", or NULL */
    size_t       id_len;
    const char  *parameters;        /* raw JSON value of "parameters" */
    size_t       parameters_len;
} ksv_request_fields_t;


/*
 * Scans json (a whole JSON body, or the JSON header of Triton's binary
 * tensor extension) for the top-level "id" and "parameters".  Returns 0,
 * or -1 (f zeroed) when json is not a JSON object.
 */
int ksv_request_fields(const char *json, size_t len, ksv_request_fields_t *f);

/*
 * The raw value of the member name (name_len bytes, compared with the
 * member's unescaped name) of the JSON object obj, as
 * ksv_request_fields() found "parameters".  Returns 0 with *value and
 * *value_len, or -1 when obj has no such member or is not an object.
 */
int ksv_json_member(const char *obj, size_t len, const char *name,
    size_t name_len, const char **value, size_t *value_len);

/*
 * A raw JSON value as text: a string's characters, unescaped to UTF-8;
 * a number, true or false as written; an object or an array as its JSON
 * text.  out has room for len bytes (the text is never longer).  Returns
 * the text's length, or -1 for null and for a string with a bad escape.
 */
int64_t ksv_json_text(const char *value, size_t len, char *out);


#endif /* KSV_REQUEST_FIELDS_H */
