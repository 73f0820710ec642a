/*
 * oneDNN backend: every oneDNN call in nominal lives in this file.
 *
 * Building a plan walks the program once. Each layer becomes a primitive
 * whose memory formats oneDNN picks (format_tag_any for convolution source,
 * weights and destination; other primitives follow their input's format),
 * with reorders inserted only where a consumer wants a different format.
 * Values get "virtual buffers" from a pool as they are produced and give
 * them back after their last use, so a ResNet trunk needs a handful of
 * activation buffers, not one per layer. All buffers, weights in their
 * chosen format and one shared scratchpad are allocated at build time; a
 * run only sets the input pointer and executes the step list.
 */
#include "backend/backend.h"

#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <oneapi/dnnl/dnnl.h>

#include "core/error.h"

struct nm_backend {
    dnnl_engine_t engine;
    dnnl_stream_t stream;
    int threads;
    char description[160];
};

/* A view of a buffer with a memory format; memory objects are created for
 * these once all buffer sizes are known. */
typedef struct vmem {
    dnnl_memory_desc_t md;
    int buffer; /* index into plan->buffers, or -1 for the user input */
    dnnl_memory_t mem;
} vmem;

typedef struct step_arg {
    int arg;
    int vmem;            /* >= 0: a vmem; -1: use `fixed` */
    dnnl_memory_t fixed; /* weights, bias, BN params, scratchpad */
} step_arg;

#define MAX_STEP_ARGS (NN_MAX_INPUTS + 8)

typedef struct step {
    dnnl_primitive_t prim;
    step_arg args[MAX_STEP_ARGS];
    int nargs;
    const char *name;
} step;

typedef struct pool_buffer {
    size_t size;
    int in_use;
    void *ptr;
} pool_buffer;

struct backend_plan {
    nm_backend *be;
    step *steps;
    int n_steps, cap_steps;
    vmem *vmems;
    int n_vmems, cap_vmems;
    pool_buffer *buffers;
    int n_buffers, cap_buffers;
    dnnl_memory_t *owned_mems; /* weights etc., destroyed with the plan */
    int n_owned, cap_owned;
    size_t scratch_size;
    void *scratch;
    dnnl_memory_t scratch_mem;
    int input_vmem;
    int *tap_vmems;
    int n_taps;
    /* per value, during build */
    int *value_vmem;
    int *last_use;
};

static const char *dnnl_status_text(dnnl_status_t s)
{
    switch (s) {
    case dnnl_success: return "success";
    case dnnl_out_of_memory: return "out of memory";
    case dnnl_invalid_arguments: return "invalid arguments";
    case dnnl_unimplemented: return "no implementation for these shapes/formats";
    case dnnl_iterator_ends: return "iterator ends";
    case dnnl_runtime_error: return "runtime error";
    case dnnl_not_required: return "not required";
    }
    return "unknown error";
}

#define DNNL_TRY(call, err, ...)                                               \
    do {                                                                       \
        dnnl_status_t s_ = (call);                                             \
        if (s_ != dnnl_success) {                                              \
            char what_[256];                                                   \
            snprintf(what_, sizeof what_, __VA_ARGS__);                        \
            return nm_fail(err, s_ == dnnl_out_of_memory ? NM_ERR_NOMEM        \
                                                         : NM_ERR_BACKEND,     \
                           "%s: oneDNN: %s", what_, dnnl_status_text(s_));     \
        }                                                                      \
    } while (0)

/* ---------------------------------------------------------------- backend */

nm_status backend_create(int threads, nm_backend **out, nm_error *err)
{
    nm_backend *be = calloc(1, sizeof *be);
    if (!be)
        return nm_fail(err, NM_ERR_NOMEM, "backend: out of memory");
    if (threads <= 0)
        threads = omp_get_num_procs();
    be->threads = threads;
    if (dnnl_engine_create(&be->engine, dnnl_cpu, 0) != dnnl_success) {
        free(be);
        return nm_fail(err, NM_ERR_BACKEND, "oneDNN: cannot create CPU engine");
    }
    if (dnnl_stream_create(&be->stream, be->engine, dnnl_stream_default_flags) !=
        dnnl_success) {
        dnnl_engine_destroy(be->engine);
        free(be);
        return nm_fail(err, NM_ERR_BACKEND, "oneDNN: cannot create stream");
    }
    const dnnl_version_t *v = dnnl_version();
    static const char *isa_names[] = {"?", "sse41", "avx", "avx2", "avx512",
                                      "avx512+vnni/amx"};
    dnnl_cpu_isa_t isa = dnnl_get_effective_cpu_isa();
    const char *isa_name = isa_names[0];
    if (isa & dnnl_cpu_isa_avx512_core_amx)
        isa_name = isa_names[5];
    else if (isa & dnnl_cpu_isa_avx512_core)
        isa_name = isa_names[4];
    else if (isa & dnnl_cpu_isa_avx2)
        isa_name = isa_names[3];
    else if (isa & dnnl_cpu_isa_avx)
        isa_name = isa_names[2];
    else if (isa & dnnl_cpu_isa_sse41)
        isa_name = isa_names[1];
    snprintf(be->description, sizeof be->description,
             "oneDNN %d.%d.%d cpu (%s), %d thread%s", v->major, v->minor,
             v->patch, isa_name, threads, threads == 1 ? "" : "s");
    *out = be;
    return NM_OK;
}

void backend_destroy(nm_backend *be)
{
    if (!be)
        return;
    dnnl_stream_destroy(be->stream);
    dnnl_engine_destroy(be->engine);
    free(be);
}

const char *backend_describe(const nm_backend *be) { return be->description; }

/* ------------------------------------------------------------ plan pieces */

#define GROW(arr, n, cap)                                                      \
    ((n) < (cap) ? 0                                                           \
                 : grow_array((void **)&(arr), &(cap), sizeof *(arr)))

static int grow_array(void **arr, int *cap, size_t elem)
{
    int ncap = *cap ? *cap * 2 : 16;
    void *p = realloc(*arr, (size_t)ncap * elem);
    if (!p)
        return -1;
    memset((char *)p + (size_t)*cap * elem, 0, (size_t)(ncap - *cap) * elem);
    *arr = p;
    *cap = ncap;
    return 0;
}

static nm_status nomem(nm_error *err)
{
    return nm_fail(err, NM_ERR_NOMEM, "backend: out of memory building plan");
}

/* Take a free pool buffer (growing it if needed: memory is only allocated
 * once the whole plan is known) or add one. */
static int pool_take(backend_plan *p, size_t size)
{
    int best = -1;
    for (int i = 0; i < p->n_buffers; i++) {
        if (p->buffers[i].in_use)
            continue;
        /* prefer the smallest buffer that fits, else the largest one */
        if (best < 0)
            best = i;
        else {
            size_t bs = p->buffers[best].size, is = p->buffers[i].size;
            int best_fits = bs >= size, i_fits = is >= size;
            if ((i_fits && (!best_fits || is < bs)) ||
                (!i_fits && !best_fits && is > bs))
                best = i;
        }
    }
    if (best < 0) {
        if (GROW(p->buffers, p->n_buffers, p->cap_buffers))
            return -1;
        best = p->n_buffers++;
        p->buffers[best].size = 0;
    }
    if (p->buffers[best].size < size)
        p->buffers[best].size = size;
    p->buffers[best].in_use = 1;
    return best;
}

static int pool_take_dedicated(backend_plan *p, size_t size)
{
    if (GROW(p->buffers, p->n_buffers, p->cap_buffers))
        return -1;
    int b = p->n_buffers++;
    p->buffers[b].size = size;
    p->buffers[b].in_use = 2; /* never released */
    return b;
}

static void pool_release(backend_plan *p, int buffer)
{
    if (buffer >= 0 && p->buffers[buffer].in_use == 1)
        p->buffers[buffer].in_use = 0;
}

static int add_vmem(backend_plan *p, const dnnl_memory_desc_t *md, int buffer)
{
    /* md may point into p->vmems, which GROW can move: copy it first */
    dnnl_memory_desc_t copy = *md;
    if (GROW(p->vmems, p->n_vmems, p->cap_vmems))
        return -1;
    p->vmems[p->n_vmems].md = copy;
    p->vmems[p->n_vmems].buffer = buffer;
    p->vmems[p->n_vmems].mem = NULL;
    return p->n_vmems++;
}

/* A new vmem backed by a fresh pool buffer sized for md. */
static int new_value_vmem(backend_plan *p, const dnnl_memory_desc_t *md)
{
    int b = pool_take(p, dnnl_memory_desc_get_size(md));
    return b < 0 ? -1 : add_vmem(p, md, b);
}

static int own_mem(backend_plan *p, dnnl_memory_t m)
{
    if (GROW(p->owned_mems, p->n_owned, p->cap_owned))
        return -1;
    p->owned_mems[p->n_owned++] = m;
    return 0;
}

static step *add_step(backend_plan *p, dnnl_primitive_t prim, const char *name)
{
    if (GROW(p->steps, p->n_steps, p->cap_steps))
        return NULL;
    step *s = &p->steps[p->n_steps++];
    memset(s, 0, sizeof *s);
    s->prim = prim;
    s->name = name;
    return s;
}

static void step_vmem(step *s, int arg, int vm)
{
    s->args[s->nargs].arg = arg;
    s->args[s->nargs].vmem = vm;
    s->args[s->nargs].fixed = NULL;
    s->nargs++;
}

static void step_fixed(step *s, int arg, dnnl_memory_t m)
{
    s->args[s->nargs].arg = arg;
    s->args[s->nargs].vmem = -1;
    s->args[s->nargs].fixed = m;
    s->nargs++;
}

static void md_dims(const nn_shape *sh, dnnl_dims_t dims)
{
    for (int i = 0; i < sh->rank; i++)
        dims[i] = sh->dims[i];
}

static nm_status md_init(dnnl_memory_desc_t *md, const nn_shape *sh,
                         dnnl_format_tag_t tag, nm_error *err)
{
    dnnl_dims_t dims;
    md_dims(sh, dims);
    if (tag == dnnl_format_tag_undef)
        tag = sh->rank == 4 ? dnnl_nchw : dnnl_nc;
    DNNL_TRY(dnnl_memory_desc_init_by_tag(md, sh->rank, dims, dnnl_f32, tag),
             err, "memory descriptor");
    return NM_OK;
}

/* Attributes every primitive gets: a user-provided shared scratchpad. */
static nm_status make_attr(dnnl_primitive_attr_t *attr, nm_error *err)
{
    DNNL_TRY(dnnl_primitive_attr_create(attr), err, "primitive attributes");
    if (dnnl_primitive_attr_set_scratchpad_mode(*attr, dnnl_scratchpad_mode_user) !=
        dnnl_success) {
        dnnl_primitive_attr_destroy(*attr);
        return nm_fail(err, NM_ERR_BACKEND, "oneDNN: scratchpad mode");
    }
    return NM_OK;
}

/* Create the primitive for pd, note its scratchpad need, append a step. */
static nm_status finish_primitive(backend_plan *p, dnnl_primitive_desc_t pd,
                                  const char *name, step **out, nm_error *err)
{
    const dnnl_memory_desc_t *smd =
        dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    if (smd) {
        size_t sz = dnnl_memory_desc_get_size(smd);
        if (sz > p->scratch_size)
            p->scratch_size = sz;
    }
    dnnl_primitive_t prim;
    dnnl_status_t s = dnnl_primitive_create(&prim, pd);
    if (s != dnnl_success)
        return nm_fail(err, NM_ERR_BACKEND, "%s: oneDNN primitive: %s", name,
                       dnnl_status_text(s));
    step *st = add_step(p, prim, name);
    if (!st) {
        dnnl_primitive_destroy(prim);
        return nomem(err);
    }
    *out = st;
    return NM_OK;
}

static nm_status reorder_pd(backend_plan *p, const dnnl_memory_desc_t *from,
                            const dnnl_memory_desc_t *to,
                            dnnl_primitive_desc_t *pd, nm_error *err)
{
    dnnl_primitive_attr_t attr;
    nm_status st = make_attr(&attr, err);
    if (st)
        return st;
    dnnl_status_t s = dnnl_reorder_primitive_desc_create(
        pd, from, p->be->engine, to, p->be->engine, attr);
    dnnl_primitive_attr_destroy(attr);
    if (s != dnnl_success)
        return nm_fail(err, NM_ERR_BACKEND, "oneDNN reorder: %s",
                       dnnl_status_text(s));
    return NM_OK;
}

/* Append a step copying vmem `from` into vmem `to` (formats may differ). */
static nm_status add_reorder_step(backend_plan *p, int from, int to,
                                  const char *name, nm_error *err)
{
    dnnl_primitive_desc_t pd;
    nm_status st = reorder_pd(p, &p->vmems[from].md, &p->vmems[to].md, &pd, err);
    if (st)
        return st;
    step *s;
    st = finish_primitive(p, pd, name, &s, err);
    dnnl_primitive_desc_destroy(pd);
    if (st)
        return st;
    step_vmem(s, DNNL_ARG_FROM, from);
    step_vmem(s, DNNL_ARG_TO, to);
    return NM_OK;
}

/* The vmem of value v in format md: v itself if it matches, else a temp
 * copy made by a reorder step (its buffer is released by the caller via
 * *temp_buffer after the layer). */
static nm_status value_as(backend_plan *p, int v, const dnnl_memory_desc_t *md,
                          const char *name, int *vm_out, int *temp_buffer,
                          nm_error *err)
{
    int vm = p->value_vmem[v];
    if (dnnl_memory_desc_equal(&p->vmems[vm].md, md)) {
        *vm_out = vm;
        return NM_OK;
    }
    int t = new_value_vmem(p, md);
    if (t < 0)
        return nomem(err);
    *temp_buffer = p->vmems[t].buffer;
    *vm_out = t;
    return add_reorder_step(p, vm, t, name, err);
}

/* Memory holding constant data in the chosen format md: a plain-layout view
 * of `data` reordered once, now, into memory the plan owns. */
/* New memory in layout md holding `data` (given in layout plain),
 * reordered once, now. The caller owns the result. */
static nm_status packed_copy(nm_backend *be, const dnnl_memory_desc_t *plain,
                             const dnnl_memory_desc_t *md, const float *data,
                             const char *name, dnnl_memory_t *out, nm_error *err)
{
    dnnl_memory_t dst, src;
    DNNL_TRY(dnnl_memory_create(&dst, md, be->engine, DNNL_MEMORY_ALLOCATE), err,
             "%s: weights memory", name);
    if (dnnl_memory_create(&src, plain, be->engine, (void *)data) != dnnl_success) {
        dnnl_memory_destroy(dst);
        return nm_fail(err, NM_ERR_BACKEND, "%s: weights view", name);
    }
    dnnl_primitive_desc_t pd;
    /* default attributes (library scratchpad): this runs once */
    dnnl_status_t s = dnnl_reorder_primitive_desc_create(&pd, plain, be->engine, md,
                                                         be->engine, NULL);
    dnnl_primitive_t prim = NULL;
    if (s == dnnl_success) {
        s = dnnl_primitive_create(&prim, pd);
        dnnl_primitive_desc_destroy(pd);
    }
    if (s == dnnl_success) {
        dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, src}, {DNNL_ARG_TO, dst}};
        s = dnnl_primitive_execute(prim, be->stream, 2, args);
        if (s == dnnl_success)
            s = dnnl_stream_wait(be->stream);
        dnnl_primitive_destroy(prim);
    }
    dnnl_memory_destroy(src);
    if (s != dnnl_success) {
        dnnl_memory_destroy(dst);
        return nm_fail(err, NM_ERR_BACKEND, "%s: weights reorder: %s", name,
                       dnnl_status_text(s));
    }
    *out = dst;
    return NM_OK;
}

/* Constant data (weights) in the chosen layout, owned by the plan. */
static nm_status constant_mem(backend_plan *p, const dnnl_memory_desc_t *plain,
                              const dnnl_memory_desc_t *md, const float *data,
                              const char *name, dnnl_memory_t *out, nm_error *err)
{
    nm_status st = packed_copy(p->be, plain, md, data, name, out, err);
    if (st)
        return st;
    if (own_mem(p, *out)) {
        dnnl_memory_destroy(*out);
        return nomem(err);
    }
    return NM_OK;
}

/* 1-D per-channel parameter memory pointing at the program's array. */
static nm_status vector_mem(backend_plan *p, const float *data, int n,
                            const char *name, dnnl_memory_t *out, nm_error *err)
{
    dnnl_memory_desc_t md;
    dnnl_dims_t dims = {n};
    DNNL_TRY(dnnl_memory_desc_init_by_tag(&md, 1, dims, dnnl_f32, dnnl_a), err,
             "%s: vector", name);
    DNNL_TRY(dnnl_memory_create(out, &md, p->be->engine, (void *)data), err,
             "%s: vector memory", name);
    if (own_mem(p, *out)) {
        dnnl_memory_destroy(*out);
        return nomem(err);
    }
    return NM_OK;
}

static nm_status make_post_ops(const nn_layer *L, dnnl_primitive_attr_t attr,
                               nm_error *err)
{
    if (L->n_post == 0)
        return NM_OK;
    dnnl_post_ops_t po;
    DNNL_TRY(dnnl_post_ops_create(&po), err, "%s: post-ops", L->name);
    dnnl_status_t s = dnnl_success;
    for (int i = 0; i < L->n_post && s == dnnl_success; i++) {
        const nn_post_op *op = &L->post[i];
        if (op->kind == NN_POST_SUM)
            s = dnnl_post_ops_append_sum(po, 1.0f);
        else if (op->kind == NN_POST_RELU)
            s = dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_relu, 0, 0);
        else
            s = dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_clip, op->lo,
                                             op->hi);
    }
    if (s == dnnl_success)
        s = dnnl_primitive_attr_set_post_ops(attr, po);
    dnnl_post_ops_destroy(po);
    if (s != dnnl_success)
        return nm_fail(err, NM_ERR_BACKEND, "%s: post-ops: %s", L->name,
                       dnnl_status_text(s));
    return NM_OK;
}

/* ------------------------------------------------------------ layer kinds */

/* Bookkeeping shared by all layers: temps to release after the layer. */
typedef struct layer_ctx {
    int temps[NN_MAX_INPUTS + 2];
    int n_temps;
    int inplace_value; /* value whose buffer the output took over, or -1 */
} layer_ctx;

static nm_status input_as(backend_plan *p, layer_ctx *c, int v,
                          const dnnl_memory_desc_t *md, const char *name,
                          int *vm, nm_error *err)
{
    int temp = -1;
    nm_status st = value_as(p, v, md, name, vm, &temp, err);
    if (temp >= 0)
        c->temps[c->n_temps++] = temp;
    return st;
}

/* Output vmem for a conv with a sum post-op: write in place into the
 * addend's buffer when it dies here and has the right format; otherwise a
 * new buffer that first receives a copy of the addend. */
static nm_status sum_output(backend_plan *p, layer_ctx *c, const nn_layer *L,
                            int layer_index, const dnnl_memory_desc_t *dst_md,
                            int *out_vm, nm_error *err)
{
    int addend = -1;
    for (int i = 0; i < L->n_post; i++)
        if (L->post[i].kind == NN_POST_SUM)
            addend = L->post[i].value;
    if (addend < 0) {
        *out_vm = new_value_vmem(p, dst_md);
        return *out_vm < 0 ? nomem(err) : NM_OK;
    }
    int avm = p->value_vmem[addend];
    int is_input = 0;
    for (int i = 0; i < L->n_inputs; i++)
        is_input |= L->inputs[i] == addend;
    if (!is_input && p->last_use[addend] == layer_index && p->vmems[avm].buffer >= 0 &&
        p->buffers[p->vmems[avm].buffer].in_use == 1 &&
        dnnl_memory_desc_equal(&p->vmems[avm].md, dst_md)) {
        *out_vm = add_vmem(p, dst_md, p->vmems[avm].buffer);
        c->inplace_value = addend;
        return *out_vm < 0 ? nomem(err) : NM_OK;
    }
    *out_vm = new_value_vmem(p, dst_md);
    if (*out_vm < 0)
        return nomem(err);
    return add_reorder_step(p, avm, *out_vm, L->name, err);
}

/* Create pd from an op descriptor with the standard attributes and the
 * layer's post-ops (none for most layer kinds). */
static nm_status create_pd(backend_plan *p, const void *desc, const nn_layer *L,
                           const char *opname, dnnl_primitive_desc_t *pd,
                           nm_error *err)
{
    dnnl_primitive_attr_t attr;
    nm_status st = make_attr(&attr, err);
    if (st)
        return st;
    if ((st = make_post_ops(L, attr, err))) {
        dnnl_primitive_attr_destroy(attr);
        return st;
    }
    dnnl_status_t s = dnnl_primitive_desc_create(pd, desc, attr, p->be->engine, NULL);
    dnnl_primitive_attr_destroy(attr);
    if (s != dnnl_success)
        return nm_fail(err, NM_ERR_BACKEND, "node '%s' (%s): oneDNN: %s",
                       L->name, opname, dnnl_status_text(s));
    return NM_OK;
}

/* Conv and Gemm: weights reordered once into the format the primitive
 * chose, optional bias, post-ops (a sum post-op may write in place). */
static nm_status build_weighted(backend_plan *p, layer_ctx *c, const nn_layer *L,
                                int li, const void *desc, const char *opname,
                                const dnnl_memory_desc_t *w_plain, nm_error *err)
{
    dnnl_primitive_desc_t pd;
    nm_status st = create_pd(p, desc, L, opname, &pd, err);
    if (st)
        return st;
    const dnnl_memory_desc_t *src_md = dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0);
    const dnnl_memory_desc_t *w_md = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    const dnnl_memory_desc_t *dst_md = dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0);
    int src_vm = -1, dst_vm = -1;
    dnnl_memory_t wmem = NULL, bmem = NULL;
    st = input_as(p, c, L->inputs[0], src_md, L->name, &src_vm, err);
    if (!st)
        st = constant_mem(p, w_plain, w_md, L->weight, L->name, &wmem, err);
    if (!st && L->bias)
        st = vector_mem(p, L->bias, L->out_channels, L->name, &bmem, err);
    if (!st)
        st = sum_output(p, c, L, li, dst_md, &dst_vm, err);
    step *sp = NULL;
    if (!st)
        st = finish_primitive(p, pd, L->name, &sp, err);
    dnnl_primitive_desc_destroy(pd);
    if (st)
        return st;
    step_vmem(sp, DNNL_ARG_SRC, src_vm);
    step_fixed(sp, DNNL_ARG_WEIGHTS, wmem);
    if (bmem)
        step_fixed(sp, DNNL_ARG_BIAS, bmem);
    step_vmem(sp, DNNL_ARG_DST, dst_vm);
    p->value_vmem[L->output] = dst_vm;
    return NM_OK;
}

static nm_status build_conv(backend_plan *p, layer_ctx *c, const nn_layer *L,
                            int li, const nn_program *prog, nm_error *err)
{
    const nn_shape *in = &prog->shapes[L->inputs[0]];
    const nn_shape *out = &prog->shapes[L->output];
    dnnl_memory_desc_t src_any, w_any, w_plain, b_md, dst_any;
    nm_status st;
    if ((st = md_init(&src_any, in, dnnl_format_tag_any, err)) ||
        (st = md_init(&dst_any, out, dnnl_format_tag_any, err)))
        return st;
    int g = L->group, oc = L->out_channels, ic = L->in_channels;
    if (g > 1) {
        dnnl_dims_t wd = {g, oc / g, ic / g, L->kernel[0], L->kernel[1]};
        DNNL_TRY(dnnl_memory_desc_init_by_tag(&w_any, 5, wd, dnnl_f32,
                                              dnnl_format_tag_any),
                 err, "%s: weights", L->name);
        DNNL_TRY(dnnl_memory_desc_init_by_tag(&w_plain, 5, wd, dnnl_f32,
                                              dnnl_goihw),
                 err, "%s: weights", L->name);
    } else {
        dnnl_dims_t wd = {oc, ic, L->kernel[0], L->kernel[1]};
        DNNL_TRY(dnnl_memory_desc_init_by_tag(&w_any, 4, wd, dnnl_f32,
                                              dnnl_format_tag_any),
                 err, "%s: weights", L->name);
        DNNL_TRY(dnnl_memory_desc_init_by_tag(&w_plain, 4, wd, dnnl_f32,
                                              dnnl_oihw),
                 err, "%s: weights", L->name);
    }
    dnnl_dims_t bd = {oc};
    DNNL_TRY(dnnl_memory_desc_init_by_tag(&b_md, 1, bd, dnnl_f32, dnnl_a), err,
             "%s: bias", L->name);
    dnnl_dims_t strides = {L->stride[0], L->stride[1]};
    dnnl_dims_t dil = {L->dilation[0] - 1, L->dilation[1] - 1};
    dnnl_dims_t pl = {L->pad_begin[0], L->pad_begin[1]};
    dnnl_dims_t pr = {L->pad_end[0], L->pad_end[1]};
    dnnl_convolution_desc_t desc;
    DNNL_TRY(dnnl_dilated_convolution_forward_desc_init(
                 &desc, dnnl_forward_inference, dnnl_convolution_direct,
                 &src_any, &w_any, L->bias ? &b_md : NULL, &dst_any, strides,
                 dil, pl, pr),
             err, "node '%s' (Conv)", L->name);
    return build_weighted(p, c, L, li, &desc, "Conv", &w_plain, err);
}

static nm_status build_gemm(backend_plan *p, layer_ctx *c, const nn_layer *L,
                            int li, const nn_program *prog, nm_error *err)
{
    const nn_shape *in = &prog->shapes[L->inputs[0]];
    const nn_shape *out = &prog->shapes[L->output];
    dnnl_memory_desc_t src_md, w_any, w_plain, b_md, dst_any;
    nm_status st;
    if ((st = md_init(&src_md, in, dnnl_nc, err)) ||
        (st = md_init(&dst_any, out, dnnl_format_tag_any, err)))
        return st;
    dnnl_dims_t wd = {L->out_channels, L->in_channels};
    dnnl_dims_t bd = {L->out_channels};
    DNNL_TRY(dnnl_memory_desc_init_by_tag(&w_any, 2, wd, dnnl_f32, dnnl_format_tag_any),
             err, "%s: weights", L->name);
    DNNL_TRY(dnnl_memory_desc_init_by_tag(&w_plain, 2, wd, dnnl_f32, dnnl_oi),
             err, "%s: weights", L->name);
    DNNL_TRY(dnnl_memory_desc_init_by_tag(&b_md, 1, bd, dnnl_f32, dnnl_a), err,
             "%s: bias", L->name);
    dnnl_inner_product_desc_t desc;
    DNNL_TRY(dnnl_inner_product_forward_desc_init(&desc, dnnl_forward_inference,
                                                  &src_md, &w_any,
                                                  L->bias ? &b_md : NULL, &dst_any),
             err, "node '%s' (Gemm)", L->name);
    return build_weighted(p, c, L, li, &desc, "Gemm", &w_plain, err);
}

/* Output vmem for an elementwise op: reuse the input's buffer when the
 * input dies at this layer (oneDNN eltwise supports in-place). */
static int eltwise_output(backend_plan *p, layer_ctx *c, const nn_layer *L,
                          int li, int in_vm, const dnnl_memory_desc_t *md)
{
    int v = L->inputs[0];
    int b = p->vmems[in_vm].buffer;
    if (in_vm == p->value_vmem[v] && p->last_use[v] == li && b >= 0 &&
        p->buffers[b].in_use == 1) {
        c->inplace_value = v;
        return add_vmem(p, md, b);
    }
    return new_value_vmem(p, md);
}

static nm_status build_eltwise(backend_plan *p, layer_ctx *c, const nn_layer *L,
                               int li, nm_error *err)
{
    int in_vm = p->value_vmem[L->inputs[0]];
    /* a copy: p->vmems may move while this layer adds vmems */
    const dnnl_memory_desc_t md_copy = p->vmems[in_vm].md, *md = &md_copy;
    dnnl_eltwise_desc_t desc;
    int relu = L->op == NN_RELU;
    DNNL_TRY(dnnl_eltwise_forward_desc_init(
                 &desc, dnnl_forward_inference,
                 relu ? dnnl_eltwise_relu : dnnl_eltwise_clip, md,
                 relu ? 0.0f : L->clip_lo, relu ? 0.0f : L->clip_hi),
             err, "node '%s' (%s)", L->name, relu ? "Relu" : "Clip");
    dnnl_primitive_desc_t pd;
    nm_status st = create_pd(p, &desc, L, relu ? "Relu" : "Clip", &pd, err);
    if (st)
        return st;
    int out_vm = eltwise_output(p, c, L, li, in_vm, md);
    step *sp = NULL;
    st = out_vm < 0 ? nomem(err) : finish_primitive(p, pd, L->name, &sp, err);
    dnnl_primitive_desc_destroy(pd);
    if (st)
        return st;
    step_vmem(sp, DNNL_ARG_SRC, in_vm);
    step_vmem(sp, DNNL_ARG_DST, out_vm);
    p->value_vmem[L->output] = out_vm;
    return NM_OK;
}

static nm_status build_batchnorm(backend_plan *p, layer_ctx *c, const nn_layer *L,
                                 int li, nm_error *err)
{
    int in_vm = p->value_vmem[L->inputs[0]];
    const dnnl_memory_desc_t md_copy = p->vmems[in_vm].md, *md = &md_copy;
    unsigned flags = dnnl_use_global_stats | dnnl_use_scale | dnnl_use_shift;
    if (L->fuse_relu)
        flags |= dnnl_fuse_norm_relu;
    dnnl_batch_normalization_desc_t desc;
    DNNL_TRY(dnnl_batch_normalization_forward_desc_init(
                 &desc, dnnl_forward_inference, md, L->epsilon, flags),
             err, "node '%s' (BatchNormalization)", L->name);
    dnnl_primitive_desc_t pd;
    nm_status st = create_pd(p, &desc, L, "BatchNormalization", &pd, err);
    if (st)
        return st;
    dnnl_memory_t scale = NULL, shift = NULL, mean = NULL, var = NULL;
    int C = L->out_channels;
    if (!(st = vector_mem(p, L->bn_scale, C, L->name, &scale, err)) &&
        !(st = vector_mem(p, L->bn_shift, C, L->name, &shift, err)) &&
        !(st = vector_mem(p, L->bn_mean, C, L->name, &mean, err)))
        st = vector_mem(p, L->bn_var, C, L->name, &var, err);
    int out_vm = -1;
    if (!st) {
        out_vm = eltwise_output(p, c, L, li, in_vm, md);
        if (out_vm < 0)
            st = nomem(err);
    }
    step *sp = NULL;
    if (!st)
        st = finish_primitive(p, pd, L->name, &sp, err);
    dnnl_primitive_desc_destroy(pd);
    if (st)
        return st;
    step_vmem(sp, DNNL_ARG_SRC, in_vm);
    step_vmem(sp, DNNL_ARG_DST, out_vm);
    step_fixed(sp, DNNL_ARG_SCALE, scale);
    step_fixed(sp, DNNL_ARG_SHIFT, shift);
    step_fixed(sp, DNNL_ARG_MEAN, mean);
    step_fixed(sp, DNNL_ARG_VARIANCE, var);
    p->value_vmem[L->output] = out_vm;
    return NM_OK;
}

static nm_status build_pool(backend_plan *p, layer_ctx *c, const nn_layer *L,
                            const nn_program *prog, nm_error *err)
{
    (void)c;
    int in_vm = p->value_vmem[L->inputs[0]];
    const dnnl_memory_desc_t src_copy = p->vmems[in_vm].md, *src_md = &src_copy;
    dnnl_memory_desc_t dst_any;
    nm_status st = md_init(&dst_any, &prog->shapes[L->output], dnnl_format_tag_any, err);
    if (st)
        return st;
    dnnl_alg_kind_t alg = L->op == NN_MAXPOOL ? dnnl_pooling_max
                          : L->count_include_pad ? dnnl_pooling_avg_include_padding
                                                 : dnnl_pooling_avg_exclude_padding;
    dnnl_dims_t strides = {L->stride[0], L->stride[1]};
    dnnl_dims_t kernel = {L->kernel[0], L->kernel[1]};
    dnnl_dims_t dil = {0, 0};
    dnnl_dims_t pl = {L->pad_begin[0], L->pad_begin[1]};
    dnnl_dims_t pr = {L->pad_end[0], L->pad_end[1]};
    dnnl_pooling_v2_desc_t desc;
    const char *opname = L->op == NN_MAXPOOL ? "MaxPool" : "AveragePool";
    DNNL_TRY(dnnl_pooling_v2_forward_desc_init(&desc, dnnl_forward_inference, alg,
                                               src_md, &dst_any, strides, kernel,
                                               dil, pl, pr),
             err, "node '%s' (%s)", L->name, opname);
    dnnl_primitive_desc_t pd;
    if ((st = create_pd(p, &desc, L, opname, &pd, err)))
        return st;
    const dnnl_memory_desc_t *dst_md = dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0);
    int out_vm = new_value_vmem(p, dst_md);
    step *sp = NULL;
    st = out_vm < 0 ? nomem(err) : finish_primitive(p, pd, L->name, &sp, err);
    dnnl_primitive_desc_destroy(pd);
    if (st)
        return st;
    step_vmem(sp, DNNL_ARG_SRC, in_vm);
    step_vmem(sp, DNNL_ARG_DST, out_vm);
    p->value_vmem[L->output] = out_vm;
    return NM_OK;
}

static nm_status build_add(backend_plan *p, layer_ctx *c, const nn_layer *L,
                           nm_error *err)
{
    int a_vm = p->value_vmem[L->inputs[0]];
    const dnnl_memory_desc_t md_copy = p->vmems[a_vm].md, *md = &md_copy;
    int b_vm = -1;
    nm_status st = input_as(p, c, L->inputs[1], md, L->name, &b_vm, err);
    if (st)
        return st;
    dnnl_binary_desc_t desc;
    DNNL_TRY(dnnl_binary_desc_init(&desc, dnnl_binary_add, md, md, md), err,
             "node '%s' (Add)", L->name);
    dnnl_primitive_desc_t pd;
    if ((st = create_pd(p, &desc, L, "Add", &pd, err)))
        return st;
    int out_vm = new_value_vmem(p, md);
    step *sp = NULL;
    st = out_vm < 0 ? nomem(err) : finish_primitive(p, pd, L->name, &sp, err);
    dnnl_primitive_desc_destroy(pd);
    if (st)
        return st;
    step_vmem(sp, DNNL_ARG_SRC_0, a_vm);
    step_vmem(sp, DNNL_ARG_SRC_1, b_vm);
    step_vmem(sp, DNNL_ARG_DST, out_vm);
    p->value_vmem[L->output] = out_vm;
    return NM_OK;
}

static nm_status build_concat(backend_plan *p, const nn_layer *L,
                              const nn_program *prog, nm_error *err)
{
    dnnl_memory_desc_t srcs[NN_MAX_INPUTS];
    for (int i = 0; i < L->n_inputs; i++)
        srcs[i] = p->vmems[p->value_vmem[L->inputs[i]]].md;
    dnnl_memory_desc_t dst_any;
    nm_status st = md_init(&dst_any, &prog->shapes[L->output], dnnl_format_tag_any, err);
    if (st)
        return st;
    dnnl_primitive_attr_t attr;
    if ((st = make_attr(&attr, err)))
        return st;
    dnnl_primitive_desc_t pd;
    dnnl_status_t s = dnnl_concat_primitive_desc_create(
        &pd, &dst_any, L->n_inputs, 1, srcs, attr, p->be->engine);
    dnnl_primitive_attr_destroy(attr);
    if (s != dnnl_success)
        return nm_fail(err, NM_ERR_BACKEND, "node '%s' (Concat): oneDNN: %s",
                       L->name, dnnl_status_text(s));
    const dnnl_memory_desc_t *dst_md = dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0);
    int out_vm = new_value_vmem(p, dst_md);
    step *sp = NULL;
    st = out_vm < 0 ? nomem(err) : finish_primitive(p, pd, L->name, &sp, err);
    dnnl_primitive_desc_destroy(pd);
    if (st)
        return st;
    for (int i = 0; i < L->n_inputs; i++)
        step_vmem(sp, DNNL_ARG_MULTIPLE_SRC + i, p->value_vmem[L->inputs[i]]);
    step_vmem(sp, DNNL_ARG_DST, out_vm);
    p->value_vmem[L->output] = out_vm;
    return NM_OK;
}

/* Flatten: reorder to plain NCHW, then view the same buffer as [N, C*H*W]. */
static nm_status build_flatten(backend_plan *p, const nn_layer *L,
                               const nn_program *prog, nm_error *err)
{
    const nn_shape *in = &prog->shapes[L->inputs[0]];
    dnnl_memory_desc_t plain, flat;
    nm_status st = md_init(&plain, in, dnnl_format_tag_undef, err);
    if (st || (st = md_init(&flat, &prog->shapes[L->output], dnnl_nc, err)))
        return st;
    int plain_vm = new_value_vmem(p, &plain);
    if (plain_vm < 0)
        return nomem(err);
    int flat_vm = add_vmem(p, &flat, p->vmems[plain_vm].buffer);
    if (flat_vm < 0)
        return nomem(err);
    st = add_reorder_step(p, p->value_vmem[L->inputs[0]], plain_vm, L->name, err);
    p->value_vmem[L->output] = flat_vm;
    return st;
}

/* ------------------------------------------------------------------- plan */

void backend_plan_free(backend_plan *p)
{
    if (!p)
        return;
    for (int i = 0; i < p->n_steps; i++)
        dnnl_primitive_destroy(p->steps[i].prim);
    for (int i = 0; i < p->n_vmems; i++)
        if (p->vmems[i].mem)
            dnnl_memory_destroy(p->vmems[i].mem);
    for (int i = 0; i < p->n_owned; i++)
        dnnl_memory_destroy(p->owned_mems[i]);
    for (int i = 0; i < p->n_buffers; i++)
        free(p->buffers[i].ptr);
    if (p->scratch_mem)
        dnnl_memory_destroy(p->scratch_mem);
    free(p->scratch);
    free(p->steps);
    free(p->vmems);
    free(p->buffers);
    free(p->owned_mems);
    free(p->tap_vmems);
    free(p->value_vmem);
    free(p->last_use);
    free(p);
}

size_t backend_plan_memory(const backend_plan *p)
{
    size_t total = p->scratch_size;
    for (int i = 0; i < p->n_buffers; i++)
        total += p->buffers[i].size;
    return total;
}

static nm_status build_layer(backend_plan *p, layer_ctx *c, const nn_layer *L,
                             int li, const nn_program *prog, nm_error *err)
{
    switch (L->op) {
    case NN_CONV: return build_conv(p, c, L, li, prog, err);
    case NN_GEMM: return build_gemm(p, c, L, li, prog, err);
    case NN_BATCHNORM: return build_batchnorm(p, c, L, li, err);
    case NN_MAXPOOL:
    case NN_AVGPOOL: return build_pool(p, c, L, prog, err);
    case NN_RELU:
    case NN_CLIP: return build_eltwise(p, c, L, li, err);
    case NN_ADD: return build_add(p, c, L, err);
    case NN_CONCAT: return build_concat(p, L, prog, err);
    case NN_FLATTEN: return build_flatten(p, L, prog, err);
    }
    return nm_fail(err, NM_ERR_INTERNAL, "node '%s': unknown layer kind", L->name);
}

/* After layer li: copy taps it produced to their plain buffers, release
 * temps and the buffers of values that died here. */
static nm_status after_layer(backend_plan *p, const layer_ctx *c,
                             const nn_layer *L, int li, const nn_program *prog,
                             nm_error *err)
{
    for (int t = 0; t < prog->n_taps; t++) {
        if (prog->taps[t] != L->output)
            continue;
        dnnl_memory_desc_t plain;
        nm_status st = md_init(&plain, &prog->shapes[L->output], dnnl_format_tag_undef, err);
        if (st)
            return st;
        int b = pool_take_dedicated(p, dnnl_memory_desc_get_size(&plain));
        int vm = b < 0 ? -1 : add_vmem(p, &plain, b);
        if (vm < 0)
            return nomem(err);
        p->tap_vmems[t] = vm;
        if ((st = add_reorder_step(p, p->value_vmem[L->output], vm, L->name, err)))
            return st;
    }
    for (int i = 0; i < c->n_temps; i++)
        pool_release(p, c->temps[i]);
    /* values whose last use is this layer */
    int used[NN_MAX_INPUTS + NN_MAX_POST];
    int n = 0;
    for (int i = 0; i < L->n_inputs; i++)
        used[n++] = L->inputs[i];
    for (int i = 0; i < L->n_post; i++)
        if (L->post[i].kind == NN_POST_SUM)
            used[n++] = L->post[i].value;
    for (int i = 0; i < n; i++) {
        int v = used[i];
        if (p->last_use[v] != li || v == prog->input_value || v == c->inplace_value)
            continue;
        pool_release(p, p->vmems[p->value_vmem[v]].buffer);
    }
    /* an output nobody reads (a tap already copied) frees its buffer too */
    if (p->last_use[L->output] < 0)
        pool_release(p, p->vmems[p->value_vmem[L->output]].buffer);
    return NM_OK;
}

static nm_status materialize(backend_plan *p, nm_error *err)
{
    for (int i = 0; i < p->n_buffers; i++) {
        size_t sz = p->buffers[i].size ? p->buffers[i].size : 64;
        /* 64-byte alignment for vector loads; size rounded up to match */
        p->buffers[i].ptr = aligned_alloc(64, (sz + 63) & ~(size_t)63);
        if (!p->buffers[i].ptr)
            return nomem(err);
    }
    for (int i = 0; i < p->n_vmems; i++) {
        vmem *m = &p->vmems[i];
        void *handle = m->buffer >= 0 ? p->buffers[m->buffer].ptr : NULL;
        DNNL_TRY(dnnl_memory_create(&m->mem, &m->md, p->be->engine, handle), err,
                 "activation memory");
    }
    if (p->scratch_size) {
        p->scratch = aligned_alloc(64, (p->scratch_size + 63) & ~(size_t)63);
        if (!p->scratch)
            return nomem(err);
        dnnl_memory_desc_t md;
        dnnl_dims_t d = {(dnnl_dim_t)p->scratch_size};
        DNNL_TRY(dnnl_memory_desc_init_by_tag(&md, 1, d, dnnl_u8, dnnl_a), err,
                 "scratchpad");
        DNNL_TRY(dnnl_memory_create(&p->scratch_mem, &md, p->be->engine, p->scratch),
                 err, "scratchpad");
    }
    return NM_OK;
}

nm_status backend_plan_build(nm_backend *be, const nn_program *prog,
                             backend_plan **out, nm_error *err)
{
    backend_plan *p = calloc(1, sizeof *p);
    if (!p)
        return nomem(err);
    p->be = be;
    p->n_taps = prog->n_taps;
    p->tap_vmems = malloc(sizeof(int) * (size_t)(prog->n_taps ? prog->n_taps : 1));
    p->value_vmem = malloc(sizeof(int) * (size_t)prog->n_values);
    p->last_use = malloc(sizeof(int) * (size_t)prog->n_values);
    nm_status st = NM_OK;
    if (!p->tap_vmems || !p->value_vmem || !p->last_use) {
        st = nomem(err);
        goto fail;
    }
    for (int v = 0; v < prog->n_values; v++) {
        p->value_vmem[v] = -1;
        p->last_use[v] = -1;
    }
    for (int t = 0; t < prog->n_taps; t++)
        p->tap_vmems[t] = -1;
    for (int li = 0; li < prog->n_layers; li++) {
        const nn_layer *L = &prog->layers[li];
        for (int i = 0; i < L->n_inputs; i++)
            p->last_use[L->inputs[i]] = li;
        for (int i = 0; i < L->n_post; i++)
            if (L->post[i].kind == NN_POST_SUM)
                p->last_use[L->post[i].value] = li;
    }
    dnnl_memory_desc_t in_md;
    if ((st = md_init(&in_md, &prog->shapes[prog->input_value], dnnl_format_tag_undef, err)))
        goto fail;
    p->input_vmem = add_vmem(p, &in_md, -1);
    if (p->input_vmem < 0) {
        st = nomem(err);
        goto fail;
    }
    p->value_vmem[prog->input_value] = p->input_vmem;
    for (int li = 0; li < prog->n_layers; li++) {
        layer_ctx c = {.n_temps = 0, .inplace_value = -1};
        const nn_layer *L = &prog->layers[li];
        if ((st = build_layer(p, &c, L, li, prog, err)) ||
            (st = after_layer(p, &c, L, li, prog, err)))
            goto fail;
    }
    for (int t = 0; t < prog->n_taps; t++) {
        if (p->tap_vmems[t] < 0) {
            st = nm_fail(err, NM_ERR_ARG, "tap %d is not produced by the program", t);
            goto fail;
        }
    }
    /* the plan knows its buffers before allocating any of them */
    if (prog->max_bytes && backend_plan_memory(p) > prog->max_bytes) {
        st = nm_fail(err, NM_ERR_LIMIT,
                     "at this input size the network needs %zu MiB of activation "
                     "memory, more than the %zu MiB allowed",
                     backend_plan_memory(p) >> 20, prog->max_bytes >> 20);
        goto fail;
    }
    if ((st = materialize(p, err)))
        goto fail;
    *out = p;
    return NM_OK;
fail:
    backend_plan_free(p);
    return st;
}

nm_status backend_plan_run(backend_plan *p, const float *input, float **tap_data,
                           nm_error *err)
{
    omp_set_num_threads(p->be->threads);
    /* oneDNN only reads the input; the cast is for its non-const API */
    if (dnnl_memory_set_data_handle(p->vmems[p->input_vmem].mem, (void *)input) !=
        dnnl_success)
        return nm_fail(err, NM_ERR_BACKEND, "oneDNN: cannot bind input");
    dnnl_exec_arg_t args[MAX_STEP_ARGS + 1];
    for (int i = 0; i < p->n_steps; i++) {
        const step *s = &p->steps[i];
        for (int a = 0; a < s->nargs; a++) {
            args[a].arg = s->args[a].arg;
            args[a].memory = s->args[a].vmem >= 0 ? p->vmems[s->args[a].vmem].mem
                                                  : s->args[a].fixed;
        }
        int n = s->nargs;
        if (p->scratch_mem) {
            args[n].arg = DNNL_ARG_SCRATCHPAD;
            args[n].memory = p->scratch_mem;
            n++;
        }
        dnnl_status_t st = dnnl_primitive_execute(s->prim, p->be->stream, n, args);
        if (st != dnnl_success)
            return nm_fail(err, NM_ERR_BACKEND, "node '%s': oneDNN execute: %s",
                           s->name, dnnl_status_text(st));
    }
    if (dnnl_stream_wait(p->be->stream) != dnnl_success)
        return nm_fail(err, NM_ERR_BACKEND, "oneDNN: stream wait failed");
    for (int t = 0; t < p->n_taps; t++)
        tap_data[t] = p->buffers[p->vmems[p->tap_vmems[t]].buffer].ptr;
    return NM_OK;
}

/* ----------------------------------------------------------------- matmul */

nm_status backend_matmul(nm_backend *be, const float *a, const float *b, float *c,
                         int64_t m, int64_t k, int64_t n, int b_transposed,
                         nm_error *err)
{
    if (m <= 0 || k <= 0 || n <= 0)
        return nm_fail(err, NM_ERR_ARG, "matmul: empty operand (%lld x %lld x %lld)",
                       (long long)m, (long long)k, (long long)n);
    dnnl_memory_desc_t a_md, b_md, c_md;
    dnnl_dims_t ad = {m, k}, bd = {k, n}, cd = {m, n};
    DNNL_TRY(dnnl_memory_desc_init_by_tag(&a_md, 2, ad, dnnl_f32, dnnl_ab), err, "matmul");
    DNNL_TRY(dnnl_memory_desc_init_by_tag(&b_md, 2, bd, dnnl_f32,
                                          b_transposed ? dnnl_ba : dnnl_ab),
             err, "matmul");
    DNNL_TRY(dnnl_memory_desc_init_by_tag(&c_md, 2, cd, dnnl_f32, dnnl_ab), err, "matmul");
    dnnl_matmul_desc_t desc;
    DNNL_TRY(dnnl_matmul_desc_init(&desc, &a_md, &b_md, NULL, &c_md), err, "matmul");
    dnnl_primitive_desc_t pd;
    /* oneDNN's primitive cache makes re-creating this for a seen shape cheap */
    DNNL_TRY(dnnl_primitive_desc_create(&pd, &desc, NULL, be->engine, NULL), err,
             "matmul %lldx%lldx%lld", (long long)m, (long long)k, (long long)n);
    dnnl_primitive_t prim = NULL;
    dnnl_memory_t am = NULL, bm = NULL, cm = NULL;
    dnnl_status_t s = dnnl_primitive_create(&prim, pd);
    dnnl_primitive_desc_destroy(pd);
    if (s == dnnl_success)
        s = dnnl_memory_create(&am, &a_md, be->engine, (void *)a);
    if (s == dnnl_success)
        s = dnnl_memory_create(&bm, &b_md, be->engine, (void *)b);
    if (s == dnnl_success)
        s = dnnl_memory_create(&cm, &c_md, be->engine, c);
    if (s == dnnl_success) {
        omp_set_num_threads(be->threads);
        dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, am}, {DNNL_ARG_WEIGHTS, bm}, {DNNL_ARG_DST, cm}};
        s = dnnl_primitive_execute(prim, be->stream, 3, args);
        if (s == dnnl_success)
            s = dnnl_stream_wait(be->stream);
    }
    if (am)
        dnnl_memory_destroy(am);
    if (bm)
        dnnl_memory_destroy(bm);
    if (cm)
        dnnl_memory_destroy(cm);
    if (prim)
        dnnl_primitive_destroy(prim);
    if (s != dnnl_success)
        return nm_fail(err, s == dnnl_out_of_memory ? NM_ERR_NOMEM : NM_ERR_BACKEND,
                       "matmul %lldx%lldx%lld: oneDNN: %s", (long long)m, (long long)k,
                       (long long)n, dnnl_status_text(s));
    return NM_OK;
}

int backend_threads(const nm_backend *be) { return be->threads; }

/* ------------------------------------------------- matmul with a fixed b */

struct backend_matmul_plan {
    nm_backend *be;
    int64_t n, k;
    dnnl_memory_desc_t b_md; /* the packed layout chosen at prepare time */
    dnnl_memory_t b_mem;     /* owned packed copy */
    int64_t m;               /* shape of the cached primitive, 0 = none */
    dnnl_primitive_t prim;
    dnnl_memory_t a_mem, c_mem, scratch_mem;
    void *scratch;
};

static void matmul_plan_drop_primitive(backend_matmul_plan *p)
{
    if (p->prim)
        dnnl_primitive_destroy(p->prim);
    if (p->a_mem)
        dnnl_memory_destroy(p->a_mem);
    if (p->c_mem)
        dnnl_memory_destroy(p->c_mem);
    if (p->scratch_mem)
        dnnl_memory_destroy(p->scratch_mem);
    free(p->scratch);
    p->prim = NULL;
    p->a_mem = p->c_mem = p->scratch_mem = NULL;
    p->scratch = NULL;
    p->m = 0;
}

void backend_matmul_plan_free(backend_matmul_plan *p)
{
    if (!p)
        return;
    matmul_plan_drop_primitive(p);
    if (p->b_mem)
        dnnl_memory_destroy(p->b_mem);
    free(p);
}

/* Primitive descriptor for m rows against b in layout b_md (any = let the
 * library choose). */
static nm_status matmul_pd(nm_backend *be, int64_t m, int64_t k, int64_t n,
                           const dnnl_memory_desc_t *b_md, dnnl_primitive_desc_t *pd,
                           nm_error *err)
{
    dnnl_memory_desc_t a_md, c_md;
    dnnl_dims_t ad = {m, k}, cd = {m, n};
    DNNL_TRY(dnnl_memory_desc_init_by_tag(&a_md, 2, ad, dnnl_f32, dnnl_ab), err, "matmul");
    DNNL_TRY(dnnl_memory_desc_init_by_tag(&c_md, 2, cd, dnnl_f32, dnnl_ab), err, "matmul");
    dnnl_matmul_desc_t desc;
    DNNL_TRY(dnnl_matmul_desc_init(&desc, &a_md, b_md, NULL, &c_md), err, "matmul");
    dnnl_primitive_attr_t attr;
    nm_status st = make_attr(&attr, err);
    if (st)
        return st;
    dnnl_status_t s = dnnl_primitive_desc_create(pd, &desc, attr, be->engine, NULL);
    dnnl_primitive_attr_destroy(attr);
    if (s != dnnl_success)
        return nm_fail(err, NM_ERR_BACKEND, "matmul %lldx%lldx%lld: oneDNN: %s",
                       (long long)m, (long long)k, (long long)n, dnnl_status_text(s));
    return NM_OK;
}

nm_status backend_matmul_prepare(nm_backend *be, const float *b, int64_t n, int64_t k,
                                 int64_t m_hint, backend_matmul_plan **out, nm_error *err)
{
    if (n <= 0 || k <= 0 || m_hint <= 0)
        return nm_fail(err, NM_ERR_ARG, "matmul plan: empty operand");
    backend_matmul_plan *p = calloc(1, sizeof *p);
    if (!p)
        return nm_fail(err, NM_ERR_NOMEM, "matmul plan: out of memory");
    p->be = be;
    p->n = n;
    p->k = k;
    dnnl_memory_desc_t any, plain;
    dnnl_dims_t bd = {k, n};
    dnnl_primitive_desc_t pd = NULL;
    nm_status st = NM_OK;
    if (dnnl_memory_desc_init_by_tag(&any, 2, bd, dnnl_f32, dnnl_format_tag_any) ||
        dnnl_memory_desc_init_by_tag(&plain, 2, bd, dnnl_f32, dnnl_ba))
        st = nm_fail(err, NM_ERR_BACKEND, "matmul plan: memory descriptor");
    if (!st)
        st = matmul_pd(be, m_hint, k, n, &any, &pd, err);
    if (!st) {
        p->b_md = *dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
        dnnl_primitive_desc_destroy(pd);
        st = packed_copy(be, &plain, &p->b_md, b, "matmul plan", &p->b_mem, err);
    }
    if (st) {
        backend_matmul_plan_free(p);
        return st;
    }
    *out = p;
    return NM_OK;
}

static nm_status matmul_plan_build(backend_matmul_plan *p, int64_t m, nm_error *err)
{
    matmul_plan_drop_primitive(p);
    dnnl_primitive_desc_t pd;
    nm_status st = matmul_pd(p->be, m, p->k, p->n, &p->b_md, &pd, err);
    if (st)
        return st;
    const dnnl_memory_desc_t *a_md = dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0);
    const dnnl_memory_desc_t *c_md = dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0);
    const dnnl_memory_desc_t *s_md = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    size_t ssz = s_md ? dnnl_memory_desc_get_size(s_md) : 0;
    dnnl_status_t s = dnnl_primitive_create(&p->prim, pd);
    if (s == dnnl_success)
        s = dnnl_memory_create(&p->a_mem, a_md, p->be->engine, NULL);
    if (s == dnnl_success)
        s = dnnl_memory_create(&p->c_mem, c_md, p->be->engine, NULL);
    if (s == dnnl_success && ssz) {
        p->scratch = aligned_alloc(64, (ssz + 63) & ~(size_t)63);
        s = p->scratch ? dnnl_memory_create(&p->scratch_mem, s_md, p->be->engine, p->scratch)
                       : dnnl_out_of_memory;
    }
    dnnl_primitive_desc_destroy(pd);
    if (s != dnnl_success) {
        matmul_plan_drop_primitive(p);
        return nm_fail(err, NM_ERR_BACKEND, "matmul plan: oneDNN: %s", dnnl_status_text(s));
    }
    p->m = m;
    return NM_OK;
}

nm_status backend_matmul_run(backend_matmul_plan *p, const float *a, int64_t m, float *c,
                             nm_error *err)
{
    if (m <= 0)
        return nm_fail(err, NM_ERR_ARG, "matmul plan: %lld rows", (long long)m);
    if (m != p->m) {
        nm_status st = matmul_plan_build(p, m, err);
        if (st)
            return st;
    }
    omp_set_num_threads(p->be->threads);
    dnnl_status_t s = dnnl_memory_set_data_handle(p->a_mem, (void *)a);
    if (s == dnnl_success)
        s = dnnl_memory_set_data_handle(p->c_mem, c);
    if (s == dnnl_success) {
        dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, p->a_mem},
                                   {DNNL_ARG_WEIGHTS, p->b_mem},
                                   {DNNL_ARG_DST, p->c_mem},
                                   {DNNL_ARG_SCRATCHPAD, p->scratch_mem}};
        s = dnnl_primitive_execute(p->prim, p->be->stream, p->scratch_mem ? 4 : 3, args);
        if (s == dnnl_success)
            s = dnnl_stream_wait(p->be->stream);
    }
    if (s != dnnl_success)
        return nm_fail(err, NM_ERR_BACKEND, "matmul plan: oneDNN execute: %s",
                       dnnl_status_text(s));
    return NM_OK;
}
