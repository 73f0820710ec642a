/*
 * Write a standalone ONNX model holding only the part of a graph that
 * computes the given values: the nodes they need, the initializers those
 * nodes use, the graph input, and the values as graph outputs. A model file
 * embeds this, so the original .onnx is not needed at predict time.
 * Serialized with the protobuf-c code generated from Debian's onnx.proto.
 */
#ifndef NM_ONNX_WRITE_H
#define NM_ONNX_WRITE_H

#include <stddef.h>
#include <stdint.h>

#include "nominal.h"
#include "onnx/onnx_graph.h"

/* *bytes is malloc'ed. Loading the result with onnx_graph_load_memory gives
 * a graph whose outputs are exactly `outputs`, in that order. */
nm_status onnx_graph_write_subgraph(const onnx_graph *g, const char *const *outputs,
                                    int n_outputs, uint8_t **bytes, size_t *size,
                                    nm_error *err);

#endif
