/* PaDiM's per-position Gaussians: streaming sums, factors, distances
 * (padim_gauss.h). */
#include "methods/padim_gauss.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "methods/padim_kernels.h"

/* LAPACK (OpenBLAS), Fortran calling convention: everything by reference,
 * then the hidden lengths of the character arguments. */
void dpotrf_(const char *uplo, const int *n, double *a, const int *lda, int *info, size_t);
void dtrtri_(const char *uplo, const char *diag, const int *n, double *a, const int *lda,
             int *info, size_t, size_t);
void dsyevr_(const char *jobz, const char *range, const char *uplo, const int *n, double *a,
             const int *lda, const double *vl, const double *vu, const int *il,
             const int *iu, const double *abstol, int *m, double *w, double *z,
             const int *ldz, int *isuppz, double *work, const int *lwork, int *iwork,
             const int *liwork, int *info, size_t, size_t, size_t);

/* Positions are handed to threads in chunks as they come free, not split
 * up front: on a shared machine a thread that loses its core would
 * otherwise hold the whole call back (measured at d=550, full, one image:
 * 117-143 ms with a static split on two threads against 76 ms on one).
 * 16 positions of a full model are 10 MB read in order. */
#define POSITION_CHUNK 16

static const char *const cov_names[] = {"full", "diag", "lowrank"};

const char *padim_cov_name(padim_cov cov) { return cov_names[cov]; }

int padim_cov_parse(const char *s, padim_cov *cov)
{
    for (int i = 0; i < 3; i++)
        if (strcmp(s, cov_names[i]) == 0) {
            *cov = (padim_cov)i;
            return 0;
        }
    return -1;
}

void *padim_zalloc(size_t bytes)
{
    size_t rounded = (bytes + 63) & ~(size_t)63;
    void *p = aligned_alloc(64, rounded ? rounded : 64);
    if (p)
        memset(p, 0, rounded);
    return p;
}

/* Per-thread scratch: `floats` zeroed floats and `doubles` doubles each. */
static nm_status thread_scratch(int threads, size_t floats, size_t doubles, float **f,
                                double **d, nm_error *err)
{
    *f = padim_zalloc((size_t)threads * floats * sizeof(float));
    *d = malloc((size_t)threads * doubles * sizeof(double));
    if (*f && *d)
        return NM_OK;
    free(*f);
    free(*d);
    return nm_fail(err, NM_ERR_NOMEM, "padim: out of memory");
}

/* ------------------------------------------------------------ the sums */

nm_status padim_accum_init(padim_accum *a, padim_cov cov, size_t positions, int d,
                           nm_error *err)
{
    memset(a, 0, sizeof *a);
    a->cov = cov;
    a->d = d;
    a->d_pad = padim_pad(d);
    a->positions = positions;
    a->mean = padim_zalloc(positions * (size_t)d * sizeof(double));
    if (cov == PADIM_COV_DIAG)
        a->m2_diag = padim_zalloc(positions * (size_t)d * sizeof(double));
    else
        a->m2 = padim_zalloc(positions * padim_tri_size(d) * sizeof(float));
    if (!a->mean || !(a->m2_diag || a->m2)) {
        double gb = (double)positions * (double)padim_tri_size(d) * 4e-9;
        padim_accum_free(a);
        return nm_fail(err, NM_ERR_NOMEM,
                       "padim: out of memory for the covariance sums (%.2f GB at d=%d; "
                       "try a smaller --d or --cov diag/lowrank)", gb, d);
    }
    return NM_OK;
}

void padim_accum_free(padim_accum *a)
{
    free(a->mean);
    free(a->m2_diag);
    free(a->m2);
    a->mean = a->m2_diag = NULL;
    a->m2 = NULL;
}

/* One position: merge k images (rows of d_pad at x) into mean/M2 with Chan
 * et al.'s update. z is scratch for k + 1 rows of d_pad (pads zero), mb
 * for d doubles. */
static void accum_position(padim_accum *a, size_t p, const float *x, int k, float *z,
                           double *mb)
{
    const int d = a->d, d_pad = a->d_pad;
    double *mean = a->mean + p * (size_t)d;
    for (int j = 0; j < d; j++) {
        double s = 0;
        for (int r = 0; r < k; r++)
            s += x[(size_t)r * (size_t)d_pad + (size_t)j];
        mb[j] = s / k;
    }
    for (int r = 0; r < k; r++)
        for (int j = 0; j < d; j++)
            z[(size_t)r * (size_t)d_pad + (size_t)j] =
                (float)(x[(size_t)r * (size_t)d_pad + (size_t)j] - mb[j]);
    int rows = k;
    double na = (double)a->count, n = na + k;
    if (a->count > 0) {
        /* the between-means term as one more row: sqrt(na k / n) (mb - mean) */
        double w = sqrt(na * k / n);
        for (int j = 0; j < d; j++)
            z[(size_t)k * (size_t)d_pad + (size_t)j] = (float)(w * (mb[j] - mean[j]));
        rows++;
    }
    if (a->cov == PADIM_COV_DIAG) {
        double *m2 = a->m2_diag + p * (size_t)d;
        for (int r = 0; r < rows; r++)
            for (int j = 0; j < d; j++) {
                double v = z[(size_t)r * (size_t)d_pad + (size_t)j];
                m2[j] += v * v;
            }
    } else {
        padim_tri_rank_update(a->m2 + p * padim_tri_size(d), d, z, rows);
    }
    for (int j = 0; j < d; j++)
        mean[j] += (mb[j] - mean[j]) * (k / n);
}

nm_status padim_accum_add(padim_accum *a, const float *x, size_t pos_stride, int k,
                          int threads, nm_error *err)
{
    if (k < 1)
        return NM_OK;
    size_t per = (size_t)(k + 1) * (size_t)a->d_pad;
    float *z;
    double *mb;
    nm_status st = thread_scratch(threads, per, (size_t)a->d, &z, &mb, err);
    if (st)
        return st;
#pragma omp parallel num_threads(threads)
    {
        int t = omp_get_thread_num();
#pragma omp for schedule(dynamic, POSITION_CHUNK)
        for (size_t p = 0; p < a->positions; p++)
            accum_position(a, p, x + p * pos_stride, k, z + (size_t)t * per,
                           mb + (size_t)t * (size_t)a->d);
    }
    a->count += k;
    free(z);
    free(mb);
    return NM_OK;
}

void padim_accum_covariance(const padim_accum *a, size_t p, double eps, double *cov)
{
    const int d = a->d;
    const double scale = 1.0 / (double)(a->count - 1);
    if (a->cov == PADIM_COV_DIAG) {
        memset(cov, 0, (size_t)d * (size_t)d * sizeof *cov);
        for (int i = 0; i < d; i++)
            cov[(size_t)i * (size_t)d + (size_t)i] = a->m2_diag[p * (size_t)d + (size_t)i] * scale;
    } else {
        const float *m2 = a->m2 + p * padim_tri_size(d);
        for (int i = 0; i < d; i++) {
            const float *row = m2 + padim_tri_offset(i);
            for (int j = 0; j <= i; j++)
                cov[(size_t)i * (size_t)d + (size_t)j] = cov[(size_t)j * (size_t)d + (size_t)i] =
                    (double)row[j] * scale;
        }
    }
    for (int i = 0; i < d; i++)
        cov[(size_t)i * (size_t)d + (size_t)i] += eps;
}

/* ------------------------------------------------------------- the fit */

size_t padim_gauss_factor_floats(padim_cov cov, int d, int rank)
{
    switch (cov) {
    case PADIM_COV_FULL: return padim_tri_size(d);
    case PADIM_COV_DIAG: return (size_t)padim_pad(d);
    default: return (size_t)rank * (size_t)padim_pad(d);
    }
}

/* Per-thread LAPACK workspace. */
typedef struct fit_work {
    double *a;      /* d x d */
    double *z;      /* lowrank: d x rank eigenvectors */
    double *w;      /* lowrank: eigenvalues */
    int *isuppz;
    double *work;
    int *iwork;
    int lwork, liwork;
} fit_work;

/* What went wrong at a position, reported for the first one in grid order. */
enum { FIT_OK, FIT_NOT_FINITE, FIT_NOT_PD, FIT_EIGEN };

/* The Cholesky factor's inverse, written over the position's M2 sums. The
 * row-major lower triangle is LAPACK's column-major upper one: dpotrf("U")
 * gives U = C^T with S = U^T U, dtrtri inverts it in place, and U^-1 read
 * row-major is L = C^-1, row i at a[i * d + j], j <= i. */
static int fit_full(const padim_accum *a, fit_work *fw, float *out, int *minor)
{
    const int d = a->d;
    int info = 0;
    dpotrf_("U", &d, fw->a, &d, &info, 1);
    if (info != 0) {
        *minor = info;
        return FIT_NOT_PD;
    }
    dtrtri_("U", "N", &d, fw->a, &d, &info, 1, 1);
    if (info != 0) {
        *minor = info;
        return FIT_NOT_PD;
    }
    for (int i = 0; i < d; i++) {
        float *row = out + padim_tri_offset(i);
        int len = padim_tri_row_len(i);
        for (int j = 0; j <= i; j++) {
            double v = fw->a[(size_t)i * (size_t)d + (size_t)j];
            if (!isfinite(v))
                return FIT_NOT_FINITE;
            row[j] = (float)v;
        }
        for (int j = i + 1; j < len; j++)
            row[j] = 0;
    }
    return FIT_OK;
}

static int fit_lowrank(const padim_accum *a, fit_work *fw, int rank, float *out,
                       float *weights)
{
    const int d = a->d, d_pad = a->d_pad;
    double trace = 0;
    for (int j = 0; j < d; j++)
        trace += fw->a[(size_t)j * (size_t)d + (size_t)j];
    const int il = d - rank + 1, iu = d;
    const double none = 0, abstol = 0;
    int m = 0, info = 0;
    dsyevr_("V", "I", "U", &d, fw->a, &d, &none, &none, &il, &iu, &abstol, &m, fw->w, fw->z,
            &d, fw->isuppz, fw->work, &fw->lwork, fw->iwork, &fw->liwork, &info, 1, 1, 1);
    if (info != 0 || m != rank)
        return FIT_EIGEN;
    double kept = 0;
    for (int i = 0; i < rank; i++)
        kept += fw->w[i];
    double sigma2 = (trace - kept) / (d - rank);
    if (!(sigma2 > 0) || !(fw->w[0] > 0))
        return FIT_NOT_PD;
    /* leading direction first: dsyevr returns ascending eigenvalues */
    for (int i = 0; i < rank; i++) {
        int src = rank - 1 - i;
        const double *v = fw->z + (size_t)src * (size_t)d;
        float *row = out + (size_t)i * (size_t)d_pad;
        for (int j = 0; j < d; j++)
            row[j] = (float)v[j];
        weights[i] = (float)(1.0 / fw->w[src] - 1.0 / sigma2);
    }
    weights[rank] = (float)(1.0 / sigma2);
    return FIT_OK;
}

static int fit_position(const padim_accum *a, size_t p, double eps, int rank, fit_work *fw,
                        padim_gauss *g, float *weights, int *minor)
{
    const int d = a->d;
    float *mean = g->mean_owned + p * (size_t)a->d_pad;
    for (int j = 0; j < d; j++) {
        double m = a->mean[p * (size_t)d + (size_t)j];
        if (!isfinite(m))
            return FIT_NOT_FINITE;
        mean[j] = (float)m;
    }
    if (a->cov == PADIM_COV_DIAG) {
        float *inv = g->factor_owned + p * (size_t)a->d_pad;
        for (int j = 0; j < d; j++) {
            double v = a->m2_diag[p * (size_t)d + (size_t)j] / (double)(a->count - 1) + eps;
            if (!isfinite(v))
                return FIT_NOT_FINITE;
            if (!(v > 0)) {
                *minor = j + 1;
                return FIT_NOT_PD;
            }
            inv[j] = (float)(1.0 / v);
        }
        return FIT_OK;
    }
    padim_accum_covariance(a, p, eps, fw->a);
    for (int j = 0; j < d; j++)
        if (!isfinite(fw->a[(size_t)j * (size_t)d + (size_t)j]))
            return FIT_NOT_FINITE;
    if (a->cov == PADIM_COV_FULL)
        return fit_full(a, fw, a->m2 + p * padim_tri_size(d), minor);
    return fit_lowrank(a, fw, rank, g->factor_owned + p * (size_t)rank * (size_t)a->d_pad,
                       weights);
}

static void fit_work_free(fit_work *fw)
{
    free(fw->a);
    free(fw->z);
    free(fw->w);
    free(fw->isuppz);
    free(fw->work);
    free(fw->iwork);
}

static int fit_work_init(fit_work *fw, padim_cov cov, int d, int rank)
{
    memset(fw, 0, sizeof *fw);
    if (cov == PADIM_COV_DIAG)
        return 0;
    fw->a = malloc((size_t)d * (size_t)d * sizeof(double));
    if (!fw->a)
        return -1;
    if (cov != PADIM_COV_LOWRANK)
        return 0;
    /* workspace query */
    const int il = d - rank + 1, iu = d, query = -1;
    const double none = 0;
    double lwork = 0;
    int liwork = 0, m = 0, info = 0;
    dsyevr_("V", "I", "U", &d, fw->a, &d, &none, &none, &il, &iu, &none, &m, NULL, NULL, &d,
            NULL, &lwork, &query, &liwork, &query, &info, 1, 1, 1);
    fw->lwork = (int)lwork;
    fw->liwork = liwork;
    fw->z = malloc((size_t)d * (size_t)rank * sizeof(double));
    fw->w = malloc((size_t)d * sizeof(double));
    fw->isuppz = malloc(2 * (size_t)d * sizeof(int));
    fw->work = malloc((size_t)(fw->lwork > 1 ? fw->lwork : 1) * sizeof(double));
    fw->iwork = malloc((size_t)(fw->liwork > 1 ? fw->liwork : 1) * sizeof(int));
    return info == 0 && fw->z && fw->w && fw->isuppz && fw->work && fw->iwork ? 0 : -1;
}

static nm_status not_positive_definite(const padim_accum *a, int x, int y, int minor,
                                       nm_error *err)
{
    char what[64];
    if (a->cov == PADIM_COV_FULL)
        snprintf(what, sizeof what, "leading minor %d of %d", minor, a->d);
    else if (a->cov == PADIM_COV_DIAG)
        snprintf(what, sizeof what, "channel %d has no positive variance", minor - 1);
    else
        snprintf(what, sizeof what, "eigenvalues not positive");
    return nm_fail(err, NM_ERR_FORMAT,
                   "padim: the covariance at grid position (%d, %d) is not positive definite "
                   "(%s): degenerate training features", x, y, what);
}

nm_status padim_gauss_fit(padim_accum *a, double eps, int rank, int grid_w, int threads,
                          padim_gauss *g, nm_error *err)
{
    memset(g, 0, sizeof *g);
    nm_status st = NM_OK;
    const size_t P = a->positions;
    if (a->count < 2) {
        st = nm_fail(err, NM_ERR_ARG,
                     "padim: a covariance needs at least 2 training images, got %lld",
                     (long long)a->count);
        goto done;
    }
    if (a->cov == PADIM_COV_LOWRANK && (rank < 1 || rank >= a->d)) {
        st = nm_fail(err, NM_ERR_ARG, "padim: rank=%d must be 1..%d (below d=%d)", rank,
                     a->d - 1, a->d);
        goto done;
    }
    g->cov = a->cov;
    g->d = a->d;
    g->d_pad = a->d_pad;
    g->rank = a->cov == PADIM_COV_LOWRANK ? rank : 0;
    g->positions = P;
    g->mean_owned = padim_zalloc(P * (size_t)a->d_pad * sizeof(float));
    if (a->cov != PADIM_COV_FULL)
        g->factor_owned = padim_zalloc(P * padim_gauss_factor_floats(a->cov, a->d, rank) * sizeof(float));
    if (a->cov == PADIM_COV_LOWRANK)
        g->weights_owned = padim_zalloc(P * (size_t)(rank + 1) * sizeof(float));
    int *status = calloc(P, sizeof *status), *minor = calloc(P, sizeof *minor);
    fit_work *fw = calloc((size_t)threads, sizeof *fw);
    int ok = g->mean_owned && status && minor && fw &&
             (a->cov == PADIM_COV_FULL || g->factor_owned) &&
             (a->cov != PADIM_COV_LOWRANK || g->weights_owned);
    for (int t = 0; ok && t < threads; t++)
        ok = fit_work_init(&fw[t], a->cov, a->d, rank) == 0;
    if (!ok) {
        st = nm_fail(err, NM_ERR_NOMEM, "padim: out of memory factoring the covariances");
    } else {
#pragma omp parallel for schedule(dynamic, POSITION_CHUNK) num_threads(threads)
        for (size_t p = 0; p < P; p++)
            status[p] = fit_position(a, p, eps, rank, &fw[omp_get_thread_num()], g,
                                     g->weights_owned ? g->weights_owned + p * (size_t)(rank + 1)
                                                      : NULL,
                                     &minor[p]);
        for (size_t p = 0; p < P && !st; p++) {
            int x = (int)(p % (size_t)grid_w), y = (int)(p / (size_t)grid_w);
            if (status[p] == FIT_NOT_FINITE)
                st = nm_fail(err, NM_ERR_FORMAT,
                             "padim: the training features at grid position (%d, %d) are "
                             "not finite (NaN or infinity)", x, y);
            else if (status[p] == FIT_NOT_PD)
                st = not_positive_definite(a, x, y, minor[p], err);
            else if (status[p] == FIT_EIGEN)
                st = nm_fail(err, NM_ERR_INTERNAL,
                             "padim: the eigen decomposition at grid position (%d, %d) failed",
                             x, y);
        }
    }
    for (int t = 0; fw && t < threads; t++)
        fit_work_free(&fw[t]);
    free(fw);
    free(status);
    free(minor);
    if (!st && a->cov == PADIM_COV_FULL) {
        g->factor_owned = a->m2; /* the sums were overwritten by the factor */
        a->m2 = NULL;
    }
done:
    padim_accum_free(a);
    if (st) {
        padim_gauss_free(g);
        return st;
    }
    g->mean = g->mean_owned;
    g->factor = g->factor_owned;
    g->weights = g->weights_owned;
    return NM_OK;
}

void padim_gauss_free(padim_gauss *g)
{
    free(g->mean_owned);
    free(g->factor_owned);
    free(g->weights_owned);
    memset(g, 0, sizeof *g);
}

/* --------------------------------------------------------------- score */

static void score_position(const padim_gauss *g, size_t p, const float *x, int n,
                           float *diff, double *q)
{
    const int d_pad = g->d_pad;
    padim_center(x, g->mean + p * (size_t)d_pad, d_pad, n, diff);
    const float *f = g->factor + p * padim_gauss_factor_floats(g->cov, g->d, g->rank);
    switch (g->cov) {
    case PADIM_COV_FULL:
        padim_quad_tri(f, g->d, diff, n, q);
        break;
    case PADIM_COV_DIAG:
        padim_quad_diag(f, d_pad, diff, n, q);
        break;
    case PADIM_COV_LOWRANK: {
        const float *w = g->weights + p * (size_t)(g->rank + 1);
        padim_quad_rows(f, g->rank, d_pad, w, diff, n, q);
        for (int b = 0; b < n; b++) {
            double s = 0;
            for (int j = 0; j < d_pad; j++) {
                double v = diff[(size_t)b * (size_t)d_pad + (size_t)j];
                s += v * v;
            }
            /* the sum of w_i terms is >= -|x|^2 / sigma^2 exactly, not in rounding */
            q[b] = fmax(q[b] + (double)w[g->rank] * s, 0.0);
        }
        break;
    }
    }
}

nm_status padim_gauss_score(const padim_gauss *g, const float *x, size_t pos_stride, int n,
                            float *dist2, int threads, nm_error *err)
{
    size_t per = (size_t)n * (size_t)g->d_pad;
    float *diff;
    double *q;
    nm_status st = thread_scratch(threads, per, (size_t)n, &diff, &q, err);
    if (st)
        return st;
#pragma omp parallel num_threads(threads)
    {
        int t = omp_get_thread_num();
        double *qt = q + (size_t)t * (size_t)n;
#pragma omp for schedule(dynamic, POSITION_CHUNK)
        for (size_t p = 0; p < g->positions; p++) {
            score_position(g, p, x + p * pos_stride, n, diff + (size_t)t * per, qt);
            for (int b = 0; b < n; b++)
                dist2[(size_t)b * g->positions + p] = (float)qt[b];
        }
    }
    free(diff);
    free(q);
    return NM_OK;
}
