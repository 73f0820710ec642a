/* `nominal calibrate`: a decision threshold with a stated false-alarm rate,
 * stored in the model (docs/calibration.md). */
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cli/cli.h"
#include "io/dataset.h"
#include "methods/calibration.h"

static void print_help(void)
{
    printf("usage: nominal calibrate MODEL --good DIR [--bad DIR [--masks DIR]]\n"
           "                         (--target-fpr A | --target-fnr B | --f1) [--pixel-fpr P]\n"
           "                         [-o OUT] [--batch N] [--threads N] [--json]\n"
           "\n"
           "Choose the model's decision threshold from held-out images and store it in\n"
           "the model (rewritten atomically; -o writes a copy instead). Then `predict`\n"
           "prints OK / ANOMALY and a p-value per image.\n"
           "\n"
           "  --good DIR        good images NOT used for training (e.g. a held-out part)\n"
           "  --target-fpr A    conformal: with n good images, k = floor(A (n+1)) and the\n"
           "                    threshold is the k-th largest good score; for new good\n"
           "                    images like these, P(flagged) <= k/(n+1) <= A. Needs\n"
           "                    n >= 1/A - 1 (20 images: A >= 1/21)\n"
           "  --bad DIR         defective images: FNR/F1 targets and the trade-off table\n"
           "  --target-fnr B    conformal on the bad images: P(a new defect like these is\n"
           "                    missed) <= B; false alarms are then only estimated\n"
           "  --f1              the best F1 on the given images (no guarantee)\n"
           "  --pixel-fpr P     also a pixel threshold: the k-th largest of all map values\n"
           "                    of the good images, k = floor(P (N+1)); --out masks in predict\n"
           "  --masks DIR       NAME_mask.png per bad image: reports defect pixels missed\n"
           "  -o, --out OUT     write the calibrated model to OUT (default: MODEL itself)\n"
           "  --batch N         images per backbone pass (default 8)\n"
           "  --threads N       compute threads (default: all cores)\n"
           "  --json            print {\"model\", \"output\", \"calibration\"} as JSON\n"
           "\n"
           "An image is anomalous iff score > threshold; the p-value of a score s is\n"
           "(1 + #{good scores >= s}) / (n + 1). See docs/calibration.md.\n");
}

typedef struct calibrate_cli {
    const char *model, *good, *bad, *masks, *out;
    nm_calibration_target target;
    int n_targets, json, threads, batch;
} calibrate_cli;

static int parse_args(int argc, char **argv, calibrate_cli *c)
{
    c->batch = 8;
    for (int i = 1; i < argc; i++) {
        const char *v;
        int r;
        if (cli_is_help(argv[i])) {
            print_help();
            return -1;
        } else if ((r = cli_opt(argc, argv, &i, "--good", &v))) {
            if (r < 0)
                return cli_usage_error("calibrate", "--good needs a folder");
            c->good = v;
        } else if ((r = cli_opt(argc, argv, &i, "--bad", &v))) {
            if (r < 0)
                return cli_usage_error("calibrate", "--bad needs a folder");
            c->bad = v;
        } else if ((r = cli_opt(argc, argv, &i, "--masks", &v))) {
            if (r < 0)
                return cli_usage_error("calibrate", "--masks needs a folder");
            c->masks = v;
        } else if ((r = cli_opt(argc, argv, &i, "--out", &v)) ||
                   (r = cli_opt(argc, argv, &i, "-o", &v))) {
            if (r < 0)
                return cli_usage_error("calibrate", "-o needs a file");
            c->out = v;
        } else if ((r = cli_opt(argc, argv, &i, "--target-fpr", &v))) {
            if (r < 0 || cli_parse_fraction(v, &c->target.target))
                return cli_usage_error("calibrate", "--target-fpr needs a rate in (0, 1)");
            c->target.kind = NM_CALIBRATE_FPR;
            c->n_targets++;
        } else if ((r = cli_opt(argc, argv, &i, "--target-fnr", &v))) {
            if (r < 0 || cli_parse_fraction(v, &c->target.target))
                return cli_usage_error("calibrate", "--target-fnr needs a rate in (0, 1)");
            c->target.kind = NM_CALIBRATE_FNR;
            c->n_targets++;
        } else if (strcmp(argv[i], "--f1") == 0) {
            c->target.kind = NM_CALIBRATE_F1;
            c->n_targets++;
        } else if ((r = cli_opt(argc, argv, &i, "--pixel-fpr", &v))) {
            if (r < 0 || cli_parse_fraction(v, &c->target.pixel_fpr))
                return cli_usage_error("calibrate", "--pixel-fpr needs a rate in (0, 1)");
        } else if ((r = cli_opt(argc, argv, &i, "--batch", &v))) {
            if (r < 0 || cli_parse_int(v, 1, NM_SCORE_BATCH_MAX, &c->batch))
                return cli_usage_error("calibrate", "--batch needs 1..%d", NM_SCORE_BATCH_MAX);
        } else if ((r = cli_opt(argc, argv, &i, "--threads", &v))) {
            if (r < 0 || cli_parse_int(v, 0, 1024, &c->threads))
                return cli_usage_error("calibrate", "--threads needs a number");
        } else if (strcmp(argv[i], "--json") == 0) {
            c->json = 1;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            return cli_usage_error("calibrate", "unknown option '%s'", argv[i]);
        } else if (!c->model) {
            c->model = argv[i];
        } else {
            return cli_usage_error("calibrate", "unexpected argument '%s'", argv[i]);
        }
    }
    if (!c->model)
        return cli_usage_error("calibrate", "missing MODEL");
    if (!c->good)
        return cli_usage_error("calibrate", "missing --good DIR (held-out good images)");
    if (c->n_targets != 1)
        return cli_usage_error("calibrate", "give exactly one of --target-fpr, --target-fnr, --f1");
    if (c->target.kind != NM_CALIBRATE_FPR && !c->bad)
        return cli_usage_error("calibrate", "--target-fnr and --f1 need --bad DIR");
    if (c->masks && (!c->bad || c->target.pixel_fpr <= 0))
        return cli_usage_error("calibrate", "--masks goes with --bad and --pixel-fpr");
    if (!c->out)
        c->out = c->model;
    return 0;
}

static void print_json(const calibrate_cli *c, const nm_calibration *cal)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "model", c->model);
    cJSON_AddStringToObject(o, "output", c->out);
    cJSON_AddItemToObject(o, "calibration", calibration_to_json(cal));
    char *s = cJSON_PrintUnformatted(o);
    if (s)
        printf("%s\n", s);
    free(s);
    cJSON_Delete(o);
}

int cmd_calibrate(int argc, char **argv)
{
    calibrate_cli c;
    memset(&c, 0, sizeof c);
    int rc = parse_args(argc, argv, &c);
    if (rc != 0)
        return rc < 0 ? EXIT_OK : rc;
    nm_error err = {0};
    path_list good = {0}, bad = {0};
    nm_model *model = NULL;
    if (dataset_list_images(c.good, &good, &err) ||
        (c.bad && dataset_list_images(c.bad, &bad, &err)) ||
        nm_model_load(c.model, c.threads, &model, &err)) {
        rc = cli_report(&err);
        goto done;
    }
    cli_calibration_request req = {
        .target = c.target,
        .good = (const char *const *)good.paths, .n_good = good.count, .good_source = c.good,
        .bad = (const char *const *)bad.paths, .n_bad = bad.count, .bad_source = c.bad,
        .masks = c.masks, .batch = c.batch,
    };
    nm_calibration cal;
    if (cli_calibrate(model, &req, &err) || nm_model_save(model, c.out, &err)) {
        rc = cli_report(&err);
        goto done;
    }
    nm_model_get_calibration(model, &cal);
    if (c.json) {
        print_json(&c, &cal);
    } else {
        cli_print_calibration(&cal);
        printf("saved:       %s\n", c.out);
    }
done:
    nm_model_close(model);
    path_list_free(&good);
    path_list_free(&bad);
    return rc;
}
