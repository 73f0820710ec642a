/*
 * Anomaly maps: resizing, scipy-equal Gaussian blur, the render chain back
 * to the original image, and colour rendering (see anomaly_map.h).
 *
 * map_resize is separable and decides per axis:
 *  - enlarging or equal size: torch bilinear, align_corners=False (source
 *    index (i + 0.5) * in/out - 0.5, clamped at 0, two taps);
 *  - shrinking: PIL's BILINEAR resample in float without any rounding: a
 *    triangle filter whose support is stretched by in/out around
 *    (i + 0.5) * in/out, weights normalised to sum 1, so every source
 *    sample contributes (a 900 -> 256 map is averaged, not point-sampled).
 * When enlarging both definitions agree (PIL's normalisation at the border
 * equals torch's clamping), so the result is also PIL mode "F" resize.
 *
 * map_gaussian_blur follows scipy.ndimage.gaussian_filter: radius
 * int(4 * sigma + 0.5), weights exp(-x^2 / (2 sigma^2)) normalised, axis 0
 * (rows) first then axis 1, each pass rounded to float32, 'reflect'
 * boundary = half-sample symmetric extension repeated with period 2n, so
 * it stays correct when the radius exceeds the map.
 */
#include "methods/anomaly_map.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

#ifdef _OPENMP
#include <omp.h>
#endif

/* Larger blur radii only make sense for maps much bigger than any image. */
#define MAX_BLUR_RADIUS (1 << 20)
/* Maps are at most this many samples (same order as image limits). */
#define MAX_MAP_SAMPLES ((int64_t)1 << 31)
/* Below about this many float operations a parallel region costs more
 * than it saves (and far more when the cores are shared). */
#define PARALLEL_MIN_WORK ((int64_t)1 << 17)

/* fn names the public function in the message. */
static nm_status check_size(const char *fn, const char *what, int w, int h,
                            nm_error *err)
{
    if (w <= 0 || h <= 0)
        return nm_fail(err, NM_ERR_ARG, "%s: %s size %dx%d must be positive",
                       fn, what, w, h);
    if ((int64_t)w * h > MAX_MAP_SAMPLES)
        return nm_fail(err, NM_ERR_LIMIT, "%s: %s size %dx%d is too large",
                       fn, what, w, h);
    return NM_OK;
}

/* -------------------------------------------------------------- resizing */

/* Taps of one axis: output o reads src[first[o] .. first[o] + count[o])
 * with weights w[o * ksize ...]. */
typedef struct axis_taps {
    int ksize;
    int *first, *count;
    float *w;
} axis_taps;

static void axis_taps_free(axis_taps *a)
{
    free(a->first);
    free(a->count);
    free(a->w);
}

static double triangle(double x)
{
    x = fabs(x);
    return x < 1.0 ? 1.0 - x : 0.0;
}

/* torch's bilinear source index for output o, as two taps. */
static void linear_taps(int in, int out, int o, int *first, int *count,
                        float *w)
{
    double src = (double)in / out * (o + 0.5) - 0.5;
    if (src < 0)
        src = 0;
    int i0 = (int)src;
    if (i0 >= in - 1) { /* also in == 1: a single tap */
        *first = in - 1;
        *count = 1;
        w[0] = 1.0f;
        return;
    }
    float l1 = (float)(src - i0);
    *first = i0;
    *count = 2;
    w[0] = 1.0f - l1;
    w[1] = l1;
}

/* PIL's precompute_coeffs for the bilinear filter with scale = in/out > 1. */
static void triangle_taps(int in, int out, int o, int *first, int *count,
                          float *w)
{
    double scale = (double)in / out;
    double center = (o + 0.5) * scale;
    int lo = (int)(center - scale + 0.5), hi = (int)(center + scale + 0.5);
    if (lo < 0)
        lo = 0;
    if (hi > in)
        hi = in;
    double sum = 0;
    for (int x = lo; x < hi; x++)
        sum += triangle((x - center + 0.5) / scale);
    *first = lo;
    *count = hi - lo;
    for (int x = lo; x < hi; x++)
        w[x - lo] = sum != 0
                        ? (float)(triangle((x - center + 0.5) / scale) / sum)
                        : 0.0f;
}

static int axis_taps_init(axis_taps *a, int in, int out)
{
    double scale = (double)in / out;
    /* ceil(support) * 2 + 1 taps at most, as PIL sizes its kernel */
    a->ksize = out >= in ? 2 : (int)ceil(scale) * 2 + 1;
    a->first = malloc((size_t)out * sizeof *a->first);
    a->count = malloc((size_t)out * sizeof *a->count);
    a->w = malloc((size_t)out * a->ksize * sizeof *a->w);
    if (!a->first || !a->count || !a->w) {
        axis_taps_free(a);
        return -1;
    }
    for (int o = 0; o < out; o++) {
        float *w = a->w + (size_t)o * a->ksize;
        if (out >= in)
            linear_taps(in, out, o, &a->first[o], &a->count[o], w);
        else
            triangle_taps(in, out, o, &a->first[o], &a->count[o], w);
    }
    return 0;
}

/* Along x: tmp[y][o] for every source row y. */
static void resize_rows(const float *src, int sw, int sh, const axis_taps *ax,
                        float *tmp, int dw)
{
    int64_t work = (int64_t)sh * dw * ax->ksize;
#pragma omp parallel for schedule(static) if (work > PARALLEL_MIN_WORK)
    for (int y = 0; y < sh; y++) {
        const float *s = src + (size_t)y * sw;
        float *d = tmp + (size_t)y * dw;
        for (int o = 0; o < dw; o++) {
            const float *w = ax->w + (size_t)o * ax->ksize;
            const float *p = s + ax->first[o];
            float acc = 0.0f;
            for (int k = 0; k < ax->count[o]; k++)
                acc += w[k] * p[k];
            d[o] = acc;
        }
    }
}

/* Along y: dst[o] = sum_k w[k] * tmp[first + k], whole rows at a time. */
static void resize_cols(const float *tmp, int dw, const axis_taps *ay,
                        float *dst, int dh)
{
    int64_t work = (int64_t)dh * dw * ay->ksize;
#pragma omp parallel for schedule(static) if (work > PARALLEL_MIN_WORK)
    for (int o = 0; o < dh; o++) {
        float *d = dst + (size_t)o * dw;
        const float *w = ay->w + (size_t)o * ay->ksize;
        memset(d, 0, (size_t)dw * sizeof *d);
        for (int k = 0; k < ay->count[o]; k++) {
            const float *s = tmp + (size_t)(ay->first[o] + k) * dw;
            float wk = w[k];
#pragma omp simd
            for (int x = 0; x < dw; x++)
                d[x] += wk * s[x];
        }
    }
}

nm_status map_resize(const float *src, int sw, int sh, float *dst, int dw, int dh,
                     nm_error *err)
{
    if (!src || !dst)
        return nm_fail(err, NM_ERR_ARG, "map_resize: NULL map");
    nm_status st = check_size("map_resize", "source", sw, sh, err);
    if (st == NM_OK)
        st = check_size("map_resize", "destination", dw, dh, err);
    if (st != NM_OK)
        return st;
    axis_taps ax = {0}, ay = {0};
    float *tmp = malloc((size_t)sh * dw * sizeof *tmp);
    if (!tmp || axis_taps_init(&ax, sw, dw) != 0 ||
        axis_taps_init(&ay, sh, dh) != 0) {
        free(tmp);
        axis_taps_free(&ax);
        axis_taps_free(&ay);
        return nm_fail(err, NM_ERR_NOMEM, "map_resize: out of memory");
    }
    resize_rows(src, sw, sh, &ax, tmp, dw);
    resize_cols(tmp, dw, &ay, dst, dh);
    free(tmp);
    axis_taps_free(&ax);
    axis_taps_free(&ay);
    return NM_OK;
}

/* ------------------------------------------------------------------- blur */

/* 'reflect' index of i for a line of n samples: period 2n, mirrored. */
static int reflect_index(int64_t i, int n)
{
    int64_t period = 2 * (int64_t)n, m = i % period;
    if (m < 0)
        m += period;
    return (int)(m >= n ? period - 1 - m : m);
}

/* Vertical pass: dst[y] = sum_k w[k] * src[reflect(y + k)], k = -r..r.
 * The kernel is symmetric, so mirrored rows are added before weighting
 * (half the multiplies and half the passes over dst). wt[k] = w(|k|). */
static void blur_cols(const float *src, float *dst, int w, int h,
                      const float *wt, int r)
{
    int64_t work = (int64_t)w * h * r;
#pragma omp parallel for schedule(static) if (work > PARALLEL_MIN_WORK)
    for (int y = 0; y < h; y++) {
        float *d = dst + (size_t)y * w;
        const float *c = src + (size_t)y * w;
        float w0 = wt[0];
#pragma omp simd
        for (int x = 0; x < w; x++)
            d[x] = w0 * c[x];
        for (int k = 1; k <= r; k++) {
            const float *a = src + (size_t)reflect_index(y - k, h) * w;
            const float *b = src + (size_t)reflect_index(y + k, h) * w;
            float wk = wt[k];
#pragma omp simd
            for (int x = 0; x < w; x++)
                d[x] += wk * (a[x] + b[x]);
        }
    }
}

/* One row with r reflected samples on each side: ext[i] = src[reflect(i -
 * r)]; the middle is a plain copy, only the borders need the index map. */
static void extend_row(const float *src, int w, int r, float *ext)
{
    for (int i = 0; i < r; i++) {
        ext[i] = src[reflect_index((int64_t)i - r, w)];
        ext[r + w + i] = src[reflect_index((int64_t)w + i, w)];
    }
    memcpy(ext + r, src, (size_t)w * sizeof *ext);
}

/* Horizontal pass, each row through a reflected copy ext[w + 2r] (one per
 * thread, from ext_all) so the inner loop is a plain shifted sum, with the
 * same symmetric folding as blur_cols. */
static void blur_rows(const float *src, float *dst, int w, int h,
                      const float *wt, int r, float *ext_all)
{
    size_t ext_len = (size_t)w + 2 * (size_t)r;
    int64_t work = (int64_t)w * h * r;
#pragma omp parallel if (work > PARALLEL_MIN_WORK)
    {
        float *ext = ext_all;
#ifdef _OPENMP
        ext += (size_t)omp_get_thread_num() * ext_len;
#endif
#pragma omp for schedule(static)
        for (int y = 0; y < h; y++) {
            float *d = dst + (size_t)y * w;
            extend_row(src + (size_t)y * w, w, r, ext);
            const float *c = ext + r;
            float w0 = wt[0];
#pragma omp simd
            for (int x = 0; x < w; x++)
                d[x] = w0 * c[x];
            for (int k = 1; k <= r; k++) {
                const float *a = c - k, *b = c + k;
                float wk = wt[k];
#pragma omp simd
                for (int x = 0; x < w; x++)
                    d[x] += wk * (a[x] + b[x]);
            }
        }
    }
}

static int max_threads(void)
{
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

nm_status map_gaussian_blur(float *map, int w, int h, float sigma, nm_error *err)
{
    if (!map)
        return nm_fail(err, NM_ERR_ARG, "map_gaussian_blur: NULL map");
    nm_status st = check_size("map_gaussian_blur", "map", w, h, err);
    if (st != NM_OK)
        return st;
    if (!(sigma >= 0.0f) || !isfinite(sigma))
        return nm_fail(err, NM_ERR_ARG, "map_gaussian_blur: sigma %g must be "
                       "finite and >= 0", (double)sigma);
    if (sigma <= 1e-15f) /* scipy skips such axes: identity */
        return NM_OK;
    double sd = sigma, radius_d = floor(4.0 * sd + 0.5);
    if (radius_d > MAX_BLUR_RADIUS)
        return nm_fail(err, NM_ERR_LIMIT, "map_gaussian_blur: sigma %g gives "
                       "a radius over %d", (double)sigma, MAX_BLUR_RADIUS);
    int r = (int)radius_d;
    size_t ext_len = (size_t)w + 2 * (size_t)r;
    float *wt = malloc(((size_t)r + 1) * sizeof *wt);
    float *tmp = malloc((size_t)w * h * sizeof *tmp);
    float *ext = malloc((size_t)max_threads() * ext_len * sizeof *ext);
    if (!wt || !tmp || !ext) {
        free(wt);
        free(tmp);
        free(ext);
        return nm_fail(err, NM_ERR_NOMEM, "map_gaussian_blur: out of memory");
    }
    double sum = 0;
    for (int k = -r; k <= r; k++)
        sum += exp(-0.5 / (sd * sd) * k * k);
    for (int k = 0; k <= r; k++) /* one side: the kernel is symmetric */
        wt[k] = (float)(exp(-0.5 / (sd * sd) * k * k) / sum);
    blur_cols(map, tmp, w, h, wt, r);
    blur_rows(tmp, map, w, h, wt, r, ext);
    free(wt);
    free(tmp);
    free(ext);
    return NM_OK;
}

/* ------------------------------------------------------------ render chain */

static nm_status check_geometry(const nm_geometry *g, nm_error *err)
{
    static const char fn[] = "anomaly_map_render";
    if (!g)
        return nm_fail(err, NM_ERR_ARG, "%s: NULL geometry", fn);
    nm_status st = check_size(fn, "source image", g->src_width,
                              g->src_height, err);
    if (st == NM_OK)
        st = check_size(fn, "resized image", g->resized_width,
                        g->resized_height, err);
    if (st == NM_OK)
        st = check_size(fn, "network input", g->out_width, g->out_height,
                        err);
    return st;
}

/* Zero canvas[rh][rw] except the crop[oh][ow] placed at (cx, cy), clipped
 * (a padded crop hangs over the canvas edges). */
static void place_crop(const float *crop, int ow, int oh, int cx, int cy,
                       float *canvas, int rw, int rh)
{
    memset(canvas, 0, (size_t)rw * rh * sizeof *canvas);
    int64_t x0 = cx > 0 ? cx : 0, y0 = cy > 0 ? cy : 0;
    int64_t x1 = (int64_t)cx + ow, y1 = (int64_t)cy + oh;
    if (x1 > rw)
        x1 = rw;
    if (y1 > rh)
        y1 = rh;
    for (int64_t y = y0; y < y1; y++)
        if (x1 > x0)
            memcpy(canvas + y * rw + x0, crop + (y - cy) * ow + (x0 - cx),
                   (size_t)(x1 - x0) * sizeof *canvas);
}

nm_status anomaly_map_render(const float *patch_scores, int pw, int ph,
                             const nm_geometry *geom, float sigma,
                             float *crop_map, float *image_map, nm_error *err)
{
    if (!patch_scores)
        return nm_fail(err, NM_ERR_ARG, "anomaly_map_render: NULL scores");
    nm_status st = check_size("anomaly_map_render", "patch grid", pw, ph, err);
    if (st == NM_OK)
        st = check_geometry(geom, err);
    if (st != NM_OK)
        return st;
    if (!crop_map && !image_map)
        return NM_OK;
    int ow = geom->out_width, oh = geom->out_height;
    /* the caller's crop_map doubles as the working buffer when given */
    float *crop = crop_map ? crop_map : malloc((size_t)ow * oh * sizeof *crop);
    if (!crop)
        return nm_fail(err, NM_ERR_NOMEM, "anomaly_map_render: out of memory");
    st = map_resize(patch_scores, pw, ph, crop, ow, oh, err);
    if (st == NM_OK)
        st = map_gaussian_blur(crop, ow, oh, sigma, err);
    if (st == NM_OK && image_map) {
        int rw = geom->resized_width, rh = geom->resized_height;
        float *canvas = malloc((size_t)rw * rh * sizeof *canvas);
        if (!canvas) {
            st = nm_fail(err, NM_ERR_NOMEM, "anomaly_map_render: out of "
                         "memory");
        } else {
            place_crop(crop, ow, oh, geom->crop_x, geom->crop_y, canvas, rw,
                       rh);
            st = map_resize(canvas, rw, rh, image_map, geom->src_width,
                            geom->src_height, err);
            free(canvas);
        }
    }
    if (crop != crop_map)
        free(crop);
    return st;
}

/* ------------------------------------------------------------------ colour */

/* A turbo-like ramp of our own: dark indigo, blue, cyan, green, yellow,
 * orange, red. Hand-picked anchors, equally spaced in t, linearly
 * interpolated; lightness rises to the middle and falls a little to red,
 * hue runs monotonically from blue to red. */
static const uint8_t RAMP[][3] = {
    {40, 20, 80},   {60, 70, 180},  {65, 125, 240}, {40, 180, 235},
    {35, 220, 180}, {100, 245, 100}, {180, 240, 50}, {240, 195, 45},
    {250, 130, 30}, {225, 65, 20},  {170, 20, 10},
};
#define RAMP_N ((int)(sizeof RAMP / sizeof RAMP[0]))

/* Normalised value in [0, 1]; NaN stays NaN for the caller to handle.
 * lo == hi (or an undefined range) gives a step at lo instead of 0/0. */
static float normalize(float v, float lo, float hi)
{
    if (isnan(v))
        return v;
    float t = (v - lo) / (hi - lo);
    if (isnan(t) || hi == lo)
        t = v > lo ? 1.0f : 0.0f;
    return t < 0.0f ? 0.0f : t > 1.0f ? 1.0f : t;
}

static uint8_t to_byte(float x)
{
    return (uint8_t)(x <= 0.0f ? 0 : x >= 255.0f ? 255 : (int)(x + 0.5f));
}

static void ramp_colour(float t, uint8_t rgb[3])
{
    if (isnan(t)) {
        rgb[0] = rgb[1] = rgb[2] = 0;
        return;
    }
    float pos = t * (RAMP_N - 1);
    int i = (int)pos;
    if (i >= RAMP_N - 1)
        i = RAMP_N - 2;
    float f = pos - (float)i;
    for (int c = 0; c < 3; c++)
        rgb[c] = to_byte((1.0f - f) * RAMP[i][c] + f * RAMP[i + 1][c]);
}

void map_colorize(const float *map, int w, int h, float lo, float hi,
                  uint8_t *rgb)
{
    if (!map || !rgb || w <= 0 || h <= 0)
        return;
    size_t n = (size_t)w * h;
    for (size_t i = 0; i < n; i++)
        ramp_colour(normalize(map[i], lo, hi), rgb + 3 * i);
}

void map_overlay(const nm_image *img, const float *map, float lo, float hi,
                 float alpha, uint8_t *rgb_out)
{
    if (!img || !img->pixels || !map || !rgb_out || img->width <= 0 ||
        img->height <= 0 || (img->channels != 1 && img->channels != 3))
        return;
    if (!(alpha > 0.0f))
        alpha = 0.0f; /* also NaN */
    if (alpha > 1.0f)
        alpha = 1.0f;
    size_t n = (size_t)img->width * img->height;
    int ch = img->channels;
    for (size_t i = 0; i < n; i++) {
        float t = normalize(map[i], lo, hi);
        /* NaN (no score) leaves the photo untouched */
        float a = isnan(t) ? 0.0f : alpha * sqrtf(t);
        uint8_t heat[3];
        ramp_colour(isnan(t) ? 0.0f : t, heat);
        const uint8_t *px = img->pixels + i * ch;
        for (int c = 0; c < 3; c++) {
            float photo = px[ch == 3 ? c : 0];
            rgb_out[3 * i + c] = to_byte((1.0f - a) * photo + a * heat[c]);
        }
    }
}
