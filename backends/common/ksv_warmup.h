/*
 * ngx_kserve: model_warmup (Triton's ModelWarmup), run by an instance
 * before it says it is ready.
 *
 *   model_warmup [{ name: "w" batch_size: 4 count: 2
 *                   inputs { key: "IN" value { data_type: TYPE_FP32
 *                                              dims: [ 16 ] zero_data: true } } }]
 *
 * Each sample becomes one batch of batch_size requests (each one row,
 * shape [1] + dims, when the model batches; dims otherwise), run
 * max(count, 1) times through the backend's own run hook, the one
 * serving uses, so the model sees what it will see: its batch path, its
 * tensors.  Data: zero_data zeros (empty strings for BYTES),
 * random_data random values (floats in [0, 1), integers of any value,
 * one random letter per BYTES element), input_data_file the bytes of
 * <model dir>/warmup/<file>, which must be exactly the tensor's size
 * (BYTES: as serialized, 4-byte length before each element).
 *
 * Warmup requests are not counted in the statistics (they never pass
 * the scheduler).  A sample that errors, or an execute() that raises,
 * fails the load with the reason, like a failed initialize().
 */

#ifndef KSV_WARMUP_H
#define KSV_WARMUP_H

#include "ksv_instance.h"


/* Returns 0, or -1 with a malloc'd message in *err. */
int ksv_instance_warmup(const ksv_model_config_t *c, const char *model_dir,
    const char *model, const char *version, const ksv_instance_server_t *s,
    char **err);

#endif /* KSV_WARMUP_H */
