/* `nominal eval`: the MVTec AD protocol on a labelled test set. */
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cli/cli.h"
#include "core/error.h"
#include "eval/metrics.h"
#include "eval/report.h"
#include "eval/summary.h"
#include "io/atomic_file.h"
#include "io/dataset.h"

#define FPR_LIMIT 0.3

static void print_help(void)
{
    printf("usage: nominal eval MODEL DATASET [--json FILE] [--report DIR] [--threads N]\n"
           "                  [--batch N]\n"
           "       nominal eval MODEL --good DIR --bad DIR [--masks DIR] [...]\n"
           "\n"
           "Score a labelled test set and report image AUROC, AUPR and F1-max (overall\n"
           "and per defect type), pixel AUROC over all pixels at the masks' own\n"
           "resolution, AU-PRO up to FPR 0.3 (official MVTec definition) and pixel F1-max.\n"
           "DATASET is an MVTec AD category: DATASET/test/<type>/ (good = normal) with\n"
           "masks DATASET/ground_truth/<type>/<name>_mask.png, paired by file name\n"
           "(x_10.jpg <-> x_10_mask.png); with --masks, MASKS/<name>_mask.png likewise.\n"
           "Masks may be gray or RGB (non-zero = defect) and of any size (resized\n"
           "nearest to the image); a defective image without a mask is an error.\n"
           "Without masks only image metrics are reported.\n"
           "\n"
           "  --json FILE   all figures as JSON (schema: docs/eval.md)\n"
           "  --report DIR  DIR/index.html: summary, ROC/PRO/score charts, and every\n"
           "                image worst first with its heatmap and mask contours\n"
           "  --batch N     images per call (default 1; 1..%d), as predict --batch:\n"
           "                8 helps a method bound by memory bandwidth (PaDiM with a\n"
           "                full covariance); PatchCore is fastest at 1\n",
           NM_SCORE_BATCH_MAX);
}

typedef struct eval_cli {
    const char *model_path, *root, *good, *bad, *masks, *json_path, *report_dir;
    int threads, batch;
} eval_cli;

/* 0 to go on, else the exit code (-1: --help printed). */
static int parse_args(int argc, char **argv, eval_cli *c)
{
    static const struct {
        const char *name, *what;
        size_t offset;
    } opts[] = {
        {"--json", "a file", offsetof(eval_cli, json_path)},
        {"--report", "a folder", offsetof(eval_cli, report_dir)},
        {"--good", "a folder", offsetof(eval_cli, good)},
        {"--bad", "a folder", offsetof(eval_cli, bad)},
        {"--masks", "a folder", offsetof(eval_cli, masks)},
    };
    for (int i = 1; i < argc; i++) {
        const char *v;
        int r = 0;
        if (cli_is_help(argv[i])) {
            print_help();
            return -1;
        }
        for (size_t k = 0; k < sizeof opts / sizeof opts[0] && !r; k++) {
            if ((r = cli_opt(argc, argv, &i, opts[k].name, &v)) < 0)
                return cli_usage_error("eval", "%s needs %s", opts[k].name, opts[k].what);
            if (r)
                *(const char **)((char *)c + opts[k].offset) = v;
        }
        if (r)
            continue;
        if ((r = cli_opt(argc, argv, &i, "--threads", &v))) {
            if (r < 0 || cli_parse_int(v, 0, 1024, &c->threads))
                return cli_usage_error("eval", "--threads needs a number");
        } else if ((r = cli_opt(argc, argv, &i, "--batch", &v))) {
            if (r < 0 || cli_parse_int(v, 1, NM_SCORE_BATCH_MAX, &c->batch))
                return cli_usage_error("eval", "--batch needs 1..%d", NM_SCORE_BATCH_MAX);
        } else if (argv[i][0] == '-') {
            return cli_usage_error("eval", "unknown option '%s'", argv[i]);
        } else if (!c->model_path) {
            c->model_path = argv[i];
        } else if (!c->root) {
            c->root = argv[i];
        } else {
            return cli_usage_error("eval", "unexpected argument '%s'", argv[i]);
        }
    }
    if (!c->model_path || (!c->root && !(c->good && c->bad)))
        return cli_usage_error("eval", "need MODEL and DATASET (or --good and --bad)");
    if (c->root && (c->good || c->bad || c->masks))
        return cli_usage_error("eval", "give DATASET or --good/--bad/--masks, not both");
    return 0;
}

/* Everything one run holds; eval_state_free releases what is set. */
typedef struct eval_state {
    labelled_set set;
    nm_model *model;
    pixel_metrics *pm; /* NULL without masks */
    report *rep;       /* NULL without --report */
    float *scores;
    uint8_t *labels;
    type_metrics *types;
    eval_summary sum;
    char no_pixel[512]; /* sum.no_pixel points here */
    double t_score, t_metrics, t_report;
} eval_state;

static void eval_state_free(eval_state *e)
{
    labelled_set_free(&e->set);
    nm_model_close(e->model);
    pixel_metrics_free(e->pm);
    report_free(e->rep);
    free(e->scores);
    free(e->labels);
    free(e->types);
}

/* Names the image whose processing failed, unless the message does. */
static void name_image(const char *path, nm_status st, nm_error *err)
{
    if (st && err->msg[0] && !strstr(err->msg, path)) {
        char msg[sizeof err->msg];
        snprintf(msg, sizeof msg, "%s", err->msg);
        nm_fail(err, st, "%s: %s", path, msg);
    }
}

/* Feeds image i's score, map and mask to the metrics and the report. */
static nm_status add_scored(eval_state *e, int i, const nm_image *img, const nm_result *r,
                            nm_error *err)
{
    const labelled_image *it = &e->set.items[i];
    uint8_t *mask = NULL;
    double t1 = cli_now_seconds();
    e->scores[i] = r->score;
    e->labels[i] = strcmp(it->type, "good") != 0;
    nm_status st = NM_OK;
    if (e->set.have_masks)
        st = dataset_load_mask(it->mask_path, r->width, r->height, &mask, err);
    if (!st && e->pm)
        st = pixel_metrics_add(e->pm, r->map, mask, r->width, r->height, err);
    double t2 = cli_now_seconds();
    e->t_metrics += t2 - t1;
    if (!st && e->rep)
        st = report_add(e->rep, it->path, it->type, e->labels[i], r->score, img, r->map, mask,
                        err);
    e->t_report += cli_now_seconds() - t2;
    free(mask);
    name_image(it->path, st, err);
    return st;
}

/* Scores images first .. first+n-1 (n <= NM_SCORE_BATCH_MAX) in one call and feeds
 * them on. A failed batch is scored again one image at a time: an error
 * then names the image it comes from, and a batch that failed only for
 * being a batch (memory) still gets scored. */
static nm_status score_batch(eval_state *e, int first, int n, nm_error *err)
{
    nm_image img[NM_SCORE_BATCH_MAX] = {0};
    const nm_image *ptr[NM_SCORE_BATCH_MAX];
    nm_result r[NM_SCORE_BATCH_MAX] = {0};
    const int want_map = e->pm || e->rep;
    double t0 = cli_now_seconds();
    nm_status st = NM_OK;
    for (int k = 0; k < n && !st; k++) {
        const char *path = e->set.items[first + k].path;
        st = nm_image_load(path, 0, &img[k], err);
        name_image(path, st, err);
        ptr[k] = &img[k];
    }
    if (!st && (st = nm_model_score_batch(e->model, ptr, n, want_map, r, err))) {
        if (n == 1) /* alone already: scoring it again would fail the same way */
            name_image(e->set.items[first].path, st, err);
        for (int k = 0; k < n && n > 1; k++) {
            st = nm_model_score(e->model, &img[k], want_map, &r[k], err);
            name_image(e->set.items[first + k].path, st, err);
            if (st)
                break;
        }
    }
    e->t_score += cli_now_seconds() - t0;
    for (int k = 0; k < n && !st; k++)
        st = add_scored(e, first + k, &img[k], &r[k], err);
    for (int k = 0; k < n; k++) {
        nm_result_free(&r[k]);
        nm_image_free(&img[k]);
    }
    return st;
}

/* Each defect type against all normal images, in the set's type order. */
static nm_status per_type(eval_state *e, nm_error *err)
{
    int n = e->set.count;
    float *sub_s = malloc(sizeof(float) * (size_t)n);
    uint8_t *sub_l = malloc((size_t)n);
    e->types = calloc((size_t)n, sizeof *e->types);
    if (!sub_s || !sub_l || !e->types) {
        free(sub_s);
        free(sub_l);
        return nm_fail(err, NM_ERR_NOMEM, "out of memory");
    }
    for (int i = 0; i < n; i++) {
        const char *type = e->set.items[i].type;
        int seen = !e->labels[i];
        for (int t = 0; t < e->sum.n_types && !seen; t++)
            seen = strcmp(e->types[t].type, type) == 0;
        if (seen)
            continue;
        size_t m = 0;
        int n_type = 0;
        for (int j = 0; j < n; j++) {
            int same = strcmp(e->set.items[j].type, type) == 0;
            if (!e->labels[j] || same) {
                sub_s[m] = e->scores[j];
                sub_l[m++] = e->labels[j];
                n_type += same;
            }
        }
        type_metrics *tm = &e->types[e->sum.n_types++];
        tm->type = type;
        tm->images = n_type;
        /* there are normal images: metrics_binary on all of them passed */
        metrics_binary(sub_s, sub_l, m, &tm->m, NULL);
    }
    free(sub_s);
    free(sub_l);
    e->sum.types = e->types;
    return NM_OK;
}

/* Pixel metrics, or the reason there are none: masks that mark no defect
 * pixel at all leave them undefined, which is worth a note, not a failure
 * (the image metrics stand). */
static nm_status pixel_part(eval_state *e, nm_error *err)
{
    if (!e->pm) {
        e->sum.no_pixel = "no masks given";
        return NM_OK;
    }
    nm_error perr = {0};
    nm_status st = pixel_metrics_finish(e->pm, FPR_LIMIT, &e->sum.pixel, &perr);
    if (st == NM_ERR_ARG) {
        fprintf(stderr, "nominal: note: no pixel metrics: %s\n", perr.msg);
        snprintf(e->no_pixel, sizeof e->no_pixel, "%s", perr.msg);
        e->sum.no_pixel = e->no_pixel;
        return NM_OK;
    }
    if (st) {
        *err = perr;
        return st;
    }
    e->sum.have_pixel = 1;
    return NM_OK;
}

static void print_results(const eval_state *e)
{
    const eval_summary *s = &e->sum;
    printf("%-18s %6s %8s %8s %8s\n", "type", "images", "AUROC", "AUPR", "F1-max");
    for (int t = 0; t < s->n_types; t++)
        printf("%-18s %6d %8.4f %8.4f %8.4f\n", s->types[t].type, s->types[t].images,
               s->types[t].m.auroc, s->types[t].m.aupr, s->types[t].m.f1_max);
    printf("%-18s %6d %8.4f %8.4f %8.4f\n", "all", s->images, s->image.auroc, s->image.aupr,
           s->image.f1_max);
    if (s->have_pixel)
        printf("pixel AUROC %.4f, AU-PRO (FPR <= %g) %.4f, pixel F1-max %.4f at %.6g\n",
               s->pixel.auroc, s->fpr_limit, s->pixel.au_pro, s->pixel.f1_max,
               s->pixel.f1_threshold);
}

static void add_number_or_null(cJSON *o, const char *key, int have, double v)
{
    if (have)
        cJSON_AddNumberToObject(o, key, v);
    else
        cJSON_AddNullToObject(o, key);
}

/* The schema is documented in docs/eval.md; keep the two in step. */
static nm_status write_json(const eval_state *e, const char *path, nm_error *err)
{
    const eval_summary *s = &e->sum;
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "model", s->model);
    cJSON_AddStringToObject(root, "dataset", s->dataset);
    cJSON_AddNumberToObject(root, "images", s->images);
    cJSON_AddNumberToObject(root, "anomalous_images", s->anomalous);
    cJSON *per = cJSON_AddObjectToObject(root, "per_type");
    for (int t = 0; t < s->n_types; t++) {
        cJSON *o = cJSON_AddObjectToObject(per, s->types[t].type);
        cJSON_AddNumberToObject(o, "images", s->types[t].images);
        cJSON_AddNumberToObject(o, "image_auroc", s->types[t].m.auroc);
        cJSON_AddNumberToObject(o, "image_aupr", s->types[t].m.aupr);
        cJSON_AddNumberToObject(o, "image_f1_max", s->types[t].m.f1_max);
    }
    cJSON_AddNumberToObject(root, "image_auroc", s->image.auroc);
    cJSON_AddNumberToObject(root, "image_aupr", s->image.aupr);
    cJSON_AddNumberToObject(root, "image_f1_max", s->image.f1_max);
    cJSON_AddNumberToObject(root, "image_f1_threshold", s->image.f1_threshold);
    int px = s->have_pixel;
    add_number_or_null(root, "pixel_auroc", px, s->pixel.auroc);
    add_number_or_null(root, "au_pro", px, s->pixel.au_pro);
    cJSON_AddNumberToObject(root, "au_pro_fpr_limit", s->fpr_limit);
    add_number_or_null(root, "pixel_f1_max", px, s->pixel.f1_max);
    add_number_or_null(root, "pixel_f1_threshold", px, s->pixel.f1_threshold);
    if (e->rep)
        cJSON_AddStringToObject(root, "report", report_page_path(e->rep));
    else
        cJSON_AddNullToObject(root, "report");
    cJSON_AddNumberToObject(root, "scoring_seconds", e->t_score);
    cJSON_AddNumberToObject(root, "metrics_seconds", e->t_metrics);
    cJSON_AddNumberToObject(root, "report_seconds", e->t_report);
    cJSON_AddNumberToObject(root, "peak_rss_bytes", (double)cli_peak_rss());
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    if (!text)
        return nm_fail(err, NM_ERR_NOMEM, "%s: out of memory", path);
    atomic_file af;
    nm_status st = atomic_file_open(&af, path, err);
    if (!st)
        st = atomic_file_write(&af, text, strlen(text), err);
    if (!st)
        st = atomic_file_write(&af, "\n", 1, err);
    if (!st)
        st = atomic_file_commit(&af, err);
    else
        atomic_file_abort(&af);
    free(text);
    return st;
}

/* Fails now, not after scoring every image, if FILE's folder is missing. */
static nm_status check_output_folder(const char *file, nm_error *err)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", file);
    char *slash = strrchr(dir, '/');
    if (!slash)
        return NM_OK;
    slash[slash == dir] = '\0'; /* "/x.json" -> "/" */
    if (path_is_dir(dir) != 1)
        return nm_fail(err, NM_ERR_IO, "%s: cannot write: folder %s not found", file, dir);
    return NM_OK;
}

static nm_status run(const eval_cli *c, eval_state *e, nm_error *err)
{
    nm_status st = c->json_path ? check_output_folder(c->json_path, err) : NM_OK;
    if (!st)
        st = c->root ? dataset_load_mvtec_test(c->root, &e->set, err)
                     : dataset_load_labelled(c->good, c->bad, c->masks, &e->set, err);
    if (!st)
        st = nm_model_load(c->model_path, c->threads, &e->model, err);
    if (!st && e->set.have_masks)
        st = pixel_metrics_create(&e->pm, err);
    if (!st && c->report_dir) {
        nm_model_info info;
        nm_model_get_info(e->model, &info);
        st = report_open(c->report_dir, 2.0f * info.map_scale, &e->rep, err);
    }
    int n = e->set.count;
    if (!st) {
        e->scores = malloc(sizeof(float) * (size_t)n);
        e->labels = malloc((size_t)n);
        if (!e->scores || !e->labels)
            st = nm_fail(err, NM_ERR_NOMEM, "out of memory");
    }
    for (int i = 0; i < n && !st; i += c->batch) {
        int k = n - i < c->batch ? n - i : c->batch;
        st = score_batch(e, i, k, err);
        if (isatty(2))
            fprintf(stderr, "\reval %5d / %d", i + k, n);
    }
    if (isatty(2) && n)
        fprintf(stderr, "\n");
    if (st)
        return st;
    eval_summary *s = &e->sum;
    s->model = c->model_path;
    s->dataset = c->root ? c->root : c->bad;
    s->images = n;
    s->fpr_limit = FPR_LIMIT;
    for (int i = 0; i < n; i++)
        s->anomalous += e->labels[i];
    double t0 = cli_now_seconds();
    st = metrics_binary_roc(e->scores, e->labels, (size_t)n, &s->image, &s->image_roc, err);
    if (!st)
        st = per_type(e, err);
    if (!st)
        st = pixel_part(e, err);
    double t1 = cli_now_seconds();
    e->t_metrics += t1 - t0;
    if (!st && e->rep)
        st = report_write(e->rep, s, err);
    e->t_report += cli_now_seconds() - t1;
    if (st)
        return st;
    print_results(e);
    if (e->rep)
        printf("report: %s\n", report_page_path(e->rep));
    printf("scoring %.1f s (%.0f ms/image), metrics %.1f s and report %.1f s beyond "
           "scoring, peak RSS %.0f MiB\n", e->t_score, 1e3 * e->t_score / n, e->t_metrics,
           e->t_report, (double)cli_peak_rss() / 1048576.0);
    return c->json_path ? write_json(e, c->json_path, err) : NM_OK;
}

int cmd_eval(int argc, char **argv)
{
    eval_cli c;
    memset(&c, 0, sizeof c);
    c.batch = 1;
    int rc = parse_args(argc, argv, &c);
    if (rc)
        return rc < 0 ? EXIT_OK : rc;
    /* large (curves): on the heap, not the stack */
    eval_state *e = calloc(1, sizeof *e);
    if (!e) {
        fprintf(stderr, "nominal: out of memory\n");
        return EXIT_FAILURE_GENERIC;
    }
    nm_error err = {0};
    if (run(&c, e, &err))
        rc = cli_report(&err);
    eval_state_free(e);
    free(e);
    return rc;
}
