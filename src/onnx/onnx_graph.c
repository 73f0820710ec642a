/*
 * ONNX model loading: decode with the protobuf-c code generated from
 * onnx.proto, copy what onnx_graph.h describes into plain C structures,
 * free the message, then validate and sort (onnx_graph_check.c).
 *
 * Memory: a model is mostly weights. The file buffer is freed as soon as it
 * is decoded, and the FLOAT / INT64 payload arrays are taken over from the
 * message rather than copied (see take_raw_data), so at most two copies of
 * the weights are alive at once (file + message, while decoding) and the
 * graph holds the only one afterwards.
 */
#include "onnx/onnx_graph.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/error.h"
#include "onnx/onnx.pb-c.h"
#include "onnx/onnx_graph_check.h"
#include "onnx/onnx_name_table.h"

/* protobuf refuses messages of 2 GiB and more; so do we, before reading. */
#define ONNX_MAX_FILE_BYTES ((size_t)1 << 31)
/* Largest tensor accepted, in elements (also keeps counts far from size_t
 * overflow when multiplied by an element size). */
#define ONNX_MAX_ELEMENTS ((int64_t)1 << 31)
/* Largest number of nodes, initializers, inputs of a node, ... : keeps every
 * count inside an int with room to spare. */
#define ONNX_MAX_ITEMS ((size_t)1 << 24)

/* ------------------------------------------------------------ allocation */

/* protobuf-c is given malloc/free explicitly (not its default allocator)
 * so that the loader may take over or free a tensor payload inside the
 * decoded message, leaving a NULL that protobuf_c_message_free_unpacked
 * skips. */
static void *pb_alloc(void *unused, size_t size)
{
    (void)unused;
    return malloc(size ? size : 1); /* protobuf-c reads NULL as failure */
}

static void pb_free(void *unused, void *ptr)
{
    (void)unused;
    free(ptr);
}

static ProtobufCAllocator malloc_allocator(void)
{
    ProtobufCAllocator a = {pb_alloc, pb_free, NULL};
    return a;
}

static void free_message(Onnx__ModelProto *msg)
{
    if (msg) {
        ProtobufCAllocator a = malloc_allocator();
        onnx__model_proto__free_unpacked(msg, &a);
    }
}

/* malloc for n items, never returning NULL for n == 0 so that "non-NULL"
 * can keep meaning "has data" for empty tensors and lists. */
static void *alloc_array(size_t n, size_t item_size)
{
    return calloc(n ? n : 1, item_size);
}

static char *copy_bytes(const void *data, size_t len)
{
    char *s = malloc(len + 1);
    if (s) {
        if (len)
            memcpy(s, data, len);
        s[len] = '\0';
    }
    return s;
}

/* proto2 leaves absent strings NULL; we store "" instead. */
static char *copy_string(const char *s)
{
    return copy_bytes(s ? s : "", s ? strlen(s) : 0);
}

static nm_status out_of_memory(const char *path, nm_error *err)
{
    return nm_fail(err, NM_ERR_NOMEM, "%s: out of memory loading the model",
                   path);
}

static nm_status check_count(const char *path, const char *what, size_t n,
                             nm_error *err)
{
    if (n > ONNX_MAX_ITEMS)
        return nm_fail(err, NM_ERR_LIMIT, "%s: %zu %s (at most %zu supported)",
                       path, n, what, ONNX_MAX_ITEMS);
    return NM_OK;
}

/* --------------------------------------------------------------- freeing */

static void free_attr(onnx_attr *a)
{
    free(a->name);
    free(a->ints);
    free(a->floats);
    free(a->s);
}

static void free_node(onnx_node *node)
{
    free(node->name);
    free(node->op_type);
    free(node->domain);
    for (int i = 0; i < node->n_inputs; i++)
        free(node->inputs[i]);
    free(node->inputs);
    for (int i = 0; i < node->n_outputs; i++)
        free(node->outputs[i]);
    free(node->outputs);
    for (int i = 0; i < node->n_attrs; i++)
        free_attr(&node->attrs[i]);
    free(node->attrs);
}

static void free_tensor(onnx_tensor *t)
{
    free(t->name);
    free(t->data);
    free(t->data_i64);
}

static void free_value_info(onnx_value_info *v)
{
    free(v->name);
    for (int i = 0; i < ONNX_MAX_RANK; i++)
        free(v->dim_names[i]);
}

/* Works on partially built graphs too: every count is raised before the
 * item it counts is filled, and every item starts zeroed. */
void onnx_graph_free(onnx_graph *g)
{
    if (!g)
        return;
    for (int i = 0; i < g->n_nodes; i++)
        free_node(&g->nodes[i]);
    free(g->nodes);
    for (int i = 0; i < g->n_initializers; i++)
        free_tensor(&g->initializers[i]);
    free(g->initializers);
    for (int i = 0; i < g->n_inputs; i++)
        free_value_info(&g->inputs[i]);
    free(g->inputs);
    for (int i = 0; i < g->n_outputs; i++)
        free_value_info(&g->outputs[i]);
    free(g->outputs);
    for (int i = 0; i < g->n_meta; i++) {
        free(g->meta_keys[i]);
        free(g->meta_values[i]);
    }
    free(g->meta_keys);
    free(g->meta_values);
    free(g->path);
    free(g->graph_name);
    free(g->producer);
    free(g);
}

/* --------------------------------------------------------------- tensors */

static int host_is_little_endian(void)
{
    const uint16_t one = 1;
    uint8_t first;
    memcpy(&first, &one, 1);
    return first == 1;
}

/* raw_data is little-endian whatever the host. */
static void le_words_to_host(uint8_t *p, size_t count, size_t word)
{
    if (host_is_little_endian())
        return;
    for (size_t i = 0; i < count; i++, p += word) {
        for (size_t b = 0; b < word / 2; b++) {
            uint8_t tmp = p[b];
            p[b] = p[word - 1 - b];
            p[word - 1 - b] = tmp;
        }
    }
}

/* "[2, 3, 4]" for messages. */
static void format_dims(const int64_t *dims, size_t rank, char *buf,
                        size_t size)
{
    size_t used = (size_t)snprintf(buf, size, "[");
    for (size_t i = 0; i < rank && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, "%s%lld",
                                 i ? ", " : "", (long long)dims[i]);
    if (used < size)
        snprintf(buf + used, size - used, "]");
}

/* Validates dims and sets rank, dims and count. */
static nm_status set_tensor_shape(const char *path, const Onnx__TensorProto *t,
                                  onnx_tensor *out, nm_error *err)
{
    if (t->n_dims > ONNX_MAX_RANK)
        return nm_fail(err, NM_ERR_LIMIT,
                       "%s: tensor '%s' has rank %zu (at most %d supported)",
                       path, out->name, t->n_dims, ONNX_MAX_RANK);
    out->rank = (int)t->n_dims;
    int has_zero = 0;
    for (size_t i = 0; i < t->n_dims; i++) {
        if (t->dims[i] < 0)
            return nm_fail(err, NM_ERR_FORMAT,
                           "%s: tensor '%s' has negative dimension %lld",
                           path, out->name, (long long)t->dims[i]);
        out->dims[i] = t->dims[i];
        has_zero |= t->dims[i] == 0;
    }
    /* Dividing before multiplying keeps the product below the cap, so it
     * cannot overflow however absurd the dims are. */
    int64_t count = 1;
    for (size_t i = 0; i < t->n_dims && !has_zero; i++) {
        if (count > ONNX_MAX_ELEMENTS / t->dims[i]) {
            char dims[160];
            format_dims(t->dims, t->n_dims, dims, sizeof dims);
            return nm_fail(err, NM_ERR_LIMIT,
                           "%s: tensor '%s' dims %s exceed %lld elements",
                           path, out->name, dims,
                           (long long)ONNX_MAX_ELEMENTS);
        }
        count *= t->dims[i];
    }
    out->count = has_zero ? 0 : (size_t)count;
    return NM_OK;
}

static nm_status size_mismatch(const char *path, const onnx_tensor *out,
                               const char *field, size_t have,
                               const char *unit, size_t need, nm_error *err)
{
    char dims[160];
    format_dims(out->dims, (size_t)out->rank, dims, sizeof dims);
    return nm_fail(err, NM_ERR_FORMAT,
                   "%s: tensor '%s' has %zu %s in %s, dims %s need %zu",
                   path, out->name, have, unit, field, dims, need);
}

/* The payload must match the dims exactly, in raw_data (bytes) or in the
 * typed field (values). */
static nm_status check_payload_size(const char *path,
                                    const Onnx__TensorProto *t, size_t n_typed,
                                    size_t word, const char *typed_field,
                                    const onnx_tensor *out, nm_error *err)
{
    if (t->has_raw_data && t->raw_data.len != out->count * word)
        return size_mismatch(path, out, "raw_data", t->raw_data.len, "bytes",
                             out->count * word, err);
    if (!t->has_raw_data && n_typed != out->count)
        return size_mismatch(path, out, typed_field, n_typed, "values",
                             out->count, err);
    return NM_OK;
}

/*
 * Taking payloads over instead of copying them: every array and bytes field
 * of the message was allocated on its own by pb_alloc (malloc) - that is how
 * protobuf_c_message_free_unpacked can free each one - so once its pointer
 * is replaced by NULL in the message it is an ordinary malloc'ed block of
 * ours, aligned for any type. This saves allocating (and faulting in) one
 * more copy of the weights.
 */
static void *take_raw_data(Onnx__TensorProto *t, size_t count, size_t word)
{
    uint8_t *p = t->raw_data.data;
    le_words_to_host(p, count, word);
    t->raw_data.data = NULL;
    t->raw_data.len = 0;
    t->has_raw_data = 0;
    return p;
}

static nm_status take_floats(const char *path, Onnx__TensorProto *t,
                             onnx_tensor *out, nm_error *err)
{
    nm_status st = check_payload_size(path, t, t->n_float_data, sizeof(float),
                                      "float_data", out, err);
    if (st != NM_OK)
        return st;
    if (out->count == 0) { /* the message may hold NULL: allocate */
        out->data = alloc_array(0, sizeof *out->data);
    } else if (t->has_raw_data) {
        out->data = take_raw_data(t, out->count, sizeof *out->data);
    } else {
        out->data = t->float_data;
        t->float_data = NULL;
        t->n_float_data = 0;
    }
    return out->data ? NM_OK : out_of_memory(path, err);
}

static nm_status take_int64s(const char *path, Onnx__TensorProto *t,
                             onnx_tensor *out, nm_error *err)
{
    nm_status st = check_payload_size(path, t, t->n_int64_data,
                                      sizeof(int64_t), "int64_data", out, err);
    if (st != NM_OK)
        return st;
    if (out->count == 0) {
        out->data_i64 = alloc_array(0, sizeof *out->data_i64);
    } else if (t->has_raw_data) {
        out->data_i64 = take_raw_data(t, out->count, sizeof *out->data_i64);
    } else {
        out->data_i64 = t->int64_data;
        t->int64_data = NULL;
        t->n_int64_data = 0;
    }
    return out->data_i64 ? NM_OK : out_of_memory(path, err);
}

/* Frees whatever payload is left in the message once the tensor is copied
 * (the weights of unsupported dtypes, unused duplicate encodings), so the
 * message shrinks while tensors are copied. */
static void release_payload(Onnx__TensorProto *t)
{
    free(t->raw_data.data);
    t->raw_data.data = NULL;
    t->raw_data.len = 0;
    t->has_raw_data = 0;
    free(t->float_data);
    t->float_data = NULL;
    t->n_float_data = 0;
    free(t->int64_data);
    t->int64_data = NULL;
    t->n_int64_data = 0;
    free(t->int32_data);
    t->int32_data = NULL;
    t->n_int32_data = 0;
    free(t->double_data);
    t->double_data = NULL;
    t->n_double_data = 0;
    free(t->uint64_data);
    t->uint64_data = NULL;
    t->n_uint64_data = 0;
}

/* Copies tensor t, named `name` (its own name for initializers, the
 * node's output for Constant values), into *out (zeroed by the caller). */
static nm_status copy_tensor(const char *path, Onnx__TensorProto *t,
                             const char *name, onnx_tensor *out, nm_error *err)
{
    out->name = copy_string(name);
    if (!out->name)
        return out_of_memory(path, err);
    out->dtype = t->has_data_type ? t->data_type : 0;
    if ((t->has_data_location &&
         t->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL) ||
        t->n_external_data > 0)
        return nm_fail(err, NM_ERR_UNSUPPORTED,
                       "%s: tensor '%s' keeps its data in an external file "
                       "(not supported; save the model with the weights "
                       "inside)",
                       path, out->name);
    if (t->segment)
        return nm_fail(err, NM_ERR_UNSUPPORTED,
                       "%s: tensor '%s' is a segment of a larger tensor (not "
                       "supported)",
                       path, out->name);
    nm_status st = set_tensor_shape(path, t, out, err);
    if (st != NM_OK)
        return st;
    if (out->dtype == ONNX_DTYPE_FLOAT)
        st = take_floats(path, t, out, err);
    else if (out->dtype == ONNX_DTYPE_INT64)
        st = take_int64s(path, t, out, err);
    /* Other dtypes keep only name and shape: the network builder names
     * them when it rejects them. */
    release_payload(t);
    return st;
}

/* ------------------------------------------------------------ attributes */

/* Old exporters may leave AttributeProto.type unset; infer it from the
 * field that is filled. */
static onnx_attr_type attr_type_of(const Onnx__AttributeProto *a)
{
    switch (a->has_type ? a->type
                        : ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__UNDEFINED) {
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT: return ONNX_ATTR_INT;
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS: return ONNX_ATTR_INTS;
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT: return ONNX_ATTR_FLOAT;
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS:
        return ONNX_ATTR_FLOATS;
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING:
        return ONNX_ATTR_STRING;
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__UNDEFINED:
        if (a->n_ints) return ONNX_ATTR_INTS;
        if (a->n_floats) return ONNX_ATTR_FLOATS;
        if (a->has_i) return ONNX_ATTR_INT;
        if (a->has_f) return ONNX_ATTR_FLOAT;
        if (a->has_s) return ONNX_ATTR_STRING;
        return ONNX_ATTR_OTHER;
    default: return ONNX_ATTR_OTHER;
    }
}

static nm_status copy_attr(const char *path, const onnx_node *node,
                           const Onnx__AttributeProto *a, onnx_attr *out,
                           nm_error *err)
{
    if (!a->name || !a->name[0])
        return nm_fail(err, NM_ERR_FORMAT,
                       "%s: node '%s' (%s) has an attribute without a name",
                       path, node->name, node->op_type);
    out->name = copy_string(a->name);
    if (!out->name)
        return out_of_memory(path, err);
    out->type = attr_type_of(a);
    out->i = a->i;
    out->f = a->f;
    if (out->type == ONNX_ATTR_INTS) {
        out->count = a->n_ints;
        out->ints = alloc_array(a->n_ints, sizeof *out->ints);
        if (!out->ints)
            return out_of_memory(path, err);
        if (a->n_ints)
            memcpy(out->ints, a->ints, a->n_ints * sizeof *out->ints);
    } else if (out->type == ONNX_ATTR_FLOATS) {
        out->count = a->n_floats;
        out->floats = alloc_array(a->n_floats, sizeof *out->floats);
        if (!out->floats)
            return out_of_memory(path, err);
        if (a->n_floats)
            memcpy(out->floats, a->floats, a->n_floats * sizeof *out->floats);
    } else if (out->type == ONNX_ATTR_STRING) {
        out->s = copy_bytes(a->s.data, a->s.len);
        if (!out->s)
            return out_of_memory(path, err);
    }
    return NM_OK;
}

/* ----------------------------------------------------------------- nodes */

static int is_default_domain(const char *domain)
{
    return !domain || !domain[0] || strcmp(domain, "ai.onnx") == 0;
}

static nm_status copy_name_list(const char *path, char **src, size_t n,
                                char ***dst, int *n_dst, nm_error *err)
{
    *dst = alloc_array(n, sizeof **dst);
    if (!*dst)
        return out_of_memory(path, err);
    for (size_t i = 0; i < n; i++) {
        (*dst)[i] = copy_string(src[i]);
        if (!(*dst)[i])
            return out_of_memory(path, err);
        (*n_dst)++;
    }
    return NM_OK;
}

/* Node name from the file, or "<op_type>_<file index>" when empty. */
static char *node_name(const Onnx__NodeProto *np, size_t file_index)
{
    if (np->name && np->name[0])
        return copy_string(np->name);
    char buf[64];
    int n = snprintf(buf, sizeof buf, "_%zu", file_index);
    size_t op_len = strlen(np->op_type);
    char *s = malloc(op_len + (size_t)n + 1);
    if (s) {
        memcpy(s, np->op_type, op_len);
        memcpy(s + op_len, buf, (size_t)n + 1);
    }
    return s;
}

static nm_status copy_node(const char *path, const Onnx__NodeProto *np,
                           size_t file_index, onnx_node *out, nm_error *err)
{
    if (!np->op_type || !np->op_type[0])
        return nm_fail(err, NM_ERR_FORMAT,
                       "%s: node #%zu ('%s') has no op_type", path,
                       file_index, np->name ? np->name : "");
    nm_status st = check_count(path, "node inputs", np->n_input, err);
    if (st == NM_OK)
        st = check_count(path, "node outputs", np->n_output, err);
    if (st == NM_OK)
        st = check_count(path, "node attributes", np->n_attribute, err);
    if (st != NM_OK)
        return st;
    out->name = node_name(np, file_index);
    out->op_type = copy_string(np->op_type);
    /* "ai.onnx" is the default domain spelled out; one spelling is
     * easier to compare. */
    out->domain = copy_string(is_default_domain(np->domain) ? "" : np->domain);
    if (!out->name || !out->op_type || !out->domain)
        return out_of_memory(path, err);
    st = copy_name_list(path, np->input, np->n_input, &out->inputs,
                        &out->n_inputs, err);
    if (st == NM_OK)
        st = copy_name_list(path, np->output, np->n_output, &out->outputs,
                            &out->n_outputs, err);
    if (st != NM_OK)
        return st;
    out->attrs = alloc_array(np->n_attribute, sizeof *out->attrs);
    if (!out->attrs)
        return out_of_memory(path, err);
    for (size_t i = 0; i < np->n_attribute; i++) {
        out->n_attrs++;
        st = copy_attr(path, out, np->attribute[i], &out->attrs[i], err);
        if (st != NM_OK)
            return st;
    }
    return NM_OK;
}

/* ------------------------------------------------------ Constant nodes */

/* The attribute holding a Constant node's value, if the node is a plain
 * Constant we turn into an initializer: default domain, one named output,
 * one attribute of a kind we copy. Sparse and string constants stay nodes
 * (the network builder rejects them). */
static Onnx__AttributeProto *constant_value(const Onnx__NodeProto *np)
{
    if (!np->op_type || strcmp(np->op_type, "Constant") != 0 ||
        !is_default_domain(np->domain) || np->n_output != 1 ||
        !np->output[0][0] || np->n_attribute != 1 || !np->attribute[0]->name)
        return NULL;
    Onnx__AttributeProto *a = np->attribute[0];
    const char *kind = a->name;
    if ((strcmp(kind, "value") == 0 && a->t) ||
        strcmp(kind, "value_float") == 0 ||
        strcmp(kind, "value_floats") == 0 || strcmp(kind, "value_int") == 0 ||
        strcmp(kind, "value_ints") == 0)
        return a;
    return NULL;
}

/* value_float(s) / value_int(s): scalar or 1-D tensor from the attribute. */
static nm_status copy_constant_list(const char *path, const char *name,
                                    const Onnx__AttributeProto *a,
                                    onnx_tensor *out, nm_error *err)
{
    const char *kind = a->name;
    int is_float = strcmp(kind, "value_float") == 0 ||
                   strcmp(kind, "value_floats") == 0;
    int is_list = strcmp(kind, "value_floats") == 0 ||
                  strcmp(kind, "value_ints") == 0;
    size_t count = is_list ? (is_float ? a->n_floats : a->n_ints) : 1;
    out->name = copy_string(name);
    if (!out->name)
        return out_of_memory(path, err);
    if (count > (size_t)ONNX_MAX_ELEMENTS)
        return nm_fail(err, NM_ERR_LIMIT, "%s: tensor '%s' is too large",
                       path, name);
    out->dtype = is_float ? ONNX_DTYPE_FLOAT : ONNX_DTYPE_INT64;
    out->rank = is_list ? 1 : 0;
    out->dims[0] = is_list ? (int64_t)count : 0;
    out->count = count;
    /* An empty list may come with a NULL array: no memcpy from it. */
    if (is_float) {
        out->data = alloc_array(count, sizeof *out->data);
        if (out->data && count)
            memcpy(out->data, is_list ? a->floats : &a->f,
                   count * sizeof *out->data);
    } else {
        out->data_i64 = alloc_array(count, sizeof *out->data_i64);
        if (out->data_i64 && count)
            memcpy(out->data_i64, is_list ? a->ints : &a->i,
                   count * sizeof *out->data_i64);
    }
    if (!out->data && !out->data_i64)
        return out_of_memory(path, err);
    return NM_OK;
}

static nm_status copy_constant(const char *path, const Onnx__NodeProto *np,
                               Onnx__AttributeProto *a, onnx_tensor *out,
                               nm_error *err)
{
    if (a->t)
        return copy_tensor(path, a->t, np->output[0], out, err);
    return copy_constant_list(path, np->output[0], a, out, err);
}

/* ---------------------------------------------------------- value infos */

static nm_status copy_shape(const char *path, const char *what,
                            const Onnx__TensorShapeProto *s,
                            onnx_value_info *out, nm_error *err)
{
    if (s->n_dim > ONNX_MAX_RANK)
        return nm_fail(err, NM_ERR_LIMIT,
                       "%s: graph %s '%s' has rank %zu (at most %d supported)",
                       path, what, out->name, s->n_dim, ONNX_MAX_RANK);
    out->rank = (int)s->n_dim;
    for (size_t i = 0; i < s->n_dim; i++) {
        const Onnx__TensorShapeProto__Dimension *d = s->dim[i];
        out->dims[i] = -1;
        if (d->value_case ==
            ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE) {
            if (d->dim_value < 0)
                return nm_fail(err, NM_ERR_FORMAT,
                               "%s: graph %s '%s' has negative dimension "
                               "%lld",
                               path, what, out->name,
                               (long long)d->dim_value);
            out->dims[i] = d->dim_value;
        } else if (d->value_case ==
                       ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM &&
                   d->dim_param && d->dim_param[0]) {
            out->dim_names[i] = copy_string(d->dim_param);
            if (!out->dim_names[i])
                return out_of_memory(path, err);
        }
    }
    return NM_OK;
}

static nm_status copy_value_info(const char *path, const char *what,
                                 size_t index, const Onnx__ValueInfoProto *v,
                                 onnx_value_info *out, nm_error *err)
{
    if (!v->name || !v->name[0])
        return nm_fail(err, NM_ERR_FORMAT, "%s: graph %s #%zu has no name",
                       path, what, index);
    out->name = copy_string(v->name);
    if (!out->name)
        return out_of_memory(path, err);
    out->rank = -1;
    if (!v->type || v->type->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE)
        return NM_OK; /* untyped or not a tensor: name only */
    const Onnx__TypeProto__Tensor *tt = v->type->tensor_type;
    out->dtype = tt->has_elem_type ? tt->elem_type : 0;
    return tt->shape ? copy_shape(path, what, tt->shape, out, err) : NM_OK;
}

/* ------------------------------------------------------- model -> graph */

static nm_status copy_model_info(const char *path, const Onnx__ModelProto *m,
                                 onnx_graph *g, nm_error *err)
{
    g->ir_version = m->has_ir_version ? m->ir_version : 0;
    g->graph_name = copy_string(m->graph->name);
    const char *pname = m->producer_name ? m->producer_name : "";
    const char *pver = m->producer_version ? m->producer_version : "";
    size_t len = strlen(pname) + 1 + strlen(pver);
    g->producer = malloc(len + 1);
    if (!g->graph_name || !g->producer)
        return out_of_memory(path, err);
    const char *sep = pname[0] && pver[0] ? " " : "";
    snprintf(g->producer, len + 1, "%s%s%s", pname, sep, pver);
    for (size_t i = 0; i < m->n_opset_import; i++) {
        const Onnx__OperatorSetIdProto *op = m->opset_import[i];
        if (is_default_domain(op->domain) && op->has_version) {
            g->opset = op->version;
            break;
        }
    }
    nm_status st = check_count(path, "metadata entries", m->n_metadata_props,
                               err);
    if (st != NM_OK)
        return st;
    g->meta_keys = alloc_array(m->n_metadata_props, sizeof *g->meta_keys);
    g->meta_values = alloc_array(m->n_metadata_props, sizeof *g->meta_values);
    if (!g->meta_keys || !g->meta_values)
        return out_of_memory(path, err);
    for (size_t i = 0; i < m->n_metadata_props; i++) {
        g->n_meta++;
        g->meta_keys[i] = copy_string(m->metadata_props[i]->key);
        g->meta_values[i] = copy_string(m->metadata_props[i]->value);
        if (!g->meta_keys[i] || !g->meta_values[i])
            return out_of_memory(path, err);
    }
    return NM_OK;
}

static size_t count_constants(const Onnx__GraphProto *gp)
{
    size_t n = 0;
    for (size_t i = 0; i < gp->n_node; i++)
        n += constant_value(gp->node[i]) != NULL;
    return n;
}

/* Initializers first (file order), then the values of Constant nodes (node
 * order); the Constant nodes themselves are dropped. */
static nm_status copy_tensors_and_nodes(const char *path, Onnx__GraphProto *gp,
                                        onnx_graph *g, nm_error *err)
{
    size_t n_const = count_constants(gp);
    nm_status st = check_count(path, "initializers", gp->n_initializer, err);
    if (st == NM_OK)
        st = check_count(path, "nodes", gp->n_node, err);
    if (st != NM_OK)
        return st;
    g->initializers = alloc_array(gp->n_initializer + n_const,
                                  sizeof *g->initializers);
    g->nodes = alloc_array(gp->n_node - n_const, sizeof *g->nodes);
    if (!g->initializers || !g->nodes)
        return out_of_memory(path, err);
    for (size_t i = 0; i < gp->n_initializer; i++) {
        Onnx__TensorProto *t = gp->initializer[i];
        if (!t->name || !t->name[0])
            return nm_fail(err, NM_ERR_FORMAT,
                           "%s: initializer #%zu has no name", path, i);
        onnx_tensor *out = &g->initializers[g->n_initializers++];
        st = copy_tensor(path, t, t->name, out, err);
        if (st != NM_OK)
            return st;
    }
    for (size_t i = 0; i < gp->n_node; i++) {
        Onnx__NodeProto *np = gp->node[i];
        Onnx__AttributeProto *value = constant_value(np);
        if (value) {
            onnx_tensor *out = &g->initializers[g->n_initializers++];
            st = copy_constant(path, np, value, out, err);
        } else {
            onnx_node *out = &g->nodes[g->n_nodes++];
            st = copy_node(path, np, i, out, err);
        }
        if (st != NM_OK)
            return st;
    }
    return NM_OK;
}

/* Graph inputs minus initializers (IR < 4 lists weights as inputs too). */
static nm_status copy_inputs(const char *path, const Onnx__GraphProto *gp,
                             onnx_graph *g, nm_error *err)
{
    nm_status st = check_count(path, "graph inputs", gp->n_input, err);
    if (st != NM_OK)
        return st;
    onnx_name_table inits;
    if (onnx_name_table_init(&inits, (size_t)g->n_initializers) != 0)
        return out_of_memory(path, err);
    for (int i = 0; i < g->n_initializers; i++)
        onnx_name_table_add(&inits, g->initializers[i].name, i, NULL);
    g->inputs = alloc_array(gp->n_input, sizeof *g->inputs);
    if (!g->inputs)
        st = out_of_memory(path, err);
    for (size_t i = 0; i < gp->n_input && st == NM_OK; i++) {
        const Onnx__ValueInfoProto *v = gp->input[i];
        if (v->name && onnx_name_table_find(&inits, v->name) >= 0)
            continue;
        onnx_value_info *out = &g->inputs[g->n_inputs++];
        st = copy_value_info(path, "input", i, v, out, err);
    }
    onnx_name_table_free(&inits);
    return st;
}

static nm_status copy_outputs(const char *path, const Onnx__GraphProto *gp,
                              onnx_graph *g, nm_error *err)
{
    nm_status st = check_count(path, "graph outputs", gp->n_output, err);
    if (st != NM_OK)
        return st;
    g->outputs = alloc_array(gp->n_output, sizeof *g->outputs);
    if (!g->outputs)
        return out_of_memory(path, err);
    for (size_t i = 0; i < gp->n_output && st == NM_OK; i++) {
        onnx_value_info *out = &g->outputs[g->n_outputs++];
        st = copy_value_info(path, "output", i, gp->output[i], out, err);
    }
    return st;
}

/* The version of the default operator set; required once any node uses
 * it, since op semantics depend on it. */
static nm_status check_opset(const onnx_graph *g, nm_error *err)
{
    if (g->opset > 0)
        return NM_OK;
    for (int i = 0; i < g->n_nodes; i++) {
        if (!g->nodes[i].domain[0])
            return nm_fail(err, NM_ERR_FORMAT,
                           "%s: no opset_import for the default domain "
                           "(ai.onnx), needed by node '%s' (%s)",
                           g->path, g->nodes[i].name, g->nodes[i].op_type);
    }
    return NM_OK;
}

/* Copies everything out of m and frees it (also on failure). */
static nm_status graph_from_message(const char *name, Onnx__ModelProto *m,
                                    onnx_graph **out, nm_error *err)
{
    if (!m->graph) {
        free_message(m);
        return nm_fail(err, NM_ERR_FORMAT,
                       "%s: not an ONNX model (no graph in the message)",
                       name);
    }
    onnx_graph *g = calloc(1, sizeof *g);
    if (!g || !(g->path = copy_string(name))) {
        free(g);
        free_message(m);
        return out_of_memory(name, err);
    }
    nm_status st = copy_model_info(name, m, g, err);
    if (st == NM_OK)
        st = copy_tensors_and_nodes(name, m->graph, g, err);
    if (st == NM_OK)
        st = copy_inputs(name, m->graph, g, err);
    if (st == NM_OK)
        st = copy_outputs(name, m->graph, g, err);
    free_message(m);
    if (st == NM_OK)
        st = check_opset(g, err);
    if (st == NM_OK)
        st = onnx_graph_check_and_sort(g, err);
    if (st != NM_OK) {
        onnx_graph_free(g);
        return st;
    }
    *out = g;
    return NM_OK;
}

/* --------------------------------------------------------------- loading */

static nm_status decode_model(const uint8_t *data, size_t size,
                              const char *name, Onnx__ModelProto **msg,
                              nm_error *err)
{
    if (size == 0)
        return nm_fail(err, NM_ERR_FORMAT,
                       "%s: not an ONNX model (empty file)", name);
    if (size >= ONNX_MAX_FILE_BYTES)
        return nm_fail(err, NM_ERR_LIMIT,
                       "%s: %zu bytes, more than the 2 GiB a protobuf message "
                       "can hold",
                       name, size);
    ProtobufCAllocator a = malloc_allocator();
    *msg = onnx__model_proto__unpack(&a, size, data);
    if (!*msg)
        return nm_fail(err, NM_ERR_FORMAT,
                       "%s: not an ONNX model (protobuf decoding failed: "
                       "truncated or not protobuf)",
                       name);
    return NM_OK;
}

nm_status onnx_graph_load_memory(const uint8_t *data, size_t size,
                                 const char *name, onnx_graph **out,
                                 nm_error *err)
{
    if (!name)
        name = "<memory>";
    if ((!data && size) || !out)
        return nm_fail(err, NM_ERR_ARG, "%s: onnx_graph_load_memory: NULL "
                                        "argument", name);
    Onnx__ModelProto *m = NULL;
    nm_status st = decode_model(data, size, name, &m, err);
    if (st != NM_OK)
        return st;
    return graph_from_message(name, m, out, err);
}

/* Reads a whole regular file into a new buffer (NULL for an empty file). */
static nm_status read_file(const char *path, uint8_t **data, size_t *size,
                           nm_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return nm_fail(err, NM_ERR_IO, "%s: cannot open: %s", path,
                       strerror(errno));
    struct stat st;
    nm_status status = NM_OK;
    *data = NULL;
    *size = 0;
    if (fstat(fileno(f), &st) != 0)
        status = nm_fail(err, NM_ERR_IO, "%s: cannot stat: %s", path,
                         strerror(errno));
    else if (!S_ISREG(st.st_mode))
        status = nm_fail(err, NM_ERR_IO, "%s: not a regular file", path);
    else if ((unsigned long long)st.st_size >= ONNX_MAX_FILE_BYTES)
        status = nm_fail(err, NM_ERR_LIMIT,
                         "%s: %lld bytes, more than the 2 GiB a protobuf "
                         "message can hold",
                         path, (long long)st.st_size);
    else if (st.st_size > 0) {
        *size = (size_t)st.st_size;
        *data = malloc(*size);
        if (!*data)
            status = out_of_memory(path, err);
        else if (fread(*data, 1, *size, f) != *size)
            status = nm_fail(err, NM_ERR_IO, "%s: read failed: %s", path,
                             ferror(f) ? strerror(errno)
                                       : "file shrank while reading");
    }
    fclose(f);
    if (status != NM_OK) {
        free(*data);
        *data = NULL;
    }
    return status;
}

nm_status onnx_graph_load(const char *path, onnx_graph **out, nm_error *err)
{
    if (!path || !out)
        return nm_fail(err, NM_ERR_ARG, "onnx_graph_load: NULL argument");
    uint8_t *data = NULL;
    size_t size = 0;
    nm_status st = read_file(path, &data, &size, err);
    if (st != NM_OK)
        return st;
    Onnx__ModelProto *m = NULL;
    st = decode_model(data, size, path, &m, err);
    free(data); /* the message now holds its own copy */
    if (st != NM_OK)
        return st;
    return graph_from_message(path, m, out, err);
}

/* --------------------------------------------------------------- lookups */

/* Linear scans: they also work on graphs built by hand (tests), and
 * callers look names up once per node while building a network. */
const onnx_tensor *onnx_graph_initializer(const onnx_graph *g,
                                          const char *name)
{
    if (!g || !name)
        return NULL;
    for (int i = 0; i < g->n_initializers; i++) {
        if (strcmp(g->initializers[i].name, name) == 0)
            return &g->initializers[i];
    }
    return NULL;
}

const onnx_attr *onnx_node_attr(const onnx_node *node, const char *name)
{
    if (!node || !name)
        return NULL;
    for (int i = 0; i < node->n_attrs; i++) {
        if (strcmp(node->attrs[i].name, name) == 0)
            return &node->attrs[i];
    }
    return NULL;
}

int onnx_graph_producer(const onnx_graph *g, const char *name)
{
    if (!g || !name || !name[0])
        return -1;
    for (int i = 0; i < g->n_nodes; i++) {
        const onnx_node *node = &g->nodes[i];
        for (int j = 0; j < node->n_outputs; j++) {
            if (strcmp(node->outputs[j], name) == 0)
                return i;
        }
    }
    return -1;
}

size_t onnx_graph_parameter_count(const onnx_graph *g)
{
    size_t n = 0;
    if (!g)
        return 0;
    for (int i = 0; i < g->n_initializers; i++) {
        if (g->initializers[i].dtype == ONNX_DTYPE_FLOAT &&
            g->initializers[i].data)
            n += g->initializers[i].count;
    }
    return n;
}
