/*
 * PaDiM's patch embedding, as the reference implementations build it
 * (xiahaifeng1995/PaDiM-Anomaly-Detection-Localization-master's
 * embedding_concat, anomalib's PaDiM): every tap after the first is brought
 * to the first tap's H x W by nearest replication (torch
 * F.interpolate(mode="nearest")), the taps are concatenated along channels,
 * and a random subset of d of those channels is kept.
 */
#ifndef NM_METHODS_PADIM_EMBED_H
#define NM_METHODS_PADIM_EMBED_H

#include <stddef.h>
#include <stdint.h>

#include "nominal.h"

/* Default d for a channel total: the paper's choices for its backbones
 * (448 ResNet-18 channels -> 100, 1792 ResNet-50 / Wide-ResNet-50 channels
 * -> 550); for any other total the same fraction 550/1792 of the channels,
 * rounded, at least min(total, 100) and at most 550 (the covariances grow
 * as d^2: 550 is already 1.9 GB on a 56 x 56 grid). */
int padim_default_d(int total);

/* The d channels kept, ascending, into out[d]: a partial Fisher-Yates
 * shuffle of 0..total-1 (for i < d: swap i with i + draw % (total - i),
 * draws from splitmix64 stream PADIM_STREAM_CHANNELS of the seed, as in
 * methods/coreset_internal.h), then sorted. The order does not change any
 * distance; sorting keeps the gather reading taps front to back. */
#define PADIM_STREAM_CHANNELS 3
nm_status padim_choose_channels(uint64_t seed, int total, int d, int32_t *out,
                                nm_error *err);

/* Torch's nearest source index of output o when resizing in -> out. */
int padim_nearest_index(int o, int in, int out);

/* Gather the kept channels of images [n0, n0 + count) at every position of
 * taps[0]'s grid: out[p * pos_stride + (n - n0) * img_stride + k] is
 * channel channels[k] of the concatenated, upsampled taps of image n at
 * position p = y * W + x. Entries k >= d are left untouched. channels must
 * be ascending and below the channel total. */
void padim_gather(const nm_tensor *taps, int n_taps, const int32_t *channels, int d,
                  int n0, int count, float *out, size_t pos_stride, size_t img_stride,
                  int threads);

#endif
