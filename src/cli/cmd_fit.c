/* `nominal fit`: learn a model from good images. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cli/cli.h"
#include "core/error.h"
#include "io/dataset.h"
#include "methods/calibration.h"
#include "methods/method.h"

#define MAX_TAPS 8
#define MAX_PARAMS 32

static void print_help(void)
{
    printf("usage: nominal fit --backbone FILE.onnx --taps A,B --train DIR -o MODEL [options]\n"
           "\n"
           "Learn what good parts look like from defect-free images. DIR is a folder of\n"
           "good images, or an MVTec-style category root (DIR/train/good is used).\n"
           "\n"
           "options:\n"
           "  --method NAME    anomaly detection method (default patchcore)\n"
           "  --backbone FILE  ONNX backbone; its weights up to the last tap go into MODEL\n"
           "  --taps A,B       feature maps to use, shallow first (e.g. stage2,stage3)\n"
           "  --train DIR      good images\n"
           "  -o, --out MODEL  model file to write (atomically)\n"
           "  --resize N       shorter side after resize (default 256)\n"
           "  --crop N         center crop (default 224; 0 = none)\n"
           "  --seed N         random seed (default 0)\n"
           "  --threads N      compute threads (default: all cores)\n"
           "  --batch N        images per backbone pass (default 8)\n"
           "  --strict         fail on an unreadable training image (default: skip it)\n"
           "  --json           print the summary as JSON\n"
           "  --holdout F      keep a random fraction F of the images (by --seed; at least\n"
           "                   1) out of training and calibrate the threshold on them\n"
           "                   (as `nominal calibrate`); their names go into MODEL\n"
           "  --target-fpr A   with --holdout: the false-alarm rate to guarantee (default:\n"
           "                   the smallest achievable that is >= 0.01, max(0.01, 1/(h+1))\n"
           "                   for h held-out images)\n"
           "  --pixel-fpr P    with --holdout: also a pixel threshold at pixel FPR P\n"
           "  --NAME VALUE     a method setting, e.g. --coreset 0.1\n"
           "\n");
    for (int i = 0; method_registry[i]; i++)
        printf("%s settings:\n%s\n", method_registry[i]->name, method_registry[i]->help);
}

typedef struct fit_cli {
    nm_fit_options o;
    char *taps[MAX_TAPS];
    nm_param params[MAX_PARAMS];
    const char *train;
    const char *out;
    double holdout;
    nm_calibration_target target;
    int json;
    int tty;
    int progress_shown;
} fit_cli;

static void on_progress(void *ctx, const char *stage, size_t done, size_t total)
{
    fit_cli *c = ctx;
    if (!c->tty)
        return;
    fprintf(stderr, "\r%-10s %6zu / %zu (%3d%%)", stage, done, total,
            total ? (int)(100.0 * (double)done / (double)total) : 100);
    if (done == total)
        fprintf(stderr, "\n");
    c->progress_shown = 1;
}

static void on_warning(void *ctx, const char *msg)
{
    fit_cli *c = ctx;
    fprintf(stderr, "%snominal: skipped: %s\n", c->tty ? "\n" : "", msg);
}

static int parse_args(int argc, char **argv, fit_cli *c)
{
    nm_fit_options_default(&c->o);
    c->o.progress = on_progress;
    c->o.warn = on_warning;
    c->o.progress_ctx = c;
    c->o.params = c->params;
    for (int i = 1; i < argc; i++) {
        const char *v;
        int r, n;
        if (cli_is_help(argv[i])) {
            print_help();
            return -1;
        } else if ((r = cli_opt(argc, argv, &i, "--method", &v))) {
            if (r < 0)
                return cli_usage_error("fit", "--method needs a name");
            c->o.method = v;
        } else if ((r = cli_opt(argc, argv, &i, "--backbone", &v))) {
            if (r < 0)
                return cli_usage_error("fit", "--backbone needs a file");
            c->o.backbone = v;
        } else if ((r = cli_opt(argc, argv, &i, "--taps", &v))) {
            if (r < 0 || (c->o.n_taps = cli_split_list(v, c->taps, MAX_TAPS)) <= 0)
                return cli_usage_error("fit", "--taps needs 1 to %d names", MAX_TAPS);
        } else if ((r = cli_opt(argc, argv, &i, "--train", &v))) {
            if (r < 0)
                return cli_usage_error("fit", "--train needs a folder");
            c->train = v;
        } else if ((r = cli_opt(argc, argv, &i, "--out", &v)) ||
                   (r = cli_opt(argc, argv, &i, "-o", &v))) {
            if (r < 0)
                return cli_usage_error("fit", "-o needs a file");
            c->out = v;
        } else if ((r = cli_opt(argc, argv, &i, "--resize", &v))) {
            if (r < 0 || cli_parse_int(v, 0, 16384, &n))
                return cli_usage_error("fit", "--resize needs 0..16384");
            c->o.preprocess.resize_short = n;
        } else if ((r = cli_opt(argc, argv, &i, "--crop", &v))) {
            if (r < 0 || cli_parse_int(v, 0, 16384, &n))
                return cli_usage_error("fit", "--crop needs 0..16384");
            c->o.preprocess.crop_width = c->o.preprocess.crop_height = n;
        } else if ((r = cli_opt(argc, argv, &i, "--seed", &v))) {
            if (r < 0 || cli_parse_int(v, 0, 2147483647, &n))
                return cli_usage_error("fit", "--seed needs a non-negative integer");
            c->o.seed = (uint64_t)n;
        } else if ((r = cli_opt(argc, argv, &i, "--threads", &v))) {
            if (r < 0 || cli_parse_int(v, 0, 1024, &c->o.threads))
                return cli_usage_error("fit", "--threads needs a number");
        } else if ((r = cli_opt(argc, argv, &i, "--batch", &v))) {
            if (r < 0 || cli_parse_int(v, 1, 256, &c->o.batch_size))
                return cli_usage_error("fit", "--batch needs 1..256");
        } else if ((r = cli_opt(argc, argv, &i, "--holdout", &v))) {
            if (r < 0 || cli_parse_fraction(v, &c->holdout))
                return cli_usage_error("fit", "--holdout needs a fraction in (0, 1)");
        } else if ((r = cli_opt(argc, argv, &i, "--target-fpr", &v))) {
            if (r < 0 || cli_parse_fraction(v, &c->target.target))
                return cli_usage_error("fit", "--target-fpr needs a rate in (0, 1)");
        } else if ((r = cli_opt(argc, argv, &i, "--pixel-fpr", &v))) {
            if (r < 0 || cli_parse_fraction(v, &c->target.pixel_fpr))
                return cli_usage_error("fit", "--pixel-fpr needs a rate in (0, 1)");
        } else if (strcmp(argv[i], "--strict") == 0) {
            c->o.skip_bad_images = 0;
        } else if (strcmp(argv[i], "--json") == 0) {
            c->json = 1;
        } else if (strncmp(argv[i], "--", 2) == 0 && argv[i][2]) {
            /* a method setting: --key value or --key=value */
            if (c->o.n_params == MAX_PARAMS)
                return cli_usage_error("fit", "too many settings");
            nm_param *p = &c->params[c->o.n_params];
            char *eq = strchr(argv[i] + 2, '=');
            if (eq) {
                *eq = '\0';
                p->value = eq + 1;
            } else if (i + 1 < argc) {
                p->value = argv[++i];
            } else {
                return cli_usage_error("fit", "%s needs a value", argv[i]);
            }
            p->key = argv[i - (eq ? 0 : 1)] + 2;
            c->o.n_params++;
        } else {
            return cli_usage_error("fit", "unexpected argument '%s'", argv[i]);
        }
    }
    if (!c->o.backbone)
        return cli_usage_error("fit", "missing --backbone FILE.onnx");
    if (!c->o.n_taps)
        return cli_usage_error("fit", "missing --taps (e.g. --taps stage2,stage3)");
    if (!c->train)
        return cli_usage_error("fit", "missing --train DIR");
    if (!c->out)
        return cli_usage_error("fit", "missing -o MODEL");
    if (!c->holdout && (c->target.target > 0 || c->target.pixel_fpr > 0))
        return cli_usage_error("fit", "--target-fpr and --pixel-fpr need --holdout");
    c->o.taps = (const char *const *)c->taps;
    return 0;
}

/* Split the listed images into training and held-out ones (by seed). */
static nm_status split_holdout(const fit_cli *c, const path_list *all, path_list *train,
                               path_list *held, nm_error *err)
{
    if (all->count < 2)
        return nm_fail(err, NM_ERR_ARG, "%s: --holdout needs at least 2 images, found %d",
                       c->train, all->count);
    unsigned char *is_held = malloc((size_t)all->count);
    nm_status st = NM_OK;
    if (!is_held || calib_holdout_pick(all->count, c->holdout, c->o.seed, is_held) < 0)
        st = nm_fail(err, NM_ERR_NOMEM, "out of memory");
    for (int i = 0; !st && i < all->count; i++)
        st = path_list_add(is_held[i] ? held : train, all->paths[i], err);
    free(is_held);
    return st;
}

/* Fit on the training images; with --holdout, calibrate on the others. */
static nm_status fit_and_calibrate(fit_cli *c, const path_list *train, const path_list *held,
                                   nm_model **model, nm_error *err)
{
    /* an unreachable target fails now, not after the fit */
    if (held->count && c->target.target > 0) {
        nm_status st = calib_check_achievable("FPR", c->target.target, held->count,
                                              "held-out images", err);
        if (st)
            return st;
    }
    nm_status st = nm_model_fit(&c->o, (const char *const *)train->paths, train->count, model,
                                err);
    if (st || !held->count)
        return st;
    cli_calibration_request req = {
        .target = c->target,
        .good = (const char *const *)held->paths, .n_good = held->count,
        .good_source = c->train,
        .held_out = (const char *const *)held->paths, .n_held_out = held->count,
        .batch = c->o.batch_size,
        .warn = c->o.skip_bad_images ? on_warning : NULL, .warn_ctx = c,
    };
    return cli_calibrate(*model, &req, err);
}

static void print_summary(const fit_cli *c, nm_model *model, int listed, double secs)
{
    nm_model_info info;
    nm_model_get_info(model, &info);
    nm_calibration cal;
    int calibrated = nm_model_get_calibration(model, &cal);
    if (c->json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "model", c->out);
        cJSON_AddStringToObject(o, "method", info.method);
        cJSON_AddNumberToObject(o, "train_images", info.train_images);
        cJSON_AddNumberToObject(o, "listed_images", listed);
        cJSON_AddNumberToObject(o, "held_out_images", calibrated ? cal.n_held_out : 0);
        cJSON_AddNumberToObject(o, "bank_rows", (double)info.memory_bank);
        cJSON_AddNumberToObject(o, "feature_dim", info.feature_dim);
        cJSON_AddNumberToObject(o, "fit_seconds", secs);
        cJSON_AddNumberToObject(o, "peak_rss_bytes", (double)cli_peak_rss());
        if (calibrated)
            cJSON_AddItemToObject(o, "calibration", calibration_to_json(&cal));
        else
            cJSON_AddNullToObject(o, "calibration");
        char *s = cJSON_PrintUnformatted(o);
        if (s)
            printf("%s\n", s);
        free(s);
        cJSON_Delete(o);
        return;
    }
    printf("model:      %s (%s, backbone %s, taps %s)\n", c->out, info.method, info.backbone,
           info.taps);
    printf("trained on: %d of %d images in %s\n", info.train_images, listed, c->train);
    printf("bank:       %zu x %d\n", info.memory_bank, info.feature_dim);
    printf("fit time:   %.1f s, peak memory %.0f MiB\n", secs,
           (double)cli_peak_rss() / 1048576.0);
    if (calibrated)
        cli_print_calibration(&cal);
}

int cmd_fit(int argc, char **argv)
{
    fit_cli c;
    memset(&c, 0, sizeof c);
    c.tty = isatty(2);
    int rc = parse_args(argc, argv, &c);
    if (rc != 0) {
        rc = rc < 0 ? EXIT_OK : rc;
        goto out;
    }
    nm_error err = {0};
    path_list images = {0}, train = {0}, held = {0};
    nm_model *model = NULL;
    double t0 = cli_now_seconds();
    nm_status st = dataset_list_train(c.train, &images, &err);
    if (!st && c.holdout > 0)
        st = split_holdout(&c, &images, &train, &held, &err);
    if (!st)
        st = fit_and_calibrate(&c, c.holdout > 0 ? &train : &images, &held, &model, &err);
    if (!st)
        st = nm_model_save(model, c.out, &err);
    if (st)
        rc = cli_report(&err);
    else
        print_summary(&c, model, images.count, cli_now_seconds() - t0);
    nm_model_close(model);
    path_list_free(&images);
    path_list_free(&train);
    path_list_free(&held);
out:
    for (int i = 0; i < c.o.n_taps; i++)
        free(c.taps[i]);
    return rc;
}
