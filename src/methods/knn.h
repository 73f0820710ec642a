/*
 * Exact nearest-neighbour search of query rows against a bank.
 *
 * Brute force is a chunked GEMM: |a-b|^2 = |a|^2 - 2 a.b + |b|^2, with the
 * a.b block computed by the backend's matmul (oneDNN) and reduced to the k
 * smallest per query on the fly, so the full query x bank matrix is never
 * stored.
 *
 * With a projection (the default for large banks) the search is still
 * exact but does an eighth of the arithmetic: for an orthonormal basis P,
 * |P(a-b)|^2 <= |a-b|^2, so the distances in the bank's 128-dimensional
 * principal subspace are lower bounds. One GEMM at that width bounds every
 * pair; the few bank rows whose bound (less a rounding margin) does not
 * exceed the best distance found are then measured exactly. On PatchCore
 * banks 2-5 rows per query are measured instead of 16,385.
 */
#ifndef NM_METHODS_KNN_H
#define NM_METHODS_KNN_H

#include <stdint.h>

#include "backend/backend.h"
#include "nominal.h"

/* A centre and an orthonormal basis of `dims` rows in a `dim`-space. */
typedef struct knn_projection {
    int dim, dims;
    float *mean;  /* [dim] */
    float *basis; /* [dims][dim], orthonormal rows, most variance first */
} knn_projection;

/* Projection size worth using for a bank of m rows of dim (0: brute force). */
int knn_projection_auto_dims(int64_t m, int dim);
/* Mean of the bank and its top `dims` principal directions (LAPACK). */
nm_status knn_projection_fit(nm_backend *be, const float *bank, int64_t m, int dim,
                             int dims, knn_projection **out, nm_error *err);
/* A projection from stored arrays (copied). */
nm_status knn_projection_copy(const float *mean, const float *basis, int dim, int dims,
                              knn_projection **out, nm_error *err);
void knn_projection_free(knn_projection *p);

typedef struct knn_index knn_index;

typedef struct knn_options {
    /* -1: fit a projection of knn_projection_auto_dims size (the default);
     * 0: brute force; > 0: fit one of this size. Ignored when `projection`
     * is given. */
    int projection_dims;
    const knn_projection *projection; /* use this one (copied); may be NULL */
} knn_options;

void knn_options_default(knn_options *o);

/* bank: m rows of dim floats; not copied (must outlive the index).
 * opts may be NULL (defaults). */
nm_status knn_index_create(nm_backend *be, const float *bank, int64_t m, int dim,
                           const knn_options *opts, knn_index **out, nm_error *err);
void knn_index_free(knn_index *idx);
/* The projection the index searches with, or NULL (brute force). */
const knn_projection *knn_index_projection(const knn_index *idx);

/* For each of nq query rows: the k smallest SQUARED Euclidean distances to
 * the bank, ascending, into dist[nq][k] (clamped at 0; a query with a NaN
 * or infinity gives NaN). k <= 64. Reuses the index's workspace: allocates
 * only when nq grows. */
nm_status knn_search(knn_index *idx, const float *queries, int64_t nq, int k,
                     float *dist, nm_error *err);

/* Bank rows measured exactly by the last search (the whole bank per query
 * for brute force), to show how much the bound pruned. */
int64_t knn_last_exact_count(const knn_index *idx);

#endif
