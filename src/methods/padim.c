/*
 * PaDiM (Defard et al., ICPR 2021 workshops), following the reference
 * implementations (xiahaifeng1995/PaDiM-Anomaly-Detection-Localization-
 * master, anomalib's Padim): the taps brought to the first tap's grid and
 * concatenated, a random subset of d channels (padim_embed.h), one Gaussian
 * per grid position fitted to the training images (padim_gauss.h), and the
 * Mahalanobis distance (square root of the quadratic form) as the patch
 * score; the image score is the largest patch score.
 *
 * Fitting streams: images are gathered into a block buffer and merged into
 * running sums per block; the full model's sums are overwritten by its
 * factors, so the peak is one d x d triangle per position plus the block.
 * A loaded model uses its mean and factors in place in the model file.
 */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "methods/method.h"
#include "methods/padim_embed.h"
#include "methods/padim_gauss.h"
#include "methods/padim_kernels.h"

#define PADIM_MAX_TAPS 8
/* The reference's regularisation: covariance + 0.01 I. */
#define PADIM_EPS 0.01
#define DEFAULT_RANK 64
/* The fit's block buffer: at most this many bytes and images. More images
 * per block means fewer passes over the (up to 2 GB of) sums. */
#define BLOCK_BYTES ((size_t)256 << 20)
#define BLOCK_MAX_IMAGES 64
/* Training images whose leave-one-out distances set the colour scale. */
#define SCALE_IMAGES 8

typedef struct padim {
    /* settings */
    int d_setting; /* 0: padim_default_d of the channel total */
    padim_cov cov;
    int rank;
    /* the taps' [C, H, W], fixed by the first training batch */
    int n_taps;
    int tap_shape[PADIM_MAX_TAPS][3];
    int d, d_pad;
    size_t positions;
    int32_t *channels_owned; /* after fit; in the model file after load */
    const int32_t *channels;
    /* fit */
    padim_accum acc;
    float *block; /* [positions][block_cap][d_pad] */
    int block_cap, block_fill, last_block;
    /* the model */
    padim_gauss g;
    float normal_scale;
    /* scoring scratch: features [positions][n][d_pad] */
    float *x;
    size_t x_cap;
} padim;

static int threads_of(const method_context *ctx)
{
    return ctx && ctx->backend ? backend_threads(ctx->backend) : omp_get_max_threads();
}

static void pd_destroy(void *state)
{
    padim *pd = state;
    if (!pd)
        return;
    padim_accum_free(&pd->acc);
    padim_gauss_free(&pd->g);
    free(pd->channels_owned);
    free(pd->block);
    free(pd->x);
    free(pd);
}

static nm_status parse_int(const nm_param *p, int lo, int hi, int *out, nm_error *err)
{
    char *end;
    long v = strtol(p->value, &end, 10);
    if (end == p->value || *end || v < lo || v > hi)
        return nm_fail(err, NM_ERR_ARG, "padim: %s=%s: expected an integer %d..%d", p->key,
                       p->value, lo, hi);
    *out = (int)v;
    return NM_OK;
}

static nm_status pd_create(const nm_param *params, int n_params, void **state, nm_error *err)
{
    padim *pd = calloc(1, sizeof *pd);
    if (!pd)
        return nm_fail(err, NM_ERR_NOMEM, "padim: out of memory");
    pd->cov = PADIM_COV_FULL;
    pd->rank = DEFAULT_RANK;
    int rank_given = 0;
    nm_status st = NM_OK;
    for (int i = 0; i < n_params && !st; i++) {
        const nm_param *p = &params[i];
        if (strcmp(p->key, "d") == 0) {
            st = parse_int(p, 1, 65536, &pd->d_setting, err);
        } else if (strcmp(p->key, "rank") == 0) {
            st = parse_int(p, 1, 65536, &pd->rank, err);
            rank_given = 1;
        } else if (strcmp(p->key, "cov") == 0) {
            if (padim_cov_parse(p->value, &pd->cov))
                st = nm_fail(err, NM_ERR_ARG,
                             "padim: cov=%s: expected 'full', 'diag' or 'lowrank'", p->value);
        } else {
            st = nm_fail(err, NM_ERR_ARG, "padim: unknown setting '%s' "
                                          "(see `nominal fit --help`)", p->key);
        }
    }
    if (!st && rank_given && pd->cov != PADIM_COV_LOWRANK)
        st = nm_fail(err, NM_ERR_ARG, "padim: rank applies to cov=lowrank only");
    if (st) {
        pd_destroy(pd);
        return st;
    }
    *state = pd;
    return NM_OK;
}

static void pd_grid(void *state, const nm_tensor *taps, int n_taps, int *w, int *h)
{
    (void)state;
    (void)n_taps;
    *h = (int)taps[0].dims[2];
    *w = (int)taps[0].dims[3];
}

/* The taps must have the shapes the model was fitted on: the statistics
 * are per channel and per grid position. */
static nm_status check_taps(const padim *pd, const nm_tensor *taps, int n_taps, nm_error *err)
{
    if (n_taps != pd->n_taps)
        return nm_fail(err, NM_ERR_ARG, "padim: got %d taps, the model has %d", n_taps,
                       pd->n_taps);
    for (int t = 0; t < n_taps; t++) {
        const int *s = pd->tap_shape[t];
        if (taps[t].rank != 4 || taps[t].dims[1] != s[0] || taps[t].dims[2] != s[1] ||
            taps[t].dims[3] != s[2] || taps[t].dims[0] != taps[0].dims[0])
            return nm_fail(err, NM_ERR_ARG,
                           "padim: tap %d has shape %lldx%lldx%lld, the model was fitted on "
                           "%dx%dx%d (PaDiM's statistics are per position: use the fit's "
                           "input size)", t, (long long)taps[t].dims[1],
                           (long long)taps[t].dims[2], (long long)taps[t].dims[3], s[0], s[1],
                           s[2]);
    }
    return NM_OK;
}

/* The first training batch fixes the shapes, d, the channels and the
 * buffers. */
static nm_status fit_setup(padim *pd, const method_context *ctx, const nm_tensor *taps,
                           int n_taps, nm_error *err)
{
    if (n_taps < 1 || n_taps > PADIM_MAX_TAPS)
        return nm_fail(err, NM_ERR_ARG, "padim: needs 1 to %d taps, got %d", PADIM_MAX_TAPS,
                       n_taps);
    int total = 0;
    for (int t = 0; t < n_taps; t++) {
        if (taps[t].rank != 4)
            return nm_fail(err, NM_ERR_ARG, "padim: tap %d is not a [N][C][H][W] feature map",
                           t);
        for (int k = 0; k < 3; k++)
            pd->tap_shape[t][k] = (int)taps[t].dims[k + 1];
        total += pd->tap_shape[t][0];
    }
    pd->n_taps = n_taps;
    pd->d = pd->d_setting ? pd->d_setting : padim_default_d(total);
    if (pd->d > total)
        return nm_fail(err, NM_ERR_ARG, "padim: d=%d exceeds the %d channels of the taps",
                       pd->d, total);
    if (pd->cov == PADIM_COV_LOWRANK && pd->rank >= pd->d)
        return nm_fail(err, NM_ERR_ARG, "padim: rank=%d must be below d=%d", pd->rank, pd->d);
    pd->d_pad = padim_pad(pd->d);
    pd->positions = (size_t)pd->tap_shape[0][1] * (size_t)pd->tap_shape[0][2];
    pd->channels_owned = malloc((size_t)pd->d * sizeof *pd->channels_owned);
    if (!pd->channels_owned)
        return nm_fail(err, NM_ERR_NOMEM, "padim: out of memory");
    pd->channels = pd->channels_owned;
    nm_status st = padim_choose_channels(ctx->seed, total, pd->d, pd->channels_owned, err);
    if (st)
        return st;
    size_t per_image = pd->positions * (size_t)pd->d_pad * sizeof(float);
    size_t cap = BLOCK_BYTES / per_image;
    pd->block_cap = cap < 1 ? 1 : cap > BLOCK_MAX_IMAGES ? BLOCK_MAX_IMAGES : (int)cap;
    pd->block = padim_zalloc(per_image * (size_t)pd->block_cap);
    if (!pd->block)
        return nm_fail(err, NM_ERR_NOMEM, "padim: out of memory for a block of %d images",
                       pd->block_cap);
    return padim_accum_init(&pd->acc, pd->cov, pd->positions, pd->d, err);
}

static nm_status flush_block(padim *pd, const method_context *ctx, nm_error *err)
{
    if (pd->block_fill == 0)
        return NM_OK;
    nm_status st = padim_accum_add(&pd->acc, pd->block,
                                   (size_t)pd->block_cap * (size_t)pd->d_pad, pd->block_fill,
                                   threads_of(ctx), err);
    pd->last_block = pd->block_fill;
    pd->block_fill = 0;
    return st;
}

static nm_status pd_fit_add(void *state, const method_context *ctx, const nm_tensor *taps,
                            int n_taps, nm_error *err)
{
    padim *pd = state;
    nm_status st = pd->n_taps ? check_taps(pd, taps, n_taps, err)
                              : fit_setup(pd, ctx, taps, n_taps, err);
    if (st)
        return st;
    int n = (int)taps[0].dims[0];
    for (int done = 0; done < n && !st;) {
        int room = pd->block_cap - pd->block_fill;
        int count = n - done < room ? n - done : room;
        padim_gather(taps, n_taps, pd->channels, pd->d, done, count,
                     pd->block + (size_t)pd->block_fill * (size_t)pd->d_pad,
                     (size_t)pd->block_cap * (size_t)pd->d_pad, (size_t)pd->d_pad,
                     threads_of(ctx));
        pd->block_fill += count;
        done += count;
        if (pd->block_fill == pd->block_cap)
            st = flush_block(pd, ctx, err);
    }
    return st;
}

static int compare_floats(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* A typical normal patch score, for colour scaling: the 99th percentile
 * over (up to 8 images of) the last block of training images, corrected
 * for their being in the fit.
 * A training image's own distance q is biased low; removing it from the
 * fit is a rank-one downdate of the covariance, which by Sherman-Morrison
 * gives its leave-one-out distance (N/(N-1))^2 q / (1 - N q / ((N-1)(N-2)))
 * (exact without the eps I term, and close with it). On bottle (d=100)
 * this gives 2.92 / 4.17 / 5.66 for the 50th / 90th / 99th percentiles,
 * where the maps of the good test images show 3.04 / 4.22 / 5.53 and the
 * uncorrected in-sample scores 2.85 / 3.99 / 5.25 (the bias grows with d
 * against the number of images). */
static nm_status estimate_normal_scale(padim *pd, const method_context *ctx, nm_error *err)
{
    size_t n = (size_t)pd->last_block, count = n * pd->positions;
    float *q = malloc(count * sizeof *q);
    if (!q)
        return nm_fail(err, NM_ERR_NOMEM, "padim: out of memory");
    nm_status st = padim_gauss_score(&pd->g, pd->block, (size_t)pd->block_cap * (size_t)pd->d_pad,
                                     (int)n, q, threads_of(ctx), err);
    double N = (double)pd->acc.count;
    size_t kept = 0;
    for (size_t i = 0; !st && i < count; i++) {
        double v = q[i];
        if (N >= 3) {
            double denom = 1.0 - N * v / ((N - 1) * (N - 2));
            if (!(denom > 0))
                continue;
            v = (N / (N - 1)) * (N / (N - 1)) * v / denom;
        }
        q[kept++] = (float)sqrt(v);
    }
    if (!st && kept) {
        qsort(q, kept, sizeof *q, compare_floats);
        pd->normal_scale = q[(size_t)(0.99 * (double)(kept - 1))];
    }
    free(q);
    return st;
}

/* Keep only the first SCALE_IMAGES images of the last block for
 * estimate_normal_scale, so the block's memory is not held while the
 * factors are computed (the low-rank model's peak). */
static void shrink_block(padim *pd)
{
    int n = pd->last_block < SCALE_IMAGES ? pd->last_block : SCALE_IMAGES;
    size_t row = (size_t)n * (size_t)pd->d_pad;
    float *sample = padim_zalloc(pd->positions * row * sizeof(float));
    if (!sample)
        return; /* then the whole block serves */
    for (size_t p = 0; p < pd->positions; p++)
        memcpy(sample + p * row, pd->block + p * (size_t)pd->block_cap * (size_t)pd->d_pad,
               row * sizeof(float));
    free(pd->block);
    pd->block = sample;
    pd->block_cap = pd->last_block = n;
}

static nm_status pd_fit_finish(void *state, const method_context *ctx, nm_error *err)
{
    padim *pd = state;
    if (!pd->n_taps)
        return nm_fail(err, NM_ERR_ARG, "padim: no training images");
    nm_status st = flush_block(pd, ctx, err);
    if (!st)
        shrink_block(pd);
    int64_t count = pd->acc.count;
    if (!st)
        st = padim_gauss_fit(&pd->acc, PADIM_EPS, pd->rank, pd->tap_shape[0][2],
                             threads_of(ctx), &pd->g, err);
    pd->acc.count = count; /* padim_gauss_fit empties the sums; keep N */
    if (!st)
        st = estimate_normal_scale(pd, ctx, err);
    free(pd->block);
    pd->block = NULL;
    return st;
}

static nm_status ensure_scratch(padim *pd, size_t floats, nm_error *err)
{
    if (floats <= pd->x_cap)
        return NM_OK;
    free(pd->x);
    pd->x = padim_zalloc(floats * sizeof(float));
    pd->x_cap = pd->x ? floats : 0;
    return pd->x ? NM_OK : nm_fail(err, NM_ERR_NOMEM, "padim: out of memory");
}

static nm_status pd_score(void *state, const method_context *ctx, const nm_tensor *taps,
                          int n_taps, float *patch_scores, float *image_scores, nm_error *err)
{
    padim *pd = state;
    nm_status st = check_taps(pd, taps, n_taps, err);
    int n = (int)taps[0].dims[0];
    size_t stride = (size_t)n * (size_t)pd->d_pad;
    if (!st)
        st = ensure_scratch(pd, pd->positions * stride, err);
    if (st)
        return st;
    int threads = threads_of(ctx);
    padim_gather(taps, n_taps, pd->channels, pd->d, 0, n, pd->x, stride, (size_t)pd->d_pad,
                 threads);
    if ((st = padim_gauss_score(&pd->g, pd->x, stride, n, patch_scores, threads, err)))
        return st;
    for (int b = 0; b < n; b++) {
        float *s = patch_scores + (size_t)b * pd->positions;
        float top = 0;
        for (size_t p = 0; p < pd->positions; p++) {
            s[p] = sqrtf(s[p]);
            top = s[p] > top ? s[p] : top;
        }
        image_scores[b] = top;
    }
    return NM_OK;
}

static void pd_describe(void *state, cJSON *o)
{
    padim *pd = state;
    cJSON_AddNumberToObject(o, "d", pd->d);
    cJSON_AddStringToObject(o, "cov", padim_cov_name(pd->cov));
    if (pd->cov == PADIM_COV_LOWRANK)
        cJSON_AddNumberToObject(o, "rank", pd->rank);
    cJSON_AddNumberToObject(o, "eps", PADIM_EPS);
    cJSON *shapes = cJSON_AddArrayToObject(o, "tap_shapes");
    for (int t = 0; t < pd->n_taps; t++)
        cJSON_AddItemToArray(shapes, cJSON_CreateIntArray(pd->tap_shape[t], 3));
    cJSON_AddNumberToObject(o, "normal_scale", pd->normal_scale);
}

static size_t factor_bytes(const padim *pd)
{
    return pd->positions * padim_gauss_factor_floats(pd->cov, pd->d, pd->rank) * sizeof(float);
}

static size_t weights_bytes(const padim *pd)
{
    return pd->positions * (size_t)(pd->rank + 1) * sizeof(float);
}

static nm_status pd_save(void *state, model_writer *w, nm_error *err)
{
    padim *pd = state;
    nm_status st = model_writer_add(w, "PDCH", pd->channels, (size_t)pd->d * sizeof(int32_t), err);
    if (!st)
        st = model_writer_add(w, "PDMU", pd->g.mean,
                              pd->positions * (size_t)pd->d_pad * sizeof(float), err);
    if (!st)
        st = model_writer_add(w, "PDFA", pd->g.factor, factor_bytes(pd), err);
    if (!st && pd->cov == PADIM_COV_LOWRANK)
        st = model_writer_add(w, "PDWT", pd->g.weights, weights_bytes(pd), err);
    return st;
}

static int json_int(const cJSON *o, const char *key, int dflt)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? (int)v->valuedouble : dflt;
}

/* Settings and shapes from the model's JSON; 0 when they make sense. */
static int load_settings(padim *pd, const cJSON *o)
{
    const cJSON *cov = cJSON_GetObjectItemCaseSensitive(o, "cov");
    const cJSON *shapes = cJSON_GetObjectItemCaseSensitive(o, "tap_shapes");
    const cJSON *scale = cJSON_GetObjectItemCaseSensitive(o, "normal_scale");
    if (!cJSON_IsString(cov) || padim_cov_parse(cov->valuestring, &pd->cov) ||
        !cJSON_IsArray(shapes))
        return -1;
    pd->d = json_int(o, "d", 0);
    pd->rank = pd->cov == PADIM_COV_LOWRANK ? json_int(o, "rank", 0) : 0;
    pd->normal_scale = cJSON_IsNumber(scale) ? (float)scale->valuedouble : 0;
    pd->n_taps = cJSON_GetArraySize(shapes);
    if (pd->n_taps < 1 || pd->n_taps > PADIM_MAX_TAPS)
        return -1;
    int total = 0;
    for (int t = 0; t < pd->n_taps; t++) {
        const cJSON *s = cJSON_GetArrayItem(shapes, t);
        if (cJSON_GetArraySize(s) != 3)
            return -1;
        for (int k = 0; k < 3; k++) {
            const cJSON *v = cJSON_GetArrayItem(s, k);
            if (!cJSON_IsNumber(v) || v->valuedouble < 1 || v->valuedouble > 65536)
                return -1;
            pd->tap_shape[t][k] = (int)v->valuedouble;
        }
        total += pd->tap_shape[t][0];
    }
    if (pd->d < 1 || pd->d > total ||
        (pd->cov == PADIM_COV_LOWRANK && (pd->rank < 1 || pd->rank >= pd->d)))
        return -1;
    pd->d_pad = padim_pad(pd->d);
    pd->positions = (size_t)pd->tap_shape[0][1] * (size_t)pd->tap_shape[0][2];
    /* sizes a file could hold, so the section sizes below cannot wrap */
    double floats = (double)pd->positions *
                    (double)padim_gauss_factor_floats(pd->cov, pd->d, pd->rank);
    return floats < 0x1p60 ? 0 : -1;
}

/* The section with this tag holding exactly `bytes`, or NULL after filling err. */
static const void *section(const model_file *f, const char *tag, size_t bytes, nm_error *err)
{
    const model_section *s = model_file_find(f, tag);
    if (!s)
        nm_fail(err, NM_ERR_FORMAT, "%s: PaDiM model has no %s section", f->path, tag);
    else if (s->size != bytes)
        nm_fail(err, NM_ERR_FORMAT, "%s: PaDiM section %s holds %zu bytes, expected %zu",
                f->path, tag, s->size, bytes);
    return s && s->size == bytes ? s->data : NULL;
}

static nm_status pd_load(const cJSON *o, const model_file *f, void **state, nm_error *err)
{
    padim *pd = calloc(1, sizeof *pd);
    if (!pd)
        return nm_fail(err, NM_ERR_NOMEM, "padim: out of memory");
    nm_status st = NM_OK;
    if (load_settings(pd, o)) {
        st = nm_fail(err, NM_ERR_FORMAT, "%s: invalid PaDiM settings", f->path);
        goto fail;
    }
    int total = 0;
    for (int t = 0; t < pd->n_taps; t++)
        total += pd->tap_shape[t][0];
    /* 64-byte aligned in the file buffer: used in place */
    pd->channels = section(f, "PDCH", (size_t)pd->d * sizeof(int32_t), err);
    pd->g.mean = pd->channels ? section(f, "PDMU", pd->positions * (size_t)pd->d_pad *
                                                        sizeof(float), err) : NULL;
    pd->g.factor = pd->g.mean ? section(f, "PDFA", factor_bytes(pd), err) : NULL;
    if (pd->g.factor && pd->cov == PADIM_COV_LOWRANK)
        pd->g.weights = section(f, "PDWT", weights_bytes(pd), err);
    if (!pd->g.factor || (pd->cov == PADIM_COV_LOWRANK && !pd->g.weights)) {
        st = NM_ERR_FORMAT;
        goto fail;
    }
    for (int k = 0; k < pd->d; k++)
        if (pd->channels[k] < 0 || pd->channels[k] >= total ||
            (k > 0 && pd->channels[k] <= pd->channels[k - 1])) {
            st = nm_fail(err, NM_ERR_FORMAT, "%s: PaDiM channel list is damaged", f->path);
            goto fail;
        }
    pd->g.cov = pd->cov;
    pd->g.d = pd->d;
    pd->g.d_pad = pd->d_pad;
    pd->g.rank = pd->rank;
    pd->g.positions = pd->positions;
    *state = pd;
    return NM_OK;
fail:
    pd_destroy(pd);
    return st;
}

static void pd_bank_size(void *state, size_t *rows, int *dim)
{
    padim *pd = state;
    *rows = pd->positions;
    *dim = pd->d;
}

static float pd_normal_scale(void *state) { return ((padim *)state)->normal_scale; }

const method_ops padim_method = {
    .name = "padim",
    .help = "  d=N            channels kept of the concatenated taps, chosen at random by\n"
            "                 --seed (default 550 for 1792 channels, 100 for 448, else\n"
            "                 550/1792 of them within 100..550)\n"
            "  cov=C          full (default), diag, or lowrank covariance per position\n"
            "  rank=N         cov=lowrank: leading directions kept (default 64)\n",
    .create = pd_create,
    .fit_add = pd_fit_add,
    .fit_finish = pd_fit_finish,
    .grid = pd_grid,
    .score = pd_score,
    .describe = pd_describe,
    .save = pd_save,
    .load = pd_load,
    .bank_size = pd_bank_size,
    .normal_scale = pd_normal_scale,
    .destroy = pd_destroy,
    .image_score_from_map = 1,
};
