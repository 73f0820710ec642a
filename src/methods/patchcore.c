/*
 * PatchCore (Roth et al., CVPR 2022), following amazon-science's
 * patchcore-inspection: locally aware patch features from two or more taps,
 * a memory bank subsampled by approximate greedy k-center coreset, and the
 * squared Euclidean distance of each test patch to its nearest bank entry
 * (faiss IndexFlatL2's measure) as the patch score; the image score is the
 * largest patch score. `distance=euclidean` gives anomalib's unsquared
 * distance instead.
 */
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "methods/coreset.h"
#include "methods/knn.h"
#include "methods/method.h"
#include "methods/patch_features.h"

/* Largest settings fit accepts; load refuses anything else too. */
#define PC_MAX_PATCH 15
#define PC_MAX_DIM 65536

typedef struct patchcore {
    /* settings */
    double coreset_fraction;
    int k;
    int euclidean;
    int reweight; /* anomalib's Eq. 7 support size; 0 = plain max */
    patch_feature_config pf;
    /* fit: all training patch features, rows of pf.out_dim */
    float *features;
    size_t n_rows, cap_rows;
    /* the memory bank: owned after fit, borrowed from the model file after load */
    float *bank_owned;
    const float *bank;
    size_t bank_rows;
    float normal_scale;
    float coreset_radius;
    knn_index *index;
    /* the subspace whose distances bound the true ones (knn.h): fitted with
     * the bank and stored with it; NULL = brute force or not yet fitted */
    int search_dims; /* -1: automatic; 0: brute force */
    knn_projection *projection;
    /* scoring scratch, grown on demand */
    float *scratch_features;
    size_t scratch_rows;
    float *scratch_dist;
} patchcore;

static void pc_destroy(void *state)
{
    patchcore *pc = state;
    if (!pc)
        return;
    knn_index_free(pc->index);
    knn_projection_free(pc->projection);
    free(pc->features);
    free(pc->bank_owned);
    free(pc->scratch_features);
    free(pc->scratch_dist);
    free(pc);
}

static nm_status parse_int(const nm_param *p, int lo, int hi, int *out, nm_error *err)
{
    char *end;
    long v = strtol(p->value, &end, 10);
    if (end == p->value || *end || v < lo || v > hi)
        return nm_fail(err, NM_ERR_ARG, "patchcore: %s=%s: expected an integer %d..%d",
                       p->key, p->value, lo, hi);
    *out = (int)v;
    return NM_OK;
}

static nm_status pc_create(const nm_param *params, int n_params, void **state,
                           nm_error *err)
{
    patchcore *pc = calloc(1, sizeof *pc);
    if (!pc)
        return nm_fail(err, NM_ERR_NOMEM, "patchcore: out of memory");
    pc->coreset_fraction = 0.1;
    pc->k = 1;
    pc->search_dims = -1;
    patch_feature_config_default(&pc->pf);
    nm_status st = NM_OK;
    for (int i = 0; i < n_params && !st; i++) {
        const nm_param *p = &params[i];
        if (strcmp(p->key, "coreset") == 0) {
            char *end;
            double f = strtod(p->value, &end);
            if (*end == '%') {
                f /= 100.0;
                end++;
            }
            if (end == p->value || *end || !(f > 0 && f <= 1))
                st = nm_fail(err, NM_ERR_ARG,
                             "patchcore: coreset=%s: expected a fraction in (0, 1] "
                             "(e.g. 0.1 or 10%%)", p->value);
            pc->coreset_fraction = f;
        } else if (strcmp(p->key, "k") == 0) {
            st = parse_int(p, 1, 64, &pc->k, err);
        } else if (strcmp(p->key, "reweight") == 0) {
            st = parse_int(p, 0, 64, &pc->reweight, err);
        } else if (strcmp(p->key, "patch") == 0) {
            st = parse_int(p, 1, PC_MAX_PATCH, &pc->pf.patch_size, err);
            if (!st && pc->pf.patch_size % 2 == 0)
                st = nm_fail(err, NM_ERR_ARG, "patchcore: patch=%s: must be odd", p->value);
        } else if (strcmp(p->key, "dim") == 0) {
            st = parse_int(p, 1, PC_MAX_DIM, &pc->pf.out_dim, err);
        } else if (strcmp(p->key, "tap_dim") == 0) {
            st = parse_int(p, 1, PC_MAX_DIM, &pc->pf.per_tap_dim, err);
        } else if (strcmp(p->key, "search_dims") == 0) {
            st = parse_int(p, 0, PC_MAX_DIM, &pc->search_dims, err);
        } else if (strcmp(p->key, "distance") == 0) {
            if (strcmp(p->value, "squared") == 0)
                pc->euclidean = 0;
            else if (strcmp(p->value, "euclidean") == 0)
                pc->euclidean = 1;
            else
                st = nm_fail(err, NM_ERR_ARG,
                             "patchcore: distance=%s: expected 'squared' or 'euclidean'",
                             p->value);
        } else {
            st = nm_fail(err, NM_ERR_ARG, "patchcore: unknown setting '%s' "
                                          "(see `nominal fit --help`)", p->key);
        }
    }
    if (st) {
        pc_destroy(pc);
        return st;
    }
    *state = pc;
    return NM_OK;
}

static void pc_grid(void *state, const nm_tensor *taps, int n_taps, int *w, int *h)
{
    (void)state;
    (void)n_taps;
    *h = (int)taps[0].dims[2];
    *w = (int)taps[0].dims[3];
}

static size_t patches_of(const nm_tensor *taps)
{
    return (size_t)taps[0].dims[0] * (size_t)taps[0].dims[2] * (size_t)taps[0].dims[3];
}

static nm_status pc_fit_add(void *state, const method_context *ctx, const nm_tensor *taps,
                            int n_taps, nm_error *err)
{
    (void)ctx;
    patchcore *pc = state;
    size_t rows = patches_of(taps);
    size_t dim = (size_t)pc->pf.out_dim;
    if (pc->n_rows + rows > pc->cap_rows) {
        size_t cap = pc->cap_rows ? pc->cap_rows : rows * 16;
        while (cap < pc->n_rows + rows)
            cap *= 2;
        float *p = realloc(pc->features, cap * dim * sizeof(float));
        if (!p)
            return nm_fail(err, NM_ERR_NOMEM,
                           "patchcore: out of memory holding %zu training patches", cap);
        pc->features = p;
        pc->cap_rows = cap;
    }
    nm_status st = patch_features_compute(&pc->pf, taps, n_taps,
                                          pc->features + pc->n_rows * dim, err);
    if (st)
        return st;
    pc->n_rows += rows;
    return NM_OK;
}

static nm_status ensure_scratch(patchcore *pc, size_t rows, nm_error *err)
{
    if (rows <= pc->scratch_rows)
        return NM_OK;
    free(pc->scratch_features);
    free(pc->scratch_dist);
    pc->scratch_features = malloc(rows * (size_t)pc->pf.out_dim * sizeof(float));
    pc->scratch_dist = malloc(rows * (size_t)pc->k * sizeof(float));
    pc->scratch_rows = (pc->scratch_features && pc->scratch_dist) ? rows : 0;
    if (!pc->scratch_rows)
        return nm_fail(err, NM_ERR_NOMEM, "patchcore: out of memory");
    return NM_OK;
}

/* The search index over the bank, with the stored projection if the model
 * has one; a projection fitted here is kept so that save stores it. */
static nm_status ensure_index(patchcore *pc, const method_context *ctx, nm_error *err)
{
    if (pc->index)
        return NM_OK;
    knn_options o;
    knn_options_default(&o);
    o.projection_dims = pc->search_dims;
    o.projection = pc->projection;
    nm_status st = knn_index_create(ctx->backend, pc->bank, (int64_t)pc->bank_rows,
                                    pc->pf.out_dim, &o, &pc->index, err);
    const knn_projection *p = st ? NULL : knn_index_projection(pc->index);
    if (p && !pc->projection)
        st = knn_projection_copy(p->mean, p->basis, p->dim, p->dims, &pc->projection, err);
    return st;
}

/* Patch scores for rows of features: mean of the k nearest distances. */
static nm_status score_rows(patchcore *pc, const method_context *ctx, const float *rows,
                            size_t n, float *scores, nm_error *err)
{
    nm_status st = ensure_index(pc, ctx, err);
    if (!st)
        st = knn_search(pc->index, rows, (int64_t)n, pc->k, pc->scratch_dist, err);
    if (st)
        return st;
    for (size_t i = 0; i < n; i++) {
        double s = 0;
        for (int j = 0; j < pc->k; j++) {
            float d = pc->scratch_dist[i * (size_t)pc->k + (size_t)j];
            s += pc->euclidean ? sqrt(d) : d;
        }
        scores[i] = (float)(s / pc->k);
    }
    return NM_OK;
}

static int compare_floats(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* A typical normal patch score: the 99th percentile over a sample of
 * training patches scored against the finished bank (patches that made it
 * into the bank score 0, the rest show the bank's coverage). */
static nm_status estimate_normal_scale(patchcore *pc, const method_context *ctx,
                                       nm_error *err)
{
    size_t sample = pc->n_rows < 2048 ? pc->n_rows : 2048;
    size_t dim = (size_t)pc->pf.out_dim;
    nm_status st = ensure_scratch(pc, sample, err);
    if (st)
        return st;
    uint64_t x = ctx->seed * 0x9E3779B97F4A7C15ull + 12345;
    for (size_t i = 0; i < sample; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        size_t r = sample == pc->n_rows ? i : (size_t)(x % pc->n_rows);
        memcpy(pc->scratch_features + i * dim, pc->features + r * dim, dim * sizeof(float));
    }
    float *scores = malloc(sample * sizeof(float));
    if (!scores)
        return nm_fail(err, NM_ERR_NOMEM, "patchcore: out of memory");
    st = score_rows(pc, ctx, pc->scratch_features, sample, scores, err);
    if (!st) {
        qsort(scores, sample, sizeof(float), compare_floats);
        pc->normal_scale = scores[(size_t)(0.99 * (double)(sample - 1))];
    }
    free(scores);
    return st;
}

static void coreset_progress(void *c, size_t done, size_t total)
{
    const method_context *ctx = c;
    if (ctx->progress)
        ctx->progress(ctx->progress_ctx, "coreset", done, total);
}

static nm_status pc_fit_finish(void *state, const method_context *ctx, nm_error *err)
{
    patchcore *pc = state;
    if (pc->n_rows == 0)
        return nm_fail(err, NM_ERR_ARG, "patchcore: no training patches");
    coreset_options co;
    coreset_options_default(&co);
    co.fraction = pc->coreset_fraction;
    co.seed = ctx->seed;
    co.progress = coreset_progress;
    co.progress_ctx = (void *)ctx;
    size_t *idx = NULL, count = 0;
    nm_status st = coreset_greedy_select(pc->features, pc->n_rows, pc->pf.out_dim, &co,
                                         &idx, &count, &pc->coreset_radius, err);
    if (st)
        return st;
    size_t dim = (size_t)pc->pf.out_dim;
    if (count == pc->n_rows) {
        /* the whole set (coreset=1): the bank is the feature array itself,
         * in order; no second copy of it */
        free(idx);
        pc->bank_owned = pc->features;
        pc->features = NULL;
    } else {
        pc->bank_owned = malloc(count * dim * sizeof(float));
        if (!pc->bank_owned) {
            free(idx);
            return nm_fail(err, NM_ERR_NOMEM, "patchcore: out of memory for the bank");
        }
        for (size_t i = 0; i < count; i++)
            memcpy(pc->bank_owned + i * dim, pc->features + idx[i] * dim, dim * sizeof(float));
        free(idx);
    }
    pc->bank = pc->bank_owned;
    pc->bank_rows = count;
    st = pc->features ? estimate_normal_scale(pc, ctx, err) : ensure_index(pc, ctx, err);
    free(pc->features);
    pc->features = NULL;
    pc->n_rows = pc->cap_rows = 0;
    return st;
}

static double squared_distance(const float *a, const float *b, int dim)
{
    double s = 0;
    for (int i = 0; i < dim; i++) {
        double d = (double)a[i] - (double)b[i];
        s += d * d;
    }
    return s;
}

/* The `count` bank rows nearest to row q (q itself first), ascending. */
static void bank_neighbours(const patchcore *pc, const float *q, int count, size_t *out,
                            double *out_d)
{
    int n = 0;
    for (size_t r = 0; r < pc->bank_rows; r++) {
        double d = squared_distance(q, pc->bank + r * (size_t)pc->pf.out_dim, pc->pf.out_dim);
        if (n == count && d >= out_d[n - 1])
            continue;
        int i = n < count ? n++ : n - 1;
        while (i > 0 && out_d[i - 1] > d) {
            out_d[i] = out_d[i - 1];
            out[i] = out[i - 1];
            i--;
        }
        out_d[i] = d;
        out[i] = r;
    }
}

/* anomalib's re-weighting (PatchCore paper, Eq. 7): scale the image score
 * by 1 - softmax of the most anomalous patch's distances to the bank
 * neighbourhood of its nearest bank entry, taken at that entry. A patch
 * whose nearest entry sits in a dense region of the bank is trusted more. */
static float reweighted_score(const patchcore *pc, const float *feature, float score)
{
    size_t nn;
    double nn_d;
    bank_neighbours(pc, feature, 1, &nn, &nn_d);
    size_t support[64];
    double support_d[64];
    int count = pc->reweight < (int)pc->bank_rows ? pc->reweight : (int)pc->bank_rows;
    bank_neighbours(pc, pc->bank + nn * (size_t)pc->pf.out_dim, count, support, support_d);
    double d[64], top = -INFINITY, sum = 0;
    for (int i = 0; i < count; i++) {
        d[i] = sqrt(squared_distance(feature, pc->bank + support[i] * (size_t)pc->pf.out_dim,
                                     pc->pf.out_dim));
        top = fmax(top, d[i]);
    }
    for (int i = 0; i < count; i++)
        sum += exp(d[i] - top);
    return (float)((1.0 - exp(d[0] - top) / sum) * score);
}

static nm_status pc_score(void *state, const method_context *ctx, const nm_tensor *taps,
                          int n_taps, float *patch_scores, float *image_scores,
                          nm_error *err)
{
    patchcore *pc = state;
    size_t rows = patches_of(taps);
    nm_status st = ensure_scratch(pc, rows, err);
    if (!st)
        st = patch_features_compute(&pc->pf, taps, n_taps, pc->scratch_features, err);
    if (!st)
        st = score_rows(pc, ctx, pc->scratch_features, rows, patch_scores, err);
    if (st)
        return st;
    size_t per = rows / (size_t)taps[0].dims[0];
    for (int64_t n = 0; n < taps[0].dims[0]; n++) {
        size_t best = 0;
        for (size_t i = 1; i < per; i++)
            if (patch_scores[(size_t)n * per + i] > patch_scores[(size_t)n * per + best])
                best = i;
        float m = patch_scores[(size_t)n * per + best];
        if (pc->reweight > 1) /* one neighbour: anomalib also keeps the max */
            m = reweighted_score(pc, pc->scratch_features +
                                         ((size_t)n * per + best) * (size_t)pc->pf.out_dim, m);
        image_scores[n] = m;
    }
    return NM_OK;
}

static void pc_describe(void *state, cJSON *o)
{
    patchcore *pc = state;
    cJSON_AddNumberToObject(o, "coreset", pc->coreset_fraction);
    cJSON_AddNumberToObject(o, "k", pc->k);
    cJSON_AddStringToObject(o, "distance", pc->euclidean ? "euclidean" : "squared");
    cJSON_AddNumberToObject(o, "reweight", pc->reweight);
    cJSON_AddNumberToObject(o, "patch", pc->pf.patch_size);
    cJSON_AddNumberToObject(o, "tap_dim", pc->pf.per_tap_dim);
    cJSON_AddNumberToObject(o, "dim", pc->pf.out_dim);
    cJSON_AddNumberToObject(o, "bank_rows", (double)pc->bank_rows);
    cJSON_AddNumberToObject(o, "normal_scale", pc->normal_scale);
    cJSON_AddNumberToObject(o, "coreset_radius", pc->coreset_radius);
    cJSON_AddNumberToObject(o, "search_dims", pc->projection ? pc->projection->dims : 0);
}

static double json_number(const cJSON *o, const char *key, double dflt)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : dflt;
}

/* An int setting from the model file; out of int range (converting would
 * be undefined) reads as -1, which the checks below refuse. */
static int json_int_setting(const cJSON *o, const char *key, int dflt)
{
    double v = json_number(o, key, dflt);
    return v >= INT_MIN && v <= INT_MAX ? (int)v : -1;
}

static nm_status pc_save(void *state, model_writer *w, nm_error *err)
{
    patchcore *pc = state;
    size_t dim = (size_t)pc->pf.out_dim;
    nm_status st = model_writer_add(w, "BANK", pc->bank, pc->bank_rows * dim * sizeof(float),
                                    err);
    if (!st && pc->projection)
        st = model_writer_add(w, "PMEA", pc->projection->mean, dim * sizeof(float), err);
    if (!st && pc->projection)
        st = model_writer_add(w, "PBAS", pc->projection->basis,
                              (size_t)pc->projection->dims * dim * sizeof(float), err);
    return st;
}

/* The stored projection, if the model has one. Files from before
 * projections have none (and search_dims reads 0 from the zeroed state):
 * they are searched by the plain GEMM, as when they were written. */
static nm_status load_projection(patchcore *pc, const cJSON *o, const model_file *f,
                                 nm_error *err)
{
    int dims = json_int_setting(o, "search_dims", 0);
    const model_section *mean = model_file_find(f, "PMEA");
    const model_section *basis = model_file_find(f, "PBAS");
    size_t dim = (size_t)pc->pf.out_dim;
    if (dims == 0 && !mean && !basis)
        return NM_OK;
    if (dims < 1 || (size_t)dims > dim || !mean || !basis ||
        mean->size != dim * sizeof(float) || basis->size != (size_t)dims * dim * sizeof(float))
        return nm_fail(err, NM_ERR_FORMAT,
                       "%s: PatchCore search projection (PMEA/PBAS) does not match "
                       "search_dims %d and dim %zu", f->path, dims, dim);
    return knn_projection_copy((const float *)mean->data, (const float *)basis->data,
                               (int)dim, dims, &pc->projection, err);
}

static nm_status pc_load(const cJSON *o, const model_file *f, void **state, nm_error *err)
{
    patchcore *pc = calloc(1, sizeof *pc);
    if (!pc)
        return nm_fail(err, NM_ERR_NOMEM, "patchcore: out of memory");
    pc->coreset_fraction = json_number(o, "coreset", 0.1);
    pc->k = json_int_setting(o, "k", 1);
    pc->reweight = json_int_setting(o, "reweight", 0);
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(o, "distance");
    pc->euclidean = cJSON_IsString(d) && strcmp(d->valuestring, "euclidean") == 0;
    pc->pf.patch_size = json_int_setting(o, "patch", 3);
    pc->pf.per_tap_dim = json_int_setting(o, "tap_dim", 1024);
    pc->pf.out_dim = json_int_setting(o, "dim", 1024);
    double rows = json_number(o, "bank_rows", 0);
    pc->bank_rows = rows >= 1 && rows <= 9007199254740992.0 /* 2^53 */ ? (size_t)rows : 0;
    /* rows * dim * 4 must not wrap around to match a small BANK */
    size_t bank_bytes = 0;
    int bank_fits = pc->pf.out_dim > 0 &&
                    !__builtin_mul_overflow(pc->bank_rows, (size_t)pc->pf.out_dim, &bank_bytes) &&
                    !__builtin_mul_overflow(bank_bytes, sizeof(float), &bank_bytes);
    pc->normal_scale = (float)json_number(o, "normal_scale", 0);
    pc->coreset_radius = (float)json_number(o, "coreset_radius", 0);
    const model_section *bank = model_file_find(f, "BANK");
    nm_status st = NM_OK;
    if (pc->k < 1 || pc->k > 64 || pc->reweight < 0 || pc->reweight > 64 || pc->pf.out_dim < 1 ||
        pc->pf.out_dim > PC_MAX_DIM || pc->pf.patch_size < 1 || pc->pf.patch_size > PC_MAX_PATCH ||
        pc->pf.patch_size % 2 == 0 || pc->pf.per_tap_dim < 1 || pc->pf.per_tap_dim > PC_MAX_DIM)
        st = nm_fail(err, NM_ERR_FORMAT, "%s: invalid PatchCore settings", f->path);
    else if (!bank)
        st = nm_fail(err, NM_ERR_FORMAT, "%s: PatchCore model has no BANK section", f->path);
    else if (pc->bank_rows == 0 || (size_t)pc->k > pc->bank_rows || !bank_fits ||
             bank->size != bank_bytes)
        st = nm_fail(err, NM_ERR_FORMAT,
                     "%s: BANK holds %zu bytes, expected %.17g rows of %d floats", f->path,
                     bank->size, rows, pc->pf.out_dim);
    if (!st)
        st = load_projection(pc, o, f, err);
    if (st) {
        pc_destroy(pc);
        return st;
    }
    pc->bank = (const float *)bank->data; /* 64-byte aligned in the file buffer */
    *state = pc;
    return NM_OK;
}

static void pc_bank_size(void *state, size_t *rows, int *dim)
{
    patchcore *pc = state;
    *rows = pc->bank_rows;
    *dim = pc->pf.out_dim;
}

static float pc_normal_scale(void *state) { return ((patchcore *)state)->normal_scale; }

const method_ops patchcore_method = {
    .name = "patchcore",
    .help = "  coreset=F      memory bank fraction, 0.01..1 or 1%..100% (default 0.1)\n"
            "  k=N            neighbours averaged per patch score (default 1)\n"
            "  distance=D     squared (patchcore-inspection, default) or euclidean (anomalib)\n"
            "  reweight=N     anomalib's Eq. 7 image-score re-weighting over N bank\n"
            "                 neighbours (anomalib uses 9; default 0 = plain maximum)\n"
            "  patch=N        neighbourhood size for local aggregation (default 3)\n"
            "  tap_dim=N      per-tap feature size after pooling (default 1024)\n"
            "  dim=N          final patch feature size (default 1024)\n"
            "  search_dims=N  width of the subspace whose distances prune the exact\n"
            "                 nearest-neighbour search (default: 128 for banks of\n"
            "                 1024+ rows of 256+ values; 0 = plain GEMM search)\n",
    .create = pc_create,
    .fit_add = pc_fit_add,
    .fit_finish = pc_fit_finish,
    .grid = pc_grid,
    .score = pc_score,
    .describe = pc_describe,
    .save = pc_save,
    .load = pc_load,
    .bank_size = pc_bank_size,
    .normal_scale = pc_normal_scale,
    .destroy = pc_destroy,
};
