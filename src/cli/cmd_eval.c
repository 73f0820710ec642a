/* `nominal eval`: the MVTec AD protocol on a labelled test set. */
#include <dirent.h>
#include <math.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cli/cli.h"
#include "core/error.h"
#include "eval/metrics.h"
#include "io/dataset.h"

static void print_help(void)
{
    printf("usage: nominal eval MODEL DATASET [--json FILE] [--threads N]\n"
           "       nominal eval MODEL --good DIR --bad DIR [--masks DIR] [--json FILE]\n"
           "\n"
           "Score a labelled test set and report image AUROC, AUPR and F1-max (overall\n"
           "and per defect type), pixel AUROC over all pixels at the masks' own\n"
           "resolution, and AU-PRO up to FPR 0.3 (official MVTec definition).\n"
           "DATASET is an MVTec AD category: DATASET/test/<type>/ (good = normal) with\n"
           "masks DATASET/ground_truth/<type>/<name>_mask.png, paired by file name.\n"
           "Without masks only image metrics are reported.\n");
}

typedef struct eval_item {
    char *path;
    char *type;      /* "good" for normal images */
    char *mask_path; /* NULL: no mask (normal, or none supplied) */
} eval_item;

typedef struct eval_set {
    eval_item *items;
    int n;
    int have_masks;
} eval_set;

static void eval_set_free(eval_set *s)
{
    for (int i = 0; i < s->n; i++) {
        free(s->items[i].path);
        free(s->items[i].type);
        free(s->items[i].mask_path);
    }
    free(s->items);
}

static const char *stem_of(const char *path, size_t *len)
{
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    const char *dot = strrchr(b, '.');
    *len = dot ? (size_t)(dot - b) : strlen(b);
    return b;
}

/* Add every image of dir with this type; masks from mask_dir by name
 * (x_10.png <-> x_10_mask.png), never by position. */
static nm_status add_dir(eval_set *s, const char *dir, const char *type, const char *mask_dir,
                         nm_error *err)
{
    path_list l = {0};
    nm_status st = dataset_list_images(dir, &l, err);
    if (st)
        return st;
    eval_item *p = realloc(s->items, sizeof *p * (size_t)(s->n + l.count));
    if (!p) {
        path_list_free(&l);
        return nm_fail(err, NM_ERR_NOMEM, "out of memory");
    }
    s->items = p;
    for (int i = 0; i < l.count; i++) {
        eval_item *it = &s->items[s->n++];
        it->path = strdup(l.paths[i]);
        it->type = strdup(type);
        it->mask_path = NULL;
        if (mask_dir) {
            size_t len;
            const char *stem = stem_of(l.paths[i], &len);
            char mp[4096];
            snprintf(mp, sizeof mp, "%s/%.*s_mask.png", mask_dir, (int)len, stem);
            if (path_is_dir(mp) == 0)
                it->mask_path = strdup(mp);
            else if (strcmp(type, "good") != 0) {
                path_list_free(&l);
                return nm_fail(err, NM_ERR_IO, "%s: no mask %s for this defective image",
                               l.paths[i], mp);
            }
        }
    }
    path_list_free(&l);
    return NM_OK;
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static nm_status load_mvtec(eval_set *s, const char *root, nm_error *err)
{
    char test[4096], gt[4096];
    snprintf(test, sizeof test, "%.4000s/test", root);
    snprintf(gt, sizeof gt, "%.4000s/ground_truth", root);
    DIR *d = opendir(test);
    if (!d)
        return nm_fail(err, NM_ERR_IO, "%s: no test/ folder (expected an MVTec AD category)",
                       root);
    char *types[256];
    int nt = 0;
    struct dirent *e;
    while ((e = readdir(d)) && nt < 256) {
        char p[8192];
        snprintf(p, sizeof p, "%s/%s", test, e->d_name);
        if (e->d_name[0] != '.' && path_is_dir(p) == 1)
            types[nt++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(types, (size_t)nt, sizeof *types, compare_names);
    s->have_masks = path_is_dir(gt) == 1;
    nm_status st = nt ? NM_OK : nm_fail(err, NM_ERR_ARG, "%s: test/ has no folders", root);
    for (int i = 0; i < nt && !st; i++) {
        char dir[8192], md[8192];
        snprintf(dir, sizeof dir, "%s/%s", test, types[i]);
        snprintf(md, sizeof md, "%s/%s", gt, types[i]);
        int is_good = strcmp(types[i], "good") == 0;
        st = add_dir(s, dir, types[i], s->have_masks && !is_good ? md : NULL, err);
    }
    for (int i = 0; i < nt; i++)
        free(types[i]);
    return st;
}

/* Nearest-neighbour resize of a mask to the image size (masks may come at
 * any resolution), as a 0/1 byte map. */
static uint8_t *mask_for(const eval_item *it, int w, int h, nm_error *err)
{
    uint8_t *m = calloc((size_t)w * (size_t)h, 1);
    if (!m || !it->mask_path)
        return m;
    nm_image g = {0};
    if (nm_image_load_gray(it->mask_path, 0, &g, err)) {
        free(m);
        return NULL;
    }
    for (int y = 0; y < h; y++) {
        int sy = (int)(((int64_t)y * g.height) / h);
        for (int x = 0; x < w; x++) {
            int sx = (int)(((int64_t)x * g.width) / w);
            m[(size_t)y * w + x] = g.pixels[(size_t)sy * g.width + sx] > 0;
        }
    }
    nm_image_free(&g);
    return m;
}

typedef struct type_result {
    const char *type;
    binary_metrics m;
    int n;
} type_result;

int cmd_eval(int argc, char **argv)
{
    const char *model_path = NULL, *root = NULL, *good = NULL, *bad = NULL, *masks = NULL;
    const char *json_path = NULL;
    int threads = 0;
    for (int i = 1; i < argc; i++) {
        const char *v;
        int r;
        if (cli_is_help(argv[i])) {
            print_help();
            return EXIT_OK;
        } else if ((r = cli_opt(argc, argv, &i, "--json", &v))) {
            if (r < 0)
                return cli_usage_error("eval", "--json needs a file");
            json_path = v;
        } else if ((r = cli_opt(argc, argv, &i, "--good", &v))) {
            if (r < 0)
                return cli_usage_error("eval", "--good needs a folder");
            good = v;
        } else if ((r = cli_opt(argc, argv, &i, "--bad", &v))) {
            if (r < 0)
                return cli_usage_error("eval", "--bad needs a folder");
            bad = v;
        } else if ((r = cli_opt(argc, argv, &i, "--masks", &v))) {
            if (r < 0)
                return cli_usage_error("eval", "--masks needs a folder");
            masks = v;
        } else if ((r = cli_opt(argc, argv, &i, "--threads", &v))) {
            if (r < 0 || cli_parse_int(v, 0, 1024, &threads))
                return cli_usage_error("eval", "--threads needs a number");
        } else if (argv[i][0] == '-') {
            return cli_usage_error("eval", "unknown option '%s'", argv[i]);
        } else if (!model_path) {
            model_path = argv[i];
        } else if (!root) {
            root = argv[i];
        } else {
            return cli_usage_error("eval", "unexpected argument '%s'", argv[i]);
        }
    }
    if (!model_path || (!root && !(good && bad)))
        return cli_usage_error("eval", "need MODEL and DATASET (or --good and --bad)");

    nm_error err = {0};
    eval_set set = {0};
    nm_model *model = NULL;
    pixel_metrics *pm = NULL;
    float *scores = NULL;
    uint8_t *labels = NULL;
    int rc = EXIT_OK;
    nm_status st;
    if (root)
        st = load_mvtec(&set, root, &err);
    else {
        set.have_masks = masks != NULL;
        st = add_dir(&set, good, "good", NULL, &err);
        if (!st)
            st = add_dir(&set, bad, "bad", masks, &err);
    }
    if (!st)
        st = nm_model_load(model_path, threads, &model, &err);
    if (!st && set.have_masks)
        st = pixel_metrics_create(&pm, &err);
    if (st) {
        rc = cli_report(&err);
        goto done;
    }
    scores = malloc(sizeof(float) * (size_t)set.n);
    labels = malloc((size_t)set.n);
    if (!scores || !labels) {
        fprintf(stderr, "nominal: out of memory\n");
        rc = EXIT_FAILURE_GENERIC;
        goto done;
    }
    double t_score = 0, t_metrics = 0, t0 = cli_now_seconds();
    for (int i = 0; i < set.n; i++) {
        eval_item *it = &set.items[i];
        nm_image img = {0};
        nm_result r = {0};
        double s0 = cli_now_seconds();
        st = nm_image_load(it->path, 0, &img, &err);
        if (!st)
            st = nm_model_score(model, &img, pm != NULL, &r, &err);
        double s1 = cli_now_seconds();
        t_score += s1 - s0;
        if (!st && pm) {
            uint8_t *mask = mask_for(it, img.width, img.height, &err);
            st = mask ? pixel_metrics_add(pm, r.map, mask, r.width, r.height, &err)
                      : (err.code ? err.code : NM_ERR_NOMEM);
            free(mask);
        }
        t_metrics += cli_now_seconds() - s1;
        scores[i] = r.score;
        labels[i] = strcmp(it->type, "good") != 0;
        nm_result_free(&r);
        nm_image_free(&img);
        if (st) {
            rc = cli_report(&err);
            goto done;
        }
        if (isatty(2))
            fprintf(stderr, "\reval %5d / %d", i + 1, set.n);
    }
    if (isatty(2))
        fprintf(stderr, "\n");
    double m0 = cli_now_seconds();
    binary_metrics overall;
    if (metrics_binary(scores, labels, (size_t)set.n, &overall, &err)) {
        rc = cli_report(&err);
        goto done;
    }
    double pixel_auroc = NAN, au_pro = NAN;
    if (pm && pixel_metrics_finish(pm, 0.3, &pixel_auroc, &au_pro, &err)) {
        rc = cli_report(&err);
        goto done;
    }
    /* per defect type: that type against the good images */
    cJSON *root_json = cJSON_CreateObject();
    cJSON_AddStringToObject(root_json, "model", model_path);
    cJSON_AddStringToObject(root_json, "dataset", root ? root : bad);
    cJSON_AddNumberToObject(root_json, "images", set.n);
    cJSON *per = cJSON_AddObjectToObject(root_json, "per_type");
    float *sub_s = malloc(sizeof(float) * (size_t)set.n);
    uint8_t *sub_l = malloc((size_t)set.n);
    printf("%-18s %6s %8s %8s %8s\n", "type", "images", "AUROC", "AUPR", "F1-max");
    for (int i = 0; sub_s && sub_l && i < set.n; i++) {
        const char *type = set.items[i].type;
        if (!labels[i] || cJSON_GetObjectItemCaseSensitive(per, type))
            continue;
        size_t n = 0;
        int n_type = 0;
        for (int j = 0; j < set.n; j++) {
            int same = strcmp(set.items[j].type, type) == 0;
            if (!labels[j] || same) {
                sub_s[n] = scores[j];
                sub_l[n++] = labels[j];
                n_type += same;
            }
        }
        binary_metrics m;
        if (metrics_binary(sub_s, sub_l, n, &m, &err))
            continue; /* no good images: per-type figures are undefined */
        cJSON *o = cJSON_AddObjectToObject(per, type);
        cJSON_AddNumberToObject(o, "images", n_type);
        cJSON_AddNumberToObject(o, "image_auroc", m.auroc);
        cJSON_AddNumberToObject(o, "image_aupr", m.aupr);
        cJSON_AddNumberToObject(o, "image_f1_max", m.f1_max);
        printf("%-18s %6d %8.4f %8.4f %8.4f\n", type, n_type, m.auroc, m.aupr, m.f1_max);
    }
    free(sub_s);
    free(sub_l);
    t_metrics += cli_now_seconds() - m0;
    printf("%-18s %6d %8.4f %8.4f %8.4f\n", "all", set.n, overall.auroc, overall.aupr,
           overall.f1_max);
    cJSON_AddNumberToObject(root_json, "image_auroc", overall.auroc);
    cJSON_AddNumberToObject(root_json, "image_aupr", overall.aupr);
    cJSON_AddNumberToObject(root_json, "image_f1_max", overall.f1_max);
    cJSON_AddNumberToObject(root_json, "image_f1_threshold", overall.f1_threshold);
    if (pm) {
        printf("pixel AUROC %.4f, AU-PRO (FPR <= 0.3) %.4f\n", pixel_auroc, au_pro);
        cJSON_AddNumberToObject(root_json, "pixel_auroc", pixel_auroc);
        cJSON_AddNumberToObject(root_json, "au_pro", au_pro);
    }
    double total = cli_now_seconds() - t0;
    printf("scoring %.1f s (%.0f ms/image), metrics %.1f s beyond scoring, total %.1f s, "
           "peak RSS %.0f MiB\n",
           t_score, 1e3 * t_score / set.n, t_metrics, total,
           (double)cli_peak_rss() / 1048576.0);
    cJSON_AddNumberToObject(root_json, "scoring_seconds", t_score);
    cJSON_AddNumberToObject(root_json, "metrics_seconds", t_metrics);
    cJSON_AddNumberToObject(root_json, "peak_rss_bytes", (double)cli_peak_rss());
    if (json_path) {
        char *text = cJSON_Print(root_json);
        FILE *f = text ? fopen(json_path, "w") : NULL;
        if (!f || fputs(text, f) < 0 || fclose(f) != 0) {
            fprintf(stderr, "nominal: %s: cannot write\n", json_path);
            rc = EXIT_IO;
        }
        free(text);
    }
    cJSON_Delete(root_json);
done:
    pixel_metrics_free(pm);
    nm_model_close(model);
    eval_set_free(&set);
    free(scores);
    free(labels);
    return rc;
}
