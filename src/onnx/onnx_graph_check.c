#include "onnx/onnx_graph_check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "onnx/onnx_name_table.h"

/* What defines a value, as stored in the name table: the file index of the
 * producing node (>= 0), or one of these (never -1, which means "absent"). */
enum { DEFINED_BY_INPUT = -2, DEFINED_BY_INITIALIZER = -3 };

/* Dependency edges between nodes, producer -> consumer, one per consuming
 * input slot (so Add(x, x) counts twice on both sides, consistently). */
typedef struct node_edges {
    size_t *first; /* successors of node i: succ[first[i] .. first[i+1]) */
    int *succ;
    int *indegree; /* inputs produced by nodes not yet emitted */
} node_edges;

static void describe_definer(const onnx_graph *g, int definer, char *buf,
                             size_t size)
{
    if (definer >= 0)
        snprintf(buf, size, "node '%s' (%s)", g->nodes[definer].name,
                 g->nodes[definer].op_type);
    else if (definer == DEFINED_BY_INPUT)
        snprintf(buf, size, "a graph input");
    else
        snprintf(buf, size, "an initializer");
}

/* Upper bound on the number of names the graph defines. */
static size_t count_definitions(const onnx_graph *g)
{
    size_t n = (size_t)g->n_inputs + (size_t)g->n_initializers;
    for (int i = 0; i < g->n_nodes; i++)
        n += (size_t)g->nodes[i].n_outputs;
    return n;
}

static nm_status table_full(const onnx_graph *g, nm_error *err)
{
    return nm_fail(err, NM_ERR_INTERNAL, "%s: value table overflow", g->path);
}

static nm_status define_inputs_and_initializers(const onnx_graph *g,
                                                onnx_name_table *defs,
                                                nm_error *err)
{
    for (int i = 0; i < g->n_inputs; i++) {
        int r = onnx_name_table_add(defs, g->inputs[i].name,
                                    DEFINED_BY_INPUT, NULL);
        if (r < 0)
            return table_full(g, err);
        if (r == 0)
            return nm_fail(err, NM_ERR_FORMAT,
                           "%s: graph input '%s' is declared twice", g->path,
                           g->inputs[i].name);
    }
    /* Graph inputs never share a name with an initializer (the loader
     * drops such inputs), so a clash here is initializer vs initializer,
     * possibly one made from a Constant node. */
    for (int i = 0; i < g->n_initializers; i++) {
        int r = onnx_name_table_add(defs, g->initializers[i].name,
                                    DEFINED_BY_INITIALIZER, NULL);
        if (r < 0)
            return table_full(g, err);
        if (r == 0)
            return nm_fail(err, NM_ERR_FORMAT,
                           "%s: initializer '%s' is defined twice", g->path,
                           g->initializers[i].name);
    }
    return NM_OK;
}

static nm_status define_node_outputs(const onnx_graph *g,
                                     onnx_name_table *defs, nm_error *err)
{
    for (int i = 0; i < g->n_nodes; i++) {
        const onnx_node *node = &g->nodes[i];
        for (int j = 0; j < node->n_outputs; j++) {
            const char *value = node->outputs[j];
            if (!value[0]) /* omitted optional output */
                continue;
            int first = 0;
            int r = onnx_name_table_add(defs, value, i, &first);
            if (r < 0)
                return table_full(g, err);
            if (r == 0) {
                char by[256];
                describe_definer(g, first, by, sizeof by);
                return nm_fail(err, NM_ERR_FORMAT,
                               "%s: value '%s' is produced twice: by %s and "
                               "by node '%s' (%s)",
                               g->path, value, by, node->name, node->op_type);
            }
        }
    }
    return NM_OK;
}

static nm_status check_references(const onnx_graph *g,
                                  const onnx_name_table *defs, nm_error *err)
{
    for (int i = 0; i < g->n_nodes; i++) {
        const onnx_node *node = &g->nodes[i];
        for (int j = 0; j < node->n_inputs; j++) {
            const char *value = node->inputs[j];
            if (value[0] && onnx_name_table_find(defs, value) == -1)
                return nm_fail(err, NM_ERR_FORMAT,
                               "%s: node '%s' (%s) input '%s' is never "
                               "produced",
                               g->path, node->name, node->op_type, value);
        }
    }
    for (int i = 0; i < g->n_outputs; i++) {
        if (onnx_name_table_find(defs, g->outputs[i].name) == -1)
            return nm_fail(err, NM_ERR_FORMAT,
                           "%s: graph output '%s' is never produced", g->path,
                           g->outputs[i].name);
    }
    return NM_OK;
}

/* Producing node of node->inputs[j], or -1 (omitted, input, initializer). */
static int input_producer(const onnx_name_table *defs, const onnx_node *node,
                          int j)
{
    const char *value = node->inputs[j];
    return value[0] ? onnx_name_table_find(defs, value) : -1;
}

static void free_edges(node_edges *e)
{
    free(e->first);
    free(e->succ);
    free(e->indegree);
}

/* Two passes (count, then fill) give a compact successor array. */
static nm_status build_edges(const onnx_graph *g, const onnx_name_table *defs,
                             node_edges *e, nm_error *err)
{
    size_t n = (size_t)g->n_nodes;
    e->first = calloc(n + 1, sizeof *e->first);
    e->indegree = calloc(n ? n : 1, sizeof *e->indegree);
    e->succ = NULL;
    if (!e->first || !e->indegree)
        goto nomem;
    for (int i = 0; i < g->n_nodes; i++) {
        for (int j = 0; j < g->nodes[i].n_inputs; j++) {
            int p = input_producer(defs, &g->nodes[i], j);
            if (p >= 0) {
                e->first[p + 1]++;
                e->indegree[i]++;
            }
        }
    }
    for (size_t i = 0; i < n; i++)
        e->first[i + 1] += e->first[i];
    e->succ = malloc((e->first[n] ? e->first[n] : 1) * sizeof *e->succ);
    size_t *cursor = malloc((n ? n : 1) * sizeof *cursor);
    if (!e->succ || !cursor) {
        free(cursor);
        goto nomem;
    }
    memcpy(cursor, e->first, n * sizeof *cursor);
    for (int i = 0; i < g->n_nodes; i++) {
        for (int j = 0; j < g->nodes[i].n_inputs; j++) {
            int p = input_producer(defs, &g->nodes[i], j);
            if (p >= 0)
                e->succ[cursor[p]++] = i;
        }
    }
    free(cursor);
    return NM_OK;
nomem:
    free_edges(e);
    return nm_fail(err, NM_ERR_NOMEM, "%s: out of memory sorting the graph",
                   g->path);
}

/* Binary min-heap of node indices: popping the smallest ready index makes
 * Kahn's algorithm stable (an already sorted file keeps its order). */
static void heap_push(int *heap, int *len, int v)
{
    int i = (*len)++;
    while (i > 0 && heap[(i - 1) / 2] > v) {
        heap[i] = heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    heap[i] = v;
}

static int heap_pop(int *heap, int *len)
{
    int top = heap[0];
    int last = heap[--(*len)];
    int i = 0;
    for (;;) {
        int c = 2 * i + 1;
        if (c >= *len)
            break;
        if (c + 1 < *len && heap[c + 1] < heap[c])
            c++;
        if (heap[c] >= last)
            break;
        heap[i] = heap[c];
        i = c;
    }
    if (*len > 0)
        heap[i] = last;
    return top;
}

/* Kahn's algorithm; returns how many nodes were emitted into order[]. */
static int kahn_order(int n, node_edges *e, int *order, int *heap)
{
    int heap_len = 0, emitted = 0;
    for (int i = 0; i < n; i++) {
        if (e->indegree[i] == 0)
            heap_push(heap, &heap_len, i);
    }
    while (heap_len > 0) {
        int v = heap_pop(heap, &heap_len);
        order[emitted++] = v;
        for (size_t k = e->first[v]; k < e->first[v + 1]; k++) {
            if (--e->indegree[e->succ[k]] == 0)
                heap_push(heap, &heap_len, e->succ[k]);
        }
    }
    return emitted;
}

/* After Kahn stalls, every node left has an unemitted producer. Walking
 * from one to such a producer n times must end inside a cycle (pigeonhole),
 * so the node named is on the cycle, not merely downstream of it. */
static int node_on_cycle(const onnx_graph *g, const onnx_name_table *defs,
                         const node_edges *e)
{
    int v = 0;
    while (e->indegree[v] == 0)
        v++;
    for (int step = 0; step < g->n_nodes; step++) {
        const onnx_node *node = &g->nodes[v];
        for (int j = 0; j < node->n_inputs; j++) {
            int p = input_producer(defs, node, j);
            if (p >= 0 && e->indegree[p] > 0) {
                v = p;
                break;
            }
        }
    }
    return v;
}

static nm_status apply_order(onnx_graph *g, const int *order, nm_error *err)
{
    onnx_node *sorted = malloc((size_t)g->n_nodes * sizeof *sorted);
    if (!sorted)
        return nm_fail(err, NM_ERR_NOMEM,
                       "%s: out of memory sorting the graph", g->path);
    for (int i = 0; i < g->n_nodes; i++)
        sorted[i] = g->nodes[order[i]];
    free(g->nodes);
    g->nodes = sorted;
    return NM_OK;
}

static nm_status sort_nodes(onnx_graph *g, const onnx_name_table *defs,
                            nm_error *err)
{
    if (g->n_nodes == 0)
        return NM_OK;
    node_edges e;
    nm_status st = build_edges(g, defs, &e, err);
    if (st != NM_OK)
        return st;
    int *order = malloc((size_t)g->n_nodes * sizeof *order);
    int *heap = malloc((size_t)g->n_nodes * sizeof *heap);
    if (!order || !heap) {
        st = nm_fail(err, NM_ERR_NOMEM, "%s: out of memory sorting the graph",
                     g->path);
    } else if (kahn_order(g->n_nodes, &e, order, heap) < g->n_nodes) {
        const onnx_node *node = &g->nodes[node_on_cycle(g, defs, &e)];
        st = nm_fail(err, NM_ERR_FORMAT,
                     "%s: graph has a cycle through node '%s' (%s)", g->path,
                     node->name, node->op_type);
    } else {
        st = apply_order(g, order, err);
    }
    free(order);
    free(heap);
    free_edges(&e);
    return st;
}

nm_status onnx_graph_check_and_sort(onnx_graph *g, nm_error *err)
{
    onnx_name_table defs;
    if (onnx_name_table_init(&defs, count_definitions(g)) != 0)
        return nm_fail(err, NM_ERR_NOMEM,
                       "%s: out of memory indexing value names", g->path);
    nm_status st = define_inputs_and_initializers(g, &defs, err);
    if (st == NM_OK)
        st = define_node_outputs(g, &defs, err);
    if (st == NM_OK)
        st = check_references(g, &defs, err);
    if (st == NM_OK)
        st = sort_nodes(g, &defs, err);
    onnx_name_table_free(&defs);
    return st;
}
