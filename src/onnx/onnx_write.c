/*
 * Writing the part of a graph that computes some values as a standalone
 * ONNX model (see onnx_write.h).
 *
 * 1. Find what is needed: walk back from the requested values through the
 *    nodes producing them, marking nodes, initializers and graph inputs.
 * 2. Work out the rank of requested intermediate values, which the file
 *    must declare (see "output rank" below).
 * 3. Describe it with protobuf-c message structs that point into the graph
 *    (names, attribute lists, weights): nothing large is copied, so the
 *    only extra memory is the packed buffer itself. protobuf-c's fields are
 *    not const-qualified, but packing only reads them.
 * 4. Pack into one malloc'ed buffer.
 *
 * The output is deterministic (no paths, dates or metadata): the same graph
 * and outputs always give the same bytes.
 */
#include "onnx/onnx_write.h"

#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "onnx/onnx.pb-c.h"
#include "onnx/onnx_name_table.h"

/* A protobuf message cannot reach 2 GiB. */
#define ONNX_MAX_MESSAGE_BYTES ((size_t)1 << 31)
/* Before IR version 4, initializers also had to be listed as graph inputs;
 * a graph without a version is written in that oldest accepted form. */
#define IR_VERSION_INITIALIZERS_NOT_INPUTS 4
#define IR_VERSION_FALLBACK 3

/* ------------------------------------------------------------ what to keep */

/* Who defines a value, as stored in the name table: node index (>= 0), or
 * an encoded input / initializer index (<= -2; -1 means "absent"). */
static int encode_input(int j) { return -2 - j; }
static int encode_initializer(const onnx_graph *g, int k)
{
    return -2 - g->n_inputs - k;
}

/* The graph, its value table, and what the subgraph keeps of it. */
typedef struct subgraph {
    const onnx_graph *g;
    onnx_name_table defs; /* value name -> definer */
    char *nodes;          /* per index in g: 1 if kept */
    char *initializers;
    char *inputs;
    int *stack;     /* nodes whose inputs are still to be marked */
    int top;
    int *node_rank; /* rank of each kept node's first output, -1 unknown */
} subgraph;

static nm_status out_of_memory(const onnx_graph *g, nm_error *err)
{
    return nm_fail(err, NM_ERR_NOMEM, "%s: out of memory writing a subgraph",
                   g->path);
}

static void subgraph_free(subgraph *sg)
{
    onnx_name_table_free(&sg->defs);
    free(sg->nodes);
    free(sg->initializers);
    free(sg->inputs);
    free(sg->stack);
    free(sg->node_rank);
}

static nm_status define_all(subgraph *sg, nm_error *err)
{
    const onnx_graph *g = sg->g;
    size_t n = (size_t)g->n_inputs + (size_t)g->n_initializers;
    for (int i = 0; i < g->n_nodes; i++)
        n += (size_t)g->nodes[i].n_outputs;
    if (onnx_name_table_init(&sg->defs, n) != 0)
        return out_of_memory(g, err);
    /* Names are unique in a loaded graph; add() keeps the first anyway. */
    for (int j = 0; j < g->n_inputs; j++)
        onnx_name_table_add(&sg->defs, g->inputs[j].name, encode_input(j),
                            NULL);
    for (int k = 0; k < g->n_initializers; k++)
        onnx_name_table_add(&sg->defs, g->initializers[k].name,
                            encode_initializer(g, k), NULL);
    for (int i = 0; i < g->n_nodes; i++) {
        for (int o = 0; o < g->nodes[i].n_outputs; o++) {
            if (g->nodes[i].outputs[o][0]) /* "" = omitted output */
                onnx_name_table_add(&sg->defs, g->nodes[i].outputs[o], i,
                                    NULL);
        }
    }
    return NM_OK;
}

static nm_status subgraph_init(subgraph *sg, const onnx_graph *g,
                               nm_error *err)
{
    memset(sg, 0, sizeof *sg);
    sg->g = g;
    /* +1: calloc(0) may return NULL */
    size_t n_nodes = (size_t)g->n_nodes + 1;
    sg->nodes = calloc(n_nodes, 1);
    sg->initializers = calloc((size_t)g->n_initializers + 1, 1);
    sg->inputs = calloc((size_t)g->n_inputs + 1, 1);
    sg->stack = calloc(n_nodes, sizeof *sg->stack);
    sg->node_rank = calloc(n_nodes, sizeof *sg->node_rank);
    if (!sg->nodes || !sg->initializers || !sg->inputs || !sg->stack ||
        !sg->node_rank)
        return out_of_memory(g, err);
    return define_all(sg, err);
}

static void mark(subgraph *sg, int definer)
{
    int n_inputs = sg->g->n_inputs;
    if (definer >= 0) {
        if (!sg->nodes[definer]) {
            sg->nodes[definer] = 1;
            sg->stack[sg->top++] = definer; /* at most once per node */
        }
    } else if (-2 - definer < n_inputs) {
        sg->inputs[-2 - definer] = 1;
    } else {
        sg->initializers[-2 - definer - n_inputs] = 1;
    }
}

static nm_status check_requested(const subgraph *sg,
                                 const char *const *outputs, int n_outputs,
                                 nm_error *err)
{
    const char *path = sg->g->path;
    if (!outputs || n_outputs <= 0)
        return nm_fail(err, NM_ERR_ARG, "%s: no output values requested",
                       path);
    for (int i = 0; i < n_outputs; i++) {
        if (!outputs[i] || !outputs[i][0])
            return nm_fail(err, NM_ERR_ARG, "%s: output #%d has no name", path,
                           i);
        if (onnx_name_table_find(&sg->defs, outputs[i]) == -1)
            return nm_fail(err, NM_ERR_ARG,
                           "%s: no value named '%s' in the graph", path,
                           outputs[i]);
        for (int j = 0; j < i; j++) {
            if (strcmp(outputs[i], outputs[j]) == 0)
                return nm_fail(err, NM_ERR_ARG,
                               "%s: output '%s' is requested twice", path,
                               outputs[i]);
        }
    }
    return NM_OK;
}

/* Marks the requested values' definers, then the definers of every input
 * of every marked node. */
static nm_status find_needed(subgraph *sg, const char *const *outputs,
                             int n_outputs, nm_error *err)
{
    nm_status st = check_requested(sg, outputs, n_outputs, err);
    for (int i = 0; i < n_outputs && st == NM_OK; i++)
        mark(sg, onnx_name_table_find(&sg->defs, outputs[i]));
    while (st == NM_OK && sg->top > 0) {
        const onnx_node *node = &sg->g->nodes[sg->stack[--sg->top]];
        for (int j = 0; j < node->n_inputs && st == NM_OK; j++) {
            if (!node->inputs[j][0]) /* omitted optional input */
                continue;
            int definer = onnx_name_table_find(&sg->defs, node->inputs[j]);
            if (definer == -1) /* the loader checked every input */
                st = nm_fail(err, NM_ERR_INTERNAL,
                             "%s: input '%s' of node '%s' is not defined",
                             sg->g->path, node->inputs[j], node->name);
            else
                mark(sg, definer);
        }
    }
    return st;
}

/* ------------------------------------------------------------ output rank */

/*
 * Graph outputs must declare a shape for onnx.checker (and the file keeps
 * no types for intermediate values), so a requested intermediate value is
 * declared with its rank and unknown dimensions. The rank comes from a
 * small table of how ops relate output rank to input rank; for any other
 * op it stays unknown and the output is declared without a shape (valid
 * protobuf and accepted by runtimes, though the strict checker wants one).
 */
static const char *const same_rank_ops[] = {
    "Abs", "AveragePool", "BatchNormalization", "Cast", "Ceil", "Celu",
    "Clip", "Concat", "Conv", "ConvTranspose", "DepthToSpace", "Dropout",
    "Elu", "Erf", "Exp", "Floor", "GlobalAveragePool", "GlobalLpPool",
    "GlobalMaxPool", "HardSigmoid", "HardSwish", "Identity",
    "InstanceNormalization", "LRN", "LeakyRelu", "Log", "LogSoftmax",
    "LpPool", "MaxPool", "Neg", "PRelu", "Pad", "Reciprocal", "Relu",
    "Resize", "Round", "Selu", "Sigmoid", "Sign", "Slice", "Softmax",
    "Softplus", "Softsign", "SpaceToDepth", "Split", "Sqrt", "Tanh", "Tile",
    "Transpose", "Upsample", NULL};
/* Numpy broadcasting: the largest input rank. */
static const char *const broadcast_ops[] = {
    "Add", "And", "Div", "Equal", "Greater", "Less", "Max", "Mean", "Min",
    "Mul", "Or", "Pow", "Sub", "Sum", "Where", NULL};
/* Rank kept when keepdims is absent or non-zero. */
static const char *const reduce_ops[] = {
    "ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceMax",
    "ReduceMean", "ReduceMin", "ReduceProd", "ReduceSum", "ReduceSumSquare",
    NULL};

static int op_in(const char *op, const char *const *list)
{
    for (; *list; list++) {
        if (strcmp(op, *list) == 0)
            return 1;
    }
    return 0;
}

/* Rank of a value defined before the node being ranked, -1 if unknown. */
static int value_rank(const subgraph *sg, const char *name)
{
    const onnx_graph *g = sg->g;
    int definer = onnx_name_table_find(&sg->defs, name);
    if (definer == -1)
        return -1;
    if (definer >= 0) {
        const onnx_node *node = &g->nodes[definer];
        /* Only the first output's rank is known, except Split's. */
        int first = strcmp(node->outputs[0], name) == 0 ||
                    strcmp(node->op_type, "Split") == 0;
        return first ? sg->node_rank[definer] : -1;
    }
    if (-2 - definer < g->n_inputs)
        return g->inputs[-2 - definer].rank;
    return g->initializers[-2 - definer - g->n_inputs].rank;
}

static int input_rank(const subgraph *sg, const onnx_node *node, int j)
{
    if (j >= node->n_inputs || !node->inputs[j][0])
        return -1;
    return value_rank(sg, node->inputs[j]);
}

/* Rank of a Reshape's output: the length of its shape, if constant. */
static int reshape_rank(const subgraph *sg, const onnx_node *node)
{
    if (node->n_inputs < 2)
        return -1;
    const onnx_tensor *shape = onnx_graph_initializer(sg->g, node->inputs[1]);
    return shape && shape->rank == 1 && shape->dims[0] <= ONNX_MAX_RANK
               ? (int)shape->dims[0]
               : -1;
}

static int infer_rank(const subgraph *sg, const onnx_node *node)
{
    const char *op = node->op_type;
    if (node->domain[0])
        return -1;
    if (op_in(op, same_rank_ops))
        return input_rank(sg, node, 0);
    if (op_in(op, broadcast_ops)) {
        int rank = -1;
        for (int j = 0; j < node->n_inputs; j++) {
            int r = input_rank(sg, node, j);
            if (r < 0)
                return -1;
            rank = r > rank ? r : rank;
        }
        return rank;
    }
    if (op_in(op, reduce_ops)) {
        const onnx_attr *keep = onnx_node_attr(node, "keepdims");
        return keep && keep->i == 0 ? -1 : input_rank(sg, node, 0);
    }
    if (strcmp(op, "Flatten") == 0 || strcmp(op, "Gemm") == 0)
        return 2;
    if (strcmp(op, "MatMul") == 0) { /* 1-D operands are special */
        int a = input_rank(sg, node, 0), b = input_rank(sg, node, 1);
        return a >= 2 && b >= 2 ? (a > b ? a : b) : -1;
    }
    if (strcmp(op, "Reshape") == 0)
        return reshape_rank(sg, node);
    return -1;
}

/* Kept nodes in graph order: every input's rank is known by then. */
static void infer_ranks(subgraph *sg)
{
    for (int i = 0; i < sg->g->n_nodes; i++)
        sg->node_rank[i] = sg->nodes[i] ? infer_rank(sg, &sg->g->nodes[i]) : -1;
}

/* ------------------------------------------------------ protobuf structs */

/* A ValueInfoProto with everything it points to. */
typedef struct proto_value {
    Onnx__ValueInfoProto info;
    Onnx__TypeProto type;
    Onnx__TypeProto__Tensor tensor;
    Onnx__TensorShapeProto shape;
    Onnx__TensorShapeProto__Dimension dims[ONNX_MAX_RANK];
    Onnx__TensorShapeProto__Dimension *dim_ptrs[ONNX_MAX_RANK];
} proto_value;

typedef struct proto_tensor {
    Onnx__TensorProto tensor;
    int64_t dims[ONNX_MAX_RANK];
    uint8_t *swapped; /* little-endian copy, big-endian hosts only */
} proto_tensor;

typedef struct proto_model {
    Onnx__ModelProto model;
    Onnx__GraphProto graph;
    Onnx__OperatorSetIdProto opset;
    Onnx__OperatorSetIdProto *opset_ptr;
    Onnx__NodeProto *nodes;
    Onnx__NodeProto **node_ptrs;
    Onnx__AttributeProto *attrs; /* all kept nodes' attributes */
    Onnx__AttributeProto **attr_ptrs;
    proto_tensor *tensors;
    Onnx__TensorProto **tensor_ptrs;
    proto_value *values; /* graph inputs, then outputs */
    Onnx__ValueInfoProto **value_ptrs;
} proto_model;

static void proto_free(proto_model *pm, int n_tensors)
{
    for (int i = 0; pm->tensors && i < n_tensors; i++)
        free(pm->tensors[i].swapped);
    free(pm->nodes);
    free(pm->node_ptrs);
    free(pm->attrs);
    free(pm->attr_ptrs);
    free(pm->tensors);
    free(pm->tensor_ptrs);
    free(pm->values);
    free(pm->value_ptrs);
}

/* Sizes of what is kept. */
typedef struct kept_counts {
    int nodes, attrs, initializers, inputs, values;
} kept_counts;

static kept_counts count_kept(const subgraph *sg, int n_outputs,
                              int inits_are_inputs)
{
    const onnx_graph *g = sg->g;
    kept_counts c = {0, 0, 0, 0, 0};
    for (int i = 0; i < g->n_nodes; i++) {
        if (sg->nodes[i]) {
            c.nodes++;
            c.attrs += g->nodes[i].n_attrs;
        }
    }
    for (int k = 0; k < g->n_initializers; k++)
        c.initializers += sg->initializers[k];
    for (int j = 0; j < g->n_inputs; j++)
        c.inputs += sg->inputs[j];
    if (inits_are_inputs)
        c.inputs += c.initializers;
    c.values = c.inputs + n_outputs;
    return c;
}

static int proto_alloc(proto_model *pm, kept_counts c)
{
    /* +1 everywhere: calloc(0) may return NULL */
    pm->nodes = calloc((size_t)c.nodes + 1, sizeof *pm->nodes);
    pm->node_ptrs = calloc((size_t)c.nodes + 1, sizeof *pm->node_ptrs);
    pm->attrs = calloc((size_t)c.attrs + 1, sizeof *pm->attrs);
    pm->attr_ptrs = calloc((size_t)c.attrs + 1, sizeof *pm->attr_ptrs);
    pm->tensors = calloc((size_t)c.initializers + 1, sizeof *pm->tensors);
    pm->tensor_ptrs =
        calloc((size_t)c.initializers + 1, sizeof *pm->tensor_ptrs);
    pm->values = calloc((size_t)c.values + 1, sizeof *pm->values);
    pm->value_ptrs = calloc((size_t)c.values + 1, sizeof *pm->value_ptrs);
    return pm->nodes && pm->node_ptrs && pm->attrs && pm->attr_ptrs &&
                   pm->tensors && pm->tensor_ptrs && pm->values &&
                   pm->value_ptrs
               ? 0
               : -1;
}

/* protobuf-c declares string fields `char *`; packing never writes. */
static char *pb_string(const char *s)
{
    return (char *)s;
}

/* ----------------------------------------------------------- value infos */

/* dtype 0 = unknown; rank -1 = no shape; dims[i] < 0 = symbolic, named by
 * dim_names[i] when non-NULL. */
static void fill_value(proto_value *v, const char *name, int dtype, int rank,
                       const int64_t *dims, char *const *dim_names)
{
    v->info = (Onnx__ValueInfoProto)ONNX__VALUE_INFO_PROTO__INIT;
    v->type = (Onnx__TypeProto)ONNX__TYPE_PROTO__INIT;
    v->tensor = (Onnx__TypeProto__Tensor)ONNX__TYPE_PROTO__TENSOR__INIT;
    v->info.name = pb_string(name);
    v->info.type = &v->type;
    v->type.value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    v->type.tensor_type = &v->tensor;
    v->tensor.has_elem_type = dtype != 0;
    v->tensor.elem_type = dtype;
    if (rank < 0)
        return;
    v->shape = (Onnx__TensorShapeProto)ONNX__TENSOR_SHAPE_PROTO__INIT;
    v->tensor.shape = &v->shape;
    v->shape.n_dim = (size_t)rank;
    v->shape.dim = v->dim_ptrs;
    for (int i = 0; i < rank; i++) {
        Onnx__TensorShapeProto__Dimension *d = &v->dims[i];
        *d = (Onnx__TensorShapeProto__Dimension)
            ONNX__TENSOR_SHAPE_PROTO__DIMENSION__INIT;
        if (dims[i] >= 0) {
            d->value_case =
                ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
            d->dim_value = dims[i];
        } else if (dim_names && dim_names[i]) {
            d->value_case =
                ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
            d->dim_param = dim_names[i];
        }
        v->dim_ptrs[i] = d;
    }
}

static void fill_value_info(proto_value *v, const onnx_value_info *src)
{
    fill_value(v, src->name, src->dtype, src->rank, src->dims,
               src->dim_names);
}

static void fill_value_tensor(proto_value *v, const onnx_tensor *t)
{
    fill_value(v, t->name, t->dtype, t->rank, t->dims, NULL);
}

/* A requested output: its declaration when the graph has one with a shape
 * (a graph output, input or initializer), else float (the graph keeps no
 * types for intermediate values; backbone features are float) with the
 * inferred rank and unknown dimensions. */
static void fill_output(proto_value *v, const subgraph *sg, const char *name)
{
    static const int64_t unknown[ONNX_MAX_RANK] = {-1, -1, -1, -1,
                                                   -1, -1, -1, -1};
    const onnx_graph *g = sg->g;
    int dtype = ONNX_DTYPE_FLOAT;
    for (int i = 0; i < g->n_outputs; i++) {
        if (strcmp(g->outputs[i].name, name) != 0)
            continue;
        if (g->outputs[i].rank >= 0) {
            fill_value_info(v, &g->outputs[i]);
            return;
        }
        dtype = g->outputs[i].dtype ? g->outputs[i].dtype : dtype;
    }
    int definer = onnx_name_table_find(&sg->defs, name);
    if (definer <= -2 && -2 - definer < g->n_inputs)
        fill_value_info(v, &g->inputs[-2 - definer]);
    else if (definer <= -2)
        fill_value_tensor(v, &g->initializers[-2 - definer - g->n_inputs]);
    else
        fill_value(v, name, dtype, value_rank(sg, name), unknown, NULL);
}

/* ---------------------------------------------------------------- nodes */

static nm_status fill_attr(const onnx_graph *g, const onnx_node *node,
                           const onnx_attr *a, Onnx__AttributeProto *out,
                           nm_error *err)
{
    *out = (Onnx__AttributeProto)ONNX__ATTRIBUTE_PROTO__INIT;
    out->name = a->name;
    out->has_type = 1;
    switch (a->type) {
    case ONNX_ATTR_INT:
        out->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT;
        out->has_i = 1;
        out->i = a->i;
        return NM_OK;
    case ONNX_ATTR_FLOAT:
        out->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT;
        out->has_f = 1;
        out->f = a->f;
        return NM_OK;
    case ONNX_ATTR_INTS:
        out->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS;
        out->n_ints = a->count;
        out->ints = a->ints;
        return NM_OK;
    case ONNX_ATTR_FLOATS:
        out->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS;
        out->n_floats = a->count;
        out->floats = a->floats;
        return NM_OK;
    case ONNX_ATTR_STRING:
        out->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING;
        out->has_s = 1;
        out->s.len = strlen(a->s);
        out->s.data = (uint8_t *)a->s;
        return NM_OK;
    case ONNX_ATTR_OTHER:
        break;
    }
    /* The loader keeps only the name of graph / tensor / ... attributes. */
    return nm_fail(err, NM_ERR_UNSUPPORTED,
                   "%s: node '%s' (%s): attribute '%s' is of a kind nominal "
                   "cannot write (graph, tensor or list of them)",
                   g->path, node->name, node->op_type, a->name);
}

/* attrs / attr_ptrs: room for this node's attributes. */
static nm_status fill_node(const onnx_graph *g, const onnx_node *node,
                           Onnx__NodeProto *out, Onnx__AttributeProto *attrs,
                           Onnx__AttributeProto **attr_ptrs, nm_error *err)
{
    if (node->domain[0])
        return nm_fail(err, NM_ERR_UNSUPPORTED,
                       "%s: node '%s' (%s) is in operator domain '%s', whose "
                       "version the graph does not keep",
                       g->path, node->name, node->op_type, node->domain);
    *out = (Onnx__NodeProto)ONNX__NODE_PROTO__INIT;
    out->name = node->name;
    out->op_type = node->op_type;
    out->n_input = (size_t)node->n_inputs;
    out->input = node->inputs;
    out->n_output = (size_t)node->n_outputs;
    out->output = node->outputs;
    out->n_attribute = (size_t)node->n_attrs;
    out->attribute = attr_ptrs;
    for (int a = 0; a < node->n_attrs; a++) {
        nm_status st = fill_attr(g, node, &node->attrs[a], &attrs[a], err);
        if (st != NM_OK)
            return st;
        attr_ptrs[a] = &attrs[a];
    }
    return NM_OK;
}

/* -------------------------------------------------------------- tensors */

static int host_is_little_endian(void)
{
    const uint16_t one = 1;
    uint8_t first;
    memcpy(&first, &one, 1);
    return first == 1;
}

/* raw_data is little-endian: on a little-endian host it is the array
 * itself, elsewhere a byte-swapped copy. */
static uint8_t *raw_bytes(const void *data, size_t count, size_t word,
                          proto_tensor *pt)
{
    if (host_is_little_endian())
        return (uint8_t *)data;
    pt->swapped = malloc(count * word + 1);
    if (!pt->swapped)
        return NULL;
    const uint8_t *src = data;
    for (size_t i = 0; i < count * word; i++)
        pt->swapped[i] = src[i - i % word + (word - 1 - i % word)];
    return pt->swapped;
}

static nm_status fill_tensor(const onnx_graph *g, const onnx_tensor *t,
                             proto_tensor *pt, nm_error *err)
{
    size_t word;
    const void *data;
    if (t->dtype == ONNX_DTYPE_FLOAT && t->data) {
        word = sizeof(float);
        data = t->data;
    } else if (t->dtype == ONNX_DTYPE_INT64 && t->data_i64) {
        word = sizeof(int64_t);
        data = t->data_i64;
    } else {
        return nm_fail(err, NM_ERR_UNSUPPORTED,
                       "%s: initializer '%s' has data type %d; only float "
                       "and int64 tensors can be written",
                       g->path, t->name, t->dtype);
    }
    Onnx__TensorProto *out = &pt->tensor;
    *out = (Onnx__TensorProto)ONNX__TENSOR_PROTO__INIT;
    out->name = t->name;
    out->has_data_type = 1;
    out->data_type = t->dtype;
    memcpy(pt->dims, t->dims, sizeof pt->dims);
    out->n_dims = (size_t)t->rank;
    out->dims = pt->dims;
    out->has_raw_data = 1;
    out->raw_data.len = t->count * word;
    out->raw_data.data = raw_bytes(data, t->count, word, pt);
    return out->raw_data.data ? NM_OK : out_of_memory(g, err);
}

/* ---------------------------------------------------------------- model */

static nm_status fill_nodes(const subgraph *sg, proto_model *pm,
                            nm_error *err)
{
    const onnx_graph *g = sg->g;
    size_t n = 0, n_attrs = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        if (!sg->nodes[i])
            continue; /* the graph is sorted, so kept nodes stay sorted */
        nm_status st = fill_node(g, &g->nodes[i], &pm->nodes[n],
                                 &pm->attrs[n_attrs], &pm->attr_ptrs[n_attrs],
                                 err);
        if (st != NM_OK)
            return st;
        pm->node_ptrs[n] = &pm->nodes[n];
        n++;
        n_attrs += (size_t)g->nodes[i].n_attrs;
    }
    pm->graph.n_node = n;
    pm->graph.node = pm->node_ptrs;
    return NM_OK;
}

static nm_status fill_initializers(const subgraph *sg, proto_model *pm,
                                   int *n_filled, nm_error *err)
{
    const onnx_graph *g = sg->g;
    for (int k = 0; k < g->n_initializers; k++) {
        if (!sg->initializers[k])
            continue;
        proto_tensor *pt = &pm->tensors[*n_filled];
        nm_status st = fill_tensor(g, &g->initializers[k], pt, err);
        (*n_filled)++; /* counted even on failure: swapped may be set */
        if (st != NM_OK)
            return st;
        pm->tensor_ptrs[*n_filled - 1] = &pt->tensor;
    }
    pm->graph.n_initializer = (size_t)*n_filled;
    pm->graph.initializer = pm->tensor_ptrs;
    return NM_OK;
}

static void fill_inputs_outputs(const subgraph *sg,
                                const char *const *outputs, int n_outputs,
                                int inits_are_inputs, proto_model *pm)
{
    const onnx_graph *g = sg->g;
    size_t n = 0;
    for (int j = 0; j < g->n_inputs; j++) {
        if (sg->inputs[j])
            fill_value_info(&pm->values[n++], &g->inputs[j]);
    }
    for (int k = 0; inits_are_inputs && k < g->n_initializers; k++) {
        if (sg->initializers[k])
            fill_value_tensor(&pm->values[n++], &g->initializers[k]);
    }
    size_t n_inputs = n;
    for (int i = 0; i < n_outputs; i++)
        fill_output(&pm->values[n++], sg, outputs[i]);
    for (size_t i = 0; i < n; i++)
        pm->value_ptrs[i] = &pm->values[i].info;
    pm->graph.n_input = n_inputs;
    pm->graph.input = pm->value_ptrs;
    pm->graph.n_output = (size_t)n_outputs;
    pm->graph.output = pm->value_ptrs + n_inputs;
}

static void fill_model(const onnx_graph *g, int64_t ir_version,
                       proto_model *pm)
{
    pm->model = (Onnx__ModelProto)ONNX__MODEL_PROTO__INIT;
    pm->model.has_ir_version = 1;
    pm->model.ir_version = ir_version;
    pm->model.producer_name = pb_string("nominal");
    pm->model.producer_version = pb_string(NM_VERSION_STRING);
    pm->model.graph = &pm->graph;
    pm->graph.name = pb_string(g->graph_name && g->graph_name[0]
                                   ? g->graph_name
                                   : "nominal");
    if (g->opset > 0) { /* 0: no node uses the default domain */
        pm->opset = (Onnx__OperatorSetIdProto)ONNX__OPERATOR_SET_ID_PROTO__INIT;
        pm->opset.domain = pb_string("");
        pm->opset.has_version = 1;
        pm->opset.version = g->opset;
        pm->opset_ptr = &pm->opset;
        pm->model.n_opset_import = 1;
        pm->model.opset_import = &pm->opset_ptr;
    }
}

static nm_status pack(const onnx_graph *g, const proto_model *pm,
                      uint8_t **bytes, size_t *size, nm_error *err)
{
    size_t n = onnx__model_proto__get_packed_size(&pm->model);
    if (n >= ONNX_MAX_MESSAGE_BYTES)
        return nm_fail(err, NM_ERR_LIMIT,
                       "%s: the subgraph would take %zu bytes, more than the "
                       "2 GiB a protobuf message can hold",
                       g->path, n);
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf)
        return out_of_memory(g, err);
    if (onnx__model_proto__pack(&pm->model, buf) != n) {
        free(buf);
        return nm_fail(err, NM_ERR_INTERNAL,
                       "%s: protobuf packing gave an unexpected size", g->path);
    }
    *bytes = buf;
    *size = n;
    return NM_OK;
}

static nm_status build_and_pack(const subgraph *sg,
                                const char *const *outputs, int n_outputs,
                                uint8_t **bytes, size_t *size, nm_error *err)
{
    const onnx_graph *g = sg->g;
    int64_t ir = g->ir_version > 0 ? g->ir_version : IR_VERSION_FALLBACK;
    int inits_are_inputs = ir < IR_VERSION_INITIALIZERS_NOT_INPUTS;
    proto_model pm;
    memset(&pm, 0, sizeof pm);
    pm.graph = (Onnx__GraphProto)ONNX__GRAPH_PROTO__INIT;
    int n_tensors = 0;
    nm_status st = NM_OK;
    if (proto_alloc(&pm, count_kept(sg, n_outputs, inits_are_inputs)))
        st = out_of_memory(g, err);
    if (st == NM_OK)
        st = fill_nodes(sg, &pm, err);
    if (st == NM_OK)
        st = fill_initializers(sg, &pm, &n_tensors, err);
    if (st == NM_OK) {
        fill_inputs_outputs(sg, outputs, n_outputs, inits_are_inputs, &pm);
        fill_model(g, ir, &pm);
        st = pack(g, &pm, bytes, size, err);
    }
    proto_free(&pm, n_tensors);
    return st;
}

nm_status onnx_graph_write_subgraph(const onnx_graph *g,
                                    const char *const *outputs, int n_outputs,
                                    uint8_t **bytes, size_t *size,
                                    nm_error *err)
{
    if (!g || !bytes || !size)
        return nm_fail(err, NM_ERR_ARG,
                       "onnx_graph_write_subgraph: NULL argument");
    subgraph sg;
    nm_status st = subgraph_init(&sg, g, err);
    if (st == NM_OK)
        st = find_needed(&sg, outputs, n_outputs, err);
    if (st == NM_OK) {
        infer_ranks(&sg);
        st = build_and_pack(&sg, outputs, n_outputs, bytes, size, err);
    }
    subgraph_free(&sg);
    return st;
}
