/*
 * ngx_kserve: Triton's shared memory extensions, the pure parts
 * (ksv_shm.h).
 */

#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "ksv_shm.h"


static int ksv_shm_uint(json_t *root, const char *field, int required,
    uint64_t *value, char *err, size_t errlen);
static int ksv_shm_base64(const char *in, size_t len, uint8_t *out,
    size_t cap, size_t *outlen);


int
ksv_shm_uri(const char *p, size_t len, const char **name,
    size_t *name_len)
{
    size_t       n;
    const char  *end, *s;

    end = p + len;
    *name = NULL;
    *name_len = 0;

    if ((size_t) (end - p) > 8 && memcmp(p, "/region/", 8) == 0) {
        p += 8;
        s = p;

        while (p < end && *p != '/') {
            p++;
        }

        if (p == s || p == end) {
            return -1;
        }

        *name = s;
        *name_len = (size_t) (p - s);
    }

    n = (size_t) (end - p);

    if (n == 7 && memcmp(p, "/status", 7) == 0) {
        return KSV_SHM_STATUS;
    }

    if (n == 9 && memcmp(p, "/register", 9) == 0) {
        return KSV_SHM_REGISTER;
    }

    if (n == 11 && memcmp(p, "/unregister", 11) == 0) {
        return KSV_SHM_UNREGISTER;
    }

    return -1;
}


int
ksv_shm_parse_register(const void *body, size_t len, int cuda,
    ksv_shm_register_t *req, char *err, size_t errlen)
{
    int           rc;
    json_t       *root, *v, *b64;
    size_t        n, klen;
    uint64_t      id;
    json_error_t  jerr;

    memset(req, 0, sizeof(ksv_shm_register_t));

    if (len == 0) {
        root = json_object();

    } else {
        root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    }

    if (root == NULL) {
        snprintf(err, errlen, "failed to parse the request JSON buffer: %s "
                 "at %d", jerr.text, jerr.position);
        return -1;
    }

    rc = -1;

    if (!json_is_object(root)) {
        snprintf(err, errlen, "failed to parse the request JSON buffer: "
                 "the request must be a JSON object");
        goto done;
    }

    if (cuda) {
        v = json_object_get(root, "raw_handle");

        if (v == NULL) {
            snprintf(err, errlen, "Shared memory register request has no "
                     "'raw_handle' field");
            goto done;
        }

        b64 = json_is_object(v) ? json_object_get(v, "b64") : NULL;

        if (!json_is_string(b64)) {
            snprintf(err, errlen, "Shared memory register request has no "
                     "'raw_handle.b64' string");
            goto done;
        }

        if (ksv_shm_uint(root, "byte_size", 1, &req->byte_size, err,
                         errlen) != 0
            || ksv_shm_uint(root, "device_id", 1, &id, err, errlen) != 0)
        {
            goto done;
        }

        if (id > INT32_MAX) {
            snprintf(err, errlen, "'device_id' is out of range");
            goto done;
        }

        req->device_id = (int64_t) id;

        if (ksv_shm_base64(json_string_value(b64), json_string_length(b64),
                           req->handle, sizeof(req->handle), &n) != 0)
        {
            snprintf(err, errlen, "'raw_handle' must be a valid base64 "
                     "encoded cudaIpcMemHandle_t");
            goto done;
        }

        if (n != KSV_SHM_CUDA_HANDLE) {
            snprintf(err, errlen, "'raw_handle' must be a valid base64 "
                     "encoded cudaIpcMemHandle_t");
            goto done;
        }

        rc = 0;
        goto done;
    }

    v = json_object_get(root, "key");

    if (v == NULL) {
        snprintf(err, errlen, "Shared memory register request has no 'key' "
                 "field");
        goto done;
    }

    if (!json_is_string(v)) {
        snprintf(err, errlen, "Shared memory register request: 'key' must "
                 "be a string");
        goto done;
    }

    klen = json_string_length(v);

    if (klen > KSV_SHM_NAME_MAX) {
        snprintf(err, errlen, "Shared memory register request: 'key' is "
                 "longer than %d bytes", KSV_SHM_NAME_MAX);
        goto done;
    }

    memcpy(req->key, json_string_value(v), klen);
    req->key[klen] = '\0';

    if (ksv_shm_uint(root, "offset", 0, &req->offset, err, errlen) != 0
        || ksv_shm_uint(root, "byte_size", 1, &req->byte_size, err, errlen)
           != 0)
    {
        goto done;
    }

    rc = 0;

done:

    json_decref(root);
    return rc;
}


/* A non-negative integer field (Triton's AsUInt). */
static int
ksv_shm_uint(json_t *root, const char *field, int required, uint64_t *value,
    char *err, size_t errlen)
{
    json_t  *v;

    *value = 0;
    v = json_object_get(root, field);

    if (v == NULL) {
        if (required) {
            snprintf(err, errlen, "Shared memory register request has no "
                     "'%s' field", field);
            return -1;
        }

        return 0;
    }

    if (!json_is_integer(v) || json_integer_value(v) < 0) {
        snprintf(err, errlen, "Shared memory register request: '%s' must be "
                 "a non-negative integer", field);
        return -1;
    }

    *value = (uint64_t) json_integer_value(v);
    return 0;
}


/* Standard base64 with padding; -1 on a bad character, length or more
 * than cap bytes. */
static int
ksv_shm_base64(const char *in, size_t len, uint8_t *out, size_t cap,
    size_t *outlen)
{
    int       c, k, pad;
    size_t    i, n;
    uint32_t  acc;

    if (len % 4 != 0) {
        return -1;
    }

    n = 0;
    acc = 0;
    pad = 0;

    for (i = 0; i < len; i++) {
        c = (unsigned char) in[i];

        if (c == '=') {
            if (i + 2 < len) {
                return -1;      /* '=' only in the last two places */
            }

            pad++;
            k = 0;

        } else if (pad) {
            return -1;

        } else if (c >= 'A' && c <= 'Z') {
            k = c - 'A';

        } else if (c >= 'a' && c <= 'z') {
            k = c - 'a' + 26;

        } else if (c >= '0' && c <= '9') {
            k = c - '0' + 52;

        } else if (c == '+') {
            k = 62;

        } else if (c == '/') {
            k = 63;

        } else {
            return -1;
        }

        acc = (acc << 6) | (uint32_t) k;

        if (i % 4 == 3) {
            if (n + 3 - pad > cap) {
                return -1;
            }

            out[n++] = (uint8_t) (acc >> 16);

            if (pad < 2) {
                out[n++] = (uint8_t) (acc >> 8);
            }

            if (pad < 1) {
                out[n++] = (uint8_t) acc;
            }

            acc = 0;
        }
    }

    *outlen = n;
    return 0;
}


int
ksv_shm_key_reserved(const char *key, size_t len)
{
    size_t  n;

    while (len > 0 && *key == '/') {
        key++;
        len--;
    }

    n = sizeof(KSV_SHM_RESERVED_PREFIX) - 1;

    return len >= n && memcmp(key, KSV_SHM_RESERVED_PREFIX, n) == 0;
}
