/*
 * PatchCore patch features (see patch_features.h for the semantics).
 *
 * The unfolded vector is never built. Pooling window i of a tap averages
 * components j = (c, ky, kx) in [start_i, end_i), and component j at (y, x)
 * is the tap value at (c, y + ky - r, x + kx - r), so window i over a whole
 * grid is a mean of shifted channel planes: a "plane" of sums over rows,
 * which vectorise. Per image:
 *  1. deeper taps (t > 0) are pooled into per_tap_dim planes on their own,
 *     small grids;
 *  2. the first tap's grid is cut into bands of rows; for a band a thread
 *     pools tap 0's planes on those rows and bilinearly resizes the deeper
 *     taps' planes to them (interpolation and pooling are linear and act on
 *     different axes, so pooling first equals patchcore-inspection's
 *     interpolate-then-pool up to rounding), then pools the concatenated
 *     planes to out_dim per position into out [y][x][d];
 *  3. a band's planes are sized to stay in L2, so nothing as large as
 *     dim x H0 x W0 is allocated or streamed through memory.
 * Summation inside a window runs in PyTorch's order (ascending input index
 * from 0), so tap 0's pooling is bit-identical to adaptive_avg_pool1d on
 * the unfolded vector, and results do not depend on the thread count.
 */
#include "methods/patch_features.h"

#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

#ifdef _OPENMP
#include <omp.h>
#endif

/* Positions handled together in the final pooling (see output_tile). */
#define POS_BLOCK 32
/* Outputs per position written together (one 64-byte cache line). */
#define K_BLOCK 16
/* Most bytes of one thread's band of planes: about a core's L2. */
#define BAND_BYTES ((size_t)1024 * 1024)
/* Below about this many float operations a parallel region costs more
 * than it saves (and far more when the cores are shared). */
#define PARALLEL_MIN_WORK ((int64_t)1 << 17)

void patch_feature_config_default(patch_feature_config *cfg)
{
    cfg->patch_size = 3;
    cfg->per_tap_dim = 1024;
    cfg->out_dim = 1024;
}

/* PyTorch's adaptive pooling window of output i: [start, end). 64-bit
 * products because len * out_len can exceed INT_MAX (9216 * 1024 does
 * not, but larger taps would). */
static int pool_start(int i, int len, int out_len)
{
    return (int)(((int64_t)i * len) / out_len);
}

static int pool_end(int i, int len, int out_len)
{
    return (int)(((int64_t)(i + 1) * len + out_len - 1) / out_len);
}

void adaptive_avg_pool1d(const float *in, int len, float *out, int out_len)
{
    for (int i = 0; i < out_len; i++) {
        int s = pool_start(i, len, out_len), e = pool_end(i, len, out_len);
        float sum = 0.0f;
        for (int j = s; j < e; j++)
            sum += in[j];
        out[i] = sum / (float)(e - s);
    }
}

/* ------------------------------------------------------------ validation */

typedef struct tap_shape {
    int c, h, w;
} tap_shape;

static nm_status check_config(const patch_feature_config *cfg, nm_error *err)
{
    if (!cfg)
        return nm_fail(err, NM_ERR_ARG, "patch_features: config is NULL");
    if (cfg->patch_size <= 0 || cfg->patch_size % 2 == 0)
        return nm_fail(err, NM_ERR_ARG,
                       "patch_features: patch_size %d must be odd and > 0 "
                       "(an even window changes the grid size)",
                       cfg->patch_size);
    if (cfg->per_tap_dim <= 0 || cfg->out_dim <= 0)
        return nm_fail(err, NM_ERR_ARG,
                       "patch_features: per_tap_dim %d and out_dim %d must be "
                       "> 0", cfg->per_tap_dim, cfg->out_dim);
    return NM_OK;
}

/* Checks every tap and fills shapes[] and *batch. */
static nm_status check_taps(const patch_feature_config *cfg,
                            const nm_tensor *taps, int n_taps,
                            tap_shape *shapes, int *batch, nm_error *err)
{
    int64_t pp = (int64_t)cfg->patch_size * cfg->patch_size;
    for (int t = 0; t < n_taps; t++) {
        const nm_tensor *tp = &taps[t];
        if (tp->rank != 4)
            return nm_fail(err, NM_ERR_ARG,
                           "patch_features: tap %d has rank %d, expected 4 "
                           "(N, C, H, W)", t, tp->rank);
        for (int k = 0; k < 4; k++) {
            if (tp->dims[k] <= 0 || tp->dims[k] > INT_MAX)
                return nm_fail(err, NM_ERR_ARG,
                               "patch_features: tap %d dim %d is %lld "
                               "(must be 1..INT_MAX)", t, k,
                               (long long)tp->dims[k]);
        }
        if (!tp->data)
            return nm_fail(err, NM_ERR_ARG, "patch_features: tap %d has no "
                           "data", t);
        if (tp->dims[0] != taps[0].dims[0])
            return nm_fail(err, NM_ERR_ARG,
                           "patch_features: tap %d has batch %lld, tap 0 has "
                           "%lld", t, (long long)tp->dims[0],
                           (long long)taps[0].dims[0]);
        if (tp->dims[1] * pp > INT_MAX ||
            tp->dims[2] * tp->dims[3] > INT_MAX)
            return nm_fail(err, NM_ERR_LIMIT,
                           "patch_features: tap %d is too large", t);
        shapes[t] = (tap_shape){(int)tp->dims[1], (int)tp->dims[2],
                                (int)tp->dims[3]};
    }
    if ((int64_t)n_taps * cfg->per_tap_dim > INT_MAX)
        return nm_fail(err, NM_ERR_LIMIT, "patch_features: %d taps x %d dims "
                       "is too large", n_taps, cfg->per_tap_dim);
    *batch = (int)taps[0].dims[0];
    return NM_OK;
}

/* --------------------------------------------------- per-tap pooled planes */

/* Rows [y0, y1) of pooling window i of one image's tap [C][H][W]:
 * plane[y - y0][x] = mean over components j of the window of the tap value
 * at (c_j, y + ky_j - r, x + kx_j - r), zero outside the map (Unfold's
 * padding adds nothing, so those terms are skipped). */
static void pool_window(const float *tap, tap_shape sh, int p, int dim, int i,
                        int y0, int y1, float *plane)
{
    int len = sh.c * p * p, r = p / 2;
    size_t hw = (size_t)sh.h * sh.w, n = (size_t)(y1 - y0) * sh.w;
    memset(plane, 0, n * sizeof *plane);
    int s = pool_start(i, len, dim), e = pool_end(i, len, dim);
    /* component j = (c * p + ky) * p + kx, stepped without divisions */
    int c = s / (p * p), ky = s % (p * p) / p, kx = s % p;
    for (int j = s; j < e; j++) {
        int dy = ky - r, dx = kx - r;
        const float *src = tap + (size_t)c * hw;
        int ya = y0 > -dy ? y0 : -dy, yb = y1 < sh.h - dy ? y1 : sh.h - dy;
        int xa = dx < 0 ? -dx : 0, xb = dx > 0 ? sh.w - dx : sh.w;
        for (int y = ya; y < yb; y++) {
            float *restrict d = plane + (size_t)(y - y0) * sh.w;
            const float *restrict sr = src + (size_t)(y + dy) * sh.w + dx;
#pragma omp simd
            for (int x = xa; x < xb; x++)
                d[x] += sr[x];
        }
        if (++kx == p) {
            kx = 0;
            if (++ky == p) {
                ky = 0;
                c++;
            }
        }
    }
    float cnt = (float)(e - s);
    for (size_t k = 0; k < n; k++)
        plane[k] /= cnt;
}

/* Every window of a whole tap, windows split between threads. */
static void pool_tap(const float *tap, tap_shape sh, int p, int dim,
                     float *planes)
{
    size_t hw = (size_t)sh.h * sh.w;
    int64_t work = ((int64_t)sh.c * p * p + dim) * (int64_t)hw;
#pragma omp parallel for schedule(static) if (work > PARALLEL_MIN_WORK)
    for (int i = 0; i < dim; i++)
        pool_window(tap, sh, p, dim, i, 0, sh.h, planes + i * hw);
}

/* ------------------------------------------------ bilinear plane resizing */

/* torch F.interpolate(mode="bilinear", align_corners=False) taps of one
 * axis (no antialiasing, also when shrinking, as PatchCore calls it). */
typedef struct lin_axis {
    int *i0, *i1;
    float *l0, *l1;
} lin_axis;

static void lin_axis_fill(lin_axis *a, int in, int out)
{
    double scale = (double)in / out;
    for (int o = 0; o < out; o++) {
        double src = scale * (o + 0.5) - 0.5;
        if (src < 0)
            src = 0;
        int i0 = (int)src;
        if (i0 > in - 1)
            i0 = in - 1;
        a->i0[o] = i0;
        a->i1[o] = i0 < in - 1 ? i0 + 1 : i0;
        a->l1[o] = (float)(src - i0);
        a->l0[o] = 1.0f - a->l1[o];
    }
}

/* Both axes of one tap's resize to the first tap's grid, in one block. */
typedef struct resize_plan {
    lin_axis x, y;
    void *mem;
} resize_plan;

static int resize_plan_init(resize_plan *rp, int h, int w, int oh, int ow)
{
    size_t n = (size_t)ow + oh;
    rp->mem = malloc(n * (2 * sizeof(int) + 2 * sizeof(float)));
    if (!rp->mem)
        return -1;
    int *ints = rp->mem;
    float *fl = (float *)(ints + 2 * n);
    rp->x = (lin_axis){ints, ints + ow, fl, fl + ow};
    rp->y = (lin_axis){ints + 2 * ow, ints + 2 * ow + oh, fl + 2 * ow,
                       fl + 2 * ow + oh};
    lin_axis_fill(&rp->x, w, ow);
    lin_axis_fill(&rp->y, h, oh);
    return 0;
}

/* Output rows [y0, y1) of one plane src[h][w] resized to width ow: the
 * source rows they read are interpolated along x once into rows[][ow],
 * then combined along y, i.e. torch's h0 * (w0 a + w1 b) + h1 * (w0 c +
 * w1 d). Source rows used are monotone in y, so they form one range. */
static void resize_band(const resize_plan *rp, const float *src, int w,
                        int ow, int y0, int y1, float *dst, float *rows)
{
    int r0 = rp->y.i0[y0], r1 = rp->y.i1[y1 - 1] + 1;
    for (int y = r0; y < r1; y++) {
        const float *s = src + (size_t)y * w;
        float *d = rows + (size_t)(y - r0) * ow;
        for (int x = 0; x < ow; x++)
            d[x] = rp->x.l0[x] * s[rp->x.i0[x]] + rp->x.l1[x] * s[rp->x.i1[x]];
    }
    for (int y = y0; y < y1; y++) {
        const float *a = rows + (size_t)(rp->y.i0[y] - r0) * ow;
        const float *b = rows + (size_t)(rp->y.i1[y] - r0) * ow;
        float l0 = rp->y.l0[y], l1 = rp->y.l1[y];
        float *d = dst + (size_t)(y - y0) * ow;
#pragma omp simd
        for (int x = 0; x < ow; x++)
            d[x] = l0 * a[x] + l1 * b[x];
    }
}

/* ---------------------------------------------------------- final pooling */

/* out[pos][k] for one tile of np positions x nk outputs from k0: sums go
 * into tile[k][pos] (plane reads are contiguous), then each position's nk
 * outputs are stored as one contiguous run. Writing out column by column
 * instead would hit addresses out_dim floats apart, which for out_dim 1024
 * all fall into the same L1 set. planes[q] is at band + q * stride. */
static void output_tile(const float *band, size_t stride, int len,
                        int out_dim, int p0, int np, int k0, int nk,
                        float *out)
{
    float tile[K_BLOCK][POS_BLOCK];
    for (int kk = 0; kk < nk; kk++) {
        int k = k0 + kk;
        int s = pool_start(k, len, out_dim), e = pool_end(k, len, out_dim);
        float *acc = tile[kk];
        for (int j = 0; j < np; j++)
            acc[j] = 0.0f;
        for (int q = s; q < e; q++) {
            const float *pl = band + q * stride + p0;
#pragma omp simd
            for (int j = 0; j < np; j++)
                acc[j] += pl[j];
        }
        float n = (float)(e - s);
        for (int j = 0; j < np; j++)
            acc[j] /= n;
    }
    for (int j = 0; j < np; j++) {
        float *o = out + (size_t)(p0 + j) * out_dim + k0;
        for (int kk = 0; kk < nk; kk++)
            o[kk] = tile[kk][j];
    }
}

/* --------------------------------------------------------------- driver */

/* Everything one call needs besides the taps and out. Per image, deeper
 * taps are pooled whole on their own (small) grids; then the first tap's
 * grid is processed in bands of rows, each thread with its own band
 * buffer holding n_taps * dim planes of band_h rows: pooled tap 0 rows,
 * resized rows of the others. A band fits in L2, so nothing of size
 * dim x H0 x W0 is ever allocated or streamed through memory. */
typedef struct pf_work {
    const patch_feature_config *cfg;
    int n_taps;
    const tap_shape *sh;
    float **pooled;       /* [n_taps]: dim * H_t * W_t, NULL for tap 0 */
    resize_plan *plans;   /* [n_taps]: tap t -> tap 0 grid */
    int n_bands;          /* the first tap's rows split evenly */
    int band_h;           /* most rows in a band */
    size_t band_floats;   /* per thread: planes, then resize rows */
    size_t rows_offset;
    float *band_all;
} pf_work;

static int max_threads(void)
{
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

static int thread_id(void)
{
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

static void work_free(pf_work *w)
{
    for (int t = 0; t < w->n_taps; t++) {
        if (w->pooled)
            free(w->pooled[t]);
        if (w->plans)
            free(w->plans[t].mem);
    }
    free(w->pooled);
    free(w->plans);
    free(w->band_all);
}

/* Number of bands: each at most about BAND_BYTES of planes, and a
 * multiple of the thread count (when the grid has rows enough), so that
 * with rows split evenly every thread gets the same work. */
static int choose_bands(const tap_shape *sh, int n_taps, int dim, int threads)
{
    size_t row_bytes = (size_t)n_taps * dim * sh[0].w * sizeof(float);
    int max_h = (int)(BAND_BYTES / row_bytes);
    if (max_h < 1)
        max_h = 1;
    int64_t per_round = (int64_t)threads * max_h;
    int64_t n = threads * ((sh[0].h + per_round - 1) / per_round);
    return (int)(n < sh[0].h ? n : sh[0].h);
}

/* Rows of band b: [b * H / n, (b + 1) * H / n). */
static int band_row(int b, int n_bands, int h)
{
    return (int)((int64_t)b * h / n_bands);
}

static nm_status work_alloc(pf_work *w, const patch_feature_config *cfg,
                            const tap_shape *sh, int n_taps, nm_error *err)
{
    int dim = cfg->per_tap_dim, threads = max_threads();
    *w = (pf_work){cfg, n_taps, sh, NULL, NULL, 0, 0, 0, 0, NULL};
    w->pooled = calloc((size_t)n_taps, sizeof *w->pooled);
    w->plans = calloc((size_t)n_taps, sizeof *w->plans);
    if (!w->pooled || !w->plans)
        goto nomem;
    w->n_bands = choose_bands(sh, n_taps, dim, threads);
    w->band_h = (sh[0].h + w->n_bands - 1) / w->n_bands;
    /* resize rows: a band reads at most floor(band_h * H_t / H_0) + 3 */
    size_t rows = 0;
    for (int t = 1; t < n_taps; t++) {
        size_t need = (size_t)w->band_h * sh[t].h / sh[0].h + 3;
        rows = need > rows ? need : rows;
        w->pooled[t] = malloc((size_t)dim * sh[t].h * sh[t].w *
                              sizeof(float));
        if (!w->pooled[t] ||
            resize_plan_init(&w->plans[t], sh[t].h, sh[t].w, sh[0].h,
                             sh[0].w) != 0)
            goto nomem;
    }
    w->rows_offset = (size_t)n_taps * dim * w->band_h * sh[0].w;
    w->band_floats = w->rows_offset + rows * sh[0].w;
    w->band_all = malloc((size_t)threads * w->band_floats * sizeof(float));
    if (!w->band_all)
        goto nomem;
    return NM_OK;
nomem:
    work_free(w);
    return nm_fail(err, NM_ERR_NOMEM, "patch_features: out of memory for "
                   "scratch");
}

/* Rows [y0, y1) of one image: fill the band planes, pool them to out. */
static void process_band(const pf_work *w, const float *const *img, int y0,
                         int y1, float *band, float *out)
{
    int dim = w->cfg->per_tap_dim, out_dim = w->cfg->out_dim;
    int w0 = w->sh[0].w, np_band = (y1 - y0) * w0;
    size_t stride = (size_t)w->band_h * w0; /* floats per band plane */
    for (int i = 0; i < dim; i++)
        pool_window(img[0], w->sh[0], w->cfg->patch_size, dim, i, y0, y1,
                    band + i * stride);
    for (int t = 1; t < w->n_taps; t++) {
        size_t hw = (size_t)w->sh[t].h * w->sh[t].w;
        for (int i = 0; i < dim; i++)
            resize_band(&w->plans[t], w->pooled[t] + i * hw, w->sh[t].w, w0,
                        y0, y1, band + ((size_t)t * dim + i) * stride,
                        band + w->rows_offset);
    }
    int len = w->n_taps * dim;
    float *o = out + (size_t)y0 * w0 * out_dim;
    for (int p0 = 0; p0 < np_band; p0 += POS_BLOCK) {
        int np = np_band - p0 < POS_BLOCK ? np_band - p0 : POS_BLOCK;
        for (int k0 = 0; k0 < out_dim; k0 += K_BLOCK) {
            int nk = out_dim - k0 < K_BLOCK ? out_dim - k0 : K_BLOCK;
            output_tile(band, stride, len, out_dim, p0, np, k0, nk, o);
        }
    }
}

static void process_image(const pf_work *w, const float *const *img,
                          float *out)
{
    int p = w->cfg->patch_size, dim = w->cfg->per_tap_dim;
    for (int t = 1; t < w->n_taps; t++)
        pool_tap(img[t], w->sh[t], p, dim, w->pooled[t]);
    int h0 = w->sh[0].h, n_bands = w->n_bands;
    int64_t len = (int64_t)w->n_taps * dim, hw0 = (int64_t)h0 * w->sh[0].w;
    int64_t work = ((int64_t)w->sh[0].c * p * p + len + w->cfg->out_dim) * hw0;
#pragma omp parallel for schedule(static) if (work > PARALLEL_MIN_WORK)
    for (int b = 0; b < n_bands; b++) {
        int y0 = band_row(b, n_bands, h0), y1 = band_row(b + 1, n_bands, h0);
        float *band = w->band_all + (size_t)thread_id() * w->band_floats;
        process_band(w, img, y0, y1, band, out);
    }
}

nm_status patch_features_compute(const patch_feature_config *cfg,
                                 const nm_tensor *taps, int n_taps, float *out,
                                 nm_error *err)
{
    nm_status st = check_config(cfg, err);
    if (st != NM_OK)
        return st;
    if (!taps || n_taps <= 0 || !out)
        return nm_fail(err, NM_ERR_ARG, "patch_features: need taps (got %d) "
                       "and an output buffer", n_taps);
    tap_shape *sh = malloc((size_t)n_taps * sizeof *sh);
    const float **img = malloc((size_t)n_taps * sizeof *img);
    if (!sh || !img) {
        free(sh);
        free(img);
        return nm_fail(err, NM_ERR_NOMEM, "patch_features: out of memory");
    }
    int batch = 0;
    pf_work w;
    st = check_taps(cfg, taps, n_taps, sh, &batch, err);
    if (st == NM_OK)
        st = work_alloc(&w, cfg, sh, n_taps, err);
    if (st == NM_OK) {
        size_t out_img = (size_t)sh[0].h * sh[0].w * cfg->out_dim;
        for (int n = 0; n < batch; n++) {
            for (int t = 0; t < n_taps; t++)
                img[t] = taps[t].data +
                         (size_t)n * sh[t].c * sh[t].h * sh[t].w;
            process_image(&w, img, out + n * out_img);
        }
        work_free(&w);
    }
    free(sh);
    free(img);
    return st;
}
