/*
 * An ONNX model read into plain C structures.
 *
 * The protobuf is decoded with protobuf-c code generated at build time from
 * Debian's onnx.proto; everything needed later is copied out so the protobuf
 * message can be freed at once. Only what the runtime and `nominal info` use
 * is kept. Loading validates the graph's structure (every node input is
 * produced earlier or is a graph input / initializer, no cycles, names
 * unique, declared tensor sizes consistent with their data) but not whether
 * the ops are executable: that is the network builder's job, so `info` can
 * still describe a model that uses unsupported ops.
 */
#ifndef NM_ONNX_GRAPH_H
#define NM_ONNX_GRAPH_H

#include <stddef.h>
#include <stdint.h>

#include "nominal.h"

#define ONNX_MAX_RANK 8

/* ONNX TensorProto.DataType values we name explicitly. */
enum { ONNX_DTYPE_FLOAT = 1, ONNX_DTYPE_INT64 = 7 };

typedef enum onnx_attr_type {
    ONNX_ATTR_INT,
    ONNX_ATTR_INTS,
    ONNX_ATTR_FLOAT,
    ONNX_ATTR_FLOATS,
    ONNX_ATTR_STRING,
    ONNX_ATTR_OTHER /* graph, tensor, sparse tensor, ...: kept by name only */
} onnx_attr_type;

typedef struct onnx_attr {
    char *name;
    onnx_attr_type type;
    int64_t i;
    float f;
    int64_t *ints; /* ONNX_ATTR_INTS */
    float *floats; /* ONNX_ATTR_FLOATS */
    size_t count;  /* length of ints / floats */
    char *s;       /* ONNX_ATTR_STRING, NUL-terminated */
} onnx_attr;

typedef struct onnx_node {
    char *name;    /* never NULL: "<op>_<index>" when the file has none */
    char *op_type;
    char *domain;  /* "" for the default domain */
    char **inputs; /* "" marks an omitted optional input */
    int n_inputs;
    char **outputs;
    int n_outputs;
    onnx_attr *attrs;
    int n_attrs;
} onnx_node;

/* A constant tensor (initializer or Constant node value). Float tensors
 * have `data` filled; INT64 tensors `data_i64`; other dtypes neither. */
typedef struct onnx_tensor {
    char *name;
    int dtype;
    int rank;
    int64_t dims[ONNX_MAX_RANK];
    size_t count; /* product of dims */
    float *data;
    int64_t *data_i64;
} onnx_tensor;

/* A graph input or output. dims[i] < 0 is a symbolic / unknown dimension
 * whose name (if any) is dim_names[i]. */
typedef struct onnx_value_info {
    char *name;
    int dtype;
    int rank; /* -1 when the file gives no shape */
    int64_t dims[ONNX_MAX_RANK];
    char *dim_names[ONNX_MAX_RANK];
} onnx_value_info;

typedef struct onnx_graph {
    char *path;     /* file it was read from, for messages */
    char *graph_name;
    char *producer; /* producer_name + " " + producer_version */
    int64_t ir_version;
    int64_t opset;  /* default-domain opset version */
    onnx_node *nodes; /* topologically sorted */
    int n_nodes;
    onnx_tensor *initializers;
    int n_initializers;
    onnx_value_info *inputs; /* real inputs: initializers excluded */
    int n_inputs;
    onnx_value_info *outputs;
    int n_outputs;
    char **meta_keys; /* metadata_props */
    char **meta_values;
    int n_meta;
} onnx_graph;

/* Read and validate an .onnx file. On failure *out is untouched and err
 * names the file and the problem. */
nm_status onnx_graph_load(const char *path, onnx_graph **out, nm_error *err);
/* Same from memory (name used in messages). */
nm_status onnx_graph_load_memory(const uint8_t *data, size_t size,
                                 const char *name, onnx_graph **out,
                                 nm_error *err);
void onnx_graph_free(onnx_graph *g);

/* Lookups; NULL / -1 when absent. */
const onnx_tensor *onnx_graph_initializer(const onnx_graph *g,
                                          const char *name);
const onnx_attr *onnx_node_attr(const onnx_node *node, const char *name);
/* Index of the node producing value `name`, -1 if none (input/initializer). */
int onnx_graph_producer(const onnx_graph *g, const char *name);

/* Total number of stored float values in initializers (parameter count). */
size_t onnx_graph_parameter_count(const onnx_graph *g);

#endif
