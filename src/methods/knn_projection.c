/*
 * The principal subspace of a bank (see knn.h): the mean of all rows and
 * the top eigenvectors of the covariance of an evenly spaced sample.
 *
 * Any orthonormal basis gives a valid lower bound; a better one only prunes
 * more. So the covariance is taken over at most KNN_PROJECTION_SAMPLE rows
 * (a 16,385-row bank's own covariance would cost 34 GFLOP for nothing), in
 * float32 through the backend's GEMM, and decomposed in double by LAPACK's
 * dsyevd so that the basis is orthonormal to double precision before it is
 * rounded to float.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "methods/knn.h"

#define KNN_PROJECTION_SAMPLE 8192

/* LAPACK (OpenBLAS): symmetric eigendecomposition, divide and conquer. */
extern void dsyevd_(const char *jobz, const char *uplo, const int *n, double *a,
                    const int *lda, double *w, double *work, const int *lwork,
                    int *iwork, const int *liwork, int *info);

int knn_projection_auto_dims(int64_t m, int dim)
{
    /* Below ~256 dimensions or ~1k rows the plain search is already cheap
     * and a 128-dimensional bound would not prune enough to pay for itself. */
    if (dim < 256 || m < 1024)
        return 0;
    return dim >= 512 ? 128 : dim / 4;
}

void knn_projection_free(knn_projection *p)
{
    if (!p)
        return;
    free(p->mean);
    free(p->basis);
    free(p);
}

nm_status knn_projection_copy(const float *mean, const float *basis, int dim, int dims,
                              knn_projection **out, nm_error *err)
{
    *out = NULL;
    if (dim < 1 || dims < 1 || dims > dim)
        return nm_fail(err, NM_ERR_ARG, "knn: projection of %d onto %d dimensions", dim,
                       dims);
    knn_projection *p = calloc(1, sizeof *p);
    if (p) {
        p->mean = malloc((size_t)dim * sizeof *p->mean);
        p->basis = malloc((size_t)dims * (size_t)dim * sizeof *p->basis);
    }
    if (!p || !p->mean || !p->basis) {
        knn_projection_free(p);
        return nm_fail(err, NM_ERR_NOMEM, "knn: out of memory for a projection");
    }
    p->dim = dim;
    p->dims = dims;
    memcpy(p->mean, mean, (size_t)dim * sizeof *p->mean);
    memcpy(p->basis, basis, (size_t)dims * (size_t)dim * sizeof *p->basis);
    *out = p;
    return NM_OK;
}

/* Column means, accumulated in double into sum[dim] (caller's scratch). */
static void row_mean(const float *bank, int64_t m, int dim, double *sum, float *mean)
{
    memset(sum, 0, (size_t)dim * sizeof *sum);
    for (int64_t i = 0; i < m; i++)
        for (int j = 0; j < dim; j++)
            sum[j] += bank[i * dim + j];
    for (int j = 0; j < dim; j++)
        mean[j] = (float)(sum[j] / (double)m);
}

/* Eigenvectors of the symmetric cov[dim][dim] for its `dims` largest
 * eigenvalues, as float rows of basis, largest first. */
static nm_status top_eigenvectors(const float *cov, int dim, int dims, float *basis,
                                  nm_error *err)
{
    double *a = malloc((size_t)dim * (size_t)dim * sizeof *a);
    double *w = malloc((size_t)dim * sizeof *w);
    double wq;
    int iwq, lwork = -1, liwork = -1, info = 0;
    nm_status st = NM_OK;
    if (!a || !w) {
        st = nm_fail(err, NM_ERR_NOMEM, "knn: out of memory for a %dx%d covariance", dim,
                     dim);
        goto done;
    }
    for (size_t i = 0; i < (size_t)dim * (size_t)dim; i++)
        a[i] = cov[i];
    dsyevd_("V", "U", &dim, a, &dim, w, &wq, &lwork, &iwq, &liwork, &info);
    lwork = (int)wq;
    liwork = iwq;
    double *work = info == 0 ? malloc((size_t)lwork * sizeof *work) : NULL;
    int *iwork = info == 0 ? malloc((size_t)liwork * sizeof *iwork) : NULL;
    if (work && iwork)
        dsyevd_("V", "U", &dim, a, &dim, w, work, &lwork, iwork, &liwork, &info);
    else if (info == 0)
        st = nm_fail(err, NM_ERR_NOMEM, "knn: out of memory for LAPACK workspace");
    free(work);
    free(iwork);
    if (!st && info != 0)
        st = nm_fail(err, NM_ERR_INTERNAL, "knn: dsyevd failed (info %d)", info);
    if (!st) {
        /* eigenvalues ascending; eigenvector i is column i (contiguous in
         * LAPACK's column-major order) */
        for (int r = 0; r < dims; r++) {
            const double *v = a + (size_t)(dim - 1 - r) * (size_t)dim;
            for (int j = 0; j < dim; j++)
                basis[(size_t)r * (size_t)dim + (size_t)j] = (float)v[j];
        }
    }
done:
    free(a);
    free(w);
    return st;
}

nm_status knn_projection_fit(nm_backend *be, const float *bank, int64_t m, int dim,
                             int dims, knn_projection **out, nm_error *err)
{
    *out = NULL;
    if (!be || !bank || m < 1 || dim < 1 || dims < 1 || dims > dim)
        return nm_fail(err, NM_ERR_ARG, "knn: cannot project %lld x %d rows onto %d",
                       (long long)m, dim, dims);
    int64_t s = m < KNN_PROJECTION_SAMPLE ? m : KNN_PROJECTION_SAMPLE;
    float *mean = malloc((size_t)dim * sizeof *mean);
    float *sample_t = malloc((size_t)s * (size_t)dim * sizeof *sample_t); /* [dim][s] */
    float *cov = malloc((size_t)dim * (size_t)dim * sizeof *cov);
    float *basis = malloc((size_t)dims * (size_t)dim * sizeof *basis);
    double *sum = malloc((size_t)dim * sizeof *sum);
    nm_status st = NM_OK;
    if (!mean || !sample_t || !cov || !basis || !sum) {
        st = nm_fail(err, NM_ERR_NOMEM, "knn: out of memory fitting a projection");
        goto done;
    }
    row_mean(bank, m, dim, sum, mean);
    for (int64_t i = 0; i < s; i++) {
        const float *row = bank + (i * m / s) * dim;
        for (int j = 0; j < dim; j++)
            sample_t[(size_t)j * (size_t)s + (size_t)i] = row[j] - mean[j];
    }
    /* cov = S^T S (unscaled: only the eigenvectors matter) */
    st = backend_matmul(be, sample_t, sample_t, cov, dim, s, dim, 1, err);
    if (!st)
        st = top_eigenvectors(cov, dim, dims, basis, err);
    if (!st)
        st = knn_projection_copy(mean, basis, dim, dims, out, err);
done:
    free(mean);
    free(sample_t);
    free(cov);
    free(basis);
    free(sum);
    return st;
}
