/*
 * ngx_kserve: what several kserve-workers say, merged into what one
 * would say (ngx_module/ksv_merge.c).
 */

#include <stdlib.h>
#include <string.h>

#include "ksv_merge.h"
#include "ksv_test.h"


static ksv_arena_t  arena;
static ksv_alloc_t  alloc;


static ksv_str_t
str(const char *s)
{
    ksv_str_t  v;

    v.data = s;
    v.len = (uint32_t) strlen(s);
    return v;
}


static int
same(ksv_str_t a, const char *b)
{
    return a.len == strlen(b) && memcmp(a.data, b, a.len) == 0;
}


/* a version with n instances named after the host */
static ksv_version_status_t
version(int64_t v, uint8_t state, const char *host, uint32_t n)
{
    uint32_t               i;
    ksv_version_status_t   vs;

    memset(&vs, 0, sizeof(vs));
    vs.version = v;
    vs.state = state;
    vs.reason = str(state == KSV_VERSION_READY ? "" : "loading");
    vs.ninstances = n;
    vs.instances = ksv_arena_alloc(&arena, (n + 1) * sizeof(*vs.instances));

    for (i = 0; i < n; i++) {
        memset(&vs.instances[i], 0, sizeof(vs.instances[i]));
        vs.instances[i].endpoint = str(host);
        vs.instances[i].state = state;
    }

    return vs;
}


static ksv_model_status_t
model(const char *name, uint32_t nversions, ksv_version_status_t *v)
{
    ksv_model_status_t  ms;

    memset(&ms, 0, sizeof(ms));
    ms.config.name = str(name);
    ms.nversions = nversions;
    ms.versions = v;
    return ms;
}


static void
test_index(void)
{
    ksv_index_t            in[2], out;
    ksv_model_status_t     a[2], b[2];
    ksv_version_status_t   av[1], bv[2], cv[1], dv[1];

    /* host a: "shared" v1 READY (2 instances), "only_a" v1 */
    av[0] = version(1, KSV_VERSION_READY, "tcp://a", 2);
    cv[0] = version(1, KSV_VERSION_READY, "tcp://a", 1);
    a[0] = model("shared", 1, av);
    a[1] = model("only_a", 1, cv);

    /* host b: "shared" v1 LOADING and v2 READY, "only_b" v3 */
    bv[0] = version(1, KSV_VERSION_LOADING, "tcp://b", 1);
    bv[1] = version(2, KSV_VERSION_READY, "tcp://b", 1);
    dv[0] = version(3, KSV_VERSION_READY, "tcp://b", 1);
    b[0] = model("shared", 2, bv);
    b[1] = model("only_b", 1, dv);

    memset(in, 0, sizeof(in));
    in[0].generation = 7;
    in[0].nmodels = 2;
    in[0].models = a;
    in[1].generation = 9;
    in[1].nmodels = 2;
    in[1].models = b;

    CHECK(ksv_index_merge(in, 2, &alloc, &out) == 0);
    CHECK(out.nmodels == 3);
    CHECK(same(out.models[0].config.name, "shared"));
    CHECK(same(out.models[1].config.name, "only_a"));
    CHECK(same(out.models[2].config.name, "only_b"));

    /* versions 1 and 2, ascending; v1 READY (a's) with every instance */
    CHECK(out.models[0].nversions == 2);
    CHECK(out.models[0].versions[0].version == 1);
    CHECK(out.models[0].versions[0].state == KSV_VERSION_READY);
    CHECK(out.models[0].versions[0].ninstances == 3);
    CHECK(same(out.models[0].versions[0].instances[2].endpoint, "tcp://b"));
    CHECK(out.models[0].versions[1].version == 2);
    CHECK(out.models[0].versions[1].ninstances == 1);

    /* the inputs are left as they were */
    CHECK(a[0].nversions == 1 && av[0].ninstances == 2);
    CHECK(b[0].nversions == 2 && bv[0].ninstances == 1);

    /* the generation changes when either input's does */
    {
        uint64_t  g = out.generation;

        in[1].generation = 10;
        CHECK(ksv_index_merge(in, 2, &alloc, &out) == 0);
        CHECK(out.generation != g);
    }

    /* one worker: its index as it is */
    CHECK(ksv_index_merge(in, 1, &alloc, &out) == 0);
    CHECK(out.models == a && out.nmodels == 2);
}


static ksv_str_t
frame(ksv_writer_t *w)
{
    ksv_str_t  s;

    s.data = ksv_arena_alloc(&arena, w->len);
    memcpy((char *) s.data, w->buf, w->len);
    s.len = (uint32_t) w->len;
    ksv_writer_free(w);
    return s;
}


static ksv_str_t
error_reply(uint64_t id, ksv_status_t code, const char *msg)
{
    ksv_writer_t  w;

    ksv_writer_init(&w);
    ksv_encode_error(&w, id, code, str(msg));
    return frame(&w);
}


static ksv_str_t
stats_reply(uint64_t id, const char *name, uint64_t count, uint32_t bs)
{
    ksv_stats_t        s;
    ksv_writer_t       w;
    ksv_batch_stats_t  b;
    ksv_model_stats_t  m;

    memset(&m, 0, sizeof(m));
    memset(&b, 0, sizeof(b));
    m.name = str(name);
    m.version = str("1");
    m.inference_count = count;
    m.execution_count = count;
    m.success.count = count;
    m.success.ns = count * 1000;
    m.last_inference = 100 + count;
    b.batch_size = bs;
    b.compute_infer.count = count;
    b.compute_infer.ns = count * 10;
    m.nbatch = 1;
    m.batch = &b;

    s.nmodels = 1;
    s.models = &m;

    ksv_writer_init(&w);
    ksv_encode_stats_reply(&w, id, &s);
    return frame(&w);
}


static void
decode_stats(ksv_writer_t *w, ksv_stats_t *s, uint64_t *id)
{
    ksv_prefix_t  prefix;
    ksv_reader_t  rd;

    ksv_reader_init(&rd, w->buf, w->len);
    CHECK(ksv_read_prefix(&rd, &prefix) == 0);
    CHECK(prefix.kind == KSV_MSG_STATS_REPLY);
    CHECK(ksv_decode_stats_reply(&rd, &alloc, s) == 0);
    *id = prefix.id;
}


static void
test_stats(void)
{
    uint64_t      id;
    ksv_str_t     r[3];
    ksv_stats_t   s;
    ksv_error_t   e;
    ksv_prefix_t  prefix;
    ksv_reader_t  rd;
    ksv_writer_t  w;

    /* two hosts serve "m": summed; the third lacks it (dropped) */
    r[0] = stats_reply(42, "m", 3, 1);
    r[1] = error_reply(42, KSV_ERR_NOT_FOUND, "Request for unknown model");
    r[2] = stats_reply(42, "m", 5, 2);

    ksv_writer_init(&w);
    CHECK(ksv_replies_merge(r, 3, &alloc, &w) == 0);
    decode_stats(&w, &s, &id);
    ksv_writer_free(&w);

    CHECK(id == 42);
    CHECK(s.nmodels == 1);
    CHECK(s.models[0].inference_count == 8);
    CHECK(s.models[0].success.count == 8 && s.models[0].success.ns == 8000);
    CHECK(s.models[0].last_inference == 105);
    CHECK(s.models[0].nbatch == 2);
    CHECK(s.models[0].batch[0].batch_size == 1);
    CHECK(s.models[0].batch[1].batch_size == 2);
    CHECK(s.models[0].batch[1].compute_infer.count == 5);

    /* different models from each: both, sorted by name */
    r[0] = stats_reply(43, "zeta", 1, 1);
    r[1] = stats_reply(43, "alpha", 2, 1);

    ksv_writer_init(&w);
    CHECK(ksv_replies_merge(r, 2, &alloc, &w) == 0);
    decode_stats(&w, &s, &id);
    ksv_writer_free(&w);
    CHECK(s.nmodels == 2);
    CHECK(same(s.models[0].name, "alpha") && same(s.models[1].name, "zeta"));

    /* a worker that did not answer is skipped */
    r[0].data = NULL;
    r[1] = stats_reply(44, "m", 4, 1);

    ksv_writer_init(&w);
    CHECK(ksv_replies_merge(r, 2, &alloc, &w) == 0);
    decode_stats(&w, &s, &id);
    ksv_writer_free(&w);
    CHECK(s.nmodels == 1 && s.models[0].inference_count == 4);

    /* nobody has it: NOT_FOUND; any other error wins over answers */
    r[0] = error_reply(45, KSV_ERR_NOT_FOUND, "unknown a");
    r[1] = error_reply(45, KSV_ERR_NOT_FOUND, "unknown b");
    r[2] = stats_reply(45, "m", 1, 1);

    ksv_writer_init(&w);
    CHECK(ksv_replies_merge(r, 2, &alloc, &w) == 0);
    ksv_reader_init(&rd, w.buf, w.len);
    CHECK(ksv_read_prefix(&rd, &prefix) == 0 && prefix.kind == KSV_MSG_ERROR);
    CHECK(ksv_decode_error(&rd, &e) == 0 && e.code == KSV_ERR_NOT_FOUND);
    CHECK(same(e.message, "unknown a"));
    ksv_writer_free(&w);

    r[1] = error_reply(45, KSV_ERR_INVALID_ARG, "load failed on b");

    ksv_writer_init(&w);
    CHECK(ksv_replies_merge(r, 3, &alloc, &w) == 0);
    ksv_reader_init(&rd, w.buf, w.len);
    CHECK(ksv_read_prefix(&rd, &prefix) == 0 && prefix.kind == KSV_MSG_ERROR);
    CHECK(ksv_decode_error(&rd, &e) == 0 && e.code == KSV_ERR_INVALID_ARG);
    ksv_writer_free(&w);

    /* no reply at all, or a malformed one */
    r[0].data = NULL;
    r[1].data = NULL;
    ksv_writer_init(&w);
    CHECK(ksv_replies_merge(r, 2, &alloc, &w) == -1);
    r[0] = str("\x01");
    CHECK(ksv_replies_merge(r, 1, &alloc, &w) == -1);
    ksv_writer_free(&w);
}


static ksv_str_t
repo_reply(uint64_t id, uint32_t n, ksv_repo_entry_t *e)
{
    ksv_writer_t            w;
    ksv_repository_reply_t  r;

    r.nentries = n;
    r.entries = e;

    ksv_writer_init(&w);
    ksv_encode_repository_reply(&w, id, &r);
    return frame(&w);
}


static void
test_repository(void)
{
    ksv_str_t               r[2];
    ksv_prefix_t            prefix;
    ksv_reader_t            rd;
    ksv_writer_t            w;
    ksv_repo_entry_t        a[3], b[2];
    ksv_repository_reply_t  out;

    memset(a, 0, sizeof(a));
    memset(b, 0, sizeof(b));

    /* a: m v1 READY, x never loaded, z v1 UNAVAILABLE */
    a[0].name = str("m"); a[0].version = 1; a[0].state = KSV_VERSION_READY;
    a[1].name = str("x"); a[1].version = -1; a[1].state = KSV_REPO_NAME_ONLY;
    a[2].name = str("z"); a[2].version = 1;
    a[2].state = KSV_VERSION_UNAVAILABLE; a[2].reason = str("unloaded");

    /* b: x v2 READY, z v1 READY */
    b[0].name = str("x"); b[0].version = 2; b[0].state = KSV_VERSION_READY;
    b[1].name = str("z"); b[1].version = 1; b[1].state = KSV_VERSION_READY;

    r[0] = repo_reply(7, 3, a);
    r[1] = repo_reply(7, 2, b);

    ksv_writer_init(&w);
    CHECK(ksv_replies_merge(r, 2, &alloc, &w) == 0);

    ksv_reader_init(&rd, w.buf, w.len);
    CHECK(ksv_read_prefix(&rd, &prefix) == 0);
    CHECK(prefix.kind == KSV_MSG_REPOSITORY_REPLY && prefix.id == 7);
    CHECK(ksv_decode_repository_reply(&rd, &alloc, &out) == 0);

    /* m 1, x 2 (its name-only entry gave way), z 1 READY */
    CHECK(out.nentries == 3);
    CHECK(same(out.entries[0].name, "m"));
    CHECK(same(out.entries[1].name, "x") && out.entries[1].version == 2);
    CHECK(same(out.entries[2].name, "z"));
    CHECK(out.entries[2].state == KSV_VERSION_READY);
    CHECK(out.entries[2].reason.len == 0);

    ksv_writer_free(&w);
}


int
main(void)
{
    ksv_arena_init(&arena);
    alloc = ksv_arena_allocator(&arena);

    test_index();
    test_stats();
    test_repository();

    ksv_arena_free(&arena);

    KSV_TEST_END();
}
