/*
 * Exact k-NN (see knn.h), two ways.
 *
 * Brute force: queries in blocks of up to KNN_QUERY_BLOCK rows, the bank in
 * chunks of KNN_BANK_CHUNK rows; for each (block, chunk) the backend
 * computes the a.b products into a workspace of at most 1024 x 1024 floats
 * (4 MB, re-read from cache right after it is written), and each query row
 * folds |b|^2 - 2 a.b into its k smallest values; |a|^2 is added once at
 * the end. Measured on 784 x 1024 queries against a 16,385-row bank (2
 * cores): 77-85 ms, 310-340 GFLOP/s: the GEMM is the cost.
 *
 * Projected: the same GEMM at the projection's width (128 instead of 1024)
 * gives every pair's lower bound |P(a-b)|^2; those bounds for a block of
 * queries are kept (at most KNN_BOUND_FLOATS), each query measures its k
 * rows of smallest bound exactly, and then every row whose bound does not
 * exceed the k-th of those distances (plus the rounding margin). Exact
 * distances are summed directly, |a-b|^2, without the cancellation of the
 * expanded form.
 */
#include "methods/knn.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

#define KNN_MAX_K 64
#define KNN_QUERY_BLOCK 1024
#define KNN_BANK_CHUNK 1024
/* values are screened 16 at a time against the current k-th best */
#define KNN_LANES 16
/* projected search: bounds held per block of queries (16 MB) */
#define KNN_BOUND_FLOATS ((int64_t)1 << 22)
#define KNN_MIN_BLOCK 16

struct knn_index {
    nm_backend *be;
    const float *bank;
    int64_t m;
    int dim;
    int64_t last_exact; /* rows measured exactly by the last search */

    /* brute force */
    float *bnorm;      /* |b|^2 per bank row */
    backend_matmul_plan **plans; /* one per bank chunk: that chunk, packed once */
    int64_t n_chunks;
    float *work;       /* products: block rows x chunk columns */
    int64_t work_rows; /* rows the workspace holds */
    int64_t chunk;     /* bank rows per product */

    /* projected (see knn_search_projected) */
    knn_projection *proj;
    backend_matmul_plan *to_subspace;  /* centred queries -> coordinates */
    backend_matmul_plan *bound_plan;   /* coordinates . bank coordinates */
    float *bank_coords;                /* [m][dims] */
    float *bank_term;                  /* |Pb|^2 - margin |b - mean|^2 */
    float *bank_resid;                 /* |b - mean| outside the subspace */
    float *bank_resid_err;             /* its rounding bound */
    double margin;                     /* rounding margin, relative */
    double resid_rel;                  /* residual rounding, relative to |b - mean| */
    double exact_rel;                  /* relative error of a measured distance */
    int64_t block_max;                 /* queries per bound block */
    float *q_centred, *q_coords, *bounds; /* workspace for work_rows queries */
    double *q_norm;                    /* |q - mean|^2 */
};

/* |v|^2 accumulated in double: the norms are added to products of the same
 * magnitude, so they should not be the larger error term. */
static float squared_norm(const float *v, int dim)
{
    double s = 0.0;
    for (int j = 0; j < dim; j++)
        s += (double)v[j] * (double)v[j];
    return (float)s;
}

void knn_options_default(knn_options *o)
{
    o->projection_dims = -1;
    o->projection = NULL;
}

/* Bank norms and each chunk packed once into the GEMM's preferred layout:
 * about 10% faster per search than re-reading the plain rows, for a second
 * copy of the bank. The hint is one 224x224 image's 28x28 patches. */
static nm_status brute_force_init(knn_index *idx, nm_error *err)
{
    const int64_t m = idx->m;
    const int dim = idx->dim;
    idx->bnorm = malloc((size_t)m * sizeof *idx->bnorm);
    idx->chunk = m < KNN_BANK_CHUNK ? m : KNN_BANK_CHUNK;
    idx->n_chunks = (m + idx->chunk - 1) / idx->chunk;
    idx->plans = calloc((size_t)idx->n_chunks, sizeof *idx->plans);
    if (!idx->bnorm || !idx->plans)
        return nm_fail(err, NM_ERR_NOMEM, "knn: out of memory for a %lld-row bank",
                       (long long)m);
#pragma omp parallel for schedule(static) num_threads(backend_threads(idx->be))
    for (int64_t i = 0; i < m; i++)
        idx->bnorm[i] = squared_norm(idx->bank + i * (int64_t)dim, dim);
    for (int64_t c = 0; c < idx->n_chunks; c++) {
        int64_t b0 = c * idx->chunk;
        int64_t cols = m - b0 < idx->chunk ? m - b0 : idx->chunk;
        nm_status st = backend_matmul_prepare(idx->be, idx->bank + b0 * dim, cols, dim, 784,
                                              &idx->plans[c], err);
        if (st)
            return st;
    }
    return NM_OK;
}

/*
 * Rounding margins of the projected search, so that pruning never drops a
 * true neighbour. With u = 2^-24 and the standard bound gamma_n = n u for a
 * float dot product of length n (any order, with or without FMA):
 * - each coordinate of P(q - mean) is off by at most gamma_dim |q - mean|
 *   (the basis rows have unit norm), so the coordinate vector by
 *   sqrt(dims) gamma_dim |q - mean|; the same for a bank row. Squaring the
 *   difference turns this into at most 4 sqrt(dims) gamma_dim (|qc|^2 +
 *   |bc|^2), writing qc, bc for the centred rows;
 * - |Pq|^2 + |Pb|^2 - 2 Pq.Pb is then evaluated with error at most
 *   4 gamma_dims (|qc|^2 + |bc|^2);
 * - the float basis is orthonormal to 2 sqrt(dims) u (rounded from double).
 * margin is their sum with 25% to spare: 3.5e-3 for 1024 -> 128, which
 * costs about one extra exact distance per query. A measured distance is
 * within gamma_dim of the truth, so the threshold is also raised by that.
 *
 * The bound also adds (|Rq| - |Rb|)^2 <= |R(q-b)|^2 for the parts R outside
 * the subspace: negligible for normal patches, but it keeps a query far off
 * the subspace (an anomaly unlike anything in the bank) from measuring
 * the whole bank. A residual is sqrt(|c|^2 - |Pc|^2); by the coordinate
 * errors above that difference is off by at most 2 sqrt(dims) (gamma_dim +
 * u) |c|^2, and |sqrt(x) - sqrt(y)| <= sqrt(|x - y|), so each residual is
 * shrunk by resid_rel |c| before use (25% to spare: 0.042 |c| for 1024 ->
 * 128).
 */
static void set_margins(knn_index *idx)
{
    const double u = 0x1p-24;
    const double dims = idx->proj->dims, dim = idx->dim;
    idx->margin = 1.25 * (4.0 * sqrt(dims) * dim * u + 4.0 * dims * u + 2.0 * sqrt(dims) * u);
    idx->exact_rel = 2.0 * dim * u;
    idx->resid_rel = sqrt(1.25 * 2.0 * sqrt(dims) * (dim + 1) * u);
}

/* |c| outside the subspace, from |c|^2 and |Pc|^2. */
static float residual(double norm2, double coord_norm2)
{
    return (float)sqrt(norm2 > coord_norm2 ? norm2 - coord_norm2 : 0.0);
}

/* The bank in subspace coordinates, packed for the bound GEMM, and each
 * row's |Pb|^2 less its share of the margin. */
static nm_status projected_init(knn_index *idx, nm_error *err)
{
    const int64_t m = idx->m;
    const int dim = idx->dim, dims = idx->proj->dims;
    const int threads = backend_threads(idx->be);
    set_margins(idx);
    /* bounds for a block of queries against the whole bank stay within
     * KNN_BOUND_FLOATS; equal blocks keep one primitive shape */
    idx->block_max = KNN_BOUND_FLOATS / m;
    if (idx->block_max < KNN_MIN_BLOCK)
        idx->block_max = KNN_MIN_BLOCK;
    if (idx->block_max > KNN_QUERY_BLOCK)
        idx->block_max = KNN_QUERY_BLOCK;
    idx->bank_coords = malloc((size_t)m * (size_t)dims * sizeof *idx->bank_coords);
    idx->bank_term = malloc((size_t)m * sizeof *idx->bank_term);
    idx->bank_resid = malloc((size_t)m * sizeof *idx->bank_resid);
    idx->bank_resid_err = malloc((size_t)m * sizeof *idx->bank_resid_err);
    int64_t step = m < KNN_BANK_CHUNK ? m : KNN_BANK_CHUNK;
    float *centred = malloc((size_t)step * (size_t)dim * sizeof *centred);
    nm_status st = NM_OK;
    if (!idx->bank_coords || !idx->bank_term || !idx->bank_resid || !idx->bank_resid_err ||
        !centred)
        st = nm_fail(err, NM_ERR_NOMEM, "knn: out of memory for a %lld-row bank",
                     (long long)m);
    for (int64_t b0 = 0; !st && b0 < m; b0 += step) {
        int64_t rows = m - b0 < step ? m - b0 : step;
        double norms[KNN_BANK_CHUNK];
#pragma omp parallel for schedule(static) num_threads(threads)
        for (int64_t i = 0; i < rows; i++) {
            const float *b = idx->bank + (b0 + i) * dim;
            float *c = centred + i * dim;
            double s = 0;
            for (int j = 0; j < dim; j++) {
                c[j] = b[j] - idx->proj->mean[j];
                s += (double)c[j] * c[j];
            }
            norms[i] = s;
        }
        st = backend_matmul(idx->be, centred, idx->proj->basis, idx->bank_coords + b0 * dims,
                            rows, dim, dims, 1, err);
        for (int64_t i = 0; !st && i < rows; i++) {
            const float *c = idx->bank_coords + (b0 + i) * dims;
            double s = 0;
            for (int j = 0; j < dims; j++)
                s += (double)c[j] * c[j];
            idx->bank_term[b0 + i] = (float)(s - idx->margin * norms[i]);
            idx->bank_resid[b0 + i] = residual(norms[i], s);
            idx->bank_resid_err[b0 + i] = (float)(idx->resid_rel * sqrt(norms[i]));
        }
    }
    free(centred);
    if (!st)
        st = backend_matmul_prepare(idx->be, idx->proj->basis, dims, dim, idx->block_max,
                                    &idx->to_subspace, err);
    if (!st)
        st = backend_matmul_prepare(idx->be, idx->bank_coords, m, dims, idx->block_max,
                                    &idx->bound_plan, err);
    return st;
}

nm_status knn_index_create(nm_backend *be, const float *bank, int64_t m, int dim,
                           const knn_options *opts, knn_index **out, nm_error *err)
{
    if (!out)
        return nm_fail(err, NM_ERR_ARG, "knn: no output index");
    *out = NULL;
    if (!be || !bank)
        return nm_fail(err, NM_ERR_ARG, "knn: backend and bank are required");
    if (m < 1 || dim < 1)
        return nm_fail(err, NM_ERR_ARG, "knn: bank of %lld x %d is empty",
                       (long long)m, dim);
    knn_options defaults;
    knn_options_default(&defaults);
    if (!opts)
        opts = &defaults;
    if (opts->projection && opts->projection->dim != dim)
        return nm_fail(err, NM_ERR_ARG, "knn: projection is for %d dimensions, bank has %d",
                       opts->projection->dim, dim);
    int dims = opts->projection ? opts->projection->dims
               : opts->projection_dims < 0 ? knn_projection_auto_dims(m, dim)
                                           : opts->projection_dims;
    if (dims > dim)
        return nm_fail(err, NM_ERR_ARG, "knn: cannot project %d dimensions onto %d", dim,
                       dims);
    knn_index *idx = calloc(1, sizeof *idx);
    if (!idx)
        return nm_fail(err, NM_ERR_NOMEM, "knn: out of memory");
    idx->be = be;
    idx->bank = bank;
    idx->m = m;
    idx->dim = dim;
    nm_status st = NM_OK;
    if (dims > 0) {
        st = opts->projection ? knn_projection_copy(opts->projection->mean,
                                                    opts->projection->basis, dim, dims,
                                                    &idx->proj, err)
                              : knn_projection_fit(be, bank, m, dim, dims, &idx->proj, err);
        if (!st)
            st = projected_init(idx, err);
    } else {
        st = brute_force_init(idx, err);
    }
    if (st) {
        knn_index_free(idx);
        return st;
    }
    *out = idx;
    return NM_OK;
}

void knn_index_free(knn_index *idx)
{
    if (!idx)
        return;
    for (int64_t c = 0; idx->plans && c < idx->n_chunks; c++)
        backend_matmul_plan_free(idx->plans[c]);
    free(idx->plans);
    free(idx->bnorm);
    free(idx->work);
    knn_projection_free(idx->proj);
    backend_matmul_plan_free(idx->to_subspace);
    backend_matmul_plan_free(idx->bound_plan);
    free(idx->bank_coords);
    free(idx->bank_term);
    free(idx->bank_resid);
    free(idx->bank_resid_err);
    free(idx->q_centred);
    free(idx->q_coords);
    free(idx->bounds);
    free(idx->q_norm);
    free(idx);
}

const knn_projection *knn_index_projection(const knn_index *idx)
{
    return idx ? idx->proj : NULL;
}

int64_t knn_last_exact_count(const knn_index *idx)
{
    return idx ? idx->last_exact : 0;
}

/* Workspace for blocks of `rows` queries; only ever grows. */
static nm_status reserve(knn_index *idx, int64_t rows, nm_error *err)
{
    if (rows <= idx->work_rows)
        return NM_OK;
    size_t n = (size_t)rows;
    free(idx->work);
    free(idx->q_centred);
    free(idx->q_coords);
    free(idx->bounds);
    free(idx->q_norm);
    idx->work = idx->q_centred = idx->q_coords = idx->bounds = NULL;
    idx->q_norm = NULL;
    idx->work_rows = 0;
    int ok;
    if (idx->proj) {
        idx->q_centred = malloc(n * (size_t)idx->dim * sizeof(float));
        idx->q_coords = malloc(n * (size_t)idx->proj->dims * sizeof(float));
        idx->bounds = malloc(n * (size_t)idx->m * sizeof(float));
        idx->q_norm = malloc(n * sizeof(double));
        ok = idx->q_centred && idx->q_coords && idx->bounds && idx->q_norm;
    } else {
        idx->work = malloc(n * (size_t)idx->chunk * sizeof(float));
        ok = idx->work != NULL;
    }
    if (!ok)
        return nm_fail(err, NM_ERR_NOMEM, "knn: out of memory for %lld queries",
                       (long long)rows);
    idx->work_rows = rows;
    return NM_OK;
}

/* k = 1: a running minimum of |b|^2 - 2 a.b over one product row (an
 * AVX-512 clone where the CPU has it: 16 lanes instead of 4). */
__attribute__((target_clones("avx512f", "default")))
static float fold_min(const float *prod, const float *bnorm, int64_t cols,
                      float best)
{
#pragma omp simd reduction(min : best)
    for (int64_t j = 0; j < cols; j++) {
        float v = bnorm[j] - 2.0f * prod[j];
        best = v < best ? v : best;
    }
    return best;
}

/* Insert v (with its bank row) into the ascending best[0..k-1], dropping
 * the last; v < best[k-1]. row may be NULL. */
static void insert_sorted(float *best, int64_t *row, int k, float v, int64_t r)
{
    int i = k - 1;
    while (i > 0 && best[i - 1] > v) {
        best[i] = best[i - 1];
        if (row)
            row[i] = row[i - 1];
        i--;
    }
    best[i] = v;
    if (row)
        row[i] = r;
}

/* k > 1: screen 16 values at a time against the current k-th best; most
 * blocks hold no candidate and cost one vector minimum. */
__attribute__((target_clones("avx512f", "default")))
static void fold_topk(const float *prod, const float *bnorm, int64_t cols,
                      float *best, int k)
{
    float v[KNN_LANES];
    for (int64_t j0 = 0; j0 < cols; j0 += KNN_LANES) {
        int n = cols - j0 < KNN_LANES ? (int)(cols - j0) : KNN_LANES;
        float lo = INFINITY;
#pragma omp simd reduction(min : lo)
        for (int l = 0; l < n; l++) {
            v[l] = bnorm[j0 + l] - 2.0f * prod[j0 + l];
            lo = v[l] < lo ? v[l] : lo;
        }
        if (!(lo < best[k - 1]))
            continue;
        for (int l = 0; l < n; l++)
            if (v[l] < best[k - 1])
                insert_sorted(best, NULL, k, v[l], 0);
    }
}

static nm_status check_search(const knn_index *idx, const float *queries,
                              int64_t nq, int k, const float *dist,
                              nm_error *err)
{
    if (!idx)
        return nm_fail(err, NM_ERR_ARG, "knn: no index");
    if (nq < 0)
        return nm_fail(err, NM_ERR_ARG, "knn: %lld queries", (long long)nq);
    if (nq > 0 && (!queries || !dist))
        return nm_fail(err, NM_ERR_ARG, "knn: queries and output are required");
    if (k < 1 || k > KNN_MAX_K)
        return nm_fail(err, NM_ERR_ARG, "knn: k = %d, must be 1..%d", k,
                       KNN_MAX_K);
    if (k > idx->m)
        return nm_fail(err, NM_ERR_ARG,
                       "knn: k = %d is larger than the bank (%lld rows)", k,
                       (long long)idx->m);
    return NM_OK;
}

static nm_status knn_search_brute_force(knn_index *idx, const float *queries, int64_t nq,
                                        int k, float *dist, nm_error *err)
{
    const int dim = idx->dim;
    const int threads = backend_threads(idx->be);
    nm_status st = reserve(idx, nq < KNN_QUERY_BLOCK ? nq : KNN_QUERY_BLOCK, err);
    if (st != NM_OK)
        return st;
    for (int64_t i = 0; i < nq * k; i++)
        dist[i] = INFINITY;

    for (int64_t q0 = 0; q0 < nq; q0 += KNN_QUERY_BLOCK) {
        const int64_t rows = nq - q0 < KNN_QUERY_BLOCK ? nq - q0 : KNN_QUERY_BLOCK;
        const float *a = queries + q0 * dim;
        float *out = dist + q0 * k;
        for (int64_t b0 = 0; b0 < idx->m; b0 += idx->chunk) {
            const int64_t cols = idx->m - b0 < idx->chunk ? idx->m - b0 : idx->chunk;
            st = backend_matmul_run(idx->plans[b0 / idx->chunk], a, rows, idx->work, err);
            if (st != NM_OK)
                return st;
            const float *bn = idx->bnorm + b0;
#pragma omp parallel for schedule(static) num_threads(threads)
            for (int64_t i = 0; i < rows; i++) {
                const float *prod = idx->work + i * cols;
                if (k == 1)
                    out[i] = fold_min(prod, bn, cols, out[i]);
                else
                    fold_topk(prod, bn, cols, out + i * k, k);
            }
        }
#pragma omp parallel for schedule(static) num_threads(threads)
        for (int64_t i = 0; i < rows; i++) {
            float qn = squared_norm(a + i * dim, dim);
            for (int j = 0; j < k; j++) {
                float d = qn + out[i * k + j];
                out[i * k + j] = d < 0.0f ? 0.0f : d; /* NaN stays NaN */
            }
        }
    }
    idx->last_exact = nq * idx->m;
    return NM_OK;
}

/* |a-b|^2 summed directly: no cancellation, relative error <= gamma_dim. */
__attribute__((target_clones("avx512f", "default")))
static float exact_distance(const float *a, const float *b, int dim)
{
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int j = 0; j < dim; j++) {
        float t = a[j] - b[j];
        s += t * t;
    }
    return s;
}

/* Turn one row of products Pq.Pb into lower bounds (less the margin) in
 * place; returns the smallest. */
__attribute__((target_clones("avx512f", "default")))
static float to_bounds(float *row, const knn_index *idx, float q_term, float q_resid,
                       float q_resid_err)
{
    const float *bank_term = idx->bank_term, *bank_resid = idx->bank_resid;
    const float *bank_resid_err = idx->bank_resid_err;
    const int64_t m = idx->m;
    float lo = INFINITY;
#pragma omp simd reduction(min : lo)
    for (int64_t j = 0; j < m; j++) {
        float r = fabsf(q_resid - bank_resid[j]) - q_resid_err - bank_resid_err[j];
        r = r > 0.0f ? r : 0.0f;
        float v = q_term + bank_term[j] - 2.0f * row[j] + r * r;
        row[j] = v;
        lo = v < lo ? v : lo;
    }
    return lo;
}

/* The bank rows of the k smallest finite bounds, into rows[]; returns how
 * many there are (fewer than k only for a bank with non-finite rows). */
static int smallest_bounds(const float *bound, int64_t m, int k, float lo, int64_t *rows)
{
    if (k == 1) {
        if (!(lo < INFINITY))
            return 0;
        int64_t j = 0;
        while (bound[j] != lo)
            j++;
        rows[0] = j;
        return 1;
    }
    float best[KNN_MAX_K];
    for (int i = 0; i < k; i++)
        best[i] = INFINITY;
    int found = 0;
    for (int64_t j = 0; j < m; j++)
        if (bound[j] < best[k - 1]) {
            insert_sorted(best, rows, k, bound[j], j);
            found += found < k;
        }
    return found;
}

/* One query: the k smallest exact distances among the rows whose bound
 * does not rule them out. Returns the number of rows measured. */
static int64_t search_one(const knn_index *idx, const float *q, const float *bound,
                          double q_norm, float lo, int k, float *out)
{
    const int dim = idx->dim;
    int64_t seed[KNN_MAX_K];
    /* an upper bound on the k-th distance: the k rows with the smallest bounds */
    float t = 0.0f;
    if (smallest_bounds(bound, idx->m, k, lo, seed) < k)
        t = INFINITY;
    for (int i = 0; i < k && t < INFINITY; i++) {
        float d = exact_distance(q, idx->bank + seed[i] * dim, dim);
        t = d > t ? d : t;
    }
    /* every row that can be within t, measured */
    const float threshold =
        (float)((double)t * (1.0 + idx->exact_rel) + idx->margin * q_norm);
    int64_t measured = k;
    for (int i = 0; i < k; i++)
        out[i] = INFINITY;
    for (int64_t j = 0; j < idx->m; j++) {
        if (!(bound[j] <= threshold))
            continue;
        float d = exact_distance(q, idx->bank + j * dim, dim);
        measured++;
        if (d < out[k - 1])
            insert_sorted(out, NULL, k, d, 0);
    }
    return measured;
}

static nm_status knn_search_projected(knn_index *idx, const float *queries, int64_t nq,
                                      int k, float *dist, nm_error *err)
{
    const int dim = idx->dim, dims = idx->proj->dims;
    const int threads = backend_threads(idx->be);
    const int64_t n_blocks = (nq + idx->block_max - 1) / idx->block_max;
    const int64_t block = (nq + n_blocks - 1) / n_blocks;
    nm_status st = reserve(idx, block, err);
    if (st != NM_OK)
        return st;
    int64_t measured = 0;
    for (int64_t q0 = 0; q0 < nq; q0 += block) {
        const int64_t rows = nq - q0 < block ? nq - q0 : block;
        const float *a = queries + q0 * dim;
#pragma omp parallel for schedule(static) num_threads(threads)
        for (int64_t i = 0; i < rows; i++) {
            double s = 0;
            for (int j = 0; j < dim; j++) {
                float c = a[i * dim + j] - idx->proj->mean[j];
                idx->q_centred[i * dim + j] = c;
                s += (double)c * c;
            }
            idx->q_norm[i] = s;
        }
        st = backend_matmul_run(idx->to_subspace, idx->q_centred, rows, idx->q_coords, err);
        if (!st)
            st = backend_matmul_run(idx->bound_plan, idx->q_coords, rows, idx->bounds, err);
        if (st)
            return st;
#pragma omp parallel for schedule(dynamic, 4) num_threads(threads) reduction(+ : measured)
        for (int64_t i = 0; i < rows; i++) {
            float *out = dist + (q0 + i) * k;
            if (!isfinite(idx->q_norm[i])) {
                for (int j = 0; j < k; j++)
                    out[j] = NAN;
                continue;
            }
            const float *c = idx->q_coords + i * dims;
            double s = 0;
            for (int j = 0; j < dims; j++)
                s += (double)c[j] * c[j];
            float *bound = idx->bounds + i * idx->m;
            float q_term = (float)(s - idx->margin * idx->q_norm[i]);
            float lo = to_bounds(bound, idx, q_term, residual(idx->q_norm[i], s),
                                 (float)(idx->resid_rel * sqrt(idx->q_norm[i])));
            measured += search_one(idx, a + i * dim, bound, idx->q_norm[i], lo, k, out);
        }
    }
    idx->last_exact = measured;
    return NM_OK;
}

nm_status knn_search(knn_index *idx, const float *queries, int64_t nq, int k,
                     float *dist, nm_error *err)
{
    nm_status st = check_search(idx, queries, nq, k, dist, err);
    if (st != NM_OK || nq == 0)
        return st;
    return idx->proj ? knn_search_projected(idx, queries, nq, k, dist, err)
                     : knn_search_brute_force(idx, queries, nq, k, dist, err);
}
