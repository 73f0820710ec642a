/*
 * PaDiM's statistics: one multivariate Gaussian per grid position.
 *
 * Fitting streams: padim_accum keeps, per position, the running mean (in
 * double) and the sum of outer products of deviations from it (M2), and
 * merges each block of images into them with Chan et al.'s pairwise update
 * (block mean and centred block products, plus n_a n_b / n times the outer
 * product of the difference of means), so nothing is summed uncentred and
 * no image is kept once added. The covariance is unbiased, M2 / (n - 1),
 * like np.cov and torch.cov, plus eps I (the reference's 0.01).
 *
 * padim_gauss_fit turns the sums into what scoring reads, per position:
 *   full:    L = C^-1 with C the Cholesky factor of S + eps I (LAPACK
 *            dpotrf + dtrtri in double), so (x-mu)^T (S + eps I)^-1 (x-mu)
 *            = |L (x-mu)|^2; stored as a float padded packed triangle
 *            (padim_kernels.h), in place of the M2 sums.
 *   diag:    1 / (S_jj + eps) (the off-diagonal covariance is dropped;
 *            only the diagonal is ever accumulated).
 *   lowrank: probabilistic PCA (Tipping & Bishop 1999) of C = S + eps I
 *            with rank r: Sigma_r = V (Lambda - sigma^2 I) V^T + sigma^2 I,
 *            V the r leading eigenvectors of C, Lambda their eigenvalues,
 *            sigma^2 the mean of the other d - r eigenvalues (so Sigma_r
 *            keeps C's trace and r leading directions exactly; dsyevr in
 *            double computes only those r). Its inverse is
 *            V (Lambda^-1 - sigma^-2 I) V^T + sigma^-2 I, stored as the r
 *            rows of V^T and the weights (1/lambda_i - 1/sigma^2, then
 *            1/sigma^2): distance^2 = |x-mu|^2 / sigma^2
 *            + sum_i w_i (v_i . (x-mu))^2.
 * All three return the squared Mahalanobis distance per position.
 */
#ifndef NM_METHODS_PADIM_GAUSS_H
#define NM_METHODS_PADIM_GAUSS_H

#include <stddef.h>
#include <stdint.h>

#include "nominal.h"

/* 64-byte aligned and zeroed (free with free): rows start on cache lines
 * and pads read as 0. NULL when out of memory. */
void *padim_zalloc(size_t bytes);

typedef enum padim_cov { PADIM_COV_FULL, PADIM_COV_DIAG, PADIM_COV_LOWRANK } padim_cov;

const char *padim_cov_name(padim_cov cov);
/* 0 and *cov set when s names a model ("full", "diag", "lowrank"), else -1. */
int padim_cov_parse(const char *s, padim_cov *cov);

typedef struct padim_accum {
    padim_cov cov;
    int d, d_pad;
    size_t positions;
    int64_t count;   /* images added */
    double *mean;    /* [positions][d] */
    double *m2_diag; /* diag: [positions][d] */
    float *m2;       /* full, lowrank: [positions][padim_tri_size(d)] */
} padim_accum;

nm_status padim_accum_init(padim_accum *a, padim_cov cov, size_t positions, int d,
                           nm_error *err);
void padim_accum_free(padim_accum *a);
/* Add k images: image r's features at position p are the d floats at
 * x + p * pos_stride + r * d_pad. */
nm_status padim_accum_add(padim_accum *a, const float *x, size_t pos_stride, int k,
                          int threads, nm_error *err);
/* S + eps I at position p as a full symmetric d x d matrix (zero off the
 * diagonal for diag). Needs count >= 2. */
void padim_accum_covariance(const padim_accum *a, size_t p, double eps, double *cov);

typedef struct padim_gauss {
    padim_cov cov;
    int d, d_pad, rank;
    size_t positions;
    const float *mean;    /* [positions][d_pad] */
    const float *factor;  /* [positions][padim_gauss_factor_floats()] */
    const float *weights; /* lowrank: [positions][rank + 1] */
    float *mean_owned, *factor_owned, *weights_owned;
} padim_gauss;

/* Floats per position in g->factor. */
size_t padim_gauss_factor_floats(padim_cov cov, int d, int rank);

/* Fit from the sums (a->m2 becomes the full model's factor; a is emptied
 * either way). grid_w only names positions in messages. */
nm_status padim_gauss_fit(padim_accum *a, double eps, int rank, int grid_w, int threads,
                          padim_gauss *g, nm_error *err);
void padim_gauss_free(padim_gauss *g);

/* Squared distances dist2[n][p] of n images whose features at position p
 * are x + p * pos_stride + n * d_pad (zero-padded to d_pad). */
nm_status padim_gauss_score(const padim_gauss *g, const float *x, size_t pos_stride, int n,
                            float *dist2, int threads, nm_error *err);

#endif
