/*
 * What the HTML report keeps of one scored image: a thumbnail whose longer
 * side is at most THUMB_MAX_SIDE (never enlarged), and the anomaly map and
 * the defect mask max-pooled onto it. Max-pooling, not averaging, so that a
 * thumbnail pixel is predicted defective exactly when some image pixel
 * under it reaches the threshold, and no defect, however thin, vanishes
 * from the contours. (The heatmap is drawn from the same pooled map: the
 * maps are smooth, so it differs from an averaged one by a thumbnail pixel
 * of spread at most, and it costs no second resize.) About 8 bytes per
 * thumbnail pixel (~0.5 MB an image).
 */
#ifndef NM_EVAL_THUMB_H
#define NM_EVAL_THUMB_H

#include <stdint.h>

#include "nominal.h"

#define THUMB_MAX_SIDE 256

typedef struct thumb {
    nm_image photo;    /* RGB, the image resized (PIL bilinear, antialiased) */
    float *map_max;    /* photo.width x photo.height */
    uint8_t *mask_max; /* likewise, 1 = defect; NULL when there is no mask */
} thumb;

/* img is the decoded image; map and mask (both may be NULL) are on its
 * width x height. */
nm_status thumb_make(const nm_image *img, const float *map, const uint8_t *mask,
                     thumb *out, nm_error *err);
void thumb_free(thumb *t);

/* Paints the boundary of a region in colour: the pixels of inside (w x h,
 * non-zero = in the region) that have a 4-neighbour outside it or lie on
 * the image border. */
void thumb_draw_contour(uint8_t *rgb, int w, int h, const uint8_t *inside,
                        const uint8_t colour[3]);

#endif
