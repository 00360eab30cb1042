/*
 * ngx_kserve: the tensor datatype table (see ksv_datatype.h).
 */

#include <string.h>

#include "ksv_datatype.h"


typedef struct {
    const char  *name;
    const char  *config_name;
    const char  *numpy;
    size_t       size;
} ksv_datatype_info_t;


/* Indexed by ksv_datatype_t. */
static const ksv_datatype_info_t  ksv_datatypes[KSV_TYPE_COUNT] = {
    { "INVALID", "TYPE_INVALID", "",       0 },
    { "BOOL",    "TYPE_BOOL",    "|b1",    1 },
    { "UINT8",   "TYPE_UINT8",   "|u1",    1 },
    { "UINT16",  "TYPE_UINT16",  "<u2",    2 },
    { "UINT32",  "TYPE_UINT32",  "<u4",    4 },
    { "UINT64",  "TYPE_UINT64",  "<u8",    8 },
    { "INT8",    "TYPE_INT8",    "|i1",    1 },
    { "INT16",   "TYPE_INT16",   "<i2",    2 },
    { "INT32",   "TYPE_INT32",   "<i4",    4 },
    { "INT64",   "TYPE_INT64",   "<i8",    8 },
    { "FP16",    "TYPE_FP16",    "<f2",    2 },
    { "FP32",    "TYPE_FP32",    "<f4",    4 },
    { "FP64",    "TYPE_FP64",    "<f8",    8 },
    { "BYTES",   "TYPE_STRING",  "object", 0 },
    { "BF16",    "TYPE_BF16",    "<u2",    2 },
};


static int
ksv_name_eq(const char *a, size_t alen, const char *cstr)
{
    return strlen(cstr) == alen && memcmp(a, cstr, alen) == 0;
}


ksv_datatype_t
ksv_datatype_from_name(const char *name, size_t len)
{
    int  i;

    for (i = 1; i < KSV_TYPE_COUNT; i++) {
        if (ksv_name_eq(name, len, ksv_datatypes[i].name)) {
            return (ksv_datatype_t) i;
        }
    }

    return KSV_TYPE_INVALID;
}


ksv_datatype_t
ksv_datatype_from_config_name(const char *name, size_t len)
{
    int  i;

    for (i = 1; i < KSV_TYPE_COUNT; i++) {
        if (ksv_name_eq(name, len, ksv_datatypes[i].config_name)) {
            return (ksv_datatype_t) i;
        }
    }

    return KSV_TYPE_INVALID;
}


const char *
ksv_datatype_name(ksv_datatype_t dt)
{
    return (unsigned) dt < KSV_TYPE_COUNT ? ksv_datatypes[dt].name
                                          : ksv_datatypes[0].name;
}


const char *
ksv_datatype_config_name(ksv_datatype_t dt)
{
    return (unsigned) dt < KSV_TYPE_COUNT ? ksv_datatypes[dt].config_name
                                          : ksv_datatypes[0].config_name;
}


size_t
ksv_datatype_size(ksv_datatype_t dt)
{
    return (unsigned) dt < KSV_TYPE_COUNT ? ksv_datatypes[dt].size : 0;
}


const char *
ksv_datatype_numpy(ksv_datatype_t dt)
{
    return (unsigned) dt < KSV_TYPE_COUNT ? ksv_datatypes[dt].numpy : "";
}
