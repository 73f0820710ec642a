/*
 * Memory-bank subsampling: approximate greedy k-center coreset as in
 * patchcore-inspection (ApproximateGreedyCoresetSampler):
 *  - features are projected to projection_dim dimensions by a fixed random
 *    matrix (uniform +-1/sqrt(dim), from `seed`);
 *  - the initial distance of every point is its mean Euclidean distance to
 *    n_starts random points (which are not selected themselves);
 *  - then count = floor(n * fraction) times: select the point farthest from
 *    the current selection, and lower every point's distance to its
 *    distance to the new point.
 * No N x N matrix is formed; the result is deterministic for a seed and
 * independent of the thread count.
 */
#ifndef NM_METHODS_CORESET_H
#define NM_METHODS_CORESET_H

#include <stddef.h>
#include <stdint.h>

#include "nominal.h"

typedef struct coreset_options {
    double fraction;    /* (0, 1]; >= 1 keeps every point, no selection */
    int projection_dim; /* 128 */
    int n_starts;       /* 10 */
    uint64_t seed;
    /* optional progress: called now and then with done/total selections */
    void (*progress)(void *ctx, size_t done, size_t total);
    void *progress_ctx;
} coreset_options;

void coreset_options_default(coreset_options *o);

/* features: n rows of dim floats. *indices (malloc'ed) receives *count
 * row indices in selection order. *radius (optional) receives the largest
 * remaining distance of any point to the selection in the projected space
 * (the coreset's covering radius). */
nm_status coreset_greedy_select(const float *features, size_t n, int dim,
                                const coreset_options *opts, size_t **indices,
                                size_t *count, float *radius, nm_error *err);

#endif
