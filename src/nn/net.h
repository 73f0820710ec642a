/* Internal network helpers beyond the public nm_net API (used by the CLI). */
#ifndef NM_NN_NET_H
#define NM_NN_NET_H

#include "nominal.h"
#include "backend/backend.h"
#include "onnx/onnx_graph.h"

/* Check whether the runtime can execute `node` of `g` (op, attributes,
 * dtypes, constant weights). NM_OK or an error naming node, op, attribute. */
nm_status net_check_node(const onnx_graph *g, const onnx_node *node,
                         nm_error *err);

/* nm_net_open for an ONNX model held in memory (name is for messages). */
nm_status net_open_memory(const uint8_t *data, size_t size, const char *name,
                          const nm_net_options *opts, nm_net **out, nm_error *err);

/* The backend the network runs on (for methods' own GEMMs). */
nm_backend *net_backend(const nm_net *net);

/* The graph the network was loaded from. */
const onnx_graph *net_graph(const nm_net *net);

/* Number of backend layers after fusion for the current taps, and the
 * backend description; for `info`/`bench` output. */
int net_layer_count(const nm_net *net);
const char *net_backend_description(const nm_net *net);
/* Activation memory of the current plan in bytes (0 before the first run). */
size_t net_plan_memory(const nm_net *net);

#endif
