/* `nominal features`: run a backbone on images and show or save its taps. */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "cli/cli.h"
#include "io/npy.h"

#define MAX_TAPS 16

static void print_help(void)
{
    printf("usage: nominal features MODEL.onnx --taps NAME[,NAME...] [options] IMAGE...\n"
           "\n"
           "Preprocess each image (resize shorter side, center crop, ImageNet\n"
           "normalization), run the backbone once, and print each tap's shape and\n"
           "statistics, or write the tensors as NumPy .npy files.\n"
           "\n"
           "options:\n"
           "  --taps A,B       tensors to return (graph outputs or intermediate values)\n"
           "  --resize N       shorter side after resize (default 256; 0 = no resize)\n"
           "  --crop N         center crop size (default 224; 0 = no crop)\n"
           "  --out DIR        write DIR/IMAGE_NAME.TAP.npy (float32, NCHW)\n"
           "  --threads N      compute threads (default: all cores)\n"
           "  --json           one JSON object per image on stdout\n");
}

typedef struct features_opts {
    const char *model;
    char *taps[MAX_TAPS];
    int n_taps;
    nm_preprocess pre;
    const char *out_dir;
    int threads;
    int json;
    char **images;
    int n_images;
} features_opts;

static int parse_args(int argc, char **argv, features_opts *o)
{
    nm_preprocess_default(&o->pre);
    o->images = calloc((size_t)argc, sizeof(char *));
    if (!o->images)
        return cli_usage_error("features", "out of memory");
    for (int i = 1; i < argc; i++) {
        const char *v;
        int r, n;
        if (cli_is_help(argv[i])) {
            print_help();
            return -1;
        } else if ((r = cli_opt(argc, argv, &i, "--taps", &v))) {
            if (r < 0 || (o->n_taps = cli_split_list(v, o->taps, MAX_TAPS)) <= 0)
                return cli_usage_error("features", "--taps needs 1 to %d names", MAX_TAPS);
        } else if ((r = cli_opt(argc, argv, &i, "--resize", &v))) {
            if (r < 0 || cli_parse_int(v, 0, 16384, &n))
                return cli_usage_error("features", "--resize needs a size 0..16384");
            o->pre.resize_short = n;
        } else if ((r = cli_opt(argc, argv, &i, "--crop", &v))) {
            if (r < 0 || cli_parse_int(v, 0, 16384, &n))
                return cli_usage_error("features", "--crop needs a size 0..16384");
            o->pre.crop_width = o->pre.crop_height = n;
        } else if ((r = cli_opt(argc, argv, &i, "--out", &v))) {
            if (r < 0)
                return cli_usage_error("features", "--out needs a directory");
            o->out_dir = v;
        } else if ((r = cli_opt(argc, argv, &i, "--threads", &v))) {
            if (r < 0 || cli_parse_int(v, 0, 1024, &o->threads))
                return cli_usage_error("features", "--threads needs a number");
        } else if (strcmp(argv[i], "--json") == 0) {
            o->json = 1;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            return cli_usage_error("features", "unknown option '%s'", argv[i]);
        } else if (!o->model) {
            o->model = argv[i];
        } else {
            o->images[o->n_images++] = argv[i];
        }
    }
    if (!o->model)
        return cli_usage_error("features", "missing MODEL.onnx");
    if (!o->n_taps)
        return cli_usage_error("features", "missing --taps");
    if (!o->n_images)
        return cli_usage_error("features", "no IMAGE given");
    return 0;
}

static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

static size_t tensor_count(const nm_tensor *t)
{
    size_t n = 1;
    for (int d = 0; d < t->rank; d++)
        n *= (size_t)t->dims[d];
    return n;
}

static void tensor_stats(const nm_tensor *t, double *mean, double *sd, float *lo, float *hi)
{
    size_t n = tensor_count(t);
    double s = 0, s2 = 0;
    *lo = FLT_MAX;
    *hi = -FLT_MAX;
    for (size_t i = 0; i < n; i++) {
        float v = t->data[i];
        s += v;
        s2 += (double)v * v;
        if (v < *lo)
            *lo = v;
        if (v > *hi)
            *hi = v;
    }
    *mean = s / (double)n;
    double var = s2 / (double)n - *mean * *mean;
    *sd = var > 0 ? sqrt(var) : 0;
}

static int run_image(const features_opts *o, nm_net *net, const char *path)
{
    nm_error err = {0};
    nm_image img = {0};
    nm_geometry geom;
    if (nm_image_load(path, 0, &img, &err))
        return cli_report(&err);
    if (nm_preprocess_geometry(&o->pre, img.width, img.height, &geom, &err)) {
        nm_image_free(&img);
        return cli_report(&err);
    }
    float *input = malloc(sizeof(float) * 3 * (size_t)geom.out_width * (size_t)geom.out_height);
    if (!input) {
        nm_image_free(&img);
        fprintf(stderr, "nominal: %s: out of memory\n", path);
        return EXIT_FAILURE_GENERIC;
    }
    nm_tensor taps[MAX_TAPS];
    int rc = EXIT_OK;
    if (nm_preprocess_image(&o->pre, &img, input, &geom, &err) ||
        nm_net_run(net, input, 1, geom.out_height, geom.out_width, taps, &err)) {
        rc = cli_report(&err);
        goto done;
    }
    cJSON *root = o->json ? cJSON_CreateObject() : NULL;
    if (root) {
        cJSON_AddStringToObject(root, "image", path);
        cJSON_AddNumberToObject(root, "width", img.width);
        cJSON_AddNumberToObject(root, "height", img.height);
    }
    cJSON *jtaps = root ? cJSON_AddArrayToObject(root, "taps") : NULL;
    if (!o->json)
        printf("%s (%dx%d -> %dx%d)\n", path, img.width, img.height, geom.out_width,
               geom.out_height);
    for (int t = 0; t < o->n_taps; t++) {
        double mean, sd;
        float lo, hi;
        tensor_stats(&taps[t], &mean, &sd, &lo, &hi);
        char shape[96];
        int len = 0;
        for (int d = 0; d < taps[t].rank; d++)
            len += snprintf(shape + len, sizeof shape - (size_t)len, "%s%lld", d ? "x" : "",
                            (long long)taps[t].dims[d]);
        char npy[4096] = "";
        if (o->out_dir) {
            snprintf(npy, sizeof npy, "%s/%s.%s.npy", o->out_dir, base_name(path), o->taps[t]);
            if (npy_write_f32(npy, taps[t].data, taps[t].dims, taps[t].rank, &err)) {
                rc = cli_report(&err);
                break;
            }
        }
        if (jtaps) {
            cJSON *jt = cJSON_CreateObject();
            cJSON_AddStringToObject(jt, "name", o->taps[t]);
            cJSON_AddStringToObject(jt, "shape", shape);
            cJSON_AddNumberToObject(jt, "mean", mean);
            cJSON_AddNumberToObject(jt, "std", sd);
            cJSON_AddNumberToObject(jt, "min", lo);
            cJSON_AddNumberToObject(jt, "max", hi);
            if (npy[0])
                cJSON_AddStringToObject(jt, "file", npy);
            cJSON_AddItemToArray(jtaps, jt);
        } else {
            printf("  %-12s %-16s mean %+.6f std %.6f min %+.6f max %+.6f%s%s\n", o->taps[t],
                   shape, mean, sd, lo, hi, npy[0] ? " -> " : "", npy);
        }
    }
    if (root) {
        char *s = cJSON_PrintUnformatted(root);
        if (s)
            printf("%s\n", s);
        free(s);
        cJSON_Delete(root);
    }
done:
    free(input);
    nm_image_free(&img);
    return rc;
}

int cmd_features(int argc, char **argv)
{
    features_opts o = {0};
    int rc = parse_args(argc, argv, &o);
    if (rc != 0)
        goto out;
    if (o.out_dir && mkdir(o.out_dir, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "nominal: %s: cannot create directory: %s\n", o.out_dir, strerror(errno));
        rc = EXIT_IO;
        goto out;
    }
    nm_error err = {0};
    nm_net *net = NULL;
    nm_net_options nopts = {.threads = o.threads};
    if (nm_net_open(o.model, &nopts, &net, &err) ||
        nm_net_set_taps(net, (const char *const *)o.taps, o.n_taps, &err)) {
        rc = cli_report(&err);
        nm_net_close(net);
        goto out;
    }
    /* keep going after a bad image, but report failure in the exit code */
    for (int i = 0; i < o.n_images; i++) {
        int r = run_image(&o, net, o.images[i]);
        if (r != EXIT_OK)
            rc = r;
    }
    nm_net_close(net);
out:
    for (int t = 0; t < o.n_taps; t++)
        free(o.taps[t]);
    free(o.images);
    return rc < 0 ? EXIT_OK : rc;
}
