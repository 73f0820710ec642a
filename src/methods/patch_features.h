/*
 * PatchCore's locally aware patch features, with patchcore-inspection's
 * exact semantics (PatchMaker.patchify -> bilinear alignment of deeper
 * taps -> per-tap adaptive average pooling -> stacked adaptive pooling):
 *
 *  1. every tap t [C_t][H_t][W_t] is unfolded with a patch_size x patch_size
 *     window, stride 1, ZERO padding (torch Unfold(p, padding=p/2)): a vector
 *     of C_t*p*p values per position, ordered (c, ky, kx);
 *  2. taps after the first are brought to the first tap's grid by bilinear
 *     interpolation (align_corners=False) of each vector component;
 *  3. each tap's vector is reduced to per_tap_dim values by 1-D adaptive
 *     average pooling (PyTorch semantics: output i averages inputs
 *     floor(i*L/O) .. ceil((i+1)*L/O)-1, windows overlap when L/O is not
 *     whole);
 *  4. the per-tap vectors are concatenated (tap order) and pooled the same
 *     way to out_dim values.
 * Pooling and interpolation are both linear and act on different axes, so
 * they commute; the implementation may pool before interpolating.
 */
#ifndef NM_METHODS_PATCH_FEATURES_H
#define NM_METHODS_PATCH_FEATURES_H

#include "nominal.h"

typedef struct patch_feature_config {
    int patch_size;  /* 3 */
    int per_tap_dim; /* 1024 */
    int out_dim;     /* 1024 */
} patch_feature_config;

void patch_feature_config_default(patch_feature_config *cfg);

/* taps[t]: [N][C_t][H_t][W_t] (rank 4, same N). Output grid = taps[0]'s
 * H_0 x W_0. out: caller-allocated N*H_0*W_0*out_dim floats, row-major
 * [n][y][x][d]. Allocates its own scratch; thread-parallel with OpenMP. */
nm_status patch_features_compute(const patch_feature_config *cfg,
                                 const nm_tensor *taps, int n_taps, float *out,
                                 nm_error *err);

/* 1-D adaptive average pooling of in[len] to out[out_len] (PyTorch's
 * adaptive_avg_pool1d). Exposed for tests and other methods. */
void adaptive_avg_pool1d(const float *in, int len, float *out, int out_len);

#endif
