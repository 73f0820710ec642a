/*
 * Exact nearest-neighbour search of query rows against a bank, as a chunked
 * GEMM: |a-b|^2 = |a|^2 - 2 a.b + |b|^2, with the a.b block computed by the
 * backend's matmul (oneDNN) and reduced to the k smallest per query on the
 * fly, so the full query x bank matrix is never stored.
 */
#ifndef NM_METHODS_KNN_H
#define NM_METHODS_KNN_H

#include <stdint.h>

#include "backend/backend.h"
#include "nominal.h"

typedef struct knn_index knn_index;

/* bank: m rows of dim floats; not copied (must outlive the index). */
nm_status knn_index_create(nm_backend *be, const float *bank, int64_t m, int dim,
                           knn_index **out, nm_error *err);
void knn_index_free(knn_index *idx);

/* For each of nq query rows: the k smallest SQUARED Euclidean distances to
 * the bank, ascending, into dist[nq][k] (clamped at 0). k <= 64. Reuses
 * the index's workspace: allocates only when nq grows. */
nm_status knn_search(knn_index *idx, const float *queries, int64_t nq, int k,
                     float *dist, nm_error *err);

#endif
