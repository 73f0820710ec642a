/*
 * Structural validation and topological sorting of a freshly copied ONNX
 * graph (internal to the loader; onnx_graph_load calls it).
 */
#ifndef NM_ONNX_GRAPH_CHECK_H
#define NM_ONNX_GRAPH_CHECK_H

#include "onnx/onnx_graph.h"

/* Checks that every value is defined once (graph input, initializer or one
 * node output), that every node input and graph output is defined, and that
 * the nodes form no cycle; then reorders g->nodes topologically, keeping the
 * file order wherever the dependencies allow. Messages start with g->path.
 * On failure g is left valid for onnx_graph_free (nodes possibly reordered
 * or not, never lost). */
nm_status onnx_graph_check_and_sort(onnx_graph *g, nm_error *err);

#endif
