/*
 * ngx_kserve: the tensor datatype table.
 *
 * One definition of every KServe v2 datatype, shared by the nginx module
 * (JSON parsing, validation) and the worker (config.pbtxt, backends).
 * The numeric values travel on the wire (docs/protocol.md): never reorder.
 */

#ifndef KSV_DATATYPE_H
#define KSV_DATATYPE_H

#include <stddef.h>
#include <stdint.h>


typedef enum {
    KSV_TYPE_INVALID = 0,
    KSV_TYPE_BOOL,
    KSV_TYPE_UINT8,
    KSV_TYPE_UINT16,
    KSV_TYPE_UINT32,
    KSV_TYPE_UINT64,
    KSV_TYPE_INT8,
    KSV_TYPE_INT16,
    KSV_TYPE_INT32,
    KSV_TYPE_INT64,
    KSV_TYPE_FP16,
    KSV_TYPE_FP32,
    KSV_TYPE_FP64,
    KSV_TYPE_BYTES,
    KSV_TYPE_BF16,
    KSV_TYPE_COUNT
} ksv_datatype_t;


/* "FP32" -> KSV_TYPE_FP32; KSV_TYPE_INVALID when unknown. */
ksv_datatype_t ksv_datatype_from_name(const char *name, size_t len);

/* config.pbtxt spelling: "TYPE_FP32", "TYPE_STRING" (= BYTES). */
ksv_datatype_t ksv_datatype_from_config_name(const char *name, size_t len);

/* "FP32"; "INVALID" for out-of-range values. */
const char *ksv_datatype_name(ksv_datatype_t dt);

/* "TYPE_FP32"; BYTES is "TYPE_STRING" as Triton writes it. */
const char *ksv_datatype_config_name(ksv_datatype_t dt);

/* Bytes per element; 0 for BYTES (variable) and INVALID. */
size_t ksv_datatype_size(ksv_datatype_t dt);

/* numpy dtype string for the Python backend ("<f4", "|b1", "object"). */
const char *ksv_datatype_numpy(ksv_datatype_t dt);

#endif /* KSV_DATATYPE_H */
