/*
 * PaDiM's inner loops (see padim_kernels.h), written with GCC vector
 * extensions and compiled once per instruction set (AVX-512, AVX2+FMA,
 * baseline SSE2) through target_clones: the build has no -march, and the
 * loader picks the best clone for the machine at run time.
 *
 * Scoring reads each position's matrix once per batch of images: rows
 * outside, images inside, so a row is loaded from memory once and reused
 * from L1 for every image. Dot products run in float vector lanes; the
 * squares are summed in double.
 */
#include "methods/padim_kernels.h"

typedef float vfloat __attribute__((vector_size(PADIM_LANES * sizeof(float)), aligned(4)));

#ifdef __clang__
/* clang (the fuzz build): baseline code only. clang 14's target_clones
 * names the dispatcher NAME.ifunc, which calls from other files cannot
 * reach, and clang has no GCC optimize pragma. */
#define PADIM_CLONES
#else
/* Multiply-adds may be fused: the vector code is written as a * b + c. */
#pragma GCC optimize("fp-contract=fast")
#define PADIM_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#endif

/* Images per pass over a row: enough to amortize the row, few enough that
 * the accumulators stay in registers. */
#define IMAGE_BLOCK 4

/* Vector types alias their element type in GCC; vfloat is only 4-byte
 * aligned, so these are plain (unaligned) vector loads and stores. Macros,
 * not functions: a vector passed by value would change the ABI between the
 * clones. */
#define load(p) (*(const vfloat *)(p))
#define store(p, v) (*(vfloat *)(p) = (v))

typedef float vhalf __attribute__((vector_size(PADIM_LANES / 2 * sizeof(float)), aligned(4)));
typedef float vquarter __attribute__((vector_size(PADIM_LANES / 4 * sizeof(float)), aligned(4)));

/* Sum of the lanes as a tree (16 -> 8 -> 4 -> 1): a row's dot product ends
 * in one of these, and a sequential sum would be a 16-add chain per row. */
__attribute__((always_inline)) static inline float lane_sum(const vfloat *v)
{
    const float *f = (const float *)v;
    vhalf h = *(const vhalf *)f + *(const vhalf *)(f + PADIM_LANES / 2);
    const float *hf = (const float *)&h;
    vquarter q = *(const vquarter *)hf + *(const vquarter *)(hf + PADIM_LANES / 4);
    return (q[0] + q[1]) + (q[2] + q[3]);
}

/* The rank-k update of rows i and i + 1 (same length: a pair never
 * straddles a 16-row block), four chunks at a time: per image r, two
 * broadcasts and four loads feed eight multiply-adds. */
__attribute__((always_inline)) static inline void update_pair(float *row0, float *row1,
                                                              const float *z, int d_pad,
                                                              int k, int i, int chunks)
{
    int c = 0;
    for (; c + 4 <= chunks; c += 4) {
        vfloat a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0}, b0 = {0}, b1 = {0}, b2 = {0}, b3 = {0};
        for (int r = 0; r < k; r++) {
            const float *zr = z + (size_t)r * (size_t)d_pad;
            float s = zr[i], t = zr[i + 1];
            const float *v = zr + c * PADIM_LANES;
            vfloat v0 = load(v), v1 = load(v + PADIM_LANES), v2 = load(v + 2 * PADIM_LANES),
                   v3 = load(v + 3 * PADIM_LANES);
            a0 += s * v0;
            a1 += s * v1;
            a2 += s * v2;
            a3 += s * v3;
            b0 += t * v0;
            b1 += t * v1;
            b2 += t * v2;
            b3 += t * v3;
        }
        float *o = row0 + c * PADIM_LANES, *p = row1 + c * PADIM_LANES;
        store(o, load(o) + a0);
        store(o + PADIM_LANES, load(o + PADIM_LANES) + a1);
        store(o + 2 * PADIM_LANES, load(o + 2 * PADIM_LANES) + a2);
        store(o + 3 * PADIM_LANES, load(o + 3 * PADIM_LANES) + a3);
        store(p, load(p) + b0);
        store(p + PADIM_LANES, load(p + PADIM_LANES) + b1);
        store(p + 2 * PADIM_LANES, load(p + 2 * PADIM_LANES) + b2);
        store(p + 3 * PADIM_LANES, load(p + 3 * PADIM_LANES) + b3);
    }
    for (; c < chunks; c++) {
        vfloat a = {0}, b = {0};
        for (int r = 0; r < k; r++) {
            const float *zr = z + (size_t)r * (size_t)d_pad;
            vfloat v = load(zr + c * PADIM_LANES);
            a += zr[i] * v;
            b += zr[i + 1] * v;
        }
        float *o = row0 + c * PADIM_LANES, *p = row1 + c * PADIM_LANES;
        store(o, load(o) + a);
        store(p, load(p) + b);
    }
}

/* The same for one row (the last of an odd d). */
__attribute__((always_inline)) static inline void update_row(float *row, const float *z,
                                                             int d_pad, int k, int i,
                                                             int chunks)
{
    int c = 0;
    for (; c + 4 <= chunks; c += 4) {
        vfloat a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
        for (int r = 0; r < k; r++) {
            const float *zr = z + (size_t)r * (size_t)d_pad;
            float s = zr[i];
            const float *v = zr + c * PADIM_LANES;
            a0 += s * load(v);
            a1 += s * load(v + PADIM_LANES);
            a2 += s * load(v + 2 * PADIM_LANES);
            a3 += s * load(v + 3 * PADIM_LANES);
        }
        float *o = row + c * PADIM_LANES;
        store(o, load(o) + a0);
        store(o + PADIM_LANES, load(o + PADIM_LANES) + a1);
        store(o + 2 * PADIM_LANES, load(o + 2 * PADIM_LANES) + a2);
        store(o + 3 * PADIM_LANES, load(o + 3 * PADIM_LANES) + a3);
    }
    for (; c < chunks; c++) {
        vfloat a = {0};
        for (int r = 0; r < k; r++) {
            const float *zr = z + (size_t)r * (size_t)d_pad;
            a += zr[i] * load(zr + c * PADIM_LANES);
        }
        float *o = row + c * PADIM_LANES;
        store(o, load(o) + a);
    }
}

PADIM_CLONES
void padim_tri_rank_update(float *tri, int d, const float *z, int k)
{
    int d_pad = padim_pad(d);
    for (int i = 0; i < d; i += 2) {
        int chunks = padim_tri_row_len(i) / PADIM_LANES;
        float *row = tri + padim_tri_offset(i);
        if (i + 1 < d)
            update_pair(row, tri + padim_tri_offset(i + 1), z, d_pad, k, i, chunks);
        else
            update_row(row, z, d_pad, k, i, chunks);
    }
}

/* y[b] = row . x_b for nb <= IMAGE_BLOCK images (x_b = x + b * d_pad).
 * Every image is summed in the same order however many share the call
 * (even chunks in one chain, odd chunks in another, then the two), so a
 * score does not depend on the batch it came in. Written out for four
 * images so the accumulators live in registers; with two or three, the
 * missing images repeat image 0 and are dropped. */
__attribute__((always_inline)) static inline void dots(const float *row, int chunks,
                                                       const float *x, int d_pad, int nb,
                                                       float *y)
{
    const int L = PADIM_LANES;
    int c = 0;
    if (nb == 1) { /* one image: a quarter of the work, same order */
        vfloat a0 = {0}, b0 = {0};
        for (; c + 2 <= chunks; c += 2) {
            a0 += load(row + c * L) * load(x + c * L);
            b0 += load(row + (c + 1) * L) * load(x + (c + 1) * L);
        }
        if (c < chunks)
            a0 += load(row + c * L) * load(x + c * L);
        a0 += b0;
        y[0] = lane_sum(&a0);
        return;
    }
    const float *x1 = nb > 1 ? x + d_pad : x, *x2 = nb > 2 ? x + 2 * d_pad : x,
                *x3 = nb > 3 ? x + 3 * d_pad : x;
    vfloat a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0}, b0 = {0}, b1 = {0}, b2 = {0}, b3 = {0};
    for (; c + 2 <= chunks; c += 2) {
        int e = c * L, o = (c + 1) * L;
        vfloat r = load(row + e), s = load(row + o);
        a0 += r * load(x + e);
        a1 += r * load(x1 + e);
        a2 += r * load(x2 + e);
        a3 += r * load(x3 + e);
        b0 += s * load(x + o);
        b1 += s * load(x1 + o);
        b2 += s * load(x2 + o);
        b3 += s * load(x3 + o);
    }
    if (c < chunks) {
        int e = c * L;
        vfloat r = load(row + e);
        a0 += r * load(x + e);
        a1 += r * load(x1 + e);
        a2 += r * load(x2 + e);
        a3 += r * load(x3 + e);
    }
    a0 += b0;
    a1 += b1;
    a2 += b2;
    a3 += b3;
    float out[IMAGE_BLOCK] = {lane_sum(&a0), lane_sum(&a1), lane_sum(&a2), lane_sum(&a3)};
    for (int b = 0; b < nb; b++)
        y[b] = out[b];
}

PADIM_CLONES
void padim_quad_tri(const float *tri, int d, const float *x, int nx, double *out)
{
    int d_pad = padim_pad(d);
    for (int n = 0; n < nx; n++)
        out[n] = 0;
    for (int i = 0; i < d; i++) {
        const float *row = tri + padim_tri_offset(i);
        int chunks = padim_tri_row_len(i) / PADIM_LANES;
        for (int n0 = 0; n0 < nx; n0 += IMAGE_BLOCK) {
            int nb = nx - n0 < IMAGE_BLOCK ? nx - n0 : IMAGE_BLOCK;
            float y[IMAGE_BLOCK];
            dots(row, chunks, x + (size_t)n0 * (size_t)d_pad, d_pad, nb, y);
            for (int b = 0; b < nb; b++)
                out[n0 + b] += (double)y[b] * (double)y[b];
        }
    }
}

PADIM_CLONES
void padim_quad_rows(const float *rows, int n_rows, int d_pad, const float *w,
                     const float *x, int nx, double *out)
{
    for (int n = 0; n < nx; n++)
        out[n] = 0;
    for (int i = 0; i < n_rows; i++) {
        const float *row = rows + (size_t)i * (size_t)d_pad;
        for (int n0 = 0; n0 < nx; n0 += IMAGE_BLOCK) {
            int nb = nx - n0 < IMAGE_BLOCK ? nx - n0 : IMAGE_BLOCK;
            float y[IMAGE_BLOCK];
            dots(row, d_pad / PADIM_LANES, x + (size_t)n0 * (size_t)d_pad, d_pad, nb, y);
            for (int b = 0; b < nb; b++)
                out[n0 + b] += (double)w[i] * (double)y[b] * (double)y[b];
        }
    }
}

PADIM_CLONES
void padim_center(const float *x, const float *mean, int d_pad, int nx, float *diff)
{
    for (int n = 0; n < nx; n++)
        for (int c = 0; c < d_pad; c += PADIM_LANES) {
            size_t at = (size_t)n * (size_t)d_pad + (size_t)c;
            store(diff + at, load(x + at) - load(mean + c));
        }
}

PADIM_CLONES
void padim_quad_diag(const float *w, int d_pad, const float *x, int nx, double *out)
{
    for (int n = 0; n < nx; n++) {
        const float *xn = x + (size_t)n * (size_t)d_pad;
        vfloat a = {0};
        for (int c = 0; c < d_pad; c += PADIM_LANES) {
            vfloat v = load(xn + c);
            a += load(w + c) * v * v;
        }
        out[n] = (double)lane_sum(&a);
    }
}
