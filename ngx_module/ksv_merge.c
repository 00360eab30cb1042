/*
 * ngx_kserve: merging what several kserve-workers say (see ksv_merge.h).
 */

#include <stdlib.h>
#include <string.h>

#include "ksv_merge.h"


static int ksv_str_same(ksv_str_t a, ksv_str_t b);
static int ksv_state_rank(uint8_t state);
static int ksv_model_merge(ksv_model_status_t *to,
    const ksv_model_status_t *from, ksv_alloc_t *a);
static int ksv_version_merge(ksv_version_status_t *to,
    const ksv_version_status_t *from, ksv_alloc_t *a);
static int ksv_model_has_ready(const ksv_model_status_t *ms);
static int ksv_stats_merge(const ksv_str_t *replies, uint32_t n,
    ksv_alloc_t *a, ksv_writer_t *w, uint64_t id);
static void ksv_model_stats_add(ksv_model_stats_t *to,
    const ksv_model_stats_t *from, ksv_alloc_t *a);
static int ksv_model_stats_cmp(const void *a, const void *b);
static int ksv_repository_merge(const ksv_str_t *replies, uint32_t n,
    ksv_alloc_t *a, ksv_writer_t *w, uint64_t id);
static int ksv_repo_entry_cmp(const void *a, const void *b);


/* ---- the model index ----------------------------------------------------- */

int
ksv_index_merge(const ksv_index_t *in, uint32_t n, ksv_alloc_t *a,
    ksv_index_t *out)
{
    uint32_t             i, j, k, total;
    ksv_model_status_t  *m;

    if (n == 1) {
        *out = in[0];
        return 0;
    }

    memset(out, 0, sizeof(ksv_index_t));
    out->full = 1;

    total = 0;

    for (i = 0; i < n; i++) {
        /* only for logs: changes when any input's does */
        out->generation = out->generation * 1000003u + in[i].generation;
        total += in[i].nmodels;
    }

    if (total == 0) {
        return 0;
    }

    out->models = a->alloc(a->ctx, total * sizeof(ksv_model_status_t));
    if (out->models == NULL) {
        return -1;
    }

    for (i = 0; i < n; i++) {
        for (j = 0; j < in[i].nmodels; j++) {
            m = NULL;

            for (k = 0; k < out->nmodels; k++) {
                if (ksv_str_same(out->models[k].config.name,
                               in[i].models[j].config.name))
                {
                    m = &out->models[k];
                    break;
                }
            }

            if (m == NULL) {
                /* the first to list it: shared as it is */
                out->models[out->nmodels++] = in[i].models[j];
                continue;
            }

            if (ksv_model_merge(m, &in[i].models[j], a) != 0) {
                return -1;
            }
        }
    }

    return 0;
}


static int
ksv_str_same(ksv_str_t a, ksv_str_t b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.data, b.data, a.len) == 0);
}


static int
ksv_state_rank(uint8_t state)
{
    switch (state) {
    case KSV_VERSION_READY:
        return 3;
    case KSV_VERSION_LOADING:
        return 2;
    case KSV_VERSION_DRAINING:
        return 1;
    default:
        return 0;
    }
}


/* to's versions and from's, in ascending order, into a new array */

static int
ksv_model_merge(ksv_model_status_t *to, const ksv_model_status_t *from,
    ksv_alloc_t *a)
{
    uint32_t               i, j, n;
    ksv_version_status_t  *v;

    if (!ksv_model_has_ready(to) && ksv_model_has_ready(from)) {
        to->config = from->config;
    }

    v = a->alloc(a->ctx, (to->nversions + from->nversions + 1)
                         * sizeof(ksv_version_status_t));
    if (v == NULL) {
        return -1;
    }

    i = 0;
    j = 0;
    n = 0;

    while (i < to->nversions || j < from->nversions) {

        if (j == from->nversions
            || (i < to->nversions
                && to->versions[i].version < from->versions[j].version))
        {
            v[n++] = to->versions[i++];
            continue;
        }

        if (i == to->nversions
            || from->versions[j].version < to->versions[i].version)
        {
            v[n++] = from->versions[j++];
            continue;
        }

        v[n] = to->versions[i++];

        if (ksv_version_merge(&v[n], &from->versions[j++], a) != 0) {
            return -1;
        }

        n++;
    }

    to->versions = v;
    to->nversions = n;

    return 0;
}


static int
ksv_version_merge(ksv_version_status_t *to, const ksv_version_status_t *from,
    ksv_alloc_t *a)
{
    uint32_t                n;
    ksv_instance_status_t  *is;

    if (ksv_state_rank(from->state) > ksv_state_rank(to->state)) {
        to->state = from->state;
        to->reason = from->reason;
    }

    n = to->ninstances + from->ninstances;

    if (from->ninstances == 0) {
        return 0;
    }

    is = a->alloc(a->ctx, n * sizeof(ksv_instance_status_t));
    if (is == NULL) {
        return -1;
    }

    if (to->ninstances) {
        memcpy(is, to->instances,
               to->ninstances * sizeof(ksv_instance_status_t));
    }

    memcpy(is + to->ninstances, from->instances,
           from->ninstances * sizeof(ksv_instance_status_t));

    to->instances = is;
    to->ninstances = n;

    return 0;
}


static int
ksv_model_has_ready(const ksv_model_status_t *ms)
{
    uint32_t  i;

    for (i = 0; i < ms->nversions; i++) {
        if (ms->versions[i].state == KSV_VERSION_READY) {
            return 1;
        }
    }

    return 0;
}


/* ---- control replies ---------------------------------------------------- */

int
ksv_replies_merge(const ksv_str_t *replies, uint32_t n, ksv_alloc_t *a,
    ksv_writer_t *w)
{
    int            first_ok, first_missing, kind;
    uint32_t       i;
    ksv_error_t    e;
    ksv_prefix_t   prefix;
    ksv_reader_t   rd;

    first_ok = -1;
    first_missing = -1;
    kind = -1;
    prefix.id = 0;

    for (i = 0; i < n; i++) {
        if (replies[i].data == NULL) {
            continue;
        }

        ksv_reader_init(&rd, replies[i].data, replies[i].len);

        if (ksv_read_prefix(&rd, &prefix) != 0) {
            return -1;
        }

        if (prefix.kind != KSV_MSG_ERROR) {
            if (kind != -1 && kind != prefix.kind) {
                return -1;
            }

            kind = prefix.kind;

            if (first_ok == -1) {
                first_ok = (int) i;
            }

            continue;
        }

        if (ksv_decode_error(&rd, &e) != 0) {
            return -1;
        }

        if (e.code != KSV_ERR_NOT_FOUND) {
            /* failed on one worker: failed */
            ksv_put_bytes(w, replies[i].data, replies[i].len);
            return w->failed ? -1 : 0;
        }

        if (first_missing == -1) {
            first_missing = (int) i;
        }
    }

    if (first_ok == -1) {
        if (first_missing == -1) {
            return -1;
        }

        /* no worker has it */
        ksv_put_bytes(w, replies[first_missing].data,
                      replies[first_missing].len);
        return w->failed ? -1 : 0;
    }

    switch (kind) {

    case KSV_MSG_STATS_REPLY:
        return ksv_stats_merge(replies, n, a, w, prefix.id);

    case KSV_MSG_REPOSITORY_REPLY:
        return ksv_repository_merge(replies, n, a, w, prefix.id);

    default:
        /* LOG_REPLY: every worker applied the same settings */
        ksv_put_bytes(w, replies[first_ok].data, replies[first_ok].len);
        return w->failed ? -1 : 0;
    }
}


/* decodes the replies of kind STATS_REPLY and sums them per model version */

static int
ksv_stats_merge(const ksv_str_t *replies, uint32_t n, ksv_alloc_t *a,
    ksv_writer_t *w, uint64_t id)
{
    uint32_t            i, j, k, total, count;
    ksv_stats_t         s, *all, merged;
    ksv_prefix_t        prefix;
    ksv_reader_t        rd;
    ksv_model_stats_t  *ms;

    all = a->alloc(a->ctx, n * sizeof(ksv_stats_t));
    if (all == NULL) {
        return -1;
    }

    total = 0;
    count = 0;

    for (i = 0; i < n; i++) {
        if (replies[i].data == NULL) {
            continue;
        }

        ksv_reader_init(&rd, replies[i].data, replies[i].len);
        (void) ksv_read_prefix(&rd, &prefix);

        if (prefix.kind != KSV_MSG_STATS_REPLY) {
            continue;
        }

        if (ksv_decode_stats_reply(&rd, a, &s) != 0) {
            return -1;
        }

        all[count++] = s;
        total += s.nmodels;
    }

    ms = a->alloc(a->ctx, (total + 1) * sizeof(ksv_model_stats_t));
    if (ms == NULL) {
        return -1;
    }

    merged.nmodels = 0;
    merged.models = ms;

    for (i = 0; i < count; i++) {
        for (j = 0; j < all[i].nmodels; j++) {

            for (k = 0; k < merged.nmodels; k++) {
                if (ksv_str_same(ms[k].name, all[i].models[j].name)
                    && ksv_str_same(ms[k].version, all[i].models[j].version))
                {
                    break;
                }
            }

            if (k == merged.nmodels) {
                ms[merged.nmodels++] = all[i].models[j];
                continue;
            }

            ksv_model_stats_add(&ms[k], &all[i].models[j], a);
        }
    }

    qsort(ms, merged.nmodels, sizeof(ksv_model_stats_t), ksv_model_stats_cmp);

    ksv_encode_stats_reply(w, id, &merged);

    return w->failed ? -1 : 0;
}


#define ksv_duration_add(to, from)                                           \
    do { (to).count += (from).count; (to).ns += (from).ns; } while (0)


static void
ksv_model_stats_add(ksv_model_stats_t *to, const ksv_model_stats_t *from,
    ksv_alloc_t *a)
{
    uint32_t            i, j, n;
    ksv_batch_stats_t  *b;

    if (from->last_inference > to->last_inference) {
        to->last_inference = from->last_inference;
    }

    to->inference_count += from->inference_count;
    to->execution_count += from->execution_count;

    ksv_duration_add(to->success, from->success);
    ksv_duration_add(to->fail, from->fail);
    ksv_duration_add(to->queue, from->queue);
    ksv_duration_add(to->compute_input, from->compute_input);
    ksv_duration_add(to->compute_infer, from->compute_infer);
    ksv_duration_add(to->compute_output, from->compute_output);

    if (from->nbatch == 0) {
        return;
    }

    /* both ascending by batch size: merge them */

    b = a->alloc(a->ctx, (to->nbatch + from->nbatch)
                         * sizeof(ksv_batch_stats_t));
    if (b == NULL) {
        return;
    }

    i = 0;
    j = 0;
    n = 0;

    while (i < to->nbatch || j < from->nbatch) {

        if (j == from->nbatch
            || (i < to->nbatch
                && to->batch[i].batch_size < from->batch[j].batch_size))
        {
            b[n++] = to->batch[i++];

        } else if (i == to->nbatch
                   || from->batch[j].batch_size < to->batch[i].batch_size)
        {
            b[n++] = from->batch[j++];

        } else {
            b[n] = to->batch[i++];
            ksv_duration_add(b[n].compute_input, from->batch[j].compute_input);
            ksv_duration_add(b[n].compute_infer, from->batch[j].compute_infer);
            ksv_duration_add(b[n].compute_output,
                             from->batch[j].compute_output);
            j++;
            n++;
        }
    }

    /* the wire's bound on a list, as one worker would have kept it */
    to->batch = b;
    to->nbatch = n < KSV_MAX_LIST ? n : KSV_MAX_LIST;
}


/* by name, then version as a number (decimal strings: shorter is less) */

static int
ksv_model_stats_cmp(const void *a, const void *b)
{
    int                      rc;
    uint32_t                 len;
    const ksv_model_stats_t  *x = a, *y = b;

    len = x->name.len < y->name.len ? x->name.len : y->name.len;
    rc = len ? memcmp(x->name.data, y->name.data, len) : 0;

    if (rc != 0 || x->name.len != y->name.len) {
        return rc != 0 ? rc : (x->name.len < y->name.len ? -1 : 1);
    }

    if (x->version.len != y->version.len) {
        return x->version.len < y->version.len ? -1 : 1;
    }

    return x->version.len
           ? memcmp(x->version.data, y->version.data, x->version.len) : 0;
}


static int
ksv_repository_merge(const ksv_str_t *replies, uint32_t n, ksv_alloc_t *a,
    ksv_writer_t *w, uint64_t id)
{
    int                      versions;
    uint32_t                 i, j, k, total, count;
    ksv_prefix_t             prefix;
    ksv_reader_t             rd;
    ksv_repo_entry_t        *e, *from;
    ksv_repository_reply_t   r, *all, merged;

    all = a->alloc(a->ctx, n * sizeof(ksv_repository_reply_t));
    if (all == NULL) {
        return -1;
    }

    total = 0;
    count = 0;

    for (i = 0; i < n; i++) {
        if (replies[i].data == NULL) {
            continue;
        }

        ksv_reader_init(&rd, replies[i].data, replies[i].len);
        (void) ksv_read_prefix(&rd, &prefix);

        if (prefix.kind != KSV_MSG_REPOSITORY_REPLY) {
            continue;
        }

        if (ksv_decode_repository_reply(&rd, a, &r) != 0) {
            return -1;
        }

        all[count++] = r;
        total += r.nentries;
    }

    e = a->alloc(a->ctx, (total + 1) * sizeof(ksv_repo_entry_t));
    if (e == NULL) {
        return -1;
    }

    merged.nentries = 0;
    merged.entries = e;

    for (i = 0; i < count; i++) {
        for (j = 0; j < all[i].nentries; j++) {
            from = &all[i].entries[j];

            for (k = 0; k < merged.nentries; k++) {
                if (ksv_str_same(e[k].name, from->name)
                    && e[k].version == from->version)
                {
                    break;
                }
            }

            if (k == merged.nentries) {
                e[merged.nentries++] = *from;

            } else if (ksv_state_rank(from->state) > ksv_state_rank(e[k].state)
                       && from->state != KSV_REPO_NAME_ONLY)
            {
                e[k].state = from->state;
                e[k].reason = from->reason;
            }
        }
    }

    /* a name-only entry gives way to versions of the same name */

    for (i = 0, k = 0; i < merged.nentries; i++) {
        if (e[i].state == KSV_REPO_NAME_ONLY) {
            versions = 0;

            for (j = 0; j < merged.nentries; j++) {
                if (e[j].state != KSV_REPO_NAME_ONLY
                    && ksv_str_same(e[j].name, e[i].name))
                {
                    versions = 1;
                    break;
                }
            }

            if (versions) {
                continue;
            }
        }

        e[k++] = e[i];
    }

    merged.nentries = k;

    qsort(e, merged.nentries, sizeof(ksv_repo_entry_t), ksv_repo_entry_cmp);

    ksv_encode_repository_reply(w, id, &merged);

    return w->failed ? -1 : 0;
}


static int
ksv_repo_entry_cmp(const void *a, const void *b)
{
    int                     rc;
    uint32_t                len;
    const ksv_repo_entry_t  *x = a, *y = b;

    len = x->name.len < y->name.len ? x->name.len : y->name.len;
    rc = len ? memcmp(x->name.data, y->name.data, len) : 0;

    if (rc != 0) {
        return rc;
    }

    if (x->name.len != y->name.len) {
        return x->name.len < y->name.len ? -1 : 1;
    }

    return (x->version > y->version) - (x->version < y->version);
}
