/*
 * ONNX loader tests: the three shared models against MANIFEST.md and against
 * python3-onnx's own reading of them (ref_*.txt from gen_onnx_bad.py), and
 * generated broken / unusual files (fixtures/onnx_bad/).
 */
#include "test_util.h"

#include <time.h>

#include "onnx/onnx_graph.h"

/* ---------------------------------------------------------------- helpers */

static const char *bad_path(const char *name)
{
    return tu_path("%s/onnx_bad/%s", tu_fixtures(), name);
}

static const char *model_path(const char *name)
{
    return tu_path("%s/models/%s", tu_shared(), name);
}

static onnx_graph *load_ok(const char *path)
{
    TU_REQUIRE_FILE(path);
    onnx_graph *g = NULL;
    nm_error err = {0};
    nm_status st = onnx_graph_load(path, &g, &err);
    if (st != NM_OK)
        fail_msg("%s: status %d: %s", path, st, err.msg);
    assert_non_null(g);
    return g;
}

/* Loading path must fail with `code`; the message must name the file and
 * contain every fragment given. */
static void expect_error_v(const char *path, nm_status code, va_list ap)
{
    onnx_graph *sentinel = (onnx_graph *)&sentinel;
    onnx_graph *g = sentinel;
    nm_error err = {0};
    nm_status st = onnx_graph_load(path, &g, &err);
    if (st != code)
        fail_msg("%s: expected status %d, got %d (%s)", path, code, st,
                 err.msg);
    assert_int_equal(err.code, code);
    assert_ptr_equal(g, sentinel); /* *out untouched on failure */
    if (!strstr(err.msg, path))
        fail_msg("message does not name the file: %s", err.msg);
    if (strchr(err.msg, '\n'))
        fail_msg("message is not one line: %s", err.msg);
    for (const char *frag; (frag = va_arg(ap, const char *));) {
        if (!strstr(err.msg, frag))
            fail_msg("message lacks \"%s\": %s", frag, err.msg);
    }
}

/* Fragments end with a typed NULL (a bare NULL may be a plain 0). */
#define EXPECT_ERROR(name, code, ...)                                   \
    expect_error(name, code, __VA_ARGS__, (const char *)NULL)

static void expect_error(const char *name, nm_status code, ...)
{
    const char *path = bad_path(name);
    TU_REQUIRE_FILE(path);
    va_list ap;
    va_start(ap, code);
    expect_error_v(path, code, ap);
    va_end(ap);
}

static int count_op(const onnx_graph *g, const char *op)
{
    int n = 0;
    for (int i = 0; i < g->n_nodes; i++)
        n += strcmp(g->nodes[i].op_type, op) == 0;
    return n;
}

static const onnx_node *find_node(const onnx_graph *g, const char *name)
{
    for (int i = 0; i < g->n_nodes; i++) {
        if (strcmp(g->nodes[i].name, name) == 0)
            return &g->nodes[i];
    }
    fail_msg("no node '%s'", name);
    return NULL;
}

static const onnx_tensor *require_init(const onnx_graph *g, const char *name)
{
    const onnx_tensor *t = onnx_graph_initializer(g, name);
    if (!t)
        fail_msg("no initializer '%s'", name);
    return t;
}

static const onnx_attr *require_attr(const onnx_node *node, const char *name,
                                     onnx_attr_type type)
{
    const onnx_attr *a = onnx_node_attr(node, name);
    if (!a)
        fail_msg("node '%s' has no attribute '%s'", node->name, name);
    assert_int_equal(a->type, type);
    return a;
}

static void assert_ints(const onnx_attr *a, const int64_t *want, size_t n)
{
    assert_non_null(a);
    assert_int_equal(a->type, ONNX_ATTR_INTS);
    assert_int_equal(a->count, n);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(a->ints[i], want[i]);
}

static uint32_t float_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

/* Every node input is a graph input, an initializer, omitted, or made by
 * an earlier node: the order is topological. */
static void assert_topological(const onnx_graph *g)
{
    for (int i = 0; i < g->n_nodes; i++) {
        const onnx_node *node = &g->nodes[i];
        for (int j = 0; j < node->n_inputs; j++) {
            int p = onnx_graph_producer(g, node->inputs[j]);
            if (p >= i)
                fail_msg("node %d '%s' uses '%s' made by later node %d", i,
                         node->name, node->inputs[j], p);
        }
    }
}

/* Input `input` [N, 3, H, W] float, as all three shared models have. */
static void assert_nchw_input(const onnx_graph *g)
{
    assert_int_equal(g->n_inputs, 1);
    const onnx_value_info *in = &g->inputs[0];
    assert_string_equal(in->name, "input");
    assert_int_equal(in->dtype, ONNX_DTYPE_FLOAT);
    assert_int_equal(in->rank, 4);
    assert_true(in->dims[0] < 0);
    assert_int_equal(in->dims[1], 3);
    assert_true(in->dims[2] < 0 && in->dims[3] < 0);
    assert_string_equal(in->dim_names[0], "N");
    assert_null(in->dim_names[1]);
    assert_string_equal(in->dim_names[2], "H");
    assert_string_equal(in->dim_names[3], "W");
}

static void assert_outputs(const onnx_graph *g, const char *const *names,
                           int n)
{
    assert_int_equal(g->n_outputs, n);
    for (int i = 0; i < n; i++) {
        assert_string_equal(g->outputs[i].name, names[i]);
        assert_int_equal(g->outputs[i].dtype, ONNX_DTYPE_FLOAT);
        /* produced by a node, not an input or initializer */
        assert_true(onnx_graph_producer(g, names[i]) >= 0);
    }
}

/* What the three shared models have in common (MANIFEST.md). */
static void assert_common(const onnx_graph *g, const char *graph_name)
{
    assert_int_equal(g->opset, 13);
    assert_int_equal(g->ir_version, 7);
    assert_string_equal(g->graph_name, graph_name);
    assert_string_equal(g->producer,
                        "torch_ref/build_all.py (torch 1.13.0a0) 1.13.0");
    static const char *const keys[] = {"source", "license", "architecture",
                                       "training_data", "preprocessing",
                                       "input", "outputs"};
    assert_int_equal(g->n_meta, 7);
    for (int i = 0; i < 7; i++)
        assert_string_equal(g->meta_keys[i], keys[i]);
    assert_non_null(strstr(g->meta_values[1], "Apache-2.0"));
    assert_non_null(strstr(g->path, ".onnx"));
    for (int i = 0; i < g->n_nodes; i++)
        assert_string_equal(g->nodes[i].domain, "");
    for (int i = 0; i < g->n_initializers; i++) {
        assert_int_equal(g->initializers[i].dtype, ONNX_DTYPE_FLOAT);
        assert_non_null(g->initializers[i].data);
    }
    assert_nchw_input(g);
    assert_topological(g);
}

/* ------------------------------------------- python3-onnx reference file */

typedef struct ref_counts {
    int nodes, tensors, values;
} ref_counts;

static void check_ref_node(const onnx_graph *g, int index, const char *name,
                           const char *op)
{
    /* The shared files are already sorted: loading keeps their order. */
    if (index >= g->n_nodes)
        fail_msg("reference has more nodes than the %d loaded", g->n_nodes);
    assert_string_equal(g->nodes[index].name, name);
    assert_string_equal(g->nodes[index].op_type, op);
}

static void check_ref_tensor(const onnx_graph *g, const char *name,
                             const char *dims, const char *count,
                             const char *sum, const char *abs_sum)
{
    const onnx_tensor *t = require_init(g, name);
    char buf[256] = "";
    for (int i = 0; i < t->rank; i++) {
        size_t used = strlen(buf);
        snprintf(buf + used, sizeof buf - used, "%s%lld", i ? "," : "",
                 (long long)t->dims[i]);
    }
    assert_string_equal(buf, dims);
    assert_int_equal(t->count, strtoull(count, NULL, 10));
    double s = 0;
    for (size_t i = 0; i < t->count; i++)
        s += t->data[i];
    double want = strtod(sum, NULL), scale = strtod(abs_sum, NULL);
    if (fabs(s - want) > 1e-9 * scale + 1e-12)
        fail_msg("tensor '%s': sum %.17g, python3-onnx says %.17g", name, s,
                 want);
}

static void check_ref_value(const onnx_graph *g, const char *name,
                            const char *index, const char *bits)
{
    const onnx_tensor *t = require_init(g, name);
    size_t i = strtoull(index, NULL, 10);
    assert_true(i < t->count);
    uint32_t want = (uint32_t)strtoul(bits, NULL, 16);
    if (float_bits(t->data[i]) != want)
        fail_msg("tensor '%s'[%zu] = 0x%08x, python3-onnx says 0x%08x", name,
                 i, float_bits(t->data[i]), want);
}

/* Splits line at tabs into at most max fields; returns the field count. */
static int split_tabs(char *line, char **fields, int max)
{
    int n = 0;
    for (char *tok = strtok(line, "\t\n"); tok && n < max;
         tok = strtok(NULL, "\t\n"))
        fields[n++] = tok;
    return n;
}

static void check_reference(const onnx_graph *g, const char *stem)
{
    const char *path = bad_path(tu_path("ref_%s.txt", stem));
    TU_REQUIRE_FILE(path);
    char *text = (char *)tu_read_file(path, NULL);
    assert_non_null(text);
    ref_counts c = {0, 0, 0};
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        char *f[6];
        int n = split_tabs(line, f, 6);
        if (n == 3 && strcmp(f[0], "node") == 0) {
            check_ref_node(g, c.nodes++, f[1], f[2]);
        } else if (n == 6 && strcmp(f[0], "tensor") == 0) {
            check_ref_tensor(g, f[1], f[2], f[3], f[4], f[5]);
            c.tensors++;
        } else if (n == 4 && strcmp(f[0], "value") == 0) {
            check_ref_value(g, f[1], f[2], f[3]);
            c.values++;
        } else {
            fail_msg("%s: bad line", path);
        }
    }
    free(text);
    assert_int_equal(c.nodes, g->n_nodes);
    assert_int_equal(c.tensors, g->n_initializers);
    assert_true(c.values >= 10);
}

/* ------------------------------------------------------- shared models */

static void test_resnet50v2(void **state)
{
    (void)state;
    onnx_graph *g = load_ok(model_path("resnet50v2_trunk.onnx"));
    assert_common(g, "resnet50v2_trunk");
    assert_int_equal(g->n_nodes, 111);
    assert_int_equal(count_op(g, "Add"), 13);
    assert_int_equal(count_op(g, "BatchNormalization"), 14);
    assert_int_equal(count_op(g, "Conv"), 43);
    assert_int_equal(count_op(g, "MaxPool"), 1);
    assert_int_equal(count_op(g, "Relu"), 40);
    assert_int_equal(g->n_initializers, 126);
    assert_int_equal(onnx_graph_parameter_count(g), 8549260);
    static const char *const outs[] = {"stage1", "stage2", "stage3"};
    assert_outputs(g, outs, 3);

    const onnx_node *pool = NULL;
    for (int i = 0; i < g->n_nodes; i++) {
        if (strcmp(g->nodes[i].op_type, "MaxPool") == 0)
            pool = &g->nodes[i];
    }
    assert_non_null(pool);
    assert_int_equal(require_attr(pool, "ceil_mode", ONNX_ATTR_INT)->i, 0);
    static const int64_t pads1[] = {1, 1, 1, 1}, k3[] = {3, 3}, s2[] = {2, 2};
    assert_ints(onnx_node_attr(pool, "pads"), pads1, 4);
    assert_ints(onnx_node_attr(pool, "kernel_shape"), k3, 2);
    assert_ints(onnx_node_attr(pool, "strides"), s2, 2);

    const onnx_node *bn = &g->nodes[0];
    assert_string_equal(bn->op_type, "BatchNormalization");
    assert_string_equal(bn->inputs[0], "input");
    assert_int_equal(bn->n_inputs, 5);
    const onnx_attr *eps = require_attr(bn, "epsilon", ONNX_ATTR_FLOAT);
    assert_int_equal(float_bits(eps->f), float_bits(9.999999747378752e-06f));
    assert_null(onnx_node_attr(bn, "no_such_attr"));
    /* conv0 7x7/2 (BatchNorm folded in at export, hence a bias). */
    const onnx_node *conv0 = NULL;
    for (int i = 0; i < g->n_nodes && !conv0; i++) {
        if (strcmp(g->nodes[i].op_type, "Conv") == 0)
            conv0 = &g->nodes[i];
    }
    assert_non_null(conv0);
    assert_int_equal(conv0->n_inputs, 3);
    static const int64_t k7[] = {7, 7}, pads3[] = {3, 3, 3, 3};
    assert_ints(onnx_node_attr(conv0, "kernel_shape"), k7, 2);
    assert_ints(onnx_node_attr(conv0, "pads"), pads3, 4);
    assert_ints(onnx_node_attr(conv0, "strides"), s2, 2);
    assert_int_equal(require_attr(conv0, "group", ONNX_ATTR_INT)->i, 1);
    const onnx_tensor *w = require_init(g, conv0->inputs[1]);
    assert_int_equal(w->rank, 4);
    assert_int_equal(w->dims[0], 64);
    assert_int_equal(w->dims[3], 7);
    assert_int_equal(w->count, 64 * 3 * 7 * 7);
    assert_null(onnx_graph_initializer(g, "no_such_tensor"));
    assert_int_equal(onnx_graph_producer(g, "input"), -1);
    assert_int_equal(onnx_graph_producer(g, conv0->inputs[1]), -1);
    assert_int_equal(require_init(g, conv0->inputs[2])->count, 64);
    assert_int_equal(onnx_graph_producer(g, "no_such_value"), -1);
    check_reference(g, "resnet50v2_trunk");
    onnx_graph_free(g);
}

static void test_squeezenet(void **state)
{
    (void)state;
    onnx_graph *g = load_ok(model_path("squeezenet1.1.onnx"));
    assert_common(g, "squeezenet1.1");
    assert_int_equal(g->n_nodes, 65);
    assert_int_equal(count_op(g, "Concat"), 8);
    assert_int_equal(count_op(g, "Conv"), 26);
    assert_int_equal(count_op(g, "Flatten"), 1);
    assert_int_equal(count_op(g, "GlobalAveragePool"), 1);
    assert_int_equal(count_op(g, "MaxPool"), 3);
    assert_int_equal(count_op(g, "Relu"), 26);
    assert_int_equal(g->n_initializers, 52);
    assert_int_equal(onnx_graph_parameter_count(g), 1235496);
    static const char *const outs[] = {"feat_s4", "feat_s8", "feat_s16",
                                       "logits"};
    assert_outputs(g, outs, 4);
    assert_int_equal(g->outputs[3].rank, 2);
    assert_string_equal(g->outputs[3].dim_names[0], "N");
    assert_int_equal(g->outputs[3].dims[1], 1000);

    static const int64_t pads0[] = {0, 0, 0, 0};
    int pools = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        const onnx_node *node = &g->nodes[i];
        if (strcmp(node->op_type, "MaxPool") == 0) {
            assert_int_equal(require_attr(node, "ceil_mode", ONNX_ATTR_INT)->i,
                             1);
            assert_ints(onnx_node_attr(node, "pads"), pads0, 4);
            pools++;
        } else if (strcmp(node->op_type, "Concat") == 0) {
            assert_int_equal(require_attr(node, "axis", ONNX_ATTR_INT)->i, 1);
            assert_int_equal(node->n_inputs, 2);
        } else if (strcmp(node->op_type, "Flatten") == 0) {
            assert_int_equal(require_attr(node, "axis", ONNX_ATTR_INT)->i, 1);
            assert_string_equal(node->outputs[0], "logits");
        }
    }
    assert_int_equal(pools, 3);
    check_reference(g, "squeezenet1.1");
    onnx_graph_free(g);
}

static void test_mobilenetv2(void **state)
{
    (void)state;
    onnx_graph *g = load_ok(model_path("mobilenetv2_gluon_features.onnx"));
    assert_common(g, "mobilenetv2_gluon");
    assert_int_equal(g->n_nodes, 99);
    assert_int_equal(count_op(g, "Add"), 10);
    assert_int_equal(count_op(g, "Conv"), 53);
    assert_int_equal(count_op(g, "Relu"), 36);
    assert_int_equal(g->n_initializers, 106);
    assert_int_equal(onnx_graph_parameter_count(g), 2207872);
    static const char *const outs[] = {"feat_s4", "feat_s8", "feat_s16",
                                       "feat_s32", "feat_last"};
    assert_outputs(g, outs, 5);

    /* Depthwise convs: group == channels, weight [group, 1, 3, 3]. */
    static const int64_t groups[] = {32, 96, 144, 192, 384, 576, 960};
    int seen[7] = {0}, depthwise = 0, plain = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        const onnx_node *node = &g->nodes[i];
        if (strcmp(node->op_type, "Conv") != 0)
            continue;
        int64_t group = require_attr(node, "group", ONNX_ATTR_INT)->i;
        if (group == 1) {
            plain++;
            continue;
        }
        const onnx_tensor *w = require_init(g, node->inputs[1]);
        assert_int_equal(w->rank, 4);
        assert_int_equal(w->dims[0], group);
        assert_int_equal(w->dims[1], 1);
        assert_int_equal(w->dims[2], 3);
        depthwise++;
        int known = 0;
        for (int k = 0; k < 7; k++) {
            if (groups[k] == group) {
                seen[k] = known = 1;
            }
        }
        assert_true(known);
    }
    for (int k = 0; k < 7; k++)
        assert_true(seen[k]);
    assert_int_equal(depthwise, 17); /* one per linear bottleneck */
    assert_int_equal(plain + depthwise, 53);
    check_reference(g, "mobilenetv2_gluon_features");
    onnx_graph_free(g);
}

/* load_memory gives the same graph as load, and a cut anywhere inside a
 * length-delimited field is refused, naming the buffer. */
static void test_truncated_in_memory(void **state)
{
    (void)state;
    const char *list = bad_path("truncated.txt");
    TU_REQUIRE_FILE(list);
    char *text = (char *)tu_read_file(list, NULL);
    assert_non_null(text);
    char *save = NULL, *f[2];
    char *line = strtok_r(text, "\n", &save);
    assert_non_null(line);
    assert_int_equal(split_tabs(line, f, 2), 2);
    assert_string_equal(f[0], "source");
    size_t size = 0;
    uint8_t *model = tu_read_file(f[1], &size);
    assert_non_null(model);

    onnx_graph *g = NULL;
    nm_error err = {0};
    assert_int_equal(onnx_graph_load_memory(model, size, "whole", &g, &err),
                     NM_OK);
    assert_string_equal(g->path, "whole");
    assert_true(g->n_nodes > 0);
    onnx_graph_free(g);

    int cuts = 0;
    while ((line = strtok_r(NULL, "\n", &save))) {
        assert_int_equal(split_tabs(line, f, 2), 2);
        size_t cut = strtoull(f[1], NULL, 10);
        assert_true(cut > 0 && cut < size);
        const char *name = tu_path("model-cut-at-%zu", cut);
        g = NULL;
        nm_status st = onnx_graph_load_memory(model, cut, name, &g, &err);
        if (st != NM_ERR_FORMAT)
            fail_msg("cut at %zu: status %d (%s)", cut, st, err.msg);
        assert_null(g);
        assert_non_null(strstr(err.msg, name));
        assert_non_null(strstr(err.msg, "not an ONNX model"));
        cuts++;
    }
    assert_true(cuts >= 5);
    free(model);
    free(text);
}

/* ------------------------------------------------ undecodable / IO errors */

static void test_not_onnx(void **state)
{
    (void)state;
    EXPECT_ERROR("zero_byte.onnx", NM_ERR_FORMAT, "not an ONNX model",
                 "empty");
    EXPECT_ERROR("garbage.onnx", NM_ERR_FORMAT, "not an ONNX model");
    EXPECT_ERROR("garbage_text.onnx", NM_ERR_FORMAT, "not an ONNX model");
    EXPECT_ERROR("no_graph.onnx", NM_ERR_FORMAT, "not an ONNX model");
    EXPECT_ERROR("truncated_small.onnx", NM_ERR_FORMAT, "not an ONNX model");
}

static void test_io_errors(void **state)
{
    (void)state;
    const char *missing = bad_path("does_not_exist.onnx");
    onnx_graph *g = NULL;
    nm_error err = {0};
    assert_int_equal(onnx_graph_load(missing, &g, &err), NM_ERR_IO);
    assert_null(g);
    assert_non_null(strstr(err.msg, missing));
    assert_non_null(strstr(err.msg, "No such file"));

    const char *dir = tu_path("%s/onnx_bad", tu_fixtures());
    TU_REQUIRE_FILE(dir);
    assert_int_equal(onnx_graph_load(dir, &g, &err), NM_ERR_IO);
    assert_non_null(strstr(err.msg, dir));
    assert_null(g);

    /* Arguments; a NULL err is allowed everywhere. */
    assert_int_equal(onnx_graph_load(NULL, &g, &err), NM_ERR_ARG);
    assert_int_equal(onnx_graph_load(missing, NULL, NULL), NM_ERR_ARG);
    assert_int_equal(onnx_graph_load(missing, &g, NULL), NM_ERR_IO);
    assert_int_equal(onnx_graph_load_memory(NULL, 4, "m", &g, &err),
                     NM_ERR_ARG);
    assert_int_equal(onnx_graph_load_memory(NULL, 0, "empty", &g, &err),
                     NM_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "empty"));
    onnx_graph_free(NULL);
    assert_null(onnx_graph_initializer(NULL, "x"));
    assert_null(onnx_node_attr(NULL, "x"));
    assert_int_equal(onnx_graph_producer(NULL, "x"), -1);
    assert_int_equal(onnx_graph_parameter_count(NULL), 0);
}

/* ------------------------------------------------------- graph structure */

static void test_graph_errors(void **state)
{
    (void)state;
    EXPECT_ERROR("missing_input.onnx", NM_ERR_FORMAT,
                 "node 'conv1' (Conv) input 'w_missing' is never produced");
    EXPECT_ERROR("duplicate_producer.onnx", NM_ERR_FORMAT,
                 "value 'y' is produced twice", "'relu_a'", "'relu_b'");
    EXPECT_ERROR("duplicate_init_output.onnx", NM_ERR_FORMAT,
                 "value 'w' is produced twice", "initializer",
                 "'overwriter'");
    EXPECT_ERROR("duplicate_input.onnx", NM_ERR_FORMAT,
                 "graph input 'x' is declared twice");
    EXPECT_ERROR("output_never_produced.onnx", NM_ERR_FORMAT,
                 "graph output 'ghost' is never produced");
    EXPECT_ERROR("no_opset.onnx", NM_ERR_FORMAT, "opset_import", "'r'");
}

/* The node named must be on the cycle (A or B), not C downstream of it,
 * which comes first in the file. */
static void test_cycle(void **state)
{
    (void)state;
    const char *path = bad_path("cycle.onnx");
    TU_REQUIRE_FILE(path);
    onnx_graph *g = NULL;
    nm_error err = {0};
    assert_int_equal(onnx_graph_load(path, &g, &err), NM_ERR_FORMAT);
    assert_null(g);
    assert_non_null(strstr(err.msg, path));
    assert_non_null(strstr(err.msg, "graph has a cycle through node '"));
    assert_true(strstr(err.msg, "node 'A' (Add)") ||
                strstr(err.msg, "node 'B' (Relu)"));
    assert_null(strstr(err.msg, "'C'"));
}

static void test_tensor_errors(void **state)
{
    (void)state;
    EXPECT_ERROR("raw_len_mismatch.onnx", NM_ERR_FORMAT, "'w_short'",
                 "20 bytes", "[2, 3] need 24");
    EXPECT_ERROR("raw_len_long.onnx", NM_ERR_FORMAT, "'w_long'", "28 bytes");
    EXPECT_ERROR("float_data_mismatch.onnx", NM_ERR_FORMAT, "'w_floats'",
                 "3 values in float_data");
    EXPECT_ERROR("negative_dim.onnx", NM_ERR_FORMAT, "'w_neg'", "-1");
    EXPECT_ERROR("absurd_dims.onnx", NM_ERR_LIMIT, "'w_huge'");
    EXPECT_ERROR("too_many_elements.onnx", NM_ERR_LIMIT, "'w_big'",
                 "[65536, 65536]");
    EXPECT_ERROR("rank9.onnx", NM_ERR_LIMIT, "'w_rank9'", "rank 9");
    EXPECT_ERROR("external_data.onnx", NM_ERR_UNSUPPORTED, "'w_ext'",
                 "external");
    EXPECT_ERROR("constant_bad.onnx", NM_ERR_FORMAT, "tensor 'k'", "4 bytes");
    EXPECT_ERROR("input_negative_dim.onnx", NM_ERR_FORMAT,
                 "graph input 'x' has negative dimension -2");
}

/* ----------------------------------------------- valid but unusual files */

static void test_unsorted(void **state)
{
    (void)state;
    onnx_graph *g = load_ok(bad_path("unsorted.onnx"));
    static const char *const order[] = {"n0", "n1", "Relu_3", "n3"};
    assert_int_equal(g->n_nodes, 4);
    for (int i = 0; i < 4; i++)
        assert_string_equal(g->nodes[i].name, order[i]);
    assert_topological(g);
    assert_int_equal(onnx_graph_producer(g, "a"), 0);
    assert_int_equal(onnx_graph_producer(g, "c"), 1);
    assert_int_equal(onnx_graph_producer(g, "d"), 2);
    assert_int_equal(onnx_graph_producer(g, "y"), 3);
    assert_int_equal(onnx_graph_producer(g, "x"), -1);
    assert_int_equal(g->n_inputs, 1);
    assert_int_equal(g->inputs[0].rank, 2);
    assert_int_equal(g->inputs[0].dims[0], -1);
    assert_string_equal(g->inputs[0].dim_names[0], "N");
    assert_int_equal(g->inputs[0].dims[1], 4);
    onnx_graph_free(g);
}

/* 100000 nodes in reverse order: a quadratic validation or sort would
 * take minutes (10^10 name comparisons); the bound is loose on purpose. */
static void test_big_chain(void **state)
{
    (void)state;
    const char *path = bad_path("big_chain.onnx");
    TU_REQUIRE_FILE(path);
    clock_t start = clock();
    onnx_graph *g = load_ok(path);
    double seconds = (double)(clock() - start) / CLOCKS_PER_SEC;
    assert_int_equal(g->n_nodes, 100000);
    for (int i = 0; i < g->n_nodes; i++) {
        char want[32];
        snprintf(want, sizeof want, "n%d", i);
        assert_string_equal(g->nodes[i].name, want);
    }
    assert_int_equal(onnx_graph_producer(g, "v100000"), 99999);
    onnx_graph_free(g);
    if (seconds > 20)
        fail_msg("loading a 100000-node chain took %.1f s", seconds);
}

static void test_constants(void **state)
{
    (void)state;
    onnx_graph *g = load_ok(bad_path("constant.onnx"));
    /* The string Constant stays a node; the others became initializers. */
    assert_int_equal(g->n_nodes, 3);
    assert_string_equal(g->nodes[0].name, "c_str");
    assert_string_equal(g->nodes[0].op_type, "Constant");
    assert_string_equal(
        require_attr(&g->nodes[0], "value_string", ONNX_ATTR_STRING)->s, "hi");
    assert_string_equal(g->nodes[1].op_type, "Clip");
    assert_string_equal(g->nodes[2].domain, "test.domain");
    assert_int_equal(g->n_initializers, 6);

    const onnx_tensor *t = require_init(g, "min");
    assert_int_equal(t->dtype, ONNX_DTYPE_FLOAT);
    assert_int_equal(t->rank, 0);
    assert_int_equal(t->count, 1);
    assert_true(t->data[0] == -1.5f);
    t = require_init(g, "max");
    assert_int_equal(t->rank, 0);
    assert_true(t->data[0] == 6.0f);
    t = require_init(g, "fl");
    assert_int_equal(t->rank, 1);
    assert_int_equal(t->dims[0], 2);
    assert_true(t->data[0] == 0.25f && t->data[1] == 0.5f);
    t = require_init(g, "ints");
    assert_int_equal(t->dtype, ONNX_DTYPE_INT64);
    assert_null(t->data);
    assert_int_equal(t->count, 3);
    assert_int_equal(t->data_i64[1], -2);
    assert_int_equal(t->data_i64[2], 3);
    t = require_init(g, "one_int");
    assert_int_equal(t->rank, 0);
    assert_int_equal(t->data_i64[0], 7);
    t = require_init(g, "i64mat");
    assert_int_equal(t->rank, 2);
    assert_int_equal(t->count, 4);
    assert_int_equal(t->data_i64[3], -4);
    assert_int_equal(onnx_graph_parameter_count(g), 4);
    assert_int_equal(onnx_graph_producer(g, "min"), -1);
    assert_int_equal(onnx_graph_producer(g, "s"), 0);
    onnx_graph_free(g);
}

static void test_unknown_op(void **state)
{
    (void)state;
    onnx_graph *g = load_ok(bad_path("unknown_op.onnx"));
    assert_int_equal(g->opset, 11); /* "ai.onnx", listed second */
    assert_int_equal(g->n_nodes, 2);
    const onnx_node *m = find_node(g, "mystery");
    assert_string_equal(m->op_type, "FancyOp");
    assert_string_equal(m->domain, "");
    assert_int_equal(m->n_attrs, 6);
    assert_int_equal(require_attr(m, "an_int", ONNX_ATTR_INT)->i, -3);
    static const int64_t ints[] = {4, 5, 6};
    assert_ints(onnx_node_attr(m, "some_ints"), ints, 3);
    assert_true(require_attr(m, "a_float", ONNX_ATTR_FLOAT)->f == 0.5f);
    const onnx_attr *fl = require_attr(m, "some_floats", ONNX_ATTR_FLOATS);
    assert_int_equal(fl->count, 2);
    assert_true(fl->floats[0] == 1.5f && fl->floats[1] == -2.25f);
    assert_string_equal(require_attr(m, "a_string", ONNX_ATTR_STRING)->s,
                        "hello");
    require_attr(m, "a_tensor", ONNX_ATTR_OTHER);

    const onnx_node *t = find_node(g, "thing");
    assert_string_equal(t->domain, "com.example");
    assert_int_equal(t->n_inputs, 3);
    assert_string_equal(t->inputs[1], ""); /* omitted optional input */
    assert_int_equal(t->n_outputs, 2);
    assert_string_equal(t->outputs[1], "");
    assert_int_equal(require_attr(t, "untyped_int", ONNX_ATTR_INT)->i, 9);
    const onnx_attr *uf = require_attr(t, "untyped_floats", ONNX_ATTR_FLOATS);
    assert_int_equal(uf->count, 2);
    assert_true(uf->floats[1] == 1.0f);
    assert_int_equal(onnx_graph_producer(g, ""), -1);
    onnx_graph_free(g);
}

static void test_encodings(void **state)
{
    (void)state;
    onnx_graph *g = load_ok(bad_path("encodings.onnx"));
    assert_int_equal(g->ir_version, 3);
    assert_int_equal(g->opset, 13);
    assert_string_equal(g->producer, "gen_onnx_bad 1.2");
    assert_string_equal(g->graph_name, "encodings");
    assert_int_equal(g->n_meta, 2);
    assert_string_equal(g->meta_keys[0], "alpha");
    assert_string_equal(g->meta_values[0], "one");
    assert_string_equal(g->meta_values[1], "");
    assert_int_equal(g->n_nodes, 1);
    assert_string_equal(g->nodes[0].name, "Use_0");
    assert_int_equal(g->nodes[0].n_inputs, 7);

    /* Initializers listed as inputs (IR 3) are not real inputs. */
    assert_int_equal(g->n_inputs, 1);
    const onnx_value_info *x = &g->inputs[0];
    assert_string_equal(x->name, "x");
    assert_int_equal(x->rank, 4);
    assert_int_equal(x->dims[1], 3);
    assert_int_equal(x->dims[3], 17);
    assert_int_equal(x->dims[2], -1);
    assert_string_equal(x->dim_names[2], "H");
    assert_int_equal(g->n_outputs, 1);
    assert_int_equal(g->outputs[0].rank, -1);

    const onnx_tensor *t = require_init(g, "f_raw");
    static const uint32_t raw_bits[] = {0x3f800000, 0xc0200000, 0x40490fdb,
                                        0x0da24260, 0x477fe000, 0x80000000,
                                        0x3dcccccd, 0x40e00000};
    assert_int_equal(t->count, 8);
    assert_int_equal(t->dims[0], 2);
    assert_int_equal(t->dims[1], 4);
    for (int i = 0; i < 8; i++)
        assert_int_equal(float_bits(t->data[i]), raw_bits[i]);
    t = require_init(g, "f_list");
    assert_true(t->data[0] == 0.5f && t->data[1] == -0.75f &&
                t->data[2] == 2.0f);
    t = require_init(g, "i_raw");
    assert_int_equal(t->dtype, ONNX_DTYPE_INT64);
    assert_int_equal(t->data_i64[1], -1);
    assert_int_equal(t->data_i64[2], (int64_t)1 << 40);
    assert_int_equal(t->data_i64[3], -((int64_t)1 << 50));
    t = require_init(g, "i_list");
    assert_int_equal(t->data_i64[0], -7);
    assert_int_equal(t->data_i64[1], (int64_t)1 << 33);
    t = require_init(g, "i32");
    assert_int_equal(t->dtype, 6);
    assert_int_equal(t->count, 2);
    assert_null(t->data);
    assert_null(t->data_i64);
    t = require_init(g, "f_empty");
    assert_int_equal(t->rank, 2);
    assert_int_equal(t->dims[0], 0);
    assert_int_equal(t->count, 0);
    assert_non_null(t->data);
    assert_int_equal(onnx_graph_parameter_count(g), 8 + 3);
    onnx_graph_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resnet50v2),
        cmocka_unit_test(test_squeezenet),
        cmocka_unit_test(test_mobilenetv2),
        cmocka_unit_test(test_truncated_in_memory),
        cmocka_unit_test(test_not_onnx),
        cmocka_unit_test(test_io_errors),
        cmocka_unit_test(test_graph_errors),
        cmocka_unit_test(test_cycle),
        cmocka_unit_test(test_tensor_errors),
        cmocka_unit_test(test_unsorted),
        cmocka_unit_test(test_big_chain),
        cmocka_unit_test(test_constants),
        cmocka_unit_test(test_unknown_op),
        cmocka_unit_test(test_encodings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
