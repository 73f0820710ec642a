/*
 * Subgraph writer tests: a small graph built here (always runs) and the
 * three shared models (skipped without ../shared). Each written model is
 * read back with onnx_graph_load_memory and compared with a reference
 * computed here independently: exactly the requested outputs, exactly the
 * needed nodes (same order, names, inputs, attributes), exactly the needed
 * initializers with identical bytes. python3-onnx's checker (full_check:
 * with shape inference) also validates the files when it is installed.
 */
#include "test_util.h"

#include <unistd.h>

#include "onnx/onnx_graph.h"
#include "onnx/onnx_write.h"

#define PYTHON "/usr/bin/python3"

/* ------------------------------------------------------- a small graph */

/*      x ──Conv(w,b)── c ──LeakyRelu── l ──Pad(pads)── p   (graph output)
 *      x ──Relu── rx ──Mul(s)── m
 * plus an initializer no node uses. */
typedef struct tiny_graph {
    onnx_graph g;
    onnx_node nodes[5];
    onnx_tensor inits[5];
    onnx_value_info input, output;
    onnx_attr conv_attrs[2], leaky_attr, pad_attr;
    char *conv_in[3], *conv_out[1], *leaky_in[1], *leaky_out[1];
    char *pad_in[2], *pad_out[1], *relu_in[1], *relu_out[1];
    char *mul_in[2], *mul_out[1];
    float w[6], b[2], s[1], unused[3];
    int64_t pads[8], kernel[2];
} tiny_graph;

static void tiny_node(onnx_node *n, char *name, char *op, char **in, int n_in,
                      char **out, onnx_attr *attrs, int n_attrs)
{
    *n = (onnx_node){name, op, "", in, n_in, out, 1, attrs, n_attrs};
}

static void tiny_tensor(onnx_tensor *t, char *name, int dtype, int rank,
                        int64_t d0, int64_t d1, void *data, size_t count)
{
    memset(t, 0, sizeof *t);
    t->name = name;
    t->dtype = dtype;
    t->rank = rank;
    t->dims[0] = d0;
    t->dims[1] = d1;
    t->dims[2] = t->dims[3] = 1;
    t->count = count;
    if (dtype == ONNX_DTYPE_FLOAT)
        t->data = data;
    else
        t->data_i64 = data;
}

static void tiny_build(tiny_graph *t)
{
    memset(t, 0, sizeof *t);
    static const float w[6] = {0.5f, -1.0f, 2.0f, 0.25f, 3.0f, -0.125f};
    memcpy(t->w, w, sizeof w);
    t->b[0] = 1.5f;
    t->b[1] = -2.5f;
    t->s[0] = 3.0f;
    static const int64_t pads[8] = {0, 0, 1, 1, 0, 0, 1, 1};
    memcpy(t->pads, pads, sizeof pads);
    t->kernel[0] = t->kernel[1] = 1;

    t->conv_attrs[0] = (onnx_attr){.name = "kernel_shape",
                                   .type = ONNX_ATTR_INTS,
                                   .ints = t->kernel,
                                   .count = 2};
    t->conv_attrs[1] = (onnx_attr){.name = "group", .type = ONNX_ATTR_INT,
                                   .i = 1};
    t->leaky_attr = (onnx_attr){.name = "alpha", .type = ONNX_ATTR_FLOAT,
                                .f = 0.1f};
    t->pad_attr = (onnx_attr){.name = "mode", .type = ONNX_ATTR_STRING,
                              .s = "constant"};
    char **io[] = {t->conv_in, t->conv_out, t->leaky_in, t->leaky_out,
                   t->pad_in, t->pad_out, t->relu_in, t->relu_out,
                   t->mul_in, t->mul_out};
    char *names[][3] = {{"x", "w", "b"}, {"c"}, {"c"}, {"l"}, {"l", "pads"},
                        {"p"}, {"x"}, {"rx"}, {"rx", "s"}, {"m"}};
    for (int i = 0; i < 10; i++)
        memcpy(io[i], names[i], (i == 0 ? 3 : i == 4 || i == 8 ? 2 : 1) *
                                    sizeof(char *));
    tiny_node(&t->nodes[0], "conv", "Conv", t->conv_in, 3, t->conv_out,
              t->conv_attrs, 2);
    tiny_node(&t->nodes[1], "leaky", "LeakyRelu", t->leaky_in, 1,
              t->leaky_out, &t->leaky_attr, 1);
    tiny_node(&t->nodes[2], "pad", "Pad", t->pad_in, 2, t->pad_out,
              &t->pad_attr, 1);
    tiny_node(&t->nodes[3], "relu", "Relu", t->relu_in, 1, t->relu_out, NULL,
              0);
    tiny_node(&t->nodes[4], "mul", "Mul", t->mul_in, 2, t->mul_out, NULL, 0);

    tiny_tensor(&t->inits[0], "w", ONNX_DTYPE_FLOAT, 4, 2, 3, t->w, 6);
    tiny_tensor(&t->inits[1], "b", ONNX_DTYPE_FLOAT, 1, 2, 0, t->b, 2);
    tiny_tensor(&t->inits[2], "pads", ONNX_DTYPE_INT64, 1, 8, 0, t->pads, 8);
    tiny_tensor(&t->inits[3], "s", ONNX_DTYPE_FLOAT, 0, 0, 0, t->s, 1);
    tiny_tensor(&t->inits[4], "unused", ONNX_DTYPE_FLOAT, 1, 3, 0, t->unused,
                3);

    t->input = (onnx_value_info){.name = "x", .dtype = ONNX_DTYPE_FLOAT,
                                 .rank = 4, .dims = {-1, 3, -1, -1},
                                 .dim_names = {"N", NULL, "H", NULL}};
    t->output = (onnx_value_info){.name = "p", .dtype = ONNX_DTYPE_FLOAT,
                                  .rank = 4, .dims = {-1, 2, -1, -1},
                                  .dim_names = {"N"}};
    t->g = (onnx_graph){.path = "tiny.onnx", .graph_name = "tiny",
                        .producer = "test", .ir_version = 7, .opset = 13,
                        .nodes = t->nodes, .n_nodes = 5,
                        .initializers = t->inits, .n_initializers = 5,
                        .inputs = &t->input, .n_inputs = 1,
                        .outputs = &t->output, .n_outputs = 1};
}

/* ------------------------------------------------- reference and checks */

static int in_list(const char *name, char **list, int n)
{
    for (int i = 0; i < n; i++) {
        if (strcmp(list[i], name) == 0)
            return 1;
    }
    return 0;
}

/* The needed nodes by a plain backwards sweep over the sorted nodes (not
 * the writer's algorithm): a node is needed if it produces a needed value,
 * and then its inputs are needed. Returns the number of nodes. */
static int reference_needed(const onnx_graph *g, const char *const *outputs,
                            int n_outputs, char *node_needed,
                            char *init_needed)
{
    int cap = n_outputs + 16;
    for (int i = 0; i < g->n_nodes; i++)
        cap += g->nodes[i].n_inputs;
    char **values = malloc((size_t)cap * sizeof *values);
    assert_non_null(values);
    int n_values = 0, n_nodes = 0;
    for (int i = 0; i < n_outputs; i++)
        values[n_values++] = (char *)outputs[i];
    for (int i = g->n_nodes - 1; i >= 0; i--) {
        const onnx_node *node = &g->nodes[i];
        node_needed[i] = 0;
        for (int o = 0; o < node->n_outputs && !node_needed[i]; o++)
            node_needed[i] = node->outputs[o][0] &&
                             in_list(node->outputs[o], values, n_values);
        if (!node_needed[i])
            continue;
        n_nodes++;
        for (int j = 0; j < node->n_inputs; j++)
            values[n_values++] = node->inputs[j];
    }
    for (int k = 0; k < g->n_initializers; k++)
        init_needed[k] = (char)in_list(g->initializers[k].name, values,
                                       n_values);
    free(values);
    return n_nodes;
}

static void expect_same_attr(const onnx_attr *a, const onnx_attr *b)
{
    assert_string_equal(a->name, b->name);
    assert_int_equal(a->type, b->type);
    switch (a->type) {
    case ONNX_ATTR_INT: assert_int_equal(a->i, b->i); break;
    case ONNX_ATTR_FLOAT: assert_memory_equal(&a->f, &b->f, sizeof a->f); break;
    case ONNX_ATTR_INTS:
        assert_int_equal(a->count, b->count);
        if (a->count)
            assert_memory_equal(a->ints, b->ints, a->count * sizeof *a->ints);
        break;
    case ONNX_ATTR_FLOATS:
        assert_int_equal(a->count, b->count);
        if (a->count)
            assert_memory_equal(a->floats, b->floats,
                                a->count * sizeof *a->floats);
        break;
    case ONNX_ATTR_STRING: assert_string_equal(a->s, b->s); break;
    case ONNX_ATTR_OTHER: break;
    }
}

static void expect_same_node(const onnx_node *a, const onnx_node *b)
{
    assert_string_equal(a->name, b->name);
    assert_string_equal(a->op_type, b->op_type);
    assert_string_equal(a->domain, b->domain);
    assert_int_equal(a->n_inputs, b->n_inputs);
    for (int j = 0; j < a->n_inputs; j++)
        assert_string_equal(a->inputs[j], b->inputs[j]);
    assert_int_equal(a->n_outputs, b->n_outputs);
    for (int j = 0; j < a->n_outputs; j++)
        assert_string_equal(a->outputs[j], b->outputs[j]);
    assert_int_equal(a->n_attrs, b->n_attrs);
    for (int j = 0; j < a->n_attrs; j++)
        expect_same_attr(&a->attrs[j], &b->attrs[j]);
}

static void expect_same_tensor(const onnx_tensor *a, const onnx_tensor *b)
{
    assert_string_equal(a->name, b->name);
    assert_int_equal(a->dtype, b->dtype);
    assert_int_equal(a->rank, b->rank);
    assert_memory_equal(a->dims, b->dims, (size_t)a->rank * sizeof *a->dims);
    assert_int_equal(a->count, b->count);
    if (a->dtype == ONNX_DTYPE_FLOAT)
        assert_memory_equal(a->data, b->data, a->count * sizeof *a->data);
    else
        assert_memory_equal(a->data_i64, b->data_i64,
                            a->count * sizeof *a->data_i64);
}

static void expect_same_value_info(const onnx_value_info *a,
                                   const onnx_value_info *b)
{
    assert_string_equal(a->name, b->name);
    assert_int_equal(a->dtype, b->dtype);
    assert_int_equal(a->rank, b->rank);
    for (int i = 0; i < a->rank; i++) {
        assert_int_equal(a->dims[i], b->dims[i]);
        assert_int_equal(!a->dim_names[i], !b->dim_names[i]);
        if (a->dim_names[i])
            assert_string_equal(a->dim_names[i], b->dim_names[i]);
    }
}

/* Write the subgraph of g computing outputs, read it back and compare with
 * the reference. Returns the written node count; *bytes_out (optional)
 * receives the file. */
static int check_subgraph(const onnx_graph *g, const char *const *outputs,
                          int n_outputs, uint8_t **bytes_out, size_t *size_out)
{
    uint8_t *bytes = NULL;
    size_t size = 0;
    nm_error err = {0};
    nm_status st = onnx_graph_write_subgraph(g, outputs, n_outputs, &bytes,
                                             &size, &err);
    if (st != NM_OK)
        fail_msg("write %s -> %s: %s", g->path, outputs[0], err.msg);
    onnx_graph *sub = NULL;
    st = onnx_graph_load_memory(bytes, size, "subgraph", &sub, &err);
    if (st != NM_OK)
        fail_msg("reload %s -> %s: %s", g->path, outputs[0], err.msg);

    assert_int_equal(sub->n_outputs, n_outputs);
    for (int i = 0; i < n_outputs; i++)
        assert_string_equal(sub->outputs[i].name, outputs[i]);
    assert_int_equal(sub->opset, g->opset);
    assert_string_equal(sub->producer, "nominal " NM_VERSION_STRING);

    char *node_needed = calloc((size_t)g->n_nodes + 1, 1);
    char *init_needed = calloc((size_t)g->n_initializers + 1, 1);
    assert_true(node_needed && init_needed);
    int n_nodes = reference_needed(g, outputs, n_outputs, node_needed,
                                   init_needed);
    assert_int_equal(sub->n_nodes, n_nodes);
    for (int i = 0, k = 0; i < g->n_nodes; i++) {
        if (node_needed[i])
            expect_same_node(&sub->nodes[k++], &g->nodes[i]);
    }
    int k = 0;
    for (int i = 0; i < g->n_initializers; i++) {
        if (init_needed[i])
            expect_same_tensor(&sub->initializers[k++], &g->initializers[i]);
    }
    assert_int_equal(sub->n_initializers, k);
    /* Graph inputs: those the kept nodes read, declared as in g. */
    k = 0;
    for (int i = 0; i < g->n_inputs; i++) {
        int used = 0;
        for (int j = 0; j < g->n_nodes && !used; j++)
            used = node_needed[j] &&
                   in_list(g->inputs[i].name, g->nodes[j].inputs,
                           g->nodes[j].n_inputs);
        if (used)
            expect_same_value_info(&sub->inputs[k++], &g->inputs[i]);
    }
    assert_int_equal(sub->n_inputs, k);
    /* Outputs that were graph outputs keep their declaration. */
    for (int i = 0; i < n_outputs; i++) {
        for (int j = 0; j < g->n_outputs; j++) {
            if (strcmp(g->outputs[j].name, outputs[i]) == 0)
                expect_same_value_info(&sub->outputs[i], &g->outputs[j]);
        }
        assert_int_equal(sub->outputs[i].dtype, ONNX_DTYPE_FLOAT);
    }
    free(node_needed);
    free(init_needed);
    onnx_graph_free(sub);
    if (bytes_out) {
        *bytes_out = bytes;
        *size_out = size;
    } else {
        free(bytes);
    }
    return n_nodes;
}

/* Rank the written model declares for a single output `name`. */
static int written_output_rank(const onnx_graph *g, const char *name)
{
    uint8_t *bytes = NULL;
    size_t size = 0;
    nm_error err = {0};
    const char *outputs[] = {name};
    if (onnx_graph_write_subgraph(g, outputs, 1, &bytes, &size, &err) != NM_OK)
        fail_msg("%s", err.msg);
    onnx_graph *sub = NULL;
    if (onnx_graph_load_memory(bytes, size, "subgraph", &sub, &err) != NM_OK)
        fail_msg("%s", err.msg);
    int rank = sub->outputs[0].rank;
    for (int i = 0; i < rank; i++) /* rank only: no sizes, no names */
        assert_true(sub->outputs[0].dims[i] < 0 && !sub->outputs[0].dim_names[i]);
    onnx_graph_free(sub);
    free(bytes);
    return rank;
}

/* ------------------------------------------------------ python checker */

static int python_onnx_available(void)
{
    return access(PYTHON, X_OK) == 0 &&
           system(PYTHON " -c 'import onnx' >/dev/null 2>&1") == 0;
}

/* Files written by write_for_checker into dir, checked in one python run. */
typedef struct checker_batch {
    char dir[512];
    int n_files;
} checker_batch;

static void checker_begin(checker_batch *b)
{
    snprintf(b->dir, sizeof b->dir, "%s/nm_onnxw_XXXXXX",
             tu_env_or("TMPDIR", "/tmp"));
    assert_non_null(mkdtemp(b->dir));
    b->n_files = 0;
}

static void checker_add(checker_batch *b, const uint8_t *bytes, size_t size)
{
    const char *path = tu_path("%s/sub%02d.onnx", b->dir, b->n_files++);
    assert_int_equal(tu_write_file(path, bytes, size), 0);
}

static void checker_run_and_clean(checker_batch *b)
{
    if (!python_onnx_available()) {
        fprintf(stderr, "note: python3-onnx missing, checker not run\n");
    } else {
        char cmd[2048];
        snprintf(cmd, sizeof cmd,
                 PYTHON " -c 'import glob, sys, onnx\n"
                        "for p in sorted(glob.glob(sys.argv[1] + \"/*.onnx\")):\n"
                        "    onnx.checker.check_model(onnx.load(p), "
                        "full_check=True)\n"
                        "print(\"onnx.checker: ok\", len(glob.glob(sys.argv[1] "
                        "+ \"/*.onnx\")), \"files\")' '%s'",
                 b->dir);
        if (system(cmd) != 0)
            fail_msg("onnx.checker rejected a file in %s (kept)", b->dir);
    }
    for (int i = 0; i < b->n_files; i++)
        unlink(tu_path("%s/sub%02d.onnx", b->dir, i));
    rmdir(b->dir);
}

/* ------------------------------------------------------ tests: tiny */

static void test_tiny_subgraphs(void **state)
{
    (void)state;
    tiny_graph t;
    tiny_build(&t);
    const char *p[] = {"p"}, *m[] = {"m"}, *c[] = {"c"}, *mp[] = {"m", "p"};
    const char *lc[] = {"l", "c"};
    checker_batch batch;
    checker_begin(&batch);
    uint8_t *bytes = NULL;
    size_t size = 0;
    assert_int_equal(check_subgraph(&t.g, p, 1, &bytes, &size), 3);
    checker_add(&batch, bytes, size);
    free(bytes);
    assert_int_equal(check_subgraph(&t.g, m, 1, &bytes, &size), 2);
    checker_add(&batch, bytes, size);
    free(bytes);
    assert_int_equal(check_subgraph(&t.g, c, 1, NULL, NULL), 1);
    assert_int_equal(check_subgraph(&t.g, mp, 2, &bytes, &size), 5);
    checker_add(&batch, bytes, size);
    free(bytes);
    assert_int_equal(check_subgraph(&t.g, lc, 2, NULL, NULL), 2);
    /* Intermediate values are declared with their rank only. */
    assert_int_equal(written_output_rank(&t.g, "c"), 4);
    assert_int_equal(written_output_rank(&t.g, "l"), 4);
    assert_int_equal(written_output_rank(&t.g, "m"), 4);
    /* IR < 4: initializers are listed as graph inputs too (the loader
     * drops them again, so the comparison above still holds). */
    t.g.ir_version = 3;
    assert_int_equal(check_subgraph(&t.g, p, 1, &bytes, &size), 3);
    checker_add(&batch, bytes, size);
    free(bytes);
    checker_run_and_clean(&batch);
}

/* Same bytes for the same request: nothing depends on time or paths. */
static void test_tiny_deterministic(void **state)
{
    (void)state;
    tiny_graph t;
    tiny_build(&t);
    const char *mp[] = {"m", "p"};
    uint8_t *a = NULL, *b = NULL;
    size_t na = 0, nb = 0;
    nm_error err = {0};
    assert_int_equal(onnx_graph_write_subgraph(&t.g, mp, 2, &a, &na, &err),
                     NM_OK);
    t.g.path = "elsewhere.onnx";
    assert_int_equal(onnx_graph_write_subgraph(&t.g, mp, 2, &b, &nb, &err),
                     NM_OK);
    assert_int_equal(na, nb);
    assert_memory_equal(a, b, na);
    free(a);
    free(b);
}

static void expect_write_error(const onnx_graph *g, const char *const *outputs,
                               int n, nm_status code, const char *frag1,
                               const char *frag2)
{
    uint8_t *bytes = (uint8_t *)&bytes;
    size_t size = 12345;
    nm_error err = {0};
    nm_status st = onnx_graph_write_subgraph(g, outputs, n, &bytes, &size,
                                             &err);
    if (st != code)
        fail_msg("expected status %d, got %d (%s)", code, st, err.msg);
    assert_ptr_equal(bytes, (uint8_t *)&bytes); /* untouched */
    assert_int_equal(size, 12345);
    assert_non_null(strstr(err.msg, g->path));
    assert_null(strchr(err.msg, '\n'));
    if (frag1 && !strstr(err.msg, frag1))
        fail_msg("message lacks '%s': %s", frag1, err.msg);
    if (frag2 && !strstr(err.msg, frag2))
        fail_msg("message lacks '%s': %s", frag2, err.msg);
}

static void test_tiny_errors(void **state)
{
    (void)state;
    tiny_graph t;
    tiny_build(&t);
    const char *bad[] = {"p", "no_such_value"};
    expect_write_error(&t.g, bad, 2, NM_ERR_ARG, "'no_such_value'", NULL);
    const char *twice[] = {"p", "m", "p"};
    expect_write_error(&t.g, twice, 3, NM_ERR_ARG, "'p'", "twice");
    const char *empty[] = {""};
    expect_write_error(&t.g, empty, 1, NM_ERR_ARG, NULL, NULL);
    const char *p[] = {"p"}, *m[] = {"m"};
    expect_write_error(&t.g, p, 0, NM_ERR_ARG, NULL, NULL);
    expect_write_error(&t.g, NULL, 1, NM_ERR_ARG, NULL, NULL);
    nm_error err = {0};
    size_t size = 0;
    assert_int_equal(onnx_graph_write_subgraph(&t.g, p, 1, NULL, &size, &err),
                     NM_ERR_ARG);

    /* An attribute the loader kept by name only: fatal only if needed. */
    t.pad_attr.type = ONNX_ATTR_OTHER;
    expect_write_error(&t.g, p, 1, NM_ERR_UNSUPPORTED, "'pad'", "'mode'");
    assert_int_equal(check_subgraph(&t.g, m, 1, NULL, NULL), 2);
    tiny_build(&t);

    /* An initializer of a dtype the loader does not keep */
    t.inits[2].dtype = 10; /* float16 */
    t.inits[2].data_i64 = NULL;
    expect_write_error(&t.g, p, 1, NM_ERR_UNSUPPORTED, "'pads'", "type 10");
    tiny_build(&t);

    /* A node of another operator domain: its opset version is unknown */
    t.nodes[4].domain = "com.example";
    expect_write_error(&t.g, m, 1, NM_ERR_UNSUPPORTED, "'mul'",
                       "com.example");
    assert_int_equal(check_subgraph(&t.g, p, 1, NULL, NULL), 3);
}

/* ------------------------------------------------ tests: shared models */

static onnx_graph *load_shared(const char *name)
{
    const char *path = tu_path("%s/models/%s", tu_shared(), name);
    TU_REQUIRE_FILE(path);
    onnx_graph *g = NULL;
    nm_error err = {0};
    if (onnx_graph_load(path, &g, &err) != NM_OK)
        fail_msg("%s", err.msg);
    return g;
}

/* All outputs, each output alone, the outputs reversed, a value from the
 * middle of the graph (alone and with the first output). */
static void check_model(const char *name, checker_batch *batch)
{
    onnx_graph *g = load_shared(name);
    const char *outs[16];
    int n = g->n_outputs;
    assert_true(n > 0 && n <= 8);
    for (int i = 0; i < n; i++) {
        outs[i] = g->outputs[i].name;
        outs[2 * n - 1 - i] = g->outputs[i].name;
    }
    uint8_t *bytes = NULL;
    size_t size = 0;
    assert_int_equal(check_subgraph(g, outs, n, &bytes, &size), g->n_nodes);
    checker_add(batch, bytes, size);
    free(bytes);
    for (int i = 0; i < n; i++)
        check_subgraph(g, &outs[i], 1, NULL, NULL);
    check_subgraph(g, outs + n, n, NULL, NULL);
    const char *mid[2] = {g->nodes[g->n_nodes / 2].outputs[0], outs[0]};
    int n_mid = check_subgraph(g, mid, 1, &bytes, &size);
    assert_true(n_mid > 0 && n_mid < g->n_nodes);
    assert_int_equal(written_output_rank(g, mid[0]), 4);
    checker_add(batch, bytes, size);
    free(bytes);
    check_subgraph(g, mid, 2, NULL, NULL);
    onnx_graph_free(g);
}

static void test_shared_models(void **state)
{
    (void)state;
    TU_REQUIRE_FILE(tu_path("%s/models/resnet50v2_trunk.onnx", tu_shared()));
    checker_batch batch;
    checker_begin(&batch);
    check_model("resnet50v2_trunk.onnx", &batch);
    check_model("squeezenet1.1.onnx", &batch);
    check_model("mobilenetv2_gluon_features.onnx", &batch);
    checker_run_and_clean(&batch);
}

/* The backbone a model file embeds: resnet up to stage3 is the whole
 * graph, so the subgraph is the original minus what nominal drops
 * (metadata, doc strings, the other outputs' declarations); up to stage1 it
 * is much smaller. */
static void test_resnet_sizes(void **state)
{
    (void)state;
    const char *path = tu_path("%s/models/resnet50v2_trunk.onnx", tu_shared());
    TU_REQUIRE_FILE(path);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    onnx_graph *g = load_shared("resnet50v2_trunk.onnx");
    assert_int_equal(g->n_nodes, 111);
    const char *s23[] = {"stage2", "stage3"}, *s3[] = {"stage3"};
    const char *s1[] = {"stage1"};
    assert_int_equal(check_subgraph(g, s23, 2, NULL, NULL), 111);
    uint8_t *bytes = NULL;
    size_t size = 0;
    assert_int_equal(check_subgraph(g, s3, 1, &bytes, &size), 111);
    free(bytes);
    size_t original = (size_t)st.st_size;
    printf("resnet50v2_trunk: original %zu bytes, subgraph to stage3 %zu\n",
           original, size);
    assert_true(size <= original && original - size < 4096);
    int n1 = check_subgraph(g, s1, 1, &bytes, &size);
    printf("subgraph to stage1: %d nodes, %zu bytes\n", n1, size);
    assert_true(n1 < 111 && size < original / 4);
    free(bytes);
    onnx_graph_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tiny_subgraphs),
        cmocka_unit_test(test_tiny_deterministic),
        cmocka_unit_test(test_tiny_errors),
        cmocka_unit_test(test_shared_models),
        cmocka_unit_test(test_resnet_sizes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
