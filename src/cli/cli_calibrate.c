/* Calibrating a model from image files (shared by `nominal calibrate` and
 * `nominal fit --holdout`): score the images in batches, collect image
 * scores and, for a pixel threshold, map values, then nm_model_calibrate. */
#include "cli/cli.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/error.h"
#include "io/dataset.h"
#include "methods/calibration.h"

enum { PIXELS_NONE, PIXELS_ALL, PIXELS_UNDER_MASKS };

typedef struct collected {
    float *scores;
    int n;
    float *pixels;
    size_t n_pixels, cap_pixels;
} collected;

static void collected_free(collected *c)
{
    free(c->scores);
    free(c->pixels);
}

static nm_status reserve_pixels(collected *c, size_t more, nm_error *err)
{
    if (c->n_pixels + more <= c->cap_pixels)
        return NM_OK;
    size_t cap = c->cap_pixels ? c->cap_pixels : 1u << 20;
    while (cap < c->n_pixels + more)
        cap *= 2;
    float *p = realloc(c->pixels, cap * sizeof(float));
    if (!p)
        return nm_fail(err, NM_ERR_NOMEM, "out of memory holding %zu map values", cap);
    c->pixels = p;
    c->cap_pixels = cap;
    return NM_OK;
}

/* Map values under the image's defect mask, read as `eval` reads masks
 * (any channel non-zero; another size resized nearest, as PIL does). */
static nm_status add_defect_pixels(collected *c, const char *masks, const char *image,
                                   const nm_result *r, nm_error *err)
{
    char path[4096];
    dataset_mask_path(masks, image, path, sizeof path);
    uint8_t *mask = NULL;
    nm_status st = dataset_load_mask(path, r->width, r->height, &mask, err);
    size_t n = (size_t)r->width * (size_t)r->height;
    if (!st)
        st = reserve_pixels(c, n, err);
    for (size_t i = 0; !st && i < n; i++)
        if (mask[i])
            c->pixels[c->n_pixels++] = r->map[i];
    free(mask);
    return st;
}

static nm_status add_result(collected *c, int pixel_mode, const char *masks, const char *path,
                            const nm_result *r, nm_error *err)
{
    c->scores[c->n++] = r->score;
    if (pixel_mode == PIXELS_UNDER_MASKS)
        return add_defect_pixels(c, masks, path, r, err);
    if (pixel_mode == PIXELS_ALL) {
        size_t n = (size_t)r->width * (size_t)r->height;
        nm_status st = reserve_pixels(c, n, err);
        if (st)
            return st;
        memcpy(c->pixels + c->n_pixels, r->map, n * sizeof(float));
        c->n_pixels += n;
    }
    return NM_OK;
}

static nm_status collect(nm_model *m, const cli_calibration_request *r, const char *const *paths,
                         int n, const char *what, int pixel_mode, collected *out, nm_error *err)
{
    cli_batch b;
    nm_status st = cli_batch_init(&b, r->batch > 0 ? r->batch : 1, err);
    if (st)
        return st;
    out->scores = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
    if (!out->scores)
        st = nm_fail(err, NM_ERR_NOMEM, "out of memory");
    int tty = isatty(2);
    for (int i = 0; !st && i < n; i += b.n) {
        cli_batch_score(&b, m, paths + i, n - i, pixel_mode != PIXELS_NONE);
        for (int j = 0; !st && j < b.n; j++) {
            const nm_error *e = &b.errors[j];
            if (e->code && r->warn && e->code != NM_ERR_NOMEM)
                r->warn(r->warn_ctx, e->msg);
            else if (e->code)
                st = nm_fail(err, e->code, "%s", e->msg);
            else
                st = add_result(out, pixel_mode, r->masks, paths[i + j], &b.results[j], err);
        }
        if (tty)
            fprintf(stderr, "\rcalibrate %-4s %5d / %d%s", what, i + b.n, n,
                    i + b.n == n ? "\n" : "");
    }
    cli_batch_free(&b);
    if (!st && out->n == 0)
        st = nm_fail(err, NM_ERR_FORMAT, "none of the %d %s images could be read", n, what);
    return st;
}

nm_status cli_calibrate(nm_model *m, const cli_calibration_request *r, nm_error *err)
{
    const nm_calibration_target *t = &r->target;
    nm_status st = NM_OK;
    /* fail before minutes of scoring when the counts cannot work */
    if (t->kind != NM_CALIBRATE_FPR && r->n_bad < 1)
        return nm_fail(err, NM_ERR_ARG, "a target FNR or F1 needs bad images (--bad DIR)");
    if (t->kind == NM_CALIBRATE_FPR && t->target != 0)
        st = calib_check_achievable("FPR", t->target, r->n_good, "good images", err);
    if (t->kind == NM_CALIBRATE_FNR)
        st = calib_check_achievable("FNR", t->target, r->n_bad, "bad images", err);
    if (st)
        return st;
    collected good = {0}, bad = {0};
    int pixels = t->pixel_fpr > 0;
    st = collect(m, r, r->good, r->n_good, "good", pixels ? PIXELS_ALL : PIXELS_NONE, &good,
                 err);
    if (!st && r->n_bad > 0)
        st = collect(m, r, r->bad, r->n_bad, "bad",
                     pixels && r->masks ? PIXELS_UNDER_MASKS : PIXELS_NONE, &bad, err);
    if (!st) {
        nm_calibration_data d = {
            .good_scores = good.scores, .n_good = good.n,
            .bad_scores = bad.scores, .n_bad = bad.n,
            .good_pixels = good.pixels, .n_good_pixels = good.n_pixels,
            .defect_pixels = bad.pixels, .n_defect_pixels = bad.n_pixels,
            .good_source = r->good_source, .bad_source = r->bad_source,
            .held_out = r->held_out, .n_held_out = r->n_held_out,
        };
        st = nm_model_calibrate(m, &d, t, err);
    }
    collected_free(&good);
    collected_free(&bad);
    return st;
}

/* ---------------------------------------------------------------- print */

static void print_rate(const char *label, double rate, int n, const char *what)
{
    if (isnan(rate))
        return;
    printf("%s %.4f (%.0f of %d %s)", label, rate, rate * n, n, what);
}

void cli_print_calibration(const nm_calibration *c)
{
    static const char *const kinds[] = {"FPR (conformal)", "FNR (conformal)", "best F1"};
    if (c->kind == NM_CALIBRATE_F1)
        printf("calibration: %s on %d good + %d bad images (F1 %.4f)\n", kinds[c->kind],
               c->n_good, c->n_bad, c->target);
    else
        printf("calibration: target %s %g on %d good + %d bad images (k = %d)\n",
               kinds[c->kind], c->target, c->n_good, c->n_bad, c->k);
    printf("threshold:   %.9g (anomalous iff score > threshold)\n", c->threshold);
    if (c->kind == NM_CALIBRATE_FPR)
        printf("guarantee:   P(a new good image is flagged) <= %d/%d = %.4f\n", c->k,
               c->n_good + 1, c->fpr_bound);
    else if (c->kind == NM_CALIBRATE_FNR)
        printf("guarantee:   P(a new defect like these is missed) <= %d/%d = %.4f; false "
               "alarms estimated at %.4f (not guaranteed)\n",
               c->k, c->n_bad + 1, c->fnr_bound, c->fpr_bound);
    else
        printf("guarantee:   none (chosen on these images); false alarms estimated at %.4f\n",
               c->fpr_bound);
    printf("on these images:");
    print_rate(" FPR", c->fpr_good, c->n_good, "good");
    print_rate(", FNR", c->fnr_bad, c->n_bad, "bad");
    printf("\n");
    if (c->has_pixel_threshold) {
        printf("pixel threshold: %.9g (target pixel FPR %g over %zu good pixels: %.5f there",
               c->pixel_threshold, c->pixel_target, c->n_good_pixels, c->pixel_fpr_good);
        if (!isnan(c->pixel_fnr_bad))
            printf("; %.4f of %zu defect pixels missed", c->pixel_fnr_bad, c->n_defect_pixels);
        printf(")\n");
    }
    if (c->n_held_out > 0)
        printf("held out:    %d training images (%s%s%s)\n", c->n_held_out, c->held_out[0],
               c->n_held_out > 1 ? " ... " : "",
               c->n_held_out > 1 ? c->held_out[c->n_held_out - 1] : "");
    if (c->good_source)
        printf("good images: %s\n", c->good_source);
    if (c->bad_source)
        printf("bad images:  %s\n", c->bad_source);
    printf("created:     %s\n", c->created ? c->created : "?");
    printf("trade-off on these images (FPR bound: (1 + #good above) / (n + 1)):\n");
    printf("  %14s %9s %10s %9s\n", "threshold", "FPR good", "FPR bound", "FNR bad");
    for (int i = 0; i < c->n_table; i++) {
        const nm_tradeoff_row *row = &c->table[i];
        printf("  %14.7g %9.4f %10.4f ", row->threshold, row->fpr_good, row->fpr_bound);
        if (isnan(row->fnr_bad))
            printf("%9s", "-");
        else
            printf("%9.4f", row->fnr_bad);
        printf("%s\n", row->threshold == c->threshold ? "  <- chosen" : "");
    }
}
