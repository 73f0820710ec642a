/*
 * PaDiM's inner loops: the rank-k update that accumulates covariances and
 * the quadratic forms that score. Both are memory-bound over per-position
 * matrices of up to 600 KB, so the matrices use one layout chosen for
 * streaming:
 *
 * Padded packed lower triangle of a d x d matrix: row i holds entries
 * (i, 0..i) followed by zeros up to a multiple of PADIM_LANES floats, rows
 * one after another. Every row starts on a 64-byte boundary when the
 * matrix does, and a row can be taken as whole vectors without tail
 * handling. Size: about d(d+1)/2 + 7.5 d floats (about 3% over packed at
 * d = 550).
 *
 * Vectors (features, means, factor rows of the low-rank model) are padded
 * with zeros to d_pad = d rounded up to PADIM_LANES.
 */
#ifndef NM_METHODS_PADIM_KERNELS_H
#define NM_METHODS_PADIM_KERNELS_H

#include <stddef.h>

#define PADIM_LANES 16

static inline int padim_pad(int d)
{
    return (d + PADIM_LANES - 1) / PADIM_LANES * PADIM_LANES;
}

/* Floats stored for row i of the padded triangle. */
static inline int padim_tri_row_len(int i)
{
    return (i / PADIM_LANES + 1) * PADIM_LANES;
}

/* Offset of row i (equivalently: size of the first i rows). */
static inline size_t padim_tri_offset(int i)
{
    size_t q = (size_t)i / PADIM_LANES, s = (size_t)i % PADIM_LANES;
    return PADIM_LANES * (PADIM_LANES / 2 * q * (q + 1) + s * (q + 1));
}

static inline size_t padim_tri_size(int d) { return padim_tri_offset(d); }

/* tri += sum over the k rows z_r of z_r z_r^T (lower triangle; entries in a
 * row's padding get products too and must not be read as covariance).
 * z: k rows of d_pad floats, zero-padded. */
void padim_tri_rank_update(float *tri, int d, const float *z, int k);

/* out[n] = sum_i (row_i . x_n)^2, the rows of a padded triangle against the
 * nx vectors x_n = x + n * d_pad (zero-padded). */
void padim_quad_tri(const float *tri, int d, const float *x, int nx, double *out);

/* out[n] = sum_i w[i] (row_i . x_n)^2 over n_rows rows of d_pad floats. */
void padim_quad_rows(const float *rows, int n_rows, int d_pad, const float *w,
                     const float *x, int nx, double *out);

/* diff_n = x_n - mean for nx vectors of d_pad floats (rows d_pad apart). */
void padim_center(const float *x, const float *mean, int d_pad, int nx, float *diff);

/* out[n] = sum_j w[j] x_n[j]^2 (d_pad entries). */
void padim_quad_diag(const float *w, int d_pad, const float *x, int nx, double *out);

#endif
