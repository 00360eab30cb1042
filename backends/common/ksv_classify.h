/*
 * ngx_kserve instances: Triton's classification extension.
 *
 * An output requested with parameters {"classification": k} comes back
 * as a BYTES tensor instead of its values: per batch entry, the k
 * largest values, best first, each "value:index" or "value:index:label"
 * (the value printed as C's %f, as Triton's std::to_string), with the
 * label from the output's label_filename (one label per line, line i
 * naming class i).  The shape is [batch, min(k, classes)] for a model
 * that batches (max_batch_size > 0), [min(k, classes)] otherwise.
 *
 * Triton computes this in its HTTP front end; here the instance does it,
 * where the model's files are, so nginx only ever sees the small BYTES
 * tensor.  Pure functions: tests/unit/test_classify.c drives them.
 */

#ifndef KSV_CLASSIFY_H
#define KSV_CLASSIFY_H

#include <stddef.h>
#include <stdint.h>

#include "ksv_proto.h"


/* Triton's bound: more values than this in one entry is refused. */
#define KSV_CLASSIFY_MAX_ELEMENTS  1000000

typedef struct {
    char       *text;           /* the file, NUL-separated lines */
    char      **lines;
    uint32_t    n;
} ksv_labels_t;

/* Reads a label file (one label per line, a trailing newline optional).
 * Returns -1 with a message in err. */
int ksv_labels_load(const char *path, ksv_labels_t *l, char *err,
    size_t errlen);
void ksv_labels_free(ksv_labels_t *l);

/*
 * The classification of output t (its bytes data[0..t->byte_size)):
 * appends the serialized BYTES tensor to *out and describes it in *res
 * (res->name = t->name).  labels may be NULL.  batched: the model's
 * first dimension is the batch.  Returns -1 with Triton's message in
 * err for a datatype it cannot rank or an entry that is too large.
 */
int ksv_classify(const ksv_tensor_t *t, const void *data, uint32_t k,
    int batched, const ksv_labels_t *labels, ksv_writer_t *out,
    ksv_tensor_t *res, char *err, size_t errlen);

#endif /* KSV_CLASSIFY_H */
