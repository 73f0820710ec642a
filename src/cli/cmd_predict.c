/* `nominal predict`: score images with a model; optionally write maps. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "cli/cli.h"
#include "core/error.h"
#include "io/dataset.h"
#include "io/npy.h"
#include "image/render.h"

static void print_help(void)
{
    printf("usage: nominal predict MODEL IMAGE|DIR... [--out DIR] [--json] [--batch N]\n"
           "                       [--threads N]\n"
           "\n"
           "Score each image (a folder means every image in it). One line per image:\n"
           "its path and score, and for a calibrated model (`nominal calibrate`) the\n"
           "decision OK / ANOMALY (anomalous iff score > threshold) and the conformal\n"
           "p-value (1 + #{calibration good scores >= score}) / (n + 1).\n"
           "With --json one JSON object per line instead (docs/calibration.md):\n"
           "  {\"image\", \"score\", \"width\", \"height\", \"decision\", \"p_value\",\n"
           "   \"threshold\", \"map\"?, \"heatmap\"?, \"overlay\"?, \"mask\"?}\n"
           "decision, p_value and threshold are null for an uncalibrated model.\n"
           "\n"
           "With --out DIR, per image (named PARENT_STEM, e.g. broken_large_000):\n"
           "  PARENT_STEM.map.npy      the anomaly map, float32, on the image's own size\n"
           "  PARENT_STEM.heatmap.png  the map in colour (blue = normal, red = anomalous)\n"
           "  PARENT_STEM.overlay.png  the heatmap blended over the image\n"
           "  PARENT_STEM.mask.png     map > the pixel threshold (255) or not (0), when\n"
           "                           the model has one (calibrate --pixel-fpr)\n"
           "The colour scale is fixed per model (0 .. 2x a typical normal patch score),\n"
           "so colours mean the same thing on every image.\n"
           "\n"
           "  --batch N   images per backbone pass (default 1; 1..%d); same scores\n",
           NM_SCORE_BATCH_MAX);
}

typedef struct predict_cli {
    const char *model_path;
    const char *out_dir;
    int json;
    int threads;
    int batch;
    path_list images;
} predict_cli;

static int parse_args(int argc, char **argv, predict_cli *c)
{
    nm_error err = {0};
    for (int i = 1; i < argc; i++) {
        const char *v;
        int r;
        if (cli_is_help(argv[i])) {
            print_help();
            return -1;
        } else if ((r = cli_opt(argc, argv, &i, "--out", &v))) {
            if (r < 0)
                return cli_usage_error("predict", "--out needs a folder");
            c->out_dir = v;
        } else if ((r = cli_opt(argc, argv, &i, "--threads", &v))) {
            if (r < 0 || cli_parse_int(v, 0, 1024, &c->threads))
                return cli_usage_error("predict", "--threads needs a number");
        } else if ((r = cli_opt(argc, argv, &i, "--batch", &v))) {
            if (r < 0 || cli_parse_int(v, 1, NM_SCORE_BATCH_MAX, &c->batch))
                return cli_usage_error("predict", "--batch needs 1..%d", NM_SCORE_BATCH_MAX);
        } else if (strcmp(argv[i], "--json") == 0) {
            c->json = 1;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            return cli_usage_error("predict", "unknown option '%s'", argv[i]);
        } else if (!c->model_path) {
            c->model_path = argv[i];
        } else if (path_is_dir(argv[i]) == 1) {
            path_list dir = {0};
            if (dataset_list_images(argv[i], &dir, &err))
                return cli_report(&err);
            for (int k = 0; k < dir.count; k++)
                if (path_list_add(&c->images, dir.paths[k], &err)) {
                    path_list_free(&dir);
                    return cli_report(&err);
                }
            path_list_free(&dir);
        } else if (path_list_add(&c->images, argv[i], &err)) {
            return cli_report(&err);
        }
    }
    if (!c->model_path)
        return cli_usage_error("predict", "missing MODEL");
    if (!c->images.count)
        return cli_usage_error("predict", "no IMAGE or DIR given");
    return 0;
}

/* "…/broken_large/000.png" -> "broken_large_000" */
static void output_stem(const char *path, char *out, size_t n)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    const char *parent = NULL;
    size_t parent_len = 0;
    if (base > path + 1) {
        const char *end = base - 1;
        while (end > path && end[-1] == '/') /* "a//b.png" */
            end--;
        const char *start = end;
        while (start > path && start[-1] != '/')
            start--;
        parent = start;
        parent_len = (size_t)(end - start);
    }
    const char *dot = strrchr(base, '.');
    size_t base_len = dot ? (size_t)(dot - base) : strlen(base);
    if (parent && parent_len && !(parent_len == 1 && parent[0] == '.'))
        snprintf(out, n, "%.*s_%.*s", (int)parent_len, parent, (int)base_len, base);
    else
        snprintf(out, n, "%.*s", (int)base_len, base);
}

/* What predict needs besides the images: colour scale and calibration. */
typedef struct predict_model {
    nm_model *model;
    float hi; /* top of the colour scale */
    int calibrated;
    nm_calibration cal;
} predict_model;

static nm_status write_mask(const char *path, const float *map, size_t n, float threshold,
                            int width, int height, uint8_t *buf, nm_error *err)
{
    for (size_t i = 0; i < n; i++)
        buf[i] = map[i] > threshold ? 255 : 0;
    return nm_png_write(path, buf, width, height, 1, 8, err);
}

static nm_status write_outputs(const predict_cli *c, const predict_model *pm,
                               const nm_image *img, const nm_result *r, const char *stem,
                               cJSON *obj, nm_error *err)
{
    char path[4096];
    int64_t dims[2] = {r->height, r->width};
    size_t n = (size_t)r->width * (size_t)r->height;
    uint8_t *rgb = malloc(n * 3);
    if (!rgb)
        return nm_fail(err, NM_ERR_NOMEM, "out of memory");
    snprintf(path, sizeof path, "%s/%s.map.npy", c->out_dir, stem);
    nm_status st = npy_write_f32(path, r->map, dims, 2, err);
    if (!st && obj)
        cJSON_AddStringToObject(obj, "map", path);
    if (!st)
        st = render_map_rgb(RENDER_HEATMAP, img, r, pm->hi, rgb, err);
    if (!st) {
        snprintf(path, sizeof path, "%s/%s.heatmap.png", c->out_dir, stem);
        st = nm_png_write(path, rgb, r->width, r->height, 3, 8, err);
        if (!st && obj)
            cJSON_AddStringToObject(obj, "heatmap", path);
    }
    if (!st)
        st = render_map_rgb(RENDER_OVERLAY, img, r, pm->hi, rgb, err);
    if (!st) {
        snprintf(path, sizeof path, "%s/%s.overlay.png", c->out_dir, stem);
        st = nm_png_write(path, rgb, r->width, r->height, 3, 8, err);
        if (!st && obj)
            cJSON_AddStringToObject(obj, "overlay", path);
    }
    if (!st && pm->calibrated && pm->cal.has_pixel_threshold) {
        snprintf(path, sizeof path, "%s/%s.mask.png", c->out_dir, stem);
        st = write_mask(path, r->map, n, pm->cal.pixel_threshold, r->width, r->height, rgb,
                        err);
        if (!st && obj)
            cJSON_AddStringToObject(obj, "mask", path);
    }
    free(rgb);
    return st;
}

/* One image's line (or JSON object) and files. */
static int report_one(const predict_cli *c, const predict_model *pm, const char *path,
                      const nm_image *img, const nm_result *r)
{
    nm_error err = {0};
    int rc = EXIT_OK, anomalous = 0;
    double p = 0;
    if (pm->calibrated && nm_decide(pm->model, r->score, &anomalous, &p, &err))
        return cli_report(&err);
    const char *decision = anomalous ? "ANOMALY" : "OK";
    cJSON *obj = c->json ? cJSON_CreateObject() : NULL;
    if (obj) {
        cJSON_AddStringToObject(obj, "image", path);
        cJSON_AddNumberToObject(obj, "score", r->score);
        cJSON_AddNumberToObject(obj, "width", r->width);
        cJSON_AddNumberToObject(obj, "height", r->height);
        if (pm->calibrated) {
            cJSON_AddStringToObject(obj, "decision", decision);
            cJSON_AddNumberToObject(obj, "p_value", p);
            cJSON_AddNumberToObject(obj, "threshold", pm->cal.threshold);
        } else {
            cJSON_AddNullToObject(obj, "decision");
            cJSON_AddNullToObject(obj, "p_value");
            cJSON_AddNullToObject(obj, "threshold");
        }
    }
    if (c->out_dir) {
        char stem[1024];
        output_stem(path, stem, sizeof stem);
        if (write_outputs(c, pm, img, r, stem, obj, &err))
            rc = cli_report(&err);
    }
    if (obj) {
        char *s = cJSON_PrintUnformatted(obj);
        if (s)
            printf("%s\n", s);
        free(s);
        cJSON_Delete(obj);
    } else if (pm->calibrated) {
        printf("%-60s %.6g %-7s p=%.4g\n", path, r->score, decision, p);
    } else {
        printf("%-60s %.6g\n", path, r->score);
    }
    fflush(stdout);
    return rc;
}

int cmd_predict(int argc, char **argv)
{
    predict_cli c;
    memset(&c, 0, sizeof c);
    c.batch = 1;
    int rc = parse_args(argc, argv, &c);
    if (rc != 0) {
        path_list_free(&c.images);
        return rc < 0 ? EXIT_OK : rc;
    }
    if (c.out_dir && mkdir(c.out_dir, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "nominal: %s: cannot create folder: %s\n", c.out_dir, strerror(errno));
        path_list_free(&c.images);
        return EXIT_IO;
    }
    nm_error err = {0};
    predict_model pm = {0};
    cli_batch b = {0};
    if (nm_model_load(c.model_path, c.threads, &pm.model, &err) ||
        cli_batch_init(&b, c.batch, &err)) {
        rc = cli_report(&err);
        goto done;
    }
    pm.hi = render_scale_top(pm.model);
    pm.calibrated = nm_model_get_calibration(pm.model, &pm.cal);
    const char *const *paths = (const char *const *)c.images.paths;
    for (int i = 0; i < c.images.count; i += b.n) {
        cli_batch_score(&b, pm.model, paths + i, c.images.count - i, c.out_dir != NULL);
        for (int j = 0; j < b.n; j++) {
            /* go on with the other images, but report failure */
            int r = b.errors[j].code ? cli_report(&b.errors[j])
                                     : report_one(&c, &pm, paths[i + j], &b.images[j],
                                                  &b.results[j]);
            if (r != EXIT_OK)
                rc = r;
        }
    }
done:
    cli_batch_free(&b);
    nm_model_close(pm.model);
    path_list_free(&c.images);
    return rc;
}
