/*
 * Bilinear resize, bit-exact with PIL 9.4 Image.resize(size, BILINEAR)
 * (libImaging/Resample.c, which torchvision's Resize uses on PIL images).
 *
 * The algorithm, reimplemented from its description:
 *  - per axis, each output index i covers source samples around
 *    center = (i + 0.5) * scale with a triangle filter stretched by
 *    max(scale, 1) (so shrinking averages, i.e. antialiases);
 *  - the double weights are normalised to sum 1, then turned into signed
 *    fixed point with 22 fractional bits (32 - 8 - 2), rounded half away
 *    from zero;
 *  - a pass sums pixel * weight in int32 starting from half an LSB and
 *    clips (sum >> 22) to 0..255, so each pass rounds to 8 bits;
 *  - horizontal pass first, then vertical, each only if that size changes.
 * Every double operation below is written in PIL's order: the weights must
 * be the same doubles for the rounding to fixed point to agree. (GCC keeps
 * floating-point contraction off in ISO C mode, so no FMA changes them.)
 */
#include "image/image_internal.h"
#include "core/error.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define PRECISION_BITS (32 - 8 - 2)

/* Filter taps for one axis: output i reads `count[i]` source samples
 * starting at `first[i]` with weights coeffs[i * ksize ...]. */
typedef struct axis_plan {
    int out_size;
    int ksize;
    int *first;
    int *count;
    int32_t *coeffs;
} axis_plan;

static double bilinear_filter(double x)
{
    if (x < 0.0)
        x = -x;
    if (x < 1.0)
        return 1.0 - x;
    return 0.0;
}

static void axis_plan_free(axis_plan *plan)
{
    free(plan->first);
    free(plan->count);
    free(plan->coeffs);
    *plan = (axis_plan){0};
}

/* PIL rounds the normalised double weight half away from zero. */
static int32_t to_fixed(double w)
{
    double scaled = w * (1 << PRECISION_BITS);
    return (int32_t)(scaled < 0 ? -0.5 + scaled : 0.5 + scaled);
}

static nm_status axis_plan_make(int in_size, int out_size, axis_plan *plan,
                                nm_error *err)
{
    /* PIL passes the box edges as float; (float)in_size is exact for any
     * size below 2^24 and rounds like PIL's above it. */
    double scale = (double)(float)in_size / out_size;
    double filterscale = scale < 1.0 ? 1.0 : scale;
    double support = 1.0 * filterscale; /* bilinear support is 1 */
    double inv_filterscale = 1.0 / filterscale;
    int ksize = (int)ceil(support) * 2 + 1;

    *plan = (axis_plan){.out_size = out_size, .ksize = ksize};
    if ((size_t)out_size > SIZE_MAX / sizeof(int32_t) / (size_t)ksize)
        return nm_fail(err, NM_ERR_LIMIT, "resize: %d -> %d is too large",
                       in_size, out_size);
    plan->first = malloc((size_t)out_size * sizeof *plan->first);
    plan->count = malloc((size_t)out_size * sizeof *plan->count);
    plan->coeffs = calloc((size_t)out_size * (size_t)ksize,
                          sizeof *plan->coeffs);
    double *weights = malloc((size_t)ksize * sizeof *weights);
    if (!plan->first || !plan->count || !plan->coeffs || !weights) {
        free(weights);
        axis_plan_free(plan);
        return nm_fail(err, NM_ERR_NOMEM, "resize: out of memory");
    }

    for (int i = 0; i < out_size; i++) {
        double center = (i + 0.5) * scale;
        int lo = (int)(center - support + 0.5);
        int hi = (int)(center + support + 0.5);
        if (lo < 0)
            lo = 0;
        if (hi > in_size)
            hi = in_size;
        int n = hi - lo;
        double total = 0.0;
        for (int t = 0; t < n; t++) {
            weights[t] = bilinear_filter((t + lo - center + 0.5) *
                                         inv_filterscale);
            total += weights[t];
        }
        int32_t *k = plan->coeffs + (size_t)i * (size_t)ksize;
        for (int t = 0; t < n; t++)
            k[t] = to_fixed(total != 0.0 ? weights[t] / total : weights[t]);
        plan->first[i] = lo;
        plan->count[i] = n;
    }
    free(weights);
    return NM_OK;
}

/* PIL's clip8: the sum's integer part, clamped to a byte. */
static inline uint8_t clip8(int32_t sum)
{
    int32_t v = sum < 0 ? 0 : sum >> PRECISION_BITS;
    return (uint8_t)(v > 255 ? 255 : v);
}

/* Sums are formed LANES at a time with a fixed trip count, a loop shape
 * compilers vectorise even at -O2; 48 is a multiple of 1 and 3 channels
 * and of the 16-byte vector width. */
#define LANES 48

/* acc[j] = half + sum over taps t of src[t * step + j] * k[t], j < LANES.
 * Integer sums, so the order of the terms does not change the result. No
 * overflow: a weight rounds to non-zero only if it is at least half a
 * unit, so the fixed-point weights sum to at most 2 << 22, and
 * 255 * (2 << 22) + (1 << 21) < 2^31. */
static inline void weighted_sum(const uint8_t *src, size_t step,
                                const int32_t *k, int taps,
                                int32_t acc[LANES])
{
    for (int j = 0; j < LANES; j++)
        acc[j] = 1 << (PRECISION_BITS - 1);
    for (int t = 0; t < taps; t++) {
        const uint8_t *s = src + (size_t)t * step;
        int32_t w = k[t];
        for (int j = 0; j < LANES; j++)
            acc[j] += s[j] * w;
    }
}

/* Lay out n rows (n * channels <= LANES) column by column:
 * block[x * LANES + r * channels + c] = row r, pixel x, channel c. The
 * horizontal filter then reads one whole column per tap. */
static void transpose_rows(const uint8_t *rows, size_t stride, int width,
                           int n, int channels, uint8_t *block)
{
    if (n * channels < LANES) /* unused lanes: defined, never written out */
        memset(block, 0, (size_t)width * LANES);
    for (int r = 0; r < n; r++) {
        const uint8_t *in = rows + (size_t)r * stride;
        uint8_t *out = block + r * channels;
        if (channels == 1) {
            for (int x = 0; x < width; x++)
                out[(size_t)x * LANES] = in[x];
            continue;
        }
        for (int x = 0; x < width; x++, in += 3, out += LANES) {
            out[0] = in[0]; /* spelled out: this copy is a third of the */
            out[1] = in[1]; /* horizontal pass's time */
            out[2] = in[2];
        }
    }
}

/* Write the block's n rows of one output pixel (column i) into dst. */
static void scatter_column(const uint8_t px[LANES], int n, int channels,
                           size_t out_stride, uint8_t *dst)
{
    if (channels == 1) {
        for (int r = 0; r < n; r++, dst += out_stride)
            dst[0] = px[r];
        return;
    }
    for (int r = 0; r < n; r++, px += 3, dst += out_stride) {
        dst[0] = px[0];
        dst[1] = px[1];
        dst[2] = px[2];
    }
}

/* Horizontal pass over `rows` source rows starting at src_row, into dst
 * (rows x out_size pixels). Works on blocks of LANES / channels rows;
 * block is scratch space of src->width * LANES bytes. */
static void resample_horizontal(const nm_image *src, int src_row, int rows,
                                const axis_plan *p, uint8_t *block,
                                uint8_t *dst)
{
    int ch = src->channels;
    int block_rows = LANES / ch;
    size_t in_stride = (size_t)src->width * (size_t)ch;
    size_t out_stride = (size_t)p->out_size * (size_t)ch;
    for (int y = 0; y < rows; y += block_rows) {
        int n = rows - y < block_rows ? rows - y : block_rows;
        transpose_rows(src->pixels + (size_t)(src_row + y) * in_stride,
                       in_stride, src->width, n, ch, block);
        uint8_t *out = dst + (size_t)y * out_stride;
        for (int i = 0; i < p->out_size; i++) {
            int32_t acc[LANES];
            uint8_t px[LANES];
            weighted_sum(block + (size_t)p->first[i] * LANES, LANES,
                         p->coeffs + (size_t)i * (size_t)p->ksize,
                         p->count[i], acc);
            for (int j = 0; j < LANES; j++)
                px[j] = clip8(acc[j]);
            scatter_column(px, n, ch, out_stride, out + (size_t)i * ch);
        }
    }
}

/* Vertical pass: each output row is a weighted sum of whole input rows,
 * taken LANES bytes at a time. src_row0 is the source row that src's first
 * row corresponds to (the horizontal pass only made the rows read here). */
static void resample_vertical(const uint8_t *src, int src_row0,
                              size_t row_len, const axis_plan *p,
                              uint8_t *dst)
{
    for (int i = 0; i < p->out_size; i++) {
        const int32_t *k = p->coeffs + (size_t)i * (size_t)p->ksize;
        const uint8_t *in = src + (size_t)(p->first[i] - src_row0) * row_len;
        uint8_t *out = dst + (size_t)i * row_len;
        size_t x = 0;
        for (; x + LANES <= row_len; x += LANES) {
            int32_t acc[LANES];
            weighted_sum(in + x, row_len, k, p->count[i], acc);
            for (int j = 0; j < LANES; j++)
                out[x + (size_t)j] = clip8(acc[j]);
        }
        for (; x < row_len; x++) {
            int32_t sum = 1 << (PRECISION_BITS - 1);
            for (int t = 0; t < p->count[i]; t++)
                sum += in[x + (size_t)t * row_len] * k[t];
            out[x] = clip8(sum);
        }
    }
}

static nm_status check_resize_args(const nm_image *src, int width,
                                   int height, const nm_image *dst,
                                   nm_error *err)
{
    if (!src || !dst || !src->pixels)
        return nm_fail(err, NM_ERR_ARG, "resize: missing image");
    if (src == dst)
        return nm_fail(err, NM_ERR_ARG,
                       "resize: source and destination must differ");
    if (src->width <= 0 || src->height <= 0 ||
        (src->channels != 1 && src->channels != 3))
        return nm_fail(err, NM_ERR_ARG,
                       "resize: invalid source image %dx%dx%d", src->width,
                       src->height, src->channels);
    if (width <= 0 || height <= 0)
        return nm_fail(err, NM_ERR_ARG, "resize: invalid target size %dx%d",
                       width, height);
    return NM_OK;
}

/* Both passes, given the two plans and an allocated dst. */
static nm_status resample(const nm_image *src, const axis_plan *horiz,
                          const axis_plan *vert, nm_image *dst, nm_error *err)
{
    uint8_t *block = NULL, *tmp = NULL;
    if (horiz) {
        block = malloc((size_t)src->width * LANES);
        if (!block)
            return nm_fail(err, NM_ERR_NOMEM, "resize: out of memory");
    }
    if (!vert) {
        resample_horizontal(src, 0, src->height, horiz, block, dst->pixels);
        free(block);
        return NM_OK;
    }
    size_t row_len = (size_t)dst->width * (size_t)src->channels;
    const uint8_t *rows = src->pixels;
    int row0 = 0;
    if (horiz) {
        /* Only the source rows the vertical filter will read. */
        int last = vert->out_size - 1;
        row0 = vert->first[0];
        int nrows = vert->first[last] + vert->count[last] - row0;
        tmp = malloc((size_t)nrows * row_len);
        if (!tmp) {
            free(block);
            return nm_fail(err, NM_ERR_NOMEM, "resize: out of memory");
        }
        resample_horizontal(src, row0, nrows, horiz, block, tmp);
        rows = tmp;
    }
    resample_vertical(rows, row0, row_len, vert, dst->pixels);
    free(tmp);
    free(block);
    return NM_OK;
}

nm_status nm_image_resize(const nm_image *src, int width, int height,
                          nm_image *dst, nm_error *err)
{
    nm_status st = check_resize_args(src, width, height, dst, err);
    if (st != NM_OK)
        return st;
    nm_image out;
    /* The target can be larger than any decoded image; it only has to fit
     * in memory, so the limit is SIZE_MAX rather than the decode limit. */
    st = nm_image_alloc(width, height, src->channels, SIZE_MAX, "resize",
                        &out, err);
    if (st != NM_OK)
        return st;
    int need_h = width != src->width;
    int need_v = height != src->height;
    if (!need_h && !need_v) {
        memcpy(out.pixels, src->pixels,
               (size_t)width * (size_t)height * (size_t)src->channels);
        *dst = out;
        return NM_OK;
    }
    axis_plan horiz = {0}, vert = {0};
    if (need_h)
        st = axis_plan_make(src->width, width, &horiz, err);
    if (st == NM_OK && need_v)
        st = axis_plan_make(src->height, height, &vert, err);
    if (st == NM_OK)
        st = resample(src, need_h ? &horiz : NULL, need_v ? &vert : NULL,
                      &out, err);
    axis_plan_free(&horiz);
    axis_plan_free(&vert);
    if (st != NM_OK) {
        nm_image_free(&out);
        return st;
    }
    *dst = out;
    return NM_OK;
}
