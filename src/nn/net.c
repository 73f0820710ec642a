/*
 * From an ONNX graph to a backend program.
 *
 * Choosing taps prunes the graph to the nodes those taps need, lowers each
 * node to an nn_layer (rejecting, by node/op/attribute name, anything the
 * runtime cannot run exactly), then fuses:
 *   Conv -> BatchNormalization      BN folded into the weights and bias
 *   Conv/Gemm -> Relu|Clip          eltwise post-op
 *   Conv -> Add(., other)           sum post-op (the residual connection)
 *   BatchNormalization -> Relu      oneDNN's fused BN+ReLU
 * A fusion is made only when the intermediate value has no other consumer
 * and is not a tap, so every value a caller can see is computed exactly as
 * the graph says. The fused layer takes the slot of the last node it
 * absorbed, which keeps the list in a valid execution order.
 *
 * Shapes depend on the input size (dynamic N, H, W); they are inferred per
 * run shape, and the compiled backend plan is kept until the shape changes.
 */
#include "nn/net.h"

#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/backend.h"
#include "core/error.h"

/* Extra per-layer facts that depend on the run shape. */
typedef struct layer_extra {
    int is_identity; /* ONNX Identity: no layer, its output aliases its input */
    int ceil_mode;
    int global_pool;
    int pad_end_base[2];
} layer_extra;

struct nm_net {
    onnx_graph *graph;
    nm_backend *backend;
    /* value table: value ids index these names (not owned: graph strings) */
    const char **value_names;
    int *value_alias; /* Identity outputs -> the value they equal, else -1 */
    int n_values;
    int input_value;
    /* current program */
    nn_layer *layers;
    layer_extra *extra;
    int n_layers;
    int *taps;
    int n_taps;
    float **owned; /* arrays made by lowering/fusion */
    int n_owned, cap_owned;
    nn_shape *shapes;
    backend_plan *plan;
    int plan_n, plan_h, plan_w;
    size_t memory_limit; /* bytes a plan may use, see memory_limit() */
    float **tap_data;
};

/* ------------------------------------------------------------- utilities */

static int value_id(const nm_net *net, const char *name)
{
    for (int i = net->n_values - 1; i >= 0; i--)
        if (strcmp(net->value_names[i], name) == 0)
            return i;
    return -1;
}

/* The value an id really is, looking through Identity nodes. */
static int resolve_value(const nm_net *net, int v)
{
    while (v >= 0 && net->value_alias[v] >= 0)
        v = net->value_alias[v];
    return v;
}

static float *own_floats(nm_net *net, size_t n)
{
    if (net->n_owned == net->cap_owned) {
        int cap = net->cap_owned ? net->cap_owned * 2 : 64;
        float **p = realloc(net->owned, sizeof *p * (size_t)cap);
        if (!p)
            return NULL;
        net->owned = p;
        net->cap_owned = cap;
    }
    float *a = malloc(sizeof(float) * (n ? n : 1));
    if (a)
        net->owned[net->n_owned++] = a;
    return a;
}

static void free_program(nm_net *net)
{
    backend_plan_free(net->plan);
    net->plan = NULL;
    for (int i = 0; i < net->n_owned; i++)
        free(net->owned[i]);
    net->n_owned = 0;
    free(net->layers);
    free(net->extra);
    free(net->taps);
    free(net->shapes);
    free(net->tap_data);
    net->layers = NULL;
    net->extra = NULL;
    net->taps = NULL;
    net->shapes = NULL;
    net->tap_data = NULL;
    net->n_layers = net->n_taps = 0;
}

/* ------------------------------------------------------------- lowering */

typedef struct lower_ctx {
    const onnx_graph *g;
    const onnx_node *node;
    nm_error *err;
} lower_ctx;

static nm_status unsupported(lower_ctx *c, const char *fmt, const char *detail)
{
    char what[300];
    snprintf(what, sizeof what, fmt, detail);
    return nm_fail(c->err, NM_ERR_UNSUPPORTED, "%s: node '%s' (%s): %s",
                   c->g->path, c->node->name, c->node->op_type, what);
}

static int64_t attr_int(const onnx_node *n, const char *name, int64_t dflt)
{
    const onnx_attr *a = onnx_node_attr(n, name);
    return (a && a->type == ONNX_ATTR_INT) ? a->i : dflt;
}

static float attr_float(const onnx_node *n, const char *name, float dflt)
{
    const onnx_attr *a = onnx_node_attr(n, name);
    return (a && a->type == ONNX_ATTR_FLOAT) ? a->f : dflt;
}

/* Read an INTS attribute of exactly `count` values into out (as int),
 * leaving out untouched when absent. */
static nm_status attr_ints(lower_ctx *c, const char *name, int count, int *out)
{
    const onnx_attr *a = onnx_node_attr(c->node, name);
    if (!a)
        return NM_OK;
    if (a->type != ONNX_ATTR_INTS || (int)a->count != count)
        return unsupported(c, "attribute '%s' must list 2 spatial values "
                              "(only 2-D is supported)", name);
    for (int i = 0; i < count; i++) {
        if (a->ints[i] < 0 || a->ints[i] > 65536)
            return unsupported(c, "attribute '%s' has an out-of-range value", name);
        out[i] = (int)a->ints[i];
    }
    return NM_OK;
}

/* Attributes this op accepts: anything else is rejected by name, so an
 * attribute we would silently ignore can never change the result. */
static nm_status check_known_attrs(lower_ctx *c, const char *const *known)
{
    for (int i = 0; i < c->node->n_attrs; i++) {
        const char *name = c->node->attrs[i].name;
        int ok = 0;
        for (int k = 0; known[k]; k++)
            ok |= strcmp(known[k], name) == 0;
        if (!ok)
            return unsupported(c, "attribute '%s' is not supported", name);
    }
    return NM_OK;
}

static nm_status check_auto_pad(lower_ctx *c)
{
    const onnx_attr *a = onnx_node_attr(c->node, "auto_pad");
    if (a && a->type == ONNX_ATTR_STRING && strcmp(a->s, "NOTSET") != 0 &&
        strcmp(a->s, "VALID") != 0)
        return unsupported(c, "attribute 'auto_pad'='%s' is not supported "
                              "(export with explicit pads)", a->s);
    return NM_OK;
}

/* The initializer behind `name`, looking through Identity nodes (torch's
 * exporter routes shared weights through them). */
static const onnx_tensor *resolve_initializer(const onnx_graph *g, const char *name)
{
    for (int depth = 0; depth < 64; depth++) {
        const onnx_tensor *t = onnx_graph_initializer(g, name);
        if (t)
            return t;
        int p = onnx_graph_producer(g, name);
        if (p < 0 || strcmp(g->nodes[p].op_type, "Identity") != 0 ||
            g->nodes[p].n_inputs < 1)
            return NULL;
        name = g->nodes[p].inputs[0];
    }
    return NULL;
}

/* A float initializer input of the node with the given rank (-1: any). */
static nm_status const_input(lower_ctx *c, int idx, int rank, int optional,
                             const onnx_tensor **out)
{
    *out = NULL;
    if (idx >= c->node->n_inputs || c->node->inputs[idx][0] == '\0') {
        if (optional)
            return NM_OK;
        return unsupported(c, "input %s is missing", idx == 1 ? "1" : "2+");
    }
    const char *name = c->node->inputs[idx];
    const onnx_tensor *t = resolve_initializer(c->g, name);
    if (!t)
        return unsupported(c, "input '%s' must be a constant initializer", name);
    if (t->dtype != ONNX_DTYPE_FLOAT || !t->data)
        return unsupported(c, "input '%s' has a data type other than float32", name);
    /* Layer sizes are ints computed from these dims: keep them in range. */
    if (t->count == 0 || t->count > INT_MAX)
        return unsupported(c, "input '%s' is empty or too large", name);
    if (rank >= 0 && t->rank != rank)
        return unsupported(c, "input '%s' has an unexpected rank", name);
    *out = t;
    return NM_OK;
}

static nm_status lower_conv(lower_ctx *c, nn_layer *L, layer_extra *x)
{
    static const char *const known[] = {"auto_pad", "dilations", "group",
                                        "kernel_shape", "pads", "strides", NULL};
    nm_status st;
    const onnx_tensor *w, *b;
    if ((st = check_known_attrs(c, known)) || (st = check_auto_pad(c)) ||
        (st = const_input(c, 1, 4, 0, &w)) || (st = const_input(c, 2, 1, 1, &b)))
        return st;
    (void)x;
    L->op = NN_CONV;
    L->kernel[0] = (int)w->dims[2];
    L->kernel[1] = (int)w->dims[3];
    int ks[2] = {L->kernel[0], L->kernel[1]};
    int pads[4] = {0, 0, 0, 0};
    L->stride[0] = L->stride[1] = 1;
    L->dilation[0] = L->dilation[1] = 1;
    if ((st = attr_ints(c, "kernel_shape", 2, ks)) ||
        (st = attr_ints(c, "strides", 2, L->stride)) ||
        (st = attr_ints(c, "dilations", 2, L->dilation)) ||
        (st = attr_ints(c, "pads", 4, pads)))
        return st;
    if (ks[0] != L->kernel[0] || ks[1] != L->kernel[1])
        return unsupported(c, "%s", "kernel_shape disagrees with the weight shape");
    if (L->stride[0] < 1 || L->stride[1] < 1 || L->dilation[0] < 1 || L->dilation[1] < 1)
        return unsupported(c, "%s", "strides and dilations must be >= 1");
    L->pad_begin[0] = pads[0];
    L->pad_begin[1] = pads[1];
    L->pad_end[0] = pads[2];
    L->pad_end[1] = pads[3];
    int64_t group = attr_int(c->node, "group", 1);
    if (group < 1 || w->dims[0] % group != 0)
        return unsupported(c, "%s", "attribute 'group' does not divide the output channels");
    L->group = (int)group;
    L->out_channels = (int)w->dims[0];
    L->in_channels = (int)(w->dims[1] * group);
    L->weight = w->data;
    if (b) {
        if (b->dims[0] != w->dims[0])
            return unsupported(c, "%s", "bias length differs from the output channels");
        L->bias = b->data;
    }
    return NM_OK;
}

static nm_status lower_batchnorm(lower_ctx *c, nn_layer *L)
{
    static const char *const known[] = {"epsilon", "momentum", "spatial",
                                        "training_mode", NULL};
    nm_status st;
    const onnx_tensor *t[4];
    if ((st = check_known_attrs(c, known)))
        return st;
    if (attr_int(c->node, "training_mode", 0) != 0)
        return unsupported(c, "%s", "attribute 'training_mode'=1 is not supported");
    if (attr_int(c->node, "spatial", 1) != 1)
        return unsupported(c, "%s", "attribute 'spatial'=0 is not supported");
    if (c->node->n_outputs > 1) {
        for (int i = 1; i < c->node->n_outputs; i++)
            if (c->node->outputs[i][0])
                return unsupported(c, "%s", "training outputs (running mean/var) are not supported");
    }
    for (int i = 0; i < 4; i++)
        if ((st = const_input(c, i + 1, 1, 0, &t[i])))
            return st;
    for (int i = 1; i < 4; i++)
        if (t[i]->dims[0] != t[0]->dims[0])
            return unsupported(c, "%s", "scale/bias/mean/var lengths differ");
    L->op = NN_BATCHNORM;
    L->out_channels = L->in_channels = (int)t[0]->dims[0];
    L->bn_scale = t[0]->data;
    L->bn_shift = t[1]->data;
    L->bn_mean = t[2]->data;
    L->bn_var = t[3]->data;
    L->epsilon = attr_float(c->node, "epsilon", 1e-5f);
    return NM_OK;
}

static nm_status lower_pool(lower_ctx *c, nn_layer *L, layer_extra *x, int is_max)
{
    static const char *const known_max[] = {"auto_pad", "ceil_mode", "dilations",
                                            "kernel_shape", "pads", "storage_order",
                                            "strides", NULL};
    static const char *const known_avg[] = {"auto_pad", "ceil_mode",
                                            "count_include_pad", "kernel_shape",
                                            "pads", "strides", NULL};
    nm_status st;
    if ((st = check_known_attrs(c, is_max ? known_max : known_avg)) ||
        (st = check_auto_pad(c)))
        return st;
    if (c->node->n_outputs > 1 && c->node->outputs[1][0])
        return unsupported(c, "%s", "the Indices output is not supported");
    L->op = is_max ? NN_MAXPOOL : NN_AVGPOOL;
    if (!onnx_node_attr(c->node, "kernel_shape"))
        return unsupported(c, "%s", "attribute 'kernel_shape' is missing");
    int pads[4] = {0, 0, 0, 0}, dil[2] = {1, 1};
    L->stride[0] = L->stride[1] = 1;
    if ((st = attr_ints(c, "kernel_shape", 2, L->kernel)) ||
        (st = attr_ints(c, "strides", 2, L->stride)) ||
        (st = attr_ints(c, "pads", 4, pads)) ||
        (st = attr_ints(c, "dilations", 2, dil)))
        return st;
    if (dil[0] != 1 || dil[1] != 1)
        return unsupported(c, "%s", "attribute 'dilations' other than 1 is not supported");
    if (L->kernel[0] < 1 || L->kernel[1] < 1 || L->stride[0] < 1 || L->stride[1] < 1)
        return unsupported(c, "%s", "kernel and strides must be >= 1");
    if (attr_int(c->node, "storage_order", 0) != 0)
        return unsupported(c, "%s", "attribute 'storage_order'=1 is not supported");
    L->pad_begin[0] = pads[0];
    L->pad_begin[1] = pads[1];
    x->pad_end_base[0] = pads[2];
    x->pad_end_base[1] = pads[3];
    x->ceil_mode = (int)attr_int(c->node, "ceil_mode", 0);
    L->count_include_pad = (int)attr_int(c->node, "count_include_pad", 0);
    return NM_OK;
}

static nm_status lower_clip(lower_ctx *c, nn_layer *L)
{
    L->op = NN_CLIP;
    L->clip_lo = -FLT_MAX;
    L->clip_hi = FLT_MAX;
    L->clip_lo = attr_float(c->node, "min", L->clip_lo); /* opset < 11 */
    L->clip_hi = attr_float(c->node, "max", L->clip_hi);
    for (int i = 1; i < 3 && i < c->node->n_inputs; i++) {
        const onnx_tensor *t;
        nm_status st = const_input(c, i, -1, 1, &t);
        if (st)
            return st;
        if (!t)
            continue;
        if (t->count != 1)
            return unsupported(c, "%s", "min/max must be scalars");
        if (i == 1)
            L->clip_lo = t->data[0];
        else
            L->clip_hi = t->data[0];
    }
    return NM_OK;
}

static nm_status lower_gemm(nm_net *net, lower_ctx *c, nn_layer *L)
{
    static const char *const known[] = {"alpha", "beta", "transA", "transB", NULL};
    nm_status st;
    const onnx_tensor *b, *bias;
    if ((st = check_known_attrs(c, known)) || (st = const_input(c, 1, 2, 0, &b)) ||
        (st = const_input(c, 2, -1, 1, &bias)))
        return st;
    if (attr_int(c->node, "transA", 0) != 0)
        return unsupported(c, "%s", "attribute 'transA'=1 is not supported");
    int trans_b = attr_int(c->node, "transB", 0) != 0;
    float alpha = attr_float(c->node, "alpha", 1.0f);
    float beta = attr_float(c->node, "beta", 1.0f);
    int out = (int)(trans_b ? b->dims[0] : b->dims[1]);
    int in = (int)(trans_b ? b->dims[1] : b->dims[0]);
    float *w = net ? own_floats(net, (size_t)out * (size_t)in) : NULL;
    if (net && !w)
        return nm_fail(c->err, NM_ERR_NOMEM, "out of memory");
    if (w) { /* oneDNN wants [out][in]; fold alpha in */
        for (int o = 0; o < out; o++)
            for (int i = 0; i < in; i++)
                w[(size_t)o * in + i] = alpha * (trans_b ? b->data[(size_t)o * in + i]
                                                         : b->data[(size_t)i * out + o]);
    }
    L->op = NN_GEMM;
    L->out_channels = out;
    L->in_channels = in;
    L->weight = w;
    if (bias) {
        if (bias->count != (size_t)out && bias->count != 1)
            return unsupported(c, "%s", "input C must have one value per output or be a scalar");
        float *bv = net ? own_floats(net, (size_t)out) : NULL;
        if (net && !bv)
            return nm_fail(c->err, NM_ERR_NOMEM, "out of memory");
        for (int o = 0; bv && o < out; o++)
            bv[o] = beta * bias->data[bias->count == 1 ? 0 : o];
        L->bias = bv;
    }
    return NM_OK;
}

/* Lower one node. net may be NULL for a dry check (no arrays are made). */
static nm_status lower_node(nm_net *net, const onnx_graph *g, const onnx_node *node,
                            nn_layer *L, layer_extra *x, nm_error *err)
{
    lower_ctx c = {g, node, err};
    memset(L, 0, sizeof *L);
    memset(x, 0, sizeof *x);
    L->name = node->name;
    L->group = 1;
    if (node->domain[0] && strcmp(node->domain, "ai.onnx") != 0)
        return unsupported(&c, "domain '%s' is not supported", node->domain);
    const char *op = node->op_type;
    static const char *const none[] = {NULL};
    if (strcmp(op, "Conv") == 0)
        return lower_conv(&c, L, x);
    if (strcmp(op, "BatchNormalization") == 0)
        return lower_batchnorm(&c, L);
    if (strcmp(op, "MaxPool") == 0)
        return lower_pool(&c, L, x, 1);
    if (strcmp(op, "AveragePool") == 0)
        return lower_pool(&c, L, x, 0);
    if (strcmp(op, "GlobalAveragePool") == 0) {
        L->op = NN_AVGPOOL;
        L->stride[0] = L->stride[1] = 1;
        x->global_pool = 1;
        return check_known_attrs(&c, none);
    }
    if (strcmp(op, "Relu") == 0) {
        L->op = NN_RELU;
        return check_known_attrs(&c, none);
    }
    if (strcmp(op, "Identity") == 0) {
        x->is_identity = 1;
        return check_known_attrs(&c, none);
    }
    if (strcmp(op, "Clip") == 0)
        return lower_clip(&c, L);
    if (strcmp(op, "Add") == 0 || strcmp(op, "Sum") == 0) {
        L->op = NN_ADD;
        if (node->n_inputs != 2)
            return unsupported(&c, "%s", "only two inputs are supported");
        for (int i = 0; i < 2; i++)
            if (onnx_graph_initializer(g, node->inputs[i]))
                return unsupported(&c, "adding a constant ('%s') is not supported",
                                   node->inputs[i]);
        return check_known_attrs(&c, none);
    }
    if (strcmp(op, "Concat") == 0) {
        static const char *const known[] = {"axis", NULL};
        L->op = NN_CONCAT;
        int64_t axis = attr_int(node, "axis", 0);
        if (axis != 1 && axis != -3)
            return unsupported(&c, "%s", "attribute 'axis' must be 1 (channels)");
        if (node->n_inputs < 1 || node->n_inputs > NN_MAX_INPUTS)
            return unsupported(&c, "%s", "too many inputs");
        for (int i = 0; i < node->n_inputs; i++)
            if (onnx_graph_initializer(g, node->inputs[i]))
                return unsupported(&c, "concatenating a constant ('%s') is not supported",
                                   node->inputs[i]);
        return check_known_attrs(&c, known);
    }
    if (strcmp(op, "Flatten") == 0) {
        static const char *const known[] = {"axis", NULL};
        L->op = NN_FLATTEN;
        if (attr_int(node, "axis", 1) != 1)
            return unsupported(&c, "%s", "attribute 'axis' must be 1");
        return check_known_attrs(&c, known);
    }
    if (strcmp(op, "Gemm") == 0)
        return lower_gemm(net, &c, L);
    return nm_fail(err, NM_ERR_UNSUPPORTED, "%s: node '%s': op '%s' is not supported",
                   g->path, node->name, op);
}

nm_status net_check_node(const onnx_graph *g, const onnx_node *node, nm_error *err)
{
    nn_layer L;
    layer_extra x;
    return lower_node(NULL, g, node, &L, &x, err);
}

/* --------------------------------------------------------------- fusion */

typedef struct fuse_state {
    int *producer;  /* value -> layer index, -1 */
    int *consumers; /* value -> number of uses */
    char *is_tap;
    char *removed;  /* layer -> fused away */
} fuse_state;

static int fusable_value(const fuse_state *f, int v)
{
    return f->consumers[v] == 1 && !f->is_tap[v];
}

/* Fold BN (layer b) into conv (layer a): w' = w*s, bias' = (bias-mean)*s+shift
 * with s = scale / sqrt(var + eps), per output channel. */
static nm_status fold_bn_into_conv(nm_net *net, nn_layer *conv, const nn_layer *bn,
                                   nm_error *err)
{
    int oc = conv->out_channels;
    size_t per = (size_t)(conv->in_channels / conv->group) * conv->kernel[0] * conv->kernel[1];
    float *w = own_floats(net, (size_t)oc * per);
    float *b = own_floats(net, (size_t)oc);
    if (!w || !b)
        return nm_fail(err, NM_ERR_NOMEM, "out of memory folding BatchNorm");
    for (int o = 0; o < oc; o++) {
        double s = bn->bn_scale[o] / sqrt((double)bn->bn_var[o] + bn->epsilon);
        for (size_t i = 0; i < per; i++)
            w[o * per + i] = (float)(conv->weight[o * per + i] * s);
        double cb = conv->bias ? conv->bias[o] : 0.0;
        b[o] = (float)((cb - bn->bn_mean[o]) * s + bn->bn_shift[o]);
    }
    conv->weight = w;
    conv->bias = b;
    return NM_OK;
}

/* Move the (modified) producer layer into the consumer's slot. */
static void absorb(nm_net *net, fuse_state *f, int producer, int consumer)
{
    nn_layer merged = net->layers[producer];
    layer_extra mx = net->extra[producer];
    merged.output = net->layers[consumer].output;
    merged.name = net->layers[producer].name;
    net->layers[consumer] = merged;
    net->extra[consumer] = mx;
    f->removed[producer] = 1;
    f->producer[merged.output] = consumer;
}

static nm_status fuse_layers(nm_net *net, fuse_state *f, nm_error *err)
{
    for (int li = 0; li < net->n_layers; li++) {
        nn_layer *L = &net->layers[li];
        if (f->removed[li] || L->n_inputs < 1)
            continue;
        int v = L->inputs[0];
        int pi = f->producer[v];
        nn_layer *P = pi >= 0 ? &net->layers[pi] : NULL;
        /* A BatchNorm of the wrong size stays a layer of its own, for
         * infer_shapes to refuse, instead of being folded out of bounds. */
        if (L->op == NN_BATCHNORM && P && P->op == NN_CONV && P->n_post == 0 &&
            L->in_channels == P->out_channels && fusable_value(f, v)) {
            nm_status st = fold_bn_into_conv(net, P, L, err);
            if (st)
                return st;
            absorb(net, f, pi, li);
        } else if ((L->op == NN_RELU || L->op == NN_CLIP) && P &&
                   (P->op == NN_CONV || P->op == NN_GEMM) && P->n_post < NN_MAX_POST &&
                   fusable_value(f, v)) {
            nn_post_op *po = &P->post[P->n_post++];
            po->kind = L->op == NN_RELU ? NN_POST_RELU : NN_POST_CLIP;
            po->lo = L->clip_lo;
            po->hi = L->clip_hi;
            absorb(net, f, pi, li);
        } else if (L->op == NN_RELU && P && P->op == NN_BATCHNORM && !P->fuse_relu &&
                   fusable_value(f, v)) {
            P->fuse_relu = 1;
            absorb(net, f, pi, li);
        } else if (L->op == NN_ADD) {
            /* prefer the operand computed last: the other one is the shortcut */
            for (int k = 1; k >= 0; k--) {
                int a = L->inputs[k], other = L->inputs[1 - k];
                int ai = f->producer[a];
                if (ai < 0 || a == other)
                    continue;
                nn_layer *A = &net->layers[ai];
                int has_sum = 0;
                for (int i = 0; i < A->n_post; i++)
                    has_sum |= A->post[i].kind == NN_POST_SUM;
                if (A->op != NN_CONV || has_sum || A->n_post >= NN_MAX_POST ||
                    !fusable_value(f, a))
                    continue;
                nn_post_op *po = &A->post[A->n_post++];
                po->kind = NN_POST_SUM;
                po->value = other;
                absorb(net, f, ai, li);
                break;
            }
        }
    }
    return NM_OK;
}

/* ------------------------------------------------------------ set_taps */

static nm_status build_value_table(nm_net *net, nm_error *err)
{
    const onnx_graph *g = net->graph;
    int cap = 1;
    for (int i = 0; i < g->n_nodes; i++)
        cap += g->nodes[i].n_outputs;
    net->value_names = malloc(sizeof(char *) * (size_t)cap);
    net->value_alias = malloc(sizeof(int) * (size_t)cap);
    if (!net->value_names || !net->value_alias)
        return nm_fail(err, NM_ERR_NOMEM, "out of memory");
    if (g->n_inputs != 1)
        return nm_fail(err, NM_ERR_UNSUPPORTED,
                       "%s: the graph has %d inputs; a backbone must have exactly one",
                       g->path, g->n_inputs);
    const onnx_value_info *in = &g->inputs[0];
    if (in->dtype != ONNX_DTYPE_FLOAT)
        return nm_fail(err, NM_ERR_UNSUPPORTED,
                       "%s: input '%s' is not float32 (data type %d)", g->path,
                       in->name, in->dtype);
    if (in->rank != 4 && in->rank != -1)
        return nm_fail(err, NM_ERR_UNSUPPORTED,
                       "%s: input '%s' has rank %d; an image input [N,C,H,W] is needed",
                       g->path, in->name, in->rank);
    /* nm_net_run's input is [n][3][h][w]: a graph wanting other channel
     * counts would read past it (or, worse, silently misread it). */
    if (in->rank == 4 && in->dims[1] >= 0 && in->dims[1] != 3)
        return nm_fail(err, NM_ERR_UNSUPPORTED,
                       "%s: input '%s' has %lld channels; nominal feeds RGB "
                       "images (3 channels)",
                       g->path, in->name, (long long)in->dims[1]);
    net->value_names[net->n_values++] = in->name;
    net->input_value = 0;
    for (int i = 0; i < cap; i++)
        net->value_alias[i] = -1;
    for (int i = 0; i < g->n_nodes; i++)
        for (int o = 0; o < g->nodes[i].n_outputs; o++)
            net->value_names[net->n_values++] = g->nodes[i].outputs[o];
    return NM_OK;
}

/* Which nodes the taps need: walking the sorted nodes backwards, a node is
 * needed when one of its outputs is wanted, and then its inputs are. */
static nm_status needed_nodes(const nm_net *net, char *need, nm_error *err)
{
    const onnx_graph *g = net->graph;
    char *wanted = calloc((size_t)net->n_values, 1);
    if (!wanted)
        return nm_fail(err, NM_ERR_NOMEM, "out of memory");
    for (int t = 0; t < net->n_taps; t++)
        wanted[net->taps[t]] = 1;
    for (int i = g->n_nodes - 1; i >= 0; i--) {
        const onnx_node *n = &g->nodes[i];
        need[i] = 0;
        for (int o = 0; o < n->n_outputs; o++) {
            int v = value_id(net, n->outputs[o]);
            need[i] |= v >= 0 && wanted[v];
        }
        for (int k = 0; need[i] && k < n->n_inputs; k++) {
            int v = value_id(net, n->inputs[k]); /* -1: an initializer */
            if (v >= 0)
                wanted[v] = 1;
        }
    }
    free(wanted);
    return NM_OK;
}

static nm_status lower_needed(nm_net *net, const char *need, nm_error *err)
{
    const onnx_graph *g = net->graph;
    for (int i = 0; i < g->n_nodes; i++) {
        if (!need[i])
            continue;
        const onnx_node *n = &g->nodes[i];
        nn_layer *L = &net->layers[net->n_layers];
        layer_extra *x = &net->extra[net->n_layers];
        nm_status st = lower_node(net, g, n, L, x, err);
        if (st)
            return st;
        /* every op here reads its first input (weights come after it) */
        if (n->n_inputs < 1 || !n->inputs[0][0])
            return nm_fail(err, NM_ERR_FORMAT, "%s: node '%s' (%s) has no data input",
                           g->path, n->name, n->op_type);
        if (x->is_identity) {
            /* an Identity of a weight needs nothing; of a value, an alias */
            int in = value_id(net, n->inputs[0]);
            if (in >= 0)
                net->value_alias[value_id(net, n->outputs[0])] = resolve_value(net, in);
            continue;
        }
        /* data inputs: everything that is not a weight of this op */
        int n_data = n->n_inputs;
        if (L->op == NN_CONV || L->op == NN_BATCHNORM || L->op == NN_CLIP ||
            L->op == NN_GEMM)
            n_data = 1;
        for (int k = 0; k < n_data; k++) {
            int v = resolve_value(net, value_id(net, n->inputs[k]));
            if (v < 0)
                return nm_fail(err, NM_ERR_FORMAT, "%s: node '%s' input '%s' is not a value",
                               g->path, n->name, n->inputs[k]);
            L->inputs[L->n_inputs++] = v;
        }
        L->output = value_id(net, n->outputs[0]);
        for (int o = 1; o < n->n_outputs; o++)
            if (n->outputs[o][0])
                return unsupported(&(lower_ctx){g, n, err}, "%s",
                                   "extra outputs are not supported");
        net->n_layers++;
    }
    return NM_OK;
}

static nm_status fuse_and_compact(nm_net *net, nm_error *err)
{
    for (int t = 0; t < net->n_taps; t++) {
        net->taps[t] = resolve_value(net, net->taps[t]);
        if (net->taps[t] == net->input_value)
            return nm_fail(err, NM_ERR_ARG, "%s: tap %d is the input itself",
                           net->graph->path, t);
    }
    fuse_state f;
    f.producer = malloc(sizeof(int) * (size_t)net->n_values);
    f.consumers = calloc((size_t)net->n_values, sizeof(int));
    f.is_tap = calloc((size_t)net->n_values, 1);
    f.removed = calloc((size_t)(net->n_layers ? net->n_layers : 1), 1);
    nm_status st = NM_OK;
    if (!f.producer || !f.consumers || !f.is_tap || !f.removed) {
        st = nm_fail(err, NM_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (int v = 0; v < net->n_values; v++)
        f.producer[v] = -1;
    for (int li = 0; li < net->n_layers; li++) {
        f.producer[net->layers[li].output] = li;
        for (int k = 0; k < net->layers[li].n_inputs; k++)
            f.consumers[net->layers[li].inputs[k]]++;
    }
    for (int t = 0; t < net->n_taps; t++)
        f.is_tap[net->taps[t]] = 1;
    if ((st = fuse_layers(net, &f, err)))
        goto done;
    int n = 0;
    for (int li = 0; li < net->n_layers; li++) {
        if (f.removed[li])
            continue;
        net->layers[n] = net->layers[li];
        net->extra[n] = net->extra[li];
        n++;
    }
    net->n_layers = n;
done:
    free(f.producer);
    free(f.consumers);
    free(f.is_tap);
    free(f.removed);
    return st;
}

nm_status nm_net_set_taps(nm_net *net, const char *const *names, int n_taps,
                          nm_error *err)
{
    if (!net || !names || n_taps < 1)
        return nm_fail(err, NM_ERR_ARG, "nm_net_set_taps: need at least one tap");
    free_program(net);
    const onnx_graph *g = net->graph;
    net->taps = malloc(sizeof(int) * (size_t)n_taps);
    net->tap_data = calloc((size_t)n_taps, sizeof(float *));
    net->layers = calloc((size_t)(g->n_nodes ? g->n_nodes : 1), sizeof(nn_layer));
    net->extra = calloc((size_t)(g->n_nodes ? g->n_nodes : 1), sizeof(layer_extra));
    net->shapes = calloc((size_t)net->n_values, sizeof(nn_shape));
    char *need = calloc((size_t)(g->n_nodes ? g->n_nodes : 1), 1);
    nm_status st = NM_OK;
    if (!net->taps || !net->tap_data || !net->layers || !net->extra || !net->shapes || !need) {
        st = nm_fail(err, NM_ERR_NOMEM, "out of memory");
        goto fail;
    }
    for (int t = 0; t < n_taps; t++) {
        int v = value_id(net, names[t]);
        if (v < 0) {
            st = nm_fail(err, NM_ERR_ARG,
                         "%s: no tensor named '%s' (see `nominal info` for names)",
                         g->path, names[t]);
            goto fail;
        }
        if (v == net->input_value) {
            st = nm_fail(err, NM_ERR_ARG, "%s: tap '%s' is the input itself", g->path,
                         names[t]);
            goto fail;
        }
        net->taps[t] = v;
    }
    net->n_taps = n_taps;
    if ((st = needed_nodes(net, need, err)) || (st = lower_needed(net, need, err)) ||
        (st = fuse_and_compact(net, err)))
        goto fail;
    free(need);
    return NM_OK;
fail:
    free(need);
    free_program(net);
    return st;
}

/* --------------------------------------------------------------- shapes */

static nm_status shape_error(const nm_net *net, const nn_layer *L, const char *what,
                             nm_error *err)
{
    return nm_fail(err, NM_ERR_ARG, "%s: node '%s': %s", net->graph->path, L->name, what);
}

/* A mismatch no input size can avoid (channels, ranks): the file is bad. */
static nm_status graph_error(const nm_net *net, const nn_layer *L, const char *what,
                             nm_error *err)
{
    return nm_fail(err, NM_ERR_FORMAT, "%s: node '%s': %s", net->graph->path, L->name,
                   what);
}

/* Add operands of different shapes: a broken graph when ranks or channels
 * differ, else (spatial sizes) a matter of this input size. */
static nm_status add_mismatch(const nm_net *net, const nn_layer *L, const nn_shape *a,
                              const nn_shape *b, const char *what, nm_error *err)
{
    if (a->rank != b->rank || a->dims[1] != b->dims[1])
        return graph_error(net, L, what, err);
    return shape_error(net, L, what, err);
}

/* Spatial output size of a window op; for ceil mode also the extra end
 * padding so that oneDNN (which has no ceil mode) sees the same windows:
 * like PyTorch, the last window must start inside the input or left pad.
 * In 64 bits: sizes, kernels and pads come from the file. */
static int64_t window_out(int64_t in, int64_t k, int64_t s, int64_t dil, int64_t pb,
                          int *pe, int ceil_mode)
{
    int64_t span = dil * (k - 1) + 1;
    int64_t num = in + pb + *pe - span;
    if (num < 0)
        return 0;
    int64_t out = num / s + 1;
    if (ceil_mode && num % s) {
        out = (num + s - 1) / s + 1;
        if ((out - 1) * s >= in + pb)
            out--;
        int64_t need = (out - 1) * s + span - in - pb;
        if (need > *pe)
            *pe = (int)need; /* below s + span: a few times 65536 at most */
    }
    return out;
}

static int same_shape(const nn_shape *a, const nn_shape *b)
{
    if (a->rank != b->rank)
        return 0;
    for (int d = 0; d < a->rank; d++)
        if (a->dims[d] != b->dims[d])
            return 0;
    return 1;
}

/* Every value a plan holds: dims >= 1 and at most NET_MAX_ELEMENTS elements
 * (8 GiB of floats), so that every dim and count fits an int. */
#define NET_MAX_ELEMENTS ((int64_t)INT_MAX)

static int shape_is_sane(const nn_shape *s)
{
    int64_t count = 1;
    for (int d = 0; d < s->rank; d++) {
        if (s->dims[d] < 1 || s->dims[d] > NET_MAX_ELEMENTS / count)
            return 0;
        count *= s->dims[d];
    }
    return 1;
}

static nm_status infer_shapes(nm_net *net, int n, int h, int w, nm_error *err)
{
    nn_shape *S = net->shapes;
    S[net->input_value] = (nn_shape){4, {n, 3, h, w}};
    for (int li = 0; li < net->n_layers; li++) {
        nn_layer *L = &net->layers[li];
        layer_extra *x = &net->extra[li];
        const nn_shape *in = &S[L->inputs[0]];
        nn_shape out = *in;
        char msg[200];
        switch (L->op) {
        case NN_CONV:
        case NN_MAXPOOL:
        case NN_AVGPOOL:
            if (in->rank != 4)
                return graph_error(net, L, "needs a 4-D input", err);
            if (L->op == NN_CONV && in->dims[1] != L->in_channels) {
                snprintf(msg, sizeof msg, "input has %lld channels, weights expect %d",
                         (long long)in->dims[1], L->in_channels);
                return graph_error(net, L, msg, err);
            }
            if (x->global_pool) {
                L->kernel[0] = (int)in->dims[2];
                L->kernel[1] = (int)in->dims[3];
            }
            if (L->op != NN_CONV) {
                L->pad_end[0] = x->pad_end_base[0];
                L->pad_end[1] = x->pad_end_base[1];
            }
            for (int d = 0; d < 2; d++) {
                int64_t o = window_out(in->dims[2 + d], L->kernel[d], L->stride[d],
                                   L->op == NN_CONV ? L->dilation[d] : 1, L->pad_begin[d],
                                   &L->pad_end[d], L->op != NN_CONV && x->ceil_mode);
                if (o < 1)
                    return shape_error(net, L, "input is too small for the kernel", err);
                out.dims[2 + d] = o;
            }
            if (L->op == NN_AVGPOOL && L->count_include_pad &&
                (L->pad_end[0] != x->pad_end_base[0] || L->pad_end[1] != x->pad_end_base[1]))
                return shape_error(net, L, "ceil_mode with count_include_pad needs "
                                           "a partial window that oneDNN cannot express", err);
            if (L->op == NN_CONV)
                out.dims[1] = L->out_channels;
            break;
        case NN_BATCHNORM:
            if (in->rank < 2 || in->dims[1] != L->in_channels)
                return graph_error(net, L, "channel count differs from the BatchNorm size", err);
            break;
        case NN_ADD:
            if (!same_shape(in, &S[L->inputs[1]]))
                return add_mismatch(net, L, in, &S[L->inputs[1]],
                                    "inputs differ in shape (broadcasting is not supported)",
                                    err);
            break;
        case NN_CONCAT:
            out.dims[1] = 0;
            for (int k = 0; k < L->n_inputs; k++) {
                const nn_shape *s = &S[L->inputs[k]];
                if (s->rank != in->rank || s->dims[0] != in->dims[0] ||
                    (s->rank == 4 && (s->dims[2] != in->dims[2] || s->dims[3] != in->dims[3])))
                    return shape_error(net, L, "inputs differ in shape", err);
                out.dims[1] += s->dims[1];
            }
            break;
        case NN_FLATTEN:
            out.rank = 2;
            out.dims[1] = in->rank == 4 ? in->dims[1] * in->dims[2] * in->dims[3] : in->dims[1];
            out.dims[2] = out.dims[3] = 0;
            break;
        case NN_GEMM:
            if (in->rank != 2 || in->dims[1] != L->in_channels)
                return shape_error(net, L, "input is not [N, K] with K matching the weights", err);
            out.dims[1] = L->out_channels;
            break;
        case NN_RELU:
        case NN_CLIP:
            break;
        }
        /* an Add fused into a Conv is checked here, where it now lives */
        for (int i = 0; i < L->n_post; i++)
            if (L->post[i].kind == NN_POST_SUM && !same_shape(&out, &S[L->post[i].value]))
                return add_mismatch(net, L, &out, &S[L->post[i].value],
                                    "the Add after it has inputs of different shapes "
                                    "(broadcasting is not supported)", err);
        if (!shape_is_sane(&out))
            return nm_fail(err, NM_ERR_LIMIT,
                           "%s: node '%s': output would have more than %lld elements",
                           net->graph->path, L->name, (long long)NET_MAX_ELEMENTS);
        S[L->output] = out;
    }
    return NM_OK;
}

/* ---------------------------------------------------------------- public */

/* Finish opening once the graph is loaded: value table, a check of every
 * node (naming the first one we cannot run), backend, default taps. */
static nm_status net_init(nm_net *net, const nm_net_options *opts, nm_error *err)
{
    nm_status st;
    if ((st = build_value_table(net, err)))
        return st;
    for (int i = 0; i < net->graph->n_nodes; i++)
        if ((st = net_check_node(net->graph, &net->graph->nodes[i], err)))
            return st;
    if ((st = backend_create(opts ? opts->threads : 0, &net->backend, err)))
        return st;
    const onnx_graph *g = net->graph;
    const char *outs[64];
    int n = g->n_outputs < 64 ? g->n_outputs : 64;
    for (int i = 0; i < n; i++)
        outs[i] = g->outputs[i].name;
    if (n == 0)
        return nm_fail(err, NM_ERR_FORMAT, "%s: graph has no outputs", g->path);
    st = nm_net_set_taps(net, outs, n, err);
    if (st == NM_ERR_ARG) { /* the file's own outputs, not the caller's taps */
        st = NM_ERR_UNSUPPORTED;
        if (err)
            err->code = st;
    }
    return st;
}

/* How much activation memory a plan may take: NOMINAL_MEMORY_LIMIT_MB when
 * set, else the machine's physical memory. A tiny graph can ask for far
 * more (a Concat of 64 copies of a value, 64 times over): it is refused
 * with a message instead of allocating until the kernel kills us. */
static size_t memory_limit(void)
{
    const char *env = getenv("NOMINAL_MEMORY_LIMIT_MB");
    long long mb = env ? strtoll(env, NULL, 10) : 0;
    if (mb > 0 && (unsigned long long)mb <= SIZE_MAX >> 20)
        return (size_t)mb << 20;
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    return pages > 0 && page > 0 ? (size_t)pages * (size_t)page : 0;
}

/* Open from a file (data NULL) or from bytes in memory. */
static nm_status net_open_from(const char *path, const uint8_t *data, size_t size,
                               const nm_net_options *opts, nm_net **out, nm_error *err)
{
    if (!path || !out)
        return nm_fail(err, NM_ERR_ARG, "nm_net_open: missing argument");
    nm_net *net = calloc(1, sizeof *net);
    if (!net)
        return nm_fail(err, NM_ERR_NOMEM, "out of memory");
    net->memory_limit = memory_limit();
    nm_status st = data ? onnx_graph_load_memory(data, size, path, &net->graph, err)
                        : onnx_graph_load(path, &net->graph, err);
    if (!st)
        st = net_init(net, opts, err);
    if (st) {
        nm_net_close(net);
        return st;
    }
    *out = net;
    return NM_OK;
}

nm_status nm_net_open(const char *onnx_path, const nm_net_options *opts, nm_net **out,
                      nm_error *err)
{
    return net_open_from(onnx_path, NULL, 0, opts, out, err);
}

nm_status net_open_memory(const uint8_t *data, size_t size, const char *name,
                          const nm_net_options *opts, nm_net **out, nm_error *err)
{
    if (!data)
        return nm_fail(err, NM_ERR_ARG, "net_open_memory: no data");
    return net_open_from(name, data, size, opts, out, err);
}

nm_backend *net_backend(const nm_net *net) { return net->backend; }

void nm_net_close(nm_net *net)
{
    if (!net)
        return;
    free_program(net);
    free(net->owned);
    backend_destroy(net->backend);
    free(net->value_names);
    free(net->value_alias);
    onnx_graph_free(net->graph);
    free(net);
}

int nm_net_output_count(const nm_net *net) { return net->graph->n_outputs; }

const char *nm_net_output_name(const nm_net *net, int i)
{
    return (i >= 0 && i < net->graph->n_outputs) ? net->graph->outputs[i].name : NULL;
}

/* The backend knows layers, not files: put the model's name in front. */
static nm_status with_model_name(const nm_net *net, nm_status st, nm_error *err)
{
    if (st != NM_OK && err) {
        char msg[sizeof err->msg];
        snprintf(msg, sizeof msg, "%s", err->msg);
        nm_fail(err, st, "%s: %s", net->graph->path, msg);
    }
    return st;
}

nm_status nm_net_run(nm_net *net, const float *input, int n, int h, int w,
                     nm_tensor *taps, nm_error *err)
{
    if (!net || !input || !taps || n < 1 || h < 1 || w < 1)
        return nm_fail(err, NM_ERR_ARG, "nm_net_run: invalid arguments");
    if (!net->n_taps)
        return nm_fail(err, NM_ERR_ARG, "nm_net_run: no taps selected");
    nm_status st;
    if (!net->plan || net->plan_n != n || net->plan_h != h || net->plan_w != w) {
        backend_plan_free(net->plan);
        net->plan = NULL;
        if ((st = infer_shapes(net, n, h, w, err)))
            return st;
        nn_program prog = {net->layers, net->n_layers, net->n_values, net->input_value,
                           net->shapes, net->taps, net->n_taps, net->memory_limit};
        if ((st = backend_plan_build(net->backend, &prog, &net->plan, err)))
            return with_model_name(net, st, err);
        net->plan_n = n;
        net->plan_h = h;
        net->plan_w = w;
    }
    if ((st = backend_plan_run(net->plan, input, net->tap_data, err)))
        return with_model_name(net, st, err);
    for (int t = 0; t < net->n_taps; t++) {
        const nn_shape *s = &net->shapes[net->taps[t]];
        taps[t].rank = s->rank;
        for (int d = 0; d < 4; d++)
            taps[t].dims[d] = d < s->rank ? s->dims[d] : 1;
        taps[t].data = net->tap_data[t];
    }
    return NM_OK;
}

const onnx_graph *net_graph(const nm_net *net) { return net->graph; }

int net_layer_count(const nm_net *net) { return net->n_layers; }

const char *net_backend_description(const nm_net *net)
{
    return backend_describe(net->backend);
}

size_t net_plan_memory(const nm_net *net)
{
    return net->plan ? backend_plan_memory(net->plan) : 0;
}
