/*
 * From patch scores to maps a user can overlay on their own image, as
 * patchcore-inspection's RescaleSegmentor does it, then put back on the
 * original image geometry:
 *   patch scores [ph][pw] -> bilinear (align_corners=False) to the network
 *   input size -> Gaussian blur (scipy.ndimage.gaussian_filter: mode
 *   'reflect', truncate 4.0) -> undo the center crop (zero outside it) and
 *   the resize, back to the decoded image's width x height.
 * Also the colour rendering: heatmap and overlay PNG pixels.
 */
#ifndef NM_METHODS_ANOMALY_MAP_H
#define NM_METHODS_ANOMALY_MAP_H

#include <stdint.h>

#include "nominal.h"

/* Bilinear resize of a float map, align_corners=False (torch
 * F.interpolate(mode="bilinear")) when enlarging; when shrinking, PIL-style
 * antialiased triangle filter (so no sample is skipped). */
nm_status map_resize(const float *src, int sw, int sh, float *dst, int dw, int dh,
                     nm_error *err);

/* In-place separable Gaussian blur equal to scipy.ndimage.gaussian_filter
 * (sigma, mode='reflect', truncate=4.0) on a float32 map. */
nm_status map_gaussian_blur(float *map, int w, int h, float sigma, nm_error *err);

/* The whole chain. crop_map (optional, geom->out_w x out_h) receives the
 * blurred map at network-input resolution; image_map (optional,
 * geom->src_w x src_h) the map on the original image. */
nm_status anomaly_map_render(const float *patch_scores, int pw, int ph,
                             const nm_geometry *geom, float sigma,
                             float *crop_map, float *image_map, nm_error *err);

/* Colour heatmap: value v -> colour of clamp((v - lo) / (hi - lo), 0, 1)
 * through a perceptually ordered colormap (dark blue -> red); rgb out is
 * w*h*3 bytes. */
void map_colorize(const float *map, int w, int h, float lo, float hi, uint8_t *rgb);

/* Overlay: rgb_out = (1 - a) * image + a * heat where a = alpha * t^0.5,
 * t the normalized value, so normal regions keep the photo visible. Image
 * may be gray (channels 1) or RGB. */
void map_overlay(const nm_image *img, const float *map, float lo, float hi,
                 float alpha, uint8_t *rgb_out);

#endif
