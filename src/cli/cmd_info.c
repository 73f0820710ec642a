/* `nominal info MODEL.onnx`: what is in a backbone file and whether nominal
 * can run it. */
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cli/cli.h"
#include "io/model_file.h"
#include "nn/net.h"
#include "onnx/onnx_graph.h"

static void print_help(void)
{
    printf("usage: nominal info FILE [--json]\n"
           "\n"
           "FILE is a nominal model (from `nominal fit`) or an ONNX backbone.\n"
           "A model: method, settings, preprocessing, backbone and taps, bank size,\n"
           "training facts, calibration (threshold, guarantee, trade-off). A backbone: inputs and outputs with shapes, op counts,\n"
           "parameter count, and every node nominal cannot execute (with the reason).\n"
           "Exit code 0 when the file is readable, even if some ops are unsupported.\n");
}

typedef struct op_count {
    const char *op;
    int count;
} op_count;

static int cmp_op(const void *a, const void *b)
{
    return strcmp(((const op_count *)a)->op, ((const op_count *)b)->op);
}

static void dims_text(const onnx_value_info *v, char *buf, size_t n)
{
    size_t len = 0;
    if (v->rank < 0) {
        snprintf(buf, n, "?");
        return;
    }
    len += (size_t)snprintf(buf + len, n - len, "[");
    for (int d = 0; d < v->rank && len < n; d++) {
        if (v->dims[d] >= 0)
            len += (size_t)snprintf(buf + len, n - len, "%s%lld", d ? "," : "",
                                    (long long)v->dims[d]);
        else
            len += (size_t)snprintf(buf + len, n - len, "%s%s", d ? "," : "",
                                    v->dim_names[d] ? v->dim_names[d] : "?");
    }
    if (len < n)
        snprintf(buf + len, n - len, "]");
}

static cJSON *values_json(const onnx_value_info *v, int n)
{
    cJSON *arr = cJSON_CreateArray();
    for (int i = 0; i < n; i++) {
        char dims[256];
        dims_text(&v[i], dims, sizeof dims);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", v[i].name);
        cJSON_AddNumberToObject(o, "dtype", v[i].dtype);
        cJSON_AddStringToObject(o, "shape", dims);
        cJSON_AddItemToArray(arr, o);
    }
    return arr;
}

static int is_model_file(const char *path)
{
    uint8_t head[16];
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    size_t n = fread(head, 1, sizeof head, f);
    fclose(f);
    return model_file_has_magic(head, n);
}

static int model_info(const char *path, int json)
{
    nm_error err = {0};
    nm_model *m = NULL;
    if (nm_model_load(path, 1, &m, &err))
        return cli_report(&err);
    if (json) {
        char *s = nm_model_describe_json(m);
        if (s)
            printf("%s\n", s);
        free(s);
    } else {
        nm_model_info i;
        nm_model_get_info(m, &i);
        printf("file:        %s\n", path);
        printf("kind:        nominal model (%s)\n", i.method);
        printf("backbone:    %s, taps %s\n", i.backbone, i.taps);
        printf("preprocess:  resize %d, crop %dx%d, mean %.3f,%.3f,%.3f std %.3f,%.3f,%.3f\n",
               i.preprocess.resize_short, i.preprocess.crop_width, i.preprocess.crop_height,
               i.preprocess.mean[0], i.preprocess.mean[1], i.preprocess.mean[2],
               i.preprocess.std[0], i.preprocess.std[1], i.preprocess.std[2]);
        printf("bank:        %zu x %d\n", i.memory_bank, i.feature_dim);
        printf("trained on:  %d images in %.1f s\n", i.train_images, i.fit_seconds);
        printf("normal patch score (99th pct): %.6g\n", i.map_scale);
        nm_calibration cal;
        if (nm_model_get_calibration(m, &cal))
            cli_print_calibration(&cal);
        else
            printf("calibration: none (see `nominal calibrate --help`)\n");
    }
    nm_model_close(m);
    return EXIT_OK;
}

int cmd_info(int argc, char **argv)
{
    const char *path = NULL;
    int json = 0;
    for (int i = 1; i < argc; i++) {
        if (cli_is_help(argv[i])) {
            print_help();
            return EXIT_OK;
        } else if (strcmp(argv[i], "--json") == 0) {
            json = 1;
        } else if (argv[i][0] == '-') {
            return cli_usage_error("info", "unknown option '%s'", argv[i]);
        } else if (!path) {
            path = argv[i];
        } else {
            return cli_usage_error("info", "only one MODEL may be given");
        }
    }
    if (!path)
        return cli_usage_error("info", "missing MODEL.onnx");

    if (is_model_file(path))
        return model_info(path, json);
    nm_error err = {0};
    onnx_graph *g = NULL;
    if (onnx_graph_load(path, &g, &err))
        return cli_report(&err);

    op_count *ops = calloc((size_t)g->n_nodes + 1, sizeof *ops);
    int n_ops = 0;
    for (int i = 0; ops && i < g->n_nodes; i++) {
        int k = 0;
        while (k < n_ops && strcmp(ops[k].op, g->nodes[i].op_type) != 0)
            k++;
        if (k == n_ops)
            ops[n_ops++].op = g->nodes[i].op_type;
        ops[k].count++;
    }
    if (ops)
        qsort(ops, (size_t)n_ops, sizeof *ops, cmp_op);

    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "file", path);
    cJSON_AddStringToObject(root, "kind", "onnx");
    cJSON_AddStringToObject(root, "producer", g->producer ? g->producer : "");
    cJSON_AddNumberToObject(root, "ir_version", (double)g->ir_version);
    cJSON_AddNumberToObject(root, "opset", (double)g->opset);
    cJSON_AddNumberToObject(root, "nodes", g->n_nodes);
    cJSON_AddNumberToObject(root, "parameters", (double)onnx_graph_parameter_count(g));
    cJSON_AddItemToObject(root, "inputs", values_json(g->inputs, g->n_inputs));
    cJSON_AddItemToObject(root, "outputs", values_json(g->outputs, g->n_outputs));
    cJSON *jops = cJSON_AddObjectToObject(root, "ops");
    for (int k = 0; k < n_ops; k++)
        cJSON_AddNumberToObject(jops, ops[k].op, ops[k].count);
    cJSON *unsup = cJSON_AddArrayToObject(root, "unsupported");
    for (int i = 0; i < g->n_nodes; i++) {
        nm_error e = {0};
        if (net_check_node(g, &g->nodes[i], &e) == NM_OK)
            continue;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "node", g->nodes[i].name);
        cJSON_AddStringToObject(o, "op", g->nodes[i].op_type);
        cJSON_AddStringToObject(o, "reason", e.msg);
        cJSON_AddItemToArray(unsup, o);
    }

    if (json) {
        char *s = cJSON_Print(root);
        if (s)
            printf("%s\n", s);
        free(s);
    } else {
        printf("file:        %s\n", path);
        printf("format:      ONNX (ir %lld, opset %lld), producer %s\n",
               (long long)g->ir_version, (long long)g->opset,
               g->producer && g->producer[0] ? g->producer : "?");
        printf("nodes:       %d\n", g->n_nodes);
        printf("parameters:  %zu\n", onnx_graph_parameter_count(g));
        for (int i = 0; i < g->n_inputs; i++) {
            char dims[256];
            dims_text(&g->inputs[i], dims, sizeof dims);
            printf("input:       %s %s\n", g->inputs[i].name, dims);
        }
        for (int i = 0; i < g->n_outputs; i++) {
            char dims[256];
            dims_text(&g->outputs[i], dims, sizeof dims);
            printf("output:      %s %s\n", g->outputs[i].name, dims);
        }
        printf("ops:        ");
        for (int k = 0; k < n_ops; k++)
            printf(" %s x%d%s", ops[k].op, ops[k].count, k + 1 < n_ops ? "," : "");
        printf("\n");
        int n_unsup = cJSON_GetArraySize(unsup);
        if (n_unsup == 0) {
            printf("supported:   yes (every node can run)\n");
        } else {
            printf("supported:   no, %d node%s cannot run:\n", n_unsup, n_unsup == 1 ? "" : "s");
            for (int i = 0; i < n_unsup; i++) {
                cJSON *o = cJSON_GetArrayItem(unsup, i);
                printf("  %s\n", cJSON_GetObjectItem(o, "reason")->valuestring);
            }
        }
    }
    cJSON_Delete(root);
    free(ops);
    onnx_graph_free(g);
    return EXIT_OK;
}
